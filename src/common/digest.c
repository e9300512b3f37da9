/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
#include "common/digest.h"

#include <errno.h>
#include <openssl/evp.h>
#include <string.h>

#include <cfs/image.h>

#include "common/error.h"

void cfs_sha256_str(const uint8_t d[CFS_DIGEST_SIZE],
		    char out[CFS_SHA256_STR_SIZE])
{
	memcpy(out, "sha256:", 7);
	cfs_digest_to_hex(d, out + 7);
}

int cfs_sha256(const void *data, size_t len, uint8_t raw[CFS_DIGEST_SIZE],
	       char str[CFS_SHA256_STR_SIZE])
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1 ||
	    n != CFS_DIGEST_SIZE)
		return cfs_error(EIO, "SHA-256 failed");
	if (raw)
		memcpy(raw, md, CFS_DIGEST_SIZE);
	if (str)
		cfs_sha256_str(md, str);
	return 0;
}
