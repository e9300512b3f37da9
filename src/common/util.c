/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"

int cfs_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int cfs_read_full(int fd, void *buf, size_t len, size_t *got)
{
	char *p = buf;
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, p + done, len - done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	*got = done;
	return 0;
}

int cfs_atomic_open(struct cfs_atomic_file *af, int dirfd, mode_t mode)
{
	af->dirfd = dirfd;
	af->tmpname[0] = '\0';
	af->fd = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
	if (af->fd >= 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
		return -errno;

	/* No O_TMPFILE here: a hidden name that gc/fsck can recognise. */
	for (int tries = 0; tries < 100; tries++) {
		uint64_t r;
		if (getrandom(&r, sizeof(r), 0) != sizeof(r))
			return -EIO;
		snprintf(af->tmpname, sizeof(af->tmpname), ".tmp-%016llx",
			 (unsigned long long)r);
		af->fd = openat(dirfd, af->tmpname,
				O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, mode);
		if (af->fd >= 0)
			return 0;
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

int cfs_atomic_commit(struct cfs_atomic_file *af, const char *name,
		      bool replace)
{
	return cfs_atomic_commit_to(af, af->dirfd, name, replace);
}

int cfs_atomic_commit_to(struct cfs_atomic_file *af, int todir,
			 const char *name, bool replace)
{
	int r = 0;

	if (af->tmpname[0] == '\0') {
		char proc[64];

		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", af->fd);
		if (linkat(AT_FDCWD, proc, todir, name, AT_SYMLINK_FOLLOW) <
		    0) {
			r = -errno;
			if (r == -EEXIST && replace) {
				/* linkat cannot replace: link under a
				 * temporary name, then rename over. */
				char tmp[64];
				uint64_t rnd = 0;
				if (getrandom(&rnd, sizeof(rnd), 0) < 0)
					rnd = (uint64_t)getpid();
				snprintf(tmp, sizeof(tmp), ".tmp-%016llx",
					 (unsigned long long)rnd);
				if (linkat(AT_FDCWD, proc, todir, tmp,
					   AT_SYMLINK_FOLLOW) < 0) {
					r = -errno;
				} else if (renameat(todir, tmp, todir, name) <
					   0) {
					r = -errno;
					unlinkat(todir, tmp, 0);
				} else {
					r = 0;
				}
			}
		}
	} else if (renameat2(af->dirfd, af->tmpname, todir, name,
			     replace ? 0 : RENAME_NOREPLACE) < 0) {
		r = -errno;
	}
	cfs_atomic_abort(af);
	return r;
}

void cfs_atomic_abort(struct cfs_atomic_file *af)
{
	if (af->fd >= 0) {
		close(af->fd);
		af->fd = -1;
	}
	if (af->tmpname[0]) {
		/* Harmless ENOENT after a successful rename. */
		unlinkat(af->dirfd, af->tmpname, 0);
		af->tmpname[0] = '\0';
	}
}

int cfs_open_parent(const char *path, int *dirfd_out, const char **base_out)
{
	const char *slash = strrchr(path, '/');
	int fd;

	if (!slash) {
		fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		*base_out = path;
	} else {
		_cleanup_free_ char *dir =
			strndup(path, (size_t)(slash - path));
		if (!dir)
			return -ENOMEM;
		fd = open(dir[0] ? dir : "/",
			  O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		*base_out = slash + 1;
	}
	if (fd < 0)
		return -errno;
	if (!**base_out) {
		close(fd);
		return -EINVAL;
	}
	*dirfd_out = fd;
	return 0;
}

void cfs_dir_spread_subdirs(int dirfd)
{
	int flags;

	/* Best effort: a hint to the allocator, nothing depends on it. */
	if (ioctl(dirfd, FS_IOC_GETFLAGS, &flags) < 0 || (flags & FS_TOPDIR_FL))
		return;
	flags |= FS_TOPDIR_FL;
	(void)ioctl(dirfd, FS_IOC_SETFLAGS, &flags);
}

int cfs_buf_reserve(struct cfs_buf *b, size_t more)
{
	size_t cap;
	char *n;

	if (more <= b->cap - b->len)
		return 0;
	if (more > SIZE_MAX / 2 - b->len)
		return -ENOMEM;
	cap = b->cap ? b->cap : 256;
	while (cap - b->len < more)
		cap *= 2;
	n = realloc(b->buf, cap);
	if (!n)
		return -ENOMEM;
	b->buf = n;
	b->cap = cap;
	return 0;
}

int cfs_buf_add(struct cfs_buf *b, const void *data, size_t len)
{
	int r = cfs_buf_reserve(b, len);

	if (r < 0)
		return r;
	memcpy(b->buf + b->len, data, len);
	b->len += len;
	return 0;
}

int cfs_atomic_write(int dirfd, const char *name, const void *data, size_t len,
		     unsigned int flags)
{
	struct cfs_atomic_file af = { .fd = -1 };
	int r = cfs_atomic_open(&af, dirfd, 0644);

	if (r == 0)
		r = cfs_write_all(af.fd, data, len);
	if (r == 0 && (flags & CFS_ATOMIC_SYNC) && fsync(af.fd) < 0)
		r = -errno;
	if (r == 0)
		r = cfs_atomic_commit(&af, name, flags & CFS_ATOMIC_REPLACE);
	cfs_atomic_abort(&af);
	return r;
}

int cfs_result_check(const void *res, unsigned int current, const char *what)
{
	unsigned int v;

	if (!res)
		return 0;
	memcpy(&v, res, sizeof(v));
	if (v >= 1 && v <= current)
		return 0;
	return cfs_error(EINVAL,
			 "%s: result struct of version %u; this library "
			 "knows 1 to %u (set it with its _INIT macro)",
			 what, v, current);
}

void cfs_result_zero(void *res, size_t size)
{
	unsigned int v;

	memcpy(&v, res, sizeof(v));
	memset(res, 0, size);
	memcpy(res, &v, sizeof(v));
}

int cfs_strp_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int cfs_dir_names(int dirfd, char ***names, size_t *n)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	size_t cap = 0;
	DIR *d;
	int r = 0;

	*names = NULL;
	*n = 0;
	if (fd < 0 || !(d = fdopendir(fd))) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		return r;
	}
	for (errno = 0; r == 0 && (de = readdir(d)); errno = 0) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (*n == cap) {
			char **v;

			cap = cap ? 2 * cap : 64;
			v = reallocarray(*names, cap, sizeof(*v));
			if (!v) {
				r = -ENOMEM;
				break;
			}
			*names = v;
		}
		(*names)[*n] = strdup(de->d_name);
		if (!(*names)[*n])
			r = -ENOMEM;
		else
			(*n)++;
	}
	if (r == 0 && errno)
		r = -errno;
	closedir(d);
	if (r < 0) {
		for (size_t i = 0; i < *n; i++)
			free((*names)[i]);
		free(*names);
		*names = NULL;
		*n = 0;
		return r;
	}
	if (*n > 1)
		qsort(*names, *n, sizeof(**names), cfs_strp_cmp);
	return 0;
}
