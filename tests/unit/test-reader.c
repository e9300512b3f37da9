/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * The image reader: a tree with every kind of file goes through the writer
 * and back, field by field; then damaged images (truncated, bit-flipped,
 * hand-crafted) must give an error with a message or a valid tree, never a
 * crash, a leak or a hang (CI runs this under ASan and UBSan).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cfs/image.h>

#include "common/util.h"
#include "image/erofs-format.h"
#include "image/tree-internal.h"
#include "test.h"
#include "treecmp.h"

#define BIG_DIR_ENTRIES 5000
/*
 * A read of the tree with the 5000-entry directory costs 20 ms and more
 * under ASan, nearly all of it in building the tree, so the 20000
 * mutations go to the same tree with a small directory (a tenth of that):
 * the same kinds of inodes, xattrs and links, fewer of them. The big image
 * gets MUTATIONS_BIG, or CFS_TEST_MUTATIONS_BIG=N if set.
 */
#define SMALL_DIR_ENTRIES 40
#define MUTATIONS 20000
#define MUTATIONS_BIG 1000

/* ---- building the tree ----------------------------------------------- */

static cfs_inode *add(cfs_inode *dir, const char *name, uint32_t mode)
{
	cfs_inode *i = NULL;

	CHECK_OK(cfs_inode_new(&i, mode));
	if (!i)
		abort();
	CHECK_OK(cfs_dir_link(dir, name, i));
	cfs_inode_unref(i); /* the directory holds it */
	return i;
}

static void set_xattr(cfs_inode *i, const char *name, const void *v, size_t len)
{
	CHECK_OK(cfs_inode_set_xattr(i, name, v, len));
}

/* splitmix64: small, fixed-seed, the same sequence everywhere */
static uint64_t rng(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t content_rng = 0x5eed;

static void add_inline(cfs_inode *dir, const char *name, size_t len)
{
	cfs_inode *f = add(dir, name, S_IFREG | 0600);
	uint8_t *data = malloc(len);

	for (size_t i = 0; i < len; i++)
		data[i] = (uint8_t)rng(&content_rng);
	CHECK_OK(cfs_inode_set_content(f, data, len));
	CHECK_OK(cfs_inode_set_mtime(f, 1700000000 + (int64_t)len,
				     (uint32_t)len));
	free(data);
}

static const char selinux[] = "system_u:object_r:usr_t:s0";

static void build_files(cfs_inode *root, cfs_inode *a)
{
	uint8_t digest[CFS_DIGEST_SIZE], bin[256];
	char target[CFS_TARGET_MAX + 1];
	cfs_inode *f;

	f = add(a, "empty", S_IFREG | 0644);
	set_xattr(f, "user.empty", "", 0);
	set_xattr(f, "security.selinux", selinux, sizeof(selinux));

	f = add(a, "hello", S_IFREG | 07755);
	CHECK_OK(cfs_inode_set_content(f, "hello", 5));
	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (uint8_t)i;
	set_xattr(f, "user.bin", bin, sizeof(bin));
	set_xattr(f, "security.selinux", selinux, sizeof(selinux));
	CHECK_OK(cfs_dir_link(root, "hard1", f));

	/* inline tails of every shape: short, more than half a block (moved
	 * to a block), exactly a block, a block and a bit, the maximum */
	add_inline(a, "inline100", 100);
	add_inline(a, "inline2049", 2049);
	add_inline(a, "inline4095", 4095);
	add_inline(a, "inline4096", 4096);
	add_inline(a, "inline4097", 4097);
	add_inline(a, "inline5000", CFS_INLINE_MAX);

	/* external content: object, payload only, digest only */
	f = add(a, "ext", S_IFREG | 0644);
	CHECK_OK(cfs_inode_set_size(f, 123456));
	memset(digest, 0xab, sizeof(digest));
	CHECK_OK(cfs_inode_set_object(f, digest));
	set_xattr(f, "security.selinux", selinux, sizeof(selinux));
	CHECK_OK(cfs_dir_link(root, "exthard", f));
	f = add(a, "ext-nodigest", S_IFREG | 0644);
	CHECK_OK(cfs_inode_set_size(f, 10000000000ull));
	CHECK_OK(cfs_inode_set_payload(f, "cd/efg"));
	f = add(a, "ext-nodigest-abs", S_IFREG | 0644);
	CHECK_OK(cfs_inode_set_size(f, 1));
	CHECK_OK(cfs_inode_set_payload(f, "/abs/path"));
	f = add(a, "ext-nopayload", S_IFREG | 0644);
	CHECK_OK(cfs_inode_set_size(f, 999));
	memset(digest, 0xcd, sizeof(digest));
	CHECK_OK(cfs_inode_set_digest(f, digest));

	/* symlinks: short, 4000 bytes inline, the longest (in a block) */
	f = add(a, "sym", S_IFLNK | 0777);
	CHECK_OK(cfs_inode_set_target(f, "foo"));
	f = add(a, "sym4000", S_IFLNK | 0777);
	memset(target, 'x', 4000);
	target[4000] = '\0';
	CHECK_OK(cfs_inode_set_target(f, target));
	CHECK_OK(cfs_dir_link(root, "symhard", f));
	f = add(a, "sym4095", S_IFLNK | 0777);
	memset(target, 'y', CFS_TARGET_MAX);
	target[CFS_TARGET_MAX] = '\0';
	CHECK_OK(cfs_inode_set_target(f, target));
	set_xattr(f, "user.big", target, 300);

	f = add(a, "chr", S_IFCHR | 0644);
	CHECK_OK(cfs_inode_set_rdev(f, makedev(1, 3)));
	f = add(a, "blk", S_IFBLK | 0600);
	CHECK_OK(cfs_inode_set_rdev(f, makedev(4095, 0xfffff)));
	add(a, "fifo", S_IFIFO | 0644);
	add(a, "sock", S_IFSOCK | 0755);

	/* whiteouts, one with xattrs and two names */
	f = add(a, "wh", S_IFCHR | 0);
	set_xattr(f, "user.keep", "k", 1);
	CHECK_OK(cfs_dir_link(root, "wh-hard", f));
	add(root, "wh-root", S_IFCHR | 0644);
	/* a name that the root's overlay whiteouts would take */
	add(root, "00", S_IFREG | 0644);
}

static void build_names(cfs_inode *root, int big_entries)
{
	static const char *const odd[] = { "\x01"
					   "ctl",
					   "\xff-high",
					   "-dash",
					   "with space",
					   "new\nline",
					   "=eq",
					   "back\\slash" };
	char name[CFS_NAME_MAX + 1];
	cfs_inode *big, *f, *d;

	memset(name, 'L', CFS_NAME_MAX);
	name[CFS_NAME_MAX] = '\0';
	f = add(root, name, S_IFREG | 0644);
	CHECK_OK(cfs_inode_set_content(f, "hi", 2));
	for (size_t i = 0; i < CFS_ARRAY_SIZE(odd); i++)
		add(root, odd[i], S_IFREG | 0644);

	big = add(root, "big", S_IFDIR | 0755);
	for (int i = 0; i < big_entries; i++) {
		/* lengths from 12 to 254 bytes, many blocks of entries */
		int len = snprintf(name, sizeof(name), "entry-%05d-", i);
		int pad = i % 7 == 0 ? 254 - len : i % 40;

		memset(name + len, 'n', (size_t)pad);
		name[len + pad] = '\0';
		add(big, name, S_IFREG | 0644);
	}
	CHECK_OK(cfs_dir_link(big, "hard2", cfs_tree_lookup(root, "a/hello")));

	/* 60 levels, one with a time before the epoch */
	d = root;
	for (int i = 0; i < 60; i++) {
		d = add(d, "d", S_IFDIR | 0755);
		CHECK_OK(cfs_inode_set_mtime(d, i == 30 ? -5 : 1700000000, 0));
	}
	f = add(d, "leaf", S_IFREG | 0644);
	CHECK_OK(cfs_inode_set_content(f, "z", 1));

	add(root, "emptydir", S_IFDIR | 0);
}

static cfs_inode *build_tree(int big_entries)
{
	cfs_inode *root = NULL, *a, *f;

	CHECK_OK(cfs_inode_new(&root, S_IFDIR | 0755));
	if (!root)
		abort();
	CHECK_OK(cfs_inode_set_mtime(root, 1700000000, 500000000));
	set_xattr(root, "security.selinux", selinux, sizeof(selinux));
	set_xattr(root, "user.root", "r", 1);

	/* extended inode: big ids; a source overlay xattr to escape */
	a = add(root, "a", S_IFDIR | 0700);
	cfs_inode_set_owner(a, 70000, 0xfffffffe);
	set_xattr(a, "security.selinux", selinux, sizeof(selinux));
	set_xattr(a, "trusted.overlay.x", "esc", 3);

	f = add(root, "opaque", S_IFDIR | 0755);
	set_xattr(f, "trusted.overlay.opaque", "y", 1);
	CHECK_OK(cfs_inode_set_mtime(f, (int64_t)1 << 40, 999999999));

	f = add(root, "acl", S_IFREG | 0644);
	set_xattr(f, "system.posix_acl_access",
		  "\x02\0\0\0\x01\0\x06\0\xff\xff\xff\xff", 12);
	set_xattr(f, "trusted.overlay.overlay.xx", "q", 1);
	set_xattr(f, "nonstd.name", "1", 1);
	cfs_inode_set_owner(f, 65535, 65536);

	build_files(root, a);
	build_names(root, big_entries);
	return root;
}

/* ---- writing into memory --------------------------------------------- */

struct membuf {
	uint8_t *data;
	size_t len, cap;
};

static int mem_write(void *opaque, const void *buf, size_t len)
{
	struct membuf *m = opaque;

	if (m->len + len > m->cap) {
		size_t cap = m->cap ? m->cap : 65536;
		uint8_t *n;

		while (cap < m->len + len)
			cap *= 2;
		n = realloc(m->data, cap);
		if (!n)
			return -ENOMEM;
		m->data = n;
		m->cap = cap;
	}
	memcpy(m->data + m->len, buf, len);
	m->len += len;
	return 0;
}

static int write_image(cfs_inode *root, unsigned int min_format,
		       unsigned int max_format, struct membuf *m)
{
	cfs_write_options opts = CFS_WRITE_OPTIONS_INIT;

	opts.min_format = min_format;
	opts.max_format = max_format;
	memset(m, 0, sizeof(*m));
	return cfs_image_write(root, &opts, mem_write, m, NULL);
}

/* ---- round trips ----------------------------------------------------- */

static void test_round_trip(cfs_inode *tree, unsigned int min_format,
			    unsigned int max_format, unsigned int want)
{
	struct membuf m;
	cfs_inode *back = NULL;
	unsigned int format = 99;

	CHECK_OK(write_image(tree, min_format, max_format, &m));
	CHECK_OK(cfs_image_read(&back, m.data, m.len, &format));
	CHECK(format == want);
	if (back) {
		CHECK(treecmp(tree, back) == 0);
		cfs_inode_unref(back);
	}
	free(m.data);
}

static void test_read_fd(cfs_inode *tree, const struct membuf *img)
{
	FILE *f = tmpfile();
	cfs_inode *back = NULL;
	unsigned int format = 99;
	int fd;

	CHECK(f != NULL);
	if (!f)
		return;
	fd = fileno(f);
	/* An empty file is an error, not a crash in mmap */
	cfs_error_clear();
	CHECK_ERR(cfs_image_read_fd(&back, fd, NULL), EINVAL);
	CHECK(cfs_error_message()[0] != '\0');
	/* Too short for a superblock */
	CHECK(fwrite(img->data, 1, 100, f) == 100 && fflush(f) == 0);
	CHECK_ERR(cfs_image_read_fd(&back, fd, NULL), EINVAL);
	CHECK(strstr(cfs_error_message(), "image offset 1024") != NULL);

	CHECK(ftruncate(fd, 0) == 0 && fseek(f, 0, SEEK_SET) == 0);
	CHECK(fwrite(img->data, 1, img->len, f) == img->len && fflush(f) == 0);
	CHECK_OK(cfs_image_read_fd(&back, fd, &format));
	CHECK(format == 1);
	if (back) {
		CHECK(treecmp(tree, back) == 0);
		cfs_inode_unref(back);
		back = NULL;
	}
	fclose(f);

	fd = open(".", O_RDONLY | O_DIRECTORY);
	CHECK_ERR(cfs_image_read_fd(&back, fd, NULL), EINVAL);
	close(fd);
}

/* ---- hand-made damage ------------------------------------------------ */

static uint32_t le32_at(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Read @img (copied to an exactly-sized buffer, so that ASan sees any
 * overread) and check that it fails with @err and a message naming an
 * offset that contains @what. */
static void expect_error(const uint8_t *img, size_t len, int err,
			 const char *what)
{
	uint8_t *copy = malloc(len ? len : 1);
	cfs_inode *root = NULL;
	int r;

	memcpy(copy, img, len);
	cfs_error_clear();
	r = cfs_image_read(&root, copy, len, NULL);
	CHECK(r == -err);
	CHECK(strncmp(cfs_error_message(), "image offset ", 13) == 0);
	if (!strstr(cfs_error_message(), what)) {
		fprintf(stderr, "message \"%s\" lacks \"%s\"\n",
			cfs_error_message(), what);
		CHECK(!"message");
	}
	if (r == 0)
		cfs_inode_unref(root);
	free(copy);
}

/* The dirent named @name in one directory block, or NULL. */
static uint8_t *search_block(uint8_t *block, size_t len, const char *name)
{
	size_t count = (size_t)(block[8] | block[9] << 8) / 12;

	for (size_t i = 0; i < count; i++) {
		size_t off =
			(size_t)(block[12 * i + 8] | block[12 * i + 9] << 8);
		size_t end = i + 1 < count ? (size_t)(block[12 * i + 20] |
						      block[12 * i + 21] << 8) :
					     off + strnlen((char *)block + off,
							   len - off);

		if (end - off == strlen(name) &&
		    memcmp(block + off, name, end - off) == 0)
			return block + 12 * i;
	}
	return NULL;
}

/* The dirent named @name in directory @nid of an intact image, or NULL. */
static uint8_t *find_dirent(uint8_t *img, size_t len, uint64_t nid,
			    const char *name)
{
	uint64_t meta = (uint64_t)le32_at(img + 1024 + 40) * EROFS_BLKSIZ;
	uint8_t *ino = img + meta + nid * EROFS_SLOTSIZE;
	unsigned int format = ino[0], icount = ino[2] | ino[3] << 8;
	unsigned int layout = (format >> EROFS_I_DATALAYOUT_BIT) & 7;
	size_t isize = format & 1 ? 64 : 32;
	uint64_t size = le32_at(ino + 8), blocks;
	uint8_t *tail, *de;

	if (format & 1)
		size |= (uint64_t)le32_at(ino + 12) << 32;
	blocks = (uint64_t)le32_at(ino + 16) * EROFS_BLKSIZ;
	tail = ino + isize + (icount ? 12 + 4 * (icount - 1) : 0);
	for (uint64_t pos = 0; pos < size; pos += EROFS_BLKSIZ) {
		size_t blen =
			size - pos < EROFS_BLKSIZ ? size - pos : EROFS_BLKSIZ;
		uint8_t *block = layout == EROFS_INODE_FLAT_INLINE &&
						 pos + EROFS_BLKSIZ > size ?
					 tail :
					 img + blocks + pos;

		if (block + blen > img + len)
			return NULL;
		de = search_block(block, blen, name);
		if (de)
			return de;
	}
	return NULL;
}

static uint64_t dirent_nid(const uint8_t *de)
{
	return le32_at(de) | (uint64_t)le32_at(de + 4) << 32;
}

static void set_dirent_nid(uint8_t *de, uint64_t nid)
{
	put_le32(de, (uint32_t)nid);
	put_le32(de + 4, (uint32_t)(nid >> 32));
}

static void test_crafted(void)
{
	cfs_inode *root = NULL, *d1, *d2, *f, *back = NULL;
	uint8_t digest[CFS_DIGEST_SIZE];
	uint16_t root_nid;
	uint8_t *de, *de2;
	struct membuf m;

	CHECK_OK(cfs_inode_new(&root, S_IFDIR | 0755));
	d1 = add(root, "d1", S_IFDIR | 0755);
	d2 = add(root, "d2", S_IFDIR | 0755);
	add(d1, "sub", S_IFDIR | 0755);
	f = add(d2, "f", S_IFREG | 0644);
	CHECK_OK(cfs_inode_set_content(f, "data", 4));
	f = add(root, "ext", S_IFREG | 0644);
	CHECK_OK(cfs_inode_set_size(f, 1 << 20));
	memset(digest, 0x11, sizeof(digest));
	CHECK_OK(cfs_inode_set_digest(f, digest));
	CHECK_OK(write_image(root, 0, 1, &m));
	cfs_inode_unref(root);
	CHECK_OK(cfs_image_read(&back, m.data, m.len, NULL));
	cfs_inode_unref(back);
	back = NULL;
	root_nid = (uint16_t)(m.data[1024 + 14] | m.data[1024 + 15] << 8);

	/* header, superblock */
	m.data[0] ^= 1;
	expect_error(m.data, m.len, EINVAL, "not a composefs image");
	m.data[0] ^= 1;
	m.data[4] = 2;
	expect_error(m.data, m.len, ENOTSUP, "header version 2");
	m.data[4] = 1;
	m.data[12] = 2;
	expect_error(m.data, m.len, ENOTSUP, "format version 2");
	m.data[12] = 0;
	m.data[1024 + 12] = 13;
	expect_error(m.data, m.len, ENOTSUP, "block size");
	m.data[1024 + 12] = 12;
	m.data[1024] ^= 1;
	expect_error(m.data, m.len, EINVAL, "superblock magic");
	m.data[1024] ^= 1;
	expect_error(m.data, 1100, EINVAL, "image offset 1024");

	/* an external file: unknown chunk format, bad metacopy header */
	de = find_dirent(m.data, m.len, root_nid, "ext");
	CHECK(de != NULL);
	if (de) {
		uint64_t meta =
			(uint64_t)le32_at(m.data + 1024 + 40) * EROFS_BLKSIZ;
		uint8_t *ino = m.data + meta + dirent_nid(de) * EROFS_SLOTSIZE;
		/* the entry of "trusted." "overlay.metacopy" */
		uint8_t *mc = memmem(ino, 256, "overlay.metacopy", 16);

		ino[16] |= 0x40; /* i_u.c.format */
		expect_error(m.data, m.len, EINVAL, "chunk format");
		ino[16] &= (uint8_t)~0x40;
		CHECK(mc != NULL);
		if (mc) {
			mc[16 + 1] ^= 1; /* the length byte of its header */
			expect_error(m.data, m.len, EINVAL, "metacopy");
			mc[16 + 1] ^= 1;
		}
	}

	/* a directory linked twice, and a loop back to the root */
	de = find_dirent(m.data, m.len, root_nid, "d2");
	de2 = find_dirent(m.data, m.len, root_nid, "d1");
	CHECK(de && de2);
	if (de && de2) {
		uint64_t d2_nid = dirent_nid(de);

		set_dirent_nid(de, dirent_nid(de2));
		expect_error(m.data, m.len, EINVAL, "met before");
		set_dirent_nid(de, d2_nid);
		de = find_dirent(m.data, m.len, d2_nid, "f");
		CHECK(de != NULL);
		if (de) {
			uint64_t f_nid = dirent_nid(de);

			set_dirent_nid(de, root_nid);
			expect_error(m.data, m.len, EINVAL, "met before");
			set_dirent_nid(de, (uint64_t)1 << 60);
			expect_error(m.data, m.len, EINVAL, "beyond the end");
			set_dirent_nid(de, f_nid);
			de[10] = EROFS_FT_DIR;
			expect_error(m.data, m.len, EINVAL, "file type");
			de[10] = EROFS_FT_REG_FILE;
		}
	}
	CHECK_OK(cfs_image_read(&back, m.data, m.len, NULL));
	cfs_inode_unref(back);
	free(m.data);
}

/*
 * Every tree the writer writes reads back: entries down to level
 * CFS_TREE_DEPTH_MAX (the root is level 0). The writer refuses one level
 * more, so the image that has it is made by pointing the dirent of a file
 * at the limit to a directory that holds a file.
 */
static void test_depth_limit(void)
{
	cfs_inode *root = NULL, *d, *back = NULL;
	uint64_t nid, q_nid, root_nid;
	char want[256] = "";
	struct membuf m;
	uint8_t *de;

	CHECK_OK(cfs_inode_new(&root, S_IFDIR | 0755));
	d = root;
	for (int level = 1; level < CFS_TREE_DEPTH_MAX; level++)
		d = add(d, "a", S_IFDIR | 0755);
	add(d, "a", S_IFDIR | 0755);
	add(d, "f", S_IFREG | 0644);
	add(add(root, "q", S_IFDIR | 0755), "g", S_IFREG | 0644);
	CHECK_OK(write_image(root, 0, 1, &m));
	CHECK_OK(cfs_image_read(&back, m.data, m.len, NULL));
	CHECK(back != NULL && treecmp(root, back) == 0);
	cfs_inode_unref(back);

	/* "f" at the limit becomes directory "q", so "g" is one below */
	root_nid = (uint64_t)(m.data[1024 + 14] | m.data[1024 + 15] << 8);
	de = find_dirent(m.data, m.len, root_nid, "q");
	CHECK(de != NULL);
	q_nid = de ? dirent_nid(de) : 0;
	nid = root_nid;
	for (int level = 1; de && level < CFS_TREE_DEPTH_MAX; level++) {
		de = find_dirent(m.data, m.len, nid, "a");
		nid = de ? dirent_nid(de) : 0;
	}
	de = de ? find_dirent(m.data, m.len, nid, "f") : NULL;
	CHECK(de != NULL);
	if (de) {
		set_dirent_nid(de, q_nid);
		de[10] = EROFS_FT_DIR;
		/* the message shows the first 160 bytes of the path */
		for (int i = 0; i < 80; i++)
			strcat(want, "/a");
		strcat(want, "...: deeper than 2048 levels");
		expect_error(m.data, m.len, EINVAL, want);
	}
	free(m.data);

	/* the writer refuses what the reader would */
	add(cfs_dir_lookup(d, "a"), "over", S_IFREG | 0644);
	cfs_error_clear();
	CHECK_ERR(write_image(root, 0, 1, &m), ELOOP);
	CHECK(strstr(cfs_error_message(), "deeper than 2048 levels") != NULL);
	free(m.data);
	cfs_inode_unref(root);
}

/* ---- robustness ------------------------------------------------------ */

/*
 * Damaged images are read on a few threads (the library keeps its error
 * message per thread): a read of the 5000-entry tree costs ~20 ms under
 * ASan. Each case derives its bytes from its own index, so the cases and
 * their outcome do not depend on the threads.
 */
struct damage_job {
	const struct membuf *img;
	size_t meta_end; /* header, inodes and shared xattrs end about here */
	const size_t *lengths; /* truncations, or NULL for mutations */
	size_t count, first, step;
	size_t trees, errors, failures;
};

/* One read of damaged bytes: an error with a message, or a tree. */
static void read_damaged(struct damage_job *job, const uint8_t *img, size_t len,
			 size_t index)
{
	cfs_inode *root = NULL;
	int r;

	cfs_error_clear();
	r = cfs_image_read(&root, img, len, NULL);
	if (r == 0 && root && S_ISDIR(cfs_inode_mode(root))) {
		job->trees++;
	} else if ((r == -EINVAL || r == -ENOTSUP) && cfs_error_message()[0]) {
		job->errors++;
	} else {
		job->failures++;
		fprintf(stderr, "damaged image %zu (%zu bytes): %d (%s)\n",
			index, len, r, cfs_error_message());
	}
	cfs_inode_unref(root);
}

/* Flip 1-8 bits or set 1-8 bytes to 0x00, 0xff or random; the positions
 * and old bytes go to @pos and @saved. */
static int mutate(uint64_t *rs, uint8_t *buf, size_t len, size_t meta_end,
		  size_t *pos, uint8_t *saved)
{
	int kind = (int)(rng(rs) % 4);
	int n = 1 + (int)(rng(rs) % 8);

	for (int i = 0; i < n; i++) {
		/* half the hits where most of the structure is */
		size_t range = rng(rs) % 2 ? meta_end : len;

		pos[i] = (size_t)(rng(rs) % range);
		saved[i] = buf[pos[i]];
		switch (kind) {
		case 0:
			buf[pos[i]] ^= (uint8_t)(1u << (rng(rs) % 8));
			break;
		case 1:
			buf[pos[i]] = 0;
			break;
		case 2:
			buf[pos[i]] = 0xff;
			break;
		default:
			buf[pos[i]] = (uint8_t)rng(rs);
			break;
		}
	}
	return n;
}

static void *damage_worker(void *arg)
{
	struct damage_job *job = arg;
	const size_t len = job->img->len;
	uint8_t *buf = malloc(len);

	if (!buf)
		abort();
	memcpy(buf, job->img->data, len);
	for (size_t i = job->first; i < job->count; i += job->step) {
		if (job->lengths) {
			/* an exactly-sized copy, so that ASan sees overreads */
			size_t n = job->lengths[i];
			uint8_t *copy = n ? malloc(n) : NULL;

			if (n && !copy)
				abort();
			if (n)
				memcpy(copy, job->img->data, n);
			read_damaged(job, copy, n, i);
			free(copy);
		} else {
			uint64_t rs = 0xdecafbad00000000ull + i;
			size_t pos[8];
			uint8_t saved[8];
			int n = mutate(&rs, buf, len, job->meta_end, pos,
				       saved);

			read_damaged(job, buf, len, i);
			/* in reverse, in case a byte was hit twice */
			while (n-- > 0)
				buf[pos[n]] = saved[n];
		}
	}
	if (memcmp(buf, job->img->data, len) != 0)
		job->failures++;
	free(buf);
	return NULL;
}

static void run_damaged(const char *what, const struct membuf *img,
			const size_t *lengths, size_t count)
{
	struct damage_job jobs[8];
	pthread_t threads[8];
	size_t n = (size_t)sysconf(_SC_NPROCESSORS_ONLN), trees = 0, errors = 0;
	size_t meta_end =
		(size_t)le32_at(img->data + 1024 + 44) * EROFS_BLKSIZ +
		EROFS_BLKSIZ;

	n = n < 1 ? 1 : n > 8 ? 8 : n;
	for (size_t t = 0; t < n; t++) {
		jobs[t] = (struct damage_job){
			.img = img,
			.meta_end = meta_end < img->len ? meta_end : img->len,
			.lengths = lengths,
			.count = count,
			.first = t,
			.step = n,
		};
		CHECK(pthread_create(&threads[t], NULL, damage_worker,
				     &jobs[t]) == 0);
	}
	for (size_t t = 0; t < n; t++) {
		pthread_join(threads[t], NULL);
		trees += jobs[t].trees;
		errors += jobs[t].errors;
		test_checks += (int)(jobs[t].trees + jobs[t].errors);
		test_failures += (int)jobs[t].failures;
	}
	CHECK(trees + errors == count);
	printf("%s: %zu cases, %zu errors, %zu trees\n", what, count, errors,
	       trees);
}

/* Every length up to 2048, then every 97 bytes. */
static void test_truncations(const char *what, const struct membuf *img)
{
	size_t *lengths = malloc(sizeof(*lengths) * (2048 + img->len / 97 + 1));
	size_t count = 0;

	for (size_t len = 0; len < img->len; len += len < 2048 ? 1 : 97)
		lengths[count++] = len;
	run_damaged(what, img, lengths, count);
	free(lengths);
}

static void test_damage(cfs_inode *tree, int big_entries, size_t mutations)
{
	char what[64];
	struct membuf img;

	CHECK_OK(write_image(tree, 0, 1, &img));
	snprintf(what, sizeof(what), "truncations (%d entries)", big_entries);
	test_truncations(what, &img);
	snprintf(what, sizeof(what), "mutations (%d entries)", big_entries);
	run_damaged(what, &img, NULL, mutations);
	free(img.data);
}

/*
 * External files of every size up to 2^64 - 1: written and read back
 * with that size, or refused with EFBIG (over 1024 chunks of 8 TiB).
 * A size within 8 TiB of 2^64 once wrapped the chunk count, and the
 * writer wrote an image its reader refused (found by fuzz-record-read).
 */
static void test_huge_sizes(void)
{
	static const uint64_t sizes[] = {
		1ull << 43,
		1ull << 53,
		(1ull << 53) + 1,
		(uint64_t)INT64_MAX,
		18446744047940403200ull,
		UINT64_MAX - (1ull << 43) + 2,
		UINT64_MAX,
	};
	uint8_t digest[CFS_DIGEST_SIZE];

	memset(digest, 0x5a, sizeof(digest));
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		cfs_inode *root = NULL, *f = NULL, *back = NULL;
		struct membuf m;
		int r;

		CHECK_OK(cfs_inode_new(&root, S_IFDIR | 0755));
		CHECK_OK(cfs_inode_new(&f, S_IFREG | 0644));
		if (!root || !f)
			return;
		CHECK_OK(cfs_inode_set_size(f, sizes[i]));
		CHECK_OK(cfs_inode_set_object(f, digest));
		CHECK_OK(cfs_dir_link(root, "f", f));
		r = write_image(root, 0, 1, &m);
		if (sizes[i] <= 1ull << 53) {
			CHECK_OK(r);
			CHECK_OK(cfs_image_read(&back, m.data, m.len, NULL));
			CHECK(back && cfs_dir_lookup(back, "f") &&
			      cfs_inode_size(cfs_dir_lookup(back, "f")) ==
				      sizes[i]);
		} else {
			CHECK(r == -EFBIG);
		}
		cfs_inode_unref(back);
		free(m.data);
		cfs_inode_unref(f);
		cfs_inode_unref(root);
	}
}

int main(int argc, char **argv)
{
	const char *env = getenv("CFS_TEST_MUTATIONS_BIG");
	cfs_inode *tree;
	struct membuf img;

	tree = build_tree(BIG_DIR_ENTRIES);

	/* The tree holds whiteouts: format 1 unless capped at 0. */
	test_round_trip(tree, 0, 1, 1);
	test_round_trip(tree, 0, 0, 0);
	test_round_trip(tree, 1, 1, 1);

	CHECK_OK(write_image(tree, 0, 1, &img));
	printf("image: %zu bytes\n", img.len);
	test_read_fd(tree, &img);
	free(img.data);
	TEST_RUN(argc, argv, test_crafted);
	TEST_RUN(argc, argv, test_depth_limit);
	TEST_RUN(argc, argv, test_huge_sizes);

	test_damage(tree, BIG_DIR_ENTRIES,
		    env ? strtoul(env, NULL, 10) : MUTATIONS_BIG);
	cfs_inode_unref(tree);

	tree = build_tree(SMALL_DIR_ENTRIES);
	test_round_trip(tree, 0, 1, 1);
	test_damage(tree, SMALL_DIR_ENTRIES, MUTATIONS);
	cfs_inode_unref(tree);
	return test_done();
}
