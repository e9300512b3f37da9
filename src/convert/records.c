/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* Layer records (records.h): written while a layer is read, replayed
 * instead of reading it. */
#include "convert/records.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "common/cleanup.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/util.h"

/* Entry flags. */
#define RECORD_HARDLINK 0x1u
#define RECORD_LINK 0x2u /* a link target follows the path */
#define RECORD_INLINE 0x4u /* content bytes follow the size */
#define RECORD_OBJECT 0x8u /* an object digest follows the size */
#define RECORD_FLAGS 0xfu

#define HEADER_SIZE (8 + 32 + 8 + 8 + 8)
#define TRAILER_SIZE 32
/* The zstd level records are written with: a record is written once
 * and read on every import of its layer. Level 6 takes about 10 ms for
 * a layer of 5,000 files (749 KiB to 228 KiB; level 3: 239 KiB, level
 * 19: 222 KiB in 0.3 s). */
#define RECORD_ZSTD_LEVEL 6
static const uint8_t zstd_magic[4] = { 0x28, 0xb5, 0x2f, 0xfd };
/* Bounds for reading: what the writer can have put there. */
#define RECORD_NAME_MAX (64 * 1024)
#define RECORD_VALUE_MAX (1024 * 1024)
#define RECORD_XATTRS_MAX 4096

struct cfs_record_builder {
	uint8_t *buf;
	size_t len, cap;
	uint64_t entries;
	/* the objects the entries name, for their SHA-256 pairs */
	uint8_t (*objects)[CFS_DIGEST_SIZE];
	size_t n_objects, cap_objects;
};

int cfs_record_builder_new(struct cfs_record_builder **out)
{
	struct cfs_record_builder *b = calloc(1, sizeof(*b));

	if (!b)
		return -ENOMEM;
	b->cap = 64 * 1024;
	b->buf = malloc(b->cap);
	if (!b->buf) {
		free(b);
		return -ENOMEM;
	}
	b->len = HEADER_SIZE; /* filled in by cfs_record_write() */
	*out = b;
	return 0;
}

void cfs_record_builder_free(struct cfs_record_builder *b)
{
	if (!b)
		return;
	free(b->objects);
	free(b->buf);
	free(b);
}

static int put(struct cfs_record_builder *b, const void *p, size_t len)
{
	if (len > CFS_RECORD_MAX - b->len)
		return -EFBIG;
	if (b->len + len > b->cap) {
		size_t cap = b->cap;
		uint8_t *n;

		while (cap < b->len + len)
			cap *= 2;
		n = realloc(b->buf, cap);
		if (!n)
			return -ENOMEM;
		b->buf = n;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, p, len);
	b->len += len;
	return 0;
}

static void le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static int put32(struct cfs_record_builder *b, uint32_t v)
{
	uint8_t p[4];

	le32(p, v);
	return put(b, p, sizeof(p));
}

static int put64(struct cfs_record_builder *b, uint64_t v)
{
	uint8_t p[8];

	le64(p, v);
	return put(b, p, sizeof(p));
}

static int put_bytes(struct cfs_record_builder *b, const void *p, size_t len)
{
	int r = len > UINT32_MAX ? -EFBIG : put32(b, (uint32_t)len);

	return r < 0 ? r : put(b, p, len);
}

static int add_object(struct cfs_record_builder *b, const uint8_t *digest)
{
	if (b->n_objects == b->cap_objects) {
		size_t cap = b->cap_objects ? 2 * b->cap_objects : 1024;
		void *n = reallocarray(b->objects, cap, sizeof(*b->objects));

		if (!n)
			return -ENOMEM;
		b->objects = n;
		b->cap_objects = cap;
	}
	memcpy(b->objects[b->n_objects++], digest, CFS_DIGEST_SIZE);
	return 0;
}

static int pair_cmp(const void *a, const void *b)
{
	return memcmp(a, b, 2 * CFS_DIGEST_SIZE);
}

/* The pairs (SHA-256, object) of @b's objects that @sha256_of() knows,
 * sorted and each once, after the entries. */
static int put_pairs(struct cfs_record_builder *b,
		     bool (*sha256_of)(void *opaque, const uint8_t *object,
				       uint8_t *sha256),
		     void *opaque)
{
	uint8_t(*v)[2 * CFS_DIGEST_SIZE] = NULL;
	size_t n = 0, kept = 0;
	int r = 0;

	if (sha256_of && b->n_objects) {
		v = calloc(b->n_objects, sizeof(*v));
		if (!v)
			return -ENOMEM;
	}
	for (size_t i = 0; v && i < b->n_objects; i++) {
		if (!sha256_of(opaque, b->objects[i], v[n]))
			continue;
		memcpy(v[n] + CFS_DIGEST_SIZE, b->objects[i], CFS_DIGEST_SIZE);
		n++;
	}
	if (n)
		qsort(v, n, sizeof(*v), pair_cmp);
	for (size_t i = 0; r == 0 && i < n; i++) {
		if (kept && pair_cmp(v[i], v[i - 1]) == 0)
			continue;
		r = put(b, v[i], sizeof(v[i]));
		kept++;
	}
	free(v);
	return r < 0 ? r : put64(b, kept);
}

int cfs_record_add(struct cfs_record_builder *b,
		   const struct cfs_layer_entry *e, const cfs_inode *file)
{
	uint64_t size = file ? cfs_inode_size(file) : 0;
	const void *data = file ? cfs_inode_content(file) : NULL;
	const uint8_t *digest = file ? cfs_inode_digest(file) : NULL;
	uint32_t flags = 0;
	int r;

	if (e->hardlink)
		flags |= RECORD_HARDLINK;
	if (e->link)
		flags |= RECORD_LINK;
	if (size > 0 && data)
		flags |= RECORD_INLINE;
	else if (size > 0 && digest)
		flags |= RECORD_OBJECT;
	else
		size = 0;
	r = put32(b, flags);
	if (r == 0)
		r = put32(b, e->mode);
	if (r == 0)
		r = put32(b, e->uid);
	if (r == 0)
		r = put32(b, e->gid);
	if (r == 0)
		r = put64(b, (uint64_t)e->mtime_sec);
	if (r == 0)
		r = put32(b, e->mtime_nsec);
	if (r == 0)
		r = put64(b, e->rdev);
	if (r == 0)
		r = put_bytes(b, e->path, strlen(e->path));
	if (r == 0 && e->link)
		r = put_bytes(b, e->link, strlen(e->link));
	if (r == 0)
		r = put32(b, (uint32_t)e->n_xattrs);
	for (size_t i = 0; r == 0 && i < e->n_xattrs; i++) {
		r = put_bytes(b, e->xattrs[i].name, strlen(e->xattrs[i].name));
		if (r == 0)
			r = put_bytes(b, e->xattrs[i].value, e->xattrs[i].len);
	}
	if (r == 0)
		r = put64(b, size);
	if (r == 0 && (flags & RECORD_INLINE))
		r = put(b, data, (size_t)size);
	if (r == 0 && (flags & RECORD_OBJECT))
		r = put(b, digest, CFS_DIGEST_SIZE);
	if (r == 0 && (flags & RECORD_OBJECT))
		r = add_object(b, digest);
	if (r == 0)
		b->entries++;
	return r;
}

int cfs_record_write(struct cfs_record_builder *b, int dirfd,
		     const uint8_t diff_id[32], uint64_t tar_bytes,
		     uint64_t xattrs_dropped,
		     bool (*sha256_of)(void *opaque, const uint8_t *object,
				       uint8_t *sha256),
		     void *opaque)
{
	char hex[CFS_DIGEST_HEX_SIZE + 1];
	uint8_t trailer[TRAILER_SIZE];
	size_t entries_end = b->len;
	uint8_t *z = NULL;
	size_t zlen = 0;
	int r;

	/* the pairs and the trailer go after the entries for the write
	 * only: the builder stays reusable */
	r = put_pairs(b, sha256_of, opaque);
	if (r == 0) {
		memcpy(b->buf, CFS_RECORD_MAGIC, 8);
		memcpy(b->buf + 8, diff_id, 32);
		le64(b->buf + 40, tar_bytes);
		le64(b->buf + 48, b->entries);
		le64(b->buf + 56, xattrs_dropped);
		r = cfs_sha256(b->buf, b->len, trailer, NULL);
	}
	if (r == 0)
		r = put(b, trailer, sizeof(trailer));
	/* On disk as one zstd frame (with its content size): a third of
	 * the bytes to write, and to read on every use. */
	if (r == 0) {
		zlen = ZSTD_compressBound(b->len);
		z = malloc(zlen);
		r = z ? 0 : -ENOMEM;
	}
	if (r == 0) {
		zlen = ZSTD_compress(z, zlen, b->buf, b->len,
				     RECORD_ZSTD_LEVEL);
		if (ZSTD_isError(zlen))
			r = cfs_error(EIO, "compressing a layer record: %s",
				      ZSTD_getErrorName(zlen));
	}
	b->len = entries_end;
	if (r == 0) {
		cfs_digest_to_hex(diff_id, hex);
		/* made durable by the import's syncfs */
		r = cfs_atomic_write(dirfd, hex, z, zlen, 0);
	}
	free(z);
	return r;
}

/* ---- reading ----------------------------------------------------------- */

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* Free the strings of the current entry. */
static void strings_free(struct cfs_record *rec)
{
	free(rec->path);
	free(rec->link);
	for (size_t i = 0; i < rec->n_names; i++)
		free(rec->names[i]);
	rec->path = rec->link = NULL;
	rec->n_names = 0;
}

/* *@data (@*len bytes, a zstd frame) replaced by its content, which must
 * be one frame of a size it states and CFS_RECORD_MAX at most. Records
 * without the frame (format 1 as earlier versions wrote it) are read as
 * they are. */
static int unzstd(uint8_t **data, size_t *len, const char *what)
{
	unsigned long long n = ZSTD_getFrameContentSize(*data, *len);
	uint8_t *out;
	size_t got;

	if (n == ZSTD_CONTENTSIZE_ERROR || n == ZSTD_CONTENTSIZE_UNKNOWN ||
	    n > CFS_RECORD_MAX || n < HEADER_SIZE + TRAILER_SIZE ||
	    ZSTD_findFrameCompressedSize(*data, *len) != *len) {
		free(*data);
		*data = NULL;
		return cfs_error(EBADMSG,
				 "%s: damaged (not one zstd frame of a "
				 "record's size)",
				 what);
	}
	out = malloc((size_t)n);
	if (!out) {
		free(*data);
		*data = NULL;
		return -ENOMEM;
	}
	got = ZSTD_decompress(out, (size_t)n, *data, *len);
	free(*data);
	*data = NULL;
	if (ZSTD_isError(got) || got != n) {
		free(out);
		return cfs_error(EBADMSG, "%s: damaged (%s)", what,
				 ZSTD_isError(got) ? ZSTD_getErrorName(got) :
						     "short zstd frame");
	}
	*data = out;
	*len = got;
	return 0;
}

bool cfs_record_exists(int dirfd, const uint8_t diff_id[32])
{
	char hex[CFS_DIGEST_HEX_SIZE + 1];

	cfs_digest_to_hex(diff_id, hex);
	return faccessat(dirfd, hex, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

int cfs_record_open(struct cfs_record *rec, int dirfd,
		    const uint8_t diff_id[32], const char *what)
{
	char hex[CFS_DIGEST_HEX_SIZE + 1];
	_cleanup_close_ int fd = -1;
	uint8_t *data;
	struct stat st;
	size_t got;
	int r;

	memset(rec, 0, sizeof(*rec));
	cfs_digest_to_hex(diff_id, hex);
	/* O_NOATIME where we may (the store's owner): a read that writes
	 * the record's inode back costs more than the read */
	fd = openat(dirfd, hex, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
	if (fd < 0 && errno == EPERM)
		fd = openat(dirfd, hex, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ENOENT :
					 cfs_error_errno(errno, "%s", what);
	if (fstat(fd, &st) < 0)
		return cfs_error_errno(errno, "%s", what);
	if (!S_ISREG(st.st_mode) || st.st_size < (off_t)sizeof(zstd_magic) ||
	    (uint64_t)st.st_size > CFS_RECORD_MAX)
		return cfs_error(EBADMSG, "%s: not a layer record (%lld bytes)",
				 what, (long long)st.st_size);
	data = malloc((size_t)st.st_size);
	if (!data)
		return -ENOMEM;
	r = cfs_read_full(fd, data, (size_t)st.st_size, &got);
	if (r == 0 && got != (size_t)st.st_size)
		r = -EIO;
	if (r < 0) {
		free(data);
		return cfs_error_errno(-r, "%s: reading", what);
	}
	if (memcmp(data, zstd_magic, sizeof(zstd_magic)) == 0) {
		r = unzstd(&data, &got, what);
		if (r < 0)
			return r;
	}
	return cfs_record_load(rec, data, got, diff_id, what);
}

/* Format 2: the SHA-256 pairs before the trailer, sorted, each once;
 * the entries end where they begin. */
static int load_pairs(struct cfs_record *rec, const char *what)
{
	const size_t pair = 2 * CFS_DIGEST_SIZE;
	uint64_t n;

	if (rec->len - HEADER_SIZE < 8)
		goto bad;
	n = get64(rec->data + rec->len - 8);
	rec->len -= 8;
	if (n > (rec->len - HEADER_SIZE) / pair)
		goto bad;
	rec->len -= (size_t)n * pair;
	rec->pairs = rec->data + rec->len;
	rec->n_pairs = (size_t)n;
	for (size_t i = 1; i < rec->n_pairs; i++)
		if (memcmp(rec->pairs + (i - 1) * pair, rec->pairs + i * pair,
			   pair) >= 0)
			goto bad;
	return 0;
bad:
	cfs_record_close(rec);
	return cfs_error(EBADMSG, "%s: damaged (its SHA-256 pairs)", what);
}

int cfs_record_load(struct cfs_record *rec, uint8_t *data, size_t len,
		    const uint8_t diff_id[32], const char *what)
{
	uint8_t sum[32];

	memset(rec, 0, sizeof(*rec));
	rec->data = data;
	rec->len = len;
	rec->xattrs = calloc(RECORD_XATTRS_MAX, sizeof(*rec->xattrs));
	rec->names = calloc(RECORD_XATTRS_MAX, sizeof(*rec->names));
	if (!rec->xattrs || !rec->names) {
		cfs_record_close(rec);
		return -ENOMEM;
	}
	if (len < HEADER_SIZE + TRAILER_SIZE ||
	    cfs_sha256(data, len - TRAILER_SIZE, sum, NULL) < 0 ||
	    (memcmp(data, CFS_RECORD_MAGIC, 8) != 0 &&
	     memcmp(data, CFS_RECORD_MAGIC_V1, 8) != 0) ||
	    memcmp(sum, data + len - TRAILER_SIZE, 32) != 0 ||
	    memcmp(data + 8, diff_id, 32) != 0) {
		cfs_record_close(rec);
		return cfs_error(EBADMSG,
				 "%s: damaged (magic, checksum or diff_id "
				 "wrong)",
				 what);
	}
	rec->tar_bytes = get64(data + 40);
	rec->entries = get64(data + 48);
	rec->xattrs_dropped = get64(data + 56);
	rec->pos = HEADER_SIZE;
	rec->len -= TRAILER_SIZE;
	if (memcmp(data, CFS_RECORD_MAGIC, 8) == 0)
		return load_pairs(rec, what);
	return 0;
}

void cfs_record_close(struct cfs_record *rec)
{
	if (rec->names)
		strings_free(rec);
	free(rec->names);
	free(rec->data);
	free(rec->xattrs);
	memset(rec, 0, sizeof(*rec));
}

/* The next @n bytes, or NULL past the end. */
static const uint8_t *take(struct cfs_record *rec, size_t n)
{
	const uint8_t *p = rec->data + rec->pos;

	if (n > rec->len - rec->pos)
		return NULL;
	rec->pos += n;
	return p;
}

static bool take32(struct cfs_record *rec, uint32_t *v)
{
	const uint8_t *p = take(rec, 4);

	if (p)
		*v = get32(p);
	return p != NULL;
}

static bool take64(struct cfs_record *rec, uint64_t *v)
{
	const uint8_t *p = take(rec, 8);

	if (p)
		*v = get64(p);
	return p != NULL;
}

/* A u32 length and that many bytes, at most @max. */
static const uint8_t *take_bytes(struct cfs_record *rec, size_t max,
				 size_t *len)
{
	uint32_t n;

	if (!take32(rec, &n) || n > max)
		return NULL;
	*len = n;
	return take(rec, n);
}

static char *take_string(struct cfs_record *rec, size_t max)
{
	size_t len;
	const uint8_t *p = take_bytes(rec, max, &len);
	char *s;

	if (!p || memchr(p, '\0', len))
		return NULL;
	s = malloc(len + 1);
	if (s) {
		memcpy(s, p, len);
		s[len] = '\0';
	}
	return s;
}

int cfs_record_next(struct cfs_record *rec, struct cfs_layer_entry *e,
		    struct cfs_record_content *content, const char *what)
{
	uint32_t flags, n_xattrs, nsec;
	uint64_t mtime, rdev, size;
	size_t len;

	strings_free(rec);
	memset(e, 0, sizeof(*e));
	memset(content, 0, sizeof(*content));
	if (rec->done == rec->entries)
		return rec->pos == rec->len ?
			       0 :
			       cfs_error(EBADMSG,
					 "%s: bytes after the last entry",
					 what);
	if (!take32(rec, &flags) || (flags & ~RECORD_FLAGS) ||
	    !take32(rec, &e->mode) || !take32(rec, &e->uid) ||
	    !take32(rec, &e->gid) || !take64(rec, &mtime) ||
	    !take32(rec, &nsec) || !take64(rec, &rdev))
		goto bad;
	e->mtime_sec = (int64_t)mtime;
	e->mtime_nsec = nsec;
	e->rdev = rdev;
	e->hardlink = flags & RECORD_HARDLINK;
	rec->path = take_string(rec, RECORD_NAME_MAX);
	if (!rec->path)
		goto bad;
	e->path = rec->path;
	if (flags & RECORD_LINK) {
		rec->link = take_string(rec, RECORD_NAME_MAX);
		if (!rec->link)
			goto bad;
		e->link = rec->link;
	}
	if (!take32(rec, &n_xattrs) || n_xattrs > RECORD_XATTRS_MAX)
		goto bad;
	for (uint32_t i = 0; i < n_xattrs; i++) {
		const uint8_t *value;

		rec->names[i] = take_string(rec, RECORD_NAME_MAX);
		if (!rec->names[i])
			goto bad;
		rec->n_names = i + 1;
		value = take_bytes(rec, RECORD_VALUE_MAX, &len);
		if (!value)
			goto bad;
		rec->xattrs[i] =
			(struct cfs_entry_xattr){ rec->names[i], value, len };
	}
	e->xattrs = rec->xattrs;
	e->n_xattrs = n_xattrs;
	if (!take64(rec, &size))
		goto bad;
	content->size = size;
	if (flags & RECORD_INLINE) {
		if (size > CFS_INLINE_DEFAULT ||
		    !(content->data = take(rec, (size_t)size)))
			goto bad;
	} else if (flags & RECORD_OBJECT) {
		if (!(content->digest = take(rec, CFS_DIGEST_SIZE)))
			goto bad;
	} else if (size != 0) {
		goto bad;
	}
	rec->done++;
	return 1;
bad:
	return cfs_error(EBADMSG, "%s: entry %llu is damaged", what,
			 (unsigned long long)rec->done + 1);
}

void cfs_records_clear(struct cfs_records *records)
{
	free(records->reused);
	free(records->written);
	records->reused = records->written = NULL;
	records->n = 0;
}

int cfs_record_content_set(cfs_inode *file,
			   const struct cfs_record_content *content)
{
	int r;

	if (content->data)
		return cfs_inode_set_content(file, content->data,
					     (size_t)content->size);
	if (!content->digest)
		return 0;
	r = cfs_inode_set_size(file, content->size);
	return r < 0 ? r : cfs_inode_set_object(file, content->digest);
}
