/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Where blobs are: a layout directory, or a tar file (oci-archive,
 * docker-archive) indexed once by member name and read in place.
 * (convert/oci.h, oci-internal.h)
 */
#include <archive.h>
#include <archive_entry.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cfs/convert.h>
#include <cfs/image.h>

#include "common/cleanup.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/util.h"
#include "convert/oci-internal.h"

/* ---- the store -------------------------------------------------------- */

static int member_cmp(const void *a, const void *b)
{
	const struct oci_member *x = a, *y = b;
	int r = strcmp(x->name, y->name);

	if (r)
		return r;
	return x->order < y->order ? -1 : x->order > y->order;
}

static int member_key_cmp(const void *key, const void *m)
{
	return strcmp(key, ((const struct oci_member *)m)->name);
}

const struct oci_member *oci_member_find(struct cfs_oci_store *st,
					 const char *name)
{
	return bsearch(name, st->members, st->n_members, sizeof(*st->members),
		       member_key_cmp);
}

void oci_free_members(struct cfs_oci_store *st)
{
	for (size_t i = 0; i < st->n_members; i++) {
		free(st->members[i].name);
		free(st->members[i].link);
	}
	free(st->members);
	st->members = NULL;
	st->n_members = 0;
}

/* Record one archive entry at data offset @off. */
static int add_member(struct oci_ctx *c, struct archive_entry *e, int64_t off,
		      size_t *cap)
{
	struct cfs_oci_store *st = c->st;
	char name[OCI_MEMBER_NAME_MAX + 1];
	const char *path = archive_entry_pathname(e);
	const char *hard = archive_entry_hardlink(e);
	struct oci_member *m;
	int64_t size = archive_entry_size(e);

	/* Unnamed, unreachable or oversized names: nothing can look them
	 * up, so they are passed over. */
	if (!path || oci_normalize_path(path, name, sizeof(name)) < 0 ||
	    !name[0])
		return 0;
	if (st->n_members >= OCI_ARCHIVE_MEMBERS_MAX)
		return cfs_error(E2BIG, "%s: more than %d archive members",
				 c->src, OCI_ARCHIVE_MEMBERS_MAX);
	if (st->n_members == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		struct oci_member *n =
			reallocarray(st->members, ncap, sizeof(*n));
		if (!n)
			return cfs_error(ENOMEM, "%s: out of memory", c->src);
		st->members = n;
		*cap = ncap;
	}
	m = &st->members[st->n_members];
	memset(m, 0, sizeof(*m));
	m->order = st->n_members;
	m->offset = (uint64_t)off;
	m->size = size > 0 ? (uint64_t)size : 0;
	if (hard) {
		m->kind = MEMBER_HARDLINK;
		m->link = strdup(hard);
	} else if (archive_entry_filetype(e) == AE_IFLNK) {
		const char *t = archive_entry_symlink(e);
		m->kind = MEMBER_SYMLINK;
		m->link = strdup(t ? t : "");
	} else if (archive_entry_filetype(e) == AE_IFREG) {
		m->kind = MEMBER_FILE;
		m->sparse = archive_entry_sparse_count(e) > 0;
	} else {
		m->kind = MEMBER_OTHER;
	}
	m->name = strdup(name);
	if (!m->name || (m->kind == MEMBER_SYMLINK && !m->link) ||
	    (m->kind == MEMBER_HARDLINK && !m->link)) {
		free(m->name);
		free(m->link);
		return cfs_error(ENOMEM, "%s: out of memory", c->src);
	}
	st->n_members++;
	return 0;
}

/*
 * Index the archive: one pass over the headers with libarchive, tar
 * formats only and no decompression. For an uncompressed tar the bytes
 * consumed right after a header (the raw position,
 * archive_filter_bytes(a, -1)) are the offset of the member's data: the
 * ustar block and any pax or GNU long-name blocks before it have been
 * consumed, the data not yet. Data is skipped with lseek.
 */
int oci_archive_scan(struct oci_ctx *c)
{
	struct cfs_oci_store *st = c->st;
	struct archive *a;
	struct archive_entry *e;
	size_t cap = 0, out = 0;
	int r = 0, ar;

	a = archive_read_new();
	if (!a)
		return cfs_error(ENOMEM, "%s: out of memory", c->src);
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	if (archive_read_open_fd(a, st->fd, 64 * 1024) != ARCHIVE_OK) {
		const char *why = archive_error_string(a);
		r = cfs_error(EINVAL, "%s: not a tar archive: %s", c->src,
			      why ? why : "unreadable");
		goto out;
	}
	for (;;) {
		int64_t off;

		ar = archive_read_next_header(a, &e);
		if (ar == ARCHIVE_EOF)
			break;
		off = archive_filter_bytes(a, -1);
		if (ar != ARCHIVE_OK && ar != ARCHIVE_WARN) {
			const char *why = archive_error_string(a);
			r = cfs_error(EINVAL,
				      "%s: tar archive at byte %lld: %s",
				      c->src, (long long)off,
				      why ? why : "truncated or damaged");
			goto out;
		}
		if (off < 0) {
			r = cfs_error(EIO, "%s: tar archive: no read position",
				      c->src);
			goto out;
		}
		r = add_member(c, e, off, &cap);
		if (r < 0)
			goto out;
	}

	/* Sorted by name; of several members with one name the last wins,
	 * as when the archive is extracted. */
	qsort(st->members, st->n_members, sizeof(*st->members), member_cmp);
	for (size_t i = 0; i < st->n_members; i++) {
		if (i + 1 < st->n_members &&
		    !strcmp(st->members[i].name, st->members[i + 1].name)) {
			free(st->members[i].name);
			free(st->members[i].link);
			continue;
		}
		st->members[out++] = st->members[i];
	}
	st->n_members = out;
out:
	archive_read_free(a);
	return r;
}

/*
 * Find member @name, following symlinks (relative to the link's
 * directory, absolute ones from the archive root) and hardlinks. Only
 * the last component is followed: archives made by image tools never put
 * links in directory components.
 */
int oci_archive_resolve(struct oci_ctx *c, const char *label, const char *name,
			const struct oci_member **out)
{
	char cur[OCI_MEMBER_NAME_MAX + 1], tmp[2 * OCI_MEMBER_NAME_MAX + 2];
	char q[OCI_QUOTE_MAX + 4], q2[OCI_QUOTE_MAX + 4];
	const struct oci_member *m;
	int r;

	if (oci_normalize_path(name, cur, sizeof(cur)) < 0 || !cur[0])
		return cfs_error(EINVAL,
				 "%s: %s: \"%s\" is not a path inside "
				 "the archive",
				 c->src, label, oci_quote(name, q));
	for (int hops = 0;; hops++) {
		m = oci_member_find(c->st, cur);
		if (!m) {
			if (strcmp(cur, name))
				return cfs_error(ENOENT,
						 "%s: %s: no member %s (link "
						 "target of %s) in the archive",
						 c->src, label,
						 oci_quote(cur, q),
						 oci_quote(name, q2));
			return cfs_error(ENOENT,
					 "%s: %s: no member %s in the archive",
					 c->src, label, oci_quote(cur, q));
		}
		if (m->kind != MEMBER_SYMLINK && m->kind != MEMBER_HARDLINK)
			break;
		if (hops >= OCI_SYMLINK_MAX)
			return cfs_error(ELOOP, "%s: %s: %s: too many links",
					 c->src, label, oci_quote(name, q));
		if (m->kind == MEMBER_SYMLINK && m->link[0] != '/') {
			const char *slash = strrchr(cur, '/');
			int dlen = slash ? (int)(slash - cur) : 0;
			snprintf(tmp, sizeof(tmp), "%.*s/%s", dlen, cur,
				 m->link);
		} else {
			/* hardlink targets are archive paths */
			snprintf(tmp, sizeof(tmp), "%s", m->link);
		}
		r = oci_normalize_path(tmp, cur, sizeof(cur));
		if (r < 0 || !cur[0])
			return cfs_error(EINVAL,
					 "%s: %s: link %s -> %s leads outside "
					 "the archive",
					 c->src, label, oci_quote(m->name, q),
					 oci_quote(m->link, q2));
	}
	if (m->kind != MEMBER_FILE)
		return cfs_error(EINVAL,
				 "%s: %s: member %s is not a regular "
				 "file",
				 c->src, label, oci_quote(m->name, q));
	/* Sparse members' stored bytes are not the file's bytes. */
	if (m->sparse)
		return cfs_error(EINVAL, "%s: %s: member %s is a sparse file",
				 c->src, label, oci_quote(m->name, q));
	if (m->offset > c->st->file_size ||
	    m->size > c->st->file_size - m->offset)
		return cfs_error(EINVAL, "%s: %s: member %s is truncated",
				 c->src, label, oci_quote(m->name, q));
	*out = m;
	return 0;
}

/*
 * Locate @name in the store as a blob. For a directory a new fd is
 * opened into *@tmp_fd for the caller to close.
 */
static int store_find(struct oci_ctx *c, const char *label, const char *name,
		      struct cfs_blob *b, int *tmp_fd)
{
	struct cfs_oci_store *st = c->st;
	const struct oci_member *m;
	struct stat sb;
	int fd, r;

	*tmp_fd = -1;
	if (st->kind == STORE_MEM)
		return cfs_error(ENOENT, "%s: %s: %s: not in the source",
				 c->src, label, name);
	if (st->kind == STORE_TAR) {
		r = oci_archive_resolve(c, label, name, &m);
		if (r < 0)
			return r;
		b->fd = st->fd;
		b->offset = m->offset;
		b->length = m->size;
		return 0;
	}
	fd = openat(st->fd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 && !strcmp(label, name))
		return cfs_error_errno(errno, "%s: %s", c->src, name);
	if (fd < 0)
		return cfs_error_errno(errno, "%s: %s: %s", c->src, label,
				       name);
	if (fstat(fd, &sb) < 0) {
		r = cfs_error_errno(errno, "%s: %s: %s", c->src, label, name);
		close(fd);
		return r;
	}
	if (!S_ISREG(sb.st_mode)) {
		close(fd);
		return cfs_error(EINVAL, "%s: %s: %s is not a regular file",
				 c->src, label, name);
	}
	*tmp_fd = fd;
	b->fd = fd;
	b->offset = 0;
	b->length = (uint64_t)sb.st_size;
	return 0;
}

/*
 * Read JSON document @name (@label in messages), check it against
 * @digest and @size when given (@from names the descriptor's document),
 * and parse it. *@buf_out gets the bytes if not NULL.
 */
int oci_read_json(struct oci_ctx *c, const char *label, const char *name,
		  const char *digest, int64_t size, const char *from,
		  uint8_t **buf_out, size_t *len_out, struct json_object **out)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	char got[CFS_SHA256_STR_SIZE];
	struct cfs_blob b = { .fd = -1 };
	int r;

	*out = NULL;
	if (c->st->kind == STORE_MEM && c->st->mem_name &&
	    strcmp(name, c->st->mem_name) == 0) {
		b.length = c->st->mem_len;
	} else {
		r = store_find(c, label, name, &b, &fd);
		if (r < 0)
			return r;
	}
	if (size >= 0 && b.length != (uint64_t)size)
		return cfs_error(EBADMSG, "%s: %s: size %llu, %s says %lld",
				 c->src, label, (unsigned long long)b.length,
				 from, (long long)size);
	if (b.length > CFS_OCI_JSON_MAX)
		return cfs_error(EFBIG, "%s: %s: %llu bytes, limit %d", c->src,
				 label, (unsigned long long)b.length,
				 CFS_OCI_JSON_MAX);
	buf = malloc(b.length + 1);
	if (!buf)
		return cfs_error(ENOMEM, "%s: %s: out of memory", c->src,
				 label);
	if (b.fd < 0)
		memcpy(buf, c->st->mem_data, b.length);
	r = b.fd < 0 ? 0 : oci_pread_full(b.fd, buf, b.length, b.offset);
	if (r == -EIO)
		return cfs_error(EIO, "%s: %s: file ends before %llu bytes",
				 c->src, label, (unsigned long long)b.length);
	if (r < 0)
		return cfs_error_errno(-r, "%s: %s: reading", c->src, label);
	buf[b.length] = '\0';
	if (digest) {
		if (cfs_sha256(buf, b.length, NULL, got) < 0)
			return cfs_error(EIO, "%s: %s: SHA-256 failed", c->src,
					 label);
		if (strcmp(got, digest))
			return cfs_error(EBADMSG,
					 "%s: %s: content has digest %s, "
					 "%s says %s",
					 c->src, label, got, from, digest);
	}
	r = oci_parse_json(c, label, buf, b.length, out);
	if (r < 0)
		return r;
	if (len_out)
		*len_out = b.length;
	if (buf_out)
		*buf_out = (uint8_t *)TAKE_PTR(buf);
	return 0;
}
