/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Composefs artifacts (include/cfs/seal.h, docs/formats.md): writing them
 * beside an image in an OCI layout, and finding them there.
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
#include "convert/artifact.h"
#include "convert/convert-internal.h"
#include "convert/layout.h"
#include "convert/oci.h"

struct hashing_writer {
	int fd;
	EVP_MD_CTX *md;
	uint64_t size;
};

static int hashing_write(void *opaque, const void *data, size_t len)
{
	struct hashing_writer *w = opaque;
	int r = cfs_write_all(w->fd, data, len);

	if (r < 0)
		return r;
	if (EVP_DigestUpdate(w->md, data, len) != 1)
		return -EIO;
	w->size += len;
	return 0;
}

/* The referrers index under @tag ("sha256-<subject hex>"), as a
 * registry without the referrers API keeps it: @d (a descriptor with
 * its artifactType, taken) replaces the entries of its artifact type,
 * and the other artifacts of the subject stay. */
static int referrers_put(const char *where, int dirfd, int blobs,
			 const char *tag, json_object *d)
{
	_cleanup_(json_object_putp) json_object *idx = NULL, *old = NULL;
	_cleanup_free_ uint8_t *buf = NULL;
	const char *type = cfs_json_str(d, "artifactType"), *text;
	json_object *list, *olist;
	char digest[80];
	size_t len = 0;
	int r;

	idx = json_object_new_object();
	list = json_object_new_array();
	if (!idx || !list) {
		json_object_put(list);
		json_object_put(d);
		return -ENOMEM;
	}
	json_object_object_add(idx, "schemaVersion", json_object_new_int(2));
	json_object_object_add(idx, "mediaType",
			       json_object_new_string(MT_OCI_INDEX));
	json_object_object_add(idx, "manifests", list);
	r = cfs_layout_tagged(where, dirfd, tag, digest);
	if (r == 0)
		r = cfs_layout_read_blob(where, dirfd, digest, -1, INDEX_MAX,
					 &buf, &len);
	if (r == 0 && cfs_json_parse((char *)buf, len, &old) == 0 &&
	    json_object_object_get_ex(old, "manifests", &olist) &&
	    json_object_is_type(olist, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(olist); i++) {
			json_object *e = json_object_array_get_idx(olist, i);
			const char *t = cfs_json_str(e, "artifactType");

			if (t && type && strcmp(t, type) != 0)
				json_object_array_add(list, json_object_get(e));
		}
	}
	if (r < 0 && r != -ENOENT) {
		json_object_put(d);
		return r;
	}
	cfs_error_clear();
	json_object_array_add(list, d);
	text = json_object_to_json_string_ext(
		idx, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	len = strlen(text);
	r = cfs_layout_put_blob(blobs, text, len, digest);
	if (r < 0)
		return cfs_error_errno(-r, "%s: writing the index", where);
	if (fsync(blobs) < 0)
		return cfs_error_errno(errno, "%s: fsync", where);
	r = cfs_layout_tag(where, dirfd, tag, digest, len);
	if (r == 0 && fsync(dirfd) < 0)
		r = cfs_error_errno(errno, "%s: fsync", where);
	return r;
}

/*
 * The image an artifact is about (@source: oci: or oci-archive:),
 * opened and converted (no objects stored). @canonical: its canonical
 * tree; else the tree its image in the store would have: canonical when
 * the spec seals it (in its manifest, or by the spec's artifact beside
 * it), full fidelity otherwise. *@flags (if not NULL) gets the
 * conversion's flags, for writing the image the same way.
 */
static int subject_convert(const char *source, const cfs_artifact_options *opts,
			   bool canonical, struct cfs_oci_image **img,
			   cfs_inode **root, cfs_convert_stats *stats,
			   unsigned int *flags)
{
	cfs_convert_options copts = CFS_CONVERT_OPTIONS_INIT;
	int r;

	if (strncmp(source, "oci:", 4) != 0 &&
	    strncmp(source, "oci-archive:", 12) != 0)
		return cfs_error(
			EINVAL,
			"%s: an artifact's subject is an OCI manifest: "
			"oci: or oci-archive: sources only",
			source);
	copts.flags =
		canonical ? CFS_CONVERT_CANONICAL : CFS_CONVERT_LAYER_DIGESTS;
	copts.platform = opts->platform;
	copts.threads = opts->threads;
	r = cfs_oci_open(img, source, opts->platform);
	if (r == 0 && !canonical && (*img)->spec_merged[0])
		copts.flags |= CFS_CONVERT_CANONICAL;
	if (r == 0 && !canonical && !(*img)->spec_merged[0] &&
	    (*img)->manifest_digest) {
		struct cfs_found_artifact found;

		r = cfs_find_artifact(source, (*img)->manifest_digest, &found);
		if (r == 0 && found.spec_found)
			copts.flags |= CFS_CONVERT_CANONICAL;
		cfs_found_artifact_clear(&found);
		r = r < 0 ? r : 0;
	}
	if (r == 0)
		r = cfs_convert_oci_objs(root, *img, &copts, NULL, NULL, NULL,
					 stats);
	if (r == 0 && (!(*img)->manifest || stats->n_layers == 0))
		r = cfs_error(EINVAL, "%s: no manifest or no layers", source);
	if (flags)
		*flags = copts.flags;
	return r;
}

/*
 * Write the artifact manifest of @type into the layout: the empty config,
 * @layers (taken), subject the manifest @subject of @subject_size bytes,
 * and @ann (taken; NULL for none) as its annotations; then list it in
 * the referrers index under @tag with its artifactType and annotations.
 * Its digest and size into @digest_out and *@size_out.
 */
static int artifact_put(const char *where, int dirfd, int blobs,
			const char *type, json_object *layers, json_object *ann,
			const char *subject, uint64_t subject_size,
			const char *tag, char digest_out[80],
			uint64_t *size_out)
{
	_cleanup_(json_object_putp) json_object *m = json_object_new_object();
	json_object *d;
	const char *text;
	char empty[80];
	int r;

	if (!m) {
		json_object_put(layers);
		json_object_put(ann);
		return -ENOMEM;
	}
	json_object_object_add(m, "schemaVersion", json_object_new_int(2));
	json_object_object_add(m, "mediaType",
			       json_object_new_string(MT_OCI_MANIFEST));
	json_object_object_add(m, "artifactType", json_object_new_string(type));
	json_object_object_add(
		m, "config", cfs_layout_descriptor(MT_EMPTY, EMPTY_DIGEST, 2));
	json_object_object_add(m, "layers", layers);
	json_object_object_add(m, "subject",
			       cfs_layout_descriptor(MT_OCI_MANIFEST, subject,
						     subject_size));
	if (ann)
		json_object_object_add(m, "annotations", ann);
	r = cfs_layout_put_blob(blobs, "{}", 2, empty);
	if (r < 0)
		return cfs_error_errno(-r, "%s: writing the empty config",
				       where);
	text = json_object_to_json_string_ext(
		m, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	*size_out = strlen(text);
	r = cfs_layout_put_blob(blobs, text, *size_out, digest_out);
	if (r < 0)
		return cfs_error_errno(-r, "%s: writing the artifact manifest",
				       where);
	d = cfs_layout_descriptor(MT_OCI_MANIFEST, digest_out, *size_out);
	if (!d)
		return -ENOMEM;
	json_object_object_add(d, "artifactType", json_object_new_string(type));
	if (ann)
		json_object_object_add(d, "annotations", json_object_get(ann));
	return referrers_put(where, dirfd, blobs, tag, d);
}

static int do_artifact(const char *source, const char *output,
		       const cfs_artifact_options *opts,
		       cfs_artifact_result *res)
{
	unsigned int flags = 0;
	cfs_convert_stats stats = CFS_CONVERT_STATS_INIT;
	struct cfs_oci_image *img = NULL;
	struct cfs_atomic_file af = { .fd = -1 };
	struct hashing_writer hw = { .fd = -1 };
	_cleanup_close_ int dirfd = -1, blobs = -1;
	_cleanup_free_ char *layers_ann = NULL;
	json_object *ann, *layers, *layer;
	uint8_t merged[CFS_DIGEST_SIZE], md[EVP_MAX_MD_SIZE];
	char hex[CFS_DIGEST_HEX_SIZE + 1];
	unsigned int mdlen = 0;
	uint64_t subject_size;
	cfs_inode *root = NULL;
	int r;

	r = subject_convert(source, opts, false, &img, &root, &stats, &flags);
	if (r < 0)
		goto out;
	subject_size = img->manifest_len;
	r = cfs_layout_open(output, &dirfd, &blobs);
	if (r < 0)
		goto out;

	/* The composefs image, hashed as it is written. */
	hw.md = EVP_MD_CTX_new();
	r = hw.md && EVP_DigestInit_ex(hw.md, EVP_sha256(), NULL) == 1 ?
		    cfs_atomic_open(&af, blobs, 0644) :
		    -ENOMEM;
	if (r == 0) {
		static const cfs_write_options canonical =
			CFS_WRITE_OPTIONS_CANONICAL;

		hw.fd = af.fd;
		r = cfs_image_write(
			root, flags & CFS_CONVERT_CANONICAL ? &canonical : NULL,
			hashing_write, &hw, merged);
	}
	if (r == 0 && (EVP_DigestFinal_ex(hw.md, md, &mdlen) != 1 ||
		       mdlen != CFS_DIGEST_SIZE))
		r = -EIO;
	if (r == 0 && fsync(af.fd) < 0)
		r = -errno;
	if (r == 0) {
		cfs_digest_to_hex(md, hex);
		cfs_sha256_str(md, res->image_digest);
		res->image_size = hw.size;
		r = cfs_atomic_commit(&af, hex, false);
		if (r == -EEXIST)
			r = 0;
	}
	cfs_atomic_abort(&af);
	EVP_MD_CTX_free(hw.md);
	if (r < 0) {
		r = cfs_error_errno(-r, "%s: writing the composefs image",
				    output);
		goto out;
	}
	cfs_digest_to_hex(merged, res->merged);
	snprintf(res->subject_digest, sizeof(res->subject_digest), "%s",
		 stats.manifest_digest);
	snprintf(res->tag, sizeof(res->tag), "sha256-%.64s",
		 stats.manifest_digest + 7);
	/* The layers' digests, in order. */
	layers_ann = calloc(stats.n_layers, CFS_DIGEST_HEX_SIZE + 1);
	if (!layers_ann) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < stats.n_layers; i++) {
		if (i)
			strcat(layers_ann, ",");
		cfs_digest_to_hex(stats.layers[i].composefs_digest, hex);
		strcat(layers_ann, hex);
	}

	layers = json_object_new_array();
	ann = json_object_new_object();
	layer = cfs_layout_descriptor(CFS_ARTIFACT_IMAGE_MEDIA_TYPE,
				      res->image_digest, res->image_size);
	if (!layers || !ann || !layer) {
		json_object_put(layers);
		json_object_put(ann);
		json_object_put(layer);
		r = -ENOMEM;
		goto out;
	}
	json_object_array_add(layers, layer);
	json_object_object_add(ann, CFS_ANNOTATION_MERGED,
			       json_object_new_string(res->merged));
	json_object_object_add(ann, CFS_ANNOTATION_LAYERS,
			       json_object_new_string(layers_ann));
	r = artifact_put(output, dirfd, blobs, CFS_ARTIFACT_TYPE, layers, ann,
			 res->subject_digest, subject_size, res->tag,
			 res->manifest_digest, &res->manifest_size);
out:
	cfs_inode_unref(root);
	cfs_oci_free(img);
	cfs_convert_stats_clear(&stats);
	return r;
}

int cfs_artifact(const char *source, const char *output_layout,
		 const cfs_artifact_options *opts, cfs_artifact_result *res)
{
	static const cfs_artifact_options defaults = CFS_ARTIFACT_OPTIONS_INIT;
	int r = cfs_result_check(res, CFS_ARTIFACT_RESULT_VERSION, source);

	if (r < 0)
		return r;
	if (!opts)
		opts = &defaults;
	cfs_result_zero(res, sizeof(*res));
	if (!CFS_OPTIONS_VERSION_OK(opts->version,
				    CFS_ARTIFACT_OPTIONS_VERSION) ||
	    opts->flags || opts->sign_key || opts->sign_cert)
		return cfs_error(EINVAL, "invalid artifact options");
	return do_artifact(source, output_layout, opts, res);
}

/* ---- the sealing spec's artifact ---------------------------------------- */

/* One layer of the spec's artifact: the signature of @hex (empty when
 * @opts has no key) as a blob, annotated @key = @hex. */
static json_object *spec_layer(const char *where, int blobs,
			       const cfs_artifact_options *opts,
			       const char *key, const char *hex, int *err)
{
	_cleanup_free_ uint8_t *sig = NULL;
	uint8_t d[CFS_DIGEST_SIZE];
	json_object *l, *ann;
	char digest[80];
	size_t len = 0;
	int r = 0;

	if (opts->sign_key) {
		r = cfs_digest_from_hex(d, hex);
		if (r == 0)
			r = cfs_sign_digest(opts->sign_key, opts->sign_cert, d,
					    &sig, &len);
		if (r < 0) {
			*err = cfs_error_prefix(-r, "%s: signing %s", where,
						key);
			return NULL;
		}
	}
	r = cfs_layout_put_blob(blobs, sig ? (const char *)sig : "", len,
				digest);
	if (r < 0) {
		*err = cfs_error_errno(-r, "%s: writing a signature", where);
		return NULL;
	}
	l = cfs_layout_descriptor(CFS_SPEC_SIGNATURE_MEDIA_TYPE, digest, len);
	ann = json_object_new_object();
	if (!l || !ann) {
		json_object_put(l);
		json_object_put(ann);
		*err = -ENOMEM;
		return NULL;
	}
	json_object_object_add(ann, key, json_object_new_string(hex));
	json_object_object_add(l, "annotations", ann);
	return l;
}

static int do_spec_artifact(const char *source, const char *output,
			    const cfs_artifact_options *opts,
			    cfs_spec_artifact_result *res)
{
	static const cfs_write_options canonical = CFS_WRITE_OPTIONS_CANONICAL;
	static const char *const keys[3] = { CFS_SPEC_MANIFEST, CFS_SPEC_CONFIG,
					     CFS_SPEC_MERGED };
	const char *hexes[3] = { res->manifest_verity, res->config_verity,
				 res->merged };
	cfs_convert_stats stats = CFS_CONVERT_STATS_INIT;
	struct cfs_oci_image *img = NULL;
	_cleanup_close_ int dirfd = -1, blobs = -1;
	json_object *layers, *l;
	uint8_t dg[CFS_DIGEST_SIZE];
	cfs_inode *root = NULL;
	int r;

	r = subject_convert(source, opts, true, &img, &root, &stats, NULL);
	if (r == 0)
		r = cfs_image_digest(root, &canonical, dg);
	if (r < 0)
		goto out;
	cfs_digest_to_hex(dg, res->merged);
	r = cfs_verity_digest_buffer(img->manifest, img->manifest_len, dg);
	if (r < 0)
		goto out;
	cfs_digest_to_hex(dg, res->manifest_verity);
	r = cfs_verity_digest_buffer(img->config, img->config_len, dg);
	if (r < 0)
		goto out;
	cfs_digest_to_hex(dg, res->config_verity);
	snprintf(res->subject_digest, sizeof(res->subject_digest), "%s",
		 img->manifest_digest);
	snprintf(res->tag, sizeof(res->tag), "sha256-%.64s",
		 img->manifest_digest + 7);
	r = cfs_layout_open(output, &dirfd, &blobs);
	if (r < 0) {
		r = cfs_error_prefix(-r, "%s", output);
		goto out;
	}

	/* The spec's order: manifest, config, merged. */
	layers = json_object_new_array();
	if (!layers) {
		r = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < 3; i++) {
		l = spec_layer(output, blobs, opts, keys[i], hexes[i], &r);
		if (!l) {
			json_object_put(layers);
			goto out;
		}
		json_object_array_add(layers, l);
	}
	r = artifact_put(output, dirfd, blobs, CFS_SPEC_ARTIFACT_TYPE, layers,
			 NULL, res->subject_digest, img->manifest_len, res->tag,
			 res->manifest_digest, &res->manifest_size);
	res->sig_written = r == 0 && opts->sign_key;
out:
	cfs_inode_unref(root);
	cfs_oci_free(img);
	cfs_convert_stats_clear(&stats);
	return r;
}

int cfs_spec_artifact(const char *source, const char *output_layout,
		      const cfs_artifact_options *opts,
		      cfs_spec_artifact_result *res)
{
	static const cfs_artifact_options defaults = CFS_ARTIFACT_OPTIONS_INIT;
	int r = cfs_result_check(res, CFS_SPEC_ARTIFACT_RESULT_VERSION, source);

	if (r < 0)
		return r;
	if (!opts)
		opts = &defaults;
	cfs_result_zero(res, sizeof(*res));
	if (!CFS_OPTIONS_VERSION_OK(opts->version,
				    CFS_ARTIFACT_OPTIONS_VERSION) ||
	    opts->flags || !opts->sign_key != !opts->sign_cert)
		return cfs_error(EINVAL, "invalid artifact options");
	return do_spec_artifact(source, output_layout, opts, res);
}

/* ---- finding an artifact ---------------------------------------------- */
void cfs_found_artifact_clear(struct cfs_found_artifact *a)
{
	free(a->image);
	for (int i = 0; i < CFS_SPEC_ROLES; i++)
		free(a->spec_sig[i]);
	memset(a, 0, sizeof(*a));
}

/* Is the manifest @m a composefs artifact of @subject? Its image's
 * descriptor to @layer. */
static bool artifact_of(json_object *m, const char *subject,
			json_object **layer)
{
	json_object *s, *layers;
	const char *at = cfs_json_str(m, "artifactType"), *sd;

	if (!at || strcmp(at, CFS_ARTIFACT_TYPE) != 0 ||
	    !json_object_object_get_ex(m, "subject", &s) ||
	    !(sd = cfs_json_str(s, "digest")) || strcmp(sd, subject) != 0 ||
	    !json_object_object_get_ex(m, "layers", &layers) ||
	    !json_object_is_type(layers, json_type_array) ||
	    json_object_array_length(layers) != 1)
		return false;
	*layer = json_object_array_get_idx(layers, 0);
	at = cfs_json_str(*layer, "mediaType");
	return at && strcmp(at, CFS_ARTIFACT_IMAGE_MEDIA_TYPE) == 0 &&
	       cfs_json_str(*layer, "digest");
}

/* The composefs image is metadata: far below this. */
#define ARTIFACT_IMAGE_MAX (1024u * 1024 * 1024)

/* A signature is a few KiB (more with a chain of certificates). */
#define SIGNATURE_MAX (1024u * 1024)

/* The sealing spec's artifact @m (blob @md) of @subject, into @out: 0,
 * 1 if @m is not one, -errno with a message if it is but damaged. */
static int spec_artifact_of(const char *where, int dirfd, json_object *m,
			    const char *md, const char *subject,
			    struct cfs_found_artifact *out)
{
	static const char *const keys[CFS_SPEC_ROLES] = { CFS_SPEC_MANIFEST,
							  CFS_SPEC_CONFIG,
							  CFS_SPEC_MERGED };
	json_object *s, *layers;
	const char *at = cfs_json_str(m, "artifactType"), *sd;
	int r;

	if (!at || strcmp(at, CFS_SPEC_ARTIFACT_TYPE) != 0 ||
	    !json_object_object_get_ex(m, "subject", &s) ||
	    !(sd = cfs_json_str(s, "digest")) || strcmp(sd, subject) != 0)
		return 1;
	if (out->spec_found)
		return cfs_error(EINVAL,
				 "%s: two composefs metadata artifacts (%s "
				 "and %s)",
				 where, out->spec_manifest_digest, md);
	if (!json_object_object_get_ex(m, "layers", &layers) ||
	    !json_object_is_type(layers, json_type_array))
		return cfs_error(EINVAL, "%s: %s: no layers", where, md);
	for (size_t i = 0; i < json_object_array_length(layers); i++) {
		json_object *l = json_object_array_get_idx(layers, i), *ann;
		const char *mt = cfs_json_str(l, "mediaType");

		if (!mt || strcmp(mt, CFS_SPEC_SIGNATURE_MEDIA_TYPE) != 0 ||
		    !json_object_object_get_ex(l, "annotations", &ann))
			continue;
		for (int k = 0; k < CFS_SPEC_ROLES; k++) {
			const char *hex = cfs_json_str(ann, keys[k]);
			uint8_t *sig = NULL;
			size_t len = 0;

			if (!hex)
				continue;
			if (strlen(hex) != CFS_DIGEST_HEX_SIZE ||
			    strspn(hex, "0123456789abcdef") !=
				    CFS_DIGEST_HEX_SIZE)
				return cfs_error(EINVAL,
						 "%s: %s: layers[%zu]: %s is "
						 "not 64 lower-case hex "
						 "digits",
						 where, md, i, keys[k]);
			if (out->spec_hex[k][0])
				return cfs_error(EINVAL,
						 "%s: %s: two layers for %s",
						 where, md, keys[k]);
			r = cfs_layout_read_blob(
				where, dirfd, cfs_json_str(l, "digest") ?: "",
				cfs_json_size(l), SIGNATURE_MAX, &sig, &len);
			if (r < 0)
				return r;
			memcpy(out->spec_hex[k], hex, CFS_DIGEST_HEX_SIZE + 1);
			if (len) {
				out->spec_sig[k] = sig;
				out->spec_sig_len[k] = len;
			} else {
				free(sig);
			}
		}
	}
	if (!out->spec_hex[CFS_SPEC_ROLE_MERGED][0])
		return cfs_error(EINVAL, "%s: %s: no " CFS_SPEC_MERGED " layer",
				 where, md);
	out->spec_found = true;
	snprintf(out->spec_manifest_digest, sizeof(out->spec_manifest_digest),
		 "%s", md);
	return 0;
}

int cfs_find_artifact(const char *source, const char *subject,
		      struct cfs_found_artifact *out)
{
	_cleanup_free_ char *path = NULL, *ref = NULL, *where = NULL;
	_cleanup_free_ uint8_t *xbuf = NULL;
	_cleanup_(json_object_putp) json_object *index = NULL, *x = NULL;
	_cleanup_close_ int dirfd = -1;
	json_object *list;
	char tag[80];
	size_t len;
	int r;

	memset(out, 0, sizeof(*out));
	if (strncmp(source, "oci:", 4) != 0 || strlen(subject) != 71)
		return 1;
	r = cfs_oci_split_source(source + 4, true, &path, &ref);
	if (r < 0)
		return r;
	dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return 1;
	if (asprintf(&where, "%s: artifact of %s", source, subject) < 0) {
		where = NULL;
		return -ENOMEM;
	}
	{
		_cleanup_close_ int fd =
			openat(dirfd, "index.json", O_RDONLY | O_CLOEXEC);

		if (fd < 0)
			return 1;
		r = cfs_json_read_fd(fd, INDEX_MAX, &index);
		if (r == -ENOMEM)
			return r;
		if (r < 0 ||
		    !json_object_object_get_ex(index, "manifests", &list))
			return 1;
	}
	snprintf(tag, sizeof(tag), "sha256-%.64s", subject + 7);
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *e = json_object_array_get_idx(list, i), *ann, *ml;
		const char *name, *digest;

		if (!json_object_object_get_ex(e, "annotations", &ann) ||
		    !(name = cfs_json_str(ann, ANN_REF_NAME)) ||
		    strcmp(name, tag) != 0 ||
		    !(digest = cfs_json_str(e, "digest")))
			continue;
		r = cfs_layout_read_blob(where, dirfd, digest, cfs_json_size(e),
					 INDEX_MAX, &xbuf, &len);
		if (r == 0 && (r = cfs_json_parse((char *)xbuf, len, &x)) < 0)
			r = cfs_error_prefix(-r, "%s: %s", where, digest);
		if (r < 0)
			return r;
		if (!json_object_object_get_ex(x, "manifests", &ml) ||
		    !json_object_is_type(ml, json_type_array))
			return 1;
		for (size_t k = 0; k < json_object_array_length(ml); k++) {
			_cleanup_free_ uint8_t *mbuf = NULL;
			_cleanup_(json_object_putp) json_object *m = NULL;
			json_object *d = json_object_array_get_idx(ml, k), *l;
			const char *md = cfs_json_str(d, "digest");

			if (!md)
				continue;
			r = cfs_layout_read_blob(where, dirfd, md,
						 cfs_json_size(d), INDEX_MAX,
						 &mbuf, &len);
			if (r == 0 &&
			    (r = cfs_json_parse((char *)mbuf, len, &m)) < 0)
				r = cfs_error_prefix(-r, "%s: %s", where, md);
			if (r < 0)
				return r;
			r = spec_artifact_of(where, dirfd, m, md, subject, out);
			if (r <= 0) {
				if (r < 0)
					return r;
				continue;
			}
			if (out->image || !artifact_of(m, subject, &l))
				continue;
			r = cfs_layout_read_blob(where, dirfd,
						 cfs_json_str(l, "digest"),
						 cfs_json_size(l),
						 ARTIFACT_IMAGE_MAX,
						 &out->image, &out->image_len);
			if (r < 0)
				return r;
			snprintf(out->manifest_digest,
				 sizeof(out->manifest_digest), "%s", md);
			json_object_object_get_ex(m, "annotations", &l);
			md = l ? cfs_json_str(l, CFS_ANNOTATION_MERGED) : NULL;
			if (md && strlen(md) == CFS_DIGEST_HEX_SIZE)
				memcpy(out->merged, md,
				       CFS_DIGEST_HEX_SIZE + 1);
		}
		return out->image || out->spec_found ? 0 : 1;
	}
	return 1;
}
