// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
/*
 * Writing zstd:chunked layers (chunked.h says what they are): the layer's
 * tar, byte for byte, as zstd frames that start and end around each
 * regular file's content, then the TOC, the tar-split and the footer in
 * skippable frames. Each file's TOC entry also names the fs-verity
 * digest of its content ("fsverityDigest", docs/formats.md), so that a
 * composefs store finds the object without a table of SHA-256s.
 *
 * The tar is parsed here, not by libarchive: the TOC and the tar-split
 * must describe it as containers/storage's reader sees it, which is Go's
 * archive/tar (tar-split's copy of it): the header bytes as they are,
 * the mode field as written, PAX records and GNU long names merged in
 * Go's order. What that format cannot carry is refused with the entry's
 * name and tar offset: what c/storage's own writer refuses (global PAX
 * headers, sparse and other special types, a path twice in a layer),
 * and names that are not UTF-8, which its JSON decoder would change.
 */

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <zstd.h>

#include <cfs/image.h>

#include "common/cleanup.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/json.h"
#include "common/sign.h"
#include "common/util.h"
#include "convert/chunked.h"
#include "convert/layout.h"

#define BLOCK 512
#define OUT_SIZE (256 * 1024)
/* PAX headers and GNU long names: Go's archive/tar reads at most this. */
#define SPECIAL_MAX (1024 * 1024)
#define SKIPPABLE_MAGIC 0x184D2A50u
#define FOOTER_SIZE 64

/* CRC-64 with the ISO polynomial, as Go's hash/crc64 computes it: the
 * tar-split's checksum of each file. */
static uint64_t crc64_table[256];

static void crc64_init(void)
{
	for (unsigned int i = 0; i < 256; i++) {
		uint64_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0xD800000000000000ull : c >> 1;
		crc64_table[i] = c;
	}
}

static uint64_t crc64_update(uint64_t crc, const uint8_t *p, size_t len)
{
	crc = ~crc;
	while (len--)
		crc = crc64_table[(uint8_t)crc ^ *p++] ^ (crc >> 8);
	return ~crc;
}

/* One xattr of a PAX header. */
struct xattr {
	char *name;
	uint8_t *value;
	size_t len;
};

/* A tar entry's fields as Go's archive/tar gives them. */
struct header {
	char type; /* '0'..'6' after the '\0' fix-up */
	char *name, *link;
	int64_t mode, size, uid, gid, devmajor, devminor;
	int64_t mtime;
	uint32_t mtime_ns;
	bool has_atime, has_ctime;
	int64_t atime, ctime;
	uint32_t atime_ns, ctime_ns;
};

/* What PAX and GNU headers say about the entry that follows them. */
struct pending {
	char *path, *linkpath; /* PAX */
	char *long_name, *long_link; /* GNU */
	bool has_size, has_uid, has_gid, has_mtime, has_atime, has_ctime;
	int64_t size, uid, gid, mtime, atime, ctime;
	uint32_t mtime_ns, atime_ns, ctime_ns;
	struct xattr *xattrs;
	size_t n_xattrs;
	bool any; /* a PAX or GNU header came */
};

/*
 * The frames of the blob are independent zstd frames: a pool of threads
 * compresses them while the tar is parsed and hashed, and they are
 * written in order. Where each frame starts and ends is known when it
 * is written; the TOC, which says so, is written last. A frame is at
 * most frame_max bytes of the tar (a bigger file is several frames), so
 * that neither a big file nor a long run of headers waits in memory
 * whole; the output is the same for any number of threads.
 */
#define JOBS_MAX 16
#define THREADS_MAX 8

struct frame_job {
	uint8_t *in, *out;
	size_t in_len, out_len;
	bool done, failed;
};

struct pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t threads[THREADS_MAX];
	unsigned int n_threads;
	int level;
	bool started, stop;
	/* frame k is jobs[k % JOBS_MAX] from its push until written */
	struct frame_job jobs[JOBS_MAX];
	uint64_t pushed, taken, written;
};

/* A file's TOC entry, whose content is frames first..last. */
struct file {
	json_object *o;
	uint64_t first, last;
	uint8_t sha[32], verity[32];
};

struct cw {
	const char *what;
	cfs_chunked_read_fn read;
	void *opaque;
	const uint8_t *in;
	size_t in_len;
	bool in_eof;
	uint64_t tar_off; /* bytes of the tar consumed */

	/* the blob: frames compressed by the pool, written in order */
	int fd, level;
	size_t frame_max;
	ZSTD_CCtx *z; /* the TOC's */
	uint8_t *out;
	size_t out_len;
	uint64_t out_off; /* blob bytes made, written or buffered */
	EVP_MD_CTX *blob_sha;
	struct cfs_buf frame; /* the tar's bytes of the next frame */
	struct pool pool;
	uint64_t *ends; /* where frame k ends in the blob, once written */
	size_t cap_ends;
	struct file *files; /* TOC entries that wait for their offsets */
	size_t n_files, cap_files;

	/* the tar-split: raw bytes since its last entry, and its lines
	 * compressed as they come */
	struct cfs_buf seg;
	ZSTD_CCtx *tz;
	struct cfs_buf ts;
	uint64_t ts_size;
	uint64_t ts_pos;

	json_object *entries;
	char **names; /* cleaned, to find a path given twice */
	size_t n_names, cap_names;

	EVP_MD_CTX *file_sha;
	cfs_verity *verity;
	struct pending pend;
};

static void pending_clear(struct pending *p)
{
	free(p->path);
	free(p->linkpath);
	free(p->long_name);
	free(p->long_link);
	for (size_t i = 0; i < p->n_xattrs; i++) {
		free(p->xattrs[i].name);
		free(p->xattrs[i].value);
	}
	free(p->xattrs);
	memset(p, 0, sizeof(*p));
}

/* ---- output ------------------------------------------------------------ */

static int out_flush(struct cw *c)
{
	int r;

	if (c->out_len == 0)
		return 0;
	if (EVP_DigestUpdate(c->blob_sha, c->out, c->out_len) != 1)
		return cfs_error(EIO, "%s: sha256 failed", c->what);
	r = cfs_write_all(c->fd, c->out, c->out_len);
	if (r < 0)
		return cfs_error_errno(-r, "%s: writing the zstd:chunked blob",
				       c->what);
	c->out_len = 0;
	return 0;
}

/* Bytes of the blob as they are (skippable frames). */
static int out_raw(struct cw *c, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len) {
		size_t n = CFS_MIN(len, OUT_SIZE - c->out_len);
		int r;

		memcpy(c->out + c->out_len, p, n);
		c->out_len += n;
		c->out_off += n;
		p += n;
		len -= n;
		if (c->out_len == OUT_SIZE && (r = out_flush(c)) < 0)
			return r;
	}
	return 0;
}

/* Compress @len bytes into the tar-split, ending it with ZSTD_e_end. */
static int ts_compress(struct cw *c, const void *data, size_t len,
		       ZSTD_EndDirective end)
{
	ZSTD_inBuffer in = { data, len, 0 };
	size_t left;

	do {
		ZSTD_outBuffer o;

		if (cfs_buf_reserve(&c->ts, ZSTD_CStreamOutSize()) < 0)
			return -ENOMEM;
		o = (ZSTD_outBuffer){ c->ts.buf, c->ts.cap, c->ts.len };
		left = ZSTD_compressStream2(c->tz, &o, &in, end);
		if (ZSTD_isError(left))
			return cfs_error(EIO, "%s: zstd: %s", c->what,
					 ZSTD_getErrorName(left));
		c->ts.len = o.pos;
	} while (end == ZSTD_e_continue ? in.pos < in.size : left != 0);
	return 0;
}

/* @j compressed as one frame (its size in the frame header). */
static void compress_job(ZSTD_CCtx *z, int level, struct frame_job *j)
{
	size_t bound = ZSTD_compressBound(j->in_len), n;

	j->out = z ? malloc(bound) : NULL;
	n = j->out ? ZSTD_compressCCtx(z, j->out, bound, j->in, j->in_len,
				       level) :
		     0;
	j->failed = !j->out || ZSTD_isError(n);
	j->out_len = j->failed ? 0 : n;
	free(j->in);
	j->in = NULL;
}

static void *pool_run(void *arg)
{
	struct pool *p = arg;
	ZSTD_CCtx *z = ZSTD_createCCtx();

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct frame_job *j;

		while (!p->stop && p->taken == p->pushed)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->stop)
			break;
		j = &p->jobs[p->taken++ % JOBS_MAX];
		pthread_mutex_unlock(&p->lock);
		compress_job(z, p->level, j);
		pthread_mutex_lock(&p->lock);
		j->done = true;
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	ZSTD_freeCCtx(z);
	return NULL;
}

/* @threads for the pool (0: one per core), at most THREADS_MAX; with 1,
 * or where none can be started, the frames are compressed as pushed. */
static void pool_start(struct pool *p, int level, unsigned int threads)
{
	long cpus = threads ? (long)threads : sysconf(_SC_NPROCESSORS_ONLN);

	p->level = level;
	p->started = true;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	while (cpus > 1 &&
	       p->n_threads < CFS_MIN((unsigned long)cpus, THREADS_MAX) &&
	       pthread_create(&p->threads[p->n_threads], NULL, pool_run, p) ==
		       0)
		p->n_threads++;
}

static void pool_stop(struct pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (unsigned int i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	for (uint64_t k = p->written; k < p->pushed; k++) {
		free(p->jobs[k % JOBS_MAX].in);
		free(p->jobs[k % JOBS_MAX].out);
	}
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
}

/* Write the oldest frame once it is compressed (@wait: wait for it);
 * 0 when there is none to write. */
static int write_frame(struct cw *c, bool wait)
{
	struct pool *p = &c->pool;
	struct frame_job *j;
	int r;

	pthread_mutex_lock(&p->lock);
	while (wait && p->written < p->pushed &&
	       !p->jobs[p->written % JOBS_MAX].done)
		pthread_cond_wait(&p->cond, &p->lock);
	j = &p->jobs[p->written % JOBS_MAX];
	if (p->written == p->pushed || !j->done) {
		pthread_mutex_unlock(&p->lock);
		return 0;
	}
	pthread_mutex_unlock(&p->lock);
	if (j->failed)
		return cfs_error(EIO, "%s: zstd could not compress a frame",
				 c->what);
	r = out_raw(c, j->out, j->out_len);
	if (r < 0)
		return r;
	free(j->out);
	j->out = NULL;
	if (p->written == c->cap_ends) {
		size_t cap = c->cap_ends ? 2 * c->cap_ends : 1024;
		uint64_t *e = reallocarray(c->ends, cap, sizeof(*e));

		if (!e)
			return -ENOMEM;
		c->ends = e;
		c->cap_ends = cap;
	}
	c->ends[p->written] = c->out_off;
	pthread_mutex_lock(&p->lock);
	p->written++;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return 1;
}

/* Hand @len bytes at @data (malloc'ed: the pool's now) over as the next
 * frame, and write what is compressed. */
static int push_frame(struct cw *c, uint8_t *data, size_t len)
{
	struct pool *p = &c->pool;
	struct frame_job *j;
	int r;

	/* room in the ring: the oldest written first */
	while (p->pushed - p->written == JOBS_MAX)
		if ((r = write_frame(c, true)) < 0) {
			free(data);
			return r;
		}
	j = &p->jobs[p->pushed % JOBS_MAX];
	*j = (struct frame_job){ .in = data, .in_len = len };
	if (p->n_threads == 0) {
		compress_job(c->z, c->level, j);
		j->done = true;
		p->pushed++;
		p->taken++;
	} else {
		pthread_mutex_lock(&p->lock);
		p->pushed++;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
	}
	while ((r = write_frame(c, false)) > 0)
		;
	return r;
}

/* The tar's bytes gathered so far as a frame. */
static int frame_end(struct cw *c)
{
	uint8_t *data = (uint8_t *)c->frame.buf;
	size_t len = c->frame.len;

	if (len == 0)
		return 0;
	c->frame = (struct cfs_buf){ 0 };
	return push_frame(c, data, len);
}

/* Every frame compressed and written. */
static int frames_flush(struct cw *c)
{
	int r = frame_end(c);

	while (r >= 0 && c->pool.written < c->pool.pushed)
		r = write_frame(c, true);
	return r < 0 ? r : 0;
}

/* ---- the tar-split ------------------------------------------------------ */

/* @s as a JSON string into @b. */
static int json_str(struct cfs_buf *b, const char *s)
{
	int r = cfs_buf_add(b, "\"", 1);

	for (; r == 0 && *s; s++) {
		unsigned char ch = (unsigned char)*s;
		char esc[8];

		if (ch == '"' || ch == '\\') {
			esc[0] = '\\';
			esc[1] = (char)ch;
			r = cfs_buf_add(b, esc, 2);
		} else if (ch < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", ch);
			r = cfs_buf_add(b, esc, 6);
		} else {
			r = cfs_buf_add(b, s, 1);
		}
	}
	return r == 0 ? cfs_buf_add(b, "\"", 1) : r;
}

static int ts_line(struct cw *c, struct cfs_buf *line)
{
	int r = cfs_buf_add(line, "\n", 1);

	if (r == 0)
		r = ts_compress(c, line->buf, line->len, ZSTD_e_continue);
	c->ts_size += line->len;
	c->ts_pos++;
	line->len = 0;
	return r;
}

/* tar-split's "segment": the raw bytes since its last entry. */
static int ts_segment(struct cw *c)
{
	struct cfs_buf line = { 0 };
	char *b64, head[64];
	int r;

	if (c->seg.len == 0)
		return 0;
	b64 = cfs_base64_encode((const uint8_t *)c->seg.buf, c->seg.len);
	if (!b64)
		return -ENOMEM;
	r = cfs_buf_add(&line, "{\"type\":2,\"payload\":\"", 21);
	if (r == 0)
		r = cfs_buf_add(&line, b64, strlen(b64));
	snprintf(head, sizeof(head), "\",\"position\":%" PRIu64 "}", c->ts_pos);
	if (r == 0)
		r = cfs_buf_add(&line, head, strlen(head));
	if (r == 0)
		r = ts_line(c, &line);
	free(b64);
	free(line.buf);
	c->seg.len = 0;
	return r;
}

/* tar-split's "file" entry: name, size and the CRC-64 of the content
 * (null for an empty one, as tar-split writes it). */
static int ts_file(struct cw *c, const struct header *h, uint64_t crc)
{
	struct cfs_buf line = { 0 };
	char buf[96];
	int r;

	r = cfs_buf_add(&line, "{\"type\":1,\"name\":", 17);
	if (r == 0)
		r = json_str(&line, h->name);
	if (r == 0 && h->size > 0) {
		uint8_t be[8];
		char *b64;

		for (int i = 0; i < 8; i++)
			be[i] = (uint8_t)(crc >> (56 - 8 * i));
		b64 = cfs_base64_encode(be, 8);
		if (!b64)
			return -ENOMEM;
		snprintf(buf, sizeof(buf),
			 ",\"size\":%" PRId64 ",\"payload\":\"%s\"", h->size,
			 b64);
		free(b64);
	} else {
		snprintf(buf, sizeof(buf), ",\"payload\":null");
	}
	if (r == 0)
		r = cfs_buf_add(&line, buf, strlen(buf));
	snprintf(buf, sizeof(buf), ",\"position\":%" PRIu64 "}", c->ts_pos);
	if (r == 0)
		r = cfs_buf_add(&line, buf, strlen(buf));
	if (r == 0)
		r = ts_line(c, &line);
	free(line.buf);
	return r;
}

/* ---- input ------------------------------------------------------------- */

static int in_fill(struct cw *c)
{
	const void *buf;
	ssize_t n;

	if (c->in_len || c->in_eof)
		return 0;
	n = c->read(c->opaque, &buf);
	if (n < 0)
		return (int)n;
	if (n == 0)
		c->in_eof = true;
	c->in = buf;
	c->in_len = (size_t)n;
	return 0;
}

/* @n bytes of the input are taken. */
static void advance(struct cw *c, size_t n)
{
	c->in += n;
	c->in_len -= n;
	c->tar_off += n;
}

/* The tar's own bytes (headers, padding, the end): into the frame and
 * the tar-split's next segment, and a copy to @copy if not NULL. *@got:
 * how many there were before the end of the tar (NULL: all @len or
 * -EBADMSG). */
static int take_raw(struct cw *c, void *copy, size_t len, size_t *got)
{
	uint8_t *dst = copy;
	size_t done = 0;
	int r;

	while (done < len) {
		size_t n;

		if ((r = in_fill(c)) < 0)
			return r;
		if (c->in_eof)
			break;
		/* a frame ends at frame_max bytes exactly, wherever the
		 * reads end: the blob depends on the tar alone */
		n = CFS_MIN(len - done, c->in_len);
		n = CFS_MIN(n, c->frame_max - c->frame.len);
		if (dst)
			memcpy(dst + done, c->in, n);
		if (cfs_buf_add(&c->seg, c->in, n) < 0 ||
		    cfs_buf_add(&c->frame, c->in, n) < 0)
			return -ENOMEM;
		if (c->frame.len == c->frame_max && (r = frame_end(c)) < 0)
			return r;
		advance(c, n);
		done += n;
	}
	if (got)
		*got = done;
	else if (done < len)
		return cfs_error(EBADMSG,
				 "%s: tar offset %" PRIu64 ": the tar "
				 "ends inside an entry",
				 c->what, c->tar_off);
	return 0;
}

/* A file's content: frames of its own (the first and last in @f),
 * hashed three ways. */
static int take_content(struct cw *c, const struct header *h, struct file *f,
			uint64_t *crc)
{
	uint64_t left = (uint64_t)h->size;
	int r;

	r = frame_end(c);
	if (r < 0)
		return r;
	f->first = c->pool.pushed;
	if (EVP_DigestInit_ex(c->file_sha, EVP_sha256(), NULL) != 1)
		return cfs_error(EIO, "%s: sha256 failed", c->what);
	cfs_verity_reset(c->verity);
	*crc = 0;
	while (left) {
		size_t n;

		if ((r = in_fill(c)) < 0)
			return r;
		if (c->in_eof)
			return cfs_error(EBADMSG,
					 "%s: tar offset %" PRIu64 ": %s: the "
					 "tar ends inside its content",
					 c->what, c->tar_off, h->name);
		n = (size_t)CFS_MIN((uint64_t)c->in_len, left);
		n = CFS_MIN(n, c->frame_max - c->frame.len);
		if (EVP_DigestUpdate(c->file_sha, c->in, n) != 1)
			return cfs_error(EIO, "%s: sha256 failed", c->what);
		r = cfs_verity_update(c->verity, c->in, n);
		if (r == 0 && cfs_buf_add(&c->frame, c->in, n) < 0)
			r = -ENOMEM;
		if (r == 0 && c->frame.len == c->frame_max)
			r = frame_end(c);
		if (r < 0)
			return r;
		*crc = crc64_update(*crc, c->in, n);
		advance(c, n);
		left -= n;
	}
	if (EVP_DigestFinal_ex(c->file_sha, f->sha, NULL) != 1 ||
	    cfs_verity_final(c->verity, f->verity) < 0)
		return cfs_error(EIO, "%s: digest failed", c->what);
	r = frame_end(c);
	f->last = c->pool.pushed - 1;
	return r;
}

/* ---- tar headers, as Go's archive/tar reads them -------------------- */

/* A string field: up to its first NUL. */
static char *field_str(const uint8_t *f, size_t len)
{
	size_t n = strnlen((const char *)f, len);
	char *s = malloc(n + 1);

	if (s) {
		memcpy(s, f, n);
		s[n] = '\0';
	}
	return s;
}

/* A numeric field: base-256 when its first byte has the high bit, else
 * octal, spaces and NULs around it ignored. false when it is neither. */
static bool field_num(const uint8_t *f, size_t len, int64_t *v)
{
	uint64_t x = 0;
	size_t a = 0, b = len;

	if (len && (f[0] & 0x80)) {
		uint8_t inv = f[0] & 0x40 ? 0xff : 0;

		for (size_t i = 0; i < len; i++) {
			uint8_t ch = f[i] ^ inv;

			if (i == 0)
				ch &= 0x7f;
			if (x >> 56)
				return false;
			x = x << 8 | ch;
		}
		if (x >> 63)
			return false;
		*v = inv ? ~(int64_t)x : (int64_t)x;
		return true;
	}
	while (a < b && (f[a] == ' ' || f[a] == 0))
		a++;
	while (b > a && (f[b - 1] == ' ' || f[b - 1] == 0))
		b--;
	/* then up to a NUL inside, as Go's parseString */
	for (size_t i = a; i < b; i++)
		if (f[i] == 0)
			b = i;
	if (a == b) {
		*v = 0;
		return true;
	}
	for (size_t i = a; i < b; i++) {
		if (f[i] < '0' || f[i] > '7' || (x >> 61))
			return false;
		x = x << 3 | (uint64_t)(f[i] - '0');
	}
	if (x >> 63)
		return false;
	*v = (int64_t)x;
	return true;
}

static bool checksum_ok(const uint8_t *h)
{
	int64_t want;
	uint64_t u = 0;
	int64_t s = 0;

	if (!field_num(h + 148, 8, &want))
		return false;
	for (size_t i = 0; i < BLOCK; i++) {
		uint8_t ch = i >= 148 && i < 156 ? ' ' : h[i];

		u += ch;
		s += (int8_t)ch;
	}
	return want == (int64_t)u || want == s;
}

static bool is_zero(const uint8_t *h)
{
	for (size_t i = 0; i < BLOCK; i++)
		if (h[i])
			return false;
	return true;
}

/* A PAX time: seconds, and up to 9 digits of fraction. */
static bool pax_time(const char *v, int64_t *sec, uint32_t *ns)
{
	const char *dot = strchr(v, '.');
	char *end;
	uint32_t frac = 0;
	int digits = 0;

	errno = 0;
	*sec = strtoll(v, &end, 10);
	if (errno || end == v || (*end && end != dot))
		return false;
	if (dot) {
		for (const char *p = dot + 1; *p; p++) {
			if (*p < '0' || *p > '9')
				return false;
			if (digits < 9) {
				frac = frac * 10 + (uint32_t)(*p - '0');
				digits++;
			}
		}
		for (; digits < 9; digits++)
			frac *= 10;
	}
	if (v[0] == '-' && frac) {
		*sec -= 1;
		frac = 1000000000u - frac;
	}
	*ns = frac;
	return true;
}

static int pax_int(const char *v, int64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoll(v, &end, 10);
	return errno || end == v || *end ? -1 : 0;
}

static int set_str(char **dst, const char *v, size_t len)
{
	char *s = malloc(len + 1);

	if (!s)
		return -ENOMEM;
	memcpy(s, v, len);
	s[len] = '\0';
	free(*dst);
	*dst = s;
	return 0;
}

/* The records of a PAX header of @len bytes at @data. */
static int pax_parse(struct cw *c, const char *data, size_t len, uint64_t at)
{
	struct pending *p = &c->pend;
	const char *why = NULL;

	while (len && !why) {
		const char *sp, *eq, *key, *val;
		char *end;
		size_t rec, klen, vlen;
		char vbuf[64];
		int r = 0;

		errno = 0;
		rec = strtoul(data, &end, 10);
		sp = end;
		if (errno || end == data || *sp != ' ' || rec > len ||
		    rec < (size_t)(sp - data) + 3 || data[rec - 1] != '\n') {
			why = "a malformed record";
			break;
		}
		key = sp + 1;
		eq = memchr(key, '=', (size_t)(data + rec - 1 - key));
		if (!eq || eq == key) {
			why = "a record without a key";
			break;
		}
		klen = (size_t)(eq - key);
		val = eq + 1;
		vlen = (size_t)(data + rec - 1 - val);
		if (memchr(key, 0, klen)) {
			why = "a NUL in a key";
			break;
		}
#define KEY(k) (klen == strlen(k) && memcmp(key, k, klen) == 0)
		if ((KEY("path") || KEY("linkpath") || KEY("uname") ||
		     KEY("gname")) &&
		    memchr(val, 0, vlen)) {
			why = "a NUL in a path";
			break;
		}
		snprintf(vbuf, sizeof(vbuf), "%.*s", (int)CFS_MIN(vlen, 63),
			 val);
		if (KEY("path")) {
			r = set_str(&p->path, val, vlen);
		} else if (KEY("linkpath")) {
			r = set_str(&p->linkpath, val, vlen);
		} else if (KEY("size")) {
			p->has_size = vlen < 63 &&
				      pax_int(vbuf, &p->size) == 0 &&
				      p->size >= 0;
			if (!p->has_size)
				why = "a bad size";
		} else if (KEY("uid") || KEY("gid")) {
			bool u = KEY("uid");

			if (vlen >= 63 ||
			    pax_int(vbuf, u ? &p->uid : &p->gid) < 0)
				why = "a bad uid or gid";
			else if (u)
				p->has_uid = true;
			else
				p->has_gid = true;
		} else if (KEY("mtime") || KEY("atime") || KEY("ctime")) {
			bool ok = vlen < 63;

			if (KEY("mtime"))
				ok = ok &&
				     (p->has_mtime = pax_time(vbuf, &p->mtime,
							      &p->mtime_ns));
			else if (KEY("atime"))
				ok = ok &&
				     (p->has_atime = pax_time(vbuf, &p->atime,
							      &p->atime_ns));
			else
				ok = ok &&
				     (p->has_ctime = pax_time(vbuf, &p->ctime,
							      &p->ctime_ns));
			if (!ok)
				why = "a bad time";
		} else if (klen > 11 && memcmp(key, "GNU.sparse.", 11) == 0) {
			return cfs_error(EOPNOTSUPP,
					 "%s: tar offset %" PRIu64 ": a sparse "
					 "file (PAX GNU.sparse records): "
					 "zstd:chunked cannot describe it",
					 c->what, at);
		} else if (klen > 13 && memcmp(key, "SCHILY.xattr.", 13) == 0) {
			struct xattr *x = NULL;

			for (size_t i = 0; i < p->n_xattrs; i++)
				if (strlen(p->xattrs[i].name) == klen - 13 &&
				    memcmp(p->xattrs[i].name, key + 13,
					   klen - 13) == 0)
					x = &p->xattrs[i];
			if (!x) {
				struct xattr *n =
					realloc(p->xattrs,
						(p->n_xattrs + 1) * sizeof(*n));
				if (!n)
					return -ENOMEM;
				p->xattrs = n;
				x = &n[p->n_xattrs++];
				memset(x, 0, sizeof(*x));
				r = set_str(&x->name, key + 13, klen - 13);
			}
			free(x->value);
			x->value = malloc(vlen + 1);
			if (!x->value)
				return -ENOMEM;
			memcpy(x->value, val, vlen);
			x->len = vlen;
		}
#undef KEY
		if (r < 0)
			return r;
		data += rec;
		len -= rec;
	}
	if (why)
		return cfs_error(EBADMSG,
				 "%s: tar offset %" PRIu64 ": PAX header with "
				 "%s",
				 c->what, at, why);
	return 0;
}

/* *@dst = *@src, which it takes. */
static void take_str(char **dst, char **src)
{
	free(*dst);
	*dst = *src;
	*src = NULL;
}

static void header_free(struct header *h)
{
	free(h->name);
	free(h->link);
}

/*
 * The entry whose header is @blk (at tar offset @at), its PAX and GNU
 * headers merged, into @h: what Go's Reader.Next() gives.
 */
static int header_parse(struct cw *c, const uint8_t *blk, uint64_t at,
			struct header *h)
{
	struct pending *p = &c->pend;
	bool ustar = memcmp(blk + 257, "ustar\0", 6) == 0;
	bool star = ustar && memcmp(blk + 508, "tar\0", 4) == 0;
	bool gnu = memcmp(blk + 257, "ustar  \0", 8) == 0;
	char *prefix = NULL;
	bool ok = true;

	memset(h, 0, sizeof(*h));
	h->type = (char)blk[156];
	h->name = field_str(blk, 100);
	h->link = field_str(blk + 157, 100);
	if (!h->name || !h->link)
		return -ENOMEM;
	ok = field_num(blk + 124, 12, &h->size) &&
	     field_num(blk + 100, 8, &h->mode) &&
	     field_num(blk + 108, 8, &h->uid) &&
	     field_num(blk + 116, 8, &h->gid) &&
	     field_num(blk + 136, 12, &h->mtime);
	if (ok && (ustar || gnu))
		ok = field_num(blk + 329, 8, &h->devmajor) &&
		     field_num(blk + 337, 8, &h->devminor);
	if (!ok)
		return cfs_error(EBADMSG,
				 "%s: tar offset %" PRIu64 ": %s: a numeric "
				 "field is not a number",
				 c->what, at, h->name);
	if (star) {
		prefix = field_str(blk + 345, 131);
		h->has_atime = field_num(blk + 476, 12, &h->atime);
		h->has_ctime = field_num(blk + 488, 12, &h->ctime);
	} else if (ustar) {
		prefix = field_str(blk + 345, 155);
	} else if (gnu) {
		bool bad = false;

		if (blk[345]) {
			h->has_atime = field_num(blk + 345, 12, &h->atime);
			bad = !h->has_atime;
		}
		if (blk[357]) {
			h->has_ctime = field_num(blk + 357, 12, &h->ctime);
			bad = bad || !h->has_ctime;
		}
		if (bad) {
			/* Go < 1.8 wrote a prefix there (golang.org/issue/12594) */
			h->has_atime = h->has_ctime = false;
			prefix = field_str(blk + 345, 155);
			for (char *q = prefix; q && *q; q++)
				if ((unsigned char)*q >= 0x80) {
					prefix[0] = '\0';
					break;
				}
		}
	}
	if (prefix && prefix[0]) {
		char *full = malloc(strlen(prefix) + strlen(h->name) + 2);

		if (!full) {
			free(prefix);
			return -ENOMEM;
		}
		sprintf(full, "%s/%s", prefix, h->name);
		free(h->name);
		h->name = full;
	}
	free(prefix);

	if (p->path)
		take_str(&h->name, &p->path);
	if (p->linkpath)
		take_str(&h->link, &p->linkpath);
	if (p->has_size)
		h->size = p->size;
	if (p->has_uid)
		h->uid = p->uid;
	if (p->has_gid)
		h->gid = p->gid;
	if (p->has_mtime) {
		h->mtime = p->mtime;
		h->mtime_ns = p->mtime_ns;
	}
	if (p->has_atime) {
		h->has_atime = true;
		h->atime = p->atime;
		h->atime_ns = p->atime_ns;
	}
	if (p->has_ctime) {
		h->has_ctime = true;
		h->ctime = p->ctime;
		h->ctime_ns = p->ctime_ns;
	}
	if (p->long_name && p->long_name[0])
		take_str(&h->name, &p->long_name);
	if (p->long_link && p->long_link[0])
		take_str(&h->link, &p->long_link);
	if (h->type == '\0') {
		size_t n = strlen(h->name);

		h->type = n && h->name[n - 1] == '/' ? '5' : '0';
	}
	return 0;
}

/* ---- the TOC ------------------------------------------------------------ */

/* A time as Go's encoding/json writes a time.Time (RFC 3339, fraction
 * without its trailing zeros), in UTC. */
static int add_time(struct cw *c, json_object *o, const char *key, int64_t sec,
		    uint32_t ns, const char *name)
{
	struct tm tm;
	time_t t = (time_t)sec;
	char buf[64], frac[16];
	size_t n;

	if (!gmtime_r(&t, &tm) || tm.tm_year < -1900 ||
	    tm.tm_year > 9999 - 1900)
		return cfs_error(EOPNOTSUPP,
				 "%s: %s: its %s is outside the years 0 to "
				 "9999, which a TOC cannot write",
				 c->what, name, key);
	n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	if (ns) {
		size_t f = (size_t)snprintf(frac, sizeof(frac), ".%09u", ns);

		while (frac[f - 1] == '0')
			frac[--f] = '\0';
		snprintf(buf + n, sizeof(buf) - n, "%sZ", frac);
	} else {
		snprintf(buf + n, sizeof(buf) - n, "Z");
	}
	json_object_object_add(o, key, json_object_new_string(buf));
	return 0;
}

static int xattr_cmp(const void *a, const void *b)
{
	return strcmp(((const struct xattr *)a)->name,
		      ((const struct xattr *)b)->name);
}

/* The TOC's entry of @h, in the order of containers/storage's fields; a
 * file of content @f (else NULL) gets its digests and range once its
 * frames are written (file_members()). */
static int toc_entry(struct cw *c, const struct header *h, const char *type,
		     struct file *f)
{
	json_object *o = json_object_new_object();
	int r;

	if (!o || json_object_array_add(c->entries, o) < 0) {
		json_object_put(o);
		return -ENOMEM;
	}
	json_object_object_add(o, "type", json_object_new_string(type));
	json_object_object_add(o, "name", json_object_new_string(h->name));
	if (h->link[0])
		json_object_object_add(o, "linkName",
				       json_object_new_string(h->link));
	if (h->mode)
		json_object_object_add(o, "mode",
				       json_object_new_int64(h->mode));
	if (h->size)
		json_object_object_add(o, "size",
				       json_object_new_int64(h->size));
	if (h->uid)
		json_object_object_add(o, "uid", json_object_new_int64(h->uid));
	if (h->gid)
		json_object_object_add(o, "gid", json_object_new_int64(h->gid));
	r = add_time(c, o, "modtime", h->mtime, h->mtime_ns, h->name);
	if (r == 0 && h->has_atime)
		r = add_time(c, o, "accesstime", h->atime, h->atime_ns,
			     h->name);
	if (r == 0 && h->has_ctime)
		r = add_time(c, o, "changetime", h->ctime, h->ctime_ns,
			     h->name);
	if (r < 0)
		return r;
	if (h->devmajor)
		json_object_object_add(o, "devMajor",
				       json_object_new_int64(h->devmajor));
	if (h->devminor)
		json_object_object_add(o, "devMinor",
				       json_object_new_int64(h->devminor));
	if (c->pend.n_xattrs) {
		json_object *x = json_object_new_object();

		if (!x)
			return -ENOMEM;
		json_object_object_add(o, "xattrs", x);
		qsort(c->pend.xattrs, c->pend.n_xattrs, sizeof(*c->pend.xattrs),
		      xattr_cmp);
		for (size_t i = 0; i < c->pend.n_xattrs; i++) {
			const struct xattr *a = &c->pend.xattrs[i];
			char *b64 = cfs_base64_encode(a->value, a->len);

			if (!b64)
				return -ENOMEM;
			json_object_object_add(x, a->name,
					       json_object_new_string(b64));
			free(b64);
		}
	}
	if (f) {
		if (c->n_files == c->cap_files) {
			size_t cap = c->cap_files ? 2 * c->cap_files : 1024;
			struct file *v =
				reallocarray(c->files, cap, sizeof(*v));

			if (!v)
				return -ENOMEM;
			c->files = v;
			c->cap_files = cap;
		}
		f->o = o;
		c->files[c->n_files++] = *f;
	}
	return 0;
}

/* The members of a file's TOC entry that its written frames give. */
static void file_members(struct cw *c, const struct file *f)
{
	char hex[CFS_DIGEST_HEX_SIZE + 8];
	uint64_t off = f->first ? c->ends[f->first - 1] : 0;

	memcpy(hex, "sha256:", 7);
	cfs_digest_to_hex(f->sha, hex + 7);
	json_object_object_add(f->o, "digest", json_object_new_string(hex));
	json_object_object_add(f->o, "offset",
			       json_object_new_int64((int64_t)off));
	json_object_object_add(
		f->o, "endOffset",
		json_object_new_int64((int64_t)c->ends[f->last]));
	cfs_digest_to_hex(f->verity, hex + 7);
	json_object_object_add(f->o, CFS_TOC_FSVERITY,
			       json_object_new_string(hex));
}

/* ---- entries ------------------------------------------------------------- */

/* @name as a path to compare: without "./", leading and trailing '/'. */
static char *clean_name(const char *name)
{
	size_t n;

	for (;;) {
		if (name[0] == '/')
			name++;
		else if (name[0] == '.' && name[1] == '/')
			name += 2;
		else
			break;
	}
	n = strlen(name);
	while (n && name[n - 1] == '/')
		n--;
	return strndup(name, n);
}

static int remember_name(struct cw *c, const char *name)
{
	if (c->n_names == c->cap_names) {
		size_t cap = c->cap_names ? 2 * c->cap_names : 1024;
		char **n = realloc(c->names, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		c->names = n;
		c->cap_names = cap;
	}
	c->names[c->n_names] = clean_name(name);
	return c->names[c->n_names++] ? 0 : -ENOMEM;
}

static bool u32_ok(int64_t v)
{
	return v >= 0 && v <= (int64_t)UINT32_MAX;
}

/* @s for a message: bytes that are not printable ASCII as \\xNN. */
static const char *shown(const char *s, char *buf, size_t size)
{
	size_t n = 0;

	for (; *s && n + 5 < size; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch >= 0x20 && ch < 0x7f)
			buf[n++] = (char)ch;
		else
			n += (size_t)snprintf(buf + n, size - n, "\\x%02x", ch);
	}
	buf[n] = '\0';
	return buf;
}

static int entry(struct cw *c, const struct header *h, uint64_t at)
{
	char name[512];
	static const char *const types[] = { "reg",  "hardlink", "symlink",
					     "char", "block",	 "dir",
					     "fifo" };
	struct file f = { 0 };
	uint64_t crc = 0;
	bool content = h->type == '0' && h->size > 0;
	const char *why = NULL;
	int r;

	if (h->type < '0' || h->type > '6')
		return cfs_error(
			EOPNOTSUPP,
			"%s: tar offset %" PRIu64 ": %s: type '%c' "
			"(0x%02x), which zstd:chunked cannot "
			"describe",
			c->what, at, shown(h->name, name, sizeof(name)),
			h->type > 0x20 && h->type < 0x7f ? h->type : '?',
			(unsigned char)h->type);
	if (h->size < 0 || (h->size > 0 && h->type != '0'))
		why = "a size but no content (or a negative one)";
	else if (!cfs_utf8_valid(h->name) || !cfs_utf8_valid(h->link))
		why = "a name that is not UTF-8, which a TOC cannot hold";
	else if (!cfs_toc_name_ok(h->name, strlen(h->name)))
		why = "an empty name, a \"..\" in it, or one too long";
	else if ((h->type == '1' || h->type == '2') &&
		 (!h->link[0] || strlen(h->link) >= CFS_LAYER_PATH_MAX))
		why = "a link with an empty or too long target";
	else if (!u32_ok(h->mode) || !u32_ok(h->uid) || !u32_ok(h->gid) ||
		 !u32_ok(h->devmajor) || !u32_ok(h->devminor))
		why = "a mode, owner or device number out of range";
	for (size_t i = 0; !why && i < c->pend.n_xattrs; i++)
		if (!cfs_utf8_valid(c->pend.xattrs[i].name))
			why = "an xattr name that is not UTF-8";
	if (why)
		return cfs_error(EOPNOTSUPP,
				 "%s: tar offset %" PRIu64 ": %s: %s", c->what,
				 at, shown(h->name, name, sizeof(name)), why);
	r = remember_name(c, h->name);
	if (r == 0)
		r = ts_segment(c);
	if (r == 0 && content) {
		r = take_content(c, h, &f, &crc);
	}
	if (r == 0)
		r = ts_file(c, h, crc);
	if (r == 0)
		r = toc_entry(c, h, types[h->type - '0'], content ? &f : NULL);
	if (r == 0 && content && h->size % BLOCK)
		r = take_raw(c, NULL, BLOCK - (size_t)(h->size % BLOCK), NULL);
	return r;
}

/* A PAX header or a GNU long name or link, for the next entry. */
static int special(struct cw *c, const uint8_t *blk, uint64_t at)
{
	char type = (char)blk[156];
	_cleanup_free_ char *buf = NULL;
	int64_t size;
	int r;

	if (type == 'g')
		return cfs_error(EOPNOTSUPP,
				 "%s: tar offset %" PRIu64 ": a global PAX "
				 "header, which zstd:chunked cannot describe",
				 c->what, at);
	if (!field_num(blk + 124, 12, &size) || size < 0 || size > SPECIAL_MAX)
		return cfs_error(EBADMSG,
				 "%s: tar offset %" PRIu64 ": a %s header "
				 "of a bad size (at most %d bytes)",
				 c->what, at,
				 type == 'x' ? "PAX" : "GNU long name",
				 SPECIAL_MAX);
	buf = malloc((size_t)size + 1);
	if (!buf)
		return -ENOMEM;
	r = take_raw(c, buf, (size_t)size, NULL);
	if (r == 0 && size % BLOCK)
		r = take_raw(c, NULL, BLOCK - (size_t)(size % BLOCK), NULL);
	if (r < 0)
		return r;
	buf[size] = '\0';
	c->pend.any = true;
	if (type == 'x')
		return pax_parse(c, buf, (size_t)size, at);
	return set_str(type == 'L' ? &c->pend.long_name : &c->pend.long_link,
		       buf, strlen(buf));
}

static int run(struct cw *c)
{
	uint8_t blk[BLOCK];
	size_t got;
	int r;

	for (;;) {
		uint64_t at = c->tar_off;
		struct header h;

		r = take_raw(c, blk, BLOCK, &got);
		if (r < 0)
			return r;
		if (got == 0)
			break; /* the end, without an end marker */
		if (got < BLOCK)
			return cfs_error(EBADMSG,
					 "%s: tar offset %" PRIu64 ": the tar "
					 "ends inside a header",
					 c->what, at);
		if (is_zero(blk)) {
			r = take_raw(c, blk, BLOCK, &got);
			if (r == 0 && got == BLOCK && !is_zero(blk))
				r = cfs_error(EBADMSG,
					      "%s: tar offset %" PRIu64 ": a "
					      "header after a zero block",
					      c->what, at + BLOCK);
			if (r < 0)
				return r;
			break;
		}
		if (!checksum_ok(blk))
			return cfs_error(EBADMSG,
					 "%s: tar offset %" PRIu64 ": not a "
					 "tar header (wrong checksum)",
					 c->what, at);
		if (blk[156] == 'x' || blk[156] == 'g' || blk[156] == 'L' ||
		    blk[156] == 'K') {
			r = special(c, blk, at);
			if (r < 0)
				return r;
			continue;
		}
		r = header_parse(c, blk, at, &h);
		if (r == 0)
			r = entry(c, &h, at);
		header_free(&h);
		pending_clear(&c->pend);
		if (r < 0)
			return r;
	}
	if (c->pend.any)
		return cfs_error(EBADMSG,
				 "%s: tar offset %" PRIu64 ": the tar ends "
				 "after a PAX or GNU header",
				 c->what, c->tar_off);
	/* What follows the end marker is the layer's too (its diff_id). */
	do {
		r = take_raw(c, NULL, 1024 * 1024, &got);
		if (r == 0)
			r = ts_segment(c);
	} while (r == 0 && got);
	return r < 0 ? r : frames_flush(c);
}

/* A skippable frame holding @len bytes. */
static int skippable(struct cw *c, const void *data, size_t len)
{
	uint8_t head[8];

	for (int i = 0; i < 4; i++) {
		head[i] = (uint8_t)(SKIPPABLE_MAGIC >> (8 * i));
		head[4 + i] = (uint8_t)((uint32_t)len >> (8 * i));
	}
	int r = out_raw(c, head, sizeof(head));
	return r < 0 ? r : out_raw(c, data, len);
}

/* The TOC, the tar-split and the footer, after the tar's frames. */
static int finish(struct cw *c, struct cfs_chunked_written *w)
{
	_cleanup_(json_object_putp) json_object *root = NULL;
	_cleanup_free_ void *ctoc = NULL;
	uint8_t ts_sha[32];
	uint64_t footer[FOOTER_SIZE / 8];
	char hex[CFS_DIGEST_HEX_SIZE + 8];
	const char *toc;
	size_t toc_len, ctoc_len;
	uint64_t toc_off, ts_off;
	int r;

	r = ts_compress(c, NULL, 0, ZSTD_e_end);
	if (r < 0)
		return r;
	for (size_t i = 0; i < c->n_files; i++)
		file_members(c, &c->files[i]);
	if (c->n_names)
		qsort(c->names, c->n_names, sizeof(*c->names), cfs_strp_cmp);
	for (size_t i = 1; i < c->n_names; i++)
		if (strcmp(c->names[i - 1], c->names[i]) == 0)
			return cfs_error(EOPNOTSUPP,
					 "%s: %s: the layer has the path "
					 "twice, which zstd:chunked cannot "
					 "describe",
					 c->what, c->names[i]);
	r = cfs_sha256(c->ts.buf, c->ts.len, ts_sha, NULL);
	if (r < 0)
		return r;
	root = json_object_new_object();
	if (!root)
		return -ENOMEM;
	json_object_object_add(root, "version", json_object_new_int(1));
	json_object_object_add(root, "entries", c->entries);
	c->entries = NULL;
	memcpy(hex, "sha256:", 7);
	cfs_digest_to_hex(ts_sha, hex + 7);
	json_object_object_add(root, "tarSplitDigest",
			       json_object_new_string(hex));
	toc = json_object_to_json_string_ext(
		root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!toc)
		return -ENOMEM;
	toc_len = strlen(toc);
	ctoc = malloc(ZSTD_compressBound(toc_len));
	if (!ctoc)
		return -ENOMEM;
	ctoc_len = ZSTD_compressCCtx(c->z, ctoc, ZSTD_compressBound(toc_len),
				     toc, toc_len, c->level);
	if (ZSTD_isError(ctoc_len))
		return cfs_error(EIO, "%s: zstd: %s", c->what,
				 ZSTD_getErrorName(ctoc_len));
	if (ctoc_len > CFS_CHUNKED_PART_MAX || toc_len > CFS_CHUNKED_TOC_MAX ||
	    c->ts.len > CFS_CHUNKED_PART_MAX ||
	    c->ts_size > CFS_CHUNKED_TARSPLIT_MAX)
		return cfs_error(
			EFBIG,
			"%s: its TOC (%zu bytes) or tar-split (%" PRIu64
			" bytes) is over the limits of a reader",
			c->what, toc_len, c->ts_size);
	toc_off = c->out_off + 8;
	r = skippable(c, ctoc, ctoc_len);
	ts_off = c->out_off + 8;
	if (r == 0)
		r = skippable(c, c->ts.buf, c->ts.len);
	/* the footer: the two positions, the CRFS TOC type (1), a magic */
	footer[0] = htole64(toc_off);
	footer[1] = htole64(ctoc_len);
	footer[2] = htole64(toc_len);
	footer[3] = htole64(1);
	footer[4] = htole64(ts_off);
	footer[5] = htole64(c->ts.len);
	footer[6] = htole64(c->ts_size);
	memcpy(&footer[7], "GNUlInUx", 8);
	if (r == 0)
		r = skippable(c, footer, sizeof(footer));
	if (r == 0)
		r = out_flush(c);
	if (r < 0)
		return r;
	if (EVP_DigestFinal_ex(c->blob_sha, w->digest, NULL) != 1)
		return cfs_error(EIO, "%s: sha256 failed", c->what);
	w->size = c->out_off;
	w->tar_size = c->tar_off;
	w->n_files = c->n_files;
	snprintf(w->toc_position, sizeof(w->toc_position),
		 "%" PRIu64 ":%zu:%zu:1", toc_off, ctoc_len, toc_len);
	memcpy(w->toc_checksum, "sha256:", 7);
	r = cfs_sha256(ctoc, ctoc_len, NULL, w->toc_checksum);
	snprintf(w->tarsplit_position, sizeof(w->tarsplit_position),
		 "%" PRIu64 ":%zu:%" PRIu64, ts_off, c->ts.len, c->ts_size);
	return r;
}

static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

int cfs_chunked_write(cfs_chunked_read_fn read, void *opaque, int fd,
		      const struct cfs_chunked_params *params, const char *what,
		      struct cfs_chunked_written *out)
{
	int level = params->level;
	struct cw c = { .what = what,
			.read = read,
			.opaque = opaque,
			.fd = fd,
			.level = level,
			.frame_max = params->frame_max ?
					     params->frame_max :
					     CFS_CHUNKED_FRAME_MAX };
	int r = 0;

	pthread_once(&crc_once, crc64_init);
	memset(out, 0, sizeof(*out));
	c.z = ZSTD_createCCtx();
	c.tz = ZSTD_createCCtx();
	c.out = malloc(OUT_SIZE);
	c.blob_sha = EVP_MD_CTX_new();
	c.file_sha = EVP_MD_CTX_new();
	c.entries = json_object_new_array();
	if (!c.z || !c.tz || !c.out || !c.blob_sha || !c.file_sha || !c.entries)
		r = -ENOMEM;
	if (r == 0)
		r = cfs_verity_new(&c.verity);
	if (r == 0)
		pool_start(&c.pool, params->level, params->threads);
	if (r == 0 && (ZSTD_isError(ZSTD_CCtx_setParameter(
			       c.z, ZSTD_c_compressionLevel, level)) ||
		       ZSTD_isError(ZSTD_CCtx_setParameter(
			       c.tz, ZSTD_c_compressionLevel, level)) ||
		       EVP_DigestInit_ex(c.blob_sha, EVP_sha256(), NULL) != 1))
		r = cfs_error(EINVAL, "%s: zstd level %d or sha256 refused",
			      what, level);
	if (r == 0)
		r = run(&c);
	if (r == 0)
		r = finish(&c, out);
	if (c.pool.started)
		pool_stop(&c.pool);
	ZSTD_freeCCtx(c.z);
	ZSTD_freeCCtx(c.tz);
	free(c.frame.buf);
	free(c.ends);
	free(c.files);
	free(c.out);
	EVP_MD_CTX_free(c.blob_sha);
	EVP_MD_CTX_free(c.file_sha);
	cfs_verity_free(c.verity);
	json_object_put(c.entries);
	for (size_t i = 0; i < c.n_names; i++)
		free(c.names[i]);
	free(c.names);
	free(c.seg.buf);
	free(c.ts.buf);
	pending_clear(&c.pend);
	return r;
}
