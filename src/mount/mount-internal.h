/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * mount(8)-style option strings for cfs_mount(): what mount.cfs receives
 * after "-o". Kept in the library, apart from the tool, so that it can be
 * unit-tested and fuzzed.
 */
#ifndef CFS_MOUNT_INTERNAL_H
#define CFS_MOUNT_INTERNAL_H

#include <stdbool.h>

#include <cfs/mount.h>

/* Longest option string accepted; mount(8) itself stops at a page. */
#define CFS_MOUNT_OPTSTR_MAX 65536

/* Ignore options this parser does not know (mount -s, "sloppy"). */
#define CFS_MOUNT_PARSE_SLOPPY (1u << 0)

struct cfs_mount_args {
	/* Owned strings; NULL when not given. */
	char *objects_dir;
	char *upperdir;
	char *workdir;
	char *idmap; /* idmap=: cfs_mount_options.idmap */
	bool have_digest;
	uint8_t digest[CFS_DIGEST_SIZE];
	cfs_verity_mode verity;
	/* CFS_MOUNT_* flags; "ro" sets CFS_MOUNT_READONLY, "rw" clears it. */
	unsigned int flags;
};

/*
 * Parse @optstr ("objects=DIR,upperdir=DIR,workdir=DIR,digest=HEX,
 * verity=off|on|require|auto,idmap=MAP,ro|rw,nosuid,...") into @args,
 * which must be
 * zeroed or freshly cleared. A value may be put in double quotes to hold
 * commas. -EINVAL with a message naming the option on any bad or unknown
 * option, a value given twice, a missing objects= or an upperdir= without
 * workdir= (or the reverse). @args is cleared on error.
 */
int cfs_mount_args_parse(struct cfs_mount_args *args, const char *optstr,
			 unsigned int parse_flags);
/* Free the strings and zero @args. */
void cfs_mount_args_clear(struct cfs_mount_args *args);
/* Point @opts at @args (borrowed: valid while @args is). */
void cfs_mount_args_to_options(const struct cfs_mount_args *args,
			       cfs_mount_options *opts);

/*
 * For tests only: the environment variable CFS_MOUNT_FORCE, a comma list,
 * makes cfs_mount() take the paths meant for older kernels on a new one:
 * "legacy" (mount(2), as without fsopen), "attach" (the EROFS mount
 * attached to a temporary directory, as before Linux 6.15), "loop" (a loop
 * device, as before file-backed EROFS). Unknown words are ignored.
 */
#define CFS_MOUNT_FORCE_LEGACY (1u << 0)
#define CFS_MOUNT_FORCE_ATTACH (1u << 1)
#define CFS_MOUNT_FORCE_LOOP (1u << 2)

unsigned int cfs_mount_force_from_env(void);

/* idmap.c: make @mount_fd (a detached mount) idmapped by @userns_fd;
 * an idmapped detached clone of @path in *@out_fd. @what names it in
 * messages. */
int cfs_idmap_mount(int mount_fd, int userns_fd, const char *what);
int cfs_idmap_clone(const char *path, int userns_fd, int *out_fd);

#endif
