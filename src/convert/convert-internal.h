/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
#ifndef CFS_CONVERT_INTERNAL_H
#define CFS_CONVERT_INTERNAL_H

#include <cfs/convert.h>

#include "convert/objects.h"

struct cfs_blob_fetch;
struct cfs_records;

/* Build a tree from the directory @path (dir: source). */
int cfs_dirsource_load(cfs_inode **root_out, const char *path,
		       struct cfs_objects *objs, cfs_convert_stats *stats);

/* Build a tree from an OCI source (oci:, oci-archive:, docker-archive:),
 * with layer records (records.h) when @records is not NULL, and the
 * blobs a layout lacks from @fetch (oci.h) when it is not NULL. */
int cfs_oci_load(cfs_inode **root_out, const char *source,
		 const cfs_convert_options *opts, struct cfs_objects *objs,
		 struct cfs_records *records,
		 const struct cfs_blob_fetch *fetch, cfs_convert_stats *stats);

/* cfs_convert_tree() into an object directory the caller opened (and
 * keeps: it syncs and frees @objs). @objs, @records and @fetch may be
 * NULL; records and fetch are used by OCI sources only. */
int cfs_convert_tree_objs(cfs_inode **root_out, const char *source,
			  const cfs_convert_options *opts,
			  struct cfs_objects *objs, struct cfs_records *records,
			  const struct cfs_blob_fetch *fetch,
			  cfs_convert_stats *stats);

/* Count every inode of a finished tree (hardlinks once). */
int cfs_stats_count_tree(cfs_inode *root, cfs_convert_stats *stats);

/* Count an inode in the per-type statistics. */
void cfs_stats_count_inode(cfs_convert_stats *stats, const cfs_inode *inode);

#endif
