#!/bin/bash
# podman with the store as an additional image store (AIS), against the
# same image pulled into podman's own store, measured in the same run:
#   make runnable: `podman pull oci:LAYOUT` into an empty graphroot, against
#     `cfs-store import oci:LAYOUT` + `cfs-store ais sync` into an empty
#     store; then the same with BASE_IMAGE (sharing the lower layer) already
#     pulled / imported. Each REPS times after drop_caches, with the layout's
#     blobs and the tools read into the page cache first; timed until the
#     command returns, and again including a final `sync` (podman does not
#     fsync what it unpacks, cfs-store import does).
#   container start: `podman run --rm IMAGE true` from the AIS and from the
#     graphroot (two podman configurations, so the two copies never meet),
#     interleaved, RUNS times warm and COLD times with the image's files
#     dropped from the page cache.
# Prints medians and ratios cfs/podman and AIS/pulled (< 1: cfs is faster).
#   usage: bench/podman.sh [CORPUS_DIR] [IMAGE] [BASE_IMAGE]
#          (root; defaults debian-python, debian-minbase; BASE_IMAGE "-"
#          skips the related-image variant)
#   environment: CFS_BIN (dir with cfs-store, default build/bin),
#          REPS (default 3), RUNS (default 5), COLD (default 3)
# Needs podman, runc and conmon. Private podman configuration under a
# temporary directory; the machine's own podman storage is untouched.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
corpus=${1:-${CFS_CORPUS:-$here/build-corpus}}
image=${2:-debian-python}
base=${3:-debian-minbase}
bin=${CFS_BIN:-$here/build/bin}
cs=$bin/cfs-store
reps=${REPS:-3} runs=${RUNS:-5} cold=${COLD:-3}
me=podman.sh

die() { echo "$me: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root (mounts, drop_caches, rootful podman)"
for t in podman runc conmon python3 mountpoint; do
	command -v "$t" >/dev/null || die "$t missing (apt-get install podman runc)"
done
[ -x "$cs" ] || die "no cfs-store at $cs (build first, or set CFS_BIN)"
[ -f "$corpus/$image/index.json" ] || die "no OCI layout at $corpus/$image (build the corpus first)"
[ "$base" = - ] || [ -f "$corpus/$base/index.json" ] || die "no OCI layout at $corpus/$base"

work=$(mktemp -d /var/tmp/cfs-podman.XXXXXX)

# A podman configuration of its own under DIR: graphroot, runroot and
# libpod tmp_dir, plus the AIS if one is given. Selected per command by
# CONTAINERS_STORAGE_CONF / CONTAINERS_CONF, never --root/--runroot (podman
# 4.3 then drops storage.conf's options, additionalimagestores included).
podconf() { # DIR [AIS]
	local d=$1 ais=${2:-}
	mkdir -p "$d/graph" "$d/runroot" "$d/tmp"
	{
		printf '[storage]\ndriver = "overlay"\n'
		printf 'graphroot = "%s"\nrunroot = "%s"\n' "$d/graph" "$d/runroot"
		[ -z "$ais" ] || printf '[storage.options]\nadditionalimagestores = ["%s"]\n' "$ais"
	} >"$d/storage.conf"
	# crun 1.8 refuses this host's hybrid cgroups; the default ulimits are
	# above what the host allows (docs/podman.md).
	cat >"$d/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "none"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$d/tmp"
CONF
}
pod() { # DIR podman-args...
	local d=$1
	shift
	CONTAINERS_STORAGE_CONF=$d/storage.conf CONTAINERS_CONF=$d/containers.conf podman "$@"
}
# A store with its AIS and its run directory on a tmpfs of its own.
cfsinit() { # DIR
	mkdir -p "$1/run"
	mount -t tmpfs -o size=1m,mode=0755 cfs-bench-run "$1/run"
}
cfs() { # DIR cfs-store-args...
	local d=$1
	shift
	"$cs" --root "$d/store" "$@"
}
cfs_sync() { cfs "$1" ais sync --ais "$1/ais" --run "$1/run" >/dev/null; }

# Every mount under a directory, deepest first.
umount_under() { # DIR
	local m rc=0
	while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || {
			echo "$me: warning: could not unmount $m" >&2
			rc=1
		}
	done < <(awk '{ print $5 }' /proc/self/mountinfo | grep -F "$1/" | sort -r)
	return "$rc"
}
teardown() { # DIR: a podman configuration or a store, then rm -rf
	local d=$1
	[ -d "$d" ] || return 0
	[ ! -f "$d/storage.conf" ] || pod "$d" rm -af >/dev/null 2>&1 || true
	if [ -d "$d/store" ]; then
		# `ais unmount-all` may not exist yet; the loop below catches the rest.
		cfs "$d" ais unmount-all --ais "$d/ais" --run "$d/run" >/dev/null 2>&1 || true
	fi
	umount_under "$d" && rm -rf "$d"
}
cleanup() {
	local rc=$? d left=0
	trap - EXIT INT TERM
	for d in "$work"/*/; do teardown "${d%/}" || left=1; done
	if [ "$left" -eq 0 ] && umount_under "$work"; then
		rm -rf "$work"
	else
		echo "$me: left $work behind (still mounted)" >&2
		rc=1
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { date +%s.%N; }
tools=("$(command -v podman)" "$(command -v runc)" "$(command -v conmon)" "$cs")
# and the shared libraries they load
for t in "${tools[@]}"; do
	while read -r lib; do tools+=("$lib"); done < <(ldd "$t" 2>/dev/null | awk '/=> \// { print $3 }')
done
# The layout's blobs of IMAGE (and BASE) and the tools in the page cache,
# nothing else: every contender reads its input from memory and starts
# with no dirty pages of an earlier one.
flush() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
	cat "${tools[@]}" >/dev/null
	find "$corpus/$image" "$@" -type f -exec cat {} + >/dev/null
}

# Timed: `CMD...; sync`. Appends the seconds to file $1.cmd and, including
# the sync, to $1.sync.
timed() { # NAME CMD...
	local n=$1 t0 t1 t2
	shift
	t0=$(now)
	"$@"
	t1=$(now)
	sync
	t2=$(now)
	echo "$t0 $t1" | awk '{ printf "%.4f\n", $2 - $1 }' >>"$work/$n.cmd"
	echo "$t0 $t2" | awk '{ printf "%.4f\n", $2 - $1 }' >>"$work/$n.sync"
}
# podman names an image pulled from oci:PATH after PATH ("localhost/PATH"),
# which must then be a valid reference (no upper case, no component that
# starts with a dot): pull by the path relative to the corpus, whose
# image names are valid, wherever the corpus is.
pull() { (cd "$corpus" && pod "$1" pull -q "oci:$2") >/dev/null; }
import_sync() {
	cfs "$1" import "oci:$corpus/$2" --name "$3" >/dev/null
	cfs_sync "$1"
}

echo "== make runnable: $image, $reps times each"
for ((i = 0; i < reps; i++)); do
	d=$work/pull.$i
	podconf "$d"
	flush
	timed pull pull "$d" "$image"
	teardown "$d"

	d=$work/cfs.$i
	cfsinit "$d"
	flush
	timed cfs import_sync "$d" "$image" img
	teardown "$d"
done

if [ "$base" != - ]; then
	echo "== make runnable: $image with $base already there, $reps times each"
	for ((i = 0; i < reps; i++)); do
		d=$work/pull.$i
		podconf "$d"
		pull "$d" "$base"
		flush "$corpus/$base"
		timed pullb pull "$d" "$image"
		teardown "$d"

		d=$work/cfs.$i
		cfsinit "$d"
		import_sync "$d" "$base" base
		flush "$corpus/$base"
		timed cfsb import_sync "$d" "$image" img
		teardown "$d"
	done
fi

echo "== container start: podman run --rm IMAGE true, $runs warm and $cold cold each"
pulled=$work/pulled
podconf "$pulled"
pull "$pulled" "$image"
pod "$pulled" tag "$(pod "$pulled" images -q | head -n1)" localhost/bench-pulled
store=$work/store
cfsinit "$store"
import_sync "$store" "$image" bench-ais
aispod=$work/aispod
podconf "$aispod" "$store/ais"
[ -z "$(pod "$aispod" images -q --filter readonly=false)" ] || die "AIS podman configuration has images of its own"
pod "$aispod" image exists localhost/bench-ais || die "podman does not see bench-ais in the AIS"
if pod "$pulled" image exists localhost/bench-ais; then die "the pulled configuration sees the AIS"; fi

run_pulled() { pod "$pulled" run --rm localhost/bench-pulled true; }
run_ais() { pod "$aispod" run --rm localhost/bench-ais true; }
# Once each untimed: podman's first run in a configuration sets up its
# state (libpod database, lock refresh).
run_pulled
run_ais
for ((i = 0; i < runs; i++)); do
	timed runp run_pulled
	timed runa run_ais
done
coldflush() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
	cat "${tools[@]}" >/dev/null
}
for ((i = 0; i < cold; i++)); do
	coldflush
	timed coldp run_pulled
	coldflush
	timed colda run_ais
done

python3 - "$work" "$image" "$base" <<'PY'
import os, statistics, sys
work, image, base = sys.argv[1:4]
def load(name):
    p = os.path.join(work, name)
    return [float(x) for x in open(p)] if os.path.exists(p) else None
def fmt(v):
    return "%5.2f s (%.2f-%.2f)" % (statistics.median(v), min(v), max(v))
def pair(label, a, b, an, bn):
    x, y = load(a), load(b)
    if x is None or y is None:
        return
    print("%-42s %s %s, %s %s, %s/%s %.2fx" % (label, an, fmt(x), bn, fmt(y), bn, an,
                                             statistics.median(y) / statistics.median(x)))
print("image %s: median seconds (min-max)" % image)
print("make runnable (podman pull vs cfs-store import + ais sync):")
pair("  empty store", "pull.cmd", "cfs.cmd", "pull", "cfs")
pair("  empty store, incl. final sync", "pull.sync", "cfs.sync", "pull", "cfs")
if base != "-":
    pair("  %s already there" % base, "pullb.cmd", "cfsb.cmd", "pull", "cfs")
    pair("  %s already there, incl. sync" % base, "pullb.sync", "cfsb.sync", "pull", "cfs")
print("container start (podman run --rm IMAGE true, pulled vs AIS):")
pair("  warm", "runp.cmd", "runa.cmd", "pulled", "AIS")
pair("  image files cold", "coldp.cmd", "colda.cmd", "pulled", "AIS")
PY
