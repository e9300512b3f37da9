#!/bin/bash
# The main job on the bundled example: convert examples/hello-rootfs into a
# composefs image plus object directory, then mount it (root only) and
# show that the mounted tree reads back, identical files sharing one object.
#   usage: examples/demo.sh [BUILD_DIR]   (default: build)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
oci2cfs=$(cd "$build" && pwd)/bin/oci2cfs
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
	echo "== not root: skipping the mount part of the demo"
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
