/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
#include "convert/layer.h"

#include <archive.h>
#include <archive_entry.h>
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
#ifdef CFS_HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif

#include <cfs/image.h>

#include "common/error.h"
#include "common/util.h"

/* Uncompressed buffers between the threads: enough to keep both cores
 * busy, small enough not to matter for memory (8 x 1 MiB). A layer
 * started ahead (cfs_layer_start()) has more room: it runs while the
 * previous layer's tail or record is still being applied, and what it
 * decompresses then is time saved. */
#define LAYER_BUFS 8
#define LAYER_BUFS_AHEAD 32
#define LAYER_BUF_SIZE (1024 * 1024)
#define LAYER_IN_SIZE (256 * 1024)

/* libarchive's own limits on tar extension headers (3.6, "sanity
 * limits" of archive_read_support_format_tar.c): a PAX, GNU long name or
 * ACL header of more than 1 MiB is refused, and it stops following
 * extension headers after 32 of them. */
#define TAR_BLOCK 512
#define TAR_SPECIAL_MAX (1024 * 1024)
#define TAR_CHAIN_MAX 32
/* Bytes of a name with a NUL byte quoted in the message. */
#define TAR_NUL_NAME_MAX 200

enum walk_state {
	WALK_HEADER, /* collecting a 512-byte header */
	WALK_BODY, /* collecting the body of a PAX header */
	WALK_SKIP, /* passing over another body, or padding */
	WALK_DONE, /* the entry's own header, or nothing to understand */
};

/*
 * The header blocks of one tar entry, seen as they pass from the stream
 * to libarchive (see "PAX records with a NUL byte" below).
 */
struct tar_walk {
	bool active; /* from cfs_layer_next_entry() to the header's check */
	enum walk_state state;
	int64_t start; /* offset of the entry's first header */
	int64_t pos; /* offset of the next byte to look at */
	int64_t hdr_off; /* offset of the header being read */
	uint8_t hdr[TAR_BLOCK];
	size_t hfill;
	unsigned int depth; /* headers of the entry so far */
	char type; /* of the PAX header whose body is collected */
	uint8_t *body; /* up to TAR_SPECIAL_MAX bytes, kept for the stream */
	size_t body_len, body_want, body_cap;
	uint64_t skip;
	bool oom;
	/* the first record naming something with a NUL byte, or -1 */
	int64_t nul_off; /* offset of its PAX header */
	int64_t nul_end; /* where the body of that header ends */
	char nul_type; /* 'x' (or 'X') or 'g' */
	const char *nul_key;
	char nul_name[TAR_NUL_NAME_MAX + 4]; /* what libarchive keeps */
	/* the typeflag of the entry's own header, or -1 if the walk ended
	 * before it; the offset of a GNU volume header before it, or -1 */
	int typeflag;
	int64_t volume_off;
};

struct layer_buf {
	uint8_t *data;
	size_t len;
};

struct cfs_layer_stream {
	/* input */
	int fd;
	uint64_t offset, length;
	bool stream; /* fd is a pipe, read where it is */
	enum cfs_layer_compression compression;
	enum cfs_gzip_decoder gzip_decoder;
	char *what;

	pthread_t thread, hasher;
	bool thread_started, hasher_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;

	/* A ring of buffers, counted since the start: buffer i is in
	 * bufs[i % nbufs]. The producer fills buffer @produced once
	 * both the consumer and the hasher are done with the one that was
	 * there; the consumer owns buffer @consumed while has_current, the
	 * hasher reads buffer @hashed. */
	struct layer_buf bufs[LAYER_BUFS_AHEAD];
	unsigned int nbufs;
	bool begun; /* cfs_layer_begin() succeeded */
	uint64_t produced, consumed, hashed;
	bool has_current;
	bool eof, stop;
	bool hash_done; /* the hasher has finished sha_u */
	bool hash_failed;
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

	/* consumer state: the buffer libarchive reads (valid while
	 * has_current) and where it starts in the tar stream */
	const uint8_t *cur_data;
	size_t cur_len;
	int64_t cur_off;
	struct archive_entry *entry; /* read last; its data may be left */
	int64_t entry_off;
	struct tar_walk walk;
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
	while (s->produced - CFS_MIN(s->consumed, s->hashed) == s->nbufs &&
	       !s->stop)
		pthread_cond_wait(&s->cond, &s->lock);
	ok = !s->stop;
	*slot = (size_t)(s->produced % s->nbufs);
	pthread_mutex_unlock(&s->lock);
	return ok;
}

static int push(struct cfs_layer_stream *s, size_t slot, size_t len)
{
	s->digests.uncompressed_size += len;
	pthread_mutex_lock(&s->lock);
	s->bufs[slot].len = len;
	s->produced++;
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
		n = s->stream ? read(s->fd, s->in, want) :
				pread(s->fd, s->in, want,
				      (off_t)(s->offset +
					      s->digests.compressed_size));
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

/* Which gzip decoder cfs_layer_open() gives the next stream. */
#ifdef CFS_HAVE_ISAL
static int gzip_decoder = CFS_GZIP_ISAL;
#else
static int gzip_decoder = CFS_GZIP_ZLIB;
#endif

int cfs_layer_set_gzip_decoder(enum cfs_gzip_decoder d)
{
#ifndef CFS_HAVE_ISAL
	if (d == CFS_GZIP_ISAL)
		return -ENOTSUP;
#endif
	if (d != CFS_GZIP_ZLIB && d != CFS_GZIP_ISAL)
		return -EINVAL;
	__atomic_store_n(&gzip_decoder, (int)d, __ATOMIC_RELAXED);
	return 0;
}

__attribute__((format(printf, 3, 4))) static int
gzip_corrupt(struct cfs_layer_stream *s, uint64_t at, const char *fmt, ...)
{
	char why[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return fail(s, EINVAL,
		    "%s: corrupt gzip data near compressed offset %llu: %s",
		    s->what, (unsigned long long)at, why);
}

static int gzip_truncated(struct cfs_layer_stream *s)
{
	return fail(
		s, EINVAL,
		"%s: truncated gzip stream (ends at compressed offset %llu)",
		s->what, (unsigned long long)s->digests.compressed_size);
}

static int produce_gzip_zlib(struct cfs_layer_stream *s)
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
					r = gzip_truncated(s);
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
			r = gzip_corrupt(
				s, s->digests.compressed_size - zs.avail_in,
				"%s", zs.msg ? zs.msg : "inflate failed");
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

#ifdef CFS_HAVE_ISAL
/*
 * gzip with ISA-L's inflate: the same streams as produce_gzip_zlib()
 * (concatenated members), refused for the same reasons, at the same
 * offsets and in zlib's words wherever zlib has words for the fault, so
 * that a layer fails alike whichever decoder the build chose. Only the
 * offset of corrupt deflate data may differ, by the few bytes ISA-L reads
 * ahead ("near").
 *
 * Where ISA-L differs from zlib, and what is done about it:
 * - isal_inflate() can read the gzip header itself, but (2.30) into a
 *   header structure that lasts one call: a header that spans two inputs
 *   loses what was read of it (its flags, the header CRC so far), and a
 *   member with a header CRC is refused. The header is read here with
 *   isal_read_gzip_header() and a structure that lives as long as the
 *   member.
 * - It decodes ahead into a buffer of its own, holding output back, and
 *   reads up to eight bytes ahead into its bit buffer: full output is no
 *   sign that it needs input, and the end of the blob is a truncation
 *   only when it asked for more and the member is not finished.
 * - Its header parse wants ten bytes, where zlib checks the magic after
 *   two and the method and flags after four: those checks are made here
 *   as zlib makes them (a stray byte after the last member is then a
 *   truncation with both, a short piece of junk corrupt data with both).
 * - It checks the trailer's CRC-32 and ISIZE in one comparison: the
 *   trailer is looked at again to say which, at zlib's offset.
 * At the end of a member (ISAL_BLOCK_FINISH) its bit buffer holds no
 * whole byte (at most the padding bits of the last deflate byte, when the
 * trailer was read from the input rather than from that buffer) and
 * next_in is the first byte after the trailer, where the next member
 * starts; that is checked, never assumed.
 */
struct isal_gz {
	struct inflate_state st;
	struct isal_gzip_header hdr; /* lives as long as the member */
	enum { GZ_HEAD, GZ_BODY, GZ_DONE } phase;
	uint8_t head[4]; /* the member's first bytes, as zlib checks them */
	unsigned int nhead;
	uint8_t tail[8]; /* the 8 bytes of the blob before s->in */
	size_t in_len; /* bytes in s->in */
};

/* Offset in the blob of the next byte ISA-L will take. */
static uint64_t isal_pos(struct cfs_layer_stream *s, const struct isal_gz *g)
{
	return s->digests.compressed_size - g->st.avail_in;
}

/* Before s->in is read over: keep its last bytes for the trailer. */
static void isal_keep_tail(struct cfs_layer_stream *s, struct isal_gz *g)
{
	size_t n = g->in_len;

	if (n >= sizeof(g->tail)) {
		memcpy(g->tail, s->in + n - sizeof(g->tail), sizeof(g->tail));
	} else if (n > 0) {
		memmove(g->tail, g->tail + n, sizeof(g->tail) - n);
		memcpy(g->tail + sizeof(g->tail) - n, s->in, n);
	}
}

/* zlib's first checks of a member: the magic once two bytes are in, the
 * method and the reserved flags once four are. */
static int isal_check_head(struct cfs_layer_stream *s, struct isal_gz *g)
{
	const uint8_t *p = g->st.next_in;
	uint64_t at = isal_pos(s, g);
	uint32_t n = g->st.avail_in;

	while (g->nhead < sizeof(g->head) && n > 0) {
		g->head[g->nhead++] = *p++;
		n--;
		at++;
		if (g->nhead == 2 && (g->head[0] != 0x1f || g->head[1] != 0x8b))
			return gzip_corrupt(s, at, "incorrect header check");
		if (g->nhead == 4 && g->head[2] != 8)
			return gzip_corrupt(s, at,
					    "unknown compression method");
		if (g->nhead == 4 && (g->head[3] & 0xe0))
			return gzip_corrupt(s, at, "unknown header flags set");
	}
	return 0;
}

/* The trailer ISA-L refused ends at next_in: CRC-32 first, as zlib. */
static int isal_trailer_error(struct cfs_layer_stream *s, struct isal_gz *g)
{
	size_t used = (size_t)(g->st.next_in - s->in);
	size_t k = CFS_MIN(used, sizeof(g->tail));
	uint64_t end = isal_pos(s, g);
	uint8_t t[8];
	uint32_t crc;

	memcpy(t, g->tail + k, sizeof(t) - k);
	memcpy(t + sizeof(t) - k, g->st.next_in - k, k);
	crc = (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 |
	      (uint32_t)t[3] << 24;
	if (crc != g->st.crc)
		return gzip_corrupt(s, end - 4, "incorrect data check");
	return gzip_corrupt(s, end, "incorrect length check");
}

static int isal_error(struct cfs_layer_stream *s, struct isal_gz *g, int ret)
{
	/* what is still in the bit buffer was not looked at yet */
	uint64_t at = isal_pos(s, g);
	uint64_t ahead = g->st.read_in_length > 0 ?
				 (uint64_t)g->st.read_in_length / 8 :
				 0;

	at -= CFS_MIN(ahead, at);
	switch (ret) {
	case ISAL_INVALID_BLOCK:
		return gzip_corrupt(s, at, "invalid deflate block");
	case ISAL_INVALID_SYMBOL:
		return gzip_corrupt(s, at, "invalid deflate code");
	case ISAL_INVALID_LOOKBACK:
		return gzip_corrupt(s, at, "invalid distance too far back");
	case ISAL_INVALID_WRAPPER:
		return gzip_corrupt(s, at, "incorrect header check");
	case ISAL_UNSUPPORTED_METHOD:
		return gzip_corrupt(s, at, "unknown compression method");
	case ISAL_INCORRECT_CHECKSUM:
		if (g->phase == GZ_HEAD)
			return gzip_corrupt(s, at, "header crc mismatch");
		return isal_trailer_error(s, g);
	default:
		return gzip_corrupt(s, at, "ISA-L inflate error %d", ret);
	}
}

static int produce_gzip_isal(struct cfs_layer_stream *s)
{
	struct isal_gz *g = calloc(1, sizeof(*g));
	bool need_input = true;
	int r = 0, ret;

	if (!g)
		return fail(s, ENOMEM, "%s: ISA-L init failed", s->what);
	isal_inflate_init(&g->st);
	g->st.crc_flag = ISAL_GZIP;
	isal_gzip_header_init(&g->hdr);
	for (;;) {
		uint32_t in_before, out_before;
		uint8_t *buf;

		if (need_input) {
			ssize_t n;

			isal_keep_tail(s, g);
			n = read_input(s);
			if (n < 0) {
				r = (int)n;
				break;
			}
			if (n == 0) {
				if (g->phase != GZ_DONE)
					r = gzip_truncated(s);
				break;
			}
			g->in_len = (size_t)n;
			g->st.next_in = s->in;
			g->st.avail_in = (uint32_t)n;
			need_input = false;
		}
		if (g->phase == GZ_DONE) {
			/* Another gzip member follows. */
			isal_inflate_reset(&g->st);
			isal_gzip_header_init(&g->hdr);
			g->nhead = 0;
			g->phase = GZ_HEAD;
		}
		if (g->phase == GZ_HEAD) {
			r = isal_check_head(s, g);
			if (r < 0)
				break;
			ret = isal_read_gzip_header(&g->st, &g->hdr);
			if (ret == ISAL_END_INPUT && g->st.avail_in == 0) {
				need_input = true;
				continue;
			}
			if (ret != ISAL_DECOMP_OK) {
				r = ret < 0 ?
					    isal_error(s, g, ret) :
					    fail(s, EIO,
						 "%s: ISA-L gzip header read failed (%d)",
						 s->what, ret);
				break;
			}
			g->phase = GZ_BODY;
		}
		buf = out_buf(s);
		if (!buf) {
			r = -ECANCELED;
			break;
		}
		g->st.next_out = buf + s->fill;
		g->st.avail_out = (uint32_t)(LAYER_BUF_SIZE - s->fill);
		in_before = g->st.avail_in;
		out_before = g->st.avail_out;
		ret = isal_inflate(&g->st);
		s->fill = LAYER_BUF_SIZE - g->st.avail_out;
		if (ret != ISAL_DECOMP_OK) {
			r = isal_error(s, g, ret);
			break;
		}
		if (g->st.block_state == ISAL_BLOCK_FINISH) {
			if (g->st.read_in_length >= 8) {
				r = fail(
					s, EIO,
					"%s: ISA-L kept %d bits past the gzip member ending at compressed offset %llu",
					s->what, (int)g->st.read_in_length,
					(unsigned long long)isal_pos(s, g));
				break;
			}
			g->phase = GZ_DONE;
		}
		/* Full output with all the input taken: call again with the
		 * next buffer before asking for more input. */
		need_input = g->st.avail_in == 0 &&
			     (g->phase == GZ_DONE || g->st.avail_out > 0);
		if (!need_input && g->phase != GZ_DONE && g->st.avail_out > 0 &&
		    g->st.avail_in == in_before &&
		    g->st.avail_out == out_before) {
			r = fail(
				s, EIO,
				"%s: ISA-L inflate stalled at compressed offset %llu",
				s->what, (unsigned long long)isal_pos(s, g));
			break;
		}
		r = out_done(s, false);
		if (r < 0)
			break;
	}
	if (r == 0)
		r = out_done(s, true);
	free(g);
	return r;
}
#endif

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
#ifdef CFS_HAVE_ISAL
		if (s->gzip_decoder == CFS_GZIP_ISAL) {
			r = produce_gzip_isal(s);
			break;
		}
#endif
		r = produce_gzip_zlib(s);
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
		    1)
			r = fail(s, EIO, "%s: sha256 failed", s->what);
	}
	pthread_mutex_lock(&s->lock);
	s->err = r;
	s->eof = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/*
 * The diff_id is the SHA-256 of the uncompressed stream. It has a thread
 * of its own beside the decompression and the tar parsing: on two cores
 * the three of them share out evenly, where the decompression thread
 * hashing as well would leave the other core waiting for it whenever
 * the contents are already in the store.
 */
static void *hasher(void *arg)
{
	struct cfs_layer_stream *s = arg;
	int r = 0;

	for (;;) {
		const struct layer_buf *b;
		unsigned int len;

		pthread_mutex_lock(&s->lock);
		while (s->hashed == s->produced && !s->eof && !s->stop)
			pthread_cond_wait(&s->cond, &s->lock);
		if (s->stop || s->hashed == s->produced) {
			bool stopped = s->stop;

			pthread_mutex_unlock(&s->lock);
			if (!stopped && r == 0 &&
			    EVP_DigestFinal_ex(s->sha_u,
					       s->digests.uncompressed,
					       &len) != 1)
				r = -EIO;
			break;
		}
		b = &s->bufs[s->hashed % s->nbufs];
		pthread_mutex_unlock(&s->lock);
		/* the producer does not touch the buffer until it is
		 * counted hashed */
		if (r == 0 && EVP_DigestUpdate(s->sha_u, b->data, b->len) != 1)
			r = -EIO;
		pthread_mutex_lock(&s->lock);
		s->hashed++;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_lock(&s->lock);
	s->hash_failed = r < 0;
	s->hash_done = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* ---- PAX records with a NUL byte --------------------------------------- */

/*
 * libarchive (3.6) copies the value of a PAX path record as a C string:
 * "etc/passwd\0.txt" names /etc/passwd, while Go's archive/tar (so
 * containerd) refuses the header. libarchive shows no raw record, so the
 * header blocks of each entry are looked at on their way from the stream
 * to libarchive: from the offset where libarchive starts reading the
 * entry (cfs_layer_next_entry() knows it: the previous entry's data has
 * been skipped) through its extension headers up to its own header. The
 * entry's data is never looked at, so a walk that went wrong cannot
 * outlive its entry. Whatever the walk does not understand ends it
 * quietly and leaves the errors to libarchive.
 */

/*
 * A tar number field as libarchive reads it (tar_atol): base-256 (two's
 * complement, big-endian) when the first byte has its top bit set, else
 * octal after blanks with an optional '-'. A negative value is -1, one
 * above @max is @max + 1: "too large" is all the walk needs to know.
 */
static int64_t tar_number(const uint8_t *f, size_t len, int64_t max)
{
	int64_t v = 0;
	bool neg = false;
	size_t i = 0;

	if (f[0] & 0x80) {
		/* bit 6 of the first byte is the sign bit */
		if (f[0] & 0x40)
			return -1;
		v = f[0] & 0x3f;
		for (i = 1; i < len && v <= max; i++)
			v = v * 256 + f[i];
		return v > max ? max + 1 : v;
	}
	while (i < len && (f[i] == ' ' || f[i] == '\t'))
		i++;
	if (i < len && f[i] == '-') {
		neg = true;
		i++;
	}
	for (; i < len && f[i] >= '0' && f[i] <= '7' && v <= max; i++)
		v = v * 8 + (f[i] - '0');
	if (neg && v)
		return -1;
	return v > max ? max + 1 : v;
}

/* libarchive's test: the checksum field holds octal digits, blanks or
 * NULs, and the sum of the header's bytes (the field counted as spaces),
 * unsigned or, as some old tars wrote it, signed. */
static bool tar_checksum_ok(const uint8_t *h)
{
	int64_t want;
	int sum_u = 0, sum_s = 0;

	for (size_t i = 148; i < 156; i++)
		if (h[i] != ' ' && h[i] != '\0' && (h[i] < '0' || h[i] > '7'))
			return false;
	want = tar_number(h + 148, 8, INT32_MAX);
	for (size_t i = 0; i < TAR_BLOCK; i++) {
		int c = i >= 148 && i < 156 ? ' ' : h[i];

		sum_u += c;
		sum_s += i >= 148 && i < 156 ? c : (signed char)c;
	}
	return want == sum_u || want == sum_s;
}

static bool block_is_zero(const uint8_t *h)
{
	for (size_t i = 0; i < TAR_BLOCK; i++)
		if (h[i])
			return false;
	return true;
}

/* The records that name a file: libarchive takes the entry's path from
 * path or GNU.sparse.name, its link target from linkpath. */
static const char *name_key(const uint8_t *key, size_t len)
{
	static const char *const keys[] = { "path", "linkpath",
					    "GNU.sparse.name" };

	for (size_t i = 0; i < CFS_ARRAY_SIZE(keys); i++)
		if (strlen(keys[i]) == len && !memcmp(key, keys[i], len))
			return keys[i];
	return NULL;
}

static void walk_found_nul(struct tar_walk *w, const char *key,
			   const uint8_t *value)
{
	size_t n = strlen((const char *)value);

	if (w->nul_off >= 0)
		return;
	w->nul_off = w->hdr_off;
	w->nul_end = w->pos;
	w->nul_type = w->type;
	w->nul_key = key;
	if (n > TAR_NUL_NAME_MAX)
		snprintf(w->nul_name, sizeof(w->nul_name), "%.*s...",
			 TAR_NUL_NAME_MAX, (const char *)value);
	else
		memcpy(w->nul_name, value, n + 1);
}

/*
 * The records of a PAX header body, "LEN KEY=VALUE\n", as libarchive reads
 * them: the first malformed record ends the header (libarchive ignores
 * the rest of it), a KEY ends at '=' (a NUL byte before it makes the
 * record malformed), a VALUE may hold any byte.
 */
static void walk_pax(struct tar_walk *w)
{
	const uint8_t *p = w->body, *end = w->body + w->body_len;

	while (p < end) {
		size_t avail = (size_t)(end - p), len = 0, i;
		const uint8_t *key, *eq, *nl;
		const char *named;

		for (i = 0; i < avail && p[i] != ' '; i++) {
			if (p[i] < '0' || p[i] > '9')
				return;
			len = len * 10 + (size_t)(p[i] - '0');
			if (len > 999999)
				return;
		}
		/* The '\n' ending the record lies after the space. */
		if (len < 1 || len > avail || p[len - 1] != '\n')
			return;
		key = p + i + 1;
		nl = p + len - 1;
		for (eq = key; eq < nl && *eq && *eq != '='; eq++)
			;
		if (eq == key || eq == nl || *eq != '=')
			return;
		named = name_key(key, (size_t)(eq - key));
		if (named && memchr(eq + 1, '\0', (size_t)(nl - eq - 1)))
			walk_found_nul(w, named, eq + 1);
		p += len;
	}
}

/* A header block is complete: what follows it? */
static void walk_header(struct tar_walk *w)
{
	int64_t size;
	uint64_t pad;

	if (block_is_zero(w->hdr) || !tar_checksum_ok(w->hdr) ||
	    ++w->depth > TAR_CHAIN_MAX) {
		w->state = WALK_DONE;
		return;
	}
	switch (w->hdr[156]) {
	case 'x':
	case 'X':
	case 'g':
	case 'L':
	case 'K':
	case 'A':
		break;
	case 'V':
		/* a GNU volume label: the next header follows at once */
		if (w->volume_off < 0)
			w->volume_off = w->hdr_off;
		return;
	default:
		/* the entry's own header: the walk is over */
		w->typeflag = w->hdr[156];
		w->state = WALK_DONE;
		return;
	}
	size = tar_number(w->hdr + 124, 12, TAR_SPECIAL_MAX);
	if (size < 0 || size > TAR_SPECIAL_MAX) {
		w->state = WALK_DONE; /* libarchive refuses it */
		return;
	}
	pad = CFS_ROUND_UP((uint64_t)size, TAR_BLOCK) - (uint64_t)size;
	w->skip = pad;
	w->state = WALK_SKIP;
	if (w->hdr[156] == 'L' || w->hdr[156] == 'K' || w->hdr[156] == 'A') {
		w->skip += (uint64_t)size;
	} else if (size) {
		if ((size_t)size > w->body_cap) {
			uint8_t *b = realloc(w->body, (size_t)size);

			if (!b) {
				w->oom = true;
				w->state = WALK_DONE;
				return;
			}
			w->body = b;
			w->body_cap = (size_t)size;
		}
		w->type = (char)w->hdr[156];
		w->body_len = 0;
		w->body_want = (size_t)size;
		w->state = WALK_BODY;
	}
	if (w->state == WALK_SKIP && !w->skip)
		w->state = WALK_HEADER;
}

/* Look at the bytes of the current buffer the walk still needs. */
static void walk_feed(struct cfs_layer_stream *s)
{
	struct tar_walk *w = &s->walk;
	const uint8_t *p;
	size_t avail;

	if (!w->active || w->state == WALK_DONE ||
	    w->pos >= s->cur_off + (int64_t)s->cur_len)
		return;
	/* libarchive reads no further than it consumes, so the bytes of
	 * the entry's first header are never gone before the walk starts;
	 * if they were, the walk could only stop. */
	if (w->pos < s->cur_off) {
		w->state = WALK_DONE;
		return;
	}
	p = s->cur_data + (w->pos - s->cur_off);
	avail = (size_t)(s->cur_off + (int64_t)s->cur_len - w->pos);
	while (avail && w->state != WALK_DONE) {
		size_t n = 0;

		switch (w->state) {
		case WALK_HEADER:
			if (!w->hfill)
				w->hdr_off = w->pos;
			n = CFS_MIN(avail, TAR_BLOCK - w->hfill);
			memcpy(w->hdr + w->hfill, p, n);
			w->hfill += n;
			break;
		case WALK_BODY:
			n = CFS_MIN(avail, w->body_want - w->body_len);
			memcpy(w->body + w->body_len, p, n);
			w->body_len += n;
			break;
		case WALK_SKIP:
			n = (size_t)CFS_MIN((uint64_t)avail, w->skip);
			w->skip -= n;
			break;
		case WALK_DONE:
			break;
		}
		p += n;
		avail -= n;
		w->pos += (int64_t)n;
		if (w->state == WALK_HEADER && w->hfill == TAR_BLOCK) {
			w->hfill = 0;
			walk_header(w);
		} else if (w->state == WALK_BODY &&
			   w->body_len == w->body_want) {
			/* w->pos is where the body ends */
			walk_pax(w);
			w->state = w->skip ? WALK_SKIP : WALK_HEADER;
		} else if (w->state == WALK_SKIP && !w->skip) {
			w->state = WALK_HEADER;
		}
	}
}

/* libarchive is about to read an entry's headers from @off on. */
static void walk_start(struct cfs_layer_stream *s, int64_t off)
{
	struct tar_walk *w = &s->walk;

	/* The first entry's walk began before libarchive's first look. */
	if (w->active && w->start == off)
		return;
	w->active = true;
	w->state = WALK_HEADER;
	w->start = w->pos = off;
	w->hfill = 0;
	w->depth = 0;
	w->skip = 0;
	w->nul_off = -1;
	w->typeflag = -1;
	w->volume_off = -1;
}

/*
 * The typeflags an entry may have. libarchive makes a regular file of
 * any typeflag it does not know (POSIX's advice for readers), where Go's
 * archive/tar hands it on and containerd and containers/storage refuse
 * it ("unhandled tar header type"): a layer is refused rather than given
 * a file its author never meant. Besides the POSIX types: '\0' (pre-POSIX
 * regular file), '7' (contiguous file: POSIX says to read it as a
 * regular file, as GNU tar and bsdtar do), 'S' (old GNU sparse file,
 * which libarchive reads in full). Refused among those with a meaning:
 * GNU's 'D' (incremental dump directory, whose body lists names),
 * 'M' (the rest of a file from the previous volume), 'N' (a renaming
 * script) and 'V' (volume label), none of which a layer can hold.
 */
static bool typeflag_ok(int t)
{
	return t == '\0' || (t >= '0' && t <= '7') || t == 'S';
}

/* @t as a message shows it: 'Z', or \xNN for what is not printable. */
static const char *typeflag_str(int t, char buf[8])
{
	if (t > 0x20 && t < 0x7f)
		snprintf(buf, 8, "'%c'", t);
	else
		snprintf(buf, 8, "\\x%02x", (unsigned)t & 0xff);
	return buf;
}

/* libarchive read the headers of the entry @e up to @end: refuse it if
 * one of them had a record with a NUL byte, if its typeflag is none a
 * layer may hold, or if a GNU volume header came before it. (A PAX header
 * whose body goes past @end is one libarchive passed over unread, as it
 * does with the header after the 32nd of an entry.) */
static int walk_check(struct cfs_layer_stream *s, struct archive_entry *e,
		      int64_t end)
{
	struct tar_walk *w = &s->walk;
	const char *path = archive_entry_pathname(e);
	char t[8];

	walk_feed(s);
	w->active = false;
	if (w->oom)
		return cfs_error(ENOMEM, "%s: tar offset %lld: out of memory",
				 s->what, (long long)w->start);
	if (w->volume_off >= 0)
		return cfs_error(EINVAL,
				 "%s: tar offset %lld: a GNU volume header "
				 "(typeflag 'V'), which no layer holds",
				 s->what, (long long)w->volume_off);
	/* (A walk that ended before the entry's own header, past the 32
	 * extension headers libarchive follows, leaves the type to it.) */
	if (w->typeflag >= 0 && !typeflag_ok(w->typeflag))
		return cfs_error(EINVAL,
				 "%s: tar offset %lld: %s: unsupported tar "
				 "entry type %s",
				 s->what, (long long)w->start,
				 path ? path : "?",
				 typeflag_str(w->typeflag, t));
	if (w->nul_off < 0 || w->nul_end > end)
		return 0;
	return cfs_error(EINVAL,
			 "%s: tar offset %lld: %s: the PAX %s record%s has a "
			 "NUL byte after '%s'",
			 s->what, (long long)w->start, path ? path : "?",
			 w->nul_key,
			 w->nul_type == 'g' ? " of a global header" : "",
			 w->nul_name);
}

/* ---- consumer -------------------------------------------------------- */

/* Release the buffer the consumer holds and wait for the next one.
 * Returns its length, 0 at the end, or a negative errno. */
static ssize_t next_buf(struct cfs_layer_stream *s, const void **data)
{
	ssize_t r;

	pthread_mutex_lock(&s->lock);
	if (s->has_current) {
		s->consumed++;
		s->has_current = false;
		pthread_cond_broadcast(&s->cond);
	}
	while (s->consumed == s->produced && !s->eof)
		pthread_cond_wait(&s->cond, &s->lock);
	if (s->consumed < s->produced) {
		const struct layer_buf *b = &s->bufs[s->consumed % s->nbufs];
		*data = b->data;
		r = (ssize_t)b->len;
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
	ssize_t n;

	/* The buffer goes back to the producer: first the walk takes what
	 * it needs of it. */
	walk_feed(s);
	n = next_buf(s, buffer);
	s->cur_off += (int64_t)s->cur_len;
	s->cur_data = n > 0 ? *buffer : NULL;
	s->cur_len = n > 0 ? (size_t)n : 0;
	if (n < 0) {
		archive_set_error(a, (int)-n, "%s", s->msg);
		return -1;
	}
	return n;
}

ssize_t cfs_layer_read_raw(struct cfs_layer_stream *s, const void **data)
{
	ssize_t n = next_buf(s, data);

	if (n < 0)
		return cfs_error(-(int)n, "%s", s->msg[0] ? s->msg : s->what);
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
	while (s->produced == 0 && !s->eof)
		pthread_cond_wait(&s->cond, &s->lock);
	if (s->produced == 0 && s->err < 0)
		r = s->err;
	else if (s->produced == 0)
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

/* An error of the archive at tar offset @off: the producer's message
 * when it failed (corrupt or truncated compressed data), else
 * libarchive's. */
static int read_error(struct cfs_layer_stream *s, int64_t off, const char *path)
{
	const char *why = cfs_layer_error(s);

	if (why)
		return cfs_error(EINVAL, "%s", why);
	why = archive_error_string(s->archive);
	return cfs_error(EINVAL, "%s: tar offset %lld: %s%s%s", s->what,
			 (long long)off, path ? path : "", path ? ": " : "",
			 why ? why : "unreadable tar header");
}

int cfs_layer_next_entry(struct cfs_layer_stream *s,
			 struct archive_entry **entry, int64_t *offset)
{
	struct archive *a = s->archive;
	int64_t off;
	int ar;

	if (s->empty)
		return 0;
	/* What the caller left of the last entry's data (all of it, or its
	 * padding) is skipped here, so that the position is the offset of
	 * the next header: libarchive's own archive_read_header_position()
	 * gives ARCHIVE_FATAL (-30) instead once a header was fatal. */
	if (s->entry) {
		const char *path = archive_entry_pathname(s->entry);

		s->entry = NULL;
		if (archive_read_data_skip(a) != ARCHIVE_OK)
			return read_error(s, s->entry_off, path);
	}
	off = archive_filter_bytes(a, 0);
	walk_start(s, off);
	ar = archive_read_next_header(a, entry);
	if (ar == ARCHIVE_EOF) {
		s->walk.active = false;
		return 0;
	}
	if (ar != ARCHIVE_OK && ar != ARCHIVE_WARN)
		return read_error(s, off, NULL);
	s->entry = *entry;
	s->entry_off = off;
	*offset = off;
	ar = walk_check(s, *entry, archive_filter_bytes(a, 0));
	return ar < 0 ? ar : 1;
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
	pthread_mutex_lock(&s->lock);
	while (!s->hash_done)
		pthread_cond_wait(&s->cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
	if (s->hash_failed)
		return cfs_error(EIO, "%s: sha256 failed", s->what);
	*d = s->digests;
	return 0;
}

int cfs_layer_start(struct cfs_layer_stream **out, const struct cfs_blob *blob,
		    enum cfs_layer_compression compression, const char *what,
		    bool ahead)
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
	s->stream = blob->stream;
	s->compression = compression;
	s->gzip_decoder = (enum cfs_gzip_decoder)__atomic_load_n(
		&gzip_decoder, __ATOMIC_RELAXED);
	s->nbufs = ahead ? LAYER_BUFS_AHEAD : LAYER_BUFS;
	s->what = strdup(what);
	s->in = malloc(LAYER_IN_SIZE);
	s->sha_c = EVP_MD_CTX_new();
	s->sha_u = EVP_MD_CTX_new();
	r = s->what && s->in && s->sha_c && s->sha_u ? 0 : -ENOMEM;
	for (unsigned int i = 0; r == 0 && i < s->nbufs; i++) {
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
	if (r == 0) {
		int pr = pthread_create(&s->hasher, NULL, hasher, s);
		if (pr != 0)
			r = cfs_error(pr, "%s: starting the hashing thread",
				      what);
		else
			s->hasher_started = true;
	}
	if (r < 0) {
		cfs_layer_close(s);
		return r;
	}
	*out = s;
	return 0;
}

int cfs_layer_begin(struct cfs_layer_stream *s)
{
	int r;

	if (s->begun)
		return 0;
	r = wait_first(s);
	/* libarchive's first look at the stream is at the first entry's
	 * headers: the walk starts with it. */
	if (r == 0)
		walk_start(s, 0);
	/* An empty stream is an empty layer (Docker writes them for
	 * metadata-only steps); libarchive would call it unrecognised. */
	if (r == 0 && !s->empty &&
	    (archive_read_support_format_tar(s->archive) != ARCHIVE_OK ||
	     archive_read_open(s->archive, s, NULL, archive_read_cb, NULL) !=
		     ARCHIVE_OK)) {
		if (cfs_layer_error(s))
			r = cfs_error(EINVAL, "%s", cfs_layer_error(s));
		else
			r = cfs_error(EINVAL, "%s: %s", s->what,
				      archive_error_string(s->archive));
	}
	s->begun = r == 0;
	return r;
}

int cfs_layer_open(struct cfs_layer_stream **out, const struct cfs_blob *blob,
		   enum cfs_layer_compression compression, const char *what)
{
	struct cfs_layer_stream *s;
	int r = cfs_layer_start(&s, blob, compression, what, false);

	if (r < 0)
		return r;
	r = cfs_layer_begin(s);
	if (r < 0) {
		cfs_layer_close(s);
		return r;
	}
	*out = s;
	return 0;
}

bool cfs_layer_produced(struct cfs_layer_stream *s)
{
	bool eof;

	pthread_mutex_lock(&s->lock);
	eof = s->eof && s->err == 0;
	pthread_mutex_unlock(&s->lock);
	return eof;
}

void cfs_layer_close(struct cfs_layer_stream *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (s->thread_started)
		pthread_join(s->thread, NULL);
	if (s->hasher_started)
		pthread_join(s->hasher, NULL);
	if (s->archive)
		archive_read_free(s->archive);
	for (unsigned int i = 0; i < s->nbufs; i++)
		free(s->bufs[i].data);
	EVP_MD_CTX_free(s->sha_c);
	EVP_MD_CTX_free(s->sha_u);
	free(s->in);
	free(s->walk.body);
	free(s->what);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
}
