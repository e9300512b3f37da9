#!/bin/bash
# Conversion speed of oci2cfs against baselines measured in the same run:
#   floor:  zcat LAYER | sha256sum over the same layers (decompress + hash)
#   umoci:  umoci unpack of the image (extracts to disk)
#   oci2cfs into an empty object directory, then again into the same one
# Prints the times and oci2cfs/floor, oci2cfs/umoci ratios, and the bytes
# the second conversion wrote (from its own /proc/self/io) relative to the
# image's uncompressed size. Targets: <= 1.3x the floor; second run writes
# < 1% of the image.
#   usage: bench/convert.sh [CORPUS_DIR] [IMAGE]   (default image debian-build)
# Needs root for umoci unpack (as the corpus does).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
corpus=${1:-${CFS_CORPUS:-$here/build-corpus}}
image=${2:-debian-build}
oci2cfs=${OCI2CFS:-$here/build/bin/oci2cfs}
layout="$corpus/$image"
[ -f "$layout/index.json" ] || { echo "no OCI layout at $layout (build the corpus first)"; exit 1; }
command -v umoci >/dev/null || { echo "umoci missing (apt-get install umoci)"; exit 1; }

tmp=$(mktemp -d /var/tmp/cfs-bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
now() { date +%s.%N; }
ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }

# Layer blobs in manifest order
mapfile -t layers < <(python3 - "$layout" <<'PY'
import json, sys, os
root = sys.argv[1]
def blob(d): return os.path.join(root, "blobs", *d.split(":"))
idx = json.load(open(os.path.join(root, "index.json")))
man = json.load(open(blob(idx["manifests"][0]["digest"])))
for l in man["layers"]:
    print(blob(l["digest"]) + " " + l["mediaType"])
PY
)

sync
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
# Warm the blobs once so every contender reads from page cache.
for l in "${layers[@]}"; do cat "${l%% *}" > /dev/null; done

sync
t0=$(now)
for l in "${layers[@]}"; do
	path=${l%% *} type=${l#* }
	case "$type" in
	*zstd) zstd -dc "$path" | sha256sum > /dev/null ;;
	*gzip) zcat "$path" | sha256sum > /dev/null ;;
	*) sha256sum "$path" > /dev/null ;;
	esac
done
t1=$(now)
floor=$(python3 -c "print($t1 - $t0)")

sync
t0=$(now)
umoci unpack --image "$layout:latest" "$tmp/umoci" > /dev/null 2>&1
t1=$(now)
umoci_t=$(python3 -c "print($t1 - $t0)")
rm -rf "$tmp/umoci"

sync
t0=$(now)
"$oci2cfs" --objects "$tmp/objects" --json "oci:$layout" "$tmp/a.cfs" > "$tmp/first.json"
t1=$(now)
first=$(python3 -c "print($t1 - $t0)")

sync
t0=$(now)
"$oci2cfs" --objects "$tmp/objects" --json "oci:$layout" "$tmp/b.cfs" > "$tmp/second.json"
t1=$(now)
second=$(python3 -c "print($t1 - $t0)")

python3 - "$tmp/first.json" "$tmp/second.json" "$floor" "$umoci_t" "$first" "$second" <<'PY'
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
floor, umoci, first, second = map(float, sys.argv[3:7])
unc = sum(l["uncompressed_bytes"] for l in a["layers"])
print("image: %d layers, %.1f MiB compressed, %.1f MiB uncompressed, %d files"
      % (len(a["layers"]), sum(l["compressed_bytes"] for l in a["layers"]) / 2**20,
         unc / 2**20, a["inodes"]["files"]))
print("floor (decompress | sha256sum)   %7.2f s" % floor)
print("umoci unpack                      %7.2f s" % umoci)
print("oci2cfs, empty object dir         %7.2f s   %.2fx floor   %.2fx umoci" % (first, first / floor, first / umoci))
print("oci2cfs, same object dir again    %7.2f s   %.2fx floor" % (second, second / floor))
w = b["io"]["write_bytes"] - b["io"]["cancelled_write_bytes"]
print("second run wrote %d bytes = %.3f%% of the image (%d objects reused, %d new)"
      % (w, 100.0 * w / unc, b["objects"]["reused"], b["objects"]["new"]))
PY
