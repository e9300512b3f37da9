#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# Sealed images (issue 6) through a registry, and what needs root: a
# registry carries the sealed image to a node that pulls, verifies and
# mounts it. It seals debian-python itself, with its artifact and a
# tampered copy (seal.sh checks those, and the rest of sealing, as any
# user).
#
#  - a layer's digest is that of the layer alone, whiteouts kept: the
#    whiteout layers of debian-whiteouts unpacked by layer-tree.py
#    (root: devices, owners, xattrs) convert to the sealed digests.
#  - registry: skopeo copy --preserve-digests to a private registry, then
#    cfs-store pull on a fresh store verifies and mounts; the tree equals
#    the corpus' expected listing.
#  - trusted artifact: a store that has every file of the image (a dir:
#    import of its tree) but none of its layers pulls it with
#    --trust-artifact fetching no layer blob (the registry's access log)
#    and adding no object; without --trust-artifact the layers are
#    fetched; a store that lacks one file fetches the layers and gets it.
#  - attack: one layer swapped for another valid layer, manifest digest
#    and size and the config's diff_id fixed, annotations kept: the pull
#    is refused naming the layer, store unchanged, fsck clean.
#  - signed (issue 15): an image sealed with --sign-key, and an unsealed
#    one with the spec's artifact (signed) under the referrers tag, each
#    pushed with skopeo and pulled with --require-signed by a fresh
#    store; the attack in artifact mode (a layer swapped, the artifact
#    re-pointed at the new manifest) is refused naming both digests.
#
# Needs root (mount), skopeo, docker-registry, openssl. Environment:
# CFS_BIN, CFS_SRC, CFS_TEST_TMP, CFS_CORPUS (optional).
set -euo pipefail

# shellcheck source=tests/scripts/lib.sh
. "$(dirname "$0")/lib.sh"
test_init seal-registry CFS_SRC
cs=$CFS_BIN/cfs-store
o2c=$CFS_BIN/oci2cfs
corpus_tools="$CFS_SRC/tests/corpus"
need_root "mount"
need_tool skopeo docker-registry python3 openssl
need_exec "$cs" "$o2c"
# shellcheck source=tests/scripts/seal-lib.sh
. "$(dirname "$0")/seal-lib.sh"
# shellcheck source=tests/scripts/registry.sh
. "$(dirname "$0")/registry.sh"
corpus=$("$CFS_SRC/tests/scripts/need-corpus.sh")
mnt=$work/mnt

step "debian-python sealed, a tampered copy, the artifact"
layout_copy "$corpus/debian-python" "$work/py"
"$o2c" seal "oci:$work/py" --json >"$work/seal.json"
new=$(jget "j['manifest_digest']" <"$work/seal.json")
canon=$(jget "j['composefs.merged.erofs.v1.fsverity-sha256-12']" <"$work/seal.json")
evil_layer=$(make_evil "$work/py" "$work/evil")
"$o2c" artifact --image "oci:$work/py:latest" "$work/py" --json >"$work/art.json"
art_tag=$(jget "j['tag']" <"$work/art.json")

step "a layer's digest is that of the layer alone, whiteouts kept"
# An independent route: unpack the whiteout layers of debian-whiteouts
# with Python, whiteouts as overlayfs whiteouts, and convert the directory.
layout_copy "$corpus/debian-whiteouts" "$work/wo"
"$o2c" seal "oci:$work/wo" --json >"$work/wo.json"
for i in 2 3; do
	digest=$(jget "j['layers'][$i]['digest']" <"$work/wo.json")
	python3 "$CFS_SRC/tests/scripts/layer-tree.py" "$(blob "$work/wo" "$digest")" "$work/layer$i"
	got=$("$o2c" "dir:$work/layer$i" "$work/layer$i.cfs" --print-digest)
	want=$(jget "j['layers'][$i]['composefs.layer.sha256-12']" <"$work/wo.json")
	[ "$got" = "$want" ] || fail "layer $digest: unpacked alone gives $got, seal says $want"
done
[ -n "$(find "$work/layer3" -type c -print -quit)" ] || fail "no whiteouts in the unpacked layer"

step "registry: push the sealed image, pull it on a fresh node"
registry_start "$work/registry" || fail "no registry"
skopeo copy -q --dest-tls-verify=false --preserve-digests "oci:$work/py:latest" "docker://$REGISTRY/debian-python:sealed" ||
	fail "skopeo copy to the registry"
node=$work/node
N=("$cs" --root "$node")
# The artifact under the referrers tag (skopeo rewrites the index,
# keeping the artifact manifest: no --preserve-digests for it).
skopeo copy -q --dest-tls-verify=false --all "oci:$work/py:$art_tag" "docker://$REGISTRY/debian-python:$art_tag" ||
	fail "skopeo copy of the artifact"
"${N[@]}" pull "docker://$REGISTRY/debian-python:sealed" --insecure --require-sealed --name python --json >"$work/pull.json" ||
	fail "pull of the sealed image failed"
jcheck "j['digest'] == '$canon' and j['sealed'] and j['artifact']" "pull: not the sealed image with its artifact" <"$work/pull.json"
"${N[@]}" inspect python --json | jcheck "j['manifest_digest'] == '$new'" "pulled manifest is not the sealed one"
mkdir -p "$mnt"
"${N[@]}" mount python "$mnt"
python3 "$corpus_tools/tree-listing.py" "$mnt" >"$work/python.tsv"
# The sealed image is the canonical tree (docs/formats.md): the expected
# listing with the root as /usr and /run emptied with /usr's mtime.
python3 - "$corpus/expected/debian-python.tsv" >"$work/python-canonical.tsv" <<'EOF'
import sys
rows = [l.rstrip('\n').split('\t') for l in open(sys.argv[1])]
usr = next(r for r in rows if r[0] == '/usr')
for r in rows:
    if r[0].startswith('/run/'):
        continue
    if r[0] == '/':
        r[2:5], r[6] = usr[2:5], usr[6]
    if r[0] == '/run':
        r[6] = usr[6]
    print('\t'.join(r))
EOF
diff "$work/python-canonical.tsv" "$work/python.tsv" >"$work/tree.diff" ||
	fail "pulled tree differs from expected: $(head -5 "$work/tree.diff")"
# A store that has every file (a dir: import of the tree) but none of
# the layers: trusting the artifact, the pull fetches no layer blob.
n2=$work/node2
"$cs" --root "$n2" import "dir:$mnt" --name files >/dev/null
# ... and one that lacks the largest file: the layers are fetched.
n3=$work/node3
cp -a "$mnt" "$work/tree"
big=$(cd "$work/tree" && find . -type f -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2-)
rm "$work/tree/$big"
"$cs" --root "$n3" import "dir:$work/tree" --name files >/dev/null
rm -rf "$work/tree"
"${N[@]}" umount "$mnt"

step "registry: --trust-artifact and every object present: no layer fetched"
layer_gets() { # FROM-OFFSET: GETs of the sealed image's layer blobs since
	sleep 0.2 # (the access log line follows the response)
	python3 - "$work/py/blobs/sha256/${new#sha256:}" "$work/registry/registry.log" "$1" <<'EOF2'
import json, sys
layers = [l["digest"] for l in json.load(open(sys.argv[1]))["layers"]]
log = open(sys.argv[2], "rb").read()[int(sys.argv[3]):].decode(errors="replace")
print(sum(1 for line in log.splitlines() for d in layers
          if "GET /v2/debian-python/blobs/" + d in line))
EOF2
}
off=$(stat -c %s "$work/registry/registry.log")
"$cs" --root "$n2" pull "docker://$REGISTRY/debian-python:sealed" --insecure --trust-artifact --require-sealed --name python --json >"$work/pull2.json" ||
	fail "trusted pull onto a store with every object failed"
jcheck "j['digest'] == '$canon' and j['artifact'] and j['sealed'] and j['objects_new'] == 0 and all(l['source'] == 'none' and l['bytes_fetched'] == 0 for l in j['layers'])" \
	"trusted pull with every object present: $(cat "$work/pull2.json")" <"$work/pull2.json"
[ "$(layer_gets "$off")" -eq 0 ] || fail "trusted pull with every object present fetched a layer blob"
"$cs" --root "$n2" fsck --json | jcheck "j['ok'] and j['problems'] == []" "fsck after the trusted pull"
# Without --trust-artifact the layers are the input: fetched.
off=$(stat -c %s "$work/registry/registry.log")
"$cs" --root "$n2" pull "docker://$REGISTRY/debian-python:sealed" --insecure --name python2 --json >"$work/pull3.json"
jcheck "j['digest'] == '$canon' and all(l['source'] == 'blob' for l in j['layers'])" "untrusted pull: $(cat "$work/pull3.json")" <"$work/pull3.json"
[ "$(layer_gets "$off")" -ge 1 ] || fail "the untrusted pull fetched no layer"
# An object missing: the layers come, and bring it.
off=$(stat -c %s "$work/registry/registry.log")
"$cs" --root "$n3" pull "docker://$REGISTRY/debian-python:sealed" --insecure --trust-artifact --name python --json >"$work/pull4.json"
jcheck "j['digest'] == '$canon' and j['objects_new'] >= 1 and all(l['source'] == 'blob' and l['bytes_fetched'] > 0 for l in j['layers'])" \
	"trusted pull with an object missing: $(cat "$work/pull4.json")" <"$work/pull4.json"
[ "$(layer_gets "$off")" -ge 1 ] || fail "trusted pull with an object missing fetched no layer"
"$cs" --root "$n3" fsck --verify --json | jcheck "j['ok'] and j['problems'] == []" "fsck after the trusted pull with an object missing"

step "registry: the tampered image is refused on pull"
skopeo copy -q --dest-tls-verify=false --preserve-digests "oci:$work/evil:latest" "docker://$REGISTRY/debian-python:evil" ||
	fail "skopeo copy of the tampered image"
before=$(snap "$node")
if "${N[@]}" pull "docker://$REGISTRY/debian-python:evil" --insecure --name evil 2>"$work/err"; then
	fail "pulled the tampered image"
fi
grep -q "layer $evil_layer: not the sealed layer" "$work/err" || fail "pull refusal: $(cat "$work/err")"
[ "$(snap "$node")" = "$before" ] || fail "the refused pull changed the store"
"${N[@]}" fsck --json | jcheck "j['ok'] and j['problems'] == []" "fsck after the refused pull"

step "registry: signed images, inline and as the spec's artifact"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key.pem" -out "$work/cert.pem" \
	-days 30 -subj /CN=cfs-seal-test 2>/dev/null
# Inline: seal --sign-key, pushed as it is.
layout_copy "$corpus/debian-minbase" "$work/smb"
"$o2c" seal "oci:$work/smb" --sign-key "$work/key.pem" --sign-cert "$work/cert.pem" --json >"$work/smb.json"
smb_canon=$(jget "j['composefs.merged.erofs.v1.fsverity-sha256-12']" <"$work/smb.json")
skopeo copy -q --dest-tls-verify=false --preserve-digests "oci:$work/smb:latest" "docker://$REGISTRY/minbase:signed" ||
	fail "skopeo copy of the signed image"
n4=$work/node4
"$cs" --root "$n4" pull "docker://$REGISTRY/minbase:signed" --insecure --require-signed \
	--trust-cert "$work/cert.pem" --name mb --json >"$work/pull5.json" || fail "pull of the signed image"
jcheck "j['digest'] == '$smb_canon' and j['sealed'] and j['signature_checked']" "signed pull: $(cat "$work/pull5.json")" <"$work/pull5.json"
# Artifact mode: the image unchanged, the spec's artifact under the
# referrers tag (the tag fallback: this registry has no referrers API).
cp -a "$corpus/debian-python" "$work/apy"
"$o2c" artifact "oci:$work/apy" "$work/apy" --sign-key "$work/key.pem" --sign-cert "$work/cert.pem" --json >"$work/apy.json"
apy_canon=$(jget "j['composefs.merged.erofs.v1.fsverity-sha256-12']" <"$work/apy.json")
apy_tag=$(jget "j['tag']" <"$work/apy.json")
skopeo copy -q --dest-tls-verify=false --preserve-digests "oci:$work/apy:latest" "docker://$REGISTRY/apy:latest" ||
	fail "skopeo copy of the image"
skopeo copy -q --dest-tls-verify=false --all "oci:$work/apy:$apy_tag" "docker://$REGISTRY/apy:$apy_tag" ||
	fail "skopeo copy of the spec's artifact"
"$cs" --root "$n4" pull "docker://$REGISTRY/apy:latest" --insecure --require-signed \
	--trust-cert "$work/cert.pem" --name apy --json >"$work/pull6.json" || fail "pull with the spec's artifact"
jcheck "j['digest'] == '$apy_canon' and j['sealed'] and j['signature_checked']" "artifact-mode pull: $(cat "$work/pull6.json")" <"$work/pull6.json"
"$cs" --root "$n4" mount apy "$mnt"
[ -x "$mnt/usr/bin/python3" ] || [ -L "$mnt/usr/bin/python3" ] || fail "the artifact-mode image has no python3"
"$cs" --root "$n4" umount "$mnt"
# The attack in artifact mode: a layer swapped, digests fixed, and the
# artifact re-pointed at the new manifest (its signatures still verify:
# they sign the sealed digests, which the layers no longer give).
evil2_layer=$(make_evil "$work/apy" "$work/evil2")
evil2_manifest=$(python3 -c "import json;print(json.load(open('$work/evil2/index.json'))['manifests'][0]['digest'])")
forge_spec() { # the entries to drop (the spec makes manifest and config optional)
python3 - "$work/evil2" "$apy_tag" "$evil2_manifest" "$1" <<'EOF' || fail "forging the artifact"
import hashlib, json, os, sys
lay, old_tag, subject, drop = sys.argv[1:5]
idx = json.load(open(f'{lay}/index.json'))
blob = lambda d: open(f"{lay}/blobs/sha256/{d[7:]}", 'rb').read()
def put(b):
    d = hashlib.sha256(b).hexdigest()
    p = f'{lay}/blobs/sha256/{d}'
    if not os.path.exists(p):
        open(p, 'wb').write(b)
    return 'sha256:' + d, len(b)
size = os.path.getsize(f"{lay}/blobs/sha256/{subject[7:]}")
for e in idx['manifests']:
    if e.get('annotations', {}).get('org.opencontainers.image.ref.name') not in (old_tag, 'sha256-' + subject[7:]):
        continue
    refs = json.loads(blob(e['digest']))
    for r in refs['manifests']:
        a = json.loads(blob(r['digest']))
        a['subject'] = {'mediaType': 'application/vnd.oci.image.manifest.v1+json', 'digest': subject, 'size': size}
        gone = ['composefs.%s.fsverity-sha256-12' % r for r in drop.split('+') if r != 'none']
        a['layers'] = [l for l in a['layers'] if not any(k in l['annotations'] for k in gone)]
        r['digest'], r['size'] = put(json.dumps(a).encode())
    e['digest'], e['size'] = put(json.dumps(refs).encode())
    e['annotations']['org.opencontainers.image.ref.name'] = 'sha256-' + subject[7:]
os.unlink(f'{lay}/index.json')
json.dump(idx, open(f'{lay}/index.json', 'w'))
EOF
skopeo copy -q --dest-tls-verify=false --all "oci:$work/evil2:sha256-${evil2_manifest#sha256:}" \
	"docker://$REGISTRY/apy:sha256-${evil2_manifest#sha256:}" || fail "skopeo copy of the forged artifact"
}
skopeo copy -q --dest-tls-verify=false --preserve-digests "oci:$work/evil2:latest" "docker://$REGISTRY/apy:evil" ||
	fail "skopeo copy of the tampered image"
before=$(snap "$n4")
for variant in none manifest manifest+config; do
	forge_spec "$variant"
	require=--require-signed
	case $variant in
	none) want="not the sealed manifest: composefs.manifest.fsverity-sha256-12 is [0-9a-f]\{64\}, the manifest gives [0-9a-f]\{64\}$" ;;
	manifest) want="not the sealed config: composefs.config.fsverity-sha256-12 is [0-9a-f]\{64\}, the config gives [0-9a-f]\{64\}$" ;;
	# Without the config's signature --require-signed refuses at once;
	# without it the merged digest does.
	manifest+config) want="not the sealed image: composefs.merged.erofs.v1.fsverity-sha256-12 is $apy_canon, the image is [0-9a-f]\{64\}$" require= ;;
	esac
	if "$cs" --root "$n4" pull "docker://$REGISTRY/apy:evil" --insecure $require \
		--trust-cert "$work/cert.pem" --name evil 2>"$work/err"; then
		fail "pulled the tampered image with a forged artifact (dropped: $variant)"
	fi
	grep -q "$want" "$work/err" || fail "artifact-mode attack (dropped: $variant): $(cat "$work/err")"
	[ "$(snap "$n4")" = "$before" ] || fail "the refused pull changed the store ($variant)"
done
if "$cs" --root "$n4" pull "docker://$REGISTRY/apy:evil" --insecure --require-signed \
	--trust-cert "$work/cert.pem" --name evil 2>"$work/err"; then
	fail "--require-signed pulled an image whose artifact lacks the config signature"
fi
grep -q "not signed (no composefs.config.fsverity-sha256-12.sig)\|not the sealed image" "$work/err" ||
	fail "--require-signed: $(cat "$work/err")"
"$cs" --root "$n4" fsck --json | jcheck "j['ok'] and j['problems'] == []" "fsck after the refused artifact-mode pull"
: "$evil2_layer"
echo "$me: ok"
