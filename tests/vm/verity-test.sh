#!/bin/sh
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# The part of tests/scripts/verity-vm.sh that runs inside the VM (busybox
# sh, as root, on a kernel with fs-verity), started by tests/vm/init.
#
# /data is ext4 with the "verity" feature, prepared by the host:
#   fx/FIXTURE/       OCI image layouts (tests/oci/make-fixtures.py)
#   cases             "NAME FIXTURE" per image to import
#   NAME.files        "SHA256 SIZE OBJECT PATH" per regular file of the
#                     image, from the fixture's expected listing (never
#                     from oci2cfs); OBJECT is "XX/62HEX" or "-" (inline)
#   tamper            "wrong NAME OBJECT", "noverity NAME OBJECT" and
#                     "missing NAME OBJECT"
#
# Checks, each of which fails the test: import enables fs-verity on the
# new objects and the image; the kernel measures every object and image
# at its name; fsck --verify is clean; cfs-store mount defaults to
# verity=require and every file reads back its content. Then one object
# is replaced by a file with fs-verity and other content ("wrong"), one
# by a copy without fs-verity ("noverity"), and one is removed: with
# verity=require and verity=on, opening the files that use the first two
# fails with EIO (and the kernel says why), those of the removed one with
# ENOENT, every other file still reads; with verity=off the files of the
# first two read without error (the "wrong" one with its new content),
# which shows that the errors come from the fs-verity checks.
# busybox ash has "local".
# shellcheck disable=SC3043
set -u

S="cfs-store --root /data/store"
export PATH=/bin:/data/sys/bin

fail() {
	echo "$*" >/run/cfs-vm-fail
	echo "verity-test: FAIL: $*"
	exit 1
}
step() { echo "== verity-test: [$(cut -d' ' -f1 /proc/uptime) s] $*"; }
# Whether $1 is a mount point (this busybox has no mountpoint applet).
is_mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/mounts; }
# The value of KEY in cfs-store's pretty-printed --json output FILE.
jget() { sed -n "s/^ *\"$1\":\(.*\)\$/\1/p" "$2" | sed 's/,$//' | head -n 1; }
# Mount options of the mount at $1, from /proc/mounts.
mount_opts() { awk -v m="$1" '$2 == m { print $4 }' /proc/mounts | tail -n 1; }

[ -z "${ASAN_OPTIONS:-}" ] || echo "ASAN_OPTIONS=$ASAN_OPTIONS"
[ -e /sys/fs/ext4/features/verity ] || fail "ext4 of this kernel has no fs-verity"
cd /data || fail "no /data"
mkdir -p /data/scratch

step "import"
n_images=0
while read -r name fixture; do
	$S import "oci:/data/fx/$fixture" --name "$name" --json >"/run/$name.import" 2>/run/err ||
		fail "import $fixture: $(cat /run/err)"
	cat "/run/$name.import"
	[ "$(jget verity "/run/$name.import")" = true ] ||
		fail "import $fixture: \"verity\" is not true"
	[ "$(jget verity_error "/run/$name.import")" = null ] ||
		fail "import $fixture: verity_error $(jget verity_error "/run/$name.import")"
	new=$(jget objects_new "/run/$name.import")
	enabled=$(jget verity_enabled "/run/$name.import")
	# Every new object, and the image.
	[ "$enabled" = $((new + 1)) ] ||
		fail "import $fixture: verity_enabled $enabled, want $((new + 1)) ($new new objects + the image)"
	[ "$new" -gt 2 ] || fail "import $fixture: only $new objects"
	$S inspect "$name" --json >"/run/$name.inspect" || fail "inspect $name"
	[ "$(jget verity "/run/$name.inspect")" = true ] ||
		fail "inspect $name: the metadata's \"verity\" is not true"
	d=$(jget digest "/run/$name.import" | tr -d '"')
	echo "$d" >"/run/$name.digest"
	n_images=$((n_images + 1))
done <cases
[ "$n_images" -gt 0 ] || fail "no images in /data/cases"

step "the kernel measures every object and image at its name"
# One process for all: under TCG a process costs tens of milliseconds.
ls -d store/objects/*/* store/images/*.cfs >/run/measured
xargs fsverity measure </run/measured >/run/measure 2>&1 ||
	fail "fsverity measure: $(grep -v '^sha256:' /run/measure | head -n 1)"
awk '{ want = $2; sub(/^store\/(objects|images)\//, "", want); sub(/\//, "", want);
	sub(/\.cfs$/, "", want); if ($1 != "sha256:" want) { print $2 ": fs-verity digest " $1; exit 1 } }' \
	/run/measure >/run/err || fail "$(cat /run/err)"
n=$(wc -l </run/measure)
echo "  $n objects and images measured"
[ "$n" = "$(wc -l </run/measured)" ] && [ "$n" -gt "$n_images" ] ||
	fail "$n of $(wc -l </run/measured) objects and images measured"
$S fsck --verify --json >/run/fsck 2>&1 || fail "fsck --verify: $(cat /run/fsck)"
[ "$(jget ok /run/fsck)" = true ] || fail "fsck --verify: not ok"

# Reads every file of image $1 mounted at $2. MODE "clean": all read
# back their content. "enforce": the files of the objects in $wrong and
# $noverity fail to open with EIO, those of $missing with ENOENT, all
# others read back. "control" (verity=off): the same, but the files of
# $wrong and $noverity read without error.
read_all() { # NAME MNT MODE
	local name="$1" at="$2" mode="$3" bad=" " n nbad obj path want
	[ "$mode" = clean ] || bad=" $wrong $noverity $missing "
	n=$(wc -l <"/data/$name.files")
	[ "$n" -gt 0 ] || fail "$name: no files listed"
	# Nothing more, nothing less than listed (a file whose object is
	# missing still has its metadata).
	[ "$(find "$at" -type f | wc -l)" = "$n" ] ||
		fail "$name: $(find "$at" -type f | wc -l) regular files mounted, $n listed"
	# The files of untouched objects: one sha256sum for all of them.
	awk -v at="$at" -v bad="$bad" '!index(bad, " " $3 " ") { print $1 "  " at $4 }' \
		"/data/$name.files" >/run/want
	awk -v bad="$bad" 'index(bad, " " $3 " ") { print $3, $4 }' "/data/$name.files" >/run/bad
	nbad=$(wc -l </run/bad)
	if [ -s /run/want ]; then
		sha256sum -c /run/want >/run/check 2>&1 ||
			fail "$name: $(grep -v ': OK$' /run/check | head -n 3 | tr '\n' ' ')"
		[ "$(grep -c ': OK$' /run/check)" = "$(wc -l </run/want)" ] ||
			fail "$name: sha256sum -c checked $(grep -c ': OK$' /run/check) of $(wc -l </run/want) files"
	fi
	while read -r obj path; do
		case " $missing " in
		*" $obj "*) want="No such file or directory" ;;
		*) want="I/O error|Input/output error" ;;
		esac
		if [ "$mode" = control ] && [ "$want" != "No such file or directory" ]; then
			cat "$at$path" >/dev/null 2>/run/err ||
				fail "$name$path (tampered object $obj): read failed with verity=off: $(cat /run/err)"
			continue
		fi
		if cat "$at$path" >/dev/null 2>/run/err; then
			fail "$name$path: tampered object $obj read without error"
		fi
		grep -q -E "$want" /run/err ||
			fail "$name$path: tampered object $obj: not '$want': $(cat /run/err)"
		echo "  $name$path: $(cat /run/err)"
	done </run/bad
	echo "  $name: $n files, $((n - nbad)) read back, $nbad use tampered objects [$(cut -d' ' -f1 /proc/uptime) s]"
}

mount_check() { # NAME MNT WANT-VERITY [cfs-store mount options]
	local name="$1" at="$2" want="$3" opts
	shift 3
	mkdir -p "$at"
	$S mount "$name" "$at" "$@" 2>/run/err || fail "mount $name $*: $(cat /run/err)"
	opts=$(mount_opts "$at")
	echo "  $at: $(awk -v m="$at" '$2 == m { print $3 }' /proc/mounts) $opts"
	case ",$opts," in
	*,verity=$want,*) ;;
	*,verity=*) fail "mount $name $*: want verity=$want: $opts" ;;
	*) [ "$want" = off ] || fail "mount $name $*: no verity=$want: $opts" ;;
	esac
}
umount_check() { # MNT
	$S umount "$1" 2>/run/err || fail "umount $1: $(cat /run/err)"
	! is_mounted "$1" || fail "$1 still mounted"
}

step "mount (default: verity=require), read every file"
while read -r name fixture; do
	mount_check "$name" "/mnt/$name" require
	read_all "$name" "/mnt/$name" clean
	umount_check "/mnt/$name"
done <cases

step "mount --digest (the image's own fs-verity digest, measured)"
read -r name fixture <cases
d=$(cat "/run/$name.digest")
mount_check "$name" "/mnt/$name" require --digest "$d"
umount_check "/mnt/$name"
case $d in
0*) bad=1${d#?} ;;
*) bad=0${d#?} ;;
esac
if $S mount "$name" "/mnt/$name" --digest "$bad" 2>/run/err; then
	fail "mount with a wrong --digest succeeded"
fi
grep -q "fs-verity digest" /run/err || fail "wrong --digest: $(cat /run/err)"
! is_mounted "/mnt/$name" || fail "a failed mount left /mnt/$name mounted"

step "tamper"
dmesg -c >/dev/null
wrong='' noverity='' missing=''
while read -r kind name obj; do
	f=store/objects/$obj
	[ -f "$f" ] || fail "tamper: no object $obj"
	# What keeps objects as they are: a file with fs-verity cannot be
	# opened for writing.
	if (echo x >>"$f") 2>/run/err; then
		fail "tamper: $obj (fs-verity) opened for writing"
	fi
	echo "  $obj: append: $(cat /run/err)"
	tmp=/data/scratch/$kind
	cp "$f" "$tmp" || fail "tamper: copy $obj"
	case $kind in
	wrong)
		# Same size, 16 bytes in the middle changed, fs-verity on.
		size=$(stat -c %s "$tmp")
		printf 'CFS-TAMPERED-16b' |
			dd of="$tmp" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null ||
			fail "tamper: write $tmp"
		[ "$(stat -c %s "$tmp")" = "$size" ] || fail "tamper: size changed"
		# Enabling fails while the file is open for writing (ETXTBSY).
		exec 3>>"$tmp"
		if fsverity enable "$tmp" 2>/run/err; then
			fail "tamper: fs-verity enabled on a file open for writing"
		fi
		exec 3>&-
		echo "  $tmp open for writing: $(cat /run/err)"
		fsverity enable "$tmp" || fail "tamper: fsverity enable $tmp"
		wrong="$wrong $obj"
		;;
	noverity) noverity="$noverity $obj" ;;
	missing) missing="$missing $obj" ;;
	*) fail "tamper: unknown kind $kind" ;;
	esac
	if [ "$kind" = missing ]; then
		rm -f "$f" "$tmp" || fail "tamper: rm $obj"
		echo "  $kind $obj: removed"
		continue
	fi
	mv -f "$tmp" "$f" || fail "tamper: replace $obj"
	out=$(fsverity measure "$f" 2>&1)
	rc=$?
	echo "  $kind $obj: fsverity measure: $out"
	case $kind in
	wrong)
		[ $rc -eq 0 ] || fail "tamper: $obj has no fs-verity: $out"
		[ "${out%% *}" != "sha256:$(echo "$obj" | tr -d /)" ] ||
			fail "tamper: $obj still has its digest"
		;;
	noverity) [ $rc -ne 0 ] || fail "tamper: $obj still has fs-verity: $out" ;;
	esac
done <tamper
[ -n "$wrong" ] && [ -n "$noverity" ] && [ -n "$missing" ] ||
	fail "tamper: want one wrong, one noverity and one missing object"

step "mount after tampering (default: verity=require): EIO (ENOENT) for exactly those files"
while read -r name fixture; do
	mount_check "$name" "/mnt/$name" require
	read_all "$name" "/mnt/$name" enforce
	umount_check "/mnt/$name"
done <cases
# overlayfs says why (pr_warn_ratelimited: checked after the first pass
# only, and dmesg is printed by init at the end).
dmesg >/run/dmesg
for obj in $wrong; do
	grep -q "lower file '${obj#*/}' has the wrong fs-verity digest" /run/dmesg ||
		fail "dmesg: no 'wrong fs-verity digest' for $obj"
done
for obj in $noverity; do
	grep -q "lower file '${obj#*/}' has no fs-verity digest" /run/dmesg ||
		fail "dmesg: no 'no fs-verity digest' for $obj"
done
# A removed object: ENOENT, found only when the file is opened.
[ -z "$missing" ] || grep -q 'lazy lowerdata lookup failed (.*err=-2)' /run/dmesg ||
	fail "dmesg: no 'lazy lowerdata lookup failed' for the removed object"
grep -E 'fs-verity digest|lowerdata lookup' /run/dmesg | sed 's/^/  dmesg: /'

step "--verity on: EIO for the same files"
while read -r name fixture; do
	mount_check "$name" "/mnt/$name" on --verity on
	read_all "$name" "/mnt/$name" enforce
	umount_check "/mnt/$name"
done <cases

step "control: --verity off reads the changed objects without error"
while read -r name fixture; do
	mount_check "$name" "/mnt/$name" off --verity off
	read_all "$name" "/mnt/$name" control
	# The "wrong" object's files now read its new content.
	for obj in $wrong; do
		awk -v o="$obj" '$3 == o { print $1, $4 }' "/data/$name.files" |
			while read -r sha path; do
				got=$(sha256sum <"/mnt/$name$path")
				[ "${got%% *}" != "$sha" ] ||
					fail "$name$path: verity=off read the original content of a changed object"
				echo "  $name$path: reads the tampered content with verity=off"
			done || exit 1
	done
	umount_check "/mnt/$name"
done <cases

step "fsck --verify finds the changed and the missing object"
$S fsck --verify --json >/run/fsck 2>&1
rc=$?
cat /run/fsck
[ $rc -ne 0 ] || fail "fsck --verify: exit 0 with a changed object"
for obj in $wrong $missing; do
	grep -q "objects/$obj" /run/fsck || fail "fsck --verify: $obj not reported"
done
# An object that lost fs-verity keeps its digest, but the metadata
# promises fs-verity and the default mount is verity=require: fsck
# reports it, and --repair enables fs-verity on it again.
for obj in $noverity; do
	grep -q "object-verity.*objects/$obj\|objects/$obj.*object-verity\|objects/$obj has no fs-verity" /run/fsck ||
		fail "fsck --verify does not report $obj, which lost fs-verity"
done
$S fsck --repair >/run/repair 2>&1
cat /run/repair
for obj in $noverity; do
	fsverity measure "/data/store/objects/$obj" >/dev/null 2>&1 ||
		fail "fsck --repair did not enable fs-verity on $obj again"
done
step "signatures: the kernel checks the image's signature"
S2="cfs-store --root /data/store2"
keyctl padd asymmetric cfs-vm %:.fs-verity </data/sig/cert.der >/run/key 2>/run/err ||
	fail "keyctl padd into .fs-verity: $(cat /run/err)"
echo "  key $(cat /run/key) in .fs-verity"
# Signed by a key the store trusts but the kernel does not.
if $S2 import oci:/data/fx/other --require-signed --trust-cert /data/sig/other.pem \
	--name other >/run/out 2>/run/err; then
	fail "an image signed by a key outside .fs-verity was imported"
fi
cat /run/err
grep -q "the kernel refused the image's signature" /run/err || fail "other: $(cat /run/err)"
[ -z "$(ls /data/store2/images)" ] || fail "the refused import left an image: $(ls /data/store2/images)"
$S2 fsck >/run/fsck2 2>&1 || fail "fsck after the refused import: $(cat /run/fsck2)"
$S2 import oci:/data/fx/signed --require-signed --trust-cert /data/sig/cert.pem \
	--name signed --json >/run/signed.import 2>/run/err || fail "signed: $(cat /run/err)"
d=$(jget digest /run/signed.import | tr -d '" ')
[ "$d" = "$(cat /data/sig/digest)" ] || fail "signed: image $d, the canonical image is $(cat /data/sig/digest)"
[ "$(jget signature_checked /run/signed.import)" = true ] || fail "signed: signature not checked"
fsverity dump_metadata signature "/data/store2/images/$d.cfs" >/run/sig.der 2>/run/err ||
	fail "the image's fs-verity metadata has no signature: $(cat /run/err)"
cmp /run/sig.der /data/sig/merged.sig || fail "the kernel holds another signature than fsverity sign's"
echo "  images/$d.cfs: fs-verity enabled with the signature ($(wc -c </run/sig.der) bytes)"
mkdir -p /mnt/signed
$S2 mount signed /mnt/signed >/run/out 2>&1 || fail "mount signed: $(cat /run/out)"
[ -d /mnt/signed/usr ] || fail "the signed image shows no /usr"
umount /mnt/signed || fail "umount signed"

step "fs.verity.require_signatures=1: unsigned files get no fs-verity"
echo 1 >/proc/sys/fs/verity/require_signatures || fail "require_signatures"
$S2 import oci:/data/fx/times --name times --json >/run/times.import 2>/run/err
rc=$?
echo 0 >/proc/sys/fs/verity/require_signatures
[ $rc -eq 0 ] || fail "times: $(cat /run/err)"
cat /run/times.import
[ "$(jget verity /run/times.import)" = false ] ||
	fail "times: fs-verity on unsigned objects with require_signatures=1"
[ "$(jget verity_error /run/times.import)" != null ] || fail "times: no verity_error"
echo "verity-test: ok"
