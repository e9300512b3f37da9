/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Partial pulls (docs/distribution.md, "Partial pulls"): a zstd:chunked
 * layer whose files the store mostly has is not fetched whole. Its TOC
 * and tar-split come by range requests; the files the store lacks come
 * by range too; the layer's exact tar is rebuilt from the tar-split,
 * the store's objects and the fetched frames, and the conversion reads
 * that tar as it reads any layer, checking its diff_id. So the image is
 * the one a whole pull makes, and the trust is the same: the diff_id
 * the config promised (docs/security.md).
 *
 * A producer thread per layer fetches the missing ranges and writes the
 * rebuilt tar into a socket the conversion reads (cfs_blob_fetch):
 * nothing is written to disk but the new objects.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <openssl/evp.h>

#include "common/cleanup.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/json.h"
#include "common/util.h"
#include "convert/chunked.h"
#include "convert/layer.h"
#include "convert/oci.h"
#include "convert/records.h"
#include "store/partial.h"
#include "store/registry.h"
#include "store/store-internal.h"

/* Ranges less than this apart are fetched as one: a gap costs less than
 * another range in the request (and the registry's per-range part
 * headers). */
#define PARTIAL_GAP (16 * 1024)
/* A layer is pulled partially only when what it lacks is at most this
 * share of the blob (in 1/100) and at most PARTIAL_MEM_MAX bytes: the
 * fetched frames are held in memory, and a layer the store has little
 * of is better streamed whole in one request. */
#define PARTIAL_SHARE 50
#define PARTIAL_MEM_MAX (256u * 1024 * 1024)

struct partial_layer {
	char digest[CFS_SHA256_STR_SIZE];
	char what[CFS_SHA256_STR_SIZE + 8]; /* "layer DIGEST" */
	uint64_t blob_size;
	struct cfs_toc toc;
	char *tarsplit; /* JSON lines, NUL-terminated; NULL: toc_only */
	/* no tar-split (--trust-toc): the tar is written from the TOC */
	bool toc_only;
	/* the producer: the ranges to fetch (sorted) and their bytes */
	struct cfs_registry_part *parts;
	size_t n_ranges;
	pthread_t thread;
	bool started;
	int fd; /* its end of the socket */
	int reader; /* the conversion's end, until finished */
	int result;
	char why[1024];
	uint64_t fetched; /* bytes of this layer received */
};

struct cfs_partial {
	cfs_store *s;
	const char *source;
	struct cfs_registry *reg;
	bool trust_toc;
	struct store_shamap map;
	struct partial_layer *layers;
	size_t n;
	/* layers fetched whole after their TOC (and tar-split) came: what
	 * that cost, for their bytes_fetched */
	struct spent {
		char digest[CFS_DIGEST_STR_MAX];
		uint64_t bytes;
	} * spent;
	size_t n_spent;
};

/* ---- what the store has ---------------------------------------------- */

/* The path in objects/ of the object that should hold @e's content: the
 * one its TOC names by fs-verity digest (CFS_TOC_FSVERITY, as oci2cfs
 * seal --zstd-chunked writes), else the one the store's records pair
 * with its SHA-256. Either way the content read is checked against the
 * SHA-256 (file_stored()): the TOC's fs-verity digest only finds it. */
static bool object_path(struct cfs_partial *p, const struct cfs_toc_entry *e,
			char path[CFS_DIGEST_HEX_SIZE + 2])
{
	const uint8_t *obj;

	if (e->has_verity) {
		cfs_digest_to_object_path(e->verity, path);
		if (faccessat(p->s->objects_fd, path, F_OK,
			      AT_SYMLINK_NOFOLLOW) == 0)
			return true;
	}
	obj = store_shamap_find(&p->map, e->sha256);
	if (obj)
		cfs_digest_to_object_path(obj, path);
	return obj != NULL;
}

/* The object of @e's content, if the store has it (its fd, -1). */
static int object_open(struct cfs_partial *p, const struct cfs_toc_entry *e)
{
	char path[CFS_DIGEST_HEX_SIZE + 2];

	if (!object_path(p, e, path))
		return -1;
	return openat(p->s->objects_fd, path,
		      O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
}

static bool have(void *opaque, const struct cfs_toc_entry *e)
{
	struct cfs_partial *p = opaque;
	char path[CFS_DIGEST_HEX_SIZE + 2];

	return object_path(p, e, path) &&
	       faccessat(p->s->objects_fd, path, F_OK, AT_SYMLINK_NOFOLLOW) ==
		       0;
}

/* ---- the rebuilt tar ------------------------------------------------- */

struct producer {
	struct cfs_partial *p;
	struct partial_layer *l;
	EVP_MD_CTX *sha;
	ZSTD_DCtx *z;
	struct archive *ar; /* toc_only: contents go through it */
	uint8_t buf[128 * 1024];
};

static int put(void *opaque, const void *buf, size_t len)
{
	struct producer *pr = opaque;
	const char *b = buf;

	while (len > 0) {
		ssize_t n = send(pr->l->fd, b, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno; /* EPIPE: the conversion stopped */
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Content bytes of a file: hashed, then sent. */
static int put_content(struct producer *pr, const void *buf, size_t len)
{
	if (EVP_DigestUpdate(pr->sha, buf, len) != 1)
		return -EIO;
	if (!pr->ar)
		return put(pr, buf, len);
	return archive_write_data(pr->ar, buf, len) == (la_ssize_t)len ?
		       0 :
		       cfs_error(EIO, "%s: writing its tar: %s", pr->l->what,
				 archive_error_string(pr->ar));
}

/* The file's content from the fetched frames at [e->offset, e->end). */
static int file_fetched(struct producer *pr, const struct cfs_toc_entry *e,
			const struct cfs_registry_part *part, uint64_t *got)
{
	ZSTD_inBuffer in = { part->data + (e->offset - part->offset),
			     (size_t)(e->end - e->offset), 0 };
	size_t ret = 1;

	ZSTD_DCtx_reset(pr->z, ZSTD_reset_session_only);
	/* the range holds the file's frames, one or several (chunks) */
	for (;;) {
		ZSTD_outBuffer out = { pr->buf, sizeof(pr->buf), 0 };
		int r;

		ret = ZSTD_decompressStream(pr->z, &out, &in);
		if (ZSTD_isError(ret))
			return cfs_error(EBADMSG,
					 "layer %s: %s: fetched content is "
					 "damaged (zstd: %s)",
					 pr->l->digest, e->name,
					 ZSTD_getErrorName(ret));
		if (out.pos > e->size - *got)
			return cfs_error(
				EBADMSG,
				"layer %s: %s: fetched content is damaged "
				"(its frames hold more than its %llu bytes)",
				pr->l->digest, e->name,
				(unsigned long long)e->size);
		*got += out.pos;
		r = put_content(pr, pr->buf, out.pos);
		if (r < 0)
			return r;
		/* all read, and nothing more held back */
		if (in.pos == in.size && out.pos < out.size)
			break;
	}
	if (ret != 0 || *got != e->size)
		return cfs_error(
			EBADMSG,
			"layer %s: %s: fetched content is damaged (its "
			"frames do not hold its %llu bytes)",
			pr->l->digest, e->name, (unsigned long long)e->size);
	return 0;
}

/* The file's content from the store's object @fd. */
static int file_stored(struct producer *pr, const struct cfs_toc_entry *e,
		       int fd, uint64_t *got)
{
	for (;;) {
		ssize_t n = pread(fd, pr->buf, sizeof(pr->buf), (off_t)*got);
		int r;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return cfs_error_errno(
				errno, "layer %s: %s: reading its object",
				pr->l->digest, e->name);
		if (n == 0 || (uint64_t)n > e->size - *got)
			break;
		*got += (uint64_t)n;
		r = put_content(pr, pr->buf, (size_t)n);
		if (r < 0)
			return r;
	}
	return *got == e->size ?
		       0 :
		       cfs_error(EBADMSG,
				 "layer %s: %s: the store's object for its "
				 "SHA-256 is not %llu bytes",
				 pr->l->digest, e->name,
				 (unsigned long long)e->size);
}

/* The fetched part that holds [e->offset, e->end), or NULL. */
static const struct cfs_registry_part *part_of(struct partial_layer *l,
					       const struct cfs_toc_entry *e)
{
	size_t lo = 0, hi = l->n_ranges;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (l->parts[mid].end <= e->offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < l->n_ranges && l->parts[lo].offset <= e->offset &&
	    e->end <= l->parts[lo].end)
		return &l->parts[lo];
	return NULL;
}

static int put_file(void *opaque, const struct cfs_toc_entry *e)
{
	struct producer *pr = opaque;
	const struct cfs_registry_part *part = part_of(pr->l, e);
	uint8_t sha[32];
	uint64_t got = 0;
	int fd = -1, r;

	if (EVP_DigestInit_ex(pr->sha, EVP_sha256(), NULL) != 1)
		return -EIO;
	if (part) {
		r = file_fetched(pr, e, part, &got);
	} else if ((fd = object_open(pr->p, e)) >= 0) {
		r = file_stored(pr, e, fd, &got);
		close(fd);
	} else {
		/* gc removed it since the plan: pull again */
		return cfs_error(
			ENOENT,
			"layer %s: %s: its content left the store during "
			"the pull",
			pr->l->digest, e->name);
	}
	if (r == 0 && EVP_DigestFinal_ex(pr->sha, sha, NULL) != 1)
		r = -EIO;
	if (r == 0 && memcmp(sha, e->sha256, 32) != 0)
		r = cfs_error(
			EBADMSG,
			"layer %s: %s: content does not match its TOC digest "
			"(%s)",
			pr->l->digest, e->name,
			part ? "fetched" : "from the store");
	return r;
}

/* ---- a tar from the TOC alone (--trust-toc) ---------------------------- */

static la_ssize_t archive_put(struct archive *a, void *opaque, const void *buf,
			      size_t len)
{
	struct producer *pr = opaque;
	int r = put(pr, buf, len);

	if (r < 0) {
		archive_set_error(a, -r, "%s", strerror(-r));
		return -1;
	}
	return (la_ssize_t)len;
}

static la_ssize_t archive_count(struct archive *a, void *opaque,
				const void *buf, size_t len)
{
	(void)a;
	(void)buf;
	*(uint64_t *)opaque += len;
	return (la_ssize_t)len;
}

/* @te as a tar entry header (type, names, owner, times, device, xattrs,
 * size). */
static void toc_archive_entry(const struct cfs_toc_entry *te,
			      struct archive_entry *ae)
{
	struct cfs_layer_entry e;

	cfs_toc_entry_to_layer(te, &e);
	archive_entry_set_pathname(ae, e.path);
	archive_entry_set_mode(ae, e.mode);
	if (e.hardlink)
		archive_entry_set_hardlink(ae, e.link);
	else if (S_ISLNK(e.mode))
		archive_entry_set_symlink(ae, e.link);
	archive_entry_set_uid(ae, e.uid);
	archive_entry_set_gid(ae, e.gid);
	archive_entry_set_mtime(ae, e.mtime_sec, e.mtime_nsec);
	if (S_ISCHR(e.mode) || S_ISBLK(e.mode)) {
		archive_entry_set_rdevmajor(ae, te->dev_major);
		archive_entry_set_rdevminor(ae, te->dev_minor);
	}
	for (size_t i = 0; i < e.n_xattrs; i++)
		archive_entry_xattr_add_entry(ae, e.xattrs[i].name,
					      e.xattrs[i].value,
					      e.xattrs[i].len);
	archive_entry_set_size(ae, te->type == CFS_TOC_REG ? te->size : 0);
}

/*
 * The layer's tar as the TOC describes it, entry by entry, written as
 * pax by libarchive: into the socket, each file's content checked as in
 * put_file(); or, with @size, only counted (contents as zeros), for the
 * size the conversion is told. Not the layer's own tar: whatever the TOC
 * cannot say (docs/formats.md) is not in it, and its SHA-256 is no
 * diff_id.
 */
static int write_toc_tar(struct producer *pr, uint64_t *size)
{
	const struct cfs_toc *toc = &pr->l->toc;
	struct archive *a = archive_write_new();
	struct archive_entry *ae = archive_entry_new();
	int r = 0;

	if (!a || !ae) {
		r = -ENOMEM;
		goto out;
	}
	if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_open(a, size ? (void *)size : (void *)pr, NULL,
			       size ? archive_count : archive_put,
			       NULL) != ARCHIVE_OK) {
		r = cfs_error(EIO, "%s: a tar from its TOC: %s", pr->l->what,
			      archive_error_string(a));
		goto out;
	}
	pr->ar = a;
	for (size_t i = 0; r == 0 && i < toc->n; i++) {
		const struct cfs_toc_entry *te = &toc->entries[i];

		archive_entry_clear(ae);
		toc_archive_entry(te, ae);
		if (archive_write_header(a, ae) != ARCHIVE_OK) {
			r = cfs_error(EIO,
				      "%s: %s: a tar header from its "
				      "TOC: %s",
				      pr->l->what, te->name,
				      archive_error_string(a));
			break;
		}
		if (te->type != CFS_TOC_REG || te->size == 0)
			continue;
		if (!size) {
			r = put_file(pr, te);
			continue;
		}
		for (uint64_t left = te->size; r == 0 && left > 0;) {
			static const uint8_t zeros[64 * 1024];
			size_t k = (size_t)CFS_MIN(left, sizeof(zeros));

			if (archive_write_data(a, zeros, k) != (la_ssize_t)k)
				r = -EIO;
			left -= k;
		}
	}
	if (r == 0 && archive_write_close(a) != ARCHIVE_OK)
		r = cfs_error(EIO, "%s: a tar from its TOC: %s", pr->l->what,
			      archive_error_string(a));
out:
	pr->ar = NULL;
	archive_entry_free(ae);
	archive_write_free(a);
	return r;
}

/* cfs_tarsplit_rebuild() callbacks that only add up the tar's size. */
static int count(void *opaque, const void *buf, size_t len)
{
	(void)buf;
	*(uint64_t *)opaque += len;
	return 0;
}

static int count_file(void *opaque, const struct cfs_toc_entry *e)
{
	*(uint64_t *)opaque += e->size;
	return 0;
}

/*
 * The store's objects a rebuild reads, read ahead: with a cold page
 * cache, reading debian-minbase's 5,000 objects one after the other
 * made a partial pull of debian-minbase-rebuilt take 1.10 s instead of
 * 0.58 s (0.79 s with this; 4 threads: 0.86 s), mostly waiting for
 * inodes. PREFETCH_THREADS threads, each every PREFETCH_THREADS-th file
 * in the tar's order, open each object and ask for its content
 * (POSIX_FADV_WILLNEED), while the ranges are fetched and the tar is
 * written. Only a hint: a failure changes nothing.
 */
#define PREFETCH_THREADS 8

struct prefetch {
	struct cfs_partial *p;
	struct partial_layer *l;
	size_t first;
	bool *stop;
};

static void *prefetch_run(void *arg)
{
	struct prefetch *pf = arg;
	const struct cfs_toc *toc = &pf->l->toc;

	for (size_t i = pf->first; i < toc->n_files; i += PREFETCH_THREADS) {
		const struct cfs_toc_entry *e = toc->files[i];
		int fd;

		if (__atomic_load_n(pf->stop, __ATOMIC_RELAXED))
			break;
		if (part_of(pf->l, e) || (fd = object_open(pf->p, e)) < 0)
			continue;
		posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
		close(fd);
	}
	return NULL;
}

static void *produce(void *arg)
{
	struct producer *pr = arg;
	struct partial_layer *l = pr->l;
	struct cfs_registry_stats before, after;
	struct prefetch pf[PREFETCH_THREADS];
	pthread_t threads[PREFETCH_THREADS];
	bool started[PREFETCH_THREADS], stop = false;
	int r = 0;

	for (size_t k = 0; k < PREFETCH_THREADS; k++) {
		pf[k] = (struct prefetch){ pr->p, l, k, &stop };
		started[k] = pthread_create(&threads[k], NULL, prefetch_run,
					    &pf[k]) == 0;
	}
	cfs_registry_stats(pr->p->reg, &before);
	if (l->n_ranges)
		r = cfs_registry_fetch(pr->p->reg, l->digest, l->blob_size,
				       l->parts, l->n_ranges);
	cfs_registry_stats(pr->p->reg, &after);
	l->fetched += after.bytes - before.bytes;
	if (r == 0 && l->toc_only)
		r = write_toc_tar(pr, NULL);
	else if (r == 0)
		r = cfs_tarsplit_rebuild(l->tarsplit, &l->toc, put, put_file,
					 pr, l->what);
	if (r < 0)
		snprintf(l->why, sizeof(l->why), "%s", cfs_error_message());
	__atomic_store_n(&stop, true, __ATOMIC_RELAXED);
	for (size_t k = 0; k < PREFETCH_THREADS; k++)
		if (started[k])
			pthread_join(threads[k], NULL);
	/* the end of the tar, for the reader */
	close(l->fd);
	l->fd = -1;
	l->result = r;
	ZSTD_freeDCtx(pr->z);
	EVP_MD_CTX_free(pr->sha);
	free(pr);
	return NULL;
}

/* ---- preparing a pull ---------------------------------------------------- */

/* The TOC and (when it has one) the tar-split of layer @l (@c: where
 * they are), fetched in one request, checked and parsed. */
static int read_meta(struct cfs_partial *p, struct partial_layer *l,
		     struct cfs_chunked *c, const char *what)
{
	struct cfs_registry_part parts[2] = { { 0 } };
	struct cfs_chunked_part *toc = &c->toc, *ts = &c->tarsplit;
	size_t n = ts->present ? 2 : 1;
	bool ts_first = ts->present && ts->offset < toc->offset;
	struct cfs_registry_part *pt = &parts[ts_first],
				 *ps = &parts[!ts_first];
	struct cfs_registry_stats before, after;
	_cleanup_free_ char *json = NULL;
	int r;

	pt->offset = toc->offset;
	pt->end = toc->offset + toc->length;
	if (ts->present) {
		ps->offset = ts->offset;
		ps->end = ts->offset + ts->length;
		if (parts[0].end > parts[1].offset)
			return cfs_error(EBADMSG,
					 "%s: its TOC and tar-split overlap",
					 what);
		ps->data = malloc((size_t)ts->length);
	}
	pt->data = malloc((size_t)toc->length);
	if (!pt->data || (ts->present && !ps->data)) {
		r = -ENOMEM;
		goto out;
	}
	cfs_registry_stats(p->reg, &before);
	r = cfs_registry_fetch(p->reg, l->digest, l->blob_size, parts, n);
	cfs_registry_stats(p->reg, &after);
	l->fetched = after.bytes - before.bytes;
	if (r == 0)
		r = cfs_chunked_part_decode(toc, pt->data, (size_t)toc->length,
					    &json, what, "TOC");
	if (r == 0)
		r = cfs_toc_parse(&l->toc, json, toc->offset, what);
	if (r == 0 && ts->present)
		r = cfs_chunked_bind_tarsplit(c, &l->toc, what);
	if (r == 0 && ts->present)
		r = cfs_chunked_part_decode(ts, ps->data, (size_t)ts->length,
					    &l->tarsplit, what, "tar-split");
out:
	free(parts[0].data);
	free(parts[1].data);
	return r;
}

/* The blob descriptors of manifest @man, or NULL. */
static json_object *manifest_layers(json_object *man)
{
	json_object *v;

	return json_object_object_get_ex(man, "layers", &v) &&
			       json_object_is_type(v, json_type_array) ?
		       v :
		       NULL;
}

/*
 * Is layer @i (descriptor @d) of @img one to pull partially, if the store
 * has most of its files: zstd:chunked with a tar-split (@c filled), and
 * the store has no record of it? Malformed annotations make it a layer
 * like any other: the whole blob needs none of them.
 */
static bool candidate(cfs_store *s, bool trust_toc, struct cfs_oci_image *img,
		      size_t i, json_object *d, struct cfs_chunked *c)
{
	struct cfs_oci_layer *ol = &img->layers[i];
	json_object *ann = NULL;
	uint8_t diff_id[32];
	int r;

	if (ol->size < 0 || !ol->diff_id ||
	    cfs_parse_sha256(ol->diff_id, diff_id) < 0 ||
	    cfs_record_exists(s->layers_fd, diff_id))
		return false;
	json_object_object_get_ex(d, "annotations", &ann);
	r = cfs_chunked_from_annotations(ann, (uint64_t)ol->size, c, "layer");
	if (r < 0)
		cfs_error_clear();
	return r > 0 && (c->tarsplit.present || trust_toc);
}

/* Layer @l comes whole after all: remember what its TOC cost. */
static int spent(struct cfs_partial *p, const struct partial_layer *l)
{
	struct spent *v;

	if (l->fetched == 0)
		return 0;
	v = reallocarray(p->spent, p->n_spent + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	p->spent = v;
	v += p->n_spent++;
	snprintf(v->digest, sizeof(v->digest), "%s", l->digest);
	v->bytes = l->fetched;
	return 0;
}

/*
 * Layer @i (descriptor @d) of @img, pulled partially if candidate() and
 * the store has most of its files: 1 when it will be (its layer
 * switched to the rebuilt tar), 0 when it is fetched whole, -errno when
 * its TOC or tar-split is wrong or cannot be fetched.
 */
static int prepare_layer(struct cfs_partial *p, struct cfs_oci_image *img,
			 size_t i, json_object *d)
{
	struct cfs_oci_layer *ol = &img->layers[i];
	struct partial_layer *l = &p->layers[p->n];
	uint64_t tar_size = 0;
	struct cfs_chunked_range *ranges = NULL;
	struct cfs_chunked c;
	uint64_t missing;
	char what[512];
	int r;

	if (!candidate(p->s, p->trust_toc, img, i, d, &c))
		return 0;
	snprintf(what, sizeof(what), "%s: layer %s", img->source, ol->digest);
	memset(l, 0, sizeof(*l));
	l->fd = l->reader = -1;
	l->blob_size = (uint64_t)ol->size;
	snprintf(l->digest, sizeof(l->digest), "%s", ol->digest);
	snprintf(l->what, sizeof(l->what), "layer %s", ol->digest);
	p->n++; /* freed by cfs_partial_free() from here on */
	r = read_meta(p, l, &c, what);
	if (r == -ENOTSUP) {
		/* a registry without ranges: the layer comes whole, once */
		cfs_error_clear();
		r = 0;
		goto whole;
	}
	if (r == 0)
		r = cfs_chunked_plan(&l->toc, have, p, PARTIAL_GAP, &ranges,
				     &l->n_ranges, &missing);
	if (r == 0 && (missing > l->blob_size * PARTIAL_SHARE / 100 ||
		       missing > PARTIAL_MEM_MAX)) {
		/* fetched whole after all: the TOC and tar-split were
		 * fetched for nothing */
	whole:
		cfs_toc_free(&l->toc);
		free(l->tarsplit);
		free(ranges);
		p->n--;
		return spent(p, l);
	}
	l->toc_only = !c.tarsplit.present;
	if (r == 0 && l->toc_only) {
		/* (its 128 KiB buffer is not for the stack) */
		struct producer *counter = calloc(1, sizeof(*counter));

		r = counter ? 0 : -ENOMEM;
		if (counter) {
			counter->p = p;
			counter->l = l;
			r = write_toc_tar(counter, &tar_size);
		}
		free(counter);
	} else if (r == 0) {
		r = cfs_tarsplit_rebuild(l->tarsplit, &l->toc, count,
					 count_file, &tar_size, what);
	}
	if (r == 0 && tar_size > INT64_MAX)
		r = cfs_error(EFBIG, "%s: a tar of %llu bytes", what,
			      (unsigned long long)tar_size);
	if (r == 0) {
		l->parts = calloc(l->n_ranges ? l->n_ranges : 1,
				  sizeof(*l->parts));
		r = l->parts ? 0 : -ENOMEM;
	}
	for (size_t k = 0; r == 0 && k < l->n_ranges; k++) {
		l->parts[k].offset = ranges[k].offset;
		l->parts[k].end = ranges[k].end;
		l->parts[k].data =
			malloc((size_t)(ranges[k].end - ranges[k].offset));
		if (!l->parts[k].data)
			r = -ENOMEM;
	}
	free(ranges);
	if (r < 0)
		return r;
	/* The conversion reads the rebuilt tar: no blob to check, the
	 * diff_id as always. */
	ol->compression = CFS_LAYER_TAR;
	ol->verify_blob = false;
	ol->partial = true;
	ol->unverified = l->toc_only;
	ol->size = (int64_t)tar_size;
	return 1;
}

int cfs_partial_prepare(struct cfs_partial **out, cfs_store *s,
			const char *source, bool insecure, bool trust_toc,
			struct cfs_oci_image *img)
{
	struct cfs_partial *p;
	json_object *man = NULL, *descs;
	struct cfs_chunked c;
	bool any = false;
	size_t n;
	int r;

	*out = NULL;
	if (strncmp(source, "docker://", 9) != 0 || !img->manifest ||
	    s->layers_fd < 0 || img->n_layers == 0)
		return 0;
	if (cfs_json_parse((const char *)img->manifest, img->manifest_len,
			   &man) < 0) {
		cfs_error_clear(); /* the import says what is wrong with it */
		return 0;
	}
	descs = manifest_layers(man);
	n = descs && json_object_array_length(descs) == img->n_layers ?
		    img->n_layers :
		    0;
	for (size_t i = 0; i < n && !any; i++)
		any = candidate(s, trust_toc, img, i,
				json_object_array_get_idx(descs, i), &c);
	if (!any) {
		json_object_put(man);
		return 0;
	}
	p = calloc(1, sizeof(*p));
	if (p)
		p->layers = calloc(img->n_layers, sizeof(*p->layers));
	if (!p || !p->layers) {
		free(p);
		json_object_put(man);
		return -ENOMEM;
	}
	p->s = s;
	p->source = source;
	p->trust_toc = trust_toc;
	/* What the store has: with nothing, no layer is worth a TOC. A
	 * store with records but no pairs (format 1) may still have what a
	 * TOC names by fs-verity digest. */
	r = store_shamap_load(s, &p->map);
	if (r == 0 && p->map.n_records > 0) {
		r = cfs_registry_open(&p->reg, source, insecure);
		if (r == 0)
			cfs_registry_ranges_only(p->reg);
		if (r == -ENOTSUP || r == -EINVAL) {
			/* no libcurl, or a reference only skopeo reads */
			cfs_error_clear();
			r = 0;
		}
	}
	for (size_t i = 0; r >= 0 && p->reg && i < img->n_layers; i++)
		r = prepare_layer(p, img, i,
				  json_object_array_get_idx(descs, i));
	json_object_put(man);
	if (r < 0 || (p->n == 0 && p->n_spent == 0)) {
		cfs_partial_free(p);
		return r < 0 ? r : 0;
	}
	*out = p;
	return 0;
}

/* ---- the conversion's side ----------------------------------------------- */

static struct partial_layer *find(struct cfs_partial *p, const char *digest)
{
	for (size_t i = 0; p && i < p->n; i++)
		if (strcmp(p->layers[i].digest, digest) == 0)
			return &p->layers[i];
	return NULL;
}

int cfs_partial_open(struct cfs_partial *p, const char *digest, int *fd)
{
	struct partial_layer *l = find(p, digest);
	struct producer *pr;
	int sv[2];

	if (!l)
		return 0;
	if (l->started)
		return cfs_error(EALREADY, "%s: layer %s opened twice",
				 p->source, digest);
	pr = calloc(1, sizeof(*pr));
	if (!pr)
		return -ENOMEM;
	pr->p = p;
	pr->l = l;
	pr->sha = EVP_MD_CTX_new();
	pr->z = ZSTD_createDCtx();
	if (!pr->sha || !pr->z ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		int e = pr->sha && pr->z ? errno : ENOMEM;

		ZSTD_freeDCtx(pr->z);
		EVP_MD_CTX_free(pr->sha);
		free(pr);
		return cfs_error_errno(e, "%s: layer %s", p->source, digest);
	}
	l->reader = sv[0];
	l->fd = sv[1];
	if (pthread_create(&l->thread, NULL, produce, pr) != 0) {
		close(sv[0]);
		close(sv[1]);
		l->reader = l->fd = -1;
		ZSTD_freeDCtx(pr->z);
		EVP_MD_CTX_free(pr->sha);
		free(pr);
		return cfs_error(EAGAIN, "%s: layer %s: no thread", p->source,
				 digest);
	}
	l->started = true;
	*fd = sv[0];
	return 1;
}

int cfs_partial_finish(struct cfs_partial *p, int fd, bool complete, int *r)
{
	struct partial_layer *l = NULL;

	for (size_t i = 0; p && i < p->n; i++)
		if (p->layers[i].started && p->layers[i].reader == fd)
			l = &p->layers[i];
	if (!l)
		return 0;
	/* closed first: a producer still sending gets EPIPE and stops */
	close(fd);
	l->reader = -1;
	pthread_join(l->thread, NULL);
	l->started = false;
	/* EPIPE before the end: the conversion stopped first, and its
	 * error says why */
	*r = l->result < 0 && !(l->result == -EPIPE && !complete) ?
		     cfs_error(-l->result, "%s",
			       l->why[0] ? l->why : strerror(-l->result)) :
		     0;
	return 1;
}

bool cfs_partial_layer(struct cfs_partial *p, const char *digest,
		       uint64_t *fetched, bool *toc_only)
{
	struct partial_layer *l = find(p, digest);

	if (l && fetched)
		*fetched = l->fetched;
	if (toc_only)
		*toc_only = l && l->toc_only;
	return l != NULL;
}

uint64_t cfs_partial_spent(struct cfs_partial *p, const char *digest)
{
	for (size_t i = 0; p && i < p->n_spent; i++)
		if (strcmp(p->spent[i].digest, digest) == 0)
			return p->spent[i].bytes;
	return 0;
}

void cfs_partial_free(struct cfs_partial *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++) {
		struct partial_layer *l = &p->layers[i];

		if (l->started) {
			close(l->reader);
			pthread_join(l->thread, NULL);
		}
		for (size_t k = 0; l->parts && k < l->n_ranges; k++)
			free(l->parts[k].data);
		free(l->parts);
		free(l->tarsplit);
		cfs_toc_free(&l->toc);
	}
	free(p->layers);
	free(p->spent);
	store_shamap_free(&p->map);
	cfs_registry_free(p->reg);
	free(p);
}
