/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * zstd:chunked: annotations, TOC, plan and tar-split, on a layer this
 * test writes the way containers/storage does (docs/formats.md), and on
 * hostile variants of it. tests/scripts/chunked.sh reads layers skopeo
 * writes: test-chunked LAYOUT checks every zstd:chunked layer of an OCI
 * layout against its blob (each file's range holds the content its
 * digest names).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "common/digest.h"
#include "common/json.h"
#include "common/sign.h"
#include "common/util.h"
#include "convert/chunked.h"
#include "layoutfile.h"
#include "test.h"

/* ---- a zstd:chunked writer, enough for the tests ---- */

struct fx_file {
	const char *name;
	char type; /* tar typeflag */
	size_t size;
	char fill; /* content: size bytes of this, with the name on top */
	const char *link;
};

struct fixture {
	struct cfs_buf tar, blob, meta; /* meta: tar bytes not framed yet */
	struct cfs_buf tarsplit;
	json_object *toc, *entries, *ann;
	uint8_t **contents;
	size_t n;
};

static void put_octal(char *field, size_t len, uint64_t v)
{
	snprintf(field, len, "%0*" PRIo64, (int)len - 1, v);
}

static void tar_header(char h[512], const struct fx_file *f)
{
	unsigned sum = 0;

	memset(h, 0, 512);
	snprintf(h, 100, "%s", f->name);
	put_octal(h + 100, 8, f->type == '5' ? 0755 : 0644);
	put_octal(h + 108, 8, 0);
	put_octal(h + 116, 8, 0);
	put_octal(h + 124, 12, f->type == '0' ? f->size : 0);
	put_octal(h + 136, 12, 1704164645);
	h[156] = f->type;
	if (f->link)
		snprintf(h + 157, 100, "%s", f->link);
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	memset(h + 148, ' ', 8);
	for (int i = 0; i < 512; i++)
		sum += (unsigned char)h[i];
	snprintf(h + 148, 8, "%06o", sum);
}

static void frame(struct cfs_buf *out, const void *data, size_t len)
{
	size_t bound = ZSTD_compressBound(len);

	CHECK_OK(cfs_buf_reserve(out, bound));
	out->len += ZSTD_compress(out->buf + out->len, bound, data, len, 3);
}

static void tarsplit_line(struct fixture *fx, int type, const char *name,
			  const void *payload, size_t len)
{
	json_object *o = json_object_new_object();
	const char *s;

	json_object_object_add(o, "type", json_object_new_int(type));
	if (name) {
		json_object_object_add(o, "name", json_object_new_string(name));
		json_object_object_add(o, "size",
				       json_object_new_int64((int64_t)len));
		json_object_object_add(o, "payload", NULL);
	} else {
		char *b64 = cfs_base64_encode(payload, len);

		json_object_object_add(o, "payload",
				       json_object_new_string(b64));
		free(b64);
	}
	s = json_object_to_json_string_ext(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	CHECK_OK(cfs_buf_add(&fx->tarsplit, s, strlen(s)));
	CHECK_OK(cfs_buf_add(&fx->tarsplit, "\n", 1));
	json_object_put(o);
}

/* The tar bytes not framed yet: one frame, one tar-split line. */
static void flush_meta(struct fixture *fx)
{
	if (fx->meta.len == 0)
		return;
	frame(&fx->blob, fx->meta.buf, fx->meta.len);
	tarsplit_line(fx, 2, NULL, fx->meta.buf, fx->meta.len);
	fx->meta.len = 0;
}

static void add_hex(json_object *o, const char *key, const uint8_t d[32])
{
	char hex[CFS_DIGEST_HEX_SIZE + 8] = "sha256:";

	cfs_digest_to_hex(d, hex + 7);
	json_object_object_add(o, key, json_object_new_string(hex));
}

static void add_file(struct fixture *fx, const struct fx_file *f, size_t i)
{
	static const char zeros[512];
	json_object *e = json_object_new_object();
	char h[512];
	uint8_t *c = NULL;

	tar_header(h, f);
	CHECK_OK(cfs_buf_add(&fx->tar, h, 512));
	CHECK_OK(cfs_buf_add(&fx->meta, h, 512));
	json_object_object_add(
		e, "type",
		json_object_new_string(f->type == '0' ? "reg" :
				       f->type == '5' ? "dir" :
				       f->type == '2' ? "symlink" :
							"hardlink"));
	json_object_object_add(e, "name", json_object_new_string(f->name));
	if (f->link)
		json_object_object_add(e, "linkName",
				       json_object_new_string(f->link));
	json_object_object_add(
		e, "mode", json_object_new_int(f->type == '5' ? 0755 : 0644));
	json_object_object_add(e, "modtime",
			       json_object_new_string("2024-01-02T03:04:05Z"));
	if (f->type == '0' && f->size) {
		uint8_t sum[32];
		size_t half = f->size / 2, start;

		c = malloc(f->size);
		memset(c, f->fill, f->size);
		memcpy(c, f->name, CFS_MIN(strlen(f->name), f->size));
		CHECK_OK(cfs_buf_add(&fx->tar, c, f->size));
		flush_meta(fx);
		tarsplit_line(fx, 1, f->name, NULL, f->size);
		SHA256(c, f->size, sum);
		json_object_object_add(e, "size",
				       json_object_new_int64((int64_t)f->size));
		add_hex(e, "digest", sum);
		start = fx->blob.len;
		json_object_object_add(e, "offset",
				       json_object_new_int64((int64_t)start));
		/* big files in two chunks, as containers/storage cuts them */
		if (f->size > 65536) {
			json_object *chunk = json_object_new_object();

			frame(&fx->blob, c, half);
			json_object_object_add(chunk, "type",
					       json_object_new_string("chunk"));
			json_object_object_add(chunk, "name",
					       json_object_new_string(f->name));
			json_object_object_add(
				chunk, "offset",
				json_object_new_int64((int64_t)fx->blob.len));
			json_object_object_add(
				chunk, "chunkOffset",
				json_object_new_int64((int64_t)half));
			json_object_object_add(
				chunk, "chunkSize",
				json_object_new_int64(
					(int64_t)(f->size - half)));
			frame(&fx->blob, c + half, f->size - half);
			json_object_object_add(
				e, "endOffset",
				json_object_new_int64((int64_t)fx->blob.len));
			json_object_array_add(fx->entries, e);
			json_object_array_add(fx->entries, chunk);
			e = NULL;
		} else {
			frame(&fx->blob, c, f->size);
			json_object_object_add(
				e, "endOffset",
				json_object_new_int64((int64_t)fx->blob.len));
		}
		if (f->size % 512)
			CHECK_OK(cfs_buf_add(&fx->tar, zeros,
					     512 - f->size % 512));
		if (f->size % 512)
			CHECK_OK(cfs_buf_add(&fx->meta, zeros,
					     512 - f->size % 512));
	} else {
		flush_meta(fx);
		tarsplit_line(fx, 1, f->name, NULL, 0);
	}
	if (e)
		json_object_array_add(fx->entries, e);
	fx->contents[i] = c;
}

/* A skippable frame around @data: where @data starts. */
static uint64_t skippable(struct cfs_buf *out, const void *data, size_t len)
{
	uint8_t h[8] = { 0x50, 0x2a, 0x4d, 0x18 };

	for (int i = 0; i < 4; i++)
		h[4 + i] = (uint8_t)(len >> (8 * i));
	CHECK_OK(cfs_buf_add(out, h, sizeof(h)));
	CHECK_OK(cfs_buf_add(out, data, len));
	return out->len - len;
}

/* A compressed metadata part at the end of the blob, and its annotations
 * under @prefix. */
static void add_part(struct fixture *fx, const char *prefix, const char *name,
		     const char *text, bool toc, bool checksum)
{
	struct cfs_buf z = { 0 };
	uint8_t sum[32];
	char key[96], pos[96];
	uint64_t off;

	frame(&z, text, strlen(text));
	SHA256((uint8_t *)z.buf, z.len, sum);
	off = skippable(&fx->blob, z.buf, z.len);
	snprintf(pos, sizeof(pos), "%" PRIu64 ":%zu:%zu%s", off, z.len,
		 strlen(text), toc ? ":1" : "");
	snprintf(key, sizeof(key), "%s%s-position", prefix, name);
	json_object_object_add(fx->ann, key, json_object_new_string(pos));
	snprintf(key, sizeof(key), "%s%s-checksum", prefix, name);
	if (checksum)
		add_hex(fx->ann, key, sum);
	free(z.buf);
}

static const struct fx_file files[] = {
	{ "./", '5', 0, 0, NULL },
	{ "etc/", '5', 0, 0, NULL },
	{ "etc/hostname", '0', 9, 'h', NULL },
	{ "etc/empty", '0', 0, 0, NULL },
	{ "usr/bin/big", '0', 200000, 'b', NULL },
	{ "usr/bin/link", '2', 0, 0, "big" },
	{ "usr/bin/hard", '1', 0, 0, "usr/bin/big" },
	{ "usr/share/a", '0', 1000, 'a', NULL },
	{ "usr/share/b", '0', 1001, 'a', NULL },
	{ "usr/share/c", '0', 5000, 'c', NULL },
};

/* Where a fixture's tar-split says its checksum. */
enum ts_sum {
	TS_NONE, /* no tar-split */
	TS_ANNOTATION, /* <prefix>tarsplit-checksum */
	TS_TOC, /* the TOC's tarSplitDigest, as skopeo 1.18 writes it */
};

static void fixture_make(struct fixture *fx, const char *prefix, enum ts_sum ts)
{
	static const char end[1024];
	const char *s;

	memset(fx, 0, sizeof(*fx));
	fx->n = CFS_ARRAY_SIZE(files);
	fx->contents = calloc(fx->n, sizeof(*fx->contents));
	fx->toc = json_object_new_object();
	fx->entries = json_object_new_array();
	fx->ann = json_object_new_object();
	json_object_object_add(fx->toc, "version", json_object_new_int(1));
	json_object_object_add(fx->toc, "entries", fx->entries);
	for (size_t i = 0; i < fx->n; i++)
		add_file(fx, &files[i], i);
	CHECK_OK(cfs_buf_add(&fx->tar, end, sizeof(end)));
	CHECK_OK(cfs_buf_add(&fx->meta, end, sizeof(end)));
	flush_meta(fx);
	CHECK_OK(cfs_buf_add(&fx->tarsplit, "", 1));
	fx->tarsplit.len--;
	if (ts == TS_TOC) {
		struct cfs_buf z = { 0 };
		uint8_t sum[32];

		frame(&z, fx->tarsplit.buf, fx->tarsplit.len);
		SHA256((uint8_t *)z.buf, z.len, sum);
		add_hex(fx->toc, "tarSplitDigest", sum);
		free(z.buf);
	}
	s = json_object_to_json_string_ext(
		fx->toc,
		JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	add_part(fx, prefix, "manifest", s, true, true);
	if (ts != TS_NONE)
		add_part(fx, prefix, "tarsplit", fx->tarsplit.buf, false,
			 ts == TS_ANNOTATION);
}

static void fixture_free(struct fixture *fx)
{
	for (size_t i = 0; i < fx->n; i++)
		free(fx->contents[i]);
	free(fx->contents);
	free(fx->tar.buf);
	free(fx->blob.buf);
	free(fx->meta.buf);
	free(fx->tarsplit.buf);
	json_object_put(fx->toc);
	json_object_put(fx->ann);
}

/* ---- the checks ---- */

static const char *const NEW = "io.github.containers.zstd-chunked.";
static const char *const OLD = "io.containers.zstd-chunked.";

static bool message_has(const char *what)
{
	if (strstr(cfs_error_message(), what))
		return true;
	fprintf(stderr, "message '%s' lacks '%s'\n", cfs_error_message(), what);
	return false;
}

/* Read and decode @p of @fx's blob. */
static int decode(const struct fixture *fx, const struct cfs_chunked_part *p,
		  char **out, const char *name)
{
	return cfs_chunked_part_decode(p, fx->blob.buf + p->offset, p->length,
				       out, "layer", name);
}

/* Decompress @e's range of @blob and compare with its digest. */
static bool range_holds(const uint8_t *blob, const struct cfs_toc_entry *e)
{
	uint8_t *out = toc_file_content(blob + e->offset, e), sum[32];
	bool ok = out != NULL;

	if (ok) {
		SHA256(out, e->size, sum);
		ok = memcmp(sum, e->sha256, 32) == 0;
	}
	free(out);
	return ok;
}

static void test_annotations(void)
{
	struct fixture fx;
	struct cfs_chunked c;
	json_object *ann;

	fixture_make(&fx, NEW, TS_ANNOTATION);
	CHECK(cfs_chunked_from_annotations(fx.ann, fx.blob.len, &c, "l") == 1);
	CHECK(c.toc.present && c.tarsplit.present);
	CHECK(c.tarsplit.offset > c.toc.offset);
	CHECK(cfs_chunked_from_annotations(NULL, 1, &c, "l") == 0);
	ann = json_object_new_object();
	CHECK(cfs_chunked_from_annotations(ann, 1, &c, "l") == 0);
	/* a checksum without its position */
	json_object_object_add(ann,
			       "io.containers.zstd-chunked.manifest-checksum",
			       json_object_new_string("sha256:00"));
	CHECK_ERR(cfs_chunked_from_annotations(ann, 100, &c, "l"), EINVAL);
	CHECK(message_has("without io.containers.zstd-chunked.manifest-"
			  "position"));
	json_object_object_add(ann,
			       "io.containers.zstd-chunked.manifest-position",
			       json_object_new_string("10:20:30:1"));
	CHECK_ERR(cfs_chunked_from_annotations(ann, 100, &c, "l"), EINVAL);
	CHECK(message_has("is not a sha256 digest"));
	json_object_object_add(
		ann, "io.containers.zstd-chunked.manifest-checksum",
		json_object_new_string("sha256:"
				       "e410466b27b9a4e7f5e1e78ade421b76"
				       "fb32fd1d6a670f4adea4de2757aba795"));
	CHECK(cfs_chunked_from_annotations(ann, 100, &c, "l") == 1);
	CHECK(!c.tarsplit.present && c.toc.offset == 10 && c.toc.length == 20 &&
	      c.toc.size == 30);
	/* not in the blob; another manifest type; not numbers */
	CHECK_ERR(cfs_chunked_from_annotations(ann, 29, &c, "l"), EINVAL);
	CHECK(message_has("are not in the blob"));
	json_object_object_add(ann,
			       "io.containers.zstd-chunked.manifest-position",
			       json_object_new_string("10:20:30:2"));
	CHECK_ERR(cfs_chunked_from_annotations(ann, 100, &c, "l"), EINVAL);
	json_object_object_add(ann,
			       "io.containers.zstd-chunked.manifest-position",
			       json_object_new_string("10:-20:30:1"));
	CHECK_ERR(cfs_chunked_from_annotations(ann, 100, &c, "l"), EINVAL);
	json_object_object_add(ann,
			       "io.containers.zstd-chunked.manifest-position",
			       json_object_new_string("10:20:30:1:"));
	CHECK_ERR(cfs_chunked_from_annotations(ann, 100, &c, "l"), EINVAL);
	json_object_object_add(ann,
			       "io.containers.zstd-chunked.manifest-position",
			       json_object_new_string("10:20:999999999999:1"));
	CHECK_ERR(cfs_chunked_from_annotations(ann, 100, &c, "l"), EINVAL);
	CHECK(message_has("over the limit"));
	json_object_put(ann);
	fixture_free(&fx);
}

static void test_decode(void)
{
	struct fixture fx;
	struct cfs_chunked c;
	char *text;

	fixture_make(&fx, OLD, TS_NONE);
	CHECK(cfs_chunked_from_annotations(fx.ann, fx.blob.len, &c, "l") == 1);
	CHECK(!c.tarsplit.present);
	CHECK_OK(decode(&fx, &c.toc, &text, "TOC"));
	CHECK(text &&
	      strcmp(text,
		     json_object_to_json_string_ext(
			     fx.toc, JSON_C_TO_STRING_PLAIN |
					     JSON_C_TO_STRING_NOSLASHESCAPE)) ==
		      0);
	free(text);
	/* a byte of the TOC changed; the length annotated wrong */
	fx.blob.buf[c.toc.offset + 3] ^= 1;
	CHECK_ERR(decode(&fx, &c.toc, &text, "TOC"), EBADMSG);
	CHECK(text == NULL && message_has("checksum does not match"));
	fx.blob.buf[c.toc.offset + 3] ^= 1;
	c.toc.size++;
	CHECK_ERR(decode(&fx, &c.toc, &text, "TOC"), EBADMSG);
	CHECK(message_has("TOC at offset"));
	c.toc.size--;
	CHECK_ERR(cfs_chunked_part_decode(&c.toc, fx.blob.buf, 3, &text, "l",
					  "TOC"),
		  EBADMSG);
	fixture_free(&fx);
}

static bool have_even(void *opaque, const struct cfs_toc_entry *e)
{
	size_t *calls = opaque;

	(*calls)++;
	return e->sha256[0] % 2 == 0;
}

static bool have_none(void *opaque, const struct cfs_toc_entry *e)
{
	return false;
}

static void test_toc(void)
{
	struct fixture fx;
	struct cfs_chunked c;
	struct cfs_toc toc;
	struct cfs_chunked_range *r;
	const struct cfs_toc_entry *e;
	struct cfs_layer_entry le;
	size_t n, calls = 0, files_with_content = 0;
	uint64_t bytes, want = 0;
	char *text;

	fixture_make(&fx, NEW, TS_ANNOTATION);
	CHECK(cfs_chunked_from_annotations(fx.ann, fx.blob.len, &c, "l") == 1);
	CHECK_OK(decode(&fx, &c.toc, &text, "TOC"));
	CHECK_OK(cfs_toc_parse(&toc, text, c.toc.offset, "l"));
	free(text);
	/* the chunk entry is folded into its file */
	CHECK(toc.n == fx.n);
	for (size_t i = 0; i < fx.n; i++) {
		const struct fx_file *f = &files[i];

		e = &toc.entries[i];
		CHECK(strcmp(e->name, f->name) == 0);
		CHECK(e->mtime_sec == 1704164645 && e->mtime_nsec == 0);
		CHECK(e->size == (f->type == '0' ? f->size : 0));
		if (e->size) {
			files_with_content++;
			CHECK(toc.files[files_with_content - 1] == e);
			CHECK(range_holds((uint8_t *)fx.blob.buf, e));
		}
	}
	CHECK(toc.n_files == files_with_content);
	e = &toc.entries[5];
	cfs_toc_entry_to_layer(e, &le);
	CHECK(S_ISLNK(le.mode) && strcmp(le.link, "big") == 0);
	cfs_toc_entry_to_layer(&toc.entries[6], &le);
	CHECK(le.hardlink && strcmp(le.link, "usr/bin/big") == 0);

	/* nothing there: every file's range, the neighbours merged */
	CHECK_OK(cfs_chunked_plan(&toc, have_none, NULL, 0, &r, &n, &bytes));
	for (size_t i = 0; i < toc.n_files; i++)
		want += toc.files[i]->end - toc.files[i]->offset;
	CHECK(n == toc.n_files && bytes == want);
	for (size_t i = 1; i < n; i++)
		CHECK(r[i].offset > r[i - 1].end);
	free(r);
	/* a gap as wide as the blob: one range */
	CHECK_OK(cfs_chunked_plan(&toc, have_none, NULL, fx.blob.len, &r, &n,
				  &bytes));
	CHECK(n == 1 && r[0].offset == toc.entries[2].offset &&
	      r[0].end == toc.entries[toc.n - 1].end);
	free(r);
	/* only what is missing */
	want = 0;
	for (size_t i = 0; i < toc.n_files; i++)
		if (toc.files[i]->sha256[0] % 2)
			want += toc.files[i]->end - toc.files[i]->offset;
	CHECK_OK(cfs_chunked_plan(&toc, have_even, &calls, 0, &r, &n, &bytes));
	CHECK(calls == toc.n_files && bytes == want);
	CHECK((n == 0) == (want == 0) && (n == 0) == (r == NULL));
	free(r);
	cfs_toc_free(&toc);
	fixture_free(&fx);
}

struct rebuild {
	struct cfs_buf out;
	const struct fixture *fx;
	const struct cfs_toc *toc;
	size_t files;
};

static int rb_write(void *opaque, const void *buf, size_t len)
{
	struct rebuild *rb = opaque;

	return cfs_buf_add(&rb->out, buf, len);
}

/* The content of @e from the blob's frames, as a pull would fetch it. */
static int rb_file(void *opaque, const struct cfs_toc_entry *e)
{
	struct rebuild *rb = opaque;
	uint8_t *out = toc_file_content(
		(const uint8_t *)rb->fx->blob.buf + e->offset, e);
	int r = out ? cfs_buf_add(&rb->out, out, e->size) : -EBADMSG;

	free(out);
	if (r == 0)
		rb->files++;
	return r;
}

static void test_tarsplit(void)
{
	struct fixture fx;
	struct cfs_chunked c;
	struct cfs_toc toc;
	struct rebuild rb = { .files = 0 };
	char *toc_text, *ts, *bad;

	fixture_make(&fx, NEW, TS_ANNOTATION);
	CHECK(cfs_chunked_from_annotations(fx.ann, fx.blob.len, &c, "l") == 1);
	CHECK_OK(decode(&fx, &c.toc, &toc_text, "TOC"));
	CHECK_OK(decode(&fx, &c.tarsplit, &ts, "tar-split"));
	CHECK_OK(cfs_toc_parse(&toc, toc_text, c.toc.offset, "l"));
	rb.fx = &fx;
	rb.toc = &toc;
	CHECK_OK(cfs_tarsplit_rebuild(ts, &toc, rb_write, rb_file, &rb, "l"));
	CHECK(rb.files == toc.n_files);
	CHECK(rb.out.len == fx.tar.len &&
	      memcmp(rb.out.buf, fx.tar.buf, fx.tar.len) == 0);
	/* a file the TOC lacks; a size that differs; files out of the
	 * TOC's order; one the tar-split leaves out; not JSON */
	bad = strdup(ts);
	memcpy(strstr(bad, "usr/share/c"), "usr/share/x", 11);
	rb.out.len = 0;
	CHECK_ERR(cfs_tarsplit_rebuild(bad, &toc, rb_write, rb_file, &rb, "l"),
		  EBADMSG);
	CHECK(message_has("usr/share/x (5000 bytes) is not the TOC's next "
			  "file, usr/share/c"));
	memcpy(strstr(bad, "usr/share/x"), "usr/share/c", 11);
	memcpy(strstr(bad, "\"size\":5000"), "\"size\":5001", 11);
	CHECK_ERR(cfs_tarsplit_rebuild(bad, &toc, rb_write, rb_file, &rb, "l"),
		  EBADMSG);
	CHECK(message_has("is not the TOC's next file"));
	memcpy(strstr(bad, "\"size\":5001"), "\"size\":5000", 11);
	memcpy(strstr(bad, "usr/share/a\""), "usr/share/b", 11);
	memcpy(strstr(bad, "usr/share/b\",\"size\":1001"), "usr/share/a", 11);
	CHECK_ERR(cfs_tarsplit_rebuild(bad, &toc, rb_write, rb_file, &rb, "l"),
		  EBADMSG);
	CHECK(message_has("usr/share/b (1000 bytes) is not the TOC's next"));
	memcpy(strstr(bad, "usr/share/b\",\"size\":1000"), "usr/share/a", 11);
	memcpy(strstr(bad, "usr/share/a\",\"size\":1001"), "usr/share/b", 11);
	*strstr(bad, "{\"type\":1,\"name\":\"usr/share/c\"") = '\0';
	CHECK_ERR(cfs_tarsplit_rebuild(bad, &toc, rb_write, rb_file, &rb, "l"),
		  EBADMSG);
	CHECK(message_has("l: tar-split: the TOC's usr/share/c and 0 more "
			  "files are not in it"));
	bad[0] = '[';
	CHECK_ERR(cfs_tarsplit_rebuild(bad, &toc, rb_write, rb_file, &rb, "l"),
		  EBADMSG);
	CHECK(message_has("tar-split line 1"));
	free(bad);
	/* a name in "name_raw" (tar-split's way with names that are not
	 * UTF-8; the TOC has them as Go's JSON writes them) */
	bad = malloc(strlen(ts) + 64);
	strcpy(bad, ts);
	{
		const char *name = "\"name\":\"usr/share/c\"";
		const char *raw = "\"name_raw\":\"dXNyL3NoYXJlL2M=\"";
		char *at = strstr(bad, name);

		memmove(at + strlen(raw), at + strlen(name),
			strlen(at + strlen(name)) + 1);
		memcpy(at, raw, strlen(raw));
		rb.out.len = 0;
		CHECK_OK(cfs_tarsplit_rebuild(bad, &toc, rb_write, rb_file, &rb,
					      "l"));
		CHECK(rb.out.len == fx.tar.len &&
		      memcmp(rb.out.buf, fx.tar.buf, fx.tar.len) == 0);
		/* "usr/share/d" */
		memcpy(strstr(bad, "dXNyL3NoYXJlL2M="), "dXNyL3NoYXJlL2Q=", 16);
		CHECK_ERR(cfs_tarsplit_rebuild(bad, &toc, rb_write, rb_file,
					       &rb, "l"),
			  EBADMSG);
		CHECK(message_has("is not the TOC's next file, usr/share/c"));
	}
	free(bad);
	free(rb.out.buf);
	free(toc_text);
	free(ts);
	cfs_toc_free(&toc);
	fixture_free(&fx);
}

/* skopeo 1.18: the tar-split's checksum in the TOC, not annotated */
static void test_tarsplit_digest_in_toc(void)
{
	struct fixture fx;
	struct cfs_chunked c;
	struct cfs_toc toc;
	struct rebuild rb = { .files = 0 };
	char *toc_text, *ts;

	fixture_make(&fx, NEW, TS_TOC);
	CHECK(cfs_chunked_from_annotations(fx.ann, fx.blob.len, &c, "l") == 1);
	CHECK(c.tarsplit.present && !c.tarsplit.checksum);
	/* not before the TOC vouched for it */
	CHECK_ERR(decode(&fx, &c.tarsplit, &ts, "tar-split"), EBADMSG);
	CHECK(message_has("layer: tar-split: no checksum to check it with"));
	CHECK_OK(decode(&fx, &c.toc, &toc_text, "TOC"));
	CHECK_OK(cfs_toc_parse(&toc, toc_text, c.toc.offset, "l"));
	CHECK(toc.has_tarsplit_sha256);
	CHECK_OK(cfs_chunked_bind_tarsplit(&c, &toc, "l"));
	CHECK(c.tarsplit.checksum);
	CHECK_OK(decode(&fx, &c.tarsplit, &ts, "tar-split"));
	rb.fx = &fx;
	rb.toc = &toc;
	CHECK_OK(cfs_tarsplit_rebuild(ts, &toc, rb_write, rb_file, &rb, "l"));
	CHECK(rb.out.len == fx.tar.len &&
	      memcmp(rb.out.buf, fx.tar.buf, fx.tar.len) == 0);
	free(ts);
	/* a changed byte of the tar-split: the TOC's digest catches it */
	fx.blob.buf[c.tarsplit.offset + 5] ^= 1;
	CHECK_ERR(decode(&fx, &c.tarsplit, &ts, "tar-split"), EBADMSG);
	CHECK(message_has("tar-split at offset"));
	fx.blob.buf[c.tarsplit.offset + 5] ^= 1;
	/* an annotation that says otherwise than the TOC */
	c.tarsplit.checksum = true;
	c.tarsplit.sha256[0] ^= 1;
	CHECK_ERR(cfs_chunked_bind_tarsplit(&c, &toc, "l"), EBADMSG);
	CHECK(message_has("tarSplitDigest and the tarsplit-checksum "
			  "annotation differ"));
	free(rb.out.buf);
	free(toc_text);
	cfs_toc_free(&toc);
	fixture_free(&fx);
}

/* cfs_toc_parse() of the fixture's TOC with entry @i's @key set to the
 * JSON @value (NULL: removed). */
static int parse_changed(size_t i, const char *key, const char *value,
			 struct cfs_toc *toc)
{
	struct fixture fx;
	json_object *e, *v = NULL;
	int r;

	fixture_make(&fx, NEW, TS_NONE);
	e = json_object_array_get_idx(fx.entries, i);
	if (value)
		CHECK_OK(cfs_json_parse(value, strlen(value), &v));
	if (v)
		json_object_object_add(e, key, v);
	else
		json_object_object_del(e, key);
	r = cfs_toc_parse(toc,
			  json_object_to_json_string_ext(
				  fx.toc,
				  JSON_C_TO_STRING_PLAIN |
					  JSON_C_TO_STRING_NOSLASHESCAPE),
			  fx.blob.len - 200, "layer");
	fixture_free(&fx);
	return r;
}

static void refused(size_t i, const char *key, const char *value,
		    const char *msg)
{
	struct cfs_toc toc;

	CHECK_ERR(parse_changed(i, key, value, &toc), EBADMSG);
	CHECK(message_has(msg));
	CHECK(toc.entries == NULL && toc.n == 0);
}

static void test_hostile_toc(void)
{
	struct cfs_toc toc;

	/* the TOC's entries: 2 etc/hostname, 3 etc/empty, 4 usr/bin/big,
	 * 5 its chunk, 6 usr/bin/link, 7 usr/bin/hard, 8 usr/share/a */
	refused(2, "name", "\"../etc/passwd\"", "entry 2: bad name");
	refused(2, "name", "\"etc/a/../../x\"", "bad name");
	refused(2, "name", "\"\"", "bad name");
	refused(2, "type", "\"socket\"", "(etc/hostname): unknown type");
	refused(2, "digest", NULL, "(etc/hostname): no sha256 digest");
	refused(2, "digest", "\"sha512:00\"", "no sha256 digest");
	refused(2, "endOffset", "999999999", "range not in the blob");
	refused(2, "offset", NULL, "range not in the blob");
	refused(2, "mode", "-1", "entry 2 (etc/hostname): malformed");
	refused(2, "mode", "\"644\"", "malformed");
	refused(2, "modtime", "\"yesterday\"", "bad modtime");
	refused(2, "modtime", "\"2024-01-02T03:04:05\"", "bad modtime");
	refused(2, "xattrs", "{\"user.a\": \"!!\"}", "bad xattrs");
	refused(6, "linkName", NULL, "(usr/bin/link): bad linkName");
	refused(7, "linkName", "\"\"", "(usr/bin/hard): bad linkName");
	refused(5, "name", "\"usr/bin/other\"", "entry 5: a chunk out of");
	refused(5, "offset", "1", "a chunk out of its file's place");
	refused(5, "chunkOffset", "999999", "a chunk out of");
	refused(0, "type", "1", "malformed");
	/* a name twice, as in a tar whose layer replaces its own file */
	CHECK_OK(parse_changed(8, "name", "\"etc/hostname\"", &toc));
	CHECK(toc.n_files == 5 &&
	      strcmp(toc.files[2]->name, "etc/hostname") == 0);
	cfs_toc_free(&toc);

	/* accepted: other time zones and fractions, xattrs, no modtime */
	CHECK_OK(parse_changed(2, "modtime", "\"2024-01-02T05:34:05.5+02:30\"",
			       &toc));
	CHECK(toc.entries[2].mtime_sec == 1704164645 &&
	      toc.entries[2].mtime_nsec == 500000000);
	cfs_toc_free(&toc);
	CHECK_OK(parse_changed(2, "modtime", "\"0001-01-01T00:00:00Z\"", &toc));
	CHECK(toc.entries[2].mtime_sec == -62135596800);
	cfs_toc_free(&toc);
	CHECK_OK(parse_changed(
		1, "xattrs", "{\"user.a\": \"eQ==\", \"user.b\": \"\"}", &toc));
	CHECK(toc.entries[1].n_xattrs == 2);
	CHECK(toc.entries[1].xattrs[0].len == 1 &&
	      memcmp(toc.entries[1].xattrs[0].value, "y", 1) == 0);
	CHECK(toc.entries[1].xattrs[1].len == 0);
	cfs_toc_free(&toc);
	CHECK_OK(parse_changed(2, "modtime", NULL, &toc));
	cfs_toc_free(&toc);

	/* type bits in the mode, as some tars have them: dropped */
	CHECK_OK(parse_changed(2, "mode", "33188", &toc));
	CHECK(toc.entries[2].mode == 0644);
	cfs_toc_free(&toc);
	/* Go's empty list */
	CHECK_OK(cfs_toc_parse(&toc, "{\"version\":1,\"entries\":null}", 10,
			       "l"));
	CHECK(toc.n == 0 && toc.n_files == 0);
	cfs_toc_free(&toc);
	CHECK_ERR(cfs_toc_parse(&toc,
				"{\"version\":1,\"entries\":[],"
				"\"tarSplitDigest\":\"md5:00\"}",
				10, "l"),
		  EBADMSG);
	CHECK(message_has("l: TOC: tarSplitDigest is not a sha256 digest"));
	CHECK_ERR(cfs_toc_parse(&toc, "{\"version\":2,\"entries\":[]}", 10,
				"l"),
		  EBADMSG);
	CHECK(message_has("l: TOC: not a version 1 TOC"));
	CHECK_ERR(cfs_toc_parse(&toc, "{\"version\":1", 10, "l"), EINVAL);
	CHECK(message_has("l: TOC: invalid JSON"));
}

/* ---- zstd:chunked layers of an OCI layout (tests/scripts/chunked.sh) ---- */

/* A tar rebuilt from a tar-split, hashed as it comes. */
struct layout_rebuild {
	const uint8_t *blob;
	EVP_MD_CTX *sha;
};

static int lr_write(void *opaque, const void *buf, size_t len)
{
	struct layout_rebuild *lr = opaque;

	return EVP_DigestUpdate(lr->sha, buf, len) == 1 ? 0 : -EIO;
}

static int lr_file(void *opaque, const struct cfs_toc_entry *e)
{
	struct layout_rebuild *lr = opaque;
	uint8_t *out = toc_file_content(lr->blob + e->offset, e);
	int r = out ? lr_write(lr, out, e->size) : -EBADMSG;

	free(out);
	return r;
}

/* The tar of a layer from its tar-split and the files' frames: does its
 * SHA-256 give @diff_id ("sha256:<hex>")? */
static bool rebuilt_is(struct cfs_chunked *c, const struct cfs_toc *toc,
		       const uint8_t *blob, const char *diff_id,
		       const char *what)
{
	struct layout_rebuild lr = { blob, EVP_MD_CTX_new() };
	uint8_t sum[32];
	char hex[CFS_DIGEST_HEX_SIZE + 1];
	char *ts = NULL;
	bool same = false;

	CHECK_OK(cfs_chunked_bind_tarsplit(c, toc, what));
	CHECK_OK(cfs_chunked_part_decode(
		&c->tarsplit, blob + c->tarsplit.offset, c->tarsplit.length,
		&ts, what, "tar-split"));
	if (ts && EVP_DigestInit_ex(lr.sha, EVP_sha256(), NULL) == 1 &&
	    cfs_tarsplit_rebuild(ts, toc, lr_write, lr_file, &lr, what) == 0 &&
	    EVP_DigestFinal_ex(lr.sha, sum, NULL) == 1) {
		cfs_digest_to_hex(sum, hex);
		same = diff_id && strcmp(diff_id + 7, hex) == 0;
	}
	EVP_MD_CTX_free(lr.sha);
	free(ts);
	return same;
}

/* Apply the entries of @toc to @a as a pull from the TOC alone would,
 * each file's content from its frames in @blob. */
static int apply_toc(struct cfs_applier *a, const struct cfs_toc *toc,
		     const uint8_t *blob)
{
	cfs_verity *v = NULL;
	int r = cfs_verity_new(&v);

	for (size_t i = 0; r == 0 && i < toc->n; i++) {
		const struct cfs_toc_entry *e = &toc->entries[i];
		struct cfs_layer_entry le;
		uint8_t digest[CFS_DIGEST_SIZE];
		cfs_inode *file = NULL;
		uint8_t *out;

		cfs_toc_entry_to_layer(e, &le);
		r = cfs_applier_apply(a, &le, &file);
		if (r < 0 || !file || e->size == 0)
			continue;
		out = toc_file_content(blob + e->offset, e);
		if (!out)
			r = -EBADMSG;
		else if (e->size <= CFS_INLINE_DEFAULT)
			r = cfs_inode_set_content(file, out, e->size);
		else if ((r = cfs_verity_update(v, out, e->size)) == 0 &&
			 (r = cfs_verity_final(v, digest)) == 0 &&
			 (r = cfs_inode_set_size(file, e->size)) == 0)
			r = cfs_inode_set_object(file, digest);
		free(out);
	}
	cfs_verity_free(v);
	return r;
}

static int check_layout(const char *dir)
{
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	json_object *index, *manifest, *layers;
	size_t len, layers_seen = 0;
	struct cfs_applier a;
	json_object *config, *diff_ids;
	uint8_t image[CFS_DIGEST_SIZE];
	char hex[CFS_DIGEST_HEX_SIZE + 1];
	char *text;

	if (dirfd < 0) {
		perror(dir);
		return 1;
	}
	read_manifest(dirfd, &index, &manifest);
	text = (char *)read_blob(
		dirfd,
		json_object_get_string(json_object_object_get(
			json_object_object_get(manifest, "config"), "digest")),
		&len);
	config = json_tokener_parse(text);
	free(text);
	diff_ids = json_object_object_get(
		json_object_object_get(config, "rootfs"), "diff_ids");
	CHECK_OK(cfs_applier_init(&a));
	layers = json_object_object_get(manifest, "layers");
	for (size_t i = 0; i < json_object_array_length(layers); i++) {
		json_object *l = json_object_array_get_idx(layers, i);
		const char *digest = json_object_get_string(
			json_object_object_get(l, "digest"));
		uint8_t *blob = read_blob(dirfd, digest, &len);
		struct cfs_chunked c;
		struct cfs_toc toc;
		size_t checked = 0;

		if (cfs_chunked_from_annotations(
			    json_object_object_get(l, "annotations"), len, &c,
			    digest) != 1) {
			free(blob);
			continue;
		}
		layers_seen++;
		CHECK_OK(cfs_chunked_part_decode(&c.toc, blob + c.toc.offset,
						 c.toc.length, &text, digest,
						 "TOC"));
		CHECK_OK(cfs_toc_parse(&toc, text, c.toc.offset, digest));
		for (size_t j = 0; j < toc.n_files; j++) {
			CHECK(range_holds(blob, toc.files[j]));
			checked++;
		}
		cfs_applier_begin_layer(&a, (uint32_t)layers_seen, digest);
		CHECK_OK(apply_toc(&a, &toc, blob));
		printf("%s: %zu entries, %zu files checked\n", digest, toc.n,
		       checked);
		if (c.tarsplit.present) {
			bool same = rebuilt_is(
				&c, &toc, blob,
				json_object_get_string(
					json_object_array_get_idx(diff_ids, i)),
				digest);

			CHECK(same);
			printf("%s: the tar rebuilt from the tar-split %s\n",
			       digest, same ? "has the diff_id" : "differs");
		}
		cfs_toc_free(&toc);
		free(text);
		free(blob);
	}
	CHECK(layers_seen > 0);
	/* the image of the TOCs alone, for the caller to compare with the
	 * conversion's */
	if (layers_seen == json_object_array_length(layers) &&
	    cfs_image_digest(a.root, NULL, image) == 0) {
		cfs_digest_to_hex(image, hex);
		printf("image from the TOCs: %s\n", hex);
	}
	cfs_applier_fini(&a);
	json_object_put(config);
	json_object_put(index);
	json_object_put(manifest);
	close(dirfd);
	return test_done();
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--layout") == 0)
		return check_layout(argv[2]);
	TEST_RUN(argc, argv, test_annotations);
	TEST_RUN(argc, argv, test_decode);
	TEST_RUN(argc, argv, test_toc);
	TEST_RUN(argc, argv, test_tarsplit);
	TEST_RUN(argc, argv, test_tarsplit_digest_in_toc);
	TEST_RUN(argc, argv, test_hostile_toc);
	return test_done();
}
