/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * fuzz-chunked-write: the input after its first byte is a layer's tar
 * stream, written as a zstd:chunked blob by cfs_chunked_write() (what
 * oci2cfs seal --zstd-chunked does), read in pieces of 1 to 256 bytes
 * (byte0 + 1) or, when byte0 is 255, whole. A refusal must come with a
 * message. Frames hold at most 1 to 8 KiB of the tar (the input's size
 * picks), so that inputs have several. It is written twice, read in
 * those pieces by one thread and read whole by three: the same blob.
 * An accepted tar must come back from the blob three ways:
 *  - the blob decompressed as plain zstd is the input, byte for byte;
 *  - its annotations, TOC and tar-split pass every check of our reader
 *    (chunked.h), which a partial pull makes;
 *  - the tar rebuilt from the tar-split, each file's content taken from
 *    its own frames, is the input again; each file's content has the
 *    TOC's SHA-256 and fs-verity digest.
 * Anything else is a finding.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <json-c/json.h>
#include <openssl/sha.h>
#include <zstd.h>

#include <cfs/image.h>

#include "convert/chunked.h"
#include "fuzz.h"

struct input {
	const uint8_t *p;
	size_t left, piece;
};

static ssize_t read_piece(void *opaque, const void **buf)
{
	struct input *in = opaque;
	size_t n = in->left < in->piece ? in->left : in->piece;

	*buf = in->p;
	in->p += n;
	in->left -= n;
	return (ssize_t)n;
}

struct rebuild {
	const uint8_t *blob;
	uint8_t *out;
	size_t len, cap;
};

static int put(void *opaque, const void *buf, size_t len)
{
	struct rebuild *rb = opaque;

	if (rb->len + len > rb->cap)
		return -EFBIG; /* more than the input: a finding below */
	memcpy(rb->out + rb->len, buf, len);
	rb->len += len;
	return 0;
}

/* One file's content from its frames, checked against the TOC. */
static int put_file(void *opaque, const struct cfs_toc_entry *e)
{
	struct rebuild *rb = opaque;
	uint8_t *content = malloc(e->size);
	uint8_t sha[32], verity[32];
	size_t n;

	if (!content)
		fuzz_fail("out of memory");
	n = ZSTD_decompress(content, e->size, rb->blob + e->offset,
			    e->end - e->offset);
	if (ZSTD_isError(n) || n != e->size)
		fuzz_fail("%s: its frames do not hold its %llu bytes", e->name,
			  (unsigned long long)e->size);
	SHA256(content, e->size, sha);
	if (memcmp(sha, e->sha256, 32) != 0)
		fuzz_fail("%s: content does not have the TOC's SHA-256",
			  e->name);
	if (!e->has_verity ||
	    cfs_verity_digest_buffer(content, e->size, verity) < 0 ||
	    memcmp(verity, e->verity, 32) != 0)
		fuzz_fail("%s: no or a wrong fs-verity digest", e->name);
	put(rb, content, e->size);
	free(content);
	return 0;
}

static json_object *annotations(const struct cfs_chunked_written *w)
{
	json_object *a = json_object_new_object();

	if (!a || cfs_chunked_annotate(a, w) < 0)
		fuzz_fail("out of memory");
	return a;
}

static void check_blob(const uint8_t *tar, size_t tar_len, const uint8_t *blob,
		       const struct cfs_chunked_written *w)
{
	struct rebuild rb = { .blob = blob };
	struct cfs_chunked c;
	struct cfs_toc toc;
	char *toc_json = NULL, *ts = NULL;
	json_object *ann = annotations(w);
	ZSTD_DCtx *z = ZSTD_createDCtx();
	ZSTD_inBuffer zin = { blob, w->size, 0 };
	int r;

	/* plain zstd: the input */
	rb.cap = tar_len;
	rb.out = malloc(tar_len + 1);
	if (!rb.out || !z)
		fuzz_fail("out of memory");
	while (zin.pos < zin.size) {
		ZSTD_outBuffer zout = { rb.out, tar_len + 1, rb.len };
		size_t before = zin.pos;
		size_t n = ZSTD_decompressStream(z, &zout, &zin);

		if (ZSTD_isError(n))
			fuzz_fail("the blob is not zstd: %s",
				  ZSTD_getErrorName(n));
		if (zout.pos > tar_len)
			fuzz_fail("the blob decompresses to more than the tar");
		if (zin.pos == before && zout.pos == rb.len)
			fuzz_fail("the blob ends inside a frame");
		rb.len = zout.pos;
	}
	if (rb.len != tar_len || (tar_len && memcmp(rb.out, tar, tar_len)))
		fuzz_fail("the blob decompresses to %zu bytes, not the tar's "
			  "%zu",
			  rb.len, tar_len);
	if (w->tar_size != tar_len)
		fuzz_fail("tar_size %llu, read %zu",
			  (unsigned long long)w->tar_size, tar_len);
	ZSTD_freeDCtx(z);

	/* our reader's checks */
	r = cfs_chunked_from_annotations(ann, w->size, &c, "fuzz");
	if (r != 1)
		fuzz_fail("its annotations: %d %s", r, cfs_error_message());
	r = cfs_chunked_part_decode(&c.toc, blob + c.toc.offset, c.toc.length,
				    &toc_json, "fuzz", "TOC");
	if (r == 0)
		r = cfs_toc_parse(&toc, toc_json, c.toc.offset, "fuzz");
	if (r < 0)
		fuzz_fail("its TOC: %s", cfs_error_message());
	r = cfs_chunked_bind_tarsplit(&c, &toc, "fuzz");
	if (r == 0)
		r = cfs_chunked_part_decode(&c.tarsplit,
					    blob + c.tarsplit.offset,
					    c.tarsplit.length, &ts, "fuzz",
					    "tar-split");
	if (r < 0)
		fuzz_fail("its tar-split: %s", cfs_error_message());

	/* the tar again, from the tar-split and the files' frames */
	rb.len = 0;
	r = cfs_tarsplit_rebuild(ts, &toc, put, put_file, &rb, "fuzz");
	if (r < 0 || rb.len != tar_len ||
	    (tar_len && memcmp(rb.out, tar, tar_len)))
		fuzz_fail("the tar rebuilt from the tar-split is not the "
			  "input (%d, %zu of %zu bytes): %s",
			  r, rb.len, tar_len, cfs_error_message());
	cfs_toc_free(&toc);
	free(toc_json);
	free(ts);
	free(rb.out);
	json_object_put(ann);
}

/* The blob of @data's tar, read @piece bytes at a time, written with
 * @threads threads into a memfd (its fd, or -1 when refused). */
static int write_blob(const uint8_t *data, size_t size, size_t piece,
		      unsigned int threads, struct cfs_chunked_written *w)
{
	/* frames of 1 to 8 KiB: fuzz inputs are small */
	struct cfs_chunked_params params = {
		.level = 1,
		.threads = threads,
		.frame_max = 1024 * (1 + (size % 8)),
	};
	struct input in;
	int fd, r;

	in.p = data + 1;
	in.left = size - 1;
	in.piece = piece;
	fd = memfd_create("fuzz-chunked", MFD_CLOEXEC);
	if (fd < 0)
		fuzz_fail("memfd_create: %s", strerror(errno));
	cfs_error_clear();
	r = cfs_chunked_write(read_piece, &in, fd, &params, "fuzz", w);
	fuzz_check_error(r, "cfs_chunked_write");
	if (r < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void *map_blob(int fd, uint64_t size)
{
	struct stat st;
	void *blob;

	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != size)
		fuzz_fail("the blob is not %llu bytes",
			  (unsigned long long)size);
	if (!size)
		return NULL;
	blob = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (blob == MAP_FAILED)
		fuzz_fail("mmap: %s", strerror(errno));
	return blob;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfs_chunked_written w, w3;
	void *blob, *blob3;
	int fd, fd3;

	if (size < 1)
		return 0;
	/* read in pieces by one thread, then whole by three: the same */
	fd = write_blob(data, size, data[0] == 255 ? size : data[0] + 1u, 1,
			&w);
	fd3 = write_blob(data, size, size, 3, &w3);
	if ((fd < 0) != (fd3 < 0))
		fuzz_fail("refused %s only", fd < 0 ? "in pieces" : "whole");
	if (fd < 0)
		return 0;
	if (memcmp(&w, &w3, sizeof(w)) != 0)
		fuzz_fail("a different blob, read whole by three threads");
	blob = map_blob(fd, w.size);
	blob3 = map_blob(fd3, w3.size);
	if (w.size && memcmp(blob, blob3, w.size) != 0)
		fuzz_fail("a different blob, read whole by three threads");
	check_blob(data + 1, size - 1, blob, &w);
	if (blob) {
		munmap(blob, w.size);
		munmap(blob3, w3.size);
	}
	close(fd);
	close(fd3);
	return 0;
}
