#!/bin/bash
# Page cache used to read every file of two images that share a base
# layer (debian-minbase and debian-python), measured in the same run for
#   a) composefs: both converted into one object directory, both mounted;
#   b) umoci unpack of each image, each stacked with overlayfs.
# Cache use is summed with fincore over the files that back each setup
# (objects and images; the two unpacked trees), after drop_caches and one
# full read of both mounts. Prints both and their ratio.
#   usage: bench/pagecache.sh [CORPUS_DIR]   (root)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
corpus=${1:-${CFS_CORPUS:-$here/build-corpus}}
oci2cfs=${OCI2CFS:-$here/build/bin/oci2cfs}
images=(debian-minbase debian-python)
for t in umoci fincore; do command -v $t >/dev/null || { echo "$t missing"; exit 1; }; done

tmp=$(mktemp -d /var/tmp/cfs-pagecache.XXXXXX)
mounts=()
cleanup() {
	for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[$i]}" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
mkdir "$tmp/empty"

for img in "${images[@]}"; do
	"$oci2cfs" --objects "$tmp/objects" "oci:$corpus/$img" "$tmp/$img.cfs"
	mkdir "$tmp/$img.meta" "$tmp/$img.cfsroot" "$tmp/$img.ovl"
	mount -t erofs -o ro "$tmp/$img.cfs" "$tmp/$img.meta"; mounts+=("$tmp/$img.meta")
	mount -t overlay overlay -o "ro,metacopy=on,redirect_dir=on,lowerdir=$tmp/$img.meta::$tmp/objects" "$tmp/$img.cfsroot"
	mounts+=("$tmp/$img.cfsroot")
	umoci unpack --image "$corpus/$img:latest" "$tmp/$img.bundle" > /dev/null 2>&1
	mount -t overlay overlay -o "ro,lowerdir=$tmp/$img.bundle/rootfs:$tmp/empty" "$tmp/$img.ovl"
	mounts+=("$tmp/$img.ovl")
done

cached() { find "$@" -type f -print0 | xargs -0 fincore --bytes --noheadings --raw --output RES | awk '{s+=$1} END {print s+0}'; }
readall() { for d in "$@"; do find "$d" -type f -print0 | xargs -0 cat > /dev/null; done; }

sync; echo 3 > /proc/sys/vm/drop_caches
readall "$tmp/debian-minbase.cfsroot" "$tmp/debian-python.cfsroot"
cfs=$(cached "$tmp/objects" "$tmp/debian-minbase.cfs" "$tmp/debian-python.cfs")

sync; echo 3 > /proc/sys/vm/drop_caches
readall "$tmp/debian-minbase.ovl" "$tmp/debian-python.ovl"
ovl=$(cached "$tmp/debian-minbase.bundle/rootfs" "$tmp/debian-python.bundle/rootfs")

python3 - "$cfs" "$ovl" <<'PY'
import sys
cfs, ovl = map(int, sys.argv[1:])
print("page cache after reading every file of debian-minbase and debian-python:")
print("  composefs, shared object dir   %8.1f MiB" % (cfs / 2**20))
print("  umoci unpack + overlayfs       %8.1f MiB" % (ovl / 2**20))
print("  composefs / overlayfs          %8.2fx" % (cfs / ovl))
PY
