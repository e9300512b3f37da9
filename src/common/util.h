/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* Small internal helpers: I/O loops, atomic files, sizes. */
#ifndef CFS_UTIL_H
#define CFS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CFS_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define CFS_ROUND_UP(x, y) ((((x) + (y)-1) / (y)) * (y))
#define CFS_DIV_ROUND_UP(x, y) (((x) + (y)-1) / (y))
#define CFS_MIN(a, b) ((a) < (b) ? (a) : (b))
#define CFS_MAX(a, b) ((a) > (b) ? (a) : (b))

/* A growable byte buffer: zero-initialised it is empty; free buf. */
struct cfs_buf {
	char *buf;
	size_t len, cap;
};

/* Room for @more bytes past len (the capacity doubles); -ENOMEM. */
int cfs_buf_reserve(struct cfs_buf *b, size_t more);
/* Append @len bytes of @data; -ENOMEM. */
int cfs_buf_add(struct cfs_buf *b, const void *data, size_t len);

/* Value of a hex digit (either case), or -1. */
int cfs_hex_value(char c);

/*
 * Mark a directory whose subdirectories should spread over the file
 * system (FS_TOPDIR_FL, chattr +T): ext4's Orlov allocator then places
 * each new subdirectory, and so the inodes of the files made in it, in a
 * block group of its own, as it does for top-level directories. Object
 * directories want it: on an ext4 without a journal every new inode
 * rescans the recently freed inodes of its group, and one group holding
 * every object makes that quadratic. Best effort; silent where the file
 * system has no such flag.
 */
void cfs_dir_spread_subdirs(int dirfd);

/* Write all of @buf, retrying on short writes and EINTR. 0 or -errno. */
int cfs_write_all(int fd, const void *buf, size_t len);
/* Read until @len bytes or EOF; *got receives the count. 0 or -errno. */
int cfs_read_full(int fd, void *buf, size_t len, size_t *got);

/* A file created invisibly next to its final name and made visible with
 * one atomic step: O_TMPFILE + linkat where the filesystem has it, else a
 * hidden temporary name + rename. Never visible half-written. */
struct cfs_atomic_file {
	int dirfd; /* borrowed */
	int fd;
	char tmpname[64]; /* "" when O_TMPFILE is in use */
};

/* Open a new atomic file in directory @dirfd. */
int cfs_atomic_open(struct cfs_atomic_file *af, int dirfd, mode_t mode);
/* Give it @name. With @replace false an existing @name is kept and
 * -EEXIST returned (the temporary is discarded either way). With @replace
 * true an existing file is replaced. Closes the fd. */
int cfs_atomic_commit(struct cfs_atomic_file *af, const char *name,
		      bool replace);
/* Same, naming it in another directory of the same filesystem. */
int cfs_atomic_commit_to(struct cfs_atomic_file *af, int todir,
			 const char *name, bool replace);
/* Discard (safe to call after commit or on a zeroed struct with fd -1). */
void cfs_atomic_abort(struct cfs_atomic_file *af);

/* cfs_atomic_write(): replace an existing file of the name (else it is
 * kept: -EEXIST); fsync the file before it gets its name (else the
 * caller makes it durable, e.g. with one syncfs for many files). */
#define CFS_ATOMIC_REPLACE 0x1u
#define CFS_ATOMIC_SYNC 0x2u
/* The @len bytes at @data as @dirfd/@name, mode 0644, made visible in
 * one step (an atomic file); 0 or -errno, the message the caller's. */
int cfs_atomic_write(int dirfd, const char *name, const void *data, size_t len,
		     unsigned int flags);

/* The names in directory @dirfd but . and .., sorted by strcmp() so
 * that nothing depends on readdir order: *@n strings, which the caller
 * frees, each and the array. 0 or -errno (the message is the
 * caller's). */
int cfs_dir_names(int dirfd, char ***names, size_t *n);
/* qsort() order of an array of strings. */
int cfs_strp_cmp(const void *a, const void *b);

/* Result structs (include/cfs/common.h) start with the caller's version:
 * 0 if @res (may be NULL) has one from 1 to @current, else -EINVAL with
 * a message naming @what. */
int cfs_result_check(const void *res, unsigned int current, const char *what);
/* Zero the @size bytes of result struct @res but its version. */
void cfs_result_zero(void *res, size_t size);

/* Split @path into a directory fd (opened O_RDONLY|O_DIRECTORY, so it can
 * be fsync'ed) and a
 * pointer to the last component. */
int cfs_open_parent(const char *path, int *dirfd_out, const char **base_out);

#endif
