/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * OCI sources: stream each layer once, apply its entries to the tree,
 * store file contents as objects, and check every digest on the way.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/util.h"
#include "convert/apply.h"
#include "convert/convert-internal.h"
#include "convert/layer.h"
#include "convert/oci.h"
#include "convert/records.h"

/* xattrs on one tar entry: more would not fit in an inode anyway. */
#define CFS_ENTRY_XATTRS_MAX 4096

/* The record of a layer read, and what its header says. */
struct pending_record {
	struct cfs_record_builder *b;
	uint8_t diff_id[32];
	uint64_t tar_bytes, dropped;
};

struct oci_conv {
	const cfs_convert_options *opts;
	struct cfs_objects *objs;
	cfs_progress progress;
	struct timespec last_report;
	uint64_t input_done; /* bytes of finished layers */
	uint64_t objects; /* objects stored or found */
	struct cfs_oci_image *img;
	struct cfs_applier applier;
	/* CFS_CONVERT_LAYER_DIGESTS or a sealed layer: the current layer
	 * alone, whiteouts kept (layer_on tells whether it is in use) */
	struct cfs_applier layer;
	bool layer_on;
	struct cfs_object_writer *writer;
	struct cfs_entry_xattr *xattrs;
	uint64_t xattrs_dropped;
	/* layer records (records.h): where to find and leave them, and the
	 * record of the layer being read */
	struct cfs_records *records;
	struct cfs_record_builder *record;
	/* records of the layers read, one per layer, written once every
	 * object is (write_records()): their SHA-256 pairs are known only
	 * then */
	struct pending_record *pending;
	/* where the blobs a layout lacks come from, or NULL */
	const struct cfs_blob_fetch *fetch;
	/* the next layer, started before its turn (start_ahead()); layers
	 * below ahead_next were considered for it */
	struct {
		struct cfs_layer_stream *s;
		struct cfs_blob blob;
		size_t layer;
	} ahead;
	size_t ahead_next;
	char where[256];
};

/* Report progress at most every 100 ms (and always when @force). */
static void report(struct oci_conv *c, struct cfs_layer_stream *s, bool force)
{
	struct timespec now;
	int64_t ms;

	if (!c->opts->progress)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (now.tv_sec - c->last_report.tv_sec) * 1000 +
	     (now.tv_nsec - c->last_report.tv_nsec) / 1000000;
	if (!force && ms < 100)
		return;
	c->last_report = now;
	c->progress.input_bytes =
		c->input_done + (s ? cfs_layer_bytes_read(s) : 0);
	c->progress.objects = c->objects;
	c->opts->progress(c->opts->progress_opaque, &c->progress);
}

/* The zeros from @pos to @end of a sparse file: a hole of the object,
 * which costs neither hashing nor disk in proportion to its size. */
static int add_hole(struct oci_conv *c, uint8_t *small, bool inline_,
		    int64_t pos, int64_t end)
{
	if (end <= pos)
		return 0;
	if (inline_) {
		memset(small + pos, 0, (size_t)(end - pos));
		return 0;
	}
	return cfs_object_writer_write_zeros(c->writer, (uint64_t)(end - pos));
}

/* Read a regular file's data from the tar stream into its inode. A sparse
 * file comes as data blocks at their offsets; what lies between them and
 * after the last one is a hole. */
static int read_content(struct oci_conv *c, struct archive *a,
			struct archive_entry *ae, cfs_inode *file,
			const char *path)
{
	int64_t size = archive_entry_size(ae);
	uint8_t digest[CFS_DIGEST_SIZE];
	uint8_t small[CFS_INLINE_DEFAULT];
	bool inline_ = size <= CFS_INLINE_DEFAULT;
	int64_t pos = 0;
	int r;

	if (size < 0)
		return cfs_error(EINVAL, "%s: %s: negative size", c->where,
				 path);
	if (size == 0)
		return 0;
	if (!inline_)
		cfs_object_writer_begin(c->writer);

	for (;;) {
		const void *buf;
		size_t len;
		la_int64_t off;
		int ar = archive_read_data_block(a, &buf, &len, &off);

		if (ar == ARCHIVE_EOF)
			break;
		if (ar != ARCHIVE_OK)
			return cfs_error(EIO, "%s: %s: reading data: %s",
					 c->where, path,
					 archive_error_string(a));
		if (off < pos || off + (int64_t)len > size)
			return cfs_error(
				EINVAL,
				"%s: %s: data block at %lld beyond size %lld",
				c->where, path, (long long)off,
				(long long)size);
		r = add_hole(c, small, inline_, pos, off);
		if (r < 0)
			return cfs_error_prefix(-r, "%s: %s", c->where, path);
		pos = off;
		if (inline_)
			memcpy(small + pos, buf, len);
		else if ((r = cfs_object_writer_write(c->writer, buf, len)) < 0)
			return cfs_error_prefix(-r, "%s: %s", c->where, path);
		pos += (int64_t)len;
	}
	r = add_hole(c, small, inline_, pos, size);
	if (r < 0)
		return cfs_error_prefix(-r, "%s: %s", c->where, path);
	if (inline_)
		return cfs_inode_set_content(file, small, (size_t)size);
	r = cfs_object_writer_commit(c->writer, digest);
	if (r < 0)
		return cfs_error_prefix(-r, "%s: %s", c->where, path);
	c->objects++;
	r = cfs_inode_set_size(file, (uint64_t)size);
	if (r == 0)
		r = cfs_inode_set_object(file, digest);
	return r;
}

/* Give the layer-alone tree's file @to the content read into @from. */
static int copy_content(cfs_inode *to, const cfs_inode *from)
{
	const void *data = from ? cfs_inode_content(from) : NULL;
	const uint8_t *digest = from ? cfs_inode_digest(from) : NULL;
	int r;

	if (!from || cfs_inode_size(from) == 0)
		return 0;
	if (data)
		return cfs_inode_set_content(to, data, cfs_inode_size(from));
	r = cfs_inode_set_size(to, cfs_inode_size(from));
	if (r == 0 && digest)
		r = cfs_inode_set_object(to, digest);
	return r;
}

/*
 * Whether an entry of file type @type keeps xattr @name. Linux allows
 * user.* on regular files and directories only (xattr_permission() in
 * fs/xattr.c: EPERM to set one on anything else, ENODATA to read one),
 * so a user.* xattr of a symlink, device or fifo in the image would be
 * listed by listxattr and unreadable by getxattr. containerd's unpacker
 * meets the EPERM and goes on without the xattr ("ignored xattr ... in
 * archive"): the conversion drops it too, and counts it.
 */
static bool xattr_kept(uint32_t type, const char *name)
{
	return type == S_IFREG || type == S_IFDIR ||
	       strncmp(name, "user.", strlen("user.")) != 0;
}

static int convert_entry(struct oci_conv *c, struct archive *a,
			 struct archive_entry *ae, int64_t offset)
{
	struct cfs_layer_entry e = { 0 };
	const char *path = archive_entry_pathname(ae);
	const char *name;
	const void *value;
	size_t len, n = 0;
	cfs_inode *file, *layer_file = NULL;
	int64_t uid, gid;
	int r;

	if (!path)
		return cfs_error(
			EINVAL,
			"%s: entry at tar offset %lld has no usable name",
			c->where, (long long)offset);
	e.path = path;
	e.mode = archive_entry_mode(ae);
	e.hardlink = archive_entry_hardlink(ae) != NULL;
	if (e.hardlink)
		e.link = archive_entry_hardlink(ae);
	else if (archive_entry_filetype(ae) == AE_IFLNK)
		e.link = archive_entry_symlink(ae);
	if (!e.hardlink) {
		switch (e.mode & S_IFMT) {
		case S_IFREG:
		case S_IFDIR:
		case S_IFLNK:
		case S_IFCHR:
		case S_IFBLK:
		case S_IFIFO:
			break;
		default:
			return cfs_error(
				EINVAL,
				"%s: %s: unsupported tar entry type (mode 0%o)",
				c->where, path, e.mode);
		}
	}
	uid = archive_entry_uid(ae);
	gid = archive_entry_gid(ae);
	if (uid < 0 || uid > UINT32_MAX || gid < 0 || gid > UINT32_MAX)
		return cfs_error(ERANGE,
				 "%s: %s: uid/gid %lld/%lld out of range",
				 c->where, path, (long long)uid,
				 (long long)gid);
	e.uid = (uint32_t)uid;
	e.gid = (uint32_t)gid;
	if (archive_entry_mtime_is_set(ae)) {
		e.mtime_sec = archive_entry_mtime(ae);
		e.mtime_nsec = (uint32_t)archive_entry_mtime_nsec(ae);
	}
	e.rdev = makedev(archive_entry_rdevmajor(ae),
			 archive_entry_rdevminor(ae));

	archive_entry_xattr_reset(ae);
	while (archive_entry_xattr_next(ae, &name, &value, &len) ==
	       ARCHIVE_OK) {
		/* (a hardlink's own xattrs are never applied) */
		if (!e.hardlink && !xattr_kept(e.mode & S_IFMT, name)) {
			c->xattrs_dropped++;
			continue;
		}
		if (n == CFS_ENTRY_XATTRS_MAX)
			return cfs_error(E2BIG, "%s: %s: more than %d xattrs",
					 c->where, path, CFS_ENTRY_XATTRS_MAX);
		c->xattrs[n++] = (struct cfs_entry_xattr){ name, value, len };
	}
	e.xattrs = c->xattrs;
	e.n_xattrs = n;

	r = cfs_applier_apply(&c->applier, &e, &file);
	if (r == 0 && c->layer_on)
		r = cfs_applier_apply(&c->layer, &e, &layer_file);
	if (r < 0)
		return r;
	if (file)
		r = read_content(c, a, ae, file, path);
	if (r == 0 && layer_file)
		r = copy_content(layer_file, file);
	if (r == 0 && c->record)
		r = cfs_record_add(c->record, &e, file);
	return r;
}

static int check_digest(struct oci_conv *c, const char *what, const char *want,
			const uint8_t got[32])
{
	uint8_t d[32];
	char gots[80];

	if (cfs_parse_sha256(want, d) < 0)
		return cfs_error(EINVAL, "%s: unsupported digest %s", c->where,
				 want);
	if (memcmp(d, got, 32) == 0)
		return 0;
	cfs_sha256_str(got, gots);
	return cfs_error(EINVAL, "%s: %s mismatch: expected %s, got %s",
			 c->where, what, want, gots);
}

/* The composefs digest of the layer alone; checked against its sealing
 * annotation if it has one. */
static int layer_digest(struct oci_conv *c, cfs_layer_info *info)
{
	char hex[CFS_DIGEST_HEX_SIZE + 1];
	int r;

	r = cfs_image_digest(c->layer.root, NULL, info->composefs_digest);
	if (r < 0)
		return cfs_error_prefix(-r, "%s: composefs image of the layer",
					c->where);
	info->has_composefs_digest = true;
	cfs_digest_to_hex(info->composefs_digest, hex);
	if (info->sealed_layer[0] && strcmp(hex, info->sealed_layer) != 0)
		return cfs_error(
			EBADMSG,
			"%s: not the sealed layer: " CFS_ANNOTATION_LAYER
			" is %s, the layer gives %s",
			c->where, info->sealed_layer, hex);
	return 0;
}

/* The composefs digest of all layers so far, checked against the
 * layer's composefs.merged annotation (the last layer's is the image's
 * own digest: the caller writes the same tree with the same options). */
static int merged_digest(struct oci_conv *c, const cfs_layer_info *info)
{
	uint8_t d[CFS_DIGEST_SIZE];
	char hex[CFS_DIGEST_HEX_SIZE + 1];
	int r;

	r = cfs_image_digest(c->applier.root, NULL, d);
	if (r < 0)
		return cfs_error_prefix(-r, "%s: composefs image", c->where);
	cfs_digest_to_hex(d, hex);
	if (strcmp(hex, info->sealed_merged) != 0)
		return cfs_error(
			EBADMSG,
			"%s: not the sealed image: " CFS_ANNOTATION_MERGED
			" is %s, the layers up to this one give %s",
			c->where, info->sealed_merged, hex);
	return 0;
}

/* ---- layer records ------------------------------------------------------ */

/*
 * Check a record before anything of it is applied: every entry reads,
 * and every object it names is in the object directory (gc keeps the
 * objects of the records it keeps; a repair may have removed one). 0,
 * or -EBADMSG / -ENOENT: read the layer instead.
 */
static int record_usable(struct oci_conv *c, struct cfs_record *rec)
{
	struct cfs_layer_entry e;
	struct cfs_record_content content;
	int r;

	while ((r = cfs_record_next(rec, &e, &content, c->where)) > 0)
		if (content.digest && c->objs && c->records->check_objects &&
		    !cfs_objects_has(c->objs, content.digest))
			return -ENOENT;
	return r;
}

/* Apply every entry of @rec, as convert_entry() would have. */
static int apply_record(struct oci_conv *c, struct cfs_record *rec)
{
	struct cfs_layer_entry e;
	struct cfs_record_content content;
	cfs_inode *file, *layer_file = NULL;
	int r;

	while ((r = cfs_record_next(rec, &e, &content, c->where)) > 0) {
		r = cfs_applier_apply(&c->applier, &e, &file);
		if (r == 0 && c->layer_on)
			r = cfs_applier_apply(&c->layer, &e, &layer_file);
		if (r == 0 && file)
			r = cfs_record_content_set(file, &content);
		if (file && content.digest)
			c->objects++;
		if (r == 0 && layer_file)
			r = copy_content(layer_file, file);
		if (r < 0)
			return r;
	}
	return r;
}

/*
 * Layer @i from its record, if the store has a usable one: 0 when done,
 * 1 when the layer must be read. The record holds what reading the
 * layer's tar gave, checked against @diff_id then: the blob is not
 * needed at all. A damaged record is read past (fsck reports it).
 */
/* The compressed bytes layer @i will read: its blob's, else (a blob to
 * fetch) its descriptor's size. */
static uint64_t layer_input_size(struct oci_conv *c, size_t i)
{
	struct cfs_blob b;
	int64_t size = c->img->layers[i].size;

	if (cfs_oci_layer_blob(c->img, i, &b) == 0)
		return b.length;
	cfs_error_clear();
	return size > 0 ? (uint64_t)size : 0;
}

static void start_ahead(struct oci_conv *c, size_t i, bool may_fetch);

static int replay_layer(struct oci_conv *c, size_t i, const uint8_t diff_id[32],
			cfs_layer_info *info)
{
	struct cfs_record rec;
	size_t first;
	int r;

	if (!c->records || c->records->read_fd < 0)
		return 1;
	r = cfs_record_open(&rec, c->records->read_fd, diff_id, c->where);
	if (r == -ENOENT || r == -EBADMSG)
		return 1;
	if (r < 0)
		return r;
	/* The next layer's blob is read while this one is replayed. */
	start_ahead(c, i + 1, true);
	first = rec.pos;
	r = record_usable(c, &rec);
	if (r == 0) {
		rec.pos = first;
		rec.done = 0;
		r = apply_record(c, &rec);
		info->entries = rec.entries;
		info->uncompressed_bytes = rec.tar_bytes;
		c->xattrs_dropped += rec.xattrs_dropped;
	} else if (r == -ENOENT || r == -EBADMSG) {
		r = 1;
	}
	cfs_record_close(&rec);
	if (r != 0)
		return r;
	c->records->reused[i] = true;
	c->progress.layers_reused++;
	c->progress.input_total -=
		CFS_MIN(c->progress.input_total, layer_input_size(c, i));
	if (c->layer_on)
		r = layer_digest(c, info);
	if (r == 0 && info->sealed_merged[0])
		r = merged_digest(c, info);
	return r;
}

/* Record the layer about to be read, when records are kept. */
static int start_record(struct oci_conv *c)
{
	if (!c->records || c->records->write_fd < 0)
		return 0;
	return cfs_record_builder_new(&c->record);
}

/* Keep the record of layer @i, read whole and checked, for
 * write_records(). */
static void finish_record(struct oci_conv *c, size_t i,
			  const uint8_t diff_id[32], uint64_t tar_bytes,
			  uint64_t dropped)
{
	struct pending_record *p = &c->pending[i];

	p->b = c->record;
	c->record = NULL;
	memcpy(p->diff_id, diff_id, 32);
	p->tar_bytes = tar_bytes;
	p->dropped = dropped;
}

static bool record_sha256(void *opaque, const uint8_t *object, uint8_t *sha256)
{
	return cfs_objects_sha256(opaque, object, sha256);
}

/* Write the records kept by finish_record(), after the objects they
 * name: each with the content SHA-256 of those this conversion made. */
static int write_records(struct oci_conv *c)
{
	int r = 0;

	for (size_t i = 0; r == 0 && c->pending && i < c->img->n_layers; i++) {
		struct pending_record *p = &c->pending[i];

		if (!p->b)
			continue;
		r = cfs_record_write(p->b, c->records->write_fd, p->diff_id,
				     p->tar_bytes, p->dropped,
				     c->objs ? record_sha256 : NULL, c->objs);
		/* The same layer twice in one image: recorded once. */
		if (r == -EEXIST) {
			r = 0;
			continue;
		}
		if (r < 0)
			return cfs_error_errno(
				-r,
				"%s: layer %s: writing its layer record in %s",
				c->img->source, c->img->layers[i].digest,
				c->records->write_path ?
					c->records->write_path :
					"the record directory");
		c->records->written[i] = true;
	}
	return r;
}

static void free_records(struct oci_conv *c)
{
	for (size_t i = 0; c->pending && i < c->img->n_layers; i++)
		cfs_record_builder_free(c->pending[i].b);
	free(c->pending);
	c->pending = NULL;
}

/* Layer @i's blob: the source's, else (a layout without it, a fetch
 * given, @may_fetch) a stream of it from @c->fetch. */
static int open_blob(struct oci_conv *c, size_t i, struct cfs_blob *blob,
		     bool may_fetch)
{
	struct cfs_oci_layer *l = &c->img->layers[i];
	int r = cfs_oci_layer_blob(c->img, i, blob);

	if (r != -ENOENT || !c->fetch || !may_fetch || l->size < 0 ||
	    (!l->verify_blob && !l->partial))
		return r;
	cfs_error_clear();
	r = c->fetch->open(c->fetch->opaque, l->digest, l->size, &blob->fd);
	if (r < 0)
		return r;
	blob->offset = 0;
	blob->length = (uint64_t)l->size;
	blob->stream = true;
	return 0;
}

static void layer_where(struct oci_conv *c, size_t i, char *buf, size_t size)
{
	snprintf(buf, size, "%s: layer %s", c->img->source,
		 c->img->layers[i].digest);
}

/* Stop reading fetched blob @blob (@s, if started) and hand its pipe
 * back: 0, or the fetch's error about it. */
static int finish_fetch(struct oci_conv *c, struct cfs_layer_stream *s,
			const struct cfs_blob *blob)
{
	bool drained = s && cfs_layer_bytes_read(s) == blob->length;

	cfs_layer_close(s);
	return c->fetch->finish(c->fetch->opaque, blob->fd, drained);
}

/*
 * Layer @i, started before its turn: while the layer before it is still
 * being applied (its record replayed, or the last megabytes of its tar
 * parsed once its blob was all read), a core is free to decompress and
 * hash this one. Only a layer that will be read (the store has no
 * record of it), and a fetched blob only with @may_fetch: the proxy
 * answers one request at a time, so no other fetched pipe may be open.
 * A failure here is no error: the layer is opened again in its turn,
 * and says then what it says.
 */
static void start_ahead(struct oci_conv *c, size_t i, bool may_fetch)
{
	struct cfs_oci_layer *l;
	struct cfs_blob blob = { .fd = -1 };
	uint8_t diff_id[32];
	char where[sizeof(c->where)];

	if (c->ahead.s || i >= c->img->n_layers || i < c->ahead_next)
		return;
	c->ahead_next = i + 1;
	l = &c->img->layers[i];
	if (c->records && c->records->read_fd >= 0 && l->diff_id &&
	    !l->unverified && cfs_parse_sha256(l->diff_id, diff_id) == 0 &&
	    cfs_record_exists(c->records->read_fd, diff_id))
		return;
	layer_where(c, i, where, sizeof(where));
	if (open_blob(c, i, &blob, may_fetch) < 0) {
		cfs_error_clear();
		return;
	}
	if (cfs_layer_start(&c->ahead.s, &blob, l->compression, where, true) <
	    0) {
		/* (c->ahead.s is still NULL: a failed start sets nothing) */
		if (blob.stream)
			finish_fetch(c, NULL, &blob);
		cfs_error_clear();
		return;
	}
	c->ahead.blob = blob;
	c->ahead.layer = i;
}

/* Stop a layer started ahead that will not be used. */
static void drop_ahead(struct oci_conv *c)
{
	char why[1024]; /* what the error buffer holds */

	if (!c->ahead.s)
		return;
	if (c->ahead.blob.stream) {
		/* whatever it says, the message of the moment stays */
		snprintf(why, sizeof(why), "%s", cfs_error_message());
		finish_fetch(c, c->ahead.s, &c->ahead.blob);
		cfs_error_clear();
		if (why[0])
			cfs_error(EIO, "%s", why);
	} else {
		cfs_layer_close(c->ahead.s);
	}
	c->ahead.s = NULL;
}

static int convert_layer(struct oci_conv *c, size_t i, cfs_layer_info *info)
{
	struct cfs_oci_layer *l = &c->img->layers[i];
	struct cfs_layer_stream *s = NULL;
	struct cfs_layer_digests d;
	struct cfs_blob blob = { .fd = -1 };
	struct archive *a;
	struct archive_entry *ae;
	uint8_t diff_id[32];
	bool have_id;
	uint64_t dropped = c->xattrs_dropped;
	int64_t offset;
	int r;

	layer_where(c, i, c->where, sizeof(c->where));
	cfs_applier_begin_layer(&c->applier, (uint32_t)i + 1, c->where);
	c->progress.layer = i + 1;
	c->layer_on = (c->opts->flags & CFS_CONVERT_LAYER_DIGESTS) ||
		      l->sealed_layer[0];
	if (c->layer_on) {
		cfs_applier_fini(&c->layer);
		r = cfs_applier_init(&c->layer);
		if (r < 0)
			return r;
		c->layer.keep_whiteouts = true;
		cfs_applier_begin_layer(&c->layer, 1, c->where);
	}

	/* a layer whose tar is not the diff_id's (unverified) has no record
	 * to use, and gets none */
	have_id = l->diff_id && !l->unverified &&
		  cfs_parse_sha256(l->diff_id, diff_id) == 0;
	if (have_id) {
		r = replay_layer(c, i, diff_id, info);
		if (r <= 0)
			return r;
	}

	if (c->ahead.s && c->ahead.layer == i) {
		s = c->ahead.s;
		blob = c->ahead.blob;
		c->ahead.s = NULL;
	} else {
		/* A fetched blob started ahead would hold up this one's. */
		drop_ahead(c);
		r = open_blob(c, i, &blob, true);
		if (r < 0)
			return r; /* the message names the source and layer */
	}
	if (l->verify_blob && l->size >= 0 &&
	    blob.length != (uint64_t)l->size) {
		r = cfs_error(EINVAL,
			      "%s: blob has %llu bytes, descriptor says %lld",
			      c->where, (unsigned long long)blob.length,
			      (long long)l->size);
		goto out;
	}
	r = s ? cfs_layer_begin(s) :
		cfs_layer_open(&s, &blob, l->compression, c->where);
	if (r < 0)
		goto out;
	/* recorded when the diff_id checks out (freed at out) */
	if (have_id && (r = start_record(c)) < 0)
		goto out;
	a = cfs_layer_archive(s);
	while ((r = cfs_layer_next_entry(s, &ae, &offset)) > 0) {
		info->entries++;
		report(c, s, false);
		r = convert_entry(c, a, ae, offset);
		/* This blob is all read: the next layer's turn to start,
		 * fetched only once this one's pipe is handed back. */
		if (r == 0 && c->ahead_next <= i + 1 && cfs_layer_produced(s))
			start_ahead(c, i + 1, !blob.stream);
		if (r < 0) {
			/* a producer failure surfaces as a read error */
			if (cfs_layer_error(s))
				r = cfs_error(EINVAL, "%s", cfs_layer_error(s));
			goto out;
		}
	}
	if (r == 0)
		r = cfs_layer_finish(s, &d);
	if (r < 0)
		goto out;
	c->input_done += d.compressed_size;
	info->compressed_bytes = d.compressed_size;
	info->uncompressed_bytes = d.uncompressed_size;
	if (l->verify_blob)
		r = check_digest(c, "blob digest", l->digest, d.compressed);
	if (r == 0 && l->diff_id && !l->unverified)
		r = check_digest(c, "diff_id", l->diff_id, d.uncompressed);
	if (r == 0 && c->layer_on)
		r = layer_digest(c, info);
	if (r == 0 && info->sealed_merged[0])
		r = merged_digest(c, info);
	if (r == 0 && c->record)
		finish_record(c, i, diff_id, d.uncompressed_size,
			      c->xattrs_dropped - dropped);
out:
	cfs_record_builder_free(c->record);
	c->record = NULL;
	if (blob.stream) {
		/* the producer's word on a stream that broke explains it */
		char why[1024]; /* what the error buffer holds */
		int f;

		snprintf(why, sizeof(why), "%s", cfs_error_message());
		f = finish_fetch(c, s, &blob);
		s = NULL;
		if (r == 0 || f < 0)
			r = f;
		else if (r < 0)
			r = cfs_error(-r, "%s", why);
	}
	cfs_layer_close(s);
	return r;
}

int cfs_oci_stats(const struct cfs_oci_image *img, cfs_convert_stats *stats)
{
	stats->layers = calloc(img->n_layers ? img->n_layers : 1,
			       sizeof(*stats->layers));
	if (!stats->layers)
		return -ENOMEM;
	stats->n_layers = img->n_layers;
	snprintf(stats->manifest_digest, sizeof(stats->manifest_digest), "%s",
		 img->manifest_digest ? img->manifest_digest : "");
	snprintf(stats->config_digest, sizeof(stats->config_digest), "%s",
		 img->config_digest ? img->config_digest : "");
	for (size_t i = 0; i < img->n_layers; i++) {
		const struct cfs_oci_layer *l = &img->layers[i];
		cfs_layer_info *info = &stats->layers[i];

		snprintf(info->digest, sizeof(info->digest), "%s", l->digest);
		snprintf(info->media_type, sizeof(info->media_type), "%s",
			 l->media_type);
		snprintf(info->sealed_layer, sizeof(info->sealed_layer), "%s",
			 l->sealed_layer);
		snprintf(info->sealed_merged, sizeof(info->sealed_merged), "%s",
			 l->sealed_merged);
	}
	return 0;
}

int cfs_oci_load(cfs_inode **root_out, struct cfs_oci_image *img,
		 const cfs_convert_options *opts, struct cfs_objects *objs,
		 struct cfs_records *records,
		 const struct cfs_blob_fetch *fetch, cfs_convert_stats *stats)
{
	struct oci_conv c = { .opts = opts,
			      .img = img,
			      .objs = objs,
			      .records = records,
			      .fetch = fetch };
	int r = 0;

	if (records) {
		size_t n = c.img->n_layers ? c.img->n_layers : 1;

		records->reused = calloc(n, sizeof(bool));
		records->written = calloc(n, sizeof(bool));
		records->n = c.img->n_layers;
		if (records->write_fd >= 0) {
			c.pending = calloc(n, sizeof(*c.pending));
			if (objs)
				cfs_objects_keep_sha256(objs);
		}
		if (!records->reused || !records->written ||
		    (records->write_fd >= 0 && !c.pending)) {
			r = -ENOMEM;
			goto out;
		}
	}
	c.progress.n_layers = c.img->n_layers;
	for (size_t i = 0; i < c.img->n_layers; i++)
		c.progress.input_total += layer_input_size(&c, i);
	c.xattrs = calloc(CFS_ENTRY_XATTRS_MAX, sizeof(*c.xattrs));
	if (!c.xattrs) {
		r = -ENOMEM;
		goto out;
	}
	r = cfs_oci_stats(img, stats);
	if (r == 0)
		r = cfs_applier_init(&c.applier);
	if (r == 0)
		r = cfs_object_writer_new(&c.writer, objs);
	for (size_t i = 0; r == 0 && i < c.img->n_layers; i++)
		r = convert_layer(&c, i, &stats->layers[i]);
	/* every object the tree names is written before anyone looks */
	if (r == 0 && objs)
		r = cfs_objects_flush(objs);
	if (r == 0)
		r = write_records(&c);
	if (r == 0) {
		c.progress.done = 1;
		report(&c, NULL, true);
		*root_out = cfs_inode_ref(c.applier.root);
		r = cfs_stats_count_tree(*root_out, stats);
		if (r < 0) {
			cfs_inode_unref(*root_out);
			*root_out = NULL;
		}
	}
out:
	drop_ahead(&c);
	free_records(&c);
	stats->xattrs_dropped = c.xattrs_dropped;
	cfs_object_writer_free(c.writer);
	cfs_applier_fini(&c.applier);
	cfs_applier_fini(&c.layer);
	free(c.xattrs);
	return r;
}
