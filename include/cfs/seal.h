/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * libcfs: sealing OCI images (composefs OCI sealing conventions,
 * composefs-rs doc/plans/oci-sealing-spec.md). A sealed image's manifest
 * carries, on each layer descriptor, the composefs digest of that layer
 * alone (CFS_ANNOTATION_LAYER) and, on the last one, that of the whole
 * image (CFS_ANNOTATION_MERGED): the fs-verity SHA-256 digest, 4 KiB
 * blocks, of the composefs image, as lower-case hex. Conversion is
 * deterministic, so whoever converts the image later gets these digests
 * or knows the image is not the one sealed (cfs_convert() checks them).
 */
#ifndef CFS_SEAL_H
#define CFS_SEAL_H

#include "convert.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cfs_seal_options {
	unsigned int version; /**< CFS_SEAL_OPTIONS_VERSION */
	unsigned int flags; /**< CFS_SEAL_* flags */
	/** Tag the sealed manifest gets in index.json (NULL: the source's
	 * tag, which then moves from the unsealed manifest). */
	const char *tag;
	/** As in cfs_convert_options. */
	const char *platform;
	unsigned int threads;
	/** Since version 2: sign the spec's digests (merged image and
	 * config) with this PEM private key and its PEM certificate, both
	 * or neither. */
	const char *sign_key;
	const char *sign_cert;
} cfs_seal_options;

/**
 * Rewrite every layer as zstd:chunked (containers/storage's format, which
 * podman and CRI-O pull partially), with the fs-verity digest of each
 * file in its TOC (docs/formats.md): the new blobs go into the layout,
 * and the sealed manifest names them. The layers' tars, and so the
 * config, the diff_ids and the composefs digests, stay the same.
 */
#define CFS_SEAL_ZSTD_CHUNKED 0x1u

/* Version 1 (without the signing key) is still accepted. */
#define CFS_SEAL_OPTIONS_VERSION 2
#define CFS_SEAL_OPTIONS_INIT                                                  \
	{                                                                      \
		CFS_SEAL_OPTIONS_VERSION, 0, NULL, NULL, 0, NULL, NULL         \
	}

/** What cfs_seal() wrote. Free with cfs_seal_result_clear(). */
typedef struct cfs_seal_result {
	unsigned int version; /**< CFS_SEAL_RESULT_VERSION */
	/** the sealed manifest, "sha256:<hex>" */
	char manifest_digest[CFS_DIGEST_STR_MAX];
	uint64_t manifest_size;
	/** the manifest it was made from */
	char source_manifest_digest[CFS_DIGEST_STR_MAX];
	char config_digest[CFS_DIGEST_STR_MAX];
	char *tag; /**< the tag it got, NULL if none */
	/** The merged digest (CFS_ANNOTATION_MERGED), 64 hex. */
	char merged[CFS_DIGEST_HEX_SIZE + 1];
	/** Per layer: the blob digest and CFS_ANNOTATION_LAYER. */
	struct cfs_seal_layer {
		char digest[CFS_DIGEST_STR_MAX];
		char composefs[CFS_DIGEST_HEX_SIZE + 1];
	} * layers;
	size_t n_layers;
	/** The composefs OCI sealing spec's digests (CFS_SPEC_MERGED: the
	 * canonical image; CFS_SPEC_CONFIG), 64 hex; canonical is "" when
	 * the image has no canonical tree (no /usr: see
	 * cfs_tree_canonicalize()), and then only the legacy keys are
	 * written. */
	char canonical[CFS_DIGEST_HEX_SIZE + 1];
	char config_verity[CFS_DIGEST_HEX_SIZE + 1];
	bool sig_written; /**< the .sig keys were written */
} cfs_seal_result;

#define CFS_SEAL_RESULT_VERSION 1
#define CFS_SEAL_RESULT_INIT                                                   \
	{                                                                      \
		.version = CFS_SEAL_RESULT_VERSION                             \
	}

/** Free what a filled-in cfs_seal_result owns and zero it; accepts NULL. */
CFS_EXPORT void cfs_seal_result_clear(cfs_seal_result *res);

/**
 * Seal the image @source ("oci:PATH[:REF]", a layout directory the
 * caller may write): convert it (no objects stored), then write into the
 * same layout a manifest equal to the image's but for the sealing
 * annotations: the spec's keys (CFS_SPEC_MERGED in the manifest's
 * annotations, CFS_SPEC_CONFIG on the config descriptor, with their
 * signatures when @opts has a key) and, for readers of earlier versions,
 * the legacy CFS_ANNOTATION_* keys on its layer descriptors. Point the
 * tag at it in
 * index.json (replacing the source manifest's entry when the tag is the
 * same). The config is unchanged, and so are the layer blobs
 * unless @opts asks for CFS_SEAL_ZSTD_CHUNKED. Sealing a sealed image
 * again gives the same manifest. Docker schema 2 manifests cannot carry
 * annotations: -EOPNOTSUPP. @res is required.
 */
CFS_EXPORT int cfs_seal(const char *source, const cfs_seal_options *opts,
			cfs_seal_result *res);

/* ---- composefs artifacts ---------------------------------------------- */

/** artifactType of a composefs artifact, and the media type of its one
 * blob, the composefs image (docs/formats.md). */
#define CFS_ARTIFACT_TYPE "application/vnd.oci2cfs.composefs.v1"
#define CFS_ARTIFACT_IMAGE_MEDIA_TYPE                                          \
	"application/vnd.oci2cfs.composefs.image.v1.erofs"
/** Annotation of the artifact: the layers' composefs digests, in layer
 * order, comma-separated. */
#define CFS_ANNOTATION_LAYERS "org.oci2cfs.composefs.layers.sha256-12"

/** Options of cfs_artifact() and cfs_spec_artifact(). */
typedef struct cfs_artifact_options {
	unsigned int version; /**< CFS_ARTIFACT_OPTIONS_VERSION */
	unsigned int flags; /**< none defined yet; must be 0 */
	/** As in cfs_convert_options. */
	const char *platform;
	unsigned int threads;
	/** cfs_spec_artifact(): sign the spec's digests (manifest, config,
	 * merged image) with this PEM private key and its PEM certificate,
	 * both or neither; cfs_artifact() takes neither. */
	const char *sign_key;
	const char *sign_cert;
} cfs_artifact_options;

#define CFS_ARTIFACT_OPTIONS_VERSION 1
#define CFS_ARTIFACT_OPTIONS_INIT                                              \
	{                                                                      \
		.version = CFS_ARTIFACT_OPTIONS_VERSION                        \
	}

/** What cfs_artifact() wrote. */
typedef struct cfs_artifact_result {
	unsigned int version; /**< CFS_ARTIFACT_RESULT_VERSION */
	char manifest_digest[CFS_DIGEST_STR_MAX]; /**< the artifact manifest */
	uint64_t manifest_size;
	char subject_digest[CFS_DIGEST_STR_MAX]; /**< the image's manifest */
	/** SHA-256 of the composefs image blob */
	char image_digest[CFS_DIGEST_STR_MAX];
	uint64_t image_size;
	char merged[CFS_DIGEST_HEX_SIZE + 1]; /**< its fs-verity digest */
	char tag[CFS_DIGEST_STR_MAX]; /**< "sha256-<subject hex>", the referrers tag */
} cfs_artifact_result;

#define CFS_ARTIFACT_RESULT_VERSION 1
#define CFS_ARTIFACT_RESULT_INIT                                               \
	{                                                                      \
		.version = CFS_ARTIFACT_RESULT_VERSION                         \
	}

/**
 * Convert @source (an OCI image with a manifest: oci:, oci-archive:)
 * and write into the OCI layout @output_layout (created if missing; it
 * may be the source layout) an artifact: an image manifest with
 * artifactType CFS_ARTIFACT_TYPE, the empty config, the composefs image
 * as its one blob, the digests as annotations, and the image's manifest
 * as its subject; plus an image index listing it, tagged
 * "sha256-<subject hex>" (the referrers tag schema for registries
 * without the referrers API). Deterministic: the same image gives the
 * same artifact. @opts: platform and threads (no signing key).
 */
CFS_EXPORT int cfs_artifact(const char *source, const char *output_layout,
			    const cfs_artifact_options *opts,
			    cfs_artifact_result *res);

/* ---- the sealing spec's artifact --------------------------------------- */

/** artifactType of the composefs OCI sealing spec's metadata artifact
 * and the media type of its layers (one signature each, empty when not
 * signed; CFS_SPEC_MANIFEST is the key of its manifest entry). */
#define CFS_SPEC_ARTIFACT_TYPE "application/vnd.composefs.metadata.v1"
#define CFS_SPEC_SIGNATURE_MEDIA_TYPE                                          \
	"application/vnd.composefs.signature.v1+pkcs7"

/** What cfs_spec_artifact() wrote. */
typedef struct cfs_spec_artifact_result {
	unsigned int version; /**< CFS_SPEC_ARTIFACT_RESULT_VERSION */
	char manifest_digest[CFS_DIGEST_STR_MAX]; /**< the artifact manifest */
	uint64_t manifest_size;
	char subject_digest[CFS_DIGEST_STR_MAX]; /**< the image's manifest */
	char tag[CFS_DIGEST_STR_MAX]; /**< "sha256-<subject hex>", the referrers tag */
	/** fs-verity digests (64 hex): the subject manifest's bytes, the
	 * config's, the canonical image's. */
	char manifest_verity[CFS_DIGEST_HEX_SIZE + 1];
	char config_verity[CFS_DIGEST_HEX_SIZE + 1];
	char merged[CFS_DIGEST_HEX_SIZE + 1];
	bool sig_written; /**< the layers hold signatures */
} cfs_spec_artifact_result;

#define CFS_SPEC_ARTIFACT_RESULT_VERSION 1
#define CFS_SPEC_ARTIFACT_RESULT_INIT                                          \
	{                                                                      \
		.version = CFS_SPEC_ARTIFACT_RESULT_VERSION                    \
	}

/**
 * Write into the OCI layout @output_layout (created if missing; it may
 * be the source layout) the sealing spec's metadata artifact of @source
 * (oci: or oci-archive:, an image with a /usr: the canonical tree): an
 * image manifest with artifactType CFS_SPEC_ARTIFACT_TYPE, the empty
 * config, and three layers of media type CFS_SPEC_SIGNATURE_MEDIA_TYPE
 * in the spec's order, annotated CFS_SPEC_MANIFEST, CFS_SPEC_CONFIG and
 * CFS_SPEC_MERGED with the digests; each holds the DER signature of its
 * digest when @opts has a signing key, else nothing. Its subject is the
 * image's manifest. It joins the referrers index under the tag
 * "sha256-<subject hex>" (other artifact types there stay).
 * Deterministic for the same image and key.
 */
CFS_EXPORT int cfs_spec_artifact(const char *source, const char *output_layout,
				 const cfs_artifact_options *opts,
				 cfs_spec_artifact_result *res);

#ifdef __cplusplus
}
#endif

#endif
