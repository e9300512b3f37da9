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

me=faults-kill
: "${CFS_BIN:?}" "${CFS_SRC:?}" "${CFS_TEST_TMP:?}"
# shellcheck source=tests/scripts/lib.sh
. "$CFS_SRC/tests/scripts/lib.sh"
cs=$CFS_BIN/cfs-store
CYCLES=${FAULTS_KILL_CYCLES:-10} # three kills each
AIS_KILLS=${FAULTS_KILL_AIS:-22}
RANDOM=7007 # fixed seed: the same kill moments on every run

fail() {
	echo "$me: FAIL: $*" >&2
	exit 1
}
step() { echo "== $me: [${SECONDS}s] $*"; }

[ "$(id -u)" -eq 0 ] || fail "must run as root (tmpfs and image mounts)"
for tool in python3 mountpoint; do
	command -v "$tool" >/dev/null || fail "required tool '$tool' is not installed"
done
corpus=$("$CFS_SRC/tests/scripts/need-corpus.sh")

mkdir -p "$CFS_TEST_TMP"
work=$(mktemp -d "$(realpath "$CFS_TEST_TMP")/$me.XXXXXX")
pids=()
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	# Image mounts in RUN, then RUN and the store's tmpfs: deepest first.
	remove_work "$work" || rc=1
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fs=$work/fs
run=$work/run
mkdir -p "$fs" "$run"
mount -t tmpfs -o size=2g,mode=0755 faults-kill-store "$fs"
mount -t tmpfs -o size=1m,mode=0755 faults-kill-run "$run"
root=$fs/store
ais=$fs/ais
S=("$cs" --root "$root")
A=(--ais "$ais" --run "$run")

jcheck() { # EXPR what < json
	python3 -c 'import json,sys; j=json.load(sys.stdin); sys.exit(0 if eval(sys.argv[1]) else 1)' "$1" ||
		fail "$2"
}
jget() { python3 -c 'import json,sys; j=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

fsck_clean() { # what [--verify]
	local out=$work/fsck.json rc=0
	"${S[@]}" fsck ${2:-} --json >"$out" 2>"$work/fsck.err" || rc=$?
	[ $rc -eq 0 ] || fail "$1: fsck exit $rc: $(cat "$out" "$work/fsck.err")"
	jcheck "j['ok'] and j['problems'] == []" "$1: fsck found problems: $(cat "$out")" <"$out"
}

now_us() { echo $(($(date +%s%N) / 1000)); }
secs() { printf '%d.%06d' $(($1 / 1000000)) $(($1 % 1000000)); }
# A random number of microseconds in [0, $1] ($RANDOM has 15 bits).
random_us() { echo $(((RANDOM * 32768 + RANDOM) % ($1 + 1))); }

# killed DELAY_US CMD...: run CMD, kill -9 it after DELAY_US. Sets rc:
# 137 if the kill landed, 0 if CMD was done by then; anything else
# (CMD failed on its own) fails the test.
killed() {
	local delay=$1 pid
	shift
	"$@" >"$work/k.out" 2>"$work/k.err" &
	pid=$!
	pids=("$pid")
	sleep "$(secs "$delay")"
	kill -9 "$pid" 2>/dev/null || true
	rc=0
	# (braces: no "Killed" line from the shell)
	{ wait "$pid"; } 2>/dev/null || rc=$?
	pids=()
	[ $rc -eq 0 ] || [ $rc -eq 137 ] || fail "$* failed on its own (exit $rc): $(cat "$work/k.err")"
}
outcome() { [ $rc -eq 0 ] && echo "completed" || echo "killed"; }

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
t0=$(now_us)
victim=$("${S[@]}" import "$victim_src" --name victim)
t_import=$(($(now_us) - t0))
# The same layer again, from its record (docs/store.md, "Layer records").
t0=$(now_us)
"${S[@]}" import "$victim_src" --name again --json >"$work/again.json"
t_again=$(($(now_us) - t0))
jcheck "j['layers'][0]['source'] == 'record'" "the second import did not use the layer record" <"$work/again.json"
"${S[@]}" rm again
t0=$(now_us)
"${S[@]}" rm victim
t_rm=$(($(now_us) - t0))
t0=$(now_us)
"${S[@]}" gc >/dev/null
t_gc=$(($(now_us) - t0))
echo "$me: import $(secs $t_import) s, again from its record $(secs $t_again) s, rm $(secs $t_rm) s, gc $(secs $t_gc) s"
snapshot >"$work/baseline"
grep -q "^images/$bystander.cfs " "$work/baseline" || fail "no bystander in the baseline"
[ "$(grep -c '^objects/' "$work/baseline")" -ge 30 ] || fail "baseline: too few objects"
fsck_clean "baseline"

step "$CYCLES cycles: kill import, rm, gc; repeat each"
killed_n=0
for i in $(seq 1 "$CYCLES"); do
	# import
	d=$(random_us "$t_import")
	killed "$d" "${S[@]}" import "$victim_src" --name victim
	[ $rc -eq 137 ] && killed_n=$((killed_n + 1))
	fsck_clean "cycle $i: import killed after $(secs "$d") s"
	got=$("${S[@]}" import "$victim_src" --name victim) || fail "cycle $i: import after the kill failed"
	[ "$got" = "$victim" ] || fail "cycle $i: import gave $got, unkilled $victim"
	"${S[@]}" inspect victim --json | jcheck "j['complete'] and j['digest'] == '$victim' and j['names'] == ['victim']" \
		"cycle $i: victim after the repeated import"
	echo "$me: cycle $i: import $(outcome) after $(secs "$d") s; fsck clean; repeated, complete"
	"${S[@]}" fsck --json | jcheck "j['records'] >= 2" "cycle $i: the victim's layer record is missing"
	# an import that builds from the layer record
	d=$(random_us "$t_again")
	killed "$d" "${S[@]}" import "$victim_src" --name again
	[ $rc -eq 137 ] && killed_n=$((killed_n + 1))
	fsck_clean "cycle $i: import from the record killed after $(secs "$d") s"
	if "${S[@]}" inspect again >/dev/null 2>&1; then
		"${S[@]}" rm again
	fi
	echo "$me: cycle $i: import from the record $(outcome) after $(secs "$d") s; fsck clean"
	# rm
	d=$(random_us "$t_rm")
	killed "$d" "${S[@]}" rm victim
	[ $rc -eq 137 ] && killed_n=$((killed_n + 1))
	fsck_clean "cycle $i: rm killed after $(secs "$d") s"
	if "${S[@]}" inspect victim >/dev/null 2>&1; then
		[ $rc -ne 0 ] || fail "cycle $i: rm exited 0 and the name is still there"
		"${S[@]}" rm victim 2>"$work/err" || fail "cycle $i: rm after the kill: $(cat "$work/err")"
		r=repeated
	else
		# The killed rm got as far as the rename of names.json: a
		# repeated rm is refused, the name being gone (exit 1, one line).
		r=0
		"${S[@]}" rm victim 2>"$work/err" || r=$?
		[ $r -eq 1 ] && grep -q "^cfs-store: rm: victim" "$work/err" ||
			fail "cycle $i: rm of the removed name: exit $r, $(cat "$work/err")"
		r="had removed the name"
	fi
	"${S[@]}" inspect victim >/dev/null 2>&1 && fail "cycle $i: the name victim survived rm"
	"${S[@]}" inspect bystander --json | jcheck "j['digest'] == '$bystander' and j['complete']" \
		"cycle $i: bystander after rm"
	echo "$me: cycle $i: rm $(outcome) after $(secs "$d") s; fsck clean; $r"
	# gc
	d=$(random_us "$t_gc")
	killed "$d" "${S[@]}" gc
	[ $rc -eq 137 ] && killed_n=$((killed_n + 1))
	fsck_clean "cycle $i: gc killed after $(secs "$d") s"
	"${S[@]}" gc >/dev/null 2>"$work/err" || fail "cycle $i: gc after the kill: $(cat "$work/err")"
	snapshot >"$work/now"
	diff "$work/baseline" "$work/now" >"$work/diff" ||
		fail "cycle $i: the store after the repeated gc differs from the baseline: $(head -5 "$work/diff")"
	[ -z "$(ls "$root/tmp")" ] || fail "cycle $i: tmp/ not empty after gc: $(ls "$root/tmp")"
	fsck_clean "cycle $i: repeated gc"
	echo "$me: cycle $i: gc $(outcome) after $(secs "$d") s; fsck clean; repeated: baseline again, fsck clean"
done
echo "$me: $killed_n of $((4 * CYCLES)) kills landed before the operation ended"
# Only a sanity check of the measurements (most rm kills come late).
[ $killed_n -ge $((CYCLES / 2)) ] || fail "too few kills landed mid-operation"

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
	t0=$(now_us)
	"${S[@]}" ais sync "${A[@]}" >"$work/out"
	times+=($(($(now_us) - t0)))
	grep -q "^7 images (6 newly mounted)" "$work/out" || fail "sync: $(cat "$work/out")"
	# The aliases share the image and config of t1..t3: one AIS image each.
	ais_check "$(names_csv "${all[@]}" a1 a2 a3)" "after the measured sync"
	set_names
	t0=$(now_us)
	"${S[@]}" ais sync "${A[@]}" >"$work/out"
	times+=($(($(now_us) - t0)))
	grep -q "^1 images (0 newly mounted).* 6 removed" "$work/out" || fail "sync: $(cat "$work/out")"
	ais_check "bystander" "after removing all names"
done
t_sync=$(printf '%s\n' "${times[@]}" | sort -n | head -1)
echo "$me: ais sync of 6 images: $(secs "$t_sync") s (shortest of $(printf '%s ' "${times[@]}")us)"

step "$AIS_KILLS kills of ais sync"
killed_ais=0
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
	d=$(random_us "$t_sync")
	killed "$d" "${S[@]}" ais sync "${A[@]}"
	[ $rc -eq 137 ] && killed_ais=$((killed_ais + 1))
	ais_check "" "kill $i after $(secs "$d") s ($(outcome)): inconsistent"
	fsck_clean "ais kill $i"
	"${S[@]}" ais sync "${A[@]}" >"$work/out" 2>"$work/err" ||
		fail "ais kill $i: the repeated sync failed: $(cat "$work/err")"
	ais_check "$(names_csv "${want[@]}")" "kill $i: after the repeated sync"
	echo "$me: ais kill $i after $(secs "$d") s: $(outcome); AIS consistent; repeated: $(head -1 "$work/out")"
done
echo "$me: $killed_ais of $AIS_KILLS ais kills landed before the sync ended"
# Only a sanity check of the measurement: load varies.
[ $killed_ais -ge 2 ] || fail "fewer than 2 ais kills landed mid-sync"

step "the end: unmount-all, fsck --verify, the bystander"
"${S[@]}" ais unmount-all "${A[@]}" >/dev/null || fail "ais unmount-all"
[ -z "$(ls "$run")" ] || fail "RUN not empty after unmount-all: $(ls "$run")"
fsck_clean "final" --verify
"${S[@]}" inspect bystander --json | jcheck "j['digest'] == '$bystander' and j['complete']" "bystander at the end"
echo "$me: ok ($((3 * CYCLES + AIS_KILLS)) kills)"
