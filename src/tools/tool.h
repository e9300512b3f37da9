/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* What every command-line tool of the project shares. */
#ifndef CFS_TOOL_H
#define CFS_TOOL_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

/*
 * A tool lists each long option once, as X(NAME, HAS_ARG, ID) in a list
 * macro; TOOL_OPTIONS(LIST) makes of it the constants OPT_ID (from
 * 0x100 on, above every short option, OPT_FIRST_ and OPT_END_ around
 * them) and getopt_long()'s table long_options[]. The options both
 * converting tools take come first, the same in each.
 */
#define TOOL_COMMON_OPTIONS(X)                                                 \
	X("help", no_argument, HELP)                                           \
	X("version", no_argument, VERSION)                                     \
	X("json", no_argument, JSON)                                           \
	X("threads", required_argument, THREADS)                               \
	X("platform", required_argument, PLATFORM)

#define TOOL_OPT_ENUM_(name, has_arg, id) OPT_##id,
#define TOOL_OPT_ENTRY_(name, has_arg, id) { name, has_arg, NULL, OPT_##id },
#define TOOL_OPTIONS(LIST)                                                     \
	enum { OPT_FIRST_ = 0xff, LIST(TOOL_OPT_ENUM_) OPT_END_ };             \
	static const struct option long_options[] = { LIST(TOOL_OPT_ENTRY_){   \
		NULL, 0, NULL, 0 } }

/*
 * Print "PROG: message" and "Try 'PROG --help' for more information." on
 * stderr, the usage-error convention of all our tools; returns @code (the
 * exit status for usage errors: 2, or mount(8)'s 1 for mount.cfs).
 */
__attribute__((format(printf, 3, 4))) int
tool_usage_error(const char *prog, int code, const char *fmt, ...);

/*
 * The end of a tool's option switch, for --help (@help: usage on stdout),
 * --version (@version) and an option getopt refused (it said why: the
 * "Try" line). Returns the exit status: 0, 0, 2.
 */
int tool_option_end(const char *prog, void (*usage)(FILE *out), bool help,
		    bool version);

/* Parse a --threads value: a whole number from 1 to 1024. 0 or -EINVAL. */
int tool_parse_threads(const char *s, unsigned int *out);

#endif
