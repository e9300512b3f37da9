/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * SHA-256 digests as the OCI specs write them: "sha256:" and 64
 * lower-case hex digits. One formatter, one size, for every caller.
 */
#ifndef CFS_DIGEST_H
#define CFS_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include <cfs/common.h>

/* "sha256:<64 hex>" and its NUL. The API's structs give such strings
 * CFS_DIGEST_STR_MAX bytes (include/cfs/common.h), more than this. */
#define CFS_SHA256_STR_SIZE (7 + CFS_DIGEST_HEX_SIZE + 1)

/* @d as "sha256:<hex>" in @out. */
void cfs_sha256_str(const uint8_t d[CFS_DIGEST_SIZE],
		    char out[CFS_SHA256_STR_SIZE]);

/* The SHA-256 of the @len bytes at @data, into @raw and, as
 * "sha256:<hex>", into @str (either may be NULL). 0, or -EIO with a
 * message if OpenSSL fails. */
int cfs_sha256(const void *data, size_t len, uint8_t raw[CFS_DIGEST_SIZE],
	       char str[CFS_SHA256_STR_SIZE]);

/* The SHA-256 of what @fd holds from offset 0 to its end, and how many
 * bytes that was (@size may be NULL): 0 or -errno (no message). */
int cfs_sha256_fd(int fd, uint64_t *size, uint8_t raw[CFS_DIGEST_SIZE]);

#endif
