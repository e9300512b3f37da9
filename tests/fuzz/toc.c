/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * fuzz-toc: the input is a zstd:chunked TOC (src/convert/chunked.h),
 * optionally followed by a NUL and a tar-split. Every entry of a TOC the
 * parser accepts is applied to a tree as a pull from the TOC alone
 * would (content named by its digest), the tree goes through
 * fuzz_image_roundtrip(), and the tar-split is replayed against the TOC.
 */
#include <stdlib.h>
#include <string.h>

#include <cfs/image.h>

#include "convert/apply.h"
#include "convert/chunked.h"
#include "convert/records.h"
#include "fuzz.h"

static int file_content(void *opaque, const struct cfs_toc_entry *e)
{
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfs_applier a;
	struct cfs_toc toc;
	char *text = malloc(size + 2);
	const char *tarsplit;
	int r;

	if (!text)
		fuzz_fail("out of memory");
	memcpy(text, data, size);
	text[size] = text[size + 1] = '\0';
	tarsplit = text + strlen(text) + 1;
	cfs_error_clear();
	r = cfs_toc_parse(&toc, text, 1ull << 40, "fuzz");
	fuzz_check_error(r, "cfs_toc_parse");
	if (r < 0) {
		free(text);
		return 0;
	}
	if (cfs_applier_init(&a) < 0)
		fuzz_fail("cfs_applier_init");
	cfs_applier_begin_layer(&a, 1, "fuzz");
	for (size_t i = 0; r == 0 && i < toc.n; i++) {
		const struct cfs_toc_entry *te = &toc.entries[i];
		struct cfs_layer_entry e;
		cfs_inode *file = NULL;

		cfs_toc_entry_to_layer(te, &e);
		r = cfs_applier_apply(&a, &e, &file);
		if (r == 0 && file && te->size) {
			struct cfs_record_content c = {
				.size = te->size,
				.digest = te->sha256,
			};

			r = cfs_record_content_set(file, &c);
		}
	}
	fuzz_check_error(r, "apply");
	if (r == 0)
		fuzz_image_roundtrip(a.root, NULL);
	cfs_applier_fini(&a);
	r = cfs_tarsplit_rebuild(tarsplit, &toc, fuzz_discard_write,
				 file_content, NULL, "fuzz");
	fuzz_check_error(r, "cfs_tarsplit_rebuild");
	cfs_toc_free(&toc);
	free(text);
	return 0;
}
