/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
#include "convert/apply.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "image/tree-internal.h"

#define WHITEOUT_PREFIX ".wh."
#define WHITEOUT_OPAQUE ".wh..wh..opq"
/* ".wh..wh.*" names other than the opaque marker are aufs bookkeeping
 * (hardlink directories); Docker skips them and so do we. */
#define WHITEOUT_META_PREFIX ".wh..wh."

struct path {
	char buf[CFS_LAYER_PATH_MAX + 1];
	const char *comp[CFS_LAYER_PATH_MAX / 2 + 1];
	size_t n;
};

/* A directory met while resolving a path, and its level (the root is
 * level 0). Levels are counted on the way, through symlinks and "..", so
 * that no entry goes below CFS_TREE_DEPTH_MAX levels. */
struct place {
	cfs_inode *dir;
	size_t level;
};

/* Bytes of a path that a depth error shows. */
#define PATH_SHOWN 160

static int new_dir(cfs_inode **out)
{
	int r = cfs_inode_new(out, S_IFDIR | 0755);

	/* owner root, mtime 0: what the corpus and umoci expect of
	 * directories a layer implies without listing them */
	return r;
}

int cfs_applier_init(struct cfs_applier *a)
{
	memset(a, 0, sizeof(*a));
	a->where = "layer";
	return new_dir(&a->root);
}

void cfs_applier_fini(struct cfs_applier *a)
{
	cfs_inode_unref(a->root);
	a->root = NULL;
}

void cfs_applier_begin_layer(struct cfs_applier *a, uint32_t layer,
			     const char *where)
{
	a->layer = layer;
	a->where = where;
}

/* Split @raw into components: "./" prefixes, leading and repeated slashes
 * and "." components go; ".." is refused (a layer has no business above
 * its root, and containerd refuses it too). */
static int split_path(struct cfs_applier *a, const char *raw, struct path *p)
{
	size_t len = strlen(raw);
	char *s;

	if (len > CFS_LAYER_PATH_MAX)
		return cfs_error(ENAMETOOLONG,
				 "%s: path of %zu bytes (limit %d)", a->where,
				 len, CFS_LAYER_PATH_MAX);
	memcpy(p->buf, raw, len + 1);
	p->n = 0;
	s = p->buf;
	while (*s) {
		char *end;

		while (*s == '/')
			s++;
		if (!*s)
			break;
		end = strchr(s, '/');
		if (end)
			*end = '\0';
		if (strcmp(s, "..") == 0)
			return cfs_error(EINVAL, "%s: %s: path contains '..'",
					 a->where, raw);
		/* A whiteout names a file of up to NAME_MAX bytes, so it may
		 * itself be 4 bytes longer: docker writes such whiteouts and
		 * containerd applies them (nothing gets the long name). */
		if (strlen(s) > CFS_NAME_MAX &&
		    (end ||
		     strncmp(s, WHITEOUT_PREFIX, strlen(WHITEOUT_PREFIX)) ||
		     strlen(s) > CFS_NAME_MAX + strlen(WHITEOUT_PREFIX)))
			return cfs_error(ENAMETOOLONG,
					 "%s: %s: name of %zu bytes (limit %d)",
					 a->where, raw, strlen(s),
					 CFS_NAME_MAX);
		if (strcmp(s, ".") != 0)
			p->comp[p->n++] = s;
		if (!end)
			break;
		s = end + 1;
	}
	return 0;
}

/* @raw would put an entry below CFS_TREE_DEPTH_MAX levels. Only a long
 * path, or one through symlinks, gets there: show its start, so that the
 * reason stays within the one line of the message. */
static int too_deep(struct cfs_applier *a, const char *raw)
{
	bool cut = strlen(raw) > PATH_SHOWN;

	return cfs_error(ELOOP, "%s: %.*s%s: deeper than %d levels", a->where,
			 PATH_SHOWN, raw, cut ? "..." : "", CFS_TREE_DEPTH_MAX);
}

static int make_implicit_dir(struct cfs_applier *a, const char *raw,
			     struct place parent, const char *name,
			     cfs_inode **out)
{
	cfs_inode *dir = NULL;
	int r;

	if (parent.level >= CFS_TREE_DEPTH_MAX)
		return too_deep(a, raw);
	r = new_dir(&dir);
	if (r == 0)
		r = cfs_dir_link(parent.dir, name, dir);
	if (r == 0)
		r = cfs_dir_set_tag(parent.dir, name, a->layer);
	cfs_inode_unref(dir); /* the tree holds it */
	if (r < 0)
		return r;
	*out = dir;
	return 0;
}

static int walk(struct cfs_applier *a, const char *raw, struct place start,
		const char *const *comp, size_t n, int *budget,
		struct place *out);

/* Follow symlink @link found in directory @dir to the directory it names,
 * inside the tree: absolute targets start at the root, ".." stops there. */
static int follow(struct cfs_applier *a, const char *raw, struct place dir,
		  cfs_inode *link, int *budget, struct place *out)
{
	struct path *p;
	const char *target = cfs_inode_target(link);
	struct place cur =
		target[0] == '/' ? (struct place){ a->root, 0 } : dir;
	size_t i = 0;
	int r = 0;

	if (--(*budget) < 0)
		return cfs_error(ELOOP,
				 "%s: %s: too many levels of symbolic links",
				 a->where, raw);
	p = malloc(sizeof(*p));
	if (!p)
		return -ENOMEM;
	/* split by hand: here ".." is legitimate and clamps at the root */
	snprintf(p->buf, sizeof(p->buf), "%s", target);
	p->n = 0;
	for (char *s = strtok(p->buf, "/"); s; s = strtok(NULL, "/"))
		if (strcmp(s, ".") != 0)
			p->comp[p->n++] = s;
	while (r == 0 && i < p->n) {
		if (strcmp(p->comp[i], "..") == 0) {
			cfs_inode *up = cfs_dir_parent(cur.dir);
			/* only the root has no parent */
			if (up)
				cur = (struct place){ up, cur.level - 1 };
			i++;
			continue;
		}
		/* walk up to the next ".." */
		size_t j = i;
		while (j < p->n && strcmp(p->comp[j], "..") != 0)
			j++;
		r = walk(a, raw, cur, p->comp + i, j - i, budget, &cur);
		i = j;
	}
	free(p);
	if (r == 0)
		*out = cur;
	return r;
}

/* Walk @n components from @start, creating missing directories and
 * following symlinks; the result must be a directory. */
static int walk(struct cfs_applier *a, const char *raw, struct place start,
		const char *const *comp, size_t n, int *budget,
		struct place *out)
{
	struct place cur = start;
	int r;

	for (size_t i = 0; i < n; i++) {
		struct place next = { cfs_dir_lookup(cur.dir, comp[i]),
				      cur.level + 1 };

		if (!next.dir) {
			r = make_implicit_dir(a, raw, cur, comp[i], &next.dir);
			if (r < 0)
				return r;
		} else if (cfs_inode_type(next.dir) == S_IFLNK) {
			r = follow(a, raw, cur, next.dir, budget, &next);
			if (r < 0)
				return r;
		}
		if (cfs_inode_type(next.dir) != S_IFDIR)
			return cfs_error(ENOTDIR,
					 "%s: %s: '%s' is not a directory",
					 a->where, raw, comp[i]);
		cur = next;
	}
	*out = cur;
	return 0;
}

/* The directory that is to hold the last component of @p, and the check
 * that the entry fits in CFS_TREE_DEPTH_MAX levels. */
static int parent_of(struct cfs_applier *a, const char *raw,
		     const struct path *p, cfs_inode **dir)
{
	int budget = CFS_SYMLINK_FOLLOW_MAX;
	struct place at;
	int r;

	r = walk(a, raw, (struct place){ a->root, 0 }, p->comp, p->n - 1,
		 &budget, &at);
	if (r < 0)
		return r;
	if (at.level >= CFS_TREE_DEPTH_MAX)
		return too_deep(a, raw);
	*dir = at.dir;
	return 0;
}

static int set_meta(struct cfs_applier *a, cfs_inode *inode,
		    const struct cfs_layer_entry *e)
{
	int r;

	r = cfs_inode_set_mode(inode, (cfs_inode_mode(inode) & S_IFMT) |
					      (e->mode & 07777));
	if (r == 0)
		cfs_inode_set_owner(inode, e->uid, e->gid);
	if (r == 0)
		r = cfs_inode_set_mtime(inode, e->mtime_sec, e->mtime_nsec);
	/* The entry lists all xattrs the file has; drop any it replaces. */
	while (r == 0 && cfs_inode_xattr_count(inode) > 0) {
		const char *name;
		const void *v;
		size_t len;
		cfs_inode_xattr_at(inode, 0, &name, &v, &len);
		r = cfs_inode_remove_xattr(inode, name);
	}
	for (size_t i = 0; r == 0 && i < e->n_xattrs; i++)
		r = cfs_inode_set_xattr(inode, e->xattrs[i].name,
					e->xattrs[i].value, e->xattrs[i].len);
	if (r < 0)
		return cfs_error_prefix(-r, "%s: %s", a->where, e->path);
	return 0;
}

/* Remove @name from @dir if a lower layer put it there. */
static int whiteout(struct cfs_applier *a, cfs_inode *dir, const char *name)
{
	uint32_t tag;

	if (cfs_dir_get_tag(dir, name, &tag) < 0 || tag >= a->layer)
		return 0;
	return cfs_dir_unlink(dir, name);
}

static int opaque(struct cfs_applier *a, cfs_inode *dir)
{
	_cleanup_free_ const char **names = NULL;
	size_t n = cfs_dir_count(dir), k = 0;
	int r = 0;

	if (n == 0)
		return 0;
	names = malloc(n * sizeof(*names));
	if (!names)
		return -ENOMEM;
	/* Collect first: unlinking reorders the directory. Names stay valid
	 * until their entry goes, and each is removed only once. */
	for (size_t i = 0; i < n; i++) {
		const char *name;
		cfs_inode *child;
		uint32_t tag;

		cfs_dir_entry_at(dir, i, &name, &child);
		cfs_dir_get_tag(dir, name, &tag);
		if (tag < a->layer)
			names[k++] = name;
	}
	for (size_t i = 0; r == 0 && i < k; i++) {
		/* copy: the name dies with its entry */
		char tmp[CFS_NAME_MAX + 1];
		snprintf(tmp, sizeof(tmp), "%s", names[i]);
		names[i] = NULL;
		r = cfs_dir_unlink(dir, tmp);
	}
	return r;
}

/* keep_whiteouts: NAME in @dir becomes an overlayfs whiteout, a
 * character device 0:0 with the entry's owner, mode bits and mtime. */
static int keep_whiteout(struct cfs_applier *a, cfs_inode *dir,
			 const char *name, const struct cfs_layer_entry *e)
{
	cfs_inode *inode = NULL;
	int r;

	r = cfs_inode_new(&inode, S_IFCHR | (e->mode & 07777));
	if (r == 0) {
		cfs_inode_set_owner(inode, e->uid, e->gid);
		r = cfs_inode_set_mtime(inode, e->mtime_sec, e->mtime_nsec);
	}
	if (r == 0)
		r = cfs_inode_set_rdev(inode, 0);
	if (r == 0) {
		cfs_dir_unlink(dir, name);
		r = cfs_dir_link(dir, name, inode);
	}
	if (r == 0)
		r = cfs_dir_set_tag(dir, name, a->layer);
	cfs_inode_unref(inode);
	if (r < 0)
		return cfs_error_prefix(-r, "%s: %s", a->where, e->path);
	return 0;
}

static int apply_whiteout(struct cfs_applier *a,
			  const struct cfs_layer_entry *e, const struct path *p)
{
	const char *base = p->comp[p->n - 1];
	const char *target = base + strlen(WHITEOUT_PREFIX);
	cfs_inode *dir;
	int r;

	if (strcmp(base, WHITEOUT_OPAQUE) == 0) {
		r = parent_of(a, e->path, p, &dir);
		if (r == 0 && a->keep_whiteouts) {
			r = cfs_inode_set_xattr(dir, "trusted.overlay.opaque",
						"y", 1);
			if (r < 0)
				r = cfs_error_prefix(-r, "%s: %s", a->where,
						     e->path);
			return r;
		}
		return r < 0 ? r : opaque(a, dir);
	}
	if (strncmp(base, WHITEOUT_META_PREFIX, strlen(WHITEOUT_META_PREFIX)) ==
	    0)
		return 0;
	if (!*target || strcmp(target, ".") == 0 || strcmp(target, "..") == 0)
		return cfs_error(EINVAL, "%s: %s: whiteout of '%s'", a->where,
				 e->path, *target ? target : "");
	r = parent_of(a, e->path, p, &dir);
	if (r < 0)
		return r;
	if (a->keep_whiteouts)
		return keep_whiteout(a, dir, target, e);
	return whiteout(a, dir, target);
}

static int apply_hardlink(struct cfs_applier *a,
			  const struct cfs_layer_entry *e, const struct path *p,
			  cfs_inode *dir)
{
	const char *name = p->comp[p->n - 1];
	struct path *tp;
	struct place tdir;
	cfs_inode *target;
	int r;

	tp = malloc(sizeof(*tp));
	if (!tp)
		return -ENOMEM;
	r = split_path(a, e->link ? e->link : "", tp);
	if (r == 0 && tp->n == 0)
		r = cfs_error(EINVAL, "%s: %s: hardlink to the root", a->where,
			      e->path);
	if (r == 0) {
		int budget = CFS_SYMLINK_FOLLOW_MAX;
		r = walk(a, e->path, (struct place){ a->root, 0 }, tp->comp,
			 tp->n - 1, &budget, &tdir);
	}
	if (r < 0) {
		free(tp);
		return r;
	}
	target = cfs_dir_lookup(tdir.dir, tp->comp[tp->n - 1]);
	free(tp);
	if (!target)
		return cfs_error(
			ENOENT,
			"%s: %s: hardlink to '%s', which does not exist",
			a->where, e->path, e->link);
	if (cfs_inode_type(target) == S_IFDIR)
		return cfs_error(EPERM, "%s: %s: hardlink to directory '%s'",
				 a->where, e->path, e->link);
	if (cfs_dir_lookup(dir, name) == target)
		return cfs_dir_set_tag(dir, name, a->layer);
	cfs_inode_ref(target); /* survive the unlink below if it is us */
	cfs_dir_unlink(dir, name);
	r = cfs_dir_link(dir, name, target);
	if (r == 0)
		r = cfs_dir_set_tag(dir, name, a->layer);
	cfs_inode_unref(target);
	if (r < 0)
		return cfs_error_prefix(-r, "%s: %s", a->where, e->path);
	return 0;
}

int cfs_applier_apply(struct cfs_applier *a, const struct cfs_layer_entry *e,
		      cfs_inode **file_out)
{
	uint32_t type = e->mode & S_IFMT;
	struct path *p;
	cfs_inode *dir, *existing, *inode = NULL;
	const char *name;
	int r;

	*file_out = NULL;
	if (++a->entries > CFS_IMAGE_ENTRIES_MAX)
		return cfs_error(E2BIG, "%s: more than %u entries in the image",
				 a->where, CFS_IMAGE_ENTRIES_MAX);
	p = malloc(sizeof(*p));
	if (!p)
		return -ENOMEM;
	r = split_path(a, e->path, p);
	if (r < 0)
		goto out;

	if (p->n == 0) {
		/* the root itself */
		if (e->hardlink || type != S_IFDIR)
			r = cfs_error(EINVAL,
				      "%s: %s: the root must be a directory",
				      a->where, e->path);
		else
			r = set_meta(a, a->root, e);
		goto out;
	}
	/* aufs keeps hardlink bodies in "/.wh..wh.plnk/": not image content */
	if (strncmp(p->comp[0], WHITEOUT_META_PREFIX,
		    strlen(WHITEOUT_META_PREFIX)) == 0 &&
	    !(p->n == 1 && strcmp(p->comp[0], WHITEOUT_OPAQUE) == 0))
		goto out;
	name = p->comp[p->n - 1];
	if (strncmp(name, WHITEOUT_PREFIX, strlen(WHITEOUT_PREFIX)) == 0) {
		r = apply_whiteout(a, e, p);
		goto out;
	}
	r = parent_of(a, e->path, p, &dir);
	if (r < 0)
		goto out;
	if (e->hardlink) {
		r = apply_hardlink(a, e, p, dir);
		goto out;
	}

	existing = cfs_dir_lookup(dir, name);
	if (type == S_IFDIR && existing &&
	    cfs_inode_type(existing) == S_IFDIR) {
		r = set_meta(a, existing, e);
		if (r == 0)
			r = cfs_dir_set_tag(dir, name, a->layer);
		goto out;
	}

	r = cfs_inode_new(&inode, type | (e->mode & 07777));
	if (r < 0) {
		r = cfs_error(EINVAL, "%s: %s: unsupported file mode 0%o",
			      a->where, e->path, e->mode);
		goto out;
	}
	r = set_meta(a, inode, e);
	if (r < 0)
		goto out;
	if (type == S_IFLNK)
		r = cfs_inode_set_target(inode, e->link ? e->link : "");
	else if (type == S_IFCHR || type == S_IFBLK)
		r = cfs_inode_set_rdev(inode, e->rdev);
	if (r < 0) {
		r = cfs_error_prefix(-r, "%s: %s", a->where, e->path);
		goto out;
	}
	if (existing)
		cfs_dir_unlink(dir, name);
	r = cfs_dir_link(dir, name, inode);
	if (r == 0)
		r = cfs_dir_set_tag(dir, name, a->layer);
	if (r < 0) {
		r = cfs_error_prefix(-r, "%s: %s", a->where, e->path);
		goto out;
	}
	if (type == S_IFREG)
		*file_out = inode;
out:
	cfs_inode_unref(inode); /* the tree holds it */
	free(p);
	return r;
}
