#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# cfs-store ais sync: the store as a podman additional image store.
# Imports debian-minbase from the corpus, syncs the AIS, then podman (with
# a private graphroot, runroot, storage.conf and containers.conf, so the
# machine's own podman is untouched) lists the image by name, shows its
# config, and runs a container on it; removing the name and syncing again
# takes the image out of podman's list and unmounts it.
#
# Needs root (mount), podman and runc. Environment: CFS_BIN, CFS_SRC,
# CFS_TESTS, CFS_TEST_TMP, CFS_CORPUS (optional).
set -euo pipefail

me=ais
: "${CFS_BIN:?}" "${CFS_SRC:?}" "${CFS_TEST_TMP:?}"
cs=$CFS_BIN/cfs-store

fail() {
	echo "$me: FAIL: $*" >&2
	exit 1
}
step() { echo "== $me: $*"; }

[ "$(id -u)" -eq 0 ] || fail "must run as root (mount)"
for tool in podman runc mountpoint; do
	command -v "$tool" >/dev/null || fail "required tool '$tool' is not installed (scripts/install-deps.sh)"
done

corpus=$("$CFS_SRC/tests/scripts/need-corpus.sh")
mkdir -p "$CFS_TEST_TMP"
work=$(mktemp -d "$(realpath "$CFS_TEST_TMP")/$me.XXXXXX")
root=$work/store
ais=$work/ais
run=$work/run
S=("$cs" --root "$root")

mkdir -p "$work/graph" "$work/runroot"
cat >"$work/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$work/graph"
runroot = "$work/runroot"
[storage.options]
additionalimagestores = ["$ais"]
CONF
cat >"$work/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "none"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_STORAGE_CONF=$work/storage.conf
export CONTAINERS_CONF=$work/containers.conf
# Not --root/--runroot: with them podman 4.3 drops storage.conf's
# options, additionalimagestores included.
P=(podman)

cleanup() {
	local rc=$? left=0 m
	trap - EXIT INT TERM
	"${P[@]}" rm -af >/dev/null 2>&1 || true
	# podman's own mounts (container overlays, the graphroot's shm)
	# and ours, deepest first.
	while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || {
			echo "$me: warning: could not unmount $m" >&2
			left=1
		}
	done < <(awk '{ print $5 }' /proc/self/mountinfo | grep -F "$work" | sort -r)
	if [ "$left" -eq 0 ]; then
		rm -rf "$work"
	else
		echo "$me: left $work behind (still mounted)" >&2
		rc=1
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "import, sync"
d=$("${S[@]}" import "oci:$corpus/debian-minbase" --name minbase)
"${S[@]}" ais sync --ais "$ais" --run "$run" >"$work/out"
grep -q "^1 images (1 newly mounted)" "$work/out" || fail "sync: $(cat "$work/out")"
mountpoint -q "$run/$d" || fail "$run/$d is not mounted"
# A second sync mounts nothing new and keeps the layout.
"${S[@]}" ais sync --ais "$ais" --run "$run" >"$work/out"
grep -q "^1 images (0 newly mounted)" "$work/out" || fail "resync: $(cat "$work/out")"
for f in overlay-images/images.json overlay-images/images.lock \
	overlay-layers/layers.json overlay-layers/layers.lock overlay/l; do
	[ -e "$ais/$f" ] || fail "no $f in the AIS"
done
[ "$(stat -c %s "$ais/overlay-images/images.lock")" -ge 64 ] || fail "images.lock has no token"

step "podman images"
"${P[@]}" images --format '{{.Repository}}:{{.Tag}} {{.ID}} {{.ReadOnly}}' >"$work/images" ||
	fail "podman images failed"
grep -q "^localhost/minbase:latest [0-9a-f]\{12\} true$" "$work/images" ||
	fail "podman images: $(cat "$work/images")"

step "podman image inspect"
"${P[@]}" image inspect minbase --format '{{json .Config}}' >"$work/config" ||
	fail "podman image inspect failed"
want=$("${S[@]}" inspect minbase --json | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["config"]["config"]["Cmd"]))')
got=$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["Cmd"]))' "$work/config")
[ "$got" = "$want" ] || fail "inspect Cmd $got, want $want"
grep -q '"PATH=' "$work/config" || fail "inspect: no Env: $(cat "$work/config")"

step "podman run"
want=$(cat "$run/$d/etc/debian_version")
got=$(timeout 120 "${P[@]}" run --rm minbase cat /etc/debian_version) ||
	fail "podman run failed"
[ "$got" = "$want" ] || fail "podman run printed '$got', want '$want'"

step "rm, sync: gone from podman and unmounted"
"${S[@]}" rm minbase
"${S[@]}" ais sync --ais "$ais" --run "$run" >"$work/out"
grep -q "^0 images .* 1 removed" "$work/out" || fail "sync after rm: $(cat "$work/out")"
mountpoint -q "$run/$d" 2>/dev/null && fail "$run/$d still mounted"
[ -z "$("${P[@]}" images -q)" ] || fail "podman still lists: $("${P[@]}" images)"
[ -z "$(ls "$ais/overlay/l")" ] || fail "l/ not empty: $(ls "$ais/overlay/l")"
echo "$me: ok"
