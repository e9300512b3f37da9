#!/bin/bash
# Print the path of the Debian image corpus, building it first if needed
# ($CFS_CORPUS, default build/tests/corpus). Tests that use it run in
# parallel, so the build happens once, under a lock.
set -euo pipefail
corpus=${CFS_CORPUS:-$CFS_TESTS/corpus}
# A corpus made already needs no lock, nor the right to write the lock
# file, which may be root's: tests that need no root read it too.
if [ -f "$corpus/REPORT.md" ]; then
	echo "$corpus"
	exit 0
fi
mkdir -p "$(dirname "$corpus")"
exec 9> "$corpus.lock"
flock 9
if [ ! -f "$corpus/REPORT.md" ]; then
	echo "corpus: building into $corpus" >&2
	log="$(dirname "$corpus")/corpus-build.log"
	if ! "$CFS_SRC/tests/corpus/make-corpus.sh" "$corpus" > "$log" 2>&1; then
		tail -30 "$log" >&2
		exit 1
	fi
fi
echo "$corpus"
