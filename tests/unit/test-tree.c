/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* The tree model: links, lookups, order, xattrs, nlink accounting. */
#include <errno.h>
#include <sys/stat.h>

#include <cfs/image.h>

#include "test.h"

static cfs_inode *mk(uint32_t mode)
{
	cfs_inode *i = NULL;
	CHECK_OK(cfs_inode_new(&i, mode));
	return i;
}

int main(void)
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
	return test_done();
}
