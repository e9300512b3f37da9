/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Image indexes, manifests and configs: choosing the image, checking
 * every document against its descriptor, the layers and diff_ids.
 * (convert/oci.h, oci-internal.h)
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
#include "common/error.h"
#include "common/util.h"
#include "convert/oci-internal.h"

/* ---- manifests and configs ------------------------------------------- */

static bool is_index_type(const char *mt)
{
	return !strcmp(mt, MT_OCI_INDEX) || !strcmp(mt, MT_DOCKER_LIST);
}

static bool is_manifest_type(const char *mt)
{
	return !strcmp(mt, MT_OCI_MANIFEST) || !strcmp(mt, MT_DOCKER_MANIFEST);
}

static int layer_compression(const char *mt, enum cfs_layer_compression *out)
{
	static const struct {
		const char *mt;
		enum cfs_layer_compression comp;
	} map[] = {
		{ "application/vnd.oci.image.layer.v1.tar", CFS_LAYER_TAR },
		{ "application/vnd.oci.image.layer.v1.tar+gzip",
		  CFS_LAYER_GZIP },
		{ "application/vnd.oci.image.layer.v1.tar+zstd",
		  CFS_LAYER_ZSTD },
		{ MT_DOCKER_LAYER, CFS_LAYER_TAR },
		{ MT_DOCKER_LAYER ".gzip", CFS_LAYER_GZIP },
		{ MT_DOCKER_LAYER ".zstd", CFS_LAYER_ZSTD },
	};

	for (size_t i = 0; i < CFS_ARRAY_SIZE(map); i++) {
		if (!strcmp(mt, map[i].mt)) {
			*out = map[i].comp;
			return 0;
		}
	}
	return -EOPNOTSUPP;
}

/*
 * rootfs.diff_ids of config @cfg: @n sha256 digests, one per layer,
 * copied into the layers.
 */
int oci_parse_diff_ids(struct oci_ctx *c, struct json_object *cfg,
		       const char *label, const char *layers_from)
{
	struct cfs_oci_image *img = c->img;
	struct json_object *rootfs, *ids;
	const char *type, *id;
	char key[64];
	size_t n;
	int r;

	if (!json_object_is_type(cfg, json_type_object))
		return oci_type_error(c, label, "the document", cfg,
				      json_type_object);
	r = oci_json_get(c, cfg, label, "", "rootfs", json_type_object, true,
			 &rootfs);
	if (r < 0)
		return r;
	r = oci_json_get_string(c, rootfs, label, "rootfs", "type", false,
				&type);
	if (r < 0)
		return r;
	if (type && strcmp(type, "layers")) {
		char q[OCI_QUOTE_MAX + 4];
		return cfs_error(EINVAL,
				 "%s: %s: rootfs.type is \"%s\", expected "
				 "\"layers\"",
				 c->src, label, oci_quote(type, q));
	}
	r = oci_json_get(c, rootfs, label, "rootfs", "diff_ids",
			 json_type_array, true, &ids);
	if (r < 0)
		return r;
	n = json_object_array_length(ids);
	if (n != img->n_layers)
		return cfs_error(EINVAL,
				 "%s: %s: rootfs.diff_ids has %zu entries, "
				 "%s lists %zu layers",
				 c->src, label, n, layers_from, img->n_layers);
	for (size_t i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "rootfs.diff_ids[%zu]", i);
		r = oci_json_elem_string(c, json_object_array_get_idx(ids, i),
					 label, key, &id);
		if (r < 0)
			return r;
		r = oci_require_sha256(c, label, key, id);
		if (r < 0)
			return r;
		img->layers[i].diff_id = strdup(id);
		if (!img->layers[i].diff_id)
			return cfs_error(ENOMEM, "%s: out of memory", c->src);
	}
	return 0;
}

int oci_alloc_layers(struct oci_ctx *c, size_t n, const char *label)
{
	if (n > CFS_OCI_LAYERS_MAX)
		return cfs_error(E2BIG, "%s: %s: %zu layers, limit %d", c->src,
				 label, n, CFS_OCI_LAYERS_MAX);
	c->img->layers = calloc(n ? n : 1, sizeof(*c->img->layers));
	c->st->layer_paths = calloc(n ? n : 1, sizeof(char *));
	c->st->layer_fds = calloc(n ? n : 1, sizeof(int));
	if (!c->img->layers || !c->st->layer_paths || !c->st->layer_fds)
		return cfs_error(ENOMEM, "%s: out of memory", c->src);
	c->img->n_layers = n;
	c->st->n_layers = n;
	for (size_t i = 0; i < n; i++) {
		c->img->layers[i].size = -1;
		c->st->layer_fds[i] = -1;
	}
	return 0;
}

/* A sealing annotation's value: 64 lower-case hex digits, copied to
 * @out ("" if absent). */
static int sealed_hex(struct oci_ctx *c, const char *label, const char *layer,
		      const char *key, const char *v,
		      char out[CFS_DIGEST_HEX_SIZE + 1])
{
	char q[OCI_QUOTE_MAX + 4];

	out[0] = '\0';
	if (!v)
		return 0;
	if (strlen(v) != CFS_DIGEST_HEX_SIZE ||
	    strspn(v, "0123456789abcdef") != CFS_DIGEST_HEX_SIZE)
		return cfs_error(EINVAL,
				 "%s: %s: layer %s: annotation %s is not 64 "
				 "lower-case hex digits: %s",
				 c->src, label, layer, key, oci_quote(v, q));
	memcpy(out, v, CFS_DIGEST_HEX_SIZE + 1);
	return 0;
}

/*
 * The sealing spec's key @key of the annotations @ann (at @path of
 * document @label): its digest (64 lower-case hex) into @hex, and its
 * signature (key ".sig", base64) into *@sig. Absent: "" and NULL.
 */
static int spec_key(struct oci_ctx *c, struct json_object *ann,
		    const char *label, const char *path, const char *key,
		    char hex[CFS_DIGEST_HEX_SIZE + 1], char **sig)
{
	char sig_key[96], q[OCI_QUOTE_MAX + 4];
	const char *v = NULL, *s = NULL;
	int r;

	hex[0] = '\0';
	if (!ann)
		return 0;
	snprintf(sig_key, sizeof(sig_key), "%s" CFS_SPEC_SIG_SUFFIX, key);
	r = oci_json_get_string(c, ann, label, path, key, false, &v);
	if (r == 0)
		r = oci_json_get_string(c, ann, label, path, sig_key, false,
					&s);
	if (r < 0)
		return r;
	if (s && !v)
		return cfs_error(EINVAL, "%s: %s: %s.%s without %s", c->src,
				 label, path, sig_key, key);
	if (!v)
		return 0;
	if (strlen(v) != CFS_DIGEST_HEX_SIZE ||
	    strspn(v, "0123456789abcdef") != CFS_DIGEST_HEX_SIZE)
		return cfs_error(EINVAL,
				 "%s: %s: %s.%s is not 64 lower-case hex "
				 "digits: %s",
				 c->src, label, path, key, oci_quote(v, q));
	memcpy(hex, v, CFS_DIGEST_HEX_SIZE + 1);
	if (s && !(*sig = strdup(s)))
		return cfs_error(ENOMEM, "%s: out of memory", c->src);
	return 0;
}

/* The spec's keys of manifest @m: merged at the top, config on the
 * config descriptor @cfg_o. */
static int load_spec_keys(struct oci_ctx *c, struct json_object *m,
			  struct json_object *cfg_o, const char *label)
{
	struct json_object *ann;
	int r;

	r = oci_json_get(c, m, label, "", "annotations", json_type_object,
			 false, &ann);
	if (r == 0)
		r = spec_key(c, ann, label, "annotations", CFS_SPEC_MERGED,
			     c->img->spec_merged, &c->img->spec_merged_sig);
	if (r == 0)
		r = oci_json_get(c, cfg_o, label, "config", "annotations",
				 json_type_object, false, &ann);
	if (r == 0)
		r = spec_key(c, ann, label, "config.annotations",
			     CFS_SPEC_CONFIG, c->img->spec_config,
			     &c->img->spec_config_sig);
	return r;
}

/* Image manifest @m (document @label, digest t->digest). */
int oci_load_manifest(struct oci_ctx *c, struct json_object *m,
		      const struct oci_target *t, const char *label)
{
	struct cfs_oci_image *img = c->img;
	_cleanup_json_ struct json_object *cfg = NULL;
	struct json_object *cfg_o, *layers;
	struct oci_desc d;
	char key[64], cfg_label[96], path[96], from[128];
	char q[OCI_QUOTE_MAX + 4];
	int r;

	img->manifest_digest = strdup(t->digest);
	if (!img->manifest_digest)
		return cfs_error(ENOMEM, "%s: out of memory", c->src);

	r = oci_json_get(c, m, label, "", "config", json_type_object, true,
			 &cfg_o);
	if (r < 0)
		return r;
	r = oci_parse_desc(c, cfg_o, label, "config", &d);
	if (r < 0)
		return r;
	if (!d.media_type)
		return cfs_error(EINVAL, "%s: %s: config.mediaType is missing",
				 c->src, label);
	if (strcmp(d.media_type, MT_OCI_CONFIG) &&
	    strcmp(d.media_type, MT_DOCKER_CONFIG))
		return cfs_error(EOPNOTSUPP,
				 "%s: %s: config media type %s: not a "
				 "container image",
				 c->src, label, oci_quote(d.media_type, q));
	r = oci_require_sha256(c, label, "config.digest", d.digest);
	if (r < 0)
		return r;
	img->config_digest = strdup(d.digest);
	if (!img->config_digest)
		return cfs_error(ENOMEM, "%s: out of memory", c->src);
	r = load_spec_keys(c, m, cfg_o, label);
	if (r < 0)
		return r;

	r = oci_json_get(c, m, label, "", "layers", json_type_array, true,
			 &layers);
	if (r < 0)
		return r;
	r = oci_alloc_layers(c, json_object_array_length(layers), label);
	if (r < 0)
		return r;
	for (size_t i = 0; i < img->n_layers; i++) {
		struct cfs_oci_layer *l = &img->layers[i];
		struct oci_desc ld;

		snprintf(key, sizeof(key), "layers[%zu]", i);
		r = oci_parse_desc(c, json_object_array_get_idx(layers, i),
				   label, key, &ld);
		if (r < 0)
			return r;
		snprintf(key, sizeof(key), "layers[%zu].digest", i);
		r = oci_require_sha256(c, label, key, ld.digest);
		if (r < 0)
			return r;
		if (!ld.media_type)
			return cfs_error(EINVAL,
					 "%s: %s: layers[%zu].mediaType is "
					 "missing",
					 c->src, label, i);
		if (layer_compression(ld.media_type, &l->compression) < 0)
			return cfs_error(EOPNOTSUPP,
					 "%s: %s: layer %s: unsupported media "
					 "type %s",
					 c->src, label, ld.digest,
					 oci_quote(ld.media_type, q));
		r = sealed_hex(c, label, ld.digest, CFS_ANNOTATION_LAYER,
			       ld.sealed_layer, l->sealed_layer);
		if (r == 0)
			r = sealed_hex(c, label, ld.digest,
				       CFS_ANNOTATION_MERGED, ld.sealed_merged,
				       l->sealed_merged);
		if (r < 0)
			return r;
		l->digest = strdup(ld.digest);
		l->media_type = strdup(ld.media_type);
		oci_blob_path(path, sizeof(path), ld.digest);
		c->st->layer_paths[i] = strdup(path);
		if (!l->digest || !l->media_type || !c->st->layer_paths[i])
			return cfs_error(ENOMEM, "%s: out of memory", c->src);
		l->size = ld.size;
		l->verify_blob = true;
	}

	snprintf(cfg_label, sizeof(cfg_label), "config %s", d.digest);
	snprintf(from, sizeof(from), "descriptor in %s", label);
	oci_blob_path(path, sizeof(path), d.digest);
	r = oci_read_json(c, cfg_label, path, d.digest, d.size, from,
			  &img->config, &img->config_len, &cfg);
	if (r < 0)
		return r;
	return oci_parse_diff_ids(c, cfg, cfg_label, label);
}

/* Index or manifest? From the document's mediaType, else the
 * descriptor's, else its keys. */
int oci_doc_kind(struct oci_ctx *c, struct json_object *doc,
		 const struct oci_target *t, const char *label,
		 enum doc_kind *kind)
{
	char q[OCI_QUOTE_MAX + 4], q2[OCI_QUOTE_MAX + 4];
	struct json_object *v;
	const char *mt;
	int r;

	if (!json_object_is_type(doc, json_type_object))
		return oci_type_error(c, label, "the document", doc,
				      json_type_object);
	r = oci_json_get(c, doc, label, "", "schemaVersion", json_type_int,
			 false, &v);
	if (r < 0)
		return r;
	if (v && json_object_get_int64(v) != 2)
		return cfs_error(EOPNOTSUPP,
				 "%s: %s: schemaVersion %lld is not supported "
				 "(only 2)",
				 c->src, label,
				 (long long)json_object_get_int64(v));
	r = oci_json_get_string(c, doc, label, "", "mediaType", false, &mt);
	if (r < 0)
		return r;
	if (mt && t->media_type[0] &&
	    is_index_type(mt) != is_index_type(t->media_type))
		return cfs_error(EINVAL, "%s: %s: mediaType %s, %s says %s",
				 c->src, label, oci_quote(mt, q), t->from,
				 oci_quote(t->media_type, q2));
	if (!mt && t->media_type[0])
		mt = t->media_type;
	if (mt) {
		if (is_index_type(mt))
			*kind = DOC_INDEX;
		else if (is_manifest_type(mt))
			*kind = DOC_MANIFEST;
		else
			return cfs_error(EOPNOTSUPP,
					 "%s: %s: unsupported media type %s",
					 c->src, label, oci_quote(mt, q));
		return 0;
	}
	if (json_object_object_get_ex(doc, "manifests", NULL))
		*kind = DOC_INDEX;
	else if (json_object_object_get_ex(doc, "layers", NULL))
		*kind = DOC_MANIFEST;
	else
		return cfs_error(EINVAL,
				 "%s: %s: neither an image index nor a "
				 "manifest",
				 c->src, label);
	return 0;
}

static int set_target(struct oci_ctx *c, struct oci_target *t,
		      const struct oci_desc *d, const char *from,
		      const char *key)
{
	int r = oci_require_sha256(c, from, key, d->digest);

	if (r < 0)
		return r;
	memset(t, 0, sizeof(*t));
	snprintf(t->digest, sizeof(t->digest), "%s", d->digest);
	/* A longer media type is none we know; keep it recognisably. */
	if (d->media_type)
		snprintf(t->media_type, sizeof(t->media_type), "%s",
			 d->media_type);
	t->size = d->size;
	snprintf(t->from, sizeof(t->from), "descriptor in %s", from);
	return 0;
}

/* Entries of index @idx a platform choice may take. */
static bool selectable(const struct oci_desc *d)
{
	return !d->media_type || is_index_type(d->media_type) ||
	       is_manifest_type(d->media_type);
}

/* How well entry @d matches the wanted platform; an index without a
 * platform is descended into if no manifest matches (no backtracking:
 * one document per level keeps the work bounded). */
static int entry_score(const struct oci_ctx *c, const struct oci_desc *d)
{
	if (!d->os && d->media_type && is_index_type(d->media_type))
		return 0;
	return oci_platform_score(&c->want, d);
}

/* "oci:PATH" or "oci-archive:FILE", for a hint in a message. */
static const char *layout_syntax(const struct oci_ctx *c)
{
	return strncmp(c->src, "oci:", 4) ? "oci-archive:FILE" : "oci:PATH";
}

/* At most this many digests are named when several images tie. */
#define TIES_SHOWN 4

/*
 * Of the entries @ds[0..@n) of index @label marked in @cand (all when
 * @cand is NULL), the one whose platform matches best, in *@best
 * (SIZE_MAX when none does). Two entries of different digests that
 * match equally well are two images for the platform: taking the first
 * would be a silent choice, so it is -EINVAL naming their digests (a
 * digest REF picks one). Entries of one digest are one image.
 */
static int best_platform(struct oci_ctx *c, const char *label,
			 const struct oci_desc *ds, const bool *cand, size_t n,
			 size_t *best)
{
	const char *shown[TIES_SHOWN];
	char list[400] = "";
	size_t n_shown = 0;
	int best_score = -1;

	*best = SIZE_MAX;
	for (size_t i = 0; i < n; i++) {
		int s;

		if ((cand && !cand[i]) || !selectable(&ds[i]))
			continue;
		s = entry_score(c, &ds[i]);
		if (s > best_score) {
			best_score = s;
			*best = i;
		}
	}
	if (*best == SIZE_MAX)
		return 0;
	/* The digests that match as well, *best's first: a second one is
	 * a tie. */
	for (size_t i = *best; i < n; i++) {
		bool seen = false;

		if ((cand && !cand[i]) || !selectable(&ds[i]) ||
		    entry_score(c, &ds[i]) != best_score)
			continue;
		for (size_t k = 0; k < n_shown; k++)
			seen = seen || !strcmp(shown[k], ds[i].digest);
		if (seen)
			continue;
		if (n_shown == TIES_SHOWN) {
			oci_list_add(list, sizeof(list), "...");
			break;
		}
		shown[n_shown++] = ds[i].digest;
		oci_list_add(list, sizeof(list), ds[i].digest);
	}
	if (n_shown < 2)
		return 0;
	*best = SIZE_MAX;
	return cfs_error(EINVAL,
			 "%s: %s: more than one image for %s: %s; choose one "
			 "with %s:DIGEST",
			 c->src, label, c->want_str, list, layout_syntax(c));
}

/*
 * The entry of a nested index @idx (@label) matching the platform best
 * (several images matching equally well are an error). An index whose
 * only usable entry has no platform gets that entry; an index entry
 * without platform is taken when nothing else matches.
 */
static int select_platform(struct oci_ctx *c, struct json_object *idx,
			   const char *label, struct oci_target *t)
{
	struct json_object *list;
	_cleanup_free_ struct oci_desc *ds = NULL;
	char key[64], plats[512] = "", p[128];
	size_t n, best, usable = 0, only = 0;
	int r;

	r = oci_json_get(c, idx, label, "", "manifests", json_type_array, true,
			 &list);
	if (r < 0)
		return r;
	n = json_object_array_length(list);
	ds = calloc(n ? n : 1, sizeof(*ds));
	if (!ds)
		return cfs_error(ENOMEM, "%s: out of memory", c->src);
	for (size_t i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "manifests[%zu]", i);
		r = oci_parse_desc(c, json_object_array_get_idx(list, i), label,
				   key, &ds[i]);
		if (r < 0)
			return r;
		if (!selectable(&ds[i]))
			continue;
		if (!usable++)
			only = i;
		oci_format_platform(p, sizeof(p), &ds[i]);
		oci_list_add(plats, sizeof(plats), p);
	}
	r = best_platform(c, label, ds, NULL, n, &best);
	if (r < 0)
		return r;
	if (best == SIZE_MAX && usable == 1 && !ds[only].os)
		best = only;
	if (best == SIZE_MAX)
		return cfs_error(ENOENT,
				 "%s: %s: no image for %s (platforms: %s)",
				 c->src, label, c->want_str,
				 plats[0] ? plats : "none");
	snprintf(key, sizeof(key), "manifests[%zu].digest", best);
	return set_target(c, t, &ds[best], label, key);
}

/* ref is "sha256:<hex>", "@sha256:<hex>" or "<other alg>:<hex>"? */
static int ref_digest(struct oci_ctx *c, const char **digest)
{
	const char *r = c->ref;
	const char *colon;
	char q[OCI_QUOTE_MAX + 4];
	int e;

	*digest = NULL;
	if (r[0] == '@')
		r++;
	e = oci_check_digest(r);
	if (e == 0) {
		*digest = r;
		return 0;
	}
	colon = strchr(r, ':');
	/* "name:tag" is a tag even though it fits the digest grammar; an
	 * unknown algorithm shows as a long hex string. */
	if (c->ref[0] == '@' || !strncmp(r, "sha256:", 7) ||
	    (e == -EOPNOTSUPP && strlen(colon + 1) >= 32 &&
	     oci_is_hex_lower(colon + 1, strlen(colon + 1)))) {
		if (e == -EOPNOTSUPP)
			return cfs_error(EOPNOTSUPP,
					 "%s: reference %s: unsupported "
					 "digest algorithm (only sha256)",
					 c->src, oci_quote(c->ref, q));
		return cfs_error(EINVAL, "%s: reference %s: malformed digest",
				 c->src, oci_quote(c->ref, q));
	}
	return 0;
}

/*
 * "sha256-<64 hex>": the tag under which registries without the
 * referrers API (and layouts, like cfs_artifact()'s) keep the artifacts
 * that refer to a manifest. Not an image to pick when no REF is given.
 */
static bool is_referrers_tag(const char *tag)
{
	return tag && strlen(tag) == 7 + CFS_DIGEST_HEX_SIZE &&
	       strncmp(tag, "sha256-", 7) == 0 &&
	       strspn(tag + 7, "0123456789abcdef") == CFS_DIGEST_HEX_SIZE;
}

/* The entry of index.json that REF names, or the only image in it. */
static int select_top(struct oci_ctx *c, struct json_object *idx,
		      struct oci_target *t)
{
	const char *label = "index.json";
	struct json_object *list;
	_cleanup_free_ struct oci_desc *ds = NULL;
	_cleanup_free_ bool *cand = NULL;
	char key[64], tags[400] = "", q[OCI_QUOTE_MAX + 4], tag_label[256];
	const char *digest = NULL, *first = NULL, *first_tag = NULL;
	size_t n, n_cand = 0, untagged = 0, first_i = 0, best;
	bool same = true, all_plat = true, same_tag = true;
	int r;

	if (!json_object_is_type(idx, json_type_object))
		return oci_type_error(c, label, "the document", idx,
				      json_type_object);
	r = oci_json_get(c, idx, label, "", "manifests", json_type_array, true,
			 &list);
	if (r < 0)
		return r;
	n = json_object_array_length(list);
	ds = calloc(n ? n : 1, sizeof(*ds));
	cand = calloc(n ? n : 1, sizeof(*cand));
	if (!ds || !cand)
		return cfs_error(ENOMEM, "%s: out of memory", c->src);
	for (size_t i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "manifests[%zu]", i);
		r = oci_parse_desc(c, json_object_array_get_idx(list, i), label,
				   key, &ds[i]);
		if (r < 0)
			return r;
		if (ds[i].ref_name)
			oci_list_add(tags, sizeof(tags), ds[i].ref_name);
		else
			untagged++;
	}
	if (untagged) {
		char u[48];
		snprintf(u, sizeof(u), "%zu untagged", untagged);
		oci_list_add(tags, sizeof(tags), u);
	}

	if (c->ref) {
		r = ref_digest(c, &digest);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < n; i++) {
		if (!c->ref)
			cand[i] = !is_referrers_tag(ds[i].ref_name);
		else if (digest)
			cand[i] = !strcmp(ds[i].digest, digest);
		else
			cand[i] = ds[i].ref_name &&
				  !strcmp(ds[i].ref_name, c->ref);
		if (!cand[i])
			continue;
		if (!n_cand++) {
			first = ds[i].digest;
			first_i = i;
			first_tag = ds[i].ref_name;
		} else {
			if (strcmp(first, ds[i].digest))
				same = false;
			if (!first_tag != !ds[i].ref_name ||
			    (first_tag && strcmp(first_tag, ds[i].ref_name)))
				same_tag = false;
		}
		if (!ds[i].os)
			all_plat = false;
	}

	if (n_cand == 0 && digest) {
		/* Any manifest or index of the layout, e.g. one platform's
		 * manifest inside a multi-platform index. */
		memset(t, 0, sizeof(*t));
		snprintf(t->digest, sizeof(t->digest), "%s", digest);
		t->size = -1;
		snprintf(t->from, sizeof(t->from), "the reference");
		return 0;
	}
	if (n_cand == 0 && !c->ref)
		return cfs_error(ENOENT, "%s: index.json lists no images",
				 c->src);
	if (n_cand == 0)
		return cfs_error(ENOENT,
				 "%s: no image tagged \"%s\" in index.json "
				 "(tags: %s)",
				 c->src, oci_quote(c->ref, q),
				 tags[0] ? tags : "none");
	if (same) {
		snprintf(key, sizeof(key), "manifests[%zu].digest", first_i);
		return set_target(c, t, &ds[first_i], label, key);
	}
	/* Several images: fine if they are one image for several
	 * platforms (an index.json written as a multi-platform index):
	 * each has a platform and, without REF, they share one tag or none
	 * (entries that differ only in platform). Two of them for the
	 * wanted platform are still two images. */
	if (all_plat && (c->ref || same_tag)) {
		if (c->ref)
			snprintf(tag_label, sizeof(tag_label),
				 "index.json: tag \"%s\"",
				 oci_quote(c->ref, q));
		r = best_platform(c, c->ref ? tag_label : label, ds, cand, n,
				  &best);
		if (r < 0)
			return r;
		if (best == SIZE_MAX)
			return cfs_error(ENOENT,
					 "%s: index.json: no image for %s",
					 c->src, c->want_str);
		snprintf(key, sizeof(key), "manifests[%zu].digest", best);
		return set_target(c, t, &ds[best], label, key);
	}
	if (c->ref)
		return cfs_error(EINVAL,
				 "%s: index.json: tag \"%s\" names %zu "
				 "different images",
				 c->src, oci_quote(c->ref, q), n_cand);
	return cfs_error(EINVAL,
			 "%s: index.json lists %zu images; choose one with "
			 "%s:REF (tags: %s)",
			 c->src, n_cand, layout_syntax(c),
			 tags[0] ? tags : "none");
}

/* Follow @t through image indexes down to a manifest and load it. */
static int resolve(struct oci_ctx *c, struct oci_target *t)
{
	for (int depth = 0;; depth++) {
		_cleanup_json_ struct json_object *doc = NULL;
		_cleanup_free_ uint8_t *raw = NULL;
		size_t raw_len = 0;
		char label[96], path[96];
		enum doc_kind kind = DOC_MANIFEST;
		bool index = t->media_type[0] && is_index_type(t->media_type);
		int r;

		snprintf(label, sizeof(label), "%s %s",
			 index ? "index" : "manifest", t->digest);
		oci_blob_path(path, sizeof(path), t->digest);
		r = oci_read_json(c, label, path, t->digest, t->size, t->from,
				  &raw, &raw_len, &doc);
		if (r < 0)
			return r;
		r = oci_doc_kind(c, doc, t, label, &kind);
		if (r < 0)
			return r;
		if (kind == DOC_MANIFEST) {
			c->img->manifest = TAKE_PTR(raw);
			c->img->manifest_len = raw_len;
			return oci_load_manifest(c, doc, t, label);
		}
		snprintf(label, sizeof(label), "index %s", t->digest);
		if (depth >= CFS_OCI_INDEX_DEPTH_MAX)
			return cfs_error(E2BIG,
					 "%s: %s: image indexes nested more "
					 "than %d deep",
					 c->src, label,
					 CFS_OCI_INDEX_DEPTH_MAX);
		r = select_platform(c, doc, label, t);
		if (r < 0)
			return r;
	}
}

/* oci: and oci-archive: */
int oci_open_layout(struct oci_ctx *c)
{
	_cleanup_json_ struct json_object *layout = NULL, *idx = NULL;
	const char *version;
	char q[OCI_QUOTE_MAX + 4];
	struct oci_target t;
	int r;

	if (c->st->kind == STORE_TAR && !oci_member_find(c->st, "oci-layout"))
		return cfs_error(ENOENT,
				 "%s: no oci-layout in the archive: "
				 "not an OCI image layout%s",
				 c->src,
				 oci_member_find(c->st, "manifest.json") ?
					 " (a docker-archive?)" :
					 "");
	r = oci_read_json(c, "oci-layout", "oci-layout", NULL, -1, NULL, NULL,
			  NULL, &layout);
	if (r == -ENOENT)
		return cfs_error(ENOENT,
				 "%s: no oci-layout file: not an OCI image "
				 "layout",
				 c->src);
	if (r < 0)
		return r;
	if (!json_object_is_type(layout, json_type_object))
		return oci_type_error(c, "oci-layout", "the document", layout,
				      json_type_object);
	r = oci_json_get_string(c, layout, "oci-layout", "",
				"imageLayoutVersion", true, &version);
	if (r < 0)
		return r;
	if (strcmp(version, "1.0.0"))
		return cfs_error(EOPNOTSUPP,
				 "%s: oci-layout: imageLayoutVersion \"%s\" is "
				 "not supported (only 1.0.0)",
				 c->src, oci_quote(version, q));

	r = oci_read_json(c, "index.json", "index.json", NULL, -1, NULL, NULL,
			  NULL, &idx);
	if (r < 0)
		return r;
	r = select_top(c, idx, &t);
	if (r < 0)
		return r;
	return resolve(c, &t);
}
