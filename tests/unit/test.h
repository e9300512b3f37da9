/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* A minimal assertion kit for the unit tests: each CHECK counts, a failed
 * one prints where and why, and test_done() exits non-zero on failure. */
#ifndef CFS_TEST_H
#define CFS_TEST_H

#include <stdbool.h>
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

/* Names given on the command line (test-foo CASE...): only those cases
 * run, and each must name one; checks main() makes itself run always. */
static int test_argc;
static char **test_argv;
static unsigned long long test_matched; /* bit i: argv[i] named a case */

/* Run @fn, unless cases are named and it is not one of them (its name,
 * with or without "test_" or "check_"). */
#define TEST_RUN(argc, argv, fn) test_run_case(argc, argv, #fn, fn)

static inline void test_run_case(int argc, char **argv, const char *name,
				 void (*fn)(void))
{
	const char *shortname = strncmp(name, "test_", 5) == 0	? name + 5 :
				strncmp(name, "check_", 6) == 0 ? name + 6 :
								  name;
	bool wanted = argc < 2;

	test_argc = argc;
	test_argv = argv;
	for (int i = 1; i < argc && i < 64; i++) {
		if (strcmp(argv[i], name) == 0 ||
		    strcmp(argv[i], shortname) == 0) {
			wanted = true;
			test_matched |= 1ull << i;
		}
	}
	if (!wanted)
		return;
	if (argc > 1)
		printf("# %s\n", shortname);
	fn();
}

static inline int test_done(void)
{
	for (int i = 1; i < test_argc && i < 64; i++) {
		if (!(test_matched & (1ull << i))) {
			fprintf(stderr, "no test case %s\n", test_argv[i]);
			test_failures++;
		}
	}
	printf("%d checks, %d failed\n", test_checks, test_failures);
	return test_failures ? 1 : 0;
}

#endif
