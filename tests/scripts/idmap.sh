#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# Idmapped mounts (issue 16): for user-namespaced containers (podman
# --userns, Kubernetes hostUsers: false) and rootless podman.
#
#  - cfs-store mount --idmap 0:100000:65536: seen from the host every
#    owner is the image's plus 100000; inside a user namespace with that
#    mapping (unshare --map-users) the tree lists exactly as the corpus'
#    expected listing (owners, modes, sizes, content hashes, hardlinks;
#    in-userns.py writes the maps, as podman does);
#    files read through the data-only layer.
#  - u:/g: entries map uids and gids apart; mount.cfs -o idmap= the same.
#  - ais sync --idmap: the AIS's image mounts are idmapped.
#  - refusals, one line, nothing mounted: a malformed map, an unknown
#    user, a user without subordinate ids.
#
# Needs root. Environment: CFS_BIN, CFS_SRC, CFS_TEST_TMP, CFS_CORPUS.
set -euo pipefail

# shellcheck source=tests/scripts/lib.sh
. "$(dirname "$0")/lib.sh"
test_init idmap CFS_SRC
cs=$CFS_BIN/cfs-store

need_root mount
need_tool python3 mountpoint
need_exec "$cs" "$CFS_BIN/mount.cfs"
corpus=$("$CFS_SRC/tests/scripts/need-corpus.sh")
# The user namespaces below see the host's root as nobody, so the mount
# point must be where anyone may go: not below the build directory,
# which may be in a private home or a mktemp -d.
public_dir idmap
mnt=$pub/mnt
tools=$pub/tools
mkdir -m 755 "$mnt" "$tools"
# (and so must the script the namespace runs: not read from the source
# tree, for the same reason)
cp "$CFS_SRC/tests/corpus/tree-listing.py" "$tools/"
chmod 644 "$tools/tree-listing.py"
S=("$cs" --root "$work/store")
listing() { python3 "$CFS_SRC/tests/corpus/tree-listing.py" "$@"; }

"${S[@]}" import "oci:$corpus/debian-minbase" --name mb >/dev/null

step "cfs-store mount --idmap: shifted on the host, the image's inside"
"${S[@]}" mount --idmap 0:100000:65536 mb "$mnt" || fail "mount --idmap"
listing "$mnt" >"$work/host.tsv"
python3 - "$corpus/expected/debian-minbase.tsv" "$work/host.tsv" <<'PY' || fail "host view: owners not shifted by 100000"
import sys
def rows(p):
    return {l.split('\t')[0]: l.rstrip('\n').split('\t') for l in open(p) if not l.startswith('#')}
want, got = rows(sys.argv[1]), rows(sys.argv[2])
assert want.keys() == got.keys(), set(want) ^ set(got)
for p, w in want.items():
    g = got[p]
    if p == '/':
        continue  # the mount point's root: the overlay's own
    assert int(g[3]) == int(w[3]) + 100000 and int(g[4]) == int(w[4]) + 100000, (p, w[3:5], g[3:5])
    assert g[2] == w[2] and g[5:] == w[5:], (p, w, g)
PY
userns() { python3 "$CFS_SRC/tests/scripts/in-userns.py" "$@"; }
userns 0:100000:65536 0:100000:65536 \
	python3 "$tools/tree-listing.py" "$mnt" >"$work/userns.tsv" ||
	fail "listing inside the user namespace"
diff <(grep -v '^/	' "$corpus/expected/debian-minbase.tsv") <(grep -v '^/	' "$work/userns.tsv") >"$work/diff" ||
	fail "inside the user namespace the tree differs from the image: $(head -5 "$work/diff")"
[ "$(stat -c %u:%g "$mnt/etc/shadow")" = "100000:$((100000 + $(awk -F'\t' '$1 == "/etc/shadow" { print $5 }' "$corpus/expected/debian-minbase.tsv")))" ] ||
	fail "/etc/shadow: $(stat -c %u:%g "$mnt/etc/shadow")"
"${S[@]}" umount "$mnt"

step "u: and g: apart; mount.cfs -o idmap="
img=$work/store/images/$("${S[@]}" inspect mb --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])').cfs
"$CFS_BIN/mount.cfs" "$img" "$mnt" -o "objects=$work/store/objects,idmap=u:0:2000:65536 g:0:3000:65536" ||
	fail "mount.cfs -o idmap="
[ "$(stat -c %u:%g "$mnt/etc/passwd")" = 2000:3000 ] || fail "mount.cfs idmap: /etc/passwd is $(stat -c %u:%g "$mnt/etc/passwd")"
cmp "$mnt/usr/bin/passwd" <(userns 0:2000:65536 0:3000:65536 cat "$mnt/usr/bin/passwd") ||
	fail "content differs inside the user namespace"
umount "$mnt"

step "ais sync --idmap"
"${S[@]}" ais sync --ais "$work/ais" --run "$work/run" --idmap 0:100000:65536 >/dev/null 2>&1 ||
	fail "ais sync --idmap"
d=$("${S[@]}" inspect mb --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')
[ "$(stat -c %u "$work/run/$d/etc/passwd")" = 100000 ] || fail "the AIS mount is not idmapped"
"${S[@]}" ais unmount-all --ais "$work/ais" --run "$work/run" >/dev/null
umount "$work/run" 2>/dev/null || true

step "refusals"
for bad in "0:100000" "x:0:1:1" "0:1:0" "user:cfs-no-such-user" "user:root" ""; do
	if "${S[@]}" mount --idmap "$bad" mb "$mnt" 2>"$work/err"; then
		fail "mounted with --idmap '$bad'"
	fi
	[ "$(wc -l <"$work/err")" -eq 1 ] || fail "--idmap '$bad': not one line: $(cat "$work/err")"
	grep -q idmap "$work/err" || fail "--idmap '$bad': $(cat "$work/err")"
	! mountpoint -q "$mnt" || fail "--idmap '$bad' left a mount"
done
"${S[@]}" fsck >/dev/null || fail "fsck"
echo "$me: ok"
