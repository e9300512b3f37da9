/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Applying layer entries to an in-memory tree with OCI whiteout semantics
 * (image-spec layer.md), the way containerd and umoci extract layers:
 *  - later entries replace earlier ones; a directory entry over an existing
 *    directory only updates its metadata;
 *  - ".wh.NAME" removes NAME from lower layers; ".wh..wh..opq" hides all
 *    lower-layer entries of its directory; entries of the same layer are
 *    never hidden by a whiteout of that layer, whatever the order;
 *  - missing parents are created (0755, root, mtime 0);
 *  - symlinks in parent components are followed inside the tree, never
 *    above its root;
 *  - no entry goes below CFS_TREE_DEPTH_MAX levels (image/tree-internal.h),
 *    counted where the path leads, through symlinks;
 *  - hardlinks name an inode already in the tree.
 * The applier knows nothing of tar: the caller turns each header into a
 * struct cfs_layer_entry and fills regular files' content afterwards.
 */
#ifndef CFS_APPLY_H
#define CFS_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cfs/image.h>

/* Entries in one image, all layers together. Beyond it the tree could not
 * be held in memory comfortably (an inode costs ~200 bytes plus names). */
#define CFS_IMAGE_ENTRIES_MAX (4u * 1024 * 1024)
/* Longest path in a layer: what the kernel resolves in one lookup. */
#define CFS_LAYER_PATH_MAX 4096
/* Symlinks followed while resolving one path, as Linux (ELOOP). */
#define CFS_SYMLINK_FOLLOW_MAX 40

struct cfs_entry_xattr {
	const char *name;
	const void *value;
	size_t len;
};

struct cfs_layer_entry {
	const char *path; /* as in the tar header */
	uint32_t mode; /* file type and permission bits */
	uint32_t uid, gid;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint64_t rdev; /* glibc dev_t, for devices */
	const char *link; /* symlink target, or hardlink target path */
	bool hardlink;
	const struct cfs_entry_xattr *xattrs;
	size_t n_xattrs;
};

struct cfs_applier {
	cfs_inode *root;
	uint32_t layer; /* 1 for the first layer */
	const char *where; /* names the layer in messages */
	uint64_t entries;
	/* The tree of one layer alone (composefs.layer digests): whiteouts
	 * are kept as overlayfs whiteouts (".wh.NAME" becomes the character
	 * device 0:0 NAME, ".wh..wh..opq" the xattr trusted.overlay.opaque
	 * "y" on its directory) instead of removing anything. */
	bool keep_whiteouts;
};

/* Start with an empty root directory (0755, root, mtime 0). */
int cfs_applier_init(struct cfs_applier *a);
void cfs_applier_fini(struct cfs_applier *a);
/* Entries that follow belong to layer @layer (1-based, increasing);
 * @where (borrowed, e.g. "layer sha256:ab12...") prefixes errors. */
void cfs_applier_begin_layer(struct cfs_applier *a, uint32_t layer,
			     const char *where);
/*
 * Apply one entry. For a regular file (not a hardlink) *file_out receives
 * the new inode (borrowed from the tree) for the caller to give content;
 * otherwise NULL. Errors name the layer and the path.
 */
int cfs_applier_apply(struct cfs_applier *a, const struct cfs_layer_entry *e,
		      cfs_inode **file_out);

#endif
