/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* Finding a composefs artifact (include/cfs/seal.h) in an OCI layout. */
#ifndef CFS_ARTIFACT_H
#define CFS_ARTIFACT_H

#include <stddef.h>
#include <stdint.h>

#include <cfs/common.h>

/* The roles of the sealing spec's artifact, in its order. */
enum cfs_spec_role {
	CFS_SPEC_ROLE_MANIFEST,
	CFS_SPEC_ROLE_CONFIG,
	CFS_SPEC_ROLE_MERGED,
	CFS_SPEC_ROLES
};

struct cfs_found_artifact {
	/* Ours (CFS_ARTIFACT_TYPE): image is NULL if there is none. */
	char manifest_digest[80]; /* the artifact's */
	uint8_t *image; /* the composefs image, checked against its
			 * descriptor's size and SHA-256 */
	size_t image_len;
	char merged[CFS_DIGEST_HEX_SIZE + 1]; /* its annotation, "" if none */
	/* The sealing spec's (CFS_SPEC_ARTIFACT_TYPE), if spec_found: per
	 * role the digest (64 hex, "" if the artifact has no such entry)
	 * and the signature (DER, NULL when its layer is empty). */
	bool spec_found;
	char spec_manifest_digest[80];
	char spec_hex[CFS_SPEC_ROLES][CFS_DIGEST_HEX_SIZE + 1];
	uint8_t *spec_sig[CFS_SPEC_ROLES];
	size_t spec_sig_len[CFS_SPEC_ROLES];
};

/*
 * For @source ("oci:PATH[:REF]") whose manifest is @subject
 * ("sha256:<hex>"): the composefs artifacts (ours, the sealing spec's)
 * the layout keeps under the referrers tag "sha256-<hex>" whose subject
 * is that manifest. 0 with @out filled (either may be missing), 1 if
 * there is neither (or @source is not a layout directory), -errno with
 * a message if one is there but damaged.
 */
int cfs_find_artifact(const char *source, const char *subject,
		      struct cfs_found_artifact *out);
void cfs_found_artifact_clear(struct cfs_found_artifact *a);

#endif
