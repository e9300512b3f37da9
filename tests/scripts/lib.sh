# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
# shellcheck shell=bash
# Sourced by shell tests that mount below their scratch directory.
#
#   remove_work DIR   unmount everything mounted on or below DIR (or
#                     on a path that contains DIR/), deepest first
#                     (lazily if need be), then remove DIR; if a
#                     mount stays, keep DIR, say so and return 1.
#                     Messages start with "$me: ".

# $me: the sourcing test names itself.
# shellcheck disable=SC2154
remove_work() { # DIR
	local dir=$1 left=0 m
	while read -r m; do
		# (a mount whose peer went first went with it)
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null ||
			! awk -v m="$m" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo || {
			echo "$me: warning: could not unmount $m" >&2
			left=1
		}
	done < <(awk -v d="$dir" '$5 == d || index($5, d "/") { print $5 }' /proc/self/mountinfo | sort -r)
	if [ "$left" -ne 0 ]; then
		echo "$me: left $dir behind (still mounted)" >&2
		return 1
	fi
	rm -rf "$dir"
}

#   podman5_enter CACHE SCRIPT [ARG]...
#                     unless CFS_PODMAN_ROOT is set already: make (or
#                     reuse) the Debian 13 root with podman 5 in CACHE
#                     (podman5-root.sh) and run SCRIPT again in a mount
#                     namespace of its own, CFS_PODMAN_ROOT naming the
#                     root (does not return). Then podman_root_start.
podman5_enter() { # CACHE SCRIPT [ARG]...
	local cache=$1 proot
	shift
	[ -z "${CFS_PODMAN_ROOT:-}" ] || return 0
	proot=$("$(dirname "${BASH_SOURCE[0]}")/podman5-root.sh" "$cache") || exit 1
	CFS_PODMAN_ROOT=$proot exec unshare -m --propagation private bash "$@"
}

#   podman_root_start ROOT DIR
#                     run podman in ROOT (a Debian root with podman, see
#                     podman5-root.sh): a mount namespace that pivot_roots
#                     into ROOT and drops the host's / (not a chroot:
#                     runc exec's setns() would land on the host's /),
#                     with DIR bound in at the same path as a shared
#                     mount, so that mounts made later below DIR (by
#                     the store) show in there too. Call it from a mount
#                     namespace of the test's own, before mounting
#                     anything below DIR. Sets holder (the namespace's
#                     process: kill it when done) and PODMAN (the
#                     command that runs podman in there).
podman_root_start() { # ROOT DIR
	local proot=$1 dir=$2 _
	[ "$(readlink /proc/self/ns/mnt)" != "$(readlink /proc/1/ns/mnt)" ] || {
		echo "$me: podman_root_start needs a mount namespace of its own" >&2
		return 1
	}
	export PODMAN_IGNORE_CGROUPSV1_WARNING=1
	mount --bind "$dir" "$dir"
	mount --make-shared "$dir"
	mount --bind "$proot" "$proot"
	# /run and /tmp of its own first: DIR may be below either, and its
	# bind must sit on top of them.
	mount -t tmpfs -o mode=0755 cfs-test-podman-run "$proot/run"
	mount -t tmpfs -o mode=1777 cfs-test-podman-tmp "$proot/tmp"
	mkdir -p "$proot$dir"
	mount --rbind "$dir" "$proot$dir"
	rm -f "$dir/.podman-root-ready"
	unshare -m --propagation unchanged sh -c '
		set -e
		r=$1 ready=$2
		mount -t proc proc "$r/proc"
		mount --rbind /sys "$r/sys"
		mount --make-rslave "$r/sys"
		mount --rbind /dev "$r/dev"
		mount --make-rslave "$r/dev"
		mkdir -p "$r/.oldroot"
		cd "$r"
		pivot_root . .oldroot
		cd /
		umount -l /.oldroot
		: >"$ready"
		exec sleep infinity
	' sh "$proot" "$dir/.podman-root-ready" &
	holder=$!
	for _ in $(seq 100); do
		[ -e "$dir/.podman-root-ready" ] && break
		sleep 0.1
	done
	[ -e "$dir/.podman-root-ready" ] || {
		echo "$me: podman's root did not come up" >&2
		return 1
	}
	# The host's / is not there any more.
	[ ! -e "/proc/$holder/root$proot" ] || {
		echo "$me: the host's root is still reachable from podman's" >&2
		return 1
	}
	PODMAN=(nsenter -t "$holder" -m -r -w podman)
}

#   stage_mkcomposefs BIN DIR [LOG]
#                     BIN/cfs-mkcomposefs as DIR/bin/mkcomposefs for a
#                     Debian 13 root's podman: the binary, the libraries
#                     it needs but glibc's (the root has a newer one) in
#                     DIR/lib, and a wrapper that finds them (and logs
#                     each call's arguments to LOG).
stage_mkcomposefs() { # BIN DIR [LOG]
	local bin=$1 dir=$2 log=${3:-/dev/null} lib
	mkdir -p "$dir/bin" "$dir/lib"
	cp -L "$bin/cfs-mkcomposefs" "$dir/bin/"
	while read -r lib; do
		case ${lib##*/} in
		libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | librt.so.* | ld-linux*) ;;
		*) cp -L "$lib" "$dir/lib/" ;;
		esac
	done < <(ldd "$bin/cfs-mkcomposefs" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }')
	cat >"$dir/bin/mkcomposefs" <<WRAP
#!/bin/sh
echo "\$*" >>"$log"
LD_LIBRARY_PATH="$dir/lib" exec "$dir/bin/cfs-mkcomposefs" "\$@"
WRAP
	chmod +x "$dir/bin/mkcomposefs"
}
