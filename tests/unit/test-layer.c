/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Layer streams (src/convert/layer.c): tar streams written here block by
 * block, read with cfs_layer_next_entry() as oci2cfs reads a layer. What
 * is checked: the tar offset of a header libarchive refuses (the offset
 * of the entry's first header, never ARCHIVE_FATAL's -30); NUL bytes in
 * PAX path, linkpath and GNU.sparse.name records refused, wherever the
 * 1 MiB buffers of the stream cut the record, after entries whose data
 * the caller read, skipped, or that were sparse; and no NUL byte refused
 * where libarchive does not read a header (a tar inside a file's data, a
 * record after a malformed one, records that name nothing); typeflags
 * that no layer may hold refused at the entry's first header. gzip layers
 * through both decoders (zlib, and ISA-L when built with it): members
 * that end, and headers that are cut, where the blob is read in pieces;
 * output that fills the buffers exactly; truncation, junk after the last
 * member, wrong CRC-32, ISIZE and header CRC, each refused with the same
 * message at the same offset by both; corrupt deflate data.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>
#include <zlib.h>

#include "common/error.h"
#include "common/util.h"
#include "convert/layer.h"
#include "test.h"

#define BLOCK 512
#define MIB (1024 * 1024)

static char tmpdir[1024];

/* ---- writing tar streams ----------------------------------------------- */

struct tar {
	uint8_t *data;
	size_t len, cap;
};

static void put(struct tar *t, const void *p, size_t n)
{
	if (t->len + n > t->cap) {
		size_t cap = t->cap ? t->cap : 4096;

		while (cap < t->len + n)
			cap *= 2;
		t->data = realloc(t->data, cap);
		if (!t->data) {
			fprintf(stderr, "out of memory\n");
			exit(1);
		}
		t->cap = cap;
	}
	memcpy(t->data + t->len, p, n);
	t->len += n;
}

static void pad(struct tar *t)
{
	static const uint8_t zeros[BLOCK];

	put(t, zeros, CFS_ROUND_UP(t->len, BLOCK) - t->len);
}

static void checksum(uint8_t *h)
{
	unsigned int sum = 0;

	memset(h + 148, ' ', 8);
	for (size_t i = 0; i < BLOCK; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
}

/* A header block: ustar, or GNU (magic "ustar  \0") with @gnu. */
static void header_block(uint8_t h[BLOCK], const char *name, char type,
			 uint64_t size, const char *link, bool gnu)
{
	memset(h, 0, BLOCK);
	snprintf((char *)h, 100, "%s", name);
	memcpy(h + 100, "0000644", 8);
	memcpy(h + 108, "0000000", 8);
	memcpy(h + 116, "0000000", 8);
	snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
	memcpy(h + 136, "14000000000", 12);
	h[156] = (uint8_t)type;
	if (link)
		snprintf((char *)h + 157, 100, "%s", link);
	if (gnu) {
		memcpy(h + 257, "ustar  ", 8); /* with its NUL */
	} else {
		memcpy(h + 257, "ustar", 6);
		memcpy(h + 263, "00", 2);
	}
	checksum(h);
}

static void header(struct tar *t, const char *name, char type, uint64_t size,
		   const char *link)
{
	uint8_t h[BLOCK];

	header_block(h, name, type, size, link, false);
	put(t, h, BLOCK);
}

/* A regular file with @size bytes of @c. */
static void file(struct tar *t, const char *name, size_t size, char c)
{
	uint8_t *d = malloc(size ? size : 1);

	CHECK(d != NULL);
	if (!d)
		return;
	memset(d, c, size);
	header(t, name, '0', size, NULL);
	put(t, d, size);
	pad(t);
	free(d);
}

struct rec {
	const char *key;
	const char *value;
	size_t len; /* of value: it may hold NUL bytes */
};

#define REC(k, v)                                                              \
	{                                                                      \
		k, v, sizeof(v) - 1                                            \
	}

/* A PAX header ('x' or 'g') with @n records, then its padding. */
static void pax(struct tar *t, char type, const struct rec *r, size_t n)
{
	struct tar body = { 0 };

	for (size_t i = 0; i < n; i++) {
		size_t fixed = strlen(r[i].key) + r[i].len + 3, len = fixed;
		char num[24];

		/* the length counts its own digits */
		while ((size_t)snprintf(num, sizeof(num), "%zu", len) + fixed !=
		       len)
			len = strlen(num) + fixed;
		put(&body, num, strlen(num));
		put(&body, " ", 1);
		put(&body, r[i].key, strlen(r[i].key));
		put(&body, "=", 1);
		put(&body, r[i].value, r[i].len);
		put(&body, "\n", 1);
	}
	header(t, type == 'g' ? "pax_global_header" : "PaxHeaders/x", type,
	       body.len, NULL);
	if (body.len)
		put(t, body.data, body.len);
	pad(t);
	free(body.data);
}

static void end(struct tar *t)
{
	static const uint8_t zeros[2 * BLOCK];

	put(t, zeros, sizeof(zeros));
}

/* ---- reading them ----------------------------------------------------- */

struct result {
	int r; /* of the last call, 0 at the end */
	size_t entries;
	int64_t offsets[16];
	char names[16][128];
	char msg[1024];
	bool produced; /* cfs_layer_produced() once read */
};

/* read_blob() starts the layer as one read ahead (cfs_layer_start(),
 * its larger ring) and lets it run before cfs_layer_begin(). */
static bool read_ahead;

static void gzip(const struct tar *t, struct tar *out)
{
	uLongf n = compressBound((uLong)t->len) + 64;
	z_stream zs = { 0 };

	out->data = malloc(n);
	out->cap = n;
	CHECK(out->data != NULL);
	if (!out->data)
		exit(1);
	CHECK(deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8,
			   Z_DEFAULT_STRATEGY) == Z_OK);
	zs.next_in = t->data;
	zs.avail_in = (uInt)t->len;
	zs.next_out = out->data;
	zs.avail_out = (uInt)n;
	CHECK(deflate(&zs, Z_FINISH) == Z_STREAM_END);
	out->len = n - zs.avail_out;
	deflateEnd(&zs);
}

/* Read @blob, compressed with @comp, as a layer (see read_layer()); the
 * digests when it was read to its end. */
static void read_blob(const struct tar *blob, enum cfs_layer_compression comp,
		      bool read_data, struct result *res,
		      struct cfs_layer_digests *digests)
{
	char path[1200];
	struct cfs_layer_stream *s = NULL;
	struct cfs_layer_digests d = { 0 };
	struct cfs_blob b;
	int fd;

	memset(res, 0, sizeof(*res));
	snprintf(path, sizeof(path), "%s/layer", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	CHECK_OK(cfs_write_all(fd, blob->data, blob->len));
	b = (struct cfs_blob){ .fd = fd, .offset = 0, .length = blob->len };
	cfs_error_clear();
	if (read_ahead) {
		res->r = cfs_layer_start(&s, &b, comp, "L", true);
		usleep(20 * 1000); /* it fills its ring meanwhile */
		if (res->r == 0)
			res->r = cfs_layer_begin(s);
	} else {
		res->r = cfs_layer_open(&s, &b, comp, "L");
	}
	while (res->r == 0) {
		struct archive_entry *e;
		int64_t off;
		const char *name;

		res->r = cfs_layer_next_entry(s, &e, &off);
		if (res->r <= 0)
			break;
		res->r = 0;
		name = archive_entry_pathname(e);
		if (res->entries < CFS_ARRAY_SIZE(res->offsets)) {
			res->offsets[res->entries] = off;
			snprintf(res->names[res->entries], 128, "%s",
				 name ? name : "");
		}
		res->entries++;
		while (read_data && archive_entry_filetype(e) == AE_IFREG) {
			const void *buf;
			size_t len;
			la_int64_t at;
			int ar = archive_read_data_block(cfs_layer_archive(s),
							 &buf, &len, &at);

			if (ar == ARCHIVE_EOF)
				break;
			if (ar != ARCHIVE_OK) {
				res->r = cfs_error(EIO, "reading data");
				break;
			}
		}
	}
	if (res->r == 0)
		res->r = cfs_layer_finish(s, &d);
	snprintf(res->msg, sizeof(res->msg), "%s", cfs_error_message());
	res->produced = s && cfs_layer_produced(s);
	cfs_layer_close(s);
	close(fd);
	unlink(path);
	if (digests)
		*digests = d;
}

/*
 * Read @t as a layer, entry by entry; the data of regular files is read
 * with @read_data, else left for cfs_layer_next_entry() to skip.
 */
static void read_layer(const struct tar *t, enum cfs_layer_compression comp,
		       bool read_data, struct result *res)
{
	struct tar z = { 0 };

	if (comp == CFS_LAYER_GZIP)
		gzip(t, &z);
	read_blob(comp == CFS_LAYER_GZIP ? &z : t, comp, read_data, res, NULL);
	free(z.data);
}

/* Refused, with a message holding every one of the NULL-terminated
 * strings after @t. */
static bool refused(const struct tar *t, bool read_data, ...)
{
	struct result res;
	const char *want;
	bool ok;
	va_list ap;

	read_layer(t, CFS_LAYER_TAR, read_data, &res);
	ok = res.r == -EINVAL;
	va_start(ap, read_data);
	while ((want = va_arg(ap, const char *)))
		if (!strstr(res.msg, want))
			ok = false;
	va_end(ap);
	if (!ok)
		fprintf(stderr, "expected a refusal, got %d: %s\n", res.r,
			res.msg);
	return ok;
}

static bool accepted(const struct tar *t, bool read_data, size_t entries)
{
	struct result res;

	read_layer(t, CFS_LAYER_TAR, read_data, &res);
	if (res.r != 0 || res.entries != entries)
		fprintf(stderr, "expected %zu entries, got %zu, %d: %s\n",
			entries, res.entries, res.r, res.msg);
	return res.r == 0 && res.entries == entries;
}

static char at[64];

/* "tar offset N" */
static const char *at_offset(size_t off)
{
	snprintf(at, sizeof(at), "tar offset %zu:", off);
	return at;
}

/* ---- the cases -------------------------------------------------------- */

/* Headers libarchive refuses as fatal: the message names the offset of
 * the entry's first header. */
static void check_fatal_offsets(void)
{
	struct tar t = { 0 };
	uint8_t h[BLOCK];
	size_t base;

	file(&t, "a", 1000, 'a');
	file(&t, "b", 0, 'b');
	base = t.len;
	/* a negative size (base-256) */
	header_block(h, "neg", '0', 0, NULL, false);
	memset(h + 124, 0xff, 12);
	checksum(h);
	put(&t, h, BLOCK);
	end(&t);
	CHECK(refused(&t, true, at_offset(base), "negative size", NULL));
	CHECK(refused(&t, false, at_offset(base), "negative size", NULL));

	/* behind a PAX header, the entry's offset is the PAX header's */
	t.len = base;
	pax(&t, 'x', (struct rec[]){ REC("mtime", "1") }, 1);
	put(&t, h, BLOCK);
	end(&t);
	CHECK(refused(&t, true, at_offset(base), "negative size", NULL));

	/* a PAX header of 1 TiB, then the stream ends */
	t.len = base;
	header_block(h, "PaxHeaders/huge", 'x', 0, NULL, false);
	h[124] = 0x80;
	memset(h + 125, 0, 11);
	h[130] = 1; /* 2^40 */
	checksum(h);
	put(&t, h, BLOCK);
	CHECK(refused(&t, true, at_offset(base), "too large", NULL));

	/* a GNU long name of 2 MiB */
	t.len = base;
	header_block(h, "././@LongLink", 'L', 2 * MIB, NULL, true);
	put(&t, h, BLOCK);
	file(&t, "x", 0, 'x');
	end(&t);
	CHECK(refused(&t, true, at_offset(base), "too large", NULL));

	/* a damaged checksum */
	t.len = base;
	header_block(h, "sum", '0', 0, NULL, false);
	h[0] = 'S';
	put(&t, h, BLOCK);
	end(&t);
	CHECK(refused(&t, true, at_offset(base), "Damaged", NULL));

	/* data that ends early, left for the skip: the entry's offset and
	 * its name */
	t.len = base;
	pax(&t, 'x', (struct rec[]){ REC("size", "1048576") }, 1);
	header(&t, "h", '1', 0, "a");
	put(&t, "short", 5);
	CHECK(refused(&t, true, at_offset(base), "h: ", NULL));
	free(t.data);
}

static const struct rec nul_path = REC("path", "etc/passwd\0.txt");

static void check_nul_records(void)
{
	struct tar t = { 0 };
	size_t base;
	struct result res;

	file(&t, "etc/passwd", 10, 'p');
	base = t.len;
	pax(&t, 'x', &nul_path, 1);
	file(&t, "x", 1, 'n');
	end(&t);
	CHECK(refused(&t, true, at_offset(base), "NUL",
		      "PAX path record has a NUL byte after 'etc/passwd'",
		      NULL));
	CHECK(refused(&t, false, at_offset(base), "NUL", NULL));

	/* the same without the NUL byte: a name libarchive keeps whole */
	t.len = base;
	pax(&t, 'x', (struct rec[]){ REC("path", "etc/passwd.txt") }, 1);
	file(&t, "x", 1, 'n');
	end(&t);
	read_layer(&t, CFS_LAYER_TAR, true, &res);
	CHECK(res.r == 0 && res.entries == 2);
	CHECK(strcmp(res.names[1], "etc/passwd.txt") == 0);
	CHECK(res.offsets[0] == 0 && res.offsets[1] == (int64_t)base);

	/* linkpath and GNU.sparse.name, and a record among others */
	t.len = base;
	pax(&t, 'x',
	    (struct rec[]){ REC("mtime", "1.5"),
			    REC("linkpath", "/etc/passwd\0.txt"),
			    REC("uid", "0") },
	    3);
	header(&t, "x", '2', 0, NULL);
	end(&t);
	CHECK(refused(&t, true, at_offset(base), "x: ", "linkpath",
		      "after '/etc/passwd'", NULL));
	t.len = base;
	pax(&t, 'x', (struct rec[]){ REC("GNU.sparse.name", "a\0b") }, 1);
	file(&t, "x", 1, 'n');
	end(&t);
	CHECK(refused(&t, true, at_offset(base), "GNU.sparse.name", NULL));

	/* a global header: libarchive 3.6 does not apply it, Go refuses it;
	 * the entry after it starts at the global header */
	t.len = base;
	pax(&t, 'g', &nul_path, 1);
	file(&t, "x", 1, 'n');
	end(&t);
	CHECK(refused(&t, true, at_offset(base), "global header", NULL));
	t.len = base;
	pax(&t, 'g', (struct rec[]){ REC("comment", "hello") }, 1);
	file(&t, "y", 1, 'n');
	pax(&t, 'x', (struct rec[]){ REC("path", "z") }, 1);
	file(&t, "x", 1, 'n');
	end(&t);
	read_layer(&t, CFS_LAYER_TAR, false, &res);
	CHECK(res.r == 0 && res.entries == 3);
	CHECK(res.offsets[1] == (int64_t)base);
	CHECK(res.offsets[2] == (int64_t)(base + 4 * BLOCK));
	CHECK(strcmp(res.names[1], "y") == 0 && strcmp(res.names[2], "z") == 0);

	/* two PAX headers for one entry: a NUL byte in either is refused */
	t.len = base;
	pax(&t, 'x', &nul_path, 1);
	pax(&t, 'x', (struct rec[]){ REC("path", "ok") }, 1);
	file(&t, "x", 1, 'n');
	end(&t);
	CHECK(refused(&t, true, at_offset(base), "NUL", NULL));

	/* libarchive reads 32 headers for one entry and passes over the
	 * 33rd unread: a NUL byte in the 31st or 32nd PAX header counts */
	for (int k = 31; k <= 32; k++) {
		t.len = base;
		for (int i = 1; i <= k; i++)
			pax(&t, 'x',
			    i < k ? (struct rec[]){ REC("path", "ok") } :
				    &nul_path,
			    1);
		file(&t, "x", 1, 'n');
		end(&t);
		CHECK(refused(&t, true, at_offset(base), "NUL", NULL));
	}

	/* What libarchive does not read as a name is left alone: a record
	 * after a malformed one (libarchive ignores the rest of the header)
	 * and a NUL byte in a record that names nothing. */
	t.len = base;
	pax(&t, 'x', (struct rec[]){ REC("comment", "a\0b"), REC("path", "p") },
	    2);
	file(&t, "x", 1, 'n');
	end(&t);
	read_layer(&t, CFS_LAYER_TAR, true, &res);
	CHECK(res.r == 0 && res.entries == 2 && strcmp(res.names[1], "p") == 0);
	t.len = base;
	header(&t, "PaxHeaders/x", 'x', 35, NULL);
	put(&t, "9 novalue\n25 path=etc/passwd\0.txt\n", 35);
	pad(&t);
	file(&t, "x", 1, 'n');
	end(&t);
	read_layer(&t, CFS_LAYER_TAR, true, &res);
	CHECK(res.r == 0 && res.entries == 2 && strcmp(res.names[1], "x") == 0);

	/* A tar stored as a file holds such a header as data: never looked
	 * at, read or skipped. */
	{
		struct tar inner = { 0 };

		pax(&inner, 'x', &nul_path, 1);
		file(&inner, "x", 1, 'n');
		end(&inner);
		t.len = base;
		header(&t, "inner.tar", '0', inner.len, NULL);
		put(&t, inner.data, inner.len);
		pad(&t);
		file(&t, "after", 3, 'a');
		end(&t);
		CHECK(accepted(&t, true, 3));
		CHECK(accepted(&t, false, 3));
		free(inner.data);
	}
	free(t.data);
}

/*
 * The stream's buffers are 1 MiB and headers start on 512-byte blocks:
 * a buffer ends right before a PAX header, after its header block, or in
 * its body, where a first record of varying length puts the end of the
 * buffer before, inside and after the path record with the NUL byte.
 * The file before the PAX header fills the buffer; its data is read or
 * skipped; the layer is plain or gzip.
 */
static void check_buffer_cuts(void)
{
	/* bytes of the PAX header (and body) before the buffer ends */
	static const size_t before[] = { 0, 512, 1024, 1536 };
	static const size_t fillers[] = {
		460, 480, 490, 495, 499, 500, 505, 520
	};
	char filler[600];
	size_t bad = 0;

	memset(filler, 'c', sizeof(filler));
	for (size_t i = 0; i < CFS_ARRAY_SIZE(before); i++) {
		for (size_t j = 0; j < CFS_ARRAY_SIZE(fillers); j++) {
			struct rec recs[3] = {
				{ "comment", filler, fillers[j] },
				nul_path,
				{ "comment", filler, 300 },
			};
			size_t x = MIB - before[i];
			struct tar t = { 0 };

			file(&t, "fill", x - BLOCK, 'f');
			pax(&t, 'x', recs, 3);
			file(&t, "x", 1, 'n');
			end(&t);
			for (int k = 0; k < 4; k++) {
				struct result res;
				bool gz = k & 1, rd = k & 2;

				read_layer(&t,
					   gz ? CFS_LAYER_GZIP : CFS_LAYER_TAR,
					   rd, &res);
				if (res.r == -EINVAL &&
				    strstr(res.msg, at_offset(x)) &&
				    strstr(res.msg, "NUL"))
					continue;
				fprintf(stderr,
					"cut %zu, filler %zu (%s, %s): "
					"%d %s\n",
					before[i], fillers[j],
					gz ? "gzip" : "tar",
					rd ? "read" : "skipped", res.r,
					res.msg);
				bad++;
			}
			free(t.data);
		}
	}
	CHECK(bad == 0);
}

/* GNU sparse files, old format with an extension block and PAX 1.0:
 * the entry after them is still checked, at its own offset. */
static void check_sparse(void)
{
	struct tar t = { 0 };
	uint8_t h[BLOCK], ext[BLOCK];
	struct result res;
	size_t base, n = 6;
	char map[16];

	/* 'S' with 4 extents in the header and 2 in an extension block */
	header_block(h, "sparse", 'S', n * BLOCK, NULL, true);
	memset(ext, 0, sizeof(ext));
	for (size_t i = 0; i < n; i++) {
		uint8_t *e = i < 4 ? h + 386 + 24 * i : ext + 24 * (i - 4);

		snprintf((char *)e, 12, "%011llo",
			 (unsigned long long)(i * 65536));
		snprintf((char *)e + 12, 12, "%011o", BLOCK);
	}
	h[482] = 1;
	snprintf((char *)h + 483, 12, "%011o", MIB);
	checksum(h);
	put(&t, h, BLOCK);
	put(&t, ext, BLOCK);
	{
		uint8_t d[6 * BLOCK];

		memset(d, 's', sizeof(d));
		put(&t, d, sizeof(d));
	}
	/* PAX 1.0: the map starts the data */
	pax(&t, 'x',
	    (struct rec[]){ REC("GNU.sparse.major", "1"),
			    REC("GNU.sparse.minor", "0"),
			    REC("GNU.sparse.name", "lastlog"),
			    REC("GNU.sparse.realsize", "1099511627776") },
	    4);
	header(&t, "GNUSparseFile.0/lastlog", '0', 2 * BLOCK, NULL);
	snprintf(map, sizeof(map), "1\n0\n512\n");
	put(&t, map, strlen(map));
	pad(&t);
	{
		uint8_t d[BLOCK];

		memset(d, 'l', sizeof(d));
		put(&t, d, sizeof(d));
	}
	base = t.len;
	file(&t, "after", 3, 'a');
	end(&t);
	for (int rd = 0; rd < 2; rd++) {
		read_layer(&t, CFS_LAYER_TAR, rd, &res);
		CHECK(res.r == 0 && res.entries == 3);
		CHECK(strcmp(res.names[0], "sparse") == 0 &&
		      strcmp(res.names[1], "lastlog") == 0);
		CHECK(res.offsets[2] == (int64_t)base);
	}
	t.len = base;
	pax(&t, 'x', &nul_path, 1);
	file(&t, "x", 1, 'n');
	end(&t);
	CHECK(refused(&t, true, at_offset(base), "NUL", NULL));
	CHECK(refused(&t, false, at_offset(base), "NUL", NULL));
	free(t.data);
}

/* Typeflags: the POSIX ones, '\0', '7' and 'S' are entries; any other is
 * refused at the entry's first header (after its PAX header if it has
 * one), and so is an entry after a GNU volume header. */
static void check_typeflags(void)
{
	static const char ok[] = {
		'\0', '0', '1', '2', '3', '4', '5', '6', '7'
	};
	static const struct {
		char type;
		const char *shown;
	} bad[] = { { 'Z', "'Z'" },	{ 'D', "'D'" }, { 'M', "'M'" },
		    { 'N', "'N'" },	{ '8', "'8'" }, { ' ', "\\x20" },
		    { '\x80', "\\x80" } };
	struct tar t = { 0 };
	struct result res;
	size_t base;

	file(&t, "first", 3, 'f');
	base = t.len;
	for (size_t i = 0; i < CFS_ARRAY_SIZE(ok); i++) {
		char name[16];

		snprintf(name, sizeof(name), "t%zu", i);
		/* a hardlink names something before it, the rest no data */
		header(&t, name, ok[i], 0, ok[i] == '1' ? "first" : "x");
	}
	end(&t);
	read_layer(&t, CFS_LAYER_TAR, true, &res);
	CHECK(res.r == 0 && res.entries == 1 + CFS_ARRAY_SIZE(ok));
	for (size_t i = 0; i < CFS_ARRAY_SIZE(bad); i++) {
		char want[64];

		t.len = base;
		header(&t, "odd", bad[i].type, 3, NULL);
		put(&t, "odd", 3);
		pad(&t);
		end(&t);
		snprintf(want, sizeof(want),
			 "odd: unsupported tar entry type %s", bad[i].shown);
		CHECK(refused(&t, true, at_offset(base), want, NULL));
		/* behind a PAX header: the entry's first header is that one */
		t.len = base;
		pax(&t, 'x', (struct rec[]){ REC("path", "odd-pax") }, 1);
		header(&t, "odd", bad[i].type, 0, NULL);
		end(&t);
		CHECK(refused(&t, false, at_offset(base), "odd-pax: ", NULL));
	}
	/* a GNU volume label before an entry */
	t.len = base;
	{
		uint8_t h[BLOCK];

		header_block(h, "label", 'V', 0, NULL, true);
		put(&t, h, BLOCK);
	}
	file(&t, "after-label", 1, 'a');
	end(&t);
	CHECK(refused(&t, true, at_offset(base), "GNU volume header", NULL));
	free(t.data);
}

/* ---- gzip streams, through both decoders ------------------------------- */

/* LAYER_IN_SIZE of layer.c: the blob is read in pieces of this size. */
#define IN_SIZE (256 * 1024)

static const struct {
	enum cfs_gzip_decoder d;
	const char *name;
} decoders[] = {
	{ CFS_GZIP_ZLIB, "zlib" },
	{ CFS_GZIP_ISAL, "isal" },
};

/* A gzip member of @n bytes at @p appended to @out: zlib at @level,
 * with the header fields of @h when not NULL. */
static void gz_member(struct tar *out, const void *p, size_t n, int level,
		      gz_header *h)
{
	uLong cap = compressBound((uLong)n) + 1024 + (h ? h->extra_len : 0);
	uint8_t *buf = malloc(cap);
	z_stream zs = { 0 };

	CHECK(buf != NULL);
	if (!buf)
		exit(1);
	CHECK(deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8,
			   Z_DEFAULT_STRATEGY) == Z_OK);
	if (h)
		CHECK(deflateSetHeader(&zs, h) == Z_OK);
	zs.next_in = (Bytef *)p;
	zs.avail_in = (uInt)n;
	zs.next_out = buf;
	zs.avail_out = (uInt)cap;
	CHECK(deflate(&zs, Z_FINISH) == Z_STREAM_END);
	put(out, buf, cap - zs.avail_out);
	deflateEnd(&zs);
	free(buf);
}

/* Members with no data, @n bytes of them (at least 22): each is 22
 * bytes and an extra field, and moves whatever follows. */
static void gz_pad(struct tar *out, size_t n)
{
	static uint8_t extra[65535];

	CHECK(n >= 22);
	while (n >= 22) {
		size_t xlen = CFS_MIN(n - 22, sizeof(extra));
		gz_header h = { .extra = extra, .extra_len = (uInt)xlen };

		/* leave none, or enough for one more */
		if (n - 22 - xlen > 0 && n - 22 - xlen < 22)
			xlen -= 22;
		h.extra_len = (uInt)xlen;
		gz_member(out, "", 0, 6, &h);
		n -= 22 + xlen;
	}
	CHECK(n == 0);
}

/* A member whose deflate data refers to @dict: matches reach back
 * before the start of the data ("invalid distance too far back"). */
static void gz_dict_member(struct tar *out, const uint8_t *p, size_t n,
			   const uint8_t *dict, size_t dict_len)
{
	static const uint8_t hdr[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3 };
	uLong cap = compressBound((uLong)n) + 64;
	uint8_t *buf = malloc(cap), trailer[8];
	uint32_t crc = (uint32_t)crc32(0, p, (uInt)n);
	z_stream zs = { 0 };

	CHECK(buf != NULL);
	if (!buf)
		exit(1);
	CHECK(deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) ==
	      Z_OK);
	CHECK(deflateSetDictionary(&zs, dict, (uInt)dict_len) == Z_OK);
	zs.next_in = (Bytef *)p;
	zs.avail_in = (uInt)n;
	zs.next_out = buf;
	zs.avail_out = (uInt)cap;
	CHECK(deflate(&zs, Z_FINISH) == Z_STREAM_END);
	for (int i = 0; i < 4; i++) {
		trailer[i] = (uint8_t)(crc >> (8 * i));
		trailer[4 + i] = (uint8_t)(n >> (8 * i));
	}
	put(out, hdr, sizeof(hdr));
	put(out, buf, cap - zs.avail_out);
	put(out, trailer, sizeof(trailer));
	deflateEnd(&zs);
	free(buf);
}

static void sha256(const void *p, size_t n, uint8_t out[32])
{
	unsigned int len = 32;

	CHECK(EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) == 1);
}

/* Set the decoder; false (after a note, once) when not built. */
static bool use_decoder(size_t i)
{
	static bool noted;
	int r = cfs_layer_set_gzip_decoder(decoders[i].d);

	if (r == -ENOTSUP) {
		if (!noted)
			printf("gzip: no ISA-L in this build, zlib only\n");
		noted = true;
		return false;
	}
	CHECK_OK(r);
	return r == 0;
}

/* @blob gives the tar stream @t with every decoder. */
static bool gz_gives(const struct tar *blob, const struct tar *t,
		     const char *what)
{
	uint8_t want[32];
	bool ok = true;

	sha256(t->data, t->len, want);
	for (size_t i = 0; i < CFS_ARRAY_SIZE(decoders); i++) {
		struct cfs_layer_digests d;
		struct result res;

		if (!use_decoder(i))
			continue;
		read_blob(blob, CFS_LAYER_GZIP, false, &res, &d);
		if (res.r == 0 && d.uncompressed_size == t->len &&
		    d.compressed_size == blob->len &&
		    !memcmp(d.uncompressed, want, 32))
			continue;
		fprintf(stderr, "%s (%s): %d, %llu bytes of %zu: %s\n", what,
			decoders[i].name, res.r,
			(unsigned long long)d.uncompressed_size, t->len,
			res.msg);
		ok = false;
	}
	return ok;
}

/* @blob is refused by every decoder with the message @want, or (not
 * @exact) one that starts with @want. */
static bool gz_refused(const struct tar *blob, const char *want, bool exact,
		       const char *what)
{
	bool ok = true;

	for (size_t i = 0; i < CFS_ARRAY_SIZE(decoders); i++) {
		struct result res;

		if (!use_decoder(i))
			continue;
		read_blob(blob, CFS_LAYER_GZIP, false, &res, NULL);
		if (res.r == -EINVAL &&
		    (exact ? !strcmp(res.msg, want) :
			     !strncmp(res.msg, want, strlen(want)))) {
			continue;
		}
		fprintf(stderr, "%s (%s): want \"%s\", got %d \"%s\"\n", what,
			decoders[i].name, want, res.r, res.msg);
		ok = false;
	}
	return ok;
}

static const char *truncated_at(size_t off)
{
	static char m[128];

	snprintf(m, sizeof(m),
		 "L: truncated gzip stream (ends at compressed offset %zu)",
		 off);
	return m;
}

static const char *corrupt_at(size_t off, const char *why)
{
	static char m[256];

	snprintf(m, sizeof(m),
		 "L: corrupt gzip data near compressed offset %zu: %s", off,
		 why);
	return m;
}

/* Bytes that compress, but not to nothing: letters of a 16-letter
 * alphabet, from a fixed LCG. */
static void text_file(struct tar *t, const char *name, size_t size,
		      uint32_t seed)
{
	uint8_t *d = malloc(size);

	CHECK(d != NULL);
	if (!d)
		exit(1);
	for (size_t i = 0; i < size; i++) {
		seed = seed * 1103515245u + 12345u;
		d[i] = (uint8_t)('a' + ((seed >> 16) & 15));
	}
	header(t, name, '0', size, NULL);
	put(t, d, size);
	pad(t);
	free(d);
}

/*
 * A layer started ahead reads as one opened in its turn: the same
 * entries and digests, and the same refusal of a cut blob. Its tar is
 * larger than its 32 MiB ring, so the ring goes round; once read to the
 * end, cfs_layer_produced() says so, and not of a blob that failed.
 */
static void check_ahead(void)
{
	struct tar t = { 0 }, z = { 0 }, cut = { 0 };
	struct cfs_layer_digests d0, d1;
	struct result r0, r1;

	text_file(&t, "a", 20 * MIB, 3);
	file(&t, "zeros", 8 * MIB, '\0');
	text_file(&t, "b", 12 * MIB + 5, 4);
	end(&t);
	gzip(&t, &z);
	read_blob(&z, CFS_LAYER_GZIP, true, &r0, &d0);
	read_ahead = true;
	read_blob(&z, CFS_LAYER_GZIP, true, &r1, &d1);
	CHECK(r0.r == 0 && r1.r == 0);
	CHECK(r1.entries == 3 && r1.entries == r0.entries);
	CHECK(memcmp(r0.names, r1.names, sizeof(r0.names)) == 0);
	CHECK(memcmp(r0.offsets, r1.offsets, sizeof(r0.offsets)) == 0);
	CHECK(d1.uncompressed_size == t.len && d1.compressed_size == z.len);
	CHECK(memcmp(&d0, &d1, sizeof(d0)) == 0);
	CHECK(r0.produced && r1.produced);

	cut.data = z.data;
	cut.len = z.len / 2;
	read_blob(&cut, CFS_LAYER_GZIP, false, &r1, NULL);
	read_ahead = false;
	read_blob(&cut, CFS_LAYER_GZIP, false, &r0, NULL);
	CHECK(r1.r < 0 && r1.r == r0.r && strcmp(r1.msg, r0.msg) == 0);
	CHECK(strstr(r1.msg, "truncated gzip stream"));
	CHECK(!r1.produced && !r0.produced);
	free(t.data);
	free(z.data);
}

/* Members that end, and headers that are cut, where the blob is read in
 * pieces: padding members move the boundary over the first piece's
 * end, byte by byte. */
static void check_gzip_boundaries(const struct tar *t)
{
	static uint8_t extra[5] = { 'A', 'B', 2, 0, 'x' };
	gz_header h = { .extra = extra,
			.extra_len = sizeof(extra),
			.name = (Bytef *)"layer.tar",
			.comment = (Bytef *)"made by test-layer",
			.hcrc = 1 };
	size_t cut = t->len / 3, bad = 0;
	struct tar m1 = { 0 }, m2 = { 0 }, m2h = { 0 };
	size_t hlen;

	gz_member(&m1, t->data, cut, 6, NULL);
	gz_member(&m2, t->data + cut, t->len - cut, 6, NULL);
	gz_member(&m2h, t->data + cut, t->len - cut, 6, &h);
	hlen = 10 + 2 + sizeof(extra) + strlen("layer.tar") + 1 +
	       strlen("made by test-layer") + 1 + 2;
	CHECK(m1.len + 22 < IN_SIZE - 64);
	/* the end of the first member over the end of the first piece */
	for (int d = -24; d <= 24; d++) {
		size_t end = (size_t)(IN_SIZE + d);
		struct tar b = { 0 };
		char what[64];

		gz_pad(&b, end - m1.len);
		put(&b, m1.data, m1.len);
		CHECK(b.len == end);
		put(&b, m2.data, m2.len);
		snprintf(what, sizeof(what), "member end at %zu", end);
		if (!gz_gives(&b, t, what))
			bad++;
		/* its CRC-32, then its ISIZE, wrong */
		b.data[end - 8] ^= 1;
		if (!gz_refused(&b, corrupt_at(end - 4, "incorrect data check"),
				true, what))
			bad++;
		b.data[end - 8] ^= 1;
		b.data[end - 1] ^= 1;
		if (!gz_refused(&b, corrupt_at(end, "incorrect length check"),
				true, what))
			bad++;
		free(b.data);
	}
	/* a header with every field, cut anywhere by the end of a piece */
	for (size_t k = 0; k <= hlen + 1; k++) {
		size_t start = IN_SIZE - k;
		struct tar b = { 0 };
		char what[64];

		gz_pad(&b, start - m1.len);
		put(&b, m1.data, m1.len);
		put(&b, m2h.data, m2h.len);
		snprintf(what, sizeof(what), "header at %zu", start);
		if (!gz_gives(&b, t, what))
			bad++;
		/* the header CRC wrong */
		b.data[start + hlen - 1] ^= 1;
		if (!gz_refused(&b,
				corrupt_at(start + hlen, "header crc mismatch"),
				true, what))
			bad++;
		free(b.data);
	}
	/* junk after the last member, cut by the end of a piece */
	for (size_t k = 0; k <= 4; k++) {
		size_t end = IN_SIZE - k;
		struct tar b = { 0 };

		gz_pad(&b, end - m1.len);
		put(&b, m1.data, m1.len);
		put(&b, "junk", 4);
		if (!gz_refused(&b,
				corrupt_at(end + 2, "incorrect header check"),
				true, "junk after a piece"))
			bad++;
		free(b.data);
	}
	CHECK(bad == 0);
	free(m1.data);
	free(m2.data);
	free(m2h.data);
}

static void check_gzip(void)
{
	struct tar t = { 0 }, zeros = { 0 }, b = { 0 }, one = { 0 };
	size_t bad = 0, len;
	uint8_t dict[4096];

	text_file(&t, "a", 300 * 1024, 1);
	file(&t, "z", 64 * 1024, '\0');
	text_file(&t, "b", 400 * 1024 + 17, 2);
	end(&t);

	/* one member, zlib's levels; stored blocks */
	for (int level = 0; level <= 9; level += 3) {
		char what[32];

		b.len = 0;
		gz_member(&b, t.data, t.len, level, NULL);
		snprintf(what, sizeof(what), "level %d", level);
		if (!gz_gives(&b, &t, what))
			bad++;
	}
	/* members: two, many, empty ones anywhere */
	b.len = 0;
	gz_member(&b, t.data, 12345, 6, NULL);
	gz_member(&b, t.data + 12345, t.len - 12345, 1, NULL);
	if (!gz_gives(&b, &t, "two members"))
		bad++;
	b.len = 0;
	gz_pad(&b, 22);
	for (size_t off = 0; off < t.len; off += 100000) {
		gz_member(&b, t.data + off, CFS_MIN(100000, t.len - off), 6,
			  NULL);
		gz_pad(&b, 29);
	}
	if (!gz_gives(&b, &t, "many members"))
		bad++;

	/* output that fills the 1 MiB buffers exactly, from one piece of
	 * input: 2 MiB of tar from a few KiB of gzip */
	len = 2 * MIB - 3 * BLOCK;
	file(&zeros, "zeros", len, '\0');
	end(&zeros);
	CHECK(zeros.len == 2 * MIB);
	for (int level = 1; level <= 9; level += 8) {
		b.len = 0;
		gz_member(&b, zeros.data, zeros.len, level, NULL);
		if (!gz_gives(&b, &zeros, "2 MiB of zeros"))
			bad++;
	}
	b.len = 0;
	gz_member(&b, zeros.data, MIB, 6, NULL);
	gz_member(&b, zeros.data + MIB, MIB, 6, NULL);
	if (!gz_gives(&b, &zeros, "1 MiB + 1 MiB of zeros"))
		bad++;

	check_gzip_boundaries(&t);

	/* truncated: in the header, the data, the trailer, the next header */
	gz_member(&one, t.data, t.len, 6, NULL);
	{
		size_t cuts[] = { 0,	       1,	    2,
				  3,	       4,	    9,
				  10,	       11,	    IN_SIZE,
				  IN_SIZE + 1, one.len / 2, one.len - 8,
				  one.len - 5, one.len - 1 };

		for (size_t i = 0; i < CFS_ARRAY_SIZE(cuts); i++) {
			struct tar c = { .data = one.data, .len = cuts[i] };

			if (!gz_refused(&c, truncated_at(cuts[i]), true,
					"truncated"))
				bad++;
		}
	}
	b.len = 0;
	put(&b, one.data, one.len);
	put(&b, one.data, 5);
	if (!gz_refused(&b, truncated_at(b.len), true, "second header cut"))
		bad++;

	/* after the last member: junk, NUL bytes, headers zlib refuses */
	{
		static const struct {
			const char *bytes;
			size_t len, at; /* 0: truncated */
			const char *why;
		} tails[] = {
			{ "junk after the gzip member", 26, 2,
			  "incorrect header check" },
			{ "\0", 1, 0, NULL },
			{ "j", 1, 0, NULL },
			{ "\0\0", 2, 2, "incorrect header check" },
			{ "\x1f\x8b\x08", 3, 0, NULL },
			{ "\x1f\x8b\x07\x00", 4, 4,
			  "unknown compression method" },
			{ "\x1f\x8b\x08\xe0", 4, 4,
			  "unknown header flags set" },
		};

		for (size_t i = 0; i < CFS_ARRAY_SIZE(tails); i++) {
			const char *want;

			b.len = 0;
			put(&b, one.data, one.len);
			put(&b, tails[i].bytes, tails[i].len);
			want = tails[i].why ? corrupt_at(one.len + tails[i].at,
							 tails[i].why) :
					      truncated_at(b.len);
			if (!gz_refused(&b, want, true, "after the member"))
				bad++;
		}
	}

	/* corrupt deflate data: the offset is "near" */
	b.len = 0;
	gz_member(&b, t.data, t.len, 0, NULL);
	b.data[13] ^= 0xff; /* NLEN of the first stored block */
	if (!gz_refused(&b, "L: corrupt gzip data near compressed offset ",
			false, "stored length"))
		bad++;
	b.data[13] ^= 0xff;
	b.data[10] |= 6; /* block type 3 */
	if (!gz_refused(&b, "L: corrupt gzip data near compressed offset ",
			false, "block type"))
		bad++;
	memcpy(dict, t.data, sizeof(dict));
	b.len = 0;
	gz_dict_member(&b, t.data, t.len, dict, sizeof(dict));
	if (!gz_refused(&b, "L: corrupt gzip data near compressed offset ",
			false, "distance"))
		bad++;
	for (size_t i = 0; i < CFS_ARRAY_SIZE(decoders); i++) {
		struct result res;

		if (!use_decoder(i))
			continue;
		read_blob(&b, CFS_LAYER_GZIP, false, &res, NULL);
		CHECK(strstr(res.msg, ": invalid distance too far back"));
	}
	b.len = 0;
	put(&b, one.data, one.len);
	for (size_t i = one.len / 2; i < one.len / 2 + 8; i++)
		b.data[i] ^= 0x5a;
	if (!gz_refused(&b, "L: corrupt gzip data near compressed offset ",
			false, "flipped bytes"))
		bad++;

	CHECK(bad == 0);
	/* back to the build's default */
	if (cfs_layer_set_gzip_decoder(CFS_GZIP_ISAL) < 0)
		CHECK_OK(cfs_layer_set_gzip_decoder(CFS_GZIP_ZLIB));
	free(t.data);
	free(zeros.data);
	free(b.data);
	free(one.data);
}

int main(int argc, char **argv)
{
	const char *base = getenv("CFS_TEST_TMP");

	if (!base || !*base)
		base = "/tmp";
	if ((size_t)snprintf(tmpdir, sizeof(tmpdir), "%s/test-layer-XXXXXX",
			     base) >= sizeof(tmpdir) ||
	    !mkdtemp(tmpdir)) {
		fprintf(stderr, "mkdtemp(%s): %s\n", tmpdir, strerror(errno));
		return 1;
	}
	TEST_RUN(argc, argv, check_fatal_offsets);
	TEST_RUN(argc, argv, check_nul_records);
	TEST_RUN(argc, argv, check_buffer_cuts);
	TEST_RUN(argc, argv, check_sparse);
	TEST_RUN(argc, argv, check_typeflags);
	TEST_RUN(argc, argv, check_gzip);
	TEST_RUN(argc, argv, check_ahead);
	CHECK(rmdir(tmpdir) == 0);
	return test_done();
}
