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
#include "convert/oci.h"

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

/* Members of an oci-archive or docker-archive kept: a layout has one
 * file per blob and a docker save three or four per layer, so 64 Ki
 * members is far beyond any image and bounds the index in memory. */
#define OCI_ARCHIVE_MEMBERS_MAX 65536
/* Longest member name kept. Blob names are ~80 bytes and docker-archive
 * paths a little more; nothing can look a longer name up. */
#define OCI_MEMBER_NAME_MAX 1024
/* Symlinks and hardlinks followed for one lookup in an archive (Linux's
 * limit for one path walk). */
#define OCI_SYMLINK_MAX 40
/* JSON nesting: image documents nest less than ten deep. */
#define OCI_JSON_DEPTH_MAX 64
/* Objects and arrays in one JSON document. json-c spends ~750 bytes on
 * an empty object, so 4 MiB of "{}," would take 1 GiB; this caps it near
 * 200 MiB while a config exposing every port (65536 "{}") still loads. */
#define OCI_JSON_CONTAINERS_MAX (4 * 65536)
/* A source string is a path and a reference. */
#define OCI_SOURCE_MAX (PATH_MAX + 1024)
/* Longest REF: a docker reference is at most 255 bytes of name plus a
 * 128-byte tag; digests are shorter. */
#define OCI_REF_MAX 512
/* Input strings quoted in messages are cut to this many bytes. */
#define OCI_QUOTE_MAX 160

/* "sha256:" + 64 hex + NUL */
#define OCI_DIGEST_STR (7 + CFS_DIGEST_HEX_SIZE + 1)

#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define MT_DOCKER_LIST                                                         \
	"application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_MANIFEST                                                     \
	"application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define MT_DOCKER_LAYER "application/vnd.docker.image.rootfs.diff.tar"

CFS_DEFINE_CLEANUP(struct json_object *, json_object_put)
#define _cleanup_json_ _cleanup_(json_object_putp)

enum store_kind {
	STORE_DIR,
	STORE_TAR,
	/* cfs_oci_open_manifest(): the manifest and config in memory, no
	 * layer blob (each comes from a cfs_blob_fetch) */
	STORE_MEM,
};

enum member_kind {
	MEMBER_FILE,
	MEMBER_SYMLINK,
	MEMBER_HARDLINK,
	MEMBER_OTHER, /* directories, devices, fifos */
};

struct oci_member {
	char *name; /* normalised: no "./", no leading or trailing '/' */
	char *link; /* symlink or hardlink target as stored */
	uint64_t offset; /* of the data in the file */
	uint64_t size;
	enum member_kind kind;
	bool sparse;
	size_t order; /* position in the archive */
};

struct cfs_oci_store {
	enum store_kind kind;
	int fd; /* layout directory, or the archive file */
	uint64_t file_size; /* STORE_TAR */
	struct oci_member *members; /* sorted by name, unique */
	size_t n_members;
	/* STORE_MEM: the one document it holds (the config), by path */
	char *mem_name;
	uint8_t *mem_data;
	size_t mem_len;
	char **layer_paths; /* per layer: path in the directory or archive */
	int *layer_fds; /* STORE_DIR: opened on first use, else -1 */
	size_t n_layers;
};

enum oci_source_kind {
	SRC_OCI,
	SRC_OCI_ARCHIVE,
	SRC_DOCKER_ARCHIVE,
};

struct oci_platform {
	char os[32];
	char arch[32];
	char variant[32];
};

struct oci_ctx {
	struct cfs_oci_image *img;
	struct cfs_oci_store *st;
	const char *src; /* the source string, first in every message */
	const char *ref; /* NULL when none was given */
	struct oci_platform want;
	char want_str[CFS_OCI_PLATFORM_MAX];
};

/* A descriptor as parsed; strings are borrowed from the JSON document. */
struct oci_desc {
	const char *media_type; /* NULL if absent */
	const char *digest;
	int64_t size;
	const char *ref_name; /* org.opencontainers.image.ref.name */
	/* composefs sealing annotations (CFS_ANNOTATION_*), NULL if absent */
	const char *sealed_layer, *sealed_merged;
	const char *os, *arch, *variant; /* NULL if there is no platform */
};

/* The next document to read, copied out of its parent. */
struct oci_target {
	char digest[OCI_DIGEST_STR];
	char media_type[128]; /* "" if unknown */
	int64_t size; /* -1 if unknown (a digest REF not in index.json) */
	char from[128]; /* who named it: "descriptor in index.json" */
};

enum doc_kind {
	DOC_INDEX,
	DOC_MANIFEST,
};

/* ---- small helpers ---------------------------------------------------- */

/* Input strings in messages: printable ASCII only, cut if long. */
static const char *quote(const char *s, char buf[OCI_QUOTE_MAX + 4])
{
	size_t i;

	if (!s)
		return "(null)";
	for (i = 0; s[i] && i < OCI_QUOTE_MAX; i++)
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (s[i])
		buf[i++] = '.', buf[i++] = '.', buf[i++] = '.';
	buf[i] = '\0';
	return buf;
}

static bool is_hex_lower(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static bool is_alg_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

/*
 * 0 for "sha256:<64 lower-case hex>"; -EOPNOTSUPP for another digest of
 * the image-spec grammar (algorithm [a-z0-9]+([+._-][a-z0-9]+)*, encoded
 * [a-zA-Z0-9=_-]+); -EINVAL for anything else.
 */
static int check_digest(const char *d)
{
	const char *colon = strchr(d, ':');
	size_t alg_len, enc_len;

	if (!colon || strlen(d) > 255)
		return -EINVAL;
	alg_len = (size_t)(colon - d);
	enc_len = strlen(colon + 1);
	if (alg_len == 6 && !memcmp(d, "sha256", 6))
		return enc_len == CFS_DIGEST_HEX_SIZE &&
				       is_hex_lower(colon + 1, enc_len) ?
			       0 :
			       -EINVAL;
	if (!alg_len || !enc_len || !is_alg_char(d[0]) ||
	    !is_alg_char(d[alg_len - 1]))
		return -EINVAL;
	for (size_t i = 1; i < alg_len; i++) {
		bool sep = strchr("+._-", d[i]) != NULL;
		if (!is_alg_char(d[i]) && !(sep && is_alg_char(d[i + 1])))
			return -EINVAL;
	}
	for (const char *p = colon + 1; *p; p++)
		if (!is_alg_char(*p) && !(*p >= 'A' && *p <= 'Z') &&
		    !strchr("=_-", *p))
			return -EINVAL;
	return -EOPNOTSUPP;
}

/* Digest @d named in @label (at @key) must be a sha256 digest. */
static int require_sha256(struct oci_ctx *c, const char *label, const char *key,
			  const char *d)
{
	char q[OCI_QUOTE_MAX + 4];
	int r = check_digest(d);

	if (r == -EOPNOTSUPP)
		return cfs_error(EOPNOTSUPP,
				 "%s: %s: %s: unsupported digest algorithm in "
				 "\"%s\" (only sha256)",
				 c->src, label, key, quote(d, q));
	if (r < 0)
		return cfs_error(EINVAL, "%s: %s: %s: malformed digest \"%s\"",
				 c->src, label, key, quote(d, q));
	return 0;
}

static void blob_path(char *buf, size_t size, const char *digest)
{
	/* digest is a checked "sha256:<hex>" */
	snprintf(buf, size, "blobs/sha256/%s", digest + 7);
}

static int sha256_str(const void *buf, size_t len, char out[OCI_DIGEST_STR])
{
	uint8_t md[CFS_DIGEST_SIZE];
	unsigned int md_len = 0;

	if (!EVP_Digest(buf, len, md, &md_len, EVP_sha256(), NULL) ||
	    md_len != CFS_DIGEST_SIZE)
		return -EIO;
	memcpy(out, "sha256:", 7);
	cfs_digest_to_hex(md, out + 7);
	return 0;
}

static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO; /* shorter than its size says */
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/*
 * Canonical form of a path inside an archive: components joined by '/',
 * no leading '/', no "." or empty components, ".." applied. -EINVAL if
 * ".." leaves the root, -ENAMETOOLONG if it does not fit.
 */
static int normalize_path(const char *in, char *out, size_t size)
{
	size_t len = 0;

	while (*in) {
		const char *end = strchrnul(in, '/');
		size_t n = (size_t)(end - in);

		if (n == 0 || (n == 1 && in[0] == '.')) {
			/* skip */
		} else if (n == 2 && in[0] == '.' && in[1] == '.') {
			if (len == 0)
				return -EINVAL;
			while (len > 0 && out[len - 1] != '/')
				len--;
			if (len > 0)
				len--; /* the '/' */
		} else {
			if (len + (len ? 1 : 0) + n + 1 > size)
				return -ENAMETOOLONG;
			if (len)
				out[len++] = '/';
			memcpy(out + len, in, n);
			len += n;
		}
		in = *end ? end + 1 : end;
	}
	out[len] = '\0';
	return 0;
}

/* ---- JSON ------------------------------------------------------------- */

/* -E2BIG if @buf has more than OCI_JSON_CONTAINERS_MAX '{' and '['
 * outside strings. */
static int count_containers(const char *buf, size_t len)
{
	bool in_string = false;
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		if (in_string) {
			if (buf[i] == '\\')
				i++;
			else if (buf[i] == '"')
				in_string = false;
		} else if (buf[i] == '"') {
			in_string = true;
		} else if ((buf[i] == '{' || buf[i] == '[') &&
			   ++n > OCI_JSON_CONTAINERS_MAX) {
			return -E2BIG;
		}
	}
	return 0;
}

static int parse_json(struct oci_ctx *c, const char *label, const char *buf,
		      size_t len, struct json_object **out)
{
	struct json_tokener *tok;
	struct json_object *obj;
	enum json_tokener_error jerr;
	const char *nul = memchr(buf, '\0', len);
	size_t end;
	int r;

	*out = NULL;
	/* json-c stops at a NUL; strict JSON never has one. */
	if (nul)
		return cfs_error(EINVAL,
				 "%s: %s: invalid JSON at byte %zu: "
				 "NUL byte",
				 c->src, label, (size_t)(nul - buf));
	assert(len <= CFS_OCI_JSON_MAX);
	r = count_containers(buf, len);
	if (r < 0)
		return cfs_error(E2BIG,
				 "%s: %s: more than %d JSON objects and arrays",
				 c->src, label, OCI_JSON_CONTAINERS_MAX);
	tok = json_tokener_new_ex(OCI_JSON_DEPTH_MAX);
	if (!tok)
		return cfs_error(ENOMEM, "%s: %s: out of memory", c->src,
				 label);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	/* The terminating NUL is passed too so that a document that ends
	 * early is an error, not a request for more input. */
	obj = json_tokener_parse_ex(tok, buf, (int)len + 1);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!obj || jerr != json_tokener_success) {
		json_object_put(obj);
		if (end > len)
			end = len;
		return cfs_error(EINVAL, "%s: %s: invalid JSON at byte %zu: %s",
				 c->src, label, end,
				 json_tokener_error_desc(jerr));
	}
	for (; end < len; end++) {
		if (!strchr(" \t\r\n", buf[end])) {
			json_object_put(obj);
			return cfs_error(EINVAL,
					 "%s: %s: invalid JSON at byte %zu: "
					 "data after the document",
					 c->src, label, end);
		}
	}
	*out = obj;
	return 0;
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

static int type_error(struct oci_ctx *c, const char *label, const char *key,
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
static int json_get(struct oci_ctx *c, struct json_object *o, const char *label,
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
		return type_error(c, label, name, v, type);
	*out = v;
	return 0;
}

static int json_get_string(struct oci_ctx *c, struct json_object *o,
			   const char *label, const char *path, const char *key,
			   bool required, const char **out)
{
	struct json_object *v;
	int r;

	*out = NULL;
	r = json_get(c, o, label, path, key, json_type_string, required, &v);
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
static int json_elem_string(struct oci_ctx *c, struct json_object *v,
			    const char *label, const char *name,
			    const char **out)
{
	if (!json_object_is_type(v, json_type_string))
		return type_error(c, label, name, v, json_type_string);
	if (strlen(json_object_get_string(v)) !=
	    (size_t)json_object_get_string_len(v))
		return cfs_error(EINVAL, "%s: %s: %s contains a NUL", c->src,
				 label, name);
	*out = json_object_get_string(v);
	return 0;
}

/* Descriptor @o at @path of document @label; types only, the digest is
 * checked where it is used. */
static int parse_desc(struct oci_ctx *c, struct json_object *o,
		      const char *label, const char *path, struct oci_desc *d)
{
	struct json_object *v, *ann, *plat;
	char sub[96];
	int r;

	memset(d, 0, sizeof(*d));
	if (!json_object_is_type(o, json_type_object))
		return type_error(c, label, path, o, json_type_object);
	r = json_get_string(c, o, label, path, "mediaType", false,
			    &d->media_type);
	if (r < 0)
		return r;
	r = json_get_string(c, o, label, path, "digest", true, &d->digest);
	if (r < 0)
		return r;
	r = json_get(c, o, label, path, "size", json_type_int, true, &v);
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
	r = json_get(c, o, label, path, "annotations", json_type_object, false,
		     &ann);
	if (r < 0)
		return r;
	if (ann) {
		snprintf(sub, sizeof(sub), "%s.annotations", path);
		r = json_get_string(c, ann, label, sub,
				    "org.opencontainers.image.ref.name", false,
				    &d->ref_name);
		if (r == 0)
			r = json_get_string(c, ann, label, sub,
					    CFS_ANNOTATION_LAYER, false,
					    &d->sealed_layer);
		if (r == 0)
			r = json_get_string(c, ann, label, sub,
					    CFS_ANNOTATION_MERGED, false,
					    &d->sealed_merged);
		if (r < 0)
			return r;
	}
	r = json_get(c, o, label, path, "platform", json_type_object, false,
		     &plat);
	if (r < 0)
		return r;
	if (plat) {
		snprintf(sub, sizeof(sub), "%s.platform", path);
		r = json_get_string(c, plat, label, sub, "os", true, &d->os);
		if (r < 0)
			return r;
		r = json_get_string(c, plat, label, sub, "architecture", true,
				    &d->arch);
		if (r < 0)
			return r;
		r = json_get_string(c, plat, label, sub, "variant", false,
				    &d->variant);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- platforms -------------------------------------------------------- */

/* Go's GOARCH for the names uname and some image builders use. */
static const char *norm_arch(const char *a)
{
	static const char *const map[][2] = {
		{ "x86_64", "amd64" },	{ "x86-64", "amd64" },
		{ "aarch64", "arm64" }, { "i386", "386" },
		{ "i486", "386" },	{ "i586", "386" },
		{ "i686", "386" },	{ "armhf", "arm" },
		{ "armel", "arm" },	{ "ppc64el", "ppc64le" },
	};

	for (size_t i = 0; i < CFS_ARRAY_SIZE(map); i++)
		if (!strcmp(a, map[i][0]))
			return map[i][1];
	return a;
}

void cfs_oci_host_platform(char buf[CFS_OCI_PLATFORM_MAX])
{
	static const char *const map[][2] = {
		{ "x86_64", "amd64" },
		{ "aarch64", "arm64/v8" },
		{ "arm64", "arm64/v8" },
		{ "armv8l", "arm/v8" },
		{ "armv7l", "arm/v7" },
		{ "armv7", "arm/v7" },
		{ "armv6l", "arm/v6" },
		{ "armv5tel", "arm/v5" },
		{ "i386", "386" },
		{ "i486", "386" },
		{ "i586", "386" },
		{ "i686", "386" },
		{ "ppc64le", "ppc64le" },
		{ "s390x", "s390x" },
		{ "riscv64", "riscv64" },
		{ "mips64", "mips64" },
		{ "loongarch64", "loong64" },
	};
	struct utsname u;
	const char *arch = "unknown";

	if (uname(&u) == 0) {
		arch = u.machine;
		for (size_t i = 0; i < CFS_ARRAY_SIZE(map); i++)
			if (!strcmp(u.machine, map[i][0]))
				arch = map[i][1];
	}
	snprintf(buf, CFS_OCI_PLATFORM_MAX, "linux/%.64s", arch);
}

static bool platform_part_ok(const char *s, size_t n)
{
	if (n == 0 || n >= 32)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alg_char(s[i]) && !(s[i] >= 'A' && s[i] <= 'Z') &&
		    !strchr("._-", s[i]))
			return false;
	return true;
}

static int parse_platform(struct oci_ctx *c, const char *s)
{
	char q[OCI_QUOTE_MAX + 4];
	char *parts[3] = { c->want.os, c->want.arch, c->want.variant };
	const char *p = s;
	size_t n = 0;

	memset(&c->want, 0, sizeof(c->want));
	while (n < 3) {
		const char *end = strchrnul(p, '/');
		if (!platform_part_ok(p, (size_t)(end - p)))
			break;
		memcpy(parts[n++], p, (size_t)(end - p));
		if (!*end) {
			p = end;
			break;
		}
		p = end + 1;
	}
	if (n < 2 || *p)
		return cfs_error(EINVAL,
				 "%s: platform \"%s\": expected "
				 "OS/ARCH[/VARIANT]",
				 c->src, quote(s, q));
	memmove(c->want.arch, norm_arch(c->want.arch),
		strlen(norm_arch(c->want.arch)) + 1);
	snprintf(c->want_str, sizeof(c->want_str), "%s/%s%s%s", c->want.os,
		 c->want.arch, c->want.variant[0] ? "/" : "", c->want.variant);
	return 0;
}

static int variant_num(const char *v)
{
	if (v[0] != 'v' || v[1] < '1' || v[1] > '9' || v[2])
		return -1;
	return v[1] - '0';
}

/*
 * How well descriptor @d's platform matches: -1 not at all, higher is
 * better. Without a wanted variant any variant does (none preferred);
 * arm64 v8 is what an arm64 entry without variant means, and 32-bit arm
 * runs older variants (containerd's matcher does the same).
 */
static int platform_score(const struct oci_platform *w,
			  const struct oci_desc *d)
{
	const char *v;
	int have, want;

	if (!d->os || !d->arch || strcmp(d->os, w->os) ||
	    strcmp(norm_arch(d->arch), w->arch))
		return -1;
	v = d->variant ? d->variant : "";
	if (!w->variant[0])
		return v[0] ? 50 : 100;
	if (!strcmp(v, w->variant))
		return 100;
	if (!strcmp(w->arch, "arm64") && !strcmp(w->variant, "v8") && !v[0])
		return 90;
	if (!strcmp(w->arch, "arm")) {
		want = variant_num(w->variant);
		have = variant_num(v);
		if (!v[0] && want >= 7)
			return 80; /* "arm" alone is v7 */
		if (have > 0 && want > 0 && have < want)
			return 10 + have;
	}
	return -1;
}

static void format_platform(char *buf, size_t size, const struct oci_desc *d)
{
	char q1[OCI_QUOTE_MAX + 4], q2[OCI_QUOTE_MAX + 4],
		q3[OCI_QUOTE_MAX + 4];

	if (!d->os)
		snprintf(buf, size, "(none)");
	else
		snprintf(buf, size, "%s/%s%s%s", quote(d->os, q1),
			 quote(d->arch, q2), d->variant ? "/" : "",
			 d->variant ? quote(d->variant, q3) : "");
}

/* Append @item to the ", "-separated list @buf, marking a cut with "...". */
static void list_add(char *buf, size_t size, const char *item)
{
	char q[OCI_QUOTE_MAX + 4];
	size_t len = strlen(buf);

	if (len >= 3 && !strcmp(buf + len - 3, "..."))
		return;
	if (len + strlen(item) + 8 > size) {
		snprintf(buf + len, size - len, "%s...", len ? ", " : "");
		return;
	}
	snprintf(buf + len, size - len, "%s%s", len ? ", " : "",
		 quote(item, q));
}

/* ---- the store -------------------------------------------------------- */

static int member_cmp(const void *a, const void *b)
{
	const struct oci_member *x = a, *y = b;
	int r = strcmp(x->name, y->name);

	if (r)
		return r;
	return x->order < y->order ? -1 : x->order > y->order;
}

static int member_key_cmp(const void *key, const void *m)
{
	return strcmp(key, ((const struct oci_member *)m)->name);
}

static const struct oci_member *member_find(struct cfs_oci_store *st,
					    const char *name)
{
	return bsearch(name, st->members, st->n_members, sizeof(*st->members),
		       member_key_cmp);
}

static void free_members(struct cfs_oci_store *st)
{
	for (size_t i = 0; i < st->n_members; i++) {
		free(st->members[i].name);
		free(st->members[i].link);
	}
	free(st->members);
	st->members = NULL;
	st->n_members = 0;
}

/* Record one archive entry at data offset @off. */
static int add_member(struct oci_ctx *c, struct archive_entry *e, int64_t off,
		      size_t *cap)
{
	struct cfs_oci_store *st = c->st;
	char name[OCI_MEMBER_NAME_MAX + 1];
	const char *path = archive_entry_pathname(e);
	const char *hard = archive_entry_hardlink(e);
	struct oci_member *m;
	int64_t size = archive_entry_size(e);

	/* Unnamed, unreachable or oversized names: nothing can look them
	 * up, so they are passed over. */
	if (!path || normalize_path(path, name, sizeof(name)) < 0 || !name[0])
		return 0;
	if (st->n_members >= OCI_ARCHIVE_MEMBERS_MAX)
		return cfs_error(E2BIG, "%s: more than %d archive members",
				 c->src, OCI_ARCHIVE_MEMBERS_MAX);
	if (st->n_members == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		struct oci_member *n =
			reallocarray(st->members, ncap, sizeof(*n));
		if (!n)
			return cfs_error(ENOMEM, "%s: out of memory", c->src);
		st->members = n;
		*cap = ncap;
	}
	m = &st->members[st->n_members];
	memset(m, 0, sizeof(*m));
	m->order = st->n_members;
	m->offset = (uint64_t)off;
	m->size = size > 0 ? (uint64_t)size : 0;
	if (hard) {
		m->kind = MEMBER_HARDLINK;
		m->link = strdup(hard);
	} else if (archive_entry_filetype(e) == AE_IFLNK) {
		const char *t = archive_entry_symlink(e);
		m->kind = MEMBER_SYMLINK;
		m->link = strdup(t ? t : "");
	} else if (archive_entry_filetype(e) == AE_IFREG) {
		m->kind = MEMBER_FILE;
		m->sparse = archive_entry_sparse_count(e) > 0;
	} else {
		m->kind = MEMBER_OTHER;
	}
	m->name = strdup(name);
	if (!m->name || (m->kind == MEMBER_SYMLINK && !m->link) ||
	    (m->kind == MEMBER_HARDLINK && !m->link)) {
		free(m->name);
		free(m->link);
		return cfs_error(ENOMEM, "%s: out of memory", c->src);
	}
	st->n_members++;
	return 0;
}

/*
 * Index the archive: one pass over the headers with libarchive, tar
 * formats only and no decompression. For an uncompressed tar the bytes
 * consumed right after a header (the raw position,
 * archive_filter_bytes(a, -1)) are the offset of the member's data: the
 * ustar block and any pax or GNU long-name blocks before it have been
 * consumed, the data not yet. Data is skipped with lseek.
 */
static int archive_scan(struct oci_ctx *c)
{
	struct cfs_oci_store *st = c->st;
	struct archive *a;
	struct archive_entry *e;
	size_t cap = 0, out = 0;
	int r = 0, ar;

	a = archive_read_new();
	if (!a)
		return cfs_error(ENOMEM, "%s: out of memory", c->src);
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	if (archive_read_open_fd(a, st->fd, 64 * 1024) != ARCHIVE_OK) {
		const char *why = archive_error_string(a);
		r = cfs_error(EINVAL, "%s: not a tar archive: %s", c->src,
			      why ? why : "unreadable");
		goto out;
	}
	for (;;) {
		int64_t off;

		ar = archive_read_next_header(a, &e);
		if (ar == ARCHIVE_EOF)
			break;
		off = archive_filter_bytes(a, -1);
		if (ar != ARCHIVE_OK && ar != ARCHIVE_WARN) {
			const char *why = archive_error_string(a);
			r = cfs_error(EINVAL,
				      "%s: tar archive at byte %lld: %s",
				      c->src, (long long)off,
				      why ? why : "truncated or damaged");
			goto out;
		}
		if (off < 0) {
			r = cfs_error(EIO, "%s: tar archive: no read position",
				      c->src);
			goto out;
		}
		r = add_member(c, e, off, &cap);
		if (r < 0)
			goto out;
	}

	/* Sorted by name; of several members with one name the last wins,
	 * as when the archive is extracted. */
	qsort(st->members, st->n_members, sizeof(*st->members), member_cmp);
	for (size_t i = 0; i < st->n_members; i++) {
		if (i + 1 < st->n_members &&
		    !strcmp(st->members[i].name, st->members[i + 1].name)) {
			free(st->members[i].name);
			free(st->members[i].link);
			continue;
		}
		st->members[out++] = st->members[i];
	}
	st->n_members = out;
out:
	archive_read_free(a);
	return r;
}

/*
 * Find member @name, following symlinks (relative to the link's
 * directory, absolute ones from the archive root) and hardlinks. Only
 * the last component is followed: archives made by image tools never put
 * links in directory components.
 */
static int archive_resolve(struct oci_ctx *c, const char *label,
			   const char *name, const struct oci_member **out)
{
	char cur[OCI_MEMBER_NAME_MAX + 1], tmp[2 * OCI_MEMBER_NAME_MAX + 2];
	char q[OCI_QUOTE_MAX + 4], q2[OCI_QUOTE_MAX + 4];
	const struct oci_member *m;
	int r;

	if (normalize_path(name, cur, sizeof(cur)) < 0 || !cur[0])
		return cfs_error(EINVAL,
				 "%s: %s: \"%s\" is not a path inside "
				 "the archive",
				 c->src, label, quote(name, q));
	for (int hops = 0;; hops++) {
		m = member_find(c->st, cur);
		if (!m) {
			if (strcmp(cur, name))
				return cfs_error(ENOENT,
						 "%s: %s: no member %s (link "
						 "target of %s) in the archive",
						 c->src, label, quote(cur, q),
						 quote(name, q2));
			return cfs_error(ENOENT,
					 "%s: %s: no member %s in the archive",
					 c->src, label, quote(cur, q));
		}
		if (m->kind != MEMBER_SYMLINK && m->kind != MEMBER_HARDLINK)
			break;
		if (hops >= OCI_SYMLINK_MAX)
			return cfs_error(ELOOP, "%s: %s: %s: too many links",
					 c->src, label, quote(name, q));
		if (m->kind == MEMBER_SYMLINK && m->link[0] != '/') {
			const char *slash = strrchr(cur, '/');
			int dlen = slash ? (int)(slash - cur) : 0;
			snprintf(tmp, sizeof(tmp), "%.*s/%s", dlen, cur,
				 m->link);
		} else {
			/* hardlink targets are archive paths */
			snprintf(tmp, sizeof(tmp), "%s", m->link);
		}
		r = normalize_path(tmp, cur, sizeof(cur));
		if (r < 0 || !cur[0])
			return cfs_error(EINVAL,
					 "%s: %s: link %s -> %s leads outside "
					 "the archive",
					 c->src, label, quote(m->name, q),
					 quote(m->link, q2));
	}
	if (m->kind != MEMBER_FILE)
		return cfs_error(EINVAL,
				 "%s: %s: member %s is not a regular "
				 "file",
				 c->src, label, quote(m->name, q));
	/* Sparse members' stored bytes are not the file's bytes. */
	if (m->sparse)
		return cfs_error(EINVAL, "%s: %s: member %s is a sparse file",
				 c->src, label, quote(m->name, q));
	if (m->offset > c->st->file_size ||
	    m->size > c->st->file_size - m->offset)
		return cfs_error(EINVAL, "%s: %s: member %s is truncated",
				 c->src, label, quote(m->name, q));
	*out = m;
	return 0;
}

/*
 * Locate @name in the store as a blob. For a directory a new fd is
 * opened into *@tmp_fd for the caller to close.
 */
static int store_find(struct oci_ctx *c, const char *label, const char *name,
		      struct cfs_blob *b, int *tmp_fd)
{
	struct cfs_oci_store *st = c->st;
	const struct oci_member *m;
	struct stat sb;
	int fd, r;

	*tmp_fd = -1;
	if (st->kind == STORE_MEM)
		return cfs_error(ENOENT, "%s: %s: %s: not in the source",
				 c->src, label, name);
	if (st->kind == STORE_TAR) {
		r = archive_resolve(c, label, name, &m);
		if (r < 0)
			return r;
		b->fd = st->fd;
		b->offset = m->offset;
		b->length = m->size;
		return 0;
	}
	fd = openat(st->fd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 && !strcmp(label, name))
		return cfs_error_errno(errno, "%s: %s", c->src, name);
	if (fd < 0)
		return cfs_error_errno(errno, "%s: %s: %s", c->src, label,
				       name);
	if (fstat(fd, &sb) < 0) {
		r = cfs_error_errno(errno, "%s: %s: %s", c->src, label, name);
		close(fd);
		return r;
	}
	if (!S_ISREG(sb.st_mode)) {
		close(fd);
		return cfs_error(EINVAL, "%s: %s: %s is not a regular file",
				 c->src, label, name);
	}
	*tmp_fd = fd;
	b->fd = fd;
	b->offset = 0;
	b->length = (uint64_t)sb.st_size;
	return 0;
}

/*
 * Read JSON document @name (@label in messages), check it against
 * @digest and @size when given (@from names the descriptor's document),
 * and parse it. *@buf_out gets the bytes if not NULL.
 */
static int read_json(struct oci_ctx *c, const char *label, const char *name,
		     const char *digest, int64_t size, const char *from,
		     uint8_t **buf_out, size_t *len_out,
		     struct json_object **out)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	char got[OCI_DIGEST_STR];
	struct cfs_blob b = { .fd = -1 };
	int r;

	*out = NULL;
	if (c->st->kind == STORE_MEM && c->st->mem_name &&
	    strcmp(name, c->st->mem_name) == 0) {
		b.length = c->st->mem_len;
	} else {
		r = store_find(c, label, name, &b, &fd);
		if (r < 0)
			return r;
	}
	if (size >= 0 && b.length != (uint64_t)size)
		return cfs_error(EBADMSG, "%s: %s: size %llu, %s says %lld",
				 c->src, label, (unsigned long long)b.length,
				 from, (long long)size);
	if (b.length > CFS_OCI_JSON_MAX)
		return cfs_error(EFBIG, "%s: %s: %llu bytes, limit %d", c->src,
				 label, (unsigned long long)b.length,
				 CFS_OCI_JSON_MAX);
	buf = malloc(b.length + 1);
	if (!buf)
		return cfs_error(ENOMEM, "%s: %s: out of memory", c->src,
				 label);
	if (b.fd < 0)
		memcpy(buf, c->st->mem_data, b.length);
	r = b.fd < 0 ? 0 : pread_full(b.fd, buf, b.length, b.offset);
	if (r == -EIO)
		return cfs_error(EIO, "%s: %s: file ends before %llu bytes",
				 c->src, label, (unsigned long long)b.length);
	if (r < 0)
		return cfs_error_errno(-r, "%s: %s: reading", c->src, label);
	buf[b.length] = '\0';
	if (digest) {
		if (sha256_str(buf, b.length, got) < 0)
			return cfs_error(EIO, "%s: %s: SHA-256 failed", c->src,
					 label);
		if (strcmp(got, digest))
			return cfs_error(EBADMSG,
					 "%s: %s: content has digest %s, "
					 "%s says %s",
					 c->src, label, got, from, digest);
	}
	r = parse_json(c, label, buf, b.length, out);
	if (r < 0)
		return r;
	if (len_out)
		*len_out = b.length;
	if (buf_out)
		*buf_out = (uint8_t *)TAKE_PTR(buf);
	return 0;
}

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
static int parse_diff_ids(struct oci_ctx *c, struct json_object *cfg,
			  const char *label, const char *layers_from)
{
	struct cfs_oci_image *img = c->img;
	struct json_object *rootfs, *ids;
	const char *type, *id;
	char key[64];
	size_t n;
	int r;

	if (!json_object_is_type(cfg, json_type_object))
		return type_error(c, label, "the document", cfg,
				  json_type_object);
	r = json_get(c, cfg, label, "", "rootfs", json_type_object, true,
		     &rootfs);
	if (r < 0)
		return r;
	r = json_get_string(c, rootfs, label, "rootfs", "type", false, &type);
	if (r < 0)
		return r;
	if (type && strcmp(type, "layers")) {
		char q[OCI_QUOTE_MAX + 4];
		return cfs_error(EINVAL,
				 "%s: %s: rootfs.type is \"%s\", expected "
				 "\"layers\"",
				 c->src, label, quote(type, q));
	}
	r = json_get(c, rootfs, label, "rootfs", "diff_ids", json_type_array,
		     true, &ids);
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
		r = json_elem_string(c, json_object_array_get_idx(ids, i),
				     label, key, &id);
		if (r < 0)
			return r;
		r = require_sha256(c, label, key, id);
		if (r < 0)
			return r;
		img->layers[i].diff_id = strdup(id);
		if (!img->layers[i].diff_id)
			return cfs_error(ENOMEM, "%s: out of memory", c->src);
	}
	return 0;
}

static int alloc_layers(struct oci_ctx *c, size_t n, const char *label)
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
				 c->src, label, layer, key, quote(v, q));
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
	r = json_get_string(c, ann, label, path, key, false, &v);
	if (r == 0)
		r = json_get_string(c, ann, label, path, sig_key, false, &s);
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
				 c->src, label, path, key, quote(v, q));
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

	r = json_get(c, m, label, "", "annotations", json_type_object, false,
		     &ann);
	if (r == 0)
		r = spec_key(c, ann, label, "annotations", CFS_SPEC_MERGED,
			     c->img->spec_merged, &c->img->spec_merged_sig);
	if (r == 0)
		r = json_get(c, cfg_o, label, "config", "annotations",
			     json_type_object, false, &ann);
	if (r == 0)
		r = spec_key(c, ann, label, "config.annotations",
			     CFS_SPEC_CONFIG, c->img->spec_config,
			     &c->img->spec_config_sig);
	return r;
}

/* Image manifest @m (document @label, digest t->digest). */
static int load_manifest(struct oci_ctx *c, struct json_object *m,
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

	r = json_get(c, m, label, "", "config", json_type_object, true, &cfg_o);
	if (r < 0)
		return r;
	r = parse_desc(c, cfg_o, label, "config", &d);
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
				 c->src, label, quote(d.media_type, q));
	r = require_sha256(c, label, "config.digest", d.digest);
	if (r < 0)
		return r;
	img->config_digest = strdup(d.digest);
	if (!img->config_digest)
		return cfs_error(ENOMEM, "%s: out of memory", c->src);
	r = load_spec_keys(c, m, cfg_o, label);
	if (r < 0)
		return r;

	r = json_get(c, m, label, "", "layers", json_type_array, true, &layers);
	if (r < 0)
		return r;
	r = alloc_layers(c, json_object_array_length(layers), label);
	if (r < 0)
		return r;
	for (size_t i = 0; i < img->n_layers; i++) {
		struct cfs_oci_layer *l = &img->layers[i];
		struct oci_desc ld;

		snprintf(key, sizeof(key), "layers[%zu]", i);
		r = parse_desc(c, json_object_array_get_idx(layers, i), label,
			       key, &ld);
		if (r < 0)
			return r;
		snprintf(key, sizeof(key), "layers[%zu].digest", i);
		r = require_sha256(c, label, key, ld.digest);
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
					 quote(ld.media_type, q));
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
		blob_path(path, sizeof(path), ld.digest);
		c->st->layer_paths[i] = strdup(path);
		if (!l->digest || !l->media_type || !c->st->layer_paths[i])
			return cfs_error(ENOMEM, "%s: out of memory", c->src);
		l->size = ld.size;
		l->verify_blob = true;
	}

	snprintf(cfg_label, sizeof(cfg_label), "config %s", d.digest);
	snprintf(from, sizeof(from), "descriptor in %s", label);
	blob_path(path, sizeof(path), d.digest);
	r = read_json(c, cfg_label, path, d.digest, d.size, from, &img->config,
		      &img->config_len, &cfg);
	if (r < 0)
		return r;
	return parse_diff_ids(c, cfg, cfg_label, label);
}

/* Index or manifest? From the document's mediaType, else the
 * descriptor's, else its keys. */
static int doc_kind(struct oci_ctx *c, struct json_object *doc,
		    const struct oci_target *t, const char *label,
		    enum doc_kind *kind)
{
	char q[OCI_QUOTE_MAX + 4], q2[OCI_QUOTE_MAX + 4];
	struct json_object *v;
	const char *mt;
	int r;

	if (!json_object_is_type(doc, json_type_object))
		return type_error(c, label, "the document", doc,
				  json_type_object);
	r = json_get(c, doc, label, "", "schemaVersion", json_type_int, false,
		     &v);
	if (r < 0)
		return r;
	if (v && json_object_get_int64(v) != 2)
		return cfs_error(EOPNOTSUPP,
				 "%s: %s: schemaVersion %lld is not supported "
				 "(only 2)",
				 c->src, label,
				 (long long)json_object_get_int64(v));
	r = json_get_string(c, doc, label, "", "mediaType", false, &mt);
	if (r < 0)
		return r;
	if (mt && t->media_type[0] &&
	    is_index_type(mt) != is_index_type(t->media_type))
		return cfs_error(EINVAL, "%s: %s: mediaType %s, %s says %s",
				 c->src, label, quote(mt, q), t->from,
				 quote(t->media_type, q2));
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
					 c->src, label, quote(mt, q));
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
	int r = require_sha256(c, from, key, d->digest);

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
	return platform_score(&c->want, d);
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
			list_add(list, sizeof(list), "...");
			break;
		}
		shown[n_shown++] = ds[i].digest;
		list_add(list, sizeof(list), ds[i].digest);
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

	r = json_get(c, idx, label, "", "manifests", json_type_array, true,
		     &list);
	if (r < 0)
		return r;
	n = json_object_array_length(list);
	ds = calloc(n ? n : 1, sizeof(*ds));
	if (!ds)
		return cfs_error(ENOMEM, "%s: out of memory", c->src);
	for (size_t i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "manifests[%zu]", i);
		r = parse_desc(c, json_object_array_get_idx(list, i), label,
			       key, &ds[i]);
		if (r < 0)
			return r;
		if (!selectable(&ds[i]))
			continue;
		if (!usable++)
			only = i;
		format_platform(p, sizeof(p), &ds[i]);
		list_add(plats, sizeof(plats), p);
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
	e = check_digest(r);
	if (e == 0) {
		*digest = r;
		return 0;
	}
	colon = strchr(r, ':');
	/* "name:tag" is a tag even though it fits the digest grammar; an
	 * unknown algorithm shows as a long hex string. */
	if (c->ref[0] == '@' || !strncmp(r, "sha256:", 7) ||
	    (e == -EOPNOTSUPP && strlen(colon + 1) >= 32 &&
	     is_hex_lower(colon + 1, strlen(colon + 1)))) {
		if (e == -EOPNOTSUPP)
			return cfs_error(EOPNOTSUPP,
					 "%s: reference %s: unsupported "
					 "digest algorithm (only sha256)",
					 c->src, quote(c->ref, q));
		return cfs_error(EINVAL, "%s: reference %s: malformed digest",
				 c->src, quote(c->ref, q));
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
		return type_error(c, label, "the document", idx,
				  json_type_object);
	r = json_get(c, idx, label, "", "manifests", json_type_array, true,
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
		r = parse_desc(c, json_object_array_get_idx(list, i), label,
			       key, &ds[i]);
		if (r < 0)
			return r;
		if (ds[i].ref_name)
			list_add(tags, sizeof(tags), ds[i].ref_name);
		else
			untagged++;
	}
	if (untagged) {
		char u[48];
		snprintf(u, sizeof(u), "%zu untagged", untagged);
		list_add(tags, sizeof(tags), u);
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
				 c->src, quote(c->ref, q),
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
				 "index.json: tag \"%s\"", quote(c->ref, q));
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
				 c->src, quote(c->ref, q), n_cand);
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
		blob_path(path, sizeof(path), t->digest);
		r = read_json(c, label, path, t->digest, t->size, t->from, &raw,
			      &raw_len, &doc);
		if (r < 0)
			return r;
		r = doc_kind(c, doc, t, label, &kind);
		if (r < 0)
			return r;
		if (kind == DOC_MANIFEST) {
			c->img->manifest = TAKE_PTR(raw);
			c->img->manifest_len = raw_len;
			return load_manifest(c, doc, t, label);
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
static int open_layout(struct oci_ctx *c)
{
	_cleanup_json_ struct json_object *layout = NULL, *idx = NULL;
	const char *version;
	char q[OCI_QUOTE_MAX + 4];
	struct oci_target t;
	int r;

	if (c->st->kind == STORE_TAR && !member_find(c->st, "oci-layout"))
		return cfs_error(ENOENT,
				 "%s: no oci-layout in the archive: "
				 "not an OCI image layout%s",
				 c->src,
				 member_find(c->st, "manifest.json") ?
					 " (a docker-archive?)" :
					 "");
	r = read_json(c, "oci-layout", "oci-layout", NULL, -1, NULL, NULL, NULL,
		      &layout);
	if (r == -ENOENT)
		return cfs_error(ENOENT,
				 "%s: no oci-layout file: not an OCI image "
				 "layout",
				 c->src);
	if (r < 0)
		return r;
	if (!json_object_is_type(layout, json_type_object))
		return type_error(c, "oci-layout", "the document", layout,
				  json_type_object);
	r = json_get_string(c, layout, "oci-layout", "", "imageLayoutVersion",
			    true, &version);
	if (r < 0)
		return r;
	if (strcmp(version, "1.0.0"))
		return cfs_error(EOPNOTSUPP,
				 "%s: oci-layout: imageLayoutVersion \"%s\" is "
				 "not supported (only 1.0.0)",
				 c->src, quote(version, q));

	r = read_json(c, "index.json", "index.json", NULL, -1, NULL, NULL, NULL,
		      &idx);
	if (r < 0)
		return r;
	r = select_top(c, idx, &t);
	if (r < 0)
		return r;
	return resolve(c, &t);
}

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
					list_add(buf, size,
						 json_object_get_string(s));
					any = true;
				}
			}
		}
		if (!any) {
			char at[32];
			snprintf(at, sizeof(at), "@%zu", i);
			list_add(buf, size, at);
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
					 c->src, quote(c->ref, q));
		for (; *p; p++)
			v = v * 10 + (size_t)(*p - '0');
		if (v >= n)
			return cfs_error(ENOENT,
					 "%s: no image %s: manifest.json lists "
					 "only %zu",
					 c->src, quote(c->ref, q), n);
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
				return type_error(c, "manifest.json", label, e,
						  json_type_object);
			r = json_get(c, e, "manifest.json", label, "RepoTags",
				     json_type_array, false, &rt);
			if (r < 0)
				return r;
			for (; rt && j < json_object_array_length(rt); j++) {
				snprintf(key, sizeof(key), "%s.RepoTags[%zu]",
					 label, j);
				r = json_elem_string(
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
				list_add(at, sizeof(at), label);
				others++;
			}
		}
		if (others)
			return cfs_error(EINVAL,
					 "%s: tag \"%s\" names several images "
					 "in manifest.json (%s); choose one "
					 "with docker-archive:FILE:@N",
					 c->src, quote(c->ref, q), at);
		if (found != SIZE_MAX) {
			*out = found;
			return 0;
		}
	}
	return cfs_error(
		ENOENT,
		"%s: no image tagged \"%s\" in manifest.json (tags: %s)",
		c->src, quote(c->ref, q), tags);
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
	    is_hex_lower(base, CFS_DIGEST_HEX_SIZE))
		return base;
	if (len == CFS_DIGEST_HEX_SIZE && is_hex_lower(base, len) &&
	    base - name >= 13 && !memcmp(base - 13, "blobs/sha256/", 13))
		return base;
	return NULL;
}

static int open_docker_archive(struct oci_ctx *c)
{
	struct cfs_oci_image *img = c->img;
	_cleanup_json_ struct json_object *list = NULL, *cfg = NULL;
	struct json_object *e, *layers;
	const struct oci_member *m;
	const char *cfg_name, *want_hex, *lname;
	char label[48], key[80], cfg_label[OCI_QUOTE_MAX + 16];
	char got[OCI_DIGEST_STR], q[OCI_QUOTE_MAX + 4];
	size_t idx = 0;
	int r;

	if (!member_find(c->st, "manifest.json"))
		return cfs_error(ENOENT,
				 "%s: no manifest.json in the archive: not a "
				 "docker-archive%s",
				 c->src,
				 member_find(c->st, "oci-layout") ?
					 " (an oci-archive?)" :
					 "");
	r = read_json(c, "manifest.json", "manifest.json", NULL, -1, NULL, NULL,
		      NULL, &list);
	if (r < 0)
		return r;
	if (!json_object_is_type(list, json_type_array))
		return type_error(c, "manifest.json", "the document", list,
				  json_type_array);
	r = docker_select(c, list, &idx);
	if (r < 0)
		return r;
	snprintf(label, sizeof(label), "[%zu]", idx);
	e = json_object_array_get_idx(list, idx);
	if (!json_object_is_type(e, json_type_object))
		return type_error(c, "manifest.json", label, e,
				  json_type_object);
	r = json_get_string(c, e, "manifest.json", label, "Config", true,
			    &cfg_name);
	if (r < 0)
		return r;
	r = json_get(c, e, "manifest.json", label, "Layers", json_type_array,
		     true, &layers);
	if (r < 0)
		return r;
	r = alloc_layers(c, json_object_array_length(layers), "manifest.json");
	if (r < 0)
		return r;

	/* The config: its digest is its bytes' hash, which the name
	 * promises when it is "<hex>.json". */
	snprintf(cfg_label, sizeof(cfg_label), "config %s", quote(cfg_name, q));
	r = read_json(c, cfg_label, cfg_name, NULL, -1, NULL, &img->config,
		      &img->config_len, &cfg);
	if (r < 0)
		return r;
	if (sha256_str(img->config, img->config_len, got) < 0)
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
		r = json_elem_string(c, json_object_array_get_idx(layers, i),
				     "manifest.json", key, &lname);
		if (r < 0)
			return r;
		snprintf(llabel, sizeof(llabel), "layer %zu (%s)", i,
			 quote(lname, q));
		r = archive_resolve(c, llabel, lname, &m);
		if (r < 0)
			return r;
		if (m->size >= sizeof(magic)) {
			r = pread_full(c->st->fd, magic, sizeof(magic),
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
	r = parse_diff_ids(c, cfg, cfg_label, "manifest.json");
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
	return archive_scan(c);
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
	r = parse_platform(&c, platform);
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
		r = open_docker_archive(&c);
	else
		r = open_layout(&c);
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
	r = sha256_str(manifest, manifest_len, t.digest);
	if (r < 0) {
		r = cfs_error(EIO, "%s: SHA-256 failed", source);
		goto fail;
	}
	snprintf(label, sizeof(label), "manifest %s", t.digest);
	r = parse_json(&c, label, (const char *)img->manifest, manifest_len,
		       &doc);
	if (r == 0)
		r = doc_kind(&c, doc, &t, label, &kind);
	if (r == 0 && kind != DOC_MANIFEST)
		r = cfs_error(EINVAL, "%s: %s: an index, not an image manifest",
			      source, label);
	if (r < 0)
		goto fail;
	/* The config, where load_manifest() looks for it (its digest and
	 * size are checked against the manifest's descriptor there). */
	{
		struct json_object *cfg, *dg;

		if (json_object_object_get_ex(doc, "config", &cfg) &&
		    json_object_object_get_ex(cfg, "digest", &dg) &&
		    json_object_is_type(dg, json_type_string) &&
		    check_digest(json_object_get_string(dg)) == 0) {
			blob_path(path, sizeof(path),
				  json_object_get_string(dg));
			img->store->mem_name = strdup(path);
			if (!img->store->mem_name)
				goto nomem;
		}
	}
	r = load_manifest(&c, doc, &t, label);
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
		free_members(st);
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
	char label[OCI_DIGEST_STR + 32];
	struct stat sb;
	int r;

	assert(i < img->n_layers);
	snprintf(label, sizeof(label), "layer %s", img->layers[i].digest);
	if (st->kind == STORE_MEM)
		return cfs_error(ENOENT, "%s: %s: not in the source",
				 img->source, label);
	if (st->kind == STORE_TAR) {
		r = archive_resolve(&c, label, st->layer_paths[i], &m);
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
