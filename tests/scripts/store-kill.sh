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

me=store-kill
: "${CFS_BIN:?}" "${CFS_SRC:?}" "${CFS_TEST_TMP:?}"
cs=$CFS_BIN/cfs-store
KILLS=24
RANDOM=4242 # fixed seed: the same kill moments on every run

fail() {
	echo "$me: FAIL: $*" >&2
	exit 1
}
step() { echo "== $me: $*"; }

mkdir -p "$CFS_TEST_TMP"
work=$(mktemp -d "$(realpath "$CFS_TEST_TMP")/$me.XXXXXX")
pids=()
cleanup() {
	local rc=$?
	trap - EXIT
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT

jcheck() { # EXPR what < json
	python3 -c 'import json,sys; j=json.load(sys.stdin); sys.exit(0 if eval(sys.argv[1]) else 1)' "$1" ||
		fail "$2"
}

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

secs() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }

fsck_clean() { # what [--verify]
	local out=$work/fsck.json
	"${S[@]}" fsck ${2:-} --json > "$out" || { cat "$out"; fail "$1: fsck exit $?"; }
	jcheck "j['ok'] and j['problems'] == []" "$1: fsck found problems: $(cat "$out")" < "$out"
}

step "measure an import of $src1"
start=$(date +%s%N)
digest=$("${S[@]}" import "$src1" --name measure)
ms=$((($(date +%s%N) - start) / 1000000))
echo "$me: import took ${ms} ms"
"${S[@]}" rm measure
"${S[@]}" gc > /dev/null
[ -z "$(find "$root/objects" "$root/images" -type f)" ] || fail "gc left files"

step "$KILLS kills"
completed=0
for i in $(seq 1 "$KILLS"); do
	delay=$((RANDOM % (ms + 1)))
	"${S[@]}" import "$src1" --name victim > /dev/null 2>&1 &
	pid=$!
	pids=("$pid")
	sleep "$(secs "$delay")"
	kill -9 "$pid" 2>/dev/null || true
	set +e
	wait "$pid"
	rc=$?
	set -e
	pids=()
	[ $rc -eq 0 ] && completed=$((completed + 1))
	fsck_clean "kill $i after ${delay} ms (rc $rc)"
	# Start over: drop the name (if the import got that far) and gc.
	"${S[@]}" rm victim > /dev/null 2>&1 || true
	"${S[@]}" gc > /dev/null
	fsck_clean "gc after kill $i"
	echo "$me: kill $i after ${delay} ms: $([ $rc -eq 0 ] && echo completed || echo "killed (rc $rc)"); fsck clean"
done
[ $completed -lt "$KILLS" ] || fail "no kill landed mid-import"

step "a killed import, then the same import succeeds"
"${S[@]}" import "$src1" --name victim > /dev/null 2>&1 &
pid=$!
pids=("$pid")
sleep "$(secs $((ms / 2)))"
kill -9 "$pid" 2>/dev/null || true
wait "$pid" || true
pids=()
d=$("${S[@]}" import "$src1" --name victim)
[ "$d" = "$digest" ] || fail "digest $d after kills, $digest before"
[ -z "$(ls "$root/tmp")" ] || fail "tmp/ not empty: $(ls "$root/tmp")"
fsck_clean "final" --verify
"${S[@]}" inspect victim --json | jcheck "j['complete'] and j['digest'] == '$digest'" "inspect"

step "two imports at once while gc runs in a loop"
"${S[@]}" rm victim
"${S[@]}" gc > /dev/null
# gc in a loop from before the imports start until after they end: each
# gc waits for running imports and makes new ones wait.
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
[ "$("${S[@]}" inspect one --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')" = "$(cat "$work/one.out")" ] ||
	fail "name one"
"${S[@]}" inspect two > /dev/null || fail "name two"
fsck_clean "after concurrent imports" --verify
echo "$me: ok"
