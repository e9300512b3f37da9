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
#include "common/sign.h"
#include "common/util.h"
#include "convert/artifact.h"
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

/* The sealed manifest: @raw with the annotations of @res added. */
static int sealed_manifest(const char *source, const struct cfs_oci_image *img,
			   const cfs_seal_result *res,
			   const struct seal_sig sigs[2], char **text_out)
{
	_cleanup_(json_object_putp) json_object *m = NULL;
	json_object *layers, *v, *ann, *cfg;
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
		json_object *l = json_object_array_get_idx(layers, i);

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
		r = cfs_image_write(root, &canonical, write_discard, NULL, d);
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

static int do_seal(const char *source, const cfs_seal_options *opts,
		   cfs_seal_result *res)
{
	cfs_convert_options copts = CFS_CONVERT_OPTIONS_INIT;
	cfs_convert_stats stats = { 0 };
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
		r = cfs_image_write(root, NULL, write_discard, NULL, merged);
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

	r = sealed_manifest(source, img, res, sigs, &text);
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
	memset(res, 0, sizeof(*res));
	if (!CFS_OPTIONS_VERSION_OK(opts->version, CFS_SEAL_OPTIONS_VERSION) ||
	    opts->flags)
		return cfs_error(EINVAL, "invalid seal options");
	if (opts->version >= 2 && !opts->sign_key != !opts->sign_cert)
		return cfs_error(EINVAL, "signing needs a key and its "
					 "certificate");
	r = do_seal(source, opts, res);
	if (r < 0)
		cfs_seal_result_clear(res);
	return r;
}

/* ---- composefs artifacts ---------------------------------------------- */

#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_EMPTY "application/vnd.oci.empty.v1+json"
/* The empty JSON object "{}", the config of artifacts without one. */
#define EMPTY_DIGEST                                                           \
	"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

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

/* Make @path an OCI layout if it is not one; open it and blobs/sha256. */
static int open_layout(const char *path, int *dirfd, int *blobs)
{
	static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
	static const char index[] = "{\"schemaVersion\":2,\"manifests\":[]}";
	int r;

	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return cfs_error_errno(errno, "%s", path);
	*dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*dirfd < 0)
		return cfs_error_errno(errno, "%s", path);
	if ((mkdirat(*dirfd, "blobs", 0755) < 0 && errno != EEXIST) ||
	    (mkdirat(*dirfd, "blobs/sha256", 0755) < 0 && errno != EEXIST))
		return cfs_error_errno(errno, "%s: blobs/sha256", path);
	*blobs = openat(*dirfd, "blobs/sha256",
			O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*blobs < 0)
		return cfs_error_errno(errno, "%s: blobs/sha256", path);
	r = write_new_file(*dirfd, "oci-layout", layout, strlen(layout), false);
	if (r == 0)
		r = write_new_file(*dirfd, "index.json", index, strlen(index),
				   false);
	if (r < 0)
		return cfs_error_errno(-r, "%s", path);
	return 0;
}

/* Write @text as a blob; its digest to @digest_out. */
static int put_blob(int blobs, const char *text, size_t len,
		    char digest_out[80])
{
	int r = sha256_digest(text, len, digest_out);

	if (r == 0)
		r = write_new_file(blobs, digest_out + 7, text, len, false);
	return r;
}

static json_object *descriptor(const char *media_type, const char *digest,
			       uint64_t size)
{
	json_object *d = json_object_new_object();

	if (!d)
		return NULL;
	json_object_object_add(d, "mediaType",
			       json_object_new_string(media_type));
	json_object_object_add(d, "digest", json_object_new_string(digest));
	json_object_object_add(d, "size", json_object_new_int64((int64_t)size));
	return d;
}

/* Tag @digest (an index of @size bytes) as @tag in @dirfd/index.json,
 * replacing what had the tag. */
static int tag_index(const char *where, int dirfd, const char *tag,
		     const char *digest, uint64_t size)
{
	_cleanup_(json_object_putp) json_object *index = NULL;
	_cleanup_free_ char *buf = NULL;
	_cleanup_close_ int fd = -1;
	json_object *manifests, *keep, *e, *ann;
	const char *text;
	size_t len = 0;
	struct stat st;
	int r;

	fd = openat(dirfd, "index.json", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return cfs_error_errno(errno, "%s: index.json", where);
	if (st.st_size > INDEX_MAX)
		return cfs_error(EFBIG, "%s: index.json is over %d bytes",
				 where, INDEX_MAX);
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	r = cfs_read_full(fd, buf, (size_t)st.st_size, &len);
	if (r < 0)
		return cfs_error_errno(-r, "%s: index.json", where);
	if (parse_json_buf(buf, len, &index) < 0 ||
	    !json_object_object_get_ex(index, "manifests", &manifests) ||
	    !json_object_is_type(manifests, json_type_array))
		return cfs_error(EINVAL, "%s: index.json: no manifests array",
				 where);
	keep = json_object_new_array();
	if (!keep)
		return -ENOMEM;
	for (size_t i = 0; i < json_object_array_length(manifests); i++) {
		json_object *v;

		e = json_object_array_get_idx(manifests, i);
		if (json_object_object_get_ex(e, "annotations", &ann) &&
		    json_object_object_get_ex(ann, ANN_REF_NAME, &v) &&
		    strcmp(json_object_get_string(v), tag) == 0)
			continue;
		json_object_array_add(keep, json_object_get(e));
	}
	e = descriptor(MT_OCI_INDEX, digest, size);
	ann = json_object_new_object();
	if (!e || !ann) {
		json_object_put(e);
		json_object_put(ann);
		json_object_put(keep);
		return -ENOMEM;
	}
	json_object_object_add(ann, ANN_REF_NAME, json_object_new_string(tag));
	json_object_object_add(e, "annotations", ann);
	json_object_array_add(keep, e);
	json_object_object_add(index, "manifests", keep);
	text = json_object_to_json_string_ext(
		index, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	r = write_new_file(dirfd, "index.json", text, strlen(text), true);
	if (r < 0)
		return cfs_error_errno(-r, "%s: writing index.json", where);
	return 0;
}

static int do_artifact(const char *source, const char *output,
		       const cfs_seal_options *opts, cfs_artifact_result *res)
{
	cfs_convert_options copts = CFS_CONVERT_OPTIONS_INIT;
	cfs_convert_stats stats = { 0 };
	struct cfs_oci_image *img = NULL;
	struct cfs_atomic_file af = { .fd = -1 };
	struct hashing_writer hw = { .fd = -1 };
	_cleanup_(json_object_putp) json_object *m = NULL, *idx = NULL;
	_cleanup_close_ int dirfd = -1, blobs = -1;
	_cleanup_free_ char *layers_ann = NULL;
	json_object *ann, *layers, *layer, *list, *d;
	uint8_t merged[CFS_DIGEST_SIZE], md[EVP_MAX_MD_SIZE];
	char hex[CFS_DIGEST_HEX_SIZE + 1], empty[80];
	unsigned int mdlen = 0;
	uint64_t subject_size;
	cfs_inode *root = NULL;
	const char *text;
	int r;

	if (strncmp(source, "oci:", 4) != 0 &&
	    strncmp(source, "oci-archive:", 12) != 0)
		return cfs_error(
			EINVAL,
			"%s: an artifact's subject is an OCI manifest: "
			"oci: or oci-archive: sources only",
			source);
	copts.flags = CFS_CONVERT_LAYER_DIGESTS;
	copts.platform = opts->platform;
	copts.threads = opts->threads;
	r = cfs_oci_open(&img, source, opts->platform);
	/* Sealed by the spec: its image is the canonical one. */
	if (r == 0 && img->spec_merged[0])
		copts.flags |= CFS_CONVERT_CANONICAL;
	if (r == 0)
		r = cfs_convert_oci_objs(&root, img, &copts, NULL, NULL, NULL,
					 &stats);
	if (r < 0)
		goto out;
	if (!stats.manifest_digest[0] || stats.n_layers == 0) {
		r = cfs_error(EINVAL, "%s: no manifest or no layers", source);
		goto out;
	}
	subject_size = img->manifest_len;
	r = open_layout(output, &dirfd, &blobs);
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
			root,
			copts.flags & CFS_CONVERT_CANONICAL ? &canonical : NULL,
			hashing_write, &hw, merged);
	}
	if (r == 0 && (EVP_DigestFinal_ex(hw.md, md, &mdlen) != 1 ||
		       mdlen != CFS_DIGEST_SIZE))
		r = -EIO;
	if (r == 0 && fsync(af.fd) < 0)
		r = -errno;
	if (r == 0) {
		cfs_digest_to_hex(md, hex);
		snprintf(res->image_digest, sizeof(res->image_digest),
			 "sha256:%s", hex);
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
	r = put_blob(blobs, "{}", 2, empty);
	if (r < 0) {
		r = cfs_error_errno(-r, "%s: writing the empty config", output);
		goto out;
	}

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

	m = json_object_new_object();
	layers = json_object_new_array();
	ann = json_object_new_object();
	if (!m || !layers || !ann) {
		json_object_put(layers);
		json_object_put(ann);
		r = -ENOMEM;
		goto out;
	}
	json_object_object_add(m, "schemaVersion", json_object_new_int(2));
	json_object_object_add(m, "mediaType",
			       json_object_new_string(MT_OCI_MANIFEST));
	json_object_object_add(m, "artifactType",
			       json_object_new_string(CFS_ARTIFACT_TYPE));
	json_object_object_add(m, "config",
			       descriptor(MT_EMPTY, EMPTY_DIGEST, 2));
	layer = descriptor(CFS_ARTIFACT_IMAGE_MEDIA_TYPE, res->image_digest,
			   res->image_size);
	json_object_array_add(layers, layer);
	json_object_object_add(m, "layers", layers);
	json_object_object_add(m, "subject",
			       descriptor(MT_OCI_MANIFEST, res->subject_digest,
					  subject_size));
	json_object_object_add(ann, CFS_ANNOTATION_MERGED,
			       json_object_new_string(res->merged));
	json_object_object_add(ann, CFS_ANNOTATION_LAYERS,
			       json_object_new_string(layers_ann));
	json_object_object_add(m, "annotations", ann);
	text = json_object_to_json_string_ext(
		m, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	res->manifest_size = strlen(text);
	r = put_blob(blobs, text, strlen(text), res->manifest_digest);
	if (r < 0) {
		r = cfs_error_errno(-r, "%s: writing the artifact manifest",
				    output);
		goto out;
	}

	/* The referrers index, as a registry without the referrers API
	 * keeps it under the tag sha256-<subject hex>. */
	idx = json_object_new_object();
	list = json_object_new_array();
	d = descriptor(MT_OCI_MANIFEST, res->manifest_digest,
		       res->manifest_size);
	if (!idx || !list || !d) {
		json_object_put(list);
		json_object_put(d);
		r = -ENOMEM;
		goto out;
	}
	json_object_object_add(d, "artifactType",
			       json_object_new_string(CFS_ARTIFACT_TYPE));
	json_object_object_add(d, "annotations", json_object_get(ann));
	json_object_array_add(list, d);
	json_object_object_add(idx, "schemaVersion", json_object_new_int(2));
	json_object_object_add(idx, "mediaType",
			       json_object_new_string(MT_OCI_INDEX));
	json_object_object_add(idx, "manifests", list);
	text = json_object_to_json_string_ext(
		idx, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	{
		char idx_digest[80];
		size_t idx_size = strlen(text);

		r = put_blob(blobs, text, idx_size, idx_digest);
		if (r < 0) {
			r = cfs_error_errno(-r, "%s: writing the index",
					    output);
			goto out;
		}
		if (fsync(blobs) < 0) {
			r = cfs_error_errno(errno, "%s: fsync", output);
			goto out;
		}
		r = tag_index(output, dirfd, res->tag, idx_digest, idx_size);
	}
	if (r == 0 && fsync(dirfd) < 0)
		r = cfs_error_errno(errno, "%s: fsync", output);
out:
	cfs_inode_unref(root);
	cfs_oci_free(img);
	cfs_convert_stats_clear(&stats);
	return r;
}

int cfs_artifact(const char *source, const char *output_layout,
		 const cfs_seal_options *opts, cfs_artifact_result *res)
{
	static const cfs_seal_options defaults = CFS_SEAL_OPTIONS_INIT;

	if (!opts)
		opts = &defaults;
	memset(res, 0, sizeof(*res));
	if (!CFS_OPTIONS_VERSION_OK(opts->version, CFS_SEAL_OPTIONS_VERSION) ||
	    opts->flags || opts->tag)
		return cfs_error(EINVAL, "invalid artifact options");
	return do_artifact(source, output_layout, opts, res);
}

/* ---- finding an artifact ---------------------------------------------- */

/* Read blob @digest of the layout @dirfd, check its SHA-256 (and @size
 * if >= 0); at most @max bytes. */
static int read_blob(const char *where, int dirfd, const char *digest,
		     int64_t size, size_t max, uint8_t **out, size_t *len_out)
{
	_cleanup_free_ uint8_t *buf = NULL;
	_cleanup_close_ int fd = -1;
	char path[100], got[80];
	struct stat st;
	size_t len = 0;
	int r;

	if (strncmp(digest, "sha256:", 7) != 0 ||
	    strlen(digest) != 7 + CFS_DIGEST_HEX_SIZE ||
	    strspn(digest + 7, "0123456789abcdef") != CFS_DIGEST_HEX_SIZE)
		return cfs_error(EINVAL, "%s: bad digest %.80s", where, digest);
	snprintf(path, sizeof(path), "blobs/sha256/%s", digest + 7);
	fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return cfs_error_errno(errno, "%s: %s", where, path);
	if ((uint64_t)st.st_size > max || (size >= 0 && st.st_size != size))
		return cfs_error(EBADMSG, "%s: %s: size %lld, expected %lld",
				 where, path, (long long)st.st_size,
				 (long long)size);
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	r = cfs_read_full(fd, buf, (size_t)st.st_size, &len);
	if (r < 0)
		return cfs_error_errno(-r, "%s: %s", where, path);
	buf[len] = 0;
	r = sha256_digest(buf, len, got);
	if (r < 0)
		return r;
	if (strcmp(got, digest) != 0)
		return cfs_error(EBADMSG, "%s: %s: content has digest %s",
				 where, path, got);
	*out = TAKE_PTR(buf);
	*len_out = len;
	return 0;
}

void cfs_found_artifact_clear(struct cfs_found_artifact *a)
{
	free(a->image);
	memset(a, 0, sizeof(*a));
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int64_t jsize(json_object *o)
{
	json_object *v;

	if (!json_object_object_get_ex(o, "size", &v) ||
	    !json_object_is_type(v, json_type_int))
		return -1;
	return json_object_get_int64(v);
}

/* Is the manifest @m a composefs artifact of @subject? Its image's
 * descriptor to @layer. */
static bool artifact_of(json_object *m, const char *subject,
			json_object **layer)
{
	json_object *s, *layers;
	const char *at = jstr(m, "artifactType"), *sd;

	if (!at || strcmp(at, CFS_ARTIFACT_TYPE) != 0 ||
	    !json_object_object_get_ex(m, "subject", &s) ||
	    !(sd = jstr(s, "digest")) || strcmp(sd, subject) != 0 ||
	    !json_object_object_get_ex(m, "layers", &layers) ||
	    !json_object_is_type(layers, json_type_array) ||
	    json_object_array_length(layers) != 1)
		return false;
	*layer = json_object_array_get_idx(layers, 0);
	at = jstr(*layer, "mediaType");
	return at && strcmp(at, CFS_ARTIFACT_IMAGE_MEDIA_TYPE) == 0 &&
	       jstr(*layer, "digest");
}

/* The composefs image is metadata: far below this. */
#define ARTIFACT_IMAGE_MAX (1024u * 1024 * 1024)

int cfs_find_artifact(const char *source, const char *subject,
		      struct cfs_found_artifact *out)
{
	_cleanup_free_ char *path = NULL, *ref = NULL, *where = NULL;
	_cleanup_free_ uint8_t *ibuf = NULL, *xbuf = NULL;
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
		struct stat st;

		if (fd < 0 || fstat(fd, &st) < 0 || st.st_size > INDEX_MAX)
			return 1;
		ibuf = malloc((size_t)st.st_size + 1);
		if (!ibuf)
			return -ENOMEM;
		if (cfs_read_full(fd, ibuf, (size_t)st.st_size, &len) < 0 ||
		    parse_json_buf((char *)ibuf, len, &index) < 0 ||
		    !json_object_object_get_ex(index, "manifests", &list))
			return 1;
	}
	snprintf(tag, sizeof(tag), "sha256-%.64s", subject + 7);
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *e = json_object_array_get_idx(list, i), *ann, *ml;
		const char *name, *digest;

		if (!json_object_object_get_ex(e, "annotations", &ann) ||
		    !(name = jstr(ann, ANN_REF_NAME)) ||
		    strcmp(name, tag) != 0 || !(digest = jstr(e, "digest")))
			continue;
		r = read_blob(where, dirfd, digest, jsize(e), INDEX_MAX, &xbuf,
			      &len);
		if (r == 0 && parse_json_buf((char *)xbuf, len, &x) < 0)
			r = cfs_error(EINVAL, "%s: %s is not JSON", where,
				      digest);
		if (r < 0)
			return r;
		if (!json_object_object_get_ex(x, "manifests", &ml) ||
		    !json_object_is_type(ml, json_type_array))
			return 1;
		for (size_t k = 0; k < json_object_array_length(ml); k++) {
			_cleanup_free_ uint8_t *mbuf = NULL;
			_cleanup_(json_object_putp) json_object *m = NULL;
			json_object *d = json_object_array_get_idx(ml, k), *l;
			const char *md = jstr(d, "digest");

			if (!md)
				continue;
			r = read_blob(where, dirfd, md, jsize(d), INDEX_MAX,
				      &mbuf, &len);
			if (r == 0 && parse_json_buf((char *)mbuf, len, &m) < 0)
				r = cfs_error(EINVAL, "%s: %s is not JSON",
					      where, md);
			if (r < 0)
				return r;
			if (!artifact_of(m, subject, &l))
				continue;
			r = read_blob(where, dirfd, jstr(l, "digest"), jsize(l),
				      ARTIFACT_IMAGE_MAX, &out->image,
				      &out->image_len);
			if (r < 0)
				return r;
			snprintf(out->manifest_digest,
				 sizeof(out->manifest_digest), "%s", md);
			json_object_object_get_ex(m, "annotations", &l);
			md = l ? jstr(l, CFS_ANNOTATION_MERGED) : NULL;
			if (md && strlen(md) == CFS_DIGEST_HEX_SIZE)
				memcpy(out->merged, md,
				       CFS_DIGEST_HEX_SIZE + 1);
			return 0;
		}
	}
	return 1;
}
