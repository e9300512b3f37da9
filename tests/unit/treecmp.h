/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Field-by-field comparison of two trees, for the unit tests: names,
 * types, modes, owners, mtimes, sizes, link counts, symlink targets,
 * content, digests, payloads, device numbers, xattrs and hardlink groups
 * (two names share an inode in one tree exactly when they do in the
 * other). Differences are printed to stderr with their path, the first
 * TREECMP_REPORT_MAX of them.
 */
#ifndef CFS_TEST_TREECMP_H
#define CFS_TEST_TREECMP_H

#include <inttypes.h>
#include <search.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cfs/image.h>

#define TREECMP_REPORT_MAX 20

struct treecmp_pair {
	const cfs_inode *key, *other;
};

struct treecmp {
	void *a_to_b; /* tsearch trees of struct treecmp_pair */
	void *b_to_a;
	int diffs;
};

static inline int treecmp_pair_cmp(const void *x, const void *y)
{
	const cfs_inode *p = ((const struct treecmp_pair *)x)->key;
	const cfs_inode *q = ((const struct treecmp_pair *)y)->key;

	return p < q ? -1 : p > q;
}

__attribute__((format(printf, 3, 4))) static inline void
treecmp_diff(struct treecmp *tc, const char *path, const char *fmt, ...)
{
	va_list ap;

	if (tc->diffs++ >= TREECMP_REPORT_MAX)
		return;
	fprintf(stderr, "treecmp: %s: ", *path ? path : "/");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Record that @key pairs with @other; false if it paired with another
 * inode before. *seen tells whether the pair was known already. */
static inline bool treecmp_pair(void **tree, const cfs_inode *key,
				const cfs_inode *other, bool *seen)
{
	struct treecmp_pair *p = malloc(sizeof(*p)), **slot;

	if (!p)
		abort();
	p->key = key;
	p->other = other;
	slot = tsearch(p, tree, treecmp_pair_cmp);
	if (!slot)
		abort();
	*seen = *slot != p;
	if (*seen) {
		bool same = (*slot)->other == other;
		free(p);
		return same;
	}
	return true;
}

static inline bool treecmp_str_eq(const char *x, const char *y)
{
	if (!x || !y)
		return x == y;
	return strcmp(x, y) == 0;
}

static inline void treecmp_attrs(struct treecmp *tc, const char *path,
				 const cfs_inode *a, const cfs_inode *b)
{
	int64_t as, bs;
	uint32_t ans, bns;
	const void *ac = cfs_inode_content(a), *bc = cfs_inode_content(b);
	const uint8_t *ad = cfs_inode_digest(a), *bd = cfs_inode_digest(b);

	if (cfs_inode_mode(a) != cfs_inode_mode(b))
		treecmp_diff(tc, path, "mode 0%o != 0%o", cfs_inode_mode(a),
			     cfs_inode_mode(b));
	if (cfs_inode_uid(a) != cfs_inode_uid(b) ||
	    cfs_inode_gid(a) != cfs_inode_gid(b))
		treecmp_diff(tc, path, "owner %u:%u != %u:%u", cfs_inode_uid(a),
			     cfs_inode_gid(a), cfs_inode_uid(b),
			     cfs_inode_gid(b));
	cfs_inode_mtime(a, &as, &ans);
	cfs_inode_mtime(b, &bs, &bns);
	if (as != bs || ans != bns)
		treecmp_diff(tc, path,
			     "mtime %" PRId64 ".%09u != %" PRId64 ".%09u", as,
			     ans, bs, bns);
	if (cfs_inode_size(a) != cfs_inode_size(b))
		treecmp_diff(tc, path, "size %" PRIu64 " != %" PRIu64,
			     cfs_inode_size(a), cfs_inode_size(b));
	if (cfs_inode_nlink(a) != cfs_inode_nlink(b))
		treecmp_diff(tc, path, "nlink %u != %u", cfs_inode_nlink(a),
			     cfs_inode_nlink(b));
	if (cfs_inode_rdev(a) != cfs_inode_rdev(b))
		treecmp_diff(tc, path, "rdev 0x%" PRIx64 " != 0x%" PRIx64,
			     cfs_inode_rdev(a), cfs_inode_rdev(b));
	if (!treecmp_str_eq(cfs_inode_target(a), cfs_inode_target(b)))
		treecmp_diff(tc, path, "symlink targets differ");
	if (!treecmp_str_eq(cfs_inode_payload(a), cfs_inode_payload(b)))
		treecmp_diff(tc, path, "payload %s != %s",
			     cfs_inode_payload(a) ? cfs_inode_payload(a) : "-",
			     cfs_inode_payload(b) ? cfs_inode_payload(b) : "-");
	if (!ac != !bc || (ac && cfs_inode_size(a) == cfs_inode_size(b) &&
			   memcmp(ac, bc, cfs_inode_size(a)) != 0))
		treecmp_diff(tc, path, "content differs");
	if (!ad != !bd || (ad && memcmp(ad, bd, CFS_DIGEST_SIZE) != 0))
		treecmp_diff(tc, path, "digest differs");
}

static inline void treecmp_xattrs(struct treecmp *tc, const char *path,
				  const cfs_inode *a, const cfs_inode *b)
{
	size_t n = cfs_inode_xattr_count(a);

	if (n != cfs_inode_xattr_count(b)) {
		treecmp_diff(tc, path, "%zu xattrs != %zu", n,
			     cfs_inode_xattr_count(b));
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const char *an, *bn;
		const void *av, *bv;
		size_t al, bl;

		cfs_inode_xattr_at(a, i, &an, &av, &al);
		cfs_inode_xattr_at(b, i, &bn, &bv, &bl);
		if (strcmp(an, bn) != 0)
			treecmp_diff(tc, path, "xattr %s != %s", an, bn);
		else if (al != bl || memcmp(av, bv, al) != 0)
			treecmp_diff(tc, path, "xattr %s: values differ", an);
	}
}

static inline void treecmp_node(struct treecmp *tc, const char *path,
				cfs_inode *a, cfs_inode *b)
{
	bool seen_a, seen_b;
	size_t n;

	if (!treecmp_pair(&tc->a_to_b, a, b, &seen_a) ||
	    !treecmp_pair(&tc->b_to_a, b, a, &seen_b) || seen_a != seen_b) {
		treecmp_diff(tc, path, "hardlink groups differ");
		return;
	}
	if (seen_a)
		return; /* another name of an inode compared already */
	treecmp_attrs(tc, path, a, b);
	treecmp_xattrs(tc, path, a, b);

	n = cfs_dir_count(a);
	if (n != cfs_dir_count(b)) {
		treecmp_diff(tc, path, "%zu entries != %zu", n,
			     cfs_dir_count(b));
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const char *an, *bn;
		cfs_inode *ac, *bc;
		char *sub;

		cfs_dir_entry_at(a, i, &an, &ac);
		cfs_dir_entry_at(b, i, &bn, &bc);
		if (strcmp(an, bn) != 0) {
			treecmp_diff(tc, path, "entry %zu: %s != %s", i, an,
				     bn);
			return;
		}
		if (asprintf(&sub, "%s/%s", path, an) < 0)
			abort();
		treecmp_node(tc, sub, ac, bc);
		free(sub);
	}
}

/* Compare two trees; returns the number of differences (0: equal). */
static inline int treecmp(cfs_inode *a, cfs_inode *b)
{
	struct treecmp tc = { 0 };

	treecmp_node(&tc, "", a, b);
	tdestroy(tc.a_to_b, free);
	tdestroy(tc.b_to_a, free);
	if (tc.diffs > TREECMP_REPORT_MAX)
		fprintf(stderr, "treecmp: %d more differences\n",
			tc.diffs - TREECMP_REPORT_MAX);
	return tc.diffs;
}

#endif
