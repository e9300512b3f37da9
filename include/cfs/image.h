/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * libcfs: the in-memory file tree, the composefs (EROFS) image writer and
 * reader, the composefs-dump(5) text format, and fs-verity digests.
 *
 * The tree is made of inodes. A directory holds named entries that point to
 * inodes; a non-directory inode may be named by several entries (hardlinks),
 * and its link count is the number of entries that name it. A directory is
 * named by exactly one entry (or none, for a root).
 */
#ifndef CFS_IMAGE_H
#define CFS_IMAGE_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Longest file name, in bytes (EROFS and Linux). */
#define CFS_NAME_MAX 255
/** Longest symlink target or payload, in bytes, without the NUL. */
#define CFS_TARGET_MAX 4095
/** Largest inline content a tree may hold (composefs' limit). */
#define CFS_INLINE_MAX 5000
/** Files up to this size are inlined by the sources of this library
 * (mkcomposefs' default); larger ones become external objects. */
#define CFS_INLINE_DEFAULT 64
/** Largest xattr value (EROFS stores the size in 16 bits). */
#define CFS_XATTR_VALUE_MAX 65535
/** Largest sum of xattr entry sizes of one inode (composefs' limit). */
#define CFS_XATTRS_INODE_MAX 65535

/** composefs image format versions this library writes and reads. */
#define CFS_FORMAT_MIN 0
#define CFS_FORMAT_MAX 1

typedef struct cfs_inode cfs_inode;

/* ---- Inodes ---------------------------------------------------------- */

/**
 * Create an inode of the given mode (file type and permission bits).
 * Valid types: S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO,
 * S_IFSOCK. The new inode has uid 0, gid 0, mtime 0 and one reference.
 */
CFS_EXPORT int cfs_inode_new(cfs_inode **out, uint32_t mode);
/** Take one more reference; returns @inode. */
CFS_EXPORT cfs_inode *cfs_inode_ref(cfs_inode *inode);
/** Drop one reference; the last one frees the inode (and a directory's
 * entries). Accepts NULL. */
CFS_EXPORT void cfs_inode_unref(cfs_inode *inode);

/** File type and permission bits. Getters never fail; a tree may be read
 * from several threads at once, but not while anyone changes it. */
CFS_EXPORT uint32_t cfs_inode_mode(const cfs_inode *inode);
/** File type bits of the mode (S_IFMT part). */
CFS_EXPORT uint32_t cfs_inode_type(const cfs_inode *inode);
/** Change permission bits; changing the file type is -EINVAL. */
CFS_EXPORT int cfs_inode_set_mode(cfs_inode *inode, uint32_t mode);
/** Owner and group ids, as stored (any 32-bit value). */
CFS_EXPORT uint32_t cfs_inode_uid(const cfs_inode *inode);
CFS_EXPORT uint32_t cfs_inode_gid(const cfs_inode *inode);
/** Set both ids; cannot fail. */
CFS_EXPORT void cfs_inode_set_owner(cfs_inode *inode, uint32_t uid,
				    uint32_t gid);
/** The mtime into *@sec and *@nsec (both required). */
CFS_EXPORT void cfs_inode_mtime(const cfs_inode *inode, int64_t *sec,
				uint32_t *nsec);
/** @nsec must be below 1e9 (-EINVAL otherwise). */
CFS_EXPORT int cfs_inode_set_mtime(cfs_inode *inode, int64_t sec,
				   uint32_t nsec);
/** Device number (glibc dev_t encoding) of a device node. */
CFS_EXPORT uint64_t cfs_inode_rdev(const cfs_inode *inode);
/** -EINVAL on anything but a character or block device, -EOVERFLOW when
 * the number does not fit composefs' 32-bit encoding. */
CFS_EXPORT int cfs_inode_set_rdev(cfs_inode *inode, uint64_t rdev);
/** Size: content size of a regular file, target length of a symlink,
 * 0 for others (directories are sized by the writer). */
CFS_EXPORT uint64_t cfs_inode_size(const cfs_inode *inode);
/** Set the size of a regular file whose content is external. */
CFS_EXPORT int cfs_inode_set_size(cfs_inode *inode, uint64_t size);
/** Link count: entries naming the inode, or 2 + subdirectories for a
 * directory. */
CFS_EXPORT uint32_t cfs_inode_nlink(const cfs_inode *inode);

/** Symlink target (1..CFS_TARGET_MAX bytes, no NUL). */
CFS_EXPORT int cfs_inode_set_target(cfs_inode *inode, const char *target);
/** The symlink's target (borrowed, valid until changed), or NULL. */
CFS_EXPORT const char *cfs_inode_target(const cfs_inode *inode);

/** Inline content of a regular file (up to CFS_INLINE_MAX bytes); sets the
 * size and drops any digest and payload. */
CFS_EXPORT int cfs_inode_set_content(cfs_inode *inode, const void *data,
				     size_t len);
/** Inline content, or NULL when the content is external or empty. */
CFS_EXPORT const void *cfs_inode_content(const cfs_inode *inode);
/** fs-verity digest of the external content of a regular file. */
CFS_EXPORT int cfs_inode_set_digest(cfs_inode *inode,
				    const uint8_t digest[CFS_DIGEST_SIZE]);
/** The digest, or NULL if none. */
CFS_EXPORT const uint8_t *cfs_inode_digest(const cfs_inode *inode);
/** Payload: the path of the backing file relative to the object directory
 * (becomes trusted.overlay.redirect); NULL to unset. */
CFS_EXPORT int cfs_inode_set_payload(cfs_inode *inode, const char *payload);
/** The payload (borrowed, valid until changed), or NULL if none. */
CFS_EXPORT const char *cfs_inode_payload(const cfs_inode *inode);
/** External content stored as an object: sets the digest and the payload
 * "XX/<62 hex>". */
CFS_EXPORT int cfs_inode_set_object(cfs_inode *inode,
				    const uint8_t digest[CFS_DIGEST_SIZE]);

/** Set (or replace) an xattr. Names are "namespace.rest", 1..255 bytes
 * after the EROFS prefix; values up to CFS_XATTR_VALUE_MAX bytes. */
CFS_EXPORT int cfs_inode_set_xattr(cfs_inode *inode, const char *name,
				   const void *value, size_t len);
/** -ENODATA when absent. */
CFS_EXPORT int cfs_inode_remove_xattr(cfs_inode *inode, const char *name);
/** Number of xattrs, for cfs_inode_xattr_at(). */
CFS_EXPORT size_t cfs_inode_xattr_count(const cfs_inode *inode);
/** The i-th xattr in strcmp order of names. */
CFS_EXPORT int cfs_inode_xattr_at(const cfs_inode *inode, size_t i,
				  const char **name, const void **value,
				  size_t *len);
/** Value of an xattr or NULL. */
CFS_EXPORT const void *cfs_inode_xattr(const cfs_inode *inode, const char *name,
				       size_t *len);

/* ---- Directories ----------------------------------------------------- */

/**
 * Add entry @name in directory @dir pointing to @child (takes a new
 * reference). Errors: -ENOTDIR, -EINVAL (empty name, ".", "..", '/'),
 * -ENAMETOOLONG, -EEXIST, -EMLINK (a directory already named elsewhere),
 * -ELOOP (would make a directory its own ancestor).
 */
CFS_EXPORT int cfs_dir_link(cfs_inode *dir, const char *name, cfs_inode *child);
/** Remove entry @name; -ENOENT if absent. */
CFS_EXPORT int cfs_dir_unlink(cfs_inode *dir, const char *name);
/** Borrowed pointer to the inode named @name, or NULL. */
CFS_EXPORT cfs_inode *cfs_dir_lookup(const cfs_inode *dir, const char *name);
/** Number of entries of @dir (0 for a non-directory). */
CFS_EXPORT size_t cfs_dir_count(const cfs_inode *dir);
/** The i-th entry in strcmp order of names; both out pointers borrow. */
CFS_EXPORT int cfs_dir_entry_at(cfs_inode *dir, size_t i, const char **name,
				cfs_inode **child);
/** Resolve an absolute or relative path of entries below @root (no
 * symlinks followed). Borrowed result or NULL. */
CFS_EXPORT cfs_inode *cfs_tree_lookup(cfs_inode *root, const char *path);

/**
 * Make the tree below @root the canonical tree of the composefs OCI
 * sealing spec, whose image an "erofs.v1" digest names (composefs-rs
 * design.rs; docs/formats.md): every mtime in whole seconds; every
 * xattr dropped but security.capability; the root's owner, mode, mtime
 * and xattrs copied from /usr; /run emptied and given /usr's mtime.
 * Write it with format version CFS_CANONICAL_FORMAT. -ENOENT when there
 * is no /usr directory and -EINVAL when /run is not a directory (the
 * canonical tree is not defined), with a message saying so.
 */
CFS_EXPORT int cfs_tree_canonicalize(cfs_inode *root);

/** The composefs format version of canonical images (mkcomposefs
 * --min-version=1: the header says 1 even without whiteouts). */
#define CFS_CANONICAL_FORMAT 1

/* ---- composefs image writer ------------------------------------------ */

/** Writes @len bytes; returns 0 or -errno. */
typedef int (*cfs_write_fn)(void *opaque, const void *buf, size_t len);

typedef struct cfs_write_options {
	unsigned int version; /**< CFS_WRITE_OPTIONS_VERSION */
	unsigned int flags; /**< none defined yet; must be 0 */
	/** Lowest format version to write; raised to max_format only when
	 * the tree needs it (it contains an overlay whiteout). */
	unsigned int min_format;
	unsigned int max_format;
} cfs_write_options;

#define CFS_WRITE_OPTIONS_VERSION 1
#define CFS_WRITE_OPTIONS_INIT                                                 \
	{                                                                      \
		CFS_WRITE_OPTIONS_VERSION, 0, CFS_FORMAT_MIN, CFS_FORMAT_MAX   \
	}
/** The write options of a canonical tree (cfs_tree_canonicalize()). */
#define CFS_WRITE_OPTIONS_CANONICAL                                            \
	{                                                                      \
		CFS_WRITE_OPTIONS_VERSION, 0, CFS_CANONICAL_FORMAT,            \
			CFS_CANONICAL_FORMAT                                   \
	}

/**
 * Serialise the tree below @root as a composefs image (composefs format
 * version 0 or 1, the bytes mkcomposefs writes for the same tree). @opts
 * may be NULL for defaults. If @digest_out is not NULL it receives the
 * image's fs-verity digest (the composefs image id).
 */
CFS_EXPORT int cfs_image_write(cfs_inode *root, const cfs_write_options *opts,
			       cfs_write_fn write, void *opaque,
			       uint8_t digest_out[CFS_DIGEST_SIZE]);

/** The fs-verity digest of the image cfs_image_write() would write for
 * @root with @opts, without keeping the bytes. */
CFS_EXPORT int cfs_image_digest(cfs_inode *root, const cfs_write_options *opts,
				uint8_t digest_out[CFS_DIGEST_SIZE]);
/** Same, writing to a file descriptor. */
CFS_EXPORT int cfs_image_write_fd(cfs_inode *root,
				  const cfs_write_options *opts, int fd,
				  uint8_t digest_out[CFS_DIGEST_SIZE]);
/**
 * Same, to the file @path, atomically: a temporary file beside it,
 * fsync'ed, renamed over @path (which must be a regular file if it
 * exists); the image's size in *@image_size when it is not NULL.
 */
CFS_EXPORT int cfs_image_write_file(cfs_inode *root,
				    const cfs_write_options *opts,
				    const char *path,
				    uint8_t digest_out[CFS_DIGEST_SIZE],
				    uint64_t *image_size);

/* ---- composefs image reader ------------------------------------------ */

/**
 * Parse a composefs image back into a tree. The bytes are untrusted: any
 * inconsistency is -EINVAL (or -ENOTSUP for an unknown version) with a
 * message naming the byte offset. Overlay xattrs are turned back into
 * digests, payloads and whiteouts, as they were in the source tree.
 * @format_out (nullable) receives the composefs format version.
 */
CFS_EXPORT int cfs_image_read(cfs_inode **root_out, const void *data,
			      size_t len, unsigned int *format_out);
/** Same, from a file (read with mmap). */
CFS_EXPORT int cfs_image_read_fd(cfs_inode **root_out, int fd,
				 unsigned int *format_out);

/* ---- composefs-dump(5) ----------------------------------------------- */

/** Write the tree as composefs-dump(5) text: depth first, entries in
 * strcmp order, xattrs sorted by name, later names of a hardlinked inode
 * as "@" lines. */
CFS_EXPORT int cfs_dump_write(cfs_inode *root, FILE *out);
/** Parse composefs-dump(5) text. Errors name the line number. */
CFS_EXPORT int cfs_dump_read(cfs_inode **root_out, FILE *in);

/* ---- fs-verity ------------------------------------------------------- */

/** Streaming fs-verity SHA-256 digest, 4096-byte blocks, no salt: the
 * value `fsverity digest` prints and FS_IOC_MEASURE_VERITY returns. */
typedef struct cfs_verity cfs_verity;

/** A new context (free with cfs_verity_free()); -ENOMEM, or -ENOTSUP when
 * OpenSSL has no SHA-256. One context serves one thread at a time. */
CFS_EXPORT int cfs_verity_new(cfs_verity **out);
/** Hash @len more bytes. After a failure every later call fails too,
 * until cfs_verity_reset(). */
CFS_EXPORT int cfs_verity_update(cfs_verity *v, const void *data, size_t len);
/** Add @len zero bytes (a hole of a sparse file), as cfs_verity_update()
 * of that many zeros would, in O(log @len) hashes. */
CFS_EXPORT int cfs_verity_update_zeros(cfs_verity *v, uint64_t len);
/** Finish and write the digest; the context may then be reset and reused. */
CFS_EXPORT int cfs_verity_final(cfs_verity *v, uint8_t digest[CFS_DIGEST_SIZE]);
/** Start over: as a new context, errors forgotten. */
CFS_EXPORT void cfs_verity_reset(cfs_verity *v);
/** Free the context; accepts NULL. */
CFS_EXPORT void cfs_verity_free(cfs_verity *v);
/** Digest of a whole buffer / of a file read from its current offset (the
 * holes of a sparse regular file are hashed without being read). */
CFS_EXPORT int cfs_verity_digest_buffer(const void *data, size_t len,
					uint8_t digest[CFS_DIGEST_SIZE]);
/** The same of @fd from its current offset to its end; -errno (with a
 * message) from reading it. */
CFS_EXPORT int cfs_verity_digest_fd(int fd, uint8_t digest[CFS_DIGEST_SIZE]);

/** 64 lower-case hex characters and a NUL into @hex. */
CFS_EXPORT void cfs_digest_to_hex(const uint8_t digest[CFS_DIGEST_SIZE],
				  char hex[CFS_DIGEST_HEX_SIZE + 1]);
/** Parse exactly 64 hex characters; -EINVAL otherwise. */
CFS_EXPORT int cfs_digest_from_hex(uint8_t digest[CFS_DIGEST_SIZE],
				   const char *hex);
/** The object path of a digest, "XX/<62 hex>" (66 bytes with the NUL). */
CFS_EXPORT void cfs_digest_to_object_path(const uint8_t digest[CFS_DIGEST_SIZE],
					  char path[CFS_DIGEST_HEX_SIZE + 2]);

#ifdef __cplusplus
}
#endif

#endif
