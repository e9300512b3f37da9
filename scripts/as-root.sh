# shellcheck shell=bash
# Sourced by the set-up scripts: as_root CMD... runs CMD as root, through
# sudo when the caller is not root. Root needs no sudo (a root-only
# Debian has none); a user without sudo gets one line saying what to do.
# The environment the tests read (CFS_*, ASan and UBSan options) goes
# along; sudo would drop it.
as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
		return
	fi
	if ! command -v sudo >/dev/null; then
		echo "$0: '$1' needs root: run this as root, or install sudo" >&2
		return 1
	fi
	local keep=() v
	for v in $(compgen -e); do
		case $v in
		CFS_* | ASAN_OPTIONS | UBSAN_OPTIONS | LSAN_OPTIONS) keep+=("$v=${!v}") ;;
		esac
	done
	sudo env "${keep[@]}" "$@"
}
