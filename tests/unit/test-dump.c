/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* composefs-dump(5): exact lines, a byte-identical round trip, and input
 * that must be refused with a message naming the line. */
#include <errno.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cfs/image.h>

#include "image/tree-internal.h"
#include "test.h"

static cfs_inode *mk(uint32_t mode)
{
	cfs_inode *i = NULL;
	CHECK_OK(cfs_inode_new(&i, mode));
	return i;
}

/* Link a new inode of @mode as @name in @dir; borrowed result. */
static cfs_inode *add(cfs_inode *dir, const char *name, uint32_t mode)
{
	cfs_inode *i = mk(mode);
	CHECK_OK(cfs_dir_link(dir, name, i));
	cfs_inode_unref(i);
	return i;
}

static const uint8_t digest[CFS_DIGEST_SIZE] = {
	0x35, 0xd0, 0x2f, 0x81, 0x32, 0x51, 0x22, 0xd7, 0x7e, 0xc1, 0xd1,
	0x1b, 0xab, 0xa6, 0x55, 0xbc, 0x9b, 0xf8, 0xa8, 0x91, 0xab, 0x26,
	0x11, 0x9a, 0x41, 0xc5, 0x0f, 0xa0, 0x3d, 0xdf, 0xb4, 0x08,
};
#define DIGEST_HEX                                                             \
	"35d02f81325122d77ec1d11baba655bc9bf8a891ab26119a41c50fa03ddfb408"

/* A tree with every file type and every awkward byte. */
static cfs_inode *build_tree(void)
{
	cfs_inode *root = mk(S_IFDIR | 0755);
	cfs_inode *dir, *zdir, *i, *ext;
	char longname[CFS_NAME_MAX + 1];
	static const uint8_t bin[] = { 0x00, 0x01, 0xff, '=', ' ', '\\' };

	CHECK_OK(cfs_inode_set_mtime(root, 1695372970, 944925700));
	CHECK_OK(cfs_inode_set_xattr(root, "security.selinux",
				     "unconfined_u:object_r:unlabeled_t:s0",
				     37));
	cfs_inode_set_owner(root, 1000, 1000);

	dir = add(root, "a dir", S_IFDIR | 0750);
	CHECK_OK(cfs_inode_set_mtime(dir, 1, 1));
	i = add(dir, "file\nnl", S_IFREG | 0644);
	CHECK_OK(cfs_inode_set_content(i, "hello\n", 6));

	/* External content, named three times in three directories. */
	ext = add(root, "ext", S_IFREG | 0600);
	CHECK_OK(cfs_inode_set_size(ext, 1234));
	CHECK_OK(cfs_inode_set_object(ext, digest));
	CHECK_OK(cfs_inode_set_mtime(ext, -5, 7));
	CHECK_OK(cfs_inode_set_xattr(ext, "user.z", "1", 1));
	CHECK_OK(cfs_inode_set_xattr(ext, "trusted.a", "2", 1));
	cfs_inode_set_owner(ext, 1000, 100);
	CHECK_OK(cfs_dir_link(dir, "hard", ext));
	zdir = add(root, "zdir", S_IFDIR | 0755);
	CHECK_OK(cfs_dir_link(zdir, "h2", ext));

	i = add(root, "lnk", S_IFLNK | 0777);
	CHECK_OK(cfs_inode_set_target(i, "target with space/-"));
	i = add(root, "dashlink", S_IFLNK | 0777);
	CHECK_OK(cfs_inode_set_target(i, "-"));
	i = add(root, "chr", S_IFCHR | 0644);
	CHECK_OK(cfs_inode_set_rdev(i, makedev(1, 3)));
	i = add(root, "blk", S_IFBLK | 0660);
	CHECK_OK(cfs_inode_set_rdev(i, makedev(8, 300)));
	add(root, "whiteout", S_IFCHR);
	add(root, "fifo", S_IFIFO | 0644);
	add(root, "sock", S_IFSOCK | 0755);
	add(root, "back\\slash\ttab\rcr", S_IFREG | 04755);
	add(root, "empty", S_IFREG | 0644);

	i = add(root, "eq=name", S_IFREG | 0644);
	CHECK_OK(cfs_inode_set_xattr(i, "user.bin", bin, sizeof(bin)));
	CHECK_OK(cfs_inode_set_xattr(i, "user.empty", "", 0));
	CHECK_OK(cfs_inode_set_xattr(i, "user.k=ey", "v=w", 3));

	i = add(root, "\xff\xfe\x7f", S_IFREG | 0644);
	CHECK_OK(cfs_inode_set_content(i, "\x00\x80", 2));

	memset(longname, 'n', CFS_NAME_MAX);
	longname[CFS_NAME_MAX] = '\0';
	add(root, longname, S_IFREG | 0644);

	i = add(root, "dash", S_IFREG | 0644);
	CHECK_OK(cfs_inode_set_content(i, "-", 1));
	i = add(root, "dashpayload", S_IFREG | 0644);
	CHECK_OK(cfs_inode_set_size(i, 7));
	CHECK_OK(cfs_inode_set_payload(i, "-"));
	return root;
}

static char *dump(cfs_inode *root, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	CHECK(f != NULL);
	if (!f)
		return NULL;
	CHECK_OK(cfs_dump_write(root, f));
	fclose(f);
	return buf;
}

static FILE *input(const char *text, size_t len)
{
	FILE *f = tmpfile();

	if (!f)
		abort();
	if (len && fwrite(text, 1, len, f) != len)
		abort();
	rewind(f);
	return f;
}

static int parse(cfs_inode **root, const char *text, size_t len)
{
	FILE *f = input(text, len);
	int r;

	*root = NULL;
	cfs_error_clear();
	r = cfs_dump_read(root, f);
	fclose(f);
	return r;
}

/* The whole line of @path in @text must be @want (without newline). */
static void check_line(const char *text, const char *want)
{
	size_t wl = strlen(want);
	const char *p = text;

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t ll = nl ? (size_t)(nl - p) : strlen(p);

		if (ll == wl && memcmp(p, want, wl) == 0) {
			CHECK(1);
			return;
		}
		p += ll + (nl ? 1 : 0);
	}
	fprintf(stderr, "line not found: %s\n", want);
	CHECK(!"expected line");
}

static void test_write(void)
{
	cfs_inode *root = build_tree();
	cfs_inode *back = NULL, *ext;
	size_t len = 0, len2 = 0, len3 = 0;
	char *text = dump(root, &len), *again, *text2;

	if (!text)
		return;
	check_line(
		text,
		"/ 0 40755 4 1000 1000 0 1695372970.944925700 - - - "
		"security.selinux=unconfined_u:object_r:unlabeled_t:s0\\x00");
	check_line(text, "/a\\x20dir 0 40750 2 0 0 0 1.1 - - -");
	check_line(text,
		   "/a\\x20dir/file\\nnl 6 100644 1 0 0 0 0.0 - hello\\n -");
	/* The first name met in the walk is the plain line. */
	check_line(
		text,
		"/a\\x20dir/hard 1234 100600 3 1000 100 0 -5.7 "
		"35/d02f81325122d77ec1d11baba655bc9bf8a891ab26119a41c50fa03ddfb408 - " DIGEST_HEX
		" trusted.a=2 user.z=1");
	check_line(
		text,
		"/ext 1234 @100600 3 1000 100 0 -5.7 /a\\x20dir/hard - " DIGEST_HEX
		" trusted.a=2 user.z=1");
	check_line(
		text,
		"/zdir/h2 1234 @100600 3 1000 100 0 -5.7 /a\\x20dir/hard - " DIGEST_HEX
		" trusted.a=2 user.z=1");
	check_line(
		text,
		"/lnk 19 120777 1 0 0 0 0.0 target\\x20with\\x20space/- - -");
	check_line(text, "/dashlink 1 120777 1 0 0 0 0.0 \\x2d - -");
	check_line(text, "/chr 0 20644 1 0 0 259 0.0 - - -");
	check_line(text, "/blk 0 60660 1 0 0 1050668 0.0 - - -");
	check_line(text, "/whiteout 0 20000 1 0 0 0 0.0 - - -");
	check_line(text, "/fifo 0 10644 1 0 0 0 0.0 - - -");
	check_line(text, "/sock 0 140755 1 0 0 0 0.0 - - -");
	check_line(text,
		   "/back\\\\slash\\ttab\\rcr 0 104755 1 0 0 0 0.0 - - -");
	check_line(
		text,
		"/eq=name 0 100644 1 0 0 0 0.0 - - - "
		"user.bin=\\x00\\x01\\xff\\x3d\\x20\\\\ user.empty= user.k\\x3dey=v\\x3dw");
	check_line(text,
		   "/\\xff\\xfe\\x7f 2 100644 1 0 0 0 0.0 - \\x00\\x80 -");
	check_line(text, "/dash 1 100644 1 0 0 0 0.0 - \\x2d -");
	check_line(text, "/dashpayload 7 100644 1 0 0 0 0.0 \\x2d - -");
	check_line(text, "/empty 0 100644 1 0 0 0 0.0 - - -");

	/* Entries in strcmp order, preorder: the order of first bytes. */
	CHECK(strncmp(text, "/ ", 2) == 0);
	CHECK(strstr(text, "\n/a\\x20dir ") <
	      strstr(text, "\n/a\\x20dir/file"));
	CHECK(strstr(text, "\n/zdir/h2 ") < strstr(text, "\n/\\xff"));

	/* The scratch fields are given back: a second dump is the same. */
	CHECK(cfs_tree_lookup(root, "/ext")->walk_data == NULL);
	again = dump(root, &len2);
	CHECK(again && len2 == len && memcmp(again, text, len) == 0);
	free(again);

	/* Round trip: parse, write again, byte for byte. */
	CHECK_OK(parse(&back, text, len));
	if (back) {
		text2 = dump(back, &len3);
		CHECK(text2 && len3 == len && memcmp(text2, text, len) == 0);
		if (text2 && (len3 != len || memcmp(text2, text, len) != 0))
			fprintf(stderr, "--- first\n%s--- second\n%s", text,
				text2);
		free(text2);
		ext = cfs_tree_lookup(back, "/ext");
		CHECK(ext && ext == cfs_tree_lookup(back, "/a dir/hard") &&
		      ext == cfs_tree_lookup(back, "/zdir/h2"));
		CHECK(ext && cfs_inode_nlink(ext) == 3);
		CHECK(ext && ext->walk_data == NULL);
	}
	cfs_inode_unref(back);
	free(text);
	cfs_inode_unref(root);
}

#define ROOT "/ 0 40755 2 0 0 0 0.0 - - -\n"
/* Beyond the 1 MiB line limit of the reader. */
#define CFS_DUMP_TEST_BIG (1024 * 1024 + 4096)
#define REG(path) path " 0 100644 1 0 0 0 0.0 - - -\n"

/* @text must be refused with -EINVAL, a message naming line @line and
 * containing @want. */
static void check_fail_len(const char *text, size_t len, int line,
			   const char *want)
{
	cfs_inode *root = NULL;
	char prefix[64];
	int r = parse(&root, text, len);
	const char *msg = cfs_error_message();

	snprintf(prefix, sizeof(prefix), "dump line %d: ", line);
	test_checks++;
	if (r != -EINVAL || strncmp(msg, prefix, strlen(prefix)) != 0 ||
	    !strstr(msg, want)) {
		test_failures++;
		fprintf(stderr,
			"input %.60s...: got %d \"%s\", want \"%s...%s\"\n",
			text, r, msg, prefix, want);
	}
	CHECK(root == NULL);
	cfs_inode_unref(root);
}

static void check_fail(const char *text, int line, const char *want)
{
	check_fail_len(text, strlen(text), line, want);
}

static void test_fail(void)
{
	char *big;

	check_fail("", 1, "root directory / is missing");
	check_fail("\n\n", 3, "root directory / is missing");
	check_fail(REG("/a"), 1, "first entry must be the root");
	check_fail(REG("/"), 1, "not a directory");
	check_fail("/ 0 @40755 2 0 0 0 0.0 /x - -\n", 1, "hardlink");
	check_fail(ROOT REG("/a/b"), 2, "parent directory /a missing for /a/b");
	check_fail(ROOT REG("/a") REG("/a/b"), 3, "not a directory");
	check_fail(ROOT REG("/a") REG("/a"), 3, "duplicate path /a");
	check_fail(ROOT ROOT, 2, "duplicate path /");
	check_fail(ROOT REG("/a\\q"), 2, "unknown escape \\q");
	check_fail(ROOT REG("/a\\x4"), 2, "\\x not followed");
	check_fail(ROOT REG("/a\\xg0"), 2, "\\x not followed");
	check_fail(ROOT REG("/a\\"), 2, "backslash");
	check_fail(ROOT REG("/a\\x00b"), 2, "NUL");
	check_fail_len(ROOT "/a\0 0 100644 1 0 0 0 0.0 - - -\n",
		       sizeof(ROOT "/a\0 0 100644 1 0 0 0 0.0 - - -\n") - 1, 2,
		       "NUL byte at column 3");
	check_fail(ROOT "/a 0 100648 1 0 0 0 0.0 - - -\n", 2, "MODE");
	check_fail(ROOT "/a 0 -100644 1 0 0 0 0.0 - - -\n", 2, "MODE");
	check_fail(ROOT "/a 0 170644 1 0 0 0 0.0 - - -\n", 2, "mode");
	check_fail(ROOT "/a 0 @ 1 0 0 0 0.0 /b - -\n", 2, "MODE");
	check_fail(ROOT "/a 0 100644 1 0 0 0 0.0 - -\n", 2, "10 fields");
	check_fail(ROOT "/a x 100644 1 0 0 0 0.0 - - -\n", 2, "SIZE");
	check_fail(ROOT "/a 0 100644 1 4294967296 0 0 0.0 - - -\n", 2,
		   "UID: number '4294967296' out of range");
	check_fail(ROOT "/a 0 100644 1 0 0 0 0 - - -\n", 2, "SEC.NSEC");
	check_fail(ROOT "/a 0 100644 1 0 0 0 0.1000000000 - - -\n", 2,
		   "nanoseconds 1000000000 out of range");
	check_fail(ROOT "/a 0 100644 1 0 0 0 +1.0 - - -\n", 2, "MTIME");
	check_fail(ROOT "/a 0 @100644 1 0 0 0 0.0 /nope - -\n", 2,
		   "hardlink target /nope missing");
	check_fail(ROOT "/a 0 @100644 1 0 0 0 0.0 - - -\n", 2,
		   "hardlink without a target");
	check_fail(ROOT "/d 0 40755 2 0 0 0 0.0 - - -\n"
			"/a 0 @100644 1 0 0 0 0.0 /d - -\n",
		   3, "hardlink target /d is a directory");
	check_fail(ROOT "/a 0 @100644 1 0 0 0 0.0 / - -\n", 2,
		   "hardlink target / is a directory");
	check_fail(ROOT "/d 0 @40755 1 0 0 0 0.0 /f - -\n" REG("/f"), 2,
		   "a directory cannot be a hardlink");
	check_fail(ROOT REG("/f") "/h1 0 @100644 1 0 0 0 0.0 /f - -\n"
				  "/h2 0 @100644 1 0 0 0 0.0 /h1 - -\n",
		   4, "hardlink target /h1 is itself a hardlink");
	check_fail(ROOT "/h2 0 @100644 1 0 0 0 0.0 /h1 - -\n" REG(
			   "/f") "/h1 0 @100644 1 0 0 0 0.0 /f - -\n",
		   2, "hardlink target /h1 is itself a hardlink");
	check_fail(ROOT "/h 0 @100644 1 0 0 0 0.0 /h - -\n", 2,
		   "itself a hardlink");
	check_fail(ROOT "/h 0 @100644 1 0 0 0 0.0 h - -\n", 2,
		   "hardlink target h is not an absolute path");
	check_fail(ROOT "/a 5 100644 1 0 0 0 0.0 - abc -\n", 2,
		   "CONTENT of 3 bytes but SIZE 5");
	check_fail(ROOT "/a 0 100644 1 0 0 0 0.0 - - 12zz\n", 2, "DIGEST");
	check_fail(ROOT "/a 0 100644 1 0 0 0 0.0 - - " DIGEST_HEX "0\n", 2,
		   "DIGEST");
	check_fail(
		ROOT
		"/a 0 100644 1 0 0 0 0.0 - - "
		"35d02f81325122d77ec1d11baba655bc9bf8a891ab26119a41c50fa03ddfb40g\n",
		2, "DIGEST");
	check_fail(ROOT REG("/./a"), 2, "'.' or '..'");
	check_fail(ROOT REG("/.."), 2, "'.' or '..'");
	check_fail(ROOT "/d 0 40755 2 0 0 0 0.0 - - -\n" REG("/d/../a"), 3,
		   "'.' or '..'");
	check_fail(ROOT REG("//a"), 2, "empty component");
	check_fail(ROOT "/d 0 40755 2 0 0 0 0.0 - - -\n" REG("/d/"), 3,
		   "empty component");
	check_fail(ROOT REG("a"), 2, "not an absolute path");
	check_fail(ROOT REG(""), 2, "empty PATH");
	check_fail(ROOT "/l 3 120777 1 0 0 0 0.0 - - -\n", 2,
		   "symlink without a target");
	check_fail(ROOT "/a 0 100644 1 0 0 0 0.0 - - - user.a\n", 2,
		   "without '='");
	check_fail(ROOT "/a 0 100644 1 0 0 0 0.0 - - - user.a=1  user.b=2\n", 2,
		   "without '='");
	check_fail(ROOT "/a 0 100644 1 0 0 0 0.0 - - - =1\n", 2, "xattr");
	check_fail(ROOT "/a 0 100644 1 0 0 0 0.0 - - - user.\\x00=1\n", 2,
		   "NUL");

	/* A name of 256 bytes. */
	big = malloc(CFS_DUMP_TEST_BIG);
	if (!big)
		abort();
	strcpy(big, ROOT "/");
	memset(big + strlen(big), 'n', CFS_NAME_MAX + 1);
	strcpy(big + strlen(ROOT) + 1 + CFS_NAME_MAX + 1,
	       " 0 100644 1 0 0 0 0.0 - - -\n");
	check_fail(big, 2, "component of 256 bytes");

	/* A line over the limit fails on that line, whatever follows. */
	strcpy(big, ROOT "/");
	memset(big + strlen(big), 'n', CFS_DUMP_TEST_BIG - strlen(ROOT) - 2);
	big[CFS_DUMP_TEST_BIG - 1] = '\0';
	check_fail(big, 2, "line longer than");
	free(big);
}

/* What the parser accepts beyond what the writer writes. */
static void test_accept(void)
{
	static const char text[] =
		"\n/ 4096 40700 99 1 2 0 -1.999999999 - - - user.x=1 \n"
		"\n"
		/* Hardlink before its target; other fields ignored. */
		"/h 999 @100644 7 5 5 5 junk /d/f whatever xyz\n"
		"/d 4096 40755 1 0 0 0 0.0 - - -\n"
		"/d/f 3 100600 1 0 0 0 0.0 - a\\x3d\\x2D -\n"
		/* Upper-case hex, an escaped escape, a trailing space. */
		"/d/g 0 100644 1 0 0 0 0.0 p\\x41th - 35D02F81325122D77EC1D11BABA655BC9BF8A891AB26119A41C50FA03DDFB408 \n"
		/* RDEV of a non-device and payload of a dir are ignored. */
		"/d/e 0 40755 1 0 0 7 0.0 x - -\n"
		"/d/c 0 20644 1 0 0 65535 0.0 - - -\n"
		/* Last line without a newline; '=' in a value. */
		"/d/s 0 120777 1 0 0 0 0.0 /t - - user.a=b=c";
	cfs_inode *root = NULL, *f, *g, *s;
	const void *v;
	size_t len;

	CHECK_OK(parse(&root, text, sizeof(text) - 1));
	if (!root)
		return;
	CHECK(cfs_inode_mode(root) == (S_IFDIR | 0700));
	CHECK(cfs_inode_uid(root) == 1 && cfs_inode_gid(root) == 2);
	{
		int64_t sec;
		uint32_t nsec;

		cfs_inode_mtime(root, &sec, &nsec);
		CHECK(sec == -1 && nsec == 999999999);
	}
	f = cfs_tree_lookup(root, "/d/f");
	CHECK(f && f == cfs_tree_lookup(root, "/h"));
	CHECK(f && cfs_inode_nlink(f) == 2 && cfs_inode_size(f) == 3 &&
	      memcmp(cfs_inode_content(f), "a=-", 3) == 0 &&
	      cfs_inode_uid(f) == 0);
	g = cfs_tree_lookup(root, "/d/g");
	CHECK(g && cfs_inode_digest(g) &&
	      memcmp(cfs_inode_digest(g), digest, CFS_DIGEST_SIZE) == 0);
	CHECK(g && cfs_inode_payload(g) &&
	      strcmp(cfs_inode_payload(g), "pAth") == 0);
	CHECK(cfs_tree_lookup(root, "/d/e") &&
	      cfs_tree_lookup(root, "/d/e")->walk_data == NULL);
	CHECK(cfs_tree_lookup(root, "/d/c") &&
	      cfs_inode_rdev(cfs_tree_lookup(root, "/d/c")) == 65535);
	s = cfs_tree_lookup(root, "/d/s");
	CHECK(s && strcmp(cfs_inode_target(s), "/t") == 0);
	v = s ? cfs_inode_xattr(s, "user.a", &len) : NULL;
	CHECK(v && len == 3 && memcmp(v, "b=c", 3) == 0);
	v = cfs_inode_xattr(root, "user.x", &len);
	CHECK(v && len == 1);
	cfs_inode_unref(root);

	/* INT64_MIN seconds round-trip. */
	{
		static const char min[] =
			"/ 0 40755 2 0 0 0 -9223372036854775808.0 - - -\n";

		CHECK_OK(parse(&root, min, sizeof(min) - 1));
	}
	if (root) {
		int64_t sec;
		uint32_t nsec;

		cfs_inode_mtime(root, &sec, &nsec);
		CHECK(sec == INT64_MIN);
		cfs_inode_unref(root);
	}
}

/*
 * Paths down to level CFS_TREE_DEPTH_MAX ("/a" is level 1) are read and
 * written; a line one level deeper is refused, and so is a dump of a tree
 * that deep.
 */
static void test_depth(void)
{
	/* as the writer writes them: a directory with one subdirectory, an
	 * empty one, a file */
	static const char dir[] = " 0 40755 3 0 0 0 0.0 - - -\n";
	static const char empty[] = " 0 40755 2 0 0 0 0.0 - - -\n";
	static const char reg[] = " 0 100644 1 0 0 0 0.0 - - -\n";
	size_t cap = (2u * CFS_TREE_DEPTH_MAX + 64) * CFS_TREE_DEPTH_MAX;
	size_t len = 0;
	char *text = malloc(cap), *path = malloc(2 * CFS_TREE_DEPTH_MAX + 8);
	cfs_inode *root = NULL, *d;
	size_t plen = 0, out_len;
	char *out;
	FILE *f;

	if (!text || !path)
		abort();
	len += (size_t)snprintf(text, cap, "/%s", dir);
	/* directories at levels 1 to the limit - 1 */
	for (int level = 1; level < CFS_TREE_DEPTH_MAX; level++) {
		plen += (size_t)sprintf(path + plen, "/a");
		len += (size_t)snprintf(text + len, cap - len, "%s%s", path,
					dir);
	}
	/* at the limit: a file and an empty directory */
	len += (size_t)snprintf(text + len, cap - len, "%s/d%s%s/f%s", path,
				empty, path, reg);
	CHECK_OK(parse(&root, text, len));
	strcat(path, "/d");
	d = root ? cfs_tree_lookup(root, path) : NULL;
	CHECK(d != NULL && cfs_dir_count(d) == 0);
	if (d) {
		out = dump(root, &out_len);
		CHECK(out != NULL && out_len == len &&
		      memcmp(out, text, len) == 0);
		free(out);
		/* one level more, through the API: the writer refuses */
		add(d, "x", S_IFREG | 0644);
		f = tmpfile();
		if (!f)
			abort();
		cfs_error_clear();
		CHECK_ERR(cfs_dump_write(root, f), ELOOP);
		fclose(f);
		CHECK(strncmp(cfs_error_message(), "dump: /a/a/a/", 13) == 0);
		CHECK(strstr(cfs_error_message(),
			     "...: deeper than 2048 levels") != NULL);
	}
	cfs_inode_unref(root);

	/* a line one level deeper: refused, naming its line */
	len += (size_t)snprintf(text + len, cap - len, "%s/x%s", path, reg);
	check_fail_len(text, len, CFS_TREE_DEPTH_MAX + 3,
		       "...: deeper than 2048 levels");
	free(path);
	free(text);
}

/* A write error comes back as -errno. */
static void test_write_error(void)
{
	cfs_inode *root = build_tree();
	FILE *full = fopen("/dev/full", "w");

	if (full) {
		CHECK_ERR(cfs_dump_write(root, full), ENOSPC);
		CHECK(strstr(cfs_error_message(), "dump") != NULL);
		fclose(full);
	}
	/* The walk state is reset on failure too. */
	CHECK(cfs_tree_lookup(root, "/ext")->walk_data == NULL);
	cfs_inode_unref(root);
}

int main(int argc, char **argv)
{
	TEST_RUN(argc, argv, test_write);
	TEST_RUN(argc, argv, test_write_error);
	TEST_RUN(argc, argv, test_fail);
	TEST_RUN(argc, argv, test_accept);
	TEST_RUN(argc, argv, test_depth);
	return test_done();
}
