/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Layer records in the store (layers/<64 hex of the diff_id>): what gc
 * keeps and fsck checks. Import writes them (import.c), the converter
 * reads and writes their format (convert/records.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/error.h"
#include "common/json.h"
#include "convert/records.h"
#include "store/store-internal.h"

int store_record_objects(int dirfd, const char *hex, const char *where,
			 struct store_objset *set)
{
	uint8_t diff_id[CFS_DIGEST_SIZE];
	struct cfs_record rec;
	struct cfs_layer_entry e;
	struct cfs_record_content content;
	int r;

	if (cfs_digest_from_hex(diff_id, hex) < 0)
		return cfs_error(EBADMSG, "%s: not a layer record name", where);
	r = cfs_record_open(&rec, dirfd, diff_id, where);
	if (r < 0)
		return r;
	while ((r = cfs_record_next(&rec, &e, &content, where)) > 0)
		if (content.digest)
			r = store_objset_add(set, content.digest, content.size);
	cfs_record_close(&rec);
	return r;
}

int store_config_diff_ids(const char *config, size_t len, char ***v, size_t *n)
{
	json_object *o = NULL, *rootfs, *ids;
	int r = 0;

	/* a config that is not JSON names no diff_id (what reads it as
	 * the image's config refuses it) */
	r = cfs_json_parse(config, len, &o);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		cfs_error_clear();
		return 0;
	}
	if (!json_object_object_get_ex(o, "rootfs", &rootfs) ||
	    !json_object_object_get_ex(rootfs, "diff_ids", &ids) ||
	    !json_object_is_type(ids, json_type_array)) {
		json_object_put(o);
		return 0;
	}
	for (size_t i = 0; r == 0 && i < json_object_array_length(ids); i++) {
		const char *id = json_object_get_string(
			json_object_array_get_idx(ids, i));

		if (id && strncmp(id, "sha256:", 7) == 0 &&
		    store_is_hex(id + 7, true))
			r = store_strv_add(v, n, id + 7);
	}
	json_object_put(o);
	return r;
}

bool store_record_usable(cfs_store *s, const char *hex)
{
	struct store_objset set = { 0 };
	bool ok;

	if (s->layers_fd < 0)
		return false;
	ok = store_record_objects(s->layers_fd, hex, "layer record", &set) == 0;
	for (size_t i = 0; ok && i < set.n; i++) {
		char path[CFS_DIGEST_HEX_SIZE + 2];

		cfs_digest_to_object_path(set.v[i].digest, path);
		ok = faccessat(s->objects_fd, path, F_OK,
			       AT_SYMLINK_NOFOLLOW) == 0;
	}
	store_objset_clear(&set);
	cfs_error_clear();
	return ok;
}

/* ---- content SHA-256 (the records' pairs) ------------------------------ */

int store_record_check_pairs(cfs_store *s, const char *hex, const char *where,
			     char bad[CFS_DIGEST_HEX_SIZE + 1])
{
	uint8_t diff_id[CFS_DIGEST_SIZE], sha[CFS_DIGEST_SIZE];
	char path[CFS_DIGEST_HEX_SIZE + 2];
	struct cfs_record rec;
	int r;

	if (cfs_digest_from_hex(diff_id, hex) < 0)
		return cfs_error(EBADMSG, "%s: not a layer record name", where);
	r = cfs_record_open(&rec, s->layers_fd, diff_id, where);
	if (r < 0)
		return r;
	for (size_t i = 0; r == 0 && i < rec.n_pairs; i++) {
		const uint8_t *pair = rec.pairs + i * 2 * CFS_DIGEST_SIZE;
		int fd;

		cfs_digest_to_object_path(pair + CFS_DIGEST_SIZE, path);
		fd = openat(s->objects_fd, path,
			    O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 && errno == ENOENT)
			continue; /* a missing object is reported as such */
		if (fd < 0)
			r = cfs_error_errno(errno, "store %s: objects/%s",
					    s->root, path);
		else if ((r = cfs_sha256_fd(fd, NULL, sha)) < 0)
			r = cfs_error_errno(-r, "store %s: objects/%s", s->root,
					    path);
		if (fd >= 0)
			close(fd);
		if (r == 0 && memcmp(sha, pair, CFS_DIGEST_SIZE) != 0) {
			cfs_digest_to_hex(pair + CFS_DIGEST_SIZE, bad);
			r = 1;
		}
	}
	cfs_record_close(&rec);
	return r;
}

static int pair_cmp(const void *a, const void *b)
{
	return memcmp(a, b, 2 * CFS_DIGEST_SIZE);
}

int store_shamap_load(cfs_store *s, struct store_shamap *m)
{
	char **names = NULL;
	size_t n = 0, kept = 0;
	int r;

	memset(m, 0, sizeof(*m));
	if (s->layers_fd < 0)
		return 0;
	r = store_dir_names(s, s->layers_fd, "layers", &names, &n);
	for (size_t i = 0; r == 0 && i < n; i++) {
		uint8_t diff_id[CFS_DIGEST_SIZE];
		struct cfs_record rec;
		uint8_t(*v)[2 * CFS_DIGEST_SIZE];

		if (!store_is_hex(names[i], true) ||
		    cfs_digest_from_hex(diff_id, names[i]) < 0)
			continue;
		/* a damaged record is fsck's to report; here it has none */
		if (cfs_record_open(&rec, s->layers_fd, diff_id, names[i]) <
		    0) {
			cfs_error_clear();
			continue;
		}
		m->n_records++;
		v = rec.n_pairs ? reallocarray(m->v, m->n + rec.n_pairs,
					       sizeof(*m->v)) :
				  m->v;
		if (rec.n_pairs && !v) {
			r = -ENOMEM;
		} else if (rec.n_pairs) {
			m->v = v;
			memcpy(m->v + m->n, rec.pairs,
			       rec.n_pairs * sizeof(*m->v));
			m->n += rec.n_pairs;
		}
		cfs_record_close(&rec);
	}
	store_strv_free(names, n);
	if (r < 0) {
		store_shamap_free(m);
		return r;
	}
	/* the same content in several records: once */
	if (m->n)
		qsort(m->v, m->n, sizeof(*m->v), pair_cmp);
	for (size_t i = 0; i < m->n; i++)
		if (!kept || memcmp(m->v[i], m->v[kept - 1], CFS_DIGEST_SIZE))
			memmove(m->v[kept++], m->v[i], sizeof(*m->v));
	m->n = kept;
	return 0;
}

static int sha_cmp(const void *key, const void *elem)
{
	return memcmp(key, elem, CFS_DIGEST_SIZE);
}

const uint8_t *store_shamap_find(const struct store_shamap *m,
				 const uint8_t sha256[CFS_DIGEST_SIZE])
{
	const uint8_t(*p)[2 * CFS_DIGEST_SIZE] =
		m->n ? bsearch(sha256, m->v, m->n, sizeof(*m->v), sha_cmp) :
		       NULL;

	return p ? *p + CFS_DIGEST_SIZE : NULL;
}

void store_shamap_free(struct store_shamap *m)
{
	free(m->v);
	memset(m, 0, sizeof(*m));
}
