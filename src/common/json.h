/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * The one way JSON is read: strict, bounded, with a message that says
 * where a document went wrong. Every document the project reads (OCI
 * indexes, manifests and configs; the store's names, metadata and mount
 * records; skopeo's replies and layouts; podman's files) goes through
 * cfs_json_parse(), so they all obey the same rules and limits.
 */
#ifndef CFS_JSON_H
#define CFS_JSON_H

#include <json-c/json.h>
#include <stddef.h>

/* Nesting: image documents nest less than ten deep. */
#define CFS_JSON_DEPTH_MAX 64
/* Objects and arrays in one document. json-c spends ~750 bytes on an
 * empty object, so 4 MiB of "{}," would take 1 GiB; this caps it near
 * 200 MiB while a config exposing every port (65536 "{}") still loads. */
#define CFS_JSON_CONTAINERS_MAX (4 * 65536)

/*
 * Parse the @len bytes at @buf, which must be exactly one JSON value
 * (RFC 8259, json-c's strict mode: no comments, no trailing commas, no
 * NUL byte) and white space, nested at most CFS_JSON_DEPTH_MAX deep
 * with at most CFS_JSON_CONTAINERS_MAX objects and arrays. On failure
 * *@out is NULL and the message is "invalid JSON at byte N: why" (or
 * the limit passed), for the caller to prefix with the document's name:
 * -EINVAL, -E2BIG (containers), -ENOMEM.
 */
int cfs_json_parse(const char *buf, size_t len, json_object **out);

/* The same for what is left to read of @fd (the whole of a file just
 * opened), a regular file of at most @max bytes: -EFBIG over, -EINVAL
 * for anything but a regular file, -errno of fstat or read; the message
 * is for the caller to prefix, as cfs_json_parse()'s. */
int cfs_json_read_fd(int fd, size_t max, json_object **out);

#endif
