#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# A Debian 13 (trixie) root with podman 5 and runc, for tests that run
# today's podman against the store (issue 16), and skopeo 1.18, whose
# zstd:chunked layers carry a tar-split (chunked-tarsplit.sh): made once with
# debootstrap --variant=minbase and apt-get, then kept. Prints its path.
#
#   podman5-root.sh DIR
#
# DIR/root is the root, DIR/root.ready says it is complete; a half-made
# one (a killed run) is made again. Needs root, debootstrap and network
# access to deb.debian.org (Debian's mirror, as the host's apt has).
# The install runs in a private mount namespace: its /proc and /dev
# mounts never reach the host's.
set -euo pipefail

me=podman5-root
dir=${1:?usage: podman5-root.sh DIR}
fail() {
	echo "$me: FAIL: $*" >&2
	exit 1
}
[ "$(id -u)" -eq 0 ] || fail "must run as root (debootstrap)"
command -v debootstrap >/dev/null || fail "required tool 'debootstrap' is not installed (scripts/install-deps.sh)"
command -v unshare >/dev/null || fail "required tool 'unshare' is not installed"
mkdir -p "$dir"
dir=$(realpath "$dir")
exec 9>"$dir/lock"
flock 9
# What the root holds; a root made by another recipe is made again.
recipe="trixie minbase + podman runc uidmap skopeo, policy-rc.d 101"
if [ "$(cat "$dir/root.ready" 2>/dev/null)" = "$recipe" ] && [ -x "$dir/root/usr/bin/podman" ]; then
	echo "$dir/root"
	exit 0
fi
mirror=${CFS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Never remove through a mount (a root's /dev bound from the host's):
# all of ours live in namespaces of their own, so there must be none.
if awk -v d="$dir/" 'index($5, d) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
	fail "something is mounted below $dir: not removing it"
fi
rm -rf --one-file-system "$dir/root" "$dir/root.new" "$dir/root.ready"
echo "$me: debootstrap trixie into $dir (once; $mirror)" >&2
t0=$SECONDS
debootstrap --variant=minbase trixie "$dir/root.new" "$mirror" >"$dir/debootstrap.log" 2>&1 ||
	fail "debootstrap trixie failed: $(tail -n 3 "$dir/debootstrap.log")"
# No service of the root starts (policy-rc.d). apt's maintainer scripts
# want /proc and /dev: mounted in a namespace of their own, gone when it
# ends. uidmap: rootless podman's newuidmap (tests/scripts/rootless.sh).
printf '#!/bin/sh\nexit 101\n' >"$dir/root.new/usr/sbin/policy-rc.d"
chmod 755 "$dir/root.new/usr/sbin/policy-rc.d"
unshare -m --propagation private sh -c '
	set -e
	r=$1
	mount -t proc proc "$r/proc"
	mount --rbind /dev "$r/dev"
	chroot "$r" apt-get install -y -q --no-install-recommends podman runc uidmap skopeo
' sh "$dir/root.new" >"$dir/apt.log" 2>&1 ||
	fail "apt-get install podman runc uidmap skopeo in the trixie root failed: $(tail -n 3 "$dir/apt.log")"
[ -x "$dir/root.new/usr/bin/podman" ] || fail "no podman in the trixie root"
mv "$dir/root.new" "$dir/root"
echo "$recipe" >"$dir/root.ready"
ver=$(awk '/^Package: podman$/ { p = 1 } p && /^Version:/ { print $2; exit }' "$dir/root/var/lib/dpkg/status")
echo "$me: podman $ver in $((SECONDS - t0)) s" >&2
echo "$dir/root"
