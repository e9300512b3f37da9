#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# Man pages (docs/man/*.scd, built by scdoc): each renders with
# `man -l`, names its tool in NAME, and has every option that the tool's
# --help prints (long options, and mount.cfs's short ones); the help of
# each cfs-store command is in the page too. The systemd units
# (dist/systemd) pass `systemd-analyze verify` with the binary they run
# and the man page they name installed (cmake --install), and name only
# programs that exist.
# Environment: CFS_BIN, CFS_SRC, CFS_TEST_TMP.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
test_init man
build=$(dirname "$CFS_BIN")
need_tool man col cmake
need_exec "$CFS_BIN/oci2cfs" "$CFS_BIN/cfs-store" "$CFS_BIN/mount.cfs" "$CFS_BIN/cfs-mkcomposefs"
[ -d "$build/man" ] || skip "no man pages in $build/man: scdoc was missing at configure time (scripts/install-deps.sh)"

render() { LC_ALL=C MANWIDTH=100 man -l "$1" 2>"$work/man.err" | col -b; }

check_page() { # PAGE TOOL HELP-ARGS...
	local page=$1 tool=$2 out opt n=0
	shift 2
	out=$work/$(basename "$page").txt
	render "$page" >"$out"
	[ ! -s "$work/man.err" ] || fail "$page: man says: $(cat "$work/man.err")"
	grep -q "^NAME" "$out" && grep -A1 "^NAME" "$out" | grep -q "$tool - " ||
		fail "$page: no NAME line for $tool"
	for s in SYNOPSIS DESCRIPTION OPTIONS "EXIT STATUS" "SEE ALSO"; do
		grep -q "^$s" "$out" || fail "$page: no $s section"
	done
	"$CFS_BIN/$tool" "$@" >"$work/help" 2>&1 || true
	[ -s "$work/help" ] || fail "$tool $*: no help"
	while read -r opt; do
		n=$((n + 1))
		grep -qE -- "(^|[^a-zA-Z-])$opt([^a-zA-Z-]|\$)" "$out" ||
			fail "$page: $opt (in $tool --help) is not in the page"
	done < <(grep -oE -- '(^|[ ,[])--?[a-zA-Z][a-zA-Z-]*' "$work/help" | sed 's/^[ ,[]//' | sort -u)
	[ "$n" -ge 5 ] || fail "$tool --help: only $n options found"
	echo "$me: $(basename "$page"): renders, all $n options of $tool --help in it"
}
check_page "$build/man/oci2cfs.1" oci2cfs --help
check_page "$build/man/cfs-store.1" cfs-store --help
check_page "$build/man/mount.cfs.8" mount.cfs --help
check_page "$build/man/cfs-mkcomposefs.1" cfs-mkcomposefs --help

# Every cfs-store command of --help has its entry.
out=$work/cfs-store.1.txt
while read -r cmd; do
	grep -qE "^ +$cmd( |$)" "$out" || fail "cfs-store.1: no entry for the command '$cmd'"
done < <(sed -n '/^Commands:/,/^$/p' "$work/help" >/dev/null; "$CFS_BIN/cfs-store" --help |
	sed -n '/^Commands:/,/^$/p' | grep -oE '^  [a-z]+( (sync|mount-all|unmount-all))?' | sed 's/^  //')

# The units, installed with what they name.
need_tool systemd-analyze
cmake --install "$build" --prefix "$work/prefix" >/dev/null
units=$work/prefix/lib/systemd/system
for u in cfs-store-mount.service cfs-store-gc.service cfs-store-gc.timer; do
	[ -f "$units/$u" ] || fail "cmake --install did not install $u"
done
for m in man1/oci2cfs.1 man1/cfs-store.1 man8/mount.cfs.8 man1/cfs-mkcomposefs.1; do
	[ -f "$work/prefix/share/man/$m" ] || fail "cmake --install did not install $m"
done
# ExecStart names the configured bin dir; point it at the installed copy.
mkdir "$work/units"
for u in "$units"/*; do
	sed -E "s|^(Exec[A-Za-z]+=)[^ ]*/cfs-store|\1$work/prefix/bin/cfs-store|" "$u" >"$work/units/$(basename "$u")"
done
grep -q "^ExecStart=$work/prefix/bin/cfs-store ais mount-all$" "$work/units/cfs-store-mount.service" ||
	fail "cfs-store-mount.service does not run ais mount-all"
MANPATH=$work/prefix/share/man systemd-analyze verify "$work/units"/* >"$work/verify" 2>&1 ||
	fail "systemd-analyze verify: $(cat "$work/verify")"
# Without the installed cfs-store the check must fail: it looks.
sed -i "s|$work/prefix/bin/cfs-store|$work/nonexistent/cfs-store|" "$work/units/cfs-store-gc.service"
if systemd-analyze verify --man=no "$work/units/cfs-store-gc.service" >/dev/null 2>&1; then
	fail "systemd-analyze verify accepts a unit whose program is missing"
fi
echo "$me: units install and verify"
echo "$me: ok"
