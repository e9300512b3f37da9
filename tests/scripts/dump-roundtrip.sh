#!/bin/bash
# Dump round trip through the image reader: a tree with every file type is
# converted with --dump; the image is read back (cfs: source) and dumped
# again; the dump is converted back (dump: source). Dumps and images must
# be identical at every step, and a damaged image must be refused cleanly.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
test_init dump-roundtrip CFS_SRC
oci2cfs="$CFS_BIN/oci2cfs"
need_root "the test tree has device nodes, owners and trusted.* xattrs"
need_exec "$oci2cfs"
need_tool python3

python3 "$CFS_SRC/tests/scripts/make-test-tree.py" "$work/src" > /dev/null
"$oci2cfs" --dump "$work/d1" "dir:$work/src" "$work/i1.cfs"
"$oci2cfs" --dump "$work/d2" "cfs:$work/i1.cfs" "$work/i2.cfs"
"$oci2cfs" --dump "$work/d3" "dump:$work/d1" "$work/i3.cfs"
cmp "$work/d1" "$work/d2" ||
	fail "dump of the image read back differs:"$'\n'"$(diff "$work/d1" "$work/d2" | head || true)"
cmp "$work/d1" "$work/d3" || fail "dump of the dump differs"
cmp "$work/i1.cfs" "$work/i2.cfs" || fail "image rewritten from the reader differs"
cmp "$work/i1.cfs" "$work/i3.cfs" || fail "image from the dump differs"
lines=$(wc -l < "$work/d1")
[ "$lines" -gt 5000 ] || fail "dump has only $lines lines"
grep -q ' @100' "$work/d1" || fail "no hardlink lines in the dump"

# A truncated image is an error with one line naming the image, not a crash.
head -c 5000 "$work/i1.cfs" > "$work/cut.cfs"
if "$oci2cfs" --dump "$work/d4" "cfs:$work/cut.cfs" "$work/i4.cfs" 2> "$work/err"; then
	fail "truncated image accepted"
fi
{ [ "$(wc -l < "$work/err")" -eq 1 ] && grep -q "cfs:$work/cut.cfs" "$work/err"; } ||
	fail "unexpected error output:"$'\n'"$(cat "$work/err")"
[ ! -e "$work/i4.cfs" ] || fail "output left behind"
echo "$me: ok ($lines dump lines, identical dumps and images)"
