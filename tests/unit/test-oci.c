/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * OCI sources: layout directories, tags and digest references, nested
 * multi-platform indexes, oci-archive and docker-archive read in place,
 * and the errors for bad input. Every fixture is generated here: JSON
 * written by hand, layers and archives made with libarchive.
 */
/* Fixture paths live in fixed buffers far larger than they need. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cfs/image.h>

#include "common/error.h"
#include "convert/oci.h"
#include "test.h"

#define MT_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_CONFIG "application/vnd.oci.image.config.v1+json"
#define MT_TAR "application/vnd.oci.image.layer.v1.tar"
#define MT_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_DOCKER_LAYER "application/vnd.docker.image.rootfs.diff.tar"

#define DIGEST_LEN 72

static char T[1024]; /* the test's scratch directory */

static void die(const char *what)
{
	fprintf(stderr, "fixture: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void sha256(const void *buf, size_t len, char out[DIGEST_LEN])
{
	uint8_t md[CFS_DIGEST_SIZE];
	unsigned int n;

	if (!EVP_Digest(buf, len, md, &n, EVP_sha256(), NULL))
		die("EVP_Digest");
	memcpy(out, "sha256:", 7);
	cfs_digest_to_hex(md, out + 7);
}

static void put_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0 || write(fd, buf, len) != (ssize_t)len || close(fd) < 0)
		die(path);
}

static void put_str(const char *path, const char *s)
{
	put_file(path, s, strlen(s));
}

static void path_in(char *out, const char *dir, const char *name)
{
	snprintf(out, 1024, "%s/%s", dir, name);
}

/* T/name with oci-layout and blobs/sha256/. */
static void layout(char *dir, const char *name)
{
	char p[1024];

	path_in(dir, T, name);
	if (mkdir(dir, 0755) < 0)
		die(dir);
	path_in(p, dir, "blobs");
	mkdir(p, 0755);
	path_in(p, dir, "blobs/sha256");
	mkdir(p, 0755);
	path_in(p, dir, "oci-layout");
	put_str(p, "{\"imageLayoutVersion\": \"1.0.0\"}");
}

static void blob_name(char *out, const char *dir, const char *digest)
{
	snprintf(out, 1024, "%s/blobs/sha256/%s", dir, digest + 7);
}

static void blob(const char *dir, const void *buf, size_t len,
		 char digest[DIGEST_LEN])
{
	char p[1024];

	sha256(buf, len, digest);
	blob_name(p, dir, digest);
	put_file(p, buf, len);
}

static size_t blob_str(const char *dir, const char *s, char digest[DIGEST_LEN])
{
	blob(dir, s, strlen(s), digest);
	return strlen(s);
}

static void index_json(const char *dir, const char *json)
{
	char p[1024];

	path_in(p, dir, "index.json");
	put_str(p, json);
}

/* A one-file tar layer in memory, optionally gzip-compressed. */
static size_t make_tar(uint8_t *buf, size_t cap, const char *name,
		       const char *content, bool gzip)
{
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	size_t used = 0;

	archive_write_set_format_pax_restricted(a);
	if (gzip)
		archive_write_add_filter_gzip(a);
	archive_write_set_bytes_in_last_block(a, 1);
	if (archive_write_open_memory(a, buf, cap, &used) != ARCHIVE_OK)
		die(archive_error_string(a));
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, (la_int64_t)strlen(content));
	archive_entry_set_mtime(e, 0, 0);
	if (archive_write_header(a, e) != ARCHIVE_OK ||
	    archive_write_data(a, content, strlen(content)) !=
		    (la_ssize_t)strlen(content) ||
	    archive_write_close(a) != ARCHIVE_OK)
		die(archive_error_string(a));
	archive_entry_free(e);
	archive_write_free(a);
	/* gzip's MTIME field (bytes 4-7) would make fixtures differ
	 * between seconds; zero means "none". */
	if (gzip && used >= 10)
		memset(buf + 4, 0, 4);
	return used;
}

/* One image: a tar layer and a gzip layer, its config and manifest. */
struct fx {
	char manifest[DIGEST_LEN];
	size_t manifest_size;
	char config[DIGEST_LEN];
	size_t config_size;
	char layer[2][DIGEST_LEN];
	size_t layer_size[2];
	char diff[2][DIGEST_LEN];
	/* for docker-archive fixtures */
	char cfg_json[2048];
	uint8_t tar0[16384], gz1[16384];
};

static void fx_image(const char *dir, const char *tag, struct fx *x)
{
	uint8_t tar[16384];
	char content[64], man[4096];
	size_t n;

	snprintf(content, sizeof(content), "hello from %s\n", tag);
	n = make_tar(x->tar0, sizeof(x->tar0), "etc/hello", content, false);
	sha256(x->tar0, n, x->layer[0]);
	if (dir)
		blob(dir, x->tar0, n, x->layer[0]);
	x->layer_size[0] = n;
	memcpy(x->diff[0], x->layer[0], DIGEST_LEN);

	n = make_tar(tar, sizeof(tar), "etc/other", content, false);
	sha256(tar, n, x->diff[1]);
	n = make_tar(x->gz1, sizeof(x->gz1), "etc/other", content, true);
	sha256(x->gz1, n, x->layer[1]);
	if (dir)
		blob(dir, x->gz1, n, x->layer[1]);
	x->layer_size[1] = n;

	snprintf(x->cfg_json, sizeof(x->cfg_json),
		 "{\"architecture\":\"%s\",\"os\":\"linux\",\"rootfs\":"
		 "{\"type\":\"layers\",\"diff_ids\":[\"%s\",\"%s\"]}}",
		 tag, x->diff[0], x->diff[1]);
	x->config_size = strlen(x->cfg_json);
	sha256(x->cfg_json, x->config_size, x->config);
	if (dir)
		blob_str(dir, x->cfg_json, x->config);

	snprintf(man, sizeof(man),
		 "{\"schemaVersion\":2,\"mediaType\":\"" MT_MANIFEST "\","
		 "\"config\":{\"mediaType\":\"" MT_CONFIG
		 "\",\"digest\":\"%s\","
		 "\"size\":%zu},\"layers\":[{\"mediaType\":\"" MT_TAR "\","
		 "\"digest\":\"%s\",\"size\":%zu},{\"mediaType\":\"" MT_GZIP
		 "\",\"digest\":\"%s\",\"size\":%zu}]}",
		 x->config, x->config_size, x->layer[0], x->layer_size[0],
		 x->layer[1], x->layer_size[1]);
	x->manifest_size = strlen(man);
	sha256(man, x->manifest_size, x->manifest);
	if (dir)
		blob_str(dir, man, x->manifest);
}

/* Hash layer @i's bytes as cfs_oci_layer_blob locates them. */
static int layer_hash(struct cfs_oci_image *img, size_t i, char out[DIGEST_LEN],
		      uint64_t *len)
{
	struct cfs_blob b;
	uint8_t *buf;
	int r = cfs_oci_layer_blob(img, i, &b);

	if (r < 0)
		return r;
	*len = b.length;
	buf = malloc(b.length + 1);
	if (!buf ||
	    pread(b.fd, buf, b.length, (off_t)b.offset) != (ssize_t)b.length) {
		free(buf);
		return -EIO;
	}
	sha256(buf, b.length, out);
	free(buf);
	return 0;
}

static void check_image(struct cfs_oci_image *img, const struct fx *x,
			bool docker)
{
	char h[DIGEST_LEN];
	uint64_t len = 0;

	CHECK(img != NULL);
	if (!img)
		return;
	if (docker)
		CHECK(img->manifest_digest == NULL);
	else
		CHECK(img->manifest_digest &&
		      !strcmp(img->manifest_digest, x->manifest));
	CHECK(!strcmp(img->config_digest, x->config));
	CHECK(img->config_len == x->config_size);
	sha256(img->config, img->config_len, h);
	CHECK(!strcmp(h, x->config));
	CHECK(img->n_layers == 2);
	if (img->n_layers != 2)
		return;
	for (size_t i = 0; i < 2; i++) {
		struct cfs_oci_layer *l = &img->layers[i];

		CHECK(!strcmp(l->diff_id, x->diff[i]));
		CHECK(l->size == (int64_t)x->layer_size[i]);
		CHECK(l->verify_blob == !docker);
		CHECK(!strcmp(l->digest, docker ? x->diff[i] : x->layer[i]));
		CHECK_OK(layer_hash(img, i, h, &len));
		CHECK(len == x->layer_size[i]);
		CHECK(!strcmp(h, x->layer[i]));
	}
	CHECK(img->layers[0].compression == CFS_LAYER_TAR);
	CHECK(img->layers[1].compression == CFS_LAYER_GZIP);
	CHECK(!strcmp(img->layers[0].media_type,
		      docker ? MT_DOCKER_LAYER : MT_TAR));
	CHECK(!strcmp(img->layers[1].media_type,
		      docker ? MT_DOCKER_LAYER ".gzip" : MT_GZIP));
}

/* Open @source, check that it fails with @err and a message containing
 * every string of the NULL-terminated list. */
static void open_fail_impl(int line, const char *source, const char *platform,
			   int err, const char *const *needles)
{
	struct cfs_oci_image *img = (void *)1;
	int r;

	cfs_error_clear();
	r = cfs_oci_open(&img, source, platform);
	test_checks++;
	if (r != -err || img != NULL) {
		test_failures++;
		fprintf(stderr, "%s:%d: open(%s) returned %d, want %d (%s)\n",
			__FILE__, line, source, r, -err, cfs_error_message());
	}
	if (r == 0)
		cfs_oci_free(img);
	if (getenv("CFS_TEST_VERBOSE"))
		printf("%d: %s\n", line, cfs_error_message());
	for (; *needles; needles++) {
		test_checks++;
		if (!strstr(cfs_error_message(), *needles)) {
			test_failures++;
			fprintf(stderr, "%s:%d: message \"%s\" lacks \"%s\"\n",
				__FILE__, line, cfs_error_message(), *needles);
		}
	}
	/* one line */
	test_checks++;
	if (strchr(cfs_error_message(), '\n'))
		test_failures++;
}

#define OPEN_FAIL(src, plat, err, ...)                                         \
	open_fail_impl(__LINE__, src, plat, err,                               \
		       (const char *const[]){ __VA_ARGS__, NULL })

static char *src_of(char *buf, const char *kind, const char *path,
		    const char *ref)
{
	snprintf(buf, 2048, "%s:%s%s%s", kind, path, ref ? ":" : "",
		 ref ? ref : "");
	return buf;
}

static struct cfs_oci_image *open_ok(int line, const char *source,
				     const char *platform)
{
	struct cfs_oci_image *img = NULL;
	int r = cfs_oci_open(&img, source, platform);

	test_checks++;
	if (r < 0 || !img) {
		test_failures++;
		fprintf(stderr, "%s:%d: open(%s) failed: %d (%s)\n", __FILE__,
			line, source, r, cfs_error_message());
	}
	return img;
}

#define OPEN_OK(src, plat) open_ok(__LINE__, src, plat)

/* ---- archives --------------------------------------------------------- */

struct member {
	const char *name;
	const void *data;
	size_t len;
	const char *symlink; /* a symlink when set */
	bool dir;
};

static void tar_add(struct archive *a, const struct member *m, bool pax_hdr)
{
	struct archive_entry *e = archive_entry_new();

	archive_entry_set_pathname(e, m->name);
	archive_entry_set_mtime(e, 1700000000, pax_hdr ? 123456789 : 0);
	if (m->symlink) {
		archive_entry_set_filetype(e, AE_IFLNK);
		archive_entry_set_perm(e, 0777);
		archive_entry_set_symlink(e, m->symlink);
	} else if (m->dir) {
		archive_entry_set_filetype(e, AE_IFDIR);
		archive_entry_set_perm(e, 0755);
	} else {
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0644);
		archive_entry_set_size(e, (la_int64_t)m->len);
	}
	if (archive_write_header(a, e) != ARCHIVE_OK)
		die(archive_error_string(a));
	if (!m->symlink && !m->dir && m->len &&
	    archive_write_data(a, m->data, m->len) != (la_ssize_t)m->len)
		die(archive_error_string(a));
	archive_entry_free(e);
}

static struct archive *tar_open(const char *path, int format)
{
	struct archive *a = archive_write_new();

	if (archive_write_set_format(a, format) != ARCHIVE_OK ||
	    archive_write_open_filename(a, path) != ARCHIVE_OK)
		die(archive_error_string(a));
	return a;
}

static void tar_close(struct archive *a)
{
	if (archive_write_close(a) != ARCHIVE_OK)
		die(archive_error_string(a));
	archive_write_free(a);
}

/* Add the files under @root/@rel as @prefix@rel... */
static void tar_dir(struct archive *a, const char *root, const char *rel,
		    const char *prefix, bool pax_hdr)
{
	char full[2048], name[2048];
	struct dirent *de;
	DIR *d;

	snprintf(full, sizeof(full), "%s%s%s", root, *rel ? "/" : "", rel);
	d = opendir(full);
	if (!d)
		die(full);
	while ((de = readdir(d))) {
		char sub[1024], p[2048];
		struct stat sb;

		if (de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "",
			 de->d_name);
		snprintf(p, sizeof(p), "%s/%s", root, sub);
		if (stat(p, &sb) < 0)
			die(p);
		snprintf(name, sizeof(name), "%s%s", prefix, sub);
		if (S_ISDIR(sb.st_mode)) {
			struct member m = { .name = name, .dir = true };
			tar_add(a, &m, pax_hdr);
			tar_dir(a, root, sub, prefix, pax_hdr);
		} else {
			uint8_t *buf = malloc((size_t)sb.st_size + 1);
			int fd = open(p, O_RDONLY);
			struct member m = { .name = name,
					    .data = buf,
					    .len = (size_t)sb.st_size };

			if (!buf || fd < 0 ||
			    read(fd, buf, m.len) != (ssize_t)m.len)
				die(p);
			close(fd);
			tar_add(a, &m, pax_hdr);
			free(buf);
		}
	}
	closedir(d);
}

/* ---- the tests -------------------------------------------------------- */

static void test_layout(void)
{
	char dir[1024], json[4096], src[2048], p[1024], m256[DIGEST_LEN];
	struct cfs_oci_image *img;
	struct fx x, y;

	layout(dir, "simple");
	fx_image(dir, "amd64", &x);
	snprintf(
		json, sizeof(json),
		"{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MT_MANIFEST
		"\",\"digest\":\"%s\",\"size\":%zu,\"annotations\":"
		"{\"org.opencontainers.image.ref.name\":\"latest\"}},"
		"{\"mediaType\":\"" MT_MANIFEST "\",\"digest\":\"%s\","
		"\"size\":%zu,\"annotations\":"
		"{\"org.opencontainers.image.ref.name\":\"v1\"}}]}",
		x.manifest, x.manifest_size, x.manifest, x.manifest_size);
	index_json(dir, json);

	/* two tags, one image: no REF needed */
	img = OPEN_OK(src_of(src, "oci", dir, NULL), "linux/amd64");
	check_image(img, &x, false);
	CHECK(img && !strcmp(img->source, src));
	/* blobs of a directory come from files: offset 0, fd reused */
	if (img) {
		struct cfs_blob a, b;
		CHECK_OK(cfs_oci_layer_blob(img, 0, &a));
		CHECK_OK(cfs_oci_layer_blob(img, 0, &b));
		CHECK(a.fd == b.fd && a.offset == 0 && a.fd >= 0);
	}
	cfs_oci_free(img);
	img = OPEN_OK(src_of(src, "oci", dir, "latest"), NULL);
	check_image(img, &x, false);
	cfs_oci_free(img);
	img = OPEN_OK(src_of(src, "oci", dir, "v1"), NULL);
	check_image(img, &x, false);
	cfs_oci_free(img);
	img = OPEN_OK(src_of(src, "oci", dir, x.manifest), NULL);
	check_image(img, &x, false);
	cfs_oci_free(img);
	snprintf(p, sizeof(p), "@%s", x.manifest);
	img = OPEN_OK(src_of(src, "oci", dir, p), NULL);
	check_image(img, &x, false);
	cfs_oci_free(img);
	/* a trailing ':' is no reference */
	snprintf(p, sizeof(p), "%s:", dir);
	img = OPEN_OK(src_of(src, "oci", p, NULL), NULL);
	check_image(img, &x, false);
	cfs_oci_free(img);

	OPEN_FAIL(src_of(src, "oci", dir, "nope"), NULL, ENOENT,
		  "no image tagged \"nope\"", "latest, v1", dir);
	/* a digest not in index.json names a blob; a missing one fails */
	sha256("x", 1, m256);
	OPEN_FAIL(src_of(src, "oci", dir, m256), NULL, ENOENT, m256 + 7,
		  "No such file");
	/* a digest of something that is no manifest */
	OPEN_FAIL(src_of(src, "oci", dir, x.layer[0]), NULL, EINVAL, "JSON",
		  x.layer[0]);
	OPEN_FAIL(src_of(src, "oci", dir,
			 "sha512:00112233445566778899aabbccddeeff00112233"
			 "445566778899aabbccddeeff"),
		  NULL, EOPNOTSUPP, "sha512", "unsupported digest algorithm");
	OPEN_FAIL(src_of(src, "oci", dir, "sha256:abc"), NULL, EINVAL,
		  "reference sha256:abc: malformed digest");
	OPEN_FAIL("oci:/nonexistent/layout", NULL, ENOENT,
		  "oci:/nonexistent/layout", "No such file");
	OPEN_FAIL(src_of(src, "oci", dir, NULL), "linux", EINVAL,
		  "platform \"linux\"", "OS/ARCH");
	OPEN_FAIL(src_of(src, "oci", dir, NULL), "linux/amd64/v1/x", EINVAL,
		  "OS/ARCH");
	OPEN_FAIL("dir:/x", NULL, EINVAL, "not an OCI source");

	/* a layout whose path has colons, with and without REF */
	layout(dir, "lay:out:x");
	fx_image(dir, "colon", &y);
	snprintf(
		json, sizeof(json),
		"{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MT_MANIFEST
		"\",\"digest\":\"%s\",\"size\":%zu,\"annotations\":"
		"{\"org.opencontainers.image.ref.name\":\"latest\"}}]}",
		y.manifest, y.manifest_size);
	index_json(dir, json);
	img = OPEN_OK(src_of(src, "oci", dir, NULL), NULL);
	check_image(img, &y, false);
	cfs_oci_free(img);
	img = OPEN_OK(src_of(src, "oci", dir, "latest"), NULL);
	check_image(img, &y, false);
	cfs_oci_free(img);
	img = OPEN_OK(src_of(src, "oci", dir, y.manifest), NULL);
	check_image(img, &y, false);
	cfs_oci_free(img);

	/* two images, no platforms: REF needed */
	layout(dir, "two");
	fx_image(dir, "one", &x);
	fx_image(dir, "two", &y);
	snprintf(
		json, sizeof(json),
		"{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MT_MANIFEST
		"\",\"digest\":\"%s\",\"size\":%zu,\"annotations\":"
		"{\"org.opencontainers.image.ref.name\":\"one\"}},"
		"{\"mediaType\":\"" MT_MANIFEST "\",\"digest\":\"%s\","
		"\"size\":%zu,\"annotations\":"
		"{\"org.opencontainers.image.ref.name\":\"two\"}}]}",
		x.manifest, x.manifest_size, y.manifest, y.manifest_size);
	index_json(dir, json);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EINVAL, "lists 2 images",
		  "one, two", "oci:PATH:REF");
	img = OPEN_OK(src_of(src, "oci", dir, "two"), NULL);
	check_image(img, &y, false);
	cfs_oci_free(img);
	img = OPEN_OK(src_of(src, "oci", dir, "one"), NULL);
	check_image(img, &x, false);
	cfs_oci_free(img);

	CHECK(cfs_oci_is_source("oci:/x"));
	CHECK(cfs_oci_is_source("oci-archive:/x.tar"));
	CHECK(cfs_oci_is_source("docker-archive:/x.tar:a:b"));
	CHECK(!cfs_oci_is_source("dir:/x"));
	CHECK(!cfs_oci_is_source("oci"));
	CHECK(!cfs_oci_is_source("docker://x"));
}

static const char *plat_json(const char *arch, const char *variant)
{
	static char buf[4][128];
	static int n;
	char *b = buf[n++ % 4];

	snprintf(
		b, 128,
		",\"platform\":{\"architecture\":\"%s\",\"os\":\"linux\"%s%s%s}",
		arch, variant ? ",\"variant\":\"" : "", variant ? variant : "",
		variant ? "\"" : "");
	return b;
}

static void test_platforms(void)
{
	char dir[1024], json[8192], src[2048], host[CFS_OCI_PLATFORM_MAX];
	char inner[DIGEST_LEN], outer[DIGEST_LEN], flat[1024];
	size_t inner_size, outer_size;
	struct cfs_oci_image *img;
	struct fx amd, arm64, arm7;
	const struct fx *hostfx = NULL;

	layout(dir, "multi");
	fx_image(dir, "amd64", &amd);
	fx_image(dir, "arm64", &arm64);
	fx_image(dir, "arm", &arm7);
	/* index.json -> outer index -> { inner index -> {amd64, arm64/v8},
	 * arm/v7 }, with an attestation-like entry that never matches */
	snprintf(
		json, sizeof(json),
		"{\"schemaVersion\":2,\"mediaType\":\"" MT_INDEX "\","
		"\"manifests\":[{\"mediaType\":\"" MT_MANIFEST "\",\"digest\":"
		"\"%s\",\"size\":%zu%s},{\"mediaType\":\"" MT_MANIFEST "\","
		"\"digest\":\"%s\",\"size\":%zu%s},{\"mediaType\":\"" MT_MANIFEST
		"\",\"digest\":\"%s\",\"size\":%zu,\"platform\":"
		"{\"architecture\":\"unknown\",\"os\":\"unknown\"}}]}",
		amd.manifest, amd.manifest_size, plat_json("amd64", NULL),
		arm64.manifest, arm64.manifest_size, plat_json("arm64", "v8"),
		amd.config, amd.config_size);
	inner_size = blob_str(dir, json, inner);
	snprintf(
		json, sizeof(json),
		"{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MT_INDEX
		"\",\"digest\":\"%s\",\"size\":%zu},{\"mediaType\":\"" MT_MANIFEST
		"\",\"digest\":\"%s\",\"size\":%zu%s}]}",
		inner, inner_size, arm7.manifest, arm7.manifest_size,
		plat_json("arm", "v7"));
	outer_size = blob_str(dir, json, outer);
	snprintf(
		json, sizeof(json),
		"{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MT_INDEX
		"\",\"digest\":\"%s\",\"size\":%zu,\"annotations\":"
		"{\"org.opencontainers.image.ref.name\":\"multi\"}}]}",
		outer, outer_size);
	index_json(dir, json);

	img = OPEN_OK(src_of(src, "oci", dir, NULL), "linux/amd64");
	check_image(img, &amd, false);
	cfs_oci_free(img);
	img = OPEN_OK(src_of(src, "oci", dir, "multi"), "linux/x86_64");
	check_image(img, &amd, false);
	cfs_oci_free(img);
	img = OPEN_OK(src_of(src, "oci", dir, NULL), "linux/arm64");
	check_image(img, &arm64, false);
	cfs_oci_free(img);
	img = OPEN_OK(src_of(src, "oci", dir, NULL), "linux/arm64/v8");
	check_image(img, &arm64, false);
	cfs_oci_free(img);
	img = OPEN_OK(src_of(src, "oci", dir, NULL), "linux/arm/v7");
	check_image(img, &arm7, false);
	cfs_oci_free(img);
	img = OPEN_OK(src_of(src, "oci", dir, NULL), "linux/arm");
	check_image(img, &arm7, false);
	cfs_oci_free(img);
	/* v8 32-bit arm runs v7 */
	img = OPEN_OK(src_of(src, "oci", dir, NULL), "linux/arm/v8");
	check_image(img, &arm7, false);
	cfs_oci_free(img);
	/* a digest REF may name the inner index or one manifest */
	img = OPEN_OK(src_of(src, "oci", dir, inner), "linux/arm64");
	check_image(img, &arm64, false);
	cfs_oci_free(img);
	img = OPEN_OK(src_of(src, "oci", dir, arm7.manifest), "linux/amd64");
	check_image(img, &arm7, false);
	cfs_oci_free(img);
	/* the host's platform */
	cfs_oci_host_platform(host);
	CHECK(!strncmp(host, "linux/", 6));
	if (!strcmp(host, "linux/amd64"))
		hostfx = &amd;
	else if (!strcmp(host, "linux/arm64/v8"))
		hostfx = &arm64;
	else if (!strcmp(host, "linux/arm/v7"))
		hostfx = &arm7;
	if (hostfx) {
		img = OPEN_OK(src_of(src, "oci", dir, NULL), NULL);
		check_image(img, hostfx, false);
		cfs_oci_free(img);
	}
	/* no match: the platforms of the index searched last are listed */
	OPEN_FAIL(src_of(src, "oci", dir, NULL), "linux/s390x", ENOENT,
		  "no image for linux/s390x", inner, "linux/amd64",
		  "linux/arm64/v8");
	OPEN_FAIL(src_of(src, "oci", dir, NULL), "linux/arm/v6", ENOENT,
		  "no image for linux/arm/v6");
	OPEN_FAIL(src_of(src, "oci", dir, NULL), "windows/amd64", ENOENT,
		  "no image for windows/amd64");

	/* index.json itself as the multi-platform index */
	layout(dir, "flat");
	fx_image(dir, "amd64", &amd);
	fx_image(dir, "arm64", &arm64);
	snprintf(flat, sizeof(flat), "%s", dir);
	snprintf(
		json, sizeof(json),
		"{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MT_MANIFEST
		"\",\"digest\":\"%s\",\"size\":%zu%s},{\"mediaType\":\"" MT_MANIFEST
		"\",\"digest\":\"%s\",\"size\":%zu%s}]}",
		amd.manifest, amd.manifest_size, plat_json("amd64", NULL),
		arm64.manifest, arm64.manifest_size, plat_json("arm64", NULL));
	index_json(dir, json);
	img = OPEN_OK(src_of(src, "oci", flat, NULL), "linux/arm64");
	check_image(img, &arm64, false);
	cfs_oci_free(img);
	img = OPEN_OK(src_of(src, "oci", flat, NULL), "linux/amd64");
	check_image(img, &amd, false);
	cfs_oci_free(img);
	OPEN_FAIL(src_of(src, "oci", flat, NULL), "linux/riscv64", ENOENT,
		  "no image for linux/riscv64");

	/* indexes nested too deep */
	layout(dir, "deep");
	fx_image(dir, "amd64", &amd);
	{
		char d[DIGEST_LEN];
		size_t sz;

		memcpy(d, amd.manifest, DIGEST_LEN);
		sz = amd.manifest_size;
		for (int i = 0; i <= CFS_OCI_INDEX_DEPTH_MAX; i++) {
			snprintf(json, sizeof(json),
				 "{\"schemaVersion\":2,\"manifests\":[{"
				 "\"mediaType\":\"%s\",\"digest\":\"%s\","
				 "\"size\":%zu%s}]}",
				 i ? MT_INDEX : MT_MANIFEST, d, sz,
				 i ? "" : plat_json("amd64", NULL));
			sz = blob_str(dir, json, d);
			if (i == CFS_OCI_INDEX_DEPTH_MAX - 1) {
				/* exactly the limit works */
				snprintf(json, sizeof(json),
					 "{\"schemaVersion\":2,\"manifests\":"
					 "[{\"mediaType\":\"" MT_INDEX "\","
					 "\"digest\":\"%s\",\"size\":%zu,"
					 "\"annotations\":{\"org.opencontainers"
					 ".image.ref.name\":\"ok\"}}]}",
					 d, sz);
				index_json(dir, json);
				img = OPEN_OK(src_of(src, "oci", dir, "ok"),
					      "linux/amd64");
				check_image(img, &amd, false);
				cfs_oci_free(img);
			}
		}
		snprintf(json, sizeof(json),
			 "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":"
			 "\"" MT_INDEX "\",\"digest\":\"%s\",\"size\":%zu}]}",
			 d, sz);
		index_json(dir, json);
		OPEN_FAIL(src_of(src, "oci", dir, NULL), "linux/amd64", E2BIG,
			  "nested more than 8 deep");
	}
}

/* An index.json entry: manifest @x, platform linux/@arch unless NULL,
 * tag @tag unless NULL. */
static const char *entry_json(const struct fx *x, const char *arch,
			      const char *tag)
{
	static char buf[4][512];
	static int k;
	char *b = buf[k++ % 4], ann[160] = "";

	if (tag)
		snprintf(ann, sizeof(ann),
			 ",\"annotations\":{\"org.opencontainers.image.ref."
			 "name\":\"%s\"}",
			 tag);
	snprintf(b, 512,
		 "{\"mediaType\":\"" MT_MANIFEST
		 "\",\"digest\":\"%s\",\"size\":%zu%s%s}",
		 x->manifest, x->manifest_size,
		 arch ? plat_json(arch, NULL) : "", ann);
	return b;
}

/*
 * Sources naming several images without saying which: an error listing
 * what to choose from, never the first one taken silently; with one
 * candidate (or several entries of one image) nothing changes.
 */
static void test_ambiguous(void)
{
	char dir[1024], json[8192], src[2048], inner[DIGEST_LEN];
	struct cfs_oci_image *img;
	struct fx one, two, arm;
	size_t inner_size;

	/* two tags, same platform */
	layout(dir, "two-tags-one-platform");
	fx_image(dir, "one", &one);
	fx_image(dir, "two", &two);
	snprintf(json, sizeof(json),
		 "{\"schemaVersion\":2,\"manifests\":[%s,%s]}",
		 entry_json(&one, "amd64", "one"),
		 entry_json(&two, "amd64", "two"));
	index_json(dir, json);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), "linux/amd64", EINVAL,
		  "index.json lists 2 images", "tags: one, two",
		  "oci:PATH:REF");
	img = OPEN_OK(src_of(src, "oci", dir, "two"), "linux/amd64");
	check_image(img, &two, false);
	cfs_oci_free(img);

	/* two tags, two platforms: two images as well */
	fx_image(dir, "arm64", &arm);
	snprintf(json, sizeof(json),
		 "{\"schemaVersion\":2,\"manifests\":[%s,%s]}",
		 entry_json(&one, "amd64", "one"),
		 entry_json(&arm, "arm64", "arm"));
	index_json(dir, json);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), "linux/amd64", EINVAL,
		  "index.json lists 2 images", "tags: one, arm");
	img = OPEN_OK(src_of(src, "oci", dir, "arm"), "linux/amd64");
	check_image(img, &arm, false);
	cfs_oci_free(img);

	/* one tag on two images for one platform (and one for another):
	 * the other platform is no choice to make, this one is */
	snprintf(json, sizeof(json),
		 "{\"schemaVersion\":2,\"manifests\":[%s,%s,%s]}",
		 entry_json(&one, "amd64", "multi"),
		 entry_json(&arm, "arm64", "multi"),
		 entry_json(&two, "amd64", "multi"));
	index_json(dir, json);
	img = OPEN_OK(src_of(src, "oci", dir, NULL), "linux/arm64");
	check_image(img, &arm, false);
	cfs_oci_free(img);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), "linux/amd64", EINVAL,
		  "index.json: more than one image for linux/amd64",
		  one.manifest, two.manifest, "oci:PATH:DIGEST");
	OPEN_FAIL(src_of(src, "oci", dir, "multi"), "linux/amd64", EINVAL,
		  "index.json: tag \"multi\": more than one image for "
		  "linux/amd64");
	img = OPEN_OK(src_of(src, "oci", dir, two.manifest), "linux/amd64");
	check_image(img, &two, false);
	cfs_oci_free(img);
	/* untagged, as a multi-platform index.json */
	snprintf(json, sizeof(json),
		 "{\"schemaVersion\":2,\"manifests\":[%s,%s,%s]}",
		 entry_json(&one, "amd64", NULL),
		 entry_json(&arm, "arm64", NULL),
		 entry_json(&two, "amd64", NULL));
	index_json(dir, json);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), "linux/amd64", EINVAL,
		  "more than one image for linux/amd64");
	/* one image listed twice for a platform is one image */
	snprintf(json, sizeof(json),
		 "{\"schemaVersion\":2,\"manifests\":[%s,%s,%s]}",
		 entry_json(&one, "amd64", NULL),
		 entry_json(&arm, "arm64", NULL),
		 entry_json(&one, "amd64", NULL));
	index_json(dir, json);
	img = OPEN_OK(src_of(src, "oci", dir, NULL), "linux/amd64");
	check_image(img, &one, false);
	cfs_oci_free(img);

	/* a nested index with two images for one platform */
	snprintf(json, sizeof(json),
		 "{\"schemaVersion\":2,\"manifests\":[%s,%s,%s]}",
		 entry_json(&one, "amd64", NULL),
		 entry_json(&two, "amd64", NULL),
		 entry_json(&arm, "arm64", NULL));
	inner_size = blob_str(dir, json, inner);
	snprintf(
		json, sizeof(json),
		"{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MT_INDEX
		"\",\"digest\":\"%s\",\"size\":%zu,\"annotations\":"
		"{\"org.opencontainers.image.ref.name\":\"nested\"}}]}",
		inner, inner_size);
	index_json(dir, json);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), "linux/amd64", EINVAL, inner,
		  "more than one image for linux/amd64", one.manifest,
		  two.manifest, "oci:PATH:DIGEST");
	img = OPEN_OK(src_of(src, "oci", dir, NULL), "linux/arm64");
	check_image(img, &arm, false);
	cfs_oci_free(img);
	img = OPEN_OK(src_of(src, "oci", dir, one.manifest), NULL);
	check_image(img, &one, false);
	cfs_oci_free(img);

	/* --platform matching several variants equally well */
	snprintf(
		json, sizeof(json),
		"{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MT_MANIFEST
		"\",\"digest\":\"%s\",\"size\":%zu%s},{\"mediaType\":\"" MT_MANIFEST
		"\",\"digest\":\"%s\",\"size\":%zu%s}]}",
		one.manifest, one.manifest_size, plat_json("arm", "v6"),
		two.manifest, two.manifest_size, plat_json("arm", "v7"));
	index_json(dir, json);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), "linux/arm", EINVAL,
		  "more than one image for linux/arm", one.manifest,
		  two.manifest);
	img = OPEN_OK(src_of(src, "oci", dir, NULL), "linux/arm/v7");
	check_image(img, &two, false);
	cfs_oci_free(img);
	img = OPEN_OK(src_of(src, "oci", dir, NULL), "linux/arm/v6");
	check_image(img, &one, false);
	cfs_oci_free(img);
}

/* ---- bad layouts ------------------------------------------------------ */

/* Store @man as the manifest blob and list it alone in index.json, with
 * its size plus @size_delta. */
static size_t set_manifest(const char *dir, const char *man, char d[DIGEST_LEN],
			   long size_delta)
{
	char json[1024];
	size_t n = blob_str(dir, man, d);

	snprintf(
		json, sizeof(json),
		"{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MT_MANIFEST
		"\",\"digest\":\"%s\",\"size\":%ld}]}",
		d, (long)n + size_delta);
	index_json(dir, json);
	return n;
}

/* A layout T/@name holding the blobs of image "amd64". */
static void fresh(char *dir, const char *name, struct fx *x)
{
	layout(dir, name);
	fx_image(dir, "amd64", x);
}

static void manifest_with(char *out, size_t cap, const struct fx *x,
			  const char *layer0_mt, const char *layers)
{
	char buf[2048];

	if (!layers) {
		snprintf(buf, sizeof(buf),
			 "[{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":"
			 "%zu},{\"mediaType\":\"" MT_GZIP "\",\"digest\":"
			 "\"%s\",\"size\":%zu}]",
			 layer0_mt, x->layer[0], x->layer_size[0], x->layer[1],
			 x->layer_size[1]);
		layers = buf;
	}
	snprintf(out, cap,
		 "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" MT_CONFIG
		 "\",\"digest\":\"%s\",\"size\":%zu},\"layers\":%s}",
		 x->config, x->config_size, layers);
}

static void test_bad_layouts(void)
{
	char dir[1024], src[2048], p[1024], man[8192], d[DIGEST_LEN];
	char msg[512];
	struct cfs_oci_image *img;
	struct fx x;
	size_t n;

	/* missing oci-layout */
	layout(dir, "nolayout");
	path_in(p, dir, "oci-layout");
	unlink(p);
	index_json(dir, "{\"schemaVersion\":2,\"manifests\":[]}");
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, ENOENT,
		  "no oci-layout file", dir);

	/* bad imageLayoutVersion */
	layout(dir, "badversion");
	path_in(p, dir, "oci-layout");
	put_str(p, "{\"imageLayoutVersion\":\"2.0.0\"}");
	index_json(dir, "{\"schemaVersion\":2,\"manifests\":[]}");
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EOPNOTSUPP,
		  "oci-layout: imageLayoutVersion \"2.0.0\" is not supported");
	put_str(p, "{\"imageLayoutVersion\":1}");
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EINVAL,
		  "oci-layout: imageLayoutVersion is an integer, expected a "
		  "string");

	/* empty index, missing index.json */
	layout(dir, "empty");
	index_json(dir, "{\"schemaVersion\":2,\"manifests\":[]}");
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, ENOENT,
		  "index.json lists no images");
	path_in(p, dir, "index.json");
	unlink(p);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, ENOENT, "index.json",
		  "No such file");

	/* manifest digest mismatch: the blob's bytes are not its name */
	fresh(dir, "digestmismatch", &x);
	manifest_with(man, sizeof(man), &x, MT_TAR, NULL);
	n = set_manifest(dir, man, d, 0);
	blob_name(p, dir, d);
	man[n - 2] = ' '; /* same size, other bytes */
	put_str(p, man);
	snprintf(msg, sizeof(msg),
		 "manifest %s: content has digest sha256:", d);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EBADMSG, msg,
		  "descriptor in index.json says");
	/* a digest REF checks the content too, also of blobs that
	 * index.json does not list */
	OPEN_FAIL(src_of(src, "oci", dir, d), NULL, EBADMSG, msg);
	index_json(dir, "{\"schemaVersion\":2,\"manifests\":[]}");
	OPEN_FAIL(src_of(src, "oci", dir, d), NULL, EBADMSG, msg,
		  "the reference says");

	/* size mismatch (the descriptor says one byte more) */
	fresh(dir, "sizemismatch", &x);
	manifest_with(man, sizeof(man), &x, MT_TAR, NULL);
	n = set_manifest(dir, man, d, 1);
	snprintf(msg, sizeof(msg),
		 "manifest %s: size %zu, descriptor in index.json says %zu", d,
		 n, n + 1);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EBADMSG, msg);
	/* and one byte less */
	set_manifest(dir, man, d, -1);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EBADMSG, "says");

	/* a config size mismatch names the manifest */
	fresh(dir, "cfgsize", &x);
	x.config_size++;
	manifest_with(man, sizeof(man), &x, MT_TAR, NULL);
	set_manifest(dir, man, d, 0);
	snprintf(msg, sizeof(msg),
		 "config %s: size %zu, descriptor in manifest %s says %zu",
		 x.config, x.config_size - 1, d, x.config_size);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EBADMSG, msg);

	/* malformed JSON, with the byte offset */
	fresh(dir, "badjson", &x);
	set_manifest(dir, "{\"schemaVersion\": 2,, \"layers\": []}", d, 0);
	snprintf(msg, sizeof(msg), "manifest %s: invalid JSON at byte 20: ", d);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EINVAL, msg);
	n = set_manifest(dir, "{\"schemaVersion\": 2, \"layers\": [", d, 0);
	snprintf(msg, sizeof(msg), "invalid JSON at byte %zu: unexpected end",
		 n);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EINVAL, msg);
	set_manifest(dir, "{\"schemaVersion\": 2} {}", d, 0);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EINVAL,
		  "invalid JSON at byte 21");
	blob(dir, "{\"a\": \"\0\"}", 10, d);
	snprintf(
		p, sizeof(p),
		"{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MT_MANIFEST
		"\",\"digest\":\"%s\",\"size\":10}]}",
		d);
	index_json(dir, p);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EINVAL,
		  "invalid JSON at byte 7: NUL byte");
	index_json(dir, "{\"schemaVersion\":2,\"manifests\":[}");
	snprintf(msg, sizeof(msg), "index.json: invalid JSON at byte %zu",
		 strlen("{\"schemaVersion\":2,\"manifests\":["));
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EINVAL, msg);
	{
		/* deeper than json-c's nesting limit */
		char deep[400];
		memset(deep, '[', 200);
		memset(deep + 200, ']', 199);
		deep[399] = '\0';
		index_json(dir, deep);
		OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EINVAL,
			  "index.json: invalid JSON at byte", "nesting");
	}

	{
		/* a flood of empty objects, cheap in bytes, dear in memory */
		size_t cnt = 4 * 65536 + 1, len = 3 * cnt + 16;
		char *flood = malloc(len), *q = flood;

		q += sprintf(q, "[");
		for (size_t i = 0; i < cnt; i++)
			q += sprintf(q, "%s{}", i ? "," : "");
		sprintf(q, "]");
		set_manifest(dir, flood, d, 0);
		free(flood);
		OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, E2BIG,
			  "more than 262144 JSON objects and arrays");
		/* braces inside strings do not count */
		flood = malloc(len + 64);
		q = flood;
		q += sprintf(q, "{\"schemaVersion\":1,\"x\":\"\\\"");
		for (size_t i = 0; i < cnt; i++)
			*q++ = '{';
		sprintf(q, "\"}");
		set_manifest(dir, flood, d, 0);
		free(flood);
		OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EOPNOTSUPP,
			  "schemaVersion 1");
	}

	/* JSON over the limit: a config of 5000000 bytes */
	fresh(dir, "huge", &x);
	{
		size_t big = 5000000;
		char *cfg = malloc(big + 1);
		int len = snprintf(cfg, big,
				   "{\"rootfs\":{\"type\":\"layers\","
				   "\"diff_ids\":[\"%s\",\"%s\"]},\"pad\":\"",
				   x.diff[0], x.diff[1]);

		memset(cfg + len, 'x', big - (size_t)len - 2);
		memcpy(cfg + big - 2, "\"}", 3);
		blob(dir, cfg, big, x.config);
		free(cfg);
		x.config_size = big;
		manifest_with(man, sizeof(man), &x, MT_TAR, NULL);
		set_manifest(dir, man, d, 0);
		snprintf(msg, sizeof(msg),
			 "config %s: 5000000 bytes, limit 4194304", x.config);
		OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EFBIG, msg);
		/* index.json has no descriptor; the limit holds all the same */
		path_in(p, dir, "index.json");
		if (truncate(p, 5000000) < 0)
			die(p);
		OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EFBIG,
			  "index.json: 5000000 bytes, limit 4194304");
	}

	/* wrong JSON types, each naming the document and the key */
	fresh(dir, "types", &x);
	manifest_with(man, sizeof(man), &x, MT_TAR, "\"x\"");
	set_manifest(dir, man, d, 0);
	snprintf(msg, sizeof(msg),
		 "manifest %s: layers is a string, expected an array", d);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EINVAL, msg);
	manifest_with(man, sizeof(man), &x, MT_TAR,
		      "[{\"mediaType\":\"" MT_TAR "\",\"digest\":\"sha256:00\","
		      "\"size\":\"12\"}]");
	set_manifest(dir, man, d, 0);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EINVAL,
		  "layers[0].size is a string, expected an integer");
	manifest_with(man, sizeof(man), &x, MT_TAR,
		      "[{\"mediaType\":\"" MT_TAR "\",\"digest\":\"sha256:00\","
		      "\"size\":12}]");
	set_manifest(dir, man, d, 0);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EINVAL,
		  "layers[0].digest: malformed digest \"sha256:00\"");
	manifest_with(man, sizeof(man), &x, MT_TAR,
		      "[{\"mediaType\":\"" MT_TAR "\",\"digest\":\"sha256:00\","
		      "\"size\":-1}]");
	set_manifest(dir, man, d, 0);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EINVAL,
		  "layers[0].size is negative");
	manifest_with(man, sizeof(man), &x, MT_TAR, "[7]");
	set_manifest(dir, man, d, 0);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EINVAL,
		  "layers[0] is an integer, expected an object");
	set_manifest(dir, "[1, 2]", d, 0);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EINVAL,
		  "the document is an array, expected an object");
	set_manifest(dir, "{\"schemaVersion\":2,\"config\":[],\"layers\":[]}",
		     d, 0);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EINVAL,
		  "config is an array, expected an object");
	set_manifest(dir, "{\"schemaVersion\":2,\"layers\":[]}", d, 0);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EINVAL,
		  "config is missing");
	set_manifest(dir, "{\"schemaVersion\":1,\"layers\":[]}", d, 0);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EOPNOTSUPP,
		  "schemaVersion 1 is not supported");
	index_json(dir, "{\"schemaVersion\":2,\"manifests\":{}}");
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EINVAL,
		  "index.json: manifests is an object, expected an array");
	index_json(dir, "{\"manifests\":[{\"digest\":\"sha256:00\","
			"\"size\":1,\"annotations\":{\"org.opencontainers."
			"image.ref.name\":7}}]}");
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EINVAL,
		  "index.json: manifests[0].annotations.org.opencontainers."
		  "image.ref.name is an integer, expected a string");
	index_json(dir, "{\"manifests\":[{\"digest\":\"sha256:00\"}]}");
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EINVAL,
		  "index.json: manifests[0].size is missing");
	index_json(dir, "{\"manifests\":[{\"digest\":\"sha256:00\","
			"\"size\":1,\"platform\":{\"os\":\"linux\"}}]}");
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EINVAL,
		  "manifests[0].platform.architecture is missing");
	/* a digest never becomes a path unchecked */
	index_json(dir, "{\"manifests\":[{\"digest\":\"sha256:../../../x\","
			"\"size\":1}]}");
	OPEN_FAIL(
		src_of(src, "oci", dir, NULL), NULL, EINVAL,
		"manifests[0].digest: malformed digest \"sha256:../../../x\"");
	/* config types */
	x.config_size =
		blob_str(dir, "{\"rootfs\":{\"diff_ids\":\"a\"}}", x.config);
	manifest_with(man, sizeof(man), &x, MT_TAR, NULL);
	set_manifest(dir, man, d, 0);
	snprintf(msg, sizeof(msg),
		 "config %s: rootfs.diff_ids is a string, expected an array",
		 x.config);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EINVAL, msg);
	snprintf(p, sizeof(p),
		 "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\","
		 "\"sha256:abc\"]}}",
		 x.diff[0]);
	x.config_size = blob_str(dir, p, x.config);
	manifest_with(man, sizeof(man), &x, MT_TAR, NULL);
	set_manifest(dir, man, d, 0);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EINVAL,
		  "rootfs.diff_ids[1]: malformed digest");

	/* the document's mediaType against the descriptor's */
	fresh(dir, "mtmismatch", &x);
	snprintf(
		p, sizeof(p),
		"{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MT_INDEX
		"\",\"digest\":\"%s\",\"size\":%zu}]}",
		x.manifest, x.manifest_size);
	index_json(dir, p);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EINVAL,
		  "mediaType " MT_MANIFEST
		  ", descriptor in index.json says " MT_INDEX);
	/* without mediaType in the manifest the descriptor's is used, and
	 * docker's manifest type is accepted */
	manifest_with(man, sizeof(man), &x, MT_DOCKER_LAYER ".gzip", NULL);
	n = blob_str(dir, man, d);
	snprintf(p, sizeof(p),
		 "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\""
		 "application/vnd.docker.distribution.manifest.v2+json\","
		 "\"digest\":\"%s\",\"size\":%zu}]}",
		 d, n);
	index_json(dir, p);
	img = OPEN_OK(src_of(src, "oci", dir, NULL), NULL);
	CHECK(img && img->layers[0].compression == CFS_LAYER_GZIP);
	CHECK(img &&
	      !strcmp(img->layers[0].media_type, MT_DOCKER_LAYER ".gzip"));
	cfs_oci_free(img);
	snprintf(p, sizeof(p),
		 "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\""
		 "application/vnd.oci.artifact.manifest.v1+json\","
		 "\"digest\":\"%s\",\"size\":%zu}]}",
		 d, n);
	index_json(dir, p);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EOPNOTSUPP,
		  "unsupported media type application/vnd.oci.artifact");

	/* unsupported layer media types name the layer */
	fresh(dir, "layermt", &x);
	manifest_with(man, sizeof(man), &x,
		      "application/vnd.oci.image.layer.nondistributable.v1.tar"
		      "+gzip",
		      NULL);
	set_manifest(dir, man, d, 0);
	snprintf(msg, sizeof(msg),
		 "manifest %s: layer %s: unsupported media type "
		 "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
		 d, x.layer[0]);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EOPNOTSUPP, msg);
	manifest_with(man, sizeof(man), &x, MT_GZIP "+encrypted", NULL);
	set_manifest(dir, man, d, 0);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EOPNOTSUPP, x.layer[0],
		  MT_GZIP "+encrypted");
	manifest_with(
		man, sizeof(man), &x,
		"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
		NULL);
	set_manifest(dir, man, d, 0);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EOPNOTSUPP, x.layer[0],
		  "foreign");
	/* a config that is no container image */
	snprintf(man, sizeof(man),
		 "{\"schemaVersion\":2,\"config\":{\"mediaType\":\""
		 "application/vnd.cncf.helm.config.v1+json\",\"digest\":\"%s\","
		 "\"size\":%zu},\"layers\":[]}",
		 x.config, x.config_size);
	set_manifest(dir, man, d, 0);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EOPNOTSUPP,
		  "config media type application/vnd.cncf.helm.config.v1+json");

	/* diff_ids count mismatch */
	fresh(dir, "diffids", &x);
	snprintf(p, sizeof(p),
		 "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}",
		 x.diff[0]);
	x.config_size = blob_str(dir, p, x.config);
	manifest_with(man, sizeof(man), &x, MT_TAR, NULL);
	set_manifest(dir, man, d, 0);
	snprintf(msg, sizeof(msg),
		 "config %s: rootfs.diff_ids has 1 entries, manifest %s lists "
		 "2 layers",
		 x.config, d);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EINVAL, msg);

	/* too many layers */
	{
		size_t cap = 300 * (CFS_OCI_LAYERS_MAX + 2);
		char *big = malloc(cap), *layers = malloc(cap), *q = layers;

		q += sprintf(q, "[");
		for (int i = 0; i <= CFS_OCI_LAYERS_MAX; i++)
			q += sprintf(q,
				     "%s{\"mediaType\":\"" MT_TAR "\","
				     "\"digest\":\"%s\",\"size\":%zu}",
				     i ? "," : "", x.layer[0], x.layer_size[0]);
		sprintf(q, "]");
		manifest_with(big, cap, &x, MT_TAR, layers);
		set_manifest(dir, big, d, 0);
		snprintf(msg, sizeof(msg),
			 "manifest %s: 1025 layers, limit 1024", d);
		OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, E2BIG, msg);
		free(big);
		free(layers);
	}

	/* missing blobs: a layer is found missing when asked for */
	fresh(dir, "missing", &x);
	manifest_with(man, sizeof(man), &x, MT_TAR, NULL);
	set_manifest(dir, man, d, 0);
	blob_name(p, dir, x.layer[1]);
	unlink(p);
	img = OPEN_OK(src_of(src, "oci", dir, NULL), NULL);
	if (img) {
		struct cfs_blob b;

		CHECK_OK(cfs_oci_layer_blob(img, 0, &b));
		cfs_error_clear();
		CHECK_ERR(cfs_oci_layer_blob(img, 1, &b), ENOENT);
		snprintf(msg, sizeof(msg), "layer %s: blobs/sha256/%s: No such",
			 x.layer[1], x.layer[1] + 7);
		CHECK(strstr(cfs_error_message(), msg) != NULL);
		CHECK(strstr(cfs_error_message(), dir) != NULL);
		/* a layer blob that is a directory */
		if (mkdir(p, 0755) < 0)
			die(p);
		CHECK_ERR(cfs_oci_layer_blob(img, 1, &b), EINVAL);
		CHECK(strstr(cfs_error_message(), "not a regular file"));
		rmdir(p);
		cfs_oci_free(img);
	}
	blob_name(p, dir, x.config);
	unlink(p);
	snprintf(msg, sizeof(msg), "config %s: blobs/sha256/%s: No such",
		 x.config, x.config + 7);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, ENOENT, msg);
	blob_name(p, dir, d);
	unlink(p);
	snprintf(msg, sizeof(msg), "manifest %s: blobs/sha256/%s: No such", d,
		 d + 7);
	OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, ENOENT, msg);

	/* digest algorithms other than sha256 */
	fresh(dir, "sha512", &x);
	{
		char h512[129];

		memset(h512, 'a', 128);
		h512[128] = '\0';
		snprintf(p, sizeof(p),
			 "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":"
			 "\"" MT_MANIFEST "\",\"digest\":\"sha512:%s\","
			 "\"size\":100}]}",
			 h512);
		index_json(dir, p);
		OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EOPNOTSUPP,
			  "index.json: manifests[0].digest: unsupported digest "
			  "algorithm in \"sha512:aaaa");
		snprintf(msg, sizeof(msg), "sha512:%s", h512);
		OPEN_FAIL(src_of(src, "oci", dir, msg), NULL, EOPNOTSUPP,
			  "reference sha512:", "unsupported digest algorithm");
		snprintf(p, sizeof(p),
			 "[{\"mediaType\":\"" MT_TAR "\",\"digest\":"
			 "\"sha512:%s\",\"size\":1}]",
			 h512);
		manifest_with(man, sizeof(man), &x, MT_TAR, p);
		set_manifest(dir, man, d, 0);
		OPEN_FAIL(src_of(src, "oci", dir, NULL), NULL, EOPNOTSUPP,
			  "layers[0].digest: unsupported digest algorithm");
	}
}

/* ---- oci-archive ------------------------------------------------------ */

static void test_oci_archive(void)
{
	char src[2048], tarp[1024], dir[1024], p[1024], longname[300];
	struct cfs_oci_image *img;
	struct archive *a;
	struct fx x, arm64;
	struct member m;

	fx_image(NULL, "amd64", &x);
	fx_image(NULL, "arm64", &arm64);

	/* pax with extended headers before each member and a long name */
	path_in(tarp, T, "simple-pax.tar");
	path_in(dir, T, "simple");
	a = tar_open(tarp, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE);
	memset(longname, 'n', 250);
	longname[250] = '\0';
	m = (struct member){ .name = longname, .data = "pad", .len = 3 };
	tar_add(a, &m, true);
	tar_dir(a, dir, "", "", true);
	tar_close(a);
	img = OPEN_OK(src_of(src, "oci-archive", tarp, NULL), "linux/amd64");
	check_image(img, &x, false);
	if (img) {
		struct cfs_blob b;
		CHECK_OK(cfs_oci_layer_blob(img, 1, &b));
		CHECK(b.offset % 512 == 0 && b.offset > 512);
	}
	cfs_oci_free(img);
	img = OPEN_OK(src_of(src, "oci-archive", tarp, "v1"), NULL);
	check_image(img, &x, false);
	cfs_oci_free(img);
	img = OPEN_OK(src_of(src, "oci-archive", tarp, x.manifest), NULL);
	check_image(img, &x, false);
	cfs_oci_free(img);
	OPEN_FAIL(src_of(src, "oci-archive", tarp, "nope"), NULL, ENOENT,
		  "no image tagged \"nope\"", tarp);

	/* GNU tar with "./" names: the nested multi-platform index */
	path_in(tarp, T, "multi-gnu.tar");
	path_in(dir, T, "multi");
	a = tar_open(tarp, ARCHIVE_FORMAT_TAR_GNUTAR);
	m = (struct member){ .name = longname, .data = "pad", .len = 3 };
	tar_add(a, &m, false);
	tar_dir(a, dir, "", "./", false);
	tar_close(a);
	img = OPEN_OK(src_of(src, "oci-archive", tarp, "multi"), "linux/arm64");
	check_image(img, &arm64, false);
	cfs_oci_free(img);
	OPEN_FAIL(src_of(src, "oci-archive", tarp, NULL), "linux/s390x", ENOENT,
		  "no image for linux/s390x");
	img = OPEN_OK(src_of(src, "oci-archive", tarp, NULL), "linux/amd64");
	check_image(img, &x, false);
	cfs_oci_free(img);

	/* ustar, and a file name with a colon */
	path_in(tarp, T, "arch:ive.tar");
	path_in(dir, T, "simple");
	a = tar_open(tarp, ARCHIVE_FORMAT_TAR_USTAR);
	tar_dir(a, dir, "", "", false);
	tar_close(a);
	img = OPEN_OK(src_of(src, "oci-archive", tarp, NULL), NULL);
	check_image(img, &x, false);
	cfs_oci_free(img);
	img = OPEN_OK(src_of(src, "oci-archive", tarp, "latest"), NULL);
	check_image(img, &x, false);
	cfs_oci_free(img);

	/* last member of a name wins; directories and links are no blobs */
	path_in(tarp, T, "dup.tar");
	a = tar_open(tarp, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
	tar_dir(a, dir, "", "", false);
	m = (struct member){ .name = "index.json", .data = "{\"x\"", .len = 4 };
	tar_add(a, &m, false);
	tar_close(a);
	OPEN_FAIL(src_of(src, "oci-archive", tarp, NULL), NULL, EINVAL,
		  "index.json: invalid JSON at byte 4");

	path_in(tarp, T, "dirblob.tar");
	a = tar_open(tarp, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
	tar_dir(a, dir, "", "", false);
	snprintf(p, sizeof(p), "blobs/sha256/%s", x.config + 7);
	m = (struct member){ .name = p, .dir = true };
	tar_add(a, &m, false);
	tar_close(a);
	OPEN_FAIL(src_of(src, "oci-archive", tarp, NULL), NULL, EINVAL,
		  "not a regular file", x.config + 7);

	path_in(tarp, T, "linkblob.tar");
	a = tar_open(tarp, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
	tar_dir(a, dir, "", "", false);
	m = (struct member){ .name = p, .symlink = "../../../etc/passwd" };
	tar_add(a, &m, false);
	tar_close(a);
	OPEN_FAIL(src_of(src, "oci-archive", tarp, NULL), NULL, EINVAL,
		  "leads outside the archive");

	path_in(tarp, T, "loopblob.tar");
	a = tar_open(tarp, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
	tar_dir(a, dir, "", "", false);
	m = (struct member){ .name = p, .symlink = "loop" };
	tar_add(a, &m, false);
	m = (struct member){ .name = "blobs/sha256/loop", .symlink = p + 13 };
	tar_add(a, &m, false);
	tar_close(a);
	OPEN_FAIL(src_of(src, "oci-archive", tarp, NULL), NULL, ELOOP,
		  "too many links");

	/* a truncated archive fails while it is scanned */
	path_in(tarp, T, "simple-pax.tar");
	{
		char cut[1024];
		struct stat sb;
		int in, out;
		uint8_t *buf;

		path_in(cut, T, "cut.tar");
		in = open(tarp, O_RDONLY);
		if (in < 0 || fstat(in, &sb) < 0)
			die(tarp);
		buf = malloc((size_t)sb.st_size);
		if (read(in, buf, (size_t)sb.st_size) != sb.st_size)
			die(tarp);
		close(in);
		out = open(cut, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (out < 0 || write(out, buf, 5000) != 5000)
			die(cut);
		close(out);
		free(buf);
		OPEN_FAIL(src_of(src, "oci-archive", cut, NULL), NULL, EINVAL,
			  "tar archive at byte", cut);
		CHECK(!strstr(cfs_error_message(), "(null)"));
	}

	/* not a tar, compressed, missing, a directory */
	path_in(tarp, T, "notatar.tar");
	put_str(tarp, "this is not a tar archive, just some text\n");
	OPEN_FAIL(src_of(src, "oci-archive", tarp, NULL), NULL, EINVAL, tarp);
	path_in(tarp, T, "gz.tar.gz");
	put_file(tarp, "\x1f\x8b\x08\x00\x00\x00\x00\x00", 8);
	OPEN_FAIL(src_of(src, "oci-archive", tarp, NULL), NULL, EOPNOTSUPP,
		  "compressed archives are not supported");
	OPEN_FAIL("oci-archive:/nonexistent.tar:latest", NULL, ENOENT,
		  "/nonexistent.tar:latest", "No such file");
	OPEN_FAIL(src_of(src, "oci-archive", T, NULL), NULL, EINVAL,
		  "not a regular file");
}

/* ---- docker-archive --------------------------------------------------- */

static void docker_tar(const char *path, const struct fx *x,
		       const char *manifest_json, const char *cfg_name)
{
	char l0[128], cfg[128];
	struct archive *a = tar_open(path, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
	struct member ms[] = {
		{ .name = l0, .data = x->tar0, .len = x->layer_size[0] },
		{ .name = "aaa", .dir = true },
		{ .name = "aaa/layer.tar", .symlink = NULL },
		{ .name = "aaa/VERSION", .data = "1.0", .len = 3 },
		{ .name = "bbb/layer.tar",
		  .data = x->gz1,
		  .len = x->layer_size[1] },
		{ .name = cfg, .data = x->cfg_json, .len = x->config_size },
		{ .name = "manifest.json",
		  .data = manifest_json,
		  .len = strlen(manifest_json) },
		{ .name = "repositories", .data = "{}", .len = 2 },
	};
	char target[160];

	snprintf(l0, sizeof(l0), "%s.tar", x->diff[0] + 7);
	snprintf(target, sizeof(target), "../%s", l0);
	ms[2].symlink = target;
	snprintf(cfg, sizeof(cfg), "%s", cfg_name ? cfg_name : "");
	if (!cfg_name)
		snprintf(cfg, sizeof(cfg), "%s.json", x->config + 7);
	for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++)
		tar_add(a, &ms[i], false);
	tar_close(a);
}

static void test_docker_archive(void)
{
	char tarp[1024], src[2048], man[2048], msg[512], bad[128];
	struct cfs_oci_image *img;
	struct fx x;

	fx_image(NULL, "docker", &x);
	snprintf(man, sizeof(man),
		 "[{\"Config\":\"%s.json\",\"RepoTags\":"
		 "[\"example.com/test/app:v1\"],\"Layers\":[\"aaa/layer.tar\","
		 "\"./bbb/layer.tar\"]}]",
		 x.config + 7);
	path_in(tarp, T, "dock:er.tar");
	docker_tar(tarp, &x, man, NULL);
	img = OPEN_OK(src_of(src, "docker-archive", tarp, NULL), NULL);
	check_image(img, &x, true);
	cfs_oci_free(img);
	img = OPEN_OK(src_of(src, "docker-archive", tarp,
			     "example.com/test/app:v1"),
		      NULL);
	check_image(img, &x, true);
	cfs_oci_free(img);
	img = OPEN_OK(src_of(src, "docker-archive", tarp, "@0"), NULL);
	check_image(img, &x, true);
	cfs_oci_free(img);
	OPEN_FAIL(
		src_of(src, "docker-archive", tarp, "example.com/test/app:v2"),
		NULL, ENOENT,
		"no image tagged \"example.com/test/app:v2\" in manifest.json",
		"example.com/test/app:v1");
	OPEN_FAIL(src_of(src, "docker-archive", tarp, "@1"), NULL, ENOENT,
		  "no image @1");
	OPEN_FAIL(src_of(src, "oci-archive", tarp, NULL), NULL, ENOENT,
		  "no oci-layout", "docker-archive?");

	/* two images: REF needed */
	snprintf(
		man, sizeof(man),
		"[{\"Config\":\"%s.json\",\"RepoTags\":"
		"[\"docker.io/library/busybox:latest\"],\"Layers\":["
		"\"aaa/layer.tar\",\"bbb/layer.tar\"]},"
		"{\"Config\":\"%s.json\",\"RepoTags\":[\"example.com/x:1\","
		"\"example.com/x:2\"],\"Layers\":[\"aaa/layer.tar\","
		"\"bbb/layer.tar\"]},{\"Config\":\"%s.json\",\"RepoTags\":null,"
		"\"Layers\":[\"bbb/layer.tar\"]}]",
		x.config + 7, x.config + 7, x.config + 7);
	path_in(tarp, T, "two-images.tar");
	docker_tar(tarp, &x, man, NULL);
	OPEN_FAIL(src_of(src, "docker-archive", tarp, NULL), NULL, EINVAL,
		  "manifest.json lists 3 images",
		  "docker.io/library/busybox:latest, example.com/x:1, "
		  "example.com/x:2, @2");
	img = OPEN_OK(src_of(src, "docker-archive", tarp, "busybox"), NULL);
	check_image(img, &x, true);
	cfs_oci_free(img);
	img = OPEN_OK(src_of(src, "docker-archive", tarp, "example.com/x:2"),
		      NULL);
	check_image(img, &x, true);
	cfs_oci_free(img);
	img = OPEN_OK(src_of(src, "docker-archive", tarp, "@1"), NULL);
	check_image(img, &x, true);
	cfs_oci_free(img);
	/* one layer, two diff_ids */
	snprintf(msg, sizeof(msg),
		 "config %s.json: rootfs.diff_ids has 2 entries, manifest.json "
		 "lists 1 layers",
		 x.config + 7);
	OPEN_FAIL(src_of(src, "docker-archive", tarp, "@2"), NULL, EINVAL, msg);
	OPEN_FAIL(src_of(src, "docker-archive", tarp, "@x"), NULL, EINVAL,
		  "expected @N");
	OPEN_FAIL(src_of(src, "docker-archive", tarp, "busybox:1"), NULL,
		  ENOENT, "no image tagged \"busybox:1\"");

	/* one tag on two images, exactly or once normalised: no choice is
	 * made; one image listed twice is one image */
	snprintf(
		man, sizeof(man),
		"[{\"Config\":\"%s.json\",\"RepoTags\":[\"example.com/x:1\","
		"\"busybox:latest\"],\"Layers\":[\"aaa/layer.tar\","
		"\"bbb/layer.tar\"]},{\"Config\":\"%s.json\",\"RepoTags\":"
		"[\"docker.io/library/busybox:latest\"],\"Layers\":["
		"\"aaa/layer.tar\",\"bbb/layer.tar\"]},{\"Config\":\"%s.json\","
		"\"RepoTags\":[\"example.com/x:1\"],\"Layers\":["
		"\"bbb/layer.tar\"]}]",
		x.config + 7, x.config + 7, x.config + 7);
	path_in(tarp, T, "one-tag-two-images.tar");
	docker_tar(tarp, &x, man, NULL);
	OPEN_FAIL(src_of(src, "docker-archive", tarp, "example.com/x:1"), NULL,
		  EINVAL,
		  "tag \"example.com/x:1\" names several images in "
		  "manifest.json (@0, @2)",
		  "docker-archive:FILE:@N");
	img = OPEN_OK(src_of(src, "docker-archive", tarp, "busybox"), NULL);
	check_image(img, &x, true);
	cfs_oci_free(img);
	img = OPEN_OK(src_of(src, "docker-archive", tarp, "busybox:latest"),
		      NULL);
	check_image(img, &x, true);
	cfs_oci_free(img);
	img = OPEN_OK(src_of(src, "docker-archive", tarp, "@0"), NULL);
	check_image(img, &x, true);
	cfs_oci_free(img);

	/* a config whose name is not its digest */
	snprintf(bad, sizeof(bad), "%064d.json", 0);
	snprintf(man, sizeof(man),
		 "[{\"Config\":\"%s\",\"Layers\":[\"aaa/layer.tar\","
		 "\"bbb/layer.tar\"]}]",
		 bad);
	path_in(tarp, T, "badcfg.tar");
	docker_tar(tarp, &x, man, bad);
	OPEN_FAIL(src_of(src, "docker-archive", tarp, NULL), NULL, EBADMSG,
		  "content has digest", x.config, "the name says sha256:0000");

	/* any other config name is hashed */
	snprintf(man, sizeof(man),
		 "[{\"Config\":\"config.json\",\"Layers\":[\"aaa/layer.tar\","
		 "\"bbb/layer.tar\"]}]");
	path_in(tarp, T, "namedcfg.tar");
	docker_tar(tarp, &x, man, "config.json");
	img = OPEN_OK(src_of(src, "docker-archive", tarp, NULL), NULL);
	check_image(img, &x, true);
	cfs_oci_free(img);

	/* missing and escaping layers, wrong types */
	snprintf(man, sizeof(man),
		 "[{\"Config\":\"%s.json\",\"Layers\":[\"aaa/layer.tar\","
		 "\"ccc/layer.tar\"]}]",
		 x.config + 7);
	path_in(tarp, T, "nolayer.tar");
	docker_tar(tarp, &x, man, NULL);
	OPEN_FAIL(src_of(src, "docker-archive", tarp, NULL), NULL, ENOENT,
		  "layer 1 (ccc/layer.tar): no member ccc/layer.tar");
	snprintf(man, sizeof(man),
		 "[{\"Config\":\"%s.json\",\"Layers\":[\"../x.tar\"]}]",
		 x.config + 7);
	docker_tar(tarp, &x, man, NULL);
	OPEN_FAIL(src_of(src, "docker-archive", tarp, NULL), NULL, EINVAL,
		  "not a path inside the archive");
	snprintf(man, sizeof(man),
		 "[{\"Config\":\"%s.json\",\"Layers\":\"aaa/layer.tar\"}]",
		 x.config + 7);
	docker_tar(tarp, &x, man, NULL);
	OPEN_FAIL(src_of(src, "docker-archive", tarp, NULL), NULL, EINVAL,
		  "manifest.json: [0].Layers is a string, "
		  "expected an array");
	docker_tar(tarp, &x, "{\"Config\":1}", NULL);
	OPEN_FAIL(src_of(src, "docker-archive", tarp, NULL), NULL, EINVAL,
		  "manifest.json: the document is an object, expected an "
		  "array");
	docker_tar(tarp, &x, "[]", NULL);
	OPEN_FAIL(src_of(src, "docker-archive", tarp, NULL), NULL, ENOENT,
		  "manifest.json lists no images");

	/* an oci-archive is no docker-archive */
	path_in(tarp, T, "simple-pax.tar");
	OPEN_FAIL(src_of(src, "docker-archive", tarp, NULL), NULL, ENOENT,
		  "no manifest.json", "oci-archive?");
}

static int rm_entry(const char *path, const struct stat *sb, int type,
		    struct FTW *ftw)
{
	return remove(path) < 0 ? -1 : 0;
}

/*
 * cfs_oci_open_manifest(): a pull's manifest and config from memory. The
 * same checks as a layout's; no layer blob (each comes from a fetch).
 */
static void test_in_memory(void)
{
	const char *src = "docker://registry.example/app:1";
	char dir[1024], p[1024], man[4096], bad[4096];
	struct cfs_oci_image *img = NULL;
	struct cfs_blob b;
	struct fx x;
	ssize_t n;
	int fd;

	layout(dir, "in-memory");
	fx_image(dir, "amd64", &x);
	blob_name(p, dir, x.manifest);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? -1 : read(fd, man, sizeof(man) - 1);
	if (fd < 0 || n <= 0)
		die(p);
	close(fd);

	CHECK_OK(cfs_oci_open_manifest(&img, src, man, (size_t)n, x.cfg_json,
				       x.config_size));
	CHECK(img && !strcmp(img->source, src));
	CHECK(img && !strcmp(img->manifest_digest, x.manifest));
	CHECK(img && !strcmp(img->config_digest, x.config));
	CHECK(img && img->manifest_len == (size_t)n &&
	      !memcmp(img->manifest, man, (size_t)n));
	CHECK(img && img->config_len == x.config_size &&
	      !memcmp(img->config, x.cfg_json, x.config_size));
	CHECK(img && img->n_layers == 2);
	for (size_t i = 0; img && i < img->n_layers && i < 2; i++) {
		CHECK(!strcmp(img->layers[i].digest, x.layer[i]));
		CHECK(!strcmp(img->layers[i].diff_id, x.diff[i]));
		CHECK(img->layers[i].size == (int64_t)x.layer_size[i]);
		CHECK(img->layers[i].verify_blob);
		/* no blob here: the conversion asks its fetch */
		CHECK_ERR(cfs_oci_layer_blob(img, i, &b), ENOENT);
		CHECK(strstr(cfs_error_message(), "not in the source") &&
		      strstr(cfs_error_message(), src));
	}
	cfs_oci_free(img);
	img = NULL;

	/* a config that is not the manifest's: named, with what differs */
	CHECK_ERR(cfs_oci_open_manifest(&img, src, man, (size_t)n, "{}", 2),
		  EBADMSG);
	CHECK(!img && strstr(cfs_error_message(), x.config));
	snprintf(bad, sizeof(bad), "%s", x.cfg_json);
	bad[2] ^= 1; /* same size, other bytes */
	CHECK_ERR(cfs_oci_open_manifest(&img, src, man, (size_t)n, bad,
					x.config_size),
		  EBADMSG);
	CHECK(!img && strstr(cfs_error_message(), "content has digest"));
	/* an index is not what a pull hands over */
	snprintf(bad, sizeof(bad),
		 "{\"schemaVersion\":2,\"mediaType\":\"" MT_INDEX
		 "\",\"manifests\":[]}");
	CHECK_ERR(cfs_oci_open_manifest(&img, src, bad, strlen(bad), x.cfg_json,
					x.config_size),
		  EINVAL);
	CHECK(!img && strstr(cfs_error_message(), "an index"));
	/* not JSON, and too large */
	CHECK(cfs_oci_open_manifest(&img, src, "nope", 4, x.cfg_json,
				    x.config_size) < 0 &&
	      !img && strstr(cfs_error_message(), src));
	CHECK_ERR(cfs_oci_open_manifest(&img, src, man, CFS_OCI_JSON_MAX + 1,
					x.cfg_json, x.config_size),
		  EFBIG);
	CHECK(!img);
}

int main(int argc, char **argv)
{
	const char *base = getenv("CFS_TEST_TMP");

	if (!base || !*base)
		base = "/tmp";
	if ((size_t)snprintf(T, sizeof(T), "%s/test-oci-XXXXXX", base) >=
		    sizeof(T) ||
	    !mkdtemp(T)) {
		fprintf(stderr, "mkdtemp(%s): %s\n", T, strerror(errno));
		return 1;
	}

	TEST_RUN(argc, argv, test_layout);
	TEST_RUN(argc, argv, test_platforms);
	TEST_RUN(argc, argv, test_ambiguous);
	TEST_RUN(argc, argv, test_bad_layouts);
	TEST_RUN(argc, argv, test_oci_archive);
	TEST_RUN(argc, argv, test_docker_archive);
	TEST_RUN(argc, argv, test_in_memory);
	/* CFS_TEST_VERBOSE prints every error message and keeps the
	 * fixtures for a look. */
	if (!test_failures && !getenv("CFS_TEST_VERBOSE"))
		nftw(T, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return test_done();
}
