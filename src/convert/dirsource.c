/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * The dir: source: a directory tree read into a cfs tree, hardlinks kept
 * (unlike mkcomposefs, which gives each name its own inode).
 */
#include <errno.h>
#include <fcntl.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "common/workq.h"
#include "convert/convert-internal.h"
#include "image/tree-internal.h"

#define READ_BUF_SIZE (1024 * 1024)
/* Bytes of a path that a depth error shows. */
#define PATH_SHOWN 160
/* Threads that hash and store file contents while the walk goes on, and
 * the files opened for them at most (each holds a descriptor). */
#define FILE_WORKERS 2
#define FILE_QUEUE_MAX 128

struct hardlink {
	dev_t dev;
	ino_t ino;
	cfs_inode *inode; /* borrowed: the tree holds it */
};

/* A regular file to hash (and store), the walk's @index-th. */
struct file_job {
	int fd;
	uint64_t size;
	cfs_inode *inode; /* borrowed: the tree holds it */
	char *path;
	uint8_t digest[CFS_DIGEST_SIZE];
};

struct dirsource {
	const char *root; /* as the source names it */
	struct cfs_objects *objs;
	cfs_convert_stats *stats;
	void *hardlinks; /* tsearch tree of struct hardlink */
	/* the workers (see hash_and_store()), and every job handed to them,
	 * in walk order */
	struct cfs_workq *workq;
	struct file_job **jobs;
	size_t n_jobs, jobs_cap;
};

static int hardlink_cmp(const void *a, const void *b)
{
	const struct hardlink *x = a, *y = b;

	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return 0;
}

static int read_xattrs(cfs_inode *inode, int dirfd, const char *name,
		       const char *path)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *list = NULL;
	char proc[64];
	ssize_t len;

	fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return cfs_error_errno(errno, "%s", path);
	/* The /proc link reaches the inode itself, symlinks included. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	len = listxattr(proc, NULL, 0);
	if (len < 0) {
		if (errno == ENOTSUP)
			return 0;
		return cfs_error_errno(errno, "%s: listing xattrs", path);
	}
	if (len == 0)
		return 0;
	list = malloc((size_t)len);
	if (!list)
		return -ENOMEM;
	len = listxattr(proc, list, (size_t)len);
	if (len < 0)
		return cfs_error_errno(errno, "%s: listing xattrs", path);
	for (char *k = list; k < list + len; k += strlen(k) + 1) {
		_cleanup_free_ char *value = NULL;
		ssize_t vlen = getxattr(proc, k, NULL, 0);
		int r;

		if (vlen < 0)
			return cfs_error_errno(errno, "%s: xattr %s", path, k);
		value = malloc((size_t)vlen + 1);
		if (!value)
			return -ENOMEM;
		vlen = getxattr(proc, k, value, (size_t)vlen);
		if (vlen < 0)
			return cfs_error_errno(errno, "%s: xattr %s", path, k);
		r = cfs_inode_set_xattr(inode, k, value, (size_t)vlen);
		if (r < 0)
			return cfs_error_prefix(-r, "%s", path);
	}
	return 0;
}

/* Hash a whole file, checking it still has the size stat() saw. */
static int hash_fd(uint8_t *buf, int fd, uint64_t size,
		   uint8_t digest[CFS_DIGEST_SIZE], const char *path)
{
	cfs_verity *v = NULL;
	uint64_t off = 0;
	int r;

	r = cfs_verity_new(&v);
	while (r == 0) {
		ssize_t n = pread(fd, buf, READ_BUF_SIZE, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = cfs_error_errno(errno, "%s: read", path);
			break;
		}
		if (n == 0)
			break;
		off += (uint64_t)n;
		r = cfs_verity_update(v, buf, (size_t)n);
	}
	if (r == 0)
		r = cfs_verity_final(v, digest);
	cfs_verity_free(v);
	if (r == 0 && off != size)
		r = cfs_error(EIO, "%s: changed while it was being read", path);
	return r;
}

/*
 * Hashing (and copying) the contents is most of the work of a dir:
 * source, and files are independent: workers take them from a queue the
 * walk fills, and only the walk touches the tree. Their digests are set
 * in the tree once the workers are done (apply_jobs()). The queue's rule
 * for errors makes them those of one thread doing it all in walk order.
 */
static int hash_and_store(void *ctx, void *opaque, void *buf)
{
	struct dirsource *ds = ctx;
	struct file_job *job = opaque;
	int r = hash_fd(buf, job->fd, job->size, job->digest, job->path);

	if (r == 0 && ds->objs)
		r = cfs_objects_add_fd(ds->objs, job->fd, job->size,
				       job->digest, job->path, buf,
				       READ_BUF_SIZE);
	return r;
}

static void close_job(void *ctx, void *opaque)
{
	struct file_job *job = opaque;

	(void)ctx;
	close(job->fd);
	job->fd = -1;
}

static const struct cfs_workq_ops file_workq_ops = {
	.run = hash_and_store,
	.release = close_job,
	.scratch_size = READ_BUF_SIZE,
};

/* Give each file its object, in walk order. */
static int apply_jobs(struct dirsource *ds, int r)
{
	for (size_t i = 0; i < ds->n_jobs; i++) {
		struct file_job *job = ds->jobs[i];

		if (r == 0)
			r = cfs_inode_set_object(job->inode, job->digest);
		if (r < 0 && !cfs_error_message()[0])
			cfs_error_errno(-r, "%s", job->path);
		free(job->path);
		free(job);
	}
	free(ds->jobs);
	return r;
}

/* Queue @fd (given away) of @inode for a worker. */
static int queue_file(struct dirsource *ds, cfs_inode *inode, int fd,
		      uint64_t size, const char *path)
{
	struct file_job *job = calloc(1, sizeof(*job));

	if (!job || !(job->path = strdup(path))) {
		free(job);
		close(fd);
		return -ENOMEM;
	}
	job->fd = fd;
	job->size = size;
	job->inode = inode;
	if (ds->n_jobs == ds->jobs_cap) {
		size_t cap = ds->jobs_cap ? ds->jobs_cap * 2 : 256;
		struct file_job **n = reallocarray(ds->jobs, cap, sizeof(*n));

		if (!n) {
			free(job->path);
			free(job);
			close(fd);
			return -ENOMEM;
		}
		ds->jobs = n;
		ds->jobs_cap = cap;
	}
	ds->jobs[ds->n_jobs++] = job;
	/* an error here is that of a file before this one: the walk need
	 * not go on */
	return cfs_workq_push(ds->workq, job, 1);
}

static int load_regular(struct dirsource *ds, cfs_inode *inode, int dirfd,
			const char *name, const struct stat *st,
			const char *path)
{
	int fd = -1;
	uint64_t size = (uint64_t)st->st_size;
	int r;

	if (size == 0)
		return 0;
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return cfs_error_errno(errno, "%s", path);
	if (size <= CFS_INLINE_DEFAULT) {
		uint8_t small[CFS_INLINE_DEFAULT + 1];
		size_t got;

		r = cfs_read_full(fd, small, sizeof(small), &got);
		close(fd);
		if (r < 0)
			return cfs_error_errno(-r, "%s: read", path);
		if (got != size)
			return cfs_error(EIO,
					 "%s: changed while it was being read",
					 path);
		return cfs_inode_set_content(inode, small, got);
	}
	r = cfs_inode_set_size(inode, size);
	if (r < 0) {
		close(fd);
		return r;
	}
	return queue_file(ds, inode, fd, size, path);
}

/* The target buffer lives here, not in the frame of load_entry(), which
 * the recursion repeats once a level. */
static int load_symlink(cfs_inode *inode, int dirfd, const char *name,
			const char *path)
{
	_cleanup_free_ char *target = malloc(CFS_TARGET_MAX + 2);
	ssize_t n;

	if (!target)
		return -ENOMEM;
	n = readlinkat(dirfd, name, target, CFS_TARGET_MAX + 1);
	if (n < 0)
		return cfs_error_errno(errno, "%s", path);
	target[n] = '\0';
	return cfs_inode_set_target(inode, target);
}

/* @path (the source root, "/", the path inside it) is below
 * CFS_TREE_DEPTH_MAX levels, so over 4 KiB: show the start of it. */
static int too_deep(const struct dirsource *ds, const char *path)
{
	const char *rel = path + strlen(ds->root) + 1;
	bool cut = strlen(rel) > PATH_SHOWN;

	return cfs_error(ELOOP, "dir:%s: %.*s%s: deeper than %d levels",
			 ds->root, PATH_SHOWN, rel, cut ? "..." : "",
			 CFS_TREE_DEPTH_MAX);
}

static int load_dir(struct dirsource *ds, cfs_inode *dir, int dirfd,
		    const char *path, int level);

/* Create the inode for @name (in @dirfd), fully loaded. @level is that of
 * @parent: the root's is 0. */
static int load_entry(struct dirsource *ds, cfs_inode *parent, int dirfd,
		      const char *name, const char *path, int level)
{
	struct stat st;
	cfs_inode *inode = NULL;
	struct hardlink key, *hl = NULL;
	int r;

	if (level >= CFS_TREE_DEPTH_MAX)
		return too_deep(ds, path);
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return cfs_error_errno(errno, "%s", path);

	if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
		void *slot;
		key = (struct hardlink){ st.st_dev, st.st_ino, NULL };
		slot = tfind(&key, &ds->hardlinks, hardlink_cmp);
		if (slot) {
			hl = *(struct hardlink **)slot;
			ds->stats->hardlinks++;
			r = cfs_dir_link(parent, name, hl->inode);
			return r < 0 ? cfs_error_prefix(-r, "%s", path) : 0;
		}
	}

	r = cfs_inode_new(&inode, st.st_mode & (S_IFMT | 07777));
	if (r < 0)
		return cfs_error_prefix(-r, "%s", path);
	cfs_inode_set_owner(inode, st.st_uid, st.st_gid);
	cfs_inode_set_mtime(inode, st.st_mtim.tv_sec,
			    (uint32_t)st.st_mtim.tv_nsec);
	r = read_xattrs(inode, dirfd, name, path);
	if (r < 0)
		goto out;

	switch (st.st_mode & S_IFMT) {
	case S_IFREG:
		r = load_regular(ds, inode, dirfd, name, &st, path);
		break;
	case S_IFLNK:
		r = load_symlink(inode, dirfd, name, path);
		break;
	case S_IFCHR:
	case S_IFBLK:
		r = cfs_inode_set_rdev(inode, st.st_rdev);
		if (r < 0)
			r = cfs_error_prefix(-r, "%s", path);
		break;
	case S_IFDIR: {
		_cleanup_close_ int fd =
			openat(dirfd, name,
			       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			r = cfs_error_errno(errno, "%s", path);
			break;
		}
		r = load_dir(ds, inode, fd, path, level + 1);
		break;
	}
	}
	if (r < 0)
		goto out;
	cfs_stats_count_inode(ds->stats, inode);
	r = cfs_dir_link(parent, name, inode);
	if (r < 0) {
		r = cfs_error_prefix(-r, "%s", path);
		goto out;
	}
	if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
		hl = malloc(sizeof(*hl));
		if (!hl) {
			r = -ENOMEM;
			goto out;
		}
		*hl = (struct hardlink){ st.st_dev, st.st_ino, inode };
		if (!tsearch(hl, &ds->hardlinks, hardlink_cmp)) {
			free(hl);
			r = -ENOMEM;
		}
	}
out:
	if (r < 0 && !cfs_error_message()[0])
		cfs_error_errno(-r, "%s", path);
	cfs_inode_unref(inode);
	return r;
}

static int load_dir(struct dirsource *ds, cfs_inode *dir, int dirfd,
		    const char *path, int level)
{
	char **names = NULL;
	size_t n = 0;
	/* in name order, so that errors and object writes do not depend
	 * on readdir */
	int r = cfs_dir_names(dirfd, &names, &n);

	if (r < 0)
		return cfs_error_errno(-r, "%s: reading directory", path);
	for (size_t i = 0; r == 0 && i < n; i++) {
		_cleanup_free_ char *child = NULL;
		if (asprintf(&child, "%s/%s", path, names[i]) < 0) {
			r = -ENOMEM;
			break;
		}
		r = load_entry(ds, dir, dirfd, names[i], child, level);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r;
}

int cfs_dirsource_load(cfs_inode **root_out, const char *path,
		       struct cfs_objects *objs, cfs_convert_stats *stats)
{
	struct dirsource ds = { .root = path, .objs = objs, .stats = stats };
	_cleanup_close_ int fd = -1;
	cfs_inode *root = NULL;
	struct stat st;
	int r, r2;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return cfs_error_errno(errno, "dir:%s", path);
	if (fstat(fd, &st) < 0)
		return cfs_error_errno(errno, "dir:%s", path);
	r = cfs_workq_new(&ds.workq, &file_workq_ops, &ds, FILE_WORKERS,
			  FILE_QUEUE_MAX);
	if (r < 0)
		return r;
	r = cfs_inode_new(&root, st.st_mode & (S_IFMT | 07777));
	if (r == 0) {
		cfs_inode_set_owner(root, st.st_uid, st.st_gid);
		cfs_inode_set_mtime(root, st.st_mtim.tv_sec,
				    (uint32_t)st.st_mtim.tv_nsec);
		r = read_xattrs(root, fd, ".", path);
	}
	if (r == 0)
		r = load_dir(&ds, root, fd, path, 0);
	/* A worker's error comes first: its file was queued before
	 * whatever the walk met after it. */
	r2 = cfs_workq_wait(ds.workq);
	if (r2 < 0)
		r = r2;
	cfs_workq_free(ds.workq);
	r = apply_jobs(&ds, r);
	if (r == 0)
		cfs_stats_count_inode(stats, root);
	tdestroy(ds.hardlinks, free);
	if (r < 0) {
		cfs_inode_unref(root);
		return r;
	}
	*root_out = root;
	return 0;
}
