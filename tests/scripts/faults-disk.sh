#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# Faults (issue 7): a store whose file system fills up during an import,
# a tag, an rm or an `ais sync`. The store is on a tmpfs of its own
# (size= and nr_inodes= limits, both changed with `mount -o remount`),
# holding a small "bystander" image.
#
#  1. debian-minbase into a store that has room for a fraction of it:
#     the import fails, exit 1, with one line that says "No space left
#     on device" and names the store; the store is exactly as before
#     (every file of objects/, images/, blobs/ and names.json compared,
#     every directory and every entry of the root listed; tmp/ empty);
#     fsck is clean; every file in objects/ has the fs-verity digest of
#     its name (`fsverity digest`). After a remount with room, the same
#     import succeeds and `fsck --verify` is clean.
#  2. Every point where an import writes: a small image imported with
#     just enough room for 0, 1, 2, ... more pages of data, then with
#     0, 1, 2, ... more inodes, until the import fits. Each failing
#     import must meet the same conditions as in 1 (docs/store.md: a
#     failed import leaves the store as it was, whatever step failed;
#     the import stages everything it writes before it moves anything
#     in, and takes back what it moved if a rename fails). Then the
#     import succeeds.
#  3. `tag`, then `rm` of that name, the same way (pages, then inodes):
#     each failure is one line naming the store, the store as before;
#     then it succeeds.
#  4. `ais sync` adding one image to an AIS of two, the same way, with
#     the AIS and RUN on the same tmpfs: each failure is one line, and
#     leaves the store, the AIS (every entry, every file's digest, every
#     symlink's target), RUN and the mount table as they were; then the
#     sync succeeds and the AIS lists the third image.
#
# Needs root (tmpfs, mounts) and fsverity (Debian package fsverity).
# Environment: CFS_BIN, CFS_SRC, CFS_TESTS, CFS_TEST_TMP, CFS_CORPUS.
set -euo pipefail

# shellcheck source=tests/scripts/lib.sh
. "$(dirname "$0")/lib.sh"
test_init faults-disk CFS_SRC
cs=$CFS_BIN/cfs-store

need_root tmpfs
need_tool python3 fsverity
need_exec "$cs"
corpus=$("$CFS_SRC/tests/scripts/need-corpus.sh")

fs=$work/fs
root=$fs/store
full=$root
S=("$cs" --root "$root")
mkdir -p "$fs"

# Data pages and inodes in use on the store's tmpfs.
used_pages() { echo $(($(stat -f -c '(%b - %f)' "$fs"))); }
used_inodes() { echo $(($(stat -f -c '(%c - %d)' "$fs"))); }
page=$(getconf PAGESIZE)

# The store: the entries of its root, every directory of objects/,
# images/, blobs/ and mounts/, every file with its content digest, and
# names.json.
snapshot() {
	local dirs=(objects images blobs)
	[ ! -d "$root/mounts" ] || dirs+=(mounts)
	(cd "$root" && ls -A
		find "${dirs[@]}" -type d | sort
		find "${dirs[@]}" -type f -print0 | sort -z | xargs -0r sha256sum
		cat names.json 2>/dev/null || true)
}

# Empty objects/XX directories (gc leaves them) go, so that an import
# has to make them again: a directory is one more thing to fail at.

# Every object is complete: its fs-verity digest is its name.
objects_complete() { # what
	local f n=0 bad=0 name got
	while IFS= read -r -d '' f; do
		name=${f#"$root/objects/"}
		name=${name/\//}
		got=$(fsverity digest "$f" | cut -d' ' -f1) || fail "$1: fsverity digest $f"
		[ "$got" = "sha256:$name" ] || {
			echo "$me: $1: object $f has digest $got" >&2
			bad=1
		}
		n=$((n + 1))
	done < <(find "$root/objects" -type f -print0)
	[ $bad -eq 0 ] || fail "$1: objects/ holds incomplete objects"
	echo "$n"
}

# failed_cleanly WHAT CMD RC: the cfs-store command CMD ("import",
# "tag", ...) exited RC for want of room: exit 1, one line, "No space
# left on device", naming what is full (a path below $full: the store,
# or for ais sync RUN beside it); nothing on stdout; tmp/ empty; the
# store as the snapshot in $work/before shows; fsck clean.
failed_cleanly() {
	local what=$1 cmd=$2 rc=$3
	[ "$rc" -eq 1 ] || fail "$what: exit $rc, want 1: $(cat "$work/err")"
	[ "$(wc -l <"$work/err")" -eq 1 ] || fail "$what: not one line: $(cat "$work/err")"
	grep -qi "no space left on device" "$work/err" || fail "$what: no 'No space left on device': $(cat "$work/err")"
	grep -q "^cfs-store: $cmd: " "$work/err" || fail "$what: not 'cfs-store: $cmd: ...': $(cat "$work/err")"
	grep -qF "$full" "$work/err" || fail "$what: the error does not name $full: $(cat "$work/err")"
	[ ! -s "$work/out" ] || fail "$what: printed something: $(cat "$work/out")"
	[ -z "$(ls -A "$root/tmp")" ] || fail "$what: tmp/ not empty: $(ls -A "$root/tmp")"
	snapshot >"$work/after"
	cmp -s "$work/before" "$work/after" ||
		fail "$what: the store changed: $(diff "$work/before" "$work/after" | head -20)"
	fsck_clean "$root" "$what"
}

# import_full WHAT SOURCE NAME: the import must fail for want of room,
# leaving the store exactly as the snapshot in $work/before shows.
import_full() {
	local what=$1 src=$2 name=$3 rc=0
	"${S[@]}" import "$src" --name "$name" >"$work/out" 2>"$work/err" || rc=$?
	[ $rc -ne 0 ] || return 1
	failed_cleanly "$what" import $rc
	"${S[@]}" inspect "$name" >/dev/null 2>&1 && fail "$what: the name $name exists"
	objects_complete "$what" >/dev/null
	echo "$me: $what: failed cleanly: $(cat "$work/err")"
	return 0
}

# sweep WHAT PREFIX UNDO CHECK ARGS...: `cfs-store ARGS...` with room
# for 0, 1, 2, ... more pages, until it succeeds, then (after UNDO, a
# command that takes its effect back) the same with 0, 1, 2, ... more
# inodes. Each failure must be clean (failed_cleanly, the error line
# starting "cfs-store: PREFIX: ") and pass CHECK (a command, "true" for
# none). Sets $swept to the number of failures.
sweep() {
	local what=$1 prefix=$2 undo=$3 check=$4 rc extra limit kind
	shift 4
	swept=0
	for kind in pages inodes; do
		snapshot >"$work/before"
		for extra in $(seq 0 64); do
			if [ $kind = pages ]; then
				limit="size=$((($(used_pages) + extra) * page / 1024))k"
			else
				limit="nr_inodes=$(($(used_inodes) + extra))"
			fi
			mount -o "remount,$limit" "$fs"
			rc=0
			"${S[@]}" "$@" >"$work/out" 2>"$work/err" || rc=$?
			mount -o remount,size=64m,nr_inodes=100000 "$fs"
			[ $rc -ne 0 ] || break
			failed_cleanly "$what, $extra more $kind" "$prefix" $rc
			$check "$what, $extra more $kind"
			echo "$me: $what, $extra more $kind: failed cleanly: $(cat "$work/err")"
			swept=$((swept + 1))
		done
		[ $rc -eq 0 ] || fail "$what: still failing with 64 more $kind"
		[ $kind = inodes ] || $undo
	done
}

tiny_image() { # DIR SEED N
	python3 "$CFS_SRC/tests/scripts/tiny-oci.py" "$@" --sizes 100,3000,9000 --dirs 4
}

tiny_image "$work/bystander" 100 20
tiny_image "$work/small" 7 6
tiny_image "$work/third" 9 5

step "1: debian-minbase into a store with room for a fraction of it"
mount -t tmpfs -o size=512m,mode=0755 faults-disk-store "$fs"
"${S[@]}" import "oci:$work/bystander" --name bystander >/dev/null
snapshot >"$work/before"
base=$(used_pages)
# debian-minbase's objects are ~100 MB: 24 MB more is a quarter of them.
mount -o remount,size=$(((base * page + 24 * 1024 * 1024) / 1024))k "$fs"
import_full "debian-minbase in $((base * page / 1024 + 24 * 1024)) KiB" "oci:$corpus/debian-minbase" big ||
	fail "debian-minbase fitted into $((base * page / 1024 + 24 * 1024)) KiB"
echo "$me: $(cat "$work/err")"
n=$(objects_complete "after the failed import")
echo "$me: exit 1, one line; store unchanged, fsck clean, $n objects complete"
mount -o remount,size=512m "$fs"
d=$("${S[@]}" import "oci:$corpus/debian-minbase" --name big) || fail "import with room failed"
"${S[@]}" inspect big --json | jcheck "j['complete'] and j['digest'] == '$d'" "inspect big"
fsck_clean "$root" "after the import with room" --verify
echo "$me: with room: imported $d, fsck --verify clean"
umount "$fs"

step "2: a small image, one more page or inode each time"
mount -t tmpfs -o size=64m,mode=0755 faults-disk-store "$fs"
"${S[@]}" import "oci:$work/bystander" --name bystander >/dev/null
snapshot >"$work/before"
base_pages=$(used_pages)
base_inodes=$(used_inodes)
# What the small import needs at most, measured (then undone).
"${S[@]}" import "oci:$work/small" --name small >/dev/null
need_pages=$(($(used_pages) - base_pages))
need_inodes=$(($(used_inodes) - base_inodes))
"${S[@]}" rm small
"${S[@]}" gc >/dev/null
snapshot | cmp -s "$work/before" - || fail "rm and gc did not restore the store"
echo "$me: the small import keeps $need_pages pages and $need_inodes inodes"
# Staging needs more than what stays (temporaries): go until it fits.
failed_pages=0
for extra in $(seq 0 $((need_pages * 3))); do
	mount -o remount,size=$(((base_pages + extra) * page / 1024))k "$fs"
	if ! import_full "$extra pages" "oci:$work/small" small; then
		echo "$me: fits with $extra more pages"
		break
	fi
	failed_pages=$((failed_pages + 1))
done
[ $failed_pages -ge "$need_pages" ] || fail "only $failed_pages page limits failed, the image keeps $need_pages"
"${S[@]}" inspect small --json | jcheck "j['complete']" "small after it fitted"
fsck_clean "$root" "pages: after it fitted" --verify
"${S[@]}" rm small
"${S[@]}" gc >/dev/null
mount -o remount,size=64m "$fs"
snapshot | cmp -s "$work/before" - || fail "rm and gc did not restore the store"
base_inodes=$(used_inodes)
failed_inodes=0
for extra in $(seq 0 $((need_inodes * 3))); do
	mount -o remount,nr_inodes=$((base_inodes + extra)) "$fs"
	if ! import_full "$extra inodes" "oci:$work/small" small; then
		echo "$me: fits with $extra more inodes"
		break
	fi
	failed_inodes=$((failed_inodes + 1))
done
[ $failed_inodes -ge "$need_inodes" ] || fail "only $failed_inodes inode limits failed, the image keeps $need_inodes"
"${S[@]}" inspect small --json | jcheck "j['complete']" "small after it fitted"
fsck_clean "$root" "inodes: after it fitted" --verify
mount -o remount,nr_inodes=100000 "$fs"
echo "$me: $failed_pages page limits and $failed_inodes inode limits failed cleanly"

step "3: tag and rm"
untag() { "${S[@]}" rm small-tag; }
retag() { "${S[@]}" tag small small-tag; }
sweep "tag" tag untag true tag small small-tag
"${S[@]}" inspect small-tag --json | jcheck "j['complete'] and 'small-tag' in j['names']" "small-tag after it fitted"
echo "$me: tag: $swept limits failed cleanly, then it fitted"
sweep "rm" rm retag true rm small-tag
"${S[@]}" inspect small-tag >/dev/null 2>&1 && fail "small-tag still there after rm"
echo "$me: rm: $swept limits failed cleanly, then it fitted"
fsck_clean "$root" "after tag and rm" --verify
umount "$fs"

step "4: ais sync adding an image"
mount -t tmpfs -o size=64m,nr_inodes=100000,mode=0755 faults-disk-store "$fs"
# RUN on the same tmpfs: making a mount point can fail too.
run=$fs/run
full=$fs
A=(--run "$run")
"${S[@]}" import "oci:$work/bystander" --name bystander >/dev/null
"${S[@]}" import "oci:$work/small" --name small >/dev/null
"${S[@]}" ais sync "${A[@]}" >/dev/null
"${S[@]}" import "oci:$work/third" --name third >/dev/null
# The AIS (every entry; files with their digests, symlinks with their
# targets), RUN, and the mounts below the work directory.
ais_snapshot() {
	(cd "$root/ais" && find . -printf '%y %p %l\n' | sort
		find . -type f -print0 | sort -z | xargs -0r sha256sum)
	ls -A "$run"
	findmnt -rn -o TARGET | grep "^$work/" | sort
}
ais_snapshot >"$work/ais-before"
mounts_unchanged() { # what
	ais_snapshot >"$work/ais-after"
	cmp -s "$work/ais-before" "$work/ais-after" ||
		fail "$1: the AIS, RUN or the mounts changed: $(diff "$work/ais-before" "$work/ais-after" | head -20)"
}
ais_names() {
	python3 -c 'import json,sys; print(" ".join(sorted(n for i in json.load(open(sys.argv[1])) for n in i["names"])))' \
		"$root/ais/overlay-images/images.json"
}
[ "$(ais_names)" = "localhost/bystander:latest localhost/small:latest" ] || fail "AIS before: $(ais_names)"
# Back to two images; only the lock files' tokens (which tell podman
# to reload) differ, and the snapshot is taken again.
undo_sync() {
	"${S[@]}" rm third
	"${S[@]}" ais sync "${A[@]}" >/dev/null
	"${S[@]}" tag "$third" third
	ais_snapshot >"$work/ais-undone"
	diff <(grep -v '\.lock$' "$work/ais-before") <(grep -v '\.lock$' "$work/ais-undone") ||
		fail "rm third and ais sync did not restore the AIS"
	mv "$work/ais-undone" "$work/ais-before"
}
third=$("${S[@]}" inspect third --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')
sweep "ais sync" "ais sync" undo_sync mounts_unchanged ais sync "${A[@]}"
[ "$(ais_names)" = "localhost/bystander:latest localhost/small:latest localhost/third:latest" ] ||
	fail "AIS after the sync fitted: $(ais_names)"
mountpoint -q "$run/$third" || fail "the third image is not mounted at $run/$third"
echo "$me: ais sync: $swept limits failed cleanly, then it fitted"
fsck_clean "$root" "after ais sync" --verify
"${S[@]}" ais unmount-all "${A[@]}" >/dev/null
echo "$me: ok"
