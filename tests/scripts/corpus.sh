#!/bin/bash
# Convert every image of the corpus (real Debian images built by
# tests/corpus/make-corpus.sh), in every source form, into one object
# directory; check each image with fsck.erofs, mount it, and compare the
# mounted tree with the corpus' expected listing (what umoci unpack gives).
#
# CFS_CORPUS: an already built corpus (default: build it, cached under
# the build tree, which needs root and the Debian mirror, ~3 minutes).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
test_init corpus CFS_SRC
need_root "mount"
need_exec "$CFS_BIN/oci2cfs"
need_tool python3 fsck.erofs mount umount

corpus_tools="$CFS_SRC/tests/corpus"
corpus=$("$CFS_SRC/tests/scripts/need-corpus.sh")

objects="$work/objects"
failures=0
check() { # NAME SOURCE EXPECTED
	local name=$1 source=$2 expected=$3 img="$work/$1.cfs"
	mkdir -p "$work/$name.meta" "$work/$name.root"
	if ! "$CFS_BIN/oci2cfs" --objects "$objects" --json "$source" "$img" > "$work/$name.json"; then
		echo "FAIL $name: conversion failed"; failures=$((failures + 1)); return
	fi
	if ! fsck.erofs "$img" > "$work/$name.fsck" 2>&1; then
		echo "FAIL $name: fsck.erofs"; cat "$work/$name.fsck"; failures=$((failures + 1)); return
	fi
	mount_composefs "$img" "$objects" "$work/$name.meta" "$work/$name.root" ||
		fail "$name: mounting the image failed"
	python3 "$corpus_tools/tree-listing.py" "$work/$name.root" > "$work/$name.tsv"
	if diff "$expected" "$work/$name.tsv" > "$work/$name.diff"; then
		echo "ok   $name ($(grep -c . "$work/$name.tsv") paths)"
	else
		echo "FAIL $name: mounted tree differs from $(basename "$expected"):"
		head -20 "$work/$name.diff"
		failures=$((failures + 1))
	fi
	umount "$work/$name.root" "$work/$name.meta"
}

for dir in "$corpus"/*/; do
	name=$(basename "$dir")
	[ -f "$dir/index.json" ] || continue
	check "$name" "oci:$dir" "$corpus/expected/$name.tsv"
done
check python-oci-archive "oci-archive:$corpus/archives/debian-python.oci-archive.tar" "$corpus/expected/debian-python.tsv"
check python-docker-archive "docker-archive:$corpus/archives/debian-python.docker-archive.tar" "$corpus/expected/debian-python.tsv"

# The same image twice gives the same bytes, and the second time writes
# no object.
"$CFS_BIN/oci2cfs" --objects "$objects" --json "oci:$corpus/debian-python" "$work/again.cfs" > "$work/again.json"
cmp "$work/debian-python.cfs" "$work/again.cfs" || { echo "FAIL: second conversion differs"; failures=$((failures + 1)); }
python3 - "$work/again.json" <<'PY' || failures=$((failures + 1))
import json, sys
r = json.load(open(sys.argv[1]))
assert r["objects"]["new"] == 0, r["objects"]
print("ok   second conversion: %d objects reused, none written" % r["objects"]["reused"])
PY

[ "$failures" -eq 0 ] || fail "$failures failure(s)"
echo "$me: all images match"
