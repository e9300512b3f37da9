/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* Small helpers: cfs_atomic_write() and the digest strings. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cfs/image.h>
#include <cfs/store.h>

#include "common/digest.h"
#include "common/util.h"
#include "store/store-internal.h"
#include "test.h"

static char T[4096];

static int entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") != 0 &&
		     strcmp(de->d_name, "..") != 0;
	closedir(d);
	return n;
}

static void content(int dirfd, const char *name, const char *want)
{
	char buf[64] = { 0 };
	int fd = openat(dirfd, name, O_RDONLY);
	struct stat st;

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK(read(fd, buf, sizeof(buf) - 1) == (ssize_t)strlen(want));
	CHECK(strcmp(buf, want) == 0);
	CHECK(fstat(fd, &st) == 0 && (st.st_mode & 07777) == 0644);
	close(fd);
}

static void test_atomic_write(void)
{
	int dirfd = open(T, O_RDONLY | O_DIRECTORY);

	CHECK_OK(cfs_atomic_write(dirfd, "a", "one", 3, CFS_ATOMIC_SYNC));
	content(dirfd, "a", "one");
	/* kept without REPLACE, and said so */
	CHECK_ERR(cfs_atomic_write(dirfd, "a", "two", 3, 0), EEXIST);
	content(dirfd, "a", "one");
	CHECK_OK(cfs_atomic_write(dirfd, "a", "three", 5, CFS_ATOMIC_REPLACE));
	content(dirfd, "a", "three");
	/* no temporary left behind, whatever happened */
	CHECK(entries(T) == 1);
	CHECK_ERR(cfs_atomic_write(-1, "b", "x", 1, 0), EBADF);
	CHECK(unlinkat(dirfd, "a", 0) == 0);
	close(dirfd);
}

static void test_sha256(void)
{
	char s[CFS_SHA256_STR_SIZE];
	uint8_t raw[CFS_DIGEST_SIZE];

	CHECK_OK(cfs_sha256("abc", 3, raw, s));
	CHECK(strcmp(s, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a"
			"9cb410ff61f20015ad") == 0);
	CHECK(raw[0] == 0xba && raw[31] == 0xad);
	memset(s, 'x', sizeof(s));
	cfs_sha256_str(raw, s);
	CHECK(strlen(s) == CFS_SHA256_STR_SIZE - 1);
	CHECK(CFS_SHA256_STR_SIZE <= CFS_DIGEST_STR_MAX);
}

/* A directory's names, sorted whatever readdir says; twice on one fd. */
static void test_dir_names(void)
{
	static const char *const made[] = { "b", "a", "c.pem", "B", "aa" };
	static const char *const want[] = { "B", "a", "aa", "b", "c.pem" };
	char sub[4200];
	int dirfd;

	snprintf(sub, sizeof(sub), "%s/names", T);
	CHECK(mkdir(sub, 0755) == 0);
	dirfd = open(sub, O_RDONLY | O_DIRECTORY);
	for (size_t i = 0; i < CFS_ARRAY_SIZE(made); i++)
		CHECK(mkdirat(dirfd, made[i], 0755) == 0);
	for (int round = 0; round < 2; round++) {
		char **names = NULL;
		size_t n = 0;

		CHECK_OK(cfs_dir_names(dirfd, &names, &n));
		CHECK(n == CFS_ARRAY_SIZE(want));
		for (size_t i = 0; i < n && i < CFS_ARRAY_SIZE(want); i++)
			CHECK(strcmp(names[i], want[i]) == 0);
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
	}
	for (size_t i = 0; i < CFS_ARRAY_SIZE(made); i++)
		CHECK(unlinkat(dirfd, made[i], AT_REMOVEDIR) == 0);
	close(dirfd);
	CHECK(rmdir(sub) == 0);
	{
		char **names = (char **)1;
		size_t n = 1;

		CHECK_ERR(cfs_dir_names(-1, &names, &n), EBADF);
		CHECK(names == NULL && n == 0);
	}
}

/* The version check and clearing of result structs. */
static void test_result_version(void)
{
	cfs_store_gc_result res = CFS_STORE_GC_RESULT_INIT;

	CHECK_OK(cfs_result_check(NULL, 1, "x"));
	CHECK_OK(cfs_result_check(&res, CFS_STORE_GC_RESULT_VERSION, "x"));
	res.version = 0;
	CHECK_ERR(cfs_result_check(&res, 1, "gc"), EINVAL);
	CHECK(strncmp(cfs_error_message(), "gc: result struct of version 0",
		      30) == 0);
	res.version = 2;
	CHECK_ERR(cfs_result_check(&res, 1, "gc"), EINVAL);
	res.images = 7;
	cfs_result_zero(&res, sizeof(res));
	CHECK(res.version == 2 && res.images == 0);
}

/* The diff_ids of a config; one that is not JSON names none (gc and
 * pull read configs before anything has judged them). */
static void test_config_diff_ids(void)
{
	static const char good[] =
		"{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:"
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f200"
		"15ad\",\"md5:x\"]}}";
	char **v = NULL;
	size_t n = 0;

	CHECK_OK(store_config_diff_ids(good, strlen(good), &v, &n));
	CHECK(n == 1 && strncmp(v[0], "ba7816bf", 8) == 0);
	store_strv_free(v, n);
	v = NULL;
	n = 0;
	CHECK_OK(store_config_diff_ids("{\"rootfs\":", 11, &v, &n));
	CHECK(n == 0 && v == NULL);
	CHECK_OK(store_config_diff_ids("not json", 8, &v, &n));
	CHECK(n == 0);
}

int main(int argc, char **argv)
{
	const char *base = getenv("CFS_TEST_TMP");

	if ((size_t)snprintf(T, sizeof(T), "%s/test-util-XXXXXX",
			     base && *base ? base : "/tmp") >= sizeof(T) ||
	    !mkdtemp(T))
		return 1;
	TEST_RUN(argc, argv, test_atomic_write);
	TEST_RUN(argc, argv, test_sha256);
	TEST_RUN(argc, argv, test_result_version);
	TEST_RUN(argc, argv, test_config_diff_ids);
	TEST_RUN(argc, argv, test_dir_names);
	CHECK(rmdir(T) == 0);
	return test_done();
}
