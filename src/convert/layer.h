/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Reading one layer blob as a tar stream, once.
 *
 * A producer thread reads the blob, hashes the compressed bytes,
 * decompresses (gzip with ISA-L when built with it, else zlib; zstd with
 * libzstd) and hashes the uncompressed stream; the caller's thread
 * parses tar with libarchive from those buffers and hashes and stores
 * file contents. The two overlap on two cores. libarchive never sees a
 * compressed byte: it only parses tar, so the uncompressed digest (the
 * diff_id) is computed on exactly the bytes it parsed.
 */
#ifndef CFS_LAYER_H
#define CFS_LAYER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "convert/oci.h"

struct archive;
struct archive_entry;
struct cfs_layer_stream;

struct cfs_layer_digests {
	uint8_t compressed[32]; /* sha256 of the blob as stored */
	uint64_t compressed_size;
	uint8_t uncompressed[32]; /* sha256 of the tar stream */
	uint64_t uncompressed_size;
};

/* Start reading @blob. @what names the layer in messages. */
int cfs_layer_open(struct cfs_layer_stream **out, const struct cfs_blob *blob,
		   enum cfs_layer_compression compression, const char *what);
/*
 * cfs_layer_open() in two steps, so that a layer's reading can start
 * before the layers under it are applied: cfs_layer_start() starts the
 * threads and returns at once (@ahead: with room for 32 MiB of output
 * instead of 8, to run further ahead), cfs_layer_begin() waits for the
 * first output and opens the tar reader. Its errors are the ones
 * cfs_layer_open() reports; nothing else may be called before it but
 * cfs_layer_produced() and cfs_layer_close().
 */
int cfs_layer_start(struct cfs_layer_stream **out, const struct cfs_blob *blob,
		    enum cfs_layer_compression compression, const char *what,
		    bool ahead);
int cfs_layer_begin(struct cfs_layer_stream *s);
/* Has the producer read and decompressed the whole blob, without an
 * error? Then a core is free for the next layer. */
bool cfs_layer_produced(struct cfs_layer_stream *s);
/* The libarchive reader over the tar stream (owned by the stream), or
 * NULL when the layer is empty (zero bytes once decompressed). Read
 * entries with cfs_layer_next_entry(), their data with libarchive. */
struct archive *cfs_layer_archive(struct cfs_layer_stream *s);
/*
 * The next tar entry: 1 with *@entry set (owned by the archive, valid
 * until the next call) and *@offset the tar offset of its first header
 * (a PAX or GNU extension header where it has one); 0 at the end of the
 * archive; or -errno with a message naming the layer and the tar offset
 * of the header that could not be read. What the caller did not read of
 * the previous entry's data is skipped first. An entry is refused when a
 * PAX path, linkpath or GNU.sparse.name record of its headers holds a
 * NUL byte: libarchive would cut the name there, where Go's archive/tar
 * (containerd) refuses the header; and when its typeflag is none a layer
 * holds (anything but '0'-'7', '\0' and 'S'), or a GNU volume header
 * comes before it: libarchive would make a regular file of it.
 */
int cfs_layer_next_entry(struct cfs_layer_stream *s,
			 struct archive_entry **entry, int64_t *offset);
/* After libarchive reached the end of the archive: read what is left of
 * the stream and return the digests. Errors of the producer (corrupt or
 * truncated compressed data) come back here, or from libarchive reads,
 * in which case cfs_layer_error() has the producer's message. */
int cfs_layer_finish(struct cfs_layer_stream *s, struct cfs_layer_digests *d);
/*
 * Instead of cfs_layer_begin() and the tar reader, for a caller that
 * parses the tar itself: the next bytes of the decompressed stream (their
 * count, with *@data valid until the next call), 0 at its end, or -errno
 * with the producer's message. cfs_layer_finish() gives the digests
 * after the end.
 */
ssize_t cfs_layer_read_raw(struct cfs_layer_stream *s, const void **data);
/* Compressed bytes read so far (safe to call from the consumer). */
uint64_t cfs_layer_bytes_read(struct cfs_layer_stream *s);
/* The producer's error message if it failed, else NULL. */
const char *cfs_layer_error(struct cfs_layer_stream *s);
/* Stop the producer and free everything. Accepts NULL. */
void cfs_layer_close(struct cfs_layer_stream *s);

/*
 * The gzip decoder of the layers opened after the call: ISA-L's when the
 * build found it (CFS_HAVE_ISAL, the default then), else zlib's. Both
 * take the same streams and fail with the same messages; the unit tests
 * run every gzip case through each. -ENOTSUP for ISA-L in a build
 * without it.
 */
enum cfs_gzip_decoder {
	CFS_GZIP_ZLIB,
	CFS_GZIP_ISAL,
};
int cfs_layer_set_gzip_decoder(enum cfs_gzip_decoder d);

/* "sha256:<hex>" parsing helper: -EINVAL unless exactly that form. */
int cfs_parse_sha256(const char *s, uint8_t digest[32]);

#endif
