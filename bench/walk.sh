#!/bin/bash
# Metadata walk speed: `ls -lR` and `find` over the same image tree as
#   a) a mounted composefs image (EROFS + overlay with the object dir),
#   b) a plain EROFS image of the extracted tree built with mkfs.erofs,
#   c) the extracted tree (umoci unpack) under a read-only overlayfs,
# cold (after drop_caches) and warm, printed with ratios against (c).
#   usage: bench/walk.sh [CORPUS_DIR] [IMAGE]   (root; default debian-build)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
corpus=${1:-${CFS_CORPUS:-$here/build-corpus}}
image=${2:-debian-build}
oci2cfs=${OCI2CFS:-$here/build/bin/oci2cfs}
layout="$corpus/$image"
[ -f "$layout/index.json" ] || { echo "no OCI layout at $layout"; exit 1; }
for t in umoci mkfs.erofs; do command -v $t >/dev/null || { echo "$t missing"; exit 1; }; done

tmp=$(mktemp -d /var/tmp/cfs-walk.XXXXXX)
mounts=()
cleanup() {
	for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[$i]}" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$tmp"/{cfs.meta,cfs,erofs,ovl,empty}

"$oci2cfs" --objects "$tmp/objects" "oci:$layout" "$tmp/img.cfs"
mount -t erofs -o ro "$tmp/img.cfs" "$tmp/cfs.meta"; mounts+=("$tmp/cfs.meta")
mount -t overlay overlay -o "ro,metacopy=on,redirect_dir=on,lowerdir=$tmp/cfs.meta::$tmp/objects" "$tmp/cfs"; mounts+=("$tmp/cfs")

umoci unpack --image "$layout:latest" "$tmp/bundle" > /dev/null 2>&1
mkfs.erofs --quiet "$tmp/plain.erofs" "$tmp/bundle/rootfs"
mount -t erofs -o ro "$tmp/plain.erofs" "$tmp/erofs"; mounts+=("$tmp/erofs")
# overlayfs wants two lower layers when it has no upper one
mount -t overlay overlay -o "ro,lowerdir=$tmp/bundle/rootfs:$tmp/empty" "$tmp/ovl"; mounts+=("$tmp/ovl")

measure() { # DIR CMD -> seconds (median of 3)
	local dir=$1 cmd=$2 cold=$3 times=()
	for _ in 1 2 3; do
		if [ "$cold" = cold ]; then sync; echo 3 > /proc/sys/vm/drop_caches; fi
		local t0 t1
		t0=$(date +%s.%N)
		(cd "$dir" && eval "$cmd") > /dev/null 2>&1
		t1=$(date +%s.%N)
		times+=("$(python3 -c "print($t1 - $t0)")")
	done
	printf '%s\n' "${times[@]}" | sort -n | sed -n 2p
}

printf '%-22s %-6s %10s %10s %10s   %s\n' "walk" "cache" "composefs" "erofs" "overlay" "composefs/overlay"
for cmd in "ls -lR ." "find . -printf '%s %m %u\n'"; do
	for cache in cold warm; do
		a=$(measure "$tmp/cfs" "$cmd" $cache)
		b=$(measure "$tmp/erofs" "$cmd" $cache)
		c=$(measure "$tmp/ovl" "$cmd" $cache)
		printf '%-22s %-6s %9.3fs %9.3fs %9.3fs   %.2fx\n' "${cmd%% *}" "$cache" "$a" "$b" "$c" \
			"$(python3 -c "print($a / $c)")"
	done
done
