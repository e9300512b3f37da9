/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
#include "error.h"

/* Messages are cut at CFS_ERROR_MAX on purpose. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One line is the contract, so a fixed buffer is enough; longer messages
 * are cut in the middle (put_message()), never lost entirely. */
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

/* What stands for the bytes cut out of a message too long for the buffer. */
#define CUT_MARK "..."

/*
 * Put @msg (@len bytes) in the message buffer on one line. A message too
 * long for it loses its middle, not its end: messages go "where: what:
 * why", and the part that grows without bound is a path in the middle
 * (4096 bytes, or more through symlinks), while the reason is at the end.
 */
static void put_message(const char *msg, size_t len)
{
	size_t room = sizeof(error_buf) - 1;

	if (len <= room) {
		memcpy(error_buf, msg, len);
		error_buf[len] = '\0';
	} else {
		size_t tail = room / 2;
		size_t head = room - tail - strlen(CUT_MARK);

		memcpy(error_buf, msg, head);
		memcpy(error_buf + head, CUT_MARK, strlen(CUT_MARK));
		memcpy(error_buf + head + strlen(CUT_MARK), msg + len - tail,
		       tail);
		error_buf[room] = '\0';
	}
	/* Keep the message on one line whatever the input put in it. */
	for (char *p = error_buf; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

/*
 * Format the whole message, then put it. Should memory for it run out,
 * the message is cut at its end instead: a cut message beats none.
 */
__attribute__((format(printf, 1, 0))) static void
set_message(const char *fmt, va_list ap, const char *suffix)
{
	char *msg = NULL;
	va_list aq;
	int n, m;

	va_copy(aq, ap);
	n = vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	if (n < 0)
		n = 0;
	msg = malloc((size_t)n + strlen(suffix) + 1);
	if (!msg) {
		char tmp[CFS_ERROR_MAX];

		vsnprintf(tmp, sizeof(tmp), fmt, ap);
		put_message(tmp, strlen(tmp));
		return;
	}
	m = vsnprintf(msg, (size_t)n + 1, fmt, ap);
	if (m < 0 || m > n)
		m = 0;
	memcpy(msg + m, suffix, strlen(suffix) + 1);
	put_message(msg, (size_t)m + strlen(suffix));
	free(msg);
}

int cfs_error(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set_message(fmt, ap, "");
	va_end(ap);
	return -err;
}

int cfs_error_errno(int err, const char *fmt, ...)
{
	char suffix[256];
	va_list ap;

	snprintf(suffix, sizeof(suffix), ": %s", strerror(err));
	va_start(ap, fmt);
	set_message(fmt, ap, suffix);
	va_end(ap);
	return -err;
}

int cfs_error_prefix(int err, const char *fmt, ...)
{
	char old[CFS_ERROR_MAX + 2];
	va_list ap;

	/* ": " and the message so far (or the errno text) follow the prefix */
	snprintf(old, sizeof(old), ": %s",
		 error_buf[0] ? error_buf : strerror(err));
	va_start(ap, fmt);
	set_message(fmt, ap, old);
	va_end(ap);
	return -err;
}

int cfs_error_default(int err, const char *what)
{
	if (!error_buf[0])
		snprintf(error_buf, sizeof(error_buf), "%s: %s", what,
			 strerror(err));
	return -err;
}
