/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * The store as a containers/storage additional image store (AIS) for
 * podman and CRI-O: a directory laid out like a graphroot of the overlay
 * driver, one flattened layer per named image, whose content is the
 * image mounted read-only by cfs_store_mount(). See docs/podman.md.
 *
 *   overlay-images/images.json        [{ id, digest, names, layer, ... }]
 *   overlay-images/<id>/manifest      a synthesized OCI manifest
 *   overlay-images/<id>/=<base64>     the config, big-data key
 *                                     "sha256:<id>" (base64 of the key)
 *   overlay-layers/layers.json        [{ id, diff-digest, diff-size, ... }]
 *   overlay/<layer>/link              the layer's short name
 *   overlay/<layer>/diff -> RUN/<image digest>
 *   overlay/l/<short>    -> RUN/<image digest>
 *   overlay-images/images.lock, overlay-layers/layers.lock
 *
 * One AIS image per distinct (store image, config) among the store's
 * names: images that differ only in their config share the store image
 * and so the AIS layer. Ids: the image id is the config digest (podman's
 * own rule), from the raw config the name was imported with; its
 * manifest is the raw manifest, so the image digest is the registry's.
 * The layer id is the SHA-256 of "cfs-layer:" and the store's image
 * digest: stable, and no registry layer's diff-id can be the hash of
 * that text.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <linux/magic.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/json.h"
#include "common/util.h"
#include "store/store-internal.h"

CFS_DEFINE_CLEANUP(DIR *, closedir)

#define AIS_DIR "ais"
#define IMAGES_DIR "overlay-images"
#define LAYERS_DIR "overlay-layers"
#define OVERLAY_DIR "overlay"
#define LINKS_DIR OVERLAY_DIR "/l"
/* containers/storage's lock files: a 64-byte "last writer" token at
 * offset 0, compared by readers to notice changes. */
#define LOCK_TOKEN_SIZE 64
/* Short layer names: 26 base32 characters, as the overlay driver makes. */
#define SHORT_NAME_LEN 26
/* Longest reference podman accepts (docker/distribution's limit). */
#define REF_NAME_MAX 255
/* The tmpfs mounted on a run directory that is not on one: it holds
 * mount points only. */
#define AIS_RUN_TMPFS_SIZE "1m"

struct ais_image {
	const cfs_store_image *img;
	char id[CFS_DIGEST_HEX_SIZE + 1]; /* config digest hex */
	char layer[CFS_DIGEST_HEX_SIZE + 1];
	char short_name[SHORT_NAME_LEN + 1];
	char manifest_digest[CFS_SHA256_STR_SIZE];
	char *config, *manifest;
	size_t config_len, manifest_len;
	char **names; /* store names, sorted */
	size_t n_names;
	char created[64]; /* the config's "created" (RFC 3339), else import */
	char *mountpoint;
	bool first_of_layer; /* the first AIS image on its store image */
};

/* The SHA-256 of @len bytes at @data as hex (and raw, if @raw). */
static int sha256_hex(const void *data, size_t len,
		      char hex[CFS_DIGEST_HEX_SIZE + 1], uint8_t *raw)
{
	uint8_t md[CFS_DIGEST_SIZE];
	int r = cfs_sha256(data, len, md, NULL);

	if (r < 0)
		return r;
	cfs_digest_to_hex(md, hex);
	if (raw)
		memcpy(raw, md, CFS_DIGEST_SIZE);
	return 0;
}

/* mkdir -p of @path (absolute or relative to the cwd). */
static int mkdir_p(const char *path, mode_t mode)
{
	_cleanup_free_ char *p = strdup(path);

	if (!p)
		return -ENOMEM;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return cfs_error_errno(errno, "creating %s", p);
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return cfs_error_errno(errno, "creating %s", p);
	return 0;
}

/* ---- a sync's changes, all or nothing ---------------------------------- */

/*
 * A sync changes the AIS in two phases, so that a full disk leaves it as
 * it was. First everything that needs room: the mounts of new images,
 * new directories, and every file that differs from what is there,
 * written next to its place as .tmp-NAME (a symlink made so); all of it
 * recorded here. Then renames only: new names first, then replacements
 * (a rename over an existing entry needs no room), layers.json and
 * images.json last (and, when layers are dropped, the final layers.json
 * after those: layers_union()). A failure before the first JSON file
 * takes it all back (txn_undo()); podman, which reads only the JSON
 * files, never sees a half-done sync.
 */
enum txn_phase {
	PHASE_NEW, /* a name that was not there */
	PHASE_REPLACE, /* a file or symlink that was there */
	PHASE_JSON, /* layers.json, images.json: in this order */
	PHASE_FINAL, /* layers.json without the layers a sync drops, last */
};

struct txn_file {
	int base; /* the AIS directory it is in: borrowed */
	char *path, *tmp; /* relative to @base */
	enum txn_phase phase;
	bool done; /* renamed into place */
};

struct txn_dir {
	int base;
	char *path;
};

struct ais_txn {
	const char *ais; /* the AIS directory, for messages */
	int images_fd, layers_fd; /* the bases (and overlay_fd): borrowed */
	struct txn_file *files;
	size_t n_files;
	struct txn_dir *dirs; /* made by this sync */
	size_t n_dirs;
	char **mounts; /* mount points of this sync's mounts */
	size_t n_mounts;
	bool committed; /* a JSON file replaced: nothing to take back */
	const char *idmap; /* cfs_store_ais_options.idmap, or NULL */
};

/* The AIS subdirectory @base is, for messages. */
static const char *txn_where(const struct ais_txn *t, int base)
{
	if (base == t->images_fd)
		return IMAGES_DIR;
	return base == t->layers_fd ? LAYERS_DIR : OVERLAY_DIR;
}

/* "DIR/.tmp-NAME" for "DIR/NAME" (or ".tmp-NAME" for "NAME"); in
 * PHASE_FINAL ".tmp-final-NAME", beside the same file's PHASE_JSON one. */
static char *tmp_path(const char *path, enum txn_phase phase)
{
	const char *base = strrchr(path, '/');
	int dir = base ? (int)(base - path) + 1 : 0;
	char *out;

	if (asprintf(&out, "%.*s.tmp-%s%s", dir, path,
		     phase == PHASE_FINAL ? "final-" : "", path + dir) < 0)
		return NULL;
	return out;
}

static int txn_add(struct ais_txn *t, int base, const char *path,
		   enum txn_phase phase, char **tmp_out)
{
	struct txn_file *v = realloc(t->files, (t->n_files + 1) * sizeof(*v));
	struct txn_file *f;

	if (!v)
		return -ENOMEM;
	t->files = v;
	f = &v[t->n_files];
	memset(f, 0, sizeof(*f));
	f->base = base;
	f->phase = phase;
	f->path = strdup(path);
	f->tmp = tmp_path(path, phase);
	if (!f->path || !f->tmp) {
		free(f->path);
		free(f->tmp);
		return -ENOMEM;
	}
	t->n_files++;
	*tmp_out = f->tmp;
	return 0;
}

/* Is @base/@path a regular file holding exactly @data? */
static bool same_content(int base, const char *path, const void *data,
			 size_t len)
{
	_cleanup_close_ int fd =
		openat(base, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t got;

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size != len)
		return false;
	buf = malloc(len ? len : 1);
	return buf && cfs_read_full(fd, buf, len, &got) == 0 && got == len &&
	       memcmp(buf, data, len) == 0;
}

/* A temporary a killed sync left beside an entry that needs no change. */
static void remove_stale_tmp(int base, const char *path)
{
	_cleanup_free_ char *tmp = tmp_path(path, PHASE_NEW);
	_cleanup_free_ char *final = tmp_path(path, PHASE_FINAL);

	if (tmp)
		unlinkat(base, tmp, 0);
	if (final)
		unlinkat(base, final, 0);
}

/* Stage @base/@path with @len bytes of @data to be renamed in @phase. */
static int txn_stage(struct ais_txn *t, int base, const char *path,
		     const void *data, size_t len, enum txn_phase phase)
{
	_cleanup_close_ int fd = -1;
	char *tmp;
	int r;

	r = txn_add(t, base, path, phase, &tmp);
	if (r < 0)
		return r;
	/* A leftover of a killed sync (syncs take turns: they hold the
	 * AIS's lock files). */
	unlinkat(base, tmp, 0);
	fd = openat(base, tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
	r = fd < 0 ? -errno : cfs_write_all(fd, data, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r < 0)
		return cfs_error_errno(-r, "ais %s/%s/%s", t->ais,
				       txn_where(t, base), tmp);
	return 0;
}

/* Stage @base/@path with @len bytes of @data, unless it holds them. */
static int txn_file(struct ais_txn *t, int base, const char *path,
		    const void *data, size_t len, bool json)
{
	if (same_content(base, path, data, len)) {
		remove_stale_tmp(base, path);
		return 0;
	}
	return txn_stage(t, base, path, data, len,
			 json ? PHASE_JSON :
			 faccessat(base, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0 ?
				PHASE_REPLACE :
				PHASE_NEW);
}

/* Stage @base/@path as a symlink to @target, unless it is one. */
static int txn_symlink(struct ais_txn *t, int base, const char *path,
		       const char *target)
{
	char cur[PATH_MAX], *tmp;
	ssize_t n = readlinkat(base, path, cur, sizeof(cur) - 1);
	int r;

	if (n >= 0) {
		cur[n] = '\0';
		if (strcmp(cur, target) == 0) {
			remove_stale_tmp(base, path);
			return 0;
		}
	}
	r = txn_add(t, base, path,
		    n >= 0 || errno != ENOENT ? PHASE_REPLACE : PHASE_NEW,
		    &tmp);
	if (r < 0)
		return r;
	unlinkat(base, tmp, 0);
	if (symlinkat(target, base, tmp) < 0)
		return cfs_error_errno(errno, "ais %s/%s/%s", t->ais,
				       txn_where(t, base), tmp);
	return 0;
}

/* mkdir @base/@path unless it is there; one made here is recorded. */
static int txn_mkdir(struct ais_txn *t, int base, const char *path)
{
	struct txn_dir *v;

	if (mkdirat(base, path, 0755) < 0) {
		if (errno == EEXIST)
			return 0;
		return cfs_error_errno(errno, "ais %s/%s/%s", t->ais,
				       txn_where(t, base), path);
	}
	v = realloc(t->dirs, (t->n_dirs + 1) * sizeof(*v));
	if (v) {
		t->dirs = v;
		v[t->n_dirs].base = base;
		v[t->n_dirs].path = strdup(path);
	}
	if (!v || !v[t->n_dirs].path) {
		unlinkat(base, path, AT_REMOVEDIR);
		return -ENOMEM;
	}
	t->n_dirs++;
	return 0;
}

static int txn_commit_phase(struct ais_txn *t, enum txn_phase phase)
{
	for (size_t i = 0; i < t->n_files; i++) {
		struct txn_file *f = &t->files[i];

		if (f->phase != phase)
			continue;
		if (renameat(f->base, f->tmp, f->base, f->path) < 0)
			return cfs_error_errno(errno, "ais %s/%s/%s", t->ais,
					       txn_where(t, f->base), f->path);
		f->done = true;
		if (phase >= PHASE_JSON)
			t->committed = true;
	}
	return 0;
}

/* The renames of the second phase. */
static int txn_commit(struct ais_txn *t)
{
	int r = txn_commit_phase(t, PHASE_NEW);

	if (r == 0)
		r = txn_commit_phase(t, PHASE_REPLACE);
	if (r == 0)
		r = txn_commit_phase(t, PHASE_JSON);
	if (r == 0)
		r = txn_commit_phase(t, PHASE_FINAL);
	return r;
}

/* Take back what the sync did: the temporaries, the new names, the
 * directories it made, then the mounts it made. */
static void txn_undo(cfs_store *s, struct ais_txn *t)
{
	for (size_t i = 0; i < t->n_files; i++) {
		struct txn_file *f = &t->files[i];

		if (!f->done)
			unlinkat(f->base, f->tmp, 0);
		else if (f->phase == PHASE_NEW)
			unlinkat(f->base, f->path, 0);
	}
	for (size_t i = t->n_dirs; i-- > 0;)
		store_rm_rf_at(t->dirs[i].base, t->dirs[i].path);
	for (size_t i = 0; i < t->n_mounts; i++) {
		if (cfs_store_umount(s, t->mounts[i], 0) < 0)
			cfs_error_clear();
		rmdir(t->mounts[i]);
	}
}

static void txn_free(struct ais_txn *t)
{
	for (size_t i = 0; i < t->n_files; i++) {
		free(t->files[i].path);
		free(t->files[i].tmp);
	}
	for (size_t i = 0; i < t->n_dirs; i++)
		free(t->dirs[i].path);
	free(t->files);
	free(t->dirs);
	store_strv_free(t->mounts, t->n_mounts);
}

/* Tell readers the store changed: a fresh token at offset 0. */
static int touch_lock(int fd, const char *what)
{
	uint8_t token[LOCK_TOKEN_SIZE];

	if (getrandom(token, sizeof(token), 0) != (ssize_t)sizeof(token))
		return cfs_error_errno(errno, "getrandom");
	if (pwrite(fd, token, sizeof(token), 0) != (ssize_t)sizeof(token))
		return cfs_error_errno(errno, "ais %s: writing token", what);
	return 0;
}

/*
 * Open (creating) @dir/@name and take its fcntl write lock, waiting. A
 * lock file just made gets a token now, while a failure (a full disk)
 * changes nothing: touch_lock() at the end then only overwrites it.
 */
static int lock_file(const char *dir, const char *name)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	_cleanup_free_ char *path = NULL;
	struct stat st;
	int fd, r;

	if (asprintf(&path, "%s/%s", dir, name) < 0)
		return -ENOMEM;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return cfs_error_errno(errno, "ais %s", path);
	while (fcntl(fd, F_SETLKW, &fl) < 0) {
		if (errno == EINTR)
			continue;
		int e = errno;

		close(fd);
		return cfs_error_errno(e, "ais %s: locking", path);
	}
	if (fstat(fd, &st) < 0)
		r = cfs_error_errno(errno, "ais %s", path);
	else
		r = st.st_size >= LOCK_TOKEN_SIZE ? 0 : touch_lock(fd, path);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/*
 * A store name as podman spells references: "localhost/" in front when
 * the first component is no registry, ":latest" when there is no tag.
 * NULL (and no error) for names podman would not parse: upper case in
 * the repository, "+", "@" digests.
 */
static char *podman_name(const char *name)
{
	const char *slash = strchr(name, '/'), *last = strrchr(name, '/');
	const char *colon = strrchr(name, ':');
	bool domain = false, tag = colon && (!last || colon > last);
	char *out;

	if (strchr(name, '@') || strchr(name, '+'))
		return NULL;
	if (slash) {
		size_t n = (size_t)(slash - name);

		domain = memchr(name, '.', n) || memchr(name, ':', n) ||
			 (n == 9 && strncmp(name, "localhost", 9) == 0);
	}
	for (const char *p = domain ? slash + 1 : name;
	     *p && (!tag || p < colon); p++)
		if (*p >= 'A' && *p <= 'Z')
			return NULL;
	if (asprintf(&out, "%s%s%s", domain ? "" : "localhost/", name,
		     tag ? "" : ":latest") < 0)
		return NULL;
	if (strlen(out) > REF_NAME_MAX) {
		free(out);
		return NULL;
	}
	return out;
}

static void rfc3339(int64_t t, char buf[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void base32_short(const uint8_t *raw, char out[SHORT_NAME_LEN + 1])
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
	unsigned int acc = 0, bits = 0;
	size_t i = 0, n = 0;

	while (n < SHORT_NAME_LEN) {
		if (bits < 5) {
			acc = (acc << 8) | raw[i++];
			bits += 8;
		}
		out[n++] = alphabet[(acc >> (bits - 5)) & 31];
		bits -= 5;
	}
	out[n] = '\0';
}

/* What podman shows as the image's age: the config's "created", as
 * podman's own pulls do; the import time if the config has none. */
static void config_created(struct ais_image *a)
{
	json_object *c = NULL, *v;
	const char *t;

	rfc3339(a->img->created, a->created);
	if (cfs_json_parse(a->config, a->config_len, &c) == 0 &&
	    json_object_object_get_ex(c, "created", &v) &&
	    json_object_is_type(v, json_type_string)) {
		t = json_object_get_string(v);
		/* "YYYY-MM-DDTHH:MM:SS..." and nothing that needs escaping. */
		if (strlen(t) >= 20 && strlen(t) < sizeof(a->created) &&
		    t[4] == '-' && t[10] == 'T' &&
		    strspn(t, "0123456789-:.TZ+") == strlen(t))
			snprintf(a->created, sizeof(a->created), "%s", t);
	}
	json_object_put(c);
}

/*
 * The config (and manifest) of the AIS image for the name @e of @img:
 * the raw blobs the name was imported with, else (names of an older
 * store, or tags of an image whose blobs are gone) the config kept in the
 * image's metadata. 0 and no config if the name has none (dir: imports).
 */
static int ais_image_load(cfs_store *s, struct ais_image *a,
			  const cfs_store_image *img,
			  const struct store_name *e)
{
	int r;

	a->img = img;
	if (e->config) {
		r = store_blob_read(s, e->config, &a->config, &a->config_len);
		if (r < 0 && r != -ENOENT)
			return r;
		if (r == 0 && e->manifest) {
			r = store_blob_read(s, e->manifest, &a->manifest,
					    &a->manifest_len);
			if (r < 0 && r != -ENOENT)
				return r;
		}
	}
	if (!a->config && img->config) {
		a->config = strdup(img->config);
		if (!a->config)
			return -ENOMEM;
		a->config_len = strlen(a->config);
	}
	if (!a->config)
		return 0;
	config_created(a);
	return sha256_hex(a->config, a->config_len, a->id, NULL);
}

static int ais_image_prepare(struct ais_image *a, const char *run_dir)
{
	_cleanup_(json_object_putp) json_object *m = NULL;
	json_object *cfg;
	char seed[16 + CFS_DIGEST_HEX_SIZE], d[7 + CFS_DIGEST_HEX_SIZE + 1];
	uint8_t raw[CFS_DIGEST_SIZE];
	const char *text;
	int r;

	snprintf(seed, sizeof(seed), "cfs-layer:%s", a->img->digest);
	r = sha256_hex(seed, strlen(seed), a->layer, raw);
	if (r < 0)
		return r;
	base32_short(raw, a->short_name);
	if (asprintf(&a->mountpoint, "%s/%s", run_dir, a->img->digest) < 0) {
		a->mountpoint = NULL;
		return -ENOMEM;
	}
	if (!a->manifest) {
		/* No manifest (docker-archive, older stores): one of the
		 * config alone. Podman reads it for inspect and checks it
		 * against its digest; it does not look for layer blobs. */
		m = json_object_new_object();
		cfg = json_object_new_object();
		if (!m || !cfg) {
			json_object_put(cfg);
			return -ENOMEM;
		}
		json_object_object_add(m, "schemaVersion",
				       json_object_new_int(2));
		json_object_object_add(
			m, "mediaType",
			json_object_new_string(
				"application/vnd.oci.image.manifest.v1+json"));
		json_object_object_add(
			cfg, "mediaType",
			json_object_new_string(
				"application/vnd.oci.image.config.v1+json"));
		snprintf(d, sizeof(d), "sha256:%s", a->id);
		json_object_object_add(cfg, "digest",
				       json_object_new_string(d));
		json_object_object_add(
			cfg, "size",
			json_object_new_int64((int64_t)a->config_len));
		json_object_object_add(m, "config", cfg);
		json_object_object_add(m, "layers", json_object_new_array());
		text = json_object_to_json_string_ext(
			m, JSON_C_TO_STRING_PLAIN |
				   JSON_C_TO_STRING_NOSLASHESCAPE);
		a->manifest = strdup(text);
		if (!a->manifest)
			return -ENOMEM;
		a->manifest_len = strlen(a->manifest);
	}
	return cfs_sha256(a->manifest, a->manifest_len, NULL,
			  a->manifest_digest);
}

static void ais_image_clear(struct ais_image *a)
{
	free(a->config);
	free(a->manifest);
	free(a->mountpoint);
	store_strv_free(a->names, a->n_names);
	memset(a, 0, sizeof(*a));
}

/* The image @digest read-only at @mountpoint, idmapped by @idmap if
 * not NULL. */
static int ais_mount(cfs_store *s, const char *digest, const char *mountpoint,
		     const char *idmap)
{
	cfs_store_mount_options mo = CFS_STORE_MOUNT_OPTIONS_INIT;

	mo.idmap = idmap;
	return cfs_store_mount(s, digest, mountpoint, &mo);
}

/* Mount the image read-only at its mount point unless it is there (a
 * mount made here is recorded in @t). */
static int ais_image_mount(cfs_store *s, struct ais_txn *t, struct ais_image *a,
			   bool *mounted)
{
	int r;

	*mounted = false;
	if (store_is_mount_root(a->mountpoint))
		return 0;
	if (mkdir(a->mountpoint, 0755) < 0 && errno != EEXIST)
		return cfs_error_errno(errno, "creating %s", a->mountpoint);
	r = store_strv_add(&t->mounts, &t->n_mounts, a->mountpoint);
	if (r == 0)
		r = ais_mount(s, a->img->digest, a->mountpoint, t->idmap);
	if (r < 0) {
		if (t->n_mounts &&
		    strcmp(t->mounts[t->n_mounts - 1], a->mountpoint) == 0)
			free(t->mounts[--t->n_mounts]);
		rmdir(a->mountpoint);
		return cfs_error_prefix(-r, "ais: mounting %s", a->img->digest);
	}
	*mounted = true;
	return 0;
}

static json_object *image_json(const struct ais_image *a)
{
	json_object *j = json_object_new_object();
	json_object *names = json_object_new_array();
	json_object *bd_names = json_object_new_array();
	json_object *sizes = json_object_new_object();
	json_object *digests = json_object_new_object();
	char key[7 + CFS_DIGEST_HEX_SIZE + 1];

	if (!j || !names || !bd_names || !sizes || !digests) {
		json_object_put(j);
		json_object_put(names);
		json_object_put(bd_names);
		json_object_put(sizes);
		json_object_put(digests);
		return NULL;
	}
	for (size_t i = 0; i < a->n_names; i++) {
		char *n = podman_name(a->names[i]);

		if (n)
			json_object_array_add(names, json_object_new_string(n));
		free(n);
	}
	snprintf(key, sizeof(key), "sha256:%s", a->id);
	json_object_object_add(j, "id", json_object_new_string(a->id));
	json_object_object_add(j, "digest",
			       json_object_new_string(a->manifest_digest));
	json_object_object_add(j, "names", names);
	json_object_object_add(j, "layer", json_object_new_string(a->layer));
	json_object_array_add(bd_names, json_object_new_string(key));
	json_object_array_add(bd_names, json_object_new_string("manifest"));
	json_object_object_add(j, "big-data-names", bd_names);
	json_object_object_add(sizes, key,
			       json_object_new_int64((int64_t)a->config_len));
	json_object_object_add(sizes, "manifest",
			       json_object_new_int64((int64_t)a->manifest_len));
	json_object_object_add(j, "big-data-sizes", sizes);
	json_object_object_add(digests, key, json_object_new_string(key));
	json_object_object_add(digests, "manifest",
			       json_object_new_string(a->manifest_digest));
	json_object_object_add(j, "big-data-digests", digests);
	json_object_object_add(j, "created",
			       json_object_new_string(a->created));
	return j;
}

static json_object *layer_json(const struct ais_image *a)
{
	json_object *j = json_object_new_object();
	char diff[7 + CFS_DIGEST_HEX_SIZE + 1];

	if (!j)
		return NULL;
	/* No tar stream of the flattened tree exists to hash; podman only
	 * needs a digest here, and the layer id is a unique one. */
	snprintf(diff, sizeof(diff), "sha256:%s", a->layer);
	json_object_object_add(j, "id", json_object_new_string(a->layer));
	json_object_object_add(j, "created",
			       json_object_new_string(a->created));
	json_object_object_add(j, "diff-digest", json_object_new_string(diff));
	json_object_object_add(
		j, "diff-size",
		json_object_new_int64((int64_t)a->img->object_bytes));
	return j;
}

static const char *json_text(json_object *j)
{
	return json_object_to_json_string_ext(
		j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

static int stage_json(struct ais_txn *t, int dirfd, const char *name,
		      json_object *j)
{
	const char *text = json_text(j);

	return txn_file(t, dirfd, name, text, strlen(text), true);
}

/* Stage the image's big-data files and its layer directory. */
static int ais_image_stage(struct ais_txn *t, int images_fd, int overlay_fd,
			   const struct ais_image *a)
{
	char key[7 + CFS_DIGEST_HEX_SIZE + 1];
	char fname[2 + 4 * sizeof(key)];
	char path[CFS_DIGEST_HEX_SIZE + 1 + sizeof(fname)];
	int r;

	r = txn_mkdir(t, images_fd, a->id);
	if (r < 0)
		return r;
	snprintf(key, sizeof(key), "sha256:%s", a->id);
	fname[0] = '=';
	EVP_EncodeBlock((unsigned char *)fname + 1, (unsigned char *)key,
			(int)strlen(key));
	snprintf(path, sizeof(path), "%s/%s", a->id, fname);
	r = txn_file(t, images_fd, path, a->config, a->config_len, false);
	snprintf(path, sizeof(path), "%s/manifest", a->id);
	if (r == 0)
		r = txn_file(t, images_fd, path, a->manifest, a->manifest_len,
			     false);
	if (r < 0 || !a->first_of_layer)
		return r;

	r = txn_mkdir(t, overlay_fd, a->layer);
	snprintf(path, sizeof(path), "%s/link", a->layer);
	if (r == 0)
		r = txn_file(t, overlay_fd, path, a->short_name,
			     strlen(a->short_name), false);
	/* The driver stats diff/ when it creates a container on the layer;
	 * the mount itself goes through l/<short>. */
	snprintf(path, sizeof(path), "%s/diff", a->layer);
	if (r == 0)
		r = txn_symlink(t, overlay_fd, path, a->mountpoint);
	snprintf(path, sizeof(path), "l/%s", a->short_name);
	if (r == 0)
		r = txn_symlink(t, overlay_fd, path, a->mountpoint);
	return r;
}

static bool in_set(const struct ais_image *v, size_t n, const char *name,
		   size_t field)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp((const char *)&v[i] + field, name) == 0)
			return true;
	return false;
}

/* Remove entries of @dirfd named by 64 hex digits that @keep lacks. */
static int prune_hex_dirs(int dirfd, const struct ais_image *v, size_t n,
			  size_t field, int links_fd)
{
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;
	int fd = dup(dirfd);

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		if (!store_is_hex(de->d_name, true) ||
		    in_set(v, n, de->d_name, field))
			continue;
		if (links_fd >= 0) {
			char link[CFS_DIGEST_HEX_SIZE + 8],
				buf[SHORT_NAME_LEN + 2];
			_cleanup_close_ int lf = -1;
			size_t got = 0;

			snprintf(link, sizeof(link), "%.64s/link", de->d_name);
			lf = openat(dirfd, link, O_RDONLY | O_CLOEXEC);
			if (lf >= 0 &&
			    cfs_read_full(lf, buf, sizeof(buf) - 1, &got) ==
				    0 &&
			    got == SHORT_NAME_LEN) {
				buf[got] = '\0';
				unlinkat(links_fd, buf, 0);
			}
		}
		store_rm_rf_at(dirfd, de->d_name);
	}
	return 0;
}

/* Unmount and remove RUN/<digest> of images no longer in the AIS. Only
 * mounts this store recorded are touched (RUN may be shared); an empty
 * directory that is no mount (a sync killed between the umount and the
 * rmdir) goes too. */
static void prune_mounts(cfs_store *s, const char *run_dir,
			 const struct ais_image *v, size_t n,
			 cfs_store_ais_result *res)
{
	_cleanup_(closedirp) DIR *d = opendir(run_dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		_cleanup_free_ char *path = NULL;
		bool keep = false;

		if (!store_is_hex(de->d_name, true))
			continue;
		for (size_t i = 0; i < n && !keep; i++)
			keep = strcmp(v[i].img->digest, de->d_name) == 0;
		if (keep || asprintf(&path, "%s/%s", run_dir, de->d_name) < 0)
			continue;
		if (cfs_store_umount(s, path, 0) < 0) {
			cfs_error_clear();
			if (store_is_mount_root(path))
				res->busy++;
			else
				rmdir(path); /* a sync killed after the
					      * umount; empty: only then */
			continue;
		}
		rmdir(path);
		res->unmounted++;
	}
}

static int open_dir(const char *base, const char *sub)
{
	_cleanup_free_ char *p = NULL;
	int fd;

	if (asprintf(&p, "%s/%s", base, sub) < 0)
		return -ENOMEM;
	if (mkdir(p, 0755) < 0 && errno != EEXIST)
		return cfs_error_errno(errno, "creating %s", p);
	fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return cfs_error_errno(errno, "ais %s", p);
	return fd;
}

/*
 * RUN must be on a file system that a reboot empties (tmpfs): an image
 * mount point left behind, empty, would otherwise give a container an
 * empty root. Gone mount points make the l/ links dangle, and podman
 * fails loudly instead. Where RUN is on another file system (some
 * machines and most containers have no tmpfs /run), a small tmpfs of
 * the store's own is mounted on it: it holds only mount points, and a
 * reboot takes it away with them. *@mounted says that this call did.
 * Refused only when that mount fails.
 */
static int check_run_dir(const char *run, bool *mounted)
{
	struct statfs sfs;

	if (statfs(run, &sfs) < 0)
		return cfs_error_errno(errno, "run directory %s", run);
	if (sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC)
		return 0;
	if (mount("cfs-run", run, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  "mode=0755,size=" AIS_RUN_TMPFS_SIZE) < 0)
		return cfs_error_errno(errno,
				       "run directory %s is not on tmpfs "
				       "(after a reboot its empty mount "
				       "points would give containers an "
				       "empty root), and mounting one there "
				       "failed",
				       run);
	*mounted = true;
	return 0;
}

/* The AIS directory (created) and the run directory, as real paths. */
static int ais_paths(cfs_store *s, const cfs_store_ais_options *opts,
		     char **ais_out, char **run_out, cfs_store_ais_result *res)
{
	const char *run_dir =
		opts->run_dir ? opts->run_dir : CFS_STORE_AIS_DEFAULT_RUN_DIR;
	_cleanup_free_ char *ais = NULL, *run = NULL;
	int r;

	if (!CFS_OPTIONS_VERSION_OK(opts->version,
				    CFS_STORE_AIS_OPTIONS_VERSION) ||
	    opts->flags)
		return cfs_error(EINVAL, "invalid ais options");
	if (opts->ais_dir) {
		r = mkdir_p(opts->ais_dir, 0755);
		if (r < 0)
			return r;
		ais = realpath(opts->ais_dir, NULL);
	} else if (asprintf(&ais, "%s/" AIS_DIR, s->root) < 0) {
		ais = NULL;
		errno = ENOMEM;
	}
	if (!ais)
		return cfs_error_errno(errno, "ais %s",
				       opts->ais_dir ? opts->ais_dir : AIS_DIR);
	r = mkdir_p(ais, 0755);
	if (r == 0)
		r = mkdir_p(run_dir, 0755);
	if (r < 0)
		return r;
	run = realpath(run_dir, NULL);
	if (!run)
		return cfs_error_errno(errno, "run directory %s", run_dir);
	r = check_run_dir(run, &res->run_mounted);
	if (r < 0)
		return r;
	*ais_out = TAKE_PTR(ais);
	*run_out = TAKE_PTR(run);
	return 0;
}

static int name_entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct store_name *)a)->name,
		      ((const struct store_name *)b)->name);
}

static int image_digest_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const cfs_store_image *)elem)->digest);
}

/*
 * The AIS images: one per distinct (store image, config) of the names,
 * in the order of their first name. Names without a config (dir: and
 * dump: imports) are counted in @skipped.
 */
static int ais_collect(cfs_store *s, const cfs_store_image *images,
		       size_t count, struct ais_image **out, size_t *n_out,
		       size_t *skipped)
{
	struct store_names t;
	struct ais_image *v = NULL;
	size_t n = 0;
	int r;

	*out = NULL;
	*n_out = 0;
	r = store_names_read(s, &t);
	if (r < 0)
		return r;
	if (t.n)
		qsort(t.v, t.n, sizeof(*t.v), name_entry_cmp);
	v = calloc(t.n ? t.n : 1, sizeof(*v));
	if (!v)
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < t.n; i++) {
		const struct store_name *e = &t.v[i];
		const cfs_store_image *img;
		struct ais_image a = { 0 };
		size_t j;

		img = bsearch(e->digest, images, count, sizeof(*images),
			      image_digest_cmp);
		if (!img || !img->complete)
			continue; /* an import or gc is at work: next sync */
		r = ais_image_load(s, &a, img, e);
		if (r < 0 || !a.config) {
			*skipped += r == 0;
			ais_image_clear(&a);
			continue;
		}
		for (j = 0; j < n; j++)
			if (strcmp(v[j].id, a.id) == 0)
				break;
		if (j < n) {
			ais_image_clear(&a);
			/* The same config on another tree would be one id
			 * for two roots: the first name's tree wins. */
			if (strcmp(v[j].img->digest, img->digest) != 0) {
				(*skipped)++;
				continue;
			}
		} else {
			v[n++] = a;
		}
		r = store_strv_add(&v[j].names, &v[j].n_names, e->name);
	}
	store_names_clear(&t);
	if (r < 0) {
		for (size_t i = 0; i < n; i++)
			ais_image_clear(&v[i]);
		free(v);
		return r;
	}
	*out = v;
	*n_out = n;
	return 0;
}

/*
 * layers.json as it must be while images.json changes: the layers of
 * this sync (@lj), then those of the current layers.json that this sync
 * drops. The old images.json names only old layers and the new one only
 * new ones, so with this file in place either images.json is consistent,
 * and a sync killed between its renames never leaves podman an image
 * whose layer is unknown. The final layers.json (@lj) follows images.json.
 * NULL when nothing is dropped (or there is no layers.json to read):
 * then @lj goes first and alone, containers/storage's own order.
 */
static json_object *layers_union(int layers_fd, json_object *lj)
{
	_cleanup_close_ int fd =
		openat(layers_fd, "layers.json", O_RDONLY | O_CLOEXEC);
	_cleanup_(json_object_putp) json_object *old = NULL;
	json_object *u = NULL;
	size_t n_new = json_object_array_length(lj);

	if (fd < 0)
		return NULL;
	if (cfs_json_read_fd(fd, STORE_JSON_MAX, &old) < 0 ||
	    !json_object_is_type(old, json_type_array))
		return NULL;
	for (size_t i = 0; i < json_object_array_length(old); i++) {
		json_object *e = json_object_array_get_idx(old, i), *id;
		bool kept = false;

		if (!json_object_object_get_ex(e, "id", &id))
			continue;
		for (size_t j = 0; j < n_new && !kept; j++) {
			json_object *nid;

			json_object_object_get_ex(
				json_object_array_get_idx(lj, j), "id", &nid);
			kept = !strcmp(json_object_get_string(nid),
				       json_object_get_string(id));
		}
		if (kept)
			continue;
		if (!u) {
			u = json_object_new_array();
			for (size_t j = 0; u && j < n_new; j++)
				json_object_array_add(
					u, json_object_get(
						   json_object_array_get_idx(
							   lj, j)));
		}
		if (u)
			json_object_array_add(u, json_object_get(e));
	}
	return u;
}

/* What every AIS entry point does first: the options (NULL: the
 * defaults) and the result (NULL: @dummy) checked, the result zeroed,
 * the AIS and run directories found. */
static int ais_begin(cfs_store *s, const cfs_store_ais_options **opts,
		     cfs_store_ais_result **res, cfs_store_ais_result *dummy,
		     char **ais, char **run)
{
	static const cfs_store_ais_options defaults =
		CFS_STORE_AIS_OPTIONS_INIT;
	int r = cfs_result_check(*res, CFS_STORE_AIS_RESULT_VERSION, "ais");

	if (r < 0)
		return r;
	if (!*opts)
		*opts = &defaults;
	if (!*res)
		*res = dummy;
	cfs_result_zero(*res, sizeof(**res));
	return ais_paths(s, *opts, ais, run, *res);
}

int cfs_store_ais_sync(cfs_store *s, const cfs_store_ais_options *opts,
		       cfs_store_ais_result *res)
{
	_cleanup_free_ char *ais = NULL, *run = NULL;
	_cleanup_close_ int images_fd = -1, layers_fd = -1, overlay_fd = -1;
	_cleanup_close_ int links_fd = -1, ilock = -1, llock = -1;
	_cleanup_(json_object_putp) json_object *ij = NULL, *lj = NULL;
	_cleanup_(json_object_putp) json_object *lu = NULL;
	struct ais_txn t = { 0 };
	cfs_store_ais_result dummy = CFS_STORE_AIS_RESULT_INIT;
	cfs_store_image *images = NULL;
	struct ais_image *v = NULL;
	size_t count = 0, n = 0;
	int r;

	r = ais_begin(s, &opts, &res, &dummy, &ais, &run);
	if (r < 0)
		return r;

	images_fd = open_dir(ais, IMAGES_DIR);
	if (images_fd < 0)
		return images_fd;
	layers_fd = open_dir(ais, LAYERS_DIR);
	if (layers_fd < 0)
		return layers_fd;
	overlay_fd = open_dir(ais, OVERLAY_DIR);
	if (overlay_fd < 0)
		return overlay_fd;
	links_fd = open_dir(ais, LINKS_DIR);
	if (links_fd < 0)
		return links_fd;

	/* containers/storage's order: layers, then images. */
	{
		_cleanup_free_ char *ld = NULL, *id = NULL;

		if (asprintf(&ld, "%s/" LAYERS_DIR, ais) < 0 ||
		    asprintf(&id, "%s/" IMAGES_DIR, ais) < 0)
			return -ENOMEM;
		llock = lock_file(ld, "layers.lock");
		if (llock < 0)
			return llock;
		ilock = lock_file(id, "images.lock");
		if (ilock < 0)
			return ilock;
	}
	t.ais = ais;
	t.images_fd = images_fd;
	t.layers_fd = layers_fd;
	t.idmap = opts->version >= 2 ? opts->idmap : NULL;

	r = cfs_store_list(s, &images, &count);
	if (r < 0)
		return r;
	r = ais_collect(s, images, count, &v, &n, &res->skipped);
	ij = json_object_new_array();
	lj = json_object_new_array();
	if (r == 0 && (!ij || !lj))
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < n; i++) {
		bool mounted = false;

		v[i].first_of_layer = true;
		for (size_t j = 0; j < i; j++)
			if (v[j].img == v[i].img)
				v[i].first_of_layer = false;
		r = ais_image_prepare(&v[i], run);
		if (r == 0 && v[i].first_of_layer)
			r = ais_image_mount(s, &t, &v[i], &mounted);
		if (r < 0)
			break;
		res->mounted += mounted;
		r = ais_image_stage(&t, images_fd, overlay_fd, &v[i]);
		if (r < 0)
			break;
		json_object_array_add(ij, image_json(&v[i]));
		if (v[i].first_of_layer)
			json_object_array_add(lj, layer_json(&v[i]));
	}
	/* containers/storage's order: layers, then images; a sync that drops
	 * layers keeps them in layers.json until images.json is replaced,
	 * and writes the final layers.json (staged now, with the rest of
	 * what needs room) after it. */
	if (r == 0) {
		lu = layers_union(layers_fd, lj);
		r = stage_json(&t, layers_fd, "layers.json", lu ? lu : lj);
	}
	if (r == 0)
		r = stage_json(&t, images_fd, "images.json", ij);
	if (r == 0 && lu) {
		const char *text = json_text(lj);

		r = txn_stage(&t, layers_fd, "layers.json", text, strlen(text),
			      PHASE_FINAL);
	}
	if (r == 0)
		r = txn_commit(&t);
	if (r < 0) {
		if (!t.committed)
			txn_undo(s, &t);
		goto out;
	}
	res->images = n;
	/* What podman may no longer see goes only after the JSON that no
	 * longer names it. */
	prune_hex_dirs(images_fd, v, n, offsetof(struct ais_image, id), -1);
	prune_hex_dirs(overlay_fd, v, n, offsetof(struct ais_image, layer),
		       links_fd);
	prune_mounts(s, run, v, n, res);
out:
	/* The tokens tell podman to reload (after a failure, only if the
	 * AIS changed). */
	if ((r == 0 || t.committed) &&
	    touch_lock(llock, LAYERS_DIR "/layers.lock") < 0 && r == 0)
		r = -EIO;
	if ((r == 0 || t.committed) &&
	    touch_lock(ilock, IMAGES_DIR "/images.lock") < 0 && r == 0)
		r = -EIO;
	txn_free(&t);
	for (size_t i = 0; i < n; i++)
		ais_image_clear(&v[i]);
	free(v);
	cfs_store_images_free(images, count);
	return r;
}

/*
 * Call @fn for every layer of the AIS: its overlay/<layer>/diff link
 * names the mount point RUN/<store image digest> (read, not from the
 * store: the AIS is what podman sees).
 */
typedef int (*ais_layer_fn)(cfs_store *s, const char *mountpoint,
			    const char *digest, const char *idmap,
			    cfs_store_ais_result *res);

static int for_each_layer(cfs_store *s, const char *ais, ais_layer_fn fn,
			  const char *idmap, cfs_store_ais_result *res)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;
	int first = 0;

	if (asprintf(&dir, "%s/" OVERLAY_DIR, ais) < 0)
		return -ENOMEM;
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 :
					 cfs_error_errno(errno, "ais %s", dir);
	while ((de = readdir(d))) {
		char link[CFS_DIGEST_HEX_SIZE + 8], target[PATH_MAX];
		const char *base;
		ssize_t len;
		int r;

		if (!store_is_hex(de->d_name, true))
			continue;
		snprintf(link, sizeof(link), "%.64s/diff", de->d_name);
		len = readlinkat(dirfd(d), link, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		base = strrchr(target, '/');
		if (target[0] != '/' || !base || !store_is_hex(base + 1, true))
			continue;
		res->images++;
		r = fn(s, target, base + 1, idmap, res);
		if (r < 0 && first == 0)
			first = r;
		else if (r < 0)
			cfs_error_clear();
	}
	return first;
}

static int layer_mount(cfs_store *s, const char *mountpoint, const char *digest,
		       const char *idmap, cfs_store_ais_result *res)
{
	_cleanup_free_ char *run = strdup(mountpoint);
	int r;

	if (!run)
		return -ENOMEM;
	if (store_is_mount_root(mountpoint))
		return 0;
	*strrchr(run, '/') = '\0';
	r = mkdir_p(run, 0755);
	if (r == 0)
		r = check_run_dir(run, &res->run_mounted);
	if (r < 0)
		return r;
	if (mkdir(mountpoint, 0755) < 0 && errno != EEXIST)
		return cfs_error_errno(errno, "creating %s", mountpoint);
	r = ais_mount(s, digest, mountpoint, idmap);
	if (r < 0) {
		rmdir(mountpoint);
		return cfs_error_prefix(-r, "ais: mounting %.12s at %s", digest,
					mountpoint);
	}
	res->mounted++;
	return 0;
}

static int layer_unmount(cfs_store *s, const char *mountpoint,
			 const char *digest, const char *idmap,
			 cfs_store_ais_result *res)
{
	(void)idmap;
	_cleanup_free_ char *user = NULL;
	int r;

	if (store_is_mount_root(mountpoint)) {
		r = store_image_user(s, digest, &user);
		if (r > 0) {
			res->busy++;
			return cfs_error(EBUSY,
					 "%s: in use by a container (overlay "
					 "at %s)",
					 mountpoint, user);
		}
		r = cfs_store_umount(s, mountpoint, 0);
		if (r < 0) {
			res->busy += r == -EBUSY;
			return r;
		}
		res->unmounted++;
	}
	/* No mount point left: podman finds the layer's link dangling and
	 * fails, instead of running on an empty directory. */
	if (rmdir(mountpoint) < 0 && errno != ENOENT)
		return cfs_error_errno(errno, "removing %s", mountpoint);
	return 0;
}

/* mount-all and unmount-all: @fn on every layer of the AIS. */
static int ais_all(cfs_store *s, const cfs_store_ais_options *opts,
		   cfs_store_ais_result *res, ais_layer_fn fn)
{
	_cleanup_free_ char *ais = NULL, *run = NULL;
	cfs_store_ais_result dummy = CFS_STORE_AIS_RESULT_INIT;
	int r;

	r = ais_begin(s, &opts, &res, &dummy, &ais, &run);
	if (r < 0)
		return r;
	return for_each_layer(s, ais, fn,
			      opts->version >= 2 ? opts->idmap : NULL, res);
}

int cfs_store_ais_mount_all(cfs_store *s, const cfs_store_ais_options *opts,
			    cfs_store_ais_result *res)
{
	return ais_all(s, opts, res, layer_mount);
}

int cfs_store_ais_unmount_all(cfs_store *s, const cfs_store_ais_options *opts,
			      cfs_store_ais_result *res)
{
	return ais_all(s, opts, res, layer_unmount);
}
