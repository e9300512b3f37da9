# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
# shellcheck shell=bash
# Sourced by shell tests that mount below their scratch directory.
#
#   remove_work DIR   unmount everything mounted on or below DIR (or
#                     on a path that contains DIR/), deepest first
#                     (lazily if need be), then remove DIR; if a
#                     mount stays, keep DIR, say so and return 1.
#                     Messages start with "$me: ".

# $me: the sourcing test names itself.
# shellcheck disable=SC2154
remove_work() { # DIR
	local dir=$1 left=0 m
	while read -r m; do
		# (a mount whose peer went first went with it)
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null ||
			! awk -v m="$m" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo || {
			echo "$me: warning: could not unmount $m" >&2
			left=1
		}
	done < <(awk -v d="$dir" '$5 == d || index($5, d "/") { print $5 }' /proc/self/mountinfo | sort -r)
	if [ "$left" -ne 0 ]; then
		echo "$me: left $dir behind (still mounted)" >&2
		return 1
	fi
	rm -rf "$dir"
}
