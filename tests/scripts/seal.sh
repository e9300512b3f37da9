#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# Sealed images (issue 6): oci2cfs seal writes the composefs digests into
# a new manifest; conversion and import check them. The part that needs
# neither root nor a registry: it runs as any user (seal-registry.sh
# carries the sealed image through a registry, and mounts).
#
#  - seal: annotations on every layer, merged on the last; the tag moves
#    to the sealed manifest (or --tag adds one); config and layer blobs
#    unchanged; sealing again gives the same manifest; a one-layer image's
#    layer digest is its merged digest and its image digest; a
#    docker-archive: is refused.
#  - determinism: two seals (--threads 1 and 8) and two conversions into
#    different object directories give the same digests.
#  - import: a sealed image is checked and reported sealed; --require-sealed
#    refuses an unsealed one, leaving the store as it was.
#  - attack: one layer swapped for another valid layer, manifest digest and
#    size and the config's diff_id fixed, annotations kept: oci2cfs
#    refuses it leaving no image; the import is refused naming the layer
#    and both digests, store unchanged (fsck clean, no image, no name).
#  - artifact: oci2cfs artifact --image puts the composefs image beside
#    the image under the referrers tag (its layout checked, the same
#    twice); import checks it, --trust-artifact takes it; a forged
#    artifact (another image's composefs image) is refused, and trusted
#    it still cannot name objects no layer brings; the store unchanged.
#
# A user who cannot read the corpus (root makes it with 0600 blobs) gets
# a skip. Environment: CFS_BIN, CFS_SRC, CFS_TEST_TMP, CFS_CORPUS
# (optional).
set -euo pipefail

# shellcheck source=tests/scripts/lib.sh
. "$(dirname "$0")/lib.sh"
test_init seal CFS_SRC
cs=$CFS_BIN/cfs-store
o2c=$CFS_BIN/oci2cfs
need_exec "$cs" "$o2c"
need_tool python3
# shellcheck source=tests/scripts/seal-lib.sh
. "$(dirname "$0")/seal-lib.sh"
corpus=$("$CFS_SRC/tests/scripts/need-corpus.sh")
# (a corpus root made has root's 0600 blobs: umoci's)
[ -r "$corpus/debian-python/index.json" ] ||
	skip "the corpus $corpus is not readable by $(id -un) (CFS_CORPUS names another)"

step "seal debian-python"
layout_copy "$corpus/debian-python" "$work/py"
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
layout_copy "$corpus/debian-minbase" "$work/mb"
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

step "determinism: independent seals and conversions agree"
layout_copy "$corpus/debian-python" "$work/py1"
layout_copy "$corpus/debian-python" "$work/py2"
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
layout_copy "$corpus/debian-caps" "$work/caps"
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
echo "$me: ok"
