#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# Partial pulls (issue 18, docs/distribution.md "Partial pulls"), against
# a real registry: skopeo 1.18 (the trixie root of podman5-root.sh)
# pushes debian-minbase and its nightly rebuild debian-minbase-rebuilt
# (5,226 of 5,230 files the same, no layer shared) as zstd:chunked with
# a tar-split; cfs-store pulls through range-proxy.py, which counts every
# byte the registry sends.
#
#  (a) debian-minbase-rebuilt onto debian-minbase: at most 2 MB fetched
#      in all (manifest, config, TOC, tar-split, the new files), the
#      image byte for byte what oci2cfs makes of the original layout,
#      fsck --verify clean. Pulled again: nothing but metadata fetched.
#  (b) the same image with gzip layers, and with --no-partial: the whole
#      layer is fetched. Into an empty store: the whole layer too, and
#      no range request is made. Into a store with records but few of
#      the files: the TOC and tar-split, then the whole layer, both
#      counted in --json.
#  (c) registries that answer ranges with 200, 416, 400 or 501: the pull
#      is still correct, and the blob is fetched whole once (the answer
#      of 200 to the TOC's ranges is cut off at its first bytes).
#  (d) a TOC that does not match its checksum, a file whose content does
#      not match its TOC digest, a range answer cut short: each refused
#      with one line naming the layer, and the store as it was.
#  (e) objects of the store changed behind its back, whose SHA-256 the
#      records pair: the file is refused (from the store), no image.
#  (f) skopeo 1.9's zstd:chunked (no tar-split): fetched whole; with
#      --trust-toc built from its TOC (at most 2 MB fetched, the same
#      image here, the layer not recorded: its diff_id is unchecked).
#  (g) kill -9 at several moments of a partial pull: fsck is clean and
#      the next pull makes the image.
#
# Needs root, debootstrap and the Debian mirror (for the root, once),
# skopeo and docker-registry. Environment: CFS_BIN, CFS_TESTS, CFS_SRC,
# CFS_TEST_TMP, CFS_CORPUS (optional).
set -euo pipefail

. "$(dirname "$0")/lib.sh"
test_init partial-pull CFS_SRC CFS_TESTS
need_root "chroot into the trixie root"
need_tool debootstrap skopeo docker-registry python3
. "$CFS_SRC/tests/scripts/registry.sh"
cs=$CFS_BIN/cfs-store
need_exec "$cs" "$CFS_BIN/oci2cfs"
corpus=$("$CFS_SRC/tests/scripts/need-corpus.sh")
proot=$("$CFS_SRC/tests/scripts/podman5-root.sh" "$CFS_TESTS/podman5")
[ -x "$proot/usr/bin/skopeo" ] || fail "no skopeo in $proot"
scratch=$(mktemp -d "$proot/tmp/cfs-partial.XXXXXX")
on_exit "rm -rf '$scratch'"

cd "$work"
registry_start "$work/registry" || fail "registry did not start"
for n in debian-minbase debian-minbase-rebuilt; do
	cp -a "$corpus/$n" "$scratch/$n"
	chroot "$proot" skopeo copy -q --dest-tls-verify=false \
		--dest-compress-format zstd:chunked "oci:/tmp/${scratch##*/}/$n" \
		"docker://$REGISTRY/$n:zc" || fail "$n: skopeo 1.18 push failed"
done
skopeo copy -q --dest-tls-verify=false "oci:$corpus/debian-minbase-rebuilt" \
	"docker://$REGISTRY/debian-minbase-rebuilt:gzip" 2>/dev/null ||
	fail "push of the gzip image failed"
want=$("$CFS_BIN/oci2cfs" --objects objects --print-digest \
	"oci:$corpus/debian-minbase-rebuilt" img.cfs)
rm -rf objects img.cfs

proxy_pid=
proxy() { # MODE: start range-proxy.py in MODE; sets PROXY
	[ -z "$proxy_pid" ] || kill "$proxy_pid" 2>/dev/null || true
	: >proxy.log
	rm -f proxy.port
	python3 "$CFS_SRC/tests/scripts/range-proxy.py" "$REGISTRY" "$1" \
		proxy.log >proxy.port 2>proxy.err &
	proxy_pid=$!
	for _ in $(seq 50); do
		[ -s proxy.port ] && break
		sleep 0.1
	done
	PROXY=127.0.0.1:$(head -n 1 proxy.port)
}
on_exit '[ -z "$proxy_pid" ] || kill "$proxy_pid" 2>/dev/null || true'
fetched() { awk '{ s += $2 } END { print s + 0 }' proxy.log; }
ranges() { awk '$1 == 206' proxy.log | wc -l; }
pull() { # ROOT REF [OPTION...]: pull through the proxy, --json to pull.json
	local root=$1 ref=$2
	shift 2
	rc=0
	"$cs" --root "$root" pull --insecure "docker://$PROXY/$ref" "$@" \
		--json >pull.json 2>pull.err || rc=$?
}
image_is() { # WHAT
	[ "$rc" -eq 0 ] || fail "$1: pull failed: $(cat pull.err)"
	python3 - "$want" <<'PY' || fail "$1: not the image of the original layout"
import json, sys
j = json.load(open("pull.json"))
sys.exit(0 if j["digest"] == sys.argv[1] else 1)
PY
}
state() { # ROOT: what a failed pull must leave as it was
	(cd "$1" && find objects images layers blobs -type f | sort &&
		cat names.json 2>/dev/null) | sha256sum
}

step "the base, whole: an empty store has no content to look up"
proxy plain
pull base debian-minbase:zc --name base
[ "$rc" -eq 0 ] || fail "pull of debian-minbase: $(cat pull.err)"
[ "$(ranges)" = 0 ] || fail "an empty store asked for ranges: $(cat proxy.log)"
cp -a base base.orig

step "(a) debian-minbase-rebuilt onto debian-minbase"
: >proxy.log
pull base debian-minbase-rebuilt:zc --name rebuilt
image_is "(a)"
got=$(fetched)
echo "fetched $got bytes in $(wc -l <proxy.log) requests ($(ranges) of ranges)"
[ "$got" -le 2000000 ] || fail "(a) fetched $got bytes, want <= 2 MB: $(cut -c1-200 proxy.log)"
[ "$(ranges)" -ge 2 ] || fail "(a) no range requests for the files: $(cut -c1-200 proxy.log)"
python3 - "$got" <<'PY' || fail "(a) --json does not report the bytes fetched: $(cat pull.json)"
import json, sys
j = json.load(open("pull.json"))
n = sum(l["bytes_fetched"] for l in j["layers"])
ok = all(l["partial"] and l["diff_id_checked"] for l in j["layers"])
sys.exit(0 if ok and 500000 < n <= int(sys.argv[1]) else 1)
PY
"$cs" --root base fsck --verify --json >fsck.json || true
jcheck_file fsck.json "j['ok']" "(a) fsck --verify"
: >proxy.log
pull base debian-minbase-rebuilt:zc --name rebuilt
image_is "(a) again"
[ "$(ranges)" = 0 ] || fail "(a) again: ranges fetched: $(cat proxy.log)"
[ "$(fetched)" -lt 20000 ] || fail "(a) again: $(fetched) bytes fetched"

step "(b) gzip layers, --no-partial: the whole layer"
zc_blob=$(python3 - "$REGISTRY" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request(
    "http://%s/v2/debian-minbase-rebuilt/manifests/zc" % sys.argv[1],
    headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
print(json.load(urllib.request.urlopen(req))["layers"][0]["size"])
PY
)
blob=$(python3 - "$corpus/debian-minbase-rebuilt" <<'PY'
import json, sys
d = sys.argv[1]
i = json.load(open(d + "/index.json"))
m = json.load(open(d + "/blobs/sha256/" + i["manifests"][0]["digest"][7:]))
print(m["layers"][0]["size"])
PY
)
rm -rf base && cp -a base.orig base
: >proxy.log
pull base debian-minbase-rebuilt:gzip
image_is "(b) gzip"
jcheck_file pull.json "not any(l['partial'] for l in j['layers'])" "(b) gzip: --json says partial"
[ "$(fetched)" -ge "$blob" ] || fail "(b) gzip: $(fetched) bytes, the layer has $blob"
rm -rf base && cp -a base.orig base
: >proxy.log
pull base debian-minbase-rebuilt:zc --no-partial
image_is "(b) --no-partial"
[ "$(ranges)" = 0 ] || fail "(b) --no-partial asked for ranges"
[ "$(fetched)" -ge 40000000 ] || fail "(b) --no-partial: $(fetched) bytes only"
# A store with records but little of the content: the TOC and tar-split
# come, most files are missing, the layer comes whole; --json counts both.
python3 "$CFS_SRC/tests/scripts/tiny-oci.py" tiny 1 20 >/dev/null
"$cs" --root few import oci:tiny --name tiny >/dev/null || fail "(b) import of a tiny image"
: >proxy.log
pull few debian-minbase-rebuilt:zc
image_is "(b) mostly missing"
[ "$(ranges)" -ge 1 ] || fail "(b) mostly missing: no TOC fetched: $(cat proxy.log)"
reported=$(python3 -c 'import json; print(sum(l["bytes_fetched"] for l in json.load(open("pull.json"))["layers"]))')
echo "mostly missing: $(fetched) bytes fetched, --json says $reported"
[ "$reported" -gt $((zc_blob + 100000)) ] && [ $(($(fetched) - reported)) -lt 8192 ] ||
	fail "(b) mostly missing: $(fetched) bytes fetched, --json says $reported"
jcheck_file pull.json "not any(l['partial'] for l in j['layers'])" "(b) mostly missing: --json says partial"

step "(c) registries that refuse ranges: the whole blob, once, the right image"
for mode in ignore-range refuse-416 refuse-400 refuse-501; do
	proxy "$mode"
	rm -rf base && cp -a base.orig base
	pull base debian-minbase-rebuilt:zc
	image_is "(c) $mode"
	reported=$(python3 -c 'import json; print(sum(l["bytes_fetched"] for l in json.load(open("pull.json"))["layers"]))')
	echo "$mode: $(fetched) bytes in $(wc -l <proxy.log) requests (the blob: $zc_blob; --json: $reported)"
	# --json counts what came before the layer was fetched whole too
	# (all but the manifest and config)
	[ $(($(fetched) - reported)) -lt 8192 ] ||
		fail "(c) $mode: $(fetched) bytes fetched, --json says $reported"
	# the whole blob once, not once for the TOC and once for the files
	[ "$(fetched)" -lt $((zc_blob + zc_blob / 10)) ] ||
		fail "(c) $mode: $(fetched) bytes for a blob of $zc_blob"
done

step "(d) a wrong TOC, a wrong file, an answer cut short: refused"
rm -rf base && cp -a base.orig base
before=$(state base)
check_refused() { # MODE WHAT PATTERN
	proxy "$1"
	pull base debian-minbase-rebuilt:zc
	[ "$rc" -ne 0 ] || fail "$2: the pull succeeded"
	[ "$(wc -l <pull.err)" = 1 ] || fail "$2: not one line: $(cat pull.err)"
	grep -Eq "$3" pull.err || fail "$2: the error does not say it: $(cat pull.err)"
	grep -q "sha256:" pull.err || fail "$2: the error names no layer: $(cat pull.err)"
	[ "$(state base)" = "$before" ] || fail "$2: the store changed"
	"$cs" --root base fsck --json >fsck.json || true
	jcheck_file fsck.json "j['ok']" "$2: fsck"
	echo "$2: $(cat pull.err)"
}
check_refused corrupt-206:1 "a TOC that does not match its checksum" "TOC"
check_refused corrupt-206:2 "a file that does not match its TOC digest" \
	"does not match its TOC digest \(fetched\)|fetched content is damaged"
check_refused truncate-206:2 "a range answer cut short" "short|ended|truncat|partial"

step "(e) the store's copy of a file is not what the TOC says: refused"
# Objects the base's record pairs with a SHA-256, changed in place (same
# size): the rebuilt tar would not have the diff_id; the file is refused
# before that, naming it.
proxy plain
rec=$(find base/layers -type f | head -n 1)
"$CFS_SRC/tests/scripts/record.py" pairs "$rec" >pairs
[ "$(wc -l <pairs)" -gt 1000 ] || fail "(e) the base's record has $(wc -l <pairs) pairs"
changed=0
while read -r _ obj; do
	f=base/objects/${obj:0:2}/${obj:2}
	[ "$(stat -c %s "$f")" -gt 0 ] || continue
	printf 'X' | dd of="$f" bs=1 seek=0 conv=notrunc status=none
	changed=$((changed + 1))
done < <(head -n 50 pairs)
[ "$changed" -gt 0 ] || fail "(e) no object changed"
before=$(state base)
pull base debian-minbase-rebuilt:zc
[ "$rc" -ne 0 ] || fail "(e) the pull succeeded"
grep -q "does not match its TOC digest (from the store)" pull.err ||
	fail "(e) the error does not say it: $(cat pull.err)"
[ "$(wc -l <pull.err)" = 1 ] || fail "(e) not one line: $(cat pull.err)"
[ "$(state base)" = "$before" ] || fail "(e) the store changed"
echo "(e): $(cat pull.err)"

step "(f) no tar-split (skopeo 1.9): whole, or from the TOC with --trust-toc"
# (recompressed into a layout first: pushed straight to the registry,
# skopeo 1.9 would reuse the gzip blob it pushed above)
skopeo copy -q --dest-compress-format zstd:chunked \
	"oci:$corpus/debian-minbase-rebuilt" oci:zc19:latest 2>/dev/null ||
	fail "skopeo 1.9 copy to zstd:chunked failed"
skopeo copy -q --preserve-digests --dest-tls-verify=false oci:zc19:latest \
	"docker://$REGISTRY/debian-minbase-rebuilt:zc19" 2>/dev/null ||
	fail "skopeo 1.9 push of zstd:chunked failed"
python3 - zc19 <<'PY' || fail "(f) the pushed layer is not skopeo 1.9's zstd:chunked"
import json, sys
d = sys.argv[1]
i = json.load(open(d + "/index.json"))
m = json.load(open(d + "/blobs/sha256/" + i["manifests"][0]["digest"][7:]))
a = m["layers"][0].get("annotations", {})
sys.exit(0 if "io.containers.zstd-chunked.manifest-position" in a and
         not any("tarsplit" in k for k in a) else 1)
PY
proxy plain
rm -rf base && cp -a base.orig base
pull base debian-minbase-rebuilt:zc19
image_is "(f) without --trust-toc"
[ "$(fetched)" -ge 40000000 ] || fail "(f) no tar-split, no --trust-toc: only $(fetched) bytes"
rm -rf base && cp -a base.orig base
: >proxy.log
pull base debian-minbase-rebuilt:zc19 --trust-toc
# debian-minbase-rebuilt is one the TOC describes fully (docs/formats.md)
image_is "(f) --trust-toc"
echo "--trust-toc: fetched $(fetched) bytes in $(wc -l <proxy.log) requests"
[ "$(fetched)" -le 2000000 ] || fail "(f) --trust-toc fetched $(fetched) bytes"
jcheck_file pull.json "[(l['recorded'], l['partial'], l['diff_id_checked']) for l in j['layers']] == [(False, True, False)]" \
	"(f) a layer built from its TOC: partial, diff_id not checked, not recorded"
[ "$(find base/layers -type f | wc -l)" = 1 ] || fail "(f) a record was written"
"$cs" --root base fsck --verify --json >fsck.json || true
jcheck_file fsck.json "j['ok']" "(f) fsck --verify"

step "(g) a partial pull killed anywhere: fsck clean, the next pull finishes"
proxy plain
for delay in 0.05 0.2 0.35 0.5; do
	rm -rf base && cp -a base.orig base
	"$cs" --root base pull --insecure "docker://$PROXY/debian-minbase-rebuilt:zc" \
		>/dev/null 2>&1 &
	pid=$!
	sleep "$delay"
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	"$cs" --root base fsck --json >fsck.json || true
	jcheck_file fsck.json "j['ok']" "(g) fsck after a kill at ${delay} s"
	pull base debian-minbase-rebuilt:zc
	image_is "(g) the pull after a kill at ${delay} s"
done

echo "$me: PASS"
