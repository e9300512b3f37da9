/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * fsck: check the store against its rules, and --repair what can be.
 * Each directory is walked in name order, so the problems come in the
 * same order on every run.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fsverity.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/sign.h"
#include "common/util.h"
#include "store/store-internal.h"

typedef char hex_t[CFS_DIGEST_HEX_SIZE + 1];

/* ---- fsck -------------------------------------------------------------- */

void cfs_store_fsck_result_clear(cfs_store_fsck_result *res)
{
	if (!res)
		return;
	for (size_t i = 0; i < res->n_problems; i++) {
		free(res->problems[i].kind);
		free(res->problems[i].path);
		free(res->problems[i].message);
	}
	free(res->problems);
	store_strv_free(res->cleaned, res->n_cleaned);
	cfs_result_zero(res, sizeof(*res));
}

struct fsck {
	cfs_store *s;
	unsigned int flags;
	cfs_store_fsck_result *res;
	struct store_objset corrupt; /* objects whose content is wrong */
	struct store_names names;
	bool names_bad;
	char **drop_names; /* names to remove on repair */
	size_t n_drop_names;
	char **bad_blobs; /* hex names of corrupt blobs */
	size_t n_bad_blobs;
	struct cfs_trust *trust; /* ROOT/trust/ *.pem, loaded when needed */
	bool trust_loaded;
};

__attribute__((format(printf, 4, 5))) static int problem(struct fsck *f,
							 const char *kind,
							 const char *path,
							 const char *fmt, ...)
{
	cfs_store_problem *p, *v;
	va_list ap;
	int r;

	v = realloc(f->res->problems, (f->res->n_problems + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	f->res->problems = v;
	p = &v[f->res->n_problems];
	memset(p, 0, sizeof(*p));
	va_start(ap, fmt);
	r = vasprintf(&p->message, fmt, ap);
	va_end(ap);
	p->kind = strdup(kind);
	p->path = strdup(path);
	if (r < 0 || !p->kind || !p->path) {
		if (r >= 0)
			free(p->message);
		free(p->kind);
		free(p->path);
		return -ENOMEM;
	}
	f->res->n_problems++;
	return 0;
}

static bool repairing(const struct fsck *f)
{
	return f->flags & CFS_STORE_FSCK_REPAIR;
}

static void repaired(struct fsck *f)
{
	f->res->problems[f->res->n_problems - 1].repaired = true;
}

static int remove_rel(struct fsck *f, int dirfd, const char *name)
{
	int r = store_rm_rf_at(dirfd, name);

	if (r < 0)
		return cfs_error_errno(-r, "store %s: removing %s", f->s->root,
				       name);
	repaired(f);
	return 0;
}

static int fsck_object(void *ctx, const char *sub, int subfd, const char *name,
		       bool is_object)
{
	struct fsck *f = ctx;
	char rel[300];
	uint8_t want[CFS_DIGEST_SIZE], got[CFS_DIGEST_SIZE];
	int r, fd;

	if (sub)
		snprintf(rel, sizeof(rel), "objects/%s/%s", sub, name);
	else
		snprintf(rel, sizeof(rel), "objects/%s", name);
	if (!is_object) {
		r = problem(f, "stray-file", rel,
			    "not an object name or not a regular file");
		if (r == 0 && repairing(f))
			r = remove_rel(f, subfd >= 0 ? subfd : f->s->objects_fd,
				       name);
		return r;
	}
	f->res->objects++;
	if (!(f->flags & CFS_STORE_FSCK_VERIFY))
		return 0;
	store_object_digest(sub, name, want);
	fd = openat(subfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? 0 :
					 cfs_error_errno(errno, "store %s: %s",
							 f->s->root, rel);
	r = cfs_verity_digest_fd(fd, got);
	close(fd);
	/* EIO: with fs-verity on, the kernel refuses corrupt blocks. */
	if (r < 0 && r != -EIO)
		return cfs_error_prefix(-r, "store %s: %s", f->s->root, rel);
	if (r == 0 && memcmp(want, got, CFS_DIGEST_SIZE) == 0)
		return 0;
	r = store_objset_add(&f->corrupt, want, 0);
	if (r == 0)
		r = problem(f, "corrupt-object", rel,
			    "content does not match its fs-verity digest");
	if (r == 0 && repairing(f))
		r = remove_rel(f, subfd, name);
	return r;
}

/* Remove a broken image, its metadata and (later) its names. */
static int drop_image(struct fsck *f, const char *hex, size_t first)
{
	char name[CFS_DIGEST_HEX_SIZE + 8];
	int r;

	if (!repairing(f))
		return 0;
	if (store_image_busy(f->s, hex)) {
		/* Never pull an image from under a running mount: say so and
		 * leave it for a repair after the umount. */
		snprintf(name, sizeof(name), "%s.cfs", hex);
		return problem(f, "image-in-use", name,
			       "images/%s is broken but mounted; not removed "
			       "(unmount it and repair again)",
			       name);
	}
	for (size_t i = first; i < f->res->n_problems; i++)
		f->res->problems[i].repaired = true;
	snprintf(name, sizeof(name), "%s.json", hex);
	if (unlinkat(f->s->images_fd, name, 0) < 0 && errno != ENOENT)
		return cfs_error_errno(errno, "store %s: images/%s", f->s->root,
				       name);
	snprintf(name, sizeof(name), "%s.cfs", hex);
	if (unlinkat(f->s->images_fd, name, 0) < 0 && errno != ENOENT)
		return cfs_error_errno(errno, "store %s: images/%s", f->s->root,
				       name);
	store_broken_clear(f->s, hex);
	for (size_t i = 0; i < f->names.n; i++) {
		if (strcmp(f->names.v[i].digest, hex) != 0)
			continue;
		r = store_strv_add(&f->drop_names, &f->n_drop_names,
				   f->names.v[i].name);
		if (r == 0)
			r = problem(f, "dangling-name", f->names.v[i].name,
				    "named the removed image %s", hex);
		if (r < 0)
			return r;
		repaired(f);
	}
	return 0;
}

/*
 * The metadata says the image and all its objects have fs-verity, so its
 * mount defaults to verity=require: an object without it (copied over,
 * restored from a backup) would read as EIO. Repair enables it again; the
 * kernel then measures the content, and one that does not match its name
 * is left for --verify to report as corrupt.
 */
static int check_objects_verity(struct fsck *f, const char *rel,
				const struct store_objset *set)
{
	struct fsverity_enable_arg arg = {
		.version = 1,
		.hash_algorithm = FS_VERITY_HASH_ALG_SHA256,
		.block_size = 4096,
	};
	int r = 0;

	for (size_t i = 0; r == 0 && i < set->n; i++) {
		char path[CFS_DIGEST_HEX_SIZE + 2];
		int fd;

		cfs_digest_to_object_path(set->v[i].digest, path);
		if (faccessat(f->s->objects_fd, path, F_OK, 0) < 0 ||
		    store_has_verity(f->s->objects_fd, path))
			continue;
		r = problem(f, "object-verity", rel,
			    "objects/%s has no fs-verity, which the image's "
			    "metadata promises (its mounts default to "
			    "verity=require and would read it as EIO)",
			    path);
		if (r < 0 || !repairing(f))
			continue;
		fd = openat(f->s->objects_fd, path,
			    O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0 && (ioctl(fd, FS_IOC_ENABLE_VERITY, &arg) == 0 ||
				errno == EEXIST))
			repaired(f);
		if (fd >= 0)
			close(fd);
	}
	return r;
}

/* Check one image; 1 if it is broken (problem recorded), else 0. */
/*
 * The signatures image @hex's metadata keeps (the sealing spec's, from
 * its import), checked again against the store's ROOT/trust/ *.pem: a
 * certificate removed from there, or metadata changed since, shows.
 * Nothing to check against when no certificate is trusted. Repair
 * cannot mend a signature: re-import the image or remove it.
 */
static int check_image_signatures(struct fsck *f, const char *hex,
				  const char *rel, const cfs_store_image *meta)
{
	static const char *const keys[] = { CFS_SPEC_MERGED, CFS_SPEC_CONFIG,
					    CFS_SPEC_MANIFEST };
	_cleanup_(json_object_putp) json_object *sigs = NULL;
	int r;

	r = store_meta_signatures(f->s, hex, &sigs);
	if (r < 0)
		return problem(f, "bad-metadata", rel, "%s",
			       cfs_error_message());
	if (!sigs)
		return 0;
	if (!f->trust_loaded) {
		_cleanup_free_ char *dir = NULL;

		if (asprintf(&dir, "%s/trust", f->s->root) < 0)
			return -ENOMEM;
		r = cfs_trust_load(&f->trust, NULL, 0, dir);
		if (r < 0)
			return problem(f, "bad-trust", "trust", "%s",
				       cfs_error_message());
		f->trust_loaded = true;
	}
	if (cfs_trust_count(f->trust) == 0)
		return 0;
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++) {
		const char *b64, *what = NULL;
		_cleanup_free_ uint8_t *sig = NULL;
		uint8_t d[CFS_DIGEST_SIZE];
		char signer[256];
		size_t len = 0;
		json_object *v;

		if (!json_object_object_get_ex(sigs, keys[i], &v) ||
		    !(b64 = json_object_get_string(v)))
			continue;
		if (i == 0)
			r = cfs_digest_from_hex(d, hex);
		else if (!(what = i == 1 ? meta->config_digest :
					   meta->manifest_digest))
			r = cfs_error(ENOENT, "no %s digest in the metadata",
				      i == 1 ? "config" : "manifest");
		else
			r = store_blob_verity(f->s, what, d);
		if (r == 0 && cfs_base64_decode(b64, &sig, &len) < 0)
			r = cfs_error(EBADMSG, "not base64");
		if (r == 0)
			r = cfs_verify_digest(f->trust, sig, len, d, signer,
					      sizeof(signer));
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			r = problem(f, "signature", rel,
				    "%s" CFS_SPEC_SIG_SUFFIX ": %s", keys[i],
				    cfs_error_message());
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int check_image(struct fsck *f, const char *hex)
{
	cfs_store *s = f->s;
	struct store_objset set = { 0 };
	cfs_store_image meta = { 0 };
	char rel[CFS_DIGEST_HEX_SIZE + 16];
	uint64_t bytes = 0;
	struct stat st;
	bool named = store_names_has_digest(&f->names, hex);
	size_t first = f->res->n_problems;
	struct store_objset known = { 0 }, missing = { 0 };
	int r, broken = 0, objects_broken = 0;

	snprintf(rel, sizeof(rel), "images/%s.cfs", hex);
	f->res->images++;
	r = store_image_objects(s, hex, &set, &st);
	if (r == -ENOENT) /* gone since it was listed */
		return 0;
	if (r < 0) {
		r = problem(f, "bad-image", rel, "%s", cfs_error_message());
		broken = 1;
		goto out;
	}
	store_objset_finish(&set);
	r = store_broken_read(s, hex, &known);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < set.n; i++) {
		char path[CFS_DIGEST_HEX_SIZE + 2];
		struct stat ost;
		bool corrupt = store_objset_has(&f->corrupt, set.v[i].digest);

		bytes += set.v[i].size;
		cfs_digest_to_object_path(set.v[i].digest, path);
		if (!corrupt &&
		    fstatat(s->objects_fd, path, &ost, AT_SYMLINK_NOFOLLOW) ==
			    0 &&
		    S_ISREG(ost.st_mode))
			continue;
		/* A failed import takes back its image before its objects:
		 * an unnamed image whose object is gone may be gone too. */
		if (!named && !corrupt &&
		    faccessat(s->images_fd, rel + strlen("images/"), F_OK,
			      AT_SYMLINK_NOFOLLOW) < 0) {
			r = 0;
			goto out;
		}
		r = store_objset_add(&missing, set.v[i].digest, 0);
		if (r < 0)
			goto out;
		/* Missing since a repair marked the image broken: known,
		 * not a new problem (a re-import restores it). */
		if (!corrupt && store_objset_has(&known, set.v[i].digest))
			continue;
		if (corrupt)
			r = problem(f, "corrupt-object", rel,
				    "references the corrupt object "
				    "objects/%s",
				    path);
		else
			r = problem(f, "missing-object", rel,
				    "references the missing object "
				    "objects/%s",
				    path);
		objects_broken = 1;
		if (r < 0)
			goto out;
	}
	store_objset_finish(&missing);
	if (f->flags & CFS_STORE_FSCK_VERIFY) {
		uint8_t want[CFS_DIGEST_SIZE], got[CFS_DIGEST_SIZE];
		char name[CFS_DIGEST_HEX_SIZE + 8];
		int fd;

		snprintf(name, sizeof(name), "%s.cfs", hex);
		fd = openat(s->images_fd, name, O_RDONLY | O_CLOEXEC);
		r = fd < 0 ? -errno : cfs_verity_digest_fd(fd, got);
		cfs_closep(&fd);
		cfs_digest_from_hex(want, hex);
		if (r < 0 && r != -EIO) {
			r = cfs_error_errno(-r, "store %s: %s", s->root, rel);
			goto out;
		}
		if (r < 0 || memcmp(want, got, CFS_DIGEST_SIZE) != 0) {
			r = problem(f, "image-digest", rel,
				    "content does not match its fs-verity "
				    "digest");
			broken = 1;
			if (r < 0)
				goto out;
		}
	}
	r = store_meta_read(s, hex, &meta);
	if (r == -ENOENT) {
		/* Interrupted import: no name can point here yet. */
		r = 0;
		if (!named) {
			f->res->incomplete++;
		} else {
			r = problem(f, "missing-metadata", rel,
				    "named but has no images/%s.json", hex);
			broken = 1;
		}
	} else if (r < 0) {
		r = problem(f, "bad-metadata", rel, "%s", cfs_error_message());
		broken = 1;
	} else if (meta.image_size != (uint64_t)st.st_size ||
		   meta.objects != set.n || meta.object_bytes != bytes) {
		r = problem(f, "bad-metadata", rel,
			    "metadata says %llu bytes, %llu objects of %llu "
			    "bytes; the image has %llu, %zu, %llu",
			    (unsigned long long)meta.image_size,
			    (unsigned long long)meta.objects,
			    (unsigned long long)meta.object_bytes,
			    (unsigned long long)st.st_size, set.n,
			    (unsigned long long)bytes);
		broken = 1;
	} else if (meta.verity &&
		   !store_has_verity(s->images_fd, rel + strlen("images/"))) {
		r = problem(f, "bad-metadata", rel,
			    "metadata says fs-verity, the file has none");
		broken = 1;
	} else if (meta.verity) {
		r = check_objects_verity(f, rel, &set);
	}
	if (r == 0 && !broken && meta.complete)
		r = check_image_signatures(f, hex, rel, &meta);
out:
	cfs_store_image_clear(&meta);
	store_objset_clear(&set);
	store_objset_clear(&known);
	if (r == 0 && broken) {
		r = drop_image(f, hex, first);
	} else if (r == 0 && objects_broken && repairing(f)) {
		/* The image is fine but for objects repair removed (or
		 * found missing): keep it and its names, marked broken, so
		 * that its mount refuses and a re-import restores it. */
		r = store_broken_mark(s, hex, &missing);
		for (size_t i = first; r == 0 && i < f->res->n_problems; i++)
			f->res->problems[i].repaired = true;
		if (r == 0)
			f->res->broken++;
	} else if (r == 0 && missing.n && !objects_broken) {
		f->res->broken++;
	}
	store_objset_clear(&missing);
	return r < 0 ? r : (broken || objects_broken);
}

static int check_images_dir(struct fsck *f)
{
	cfs_store *s = f->s;
	hex_t *digests = NULL;
	char **names = NULL;
	size_t n = 0, n_names = 0;
	int r;

	r = store_image_digests(s, &digests, &n);
	for (size_t i = 0; r == 0 && i < n; i++) {
		r = check_image(f, digests[i]);
		r = r < 0 ? r : 0;
	}
	free(digests);
	if (r < 0)
		return r;
	r = store_dir_names(s, s->images_fd, "images", &names, &n_names);
	for (size_t i = 0; r == 0 && i < n_names; i++) {
		const char *name = names[i];
		size_t len = strlen(name);
		char hex[CFS_DIGEST_HEX_SIZE + 1], cfs[CFS_DIGEST_HEX_SIZE + 8];
		char rel[300];

		snprintf(rel, sizeof(rel), "images/%s", name);
		/* Truncation intended: the first 64 characters, if any. */
		memset(hex, 0, sizeof(hex));
		memcpy(hex, name, CFS_MIN(len, (size_t)CFS_DIGEST_HEX_SIZE));
		if (len == CFS_DIGEST_HEX_SIZE + 4 && store_is_hex(hex, true) &&
		    strcmp(name + CFS_DIGEST_HEX_SIZE, ".cfs") == 0)
			continue;
		if ((len == CFS_DIGEST_HEX_SIZE + 5 &&
		     strcmp(name + CFS_DIGEST_HEX_SIZE, ".json") == 0) ||
		    (len == CFS_DIGEST_HEX_SIZE + strlen(STORE_BROKEN_SUFFIX) &&
		     strcmp(name + CFS_DIGEST_HEX_SIZE, STORE_BROKEN_SUFFIX) ==
			     0)) {
			if (!store_is_hex(hex, true))
				goto stray;
			snprintf(cfs, sizeof(cfs), "%s.cfs", hex);
			if (faccessat(s->images_fd, cfs, F_OK,
				      AT_SYMLINK_NOFOLLOW) == 0)
				continue;
			/* Gone too since readdir: a failed import took back
			 * its metadata, then its image. */
			if (faccessat(s->images_fd, name, F_OK,
				      AT_SYMLINK_NOFOLLOW) < 0 &&
			    errno == ENOENT)
				continue;
			r = problem(f, "orphan-metadata", rel,
				    "metadata of a missing image");
		} else {
		stray:
			r = problem(f, "stray-file", rel,
				    "not an image or its metadata");
		}
		if (r == 0 && repairing(f))
			r = remove_rel(f, s->images_fd, name);
	}
	store_strv_free(names, n_names);
	return r;
}

static bool name_dropped(const struct fsck *f, const char *name)
{
	for (size_t j = 0; j < f->n_drop_names; j++)
		if (strcmp(f->drop_names[j], name) == 0)
			return true;
	return false;
}

/* Is blob @digest there with the right content? */
static bool blob_ok(const struct fsck *f, const char *digest)
{
	for (size_t i = 0; i < f->n_bad_blobs; i++)
		if (strcmp(f->bad_blobs[i], digest + 7) == 0)
			return false;
	return f->s->blobs_fd >= 0 && faccessat(f->s->blobs_fd, digest + 7,
						F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

static int drop_name(struct fsck *f, const char *name)
{
	int r = 0;

	if (repairing(f)) {
		r = store_strv_add(&f->drop_names, &f->n_drop_names, name);
		if (r == 0)
			repaired(f);
	}
	return r;
}

static int check_names(struct fsck *f)
{
	cfs_store *s = f->s;

	for (size_t i = 0; i < f->names.n; i++) {
		const struct store_name *e = &f->names.v[i];
		char name[CFS_DIGEST_HEX_SIZE + 8];
		const char *blob = NULL;
		int r;

		/* Already reported with the image repair removed. */
		if (repairing(f) && name_dropped(f, e->name))
			continue;
		snprintf(name, sizeof(name), "%s.cfs", e->digest);
		if (faccessat(s->images_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) <
		    0) {
			r = problem(f, "dangling-name", e->name,
				    "names the missing image %s", e->digest);
			if (r == 0)
				r = drop_name(f, e->name);
			if (r < 0)
				return r;
			continue;
		}
		if (e->config && !blob_ok(f, e->config))
			blob = e->config;
		else if (e->manifest && !blob_ok(f, e->manifest))
			blob = e->manifest;
		if (!blob)
			continue;
		/* Without its config the name cannot be served as the
		 * image it was imported as: a re-import restores it. */
		r = problem(f, "missing-blob", e->name,
			    "the %s %s it was imported with is missing or "
			    "corrupt",
			    blob == e->config ? "config" : "manifest", blob);
		if (r == 0)
			r = drop_name(f, e->name);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Every file in blobs/sha256/ is named by the SHA-256 of its content. */
static int check_blobs(struct fsck *f)
{
	cfs_store *s = f->s;
	char **names = NULL;
	size_t n = 0;
	int r;

	if (s->blobs_fd < 0)
		return 0;
	r = store_dir_names(s, s->blobs_fd, "blobs/sha256", &names, &n);
	for (size_t i = 0; r == 0 && i < n; i++) {
		_cleanup_free_ char *buf = NULL;
		char digest[8 + NAME_MAX + 1], rel[300];
		size_t len;

		snprintf(rel, sizeof(rel), "blobs/sha256/%s", names[i]);
		snprintf(digest, sizeof(digest), "sha256:%s", names[i]);
		if (!store_blob_digest_valid(digest)) {
			r = problem(f, "stray-file", rel, "not a blob");
			if (r == 0 && repairing(f))
				r = remove_rel(f, s->blobs_fd, names[i]);
			continue;
		}
		r = store_blob_read(s, digest, &buf, &len);
		if (r == 0 || r == -ENOMEM)
			continue;
		r = store_strv_add(&f->bad_blobs, &f->n_bad_blobs, names[i]);
		if (r == 0)
			r = problem(f, "corrupt-blob", rel, "%s",
				    cfs_error_message());
		if (r == 0 && repairing(f))
			r = remove_rel(f, s->blobs_fd, names[i]);
	}
	store_strv_free(names, n);
	return r;
}

/* One layer record: it reads, and every object it names is there. */
static int check_record(struct fsck *f, const char *name, const char *rel)
{
	cfs_store *s = f->s;
	struct store_objset set = { 0 };
	char path[CFS_DIGEST_HEX_SIZE + 2], hex[CFS_DIGEST_HEX_SIZE + 1];
	int r;

	f->res->records++;
	r = store_record_objects(s->layers_fd, name, rel, &set);
	if (r == -EBADMSG) {
		r = problem(f, "corrupt-record", rel, "%s",
			    cfs_error_message());
		goto repair;
	}
	if (r < 0)
		goto out;
	store_objset_finish(&set);
	for (size_t i = 0; i < set.n; i++) {
		cfs_digest_to_object_path(set.v[i].digest, path);
		if (!store_objset_has(&f->corrupt, set.v[i].digest) &&
		    faccessat(s->objects_fd, path, F_OK, AT_SYMLINK_NOFOLLOW) ==
			    0)
			continue;
		/* taken back by a failing import meanwhile, records first */
		if (faccessat(s->layers_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) <
		    0)
			goto out;
		cfs_digest_to_hex(set.v[i].digest, hex);
		r = problem(f, "record-missing-object", rel,
			    "names object %s, which is missing or corrupt "
			    "(the next import of the layer reads it again)",
			    hex);
		goto repair;
	}
	/* its map of content by SHA-256, which partial pulls trust */
	if (f->flags & CFS_STORE_FSCK_VERIFY) {
		r = store_record_check_pairs(s, name, rel, hex);
		if (r == -EBADMSG)
			r = problem(f, "corrupt-record", rel, "%s",
				    cfs_error_message());
		else if (r > 0)
			r = problem(f, "record-wrong-sha256", rel,
				    "pairs object %s with a SHA-256 its "
				    "content does not have",
				    hex);
		else
			goto out;
		goto repair;
	}
	goto out;
repair:
	if (r == 0 && repairing(f))
		r = remove_rel(f, s->layers_fd, name);
out:
	store_objset_clear(&set);
	return r;
}

/* layers/: a layer record per file, named by its diff_id. */
static int check_records(struct fsck *f)
{
	cfs_store *s = f->s;
	char **names = NULL;
	size_t n = 0;
	int r;

	if (s->layers_fd < 0)
		return 0;
	r = store_dir_names(s, s->layers_fd, "layers", &names, &n);
	for (size_t i = 0; r == 0 && i < n; i++) {
		char rel[300];

		snprintf(rel, sizeof(rel), "layers/%s", names[i]);
		if (!store_is_hex(names[i], true)) {
			r = problem(f, "stray-file", rel, "not a layer record");
			if (r == 0 && repairing(f))
				r = remove_rel(f, s->layers_fd, names[i]);
			continue;
		}
		r = check_record(f, names[i], rel);
	}
	store_strv_free(names, n);
	return r;
}

static int check_tmp(struct fsck *f)
{
	cfs_store *s = f->s;
	char **names = NULL;
	size_t n = 0;
	int r;

	r = store_clean_tmp(s, false, false, &f->res->cleaned,
			    &f->res->n_cleaned);
	if (r == 0)
		r = store_dir_names(s, s->tmp_fd, "tmp", &names, &n);
	for (size_t i = 0; r == 0 && i < n; i++) {
		char rel[300];

		if (strncmp(names[i], STORE_WRITER_PREFIX,
			    strlen(STORE_WRITER_PREFIX)) == 0)
			continue;
		snprintf(rel, sizeof(rel), "tmp/%s", names[i]);
		r = problem(f, "stray-file", rel,
			    "not a temporary of this store's writers");
		if (r == 0 && repairing(f))
			r = remove_rel(f, s->tmp_fd, names[i]);
	}
	store_strv_free(names, n);
	return r;
}

/* Apply the name removals repair decided on. */
static int repair_names(struct fsck *f)
{
	struct store_writer w = { .fd = -1 };
	struct store_names t = { 0 };
	int lockfd, r;

	if (f->names_bad) {
		if (unlinkat(f->s->root_fd, "names.json", 0) < 0 &&
		    errno != ENOENT)
			return cfs_error_errno(errno, "store %s: names.json",
					       f->s->root);
		return 0;
	}
	if (f->n_drop_names == 0)
		return 0;
	r = store_writer_open(f->s, &w);
	if (r < 0)
		return r;
	lockfd = store_names_lock(f->s);
	if (lockfd < 0) {
		store_writer_close(f->s, &w);
		return lockfd;
	}
	r = store_names_read(f->s, &t);
	for (size_t i = 0; r == 0 && i < f->n_drop_names; i++)
		store_names_del(&t, f->drop_names[i]);
	if (r == 0)
		r = store_names_write(f->s, &w, &t);
	store_names_clear(&t);
	close(lockfd);
	store_writer_close(f->s, &w);
	return r;
}

static int do_fsck(struct fsck *f)
{
	int r;

	r = check_tmp(f);
	if (r < 0)
		return r;
	/* Names before images: a name is written after its image, so
	 * every name read here has its image in place already even while
	 * imports run. */
	r = store_names_read(f->s, &f->names);
	if (r < 0) {
		f->names_bad = true;
		r = problem(f, "bad-names", "names.json", "%s",
			    cfs_error_message());
		if (r == 0 && repairing(f))
			repaired(f);
		if (r < 0)
			return r;
	}
	/* Objects first, so that images can tell corrupt ones. */
	r = store_walk_objects(f->s, fsck_object, f);
	if (r < 0)
		return r;
	store_objset_finish(&f->corrupt);
	r = check_blobs(f);
	if (r == 0)
		r = check_records(f);
	if (r == 0)
		r = check_images_dir(f);
	if (r == 0)
		r = check_names(f);
	if (r == 0 && repairing(f))
		r = repair_names(f);
	if (r == 0 && repairing(f) && syncfs(f->s->root_fd) < 0)
		r = cfs_error_errno(errno, "store %s: syncfs", f->s->root);
	return r;
}

/*
 * A repair removes objects before the layer records that name them
 * (check_records() finds those only once the objects are gone): the
 * marker, durable before the first removal and removed after the last,
 * tells imports meanwhile, and after a repair that was killed, not to
 * take a record's objects for granted. A plain fsck reports a marker
 * left behind.
 */
static int repair_mark(struct fsck *f, bool on)
{
	cfs_store *s = f->s;
	int fd;

	if (!repairing(f)) {
		if (!on || faccessat(s->root_fd, STORE_REPAIR_MARKER, F_OK,
				     AT_SYMLINK_NOFOLLOW) < 0)
			return 0;
		return problem(f, "interrupted-repair", STORE_REPAIR_MARKER,
			       "a fsck --repair did not finish: run it again");
	}
	if (on) {
		fd = openat(s->root_fd, STORE_REPAIR_MARKER,
			    O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd < 0 || fsync(fd) < 0) {
			int e = errno;

			if (fd >= 0)
				close(fd);
			return cfs_error_errno(e, "store %s: %s", s->root,
					       STORE_REPAIR_MARKER);
		}
		close(fd);
	} else if (unlinkat(s->root_fd, STORE_REPAIR_MARKER, 0) < 0 &&
		   errno != ENOENT) {
		return cfs_error_errno(errno, "store %s: %s", s->root,
				       STORE_REPAIR_MARKER);
	}
	if (fsync(s->root_fd) < 0)
		return cfs_error_errno(errno, "store %s: syncing", s->root);
	return 0;
}

int cfs_store_fsck(cfs_store *s, unsigned int flags, cfs_store_fsck_result *res)
{
	struct fsck f = { .s = s, .flags = flags, .res = res };
	int r;

	if (flags & ~(CFS_STORE_FSCK_VERIFY | CFS_STORE_FSCK_REPAIR))
		return cfs_error(EINVAL, "invalid fsck flags");
	r = cfs_result_check(res, CFS_STORE_FSCK_RESULT_VERSION, "fsck");
	if (r < 0)
		return r;
	cfs_result_zero(res, sizeof(*res));
	/* Shared is enough to check: imports only add, and in an order
	 * that never shows a half-done state (see import.c). */
	r = store_lock(s, repairing(&f) ? LOCK_EX : LOCK_SH);
	if (r < 0)
		return r;
	r = repair_mark(&f, true);
	if (r == 0)
		r = do_fsck(&f);
	/* Cut short, the marker stays: the next repair finishes. */
	if (r == 0)
		r = repair_mark(&f, false);
	store_lock(s, LOCK_UN);
	store_objset_clear(&f.corrupt);
	store_names_clear(&f.names);
	store_strv_free(f.drop_names, f.n_drop_names);
	store_strv_free(f.bad_blobs, f.n_bad_blobs);
	cfs_trust_free(f.trust);
	if (r < 0)
		cfs_store_fsck_result_clear(res);
	return r;
}
