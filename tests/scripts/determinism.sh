#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# Same input, same bytes out. Converts the full test tree twice into fresh
# object directories, a copy created in reverse order (different readdir
# order and inode numbers), with 1 and several threads and without an
# object directory, and from its own composefs-dump(5); all images must be
# byte-identical and pass fsck.erofs, and the printed digests must be the
# fs-verity digest of the image file. A second conversion into a populated
# object directory must write no objects and leave the existing ones alone.
#
# Needs root (the test tree has device nodes and trusted.* xattrs).
# Environment: CFS_BIN, CFS_SRC, CFS_TEST_TMP (see tests/CMakeLists.txt).
set -euo pipefail

. "$(dirname "$0")/lib.sh"
test_init determinism CFS_SRC
scripts=$CFS_SRC/tests/scripts
oci2cfs=$CFS_BIN/oci2cfs

need_root "the test tree needs mknod and trusted.* xattrs"
need_exec "$oci2cfs"
need_tool python3 fsck.erofs fsverity cmp
cd "$work"

verity() {
	local out
	out=$(fsverity digest --compact -- "$1") || fail "fsverity digest $1 failed"
	echo "$out"
}

same_image() {
	cmp -- "$1" "$2" || fail "$2 differs from $1"
	echo "identical: $1 $2"
}

# snapshot DIR: one line per object: name, inode, size, mtime and ctime in ns.
snapshot() {
	(cd "$1" && find . -type f -printf '%p %i %s %T@ %C@\n' | LC_ALL=C sort)
}

step "building the test tree, and a copy in reverse creation order"
python3 "$scripts/make-test-tree.py" tree
python3 "$scripts/make-test-tree.py" --order reverse tree-rev

step "converting"
"$oci2cfs" --objects obj1 --print-digest dir:tree img1.cfs >digest1 ||
	fail "oci2cfs failed (run 1)"
"$oci2cfs" --objects obj2 --json dir:tree img2.cfs >report2.json ||
	fail "oci2cfs failed (run 2)"
"$oci2cfs" --objects obj3 --threads 1 dir:tree-rev img3.cfs ||
	fail "oci2cfs failed (reverse-order tree, 1 thread)"
"$oci2cfs" --threads 7 --dump tree.dump dir:tree-rev img4.cfs ||
	fail "oci2cfs failed (reverse-order tree, 7 threads, no object directory)"
"$oci2cfs" --dump tree2.dump dump:tree.dump img5.cfs ||
	fail "oci2cfs failed (dump source)"
"$oci2cfs" dir:tree - >img6.cfs || fail "oci2cfs failed (image on stdout)"

step "fsck.erofs"
for i in 1 2 3 4 5 6; do
	fsck.erofs "img$i.cfs" || fail "fsck.erofs rejects img$i.cfs"
done

step "images are byte-identical"
same_image img1.cfs img2.cfs # same tree, fresh object directories
same_image img1.cfs img3.cfs # reverse creation order
same_image img1.cfs img4.cfs # no object directory, more threads
same_image img1.cfs img5.cfs # from the tree's own dump
same_image img1.cfs img6.cfs # written to stdout
cmp tree.dump tree2.dump || fail "the dump of the dump differs from the dump"

step "printed digests are the fs-verity digest of the image"
want=$(verity img1.cfs)
[ "$(cat digest1)" = "$want" ] ||
	fail "--print-digest printed '$(cat digest1)', fsverity digest says '$want'"
[ "$(jget 'j["image_digest"]' <report2.json)" = "$want" ] ||
	fail "--json image_digest is $(jget 'j["image_digest"]' <report2.json), expected $want"
[ "$(jget 'j["image_size"]' <report2.json)" = "$(stat -c %s img2.cfs)" ] ||
	fail "--json image_size does not match the file size"
echo "digest $want"

step "object directories hold the same objects"
for d in obj2 obj3; do
	diff <(cd obj1 && find . | LC_ALL=C sort) <(cd "$d" && find . | LC_ALL=C sort) ||
		fail "obj1 and $d hold different objects"
done
nobj=$(find obj1 -type f | wc -l)
[ "$nobj" -gt 0 ] || fail "no objects written"
[ "$(jget 'j["objects"]["new"]' <report2.json)" -eq "$nobj" ] ||
	fail "objects.new is $(jget 'j["objects"]["new"]' <report2.json), $nobj objects exist"

step "converting again into a populated object directory"
snapshot obj1 >before
[ "$(wc -l <before)" -eq "$nobj" ] || fail "snapshot of obj1 is incomplete"
refs=$(jget 'j["objects"]["new"] + j["objects"]["reused"]' <report2.json)
refbytes=$(jget 'j["objects"]["new_bytes"] + j["objects"]["reused_bytes"]' <report2.json)
"$oci2cfs" --objects obj1 --json dir:tree img7.cfs >report7.json ||
	fail "oci2cfs failed (second conversion into obj1)"
"$oci2cfs" --objects obj1 --json dir:tree-rev img8.cfs >report8.json ||
	fail "oci2cfs failed (reverse tree into obj1)"
for r in report7.json report8.json; do
	[ "$(jget 'j["objects"]["new"]' <"$r")" -eq 0 ] ||
		fail "$r: objects.new is $(jget 'j["objects"]["new"]' <"$r"), expected 0"
	[ "$(jget 'j["objects"]["new_bytes"]' <"$r")" -eq 0 ] ||
		fail "$r: objects.new_bytes is not 0"
	[ "$(jget 'j["objects"]["reused"]' <"$r")" -eq "$refs" ] ||
		fail "$r: objects.reused is $(jget 'j["objects"]["reused"]' <"$r"), expected $refs"
	[ "$(jget 'j["objects"]["reused_bytes"]' <"$r")" -eq "$refbytes" ] ||
		fail "$r: objects.reused_bytes is $(jget 'j["objects"]["reused_bytes"]' <"$r"), expected $refbytes"
done
snapshot obj1 >after
diff before after || fail "existing objects were rewritten or touched (inode/size/mtime/ctime changed)"
same_image img1.cfs img7.cfs
same_image img1.cfs img8.cfs
fsck.erofs img7.cfs || fail "fsck.erofs rejects img7.cfs"

echo "$me: PASS ($nobj objects, image $(stat -c %s img1.cfs) bytes)"
