#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# Hostile OCI images (issue 7): the fixtures of tests/oci/make-hostile.py
# converted with oci2cfs, and the should-fail ones imported with cfs-store.
#
# Accepted fixtures: exit 0, nothing on stderr, the dump shows what the
# generator expects (make-hostile.py check), fsck.erofs accepts the image,
# --print-digest is its fs-verity digest, a second conversion with one
# thread gives the same bytes, and the image reads back (cfs:IMAGE) to the
# same dump and the same bytes, as does the dump (dump:FILE). The gzip
# bomb (2 GiB of zeros), the 200,000-entry directory and the 1 TiB sparse
# file also have their peak RSS measured with /usr/bin/time -v and bounded
# (RSS_MAX_KB); the sparse file's objects, their disk use (alloc_max_kb).
#
# Refused fixtures: exit 1, nothing on stdout, one line on stderr,
# "oci2cfs: SOURCE: ..." with every substring the generator expects, no
# output image or temporary file left, only complete objects in the
# object directory; and "cfs-store import" of the same source exits 1
# with one line and leaves the store as it was (same files, fsck clean).
#
# Every conversion runs under a time limit (cases.tsv). A fixture marked
# with a known bug (make-hostile.py; each is listed under "Known gaps" in
# docs/security.md and stays an open item of issue 7) must still fail,
# and is reported as "XFAIL ... (known bug: ...)" with what it did; one
# that passes fails the test as "FIXED", so that the mark and the
# docs/security.md entry go with the fix.
#
# Environment: CFS_BIN, CFS_SRC, CFS_TEST_TMP (see tests/CMakeLists.txt);
# HOSTILE_NO_BOMB=1 leaves the 2 GiB bomb out and HOSTILE_ONLY=REGEX runs
# only the fixtures whose name matches (quick runs by hand).
set -euo pipefail

. "$(dirname "$0")/lib.sh"
test_init hostile CFS_SRC
oci2cfs=$CFS_BIN/oci2cfs
cs=$CFS_BIN/cfs-store
generator=$CFS_SRC/tests/oci/make-hostile.py

# Peak RSS allowed for the bomb and the wide directory: the conversion
# holds up to 64 MiB of one file's content (CFS_OBJECT_MEM_MAX), four
# 1 MiB stream buffers, and the tree. Under ASan (shadow memory, the
# quarantine of freed blocks) the bound is larger.
RSS_MAX_KB=$((256 * 1024))

need_exec "$oci2cfs" "$cs"
need_tool python3 zstd fsck.erofs fsverity timeout
[ -x /usr/bin/time ] || skip "needs /usr/bin/time, which is not installed (Debian package 'time')"
# (outputs taken whole: with pipefail, grep -q leaving early could kill
# the writer with SIGPIPE and take an ASan build for a plain one)
deps="$(ldd "$oci2cfs" 2>/dev/null || true)
$(ldd "$CFS_BIN/../lib/libcfs.so" 2>/dev/null || true)
$(nm -D "$oci2cfs" 2>/dev/null || true)"
if grep -q 'libasan\|__asan_init' <<<"$deps"; then
	RSS_MAX_KB=$((1024 * 1024))
	asan=1
else
	asan=0
fi

cd "$work"

failures=0
known=0
fixed=()

step "generating the fixtures"
start=$SECONDS
gen_args=(fx)
[ "${HOSTILE_NO_BOMB:-0}" = 1 ] && gen_args+=(--no-bomb)
if ! python3 "$generator" "${gen_args[@]}" >generate.log 2>&1; then
	cat generate.log
	fail "$generator failed"
fi
[ -s fx/cases.tsv ] || fail "the generator wrote no cases.tsv"
echo "$(wc -l <fx/cases.tsv) fixtures in $((SECONDS - start)) s"

# check_objects DIR WHAT: every file of DIR is XX/<62 hex> named by its
# fs-verity digest; nothing else (no temporary file) is there. A sparse
# object's digest comes from make-hostile.py, which hashes its holes as
# runs (`fsverity digest` would read all of a 1 TiB hole).
check_objects() {
	local dir=$1 what=$2 f rel blocks bsize size digest
	[ -d "$dir" ] || return 0
	while IFS= read -r -d '' f; do
		rel=${f#"$dir"/}
		if [ -d "$f" ] && [[ "$rel" =~ ^[0-9a-f]{2}$ ]]; then
			continue
		fi
		if ! { [ -f "$f" ] && [[ "$rel" =~ ^[0-9a-f]{2}/[0-9a-f]{62}$ ]]; }; then
			echo "$what: unexpected entry in the object directory: $rel"
			continue
		fi
		read -r blocks bsize size < <(stat -c '%b %B %s' "$f")
		if ((blocks * bsize < size)); then
			digest=$(python3 "$generator" verity "$f")
		else
			digest=$(fsverity digest --compact "$f")
		fi
		[ "$digest" = "${rel%%/*}${rel#*/}" ] ||
			echo "$what: object $rel does not have its name as fs-verity digest"
	done < <(find "$dir" -mindepth 1 -print0)
}

# run LIMIT CMD...: stdout/stderr to run.out/run.err, status in $rc, peak
# RSS (KiB) in $rss, wall seconds in $secs; 124 when LIMIT ran out.
run() {
	local limit=$1
	shift
	rc=0
	/usr/bin/time -f '%M %e' -o run.time timeout -k 5 "$limit" "$@" >run.out 2>run.err || rc=$?
	read -r rss secs <run.time 2>/dev/null || { rss=0 secs=0; }
	# time(1) notes a signal death on its first line
	if [[ "$rss" == Command* ]]; then
		read -r rss secs < <(tail -n1 run.time)
	fi
}

store_listing() { find store -printf '%P %y %s\n' | LC_ALL=C sort; }

# source_of NAME KIND: the source string of a fixture
source_of() {
	case $2 in
	oci) echo "oci:$work/fx/$1" ;;
	*) echo "$2:$work/fx/$1.tar" ;;
	esac
}

accept_case() {
	local name=$1 limit=$2 src exp=fx/expected/$1.json
	local img=out/$name.cfs objargs=(--objects "obj-$name") problems=() digest
	local use_objects measure_rss once alloc_max bytes alloc
	src=$(source_of "$1" "$3")
	# the fixture's options (make-hostile.py's docstring): three flags and
	# the disk the objects may take (KiB, 0: unbounded), then the byte
	# strings the image must contain, one per line
	python3 -c 'import json, sys
e = json.load(open(sys.argv[1]))
print(int(e.get("objects", True)), int(e.get("rss", False)), int(e.get("once", False)),
      int(e.get("alloc_max_kb", 0)))
for s in e.get("image_bytes", []):
    print(s)' "$exp" >opts.txt
	read -r use_objects measure_rss once alloc_max <opts.txt
	[ "$use_objects" -eq 1 ] || objargs=()
	run "$limit" "$oci2cfs" "${objargs[@]}" --print-digest --dump "out/$name.dump" "$src" "$img"
	if [ "$rc" -ne 0 ]; then
		problems+=("exit $rc$([ "$rc" -eq 124 ] && echo " (killed after $limit s)"): $(head -c 400 run.err)")
		result "$name" "${problems[@]}"
		return
	fi
	[ ! -s run.err ] || problems+=("wrote to stderr: $(head -c 300 run.err)")
	digest=$(cat run.out)
	if [ "$measure_rss" -eq 1 ]; then
		echo "     $name: peak RSS $((rss / 1024)) MiB, $secs s"
		echo "$name $rss $secs" >>rss.txt
		[ "$rss" -le "$RSS_MAX_KB" ] ||
			problems+=("peak RSS $rss KiB, limit $RSS_MAX_KB KiB")
	fi
	python3 "$generator" check "$exp" "out/$name.dump" ${objargs[@]:+"obj-$name"} >check.out 2>&1 ||
		problems+=("tree: $(head -5 check.out | tr '\n' ';')")
	if [ "$alloc_max" -gt 0 ]; then
		alloc=$(du -sk "obj-$name" | cut -f1)
		echo "     $name: objects take $alloc KiB of disk for $(du -sk --apparent-size "obj-$name" | cut -f1) KiB"
		[ "$alloc" -le "$alloc_max" ] ||
			problems+=("the objects take $alloc KiB of disk, limit $alloc_max KiB (holes written out?)")
	fi
	[ "$digest" = "$(fsverity digest --compact "$img")" ] ||
		problems+=("--print-digest '$digest' is not the image's fs-verity digest")
	# fsck.erofs 1.5 recurses with a PATH_MAX buffer per directory level:
	# 2000 levels overflow its default 8 MiB stack (a crash of the tool,
	# not a fault of the image)
	(
		ulimit -s unlimited 2>/dev/null || ulimit -s 1048576 2>/dev/null || true
		fsck.erofs "$img"
	) >fsck.log 2>&1 || problems+=("fsck.erofs: $(tail -3 fsck.log | tr '\n' ';')")
	while IFS= read -r bytes; do
		grep -q -a -F -- "$bytes" "$img" || problems+=("the image file lacks the bytes '$bytes'")
	done < <(tail -n +2 opts.txt)
	if [ "$once" -eq 0 ]; then
		run "$limit" "$oci2cfs" --threads 1 "${objargs[@]}" "$src" "out/$name.again.cfs"
		if [ "$rc" -ne 0 ]; then
			problems+=("second conversion: exit $rc: $(head -c 300 run.err)")
		else
			cmp -s "$img" "out/$name.again.cfs" || problems+=("a second conversion gave other bytes")
		fi
	fi
	# the image as its own reader sees it, and the dump as a source
	run "$limit" "$oci2cfs" --dump "out/$name.reread" "cfs:$img" "out/$name.reread.cfs"
	if [ "$rc" -ne 0 ]; then
		problems+=("reading the image back (cfs:): exit $rc: $(head -c 300 run.err)")
	else
		cmp -s "out/$name.dump" "out/$name.reread" || problems+=("the image reads back to another dump")
		cmp -s "$img" "out/$name.reread.cfs" || problems+=("the image read back writes other bytes")
	fi
	run "$limit" "$oci2cfs" "dump:out/$name.dump" "out/$name.fromdump.cfs"
	if [ "$rc" -ne 0 ]; then
		problems+=("dump: source: exit $rc: $(head -c 300 run.err)")
	else
		cmp -s "$img" "out/$name.fromdump.cfs" || problems+=("the dump gives other image bytes")
	fi
	check_objects "obj-$name" "$name" >objects.log
	[ ! -s objects.log ] || problems+=("$(head -3 objects.log | tr '\n' ';')")
	rm -rf out/"$name".* "obj-$name"
	result "$name" "${problems[@]}"
}

refuse_case() {
	local name=$1 limit=$2 src outdir=out/$1 line rest s problems=()
	src=$(source_of "$1" "$3")
	shift 3
	mkdir -p "$outdir"
	run "$limit" "$oci2cfs" --objects "obj-$name" "$src" "$outdir/image.cfs"
	line=$(head -n1 run.err)
	if [ "$rc" -ne 1 ]; then
		problems+=("exit $rc, expected 1$([ "$rc" -eq 124 ] && echo " (killed after $limit s)") (stderr: $(head -c 300 run.err))")
	else
		[ ! -s run.out ] || problems+=("wrote to stdout")
		[ "$(wc -l <run.err)" -eq 1 ] ||
			problems+=("$(wc -l <run.err) lines on stderr: $(head -c 300 run.err | tr '\n' '|')")
		if [[ "$line" != "oci2cfs: $src: "* ]]; then
			problems+=("the message does not start with 'oci2cfs: SOURCE: ': $line")
		else
			rest=${line#"oci2cfs: $src: "}
			[[ "$rest" != *"$src"* ]] || problems+=("the message names the source twice")
		fi
		for s in "$@"; do
			[[ "$line" == *"$s"* ]] || problems+=("the message lacks \"${s:0:120}\": ${line:0:400}")
		done
	fi
	[ -z "$(ls -A "$outdir")" ] || problems+=("left in the output directory: $(ls -A "$outdir")")
	check_objects "obj-$name" "$name" >objects.log
	[ ! -s objects.log ] || problems+=("$(head -3 objects.log | tr '\n' ';')")
	rm -rf "$outdir" "obj-$name"

	# the store: refused as well, and left as it was
	store_listing >store.before
	run "$limit" "$cs" --root store import "$src"
	if [ "$rc" -ne 1 ]; then
		problems+=("cfs-store import: exit $rc, expected 1")
	else
		[ "$(wc -l <run.err)" -eq 1 ] && [[ "$(cat run.err)" == "cfs-store: import: $src: "* ]] ||
			problems+=("cfs-store import: not one 'cfs-store: import: SOURCE: ' line: $(head -c 300 run.err)")
	fi
	store_listing >store.after
	diff -q store.before store.after >/dev/null ||
		problems+=("cfs-store import changed the store: $(diff store.before store.after | head -5 | tr '\n' ';' || true)")
	"$cs" --root store fsck >fsck.log 2>&1 || problems+=("cfs-store fsck: $(tail -3 fsck.log | tr '\n' ';')")
	okmsg=${line:0:300}
	result "$name" "${problems[@]}"
}

# result NAME PROBLEM...: report; the known-bug mark of NAME is in $bug
result() {
	local name=$1
	shift
	if [ "$#" -eq 0 ]; then
		if [ "$bug" != - ]; then
			echo "FIXED $name: passes, but cases.tsv marks a known bug: $bug (remove the mark)"
			fixed+=("$name")
			failures=$((failures + 1))
		elif [ "$kind" = accept ]; then
			echo "ok   $name: accepted"
		else
			echo "ok   $name: $okmsg"
		fi
		return
	fi
	if [ "$bug" != - ]; then
		echo "XFAIL $name (known bug: $bug)"
		known=$((known + 1))
	else
		echo "FAIL $name"
		failures=$((failures + 1))
	fi
	for p in "$@"; do
		echo "     ${p:0:600}"
	done
}

step "a store holding one image"
"$cs" --root store import "oci:$work/fx/name-255" >/dev/null || fail "cfs-store import of name-255 failed"
mkdir -p out

step "fixtures"
while IFS=$'\t' read -r -u 3 -a f; do
	kind=${f[0]} bug=${f[2]}
	[[ "${f[1]}" =~ ${HOSTILE_ONLY:-.} ]] || continue
	if [ "$kind" = accept ]; then
		accept_case "${f[1]}" "${f[3]}" "${f[4]}"
	else
		refuse_case "${f[1]}" "${f[3]}" "${f[4]}" "${f[@]:5}"
	fi
done 3<fx/cases.tsv

step "peak RSS (KiB, seconds; limit $RSS_MAX_KB KiB$([ "$asan" -eq 1 ] && echo ", ASan build"))"
cat rss.txt 2>/dev/null || true
if [ "${#fixed[@]}" -ne 0 ]; then
	echo "$me: fixed since marked: ${fixed[*]}"
fi
if [ "$failures" -ne 0 ]; then
	fail "$failures failure(s) (known bugs that still fail, not counted: $known)"
fi
echo "$me: PASS ($known known bugs still fail as marked: docs/security.md, Known gaps)"
