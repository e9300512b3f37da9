/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * What the files of the OCI sources share (oci.c, oci-util.c,
 * oci-json.c, oci-platform.c, oci-archive.c, oci-manifest.c,
 * oci-docker.c): limits, media types, the store and context types, and
 * the functions one file offers the others. Not for the rest of the
 * library: convert/oci.h is the interface.
 */
#ifndef CFS_OCI_INTERNAL_H
#define CFS_OCI_INTERNAL_H

#include <json-c/json.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cleanup.h"
#include "common/digest.h"
#include "convert/oci.h"

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
/* A source string is a path and a reference. */
#define OCI_SOURCE_MAX (PATH_MAX + 1024)
/* Longest REF: a docker reference is at most 255 bytes of name plus a
 * 128-byte tag; digests are shorter. */
#define OCI_REF_MAX 512
/* Input strings quoted in messages are cut to this many bytes. */
#define OCI_QUOTE_MAX 160

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

struct oci_ctx {
	struct cfs_oci_image *img;
	struct cfs_oci_store *st;
	const char *src; /* the source string, first in every message */
	const char *ref; /* NULL when none was given */
	struct cfs_oci_platform want;
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
	char digest[CFS_SHA256_STR_SIZE];
	char media_type[128]; /* "" if unknown */
	int64_t size; /* -1 if unknown (a digest REF not in index.json) */
	char from[128]; /* who named it: "descriptor in index.json" */
};

enum doc_kind {
	DOC_INDEX,
	DOC_MANIFEST,
};

/* oci-util.c */
const char *oci_quote(const char *s, char buf[OCI_QUOTE_MAX + 4]);
bool oci_is_hex_lower(const char *s, size_t n);
bool oci_is_alg_char(char ch);
int oci_check_digest(const char *d);
int oci_require_sha256(struct oci_ctx *c, const char *label, const char *key,
		       const char *d);
void oci_blob_path(char *buf, size_t size, const char *digest);
int oci_pread_full(int fd, void *buf, size_t len, uint64_t off);
int oci_normalize_path(const char *in, char *out, size_t size);

/* oci-json.c */
int oci_parse_json(struct oci_ctx *c, const char *label, const char *buf,
		   size_t len, struct json_object **out);
int oci_type_error(struct oci_ctx *c, const char *label, const char *key,
		   struct json_object *v, enum json_type want);
int oci_json_get(struct oci_ctx *c, struct json_object *o, const char *label,
		 const char *path, const char *key, enum json_type type,
		 bool required, struct json_object **out);
int oci_json_get_string(struct oci_ctx *c, struct json_object *o,
			const char *label, const char *path, const char *key,
			bool required, const char **out);
int oci_json_elem_string(struct oci_ctx *c, struct json_object *v,
			 const char *label, const char *name, const char **out);
int oci_parse_desc(struct oci_ctx *c, struct json_object *o, const char *label,
		   const char *path, struct oci_desc *d);

/* oci-platform.c */
int oci_parse_platform(struct oci_ctx *c, const char *s);
int oci_platform_score(const struct cfs_oci_platform *w,
		       const struct oci_desc *d);
void oci_format_platform(char *buf, size_t size, const struct oci_desc *d);
void oci_list_add(char *buf, size_t size, const char *item);

/* oci-archive.c */
const struct oci_member *oci_member_find(struct cfs_oci_store *st,
					 const char *name);
void oci_free_members(struct cfs_oci_store *st);
int oci_archive_scan(struct oci_ctx *c);
int oci_archive_resolve(struct oci_ctx *c, const char *label, const char *name,
			const struct oci_member **out);
int oci_read_json(struct oci_ctx *c, const char *label, const char *name,
		  const char *digest, int64_t size, const char *from,
		  uint8_t **buf_out, size_t *len_out, struct json_object **out);

/* oci-manifest.c */
int oci_parse_diff_ids(struct oci_ctx *c, struct json_object *cfg,
		       const char *label, const char *layers_from);
int oci_alloc_layers(struct oci_ctx *c, size_t n, const char *label);
int oci_load_manifest(struct oci_ctx *c, struct json_object *m,
		      const struct oci_target *t, const char *label);
int oci_doc_kind(struct oci_ctx *c, struct json_object *doc,
		 const struct oci_target *t, const char *label,
		 enum doc_kind *kind);
int oci_open_layout(struct oci_ctx *c);

/* oci-docker.c */
int oci_open_docker_archive(struct oci_ctx *c);

#endif
