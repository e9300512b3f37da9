#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# The additional image store with today's podman (issue 16): the checks
# of ais.sh (list, inspect, run, two containers, writes landing in
# podman's upper dir, a live import seen without a restart, rm refused
# while a container runs, unmount-all/mount-all, a run directory not on
# tmpfs) with podman 5.4 and runc from Debian 13, in a trixie root made
# once and kept in the build directory (podman5-root.sh).
#
# ais.sh runs in a mount namespace of its own: podman's root, its /proc,
# /sys and /dev, and the scratch directory bound into it are mounted
# there only, and go with it. Nothing in the root points at the host's /.
#
# Needs root, debootstrap, unshare and deb.debian.org. Environment as
# ais.sh; CFS_PODMAN5_CACHE (default: the build's tests/podman5).
set -euo pipefail

me=ais-podman5
: "${CFS_SRC:?}" "${CFS_TEST_TMP:?}"
[ "$(id -u)" -eq 0 ] || { echo "$me: FAIL: must run as root" >&2; exit 1; }
mkdir -p "$CFS_TEST_TMP"
# shellcheck source=tests/scripts/lib.sh
. "$CFS_SRC/tests/scripts/lib.sh"
podman5_enter "${CFS_PODMAN5_CACHE:-$(dirname "$(realpath "$CFS_TEST_TMP")")/podman5}" \
	"$CFS_SRC/tests/scripts/ais.sh"
