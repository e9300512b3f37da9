// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
/* zstd:chunked: annotations, TOC, tar-split (chunked.h). */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <openssl/sha.h>
#include <zstd.h>

#include "common/digest.h"
#include "common/error.h"
#include "common/json.h"
#include "common/sign.h"
#include "common/util.h"
#include "convert/chunked.h"

static const char *const prefixes[] = {
	"io.github.containers.zstd-chunked.",
	"io.containers.zstd-chunked.",
};

/* The annotation @prefix@key of @ann as a string, or NULL. */
static const char *annotation(json_object *ann, const char *prefix,
			      const char *key)
{
	char name[96];
	json_object *v;

	snprintf(name, sizeof(name), "%s%s", prefix, key);
	if (!json_object_object_get_ex(ann, name, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* "N:N:N[:N]" with @n fields into @v: 0, or -EINVAL. */
static int parse_fields(const char *s, uint64_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char *end;

		if (*s < '0' || *s > '9')
			return -EINVAL;
		errno = 0;
		v[i] = strtoull(s, &end, 10);
		if (errno || *end != (i + 1 < n ? ':' : '\0'))
			return -EINVAL;
		s = end + 1;
	}
	return 0;
}

static int parse_part(struct cfs_chunked_part *p, json_object *ann,
		      const char *prefix, const char *name, bool toc,
		      uint64_t blob_size, const char *what)
{
	char pos_key[32], sum_key[32];
	const char *pos, *sum;
	uint64_t v[4];

	snprintf(pos_key, sizeof(pos_key), "%s-position", name);
	snprintf(sum_key, sizeof(sum_key), "%s-checksum", name);
	pos = annotation(ann, prefix, pos_key);
	sum = annotation(ann, prefix, sum_key);
	if (!pos && !sum)
		return 0;
	/* the tar-split's checksum may be in the TOC instead (skopeo 1.18) */
	if (!pos || (!sum && toc))
		return cfs_error(EINVAL, "%s: annotation %s%s without %s%s",
				 what, prefix, pos ? pos_key : sum_key, prefix,
				 pos ? sum_key : pos_key);
	if (parse_fields(pos, v, toc ? 4 : 3) < 0 || (toc && v[3] != 1))
		return cfs_error(EINVAL,
				 "%s: annotation %s%s: \"%s\" is not "
				 "offset:length:size%s",
				 what, prefix, pos_key, pos, toc ? ":1" : "");
	if (v[1] == 0 || v[1] > CFS_CHUNKED_PART_MAX ||
	    v[2] > (toc ? CFS_CHUNKED_TOC_MAX : CFS_CHUNKED_TARSPLIT_MAX) ||
	    v[0] > blob_size || v[1] > blob_size - v[0])
		return cfs_error(EINVAL,
				 "%s: annotation %s%s: %" PRIu64
				 " bytes at %" PRIu64 " (%" PRIu64
				 " decompressed) %s",
				 what, prefix, pos_key, v[1], v[0], v[2],
				 v[1] == 0 || v[0] > blob_size ||
						 v[1] > blob_size - v[0] ?
					 "are not in the blob" :
					 "are over the limit");
	if (sum && (strncmp(sum, "sha256:", 7) != 0 ||
		    cfs_digest_from_hex(p->sha256, sum + 7) < 0))
		return cfs_error(EINVAL,
				 "%s: annotation %s%s: \"%s\" is not a "
				 "sha256 digest",
				 what, prefix, sum_key, sum);
	p->present = true;
	p->checksum = sum != NULL;
	p->offset = v[0];
	p->length = v[1];
	p->size = v[2];
	return 1;
}

int cfs_chunked_from_annotations(json_object *annotations, uint64_t blob_size,
				 struct cfs_chunked *c, const char *what)
{
	memset(c, 0, sizeof(*c));
	if (!annotations || !json_object_is_type(annotations, json_type_object))
		return 0;
	for (size_t i = 0; i < CFS_ARRAY_SIZE(prefixes); i++) {
		int r = parse_part(&c->toc, annotations, prefixes[i],
				   "manifest", true, blob_size, what);
		if (r < 0)
			return r;
		if (r == 0)
			continue;
		r = parse_part(&c->tarsplit, annotations, prefixes[i],
			       "tarsplit", false, blob_size, what);
		if (r < 0)
			return r;
		/* The TOC ends where the file contents end: the tar-split
		 * follows it. */
		if (c->tarsplit.present &&
		    c->tarsplit.offset < c->toc.offset + c->toc.length)
			return cfs_error(EINVAL,
					 "%s: annotation %starsplit-position "
					 "overlaps the TOC",
					 what, prefixes[i]);
		return 1;
	}
	return 0;
}

int cfs_chunked_annotate(json_object *ann, const struct cfs_chunked_written *w)
{
	static const char *const keys[] = { "manifest-position",
					    "manifest-checksum",
					    "tarsplit-position",
					    "tarsplit-checksum" };
	const char *values[] = { w->toc_position, w->toc_checksum,
				 w->tarsplit_position };
	char key[96];

	for (size_t p = 0; p < CFS_ARRAY_SIZE(prefixes); p++)
		for (size_t k = 0; k < CFS_ARRAY_SIZE(keys); k++) {
			snprintf(key, sizeof(key), "%s%s", prefixes[p],
				 keys[k]);
			json_object_object_del(ann, key);
		}
	for (size_t k = 0; k < CFS_ARRAY_SIZE(values); k++) {
		json_object *v = json_object_new_string(values[k]);

		snprintf(key, sizeof(key), "%s%s", prefixes[0], keys[k]);
		if (!v || json_object_object_add(ann, key, v) < 0) {
			json_object_put(v);
			return -ENOMEM;
		}
	}
	return 0;
}

int cfs_chunked_part_decode(const struct cfs_chunked_part *p, const void *data,
			    size_t length, char **out, const char *what,
			    const char *name)
{
	uint8_t sum[32];
	char *buf;
	size_t got;

	*out = NULL;
	if (!p->checksum)
		return cfs_error(EBADMSG,
				 "%s: %s: no checksum to check it with", what,
				 name);
	if (length != p->length)
		return cfs_error(EBADMSG,
				 "%s: %s: %zu bytes, annotated %" PRIu64, what,
				 name, length, p->length);
	SHA256(data, length, sum);
	if (memcmp(sum, p->sha256, sizeof(sum)) != 0)
		return cfs_error(EBADMSG,
				 "%s: %s at offset %" PRIu64
				 ": checksum does not match its annotation",
				 what, name, p->offset);
	buf = malloc(p->size + 1);
	if (!buf)
		return -ENOMEM;
	got = ZSTD_decompress(buf, p->size, data, length);
	if (ZSTD_isError(got) || got != p->size) {
		free(buf);
		return cfs_error(EBADMSG,
				 "%s: %s at offset %" PRIu64
				 ": %s (annotated %" PRIu64 " bytes)",
				 what, name, p->offset,
				 ZSTD_isError(got) ? ZSTD_getErrorName(got) :
						     "wrong decompressed size",
				 p->size);
	}
	buf[p->size] = '\0';
	*out = buf;
	return 0;
}

/* Days from 1970-01-01 to @y-@m-@d of the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* @n decimal digits at *@s: value, or -1. */
static int digits(const char **s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++, (*s)++) {
		if (**s < '0' || **s > '9')
			return -1;
		v = v * 10 + (**s - '0');
	}
	return v;
}

/* RFC 3339 as Go writes a time.Time ("2006-01-02T15:04:05.999999999Z07:00",
 * the fraction optional): 0, or -EINVAL. */
static int parse_time(const char *s, int64_t *sec, uint32_t *nsec)
{
	int y, mo, d, h, mi, se, ns = 0, off = 0;

	if ((y = digits(&s, 4)) < 0 || *s++ != '-' ||
	    (mo = digits(&s, 2)) < 1 || mo > 12 || *s++ != '-' ||
	    (d = digits(&s, 2)) < 1 || d > 31 || (*s != 'T' && *s != 't') ||
	    (s++, (h = digits(&s, 2)) < 0) || h > 23 || *s++ != ':' ||
	    (mi = digits(&s, 2)) < 0 || mi > 59 || *s++ != ':' ||
	    (se = digits(&s, 2)) < 0 || se > 60)
		return -EINVAL;
	if (*s == '.') {
		int n = 0;

		for (s++; *s >= '0' && *s <= '9'; s++, n++)
			if (n < 9)
				ns = ns * 10 + (*s - '0');
		if (n == 0)
			return -EINVAL;
		for (; n < 9; n++)
			ns *= 10;
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		int sign = *s++ == '-' ? -1 : 1, oh, om;

		if ((oh = digits(&s, 2)) < 0 || oh > 23 || *s++ != ':' ||
		    (om = digits(&s, 2)) < 0 || om > 59)
			return -EINVAL;
		off = sign * (oh * 3600 + om * 60);
	} else {
		return -EINVAL;
	}
	if (*s)
		return -EINVAL;
	*sec = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
	       h * 3600 + mi * 60 + se - off;
	*nsec = (uint32_t)ns;
	return 0;
}

static const struct {
	const char *name;
	enum cfs_toc_type type;
} types[] = {
	{ "reg", CFS_TOC_REG },		{ "dir", CFS_TOC_DIR },
	{ "symlink", CFS_TOC_SYMLINK }, { "hardlink", CFS_TOC_HARDLINK },
	{ "char", CFS_TOC_CHAR },	{ "block", CFS_TOC_BLOCK },
	{ "fifo", CFS_TOC_FIFO },
};

/* Member @key of @o: NULL when absent or JSON null. */
static json_object *member(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* An unsigned integer member (0 when absent) no greater than @max. */
static int get_uint(json_object *o, const char *key, uint64_t max,
		    uint64_t *out)
{
	json_object *v = member(o, key);
	int64_t i;

	*out = 0;
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return -EINVAL;
	i = json_object_get_int64(v);
	if (i < 0 || (uint64_t)i > max)
		return -EINVAL;
	*out = (uint64_t)i;
	return 0;
}

/* A string member, or NULL when absent; -EINVAL when not a string. */
static int get_string(json_object *o, const char *key, const char **out)
{
	json_object *v = member(o, key);

	*out = NULL;
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return -EINVAL;
	*out = json_object_get_string(v);
	return 0;
}

bool cfs_toc_name_ok(const char *name, size_t len)
{
	const char *p = name;

	if (len == 0 || strlen(name) != len || len >= CFS_LAYER_PATH_MAX)
		return false;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		if (n == 2 && p[0] == '.' && p[1] == '.')
			return false;
		p += n + (slash != NULL);
	}
	return true;
}

static int parse_xattrs(struct cfs_toc_entry *e, json_object *x)
{
	size_t n = 0;

	if (!json_object_is_type(x, json_type_object))
		return -EINVAL;
	e->xattrs = calloc((size_t)json_object_object_length(x) + 1,
			   sizeof(*e->xattrs));
	if (!e->xattrs)
		return -ENOMEM;
	json_object_object_foreach(x, key, val)
	{
		const char *b64;
		uint8_t *value = NULL;
		size_t len = 0;
		char *name;
		int r;

		if (!json_object_is_type(val, json_type_string) || !*key)
			return -EINVAL;
		b64 = json_object_get_string(val);
		if (*b64) {
			r = cfs_base64_decode(b64, &value, &len);
			if (r < 0)
				return r;
		} else if (!(value = malloc(1))) {
			return -ENOMEM;
		}
		name = strdup(key);
		if (!name) {
			free(value);
			return -ENOMEM;
		}
		e->xattrs[n].name = name;
		e->xattrs[n].value = value;
		e->xattrs[n].len = len;
		e->n_xattrs = ++n;
	}
	return 0;
}

static void entry_free(struct cfs_toc_entry *e)
{
	free(e->name);
	free(e->link);
	for (size_t i = 0; i < e->n_xattrs; i++) {
		free((char *)e->xattrs[i].name);
		free((void *)e->xattrs[i].value);
	}
	free(e->xattrs);
}

/*
 * One entry of the TOC into @e: -EINVAL (the caller names the entry) for
 * a malformed one, -ENOMEM.
 */
static int parse_entry(struct cfs_toc_entry *e, json_object *o,
		       uint64_t data_end, const char **why)
{
	const char *type, *name, *link, *digest, *mtime;
	uint64_t v;
	size_t i;
	int r;

	*why = "malformed";
	if (!json_object_is_type(o, json_type_object) ||
	    get_string(o, "type", &type) < 0 || !type ||
	    get_string(o, "name", &name) < 0 || !name ||
	    get_string(o, "linkName", &link) < 0 ||
	    get_string(o, "digest", &digest) < 0 ||
	    get_string(o, "modtime", &mtime) < 0)
		return -EINVAL;
	if (!cfs_toc_name_ok(name, (size_t)json_object_get_string_len(
					   member(o, "name")))) {
		*why = "bad name";
		return -EINVAL;
	}
	e->name = strdup(name);
	if (!e->name)
		return -ENOMEM;
	for (i = 0; i < CFS_ARRAY_SIZE(types); i++)
		if (strcmp(type, types[i].name) == 0)
			break;
	if (i == CFS_ARRAY_SIZE(types)) {
		*why = "unknown type";
		return -EINVAL;
	}
	e->type = types[i].type;
	if ((e->type == CFS_TOC_SYMLINK || e->type == CFS_TOC_HARDLINK) &&
	    (!link || !*link || strlen(link) >= CFS_LAYER_PATH_MAX)) {
		*why = "bad linkName";
		return -EINVAL;
	}
	if (link && *link && !(e->link = strdup(link)))
		return -ENOMEM;
	/* some tars (and so their TOCs) carry the type bits in the mode
	 * field too: the type is the entry's type, as tar readers take it */
	if (get_uint(o, "mode", UINT32_MAX, &v) < 0)
		return -EINVAL;
	e->mode = (uint32_t)v & 07777;
	if (get_uint(o, "uid", UINT32_MAX, &v) < 0)
		return -EINVAL;
	e->uid = (uint32_t)v;
	if (get_uint(o, "gid", UINT32_MAX, &v) < 0)
		return -EINVAL;
	e->gid = (uint32_t)v;
	if (get_uint(o, "devMajor", UINT32_MAX, &v) < 0)
		return -EINVAL;
	e->dev_major = (uint32_t)v;
	if (get_uint(o, "devMinor", UINT32_MAX, &v) < 0)
		return -EINVAL;
	e->dev_minor = (uint32_t)v;
	if (mtime && parse_time(mtime, &e->mtime_sec, &e->mtime_nsec) < 0) {
		*why = "bad modtime";
		return -EINVAL;
	}
	if (member(o, "xattrs") &&
	    (r = parse_xattrs(e, member(o, "xattrs"))) < 0) {
		*why = "bad xattrs";
		return r;
	}
	if (get_uint(o, "size", INT64_MAX, &e->size) < 0)
		return -EINVAL;
	if (e->type != CFS_TOC_REG)
		e->size = 0;
	if (e->size == 0)
		return 0;
	if (!digest || strncmp(digest, "sha256:", 7) != 0 ||
	    cfs_digest_from_hex(e->sha256, digest + 7) < 0) {
		*why = "no sha256 digest";
		return -EINVAL;
	}
	if (member(o, CFS_TOC_FSVERITY)) {
		const char *fv = NULL;

		if (get_string(o, CFS_TOC_FSVERITY, &fv) < 0 || !fv ||
		    strncmp(fv, "sha256:", 7) != 0 ||
		    cfs_digest_from_hex(e->verity, fv + 7) < 0) {
			*why = "a bad " CFS_TOC_FSVERITY;
			return -EINVAL;
		}
		e->has_verity = true;
	}
	if (!member(o, "offset") || !member(o, "endOffset") ||
	    get_uint(o, "offset", data_end, &e->offset) < 0 ||
	    get_uint(o, "endOffset", data_end, &e->end) < 0 ||
	    e->offset >= e->end) {
		*why = "range not in the blob";
		return -EINVAL;
	}
	return 0;
}

/* A chunk entry @o of file @f: in its range, after the previous chunk
 * (@at, updated). */
static bool chunk_ok(const struct cfs_toc_entry *f, json_object *o,
		     uint64_t *at, uint64_t *content_at)
{
	const char *name;
	uint64_t off, coff, csize;

	if (!f || get_string(o, "name", &name) < 0 || !name ||
	    strcmp(name, f->name) != 0 ||
	    get_uint(o, "offset", UINT64_MAX, &off) < 0 ||
	    get_uint(o, "chunkOffset", UINT64_MAX, &coff) < 0 ||
	    get_uint(o, "chunkSize", UINT64_MAX, &csize) < 0)
		return false;
	if (off <= *at || off >= f->end || coff < *content_at ||
	    coff >= f->size || csize > f->size - coff)
		return false;
	*at = off;
	*content_at = coff;
	return true;
}

static int parse_entries(struct cfs_toc *toc, json_object *root,
			 uint64_t data_end, const char *what);

int cfs_toc_parse(struct cfs_toc *toc, const char *json, uint64_t data_end,
		  const char *what)
{
	json_object *root = NULL;
	int r;

	memset(toc, 0, sizeof(*toc));
	r = cfs_json_parse(json, strlen(json), &root);
	if (r < 0)
		return cfs_error_prefix(-r, "%s: TOC", what);
	r = parse_entries(toc, root, data_end, what);
	json_object_put(root);
	if (r < 0)
		cfs_toc_free(toc);
	return r;
}

static int parse_entries(struct cfs_toc *toc, json_object *root,
			 uint64_t data_end, const char *what)
{
	json_object *entries, *v;
	const struct cfs_toc_entry *file = NULL; /* chunks follow it */
	uint64_t chunk_at = 0, content_at = 0;
	size_t n;
	int r;

	if (json_object_object_get_ex(root, "tarSplitDigest", &v)) {
		const char *d = json_object_get_string(v);

		if (!json_object_is_type(v, json_type_string) ||
		    strncmp(d, "sha256:", 7) != 0 ||
		    cfs_digest_from_hex(toc->tarsplit_sha256, d + 7) < 0)
			return cfs_error(EBADMSG,
					 "%s: TOC: tarSplitDigest is not a "
					 "sha256 digest",
					 what);
		toc->has_tarsplit_sha256 = true;
	}
	if (!json_object_is_type(root, json_type_object) ||
	    !json_object_object_get_ex(root, "version", &v) ||
	    !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) != 1 ||
	    !json_object_object_get_ex(root, "entries", &entries) ||
	    (entries && !json_object_is_type(entries, json_type_array)))
		return cfs_error(EBADMSG,
				 "%s: TOC: not a version 1 TOC with "
				 "\"entries\"",
				 what);
	/* Go writes an empty list as null */
	n = entries ? json_object_array_length(entries) : 0;
	if (n > CFS_IMAGE_ENTRIES_MAX)
		return cfs_error(E2BIG, "%s: TOC: %zu entries, at most %u",
				 what, n, CFS_IMAGE_ENTRIES_MAX);
	toc->entries = calloc(n + 1, sizeof(*toc->entries));
	toc->files = calloc(n + 1, sizeof(*toc->files));
	if (!toc->entries || !toc->files)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(entries, i);
		struct cfs_toc_entry *e = &toc->entries[toc->n];
		const char *type = NULL, *why;

		get_string(o, "type", &type);
		if (type && strcmp(type, "chunk") == 0) {
			if (!chunk_ok(file, o, &chunk_at, &content_at))
				return cfs_error(EBADMSG,
						 "%s: TOC: entry %zu: a chunk "
						 "out of its file's place",
						 what, i);
			continue;
		}
		r = parse_entry(e, o, data_end, &why);
		toc->n++;
		if (r < 0) {
			const char *name = e->name;

			return r == -EINVAL ?
				       cfs_error(EBADMSG,
						 "%s: TOC: entry %zu%s%s%s: %s",
						 what, i, name ? " (" : "",
						 name ? name : "",
						 name ? ")" : "", why) :
				       r;
		}
		file = e->type == CFS_TOC_REG && e->size ? e : NULL;
		if (file) {
			toc->files[toc->n_files++] = e;
			chunk_at = e->offset;
			content_at = 0;
		}
	}
	return 0;
}

int cfs_chunked_bind_tarsplit(struct cfs_chunked *c, const struct cfs_toc *toc,
			      const char *what)
{
	if (!c->tarsplit.present)
		return 0;
	if (toc->has_tarsplit_sha256 && c->tarsplit.checksum &&
	    memcmp(toc->tarsplit_sha256, c->tarsplit.sha256, 32) != 0)
		return cfs_error(EBADMSG,
				 "%s: the TOC's tarSplitDigest and the "
				 "tarsplit-checksum annotation differ",
				 what);
	if (toc->has_tarsplit_sha256) {
		memcpy(c->tarsplit.sha256, toc->tarsplit_sha256, 32);
		c->tarsplit.checksum = true;
	}
	return 0;
}

void cfs_toc_free(struct cfs_toc *toc)
{
	for (size_t i = 0; i < toc->n; i++)
		entry_free(&toc->entries[i]);
	free(toc->entries);
	free(toc->files);
	memset(toc, 0, sizeof(*toc));
}

void cfs_toc_entry_to_layer(const struct cfs_toc_entry *e,
			    struct cfs_layer_entry *out)
{
	static const uint32_t fmt[] = {
		[CFS_TOC_REG] = S_IFREG,     [CFS_TOC_DIR] = S_IFDIR,
		[CFS_TOC_SYMLINK] = S_IFLNK, [CFS_TOC_HARDLINK] = S_IFREG,
		[CFS_TOC_CHAR] = S_IFCHR,    [CFS_TOC_BLOCK] = S_IFBLK,
		[CFS_TOC_FIFO] = S_IFIFO,
	};

	memset(out, 0, sizeof(*out));
	out->path = e->name;
	out->mode = fmt[e->type] | e->mode;
	out->uid = e->uid;
	out->gid = e->gid;
	out->mtime_sec = e->mtime_sec;
	out->mtime_nsec = e->mtime_nsec;
	if (e->type == CFS_TOC_CHAR || e->type == CFS_TOC_BLOCK)
		out->rdev = makedev(e->dev_major, e->dev_minor);
	out->link = e->link;
	out->hardlink = e->type == CFS_TOC_HARDLINK;
	out->xattrs = e->xattrs;
	out->n_xattrs = e->n_xattrs;
}

static int cmp_range(const void *a, const void *b)
{
	const struct cfs_chunked_range *x = a, *y = b;

	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

int cfs_chunked_plan(const struct cfs_toc *toc,
		     bool (*have)(void *opaque, const struct cfs_toc_entry *e),
		     void *opaque, uint64_t gap, struct cfs_chunked_range **out,
		     size_t *n_out, uint64_t *bytes)
{
	struct cfs_chunked_range *r = NULL;
	size_t n = 0, m = 0;

	*out = NULL;
	*n_out = 0;
	*bytes = 0;
	for (size_t i = 0; i < toc->n_files; i++) {
		const struct cfs_toc_entry *e = toc->files[i];

		if (have(opaque, e))
			continue;
		if (!r && !(r = calloc(toc->n_files, sizeof(*r))))
			return -ENOMEM;
		r[n].offset = e->offset;
		r[n++].end = e->end;
	}
	if (n == 0)
		return 0;
	qsort(r, n, sizeof(*r), cmp_range);
	/* Files of the same content share a range: merge what overlaps or
	 * nearly touches. */
	for (size_t i = 1; i < n; i++) {
		if (r[i].offset <= r[m].end || r[i].offset - r[m].end < gap)
			r[m].end = CFS_MAX(r[m].end, r[i].end);
		else
			r[++m] = r[i];
	}
	*n_out = m + 1;
	for (size_t i = 0; i <= m; i++)
		*bytes += r[i].end - r[i].offset;
	*out = r;
	return 0;
}

/* Length of the valid UTF-8 sequence at @s (of @n bytes), or 0. */
static size_t utf8_seq(const uint8_t *s, size_t n)
{
	size_t len = s[0] < 0x80		  ? 1 :
		     s[0] >= 0xc2 && s[0] <= 0xdf ? 2 :
		     s[0] >= 0xe0 && s[0] <= 0xef ? 3 :
		     s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 :
						    0;
	uint8_t lo = 0x80, hi = 0xbf;

	if (len == 0 || len > n)
		return 0;
	/* no overlong forms, surrogates or code points past U+10FFFF */
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	for (size_t i = 1; i < len; i++) {
		if (s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xbf))
			return 0;
	}
	return len;
}

bool cfs_utf8_valid(const char *s)
{
	size_t n = strlen(s), k;

	for (size_t i = 0; i < n; i += k)
		if (!(k = utf8_seq((const uint8_t *)s + i, n - i)))
			return false;
	return true;
}

/* Is @name the raw name @raw (@n bytes) as Go's JSON writes it: each
 * byte that is not part of valid UTF-8 as U+FFFD? The TOC names a file
 * so; the tar-split keeps the bytes ("name_raw"). */
static bool same_as_go_json(const char *name, const uint8_t *raw, size_t n)
{
	static const char fffd[] = "\xef\xbf\xbd";
	size_t i = 0, at = 0;

	while (i < n) {
		size_t k = utf8_seq(raw + i, n - i);

		if (k) {
			if (strncmp(name + at, (const char *)raw + i, k) != 0)
				return false;
			at += k;
			i += k;
		} else {
			if (strncmp(name + at, fffd, 3) != 0)
				return false;
			at += 3;
			i++;
		}
	}
	return name[at] == '\0';
}

/* Does the tar-split's entry @o name @e? */
static bool names_entry(json_object *o, const struct cfs_toc_entry *e,
			const char *name)
{
	const char *raw64 = NULL;
	uint8_t *raw;
	size_t n;
	bool same;

	if (name)
		return strcmp(e->name, name) == 0;
	if (get_string(o, "name_raw", &raw64) < 0 || !raw64 ||
	    cfs_base64_decode(raw64, &raw, &n) < 0)
		return false;
	same = same_as_go_json(e->name, raw, n);
	free(raw);
	return same;
}

/* One parsed line @o of a tar-split; *@next: the TOC's next file. */
static int
tarsplit_line(json_object *o, const struct cfs_toc *toc, size_t *next,
	      int (*write)(void *opaque, const void *buf, size_t len),
	      int (*file)(void *opaque, const struct cfs_toc_entry *e),
	      void *opaque, const char *what, size_t lineno)
{
	const char *name = NULL, *payload = NULL;
	const struct cfs_toc_entry *e;
	uint64_t type, size;
	uint8_t *bytes;
	size_t n;
	int r;

	if (!json_object_is_type(o, json_type_object) ||
	    get_uint(o, "type", 2, &type) < 0 ||
	    get_uint(o, "size", INT64_MAX, &size) < 0 ||
	    get_string(o, "name", &name) < 0 ||
	    get_string(o, "payload", &payload) < 0 || (type != 1 && type != 2))
		return cfs_error(EBADMSG, "%s: tar-split line %zu: malformed",
				 what, lineno);
	if (type == 1) {
		if (size == 0)
			return 0; /* no content: the headers said it all */
		e = *next < toc->n_files ? toc->files[*next] : NULL;
		if (!e || !names_entry(o, e, name) || e->size != size)
			return cfs_error(
				EBADMSG,
				"%s: tar-split line %zu: %s (%" PRIu64
				" bytes) is not the TOC's next file%s%s",
				what, lineno, name ? name : "a file", size,
				e ? ", " : "", e ? e->name : "");
		(*next)++;
		return file(opaque, e);
	}
	if (!payload || !*payload)
		return 0;
	r = cfs_base64_decode(payload, &bytes, &n);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return cfs_error(EBADMSG,
				 "%s: tar-split line %zu: payload is not "
				 "base64",
				 what, lineno);
	r = write(opaque, bytes, n);
	free(bytes);
	return r;
}

int cfs_tarsplit_rebuild(const char *tarsplit, const struct cfs_toc *toc,
			 int (*write)(void *opaque, const void *buf,
				      size_t len),
			 int (*file)(void *opaque,
				     const struct cfs_toc_entry *e),
			 void *opaque, const char *what)
{
	const char *line = tarsplit;
	size_t lineno = 0, next = 0;
	int r = 0;

	while (r == 0 && *line) {
		const char *eol = strchr(line, '\n');
		size_t len = eol ? (size_t)(eol - line) : strlen(line);
		json_object *o = NULL;

		lineno++;
		if (len > 0) {
			if (cfs_json_parse(line, len, &o) < 0)
				return cfs_error_prefix(
					EBADMSG, "%s: tar-split line %zu", what,
					lineno);
			r = tarsplit_line(o, toc, &next, write, file, opaque,
					  what, lineno);
			json_object_put(o);
		}
		line += len + (eol != NULL);
	}
	if (r == 0 && next < toc->n_files)
		return cfs_error(EBADMSG,
				 "%s: tar-split: the TOC's %s and %zu more "
				 "files are not in it",
				 what, toc->files[next]->name,
				 toc->n_files - next - 1);
	return r;
}
