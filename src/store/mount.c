/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Mounting the store's images, and the records that tell gc which images
 * are mounted: ROOT/mounts/<id>.json per target, <id> the first 16 bytes
 * of the SHA-256 of the target's real path, in hex. A writable mount keeps
 * its upper and work directories in ROOT/mounts/<id>/.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cfs/mount.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "store/store-internal.h"

/* Make mounts/<id>/@sub unless it exists; *@created tells which. */
static int make_dir(cfs_store *s, int dfd, const char *rel, const char *sub,
		    bool *created)
{
	*created = false;
	if (mkdirat(dfd, sub, 0755) == 0)
		*created = true;
	else if (errno != EEXIST)
		return cfs_error_errno(errno, "store %s: %s/%s", s->root, rel,
				       sub);
	return 0;
}

/* Parse the whole image, not just its header as cfs_mount() does: a
 * damaged image is refused before anything is recorded or mounted. */
static int check_image_parses(cfs_store *s, const char *ref, const char *hex)
{
	char name[CFS_DIGEST_HEX_SIZE + 8];
	_cleanup_close_ int fd = -1;
	cfs_inode *root = NULL;
	int r;

	snprintf(name, sizeof(name), "%s.cfs", hex);
	fd = openat(s->images_fd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cfs_error_errno(errno, "%s: store %s: images/%s", ref,
				       s->root, name);
	r = cfs_image_read_fd(&root, fd, NULL);
	cfs_inode_unref(root);
	if (r < 0)
		return cfs_error_prefix(-r, "%s: store %s: images/%s", ref,
					s->root, name);
	return 0;
}

static int pick_verity(cfs_store *s, const char *hex, cfs_verity_mode mode,
		       cfs_verity_mode *out)
{
	cfs_store_image img;
	int r;

	*out = mode;
	if (mode != CFS_VERITY_AUTO)
		return 0;
	r = cfs_store_inspect(s, hex, &img);
	if (r < 0)
		return r;
	/* Only the metadata knows about the objects too; the image file's
	 * own fs-verity (cfs_mount()'s AUTO) says nothing about them. */
	*out = img.complete && img.verity ? CFS_VERITY_REQUIRE : CFS_VERITY_OFF;
	cfs_store_image_clear(&img);
	return 0;
}

static int check_mount_options(const cfs_store_mount_options *o)
{
	if (!CFS_OPTIONS_VERSION_OK(o->version,
				    CFS_STORE_MOUNT_OPTIONS_VERSION) ||
	    (o->flags & ~CFS_STORE_MOUNT_WRITABLE))
		return cfs_error(EINVAL, "invalid store mount options");
	if (!o->upperdir != !o->workdir)
		return cfs_error(EINVAL,
				 "mount: upperdir and workdir go together");
	if ((o->flags & CFS_STORE_MOUNT_WRITABLE) && o->upperdir)
		return cfs_error(EINVAL, "mount: a writable mount has its own "
					 "upper and work directories");
	return 0;
}

int cfs_store_mount(cfs_store *s, const char *ref, const char *target,
		    const cfs_store_mount_options *opts)
{
	static const cfs_store_mount_options defaults =
		CFS_STORE_MOUNT_OPTIONS_INIT;
	cfs_mount_options mo = CFS_MOUNT_OPTIONS_INIT;
	_cleanup_free_ char *abs = NULL, *image = NULL;
	_cleanup_free_ char *upper = NULL, *work = NULL;
	char hex[CFS_DIGEST_HEX_SIZE + 1], id[MOUNT_ID_HEX + 1];
	char rec_name[MOUNT_ID_HEX + 8];
	bool writable, made_dir = false, made_upper = false, made_work = false;
	bool recorded = false;
	int mfd = -1, idfd = -1, r;

	if (!opts)
		opts = &defaults;
	r = check_mount_options(opts);
	if (r < 0)
		return r;
	writable = opts->flags & CFS_STORE_MOUNT_WRITABLE;
	abs = realpath(target, NULL);
	if (!abs)
		return cfs_error_errno(errno, "target %s", target);
	r = store_mount_id(abs, id);
	if (r < 0)
		return r;
	snprintf(rec_name, sizeof(rec_name), "%s.json", id);

	/* Shared for the whole mount: gc (exclusive) cannot remove the
	 * image between the lookup and the record that keeps it. */
	r = store_lock(s, LOCK_SH);
	if (r < 0)
		return r;
	mfd = store_open_mounts(s, true);
	if (mfd < 0) {
		r = mfd;
		goto out;
	}
	/* Mounts and umounts of this store take turns, so that two mounts
	 * of one target cannot overwrite each other's record. */
	if (flock(mfd, LOCK_EX) < 0) {
		r = cfs_error_errno(errno, "store %s: locking " MOUNTS_DIR,
				    s->root);
		goto out;
	}
	r = cfs_store_resolve(s, ref, hex);
	if (r < 0)
		goto out;
	r = check_image_parses(s, ref, hex);
	if (r < 0)
		goto out;
	{
		_cleanup_free_ char *missing = NULL;
		r = store_broken_check(s, hex, &missing);
		if (r > 0)
			r = cfs_error(
				EIO,
				"%s: image %.12s is broken: fsck --repair "
				"removed its object objects/%s (corrupt "
				"or missing); import the image again to "
				"restore it",
				ref, hex, missing);
		if (r < 0)
			goto out;
	}
	/* cfs_mount() checks this too, but only after the record of the
	 * mount already there would have been replaced. */
	if (store_is_mount_root(abs)) {
		r = cfs_error(EBUSY, "target %s: already a mount point", abs);
		goto out;
	}
	r = pick_verity(s, hex, opts->verity, &mo.verity);
	if (r < 0)
		goto out;
	if (asprintf(&image, "%s/images/%s.cfs", s->root, hex) < 0) {
		image = NULL;
		r = -ENOMEM;
		goto out;
	}
	if (writable) {
		char rel[sizeof(MOUNTS_DIR) + MOUNT_ID_HEX + 1];

		snprintf(rel, sizeof(rel), MOUNTS_DIR "/%s", id);
		r = make_dir(s, mfd, MOUNTS_DIR, id, &made_dir);
		if (r < 0)
			goto out;
		idfd = openat(mfd, id,
			      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (idfd < 0) {
			r = cfs_error_errno(errno, "store %s: %s", s->root,
					    rel);
			goto out;
		}
		r = make_dir(s, idfd, rel, "upper", &made_upper);
		if (r == 0)
			r = make_dir(s, idfd, rel, "work", &made_work);
		if (r < 0)
			goto out;
		if (asprintf(&upper, "%s/%s/upper", s->root, rel) < 0 ||
		    asprintf(&work, "%s/%s/work", s->root, rel) < 0) {
			r = -ENOMEM;
			goto out;
		}
		mo.upperdir = upper;
		mo.workdir = work;
	} else {
		mo.upperdir = opts->upperdir;
		mo.workdir = opts->workdir;
	}
	r = store_mount_record_write(s, mfd, id, abs, hex, writable);
	if (r < 0)
		goto out;
	recorded = true;
	mo.objects_dir = cfs_store_objects_dir(s);
	mo.expected_digest = opts->expected_digest;
	mo.idmap = opts->version >= 2 ? opts->idmap : NULL;
	r = cfs_mount(image, abs, &mo);
out:
	if (r < 0) {
		if (recorded)
			unlinkat(mfd, rec_name, 0);
		if (made_dir) {
			store_rm_rf_at(mfd, id);
		} else if (idfd >= 0) {
			if (made_upper)
				store_rm_rf_at(idfd, "upper");
			if (made_work)
				store_rm_rf_at(idfd, "work");
		}
	}
	cfs_closep(&idfd);
	cfs_closep(&mfd); /* releases the flock */
	store_lock(s, LOCK_UN);
	return r;
}

int cfs_store_umount(cfs_store *s, const char *target, unsigned int flags)
{
	_cleanup_free_ char *abs = NULL;
	struct mount_record rec = { 0 };
	char id[MOUNT_ID_HEX + 1], rec_name[MOUNT_ID_HEX + 8];
	_cleanup_close_ int mfd = -1;
	int r;

	if (flags & ~CFS_STORE_UMOUNT_DELETE_UPPER)
		return cfs_error(EINVAL, "invalid store umount flags 0x%x",
				 flags);
	abs = realpath(target, NULL);
	if (!abs)
		return cfs_error_errno(errno, "target %s", target);
	r = store_mount_id(abs, id);
	if (r < 0)
		return r;
	snprintf(rec_name, sizeof(rec_name), "%s.json", id);
	mfd = store_open_mounts(s, false);
	if (mfd == -ENOENT)
		return cfs_error(ENOENT, "%s: not mounted from store %s", abs,
				 s->root);
	if (mfd < 0)
		return mfd;
	if (flock(mfd, LOCK_EX) < 0)
		return cfs_error_errno(errno, "store %s: locking " MOUNTS_DIR,
				       s->root);
	r = store_mount_record_read(mfd, rec_name, &rec);
	if (r == -ENOENT || (r == 0 && strcmp(rec.target, abs) != 0))
		r = cfs_error(ENOENT, "%s: not mounted from store %s", abs,
			      s->root);
	else if (r < 0)
		r = cfs_error_errno(-r, "store %s: " MOUNTS_DIR "/%s", s->root,
				    rec_name);
	/* Not a mount point any more: the record is stale and goes. */
	if (r == 0 && store_is_mount_root(abs))
		r = cfs_umount(abs);
	if (r == 0 && unlinkat(mfd, rec_name, 0) < 0 && errno != ENOENT)
		r = cfs_error_errno(errno, "store %s: " MOUNTS_DIR "/%s",
				    s->root, rec_name);
	if (r == 0 && (flags & CFS_STORE_UMOUNT_DELETE_UPPER)) {
		r = store_rm_rf_at(mfd, id);
		if (r < 0)
			r = cfs_error_errno(-r,
					    "store %s: removing " MOUNTS_DIR
					    "/%s",
					    s->root, id);
	}
	store_mount_record_clear(&rec);
	return r;
}
