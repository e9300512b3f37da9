/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Partial pulls of zstd:chunked layers (partial.c; docs/distribution.md,
 * "Partial pulls"): the files a layer's TOC names that the store lacks
 * are fetched by HTTP range requests, and the conversion reads the
 * layer's tar rebuilt from its tar-split, the store's objects and those
 * files, checking the diff_id as for any layer.
 */
#ifndef CFS_STORE_PARTIAL_H
#define CFS_STORE_PARTIAL_H

#include <stdbool.h>
#include <stdint.h>

#include <cfs/store.h>

struct cfs_oci_image;
struct cfs_partial;

/*
 * Look at the layers of @img (opened from its manifest and config, pulled
 * from @source): each that is zstd:chunked with a tar-split (or, with
 * @trust_toc, without one: its tar is then written from the TOC, and
 * the layer marked unverified: no diff_id check, no record), that the
 * store has no layer record of, and whose missing files make at most
 * half of its blob, has its TOC and tar-split fetched and checked, and
 * its cfs_oci_layer switched to the rebuilt tar (compression none, no
 * blob digest, ->partial, ->size the tar's). *@out is NULL when no layer
 * is (not a docker:// source, no libcurl, a store with no content by
 * SHA-256 yet). -errno, with one line naming the image and layer, when
 * a TOC or tar-split is wrong or cannot be fetched.
 */
int cfs_partial_prepare(struct cfs_partial **out, cfs_store *s,
			const char *source, bool insecure, bool trust_toc,
			struct cfs_oci_image *img);

/* For a cfs_blob_fetch: when blob @digest is a layer prepare() switched,
 * start rebuilding its tar into *@fd and return 1; else 0. */
int cfs_partial_open(struct cfs_partial *p, const char *digest, int *fd);
/* When @fd came from cfs_partial_open(): close it, wait for its
 * producer, set *@r to 0 or its error (with its message), return 1.
 * Else 0. @complete as for cfs_blob_fetch.finish. */
int cfs_partial_finish(struct cfs_partial *p, int fd, bool complete, int *r);
/* Is blob @digest pulled partially? *@fetched (if not NULL): its bytes
 * received so far (TOC, tar-split and files); *@toc_only (if not NULL):
 * built from its TOC alone (unverified). */
bool cfs_partial_layer(struct cfs_partial *p, const char *digest,
		       uint64_t *fetched, bool *toc_only);
/* What was fetched of blob @digest (its TOC and tar-split) before it
 * turned out to be worth fetching whole: 0 for any other blob. */
uint64_t cfs_partial_spent(struct cfs_partial *p, const char *digest);
void cfs_partial_free(struct cfs_partial *p);

#endif
