# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
# shellcheck shell=bash
# The harness every shell test sources first:
#
#   . "$(dirname "$0")/lib.sh"
#   test_init NAME [VAR]...
#
# test_init sets me=NAME (every message starts with "$me: "), checks
# that CTest's CFS_BIN and CFS_TEST_TMP (and each VAR) are set, makes
# $work, a fresh directory below CFS_TEST_TMP, and traps EXIT, INT and
# TERM: at exit the commands given to on_exit run, newest first, then
# $work is removed with whatever is mounted below it (remove_work), and
# the test's exit status is kept. CFS_TEST_KEEP=1 keeps $work.
#
#   fail MSG...       "$me: FAIL: MSG", exit 1
#   step MSG...       "== $me: MSG"
#   skip MSG...       "$me: SKIP: MSG", exit 77 (CTest: skipped)
#   need_root [WHY]   skip unless root
#   need_tool TOOL... skip unless each TOOL is installed
#   need_exec FILE... fail unless each FILE (a built binary) runs
#   on_exit CMD...    run CMD (a string for eval) at exit
#   jcheck EXPR [WHAT] < JSON   fail with WHAT (or EXPR) unless the
#                     python3 expression EXPR, j the document, is true
#   jget EXPR < JSON  print the python3 expression EXPR, j the document
#   expect_fail OUT ERR CMD...  run CMD, stdout to OUT, stderr to ERR;
#                     fail if it succeeds; sets rc to its exit status

test_init() { # NAME [VAR]...
	local v
	me=$1
	shift
	for v in CFS_BIN CFS_TEST_TMP "$@"; do
		[ -n "${!v:-}" ] || {
			echo "$me: $v is not set (CTest sets it: tests/CMakeLists.txt)" >&2
			exit 1
		}
	done
	mkdir -p "$CFS_TEST_TMP"
	work=$(mktemp -d "$(realpath "$CFS_TEST_TMP")/$me.XXXXXX")
	_on_exit=()
	trap _test_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

on_exit() { _on_exit+=("$*"); }

_test_exit() {
	local rc=$? i
	trap - EXIT INT TERM
	set +e
	for ((i = ${#_on_exit[@]} - 1; i >= 0; i--)); do
		eval "${_on_exit[i]}"
	done
	if [ -n "${CFS_TEST_KEEP:-}" ]; then
		echo "$me: kept $work" >&2
	elif [ -n "${work:-}" ] && [ -d "$work" ]; then
		remove_work "$work" || [ "$rc" -ne 0 ] || rc=1
	fi
	exit "$rc"
}

fail() {
	echo "$me: FAIL: $*" >&2
	exit 1
}
step() { echo "== $me: $*"; }
skip() {
	echo "$me: SKIP: $*" >&2
	exit 77
}
need_root() { [ "$(id -u)" -eq 0 ] || skip "needs root${1:+ ($1)}"; }
need_tool() {
	local t
	for t; do
		command -v "$t" >/dev/null || skip "needs $t, which is not installed"
	done
}
need_exec() {
	local f
	for f; do
		[ -x "$f" ] || fail "$f: not found or not executable"
	done
}

jcheck() { # EXPR [WHAT] < JSON
	python3 -c 'import json,sys; j=json.load(sys.stdin); sys.exit(0 if eval(sys.argv[1]) else 1)' "$1" ||
		fail "${2:-$1}"
}
jget() { python3 -c 'import json,sys; j=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

expect_fail() { # OUT ERR CMD...
	local out=$1 err=$2
	shift 2
	set +e
	"$@" >"$out" 2>"$err"
	rc=$?
	set -e
	[ "$rc" -ne 0 ] || fail "$* succeeded"
}

# Test helpers for mounts and podman:
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
	rm -rf --one-file-system "$dir"
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
