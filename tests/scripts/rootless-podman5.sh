#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# Rootless podman 5 (Debian 13) on the store (issue 16): as
# rootless.sh, with podman 5.4 in the trixie root of podman5-root.sh
# (in a mount namespace that pivot_roots into it: lib.sh
# podman_root_start). The user lives in that root (useradd there gives
# it subordinate ids in the root's /etc/subuid); root syncs an AIS with
# --idmap for exactly that mapping, and the user's podman runs the
# image with the image's owners inside.
#
# Needs root, debootstrap and unshare (else a skip), and deb.debian.org
# to make the root. Environment: CFS_BIN, CFS_SRC, CFS_TEST_TMP,
# CFS_CORPUS, CFS_PODMAN5_CACHE.
set -euo pipefail

# shellcheck source=tests/scripts/lib.sh
. "$(dirname "$0")/lib.sh"
podman5_init rootless-podman5 CFS_SRC
cs=$CFS_BIN/cfs-store
need_exec "$cs"
proot=$CFS_PODMAN_ROOT
corpus=$("$CFS_SRC/tests/scripts/need-corpus.sh")
# the user goes through it (bound into the root at the same path)
chmod 755 "$work"
user=cfsrl5
S=("$cs" --root "$work/store")
A=(--ais "$work/ais" --run "$work/run")
in_root() { nsenter -t "$holder" -m -r -w "$@"; }
as_user() {
	timeout 120 nsenter -t "$holder" -m -r -w runuser -u "$user" -- \
		env HOME="/home/$user" PODMAN_IGNORE_CGROUPSV1_WARNING=1 sh -c 'cd && exec "$@"' sh "$@"
}

podman_root_up "$proot" "$work" || fail "podman root in $proot"
step "a user of the trixie root, with subordinate ids"
# (the user stays in the root, kept for the next run; its podman and
# processes go at exit, before the root's namespace)
user_stop() {
	as_user podman system reset -f >/dev/null 2>&1
	in_root pkill -KILL -u "$user" 2>/dev/null
}
on_exit user_stop
in_root sh -c "id $user >/dev/null 2>&1 || useradd -m -s /bin/sh $user" || fail "useradd in the root"
uid=$(in_root id -u "$user")
gid=$(in_root id -g "$user")
sub=$(awk -F: -v u="$user" '$1 == u { print $2 ":" $3; exit }' "$proot/etc/subuid")
subg=$(awk -F: -v u="$user" '$1 == u { print $2 ":" $3; exit }' "$proot/etc/subgid")
[ -n "$sub" ] && [ -n "$subg" ] || fail "$user has no range in the root's /etc/subuid and /etc/subgid"
podman_conf "$work/user-conf" user "additionalimagestores = [\"$work/ais\"]"
in_root sh -c "mkdir -p /home/$user/.config/containers && cp $work/user-conf/*.conf /home/$user/.config/containers/ && chown -R $user: /home/$user/.config" ||
	fail "the user's podman configuration"

step "root: import, ais sync --idmap (the user's mapping in the root)"
"${S[@]}" import "oci:$corpus/debian-minbase" --name minbase >/dev/null
mkdir -p "$work/run"
mount -t tmpfs -o size=1m,mode=0755 cfs-test-rootless5-run "$work/run"
map="u:0:$uid:1 u:1:${sub%%:*}:${sub#*:} g:0:$gid:1 g:1:${subg%%:*}:${subg#*:}"
"${S[@]}" ais sync "${A[@]}" --idmap "$map" >/dev/null || fail "ais sync --idmap '$map'"

step "the user's podman 5: owners as in the image"
want=$(awk -F'\t' '$1 == "/etc/passwd" || $1 == "/etc/shadow" || $1 == "/var/mail" { print $4 ":" $5 " " $1 }' \
	"$corpus/expected/debian-minbase.tsv")
got=$(as_user podman run --rm minbase stat -c '%u:%g %n' /etc/passwd /etc/shadow /var/mail 2>"$work/err") ||
	fail "rootless podman 5 run: $(cat "$work/err")"
[ "$got" = "$want" ] || fail "owners in the rootless podman 5 container: '$got', want '$want'"
echo "$me: $(as_user podman --version): $(echo "$got" | tr '\n' ' ')"
got=$(as_user podman run --rm minbase sh -c 'echo written >/etc/cfs-new && cat /etc/cfs-new' 2>"$work/err") ||
	fail "writing in the container: $(cat "$work/err")"
[ "$got" = written ] || fail "in the container: '$got'"
[ ! -e /etc/cfs-new ] && [ ! -e "$proot/etc/cfs-new" ] || fail "the container wrote outside itself"
echo "$me: ok"
