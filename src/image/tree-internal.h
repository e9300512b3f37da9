/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* The inode structure, shared by the tree, the writer and the reader. */
#ifndef CFS_TREE_INTERNAL_H
#define CFS_TREE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <cfs/image.h>

/*
 * Deepest entry of any tree the project builds, writes or reads: the root
 * is level 0, "/a" level 1, and no entry is below level 2048. That is the
 * most a path of 4096 bytes (PATH_MAX, CFS_LAYER_PATH_MAX) names, "a/" a
 * level: a lower limit would refuse trees that unpacking path by path
 * makes, a higher one admits only trees built through symlinks to the
 * bottom of earlier chains (82,000 levels from a 400 KiB layer), and
 * costs what recurses once a level: the image reader (0.7 KiB of stack),
 * dir: (an open descriptor) and fsck.erofs 1.5 (13 KiB of stack: 26 MiB
 * at this depth; its default 8 MiB runs out beyond about 650 levels).
 */
#define CFS_TREE_DEPTH_MAX 2048

struct cfs_xattr {
	char *name;
	uint8_t *value;
	uint32_t len;
};

struct cfs_dentry {
	char *name;
	cfs_inode *inode; /* owns one reference */
	size_t index; /* position in dir->entries */
	uint32_t tag; /* free for the builder of the tree (layer number) */
};

struct cfs_dir {
	struct cfs_dentry **entries;
	size_t count, cap;
	void *index; /* tsearch tree of dentries by name */
	bool sorted;
	uint32_t n_subdirs;
	cfs_inode *parent; /* borrowed; NULL for a root */
};

struct cfs_inode {
	unsigned int refs;
	uint32_t mode;
	uint32_t uid, gid;
	uint32_t nlink; /* entries naming this inode */
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	bool has_digest;
	uint64_t rdev;
	uint64_t size;
	char *target; /* symlink */
	uint8_t *content; /* inline regular file content */
	char *payload;
	uint8_t digest[CFS_DIGEST_SIZE];
	struct cfs_xattr *xattrs; /* sorted by name */
	size_t n_xattrs;
	size_t xattrs_bytes; /* sum of entry sizes, for the limit */
	struct cfs_dir *dir;

	/* Scratch space for tree walkers (writer, dump); a walker owns it
	 * for the duration of one call and resets what it uses. */
	uint64_t walk_id;
	void *walk_data;
};

/* EROFS xattr entry size of one xattr, used for the per-inode limit. */
size_t cfs_xattr_entry_size(const char *name, size_t value_len);
/* Validate an xattr name: known prefix, suffix 1..255 bytes. */
int cfs_xattr_name_check(const char *name);
/* Validate an entry name. */
int cfs_name_check(const char *name);
/* Sort a directory's entries (strcmp order) if needed. */
void cfs_dir_sort(cfs_inode *dir);
/* The tag of entry @name (0 for new entries); -ENOENT if absent. */
int cfs_dir_get_tag(const cfs_inode *dir, const char *name, uint32_t *tag);
int cfs_dir_set_tag(cfs_inode *dir, const char *name, uint32_t tag);
/*
 * Visit every entry below @root depth first, entries in strcmp order,
 * without recursion. @visit returns < 0 to stop with that error, 0 to go
 * on (and into a directory), 1 to skip the children of the directory just
 * visited. An entry below CFS_TREE_DEPTH_MAX levels stops the walk with
 * -ELOOP before it is visited: what the writer would make of such a tree,
 * the reader refuses.
 */
typedef int (*cfs_walk_fn)(void *ctx, cfs_inode *dir, const char *name,
			   cfs_inode *child);
int cfs_tree_walk(cfs_inode *root, cfs_walk_fn visit, void *ctx);

/* The parent of a directory (NULL for a root). */
cfs_inode *cfs_dir_parent(const cfs_inode *dir);

#endif
