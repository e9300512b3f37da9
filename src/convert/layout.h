/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* Writing into OCI image layouts: what sealing and artifacts share. */
#ifndef CFS_LAYOUT_H
#define CFS_LAYOUT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cleanup.h"

CFS_DEFINE_CLEANUP(json_object *, json_object_put)

#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_EMPTY "application/vnd.oci.empty.v1+json"
/* The empty JSON object "{}", the config of artifacts without one. */
#define EMPTY_DIGEST                                                           \
	"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
#define ANN_REF_NAME "org.opencontainers.image.ref.name"
/* index.json is small; a bound keeps a damaged one from eating memory. */
#define INDEX_MAX (16 * 1024 * 1024)

/* Write @len bytes as @dirfd/@name, atomically and fsync'ed, unless it
 * exists (@replace: whether or not). */
int cfs_layout_write_file(int dirfd, const char *name, const void *data,
			  size_t len, bool replace);
/* Make @path an OCI layout if it is not one; open it and blobs/sha256. */
int cfs_layout_open(const char *path, int *dirfd, int *blobs);
/* Write @len bytes as a blob; its digest to @digest_out. */
int cfs_layout_put_blob(int blobs, const char *text, size_t len,
			char digest_out[80]);
/* A new descriptor object. */
json_object *cfs_layout_descriptor(const char *media_type, const char *digest,
				   uint64_t size);
/* @dirfd's index.json (*@index, to put) and its "manifests" array
 * (borrowed), or -errno with a message naming @where. */
int cfs_layout_read_index(const char *where, int dirfd, json_object **index,
			  json_object **manifests);
/* Tag @digest (an index of @size bytes) as @tag in @dirfd/index.json,
 * replacing what had the tag. */
int cfs_layout_tag(const char *where, int dirfd, const char *tag,
		   const char *digest, uint64_t size);
/* The digest @tag names in @dirfd/index.json; -ENOENT (no message)
 * when no entry has the tag. */
int cfs_layout_tagged(const char *where, int dirfd, const char *tag,
		      char digest_out[80]);
/* Read blob @digest of the layout @dirfd, check its SHA-256 (and @size
 * if >= 0); at most @max bytes. */
int cfs_layout_read_blob(const char *where, int dirfd, const char *digest,
			 int64_t size, size_t max, uint8_t **out,
			 size_t *len_out);
/* @o's string member @key, or NULL; its "size", or -1. */
const char *cfs_json_str(json_object *o, const char *key);
int64_t cfs_json_size(json_object *o);

#endif
