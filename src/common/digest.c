/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
#include "common/digest.h"

#include <errno.h>
#include <openssl/evp.h>
#include <string.h>
#include <unistd.h>

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

int cfs_sha256_fd(int fd, uint64_t *size, uint8_t raw[CFS_DIGEST_SIZE])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t buf[64 * 1024];
	uint64_t total = 0;
	int r = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 ? 0 : -EIO;

	while (r == 0) {
		ssize_t n = pread(fd, buf, sizeof(buf), (off_t)total);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = -errno;
		else if (n == 0)
			break;
		else if (EVP_DigestUpdate(md, buf, (size_t)n) != 1)
			r = -EIO;
		else
			total += (uint64_t)n;
	}
	if (r == 0 && EVP_DigestFinal_ex(md, raw, NULL) != 1)
		r = -EIO;
	EVP_MD_CTX_free(md);
	if (r == 0 && size)
		*size = total;
	return r;
}
