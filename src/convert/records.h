/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Layer records: what a layer did to the tree, kept so that the next
 * image with the same layer (the same diff_id) is built without reading
 * the layer's blob (docs/store.md, "Layer records").
 *
 * A record is the layer's entries in tar order, each as the applier got
 * it (struct cfs_layer_entry: path, type and mode, owner, mtime, device,
 * link target, xattrs) with its content: up to CFS_INLINE_DEFAULT bytes
 * inline, else the size and the fs-verity digest of the object that
 * holds it. Replaying the entries through the same applier makes the
 * same tree, byte for byte, by construction: whiteouts in any order, a
 * hardlink into a lower layer, anything the applier accepts.
 *
 * On disk (all integers little-endian):
 *   "CFSLREC2"                     magic and format version
 *   u8[32]  diff_id                SHA-256 of the layer's tar
 *   u64     tar bytes, u64 entries, u64 xattrs dropped (user.* of
 *           symlinks and devices, left out before the applier)
 *   entries:
 *     u32 flags (RECORD_*), u32 mode, u32 uid, u32 gid,
 *     i64 mtime_sec, u32 mtime_nsec, u64 rdev,
 *     u32 len + path, u32 len + link (RECORD_LINK),
 *     u32 n_xattrs, each u32 len + name, u32 len + value,
 *     u64 size, then size bytes (RECORD_INLINE) or a u8[32] object
 *     digest (RECORD_OBJECT)
 *   pairs: u8[32] SHA-256 of an object's content, u8[32] the object's
 *           digest; sorted, each once; objects the entries name
 *   u64     number of pairs
 *   u8[32]  SHA-256 of everything before it
 * Format 1 ("CFSLREC1") is the same without the pairs and their count,
 * and stays readable. The pairs are the store's map from content SHA-256
 * to object for partial pulls (docs/store.md, "Content by SHA-256"): a
 * record keeps those of the objects the import that wrote it made.
 * The file holds that as one zstd frame that states its content size
 * (a third of the bytes: paths repeat). A file without the frame's
 * magic is read as it is: earlier versions wrote records uncompressed.
 */
#ifndef CFS_RECORDS_H
#define CFS_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cfs/image.h>

#include "convert/apply.h"

#define CFS_RECORD_MAGIC "CFSLREC2"
#define CFS_RECORD_MAGIC_V1 "CFSLREC1"
/* A record is read whole into memory: 10,000 entries take about 1 MiB,
 * so this allows layers of millions of entries and no more. */
#define CFS_RECORD_MAX (1024u * 1024 * 1024)

/* Where a conversion finds records and leaves new ones. */
struct cfs_records {
	int read_fd; /* directory of records to replay, or -1 */
	int write_fd; /* directory for records of layers read, or -1 */
	const char *write_path; /* write_fd's path, for messages */
	/* look up every object a record names before using it (a store
	 * whose repair was interrupted); else the store vouches for them */
	bool check_objects;
	/* filled by the conversion, one per layer: */
	bool *reused; /* the layer came from its record */
	bool *written; /* a record of it was written to write_fd */
	size_t n;
};

/* Free what a conversion filled in (not the directories). */
void cfs_records_clear(struct cfs_records *records);

struct cfs_record_builder;

int cfs_record_builder_new(struct cfs_record_builder **out);
void cfs_record_builder_free(struct cfs_record_builder *b);
/* Append one entry; @file is the regular file it made (for its content:
 * set by then), or NULL. */
int cfs_record_add(struct cfs_record_builder *b,
		   const struct cfs_layer_entry *e, const cfs_inode *file);
/* Write the record of a layer whose tar had @diff_id and @tar_bytes as
 * @dirfd/<64 hex of diff_id>, replacing nothing (-EEXIST). Each object
 * the entries name for which @sha256_of() (if not NULL) gives the
 * content's SHA-256 is paired with it. */
int cfs_record_write(struct cfs_record_builder *b, int dirfd,
		     const uint8_t diff_id[32], uint64_t tar_bytes,
		     uint64_t xattrs_dropped,
		     bool (*sha256_of)(void *opaque, const uint8_t *object,
				       uint8_t *sha256),
		     void *opaque);

/* A record read into memory and checked (magic, trailer, diff_id). */
struct cfs_record {
	uint8_t *data;
	size_t len;
	size_t pos; /* next entry */
	uint64_t tar_bytes, entries, xattrs_dropped, done;
	/* the current entry's xattrs and strings (freed at the next) */
	struct cfs_entry_xattr *xattrs;
	char *path, *link, **names;
	size_t n_names;
	/* format 2: n_pairs of u8[32] SHA-256, u8[32] object, sorted */
	const uint8_t *pairs;
	size_t n_pairs;
};

/* Is there a record of @diff_id in @dirfd (not whether it is usable)? */
bool cfs_record_exists(int dirfd, const uint8_t diff_id[32]);

/*
 * Read and check @dirfd/<hex of diff_id>: -ENOENT when there is none,
 * -EBADMSG (with a message naming @what) when it is damaged.
 */
int cfs_record_open(struct cfs_record *rec, int dirfd,
		    const uint8_t diff_id[32], const char *what);
/* The same for a record in memory: takes ownership of @data (malloc'ed;
 * freed on failure too). */
int cfs_record_load(struct cfs_record *rec, uint8_t *data, size_t len,
		    const uint8_t diff_id[32], const char *what);
void cfs_record_close(struct cfs_record *rec);

/* The content of an entry: inline bytes, or an object. */
struct cfs_record_content {
	uint64_t size;
	const void *data; /* inline content, or NULL */
	const uint8_t *digest; /* object, or NULL */
};

/* Give @file, a regular file the entry made, its recorded content. */
int cfs_record_content_set(cfs_inode *file,
			   const struct cfs_record_content *content);

/* The next entry (pointers valid until the next call): 1, or 0 at the
 * end, or -EBADMSG. */
int cfs_record_next(struct cfs_record *rec, struct cfs_layer_entry *e,
		    struct cfs_record_content *content, const char *what);

#endif
