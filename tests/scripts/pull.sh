#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# cfs-store pull: skopeo's image proxy (only the blobs of layers the
# store has no record of) into a layout in the store's tmp/, then import.
#
# A local registry (docker-registry, plain HTTP on 127.0.0.1) holds the
# corpus' debian-minbase twice, as pushed (OCI manifest) and converted to
# a docker v2s2 manifest.
# (a) pull docker://... --insecure --name: the digest printed (and with
#     --json) is that of a plain import of oci:debian-minbase into
#     another store, whatever the manifest format; inspect shows the
#     name; tmp/ is empty.
# (b) pull docker-archive: and oci-archive: (corpus archives): the digest
#     of a plain import of oci:debian-python; nothing left in /var/tmp
#     (where skopeo unpacks an oci-archive unless told otherwise).
# (c) failures: an image the registry lacks (exit 1, exactly one line
#     "cfs-store: pull: ...skopeo..."), an unknown transport (exit 1,
#     skopeo's reason passed on), no transport (usage error, exit 2),
#     skopeo not in PATH, a bad --platform: each leaves every file of
#     the store as it was, fsck clean, tmp/ empty.
# (d) kill -9 of a pull while skopeo runs: skopeo dies with it, fsck
#     reports the stale writer directory as cleaned and no problem, and
#     the same pull then succeeds.
# (e) debian-python pushed, debian-minbase imported: the pull builds the
#     base layer from its record; the registry's access log shows no GET
#     of its blob, one of the new layer's.
# (f) the same pull again: every layer from its record, no blob GET.
# (g) a skopeo without experimental-image-proxy: skopeo copy, same
#     digest.
# (h) a relay that cuts the new layer's blob after 256 KiB: exit 1, one
#     line naming the source and the blob, the store as it was.
# (i) a layer corrupt 64 KiB into its gzip (the registry holds it,
#     digest and all): the conversion stops reading the stream where the
#     data breaks; the one-line error is the conversion's (the source,
#     the layer, the tar or compressed offset; no path in tmp/), not skopeo's about
#     the pipe closed under it; the store as it was.
# (j) two pulls at once into an empty store, of debian-minbase and of
#     debian-python (which shares its base layer): both succeed with the
#     digests of plain imports, the shared layer recorded once, fsck
#     --verify clean.
#
# Skips without skopeo or docker-registry (scripts/install-deps.sh).
# Environment: CFS_BIN, CFS_SRC, CFS_TEST_TMP (see tests/CMakeLists.txt),
# CFS_CORPUS (see need-corpus.sh).
set -euo pipefail

# shellcheck source=tests/scripts/lib.sh
. "$(dirname "$0")/lib.sh"
test_init pull CFS_SRC
cs=$CFS_BIN/cfs-store
need_exec "$cs"
need_tool skopeo docker-registry python3 pgrep
# shellcheck source=tests/scripts/registry.sh
. "$(dirname "$0")/registry.sh"

# Every file and directory of a store with its type and size.
listing() { (cd "$1" && find . -printf '%p %y %s\n' | LC_ALL=C sort); }
tmp_empty() { # ROOT WHAT
	[ -z "$(ls -A "$1/tmp")" ] || fail "$2: tmp/ not empty: $(ls -A "$1/tmp")"
}
is_digest() { [[ $1 =~ ^[0-9a-f]{64}$ ]]; }
# A pull into the store at $root that must fail: exit 1, one line on
# stderr matching the extended REGEX (in $work/err), every file of the store as it
# was, fsck clean.
pull_fails() { # WHAT REGEX PULL-ARGS...
	local what=$1 re=$2 rc
	shift 2
	listing "$root" > "$work/before"
	set +e
	timeout 120 "${S[@]}" pull "$@" > "$work/out" 2> "$work/err"
	rc=$?
	set -e
	[ $rc -eq 1 ] || fail "$what: exit $rc: $(cat "$work/err")"
	[ "$(wc -l < "$work/err")" -eq 1 ] || fail "$what: not one line: $(cat "$work/err")"
	grep -qE "$re" "$work/err" || fail "$what: the message does not match '$re': $(cat "$work/err")"
	listing "$root" > "$work/after"
	diff "$work/before" "$work/after" > "$work/diff" || fail "$what changed the store: $(cat "$work/diff")"
	"${S[@]}" fsck > "$work/fsck" || fail "fsck after $what: $(cat "$work/fsck")"
	echo "$me: $what: $(cat "$work/err")"
}

corpus=$("$CFS_SRC/tests/scripts/need-corpus.sh")
minbase=$corpus/debian-minbase
python_oci=$corpus/debian-python
darchive=$corpus/archives/debian-python.docker-archive.tar
oarchive=$corpus/archives/debian-python.oci-archive.tar
for f in "$minbase/index.json" "$python_oci/index.json" "$darchive" "$oarchive"; do
	[ -f "$f" ] || fail "corpus: no $f"
done
root=$work/store
S=("$cs" --root "$root")

step "registry"
registry_start "$work/registry" || fail "no registry"
reg=$REGISTRY
skopeo copy --quiet --dest-tls-verify=false "oci:$minbase:latest" "docker://$reg/minbase:1" ||
	fail "push minbase"
skopeo copy --quiet --dest-tls-verify=false --format v2s2 "oci:$minbase:latest" \
	"docker://$reg/minbase:v2s2" || fail "push minbase as v2s2"
skopeo inspect --raw --tls-verify=false "docker://$reg/minbase:v2s2" |
	jcheck "j['mediaType'] == 'application/vnd.docker.distribution.manifest.v2+json'" \
		"the v2s2 tag has no docker v2s2 manifest"

step "reference digests (plain import into a second store)"
ref=$work/ref
want_mb=$("$cs" --root "$ref" import "oci:$minbase")
want_py=$("$cs" --root "$ref" import "oci:$python_oci")
if ! is_digest "$want_mb" || ! is_digest "$want_py"; then
	fail "reference imports: '$want_mb' '$want_py'"
fi

step "(a) pull docker://"
"${S[@]}" pull "docker://$reg/minbase:1" --insecure --name mb > "$work/out" 2> "$work/err" ||
	fail "pull docker://: $(cat "$work/err")"
[ "$(wc -l < "$work/out")" -eq 1 ] || fail "pull printed more than the digest: $(cat "$work/out")"
got=$(cat "$work/out")
[ "$got" = "$want_mb" ] || fail "pull docker:// digest $got, plain import $want_mb"
[ ! -s "$work/err" ] || fail "pull wrote to stderr: $(cat "$work/err")"
tmp_empty "$root" "after pull"
"${S[@]}" inspect mb --json > "$work/insp.json"
jcheck "j['digest'] == '$want_mb' and j['names'] == ['mb'] and j['complete']" \
	"inspect mb: $(cat "$work/insp.json")" < "$work/insp.json"
jcheck "j['config'] is not None and j['config_digest'].startswith('sha256:')" \
	"inspect mb: no OCI config" < "$work/insp.json"
jcheck "j['source'] == 'docker://$reg/minbase:1'" "the pull's source is not recorded: $(cat "$work/insp.json")" < "$work/insp.json"
# The docker v2s2 manifest is converted to OCI on the way: same tree.
"${S[@]}" pull "docker://$reg/minbase:v2s2" --insecure --name mb2 --json > "$work/pull.json" ||
	fail "pull of a v2s2 manifest"
jcheck "j['digest'] == '$want_mb' and j['existed'] and j['names'] == ['mb2'] and j['objects_new'] == 0" \
	"pull v2s2 --json: $(cat "$work/pull.json")" < "$work/pull.json"
"${S[@]}" inspect mb2 --json > "$work/insp2.json"
jcheck "j['digest'] == '$want_mb'" "inspect mb2: $(cat "$work/insp2.json")" < "$work/insp2.json"
man=$(jget "j['manifest_digest']" < "$work/insp2.json")
[ -f "$root/blobs/sha256/${man#sha256:}" ] || fail "mb2: no manifest blob $man"
jcheck "j['mediaType'] == 'application/vnd.oci.image.manifest.v1+json'" \
	"mb2: the v2s2 manifest was not converted to OCI" < "$root/blobs/sha256/${man#sha256:}"
tmp_empty "$root" "after pull --json"
# Without --insecure skopeo insists on TLS, which the registry lacks.
set +e
"${S[@]}" pull "docker://$reg/minbase:1" --name tls > /dev/null 2> "$work/err"
rc=$?
set -e
[ $rc -eq 1 ] || fail "pull over plain HTTP without --insecure: exit $rc"
grep -Eq "^cfs-store: pull: docker://$reg/minbase:1: skopeo proxy: (OpenImage|GetManifest): ." "$work/err" ||
	fail "pull without --insecure: $(cat "$work/err")"

step "(b) pull docker-archive:, oci-archive:"
# skopeo unpacks an oci-archive: into a directory of its own (in
# /var/tmp by default, whatever TMPDIR says): the pull gives it one in
# the store's writer directory, which goes with it. No other test
# makes skopeo read an oci-archive.
vartmp() { find /var/tmp -maxdepth 1 -name 'oci[0-9]*' -user "$(id -u)" 2>/dev/null | LC_ALL=C sort; }
vartmp >"$work/vartmp.before"
got=$("${S[@]}" pull "docker-archive:$darchive" --name py-d) || fail "pull docker-archive:"
[ "$got" = "$want_py" ] || fail "pull docker-archive: digest $got, plain import $want_py"
got=$("${S[@]}" pull "oci-archive:$oarchive" --name py-o) || fail "pull oci-archive:"
[ "$got" = "$want_py" ] || fail "pull oci-archive: digest $got, plain import $want_py"
# A relative path is the caller's, not skopeo's working directory's.
got=$(cd "$(dirname "$oarchive")" && "${S[@]}" pull "oci-archive:./$(basename "$oarchive")") ||
	fail "pull of a relative oci-archive: path"
[ "$got" = "$want_py" ] || fail "relative oci-archive: digest $got"
tmp_empty "$root" "after archive pulls"
vartmp >"$work/vartmp.after"
cmp -s "$work/vartmp.before" "$work/vartmp.after" ||
	fail "archive pulls left in /var/tmp: $(comm -13 "$work/vartmp.before" "$work/vartmp.after" | tr '\n' ' ')"
"${S[@]}" fsck > "$work/fsck" || fail "fsck after the pulls: $(cat "$work/fsck")"

step "(c) failures leave the store as it was"
listing "$root" > "$work/before"
# ARGS fail: exit RC, stderr matching the extended REGEX, nothing on
# stdout, the store at $root as $work/before lists it.
refused() { # RC STDERR-REGEX ARGS...
	local want=$1 re=$2
	shift 2
	expect_fail "$work/out" "$work/err" "$@"
	[ "$rc" -eq "$want" ] || fail "'$*': exit $rc, want $want: $(cat "$work/err")"
	grep -Eq -- "$re" "$work/err" || fail "'$*': stderr: $(cat "$work/err")"
	[ ! -s "$work/out" ] || fail "'$*': stdout: $(cat "$work/out")"
	listing "$root" > "$work/after"
	diff "$work/before" "$work/after" > "$work/diff" ||
		fail "'$*' changed the store: $(cat "$work/diff")"
}
refused 1 "^cfs-store: pull: docker://$reg/nosuch:1: skopeo proxy: (OpenImage|GetManifest): .*nosuch" \
	"${S[@]}" pull "docker://$reg/nosuch:1" --insecure --name x
[ "$(wc -l < "$work/err")" -eq 1 ] || fail "missing image: not one line: $(cat "$work/err")"
refused 1 '^cfs-store: pull: nosuch:foo: skopeo proxy: OpenImage: .*unknown transport "nosuch"' \
	"${S[@]}" pull nosuch:foo
[ "$(wc -l < "$work/err")" -eq 1 ] || fail "unknown transport: not one line: $(cat "$work/err")"
refused 2 "^cfs-store: pull: 'nosuch': not TRANSPORT:REF" "${S[@]}" pull nosuch
grep -q "Try 'cfs-store --help' for more information." "$work/err" || fail "no Try line"
refused 2 "Try 'cfs-store --help'" "${S[@]}" pull "docker:" --name x
refused 2 "Try 'cfs-store --help'" "${S[@]}" pull "-x:y"
refused 2 "--force does not apply" "${S[@]}" pull "docker://$reg/minbase:1" --force
refused 2 "Try 'cfs-store --help'" "${S[@]}" pull
refused 1 '^cfs-store: pull: skopeo not found \(apt-get install skopeo\)$' \
	env PATH=/nonexistent "${S[@]}" pull "docker://$reg/minbase:1" --insecure
refused 1 '^cfs-store: pull: .*platform "linux": expected OS/ARCH' \
	"${S[@]}" pull "docker://$reg/minbase:1" --insecure --platform linux
"${S[@]}" fsck > "$work/fsck" || fail "fsck after the failures: $(cat "$work/fsck")"
grep -q "0 problems" "$work/fsck" || fail "fsck: $(cat "$work/fsck")"
tmp_empty "$root" "after the failures"

step "(d) kill -9 while skopeo runs"
# A store of its own: the others have the layers recorded, and a pull
# that fetches nothing ends before the kill.
root=$work/store-d
S=("$cs" --root "$root")
"${S[@]}" pull "docker-archive:$darchive" --name killed > /dev/null 2>&1 &
bg_pid=$!
kill_bg() { [ -z "$bg_pid" ] || kill -9 "$bg_pid" 2> /dev/null; }
on_exit kill_bg
layout=
for _ in $(seq 1000); do
	layout=$(compgen -G "$root/tmp/w-$bg_pid-*/layout" || true)
	[ -n "$layout" ] && break
	kill -0 "$bg_pid" 2> /dev/null || break
	sleep 0.01
done
[ -n "$layout" ] || fail "no layout appeared in tmp/"
wdir=$(basename "$(dirname "$layout")")
child=$(pgrep -P "$bg_pid" -x skopeo || true)
[ -n "$child" ] || fail "skopeo is not running"
kill -9 "$bg_pid"
wait "$bg_pid" 2> /dev/null || true
bg_pid=
# skopeo dies with its caller (PR_SET_PDEATHSIG), within a second (a
# zombie that nobody reaped yet is dead).
alive() { grep -qs '^State:[[:space:]]*[RSDTtWXIP]' "/proc/$1/status"; }
for _ in $(seq 20); do
	alive "$child" || break
	sleep 0.05
done
! alive "$child" || fail "skopeo outlived the killed pull"
[ -d "$root/tmp/$wdir" ] || fail "the killed pull's writer directory is gone already"
set +e
"${S[@]}" inspect killed > /dev/null 2>&1
rc=$?
set -e
[ $rc -eq 1 ] || fail "the killed pull named its image (exit $rc): the kill came too late"
"${S[@]}" fsck --json > "$work/fsck.json" || fail "fsck after kill -9: $(cat "$work/fsck.json")"
jcheck "j['ok'] and j['problems'] == [] and j['cleaned'] == ['tmp/$wdir']" \
	"fsck after kill -9: $(cat "$work/fsck.json")" < "$work/fsck.json"
tmp_empty "$root" "after fsck"
got=$("${S[@]}" pull "docker-archive:$darchive" --name killed) || fail "pull after kill -9"
[ "$got" = "$want_py" ] || fail "pull after kill -9: digest $got"
tmp_empty "$root" "after the pull after kill -9"
"${S[@]}" fsck --verify > "$work/fsck" || fail "fsck --verify: $(cat "$work/fsck")"

step "(e) a pull fetches only the layers the store has no record of"
skopeo copy --quiet --dest-tls-verify=false "oci:$python_oci:latest" "docker://$reg/python:1" ||
	fail "push python"
root=$work/store-e
S=("$cs" --root "$root")
"${S[@]}" import "oci:$minbase" --name base > /dev/null
# The layer blobs of the pushed image, in order.
mapfile -t blobs < <(skopeo inspect --raw --tls-verify=false "docker://$reg/python:1" |
	python3 -c 'import json,sys; print("\n".join(l["digest"] for l in json.load(sys.stdin)["layers"]))')
[ "${#blobs[@]}" -eq 2 ] || fail "python: ${#blobs[@]} layers, want 2"
gets() { # FROM-OFFSET DIGEST: blob GETs in the registry's access log
	tail -c +"$(($1 + 1))" "$work/registry/registry.log" | grep -c "GET /v2/python/blobs/$2" || true
}
off=$(stat -c %s "$work/registry/registry.log")
"${S[@]}" pull "docker://$reg/python:1" --insecure --name py --json > "$work/py.json" ||
	fail "pull python onto its base"
jcheck "j['digest'] == '$want_py' and [l['source'] for l in j['layers']] == ['record', 'blob'] and j['layers'][0]['bytes_read'] == 0" \
	"pull python onto its base: $(cat "$work/py.json")" < "$work/py.json"
# What came is what the registry holds of the new layer, nothing of the
# base: the blob streamed into the conversion.
size1=$(stat -c %s "$work/registry/storage/docker/registry/v2/blobs/sha256/${blobs[1]:7:2}/${blobs[1]:7}/data")
jcheck "[l['bytes_fetched'] for l in j['layers']] == [0, $size1] and j['layers'][1]['bytes_read'] == $size1" \
	"pull python onto its base: bytes fetched: $(cat "$work/py.json")" < "$work/py.json"
sleep 0.2 # (the access log line follows the response)
[ "$(gets "$off" "${blobs[0]}")" -eq 0 ] || fail "the base layer's blob was fetched"
[ "$(gets "$off" "${blobs[1]}")" -ge 1 ] || fail "the new layer's blob was not fetched (no access log?)"
tmp_empty "$root" "after the pull onto the base"
echo "$me: python onto its base: the base layer from its record, only ${blobs[1]:7:12} fetched"

step "(f) pulling an image the store has fetches no layer"
off=$(stat -c %s "$work/registry/registry.log")
"${S[@]}" pull "docker://$reg/python:1" --insecure --name py2 --json > "$work/py2.json" ||
	fail "pull python again"
jcheck "j['digest'] == '$want_py' and j['existed'] and all(l['source'] == 'record' for l in j['layers']) and j['objects_new'] == 0" \
	"pull python again: $(cat "$work/py2.json")" < "$work/py2.json"
sleep 0.2
[ "$(gets "$off" "${blobs[0]}")" -eq 0 ] && [ "$(gets "$off" "${blobs[1]}")" -eq 0 ] ||
	fail "a layer blob was fetched again"
"${S[@]}" fsck --verify > "$work/fsck" || fail "fsck --verify: $(cat "$work/fsck")"

step "(g) a skopeo without the image proxy: skopeo copy"
mkdir -p "$work/oldskopeo"
cat > "$work/oldskopeo/skopeo" <<'SH'
#!/bin/sh
for a in "$@"; do
	if [ "$a" = experimental-image-proxy ]; then
		echo 'FATA[0000] unrecognized command `skopeo experimental-image-proxy`' >&2
		exit 1
	fi
done
echo "$*" >> "${0%/*}/calls"
exec /usr/bin/skopeo "$@"
SH
chmod 755 "$work/oldskopeo/skopeo"
root=$work/store-g
S=("$cs" --root "$root")
got=$(PATH=$work/oldskopeo:$PATH "${S[@]}" pull "docker://$reg/python:1" --insecure --name py) ||
	fail "pull with a skopeo without the proxy"
[ "$got" = "$want_py" ] || fail "pull with skopeo copy: digest $got"
grep -Eq '(^| )copy ' "$work/oldskopeo/calls" || fail "skopeo copy was not run"
tmp_empty "$root" "after the pull with skopeo copy"

step "(h) a transfer that breaks in the middle of a blob"
# A TCP relay in front of the registry that cuts the response to a
# request for the new layer's blob after 256 KiB.
cat > "$work/relay.py" <<'PY'
import socket, sys, threading
port_file, upstream, cut = sys.argv[1], sys.argv[2], sys.argv[3].encode()
host, port = upstream.split(":")
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(16)
open(port_file, "w").write(str(ls.getsockname()[1]))
def pump(a, b, limit):
    n = 0
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            if limit is not None and n + len(d) > limit:
                b.sendall(d[:limit - n])
                break
            b.sendall(d)
            n += len(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
def serve(c):
    u = socket.create_connection((host, int(port)))
    first = c.recv(65536)
    limit = 256 * 1024 if cut in first else None
    u.sendall(first)
    threading.Thread(target=pump, args=(c, u, None), daemon=True).start()
    pump(u, c, limit)
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
python3 "$work/relay.py" "$work/relay.port" "$reg" "${blobs[1]}" &
relay_pid=$!
kill_relay() { [ -z "$relay_pid" ] || kill -9 "$relay_pid" 2> /dev/null; }
on_exit kill_relay
for _ in $(seq 50); do [ -s "$work/relay.port" ] && break; sleep 0.1; done
[ -s "$work/relay.port" ] || fail "the relay did not start"
relay=127.0.0.1:$(cat "$work/relay.port")
root=$work/store-h
S=("$cs" --root "$root")
"${S[@]}" import "oci:$minbase" --name base > /dev/null
pull_fails "a broken transfer" "^cfs-store: pull: docker://$relay/python:1: .*${blobs[1]:0:19}" \
	"docker://$relay/python:1" --insecure --name py
kill "$relay_pid" 2> /dev/null || true
wait "$relay_pid" 2> /dev/null || true
relay_pid=

step "(i) a corrupt layer stops the stream, and says why"
bad=$work/bad-layout
cp -r "$python_oci" "$bad"
python3 - "$bad" <<'PY'
import hashlib, json, os, sys
root = sys.argv[1]
def path(d): return os.path.join(root, "blobs", *d.split(":"))
idx = json.load(open(os.path.join(root, "index.json")))
md = idx["manifests"][0]["digest"]
man = json.load(open(path(md)))
layer = man["layers"][1]
data = bytearray(open(path(layer["digest"]), "rb").read())
for i in range(64 * 1024, 64 * 1024 + 4096):
    data[i] ^= 0x5a
d = "sha256:" + hashlib.sha256(data).hexdigest()
open(path(d), "wb").write(data)
layer["digest"] = d
mb = json.dumps(man).encode()
m = "sha256:" + hashlib.sha256(mb).hexdigest()
open(path(m), "wb").write(mb)
idx["manifests"][0].update(digest=m, size=len(mb))
json.dump(idx, open(os.path.join(root, "index.json"), "w"))
PY
skopeo copy --quiet --dest-tls-verify=false --preserve-digests "oci:$bad:latest" "docker://$reg/bad:1" ||
	fail "push the corrupt image"
root=$work/store-i
S=("$cs" --root "$root")
"${S[@]}" import "oci:$minbase" --name base > /dev/null
badlayer=$(skopeo inspect --raw --tls-verify=false "docker://$reg/bad:1" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][1]["digest"])')
# Where the damage shows depends on the compressed bytes (a corpus built
# anew compresses differently): in the deflate stream ("corrupt gzip data
# near compressed offset N"), the tar ("tar offset N"), or the checks at
# the end; what counts is that the conversion says it, of the layer.
pull_fails "a corrupt layer" "^cfs-store: pull: docker://$reg/bad:1: layer $badlayer: [a-z]" \
	"docker://$reg/bad:1" --insecure --name bad
if grep -qi "transfer\|pipe\|/tmp/w-" "$work/err"; then
	fail "a corrupt layer: skopeo's complaint instead of the reason: $(cat "$work/err")"
fi

step "(j) two pulls of images sharing a base, at once"
root=$work/store-j
S=("$cs" --root "$root")
"${S[@]}" pull "docker://$reg/minbase:1" --insecure --name mb > "$work/j-mb" 2> "$work/j-mb.err" &
p1=$!
"${S[@]}" pull "docker://$reg/python:1" --insecure --name py > "$work/j-py" 2> "$work/j-py.err" &
p2=$!
wait "$p1" || fail "concurrent pull of minbase: $(cat "$work/j-mb.err")"
wait "$p2" || fail "concurrent pull of python: $(cat "$work/j-py.err")"
[ "$(cat "$work/j-mb")" = "$want_mb" ] || fail "concurrent pull of minbase: digest $(cat "$work/j-mb")"
[ "$(cat "$work/j-py")" = "$want_py" ] || fail "concurrent pull of python: digest $(cat "$work/j-py")"
n=$(find "$root/layers" -type f | wc -l)
[ "$n" -eq 2 ] || fail "concurrent pulls: $n layer records, want 2 (the shared base once): $(ls "$root/layers")"
tmp_empty "$root" "after concurrent pulls"
"${S[@]}" fsck --verify > "$work/fsck" || fail "fsck --verify after concurrent pulls: $(cat "$work/fsck")"

step "ok"
