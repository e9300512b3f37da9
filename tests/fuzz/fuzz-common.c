/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* Helpers shared by the fuzz targets (see fuzz.h). */
#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cfs/common.h>

#include "image/tree-internal.h"

void fuzz_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz check failed: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	abort();
}

void fuzz_check_error(int r, const char *what)
{
	const char *msg;

	static int verbose = -1;

	if (verbose < 0)
		verbose = getenv("CFS_FUZZ_VERBOSE") != NULL;
	if (verbose)
		fprintf(stderr, "%s: %d %s\n", what, r,
			r < 0 ? cfs_error_message() : "");
	if (r >= 0)
		return;
	msg = cfs_error_message();
	if (r < -4095)
		fuzz_fail("%s: returned %d, not -errno (%s)", what, r, msg);
	if (!msg[0])
		fuzz_fail("%s: returned %d without a message", what, r);
	if (strchr(msg, '\n'))
		fuzz_fail("%s: message has several lines: %s", what, msg);
}

/* ---- scratch directory ------------------------------------------------ */

static char scratch[256];

static int rm_entry(const char *path, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void rm_scratch(void)
{
	if (scratch[0])
		nftw(scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fuzz_scratch_dir(const char *name)
{
	const char *tmp;

	if (scratch[0])
		return scratch;
	/* Memory-backed: a target rewrites its files for every input. */
	tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
	if (!tmp || !tmp[0])
		tmp = "/tmp";
	snprintf(scratch, sizeof(scratch), "%s/cfs-fuzz-%s-%ld", tmp, name,
		 (long)getpid());
	rm_scratch(); /* a leftover of an earlier process with this pid */
	if (mkdir(scratch, 0700) < 0)
		fuzz_fail("mkdir %s: %s", scratch, strerror(errno));
	atexit(rm_scratch);
	return scratch;
}

void fuzz_write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	const char *p = data;

	if (fd < 0)
		fuzz_fail("open %s: %s", path, strerror(errno));
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fuzz_fail("write %s: %s", path, strerror(errno));
		p += n;
		len -= (size_t)n;
	}
	close(fd);
}

/* ---- buffers ---------------------------------------------------------- */

void fuzz_buf_add(struct fuzz_buf *b, const void *data, size_t len)
{
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + len)
			cap *= 2;
		b->data = realloc(b->data, cap);
		if (!b->data)
			fuzz_fail("out of memory");
		b->cap = cap;
	}
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
}

void fuzz_buf_free(struct fuzz_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

int fuzz_buf_write(void *opaque, const void *data, size_t len)
{
	fuzz_buf_add(opaque, data, len);
	return 0;
}

int fuzz_discard_write(void *opaque, const void *data, size_t len)
{
	(void)opaque;
	(void)data;
	(void)len;
	return 0;
}

/* ---- ustar ------------------------------------------------------------ */

void fuzz_tar_add(struct fuzz_buf *b, const char *name, const void *data,
		  size_t len)
{
	uint8_t h[512] = { 0 };
	unsigned int sum = 0;
	static const uint8_t zeros[512];

	if (strlen(name) >= 100)
		fuzz_fail("tar member name too long: %s", name);
	memcpy(h, name, strlen(name));
	memcpy(h + 100, "0000644", 7);
	memcpy(h + 108, "0000000", 7);
	memcpy(h + 116, "0000000", 7);
	snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)len);
	memcpy(h + 136, "00000000000", 11);
	memset(h + 148, ' ', 8);
	h[156] = '0';
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	for (size_t i = 0; i < sizeof(h); i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	h[155] = ' ';
	fuzz_buf_add(b, h, sizeof(h));
	fuzz_buf_add(b, data, len);
	fuzz_buf_add(b, zeros, (512 - len % 512) % 512);
}

void fuzz_tar_end(struct fuzz_buf *b)
{
	static const uint8_t zeros[1024];

	fuzz_buf_add(b, zeros, sizeof(zeros));
}

void fuzz_sha256(const void *data, size_t len, char out[72])
{
	uint8_t md[CFS_DIGEST_SIZE];
	unsigned int md_len = 0;

	if (!EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL))
		fuzz_fail("SHA-256 failed");
	memcpy(out, "sha256:", 7);
	cfs_digest_to_hex(md, out + 7);
}

/* ---- trees ------------------------------------------------------------ */

/* Touch everything an inode holds through the public getters, so that
 * the sanitizers see any dangling or short buffer the reader left. */
static int walk_visit(void *ctx, cfs_inode *dir, const char *name,
		      cfs_inode *child)
{
	uint64_t *sum = ctx;
	int64_t sec;
	uint32_t nsec;
	size_t n = cfs_inode_xattr_count(child);

	(void)dir;
	*sum += strlen(name) + cfs_inode_mode(child) + cfs_inode_uid(child) +
		cfs_inode_gid(child) + cfs_inode_rdev(child) +
		cfs_inode_nlink(child);
	cfs_inode_mtime(child, &sec, &nsec);
	*sum += (uint64_t)sec + nsec;
	for (size_t i = 0; i < n; i++) {
		const char *xname;
		const void *value;
		size_t len;

		if (cfs_inode_xattr_at(child, i, &xname, &value, &len) < 0)
			fuzz_fail("xattr %zu of %zu of %s missing", i, n, name);
		*sum += strlen(xname) + len;
		if (len)
			*sum += ((const uint8_t *)value)[len - 1];
	}
	switch (cfs_inode_type(child)) {
	case S_IFLNK:
		*sum += strlen(cfs_inode_target(child));
		break;
	case S_IFREG: {
		const uint8_t *content = cfs_inode_content(child);
		const uint8_t *digest = cfs_inode_digest(child);
		const char *payload = cfs_inode_payload(child);
		uint64_t size = cfs_inode_size(child);

		if (content && size)
			*sum += content[size - 1];
		if (digest)
			*sum += digest[CFS_DIGEST_SIZE - 1];
		if (payload)
			*sum += strlen(payload);
		break;
	}
	default:
		break;
	}
	return 0;
}

static void walk(cfs_inode *root)
{
	uint64_t sum = 0;
	int r = cfs_tree_walk(root, walk_visit, &sum);

	if (r < 0)
		fuzz_fail("walking a tree failed: %d", r);
	/* Keep the sum alive. */
	__asm__ volatile("" : : "r"(sum));
}

/* The image of the tree that the dump text of @root reads back as. */
static void dump_roundtrip(cfs_inode *root, const struct fuzz_buf *img)
{
	char *text = NULL;
	size_t text_len = 0;
	FILE *f = open_memstream(&text, &text_len);
	cfs_inode *back = NULL;
	struct fuzz_buf img2 = { 0 };
	int r;

	if (!f)
		fuzz_fail("open_memstream failed");
	r = cfs_dump_write(root, f);
	fclose(f);
	if (r < 0)
		fuzz_fail("cfs_dump_write of a tree the writer took: %s",
			  cfs_error_message());
	f = fmemopen(text, text_len, "r");
	if (!f)
		fuzz_fail("fmemopen failed");
	r = cfs_dump_read(&back, f);
	fclose(f);
	if (r < 0)
		fuzz_fail("dump text of a tree does not read back: %s",
			  cfs_error_message());
	r = cfs_image_write(back, NULL, fuzz_buf_write, &img2, NULL);
	if (r < 0)
		fuzz_fail("tree read from a dump does not write: %s",
			  cfs_error_message());
	if (img2.len != img->len || memcmp(img2.data, img->data, img->len))
		fuzz_fail("the dump of a tree reads back as a different image "
			  "(%zu bytes, not %zu)",
			  img2.len, img->len);
	cfs_inode_unref(back);
	fuzz_buf_free(&img2);
	free(text);
}

int fuzz_image_roundtrip(cfs_inode *root, struct fuzz_buf *img_out)
{
	struct fuzz_buf img = { 0 }, img2 = { 0 };
	uint8_t digest[CFS_DIGEST_SIZE], digest2[CFS_DIGEST_SIZE];
	cfs_inode *back = NULL;
	unsigned int format = 0;
	int r;

	walk(root);
	r = cfs_image_write(root, NULL, fuzz_buf_write, &img, digest);
	fuzz_check_error(r, "cfs_image_write");
	if (r < 0)
		goto out;
	r = cfs_image_read(&back, img.data, img.len, &format);
	if (r < 0)
		fuzz_fail("the reader refuses an image the writer wrote: %s",
			  cfs_error_message());
	walk(back);
	r = cfs_image_write(back, NULL, fuzz_buf_write, &img2, digest2);
	if (r < 0)
		fuzz_fail("a tree read from a written image does not write: %s",
			  cfs_error_message());
	if (img2.len != img.len || memcmp(img2.data, img.data, img.len) ||
	    memcmp(digest, digest2, sizeof(digest)))
		fuzz_fail("write(read(write(tree))) differs from write(tree) "
			  "(%zu bytes, not %zu)",
			  img2.len, img.len);
	dump_roundtrip(root, &img);
	if (img_out) {
		*img_out = img;
		img.data = NULL;
	}
out:
	cfs_inode_unref(back);
	fuzz_buf_free(&img);
	fuzz_buf_free(&img2);
	return r;
}
