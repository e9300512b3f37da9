/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Layer records in the store (layers/<64 hex of the diff_id>): what gc
 * keeps and fsck checks. Import writes them (import.c), the converter
 * reads and writes their format (convert/records.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <string.h>
#include <unistd.h>

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
