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
#   on_exit CMD...    run CMD (a string for eval) at exit; in there rc
#                     is the exit status the test will have, and a hook
#                     may set it (to fail a test whose cleanup failed)
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

# Below: mounts (remove_work, mount_composefs, compare_tree,
# public_dir), JSON files (jcheck_file), the store (fsck_clean, kill_at,
# kill_trial) and podman (podman5_enter/_exec/_init, podman_root_start/
# _up, podman_conf, stage_mkcomposefs); registry.sh starts a registry.
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

#   mount_composefs IMAGE OBJECTS META TARGET
#                     mount IMAGE by hand the way composefs does: EROFS
#                     (ro) at META, and at TARGET a read-only overlay
#                     (metacopy, redirect_dir) with META as its lower
#                     layer and OBJECTS as a data-only one. If either
#                     mount fails: say which on stderr ("mount -t erofs:
#                     ..." or "mount -t overlay: ...", with mount's own
#                     message), leave nothing mounted, return 1. (Unmount
#                     TARGET, then META; remove_work does it at exit.)
mount_composefs() { # IMAGE OBJECTS META TARGET
	local image=$1 objects=$2 meta=$3 target=$4 err
	# overlayfs takes ':' and ',' in lowerdir= as separators.
	case $meta$objects in
	*[,:]*)
		echo "mount -t overlay: $meta or $objects holds ':' or ','" >&2
		return 1
		;;
	esac
	err=$(mount -t erofs -o ro "$image" "$meta" 2>&1) || {
		echo "mount -t erofs: $err" >&2
		return 1
	}
	err=$(mount -t overlay overlay \
		-o "ro,metacopy=on,redirect_dir=on,lowerdir=$meta::$objects" "$target" 2>&1) || {
		echo "mount -t overlay: $err" >&2
		umount "$meta"
		return 1
	}
}

#   compare_tree SRC DIR
#                     every regular file and symlink of SRC reads back
#                     the same at DIR (contents, link targets); fail at
#                     the first that does not, or if SRC has none.
compare_tree() { # SRC DIR
	local src=$1 at=$2 f n=0
	while IFS= read -r -d '' f; do
		if [ -L "$src/$f" ]; then
			[ "$(readlink "$at/$f")" = "$(readlink "$src/$f")" ] ||
				fail "$at/$f: symlink target differs"
		else
			cmp -s "$src/$f" "$at/$f" || fail "$at/$f differs from the source"
		fi
		n=$((n + 1))
	done < <(cd "$src" && find . \( -type f -o -type l \) -print0)
	[ "$n" -gt 0 ] || fail "no files compared"
}

#   public_dir NAME   make pub=/tmp/cfs-NAME.XXXXXX, a directory every
#                     user may enter (mode 0755; CFS_TEST_TMP may be in
#                     a private home or a mktemp -d), for what another
#                     user or a user namespace must reach. At exit it
#                     goes as $work does (with what is mounted below
#                     it; CFS_TEST_KEEP keeps it).
public_dir() { # NAME
	pub=$(mktemp -d "/tmp/cfs-$1.XXXXXX")
	chmod 755 "$pub"
	# (rc: the exit status _test_exit keeps)
	on_exit "_public_dir_exit $(printf %q "$pub") || [ \"\$rc\" -ne 0 ] || rc=1"
}
_public_dir_exit() { # DIR
	if [ -n "${CFS_TEST_KEEP:-}" ]; then
		echo "$me: kept $1" >&2
	else
		remove_work "$1"
	fi
}

#   jcheck_file FILE EXPR [WHAT]
#                     jcheck EXPR on the JSON document in FILE; the
#                     failure message ends with FILE's content
jcheck_file() { # FILE EXPR [WHAT]
	local text
	text=$(cat "$1")
	jcheck "$2" "${3:-$2}: $text" <<<"$text"
}

# Store helpers (cfs-store is $CFS_BIN/cfs-store):
#   fsck_clean ROOT WHAT [ARG]...
#                     `cfs-store --root ROOT fsck ARG... --json` exits 0
#                     and reports no problem (the stale temporaries it
#                     cleans are none); else fail with WHAT. The report
#                     is left in $work/fsck.json.
fsck_clean() { # ROOT WHAT [ARG]...
	local store=$1 what=$2 out=$work/fsck.json st=0 report
	shift 2
	"$CFS_BIN/cfs-store" --root "$store" fsck "$@" --json >"$out" 2>"$work/fsck.err" || st=$?
	[ "$st" -eq 0 ] || fail "$what: fsck exit $st: $(cat "$out" "$work/fsck.err")"
	report=$(cat "$out")
	jcheck "j['ok'] and j['problems'] == []" "$what: fsck found problems: $report" <<<"$report"
}

#   us_now            the time in microseconds
#   us_secs US        US microseconds in seconds, S.UUUUUU
us_now() { echo $(($(date +%s%N) / 1000)); }
us_secs() { printf '%d.%06d' $(($1 / 1000000)) $(($1 % 1000000)); }

#   kill_at US CMD... run CMD (its stdout and stderr in $work/kill.out
#                     and kill.err), kill -9 it US microseconds later
#                     (or at exit, if the test ends first) and reap it.
#                     Sets rc: 137 if the kill landed, 0 if CMD was done
#                     by then; any other status (CMD failed on its own)
#                     fails the test.
kill_at() { # US CMD...
	local us=$1
	shift
	if [ -z "${_kill_hooked:-}" ]; then
		on_exit _kill_at_exit
		_kill_hooked=1
	fi
	"$@" >"$work/kill.out" 2>"$work/kill.err" &
	_kill_pid=$!
	sleep "$(us_secs "$us")"
	kill -9 "$_kill_pid" 2>/dev/null || true
	rc=0
	# (braces: no "Killed" line from the shell)
	{ wait "$_kill_pid"; } 2>/dev/null || rc=$?
	_kill_pid=
	[ "$rc" -eq 0 ] || [ "$rc" -eq 137 ] ||
		fail "$* failed on its own (exit $rc): $(cat "$work/kill.err")"
}
_kill_at_exit() {
	[ -z "${_kill_pid:-}" ] || { kill -9 "$_kill_pid" && wait "$_kill_pid"; } 2>/dev/null
}

#   kill_trial ROOT MAX_US WHAT CHECK CMD...
#                     one kill -9 trial of CMD, a cfs-store command on
#                     the store at ROOT: kill_at a random moment in
#                     [0, MAX_US] (drawn from $RANDOM in this shell: seed
#                     RANDOM for the same moments on every run), then
#                     fsck_clean ROOT ("WHAT killed after S s: ..."), a
#                     line "$me: WHAT: completed|killed after S s; fsck
#                     clean", and CHECK (a command for eval, "" for none:
#                     the store is as it should be, the operation can be
#                     repeated...). Sets rc (as kill_at does), kill_us
#                     (the moment) and kill_outcome (completed or
#                     killed); counts the kills that landed before CMD
#                     was done in kills_landed (set it to 0 first).
kill_trial() { # ROOT MAX_US WHAT CHECK CMD...
	# (names of its own: CHECK sees the script's)
	local _kt_root=$1 _kt_max=$2 _kt_what=$3 _kt_check=$4
	shift 4
	kill_us=$(((RANDOM * 32768 + RANDOM) % (_kt_max + 1)))
	kill_at "$kill_us" "$@"
	if [ "$rc" -eq 137 ]; then
		kill_outcome=killed
		kills_landed=$((${kills_landed:-0} + 1))
	else
		kill_outcome=completed
	fi
	fsck_clean "$_kt_root" "$_kt_what killed after $(us_secs "$kill_us") s"
	echo "$me: $_kt_what: $kill_outcome after $(us_secs "$kill_us") s; fsck clean"
	eval "$_kt_check"
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

#   podman5_exec NAME SCRIPT [ARG]...
#                     for the test NAME (its messages): skip unless root,
#                     unshare, nsenter and debootstrap are there, then run
#                     SCRIPT in a mount namespace of its own with the
#                     Debian 13 root of podman 5 made or reused in
#                     CFS_PODMAN5_CACHE (default: the build's
#                     tests/podman5), CFS_PODMAN_ROOT naming it
#                     (podman5_enter). Does not return.
#   podman5_init NAME [VAR]...
#                     test_init for a script that runs podman 5: the first
#                     time through, podman5_exec NAME "$0"; in there,
#                     test_init NAME VAR..., so that only that run has a
#                     $work (and cleans it up).
podman5_exec() { # NAME SCRIPT [ARG]...
	me=$1
	shift
	need_root "podman 5's root, mount namespaces"
	need_tool unshare nsenter debootstrap
	[ -n "${CFS_TEST_TMP:-}" ] || fail "CFS_TEST_TMP is not set (CTest sets it: tests/CMakeLists.txt)"
	mkdir -p "$CFS_TEST_TMP"
	podman5_enter "${CFS_PODMAN5_CACHE:-$(dirname "$(realpath "$CFS_TEST_TMP")")/podman5}" "$@"
	# (CFS_PODMAN_ROOT was set already: in there)
	exec bash "$@"
}
podman5_init() { # NAME [VAR]...
	[ -n "${CFS_PODMAN_ROOT:-}" ] || podman5_exec "$1" "$0"
	test_init "$@"
}

#   podman_root_up ROOT DIR
#                     podman_root_start ROOT DIR, undone at exit (on_exit:
#                     register it before the hooks that still need
#                     PODMAN, such as a podman rm): the namespace's
#                     process killed, DIR's bind in ROOT unmounted and
#                     the directories made for it there removed (ROOT is
#                     kept for the next test).
podman_root_up() { # ROOT DIR
	on_exit "_podman_root_exit $(printf '%q %q' "$1" "$2")"
	podman_root_start "$1" "$2"
}
_podman_root_exit() { # ROOT DIR
	[ -z "${holder:-}" ] || { kill "$holder" && wait "$holder"; } 2>/dev/null
	holder=
	umount -l "$1$2" 2>/dev/null
	rmdir -p "$1$2" 2>/dev/null
	return 0
}

#   podman_conf DIR root|user [LINE]...
#                     the configuration of a podman of the test's own (the
#                     machine's podman untouched): DIR/storage.conf
#                     (overlay; each LINE added below [storage.options])
#                     and DIR/containers.conf (runc, cgroupfs, events in
#                     a file, no network). root: graphroot DIR/graph and
#                     runroot DIR/runroot, raised ulimits, and
#                     CONTAINERS_STORAGE_CONF and CONTAINERS_CONF
#                     exported naming the files (not --root/--runroot:
#                     with them podman 4.3 drops storage.conf's options,
#                     additionalimagestores included). user: a rootless
#                     user's, for its ~/.config/containers (the user's
#                     own graphroot and runroot and limits).
podman_conf() { # DIR root|user [LINE]...
	local dir=$1 who=$2 line
	shift 2
	mkdir -p "$dir"
	{
		printf '[storage]\ndriver = "overlay"\n'
		[ "$who" = user ] || printf 'graphroot = "%s"\nrunroot = "%s"\n' "$dir/graph" "$dir/runroot"
		echo "[storage.options]"
		for line; do
			echo "$line"
		done
	} >"$dir/storage.conf"
	{
		echo "[containers]"
		[ "$who" = user ] || echo 'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]'
		printf 'netns = "none"\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
	} >"$dir/containers.conf"
	[ "$who" != user ] || return 0
	mkdir -p "$dir/graph" "$dir/runroot"
	export CONTAINERS_STORAGE_CONF=$dir/storage.conf CONTAINERS_CONF=$dir/containers.conf
}
