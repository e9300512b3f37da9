#!/bin/bash
# Install every build and test dependency on Debian 12 (bookworm).
# Idempotent; needs root (uses sudo when run as a normal user, and only
# when something is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/as-root.sh
. scripts/as-root.sh

PACKAGES=(
	# build (scdoc: the man pages)
	build-essential cmake pkg-config clang clang-format git scdoc
	libssl-dev libxxhash-dev libjson-c-dev
	libarchive-dev libzstd-dev zlib1g-dev libmount-dev
	# partial pulls: ranges of zstd:chunked layers from registries
	libcurl4-openssl-dev
	# ISA-L inflates gzip layers (optional at build time: zlib otherwise)
	libisal-dev
	# tests: image checks, fs-verity reference, xattr tools, scripting,
	# zstd layers for the OCI fixtures
	erofs-utils fsverity attr openssl python3 util-linux zstd
	# the Debian image corpus (tests/corpus/make-corpus.sh)
	debootstrap umoci jq
	# the README's commands as a user with sudo (tests/scripts/readme.sh)
	sudo
	# peak RSS of conversions of hostile images (tests/scripts/hostile.sh)
	time
	# the man pages rendered, the systemd units verified (tests/scripts/man.sh)
	man-db bsdextrautils systemd
	# podman additional image store test (tests/scripts/ais.sh)
	podman runc
	# cfs-store pull runs skopeo; its test pulls from a local registry
	# (tests/scripts/pull.sh)
	skopeo docker-registry
	# fs-verity enforced by a kernel, in a QEMU VM (tests/scripts/verity-vm.sh;
	# it fetches its kernel, linux-image-6.12.*-amd64-unsigned from
	# bookworm-security, with apt-get download)
	qemu-system-x86 busybox-static e2fsprogs cpio kmod xz-utils keyutils
	# idmapped mounts and rootless podman (tests/scripts/idmap.sh)
	uidmap
)

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done

if [ "${#missing[@]}" -eq 0 ]; then
	echo "install-deps: all ${#PACKAGES[@]} packages present"
	exit 0
fi

echo "install-deps: installing ${missing[*]}"
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
