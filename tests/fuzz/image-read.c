/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * fuzz-image-read: the input is a composefs image for cfs_image_read().
 * An image the reader accepts must survive the round trip of
 * fuzz_image_roundtrip(): written again, read back, written once more to
 * the same bytes, and its dump text read back to the same image.
 */
#include <stdlib.h>

#include <cfs/image.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cfs_inode *root = NULL;
	unsigned int format = 0;
	int r;

	cfs_error_clear();
	r = cfs_image_read(&root, data, size, &format);
	fuzz_check_error(r, "cfs_image_read");
	if (r < 0) {
		if (root)
			fuzz_fail("cfs_image_read failed but set a root");
		return 0;
	}
	if (format > CFS_FORMAT_MAX)
		fuzz_fail("cfs_image_read: format %u", format);
	fuzz_image_roundtrip(root, NULL);
	cfs_inode_unref(root);
	return 0;
}
