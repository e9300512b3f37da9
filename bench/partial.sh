#!/bin/bash
# Partial pulls (issue 18, docs/distribution.md "Partial pulls"): bytes
# fetched and time to pull IMAGE with BASE_IMAGE already there, both
# pushed to a local registry as zstd:chunked by skopeo 1.18 (Debian 13),
# for
#   podman 5 pull with enable_partial_images (its partial pulls),
#   podman 5 pull as configured by default (whole layers),
#   cfs-store pull (partial),
#   cfs-store pull --no-partial,
# in the same run. The registry is behind tests/scripts/range-proxy.py,
# which counts every byte it sends (manifests, configs, blobs, ranges).
# REPS times each, page cache dropped before each timed pull (the tools
# read back in), timed to the command's return. Prints medians, bytes
# and ratios (< 1: cfs fetched less, or was faster).
#   usage: bench/partial.sh [CORPUS_DIR] [IMAGE] [BASE_IMAGE]
#   environment: CFS_BIN (default build/bin), REPS (default 3),
#          CFS_PODMAN5_CACHE (the trixie root, default build-podman5),
#          PRODUCER: skopeo (default: skopeo 1.18 writes the
#          zstd:chunked layers) or oci2cfs (oci2cfs seal --zstd-chunked
#          writes them, with fs-verity digests in the TOC; skopeo
#          pushes them as they are)
# podman 5 and skopeo 1.18 run in the trixie root of
# tests/scripts/podman5-root.sh (see bench/podman5.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
corpus=${1:-${CFS_CORPUS:-$here/build-corpus}}
image=${2:-debian-minbase-rebuilt}
base=${3:-debian-minbase}
bin=${CFS_BIN:-$here/build/bin}
reps=${REPS:-3}
producer=${PRODUCER:-skopeo}
me=partial.sh
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
work=$(mktemp -d /var/tmp/cfs-partial.XXXXXX)
holder=
proxy_pid=
PODMAN=()
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[ -z "$proxy_pid" ] || kill "$proxy_pid" 2>/dev/null || true
	registry_stop
	[ -z "$holder" ] || { kill "$holder" 2>/dev/null && wait "$holder" 2>/dev/null; } || true
	remove_work "$work" || rc=1
	rmdir -p "$proot$work" 2>/dev/null || true
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

registry_start "$work/registry" || die "no registry"
podman_root_start "$proot" "$work" || die "podman's root"
in_root() { nsenter -t "$holder" -m -r -w "$@"; }
mkdir "$work/src"
for img in "$image" "$base"; do
	cp -a "$corpus/$img" "$work/src/$img"
	case $producer in
	skopeo)
		in_root skopeo copy -q --dest-tls-verify=false --dest-compress-format zstd:chunked \
			"oci:$work/src/$img" "docker://$REGISTRY/$img:zc" || die "skopeo 1.18 push of $img"
		;;
	oci2cfs)
		"$bin/oci2cfs" seal --zstd-chunked "oci:$work/src/$img" >/dev/null || die "seal of $img"
		in_root skopeo copy -q --dest-tls-verify=false --preserve-digests \
			"oci:$work/src/$img" "docker://$REGISTRY/$img:zc" || die "push of $img"
		;;
	*) die "PRODUCER: skopeo or oci2cfs, not $producer" ;;
	esac
done
rm -rf "$work/src"
python3 "$here/tests/scripts/range-proxy.py" "$REGISTRY" plain "$work/proxy.log" >"$work/proxy.port" &
proxy_pid=$!
for _ in $(seq 50); do
	[ -s "$work/proxy.port" ] && break
	sleep 0.1
done
PROXY=127.0.0.1:$(head -n 1 "$work/proxy.port")
echo "$me: layers written by $producer; podman $("${PODMAN[@]}" --version | awk '{ print $3 }'), skopeo $(in_root skopeo --version | awk '{ print $3 }'), registry $REGISTRY behind $PROXY"

podconf() { # DIR partial(0/1): its storage.conf and containers.conf
	podman_conf "$1" root "pull_options = {enable_partial_images = \"$([ "$2" = 1 ] && echo true || echo false)\", use_hard_links = \"false\"}"
}
pod() { # DIR podman-args...
	local d=$1
	shift
	env CONTAINERS_STORAGE_CONF="$d/storage.conf" CONTAINERS_CONF="$d/containers.conf" "${PODMAN[@]}" "$@"
}
pull5() { pod "$1" pull -q --tls-verify=false "docker://$PROXY/$2:zc" >/dev/null; }
cfspull() { # DIR IMAGE [OPTION]
	"$cs" --root "$1/store" pull "docker://$PROXY/$2:zc" --insecure --name "$2" ${3:+"$3"} >/dev/null
}
teardown() {
	local d=$1
	[ ! -f "$d/storage.conf" ] || pod "$d" rmi -af >/dev/null 2>&1 || true
	remove_work "$d"
}
tools=("$cs" "$(command -v skopeo)" "$proot/usr/bin/podman")
for t in "${tools[@]}"; do
	while read -r lib; do tools+=("$lib"); done < <(ldd "$t" 2>/dev/null | awk '/=> \// { print $3 }')
done
flush() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
	cat "${tools[@]}" >/dev/null 2>&1 || true
	find "$work/registry/storage" -type f -exec cat {} + >/dev/null
}
now() { date +%s.%N; }

for ((i = 0; i < reps; i++)); do
	for v in p5p p5 cfs cfsn; do
		d=$work/$v.$i
		case $v in
		p5p) podconf "$d" 1 ;;
		p5) podconf "$d" 0 ;;
		*) mkdir -p "$d" ;;
		esac
		case $v in
		cfs*) cfspull "$d" "$base" ;;
		*) pull5 "$d" "$base" ;;
		esac
		flush
		: >"$work/proxy.log"
		t0=$(now)
		case $v in
		cfs) cfspull "$d" "$image" ;;
		cfsn) cfspull "$d" "$image" --no-partial ;;
		*) pull5 "$d" "$image" ;;
		esac
		t1=$(now)
		echo "$t0 $t1" | awk '{ printf "%.4f\n", $2 - $1 }' >>"$work/$v.time"
		awk '{ s += $2 } END { print s + 0 }' "$work/proxy.log" >>"$work/$v.bytes"
		teardown "$d"
	done
done

python3 - "$work" "$image" "$base" <<'PY'
import os, statistics, sys
work, image, base = sys.argv[1:4]
def load(name):
    return [float(x) for x in open(os.path.join(work, name))]
names = (("p5p", "podman 5 pull, partial"), ("p5", "podman 5 pull, whole layers"),
         ("cfs", "cfs-store pull"), ("cfsn", "cfs-store pull --no-partial"))
print("%s with %s already there, zstd:chunked from a local registry: "
      "medians (min-max)" % (image, base))
m = {}
for v, label in names:
    t, b = load(v + ".time"), load(v + ".bytes")
    m[v] = (statistics.median(t), statistics.median(b))
    print("  %-28s %5.2f s (%.2f-%.2f)  %12d bytes fetched" %
          (label, m[v][0], min(t), max(t), m[v][1]))
print("  cfs / podman 5 partial: time %.2fx, bytes %.2fx" %
      (m["cfs"][0] / m["p5p"][0], m["cfs"][1] / m["p5p"][1]))
print("  cfs partial / cfs whole: time %.2fx, bytes %.3fx" %
      (m["cfs"][0] / m["cfsn"][0], m["cfs"][1] / m["cfsn"][1]))
PY
