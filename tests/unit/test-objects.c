/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * The streaming object writer (src/convert/objects.c) with the holes of
 * sparse files: the object has the content's fs-verity digest as its
 * name (checked with `fsverity digest`, or for a 1 TiB object with the
 * hole-aware cfs_verity_digest_fd, itself checked against the tool in
 * test-fsverity), the right size and bytes, and, once it spills out of
 * memory, its holes stay holes: a 1 TiB object takes a few blocks.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cfs/image.h>

#include "common/util.h"
#include "convert/objects.h"
#include "test.h"

#define MIB (1024 * 1024ull)

static char dir[1024];

/* Data and holes in turn, data first; data bytes are 'a' + index. */
struct piece {
	bool hole;
	uint64_t len;
};

static int write_pieces(struct cfs_object_writer *w, const struct piece *p,
			size_t n, cfs_verity *v)
{
	static uint8_t buf[65536];
	int r = 0;

	for (size_t i = 0; i < n && r == 0; i++) {
		uint64_t left = p[i].len;

		if (p[i].hole) {
			r = cfs_object_writer_write_zeros(w, left);
			if (r == 0)
				r = cfs_verity_update_zeros(v, left);
			continue;
		}
		memset(buf, 'a' + (int)i, sizeof(buf));
		while (left && r == 0) {
			size_t k = (size_t)CFS_MIN(left, sizeof(buf));

			r = cfs_object_writer_write(w, buf, k);
			if (r == 0)
				r = cfs_verity_update(v, buf, k);
			left -= k;
		}
	}
	return r;
}

/* `fsverity digest` of @path, for files the tool reads in a moment. */
static bool tool_digest(const char *path, char hex[CFS_DIGEST_HEX_SIZE + 1])
{
	char cmd[1300], line[1400];
	FILE *p;
	bool ok;

	snprintf(cmd, sizeof(cmd), "fsverity digest --compact -- '%s'", path);
	p = popen(cmd, "r");
	if (!p)
		return false;
	ok = fgets(line, sizeof(line), p) &&
	     strlen(line) == CFS_DIGEST_HEX_SIZE + 1;
	if (ok)
		memcpy(hex, line, CFS_DIGEST_HEX_SIZE);
	hex[CFS_DIGEST_HEX_SIZE] = '\0';
	return pclose(p) == 0 && ok;
}

/* Bytes of disk the file takes. */
static uint64_t allocated(const struct stat *st)
{
	return (uint64_t)st->st_blocks * 512;
}

/*
 * Write @n pieces as one object; check its name against the digest of
 * the same pieces fed to a verity context, its size, its bytes where
 * data was written, and the disk it takes: at most @alloc_max bytes.
 * @tool: also compare with `fsverity digest`.
 */
static void check_object(struct cfs_objects *objs, const struct piece *p,
			 size_t n, uint64_t alloc_max, bool tool)
{
	struct cfs_object_writer *w = NULL;
	uint8_t digest[CFS_DIGEST_SIZE], want[CFS_DIGEST_SIZE];
	char rel[CFS_DIGEST_HEX_SIZE + 2], path[1200];
	char hex[CFS_DIGEST_HEX_SIZE + 1], thex[CFS_DIGEST_HEX_SIZE + 1];
	uint64_t size = 0, off = 0;
	cfs_verity *v = NULL;
	struct stat st;
	int fd;

	for (size_t i = 0; i < n; i++)
		size += p[i].len;
	CHECK_OK(cfs_verity_new(&v));
	CHECK_OK(cfs_object_writer_new(&w, objs));
	if (!v || !w)
		return;
	cfs_object_writer_begin(w);
	CHECK_OK(write_pieces(w, p, n, v));
	CHECK_OK(cfs_object_writer_commit(w, digest));
	/* content held in memory is written by the directory's writer
	 * thread: there once flushed */
	CHECK_OK(cfs_objects_flush(objs));
	CHECK_OK(cfs_verity_final(v, want));
	CHECK(memcmp(digest, want, sizeof(want)) == 0);
	cfs_digest_to_object_path(digest, rel);
	cfs_digest_to_hex(digest, hex);
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	CHECK(stat(path, &st) == 0);
	printf("object of %llu bytes in %zu pieces: %llu bytes of disk, "
	       "sha256:%s\n",
	       (unsigned long long)size, n, (unsigned long long)allocated(&st),
	       hex);
	CHECK((uint64_t)st.st_size == size);
	CHECK(allocated(&st) <= alloc_max);
	CHECK((st.st_mode & 07777) == 0644);

	fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	for (size_t i = 0; fd >= 0 && i < n; off += p[i++].len) {
		uint8_t b[2];

		/* the first and the last byte of each piece */
		CHECK(pread(fd, b, 1, (off_t)off) == 1);
		CHECK(pread(fd, b + 1, 1, (off_t)(off + p[i].len - 1)) == 1);
		CHECK(b[0] == (p[i].hole ? 0 : 'a' + i) && b[0] == b[1]);
	}
	memset(want, 0, sizeof(want));
	CHECK(fd >= 0 && cfs_verity_digest_fd(fd, want) == 0);
	CHECK(memcmp(digest, want, sizeof(want)) == 0);
	if (fd >= 0)
		close(fd);
	if (tool) {
		CHECK(tool_digest(path, thex));
		CHECK(strcmp(thex, hex) == 0);
	}

	/* The same content again: found, not written. */
	cfs_object_writer_begin(w);
	cfs_verity_reset(v);
	CHECK_OK(write_pieces(w, p, n, v));
	CHECK_OK(cfs_object_writer_commit(w, want));
	CHECK_OK(cfs_objects_flush(objs));
	CHECK(memcmp(digest, want, sizeof(want)) == 0);
	CHECK(unlink(path) == 0);
	cfs_object_writer_free(w);
	cfs_verity_free(v);
}

/* Only the XX directories of objects are left in the object directory:
 * no temporary file. */
static bool clean(void)
{
	char cmd[1200];

	snprintf(cmd, sizeof(cmd),
		 "test -z \"$(find '%s' -mindepth 1 -type f)\"", dir);
	return system(cmd) == 0;
}

/* FS_IOC_GETFLAGS of @path has FS_TOPDIR_FL; -1 where there are no
 * flags. */
static int topdir_flag(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), flags = 0;
	int r = fd >= 0 && ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 ?
			!!(flags & FS_TOPDIR_FL) :
			-1;

	if (fd >= 0)
		close(fd);
	return r;
}

/*
 * An object directory that cfs_objects_open() makes is marked to spread
 * its XX/ directories over the file system (chattr +T), where the file
 * system has the flag; one that exists is left as it is.
 */
static void check_spread(void)
{
	struct cfs_objects *objs = NULL;
	char sub[1100], probe[1100];
	bool has_flag;
	int fd, flags;

	snprintf(probe, sizeof(probe), "%s/probe", dir);
	CHECK(mkdir(probe, 0755) == 0);
	fd = open(probe, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(fd >= 0);
	has_flag = ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 &&
		   (flags |= FS_TOPDIR_FL,
		    ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0) &&
		   topdir_flag(probe) == 1;
	close(fd);
	CHECK(rmdir(probe) == 0);

	snprintf(sub, sizeof(sub), "%s/spread", dir);
	CHECK_OK(cfs_objects_open(&objs, sub));
	cfs_objects_free(objs);
	if (has_flag) {
		CHECK(topdir_flag(sub) == 1);
		CHECK(topdir_flag(dir) == 0);
	} else {
		printf("# no FS_TOPDIR_FL on this file system: not checked\n");
	}
	CHECK(rmdir(sub) == 0);
}

/*
 * Two objects that cannot be made, handed over one after the other: the
 * first fails late (a write past RLIMIT_FSIZE, after 16 MiB), the second
 * at once (its XX/ is a file), so the two writer threads fail them in
 * the other order; the error is the first one's all the same.
 */
#define BIG_OBJECT (24 * 1024 * 1024)
/* rm -rf @path (a directory of this test's). */
static void remove_tree(const char *path)
{
	char cmd[1200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	CHECK(system(cmd) == 0);
}

static void check_first_error(const char *sub)
{
	struct rlimit old, lim = { 16 * 1024 * 1024, 0 };
	uint8_t *big = malloc(BIG_OBJECT);
	void (*old_sig)(int) = signal(SIGXFSZ, SIG_IGN);

	CHECK(big != NULL && getrlimit(RLIMIT_FSIZE, &old) == 0);
	lim.rlim_max = old.rlim_max;
	CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
	for (int run = 0; big && run < 5; run++) {
		struct cfs_objects *objs = NULL;
		struct cfs_object_writer *w = NULL;
		uint8_t small[8192], d[CFS_DIGEST_SIZE];
		char xx[1200];
		int r;

		remove_tree(sub);
		CHECK_OK(cfs_objects_open(&objs, sub));
		CHECK_OK(cfs_object_writer_new(&w, objs));
		if (!objs || !w) {
			cfs_object_writer_free(w);
			cfs_objects_free(objs);
			break;
		}
		memset(big, 'b', BIG_OBJECT);
		snprintf((char *)big, 32, "big %d", run);
		memset(small, 's', sizeof(small));
		snprintf((char *)small, 32, "small %d", run);
		CHECK_OK(cfs_verity_digest_buffer(small, sizeof(small), d));
		snprintf(xx, sizeof(xx), "%s/%02x", sub, d[0]);
		close(open(xx, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));

		cfs_object_writer_begin(w);
		CHECK_OK(cfs_object_writer_write(w, big, BIG_OBJECT));
		CHECK_OK(cfs_object_writer_commit(w, d));
		cfs_object_writer_begin(w);
		CHECK_OK(cfs_object_writer_write(w, small, sizeof(small)));
		r = cfs_object_writer_commit(w, d);
		CHECK(r == 0 || r == -EFBIG);
		cfs_error_clear();
		r = cfs_objects_flush(objs);
		CHECK(r == -EFBIG);
		if (r != -EFBIG || run == 0)
			printf("run %d: %s\n", run, cfs_error_message());
		cfs_object_writer_free(w);
		cfs_objects_free(objs);
	}
	CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
	signal(SIGXFSZ, old_sig);
	free(big);
}

/*
 * A write that fails in a writer thread: the flush reports it with its
 * own message (naming the object directory), later commits refuse to go
 * on, and freeing the directory drops what is still queued.
 */
/* Once FLUSH_EVERY (32 MiB) of new objects are written the flusher
 * starts writeback; the final sync ends it. Not below that. */
static void check_early_sync(void)
{
	struct cfs_objects *objs = NULL;
	struct cfs_object_writer *w = NULL;
	const size_t size = 4 * 1024 * 1024;
	uint8_t *buf = malloc(size), d[CFS_DIGEST_SIZE];
	char sub[1100];

	snprintf(sub, sizeof(sub), "%s/flushing", dir);
	CHECK_OK(cfs_objects_open(&objs, sub));
	CHECK_OK(cfs_object_writer_new(&w, objs));
	if (!objs || !w || !buf)
		goto out;
	for (int i = 0; i < 12; i++) {
		memset(buf, 'a' + i, size);
		cfs_object_writer_begin(w);
		CHECK_OK(cfs_object_writer_write(w, buf, size));
		CHECK_OK(cfs_object_writer_commit(w, d));
		if (i == 6) {
			/* 28 MiB: not yet */
			CHECK_OK(cfs_objects_flush(objs));
			CHECK(cfs_objects_stats(objs)->early_syncs == 0);
		}
	}
	CHECK_OK(cfs_objects_sync(objs));
	CHECK(cfs_objects_stats(objs)->new_objects == 12);
	CHECK(cfs_objects_stats(objs)->early_syncs >= 1);
	/* ended: more objects make no early sync */
	memset(buf, 'z', size);
	cfs_object_writer_begin(w);
	CHECK_OK(cfs_object_writer_write(w, buf, size));
	CHECK_OK(cfs_object_writer_commit(w, d));
	CHECK_OK(cfs_objects_flush(objs));
	CHECK(cfs_objects_stats(objs)->new_objects == 13);
out:
	cfs_object_writer_free(w);
	cfs_objects_free(objs);
	free(buf);
	remove_tree(sub);
}

static void check_writer_error(void)
{
	struct cfs_objects *objs = NULL;
	struct cfs_object_writer *w = NULL;
	char sub[1100], xx[1200];
	uint8_t d[CFS_DIGEST_SIZE], d2[CFS_DIGEST_SIZE];
	static const char text[] = "content whose XX/ is a file";
	uint8_t big[8192];
	int fd, r;

	snprintf(sub, sizeof(sub), "%s/failing", dir);
	CHECK_OK(cfs_objects_open(&objs, sub));
	CHECK_OK(cfs_object_writer_new(&w, objs));
	if (!objs || !w)
		goto out;
	memset(big, 'q', sizeof(big));
	memcpy(big, text, sizeof(text));
	CHECK_OK(cfs_verity_digest_buffer(big, sizeof(big), d));
	/* XX/ of that digest is a file: the object cannot be made */
	snprintf(xx, sizeof(xx), "%s/%02x", sub, d[0]);
	fd = open(xx, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	cfs_object_writer_begin(w);
	CHECK_OK(cfs_object_writer_write(w, big, sizeof(big)));
	CHECK_OK(cfs_object_writer_commit(w, d2)); /* queued */
	CHECK(memcmp(d, d2, sizeof(d)) == 0);
	cfs_error_clear();
	r = cfs_objects_flush(objs);
	CHECK(r == -ENOTDIR);
	CHECK(strstr(cfs_error_message(), sub) != NULL);
	printf("writer thread error: %s\n", cfs_error_message());
	/* the next object is refused with the same error */
	big[0] ^= 1;
	cfs_object_writer_begin(w);
	CHECK_OK(cfs_object_writer_write(w, big, sizeof(big)));
	cfs_error_clear();
	CHECK(cfs_object_writer_commit(w, d2) == -ENOTDIR);
	CHECK(strstr(cfs_error_message(), sub) != NULL);
	CHECK(cfs_objects_sync(objs) == -ENOTDIR);
	cfs_object_writer_free(w);
	w = NULL;
	cfs_objects_free(objs);
	objs = NULL;
	check_first_error(sub);
out:
	cfs_object_writer_free(w);
	cfs_objects_free(objs);
	{
		char cmd[2500];

		snprintf(
			cmd, sizeof(cmd),
			"test -z \"$(find '%s' -type f ! -name '[0-9a-f][0-9a-f]')\" && "
			"rm -rf '%s'",
			sub, sub);
		CHECK(system(cmd) == 0); /* no temporary file left */
	}
}

int main(int argc, char **argv)
{
	const char *base = getenv("CFS_TEST_TMP");
	struct cfs_objects *objs = NULL;
	struct cfs_object_writer *w = NULL;
	uint8_t d[CFS_DIGEST_SIZE];
	const struct cfs_objects_stats *st;

	if (!base || !*base)
		base = "/tmp";
	if ((size_t)snprintf(dir, sizeof(dir), "%s/test-objects-XXXXXX",
			     base) >= sizeof(dir) ||
	    !mkdtemp(dir)) {
		fprintf(stderr, "mkdtemp(%s): %s\n", dir, strerror(errno));
		return 1;
	}
	TEST_RUN(argc, argv, check_spread);
	TEST_RUN(argc, argv, check_writer_error);
	TEST_RUN(argc, argv, check_early_sync);
	CHECK_OK(cfs_objects_open(&objs, dir));
	if (!objs)
		return test_done();

	/* In memory (up to CFS_OBJECT_MEM_MAX): written out whole. */
	check_object(objs,
		     (struct piece[]){ { false, 10 },
				       { true, MIB },
				       { false, 5000 },
				       { true, 3 } },
		     4, 2 * MIB, true);
	/* Spilled at a hole that does not fit in memory: the data before
	 * it is written, the holes stay holes, the last one included. */
	check_object(objs,
		     (struct piece[]){ { false, 3 },
				       { true, 100 * MIB + 7 },
				       { false, 70000 },
				       { true, 4096 * 128 * 3 },
				       { false, 1 },
				       { true, 65 * MIB } },
		     6, 1 * MIB, true);
	/* Spilled by data, then holes. */
	check_object(objs,
		     (struct piece[]){ { false, CFS_OBJECT_MEM_MAX + 1 },
				       { true, 200 * MIB },
				       { false, 4095 } },
		     3, CFS_OBJECT_MEM_MAX + 2 * MIB, true);
	/* 1 TiB with one block of data in the middle, and with a hole
	 * only: a few blocks of disk (`fsverity digest` would read 1 TiB). */
	check_object(objs,
		     (struct piece[]){ { true, 1ull << 39 },
				       { false, 512 },
				       { true, (1ull << 39) - 512 } },
		     3, 64 * 1024, false);
	check_object(objs, (struct piece[]){ { true, 1ull << 40 } }, 1,
		     64 * 1024, false);

	st = cfs_objects_stats(objs);
	CHECK(st->new_objects == 5 && st->reused_objects == 5);
	CHECK(clean());

	/* Larger than the file system takes (ext4: 16 TiB): an error that
	 * names the object directory, and nothing left behind. */
	CHECK_OK(cfs_object_writer_new(&w, objs));
	if (w) {
		int r;

		cfs_object_writer_begin(w);
		CHECK_OK(cfs_object_writer_write(w, "x", 1));
		cfs_error_clear();
		r = cfs_object_writer_write_zeros(w, 1ull << 62);
		if (r == 0)
			r = cfs_object_writer_commit(w, d);
		CHECK(r == -EFBIG || r == -EINVAL);
		CHECK(strstr(cfs_error_message(), dir) != NULL);
		cfs_object_writer_begin(w);
		cfs_object_writer_free(w);
	}
	CHECK(clean());

	/* Without an object directory only the digest is computed: any size
	 * costs microseconds. */
	w = NULL;
	CHECK_OK(cfs_object_writer_new(&w, NULL));
	if (w) {
		cfs_verity *v = NULL;
		uint8_t want[CFS_DIGEST_SIZE];

		CHECK_OK(cfs_verity_new(&v));
		cfs_object_writer_begin(w);
		CHECK_OK(cfs_object_writer_write(w, "abc", 3));
		CHECK_OK(cfs_object_writer_write_zeros(w, 1ull << 62));
		CHECK_OK(cfs_object_writer_commit(w, d));
		CHECK_OK(cfs_verity_update(v, "abc", 3));
		CHECK_OK(cfs_verity_update_zeros(v, 1ull << 62));
		CHECK_OK(cfs_verity_final(v, want));
		CHECK(memcmp(d, want, sizeof(d)) == 0);
		cfs_verity_free(v);
		cfs_object_writer_free(w);
	}

	cfs_objects_free(objs);
	remove_tree(dir);
	return test_done();
}
