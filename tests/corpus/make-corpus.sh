#!/usr/bin/env bash
# make-corpus.sh - build a corpus of REAL Debian OCI image layouts for testing
# and benchmarking an OCI -> composefs converter.
#
# Usage:  sudo ./make-corpus.sh [OUTDIR]        (default OUTDIR: ./corpus-out)
#
# Produces, under OUTDIR (each an OCI image layout, tag "latest"):
#   debian-minbase       debootstrap --variant=minbase, 1 gzip layer
#   debian-minbase-rebuilt  a second, independent run of the debian-minbase recipe:
#                        different layer digest, mostly identical file contents
#   debian-python        minbase + "apt-get install python3" layer (umoci diff), 2 gzip layers
#   debian-python-zstd   same as debian-python, layers recompressed to zstd (skopeo)
#   debian-build         minbase + "apt-get install build-essential" layer, 2 gzip layers
#   debian-caps          minbase + iputils-ping/libcap2-bin layer: a real security.capability xattr
#   debian-whiteouts     debian-python + a umoci-diffed deletion layer (.wh. files/dirs)
#                        + an overlayfs-captured layer (opaque .wh..wh..opq), 4 gzip layers
#   edge-cases           synthetic image from make-edge-image.sh (if present next to this script)
#   archives/debian-python.docker-archive.tar   skopeo docker-archive export of debian-python
#   archives/debian-python.oci-archive.tar      skopeo oci-archive export of debian-python
#   build-times.tsv      seconds each image took to build
#   REPORT.md / report.json   statistics written by corpus-report.py
#   expected/IMAGE.tsv   merged root file system of each image (see corpus-report.py)
#   crosscheck/          expected/ compared with `umoci unpack`; a difference
#                        crosscheck.py does not know fails the build (CROSSCHECK=0 skips)
#   tools.txt            tool versions used
#
# Idempotent: an image directory that already exists is skipped (images are
# built in NAME.tmp and renamed on success).  Delete OUTDIR/NAME to rebuild it;
# images derived from it are NOT rebuilt automatically (delete them too).
#
# Needs: root (debootstrap, chroot, mknod, mount proc/overlay), network access
# to the Debian mirror.  Missing tools (umoci skopeo debootstrap zstd jq) are
# installed with apt-get.  Content is real but not bit-for-bit reproducible
# (package versions follow the mirror; mtimes are build times).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:-./corpus-out}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
TAG=latest
APT_LOCK=(-o DPkg::Lock::Timeout=600)

log() { printf '[make-corpus %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap/chroot/mount)"

# ---------------------------------------------------------------- tools
need_pkgs=()
for t in umoci:umoci skopeo:skopeo debootstrap:debootstrap zstd:zstd jq:jq python3:python3; do
    command -v "${t%%:*}" >/dev/null 2>&1 || need_pkgs+=("${t##*:}")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
    log "installing missing tools: ${need_pkgs[*]}"
    apt-get "${APT_LOCK[@]}" update -q
    DEBIAN_FRONTEND=noninteractive apt-get "${APT_LOCK[@]}" install -y -q "${need_pkgs[@]}"
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$OUT/.work
TIMES=$OUT/build-times.tsv
ARCH=$(dpkg --print-architecture)
mkdir -p "$WORK"
[ -f "$TIMES" ] || printf 'image\tseconds\tfinished_utc\n' >"$TIMES"

# ---------------------------------------------------------------- mounts
MOUNTS=()
cleanup() {
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        mountpoint -q "${MOUNTS[$i]}" 2>/dev/null && { umount "${MOUNTS[$i]}" || umount -l "${MOUNTS[$i]}" || true; }
    done
    MOUNTS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

do_mount() { # do_mount MOUNTPOINT mount-args...
    local mp=$1; shift
    mount "$@" "$mp"
    MOUNTS+=("$mp")
}

assert_no_mounts_under() {
    local d
    d=$(readlink -f "$1")
    if awk -v d="$d" '$2 == d || index($2, d "/") == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
        die "something is still mounted under $d"
    fi
}

# chroot_apt ROOTFS SCRIPT: run SCRIPT with /bin/sh in ROOTFS with /proc, a
# tmpfs /dev/shm, the host's resolv.conf and a policy-rc.d that blocks
# services.  Everything temporary is removed again before returning, so the
# umoci diff only sees what SCRIPT changed.
chroot_apt() {
    local r=$1 script=$2 had_resolv=0 rc=0
    do_mount "$r/proc" -t proc proc
    if [ -d "$r/dev/shm" ]; then do_mount "$r/dev/shm" -t tmpfs -o mode=1777 shm; fi
    if [ -e "$r/etc/resolv.conf" ] || [ -L "$r/etc/resolv.conf" ]; then
        had_resolv=1
        mv "$r/etc/resolv.conf" "$WORK/resolv.conf.saved"
    fi
    cp /etc/resolv.conf "$r/etc/resolv.conf"
    printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
    chmod 755 "$r/usr/sbin/policy-rc.d"
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive \
        chroot "$r" /bin/sh -euxc "$script" || rc=$?
    rm -f "$r/usr/sbin/policy-rc.d" "$r/etc/resolv.conf"
    if [ $had_resolv = 1 ]; then mv "$WORK/resolv.conf.saved" "$r/etc/resolv.conf"; fi
    cleanup
    assert_no_mounts_under "$r"
    return $rc
}

# ---------------------------------------------------------------- helpers
manifest_of() { # manifest_of LAYOUT -> path of the manifest blob for $TAG
    local d
    d=$(jq -r --arg t "$TAG" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' "$1/index.json")
    echo "$1/blobs/sha256/${d#sha256:}"
}

record_time() { # record_time NAME SECONDS
    local tmp=$TIMES.tmp
    awk -F'\t' -v n="$1" '$1 != n' "$TIMES" >"$tmp"
    printf '%s\t%s\t%s\n' "$1" "$2" "$(date -u +%FT%TZ)" >>"$tmp"
    mv "$tmp" "$TIMES"
}

# build NAME FUNCTION: run FUNCTION DEST (DEST = $OUT/NAME.tmp) unless $OUT/NAME exists.
build() {
    local name=$1 fn=$2 t0 t1
    if [ -e "$OUT/$name" ]; then
        log "$name: already built, skipping"
        return 0
    fi
    log "$name: building"
    rm -rf "${OUT:?}/$name.tmp"
    t0=$(date +%s.%N)
    "$fn" "$OUT/$name.tmp"
    t1=$(date +%s.%N)
    mv "$OUT/$name.tmp" "$OUT/$name"
    record_time "$name" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
    log "$name: done in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')s"
}

# derive_with_apt DEST BASE_NAME CREATED_BY SCRIPT: copy image BASE, unpack it
# with umoci, run SCRIPT in a chroot of the rootfs, umoci repack the diff as a
# new gzip layer.
derive_with_apt() {
    local dst=$1 base=$2 created_by=$3 script=$4
    local bundle=$WORK/$(basename "$dst").bundle
    cp -a "$OUT/$base" "$dst"
    rm -rf "$bundle"
    umoci unpack --image "$dst:$TAG" "$bundle" >/dev/null
    chroot_apt "$bundle/rootfs" "$script"
    umoci repack --image "$dst:$TAG" --history.created_by "$created_by" "$bundle"
    umoci gc --layout "$dst"
    rm -rf "$bundle"
}

APT_INSTALL_PRE='apt-get update -q'
APT_INSTALL_POST='apt-get clean; rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old'

# ---------------------------------------------------------------- (a) debian-minbase
build_minbase() {
    local dst=$1 bundle=$WORK/minbase.bundle
    rm -rf "$bundle"
    umoci init --layout "$dst"
    umoci new --image "$dst:$TAG"
    umoci config --image "$dst:$TAG" --history.created_by "CMD [\"bash\"]" \
        --config.cmd bash \
        --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --config.label "org.opencontainers.image.description=debootstrap --variant=minbase $SUITE"
    umoci unpack --image "$dst:$TAG" "$bundle" >/dev/null
    # debootstrap refuses a non-empty target; umoci leaves rootfs empty.
    debootstrap --variant=minbase --arch="$ARCH" "$SUITE" "$bundle/rootfs" "$MIRROR" \
        >"$WORK/debootstrap.log" 2>&1 || { tail -30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
    assert_no_mounts_under "$bundle/rootfs"
    local r=$bundle/rootfs
    cat >"$r/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
EOF
    # host-specific files copied by debootstrap do not belong in an image
    rm -f "$r/etc/resolv.conf" "$r/etc/hostname"
    chroot_apt "$r" "$APT_INSTALL_POST"
    umoci repack --image "$dst:$TAG" \
        --history.created_by "debootstrap --variant=minbase --arch=$ARCH $SUITE / $MIRROR" "$bundle"
    umoci gc --layout "$dst"
    rm -rf "$bundle"
}

# ---------------------------------------------------------------- (a2) debian-minbase-rebuilt
# The nightly-rebuild case: the same recipe run again later.  Build-time mtimes,
# logs and caches differ, so the layer digest differs, while most file contents
# are byte-identical.  A layer-keyed store (containers/storage) shares nothing
# between the two images; a content-addressed store shares every identical file
# (disk and page cache).  corpus-report.py prints how much the two share.
build_minbase_rebuilt() {
    local dst=$1 a b
    build_minbase "$dst"
    a=$(jq -r '.layers[0].digest' "$(manifest_of "$OUT/debian-minbase")")
    b=$(jq -r '.layers[0].digest' "$(manifest_of "$dst")")
    [ "$a" != "$b" ] || die "rebuild produced the same layer as debian-minbase ($a); it must differ"
}

# ---------------------------------------------------------------- (b) debian-python
build_python() {
    derive_with_apt "$1" debian-minbase \
        "/bin/sh -c apt-get install -y --no-install-recommends python3" \
        "$APT_INSTALL_PRE; apt-get install -y -q --no-install-recommends python3; $APT_INSTALL_POST"
}

# ---------------------------------------------------------------- (c) debian-python-zstd
build_python_zstd() {
    local dst=$1
    skopeo copy -q --dest-compress-format zstd "oci:$OUT/debian-python:$TAG" "oci:$dst:$TAG"
    # check the tool really wrote zstd layers with the right media type
    local m
    m=$(manifest_of "$dst")
    jq -e '[.layers[].mediaType] | all(. == "application/vnd.oci.image.layer.v1.tar+zstd")' "$m" >/dev/null ||
        die "skopeo did not produce zstd layers: $(jq -c '[.layers[].mediaType]' "$m")"
    local d
    for d in $(jq -r '.layers[].digest' "$m"); do
        zstd -q -t "$dst/blobs/sha256/${d#sha256:}" || die "layer $d is not valid zstd"
    done
}

# ---------------------------------------------------------------- (d) debian-build
build_build() {
    derive_with_apt "$1" debian-minbase \
        "/bin/sh -c apt-get install -y --no-install-recommends build-essential" \
        "$APT_INSTALL_PRE; apt-get install -y -q --no-install-recommends build-essential; $APT_INSTALL_POST"
}

# ---------------------------------------------------------------- (d2) debian-caps
# Not in the original list: iputils-ping's postinst runs setcap, so this layer
# carries a REAL security.capability xattr (PAX SCHILY.xattr.security.capability)
# written by umoci; libcap2-bin provides setcap (only a Recommends of ping).
build_caps() {
    derive_with_apt "$1" debian-minbase \
        "/bin/sh -c apt-get install -y --no-install-recommends libcap2-bin iputils-ping" \
        "$APT_INSTALL_PRE; apt-get install -y -q --no-install-recommends libcap2-bin iputils-ping; $APT_INSTALL_POST; getcap /usr/bin/ping"
}

# ---------------------------------------------------------------- (e) debian-whiteouts
# Layer 3 (umoci diff): per-entry whiteouts (.wh.<file>, .wh.<dir>), leaving
#   /usr/bin/python3 as a dangling symlink.
# Layer 4 (overlayfs upperdir, the way docker/containerd overlay snapshotters
#   make layers): directories removed and recreated become opaque
#   (.wh..wh..opq), removed files become .wh. entries.  umoci never emits
#   opaque whiteouts, hence the overlay capture.
WH_SCRIPT3='rm -rf /usr/share/doc/*; rm /usr/bin/python3.11'
WH_SCRIPT4='rm -rf /etc/apt/apt.conf.d && mkdir /etc/apt/apt.conf.d && printf "APT::Install-Recommends \"false\";\n" >/etc/apt/apt.conf.d/00-no-recommends; rm -rf /usr/share/man && mkdir -p /usr/share/man/man1 && printf ".TH CORPUS 1\n" >/usr/share/man/man1/corpus.1; rm -f /etc/issue.net /etc/motd; rm -rf /usr/share/zoneinfo/Antarctica'
build_whiteouts() {
    local dst=$1 bundle=$WORK/whiteouts.bundle ovl=$WORK/whiteouts.ovl
    cp -a "$OUT/debian-python" "$dst"
    rm -rf "$bundle" "$ovl"
    umoci unpack --image "$dst:$TAG" "$bundle" >/dev/null
    chroot "$bundle/rootfs" /bin/sh -euxc "$WH_SCRIPT3"
    umoci repack --image "$dst:$TAG" --history.created_by "/bin/sh -c $WH_SCRIPT3" "$bundle"

    mkdir -p "$ovl/upper" "$ovl/work" "$ovl/merged"
    do_mount "$ovl/merged" -t overlay overlay \
        -o "lowerdir=$bundle/rootfs,upperdir=$ovl/upper,workdir=$ovl/work,metacopy=off,redirect_dir=off,index=off"
    chroot "$ovl/merged" /bin/sh -euxc "$WH_SCRIPT4"
    cleanup
    python3 "$HERE/ovl-upper-to-tar.py" "$ovl/upper" "$ovl/layer.tar"
    umoci raw add-layer --image "$dst:$TAG" --history.created_by "/bin/sh -c $WH_SCRIPT4" "$ovl/layer.tar"
    umoci gc --layout "$dst"
    rm -rf "$bundle" "$ovl"
}

# ---------------------------------------------------------------- archives
build_archives() {
    local dst=$1
    mkdir -p "$dst"
    skopeo copy -q "oci:$OUT/debian-python:$TAG" "docker-archive:$dst/debian-python.docker-archive.tar:debian-python:$TAG"
    skopeo copy -q "oci:$OUT/debian-python:$TAG" "oci-archive:$dst/debian-python.oci-archive.tar:$TAG"
}

build_edge() {
    "$HERE/make-edge-image.sh" "$1"
}

build debian-minbase build_minbase
build debian-minbase-rebuilt build_minbase_rebuilt
build debian-python build_python
build debian-python-zstd build_python_zstd
build debian-build build_build
build debian-caps build_caps
build debian-whiteouts build_whiteouts
build archives build_archives
if [ -x "$HERE/make-edge-image.sh" ]; then
    build edge-cases build_edge
fi
rm -rf "$WORK"

# ---------------------------------------------------------------- validate + report
log "validating layouts with skopeo"
for img in $(cd "$OUT" && ls); do
    [ -f "$OUT/$img/index.json" ] || continue
    skopeo inspect "oci:$OUT/$img:$TAG" >/dev/null || die "skopeo inspect failed for $img"
    # skopeo copy verifies every blob digest while copying
    rm -rf "$OUT/.validate"
    skopeo copy -q "oci:$OUT/$img:$TAG" "dir:$OUT/.validate" || die "skopeo copy failed for $img"
    rm -rf "$OUT/.validate"
done
{
    echo "built on: $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r), arch $ARCH"
    echo "suite: $SUITE, mirror: $MIRROR"
    dpkg-query -W -f '${Package} ${Version}\n' umoci skopeo debootstrap zstd 2>/dev/null
    echo "python3 $(python3 -c 'import platform; print(platform.python_version())')"
} >"$OUT/tools.txt"
log "writing report"
python3 "$HERE/corpus-report.py" "$OUT" >/dev/null

# Cross-check: the merged trees computed by corpus-report.py (expected/*.tsv)
# against what `umoci unpack` extracts.  Known, accepted differences for
# edge-cases: umoci drops the empty-valued xattr user.empty, and implicit
# parent directories get the extraction time as mtime (expected/ says 0).
if [ "${CROSSCHECK:-1}" = 1 ]; then
    log "cross-checking expected/*.tsv against umoci unpack"
    mkdir -p "$OUT/crosscheck" "$WORK"
    : >"$OUT/crosscheck/SUMMARY.txt"
    for img in $(cd "$OUT" && ls); do
        [ -f "$OUT/$img/index.json" ] || continue
        rm -rf "$WORK/xc"
        if jq -e '[.layers[].mediaType] | any(endswith("+zstd"))' "$(manifest_of "$OUT/$img")" >/dev/null; then
            # umoci 0.4.7 (Debian 12) cannot read zstd layers; the content must
            # equal the gzip image it was recompressed from.
            same=no
            cmp -s "$OUT/expected/$img.tsv" "$OUT/expected/debian-python.tsv" && same=yes
            printf '%s\tskipped: umoci cannot unpack zstd layers; expected/ identical to debian-python: %s\n' \
                "$img" "$same" | tee -a "$OUT/crosscheck/SUMMARY.txt" >&2
            [ $same = yes ] || die "$img differs from debian-python"
            continue
        fi
        umoci unpack --image "$OUT/$img:$TAG" "$WORK/xc" >/dev/null
        python3 "$HERE/tree-listing.py" "$WORK/xc/rootfs" >"$WORK/xc.tsv"
        diff "$OUT/expected/$img.tsv" "$WORK/xc.tsv" >"$OUT/crosscheck/$img.diff" || true
        n=$(grep -c '^[<>]' "$OUT/crosscheck/$img.diff" || true)
        printf '%s\t%s differing lines (expected vs umoci unpack)\n' "$img" "$n" | tee -a "$OUT/crosscheck/SUMMARY.txt" >&2
        # Only edge-cases may differ, and only as crosscheck.py knows.
        known=()
        [ "$img" != edge-cases ] || known=(--umoci-known)
        python3 "$HERE/crosscheck.py" "${known[@]}" "$OUT/expected/$img.tsv" "$WORK/xc.tsv" \
            >"$OUT/crosscheck/$img.txt" || { cat "$OUT/crosscheck/$img.txt" >&2; die "$img: expected/$img.tsv differs from umoci unpack"; }
        rm -rf "$WORK/xc" "$WORK/xc.tsv"
    done
    rm -rf "$WORK"
fi
# Readable by every user: tests that need no root read it too (skopeo
# and umoci write blobs 0600).
chmod -R a+rX "$OUT"
log "corpus ready in $OUT ($(du -sh "$OUT" | cut -f1))"
