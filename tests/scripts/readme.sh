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
# Needs root (useradd, sudoers) and sudo. Environment: CFS_SRC (and
# CFS_BIN, CFS_TEST_TMP: tests/CMakeLists.txt).
set -euo pipefail

# shellcheck source=tests/scripts/lib.sh
. "$(dirname "$0")/lib.sh"
test_init readme CFS_SRC

need_root "useradd, mounts"
need_tool git sudo useradd runuser
git -C "$CFS_SRC" rev-parse --git-dir >/dev/null 2>&1 ||
	skip "$CFS_SRC is not a git checkout (the copy is its tracked files)"

cmds=$("$CFS_SRC/tests/scripts/readme-commands.sh" "$CFS_SRC/README.md")
cmd=${cmds%%$'\n'*}
step "command: $cmd"

# Nothing beside the copies: a directory of its own below /tmp.
public_dir readme
user=cfsreadme$$
sudoers=/etc/sudoers.d/$user

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
copy "$pub/root/oci2cfs"
mkdir "$pub/nosudo"
printf '#!/bin/sh\necho "sudo: called as root: $*" >&2\nexit 127\n' >"$pub/nosudo/sudo"
chmod 755 "$pub/nosudo/sudo"
(cd "$pub/root/oci2cfs" && PATH=$pub/nosudo:$PATH bash -euo pipefail -c "$cmd") >"$work/root.log" 2>&1 ||
	fail "as root: the command failed: $(tail -n 20 "$work/root.log")"
grep -q 'sudo: called as root' "$work/root.log" && fail "as root: sudo was called"
check_demo "$work/root.log" "as root"
echo "$me: as root: ok"

step "as user $user, with sudo"
remove_user() {
	rm -f "$sudoers"
	! id "$user" >/dev/null 2>&1 || userdel "$user"
}
on_exit remove_user
useradd --no-create-home --home-dir "$pub/user" --shell /bin/bash "$user"
printf '%s ALL=(ALL) NOPASSWD: ALL\n' "$user" >"$sudoers"
chmod 440 "$sudoers"
copy "$pub/user/oci2cfs"
chown -R "$user:" "$pub/user"
runuser -u "$user" -- env -i HOME="$pub/user" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
	bash -euo pipefail -c "cd '$pub/user/oci2cfs' && $cmd" >"$work/user.log" 2>&1 ||
	fail "as $user: the command failed: $(tail -n 20 "$work/user.log")"
check_demo "$work/user.log" "as $user"
owner=$(stat -c %U "$pub/user/oci2cfs/build/bin/oci2cfs")
[ "$owner" = "$user" ] || fail "as $user: the build belongs to $owner, not to the user"
echo "$me: as $user: ok"
echo "$me: ok"
