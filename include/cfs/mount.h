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

typedef struct cfs_mount_options {
	unsigned int version; /**< CFS_MOUNT_OPTIONS_VERSION */
	unsigned int flags; /**< none defined yet; must be 0 */
	/** The object directory (composefs' "basedir"); required. */
	const char *objects_dir;
	/** Both or neither: a writable overlay with this upper and work
	 * directory (same filesystem, as overlayfs requires). */
	const char *upperdir;
	const char *workdir;
	/** Without an upper dir the mount is always read-only. */
	cfs_verity_mode verity;
	/** If not NULL: the image file's fs-verity digest must equal it,
	 * checked in userspace when the kernel cannot measure it. */
	const uint8_t *expected_digest;
} cfs_mount_options;

#define CFS_MOUNT_OPTIONS_VERSION 1
#define CFS_MOUNT_OPTIONS_INIT                                                 \
	{                                                                      \
		CFS_MOUNT_OPTIONS_VERSION, 0, NULL, NULL, NULL,                \
			CFS_VERITY_AUTO, NULL                                  \
	}

/**
 * Mount @image at @target. Errors (one-line message): the image does not
 * parse or its digest differs, the target does not exist or is already a
 * mount point, overlayfs refuses the upper directory, verity is required
 * but missing. On error nothing is mounted.
 */
CFS_EXPORT int cfs_mount(const char *image, const char *target,
			 const cfs_mount_options *opts);

/** Unmount what cfs_mount() put at @target (-EINVAL if it is not an
 * overlay mount). */
CFS_EXPORT int cfs_umount(const char *target);

#ifdef __cplusplus
}
#endif

#endif
