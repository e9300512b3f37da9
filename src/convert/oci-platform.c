/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Platforms: the host's, parsing OS/ARCH[/VARIANT], and how well an
 * index entry matches.
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

/* ---- platforms -------------------------------------------------------- */

/* Go's GOARCH for the names uname and some image builders use. */
static const char *norm_arch(const char *a)
{
	static const char *const map[][2] = {
		{ "x86_64", "amd64" },	{ "x86-64", "amd64" },
		{ "aarch64", "arm64" }, { "i386", "386" },
		{ "i486", "386" },	{ "i586", "386" },
		{ "i686", "386" },	{ "armhf", "arm" },
		{ "armel", "arm" },	{ "ppc64el", "ppc64le" },
	};

	for (size_t i = 0; i < CFS_ARRAY_SIZE(map); i++)
		if (!strcmp(a, map[i][0]))
			return map[i][1];
	return a;
}

void cfs_oci_host_platform(char buf[CFS_OCI_PLATFORM_MAX])
{
	static const char *const map[][2] = {
		{ "x86_64", "amd64" },
		{ "aarch64", "arm64/v8" },
		{ "arm64", "arm64/v8" },
		{ "armv8l", "arm/v8" },
		{ "armv7l", "arm/v7" },
		{ "armv7", "arm/v7" },
		{ "armv6l", "arm/v6" },
		{ "armv5tel", "arm/v5" },
		{ "i386", "386" },
		{ "i486", "386" },
		{ "i586", "386" },
		{ "i686", "386" },
		{ "ppc64le", "ppc64le" },
		{ "s390x", "s390x" },
		{ "riscv64", "riscv64" },
		{ "mips64", "mips64" },
		{ "loongarch64", "loong64" },
	};
	struct utsname u;
	const char *arch = "unknown";

	if (uname(&u) == 0) {
		arch = u.machine;
		for (size_t i = 0; i < CFS_ARRAY_SIZE(map); i++)
			if (!strcmp(u.machine, map[i][0]))
				arch = map[i][1];
	}
	snprintf(buf, CFS_OCI_PLATFORM_MAX, "linux/%.64s", arch);
}

static bool platform_part_ok(const char *s, size_t n)
{
	if (n == 0 || n >= 32)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!oci_is_alg_char(s[i]) && !(s[i] >= 'A' && s[i] <= 'Z') &&
		    !strchr("._-", s[i]))
			return false;
	return true;
}

int cfs_oci_parse_platform(const char *s, struct cfs_oci_platform *out)
{
	char q[OCI_QUOTE_MAX + 4];
	char *parts[3] = { out->os, out->arch, out->variant };
	const char *p = s;
	size_t n = 0;

	memset(out, 0, sizeof(*out));
	while (n < 3) {
		const char *end = strchrnul(p, '/');
		if (!platform_part_ok(p, (size_t)(end - p)))
			break;
		memcpy(parts[n++], p, (size_t)(end - p));
		if (!*end) {
			p = end;
			break;
		}
		p = end + 1;
	}
	if (n < 2 || *p)
		return cfs_error(EINVAL,
				 "platform \"%s\": expected OS/ARCH[/VARIANT]",
				 oci_quote(s, q));
	memmove(out->arch, norm_arch(out->arch),
		strlen(norm_arch(out->arch)) + 1);
	return 0;
}

int oci_parse_platform(struct oci_ctx *c, const char *s)
{
	int r = cfs_oci_parse_platform(s, &c->want);

	if (r < 0)
		return cfs_error_prefix(-r, "%s", c->src);
	snprintf(c->want_str, sizeof(c->want_str), "%s/%s%s%s", c->want.os,
		 c->want.arch, c->want.variant[0] ? "/" : "", c->want.variant);
	return 0;
}

static int variant_num(const char *v)
{
	if (v[0] != 'v' || v[1] < '1' || v[1] > '9' || v[2])
		return -1;
	return v[1] - '0';
}

/*
 * How well descriptor @d's platform matches: -1 not at all, higher is
 * better. Without a wanted variant any variant does (none preferred);
 * arm64 v8 is what an arm64 entry without variant means, and 32-bit arm
 * runs older variants (containerd's matcher does the same).
 */
int oci_platform_score(const struct cfs_oci_platform *w,
		       const struct oci_desc *d)
{
	const char *v;
	int have, want;

	if (!d->os || !d->arch || strcmp(d->os, w->os) ||
	    strcmp(norm_arch(d->arch), w->arch))
		return -1;
	v = d->variant ? d->variant : "";
	if (!w->variant[0])
		return v[0] ? 50 : 100;
	if (!strcmp(v, w->variant))
		return 100;
	if (!strcmp(w->arch, "arm64") && !strcmp(w->variant, "v8") && !v[0])
		return 90;
	if (!strcmp(w->arch, "arm")) {
		want = variant_num(w->variant);
		have = variant_num(v);
		if (!v[0] && want >= 7)
			return 80; /* "arm" alone is v7 */
		if (have > 0 && want > 0 && have < want)
			return 10 + have;
	}
	return -1;
}

void oci_format_platform(char *buf, size_t size, const struct oci_desc *d)
{
	char q1[OCI_QUOTE_MAX + 4], q2[OCI_QUOTE_MAX + 4],
		q3[OCI_QUOTE_MAX + 4];

	if (!d->os)
		snprintf(buf, size, "(none)");
	else
		snprintf(buf, size, "%s/%s%s%s", oci_quote(d->os, q1),
			 oci_quote(d->arch, q2), d->variant ? "/" : "",
			 d->variant ? oci_quote(d->variant, q3) : "");
}

/* Append @item to the ", "-separated list @buf, marking a cut with "...". */
void oci_list_add(char *buf, size_t size, const char *item)
{
	char q[OCI_QUOTE_MAX + 4];
	size_t len = strlen(buf);

	if (len >= 3 && !strcmp(buf + len - 3, "..."))
		return;
	if (len + strlen(item) + 8 > size) {
		snprintf(buf + len, size - len, "%s...", len ? ", " : "");
		return;
	}
	snprintf(buf + len, size - len, "%s%s", len ? ", " : "",
		 oci_quote(item, q));
}
