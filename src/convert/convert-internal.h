/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
#ifndef CFS_CONVERT_INTERNAL_H
#define CFS_CONVERT_INTERNAL_H

#include <cfs/convert.h>

#include "convert/objects.h"

struct cfs_blob_fetch;
struct cfs_oci_image;
struct cfs_records;

/* Build a tree from the directory @path (dir: source). */
int cfs_dirsource_load(cfs_inode **root_out, const char *path,
		       struct cfs_objects *objs, cfs_convert_stats *stats);

/* Build a tree from the OCI image @img (cfs_oci_open(), which the caller
 * keeps: the one open of the source serves the whole import or seal),
 * with layer records (records.h) when @records is not NULL, and the
 * blobs its source lacks from @fetch (oci.h) when it is not NULL. */
int cfs_oci_load(cfs_inode **root_out, struct cfs_oci_image *img,
		 const cfs_convert_options *opts, struct cfs_objects *objs,
		 struct cfs_records *records,
		 const struct cfs_blob_fetch *fetch, cfs_convert_stats *stats);

/* What @img says of itself before any layer is read, into the empty
 * @stats: its digests, and each layer's digest, media type and sealing
 * annotations. cfs_oci_load() starts with it. */
int cfs_oci_stats(const struct cfs_oci_image *img, cfs_convert_stats *stats);

/* cfs_convert_tree() into an object directory the caller opened (and
 * keeps: it syncs and frees @objs, which may be NULL). */
int cfs_convert_tree_objs(cfs_inode **root_out, const char *source,
			  const cfs_convert_options *opts,
			  struct cfs_objects *objs, cfs_convert_stats *stats);

/* The same for an OCI image the caller opened (cfs_oci_load()). */
int cfs_convert_oci_objs(cfs_inode **root_out, struct cfs_oci_image *img,
			 const cfs_convert_options *opts,
			 struct cfs_objects *objs, struct cfs_records *records,
			 const struct cfs_blob_fetch *fetch,
			 cfs_convert_stats *stats);

/* Count every inode of a finished tree (hardlinks once). */
int cfs_stats_count_tree(cfs_inode *root, cfs_convert_stats *stats);

/* Count an inode in the per-type statistics. */
void cfs_stats_count_inode(cfs_convert_stats *stats, const cfs_inode *inode);

#endif
