#!/bin/bash
# Conversion speed of oci2cfs against baselines measured in the same run,
# on two kinds of file system:
#   fresh: an ext4 (or FS_TYPE) made anew on a loop file before each run
#   aged:  a directory of the host file system where the previous run's
#          output was just deleted (on an ext4 without a journal, as many
#          cloud disks, new inodes then queue behind recently freed ones)
# Contenders, per image:
#   floor:   zcat LAYER | sha256sum over the same layers (decompress + hash,
#            no file system)
#   umoci:   umoci unpack of the image (extracts every file)
#   mkcomposefs --digest-store of the unpacked tree, when a mkcomposefs is
#            on PATH (optional; never required)
#   oci2cfs into an empty object directory; then again into the same one
# Each is run RUNS times (default 3), timed up to and including a final
# sync (oci2cfs makes its objects durable itself; the others do not), and
# the median is printed with the ratio to the floor. Also printed: the
# bytes the second conversion wrote (from its own /proc/self/io) against
# the image's uncompressed size, and oci2cfs's peak RSS.
# Targets (issue 14): fresh <= 0.7x the floor, aged <= 0.8x, again <= 0.4x
# writing < 1% of the image, peak RSS <= 256 MiB.
#   usage: bench/convert.sh [CORPUS_DIR] [IMAGE...]
#          (root; default images debian-build debian-python)
#   environment: OCI2CFS (default build/bin/oci2cfs), RUNS, FS_TYPE (the
#          fresh file system: ext4, the default, xfs or btrfs), FS_SIZE
#          (loop file size, default 4G), TMPDIR_BASE (the aged directory's
#          parent, default /var/tmp)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
corpus=${1:-${CFS_CORPUS:-$here/build-corpus}}
shift || true
images=("$@")
[ "${#images[@]}" -gt 0 ] || images=(debian-build debian-python)
oci2cfs=${OCI2CFS:-$here/build/bin/oci2cfs}
runs=${RUNS:-3}
fs_size=${FS_SIZE:-4G}
fs_type=${FS_TYPE:-ext4}
me=convert.sh

die() { echo "$me: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root (loop mounts, drop_caches, umoci)"
for t in umoci "mkfs.$fs_type" losetup python3 /usr/bin/time; do
	command -v "$t" >/dev/null || die "$t missing (scripts/install-deps.sh)"
done
[ -x "$oci2cfs" ] || die "no oci2cfs at $oci2cfs (build first, or set OCI2CFS)"
for image in "${images[@]}"; do
	[ -f "$corpus/$image/index.json" ] || die "no OCI layout at $corpus/$image (build the corpus first)"
done
mkcfs=$(command -v mkcomposefs || true)

tmp=$(mktemp -d "${TMPDIR_BASE:-/var/tmp}/cfs-bench.XXXXXX")
mnt=$tmp/fresh
mkdir -p "$mnt"
cleanup() {
	mountpoint -q "$mnt" && umount "$mnt"
	rm -rf "$tmp"
}
trap cleanup EXIT

now() { date +%s.%N; }

# A new $fs_type on a loop file at $mnt; prints the directory to work in.
fresh_fs() {
	mountpoint -q "$mnt" && umount "$mnt"
	rm -f "$tmp/fs.img"
	truncate -s "$fs_size" "$tmp/fs.img"
	case $fs_type in
	ext4) mkfs.ext4 -q -F "$tmp/fs.img" ;;
	xfs) mkfs.xfs -q -f "$tmp/fs.img" ;;
	btrfs) mkfs.btrfs -q -f "$tmp/fs.img" >/dev/null ;;
	*) die "FS_TYPE $fs_type: ext4, xfs or btrfs" ;;
	esac
	mount -o loop "$tmp/fs.img" "$mnt"
	echo "$mnt"
}
# The aged directory: whatever the previous run left there is deleted
# now, just before the next run.
aged_fs() {
	rm -rf "$tmp/aged"
	mkdir "$tmp/aged"
	echo "$tmp/aged"
}

# timed FILE CMD...: appends the seconds of CMD + sync to FILE.
timed() {
	local f=$1 t0 t1
	shift
	sync
	t0=$(now)
	"$@"
	sync
	t1=$(now)
	echo "$t0 $t1" | awk '{ printf "%.4f\n", $2 - $1 }' >>"$f"
}

floor_run() { # LAYER...
	local l
	for l in "$@"; do
		case ${l#* } in
		*zstd) zstd -dc "${l%% *}" | sha256sum >/dev/null ;;
		*gzip) zcat "${l%% *}" | sha256sum >/dev/null ;;
		*) sha256sum "${l%% *}" >/dev/null ;;
		esac
	done
}

for image in "${images[@]}"; do
	layout=$corpus/$image
	out=$tmp/$image
	mkdir -p "$out"
	# Layer blobs in manifest order, with their media types.
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
	# Every contender reads the blobs from the page cache.
	sync
	echo 3 >/proc/sys/vm/drop_caches
	for l in "${layers[@]}"; do cat "${l%% *}" >/dev/null; done

	echo "== $image: $runs runs of each"
	# A first conversion on the host file system, deleted before the
	# first aged run: the aged runs always follow a deletion.
	d=$(aged_fs)
	"$oci2cfs" --objects "$d/objects" "oci:$layout" "$d/image.cfs" >/dev/null
	for ((i = 0; i < runs; i++)); do
		timed "$out/floor" floor_run "${layers[@]}"
		for kind in fresh aged; do
			d=$("${kind}_fs")
			timed "$out/umoci.$kind" umoci unpack --image "$layout:latest" "$d/bundle" >/dev/null 2>&1
			if [ -n "$mkcfs" ]; then
				timed "$out/mkcomposefs.$kind" "$mkcfs" --digest-store="$d/mkcfs-objects" \
					"$d/bundle/rootfs" "$d/mkcfs.cfs"
			fi
			rm -rf "$d/bundle" "$d/mkcfs-objects" "$d/mkcfs.cfs"
			d=$("${kind}_fs")
			timed "$out/oci2cfs.$kind" /usr/bin/time -f %M -o "$out/rss.$kind.$i" \
				"$oci2cfs" --objects "$d/objects" --json "oci:$layout" "$d/a.cfs" >"$out/first.json"
			timed "$out/again.$kind" "$oci2cfs" --objects "$d/objects" --json "oci:$layout" "$d/b.cfs" \
				>"$out/again.$kind.json"
		done
	done
	python3 - "$out" "$runs" "$([ -n "$mkcfs" ] && echo 1 || echo 0)" <<'PY'
import json, os, statistics, sys
out, runs, mkcfs = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
def med(name):
    return statistics.median(float(x) for x in open(os.path.join(out, name)))
def span(name):
    v = [float(x) for x in open(os.path.join(out, name))]
    return "%.2f-%.2f" % (min(v), max(v))
a = json.load(open(os.path.join(out, "first.json")))
unc = sum(l["uncompressed_bytes"] for l in a["layers"])
print("image: %d layers, %.1f MiB compressed, %.1f MiB uncompressed, %d files"
      % (len(a["layers"]), sum(l["compressed_bytes"] for l in a["layers"]) / 2**20,
         unc / 2**20, a["inodes"]["files"]))
floor = med("floor")
print("  %-34s %6.2f s (%s)" % ("floor (decompress | sha256sum)", floor, span("floor")))
targets = {"oci2cfs.fresh": 0.7, "oci2cfs.aged": 0.8, "again.fresh": 0.4, "again.aged": 0.4}
for kind in ("fresh", "aged"):
    rows = [("umoci unpack", "umoci." + kind)]
    if mkcfs:
        rows.append(("mkcomposefs --digest-store", "mkcomposefs." + kind))
    rows += [("oci2cfs, empty object dir", "oci2cfs." + kind),
             ("oci2cfs, same object dir again", "again." + kind)]
    print(" %s file system:" % (kind if kind == "aged" else
                                "fresh " + os.environ.get("FS_TYPE", "ext4")))
    for label, name in rows:
        t = med(name)
        goal = targets.get(name)
        verdict = "" if goal is None else "  target <= %.1fx: %s" % (goal, "met" if t / floor <= goal else "MISSED")
        print("  %-34s %6.2f s (%s)  %.2fx floor%s" % (label, t, span(name), t / floor, verdict))
    b = json.load(open(os.path.join(out, "again.%s.json" % kind)))
    w = b["io"]["write_bytes"] - b["io"]["cancelled_write_bytes"]
    print("  again wrote %d bytes = %.3f%% of the image (%d objects reused, %d new)  target < 1%%: %s"
          % (w, 100.0 * w / unc, b["objects"]["reused"], b["objects"]["new"], "met" if w < unc / 100 else "MISSED"))
rss = max(int(open(os.path.join(out, f)).read().split()[-1]) for f in os.listdir(out) if f.startswith("rss."))
print("  oci2cfs peak RSS %.1f MiB  target <= 256 MiB: %s" % (rss / 1024, "met" if rss <= 256 * 1024 else "MISSED"))
PY
done
