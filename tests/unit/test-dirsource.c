/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* The dir: source: trees down to level CFS_TREE_DEPTH_MAX (the root is
 * level 0) are read, an entry one level deeper is refused with a message
 * naming the source and the path. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cfs/convert.h>
#include <cfs/image.h>

#include "image/tree-internal.h"
#include "test.h"

/* Descriptors dir: may hold at once: one a level, and a few more. */
#define FDS_NEEDED (CFS_TREE_DEPTH_MAX + 64)

static char T[4096];

static void die(const char *what)
{
	fprintf(stderr, "test-dirsource: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* The directory "a/a/..." @levels below @fd, made as needed, opened; no
 * path names it (it is longer than PATH_MAX), so it goes by descriptors. */
static int descend(int fd, int levels)
{
	int cur = dup(fd);

	if (cur < 0)
		die("dup");
	for (int i = 0; i < levels; i++) {
		int next;

		if (mkdirat(cur, "a", 0755) < 0 && errno != EEXIST)
			die("mkdirat");
		next = openat(cur, "a", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (next < 0)
			die("openat");
		close(cur);
		cur = next;
	}
	return cur;
}

/* Remove the "a" chain above @fd (@levels deep, now empty at the bottom)
 * from the bottom up, one descriptor at a time; closes @fd. */
static void remove_chain(int fd, int levels)
{
	for (int i = 0; i < levels; i++) {
		int up = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (up < 0 || unlinkat(up, "a", AT_REMOVEDIR) < 0)
			die("removing the chain");
		close(fd);
		fd = up;
	}
	close(fd);
}

static void touch(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			0644);

	if (fd < 0)
		die(name);
	close(fd);
}

/* What oci2cfs does too: dir: holds a descriptor a level. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("getrlimit");
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < FDS_NEEDED)
		fprintf(stderr, "RLIMIT_NOFILE %llu: dir: needs %d\n",
			(unsigned long long)rl.rlim_cur, FDS_NEEDED);
	CHECK(rl.rlim_cur >= FDS_NEEDED);
}

static void test_depth(void)
{
	char source[sizeof(T) + 8], want[sizeof(T) + 64];
	cfs_inode *root = NULL;
	int top, bottom;

	snprintf(source, sizeof(source), "dir:%s", T);
	top = open(T, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (top < 0)
		die(T);
	/* directories at levels 1 to the limit - 1; at the limit an empty
	 * directory and a file */
	bottom = descend(top, CFS_TREE_DEPTH_MAX - 1);
	if (mkdirat(bottom, "d", 0755) < 0)
		die("mkdirat d");
	touch(bottom, "f");
	CHECK_OK(cfs_convert_tree(&root, source, NULL, NULL));
	if (root) {
		cfs_inode *d = root;

		for (int level = 1; d && level < CFS_TREE_DEPTH_MAX; level++)
			d = cfs_dir_lookup(d, "a");
		CHECK(d && cfs_dir_count(d) == 2);
		CHECK(d && cfs_dir_lookup(d, "f") &&
		      cfs_inode_type(cfs_dir_lookup(d, "f")) == S_IFREG);
		cfs_inode_unref(root);
		root = NULL;
	}

	/* a file one level below the limit */
	touch(bottom, "d/x");
	cfs_error_clear();
	CHECK_ERR(cfs_convert_tree(&root, source, NULL, NULL), ELOOP);
	CHECK(root == NULL);
	snprintf(want, sizeof(want), "%s: a/a/a/", source);
	CHECK(strncmp(cfs_error_message(), want, strlen(want)) == 0);
	CHECK(strstr(cfs_error_message(), "...: deeper than 2048 levels") !=
	      NULL);
	if (test_failures)
		fprintf(stderr, "message: %s\n", cfs_error_message());

	if (unlinkat(bottom, "d/x", 0) < 0 ||
	    unlinkat(bottom, "d", AT_REMOVEDIR) < 0 ||
	    unlinkat(bottom, "f", 0) < 0)
		die("removing the bottom");
	remove_chain(bottom, CFS_TREE_DEPTH_MAX - 1);
	close(top);
}

/*
 * Option structs: every version from 1 up to the library's is taken, and
 * a version 1 caller's struct is read only as far as version 1 goes (a
 * caller built against the older header has nothing after it).
 */
static void test_option_versions(void)
{
	char dir[sizeof(T) + 16], src[sizeof(T) + 24], out[sizeof(T) + 24];
	cfs_convert_options o = CFS_CONVERT_OPTIONS_INIT;
	uint8_t d1[CFS_DIGEST_SIZE], d2[CFS_DIGEST_SIZE];
	int fd;

	snprintf(dir, sizeof(dir), "%s/opts", T);
	snprintf(src, sizeof(src), "dir:%s", dir);
	snprintf(out, sizeof(out), "%s/opts.cfs", T);
	if (mkdir(dir, 0755) < 0 ||
	    (fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		die(dir);
	touch(fd, "file");
	close(fd);
	CHECK_OK(cfs_convert(src, out, &o, NULL, d1, NULL));
	o.version = 1;
	/* past the end of a version 1 struct: never to be read */
	o.write = (const cfs_write_options *)(uintptr_t)1;
	CHECK_OK(cfs_convert(src, out, &o, NULL, d2, NULL));
	CHECK(memcmp(d1, d2, sizeof(d1)) == 0);
	o.version = 0;
	CHECK_ERR(cfs_convert(src, out, &o, NULL, d2, NULL), EINVAL);
	o.version = CFS_CONVERT_OPTIONS_VERSION + 1;
	CHECK_ERR(cfs_convert(src, out, &o, NULL, d2, NULL), EINVAL);
	snprintf(src, sizeof(src), "%s/file", dir);
	if (unlink(out) < 0 || unlink(src) < 0 || rmdir(dir) < 0)
		die(dir);
}

int main(void)
{
	const char *base = getenv("CFS_TEST_TMP");

	if (!base || !*base)
		base = "/tmp";
	if ((size_t)snprintf(T, sizeof(T), "%s/test-dirsource-XXXXXX", base) >=
		    sizeof(T) ||
	    !mkdtemp(T))
		die("mkdtemp");
	raise_fd_limit();
	test_option_versions();
	test_depth();
	if (rmdir(T) < 0)
		die(T);
	return test_done();
}
