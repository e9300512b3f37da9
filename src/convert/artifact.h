/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* Finding a composefs artifact (include/cfs/seal.h) in an OCI layout. */
#ifndef CFS_ARTIFACT_H
#define CFS_ARTIFACT_H

#include <stddef.h>
#include <stdint.h>

#include <cfs/common.h>

struct cfs_found_artifact {
	char manifest_digest[80]; /* the artifact's */
	uint8_t *image; /* the composefs image, checked against its
			 * descriptor's size and SHA-256 */
	size_t image_len;
	char merged[CFS_DIGEST_HEX_SIZE + 1]; /* its annotation, "" if none */
};

/*
 * For @source ("oci:PATH[:REF]") whose manifest is @subject
 * ("sha256:<hex>"): the composefs artifact the layout keeps under the
 * referrers tag "sha256-<hex>" whose subject is that manifest. 0 with
 * @out filled, 1 if there is none (or @source is not a layout
 * directory), -errno with a message if one is there but damaged.
 */
int cfs_find_artifact(const char *source, const char *subject,
		      struct cfs_found_artifact *out);
void cfs_found_artifact_clear(struct cfs_found_artifact *a);

#endif
