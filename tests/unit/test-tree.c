/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* The tree model: links, lookups, order, xattrs, nlink accounting, the
 * cycle check and the depth limit of walks. */
#include <errno.h>
#include <sys/stat.h>
#include <time.h>

#include <cfs/image.h>

#include "image/tree-internal.h"
#include "test.h"

/* Levels of the chain that linking must build in linear time: with a walk
 * over the ancestors per link it takes 5e9 steps (over 30 s). */
#define CHAIN_LEVELS 100000
/* What the chain may take: 0.07 s here, 0.26 s under ASan. */
#define CHAIN_SECONDS 5.0

static cfs_inode *mk(uint32_t mode)
{
	cfs_inode *i = NULL;
	CHECK_OK(cfs_inode_new(&i, mode));
	return i;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A directory can never end up inside itself, whether it is empty or
 * holds a subtree (the reader and dir: link subtrees bottom up). */
static void test_cycles(void)
{
	cfs_inode *top = mk(S_IFDIR | 0755);
	cfs_inode *mid = mk(S_IFDIR | 0755);
	cfs_inode *low = mk(S_IFDIR | 0755);
	cfs_inode *other = mk(S_IFDIR | 0755);

	CHECK_ERR(cfs_dir_link(top, "self", top), ELOOP);
	CHECK_OK(cfs_dir_link(top, "mid", mid));
	CHECK_OK(cfs_dir_link(mid, "low", low));
	CHECK_ERR(cfs_dir_link(mid, "top", top), ELOOP);
	CHECK_ERR(cfs_dir_link(low, "top", top), ELOOP);
	CHECK(strstr(cfs_error_message(), "directory inside itself") != NULL);
	/* a subtree goes under a directory outside it */
	CHECK_OK(cfs_dir_link(other, "top", top));
	CHECK(cfs_dir_parent(top) == other);
	CHECK(cfs_tree_lookup(other, "/top/mid/low") == low);
	cfs_inode_unref(low);
	cfs_inode_unref(mid);
	cfs_inode_unref(top);
	cfs_inode_unref(other);
}

/* New empty directories linked one below the other, as a source makes
 * them on its way down a path: linear in the depth. */
static void test_linear_chain(void)
{
	cfs_inode **chain = calloc(CHAIN_LEVELS + 1, sizeof(*chain));
	double start = now(), secs;

	if (!chain)
		abort();
	chain[0] = mk(S_IFDIR | 0755);
	for (size_t i = 1; i <= CHAIN_LEVELS; i++) {
		chain[i] = mk(S_IFDIR | 0755);
		CHECK_OK(cfs_dir_link(chain[i - 1], "d", chain[i]));
		cfs_inode_unref(chain[i]); /* its parent holds it */
	}
	secs = now() - start;
	printf("%d levels linked in %.3f s\n", CHAIN_LEVELS, secs);
	CHECK(secs < CHAIN_SECONDS);
	CHECK(cfs_dir_parent(chain[CHAIN_LEVELS]) == chain[CHAIN_LEVELS - 1]);
	/* bottom up: freeing the root at once would recurse once a level */
	for (size_t i = CHAIN_LEVELS; i > 0; i--)
		CHECK_OK(cfs_dir_unlink(chain[i - 1], "d"));
	cfs_inode_unref(chain[0]);
	free(chain);
}

static int count_visit(void *ctx, cfs_inode *dir, const char *name,
		       cfs_inode *child)
{
	(void)dir;
	(void)name;
	(void)child;
	(*(size_t *)ctx)++;
	return 0;
}

static cfs_inode *add(cfs_inode *dir, const char *name, uint32_t mode)
{
	cfs_inode *i = mk(mode);

	CHECK_OK(cfs_dir_link(dir, name, i));
	cfs_inode_unref(i); /* the directory holds it */
	return i;
}

/* cfs_tree_walk, which the image writer uses, takes entries down to level
 * CFS_TREE_DEPTH_MAX (the root is level 0) and refuses one more. */
static void test_walk_depth(void)
{
	cfs_inode *root = mk(S_IFDIR | 0755), *d = root;
	size_t visited = 0;

	/* directories at levels 1 to the limit - 1, a file at the limit */
	for (int level = 1; level < CFS_TREE_DEPTH_MAX; level++)
		d = add(d, "a", S_IFDIR | 0755);
	add(d, "f", S_IFREG | 0644);
	CHECK_OK(cfs_tree_walk(root, count_visit, &visited));
	CHECK(visited == CFS_TREE_DEPTH_MAX);

	/* a directory at the limit, holding a file one level below it */
	d = add(d, "last", S_IFDIR | 0755);
	add(d, "over", S_IFREG | 0644);
	visited = 0;
	cfs_error_clear();
	CHECK_ERR(cfs_tree_walk(root, count_visit, &visited), ELOOP);
	CHECK(visited == CFS_TREE_DEPTH_MAX + 1); /* all but "over" */
	CHECK(strstr(cfs_error_message(), "image tree: /a/a/a/") != NULL);
	CHECK(strstr(cfs_error_message(), "...: deeper than 2048 levels") !=
	      NULL);
	cfs_inode_unref(root);
}

int main(int argc, char **argv)
{
	cfs_inode *root = mk(S_IFDIR | 0755);
	cfs_inode *sub = mk(S_IFDIR | 0700);
	cfs_inode *file = mk(S_IFREG | 0644);
	cfs_inode *tmp = NULL;
	const char *name;
	cfs_inode *child;
	const void *val;
	size_t len;

	CHECK_ERR(cfs_inode_new(&tmp, 0170000 | 0644), EINVAL);

	/* Entries come back in strcmp order whatever the insertion order. */
	CHECK_OK(cfs_dir_link(root, "zeta", file));
	CHECK_OK(cfs_dir_link(root, "alpha", sub));
	CHECK_OK(cfs_dir_link(root, "\xff-high", file));
	CHECK_OK(cfs_dir_link(sub, "hard", file));
	CHECK(cfs_dir_count(root) == 3);
	CHECK_OK(cfs_dir_entry_at(root, 0, &name, &child));
	CHECK(strcmp(name, "alpha") == 0 && child == sub);
	CHECK_OK(cfs_dir_entry_at(root, 1, &name, &child));
	CHECK(strcmp(name, "zeta") == 0);
	CHECK_OK(cfs_dir_entry_at(root, 2, &name, &child));
	CHECK(strcmp(name, "\xff-high") == 0);

	/* nlink: entries for files, 2 + subdirs for directories */
	CHECK(cfs_inode_nlink(file) == 3);
	CHECK(cfs_inode_nlink(root) == 3);
	CHECK(cfs_inode_nlink(sub) == 2);

	/* Bad links */
	CHECK_ERR(cfs_dir_link(root, "zeta", file), EEXIST);
	CHECK_ERR(cfs_dir_link(root, "a/b", file), EINVAL);
	CHECK_ERR(cfs_dir_link(root, "..", file), EINVAL);
	CHECK_ERR(cfs_dir_link(root, "", file), EINVAL);
	CHECK_ERR(cfs_dir_link(root, "again", sub), EMLINK);
	CHECK_ERR(cfs_dir_link(file, "x", sub), ENOTDIR);
	{
		char longname[300];
		memset(longname, 'n', 256);
		longname[256] = 0;
		CHECK_ERR(cfs_dir_link(root, longname, file), ENAMETOOLONG);
		longname[255] = 0;
		CHECK_OK(cfs_dir_link(root, longname, file));
		CHECK_OK(cfs_dir_unlink(root, longname));
	}
	CHECK_ERR(cfs_dir_link(sub, "loop", root), ELOOP);

	CHECK(cfs_tree_lookup(root, "/alpha/hard") == file);
	CHECK(cfs_tree_lookup(root, "alpha//hard/") == file);
	CHECK(cfs_tree_lookup(root, "/") == root);
	CHECK(cfs_tree_lookup(root, "/nope") == NULL);

	/* Unlink keeps order and counts right */
	CHECK_OK(cfs_dir_unlink(root, "zeta"));
	CHECK(cfs_inode_nlink(file) == 2);
	CHECK_ERR(cfs_dir_unlink(root, "zeta"), ENOENT);
	CHECK_OK(cfs_dir_entry_at(root, 1, &name, &child));
	CHECK(strcmp(name, "\xff-high") == 0);

	/* Many entries in reverse order come back sorted */
	for (int i = 4999; i >= 0; i--) {
		char n[16];
		snprintf(n, sizeof(n), "f%05d", i);
		cfs_inode *f = mk(S_IFREG | 0600);
		CHECK_OK(cfs_dir_link(sub, n, f));
		cfs_inode_unref(f);
	}
	{
		const char *prev = "";
		bool ordered = true;
		for (size_t i = 0; i < cfs_dir_count(sub); i++) {
			cfs_dir_entry_at(sub, i, &name, &child);
			if (strcmp(prev, name) >= 0)
				ordered = false;
			prev = name;
		}
		CHECK(ordered);
		CHECK(cfs_dir_count(sub) == 5001);
	}

	/* xattrs: sorted, replaced, binary and empty values, limits */
	CHECK_OK(cfs_inode_set_xattr(file, "user.b", "2", 1));
	CHECK_OK(cfs_inode_set_xattr(file, "security.capability", "\0\1\2", 3));
	CHECK_OK(cfs_inode_set_xattr(file, "user.a", "", 0));
	CHECK_OK(cfs_inode_set_xattr(file, "user.b", "22", 2));
	CHECK(cfs_inode_xattr_count(file) == 3);
	CHECK_OK(cfs_inode_xattr_at(file, 0, &name, &val, &len));
	CHECK(strcmp(name, "security.capability") == 0 && len == 3);
	CHECK_OK(cfs_inode_xattr_at(file, 2, &name, &val, &len));
	CHECK(strcmp(name, "user.b") == 0 && len == 2 &&
	      memcmp(val, "22", 2) == 0);
	val = cfs_inode_xattr(file, "user.a", &len);
	CHECK(val != NULL && len == 0);
	CHECK_OK(cfs_inode_remove_xattr(file, "user.a"));
	CHECK_ERR(cfs_inode_remove_xattr(file, "user.a"), ENODATA);
	CHECK_ERR(cfs_inode_set_xattr(file, "", "x", 1), EINVAL);
	{
		static char big[70000];
		CHECK_ERR(cfs_inode_set_xattr(file, "user.big", big, 65536),
			  ERANGE);
		CHECK_OK(cfs_inode_set_xattr(file, "user.big", big, 60000));
		CHECK_ERR(cfs_inode_set_xattr(file, "user.big2", big, 6000),
			  ERANGE);
	}

	/* content / object */
	{
		uint8_t d[32];
		memset(d, 0xab, sizeof(d));
		CHECK_OK(cfs_inode_set_object(file, d));
		CHECK(cfs_inode_digest(file) != NULL);
		char want[67] = "ab/";
		for (int i = 0; i < 31; i++)
			strcat(want, "ab");
		CHECK(strcmp(cfs_inode_payload(file), want) == 0);
		CHECK_OK(cfs_inode_set_content(file, "hello", 5));
		CHECK(cfs_inode_digest(file) == NULL);
		CHECK(cfs_inode_size(file) == 5);
		CHECK_ERR(cfs_inode_set_content(sub, "x", 1), EINVAL);
	}

	cfs_inode_unref(file);
	cfs_inode_unref(sub);
	cfs_inode_unref(root);

	TEST_RUN(argc, argv, test_cycles);
	TEST_RUN(argc, argv, test_linear_chain);
	TEST_RUN(argc, argv, test_walk_depth);
	return test_done();
}
