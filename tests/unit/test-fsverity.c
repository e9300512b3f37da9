/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * fs-verity digests: the buffer, fd and streaming paths must agree with
 * each other and with `fsverity digest` (fsverity-utils) for sizes around
 * block boundaries and for a file whose tree has three levels. Zeros
 * added as runs (cfs_verity_update_zeros, the holes of sparse files) and
 * cfs_verity_digest_fd on sparse files must agree with the tool on files
 * with holes of many sizes, with the roots of perfect trees derived
 * without tree code, and with make-hostile.py's Python for sizes no file
 * here can have (up to 2^64 - 1 bytes). A missing `fsverity` tool is a
 * failure, not a skip: without it nothing here is checked against an
 * independent implementation.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

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

/* A sparse file as lengths of data and of holes in turn, data first. */
struct layout {
	size_t n;
	uint64_t len[8];
};

#define MIB (1024 * 1024ull)

static const struct layout layouts[] = {
	/* holes alone: around a block, one and two hash blocks of them,
	 * and past 128 * 128 blocks (a third tree level) */
	{ 2, { 0, 1 } },
	{ 2, { 0, 4095 } },
	{ 2, { 0, 4096 } },
	{ 2, { 0, 4097 } },
	{ 2, { 0, 128 * 4096 } },
	{ 2, { 0, 129 * 4096 - 1 } },
	{ 2, { 0, 64 * MIB + 4097 } },
	/* holes at the end, after data that leaves a partial block */
	{ 2, { 1, 4095 } },
	{ 2, { 100, 129 * 4096 } },
	{ 2, { 4096, 64 * MIB + 4095 } },
	{ 2, { 70000, 200 * MIB + 3 } },
	/* holes at the start and in the middle */
	{ 3, { 0, 5000, 3000 } },
	{ 3, { 0, 128 * 4096, 1 } },
	{ 4, { 5000, MIB, 70000, 3 } },
	{ 5, { 4095, 3 * 128 * 4096 + 100, 1, 64 * MIB, 4096 } },
	{ 8, { 1, 1, 1, 4096, 1, 1, 4095, 1 } },
};

/* Feed @l to @v: data from @data (random, as in the file), holes as runs
 * of zeros, each hole in @split calls. */
static int feed_layout(cfs_verity *v, const struct layout *l,
		       const uint8_t *data, unsigned int split)
{
	uint64_t off = 0;
	int r = 0;

	for (size_t i = 0; i < l->n && r == 0; i++) {
		uint64_t len = l->len[i], done = 0;

		if (i % 2 == 0) {
			r = cfs_verity_update(v, data + off, (size_t)len);
			off += len;
			continue;
		}
		for (unsigned int k = 1; k <= split && r == 0; k++) {
			uint64_t n = k == split ? len - done : len / split;

			r = cfs_verity_update_zeros(v, n);
			done += n;
		}
	}
	return r;
}

/* Holes against `fsverity digest` of the same sparse file, fed as runs
 * (whole, and split in three) and read back by cfs_verity_digest_fd. */
static void check_layout(cfs_verity *v, const char dir[1024],
			 const struct layout *l, uint64_t seed)
{
	uint8_t want[CFS_DIGEST_SIZE], got[CFS_DIGEST_SIZE];
	char path[4096], hex[CFS_DIGEST_HEX_SIZE + 1];
	uint64_t data_len = 0, size = 0;
	uint8_t *data;
	int fd;

	for (size_t i = 0; i < l->n; i++) {
		size += l->len[i];
		if (i % 2 == 0)
			data_len += l->len[i];
	}
	data = malloc(data_len ? data_len : 1);
	CHECK(data != NULL);
	if (!data)
		return;
	fill_random(data, data_len, seed);
	snprintf(path, sizeof(path), "%s/sparse-%llu", dir,
		 (unsigned long long)seed);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	for (size_t i = 0, off = 0, doff = 0; fd >= 0 && i < l->n; i++) {
		if (i % 2 == 0) {
			CHECK(pwrite(fd, data + doff, l->len[i], (off_t)off) ==
			      (ssize_t)l->len[i]);
			doff += l->len[i];
		}
		off += l->len[i];
	}
	CHECK(fd >= 0 && ftruncate(fd, (off_t)size) == 0);
	memset(want, 0, sizeof(want));
	CHECK(tool_digest(path, want));
	cfs_digest_to_hex(want, hex);
	printf("sparse %12llu bytes (%zu runs) sha256:%s\n",
	       (unsigned long long)size, l->n, hex);

	for (unsigned int split = 1; split <= 3; split += 2) {
		memset(got, 0, sizeof(got));
		CHECK_OK(feed_layout(v, l, data, split));
		CHECK_OK(cfs_verity_final(v, got));
		if (memcmp(got, want, sizeof(got)) != 0)
			fprintf(stderr,
				"layout of %llu bytes, split %u: "
				"mismatch\n",
				(unsigned long long)size, split);
		CHECK(memcmp(got, want, sizeof(got)) == 0);
	}
	memset(got, 0, sizeof(got));
	CHECK(fd >= 0 && lseek(fd, 0, SEEK_SET) == 0);
	CHECK_OK(cfs_verity_digest_fd(fd, got));
	CHECK(memcmp(got, want, sizeof(got)) == 0);
	if (fd >= 0)
		close(fd);
	CHECK(unlink(path) == 0);
	free(data);
}

/* The digest fs-verity gives @size bytes whose tree has a single hash
 * @root at the top. */
static void descriptor_digest(uint64_t size, const uint8_t root[32],
			      uint8_t out[CFS_DIGEST_SIZE])
{
	uint8_t desc[256] = { 1, 1, 12 };

	for (int i = 0; i < 8; i++)
		desc[8 + i] = (uint8_t)(size >> (8 * i));
	memcpy(desc + 16, root, 32);
	CHECK(EVP_Digest(desc, sizeof(desc), out, NULL, EVP_sha256(), NULL));
}

/* Zeros filling a perfect tree of @levels levels above the data blocks:
 * every block of each level is 128 copies of the hash below, so the root
 * is SHA-256 applied @levels times over, starting from a block of
 * zeros. Derived here without any tree code, for trees up to the eight
 * levels of a 2^61-byte file, and compared with cfs_verity_update_zeros,
 * in one run and in two. */
static void check_perfect_trees(cfs_verity *v)
{
	uint8_t block[4096] = { 0 }, h[32], want[32], got[32];
	uint64_t size = 4096;

	CHECK(EVP_Digest(block, sizeof(block), h, NULL, EVP_sha256(), NULL));
	for (int levels = 0; levels <= 7; levels++) {
		descriptor_digest(size, h, want);
		CHECK_OK(cfs_verity_update_zeros(v, size));
		CHECK_OK(cfs_verity_final(v, got));
		CHECK(memcmp(got, want, sizeof(got)) == 0);
		CHECK_OK(cfs_verity_update_zeros(v, size / 3));
		CHECK_OK(cfs_verity_update_zeros(v, size - size / 3));
		CHECK_OK(cfs_verity_final(v, got));
		CHECK(memcmp(got, want, sizeof(got)) == 0);

		for (int i = 0; i < 128; i++)
			memcpy(block + 32 * i, h, 32);
		CHECK(EVP_Digest(block, sizeof(block), h, NULL, EVP_sha256(),
				 NULL));
		size *= 128;
	}
}

/* Sizes no test file can have, against the digests of
 * tests/oci/make-hostile.py's zero_verity() (Python, equal hashes in
 * runs; it gave the same as `fsverity digest` for 8 GiB + 4097 bytes of
 * zeros, which takes the tool 40 s): any size up to 2^64 - 1 costs
 * microseconds, and no more than that. */
static void check_huge_zeros(cfs_verity *v, const char dir[1024])
{
	static const struct {
		uint64_t size;
		const char *hex;
	} known[] = {
		{ 1ull << 40, "6e6073779fecb21db0e39f3b78ad40f18f832163fbc651cd"
			      "850c1e842a7cdefb" },
		{ (1ull << 40) + 1, "a233dac9b5f05b9f06ecbc9beebc02bc214079e56a"
				    "b6b43b07719e306d5c592f" },
		{ (1ull << 62) + 12345, "4d6e67fc4d06ee50c7fb897ab61f605bfd8eb3"
					"d3f00dd1272dd3d9c7f0f5b875" },
		{ UINT64_MAX, "9cae6be75ddfe56f3cd1c00ceb36e560f324b9b10705906f"
			      "362e630f796ee94b" },
	};
	uint8_t d[CFS_DIGEST_SIZE];
	char hex[CFS_DIGEST_HEX_SIZE + 1], path[1100];
	double t;
	int fd;

	for (size_t i = 0; i < CFS_ARRAY_SIZE(known); i++) {
		t = now();
		CHECK_OK(cfs_verity_update_zeros(v, 1));
		CHECK_OK(cfs_verity_update_zeros(v, known[i].size - 1));
		CHECK_OK(cfs_verity_final(v, d));
		t = now() - t;
		cfs_digest_to_hex(d, hex);
		printf("zeros %20llu: sha256:%s (%.6f s)\n",
		       (unsigned long long)known[i].size, hex, t);
		CHECK(strcmp(hex, known[i].hex) == 0);
		CHECK(t < 1.0);
	}

	/* Past 2^64 bytes: an error, and the context stays failed. */
	CHECK_OK(cfs_verity_update_zeros(v, UINT64_MAX));
	cfs_error_clear();
	CHECK_ERR(cfs_verity_update_zeros(v, 1), EFBIG);
	CHECK(strstr(cfs_error_message(), "2^64") != NULL);
	CHECK_ERR(cfs_verity_update(v, "x", 1), EFBIG);
	CHECK_ERR(cfs_verity_final(v, d), EFBIG);
	/* final() reset it */
	CHECK_OK(cfs_verity_final(v, d));
	cfs_digest_to_hex(d, hex);
	CHECK(strcmp(hex, empty_digest) == 0);

	/* A 1 TiB file of one hole: cfs_verity_digest_fd never reads it. */
	snprintf(path, sizeof(path), "%s/hole-1tib", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	CHECK(fd >= 0 && ftruncate(fd, (off_t)known[0].size) == 0);
	t = now();
	CHECK_OK(cfs_verity_digest_fd(fd, d));
	t = now() - t;
	cfs_digest_to_hex(d, hex);
	printf("digest_fd of a 1 TiB hole: %.6f s\n", t);
	CHECK(strcmp(hex, known[0].hex) == 0);
	if (fd >= 0)
		close(fd);
	CHECK(unlink(path) == 0);
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
	for (size_t i = 0; i < CFS_ARRAY_SIZE(layouts); i++)
		check_layout(v, dir, &layouts[i], 0x5a5e0000 + i);
	check_perfect_trees(v);
	check_huge_zeros(v, dir);
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
