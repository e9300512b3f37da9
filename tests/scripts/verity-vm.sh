#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# fs-verity enforced by a kernel (issues 7, 15): boots a small QEMU VM whose
# kernel has fs-verity and overlayfs' verity= (Debian's linux-image 6.12),
# imports two OCI fixtures into a store on an ext4 "verity" disk, mounts
# them with cfs-store's default verity=require and reads every file, then
# replaces one object by a file with another fs-verity digest and one by
# a copy without fs-verity, and removes a third: opening the files that
# use the first two must fail with EIO (and only those), under
# verity=require and verity=on, and succeed under verity=off; those of
# the third give ENOENT. Signatures: with the test certificate in the
# .fs-verity keyring, an image signed by its key is imported with
# --require-signed and the kernel holds the signature; one signed by
# another key is refused by the kernel, the store unchanged. The checks
# inside the VM are
# tests/vm/verity-test.sh; docs/verity-vm.md has the whole story.
#
# Needs no root. Needs qemu-system-x86, busybox-static, e2fsprogs, cpio,
# kmod, xz-utils, fsverity, python3 and apt (scripts/install-deps.sh).
# The kernel package is fetched once with `apt-get download` into a cache
# (CFS_VM_CACHE, default: the build's tests/vm-cache) and only its kernel
# and the dozen modules the VM loads are kept there.
#
# Exit 77 (skipped) only when a tool above is missing or QEMU runs no
# guest at all, under TCG nor KVM; any other problem is a failure.
#
# Environment: CFS_BIN, CFS_SRC, CFS_TEST_TMP (tests/CMakeLists.txt);
# optional CFS_VM_CACHE; CFS_VM_KERNEL_DEB (a linux-image .deb to use
# instead of the newest 6.12+ in the apt sources); CFS_VM_ACCEL
# (accelerators to try in order, default "tcg kvm": the KVM of some
# nested hypervisors crashes the guest, TCG works everywhere);
# CFS_VM_TIMEOUT (seconds per boot, default 600).
set -euo pipefail

# shellcheck source=tests/scripts/lib.sh
. "$(dirname "$0")/lib.sh"
test_init verity-vm CFS_SRC

need_tool qemu-system-x86_64 busybox mkfs.ext4 cpio depmod modprobe xz \
	dpkg-deb apt-get apt-cache python3 fsverity ldd flock timeout openssl \
	keyctl
need_exec "$CFS_BIN/cfs-store" "$CFS_BIN/oci2cfs"

tmp_root=$(realpath "$CFS_TEST_TMP")
cache=${CFS_VM_CACHE:-$(dirname "$tmp_root")/vm-cache}
timeout_s=${CFS_VM_TIMEOUT:-600}
t0=$SECONDS

# ---- the kernel ---------------------------------------------------------

# The newest Debian kernel package of at least 6.12 (fs-verity, overlayfs
# verity= since 6.6, EROFS on a regular file since 6.12) that apt knows:
# bookworm-security carries linux-image-6.12.*+deb12-amd64-unsigned.
kernel_packages() {
	apt-cache search --names-only '^linux-image-[0-9.]+\+deb[0-9]+-amd64-unsigned$' |
		cut -d' ' -f1 |
		awk -F'[-.+]' '$3 > 6 || ($3 == 6 && $4 >= 12)' |
		sort -V -r
}

# Unpacks the kernel package $1 into the cache as DIR/{vmlinuz,config,
# modules/*.ko,modules/load-order}, the modules the VM needs in the order
# modprobe would load them (decompressed: busybox insmod reads plain .ko).
kernel_prepare() { # DEB KEY
	local deb=$1 key=$2 prep moddir kver base ko name
	prep=$(mktemp -d "$cache/prep.XXXXXX")
	dpkg-deb -x "$deb" "$prep/root" || fail "dpkg-deb -x $deb"
	moddir=$(find "$prep/root/lib/modules" "$prep/root/usr/lib/modules" \
		-mindepth 1 -maxdepth 1 -type d 2>/dev/null | head -n 1 || true)
	[ -n "$moddir" ] || fail "$deb: no lib/modules"
	kver=$(basename "$moddir")
	base=${moddir%/lib/modules/*}
	[ -f "$prep/root/boot/vmlinuz-$kver" ] || fail "$deb: no boot/vmlinuz-$kver"
	depmod -b "$base" "$kver" || fail "depmod $kver"
	mkdir -p "$prep/k/modules"
	: >"$prep/empty.conf"
	# virtio_pci is built in from 6.12 on; loop: kernels before 6.12
	# mount EROFS from a loop device.
	for name in virtio_pci virtio_blk loop ext4 erofs overlay; do
		modprobe -C "$prep/empty.conf" -d "$base" -S "$kver" --show-depends "$name" ||
			fail "$kver: no module $name"
	done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' >"$prep/kos"
	while read -r ko; do
		name=$(basename "$ko")
		case $name in
		*.ko.xz) xz -dc "$ko" >"$prep/k/modules/${name%.xz}" ;;
		*.ko.zst) zstd -qdc "$ko" >"$prep/k/modules/${name%.zst}" ;;
		*.ko.gz) gzip -dc "$ko" >"$prep/k/modules/${name%.gz}" ;;
		*) cp "$ko" "$prep/k/modules/$name" ;;
		esac || fail "decompress $ko"
		basename "${name%.ko*}.ko" >>"$prep/k/modules/load-order"
	done <"$prep/kos"
	cp "$prep/root/boot/vmlinuz-$kver" "$prep/k/vmlinuz"
	cp "$prep/root/boot/config-$kver" "$prep/k/config"
	echo "$kver" >"$prep/k/version"
	rm -rf "${cache:?}/$key"
	mv "$prep/k" "$cache/$key"
	touch "$cache/$key/ready"
	rm -rf "$prep"
}

# Sets kdir: a prepared kernel, from CFS_VM_KERNEL_DEB, else the cache,
# else downloaded.
kernel_get() {
	local deb key pkg
	mkdir -p "$cache"
	exec 9>"$cache/lock"
	flock 9 # one download and unpacking at a time
	rm -rf "$cache"/prep.* # left by a killed run
	if [ -n "${CFS_VM_KERNEL_DEB:-}" ]; then
		deb=$(realpath "$CFS_VM_KERNEL_DEB")
		key=$(dpkg-deb -f "$deb" Package)_$(dpkg-deb -f "$deb" Version)
		[ -f "$cache/$key/ready" ] || kernel_prepare "$deb" "$key"
	else
		key=$(find "$cache" -mindepth 2 -maxdepth 2 -name ready -printf '%h\n' |
			xargs -r -n1 basename | grep '^linux-image-' | sort -V | tail -n 1 || true)
		if [ -z "$key" ]; then
			mapfile -t pkgs < <(kernel_packages)
			[ "${#pkgs[@]}" -gt 0 ] ||
				fail "apt knows no linux-image-6.12+-amd64-unsigned (Debian 12: bookworm-security in the apt sources, then apt-get update)"
			rm -rf "$cache/dl"
			mkdir -p "$cache/dl"
			# Old versions leave the security archive: try a few.
			for pkg in "${pkgs[@]:0:3}"; do
				echo "$me: apt-get download $pkg"
				if (cd "$cache/dl" && apt-get download -q "$pkg") >"$work/apt.log" 2>&1; then
					break
				fi
				sed 's/^/  /' "$work/apt.log" >&2
				rm -f "$cache"/dl/*.deb
			done
			deb=$(find "$cache/dl" -name '*.deb' | head -n 1)
			[ -n "$deb" ] || fail "apt-get download of ${pkgs[*]:0:3} failed"
			key=$(dpkg-deb -f "$deb" Package)_$(dpkg-deb -f "$deb" Version)
			kernel_prepare "$deb" "$key"
			rm -rf "$cache/dl"
		fi
	fi
	exec 9>&-
	kdir=$cache/$key
}

step "kernel"
kernel_get
echo "$me: kernel $(cat "$kdir/version") ($kdir), modules: $(tr '\n' ' ' <"$kdir/modules/load-order")"
for opt in CONFIG_FS_VERITY CONFIG_OVERLAY_FS CONFIG_EROFS_FS CONFIG_EROFS_FS_BACKED_BY_FILE CONFIG_EXT4_FS; do
	echo "  $(grep -E "^(# )?${opt}[= ]" "$kdir/config" || echo "$opt unknown")"
done

# ---- the initramfs ------------------------------------------------------

step "initramfs"
# Only busybox, the modules and the scripts (6 MiB): the tools and their
# libraries (46 MiB, most of it ICU data that libxml2 pulls in) go on the
# data disk, where the guest reads only the pages it uses.
ird=$work/initramfs
stage=$work/stage
mkdir -p "$ird/bin" "$ird/modules" "$stage/sys/bin" "$stage/sys/libs"
busybox=$(command -v busybox)
cp -L "$busybox" "$ird/bin/busybox"
case $("$ird/bin/busybox" 2>&1 || true) in
*BusyBox*) ;;
*) fail "$busybox is no busybox" ;;
esac
# busybox-static's is static; another busybox brings its libraries.
ldd "$busybox" >/dev/null 2>&1 && fail "$busybox is not static (apt-get install busybox-static)"
cp "$kdir"/modules/* "$ird/modules/"
install -m 0755 "$CFS_SRC/tests/vm/init" "$ird/init"
install -m 0755 "$CFS_SRC/tests/vm/verity-test.sh" "$ird/verity-test.sh"
(cd "$ird" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) >"$work/initrd.cpio"
echo "$me: initramfs $(($(stat -c %s "$work/initrd.cpio") / 1024)) KiB"
# A binary into sys/bin, every shared library ldd names into sys/libs
# (the guest's LD_LIBRARY_PATH, so libcfs is found wherever the build
# is), and the loader at its own path under sys/, which /init links into
# / (it is named by absolute path in every binary). No build path is
# linked into the guest's root: a build under /tmp, /run or /mnt would
# meet the initramfs's own directories there.
copy_bin() { # PATH
	local lib
	cp -L "$1" "$stage/sys/bin/"
	while read -r lib; do
		cp -L "$lib" "$stage/sys/libs/"
	done < <(ldd "$1" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 }')
	while read -r lib; do
		mkdir -p "$stage/sys$(dirname "$lib")"
		cp -L "$lib" "$stage/sys$lib"
	done < <(ldd "$1" 2>/dev/null | awk '$1 ~ /^\// { print $1 }')
}
for b in "$CFS_BIN/cfs-store" "$CFS_BIN/oci2cfs" "$(command -v fsverity)" \
	"$(command -v keyctl)"; do
	copy_bin "$b"
done

# ---- the data disk ------------------------------------------------------

step "data disk"
mkdir -p "$stage/fx"
python3 "$CFS_SRC/tests/oci/make-fixtures.py" "$work/fx" >/dev/null
# Two images: hardlinks (objects shared by several paths, inline files)
# and sparse (objects of MiBs: Merkle trees of two levels).
printf '%s\n' "hl hardlinks" "sp sparse" >"$stage/cases"
while read -r name fixture; do
	cp -a "$work/fx/$fixture" "$stage/fx/"
	tsv=$work/fx/expected/$fixture.tsv
	# Paths are read by the busybox shell: keep them plain.
	[ -z "$(awk -F'\t' '!/^#/ && $1 ~ /[\\ ]/' "$tsv")" ] || fail "$fixture: a path needs quoting"
	# Path -> object, from the image's dump (digest in the last field).
	"$CFS_BIN/oci2cfs" --dump "$work/$name.dump" "oci:$work/fx/$fixture" "$work/$name.cfs" >/dev/null
	awk '{ print $1, ($2 > 64 && $NF != "-") ? substr($NF, 1, 2) "/" substr($NF, 3) : "-" }' \
		"$work/$name.dump" >"$work/$name.objmap"
	# Content hashes and sizes from the fixture's own listing.
	awk -F'\t' 'NR == FNR { split($0, a, " "); obj[a[1]] = a[2]; next }
		/^#/ || $2 != "f" { next }
		!($1 in obj) { print "no object for " $1 > "/dev/stderr"; exit 1 }
		($6 > 64) != (obj[$1] != "-") { print "object of " $1 ": " obj[$1] > "/dev/stderr"; exit 1 }
		{ print $9, $6, obj[$1], $1 }' "$work/$name.objmap" "$tsv" >"$stage/$name.files" ||
		fail "$fixture: listing"
	echo "$me: $name ($fixture): $(wc -l <"$stage/$name.files") files, $(awk '$3 != "-"' "$stage/$name.files" | cut -d' ' -f3 | sort -u | wc -l) objects"
done <"$stage/cases"
# The tampered objects: the largest of sp gets other content, the one of
# hl with the most paths loses fs-verity, the largest other one of hl
# goes missing.
wrong=$(awk '$3 != "-" { print $2, $3 }' "$stage/sp.files" | sort -k1,1n -k2 | tail -n 1 | cut -d' ' -f2)
noverity=$(awk '$3 != "-" { n[$3]++ } END { for (o in n) print n[o], o }' "$stage/hl.files" |
	sort -k1,1n -k2 | tail -n 1 | cut -d' ' -f2)
missing=$(awk -v nv="$noverity" '$3 != "-" && $3 != nv { print $2, $3 }' "$stage/hl.files" |
	sort -k1,1n -k2 | tail -n 1 | cut -d' ' -f2)
[ -n "$wrong" ] && [ -n "$noverity" ] && [ -n "$missing" ] || fail "no objects to tamper with"
printf 'wrong sp %s\nnoverity hl %s\nmissing hl %s\n' "$wrong" "$noverity" "$missing" >"$stage/tamper"
# Signatures (issue 15): typechange (it has a /usr, so a canonical tree)
# sealed and signed twice, by the key whose certificate the guest loads
# into the .fs-verity keyring and by another one; the signature the
# kernel should hold, from fsverity-utils; times, for
# fs.verity.require_signatures.
mkdir -p "$stage/sig"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key.pem" \
	-out "$stage/sig/cert.pem" -days 30 -subj /CN=cfs-vm-signer 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/other-key.pem" \
	-out "$stage/sig/other.pem" -days 30 -subj /CN=cfs-vm-other 2>/dev/null
openssl x509 -in "$stage/sig/cert.pem" -outform der -out "$stage/sig/cert.der"
cp -a "$work/fx/typechange" "$stage/fx/signed"
cp -a "$work/fx/typechange" "$stage/fx/other"
cp -a "$work/fx/times" "$stage/fx/"
"$CFS_BIN/oci2cfs" seal "oci:$stage/fx/signed" --sign-key "$work/key.pem" \
	--sign-cert "$stage/sig/cert.pem" >/dev/null || fail "seal signed"
"$CFS_BIN/oci2cfs" seal "oci:$stage/fx/other" --sign-key "$work/other-key.pem" \
	--sign-cert "$stage/sig/other.pem" >/dev/null || fail "seal other"
"$CFS_BIN/oci2cfs" --canonical "oci:$work/fx/typechange" "$work/tc.cfs" \
	--print-digest >"$stage/sig/digest"
fsverity sign "$work/tc.cfs" "$stage/sig/merged.sig" --key "$work/key.pem" \
	--cert "$stage/sig/cert.pem" >/dev/null || fail "fsverity sign"
# 4 KiB blocks: a small ext4 defaults to 1 KiB, and fs-verity with 4 KiB
# Merkle blocks then fails with EINVAL.
truncate -s 192M "$work/data.img"
mkfs.ext4 -q -O verity -b 4096 -d "$stage" "$work/data.img" || fail "mkfs.ext4 -O verity"
echo "$me: prepared in $((SECONDS - t0)) s"

# ---- boot ---------------------------------------------------------------

# The kernel hands unknown NAME=VALUE parameters to /init as its
# environment: the sanitizer options of an ASan build reach the tools.
append="console=ttyS0 panic=-1 quiet"
for v in ASAN_OPTIONS UBSAN_OPTIONS; do
	case ${!v:-} in
	'' | *' '*) ;;
	*) append="$append $v=${!v}" ;;
	esac
done
boot() { # ACCEL LOG
	local rc=0 cpu=max
	[ "$1" != kvm ] || cpu=host
	timeout -k 10 "$timeout_s" qemu-system-x86_64 \
		-machine "q35,accel=$1" -cpu "$cpu" -smp 2 -m 512 \
		-nodefaults -display none -no-reboot \
		-serial "file:$2" \
		-kernel "$kdir/vmlinuz" -initrd "$work/initrd.cpio" \
		-append "$append" \
		-drive "file=$work/data.img,format=raw,if=virtio,snapshot=on" \
		</dev/null >"$2.qemu" 2>&1 || rc=$?
	return $rc
}
# The console without the CRs of the serial line.
console() { tr -d '\r' <"$1"; }

reasons=()
booted=
guest_ran=
for accel in ${CFS_VM_ACCEL:-tcg kvm}; do
	if [ "$accel" = kvm ] && ! { [ -r /dev/kvm ] && [ -w /dev/kvm ]; }; then
		reasons+=("kvm: /dev/kvm is not usable")
		continue
	fi
	log=$work/console-$accel.log
	: >"$log"
	step "boot ($accel)"
	t1=$SECONDS
	rc=0
	boot "$accel" "$log" || rc=$?
	echo "$me: $accel: QEMU exit $rc after $((SECONDS - t1)) s"
	console "$log" >"$log.txt"
	if grep -a -q '^CFS-VM-BOOT: ' "$log.txt"; then
		booted=$accel
		break
	fi
	reasons+=("$accel: QEMU exit $rc, no guest init: $( (tail -n 2 "$log.qemu" "$log.txt" | grep -a -v '^==> \|^$' || true) | tr '\n' ' ')")
	# A TCG guest that printed anything ran: a broken kernel or initramfs
	# is a failure, not a reason to skip.
	[ "$accel" = tcg ] && [ -s "$log" ] && guest_ran=$log
done
if [ -z "$booted" ]; then
	if [ -n "$guest_ran" ]; then
		console "$guest_ran" >&2
		fail "the kernel ran under TCG but never started /init: ${reasons[*]}"
	fi
	skip "QEMU runs no guest here (${reasons[*]})"
fi

cp "$log.txt" "$tmp_root/$me.console.log"
echo "---- console ($booted)"
console "$log"
echo "----"
result=$(grep -a '^CFS-VM-RESULT: ' "$log.txt" | tail -n 1 || true)
[ -n "$result" ] || fail "no result line on the console (timeout ${timeout_s} s?); console above, QEMU: $(tail -n 3 "$log.qemu")"
[ "$result" = "CFS-VM-RESULT: ok" ] || fail "the VM says: ${result#CFS-VM-RESULT: }"
echo "$me: ok ($booted, $((SECONDS - t0)) s)"
