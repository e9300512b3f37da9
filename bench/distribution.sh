#!/bin/bash
# Distributing sealed images (docs/distribution.md), with the baselines
# measured in the same run:
#   seal: `oci2cfs seal oci:COPY` (COPY a fresh `cp -al` of the layout
#     each time) against a plain conversion `oci2cfs oci:COPY OUT.cfs`
#     (no object directory) and the floor `zcat LAYER | sha256sum` over the
#     same layers (bench/convert.sh); each REPS times after drop_caches,
#     with the blobs and the tools read into the page cache first.
#   sizes: the composefs image (what a composefs artifact would carry)
#     against the compressed image (layer blobs + config + manifest), and
#     what sealing adds to the manifest.
#   distribution: the sealed image pushed (`skopeo copy --preserve-digests`)
#     to a private registry on 127.0.0.1 (tests/scripts/registry.sh), then,
#     alternating, `cfs-store pull --insecure --require-sealed` into an
#     empty store against `podman pull --tls-verify=false` into an empty
#     graphroot; then the same with BASE_IMAGE (sharing the lower layer)
#     already pulled by both. Each REPS times after drop_caches, with the
#     registry's storage and the tools read into the page cache first;
#     timed until the command returns, and again including a final `sync`
#     (podman does not fsync what it unpacks, cfs-store does).
#   rebuilt: REBUILT (default debian-minbase-rebuilt, when the corpus has
#     it and BASE_IMAGE is debian-minbase: the same files, no layer in
#     common) pulled by each onto BASE_IMAGE, every store or graphroot on
#     an ext4 made anew on a loop file (no lazy init, so nothing else
#     writes to it): bytes fetched (cfs-store --json; podman: its blob is
#     not in the store, so the whole blob) and bytes written to the
#     device from before the pull to after a final sync (the loop
#     device's write sectors), against the image's uncompressed size;
#     then the same pull again by cfs-store (another name).
# Prints medians (min-max) and ratios (< 1: the first named is faster).
#   usage: bench/distribution.sh [CORPUS_DIR] [IMAGE] [BASE_IMAGE]
#          (root; defaults debian-python, debian-minbase; BASE_IMAGE "-"
#          skips the related-image variants; REBUILT=- skips the rebuilt
#          one)
#   environment: CFS_BIN (dir with oci2cfs and cfs-store, default
#          build/bin), REPS (default 3), PARTIAL=0 (skips the partial
#          pulls of bench/partial.sh that end it)
# Needs skopeo, podman, docker-registry, python3, zcat, zstd (zstd layers
# only). Private podman configuration and registry under a temporary
# directory; the machine's own podman storage is untouched.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
corpus=${1:-${CFS_CORPUS:-$here/build-corpus}}
image=${2:-debian-python}
base=${3:-debian-minbase}
bin=${CFS_BIN:-$here/build/bin}
o2c=$bin/oci2cfs
cs=$bin/cfs-store
reps=${REPS:-3}
me=distribution.sh

die() { echo "$me: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root (drop_caches, rootful podman)"
rebuilt=${REBUILT:-}
if [ -z "$rebuilt" ]; then
	rebuilt=-
	[ "$base" != debian-minbase ] || [ ! -f "$corpus/debian-minbase-rebuilt/index.json" ] ||
		rebuilt=debian-minbase-rebuilt
fi
[ "$base" != - ] || rebuilt=-
[ "$rebuilt" = - ] || [ -f "$corpus/$rebuilt/index.json" ] || die "no OCI layout at $corpus/$rebuilt"
for t in skopeo podman docker-registry python3 zcat sha256sum mkfs.ext4 findmnt; do
	command -v "$t" >/dev/null || die "$t missing (apt-get install skopeo podman docker-registry python3 gzip)"
done
[ -x "$o2c" ] || die "no oci2cfs at $o2c (build first, or set CFS_BIN)"
[ -x "$cs" ] || die "no cfs-store at $cs (build first, or set CFS_BIN)"
[ -f "$corpus/$image/index.json" ] || die "no OCI layout at $corpus/$image (build the corpus first)"
[ "$base" = - ] || [ -f "$corpus/$base/index.json" ] || die "no OCI layout at $corpus/$base"
[[ $reps =~ ^[1-9][0-9]*$ ]] || die "REPS must be a positive number"
# shellcheck source=tests/scripts/registry.sh
. "$here/tests/scripts/registry.sh"

work=$(mktemp -d /var/tmp/cfs-dist.XXXXXX)
res=$work/res
mkdir "$res"

# A podman configuration of its own under DIR: graphroot, runroot, libpod
# tmp_dir and the download directory. Selected per command by
# CONTAINERS_STORAGE_CONF / CONTAINERS_CONF (bench/podman.sh); pulling
# needs no runtime settings.
podconf() { # DIR
	local d=$1
	mkdir -p "$d/graph" "$d/runroot" "$d/tmp"
	printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' \
		"$d/graph" "$d/runroot" >"$d/storage.conf"
	cat >"$d/containers.conf" <<CONF
[engine]
events_logger = "file"
tmp_dir = "$d/tmp"
image_copy_tmp_dir = "$d/tmp"
CONF
}
pod() { # DIR podman-args...
	local d=$1
	shift
	CONTAINERS_STORAGE_CONF=$d/storage.conf CONTAINERS_CONF=$d/containers.conf podman "$@"
}

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
# rm -rf, unlinking files in parallel: on a file system mounted with
# online discard one unlink at a time takes milliseconds, and a store or a
# graphroot has thousands of files.
rmtree() { # DIR
	find "$1" -xdev ! -type d -print0 | xargs -0 -r -P 32 -n 64 rm -f
	rm -rf "$1"
}
teardown() { # DIR: a podman configuration, a store or a layout
	local d=$1
	[ -d "$d" ] || return 0
	umount_under "$d" && rmtree "$d"
}
cleanup() {
	local rc=$? d left=0
	trap - EXIT INT TERM
	registry_stop
	for d in "$work"/*/; do teardown "${d%/}" || left=1; done
	if [ "$left" -eq 0 ] && umount_under "$work"; then
		rmtree "$work"
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
tools=("$(command -v skopeo)" "$(command -v podman)" "$(command -v docker-registry)" "$o2c" "$cs")
for f in "$bin"/../lib/libcfs.so*; do [ ! -f "$f" ] || tools+=("$f"); done
# and the shared libraries they load
for t in "${tools[@]}"; do
	while read -r lib; do tools+=("$lib"); done < <(ldd "$t" 2>/dev/null | awk '/=> \// { print $3 }')
done
# Drop the page cache, then read FILES/DIRS... and the tools back into it:
# every contender reads its input from memory and starts with no dirty
# pages of an earlier one.
flush() { # DIR-OR-FILE...
	sync
	echo 3 >/proc/sys/vm/drop_caches
	cat "${tools[@]}" >/dev/null
	find "$@" -type f -exec cat {} + >/dev/null
}
# Timed: `CMD...; sync`. Appends the seconds to $res/NAME.cmd and,
# including the sync, to $res/NAME.sync.
timed() { # NAME CMD...
	local n=$1 t0 t1 t2
	shift
	t0=$(now)
	"$@"
	t1=$(now)
	sync
	t2=$(now)
	echo "$t0 $t1" | awk '{ printf "%.4f\n", $2 - $1 }' >>"$res/$n.cmd"
	echo "$t0 $t2" | awk '{ printf "%.4f\n", $2 - $1 }' >>"$res/$n.sync"
}
jget() { python3 -c 'import json,sys; j=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

# Manifest, config and layers of the image: "KIND PATH SIZE MEDIATYPE".
layout_blobs() { # LAYOUT
	python3 - "$1" <<'PY'
import json, os, sys
root = sys.argv[1]
def blob(d): return os.path.join(root, "blobs", *d.split(":"))
idx = json.load(open(os.path.join(root, "index.json")))
m = idx["manifests"][0]
man = json.load(open(blob(m["digest"])))
print("manifest", blob(m["digest"]), os.path.getsize(blob(m["digest"])), m["mediaType"])
print("config", blob(man["config"]["digest"]), man["config"]["size"], man["config"]["mediaType"])
for l in man["layers"]:
    print("layer", blob(l["digest"]), l["size"], l["mediaType"])
PY
}
mapfile -t blobs < <(layout_blobs "$corpus/$image")
layers=()
for b in "${blobs[@]}"; do
	read -r kind path _ <<<"$b"
	[ "$kind" != layer ] || layers+=("$b")
done
[ "${#layers[@]}" -gt 0 ] || die "$image: no layers"
layer_paths=()
for b in "${layers[@]}"; do
	read -r _ path _ <<<"$b"
	layer_paths+=("$path")
done

floor() {
	local b path type
	for b in "${layers[@]}"; do
		read -r _ path _ type <<<"$b"
		case "$type" in
		*zstd) zstd -dc "$path" | sha256sum >/dev/null ;;
		*gzip) zcat "$path" | sha256sum >/dev/null ;;
		*) sha256sum "$path" >/dev/null ;;
		esac
	done
}
for b in "${layers[@]}"; do
	case "$b" in *zstd) command -v zstd >/dev/null || die "zstd missing (apt-get install zstd)" ;; esac
done

echo "== seal: $image, $reps times each (floor, convert, seal)"
for ((i = 0; i < reps; i++)); do
	copy=$work/seal.$i
	cp -al "$corpus/$image" "$copy"
	flush "${layer_paths[@]}"
	timed floor floor

	out=$work/conv.$i
	mkdir "$out"
	flush "${layer_paths[@]}"
	timed convert "$o2c" --print-digest "oci:$copy" "$out/image.cfs" >"$out/digest"

	flush "${layer_paths[@]}"
	timed seal "$o2c" seal "oci:$copy" --json >"$copy.json"
	merged=$(jget "j['composefs.merged.sha256-12']" <"$copy.json")
	[ "$merged" = "$(cat "$out/digest")" ] ||
		die "seal's merged digest $merged is not the converted image's $(cat "$out/digest")"
	# Kept: the first copy is the one pushed, the first image is measured.
	if [ "$i" -gt 0 ]; then
		teardown "$copy"
		rm -f "$copy.json"
		teardown "$out"
	fi
done
sealed=$work/seal.0
# What a store imports a sealed image as: the canonical image the
# sealing spec's key names (docs/formats.md), or with no /usr the
# legacy merged digest.
merged=$(jget "j.get('composefs.merged.erofs.v1.fsverity-sha256-12') or j['composefs.merged.sha256-12']" <"$sealed.json")
manifest=$(jget "j['manifest_digest']" <"$sealed.json")

# Sizes: the image as a registry holds it, the composefs image, and the
# manifest before and after sealing.
"$o2c" --json "oci:$corpus/$image" "$work/conv.0/json.cfs" >"$work/convert.json"
{
	for b in "${blobs[@]}"; do
		read -r kind _ size _ <<<"$b"
		echo "$kind $size"
	done
	echo "cfs $(stat -c %s "$work/conv.0/image.cfs")"
	echo "sealed_manifest $(stat -c %s "$sealed/blobs/sha256/${manifest#sha256:}")"
} >"$res/sizes"

what="the sealed $image"
[ "$base" = - ] || what="$what and $base"
echo "== registry: push $what"
registry_start "$work/registry" || die "the registry did not start"
skopeo copy -q --dest-tls-verify=false --preserve-digests "oci:$sealed:latest" "docker://$REGISTRY/img:sealed" ||
	die "skopeo copy of the sealed image to the registry failed"
if [ "$base" != - ]; then
	cp -al "$corpus/$base" "$work/base"
	skopeo copy -q --dest-tls-verify=false --preserve-digests "oci:$work/base:latest" "docker://$REGISTRY/img:base" ||
		die "skopeo copy of $base to the registry failed"
	teardown "$work/base"
fi
if [ "$rebuilt" != - ]; then
	cp -al "$corpus/$rebuilt" "$work/rebuilt"
	skopeo copy -q --dest-tls-verify=false --preserve-digests "oci:$work/rebuilt:latest" "docker://$REGISTRY/img:rebuilt" ||
		die "skopeo copy of $rebuilt to the registry failed"
	teardown "$work/rebuilt"
fi

cfs_pull() { # STORE JSON
	"$cs" --root "$1" pull "docker://$REGISTRY/img:sealed" --insecure --require-sealed --name img --json >"$2"
}
# The pull must have checked the seal and given the sealed image.
cfs_check() { # JSON STORE
	[ "$(jget "j['digest'] == '$merged' and j['sealed']" <"$1")" = True ] ||
		die "cfs-store pull: not the sealed image $merged: $(cat "$1")"
	[ "$("$cs" --root "$2" inspect img --json | jget "j['manifest_digest']")" = "$manifest" ] ||
		die "cfs-store pull: the store's manifest is not the sealed $manifest"
}
podman_pull() { # DIR
	pod "$1" pull -q --tls-verify=false "docker://$REGISTRY/img:sealed" >/dev/null
}
podman_check() { # DIR
	pod "$1" image exists "$REGISTRY/img:sealed" || die "podman pull: no $REGISTRY/img:sealed"
}

echo "== pull from the registry into an empty store, $reps times each"
for ((i = 0; i < reps; i++)); do
	d=$work/cfs.$i
	mkdir "$d"
	flush "$work/registry/storage"
	timed cfs cfs_pull "$d/store" "$d/pull.json"
	cfs_check "$d/pull.json" "$d/store"
	teardown "$d"

	d=$work/pod.$i
	podconf "$d"
	flush "$work/registry/storage"
	timed pod podman_pull "$d"
	podman_check "$d"
	teardown "$d"
done

if [ "$base" != - ]; then
	echo "== pull with $base already pulled, $reps times each"
	for ((i = 0; i < reps; i++)); do
		d=$work/cfs.$i
		mkdir "$d"
		"$cs" --root "$d/store" pull "docker://$REGISTRY/img:base" --insecure --name base >/dev/null
		flush "$work/registry/storage"
		timed cfsb cfs_pull "$d/store" "$d/pull.json"
		cfs_check "$d/pull.json" "$d/store"
		teardown "$d"

		d=$work/pod.$i
		podconf "$d"
		pod "$d" pull -q --tls-verify=false "docker://$REGISTRY/img:base" >/dev/null
		flush "$work/registry/storage"
		timed podb podman_pull "$d"
		podman_check "$d"
		teardown "$d"
	done
fi

# A fresh ext4 on a loop file at DIR/mnt (DIR/fs.img), its loop device
# in $loopdev. No lazy inode table or journal initialisation: nothing but
# the command measured writes to it.
freshfs() { # DIR
	mkdir -p "$1/mnt"
	truncate -s 4G "$1/fs.img"
	mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$1/fs.img"
	mount -o loop "$1/fs.img" "$1/mnt"
	loopdev=$(findmnt -n -o SOURCE "$1/mnt")
}
freshfs_done() { # DIR (the loop device goes with the mount)
	umount "$1/mnt"
	rm -f "$1/fs.img"
}
written() { # bytes the loop device has written so far
	echo $(($(awk '{ print $7 }' "/sys/block/${loopdev#/dev/}/stat") * 512))
}
if [ "$rebuilt" != - ]; then
	echo "== $rebuilt pulled onto $base, fresh ext4 each time, $reps times each"
	"$o2c" --json "oci:$corpus/$rebuilt" "$work/rebuilt.cfs" >"$work/rebuilt.json"
	rm -f "$work/rebuilt.cfs"
	for ((i = 0; i < reps; i++)); do
		d=$work/fs.$i
		freshfs "$d"
		st=$d/mnt/store
		"$cs" --root "$st" pull "docker://$REGISTRY/img:base" --insecure --name base >/dev/null
		flush "$work/registry/storage"
		w0=$(written)
		timed cfsr "$cs" --root "$st" pull "docker://$REGISTRY/img:rebuilt" --insecure --name rebuilt --json >"$d/pull.json"
		echo $(($(written) - w0)) >>"$res/cfsr.written"
		jget "sum(l['bytes_fetched'] for l in j['layers'])" <"$d/pull.json" >>"$res/cfsr.fetched"
		# the same pull again, under another name
		w0=$(written)
		timed cfsa "$cs" --root "$st" pull "docker://$REGISTRY/img:rebuilt" --insecure --name again --json >"$d/again.json"
		echo $(($(written) - w0)) >>"$res/cfsa.written"
		jget "sum(l['bytes_fetched'] for l in j['layers'])" <"$d/again.json" >>"$res/cfsa.fetched"
		freshfs_done "$d"

		freshfs "$d"
		podconf "$d/mnt/pod"
		pod "$d/mnt/pod" pull -q --tls-verify=false "docker://$REGISTRY/img:base" >/dev/null
		flush "$work/registry/storage"
		w0=$(written)
		timed podr pod "$d/mnt/pod" pull -q --tls-verify=false "docker://$REGISTRY/img:rebuilt" >/dev/null
		echo $(($(written) - w0)) >>"$res/podr.written"
		umount_under "$d/mnt" || true
		freshfs_done "$d"
		rm -rf "$d"
	done
	python3 - "$corpus/$rebuilt" <<'PY' >"$res/podr.fetched"
import json, os, sys
root = sys.argv[1]
def blob(d): return os.path.join(root, "blobs", *d.split(":"))
m = json.load(open(blob(json.load(open(os.path.join(root, "index.json")))["manifests"][0]["digest"])))
print(sum(l["size"] for l in m["layers"]))
PY
fi

python3 - "$res" "$work/convert.json" "$image" "$base" "$merged" "$rebuilt" "$work/rebuilt.json" <<'PY'
import json, os, statistics, sys
res, convert, image, base, merged, rebuilt, rebuilt_json = sys.argv[1:8]
def load(name):
    p = os.path.join(res, name)
    return [float(x) for x in open(p)] if os.path.exists(p) else None
def med(v): return statistics.median(v)
def fmt(v): return "%6.2f s (%.2f-%.2f)" % (med(v), min(v), max(v))
def pair(label, a, b, an, bn):
    x, y = load(a), load(b)
    if x is None or y is None:
        return
    print("  %-34s %s %s, %s %s, %s/%s %.2fx"
          % (label, an, fmt(x), bn, fmt(y), an, bn, med(x) / med(y)))
size = {}
for line in open(os.path.join(res, "sizes")):
    k, v = line.split()
    size.setdefault(k, []).append(int(v))
j = json.load(open(convert))
unc = sum(l["uncompressed_bytes"] for l in j["layers"])
comp = sum(size["manifest"]) + sum(size["config"]) + sum(size["layer"])
MiB = 2.0 ** 20
print("image %s: %d layers, %.1f MiB compressed, %.1f MiB uncompressed, %d files; median seconds (min-max)"
      % (image, len(size["layer"]), sum(size["layer"]) / MiB, unc / MiB, j["inodes"]["files"]))
print("seal (converts, stores nothing, writes manifest + index.json):")
for name, label in (("floor", "floor (decompress | sha256sum)"),
                    ("convert", "oci2cfs IMAGE OUT.cfs"),
                    ("seal", "oci2cfs seal")):
    print("  %-34s %s" % (label, fmt(load(name + ".cmd"))))
s, c, f = (med(load(n + ".cmd")) for n in ("seal", "convert", "floor"))
print("  %-34s seal/convert %.2fx, seal/floor %.2fx" % ("ratios", s / c, s / f))
print("sizes:")
print("  %-34s %d bytes (%.2f MiB) = %.1f%% of the compressed image (%d bytes), %.1f%% of the uncompressed layers"
      % ("composefs image", size["cfs"][0], size["cfs"][0] / MiB, 100.0 * size["cfs"][0] / comp, comp,
         100.0 * size["cfs"][0] / unc))
print("  %-34s %d -> %d bytes (+%d), the only new blob to push"
      % ("manifest, sealed", size["manifest"][0], size["sealed_manifest"][0],
         size["sealed_manifest"][0] - size["manifest"][0]))
print("  %-34s %s" % ("composefs image id (merged)", merged))
print("pull from the local registry (cfs-store pull --require-sealed vs podman pull):")
pair("empty store", "cfs.cmd", "pod.cmd", "cfs", "podman")
pair("empty store, incl. final sync", "cfs.sync", "pod.sync", "cfs", "podman")
if base != "-":
    pair("%s already there" % base, "cfsb.cmd", "podb.cmd", "cfs", "podman")
    pair("%s there, incl. sync" % base, "cfsb.sync", "podb.sync", "cfs", "podman")
if rebuilt != "-":
    unc = sum(l["uncompressed_bytes"] for l in json.load(open(rebuilt_json))["layers"])
    print("%s pulled onto %s (uncompressed %.1f MiB; bytes: medians; fresh ext4):"
          % (rebuilt, base, unc / MiB))
    for tool, name in (("cfs", "cfsr"), ("podman", "podr"), ("cfs again", "cfsa")):
        f, w = med(load(name + ".fetched")), med(load(name + ".written"))
        print("  %-9s fetched %8.2f MiB, written %8.2f MiB = %5.2f%% of uncompressed, %s incl. sync"
              % (tool, f / MiB, w / MiB, 100.0 * w / unc, fmt(load(name + ".sync"))))
    pair("time incl. sync", "cfsr.sync", "podr.sync", "cfs", "podman")
PY

# Partial pulls of REBUILT onto BASE_IMAGE as zstd:chunked (issue 18):
# bench/partial.sh, podman 5 (its partial pulls) against cfs-store in the
# same run, for the layers skopeo 1.18 writes and for those oci2cfs seal
# --zstd-chunked writes. It needs the trixie root of podman5-root.sh
# (CFS_PODMAN5_CACHE, made on first use); PARTIAL=0 skips it.
if [ "${PARTIAL:-1}" != 0 ] && [ "$rebuilt" != - ]; then
	for producer in skopeo oci2cfs; do
		PRODUCER=$producer REPS=$reps CFS_BIN=$bin \
			"$here/bench/partial.sh" "$corpus" "$rebuilt" "$base" |
			sed -n '/layers written by/s/,.*//p; /medians/,$p'
	done
fi
