#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# Run every fuzz target (or those named with -t) for SECONDS each under
# libFuzzer with AddressSanitizer + UndefinedBehaviorSanitizer, starting
# from a scratch copy of its committed corpus, and print executions and
# findings per target.
#
#   tests/fuzz/run.sh [-r RUNS] [-j JOBS] [-t TARGET]... [-u] SECONDS
#
#   -r RUNS   stop a target after RUNS executions (or SECONDS, whichever
#             comes first)
#   -j JOBS   targets run side by side (default 1: one core)
#   -t NAME   only this target (repeatable); default: every target of
#             tests/fuzz/targets.cmake
#   -u        merge new interesting inputs into tests/fuzz/corpus/NAME
#             (as found-<sha1>); default: only the scratch copy grows
#
# Needs clang with libFuzzer (Debian package clang; tested with clang 14).
# Builds in $CFS_FUZZ_BUILD (default build-fuzz-run/ in the source tree);
# scratch corpora, logs and crash inputs go to $CFS_FUZZ_OUT (default
# $CFS_FUZZ_BUILD/run). A crash input is kept there as crash-<sha1>;
# see tests/fuzz/README.md for turning it into a named regression seed.
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
build=${CFS_FUZZ_BUILD:-$src/build-fuzz-run}
out=${CFS_FUZZ_OUT:-$build/run}
runs=
jobs=1
update=false
targets=()

usage() {
	sed -n '3,22p' "$0" | sed 's/^# \{0,1\}//'
}

while getopts "r:j:t:uh" opt; do
	case $opt in
	r) runs=$OPTARG ;;
	j) jobs=$OPTARG ;;
	t) targets+=("$OPTARG") ;;
	u) update=true ;;
	h)
		usage
		exit 0
		;;
	*)
		echo "Try '$0 -h' for more information." >&2
		exit 2
		;;
	esac
done
shift $((OPTIND - 1))
if [ $# -ne 1 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
	echo "usage: $0 [-r RUNS] [-j JOBS] [-t TARGET]... [-u] SECONDS" >&2
	exit 2
fi
seconds=$1
if [ ${#targets[@]} -eq 0 ]; then
	# the list CMake builds, so that a new target is never left out
	read -r -a targets <<<"$(sed -n '/^set(CFS_FUZZ_TARGETS/,/)/p' \
		"$src/tests/fuzz/targets.cmake" |
		sed 's/set(CFS_FUZZ_TARGETS//; s/)//' | tr '\n' ' ')"
fi
command -v clang >/dev/null || {
	echo "$0: needs clang (apt-get install clang)" >&2
	exit 1
}

echo "== build ($build)"
cmake -S "$src" -B "$build" -DCMAKE_C_COMPILER=clang -DBUILD_FUZZERS=ON \
	-DBUILD_TESTING=OFF -DENABLE_ASAN=ON \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" \
	--target "${targets[@]/#/fuzz-}" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_one() {
	local t=$1 dir=$out/$t
	local extra=()

	rm -rf "$dir"
	mkdir -p "$dir/corpus" "$dir/artifacts"
	cp "$src/tests/fuzz/corpus/$t/"* "$dir/corpus/" 2>/dev/null || true
	[ -n "$runs" ] && extra+=(-runs="$runs")
	# The first directory gets the new inputs; -timeout catches inputs
	# that make the code crawl (a finding too).
	"$build/fuzz/fuzz-$t" -max_total_time="$seconds" "${extra[@]}" \
		-print_final_stats=1 -timeout=30 -rss_limit_mb=2048 \
		-artifact_prefix="$dir/artifacts/" "$dir/corpus" \
		>"$dir/log" 2>&1 || true
	if $update; then
		mkdir -p "$dir/merged"
		"$build/fuzz/fuzz-$t" -merge=1 "$dir/merged" \
			"$src/tests/fuzz/corpus/$t" "$dir/corpus" \
			>>"$dir/log" 2>&1 || true
		for f in "$dir/merged"/*; do
			[ -e "$f" ] || continue
			cp "$f" "$src/tests/fuzz/corpus/$t/found-$(basename "$f")"
		done
	fi
}

report() {
	local t=$1 dir=$out/$t
	local execs rate findings

	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" |
		tail -1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" |
		tail -1)
	findings=$(find "$dir/artifacts" -type f | wc -l)
	printf '%-14s %12s execs %8s exec/s %6s inputs  %s finding(s)\n' \
		"$t" "${execs:-?}" "${rate:-?}" \
		"$(find "$dir/corpus" -type f | wc -l)" "$findings"
	if [ "$findings" -gt 0 ] || [ -z "$execs" ]; then
		find "$dir/artifacts" -type f | sed 's/^/    /'
		grep -m1 -A12 -E '^==[0-9]+==ERROR|runtime error|fuzz check failed|Timeout|out-of-memory' \
			"$dir/log" | sed 's/^/    /' || true
		status=1
	fi
}

echo "== fuzzing ${targets[*]}: ${seconds}s each${runs:+ (at most $runs runs)}, $jobs at a time; logs in $out"
mkdir -p "$out"
for t in "${targets[@]}"; do
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
		wait -n
	done
	run_one "$t" &
done
wait

status=0
echo "== results"
for t in "${targets[@]}"; do
	report "$t"
done
exit $status
