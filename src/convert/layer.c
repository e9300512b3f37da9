/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
#include "convert/layer.h"

#include <archive.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cfs/image.h>

#include "common/error.h"
#include "common/util.h"

/* Uncompressed buffers between the threads: enough to keep both cores
 * busy, small enough not to matter for memory (4 x 1 MiB). */
#define LAYER_BUFS 4
#define LAYER_BUF_SIZE (1024 * 1024)
#define LAYER_IN_SIZE (256 * 1024)

struct layer_buf {
	uint8_t *data;
	size_t len;
};

struct cfs_layer_stream {
	/* input */
	int fd;
	uint64_t offset, length;
	enum cfs_layer_compression compression;
	char *what;

	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;

	/* queue: count filled buffers starting at head; the consumer owns
	 * the head buffer while has_current */
	struct layer_buf bufs[LAYER_BUFS];
	size_t head, count;
	bool has_current;
	bool eof, stop;
	bool empty; /* the stream had no bytes at all */
	int err; /* negative errno of the producer */
	char msg[512];

	/* producer state */
	EVP_MD_CTX *sha_c, *sha_u;
	uint8_t *in;
	struct cfs_layer_digests digests;
	size_t fill; /* bytes in the buffer being filled */
	size_t out_slot; /* which buffer, while have_out */
	bool have_out;

	struct archive *archive;
};

int cfs_parse_sha256(const char *s, uint8_t digest[32])
{
	if (strncmp(s, "sha256:", 7) != 0)
		return -EINVAL;
	return cfs_digest_from_hex(digest, s + 7);
}

/* ---- producer -------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static int
fail(struct cfs_layer_stream *s, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->msg, sizeof(s->msg), fmt, ap);
	va_end(ap);
	return -err;
}

/* Wait for a free buffer; false when told to stop. */
static bool wait_free(struct cfs_layer_stream *s, size_t *slot)
{
	bool ok;

	pthread_mutex_lock(&s->lock);
	while (s->count == LAYER_BUFS && !s->stop)
		pthread_cond_wait(&s->cond, &s->lock);
	ok = !s->stop;
	*slot = (s->head + s->count) % LAYER_BUFS;
	pthread_mutex_unlock(&s->lock);
	return ok;
}

static int push(struct cfs_layer_stream *s, size_t slot, size_t len)
{
	if (EVP_DigestUpdate(s->sha_u, s->bufs[slot].data, len) != 1)
		return fail(s, EIO, "%s: sha256 failed", s->what);
	s->digests.uncompressed_size += len;
	pthread_mutex_lock(&s->lock);
	s->bufs[slot].len = len;
	s->count++;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* The buffer being filled (s->fill bytes used), waiting for a free one
 * if needed; NULL when told to stop. */
static uint8_t *out_buf(struct cfs_layer_stream *s)
{
	if (!s->have_out) {
		if (!wait_free(s, &s->out_slot))
			return NULL;
		s->have_out = true;
		s->fill = 0;
	}
	return s->bufs[s->out_slot].data;
}

/* Hand the buffer to the consumer when it is full, or with @final when it
 * holds anything. */
static int out_done(struct cfs_layer_stream *s, bool final)
{
	if (!s->have_out ||
	    !(s->fill == LAYER_BUF_SIZE || (final && s->fill > 0)))
		return 0;
	s->have_out = false;
	return push(s, s->out_slot, s->fill);
}

/* Read the next piece of the blob; 0 at its end. */
static ssize_t read_input(struct cfs_layer_stream *s)
{
	uint64_t left = s->length - s->digests.compressed_size;
	size_t want = (size_t)CFS_MIN(left, (uint64_t)LAYER_IN_SIZE);
	ssize_t n;

	if (want == 0)
		return 0;
	do
		n = pread(s->fd, s->in, want,
			  (off_t)(s->offset + s->digests.compressed_size));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return fail(s, errno, "%s: reading blob at offset %llu: %s",
			    s->what,
			    (unsigned long long)s->digests.compressed_size,
			    strerror(errno));
	if (n == 0)
		return fail(s, EIO,
			    "%s: blob ends at %llu bytes, expected %llu",
			    s->what,
			    (unsigned long long)s->digests.compressed_size,
			    (unsigned long long)s->length);
	if (EVP_DigestUpdate(s->sha_c, s->in, (size_t)n) != 1)
		return fail(s, EIO, "%s: sha256 failed", s->what);
	/* read by the consumer thread for progress reports */
	__atomic_add_fetch(&s->digests.compressed_size, (uint64_t)n,
			   __ATOMIC_RELAXED);
	return n;
}

static int produce_plain(struct cfs_layer_stream *s)
{
	for (;;) {
		uint8_t *buf = out_buf(s);
		ssize_t n = 0;
		int r;

		if (!buf)
			return -ECANCELED;
		/* read only while a whole input chunk still fits */
		while (LAYER_BUF_SIZE - s->fill >= LAYER_IN_SIZE &&
		       (n = read_input(s)) > 0) {
			memcpy(buf + s->fill, s->in, (size_t)n);
			s->fill += (size_t)n;
		}
		if (n < 0)
			return (int)n;
		r = out_done(s, true);
		if (r < 0 || n == 0)
			return r;
	}
}

static int produce_gzip(struct cfs_layer_stream *s)
{
	z_stream zs = { 0 };
	bool member_done = false;
	uint8_t *buf;
	int r = 0, zr;

	if (inflateInit2(&zs, 15 + 16) != Z_OK)
		return fail(s, ENOMEM, "%s: zlib init failed", s->what);
	for (;;) {
		if (zs.avail_in == 0) {
			ssize_t n = read_input(s);
			if (n < 0) {
				r = (int)n;
				break;
			}
			if (n == 0) {
				if (!member_done)
					r = fail(
						s, EINVAL,
						"%s: truncated gzip stream (ends at compressed offset %llu)",
						s->what,
						(unsigned long long)s->digests
							.compressed_size);
				break;
			}
			zs.next_in = s->in;
			zs.avail_in = (uInt)n;
		}
		if (member_done) {
			/* Another gzip member follows (concatenated gzip is
			 * valid and what pigz -i and some tools write). */
			inflateReset(&zs);
			member_done = false;
		}
		buf = out_buf(s);
		if (!buf) {
			r = -ECANCELED;
			break;
		}
		zs.next_out = buf + s->fill;
		zs.avail_out = (uInt)(LAYER_BUF_SIZE - s->fill);
		zr = inflate(&zs, Z_NO_FLUSH);
		s->fill = LAYER_BUF_SIZE - zs.avail_out;
		if (zr == Z_STREAM_END) {
			member_done = true;
		} else if (zr != Z_OK && zr != Z_BUF_ERROR) {
			r = fail(
				s, EINVAL,
				"%s: corrupt gzip data near compressed offset %llu: %s",
				s->what,
				(unsigned long long)(s->digests.compressed_size -
						     zs.avail_in),
				zs.msg ? zs.msg : "inflate failed");
			break;
		}
		r = out_done(s, false);
		if (r < 0)
			break;
	}
	if (r == 0)
		r = out_done(s, true);
	inflateEnd(&zs);
	return r;
}

static int produce_zstd(struct cfs_layer_stream *s)
{
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	ZSTD_inBuffer in = { 0 };
	size_t last = 0;
	int r = 0;

	if (!dctx)
		return fail(s, ENOMEM, "%s: zstd init failed", s->what);
	for (;;) {
		ZSTD_outBuffer out;
		size_t zr;

		if (in.pos == in.size) {
			ssize_t n = read_input(s);
			if (n < 0) {
				r = (int)n;
				break;
			}
			if (n == 0) {
				if (last != 0)
					r = fail(
						s, EINVAL,
						"%s: truncated zstd stream (ends at compressed offset %llu)",
						s->what,
						(unsigned long long)s->digests
							.compressed_size);
				break;
			}
			in.src = s->in;
			in.size = (size_t)n;
			in.pos = 0;
		}
		out.dst = out_buf(s);
		if (!out.dst) {
			r = -ECANCELED;
			break;
		}
		out.size = LAYER_BUF_SIZE;
		out.pos = s->fill;
		zr = ZSTD_decompressStream(dctx, &out, &in);
		s->fill = out.pos;
		if (ZSTD_isError(zr)) {
			r = fail(
				s, EINVAL,
				"%s: corrupt zstd data near compressed offset %llu: %s",
				s->what,
				(unsigned long long)(s->digests.compressed_size -
						     (in.size - in.pos)),
				ZSTD_getErrorName(zr));
			break;
		}
		last = zr;
		r = out_done(s, false);
		if (r < 0)
			break;
	}
	if (r == 0)
		r = out_done(s, true);
	ZSTD_freeDCtx(dctx);
	return r;
}

static void *producer(void *arg)
{
	struct cfs_layer_stream *s = arg;
	int r;

	switch (s->compression) {
	case CFS_LAYER_GZIP:
		r = produce_gzip(s);
		break;
	case CFS_LAYER_ZSTD:
		r = produce_zstd(s);
		break;
	default:
		r = produce_plain(s);
	}
	if (r == 0) {
		unsigned int len;
		if (EVP_DigestFinal_ex(s->sha_c, s->digests.compressed, &len) !=
			    1 ||
		    EVP_DigestFinal_ex(s->sha_u, s->digests.uncompressed,
				       &len) != 1)
			r = fail(s, EIO, "%s: sha256 failed", s->what);
	}
	pthread_mutex_lock(&s->lock);
	s->err = r;
	s->eof = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* ---- consumer -------------------------------------------------------- */

/* Release the buffer the consumer holds and wait for the next one.
 * Returns its length, 0 at the end, or a negative errno. */
static ssize_t next_buf(struct cfs_layer_stream *s, const void **data)
{
	ssize_t r;

	pthread_mutex_lock(&s->lock);
	if (s->has_current) {
		s->head = (s->head + 1) % LAYER_BUFS;
		s->count--;
		s->has_current = false;
		pthread_cond_broadcast(&s->cond);
	}
	while (s->count == 0 && !s->eof)
		pthread_cond_wait(&s->cond, &s->lock);
	if (s->count > 0) {
		*data = s->bufs[s->head].data;
		r = (ssize_t)s->bufs[s->head].len;
		s->has_current = true;
	} else {
		r = s->err;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

static la_ssize_t archive_read_cb(struct archive *a, void *client,
				  const void **buffer)
{
	struct cfs_layer_stream *s = client;
	ssize_t n = next_buf(s, buffer);

	if (n < 0) {
		archive_set_error(a, (int)-n, "%s", s->msg);
		return -1;
	}
	return n;
}

uint64_t cfs_layer_bytes_read(struct cfs_layer_stream *s)
{
	return __atomic_load_n(&s->digests.compressed_size, __ATOMIC_RELAXED);
}

struct archive *cfs_layer_archive(struct cfs_layer_stream *s)
{
	return s->empty ? NULL : s->archive;
}

/* Wait until the producer has output or has finished; an error before
 * any output is reported here with the producer's message. */
static int wait_first(struct cfs_layer_stream *s)
{
	int r = 0;

	pthread_mutex_lock(&s->lock);
	while (s->count == 0 && !s->eof)
		pthread_cond_wait(&s->cond, &s->lock);
	if (s->count == 0 && s->err < 0)
		r = s->err;
	else if (s->count == 0)
		s->empty = true;
	pthread_mutex_unlock(&s->lock);
	if (r < 0)
		return cfs_error(-r, "%s", s->msg[0] ? s->msg : s->what);
	return 0;
}

const char *cfs_layer_error(struct cfs_layer_stream *s)
{
	const char *msg;

	pthread_mutex_lock(&s->lock);
	msg = s->err < 0 && s->msg[0] ? s->msg : NULL;
	pthread_mutex_unlock(&s->lock);
	return msg;
}

int cfs_layer_finish(struct cfs_layer_stream *s, struct cfs_layer_digests *d)
{
	const void *data;
	ssize_t n;

	/* Whatever follows the tar end marker is part of the diff_id too. */
	while ((n = next_buf(s, &data)) > 0)
		;
	if (n < 0)
		return cfs_error(-(int)n, "%s", s->msg[0] ? s->msg : s->what);
	*d = s->digests;
	return 0;
}

int cfs_layer_open(struct cfs_layer_stream **out, const struct cfs_blob *blob,
		   enum cfs_layer_compression compression, const char *what)
{
	struct cfs_layer_stream *s;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->fd = blob->fd;
	s->offset = blob->offset;
	s->length = blob->length;
	s->compression = compression;
	s->what = strdup(what);
	s->in = malloc(LAYER_IN_SIZE);
	s->sha_c = EVP_MD_CTX_new();
	s->sha_u = EVP_MD_CTX_new();
	r = s->what && s->in && s->sha_c && s->sha_u ? 0 : -ENOMEM;
	for (int i = 0; r == 0 && i < LAYER_BUFS; i++) {
		s->bufs[i].data = malloc(LAYER_BUF_SIZE);
		if (!s->bufs[i].data)
			r = -ENOMEM;
	}
	if (r == 0 && (EVP_DigestInit_ex(s->sha_c, EVP_sha256(), NULL) != 1 ||
		       EVP_DigestInit_ex(s->sha_u, EVP_sha256(), NULL) != 1))
		r = cfs_error(EIO, "%s: sha256 init failed: %s", what,
			      ERR_error_string(ERR_get_error(), NULL));
	if (r == 0) {
		s->archive = archive_read_new();
		if (!s->archive)
			r = -ENOMEM;
	}
	if (r == 0) {
		int pr = pthread_create(&s->thread, NULL, producer, s);
		if (pr != 0)
			r = cfs_error(pr,
				      "%s: starting the decompression thread",
				      what);
		else
			s->thread_started = true;
	}
	if (r == 0)
		r = wait_first(s);
	/* An empty stream is an empty layer (Docker writes them for
	 * metadata-only steps); libarchive would call it unrecognised. */
	if (r == 0 && !s->empty &&
	    (archive_read_support_format_tar(s->archive) != ARCHIVE_OK ||
	     archive_read_open(s->archive, s, NULL, archive_read_cb, NULL) !=
		     ARCHIVE_OK)) {
		if (cfs_layer_error(s))
			r = cfs_error(EINVAL, "%s", cfs_layer_error(s));
		else
			r = cfs_error(EINVAL, "%s: %s", what,
				      archive_error_string(s->archive));
	}
	if (r < 0) {
		cfs_layer_close(s);
		return r;
	}
	*out = s;
	return 0;
}

void cfs_layer_close(struct cfs_layer_stream *s)
{
	if (!s)
		return;
	if (s->thread_started) {
		pthread_mutex_lock(&s->lock);
		s->stop = true;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->thread, NULL);
	}
	if (s->archive)
		archive_read_free(s->archive);
	for (int i = 0; i < LAYER_BUFS; i++)
		free(s->bufs[i].data);
	EVP_MD_CTX_free(s->sha_c);
	EVP_MD_CTX_free(s->sha_u);
	free(s->in);
	free(s->what);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
}
