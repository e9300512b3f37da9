/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * fuzz-record-read: the input is a layer record (src/convert/records.h)
 * without its trailing SHA-256, which the harness appends so that the
 * fuzzer reaches the entries; the diff_id checked is the one the input
 * names. Every entry the reader accepts is applied to a tree as an
 * import would, and a tree that results goes through
 * fuzz_image_roundtrip().
 */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include <cfs/image.h>

#include "convert/apply.h"
#include "convert/records.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfs_applier a;
	struct cfs_record rec;
	struct cfs_layer_entry e;
	struct cfs_record_content content;
	uint8_t diff_id[32] = { 0 }, *buf;
	unsigned int n;
	cfs_inode *file;
	int r;

	buf = malloc(size + 32);
	if (!buf)
		fuzz_fail("out of memory");
	memcpy(buf, data, size);
	if (EVP_Digest(buf, size, buf + size, &n, EVP_sha256(), NULL) != 1)
		fuzz_fail("sha256");
	if (size >= 40)
		memcpy(diff_id, data + 8, 32);
	cfs_error_clear();
	r = cfs_record_load(&rec, buf, size + 32, diff_id, "fuzz");
	fuzz_check_error(r, "cfs_record_load");
	if (r < 0)
		return 0;
	if (cfs_applier_init(&a) < 0)
		fuzz_fail("cfs_applier_init");
	cfs_applier_begin_layer(&a, 1, "fuzz");
	while ((r = cfs_record_next(&rec, &e, &content, "fuzz")) > 0) {
		r = cfs_applier_apply(&a, &e, &file);
		if (r == 0 && file)
			r = cfs_record_content_set(file, &content);
		if (r < 0)
			break;
	}
	fuzz_check_error(r, "cfs_record_next / apply");
	if (r == 0)
		fuzz_image_roundtrip(a.root, NULL);
	cfs_applier_fini(&a);
	cfs_record_close(&rec);
	return 0;
}
