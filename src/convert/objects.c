/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
#include "convert/objects.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <cfs/image.h>

#include "common/cleanup.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/util.h"
#include "common/workq.h"

/* cfs_objects_prefetch(): reads in flight at once, and the largest XX/
 * read whole (a store of about 2.5 million objects; a lookup in a
 * larger directory touches only a few of its blocks). */
#define PREFETCH_THREADS 8
#define PREFETCH_DIR_MAX (256 * 1024)
/* Background writes: bytes waiting at most (more only for one object
 * larger than that), and the buffers kept for reuse, up to a size. */
#define WRITE_QUEUE_MAX (32 * 1024 * 1024)
#define WRITE_POOL_MAX 8
#define WRITER_THREADS 2
#define WRITE_POOL_BUF_MAX (1024 * 1024)
/* Early writeback: after this many bytes of new objects a thread of the
 * object directory starts the file system's writeback (see flusher_run()). */
#define FLUSH_EVERY (32 * 1024 * 1024)

/* An object held in memory, to be written by a writer thread. */
struct write_job {
	struct write_job *next; /* in the pool */
	uint8_t *data;
	size_t len, cap;
	uint8_t digest[CFS_DIGEST_SIZE];
};

struct cfs_objects {
	char *path;
	int dirfd;
	int base_dirfd; /* read-only lower object directory, or -1 */
	/* staging (cfs_objects_open_staged): objects are named by their 64
	 * hex digits in dirfd, their inodes made in the base's XX/ */
	bool flat;
	/* guards stats and subfd[], which the writer threads share */
	pthread_mutex_t lock;
	struct cfs_objects_stats stats;
	/* where new objects are made: XX/ (flat: the base's), O_PATH; -1
	 * until first used */
	int subfd[256];
	/* cfs_objects_prefetch(): its threads, the next XX/ to read */
	pthread_t prefetch[PREFETCH_THREADS];
	int n_prefetch;
	int prefetch_next;
	/* the writer threads (queue_write()), started when first needed,
	 * and the spent jobs kept for their buffers (under lock) */
	struct cfs_workq *writers;
	bool writers_tried;
	struct write_job *pool;
	size_t n_pool;
	/* the flusher thread, started when first needed; unflushed (under
	 * lock) counts the bytes of new objects since its last syncfs */
	pthread_t flusher;
	bool flusher_on, flush_stop;
	pthread_cond_t flush_cond;
	uint64_t unflushed;
	/* cfs_objects_keep_sha256(): the content SHA-256 of each new
	 * object (under lock), sorted by object digest once asked for */
	bool keep_sha256, pairs_sorted;
	struct cfs_sha256_pair *pairs;
	size_t n_pairs, cap_pairs;
};

/* Open (creating it if needed) the object directory @path; @flat: a
 * staging directory (cfs_objects_open_staged()), whose objects have
 * no XX/ to spread over the disk. */
static int objects_open(struct cfs_objects **out, const char *path, bool flat)
{
	struct cfs_objects *objs;
	bool created = mkdir(path, 0755) == 0;

	if (!created && errno != EEXIST)
		return cfs_error_errno(errno, "object directory %s", path);
	objs = calloc(1, sizeof(*objs));
	if (!objs)
		return -ENOMEM;
	objs->base_dirfd = -1;
	for (int i = 0; i < 256; i++)
		objs->subfd[i] = -1;
	pthread_mutex_init(&objs->lock, NULL);
	pthread_cond_init(&objs->flush_cond, NULL);
	objs->path = strdup(path);
	objs->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!objs->path || objs->dirfd < 0) {
		int r = objs->dirfd < 0 ?
				cfs_error_errno(errno, "object directory %s",
						path) :
				-ENOMEM;
		cfs_objects_free(objs);
		return r;
	}
	objs->flat = flat;
	if (created && !flat)
		cfs_dir_spread_subdirs(objs->dirfd);
	*out = objs;
	return 0;
}

int cfs_objects_open(struct cfs_objects **out, const char *path)
{
	return objects_open(out, path, false);
}

/* One prefetch thread: the next XX/ of the base, until all are done. */
static void *prefetch_run(void *opaque)
{
	struct cfs_objects *objs = opaque;
	char buf[32 * 1024];

	for (;;) {
		int i = __atomic_fetch_add(&objs->prefetch_next, 1,
					   __ATOMIC_RELAXED);
		char name[3];
		struct stat st;
		int fd;

		if (i >= 256)
			return NULL;
		snprintf(name, sizeof(name), "%02x", i);
		/* O_NOATIME: reading a directory changed since it was last
		 * read updates its atime (relatime), and 256 inodes written
		 * for a read are more than some imports write */
		fd = openat(objs->base_dirfd, name,
			    O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOATIME);
		if (fd < 0)
			continue;
		/* getdents reads every block of the directory: what a
		 * lookup then finds in the page cache */
		if (fstat(fd, &st) == 0 && st.st_size <= PREFETCH_DIR_MAX)
			while (syscall(SYS_getdents64, fd, buf, sizeof(buf)) >
			       0)
				;
		close(fd);
	}
}

void cfs_objects_prefetch(struct cfs_objects *objs)
{
	if (objs->base_dirfd < 0 || objs->n_prefetch)
		return;
	for (int i = 0; i < PREFETCH_THREADS; i++) {
		if (pthread_create(&objs->prefetch[i], NULL, prefetch_run,
				   objs) != 0)
			break; /* a hint: fewer threads will do */
		objs->n_prefetch++;
	}
}

static void job_free(struct write_job *job)
{
	free(job->data);
	free(job);
}

static void stop_flusher(struct cfs_objects *objs);

void cfs_objects_free(struct cfs_objects *objs)
{
	if (!objs)
		return;
	/* What is still queued is not wanted any more (an error, or the
	 * caller never flushed): only the writes in hand are finished. */
	cfs_workq_free(objs->writers);
	stop_flusher(objs);
	while (objs->pool) {
		struct write_job *job = objs->pool;
		objs->pool = job->next;
		job_free(job);
	}
	pthread_mutex_destroy(&objs->lock);
	pthread_cond_destroy(&objs->flush_cond);
	for (int i = 0; i < objs->n_prefetch; i++)
		pthread_join(objs->prefetch[i], NULL);
	if (objs->dirfd >= 0)
		close(objs->dirfd);
	if (objs->base_dirfd >= 0)
		close(objs->base_dirfd);
	for (int i = 0; i < 256; i++)
		if (objs->subfd[i] >= 0)
			close(objs->subfd[i]);
	free(objs->pairs);
	free(objs->path);
	free(objs);
}

const struct cfs_objects_stats *cfs_objects_stats(struct cfs_objects *objs)
{
	cfs_objects_flush(objs); /* an error is the flush's to report */
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
	if (objs->flat)
		cfs_digest_to_hex(digest, path);
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

int cfs_objects_open_staged(struct cfs_objects **out, const char *path,
			    const char *base)
{
	struct cfs_objects *objs;
	int r;

	r = objects_open(&objs, path, true);
	if (r < 0)
		return r;
	r = cfs_objects_set_base(objs, base);
	if (r < 0) {
		cfs_objects_free(objs);
		return r;
	}
	*out = objs;
	return 0;
}

/*
 * The XX directory where the objects of a digest are made (O_PATH,
 * borrowed), made on first use. In a staging directory the base's,
 * which is not written: where it has no XX/ yet (the store makes all
 * 256 when it is made), the staging directory itself.
 */
static int open_subdir_locked(struct cfs_objects *objs, const uint8_t *digest)
{
	char name[3];
	int fd;

	if (objs->subfd[digest[0]] >= 0)
		return objs->subfd[digest[0]];
	snprintf(name, sizeof(name), "%02x", digest[0]);
	if (objs->flat) {
		fd = openat(objs->base_dirfd, name,
			    O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT)
			return objs->dirfd;
	} else {
		if (mkdirat(objs->dirfd, name, 0755) < 0 && errno != EEXIST)
			return cfs_error_errno(errno, "%s/%s", objs->path,
					       name);
		fd = openat(objs->dirfd, name,
			    O_PATH | O_DIRECTORY | O_CLOEXEC);
	}
	if (fd < 0)
		return cfs_error_errno(errno, "%s/%s", objs->path, name);
	objs->subfd[digest[0]] = fd;
	return fd;
}

static int open_subdir(struct cfs_objects *objs, const uint8_t *digest)
{
	int fd;

	pthread_mutex_lock(&objs->lock);
	fd = open_subdir_locked(objs, digest);
	pthread_mutex_unlock(&objs->lock);
	return fd;
}

/*
 * A new temporary object of @digest, its inode made in open_subdir().
 * In a staging directory only as an O_TMPFILE: a named temporary file
 * (no O_TMPFILE here) stays in the staging directory, where nothing of
 * a killed import outlives the writer directory.
 */
static int tmp_open(struct cfs_objects *objs, const uint8_t *digest,
		    struct cfs_atomic_file *af)
{
	int subfd = open_subdir(objs, digest);
	int r;

	if (subfd < 0)
		return subfd;
	if (objs->flat) {
		af->dirfd = objs->dirfd;
		af->tmpname[0] = '\0';
		af->fd = openat(subfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC,
				0600);
		if (af->fd >= 0)
			return 0;
		subfd = objs->dirfd;
	}
	r = cfs_atomic_open(af, subfd, 0600);
	if (r < 0)
		return cfs_error_errno(-r, "temporary object in %s",
				       objs->path);
	return 0;
}

static int reuse(struct cfs_objects *objs, uint64_t size)
{
	pthread_mutex_lock(&objs->lock);
	objs->stats.reused_objects++;
	objs->stats.reused_bytes += size;
	pthread_mutex_unlock(&objs->lock);
	return 0;
}

/*
 * A conversion into a fresh or cold file system ends in a syncfs that
 * waits for the writeback of everything it wrote: a quarter of the time
 * of debian-python into a new ext4 on a loop device, with a core mostly
 * idle meanwhile. So once FLUSH_EVERY bytes of new objects are written,
 * a thread of the object directory calls syncfs() itself, and again
 * after each FLUSH_EVERY more: the writeback overlaps the conversion and
 * the final sync finds little left. It only makes data durable sooner:
 * its errors are the final sync's to report.
 */
static void *flusher_run(void *opaque)
{
	struct cfs_objects *objs = opaque;

	pthread_mutex_lock(&objs->lock);
	for (;;) {
		while (!objs->flush_stop && objs->unflushed < FLUSH_EVERY)
			pthread_cond_wait(&objs->flush_cond, &objs->lock);
		if (objs->flush_stop)
			break;
		objs->unflushed = 0;
		pthread_mutex_unlock(&objs->lock);
		(void)syncfs(objs->dirfd);
		pthread_mutex_lock(&objs->lock);
		objs->stats.early_syncs++;
	}
	pthread_mutex_unlock(&objs->lock);
	return NULL;
}

/* Wake the flusher, starting it the first time (lock held). */
static void start_flusher(struct cfs_objects *objs)
{
	if (objs->flush_stop)
		return;
	if (!objs->flusher_on)
		objs->flusher_on = pthread_create(&objs->flusher, NULL,
						  flusher_run, objs) == 0;
	pthread_cond_signal(&objs->flush_cond);
}

/* End the flusher (before the final sync, and at free). */
static void stop_flusher(struct cfs_objects *objs)
{
	bool on;

	pthread_mutex_lock(&objs->lock);
	objs->flush_stop = true;
	on = objs->flusher_on;
	objs->flusher_on = false;
	pthread_cond_signal(&objs->flush_cond);
	pthread_mutex_unlock(&objs->lock);
	if (on)
		pthread_join(objs->flusher, NULL);
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
	pthread_mutex_lock(&objs->lock);
	objs->stats.new_objects++;
	objs->stats.new_bytes += size;
	objs->unflushed += size;
	if (objs->unflushed >= FLUSH_EVERY)
		start_flusher(objs);
	pthread_mutex_unlock(&objs->lock);
	return 1;
}

/* Name a finished temporary object of tmp_open(): 1 when it is new, 0
 * when the object was there already. */
static int commit(struct cfs_objects *objs, struct cfs_atomic_file *af,
		  const uint8_t *digest, uint64_t size)
{
	char hex[CFS_DIGEST_HEX_SIZE + 1];
	int subfd;

	cfs_digest_to_hex(digest, hex);
	if (objs->flat)
		return commit_at(objs, af, objs->dirfd, hex, digest, size);
	subfd = open_subdir(objs, digest);
	if (subfd < 0) {
		cfs_atomic_abort(af);
		return subfd;
	}
	return commit_at(objs, af, subfd, hex + 2, digest, size);
}

int cfs_objects_add_fd(struct cfs_objects *objs, int fd, uint64_t size,
		       const uint8_t digest[CFS_DIGEST_SIZE], const char *what,
		       uint8_t *buf, size_t buf_size)
{
	struct cfs_atomic_file af = { .fd = -1 };
	cfs_verity *v = NULL;
	uint8_t check[CFS_DIGEST_SIZE];
	uint64_t off = 0;
	int r;

	if (cfs_objects_has(objs, digest))
		return reuse(objs, size);
	r = tmp_open(objs, digest, &af);
	if (r < 0)
		return cfs_error_prefix(-r, "%s", what);
	r = cfs_verity_new(&v);
	while (r == 0) {
		ssize_t n = pread(fd, buf, buf_size, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = cfs_error_errno(errno, "%s: read", what);
			break;
		}
		if (n == 0)
			break;
		r = cfs_verity_update(v, buf, (size_t)n);
		if (r == 0) {
			r = cfs_write_all(af.fd, buf, (size_t)n);
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
	r = commit(objs, &af, digest, size);
	return r < 0 ? cfs_error_prefix(-r, "%s", what) : 0;
}

/* ---- content SHA-256 of new objects ------------------------------------ */

void cfs_objects_keep_sha256(struct cfs_objects *objs)
{
	objs->keep_sha256 = true;
}

static int keep_pair(struct cfs_objects *objs, const uint8_t *digest,
		     const uint8_t *sha256)
{
	int r = 0;

	pthread_mutex_lock(&objs->lock);
	if (objs->n_pairs == objs->cap_pairs) {
		size_t cap = objs->cap_pairs ? 2 * objs->cap_pairs : 1024;
		void *n = reallocarray(objs->pairs, cap, sizeof(*objs->pairs));

		if (n) {
			objs->pairs = n;
			objs->cap_pairs = cap;
		} else {
			r = -ENOMEM;
		}
	}
	if (r == 0) {
		struct cfs_sha256_pair *p = &objs->pairs[objs->n_pairs++];

		memcpy(p->object, digest, CFS_DIGEST_SIZE);
		memcpy(p->sha256, sha256, CFS_DIGEST_SIZE);
		objs->pairs_sorted = false;
	}
	pthread_mutex_unlock(&objs->lock);
	return r;
}

static int pair_by_object(const void *a, const void *b)
{
	const struct cfs_sha256_pair *x = a, *y = b;

	return memcmp(x->object, y->object, CFS_DIGEST_SIZE);
}

bool cfs_objects_sha256(struct cfs_objects *objs,
			const uint8_t digest[CFS_DIGEST_SIZE],
			uint8_t sha256[CFS_DIGEST_SIZE])
{
	struct cfs_sha256_pair key, *p;

	pthread_mutex_lock(&objs->lock);
	if (!objs->pairs_sorted && objs->n_pairs) {
		/* two writers may both have made one object: either's pair
		 * will do, they are equal */
		qsort(objs->pairs, objs->n_pairs, sizeof(*objs->pairs),
		      pair_by_object);
		objs->pairs_sorted = true;
	}
	memcpy(key.object, digest, CFS_DIGEST_SIZE);
	p = objs->n_pairs ? bsearch(&key, objs->pairs, objs->n_pairs,
				    sizeof(*objs->pairs), pair_by_object) :
			    NULL;
	if (p)
		memcpy(sha256, p->sha256, CFS_DIGEST_SIZE);
	pthread_mutex_unlock(&objs->lock);
	return p != NULL;
}

/* Make object @digest of the @len bytes at @data, here and now. */
static int write_object(struct cfs_objects *objs, const uint8_t *data,
			size_t len, const uint8_t *digest)
{
	struct cfs_atomic_file af = { .fd = -1 };
	int r = tmp_open(objs, digest, &af);

	if (r < 0)
		return r;
	r = cfs_write_all(af.fd, data, len);
	if (r < 0) {
		cfs_atomic_abort(&af);
		return cfs_error_errno(-r, "writing temporary object in %s",
				       objs->path);
	}
	r = commit(objs, &af, digest, len);
	if (r > 0 && objs->keep_sha256) {
		uint8_t sha[CFS_DIGEST_SIZE];

		r = cfs_sha256(data, len, sha, NULL);
		if (r == 0)
			r = keep_pair(objs, digest, sha);
	}
	return r < 0 ? r : 0;
}

/* ---- background writes --------------------------------------------- */

/*
 * A conversion that finds most of its content new spends as long in
 * write(2) (the kernel copying into the page cache, allocating blocks and
 * inodes) as in hashing; with the decompression and the diff_id on
 * threads of their own, the thread that parses tar and computes the
 * fs-verity digests would be the one the others wait for. So an object
 * held in memory whose digest is known is handed to one of two writer
 * threads (two: on a cold or aged file system much of making an inode
 * is waiting for the disk): the conversion goes on with the next file
 * while it is written. Names are digests, so the order the writers make
 * them in changes nothing. Two equal new files close together may both
 * be queued: the second finds the first's name taken and counts as
 * reused, as when another writer made it. Of several failed writes the
 * one handed over first is reported, whichever failed first.
 */

static int writer_run(void *ctx, void *opaque, void *scratch)
{
	struct write_job *job = opaque;

	(void)scratch;
	return write_object(ctx, job->data, job->len, job->digest);
}

/* Keep a spent job for its buffer (a small one), or free it. */
static void writer_release(void *ctx, void *opaque)
{
	struct cfs_objects *objs = ctx;
	struct write_job *job = opaque;

	if (job->cap > WRITE_POOL_BUF_MAX) {
		free(job->data);
		job->data = NULL;
		job->cap = 0;
	}
	pthread_mutex_lock(&objs->lock);
	if (objs->n_pool < WRITE_POOL_MAX) {
		job->next = objs->pool;
		objs->pool = job;
		objs->n_pool++;
		job = NULL;
	}
	pthread_mutex_unlock(&objs->lock);
	if (job)
		job_free(job);
}

static const struct cfs_workq_ops writer_ops = {
	.run = writer_run,
	.release = writer_release,
};

/*
 * Queue the @len bytes at *@data (a buffer of *@cap bytes) to be stored
 * as object @digest. The buffer goes to the writer; *@data and *@cap
 * come back as a buffer to reuse (or NULL and 0). Where no thread can be
 * started the object is written here.
 */
static int queue_write(struct cfs_objects *objs, uint8_t **data, size_t *cap,
		       size_t len, const uint8_t *digest)
{
	struct write_job *job;

	/* only the conversion's thread queues: no lock for the start */
	if (!objs->writers_tried) {
		objs->writers_tried = true;
		if (cfs_workq_new(&objs->writers, &writer_ops, objs,
				  WRITER_THREADS, WRITE_QUEUE_MAX) < 0)
			objs->writers = NULL;
	}
	if (!objs->writers)
		return write_object(objs, *data, len, digest);
	pthread_mutex_lock(&objs->lock);
	job = objs->pool;
	if (job) {
		objs->pool = job->next;
		objs->n_pool--;
	}
	pthread_mutex_unlock(&objs->lock);
	if (!job && !(job = calloc(1, sizeof(*job))))
		return -ENOMEM;
	/* swap: the writer takes the full buffer, the caller an empty one */
	{
		uint8_t *spare = job->data;
		size_t spare_cap = job->cap;

		job->data = *data;
		job->cap = *cap;
		*data = spare;
		*cap = spare_cap;
	}
	job->len = len;
	memcpy(job->digest, digest, CFS_DIGEST_SIZE);
	return cfs_workq_push(objs->writers, job, len);
}

int cfs_objects_flush(struct cfs_objects *objs)
{
	return objs->writers ? cfs_workq_wait(objs->writers) : 0;
}

int cfs_objects_sync(struct cfs_objects *objs)
{
	int r = cfs_objects_flush(objs);

	if (r < 0)
		return r;
	stop_flusher(objs);
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
	bool hole; /* the spilled file has a hole its size must cover */
	struct cfs_atomic_file spill;
	/* the content SHA-256 of a spilled object (cfs_objects_keep_sha256:
	 * one in memory is hashed by the thread that writes it); not for
	 * one with holes, whose zeros may be terabytes */
	EVP_MD_CTX *sha;
	bool sha_on;
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
	EVP_MD_CTX_free(w->sha);
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
	w->hole = false;
	w->sha_on = false;
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

/* Write what is held in memory to the temporary object. */
static int spill_mem(struct cfs_object_writer *w)
{
	int r = cfs_write_all(w->spill.fd, w->mem, w->mem_len);

	if (r < 0)
		return cfs_error_errno(-r, "writing temporary object in %s",
				       w->objs->path);
	w->mem_len = 0;
	return 0;
}

/*
 * An object too large for memory goes to a temporary file in the top
 * directory: its digest, and so its XX/, is not known yet (same file
 * system, so linking it into place later is one atomic step). Objects
 * held in memory are written at the end into one made by tmp_open():
 * that matters on ext4, where a new inode goes into its directory's
 * block group, and without a journal every allocation rescans the
 * recently freed inodes: 256 directories spread what one top directory
 * would concentrate.
 */
static int spill(struct cfs_object_writer *w)
{
	int r = cfs_atomic_open(&w->spill, w->objs->dirfd, 0600);

	if (r < 0)
		return cfs_error_errno(-r, "temporary object in %s",
				       w->objs->path);
	if (w->objs->keep_sha256) {
		if (!w->sha && !(w->sha = EVP_MD_CTX_new()))
			return -ENOMEM;
		w->sha_on =
			EVP_DigestInit_ex(w->sha, EVP_sha256(), NULL) == 1 &&
			EVP_DigestUpdate(w->sha, w->mem, w->mem_len) == 1;
	}
	return spill_mem(w);
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
		r = spill(w);
		if (r < 0)
			return r;
	}
	if (w->spill.fd >= 0) {
		if (w->sha_on)
			w->sha_on = EVP_DigestUpdate(w->sha, data, len) == 1;
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
		r = spill(w);
		if (r < 0)
			return r;
	}
	w->hole = true;
	w->sha_on = false;
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
	int r;

	r = cfs_verity_final(w->verity, digest);
	if (r < 0 || !w->objs)
		return r;
	if (cfs_objects_has(w->objs, digest)) {
		cfs_atomic_abort(&w->spill);
		return reuse(w->objs, w->size);
	}
	if (w->spill.fd < 0) {
		r = queue_write(w->objs, &w->mem, &w->mem_cap, w->mem_len,
				digest);
		w->mem_len = 0;
		return r;
	}
	/* A trailing hole has no byte written after it: the size comes from
	 * here. */
	if (w->hole && (w->size > INT64_MAX ||
			ftruncate(w->spill.fd, (off_t)w->size) < 0)) {
		r = cfs_error_errno(w->size > INT64_MAX ? EFBIG : errno,
				    "temporary object of %llu bytes in %s",
				    (unsigned long long)w->size, w->objs->path);
		cfs_atomic_abort(&w->spill);
		return r;
	}
	r = commit(w->objs, &w->spill, digest, w->size);
	if (r > 0 && w->sha_on) {
		uint8_t sha[CFS_DIGEST_SIZE];

		r = EVP_DigestFinal_ex(w->sha, sha, NULL) == 1 ?
			    keep_pair(w->objs, digest, sha) :
			    -EIO;
	}
	w->sha_on = false;
	return r < 0 ? r : 0;
}
