#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# Partial pulls of the layers oci2cfs seal --zstd-chunked writes (issue
# 18: "podman still reads the layers"), against a real registry. The
# corpus' debian-minbase and its nightly rebuild debian-minbase-rebuilt
# (5,226 of 5,230 files the same, no layer shared) are sealed with
# --zstd-chunked and pushed; every pull goes through range-proxy.py,
# which counts the bytes the registry sends.
#  (a) cfs-store pulls the rebuild onto the base: at most 2 MB fetched,
#      the layer partial and its diff_id checked, the image byte for byte
#      what oci2cfs --canonical makes of the original layout (the store
#      keeps a sealed image canonical).
#  (b) the same onto a base whose layer records have no SHA-256 pairs
#      (format 1, as stores made before them): the TOC's fs-verity
#      digests find the objects, and it is still at most 2 MB.
#  (c) podman 5.4 (the trixie root, enable_partial_images) pulls the base,
#      then the rebuild at most 2 MB: it reads our TOC and tar-split.
#      podman save then writes the rebuilt layer from its store with the
#      tar-split, checking every file's CRC-64 there: the tar it writes
#      has the diff_id of the config.
# Needs root, debootstrap and the Debian mirror (for the root, once),
# skopeo and docker-registry. Environment: CFS_BIN, CFS_SRC,
# CFS_TEST_TMP, CFS_CORPUS (optional).
set -euo pipefail

. "$(dirname "$0")/lib.sh"
podman5_init partial-produced CFS_SRC
need_tool skopeo docker-registry python3 zstd
cs=$CFS_BIN/cfs-store
need_exec "$cs" "$CFS_BIN/oci2cfs"
. "$CFS_SRC/tests/scripts/registry.sh"
proot=$CFS_PODMAN_ROOT
corpus=$("$CFS_SRC/tests/scripts/need-corpus.sh")

cd "$work"
registry_start "$work/registry" || fail "registry did not start"
for n in debian-minbase debian-minbase-rebuilt; do
	cp -a "$corpus/$n" "$n"
	"$CFS_BIN/oci2cfs" seal --zstd-chunked "oci:$n" >"$n.sealed" 2>seal.err ||
		fail "$n: seal --zstd-chunked: $(cat seal.err)"
	skopeo copy -q --dest-tls-verify=false --preserve-digests "oci:$n" \
		"docker://$REGISTRY/$n:zc" || fail "$n: push failed"
done
# a sealed image is stored as the sealing spec's canonical image
want=$("$CFS_BIN/oci2cfs" --objects objects --canonical --print-digest \
	"oci:$corpus/debian-minbase-rebuilt" img.cfs)
rm -rf objects img.cfs

proxy_pid=
python3 "$CFS_SRC/tests/scripts/range-proxy.py" "$REGISTRY" plain proxy.log >proxy.port 2>proxy.err &
proxy_pid=$!
on_exit '[ -z "$proxy_pid" ] || kill "$proxy_pid" 2>/dev/null || true'
for _ in $(seq 50); do
	[ -s proxy.port ] && break
	sleep 0.1
done
PROXY=127.0.0.1:$(head -n 1 proxy.port)
fetched() { awk '{ s += $2 } END { print s + 0 }' proxy.log; }

pull() { # ROOT REF: cfs-store pull through the proxy, --json to pull.json
	"$cs" --root "$1" pull --insecure "docker://$PROXY/$2" --name "${2%%:*}" \
		--json >pull.json 2>pull.err || fail "pull of $2 into $1: $(cat pull.err)"
}
partial_ok() { # WHAT
	local got
	got=$(fetched)
	echo "$me: $1: fetched $got bytes in $(wc -l <proxy.log) requests"
	[ "$got" -le 2000000 ] || fail "$1: fetched $got bytes, want <= 2 MB"
	python3 - "$want" <<'PY' || fail "$1: not a partial pull of the original's image: $(cat pull.json)"
import json, sys
j = json.load(open("pull.json"))
assert j["digest"] == sys.argv[1], j["digest"]
assert all(l["partial"] and l["diff_id_checked"] for l in j["layers"]), j["layers"]
PY
}

step "(a) cfs-store: the rebuild onto the base"
pull base debian-minbase:zc
cp -a base base-v1
: >proxy.log
pull base debian-minbase-rebuilt:zc
partial_ok "(a)"

step "(b) the same onto records without SHA-256 pairs: by fs-verity digest"
for rec in $(find base-v1/layers -type f); do
	"$CFS_SRC/tests/scripts/record.py" to-v1 "$rec" "$rec.v1"
	mv "$rec.v1" "$rec"
done
"$CFS_SRC/tests/scripts/record.py" pairs "$(find base-v1/layers -type f | head -n 1)" >pairs
[ ! -s pairs ] || fail "(b) the record still has pairs"
: >proxy.log
pull base-v1 debian-minbase-rebuilt:zc
partial_ok "(b)"

step "(c) podman 5 pulls them partially, and saves the layer with its diff_id"
podman_conf "$work/p5" root \
	'pull_options = {enable_partial_images = "true", use_hard_links = "false"}'
podman_root_up "$proot" "$work" || fail "podman root in $proot"
P=(timeout 300 "${PODMAN[@]}")
echo "$me: podman $("${P[@]}" --version | awk '{ print $3 }')"
"${P[@]}" pull -q --tls-verify=false "docker://$PROXY/debian-minbase:zc" >/dev/null 2>p5.err ||
	fail "(c) podman pull of the base: $(cat p5.err)"
: >proxy.log
"${P[@]}" pull -q --tls-verify=false "docker://$PROXY/debian-minbase-rebuilt:zc" >/dev/null 2>p5.err ||
	fail "(c) podman pull of the rebuild: $(cat p5.err)"
got=$(fetched)
echo "$me: (c) podman 5 fetched $got bytes in $(wc -l <proxy.log) requests"
[ "$got" -le 2000000 ] || fail "(c) podman fetched $got bytes, want <= 2 MB: not a partial pull"
"${P[@]}" save -q --format oci-archive -o "$work/saved.tar" \
	"$PROXY/debian-minbase-rebuilt:zc" 2>p5.err || fail "(c) podman save: $(cat p5.err)"
python3 - "$work/saved.tar" debian-minbase-rebuilt <<'PY' || fail "(c) the saved layer is not the tar of the diff_id"
import gzip, hashlib, json, sys, tarfile
t = tarfile.open(sys.argv[1])
def blob(d):
    return t.extractfile("blobs/sha256/" + d.split(":")[1]).read()
idx = json.loads(t.extractfile("index.json").read())
m = json.loads(blob(idx["manifests"][0]["digest"]))
c = json.loads(blob(m["config"]["digest"]))
for l, diff_id in zip(m["layers"], c["rootfs"]["diff_ids"]):
    data = blob(l["digest"])
    if l["mediaType"].endswith("+gzip"):
        data = gzip.decompress(data)
    assert "sha256:" + hashlib.sha256(data).hexdigest() == diff_id, (l, diff_id)
print("saved layers: %d, each the tar of its diff_id" % len(m["layers"]))
PY
echo "$me: PASS"
