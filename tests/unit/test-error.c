/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* The error message: one line, and a message longer than its buffer
 * keeps its start (where) and its end (why), losing the middle; it is
 * only meaningful right after a failed call. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

#include <cfs/convert.h>
#include <cfs/image.h>

#include "common/error.h"
#include "test.h"

static bool starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool ends(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/*
 * The documented contract of cfs_error_message() (cfs/common.h): only
 * meaningful right after a failed call. A call that fails without a
 * sentence of its own leaves an earlier message in place; clearing first
 * tells the two apart.
 */
static void test_stale_message(void)
{
	cfs_inode *dir = NULL, *file = NULL;

	CHECK_OK(cfs_inode_new(&dir, S_IFDIR | 0755));
	CHECK_OK(cfs_inode_new(&file, S_IFREG | 0644));
	CHECK_ERR(cfs_inode_set_mtime(file, 0, 2000000000u), EINVAL);
	CHECK(strstr(cfs_error_message(), "nanoseconds") != NULL);
	/* success does not clear it */
	CHECK_OK(cfs_dir_link(dir, "f", file));
	CHECK(strstr(cfs_error_message(), "nanoseconds") != NULL);
	/* a failure without a message of its own shows the old one */
	CHECK_ERR(cfs_dir_unlink(dir, "missing"), ENOENT);
	CHECK(strstr(cfs_error_message(), "nanoseconds") != NULL);
	/* cleared before the call: nothing pretends to explain it */
	cfs_error_clear();
	CHECK_ERR(cfs_dir_unlink(dir, "missing"), ENOENT);
	CHECK(strcmp(cfs_error_message(), "") == 0);
	/* a failure with a message replaces whatever was there */
	CHECK_ERR(cfs_inode_set_mtime(file, 0, 1000000000u), EINVAL);
	CHECK(strstr(cfs_error_message(), "1000000000") != NULL);
	cfs_inode_unref(file);
	cfs_inode_unref(dir);
	cfs_error_clear();
}

int main(void)
{
	static char path[5001];
	const char *msg;

	CHECK(cfs_error(EINVAL, "layer %s: %s: bad", "sha256:ab", "etc") ==
	      -EINVAL);
	CHECK(strcmp(cfs_error_message(), "layer sha256:ab: etc: bad") == 0);

	/* one line, whatever the input holds */
	cfs_error(EINVAL, "a\nb\rc");
	CHECK(strcmp(cfs_error_message(), "a b c") == 0);

	/* a path longer than the buffer: the reason survives */
	memset(path, 'a', sizeof(path) - 1);
	cfs_error(ELOOP, "layer sha256:ab: %s: deeper than 2048 levels", path);
	msg = cfs_error_message();
	CHECK(strlen(msg) == 1023);
	CHECK(starts(msg, "layer sha256:ab: aaa"));
	CHECK(ends(msg, "aaa: deeper than 2048 levels"));
	CHECK(strstr(msg, "a...a") != NULL);

	/* the errno text is the end too */
	CHECK(cfs_error_errno(ENOSPC, "store /s: tmp/%s", path) == -ENOSPC);
	msg = cfs_error_message();
	CHECK(strlen(msg) == 1023);
	CHECK(starts(msg, "store /s: tmp/aaa"));
	CHECK(ends(msg, ": No space left on device"));

	/* a prefix goes in front of a message already cut */
	cfs_error(EINVAL, "%s: is not a directory", path);
	CHECK(cfs_error_prefix(EINVAL, "oci:/x") == -EINVAL);
	msg = cfs_error_message();
	CHECK(strlen(msg) == 1023);
	CHECK(starts(msg, "oci:/x: aaa"));
	CHECK(ends(msg, "aaa: is not a directory"));

	/* without a message, the prefix gets the errno text */
	cfs_error_clear();
	cfs_error_prefix(ENOENT, "dir:/x");
	CHECK(strcmp(cfs_error_message(),
		     "dir:/x: No such file or directory") == 0);

	/* a message that fits exactly is not cut */
	memset(path, 'b', 1023);
	path[1023] = '\0';
	cfs_error(EINVAL, "%s", path);
	CHECK(strcmp(cfs_error_message(), path) == 0);
	path[1023] = 'b';
	path[1024] = '\0';
	cfs_error(EINVAL, "%s", path);
	CHECK(strlen(cfs_error_message()) == 1023);
	CHECK(strstr(cfs_error_message(), "...") != NULL);

	test_stale_message();
	/* like every _free, the stats' clear accepts NULL */
	cfs_convert_stats_clear(NULL);
	return test_done();
}
