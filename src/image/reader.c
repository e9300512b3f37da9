/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * The composefs image reader: untrusted image bytes back into a tree.
 *
 * Nothing read from the image is trusted. Every offset and length goes
 * through image_at() before a byte behind it is touched, every count is
 * bounded by the image size, each inode is parsed at most once (a table of
 * nids turns a second sighting into a hardlink, or into an error for a
 * directory, which also catches cycles), and the recursion over
 * directories stops at CFS_TREE_DEPTH_MAX levels, which every source and
 * the writer keep too. Any inconsistency is -EINVAL with one line naming
 * the byte offset where it was found.
 *
 * The overlayfs xattrs that the writer adds are turned back into what the
 * source tree held: metacopy into a digest, redirect into a payload,
 * escaped whiteouts into character devices 0:0, "trusted.overlay.overlay."
 * back into "trusted.overlay.".
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "image/erofs-format.h"
#include "image/tree-internal.h"

/* Bytes of a path that a depth error shows. */
#define PATH_SHOWN 160

/* i_format bits 0-3 are the version and the data layout; bit 4 is only
 * used by newer EROFS to reinterpret the nlink field, which is ignored
 * here. Anything above is unknown. */
#define I_FORMAT_UNKNOWN_BITS 0xffe0u

struct reader {
	const uint8_t *data;
	size_t len;
	uint64_t meta_off; /* meta_blkaddr in bytes: nids count from here */
	uint64_t xattr_off; /* xattr_blkaddr in bytes: shared xattr ids too */
	int64_t build_time; /* mtime of compact inodes */
	uint32_t build_time_nsec;
	struct nid_table *nids;
};

/* An inode already read, for hardlinks and for catching directory loops. */
struct nid_entry {
	uint64_t nid;
	cfs_inode *inode; /* owns one reference; NULL: free slot */
	uint32_t raw_type; /* file type stored in the image (S_IFMT bits) */
};

/* Open addressing, linear probing, at most half full. */
struct nid_table {
	struct nid_entry *slots;
	size_t cap; /* a power of two */
	size_t count;
};

/* One inode as stored, before it becomes a cfs_inode. */
struct raw_inode {
	uint64_t nid;
	uint64_t off; /* image offset of the inode */
	unsigned int layout; /* EROFS_INODE_FLAT_PLAIN, _FLAT_INLINE, ... */
	uint32_t mode;
	uint64_t size;
	uint32_t i_u; /* raw_blkaddr, rdev or chunk format */
	uint32_t uid, gid;
	int64_t mtime;
	uint32_t mtime_nsec;
	uint64_t xattr_off; /* image offset of the xattr body */
	uint32_t xattr_size;
	/* Data, set by check_data(): plain_len bytes from block i_u on, then
	 * tail_len bytes inline at tail_off (right after the xattrs). */
	uint64_t plain_len;
	uint64_t tail_off;
	uint32_t tail_len;
};

/* One xattr as stored, with its full name. */
struct raw_xattr {
	char *name;
	const uint8_t *value; /* points into the image */
	uint16_t len;
	uint64_t off; /* image offset of the entry, for messages */
};

struct xattr_list {
	struct raw_xattr *v;
	size_t n, cap;
};

#define image_error(err, off, fmt, ...)                                        \
	cfs_error(err, "image offset %" PRIu64 ": " fmt, (uint64_t)(off),      \
		  ##__VA_ARGS__)
#define image_invalid(off, fmt, ...)                                           \
	image_error(EINVAL, off, fmt, ##__VA_ARGS__)

/* A tree function refused what the image holds: keep its message (it says
 * what), prefix where. */
#define tree_refused(r, off, fmt, ...)                                         \
	((r) == -ENOMEM ?                                                      \
		 no_memory() :                                                 \
		 cfs_error_prefix(EINVAL, "image offset %" PRIu64 ": " fmt,    \
				  (uint64_t)(off), ##__VA_ARGS__))

static int no_memory(void)
{
	return cfs_error(ENOMEM, "out of memory reading a composefs image");
}

/*
 * The image bytes [off, off + len), or NULL with the error set. The format
 * names the structure for the message.
 */
__attribute__((format(printf, 4, 5))) static const uint8_t *
image_at(const struct reader *rd, uint64_t off, uint64_t len, const char *fmt,
	 ...)
{
	char what[256];
	va_list ap;

	if (off <= rd->len && len <= rd->len - off)
		return rd->data + off;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	image_invalid(off,
		      "%s (%" PRIu64
		      " bytes) beyond the end of the image (%zu bytes)",
		      what, len, rd->len);
	return NULL;
}

static uint16_t get_le16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static bool has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- header and superblock ------------------------------------------- */

static int read_header(struct reader *rd, unsigned int *format)
{
	const uint8_t *p;
	struct cfs_header h;

	p = image_at(rd, 0, sizeof(h), "composefs header");
	if (!p)
		return -EINVAL;
	memcpy(&h, p, sizeof(h));
	if (le32toh(h.magic) != CFS_HEADER_MAGIC)
		return image_invalid(0, "not a composefs image (magic 0x%08x)",
				     le32toh(h.magic));
	if (le32toh(h.version) != CFS_HEADER_VERSION)
		return image_error(ENOTSUP,
				   offsetof(struct cfs_header, version),
				   "composefs header version %u not supported",
				   le32toh(h.version));
	*format = le32toh(h.composefs_version);
	if (*format > CFS_FORMAT_MAX)
		return image_error(
			ENOTSUP, offsetof(struct cfs_header, composefs_version),
			"composefs format version %u not supported", *format);
	return 0;
}

static int read_superblock(struct reader *rd, uint16_t *root_nid)
{
	const uint64_t off = EROFS_SUPER_OFFSET;
	struct erofs_super_block sb;
	const uint8_t *p;

	p = image_at(rd, off, sizeof(sb), "EROFS superblock");
	if (!p)
		return -EINVAL;
	memcpy(&sb, p, sizeof(sb));
	if (le32toh(sb.magic) != EROFS_SUPER_MAGIC_V1)
		return image_invalid(off, "bad EROFS superblock magic 0x%08x",
				     le32toh(sb.magic));
	if (sb.blkszbits != EROFS_BLKSIZ_BITS)
		return image_error(
			ENOTSUP,
			off + offsetof(struct erofs_super_block, blkszbits),
			"EROFS block size 2^%u not supported", sb.blkszbits);
	/* composefs uses no incompatible feature; any would change how the
	 * structures below are to be read. */
	if (le32toh(sb.feature_incompat) != 0)
		return image_error(
			ENOTSUP,
			off + offsetof(struct erofs_super_block,
				       feature_incompat),
			"EROFS incompatible features 0x%x not supported",
			le32toh(sb.feature_incompat));
	rd->meta_off = (uint64_t)le32toh(sb.meta_blkaddr) * EROFS_BLKSIZ;
	rd->xattr_off = (uint64_t)le32toh(sb.xattr_blkaddr) * EROFS_BLKSIZ;
	rd->build_time = (int64_t)le64toh(sb.build_time);
	rd->build_time_nsec = le32toh(sb.build_time_nsec);
	if (rd->build_time_nsec >= 1000000000u)
		return image_invalid(off + offsetof(struct erofs_super_block,
						    build_time_nsec),
				     "build time nanoseconds %u out of range",
				     rd->build_time_nsec);
	*root_nid = le16toh(sb.root_nid);
	return 0;
}

/* ---- inodes ---------------------------------------------------------- */

/* Parse the fixed part of inode @nid, referenced at image offset @ref_off. */
static int parse_inode(const struct reader *rd, uint64_t nid, uint64_t ref_off,
		       struct raw_inode *ri)
{
	const uint8_t *p;
	uint16_t format, icount;
	uint64_t isize;
	bool extended;

	/* Keeps nid * 32 from overflowing; the real bound is image_at's. */
	if (nid > rd->len / EROFS_SLOTSIZE)
		return image_invalid(ref_off,
				     "nid %" PRIu64
				     " beyond the end of the image",
				     nid);
	memset(ri, 0, sizeof(*ri));
	ri->nid = nid;
	ri->off = rd->meta_off + nid * EROFS_SLOTSIZE;
	p = image_at(rd, ri->off, sizeof(format), "inode of nid %" PRIu64, nid);
	if (!p)
		return -EINVAL;
	format = get_le16(p);
	if (format & I_FORMAT_UNKNOWN_BITS)
		return image_invalid(ri->off,
				     "nid %" PRIu64
				     ": unknown i_format bits 0x%x",
				     nid, format);
	ri->layout = (format >> EROFS_I_DATALAYOUT_BIT) & 7;
	if (ri->layout != EROFS_INODE_FLAT_PLAIN &&
	    ri->layout != EROFS_INODE_FLAT_INLINE &&
	    ri->layout != EROFS_INODE_CHUNK_BASED)
		return image_invalid(ri->off,
				     "nid %" PRIu64
				     ": data layout %u not supported",
				     nid, ri->layout);

	extended = format & (1u << EROFS_I_VERSION_BIT);
	isize = extended ? sizeof(struct erofs_inode_extended) :
			   sizeof(struct erofs_inode_compact);
	p = image_at(rd, ri->off, isize, "inode of nid %" PRIu64, nid);
	if (!p)
		return -EINVAL;
	if (extended) {
		struct erofs_inode_extended e;

		memcpy(&e, p, sizeof(e));
		icount = le16toh(e.i_xattr_icount);
		ri->mode = le16toh(e.i_mode);
		ri->size = le64toh(e.i_size);
		ri->i_u = le32toh(e.i_u);
		ri->uid = le32toh(e.i_uid);
		ri->gid = le32toh(e.i_gid);
		ri->mtime = (int64_t)le64toh(e.i_mtime);
		ri->mtime_nsec = le32toh(e.i_mtime_nsec);
	} else {
		/* compact: 16-bit ids and the image's build time */
		struct erofs_inode_compact c;

		memcpy(&c, p, sizeof(c));
		icount = le16toh(c.i_xattr_icount);
		ri->mode = le16toh(c.i_mode);
		ri->size = le32toh(c.i_size);
		ri->i_u = le32toh(c.i_u);
		ri->uid = le16toh(c.i_uid);
		ri->gid = le16toh(c.i_gid);
		ri->mtime = rd->build_time;
		ri->mtime_nsec = rd->build_time_nsec;
	}

	/* The xattr body: a 12-byte header, then icount - 1 more words. */
	ri->xattr_off = ri->off + isize;
	ri->xattr_size = icount ? sizeof(struct erofs_xattr_ibody_header) +
					  4u * (icount - 1u) :
				  0;
	if (!image_at(rd, ri->xattr_off, ri->xattr_size,
		      "xattrs of nid %" PRIu64, nid))
		return -EINVAL;
	return 0;
}

/*
 * Locate the data of a flat inode and check that it is all inside the
 * image. FLAT_PLAIN: ceil(size / 4096) blocks from block i_u on.
 * FLAT_INLINE: size / 4096 full blocks there, then the last size % 4096
 * bytes right after the xattrs, within one block (as the kernel requires).
 */
static int check_data(const struct reader *rd, struct raw_inode *ri)
{
	uint64_t blocks_off = (uint64_t)ri->i_u * EROFS_BLKSIZ;

	if (ri->size > rd->len)
		return image_invalid(ri->off,
				     "nid %" PRIu64 ": size %" PRIu64
				     " larger than the image",
				     ri->nid, ri->size);
	if (ri->layout == EROFS_INODE_FLAT_INLINE) {
		ri->plain_len = ri->size / EROFS_BLKSIZ * EROFS_BLKSIZ;
		ri->tail_len = ri->size % EROFS_BLKSIZ;
		/* The kernel would take a whole last block inline here,
		 * composefs' reader none: refuse the ambiguity. */
		if (ri->size > 0 && ri->tail_len == 0)
			return image_invalid(ri->off,
					     "nid %" PRIu64
					     ": inline layout without a tail",
					     ri->nid);
	} else {
		ri->plain_len = ri->size;
		ri->tail_len = 0;
	}
	if (ri->plain_len > 0 &&
	    !image_at(rd, blocks_off, ri->plain_len,
		      "data blocks of nid %" PRIu64, ri->nid))
		return -EINVAL;
	ri->tail_off = ri->xattr_off + ri->xattr_size;
	if (ri->tail_len > 0) {
		if (!image_at(rd, ri->tail_off, ri->tail_len,
			      "inline data of nid %" PRIu64, ri->nid))
			return -EINVAL;
		if (ri->tail_off % EROFS_BLKSIZ + ri->tail_len > EROFS_BLKSIZ)
			return image_invalid(
				ri->tail_off,
				"inline data of nid %" PRIu64
				" (%u bytes) crosses a block boundary",
				ri->nid, ri->tail_len);
	}
	return 0;
}

/*
 * External content: no data to read, but the chunk format must be one the
 * kernel knows, and the chunk index array it maps (right after the xattrs,
 * all EROFS_NULL_ADDR in composefs images) must be inside the image.
 */
static int check_chunks(const struct reader *rd, const struct raw_inode *ri)
{
	const uint16_t format = (uint16_t)ri->i_u; /* i_u.c.format */
	const unsigned int bits =
		EROFS_BLKSIZ_BITS + (format & EROFS_CHUNK_FORMAT_BLKBITS_MASK);
	const uint64_t unit = format & EROFS_CHUNK_FORMAT_INDEXES ? 8 : 4;
	const uint64_t count =
		(ri->size >> bits) + ((ri->size & ((1ull << bits) - 1)) != 0);

	if (format &
	    ~(EROFS_CHUNK_FORMAT_BLKBITS_MASK | EROFS_CHUNK_FORMAT_INDEXES))
		return image_invalid(ri->off,
				     "nid %" PRIu64
				     ": unknown chunk format 0x%x",
				     ri->nid, format);
	if (!image_at(rd, CFS_ROUND_UP(ri->xattr_off + ri->xattr_size, unit),
		      count * unit, "chunk indexes of nid %" PRIu64, ri->nid))
		return -EINVAL;
	return 0;
}

/* Check size and layout against the file type; locate flat data. */
static int check_layout(const struct reader *rd, struct raw_inode *ri)
{
	uint32_t type = ri->mode & S_IFMT;

	if (ri->layout == EROFS_INODE_CHUNK_BASED) {
		if (type != S_IFREG)
			return image_invalid(
				ri->off,
				"nid %" PRIu64
				": chunk-based layout on a mode 0%o inode",
				ri->nid, ri->mode);
		return check_chunks(rd, ri);
	}
	switch (type) {
	case S_IFDIR:
		break;
	case S_IFLNK:
		if (ri->size == 0 || ri->size > CFS_TARGET_MAX)
			return image_invalid(ri->off,
					     "nid %" PRIu64
					     ": symlink target of %" PRIu64
					     " bytes",
					     ri->nid, ri->size);
		break;
	case S_IFREG:
		if (ri->size > CFS_INLINE_MAX)
			return image_invalid(ri->off,
					     "nid %" PRIu64
					     ": inline content of %" PRIu64
					     " bytes",
					     ri->nid, ri->size);
		break;
	default:
		if (ri->size != 0)
			return image_invalid(ri->off,
					     "nid %" PRIu64 ": size %" PRIu64
					     " on a mode 0%o inode",
					     ri->nid, ri->size, ri->mode);
		break;
	}
	return check_data(rd, ri);
}

/* Bytes [blk * 4096, ...) of the data of an inode that passed
 * check_data(); *len receives their count (4096 but for the last block). */
static const uint8_t *data_block(const struct reader *rd,
				 const struct raw_inode *ri, uint64_t blk,
				 size_t *len)
{
	uint64_t start = blk * EROFS_BLKSIZ;

	*len = CFS_MIN(ri->size - start, (uint64_t)EROFS_BLKSIZ);
	if (start >= ri->plain_len)
		return rd->data + ri->tail_off;
	return rd->data + (uint64_t)ri->i_u * EROFS_BLKSIZ + start;
}

/* The whole data of a small flat inode, NUL-terminated, in a new buffer. */
static int read_data(const struct reader *rd, const struct raw_inode *ri,
		     uint8_t **out)
{
	uint8_t *buf = malloc(ri->size + 1);
	uint64_t pos = 0;

	if (!buf)
		return no_memory();
	for (uint64_t blk = 0; pos < ri->size; blk++) {
		size_t len;
		const uint8_t *p = data_block(rd, ri, blk, &len);

		memcpy(buf + pos, p, len);
		pos += len;
	}
	buf[ri->size] = '\0';
	*out = buf;
	return 0;
}

/* ---- xattrs ---------------------------------------------------------- */

static void xattr_list_free(struct xattr_list *xl)
{
	for (size_t i = 0; i < xl->n; i++)
		free(xl->v[i].name);
	free(xl->v);
}

/* Parse the entry at @off, which must end by @end; add it to @xl. */
static int parse_xattr_entry(const struct reader *rd,
			     const struct raw_inode *ri, uint64_t off,
			     uint64_t end, struct xattr_list *xl,
			     uint64_t *entry_size)
{
	struct erofs_xattr_entry e;
	const uint8_t *p, *suffix;
	const char *prefix;
	struct raw_xattr *x;
	size_t plen;

	if (off > end || end - off < sizeof(e))
		return image_invalid(off,
				     "xattr entry of nid %" PRIu64
				     " beyond the xattr area",
				     ri->nid);
	p = image_at(rd, off, sizeof(e), "xattr entry of nid %" PRIu64,
		     ri->nid);
	if (!p)
		return -EINVAL;
	memcpy(&e, p, sizeof(e));
	*entry_size = CFS_ROUND_UP(sizeof(e) + e.e_name_len +
					   (uint64_t)le16toh(e.e_value_size),
				   4);
	if (*entry_size > end - off)
		return image_invalid(off,
				     "xattr entry of nid %" PRIu64 " (%" PRIu64
				     " bytes) beyond the xattr area",
				     ri->nid, *entry_size);
	p = image_at(rd, off, *entry_size, "xattr entry of nid %" PRIu64,
		     ri->nid);
	if (!p)
		return -EINVAL;
	prefix = cfs_erofs_xattr_prefix(e.e_name_index);
	if (!prefix)
		return image_invalid(off,
				     "nid %" PRIu64
				     ": unknown xattr name index %u",
				     ri->nid, e.e_name_index);
	suffix = p + sizeof(e);
	if (memchr(suffix, '\0', e.e_name_len))
		return image_invalid(off,
				     "nid %" PRIu64
				     ": NUL byte in an xattr name",
				     ri->nid);

	if (xl->n == xl->cap) {
		size_t cap = xl->cap ? xl->cap * 2 : 8;
		struct raw_xattr *v = reallocarray(xl->v, cap, sizeof(*v));
		if (!v)
			return no_memory();
		xl->v = v;
		xl->cap = cap;
	}
	plen = strlen(prefix);
	x = &xl->v[xl->n];
	x->name = malloc(plen + e.e_name_len + 1);
	if (!x->name)
		return no_memory();
	memcpy(x->name, prefix, plen);
	memcpy(x->name + plen, suffix, e.e_name_len);
	x->name[plen + e.e_name_len] = '\0';
	x->value = suffix + e.e_name_len;
	x->len = le16toh(e.e_value_size);
	x->off = off;
	xl->n++;
	return 0;
}

static int raw_xattr_cmp(const void *a, const void *b)
{
	return strcmp(((const struct raw_xattr *)a)->name,
		      ((const struct raw_xattr *)b)->name);
}

/*
 * Read the xattr body: the header, h_shared_count shared ids (each the
 * index of a 4-byte word in the shared area), then inline entries up to
 * the end of the body. The list comes back sorted by name.
 */
static int parse_xattrs(const struct reader *rd, const struct raw_inode *ri,
			struct xattr_list *xl)
{
	const uint64_t end = ri->xattr_off + ri->xattr_size;
	struct erofs_xattr_ibody_header h;
	uint64_t pos, entry_size;
	int r;

	if (ri->xattr_size == 0)
		return 0;
	memcpy(&h, rd->data + ri->xattr_off, sizeof(h));
	pos = ri->xattr_off + sizeof(h);
	if ((uint64_t)h.h_shared_count * 4 > end - pos)
		return image_invalid(
			ri->xattr_off,
			"nid %" PRIu64
			": %u shared xattrs do not fit in %u bytes",
			ri->nid, h.h_shared_count, ri->xattr_size);
	for (unsigned int i = 0; i < h.h_shared_count; i++, pos += 4) {
		uint64_t off =
			rd->xattr_off + (uint64_t)get_le32(rd->data + pos) * 4;

		r = parse_xattr_entry(rd, ri, off, rd->len, xl, &entry_size);
		if (r < 0)
			return r;
	}
	while (pos < end) {
		r = parse_xattr_entry(rd, ri, pos, end, xl, &entry_size);
		if (r < 0)
			return r;
		pos += entry_size;
	}

	/* Sorted, so that duplicates are neighbours and the tree only ever
	 * appends (the translation below keeps the order). */
	if (xl->n > 1)
		qsort(xl->v, xl->n, sizeof(xl->v[0]), raw_xattr_cmp);
	for (size_t i = 1; i < xl->n; i++)
		if (strcmp(xl->v[i - 1].name, xl->v[i].name) == 0)
			return image_invalid(xl->v[i].off,
					     "nid %" PRIu64 ": xattr %s twice",
					     ri->nid, xl->v[i].name);
	return 0;
}

static const struct raw_xattr *xattr_find(const struct xattr_list *xl,
					  const char *name)
{
	for (size_t i = 0; i < xl->n; i++)
		if (strcmp(xl->v[i].name, name) == 0)
			return &xl->v[i];
	return NULL;
}

/* What the writer added for the whiteouts of the source tree. */
struct overlay_marks {
	bool whiteout; /* a regular file standing for a whiteout */
	bool has_whiteouts; /* a directory holding whiteouts */
};

static bool is_external(const struct raw_inode *ri)
{
	return S_ISREG(ri->mode) && ri->layout == EROFS_INODE_CHUNK_BASED &&
	       ri->size > 0;
}

/* trusted.overlay.metacopy: empty, or a header and the fs-verity digest. */
static int apply_metacopy(const struct raw_inode *ri, const struct raw_xattr *x,
			  cfs_inode *inode)
{
	static const uint8_t header[OVL_METACOPY_HEADER_SIZE] = {
		0, OVL_METACOPY_HEADER_SIZE + CFS_DIGEST_SIZE, 0,
		OVL_METACOPY_ALG_SHA256
	};

	if (!is_external(ri))
		return image_invalid(
			x->off,
			"nid %" PRIu64
			": metacopy xattr without external content",
			ri->nid);
	if (x->len == 0)
		return 0;
	if (x->len != sizeof(header) + CFS_DIGEST_SIZE ||
	    memcmp(x->value, header, sizeof(header)) != 0)
		return image_invalid(x->off,
				     "nid %" PRIu64
				     ": bad metacopy xattr of %u bytes",
				     ri->nid, x->len);
	return cfs_inode_set_digest(inode, x->value + sizeof(header));
}

/* trusted.overlay.redirect: "/" and the payload. */
static int apply_redirect(const struct raw_inode *ri, const struct raw_xattr *x,
			  cfs_inode *inode)
{
	_cleanup_free_ char *payload = NULL;
	const uint8_t *v = x->value;
	size_t len = x->len;
	int r;

	if (!is_external(ri))
		return image_invalid(
			x->off,
			"nid %" PRIu64
			": redirect xattr without external content",
			ri->nid);
	if (len > 0 && v[0] == '/') {
		v++;
		len--;
	}
	if (len == 0 || len > CFS_TARGET_MAX || memchr(v, '\0', len))
		return image_invalid(x->off,
				     "nid %" PRIu64
				     ": bad redirect xattr of %u bytes",
				     ri->nid, x->len);
	payload = strndup((const char *)v, len);
	if (!payload)
		return no_memory();
	r = cfs_inode_set_payload(inode, payload);
	if (r < 0)
		return tree_refused(r, x->off, "nid %" PRIu64, ri->nid);
	return 0;
}

static bool value_is(const struct raw_xattr *x, const char *s)
{
	return x->len == strlen(s) && memcmp(x->value, s, x->len) == 0;
}

/*
 * Undo what the writer did to one xattr. Returns 1 to keep it (with its
 * name unescaped in place), 0 to drop it, or -errno.
 */
static int translate_xattr(const struct raw_inode *ri,
			   const struct overlay_marks *m, struct raw_xattr *x,
			   cfs_inode *inode)
{
	const char *n = x->name;
	int r;

	if (!has_prefix(n, OVL_XATTR_PREFIX)) {
		if (m->whiteout && strcmp(n, OVL_XATTR_USER_WHITEOUT) == 0)
			return 0;
		if (m->has_whiteouts &&
		    (strcmp(n, OVL_XATTR_USER_WHITEOUTS) == 0 ||
		     (strcmp(n, OVL_XATTR_USER_OPAQUE) == 0 &&
		      value_is(x, "x"))))
			return 0;
		return 1;
	}
	if (strcmp(n, OVL_XATTR_METACOPY) == 0) {
		r = apply_metacopy(ri, x, inode);
		return r < 0 ? r : 0;
	}
	if (strcmp(n, OVL_XATTR_REDIRECT) == 0) {
		r = apply_redirect(ri, x, inode);
		return r < 0 ? r : 0;
	}
	/* overlayfs' own, like the root's opaque=y: not from the source */
	if (!has_prefix(n, OVL_XATTR_ESCAPE_PREFIX))
		return 0;
	if (m->whiteout && strcmp(n, OVL_XATTR_ESC_WHITEOUT) == 0)
		return 0;
	if (m->has_whiteouts &&
	    (strcmp(n, OVL_XATTR_ESC_WHITEOUTS) == 0 ||
	     (strcmp(n, OVL_XATTR_ESC_OPAQUE) == 0 && value_is(x, "x"))))
		return 0;
	/* "trusted.overlay.overlay.X" was the source's "trusted.overlay.X" */
	memmove(x->name + strlen(OVL_XATTR_PREFIX),
		x->name + strlen(OVL_XATTR_ESCAPE_PREFIX),
		strlen(x->name) - strlen(OVL_XATTR_ESCAPE_PREFIX) + 1);
	return 1;
}

static int apply_xattrs(const struct raw_inode *ri,
			const struct overlay_marks *m, struct xattr_list *xl,
			cfs_inode *inode)
{
	int r;

	for (size_t i = 0; i < xl->n; i++) {
		struct raw_xattr *x = &xl->v[i];

		r = translate_xattr(ri, m, x, inode);
		if (r <= 0) {
			if (r < 0)
				return r;
			continue;
		}
		r = cfs_inode_set_xattr(inode, x->name, x->value, x->len);
		if (r < 0)
			return tree_refused(r, x->off, "nid %" PRIu64, ri->nid);
	}
	return 0;
}

/* ---- building inodes ------------------------------------------------- */

static int set_flat_data(const struct reader *rd, const struct raw_inode *ri,
			 cfs_inode *inode)
{
	_cleanup_free_ uint8_t *data = NULL;
	int r;

	if (ri->layout == EROFS_INODE_CHUNK_BASED) {
		r = cfs_inode_set_size(inode, ri->size);
	} else if (ri->size == 0) {
		return 0;
	} else {
		r = read_data(rd, ri, &data);
		if (r < 0)
			return r;
		if (S_ISLNK(ri->mode) && memchr(data, '\0', ri->size))
			return image_invalid(ri->off,
					     "nid %" PRIu64
					     ": NUL byte in a symlink target",
					     ri->nid);
		if (S_ISLNK(ri->mode))
			r = cfs_inode_set_target(inode, (const char *)data);
		else
			r = cfs_inode_set_content(inode, data, ri->size);
	}
	if (r < 0)
		return tree_refused(r, ri->off, "nid %" PRIu64, ri->nid);
	return 0;
}

static bool empty_xattr(const struct xattr_list *xl, const char *name)
{
	const struct raw_xattr *x = xattr_find(xl, name);

	return x && x->len == 0;
}

/*
 * The writer stores a source whiteout as an empty regular file with both
 * whiteout markers empty. A source file that merely carries an escaped
 * trusted.overlay.whiteout (with content, or without the user.* twin)
 * stays a regular file with that xattr.
 */
static bool is_escaped_whiteout(const struct raw_inode *ri,
				const struct xattr_list *xl)
{
	return S_ISREG(ri->mode) && ri->size == 0 &&
	       ri->layout != EROFS_INODE_CHUNK_BASED &&
	       empty_xattr(xl, OVL_XATTR_ESC_WHITEOUT) &&
	       empty_xattr(xl, OVL_XATTR_USER_WHITEOUT);
}

/* A new cfs_inode for @ri: attributes, data and xattrs (not entries). */
static int make_inode(const struct reader *rd, const struct raw_inode *ri,
		      struct xattr_list *xl, cfs_inode **out)
{
	struct overlay_marks m = {
		.whiteout = is_escaped_whiteout(ri, xl),
		.has_whiteouts = S_ISDIR(ri->mode) &&
				 xattr_find(xl, OVL_XATTR_ESC_WHITEOUTS),
	};
	uint32_t mode = ri->mode;
	cfs_inode *inode = NULL;
	int r;

	if (m.whiteout) /* a character device 0:0 in the source */
		mode = S_IFCHR | (mode & 07777);
	r = cfs_inode_new(&inode, mode);
	if (r < 0)
		return tree_refused(r, ri->off, "nid %" PRIu64, ri->nid);
	cfs_inode_set_owner(inode, ri->uid, ri->gid);
	r = cfs_inode_set_mtime(inode, ri->mtime, ri->mtime_nsec);
	if (r < 0)
		goto refused;
	if (S_ISREG(mode) || S_ISLNK(mode)) {
		r = set_flat_data(rd, ri, inode);
		if (r < 0)
			goto fail;
	} else if ((S_ISCHR(mode) || S_ISBLK(mode)) && !m.whiteout) {
		r = cfs_inode_set_rdev(inode, cfs_rdev_decode(ri->i_u));
		if (r < 0)
			goto refused;
	}
	r = apply_xattrs(ri, &m, xl, inode);
	if (r < 0)
		goto fail;
	*out = inode;
	return 0;

refused:
	r = tree_refused(r, ri->off, "nid %" PRIu64, ri->nid);
fail:
	cfs_inode_unref(inode);
	return r;
}

/* ---- the nid table --------------------------------------------------- */

static size_t nid_slot(const struct nid_table *t, uint64_t nid)
{
	size_t i = (size_t)((nid * 0x9e3779b97f4a7c15ull) >> 32) & (t->cap - 1);

	while (t->slots[i].inode && t->slots[i].nid != nid)
		i = (i + 1) & (t->cap - 1);
	return i;
}

/* A copy of the entry of @nid; false if there is none. */
static bool nid_lookup(const struct nid_table *t, uint64_t nid,
		       struct nid_entry *out)
{
	const struct nid_entry *e;

	if (t->cap == 0)
		return false;
	e = &t->slots[nid_slot(t, nid)];
	if (!e->inode)
		return false;
	*out = *e;
	return true;
}

static int nid_grow(struct nid_table *t)
{
	struct nid_table n = { .cap = t->cap ? t->cap * 2 : 64 };

	n.slots = calloc(n.cap, sizeof(*n.slots));
	if (!n.slots)
		return no_memory();
	for (size_t i = 0; i < t->cap; i++)
		if (t->slots[i].inode)
			n.slots[nid_slot(&n, t->slots[i].nid)] = t->slots[i];
	n.count = t->count;
	free(t->slots);
	*t = n;
	return 0;
}

/* Record @inode (taking over the caller's reference) as nid @nid, which
 * must not be in the table yet. */
static int nid_insert(struct nid_table *t, uint64_t nid, cfs_inode *inode,
		      uint32_t raw_type)
{
	int r;

	if (2 * (t->count + 1) > t->cap) {
		r = nid_grow(t);
		if (r < 0) {
			cfs_inode_unref(inode);
			return r;
		}
	}
	t->slots[nid_slot(t, nid)] = (struct nid_entry){ nid, inode, raw_type };
	t->count++;
	return 0;
}

static void nid_table_free(struct nid_table *t)
{
	for (size_t i = 0; i < t->cap; i++)
		cfs_inode_unref(t->slots[i].inode);
	free(t->slots);
}

/* ---- directories ----------------------------------------------------- */

/* Where an entry sits: its name in its directory, the directory's place
 * (NULL for the root) and its level, the root's being 0. The places of
 * one path are the frames of the recursion that reads it. */
struct place {
	const struct place *up;
	const uint8_t *name;
	size_t len;
	unsigned int level;
};

static int read_inode(struct reader *rd, uint64_t nid, uint64_t ref_off,
		      const struct place *at, struct nid_entry *out);

struct dir_reader {
	struct reader *rd;
	const struct raw_inode *ri;
	cfs_inode *dir;
	const struct place *at;
	const uint8_t *prev; /* previous name (in the image), for the order */
	size_t prev_len;
};

/* The entry at @at, in the directory of @dr, is below CFS_TREE_DEPTH_MAX
 * levels: name its path, cut to its start. */
static int too_deep(const struct dir_reader *dr, const struct place *at,
		    uint64_t off)
{
	_cleanup_free_ const struct place **path = NULL;
	char shown[PATH_SHOWN + 4];
	size_t i, len = 0;

	path = malloc(at->level * sizeof(*path));
	if (!path)
		return no_memory();
	for (const struct place *p = at; p->up; p = p->up)
		path[p->level - 1] = p;
	for (i = 0; i < at->level && len <= PATH_SHOWN; i++)
		len += (size_t)snprintf(shown + len, PATH_SHOWN + 1 - len,
					"/%.*s", (int)path[i]->len,
					(const char *)path[i]->name);
	if (i < at->level || len > PATH_SHOWN)
		memcpy(shown + CFS_MIN(len, PATH_SHOWN), "...", 4);
	return image_invalid(off,
			     "directory nid %" PRIu64
			     ": %s: deeper than %d levels",
			     dr->ri->nid, shown, CFS_TREE_DEPTH_MAX);
}

static int link_entry(struct dir_reader *dr, const uint8_t *name, size_t len,
		      cfs_inode *child, uint64_t off)
{
	char buf[CFS_NAME_MAX + 1];
	int r;

	memcpy(buf, name, len);
	buf[len] = '\0';
	r = cfs_dir_link(dr->dir, buf, child);
	if (r < 0)
		return tree_refused(r, off, "directory nid %" PRIu64,
				    dr->ri->nid);
	return 0;
}

/* One directory entry: its inode (read now or met before), then the link. */
static int read_entry(struct dir_reader *dr, const uint8_t *dirent,
		      const uint8_t *name, size_t len, uint64_t off)
{
	const struct place at = { dr->at, name, len, dr->at->level + 1 };
	struct erofs_dirent de;
	struct nid_entry e;
	uint64_t nid;
	int r;

	if (at.level > CFS_TREE_DEPTH_MAX)
		return too_deep(dr, &at, off);
	memcpy(&de, dirent, sizeof(de));
	nid = le64toh(de.nid);
	if (nid_lookup(dr->rd->nids, nid, &e)) {
		/* A second name for a directory, or a loop */
		if (S_ISDIR(e.raw_type))
			return image_invalid(
				off,
				"directory nid %" PRIu64
				": entry for directory nid %" PRIu64
				" met before",
				dr->ri->nid, nid);
	} else {
		r = read_inode(dr->rd, nid, off, &at, &e);
		if (r < 0)
			return r;
	}
	if (de.file_type != cfs_erofs_file_type(e.raw_type))
		return image_invalid(
			off + offsetof(struct erofs_dirent, file_type),
			"directory nid %" PRIu64
			": file type %u for nid %" PRIu64 " of mode 0%o",
			dr->ri->nid, de.file_type, nid, e.raw_type);
	if (!e.inode)
		return 0; /* an overlay whiteout */
	return link_entry(dr, name, len, e.inode, off);
}

/* Check a name and that it sorts after the previous one. */
static int check_name(struct dir_reader *dr, const uint8_t *name, size_t len,
		      uint64_t off)
{
	int c;

	if (len == 0 || len > CFS_NAME_MAX)
		return image_invalid(off,
				     "directory nid %" PRIu64
				     ": name of %zu bytes",
				     dr->ri->nid, len);
	if (memchr(name, '/', len) || memchr(name, '\0', len))
		return image_invalid(off,
				     "directory nid %" PRIu64
				     ": '/' or NUL in a name",
				     dr->ri->nid);
	/* Lookups binary-search the entries: they must be in strcmp order,
	 * which also rules out duplicates. */
	if (dr->prev) {
		c = memcmp(dr->prev, name, CFS_MIN(dr->prev_len, len));
		if (c > 0 || (c == 0 && dr->prev_len >= len))
			return image_invalid(off,
					     "directory nid %" PRIu64
					     ": names out of order",
					     dr->ri->nid);
	}
	dr->prev = name;
	dr->prev_len = len;
	return 0;
}

/*
 * One directory block: an array of dirents, then the names. The first
 * nameoff gives the number of dirents; name i runs to nameoff i + 1, the
 * last one to the end of the block or its first NUL.
 */
static int read_dir_block(struct dir_reader *dr, const uint8_t *block,
			  size_t len)
{
	const uint64_t block_off = (uint64_t)(block - dr->rd->data);
	const uint64_t nid = dr->ri->nid;
	size_t count, nameoff, next;
	int r;

	if (len < sizeof(struct erofs_dirent))
		return image_invalid(block_off,
				     "directory block of nid %" PRIu64
				     ": %zu bytes, too short",
				     nid, len);
	nameoff = get_le16(block + offsetof(struct erofs_dirent, nameoff));
	if (nameoff < sizeof(struct erofs_dirent) ||
	    nameoff % sizeof(struct erofs_dirent) || nameoff >= len)
		return image_invalid(block_off,
				     "directory block of nid %" PRIu64
				     ": bad first name offset %zu",
				     nid, nameoff);
	count = nameoff / sizeof(struct erofs_dirent);

	for (size_t i = 0; i < count; i++) {
		const uint8_t *dirent = block + i * sizeof(struct erofs_dirent);
		const uint64_t off =
			block_off + i * sizeof(struct erofs_dirent);
		const uint8_t *name = block + nameoff;
		size_t name_len;

		if (i + 1 < count) {
			next = get_le16(dirent + sizeof(struct erofs_dirent) +
					offsetof(struct erofs_dirent, nameoff));
			if (next <= nameoff || next > len)
				return image_invalid(
					off + sizeof(struct erofs_dirent),
					"directory block of nid %" PRIu64
					": name offset %zu out of order or beyond "
					"block",
					nid, next);
			name_len = next - nameoff;
		} else {
			next = len;
			name_len = strnlen((const char *)name, len - nameoff);
		}
		r = check_name(dr, name, name_len, off);
		if (r < 0)
			return r;
		nameoff = next;
		if ((name_len == 1 && name[0] == '.') ||
		    (name_len == 2 && name[0] == '.' && name[1] == '.'))
			continue;
		r = read_entry(dr, dirent, name, name_len, off);
		if (r < 0)
			return r;
	}
	return 0;
}

static int read_dir(struct reader *rd, const struct raw_inode *ri,
		    cfs_inode *dir, const struct place *at)
{
	struct dir_reader dr = {
		.rd = rd,
		.ri = ri,
		.dir = dir,
		.at = at,
	};
	uint64_t nblocks = CFS_DIV_ROUND_UP(ri->size, EROFS_BLKSIZ);
	int r;

	for (uint64_t blk = 0; blk < nblocks; blk++) {
		size_t len;
		const uint8_t *block = data_block(rd, ri, blk, &len);

		r = read_dir_block(&dr, block, len);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * Read inode @nid (referenced at @ref_off) and, for a directory, all below
 * it. *out receives a copy of its table entry; out->inode is NULL for an
 * overlay whiteout (a character device 0:0 that the writer added, not
 * from the source).
 */
static int read_inode(struct reader *rd, uint64_t nid, uint64_t ref_off,
		      const struct place *at, struct nid_entry *out)
{
	_cleanup_(xattr_list_free) struct xattr_list xl = { 0 };
	cfs_inode *inode = NULL;
	struct raw_inode ri;
	int r;

	r = parse_inode(rd, nid, ref_off, &ri);
	if (r < 0)
		return r;
	*out = (struct nid_entry){ .nid = nid, .raw_type = ri.mode & S_IFMT };
	if (S_ISCHR(ri.mode) && ri.i_u == 0)
		return 0;
	r = check_layout(rd, &ri);
	if (r < 0)
		return r;
	r = parse_xattrs(rd, &ri, &xl);
	if (r < 0)
		return r;
	r = make_inode(rd, &ri, &xl, &inode);
	if (r < 0)
		return r;
	/* In the table before its entries are read, so that a loop back to
	 * it is seen as a directory met twice. */
	r = nid_insert(rd->nids, nid, inode, out->raw_type);
	if (r < 0)
		return r;
	if (S_ISDIR(ri.mode)) {
		r = read_dir(rd, &ri, inode, at);
		if (r < 0)
			return r;
	}
	out->inode = inode;
	return 0;
}

/* ---- API ------------------------------------------------------------- */

int cfs_image_read(cfs_inode **root_out, const void *data, size_t len,
		   unsigned int *format_out)
{
	struct nid_table nids = { 0 };
	struct reader rd = { .data = data, .len = len, .nids = &nids };
	const uint64_t root_ref = EROFS_SUPER_OFFSET +
				  offsetof(struct erofs_super_block, root_nid);
	const struct place root_at = { 0 };
	struct nid_entry root = { 0 };
	unsigned int format = 0;
	uint16_t root_nid = 0;
	int r;

	r = read_header(&rd, &format);
	if (r < 0)
		return r;
	r = read_superblock(&rd, &root_nid);
	if (r < 0)
		return r;
	r = read_inode(&rd, root_nid, root_ref, &root_at, &root);
	if (r == 0 && (!root.inode || !S_ISDIR(root.raw_type)))
		r = image_invalid(root_ref, "root nid %u is not a directory",
				  root_nid);
	if (r == 0) {
		*root_out = cfs_inode_ref(root.inode);
		if (format_out)
			*format_out = format;
	}
	nid_table_free(&nids);
	return r;
}

int cfs_image_read_fd(cfs_inode **root_out, int fd, unsigned int *format_out)
{
	struct stat st;
	void *map;
	int r;

	if (fstat(fd, &st) < 0)
		return cfs_error_errno(errno, "composefs image: fstat");
	if (!S_ISREG(st.st_mode))
		return cfs_error(EINVAL, "composefs image: not a regular file");
	if (st.st_size == 0)
		return cfs_error(EINVAL, "composefs image: empty file");
	if ((uint64_t)st.st_size > SIZE_MAX)
		return cfs_error(EFBIG, "composefs image: %jd bytes",
				 (intmax_t)st.st_size);
	/* A file shrunk by someone else while mapped would raise SIGBUS;
	 * images are read from trusted storage or checked by fs-verity. */
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED)
		return cfs_error_errno(errno, "composefs image: mmap");
	r = cfs_image_read(root_out, map, (size_t)st.st_size, format_out);
	munmap(map, (size_t)st.st_size);
	return r;
}
