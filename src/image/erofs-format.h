/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * The on-disk format, in one place: the composefs header, the EROFS
 * structures that composefs images use (uncompressed, 4 KiB blocks), and
 * the overlayfs xattr names. All integers are little-endian on disk.
 *
 * Layout of a composefs image (format versions 0 and 1):
 *   0     composefs header (32 bytes), zero padding
 *   1024  EROFS superblock (128 bytes)
 *   1152  inodes, each 32-byte aligned; nid = offset / 32 (meta_blkaddr 0)
 *   ...   shared xattrs (xattr_blkaddr = first block holding them)
 *   ...   data blocks (directory blocks, non-inline file blocks)
 */
#ifndef CFS_EROFS_FORMAT_H
#define CFS_EROFS_FORMAT_H

#include <stdint.h>
#include <string.h>

/* composefs header at offset 0 */
#define CFS_HEADER_MAGIC 0xd078629aU
#define CFS_HEADER_VERSION 1
#define CFS_HEADER_FLAG_HAS_ACL (1u << 0)

struct cfs_header {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t composefs_version;
	uint32_t unused[4];
} __attribute__((packed));

#define EROFS_SUPER_MAGIC_V1 0xE0F5E1E2U
#define EROFS_SUPER_OFFSET 1024
#define EROFS_BLKSIZ_BITS 12
#define EROFS_BLKSIZ 4096u
#define EROFS_SLOTSIZE_BITS 5
#define EROFS_SLOTSIZE 32u

#define EROFS_FEATURE_COMPAT_SB_CHKSUM 0x00000001
#define EROFS_FEATURE_COMPAT_MTIME 0x00000002
#define EROFS_FEATURE_COMPAT_XATTR_FILTER 0x00000004

struct erofs_super_block {
	uint32_t magic;
	uint32_t checksum;
	uint32_t feature_compat;
	uint8_t blkszbits;
	uint8_t sb_extslots;
	uint16_t root_nid;
	uint64_t inos;
	uint64_t build_time; /* mtime of compact inodes */
	uint32_t build_time_nsec;
	uint32_t blocks;
	uint32_t meta_blkaddr;
	uint32_t xattr_blkaddr;
	uint8_t uuid[16];
	uint8_t volume_name[16];
	uint32_t feature_incompat;
	uint16_t u1;
	uint16_t extra_devices;
	uint16_t devt_slotoff;
	uint8_t dirblkbits;
	uint8_t xattr_prefix_count;
	uint32_t xattr_prefix_start;
	uint64_t packed_nid;
	uint8_t xattr_filter_reserved;
	uint8_t reserved2[23];
} __attribute__((packed));

/* i_format: bit 0 version (0 compact, 1 extended), bits 1-3 data layout */
#define EROFS_I_VERSION_BIT 0
#define EROFS_I_DATALAYOUT_BIT 1
#define EROFS_INODE_FLAT_PLAIN 0
#define EROFS_INODE_FLAT_INLINE 2
#define EROFS_INODE_CHUNK_BASED 4
#define EROFS_CHUNK_FORMAT_BLKBITS_MASK 0x001F
#define EROFS_CHUNK_FORMAT_INDEXES 0x0020
#define EROFS_NULL_ADDR 0xFFFFFFFFu

struct erofs_inode_compact {
	uint16_t i_format;
	uint16_t i_xattr_icount;
	uint16_t i_mode;
	uint16_t i_nlink;
	uint32_t i_size;
	uint32_t i_reserved;
	uint32_t i_u; /* raw_blkaddr, rdev, or chunk format (low 16 bits) */
	uint32_t i_ino;
	uint16_t i_uid;
	uint16_t i_gid;
	uint32_t i_reserved2;
} __attribute__((packed));

struct erofs_inode_extended {
	uint16_t i_format;
	uint16_t i_xattr_icount;
	uint16_t i_mode;
	uint16_t i_reserved;
	uint64_t i_size;
	uint32_t i_u;
	uint32_t i_ino;
	uint32_t i_uid;
	uint32_t i_gid;
	uint64_t i_mtime;
	uint32_t i_mtime_nsec;
	uint32_t i_nlink;
	uint8_t i_reserved2[16];
} __attribute__((packed));

struct erofs_xattr_ibody_header {
	uint32_t h_name_filter; /* bit set = name hash NOT present */
	uint8_t h_shared_count;
	uint8_t h_reserved2[7];
	/* followed by h_shared_count __le32 shared xattr ids */
} __attribute__((packed));

struct erofs_xattr_entry {
	uint8_t e_name_len;
	uint8_t e_name_index;
	uint16_t e_value_size;
	/* followed by the name suffix and the value, padded to 4 bytes */
} __attribute__((packed));

struct erofs_dirent {
	uint64_t nid;
	uint16_t nameoff;
	uint8_t file_type;
	uint8_t reserved;
} __attribute__((packed));

#define EROFS_XATTR_INDEX_USER 1
#define EROFS_XATTR_INDEX_POSIX_ACL_ACCESS 2
#define EROFS_XATTR_INDEX_POSIX_ACL_DEFAULT 3
#define EROFS_XATTR_INDEX_TRUSTED 4
#define EROFS_XATTR_INDEX_SECURITY 6
/* composefs never shares more than this many xattrs per inode (it is the
 * long-prefix flag bit of the index byte in newer EROFS). */
#define EROFS_XATTR_SHARED_MAX 0x80

#define EROFS_XATTR_FILTER_BITS 32
#define EROFS_XATTR_FILTER_DEFAULT 0xFFFFFFFFu
#define EROFS_XATTR_FILTER_SEED 0x25BBE08Fu

#define EROFS_FT_UNKNOWN 0
#define EROFS_FT_REG_FILE 1
#define EROFS_FT_DIR 2
#define EROFS_FT_CHRDEV 3
#define EROFS_FT_BLKDEV 4
#define EROFS_FT_FIFO 5
#define EROFS_FT_SOCK 6
#define EROFS_FT_SYMLINK 7

_Static_assert(sizeof(struct cfs_header) == 32, "composefs header");
_Static_assert(sizeof(struct erofs_super_block) == 128, "superblock");
_Static_assert(sizeof(struct erofs_inode_compact) == 32, "compact inode");
_Static_assert(sizeof(struct erofs_inode_extended) == 64, "extended inode");
_Static_assert(sizeof(struct erofs_xattr_ibody_header) == 12, "ibody");
_Static_assert(sizeof(struct erofs_xattr_entry) == 4, "xattr entry");
_Static_assert(sizeof(struct erofs_dirent) == 12, "dirent");

/* overlayfs xattrs (Documentation/filesystems/overlayfs.rst) */
#define OVL_XATTR_PREFIX "trusted.overlay."
#define OVL_XATTR_ESCAPE_PREFIX "trusted.overlay.overlay."
#define OVL_XATTR_USER_PREFIX "user.overlay."
#define OVL_XATTR_METACOPY OVL_XATTR_PREFIX "metacopy"
#define OVL_XATTR_REDIRECT OVL_XATTR_PREFIX "redirect"
#define OVL_XATTR_OPAQUE OVL_XATTR_PREFIX "opaque"
#define OVL_XATTR_ESC_WHITEOUT OVL_XATTR_ESCAPE_PREFIX "whiteout"
#define OVL_XATTR_ESC_WHITEOUTS OVL_XATTR_ESCAPE_PREFIX "whiteouts"
#define OVL_XATTR_ESC_OPAQUE OVL_XATTR_ESCAPE_PREFIX "opaque"
#define OVL_XATTR_USER_WHITEOUT OVL_XATTR_USER_PREFIX "whiteout"
#define OVL_XATTR_USER_WHITEOUTS OVL_XATTR_USER_PREFIX "whiteouts"
#define OVL_XATTR_USER_OPAQUE OVL_XATTR_USER_PREFIX "opaque"

/* trusted.overlay.metacopy value: version 0, length, flags, hash algo,
 * then the fs-verity digest. */
#define OVL_METACOPY_HEADER_SIZE 4
#define OVL_METACOPY_ALG_SHA256 1 /* FS_VERITY_HASH_ALG_SHA256 */

/* The dirent file type of a mode. */
static inline uint8_t cfs_erofs_file_type(uint32_t mode)
{
	switch (mode & 0170000) {
	case 0100000:
		return EROFS_FT_REG_FILE;
	case 0040000:
		return EROFS_FT_DIR;
	case 0020000:
		return EROFS_FT_CHRDEV;
	case 0060000:
		return EROFS_FT_BLKDEV;
	case 0010000:
		return EROFS_FT_FIFO;
	case 0140000:
		return EROFS_FT_SOCK;
	case 0120000:
		return EROFS_FT_SYMLINK;
	default:
		return EROFS_FT_UNKNOWN;
	}
}

/*
 * EROFS short xattr name prefixes. Matching is a plain prefix test in this
 * order, as composefs does; a name with no known prefix is stored whole
 * with index 0.
 */
static inline uint8_t cfs_erofs_xattr_index(const char *name,
					    const char **suffix)
{
	static const struct {
		const char *prefix;
		uint8_t index;
	} prefixes[] = {
		{ "user.", EROFS_XATTR_INDEX_USER },
		{ "system.posix_acl_access",
		  EROFS_XATTR_INDEX_POSIX_ACL_ACCESS },
		{ "system.posix_acl_default",
		  EROFS_XATTR_INDEX_POSIX_ACL_DEFAULT },
		{ "trusted.", EROFS_XATTR_INDEX_TRUSTED },
		{ "security.", EROFS_XATTR_INDEX_SECURITY },
	};

	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		size_t n = strlen(prefixes[i].prefix);
		if (strncmp(name, prefixes[i].prefix, n) == 0) {
			*suffix = name + n;
			return prefixes[i].index;
		}
	}
	*suffix = name;
	return 0;
}

/* The prefix string of an index (for the reader), NULL if unknown. */
static inline const char *cfs_erofs_xattr_prefix(uint8_t index)
{
	switch (index) {
	case 0:
		return "";
	case EROFS_XATTR_INDEX_USER:
		return "user.";
	case EROFS_XATTR_INDEX_POSIX_ACL_ACCESS:
		return "system.posix_acl_access";
	case EROFS_XATTR_INDEX_POSIX_ACL_DEFAULT:
		return "system.posix_acl_default";
	case EROFS_XATTR_INDEX_TRUSTED:
		return "trusted.";
	case EROFS_XATTR_INDEX_SECURITY:
		return "security.";
	default:
		return NULL;
	}
}

/*
 * Device numbers are stored in 32 bits in the kernel's "new" encoding
 * (new_encode_dev): minor bits 0-7, major bits 8-19, minor bits 20-31.
 * The tree holds glibc dev_t values; only major < 4096 and minor < 2^20
 * fit, as for any 32-bit dev_t.
 */
#include <sys/sysmacros.h>
static inline int cfs_rdev_encode(uint64_t rdev, uint32_t *out)
{
	uint64_t ma = major(rdev), mi = minor(rdev);

	if (ma > 0xfff || mi > 0xfffff)
		return -1;
	*out = (uint32_t)((mi & 0xff) | (ma << 8) | ((mi & ~0xffull) << 12));
	return 0;
}

static inline uint64_t cfs_rdev_decode(uint32_t v)
{
	return makedev((v & 0xfff00) >> 8, (v & 0xff) | ((v >> 12) & 0xfff00));
}

#endif
