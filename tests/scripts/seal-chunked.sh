#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# oci2cfs seal --zstd-chunked (issue 18, docs/formats.md "zstd:chunked
# layers"): the layers rewritten as zstd:chunked with the fs-verity digest
# of every file in the TOC. For the OCI fixtures that containers/storage
# can write as zstd:chunked, the corpus' debian-minbase, and the tar
# headers whose reading Go's archive/tar defines (go-tar-cases.py: GNU
# and PAX names, times, xattrs, '\0' types, typed modes, base-256 ids):
#  - every layer decompresses, with plain zstd, to the tar of its diff_id;
#  - test-chunked --layout checks the TOC and every file's range against
#    the blob, and rebuilds the tar from the tar-split: its diff_id again;
#  - the sealed layout converts to the image of the original;
#  - every TOC entry says what skopeo 1.18's (containers/storage 1.57)
#    says of the same tar: the members containers/storage compares with
#    the tar-split, and the content digests (frame positions differ: it
#    cuts files into chunks);
#  - the fs-verity digests in the TOC name exactly the objects that a
#    conversion of the original stores;
#  - sealing again writes the same manifest, and so does sealing with
#    one thread (--threads 1).
# The layers the format cannot describe are refused with one line naming
# the layer, the entry and its tar offset, and the layout stays as it
# was: a global PAX header (bigids), a GNU sparse file (sparse), a name
# that is not UTF-8 (specials), a path twice (entries-max); and the
# second layer of an image refused once the first is written.
# Needs root, debootstrap and the Debian mirror (for the trixie root of
# podman5-root.sh, once), zstd. Environment: CFS_BIN, CFS_TESTS, CFS_SRC,
# CFS_TEST_TMP, CFS_CORPUS (optional).
set -euo pipefail

. "$(dirname "$0")/lib.sh"
test_init seal-chunked CFS_SRC CFS_TESTS
need_root "chroot into the trixie root"
need_tool debootstrap python3 zstd
need_exec "$CFS_BIN/oci2cfs" "$CFS_TESTS/test-chunked"
digests=$CFS_SRC/tests/oci/expected-digests.txt
toc=$CFS_SRC/tests/scripts/chunked-toc.py
corpus=$("$CFS_SRC/tests/scripts/need-corpus.sh")
proot=$("$CFS_SRC/tests/scripts/podman5-root.sh" "$CFS_TESTS/podman5")
[ -x "$proot/usr/bin/skopeo" ] || fail "no skopeo in $proot"
scratch=$(mktemp -d "$proot/tmp/cfs-seal-chunked.XXXXXX")
on_exit "rm -rf '$scratch'"
in_root=/tmp/${scratch##*/}

cd "$work"
python3 "$CFS_SRC/tests/oci/make-fixtures.py" fx >/dev/null
cp -a "$corpus/debian-minbase" fx/debian-minbase
python3 "$CFS_SRC/tests/scripts/go-tar-cases.py" fx/go-tar-cases
state() { # LAYOUT: what a refused seal must leave as it was
	(cd "$1" && cat index.json && find blobs -type f | sort) | sha256sum
}

for name in go-tar-cases times typechange xattrs xattrs-special zstd debian-minbase; do
	step "$name"
	cp -a "fx/$name" "$name"
	if [ "$name" = debian-minbase ] || [ "$name" = go-tar-cases ]; then
		want=$("$CFS_BIN/oci2cfs" --objects "objects-$name" --print-digest "oci:$name" img.cfs)
	else
		want=$(awk -v n="$name" '$1 == n { print $2 }' "$digests")
		"$CFS_BIN/oci2cfs" --objects "objects-$name" "oci:$name" img.cfs
	fi
	rm -f img.cfs
	"$CFS_BIN/oci2cfs" seal --zstd-chunked "oci:$name" >seal.out 2>seal.err ||
		fail "$name: seal --zstd-chunked failed: $(cat seal.err)"
	python3 "$toc" digests "$name" >layers
	python3 - "$name" <<'PY' || fail "$name: a layer does not decompress to its diff_id"
import hashlib, json, os, subprocess, sys
d = sys.argv[1]
i = json.load(open(d + "/index.json"))
m = json.load(open(d + "/blobs/sha256/" + i["manifests"][0]["digest"][7:]))
c = json.load(open(d + "/blobs/sha256/" + m["config"]["digest"][7:]))
for l, diff_id in zip(m["layers"], c["rootfs"]["diff_ids"]):
    assert l["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd", l
    blob = d + "/blobs/sha256/" + l["digest"][7:]
    assert os.path.getsize(blob) == l["size"], l
    tar = subprocess.run(["zstd", "-dc", blob], capture_output=True, check=True).stdout
    assert "sha256:" + hashlib.sha256(tar).hexdigest() == diff_id, (l, diff_id)
PY
	"$CFS_TESTS/test-chunked" --layout "$name" >check.out 2>&1 ||
		fail "$name: $(cat check.out)"
	rebuilt=$(grep -c 'the tar rebuilt from the tar-split has the diff_id' check.out || true)
	[ "$rebuilt" = "$(wc -l <layers)" ] ||
		fail "$name: $rebuilt of $(wc -l <layers) layers rebuilt from their tar-split: $(cat check.out)"
	got=$("$CFS_BIN/oci2cfs" --print-digest "oci:$name" img.cfs)
	rm -f img.cfs
	[ "$got" = "$want" ] || fail "$name: the sealed layout converts to $got, the original to $want"
	python3 "$toc" verity "$name" "objects-$name" >verity.out 2>&1 ||
		fail "$name: $(cat verity.out)"
	first=$(cat seal.out)
	"$CFS_BIN/oci2cfs" seal --zstd-chunked "oci:$name" >seal.out 2>seal.err ||
		fail "$name: sealing again failed: $(cat seal.err)"
	[ "$(cat seal.out)" = "$first" ] ||
		fail "$name: sealed again, $(cat seal.out), not $first"
	# one thread compresses the frames the pool of threads does
	cp -a "fx/$name" "one-$name"
	"$CFS_BIN/oci2cfs" seal --zstd-chunked --threads 1 "oci:one-$name" >seal.out 2>seal.err ||
		fail "$name: seal --threads 1 failed: $(cat seal.err)"
	[ "$(cat seal.out)" = "$first" ] ||
		fail "$name: sealed with one thread, $(cat seal.out), not $first"
	rm -rf "one-$name"
	# skopeo 1.18 writes the same tar as zstd:chunked: the same TOC
	cp -a "fx/$name" "$scratch/$name"
	chroot "$proot" skopeo copy -q --dest-compress-format zstd:chunked \
		"oci:$in_root/$name" "oci:$in_root/zc-$name:latest" ||
		fail "$name: skopeo 1.18 copy to zstd:chunked failed"
	python3 "$toc" compare "$name" "$scratch/zc-$name" >compare.out 2>&1 ||
		fail "$name: our TOC and skopeo 1.18's differ: $(cat compare.out)"
	rm -rf "$scratch/$name" "$scratch/zc-$name" "objects-$name"
done

refuse() { # FIXTURE WHAT
	local name=$1 what=$2 before
	step "refused: $name ($what)"
	cp -a "fx/$name" "$name"
	before=$(state "$name")
	rc=0
	"$CFS_BIN/oci2cfs" seal --zstd-chunked "oci:$name" >seal.out 2>seal.err || rc=$?
	[ "$rc" -ne 0 ] || fail "$name: sealed as zstd:chunked: $(cat seal.out)"
	[ "$(wc -l <seal.err)" -eq 1 ] || fail "$name: not one line: $(cat seal.err)"
	grep -q "layer sha256:.*$what" seal.err || fail "$name: the message does not say '$what': $(cat seal.err)"
	[ "$(state "$name")" = "$before" ] || fail "$name: the layout changed"
}
refuse bigids "tar offset 0: a global PAX header"
refuse sparse "tar offset [0-9]*: sparse/.*type 'S'"
refuse specials 'latin1-\\xe9.*not UTF-8'
refuse entries-max "the layer has the path twice"

# A layer refused after one written: neither blob stays in the layout.
python3 - fx/times fx/bigids fx/two <<'PY'
import hashlib, json, os, shutil, sys
a, b, out = sys.argv[1:]
def image(d):
    i = json.load(open(d + "/index.json"))
    m = json.load(open(d + "/blobs/sha256/" + i["manifests"][0]["digest"][7:]))
    c = json.load(open(d + "/blobs/sha256/" + m["config"]["digest"][7:]))
    return m, c
(ma, ca), (mb, cb) = image(a), image(b)
shutil.copytree(a, out)
for l in mb["layers"]:
    shutil.copy(b + "/blobs/sha256/" + l["digest"][7:], out + "/blobs/sha256/")
ca["rootfs"]["diff_ids"] += cb["rootfs"]["diff_ids"]
ma["layers"] += mb["layers"]
def put(o):
    data = json.dumps(o).encode()
    d = hashlib.sha256(data).hexdigest()
    open(out + "/blobs/sha256/" + d, "wb").write(data)
    return {"digest": "sha256:" + d, "size": len(data)}
ma["config"].update(put(ca))
desc = put(ma)
desc["mediaType"] = ma["mediaType"]
json.dump({"schemaVersion": 2, "manifests": [desc]}, open(out + "/index.json", "w"))
PY
refuse two "tar offset 0: a global PAX header"
echo "$me: PASS"
