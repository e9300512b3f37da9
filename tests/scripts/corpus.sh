#!/bin/bash
# Convert every image of the corpus (real Debian images built by
# tests/corpus/make-corpus.sh), in every source form, into one object
# directory; check each image with fsck.erofs, mount it, and compare the
# mounted tree with the corpus' expected listing (what umoci unpack gives).
#
# CFS_CORPUS: an already built corpus (default: build it, cached under
# the build tree, which needs root and the Debian mirror, ~3 minutes).
set -euo pipefail

corpus_tools="$CFS_SRC/tests/corpus"
corpus=$("$CFS_SRC/tests/scripts/need-corpus.sh")

tmp=$(mktemp -d "$CFS_TEST_TMP/corpus.XXXXXX")
mounts=()
cleanup() {
	for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
		umount "${mounts[$i]}" 2>/dev/null || umount -l "${mounts[$i]}" || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

objects="$tmp/objects"
failures=0
check() { # NAME SOURCE EXPECTED
	local name=$1 source=$2 expected=$3 img="$tmp/$1.cfs"
	mkdir -p "$tmp/$name.meta" "$tmp/$name.root"
	if ! "$CFS_BIN/oci2cfs" --objects "$objects" --json "$source" "$img" > "$tmp/$name.json"; then
		echo "FAIL $name: conversion failed"; failures=$((failures + 1)); return
	fi
	if ! fsck.erofs "$img" > "$tmp/$name.fsck" 2>&1; then
		echo "FAIL $name: fsck.erofs"; cat "$tmp/$name.fsck"; failures=$((failures + 1)); return
	fi
	mount -t erofs -o ro "$img" "$tmp/$name.meta"
	mounts+=("$tmp/$name.meta")
	mount -t overlay overlay -o "ro,metacopy=on,redirect_dir=on,lowerdir=$tmp/$name.meta::$objects" "$tmp/$name.root"
	mounts+=("$tmp/$name.root")
	python3 "$corpus_tools/tree-listing.py" "$tmp/$name.root" > "$tmp/$name.tsv"
	if diff "$expected" "$tmp/$name.tsv" > "$tmp/$name.diff"; then
		echo "ok   $name ($(grep -c . "$tmp/$name.tsv") paths)"
	else
		echo "FAIL $name: mounted tree differs from $(basename "$expected"):"
		head -20 "$tmp/$name.diff"
		failures=$((failures + 1))
	fi
	umount "$tmp/$name.root" "$tmp/$name.meta"
	unset 'mounts[-1]' 'mounts[-1]'
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
"$CFS_BIN/oci2cfs" --objects "$objects" --json "oci:$corpus/debian-python" "$tmp/again.cfs" > "$tmp/again.json"
cmp "$tmp/debian-python.cfs" "$tmp/again.cfs" || { echo "FAIL: second conversion differs"; failures=$((failures + 1)); }
python3 - "$tmp/again.json" <<'PY' || failures=$((failures + 1))
import json, sys
r = json.load(open(sys.argv[1]))
assert r["objects"]["new"] == 0, r["objects"]
print("ok   second conversion: %d objects reused, none written" % r["objects"]["reused"])
PY

if [ "$failures" -ne 0 ]; then
	echo "corpus: $failures failure(s)"
	exit 1
fi
echo "corpus: all images match"
