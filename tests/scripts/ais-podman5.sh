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
# Needs root, debootstrap and unshare (else a skip), and deb.debian.org
# to make the root. Environment as ais.sh; CFS_PODMAN5_CACHE (default:
# the build's tests/podman5). No test_init here: ais.sh, which this
# becomes, makes the scratch directory and cleans it up.
set -euo pipefail

# shellcheck source=tests/scripts/lib.sh
. "$(dirname "$0")/lib.sh"
podman5_exec ais-podman5 "$(dirname "$0")/ais.sh"
