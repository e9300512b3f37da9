/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
#include "error.h"

/* Messages are cut at CFS_ERROR_MAX on purpose. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>

/* One line is the contract, so a fixed buffer is enough; longer messages
 * are cut, never lost entirely. */
#define CFS_ERROR_MAX 1024

static __thread char error_buf[CFS_ERROR_MAX];

const char *cfs_error_message(void)
{
	return error_buf;
}

void cfs_error_clear(void)
{
	error_buf[0] = '\0';
}

const char *cfs_version(void)
{
	return CFS_VERSION_STRING;
}

static void set_message(const char *fmt, va_list ap, int err, bool with_errno)
{
	char tmp[CFS_ERROR_MAX];

	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	if (with_errno)
		snprintf(error_buf, sizeof(error_buf), "%s: %s", tmp,
			 strerror(err));
	else
		memcpy(error_buf, tmp, sizeof(tmp));
	/* Keep the message on one line whatever the input put in it. */
	for (char *p = error_buf; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

int cfs_error(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set_message(fmt, ap, err, false);
	va_end(ap);
	return -err;
}

int cfs_error_errno(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set_message(fmt, ap, err, true);
	va_end(ap);
	return -err;
}

int cfs_error_prefix(int err, const char *fmt, ...)
{
	char prefix[CFS_ERROR_MAX];
	char old[CFS_ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, error_buf, sizeof(old));
	if (old[0])
		snprintf(error_buf, sizeof(error_buf), "%s: %s", prefix, old);
	else
		snprintf(error_buf, sizeof(error_buf), "%s: %s", prefix,
			 strerror(err));
	return -err;
}

int cfs_error_default(int err, const char *what)
{
	if (!error_buf[0])
		snprintf(error_buf, sizeof(error_buf), "%s: %s", what,
			 strerror(err));
	return -err;
}
