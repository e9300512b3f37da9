/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * JSON for OCI documents: parsing (common/json.h's rules, a message
 * naming the document), typed member access with messages naming the
 * document and the key, descriptors.
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
#include "common/json.h"
#include "common/util.h"
#include "convert/oci-internal.h"

/* ---- JSON ------------------------------------------------------------- */

int oci_parse_json(struct oci_ctx *c, const char *label, const char *buf,
		   size_t len, struct json_object **out)
{
	int r;

	assert(len <= CFS_OCI_JSON_MAX);
	r = cfs_json_parse(buf, len, out);
	return r < 0 ? cfs_error_prefix(-r, "%s: %s", c->src, label) : 0;
}

static const char *type_name(enum json_type t)
{
	switch (t) {
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	case json_type_string:
		return "a string";
	case json_type_int:
		return "an integer";
	case json_type_double:
		return "a number";
	case json_type_boolean:
		return "a boolean";
	default:
		return "null";
	}
}

int oci_type_error(struct oci_ctx *c, const char *label, const char *key,
		   struct json_object *v, enum json_type want)
{
	return cfs_error(EINVAL, "%s: %s: %s is %s, expected %s", c->src, label,
			 key, type_name(json_object_get_type(v)),
			 type_name(want));
}

/*
 * Member @key of object @o, of type @type. Absent and null are the same;
 * an error if @required. @path names @o in messages ("" at the top,
 * "layers[2]" below).
 */
int oci_json_get(struct oci_ctx *c, struct json_object *o, const char *label,
		 const char *path, const char *key, enum json_type type,
		 bool required, struct json_object **out)
{
	char name[128];
	struct json_object *v = NULL;

	*out = NULL;
	snprintf(name, sizeof(name), "%s%s%s", path, *path ? "." : "", key);
	if (!json_object_object_get_ex(o, key, &v) ||
	    json_object_is_type(v, json_type_null)) {
		if (required)
			return cfs_error(EINVAL, "%s: %s: %s is missing",
					 c->src, label, name);
		return 0;
	}
	if (!json_object_is_type(v, type))
		return oci_type_error(c, label, name, v, type);
	*out = v;
	return 0;
}

int oci_json_get_string(struct oci_ctx *c, struct json_object *o,
			const char *label, const char *path, const char *key,
			bool required, const char **out)
{
	struct json_object *v;
	int r;

	*out = NULL;
	r = oci_json_get(c, o, label, path, key, json_type_string, required,
			 &v);
	if (r < 0 || !v)
		return r;
	/* "\u0000" would cut the C string and fool comparisons. */
	if (strlen(json_object_get_string(v)) !=
	    (size_t)json_object_get_string_len(v))
		return cfs_error(EINVAL, "%s: %s: %s%s%s contains a NUL",
				 c->src, label, path, *path ? "." : "", key);
	*out = json_object_get_string(v);
	return 0;
}

/* A string that is not an object member (an array element). */
int oci_json_elem_string(struct oci_ctx *c, struct json_object *v,
			 const char *label, const char *name, const char **out)
{
	if (!json_object_is_type(v, json_type_string))
		return oci_type_error(c, label, name, v, json_type_string);
	if (strlen(json_object_get_string(v)) !=
	    (size_t)json_object_get_string_len(v))
		return cfs_error(EINVAL, "%s: %s: %s contains a NUL", c->src,
				 label, name);
	*out = json_object_get_string(v);
	return 0;
}

/* Descriptor @o at @path of document @label; types only, the digest is
 * checked where it is used. */
int oci_parse_desc(struct oci_ctx *c, struct json_object *o, const char *label,
		   const char *path, struct oci_desc *d)
{
	struct json_object *v, *ann, *plat;
	char sub[96];
	int r;

	memset(d, 0, sizeof(*d));
	if (!json_object_is_type(o, json_type_object))
		return oci_type_error(c, label, path, o, json_type_object);
	r = oci_json_get_string(c, o, label, path, "mediaType", false,
				&d->media_type);
	if (r < 0)
		return r;
	r = oci_json_get_string(c, o, label, path, "digest", true, &d->digest);
	if (r < 0)
		return r;
	r = oci_json_get(c, o, label, path, "size", json_type_int, true, &v);
	if (r < 0)
		return r;
	d->size = json_object_get_int64(v);
	if (d->size < 0)
		return cfs_error(EINVAL, "%s: %s: %s.size is negative", c->src,
				 label, path);
	/* json-c saturates what does not fit (2^64 reads as 2^63 - 1): no
	 * blob is that large, so say so here rather than quote a size the
	 * document does not have. */
	if (d->size == INT64_MAX)
		return cfs_error(ERANGE, "%s: %s: %s.size is out of range",
				 c->src, label, path);
	r = oci_json_get(c, o, label, path, "annotations", json_type_object,
			 false, &ann);
	if (r < 0)
		return r;
	if (ann) {
		snprintf(sub, sizeof(sub), "%s.annotations", path);
		r = oci_json_get_string(c, ann, label, sub,
					"org.opencontainers.image.ref.name",
					false, &d->ref_name);
		if (r == 0)
			r = oci_json_get_string(c, ann, label, sub,
						CFS_ANNOTATION_LAYER, false,
						&d->sealed_layer);
		if (r == 0)
			r = oci_json_get_string(c, ann, label, sub,
						CFS_ANNOTATION_MERGED, false,
						&d->sealed_merged);
		if (r < 0)
			return r;
	}
	r = oci_json_get(c, o, label, path, "platform", json_type_object, false,
			 &plat);
	if (r < 0)
		return r;
	if (plat) {
		snprintf(sub, sizeof(sub), "%s.platform", path);
		r = oci_json_get_string(c, plat, label, sub, "os", true,
					&d->os);
		if (r < 0)
			return r;
		r = oci_json_get_string(c, plat, label, sub, "architecture",
					true, &d->arch);
		if (r < 0)
			return r;
		r = oci_json_get_string(c, plat, label, sub, "variant", false,
					&d->variant);
		if (r < 0)
			return r;
	}
	return 0;
}
