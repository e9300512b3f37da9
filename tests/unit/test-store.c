/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * The image store API on small fixtures (tests/oci/make-fixtures.py and
 * directory trees made here): importing twice writes no object and adds
 * names, lookup by digest prefix and its ambiguity, tag/untag/rm, gc
 * removing exactly the unreferenced objects, fsck finding a deleted
 * object, a bit flip (with verify) and a stray file and repairing them,
 * stale and live temporaries, and a failed import leaving every byte of
 * the store as it was: also when a rename or fsync of its commit fails
 * (each in turn), or when an object it found in the store is gone by the
 * commit. Tag and rm the same way. gc gets ROOT/lock ahead of shared
 * lockers that come after it (ROOT/gate.lock, made on demand).
 */
/* Fixture paths live in fixed buffers far larger than they need. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cfs/cfs.h>

#include "common/error.h"
#include "store/store-internal.h"
#include "test.h"

static char T[1024]; /* scratch directory */
static char ROOT[1100]; /* the store */

static void die(const char *what)
{
	perror(what);
	exit(2);
}

static void write_file(const char *path, const char *fill, size_t size)
{
	FILE *f = fopen(path, "w");

	if (!f)
		die(path);
	for (size_t i = 0; i < size; i++)
		fputc(fill[i % strlen(fill)], f);
	fclose(f);
}

/* ---- fault injection ---------------------------------------------------- */

/*
 * The store's commit is renames and fsyncs; on a real disk a rename can
 * find no room for a new directory block (ext4), and an fsync can fail.
 * These definitions take the place of libc's for the library archive
 * linked into this test. Armed, the Nth call from then on fails with
 * ENOSPC, and says which call it was (the file, for an fsync).
 */
static int fault_at; /* fail the Nth call from now on; 0: never */
static int fault_calls; /* calls since armed, also after the failure */
static char fault_what[PATH_MAX + 32]; /* the call that failed */

static void fault_arm(int n)
{
	__atomic_store_n(&fault_calls, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&fault_at, n, __ATOMIC_SEQ_CST);
	fault_what[0] = '\0';
}

/* Disarm: did the fault fire? */
static bool fault_disarm(void)
{
	__atomic_store_n(&fault_at, 0, __ATOMIC_SEQ_CST);
	return fault_what[0] != '\0';
}

static bool fault_due(const char *call, int fd)
{
	char link[64], path[PATH_MAX];
	ssize_t n = -1;
	int at = __atomic_load_n(&fault_at, __ATOMIC_SEQ_CST);

	if (at == 0 ||
	    __atomic_add_fetch(&fault_calls, 1, __ATOMIC_SEQ_CST) != at ||
	    fault_what[0])
		return false;
	if (fd >= 0) {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, path, sizeof(path) - 1);
	}
	path[n < 0 ? 0 : n] = '\0';
	snprintf(fault_what, sizeof(fault_what), "%s %s", call, path);
	errno = ENOSPC;
	return true;
}

int renameat2(int olddirfd, const char *oldpath, int newdirfd,
	      const char *newpath, unsigned int flags)
{
	if (fault_due("rename", -1))
		return -1;
	return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath,
			    flags);
}

int renameat(int olddirfd, const char *oldpath, int newdirfd,
	     const char *newpath)
{
	return renameat2(olddirfd, oldpath, newdirfd, newpath, 0);
}

int fsync(int fd)
{
	if (fault_due("fsync", fd))
		return -1;
	return (int)syscall(SYS_fsync, fd);
}

/* Called once when an exclusive flock of ROOT/names.lock is asked for,
 * after names_lock_skip of them: an import takes it first to read the
 * undo generation, then where its commit begins. */
static void (*names_lock_hook)(void);
static int names_lock_skip;

int flock(int fd, int op)
{
	char path[1200];
	struct stat a, b;

	snprintf(path, sizeof(path), "%s/names.lock", ROOT);
	if (names_lock_hook && op == LOCK_EX && fstat(fd, &a) == 0 &&
	    stat(path, &b) == 0 && a.st_dev == b.st_dev &&
	    a.st_ino == b.st_ino && names_lock_skip-- == 0) {
		void (*hook)(void) = names_lock_hook;
		names_lock_hook = NULL;
		hook();
	}
	return (int)syscall(SYS_flock, fd, op);
}

/* ---- a listing of every file of the store: path, size, digest ---------- */

static char *listing;
static size_t listing_len;

static int list_one(const char *path, const struct stat *st, int type,
		    struct FTW *ftw)
{
	char line[2048], hex[CFS_DIGEST_HEX_SIZE + 1] = "-";

	/* names.lock holds the undo generation (store.c): a failed commit
	 * counts itself there, which is not the store changing. */
	if (strcmp(path + strlen(ROOT), "/names.lock") == 0)
		return 0;
	if (type == FTW_F) {
		uint8_t d[CFS_DIGEST_SIZE];
		int fd = open(path, O_RDONLY);
		if (fd < 0 || cfs_verity_digest_fd(fd, d) < 0)
			die(path);
		close(fd);
		cfs_digest_to_hex(d, hex);
	}
	snprintf(line, sizeof(line), "%s %c %lld %s\n", path + strlen(ROOT),
		 type == FTW_F ? 'f' : 'd', (long long)st->st_size, hex);
	listing = realloc(listing, listing_len + strlen(line) + 1);
	memcpy(listing + listing_len, line, strlen(line) + 1);
	listing_len += strlen(line);
	return 0;
}

/* Sorted, so that readdir order does not matter. */
static int line_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *snapshot(void)
{
	char **lines = NULL, *out, *save = NULL;
	size_t n = 0, len = 0;

	listing = NULL;
	listing_len = 0;
	if (nftw(ROOT, list_one, 16, FTW_PHYS) < 0)
		die("nftw");
	for (char *l = strtok_r(listing, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save)) {
		lines = realloc(lines, (n + 1) * sizeof(*lines));
		lines[n++] = l;
		len += strlen(l) + 1;
	}
	qsort(lines, n, sizeof(*lines), line_cmp);
	out = calloc(1, len + 1);
	for (size_t i = 0; i < n; i++) {
		strcat(out, lines[i]);
		strcat(out, "\n");
	}
	free(lines);
	free(listing);
	return out;
}

/* ---- helpers ------------------------------------------------------------ */

static size_t count_objects(void)
{
	char path[1200];
	size_t n = 0;

	for (int i = 0; i < 256; i++) {
		DIR *d;
		struct dirent *de;
		snprintf(path, sizeof(path), "%s/objects/%02x", ROOT, i);
		d = opendir(path);
		if (!d)
			continue;
		while ((de = readdir(d)))
			n += de->d_name[0] != '.';
		closedir(d);
	}
	return n;
}

static int import(cfs_store *s, const char *source, const char *name,
		  cfs_store_import_result *res)
{
	cfs_store_import_options opts = CFS_STORE_IMPORT_OPTIONS_INIT;
	const char *names[1] = { name };

	int r;

	if (name) {
		opts.names = names;
		opts.n_names = 1;
	}
	r = cfs_store_import(s, source, &opts, res);
	/* The per-layer results are store-records.sh's business (a failed
	 * import writes no result). */
	if (r == 0 && res) {
		free(res->layers);
		res->layers = NULL;
		res->n_layers = 0;
	}
	return r;
}

static size_t count_kind(const cfs_store_fsck_result *res, const char *kind,
			 bool repaired_only)
{
	size_t n = 0;

	for (size_t i = 0; i < res->n_problems; i++)
		if (strcmp(res->problems[i].kind, kind) == 0 &&
		    (!repaired_only || res->problems[i].repaired))
			n++;
	return n;
}

static bool fsck_clean(cfs_store *s, unsigned int flags)
{
	cfs_store_fsck_result res = CFS_STORE_FSCK_RESULT_INIT;
	bool ok;

	if (cfs_store_fsck(s, flags, &res) < 0)
		return false;
	ok = res.n_problems == 0;
	for (size_t i = 0; i < res.n_problems; i++)
		fprintf(stderr, "  problem: %s %s: %s\n", res.problems[i].kind,
			res.problems[i].path, res.problems[i].message);
	cfs_store_fsck_result_clear(&res);
	return ok;
}

/* First object path ("XX/<62 hex>") the image @hex references. */
static void some_object(cfs_store *s, const char *hex, size_t which,
			char path[CFS_DIGEST_HEX_SIZE + 2])
{
	struct store_objset set = { 0 };
	char img[1300];
	cfs_inode *root = NULL;
	int fd;

	snprintf(img, sizeof(img), "%s/images/%s.cfs", ROOT, hex);
	fd = open(img, O_RDONLY);
	if (fd < 0 || cfs_image_read_fd(&root, fd, NULL) < 0 ||
	    store_objset_add_tree(&set, root) < 0 || set.n <= which)
		die("some_object");
	store_objset_finish(&set);
	cfs_digest_to_object_path(set.v[which].digest, path);
	store_objset_clear(&set);
	cfs_inode_unref(root);
	close(fd);
	(void)s;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_import_twice(cfs_store *s, char *hl_hex)
{
	cfs_store_import_result a = CFS_STORE_IMPORT_RESULT_INIT,
				b = CFS_STORE_IMPORT_RESULT_INIT;
	char fx[1200], hex[CFS_DIGEST_HEX_SIZE + 1];
	struct stat before, after;
	char obj[1300], path[CFS_DIGEST_HEX_SIZE + 2];
	size_t n;

	snprintf(fx, sizeof(fx), "oci:%s/fx/hardlinks", T);
	CHECK_OK(import(s, fx, "hl", &a));
	CHECK(!a.existed);
	CHECK(a.objects > 0 && a.objects_new == a.objects);
	CHECK(a.object_bytes > 0 && a.objects_new_bytes == a.object_bytes);
	/* fs-verity: on or reported as unavailable, never silently off. */
	CHECK(a.verity ? a.verity_enabled == a.objects + 1 :
			 a.verity_errno != 0);
	n = count_objects();
	CHECK(n == a.objects);
	some_object(s, a.digest, 0, path);
	snprintf(obj, sizeof(obj), "%s/objects/%s", ROOT, path);
	CHECK(stat(obj, &before) == 0);

	CHECK_OK(import(s, fx, "hl-again", &b));
	CHECK(b.existed);
	CHECK(strcmp(a.digest, b.digest) == 0);
	CHECK(b.objects_new == 0 && b.objects_new_bytes == 0);
	CHECK(b.objects == a.objects);
	CHECK(count_objects() == n);
	/* Not rewritten: same inode, same change time. */
	CHECK(stat(obj, &after) == 0);
	CHECK(before.st_ino == after.st_ino &&
	      before.st_ctim.tv_sec == after.st_ctim.tv_sec &&
	      before.st_ctim.tv_nsec == after.st_ctim.tv_nsec);
	CHECK_OK(cfs_store_resolve(s, "hl", hex));
	CHECK(strcmp(hex, a.digest) == 0);
	CHECK_OK(cfs_store_resolve(s, "hl-again", hex));
	CHECK(strcmp(hex, a.digest) == 0);
	memcpy(hl_hex, a.digest, CFS_DIGEST_HEX_SIZE + 1);

	cfs_store_image img;
	CHECK_OK(cfs_store_inspect(s, "hl", &img));
	CHECK(img.complete && img.n_names == 2);
	CHECK(img.n_names == 2 && strcmp(img.names[0], "hl") == 0 &&
	      strcmp(img.names[1], "hl-again") == 0);
	CHECK(img.config && strstr(img.config, "rootfs"));
	CHECK(img.config_digest &&
	      strncmp(img.config_digest, "sha256:", 7) == 0);
	CHECK(img.objects == a.objects && img.object_bytes == a.object_bytes);
	CHECK(strcmp(img.source, fx) == 0);
	cfs_store_image_clear(&img);
}

/* Import small dir: trees until two digests share their first hex digit
 * (at most 17 by pigeonhole). */
static void test_prefix(cfs_store *s, char *a_out, char *b_out)
{
	char seen[16][CFS_DIGEST_HEX_SIZE + 1] = { { 0 } };
	char hex[CFS_DIGEST_HEX_SIZE + 1], dir[1200], file[1300], src[1300];
	char name[32];

	for (int i = 0; i < 17; i++) {
		cfs_store_import_result r = CFS_STORE_IMPORT_RESULT_INIT;
		int k;

		snprintf(dir, sizeof(dir), "%s/tree%d", T, i);
		mkdir(dir, 0755);
		snprintf(file, sizeof(file), "%s/shared", dir);
		write_file(file, "content shared by every tree ", 5000);
		snprintf(file, sizeof(file), "%s/own", dir);
		snprintf(name, sizeof(name), "tree %d ", i);
		write_file(file, name, 3000 + (size_t)i);
		snprintf(src, sizeof(src), "dir:%s", dir);
		snprintf(name, sizeof(name), "tree%d", i);
		CHECK_OK(import(s, src, name, &r));
		k = r.digest[0] >= 'a' ? r.digest[0] - 'a' + 10 :
					 r.digest[0] - '0';
		if (seen[k][0] && strcmp(seen[k], r.digest) != 0) {
			char prefix[2] = { r.digest[0], 0 };
			CHECK_ERR(cfs_store_resolve(s, prefix, hex), ENOTUNIQ);
			CHECK(strstr(cfs_error_message(), "ambiguous"));
			memcpy(a_out, seen[k], CFS_DIGEST_HEX_SIZE + 1);
			memcpy(b_out, r.digest, CFS_DIGEST_HEX_SIZE + 1);
			/* Longer prefixes tell them apart: one digit past
			 * what any other image of the store shares with it
			 * (the store holds more than these trees, and their
			 * digests change from run to run with the trees'
			 * mtimes). */
			cfs_store_image *all;
			size_t l = 1, n_all;

			CHECK_OK(cfs_store_list(s, &all, &n_all));
			for (size_t j = 0; j < n_all; j++) {
				size_t c = 0;

				if (strcmp(all[j].digest, r.digest) == 0)
					continue;
				while (all[j].digest[c] == r.digest[c])
					c++;
				l = c > l ? c : l;
			}
			cfs_store_images_free(all, n_all);
			char longer[CFS_DIGEST_HEX_SIZE + 1];
			memcpy(longer, r.digest, l + 1);
			longer[l + 1] = '\0';
			CHECK_OK(cfs_store_resolve(s, longer, hex));
			CHECK(strcmp(hex, r.digest) == 0);
			CHECK_OK(cfs_store_resolve(s, r.digest, hex));
			return;
		}
		memcpy(seen[k], r.digest, sizeof(seen[k]));
	}
	CHECK(!"no two digests shared a first digit");
}

static void test_names(cfs_store *s, const char *hl)
{
	char hex[CFS_DIGEST_HEX_SIZE + 1];

	CHECK_ERR(cfs_store_resolve(s, "nope", hex), ENOENT);
	CHECK_ERR(cfs_store_resolve(s, "ffffffffffffff", hex), ENOENT);
	CHECK_ERR(cfs_store_tag(s, "hl", "-bad"), EINVAL);
	CHECK_ERR(cfs_store_tag(s, "nope", "x"), ENOENT);
	CHECK_OK(cfs_store_tag(s, "hl", "other"));
	CHECK_OK(cfs_store_resolve(s, "other", hex));
	CHECK(strcmp(hex, hl) == 0);
	CHECK_OK(cfs_store_untag(s, "other"));
	CHECK_ERR(cfs_store_untag(s, "other"), ENOENT);
	CHECK_ERR(cfs_store_resolve(s, "other", hex), ENOENT);
	/* A digest prefix removes every name of the image. */
	CHECK_OK(cfs_store_tag(s, "hl", "third"));
	char prefix[13];
	memcpy(prefix, hl, 12);
	prefix[12] = '\0';
	CHECK_OK(cfs_store_remove(s, prefix));
	CHECK_ERR(cfs_store_resolve(s, "hl", hex), ENOENT);
	CHECK_ERR(cfs_store_resolve(s, "third", hex), ENOENT);
	CHECK_ERR(cfs_store_resolve(s, "hl-again", hex), ENOENT);
	/* Still there by digest until gc. */
	CHECK_OK(cfs_store_resolve(s, prefix, hex));
	CHECK_OK(cfs_store_tag(s, prefix, "hl"));
	CHECK_ERR(cfs_store_remove(s, "nope"), ENOENT);
}

static void test_gc(cfs_store *s)
{
	cfs_store_image *images;
	struct store_objset keep = { 0 };
	cfs_store_gc_result dry = CFS_STORE_GC_RESULT_INIT,
			    res = CFS_STORE_GC_RESULT_INIT;
	cfs_store_gc_result unset = { 0 };
	cfs_store_fsck_result newer = CFS_STORE_FSCK_RESULT_INIT;
	size_t n, total, removed_objects = 0;

	/* Result structs of a version the library does not know are
	 * refused before anything is done (include/cfs/common.h). */
	CHECK_ERR(cfs_store_gc(s, CFS_STORE_GC_DRY_RUN, &unset), EINVAL);
	CHECK(strstr(cfs_error_message(), "result struct of version 0"));
	newer.version = CFS_STORE_FSCK_RESULT_VERSION + 1;
	CHECK_ERR(cfs_store_fsck(s, 0, &newer), EINVAL);
	CHECK(newer.version == CFS_STORE_FSCK_RESULT_VERSION + 1);

	/* Unname half the trees. */
	for (int i = 0; i < 17; i += 2) {
		char name[16];
		snprintf(name, sizeof(name), "tree%d", i);
		cfs_store_untag(s, name);
	}
	/* What must stay: the objects of the named images. */
	CHECK_OK(cfs_store_list(s, &images, &n));
	for (size_t i = 0; i < n; i++) {
		char img[1300];
		cfs_inode *root = NULL;
		int fd;
		if (images[i].n_names == 0)
			continue;
		snprintf(img, sizeof(img), "%s/images/%s.cfs", ROOT,
			 images[i].digest);
		fd = open(img, O_RDONLY);
		CHECK(fd >= 0 && cfs_image_read_fd(&root, fd, NULL) == 0);
		CHECK_OK(store_objset_add_tree(&keep, root));
		cfs_inode_unref(root);
		close(fd);
	}
	cfs_store_images_free(images, n);
	store_objset_finish(&keep);
	/* Unreferenced objects made in descending name order: a small
	 * directory lists them in the order they were made. */
	for (int i = 40; i > 0; i--) {
		char path[1300];
		int fd;

		snprintf(path, sizeof(path), "%s/objects/ab/%062d", ROOT, i);
		fd = open(path, O_CREAT | O_WRONLY | O_EXCL, 0644);
		CHECK(fd >= 0);
		if (fd >= 0)
			close(fd);
	}
	total = count_objects();
	CHECK(keep.n < total);

	char *before = snapshot();
	CHECK_OK(cfs_store_gc(s, CFS_STORE_GC_DRY_RUN, &dry));
	char *after = snapshot();
	CHECK(strcmp(before, after) == 0);
	free(before);
	free(after);
	CHECK(dry.objects == total - keep.n);
	/* reported in name order within a directory, whatever readdir
	 * said (ext4 lists a large directory in hash order) */
	for (size_t i = 1; i < dry.n_paths; i++) {
		const char *a = dry.paths[i - 1], *b = dry.paths[i];
		size_t da = strrchr(a, '/') - a, db = strrchr(b, '/') - b;

		/* (an image's metadata goes before its image file) */
		if (da == db && strncmp(a, b, da) == 0)
			CHECK(strncmp(a + da, b + da, 1 + 62) <= 0);
	}

	CHECK_OK(cfs_store_gc(s, 0, &res));
	CHECK(res.objects == dry.objects && res.images == dry.images &&
	      res.n_paths == dry.n_paths);
	CHECK(res.images > 0);
	for (size_t i = 0; i < res.n_paths; i++) {
		uint8_t d[CFS_DIGEST_SIZE];
		char hex[CFS_DIGEST_HEX_SIZE + 1];
		const char *p = res.paths[i];
		if (strncmp(p, "objects/", 8) != 0)
			continue;
		removed_objects++;
		snprintf(hex, sizeof(hex), "%.2s%s", p + 8, p + 11);
		CHECK(cfs_digest_from_hex(d, hex) == 0);
		/* Exactly the unreferenced ones. */
		CHECK(!store_objset_has(&keep, d));
	}
	CHECK(removed_objects == total - keep.n);
	CHECK(count_objects() == keep.n);
	cfs_store_gc_result_clear(&dry);
	cfs_store_gc_result_clear(&res);
	/* Nothing left to collect. */
	CHECK_OK(cfs_store_gc(s, 0, &res));
	CHECK(res.n_paths == 0);
	cfs_store_gc_result_clear(&res);
	store_objset_clear(&keep);
	CHECK(fsck_clean(s, CFS_STORE_FSCK_VERIFY));
}

static void test_fsck(cfs_store *s, const char *hl)
{
	cfs_store_fsck_result res = CFS_STORE_FSCK_RESULT_INIT;
	char a[CFS_DIGEST_HEX_SIZE + 2], b[CFS_DIGEST_HEX_SIZE + 2];
	char path[1300], fx[1200];
	int fd;

	CHECK(fsck_clean(s, CFS_STORE_FSCK_VERIFY));
	some_object(s, hl, 0, a);
	some_object(s, hl, 1, b);
	snprintf(path, sizeof(path), "%s/objects/%s", ROOT, a);
	CHECK(unlink(path) == 0);
	snprintf(path, sizeof(path), "%s/objects/%s", ROOT, b);
	fd = open(path, O_RDWR);
	CHECK(fd >= 0);
	if (fd >= 0) {
		unsigned char c;
		CHECK(pread(fd, &c, 1, 10) == 1);
		c ^= 0x10;
		CHECK(pwrite(fd, &c, 1, 10) == 1);
		close(fd);
	}
	snprintf(path, sizeof(path), "%s/tmp/leftover", ROOT);
	write_file(path, "x", 10);

	CHECK_OK(cfs_store_fsck(s, 0, &res));
	CHECK(count_kind(&res, "missing-object", false) == 1);
	CHECK(count_kind(&res, "corrupt-object", false) == 0);
	CHECK(count_kind(&res, "stray-file", false) == 1);
	/* and the layer record that names the missing object */
	CHECK(count_kind(&res, "record-missing-object", false) == 1);
	CHECK(res.n_problems == 3);
	cfs_store_fsck_result_clear(&res);

	CHECK_OK(cfs_store_fsck(s, CFS_STORE_FSCK_VERIFY, &res));
	/* The object itself and the image that references it. */
	CHECK(count_kind(&res, "corrupt-object", false) == 2);
	CHECK(count_kind(&res, "missing-object", false) == 1);
	CHECK(count_kind(&res, "stray-file", false) == 1);
	for (size_t i = 0; i < res.n_problems; i++)
		CHECK(!res.problems[i].repaired);
	cfs_store_fsck_result_clear(&res);

	CHECK_OK(cfs_store_fsck(
		s, CFS_STORE_FSCK_VERIFY | CFS_STORE_FSCK_REPAIR, &res));
	for (size_t i = 0; i < res.n_problems; i++)
		CHECK(res.problems[i].repaired);
	/* The corrupt object goes; the image and its name stay, marked
	 * broken. */
	CHECK(count_kind(&res, "dangling-name", true) == 0);
	CHECK(res.broken == 1);
	cfs_store_fsck_result_clear(&res);
	CHECK(access(path, F_OK) < 0);
	CHECK(fsck_clean(s, CFS_STORE_FSCK_VERIFY));
	{
		cfs_store_image img;
		CHECK_OK(cfs_store_inspect(s, "hl", &img));
		CHECK(img.broken && strcmp(img.digest, hl) == 0);
		cfs_store_image_clear(&img);
	}
	CHECK_OK(cfs_store_fsck(s, 0, &res));
	CHECK(res.n_problems == 0 && res.broken == 1);
	cfs_store_fsck_result_clear(&res);

	/* The same import puts it all back. */
	snprintf(fx, sizeof(fx), "oci:%s/fx/hardlinks", T);
	cfs_store_import_result r = CFS_STORE_IMPORT_RESULT_INIT;
	CHECK_OK(import(s, fx, "hl", &r));
	CHECK(strcmp(r.digest, hl) == 0 && r.existed);
	CHECK(r.objects_new == 2);
	CHECK(fsck_clean(s, CFS_STORE_FSCK_VERIFY));
	{
		cfs_store_image img;
		CHECK_OK(cfs_store_inspect(s, "hl", &img));
		CHECK(!img.broken);
		cfs_store_image_clear(&img);
	}
	CHECK_OK(cfs_store_fsck(s, 0, &res));
	CHECK(res.n_problems == 0 && res.broken == 0);
	cfs_store_fsck_result_clear(&res);

	/* Dangling name, orphan metadata, unparsable image. */
	char hex[CFS_DIGEST_HEX_SIZE + 1];
	CHECK_OK(cfs_store_resolve(s, "tree1", hex));
	snprintf(path, sizeof(path), "%s/images/%s.cfs", ROOT, hex);
	fd = open(path, O_WRONLY | O_TRUNC);
	CHECK(fd >= 0 && write(fd, "junk", 4) == 4);
	close(fd);
	snprintf(path, sizeof(path), "%s/images/%064d.json", ROOT, 0);
	write_file(path, "{}", 2);
	CHECK_OK(cfs_store_fsck(s, 0, &res));
	CHECK(count_kind(&res, "bad-image", false) == 1);
	CHECK(count_kind(&res, "orphan-metadata", false) == 1);
	cfs_store_fsck_result_clear(&res);
	/* gc refuses to guess which objects a broken image needs. */
	cfs_store_gc_result g = CFS_STORE_GC_RESULT_INIT;
	CHECK(cfs_store_gc(s, 0, &g) < 0);
	CHECK(strstr(cfs_error_message(), "fsck --repair"));
	/* A broken image that is mounted is reported, never removed: a
	 * record naming it with a target that is a mount point ("/"). */
	{
		char rec[256], recpath[1300];
		int n = snprintf(rec, sizeof(rec),
				 "{\"version\":1,\"target\":\"/\",\"image\":"
				 "\"%s\",\"writable\":false}",
				 hex);
		snprintf(recpath, sizeof(recpath), "%s/mounts", ROOT);
		mkdir(recpath, 0755);
		snprintf(recpath, sizeof(recpath), "%s/mounts/%032d.json", ROOT,
			 0);
		write_file(recpath, rec, (size_t)n);
		CHECK_OK(cfs_store_fsck(s, CFS_STORE_FSCK_REPAIR, &res));
		CHECK(count_kind(&res, "image-in-use", false) == 1);
		CHECK(count_kind(&res, "orphan-metadata", true) == 1);
		cfs_store_fsck_result_clear(&res);
		snprintf(path, sizeof(path), "%s/images/%s.cfs", ROOT, hex);
		CHECK(access(path, F_OK) == 0);
		unlink(recpath);
	}
	CHECK_OK(cfs_store_fsck(s, CFS_STORE_FSCK_REPAIR, &res));
	/* bad image and its name (the orphan went in the first repair) */
	CHECK(res.n_problems == 2);
	cfs_store_fsck_result_clear(&res);
	CHECK(fsck_clean(s, CFS_STORE_FSCK_VERIFY));
	CHECK_ERR(cfs_store_resolve(s, "tree1", hex), ENOENT);
}

static void test_temporaries(cfs_store *s)
{
	struct store_writer live = { .fd = -1 };
	cfs_store_fsck_result res = CFS_STORE_FSCK_RESULT_INIT;
	char path[1300];

	/* A dead writer's leftovers: no lock held on the directory. */
	snprintf(path, sizeof(path), "%s/tmp/w-1-00000000deadbeef", ROOT);
	CHECK(mkdir(path, 0700) == 0);
	snprintf(path, sizeof(path), "%s/tmp/w-1-00000000deadbeef/image.cfs",
		 ROOT);
	write_file(path, "half an image", 100);
	/* A live writer (this process holds the lock). */
	CHECK_OK(store_writer_open(s, &live));

	CHECK_OK(cfs_store_fsck(s, 0, &res));
	CHECK(res.n_problems == 0);
	CHECK(res.n_cleaned == 1 &&
	      strcmp(res.cleaned[0], "tmp/w-1-00000000deadbeef") == 0);
	cfs_store_fsck_result_clear(&res);
	snprintf(path, sizeof(path), "%s/tmp/%s", ROOT, live.name);
	CHECK(access(path, F_OK) == 0);
	store_writer_close(s, &live);
	CHECK(access(path, F_OK) < 0);
}

static void test_failed_import(cfs_store *s)
{
	cfs_store_import_result r = CFS_STORE_IMPORT_RESULT_INIT;
	char fx[1200];
	char *before = snapshot(), *after;

	/* diff_id mismatch: found at the end of the layer, after its files
	 * were stored as (staged) objects. */
	snprintf(fx, sizeof(fx), "oci:%s/fx/should-fail-diff-id", T);
	CHECK(import(s, fx, "bad", &r) < 0);
	CHECK(strstr(cfs_error_message(), "diff_id"));
	snprintf(fx, sizeof(fx), "oci:%s/fx/should-fail-truncated-gzip", T);
	CHECK(import(s, fx, "bad", &r) < 0);
	snprintf(fx, sizeof(fx), "oci:%s/does-not-exist", T);
	CHECK(import(s, fx, "bad", &r) < 0);
	CHECK(import(s, "nonsense", "bad", &r) < 0);
	after = snapshot();
	CHECK(strcmp(before, after) == 0);
	if (strcmp(before, after) != 0)
		fprintf(stderr, "before:\n%s\nafter:\n%s\n", before, after);
	free(before);
	free(after);
}

/* Remove the empty objects/XX directories (as after a fresh gc of a
 * store that never had them), so that an import makes some. */
static void remove_empty_subdirs(void)
{
	char path[1200];

	for (int i = 0; i < 256; i++) {
		snprintf(path, sizeof(path), "%s/objects/%02x", ROOT, i);
		rmdir(path);
	}
}

static bool names_json_fsync(void)
{
	char want[1200];

	snprintf(want, sizeof(want), "fsync %s", ROOT);
	return strcmp(fault_what, want) == 0;
}

/*
 * @op (an import, tag or rm) with the Nth rename or fsync failing, for
 * N = 1, 2, ... until it succeeds: each failure is one error that names
 * the store and leaves every byte of it as it was, except one: the fsync
 * of ROOT after names.json was replaced (the operation stands, the old
 * table is gone), which must be the last call. Returns the failures.
 */
static int sweep_faults(const char *what, int (*op)(cfs_store *s), cfs_store *s,
			bool (*done)(cfs_store *s))
{
	int failed = 0, committed = 0;

	for (int n = 1; n < 1000; n++) {
		char *before = snapshot(), *after;
		int r;

		fault_arm(n);
		r = op(s);
		if (!fault_disarm()) {
			CHECK(r == 0);
			free(before);
			break;
		}
		failed++;
		CHECK(r == -ENOSPC);
		CHECK(strstr(cfs_error_message(), ROOT));
		after = snapshot();
		if (names_json_fsync()) {
			/* The one window: done, though reported failed, and
			 * nothing was left to do. */
			committed++;
			CHECK(done(s));
			CHECK(fault_calls == n);
			if (!done(s) || fault_calls != n)
				fprintf(stderr, "%s: fault %d (%s), %d calls\n",
					what, n, fault_what, fault_calls);
			free(before);
			free(after);
			break;
		} else {
			CHECK(!done(s));
			CHECK(strcmp(before, after) == 0);
			if (strcmp(before, after) != 0)
				fprintf(stderr,
					"%s: fault %d (%s): before:\n%s\n"
					"after:\n%s\n",
					what, n, fault_what, before, after);
		}
		CHECK(fsck_clean(s, 0));
		free(before);
		free(after);
	}
	CHECK(done(s));
	/* At most the final call leaves the operation done. */
	CHECK(committed <= 1);
	printf("%s: %d faults, each left the store as it was%s\n", what, failed,
	       committed ? " (but the final fsync)" : "");
	return failed;
}

static char faulty_src[1200];

static int op_import(cfs_store *s)
{
	return import(s, faulty_src, "faulty", NULL);
}

static bool faulty_done(cfs_store *s)
{
	cfs_store_image img;
	bool ok;

	if (cfs_store_inspect(s, "faulty", &img) < 0) {
		cfs_error_clear();
		return false;
	}
	ok = img.complete;
	cfs_store_image_clear(&img);
	return ok;
}

static int op_import_again(cfs_store *s)
{
	return import(s, faulty_src, "faulty-again", NULL);
}

static bool again_done(cfs_store *s)
{
	char hex[CFS_DIGEST_HEX_SIZE + 1];
	bool ok = cfs_store_resolve(s, "faulty-again", hex) == 0;

	cfs_error_clear();
	return ok;
}

static int op_tag(cfs_store *s)
{
	return cfs_store_tag(s, "faulty", "faulty-tag");
}

static bool tag_done(cfs_store *s)
{
	char hex[CFS_DIGEST_HEX_SIZE + 1];
	bool ok = cfs_store_resolve(s, "faulty-tag", hex) == 0;

	cfs_error_clear();
	return ok;
}

static int op_rm(cfs_store *s)
{
	return cfs_store_remove(s, "faulty-tag");
}

static bool rm_done(cfs_store *s)
{
	return !tag_done(s);
}

static void test_commit_faults(cfs_store *s)
{
	char path[1200];
	int n;

	snprintf(faulty_src, sizeof(faulty_src), "oci:%s/fx/zstd", T);
	remove_empty_subdirs();
	/* Renames of objects, image, blobs, metadata, names.json, and the
	 * fsyncs of staged files and directories: a dozen at least. */
	n = sweep_faults("import", op_import, s, faulty_done);
	CHECK(n >= 12);
	/* The same import again: nothing new but its names. */
	CHECK(sweep_faults("import again", op_import_again, s, again_done) >=
	      2);
	CHECK(sweep_faults("tag", op_tag, s, tag_done) >= 2);
	CHECK(sweep_faults("rm", op_rm, s, rm_done) >= 2);
	CHECK(fsck_clean(s, CFS_STORE_FSCK_VERIFY));
	snprintf(path, sizeof(path), "%s/" STORE_GATE_LOCK, ROOT);
	CHECK(access(path, F_OK) == 0);
}

/* ---- an object found in the store is gone by the commit --------------- */

static char vanish_obj[1300], vanish_keep[1300];

/* The undo generation in names.lock (store.c) counts an undo. */
static void bump_undo_gen(void)
{
	char path[1200];
	uint64_t gen = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/names.lock", ROOT);
	fd = open(path, O_RDWR);
	CHECK(fd >= 0 && pread(fd, &gen, sizeof(gen), 0) == sizeof(gen));
	gen++;
	CHECK(pwrite(fd, &gen, sizeof(gen), 0) == sizeof(gen));
	close(fd);
}

/* What a failed commit's undo does to an object it had moved in: it
 * goes, and the undo generation counts it. */
static void vanish(void)
{
	CHECK(rename(vanish_obj, vanish_keep) == 0);
	bump_undo_gen();
}

/*
 * An import that had just moved an object in failed and took it back
 * while another import, which had found it in the store, converted: the
 * second must not commit an image that lacks it.
 */
static void test_vanished_object(cfs_store *s)
{
	char dir[1200], file[1300], src[1300], path[CFS_DIGEST_HEX_SIZE + 2];
	uint8_t d[CFS_DIGEST_SIZE];
	char *before, *after;
	int fd;

	snprintf(dir, sizeof(dir), "%s/vanish", T);
	mkdir(dir, 0755);
	snprintf(file, sizeof(file), "%s/shared", dir);
	write_file(file, "content shared by every tree ", 5000);
	snprintf(file, sizeof(file), "%s/own", dir);
	write_file(file, "only in the vanish tree ", 7000);
	snprintf(file, sizeof(file), "%s/shared", dir);
	fd = open(file, O_RDONLY);
	if (fd < 0 || cfs_verity_digest_fd(fd, d) < 0)
		die(file);
	close(fd);
	cfs_digest_to_object_path(d, path);
	snprintf(vanish_obj, sizeof(vanish_obj), "%s/objects/%s", ROOT, path);
	snprintf(vanish_keep, sizeof(vanish_keep), "%s/kept-object", T);
	CHECK(access(vanish_obj, F_OK) == 0);

	snprintf(src, sizeof(src), "dir:%s", dir);
	before = snapshot();
	names_lock_hook = vanish;
	names_lock_skip = 1;
	CHECK_ERR(import(s, src, "vanish", NULL), EAGAIN);
	CHECK(strstr(cfs_error_message(), path) &&
	      strstr(cfs_error_message(), "import again"));
	CHECK(names_lock_hook == NULL);
	CHECK(rename(vanish_keep, vanish_obj) == 0);
	after = snapshot();
	CHECK(strcmp(before, after) == 0);
	free(before);
	free(after);
	CHECK_OK(import(s, src, "vanish", NULL));
	CHECK(fsck_clean(s, CFS_STORE_FSCK_VERIFY));
}

/* ---- an image found in the store is gone by the commit ---------------- */

static char vanish_img[1300], vanish_meta[1300];

/* An undo of the import that had moved the image in: image and
 * metadata go, and the undo generation counts it. */
static void vanish_image(void)
{
	CHECK(unlink(vanish_img) == 0 && unlink(vanish_meta) == 0);
	bump_undo_gen();
}

/*
 * A re-import writes no copy of an image the store has. If that image
 * is gone by the commit (an import that had just moved it in failed and
 * took it back), the commit writes it: the import stands, complete.
 */
static void test_vanished_image(cfs_store *s)
{
	cfs_store_import_result res = CFS_STORE_IMPORT_RESULT_INIT;
	char dir[1200], file[1300], src[1300];
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/vanish-image", T);
	mkdir(dir, 0755);
	snprintf(file, sizeof(file), "%s/file", dir);
	write_file(file, "the vanished image's file ", 9000);
	snprintf(src, sizeof(src), "dir:%s", dir);
	CHECK_OK(import(s, src, "img-a", &res));
	snprintf(vanish_img, sizeof(vanish_img), "%s/images/%s.cfs", ROOT,
		 res.digest);
	snprintf(vanish_meta, sizeof(vanish_meta), "%s/images/%s.json", ROOT,
		 res.digest);
	cfs_store_import_result_clear(&res);

	names_lock_hook = vanish_image;
	names_lock_skip = 1;
	CHECK_OK(import(s, src, "img-b", &res));
	CHECK(names_lock_hook == NULL);
	CHECK(!res.existed);
	CHECK(stat(vanish_img, &st) == 0 &&
	      (uint64_t)st.st_size == res.image_size);
	CHECK(access(vanish_meta, F_OK) == 0);
	cfs_store_import_result_clear(&res);
	CHECK(fsck_clean(s, CFS_STORE_FSCK_VERIFY));
}

/* ---- writer priority ------------------------------------------------- */

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* Is someone holding @path's flock? */
static bool flock_held(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool held;

	if (fd < 0)
		return false;
	held = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	close(fd);
	return held;
}

/* In a child: open the store, then gc it (@gc) or take ROOT/lock shared
 * and create @marker; exit 0 on success. */
static pid_t child(bool gc, const char *marker)
{
	pid_t pid = fork();
	cfs_store *c = NULL;
	int r;

	if (pid != 0)
		return pid;
	r = cfs_store_open(&c, ROOT, NULL);
	if (r == 0 && gc)
		r = cfs_store_gc(c, 0, NULL);
	else if (r == 0)
		r = store_lock(c, LOCK_SH);
	if (r == 0 && marker)
		write_file(marker, "x", 1);
	_exit(r < 0);
}

static bool exited_ok(pid_t pid)
{
	int st;

	return waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
	       WEXITSTATUS(st) == 0;
}

/*
 * flock(2) would let a shared locker that comes after a waiting gc go
 * first; with the gate it waits for gc. A store from before the gate
 * existed gets it on its first lock.
 */
static void test_gate(void)
{
	char gate[1200], marker[1200];
	cfs_store *a = NULL;
	pid_t gc, sh;
	int i;

	snprintf(gate, sizeof(gate), "%s/" STORE_GATE_LOCK, ROOT);
	snprintf(marker, sizeof(marker), "%s/shared-locked", T);
	unlink(gate);
	CHECK_OK(cfs_store_open(&a, ROOT, NULL));
	if (!a)
		return;
	/* An import runs. */
	CHECK_OK(store_lock(a, LOCK_SH));
	CHECK(access(gate, F_OK) == 0);
	gc = child(true, NULL);
	for (i = 0; i < 1000 && !flock_held(gate); i++)
		sleep_ms(10);
	/* gc waits for the import, holding the gate. */
	CHECK(flock_held(gate));
	sh = child(false, marker);
	sleep_ms(300);
	/* A shared locker that came later waits for gc. */
	CHECK(access(marker, F_OK) < 0);
	CHECK(waitpid(gc, NULL, WNOHANG) == 0);
	CHECK_OK(store_lock(a, LOCK_UN));
	CHECK(exited_ok(gc));
	CHECK(exited_ok(sh));
	CHECK(access(marker, F_OK) == 0);
	unlink(marker);
	cfs_store_free(a);
}

int main(int argc, char **argv)
{
	const char *base = getenv("CFS_TEST_TMP");
	char cmd[4096], hl[CFS_DIGEST_HEX_SIZE + 1];
	char a[CFS_DIGEST_HEX_SIZE + 1], b[CFS_DIGEST_HEX_SIZE + 1];
	cfs_store *s = NULL;

	snprintf(T, sizeof(T), "%s/store.XXXXXX", base ? base : "/tmp");
	mkdir(base ? base : "/tmp", 0755);
	if (!mkdtemp(T))
		die("mkdtemp");
	snprintf(cmd, sizeof(cmd),
		 "python3 %s/tests/oci/make-fixtures.py %s/fx >/dev/null",
		 CFS_SRC_DIR, T);
	if (system(cmd) != 0)
		die("make-fixtures.py");
	snprintf(ROOT, sizeof(ROOT), "%s/store", T);

	CHECK_ERR(
		cfs_store_open(&s, ROOT,
			       &(cfs_store_options){ CFS_STORE_OPTIONS_VERSION,
						     CFS_STORE_OPEN_NOCREATE }),
		ENOENT);
	CHECK_OK(cfs_store_open(&s, ROOT, NULL));
	if (!s)
		return test_done();
	CHECK(fsck_clean(s, CFS_STORE_FSCK_VERIFY));

	test_import_twice(s, hl);
	test_prefix(s, a, b);
	test_names(s, hl);
	test_failed_import(s);
	test_gc(s);
	test_fsck(s, hl);
	test_temporaries(s);
	test_failed_import(s);
	test_commit_faults(s);
	test_vanished_object(s);
	test_vanished_image(s);
	TEST_RUN(argc, argv, test_gate);
	cfs_store_free(s);

	snprintf(cmd, sizeof(cmd), "rm -rf %s", T);
	if (test_failures == 0 && system(cmd) != 0)
		die("rm");
	return test_done();
}
