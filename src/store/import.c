/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Importing a source into the store. The order of the steps is what
 * makes a kill -9 at any moment harmless:
 *
 *   1. convert, new objects going to the writer's tmp/w-.../objects
 *      (objects already in the store are found there and not written);
 *   2. write the image to tmp/w-.../image.cfs, enable fs-verity on the
 *      staged objects and the image, syncfs;
 *   3. move the objects into objects/ (an unreferenced object is fine);
 *   4. move the image to images/<digest>.cfs (an image without metadata
 *      or name is an interrupted import: fsck accepts it, gc removes it);
 *   5. images/<digest>.json, then names.json, each by rename.
 *
 * The whole import holds ROOT/lock shared, so gc (exclusive) can neither
 * take an object this import found in the store nor see it half done.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/fsverity.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "convert/artifact.h"
#include "convert/convert-internal.h"
#include "convert/oci.h"
#include "store/store-internal.h"

CFS_DEFINE_CLEANUP(DIR *, closedir)

struct import {
	cfs_store *s;
	struct store_writer w;
	cfs_store_import_result res;
	const struct store_objset *set; /* objects the image references */
	bool verity_off; /* stop trying once the filesystem said no */
};

/*
 * Enable fs-verity on @name in @dirfd. The file system may not support it
 * (EOPNOTSUPP, or ENOTTY/EINVAL/ENOSYS from older kernels and file
 * systems without the ioctl): that is recorded, not an error, as are
 * other failures (EFBIG, EROFS...): an image without fs-verity still
 * works, it is only not protected. 1 when enabled here, else 0.
 */
static int enable_verity(struct import *im, int dirfd, const char *name)
{
	struct fsverity_enable_arg arg = {
		.version = 1,
		.hash_algorithm = FS_VERITY_HASH_ALG_SHA256,
		.block_size = 4096,
	};
	_cleanup_close_ int fd = -1;

	if (im->verity_off)
		return 0;
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, FS_IOC_ENABLE_VERITY, &arg) == 0) {
		im->res.verity_enabled++;
		return 1;
	}
	if (errno == EEXIST)
		return 0;
	im->res.verity_errno = errno;
	im->verity_off = true;
	return 0;
}

/* Call @fn for every staged object XX/<62 hex> in @objdir. */
static int for_each_staged(int objdir,
			   int (*fn)(struct import *im, int subfd,
				     const char *sub, const char *name),
			   struct import *im)
{
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;
	int fd = openat(objdir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = 0;

	if (fd < 0 || !(d = fdopendir(fd))) {
		r = -errno;
		cfs_closep(&fd);
		return r;
	}
	while (r == 0 && (de = readdir(d))) {
		_cleanup_(closedirp) DIR *sd = NULL;
		struct dirent *se;
		int sfd;

		if (strlen(de->d_name) != 2 || !store_is_hex(de->d_name, false))
			continue;
		sfd = openat(objdir, de->d_name,
			     O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (sfd < 0 || !(sd = fdopendir(sfd))) {
			r = -errno;
			cfs_closep(&sfd);
			break;
		}
		while (r == 0 && (se = readdir(sd)))
			if (strlen(se->d_name) == CFS_DIGEST_HEX_SIZE - 2 &&
			    store_is_hex(se->d_name, false))
				r = fn(im, dirfd(sd), de->d_name, se->d_name);
	}
	return r;
}

static int staged_verity(struct import *im, int subfd, const char *sub,
			 const char *name)
{
	uint8_t digest[CFS_DIGEST_SIZE];
	char hex[CFS_DIGEST_HEX_SIZE + 1];
	int r;

	snprintf(hex, sizeof(hex), "%s%s", sub, name);
	if (cfs_digest_from_hex(digest, hex) < 0 ||
	    !store_objset_has(im->set, digest))
		return 0;
	r = enable_verity(im, subfd, name);

	return r < 0 ? r : 0;
}

static int staged_move(struct import *im, int subfd, const char *sub,
		       const char *name)
{
	cfs_store *s = im->s;
	_cleanup_close_ int dst = -1;
	uint8_t digest[CFS_DIGEST_SIZE];
	char hex[CFS_DIGEST_HEX_SIZE + 1];
	struct stat st;

	/* Content of files that a later layer deleted or replaced: no
	 * image needs it, so it never enters the store. */
	snprintf(hex, sizeof(hex), "%s%s", sub, name);
	if (cfs_digest_from_hex(digest, hex) < 0 ||
	    !store_objset_has(im->set, digest))
		return 0;
	if (mkdirat(s->objects_fd, sub, 0755) < 0 && errno != EEXIST)
		return -errno;
	dst = openat(s->objects_fd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dst < 0 || fstatat(subfd, name, &st, 0) < 0)
		return -errno;
	/* Another import may have moved the same object in meanwhile:
	 * same name, same content, keep theirs. */
	if (renameat2(subfd, name, dst, name, RENAME_NOREPLACE) < 0) {
		if (errno != EEXIST)
			return -errno;
		return 0;
	}
	im->res.objects_new++;
	im->res.objects_new_bytes += (uint64_t)st.st_size;
	return 0;
}

/*
 * The OCI image @source names, read again after the conversion for its
 * raw config and manifest (NULL for other sources). It must still be the
 * image the conversion saw.
 */
static int read_oci(const char *source, const char *platform,
		    const cfs_convert_stats *stats, struct cfs_oci_image **out,
		    json_object **config)
{
	struct cfs_oci_image *img = NULL;
	struct json_tokener *tok;
	int r;

	*out = NULL;
	*config = NULL;
	if (!cfs_oci_is_source(source) || !stats->config_digest[0])
		return 0;
	r = cfs_oci_open(&img, source, platform);
	if (r < 0)
		return r;
	if (!img->config || !img->config_digest ||
	    strcmp(img->config_digest, stats->config_digest) != 0 ||
	    strcmp(img->manifest_digest ? img->manifest_digest : "",
		   stats->manifest_digest) != 0) {
		cfs_oci_free(img);
		return cfs_error(EAGAIN, "%s: changed during the import",
				 source);
	}
	tok = json_tokener_new();
	if (tok) {
		*config = json_tokener_parse_ex(tok, (const char *)img->config,
						(int)img->config_len);
		json_tokener_free(tok);
	}
	/* The converter accepted this config: failing to parse it here can
	 * only be memory. */
	if (!*config) {
		cfs_oci_free(img);
		return -ENOMEM;
	}
	*out = img;
	return 0;
}

static int64_t import_time(void)
{
	/* Reproducible builds of a store (tests, image pipelines) may fix
	 * the clock. */
	const char *sde = getenv("SOURCE_DATE_EPOCH");

	if (sde && *sde) {
		char *end;
		long long v = strtoll(sde, &end, 10);
		if (*end == '\0' && v >= 0)
			return v;
	}
	return (int64_t)time(NULL);
}

static int write_meta(struct import *im, const char *source,
		      const cfs_convert_stats *stats, json_object *config)
{
	cfs_store *s = im->s;
	_cleanup_close_ int fd = -1;
	json_object *o = json_object_new_object();
	char name[CFS_DIGEST_HEX_SIZE + 8];
	char when[32];
	int64_t now = import_time();
	time_t t = (time_t)now;
	struct tm tm;
	const char *text;
	int r;

	if (!o)
		return -ENOMEM;
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_object_add(o, "version",
			       json_object_new_int(STORE_FORMAT_VERSION));
	json_object_object_add(o, "digest",
			       json_object_new_string(im->res.digest));
	json_object_object_add(o, "source", json_object_new_string(source));
	json_object_object_add(
		o, "manifest_digest",
		stats->manifest_digest[0] ?
			json_object_new_string(stats->manifest_digest) :
			NULL);
	json_object_object_add(
		o, "config_digest",
		stats->config_digest[0] ?
			json_object_new_string(stats->config_digest) :
			NULL);
	json_object_object_add(o, "config",
			       config ? json_object_get(config) : NULL);
	json_object_object_add(o, "created", json_object_new_string(when));
	json_object_object_add(o, "created_unix", json_object_new_int64(now));
	json_object_object_add(
		o, "image_size",
		json_object_new_int64((int64_t)im->res.image_size));
	json_object_object_add(o, "objects",
			       json_object_new_int64((int64_t)im->res.objects));
	json_object_object_add(
		o, "object_bytes",
		json_object_new_int64((int64_t)im->res.object_bytes));
	json_object_object_add(o, "verity",
			       json_object_new_boolean(im->res.verity));
	text = json_object_to_json_string_ext(
		o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	fd = openat(im->w.fd, "meta.json",
		    O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
	r = fd < 0 ? -errno : cfs_write_all(fd, text, strlen(text));
	if (r == 0)
		r = cfs_write_all(fd, "\n", 1);
	json_object_put(o);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r < 0)
		return cfs_error_errno(-r, "store %s: writing metadata",
				       s->root);
	snprintf(name, sizeof(name), "%s.json", im->res.digest);
	/* A racing import of the same image may have written it first. */
	if (renameat2(im->w.fd, "meta.json", s->images_fd, name,
		      RENAME_NOREPLACE) < 0 &&
	    errno != EEXIST)
		return cfs_error_errno(errno, "store %s: images/%s", s->root,
				       name);
	return 0;
}

static int add_names(struct import *im, const cfs_store_import_options *opts,
		     const struct cfs_oci_image *oci)
{
	const char *config = oci ? oci->config_digest : NULL;
	const char *manifest = oci ? oci->manifest_digest : NULL;
	struct store_names t;
	int lockfd, r;

	if (opts->n_names == 0)
		return 0;
	lockfd = store_names_lock(im->s);
	if (lockfd < 0)
		return lockfd;
	r = store_names_read(im->s, &t);
	for (size_t i = 0; r == 0 && i < opts->n_names; i++)
		r = store_names_set(&t, opts->names[i], im->res.digest, config,
				    manifest);
	if (r == 0)
		r = store_names_write(im->s, &im->w, &t);
	store_names_clear(&t);
	close(lockfd);
	return r;
}

/*
 * The converter checked every sealing annotation against the layers; the
 * image written here must be the sealed one too (it is the same tree,
 * written the same way: a mismatch is a bug, and then nothing is
 * committed either).
 */
static int check_sealed(struct import *im, const char *source,
			const cfs_store_import_options *opts,
			const cfs_convert_stats *stats)
{
	const char *merged =
		stats->n_layers ?
			stats->layers[stats->n_layers - 1].sealed_merged :
			"";

	if (!merged[0]) {
		if (opts->flags & CFS_STORE_IMPORT_REQUIRE_SEALED)
			return cfs_error(
				EPERM,
				"%s: not sealed (no " CFS_ANNOTATION_MERGED
				" annotation on its last layer) and "
				"sealed images are required",
				source);
		return 0;
	}
	if (strcmp(merged, im->res.digest) != 0)
		return cfs_error(
			EBADMSG,
			"%s: not the sealed image: " CFS_ANNOTATION_MERGED
			" is %s, the image is %s",
			source, merged, im->res.digest);
	im->res.sealed = true;
	return 0;
}

/*
 * A composefs artifact of the image is in the layout: its image must be
 * the one this import made (or, with CFS_STORE_IMPORT_TRUST_ARTIFACT, is
 * the one it stores: then it must be the one its annotation names).
 */
static int check_artifact(struct import *im, const char *source,
			  const cfs_store_import_options *opts,
			  const struct cfs_found_artifact *art)
{
	uint8_t d[CFS_DIGEST_SIZE];
	char hex[CFS_DIGEST_HEX_SIZE + 1];
	int r = cfs_verity_digest_buffer(art->image, art->image_len, d);

	if (r < 0)
		return r;
	cfs_digest_to_hex(d, hex);
	if (art->merged[0] && strcmp(art->merged, hex) != 0)
		return cfs_error(EBADMSG,
				 "%s: artifact %s: its image is %s, its "
				 "annotation says %s",
				 source, art->manifest_digest, hex,
				 art->merged);
	if (strcmp(hex, im->res.digest) != 0)
		return cfs_error(EBADMSG,
				 "%s: artifact %s: its composefs image is %s, "
				 "the image converts to %s",
				 source, art->manifest_digest, hex,
				 im->res.digest);
	im->res.artifact = true;
	(void)opts;
	return 0;
}

/* --trust-artifact: every object the artifact's image names must have
 * come with the layers (staged now, or in the store already). */
static int check_objects(struct import *im, struct cfs_objects *objs,
			 const struct store_objset *set, const char *source,
			 const struct cfs_found_artifact *art)
{
	_cleanup_free_ char *staging = NULL;
	_cleanup_close_ int sfd = -1;

	(void)objs;
	if (asprintf(&staging, "%s/tmp/%s/objects", im->s->root, im->w.name) <
	    0) {
		staging = NULL;
		return -ENOMEM;
	}
	sfd = open(staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (size_t i = 0; i < set->n; i++) {
		char path[CFS_DIGEST_HEX_SIZE + 2],
			hex[CFS_DIGEST_HEX_SIZE + 1];

		cfs_digest_to_object_path(set->v[i].digest, path);
		if (faccessat(im->s->objects_fd, path, F_OK, 0) == 0 ||
		    (sfd >= 0 && faccessat(sfd, path, F_OK, 0) == 0))
			continue;
		cfs_digest_to_hex(set->v[i].digest, hex);
		return cfs_error(EBADMSG,
				 "%s: artifact %s names object %s, which no "
				 "layer has",
				 source, art->manifest_digest, hex);
	}
	return 0;
}

/* Does the image and every object it references have fs-verity? */
static bool all_verity(cfs_store *s, const char *image_name,
		       const struct store_objset *set)
{
	if (!store_has_verity(s->images_fd, image_name))
		return false;
	for (size_t i = 0; i < set->n; i++) {
		char path[CFS_DIGEST_HEX_SIZE + 2];
		cfs_digest_to_object_path(set->v[i].digest, path);
		if (!store_has_verity(s->objects_fd, path))
			return false;
	}
	return true;
}

static int do_import(struct import *im, const char *source,
		     const char *recorded, const cfs_store_import_options *opts)
{
	cfs_store *s = im->s;
	cfs_convert_options copts = CFS_CONVERT_OPTIONS_INIT;
	cfs_convert_stats stats = { 0 };
	struct store_objset set = { 0 };
	struct cfs_objects *objs = NULL;
	_cleanup_free_ char *staging = NULL;
	_cleanup_close_ int stage_fd = -1, img_fd = -1;
	json_object *config = NULL;
	struct cfs_oci_image *oci = NULL;
	struct cfs_found_artifact art = { 0 };
	bool have_art = false;
	uint8_t digest[CFS_DIGEST_SIZE];
	char image_name[CFS_DIGEST_HEX_SIZE + 8];
	cfs_inode *root = NULL;
	struct stat st;
	int r;

	if (asprintf(&staging, "%s/tmp/%s/objects", s->root, im->w.name) < 0) {
		staging = NULL;
		return -ENOMEM;
	}
	r = cfs_objects_open(&objs, staging);
	if (r == 0)
		r = cfs_objects_set_base(objs, s->objects_path);
	if (r < 0)
		goto out;
	copts.platform = opts->platform;
	copts.threads = opts->threads;
	copts.progress = opts->progress;
	copts.progress_opaque = opts->progress_opaque;
	r = cfs_convert_tree_objs(&root, source, &copts, objs, &stats);
	if (r < 0)
		goto out;
	if (stats.manifest_digest[0]) {
		r = cfs_find_artifact(source, stats.manifest_digest, &art);
		if (r < 0)
			goto out;
		have_art = r == 0;
		r = 0;
	}
	if (have_art && (opts->flags & CFS_STORE_IMPORT_TRUST_ARTIFACT)) {
		/* The artifact's metadata, only the objects from the layers
		 * (docs/security.md). */
		cfs_inode *art_root = NULL;
		r = cfs_image_read(&art_root, art.image, art.image_len, NULL);
		if (r < 0) {
			r = cfs_error_prefix(-r, "%s: artifact %s", source,
					     art.manifest_digest);
			goto out;
		}
		cfs_inode_unref(root);
		root = art_root;
	}
	r = store_objset_add_tree(&set, root);
	if (r < 0) {
		r = cfs_error_prefix(-r, "%s", source);
		goto out;
	}
	store_objset_finish(&set);
	im->set = &set;
	im->res.objects = set.n;
	for (size_t i = 0; i < set.n; i++)
		im->res.object_bytes += set.v[i].size;
	r = read_oci(source, opts->platform, &stats, &oci, &config);
	if (r < 0)
		goto out;

	/* 2: the image, then fs-verity on everything new. */
	img_fd = openat(im->w.fd, "image.cfs",
			O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0644);
	if (img_fd < 0) {
		r = cfs_error_errno(errno, "store %s: tmp/%s/image.cfs",
				    s->root, im->w.name);
		goto out;
	}
	if (have_art && (opts->flags & CFS_STORE_IMPORT_TRUST_ARTIFACT)) {
		r = cfs_write_all(img_fd, art.image, art.image_len);
		if (r < 0)
			r = cfs_error_errno(-r, "store %s: tmp/%s/image.cfs",
					    s->root, im->w.name);
		if (r == 0)
			r = cfs_verity_digest_buffer(art.image, art.image_len,
						     digest);
		if (r == 0)
			r = check_objects(im, objs, &set, source, &art);
	} else {
		r = cfs_image_write_fd(root, NULL, img_fd, digest);
		/* The writer only says "writing image": say where (a full
		 * file system names the store that is full). */
		if (r < 0)
			r = cfs_error_prefix(-r, "store %s: tmp/%s/image.cfs",
					     s->root, im->w.name);
	}
	if (r == 0 && (fsync(img_fd) < 0 || fstat(img_fd, &st) < 0))
		r = cfs_error_errno(errno, "store %s: writing image", s->root);
	if (r < 0)
		goto out;
	/* fs-verity refuses files open for writing. */
	cfs_closep(&img_fd);
	img_fd = -1;
	im->res.image_size = (uint64_t)st.st_size;
	cfs_digest_to_hex(digest, im->res.digest);
	snprintf(image_name, sizeof(image_name), "%s.cfs", im->res.digest);
	r = check_sealed(im, source, opts, &stats);
	if (r == 0 && have_art)
		r = check_artifact(im, source, opts, &art);
	if (r < 0)
		goto out;
	im->res.existed = faccessat(s->images_fd, image_name, F_OK,
				    AT_SYMLINK_NOFOLLOW) == 0;
	stage_fd = open(staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (stage_fd < 0) {
		r = cfs_error_errno(errno, "%s", staging);
		goto out;
	}
	r = for_each_staged(stage_fd, staged_verity, im);
	if (r == 0 && !im->res.existed) {
		r = enable_verity(im, im->w.fd, "image.cfs");
		r = r < 0 ? r : 0;
	}
	if (r < 0) {
		r = cfs_error_errno(-r, "store %s: enabling fs-verity",
				    s->root);
		goto out;
	}
	/* Objects and image durable before anything names them. */
	r = cfs_objects_sync(objs);
	if (r < 0)
		goto out;

	/* 3 and 4: objects, then the image. */
	r = for_each_staged(stage_fd, staged_move, im);
	if (r < 0) {
		r = cfs_error_errno(-r, "store %s: moving objects into place",
				    s->root);
		goto out;
	}
	if (!im->res.existed) {
		if (renameat2(im->w.fd, "image.cfs", s->images_fd, image_name,
			      RENAME_NOREPLACE) < 0) {
			if (errno != EEXIST) {
				r = cfs_error_errno(errno,
						    "store %s: images/%s",
						    s->root, image_name);
				goto out;
			}
			im->res.existed = true;
		}
		if (fsync(s->images_fd) < 0) {
			r = cfs_error_errno(errno, "store %s: fsync images",
					    s->root);
			goto out;
		}
	}
	/* Every object the image needs is in place now: an image a
	 * repair marked broken is whole again. */
	store_broken_clear(s, im->res.digest);
	im->res.verity = all_verity(s, image_name, &set);

	/* The raw config and manifest, for the names to point at. */
	if (oci)
		r = store_blob_write(s, &im->w, oci->config_digest, oci->config,
				     oci->config_len);
	if (r == 0 && oci && oci->manifest)
		r = store_blob_write(s, &im->w, oci->manifest_digest,
				     oci->manifest, oci->manifest_len);
	if (r < 0)
		goto out;

	/* 5: metadata (unless a complete import was there), names. */
	snprintf(image_name, sizeof(image_name), "%s.json", im->res.digest);
	if (faccessat(s->images_fd, image_name, F_OK, AT_SYMLINK_NOFOLLOW) <
	    0) {
		r = write_meta(im, recorded, &stats, config);
		if (r == 0 && fsync(s->images_fd) < 0)
			r = cfs_error_errno(errno, "store %s: fsync images",
					    s->root);
		if (r < 0)
			goto out;
	}
	r = add_names(im, opts, oci);
out:
	cfs_found_artifact_clear(&art);
	cfs_oci_free(oci);
	json_object_put(config);
	store_objset_clear(&set);
	cfs_inode_unref(root);
	cfs_objects_free(objs);
	cfs_convert_stats_clear(&stats);
	return r;
}

int cfs_store_import(cfs_store *s, const char *source,
		     const cfs_store_import_options *opts,
		     cfs_store_import_result *result)
{
	return store_import_as(s, source, source, opts, result);
}

int store_import_as(cfs_store *s, const char *source, const char *recorded,
		    const cfs_store_import_options *opts,
		    cfs_store_import_result *result)
{
	static const cfs_store_import_options defaults =
		CFS_STORE_IMPORT_OPTIONS_INIT;
	struct import im = { .s = s, .w = { .fd = -1 } };
	int r;

	if (!opts)
		opts = &defaults;
	if (opts->version != CFS_STORE_IMPORT_OPTIONS_VERSION ||
	    (opts->flags & ~(CFS_STORE_IMPORT_REQUIRE_SEALED |
			     CFS_STORE_IMPORT_TRUST_ARTIFACT)) ||
	    (opts->n_names && !opts->names))
		return cfs_error(EINVAL, "invalid import options");
	for (size_t i = 0; i < opts->n_names; i++)
		if (!cfs_store_name_valid(opts->names[i]))
			return cfs_error(EINVAL, "'%s': invalid name",
					 opts->names[i]);
	r = store_lock(s, LOCK_SH);
	if (r < 0)
		return r;
	/* Leftovers of killed writers go first; live ones hold their lock. */
	r = store_clean_tmp(s, false, false, NULL, NULL);
	if (r == 0)
		r = store_writer_open(s, &im.w);
	if (r == 0)
		r = do_import(&im, source, recorded, opts);
	store_writer_close(s, &im.w);
	store_lock(s, LOCK_UN);
	if (r == 0 && result)
		*result = im.res;
	return r;
}
