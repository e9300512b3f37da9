/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* A minimal assertion kit for the unit tests: each CHECK counts, a failed
 * one prints where and why, and test_done() exits non-zero on failure. */
#ifndef CFS_TEST_H
#define CFS_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cfs/common.h>

static int test_checks, test_failures;

#define CHECK(cond)                                                            \
	do {                                                                   \
		test_checks++;                                                 \
		if (!(cond)) {                                                 \
			test_failures++;                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s (%s)\n",      \
				__FILE__, __LINE__, #cond,                     \
				cfs_error_message());                          \
		}                                                              \
	} while (0)

#define CHECK_OK(expr)                                                         \
	do {                                                                   \
		int _r = (expr);                                               \
		test_checks++;                                                 \
		if (_r < 0) {                                                  \
			test_failures++;                                       \
			fprintf(stderr, "%s:%d: %s failed: %d (%s)\n",         \
				__FILE__, __LINE__, #expr, _r,                 \
				cfs_error_message());                          \
		}                                                              \
	} while (0)

#define CHECK_ERR(expr, err)                                                   \
	do {                                                                   \
		int _r = (expr);                                               \
		test_checks++;                                                 \
		if (_r != -(err)) {                                            \
			test_failures++;                                       \
			fprintf(stderr, "%s:%d: %s returned %d, want %d\n",    \
				__FILE__, __LINE__, #expr, _r, -(err));        \
		}                                                              \
	} while (0)

static inline int test_done(void)
{
	printf("%d checks, %d failed\n", test_checks, test_failures);
	return test_failures ? 1 : 0;
}

#endif
