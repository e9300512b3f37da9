/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Helpers shared by the libFuzzer targets and their replay driver: a
 * per-process scratch directory, a small ustar writer, a growable byte
 * buffer that is also a cfs_write_fn, and the checks every target makes
 * on the library's contract (an error always carries a one-line message).
 *
 * A check that fails aborts: under libFuzzer that is a finding, under
 * the replay driver a failed test.
 */
#ifndef CFS_FUZZ_H
#define CFS_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cfs/image.h>

/* libFuzzer's entry point; the replay driver calls it for every file. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Abort with a message naming the check (a finding). */
__attribute__((noreturn, format(printf, 1, 2))) void fuzz_fail(const char *fmt,
							       ...);

/* After a library call that returned @r: an error must be a negative
 * errno with a non-empty, one-line message. @what names the call.
 * With CFS_FUZZ_VERBOSE set, every result is printed (seed debugging). */
void fuzz_check_error(int r, const char *what);

/* A scratch directory of this process ("/dev/shm/cfs-fuzz-NAME-PID", or
 * under $TMPDIR when /dev/shm is not writable), created on first use and
 * removed at exit. */
const char *fuzz_scratch_dir(const char *name);

/* Write @len bytes to @path (created or truncated); aborts on failure. */
void fuzz_write_file(const char *path, const void *data, size_t len);

/* A growable byte buffer. */
struct fuzz_buf {
	uint8_t *data;
	size_t len, cap;
};

void fuzz_buf_add(struct fuzz_buf *b, const void *data, size_t len);
void fuzz_buf_free(struct fuzz_buf *b);
/* cfs_write_fn appending to the struct fuzz_buf @opaque. */
int fuzz_buf_write(void *opaque, const void *data, size_t len);
/* cfs_write_fn that drops everything. */
int fuzz_discard_write(void *opaque, const void *data, size_t len);

/* Append a regular file member @name (< 100 bytes) to the ustar archive
 * being built in @b; fuzz_tar_end() adds the two zero blocks. */
void fuzz_tar_add(struct fuzz_buf *b, const char *name, const void *data,
		  size_t len);
void fuzz_tar_end(struct fuzz_buf *b);

/* "sha256:<64 hex>" of @data into @out (72 bytes with the NUL). */
void fuzz_sha256(const void *data, size_t len, char out[72]);

/*
 * Everything a composefs image can tell about a tree, checked: write
 * @root as an image into @img (may be NULL), read that image back (which
 * must work: the reader has to accept what the writer writes), write the
 * tree read back again and require the same bytes, and walk the tree
 * through the public getters. Returns the write's result (a tree the
 * writer refuses is not a finding by itself).
 */
int fuzz_image_roundtrip(cfs_inode *root, struct fuzz_buf *img);

#endif
