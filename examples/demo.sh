#!/bin/bash
# The main job on the bundled example: convert examples/hello-rootfs into a
# composefs image plus object directory, then mount it (root only) and
# show that the mounted tree reads back, identical files sharing one object.
#   usage: examples/demo.sh [BUILD_DIR]   (default: build)
# Mounting needs root: run by a user, the demo runs itself again through
# sudo (without sudo, it converts and stops before the mount).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
oci2cfs=$(cd "$build" && pwd)/bin/oci2cfs
[ -x "$oci2cfs" ] || { echo "$0: no $oci2cfs: build first (cmake -B build && cmake --build build)" >&2; exit 1; }
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then
	exec sudo "$here/demo.sh" "$(cd "$build" && pwd)"
fi
out=$(mktemp -d /tmp/oci2cfs-demo.XXXXXX)
mounted=()
cleanup() {
	for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount "${mounted[$i]}" || true; done
	rm -rf "$out"
}
trap cleanup EXIT

echo "== oci2cfs --objects $out/objects dir:examples/hello-rootfs $out/hello.cfs"
"$oci2cfs" --objects "$out/objects" --json "dir:$here/hello-rootfs" "$out/hello.cfs"
echo "== object directory"
(cd "$out/objects" && find . -type f | sort)

if [ "$(id -u)" -ne 0 ]; then
	echo "== not root and no sudo: the mount part of the demo needs root"
	exit 0
fi
mkdir "$out/erofs" "$out/root"
mount -t erofs -o ro "$out/hello.cfs" "$out/erofs"
mounted+=("$out/erofs")
mount -t overlay overlay \
	-o "ro,metacopy=on,redirect_dir=on,lowerdir=$out/erofs::$out/objects" "$out/root"
mounted+=("$out/root")
echo "== mounted image"
(cd "$out/root" && ls -lR . | head -40)
echo "== /usr/bin/hello through the mount"
sh "$out/root/usr/bin/hello"
echo "== words.txt and copy-of-words.txt are one object:"
getfattr --absolute-names -n trusted.overlay.redirect \
	"$out/erofs/usr/share/hello/words.txt" "$out/erofs/usr/share/hello/copy-of-words.txt"
