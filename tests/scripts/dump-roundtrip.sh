#!/bin/bash
# Dump round trip through the image reader: a tree with every file type is
# converted with --dump; the image is read back (cfs: source) and dumped
# again; the dump is converted back (dump: source). Dumps and images must
# be identical at every step, and a damaged image must be refused cleanly.
set -euo pipefail
tmp=$(mktemp -d "$CFS_TEST_TMP/dump-roundtrip.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
oci2cfs="$CFS_BIN/oci2cfs"

python3 "$CFS_SRC/tests/scripts/make-test-tree.py" "$tmp/src" > /dev/null
"$oci2cfs" --dump "$tmp/d1" "dir:$tmp/src" "$tmp/i1.cfs"
"$oci2cfs" --dump "$tmp/d2" "cfs:$tmp/i1.cfs" "$tmp/i2.cfs"
"$oci2cfs" --dump "$tmp/d3" "dump:$tmp/d1" "$tmp/i3.cfs"
cmp "$tmp/d1" "$tmp/d2" || { echo "FAIL: dump of the image read back differs"; diff "$tmp/d1" "$tmp/d2" | head; exit 1; }
cmp "$tmp/d1" "$tmp/d3" || { echo "FAIL: dump of the dump differs"; exit 1; }
cmp "$tmp/i1.cfs" "$tmp/i2.cfs" || { echo "FAIL: image rewritten from the reader differs"; exit 1; }
cmp "$tmp/i1.cfs" "$tmp/i3.cfs" || { echo "FAIL: image from the dump differs"; exit 1; }
lines=$(wc -l < "$tmp/d1")
[ "$lines" -gt 5000 ] || { echo "FAIL: dump has only $lines lines"; exit 1; }
grep -q ' @100' "$tmp/d1" || { echo "FAIL: no hardlink lines in the dump"; exit 1; }

# A truncated image is an error with one line naming the image, not a crash.
head -c 5000 "$tmp/i1.cfs" > "$tmp/cut.cfs"
if "$oci2cfs" --dump "$tmp/d4" "cfs:$tmp/cut.cfs" "$tmp/i4.cfs" 2> "$tmp/err"; then
	echo "FAIL: truncated image accepted"; exit 1
fi
[ "$(wc -l < "$tmp/err")" -eq 1 ] && grep -q "cfs:$tmp/cut.cfs" "$tmp/err" || {
	echo "FAIL: unexpected error output:"; cat "$tmp/err"; exit 1; }
[ ! -e "$tmp/i4.cfs" ] || { echo "FAIL: output left behind"; exit 1; }
echo "dump-roundtrip: ok ($lines dump lines, identical dumps and images)"
