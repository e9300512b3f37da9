#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# zstd:chunked layers with a tar-split, as skopeo 1.18 (containers/storage
# 1.57, Debian 13) writes them: the checksum of the tar-split in the TOC
# ("tarSplitDigest"), not in an annotation. skopeo runs in the trixie root
# of podman5-root.sh and copies the good OCI fixtures and the corpus'
# debian-minbase with --dest-compress-format zstd:chunked. For every layer
# test-chunked --layout checks the TOC and every file's range, takes the
# tar-split's checksum from the TOC, and rebuilds the layer's tar from
# the tar-split and the files' frames: its SHA-256 must be the diff_id of
# the config. This is what makes a partial pull as safe as a full one
# (docs/distribution.md). And the copies convert to the images of the
# originals (tests/oci/expected-digests.txt; a plain conversion of the
# corpus image). skopeo 1.18 refuses the hardlinks fixture ("duplicates
# of file paths not supported": a layer that replaces its own file), and
# bigids and sparse as skopeo 1.9 does.
# Needs root, debootstrap and the Debian mirror (for the root, once).
# Environment: CFS_BIN, CFS_TESTS, CFS_SRC, CFS_TEST_TMP.
set -euo pipefail

. "$(dirname "$0")/lib.sh"
test_init chunked-tarsplit CFS_SRC CFS_TESTS
need_root "chroot into the trixie root"
need_tool debootstrap unshare python3 zstd
need_exec "$CFS_BIN/oci2cfs" "$CFS_TESTS/test-chunked"
digests=$CFS_SRC/tests/oci/expected-digests.txt
corpus=$("$CFS_SRC/tests/scripts/need-corpus.sh")

proot=$("$CFS_SRC/tests/scripts/podman5-root.sh" "$CFS_TESTS/podman5")
[ -x "$proot/usr/bin/skopeo" ] || fail "no skopeo in $proot"
# skopeo works on files below the root's /tmp
scratch=$(mktemp -d "$proot/tmp/cfs-chunked.XXXXXX")
on_exit "rm -rf '$scratch'"
in_root=/tmp/${scratch##*/}

cd "$work"
python3 "$CFS_SRC/tests/oci/make-fixtures.py" "$scratch/fx" >/dev/null
cp -a "$corpus/debian-minbase" "$scratch/fx/debian-minbase"
mkdir "$scratch/zc"
mkdir objects
"$CFS_BIN/oci2cfs" --objects objects --print-digest "oci:$corpus/debian-minbase" img.cfs >minbase.digest
rm -f img.cfs

for name in specials times typechange xattrs xattrs-special zstd debian-minbase; do
	step "$name"
	chroot "$proot" skopeo copy -q --dest-compress-format zstd:chunked \
		"oci:$in_root/fx/$name" "oci:$in_root/zc/$name:latest" ||
		fail "$name: skopeo 1.18 copy to zstd:chunked failed"
	"$CFS_TESTS/test-chunked" --layout "$scratch/zc/$name" >check.out 2>&1 ||
		fail "$name: $(cat check.out)"
	layers=$(python3 -c 'import json, sys
d = sys.argv[1]
i = json.load(open(d + "/index.json"))
m = json.load(open(d + "/blobs/sha256/" + i["manifests"][0]["digest"][7:]))
print(len(m["layers"]))' "$scratch/zc/$name")
	rebuilt=$(grep -c 'the tar rebuilt from the tar-split has the diff_id' check.out || true)
	[ "$rebuilt" = "$layers" ] ||
		fail "$name: $rebuilt of $layers layers rebuilt from their tar-split: $(cat check.out)"
	if [ "$name" = debian-minbase ]; then
		want=$(cat minbase.digest)
	else
		want=$(awk -v n="$name" '$1 == n { print $2 }' "$digests")
	fi
	got=$("$CFS_BIN/oci2cfs" --objects objects --print-digest "oci:$scratch/zc/$name" img.cfs 2>/dev/null)
	rm -f img.cfs
	[ "$got" = "$want" ] || fail "$name: the copy converts to $got, the original to $want"
done
echo "$me: PASS"
