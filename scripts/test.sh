#!/bin/bash
# Build with -Werror and run the whole test suite, then build again with
# AddressSanitizer + UndefinedBehaviorSanitizer and run it once more.
#
# Run it as root, or as a user who may use sudo: it builds as whoever
# runs it and asks sudo only for what needs root (building the image
# corpus, and the tests, which mount file systems and run podman).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/as-root.sh
. scripts/as-root.sh

jobs=$(nproc)
# The Debian image corpus (tests/corpus/make-corpus.sh) is built once
# (needs root and the Debian mirror, a few minutes) and shared by both
# runs; CFS_CORPUS names a prebuilt one instead.
export CFS_CORPUS=${CFS_CORPUS:-$PWD/build-corpus}
# So is the Debian 13 root with podman 5 (tests/scripts/podman5-root.sh).
export CFS_PODMAN5_CACHE=${CFS_PODMAN5_CACHE:-$PWD/build-podman5}

run_suite() {
	local dir=$1
	shift
	cmake -S . -B "$dir" -DENABLE_WERROR=ON "$@" >/dev/null
	cmake --build "$dir" -j"$jobs"
	(cd "$dir" && as_root ctest --output-on-failure -j"$jobs")
}

echo "== format check (clang-format, .clang-format)"
git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror

echo "== Debian image corpus (for the corpus, page cache and kill tests)"
as_root env CFS_TESTS="$PWD" CFS_SRC="$PWD" tests/scripts/need-corpus.sh

echo "== build and test (-Werror)"
run_suite build-test -DCMAKE_BUILD_TYPE=RelWithDebInfo

echo "== build and test (ASan + UBSan)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DENABLE_ASAN=ON
