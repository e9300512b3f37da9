#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# cfs-mkcomposefs, composefs' mkcomposefs command line on our writer
# (src/tools/mkcomposefs.c), called as containers/storage calls it:
#  - "mkcomposefs --from-file - -" (under that name, a symlink): the
#    image on stdout is byte for byte what `oci2cfs dump:FILE -` writes
#    (the writer whose images match mkcomposefs 1.0.8, tests
#    dump-roundtrip and corpus), for the dumps of the test tree and, with
#    a corpus, of debian-minbase and the edge cases; --print-digest-only
#    prints `oci2cfs --print-digest`'s digest;
#  - a directory with --digest-store: the image and objects of
#    `oci2cfs --objects`;
#  - --max-version=0 writes format 0 where the default is 1 (a whiteout),
#    an image fsck.erofs accepts;
#  - refused, exit 2 and one line: --use-epoch, --skip-xattrs,
#    --max-version=2, --from-file with --digest-store; a bad dump: exit
#    1, one line.
# Needs root for the test tree (devices, owners).
# Environment: CFS_BIN, CFS_SRC, CFS_TEST_TMP, CFS_CORPUS (optional).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
test_init mkcomposefs CFS_SRC
need_root "the test tree has devices and owners"
mk=$CFS_BIN/cfs-mkcomposefs
o2c=$CFS_BIN/oci2cfs
need_exec "$mk" "$o2c"
need_tool python3 od
ln -s "$mk" "$work/mkcomposefs"

python3 "$CFS_SRC/tests/scripts/make-test-tree.py" "$work/tree" >/dev/null
"$o2c" --dump "$work/tree.dump" "dir:$work/tree" "$work/tree.cfs" >/dev/null
dumps=("$work/tree.dump")
corpus=${CFS_CORPUS:-$CFS_SRC/build-corpus}
for img in debian-minbase edge-cases; do
	if [ -f "$corpus/$img/index.json" ]; then
		"$o2c" --dump "$work/$img.dump" "oci:$corpus/$img" "$work/$img.cfs"
		dumps+=("$work/$img.dump")
	fi
done

for d in "${dumps[@]}"; do
	"$o2c" "dump:$d" - >"$work/want.cfs"
	want=$("$o2c" --print-digest "dump:$d" "$work/want2.cfs")
	"$work/mkcomposefs" --from-file - - <"$d" >"$work/got.cfs" ||
		fail "mkcomposefs --from-file - - < $(basename "$d")"
	cmp -s "$work/want.cfs" "$work/got.cfs" ||
		fail "$(basename "$d"): not the image oci2cfs writes"
	got=$("$mk" --print-digest-only --from-file "$d")
	[ "$got" = "$want" ] || fail "$(basename "$d"): --print-digest-only $got, oci2cfs $want"
	"$mk" --min-version=0 --max-version=1 --print-digest --from-file "$d" "$work/file.cfs" >"$work/out"
	[ "$(cat "$work/out")" = "$want" ] && cmp -s "$work/file.cfs" "$work/want.cfs" ||
		fail "$(basename "$d"): to a file with the default versions"
	echo "$me: $(basename "$d"): $(stat -c %s "$work/got.cfs") bytes, as oci2cfs, digest $want"
done

# A directory with an object store.
"$o2c" --objects "$work/objs-o2c" "dir:$work/tree" "$work/dir-o2c.cfs" >/dev/null
"$mk" --digest-store="$work/objs-mk" "$work/tree" "$work/dir-mk.cfs"
cmp -s "$work/dir-o2c.cfs" "$work/dir-mk.cfs" || fail "directory: not the image oci2cfs writes"
diff <(cd "$work/objs-o2c" && find . -type f | sort) <(cd "$work/objs-mk" && find . -type f | sort) >/dev/null ||
	fail "directory: not the objects oci2cfs stores"
[ -n "$(find "$work/objs-mk" -type f)" ] || fail "directory: no object stored"

# The format version: the test tree has a whiteout, which makes the
# default image format 1 (the composefs header's version, bytes 12-15);
# --max-version=0 keeps it at 0, an image fsck.erofs still accepts.
hdr_version() { od -A n -t u4 -j 12 -N 4 "$1" | tr -d ' '; }
[ "$(hdr_version "$work/tree.cfs")" = 1 ] || fail "the test tree's image is not format 1"
"$mk" --max-version=0 --from-file "$work/tree.dump" "$work/v0.cfs"
[ "$(hdr_version "$work/v0.cfs")" = 0 ] || fail "--max-version=0 did not write format 0"
if command -v fsck.erofs >/dev/null; then
	fsck.erofs "$work/v0.cfs" >/dev/null 2>&1 || fail "fsck.erofs rejects the --max-version=0 image"
fi
refused() { # EXIT-CODE ARGS...
	local want=$1 rc
	shift
	set +e
	"$mk" "$@" </dev/null >"$work/out" 2>"$work/err"
	rc=$?
	set -e
	[ "$rc" -eq "$want" ] || fail "$*: exit $rc, want $want: $(cat "$work/err")"
	[ "$(head -1 "$work/err" | grep -c "^cfs-mkcomposefs: ")" -eq 1 ] ||
		fail "$*: no one-line error: $(cat "$work/err")"
	[ ! -s "$work/out" ] || fail "$*: wrote to stdout"
}
refused 2 --use-epoch "$work/tree" "$work/x.cfs"
refused 2 --skip-xattrs "$work/tree" "$work/x.cfs"
refused 2 --max-version=2 --from-file - -
refused 2 --from-file --digest-store="$work/objs" - -
printf '/ 0 40755 1 0 0 0 0.0 - - -\n/a nonsense\n' >"$work/bad.dump"
refused 1 --from-file "$work/bad.dump" "$work/x.cfs"
[ ! -e "$work/x.cfs" ] || fail "a failed run left an image"
echo "$me: refusals: one line each, nothing written"
echo "$me: ok"
