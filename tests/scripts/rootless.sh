#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# Rootless podman on the store (issue 16), with a real unprivileged user
# and subordinate ids (useradd gives it a range in /etc/subuid and
# /etc/subgid). Root imports and syncs an AIS for that user with
# --idmap user:NAME; the user's storage.conf lists it:
#
#  - the user's podman lists the image and runs a container from it;
#    inside, the image's files have their owners as in the image
#    (/etc/passwd root:root, /etc/shadow root:shadow, /var/mail
#    root:mail), not nobody; the container's root can write (podman's
#    own upper layer);
#  - without --idmap the same user's podman cannot use the image at all
#    (the layer is owned by ids its user namespace does not have).
#
# The AIS is synced before the user's podman first starts: this host's /
# is not a shared mount, so mounts made later would not reach the
# rootless podman's mount namespace (docs/podman.md).
#
# Needs root, podman, runc, uidmap (newuidmap), useradd. Environment:
# CFS_BIN, CFS_SRC, CFS_TEST_TMP, CFS_CORPUS.
set -euo pipefail

# shellcheck source=tests/scripts/lib.sh
. "$(dirname "$0")/lib.sh"
test_init rootless CFS_SRC
cs=$CFS_BIN/cfs-store

need_root "useradd, mounts"
need_tool podman runc newuidmap useradd userdel runuser python3
need_exec "$cs"
corpus=$("$CFS_SRC/tests/scripts/need-corpus.sh")
# Everything the user reads is below /tmp (world-traversable): the build
# directory may sit in a private home or a mktemp -d.
public_dir rootless
user=cfsrl$$
home=$pub/home
S=("$cs" --root "$pub/store")
A=(--ais "$pub/ais" --run "$pub/run")
as_user() { (cd "$pub" && timeout 120 runuser -u "$user" -- env HOME="$home" PODMAN_IGNORE_CGROUPSV1_WARNING=1 "$@"); }
# At exit the user and its podman go first, then the AIS's mounts (the
# hooks run newest first).
unmount_ais() { "${S[@]}" ais unmount-all "${A[@]}" >/dev/null 2>&1; }
on_exit unmount_ais
remove_user() {
	id "$user" >/dev/null 2>&1 || return 0
	as_user podman rm -af -t 0 >/dev/null 2>&1
	as_user podman system reset -f >/dev/null 2>&1
	pkill -KILL -u "$user" 2>/dev/null
	sleep 0.5
	# (rc: the exit status the harness keeps)
	userdel -r "$user" >/dev/null 2>&1 || userdel "$user" || rc=1
}

step "a user with subordinate ids"
on_exit remove_user
useradd -M -d "$home" -s /bin/sh "$user" || fail "useradd"
grep -q "^$user:" /etc/subuid && grep -q "^$user:" /etc/subgid ||
	fail "useradd gave $user no /etc/subuid and /etc/subgid range (login.defs SUB_UID_COUNT?)"
podman_conf "$home/.config/containers" user "additionalimagestores = [\"$pub/ais\"]"
chown -R "$user:" "$home"

step "root: import, ais sync --idmap user:$user"
"${S[@]}" import "oci:$corpus/debian-minbase" --name minbase >/dev/null
mkdir -p "$pub/run"
mount -t tmpfs -o size=1m,mode=0755 cfs-test-rootless-run "$pub/run"
"${S[@]}" ais sync "${A[@]}" --idmap "user:$user" >/dev/null || fail "ais sync --idmap"
uid=$(id -u "$user")
d=$("${S[@]}" inspect minbase --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')
[ "$(stat -c %u "$pub/run/$d/etc/passwd")" = "$uid" ] || fail "the AIS mount is not mapped to $user"

step "the user's podman: owners as in the image"
as_user podman images --format '{{.Repository}}' >"$work/images" 2>"$work/err" ||
	fail "podman images as $user: $(cat "$work/err")"
grep -qx localhost/minbase "$work/images" || fail "$user's podman does not list minbase: $(cat "$work/images")"
want=$(awk -F'\t' '$1 == "/etc/passwd" || $1 == "/etc/shadow" || $1 == "/var/mail" { print $4 ":" $5 " " $1 }' \
	"$corpus/expected/debian-minbase.tsv")
got=$(as_user podman run --rm minbase stat -c '%u:%g %n' /etc/passwd /etc/shadow /var/mail 2>"$work/err") ||
	fail "podman run as $user: $(cat "$work/err")"
[ "$got" = "$want" ] || fail "owners in the rootless container: '$got', want '$want'"
echo "$me: $(echo "$got" | tr '\n' ' ')"
got=$(as_user podman run --rm minbase sh -c 'id -u; echo written >/etc/cfs-new && cat /etc/cfs-new' 2>"$work/err") ||
	fail "writing in the container: $(cat "$work/err")"
[ "$got" = "$(printf '0\nwritten')" ] || fail "in the container: '$got'"
[ ! -e /etc/cfs-new ] || fail "the container wrote to the host's /etc"

step "without --idmap the user's podman cannot use it"
as_user podman system reset -f >/dev/null 2>&1 || true
pkill -KILL -u "$user" 2>/dev/null || true
"${S[@]}" ais unmount-all "${A[@]}" >/dev/null
"${S[@]}" ais sync "${A[@]}" >/dev/null
[ "$(stat -c %u "$pub/run/$d/etc/passwd")" = 0 ] || fail "the plain AIS mount is not root's"
if got=$(as_user podman run --rm minbase stat -c '%u:%g' /etc/passwd 2>"$work/err"); then
	[ "$got" != "0:0" ] || fail "rootless podman saw root's files as its own without an idmap"
fi
echo "$me: without --idmap: ${got:-$(tail -n 1 "$work/err")}"
echo "$me: ok"
