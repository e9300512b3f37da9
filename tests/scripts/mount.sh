#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# mount.cfs and cfs_mount(): a read-only mount reads back the source and
# refuses writes with EROFS; a writable mount (upper and work directory)
# takes writes, deletes, chmods and renames into the upper directory and
# leaves the image and the objects byte for byte unchanged; the EROFS
# mount of the image is never visible, only the overlay at the target;
# `mount -t cfs` finds the helper; the paths meant for older kernels
# (mount(2), an attached EROFS mount, a loop device; forced with
# CFS_MOUNT_FORCE) work as well; bad input gives one line, mount(8)'s exit
# code and leaves nothing mounted.
#
# Needs root (mount). Environment: CFS_BIN, CFS_TEST_TMP.
set -euo pipefail

. "$(dirname "$0")/lib.sh"
test_init mount
oci2cfs=$CFS_BIN/oci2cfs
mountcfs=$CFS_BIN/mount.cfs

need_root "mount"
need_exec "$oci2cfs" "$mountcfs"
need_tool python3 fsverity sha256sum mount umount mountpoint losetup

src=$work/src
objects=$work/objects
image=$work/img.cfs
mnt=$work/mnt
busy=$work/busy
tmpfs=$work/tmpfs

case $work in
*[,:\\\"]*) fail "scratch path $work holds ',', ':', '\\' or '\"'" ;;
esac

# Mount table in a comparable form: mount point and type, one per line,
# limited to what this test or the library's temporary attach points can
# own, so that other tests mounting in parallel do not disturb it.
mounts() {
	awk -v w="$work" '{ for (i = 7; i <= NF; i++) if ($i == "-") {
		if (index($5, w) == 1 || $5 ~ /\/\.cfs-erofs/) print $5, $(i + 1)
		break } }' /proc/self/mountinfo
}
# Hashes of the image and of every object, to prove them untouched.
hashes() {
	(cd "$work" && sha256sum img.cfs && find objects -type f -print0 | sort -z |
		xargs -0 sha256sum)
}
# True if the operation fails with EROFS (python reports the errno).
erofs() {
	python3 - "$@" <<'EOF'
import errno, os, sys
op, path = sys.argv[1], sys.argv[2]
try:
    if op == "create":
        open(path, "x").close()
    elif op == "write":
        with open(path, "a") as f:
            f.write("x")
    elif op == "unlink":
        os.unlink(path)
    elif op == "chmod":
        os.chmod(path, 0o600)
    elif op == "mkdir":
        os.mkdir(path)
    elif op == "rename":
        os.rename(path, path + ".moved")
except OSError as e:
    sys.exit(0 if e.errno == errno.EROFS else 2)
sys.exit(1)
EOF
}
# The only new mount is the overlay at the target; no EROFS anywhere.
only_overlay_at_target() {
	local now
	now=$(mounts)
	if grep -q ' erofs$' <<<"$now"; then
		fail "an EROFS mount is visible:"$'\n'"$(grep ' erofs$' <<<"$now")"
	fi
	diff <(echo "$baseline") <(echo "$now") | grep '^[<>]' >"$work/mount-diff" || true
	[ "$(cat "$work/mount-diff")" = "> $mnt overlay" ] ||
		fail "expected only the overlay at $mnt to be added, got:"$'\n'"$(cat "$work/mount-diff")"
}
nothing_mounted() {
	[ "$(mounts)" = "$baseline" ] ||
		fail "$1: the mount table changed:"$'\n'"$(diff <(echo "$baseline") <(mounts) || true)"
}
# mount_fails CODE PATTERN CMD...: exit code CODE, nothing on stdout, one
# line on stderr that matches PATTERN (usage errors add the "Try" line),
# and nothing left mounted.
mount_fails() {
	local want=$1 pattern=$2 rc=0 lines=1
	shift 2
	"$@" >"$work/out" 2>"$work/err" || rc=$?
	echo "   exit $rc: $(head -n1 "$work/err")"
	[ "$rc" -eq "$want" ] || fail "$*: exit $rc, expected $want; stderr: $(cat "$work/err")"
	[ ! -s "$work/out" ] || fail "$*: wrote to stdout: $(cat "$work/out")"
	[ "$want" -eq 1 ] && lines=2
	[ "$(wc -l <"$work/err")" -eq "$lines" ] ||
		fail "$*: expected $lines line(s) on stderr, got:"$'\n'"$(cat "$work/err")"
	head -n1 "$work/err" | grep -q -- "$pattern" ||
		fail "$*: message does not match '$pattern': $(head -n1 "$work/err")"
	head -n1 "$work/err" | grep -q '^mount.cfs: ' ||
		fail "$*: message does not start with 'mount.cfs: '"
	nothing_mounted "$*"
}

step "building and converting a small tree"
mkdir -p "$src/dir/sub" "$src/empty-dir"
echo hello >"$src/small.txt"
head -c 100000 /dev/urandom >"$src/big.bin"
head -c 300 /dev/urandom >"$src/dir/sub/file"
cp "$src/dir/sub/file" "$src/dir/copy" # same object twice
: >"$src/empty"
printf '#!/bin/sh\necho hi\n' >"$src/exec.sh"
chmod 755 "$src/exec.sh"
ln -s small.txt "$src/link"
ln "$src/big.bin" "$src/hardlink"
"$oci2cfs" --objects "$objects" "dir:$src" "$image" || fail "oci2cfs failed"
hashes >"$work/hashes.before"
mkdir "$mnt" "$busy" "$tmpfs"
# Fixtures for the bad cases: a mount point, and a tmpfs for an upperdir.
mount -t tmpfs cfs-test-busy "$busy"
mount -t tmpfs cfs-test-tmpfs "$tmpfs"
mkdir "$tmpfs/upper"
baseline=$(mounts)

step "read-only mount"
"$mountcfs" "$image" "$mnt" -o "objects=$objects" || fail "read-only mount failed"
only_overlay_at_target
compare_tree "$src" "$mnt"
[ "$(stat -c %a "$mnt/exec.sh")" = 755 ] || fail "exec.sh lost its mode"
[ "$(stat -c %i "$mnt/big.bin")" = "$(stat -c %i "$mnt/hardlink")" ] ||
	fail "the hardlink is not one inode"
for op in "create new" "write small.txt" "write big.bin" "unlink small.txt" \
	"chmod big.bin" "mkdir newdir" "rename dir"; do
	set -- $op
	erofs "$1" "$mnt/$2" || fail "$1 $2 on the read-only mount did not fail with EROFS"
done
grep " $mnt " /proc/self/mountinfo | grep -q ' ro[, ]' || fail "the overlay is not mounted ro"
"$mountcfs" --umount "$mnt" || fail "mount.cfs --umount failed"
nothing_mounted "after --umount"

step "writable mount (upper and work directory on the same filesystem)"
mkdir "$work/upper" "$work/work"
"$mountcfs" "$image" "$mnt" -o "objects=$objects,upperdir=$work/upper,workdir=$work/work" ||
	fail "writable mount failed"
only_overlay_at_target
compare_tree "$src" "$mnt"
echo new >"$mnt/new.txt"
echo more >>"$mnt/dir/sub/file"
rm "$mnt/small.txt"
chmod 600 "$mnt/big.bin"
mkdir "$mnt/newdir"
mv "$mnt/dir" "$mnt/dir2"
[ "$(cat "$mnt/new.txt")" = new ] || fail "new.txt does not read back"
[ ! -e "$mnt/small.txt" ] || fail "small.txt still visible after rm"
[ "$(stat -c %a "$mnt/big.bin")" = 600 ] || fail "chmod not visible"
cmp -s "$mnt/big.bin" "$src/big.bin" || fail "big.bin content changed by chmod"
[ -d "$mnt/newdir" ] && [ ! -e "$mnt/dir" ] || fail "mkdir/rename not visible"
{ cat "$src/dir/sub/file" && echo more; } | cmp -s - "$mnt/dir2/sub/file" ||
	fail "the appended file does not read back"
"$mountcfs" --umount "$mnt" || fail "mount.cfs --umount failed"
nothing_mounted "after the writable mount"
[ "$(cat "$work/upper/new.txt")" = new ] || fail "new.txt is not in the upper dir"
[ -c "$work/upper/small.txt" ] && [ "$(stat -c %t:%T "$work/upper/small.txt")" = 0:0 ] ||
	fail "no whiteout for small.txt in the upper dir"
[ "$(stat -c %a "$work/upper/big.bin")" = 600 ] || fail "the chmod is not in the upper dir"
[ -d "$work/upper/newdir" ] && [ -d "$work/upper/dir2" ] || fail "mkdir/rename not in the upper dir"
hashes >"$work/hashes.after"
cmp -s "$work/hashes.before" "$work/hashes.after" ||
	fail "the image or the objects changed:"$'\n'"$(diff "$work/hashes.before" "$work/hashes.after")"

step "the changes persist across a remount"
"$mountcfs" "$image" "$mnt" -o "objects=$objects,upperdir=$work/upper,workdir=$work/work,nosuid,nodev" ||
	fail "second writable mount failed"
[ "$(cat "$mnt/new.txt")" = new ] && [ ! -e "$mnt/small.txt" ] || fail "changes lost"
grep " $mnt " /proc/self/mountinfo | grep -q 'rw,nosuid,nodev' || fail "not rw,nosuid,nodev"
umount "$mnt"

step "an explicit ro with an upper dir"
"$mountcfs" "$image" "$mnt" -o "objects=$objects,upperdir=$work/upper,workdir=$work/work,ro" ||
	fail "ro mount with an upper dir failed"
erofs create "$mnt/other" || fail "ro mount with an upper dir is writable"
umount "$mnt"

step "the paths for older kernels"
# (a loop device that a failure here leaves goes at exit)
detach_loops() { losetup -j "$image" | cut -d: -f1 | xargs -r -n1 losetup -d; }
on_exit detach_loops
for force in legacy attach loop legacy,loop attach,loop; do
	CFS_MOUNT_FORCE=$force "$mountcfs" "$image" "$mnt" -o "objects=$objects" ||
		fail "CFS_MOUNT_FORCE=$force: mount failed"
	only_overlay_at_target
	compare_tree "$src" "$mnt"
	mounts | grep -q '\.cfs-erofs-' && fail "CFS_MOUNT_FORCE=$force: temporary mount left"
	umount "$mnt"
	nothing_mounted "CFS_MOUNT_FORCE=$force"
	if losetup -j "$image" | grep -q .; then
		fail "CFS_MOUNT_FORCE=$force: loop device left: $(losetup -j "$image")"
	fi
	echo "   $force: ok"
done
rm -rf "$work/upper2" "$work/work2"
mkdir "$work/upper2" "$work/work2"
CFS_MOUNT_FORCE=legacy "$mountcfs" "$image" "$mnt" \
	-o "objects=$objects,upperdir=$work/upper2,workdir=$work/work2" ||
	fail "CFS_MOUNT_FORCE=legacy: writable mount failed"
echo x >"$mnt/legacy.txt"
umount "$mnt"
[ -f "$work/upper2/legacy.txt" ] || fail "legacy writable mount did not write to the upper dir"

step "digest=: a matching digest mounts"
digest=$(fsverity digest --compact "$image")
[ ${#digest} -eq 64 ] || fail "fsverity digest printed '$digest'"
"$mountcfs" "$image" "$mnt" -o "objects=$objects,digest=$digest" ||
	fail "mount with the right digest failed"
umount "$mnt"
"$mountcfs" "$image" "$mnt" -o "objects=$objects,digest=sha256:$digest" ||
	fail "mount with the right digest (sha256: prefix) failed"
umount "$mnt"
nothing_mounted "digest"

step "bad input: one line, mount(8)'s exit code, nothing mounted"
wrong=$(printf '%064d' 0)
echo "this is not a composefs image, but long enough to read a header from it" >"$work/not-an-image"
head -c 8192 /dev/zero >>"$work/not-an-image"
mount_fails 32 "image $work/nope.cfs: No such file or directory" \
	"$mountcfs" "$work/nope.cfs" "$mnt" -o "objects=$objects"
mount_fails 32 "image $work/not-an-image: not a composefs image" \
	"$mountcfs" "$work/not-an-image" "$mnt" -o "objects=$objects"
mount_fails 32 "image $src/small.txt: not a composefs image" \
	"$mountcfs" "$src/small.txt" "$mnt" -o "objects=$objects"
mount_fails 32 "image $src: not a regular file" \
	"$mountcfs" "$src" "$mnt" -o "objects=$objects"
mount_fails 32 "fs-verity digest is $digest, expected $wrong" \
	"$mountcfs" "$image" "$mnt" -o "objects=$objects,digest=$wrong"
mount_fails 32 "target $work/nowhere: No such file or directory" \
	"$mountcfs" "$image" "$work/nowhere" -o "objects=$objects"
mount_fails 32 "target $src/small.txt: Not a directory" \
	"$mountcfs" "$image" "$src/small.txt" -o "objects=$objects"
mount_fails 32 "target $busy: already a mount point" \
	"$mountcfs" "$image" "$busy" -o "objects=$objects"
mount_fails 32 "objects $work/no-objects: No such file or directory" \
	"$mountcfs" "$image" "$mnt" -o "objects=$work/no-objects"
mount_fails 32 "overlay: upperdir $tmpfs/upper, workdir $work/work: Invalid argument" \
	"$mountcfs" "$image" "$mnt" -o "objects=$objects,upperdir=$tmpfs/upper,workdir=$work/work"
mount_fails 32 "overlay: mount on $mnt: Invalid argument" \
	env CFS_MOUNT_FORCE=legacy "$mountcfs" "$image" "$mnt" \
	-o "objects=$objects,upperdir=$tmpfs/upper,workdir=$work/work"
mount_fails 32 "overlay: upperdir $work/no-upper: No such file or directory" \
	"$mountcfs" "$image" "$mnt" -o "objects=$objects,upperdir=$work/no-upper,workdir=$work/work"
mount_fails 1 "unknown mount option 'bogus'" \
	"$mountcfs" "$image" "$mnt" -o "objects=$objects,bogus"
mount_fails 1 "objects=DIR (the object directory) is required" \
	"$mountcfs" "$image" "$mnt" -o ro
mount_fails 1 "upperdir= and workdir= go together" \
	"$mountcfs" "$image" "$mnt" -o "objects=$objects,upperdir=$work/upper"
mount_fails 1 "64 hex digits" \
	"$mountcfs" "$image" "$mnt" -o "objects=$objects,digest=abc"
mount_fails 1 "expected verity=off, on, require or auto" \
	"$mountcfs" "$image" "$mnt" -o "objects=$objects,verity=maybe"
mount_fails 1 "expected IMAGE and TARGET" "$mountcfs" "$image"
mount_fails 32 "umount: $busy: not an overlay mount" "$mountcfs" --umount "$busy"
mount_fails 32 "umount: $mnt: not a mount point" "$mountcfs" --umount "$mnt"
# Sloppy (-s) lets unknown options through, as mount(8) documents.
"$mountcfs" -s "$image" "$mnt" -o "objects=$objects,bogus" || fail "-s did not ignore 'bogus'"
umount "$mnt"
# Fake (-f) checks the options and mounts nothing.
"$mountcfs" -f "$image" "$mnt" -o "objects=$objects"
nothing_mounted "mount.cfs -f"

step "mount -t cfs finds the helper"
helper=/sbin/mount.cfs
if [ -e "$helper" ] || [ -L "$helper" ]; then
	echo "$me: SKIP mount -t cfs: $helper exists already; not replacing it"
elif ! ln -s "$mountcfs" "$helper" 2>"$work/ln.err"; then
	echo "$me: SKIP mount -t cfs: cannot create $helper: $(cat "$work/ln.err")"
else
	sbin_link=$helper
	remove_helper() { [ -z "$sbin_link" ] || rm -f "$sbin_link"; }
	on_exit remove_helper
	mount -t cfs "$image" "$mnt" -o "objects=$objects" || fail "mount -t cfs failed"
	only_overlay_at_target
	compare_tree "$src" "$mnt"
	umount "$mnt"
	nothing_mounted "mount -t cfs"
	rc=0
	mount -t cfs "$image" "$mnt" -o "objects=$objects,bogus" 2>"$work/err" || rc=$?
	[ "$rc" -eq 1 ] || fail "mount -t cfs with a bad option: exit $rc, expected 1"
	grep -q "unknown mount option 'bogus'" "$work/err" || fail "mount -t cfs: no message"
	rc=0
	mount -t cfs "$image" "$busy" -o "objects=$objects" 2>"$work/err" || rc=$?
	[ "$rc" -eq 32 ] || fail "mount -t cfs on a mount point: exit $rc, expected 32"
	nothing_mounted "mount -t cfs failures"
	rm -f "$helper"
	sbin_link=
fi

hashes >"$work/hashes.after"
cmp -s "$work/hashes.before" "$work/hashes.after" || fail "the image or the objects changed"
echo "$me: PASS"
