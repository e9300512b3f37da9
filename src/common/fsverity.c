/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Streaming fs-verity file digest: SHA-256, 4096-byte Merkle tree blocks,
 * no salt (what `fsverity digest` prints and FS_IOC_MEASURE_VERITY gives).
 *
 * The Merkle tree is built bottom-up while the data streams in: each level
 * keeps only its one partial block of hashes, and a block that fills up is
 * hashed at once into the level above. Memory is therefore bounded by
 * VERITY_MAX_LEVELS + 3 blocks whatever the file size.
 *
 * Zeros (the holes of sparse files) are added as runs: every block of
 * zeros has the same hash, and so has every block made of copies of one
 * hash, so a run of any length costs a few hashes per level.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include <cfs/image.h>

#include "cleanup.h"
#include "error.h"
#include "util.h"

#define VERITY_LOG_BLOCK_SIZE 12
#define VERITY_BLOCK_SIZE (1u << VERITY_LOG_BLOCK_SIZE)
/* Values of fsverity_descriptor.hash_algorithm and .version. */
#define VERITY_HASH_ALG_SHA256 1
#define VERITY_DESCRIPTOR_VERSION 1
/* sizeof(struct fsverity_descriptor) and its root_hash field. */
#define VERITY_DESCRIPTOR_SIZE 256
#define VERITY_ROOT_HASH_FIELD 64
static_assert(16 + VERITY_ROOT_HASH_FIELD + 32 + 144 == VERITY_DESCRIPTOR_SIZE,
	      "fsverity_descriptor layout");
/* 128 hashes per block and at most 2^52 data blocks (a 64-bit size) need
 * ceil(52 / 7) = 8 tree levels, the kernel's FS_VERITY_MAX_LEVELS.
 * levels[i] below collects the hashes of tree level i - 1 (levels[0]: of
 * the data blocks), so the root hash, alone above the top tree level,
 * sits in levels[VERITY_MAX_LEVELS]. */
#define VERITY_MAX_LEVELS 8
#define VERITY_HASHES_PER_BLOCK (VERITY_BLOCK_SIZE / CFS_DIGEST_SIZE)
/* Read size of cfs_verity_digest_fd: a multiple of the block size, so
 * that whole blocks are hashed straight from the read buffer. */
#define VERITY_READ_SIZE (256u * 1024)

struct verity_level {
	uint8_t block[VERITY_BLOCK_SIZE]; /* pending hashes of this level */
	size_t fill; /* bytes used in block */
	uint64_t count; /* hashes ever added to this level */
};

struct cfs_verity {
	EVP_MD *md;
	EVP_MD_CTX *ctx;
	uint64_t size; /* data bytes seen */
	int err; /* first failure, sticky until reset */
	size_t fill; /* bytes used in data */
	uint8_t data[VERITY_BLOCK_SIZE]; /* partial data block */
	struct verity_level levels[VERITY_MAX_LEVELS + 1];
	/* runs of equal hashes (cfs_verity_update_zeros) */
	uint8_t zero_hash[CFS_DIGEST_SIZE]; /* of a block of zeros */
	bool have_zero_hash;
	uint8_t run_block[VERITY_BLOCK_SIZE];
};

CFS_DEFINE_CLEANUP(cfs_verity *, cfs_verity_free)

/* Record the oldest queued OpenSSL error (or a generic reason) and drop
 * the rest of the queue, which would otherwise leak into other callers. */
static int ossl_error(int err, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	ERR_clear_error();
	if (!e)
		return cfs_error(err, "fs-verity: %s failed", what);
	ERR_error_string_n(e, buf, sizeof(buf));
	return cfs_error(err, "fs-verity: %s: %s", what, buf);
}

static int sha256(cfs_verity *v, const void *data, size_t len,
		  uint8_t out[CFS_DIGEST_SIZE])
{
	unsigned int n;

	/* Re-initialising the same EVP_MD_CTX avoids an allocation per
	 * block; with the pre-fetched EVP_MD there is no lookup either. */
	if (!EVP_DigestInit_ex(v->ctx, v->md, NULL) ||
	    !EVP_DigestUpdate(v->ctx, data, len) ||
	    !EVP_DigestFinal_ex(v->ctx, out, &n))
		return ossl_error(EIO, "SHA-256");
	assert(n == CFS_DIGEST_SIZE);
	return 0;
}

/* Add one hash to @level, hashing full blocks into the levels above. */
static int push_hash(cfs_verity *v, unsigned int level,
		     const uint8_t hash[CFS_DIGEST_SIZE])
{
	uint8_t up[CFS_DIGEST_SIZE];

	for (;;) {
		struct verity_level *l;
		int r;

		/* A 64-bit data size cannot need more levels. */
		assert(level <= VERITY_MAX_LEVELS);
		l = &v->levels[level];
		memcpy(l->block + l->fill, hash, CFS_DIGEST_SIZE);
		l->fill += CFS_DIGEST_SIZE;
		l->count++;
		if (l->fill < VERITY_BLOCK_SIZE)
			return 0;
		r = sha256(v, l->block, VERITY_BLOCK_SIZE, up);
		if (r < 0)
			return r;
		l->fill = 0;
		hash = up;
		level++;
	}
}

static int hash_data_block(cfs_verity *v, const uint8_t *block)
{
	uint8_t h[CFS_DIGEST_SIZE];
	int r;

	r = sha256(v, block, VERITY_BLOCK_SIZE, h);
	if (r < 0)
		return r;
	return push_hash(v, 0, h);
}

void cfs_verity_reset(cfs_verity *v)
{
	v->size = 0;
	v->err = 0;
	v->fill = 0;
	for (size_t i = 0; i <= VERITY_MAX_LEVELS; i++) {
		v->levels[i].fill = 0;
		v->levels[i].count = 0;
	}
}

void cfs_verity_free(cfs_verity *v)
{
	if (!v)
		return;
	EVP_MD_CTX_free(v->ctx);
	EVP_MD_free(v->md);
	free(v);
}

int cfs_verity_new(cfs_verity **out)
{
	_cleanup_(cfs_verity_freep) cfs_verity *v = NULL;

	v = calloc(1, sizeof(*v));
	if (!v)
		return cfs_error_errno(ENOMEM, "fs-verity: context");
	v->md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!v->md)
		return ossl_error(ENOTSUP, "fetching SHA-256");
	v->ctx = EVP_MD_CTX_new();
	if (!v->ctx)
		return ossl_error(ENOMEM, "creating digest context");
	cfs_verity_reset(v);
	*out = TAKE_PTR(v);
	return 0;
}

/* Count @len more bytes of data: fs-verity sizes are 64-bit. */
static int add_size(cfs_verity *v, uint64_t len)
{
	if (len > UINT64_MAX - v->size)
		return cfs_error(EFBIG,
				 "fs-verity: data larger than 2^64 bytes");
	v->size += len;
	return 0;
}

static int verity_update(cfs_verity *v, const uint8_t *p, size_t len)
{
	int r;

	r = add_size(v, len);
	if (r < 0)
		return r;

	if (v->fill) {
		size_t n = CFS_MIN(len, VERITY_BLOCK_SIZE - v->fill);

		memcpy(v->data + v->fill, p, n);
		v->fill += n;
		p += n;
		len -= n;
		if (v->fill < VERITY_BLOCK_SIZE)
			return 0;
		r = hash_data_block(v, v->data);
		if (r < 0)
			return r;
		v->fill = 0;
	}
	/* Whole blocks are hashed in place, without a copy. */
	for (; len >= VERITY_BLOCK_SIZE;
	     p += VERITY_BLOCK_SIZE, len -= VERITY_BLOCK_SIZE) {
		r = hash_data_block(v, p);
		if (r < 0)
			return r;
	}
	if (len) {
		memcpy(v->data, p, len);
		v->fill = len;
	}
	return 0;
}

int cfs_verity_update(cfs_verity *v, const void *data, size_t len)
{
	if (v->err)
		return cfs_error(-v->err, "fs-verity: an earlier step failed");
	v->err = verity_update(v, data, len);
	return v->err;
}

/*
 * Add @count copies of @hash to @level. Whole blocks of copies all have
 * the same hash, so they form a run of copies one level up: a run climbs
 * the tree with one SHA-256 per level, plus the hashes it needs to fill
 * the partial blocks it meets, whatever @count.
 */
static int push_hash_run(cfs_verity *v, unsigned int level,
			 const uint8_t hash[CFS_DIGEST_SIZE], uint64_t count)
{
	uint8_t cur[CFS_DIGEST_SIZE];
	int r;

	memcpy(cur, hash, sizeof(cur));
	while (count) {
		struct verity_level *l;
		uint64_t blocks;
		size_t rest;

		assert(level <= VERITY_MAX_LEVELS);
		l = &v->levels[level];
		/* What the partial block of this level still takes. */
		while (l->fill && count) {
			r = push_hash(v, level, cur);
			if (r < 0)
				return r;
			count--;
		}
		if (!count)
			break;
		blocks = count / VERITY_HASHES_PER_BLOCK;
		rest = (size_t)(count % VERITY_HASHES_PER_BLOCK);
		/* The copies after the whole blocks start this level's next
		 * partial block; it reaches the level above only once it is
		 * full or closed, so after the whole blocks, as it must. */
		for (size_t i = 0; i < rest; i++)
			memcpy(l->block + i * CFS_DIGEST_SIZE, cur,
			       CFS_DIGEST_SIZE);
		l->fill = rest * CFS_DIGEST_SIZE;
		l->count += count;
		if (!blocks)
			break;
		for (size_t i = 0; i < VERITY_HASHES_PER_BLOCK; i++)
			memcpy(v->run_block + i * CFS_DIGEST_SIZE, cur,
			       CFS_DIGEST_SIZE);
		r = sha256(v, v->run_block, VERITY_BLOCK_SIZE, cur);
		if (r < 0)
			return r;
		count = blocks;
		level++;
	}
	return 0;
}

static int verity_update_zeros(cfs_verity *v, uint64_t len)
{
	int r;

	r = add_size(v, len);
	if (r < 0)
		return r;

	if (v->fill) {
		size_t n = (size_t)CFS_MIN(
			len, (uint64_t)(VERITY_BLOCK_SIZE - v->fill));

		memset(v->data + v->fill, 0, n);
		v->fill += n;
		len -= n;
		if (v->fill < VERITY_BLOCK_SIZE)
			return 0;
		r = hash_data_block(v, v->data);
		if (r < 0)
			return r;
		v->fill = 0;
	}
	if (len >= VERITY_BLOCK_SIZE) {
		if (!v->have_zero_hash) {
			memset(v->run_block, 0, VERITY_BLOCK_SIZE);
			r = sha256(v, v->run_block, VERITY_BLOCK_SIZE,
				   v->zero_hash);
			if (r < 0)
				return r;
			v->have_zero_hash = true;
		}
		r = push_hash_run(v, 0, v->zero_hash, len / VERITY_BLOCK_SIZE);
		if (r < 0)
			return r;
	}
	v->fill = (size_t)(len % VERITY_BLOCK_SIZE);
	memset(v->data, 0, v->fill);
	return 0;
}

int cfs_verity_update_zeros(cfs_verity *v, uint64_t len)
{
	if (v->err)
		return cfs_error(-v->err, "fs-verity: an earlier step failed");
	v->err = verity_update_zeros(v, len);
	return v->err;
}

/* Complete the tree and compute the root hash into @root. */
static int verity_root(cfs_verity *v, uint8_t root[CFS_DIGEST_SIZE])
{
	unsigned int level;
	int r;

	/* An empty file has no tree and an all-zero root hash. */
	if (v->size == 0) {
		memset(root, 0, CFS_DIGEST_SIZE);
		return 0;
	}
	if (v->fill) {
		memset(v->data + v->fill, 0, VERITY_BLOCK_SIZE - v->fill);
		r = hash_data_block(v, v->data);
		if (r < 0)
			return r;
		v->fill = 0;
	}
	/* Close the partial block of each level until a level holds a
	 * single hash: that is the root (for a one-block file, the hash of
	 * the data block itself). */
	for (level = 0; v->levels[level].count > 1; level++) {
		struct verity_level *l = &v->levels[level];
		uint8_t h[CFS_DIGEST_SIZE];

		if (!l->fill)
			continue;
		memset(l->block + l->fill, 0, VERITY_BLOCK_SIZE - l->fill);
		r = sha256(v, l->block, VERITY_BLOCK_SIZE, h);
		if (r < 0)
			return r;
		l->fill = 0;
		r = push_hash(v, level + 1, h);
		if (r < 0)
			return r;
	}
	memcpy(root, v->levels[level].block, CFS_DIGEST_SIZE);
	return 0;
}

int cfs_verity_final(cfs_verity *v, uint8_t digest[CFS_DIGEST_SIZE])
{
	uint8_t desc[VERITY_DESCRIPTOR_SIZE] = { 0 };
	uint64_t size = v->size;
	int r;

	if (v->err) {
		r = cfs_error(-v->err, "fs-verity: an earlier step failed");
		goto out;
	}
	/* struct fsverity_descriptor: version, hash_algorithm,
	 * log_blocksize, salt_size, le32 reserved, le64 data_size at 8,
	 * root_hash[64] at 16, then salt and reserved bytes, all zero. */
	desc[0] = VERITY_DESCRIPTOR_VERSION;
	desc[1] = VERITY_HASH_ALG_SHA256;
	desc[2] = VERITY_LOG_BLOCK_SIZE;
	for (int i = 0; i < 8; i++)
		desc[8 + i] = (uint8_t)(size >> (8 * i));
	r = verity_root(v, desc + 16);
	if (r < 0)
		goto out;
	r = sha256(v, desc, sizeof(desc), digest);
out:
	/* Whatever happened, the context is ready for new data. */
	cfs_verity_reset(v);
	return r;
}

int cfs_verity_digest_buffer(const void *data, size_t len,
			     uint8_t digest[CFS_DIGEST_SIZE])
{
	_cleanup_(cfs_verity_freep) cfs_verity *v = NULL;
	int r;

	r = cfs_verity_new(&v);
	if (r < 0)
		return r;
	r = cfs_verity_update(v, data, len);
	if (r < 0)
		return r;
	return cfs_verity_final(v, digest);
}

/*
 * Where the data of the regular file @fd goes on from @off: the bytes up
 * to *data are a hole (zeros that need no reading), data follows up to
 * *data_end. SEEK_DATA finds nothing after the last data (ENXIO): then
 * the hole goes up to the file size. Where holes cannot be asked for,
 * everything is data.
 */
static int next_data(int fd, uint64_t off, uint64_t *data, uint64_t *data_end)
{
	off_t d = lseek(fd, (off_t)off, SEEK_DATA), h;
	struct stat st;

	if (d < 0 && errno == ENXIO) {
		if (fstat(fd, &st) < 0)
			return -errno;
		*data = *data_end = CFS_MAX(off, (uint64_t)st.st_size);
		return 0;
	}
	if (d < 0) {
		*data = off;
		*data_end = UINT64_MAX;
		return lseek(fd, (off_t)off, SEEK_SET) < 0 ? -errno : 0;
	}
	h = lseek(fd, d, SEEK_HOLE);
	if (h < 0 || lseek(fd, d, SEEK_SET) < 0)
		return -errno;
	*data = (uint64_t)d;
	*data_end = (uint64_t)h;
	return 0;
}

int cfs_verity_digest_fd(int fd, uint8_t digest[CFS_DIGEST_SIZE])
{
	_cleanup_(cfs_verity_freep) cfs_verity *v = NULL;
	_cleanup_free_ uint8_t *buf = NULL;
	uint64_t off = 0, data_end = UINT64_MAX;
	struct stat st;
	off_t cur;
	int r;

	r = cfs_verity_new(&v);
	if (r < 0)
		return r;
	buf = malloc(VERITY_READ_SIZE);
	if (!buf)
		return cfs_error_errno(ENOMEM, "fs-verity: read buffer");
	/* The holes of a sparse regular file are hashed without reading
	 * them (a 1 TiB file with one data block costs one block); other
	 * files are read to their end. */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (cur = lseek(fd, 0, SEEK_CUR)) >= 0)
		off = data_end = (uint64_t)cur;
	for (;;) {
		ssize_t n;

		if (off == data_end) {
			uint64_t data = off;

			r = next_data(fd, off, &data, &data_end);
			if (r < 0)
				return cfs_error_errno(-r,
						       "fs-verity: seeking in "
						       "fd %d at byte %llu",
						       fd,
						       (unsigned long long)off);
			r = cfs_verity_update_zeros(v, data - off);
			if (r < 0)
				return r;
			off = data;
			if (data == data_end)
				break;
		}
		n = read(fd, buf,
			 (size_t)CFS_MIN((uint64_t)VERITY_READ_SIZE,
					 data_end - off));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return cfs_error_errno(errno,
					       "fs-verity: reading fd %d at "
					       "byte %llu",
					       fd, (unsigned long long)off);
		}
		if (n == 0)
			break;
		r = cfs_verity_update(v, buf, (size_t)n);
		if (r < 0)
			return r;
		off += (uint64_t)n;
	}
	return cfs_verity_final(v, digest);
}
