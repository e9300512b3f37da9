/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * fuzz-oci-json: the JSON documents of OCI sources, through
 * cfs_oci_open() exactly as oci2cfs reaches them.
 *
 * The first byte of the input chooses what the rest (X) is; the other
 * documents come from a small valid image built once (one tar layer L,
 * config C, manifest M, nested index I). Every document that names X by
 * digest and size is rewritten for each input, so X is parsed and never
 * refused for a digest mismatch:
 *
 *   byte0 & 7   0  X is index.json        (names M or I by digest)
 *               1  X is the blob index.json names (no mediaType in the
 *                  descriptor: X may be a manifest or a nested index)
 *               2  X is the config        (a manifest M' names it)
 *               3  X is a docker-archive's manifest.json (the archive
 *                  also holds "<hex of C>.json", config.json, layer.tar
 *                  and blobs/sha256/<hex> of C and L)
 *               4  X is a docker-archive's config (config.json)
 *               5  X is oci-layout
 *               6  X is a whole oci-archive (tar)
 *               7  X is a whole docker-archive (tar)
 *   byte0 & 8   modes 0, 1, 2, 5: the layout is packed as an oci-archive
 *               instead of a directory
 *   byte0 >> 4 & 3   REF: none, "latest", a digest ("sha256:" of the
 *               manifest; docker: "@0"), "@sha256:" of I (docker:
 *               "docker.io/library/fuzz", normalised to fuzz:latest)
 *   byte0 >> 6  platform: the host's, linux/amd64, linux/arm64/v8,
 *               linux/arm/v6
 *
 * With CFS_FUZZ_SEED_DIR set, the first input also writes seeds for
 * every mode built from the base documents into that directory.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convert/oci.h"
#include "fuzz.h"

#define MT_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_CONFIG "application/vnd.oci.image.config.v1+json"
#define MT_LAYER "application/vnd.oci.image.layer.v1.tar"
#define OCI_LAYOUT "{\"imageLayoutVersion\":\"1.0.0\"}"
#define DOCKER_MANIFEST_FMT                                                    \
	"[{\"Config\":\"%s\",\"RepoTags\":[\"fuzz:latest\"],"                  \
	"\"Layers\":[\"%s\"]}]"

enum mode {
	M_INDEX_JSON,
	M_BLOB,
	M_CONFIG,
	M_DOCKER_MANIFEST,
	M_DOCKER_CONFIG,
	M_OCI_LAYOUT,
	M_OCI_ARCHIVE,
	M_DOCKER_ARCHIVE,
};

struct doc {
	char digest[72];
	uint8_t *data;
	size_t len;
};

static struct {
	const char *dir; /* scratch */
	char layout[300], blobs[300], archive[300];
	struct doc layer, config, manifest, index, top;
} base;

static void doc_set(struct doc *d, const void *data, size_t len)
{
	free(d->data);
	d->data = malloc(len ? len : 1);
	if (!d->data)
		fuzz_fail("out of memory");
	memcpy(d->data, data, len);
	d->len = len;
	fuzz_sha256(data, len, d->digest);
}

static void doc_printf(struct doc *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void doc_printf(struct doc *d, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		fuzz_fail("out of memory");
	doc_set(d, s, (size_t)n);
	free(s);
}

/* A manifest naming config @cfg (bytes and digest) and the base layer. */
static void make_manifest(struct doc *out, const char *cfg_digest,
			  size_t cfg_len)
{
	doc_printf(out,
		   "{\"schemaVersion\":2,\"mediaType\":\"" MT_MANIFEST "\","
		   "\"config\":{\"mediaType\":\"" MT_CONFIG "\","
		   "\"digest\":\"%s\",\"size\":%zu},"
		   "\"layers\":[{\"mediaType\":\"" MT_LAYER "\","
		   "\"digest\":\"%s\",\"size\":%zu}]}",
		   cfg_digest, cfg_len, base.layer.digest, base.layer.len);
}

/* index.json naming @digest/@len; @mt NULL leaves the mediaType out. */
static void make_index_json(struct doc *out, const char *mt, const char *digest,
			    size_t len)
{
	doc_printf(out,
		   "{\"schemaVersion\":2,\"mediaType\":\"" MT_INDEX "\","
		   "\"manifests\":[{%s%s%s\"digest\":\"%s\",\"size\":%zu,"
		   "\"annotations\":{\"org.opencontainers.image.ref.name\":"
		   "\"latest\"}}]}",
		   mt ? "\"mediaType\":\"" : "", mt ? mt : "", mt ? "\"," : "",
		   digest, len);
}

static void init(void)
{
	struct fuzz_buf tar = { 0 };

	base.dir = fuzz_scratch_dir("oci-json");
	snprintf(base.layout, sizeof(base.layout), "%s/layout", base.dir);
	snprintf(base.blobs, sizeof(base.blobs), "%s/layout/blobs", base.dir);
	snprintf(base.archive, sizeof(base.archive), "%s/image.tar", base.dir);
	if (mkdir(base.layout, 0700) < 0 || mkdir(base.blobs, 0700) < 0)
		fuzz_fail("mkdir in %s failed", base.dir);
	strcat(base.blobs, "/sha256");
	if (mkdir(base.blobs, 0700) < 0)
		fuzz_fail("mkdir %s failed", base.blobs);

	fuzz_tar_add(&tar, "hello", "hi\n", 3);
	fuzz_tar_end(&tar);
	doc_set(&base.layer, tar.data, tar.len);
	fuzz_buf_free(&tar);
	doc_printf(&base.config,
		   "{\"architecture\":\"amd64\",\"os\":\"linux\","
		   "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}",
		   base.layer.digest);
	make_manifest(&base.manifest, base.config.digest, base.config.len);
	doc_printf(&base.index,
		   "{\"schemaVersion\":2,\"mediaType\":\"" MT_INDEX "\","
		   "\"manifests\":[{\"mediaType\":\"" MT_MANIFEST "\","
		   "\"digest\":\"%s\",\"size\":%zu,\"platform\":"
		   "{\"architecture\":\"amd64\",\"os\":\"linux\"}}]}",
		   base.manifest.digest, base.manifest.len);
	make_index_json(&base.top, MT_INDEX, base.index.digest, base.index.len);
}

/* ---- one layout ------------------------------------------------------- */

#define FILES_MAX 8

struct file {
	char name[100]; /* path inside the layout or archive */
	const uint8_t *data;
	size_t len;
};

struct layout {
	struct file f[FILES_MAX];
	size_t n;
};

static void add(struct layout *l, const char *name, const void *data,
		size_t len)
{
	if (l->n == FILES_MAX)
		fuzz_fail("too many files");
	snprintf(l->f[l->n].name, sizeof(l->f[l->n].name), "%s", name);
	l->f[l->n].data = data;
	l->f[l->n].len = len;
	l->n++;
}

static void add_blob(struct layout *l, const struct doc *d)
{
	char name[100];

	snprintf(name, sizeof(name), "blobs/sha256/%s", d->digest + 7);
	add(l, name, d->data, d->len);
}

static void pack(const struct layout *l, struct fuzz_buf *tar)
{
	for (size_t i = 0; i < l->n; i++)
		fuzz_tar_add(tar, l->f[i].name, l->f[i].data, l->f[i].len);
	fuzz_tar_end(tar);
}

static void write_dir(const struct layout *l)
{
	char path[512];

	for (size_t i = 0; i < l->n; i++) {
		snprintf(path, sizeof(path), "%s/%s", base.layout,
			 l->f[i].name);
		fuzz_write_file(path, l->f[i].data, l->f[i].len);
	}
}

static void clean_dir(const struct layout *l)
{
	char path[512];

	for (size_t i = 0; i < l->n; i++) {
		snprintf(path, sizeof(path), "%s/%s", base.layout,
			 l->f[i].name);
		unlink(path);
	}
}

static void open_source(const char *source, const char *platform)
{
	struct cfs_oci_image *img = NULL;
	int r;

	cfs_error_clear();
	r = cfs_oci_open(&img, source, platform);
	fuzz_check_error(r, "cfs_oci_open");
	if (r < 0) {
		if (img)
			fuzz_fail("cfs_oci_open failed but returned an image");
		return;
	}
	if (!img->config || !img->config_digest)
		fuzz_fail("cfs_oci_open: an image without config");
	for (size_t i = 0; i < img->n_layers; i++) {
		struct cfs_oci_layer *ly = &img->layers[i];
		struct cfs_blob b;

		if (!ly->digest || !ly->diff_id || !ly->media_type)
			fuzz_fail("cfs_oci_open: layer %zu incomplete", i);
		cfs_error_clear();
		r = cfs_oci_layer_blob(img, i, &b);
		fuzz_check_error(r, "cfs_oci_layer_blob");
		if (r == 0 && b.fd < 0)
			fuzz_fail("cfs_oci_layer_blob: no fd");
	}
	cfs_oci_free(img);
}

static void run(uint8_t sel, const uint8_t *x, size_t len)
{
	static const char *const platforms[] = { NULL, "linux/amd64",
						 "linux/arm64/v8",
						 "linux/arm/v6" };
	enum mode mode = (enum mode)(sel & 7);
	bool docker = mode == M_DOCKER_MANIFEST || mode == M_DOCKER_CONFIG ||
		      mode == M_DOCKER_ARCHIVE;
	bool archive = docker || mode == M_OCI_ARCHIVE || (sel & 8);
	unsigned int refsel = (sel >> 4) & 3;
	const char *platform = platforms[sel >> 6];
	struct layout l = { 0 };
	struct doc x_doc = { 0 }, m2 = { 0 }, idx = { 0 }, dm = { 0 };
	struct fuzz_buf tar = { 0 };
	const struct doc *named = &base.manifest; /* what a digest REF names */
	char cfg_json[100], source[700], ref[100] = "";

	switch (mode) {
	case M_INDEX_JSON:
		add(&l, "oci-layout", OCI_LAYOUT, strlen(OCI_LAYOUT));
		add(&l, "index.json", x, len);
		add_blob(&l, &base.layer);
		add_blob(&l, &base.config);
		add_blob(&l, &base.manifest);
		add_blob(&l, &base.index);
		break;
	case M_BLOB:
		doc_set(&x_doc, x, len);
		make_index_json(&idx, NULL, x_doc.digest, len);
		add(&l, "oci-layout", OCI_LAYOUT, strlen(OCI_LAYOUT));
		add(&l, "index.json", idx.data, idx.len);
		add_blob(&l, &base.layer);
		add_blob(&l, &base.config);
		add_blob(&l, &base.manifest);
		add_blob(&l, &base.index);
		add_blob(&l, &x_doc);
		named = &x_doc;
		break;
	case M_CONFIG:
		doc_set(&x_doc, x, len);
		make_manifest(&m2, x_doc.digest, len);
		make_index_json(&idx, MT_MANIFEST, m2.digest, m2.len);
		add(&l, "oci-layout", OCI_LAYOUT, strlen(OCI_LAYOUT));
		add(&l, "index.json", idx.data, idx.len);
		add_blob(&l, &base.layer);
		add_blob(&l, &x_doc);
		add_blob(&l, &m2);
		named = &m2;
		break;
	case M_DOCKER_MANIFEST:
		snprintf(cfg_json, sizeof(cfg_json), "%.64s.json",
			 base.config.digest + 7);
		add(&l, "manifest.json", x, len);
		add(&l, cfg_json, base.config.data, base.config.len);
		add(&l, "config.json", base.config.data, base.config.len);
		add(&l, "layer.tar", base.layer.data, base.layer.len);
		add_blob(&l, &base.config);
		add_blob(&l, &base.layer);
		break;
	case M_DOCKER_CONFIG:
		doc_printf(&dm, DOCKER_MANIFEST_FMT, "config.json",
			   "layer.tar");
		add(&l, "manifest.json", dm.data, dm.len);
		add(&l, "config.json", x, len);
		add(&l, "layer.tar", base.layer.data, base.layer.len);
		break;
	case M_OCI_LAYOUT:
		add(&l, "oci-layout", x, len);
		add(&l, "index.json", base.top.data, base.top.len);
		add_blob(&l, &base.layer);
		add_blob(&l, &base.config);
		add_blob(&l, &base.manifest);
		add_blob(&l, &base.index);
		break;
	case M_OCI_ARCHIVE:
	case M_DOCKER_ARCHIVE:
		break;
	}

	switch (refsel) {
	case 1:
		snprintf(ref, sizeof(ref), ":latest");
		break;
	case 2:
		if (docker)
			snprintf(ref, sizeof(ref), ":@0");
		else
			snprintf(ref, sizeof(ref), ":%s", named->digest);
		break;
	case 3:
		if (docker)
			snprintf(ref, sizeof(ref), ":docker.io/library/fuzz");
		else
			snprintf(ref, sizeof(ref), ":@%s", base.index.digest);
		break;
	}

	if (mode == M_OCI_ARCHIVE || mode == M_DOCKER_ARCHIVE) {
		fuzz_write_file(base.archive, x, len);
	} else if (archive) {
		pack(&l, &tar);
		fuzz_write_file(base.archive, tar.data, tar.len);
	} else {
		write_dir(&l);
	}
	snprintf(source, sizeof(source), "%s:%s%s",
		 docker	 ? "docker-archive" :
		 archive ? "oci-archive" :
			   "oci",
		 archive ? base.archive : base.layout, ref);
	open_source(source, platform);
	if (!archive)
		clean_dir(&l);

	fuzz_buf_free(&tar);
	free(x_doc.data);
	free(m2.data);
	free(idx.data);
	free(dm.data);
}

/* ---- seeds ------------------------------------------------------------ */

static void seed(const char *dir, const char *name, uint8_t sel,
		 const struct doc *d)
{
	char path[4096];
	uint8_t *buf = malloc(d->len + 1);

	if (!buf)
		fuzz_fail("out of memory");
	buf[0] = sel;
	memcpy(buf + 1, d->data, d->len);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fuzz_write_file(path, buf, d->len + 1);
	free(buf);
}

static void write_seeds(const char *dir)
{
	struct doc d = { 0 };
	struct layout l = { 0 };
	struct fuzz_buf tar = { 0 };
	char cfg_json[100];

	seed(dir, "base-index-json-nested", M_INDEX_JSON, &base.top);
	seed(dir, "base-index-json-nested-ref-latest", M_INDEX_JSON | 0x10,
	     &base.top);
	seed(dir, "base-index-json-nested-arm64", M_INDEX_JSON | 0x80,
	     &base.top);
	seed(dir, "base-oci-archive-index-json-nested", M_INDEX_JSON | 8,
	     &base.top);
	make_index_json(&d, MT_MANIFEST, base.manifest.digest,
			base.manifest.len);
	seed(dir, "base-index-json-manifest", M_INDEX_JSON, &d);
	seed(dir, "base-index-json-manifest-ref-digest", M_INDEX_JSON | 0x20,
	     &d);
	seed(dir, "base-manifest", M_BLOB, &base.manifest);
	seed(dir, "base-oci-archive-manifest", M_BLOB | 8, &base.manifest);
	seed(dir, "base-nested-index", M_BLOB, &base.index);
	seed(dir, "base-nested-index-amd64", M_BLOB | 0x40, &base.index);
	seed(dir, "base-nested-index-arm-v6", M_BLOB | 0xc0, &base.index);
	seed(dir, "base-config", M_CONFIG, &base.config);
	seed(dir, "base-oci-archive-config", M_CONFIG | 8, &base.config);
	snprintf(cfg_json, sizeof(cfg_json), "%.64s.json",
		 base.config.digest + 7);
	doc_printf(&d, DOCKER_MANIFEST_FMT, cfg_json, "layer.tar");
	seed(dir, "base-docker-manifest-json", M_DOCKER_MANIFEST, &d);
	seed(dir, "base-docker-manifest-json-ref-at0", M_DOCKER_MANIFEST | 0x20,
	     &d);
	seed(dir, "base-docker-manifest-json-ref-normalised",
	     M_DOCKER_MANIFEST | 0x30, &d);
	seed(dir, "base-docker-config", M_DOCKER_CONFIG, &base.config);
	doc_set(&d, OCI_LAYOUT, strlen(OCI_LAYOUT));
	seed(dir, "base-oci-layout", M_OCI_LAYOUT, &d);

	add(&l, "oci-layout", OCI_LAYOUT, strlen(OCI_LAYOUT));
	add(&l, "index.json", base.top.data, base.top.len);
	add_blob(&l, &base.layer);
	add_blob(&l, &base.config);
	add_blob(&l, &base.manifest);
	add_blob(&l, &base.index);
	pack(&l, &tar);
	doc_set(&d, tar.data, tar.len);
	seed(dir, "base-oci-archive", M_OCI_ARCHIVE, &d);
	fuzz_buf_free(&tar);

	memset(&l, 0, sizeof(l));
	doc_printf(&d, DOCKER_MANIFEST_FMT, "config.json", "layer.tar");
	add(&l, "manifest.json", d.data, d.len);
	add(&l, "config.json", base.config.data, base.config.len);
	add(&l, "layer.tar", base.layer.data, base.layer.len);
	pack(&l, &tar);
	doc_set(&d, tar.data, tar.len);
	seed(dir, "base-docker-archive", M_DOCKER_ARCHIVE, &d);
	fuzz_buf_free(&tar);
	free(d.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;

	if (!ready) {
		const char *seeds = getenv("CFS_FUZZ_SEED_DIR");

		init();
		if (seeds)
			write_seeds(seeds);
		ready = true;
	}
	if (size < 1)
		return 0;
	run(data[0], data + 1, size - 1);
	return 0;
}
