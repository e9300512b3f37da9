/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * The composefs image writer.
 *
 * The goal is the exact bytes that composefs' mkcomposefs (format
 * versions 0 and 1) writes for the same tree, so that an image id computed
 * here equals one computed anywhere else. Every layout rule below follows
 * what composefs does, including its quirks; they are marked as such.
 *
 * Steps: build a "write node" (wnode) per inode with the xattrs and mode
 * the image stores (overlay xattrs added, whiteouts escaped), plus the 256
 * overlay whiteouts at the root; number the nodes breadth first; choose the
 * shared xattrs; place every inode; then stream header, superblock, inodes,
 * shared xattrs and data blocks in one pass.
 */
#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "image/erofs-format.h"
#include "image/tree-internal.h"

/* composefs stores at most this many 4-byte chunk indexes per file, so
 * that a file's chunk table always fits in one block. */
#define CFS_MAX_CHUNKS 1024

struct wxattr {
	const char *name;
	const uint8_t *value;
	uint32_t len;
	int64_t shared_off; /* offset in the shared area, or -1 */
};

struct wnode;

struct wdirent {
	const char *name;
	struct wnode *node;
};

struct wnode {
	cfs_inode *inode; /* NULL for the synthetic root whiteouts */
	struct wnode *next; /* breadth-first order */
	struct wnode *alloc_next; /* every allocated node, for cleanup */
	uint32_t mode;
	uint64_t size;
	uint32_t nlink, uid, gid;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	bool whiteout_parent; /* a directory holding escaped whiteouts */

	struct wxattr *xattrs;
	size_t n_xattrs;

	struct wdirent *dirents; /* sorted, with "." and ".." */
	size_t n_dirents;

	/* primary entry: where the inode is placed in breadth-first order */
	cfs_inode *primary_parent;
	const char *primary_name;

	/* layout */
	uint32_t ino;
	bool compact;
	uint32_t ipad;
	uint32_t xattr_size;
	uint32_t isize;
	uint64_t nid;
	uint32_t n_blocks;
	uint32_t tailsize;
};

struct writer {
	cfs_write_fn write;
	void *opaque;
	cfs_verity *verity;
	uint8_t *buf;
	size_t buf_len;
	uint64_t written;

	unsigned int format;
	struct wnode *root;
	struct wnode *allocated; /* list through alloc_next */
	struct wnode *whiteouts; /* 256 synthetic nodes */
	struct wnode *last;
	size_t n_nodes;
	int64_t min_mtime_sec;
	uint32_t min_mtime_nsec;
	bool has_acl;

	char **strings; /* names and values the writer allocated */
	size_t n_strings, cap_strings;

	struct wxattr **shared; /* shared xattrs in image order */
	size_t n_shared;
	uint64_t shared_size;
	uint64_t inodes_end;
	uint64_t n_data_blocks;
	uint64_t current_end;
};

#define WRITE_BUF_SIZE (256 * 1024)

/* ---- output ---------------------------------------------------------- */

static int flush_buf(struct writer *w)
{
	int r;

	if (w->buf_len == 0)
		return 0;
	if (w->verity) {
		r = cfs_verity_update(w->verity, w->buf, w->buf_len);
		if (r < 0)
			return r;
	}
	r = w->write(w->opaque, w->buf, w->buf_len);
	if (r < 0)
		return cfs_error_default(-r, "writing image");
	w->buf_len = 0;
	return 0;
}

static int emit(struct writer *w, const void *data, size_t len)
{
	const uint8_t *p = data;

	w->written += len;
	while (len > 0) {
		size_t n = CFS_MIN(len, WRITE_BUF_SIZE - w->buf_len);
		if (p)
			memcpy(w->buf + w->buf_len, p, n);
		else
			memset(w->buf + w->buf_len, 0, n);
		w->buf_len += n;
		len -= n;
		if (p)
			p += n;
		if (w->buf_len == WRITE_BUF_SIZE) {
			int r = flush_buf(w);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int emit_pad(struct writer *w, size_t len)
{
	return emit(w, NULL, len);
}

static int emit_align(struct writer *w, uint64_t align)
{
	return emit_pad(w, CFS_ROUND_UP(w->written, align) - w->written);
}

/* ---- building the nodes ---------------------------------------------- */

static char *keep_string(struct writer *w, char *s)
{
	if (!s)
		return NULL;
	if (w->n_strings == w->cap_strings) {
		size_t cap = w->cap_strings ? w->cap_strings * 2 : 64;
		char **n = reallocarray(w->strings, cap, sizeof(*n));
		if (!n) {
			free(s);
			return NULL;
		}
		w->strings = n;
		w->cap_strings = cap;
	}
	w->strings[w->n_strings++] = s;
	return s;
}

static int xattr_cmp(const void *a, const void *b)
{
	return strcmp(((const struct wxattr *)a)->name,
		      ((const struct wxattr *)b)->name);
}

static struct wxattr *xattr_find(struct wnode *n, const char *name)
{
	for (size_t i = 0; i < n->n_xattrs; i++)
		if (strcmp(n->xattrs[i].name, name) == 0)
			return &n->xattrs[i];
	return NULL;
}

/* Set or replace an xattr on a node; @name and @value must outlive the
 * writer (literals, tree data, or kept strings). */
static int xattr_set(struct wnode *n, const char *name, const void *value,
		     size_t len)
{
	struct wxattr *x = xattr_find(n, name), *nx;

	if (!x) {
		nx = reallocarray(n->xattrs, n->n_xattrs + 1, sizeof(*nx));
		if (!nx)
			return -ENOMEM;
		n->xattrs = nx;
		x = &nx[n->n_xattrs++];
		x->name = name;
	}
	x->value = value;
	x->len = (uint32_t)len;
	x->shared_off = -1;
	return 0;
}

static bool is_whiteout(const cfs_inode *inode)
{
	return S_ISCHR(inode->mode) && inode->rdev == 0;
}

/* Fill a node from its inode: the mode and xattrs as stored in the image. */
static int node_init(struct writer *w, struct wnode *n, cfs_inode *inode)
{
	uint32_t type = inode->mode & S_IFMT;
	int r;

	n->inode = inode;
	n->mode = inode->mode;
	n->size = S_ISDIR(inode->mode) ? 0 : inode->size;
	n->nlink = cfs_inode_nlink(inode);
	n->uid = inode->uid;
	n->gid = inode->gid;
	n->mtime_sec = inode->mtime_sec;
	n->mtime_nsec = inode->mtime_nsec;

	if (type == S_IFCHR || type == S_IFBLK) {
		uint32_t enc;
		if (cfs_rdev_encode(inode->rdev, &enc) < 0)
			return cfs_error(
				EOVERFLOW,
				"device number %u:%u does not fit in 32 bits",
				major(inode->rdev), minor(inode->rdev));
	}
	if (type == S_IFLNK && !inode->target)
		return cfs_error(EINVAL, "symlink without target");

	n->xattrs = calloc(inode->n_xattrs + 4, sizeof(*n->xattrs));
	if (!n->xattrs)
		return -ENOMEM;
	/* Escape the source's own overlay xattrs so that overlayfs shows
	 * them instead of acting on them. Adding one "overlay." keeps names
	 * distinct, so no two can collide. */
	for (size_t i = 0; i < inode->n_xattrs; i++) {
		const struct cfs_xattr *sx = &inode->xattrs[i];
		struct wxattr *x = &n->xattrs[n->n_xattrs++];

		x->name = sx->name;
		x->value = sx->value;
		x->len = sx->len;
		x->shared_off = -1;
		if (strncmp(sx->name, OVL_XATTR_PREFIX,
			    strlen(OVL_XATTR_PREFIX)) == 0) {
			char *esc;
			if (asprintf(&esc, "%s%s", OVL_XATTR_ESCAPE_PREFIX,
				     sx->name + strlen(OVL_XATTR_PREFIX)) < 0)
				return -ENOMEM;
			if (!keep_string(w, esc))
				return -ENOMEM;
			x->name = esc;
		}
	}

	if (type == S_IFREG && inode->size > 0 && !inode->content) {
		uint8_t *mc = NULL;
		size_t mc_len = 0;

		if (inode->has_digest) {
			mc_len = OVL_METACOPY_HEADER_SIZE + CFS_DIGEST_SIZE;
			mc = malloc(mc_len);
			if (!mc || !keep_string(w, (char *)mc))
				return -ENOMEM;
			mc[0] = 0; /* version */
			mc[1] = (uint8_t)mc_len;
			mc[2] = 0; /* flags */
			mc[3] = OVL_METACOPY_ALG_SHA256;
			memcpy(mc + 4, inode->digest, CFS_DIGEST_SIZE);
		}
		r = xattr_set(n, OVL_XATTR_METACOPY, mc ? mc : (uint8_t *)"",
			      mc_len);
		if (r < 0)
			return r;
		if (inode->payload && inode->payload[0]) {
			/* composefs joins "/" and the payload as is */
			char *redirect;
			if (asprintf(&redirect, "/%s", inode->payload) < 0)
				return -ENOMEM;
			if (!keep_string(w, redirect))
				return -ENOMEM;
			r = xattr_set(n, OVL_XATTR_REDIRECT, redirect,
				      strlen(redirect));
			if (r < 0)
				return r;
		}
	}

	/* An overlay whiteout (char 0:0) in the source is stored as an empty
	 * file carrying the escaped whiteout xattrs, so that the mounted
	 * image shows a whiteout instead of hiding a lower file. */
	if (is_whiteout(inode)) {
		n->mode = S_IFREG | (inode->mode & 07777);
		n->size = 0;
		r = xattr_set(n, OVL_XATTR_ESC_WHITEOUT, "", 0);
		if (r == 0)
			r = xattr_set(n, OVL_XATTR_USER_WHITEOUT, "", 0);
		if (r < 0)
			return r;
	}
	return 0;
}

static int mark_whiteout_parent(struct writer *w, struct wnode *dir)
{
	int r;

	if (dir->whiteout_parent)
		return 0;
	dir->whiteout_parent = true;
	r = xattr_set(dir, OVL_XATTR_ESC_WHITEOUTS, "", 0);
	if (r == 0)
		r = xattr_set(dir, OVL_XATTR_USER_WHITEOUTS, "", 0);
	/* Format 1 marks such directories so that overlayfs (6.7+) looks
	 * for whiteouts in them. */
	if (r == 0 && w->format >= 1)
		r = xattr_set(dir, OVL_XATTR_ESC_OPAQUE, "x", 1);
	if (r == 0 && w->format >= 1)
		r = xattr_set(dir, OVL_XATTR_USER_OPAQUE, "x", 1);
	return r;
}

static void node_free(struct wnode *n)
{
	free(n->xattrs);
	free(n->dirents);
}

static int dirent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct wdirent *)a)->name,
		      ((const struct wdirent *)b)->name);
}

/*
 * Pass 1, depth first in name order: create a node per inode and remember
 * its first name (its "primary" entry). composefs places a hardlinked inode
 * where its first name in that order is, which is also the line that is
 * not an "@" line in a dump.
 */
static struct wnode *new_node(struct writer *w, cfs_inode *inode)
{
	struct wnode *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	/* every node is on this list, whatever happens later, so that
	 * cleanup never has to walk a half-processed tree */
	n->alloc_next = w->allocated;
	w->allocated = n;
	n->inode = inode;
	inode->walk_data = n;
	return n;
}

static int collect_visit(void *ctx, cfs_inode *dir, const char *name,
			 cfs_inode *child)
{
	struct writer *w = ctx;
	struct wnode *n;
	int r;

	if (is_whiteout(child)) {
		r = mark_whiteout_parent(w, dir->walk_data);
		if (r < 0)
			return r;
	}
	if (child->walk_data)
		return 1; /* a later name of a hardlinked inode */
	n = new_node(w, child);
	if (!n)
		return -ENOMEM;
	n->primary_parent = dir;
	n->primary_name = name;
	return node_init(w, n, child);
}

static int collect_nodes(struct writer *w, cfs_inode *root)
{
	struct wnode *n = new_node(w, root);
	int r;

	if (!n)
		return -ENOMEM;
	w->root = n;
	r = node_init(w, n, root);
	if (r < 0)
		return r;
	return cfs_tree_walk(root, collect_visit, w);
}

/* The 256 whiteouts "00".."ff" at the root make overlayfs treat the
 * image's root as the top of the lower stack: they stop lookups from
 * falling through to the data-only layer (composefs does the same). */
static int add_root_whiteouts(struct writer *w)
{
	struct wnode *root = w->root;
	const void *selinux = NULL;
	size_t selinux_len = 0;

	w->whiteouts = calloc(256, sizeof(*w->whiteouts));
	if (!w->whiteouts)
		return -ENOMEM;
	selinux =
		cfs_inode_xattr(root->inode, "security.selinux", &selinux_len);
	for (int i = 0; i < 256; i++) {
		struct wnode *n = &w->whiteouts[i];

		n->mode = S_IFCHR | 0644;
		n->nlink = 1;
		n->uid = root->uid;
		n->gid = root->gid;
		n->mtime_sec = root->mtime_sec;
		n->mtime_nsec = root->mtime_nsec;
		if (selinux) {
			n->xattrs = calloc(1, sizeof(*n->xattrs));
			if (!n->xattrs)
				return -ENOMEM;
			xattr_set(n, "security.selinux", selinux, selinux_len);
		}
	}
	return 0;
}

static const char *hex_names[256];

static void init_hex_names(void)
{
	static char storage[256][3];
	static const char hex[] = "0123456789abcdef";

	if (hex_names[0])
		return;
	for (int i = 0; i < 256; i++) {
		storage[i][0] = hex[i >> 4];
		storage[i][1] = hex[i & 15];
		storage[i][2] = '\0';
		hex_names[i] = storage[i];
	}
}

/* Directory entries of a node as stored: the tree's entries, "." and "..",
 * and at the root the whiteouts whose names are free, in strcmp order. */
static int build_dirents(struct writer *w, struct wnode *n,
			 struct wnode *parent)
{
	cfs_inode *dir = n->inode;
	size_t count = cfs_dir_count(dir) + 2;
	bool is_root = n == w->root;
	size_t k = 0;

	if (is_root)
		count += 256;
	n->dirents = calloc(count, sizeof(*n->dirents));
	if (!n->dirents)
		return -ENOMEM;
	n->dirents[k++] = (struct wdirent){ ".", n };
	n->dirents[k++] = (struct wdirent){ "..", parent };
	for (size_t i = 0; i < cfs_dir_count(dir); i++) {
		const char *name;
		cfs_inode *child;

		cfs_dir_entry_at(dir, i, &name, &child);
		n->dirents[k++] = (struct wdirent){ name, child->walk_data };
	}
	if (is_root) {
		init_hex_names();
		for (int i = 0; i < 256; i++)
			if (!cfs_dir_lookup(dir, hex_names[i]))
				n->dirents[k++] =
					(struct wdirent){ hex_names[i],
							  &w->whiteouts[i] };
	}
	n->n_dirents = k;
	qsort(n->dirents, k, sizeof(*n->dirents), dirent_cmp);
	return 0;
}

static void append(struct writer *w, struct wnode *n)
{
	n->ino = (uint32_t)w->n_nodes++;
	if (w->last)
		w->last->next = n;
	w->last = n;
}

/* Pass 2: breadth-first numbering, as composefs does. */
static int order_nodes(struct writer *w)
{
	int r;

	append(w, w->root);
	for (struct wnode *n = w->root; n; n = n->next) {
		if (n->inode && n->inode->dir) {
			struct wnode *parent =
				n == w->root ? n : n->primary_parent->walk_data;
			r = build_dirents(w, n, parent);
			if (r < 0)
				return r;
			for (size_t i = 0; i < n->n_dirents; i++) {
				struct wdirent *d = &n->dirents[i];
				/* tree entries are never "." or ".." */
				if (strcmp(d->name, ".") == 0 ||
				    strcmp(d->name, "..") == 0)
					continue;
				if (!d->node->inode ||
				    (d->node->primary_parent == n->inode &&
				     d->node->primary_name == d->name))
					append(w, d->node);
			}
		}
		/* Canonical xattr order */
		if (n->n_xattrs > 1)
			qsort(n->xattrs, n->n_xattrs, sizeof(*n->xattrs),
			      xattr_cmp);
		if (n->mtime_sec < w->min_mtime_sec ||
		    (n->mtime_sec == w->min_mtime_sec &&
		     n->mtime_nsec < w->min_mtime_nsec)) {
			w->min_mtime_sec = n->mtime_sec;
			w->min_mtime_nsec = n->mtime_nsec;
		}
		if (xattr_find(n, "system.posix_acl_access") ||
		    xattr_find(n, "system.posix_acl_default"))
			w->has_acl = true;
	}
	return 0;
}

/* ---- shared xattrs --------------------------------------------------- */

static int xattr_kv_cmp(const void *a, const void *b)
{
	const struct wxattr *x = *(struct wxattr *const *)a;
	const struct wxattr *y = *(struct wxattr *const *)b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->value, y->value, x->len);
}

static size_t xattr_entry_size(const struct wxattr *x)
{
	return cfs_xattr_entry_size(x->name, x->len);
}

/*
 * A key+value pair used by more than one inode is stored once in the
 * shared area. composefs orders that area by name, then value length,
 * then value, all descending, and shares at most EROFS_XATTR_SHARED_MAX
 * xattrs per inode (the rest stay inline).
 */
static int compute_shared_xattrs(struct writer *w)
{
	_cleanup_free_ struct wxattr **all = NULL;
	size_t total = 0, k = 0;
	uint64_t off = 0;

	for (struct wnode *n = w->root; n; n = n->next)
		total += n->n_xattrs;
	if (total == 0)
		return 0;
	all = malloc(total * sizeof(*all));
	w->shared = malloc(total * sizeof(*w->shared));
	if (!all || !w->shared)
		return -ENOMEM;
	for (struct wnode *n = w->root; n; n = n->next)
		for (size_t i = 0; i < n->n_xattrs; i++)
			all[k++] = &n->xattrs[i];
	qsort(all, total, sizeof(*all), xattr_kv_cmp);

	/* Walk groups of equal pairs from the largest down, so offsets come
	 * out in the descending order composefs uses. */
	for (size_t end = total; end > 0;) {
		size_t start = end - 1;
		while (start > 0 &&
		       xattr_kv_cmp(&all[start - 1], &all[end - 1]) == 0)
			start--;
		if (end - start > 1) {
			for (size_t i = start; i < end; i++)
				all[i]->shared_off = (int64_t)off;
			w->shared[w->n_shared++] = all[start];
			off += xattr_entry_size(all[start]);
		}
		end = start;
	}
	w->shared_size = off;

	for (struct wnode *n = w->root; n; n = n->next) {
		size_t n_shared = 0;
		for (size_t i = 0; i < n->n_xattrs; i++) {
			if (n->xattrs[i].shared_off < 0)
				continue;
			if (n_shared < EROFS_XATTR_SHARED_MAX)
				n_shared++;
			else
				n->xattrs[i].shared_off = -1;
		}
	}
	return 0;
}

/* ---- layout ---------------------------------------------------------- */

static uint32_t chunk_bits(uint64_t size)
{
	/* As few chunks as possible: one chunk covering the file, at least a
	 * block, at most what the 5-bit chunk format can say. */
	uint32_t bits = size > 1 ? 64 - (uint32_t)__builtin_clzll(size - 1) : 1;

	if (bits < EROFS_BLKSIZ_BITS)
		bits = EROFS_BLKSIZ_BITS;
	if (bits - EROFS_BLKSIZ_BITS > EROFS_CHUNK_FORMAT_BLKBITS_MASK)
		bits = EROFS_CHUNK_FORMAT_BLKBITS_MASK + EROFS_BLKSIZ_BITS;
	return bits;
}

static uint64_t chunk_count(uint64_t size)
{
	uint64_t chunk = 1ull << chunk_bits(size);

	/* (not size + chunk - 1: within a chunk of 2^64 that wraps, and a
	 * huge file would get a handful of chunks the reader refuses) */
	return size / chunk + (size % chunk != 0);
}

static bool is_external(const struct wnode *n)
{
	return S_ISREG(n->mode) && n->size > 0 && n->inode &&
	       !n->inode->content;
}

static void dir_size(struct wnode *n)
{
	uint32_t blocks = 0;
	size_t used = 0;

	for (size_t i = 0; i < n->n_dirents; i++) {
		size_t len = sizeof(struct erofs_dirent) +
			     strlen(n->dirents[i].name);
		if (used + len > EROFS_BLKSIZ) {
			blocks++;
			used = 0;
		}
		used += len;
	}
	/* composefs inlines at most half a block of directory tail */
	if (used > EROFS_BLKSIZ / 2) {
		blocks++;
		used = 0;
	}
	n->n_blocks = blocks;
	n->tailsize = (uint32_t)used;
}

static int data_size(struct wnode *n)
{
	switch (n->mode & S_IFMT) {
	case S_IFDIR:
		dir_size(n);
		break;
	case S_IFLNK:
		n->n_blocks = 0;
		n->tailsize = (uint32_t)n->size;
		break;
	case S_IFREG:
		if (n->size == 0) {
			n->n_blocks = n->tailsize = 0;
		} else if (!is_external(n)) {
			n->n_blocks = (uint32_t)(n->size / EROFS_BLKSIZ);
			n->tailsize = (uint32_t)(n->size % EROFS_BLKSIZ);
			if (n->tailsize > EROFS_BLKSIZ / 2) {
				n->n_blocks++;
				n->tailsize = 0;
			}
		} else {
			uint64_t chunks = chunk_count(n->size);
			if (chunks > CFS_MAX_CHUNKS)
				return cfs_error(
					EFBIG,
					"file of %llu bytes is too large",
					(unsigned long long)n->size);
			n->n_blocks = 0;
			n->tailsize = (uint32_t)chunks * 4;
		}
		break;
	default:
		n->n_blocks = n->tailsize = 0;
	}
	return 0;
}

static uint64_t stored_size(const struct wnode *n)
{
	if (S_ISDIR(n->mode))
		return (uint64_t)n->n_blocks * EROFS_BLKSIZ + n->tailsize;
	if (S_ISREG(n->mode))
		return n->size;
	if (S_ISLNK(n->mode))
		return n->n_blocks == 0 ? n->tailsize : n->size;
	return 0;
}

static bool fits_compact(const struct writer *w, const struct wnode *n)
{
	if (n->mtime_sec != w->min_mtime_sec ||
	    n->mtime_nsec != w->min_mtime_nsec)
		return false;
	if (n->nlink > UINT16_MAX || n->uid > UINT16_MAX || n->gid > UINT16_MAX)
		return false;
	return stored_size(n) <= UINT32_MAX;
}

static void xattr_counts(const struct wnode *n, size_t *n_shared,
			 size_t *unshared_size)
{
	*n_shared = 0;
	*unshared_size = 0;
	for (size_t i = 0; i < n->n_xattrs; i++) {
		if (n->xattrs[i].shared_off >= 0)
			(*n_shared)++;
		else
			*unshared_size += xattr_entry_size(&n->xattrs[i]);
	}
}

static uint32_t xattr_body_size(const struct wnode *n)
{
	size_t n_shared, unshared;

	xattr_counts(n, &n_shared, &unshared);
	if (n_shared == 0 && unshared == 0)
		return 0;
	return (uint32_t)CFS_ROUND_UP(sizeof(struct erofs_xattr_ibody_header) +
					      n_shared * 4 + unshared,
				      4);
}

/*
 * Padding in front of an inode so that its inline tail does not cross a
 * block boundary (the kernel requires it). May move the tail to a block of
 * its own instead. composefs' rules, kept exactly:
 *  - a symlink keeps inode and target in one block when they fit; when
 *    they are a block or more together, the target moves to a data block
 *    and the inode still starts a new block if it would have crossed one;
 *  - other inodes pad (in 32-byte steps) so that the tail starts in the
 *    next block, or move the tail to a block if even that does not fit.
 */
static uint64_t tail_padding(struct wnode *n, uint64_t pos, size_t inode_size)
{
	uint64_t non_tail = inode_size + n->xattr_size;
	uint64_t total = non_tail + n->tailsize;
	uint64_t remainder, pad;

	if (S_ISLNK(n->mode)) {
		uint64_t pos_block = pos / EROFS_BLKSIZ;
		uint64_t end_block = (pos + total - 1) / EROFS_BLKSIZ;
		if (total / EROFS_BLKSIZ > 0) {
			n->n_blocks++;
			n->tailsize = 0;
		}
		if (pos_block != end_block)
			return CFS_ROUND_UP(pos, EROFS_BLKSIZ) - pos;
		return 0;
	}

	remainder = EROFS_BLKSIZ - ((pos + non_tail) % EROFS_BLKSIZ);
	if (remainder >= n->tailsize)
		return 0;
	pad = CFS_ROUND_UP(remainder, EROFS_SLOTSIZE);
	remainder = EROFS_BLKSIZ - ((pos + non_tail + pad) % EROFS_BLKSIZ);
	if (n->tailsize <= remainder)
		return pad;
	n->n_blocks++;
	n->tailsize = 0;
	return CFS_ROUND_UP(pos, EROFS_BLKSIZ) - pos;
}

static int compute_layout(struct writer *w)
{
	uint64_t pos = EROFS_SUPER_OFFSET + sizeof(struct erofs_super_block);
	/* nids count 32-byte slots from the start of the metadata block */
	uint64_t meta_start = pos / EROFS_BLKSIZ * EROFS_BLKSIZ;
	int r;

	for (struct wnode *n = w->root; n; n = n->next) {
		size_t inode_size;
		uint64_t aligned, extra;

		r = data_size(n);
		if (r < 0)
			return r;
		n->compact = fits_compact(w, n);
		inode_size = n->compact ? sizeof(struct erofs_inode_compact) :
					  sizeof(struct erofs_inode_extended);
		n->xattr_size = xattr_body_size(n);
		if (n->xattr_size &&
		    (n->xattr_size - sizeof(struct erofs_xattr_ibody_header)) /
					    4 +
				    1 >
			    UINT16_MAX)
			return cfs_error(ERANGE,
					 "too many xattrs on one inode");

		aligned = CFS_ROUND_UP(pos, EROFS_SLOTSIZE);
		n->ipad = (uint32_t)(aligned - pos);
		pos = aligned;
		extra = tail_padding(n, pos, inode_size);
		n->ipad += (uint32_t)extra;
		pos += extra;

		n->isize = (uint32_t)(inode_size + n->xattr_size + n->tailsize);
		w->n_data_blocks += n->n_blocks;
		n->nid = (pos - meta_start) / EROFS_SLOTSIZE;
		pos += n->isize;
	}
	w->inodes_end = CFS_ROUND_UP(pos, EROFS_SLOTSIZE);
	if (w->root->nid > UINT16_MAX)
		return cfs_error(EOVERFLOW, "root inode beyond nid 65535");
	return 0;
}

/* ---- serialisation --------------------------------------------------- */

static int emit_xattr(struct writer *w, const struct wxattr *x)
{
	struct erofs_xattr_entry e = { 0 };
	const char *suffix;
	int r;

	e.e_name_index = cfs_erofs_xattr_index(x->name, &suffix);
	e.e_name_len = (uint8_t)strlen(suffix);
	e.e_value_size = htole16((uint16_t)x->len);
	r = emit(w, &e, sizeof(e));
	if (r == 0)
		r = emit(w, suffix, strlen(suffix));
	if (r == 0)
		r = emit(w, x->value, x->len);
	if (r == 0)
		r = emit_align(w, 4);
	return r;
}

static uint32_t name_filter(const struct wnode *n)
{
	uint32_t present = 0;

	for (size_t i = 0; i < n->n_xattrs; i++) {
		const char *suffix;
		uint8_t index =
			cfs_erofs_xattr_index(n->xattrs[i].name, &suffix);
		uint32_t bit = XXH32(suffix, strlen(suffix),
				     EROFS_XATTR_FILTER_SEED + index) &
			       (EROFS_XATTR_FILTER_BITS - 1);
		present |= 1u << bit;
	}
	/* A set bit means "no xattr with a name hashing here". */
	return EROFS_XATTR_FILTER_DEFAULT & ~present;
}

/* One directory block (or the inline tail): dirents, then names. */
static int emit_dirent_chunk(struct writer *w, const struct wnode *n,
			     size_t first, size_t count, uint64_t align)
{
	uint16_t nameoff = (uint16_t)(count * sizeof(struct erofs_dirent));
	int r;

	for (size_t i = first; i < first + count; i++) {
		struct erofs_dirent d = { 0 };

		d.nid = htole64(n->dirents[i].node->nid);
		d.nameoff = htole16(nameoff);
		d.file_type = cfs_erofs_file_type(n->dirents[i].node->mode);
		nameoff = (uint16_t)(nameoff + strlen(n->dirents[i].name));
		r = emit(w, &d, sizeof(d));
		if (r < 0)
			return r;
	}
	for (size_t i = first; i < first + count; i++) {
		r = emit(w, n->dirents[i].name, strlen(n->dirents[i].name));
		if (r < 0)
			return r;
	}
	return emit_align(w, align);
}

/* Write a directory's full blocks, or its inline tail. */
static int emit_dirents(struct writer *w, const struct wnode *n, bool blocks)
{
	size_t used = 0, first = 0, written = 0;
	int r;

	for (size_t i = 0; i < n->n_dirents; i++) {
		size_t len = sizeof(struct erofs_dirent) +
			     strlen(n->dirents[i].name);
		if (used + len > EROFS_BLKSIZ) {
			if (blocks) {
				r = emit_dirent_chunk(w, n, first, i - first,
						      EROFS_BLKSIZ);
				if (r < 0)
					return r;
			}
			written++;
			used = 0;
			first = i;
		}
		used += len;
	}
	if (written < n->n_blocks) {
		/* the last partial block was not inlined */
		if (blocks) {
			r = emit_dirent_chunk(w, n, first, n->n_dirents - first,
					      EROFS_BLKSIZ);
			if (r < 0)
				return r;
		}
		used = 0;
		first = n->n_dirents;
	}
	if (!blocks && used > 0)
		return emit_dirent_chunk(w, n, first, n->n_dirents - first, 1);
	return 0;
}

static int emit_null_chunks(struct writer *w, uint64_t count)
{
	uint32_t v = htole32(EROFS_NULL_ADDR);

	for (uint64_t i = 0; i < count; i++) {
		int r = emit(w, &v, sizeof(v));
		if (r < 0)
			return r;
	}
	return 0;
}

static int emit_inode(struct writer *w, struct wnode *n)
{
	uint32_t type = n->mode & S_IFMT;
	uint16_t layout = n->tailsize > 0 ? EROFS_INODE_FLAT_INLINE :
					    EROFS_INODE_FLAT_PLAIN;
	uint32_t i_u = 0;
	uint64_t size = stored_size(n);
	size_t n_shared, unshared;
	uint16_t icount = 0;
	int r;

	r = emit_pad(w, n->ipad);
	if (r < 0)
		return r;

	if (n->n_blocks > 0 &&
	    (type == S_IFDIR || type == S_IFREG || type == S_IFLNK)) {
		i_u = (uint32_t)(w->current_end / EROFS_BLKSIZ);
		w->current_end += (uint64_t)EROFS_BLKSIZ * n->n_blocks;
	}
	if (type == S_IFCHR || type == S_IFBLK)
		cfs_rdev_encode(n->inode ? n->inode->rdev : 0, &i_u);
	if (is_external(n)) {
		layout = EROFS_INODE_CHUNK_BASED;
		/* composefs overwrites only the low half of the union */
		i_u = (i_u & 0xffff0000u) |
		      (chunk_bits(n->size) - EROFS_BLKSIZ_BITS);
	}
	if (n->xattr_size)
		icount = (uint16_t)((n->xattr_size -
				     sizeof(struct erofs_xattr_ibody_header)) /
					    4 +
				    1);

	if (n->compact) {
		struct erofs_inode_compact i = { 0 };

		i.i_format =
			htole16((uint16_t)(layout << EROFS_I_DATALAYOUT_BIT));
		i.i_xattr_icount = htole16(icount);
		i.i_mode = htole16((uint16_t)n->mode);
		i.i_nlink = htole16((uint16_t)n->nlink);
		i.i_size = htole32((uint32_t)size);
		i.i_u = htole32(i_u);
		i.i_ino = htole32(n->ino);
		i.i_uid = htole16((uint16_t)n->uid);
		i.i_gid = htole16((uint16_t)n->gid);
		r = emit(w, &i, sizeof(i));
	} else {
		struct erofs_inode_extended i = { 0 };

		i.i_format =
			htole16((uint16_t)(layout << EROFS_I_DATALAYOUT_BIT |
					   1 << EROFS_I_VERSION_BIT));
		i.i_xattr_icount = htole16(icount);
		i.i_mode = htole16((uint16_t)n->mode);
		i.i_size = htole64(size);
		i.i_u = htole32(i_u);
		i.i_ino = htole32(n->ino);
		i.i_uid = htole32(n->uid);
		i.i_gid = htole32(n->gid);
		i.i_mtime = htole64((uint64_t)n->mtime_sec);
		i.i_mtime_nsec = htole32(n->mtime_nsec);
		i.i_nlink = htole32(n->nlink);
		r = emit(w, &i, sizeof(i));
	}
	if (r < 0)
		return r;

	if (n->xattr_size) {
		struct erofs_xattr_ibody_header h = { 0 };

		xattr_counts(n, &n_shared, &unshared);
		h.h_name_filter = htole32(name_filter(n));
		h.h_shared_count = (uint8_t)n_shared;
		r = emit(w, &h, sizeof(h));
		for (size_t i = 0; r == 0 && i < n->n_xattrs; i++) {
			if (n->xattrs[i].shared_off >= 0) {
				uint64_t off =
					w->inodes_end % EROFS_BLKSIZ +
					(uint64_t)n->xattrs[i].shared_off;
				uint32_t id = htole32((uint32_t)(off / 4));
				r = emit(w, &id, sizeof(id));
			}
		}
		for (size_t i = 0; r == 0 && i < n->n_xattrs; i++)
			if (n->xattrs[i].shared_off < 0)
				r = emit_xattr(w, &n->xattrs[i]);
		if (r < 0)
			return r;
	}

	if (type == S_IFDIR)
		return emit_dirents(w, n, false);
	if (type == S_IFLNK && n->n_blocks == 0)
		return emit(w, n->inode->target, n->tailsize);
	if (type == S_IFREG && n->tailsize > 0) {
		if (is_external(n))
			return emit_null_chunks(w, chunk_count(n->size));
		return emit(w, n->inode->content + n->size - n->tailsize,
			    n->tailsize);
	}
	return 0;
}

static int emit_data_blocks(struct writer *w, const struct wnode *n)
{
	const uint8_t *src = NULL;
	int r;

	if (S_ISDIR(n->mode))
		return emit_dirents(w, n, true);
	if (n->n_blocks == 0)
		return 0;
	if (S_ISREG(n->mode) && is_external(n))
		return emit_null_chunks(w, CFS_MAX_CHUNKS);
	if (S_ISREG(n->mode))
		src = n->inode->content;
	else if (S_ISLNK(n->mode))
		src = (const uint8_t *)n->inode->target;
	else
		return 0;
	for (uint32_t b = 0; b < n->n_blocks; b++) {
		uint64_t off = (uint64_t)b * EROFS_BLKSIZ;
		uint64_t len = off < n->size ?
				       CFS_MIN(n->size - off, EROFS_BLKSIZ) :
				       0;
		r = emit(w, src + off, len);
		if (r == 0)
			r = emit_align(w, EROFS_BLKSIZ);
		if (r < 0)
			return r;
	}
	return 0;
}

static int emit_image(struct writer *w)
{
	struct cfs_header h = { 0 };
	struct erofs_super_block sb = { 0 };
	uint64_t data_start;
	int r;

	h.magic = htole32(CFS_HEADER_MAGIC);
	h.version = htole32(CFS_HEADER_VERSION);
	h.flags = htole32(w->has_acl ? CFS_HEADER_FLAG_HAS_ACL : 0);
	h.composefs_version = htole32(w->format);

	data_start = CFS_ROUND_UP(w->inodes_end + w->shared_size, EROFS_BLKSIZ);
	if (data_start / EROFS_BLKSIZ + w->n_data_blocks > UINT32_MAX)
		return cfs_error(EFBIG, "image larger than 16 TiB");
	sb.magic = htole32(EROFS_SUPER_MAGIC_V1);
	sb.feature_compat = htole32(EROFS_FEATURE_COMPAT_MTIME |
				    EROFS_FEATURE_COMPAT_XATTR_FILTER);
	sb.blkszbits = EROFS_BLKSIZ_BITS;
	sb.root_nid = htole16((uint16_t)w->root->nid);
	sb.inos = htole64(w->n_nodes);
	sb.build_time = htole64((uint64_t)w->min_mtime_sec);
	sb.build_time_nsec = htole32(w->min_mtime_nsec);
	sb.blocks = htole32(
		(uint32_t)(data_start / EROFS_BLKSIZ + w->n_data_blocks));
	sb.meta_blkaddr =
		htole32((EROFS_SUPER_OFFSET + sizeof(sb)) / EROFS_BLKSIZ);
	sb.xattr_blkaddr = htole32((uint32_t)(w->inodes_end / EROFS_BLKSIZ));

	r = emit(w, &h, sizeof(h));
	if (r == 0)
		r = emit_pad(w, EROFS_SUPER_OFFSET - sizeof(h));
	if (r == 0)
		r = emit(w, &sb, sizeof(sb));
	if (r < 0)
		return r;

	w->current_end = data_start;
	for (struct wnode *n = w->root; n; n = n->next) {
		r = emit_inode(w, n);
		if (r < 0)
			return r;
	}
	r = emit_align(w, EROFS_SLOTSIZE);
	if (r < 0)
		return r;
	assert(w->written == w->inodes_end);
	for (size_t i = 0; i < w->n_shared; i++) {
		r = emit_xattr(w, w->shared[i]);
		if (r < 0)
			return r;
	}
	r = emit_align(w, EROFS_BLKSIZ);
	if (r < 0)
		return r;
	assert(w->written == data_start);
	for (struct wnode *n = w->root; n; n = n->next) {
		r = emit_data_blocks(w, n);
		if (r < 0)
			return r;
	}
	assert(w->written == data_start + w->n_data_blocks * EROFS_BLKSIZ);
	assert(w->current_end == w->written);
	return flush_buf(w);
}

/* ---- entry points ---------------------------------------------------- */

static bool tree_has_whiteout(cfs_inode *dir)
{
	for (size_t i = 0; i < cfs_dir_count(dir); i++) {
		const char *name;
		cfs_inode *child;

		cfs_dir_entry_at(dir, i, &name, &child);
		if (is_whiteout(child))
			return true;
		if (child->dir && tree_has_whiteout(child))
			return true;
	}
	return false;
}

static void writer_cleanup(struct writer *w)
{
	/* Nodes hang off the inodes' walk_data; leave that scratch field
	 * clean for the next walker. */
	for (struct wnode *n = w->allocated, *next; n; n = next) {
		next = n->alloc_next;
		n->inode->walk_data = NULL;
		node_free(n);
		free(n);
	}
	if (w->whiteouts) {
		for (int i = 0; i < 256; i++)
			node_free(&w->whiteouts[i]);
		free(w->whiteouts);
	}
	for (size_t i = 0; i < w->n_strings; i++)
		free(w->strings[i]);
	free(w->strings);
	free(w->shared);
	free(w->buf);
	cfs_verity_free(w->verity);
}

int cfs_image_write(cfs_inode *root, const cfs_write_options *opts,
		    cfs_write_fn write, void *opaque,
		    uint8_t digest_out[CFS_DIGEST_SIZE])
{
	cfs_write_options defaults = CFS_WRITE_OPTIONS_INIT;
	struct writer w = { 0 };
	int r;

	if (!opts)
		opts = &defaults;
	if (!CFS_OPTIONS_VERSION_OK(opts->version, CFS_WRITE_OPTIONS_VERSION) ||
	    opts->flags != 0 || opts->min_format > CFS_FORMAT_MAX ||
	    opts->max_format > CFS_FORMAT_MAX)
		return cfs_error(EINVAL, "invalid image write options");
	if (!root->dir)
		return cfs_error(EINVAL, "image root is not a directory");

	w.write = write;
	w.opaque = opaque;
	w.format = opts->min_format;
	if (w.format < 1 && opts->max_format >= 1 && tree_has_whiteout(root))
		w.format = 1; /* format 1 changed how whiteouts are stored */
	w.min_mtime_sec = root->mtime_sec;
	w.min_mtime_nsec = root->mtime_nsec;
	w.buf = malloc(WRITE_BUF_SIZE);
	if (!w.buf) {
		r = -ENOMEM;
		goto out;
	}
	if (digest_out) {
		r = cfs_verity_new(&w.verity);
		if (r < 0)
			goto out;
	}

	r = collect_nodes(&w, root);
	if (r == 0)
		r = add_root_whiteouts(&w);
	if (r == 0) {
		/* The root's own marker: an opaque root hides the object
		 * directory below it in the overlay stack. */
		r = xattr_set(w.root, OVL_XATTR_OPAQUE, "y", 1);
	}
	if (r == 0)
		r = order_nodes(&w);
	if (r == 0)
		r = compute_shared_xattrs(&w);
	if (r == 0)
		r = compute_layout(&w);
	if (r == 0)
		r = emit_image(&w);
	if (r == 0 && digest_out)
		r = cfs_verity_final(w.verity, digest_out);
out:
	writer_cleanup(&w);
	if (r < 0)
		cfs_error_default(-r, "writing composefs image");
	return r;
}

static int fd_write(void *opaque, const void *buf, size_t len)
{
	int r = cfs_write_all(*(int *)opaque, buf, len);

	if (r < 0)
		return cfs_error_errno(-r, "writing image");
	return 0;
}

int cfs_image_write_fd(cfs_inode *root, const cfs_write_options *opts, int fd,
		       uint8_t digest_out[CFS_DIGEST_SIZE])
{
	return cfs_image_write(root, opts, fd_write, &fd, digest_out);
}

static int write_nothing(void *opaque, const void *buf, size_t len)
{
	(void)opaque;
	(void)buf;
	(void)len;
	return 0;
}

int cfs_image_digest(cfs_inode *root, const cfs_write_options *opts,
		     uint8_t digest_out[CFS_DIGEST_SIZE])
{
	return cfs_image_write(root, opts, write_nothing, NULL, digest_out);
}
