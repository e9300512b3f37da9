/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Writing into OCI image layouts, and reading checked blobs back: what
 * sealing and artifacts share (layout.h).
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

#include <cfs/image.h>

#include "common/cleanup.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/json.h"
#include "common/util.h"
#include "convert/layout.h"

/* Write @len bytes as @dirfd/@name, atomically, unless it exists. */
int cfs_layout_write_file(int dirfd, const char *name, const void *data,
			  size_t len, bool replace)
{
	int r;

	if (!replace && faccessat(dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	r = cfs_atomic_write(dirfd, name, data, len,
			     CFS_ATOMIC_SYNC |
				     (replace ? CFS_ATOMIC_REPLACE : 0));
	return r == -EEXIST ? 0 : r;
}

/* Make @path an OCI layout if it is not one; open it and blobs/sha256. */
int cfs_layout_open(const char *path, int *dirfd, int *blobs)
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
	r = cfs_layout_write_file(*dirfd, "oci-layout", layout, strlen(layout),
				  false);
	if (r == 0)
		r = cfs_layout_write_file(*dirfd, "index.json", index,
					  strlen(index), false);
	if (r < 0)
		return cfs_error_errno(-r, "%s", path);
	return 0;
}

/* Write @text as a blob; its digest to @digest_out. */
int cfs_layout_put_blob(int blobs, const char *text, size_t len,
			char digest_out[80])
{
	int r = cfs_sha256(text, len, NULL, digest_out);

	if (r == 0)
		r = cfs_layout_write_file(blobs, digest_out + 7, text, len,
					  false);
	return r;
}

json_object *cfs_layout_descriptor(const char *media_type, const char *digest,
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

int cfs_layout_read_index(const char *where, int dirfd, json_object **index,
			  json_object **manifests)
{
	_cleanup_close_ int fd = -1;
	int r;

	*index = NULL;
	fd = openat(dirfd, "index.json", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cfs_error_errno(errno, "%s: index.json", where);
	r = cfs_json_read_fd(fd, INDEX_MAX, index);
	if (r < 0)
		return cfs_error_prefix(-r, "%s: index.json", where);
	if (!json_object_object_get_ex(*index, "manifests", manifests) ||
	    !json_object_is_type(*manifests, json_type_array)) {
		json_object_put(*index);
		*index = NULL;
		return cfs_error(EINVAL, "%s: index.json: no manifests array",
				 where);
	}
	return 0;
}

int cfs_layout_tag(const char *where, int dirfd, const char *tag,
		   const char *digest, uint64_t size)
{
	_cleanup_(json_object_putp) json_object *index = NULL;
	json_object *manifests, *keep, *e, *ann;
	const char *text;
	int r;

	r = cfs_layout_read_index(where, dirfd, &index, &manifests);
	if (r < 0)
		return r;
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
	e = cfs_layout_descriptor(MT_OCI_INDEX, digest, size);
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
	r = cfs_layout_write_file(dirfd, "index.json", text, strlen(text),
				  true);
	if (r < 0)
		return cfs_error_errno(-r, "%s: writing index.json", where);
	return 0;
}

/* Read blob @digest of the layout @dirfd, check its SHA-256 (and @size
 * if >= 0); at most @max bytes. */
int cfs_layout_read_blob(const char *where, int dirfd, const char *digest,
			 int64_t size, size_t max, uint8_t **out,
			 size_t *len_out)
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
	r = cfs_sha256(buf, len, NULL, got);
	if (r < 0)
		return r;
	if (strcmp(got, digest) != 0)
		return cfs_error(EBADMSG, "%s: %s: content has digest %s",
				 where, path, got);
	*out = TAKE_PTR(buf);
	*len_out = len;
	return 0;
}

const char *cfs_json_str(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int64_t cfs_json_size(json_object *o)
{
	json_object *v;

	if (!json_object_object_get_ex(o, "size", &v) ||
	    !json_object_is_type(v, json_type_int))
		return -1;
	return json_object_get_int64(v);
}

int cfs_layout_tagged(const char *where, int dirfd, const char *tag,
		      char digest_out[80])
{
	_cleanup_(json_object_putp) json_object *index = NULL;
	json_object *manifests;
	int r;

	r = cfs_layout_read_index(where, dirfd, &index, &manifests);
	if (r < 0)
		return r;
	for (size_t i = 0; i < json_object_array_length(manifests); i++) {
		json_object *e = json_object_array_get_idx(manifests, i), *ann;
		const char *d = cfs_json_str(e, "digest"), *name;

		if (json_object_object_get_ex(e, "annotations", &ann) &&
		    (name = cfs_json_str(ann, ANN_REF_NAME)) &&
		    strcmp(name, tag) == 0 && d && strlen(d) < 80) {
			snprintf(digest_out, 80, "%s", d);
			return 0;
		}
	}
	return -ENOENT;
}
