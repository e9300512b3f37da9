#!/bin/bash
# Print the README's set-up commands, one a line: its indented lines that
# start with scripts/install-deps.sh. The first builds and runs the demo,
# the second builds and runs the tests. .ci/run and the readme test run
# them as written, so the README cannot drift from what is tested.
#   usage: tests/scripts/readme-commands.sh [README]
set -euo pipefail
readme=${1:-$(dirname "$0")/../../README.md}
n=0
while IFS= read -r line; do
	case $line in
	"    scripts/install-deps.sh && "*)
		printf '%s\n' "${line#    }"
		n=$((n + 1))
		;;
	esac
done <"$readme"
[ "$n" -eq 2 ] || { echo "$0: $readme has $n set-up commands, not 2" >&2; exit 1; }
