/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Sealing an OCI image layout: compute the composefs digests of each
 * layer and of the image, and write a manifest that carries them as
 * annotations (include/cfs/seal.h, docs/distribution.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cfs/seal.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "convert/convert-internal.h"
#include "convert/oci.h"

CFS_DEFINE_CLEANUP(json_object *, json_object_put)

#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define ANN_REF_NAME "org.opencontainers.image.ref.name"
/* index.json is small; a bound keeps a damaged one from eating memory. */
#define INDEX_MAX (16 * 1024 * 1024)

void cfs_seal_result_clear(cfs_seal_result *res)
{
	if (!res)
		return;
	free(res->tag);
	free(res->layers);
	memset(res, 0, sizeof(*res));
}

static int sha256_digest(const void *data, size_t len, char out[80])
{
	uint8_t md[EVP_MAX_MD_SIZE];
	char hex[CFS_DIGEST_HEX_SIZE + 1];
	unsigned int n = 0;

	if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1 ||
	    n != CFS_DIGEST_SIZE)
		return cfs_error(EIO, "SHA-256 failed");
	cfs_digest_to_hex(md, hex);
	snprintf(out, 80, "sha256:%s", hex);
	return 0;
}

static int write_discard(void *opaque, const void *data, size_t len)
{
	(void)opaque;
	(void)data;
	(void)len;
	return 0;
}

/* Write @len bytes as @dirfd/@name, atomically, unless it exists. */
static int write_new_file(int dirfd, const char *name, const void *data,
			  size_t len, bool replace)
{
	struct cfs_atomic_file af = { .fd = -1 };
	int r;

	if (!replace && faccessat(dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	r = cfs_atomic_open(&af, dirfd, 0644);
	if (r == 0)
		r = cfs_write_all(af.fd, data, len);
	if (r == 0 && fsync(af.fd) < 0)
		r = -errno;
	if (r == 0) {
		r = cfs_atomic_commit(&af, name, replace);
		if (r == -EEXIST)
			r = 0;
	}
	cfs_atomic_abort(&af);
	return r;
}

static int parse_json_buf(const char *buf, size_t len, json_object **out)
{
	json_tokener *tok = json_tokener_new();

	if (!tok)
		return -ENOMEM;
	*out = json_tokener_parse_ex(tok, buf, (int)len);
	if (*out && json_tokener_get_parse_end(tok) != len) {
		json_object_put(*out);
		*out = NULL;
	}
	json_tokener_free(tok);
	return *out ? 0 : -EINVAL;
}

/* The sealed manifest: @raw with the annotations of @res added to its
 * layer descriptors. */
static int sealed_manifest(const char *source, const struct cfs_oci_image *img,
			   const cfs_seal_result *res, char **text_out)
{
	_cleanup_(json_object_putp) json_object *m = NULL;
	json_object *layers, *v;
	const char *mt = NULL;

	if (parse_json_buf((const char *)img->manifest, img->manifest_len, &m) <
	    0)
		return cfs_error(EINVAL, "%s: manifest %s: not JSON", source,
				 img->manifest_digest);
	if (json_object_object_get_ex(m, "mediaType", &v))
		mt = json_object_get_string(v);
	if (mt && strcmp(mt, MT_OCI_MANIFEST) != 0)
		return cfs_error(EOPNOTSUPP,
				 "%s: manifest %s is %s, which has no "
				 "annotations; convert it to OCI first (skopeo "
				 "copy --format oci)",
				 source, img->manifest_digest, mt);
	if (!json_object_object_get_ex(m, "layers", &layers) ||
	    json_object_array_length(layers) != res->n_layers)
		return cfs_error(EINVAL, "%s: manifest %s: layers changed",
				 source, img->manifest_digest);
	for (size_t i = 0; i < res->n_layers; i++) {
		json_object *l = json_object_array_get_idx(layers, i), *ann;

		if (!json_object_object_get_ex(l, "annotations", &ann)) {
			ann = json_object_new_object();
			if (!ann)
				return -ENOMEM;
			json_object_object_add(l, "annotations", ann);
		}
		json_object_object_add(
			ann, CFS_ANNOTATION_LAYER,
			json_object_new_string(res->layers[i].composefs));
		if (i + 1 == res->n_layers)
			json_object_object_add(
				ann, CFS_ANNOTATION_MERGED,
				json_object_new_string(res->merged));
	}
	*text_out = strdup(json_object_to_json_string_ext(
		m, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	return *text_out ? 0 : -ENOMEM;
}

/* Point @tag (or the source's entry) in index.json at the new manifest. */
static int update_index(const char *source, int dirfd, const char *old_digest,
			const char *ref, cfs_seal_result *res)
{
	_cleanup_(json_object_putp) json_object *index = NULL;
	_cleanup_free_ char *buf = NULL, *tag_copy = NULL;
	_cleanup_close_ int fd = -1;
	json_object *manifests, *entry = NULL, *v;
	const char *tag = res->tag, *text;
	size_t len = 0;
	struct stat st;
	int r;

	fd = openat(dirfd, "index.json", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return cfs_error_errno(errno, "%s: index.json", source);
	if (st.st_size > INDEX_MAX)
		return cfs_error(EFBIG, "%s: index.json is over %d bytes",
				 source, INDEX_MAX);
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	r = cfs_read_full(fd, buf, (size_t)st.st_size, &len);
	if (r < 0)
		return cfs_error_errno(-r, "%s: index.json", source);
	if (parse_json_buf(buf, len, &index) < 0 ||
	    !json_object_object_get_ex(index, "manifests", &manifests) ||
	    !json_object_is_type(manifests, json_type_array))
		return cfs_error(EINVAL, "%s: index.json: no manifests array",
				 source);
	/* The entry of the source manifest, the tagged one preferred. */
	for (size_t i = 0; i < json_object_array_length(manifests); i++) {
		json_object *e = json_object_array_get_idx(manifests, i), *ann;
		const char *name = NULL;

		if (!json_object_object_get_ex(e, "digest", &v) ||
		    strcmp(json_object_get_string(v), old_digest) != 0)
			continue;
		if (json_object_object_get_ex(e, "annotations", &ann) &&
		    json_object_object_get_ex(ann, ANN_REF_NAME, &v))
			name = json_object_get_string(v);
		if (!entry || (ref && name && strcmp(name, ref) == 0))
			entry = e;
	}
	if (!entry)
		return cfs_error(EOPNOTSUPP,
				 "%s: index.json does not list manifest %s "
				 "itself (an image in a nested index cannot "
				 "be sealed yet)",
				 source, old_digest);
	if (!tag) {
		json_object *ann;
		if (json_object_object_get_ex(entry, "annotations", &ann) &&
		    json_object_object_get_ex(ann, ANN_REF_NAME, &v))
			tag = json_object_get_string(v);
	}
	/* A copy: the annotation it may come from is replaced below. */
	if (tag && !(tag_copy = strdup(tag)))
		return -ENOMEM;
	tag = tag_copy;
	/* A tag names one manifest: take it from every other entry. */
	for (size_t i = 0; tag && i < json_object_array_length(manifests);
	     i++) {
		json_object *e = json_object_array_get_idx(manifests, i), *ann;

		if (e != entry &&
		    json_object_object_get_ex(e, "annotations", &ann) &&
		    json_object_object_get_ex(ann, ANN_REF_NAME, &v) &&
		    strcmp(json_object_get_string(v), tag) == 0)
			json_object_object_del(ann, ANN_REF_NAME);
	}
	{
		json_object *ann = NULL;
		const char *name = NULL;

		if (json_object_object_get_ex(entry, "annotations", &ann) &&
		    json_object_object_get_ex(ann, ANN_REF_NAME, &v))
			name = json_object_get_string(v);
		if (tag && name && strcmp(name, tag) != 0) {
			/* Another tag: a new entry, the old one stays. */
			json_object *copy = NULL;
			if (json_object_deep_copy(entry, &copy, NULL) < 0)
				return -ENOMEM;
			json_object_array_add(manifests, copy);
			entry = copy;
			json_object_object_get_ex(entry, "annotations", &ann);
		}
		json_object_object_add(entry, "mediaType",
				       json_object_new_string(MT_OCI_MANIFEST));
		json_object_object_add(
			entry, "digest",
			json_object_new_string(res->manifest_digest));
		json_object_object_add(
			entry, "size",
			json_object_new_int64((int64_t)res->manifest_size));
		if (tag) {
			if (!ann) {
				ann = json_object_new_object();
				if (!ann)
					return -ENOMEM;
				json_object_object_add(entry, "annotations",
						       ann);
			}
			json_object_object_add(ann, ANN_REF_NAME,
					       json_object_new_string(tag));
		}
	}
	if (tag) {
		json_object *ann;
		json_object_object_get_ex(entry, "annotations", &ann);
		json_object_object_get_ex(ann, ANN_REF_NAME, &v);
		free(res->tag);
		res->tag = strdup(json_object_get_string(v));
		if (!res->tag)
			return -ENOMEM;
	}
	text = json_object_to_json_string_ext(
		index, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	r = write_new_file(dirfd, "index.json", text, strlen(text), true);
	if (r < 0)
		return cfs_error_errno(-r, "%s: writing index.json", source);
	return 0;
}

static int do_seal(const char *source, const cfs_seal_options *opts,
		   cfs_seal_result *res)
{
	cfs_convert_options copts = CFS_CONVERT_OPTIONS_INIT;
	cfs_convert_stats stats = { 0 };
	struct cfs_oci_image *img = NULL;
	_cleanup_free_ char *path = NULL, *ref = NULL, *text = NULL;
	_cleanup_close_ int dirfd = -1, blobs = -1;
	uint8_t merged[CFS_DIGEST_SIZE];
	cfs_inode *root = NULL;
	int r;

	if (strncmp(source, "oci:", 4) != 0)
		return cfs_error(EINVAL,
				 "%s: only oci:PATH[:REF] layouts can be "
				 "sealed (the sealed manifest is written into "
				 "the layout)",
				 source);
	r = cfs_oci_split_source(source + 4, true, &path, &ref);
	if (r < 0)
		return r;
	if (opts->tag) {
		free(res->tag);
		res->tag = strdup(opts->tag);
		if (!res->tag)
			return -ENOMEM;
	} else if (ref && strncmp(ref, "sha256:", 7) != 0 && ref[0] != '@') {
		res->tag = strdup(ref);
		if (!res->tag)
			return -ENOMEM;
	}

	copts.flags = CFS_CONVERT_LAYER_DIGESTS;
	copts.platform = opts->platform;
	copts.threads = opts->threads;
	r = cfs_convert_tree_objs(&root, source, &copts, NULL, &stats);
	if (r == 0)
		r = cfs_image_write(root, NULL, write_discard, NULL, merged);
	cfs_inode_unref(root);
	if (r < 0)
		goto out;
	if (!stats.manifest_digest[0] || stats.n_layers == 0) {
		r = cfs_error(EINVAL, "%s: no manifest or no layers to seal",
			      source);
		goto out;
	}
	cfs_digest_to_hex(merged, res->merged);
	snprintf(res->source_manifest_digest,
		 sizeof(res->source_manifest_digest), "%s",
		 stats.manifest_digest);
	snprintf(res->config_digest, sizeof(res->config_digest), "%s",
		 stats.config_digest);
	res->layers = calloc(stats.n_layers, sizeof(*res->layers));
	if (!res->layers) {
		r = -ENOMEM;
		goto out;
	}
	res->n_layers = stats.n_layers;
	for (size_t i = 0; i < stats.n_layers; i++) {
		snprintf(res->layers[i].digest, sizeof(res->layers[i].digest),
			 "%s", stats.layers[i].digest);
		cfs_digest_to_hex(stats.layers[i].composefs_digest,
				  res->layers[i].composefs);
	}

	/* The manifest's own bytes, as converted. */
	r = cfs_oci_open(&img, source, opts->platform);
	if (r < 0)
		goto out;
	if (!img->manifest ||
	    strcmp(img->manifest_digest, stats.manifest_digest) != 0) {
		r = cfs_error(EAGAIN, "%s: changed while sealing", source);
		goto out;
	}
	r = sealed_manifest(source, img, res, &text);
	if (r == 0)
		r = sha256_digest(text, strlen(text), res->manifest_digest);
	if (r < 0)
		goto out;
	res->manifest_size = strlen(text);

	dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	blobs = dirfd < 0 ? -1 :
			    openat(dirfd, "blobs/sha256",
				   O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (blobs < 0) {
		r = cfs_error_errno(errno, "%s: blobs/sha256", source);
		goto out;
	}
	r = write_new_file(blobs, res->manifest_digest + 7, text, strlen(text),
			   false);
	if (r == 0 && fsync(blobs) < 0)
		r = -errno;
	if (r < 0) {
		r = cfs_error_errno(-r, "%s: writing manifest %s", source,
				    res->manifest_digest);
		goto out;
	}
	r = update_index(source, dirfd, stats.manifest_digest, ref, res);
	if (r == 0 && fsync(dirfd) < 0)
		r = cfs_error_errno(errno, "%s: fsync", source);
out:
	cfs_oci_free(img);
	cfs_convert_stats_clear(&stats);
	return r;
}

int cfs_seal(const char *source, const cfs_seal_options *opts,
	     cfs_seal_result *res)
{
	static const cfs_seal_options defaults = CFS_SEAL_OPTIONS_INIT;
	int r;

	if (!opts)
		opts = &defaults;
	memset(res, 0, sizeof(*res));
	if (opts->version != CFS_SEAL_OPTIONS_VERSION || opts->flags)
		return cfs_error(EINVAL, "invalid seal options");
	r = do_seal(source, opts, res);
	if (r < 0)
		cfs_seal_result_clear(res);
	return r;
}
