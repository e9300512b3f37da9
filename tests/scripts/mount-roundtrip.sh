#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# Kernel round trip: build the full test tree, convert it with oci2cfs,
# check the image with fsck.erofs, mount it the way composefs does (EROFS
# file-backed mount + overlayfs with the object directory as a data-only
# lower layer) and compare the mounted tree with the source, metadata,
# xattrs, contents and hardlinks included. Also checks that every object
# is named by its fs-verity digest, and that the comparison does fail when
# the source no longer matches.
#
# Needs root (mknod, trusted.* xattrs, mount).
# Environment: CFS_BIN, CFS_SRC, CFS_TEST_TMP (see tests/CMakeLists.txt).
set -euo pipefail

. "$(dirname "$0")/lib.sh"
test_init mount-roundtrip CFS_SRC
scripts=$CFS_SRC/tests/scripts
oci2cfs=$CFS_BIN/oci2cfs

need_root "mknod, trusted.* xattrs, mount"
need_exec "$oci2cfs"
need_tool python3 fsck.erofs fsverity mount umount mountpoint

src=$work/src
objects=$work/objects
image=$work/img.cfs
emnt=$work/erofs
omnt=$work/merged

# overlayfs takes ':' and ',' as separators in lowerdir=.
case $work in
*[,:]*) fail "scratch path $work contains ':' or ','; overlayfs cannot take it" ;;
esac

step "building the test tree"
python3 "$scripts/make-test-tree.py" "$src"

step "converting"
"$oci2cfs" --objects "$objects" --json "dir:$src" "$image" >"$work/report.json" ||
	fail "oci2cfs failed on the test tree"
[ -s "$image" ] || fail "no image written"

step "fsck.erofs"
fsck.erofs "$image" || fail "fsck.erofs rejects the image"

step "objects are named by their fs-verity digest"
# Layout: objects/XX/<62 hex>, nothing else (no temporary files).
stray=$(find "$objects" -regextype posix-extended -mindepth 1 \
	! \( -type d -regex '.*/[0-9a-f]{2}' \) \
	! \( -type f -regex '.*/[0-9a-f]{2}/[0-9a-f]{62}' \) \
	-print)
[ -z "$stray" ] || fail "unexpected entries in the object directory:"$'\n'"$stray"
mapfile -t objs < <(cd "$objects" && find . -type f | sort)
nobjs=${#objs[@]}
[ "$nobjs" -gt 0 ] || fail "no objects were written"
expected_new=$(jget 'j["objects"]["new"]' <"$work/report.json")
[ "$nobjs" -eq "$expected_new" ] ||
	fail "$nobjs object files, but the report says objects.new=$expected_new"
(cd "$objects" && fsverity digest -- "${objs[@]}") >"$work/digests" ||
	fail "fsverity digest failed on the objects"
[ "$(wc -l <"$work/digests")" -eq "$nobjs" ] ||
	fail "fsverity digest printed $(wc -l <"$work/digests") lines for $nobjs objects"
bad=0
while read -r digest path; do
	name=${path#./}
	name=${name/\//}
	if [ "sha256:$name" != "$digest" ]; then
		echo "$me: object $path has fs-verity digest $digest" >&2
		bad=$((bad + 1))
	fi
done <"$work/digests"
[ "$bad" -eq 0 ] || fail "$bad object(s) not named by their fs-verity digest"
echo "$nobjs objects checked"

step "treecompare self-check"
python3 "$scripts/treecompare.py" --self-check "$work/selfcheck" ||
	fail "treecompare.py does not detect differences it must detect"
rm -rf "$work/selfcheck"

step "mounting"
mkdir "$emnt" "$omnt"
mount_composefs "$image" "$objects" "$emnt" "$omnt" ||
	fail "mounting the image (EROFS and overlay) failed"

step "comparing the source with the mounted image"
python3 "$scripts/treecompare.py" "$src" "$omnt" ||
	fail "the mounted image differs from the source (lines above)"

step "a changed source must not compare equal"
# One nanosecond on one file deep in the tree, and one xattr byte.
victim=$src/deep/l001/l002/l003
python3 - "$victim" "$src/files/dup-a" <<'EOF'
import os, sys
st = os.lstat(sys.argv[1])
os.utime(sys.argv[1], ns=(st.st_atime_ns, st.st_mtime_ns + 1), follow_symlinks=False)
os.setxattr(sys.argv[2], "user.shared", b"one value on many inodez")
EOF
rc=0
python3 "$scripts/treecompare.py" "$src" "$omnt" >"$work/negative.out" || rc=$?
cat "$work/negative.out"
[ "$rc" -eq 1 ] || fail "treecompare exited $rc on a changed source, expected 1"
grep -q '^DIFF /deep/l001/l002/l003: mtime (nanoseconds)' "$work/negative.out" ||
	fail "the changed mtime was not reported"
grep -q '^DIFF /files/dup-a: xattr user.shared: value' "$work/negative.out" ||
	fail "the changed xattr was not reported"
[ "$(grep -c '^DIFF ' "$work/negative.out")" -eq 2 ] ||
	fail "expected exactly 2 differences"

echo "$me: PASS"
