#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# cfs-store mount/umount: read-only mounts by name and digest prefix read
# back the source and refuse writes; --writable keeps its changes in the
# store's upper dir (kept by umount, reused by the next mount, removed by
# --delete-upper) and leaves the image and the objects unchanged; gc keeps
# a mounted image that lost its last name and removes it after umount;
# --upper/--work and --digest are passed through; bad input (unknown
# name, missing target, a target already mounted, a wrong digest, a
# damaged image, upper and work on different file systems) gives exit 1,
# one line and no change to the mount table.
#
# Needs root (mount). Environment: CFS_BIN, CFS_SRC, CFS_TEST_TMP.
set -euo pipefail

. "$(dirname "$0")/lib.sh"
test_init store-mount CFS_SRC
cs=$CFS_BIN/cfs-store

need_root "mount"
need_exec "$cs"
need_tool python3 fsverity sha256sum mountpoint mount umount

root=$work/store
src=$work/src
mnt=$work/mnt
mnt2=$work/mnt2
tmpfs=$work/tmpfs
S=("$cs" --root "$root")

# The mounts of this test (mount point, type, source), not the whole
# table: other tests on the machine may mount meanwhile. Everything a
# failed mount could leave behind (the overlay at the target, an EROFS
# mount of a store image) names $work.
mountinfo() { awk '{ print $5, $9, $10 }' /proc/self/mountinfo | grep -F "$work" | sort || true; }
# Hashes of the store's images and objects, to prove them untouched.
hashes() {
	(cd "$root" && find images objects -type f -print0 | sort -z | xargs -0 sha256sum)
}
# Run cfs-store expecting exit 1, one line on stderr matching PATTERN and
# an unchanged mount table.
must_fail() { # PATTERN ARGS...
	local pat=$1 rc before
	shift
	before=$(mountinfo)
	set +e
	"${S[@]}" "$@" >"$work/out" 2>"$work/err"
	rc=$?
	set -e
	[ $rc -eq 1 ] || fail "'$*': exit $rc, want 1 ($(cat "$work/err"))"
	[ "$(wc -l <"$work/err")" -eq 1 ] || fail "'$*': not one line: $(cat "$work/err")"
	grep -q "^cfs-store: .*$pat" "$work/err" || fail "'$*': error line: $(cat "$work/err")"
	[ "$(mountinfo)" = "$before" ] ||
		fail "'$*': the mount table changed:"$'\n'"$(diff <(echo "$before") <(mountinfo) || true)"
}
is_overlay() { [ "$(stat -f -c %T "$1")" = overlayfs ] || fail "$1: not an overlay mount"; }

mkdir -p "$src/dir/sub" "$mnt" "$mnt2"
echo hello >"$src/hello"
head -c 100000 /dev/urandom >"$src/dir/big"
printf 'small\n' >"$src/dir/sub/small"
ln -s ../hello "$src/dir/link"
chmod 0640 "$src/dir/big"

python3 "$CFS_SRC/tests/oci/make-fixtures.py" "$work/fx" >/dev/null

step "import"
d=$("${S[@]}" import "dir:$src" --name base)
dx=$("${S[@]}" import "oci:$work/fx/xattrs" --name xa)
img=$root/images/$d.cfs

step "usage"
for args in "mount base" "mount base $mnt extra" "mount base $mnt --writable --upper $work/u --work $work/w" \
	"mount base $mnt --upper $work/u" "mount base $mnt --verity maybe" "mount base $mnt --digest abc" \
	"umount" "umount $mnt --writable" "mount base $mnt --delete-upper"; do
	set +e
	# shellcheck disable=SC2086
	"${S[@]}" $args >/dev/null 2>"$work/err"
	rc=$?
	set -e
	[ $rc -eq 2 ] || fail "'$args': exit $rc, want 2"
	grep -q "Try 'cfs-store --help'" "$work/err" || fail "'$args': no Try line"
done

step "read-only by name"
before=$(hashes)
"${S[@]}" mount base "$mnt"
is_overlay "$mnt"
compare_tree "$src" "$mnt"
[ -f "$root/mounts/$(printf %s "$(realpath "$mnt")" | sha256sum | cut -c1-32).json" ] ||
	fail "no mount record"
if echo x 2>/dev/null >"$mnt/new"; then fail "read-only mount took a write"; fi
if rm -f "$mnt/hello" 2>/dev/null; then fail "read-only mount took an unlink"; fi
"${S[@]}" umount "$mnt"
mountpoint -q "$mnt" && fail "still mounted after umount"
[ -z "$(ls "$root/mounts")" ] || fail "mounts/ not empty after umount: $(ls "$root/mounts")"

step "read-only by digest prefix, other image"
"${S[@]}" mount "${d:0:12}" "$mnt"
compare_tree "$src" "$mnt"
"${S[@]}" umount "$mnt"
"${S[@]}" mount "sha256:${dx:0:10}" "$mnt"
[ -n "$(ls -A "$mnt")" ] || fail "xattrs image mounted empty"
"${S[@]}" umount "$mnt"

step "--writable"
"${S[@]}" mount base "$mnt" --writable
id=$(printf %s "$(realpath "$mnt")" | sha256sum | cut -c1-32)
upper=$root/mounts/$id/upper
[ -d "$upper" ] && [ -d "$root/mounts/$id/work" ] || fail "no upper/work under mounts/"
echo new >"$mnt/new"
echo more >>"$mnt/hello"
rm "$mnt/dir/sub/small"
chmod 0600 "$mnt/dir/big"
[ "$(cat "$mnt/new")" = new ] && [ "$(tail -1 "$mnt/hello")" = more ] || fail "writes not visible"
[ ! -e "$mnt/dir/sub/small" ] || fail "delete not visible"
[ "$(stat -c %a "$mnt/dir/big")" = 600 ] || fail "chmod not visible"
[ -f "$upper/new" ] && [ -f "$upper/hello" ] || fail "upper dir lacks the writes"
[ -c "$upper/dir/sub/small" ] || fail "upper dir lacks the whiteout"
"${S[@]}" fsck --verify --json >"$work/fsck.json" || fail "fsck with a writable mount: $(cat "$work/fsck.json")"
[ "$(hashes)" = "$before" ] || fail "the image or objects changed"
"${S[@]}" umount "$mnt"
[ -f "$upper/new" ] || fail "umount did not keep the upper dir"
[ ! -e "$root/mounts/$id.json" ] || fail "record left after umount"

step "--writable again: earlier changes"
"${S[@]}" mount base "$mnt" --writable
[ "$(cat "$mnt/new")" = new ] && [ ! -e "$mnt/dir/sub/small" ] || fail "remount lost the changes"
"${S[@]}" umount "$mnt" --delete-upper
[ ! -e "$root/mounts/$id" ] || fail "--delete-upper left mounts/$id"
"${S[@]}" mount base "$mnt" --writable
[ ! -e "$mnt/new" ] && [ -f "$mnt/dir/sub/small" ] || fail "deleted upper dir came back"
"${S[@]}" umount "$mnt" --delete-upper
[ "$(hashes)" = "$before" ] || fail "the image or objects changed"

step "--upper/--work"
mkdir -p "$work/u" "$work/w"
"${S[@]}" mount base "$mnt" --upper "$work/u" --work "$work/w"
echo mine >"$mnt/mine"
[ -f "$work/u/mine" ] || fail "write not in the given upper dir"
"${S[@]}" umount "$mnt" --delete-upper
[ -f "$work/u/mine" ] || fail "umount deleted a caller's upper dir"

step "--digest"
want=$(fsverity digest "$img" | cut -d' ' -f1)
[ "$want" = "sha256:$d" ] || fail "fsverity digest $want is not the image's name"
"${S[@]}" mount base "$mnt" --digest "${want#sha256:}"
"${S[@]}" umount "$mnt"
"${S[@]}" mount base "$mnt" --digest "$want" --verity off
"${S[@]}" umount "$mnt"
bad=$(printf '%064d' 0)
must_fail "fs-verity digest" mount base "$mnt" --digest "$bad"
[ -z "$(ls "$root/mounts")" ] || fail "failed mount left a record"

step "gc keeps a mounted image"
"${S[@]}" mount xa "$mnt"
"${S[@]}" rm xa
"${S[@]}" gc >/dev/null
[ -f "$root/images/$dx.cfs" ] || fail "gc removed a mounted image"
ls -A "$mnt" >/dev/null
"${S[@]}" fsck --verify >/dev/null || fail "fsck with an unnamed mounted image"
"${S[@]}" umount "$mnt"
"${S[@]}" gc >/dev/null
[ ! -e "$root/images/$dx.cfs" ] || fail "gc kept an unmounted unnamed image"
# A stale record (target no longer mounted) keeps nothing either.
dx=$("${S[@]}" import "oci:$work/fx/xattrs")
"${S[@]}" mount "$dx" "$mnt"
umount "$mnt"
"${S[@]}" gc >/dev/null
[ ! -e "$root/images/$dx.cfs" ] || fail "a stale record kept an image"
"${S[@]}" umount "$mnt" # drops the stale record
[ -z "$(ls "$root/mounts")" ] || fail "stale record left"

step "bad input"
must_fail "nosuch: no such image" mount nosuch "$mnt"
must_fail "target $work/none" mount base "$work/none"
"${S[@]}" mount base "$mnt"
must_fail "already a mount point" mount base "$mnt"
must_fail "already a mount point" mount base "$mnt" --writable
is_overlay "$mnt"
compare_tree "$src" "$mnt"
"${S[@]}" umount "$mnt"
must_fail "not mounted from store" umount "$mnt"
must_fail "not mounted from store" umount "$mnt2"
mkdir -p "$tmpfs"
mount -t tmpfs tmpfs "$tmpfs"
mkdir "$tmpfs/u"
must_fail "" mount base "$mnt" --upper "$tmpfs/u" --work "$work/w"
umount "$tmpfs"
[ -z "$(ls "$root/mounts")" ] || fail "failed mounts left records: $(ls "$root/mounts")"
# A damaged image: bytes in the middle of its metadata overwritten.
db=$("${S[@]}" import "oci:$work/fx/hardlinks" --name broken)
size=$(stat -c %s "$root/images/$db.cfs")
head -c $((size - 1024 - 128)) /dev/zero | tr '\0' '\377' |
	dd of="$root/images/$db.cfs" bs=1 seek=1152 conv=notrunc status=none
must_fail "broken: store .*images/$db.cfs" mount broken "$mnt"
must_fail "broken: store .*images/$db.cfs" mount broken "$mnt" --writable
[ -z "$(ls "$root/mounts")" ] || fail "failed mounts left records: $(ls "$root/mounts")"
"${S[@]}" fsck --repair >/dev/null || fail "repair"
"${S[@]}" fsck --verify >/dev/null || fail "fsck at the end"
[ "$(hashes | grep -c "images/$d.cfs")" -eq 1 ] || fail "base image gone"
step "a corrupt object: fsck names its image, repair marks it broken"
obj=$(find "$root/objects" -type f -size +50k | head -1)
[ -n "$obj" ] || fail "no big object"
printf 'X' | dd of="$obj" bs=1 seek=777 conv=notrunc status=none
"${S[@]}" fsck --verify --json >"$work/f.json" && fail "fsck --verify missed a bit flip"
python3 - "$work/f.json" "images/$d.cfs" "${obj#"$root"/}" <<'EOF' || fail "fsck --verify: $(cat "$work/f.json")"
import json, sys
j = json.load(open(sys.argv[1]))
kinds = {(p["kind"], p["path"]) for p in j["problems"]}
assert ("corrupt-object", sys.argv[3]) in kinds, kinds
assert ("corrupt-object", sys.argv[2]) in kinds, kinds
EOF
"${S[@]}" fsck --verify --repair >/dev/null || fail "repair: not everything repaired"
[ ! -e "$obj" ] || fail "repair kept the corrupt object"
[ -e "$root/images/$d.cfs" ] || fail "repair removed the image"
"${S[@]}" inspect base --json | jcheck 'j["broken"]' "the image is not marked broken"
"${S[@]}" list | grep -q "^${d:0:12} .*(broken" || fail "list does not say broken"
"${S[@]}" fsck --verify >"$work/out" || fail "fsck after repair: $(cat "$work/out")"
grep -q "1 images broken by a repair" "$work/out" || fail "fsck does not count the broken image: $(cat "$work/out")"
must_fail "image ${d:0:12} is broken: fsck --repair removed its object objects/${obj#"$root/objects/"} .*import the image again" mount base "$mnt"
"${S[@]}" import "dir:$src" --name base >/dev/null
[ -e "$obj" ] || fail "the re-import did not restore the object"
"${S[@]}" inspect base --json | jcheck 'not j["broken"]' "still broken after the re-import"
"${S[@]}" mount base "$mnt"
compare_tree "$src" "$mnt"
"${S[@]}" umount "$mnt"
"${S[@]}" fsck --verify >/dev/null || fail "fsck after the restore"
echo "$me: ok"
