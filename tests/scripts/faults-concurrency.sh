#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# Faults (issue 7): everything a store does, at once, for DURATION
# seconds (default 60):
#
#  - four importers of overlapping Debian images (debian-minbase,
#    debian-python, debian-caps and debian-minbase-rebuilt share most of
#    their files), each alternating between its two images: import one
#    under its own name "iK-IMAGE" and the shared name "hot", then rm
#    its name of the other, so images keep losing their last name (gc
#    then takes them) while other importers are importing them again;
#    back to back, never pausing, so that their shared locks overlap all
#    the time;
#  - a gc loop: gc must not starve behind them (docs/store.md, locks:
#    an exclusive locker holds ROOT/gate.lock while it waits, and no new
#    shared locker gets past it). Asserted: no import that started more
#    than GC_MARGIN (2) seconds after a gc started ends before that gc
#    ends (gc waits for the imports running when it asked, not for
#    later ones);
#  - an fsck loop (plain fsck runs alongside imports): never a problem;
#  - two mount loops: mount a random one of the names that exist, wait
#    for the next gc (at most 10 s; it must keep a mounted image even if
#    its last name went), compare the mounted tree with the corpus'
#    expected listing of the image the mount record names (every fourth
#    round the whole tree with tree-listing.py, as tests/scripts/corpus.sh
#    does; else size and content of 300 random files), umount.
#
# Any failing command fails the test, except the one documented refusal
# a loop can meet: mounting a name another loop has just removed ("no
# such image in store"). At the end: gc ran at least twice and never
# waited for a later import; every import of an image printed the same
# digest; `fsck --verify` is clean; every name mounts, and each named
# image matches its expected listing.
#
# The store is on a tmpfs of its own (more interleavings per second than
# a disk). Needs root (mounts). Environment: CFS_BIN, CFS_SRC, CFS_TESTS,
# CFS_TEST_TMP, CFS_CORPUS; FAULTS_DURATION (seconds).
set -euo pipefail

# shellcheck source=tests/scripts/lib.sh
. "$(dirname "$0")/lib.sh"
test_init faults-concurrency CFS_SRC
cs=$CFS_BIN/cfs-store
DURATION=${FAULTS_DURATION:-60}
RANDOM=4711

need_root mounts
need_tool python3
need_exec "$cs"
corpus=$("$CFS_SRC/tests/scripts/need-corpus.sh")
listing=$CFS_SRC/tests/corpus/tree-listing.py
[ -f "$listing" ] || fail "no $listing"
images=(debian-minbase debian-python debian-caps debian-minbase-rebuilt)
for img in "${images[@]}"; do
	[ -f "$corpus/expected/$img.tsv" ] || fail "no $corpus/expected/$img.tsv"
done

mkdir -p "$work/fs" "$work/log"
mount -t tmpfs -o size=3g,mode=0755 faults-conc-store "$work/fs"
root=$work/fs/store
S=("$cs" --root "$root")

# A loop that fails writes why into log/NAME.failed and exits 1.
loop_fail() { # NAME what
	echo "$2" >"$work/log/$1.failed"
	exit 1
}
stopping() { [ -e "$work/stop" ] || compgen -G "$work/log/*.failed" >/dev/null; }

# Which corpus image a store image is: its metadata's source.
image_of() { # DIGEST
	python3 -c 'import json,os,sys; print(os.path.basename(json.load(open(sys.argv[1]))["source"].rstrip("/")))' \
		"$root/images/$1.json"
}

# The image a store mount at TARGET shows, from its record (mounts/<id>.json,
# id = the first 16 bytes of the SHA-256 of the target's real path).
mounted_digest() { # TARGET
	python3 -c 'import hashlib,json,os,sys
p = os.path.realpath(sys.argv[2])
rec = json.load(open(os.path.join(sys.argv[1], "mounts", hashlib.sha256(p.encode()).hexdigest()[:32] + ".json")))
assert rec["target"] == p, rec
print(rec["image"])' "$root" "$1"
}

# Compare the tree mounted at TARGET with the expected listing of IMAGE.
compare_listing() { # TARGET IMAGE OUT
	python3 "$listing" "$1" >"$3.tsv" && diff "$corpus/expected/$2.tsv" "$3.tsv" >"$3.diff"
}

# The quick version: size and SHA-256 of 300 random regular files of the
# expected listing (their objects read through the mount).
compare_sample() { # TARGET IMAGE OUT SEED
	python3 - "$1" "$corpus/expected/$2.tsv" "$4" >"$3.diff" <<'PY'
import hashlib, random, sys
top, tsv, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
files = [l.rstrip("\n").split("\t") for l in open(tsv) if "\tf\t" in l]
bad = 0
for row in random.Random(seed).sample(files, min(300, len(files))):
    path, size, want = row[0], int(row[5]), row[8]
    try:
        data = open(top + path, "rb").read()
    except OSError as e:
        print(f"{path}: {e}")
        bad += 1
        continue
    if len(data) != size or hashlib.sha256(data).hexdigest() != want:
        print(f"{path}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}, want {size} {want}")
        bad += 1
sys.exit(1 if bad else 0)
PY
}

importer() { # K IMAGE-A IMAGE-B
	local k=$1 n=0 img other t0
	local -a pair=("$2" "$3")
	while ! stopping; do
		img=${pair[$((n % 2))]}
		other=${pair[$(((n + 1) % 2))]}
		t0=$EPOCHREALTIME
		"${S[@]}" import "oci:$corpus/$img" --name "i$k-$img" --name hot \
			>"$work/log/imp$k.out" 2>"$work/log/imp$k.err" ||
			loop_fail "imp$k" "import $img (round $n): $(cat "$work/log/imp$k.err")"
		echo "$t0 $EPOCHREALTIME" >>"$work/log/imports.times"
		echo "$(cat "$work/log/imp$k.out")" >>"$work/log/digest.$img"
		if [ $n -gt 0 ]; then
			"${S[@]}" rm "i$k-$other" 2>"$work/log/imp$k.err" ||
				loop_fail "imp$k" "rm i$k-$other (round $n): $(cat "$work/log/imp$k.err")"
		fi
		n=$((n + 1))
	done
	echo "$n" >"$work/log/imp$k.count"
}

gc_loop() {
	local n=0 t0
	while ! stopping; do
		t0=$EPOCHREALTIME
		"${S[@]}" gc >"$work/log/gc.out" 2>"$work/log/gc.err" ||
			loop_fail gc "gc (round $n): $(cat "$work/log/gc.err")"
		echo "$t0 $EPOCHREALTIME" >>"$work/log/gc.times"
		n=$((n + 1))
		echo "$n" >"$work/log/gc.done"
		sleep 0.1
	done
	echo "$n" >"$work/log/gc.count"
}

# A plain fsck holds the lock shared and runs alongside imports: it must
# find no problem at any moment (an import's object that gc took would
# be healed by the next import of the same image before the end).
fsck_loop() {
	local n=0
	while ! stopping; do
		"${S[@]}" fsck --json >"$work/log/fsck.json" 2>"$work/log/fsck.err" ||
			loop_fail fsck "fsck (round $n): $(cat "$work/log/fsck.json" "$work/log/fsck.err" | head -c 2000)"
		n=$((n + 1))
		sleep 0.5
	done
	echo "$n" >"$work/log/fsck.count"
}

mounter() { # M SEED
	local m=$1 n=0 refused=0 full=0 name d img t=$work/mnt$1 e gcs
	local -a names
	RANDOM=$2
	mkdir -p "$t"
	while ! stopping; do
		# A name that exists now; an importer may remove it before
		# the mount resolves it.
		mapfile -t names < <(python3 -c 'import json,sys
try:
    print("\n".join(sorted(json.load(open(sys.argv[1]))["names"])))
except FileNotFoundError:
    pass' "$root/names.json")
		if [ ${#names[@]} -eq 0 ]; then
			sleep 0.2
			continue
		fi
		name=${names[$((RANDOM % ${#names[@]}))]}
		e=$work/log/mnt$m.err
		gcs=$(cat "$work/log/gc.done" 2>/dev/null || echo 0)
		if ! "${S[@]}" mount "$name" "$t" 2>"$e"; then
			grep -qx "cfs-store: mount: $name: no such image in store $root" "$e" ||
				loop_fail "mnt$m" "mount $name (round $n): $(cat "$e")"
			refused=$((refused + 1))
			n=$((n + 1))
			continue
		fi
		# Keep it mounted until a gc has run (at most 10 s), which
		# must leave the mounted image alone even if its last name went.
		for _ in $(seq 50); do
			[ "$(cat "$work/log/gc.done" 2>/dev/null || echo 0)" = "$gcs" ] && ! stopping || break
			sleep 0.2
		done
		d=$(mounted_digest "$t") || loop_fail "mnt$m" "no mount record of $t"
		img=$(image_of "$d") || loop_fail "mnt$m" "no metadata of mounted image $d"
		# Every fourth round the whole tree, else a sample of files.
		if [ $((n % 4)) -eq 3 ]; then
			compare_listing "$t" "$img" "$work/log/mnt$m" ||
				loop_fail "mnt$m" "$name (image $d, $img): mounted tree differs: $(head -5 "$work/log/mnt$m.diff")"
			full=$((full + 1))
		else
			compare_sample "$t" "$img" "$work/log/mnt$m" "$RANDOM" ||
				loop_fail "mnt$m" "$name (image $d, $img): mounted files differ: $(head -5 "$work/log/mnt$m.diff")"
		fi
		"${S[@]}" umount "$t" 2>"$e" || loop_fail "mnt$m" "umount $t ($name): $(cat "$e")"
		n=$((n + 1))
	done
	echo "$n $refused $full" >"$work/log/mnt$m.count"
}

step "importers, gc and mounts for $DURATION s"
# The loops, stopped at exit if the test ends first.
pids=()
stop_loops() {
	touch "$work/stop"
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
}
on_exit stop_loops
importer 1 debian-minbase debian-python &
pids+=($!)
importer 2 debian-caps debian-minbase-rebuilt &
pids+=($!)
importer 3 debian-python debian-caps &
pids+=($!)
importer 4 debian-minbase-rebuilt debian-minbase &
pids+=($!)
gc_loop &
pids+=($!)
fsck_loop &
pids+=($!)
mounter 1 11 &
pids+=($!)
mounter 2 22 &
pids+=($!)
end=$((SECONDS + DURATION))
while [ $SECONDS -lt "$end" ] && ! stopping; do
	sleep 1
done
touch "$work/stop"
rcs=0
for p in "${pids[@]}"; do wait "$p" || rcs=1; done
pids=()
for f in "$work"/log/*.failed; do
	[ -e "$f" ] || continue
	echo "$me: $(basename "$f" .failed): $(cat "$f")" >&2
	rcs=1
done
[ $rcs -eq 0 ] || fail "a loop failed"
for k in 1 2 3 4; do echo "$me: importer $k: $(cat "$work/log/imp$k.count") imports"; done
echo "$me: gc: $(cat "$work/log/gc.count") runs"
echo "$me: fsck: $(cat "$work/log/fsck.count") runs, all clean"
for m in 1 2; do
	read -r n refused full <"$work/log/mnt$m.count"
	echo "$me: mounter $m: $n rounds, $refused refused (name just removed), $full whole trees compared"
	# (On a loaded machine the first imports take long: few rounds.)
	[ $((n - refused)) -ge 1 ] || fail "mounter $m never mounted"
done
for k in 1 2 3 4; do
	[ "$(cat "$work/log/imp$k.count")" -ge 2 ] || fail "importer $k imported fewer than 2 times"
done
[ "$(cat "$work/log/gc.count")" -ge 2 ] || fail "gc ran fewer than 2 times"

step "gc never waited for an import that started after it"
# An exclusive locker takes the gate within GC_MARGIN seconds of its
# start (process start-up on a loaded machine); an import that starts
# later cannot get the shared lock before gc is done, and an import
# takes seconds after it has the lock: it ends after gc.
GC_MARGIN=2
python3 - "$work/log/gc.times" "$work/log/imports.times" "$GC_MARGIN" <<'PY' || fail "gc starved"
import sys
gcs = [tuple(map(float, l.split())) for l in open(sys.argv[1])]
imps = [tuple(map(float, l.split())) for l in open(sys.argv[2])]
margin = float(sys.argv[3])
bad, waits = 0, []
for g0, g1 in gcs:
    waits.append(g1 - g0)
    for i0, i1 in imps:
        if i0 > g0 + margin and i1 < g1:
            print(f"gc from {g0:.2f} to {g1:.2f} s waited for an import "
                  f"from {i0:.2f} to {i1:.2f} s, which started later")
            bad += 1
print(f"faults-concurrency: {len(gcs)} gc runs of at most {max(waits):.1f} s "
      f"(mean {sum(waits) / len(waits):.1f} s) beside {len(imps)} imports; "
      f"{bad} waited for a later import")
sys.exit(1 if bad else 0)
PY

step "every import of an image gave one digest"
declare -A want=()
for img in "${images[@]}"; do
	[ "$(sort -u "$work/log/digest.$img" | wc -l)" -eq 1 ] ||
		fail "$img imported as several digests: $(sort -u "$work/log/digest.$img")"
	want[$img]=$(head -1 "$work/log/digest.$img")
done

step "fsck --verify"
"${S[@]}" gc >/dev/null
fsck_clean "$root" "fsck --verify" --verify
[ -z "$(ls "$root/tmp")" ] || fail "tmp/ not empty: $(ls "$root/tmp")"

step "every name mounts; every named image matches its listing"
python3 -c 'import json,sys
for n, e in sorted(json.load(open(sys.argv[1]))["names"].items()):
    print(n, e["image"])' "$root/names.json" >"$work/names"
[ -s "$work/names" ] || fail "no names left"
grep -q "^hot " "$work/names" || fail "the name hot is gone"
declare -A checked=()
t=$work/final
mkdir -p "$t"
while read -r name d; do
	img=$(image_of "$d") || fail "$name: no metadata of its image $d"
	[ "${want[$img]:-}" = "$d" ] || fail "$name: image $d ($img), imports of $img gave ${want[$img]:-nothing}"
	"${S[@]}" mount "$name" "$t" 2>"$work/err" || fail "mount $name: $(cat "$work/err")"
	[ "$(mounted_digest "$t")" = "$d" ] || fail "$name: mounted $(mounted_digest "$t"), names.json says $d"
	if [ -z "${checked[$d]:-}" ]; then
		compare_listing "$t" "$img" "$work/final-$name" ||
			fail "$name ($img): mounted tree differs: $(head -5 "$work/final-$name.diff")"
		checked[$d]=1
		echo "$me: $name: $img ($(grep -c . "$work/final-$name.tsv") paths) matches"
	else
		echo "$me: $name: $img mounts (listing checked above)"
	fi
	"${S[@]}" umount "$t" 2>"$work/err" || fail "umount $name: $(cat "$work/err")"
done <"$work/names"
echo "$me: ok"
