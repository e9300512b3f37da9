#!/bin/bash
# podman 5 (Debian 13) against the store, in the same run: the time to
# make an image runnable, from a local registry, for
#   podman 5 pull into its own store (overlay, the default),
#   podman 5 pull into its own store with use_composefs (partial pulls,
#     cfs-mkcomposefs as its mkcomposefs: tests/scripts/podman5-composefs.sh),
#   cfs-store pull + cfs-store ais sync into an empty store,
# and then with BASE_IMAGE already there. REPS times each, page cache
# dropped before each (the tools read back in), timed to the command's
# return and again after a final sync. Prints medians and ratios
# (< 1: cfs is faster).
#   usage: bench/podman5.sh [CORPUS_DIR] [IMAGE] [BASE_IMAGE]
#   environment: CFS_BIN (default build/bin), REPS (default 3),
#          CFS_PODMAN5_CACHE (the trixie root, default build-podman5)
# podman 5 runs in the trixie root of tests/scripts/podman5-root.sh, in
# a mount namespace that pivot_roots into it (tests/scripts/lib.sh):
# this script re-runs itself in a mount namespace of its own first.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
corpus=${1:-${CFS_CORPUS:-$here/build-corpus}}
image=${2:-debian-python}
base=${3:-debian-minbase}
bin=${CFS_BIN:-$here/build/bin}
reps=${REPS:-3}
me=podman5.sh
die() { echo "$me: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root"
for t in skopeo docker-registry python3 unshare nsenter; do
	command -v "$t" >/dev/null || die "$t missing (scripts/install-deps.sh)"
done
# shellcheck source=tests/scripts/lib.sh
. "$here/tests/scripts/lib.sh"
podman5_enter "${CFS_PODMAN5_CACHE:-$here/build-podman5}" "$0" "$@"
proot=$CFS_PODMAN_ROOT
cs=$bin/cfs-store
# shellcheck source=tests/scripts/registry.sh
. "$here/tests/scripts/registry.sh"
work=$(mktemp -d /var/tmp/cfs-podman5.XXXXXX)
holder=
PODMAN=()
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	registry_stop
	[ -z "$holder" ] || { kill "$holder" 2>/dev/null && wait "$holder" 2>/dev/null; } || true
	remove_work "$work" || rc=1
	rmdir -p "$proot$work" 2>/dev/null || true
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# cfs-mkcomposefs for podman's use_composefs, with its libraries (not
# glibc's: the root has a newer one).
stage_mkcomposefs "$bin" "$work"

registry_start "$work/registry" || die "no registry"
for img in "$image" "$base"; do
	skopeo copy -q --dest-tls-verify=false "oci:$corpus/$img" "docker://$REGISTRY/$img:latest" ||
		die "skopeo copy $img"
done
podman_root_start "$proot" "$work" || die "podman's root"
echo "$me: podman $("${PODMAN[@]}" --version | awk '{ print $3 }'), registry $REGISTRY"

podconf() { # DIR composefs(0/1)
	local d=$1
	mkdir -p "$d/graph" "$d/runroot" "$d/tmp"
	{
		printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' "$d/graph" "$d/runroot"
		if [ "$2" = 1 ]; then
			printf '[storage.options]\npull_options = {enable_partial_images = "true", use_hard_links = "false", convert_images = "true"}\n'
			printf '[storage.options.overlay]\nuse_composefs = "true"\n'
		fi
	} >"$d/storage.conf"
	cat >"$d/containers.conf" <<CONF
[containers]
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
	env CONTAINERS_STORAGE_CONF="$d/storage.conf" CONTAINERS_CONF="$d/containers.conf" \
		"PATH=$work/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" "${PODMAN[@]}" "$@"
}
pull5() { pod "$1" pull -q --tls-verify=false "docker://$REGISTRY/$2:latest" >/dev/null; }
cfspull() {
	"$cs" --root "$1/store" pull "docker://$REGISTRY/$2:latest" --insecure --name "$2" >/dev/null
	"$cs" --root "$1/store" ais sync --ais "$1/ais" --run "$1/run" >/dev/null
}
cfsinit() {
	mkdir -p "$1/run"
	mount -t tmpfs -o size=1m,mode=0755 cfs-bench-run "$1/run"
}
teardown() {
	local d=$1
	[ ! -f "$d/storage.conf" ] || pod "$d" rm -af >/dev/null 2>&1 || true
	[ ! -d "$d/store" ] || "$cs" --root "$d/store" ais unmount-all --ais "$d/ais" --run "$d/run" >/dev/null 2>&1 || true
	remove_work "$d"
}
tools=("$cs" "$(command -v skopeo)" "$proot/usr/bin/podman" "$proot/usr/sbin/runc" "$work/bin/cfs-mkcomposefs")
for t in "${tools[@]}"; do
	while read -r lib; do tools+=("$lib"); done < <(ldd "$t" 2>/dev/null | awk '/=> \// { print $3 }')
done
flush() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
	cat "${tools[@]}" "$work"/lib/* >/dev/null 2>&1 || true
	find "$work/registry/storage" -type f -exec cat {} + >/dev/null
}
now() { date +%s.%N; }
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

for ((i = 0; i < reps; i++)); do
	for v in p5 p5c cfs; do
		for with in 0 1; do
			d=$work/$v.$i.$with
			case $v in
			p5) podconf "$d" 0 ;;
			p5c) podconf "$d" 1 ;;
			cfs) cfsinit "$d" ;;
			esac
			if [ "$with" = 1 ]; then
				case $v in
				cfs) cfspull "$d" "$base" ;;
				*) pull5 "$d" "$base" ;;
				esac
			fi
			flush
			case $v in
			cfs) timed "$v.$with" cfspull "$d" "$image" ;;
			*) timed "$v.$with" pull5 "$d" "$image" ;;
			esac
			teardown "$d"
		done
	done
done

python3 - "$work" "$image" "$base" <<'PY'
import os, statistics, sys
work, image, base = sys.argv[1:4]
def load(name):
    return [float(x) for x in open(os.path.join(work, name))]
def fmt(v):
    return "%5.2f s (%.2f-%.2f)" % (statistics.median(v), min(v), max(v))
print("image %s from a local registry: median seconds (min-max)" % image)
for with_, label in (("0", "empty store"), ("1", "%s already there" % base)):
    for kind, klabel in (("cmd", ""), ("sync", ", incl. final sync")):
        c = load("cfs.%s.%s" % (with_, kind))
        for v, vl in (("p5", "podman 5 pull"), ("p5c", "podman 5 pull, use_composefs")):
            p = load("%s.%s.%s" % (v, with_, kind))
            print("%-28s %-30s %s, cfs %s, cfs/podman %.2fx" % (label + klabel, vl, fmt(p), fmt(c),
                  statistics.median(c) / statistics.median(p)))
PY
