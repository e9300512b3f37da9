#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# podman 5's own composefs mode on cfs-mkcomposefs (issue 16). Debian 13
# ships no mkcomposefs, so podman 5 with use_composefs = "true" fails
# there ("composefs helper program not found"); with cfs-mkcomposefs
# installed as mkcomposefs it must work:
#
#  - podman pulls debian-minbase (from a local docker-registry) into a
#    store of its own with use_composefs and partial pulls
#    (convert_images): it runs
#    mkcomposefs (our wrapper logs each call), and the layer gets a
#    composefs.blob, which our reader reads and whose tree lists the
#    image's files;
#  - a container from it prints the image's /etc/debian_version, and its
#    root file system's lower layer is that composefs image.
#
# podman runs in the trixie root of podman5-root.sh, in a mount namespace
# that pivot_roots into it (lib.sh podman_root_start); the script runs
# itself again in a mount namespace of its own (podman5_init). Needs
# root, debootstrap, unshare, docker-registry and skopeo (else a skip),
# and deb.debian.org to make the root. Environment: CFS_BIN, CFS_SRC,
# CFS_TEST_TMP, CFS_CORPUS (optional), CFS_PODMAN5_CACHE (default: the
# build's tests/podman5).
set -euo pipefail

# shellcheck source=tests/scripts/lib.sh
. "$(dirname "$0")/lib.sh"
podman5_init podman5-composefs CFS_SRC
need_tool skopeo docker-registry
need_exec "$CFS_BIN/cfs-mkcomposefs" "$CFS_BIN/oci2cfs"
# shellcheck source=tests/scripts/registry.sh
. "$(dirname "$0")/registry.sh"
proot=$CFS_PODMAN_ROOT
corpus=$("$CFS_SRC/tests/scripts/need-corpus.sh")

step "cfs-mkcomposefs as podman's mkcomposefs"
# The binary, the libraries it needs but glibc's (the root's own is
# newer and serves a binary built against an older one), and a wrapper
# named mkcomposefs that logs its calls.
stage_mkcomposefs "$CFS_BIN" "$work" "$work/mkcomposefs.log"
cp -a "$corpus/debian-minbase" "$work/mb"
podman_conf "$work" root \
	'pull_options = {enable_partial_images = "true", use_hard_links = "false", convert_images = "true"}' \
	'[storage.options.overlay]' 'use_composefs = "true"'
podman_root_up "$proot" "$work" || fail "podman root in $proot"
P=(timeout 300 env "PATH=$work/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" "${PODMAN[@]}")
# (with P's PATH: with use_composefs podman will not even start without
# a mkcomposefs)
rm_containers() { "${P[@]}" rm -af -t 0 >/dev/null 2>&1; }
on_exit rm_containers
echo "$me: podman $("${P[@]}" --version | awk '{ print $3 }') in $proot"

step "podman pull with use_composefs"
# From a registry: partial pulls, where containers/storage makes its
# composefs images, need a source that serves byte ranges.
registry_start "$work/registry" || fail "no registry"
skopeo copy -q --dest-tls-verify=false "oci:$work/mb" "docker://$REGISTRY/mb:latest" ||
	fail "skopeo copy to the registry"
"${P[@]}" pull -q --tls-verify=false "docker://$REGISTRY/mb:latest" >"$work/pull.out" 2>"$work/pull.err" ||
	fail "podman pull: $(cat "$work/pull.err")"
[ -s "$work/mkcomposefs.log" ] || fail "podman never ran mkcomposefs: $(cat "$work/pull.err")"
echo "$me: mkcomposefs ran as: $(head -n 1 "$work/mkcomposefs.log")"
mapfile -t blobs < <(find "$work/graph/overlay" -name composefs.blob)
[ "${#blobs[@]}" -ge 1 ] || fail "no composefs.blob in podman's store"
"$CFS_BIN/oci2cfs" --dump "$work/blob.dump" "cfs:${blobs[0]}" "$work/blob-copy.cfs" >/dev/null ||
	fail "our reader does not read podman's composefs.blob"
cmp "${blobs[0]}" "$work/blob-copy.cfs" || fail "the blob does not round-trip through our reader and writer"
grep -q '^/etc/debian_version ' "$work/blob.dump" || fail "the blob has no /etc/debian_version"

step "a container on it"
id=$("${P[@]}" images -q | head -n 1)
[ -n "$id" ] || fail "podman lists no image"
"${P[@]}" run -d --name c1 "$id" sleep 600 >/dev/null || fail "podman run -d"
got=$("${P[@]}" exec c1 cat /etc/debian_version) || fail "podman exec"
[ -n "$got" ] || fail "empty /etc/debian_version"
echo "$me: /etc/debian_version in the container: $got"
"${P[@]}" exec c1 cat /proc/1/mountinfo >"$work/mountinfo"
grep -q ' / .* - overlay .*composefs' "$work/mountinfo" ||
	fail "the container's root is no overlay on a composefs layer: $(grep ' / ' "$work/mountinfo" | head -2)"
echo "$me: ok"
