/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Broken images (docs/store.md, fsck): the marker fsck --repair writes
 * for an image whose objects are gone, read by mount and import.
 */
/* Garbage collection and consistency checks of the store. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fsverity.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/sign.h"
#include "common/util.h"
#include "store/store-internal.h"

/* ---- broken images ---------------------------------------------------- */

int store_broken_mark(cfs_store *s, const char *hex,
		      const struct store_objset *missing)
{
	char name[CFS_DIGEST_HEX_SIZE + 16];
	struct cfs_buf b = { 0 };
	int r = 0;

	snprintf(name, sizeof(name), "%s" STORE_BROKEN_SUFFIX, hex);
	for (size_t i = 0; r == 0 && i < missing->n; i++) {
		char path[CFS_DIGEST_HEX_SIZE + 2];

		cfs_digest_to_object_path(missing->v[i].digest, path);
		path[CFS_DIGEST_HEX_SIZE + 1] = '\n';
		r = cfs_buf_add(&b, path, sizeof(path));
	}
	if (r == 0)
		r = cfs_atomic_write(s->images_fd, name, b.buf, b.len,
				     CFS_ATOMIC_SYNC | CFS_ATOMIC_REPLACE);
	free(b.buf);
	if (r < 0)
		return cfs_error_errno(-r, "store %s: images/%s", s->root,
				       name);
	return 0;
}

int store_broken_check(cfs_store *s, const char *hex, char **missing_out)
{
	struct store_objset listed = { 0 };
	int r;

	*missing_out = NULL;
	r = store_broken_read(s, hex, &listed);
	for (size_t i = 0; r == 0 && i < listed.n; i++) {
		char path[CFS_DIGEST_HEX_SIZE + 2];

		cfs_digest_to_object_path(listed.v[i].digest, path);
		if (faccessat(s->objects_fd, path, F_OK, 0) == 0)
			continue;
		*missing_out = strdup(path);
		r = *missing_out ? 1 : -ENOMEM;
	}
	store_objset_clear(&listed);
	return r;
}

void store_broken_clear(cfs_store *s, const char *hex)
{
	char name[CFS_DIGEST_HEX_SIZE + 16];

	snprintf(name, sizeof(name), "%s" STORE_BROKEN_SUFFIX, hex);
	unlinkat(s->images_fd, name, 0);
}

/* The objects images/<hex>.broken lists, sorted. */
int store_broken_read(cfs_store *s, const char *hex, struct store_objset *set)
{
	char name[CFS_DIGEST_HEX_SIZE + 16], line[CFS_DIGEST_HEX_SIZE + 8];
	FILE *fp;
	int fd, r = 0;

	snprintf(name, sizeof(name), "%s" STORE_BROKEN_SUFFIX, hex);
	fd = openat(s->images_fd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ?
			       0 :
			       cfs_error_errno(errno, "store %s: images/%s",
					       s->root, name);
	fp = fdopen(fd, "r");
	if (!fp) {
		close(fd);
		return -ENOMEM;
	}
	while (r == 0 && fgets(line, sizeof(line), fp)) {
		char hexd[CFS_DIGEST_HEX_SIZE + 1];
		uint8_t d[CFS_DIGEST_SIZE];

		line[strcspn(line, "\n")] = '\0';
		if (strlen(line) != CFS_DIGEST_HEX_SIZE + 1 || line[2] != '/')
			continue;
		snprintf(hexd, sizeof(hexd), "%.2s%.62s", line, line + 3);
		if (cfs_digest_from_hex(d, hexd) == 0)
			r = store_objset_add(set, d, 0);
	}
	fclose(fp);
	store_objset_finish(set);
	return r;
}
