/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * The store's API over its images and names: list, inspect, resolve,
 * the image file's path, tag, untag and remove. Above store.c (names,
 * metadata, locks), the broken-image markers and the mount records
 * (who uses an image), which it asks before a name goes.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "store/store-internal.h"

void cfs_store_image_clear(cfs_store_image *img)
{
	if (!img)
		return;
	free(img->source);
	free(img->manifest_digest);
	free(img->config_digest);
	free(img->config);
	store_strv_free(img->names, img->n_names);
	memset(img, 0, sizeof(*img));
}

void cfs_store_images_free(cfs_store_image *images, size_t n)
{
	if (!images)
		return;
	for (size_t i = 0; i < n; i++)
		cfs_store_image_clear(&images[i]);
	free(images);
}

/* Fill @img for the image @hex: metadata (if any), size, names. */
static int describe(cfs_store *s, const char *hex, const struct store_names *t,
		    cfs_store_image *img)
{
	char name[CFS_DIGEST_HEX_SIZE + 8];
	struct stat st;
	int r;

	memset(img, 0, sizeof(*img));
	snprintf(name, sizeof(name), "%s.cfs", hex);
	if (fstatat(s->images_fd, name, &st, 0) < 0)
		return -errno;
	r = store_meta_read(s, hex, img);
	if (r == -ENOENT) {
		cfs_store_image_clear(img);
		memcpy(img->digest, hex, CFS_DIGEST_HEX_SIZE + 1);
		img->image_size = (uint64_t)st.st_size;
	} else if (r < 0) {
		cfs_store_image_clear(img);
		return cfs_error_prefix(-r, "store %s", s->root);
	}
	for (size_t i = 0; i < t->n; i++) {
		if (strcmp(t->v[i].digest, hex) != 0)
			continue;
		r = store_strv_add(&img->names, &img->n_names, t->v[i].name);
		if (r < 0) {
			cfs_store_image_clear(img);
			return r;
		}
	}
	if (img->n_names > 1)
		qsort(img->names, img->n_names, sizeof(char *), cfs_strp_cmp);
	{
		_cleanup_free_ char *missing = NULL;
		img->broken = store_broken_check(s, hex, &missing) == 1;
	}
	return 0;
}

int cfs_store_list(cfs_store *s, cfs_store_image **images_out, size_t *n_out)
{
	char(*digests)[CFS_DIGEST_HEX_SIZE + 1] = NULL;
	struct store_names t;
	cfs_store_image *v;
	size_t n = 0, nd;
	int r;

	r = store_names_read(s, &t);
	if (r < 0)
		return r;
	r = store_image_digests(s, &digests, &nd);
	if (r < 0) {
		store_names_clear(&t);
		return r;
	}
	v = calloc(nd ? nd : 1, sizeof(*v));
	if (!v)
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < nd; i++) {
		r = describe(s, digests[i], &t, &v[n]);
		if (r == -ENOENT) /* removed by gc while we looked */
			r = 0;
		else if (r == 0)
			n++;
	}
	free(digests);
	store_names_clear(&t);
	if (r < 0) {
		cfs_store_images_free(v, n);
		return r;
	}
	*images_out = v;
	*n_out = n;
	return 0;
}

static int resolve_names(cfs_store *s, const struct store_names *t,
			 const char *ref, char out[CFS_DIGEST_HEX_SIZE + 1])
{
	char(*digests)[CFS_DIGEST_HEX_SIZE + 1] = NULL;
	const char *d = store_names_get(t, ref);
	size_t n, found = 0;
	int r;

	if (d) {
		memcpy(out, d, CFS_DIGEST_HEX_SIZE + 1);
		return 0;
	}
	if (strncmp(ref, "sha256:", 7) == 0)
		ref += 7;
	if (!store_is_hex(ref, false))
		return cfs_error(ENOENT, "%s: no such image in store %s", ref,
				 s->root);
	r = store_image_digests(s, &digests, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		if (strncmp(digests[i], ref, strlen(ref)) != 0)
			continue;
		if (found++ == 0)
			memcpy(out, digests[i], CFS_DIGEST_HEX_SIZE + 1);
	}
	free(digests);
	if (found == 0)
		return cfs_error(ENOENT, "%s: no such image in store %s", ref,
				 s->root);
	if (found > 1)
		return cfs_error(ENOTUNIQ,
				 "%s: ambiguous digest prefix (%zu images)",
				 ref, found);
	return 0;
}

/*
 * A name carries the config and manifest it was imported with: images
 * with the same tree share one image but not their configs. Make @img
 * describe them instead of the image's first import.
 */
static int describe_name_oci(cfs_store *s, const struct store_name *e,
			     cfs_store_image *img)
{
	char *config = NULL, *cd = NULL, *md = NULL;
	size_t len;
	int r;

	if (!e || !e->config)
		return 0;
	r = store_blob_read(s, e->config, &config, &len);
	if (r == -ENOENT)
		return cfs_error(ENOENT,
				 "%s: config %s is missing from store %s "
				 "(cfs-store fsck)",
				 e->name, e->config, s->root);
	if (r < 0)
		return r;
	cd = strdup(e->config);
	md = e->manifest ? strdup(e->manifest) : NULL;
	if (!cd || (e->manifest && !md)) {
		free(config);
		free(cd);
		free(md);
		return -ENOMEM;
	}
	free(img->config);
	free(img->config_digest);
	free(img->manifest_digest);
	img->config = config;
	img->config_digest = cd;
	img->manifest_digest = md;
	return 0;
}

int cfs_store_resolve(cfs_store *s, const char *ref,
		      char digest_out[CFS_DIGEST_HEX_SIZE + 1])
{
	struct store_names t;
	int r;

	r = store_names_read(s, &t);
	if (r < 0)
		return r;
	r = resolve_names(s, &t, ref, digest_out);
	store_names_clear(&t);
	return r;
}

int cfs_store_inspect(cfs_store *s, const char *ref, cfs_store_image *out)
{
	char hex[CFS_DIGEST_HEX_SIZE + 1];
	struct store_names t;
	int r;

	memset(out, 0, sizeof(*out));
	r = store_names_read(s, &t);
	if (r < 0)
		return r;
	r = resolve_names(s, &t, ref, hex);
	if (r == 0) {
		r = describe(s, hex, &t, out);
		if (r == -ENOENT)
			r = cfs_error(ENOENT, "%s: image %s is gone", ref, hex);
	}
	if (r == 0)
		r = describe_name_oci(s, store_names_find(&t, ref), out);
	if (r < 0)
		cfs_store_image_clear(out);
	store_names_clear(&t);
	return r;
}

int cfs_store_image_path(cfs_store *s, const char *ref, char **path_out,
			 char digest_out[CFS_DIGEST_HEX_SIZE + 1])
{
	char hex[CFS_DIGEST_HEX_SIZE + 1];
	int r = cfs_store_resolve(s, ref, hex);

	if (r < 0)
		return r;
	if (asprintf(path_out, "%s/images/%s.cfs", s->root, hex) < 0)
		return -ENOMEM;
	if (digest_out)
		memcpy(digest_out, hex, sizeof(hex));
	return 0;
}

/* ---- tag, untag, remove ------------------------------------------------ */

enum names_op { NAMES_TAG, NAMES_UNTAG, NAMES_REMOVE };

/* Name the image @hex (which @ref resolved to) @name, with the config
 * and manifest of @ref if it is a name that has them, else with those of
 * the image's metadata (if their blobs are there). */
static int tag_oci(cfs_store *s, struct store_names *t, const char *ref,
		   const char *hex, const char *name)
{
	const struct store_name *e = store_names_find(t, ref);
	cfs_store_image meta = { 0 };
	const char *config = NULL, *manifest = NULL;
	int r;

	if (e && e->config) {
		/* @e moves if the table grows: copy what it says first. */
		_cleanup_free_ char *c = e->config ? strdup(e->config) : NULL;
		_cleanup_free_ char *m =
			e->manifest ? strdup(e->manifest) : NULL;
		if ((e->config && !c) || (e->manifest && !m))
			return -ENOMEM;
		return store_names_set(t, name, hex, c, m);
	}
	r = store_meta_read(s, hex, &meta);
	if (r < 0 && r != -ENOENT)
		return r;
	if (r == 0 && store_blob_digest_valid(meta.config_digest) &&
	    s->blobs_fd >= 0 &&
	    faccessat(s->blobs_fd, meta.config_digest + 7, F_OK,
		      AT_SYMLINK_NOFOLLOW) == 0) {
		config = meta.config_digest;
		if (store_blob_digest_valid(meta.manifest_digest) &&
		    faccessat(s->blobs_fd, meta.manifest_digest + 7, F_OK,
			      AT_SYMLINK_NOFOLLOW) == 0)
			manifest = meta.manifest_digest;
	}
	r = store_names_set(t, name, hex, config, manifest);
	cfs_store_image_clear(&meta);
	return r;
}

static bool names_have_pair(const struct store_names *t,
			    const struct store_name *e)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i].digest, e->digest) == 0 &&
		    !!t->v[i].config == !!e->config &&
		    (!e->config || strcmp(t->v[i].config, e->config) == 0))
			return true;
	return false;
}

/*
 * Removing names from @old gave @new: refuse (-EBUSY) if that leaves an
 * image with a config podman sees through the AIS without a name while a
 * container runs on it (its mount is an overlay's lower layer): the next
 * ais sync would pull the image from under the container.
 */
static int check_users(cfs_store *s, const struct store_names *old,
		       const struct store_names *new, const char *ref)
{
	for (size_t i = 0; i < old->n; i++) {
		const struct store_name *e = &old->v[i];
		_cleanup_free_ char *user = NULL;
		int r;

		if (names_have_pair(new, e))
			continue;
		r = store_image_user(s, e->digest, &user);
		if (r < 0)
			return r;
		if (r > 0)
			return cfs_error(EBUSY,
					 "%s: image %.12s is in use by a "
					 "container (overlay at %s); stop it "
					 "first, or use --force",
					 ref, e->digest, user);
	}
	return 0;
}

static int names_update(cfs_store *s, enum names_op op, const char *ref,
			const char *name, unsigned int flags)
{
	struct store_names old = { 0 };
	struct store_writer w = { .fd = -1 };
	char hex[CFS_DIGEST_HEX_SIZE + 1];
	struct store_names t = { 0 };
	int lockfd = -1, r;

	if (op == NAMES_TAG && !cfs_store_name_valid(name))
		return cfs_error(EINVAL,
				 "'%s': invalid name (1-%d characters of "
				 "A-Z a-z 0-9 . _ : / @ + -, starting with a "
				 "letter or digit)",
				 name, CFS_STORE_NAME_MAX);
	/* Shared: gc must not collect the image between our lookup and the
	 * new name becoming visible. */
	r = store_lock(s, LOCK_SH);
	if (r < 0)
		return r;
	r = store_writer_open(s, &w);
	if (r < 0)
		goto out;
	lockfd = store_names_lock(s);
	if (lockfd < 0) {
		r = lockfd;
		goto out;
	}
	r = store_names_read(s, &t);
	if (r < 0)
		goto out;
	switch (op) {
	case NAMES_TAG:
		r = resolve_names(s, &t, ref, hex);
		if (r == 0)
			r = tag_oci(s, &t, ref, hex, name);
		break;
	case NAMES_UNTAG:
		r = store_names_del(&t, ref);
		if (r == -ENOENT)
			r = cfs_error(ENOENT, "%s: no such name in store %s",
				      ref, s->root);
		break;
	case NAMES_REMOVE:
		if (store_names_get(&t, ref)) {
			r = store_names_del(&t, ref);
			break;
		}
		r = resolve_names(s, &t, ref, hex);
		for (size_t i = t.n; r == 0 && i-- > 0;)
			if (strcmp(t.v[i].digest, hex) == 0)
				r = store_names_del(&t, t.v[i].name);
		break;
	}
	if (r == 0 && op != NAMES_TAG && !(flags & CFS_STORE_REMOVE_FORCE)) {
		r = store_names_read(s, &old);
		if (r == 0)
			r = check_users(s, &old, &t, ref);
	}
	if (r == 0)
		r = store_names_write(s, &w, &t);
out:
	store_names_clear(&old);
	store_names_clear(&t);
	cfs_closep(&lockfd);
	store_writer_close(s, &w);
	store_lock(s, LOCK_UN);
	return r;
}

int cfs_store_tag(cfs_store *s, const char *ref, const char *name)
{
	return names_update(s, NAMES_TAG, ref, name, 0);
}

int cfs_store_untag(cfs_store *s, const char *name)
{
	return names_update(s, NAMES_UNTAG, name, NULL, 0);
}

int cfs_store_remove(cfs_store *s, const char *ref)
{
	return names_update(s, NAMES_REMOVE, ref, NULL, 0);
}

int cfs_store_remove_ext(cfs_store *s, const char *ref, unsigned int flags)
{
	if (flags & ~CFS_STORE_REMOVE_FORCE)
		return cfs_error(EINVAL, "invalid remove flags 0x%x", flags);
	return names_update(s, NAMES_REMOVE, ref, NULL, flags);
}
