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
 * Ids: the image id is the SHA-256 of the config bytes written (podman's
 * own rule: image id = config digest). The store keeps the config as
 * parsed JSON, so these bytes, and the id, differ from the registry's
 * config digest, and the same image pulled into podman's own store stays
 * a separate image. The layer id is the SHA-256 of "cfs-layer:" and the
 * store's image digest: stable, and no registry layer's diff-id can be
 * the hash of that text.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stddef.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "store/store-internal.h"

CFS_DEFINE_CLEANUP(json_object *, json_object_put)
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

struct ais_image {
	const cfs_store_image *img;
	char id[CFS_DIGEST_HEX_SIZE + 1]; /* config digest hex */
	char layer[CFS_DIGEST_HEX_SIZE + 1];
	char short_name[SHORT_NAME_LEN + 1];
	char manifest_digest[7 + CFS_DIGEST_HEX_SIZE + 1];
	char *manifest;
	char *mountpoint;
};

static int sha256_hex(const void *data, size_t len,
		      char hex[CFS_DIGEST_HEX_SIZE + 1], uint8_t *raw)
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1 ||
	    n != CFS_DIGEST_SIZE)
		return cfs_error(EIO, "sha256 failed");
	for (size_t i = 0; i < CFS_DIGEST_SIZE; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	if (raw)
		memcpy(raw, md, CFS_DIGEST_SIZE);
	return 0;
}

static bool is_mount_root(const char *path)
{
	struct statx stx;

	if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS,
		  &stx) < 0)
		return false;
	return (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
	       (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
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

/* Write @len bytes as @dirfd/@name atomically (temporary + rename). */
static int write_file_at(int dirfd, const char *where, const char *name,
			 const void *data, size_t len)
{
	struct cfs_atomic_file af = { .fd = -1 };
	int r;

	r = cfs_atomic_open(&af, dirfd, 0644);
	if (r == 0)
		r = cfs_write_all(af.fd, data, len);
	if (r == 0 && fsync(af.fd) < 0)
		r = -errno;
	if (r == 0)
		r = cfs_atomic_commit(&af, name, true);
	cfs_atomic_abort(&af);
	if (r < 0)
		return cfs_error_errno(-r, "ais %s/%s", where, name);
	return 0;
}

/* Make @dirfd/@name a symlink to @target, replacing what is there. */
static int symlink_at(int dirfd, const char *where, const char *name,
		      const char *target)
{
	char tmp[NAME_MAX + 1], cur[PATH_MAX];
	ssize_t n = readlinkat(dirfd, name, cur, sizeof(cur) - 1);

	if (n >= 0) {
		cur[n] = '\0';
		if (strcmp(cur, target) == 0)
			return 0;
	}
	snprintf(tmp, sizeof(tmp), ".tmp-%d-%.32s", (int)getpid(), name);
	unlinkat(dirfd, tmp, 0);
	if (symlinkat(target, dirfd, tmp) < 0)
		return cfs_error_errno(errno, "ais %s/%s", where, tmp);
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		int e = errno;

		unlinkat(dirfd, tmp, 0);
		return cfs_error_errno(e, "ais %s/%s", where, name);
	}
	return 0;
}

/* Open (creating) @dir/@name and take its fcntl write lock, waiting. */
static int lock_file(const char *dir, const char *name)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	_cleanup_free_ char *path = NULL;
	int fd;

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
	return fd;
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

static int ais_image_prepare(struct ais_image *a, const cfs_store_image *img,
			     const char *run_dir)
{
	_cleanup_(json_object_putp) json_object *m = json_object_new_object();
	json_object *cfg = json_object_new_object();
	char seed[16 + CFS_DIGEST_HEX_SIZE];
	uint8_t raw[CFS_DIGEST_SIZE];
	const char *text;
	int r;

	a->img = img;
	if (!m || !cfg) {
		json_object_put(cfg);
		return -ENOMEM;
	}
	r = sha256_hex(img->config, strlen(img->config), a->id, NULL);
	if (r < 0) {
		json_object_put(cfg);
		return r;
	}
	snprintf(seed, sizeof(seed), "cfs-layer:%s", img->digest);
	r = sha256_hex(seed, strlen(seed), a->layer, raw);
	if (r < 0) {
		json_object_put(cfg);
		return r;
	}
	base32_short(raw, a->short_name);

	/* A manifest of the config alone: podman reads it for inspect and
	 * checks it against its digest; there is no layer blob to name. */
	json_object_object_add(m, "schemaVersion", json_object_new_int(2));
	json_object_object_add(
		m, "mediaType",
		json_object_new_string(
			"application/vnd.oci.image.manifest.v1+json"));
	json_object_object_add(
		cfg, "mediaType",
		json_object_new_string(
			"application/vnd.oci.image.config.v1+json"));
	{
		char d[7 + CFS_DIGEST_HEX_SIZE + 1];

		snprintf(d, sizeof(d), "sha256:%s", a->id);
		json_object_object_add(cfg, "digest",
				       json_object_new_string(d));
	}
	json_object_object_add(
		cfg, "size",
		json_object_new_int64((int64_t)strlen(img->config)));
	json_object_object_add(m, "config", cfg);
	json_object_object_add(m, "layers", json_object_new_array());
	text = json_object_to_json_string_ext(
		m, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	a->manifest = strdup(text);
	if (!a->manifest)
		return -ENOMEM;
	memcpy(a->manifest_digest, "sha256:", 7);
	r = sha256_hex(a->manifest, strlen(a->manifest), a->manifest_digest + 7,
		       NULL);
	if (r < 0)
		return r;
	if (asprintf(&a->mountpoint, "%s/%s", run_dir, img->digest) < 0) {
		a->mountpoint = NULL;
		return -ENOMEM;
	}
	return 0;
}

static void ais_image_clear(struct ais_image *a)
{
	free(a->manifest);
	free(a->mountpoint);
	memset(a, 0, sizeof(*a));
}

/* Mount the image read-only at its mount point unless it is there. */
static int ais_image_mount(cfs_store *s, struct ais_image *a, bool *mounted)
{
	int r;

	*mounted = false;
	if (is_mount_root(a->mountpoint))
		return 0;
	if (mkdir(a->mountpoint, 0755) < 0 && errno != EEXIST)
		return cfs_error_errno(errno, "creating %s", a->mountpoint);
	r = cfs_store_mount(s, a->img->digest, a->mountpoint, NULL);
	if (r < 0) {
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
	char key[7 + CFS_DIGEST_HEX_SIZE + 1], when[32];

	if (!j || !names || !bd_names || !sizes || !digests) {
		json_object_put(j);
		json_object_put(names);
		json_object_put(bd_names);
		json_object_put(sizes);
		json_object_put(digests);
		return NULL;
	}
	for (size_t i = 0; i < a->img->n_names; i++) {
		char *n = podman_name(a->img->names[i]);

		if (n)
			json_object_array_add(names, json_object_new_string(n));
		free(n);
	}
	snprintf(key, sizeof(key), "sha256:%s", a->id);
	rfc3339(a->img->created, when);
	json_object_object_add(j, "id", json_object_new_string(a->id));
	json_object_object_add(j, "digest",
			       json_object_new_string(a->manifest_digest));
	json_object_object_add(j, "names", names);
	json_object_object_add(j, "layer", json_object_new_string(a->layer));
	json_object_array_add(bd_names, json_object_new_string(key));
	json_object_array_add(bd_names, json_object_new_string("manifest"));
	json_object_object_add(j, "big-data-names", bd_names);
	json_object_object_add(
		sizes, key,
		json_object_new_int64((int64_t)strlen(a->img->config)));
	json_object_object_add(
		sizes, "manifest",
		json_object_new_int64((int64_t)strlen(a->manifest)));
	json_object_object_add(j, "big-data-sizes", sizes);
	json_object_object_add(digests, key, json_object_new_string(key));
	json_object_object_add(digests, "manifest",
			       json_object_new_string(a->manifest_digest));
	json_object_object_add(j, "big-data-digests", digests);
	json_object_object_add(j, "created", json_object_new_string(when));
	return j;
}

static json_object *layer_json(const struct ais_image *a)
{
	json_object *j = json_object_new_object();
	char diff[7 + CFS_DIGEST_HEX_SIZE + 1], when[32];

	if (!j)
		return NULL;
	/* No tar stream of the flattened tree exists to hash; podman only
	 * needs a digest here, and the layer id is a unique one. */
	snprintf(diff, sizeof(diff), "sha256:%s", a->layer);
	rfc3339(a->img->created, when);
	json_object_object_add(j, "id", json_object_new_string(a->layer));
	json_object_object_add(j, "created", json_object_new_string(when));
	json_object_object_add(j, "diff-digest", json_object_new_string(diff));
	json_object_object_add(
		j, "diff-size",
		json_object_new_int64((int64_t)a->img->object_bytes));
	return j;
}

static int write_json_at(int dirfd, const char *where, const char *name,
			 json_object *j)
{
	const char *text = json_object_to_json_string_ext(
		j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

	return write_file_at(dirfd, where, name, text, strlen(text));
}

/* The image's big-data files and its layer directory. */
static int ais_image_write(int images_fd, int overlay_fd,
			   const struct ais_image *a)
{
	char key[7 + CFS_DIGEST_HEX_SIZE + 1];
	char where[sizeof(OVERLAY_DIR) + CFS_DIGEST_HEX_SIZE + 16];
	char fname[2 + 4 * sizeof(key)];
	_cleanup_close_ int ifd = -1, lfd = -1, links = -1;
	int r;

	if (mkdirat(images_fd, a->id, 0755) < 0 && errno != EEXIST)
		return cfs_error_errno(errno, "ais " IMAGES_DIR "/%s", a->id);
	ifd = openat(images_fd, a->id,
		     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (ifd < 0)
		return cfs_error_errno(errno, "ais " IMAGES_DIR "/%s", a->id);
	snprintf(where, sizeof(where), IMAGES_DIR "/%s", a->id);
	snprintf(key, sizeof(key), "sha256:%s", a->id);
	fname[0] = '=';
	EVP_EncodeBlock((unsigned char *)fname + 1, (unsigned char *)key,
			(int)strlen(key));
	r = write_file_at(ifd, where, fname, a->img->config,
			  strlen(a->img->config));
	if (r == 0)
		r = write_file_at(ifd, where, "manifest", a->manifest,
				  strlen(a->manifest));
	if (r < 0)
		return r;

	if (mkdirat(overlay_fd, a->layer, 0755) < 0 && errno != EEXIST)
		return cfs_error_errno(errno, "ais " OVERLAY_DIR "/%s",
				       a->layer);
	lfd = openat(overlay_fd, a->layer,
		     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (lfd < 0)
		return cfs_error_errno(errno, "ais " OVERLAY_DIR "/%s",
				       a->layer);
	snprintf(where, sizeof(where), OVERLAY_DIR "/%s", a->layer);
	r = write_file_at(lfd, where, "link", a->short_name,
			  strlen(a->short_name));
	/* The driver stats diff/ when it creates a container on the layer;
	 * the mount itself goes through l/<short>. */
	if (r == 0)
		r = symlink_at(lfd, where, "diff", a->mountpoint);
	if (r < 0)
		return r;
	links = openat(overlay_fd, "l",
		       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (links < 0)
		return cfs_error_errno(errno, "ais " LINKS_DIR);
	return symlink_at(links, LINKS_DIR, a->short_name, a->mountpoint);
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
 * mounts this store recorded are touched (RUN may be shared). */
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
			if (is_mount_root(path))
				res->busy++;
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

int cfs_store_ais_sync(cfs_store *s, const cfs_store_ais_options *opts,
		       cfs_store_ais_result *res)
{
	static const cfs_store_ais_options defaults =
		CFS_STORE_AIS_OPTIONS_INIT;
	_cleanup_free_ char *ais = NULL, *run = NULL;
	_cleanup_close_ int images_fd = -1, layers_fd = -1, overlay_fd = -1;
	_cleanup_close_ int links_fd = -1, ilock = -1, llock = -1;
	_cleanup_(json_object_putp) json_object *ij = NULL, *lj = NULL;
	cfs_store_ais_result dummy;
	cfs_store_image *images = NULL;
	struct ais_image *v = NULL;
	size_t count = 0, n = 0;
	int r;

	if (!opts)
		opts = &defaults;
	if (!res)
		res = &dummy;
	memset(res, 0, sizeof(*res));
	if (opts->version != CFS_STORE_AIS_OPTIONS_VERSION || opts->flags)
		return cfs_error(EINVAL, "invalid ais options");
	if (opts->ais_dir)
		ais = realpath(opts->ais_dir, NULL);
	else if (asprintf(&ais, "%s/" AIS_DIR, s->root) < 0)
		ais = NULL;
	if (!ais && opts->ais_dir && errno == ENOENT) {
		r = mkdir_p(opts->ais_dir, 0755);
		if (r < 0)
			return r;
		ais = realpath(opts->ais_dir, NULL);
	}
	if (!ais)
		return cfs_error_errno(errno, "ais %s",
				       opts->ais_dir ? opts->ais_dir : AIS_DIR);
	r = mkdir_p(ais, 0755);
	if (r == 0)
		r = mkdir_p(opts->run_dir ? opts->run_dir :
					    CFS_STORE_AIS_DEFAULT_RUN_DIR,
			    0755);
	if (r < 0)
		return r;
	run = realpath(opts->run_dir ? opts->run_dir :
				       CFS_STORE_AIS_DEFAULT_RUN_DIR,
		       NULL);
	if (!run)
		return cfs_error_errno(errno, "run directory");

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

	r = cfs_store_list(s, &images, &count);
	if (r < 0)
		return r;
	v = calloc(count ? count : 1, sizeof(*v));
	ij = json_object_new_array();
	lj = json_object_new_array();
	if (!v || !ij || !lj) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < count; i++) {
		const cfs_store_image *img = &images[i];
		bool mounted;

		/* Podman needs a config; dir: and dump: imports have none. */
		if (!img->complete || !img->n_names || !img->config) {
			res->skipped += img->complete && img->n_names;
			continue;
		}
		r = ais_image_prepare(&v[n], img, run);
		if (r == 0)
			r = ais_image_mount(s, &v[n], &mounted);
		n++;
		if (r < 0)
			goto out;
		res->mounted += mounted;
		r = ais_image_write(images_fd, overlay_fd, &v[n - 1]);
		if (r < 0)
			goto out;
		json_object_array_add(ij, image_json(&v[n - 1]));
		json_object_array_add(lj, layer_json(&v[n - 1]));
	}
	res->images = n;
	r = write_json_at(layers_fd, LAYERS_DIR, "layers.json", lj);
	if (r == 0)
		r = write_json_at(images_fd, IMAGES_DIR, "images.json", ij);
	if (r < 0)
		goto out;
	/* What podman may no longer see goes only after the JSON that no
	 * longer names it. */
	prune_hex_dirs(images_fd, v, n, offsetof(struct ais_image, id), -1);
	prune_hex_dirs(overlay_fd, v, n, offsetof(struct ais_image, layer),
		       links_fd);
	prune_mounts(s, run, v, n, res);
out:
	/* The tokens tell podman to reload, also after a partial update. */
	if (touch_lock(llock, LAYERS_DIR "/layers.lock") < 0 && r == 0)
		r = -EIO;
	if (touch_lock(ilock, IMAGES_DIR "/images.lock") < 0 && r == 0)
		r = -EIO;
	for (size_t i = 0; i < n; i++)
		ais_image_clear(&v[i]);
	free(v);
	cfs_store_images_free(images, count);
	return r;
}
