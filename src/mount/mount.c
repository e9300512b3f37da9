/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Mounting a composefs image: EROFS read-only straight from the image file
 * (Linux 6.12+; a loop device before), never attached anywhere, used as
 * the lower layer of an overlay whose data-only lower layer is the object
 * directory. The overlay is created detached too and appears at the target
 * with one move_mount(), so the target is either fully mounted or
 * untouched.
 *
 * The new mount API is called through syscall() with the constants of
 * glibc's <sys/mount.h> (2.36+); <linux/mount.h> is not included because
 * the two clash in glibc 2.36.
 *
 * Fallbacks, each for an older kernel:
 *  - no fsopen() (ENOSYS): mount(2) of EROFS on a private temporary
 *    directory, mount(2) of the overlay with "lowerdir=TMP::OBJECTS", then
 *    a lazy unmount of the temporary EROFS mount (the overlay keeps its
 *    own private clone of every layer);
 *  - EROFS cannot mount a regular file (ENOTBLK): a read-only loop device
 *    with autoclear, configured in one step with LOOP_CONFIGURE;
 *  - overlayfs refuses a detached mount as a layer (before 6.15, "failed
 *    to clone lowerpath") or knows no "lowerdir+" (before 6.7): the EROFS
 *    mount is attached to a private temporary directory while the overlay
 *    is set up.
 * CFS_MOUNT_FORCE (see mount-internal.h) selects these paths for testing.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/fsverity.h>
#include <linux/loop.h>

#include <cfs/image.h>
#include <cfs/mount.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "image/erofs-format.h"
#include "mount-internal.h"

/* <linux/magic.h> is not included: its EROFS_SUPER_MAGIC_V1 clashes with
 * the one of erofs-format.h. */
#define CFS_OVERLAYFS_SUPER_MAGIC 0x794c7630

/* The fs context log keeps this much of one kernel message. */
#define FS_LOG_MAX 256
/* Tries when another process takes the free loop device first. */
#define LOOP_TRIES 16

struct mount_ctx {
	const char *image; /* as given, for messages */
	const char *source; /* the overlay's source: the absolute image path */
	const char *target;
	const cfs_mount_options *opts;
	int image_fd;
	int target_fd;
	bool has_acl;
	bool readonly;
	const char *verity; /* overlay "verity=" value, NULL for off */
	unsigned int force; /* CFS_MOUNT_FORCE_* */
	char image_source[32]; /* /proc/self/fd/N of image_fd */
	int loop_fd;
	char loop_dev[32];
	/* the overlay's datadir+: the object directory, or the idmapped
	 * clone of it (/proc/self/fd/N) */
	const char *datadir;
	int userns_fd; /* the idmap's user namespace, or -1 */
};

static int sys_fsopen(const char *fsname, unsigned int flags)
{
	return (int)syscall(__NR_fsopen, fsname, flags);
}

static int sys_fsconfig(int fsfd, unsigned int cmd, const char *key,
			const void *value, int aux)
{
	return (int)syscall(__NR_fsconfig, fsfd, cmd, key, value, aux);
}

static int sys_fsmount(int fsfd, unsigned int flags, unsigned int attr_flags)
{
	return (int)syscall(__NR_fsmount, fsfd, flags, attr_flags);
}

static int sys_move_mount(int from_dfd, const char *from_path, int to_dfd,
			  const char *to_path, unsigned int flags)
{
	return (int)syscall(__NR_move_mount, from_dfd, from_path, to_dfd,
			    to_path, flags);
}

unsigned int cfs_mount_force_from_env(void)
{
	const char *env = getenv("CFS_MOUNT_FORCE");
	unsigned int force = 0;
	char buf[64], *tok, *save = NULL;

	if (!env || strlen(env) >= sizeof(buf))
		return 0;
	strcpy(buf, env);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (strcmp(tok, "legacy") == 0)
			force |= CFS_MOUNT_FORCE_LEGACY;
		else if (strcmp(tok, "attach") == 0)
			force |= CFS_MOUNT_FORCE_ATTACH;
		else if (strcmp(tok, "loop") == 0)
			force |= CFS_MOUNT_FORCE_LOOP;
	}
	return force;
}

/*
 * The reason the kernel gave, from the fs context's message log ("e ",
 * "w " or "i " and the text, one message per read). The last error wins
 * over warnings; reading also empties the log, so that a stale message
 * cannot explain a later failure.
 */
static void fs_log(int fsfd, char *out, size_t size)
{
	char buf[FS_LOG_MAX];
	bool have_error = false;

	out[0] = '\0';
	for (int i = 0; i < 64; i++) {
		ssize_t n = read(fsfd, buf, sizeof(buf) - 1);

		if (n <= 0)
			break;
		buf[n] = '\0';
		while (n > 0 && buf[n - 1] == '\n')
			buf[--n] = '\0';
		if (n < 3 || buf[1] != ' ')
			continue;
		if (buf[0] == 'e' || !have_error) {
			snprintf(out, size, "%s", buf + 2);
			have_error = buf[0] == 'e';
		}
	}
}

/* "WHAT: strerror (kernel's reason or @hint)", -err. */
__attribute__((format(printf, 4, 5))) static int
fs_fail(int fsfd, int err, const char *hint, const char *fmt, ...)
{
	char what[1024], why[FS_LOG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	why[0] = '\0';
	if (fsfd >= 0)
		fs_log(fsfd, why, sizeof(why));
	/* Hints explain refusals, which overlayfs reports as EINVAL. */
	if (!why[0] && hint && err == EINVAL)
		snprintf(why, sizeof(why), "%s", hint);
	if (why[0])
		return cfs_error(err, "%s: %s (%s)", what, strerror(err), why);
	return cfs_error(err, "%s: %s", what, strerror(err));
}

/* Set a string (or, with @value NULL, a flag) parameter; @shown names the
 * value in the message. */
static int fs_set(int fsfd, const char *fstype, const char *key,
		  const char *value, const char *shown, const char *hint)
{
	unsigned int cmd = value ? FSCONFIG_SET_STRING : FSCONFIG_SET_FLAG;

	if (sys_fsconfig(fsfd, cmd, key, value, 0) == 0)
		return 0;
	return fs_fail(fsfd, errno, hint, "%s: %s%s%s", fstype, key,
		       shown ? " " : "", shown ? shown : "");
}

/* ---- checks before mounting ------------------------------------------ */

/* The composefs header and the EROFS superblock: enough to refuse what is
 * not an image with a clear message; the kernel checks the rest. (A full
 * parse with cfs_image_read_fd() takes about 7 ms per MB of image.) */
static int check_image(struct mount_ctx *c)
{
	struct cfs_header h;
	struct erofs_super_block sb;
	struct stat st;
	ssize_t n;

	if (fstat(c->image_fd, &st) < 0)
		return cfs_error_errno(errno, "image %s", c->image);
	if (!S_ISREG(st.st_mode))
		return cfs_error(EINVAL, "image %s: not a regular file",
				 c->image);
	if ((uint64_t)st.st_size < EROFS_SUPER_OFFSET + sizeof(sb))
		return cfs_error(
			EINVAL,
			"image %s: not a composefs image (%lld bytes, too small)",
			c->image, (long long)st.st_size);
	n = pread(c->image_fd, &h, sizeof(h), 0);
	if (n == (ssize_t)sizeof(h))
		n = pread(c->image_fd, &sb, sizeof(sb), EROFS_SUPER_OFFSET);
	if (n < 0)
		return cfs_error_errno(errno, "image %s: read", c->image);
	if (n != (ssize_t)sizeof(sb))
		return cfs_error(EINVAL, "image %s: short read", c->image);
	if (le32toh(h.magic) != CFS_HEADER_MAGIC)
		return cfs_error(
			EINVAL,
			"image %s: not a composefs image (magic 0x%08x at offset 0)",
			c->image, le32toh(h.magic));
	if (le32toh(h.version) != CFS_HEADER_VERSION)
		return cfs_error(
			ENOTSUP,
			"image %s: composefs header version %u not supported",
			c->image, le32toh(h.version));
	if (le32toh(h.composefs_version) > CFS_FORMAT_MAX)
		return cfs_error(
			ENOTSUP,
			"image %s: composefs format version %u not supported",
			c->image, le32toh(h.composefs_version));
	if (le32toh(sb.magic) != EROFS_SUPER_MAGIC_V1)
		return cfs_error(
			EINVAL,
			"image %s: no EROFS superblock (magic 0x%08x at offset %d)",
			c->image, le32toh(sb.magic), EROFS_SUPER_OFFSET);
	if (sb.blkszbits != EROFS_BLKSIZ_BITS)
		return cfs_error(
			ENOTSUP,
			"image %s: EROFS block size 2^%u not supported",
			c->image, sb.blkszbits);
	if ((uint64_t)le32toh(sb.blocks) * EROFS_BLKSIZ > (uint64_t)st.st_size)
		return cfs_error(
			EINVAL,
			"image %s: truncated (%u blocks in the superblock, %lld bytes in the file)",
			c->image, le32toh(sb.blocks), (long long)st.st_size);
	c->has_acl = le32toh(h.flags) & CFS_HEADER_FLAG_HAS_ACL;
	return 0;
}

/* The kernel's fs-verity digest of the image: 0, or 1 when it has none
 * (no fs-verity on the file or in the kernel, or not SHA-256). */
static int measure_verity(int fd, uint8_t digest[CFS_DIGEST_SIZE])
{
	_Alignas(struct fsverity_digest)
		uint8_t buf[sizeof(struct fsverity_digest) + 64];
	struct fsverity_digest *d = (struct fsverity_digest *)buf;

	d->digest_size = 64;
	if (ioctl(fd, FS_IOC_MEASURE_VERITY, d) < 0)
		return 1;
	if (d->digest_algorithm != FS_VERITY_HASH_ALG_SHA256 ||
	    d->digest_size != CFS_DIGEST_SIZE)
		return 1;
	memcpy(digest, d->digest, CFS_DIGEST_SIZE);
	return 0;
}

/* Without fs-verity on the image this is a check at mount time only: the
 * file could still change afterwards. */
static int check_digest(struct mount_ctx *c)
{
	char want[CFS_DIGEST_HEX_SIZE + 1], got[CFS_DIGEST_HEX_SIZE + 1];
	uint8_t digest[CFS_DIGEST_SIZE];
	int r;

	if (measure_verity(c->image_fd, digest) != 0) {
		if (lseek(c->image_fd, 0, SEEK_SET) < 0)
			return cfs_error_errno(errno, "image %s: seek",
					       c->image);
		r = cfs_verity_digest_fd(c->image_fd, digest);
		if (r < 0)
			return cfs_error_prefix(
				-r, "image %s: fs-verity digest", c->image);
	}
	if (memcmp(digest, c->opts->expected_digest, CFS_DIGEST_SIZE) == 0)
		return 0;
	cfs_digest_to_hex(digest, got);
	cfs_digest_to_hex(c->opts->expected_digest, want);
	return cfs_error(EINVAL,
			 "image %s: fs-verity digest is %s, expected %s",
			 c->image, got, want);
}

static int pick_verity(struct mount_ctx *c)
{
	struct statx stx;

	switch (c->opts->verity) {
	case CFS_VERITY_AUTO:
		if (statx(c->image_fd, "", AT_EMPTY_PATH, 0, &stx) < 0)
			return cfs_error_errno(errno, "image %s: statx",
					       c->image);
		if (stx.stx_attributes & STATX_ATTR_VERITY)
			c->verity = "require";
		return 0;
	case CFS_VERITY_OFF:
		/* Left out rather than "off": kernels before 6.6 do not
		 * know the option, and off is the default. */
		return 0;
	case CFS_VERITY_ON:
		c->verity = "on";
		return 0;
	case CFS_VERITY_REQUIRE:
		c->verity = "require";
		return 0;
	}
	return cfs_error(EINVAL, "mount options: verity mode %d unknown",
			 (int)c->opts->verity);
}

static int open_target(struct mount_ctx *c)
{
	struct statx stx;

	c->target_fd = open(c->target, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (c->target_fd < 0)
		return cfs_error_errno(errno, "target %s", c->target);
	if (statx(c->target_fd, "", AT_EMPTY_PATH, 0, &stx) < 0)
		return cfs_error_errno(errno, "target %s: statx", c->target);
	/* STATX_ATTR_MOUNT_ROOT exists since 5.8, far older than the
	 * data-only overlay layers (6.5) this needs anyway. */
	if ((stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
	    (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
		return cfs_error(EBUSY, "target %s: already a mount point",
				 c->target);
	return 0;
}

static int check_dir(const char *what, const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return cfs_error_errno(errno, "%s %s", what, path);
	if (!S_ISDIR(st.st_mode))
		return cfs_error(ENOTDIR, "%s %s: not a directory", what, path);
	return 0;
}

/* ---- EROFS ------------------------------------------------------------ */

static void loop_detach(struct mount_ctx *c)
{
	/* Autoclear: the device goes away with its last user, which is
	 * the EROFS mount if there is one. */
	if (c->loop_fd >= 0)
		close(c->loop_fd);
	c->loop_fd = -1;
}

static int loop_attach(struct mount_ctx *c)
{
	_cleanup_close_ int ctl = -1;

	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return cfs_error_errno(
			errno,
			"erofs: image %s: the kernel cannot mount a file and /dev/loop-control fails",
			c->image);
	for (int tries = 0;; tries++) {
		struct loop_config cfg;
		long nr = ioctl(ctl, LOOP_CTL_GET_FREE);
		int fd, err;

		if (nr < 0)
			return cfs_error_errno(
				errno, "erofs: image %s: no free loop device",
				c->image);
		snprintf(c->loop_dev, sizeof(c->loop_dev), "/dev/loop%ld", nr);
		fd = open(c->loop_dev, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			return cfs_error_errno(errno, "erofs: image %s: %s",
					       c->image, c->loop_dev);
		memset(&cfg, 0, sizeof(cfg));
		cfg.fd = (uint32_t)c->image_fd;
		cfg.block_size = EROFS_BLKSIZ;
		cfg.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
		snprintf((char *)cfg.info.lo_file_name, LO_NAME_SIZE, "%s",
			 c->image);
		if (ioctl(fd, LOOP_CONFIGURE, &cfg) == 0) {
			c->loop_fd = fd;
			return 0;
		}
		err = errno;
		close(fd);
		/* Taken by someone else between GET_FREE and CONFIGURE. */
		if (err != EBUSY || tries + 1 >= LOOP_TRIES)
			return cfs_error_errno(
				err, "erofs: image %s: LOOP_CONFIGURE %s",
				c->image, c->loop_dev);
	}
}

/*
 * A detached read-only EROFS mount of @source: the mount fd, -ENOSYS
 * (without a message) when the kernel has no new mount API, -ENOTBLK
 * (without a message) when EROFS cannot mount a regular file.
 */
static int erofs_fsmount(struct mount_ctx *c, const char *source)
{
	_cleanup_close_ int fsfd = -1;
	char ignored[FS_LOG_MAX];
	int mfd;

	fsfd = sys_fsopen("erofs", FSOPEN_CLOEXEC);
	if (fsfd < 0) {
		/* EPERM: a seccomp filter may hide the new API this way;
		 * mount(2) then gives the real answer. */
		if (errno == ENOSYS || errno == EPERM)
			return -ENOSYS;
		if (errno == ENODEV)
			return cfs_error(
				ENODEV,
				"erofs: the kernel has no EROFS support (CONFIG_EROFS_FS)");
		return cfs_error_errno(errno, "erofs: fsopen");
	}
	if (sys_fsconfig(fsfd, FSCONFIG_SET_STRING, "source", source, 0) < 0)
		return fs_fail(fsfd, errno, NULL, "erofs: source %s", c->image);
	if (sys_fsconfig(fsfd, FSCONFIG_SET_FLAG, "ro", NULL, 0) < 0)
		return fs_fail(fsfd, errno, NULL, "erofs: ro");
	/* composefs images mark whether they hold ACLs; without any, the
	 * kernel need not look for them (a kernel without ACL support only
	 * logs a message: drain it). */
	if (!c->has_acl) {
		sys_fsconfig(fsfd, FSCONFIG_SET_FLAG, "noacl", NULL, 0);
		fs_log(fsfd, ignored, sizeof(ignored));
	}
	if (sys_fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
		if (errno == ENOTBLK && source == c->image_source)
			return -ENOTBLK;
		return fs_fail(fsfd, errno, NULL, "erofs: image %s%s%s",
			       c->image, c->loop_fd >= 0 ? " on " : "",
			       c->loop_fd >= 0 ? c->loop_dev : "");
	}
	mfd = sys_fsmount(fsfd, FSMOUNT_CLOEXEC,
			  MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV);
	if (mfd < 0)
		return fs_fail(fsfd, errno, NULL, "erofs: fsmount %s",
			       c->image);
	return mfd;
}

/* The same with a loop device where needed. */
static int erofs_mount_new(struct mount_ctx *c)
{
	int r = -ENOTBLK;

	if (!(c->force & CFS_MOUNT_FORCE_LOOP))
		r = erofs_fsmount(c, c->image_source);
	if (r != -ENOTBLK)
		return r;
	r = loop_attach(c);
	if (r < 0)
		return r;
	r = erofs_fsmount(c, c->loop_dev);
	loop_detach(c);
	return r;
}

/* mount(2) of EROFS on @dir, with a loop device where needed. */
static int erofs_mount_legacy(struct mount_ctx *c, const char *dir)
{
	const char *data = c->has_acl ? NULL : "noacl";
	const char *source = c->image_source;
	int r;

	if (c->force & CFS_MOUNT_FORCE_LOOP)
		errno = ENOTBLK;
	else if (mount(source, dir, "erofs", MS_RDONLY | MS_NODEV, data) == 0)
		return 0;
	if (errno != ENOTBLK)
		return cfs_error_errno(errno, "erofs: mount %s on %s", c->image,
				       dir);
	r = loop_attach(c);
	if (r < 0)
		return r;
	source = c->loop_dev;
	r = 0;
	if (mount(source, dir, "erofs", MS_RDONLY | MS_NODEV, data) < 0)
		r = cfs_error_errno(errno, "erofs: mount %s (%s) on %s",
				    c->image, source, dir);
	loop_detach(c);
	return r;
}

/* A directory for the short life of an attached EROFS mount, in /run when
 * there is one (root only, not shared with users) else in /tmp. */
static int make_tmpdir(char dir[64])
{
	snprintf(dir, 64, "/run/.cfs-erofs-XXXXXX");
	if (mkdtemp(dir))
		return 0;
	snprintf(dir, 64, "/tmp/.cfs-erofs-XXXXXX");
	if (mkdtemp(dir))
		return 0;
	return cfs_error_errno(errno, "erofs: temporary directory %s", dir);
}

static void remove_tmpdir(const char *dir, bool mounted)
{
	/* Lazily: the overlay keeps its own private clone of the layer. */
	if (mounted)
		umount2(dir, MNT_DETACH);
	rmdir(dir);
}

/* ---- overlay ---------------------------------------------------------- */

static unsigned int overlay_attrs(const struct mount_ctx *c)
{
	unsigned int attrs = 0, flags = c->opts->flags;

	if (c->readonly)
		attrs |= MOUNT_ATTR_RDONLY;
	if (flags & CFS_MOUNT_NOSUID)
		attrs |= MOUNT_ATTR_NOSUID;
	if (flags & CFS_MOUNT_NODEV)
		attrs |= MOUNT_ATTR_NODEV;
	if (flags & CFS_MOUNT_NOEXEC)
		attrs |= MOUNT_ATTR_NOEXEC;
	return attrs;
}

static const char upper_hint[] =
	"overlayfs refuses this upper directory; not on one filesystem with the work directory, or on one it cannot write to? see dmesg";

/*
 * The overlay over @lower with the new mount API, moved to the target.
 * -ENOSYS (no message) when this kernel's overlayfs cannot take the
 * parameters one by one (before 6.7: no "lowerdir+"). When @retry is not
 * NULL, it is set if creating the overlay failed with EINVAL, which is
 * what kernels before 6.15 answer for a detached lower layer.
 */
static int overlay_mount_new(struct mount_ctx *c, const char *lower,
			     bool *retry)
{
	const cfs_mount_options *o = c->opts;
	_cleanup_close_ int fsfd = -1, mfd = -1;
	char ignored[FS_LOG_MAX];
	char shown[1024];
	int r;

	fsfd = sys_fsopen("overlay", FSOPEN_CLOEXEC);
	if (fsfd < 0) {
		if (errno == ENODEV)
			return cfs_error(
				ENODEV,
				"overlay: the kernel has no overlayfs support (CONFIG_OVERLAY_FS)");
		return cfs_error_errno(errno, "overlay: fsopen");
	}
	/* Before overlayfs took parameters itself (6.5), fsconfig() stored
	 * anything and the errors came at the end, without a word. */
	if (sys_fsconfig(fsfd, FSCONFIG_SET_STRING, "unsupported",
			 "unsupported", 0) == 0)
		return -ENOSYS;
	fs_log(fsfd, ignored, sizeof(ignored));
	r = fs_set(fsfd, "overlay", "source", c->source, c->source, NULL);
	if (r >= 0)
		r = fs_set(fsfd, "overlay", "metacopy", "on", "on", NULL);
	if (r >= 0)
		r = fs_set(fsfd, "overlay", "redirect_dir", "on", "on", NULL);
	if (r >= 0 && c->verity)
		r = fs_set(fsfd, "overlay", "verity", c->verity, c->verity,
			   "overlay verity needs Linux 6.6");
	if (r < 0)
		return r;
	if (sys_fsconfig(fsfd, FSCONFIG_SET_STRING, "lowerdir+", lower, 0) <
	    0) {
		if (errno == EINVAL)
			return -ENOSYS;
		snprintf(shown, sizeof(shown), "(EROFS mount of %s)", c->image);
		return fs_fail(fsfd, errno, NULL, "overlay: lowerdir+ %s",
			       shown);
	}
	r = fs_set(fsfd, "overlay", "datadir+", c->datadir, o->objects_dir,
		   NULL);
	if (r >= 0 && o->upperdir)
		r = fs_set(fsfd, "overlay", "upperdir", o->upperdir,
			   o->upperdir, upper_hint);
	if (r >= 0 && o->workdir)
		r = fs_set(fsfd, "overlay", "workdir", o->workdir, o->workdir,
			   upper_hint);
	if (r < 0)
		return r;
	if (sys_fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
		int err = errno;

		if (retry && err == EINVAL)
			*retry = true;
		if (o->upperdir)
			return fs_fail(fsfd, err, upper_hint,
				       "overlay: upperdir %s, workdir %s",
				       o->upperdir, o->workdir);
		return fs_fail(fsfd, err, NULL, "overlay: create (objects %s)",
			       o->objects_dir);
	}
	mfd = sys_fsmount(fsfd, FSMOUNT_CLOEXEC, overlay_attrs(c));
	if (mfd < 0)
		return fs_fail(fsfd, errno, NULL, "overlay: fsmount");
	if (sys_move_mount(mfd, "", c->target_fd, "",
			   MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) <
	    0)
		return cfs_error_errno(errno, "overlay: move_mount to %s",
				       c->target);
	/* Closing mfd now leaves the mount where it is. */
	return 0;
}

/* mount(2) takes the options as one string, where ',' and ':' separate
 * and the backslash escapes; paths holding them are refused rather than
 * escaped (the escaping rules changed over kernel versions). */
static int legacy_path_ok(const char *what, const char *path)
{
	if (strpbrk(path, ",:\\"))
		return cfs_error(
			EINVAL,
			"overlay: %s %s: ',', ':' and '\\' cannot be passed to mount(2), which this kernel needs",
			what, path);
	return 0;
}

/* mount(2) gives one EINVAL for every option the kernel does not know:
 * name each feature this mount asked for that an old kernel lacks. */
static const char *legacy_hint(const struct mount_ctx *c)
{
	if (c->opts->upperdir)
		return upper_hint;
	if (c->verity)
		return "data-only lower layers need Linux 6.5, verity= Linux 6.6 (try verity=off); see dmesg";
	return "data-only lower layers need Linux 6.5; see dmesg";
}

static int overlay_mount_legacy(struct mount_ctx *c, const char *lower)
{
	const cfs_mount_options *o = c->opts;
	_cleanup_free_ char *data = NULL;
	unsigned long flags = 0;
	char target[32];
	int r;

	r = legacy_path_ok("lowerdir", lower);
	if (r >= 0)
		r = legacy_path_ok("objects", o->objects_dir);
	if (r >= 0 && o->upperdir)
		r = legacy_path_ok("upperdir", o->upperdir);
	if (r >= 0 && o->workdir)
		r = legacy_path_ok("workdir", o->workdir);
	if (r < 0)
		return r;
	if (asprintf(&data,
		     "metacopy=on,redirect_dir=on,lowerdir=%s::%s%s%s%s%s%s%s",
		     lower, o->objects_dir, o->upperdir ? ",upperdir=" : "",
		     o->upperdir ? o->upperdir : "",
		     o->workdir ? ",workdir=" : "",
		     o->workdir ? o->workdir : "", c->verity ? ",verity=" : "",
		     c->verity ? c->verity : "") < 0) {
		data = NULL;
		return cfs_error(ENOMEM, "overlay: out of memory");
	}
	if (c->readonly)
		flags |= MS_RDONLY;
	if (o->flags & CFS_MOUNT_NOSUID)
		flags |= MS_NOSUID;
	if (o->flags & CFS_MOUNT_NODEV)
		flags |= MS_NODEV;
	if (o->flags & CFS_MOUNT_NOEXEC)
		flags |= MS_NOEXEC;
	/* The target by its fd, as it was checked. */
	snprintf(target, sizeof(target), "/proc/self/fd/%d", c->target_fd);
	if (mount(c->source, target, "overlay", flags, data) < 0)
		return fs_fail(-1, errno, legacy_hint(c),
			       "overlay: mount on %s", c->target);
	return 0;
}

/* ---- putting it together ---------------------------------------------- */

/* EROFS attached on a temporary directory, the overlay over that. */
static int mount_attached(struct mount_ctx *c, int erofs_fd)
{
	char dir[64];
	int r;

	r = make_tmpdir(dir);
	if (r < 0)
		return r;
	if (erofs_fd < 0)
		r = erofs_mount_legacy(c, dir);
	else if (sys_move_mount(erofs_fd, "", AT_FDCWD, dir,
				MOVE_MOUNT_F_EMPTY_PATH) < 0)
		r = cfs_error_errno(errno, "erofs: attach %s on %s", c->image,
				    dir);
	if (r < 0) {
		remove_tmpdir(dir, false);
		return r;
	}
	/* Keep it out of other mount namespaces as far as can be. */
	mount(NULL, dir, NULL, MS_PRIVATE, NULL);
	r = -ENOSYS;
	if (erofs_fd >= 0)
		r = overlay_mount_new(c, dir, NULL);
	if (r == -ENOSYS)
		r = overlay_mount_legacy(c, dir);
	remove_tmpdir(dir, true);
	return r;
}

static const char idmap_kernel[] =
	"idmapped composefs mounts need the new mount API and Linux 6.15 "
	"(detached layers)";

/* An idmapped mount: the EROFS layer and the object directory idmapped
 * under the overlay, both detached (no fallbacks: an older kernel gets
 * -EOPNOTSUPP). */
static int do_mount_idmapped(struct mount_ctx *c)
{
	_cleanup_close_ int erofs_fd = -1, objects_fd = -1;
	char lower[32], data[32];
	bool retry = false;
	int r;

	if (c->force & (CFS_MOUNT_FORCE_LEGACY | CFS_MOUNT_FORCE_ATTACH))
		return cfs_error(EOPNOTSUPP, "%s", idmap_kernel);
	r = erofs_mount_new(c);
	if (r == -ENOSYS)
		return cfs_error(EOPNOTSUPP, "%s", idmap_kernel);
	if (r < 0)
		return r;
	erofs_fd = r;
	r = cfs_idmap_mount(erofs_fd, c->userns_fd, "the EROFS layer");
	if (r == 0)
		r = cfs_idmap_clone(c->opts->objects_dir, c->userns_fd,
				    &objects_fd);
	if (r < 0)
		return r;
	snprintf(lower, sizeof(lower), "/proc/self/fd/%d", erofs_fd);
	snprintf(data, sizeof(data), "/proc/self/fd/%d", objects_fd);
	c->datadir = data;
	r = overlay_mount_new(c, lower, &retry);
	c->datadir = c->opts->objects_dir;
	if (r == -ENOSYS || retry)
		return cfs_error(EOPNOTSUPP, "%s", idmap_kernel);
	return r;
}

static int do_mount(struct mount_ctx *c)
{
	_cleanup_close_ int erofs_fd = -1;
	char lower[32];
	bool retry = false;
	int r;

	if (c->userns_fd >= 0)
		return do_mount_idmapped(c);
	if (c->force & CFS_MOUNT_FORCE_LEGACY)
		return mount_attached(c, -1);
	r = erofs_mount_new(c);
	if (r == -ENOSYS)
		return mount_attached(c, -1);
	if (r < 0)
		return r;
	erofs_fd = r;
	if (c->force & CFS_MOUNT_FORCE_ATTACH)
		return mount_attached(c, erofs_fd);
	/* A path to the detached mount, which overlayfs resolves to it. */
	snprintf(lower, sizeof(lower), "/proc/self/fd/%d", erofs_fd);
	r = overlay_mount_new(c, lower, &retry);
	if (r == -ENOSYS || retry)
		r = mount_attached(c, erofs_fd);
	return r;
}

static int check_options(const cfs_mount_options *o)
{
	if (!o)
		return cfs_error(EINVAL,
				 "mount: no options (objects_dir is required)");
	if (!CFS_OPTIONS_VERSION_OK(o->version, CFS_MOUNT_OPTIONS_VERSION))
		return cfs_error(EINVAL, "mount: options version %u unknown",
				 o->version);
	if (o->flags & ~CFS_MOUNT_FLAGS_ALL)
		return cfs_error(EINVAL, "mount: unknown flags 0x%x",
				 o->flags & ~CFS_MOUNT_FLAGS_ALL);
	if (!o->objects_dir || !*o->objects_dir)
		return cfs_error(EINVAL,
				 "mount: the object directory is required");
	if (!o->upperdir != !o->workdir)
		return cfs_error(EINVAL,
				 "mount: upperdir and workdir go together");
	return 0;
}

int cfs_mount(const char *image, const char *target,
	      const cfs_mount_options *opts)
{
	_cleanup_close_ int image_fd = -1, target_fd = -1;
	_cleanup_free_ char *image_abs = NULL, *objects_abs = NULL;
	_cleanup_free_ char *upper_abs = NULL, *work_abs = NULL;
	cfs_mount_options abs;
	struct mount_ctx c = {
		.image = image,
		.target = target,
		.opts = &abs,
		.loop_fd = -1,
		.userns_fd = -1,
	};
	_cleanup_close_ int userns_fd = -1;
	int r;

	r = check_options(opts);
	if (r < 0)
		return r;
	/* Absolute paths, so that the overlay's source and options in
	 * /proc/self/mountinfo say something; the kernel would resolve
	 * the relative ones the same way. Errors are reported below. */
	abs = *opts;
	image_abs = realpath(image, NULL);
	objects_abs = realpath(opts->objects_dir, NULL);
	if (objects_abs)
		abs.objects_dir = objects_abs;
	if (opts->upperdir && (upper_abs = realpath(opts->upperdir, NULL)))
		abs.upperdir = upper_abs;
	if (opts->workdir && (work_abs = realpath(opts->workdir, NULL)))
		abs.workdir = work_abs;
	c.source = image_abs ? image_abs : image;
	c.readonly = !opts->upperdir || (opts->flags & CFS_MOUNT_READONLY);
	c.force = cfs_mount_force_from_env();
	image_fd = c.image_fd = open(image, O_RDONLY | O_CLOEXEC);
	if (image_fd < 0)
		return cfs_error_errno(errno, "image %s", image);
	snprintf(c.image_source, sizeof(c.image_source), "/proc/self/fd/%d",
		 image_fd);
	r = check_image(&c);
	if (r >= 0 && opts->expected_digest)
		r = check_digest(&c);
	if (r >= 0)
		r = pick_verity(&c);
	if (r < 0)
		return r;
	r = open_target(&c);
	target_fd = c.target_fd;
	if (r >= 0)
		r = check_dir("objects", opts->objects_dir);
	if (r >= 0 && opts->version >= 2 && opts->idmap) {
		r = cfs_idmap_userns(opts->idmap, &userns_fd);
		c.userns_fd = userns_fd;
	}
	if (r < 0)
		return r;
	c.datadir = abs.objects_dir;
	return do_mount(&c);
}

int cfs_umount(const char *target)
{
	_cleanup_close_ int fd = -1;
	struct statx stx;
	struct statfs sfs;

	fd = open(target, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return cfs_error_errno(errno, "umount: %s", target);
	/* The mount the path leads to, by the kernel's word, rather than a
	 * path compared with /proc/self/mountinfo. */
	if (statx(fd, "", AT_EMPTY_PATH, 0, &stx) < 0)
		return cfs_error_errno(errno, "umount: %s: statx", target);
	if (!(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
		return cfs_error(EINVAL, "umount: %s: not a mount point",
				 target);
	if (fstatfs(fd, &sfs) < 0)
		return cfs_error_errno(errno, "umount: %s: statfs", target);
	if ((unsigned long)sfs.f_type != CFS_OVERLAYFS_SUPER_MAGIC)
		return cfs_error(
			EINVAL,
			"umount: %s: not an overlay mount (filesystem magic 0x%lx)",
			target, (unsigned long)sfs.f_type);
	/* An open fd, even O_PATH, keeps the mount busy. */
	close(TAKE_FD(fd));
	if (umount2(target, UMOUNT_NOFOLLOW) < 0)
		return cfs_error_errno(errno, "umount: %s", target);
	return 0;
}
