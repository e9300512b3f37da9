#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# Crash safety and concurrency of cfs-store.
#
# 1. kill -9 of a real import (debian-python of the corpus) at 24 random
#    moments (fixed seed; a random fraction of a measured import time):
#    after each, `cfs-store fsck` exits 0 and reports no problem (stale
#    temporaries are cleaned, which is not a problem); the name is then
#    dropped and gc run (also checked by fsck) so that the next import
#    starts from scratch again. Finally the same import succeeds and
#    `fsck --verify` is clean.
# 2. Two imports of different images at once while gc runs in a loop:
#    both succeed, their names resolve, `fsck --verify` is clean.
#
# CFS_CORPUS: the corpus (default $CFS_TESTS/corpus). Without it, two
# synthetic OCI images of thousands of files are made instead, large
# enough for the kills to land mid-import.
set -euo pipefail

# shellcheck source=tests/scripts/lib.sh
. "$(dirname "$0")/lib.sh"
test_init store-kill CFS_SRC
cs=$CFS_BIN/cfs-store
need_exec "$cs"
need_tool python3
KILLS=24
RANDOM=4242 # fixed seed: the same kill moments on every run

# An OCI layout of one uncompressed layer with N files of varied sizes.
synthetic() { # DIR N SEED
	python3 "$CFS_SRC/tests/scripts/tiny-oci.py" "$1" "$3" "$2" \
		--sizes 100,3000,20000,60000 --dirs 64 --names 'f{i}'
}

corpus=${CFS_CORPUS:-${CFS_TESTS:-/nonexistent}/corpus}
if [ -f "$corpus/debian-python/index.json" ] && [ -f "$corpus/debian-minbase/index.json" ]; then
	src1="oci:$corpus/debian-python"
	src2="oci:$corpus/debian-minbase"
else
	echo "$me: no corpus at $corpus: using synthetic images"
	synthetic "$work/syn1" 6000 1
	synthetic "$work/syn2" 4000 2
	src1="oci:$work/syn1"
	src2="oci:$work/syn2"
fi

root=$work/store
S=("$cs" --root "$root")

step "measure an import of $src1"
t0=$(us_now)
digest=$("${S[@]}" import "$src1" --name measure)
t_import=$(($(us_now) - t0))
echo "$me: import took $(us_secs "$t_import") s"
"${S[@]}" rm measure
"${S[@]}" gc > /dev/null
[ -z "$(find "$root/objects" "$root/images" -type f)" ] || fail "gc left files"

step "$KILLS kills"
# After kill $i: drop the name (if the import got that far) and gc, so
# that the next import starts over.
start_over() {
	"${S[@]}" rm victim > /dev/null 2>&1 || true
	"${S[@]}" gc > /dev/null
	fsck_clean "$root" "gc after kill $i"
}
kills_landed=0
for i in $(seq 1 "$KILLS"); do
	kill_trial "$root" "$t_import" "kill $i: import" start_over "${S[@]}" import "$src1" --name victim
done
[ "$kills_landed" -gt 0 ] || fail "no kill landed mid-import"
echo "$me: $kills_landed of $KILLS kills landed mid-import"

step "a killed import, then the same import succeeds"
kill_at $((t_import / 2)) "${S[@]}" import "$src1" --name victim
d=$("${S[@]}" import "$src1" --name victim)
[ "$d" = "$digest" ] || fail "digest $d after kills, $digest before"
[ -z "$(ls "$root/tmp")" ] || fail "tmp/ not empty: $(ls "$root/tmp")"
fsck_clean "$root" "final" --verify
"${S[@]}" inspect victim --json | jcheck "j['complete'] and j['digest'] == '$digest'" "inspect"

step "two imports at once while gc runs in a loop"
"${S[@]}" rm victim
"${S[@]}" gc > /dev/null
# gc in a loop from before the imports start until after they end: each
# gc waits for running imports and makes new ones wait.
pids=()
stop_pids() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
}
on_exit stop_pids
(
	n=0
	while [ ! -e "$work/stop" ]; do
		"${S[@]}" gc > /dev/null || { echo failed > "$work/gc.failed"; exit 1; }
		n=$((n + 1))
	done
	echo "$n" > "$work/gc.count"
) &
gcloop=$!
pids=("$gcloop")
sleep 0.2
"${S[@]}" import "$src1" --name one > "$work/one.out" 2> "$work/one.err" &
p1=$!
sleep 0.3
"${S[@]}" import "$src2" --name two > "$work/two.out" 2> "$work/two.err" &
p2=$!
pids+=("$p1" "$p2")
wait "$p1" || fail "import one: $(cat "$work/one.err")"
wait "$p2" || fail "import two: $(cat "$work/two.err")"
sleep 0.2
touch "$work/stop"
wait "$gcloop" || fail "gc failed during the imports"
pids=()
gcs=$(cat "$work/gc.count")
echo "$me: $gcs gc runs during the imports"
"${S[@]}" gc > /dev/null
[ "$("${S[@]}" inspect one --json | jget "j['digest']")" = "$(cat "$work/one.out")" ] ||
	fail "name one"
"${S[@]}" inspect two > /dev/null || fail "name two"
fsck_clean "$root" "after concurrent imports" --verify
echo "$me: ok"
