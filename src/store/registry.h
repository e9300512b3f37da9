/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Ranges of blobs from an OCI distribution registry, over HTTP with
 * libcurl: what a partial pull fetches of a zstd:chunked layer. skopeo
 * stays the client for everything else (manifests, whole blobs, every
 * other transport); its image proxy has no ranges.
 *
 * A reference is the docker transport's ("docker://[HOST/]REPO[:TAG]
 * [@DIGEST]"): a first component with a '.' or a ':', or "localhost",
 * is the registry, else docker.io (whose API is registry-1.docker.io,
 * and whose one-component names are under library/).
 *
 * Authentication as the registry asks (a 401 and its WWW-Authenticate):
 * a bearer token from its realm, anonymous or with the credentials of
 * the first auth.json that has the registry (REGISTRY_AUTH_FILE,
 * $XDG_RUNTIME_DIR/containers/auth.json,
 * $HOME/.config/containers/auth.json, $HOME/.docker/config.json), or
 * basic authentication with them. HTTPS with verification; insecure:
 * HTTPS without, falling back to plain HTTP.
 *
 * Many ranges go in one request ("Range: bytes=a-b,c-d"); the answer
 * may be multipart/byteranges, one range, or the whole blob (200: a
 * registry that ignores ranges; the transfer stops after the last byte
 * wanted). A registry that refuses ranges (400, 416, 501) is asked
 * again with fewer, then one, then for the whole blob. One that refused
 * a single range, or answered with the whole blob, is asked for whole
 * blobs from then on: the caller sees it in cfs_registry_stats() and
 * may rather take the layer the ordinary way.
 */
#ifndef CFS_REGISTRY_H
#define CFS_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfs_registry;

/* Ranges asked in one request at most: 64 ranges make a header of
 * about 1.5 KiB, far below what servers take (8 KiB and more). */
#define CFS_REGISTRY_RANGES_MAX 64

/*
 * A registry client for @source ("docker://..."): -EINVAL with a message
 * when it is not such a reference, -ENOTSUP when libcurl (loaded here,
 * the first time) is not installed. Nothing is sent yet.
 */
int cfs_registry_open(struct cfs_registry **out, const char *source,
		      bool insecure);
void cfs_registry_free(struct cfs_registry *r);

/* One range of a blob to fetch, and where its bytes go. */
struct cfs_registry_part {
	uint64_t offset, end; /* [offset, end) of the blob */
	uint8_t *data; /* end - offset bytes, the caller's */
	uint64_t filled; /* bytes written to data */
};

/*
 * Fetch @n ranges (sorted, not overlapping, inside the blob) of blob
 * @digest ("sha256:<hex>", of @size bytes) into @parts. 0 when every
 * part is filled; else -errno with one line naming the registry, the
 * blob and what went wrong (the HTTP status, a range the answer lacks,
 * an answer cut short). The bytes are as the registry sent them: the
 * caller checks them against the digests it knows.
 */
int cfs_registry_fetch(struct cfs_registry *r, const char *digest,
		       uint64_t size, struct cfs_registry_part *parts,
		       size_t n);

/*
 * Never take a whole blob: a registry that answers a range with the whole
 * blob (the transfer is stopped at its first bytes) or refuses a single
 * range gets -ENOTSUP from cfs_registry_fetch() (with a message), then
 * and on every later call. For a caller that would rather fetch the
 * blob its own way than through ranges.
 */
void cfs_registry_ranges_only(struct cfs_registry *r);

/* What the client did so far: bodies' bytes received, requests sent,
 * and whether it had to take whole blobs. */
struct cfs_registry_stats {
	uint64_t bytes;
	unsigned int requests;
	unsigned int whole_blobs;
};
void cfs_registry_stats(const struct cfs_registry *r,
			struct cfs_registry_stats *out);

#endif
