/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* The dir: source: trees down to level CFS_TREE_DEPTH_MAX (the root is
 * level 0) are read, an entry one level deeper is refused with a message
 * naming the source and the path; file contents hashed and stored by
 * several threads give the same image and objects every time, and the
 * error of the file first in walk order. */
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

#define N_FILES 300
#define FILE_SIZE 5000
/* The file that fails first in walk order, and its size: long to hash,
 * so that a later file fails first in time. */
#define BIG_AT 10
#define BIG_SIZE (48 * 1024 * 1024)

/* The content of file @i (@salt: of the big one), its size. */
static size_t file_content(int i, char *buf, int salt)
{
	size_t size = i == BIG_AT ? BIG_SIZE : FILE_SIZE;

	memset(buf, 'a' + i % 26, size);
	snprintf(buf, 32, "file %d/%d", i, salt);
	return size;
}

/* Convert dir:@src with objects in @objdir; the image digest. */
static int convert_files(const char *src, const char *objdir,
			 uint8_t digest[CFS_DIGEST_SIZE])
{
	cfs_convert_options o = CFS_CONVERT_OPTIONS_INIT;
	char out[sizeof(T) + 24];

	snprintf(out, sizeof(out), "%s/files.cfs", T);
	o.objects_dir = objdir;
	return cfs_convert(src, out, &o, NULL, digest, NULL);
}

static void rm_rf(const char *path)
{
	char cmd[sizeof(T) + 64];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		die(path);
}

/*
 * Many files, hashed and stored by the workers while the walk goes on:
 * the image is the same with and without an object directory and from
 * run to run, every object is there under its digest; where two files
 * cannot be stored (their XX/ is a file), the error names the one first
 * in walk order, every time, though the other may fail first.
 */
static void test_parallel_files(void)
{
	char dir[sizeof(T) + 16], src[sizeof(T) + 24], objs[sizeof(T) + 16];
	char path[sizeof(T) + 128], *buf = malloc(BIG_SIZE);
	uint8_t d[N_FILES][CFS_DIGEST_SIZE], want[CFS_DIGEST_SIZE];
	uint8_t got[CFS_DIGEST_SIZE];
	int counts[256] = { 0 }, first = BIG_AT, last = -1, fd, salt = 0;

	snprintf(dir, sizeof(dir), "%s/files", T);
	snprintf(src, sizeof(src), "dir:%s", dir);
	snprintf(objs, sizeof(objs), "%s/objs", T);
	if (!buf || mkdir(dir, 0755) < 0)
		die(dir);
	for (int i = 0; i < N_FILES; i++) {
		size_t size = file_content(i, buf, salt);

		CHECK_OK(cfs_verity_digest_buffer(buf, size, d[i]));
		counts[d[i][0]]++;
	}
	/* the big file alone in its XX/ */
	while (counts[d[BIG_AT][0]] > 1) {
		size_t size = file_content(BIG_AT, buf, ++salt);

		counts[d[BIG_AT][0]]--;
		CHECK_OK(cfs_verity_digest_buffer(buf, size, d[BIG_AT]));
		counts[d[BIG_AT][0]]++;
	}
	for (int i = 0; i < N_FILES; i++) {
		size_t size = file_content(i, buf, i == BIG_AT ? salt : 0);

		snprintf(path, sizeof(path), "%s/f%03d", dir, i);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0 || write(fd, buf, size) != (ssize_t)size ||
		    close(fd) < 0)
			die(path);
	}
	free(buf);
	CHECK_OK(convert_files(src, NULL, want));
	for (int run = 0; run < 3; run++) {
		CHECK_OK(convert_files(src, objs, got));
		CHECK(memcmp(got, want, sizeof(want)) == 0);
	}
	for (int i = 0; i < N_FILES; i++) {
		char rel[CFS_DIGEST_HEX_SIZE + 2];
		uint8_t od[CFS_DIGEST_SIZE] = { 0 };

		cfs_digest_to_object_path(d[i], rel);
		snprintf(path, sizeof(path), "%s/%s", objs, rel);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		CHECK(fd >= 0 && cfs_verity_digest_fd(fd, od) == 0);
		CHECK(memcmp(od, d[i], sizeof(od)) == 0);
		if (fd >= 0)
			close(fd);
	}
	rm_rf(objs);

	/* two files alone in their XX/: the big one first, which its
	 * worker reaches only after hashing it, and one a few files later,
	 * which another worker reaches long before */
	for (int i = first + 2; i < N_FILES && last < 0; i++)
		if (counts[d[i][0]] == 1)
			last = i;
	CHECK(first >= 0 && last > first);
	for (int run = 0; first >= 0 && last > first && run < 10; run++) {
		char name[16];
		int r;

		if (mkdir(objs, 0755) < 0)
			die(objs);
		for (int k = 0; k < 2; k++) {
			int i = k ? last : first;

			snprintf(path, sizeof(path), "%s/%02x", objs, d[i][0]);
			fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
			if (fd < 0)
				die(path);
			close(fd);
		}
		cfs_error_clear();
		r = convert_files(src, objs, got);
		snprintf(name, sizeof(name), "/f%03d", first);
		CHECK(r == -ENOTDIR);
		CHECK(strstr(cfs_error_message(), name) != NULL);
		if (run == 0 || !strstr(cfs_error_message(), name))
			printf("error (run %d): %s\n", run,
			       cfs_error_message());
		rm_rf(objs);
	}
	rm_rf(dir);
	snprintf(path, sizeof(path), "%s/files.cfs", T);
	unlink(path);
}

int main(int argc, char **argv)
{
	const char *base = getenv("CFS_TEST_TMP");

	if (!base || !*base)
		base = "/tmp";
	if ((size_t)snprintf(T, sizeof(T), "%s/test-dirsource-XXXXXX", base) >=
		    sizeof(T) ||
	    !mkdtemp(T))
		die("mkdtemp");
	raise_fd_limit();
	TEST_RUN(argc, argv, test_option_versions);
	TEST_RUN(argc, argv, test_parallel_files);
	TEST_RUN(argc, argv, test_depth);
	if (rmdir(T) < 0)
		die(T);
	return test_done();
}
