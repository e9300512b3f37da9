/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * OCI image sources: finding an image's manifest, config and layers in an
 * OCI layout directory (oci:), an OCI layout inside a tar (oci-archive:)
 * or a docker save archive (docker-archive:), and reading blobs from them
 * without extracting anything to disk.
 *
 * Every JSON document is read with a size limit, checked against the
 * digest and size of the descriptor that named it, and parsed with json-c.
 */
#ifndef CFS_OCI_H
#define CFS_OCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cfs/common.h>

/* Largest JSON document (index, manifest, config, manifest.json) read.
 * Real configs are a few KiB; a history of thousands of layers stays far
 * below this, and the limit keeps a hostile blob from exhausting memory. */
#define CFS_OCI_JSON_MAX (4 * 1024 * 1024)
/* Layers per image (containers/storage allows 127 stacked layers in
 * practice; registries cap at 128-ish). */
#define CFS_OCI_LAYERS_MAX 1024
/* Image indexes nested inside indexes (index.json itself not counted):
 * real layouts nest one or two; more is a loop or an attack. */
#define CFS_OCI_INDEX_DEPTH_MAX 8
/* "OS/ARCH/VARIANT" with its NUL, each part at most 31 bytes. */
#define CFS_OCI_PLATFORM_MAX 96

enum cfs_layer_compression {
	CFS_LAYER_TAR,
	CFS_LAYER_GZIP,
	CFS_LAYER_ZSTD,
};

struct cfs_oci_layer {
	/* "sha256:<hex>" of the blob as stored; for docker-archive layers,
	 * which have no descriptor, the diff_id (the blob is uncompressed
	 * or its compression is sniffed). */
	char *digest;
	char *media_type; /* as in the manifest (docker-archive: invented) */
	enum cfs_layer_compression compression;
	int64_t size; /* from the descriptor (docker-archive: member size) */
	char *diff_id; /* "sha256:<hex>" of the uncompressed tar (config) */
	bool verify_blob; /* check digest+size of the stored bytes */
	/* a partial pull (store/partial.h): the cfs_blob_fetch gives the
	 * layer's tar, rebuilt, of size bytes; its diff_id is checked */
	bool partial;
	/* ...made from the layer's zstd:chunked TOC alone (--trust-toc): not
	 * the tar of the diff_id, which is neither checked nor recorded */
	bool unverified;
	/* sealing annotations of the descriptor (64 hex), "" if absent */
	char sealed_layer[CFS_DIGEST_HEX_SIZE + 1];
	char sealed_merged[CFS_DIGEST_HEX_SIZE + 1];
};

struct cfs_oci_image {
	char *source; /* as given, for messages */
	char *manifest_digest; /* "sha256:<hex>"; NULL for docker-archive */
	char *config_digest; /* "sha256:<hex>" */
	uint8_t *config; /* raw config JSON */
	size_t config_len;
	/* raw image manifest JSON (OCI or docker v2 schema 2; its SHA-256
	 * is manifest_digest); NULL for docker-archive */
	uint8_t *manifest;
	size_t manifest_len;
	struct cfs_oci_layer *layers;
	size_t n_layers;
	/* The composefs OCI sealing spec's keys (CFS_SPEC_*, seal.h): 64
	 * hex or "", and their ".sig" companions (base64 as in the
	 * manifest) or NULL. merged is in the manifest's annotations,
	 * config on its config descriptor. */
	char spec_merged[CFS_DIGEST_HEX_SIZE + 1];
	char spec_config[CFS_DIGEST_HEX_SIZE + 1];
	char *spec_merged_sig, *spec_config_sig;
	/* Only from a spec artifact (the manifest cannot name its own
	 * digest): the manifest's fs-verity digest and signature. */
	char spec_manifest[CFS_DIGEST_HEX_SIZE + 1];
	char *spec_manifest_sig;
	/* private: where blobs come from */
	struct cfs_oci_store *store;
};

/* A readable range of bytes: [offset, offset + length) of fd; or, with
 * @stream, the next @length bytes of a pipe (offset unused). */
struct cfs_blob {
	int fd; /* borrowed from the image, or from a cfs_blob_fetch */
	uint64_t offset;
	uint64_t length;
	bool stream;
};

/*
 * Where the blob of a layer comes from when the layout lacks it: a pull
 * streams it from the registry as the conversion reads it (no copy on
 * disk). open() gives, in *@fd, a pipe that yields the @size bytes of
 * blob @digest, or -errno with a message naming it. finish() is called
 * once for every fd open() gave, after the conversion read what it
 * wanted (@complete: all @size bytes, else it stopped early); it closes
 * the fd and returns -errno with a message naming the blob when the
 * producer failed on its own (a transfer that broke: its reason
 * explains a blob that ended early), else 0.
 * The bytes are checked against the descriptor's digest and size by the
 * conversion whatever the producer says.
 */
struct cfs_blob_fetch {
	int (*open)(void *opaque, const char *digest, int64_t size, int *fd);
	int (*finish)(void *opaque, int fd, bool complete);
	void *opaque;
};

/*
 * Resolve @source ("oci:PATH[:REF]", "oci-archive:FILE[:REF]",
 * "docker-archive:FILE[:REF]"). @platform is "OS/ARCH[/VARIANT]" or NULL
 * for the host's. The result owns everything it points to.
 *
 * PATH may contain ':'. REF starts after the rightmost ':' whose prefix
 * exists (a directory for oci:, anything else for the archives), so
 * "oci:/a:b:sha256:<hex>" and "docker-archive:/x.tar:reg:5000/n:tag"
 * split as meant; without such a ':' the whole string is PATH.
 * REF is, for oci: and oci-archive:, a tag (the annotation
 * org.opencontainers.image.ref.name, matched exactly) or a manifest or
 * index digest "sha256:<hex>" (also "@sha256:<hex>"), which may name any
 * manifest blob of the layout, not only those in index.json; for
 * docker-archive: a RepoTags entry ("name:tag", also matched after docker
 * normalisation: "debian" == "docker.io/library/debian:latest") or "@N",
 * the 0-based position in manifest.json. Without REF the source must
 * hold exactly one image (entries of index.json that differ only in
 * platform, same tag or none, count as one and are chosen by platform).
 *
 * Image indexes are followed, choosing the entry whose platform matches
 * best; a single manifest is taken whatever its platform. Nothing is
 * chosen silently: entries of different digests that match the platform
 * equally well, or a docker-archive tag on entries of different images,
 * are an error listing the digests (or @N) to choose from.
 *
 * Errors: a one-line message naming the source and what is wrong
 * ("oci:/x: manifest sha256:ab..: size 100, descriptor in index.json
 * says 99"), and
 *   -ENOENT      missing file, blob or member; unknown REF; no image for
 *                the platform
 *   -EINVAL      malformed source string, platform or JSON; wrong JSON
 *                types; REF missing where several images exist, or
 *                naming several; several images for the platform;
 *                diff_ids not matching the layers
 *   -EBADMSG     content not matching its digest or size
 *   -EFBIG       JSON document over CFS_OCI_JSON_MAX
 *   -E2BIG       more layers, nested indexes, archive members or JSON
 *                objects than allowed
 *   -ELOOP       a symlink loop inside an archive
 *   -EOPNOTSUPP  unsupported digest algorithm, media type, layout
 *                version, compressed archive
 *   other -errno from the system.
 */
int cfs_oci_open(struct cfs_oci_image **out, const char *source,
		 const char *platform);
/*
 * An image from its manifest and config bytes (@manifest_len and
 * @config_len at most CFS_OCI_JSON_MAX), as a registry client has them:
 * checked as cfs_oci_open() checks a layout's (the config against the
 * manifest's descriptor), @source naming it in messages. It holds no
 * layer blob: cfs_oci_layer_blob() says -ENOENT, and a conversion asks
 * its cfs_blob_fetch for each.
 */
int cfs_oci_open_manifest(struct cfs_oci_image **out, const char *source,
			  const void *manifest, size_t manifest_len,
			  const void *config, size_t config_len);
void cfs_oci_free(struct cfs_oci_image *img);

/*
 * Locate layer @i's blob (-ENOENT with a message if it is missing). The
 * fd stays owned by @img (layout directories: opened on first use and
 * kept until cfs_oci_free; archives: the archive's fd). length is what is
 * stored (file size or tar member size); comparing it with the layer's
 * size and digest is the caller's job.
 */
int cfs_oci_layer_blob(struct cfs_oci_image *img, size_t i,
		       struct cfs_blob *blob);

/* Split the part of a source after "oci:" (@want_dir) or an archive
 * prefix into PATH and REF: REF starts after the rightmost ':' whose
 * prefix exists as a directory (@want_dir) or file; else all of it is
 * PATH and *@ref is NULL. */
int cfs_oci_split_source(const char *rest, bool want_dir, char **path,
			 char **ref);

/* True when @source names an OCI source this module handles (prefix
 * "oci:", "oci-archive:" or "docker-archive:"). */
bool cfs_oci_is_source(const char *source);

/* The platform used when cfs_oci_open gets NULL: "linux/" and uname's
 * machine in Go naming ("linux/amd64", "linux/arm64/v8", "linux/arm/v7").
 * On arm64 the v8 variant also matches entries without a variant. */
void cfs_oci_host_platform(char buf[CFS_OCI_PLATFORM_MAX]);

/* A platform as --platform gives it: each part 1 to 31 of
 * [A-Za-z0-9._-]. */
struct cfs_oci_platform {
	char os[32];
	char arch[32];
	char variant[32]; /* "" when none */
};

/* Parse "OS/ARCH[/VARIANT]", ARCH in uname's or Debian's spelling made
 * Go's, which is what image indexes use (x86_64 and amd64 are one).
 * -EINVAL with the message 'platform "S": expected OS/ARCH[/VARIANT]',
 * for the caller to prefix. */
int cfs_oci_parse_platform(const char *s, struct cfs_oci_platform *out);

#endif
