/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * The content-addressed object directory: DIR/XX/<62 hex>, named by the
 * fs-verity SHA-256 digest of the content. An object appears atomically
 * (never half-written) and an existing one is never rewritten.
 */
#ifndef CFS_OBJECTS_H
#define CFS_OBJECTS_H

#include <stdbool.h>
#include <stdint.h>

#include <cfs/common.h>

struct cfs_objects;

struct cfs_objects_stats {
	uint64_t new_objects, reused_objects;
	uint64_t new_bytes, reused_bytes;
	/* syncfs calls of the flusher thread (early writeback) */
	uint64_t early_syncs;
};

/* Open (creating it if needed) the object directory @path. */
int cfs_objects_open(struct cfs_objects **out, const char *path);
void cfs_objects_free(struct cfs_objects *objs);
/* The counts of objects made and found so far (after a flush). */
const struct cfs_objects_stats *cfs_objects_stats(struct cfs_objects *objs);

/*
 * Also look objects up in the directory @path, which is never written:
 * an object found there counts as reused. New objects still go to the
 * directory given to cfs_objects_open() (the store stages an import's new
 * objects apart and moves them in only once the import succeeded).
 */
int cfs_objects_set_base(struct cfs_objects *objs, const char *path);

/*
 * A staging directory for the store: new objects are named there by
 * their 64 hex digits (no XX/), each made as an O_TMPFILE in @base's XX/
 * where the object will end up (else in the staging directory; @base is
 * never written): no 256 directories to make and remove per import, and
 * the inodes already spread. Objects in @base count as present, as with
 * cfs_objects_set_base().
 */
int cfs_objects_open_staged(struct cfs_objects **out, const char *path,
			    const char *base);

/*
 * Read the base's XX/ directories in the background, several at once,
 * so that the lookups and the object creation in them find them in
 * memory: with a cold page cache each costs a read from disk, one
 * after the other, about 0.15 s for a store of 5,000 objects. Only a
 * hint (nothing happens if threads cannot be made); cfs_objects_free()
 * waits for it.
 */
void cfs_objects_prefetch(struct cfs_objects *objs);

/* Does the object exist (here or in the base directory)? */
bool cfs_objects_has(struct cfs_objects *objs,
		     const uint8_t digest[CFS_DIGEST_SIZE]);

/*
 * Store the @size bytes of @fd (read from offset 0) whose digest is
 * already known as @digest, unless the object exists. The content is
 * hashed again while copying, through the caller's @buf of @buf_size
 * bytes; a mismatch (the file changed) is -EIO. @what names the source in
 * error messages. Safe to call from several threads at once.
 */
int cfs_objects_add_fd(struct cfs_objects *objs, int fd, uint64_t size,
		       const uint8_t digest[CFS_DIGEST_SIZE], const char *what,
		       uint8_t *buf, size_t buf_size);

/*
 * Streaming: content arrives once (from a tar stream) and its digest is
 * known only at the end. Up to CFS_OBJECT_MEM_MAX bytes are held in memory
 * so that an existing object costs no write at all; larger content spills
 * to an anonymous temporary file in the object directory.
 * With @objs NULL only the digest is computed.
 *
 * The holes of a sparse file are added with cfs_object_writer_write_zeros:
 * they cost a few hashes whatever their size, and in a spilled object they
 * stay holes (an object of 1 TiB with one data block takes one block of
 * disk); content that fits in memory is written out whole.
 */
#define CFS_OBJECT_MEM_MAX (64 * 1024 * 1024)

struct cfs_object_writer;

int cfs_object_writer_new(struct cfs_object_writer **out,
			  struct cfs_objects *objs);
void cfs_object_writer_free(struct cfs_object_writer *w);
/* Begin a new object (discarding any unfinished one). */
void cfs_object_writer_begin(struct cfs_object_writer *w);
int cfs_object_writer_write(struct cfs_object_writer *w, const void *data,
			    size_t len);
/* Append @len zero bytes: a hole. */
int cfs_object_writer_write_zeros(struct cfs_object_writer *w, uint64_t len);
/* Finish: compute the digest and store the object unless it exists. */
int cfs_object_writer_commit(struct cfs_object_writer *w,
			     uint8_t digest[CFS_DIGEST_SIZE]);

/*
 * Wait until every object handed over so far is written: those of
 * cfs_object_writer_commit() are written by a thread of the object
 * directory's while the caller goes on. 0, or the first write that failed
 * (its message).
 */
int cfs_objects_flush(struct cfs_objects *objs);

/* Flush, and make every object written so far durable (syncfs). */
int cfs_objects_sync(struct cfs_objects *objs);

/*
 * Partial pulls look file contents up by their SHA-256 (convert/chunked.h),
 * which layer records keep beside the objects they name
 * (convert/records.h). With this on, each object this directory makes
 * from a cfs_object_writer gets the SHA-256 of its content: one held in
 * memory hashed by the thread that writes it, off the conversion's
 * critical path; a larger one as it is spilled, unless it has holes.
 * An object found present gets none (who made it recorded it).
 */
struct cfs_sha256_pair {
	uint8_t sha256[CFS_DIGEST_SIZE];
	uint8_t object[CFS_DIGEST_SIZE];
};

void cfs_objects_keep_sha256(struct cfs_objects *objs);
/* After cfs_objects_flush(): the content SHA-256 of object @digest if
 * this directory made it and kept one. */
bool cfs_objects_sha256(struct cfs_objects *objs,
			const uint8_t digest[CFS_DIGEST_SIZE],
			uint8_t sha256[CFS_DIGEST_SIZE]);

#endif
