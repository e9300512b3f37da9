#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# cfs-store end to end on small OCI fixtures: usage errors (exit 2 and
# the "Try" line), --help/--version, import (twice: no new object, names
# added), list/inspect --json, digest prefixes and their ambiguity, tag
# and rm, gc --dry-run/--json, fsck finding and --repair'ing damage,
# --root anywhere, --platform passed through. As root, where a loop
# device with an ext4 "verity" file system can be made, also checks that
# fs-verity gets enabled on the objects and the image.
#
# Environment: CFS_BIN, CFS_SRC, CFS_TEST_TMP (see tests/CMakeLists.txt).
set -euo pipefail

. "$(dirname "$0")/lib.sh"
test_init store CFS_SRC
cs=$CFS_BIN/cfs-store
need_exec "$cs"
need_tool python3

mnt=
on_exit '[ -z "$mnt" ] || umount "$mnt" 2>/dev/null'

python3 "$CFS_SRC/tests/oci/make-fixtures.py" "$work/fx" >/dev/null
root=$work/store
S=("$cs" --root "$root")

step "usage"
# (into a file: grep -q stops reading at the first line, and the help
# is more than one write to a pipe)
"$cs" --help >"$work/help" || fail "--help exit $?"
grep -q "^Usage: cfs-store" "$work/help" || fail "--help"
"$cs" --version | grep -q "^cfs-store [0-9]" || fail "--version"
for args in "" "frobnicate" "import" "import a b" "list extra" "gc --verify" \
	"tag onlyone" "--bogus list" "import x --name -bad" "list --threads 2" \
	"gc --json --platform linux/amd64"; do
	set +e
	# shellcheck disable=SC2086
	"$cs" --root "$root" $args > "$work/out" 2> "$work/err"
	rc=$?
	set -e
	[ $rc -eq 2 ] || fail "'$args': exit $rc, want 2"
	grep -q "Try 'cfs-store --help' for more information." "$work/err" ||
		fail "'$args': no Try line"
done
set +e
"$cs" --root "$work/none" list > /dev/null 2> "$work/err"
rc=$?
set -e
[ $rc -eq 1 ] || fail "list of a missing store: exit $rc"
grep -q "^cfs-store: list: .*$work/none" "$work/err" || fail "error line: $(cat "$work/err")"

step "import"
"${S[@]}" import "oci:$work/fx/hardlinks" --name hl --json > "$work/imp1.json"
jcheck "j['verity'] or j['verity_error']" "verity neither on nor explained" < "$work/imp1.json"
d1=$(jget "j['digest']" < "$work/imp1.json")
[[ $d1 =~ ^[0-9a-f]{64}$ ]] || fail "import printed '$d1'"
[ -f "$root/images/$d1.cfs" ] && [ -f "$root/images/$d1.json" ] || fail "layout"
[ -f "$root/names.json" ] && [ -d "$root/tmp" ] && [ -f "$root/lock" ] || fail "layout"
[ -z "$(ls "$root/tmp")" ] || fail "tmp/ not empty after import"
nobj=$(find "$root/objects" -type f | wc -l)
# Again, --root after the command, two more names: nothing new written.
"$cs" import "oci:$work/fx/hardlinks" --root "$root" --name hl2 --name hl3 --json > "$work/imp2.json"
jcheck "j['digest'] == '$d1' and j['existed'] and j['objects_new'] == 0 and j['objects'] == $nobj" \
	"second import wrote objects" < "$work/imp2.json"
[ "$(find "$root/objects" -type f | wc -l)" -eq "$nobj" ] || fail "object count changed"
d2=$("${S[@]}" import --platform linux/amd64 "oci-archive:$work/fx/ociarchive.tar" --name xa)
d3=$("${S[@]}" import "oci:$work/fx/zstd")

step "list, inspect"
"${S[@]}" list --json > "$work/list.json"
jcheck "len(j) == 3 and sorted(x['digest'] for x in j) == sorted(['$d1','$d2','$d3'])" "list" < "$work/list.json"
jcheck "[x['names'] for x in j if x['digest'] == '$d1'] == [['hl','hl2','hl3']]" "names" < "$work/list.json"
jcheck "[x['names'] for x in j if x['digest'] == '$d3'] == [[]]" "unnamed" < "$work/list.json"
"${S[@]}" inspect hl2 --json > "$work/insp.json"
jcheck "j['digest'] == '$d1' and j['complete'] and j['source'] == 'oci:$work/fx/hardlinks'" "inspect" < "$work/insp.json"
jcheck "j['config_digest'].startswith('sha256:') and j['manifest_digest'].startswith('sha256:')" "digests" < "$work/insp.json"
jcheck "j['config']['rootfs']['type'] == 'layers' and j['objects'] == $nobj" "config" < "$work/insp.json"
jcheck "j['image_size'] == $(stat -c %s "$root/images/$d1.cfs")" "image_size" < "$work/insp.json"
"${S[@]}" inspect "${d2:0:10}" | grep -q "^digest: *$d2" || fail "inspect by prefix"
"${S[@]}" list | grep -q "^${d1:0:12} .*hl,hl2,hl3$" || fail "list text"

step "prefixes"
# Import dir: trees until two digests share a first digit.
declare -A first=()
amb=
for i in $(seq 1 17); do
	mkdir -p "$work/t$i"
	head -c 3000 /dev/zero | tr '\0' "$((i % 10))" > "$work/t$i/f"
	echo "tree $i" >> "$work/t$i/f"
	d=$("${S[@]}" import "dir:$work/t$i" --name "t$i")
	c=${d:0:1}
	if [ -n "${first[$c]:-}" ]; then
		amb=$c
		break
	fi
	first[$c]=$d
done
[ -n "$amb" ] || fail "no shared first digit"
set +e
"${S[@]}" inspect "$amb" > /dev/null 2> "$work/err"
rc=$?
set -e
[ $rc -eq 1 ] && grep -q "ambiguous" "$work/err" || fail "ambiguous prefix: exit $rc, $(cat "$work/err")"
"${S[@]}" inspect nosuchname > /dev/null 2>&1 && fail "unknown name resolved"

step "tag, rm"
"${S[@]}" tag "${d3:0:8}" zs
"${S[@]}" inspect zs --json | jcheck "j['digest'] == '$d3' and j['names'] == ['zs']" "tag"
"${S[@]}" rm hl2 hl3
"${S[@]}" inspect "$d1" --json | jcheck "j['names'] == ['hl']" "rm names"
"${S[@]}" rm zs
"${S[@]}" rm "${d2:0:12}" # a digest: all of its names
"${S[@]}" inspect "$d2" --json | jcheck "j['names'] == []" "rm digest"
"${S[@]}" rm nosuch 2> "$work/err" && fail "rm of an unknown name"
grep -q "^cfs-store: rm: nosuch" "$work/err" || fail "rm error line"

step "gc"
"${S[@]}" fsck --json | jcheck "j['ok'] and j['problems'] == []" "fsck before gc"
snap() { (cd "$root" && find . -type f -printf '%p %s\n' | sort; cat names.json); }
snap > "$work/before"
"${S[@]}" gc --dry-run --json > "$work/dry.json"
snap > "$work/after"
cmp -s "$work/before" "$work/after" || fail "gc --dry-run changed the store"
jcheck "j['dry_run'] and j['images'] == 2" "dry-run images" < "$work/dry.json"
jcheck "'images/$d2.cfs' in j['removed'] and 'images/$d3.cfs' in j['removed']" "dry-run list" < "$work/dry.json"
"${S[@]}" gc --json > "$work/gc.json"
jcheck "not j['dry_run'] and j['images'] == 2" "gc" < "$work/gc.json"
cmp <(jget "j['removed']" < "$work/dry.json") <(jget "j['removed']" < "$work/gc.json") ||
	fail "gc removed other things than --dry-run listed"
[ ! -e "$root/images/$d2.cfs" ] && [ ! -e "$root/images/$d3.json" ] || fail "gc left images"
"${S[@]}" gc --json | jcheck "j['removed'] == []" "second gc"
"${S[@]}" fsck --verify --json | jcheck "j['ok'] and j['images'] == $(ls "$root/images" | grep -c cfs)" "fsck after gc"

step "fsck, repair"
obj=$(find "$root/objects" -type f | sort | head -1)
printf 'X' | dd of="$obj" bs=1 seek=5 conv=notrunc status=none
echo junk > "$root/tmp/stray"
"${S[@]}" fsck --json > "$work/f1.json" && fail "fsck without --verify: exit 0 with a stray file"
jcheck "not j['ok'] and [p['kind'] for p in j['problems']] == ['stray-file']" "fsck" < "$work/f1.json"
set +e
"${S[@]}" fsck --verify > "$work/f2.txt" 2> "$work/err"
rc=$?
set -e
[ $rc -eq 1 ] || fail "fsck --verify: exit $rc"
grep -q "corrupt-object" "$work/f2.txt" || fail "bit flip not found"
grep -q "^cfs-store: fsck: [0-9]* problems" "$work/err" || fail "fsck error line"
"${S[@]}" fsck --verify --repair --json > "$work/f3.json"
jcheck "j['ok'] and all(p['repaired'] for p in j['problems']) and len(j['problems']) >= 3" "repair" < "$work/f3.json"
[ ! -e "$obj" ] && [ ! -e "$root/tmp/stray" ] || fail "repair left damage"
"${S[@]}" fsck --verify --json | jcheck "j['ok'] and j['problems'] == []" "fsck after repair"

# A stale temporary of a dead writer is cleaned, not a problem.
mkdir -p "$root/tmp/w-999999-0000000000000000"
echo x > "$root/tmp/w-999999-0000000000000000/image.cfs"
"${S[@]}" fsck --json | jcheck "j['ok'] and j['cleaned'] == ['tmp/w-999999-0000000000000000']" "stale temp"

step "blobs: raw configs and manifests"
# repair took hl with its damaged object: import it again.
"${S[@]}" import "oci:$work/fx/hardlinks" --name hl > /dev/null
"${S[@]}" gc > /dev/null
cfg=$("${S[@]}" inspect hl --json | jget "j['config_digest']")
man=$("${S[@]}" inspect hl --json | jget "j['manifest_digest']")
for b in "$cfg" "$man"; do
	f=$root/blobs/sha256/${b#sha256:}
	[ -f "$f" ] || fail "no blob $b"
	[ "sha256:$(sha256sum < "$f" | cut -d' ' -f1)" = "$b" ] || fail "blob $b has other content"
done
jcheck "j['version'] == 2 and j['names']['hl'] == {'image': '$d1', 'config': '$cfg', 'manifest': '$man'}" \
	"names.json v2 entry" < "$root/names.json"
jcheck "list(j['names']['t1']) == ['image']" "a dir: import's name has no config" < "$root/names.json"
# gc took the blobs of the images it removed.
[ "$(ls "$root/blobs/sha256" | sort)" = "$(printf '%s\n' "${cfg#sha256:}" "${man#sha256:}" | sort)" ] ||
	fail "blobs after gc: $(ls "$root/blobs/sha256")"
"${S[@]}" tag hl hl4
"${S[@]}" inspect hl4 --json | jcheck "j['config_digest'] == '$cfg' and j['manifest_digest'] == '$man'" "tag keeps the config"
"${S[@]}" rm hl4
# A version 1 names.json (NAME: DIGEST) is read; the next change writes 2.
cp -a "$root" "$work/old"
printf '{"version": 1, "names": {"hl-old": "%s"}}\n' "$d1" > "$work/old/names.json"
"$cs" --root "$work/old" list | grep -q "hl-old$" || fail "v1 names not listed"
"$cs" --root "$work/old" inspect hl-old --json | jcheck "j['config_digest'] == '$cfg'" "v1 inspect"
"$cs" --root "$work/old" tag hl-old hl-new
jcheck "j['version'] == 2 and j['names']['hl-new']['config'] == '$cfg'" "v1 -> v2" < "$work/old/names.json"
"$cs" --root "$work/old" fsck --verify --json | jcheck "j['ok']" "fsck of the converted store"
# A damaged config: fsck names the blob and the name it breaks.
printf 'X' | dd of="$root/blobs/sha256/${cfg#sha256:}" bs=1 seek=3 conv=notrunc status=none
"${S[@]}" inspect hl > /dev/null 2> "$work/err" && fail "inspect with a damaged config"
grep -q "${cfg#sha256:}: content has digest" "$work/err" || fail "inspect error: $(cat "$work/err")"
"${S[@]}" fsck --json > "$work/f4.json" && fail "fsck: exit 0 with a damaged blob"
jcheck "sorted(p['kind'] for p in j['problems']) == ['corrupt-blob', 'missing-blob']" "blob problems" < "$work/f4.json"
jcheck "[p['path'] for p in j['problems'] if p['kind'] == 'missing-blob'] == ['hl']" "missing-blob path" < "$work/f4.json"
"${S[@]}" fsck --repair --json | jcheck "j['ok'] and all(p['repaired'] for p in j['problems'])" "blob repair"
[ ! -e "$root/blobs/sha256/${cfg#sha256:}" ] || fail "repair kept the damaged blob"
"${S[@]}" inspect hl > /dev/null 2>&1 && fail "repair kept the name of the damaged config"
"${S[@]}" import "oci:$work/fx/hardlinks" --name hl > /dev/null
"${S[@]}" inspect hl --json | jcheck "j['config_digest'] == '$cfg'" "re-import restores the config"
"${S[@]}" fsck --verify --json | jcheck "j['ok'] and j['problems'] == []" "fsck after re-import"

step "verity"
if [ "$(id -u)" -eq 0 ] && command -v mkfs.ext4 > /dev/null; then
	truncate -s 128M "$work/ext4.img"
	mkdir "$work/mnt"
	if mkfs.ext4 -q -b 4096 -O verity "$work/ext4.img" 2>/dev/null &&
		mount -o loop "$work/ext4.img" "$work/mnt" 2>/dev/null; then
		mnt=$work/mnt
		echo probe > "$mnt/probe"
	fi
	if [ -n "$mnt" ] && fsverity enable "$mnt/probe" 2>/dev/null; then
		"$cs" --root "$mnt/store" import "oci:$work/fx/hardlinks" --name v --json > "$work/v.json"
		jcheck "j['verity'] and j['verity_enabled'] == j['objects'] + 1 and j['verity_error'] is None" \
			"fs-verity not enabled on a verity file system" < "$work/v.json"
		vd=$(jget "j['digest']" < "$work/v.json")
		[ "$(fsverity measure "$mnt/store/images/$vd.cfs" | cut -d' ' -f1)" = "sha256:$vd" ] ||
			fail "kernel's measure differs from the image name"
		"$cs" --root "$mnt/store" inspect v --json | jcheck "j['verity']" "metadata verity"
		"$cs" --root "$mnt/store" fsck --verify --json | jcheck "j['ok']" "fsck on verity"
	else
		echo "$me: no fs-verity here (kernel or loop device); checked the unavailable path only"
	fi
	if [ -n "$mnt" ]; then
		umount "$mnt"
		mnt=
	fi
fi
echo "$me: ok"
