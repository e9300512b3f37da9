/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * fuzz-tar-layer: the input after its first byte is a layer's tar
 * stream, converted by cfs_convert_tree() as oci2cfs converts an image
 * (layer stream and producer thread, libarchive, the applier with OCI
 * whiteout semantics, content hashing) without an object directory.
 * The blob digest, size and diff_id are written into the config and
 * manifest for every input, so a well-formed layer converts and its tree
 * goes through fuzz_image_roundtrip() (cfs_image_write, read back,
 * dump round trip).
 *
 *   byte0 & 3   the blob: 0 and 3 the tar as is, 1 gzip, 2 zstd (the
 *               harness compresses it; the input stays tar)
 *   byte0 & 4   two layers: the same blob applied twice (whiteouts and
 *               replacements then meet a lower layer)
 *   byte0 & 8   CFS_CONVERT_LAYER_DIGESTS (also builds each layer's
 *               tree alone, whiteouts kept)
 *   byte0 & 16  a docker-archive instead of an OCI layout (compression
 *               sniffed, no blob digest)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cfs/convert.h>

#include "fuzz.h"

#define MT_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_CONFIG "application/vnd.oci.image.config.v1+json"
#define OCI_LAYOUT "{\"imageLayoutVersion\":\"1.0.0\"}"

static const char *const layer_types[] = {
	"application/vnd.oci.image.layer.v1.tar",
	"application/vnd.oci.image.layer.v1.tar+gzip",
	"application/vnd.oci.image.layer.v1.tar+zstd",
	"application/vnd.oci.image.layer.v1.tar",
};

static struct {
	char layout[300], blobs[300], archive[300];
	ZSTD_CCtx *zstd;
} st;

static void init(void)
{
	const char *dir = fuzz_scratch_dir("tar-layer");
	char path[400];

	snprintf(st.layout, sizeof(st.layout), "%s/layout", dir);
	snprintf(st.blobs, sizeof(st.blobs), "%s/layout/blobs", dir);
	snprintf(st.archive, sizeof(st.archive), "%s/image.tar", dir);
	if (mkdir(st.layout, 0700) < 0 || mkdir(st.blobs, 0700) < 0)
		fuzz_fail("mkdir in %s failed", dir);
	strcat(st.blobs, "/sha256");
	if (mkdir(st.blobs, 0700) < 0)
		fuzz_fail("mkdir %s failed", st.blobs);
	snprintf(path, sizeof(path), "%s/oci-layout", st.layout);
	fuzz_write_file(path, OCI_LAYOUT, strlen(OCI_LAYOUT));
	st.zstd = ZSTD_createCCtx();
	if (!st.zstd)
		fuzz_fail("ZSTD_createCCtx failed");
}

static void gzip(struct fuzz_buf *out, const uint8_t *data, size_t len)
{
	z_stream zs = { 0 };
	uint8_t buf[16384];
	int zr;

	if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
	    Z_OK)
		fuzz_fail("deflateInit2 failed");
	zs.next_in = (uint8_t *)data;
	zs.avail_in = (uInt)len;
	do {
		zs.next_out = buf;
		zs.avail_out = sizeof(buf);
		zr = deflate(&zs, Z_FINISH);
		if (zr == Z_STREAM_ERROR)
			fuzz_fail("deflate failed");
		fuzz_buf_add(out, buf, sizeof(buf) - zs.avail_out);
	} while (zr != Z_STREAM_END);
	deflateEnd(&zs);
}

static void zstd(struct fuzz_buf *out, const uint8_t *data, size_t len)
{
	size_t cap = ZSTD_compressBound(len);
	uint8_t *buf = malloc(cap);
	size_t n;

	if (!buf)
		fuzz_fail("out of memory");
	n = ZSTD_compressCCtx(st.zstd, buf, cap, data, len, 1);
	if (ZSTD_isError(n))
		fuzz_fail("ZSTD_compressCCtx: %s", ZSTD_getErrorName(n));
	fuzz_buf_add(out, buf, n);
	free(buf);
}

static void convert(const char *source, unsigned int flags)
{
	cfs_convert_options opts = CFS_CONVERT_OPTIONS_INIT;
	cfs_convert_stats stats = CFS_CONVERT_STATS_INIT;
	cfs_inode *root = NULL;
	int r;

	opts.flags = flags;
	opts.platform = "linux/amd64";
	cfs_error_clear();
	r = cfs_convert_tree(&root, source, &opts, &stats);
	fuzz_check_error(r, "cfs_convert_tree");
	if (r == 0) {
		if (!root)
			fuzz_fail("cfs_convert_tree succeeded without a root");
		fuzz_image_roundtrip(root, NULL);
		cfs_inode_unref(root);
	} else if (root) {
		fuzz_fail("cfs_convert_tree failed but set a root");
	}
	cfs_convert_stats_clear(&stats);
}

static void run(uint8_t sel, const uint8_t *tar, size_t len)
{
	unsigned int comp = sel & 3;
	size_t n_layers = (sel & 4) ? 2 : 1;
	unsigned int flags = (sel & 8) ? CFS_CONVERT_LAYER_DIGESTS : 0;
	bool docker = sel & 16;
	struct fuzz_buf blob = { 0 }, arc = { 0 };
	char diff_id[72], blob_digest[72], cfg_digest[72], man_digest[72];
	char path[512], source[400], layer[300];
	char *cfg = NULL, *man = NULL, *idx = NULL;
	int cfg_len, man_len, idx_len;

	if (comp == 1)
		gzip(&blob, tar, len);
	else if (comp == 2)
		zstd(&blob, tar, len);
	else
		fuzz_buf_add(&blob, tar, len);
	fuzz_sha256(tar, len, diff_id);
	fuzz_sha256(blob.data, blob.len, blob_digest);

	cfg_len = asprintf(&cfg,
			   "{\"architecture\":\"amd64\",\"os\":\"linux\","
			   "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":"
			   "[\"%s\"%s%s%s]}}",
			   diff_id, n_layers == 2 ? ",\"" : "",
			   n_layers == 2 ? diff_id : "",
			   n_layers == 2 ? "\"" : "");
	if (cfg_len < 0)
		fuzz_fail("out of memory");
	fuzz_sha256(cfg, (size_t)cfg_len, cfg_digest);

	if (docker) {
		char cfg_name[80];
		int n;

		snprintf(cfg_name, sizeof(cfg_name), "%s.json", cfg_digest + 7);
		n = asprintf(&man,
			     "[{\"Config\":\"%s\",\"RepoTags\":[\"fuzz:1\"],"
			     "\"Layers\":[\"layer.tar\"%s]}]",
			     cfg_name, n_layers == 2 ? ",\"layer.tar\"" : "");
		if (n < 0)
			fuzz_fail("out of memory");
		fuzz_tar_add(&arc, "manifest.json", man, (size_t)n);
		fuzz_tar_add(&arc, cfg_name, cfg, (size_t)cfg_len);
		fuzz_tar_add(&arc, "layer.tar", blob.data, blob.len);
		fuzz_tar_end(&arc);
		fuzz_write_file(st.archive, arc.data, arc.len);
		snprintf(source, sizeof(source), "docker-archive:%s",
			 st.archive);
		convert(source, flags);
		goto out;
	}

	snprintf(layer, sizeof(layer),
		 "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu}",
		 layer_types[comp], blob_digest, blob.len);
	man_len = asprintf(&man,
			   "{\"schemaVersion\":2,\"mediaType\":\"" MT_MANIFEST
			   "\",\"config\":{\"mediaType\":\"" MT_CONFIG "\","
			   "\"digest\":\"%s\",\"size\":%d},"
			   "\"layers\":[%s%s%s]}",
			   cfg_digest, cfg_len, layer, n_layers == 2 ? "," : "",
			   n_layers == 2 ? layer : "");
	if (man_len < 0)
		fuzz_fail("out of memory");
	fuzz_sha256(man, (size_t)man_len, man_digest);
	idx_len = asprintf(&idx,
			   "{\"schemaVersion\":2,\"mediaType\":\"" MT_INDEX
			   "\",\"manifests\":[{\"mediaType\":\"" MT_MANIFEST
			   "\",\"digest\":\"%s\",\"size\":%d}]}",
			   man_digest, man_len);
	if (idx_len < 0)
		fuzz_fail("out of memory");

	snprintf(path, sizeof(path), "%s/%s", st.blobs, blob_digest + 7);
	fuzz_write_file(path, blob.data, blob.len);
	snprintf(path, sizeof(path), "%s/%s", st.blobs, cfg_digest + 7);
	fuzz_write_file(path, cfg, (size_t)cfg_len);
	snprintf(path, sizeof(path), "%s/%s", st.blobs, man_digest + 7);
	fuzz_write_file(path, man, (size_t)man_len);
	snprintf(path, sizeof(path), "%s/index.json", st.layout);
	fuzz_write_file(path, idx, (size_t)idx_len);

	snprintf(source, sizeof(source), "oci:%s", st.layout);
	convert(source, flags);

	snprintf(path, sizeof(path), "%s/%s", st.blobs, blob_digest + 7);
	unlink(path);
	snprintf(path, sizeof(path), "%s/%s", st.blobs, cfg_digest + 7);
	unlink(path);
	snprintf(path, sizeof(path), "%s/%s", st.blobs, man_digest + 7);
	unlink(path);
out:
	free(cfg);
	free(man);
	free(idx);
	fuzz_buf_free(&blob);
	fuzz_buf_free(&arc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;

	if (!ready) {
		init();
		ready = true;
	}
	if (size < 1)
		return 0;
	run(data[0], data + 1, size - 1);
	return 0;
}
