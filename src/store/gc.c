/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * gc: remove what no name, mount, running import or kept record needs.
 */
/* Garbage collection and consistency checks of the store. */
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

/* ---- gc ---------------------------------------------------------------- */

void cfs_store_gc_result_clear(cfs_store_gc_result *res)
{
	if (!res)
		return;
	store_strv_free(res->paths, res->n_paths);
	cfs_result_zero(res, sizeof(*res));
}

struct gc {
	cfs_store *s;
	bool dry_run;
	struct store_objset keep;
	cfs_store_gc_result *res;
	int err;
};

static int gc_object(void *ctx, const char *sub, int subfd, const char *name,
		     bool is_object)
{
	struct gc *g = ctx;
	uint8_t digest[CFS_DIGEST_SIZE];
	char rel[CFS_DIGEST_HEX_SIZE + 16];
	struct stat st;
	int r;

	if (!is_object)
		return 0; /* strays are fsck's business */
	store_object_digest(sub, name, digest);
	if (store_objset_has(&g->keep, digest))
		return 0;
	if (fstatat(subfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	snprintf(rel, sizeof(rel), "objects/%s/%s", sub, name);
	r = store_strv_add(&g->res->paths, &g->res->n_paths, rel);
	if (r < 0)
		return r;
	g->res->objects++;
	g->res->object_bytes += (uint64_t)st.st_size;
	if (!g->dry_run && unlinkat(subfd, name, 0) < 0 && errno != ENOENT)
		return cfs_error_errno(errno, "store %s: removing %s",
				       g->s->root, rel);
	return 0;
}

static int gc_remove_file(struct gc *g, const char *rel, const char *name)
{
	int r = store_strv_add(&g->res->paths, &g->res->n_paths, rel);

	if (r < 0)
		return r;
	if (!g->dry_run && unlinkat(g->s->images_fd, name, 0) < 0 &&
	    errno != ENOENT)
		return cfs_error_errno(errno, "store %s: removing %s",
				       g->s->root, rel);
	return 0;
}

/* Remove images/<hex>.json and .cfs, in that order: a gc killed in
 * between leaves an image without metadata and name, which is what an
 * interrupted import leaves too. */
static int gc_image(struct gc *g, const char *hex)
{
	char name[CFS_DIGEST_HEX_SIZE + 16], rel[CFS_DIGEST_HEX_SIZE + 24];
	int r;

	snprintf(name, sizeof(name), "%s.json", hex);
	if (faccessat(g->s->images_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		snprintf(rel, sizeof(rel), "images/%s", name);
		r = gc_remove_file(g, rel, name);
		if (r < 0)
			return r;
	}
	snprintf(name, sizeof(name), "%s" STORE_BROKEN_SUFFIX, hex);
	if (faccessat(g->s->images_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		snprintf(rel, sizeof(rel), "images/%s", name);
		r = gc_remove_file(g, rel, name);
		if (r < 0)
			return r;
	}
	snprintf(name, sizeof(name), "%s.cfs", hex);
	snprintf(rel, sizeof(rel), "images/%s", name);
	g->res->images++;
	return gc_remove_file(g, rel, name);
}

static bool strv_has(char **v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

/* What the kept images and the names refer to besides objects. */
struct gc_refs {
	char **blobs; /* hex of configs and manifests */
	size_t n_blobs;
	char **diff_ids; /* hex: the layer records their configs need */
	size_t n_diff_ids;
};

static void gc_refs_clear(struct gc_refs *refs)
{
	store_strv_free(refs->blobs, refs->n_blobs);
	store_strv_free(refs->diff_ids, refs->n_diff_ids);
}

/* The blobs and layer records of the names (their config and manifest)
 * and of the kept images (their metadata's). */
static int gc_refs(cfs_store *s, const struct store_names *t,
		   const hex_t *digests, const bool *kept, size_t n,
		   struct gc_refs *refs)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < t->n; i++) {
		_cleanup_free_ char *buf = NULL;
		size_t len;

		if (t->v[i].config)
			r = store_strv_add(&refs->blobs, &refs->n_blobs,
					   t->v[i].config + 7);
		if (r == 0 && t->v[i].manifest)
			r = store_strv_add(&refs->blobs, &refs->n_blobs,
					   t->v[i].manifest + 7);
		if (r == 0 && t->v[i].config &&
		    store_blob_read(s, t->v[i].config, &buf, &len) == 0)
			r = store_config_diff_ids(buf, len, &refs->diff_ids,
						  &refs->n_diff_ids);
	}
	for (size_t i = 0; r == 0 && i < n; i++) {
		cfs_store_image meta = { 0 };

		if (!kept[i] || store_meta_read(s, digests[i], &meta) < 0)
			continue;
		if (store_blob_digest_valid(meta.config_digest))
			r = store_strv_add(&refs->blobs, &refs->n_blobs,
					   meta.config_digest + 7);
		if (r == 0 && store_blob_digest_valid(meta.manifest_digest))
			r = store_strv_add(&refs->blobs, &refs->n_blobs,
					   meta.manifest_digest + 7);
		if (r == 0 && meta.config)
			r = store_config_diff_ids(meta.config,
						  strlen(meta.config),
						  &refs->diff_ids,
						  &refs->n_diff_ids);
		cfs_store_image_clear(&meta);
	}
	return r;
}

/* A record gc keeps: its objects are kept too. 1: remove it after all
 * (damaged: a record is only a shortcut, the next import that needs
 * it reads the layer again). */
static int keep_record(struct gc *g, const char *name, const char *rel)
{
	int r = store_record_objects(g->s->layers_fd, name, rel, &g->keep);

	return r == -EBADMSG ? 1 : r;
}

/*
 * Remove the files of @dir (@dirfd) named by 64 hex digits that @keep
 * does not list (the others are strays for fsck), counting them in
 * *@count; @kept (optional) is asked about the kept ones.
 */
static int
gc_sweep(struct gc *g, int dirfd, const char *dir, char **keep, size_t n_keep,
	 int (*kept)(struct gc *g, const char *name, const char *rel),
	 uint64_t *count)
{
	cfs_store *s = g->s;
	char **names = NULL;
	size_t n = 0;
	int r;

	/* in name order: the paths reported do not depend on readdir */
	r = store_dir_names(s, dirfd, dir, &names, &n);
	for (size_t i = 0; r == 0 && i < n; i++) {
		const char *name = names[i];
		char rel[300];

		if (!store_is_hex(name, true))
			continue;
		snprintf(rel, sizeof(rel), "%s/%s", dir, name);
		if (strv_has(keep, n_keep, name)) {
			r = kept ? kept(g, name, rel) : 0;
			if (r <= 0)
				continue;
		}
		if (count)
			(*count)++;
		r = store_strv_add(&g->res->paths, &g->res->n_paths, rel);
		if (r == 0 && !g->dry_run && unlinkat(dirfd, name, 0) < 0 &&
		    errno != ENOENT)
			r = cfs_error_errno(errno, "store %s: removing %s",
					    s->root, rel);
	}
	store_strv_free(names, n);
	return r;
}

static int do_gc(struct gc *g)
{
	cfs_store *s = g->s;
	hex_t *digests = NULL;
	_cleanup_free_ bool *kept = NULL;
	struct store_names t = { 0 };
	struct gc_refs refs = { 0 };
	size_t n = 0, before;
	int r;

	before = g->res->n_paths;
	r = store_clean_tmp(s, true, g->dry_run, &g->res->paths,
			    &g->res->n_paths);
	if (r < 0)
		return r;
	g->res->temporaries = g->res->n_paths - before;
	r = store_names_read(s, &t);
	if (r == 0)
		r = store_image_digests(s, &digests, &n);
	/* An image stays while it has a name or is mounted (the exclusive
	 * lock keeps both as they are for the whole gc). */
	if (r == 0 && !(kept = calloc(n ? n : 1, sizeof(*kept))))
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < n; i++)
		kept[i] = store_names_has_digest(&t, digests[i]) ||
			  store_image_busy(s, digests[i]);
	/* Every kept image's objects first: a kept image that cannot be
	 * read would make any object removal a guess. */
	for (size_t i = 0; r == 0 && i < n; i++) {
		if (!kept[i])
			continue;
		r = store_image_objects(s, digests[i], &g->keep, NULL);
		if (r < 0)
			r = cfs_error_prefix(-r,
					     "store %s: gc stopped, run "
					     "'fsck --repair'",
					     s->root);
	}
	if (r == 0)
		r = gc_refs(s, &t, digests, kept, n, &refs);
	/* The records the remaining images need, with their objects, also
	 * those of files later layers replaced (docs/store.md). */
	if (r == 0 && s->layers_fd >= 0)
		r = gc_sweep(g, s->layers_fd, "layers", refs.diff_ids,
			     refs.n_diff_ids, keep_record, &g->res->records);
	store_objset_finish(&g->keep);
	for (size_t i = 0; r == 0 && i < n; i++)
		if (!kept[i])
			r = gc_image(g, digests[i]);
	if (r == 0)
		r = store_walk_objects(s, gc_object, g);
	/* Imports write their blobs before the names (under the shared lock
	 * gc excludes), so none of theirs is in between. */
	if (r == 0 && s->blobs_fd >= 0)
		r = gc_sweep(g, s->blobs_fd, "blobs/sha256", refs.blobs,
			     refs.n_blobs, NULL, NULL);
	gc_refs_clear(&refs);
	free(digests);
	store_names_clear(&t);
	return r;
}

int cfs_store_gc(cfs_store *s, unsigned int flags, cfs_store_gc_result *res)
{
	cfs_store_gc_result local = CFS_STORE_GC_RESULT_INIT;
	struct gc g = { .s = s, .dry_run = flags & CFS_STORE_GC_DRY_RUN };
	int r;

	if (flags & ~CFS_STORE_GC_DRY_RUN)
		return cfs_error(EINVAL, "invalid gc flags");
	r = cfs_result_check(res, CFS_STORE_GC_RESULT_VERSION, "gc");
	if (r < 0)
		return r;
	g.res = res ? res : &local;
	cfs_result_zero(g.res, sizeof(*g.res));
	r = store_lock(s, LOCK_EX);
	if (r < 0)
		return r;
	r = do_gc(&g);
	if (r == 0 && !g.dry_run && syncfs(s->root_fd) < 0)
		r = cfs_error_errno(errno, "store %s: syncfs", s->root);
	store_lock(s, LOCK_UN);
	store_objset_clear(&g.keep);
	cfs_store_gc_result_clear(&local);
	if (r < 0 && res)
		cfs_store_gc_result_clear(res);
	return r;
}
