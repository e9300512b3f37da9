/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
#include "convert/objects.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cfs/image.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"

#define COPY_BUF_SIZE (1024 * 1024)

struct cfs_objects {
	char *path;
	int dirfd;
	int base_dirfd; /* read-only lower object directory, or -1 */
	struct cfs_objects_stats stats;
	bool subdir_ok[256]; /* XX directories known to exist */
	uint8_t *buf;
};

int cfs_objects_open(struct cfs_objects **out, const char *path)
{
	struct cfs_objects *objs;
	bool created = mkdir(path, 0755) == 0;

	if (!created && errno != EEXIST)
		return cfs_error_errno(errno, "object directory %s", path);
	objs = calloc(1, sizeof(*objs));
	if (!objs)
		return -ENOMEM;
	objs->base_dirfd = -1;
	objs->path = strdup(path);
	objs->buf = malloc(COPY_BUF_SIZE);
	objs->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!objs->path || !objs->buf || objs->dirfd < 0) {
		int r = objs->dirfd < 0 ?
				cfs_error_errno(errno, "object directory %s",
						path) :
				-ENOMEM;
		cfs_objects_free(objs);
		return r;
	}
	if (created)
		cfs_dir_spread_subdirs(objs->dirfd);
	*out = objs;
	return 0;
}

void cfs_objects_free(struct cfs_objects *objs)
{
	if (!objs)
		return;
	if (objs->dirfd >= 0)
		close(objs->dirfd);
	if (objs->base_dirfd >= 0)
		close(objs->base_dirfd);
	free(objs->buf);
	free(objs->path);
	free(objs);
}

const struct cfs_objects_stats *
cfs_objects_stats(const struct cfs_objects *objs)
{
	return &objs->stats;
}

bool cfs_objects_has(struct cfs_objects *objs,
		     const uint8_t digest[CFS_DIGEST_SIZE])
{
	char path[CFS_DIGEST_HEX_SIZE + 2];
	struct stat st;

	cfs_digest_to_object_path(digest, path);
	if (objs->base_dirfd >= 0 &&
	    fstatat(objs->base_dirfd, path, &st, 0) == 0 && S_ISREG(st.st_mode))
		return true;
	return fstatat(objs->dirfd, path, &st, 0) == 0 && S_ISREG(st.st_mode);
}

int cfs_objects_set_base(struct cfs_objects *objs, const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return cfs_error_errno(errno, "object directory %s", path);
	if (objs->base_dirfd >= 0)
		close(objs->base_dirfd);
	objs->base_dirfd = fd;
	return 0;
}

/* Open the XX directory of a digest, creating it on first use. */
static int open_subdir(struct cfs_objects *objs, const uint8_t *digest)
{
	char name[3];
	int fd;

	snprintf(name, sizeof(name), "%02x", digest[0]);
	if (!objs->subdir_ok[digest[0]]) {
		if (mkdirat(objs->dirfd, name, 0755) < 0 && errno != EEXIST)
			return cfs_error_errno(errno, "%s/%s", objs->path,
					       name);
		objs->subdir_ok[digest[0]] = true;
	}
	fd = openat(objs->dirfd, name, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return cfs_error_errno(errno, "%s/%s", objs->path, name);
	return fd;
}

static int reuse(struct cfs_objects *objs, uint64_t size)
{
	objs->stats.reused_objects++;
	objs->stats.reused_bytes += size;
	return 0;
}

/* Name a finished temporary object; an object that appeared meanwhile
 * (another writer) wins, which is fine: same name, same content. */
static int commit_at(struct cfs_objects *objs, struct cfs_atomic_file *af,
		     int subfd, const char *name, const uint8_t *digest,
		     uint64_t size)
{
	char hex[CFS_DIGEST_HEX_SIZE + 1];
	int r;

	cfs_digest_to_hex(digest, hex);
	if (fchmod(af->fd, 0644) < 0) {
		r = cfs_error_errno(errno, "object %s", hex);
		cfs_atomic_abort(af);
		return r;
	}
	r = cfs_atomic_commit_to(af, subfd, name, false);
	if (r == -EEXIST)
		return reuse(objs, size);
	if (r < 0)
		return cfs_error_errno(-r, "storing object %s in %s", hex,
				       objs->path);
	objs->stats.new_objects++;
	objs->stats.new_bytes += size;
	return 0;
}

static int commit(struct cfs_objects *objs, struct cfs_atomic_file *af,
		  const uint8_t *digest, uint64_t size)
{
	char hex[CFS_DIGEST_HEX_SIZE + 1];

	cfs_digest_to_hex(digest, hex);
	return commit_at(objs, af, af->dirfd, hex + 2, digest, size);
}

int cfs_objects_add_fd(struct cfs_objects *objs, int fd, uint64_t size,
		       const uint8_t digest[CFS_DIGEST_SIZE], const char *what)
{
	struct cfs_atomic_file af = { .fd = -1 };
	_cleanup_close_ int subfd = -1;
	cfs_verity *v = NULL;
	uint8_t check[CFS_DIGEST_SIZE];
	uint64_t off = 0;
	int r;

	if (cfs_objects_has(objs, digest))
		return reuse(objs, size);
	subfd = open_subdir(objs, digest);
	if (subfd < 0)
		return subfd;
	r = cfs_atomic_open(&af, subfd, 0600);
	if (r < 0)
		return cfs_error_errno(-r, "temporary object in %s",
				       objs->path);
	r = cfs_verity_new(&v);
	while (r == 0) {
		ssize_t n = pread(fd, objs->buf, COPY_BUF_SIZE, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = cfs_error_errno(errno, "%s: read", what);
			break;
		}
		if (n == 0)
			break;
		r = cfs_verity_update(v, objs->buf, (size_t)n);
		if (r == 0) {
			r = cfs_write_all(af.fd, objs->buf, (size_t)n);
			if (r < 0)
				r = cfs_error_errno(
					-r, "writing object for %s into %s",
					what, objs->path);
		}
		off += (uint64_t)n;
	}
	if (r == 0)
		r = cfs_verity_final(v, check);
	cfs_verity_free(v);
	if (r == 0 && (off != size || memcmp(check, digest, CFS_DIGEST_SIZE)))
		r = cfs_error(EIO, "%s: changed while it was being read", what);
	if (r < 0) {
		cfs_atomic_abort(&af);
		return r;
	}
	return commit(objs, &af, digest, size);
}

int cfs_objects_add_buffer(struct cfs_objects *objs, const void *data,
			   size_t len, uint8_t digest[CFS_DIGEST_SIZE])
{
	struct cfs_atomic_file af = { .fd = -1 };
	_cleanup_close_ int subfd = -1;
	int r;

	r = cfs_verity_digest_buffer(data, len, digest);
	if (r < 0)
		return r;
	if (cfs_objects_has(objs, digest))
		return reuse(objs, len);
	subfd = open_subdir(objs, digest);
	if (subfd < 0)
		return subfd;
	r = cfs_atomic_open(&af, subfd, 0600);
	if (r < 0)
		return cfs_error_errno(-r, "temporary object in %s",
				       objs->path);
	r = cfs_write_all(af.fd, data, len);
	if (r < 0) {
		cfs_atomic_abort(&af);
		return cfs_error_errno(-r, "writing object into %s",
				       objs->path);
	}
	return commit(objs, &af, digest, len);
}

int cfs_objects_sync(struct cfs_objects *objs)
{
	if (syncfs(objs->dirfd) < 0)
		return cfs_error_errno(errno, "syncing objects in %s",
				       objs->path);
	return 0;
}

/* ---- streaming writer ------------------------------------------------ */

struct cfs_object_writer {
	struct cfs_objects *objs;
	cfs_verity *verity;
	uint8_t *mem;
	size_t mem_len, mem_cap;
	uint64_t size;
	struct cfs_atomic_file spill;
};

int cfs_object_writer_new(struct cfs_object_writer **out,
			  struct cfs_objects *objs)
{
	struct cfs_object_writer *w = calloc(1, sizeof(*w));
	int r;

	if (!w)
		return -ENOMEM;
	w->objs = objs;
	w->spill.fd = -1;
	r = cfs_verity_new(&w->verity);
	if (r < 0) {
		free(w);
		return r;
	}
	*out = w;
	return 0;
}

void cfs_object_writer_free(struct cfs_object_writer *w)
{
	if (!w)
		return;
	cfs_atomic_abort(&w->spill);
	cfs_verity_free(w->verity);
	free(w->mem);
	free(w);
}

void cfs_object_writer_begin(struct cfs_object_writer *w)
{
	cfs_atomic_abort(&w->spill);
	w->spill.fd = -1;
	cfs_verity_reset(w->verity);
	w->mem_len = 0;
	w->size = 0;
}

/* Room for @len more bytes in memory (the caller keeps the total within
 * CFS_OBJECT_MEM_MAX). */
static int mem_grow(struct cfs_object_writer *w, size_t len)
{
	size_t cap = w->mem_cap ? w->mem_cap : 64 * 1024;
	uint8_t *n;

	if (w->mem_len + len <= w->mem_cap)
		return 0;
	while (cap < w->mem_len + len)
		cap *= 2;
	n = realloc(w->mem, cap);
	if (!n)
		return -ENOMEM;
	w->mem = n;
	w->mem_cap = cap;
	return 0;
}

/*
 * Move what is held in memory to a temporary file in @dirfd: the top
 * directory for an object too large for memory (its digest, and so its
 * XX/, is not known yet; same file system, so linking it into XX/ later
 * is one atomic step), else the object's own XX/. The latter matters on
 * ext4: a new inode goes into its directory's block group, where without
 * a journal every allocation rescans the recently freed inodes, so
 * 256 directories spread what one top directory would concentrate.
 */
static int spill(struct cfs_object_writer *w, int dirfd)
{
	int r;

	r = cfs_atomic_open(&w->spill, dirfd, 0600);
	if (r < 0)
		return cfs_error_errno(-r, "temporary object in %s",
				       w->objs->path);
	r = cfs_write_all(w->spill.fd, w->mem, w->mem_len);
	if (r < 0)
		return cfs_error_errno(-r, "writing temporary object in %s",
				       w->objs->path);
	w->mem_len = 0;
	return 0;
}

int cfs_object_writer_write(struct cfs_object_writer *w, const void *data,
			    size_t len)
{
	int r;

	if (len == 0)
		return 0;
	r = cfs_verity_update(w->verity, data, len);
	if (r < 0)
		return r;
	w->size += len;
	if (!w->objs)
		return 0;
	if (w->spill.fd < 0 && w->mem_len + len > CFS_OBJECT_MEM_MAX) {
		r = spill(w, w->objs->dirfd);
		if (r < 0)
			return r;
	}
	if (w->spill.fd >= 0) {
		r = cfs_write_all(w->spill.fd, data, len);
		if (r < 0)
			return cfs_error_errno(-r,
					       "writing temporary object in %s",
					       w->objs->path);
		return 0;
	}
	r = mem_grow(w, len);
	if (r < 0)
		return r;
	memcpy(w->mem + w->mem_len, data, len);
	w->mem_len += len;
	return 0;
}

int cfs_object_writer_write_zeros(struct cfs_object_writer *w, uint64_t len)
{
	int r;

	if (len == 0)
		return 0;
	r = cfs_verity_update_zeros(w->verity, len);
	if (r < 0)
		return r;
	w->size += len;
	if (!w->objs)
		return 0;
	if (w->spill.fd < 0 && len <= CFS_OBJECT_MEM_MAX - w->mem_len) {
		r = mem_grow(w, (size_t)len);
		if (r < 0)
			return r;
		memset(w->mem + w->mem_len, 0, (size_t)len);
		w->mem_len += (size_t)len;
		return 0;
	}
	if (w->spill.fd < 0) {
		r = spill(w, w->objs->dirfd);
		if (r < 0)
			return r;
	}
	/* Nothing written: the offset moves on, and commit gives the file
	 * its size. off_t is signed: past 2^63 bytes lseek refuses. */
	if (len > INT64_MAX || lseek(w->spill.fd, (off_t)len, SEEK_CUR) < 0)
		return cfs_error_errno(len > INT64_MAX ? EFBIG : errno,
				       "a hole of %llu bytes in a temporary "
				       "object in %s",
				       (unsigned long long)len, w->objs->path);
	return 0;
}

int cfs_object_writer_commit(struct cfs_object_writer *w,
			     uint8_t digest[CFS_DIGEST_SIZE])
{
	char path[CFS_DIGEST_HEX_SIZE + 2];
	_cleanup_close_ int subfd = -1;
	int r;

	r = cfs_verity_final(w->verity, digest);
	if (r < 0 || !w->objs)
		return r;
	if (cfs_objects_has(w->objs, digest)) {
		cfs_atomic_abort(&w->spill);
		return reuse(w->objs, w->size);
	}
	subfd = open_subdir(w->objs, digest);
	if (subfd < 0) {
		cfs_atomic_abort(&w->spill);
		return subfd;
	}
	if (w->spill.fd < 0) {
		r = spill(w, subfd);
		if (r < 0)
			return r;
	}
	/* A trailing hole has no byte written after it: the size comes from
	 * here. */
	if (w->size > INT64_MAX || ftruncate(w->spill.fd, (off_t)w->size) < 0) {
		r = cfs_error_errno(w->size > INT64_MAX ? EFBIG : errno,
				    "temporary object of %llu bytes in %s",
				    (unsigned long long)w->size, w->objs->path);
		cfs_atomic_abort(&w->spill);
		return r;
	}
	/* Name the temporary XX/<rest>. */
	cfs_digest_to_object_path(digest, path);
	path[2] = '\0';
	r = commit_at(w->objs, &w->spill, subfd, path + 3, digest, w->size);
	return r;
}
