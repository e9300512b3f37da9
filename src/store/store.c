/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * The image store: opening its layout, locks, the writers' scratch
 * directories, the names table, listing and name lookup.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/json.h"
#include "common/util.h"
#include "store/store-internal.h"

CFS_DEFINE_CLEANUP(DIR *, closedir)

/* ---- small helpers ----------------------------------------------------- */

bool store_is_hex(const char *s, bool exact)
{
	size_t n = strspn(s, "0123456789abcdef");

	if (s[n] != '\0' || n == 0 || n > CFS_DIGEST_HEX_SIZE)
		return false;
	return !exact || n == CFS_DIGEST_HEX_SIZE;
}

int store_strv_add(char ***v, size_t *n, const char *str)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(**v));

	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[*n] = strdup(str);
	if (!nv[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

void store_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int store_dir_names(cfs_store *s, int dirfd, const char *what, char ***names,
		    size_t *n)
{
	int r = cfs_dir_names(dirfd, names, n);

	return r < 0 ? cfs_error_errno(-r, "store %s: reading %s", s->root,
				       what) :
		       0;
}

bool store_has_verity(int dirfd, const char *path)
{
	struct statx stx;

	if (statx(dirfd, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx) <
	    0)
		return false;
	return (stx.stx_attributes_mask & STATX_ATTR_VERITY) &&
	       (stx.stx_attributes & STATX_ATTR_VERITY);
}

/* Read a whole small file (at most STORE_JSON_MAX bytes) of @dirfd. */
static int read_small_file(int dirfd, const char *name, char **out,
			   size_t *len_out)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t got;
	int r;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (st.st_size > STORE_JSON_MAX)
		return -EFBIG;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	r = cfs_read_full(fd, buf, (size_t)st.st_size, &got);
	if (r < 0)
		return r;
	buf[got] = '\0';
	*len_out = got;
	*out = TAKE_PTR(buf);
	return 0;
}

/* Parse JSON text (common/json.h); -EBADMSG, the message naming @what,
 * for a document that is not that. */
static int parse_json(json_object **out, const char *buf, size_t len,
		      const char *what)
{
	int r = cfs_json_parse(buf, len, out);

	if (r == -ENOMEM)
		return r;
	return r < 0 ? cfs_error_prefix(EBADMSG, "%s", what) : 0;
}

/* Write @text to @name in @w's directory and fsync it. */
static int write_small_file(struct store_writer *w, const char *name,
			    const char *text)
{
	_cleanup_close_ int fd = -1;
	int r;

	fd = openat(w->fd, name, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC,
		    0644);
	if (fd < 0)
		return -errno;
	r = cfs_write_all(fd, text, strlen(text));
	if (r == 0)
		r = cfs_write_all(fd, "\n", 1);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	return r;
}

/* ---- open ------------------------------------------------------------ */

static int open_subdir(cfs_store *s, const char *name, bool create, int *fd)
{
	if (create && mkdirat(s->root_fd, name, 0755) < 0 && errno != EEXIST)
		return cfs_error_errno(errno, "store %s: creating %s", s->root,
				       name);
	*fd = openat(s->root_fd, name,
		     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*fd < 0)
		return cfs_error_errno(errno, "store %s: %s", s->root, name);
	return 0;
}

/*
 * objects/ spread over the disk's block groups (FS_TOPDIR_FL), with its
 * 256 XX/ made up front: an import makes each new object's inode in the
 * XX/ it ends up in (cfs_objects_open_staged()), which must exist by
 * then, and a failed import must leave no directory behind. gc never
 * removes them. Stores made before are given them here once.
 */
static int make_object_dirs(cfs_store *s)
{
	char name[3];

	cfs_dir_spread_subdirs(s->objects_fd);
	if (faccessat(s->objects_fd, "ff", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	for (int i = 0; i < 256; i++) {
		snprintf(name, sizeof(name), "%02x", i);
		if (mkdirat(s->objects_fd, name, 0755) < 0 && errno != EEXIST)
			return cfs_error_errno(errno, "store %s: objects/%s",
					       s->root, name);
	}
	return 0;
}

void cfs_store_free(cfs_store *s)
{
	if (!s)
		return;
	cfs_closep(&s->root_fd);
	cfs_closep(&s->objects_fd);
	cfs_closep(&s->images_fd);
	cfs_closep(&s->tmp_fd);
	cfs_closep(&s->blobs_fd);
	cfs_closep(&s->layers_fd);
	cfs_closep(&s->lock_fd);
	free(s->objects_path);
	free(s->root);
	free(s);
}

int cfs_store_open(cfs_store **out, const char *root,
		   const cfs_store_options *opts)
{
	static const cfs_store_options defaults = CFS_STORE_OPTIONS_INIT;
	cfs_store *s;
	bool create;
	int r;

	if (!opts)
		opts = &defaults;
	if (!CFS_OPTIONS_VERSION_OK(opts->version, CFS_STORE_OPTIONS_VERSION) ||
	    (opts->flags & ~CFS_STORE_OPEN_NOCREATE))
		return cfs_error(EINVAL, "invalid store options");
	create = !(opts->flags & CFS_STORE_OPEN_NOCREATE);
	if (!root)
		root = CFS_STORE_DEFAULT_ROOT;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->root_fd = s->objects_fd = s->images_fd = s->tmp_fd = s->lock_fd = -1;
	s->blobs_fd = s->layers_fd = -1;
	s->root = strdup(root);
	if (!s->root || asprintf(&s->objects_path, "%s/objects", root) < 0) {
		s->objects_path = NULL;
		cfs_store_free(s);
		return -ENOMEM;
	}
	if (create && mkdir(root, 0755) < 0 && errno != EEXIST) {
		r = cfs_error_errno(errno, "store %s", root);
		goto fail;
	}
	s->root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->root_fd < 0) {
		r = cfs_error_errno(errno, "store %s", root);
		goto fail;
	}
	if (!create && faccessat(s->root_fd, "images", F_OK, 0) < 0) {
		r = cfs_error(ENOENT, "store %s: not a store (no images/)",
			      root);
		goto fail;
	}
	r = open_subdir(s, "objects", create, &s->objects_fd);
	if (r == 0 && create)
		r = make_object_dirs(s);
	if (r == 0)
		r = open_subdir(s, "images", create, &s->images_fd);
	if (r == 0)
		r = open_subdir(s, "tmp", create, &s->tmp_fd);
	if (r < 0)
		goto fail;
	/* blobs/ came with names.json version 2: a read-only user of an
	 * older store finds none. */
	if (create) {
		int fd = -1;
		r = open_subdir(s, "blobs", true, &fd);
		cfs_closep(&fd);
		if (r == 0)
			r = open_subdir(s, "blobs/sha256", true, &s->blobs_fd);
		/* layers/ came with layer records: a read-only user of an
		 * older store finds none. */
		if (r == 0)
			r = open_subdir(s, "layers", true, &s->layers_fd);
		if (r < 0)
			goto fail;
	} else {
		s->blobs_fd =
			openat(s->root_fd, "blobs/sha256",
			       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		s->layers_fd =
			openat(s->root_fd, "layers",
			       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	/* The lock files are created even by readers that never lock: they
	 * are part of the layout, not of any one operation. */
	s->lock_fd = openat(s->root_fd, "lock",
			    (create ? O_CREAT : 0) | O_RDWR | O_CLOEXEC, 0644);
	if (s->lock_fd < 0 && !create && (errno == EACCES || errno == EROFS))
		s->lock_fd = openat(s->root_fd, "lock", O_RDONLY | O_CLOEXEC);
	if (s->lock_fd < 0) {
		r = cfs_error_errno(errno, "store %s: lock", root);
		goto fail;
	}
	if (create) {
		int fd = openat(s->root_fd, "names.lock",
				O_CREAT | O_RDWR | O_CLOEXEC, 0644);
		if (fd < 0) {
			r = cfs_error_errno(errno, "store %s: names.lock",
					    root);
			goto fail;
		}
		close(fd);
	}
	*out = s;
	return 0;
fail:
	cfs_store_free(s);
	return r;
}

const char *cfs_store_root(const cfs_store *s)
{
	return s->root;
}

const char *cfs_store_objects_dir(const cfs_store *s)
{
	return s->objects_path;
}

/* ---- locks ------------------------------------------------------------- */

static int flock_retry(int fd, int op)
{
	while (flock(fd, op) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

/*
 * ROOT/gate.lock, opened on every use and created on demand (stores made
 * before it existed get it with their first lock). -ENOENT when it can
 * be neither opened nor created: a read-only store (where no writer can
 * be waiting), a caller who may not write the root, or a store without
 * it on a full disk. The gate only makes locking fair, so locking then
 * goes on without it.
 */
static int gate_open(cfs_store *s)
{
	int fd = openat(s->root_fd, STORE_GATE_LOCK,
			O_CREAT | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0644);

	if (fd < 0 && (errno == EACCES || errno == EROFS))
		fd = openat(s->root_fd, STORE_GATE_LOCK,
			    O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	if (errno == ENOENT || errno == EACCES || errno == EROFS ||
	    errno == ENOSPC || errno == EDQUOT)
		return -ENOENT;
	return cfs_error_errno(errno, "store %s: " STORE_GATE_LOCK, s->root);
}

/*
 * flock(2) grants a shared lock whenever no exclusive one is held, even
 * while an exclusive locker waits: imports that overlap would keep gc
 * out for ever. So every locker of ROOT/lock, shared or exclusive, first
 * takes gate.lock exclusively and keeps it until it holds ROOT/lock. A
 * shared locker holds the gate for an instant; an exclusive one holds it
 * while it waits for the running shared holders to finish, and no new
 * one can get in meanwhile. Nobody waits for the gate while holding
 * ROOT/lock, which is what keeps this free of deadlocks.
 */
int store_lock(cfs_store *s, int op)
{
	int gate = -1, r;

	if (op != LOCK_UN) {
		gate = gate_open(s);
		if (gate < 0 && gate != -ENOENT)
			return gate;
		r = gate < 0 ? 0 : flock_retry(gate, LOCK_EX);
		if (r < 0) {
			close(gate);
			return cfs_error_errno(
				-r, "store %s: locking " STORE_GATE_LOCK,
				s->root);
		}
	}
	r = flock_retry(s->lock_fd, op);
	cfs_closep(&gate); /* releases the gate */
	if (r < 0)
		return cfs_error_errno(-r, "store %s: locking", s->root);
	return 0;
}

/*
 * The undo generation: how many commits were taken back (commit_undo in
 * import.c), kept as the first 8 bytes of names.lock and read and
 * written only under that lock. An import that finds it unchanged at its
 * commit knows that every object it found in the store is still there:
 * only an undo removes objects while imports run (gc and repairs take
 * the store's lock exclusively).
 */
bool store_undo_gen(int lockfd, uint64_t *gen)
{
	*gen = 0;
	return pread(lockfd, gen, sizeof(*gen), 0) == (ssize_t)sizeof(*gen);
}

bool store_undo_gen_start(int lockfd, uint64_t *gen)
{
	if (store_undo_gen(lockfd, gen))
		return true;
	*gen = 0;
	return pwrite(lockfd, gen, sizeof(*gen), 0) == (ssize_t)sizeof(*gen);
}

void store_undo_gen_bump(int lockfd)
{
	uint64_t gen;

	store_undo_gen(lockfd, &gen);
	gen++;
	/* Not durable, need not be: it matters to running imports only.
	 * Unreadable, it makes every running import check. */
	if (pwrite(lockfd, &gen, sizeof(gen), 0) != (ssize_t)sizeof(gen) &&
	    ftruncate(lockfd, 0) < 0)
		return; /* both failed: nothing more to try */
}

int store_names_lock(cfs_store *s)
{
	int fd = openat(s->root_fd, "names.lock", O_CREAT | O_RDWR | O_CLOEXEC,
			0644);
	int r;

	if (fd < 0)
		return cfs_error_errno(errno, "store %s: names.lock", s->root);
	r = flock_retry(fd, LOCK_EX);
	if (r < 0) {
		close(fd);
		return cfs_error_errno(-r, "store %s: locking names.lock",
				       s->root);
	}
	return fd;
}

/* ---- writers' scratch directories ------------------------------------ */

int store_writer_open(cfs_store *s, struct store_writer *w)
{
	for (int tries = 0; tries < 100; tries++) {
		uint64_t rnd;
		struct stat st;
		int fd;

		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			return cfs_error_errno(errno, "getrandom");
		snprintf(w->name, sizeof(w->name),
			 STORE_WRITER_PREFIX "%d-%016llx", (int)getpid(),
			 (unsigned long long)rnd);
		if (mkdirat(s->tmp_fd, w->name, 0700) < 0) {
			if (errno == EEXIST)
				continue;
			return cfs_error_errno(errno, "store %s: tmp/%s",
					       s->root, w->name);
		}
		fd = openat(s->tmp_fd, w->name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			return cfs_error_errno(errno, "store %s: tmp/%s",
					       s->root, w->name);
		}
		/* A cleaner may have taken the fresh directory for a dead
		 * writer's between mkdir and flock; it removes only while it
		 * holds the lock, so once ours is granted a directory still
		 * linked is ours for good. */
		if (flock_retry(fd, LOCK_EX) < 0 || fstat(fd, &st) < 0) {
			int r = cfs_error_errno(errno, "store %s: tmp/%s",
						s->root, w->name);
			close(fd);
			return r;
		}
		if (st.st_nlink == 0) {
			close(fd);
			continue;
		}
		w->fd = fd;
		return 0;
	}
	return cfs_error(EEXIST, "store %s: cannot create a directory in tmp/",
			 s->root);
}

void store_writer_close(cfs_store *s, struct store_writer *w)
{
	if (w->fd < 0)
		return;
	store_rm_rf_at(s->tmp_fd, w->name);
	close(w->fd);
	w->fd = -1;
}

static int rm_contents(int dfd)
{
	_cleanup_(closedirp) DIR *d = fdopendir(dfd);
	struct dirent *de;
	int r = 0;

	if (!d) {
		r = -errno;
		close(dfd);
		return r;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		int q = store_rm_rf_at(dirfd(d), de->d_name);
		if (q < 0 && r == 0)
			r = q;
	}
	return r;
}

int store_rm_rf_at(int dirfd, const char *name)
{
	int fd, r;

	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	fd = openat(dirfd, name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	r = rm_contents(fd);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT &&
	    r == 0)
		r = -errno;
	return r;
}

int store_clean_tmp(cfs_store *s, bool strays, bool dry_run, char ***paths,
		    size_t *n_paths)
{
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;
	int fd = openat(s->tmp_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = 0;

	if (fd < 0 || !(d = fdopendir(fd))) {
		r = cfs_error_errno(errno, "store %s: tmp", s->root);
		cfs_closep(&fd);
		return r;
	}
	while ((de = readdir(d))) {
		char rel[300];
		bool writer;
		int wfd;

		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		writer = strncmp(de->d_name, STORE_WRITER_PREFIX,
				 strlen(STORE_WRITER_PREFIX)) == 0;
		wfd = -1;
		if (writer) {
			wfd = openat(s->tmp_fd, de->d_name,
				     O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					     O_CLOEXEC);
			if (wfd < 0 && errno == ENOENT)
				continue; /* its writer finished meanwhile */
			if (wfd < 0)
				writer = false;
		}
		if (writer) {
			/* Held by a live writer: not ours to touch. */
			if (flock(wfd, LOCK_EX | LOCK_NB) < 0) {
				close(wfd);
				continue;
			}
		} else if (!strays) {
			continue;
		}
		snprintf(rel, sizeof(rel), "tmp/%s", de->d_name);
		if (paths) {
			int q = store_strv_add(paths, n_paths, rel);
			if (q < 0) {
				cfs_closep(&wfd);
				return q;
			}
		}
		if (!dry_run) {
			int q = store_rm_rf_at(s->tmp_fd, de->d_name);
			if (q < 0 && r == 0)
				r = cfs_error_errno(-q, "store %s: removing %s",
						    s->root, rel);
		}
		cfs_closep(&wfd);
	}
	return r;
}

/* ---- blobs/sha256 ------------------------------------------------------ */

bool store_blob_digest_valid(const char *digest)
{
	return digest && strncmp(digest, "sha256:", 7) == 0 &&
	       store_is_hex(digest + 7, true);
}

int store_blob_read(cfs_store *s, const char *digest, char **out, size_t *len)
{
	_cleanup_free_ char *buf = NULL;
	char got[CFS_SHA256_STR_SIZE];
	size_t n;
	int r;

	if (!store_blob_digest_valid(digest))
		return -EINVAL;
	if (s->blobs_fd < 0)
		return -ENOENT;
	r = read_small_file(s->blobs_fd, digest + 7, &buf, &n);
	if (r < 0)
		return r == -ENOENT ?
			       r :
			       cfs_error_errno(-r, "store %s: blobs/sha256/%s",
					       s->root, digest + 7);
	r = cfs_sha256(buf, n, NULL, got);
	if (r < 0)
		return r;
	if (strcmp(got, digest) != 0)
		return cfs_error(EBADMSG,
				 "store %s: blobs/sha256/%s: content has "
				 "digest %s",
				 s->root, digest + 7, got);
	*out = TAKE_PTR(buf);
	*len = n;
	return 0;
}

int store_blob_stage(cfs_store *s, struct store_writer *w, const char *digest,
		     const void *data, size_t len, bool sync)
{
	_cleanup_close_ int fd = -1;
	char got[CFS_SHA256_STR_SIZE];
	int r;

	r = cfs_sha256(data, len, NULL, got);
	if (r < 0)
		return r;
	if (strcmp(got, digest) != 0)
		return cfs_error(EINVAL, "blob %s: content has digest %s",
				 digest, got);
	fd = openat(w->fd, digest + 7, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC,
		    0644);
	r = fd < 0 ? -errno : cfs_write_all(fd, data, len);
	if (r == 0 && sync && fsync(fd) < 0)
		r = -errno;
	if (r < 0)
		return cfs_error_errno(-r, "store %s: tmp/%s/%s", s->root,
				       w->name, digest + 7);
	return 0;
}

/* ---- names.json ------------------------------------------------------ */

bool cfs_store_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > CFS_STORE_NAME_MAX)
		return false;
	if (!((name[0] >= 'a' && name[0] <= 'z') ||
	      (name[0] >= 'A' && name[0] <= 'Z') ||
	      (name[0] >= '0' && name[0] <= '9')))
		return false;
	return strspn(name, "abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789._:/@+-") == len;
}

void store_names_clear(struct store_names *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].name);
		free(t->v[i].config);
		free(t->v[i].manifest);
	}
	free(t->v);
	memset(t, 0, sizeof(*t));
}

static size_t names_find(const struct store_names *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i].name, name) == 0)
			return i;
	return (size_t)-1;
}

const struct store_name *store_names_find(const struct store_names *t,
					  const char *name)
{
	size_t i = names_find(t, name);

	return i == (size_t)-1 ? NULL : &t->v[i];
}

const char *store_names_get(const struct store_names *t, const char *name)
{
	const struct store_name *e = store_names_find(t, name);

	return e ? e->digest : NULL;
}

static int strdup_opt(const char *src, char **dst)
{
	*dst = NULL;
	if (src && !(*dst = strdup(src)))
		return -ENOMEM;
	return 0;
}

int store_names_set(struct store_names *t, const char *name, const char *digest,
		    const char *config, const char *manifest)
{
	size_t i = names_find(t, name);
	struct store_name e = { 0 };

	if (strlen(digest) != CFS_DIGEST_HEX_SIZE)
		return -EINVAL;
	memcpy(e.digest, digest, CFS_DIGEST_HEX_SIZE + 1);
	if (strdup_opt(config, &e.config) < 0 ||
	    strdup_opt(manifest, &e.manifest) < 0 ||
	    (i == (size_t)-1 && !(e.name = strdup(name)))) {
		free(e.config);
		free(e.manifest);
		return -ENOMEM;
	}
	if (i != (size_t)-1) {
		free(t->v[i].config);
		free(t->v[i].manifest);
		e.name = t->v[i].name;
		t->v[i] = e;
		return 0;
	}
	struct store_name *nv = realloc(t->v, (t->n + 1) * sizeof(*nv));
	if (!nv) {
		free(e.name);
		free(e.config);
		free(e.manifest);
		return -ENOMEM;
	}
	t->v = nv;
	t->v[t->n++] = e;
	return 0;
}

int store_names_del(struct store_names *t, const char *name)
{
	size_t i = names_find(t, name);

	if (i == (size_t)-1)
		return -ENOENT;
	free(t->v[i].name);
	free(t->v[i].config);
	free(t->v[i].manifest);
	t->n--;
	memmove(t->v + i, t->v + i + 1, (t->n - i) * sizeof(*t->v));
	return 0;
}

/* One entry of names.json: "DIGEST" (version 1) or {"image": DIGEST,
 * "config": "sha256:...", "manifest": "sha256:..."} (version 2). */
static int names_parse_entry(struct store_names *t, const char *key,
			     json_object *val, int version)
{
	const char *d = NULL, *config = NULL, *manifest = NULL;
	json_object *v;

	if (!cfs_store_name_valid(key))
		return -EBADMSG;
	if (version == 1 && json_object_is_type(val, json_type_string)) {
		d = json_object_get_string(val);
	} else if (version == 2 && json_object_is_type(val, json_type_object)) {
		if (json_object_object_get_ex(val, "image", &v) &&
		    json_object_is_type(v, json_type_string))
			d = json_object_get_string(v);
		if (json_object_object_get_ex(val, "config", &v)) {
			config = json_object_get_string(v);
			if (!store_blob_digest_valid(config))
				return -EBADMSG;
		}
		if (json_object_object_get_ex(val, "manifest", &v)) {
			manifest = json_object_get_string(v);
			if (!store_blob_digest_valid(manifest))
				return -EBADMSG;
		}
	}
	if (!d || !store_is_hex(d, true))
		return -EBADMSG;
	return store_names_set(t, key, d, config, manifest);
}

int store_names_read(cfs_store *s, struct store_names *t)
{
	_cleanup_(json_object_putp) json_object *o = NULL;
	_cleanup_free_ char *buf = NULL;
	json_object *names, *v;
	size_t len;
	int version, r;

	memset(t, 0, sizeof(*t));
	r = read_small_file(s->root_fd, "names.json", &buf, &len);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return cfs_error_errno(-r, "store %s: names.json", s->root);
	r = parse_json(&o, buf, len, "names.json");
	if (r < 0)
		return cfs_error_prefix(-r, "store %s", s->root);
	version = json_object_object_get_ex(o, "version", &v) ?
			  json_object_get_int(v) :
			  0;
	if ((version != 1 && version != STORE_NAMES_VERSION) ||
	    !json_object_object_get_ex(o, "names", &names) ||
	    !json_object_is_type(names, json_type_object))
		return cfs_error(EBADMSG,
				 "store %s: names.json: no version 1 or %d "
				 "\"names\" object",
				 s->root, STORE_NAMES_VERSION);
	json_object_object_foreach(names, key, val)
	{
		r = names_parse_entry(t, key, val, version);
		if (r < 0) {
			store_names_clear(t);
			if (r == -ENOMEM)
				return r;
			return cfs_error(EBADMSG,
					 "store %s: names.json: bad entry '%s'",
					 s->root, key);
		}
	}
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct store_name *)a)->name,
		      ((const struct store_name *)b)->name);
}

int store_names_stage(cfs_store *s, struct store_writer *w,
		      const struct store_names *t)
{
	_cleanup_(json_object_putp) json_object *o = json_object_new_object();
	_cleanup_free_ struct store_name *sorted = NULL;
	json_object *names = json_object_new_object();
	int r;

	if (!o || !names) {
		json_object_put(names);
		return -ENOMEM;
	}
	json_object_object_add(o, "version",
			       json_object_new_int(STORE_NAMES_VERSION));
	json_object_object_add(o, "names", names);
	/* Sorted, so that the same table is always the same bytes. */
	sorted = malloc((t->n ? t->n : 1) * sizeof(*sorted));
	if (!sorted)
		return -ENOMEM;
	if (t->n)
		memcpy(sorted, t->v, t->n * sizeof(*sorted));
	qsort(sorted, t->n, sizeof(*sorted), name_cmp);
	for (size_t i = 0; i < t->n; i++) {
		json_object *e = json_object_new_object();
		if (!e)
			return -ENOMEM;
		json_object_object_add(names, sorted[i].name, e);
		json_object_object_add(
			e, "image", json_object_new_string(sorted[i].digest));
		if (sorted[i].config)
			json_object_object_add(
				e, "config",
				json_object_new_string(sorted[i].config));
		if (sorted[i].manifest)
			json_object_object_add(
				e, "manifest",
				json_object_new_string(sorted[i].manifest));
	}
	r = write_small_file(w, "names.json",
			     json_object_to_json_string_ext(
				     o,
				     JSON_C_TO_STRING_PRETTY |
					     JSON_C_TO_STRING_NOSLASHESCAPE));
	if (r < 0)
		return cfs_error_errno(-r, "store %s: writing names.json",
				       s->root);
	return 0;
}

int store_names_commit(cfs_store *s, struct store_writer *w)
{
	/* Over an existing entry a rename needs no room: it cannot fail
	 * for want of space (except for the first names.json). */
	if (renameat(w->fd, "names.json", s->root_fd, "names.json") < 0)
		return cfs_error_errno(errno, "store %s: renaming names.json",
				       s->root);
	return 0;
}

int store_names_write(cfs_store *s, struct store_writer *w,
		      const struct store_names *t)
{
	int r = store_names_stage(s, w, t);

	if (r == 0)
		r = store_names_commit(s, w);
	if (r == 0 && fsync(s->root_fd) < 0)
		r = cfs_error_errno(errno, "store %s: fsync names.json",
				    s->root);
	return r;
}

/* ---- object sets ------------------------------------------------------- */

int store_objset_add(struct store_objset *set, const uint8_t *digest,
		     uint64_t size)
{
	if (set->n == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 256;
		struct store_obj *v = realloc(set->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		set->v = v;
		set->cap = cap;
	}
	memcpy(set->v[set->n].digest, digest, CFS_DIGEST_SIZE);
	set->v[set->n].size = size;
	set->n++;
	return 0;
}

int store_objset_add_tree(struct store_objset *set, cfs_inode *dir)
{
	for (size_t i = 0; i < cfs_dir_count(dir); i++) {
		const uint8_t *digest;
		const char *name, *payload;
		cfs_inode *child;
		int r;

		cfs_dir_entry_at(dir, i, &name, &child);
		if (cfs_inode_type(child) == S_IFDIR) {
			r = store_objset_add_tree(set, child);
			if (r < 0)
				return r;
			continue;
		}
		if (cfs_inode_type(child) != S_IFREG)
			continue;
		digest = cfs_inode_digest(child);
		payload = cfs_inode_payload(child);
		if (!digest && !payload)
			continue;
		if (digest && payload) {
			char path[CFS_DIGEST_HEX_SIZE + 2];
			cfs_digest_to_object_path(digest, path);
			if (strcmp(path, payload) == 0) {
				r = store_objset_add(set, digest,
						     cfs_inode_size(child));
				if (r < 0)
					return r;
				continue;
			}
		}
		return cfs_error(EINVAL,
				 "file '%s': external content that is not an "
				 "object of the store",
				 name);
	}
	return 0;
}

static int obj_cmp(const void *a, const void *b)
{
	return memcmp(a, b, CFS_DIGEST_SIZE);
}

void store_objset_finish(struct store_objset *set)
{
	size_t out = 0;

	if (set->n == 0)
		return;
	qsort(set->v, set->n, sizeof(*set->v), obj_cmp);
	for (size_t i = 1; i < set->n; i++)
		if (memcmp(set->v[out].digest, set->v[i].digest,
			   CFS_DIGEST_SIZE) != 0)
			set->v[++out] = set->v[i];
	set->n = out + 1;
}

bool store_objset_has(const struct store_objset *set, const uint8_t *digest)
{
	return set->n && bsearch(digest, set->v, set->n, sizeof(*set->v),
				 obj_cmp) != NULL;
}

void store_objset_clear(struct store_objset *set)
{
	free(set->v);
	memset(set, 0, sizeof(*set));
}

/* ---- images ------------------------------------------------------------ */

/* The images/<hex>.cfs there, in name order (cfs_dir_names()). */
int store_image_digests(cfs_store *s, char (**out)[CFS_DIGEST_HEX_SIZE + 1],
			size_t *n_out)
{
	char(*v)[CFS_DIGEST_HEX_SIZE + 1] = NULL;
	char **names;
	size_t n = 0, nn;
	int r = store_dir_names(s, s->images_fd, "images", &names, &nn);

	if (r < 0)
		return r;
	if (nn && !(v = calloc(nn, sizeof(*v))))
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < nn; i++) {
		const char *name = names[i];

		if (strlen(name) != CFS_DIGEST_HEX_SIZE + 4 ||
		    strcmp(name + CFS_DIGEST_HEX_SIZE, ".cfs") != 0)
			continue;
		memcpy(v[n], name, CFS_DIGEST_HEX_SIZE);
		v[n][CFS_DIGEST_HEX_SIZE] = '\0';
		if (store_is_hex(v[n], true))
			n++;
	}
	store_strv_free(names, nn);
	if (r < 0) {
		free(v);
		return r;
	}
	*out = v;
	*n_out = n;
	return 0;
}

static char *json_strdup(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return strdup(json_object_get_string(v));
}

static int64_t json_int(json_object *o, const char *key, bool *ok)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_int)) {
		*ok = false;
		return 0;
	}
	return json_object_get_int64(v);
}

int store_meta_signatures(cfs_store *s, const char *hex, json_object **out)
{
	_cleanup_(json_object_putp) json_object *o = NULL;
	_cleanup_free_ char *buf = NULL;
	char name[CFS_DIGEST_HEX_SIZE + 8];
	json_object *v;
	size_t len;
	int r;

	*out = NULL;
	snprintf(name, sizeof(name), "%s.json", hex);
	r = read_small_file(s->images_fd, name, &buf, &len);
	if (r < 0)
		return cfs_error_errno(-r, "images/%s", name);
	r = parse_json(&o, buf, len, name);
	if (r < 0)
		return r;
	if (json_object_object_get_ex(o, "signatures", &v) &&
	    json_object_is_type(v, json_type_object))
		*out = json_object_get(v);
	return 0;
}

int store_blob_verity(cfs_store *s, const char *digest,
		      uint8_t out[CFS_DIGEST_SIZE])
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r;

	if (s->blobs_fd < 0 || strncmp(digest, "sha256:", 7) != 0 ||
	    !store_is_hex(digest + 7, false))
		return cfs_error(ENOENT, "blobs/sha256: no blob %s", digest);
	r = read_small_file(s->blobs_fd, digest + 7, &buf, &len);
	if (r < 0)
		return cfs_error_errno(-r, "blobs/sha256/%s", digest + 7);
	return cfs_verity_digest_buffer(buf, len, out);
}

int store_meta_read(cfs_store *s, const char *hex, cfs_store_image *img)
{
	_cleanup_(json_object_putp) json_object *o = NULL;
	_cleanup_free_ char *buf = NULL;
	char name[CFS_DIGEST_HEX_SIZE + 8];
	json_object *v;
	bool ok = true;
	size_t len;
	int r;

	snprintf(name, sizeof(name), "%s.json", hex);
	r = read_small_file(s->images_fd, name, &buf, &len);
	if (r < 0)
		return r == -ENOENT ? -ENOENT :
				      cfs_error_errno(-r, "images/%s", name);
	r = parse_json(&o, buf, len, name);
	if (r < 0)
		return r;
	if (!json_object_is_type(o, json_type_object))
		return cfs_error(EBADMSG, "images/%s: not an object", name);
	if (json_int(o, "version", &ok) != STORE_FORMAT_VERSION || !ok)
		return cfs_error(EBADMSG, "images/%s: not version %d", name,
				 STORE_FORMAT_VERSION);
	if (!json_object_object_get_ex(o, "digest", &v) ||
	    strcmp(json_object_get_string(v), hex) != 0)
		return cfs_error(EBADMSG, "images/%s: digest is not %s", name,
				 hex);
	memcpy(img->digest, hex, CFS_DIGEST_HEX_SIZE + 1);
	img->complete = true;
	img->source = json_strdup(o, "source");
	img->manifest_digest = json_strdup(o, "manifest_digest");
	img->config_digest = json_strdup(o, "config_digest");
	if (json_object_object_get_ex(o, "config", &v) &&
	    json_object_is_type(v, json_type_object))
		img->config = strdup(json_object_to_json_string_ext(
			v, JSON_C_TO_STRING_PLAIN |
				   JSON_C_TO_STRING_NOSLASHESCAPE));
	img->created = json_int(o, "created_unix", &ok);
	img->image_size = (uint64_t)json_int(o, "image_size", &ok);
	img->objects = (uint64_t)json_int(o, "objects", &ok);
	img->object_bytes = (uint64_t)json_int(o, "object_bytes", &ok);
	if (!json_object_object_get_ex(o, "verity", &v) ||
	    !json_object_is_type(v, json_type_boolean))
		ok = false;
	else
		img->verity = json_object_get_boolean(v);
	if (!ok || !img->source)
		return cfs_error(EBADMSG, "images/%s: missing or bad fields",
				 name);
	return 0;
}

/* ---- what gc and fsck share ---------------------------------------------- */

bool store_names_has_digest(const struct store_names *t, const char *hex)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i].digest, hex) == 0)
			return true;
	return false;
}

/* Parse images/<hex>.cfs and add the objects it references to @set. */
int store_image_objects(cfs_store *s, const char *hex, struct store_objset *set,
			struct stat *st_out)
{
	char name[CFS_DIGEST_HEX_SIZE + 8];
	_cleanup_close_ int fd = -1;
	cfs_inode *root = NULL;
	int r;

	snprintf(name, sizeof(name), "%s.cfs", hex);
	fd = openat(s->images_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return cfs_error_errno(errno, "images/%s", name);
	if (st_out && fstat(fd, st_out) < 0)
		return cfs_error_errno(errno, "images/%s", name);
	r = cfs_image_read_fd(&root, fd, NULL);
	if (r == 0)
		r = store_objset_add_tree(set, root);
	cfs_inode_unref(root);
	if (r < 0)
		return cfs_error_prefix(-r, "images/%s", name);
	return 0;
}

/* Call @fn(ctx, "XX", subfd, "<62 hex>" or other entry name, is_object)
 * for every entry below objects/; entries of objects/ itself that are not
 * XX directories come with subfd -1. */
typedef int (*store_object_fn)(void *ctx, const char *sub, int subfd,
			       const char *name, bool is_object);

int store_walk_objects(cfs_store *s, store_object_fn fn, void *ctx)
{
	char **subs = NULL;
	size_t n_subs = 0;
	int r;

	/* in name order, as every report of the store */
	r = store_dir_names(s, s->objects_fd, "objects", &subs, &n_subs);
	for (size_t i = 0; r == 0 && i < n_subs; i++) {
		_cleanup_close_ int sfd = -1;
		char **names = NULL, what[16];
		size_t n = 0;

		if (strlen(subs[i]) == 2 && store_is_hex(subs[i], false))
			sfd = openat(s->objects_fd, subs[i],
				     O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					     O_CLOEXEC);
		if (sfd < 0) {
			r = fn(ctx, NULL, -1, subs[i], false);
			continue;
		}
		snprintf(what, sizeof(what), "objects/%s", subs[i]);
		r = store_dir_names(s, sfd, what, &names, &n);
		for (size_t j = 0; r == 0 && j < n; j++) {
			struct stat st;
			bool obj;

			obj = strlen(names[j]) == CFS_DIGEST_HEX_SIZE - 2 &&
			      store_is_hex(names[j], false) &&
			      fstatat(sfd, names[j], &st,
				      AT_SYMLINK_NOFOLLOW) == 0 &&
			      S_ISREG(st.st_mode);
			r = fn(ctx, subs[i], sfd, names[j], obj);
		}
		store_strv_free(names, n);
	}
	store_strv_free(subs, n_subs);
	return r;
}

void store_object_digest(const char *sub, const char *name,
			 uint8_t digest[CFS_DIGEST_SIZE])
{
	char hex[CFS_DIGEST_HEX_SIZE + 1];

	snprintf(hex, sizeof(hex), "%s%s", sub, name);
	cfs_digest_from_hex(digest, hex);
}
