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
#include "common/digest.h"
#include "common/error.h"
#include "common/json.h"
#include "common/sign.h"
#include "common/util.h"
#include "convert/chunked.h"
#include "convert/convert-internal.h"
#include "convert/layer.h"
#include "convert/layout.h"
#include "convert/oci.h"

/* The zstd level of the layers CFS_SEAL_ZSTD_CHUNKED writes: the one
 * containers/image writes zstd:chunked with by default. */
#define CHUNKED_LEVEL 10
#define MT_OCI_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"

void cfs_seal_result_clear(cfs_seal_result *res)
{
	if (!res)
		return;
	free(res->tag);
	free(res->layers);
	cfs_result_zero(res, sizeof(*res));
}

/* A signature of one of the spec's digests, base64 as in the manifest. */
struct seal_sig {
	char *b64;
};

/* The annotations object of @o, made if missing. */
static json_object *annotations_of(json_object *o)
{
	json_object *ann;

	if (json_object_object_get_ex(o, "annotations", &ann) &&
	    json_object_is_type(ann, json_type_object))
		return ann;
	ann = json_object_new_object();
	if (ann)
		json_object_object_add(o, "annotations", ann);
	return ann;
}

/* @key = @hex in @ann, and @key.sig = base64(@sig) if there is one
 * (else any old one goes: it signed another digest). */
static int add_spec_key(json_object *ann, const char *key, const char *hex,
			const struct seal_sig *sig)
{
	char sig_key[96];

	snprintf(sig_key, sizeof(sig_key), "%s" CFS_SPEC_SIG_SUFFIX, key);
	json_object_object_add(ann, key, json_object_new_string(hex));
	json_object_object_del(ann, sig_key);
	if (sig->b64)
		json_object_object_add(ann, sig_key,
				       json_object_new_string(sig->b64));
	return 0;
}

/* Layer descriptor @l for the zstd:chunked blob @w instead of its own. */
static int chunked_descriptor(json_object *l,
			      const struct cfs_chunked_written *w)
{
	char digest[CFS_DIGEST_STR_MAX];
	json_object *ann = annotations_of(l);

	if (!ann)
		return -ENOMEM;
	cfs_sha256_str(w->digest, digest);
	json_object_object_add(l, "mediaType",
			       json_object_new_string(MT_OCI_LAYER_ZSTD));
	json_object_object_add(l, "digest", json_object_new_string(digest));
	json_object_object_add(l, "size",
			       json_object_new_int64((int64_t)w->size));
	/* What an earlier seal wrote goes first, so that its keys come in
	 * the same order: sealing again gives the same manifest. */
	json_object_object_del(ann, CFS_ANNOTATION_LAYER);
	json_object_object_del(ann, CFS_ANNOTATION_MERGED);
	return cfs_chunked_annotate(ann, w);
}

/* The sealed manifest: @raw with the annotations of @res added, and the
 * layer descriptors of the zstd:chunked blobs @chunked (if not NULL). */
static int sealed_manifest(const char *source, const struct cfs_oci_image *img,
			   const cfs_seal_result *res,
			   const struct cfs_chunked_written *chunked,
			   const struct seal_sig sigs[2], char **text_out)
{
	_cleanup_(json_object_putp) json_object *m = NULL;
	json_object *layers, *v, *ann, *cfg;
	const char *mt = NULL;
	int r;

	r = cfs_json_parse((const char *)img->manifest, img->manifest_len, &m);
	if (r < 0)
		return cfs_error_prefix(-r, "%s: manifest %s", source,
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
		json_object *l = json_object_array_get_idx(layers, i);

		if (chunked && chunked_descriptor(l, &chunked[i]) < 0)
			return -ENOMEM;
		if (!(ann = annotations_of(l)))
			return -ENOMEM;
		json_object_object_add(
			ann, CFS_ANNOTATION_LAYER,
			json_object_new_string(res->layers[i].composefs));
		if (i + 1 == res->n_layers)
			json_object_object_add(
				ann, CFS_ANNOTATION_MERGED,
				json_object_new_string(res->merged));
	}
	if (res->canonical[0]) {
		if (!json_object_object_get_ex(m, "config", &cfg) ||
		    !(ann = annotations_of(cfg)))
			return -ENOMEM;
		add_spec_key(ann, CFS_SPEC_CONFIG, res->config_verity,
			     &sigs[1]);
		if (!(ann = annotations_of(m)))
			return -ENOMEM;
		add_spec_key(ann, CFS_SPEC_MERGED, res->canonical, &sigs[0]);
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
	_cleanup_free_ char *tag_copy = NULL;
	json_object *manifests, *entry = NULL, *v;
	const char *tag = res->tag, *text;
	int r;

	r = cfs_layout_read_index(source, dirfd, &index, &manifests);
	if (r < 0)
		return r;
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
	r = cfs_layout_write_file(dirfd, "index.json", text, strlen(text),
				  true);
	if (r < 0)
		return cfs_error_errno(-r, "%s: writing index.json", source);
	return 0;
}

/* Sign @hex with the key of @opts, into @sig. */
static int sign_hex(const char *source, const char *role, const char *hex,
		    const cfs_seal_options *opts, struct seal_sig *sig)
{
	_cleanup_free_ uint8_t *der = NULL;
	uint8_t d[CFS_DIGEST_SIZE];
	size_t len = 0;
	int r;

	if (cfs_digest_from_hex(d, hex) < 0)
		return -EINVAL;
	r = cfs_sign_digest(opts->sign_key, opts->sign_cert, d, &der, &len);
	if (r < 0)
		return cfs_error_prefix(-r, "%s: signing the %s digest", source,
					role);
	sig->b64 = cfs_base64_encode(der, len);
	return sig->b64 ? 0 : -ENOMEM;
}

/*
 * The spec's digests of the image converted to @root (which this makes
 * canonical): the canonical image and the config, and their signatures
 * when @opts has a key. An image without a canonical tree keeps only
 * the legacy keys, unless it is to be signed.
 */
static int spec_digests(const char *source, const struct cfs_oci_image *img,
			cfs_inode *root, const cfs_seal_options *opts,
			cfs_seal_result *res, struct seal_sig sigs[2])
{
	static const cfs_write_options canonical = CFS_WRITE_OPTIONS_CANONICAL;
	uint8_t d[CFS_DIGEST_SIZE];
	bool sign = opts->version >= 2 && opts->sign_key;
	int r;

	r = cfs_verity_digest_buffer(img->config, img->config_len, d);
	if (r < 0)
		return cfs_error_prefix(-r, "%s: config", source);
	cfs_digest_to_hex(d, res->config_verity);
	r = cfs_tree_canonicalize(root);
	if (r < 0 && !sign) {
		/* Not an error: the legacy keys still seal it. */
		cfs_error_clear();
		return 0;
	}
	if (r == 0)
		r = cfs_image_digest(root, &canonical, d);
	if (r < 0)
		return cfs_error_prefix(-r, "%s", source);
	cfs_digest_to_hex(d, res->canonical);
	if (!sign)
		return 0;
	r = sign_hex(source, "merged", res->canonical, opts, &sigs[0]);
	if (r == 0)
		r = sign_hex(source, "config", res->config_verity, opts,
			     &sigs[1]);
	res->sig_written = r == 0;
	return r;
}

static ssize_t read_layer(void *opaque, const void **buf)
{
	return cfs_layer_read_raw(opaque, buf);
}

/* Layer @i of @img written as zstd:chunked into @af (a new file of the
 * layout's blobs, named by the caller), what it is into @w. Its blob is
 * read again (the conversion checked it) and checked again: the blob's
 * digest and the tar's diff_id. */
static int chunked_layer(const char *source, struct cfs_oci_image *img,
			 size_t i, unsigned int threads,
			 struct cfs_atomic_file *af,
			 struct cfs_chunked_written *w)
{
	const struct cfs_oci_layer *l = &img->layers[i];
	const struct cfs_chunked_params params = { .level = CHUNKED_LEVEL,
						   .threads = threads };
	struct cfs_layer_stream *ls = NULL;
	struct cfs_layer_digests d;
	struct cfs_blob blob;
	char what[256];
	uint8_t want[32], diff_id[32];
	int r;

	snprintf(what, sizeof(what), "%s: layer %s", source, l->digest);
	r = cfs_oci_layer_blob(img, i, &blob);
	if (r == 0)
		r = cfs_layer_start(&ls, &blob, l->compression, what, true);
	if (r == 0)
		r = cfs_chunked_write(read_layer, ls, af->fd, &params, what, w);
	if (r == 0)
		r = cfs_layer_finish(ls, &d);
	if (r == 0 && (cfs_parse_sha256(l->digest, want) < 0 ||
		       cfs_parse_sha256(l->diff_id, diff_id) < 0 ||
		       memcmp(d.compressed, want, 32) != 0 ||
		       memcmp(d.uncompressed, diff_id, 32) != 0))
		r = cfs_error(EBADMSG, "%s: changed since it was converted",
			      what);
	if (r == 0 && fsync(af->fd) < 0)
		r = cfs_error_errno(errno, "%s: fsync", what);
	cfs_layer_close(ls);
	return r;
}

/*
 * Every layer of @img as zstd:chunked into @w, the blobs named in @blobs
 * once all of them are written: a layer the format cannot describe
 * leaves the layout as it was.
 */
static int chunked_layers(const char *source, struct cfs_oci_image *img,
			  int blobs, unsigned int threads,
			  struct cfs_chunked_written *w)
{
	struct cfs_atomic_file *af = calloc(img->n_layers, sizeof(*af));
	char hex[CFS_DIGEST_HEX_SIZE + 1];
	int r = af ? 0 : -ENOMEM;

	for (size_t i = 0; af && i < img->n_layers; i++)
		af[i].fd = -1;
	for (size_t i = 0; r == 0 && i < img->n_layers; i++) {
		r = cfs_atomic_open(&af[i], blobs, 0644);
		if (r < 0)
			r = cfs_error_errno(-r, "%s: a new blob", source);
		else
			r = chunked_layer(source, img, i, threads, &af[i],
					  &w[i]);
	}
	for (size_t i = 0; r == 0 && i < img->n_layers; i++) {
		cfs_digest_to_hex(w[i].digest, hex);
		r = cfs_atomic_commit(&af[i], hex, false);
		if (r == -EEXIST) /* the same bytes: sealed before */
			r = 0;
		else if (r < 0)
			r = cfs_error_errno(-r, "%s: writing blob sha256:%s",
					    source, hex);
	}
	for (size_t i = 0; af && i < img->n_layers; i++)
		cfs_atomic_abort(&af[i]);
	free(af);
	return r;
}

static int do_seal(const char *source, const cfs_seal_options *opts,
		   cfs_seal_result *res)
{
	_cleanup_free_ struct cfs_chunked_written *chunked = NULL;
	cfs_convert_options copts = CFS_CONVERT_OPTIONS_INIT;
	cfs_convert_stats stats = CFS_CONVERT_STATS_INIT;
	struct cfs_oci_image *img = NULL;
	_cleanup_free_ char *path = NULL, *ref = NULL, *text = NULL;
	_cleanup_close_ int dirfd = -1, blobs = -1;
	uint8_t merged[CFS_DIGEST_SIZE];
	struct seal_sig sigs[2] = { { NULL }, { NULL } };
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

	/* Opened once: the manifest converted is the manifest sealed. */
	copts.flags = CFS_CONVERT_LAYER_DIGESTS;
	copts.platform = opts->platform;
	copts.threads = opts->threads;
	r = cfs_oci_open(&img, source, opts->platform);
	if (r == 0)
		r = cfs_convert_oci_objs(&root, img, &copts, NULL, NULL, NULL,
					 &stats);
	if (r == 0)
		r = cfs_image_digest(root, NULL, merged);
	if (r == 0)
		r = spec_digests(source, img, root, opts, res, sigs);
	cfs_inode_unref(root);
	if (r < 0)
		goto out;
	if (!img->manifest || !stats.manifest_digest[0] ||
	    stats.n_layers == 0) {
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

	dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	blobs = dirfd < 0 ? -1 :
			    openat(dirfd, "blobs/sha256",
				   O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (blobs < 0) {
		r = cfs_error_errno(errno, "%s: blobs/sha256", source);
		goto out;
	}
	if (opts->flags & CFS_SEAL_ZSTD_CHUNKED) {
		chunked = calloc(img->n_layers, sizeof(*chunked));
		if (!chunked || img->n_layers != res->n_layers) {
			r = chunked ? cfs_error(EINVAL, "%s: layers changed",
						source) :
				      -ENOMEM;
			goto out;
		}
		r = chunked_layers(source, img, blobs, opts->threads, chunked);
		for (size_t i = 0; r == 0 && i < res->n_layers; i++)
			cfs_sha256_str(chunked[i].digest,
				       res->layers[i].digest);
		if (r < 0)
			goto out;
	}
	r = sealed_manifest(source, img, res, chunked, sigs, &text);
	if (r == 0)
		r = cfs_sha256(text, strlen(text), NULL, res->manifest_digest);
	if (r < 0)
		goto out;
	res->manifest_size = strlen(text);

	r = cfs_layout_write_file(blobs, res->manifest_digest + 7, text,
				  strlen(text), false);
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
	free(sigs[0].b64);
	free(sigs[1].b64);
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
	r = cfs_result_check(res, CFS_SEAL_RESULT_VERSION, source);
	if (r < 0)
		return r;
	cfs_result_zero(res, sizeof(*res));
	if (!CFS_OPTIONS_VERSION_OK(opts->version, CFS_SEAL_OPTIONS_VERSION) ||
	    (opts->flags & ~CFS_SEAL_ZSTD_CHUNKED))
		return cfs_error(EINVAL, "invalid seal options");
	if (opts->version >= 2 && !opts->sign_key != !opts->sign_cert)
		return cfs_error(EINVAL, "signing needs a key and its "
					 "certificate");
	r = do_seal(source, opts, res);
	if (r < 0)
		cfs_seal_result_clear(res);
	return r;
}
