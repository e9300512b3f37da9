/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* Layer application: OCI whiteouts, replacement, hardlinks, symlinked
 * parents, and the errors for paths that must not be applied. */
#include <errno.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "convert/apply.h"
#include "image/tree-internal.h"
#include "test.h"

static struct cfs_applier A;

static int put(const char *path, uint32_t mode, const char *link, bool hard)
{
	struct cfs_layer_entry e = { 0 };
	cfs_inode *file;

	e.path = path;
	e.mode = mode;
	e.link = link;
	e.hardlink = hard;
	e.mtime_sec = 1000 + A.layer;
	return cfs_applier_apply(&A, &e, &file);
}

#define FILE_(p) put(p, S_IFREG | 0644, NULL, false)
#define DIR_(p) put(p, S_IFDIR | 0750, NULL, false)
#define LINK(p, t) put(p, S_IFLNK | 0777, t, false)
#define HARD(p, t) put(p, S_IFREG | 0644, t, true)

static cfs_inode *at(const char *path)
{
	return cfs_tree_lookup(A.root, path);
}

static void layer(uint32_t n)
{
	cfs_applier_begin_layer(&A, n, "layer test");
}

/* "@first" then @levels times "NAME/", then "@last". */
static char *path_of(const char *first, const char *name, int levels,
		     const char *last)
{
	size_t n = strlen(name) + 1, len = strlen(first) + n * (size_t)levels;
	char *s = malloc(len + strlen(last) + 1);

	if (!s)
		abort();
	strcpy(s, first);
	for (int i = 0; i < levels; i++) {
		strcat(s, name);
		strcat(s, "/");
	}
	strcat(s, last);
	return s;
}

static void check_message(const char *want)
{
	if (!strstr(cfs_error_message(), want)) {
		fprintf(stderr, "message \"%s\" lacks \"%s\"\n",
			cfs_error_message(), want);
		CHECK(!"message");
	}
}

/*
 * No entry below CFS_TREE_DEPTH_MAX levels (the root is level 0): the
 * deepest plain path (4095 bytes of "a/a/...") is accepted, and a level
 * more, which only a path through a symlink reaches, is refused whatever
 * the entry, with levels counted where the symlinks lead.
 */
static void test_depth(void)
{
	char *path = path_of("", "a", CFS_TREE_DEPTH_MAX - 1, "f");
	char *dirs = path_of("", "b", CFS_TREE_DEPTH_MAX, "");
	char *target = path_of("", "b", CFS_TREE_DEPTH_MAX - 1, "b");
	char *deep = path_of("bs/", "b", CFS_TREE_DEPTH_MAX - 2, "x");

	CHECK_OK(cfs_applier_init(&A));
	layer(1);
	/* a file and a directory at the limit, implicit parents above */
	CHECK(strlen(path) == CFS_LAYER_PATH_MAX - 1);
	CHECK_OK(FILE_(path));
	CHECK(at(path) != NULL);
	CHECK(strlen(dirs) == CFS_LAYER_PATH_MAX);
	CHECK_OK(DIR_(dirs));
	CHECK(at(target) != NULL && cfs_dir_count(at(target)) == 0);
	/* "s" leads to the directory at the limit: nothing more below */
	CHECK_OK(LINK("s", target));
	cfs_error_clear();
	CHECK_ERR(FILE_("s/f"), ELOOP);
	check_message("layer test: s/f: deeper than 2048 levels");
	CHECK_ERR(DIR_("s/d"), ELOOP);
	CHECK_ERR(LINK("s/l", "/"), ELOOP);
	CHECK_ERR(HARD("s/h", path), ELOOP);
	CHECK_ERR(FILE_("s/.wh.x"), ELOOP);
	CHECK_ERR(FILE_("s/implicit/f"), ELOOP);
	check_message("s/implicit/f: deeper than 2048 levels");
	CHECK(cfs_dir_count(at(target)) == 0);
	/* ".." in a symlink goes one level up: "up/f" is at the limit */
	CHECK_OK(LINK("up", "s/.."));
	CHECK_OK(FILE_("up/f"));
	CHECK_ERR(FILE_("up/g/f"), ELOOP);
	/* "bs/b/.../x": a symlink one level down, then a path of 4096 bytes;
	 * the message cuts the path and keeps the reason */
	CHECK_OK(LINK("bs", "b/b"));
	CHECK(strlen(deep) == CFS_LAYER_PATH_MAX);
	cfs_error_clear();
	CHECK_ERR(FILE_(deep), ELOOP);
	check_message("layer test: bs/b/b/");
	check_message("...: deeper than 2048 levels");
	CHECK(strlen(cfs_error_message()) < 300);
	cfs_applier_fini(&A);
	free(deep);
	free(target);
	free(dirs);
	free(path);
}

int main(int argc, char **argv)
{
	int64_t sec;
	uint32_t nsec;

	CHECK_OK(cfs_applier_init(&A));
	layer(1);
	CHECK_OK(FILE_("./usr/bin/tool"));
	CHECK(at("/usr/bin/tool") != NULL);
	/* implied parents: 0755, root, mtime 0 */
	CHECK(cfs_inode_mode(at("/usr")) == (S_IFDIR | 0755));
	cfs_inode_mtime(at("/usr/bin"), &sec, &nsec);
	CHECK(sec == 0 && nsec == 0);
	CHECK_OK(DIR_("usr/"));
	CHECK(cfs_inode_mode(at("/usr")) == (S_IFDIR | 0750));
	CHECK(at("/usr/bin/tool") != NULL); /* dir over dir keeps children */
	CHECK_OK(FILE_("/etc/a"));
	CHECK_OK(FILE_("etc/b"));
	CHECK_OK(FILE_("etc//c"));
	CHECK_OK(DIR_("opq"));
	CHECK_OK(FILE_("opq/lower1"));
	CHECK_OK(DIR_("opq/lowerdir"));
	CHECK_OK(FILE_("opq/lowerdir/x"));
	CHECK_OK(FILE_("f2d"));
	CHECK_OK(DIR_("d2f"));
	CHECK_OK(FILE_("d2f/child"));
	CHECK_OK(FILE_("orig"));
	CHECK_OK(HARD("hl", "orig"));
	CHECK(at("/hl") == at("/orig"));
	CHECK(cfs_inode_nlink(at("/orig")) == 2);
	CHECK_OK(LINK("etclink", "/etc"));
	CHECK_OK(LINK("up", "../../.."));
	CHECK_OK(LINK("loop1", "loop2"));
	CHECK_OK(LINK("loop2", "loop1"));
	/* root metadata from a "./" entry */
	CHECK_OK(put("./", S_IFDIR | 0700, NULL, false));
	CHECK(cfs_inode_mode(A.root) == (S_IFDIR | 0700));

	layer(2);
	/* whiteouts of lower entries */
	CHECK_OK(FILE_("etc/.wh.a"));
	CHECK(at("/etc/a") == NULL && at("/etc/.wh.a") == NULL);
	/* same-layer entries survive a whiteout, in either order */
	CHECK_OK(FILE_("etc/new"));
	CHECK_OK(FILE_("etc/.wh.new"));
	CHECK(at("/etc/new") != NULL);
	CHECK_OK(FILE_("etc/.wh.b"));
	CHECK_OK(FILE_("etc/b"));
	CHECK(at("/etc/b") != NULL);
	CHECK_OK(FILE_("etc/.wh.nonexistent"));
	/* opaque: lower children go, this layer's stay (before or after) */
	CHECK_OK(FILE_("opq/early"));
	CHECK_OK(FILE_("opq/.wh..wh..opq"));
	CHECK_OK(FILE_("opq/late"));
	CHECK(at("/opq/lower1") == NULL && at("/opq/lowerdir") == NULL);
	CHECK(at("/opq/early") != NULL && at("/opq/late") != NULL);
	CHECK(at("/opq/.wh..wh..opq") == NULL);
	/* type changes */
	CHECK_OK(DIR_("f2d"));
	CHECK(cfs_inode_type(at("/f2d")) == S_IFDIR);
	CHECK_OK(FILE_("d2f"));
	CHECK(cfs_inode_type(at("/d2f")) == S_IFREG &&
	      at("/d2f/child") == NULL);
	/* a hardlink keeps the inode when its target is replaced later */
	{
		cfs_inode *old = at("/orig");
		CHECK_OK(HARD("hl2", "orig"));
		CHECK_OK(FILE_("orig"));
		CHECK(at("/hl2") == old && at("/hl") == old);
		CHECK(at("/orig") != old);
		CHECK(cfs_inode_nlink(old) == 2);
	}
	/* symlinked parents resolve inside the tree */
	CHECK_OK(FILE_("etclink/viaLink"));
	CHECK(at("/etc/viaLink") != NULL);
	CHECK(cfs_inode_type(at("/etclink")) == S_IFLNK);
	CHECK_OK(FILE_("up/escaped"));
	CHECK(at("/escaped") != NULL); /* ".." stops at the root */

	/* errors */
	cfs_error_clear();
	CHECK_ERR(FILE_("a/../b"), EINVAL);
	CHECK(strstr(cfs_error_message(), "layer test") != NULL);
	CHECK(strstr(cfs_error_message(), "a/../b") != NULL);
	CHECK_ERR(FILE_("../escape"), EINVAL);
	CHECK_ERR(FILE_("etc/.wh.."), EINVAL);
	CHECK_ERR(FILE_("etc/.wh..."), EINVAL);
	CHECK_ERR(FILE_(".wh."), EINVAL);
	CHECK_ERR(HARD("x", "missing"), ENOENT);
	CHECK(strstr(cfs_error_message(), "missing") != NULL);
	CHECK_ERR(HARD("x", "etc"), EPERM);
	CHECK_ERR(FILE_("d2f/under-a-file"), ENOTDIR);
	CHECK_ERR(FILE_("loop1/x"), ELOOP);
	CHECK_ERR(put("./", S_IFREG | 0644, NULL, false), EINVAL);
	{
		char name[300], path[5000];
		memset(name, 'n', 256);
		name[256] = 0;
		CHECK_ERR(FILE_(name), ENAMETOOLONG);
		name[255] = 0;
		CHECK_OK(FILE_(name));
		memset(path, 'a', sizeof(path));
		for (int i = 1; i < 4999; i += 2)
			path[i] = '/';
		path[4999] = 0;
		CHECK_ERR(FILE_(path), ENAMETOOLONG);
	}
	/* aufs bookkeeping names are skipped */
	CHECK_OK(FILE_(".wh..wh.plnk/123.456"));
	CHECK(at("/.wh..wh.plnk") == NULL);

	/* an opaque root hides every lower entry */
	layer(3);
	CHECK_OK(FILE_("kept"));
	CHECK_OK(FILE_(".wh..wh..opq"));
	CHECK(at("/kept") != NULL && at("/etc") == NULL && at("/usr") == NULL);
	CHECK(cfs_dir_count(A.root) == 1);

	cfs_applier_fini(&A);

	TEST_RUN(argc, argv, test_depth);
	return test_done();
}
