#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# zstd:chunked layers as a real producer writes them: skopeo copies good
# OCI fixtures (tests/oci/make-fixtures.py) with --dest-compress-format
# zstd:chunked, then
# (a) test-chunked --layout finds every layer's zstd:chunked annotations,
#     reads its TOC (checksum, decompressed size, every entry) and checks
#     that the range of each file holds the content its digest names;
# (b) oci2cfs converts the copy to the very image of the original (the
#     digest in tests/oci/expected-digests.txt): the skippable frames of
#     the TOC are no content, and the tar is unchanged;
# (b2) the image built from the TOCs alone (what a pull without the
#     tar-split could do) is that image too for hardlinks, times (their
#     nanoseconds), typechange and zstd; it is not for specials (Go's
#     JSON turns a name that is not UTF-8 into U+FFFD), xattrs (the TOC
#     lacks libarchive's LIBARCHIVE.xattr.* and empty values) and
#     xattrs-special (user.* xattrs of symlinks and devices, which the
#     conversion drops): docs/formats.md;
# (c) the fixture whose layer has more entries than a TOC may list
#     (entries-max) still converts: only a partial pull needs the TOC.
# Fixtures skopeo 1.9 cannot recompress (bigids' PAX global header,
# sparse's GNU sparse entries) are left out.
# Environment: CFS_BIN, CFS_SRC, CFS_TEST_TMP (tests/CMakeLists.txt).
set -euo pipefail

. "$(dirname "$0")/lib.sh"
test_init chunked CFS_SRC
need_tool skopeo python3 zstd
need_exec "$CFS_BIN/oci2cfs" "$CFS_BIN/../tests/test-chunked"
digests=$CFS_SRC/tests/oci/expected-digests.txt

cd "$work"
python3 "$CFS_SRC/tests/oci/make-fixtures.py" fx >/dev/null
mkdir zc objects
for name in hardlinks specials times typechange xattrs xattrs-special zstd; do
	step "$name"
	skopeo copy -q --dest-compress-format zstd:chunked "oci:fx/$name" \
		"oci:zc/$name:latest" ||
		fail "$name: skopeo copy to zstd:chunked failed"
	"$CFS_BIN/../tests/test-chunked" --layout "zc/$name" >check.out 2>&1 ||
		fail "$name: $(cat check.out)"
	grep -q 'files checked' check.out || fail "$name: no zstd:chunked layer: $(cat check.out)"
	want=$(awk -v n="$name" '$1 == n { print $2 }' "$digests")
	got=$("$CFS_BIN/oci2cfs" --objects objects --print-digest "oci:zc/$name" img.cfs)
	[ "$got" = "$want" ] ||
		fail "$name: zstd:chunked copy converts to $got, the original to $want"
	rm -f img.cfs
	toc=$(sed -n 's/^image from the TOCs: //p' check.out)
	case $name in
	specials | xattrs | xattrs-special)
		echo "$me: $name: from the TOCs $toc, from the tar $want (they differ: see above)" ;;
	*)
		[ "$toc" = "$want" ] ||
			fail "$name: the TOCs alone give image '$toc', the tar $want" ;;
	esac
done

step "entries-max"
skopeo copy -q --dest-compress-format zstd:chunked oci:fx/entries-max \
	oci:zc/entries-max:latest
if "$CFS_BIN/../tests/test-chunked" --layout zc/entries-max >check.out 2>&1; then
	fail "entries-max: a TOC of a million entries was read"
fi
grep -q 'over the limit' check.out || fail "entries-max: $(cat check.out)"
"$CFS_BIN/oci2cfs" --objects objects oci:zc/entries-max img.cfs 2>conv.err ||
	fail "entries-max: zstd:chunked copy does not convert: $(cat conv.err)"
echo "$me: PASS"
