#!/bin/bash
# Writing zstd:chunked layers (docs/formats.md), in the same run:
#   oci2cfs seal --zstd-chunked oci:COPY (converts, then writes every
#     layer as zstd:chunked with fs-verity digests in the TOC),
#   oci2cfs seal oci:COPY (the conversion and seal alone),
#   skopeo 1.18 copy --dest-compress-format zstd:chunked oci:COPY oci:OUT
#     (containers/image 5.34, in the trixie root of podman5-root.sh),
# COPY a fresh copy of IMAGE's layout each time, REPS times each,
# alternating, page cache dropped before each with the blobs and the
# tools read back in. Prints medians (min-max), the blob sizes, and the
# ratios (< 1: oci2cfs is faster or smaller).
#   usage: bench/chunked.sh [CORPUS_DIR] [IMAGE]   (root; default
#          debian-minbase)
#   environment: CFS_BIN (default build/bin), REPS (default 3),
#          CFS_PODMAN5_CACHE (the trixie root, default build-podman5)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
corpus=${1:-${CFS_CORPUS:-$here/build-corpus}}
image=${2:-debian-minbase}
bin=${CFS_BIN:-$here/build/bin}
reps=${REPS:-3}
me=chunked.sh
die() { echo "$me: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root (drop_caches, chroot)"
[ -x "$bin/oci2cfs" ] || die "no oci2cfs at $bin (build first, or set CFS_BIN)"
[ -f "$corpus/$image/index.json" ] || die "no OCI layout at $corpus/$image"
[[ $reps =~ ^[1-9][0-9]*$ ]] || die "REPS must be a positive number"
proot=$("$here/tests/scripts/podman5-root.sh" "${CFS_PODMAN5_CACHE:-$here/build-podman5}") ||
	die "no trixie root"
[ -x "$proot/usr/bin/skopeo" ] || die "no skopeo in $proot"
work=$(mktemp -d "$proot/tmp/cfs-chunked-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
in_root=/tmp/${work##*/}

prepare() { # DIR: a fresh copy, the inputs and the tools in the cache
	rm -rf "$1" "$work/out"
	cp -a "$corpus/$image" "$1"
	sync
	echo 3 >/proc/sys/vm/drop_caches
	cat "$1"/blobs/sha256/* "$bin/oci2cfs" "$proot/usr/bin/skopeo" >/dev/null
}
timed() { # NAME COMMAND...: append the seconds to NAME
	local name=$1 t0 t1
	shift
	t0=$(date +%s%N)
	"$@" >/dev/null
	t1=$(date +%s%N)
	echo $((t1 - t0)) >>"$work/$name.t"
}
blobs_size() { # LAYOUT: bytes of its image's layer blobs
	python3 - "$1" <<'PY'
import json, sys
d = sys.argv[1]
i = json.load(open(d + "/index.json"))
m = json.load(open(d + "/blobs/sha256/" + i["manifests"][-1]["digest"][7:]))
print(sum(l["size"] for l in m["layers"]))
PY
}

for _ in $(seq "$reps"); do
	prepare "$work/a"
	timed chunked "$bin/oci2cfs" seal --zstd-chunked "oci:$work/a"
	prepare "$work/b"
	timed seal "$bin/oci2cfs" seal "oci:$work/b"
	prepare "$work/c"
	timed skopeo chroot "$proot" skopeo copy -q --dest-compress-format zstd:chunked \
		"oci:$in_root/c" "oci:$in_root/out:latest"
done
ours=$(blobs_size "$work/a")
theirs=$(blobs_size "$work/out")
orig=$(blobs_size "$corpus/$image")
python3 - "$work" "$image" "$ours" "$theirs" "$orig" <<'PY'
import statistics, sys
work, image, ours, theirs, orig = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
def t(n):
    return [int(x) / 1e9 for x in open("%s/%s.t" % (work, n))]
def fmt(v):
    return "%.2f s (%.2f-%.2f)" % (statistics.median(v), min(v), max(v))
c, s, k = t("chunked"), t("seal"), t("skopeo")
print("%s as zstd:chunked: medians (min-max) of %d" % (image, len(c)))
print("  oci2cfs seal --zstd-chunked   %s   layers %d bytes" % (fmt(c), ours))
print("  oci2cfs seal                  %s   layers %d bytes (as given)" % (fmt(s), orig))
print("  skopeo 1.18 copy zstd:chunked %s   layers %d bytes" % (fmt(k), theirs))
mc, ms, mk = (statistics.median(v) for v in (c, s, k))
print("  seal --zstd-chunked / skopeo: time %.2fx, size %.3fx; the rewrite adds %.2f s to seal"
      % (mc / mk, ours / theirs, mc - ms))
PY
