/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * The registry client (src/store/registry.h). Without arguments: the
 * references it takes and refuses (no network). With them, driven by
 * tests/scripts/registry-ranges.sh against a real registry:
 *
 *   test-registry [--insecure] [--have none|half|all] SOURCE LAYOUT
 *
 * SOURCE (docker://...) holds the image of the OCI layout LAYOUT, whose
 * layers are zstd:chunked. For each layer: its TOC and tar-split ranges
 * fetched and compared with the layout's blob, the TOC parsed, the
 * files --have says the store lacks planned and fetched, each range
 * compared with the blob and each file's frames checked against its
 * digest. Prints "fetched BYTES requests N whole W files F ranges R"
 * (R: the ranges planned after merging).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "common/json.h"
#include "convert/chunked.h"
#include "store/registry.h"
#include "layoutfile.h"
#include "test.h"

static void check_open(const char *source, int err)
{
	struct cfs_registry *r = NULL;
	int got = cfs_registry_open(&r, source, false);

	if (got != -err)
		fprintf(stderr, "%s: %d, want %d (%s)\n", source, got, -err,
			cfs_error_message());
	CHECK(got == -err);
	CHECK((r != NULL) == (err == 0));
	cfs_registry_free(r);
}

static void test_references(void)
{
	check_open("docker://127.0.0.1:5000/a/b:tag", 0);
	check_open(
		"docker://localhost/x@sha256:"
		"0000000000000000000000000000000000000000000000000000000000000000",
		0);
	check_open("docker://debian", 0);
	check_open("docker://quay.io/podman/stable:v5", 0);
	check_open("oci:/x", EINVAL);
	check_open("docker://Example.com/UPPER", EINVAL);
	check_open("docker://host.io/", EINVAL);
	check_open("docker://host.io/a b", EINVAL);
	check_open("docker://ex ample.com/a", EINVAL);
}

/* ---- against a registry ---- */

static const char *have_mode = "none";

static bool have(void *opaque, const struct cfs_toc_entry *e)
{
	if (strcmp(have_mode, "all") == 0)
		return true;
	return strcmp(have_mode, "half") == 0 && e->sha256[0] % 2 == 0;
}

/* Fetch @n parts and compare them with @blob; 0 or the fetch's error. */
static int fetch_and_compare(struct cfs_registry *r, const char *digest,
			     const uint8_t *blob, size_t len,
			     struct cfs_registry_part *parts, size_t n)
{
	int err;

	for (size_t i = 0; i < n; i++)
		parts[i].data = malloc(parts[i].end - parts[i].offset);
	err = cfs_registry_fetch(r, digest, len, parts, n);
	if (err == 0)
		for (size_t i = 0; i < n; i++)
			CHECK(memcmp(parts[i].data, blob + parts[i].offset,
				     parts[i].end - parts[i].offset) == 0);
	return err;
}

/* Every planned file's frames, from the fetched parts. */
static size_t check_files(const struct cfs_toc *toc,
			  const struct cfs_registry_part *parts, size_t n)
{
	size_t files = 0;

	for (size_t i = 0; i < toc->n_files; i++) {
		const struct cfs_toc_entry *e = toc->files[i];
		const struct cfs_registry_part *p = NULL;
		uint8_t *out, sum[32];

		for (size_t k = 0; k < n && !p; k++)
			if (parts[k].offset <= e->offset &&
			    e->end <= parts[k].end)
				p = &parts[k];
		if (!p) {
			CHECK(have(NULL, e));
			continue;
		}
		out = toc_file_content(p->data + (e->offset - p->offset), e);
		CHECK(out != NULL);
		if (!out)
			continue;
		SHA256(out, e->size, sum);
		CHECK(memcmp(sum, e->sha256, 32) == 0);
		free(out);
		files++;
	}
	return files;
}

static int against_registry(const char *source, const char *layout,
			    bool insecure)
{
	int dirfd = open(layout, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err = 0;
	json_object *index, *manifest, *layers;
	struct cfs_registry *r = NULL;
	struct cfs_registry_stats st;
	size_t len, files = 0, chunked = 0, n_ranges = 0;

	if (dirfd < 0) {
		perror(layout);
		return 1;
	}
	read_manifest(dirfd, &index, &manifest);
	CHECK_OK(cfs_registry_open(&r, source, insecure));
	layers = json_object_object_get(manifest, "layers");
	for (size_t i = 0;
	     r && err == 0 && i < json_object_array_length(layers); i++) {
		json_object *l = json_object_array_get_idx(layers, i);
		const char *digest = json_object_get_string(
			json_object_object_get(l, "digest"));
		uint8_t *blob = read_blob(dirfd, digest, &len);
		struct cfs_registry_part meta = { 0 }, *parts = NULL;
		struct cfs_chunked_range *ranges;
		struct cfs_chunked c;
		struct cfs_toc toc;
		size_t n;
		uint64_t bytes;
		char *toc_text;

		if (cfs_chunked_from_annotations(
			    json_object_object_get(l, "annotations"), len, &c,
			    digest) != 1) {
			free(blob);
			continue;
		}
		chunked++;
		/* the TOC, and the tar-split after it, in one range */
		meta.offset = c.toc.offset;
		meta.end = c.tarsplit.present ?
				   c.tarsplit.offset + c.tarsplit.length :
				   c.toc.offset + c.toc.length;
		err = fetch_and_compare(r, digest, blob, len, &meta, 1);
		if (err == 0) {
			CHECK_OK(cfs_chunked_part_decode(
				&c.toc, meta.data, c.toc.length, &toc_text,
				digest, "TOC"));
			CHECK_OK(cfs_toc_parse(&toc, toc_text, c.toc.offset,
					       digest));
			free(toc_text);
			CHECK_OK(cfs_chunked_plan(&toc, have, NULL, 4096,
						  &ranges, &n, &bytes));
			n_ranges += n;
			parts = calloc(n + 1, sizeof(*parts));
			for (size_t k = 0; k < n; k++) {
				parts[k].offset = ranges[k].offset;
				parts[k].end = ranges[k].end;
			}
			free(ranges);
			err = fetch_and_compare(r, digest, blob, len, parts, n);
			if (err == 0)
				files += check_files(&toc, parts, n);
			for (size_t k = 0; k < n; k++)
				free(parts[k].data);
			free(parts);
			cfs_toc_free(&toc);
		}
		free(meta.data);
		free(blob);
	}
	if (err < 0)
		fprintf(stderr, "%s\n", cfs_error_message());
	if (r) {
		cfs_registry_stats(r, &st);
		printf("fetched %" PRIu64 " requests %u whole %u files %zu "
		       "ranges %zu\n",
		       st.bytes, st.requests, st.whole_blobs, files, n_ranges);
	}
	CHECK(chunked > 0);
	cfs_registry_free(r);
	json_object_put(index);
	json_object_put(manifest);
	close(dirfd);
	if (err < 0)
		return 3; /* the fetch refused: the script checks the message */
	return test_done();
}

int main(int argc, char **argv)
{
	bool insecure = false;
	int i = 1;

	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--insecure") == 0)
			insecure = true;
		else if (strcmp(argv[i], "--have") == 0 && i + 1 < argc)
			have_mode = argv[++i];
	}
	if (argc - i == 2)
		return against_registry(argv[i], argv[i + 1], insecure);
	TEST_RUN(argc, argv, test_references);
	return test_done();
}
