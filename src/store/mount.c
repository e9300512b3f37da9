/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Mounting the store's images, and the records that tell gc which images
 * are mounted: ROOT/mounts/<id>.json per target, <id> the first 16 bytes
 * of the SHA-256 of the target's real path, in hex. A writable mount keeps
 * its upper and work directories in ROOT/mounts/<id>/.
 */
#include <dirent.h>
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

CFS_DEFINE_CLEANUP(DIR *, closedir)

#define MOUNTS_DIR "mounts"
/* Bytes of the target's SHA-256 in a record's id: 128 bits make a
 * collision between two targets of one machine out of the question. */
#define MOUNT_ID_BYTES 16
#define MOUNT_ID_HEX (2 * MOUNT_ID_BYTES)
/* A record holds a path and a digest; anything longer is not ours. */
#define MOUNT_RECORD_MAX (PATH_MAX + 4096)

struct mount_record {
	char *target;
	char image[CFS_DIGEST_HEX_SIZE + 1];
	bool writable;
};

static void mount_record_clear(struct mount_record *rec)
{
	free(rec->target);
	memset(rec, 0, sizeof(*rec));
}

static int mount_id(const char *target, char id[MOUNT_ID_HEX + 1])
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	if (EVP_Digest(target, strlen(target), md, &len, EVP_sha256(), NULL) !=
		    1 ||
	    len < MOUNT_ID_BYTES)
		return cfs_error(EIO, "sha256 of %s failed", target);
	for (size_t i = 0; i < MOUNT_ID_BYTES; i++)
		snprintf(id + 2 * i, 3, "%02x", md[i]);
	return 0;
}

static bool is_mount_root(const char *path)
{
	struct statx stx;

	if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS,
		  &stx) < 0)
		return false;
	return (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
	       (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

/* Open ROOT/mounts (creating it with @create); -ENOENT without. */
static int open_mounts(cfs_store *s, bool create)
{
	int fd;

	if (create && mkdirat(s->root_fd, MOUNTS_DIR, 0700) < 0 &&
	    errno != EEXIST)
		return cfs_error_errno(errno, "store %s: creating " MOUNTS_DIR,
				       s->root);
	fd = openat(s->root_fd, MOUNTS_DIR,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ?
			       -ENOENT :
			       cfs_error_errno(errno, "store %s: " MOUNTS_DIR,
					       s->root);
	return fd;
}

/* Read mounts/@name; -ENOENT if absent, -EBADMSG if it is not a record. */
static int record_read(int mfd, const char *name, struct mount_record *rec)
{
	_cleanup_(json_object_putp) json_object *o = NULL;
	_cleanup_close_ int fd = openat(mfd, name, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *buf = NULL;
	json_object *target, *image, *writable;
	size_t got;
	int r;

	memset(rec, 0, sizeof(*rec));
	if (fd < 0)
		return -errno;
	buf = malloc(MOUNT_RECORD_MAX + 1);
	if (!buf)
		return -ENOMEM;
	r = cfs_read_full(fd, buf, MOUNT_RECORD_MAX, &got);
	if (r < 0)
		return r;
	buf[got] = '\0';
	o = json_tokener_parse(buf);
	if (!o || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "target", &target) ||
	    !json_object_is_type(target, json_type_string) ||
	    !json_object_object_get_ex(o, "image", &image) ||
	    !json_object_is_type(image, json_type_string) ||
	    !store_is_hex(json_object_get_string(image), true) ||
	    !json_object_object_get_ex(o, "writable", &writable) ||
	    !json_object_is_type(writable, json_type_boolean))
		return -EBADMSG;
	rec->target = strdup(json_object_get_string(target));
	if (!rec->target)
		return -ENOMEM;
	memcpy(rec->image, json_object_get_string(image), sizeof(rec->image));
	rec->writable = json_object_get_boolean(writable);
	return 0;
}

static int record_write(cfs_store *s, int mfd, const char *id,
			const char *target, const char *hex, bool writable)
{
	_cleanup_(json_object_putp) json_object *o = json_object_new_object();
	struct cfs_atomic_file af = { .fd = -1 };
	char name[MOUNT_ID_HEX + 8];
	const char *text;
	int r;

	if (!o)
		return -ENOMEM;
	json_object_object_add(o, "version",
			       json_object_new_int(STORE_FORMAT_VERSION));
	json_object_object_add(o, "target", json_object_new_string(target));
	json_object_object_add(o, "image", json_object_new_string(hex));
	json_object_object_add(o, "writable",
			       json_object_new_boolean(writable));
	text = json_object_to_json_string_ext(
		o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	snprintf(name, sizeof(name), "%s.json", id);
	r = cfs_atomic_open(&af, mfd, 0644);
	if (r == 0)
		r = cfs_write_all(af.fd, text, strlen(text));
	if (r == 0)
		r = cfs_write_all(af.fd, "\n", 1);
	if (r == 0 && fsync(af.fd) < 0)
		r = -errno;
	if (r == 0)
		r = cfs_atomic_commit(&af, name, true);
	cfs_atomic_abort(&af);
	if (r < 0)
		return cfs_error_errno(-r, "store %s: " MOUNTS_DIR "/%s",
				       s->root, name);
	return 0;
}

bool store_image_busy(cfs_store *s, const char *hex)
{
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;
	int mfd = open_mounts(s, false);

	if (mfd < 0)
		return false;
	d = fdopendir(mfd);
	if (!d) {
		close(mfd);
		return false;
	}
	while ((de = readdir(d))) {
		struct mount_record rec;
		size_t len = strlen(de->d_name);
		bool busy;

		if (len != MOUNT_ID_HEX + 5 ||
		    strcmp(de->d_name + MOUNT_ID_HEX, ".json") != 0)
			continue;
		if (record_read(dirfd(d), de->d_name, &rec) < 0)
			continue;
		/* A record whose target is no longer a mount point is stale
		 * (a reboot, a umount(8) behind our back): it keeps nothing. */
		busy = strcmp(rec.image, hex) == 0 && is_mount_root(rec.target);
		mount_record_clear(&rec);
		if (busy)
			return true;
	}
	return false;
}

/* Undo mountinfo's octal escapes (\040 and the like) in place. */
static void unescape_octal(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/* Does one of the overlay lower layers in @opts (its super options) stat
 * to an inode of @roots? */
/* Does one of the lower layers in the overlay options @opts (paths as
 * the process whose root is @root sees them: "" for ours,
 * "/proc/PID/root" for another's) have one of the @n @roots? */
static bool lowers_hit(char *opts, const char *root, const struct stat *roots,
		       size_t n)
{
	char *l = strstr(opts, "lowerdir=");

	if (!l || (l != opts && l[-1] != ','))
		return false;
	l += strlen("lowerdir=");
	l[strcspn(l, ",")] = '\0';
	unescape_octal(l);
	for (char *p = l, *end; *p; p = end) {
		char path[PATH_MAX];
		struct stat st;

		/* Layers are ':'-separated ("\:" inside a path), data-only
		 * ones after "::". */
		end = p;
		while (*end && *end != ':')
			end += end[0] == '\\' && end[1] ? 2 : 1;
		if (*end)
			*end++ = '\0';
		if (*p != '/' ||
		    (size_t)snprintf(path, sizeof(path), "%s%s", root, p) >=
			    sizeof(path) ||
		    stat(path, &st) < 0)
			continue;
		for (size_t i = 0; i < n; i++)
			if (st.st_dev == roots[i].st_dev &&
			    st.st_ino == roots[i].st_ino)
				return true;
	}
	return false;
}

/* The overlay mount of @mi (a mountinfo, paths seen from @root) with one
 * of the @n @roots as a lower layer: 1 with its mount point in
 * *@user_out, 0 if none. */
static int overlay_user(FILE *mi, const char *root, const struct stat *roots,
			size_t n, char **user_out)
{
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;

	while (getline(&line, &cap, mi) > 0) {
		char *sep = strstr(line, " - overlay "), *f = line, *mp = NULL;

		if (!sep)
			continue;
		line[strcspn(line, "\n")] = '\0';
		/* Field 5 is the mount point; after " - overlay SOURCE " come
		 * the super options. */
		for (int i = 0; i < 4 && f; i++)
			f = strchr(f, ' ') ? strchr(f, ' ') + 1 : NULL;
		if (f) {
			mp = f;
			f = strchr(f, ' ');
			if (f)
				*f = '\0';
		}
		sep = strchr(sep + strlen(" - overlay "), ' ');
		if (!mp || !sep || !lowers_hit(sep + 1, root, roots, n))
			continue;
		unescape_octal(mp);
		*user_out = strdup(mp);
		return *user_out ? 1 : -ENOMEM;
	}
	return 0;
}

/* Mount namespaces met so far, by inode. */
static bool ns_seen(ino_t *seen, size_t *n, size_t cap, ino_t ino)
{
	for (size_t i = 0; i < *n; i++)
		if (seen[i] == ino)
			return true;
	if (*n < cap)
		seen[(*n)++] = ino;
	return false;
}

/*
 * A container whose root has @roots as a lower layer, in our mount
 * namespace or any other: podman may run in one of its own (rootless
 * podman always does), and its containers in theirs. Each namespace is
 * read once, through a process in it (/proc/PID/mountinfo, its paths
 * resolved below /proc/PID/root).
 */
static int any_overlay_user(const struct stat *roots, size_t n, char **user_out)
{
	_cleanup_(closedirp) DIR *proc = NULL;
	ino_t seen[4096];
	size_t n_seen = 0;
	struct dirent *de;
	struct stat st;
	FILE *mi;
	int found;

	mi = fopen("/proc/self/mountinfo", "re");
	if (!mi)
		return cfs_error_errno(errno, "/proc/self/mountinfo");
	found = overlay_user(mi, "", roots, n, user_out);
	fclose(mi);
	if (found != 0)
		return found;
	if (stat("/proc/self/ns/mnt", &st) == 0)
		ns_seen(seen, &n_seen, 4096, st.st_ino);
	proc = opendir("/proc");
	if (!proc)
		return 0;
	while (found == 0 && (de = readdir(proc))) {
		char path[64], root[40];

		if (de->d_name[0] < '1' || de->d_name[0] > '9' ||
		    strlen(de->d_name) > 10 ||
		    strspn(de->d_name, "0123456789") != strlen(de->d_name))
			continue;
		snprintf(path, sizeof(path), "/proc/%.10s/ns/mnt", de->d_name);
		/* a process gone meanwhile, or a kernel thread: skip it */
		if (stat(path, &st) < 0 ||
		    ns_seen(seen, &n_seen, 4096, st.st_ino))
			continue;
		snprintf(path, sizeof(path), "/proc/%.10s/mountinfo",
			 de->d_name);
		mi = fopen(path, "re");
		if (!mi)
			continue;
		snprintf(root, sizeof(root), "/proc/%.10s/root", de->d_name);
		found = overlay_user(mi, root, roots, n, user_out);
		fclose(mi);
	}
	return found;
}

int store_image_user(cfs_store *s, const char *hex, char **user_out)
{
	_cleanup_(closedirp) DIR *d = NULL;
	_cleanup_free_ struct stat *roots = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int mfd = open_mounts(s, false);

	*user_out = NULL;
	if (mfd < 0)
		return 0;
	d = fdopendir(mfd);
	if (!d) {
		close(mfd);
		return -errno;
	}
	/* The roots of this image's mounts... */
	while ((de = readdir(d))) {
		struct mount_record rec;
		size_t len = strlen(de->d_name);
		struct stat st;

		if (len != MOUNT_ID_HEX + 5 ||
		    strcmp(de->d_name + MOUNT_ID_HEX, ".json") != 0 ||
		    record_read(dirfd(d), de->d_name, &rec) < 0)
			continue;
		if (strcmp(rec.image, hex) == 0 && is_mount_root(rec.target) &&
		    stat(rec.target, &st) == 0) {
			if (n == cap) {
				struct stat *v = realloc(
					roots,
					(cap = cap ? 2 * cap : 4) * sizeof(*v));
				if (!v) {
					mount_record_clear(&rec);
					return -ENOMEM;
				}
				roots = v;
			}
			roots[n++] = st;
		}
		mount_record_clear(&rec);
	}
	if (n == 0)
		return 0;
	/* ...as a lower layer of an overlay mount (a container's root). */
	return any_overlay_user(roots, n, user_out);
}

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
	r = mount_id(abs, id);
	if (r < 0)
		return r;
	snprintf(rec_name, sizeof(rec_name), "%s.json", id);

	/* Shared for the whole mount: gc (exclusive) cannot remove the
	 * image between the lookup and the record that keeps it. */
	r = store_lock(s, LOCK_SH);
	if (r < 0)
		return r;
	mfd = open_mounts(s, true);
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
	if (is_mount_root(abs)) {
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
	r = record_write(s, mfd, id, abs, hex, writable);
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
	r = mount_id(abs, id);
	if (r < 0)
		return r;
	snprintf(rec_name, sizeof(rec_name), "%s.json", id);
	mfd = open_mounts(s, false);
	if (mfd == -ENOENT)
		return cfs_error(ENOENT, "%s: not mounted from store %s", abs,
				 s->root);
	if (mfd < 0)
		return mfd;
	if (flock(mfd, LOCK_EX) < 0)
		return cfs_error_errno(errno, "store %s: locking " MOUNTS_DIR,
				       s->root);
	r = record_read(mfd, rec_name, &rec);
	if (r == -ENOENT || (r == 0 && strcmp(rec.target, abs) != 0))
		r = cfs_error(ENOENT, "%s: not mounted from store %s", abs,
			      s->root);
	else if (r < 0)
		r = cfs_error_errno(-r, "store %s: " MOUNTS_DIR "/%s", s->root,
				    rec_name);
	/* Not a mount point any more: the record is stale and goes. */
	if (r == 0 && is_mount_root(abs))
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
	mount_record_clear(&rec);
	return r;
}
