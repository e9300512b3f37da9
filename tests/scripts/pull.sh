#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# cfs-store pull: skopeo copy into the store's tmp/, then import.
#
# A local registry (docker-registry, plain HTTP on 127.0.0.1) holds the
# corpus' debian-minbase twice, as pushed (OCI manifest) and converted to
# a docker v2s2 manifest.
# (a) pull docker://... --insecure --name: the digest printed (and with
#     --json) is that of a plain import of oci:debian-minbase into
#     another store, whatever the manifest format; inspect shows the
#     name; tmp/ is empty.
# (b) pull docker-archive: and oci-archive: (corpus archives): the digest
#     of a plain import of oci:debian-python.
# (c) failures: an image the registry lacks (exit 1, exactly one line
#     "cfs-store: pull: ...skopeo..."), an unknown transport (exit 1,
#     skopeo's reason passed on), no transport (usage error, exit 2),
#     skopeo not in PATH, a bad --platform: each leaves every file of
#     the store as it was, fsck clean, tmp/ empty.
# (d) kill -9 of a pull while skopeo runs: skopeo dies with it, fsck
#     reports the stale writer directory as cleaned and no problem, and
#     the same pull then succeeds.
#
# Needs skopeo and docker-registry (scripts/install-deps.sh): their
# absence is a failure, not a skip.
# Environment: CFS_BIN, CFS_SRC, CFS_TEST_TMP (see tests/CMakeLists.txt),
# CFS_CORPUS (see need-corpus.sh).
set -euo pipefail

me=pull
: "${CFS_BIN:?}" "${CFS_SRC:?}" "${CFS_TEST_TMP:?}"
cs=$CFS_BIN/cfs-store

fail() {
	echo "$me: FAIL: $*" >&2
	exit 1
}
step() { echo "== $me: $*"; }

for tool in skopeo docker-registry python3; do
	command -v "$tool" > /dev/null ||
		fail "$tool not installed (scripts/install-deps.sh)"
done

# shellcheck source=tests/scripts/registry.sh
. "$CFS_SRC/tests/scripts/registry.sh"

mkdir -p "$CFS_TEST_TMP"
work=$(mktemp -d "$(realpath "$CFS_TEST_TMP")/$me.XXXXXX")
bg_pid=
cleanup() {
	local rc=$?
	trap - EXIT
	if [ -n "$bg_pid" ]; then
		kill -9 "$bg_pid" 2> /dev/null || true
	fi
	registry_stop
	if [ $rc -ne 0 ] && [ -f "$work/registry/registry.log" ]; then
		echo "$me: registry log (tail):" >&2
		tail -20 "$work/registry/registry.log" >&2
	fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT

jcheck() { # EXPR [what]
	python3 -c 'import json,sys; j=json.load(sys.stdin); sys.exit(0 if eval(sys.argv[1]) else 1)' "$1" ||
		fail "${2:-$1}"
}
jget() { python3 -c 'import json,sys; j=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
# Every file and directory of a store with its type and size.
listing() { (cd "$1" && find . -printf '%p %y %s\n' | LC_ALL=C sort); }
tmp_empty() { # ROOT WHAT
	[ -z "$(ls -A "$1/tmp")" ] || fail "$2: tmp/ not empty: $(ls -A "$1/tmp")"
}
is_digest() { [[ $1 =~ ^[0-9a-f]{64}$ ]]; }

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
grep -q "^cfs-store: pull: docker://$reg/minbase:1: skopeo copy failed (exit [0-9]*): ." "$work/err" ||
	fail "pull without --insecure: $(cat "$work/err")"

step "(b) pull docker-archive:, oci-archive:"
got=$("${S[@]}" pull "docker-archive:$darchive" --name py-d) || fail "pull docker-archive:"
[ "$got" = "$want_py" ] || fail "pull docker-archive: digest $got, plain import $want_py"
got=$("${S[@]}" pull "oci-archive:$oarchive" --name py-o) || fail "pull oci-archive:"
[ "$got" = "$want_py" ] || fail "pull oci-archive: digest $got, plain import $want_py"
# A relative path is the caller's, not skopeo's working directory's.
got=$(cd "$(dirname "$oarchive")" && "${S[@]}" pull "oci-archive:./$(basename "$oarchive")") ||
	fail "pull of a relative oci-archive: path"
[ "$got" = "$want_py" ] || fail "relative oci-archive: digest $got"
tmp_empty "$root" "after archive pulls"
"${S[@]}" fsck > "$work/fsck" || fail "fsck after the pulls: $(cat "$work/fsck")"

step "(c) failures leave the store as it was"
listing "$root" > "$work/before"
expect_fail() { # RC STDERR-REGEX ARGS...
	local want=$1 re=$2 rc
	shift 2
	set +e
	"$@" > "$work/out" 2> "$work/err"
	rc=$?
	set -e
	[ $rc -eq "$want" ] || fail "'$*': exit $rc, want $want: $(cat "$work/err")"
	grep -Eq -- "$re" "$work/err" || fail "'$*': stderr: $(cat "$work/err")"
	[ ! -s "$work/out" ] || fail "'$*': stdout: $(cat "$work/out")"
	listing "$root" > "$work/after"
	diff "$work/before" "$work/after" > "$work/diff" ||
		fail "'$*' changed the store: $(cat "$work/diff")"
}
expect_fail 1 "^cfs-store: pull: docker://$reg/nosuch:1: skopeo copy failed \(exit 1\): .*nosuch" \
	"${S[@]}" pull "docker://$reg/nosuch:1" --insecure --name x
[ "$(wc -l < "$work/err")" -eq 1 ] || fail "missing image: not one line: $(cat "$work/err")"
expect_fail 1 '^cfs-store: pull: nosuch:foo: skopeo copy failed \(exit 1\): .*unknown transport "nosuch"' \
	"${S[@]}" pull nosuch:foo
[ "$(wc -l < "$work/err")" -eq 1 ] || fail "unknown transport: not one line: $(cat "$work/err")"
expect_fail 2 "^cfs-store: pull: 'nosuch': not TRANSPORT:REF" "${S[@]}" pull nosuch
grep -q "Try 'cfs-store --help' for more information." "$work/err" || fail "no Try line"
expect_fail 2 "Try 'cfs-store --help'" "${S[@]}" pull "docker:" --name x
expect_fail 2 "Try 'cfs-store --help'" "${S[@]}" pull "-x:y"
expect_fail 2 "--force does not apply" "${S[@]}" pull "docker://$reg/minbase:1" --force
expect_fail 2 "Try 'cfs-store --help'" "${S[@]}" pull
expect_fail 1 '^cfs-store: pull: skopeo not found \(apt-get install skopeo\)$' \
	env PATH=/nonexistent "${S[@]}" pull "docker://$reg/minbase:1" --insecure
expect_fail 1 '^cfs-store: pull: .*platform "linux": expected OS/ARCH' \
	"${S[@]}" pull "docker://$reg/minbase:1" --insecure --platform linux
"${S[@]}" fsck > "$work/fsck" || fail "fsck after the failures: $(cat "$work/fsck")"
grep -q "0 problems" "$work/fsck" || fail "fsck: $(cat "$work/fsck")"
tmp_empty "$root" "after the failures"

step "(d) kill -9 while skopeo runs"
"${S[@]}" pull "docker-archive:$darchive" --name killed > /dev/null 2>&1 &
bg_pid=$!
layout=
for _ in $(seq 1000); do
	layout=$(compgen -G "$root/tmp/w-$bg_pid-*/layout" || true)
	[ -n "$layout" ] && break
	kill -0 "$bg_pid" 2> /dev/null || break
	sleep 0.01
done
[ -n "$layout" ] || fail "no skopeo layout appeared in tmp/"
wdir=$(basename "$(dirname "$layout")")
pgrep -f -- "$root/tmp/$wdir" > /dev/null || fail "skopeo is not running"
kill -9 "$bg_pid"
wait "$bg_pid" 2> /dev/null || true
bg_pid=
# skopeo dies with its caller (PR_SET_PDEATHSIG): within a second, when
# the copy takes two, and before it wrote the layout's index.json.
for _ in $(seq 20); do
	pgrep -f -- "$root/tmp/$wdir" > /dev/null || break
	sleep 0.05
done
! pgrep -f -- "$root/tmp/$wdir" > /dev/null || fail "skopeo outlived the killed pull"
[ ! -e "$layout/index.json" ] || fail "skopeo finished its copy after the kill"
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

step "ok"
