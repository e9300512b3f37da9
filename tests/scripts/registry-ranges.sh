#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# The registry client of partial pulls (src/store/registry.c) against a
# real docker-registry on 127.0.0.1 and a proxy in front of it that
# misbehaves as registries do (tests/scripts/range-proxy.py). The image:
# one layer of 300 files of random content (make-files-layout.py), made
# zstd:chunked by skopeo 1.9.3. test-registry fetches its TOC by range,
# plans the files its --have says the store lacks, fetches those ranges
# and checks every byte against the layout's blob and every file against
# its digest (tests/unit/test-registry.c).
# (a) nothing there: all 300 files, by ranges (206), never the whole blob;
# (b) half there: more than 64 ranges, 64 a request, and less than the
#     blob fetched;
# (c) everything there: only the TOC fetched, to the byte;
# (d) a registry that ignores ranges (200) or refuses them (416, 400,
#     501): the same files, from the whole blob; one that refuses many
#     ranges in one request (416): one range a request;
# (e) bearer and basic authentication with the credentials of
#     REGISTRY_AUTH_FILE; without them, one line saying so;
# (f) an answer cut short, and one with a changed byte: refused with one
#     line (the TOC's checksum catches the change).
# Environment: CFS_BIN, CFS_SRC, CFS_TEST_TMP (tests/CMakeLists.txt).
set -euo pipefail

. "$(dirname "$0")/lib.sh"
test_init registry-ranges CFS_SRC
need_tool skopeo docker-registry python3
. "$CFS_SRC/tests/scripts/registry.sh"
tr=$CFS_BIN/../tests/test-registry
need_exec "$tr"

cd "$work"
registry_start "$work/registry" || fail "registry did not start"
python3 "$CFS_SRC/tests/scripts/make-files-layout.py" lay 300
skopeo copy -q --dest-compress-format zstd:chunked oci:lay:latest oci:zc:latest
skopeo copy -q --preserve-digests --dest-tls-verify=false oci:zc:latest \
	"docker://$REGISTRY/files:zc" 2>/dev/null
# the TOC's length, as annotated
toc_len=$(python3 - zc <<'PY'
import json, sys
d = sys.argv[1]
i = json.load(open(d + "/index.json"))
m = json.load(open(d + "/blobs/sha256/" + i["manifests"][0]["digest"][7:]))
a = m["layers"][0]["annotations"]
print(a["io.containers.zstd-chunked.manifest-position"].split(":")[1])
PY
)
blob_size=$(python3 -c 'import json,sys; d=sys.argv[1]; i=json.load(open(d+"/index.json")); m=json.load(open(d+"/blobs/sha256/"+i["manifests"][0]["digest"][7:])); print(m["layers"][0]["size"])' zc)

# run [--have H] HOST: test-registry's output in out, its status in rc
run() {
	local have=none
	if [ "$1" = --have ]; then
		have=$2
		shift 2
	fi
	rc=0
	"$tr" --insecure --have "$have" "docker://$1/files:zc" zc >out 2>&1 || rc=$?
}
field() { sed -n "s/.*\b$1 \([0-9]*\).*/\1/p" out | head -1; }
expect_ok() { # WHAT
	[ "$rc" -eq 0 ] || fail "$1: test-registry exit $rc: $(cat out)"
	grep -q ' 0 failed' out || fail "$1: $(cat out)"
}

step "(a) nothing there"
run "$REGISTRY"
expect_ok "(a)"
[ "$(field files)" = 300 ] || fail "(a) checked $(field files) files, want 300"
[ "$(field whole)" = 0 ] || fail "(a) took the whole blob: $(cat out)"
grep -q '" 206 ' registry/registry.log || fail "(a) no 206 in the registry's log"
if grep -q 'GET /v2/files/blobs/[^ ]* HTTP/1.1" 200 ' registry/registry.log; then
	fail "(a) a blob was sent whole"
fi

step "(b) half there"
run --have half "$REGISTRY"
expect_ok "(b)"
# one request that found no TLS, one for the TOC, then 64 ranges a request
ranges=$(field ranges)
[ "$ranges" -gt 64 ] || fail "(b) only $ranges ranges: the test needs more than 64"
[ "$(field requests)" = $((2 + (ranges + 63) / 64)) ] ||
	fail "(b) $(field requests) requests for $ranges ranges"
[ "$(field fetched)" -lt $((blob_size * 3 / 4)) ] ||
	fail "(b) fetched $(field fetched) of a $blob_size-byte blob"

step "(c) everything there"
run --have all "$REGISTRY"
expect_ok "(c)"
[ "$(field fetched)" = "$toc_len" ] ||
	fail "(c) fetched $(field fetched) bytes, the TOC has $toc_len"

proxy_pid=
proxy() { # MODE
	# the last proxy's port must not be read for this one's: the shell
	# truncates the file only once the background job has started
	rm -f proxy.log proxy.port
	python3 "$CFS_SRC/tests/scripts/range-proxy.py" "$REGISTRY" "$1" proxy.log >proxy.port &
	proxy_pid=$!
	# its first line, the port, once it listens
	for _ in $(seq 300); do
		grep -q '^[0-9][0-9]*$' proxy.port && break
		kill -0 "$proxy_pid" 2>/dev/null || fail "range-proxy.py $1 died"
		sleep 0.1
	done
	grep -q '^[0-9][0-9]*$' proxy.port || fail "range-proxy.py $1 did not start"
	PROXY=127.0.0.1:$(head -1 proxy.port)
}
proxy_stop() {
	kill "$proxy_pid" 2>/dev/null || true
	wait "$proxy_pid" 2>/dev/null || true
}
on_exit proxy_stop

step "(d) ranges ignored or refused"
for mode in ignore-range refuse-416 refuse-400 refuse-501; do
	proxy "$mode"
	run --have half "$PROXY"
	expect_ok "(d) $mode"
	[ "$(field whole)" -ge 1 ] || fail "(d) $mode: no whole blob taken: $(cat out)"
	# a registry that refused one range is asked for whole blobs from
	# then on: no TLS, the TOC's range refused, the blob for the TOC,
	# the blob for the files
	case $mode in
	refuse-*)
		[ "$(field requests)" = 4 ] ||
			fail "(d) $mode: $(field requests) requests, want 4: $(cat out)" ;;
	esac
	proxy_stop
done
proxy refuse-multi
run --have half "$PROXY"
expect_ok "(d) refuse-multi"
[ "$(field whole)" = 0 ] || fail "(d) refuse-multi took the whole blob"
multi=$(grep -c ',' proxy.log || true)
single=$(grep -c '^206 ' proxy.log || true)
[ "$multi" -ge 1 ] && [ "$single" -gt 64 ] ||
	fail "(d) refuse-multi: $multi refused, $single single ranges: $(head -3 proxy.log)"
proxy_stop

step "(e) authentication"
for mode in bearer basic; do
	proxy "$mode"
	printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$PROXY" "$(printf user:secret | base64)" >auth.json
	REGISTRY_AUTH_FILE=$work/auth.json run --have half "$PROXY"
	expect_ok "(e) $mode"
	grep -q '^401 ' proxy.log || fail "(e) $mode: the proxy never asked"
	REGISTRY_AUTH_FILE=$work/none.json HOME=$work XDG_RUNTIME_DIR= run "$PROXY"
	[ "$rc" -eq 3 ] || fail "(e) $mode without credentials: exit $rc: $(cat out)"
	grep -q 'no credentials in auth.json' out || fail "(e) $mode: $(cat out)"
	proxy_stop
done

step "(f) cut short, changed"
proxy truncate
run "$PROXY"
[ "$rc" -eq 3 ] || fail "(f) truncated: exit $rc: $(cat out)"
grep -q "files:zc: blob sha256:[0-9a-f]*: the registry's answer was cut short" out ||
	fail "(f) truncated: $(cat out)"
proxy_stop
proxy corrupt
run "$PROXY"
[ "$rc" -ne 0 ] || fail "(f) a changed byte went through"
grep -q 'TOC at offset [0-9]*: checksum does not match its annotation' out ||
	fail "(f) changed: $(cat out)"
proxy_stop
echo "$me: PASS"
