#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# Sealed images (issue 6): oci2cfs seal writes the composefs digests into
# a new manifest; conversion and import check them; a registry carries
# the sealed image to a node that pulls, verifies and mounts it.
#
#  - seal: annotations on every layer, merged on the last; the tag moves
#    to the sealed manifest (or --tag adds one); config and layer blobs
#    unchanged; sealing again gives the same manifest; a one-layer image's
#    layer digest is its merged digest and its image digest.
#  - determinism: two seals (--threads 1 and 8) and two conversions into
#    different object directories give the same digests.
#  - import: a sealed image is checked and reported sealed; --require-sealed
#    refuses an unsealed one, leaving the store as it was.
#  - attack: one layer swapped for another valid layer, manifest digest and
#    size and the config's diff_id fixed, annotations kept: refused naming
#    the layer and both digests, store unchanged (fsck clean, no image, no
#    name), locally and through the registry.
#  - registry: skopeo copy --preserve-digests to a private registry, then
#    cfs-store pull on a fresh store verifies and mounts; the tree equals
#    the corpus' expected listing.
#  - signed (issue 15): an image sealed with --sign-key, and an unsealed
#    one with the spec's artifact (signed) under the referrers tag, each
#    pushed with skopeo and pulled with --require-signed by a fresh
#    store; the attack in artifact mode (a layer swapped, the artifact
#    re-pointed at the new manifest) is refused naming both digests.
#  - trusted artifact: a store that has every file of the image (a dir:
#    import of its tree) but none of its layers pulls it with
#    --trust-artifact fetching no layer blob (the registry's access log)
#    and adding no object; without --trust-artifact the layers are
#    fetched; a store that lacks one file fetches the layers and gets it.
#
# Needs root (mount), skopeo, docker-registry. Environment: CFS_BIN,
# CFS_SRC, CFS_TEST_TMP, CFS_CORPUS (optional).
set -euo pipefail

me=seal
: "${CFS_BIN:?}" "${CFS_SRC:?}" "${CFS_TEST_TMP:?}"
cs=$CFS_BIN/cfs-store
o2c=$CFS_BIN/oci2cfs
corpus_tools="$CFS_SRC/tests/corpus"

fail() {
	echo "$me: FAIL: $*" >&2
	exit 1
}
step() { echo "== $me: $*"; }

[ "$(id -u)" -eq 0 ] || fail "must run as root (mount)"
for tool in skopeo docker-registry python3 mountpoint openssl; do
	command -v "$tool" >/dev/null || fail "required tool '$tool' is not installed (scripts/install-deps.sh)"
done
# shellcheck source=tests/scripts/registry.sh
. "$CFS_SRC/tests/scripts/registry.sh"

corpus=$("$CFS_SRC/tests/scripts/need-corpus.sh")
mkdir -p "$CFS_TEST_TMP"
work=$(mktemp -d "$(realpath "$CFS_TEST_TMP")/$me.XXXXXX")
mnt=$work/mnt
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	registry_stop
	mountpoint -q "$mnt" 2>/dev/null && { umount "$mnt" || umount -l "$mnt"; }
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

jget() { python3 -c 'import json,sys; j=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
jcheck() { # EXPR WHAT < JSON
	python3 -c 'import json,sys; j=json.load(sys.stdin); sys.exit(0 if eval(sys.argv[1]) else 1)' "$1" ||
		fail "$2"
}
manifest_of() { # LAYOUT [TAG]: the manifest digest index.json tags TAG
	python3 - "$1" "${2:-latest}" <<'EOF'
import json, sys
for m in json.load(open(sys.argv[1] + "/index.json"))["manifests"]:
    if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == sys.argv[2]:
        print(m["digest"])
EOF
}
blob() { echo "$1/blobs/sha256/${2#sha256:}"; }
# Every file of a store with its size and content hash: any change shows.
snap() { (cd "$1" && find . -type f ! -name lock ! -name names.lock -printf '%p %s\n' | sort && cat names.json 2>/dev/null) | sha256sum; }

step "seal debian-python"
cp -al "$corpus/debian-python" "$work/py"
old=$(manifest_of "$work/py")
"$o2c" seal "oci:$work/py" --json >"$work/seal.json"
new=$(jget "j['manifest_digest']" <"$work/seal.json")
merged=$(jget "j['composefs.merged.sha256-12']" <"$work/seal.json")
canon=$(jget "j['composefs.merged.erofs.v1.fsverity-sha256-12']" <"$work/seal.json")
[ "$(manifest_of "$work/py")" = "$new" ] || fail "index.json does not tag the sealed manifest $new"
[ "$new" != "$old" ] || fail "the sealed manifest is the old one"
[ "sha256:$(sha256sum <"$(blob "$work/py" "$new")" | cut -d' ' -f1)" = "$new" ] || fail "sealed manifest blob"
python3 - "$(blob "$work/py" "$old")" "$(blob "$work/py" "$new")" "$work/seal.json" <<'EOF' || fail "sealed manifest content"
import json, sys
old, new, res = (json.load(open(p)) for p in sys.argv[1:])
L, M = "composefs.layer.sha256-12", "composefs.merged.sha256-12"
SM, SC = "composefs.merged.erofs.v1.fsverity-sha256-12", "composefs.config.fsverity-sha256-12"
cann = new["config"].pop("annotations")
assert new["config"] == old["config"], "config descriptor changed"
assert cann == {SC: res[SC]}, "config annotations"
assert new.pop("annotations") == {SM: res[SM]}, "manifest annotations"
assert len(new["layers"]) == len(old["layers"]) == len(res["layers"]) == 2
for i, (a, b) in enumerate(zip(old["layers"], new["layers"])):
    ann = b.pop("annotations")
    assert a == b, "layer %d descriptor changed" % i
    assert ann[L] == res["layers"][i][L], "layer %d annotation" % i
    assert (M in ann) == (i == 1), "merged annotation on layer %d" % i
assert res[M] != res["layers"][0][L] != res["layers"][1][L]
EOF
[ "$("$o2c" "oci:$work/py" "$work/py.cfs" --print-digest)" = "$merged" ] ||
	fail "the sealed image does not convert to its merged digest"
"$o2c" seal "oci:$work/py" >"$work/again"
[ "$(cat "$work/again")" = "$new" ] || fail "sealing again gave $(cat "$work/again"), not $new"

step "seal --tag keeps the old tag; one layer: layer = merged = image"
cp -al "$corpus/debian-minbase" "$work/mb"
mb_old=$(manifest_of "$work/mb")
"$o2c" seal "oci:$work/mb" --tag sealed --json >"$work/mb.json"
[ "$(manifest_of "$work/mb" latest)" = "$mb_old" ] || fail "--tag moved 'latest'"
[ "$(manifest_of "$work/mb" sealed)" = "$(jget "j['manifest_digest']" <"$work/mb.json")" ] || fail "--tag sealed"
jcheck "j['layers'][0]['composefs.layer.sha256-12'] == j['composefs.merged.sha256-12']" "one layer: layer != merged" <"$work/mb.json"
[ "$("$o2c" "oci:$corpus/debian-minbase" "$work/mb.cfs" --print-digest)" = "$(jget "j['composefs.merged.sha256-12']" <"$work/mb.json")" ] ||
	fail "minbase's merged digest is not its image digest"
if "$o2c" seal "docker-archive:$corpus/archives/debian-python.docker-archive.tar" 2>"$work/err"; then
	fail "sealed a docker-archive"
fi
grep -q "only oci:PATH" "$work/err" || fail "docker-archive: $(cat "$work/err")"

step "a layer's digest is that of the layer alone, whiteouts kept"
# An independent route: unpack the whiteout layers of debian-whiteouts
# with Python, whiteouts as overlayfs whiteouts, and convert the directory.
cp -al "$corpus/debian-whiteouts" "$work/wo"
"$o2c" seal "oci:$work/wo" --json >"$work/wo.json"
for i in 2 3; do
	digest=$(jget "j['layers'][$i]['digest']" <"$work/wo.json")
	python3 "$CFS_SRC/tests/scripts/layer-tree.py" "$(blob "$work/wo" "$digest")" "$work/layer$i"
	got=$("$o2c" "dir:$work/layer$i" "$work/layer$i.cfs" --print-digest)
	want=$(jget "j['layers'][$i]['composefs.layer.sha256-12']" <"$work/wo.json")
	[ "$got" = "$want" ] || fail "layer $digest: unpacked alone gives $got, seal says $want"
done
[ -n "$(find "$work/layer3" -type c -print -quit)" ] || fail "no whiteouts in the unpacked layer"

step "determinism: independent seals and conversions agree"
cp -al "$corpus/debian-python" "$work/py1"
cp -al "$corpus/debian-python" "$work/py2"
"$o2c" seal "oci:$work/py1" --threads 1 --json | jget "json.dumps([j['composefs.merged.sha256-12'], j['layers'], j['manifest_digest']])" >"$work/d1"
"$o2c" seal "oci:$work/py2" --threads 8 --json | jget "json.dumps([j['composefs.merged.sha256-12'], j['layers'], j['manifest_digest']])" >"$work/d2"
cmp -s "$work/d1" "$work/d2" || fail "two seals differ: $(diff "$work/d1" "$work/d2")"
d1=$("$o2c" "oci:$work/py1" "$work/c1.cfs" --objects "$work/objects1" --threads 1 --print-digest)
d2=$("$o2c" "oci:$work/py2" "$work/c2.cfs" --objects "$work/objects2" --threads 8 --print-digest)
[ "$d1" = "$merged" ] && [ "$d2" = "$merged" ] || fail "conversions give $d1 and $d2, sealed $merged"

step "import checks the seal; --require-sealed"
root=$work/store
S=("$cs" --root "$root")
"${S[@]}" import "oci:$work/py" --name py --json >"$work/imp.json"
jcheck "j['digest'] == '$canon' and j['sealed']" "import: not sealed or not $canon" <"$work/imp.json"
before=$(snap "$root")
if "${S[@]}" import --require-sealed "oci:$corpus/debian-minbase" --name mb 2>"$work/err"; then
	fail "--require-sealed imported an unsealed image"
fi
[ "$(wc -l <"$work/err")" -eq 1 ] && grep -q "not sealed" "$work/err" || fail "--require-sealed: $(cat "$work/err")"
[ "$(snap "$root")" = "$before" ] || fail "a refused import changed the store"
"${S[@]}" import --require-sealed "oci:$work/mb:sealed" --name mb >/dev/null || fail "--require-sealed refused a sealed image"

step "attack: another valid layer under the old annotations"
make_evil() { # SEALED OUT
	python3 - "$1" "$2" "$corpus/debian-caps" <<'EOF'
import hashlib, json, os, shutil, sys
src, dst, donor = sys.argv[1:]
shutil.copytree(src, dst, copy_function=os.link)
def path(root, d): return os.path.join(root, "blobs", "sha256", d.split(":")[1])
def load(root, d): return json.load(open(path(root, d)))
def put(b):
    d = "sha256:" + hashlib.sha256(b).hexdigest()
    if not os.path.exists(path(dst, d)):
        with open(path(dst, d), "wb") as f:
            f.write(b)
    return d, len(b)
def tagged(root):
    return json.load(open(os.path.join(root, "index.json")))["manifests"][0]["digest"]
m = load(dst, tagged(dst))
c = load(dst, m["config"]["digest"])
dm = load(donor, tagged(donor))
dc = load(donor, dm["config"]["digest"])
# The donor's second layer: a real, valid layer, just not this one.
layer, diff_id = dm["layers"][1], dc["rootfs"]["diff_ids"][1]
os.link(path(donor, layer["digest"]), path(dst, layer["digest"]))
m["layers"][1]["digest"], m["layers"][1]["size"] = layer["digest"], layer["size"]
c["rootfs"]["diff_ids"][1] = diff_id
m["config"]["digest"], m["config"]["size"] = put(json.dumps(c).encode())
md, ms = put(json.dumps(m).encode())
index = json.load(open(os.path.join(dst, "index.json")))
index["manifests"][0]["digest"], index["manifests"][0]["size"] = md, ms
os.unlink(os.path.join(dst, "index.json"))  # a hard link to the source
with open(os.path.join(dst, "index.json"), "w") as f:
    json.dump(index, f)
print(layer["digest"])
EOF
}
evil_layer=$(make_evil "$work/py" "$work/evil")
want_layer=$(jget "j['layers'][1]['composefs.layer.sha256-12']" <"$work/seal.json")
if "$o2c" "oci:$work/evil" "$work/evil.cfs" 2>"$work/err"; then
	fail "oci2cfs converted the tampered image"
fi
[ ! -e "$work/evil.cfs" ] || fail "oci2cfs left an image behind"
before=$(snap "$root")
if "${S[@]}" import "oci:$work/evil" --name evil 2>"$work/err"; then
	fail "imported the tampered image"
fi
[ "$(wc -l <"$work/err")" -eq 1 ] || fail "not one line: $(cat "$work/err")"
grep -q "layer $evil_layer: not the sealed layer: composefs.layer.sha256-12 is $want_layer, the layer gives [0-9a-f]\{64\}$" "$work/err" ||
	fail "the refusal does not name the layer and both digests: $(cat "$work/err")"
[ "$(snap "$root")" = "$before" ] || fail "the refused import changed the store"
"${S[@]}" inspect evil >/dev/null 2>&1 && fail "the name evil exists"
"${S[@]}" fsck --json | jcheck "j['ok'] and j['problems'] == []" "fsck after the refusal"

step "artifact: the composefs image beside the image, checked or trusted"
"$o2c" artifact --image "oci:$work/py:latest" "$work/py" --json >"$work/art.json"
art_tag=$(jget "j['tag']" <"$work/art.json")
[ "$art_tag" = "sha256-${new#sha256:}" ] || fail "artifact tag $art_tag"
jcheck "j['composefs.merged.sha256-12'] == '$canon'" "artifact digest" <"$work/art.json"
python3 - "$work/py" "$art_tag" "$new" <<'EOF' || fail "artifact layout"
import json, sys
root, tag, subject = sys.argv[1:]
def blob(d): return json.load(open(root + "/blobs/sha256/" + d[7:]))
e = [m for m in json.load(open(root + "/index.json"))["manifests"]
     if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
assert len(e) == 1 and e[0]["mediaType"] == "application/vnd.oci.image.index.v1+json"
a = blob(blob(e[0]["digest"])["manifests"][0]["digest"])
assert a["artifactType"] == "application/vnd.oci2cfs.composefs.v1"
assert a["config"]["mediaType"] == "application/vnd.oci.empty.v1+json" and a["config"]["size"] == 2
assert a["subject"]["digest"] == subject
assert [l["mediaType"] for l in a["layers"]] == ["application/vnd.oci2cfs.composefs.image.v1.erofs"]
EOF
"$o2c" artifact --image "oci:$work/py:latest" "$work/py" >"$work/art2"
[ "$(cat "$work/art2")" = "$(jget "j['manifest_digest']" <"$work/art.json")" ] || fail "artifact not deterministic"
a1=$work/store-art
"$cs" --root "$a1" import "oci:$work/py:latest" --json >"$work/ia.json"
jcheck "j['artifact'] and j['sealed'] and j['digest'] == '$canon'" "import did not check the artifact" <"$work/ia.json"
"$cs" --root "$a1" import --trust-artifact "oci:$work/py:latest" --name t --json >"$work/it.json"
jcheck "j['artifact'] and j['digest'] == '$canon'" "--trust-artifact" <"$work/it.json"
# A forged artifact: the composefs image of another image under py's
# subject (its own annotation made to match).
forge() { # LAYOUT-WITH-ARTIFACT OTHER-ARTIFACT-LAYOUT OTHER-JSON OUT
	rm -rf "$4"
	cp -al "$1" "$4"
	python3 - "$4" "$art_tag" "$2" "$3" <<'EOF'
import hashlib, json, os, sys
root, tag, other, other_json = sys.argv[1:]
o = json.load(open(other_json))
def path(r, d): return os.path.join(r, "blobs", "sha256", d[7:])
def put(b):
    d = "sha256:" + hashlib.sha256(b).hexdigest()
    with open(path(root, d), "wb") as f:
        f.write(b)
    return d, len(b)
index = json.load(open(os.path.join(root, "index.json")))
e = [m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag][0]
x = json.load(open(path(root, e["digest"])))
a = json.load(open(path(root, x["manifests"][0]["digest"])))
if not os.path.exists(path(root, o["image_digest"])):
    os.link(path(other, o["image_digest"]), path(root, o["image_digest"]))
a["layers"][0]["digest"], a["layers"][0]["size"] = o["image_digest"], o["image_size"]
a["annotations"]["composefs.merged.sha256-12"] = o["composefs.merged.sha256-12"]
x["manifests"][0]["digest"], x["manifests"][0]["size"] = put(json.dumps(a).encode())
e["digest"], e["size"] = put(json.dumps(x).encode())
os.unlink(os.path.join(root, "index.json"))
with open(os.path.join(root, "index.json"), "w") as f:
    json.dump(index, f)
EOF
}
cp -al "$corpus/debian-caps" "$work/caps"
"$o2c" artifact --image "oci:$work/caps" "$work/caps" --json >"$work/caps-art.json"
forge "$work/py" "$work/caps" "$work/caps-art.json" "$work/forged"
before=$(snap "$a1")
"$cs" --root "$a1" import "oci:$work/forged:latest" --name forged 2>"$work/err" && fail "imported with a forged artifact"
grep -q "artifact sha256:[0-9a-f]*: its composefs image is $(jget "j['composefs.merged.sha256-12']" <"$work/caps-art.json"), the image converts to $canon" "$work/err" ||
	fail "forged artifact: $(cat "$work/err")"
# Trusted, it still cannot name objects the layers do not bring.
"$cs" --root "$a1" import --trust-artifact "oci:$work/forged:latest" --name forged 2>"$work/err" && fail "trusted a forged artifact with foreign objects"
grep -q "names object [0-9a-f]\{64\}, which no layer has" "$work/err" || fail "trusted forged artifact: $(cat "$work/err")"
[ "$(snap "$a1")" = "$before" ] || fail "refused imports changed the store"

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
cp -al "$corpus/debian-minbase" "$work/smb"
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
