#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# Layer records (issue 13, docs/store.md "Layer records"): an import
# builds what it can from the store's records of earlier layers and
# reads only the layers it has no record of; the image is byte for byte
# the one a conversion from scratch writes.
#
#  - every split: for each multi-layer OCI fixture and each corpus image,
#    for every subset of its layers, the store keeps records of exactly
#    that subset; an import then reports those layers "record" (0 bytes
#    read) and the others "blob", and its image digest is the one
#    `oci2cfs` gives from scratch. The fixtures include a hardlink to a
#    file of a lower layer and a whiteout of a whole lower directory:
#    records are replayed through the applier, so they express anything
#    a layer does.
#  - across sources: records made from oci: serve a docker-archive and
#    an oci-archive of the same image (same diff_ids): no layer read.
#  - the everyday case: debian-python after debian-minbase reads only
#    its second layer; importing it again writes under 64 KiB (no copy
#    of the image, no blob).
#  - gc keeps the records a named image needs and their objects; after
#    rm, gc removes them; fsck checks them: a damaged record and a
#    record whose object is gone are reported, --repair drops them, and
#    the next import reads the layer and records it again.
#  - an interrupted repair (ROOT/repairing left behind, a record's object
#    gone): the import checks the records' objects, reads the layer whose
#    record lost one, and writes the object again; fsck reports the
#    marker, --repair removes it.
#  - content by SHA-256: a record pairs every object its import made
#    with the SHA-256 of its content (checked against sha256sum), no
#    more; a table out of order or of an impossible count is damage;
#    fsck --verify reports a wrong pair and --repair drops its record;
#    a record of format 1 (no pairs) is still used.
#
# Environment: CFS_BIN, CFS_SRC, CFS_TEST_TMP, CFS_CORPUS (optional:
# without a corpus, root and the Debian mirror are needed to build one).
set -euo pipefail

# shellcheck source=tests/scripts/lib.sh
. "$(dirname "$0")/lib.sh"
test_init store-records CFS_SRC
cs=$CFS_BIN/cfs-store
o2c=$CFS_BIN/oci2cfs
need_exec "$cs" "$o2c"
need_tool python3 zstd

python3 "$CFS_SRC/tests/oci/make-fixtures.py" "$work/fx" >/dev/null
corpus=$("$CFS_SRC/tests/scripts/need-corpus.sh")

n_layers() { # LAYOUT
	python3 - "$1" <<'PY'
import json, sys
r = sys.argv[1]
i = json.load(open(r + "/index.json"))
m = json.load(open(r + "/blobs/sha256/" + i["manifests"][0]["digest"][7:]))
print(len(m["layers"]))
PY
}

# For every subset of the layers of SOURCE: a store holding the records
# of exactly that subset, then an import that must reuse exactly those
# and give the digest of a conversion from scratch.
splits() { # NAME SOURCE LAYERS
	local name=$1 src=$2 n=$3 want root=$work/s-$1 mask i kept
	want=$("$o2c" --print-digest "$src" "$work/$name.cfs")
	rm -f "$work/$name.cfs"
	"$cs" --root "$root" import "$src" --name img --json >"$work/first.json"
	jcheck_file "$work/first.json" "j['digest'] == '$want' and all(l['source'] == 'blob' and l['recorded'] for l in j['layers'])" \
		"$name: first import (digest $want, every layer read and recorded)"
	mkdir "$root.all"
	cp -a "$root/layers/." "$root.all/"
	# One record per distinct diff_id, named by it.
	python3 - "$work/first.json" "$root.all" <<'PY' || fail "$name: records are not named by the diff_ids"
import json, os, sys
j = json.load(open(sys.argv[1]))
ids = {l["diff_id"][7:] for l in j["layers"]}
sys.exit(0 if set(os.listdir(sys.argv[2])) == ids else 1)
PY
	for ((mask = 0; mask < (1 << n); mask++)); do
		rm -f "$root/layers/"*
		kept=
		for ((i = 0; i < n; i++)); do
			if ((mask >> i & 1)); then
				id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][int(sys.argv[2])]["diff_id"][7:])' "$work/first.json" "$i")
				cp -a "$root.all/$id" "$root/layers/"
				kept+=1
			else
				kept+=0
			fi
		done
		"$cs" --root "$root" import "$src" --json >"$work/split.json" ||
			fail "$name: import with records of layers $kept failed"
		# A layer whose diff_id another kept layer shares is reused too.
		python3 - "$work/split.json" "$want" "$kept" "$work/first.json" <<'PY' ||
import json, sys
j, want, kept, first = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], json.load(open(sys.argv[4]))
ids = [l["diff_id"] for l in first["layers"]]
have = {ids[i] for i, k in enumerate(kept) if k == "1"}
ok = j["digest"] == want
for l in j["layers"]:
    reuse = l["diff_id"] in have
    ok = ok and (l["source"] == "record") == reuse and (l["bytes_read"] == 0) == reuse
sys.exit(0 if ok else 1)
PY
			fail "$name: records of layers $kept: $(cat "$work/split.json")"
	done
	echo "$me: $name: $((1 << n)) splits of $n layers, each $want"
	"$cs" --root "$root" fsck --json >"$work/fsck.json" || true
	jcheck_file "$work/fsck.json" "j['ok'] and j['records'] >= 1" "$name: fsck"
}

step "every split of the fixtures' layers"
for fx in hardlinks typechange xattrs zstd; do
	splits "fx-$fx" "oci:$work/fx/$fx" "$(n_layers "$work/fx/$fx")"
done

step "every split of the corpus images' layers"
for img in debian-python debian-python-zstd debian-caps debian-whiteouts edge-cases; do
	splits "$img" "oci:$corpus/$img" "$(n_layers "$corpus/$img")"
done

step "records across sources: oci: serves docker-archive: and oci-archive:"
root=$work/s-debian-python
want=$("$cs" --root "$root" inspect img --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')
cp -a "$root.all/." "$root/layers/"
for src in "docker-archive:$corpus/archives/debian-python.docker-archive.tar" \
	"oci-archive:$corpus/archives/debian-python.oci-archive.tar"; do
	"$cs" --root "$root" import "$src" --json >"$work/x.json"
	jcheck_file "$work/x.json" "j['digest'] == '$want' and all(l['source'] == 'record' and l['bytes_read'] == 0 for l in j['layers'])" \
		"$src: every layer from its record"
done

step "the everyday case: debian-python after debian-minbase"
root=$work/everyday
"$cs" --root "$root" import "oci:$corpus/debian-minbase" --name base >/dev/null
"$cs" --root "$root" import "oci:$corpus/debian-python" --name py --json >"$work/py.json"
jcheck_file "$work/py.json" "[l['source'] for l in j['layers']] == ['record', 'blob'] and j['layers'][0]['bytes_read'] == 0 and j['layers'][1]['bytes_read'] > 0" \
	"debian-python: base layer from its record, only the second read"

step "a re-import writes nothing but metadata"
# The bytes the import wrote (/proc/PID/io of a shell that waited for
# it counts its children): no copy of the image it has (1.8 MiB), no
# blob, only names.json and what the writer's directory takes. That is
# 4-12 KiB on a quiet machine; the count also takes in the file
# system's metadata blocks the process dirties again, which with other
# tests writing beside it has reached 88 KiB. The limit is far below a
# copy of the image and far above that noise (bench/distribution.sh
# measures the bytes a re-pull writes, alone).
if [ -r /proc/self/io ]; then
	wrote=$(bash -c '"$1" --root "$2" import "oci:$3/debian-python" --name py-again >/dev/null && awk "/^write_bytes/ { print \$2 }" /proc/$$/io' \
		_ "$cs" "$root" "$corpus")
	[ "$wrote" -lt 524288 ] || fail "a re-import of debian-python wrote $wrote bytes"
	"$cs" --root "$root" inspect py-again >/dev/null || fail "the re-import did not name the image"
	"$cs" --root "$root" rm py-again >/dev/null
else
	echo "$me: no /proc/self/io (CONFIG_TASK_IO_ACCOUNTING): bytes not checked"
fi

step "gc keeps what names need, removes the rest"
# base's layer is also py's first: both records stay while py is named.
"$cs" --root "$root" rm base >/dev/null
"$cs" --root "$root" gc --json >"$work/gc.json"
jcheck_file "$work/gc.json" "j['records'] == 0" "gc removed a record py needs"
[ "$(find "$root/layers" -type f | wc -l)" -eq 2 ] || fail "py's two records are not both kept"
# The base layer's objects include files py's layer replaced? They are
# kept with the record: a new import of the base alone finds them all.
"$cs" --root "$root" import "oci:$corpus/debian-minbase" --name base --json >"$work/b.json"
jcheck_file "$work/b.json" "j['layers'][0]['source'] == 'record' and j['objects_new'] == 0" \
	"base again: from its record, no object written"
"$cs" --root "$root" rm base py >/dev/null
"$cs" --root "$root" gc --json >"$work/gc.json"
jcheck_file "$work/gc.json" "j['records'] == 2" "gc after rm: both records removed"
[ -z "$(find "$root/layers" -type f)" ] || fail "records left after gc"
[ -z "$(find "$root/objects" -type f)" ] || fail "objects left after gc"
"$cs" --root "$root" fsck --json >"$work/fsck.json" || true
jcheck_file "$work/fsck.json" "j['ok']" "fsck after gc"

step "fsck: a damaged record, a record whose object is gone"
"$cs" --root "$root" import "oci:$corpus/debian-python" --name py >/dev/null
rec=$(find "$root/layers" -type f | sort | head -n 1)
other=$(find "$root/layers" -type f | sort | tail -n 1)
[ "$rec" != "$other" ] || fail "debian-python has one record, not two"
# An object the other record names (tests/scripts/record.py reads the
# format of src/convert/records.h, written from its description).
"$CFS_SRC/tests/scripts/record.py" objects "$other" >"$work/objects"
obj=$(head -n 1 "$work/objects")
[ -n "$obj" ] && [ -f "$root/objects/$obj" ] || fail "no object found in $other"
printf 'x' | dd of="$rec" bs=1 seek=100 conv=notrunc status=none
rm "$root/objects/$obj"
set +e
"$cs" --root "$root" fsck --json >"$work/fsck.json"
set -e
jcheck_file "$work/fsck.json" "not j['ok'] and [p['path'] for p in j['problems'] if p['kind'] == 'corrupt-record'] == ['layers/$(basename "$rec")'] and [p['path'] for p in j['problems'] if p['kind'] == 'record-missing-object'] == ['layers/$(basename "$other")']" \
	"fsck: the damaged record and the one whose object is gone"
"$cs" --root "$root" fsck --repair --json >"$work/repair.json" || true
[ ! -e "$rec" ] && [ ! -e "$other" ] || fail "--repair left a bad record"
"$cs" --root "$root" import "oci:$corpus/debian-python" --name py --json >"$work/again.json"
jcheck_file "$work/again.json" "all(l['source'] == 'blob' and l['recorded'] for l in j['layers'])" \
	"the layers of the dropped records were not read and recorded again"
[ -e "$rec" ] && [ -e "$other" ] || fail "the import did not record the layers again"
"$cs" --root "$root" fsck --verify --json >"$work/fsck.json" || true
jcheck_file "$work/fsck.json" "j['ok']" "fsck after the re-import"

step "records of earlier versions (not compressed) are read; junk after the frame is damage"
for f in "$root"/layers/*; do
	zstd -q -dc "$f" >"$work/record.raw" || fail "$f: not a zstd frame"
	mv "$work/record.raw" "$f"
done
"$cs" --root "$root" rm py >/dev/null
"$cs" --root "$root" import "oci:$corpus/debian-python" --name py --json >"$work/v1.json"
jcheck_file "$work/v1.json" "all(l['source'] == 'record' for l in j['layers'])" \
	"uncompressed records were not used"
"$cs" --root "$root" fsck --json >"$work/fsck.json" || true
jcheck_file "$work/fsck.json" "j['ok']" "fsck with uncompressed records"
"$cs" --root "$root" rm py >/dev/null
"$cs" --root "$root" gc >/dev/null
"$cs" --root "$root" import "oci:$corpus/debian-python" --name py >/dev/null
printf 'x' >>"$rec"
set +e
"$cs" --root "$root" fsck --json >"$work/fsck.json"
set -e
jcheck_file "$work/fsck.json" "not j['ok'] and [p['path'] for p in j['problems']] == ['layers/$(basename "$rec")']" \
	"fsck: a byte after the record's frame"
"$cs" --root "$root" fsck --repair >/dev/null || fail "fsck --repair of the record with junk"
"$cs" --root "$root" import "oci:$corpus/debian-python" --name py >/dev/null

step "content by SHA-256: the records' pairs"
rec_py=$CFS_SRC/tests/scripts/record.py
sroot=$work/sha-store
"$cs" --root "$sroot" import "oci:$corpus/debian-minbase" --name base >/dev/null
base_rec=$(find "$sroot/layers" -type f)
find "$sroot/objects" -type f -printf '%P\n' | sort >"$work/objs-before"
"$cs" --root "$sroot" import "oci:$corpus/debian-python" --name py >/dev/null
py_rec=$(find "$sroot/layers" -type f | grep -v "$base_rec")
python3 - "$sroot" "$base_rec" "$py_rec" "$work/objs-before" "$rec_py" <<'PY' || fail "the records' pairs"
import hashlib, subprocess, sys
root, base, py, before, tool = sys.argv[1:]
def out(*a):
    return subprocess.run([tool, *a], check=True, stdout=subprocess.PIPE,
                          text=True).stdout.split("\n")[:-1]
def sha(o):
    return hashlib.sha256(open(f"{root}/objects/{o[:2]}/{o[2:]}", "rb").read()).hexdigest()
old = {l.replace("/", "") for l in open(before).read().split()}
for rec, made_before in ((base, set()), (py, old)):
    objs = {o.replace("/", "") for o in out("objects", rec)}
    pairs = [l.split() for l in out("pairs", rec)]
    got = {o for _, o in pairs}
    # every object this import made, and only those
    assert got == objs - made_before, (rec, len(got), len(objs - made_before))
    for s, o in pairs:
        assert sha(o) == s, (rec, o)
    print(rec.rsplit("/", 1)[1][:12], len(objs), "objects,", len(pairs), "pairs")
PY
# A table of pairs out of order, or of a count the record cannot hold,
# is damage (fsck without --verify finds it).
cp "$py_rec" "$work/py-rec"
for bad in swap-pairs many-pairs; do
	"$rec_py" "$bad" "$work/py-rec" "$py_rec"
	set +e
	"$cs" --root "$sroot" fsck --json >"$work/fsck.json"
	set -e
	jcheck_file "$work/fsck.json" "not j['ok'] and [(p['kind'], p['path']) for p in j['problems']] == [('corrupt-record', 'layers/$(basename "$py_rec")')] and 'its SHA-256 pairs' in j['problems'][0]['message']" \
		"fsck: $bad"
done
cp "$work/py-rec" "$py_rec"
"$rec_py" zero-pair "$base_rec" "$work/zero" && cp "$work/zero" "$base_rec"
"$cs" --root "$sroot" fsck --json >"$work/fsck.json" || true
jcheck_file "$work/fsck.json" "j['ok']" "fsck without --verify reads the pairs' record"
set +e
"$cs" --root "$sroot" fsck --verify --json >"$work/fsck.json"
set -e
jcheck_file "$work/fsck.json" "not j['ok'] and [(p['kind'], p['path']) for p in j['problems']] == [('record-wrong-sha256', 'layers/$(basename "$base_rec")')]" \
	"fsck --verify: a pair whose SHA-256 is wrong"
"$cs" --root "$sroot" fsck --verify --repair >/dev/null || fail "fsck --repair of the wrong pair"
[ ! -e "$base_rec" ] || fail "--repair kept the record with the wrong pair"
"$rec_py" to-v1 "$py_rec" "$work/v1" && cp "$work/v1" "$py_rec"
"$cs" --root "$sroot" rm py >/dev/null
"$cs" --root "$sroot" import "oci:$corpus/debian-python" --name py --json >"$work/v1.json"
jcheck_file "$work/v1.json" "[l['source'] for l in j['layers']] == ['blob', 'record']" \
	"a record of format 1: used (the base layer's, dropped, read again)"
"$cs" --root "$sroot" fsck --verify --json >"$work/fsck.json" || true
jcheck_file "$work/fsck.json" "j['ok']" "fsck --verify with a record of format 1"

step "an interrupted repair: imports check the records' objects"
# A record is trusted to have its objects (imports, gc and repairs keep
# it so), except after a repair that was cut short: it removes objects
# before the records that name them, and leaves ROOT/repairing until it
# is done. The state such a repair leaves: an object of a record gone,
# the marker there.
rm "$root/objects/$obj"
touch "$root/repairing"
"$cs" --root "$root" rm py >/dev/null
"$cs" --root "$root" import "oci:$corpus/debian-python" --name py --json >"$work/marker.json"
lost=sha256:$(basename "$other")
jcheck_file "$work/marker.json" "[l['source'] for l in j['layers']] == [('blob' if l['diff_id'] == '$lost' else 'record') for l in j['layers']] and '$lost' in [l['diff_id'] for l in j['layers']]" \
	"with the marker: only the layer whose record lost an object ($lost) was read"
[ -f "$root/objects/$obj" ] || fail "with the marker: the lost object was not written again"
set +e
"$cs" --root "$root" fsck --json >"$work/fsck.json"
set -e
jcheck_file "$work/fsck.json" "not j['ok'] and [p['kind'] for p in j['problems']] == ['interrupted-repair']" \
	"fsck with the marker"
"$cs" --root "$root" fsck --repair >/dev/null || fail "fsck --repair with the marker"
[ ! -e "$root/repairing" ] || fail "fsck --repair left its marker"
"$cs" --root "$root" fsck --verify --json >"$work/fsck.json" || true
jcheck_file "$work/fsck.json" "j['ok']" "fsck after the repair"
echo "$me: ok"
