#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# The OCI fixtures of tests/oci/make-fixtures.py, converted with oci2cfs.
#
# Good fixtures: the conversion succeeds (silently, or with the one warning
# about dropped xattrs the fixture expects, counted by --json as
# xattrs_dropped), fsck.erofs accepts the image, its digest
# (--print-digest, checked against fsverity) is the one recorded in
# tests/oci/expected-digests.txt, a second conversion with one thread gives
# the same bytes, and the mounted image (EROFS + overlayfs over the object
# directory, as composefs mounts it) lists exactly the tree the generator
# derived from the layers' entries, nanosecond mtimes included.
#
# Should-fail fixtures: exit status 1, nothing on stdout, one line on
# stderr, "oci2cfs: SOURCE: ..." with the layer digest and the tar path or
# offset the generator expects, no output image or temporary file left,
# and an object directory that holds only complete objects, each named by
# its fs-verity digest.
#
# Needs root (mount). Environment: CFS_BIN, CFS_SRC, CFS_TEST_TMP (see
# tests/CMakeLists.txt).
set -euo pipefail

. "$(dirname "$0")/lib.sh"
test_init oci-fixtures CFS_SRC
oci2cfs=$CFS_BIN/oci2cfs
generator=$CFS_SRC/tests/oci/make-fixtures.py
digests=$CFS_SRC/tests/oci/expected-digests.txt
tree_listing=$CFS_SRC/tests/corpus/tree-listing.py

need_root "mount"
need_exec "$oci2cfs"
[ -f "$tree_listing" ] || fail "$tree_listing: not found"
need_tool python3 tar zstd fsck.erofs fsverity mount umount mountpoint

meta=$work/meta
root=$work/root
cd "$work"
mkdir "$meta" "$root" out fail

failures=0
bad() {
	echo "FAIL $*"
	failures=$((failures + 1))
}

# run NAME CMD...: run with stdout/stderr in NAME.out/NAME.err, status in $rc.
run() {
	local name=$1
	shift
	rc=0
	"$@" >"$name.out" 2>"$name.err" || rc=$?
}

# check_objects WHAT: every file of the object directory is XX/<62 hex>
# named by its fs-verity digest; nothing else is there.
check_objects() {
	local what=$1 f rel got ok=1
	[ -d objects ] || return 0
	while IFS= read -r -d '' f; do
		rel=${f#objects/}
		if [ -d "$f" ] && [[ "$rel" =~ ^[0-9a-f]{2}$ ]]; then
			continue
		fi
		if ! { [ -f "$f" ] && [ ! -L "$f" ] && [[ "$rel" =~ ^[0-9a-f]{2}/[0-9a-f]{62}$ ]]; }; then
			bad "$what: unexpected entry in the object directory: $rel"
			ok=0
			continue
		fi
		got=$(fsverity digest --compact "$f")
		if [ "$got" != "${rel%%/*}${rel#*/}" ]; then
			bad "$what: object $rel has fs-verity digest $got"
			ok=0
		fi
	done < <(find objects -mindepth 1 -print0)
	[ "$ok" -eq 1 ]
}

step "generating the fixtures"
if ! python3 "$generator" fixtures >generate.log 2>&1; then
	cat generate.log
	fail "$generator failed"
fi
[ -s fixtures/cases.tsv ] || fail "the generator wrote no cases.tsv"

# expected-digests.txt and the good fixtures name the same set.
awk '!/^#/ && NF { print $1 }' "$digests" | LC_ALL=C sort >want-names
awk -F'\t' '$1 == "good" { print $2 }' fixtures/cases.tsv | LC_ALL=C sort >good-names
if ! diff -u want-names good-names >names.diff; then
	bad "expected-digests.txt and the good fixtures differ in names:"
	cat names.diff
fi

good_case() {
	local name=$1 source=$2 dropped=${3:-0} img=out/$1.cfs digest want before=$failures
	local warning="oci2cfs: warning: $source: dropped $dropped user.* xattrs of symlinks, devices or fifos"
	run conv "$oci2cfs" --objects objects --print-digest "$source" "$img"
	if [ "$rc" -ne 0 ]; then
		bad "$name: conversion failed (exit $rc): $(cat conv.err)"
		return
	fi
	if [ "$dropped" -eq 0 ]; then
		[ ! -s conv.err ] || bad "$name: conversion wrote to stderr: $(cat conv.err)"
	elif [ "$(wc -l <conv.err)" -ne 1 ] || [[ "$(cat conv.err)" != "$warning "* ]]; then
		bad "$name: expected one line on stderr, '$warning ...', got: $(cat conv.err)"
	fi
	digest=$(cat conv.out)
	[ "$digest" = "$(fsverity digest --compact "$img")" ] ||
		bad "$name: --print-digest printed '$digest', fsverity says $(fsverity digest --compact "$img")"
	want=$(awk -v n="$name" '$1 == n { print $2 }' "$digests")
	[ "$digest" = "$want" ] ||
		bad "$name: image digest $digest, expected-digests.txt says '${want}' (if the change is meant: \"$name $digest\")"
	fsck.erofs "$img" >fsck.log 2>&1 || bad "$name: fsck.erofs: $(tail -5 fsck.log)"
	run conv1 "$oci2cfs" --threads 1 --json --objects objects "$source" "out/$name.again.cfs"
	if [ "$rc" -ne 0 ]; then
		bad "$name: second conversion (--threads 1) failed: $(cat conv1.err)"
	else
		cmp -s "$img" "out/$name.again.cfs" || bad "$name: a second conversion gave other bytes"
		want=$(jget 'j["xattrs_dropped"]' <conv1.out) ||
			want="(no report)"
		[ "$want" = "$dropped" ] || bad "$name: --json says xattrs_dropped $want, expected $dropped"
	fi

	if ! mount_composefs "$img" "$work/objects" "$meta" "$root" 2>mount.err; then
		bad "$name: $(cat mount.err)"
		return
	fi
	python3 "$tree_listing" "$root" >"out/$name.tsv" || bad "$name: tree-listing.py failed"
	if ! diff -u "fixtures/expected/$name.tsv" "out/$name.tsv" >"out/$name.diff"; then
		bad "$name: the mounted tree differs from the fixture's (- expected, + mounted):"
		head -40 "out/$name.diff"
	fi
	if ! python3 - "$root" "fixtures/expected/$name.mtime-ns" >"out/$name.ns" <<'EOF'; then
import os, sys
root, want = sys.argv[1], sys.argv[2]
bad = 0
for line in open(want):
    path, ns = line.rstrip("\n").split("\t")
    # undo tree-listing.py's escaping: printable ASCII and \xNN
    raw = path.encode().decode("unicode_escape").encode("latin-1")
    got = os.lstat(os.fsencode(root) + (raw if raw != b"/" else b"")).st_mtime_ns
    if got != int(ns):
        print("%s: mtime %d ns, expected %s" % (path, got, ns))
        bad = 1
sys.exit(bad)
EOF
		bad "$name: nanosecond mtimes differ:"
		head -20 "out/$name.ns"
	fi
	umount "$root"
	umount "$meta"
	[ "$failures" -ne "$before" ] || echo "ok   $name ($(($(wc -l <"out/$name.tsv") - 1)) paths, $digest)"
}

fail_case() {
	local name=$1 source=$2 outdir=fail/$1 s line rest before=$failures
	shift 2
	mkdir "$outdir"
	run conv "$oci2cfs" --objects objects "$source" "$outdir/image.cfs"
	line=$(head -n1 conv.err)
	if [ "$rc" -ne 1 ]; then
		bad "$name: exit $rc, expected 1 (stderr: $(cat conv.err))"
		return
	fi
	[ ! -s conv.out ] || bad "$name: wrote to stdout: $(cat conv.out)"
	[ "$(wc -l <conv.err)" -eq 1 ] ||
		bad "$name: expected one line on stderr, got:"$'\n'"$(cat conv.err)"
	[[ "$line" == "oci2cfs: $source: "* ]] ||
		bad "$name: the message does not start with 'oci2cfs: $source: ': $line"
	rest=${line#"oci2cfs: $source: "}
	[[ "$rest" != *"$source"* ]] || bad "$name: the message names the source twice: $line"
	for s in "$@"; do
		[[ "$line" == *"$s"* ]] || bad "$name: the message lacks \"$s\": $line"
	done
	[ -z "$(ls -A "$outdir")" ] || bad "$name: left in the output directory: $(ls -A "$outdir")"
	check_objects "$name" || true
	[ "$failures" -ne "$before" ] || echo "ok   $name: $line"
}

step "good fixtures"
# fd 3: the commands in the loop must not read the list
while IFS=$'\t' read -r -u 3 kind name skind rel rest; do
	[ "$kind" = good ] || continue
	good_case "$name" "$skind:$work/fixtures/$rel" "$rest"
done 3<fixtures/cases.tsv
check_objects "good fixtures" || true

step "should-fail fixtures"
while IFS=$'\t' read -r -u 3 -a f; do
	[ "${f[0]}" = fail ] || continue
	fail_case "${f[1]}" "${f[2]}:$work/fixtures/${f[3]}" "${f[@]:4}"
done 3<fixtures/cases.tsv

if [ "$failures" -ne 0 ]; then
	fail "$failures failure(s)"
fi
echo "$me: PASS"
