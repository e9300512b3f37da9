/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * zstd:chunked layers (containers/storage, pkg/chunked): a tar+zstd blob
 * that any zstd reader decompresses into the layer's tar, but written so
 * that each regular file's content is zstd frames of its own, with a
 * table of contents (the "manifest", CRFS's JSON) and, since
 * containers/storage 1.45, the tar-split of the layer in skippable
 * frames at the end. The layer descriptor's annotations say where:
 *
 *   <prefix>manifest-position   "offset:length:uncompressed:1"
 *   <prefix>manifest-checksum   "sha256:<hex>" of the compressed TOC
 *   <prefix>tarsplit-position   "offset:length:uncompressed" (newer)
 *   <prefix>tarsplit-checksum   "sha256:<hex>" of it (some newer ones;
 *                               skopeo 1.18 puts it in the TOC instead,
 *                               as "tarSplitDigest")
 *
 * with <prefix> "io.github.containers.zstd-chunked." (newer) or
 * "io.containers.zstd-chunked." (skopeo 1.9, podman 4). Offsets are of
 * the zstd frame inside the skippable frame, in the compressed blob.
 *
 * A TOC entry of a regular file names the SHA-256 of its content and the
 * range [offset, endOffset) of the blob whose frames decompress to it:
 * what a store lacks can be fetched by range. The tar-split lists the
 * tar stream's own bytes (headers, padding) between references to file
 * contents, so the exact tar, and with it the diff_id, can be rebuilt
 * from the files alone. docs/formats.md, "zstd:chunked", says what is
 * taken from where and what is checked.
 *
 * Everything here only parses and checks; it fetches nothing: the
 * caller reads the bytes (from a file, or by HTTP range requests).
 */
#ifndef CFS_CHUNKED_H
#define CFS_CHUNKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "convert/apply.h"

/* The compressed TOC and tar-split fetched at most: real ones are a few
 * MiB for 100,000 files. */
#define CFS_CHUNKED_PART_MAX (64u * 1024 * 1024)
/* Decompressed: about 300 bytes of JSON per entry of the TOC (which
 * cfs_json_parse() caps near 260,000 entries anyway), 800 per entry of
 * the tar-split (its tar headers in base64). */
#define CFS_CHUNKED_TOC_MAX (128u * 1024 * 1024)
#define CFS_CHUNKED_TARSPLIT_MAX (512u * 1024 * 1024)

/* One of the metadata parts at the end of the blob. */
struct cfs_chunked_part {
	bool present;
	uint64_t offset, length; /* of the zstd frame in the blob */
	uint64_t size; /* decompressed */
	uint8_t sha256[32]; /* of the length bytes at offset */
	/* sha256 is known: from the annotation, or for the tar-split of
	 * skopeo 1.18, which annotates none, from the TOC
	 * (cfs_chunked_bind_tarsplit()) */
	bool checksum;
};

struct cfs_chunked {
	struct cfs_chunked_part toc, tarsplit;
};

/*
 * Find the zstd:chunked annotations in @annotations (a descriptor's
 * "annotations" object, or NULL) of a blob of @blob_size bytes: 0 when
 * there are none (not a zstd:chunked layer), 1 with @c filled, or
 * -EINVAL with a message naming @what and the annotation when they are
 * there but malformed, out of the blob, or over the limits above.
 */
int cfs_chunked_from_annotations(json_object *annotations, uint64_t blob_size,
				 struct cfs_chunked *c, const char *what);

/*
 * Check the @length bytes @data (read at @p->offset) against @p's
 * checksum and decompress them into exactly @p->size bytes, returned in
 * *@out (malloc'ed, with a NUL after them) for cfs_toc_parse() or
 * cfs_tarsplit_rebuild(). -EBADMSG with a message naming @what and
 * @name ("TOC", "tar-split") when they do not match.
 */
int cfs_chunked_part_decode(const struct cfs_chunked_part *p, const void *data,
			    size_t length, char **out, const char *what,
			    const char *name);

enum cfs_toc_type {
	CFS_TOC_REG,
	CFS_TOC_DIR,
	CFS_TOC_SYMLINK,
	CFS_TOC_HARDLINK,
	CFS_TOC_CHAR,
	CFS_TOC_BLOCK,
	CFS_TOC_FIFO,
};

struct cfs_toc_entry {
	enum cfs_toc_type type;
	char *name; /* as in the tar header ("etc/", "./x" and "x" alike) */
	char *link; /* linkName: symlink target, hardlink target, or NULL */
	uint32_t mode; /* permission bits and setuid/setgid/sticky */
	uint32_t uid, gid;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint32_t dev_major, dev_minor;
	struct cfs_entry_xattr *xattrs; /* values decoded from base64 */
	size_t n_xattrs;
	/* regular files */
	uint64_t size;
	uint8_t sha256[32]; /* of the content: set when size > 0 */
	uint64_t offset, end; /* its frames in the blob: when size > 0 */
	/* CFS_TOC_FSVERITY, when the TOC has it (size > 0): a claim that
	 * finds an object, which the content's SHA-256 still checks */
	bool has_verity;
	uint8_t verity[32];
};

struct cfs_toc {
	struct cfs_toc_entry *entries; /* in the TOC's order */
	size_t n;
	/* the regular files of size > 0, in the TOC's order: a name may
	 * come more than once (a layer may replace its own file) */
	const struct cfs_toc_entry **files;
	size_t n_files;
	/* "tarSplitDigest": SHA-256 of the compressed tar-split */
	bool has_tarsplit_sha256;
	uint8_t tarsplit_sha256[32];
};

/*
 * Parse the TOC @json (NUL-terminated, from cfs_chunked_part_decode())
 * of a blob whose file contents end before @data_end (the TOC's own
 * offset). Chunk entries are checked (they follow their file, inside its
 * range, in order) and folded into it: a file is fetched whole. Every
 * regular file of content must name its SHA-256 and a range in
 * [0, @data_end); names must be relative without "..". -EBADMSG with a
 * message naming @what and the entry otherwise; -E2BIG beyond
 * CFS_IMAGE_ENTRIES_MAX entries or cfs_json_parse()'s limits.
 */
int cfs_toc_parse(struct cfs_toc *toc, const char *json, uint64_t data_end,
		  const char *what);
void cfs_toc_free(struct cfs_toc *toc);

/* A TOC entry's name @name of @len bytes is one cfs_toc_parse() takes:
 * relative (a leading "/" or "./" is how some tars spell it), no ".."
 * component, no NUL (json-c keeps them), shorter than
 * CFS_LAYER_PATH_MAX. */
bool cfs_toc_name_ok(const char *name, size_t len);

/* Is @s valid UTF-8 as Go takes it (no overlong forms, surrogates or
 * code points past U+10FFFF)? A name that is not, Go's JSON changes. */
bool cfs_utf8_valid(const char *s);

/*
 * The tar-split's checksum from the TOC that names it (the TOC checked
 * against its own annotation first): taken when the annotations have
 * none, compared when they have one (-EBADMSG when they differ). A
 * tar-split with no checksum from either cannot be decoded.
 */
int cfs_chunked_bind_tarsplit(struct cfs_chunked *c, const struct cfs_toc *toc,
			      const char *what);

/* @e as the applier's entry (@e's strings and xattrs borrowed). */
void cfs_toc_entry_to_layer(const struct cfs_toc_entry *e,
			    struct cfs_layer_entry *out);

/* A range of the blob to fetch. */
struct cfs_chunked_range {
	uint64_t offset, end;
};

/*
 * The ranges of the blob that hold the files @have() says the store
 * lacks (called once per file: true when its content is there), sorted, with ranges less than @gap bytes apart merged (a gap
 * costs less than another range in a request). *@out is malloc'ed (NULL
 * when nothing is missing); *@bytes: what they add up to.
 */
int cfs_chunked_plan(const struct cfs_toc *toc,
		     bool (*have)(void *opaque, const struct cfs_toc_entry *e),
		     void *opaque, uint64_t gap, struct cfs_chunked_range **out,
		     size_t *n_out, uint64_t *bytes);

/*
 * Rebuild the layer's tar from the tar-split @tarsplit (JSON lines,
 * NUL-terminated) and @toc: its own bytes go to @write() as they are,
 * and for each file of content @file() is called to write the content
 * of that TOC entry (through @write(), exactly e->size bytes: the
 * caller takes it from the store or the fetched frames and checks it
 * against e->sha256). The tar-split's files must be the TOC's, in the
 * same order, of the same sizes: -EBADMSG naming @what and the line
 * otherwise, so that the TOC describes the tar that is rebuilt.
 */
int cfs_tarsplit_rebuild(const char *tarsplit, const struct cfs_toc *toc,
			 int (*write)(void *opaque, const void *buf,
				      size_t len),
			 int (*file)(void *opaque,
				     const struct cfs_toc_entry *e),
			 void *opaque, const char *what);

/*
 * Writing: the TOC member of a regular file with content that names the
 * fs-verity digest of its content (SHA-256, 4 KiB blocks, no salt: the
 * name of its composefs object), "sha256:<hex>". Not containers/storage's
 * (its issue 2209 asks for one); its reader ignores members it does not
 * know. docs/formats.md.
 */
#define CFS_TOC_FSVERITY "fsverityDigest"

/* What cfs_chunked_write() wrote. */
struct cfs_chunked_written {
	uint8_t digest[32]; /* SHA-256 of the blob */
	uint64_t size; /* of the blob */
	uint64_t tar_size; /* of the tar read */
	uint64_t n_files; /* files with frames of their own */
	/* the layer descriptor's annotations, as containers/storage
	 * writes them: <prefix>manifest-position, manifest-checksum,
	 * tarsplit-position, with the "io.github.containers" prefix */
	char toc_position[80];
	char toc_checksum[80];
	char tarsplit_position[80];
};

/* How cfs_chunked_write() writes: the blob depends on level and
 * frame_max, never on threads. */
#define CFS_CHUNKED_FRAME_MAX (1024 * 1024)
struct cfs_chunked_params {
	int level; /* zstd's */
	unsigned int threads; /* that compress frames; 0: one per core */
	size_t frame_max; /* of the tar in a frame; 0: CFS_CHUNKED_FRAME_MAX */
};

/* Into a layer descriptor's annotations @ann, the annotations of @w
 * (with the io.github.containers.zstd-chunked. prefix), instead of any
 * zstd:chunked annotations of either prefix it had. 0 or -ENOMEM. */
int cfs_chunked_annotate(json_object *ann, const struct cfs_chunked_written *w);

/* The next bytes of a tar: their count with *@buf set (valid until the
 * next call), 0 at its end, or -errno with a message. */
typedef ssize_t (*cfs_chunked_read_fn)(void *opaque, const void **buf);

/*
 * Write the tar that @read() gives as a zstd:chunked blob to @fd as
 * @params say: the tar byte for byte in zstd frames (at most frame_max
 * bytes of it each), each regular file's content in frames of its own, then the TOC (with the fs-verity
 * digest of every file, CFS_TOC_FSVERITY), the tar-split and the footer
 * in skippable frames. @what names the layer in messages: -EBADMSG for
 * a tar that is not one, -EOPNOTSUPP (naming the entry and its tar
 * offset) for what the format cannot describe: global PAX headers,
 * types other than files, links, directories, devices and FIFOs,
 * sparse files, names that are not UTF-8, a path twice.
 */
int cfs_chunked_write(cfs_chunked_read_fn read, void *opaque, int fd,
		      const struct cfs_chunked_params *params, const char *what,
		      struct cfs_chunked_written *out);

#endif
