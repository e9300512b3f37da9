#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# Faults (issue 7): kill -9 of import, rm, gc and `ais sync` at random
# moments, 62 kills in all with a fixed seed. Each moment is a random
# fraction of the operation's duration, measured unkilled (once; for ais
# sync the shortest of four syncs).
#
#  1. CYCLES (10) cycles of four kills each, on a store that also
#     holds a small "bystander" image throughout:
#       import debian-minbase --name victim   (killed, then repeated)
#       import debian-minbase --name again    (killed; it builds from
#                                              the layer record)
#       rm victim                             (killed, then repeated)
#       gc                                    (killed, then repeated)
#     After each kill, `fsck` reports no problem (stale temporaries are
#     cleaned, which is not one). The repeated operation must succeed:
#     the import prints the digest measured unkilled and the name
#     resolves to a complete image; rm takes the name (or finds it gone
#     if the killed rm got that far: the only refusal accepted); gc
#     leaves exactly the files of the bystander alone, its layer record
#     included (compared with a snapshot taken after the measurement's
#     gc).
#  2. AIS_KILLS (22) kills of `ais sync` (store images of six small OCI
#     images and their aliases; before each kill each name is flipped,
#     present or not, with probability 3/4, so a sync both mounts and
#     unmounts): after each kill the AIS is consistent (images.json and
#     layers.json parse; every image has its big-data files with the
#     sizes and digests the JSON gives and a layer in layers.json; every
#     layer has link, diff and l/<short>, all pointing at a mount of the
#     store in RUN), fsck is clean, a repeated sync succeeds, and then
#     the AIS lists exactly the store's names and RUN holds exactly
#     their mounts.
#  3. At the end `fsck --verify` is clean and the bystander is intact.
#
# The store is on a tmpfs of its own (kill -9 is about the process, not
# the disk: a tmpfs keeps the measured durations steady under a loaded
# CI machine), RUN on another (ais sync requires tmpfs). Needs root.
# Environment: CFS_BIN, CFS_SRC, CFS_TESTS, CFS_TEST_TMP, CFS_CORPUS.
set -euo pipefail

# shellcheck source=tests/scripts/lib.sh
. "$(dirname "$0")/lib.sh"
test_init faults-kill CFS_SRC
cs=$CFS_BIN/cfs-store
CYCLES=${FAULTS_KILL_CYCLES:-10} # four kills each
AIS_KILLS=${FAULTS_KILL_AIS:-22}
RANDOM=7007 # fixed seed: the same kill moments on every run

need_root "tmpfs and image mounts"
need_tool python3 mountpoint
need_exec "$cs"
corpus=$("$CFS_SRC/tests/scripts/need-corpus.sh")

fs=$work/fs
run=$work/run
mkdir -p "$fs" "$run"
mount -t tmpfs -o size=2g,mode=0755 faults-kill-store "$fs"
mount -t tmpfs -o size=1m,mode=0755 faults-kill-run "$run"
root=$fs/store
ais=$fs/ais
S=("$cs" --root "$root")
A=(--ais "$ais" --run "$run")

# Small OCI layouts: N files of random sizes, one uncompressed layer, a
# config with a Cmd; different SEEDs give disjoint content.
tiny_image() { # DIR SEED N
	python3 "$CFS_SRC/tests/scripts/tiny-oci.py" "$@" --cmd
}

# The files of the store that matter, with sizes (tmp/, locks and mount
# records left out).
snapshot() {
	(cd "$root" && find objects images blobs layers -type f -printf '%p %s\n' | sort
		cat names.json 2>/dev/null || true)
}

# ais_check [NAME,NAME...]: the AIS is consistent; with names, it lists
# exactly those (as podman spells them) and RUN holds exactly their
# store images' mounts.
ais_check() {
	python3 - "$ais" "$run" "${1:-}" <<'EOF' || fail "AIS: ${2:-inconsistent}"
import base64, hashlib, json, os, re, sys
ais, run, want = sys.argv[1], sys.argv[2], sys.argv[3]
bad = []
hexre = re.compile(r"^[0-9a-f]{64}$")
def load(p):
    try:
        with open(p) as f:
            return json.load(f)
    except Exception as e:
        sys.exit(f"{p}: does not parse: {e}")
images = load(f"{ais}/overlay-images/images.json")
layers = load(f"{ais}/overlay-layers/layers.json")
if not isinstance(images, list) or not isinstance(layers, list):
    sys.exit("images.json or layers.json is not an array")
lids, targets = set(), set()
for l in layers:
    lid = l.get("id", "")
    if not hexre.match(lid) or not l.get("diff-digest"):
        bad.append(f"layer {l}: bad id or no diff-digest")
        continue
    lids.add(lid)
    d = f"{ais}/overlay/{lid}"
    try:
        short = open(f"{d}/link").read()
        diff = os.readlink(f"{d}/diff")
        lnk = os.readlink(f"{ais}/overlay/l/{short}")
    except OSError as e:
        bad.append(f"layer {lid}: {e}")
        continue
    if not re.match(r"^[A-Z2-7]{26}$", short):
        bad.append(f"layer {lid}: link '{short}'")
    if diff != lnk or os.path.dirname(diff) != run:
        bad.append(f"layer {lid}: diff -> {diff}, l/{short} -> {lnk}")
    elif not os.path.ismount(diff):
        bad.append(f"layer {lid}: {diff} is not mounted")
    targets.add(diff)
names = set()
for im in images:
    iid = im.get("id", "")
    if not hexre.match(iid):
        bad.append(f"image id '{iid}'")
        continue
    if im.get("layer") not in lids:
        bad.append(f"image {iid}: layer {im.get('layer')} not in layers.json")
    names.update(im.get("names") or [])
    for k in im.get("big-data-names", []):
        p = f"{ais}/overlay-images/{iid}/" + ("=" + base64.b64encode(k.encode()).decode() if k != "manifest" else "manifest")
        try:
            data = open(p, "rb").read()
        except OSError as e:
            bad.append(f"image {iid}: big-data {k}: {e}")
            continue
        if len(data) != im["big-data-sizes"][k]:
            bad.append(f"image {iid}: big-data {k}: {len(data)} bytes, JSON says {im['big-data-sizes'][k]}")
        if "sha256:" + hashlib.sha256(data).hexdigest() != im["big-data-digests"][k]:
            bad.append(f"image {iid}: big-data {k}: digest differs from the JSON's")
    if "sha256:" + iid not in im.get("big-data-names", []) or "manifest" not in im.get("big-data-names", []):
        bad.append(f"image {iid}: no config or manifest big-data")
if want:
    exp = {f"localhost/{n}:latest" for n in want.split(",")}
    if names != exp:
        bad.append(f"names {sorted(names)}, want {sorted(exp)}")
    ent = {os.path.join(run, e) for e in os.listdir(run)}
    if ent != targets:
        bad.append(f"RUN holds {sorted(ent)}, the layers use {sorted(targets)}")
for b in bad:
    print("ais:", b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
}

step "set-up: images"
tiny_image "$work/bystander" 100 40
for t in 1 2 3 4 5 6; do tiny_image "$work/t$t" "$t" 20; done
bystander=$("${S[@]}" import "oci:$work/bystander" --name bystander)
victim_src="oci:$corpus/debian-minbase"

step "measure import, rm and gc unkilled"
t0=$(us_now)
victim=$("${S[@]}" import "$victim_src" --name victim)
t_import=$(($(us_now) - t0))
# The same layer again, from its record (docs/store.md, "Layer records").
t0=$(us_now)
"${S[@]}" import "$victim_src" --name again --json >"$work/again.json"
t_again=$(($(us_now) - t0))
jcheck "j['layers'][0]['source'] == 'record'" "the second import did not use the layer record" <"$work/again.json"
"${S[@]}" rm again
t0=$(us_now)
"${S[@]}" rm victim
t_rm=$(($(us_now) - t0))
t0=$(us_now)
"${S[@]}" gc >/dev/null
t_gc=$(($(us_now) - t0))
echo "$me: import $(us_secs $t_import) s, again from its record $(us_secs $t_again) s, rm $(us_secs $t_rm) s, gc $(us_secs $t_gc) s"
snapshot >"$work/baseline"
grep -q "^images/$bystander.cfs " "$work/baseline" || fail "no bystander in the baseline"
[ "$(grep -c '^objects/' "$work/baseline")" -ge 30 ] || fail "baseline: too few objects"
fsck_clean "$root" "baseline"

step "$CYCLES cycles: kill import, rm, gc; repeat each"
# The checks after each kill of cycle $i (kill_trial's CHECK; rc is the
# killed command's exit status).
import_repeated() {
	got=$("${S[@]}" import "$victim_src" --name victim) || fail "cycle $i: import after the kill failed"
	[ "$got" = "$victim" ] || fail "cycle $i: import gave $got, unkilled $victim"
	"${S[@]}" inspect victim --json | jcheck "j['complete'] and j['digest'] == '$victim' and j['names'] == ['victim']" \
		"cycle $i: victim after the repeated import"
	echo "$me: cycle $i: import repeated, complete"
	"${S[@]}" fsck --json | jcheck "j['records'] >= 2" "cycle $i: the victim's layer record is missing"
}
again_dropped() {
	if "${S[@]}" inspect again >/dev/null 2>&1; then
		"${S[@]}" rm again
	fi
}
rm_repeated() {
	local r
	if "${S[@]}" inspect victim >/dev/null 2>&1; then
		[ "$rc" -ne 0 ] || fail "cycle $i: rm exited 0 and the name is still there"
		"${S[@]}" rm victim 2>"$work/err" || fail "cycle $i: rm after the kill: $(cat "$work/err")"
		r=repeated
	else
		# The killed rm got as far as the rename of names.json: a
		# repeated rm is refused, the name being gone (exit 1, one line).
		r=0
		"${S[@]}" rm victim 2>"$work/err" || r=$?
		{ [ $r -eq 1 ] && grep -q "^cfs-store: rm: victim" "$work/err"; } ||
			fail "cycle $i: rm of the removed name: exit $r, $(cat "$work/err")"
		r="had removed the name"
	fi
	"${S[@]}" inspect victim >/dev/null 2>&1 && fail "cycle $i: the name victim survived rm"
	"${S[@]}" inspect bystander --json | jcheck "j['digest'] == '$bystander' and j['complete']" \
		"cycle $i: bystander after rm"
	echo "$me: cycle $i: rm $r"
}
gc_repeated() {
	"${S[@]}" gc >/dev/null 2>"$work/err" || fail "cycle $i: gc after the kill: $(cat "$work/err")"
	snapshot >"$work/now"
	diff "$work/baseline" "$work/now" >"$work/diff" ||
		fail "cycle $i: the store after the repeated gc differs from the baseline: $(head -5 "$work/diff")"
	[ -z "$(ls "$root/tmp")" ] || fail "cycle $i: tmp/ not empty after gc: $(ls "$root/tmp")"
	fsck_clean "$root" "cycle $i: repeated gc"
	echo "$me: cycle $i: gc repeated: baseline again, fsck clean"
}
kills_landed=0
for i in $(seq 1 "$CYCLES"); do
	kill_trial "$root" "$t_import" "cycle $i: import" import_repeated \
		"${S[@]}" import "$victim_src" --name victim
	# an import that builds from the layer record
	kill_trial "$root" "$t_again" "cycle $i: import from the record" again_dropped \
		"${S[@]}" import "$victim_src" --name again
	kill_trial "$root" "$t_rm" "cycle $i: rm" rm_repeated "${S[@]}" rm victim
	kill_trial "$root" "$t_gc" "cycle $i: gc" gc_repeated "${S[@]}" gc
done
echo "$me: $kills_landed of $((4 * CYCLES)) kills landed before the operation ended"
# Only a sanity check of the measurements (most rm kills come late).
[ "$kills_landed" -ge $((CYCLES / 2)) ] || fail "too few kills landed mid-operation"

step "ais sync: measure"
all=()
declare -A digest=()
for t in 1 2 3 4 5 6; do
	digest[t$t]=$("${S[@]}" import "oci:$work/t$t")
	all+=("t$t")
done
# Every name: t1..t6 (each image's own) and a1..a3 (aliases of t1..t3).
set_names() { # NAME...: make exactly these names of t1..t6/a1..a3 exist
	local n want have gone=()
	have=" $(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["names"]))' "$root/names.json") "
	for n in t1 t2 t3 t4 t5 t6 a1 a2 a3; do
		want=0
		[[ " $* " == *" $n "* ]] && want=1
		if [[ $have == *" $n "* ]]; then
			[ $want -eq 1 ] || gone+=("$n")
		elif [ $want -eq 1 ]; then
			if [[ $n == a* ]]; then
				"${S[@]}" tag "${digest[t${n#a}]}" "$n"
			else
				"${S[@]}" tag "${digest[$n]}" "$n"
			fi
		fi
	done
	[ ${#gone[@]} -eq 0 ] || "${S[@]}" rm "${gone[@]}"
}
names_csv() { # NAME...: the AIS's expected names, comma separated
	printf '%s\n' bystander "$@" | sort | paste -sd,
}
"${S[@]}" ais sync "${A[@]}" >/dev/null
ais_check "bystander" "after the first sync"
# All six mounted, all six unmounted, twice: the shortest of the four
# (a slow outlier on a loaded machine would put most kills after the end).
times=()
for r in 1 2; do
	set_names "${all[@]}" a1 a2 a3
	t0=$(us_now)
	"${S[@]}" ais sync "${A[@]}" >"$work/out"
	times+=($(($(us_now) - t0)))
	grep -q "^7 images (6 newly mounted)" "$work/out" || fail "sync: $(cat "$work/out")"
	# The aliases share the image and config of t1..t3: one AIS image each.
	ais_check "$(names_csv "${all[@]}" a1 a2 a3)" "after the measured sync"
	set_names
	t0=$(us_now)
	"${S[@]}" ais sync "${A[@]}" >"$work/out"
	times+=($(($(us_now) - t0)))
	grep -q "^1 images (0 newly mounted).* 6 removed" "$work/out" || fail "sync: $(cat "$work/out")"
	ais_check "bystander" "after removing all names"
done
t_sync=$(printf '%s\n' "${times[@]}" | sort -n | head -1)
echo "$me: ais sync of 6 images: $(us_secs "$t_sync") s (shortest of $(printf '%s ' "${times[@]}")us)"

step "$AIS_KILLS kills of ais sync"
# After ais kill $i: the AIS is consistent, and a repeated sync makes it
# list exactly the names in want.
sync_repeated() {
	ais_check "" "ais kill $i after $(us_secs "$kill_us") s ($kill_outcome): inconsistent"
	"${S[@]}" ais sync "${A[@]}" >"$work/out" 2>"$work/err" ||
		fail "ais kill $i: the repeated sync failed: $(cat "$work/err")"
	ais_check "$(names_csv "${want[@]}")" "ais kill $i: after the repeated sync"
	echo "$me: ais kill $i: AIS consistent; repeated: $(head -1 "$work/out")"
}
kills_landed=0
have=" "
for i in $(seq 1 "$AIS_KILLS"); do
	want=()
	for n in t1 t2 t3 t4 t5 t6 a1 a2 a3; do
		flip=$((RANDOM % 4 != 0))
		if [[ $have == *" $n "* ]]; then
			[ $flip -eq 1 ] || want+=("$n")
		else
			[ $flip -eq 0 ] || want+=("$n")
		fi
	done
	have=" ${want[*]} "
	set_names "${want[@]}"
	kill_trial "$root" "$t_sync" "ais kill $i: ais sync" sync_repeated "${S[@]}" ais sync "${A[@]}"
done
echo "$me: $kills_landed of $AIS_KILLS ais kills landed before the sync ended"
# Only a sanity check of the measurement: load varies.
[ "$kills_landed" -ge 2 ] || fail "fewer than 2 ais kills landed mid-sync"

step "the end: unmount-all, fsck --verify, the bystander"
"${S[@]}" ais unmount-all "${A[@]}" >/dev/null || fail "ais unmount-all"
[ -z "$(ls "$run")" ] || fail "RUN not empty after unmount-all: $(ls "$run")"
fsck_clean "$root" "final" --verify
"${S[@]}" inspect bystander --json | jcheck "j['digest'] == '$bystander' and j['complete']" "bystander at the end"
echo "$me: ok ($((4 * CYCLES + AIS_KILLS)) kills)"
