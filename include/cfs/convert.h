/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * libcfs: converting a source into a composefs image and a
 * content-addressed object directory. Sources: "dir:PATH", "dump:FILE",
 * "cfs:IMAGE", "oci:PATH[:REF]", "oci-archive:FILE[:REF]",
 * "docker-archive:FILE[:REF]".
 */
#ifndef CFS_CONVERT_H
#define CFS_CONVERT_H

#include "image.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Progress of a conversion, for a progress bar. */
typedef struct cfs_progress {
	uint64_t input_bytes; /**< compressed layer bytes read so far */
	uint64_t input_total; /**< compressed bytes of all layers, 0 if unknown */
	uint64_t objects; /**< files stored or found as objects so far */
	size_t layer; /**< 1-based layer being read, 0 before the first */
	size_t n_layers;
	int done; /**< 1 on the last call */
	/** Layers built from the store's records so far (their bytes are
	 * not read, and not counted in input_total). */
	size_t layers_reused;
} cfs_progress;

/** Called from the converting thread, at most about ten times a second
 * and once more at the end. */
typedef void (*cfs_progress_fn)(void *opaque, const cfs_progress *p);

/** cfs_convert_options.flags: also compute each OCI layer's composefs
 * digest (cfs_layer_info.composefs_digest), as sealing needs. Whatever
 * the flags, a layer whose descriptor carries a sealing annotation gets
 * the digest it names computed and compared: a mismatch fails the
 * conversion (-EBADMSG, naming the layer and both digests). */
#define CFS_CONVERT_LAYER_DIGESTS 0x1u
/** cfs_convert_options.flags: make the tree canonical
 * (cfs_tree_canonicalize()) and write it as such (format version
 * CFS_CANONICAL_FORMAT unless @write says otherwise; a @write whose
 * max_format is below it is -EINVAL). Layer digests and the legacy
 * CFS_ANNOTATION_* checks are of the layers as converted, before. */
#define CFS_CONVERT_CANONICAL 0x2u

/** Name of the sealing annotations (composefs OCI sealing spec): the
 * fs-verity SHA-256 (4 KiB blocks) digest, lower-case hex, of the
 * composefs image of one layer alone, and of all layers up to it. */
#define CFS_ANNOTATION_LAYER "composefs.layer.sha256-12"
#define CFS_ANNOTATION_MERGED "composefs.merged.sha256-12"

/** Keys of the composefs OCI sealing spec (composefs-rs,
 * crates/composefs-oci/src/sealing_spec.rs; docs/formats.md), for
 * fs-verity SHA-256 with 4 KiB blocks: the canonical image of all
 * layers (cfs_tree_canonicalize()), in the manifest's annotations; the
 * config JSON as stored, on the config descriptor; one layer's canonical
 * image, on its descriptor (neither written nor checked: see
 * docs/formats.md). A signature is under the key with
 * CFS_SPEC_SIG_SUFFIX appended: base64 of a DER PKCS#7 signature over
 * the kernel's fsverity_formatted_digest. */
#define CFS_SPEC_MERGED "composefs.merged.erofs.v1.fsverity-sha256-12"
#define CFS_SPEC_CONFIG "composefs.config.fsverity-sha256-12"
#define CFS_SPEC_LAYER "composefs.layer.erofs.v1.fsverity-sha256-12"
/** The manifest's own digest: only in the spec's artifact (seal.h). */
#define CFS_SPEC_MANIFEST "composefs.manifest.fsverity-sha256-12"
#define CFS_SPEC_SIG_SUFFIX ".sig"

typedef struct cfs_convert_options {
	unsigned int version; /**< CFS_CONVERT_OPTIONS_VERSION */
	unsigned int flags; /**< CFS_CONVERT_* */
	/** Object directory to store external file content in, created if
	 * missing; NULL computes digests without storing anything. */
	const char *objects_dir;
	/** Threads to use; 0 picks a default. Reserved: conversion of an OCI
	 * layer currently always runs two threads (decompression, and tar
	 * parsing with hashing and storing). Output never depends on it. */
	unsigned int threads;
	/** OCI sources: platform "OS/ARCH[/VARIANT]" to pick from an image
	 * index; NULL for the host's. */
	const char *platform;
	/** Optional progress callback and its argument. */
	cfs_progress_fn progress;
	void *progress_opaque;
	/** Since version 2: how cfs_convert() writes the image (format
	 * versions, image.h); NULL for mkcomposefs' defaults. */
	const cfs_write_options *write;
} cfs_convert_options;

/* Version 1 (without @write) is still accepted. */
#define CFS_CONVERT_OPTIONS_VERSION 2
#define CFS_CONVERT_OPTIONS_INIT                                               \
	{                                                                      \
		CFS_CONVERT_OPTIONS_VERSION, 0, NULL, 0, NULL, NULL, NULL,     \
			NULL                                                   \
	}

/** One layer of an OCI source, as converted. */
typedef struct cfs_layer_info {
	char digest[CFS_DIGEST_STR_MAX]; /**< "sha256:<hex>" of the blob */
	char media_type[128];
	uint64_t compressed_bytes, uncompressed_bytes;
	uint64_t entries; /**< tar entries */
	/** The fs-verity digest of the composefs image of this layer alone
	 * (whiteouts kept as overlayfs whiteouts), when computed. */
	uint8_t composefs_digest[CFS_DIGEST_SIZE];
	bool has_composefs_digest;
	/** The descriptor's sealing annotations (64 hex), "" if absent. */
	char sealed_layer[CFS_DIGEST_HEX_SIZE + 1];
	char sealed_merged[CFS_DIGEST_HEX_SIZE + 1];
} cfs_layer_info;

/** What a conversion saw and did. */
typedef struct cfs_convert_stats {
	unsigned int version; /**< CFS_CONVERT_STATS_VERSION */
	uint64_t dirs, files, symlinks, chardevs, blockdevs, fifos, sockets;
	uint64_t hardlinks; /**< names beyond the first of an inode */
	uint64_t file_bytes; /**< content bytes of regular files */
	uint64_t inline_files; /**< files small enough to live in the image */
	uint64_t objects_new, objects_reused;
	uint64_t objects_new_bytes, objects_reused_bytes;
	/** OCI sources: "sha256:<hex>", empty when not known */
	char manifest_digest[CFS_DIGEST_STR_MAX],
		config_digest[CFS_DIGEST_STR_MAX];
	/** OCI sources: the layers, owned; see cfs_convert_stats_clear() */
	cfs_layer_info *layers;
	size_t n_layers;
	/** OCI sources: user.* xattrs of symlinks, devices and fifos left
	 * out of the image. Linux keeps user.* on regular files and
	 * directories only (it refuses to set one elsewhere and answers
	 * ENODATA to reading it), and containerd drops them with a warning
	 * when it unpacks; a tool should warn when this is not 0. */
	uint64_t xattrs_dropped;
} cfs_convert_stats;

#define CFS_CONVERT_STATS_VERSION 1
#define CFS_CONVERT_STATS_INIT                                                 \
	{                                                                      \
		.version = CFS_CONVERT_STATS_VERSION                           \
	}

/** Free what a filled-in cfs_convert_stats owns and zero it. Accepts
 * NULL. */
CFS_EXPORT void cfs_convert_stats_clear(cfs_convert_stats *stats);

/**
 * Build the tree of @source ("dir:PATH"). Regular files larger than
 * CFS_INLINE_DEFAULT bytes are referenced by fs-verity digest and, with an
 * object directory, stored there. @stats (nullable) is filled in.
 */
CFS_EXPORT int cfs_convert_tree(cfs_inode **root_out, const char *source,
				const cfs_convert_options *opts,
				cfs_convert_stats *stats);

/**
 * Convert @source into the composefs image file @output: the image is
 * written under a temporary name, fsync'ed after the objects are durable,
 * and renamed into place, so a failure never leaves a partial image.
 * @digest_out (nullable) receives the image's fs-verity digest and
 * @image_size (nullable) its size in bytes.
 */
CFS_EXPORT int cfs_convert(const char *source, const char *output,
			   const cfs_convert_options *opts,
			   cfs_convert_stats *stats,
			   uint8_t digest_out[CFS_DIGEST_SIZE],
			   uint64_t *image_size);

#ifdef __cplusplus
}
#endif

#endif
