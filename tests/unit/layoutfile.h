/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Whole files of an OCI layout, for the unit tests that check layers a
 * real producer wrote (test-chunked, test-registry): a file that cannot
 * be read ends the test. And the content of a zstd:chunked TOC entry
 * from its frames.
 */
#ifndef CFS_TEST_LAYOUTFILE_H
#define CFS_TEST_LAYOUTFILE_H

#include <fcntl.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "convert/chunked.h"

/* @path in @dirfd, whole, with a NUL after its @len bytes. */
static uint8_t *read_file(int dirfd, const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0) {
		perror(path);
		exit(1);
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf || read(fd, buf, (size_t)st.st_size) != st.st_size) {
		perror(path);
		exit(1);
	}
	buf[st.st_size] = 0;
	*len = (size_t)st.st_size;
	close(fd);
	return buf;
}

/* The blob "sha256:<hex>" of the layout @dirfd. */
static uint8_t *read_blob(int dirfd, const char *digest, size_t *len)
{
	char path[128];

	snprintf(path, sizeof(path), "blobs/sha256/%s", digest + 7);
	return read_file(dirfd, path, len);
}

/* index.json of the layout @dirfd, and the manifest of its first entry. */
static void read_manifest(int dirfd, json_object **index,
			  json_object **manifest)
{
	json_object *v;
	size_t len;
	char *text = (char *)read_file(dirfd, "index.json", &len);

	*index = json_tokener_parse(text);
	free(text);
	v = json_object_array_get_idx(
		json_object_object_get(*index, "manifests"), 0);
	if (!v) {
		fprintf(stderr, "index.json: no manifest\n");
		exit(1);
	}
	text = (char *)read_blob(
		dirfd,
		json_object_get_string(json_object_object_get(v, "digest")),
		&len);
	*manifest = json_tokener_parse(text);
	free(text);
	if (!*manifest) {
		fprintf(stderr, "manifest: not JSON\n");
		exit(1);
	}
}

/* The content of TOC entry @e (malloc'ed, e->size bytes) from its frames
 * at @frames (the first byte of its range), or NULL when they do not
 * decompress to exactly that many bytes. */
static uint8_t *toc_file_content(const uint8_t *frames,
				 const struct cfs_toc_entry *e)
{
	uint8_t *out = malloc(e->size + 1);
	size_t got = out ? ZSTD_decompress(out, e->size + 1, frames,
					   e->end - e->offset) :
			   0;

	if (out && (ZSTD_isError(got) || got != e->size)) {
		free(out);
		out = NULL;
	}
	return out;
}

#endif
