/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * fs-verity digests: the buffer, fd and streaming paths must agree with
 * each other and with `fsverity digest` (fsverity-utils) for sizes around
 * block boundaries and for a file whose tree has three levels. A missing
 * `fsverity` tool is a failure, not a skip: without it nothing here is
 * checked against an independent implementation.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cfs/image.h>

#include "common/util.h"
#include "test.h"

/* fs-verity digest of an empty file (descriptor with size 0 and a zero
 * root hash), as printed by `fsverity digest`. */
static const char empty_digest[] =
	"3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95";

/* Chunk sizes for update(): odd, below, at either side of a block, and
 * across many blocks. */
static const size_t chunks[] = { 1, 7, 4095, 4097, 65537 };

static uint64_t prng_state;

/* splitmix64: deterministic, fast, and never a run of zeros. */
static uint64_t prng_next(void)
{
	uint64_t z = (prng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void fill_random(uint8_t *buf, size_t len, uint64_t seed)
{
	prng_state = seed;
	for (size_t i = 0; i < len; i += 8) {
		uint64_t x = prng_next();
		size_t n = CFS_MIN(8, len - i);

		memcpy(buf + i, &x, n);
	}
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run `fsverity digest PATH` and parse "sha256:<hex> PATH". */
static bool tool_digest(const char *path, uint8_t digest[CFS_DIGEST_SIZE])
{
	char cmd[4200], line[4300], hex[CFS_DIGEST_HEX_SIZE + 1];
	FILE *p;
	int status;
	bool ok = false;

	snprintf(cmd, sizeof(cmd), "fsverity digest -- '%s'", path);
	p = popen(cmd, "r");
	if (!p) {
		fprintf(stderr, "popen(%s): %s\n", cmd, strerror(errno));
		return false;
	}
	if (fgets(line, sizeof(line), p) && strncmp(line, "sha256:", 7) == 0 &&
	    strlen(line) > 7 + CFS_DIGEST_HEX_SIZE &&
	    line[7 + CFS_DIGEST_HEX_SIZE] == ' ') {
		memcpy(hex, line + 7, CFS_DIGEST_HEX_SIZE);
		hex[CFS_DIGEST_HEX_SIZE] = '\0';
		ok = cfs_digest_from_hex(digest, hex) == 0;
	}
	status = pclose(p);
	if (status != 0) {
		fprintf(stderr,
			"'%s' failed (%s %d); is fsverity-utils "
			"installed?\n",
			cmd, WIFEXITED(status) ? "exit status" : "wait status",
			WIFEXITED(status) ? WEXITSTATUS(status) : status);
		ok = false;
	}
	if (!ok)
		fprintf(stderr, "no digest from '%s'\n", cmd);
	return ok;
}

static void stream(cfs_verity *v, const uint8_t *buf, size_t len,
		   const size_t *sizes, size_t nsizes,
		   uint8_t digest[CFS_DIGEST_SIZE])
{
	size_t off = 0;
	int r = 0;

	/* One CHECK for the whole stream, not one per call. */
	for (size_t i = 0; off < len && r == 0; i++) {
		size_t n = CFS_MIN(sizes[i % nsizes], len - off);

		r = cfs_verity_update(v, buf + off, n);
		off += n;
	}
	CHECK_OK(r);
	/* A zero-length update is harmless anywhere. */
	CHECK_OK(cfs_verity_update(v, buf, 0));
	CHECK_OK(cfs_verity_final(v, digest));
}

/* @dir is shorter than 1024 bytes. */
static void check_size(cfs_verity *v, const char dir[1024], size_t size,
		       uint64_t seed)
{
	char path[4096], hex[CFS_DIGEST_HEX_SIZE + 1];
	uint8_t want[CFS_DIGEST_SIZE], got[CFS_DIGEST_SIZE];
	uint8_t *buf;
	double t;
	int fd;

	buf = malloc(size ? size : 1);
	CHECK(buf != NULL);
	if (!buf)
		return;
	fill_random(buf, size, seed);
	snprintf(path, sizeof(path), "%s/data-%zu", dir, size);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	if (fd < 0) {
		free(buf);
		return;
	}
	CHECK_OK(cfs_write_all(fd, buf, size));
	CHECK(close(fd) == 0);

	memset(want, 0, sizeof(want));
	CHECK(tool_digest(path, want));
	cfs_digest_to_hex(want, hex);
	printf("%10zu sha256:%s\n", size, hex);
	if (size == 0)
		CHECK(strcmp(hex, empty_digest) == 0);

	t = now();
	CHECK_OK(cfs_verity_digest_buffer(buf, size, got));
	t = now() - t;
	CHECK(memcmp(got, want, sizeof(got)) == 0);
	if (size >= 64 << 20)
		printf("digest_buffer: %zu bytes in %.3f s, %.0f MB/s\n", size,
		       t, (double)size / t / 1e6);

	fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	memset(got, 0, sizeof(got));
	t = now();
	CHECK_OK(cfs_verity_digest_fd(fd, got));
	t = now() - t;
	CHECK(memcmp(got, want, sizeof(got)) == 0);
	if (size >= 64 << 20)
		printf("digest_fd:     %zu bytes in %.3f s, %.0f MB/s\n", size,
		       t, (double)size / t / 1e6);
	/* From the current offset: at EOF only the empty file is left. */
	CHECK_OK(cfs_verity_digest_fd(fd, got));
	cfs_digest_to_hex(got, hex);
	CHECK(strcmp(hex, empty_digest) == 0);
	close(fd);

	/* All chunk sizes interleaved, then each alone (bytewise streaming
	 * is kept to the smaller files to keep the test quick). */
	memset(got, 0, sizeof(got));
	stream(v, buf, size, chunks, CFS_ARRAY_SIZE(chunks), got);
	CHECK(memcmp(got, want, sizeof(got)) == 0);
	for (size_t i = 0; i < CFS_ARRAY_SIZE(chunks); i++) {
		if (chunks[i] < 4096 && size > (2 << 20))
			continue;
		memset(got, 0, sizeof(got));
		stream(v, buf, size, &chunks[i], 1, got);
		if (memcmp(got, want, sizeof(got)) != 0)
			fprintf(stderr, "size %zu, chunk %zu: mismatch\n", size,
				chunks[i]);
		CHECK(memcmp(got, want, sizeof(got)) == 0);
	}

	/* reset() drops data already fed in. */
	CHECK_OK(cfs_verity_update(v, buf, size / 3));
	CHECK_OK(cfs_verity_update(v, "junk", 4));
	cfs_verity_reset(v);
	memset(got, 0, sizeof(got));
	stream(v, buf, size, &chunks[4], 1, got);
	CHECK(memcmp(got, want, sizeof(got)) == 0);

	CHECK(unlink(path) == 0);
	free(buf);
}

static void check_hex(void)
{
	uint8_t d[CFS_DIGEST_SIZE], back[CFS_DIGEST_SIZE];
	char hex[CFS_DIGEST_HEX_SIZE + 1], upper[CFS_DIGEST_HEX_SIZE + 1];
	char path[CFS_DIGEST_HEX_SIZE + 2];

	fill_random(d, sizeof(d), 7);
	cfs_digest_to_hex(d, hex);
	CHECK(strlen(hex) == CFS_DIGEST_HEX_SIZE);
	CHECK(strspn(hex, "0123456789abcdef") == CFS_DIGEST_HEX_SIZE);
	CHECK_OK(cfs_digest_from_hex(back, hex));
	CHECK(memcmp(d, back, sizeof(d)) == 0);
	for (size_t i = 0; i <= CFS_DIGEST_HEX_SIZE; i++)
		upper[i] = (char)(hex[i] >= 'a' ? hex[i] - 'a' + 'A' : hex[i]);
	memset(back, 0, sizeof(back));
	CHECK_OK(cfs_digest_from_hex(back, upper));
	CHECK(memcmp(d, back, sizeof(d)) == 0);

	CHECK_OK(cfs_digest_from_hex(back, empty_digest));
	cfs_digest_to_hex(back, hex);
	CHECK(strcmp(hex, empty_digest) == 0);

	cfs_digest_to_object_path(back, path);
	CHECK(strncmp(path, "3d/", 3) == 0);
	CHECK(strcmp(path + 3, empty_digest + 2) == 0);

	CHECK_ERR(cfs_digest_from_hex(back, ""), EINVAL);
	CHECK_ERR(cfs_digest_from_hex(back, empty_digest + 1), EINVAL);
	snprintf(upper, sizeof(upper), "%s", empty_digest);
	upper[10] = 'g';
	CHECK_ERR(cfs_digest_from_hex(back, upper), EINVAL);
	upper[10] = ' ';
	CHECK_ERR(cfs_digest_from_hex(back, upper), EINVAL);
}

int main(void)
{
	/* Around block boundaries, a two-level tree, and 16385 blocks: more
	 * than 128 * 128, so three levels. */
	static const size_t sizes[] = {
		0, 1, 4095, 4096, 4097, 1 << 20, (1 << 20) + 1, (64 << 20) + 1,
	};
	const char *base = getenv("CFS_TEST_TMP");
	char dir[1024], hex[CFS_DIGEST_HEX_SIZE + 1];
	uint8_t d[CFS_DIGEST_SIZE];
	cfs_verity *v = NULL;
	int fd;

	if (!base || !*base)
		base = "/tmp";
	if ((size_t)snprintf(dir, sizeof(dir), "%s/test-fsverity-XXXXXX",
			     base) >= sizeof(dir) ||
	    !mkdtemp(dir)) {
		fprintf(stderr, "mkdtemp(%s): %s\n", dir, strerror(errno));
		return 1;
	}

	check_hex();

	CHECK_OK(cfs_verity_new(&v));
	if (!v)
		return test_done();
	/* A fresh context finishes as the empty file. */
	CHECK_OK(cfs_verity_final(v, d));
	cfs_digest_to_hex(d, hex);
	CHECK(strcmp(hex, empty_digest) == 0);
	for (size_t i = 0; i < CFS_ARRAY_SIZE(sizes); i++)
		check_size(v, dir, sizes[i], 0x5eed0000 + i);
	cfs_verity_free(v);
	cfs_verity_free(NULL);

	/* Read errors are reported, with a message. */
	cfs_error_clear();
	CHECK_ERR(cfs_verity_digest_fd(-1, d), EBADF);
	CHECK(strstr(cfs_error_message(), "fs-verity") != NULL);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_ERR(cfs_verity_digest_fd(fd, d), EISDIR);
	close(fd);

	CHECK(rmdir(dir) == 0);
	return test_done();
}
