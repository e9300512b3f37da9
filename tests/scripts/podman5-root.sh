#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# A Debian 13 (trixie) root with podman 5 and runc, for tests that run
# today's podman against the store (issue 16): made once with
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
if [ -f "$dir/root.ready" ] && [ -x "$dir/root/usr/bin/podman" ]; then
	echo "$dir/root"
	exit 0
fi
mirror=${CFS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
rm -rf "$dir/root" "$dir/root.new" "$dir/root.ready"
echo "$me: debootstrap trixie into $dir (once; $mirror)" >&2
t0=$SECONDS
debootstrap --variant=minbase trixie "$dir/root.new" "$mirror" >"$dir/debootstrap.log" 2>&1 ||
	fail "debootstrap trixie failed: $(tail -n 3 "$dir/debootstrap.log")"
# apt's maintainer scripts want /proc and /dev: mounted in a namespace
# of their own, gone when it ends.
unshare -m --propagation private sh -c '
	set -e
	r=$1
	mount -t proc proc "$r/proc"
	mount --rbind /dev "$r/dev"
	chroot "$r" apt-get install -y -q --no-install-recommends podman runc
' sh "$dir/root.new" >"$dir/apt.log" 2>&1 ||
	fail "apt-get install podman runc in the trixie root failed: $(tail -n 3 "$dir/apt.log")"
[ -x "$dir/root.new/usr/bin/podman" ] || fail "no podman in the trixie root"
mv "$dir/root.new" "$dir/root"
touch "$dir/root.ready"
echo "$me: podman $(chroot "$dir/root" podman --version | awk '{ print $3 }') in $((SECONDS - t0)) s" >&2
echo "$dir/root"
