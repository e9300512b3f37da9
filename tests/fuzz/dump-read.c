/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * fuzz-dump-read: the input is composefs-dump(5) text for
 * cfs_dump_read(). A tree it accepts goes through fuzz_image_roundtrip():
 * written as an image, read back, written again to the same bytes, and
 * dumped and parsed again to the same image.
 */
#include <stdio.h>
#include <stdlib.h>

#include <cfs/image.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cfs_inode *root = NULL;
	FILE *f;
	int r;

	/* fmemopen refuses an empty buffer on older glibc. */
	if (size == 0)
		return 0;
	f = fmemopen((void *)data, size, "r");
	if (!f)
		fuzz_fail("fmemopen failed");
	cfs_error_clear();
	r = cfs_dump_read(&root, f);
	fclose(f);
	fuzz_check_error(r, "cfs_dump_read");
	if (r < 0) {
		if (root)
			fuzz_fail("cfs_dump_read failed but set a root");
		return 0;
	}
	fuzz_image_roundtrip(root, NULL);
	cfs_inode_unref(root);
	return 0;
}
