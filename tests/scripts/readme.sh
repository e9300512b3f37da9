#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# The README's first command (set-up, build, demo) as a new user runs it:
# on a copy of the project's tracked files in a fresh directory under
# /tmp, with nothing beside it (no ../shared), once as root with no sudo
# to be found, once as an unprivileged user who may use sudo.
#
#  - root: the command exits 0 and the demo mounts the image and runs
#    /usr/bin/hello from it; a `sudo` that fails is first on PATH, so
#    any use of sudo as root fails the test.
#  - user: the same, with the build owned by the user (only the mount
#    part of the demo ran through sudo).
#
# Needs root (useradd, sudoers) and sudo. Environment: CFS_SRC.
set -euo pipefail

me=readme
: "${CFS_SRC:?}"
fail() {
	echo "$me: FAIL: $*" >&2
	exit 1
}
step() { echo "== $me: $*"; }

[ "$(id -u)" -eq 0 ] || { echo "$me: skipped: needs root (useradd, mounts)"; exit 77; }
for tool in git sudo useradd runuser; do
	command -v "$tool" >/dev/null || fail "required tool '$tool' is not installed (scripts/install-deps.sh)"
done
git -C "$CFS_SRC" rev-parse --git-dir >/dev/null 2>&1 ||
	{ echo "$me: skipped: $CFS_SRC is not a git checkout (the copy is its tracked files)"; exit 77; }

cmds=$("$CFS_SRC/tests/scripts/readme-commands.sh" "$CFS_SRC/README.md")
cmd=${cmds%%$'\n'*}
step "command: $cmd"

work=$(mktemp -d /tmp/cfs-readme.XXXXXX)
chmod 755 "$work"
user=cfsreadme$$
sudoers=/etc/sudoers.d/$user
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	rm -f "$sudoers"
	id "$user" >/dev/null 2>&1 && userdel "$user" 2>/dev/null
	# shellcheck source=tests/scripts/lib.sh
	. "$CFS_SRC/tests/scripts/lib.sh"
	remove_work "$work" || rc=1
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The project's tracked files as they are in the working tree.
copy() { # DEST
	mkdir -p "$1"
	git -C "$CFS_SRC" ls-files -z | tar -C "$CFS_SRC" --null -T - -cf - | tar -C "$1" -xf -
	[ ! -e "$1/../shared" ] || fail "$1/../shared exists"
}

# The demo's output: the mounted tree, and /usr/bin/hello run from it.
check_demo() { # LOG WHO
	grep -q '^== mounted image' "$1" || fail "$2: the demo did not mount the image: $(tail -n 5 "$1")"
	grep -qx 'hello from a composefs image' "$1" || fail "$2: /usr/bin/hello did not run from the mount"
	# words.txt and copy-of-words.txt: two redirects, one object.
	[ "$(grep -c '^trusted.overlay.redirect=' "$1")" -eq 2 ] || fail "$2: no redirects in the demo's output"
	[ "$(grep '^trusted.overlay.redirect=' "$1" | sort -u | wc -l)" -eq 1 ] ||
		fail "$2: the two copies are not one object"
}

step "as root, no sudo on PATH"
copy "$work/root/oci2cfs"
mkdir "$work/nosudo"
printf '#!/bin/sh\necho "sudo: called as root: $*" >&2\nexit 127\n' >"$work/nosudo/sudo"
chmod 755 "$work/nosudo/sudo"
(cd "$work/root/oci2cfs" && PATH=$work/nosudo:$PATH bash -euo pipefail -c "$cmd") >"$work/root.log" 2>&1 ||
	fail "as root: the command failed: $(tail -n 20 "$work/root.log")"
grep -q 'sudo: called as root' "$work/root.log" && fail "as root: sudo was called"
check_demo "$work/root.log" "as root"
echo "$me: as root: ok"

step "as user $user, with sudo"
useradd --no-create-home --home-dir "$work/user" --shell /bin/bash "$user"
printf '%s ALL=(ALL) NOPASSWD: ALL\n' "$user" >"$sudoers"
chmod 440 "$sudoers"
copy "$work/user/oci2cfs"
chown -R "$user:" "$work/user"
runuser -u "$user" -- env -i HOME="$work/user" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
	bash -euo pipefail -c "cd '$work/user/oci2cfs' && $cmd" >"$work/user.log" 2>&1 ||
	fail "as $user: the command failed: $(tail -n 20 "$work/user.log")"
check_demo "$work/user.log" "as $user"
owner=$(stat -c %U "$work/user/oci2cfs/build/bin/oci2cfs")
[ "$owner" = "$user" ] || fail "as $user: the build belongs to $owner, not to the user"
echo "$me: as $user: ok"
echo "$me: ok"
