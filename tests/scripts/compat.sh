#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# Byte compatibility with composefs' mkcomposefs 1.0.8, without it: the
# dumps of tests/compat/make-dumps.py (every file type, hardlinks, shared
# and long xattrs, overlay xattrs and whiteouts, 4,000 names of up to 255
# bytes, 120 levels of directories) are written by cfs-mkcomposefs with
# the same options, and by oci2cfs (dump: source, --format-version), and
# every image digest must be the one recorded from mkcomposefs 1.0.8 in
# tests/compat/mkcomposefs-1.0.8.digests (tests/compat/record-digests.sh).
# A dump the file has no digest for is a failure: record them again.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
test_init compat CFS_SRC
need_exec "$CFS_BIN/cfs-mkcomposefs" "$CFS_BIN/oci2cfs"
need_tool python3
digests=$CFS_SRC/tests/compat/mkcomposefs-1.0.8.digests
python3 "$CFS_SRC/tests/compat/make-dumps.py" "$work/dumps"

n=0
for dump in "$work"/dumps/*.dump; do
	base=$(basename "$dump")
	grep -q "^$base " "$digests" || fail "$base: no digest recorded (tests/compat/record-digests.sh)"
done
while read -r base opt want; do
	case "$base" in '#'* | '') continue ;; esac
	dump=$work/dumps/$base
	[ -f "$dump" ] || fail "$base: recorded, but make-dumps.py writes no such dump"
	case "$opt" in
	default) mk=() fv=() ;;
	--min-version=1) mk=("$opt") fv=(--format-version 1) ;;
	--max-version=0) mk=("$opt") fv=(--format-version 0) ;;
	*) fail "$base: unknown option $opt in $digests" ;;
	esac
	got=$("$CFS_BIN/cfs-mkcomposefs" --from-file --print-digest-only "${mk[@]}" "$dump") ||
		fail "cfs-mkcomposefs $opt $base"
	[ "$got" = "$want" ] || fail "cfs-mkcomposefs $opt $base: $got, mkcomposefs 1.0.8 wrote $want"
	got=$("$CFS_BIN/oci2cfs" --print-digest "${fv[@]}" "dump:$dump" "$work/image.cfs") ||
		fail "oci2cfs ${fv[*]} dump:$base"
	[ "$got" = "$want" ] || fail "oci2cfs ${fv[*]} dump:$base: $got, mkcomposefs 1.0.8 wrote $want"
	n=$((n + 1))
done <"$digests"
[ "$n" -ge 15 ] || fail "only $n digests in $digests"
echo "$me: ok ($n images, each the digest mkcomposefs 1.0.8 gave)"
