/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * docker save archives: manifest.json, the config and the layers.
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
#include "common/digest.h"
#include "common/error.h"
#include "common/util.h"
#include "convert/oci-internal.h"

/* ---- docker-archive ----------------------------------------------------- */

/*
 * Docker's normalisation of a reference, enough to compare names:
 * "debian" -> "docker.io/library/debian:latest". -EINVAL if it is not
 * a plausible reference.
 */
static int docker_normalize(const char *ref, char *out, size_t size)
{
	const char *slash = strchr(ref, '/');
	const char *prefix = "", *last, *tag;

	if (!*ref || strlen(ref) > OCI_REF_MAX)
		return -EINVAL;
	if (!slash) {
		prefix = "docker.io/library/";
	} else {
		size_t n = (size_t)(slash - ref);
		bool domain = memchr(ref, '.', n) || memchr(ref, ':', n) ||
			      (n == 9 && !memcmp(ref, "localhost", 9));

		if (!domain) {
			prefix = "docker.io/";
		} else if (n == 9 && !memcmp(ref, "docker.io", 9) &&
			   !strchr(slash + 1, '/')) {
			prefix = "docker.io/library/";
			ref = slash + 1;
		}
	}
	last = strrchr(ref, '/');
	last = last ? last + 1 : ref;
	tag = strchr(last, ':') || strchr(last, '@') ? "" : ":latest";
	if ((size_t)snprintf(out, size, "%s%s%s", prefix, ref, tag) >= size)
		return -EINVAL;
	return 0;
}

static bool repo_tag_matches(const char *tag, const char *ref)
{
	char a[OCI_REF_MAX + 64], b[OCI_REF_MAX + 64];

	if (!strcmp(tag, ref))
		return true;
	return docker_normalize(tag, a, sizeof(a)) == 0 &&
	       docker_normalize(ref, b, sizeof(b)) == 0 && !strcmp(a, b);
}

/* Tags of all entries, for messages. */
static void docker_tags(struct json_object *list, char *buf, size_t size)
{
	size_t n = json_object_array_length(list);

	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(list, i);
		struct json_object *tags;
		bool any = false;

		if (json_object_is_type(e, json_type_object) &&
		    json_object_object_get_ex(e, "RepoTags", &tags) &&
		    json_object_is_type(tags, json_type_array)) {
			size_t m = json_object_array_length(tags);
			for (size_t j = 0; j < m; j++) {
				struct json_object *s =
					json_object_array_get_idx(tags, j);
				if (json_object_is_type(s, json_type_string)) {
					oci_list_add(buf, size,
						     json_object_get_string(s));
					any = true;
				}
			}
		}
		if (!any) {
			char at[32];
			snprintf(at, sizeof(at), "@%zu", i);
			oci_list_add(buf, size, at);
		}
	}
}

/* Entries @a and @b of manifest.json are one image: the same config
 * and the same layers. */
static bool same_docker_image(struct json_object *a, struct json_object *b)
{
	struct json_object *ca = NULL, *cb = NULL, *la = NULL, *lb = NULL;

	json_object_object_get_ex(a, "Config", &ca);
	json_object_object_get_ex(b, "Config", &cb);
	json_object_object_get_ex(a, "Layers", &la);
	json_object_object_get_ex(b, "Layers", &lb);
	return json_object_equal(ca, cb) && json_object_equal(la, lb);
}

/* Entry of manifest.json that REF names. */
static int docker_select(struct oci_ctx *c, struct json_object *list,
			 size_t *out)
{
	size_t n = json_object_array_length(list);
	char tags[400], q[OCI_QUOTE_MAX + 4], key[128];
	int r;

	docker_tags(list, tags, sizeof(tags));
	if (!c->ref) {
		if (n == 1) {
			*out = 0;
			return 0;
		}
		if (n == 0)
			return cfs_error(ENOENT,
					 "%s: manifest.json lists no images",
					 c->src);
		return cfs_error(EINVAL,
				 "%s: manifest.json lists %zu images; choose "
				 "one with docker-archive:FILE:NAME:TAG or "
				 "FILE:@N (tags: %s)",
				 c->src, n, tags);
	}
	if (c->ref[0] == '@') {
		const char *p = c->ref + 1;
		size_t v = 0;

		if (!*p || strlen(p) > 9 ||
		    strspn(p, "0123456789") != strlen(p))
			return cfs_error(EINVAL,
					 "%s: reference %s: expected @N, a "
					 "position in manifest.json",
					 c->src, oci_quote(c->ref, q));
		for (; *p; p++)
			v = v * 10 + (size_t)(*p - '0');
		if (v >= n)
			return cfs_error(ENOENT,
					 "%s: no image %s: manifest.json lists "
					 "only %zu",
					 c->src, oci_quote(c->ref, q), n);
		*out = v;
		return 0;
	}
	/* An exact match first, then docker's normalised names. A tag of
	 * two different images (docker save never writes one) names
	 * neither: choosing the first would be a silent choice. */
	for (int pass = 0; pass < 2; pass++) {
		size_t found = SIZE_MAX, others = 0;
		char at[400] = "";

		for (size_t i = 0; i < n; i++) {
			struct json_object *e =
				json_object_array_get_idx(list, i);
			struct json_object *rt;
			const char *s;
			char label[48];
			size_t j = 0;

			snprintf(label, sizeof(label), "[%zu]", i);
			if (!json_object_is_type(e, json_type_object))
				return oci_type_error(c, "manifest.json", label,
						      e, json_type_object);
			r = oci_json_get(c, e, "manifest.json", label,
					 "RepoTags", json_type_array, false,
					 &rt);
			if (r < 0)
				return r;
			for (; rt && j < json_object_array_length(rt); j++) {
				snprintf(key, sizeof(key), "%s.RepoTags[%zu]",
					 label, j);
				r = oci_json_elem_string(
					c, json_object_array_get_idx(rt, j),
					"manifest.json", key, &s);
				if (r < 0)
					return r;
				if (pass == 0 ? !strcmp(s, c->ref) :
						repo_tag_matches(s, c->ref))
					break;
			}
			if (!rt || j == json_object_array_length(rt))
				continue;
			if (found == SIZE_MAX) {
				found = i;
				snprintf(at, sizeof(at), "@%zu", i);
			} else if (!same_docker_image(json_object_array_get_idx(
							      list, found),
						      e)) {
				snprintf(label, sizeof(label), "@%zu", i);
				oci_list_add(at, sizeof(at), label);
				others++;
			}
		}
		if (others)
			return cfs_error(EINVAL,
					 "%s: tag \"%s\" names several images "
					 "in manifest.json (%s); choose one "
					 "with docker-archive:FILE:@N",
					 c->src, oci_quote(c->ref, q), at);
		if (found != SIZE_MAX) {
			*out = found;
			return 0;
		}
	}
	return cfs_error(
		ENOENT,
		"%s: no image tagged \"%s\" in manifest.json (tags: %s)",
		c->src, oci_quote(c->ref, q), tags);
}

/* The digest a docker-archive config's name promises: "<hex>.json" or
 * "blobs/sha256/<hex>". NULL if the name promises nothing. */
static const char *config_name_hex(const char *name)
{
	const char *base = strrchr(name, '/');
	size_t len;

	base = base ? base + 1 : name;
	len = strlen(base);
	if (len == CFS_DIGEST_HEX_SIZE + 5 && !strcmp(base + 64, ".json") &&
	    oci_is_hex_lower(base, CFS_DIGEST_HEX_SIZE))
		return base;
	if (len == CFS_DIGEST_HEX_SIZE && oci_is_hex_lower(base, len) &&
	    base - name >= 13 && !memcmp(base - 13, "blobs/sha256/", 13))
		return base;
	return NULL;
}

int oci_open_docker_archive(struct oci_ctx *c)
{
	struct cfs_oci_image *img = c->img;
	_cleanup_json_ struct json_object *list = NULL, *cfg = NULL;
	struct json_object *e, *layers;
	const struct oci_member *m;
	const char *cfg_name, *want_hex, *lname;
	char label[48], key[80], cfg_label[OCI_QUOTE_MAX + 16];
	char got[CFS_SHA256_STR_SIZE], q[OCI_QUOTE_MAX + 4];
	size_t idx = 0;
	int r;

	if (!oci_member_find(c->st, "manifest.json"))
		return cfs_error(ENOENT,
				 "%s: no manifest.json in the archive: not a "
				 "docker-archive%s",
				 c->src,
				 oci_member_find(c->st, "oci-layout") ?
					 " (an oci-archive?)" :
					 "");
	r = oci_read_json(c, "manifest.json", "manifest.json", NULL, -1, NULL,
			  NULL, NULL, &list);
	if (r < 0)
		return r;
	if (!json_object_is_type(list, json_type_array))
		return oci_type_error(c, "manifest.json", "the document", list,
				      json_type_array);
	r = docker_select(c, list, &idx);
	if (r < 0)
		return r;
	snprintf(label, sizeof(label), "[%zu]", idx);
	e = json_object_array_get_idx(list, idx);
	if (!json_object_is_type(e, json_type_object))
		return oci_type_error(c, "manifest.json", label, e,
				      json_type_object);
	r = oci_json_get_string(c, e, "manifest.json", label, "Config", true,
				&cfg_name);
	if (r < 0)
		return r;
	r = oci_json_get(c, e, "manifest.json", label, "Layers",
			 json_type_array, true, &layers);
	if (r < 0)
		return r;
	r = oci_alloc_layers(c, json_object_array_length(layers),
			     "manifest.json");
	if (r < 0)
		return r;

	/* The config: its digest is its bytes' hash, which the name
	 * promises when it is "<hex>.json". */
	snprintf(cfg_label, sizeof(cfg_label), "config %s",
		 oci_quote(cfg_name, q));
	r = oci_read_json(c, cfg_label, cfg_name, NULL, -1, NULL, &img->config,
			  &img->config_len, &cfg);
	if (r < 0)
		return r;
	if (cfs_sha256(img->config, img->config_len, NULL, got) < 0)
		return cfs_error(EIO, "%s: %s: SHA-256 failed", c->src,
				 cfg_label);
	want_hex = config_name_hex(cfg_name);
	if (want_hex && memcmp(got + 7, want_hex, CFS_DIGEST_HEX_SIZE))
		return cfs_error(EBADMSG,
				 "%s: %s: content has digest %s, the name "
				 "says sha256:%.64s",
				 c->src, cfg_label, got, want_hex);
	img->config_digest = strdup(got);
	if (!img->config_digest)
		return cfs_error(ENOMEM, "%s: out of memory", c->src);

	for (size_t i = 0; i < img->n_layers; i++) {
		struct cfs_oci_layer *l = &img->layers[i];
		uint8_t magic[4] = { 0 };
		char llabel[OCI_QUOTE_MAX + 32];

		snprintf(key, sizeof(key), "%s.Layers[%zu]", label, i);
		r = oci_json_elem_string(c,
					 json_object_array_get_idx(layers, i),
					 "manifest.json", key, &lname);
		if (r < 0)
			return r;
		snprintf(llabel, sizeof(llabel), "layer %zu (%s)", i,
			 oci_quote(lname, q));
		r = oci_archive_resolve(c, llabel, lname, &m);
		if (r < 0)
			return r;
		if (m->size >= sizeof(magic)) {
			r = oci_pread_full(c->st->fd, magic, sizeof(magic),
					   m->offset);
			if (r < 0)
				return cfs_error_errno(r == -EIO ? EIO : -r,
						       "%s: %s: reading",
						       c->src, llabel);
		}
		if (magic[0] == 0x1f && magic[1] == 0x8b)
			l->compression = CFS_LAYER_GZIP;
		else if (magic[0] == 0x28 && magic[1] == 0xb5 &&
			 magic[2] == 0x2f && magic[3] == 0xfd)
			l->compression = CFS_LAYER_ZSTD;
		else
			l->compression = CFS_LAYER_TAR;
		l->media_type = strdup(l->compression == CFS_LAYER_GZIP ?
					       MT_DOCKER_LAYER ".gzip" :
				       l->compression == CFS_LAYER_ZSTD ?
					       MT_DOCKER_LAYER ".zstd" :
					       MT_DOCKER_LAYER);
		c->st->layer_paths[i] = strdup(m->name);
		if (!l->media_type || !c->st->layer_paths[i])
			return cfs_error(ENOMEM, "%s: out of memory", c->src);
		l->size = (int64_t)m->size;
		l->verify_blob = false;
	}
	r = oci_parse_diff_ids(c, cfg, cfg_label, "manifest.json");
	if (r < 0)
		return r;
	/* No descriptor: the layer is named by what the converter checks. */
	for (size_t i = 0; i < img->n_layers; i++) {
		img->layers[i].digest = strdup(img->layers[i].diff_id);
		if (!img->layers[i].digest)
			return cfs_error(ENOMEM, "%s: out of memory", c->src);
	}
	return 0;
}
