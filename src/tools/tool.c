/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
#include "tools/tool.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>

#include <cfs/common.h>

int tool_usage_error(const char *prog, int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help' for more information.\n", prog);
	return code;
}

int tool_parse_threads(const char *s, unsigned int *out)
{
	char *end;
	long n = strtol(s, &end, 10);

	if (*s == '\0' || *end || n < 1 || n > 1024)
		return -EINVAL;
	*out = (unsigned int)n;
	return 0;
}

int tool_option_end(const char *prog, void (*usage)(FILE *out), bool help,
		    bool version)
{
	if (help) {
		usage(stdout);
		return 0;
	}
	if (version) {
		printf("%s %s\n", prog, cfs_version());
		return 0;
	}
	fprintf(stderr, "Try '%s --help' for more information.\n", prog);
	return 2;
}
