/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
#include <errno.h>
#include <string.h>

#include <cfs/image.h>

#include "common/util.h"

static const char hexchars[] = "0123456789abcdef";

void cfs_digest_to_hex(const uint8_t digest[CFS_DIGEST_SIZE],
		       char hex[CFS_DIGEST_HEX_SIZE + 1])
{
	for (size_t i = 0; i < CFS_DIGEST_SIZE; i++) {
		hex[2 * i] = hexchars[digest[i] >> 4];
		hex[2 * i + 1] = hexchars[digest[i] & 0xf];
	}
	hex[CFS_DIGEST_HEX_SIZE] = '\0';
}

int cfs_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int cfs_digest_from_hex(uint8_t digest[CFS_DIGEST_SIZE], const char *hex)
{
	if (strlen(hex) != CFS_DIGEST_HEX_SIZE)
		return -EINVAL;
	for (size_t i = 0; i < CFS_DIGEST_SIZE; i++) {
		int hi = cfs_hex_value(hex[2 * i]),
		    lo = cfs_hex_value(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		digest[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

void cfs_digest_to_object_path(const uint8_t digest[CFS_DIGEST_SIZE],
			       char path[CFS_DIGEST_HEX_SIZE + 2])
{
	char hex[CFS_DIGEST_HEX_SIZE + 1];

	cfs_digest_to_hex(digest, hex);
	path[0] = hex[0];
	path[1] = hex[1];
	path[2] = '/';
	memcpy(path + 3, hex + 2, CFS_DIGEST_HEX_SIZE - 2 + 1);
}
