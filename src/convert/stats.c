/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* What a conversion counts (cfs_convert_stats), for every source. */
#include <errno.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/util.h"
#include "convert/convert-internal.h"
#include "image/tree-internal.h"

void cfs_convert_stats_clear(cfs_convert_stats *stats)
{
	if (!stats)
		return;
	free(stats->layers);
	cfs_result_zero(stats, sizeof(*stats));
}

void cfs_stats_count_inode(cfs_convert_stats *stats, const cfs_inode *inode)
{
	switch (cfs_inode_type(inode)) {
	case S_IFDIR:
		stats->dirs++;
		break;
	case S_IFREG:
		stats->files++;
		stats->file_bytes += cfs_inode_size(inode);
		if (cfs_inode_content(inode))
			stats->inline_files++;
		break;
	case S_IFLNK:
		stats->symlinks++;
		break;
	case S_IFCHR:
		stats->chardevs++;
		break;
	case S_IFBLK:
		stats->blockdevs++;
		break;
	case S_IFIFO:
		stats->fifos++;
		break;
	case S_IFSOCK:
		stats->sockets++;
		break;
	}
}

static int ptr_cmp(const void *a, const void *b)
{
	return a < b ? -1 : a > b;
}

struct count_ctx {
	cfs_convert_stats *stats;
	void *seen; /* tsearch set of hardlinked inodes already counted */
};

static int count_visit(void *ctx, cfs_inode *dir, const char *name,
		       cfs_inode *child)
{
	struct count_ctx *c = ctx;

	(void)dir;
	(void)name;
	if (cfs_inode_type(child) != S_IFDIR && cfs_inode_nlink(child) > 1) {
		if (tfind(child, &c->seen, ptr_cmp)) {
			c->stats->hardlinks++;
			return 0;
		}
		if (!tsearch(child, &c->seen, ptr_cmp))
			return -ENOMEM;
	}
	cfs_stats_count_inode(c->stats, child);
	return 0;
}

static void noop_free(void *p)
{
	(void)p;
}

/* Count what a finished tree holds, hardlinked inodes once (for sources
 * that do not count as they go). */
int cfs_stats_count_tree(cfs_inode *root, cfs_convert_stats *stats)
{
	struct count_ctx c = { stats, NULL };
	int r;

	cfs_stats_count_inode(stats, root);
	r = cfs_tree_walk(root, count_visit, &c);
	tdestroy(c.seen, noop_free);
	return r;
}
