/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * The store's mount records (ROOT/mounts/<id>.json, docs/store.md) and
 * who uses an image: a store mount that is still mounted (busy), or a
 * container whose root has it as a lower layer, in any mount namespace.
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
#include "common/json.h"
#include "common/util.h"
#include "store/store-internal.h"

CFS_DEFINE_CLEANUP(DIR *, closedir)

void store_mount_record_clear(struct mount_record *rec)
{
	free(rec->target);
	memset(rec, 0, sizeof(*rec));
}

int store_mount_id(const char *target, char id[MOUNT_ID_HEX + 1])
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

bool store_is_mount_root(const char *path)
{
	struct statx stx;

	if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS,
		  &stx) < 0)
		return false;
	return (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
	       (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

/* Open ROOT/mounts (creating it with @create); -ENOENT without. */
int store_open_mounts(cfs_store *s, bool create)
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
int store_mount_record_read(int mfd, const char *name, struct mount_record *rec)
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
	if (cfs_json_parse(buf, got, &o) < 0 ||
	    !json_object_is_type(o, json_type_object) ||
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

int store_mount_record_write(cfs_store *s, int mfd, const char *id,
			     const char *target, const char *hex, bool writable)
{
	_cleanup_(json_object_putp) json_object *o = json_object_new_object();
	char name[MOUNT_ID_HEX + 8], *line;
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
	line = NULL;
	r = asprintf(&line, "%s\n", text) < 0 ?
		    -ENOMEM :
		    cfs_atomic_write(mfd, name, line, strlen(line),
				     CFS_ATOMIC_SYNC | CFS_ATOMIC_REPLACE);
	free(line);
	if (r < 0)
		return cfs_error_errno(-r, "store %s: " MOUNTS_DIR "/%s",
				       s->root, name);
	return 0;
}

bool store_image_busy(cfs_store *s, const char *hex)
{
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;
	int mfd = store_open_mounts(s, false);

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
		if (store_mount_record_read(dirfd(d), de->d_name, &rec) < 0)
			continue;
		/* A record whose target is no longer a mount point is stale
		 * (a reboot, a umount(8) behind our back): it keeps nothing. */
		busy = strcmp(rec.image, hex) == 0 &&
		       store_is_mount_root(rec.target);
		store_mount_record_clear(&rec);
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
	int mfd = store_open_mounts(s, false);

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
		    store_mount_record_read(dirfd(d), de->d_name, &rec) < 0)
			continue;
		if (strcmp(rec.image, hex) == 0 &&
		    store_is_mount_root(rec.target) &&
		    stat(rec.target, &st) == 0) {
			if (n == cap) {
				struct stat *v = realloc(
					roots,
					(cap = cap ? 2 * cap : 4) * sizeof(*v));
				if (!v) {
					store_mount_record_clear(&rec);
					return -ENOMEM;
				}
				roots = v;
			}
			roots[n++] = st;
		}
		store_mount_record_clear(&rec);
	}
	if (n == 0)
		return 0;
	/* ...as a lower layer of an overlay mount (a container's root). */
	return any_overlay_user(roots, n, user_out);
}
