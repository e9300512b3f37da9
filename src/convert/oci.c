/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * OCI image sources (image-spec image-layout.md, image-index.md,
 * manifest.md, config.md; docker's "docker save" format).
 *
 * All three sources end up in a "store": a layout directory read with
 * openat(), or a tar file scanned once with libarchive whose regular
 * members are then read with pread() at the data offset libarchive
 * reported. Nothing is extracted. JSON documents are read whole (up to
 * CFS_OCI_JSON_MAX), hashed, compared with their descriptor and parsed
 * with json-c in strict mode. Digests are validated before they become
 * paths, so a descriptor can only name "blobs/sha256/<64 hex>".
 */
#include <archive.h>
#include <archive_entry.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cfs/convert.h>
#include <cfs/image.h>

#include "common/cleanup.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/util.h"
#include "convert/oci-internal.h"

/* ---- the source string ------------------------------------------------ */

static const struct {
	const char *prefix;
	enum oci_source_kind kind;
} source_kinds[] = {
	{ "oci:", SRC_OCI },
	{ "oci-archive:", SRC_OCI_ARCHIVE },
	{ "docker-archive:", SRC_DOCKER_ARCHIVE },
};

bool cfs_oci_is_source(const char *source)
{
	for (size_t i = 0; i < CFS_ARRAY_SIZE(source_kinds); i++)
		if (!strncmp(source, source_kinds[i].prefix,
			     strlen(source_kinds[i].prefix)))
			return true;
	return false;
}

/*
 * PATH[:REF]: REF starts after the rightmost ':' whose prefix exists as
 * the right kind of file; else all of it is PATH.
 */
int cfs_oci_split_source(const char *rest, bool want_dir, char **path,
			 char **ref)
{
	size_t len = strlen(rest);

	*path = *ref = NULL;
	for (size_t i = len; i-- > 1;) {
		_cleanup_free_ char *cand = NULL;
		struct stat sb;

		if (rest[i] != ':')
			continue;
		cand = strndup(rest, i);
		if (!cand)
			return -ENOMEM;
		if (stat(cand, &sb) < 0 || S_ISDIR(sb.st_mode) != want_dir)
			continue;
		if (rest[i + 1]) {
			*ref = strdup(rest + i + 1);
			if (!*ref)
				return -ENOMEM;
		}
		*path = TAKE_PTR(cand);
		return 0;
	}
	*path = strdup(rest);
	return *path ? 0 : -ENOMEM;
}

static int open_store(struct oci_ctx *c, enum oci_source_kind kind,
		      const char *path)
{
	struct cfs_oci_store *st = c->st;
	uint8_t magic[6] = { 0 };
	struct stat sb;
	ssize_t n;

	if (kind == SRC_OCI) {
		st->kind = STORE_DIR;
		st->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (st->fd < 0)
			return cfs_error_errno(errno, "%s: %s", c->src, path);
		return 0;
	}
	st->kind = STORE_TAR;
	st->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (st->fd < 0)
		return cfs_error_errno(errno, "%s: %s", c->src, path);
	if (fstat(st->fd, &sb) < 0)
		return cfs_error_errno(errno, "%s: %s", c->src, path);
	/* pread needs a file, not a pipe. */
	if (!S_ISREG(sb.st_mode))
		return cfs_error(EINVAL, "%s: %s is not a regular file", c->src,
				 path);
	st->file_size = (uint64_t)sb.st_size;
	n = pread(st->fd, magic, sizeof(magic), 0);
	if (n < 0)
		return cfs_error_errno(errno, "%s: %s", c->src, path);
	/* Members are read in place, which needs a plain tar. */
	if ((magic[0] == 0x1f && magic[1] == 0x8b) ||
	    (magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f &&
	     magic[3] == 0xfd) ||
	    !memcmp(magic,
		    "\xfd"
		    "7zXZ",
		    6) ||
	    !memcmp(magic, "BZh", 3))
		return cfs_error(EOPNOTSUPP,
				 "%s: compressed archives are not supported; "
				 "decompress it first",
				 c->src);
	return oci_archive_scan(c);
}

int cfs_oci_open(struct cfs_oci_image **out, const char *source,
		 const char *platform)
{
	struct oci_ctx c = { 0 };
	struct cfs_oci_image *img;
	_cleanup_free_ char *path = NULL, *ref = NULL;
	char host[CFS_OCI_PLATFORM_MAX];
	enum oci_source_kind kind = SRC_OCI;
	const char *rest = NULL;
	int r;

	*out = NULL;
	for (size_t i = 0; i < CFS_ARRAY_SIZE(source_kinds); i++) {
		size_t n = strlen(source_kinds[i].prefix);
		if (!strncmp(source, source_kinds[i].prefix, n)) {
			kind = source_kinds[i].kind;
			rest = source + n;
		}
	}
	if (!rest)
		return cfs_error(EINVAL,
				 "%.200s: not an OCI source (oci:, "
				 "oci-archive:, docker-archive:)",
				 source);
	if (strlen(source) > OCI_SOURCE_MAX)
		return cfs_error(ENAMETOOLONG, "%.200s...: source too long",
				 source);
	if (!*rest)
		return cfs_error(EINVAL, "%s: no path", source);

	img = calloc(1, sizeof(*img));
	if (!img)
		return cfs_error(ENOMEM, "%s: out of memory", source);
	img->store = calloc(1, sizeof(*img->store));
	img->source = strdup(source);
	if (!img->store || !img->source) {
		cfs_oci_free(img);
		return cfs_error(ENOMEM, "%s: out of memory", source);
	}
	img->store->fd = -1;
	c.img = img;
	c.st = img->store;
	c.src = img->source;

	if (!platform) {
		cfs_oci_host_platform(host);
		platform = host;
	}
	r = oci_parse_platform(&c, platform);
	if (r < 0)
		goto fail;
	r = cfs_oci_split_source(rest, kind == SRC_OCI, &path, &ref);
	if (r < 0) {
		r = cfs_error(-r, "%s: out of memory", c.src);
		goto fail;
	}
	if (ref && strlen(ref) > OCI_REF_MAX) {
		r = cfs_error(EINVAL, "%s: reference longer than %d bytes",
			      c.src, OCI_REF_MAX);
		goto fail;
	}
	c.ref = ref;
	r = open_store(&c, kind, path);
	if (r < 0)
		goto fail;
	if (kind == SRC_DOCKER_ARCHIVE)
		r = oci_open_docker_archive(&c);
	else
		r = oci_open_layout(&c);
	if (r < 0)
		goto fail;
	/* Only layer lookups need the member index now; keep it. */
	*out = img;
	return 0;
fail:
	cfs_oci_free(img);
	return r;
}

int cfs_oci_open_manifest(struct cfs_oci_image **out, const char *source,
			  const void *manifest, size_t manifest_len,
			  const void *config, size_t config_len)
{
	struct oci_ctx c = { 0 };
	_cleanup_json_ struct json_object *doc = NULL;
	struct cfs_oci_image *img;
	struct oci_target t = { .from = "the source" };
	enum doc_kind kind = DOC_MANIFEST;
	char label[96], path[96];
	int r;

	*out = NULL;
	if (manifest_len > CFS_OCI_JSON_MAX || config_len > CFS_OCI_JSON_MAX)
		return cfs_error(EFBIG, "%s: manifest or config over %d bytes",
				 source, CFS_OCI_JSON_MAX);
	img = calloc(1, sizeof(*img));
	if (!img)
		return cfs_error(ENOMEM, "%s: out of memory", source);
	img->store = calloc(1, sizeof(*img->store));
	img->source = strdup(source);
	img->manifest = malloc(manifest_len + 1);
	if (!img->store || !img->source || !img->manifest)
		goto nomem;
	img->store->fd = -1;
	img->store->kind = STORE_MEM;
	img->store->mem_data = malloc(config_len ? config_len : 1);
	if (!img->store->mem_data)
		goto nomem;
	memcpy(img->store->mem_data, config, config_len);
	img->store->mem_len = config_len;
	memcpy(img->manifest, manifest, manifest_len);
	img->manifest[manifest_len] = '\0';
	img->manifest_len = manifest_len;
	c.img = img;
	c.st = img->store;
	c.src = img->source;

	t.size = (int64_t)manifest_len;
	r = cfs_sha256(manifest, manifest_len, NULL, t.digest);
	if (r < 0) {
		r = cfs_error(EIO, "%s: SHA-256 failed", source);
		goto fail;
	}
	snprintf(label, sizeof(label), "manifest %s", t.digest);
	r = oci_parse_json(&c, label, (const char *)img->manifest, manifest_len,
			   &doc);
	if (r == 0)
		r = oci_doc_kind(&c, doc, &t, label, &kind);
	if (r == 0 && kind != DOC_MANIFEST)
		r = cfs_error(EINVAL, "%s: %s: an index, not an image manifest",
			      source, label);
	if (r < 0)
		goto fail;
	/* The config, where oci_load_manifest() looks for it (its digest and
	 * size are checked against the manifest's descriptor there). */
	{
		struct json_object *cfg, *dg;

		if (json_object_object_get_ex(doc, "config", &cfg) &&
		    json_object_object_get_ex(cfg, "digest", &dg) &&
		    json_object_is_type(dg, json_type_string) &&
		    oci_check_digest(json_object_get_string(dg)) == 0) {
			oci_blob_path(path, sizeof(path),
				      json_object_get_string(dg));
			img->store->mem_name = strdup(path);
			if (!img->store->mem_name)
				goto nomem;
		}
	}
	r = oci_load_manifest(&c, doc, &t, label);
	if (r < 0)
		goto fail;
	*out = img;
	return 0;
nomem:
	r = cfs_error(ENOMEM, "%s: out of memory", source);
fail:
	cfs_oci_free(img);
	return r;
}

void cfs_oci_free(struct cfs_oci_image *img)
{
	struct cfs_oci_store *st;

	if (!img)
		return;
	st = img->store;
	if (st) {
		for (size_t i = 0; i < st->n_layers; i++) {
			if (st->layer_fds && st->layer_fds[i] >= 0)
				close(st->layer_fds[i]);
			if (st->layer_paths)
				free(st->layer_paths[i]);
		}
		free(st->layer_fds);
		free(st->layer_paths);
		free(st->mem_name);
		free(st->mem_data);
		oci_free_members(st);
		if (st->fd >= 0)
			close(st->fd);
		free(st);
	}
	free(img->spec_merged_sig);
	free(img->spec_config_sig);
	free(img->spec_manifest_sig);
	for (size_t i = 0; i < img->n_layers; i++) {
		free(img->layers[i].digest);
		free(img->layers[i].media_type);
		free(img->layers[i].diff_id);
	}
	free(img->layers);
	free(img->config);
	free(img->manifest);
	free(img->config_digest);
	free(img->manifest_digest);
	free(img->source);
	free(img);
}

int cfs_oci_layer_blob(struct cfs_oci_image *img, size_t i,
		       struct cfs_blob *blob)
{
	struct cfs_oci_store *st = img->store;
	struct oci_ctx c = { .img = img, .st = st, .src = img->source };
	const struct oci_member *m;
	char label[CFS_SHA256_STR_SIZE + 32];
	struct stat sb;
	int r;

	assert(i < img->n_layers);
	snprintf(label, sizeof(label), "layer %s", img->layers[i].digest);
	if (st->kind == STORE_MEM)
		return cfs_error(ENOENT, "%s: %s: not in the source",
				 img->source, label);
	if (st->kind == STORE_TAR) {
		r = oci_archive_resolve(&c, label, st->layer_paths[i], &m);
		if (r < 0)
			return r;
		blob->fd = st->fd;
		blob->offset = m->offset;
		blob->length = m->size;
		blob->stream = false;
		return 0;
	}
	if (st->layer_fds[i] < 0) {
		int fd = openat(st->fd, st->layer_paths[i],
				O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			return cfs_error_errno(errno, "%s: %s: %s", img->source,
					       label, st->layer_paths[i]);
		st->layer_fds[i] = fd;
	}
	if (fstat(st->layer_fds[i], &sb) < 0)
		return cfs_error_errno(errno, "%s: %s: %s", img->source, label,
				       st->layer_paths[i]);
	if (!S_ISREG(sb.st_mode))
		return cfs_error(EINVAL, "%s: %s: %s is not a regular file",
				 img->source, label, st->layer_paths[i]);
	blob->fd = st->layer_fds[i];
	blob->offset = 0;
	blob->length = (uint64_t)sb.st_size;
	blob->stream = false;
	return 0;
}
