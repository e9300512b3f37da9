/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* What every command-line tool of the project shares. */
#ifndef CFS_TOOL_H
#define CFS_TOOL_H

/*
 * Print "PROG: message" and "Try 'PROG --help' for more information." on
 * stderr, the usage-error convention of all our tools; returns @code (the
 * exit status for usage errors: 2, or mount(8)'s 1 for mount.cfs).
 */
__attribute__((format(printf, 3, 4))) int
tool_usage_error(const char *prog, int code, const char *fmt, ...);

/* Parse a --threads value: a whole number from 1 to 1024. 0 or -EINVAL. */
int tool_parse_threads(const char *s, unsigned int *out);

#endif
