/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Small helpers of the OCI sources: quoting input for messages, digests
 * and their blob paths, pread, archive member paths.
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
#include "common/error.h"
#include "common/util.h"
#include "convert/oci-internal.h"

/* ---- small helpers ---------------------------------------------------- */

/* Input strings in messages: printable ASCII only, cut if long. */
const char *oci_quote(const char *s, char buf[OCI_QUOTE_MAX + 4])
{
	size_t i;

	if (!s)
		return "(null)";
	for (i = 0; s[i] && i < OCI_QUOTE_MAX; i++)
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (s[i])
		buf[i++] = '.', buf[i++] = '.', buf[i++] = '.';
	buf[i] = '\0';
	return buf;
}

bool oci_is_hex_lower(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

bool oci_is_alg_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

/*
 * 0 for "sha256:<64 lower-case hex>"; -EOPNOTSUPP for another digest of
 * the image-spec grammar (algorithm [a-z0-9]+([+._-][a-z0-9]+)*, encoded
 * [a-zA-Z0-9=_-]+); -EINVAL for anything else.
 */
int oci_check_digest(const char *d)
{
	const char *colon = strchr(d, ':');
	size_t alg_len, enc_len;

	if (!colon || strlen(d) > 255)
		return -EINVAL;
	alg_len = (size_t)(colon - d);
	enc_len = strlen(colon + 1);
	if (alg_len == 6 && !memcmp(d, "sha256", 6))
		return enc_len == CFS_DIGEST_HEX_SIZE &&
				       oci_is_hex_lower(colon + 1, enc_len) ?
			       0 :
			       -EINVAL;
	if (!alg_len || !enc_len || !oci_is_alg_char(d[0]) ||
	    !oci_is_alg_char(d[alg_len - 1]))
		return -EINVAL;
	for (size_t i = 1; i < alg_len; i++) {
		bool sep = strchr("+._-", d[i]) != NULL;
		if (!oci_is_alg_char(d[i]) &&
		    !(sep && oci_is_alg_char(d[i + 1])))
			return -EINVAL;
	}
	for (const char *p = colon + 1; *p; p++)
		if (!oci_is_alg_char(*p) && !(*p >= 'A' && *p <= 'Z') &&
		    !strchr("=_-", *p))
			return -EINVAL;
	return -EOPNOTSUPP;
}

/* Digest @d named in @label (at @key) must be a sha256 digest. */
int oci_require_sha256(struct oci_ctx *c, const char *label, const char *key,
		       const char *d)
{
	char q[OCI_QUOTE_MAX + 4];
	int r = oci_check_digest(d);

	if (r == -EOPNOTSUPP)
		return cfs_error(EOPNOTSUPP,
				 "%s: %s: %s: unsupported digest algorithm in "
				 "\"%s\" (only sha256)",
				 c->src, label, key, oci_quote(d, q));
	if (r < 0)
		return cfs_error(EINVAL, "%s: %s: %s: malformed digest \"%s\"",
				 c->src, label, key, oci_quote(d, q));
	return 0;
}

void oci_blob_path(char *buf, size_t size, const char *digest)
{
	/* digest is a checked "sha256:<hex>" */
	snprintf(buf, size, "blobs/sha256/%s", digest + 7);
}

int oci_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO; /* shorter than its size says */
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/*
 * Canonical form of a path inside an archive: components joined by '/',
 * no leading '/', no "." or empty components, ".." applied. -EINVAL if
 * ".." leaves the root, -ENAMETOOLONG if it does not fit.
 */
int oci_normalize_path(const char *in, char *out, size_t size)
{
	size_t len = 0;

	while (*in) {
		const char *end = strchrnul(in, '/');
		size_t n = (size_t)(end - in);

		if (n == 0 || (n == 1 && in[0] == '.')) {
			/* skip */
		} else if (n == 2 && in[0] == '.' && in[1] == '.') {
			if (len == 0)
				return -EINVAL;
			while (len > 0 && out[len - 1] != '/')
				len--;
			if (len > 0)
				len--; /* the '/' */
		} else {
			if (len + (len ? 1 : 0) + n + 1 > size)
				return -ENAMETOOLONG;
			if (len)
				out[len++] = '/';
			memcpy(out + len, in, n);
			len += n;
		}
		in = *end ? end + 1 : end;
	}
	out[len] = '\0';
	return 0;
}
