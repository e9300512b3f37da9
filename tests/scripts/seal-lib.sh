# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
# shellcheck shell=bash
# Sourced by seal.sh and seal-registry.sh after lib.sh's test_init, with
# corpus set (need-corpus.sh): OCI layouts to seal and to tamper with.
#
#   layout_copy SRC DST  a copy of the layout SRC to change (oci2cfs seal
#                        and artifact add blobs and replace index.json,
#                        never writing into a file): hard links as
#                        root, else a plain copy (the corpus is root's,
#                        and fs.protected_hardlinks forbids linking
#                        another user's files)
#   manifest_of LAYOUT [TAG]
#                        the manifest digest index.json tags TAG (latest)
#   blob LAYOUT DIGEST   the path of a blob
#   snap ROOT            a hash of every file of the store at ROOT with
#                        its size, and its names: any change shows
#   make_evil SEALED OUT OUT: the layout SEALED with its second layer
#                        swapped for another valid layer (debian-caps'
#                        second), the manifest's digest and size and the
#                        config's diff_id fixed, the annotations kept;
#                        prints the new layer's digest

layout_copy() { # SRC DST
	if [ "$(id -u)" -eq 0 ]; then
		cp -al "$1" "$2"
	else
		cp -R "$1" "$2"
	fi
}

manifest_of() { # LAYOUT [TAG]
	python3 - "$1" "${2:-latest}" <<'EOF'
import json, sys
for m in json.load(open(sys.argv[1] + "/index.json"))["manifests"]:
    if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == sys.argv[2]:
        print(m["digest"])
EOF
}

blob() { echo "$1/blobs/sha256/${2#sha256:}"; }

snap() { (cd "$1" && find . -type f ! -name lock ! -name names.lock -printf '%p %s\n' | sort && cat names.json 2>/dev/null) | sha256sum; }

# $corpus: the sourcing test sets it.
# shellcheck disable=SC2154
make_evil() { # SEALED OUT
	python3 - "$1" "$2" "$corpus/debian-caps" <<'EOF'
import hashlib, json, os, shutil, sys
src, dst, donor = sys.argv[1:]
def link(a, b):
    try:
        os.link(a, b)
    except PermissionError:  # another user's file (not root)
        shutil.copy2(a, b)
shutil.copytree(src, dst, copy_function=link)
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
link(path(donor, layer["digest"]), path(dst, layer["digest"]))
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
