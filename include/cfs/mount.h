/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * libcfs: mounting a composefs image as a container root file system.
 *
 * The image (EROFS) is mounted read-only straight from its file and never
 * attached anywhere visible; overlayfs stacks it over the object
 * directory, given as a data-only lower layer, with an optional upper and
 * work directory for a writable root. The result appears at the target in
 * one step (move_mount), so a target is either fully mounted or untouched.
 */
#ifndef CFS_MOUNT_H
#define CFS_MOUNT_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** How overlayfs checks the objects' fs-verity digests (overlay "verity="). */
typedef enum cfs_verity_mode {
	/** "require" when the image file has fs-verity enabled, else "off" */
	CFS_VERITY_AUTO = 0,
	CFS_VERITY_OFF,
	CFS_VERITY_ON,
	CFS_VERITY_REQUIRE,
} cfs_verity_mode;

/** Mount flags (cfs_mount_options.flags). */
/** Read-only even with an upper directory. */
#define CFS_MOUNT_READONLY (1u << 0)
/** The usual VFS mount attributes of the overlay mount. */
#define CFS_MOUNT_NOSUID (1u << 1)
#define CFS_MOUNT_NODEV (1u << 2)
#define CFS_MOUNT_NOEXEC (1u << 3)
#define CFS_MOUNT_FLAGS_ALL                                                    \
	(CFS_MOUNT_READONLY | CFS_MOUNT_NOSUID | CFS_MOUNT_NODEV |             \
	 CFS_MOUNT_NOEXEC)

typedef struct cfs_mount_options {
	unsigned int version; /**< CFS_MOUNT_OPTIONS_VERSION */
	/** CFS_MOUNT_* flags; unknown bits are -EINVAL. */
	unsigned int flags;
	/** The object directory (composefs' "basedir"); required. */
	const char *objects_dir;
	/** Both or neither: a writable overlay with this upper and work
	 * directory (same filesystem, as overlayfs requires). Without an
	 * upper dir the mount is always read-only. */
	const char *upperdir;
	const char *workdir;
	/** The overlay's "verity=". With on or require, reading a file whose
	 * object has no fs-verity (or on a kernel without fs-verity) fails
	 * with EIO; the mount itself succeeds. Off leaves the option out, so
	 * that kernels before 6.6 mount too. */
	cfs_verity_mode verity;
	/** If not NULL: the image file's fs-verity digest must equal it,
	 * checked in userspace when the kernel cannot measure it. */
	const uint8_t *expected_digest;
	/** Since version 2: if not NULL, an idmapped mount (for user
	 * namespaces: see cfs_idmap_parse()); the EROFS layer and the
	 * object directory are idmapped under the overlay. Needs the new
	 * mount API and Linux 6.15 (-EOPNOTSUPP otherwise). */
	const char *idmap;
} cfs_mount_options;

/* Version 1 (without idmap) is still accepted. */
#define CFS_MOUNT_OPTIONS_VERSION 2
#define CFS_MOUNT_OPTIONS_INIT                                                 \
	{                                                                      \
		CFS_MOUNT_OPTIONS_VERSION, 0, NULL, NULL, NULL,                \
			CFS_VERITY_AUTO, NULL, NULL                            \
	}

/**
 * Check an idmap as cfs_mount_options.idmap takes it, and make the user
 * namespace that carries it: *@userns_fd, to close. The idmap is
 *  - "user:NAME": what rootless podman gives NAME's containers: the
 *    image's 0 is NAME's uid (gid), 1 and on its first range in
 *    /etc/subuid (/etc/subgid);
 *  - entries "[u:|g:]FROM:TO:COUNT" separated by spaces or commas: the
 *    image's ids FROM.. appear as TO.. (u: uids only, g: gids only,
 *    neither: both), as mount(8)'s X-mount.idmap;
 *  - a path to a user namespace, "/proc/PID/ns/user".
 * -EINVAL with a message naming what is wrong.
 */
CFS_EXPORT int cfs_idmap_userns(const char *idmap, int *userns_fd);

/**
 * Mount @image at @target. Errors (one-line message): the image is not a
 * composefs image (header and superblock are checked, not every inode: the
 * kernel validates the rest) or its digest differs (-EINVAL), the target
 * does not exist (-ENOENT), is not a directory (-ENOTDIR) or is already a
 * mount point (-EBUSY), overlayfs refuses the upper directory. On error
 * nothing is mounted.
 *
 * The EROFS mount of the image is never attached anywhere: the overlay is
 * the only mount that appears (kernels from 6.15 on; older ones see the
 * EROFS mount for a moment on a private temporary directory). Falls back
 * to mount(2) without the new mount API and to a loop device where EROFS
 * cannot mount a file directly (before Linux 6.12).
 */
CFS_EXPORT int cfs_mount(const char *image, const char *target,
			 const cfs_mount_options *opts);

/** Unmount what cfs_mount() put at @target (-EINVAL if @target is not
 * the root of an overlay mount; -EBUSY while in use). */
CFS_EXPORT int cfs_umount(const char *target);

#ifdef __cplusplus
}
#endif

#endif
