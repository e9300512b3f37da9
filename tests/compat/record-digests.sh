#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# Record what composefs' own mkcomposefs makes of the compatibility dumps
# (make-dumps.py), once, into mkcomposefs-VERSION.digests beside this
# script: one line per dump and format option, "DUMP OPTION DIGEST".
# tests/scripts/compat.sh (ctest compat) checks our writer against the
# file; neither it nor CI ever needs mkcomposefs.
#
#   usage: tests/compat/record-digests.sh MKCOMPOSEFS > tests/compat/mkcomposefs-1.0.8.digests
#
# MKCOMPOSEFS: mkcomposefs of composefs 1.0.8, e.g. built from its
# source (meson setup -Dfuse=disabled -Dman=disabled build && ninja -C
# build tools/mkcomposefs), or forky's composefs package.
set -euo pipefail
mk=${1:?usage: record-digests.sh MKCOMPOSEFS}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 "$here/make-dumps.py" "$tmp"
for dump in "$tmp"/*.dump; do
	for opt in default --min-version=1 --max-version=0; do
		args=()
		[ "$opt" = default ] || args=("$opt")
		d=$("$mk" --from-file --print-digest-only "${args[@]}" "$dump")
		[[ $d =~ ^[0-9a-f]{64}$ ]] || { echo "record-digests: $mk: '$d'" >&2; exit 1; }
		echo "$(basename "$dump") $opt $d"
	done
done
