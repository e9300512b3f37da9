/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* The in-memory file tree: inodes, xattrs and directory entries. */
#include <errno.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "image/erofs-format.h"
#include "image/tree-internal.h"
#include "common/util.h"

int cfs_name_check(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || strchr(name, '/') || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0)
		return -EINVAL;
	if (len > CFS_NAME_MAX)
		return -ENAMETOOLONG;
	return 0;
}

static bool valid_type(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
	case S_IFDIR:
	case S_IFLNK:
	case S_IFCHR:
	case S_IFBLK:
	case S_IFIFO:
	case S_IFSOCK:
		return true;
	default:
		return false;
	}
}

int cfs_inode_new(cfs_inode **out, uint32_t mode)
{
	cfs_inode *inode;

	if (!valid_type(mode) || (mode & ~(S_IFMT | 07777)))
		return cfs_error(EINVAL, "invalid file mode 0%o", mode);
	inode = calloc(1, sizeof(*inode));
	if (!inode)
		return -ENOMEM;
	if (S_ISDIR(mode)) {
		inode->dir = calloc(1, sizeof(*inode->dir));
		if (!inode->dir) {
			free(inode);
			return -ENOMEM;
		}
		inode->dir->sorted = true;
	}
	inode->refs = 1;
	inode->mode = mode;
	*out = inode;
	return 0;
}

cfs_inode *cfs_inode_ref(cfs_inode *inode)
{
	inode->refs++;
	return inode;
}

static void dentry_free(struct cfs_dentry *d)
{
	if (d->inode->dir)
		d->inode->dir->parent = NULL;
	d->inode->nlink--;
	cfs_inode_unref(d->inode);
	free(d->name);
	free(d);
}

static void noop_free(void *p)
{
	(void)p;
}

void cfs_inode_unref(cfs_inode *inode)
{
	if (!inode || --inode->refs > 0)
		return;
	if (inode->dir) {
		/* The dentries are freed below, through the array. */
		tdestroy(inode->dir->index, noop_free);
		for (size_t i = 0; i < inode->dir->count; i++)
			dentry_free(inode->dir->entries[i]);
		free(inode->dir->entries);
		free(inode->dir);
	}
	for (size_t i = 0; i < inode->n_xattrs; i++) {
		free(inode->xattrs[i].name);
		free(inode->xattrs[i].value);
	}
	free(inode->xattrs);
	free(inode->target);
	free(inode->content);
	free(inode->payload);
	free(inode);
}

uint32_t cfs_inode_mode(const cfs_inode *inode)
{
	return inode->mode;
}

uint32_t cfs_inode_type(const cfs_inode *inode)
{
	return inode->mode & S_IFMT;
}

int cfs_inode_set_mode(cfs_inode *inode, uint32_t mode)
{
	if ((mode & S_IFMT) != (inode->mode & S_IFMT) ||
	    (mode & ~(S_IFMT | 07777)))
		return cfs_error(EINVAL, "cannot change mode 0%o to 0%o",
				 inode->mode, mode);
	inode->mode = mode;
	return 0;
}

uint32_t cfs_inode_uid(const cfs_inode *inode)
{
	return inode->uid;
}

uint32_t cfs_inode_gid(const cfs_inode *inode)
{
	return inode->gid;
}

void cfs_inode_set_owner(cfs_inode *inode, uint32_t uid, uint32_t gid)
{
	inode->uid = uid;
	inode->gid = gid;
}

void cfs_inode_mtime(const cfs_inode *inode, int64_t *sec, uint32_t *nsec)
{
	*sec = inode->mtime_sec;
	*nsec = inode->mtime_nsec;
}

int cfs_inode_set_mtime(cfs_inode *inode, int64_t sec, uint32_t nsec)
{
	if (nsec >= 1000000000u)
		return cfs_error(EINVAL, "mtime nanoseconds %u out of range",
				 nsec);
	inode->mtime_sec = sec;
	inode->mtime_nsec = nsec;
	return 0;
}

uint64_t cfs_inode_rdev(const cfs_inode *inode)
{
	return inode->rdev;
}

int cfs_inode_set_rdev(cfs_inode *inode, uint64_t rdev)
{
	uint32_t enc;

	if (!S_ISCHR(inode->mode) && !S_ISBLK(inode->mode))
		return cfs_error(EINVAL, "device number on a non-device");
	/* composefs images store device numbers in 32 bits */
	if (cfs_rdev_encode(rdev, &enc) < 0)
		return cfs_error(EOVERFLOW,
				 "device number %u:%u does not fit in 32 bits",
				 major(rdev), minor(rdev));
	inode->rdev = rdev;
	return 0;
}

uint64_t cfs_inode_size(const cfs_inode *inode)
{
	return inode->size;
}

int cfs_inode_set_size(cfs_inode *inode, uint64_t size)
{
	if (!S_ISREG(inode->mode))
		return cfs_error(EINVAL, "size on a non-regular file");
	free(inode->content);
	inode->content = NULL;
	inode->size = size;
	return 0;
}

uint32_t cfs_inode_nlink(const cfs_inode *inode)
{
	if (inode->dir)
		return 2 + inode->dir->n_subdirs;
	return inode->nlink ? inode->nlink : 1;
}

int cfs_inode_set_target(cfs_inode *inode, const char *target)
{
	size_t len = target ? strlen(target) : 0;
	char *dup;

	if (!S_ISLNK(inode->mode))
		return cfs_error(EINVAL, "symlink target on a non-symlink");
	if (len == 0)
		return cfs_error(EINVAL, "empty symlink target");
	if (len > CFS_TARGET_MAX)
		return cfs_error(ENAMETOOLONG, "symlink target of %zu bytes",
				 len);
	dup = strdup(target);
	if (!dup)
		return -ENOMEM;
	free(inode->target);
	inode->target = dup;
	inode->size = len;
	return 0;
}

const char *cfs_inode_target(const cfs_inode *inode)
{
	return inode->target;
}

int cfs_inode_set_content(cfs_inode *inode, const void *data, size_t len)
{
	uint8_t *dup = NULL;

	if (!S_ISREG(inode->mode))
		return cfs_error(EINVAL, "content on a non-regular file");
	if (len > CFS_INLINE_MAX)
		return cfs_error(EFBIG, "inline content of %zu bytes", len);
	if (len > 0) {
		dup = malloc(len);
		if (!dup)
			return -ENOMEM;
		memcpy(dup, data, len);
	}
	free(inode->content);
	inode->content = dup;
	inode->size = len;
	inode->has_digest = false;
	free(inode->payload);
	inode->payload = NULL;
	return 0;
}

const void *cfs_inode_content(const cfs_inode *inode)
{
	return inode->content;
}

int cfs_inode_set_digest(cfs_inode *inode,
			 const uint8_t digest[CFS_DIGEST_SIZE])
{
	if (!S_ISREG(inode->mode))
		return cfs_error(EINVAL, "digest on a non-regular file");
	if (!digest) {
		inode->has_digest = false;
		return 0;
	}
	memcpy(inode->digest, digest, CFS_DIGEST_SIZE);
	inode->has_digest = true;
	return 0;
}

const uint8_t *cfs_inode_digest(const cfs_inode *inode)
{
	return inode->has_digest ? inode->digest : NULL;
}

int cfs_inode_set_payload(cfs_inode *inode, const char *payload)
{
	char *dup = NULL;

	if (payload) {
		if (strlen(payload) > CFS_TARGET_MAX)
			return cfs_error(ENAMETOOLONG, "payload of %zu bytes",
					 strlen(payload));
		dup = strdup(payload);
		if (!dup)
			return -ENOMEM;
	}
	free(inode->payload);
	inode->payload = dup;
	return 0;
}

const char *cfs_inode_payload(const cfs_inode *inode)
{
	return inode->payload;
}

int cfs_inode_set_object(cfs_inode *inode,
			 const uint8_t digest[CFS_DIGEST_SIZE])
{
	char path[CFS_DIGEST_HEX_SIZE + 2];
	int r;

	r = cfs_inode_set_digest(inode, digest);
	if (r < 0)
		return r;
	free(inode->content);
	inode->content = NULL;
	cfs_digest_to_object_path(digest, path);
	return cfs_inode_set_payload(inode, path);
}

/* ---- xattrs ---------------------------------------------------------- */

size_t cfs_xattr_entry_size(const char *name, size_t value_len)
{
	const char *suffix;

	cfs_erofs_xattr_index(name, &suffix);
	return CFS_ROUND_UP(sizeof(struct erofs_xattr_entry) + strlen(suffix) +
				    value_len,
			    4);
}

int cfs_xattr_name_check(const char *name)
{
	const char *suffix;
	size_t len = strlen(name);

	if (len == 0)
		return cfs_error(EINVAL, "empty xattr name");
	if (len > CFS_NAME_MAX)
		return cfs_error(ERANGE, "xattr name of %zu bytes", len);
	cfs_erofs_xattr_index(name, &suffix);
	(void)suffix;
	return 0;
}

static ssize_t xattr_find(const cfs_inode *inode, const char *name,
			  size_t *insert)
{
	size_t lo = 0, hi = inode->n_xattrs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, inode->xattrs[mid].name);
		if (c == 0)
			return (ssize_t)mid;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (insert)
		*insert = lo;
	return -1;
}

int cfs_inode_set_xattr(cfs_inode *inode, const char *name, const void *value,
			size_t len)
{
	size_t insert = 0, newsize;
	ssize_t at;
	uint8_t *v = NULL;
	int r;

	r = cfs_xattr_name_check(name);
	if (r < 0)
		return r;
	if (len > CFS_XATTR_VALUE_MAX)
		return cfs_error(ERANGE, "xattr %s: value of %zu bytes", name,
				 len);
	at = xattr_find(inode, name, &insert);
	newsize = inode->xattrs_bytes + cfs_xattr_entry_size(name, len);
	if (at >= 0)
		newsize -= cfs_xattr_entry_size(name, inode->xattrs[at].len);
	if (newsize > CFS_XATTRS_INODE_MAX)
		return cfs_error(ERANGE,
				 "xattr %s: more than %d bytes of xattrs", name,
				 CFS_XATTRS_INODE_MAX);
	v = malloc(len ? len : 1);
	if (!v)
		return -ENOMEM;
	if (len)
		memcpy(v, value, len);
	if (at >= 0) {
		free(inode->xattrs[at].value);
		inode->xattrs[at].value = v;
		inode->xattrs[at].len = (uint32_t)len;
	} else {
		struct cfs_xattr *n;
		char *dup = strdup(name);
		if (!dup) {
			free(v);
			return -ENOMEM;
		}
		n = reallocarray(inode->xattrs, inode->n_xattrs + 1,
				 sizeof(*n));
		if (!n) {
			free(v);
			free(dup);
			return -ENOMEM;
		}
		inode->xattrs = n;
		memmove(n + insert + 1, n + insert,
			(inode->n_xattrs - insert) * sizeof(*n));
		n[insert] = (struct cfs_xattr){ dup, v, (uint32_t)len };
		inode->n_xattrs++;
	}
	inode->xattrs_bytes = newsize;
	return 0;
}

int cfs_inode_remove_xattr(cfs_inode *inode, const char *name)
{
	ssize_t at = xattr_find(inode, name, NULL);
	struct cfs_xattr *x;

	if (at < 0)
		return -ENODATA;
	x = &inode->xattrs[at];
	inode->xattrs_bytes -= cfs_xattr_entry_size(x->name, x->len);
	free(x->name);
	free(x->value);
	memmove(x, x + 1, (inode->n_xattrs - (size_t)at - 1) * sizeof(*x));
	inode->n_xattrs--;
	return 0;
}

size_t cfs_inode_xattr_count(const cfs_inode *inode)
{
	return inode->n_xattrs;
}

int cfs_inode_xattr_at(const cfs_inode *inode, size_t i, const char **name,
		       const void **value, size_t *len)
{
	if (i >= inode->n_xattrs)
		return -ENOENT;
	*name = inode->xattrs[i].name;
	*value = inode->xattrs[i].value;
	*len = inode->xattrs[i].len;
	return 0;
}

const void *cfs_inode_xattr(const cfs_inode *inode, const char *name,
			    size_t *len)
{
	ssize_t at = xattr_find(inode, name, NULL);

	if (at < 0)
		return NULL;
	if (len)
		*len = inode->xattrs[at].len;
	return inode->xattrs[at].value;
}

/* ---- directories ----------------------------------------------------- */

static int dentry_cmp(const void *a, const void *b)
{
	const struct cfs_dentry *x = a, *y = b;

	return strcmp(x->name, y->name);
}

static int dentry_pcmp(const void *a, const void *b)
{
	return dentry_cmp(*(const struct cfs_dentry *const *)a,
			  *(const struct cfs_dentry *const *)b);
}

/*
 * Whether directory @dir is @ancestor or below it. An empty directory holds
 * nothing but itself, which answers at once for every directory a source
 * creates on its way down a path: only whole subtrees (the reader and dir:
 * link them bottom up, under parents not linked yet) cost the walk up, so
 * building a tree of depth d costs O(d), not O(d^2).
 */
static bool dir_holds(const cfs_inode *ancestor, const cfs_inode *dir)
{
	if (ancestor == dir)
		return true;
	if (ancestor->dir->count == 0)
		return false;
	for (const cfs_inode *p = dir; p; p = p->dir->parent)
		if (p == ancestor)
			return true;
	return false;
}

int cfs_dir_link(cfs_inode *dir, const char *name, cfs_inode *child)
{
	struct cfs_dir *d = dir->dir;
	struct cfs_dentry *de;
	void *slot;
	int r;

	if (!d)
		return cfs_error(ENOTDIR, "%s: parent is not a directory",
				 name);
	r = cfs_name_check(name);
	if (r < 0)
		return cfs_error(-r, "invalid file name of %zu bytes",
				 strlen(name));
	if (child->dir) {
		if (child->dir->parent || child->nlink)
			return cfs_error(EMLINK, "%s: directory linked twice",
					 name);
		if (dir_holds(child, dir))
			return cfs_error(ELOOP, "%s: directory inside itself",
					 name);
	}
	if (d->count == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		struct cfs_dentry **n =
			reallocarray(d->entries, cap, sizeof(*n));
		if (!n)
			return -ENOMEM;
		d->entries = n;
		d->cap = cap;
	}
	de = calloc(1, sizeof(*de));
	if (!de)
		return -ENOMEM;
	de->name = strdup(name);
	if (!de->name) {
		free(de);
		return -ENOMEM;
	}
	slot = tsearch(de, &d->index, dentry_cmp);
	if (!slot) {
		free(de->name);
		free(de);
		return -ENOMEM;
	}
	if (*(struct cfs_dentry **)slot != de) {
		free(de->name);
		free(de);
		return cfs_error(EEXIST, "%s: entry exists", name);
	}
	de->inode = cfs_inode_ref(child);
	de->index = d->count;
	if (d->count > 0 && strcmp(d->entries[d->count - 1]->name, name) > 0)
		d->sorted = false;
	d->entries[d->count++] = de;
	child->nlink++;
	if (child->dir) {
		child->dir->parent = dir;
		d->n_subdirs++;
	}
	return 0;
}

static struct cfs_dentry *dir_find(const cfs_inode *dir, const char *name)
{
	struct cfs_dentry key = { .name = (char *)name };
	void *slot;

	if (!dir->dir)
		return NULL;
	slot = tfind(&key, &dir->dir->index, dentry_cmp);
	return slot ? *(struct cfs_dentry **)slot : NULL;
}

int cfs_dir_unlink(cfs_inode *dir, const char *name)
{
	struct cfs_dir *d = dir->dir;
	struct cfs_dentry *de = dir_find(dir, name);
	size_t i;

	if (!de)
		return -ENOENT;
	tdelete(de, &d->index, dentry_cmp);
	i = de->index;
	if (i != d->count - 1) {
		d->entries[i] = d->entries[d->count - 1];
		d->entries[i]->index = i;
		d->sorted = false;
	}
	d->count--;
	if (de->inode->dir)
		d->n_subdirs--;
	dentry_free(de);
	return 0;
}

int cfs_dir_get_tag(const cfs_inode *dir, const char *name, uint32_t *tag)
{
	struct cfs_dentry *de = dir_find(dir, name);

	if (!de)
		return -ENOENT;
	*tag = de->tag;
	return 0;
}

int cfs_dir_set_tag(cfs_inode *dir, const char *name, uint32_t tag)
{
	struct cfs_dentry *de = dir_find(dir, name);

	if (!de)
		return -ENOENT;
	de->tag = tag;
	return 0;
}

cfs_inode *cfs_dir_parent(const cfs_inode *dir)
{
	return dir->dir ? dir->dir->parent : NULL;
}

cfs_inode *cfs_dir_lookup(const cfs_inode *dir, const char *name)
{
	struct cfs_dentry *de = dir_find(dir, name);

	return de ? de->inode : NULL;
}

size_t cfs_dir_count(const cfs_inode *dir)
{
	return dir->dir ? dir->dir->count : 0;
}

void cfs_dir_sort(cfs_inode *dir)
{
	struct cfs_dir *d = dir->dir;

	if (!d || d->sorted)
		return;
	qsort(d->entries, d->count, sizeof(d->entries[0]), dentry_pcmp);
	for (size_t i = 0; i < d->count; i++)
		d->entries[i]->index = i;
	d->sorted = true;
}

int cfs_dir_entry_at(cfs_inode *dir, size_t i, const char **name,
		     cfs_inode **child)
{
	if (!dir->dir || i >= dir->dir->count)
		return -ENOENT;
	cfs_dir_sort(dir);
	*name = dir->dir->entries[i]->name;
	*child = dir->dir->entries[i]->inode;
	return 0;
}

cfs_inode *cfs_tree_lookup(cfs_inode *root, const char *path)
{
	cfs_inode *cur = root;
	const char *p = path;

	while (cur) {
		char name[CFS_NAME_MAX + 1];
		size_t len;

		while (*p == '/')
			p++;
		if (!*p)
			return cur;
		len = strcspn(p, "/");
		if (len > CFS_NAME_MAX)
			return NULL;
		memcpy(name, p, len);
		name[len] = '\0';
		p += len;
		cur = cfs_dir_lookup(cur, name);
	}
	return NULL;
}

/* One directory on cfs_tree_walk's stack; next: its next entry. */
struct frame {
	cfs_inode *dir;
	size_t next;
};

/* Bytes of a path too deep for the tree that a message shows. */
#define PATH_SHOWN 160

/* The walk met an entry below CFS_TREE_DEPTH_MAX levels: name its path
 * (the entries last visited in each frame), cut to its start. */
static int walk_too_deep(struct frame *stack, size_t depth)
{
	char path[PATH_SHOWN + 4];
	size_t i, len = 0;

	for (i = 0; i < depth && len <= PATH_SHOWN; i++) {
		const char *name;
		cfs_inode *child;

		cfs_dir_entry_at(stack[i].dir, stack[i].next - 1, &name,
				 &child);
		len += (size_t)snprintf(path + len, PATH_SHOWN + 1 - len, "/%s",
					name);
	}
	if (i < depth || len > PATH_SHOWN)
		memcpy(path + CFS_MIN(len, PATH_SHOWN), "...", 4);
	return cfs_error(ELOOP, "image tree: %s: deeper than %d levels", path,
			 CFS_TREE_DEPTH_MAX);
}

int cfs_tree_walk(cfs_inode *root, cfs_walk_fn visit, void *ctx)
{
	_cleanup_free_ struct frame *stack = NULL;
	size_t depth = 0, cap = 64;

	stack = malloc(cap * sizeof(*stack));
	if (!stack)
		return -ENOMEM;
	stack[depth++] = (struct frame){ root, 0 };
	while (depth > 0) {
		struct frame *f = &stack[depth - 1];
		const char *name;
		cfs_inode *child;
		int r;

		if (f->next >= cfs_dir_count(f->dir)) {
			depth--;
			continue;
		}
		cfs_dir_entry_at(f->dir, f->next++, &name, &child);
		/* with the root's frame, @depth frames: @child is at that level */
		if (depth > CFS_TREE_DEPTH_MAX)
			return walk_too_deep(stack, depth);
		r = visit(ctx, f->dir, name, child);
		if (r < 0)
			return r;
		if (r > 0 || !child->dir)
			continue;
		if (depth == cap) {
			struct frame *ns =
				reallocarray(stack, cap * 2, sizeof(*ns));
			if (!ns)
				return -ENOMEM;
			stack = ns;
			cap *= 2;
		}
		stack[depth++] = (struct frame){ child, 0 };
	}
	return 0;
}
