/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * The canonical tree of the composefs OCI sealing spec: the one whose
 * image every implementation must regenerate bit for bit for an
 * "erofs.v1" digest (composefs-rs, crates/composefs-oci/src/design.rs
 * and FileSystem::transform_for_oci). docs/formats.md lists the rules.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"
#include "image/tree-internal.h"

/* The only xattr a canonical tree keeps (design.rs: the rest is build
 * host noise, SELinux labels above all). */
#define KEPT_XATTR "security.capability"

static int drop_xattrs(cfs_inode *inode)
{
	size_t i = 0;

	while (i < inode->n_xattrs) {
		int r;

		if (strcmp(inode->xattrs[i].name, KEPT_XATTR) == 0) {
			i++;
			continue;
		}
		r = cfs_inode_remove_xattr(inode, inode->xattrs[i].name);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Every inode: whole seconds, and the one kept xattr. An inode with
 * several names is visited once per name; both steps are idempotent. */
static int canonical_inode(void *ctx, cfs_inode *dir, const char *name,
			   cfs_inode *child)
{
	(void)ctx;
	(void)dir;
	(void)name;
	child->mtime_nsec = 0;
	return drop_xattrs(child);
}

static int copy_xattrs(cfs_inode *to, const cfs_inode *from)
{
	int r;

	while (to->n_xattrs > 0) {
		r = cfs_inode_remove_xattr(to, to->xattrs[0].name);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < from->n_xattrs; i++) {
		r = cfs_inode_set_xattr(to, from->xattrs[i].name,
					from->xattrs[i].value,
					from->xattrs[i].len);
		if (r < 0)
			return r;
	}
	return 0;
}

int cfs_tree_canonicalize(cfs_inode *root)
{
	cfs_inode *usr, *run;
	int r;

	if (!root || !root->dir)
		return cfs_error(EINVAL, "canonical tree: the root is not a "
					 "directory");
	usr = cfs_dir_lookup(root, "usr");
	if (!usr || !usr->dir)
		return cfs_error(ENOENT,
				 "canonical tree: %s: the canonical root takes "
				 "its owner, mode and mtime from /usr",
				 usr ? "/usr is not a directory" :
				       "the image has no /usr");
	run = cfs_dir_lookup(root, "run");
	if (run && !run->dir)
		return cfs_error(EINVAL, "canonical tree: /run is not a "
					 "directory (a canonical /run is an "
					 "empty one)");

	r = cfs_tree_walk(root, canonical_inode, NULL);
	if (r == 0)
		r = drop_xattrs(root);
	if (r < 0)
		return cfs_error_prefix(-r, "canonical tree");

	/* The root: /usr's metadata (whole seconds already). */
	root->mode = S_IFDIR | (usr->mode & 07777);
	root->uid = usr->uid;
	root->gid = usr->gid;
	root->mtime_sec = usr->mtime_sec;
	root->mtime_nsec = 0;
	r = copy_xattrs(root, usr);
	if (r < 0)
		return cfs_error_prefix(-r, "canonical tree: root xattrs");

	/* /run: emptied, with /usr's mtime. */
	if (run) {
		while (cfs_dir_count(run) > 0) {
			const char *name;
			cfs_inode *child;

			cfs_dir_entry_at(run, cfs_dir_count(run) - 1, &name,
					 &child);
			r = cfs_dir_unlink(run, name);
			if (r < 0)
				return cfs_error_prefix(-r, "canonical tree: "
							    "/run");
		}
		run->mtime_sec = usr->mtime_sec;
		run->mtime_nsec = 0;
	}
	return 0;
}
