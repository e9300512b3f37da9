/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "convert/convert-internal.h"
#include "convert/oci.h"
#include "image/tree-internal.h"

static int check_options(const cfs_convert_options *opts)
{
	if (!CFS_OPTIONS_VERSION_OK(opts->version,
				    CFS_CONVERT_OPTIONS_VERSION) ||
	    (opts->flags &
	     ~(CFS_CONVERT_LAYER_DIGESTS | CFS_CONVERT_CANONICAL)))
		return cfs_error(EINVAL, "invalid conversion options");
	if ((opts->flags & CFS_CONVERT_CANONICAL) && opts->version >= 2 &&
	    opts->write && opts->write->max_format < CFS_CANONICAL_FORMAT)
		return cfs_error(EINVAL, "a canonical image is composefs "
					 "format version 1");
	return 0;
}

/* @opts' write options (a version 1 caller's struct has none). */
static const cfs_write_options *
convert_write_options(const cfs_convert_options *opts)
{
	static const cfs_write_options canonical = CFS_WRITE_OPTIONS_CANONICAL;
	const cfs_write_options *w =
		opts && opts->version >= 2 ? opts->write : NULL;

	if (!w && opts && (opts->flags & CFS_CONVERT_CANONICAL))
		return &canonical;
	return w;
}

/* CFS_CONVERT_CANONICAL: the tree a conversion gave, made canonical. */
static int finish_tree(int r, cfs_inode *root, const char *source,
		       const cfs_convert_options *opts)
{
	if (r < 0 || !(opts->flags & CFS_CONVERT_CANONICAL))
		return r;
	r = cfs_tree_canonicalize(root);
	return r < 0 ? cfs_error_prefix(-r, "%s", source) : 0;
}

/* dump:PATH, "dump:-" being stdin (mkcomposefs --from-file -). */
static int load_dump(cfs_inode **root_out, const char *path,
		     cfs_convert_stats *stats)
{
	bool in = strcmp(path, "-") == 0;
	_cleanup_fclose_ FILE *f = in ? NULL : fopen(path, "re");
	int r;

	if (!in && !f)
		return cfs_error_errno(errno, "dump:%s", path);
	r = cfs_dump_read(root_out, in ? stdin : f);
	if (r < 0)
		return cfs_error_prefix(-r, "dump:%s", path);
	return cfs_stats_count_tree(*root_out, stats);
}

static int load_image(cfs_inode **root_out, const char *path,
		      cfs_convert_stats *stats)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return cfs_error_errno(errno, "cfs:%s", path);
	r = cfs_image_read_fd(root_out, fd, NULL);
	if (r < 0)
		return cfs_error_prefix(-r, "cfs:%s", path);
	return cfs_stats_count_tree(*root_out, stats);
}

static int load_source(cfs_inode **root_out, const char *source,
		       const cfs_convert_options *opts,
		       struct cfs_objects *objs, cfs_convert_stats *stats)
{
	int r;

	if (cfs_oci_is_source(source)) {
		struct cfs_oci_image *img = NULL;

		r = cfs_oci_open(&img, source, opts->platform);
		if (r == 0)
			r = cfs_oci_load(root_out, img, opts, objs, NULL, NULL,
					 stats);
		cfs_oci_free(img);
	} else if (strncmp(source, "dir:", 4) == 0)
		r = cfs_dirsource_load(root_out, source + 4, objs, stats);
	else if (strncmp(source, "dump:", 5) == 0)
		r = load_dump(root_out, source + 5, stats);
	else if (strncmp(source, "cfs:", 4) == 0)
		r = load_image(root_out, source + 4, stats);
	else
		return cfs_error(
			EINVAL,
			"%s: unknown source type (supported: dir:PATH, "
			"dump:FILE, cfs:IMAGE, oci:PATH[:REF], "
			"oci-archive:FILE[:REF], docker-archive:FILE[:REF])",
			source);
	return finish_tree(r, r == 0 ? *root_out : NULL, source, opts);
}

static void add_object_stats(cfs_convert_stats *stats, struct cfs_objects *objs)
{
	const struct cfs_objects_stats *os = cfs_objects_stats(objs);

	stats->objects_new = os->new_objects;
	stats->objects_reused = os->reused_objects;
	stats->objects_new_bytes = os->new_bytes;
	stats->objects_reused_bytes = os->reused_bytes;
}

static int convert_tree(cfs_inode **root_out, const char *source,
			const cfs_convert_options *opts,
			cfs_convert_stats *stats, struct cfs_objects **objs_out)
{
	struct cfs_objects *objs = NULL;
	int r;

	cfs_result_zero(stats, sizeof(*stats));
	r = check_options(opts);
	if (r < 0)
		return r;
	if (opts->objects_dir) {
		r = cfs_objects_open(&objs, opts->objects_dir);
		if (r < 0)
			return r;
	}
	r = load_source(root_out, source, opts, objs, stats);
	if (objs)
		add_object_stats(stats, objs);
	if (r < 0 || !objs_out)
		cfs_objects_free(objs);
	else
		*objs_out = objs;
	return r;
}

/* The checks of the conversions into an open object directory. */
static int objs_options(const cfs_convert_options *opts,
			cfs_convert_stats *stats)
{
	int r;

	cfs_result_zero(stats, sizeof(*stats));
	r = check_options(opts);
	if (r == 0 && opts->objects_dir)
		r = cfs_error(EINVAL, "objects_dir set with an open object "
				      "directory");
	return r;
}

int cfs_convert_tree_objs(cfs_inode **root_out, const char *source,
			  const cfs_convert_options *opts,
			  struct cfs_objects *objs, cfs_convert_stats *stats)
{
	int r = objs_options(opts, stats);

	if (r < 0)
		return r;
	r = load_source(root_out, source, opts, objs, stats);
	if (objs)
		add_object_stats(stats, objs);
	return r;
}

int cfs_convert_oci_objs(cfs_inode **root_out, struct cfs_oci_image *img,
			 const cfs_convert_options *opts,
			 struct cfs_objects *objs, struct cfs_records *records,
			 const struct cfs_blob_fetch *fetch,
			 cfs_convert_stats *stats)
{
	int r = objs_options(opts, stats);

	if (r < 0)
		return r;
	r = cfs_oci_load(root_out, img, opts, objs, records, fetch, stats);
	if (objs)
		add_object_stats(stats, objs);
	return finish_tree(r, r == 0 ? *root_out : NULL, img->source, opts);
}

int cfs_convert_tree(cfs_inode **root_out, const char *source,
		     const cfs_convert_options *opts, cfs_convert_stats *stats)
{
	cfs_convert_options defaults = CFS_CONVERT_OPTIONS_INIT;
	cfs_convert_stats local = CFS_CONVERT_STATS_INIT;
	int r = cfs_result_check(stats, CFS_CONVERT_STATS_VERSION, source);

	if (r < 0)
		return r;
	return convert_tree(root_out, source, opts ? opts : &defaults,
			    stats ? stats : &local, NULL);
}

int cfs_image_write_file(cfs_inode *root, const cfs_write_options *opts,
			 const char *path, uint8_t digest_out[CFS_DIGEST_SIZE],
			 uint64_t *image_size)
{
	struct cfs_atomic_file af = { .fd = -1 };
	_cleanup_close_ int dirfd = -1;
	const char *base;
	struct stat st;
	int r;

	/* Only ever replace a regular file: renaming over a device or a
	 * directory is not what anyone means by an output path. */
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
		return cfs_error(EINVAL, "%s: exists and is not a regular file",
				 path);
	r = cfs_open_parent(path, &dirfd, &base);
	if (r < 0)
		return cfs_error_errno(-r, "%s", path);
	r = cfs_atomic_open(&af, dirfd, 0644);
	if (r < 0)
		return cfs_error_errno(-r, "%s: creating temporary file", path);
	r = cfs_image_write_fd(root, opts, af.fd, digest_out);
	if (r == 0 && fsync(af.fd) < 0)
		r = cfs_error_errno(errno, "%s: fsync", path);
	if (r == 0 && image_size) {
		struct stat ist;
		if (fstat(af.fd, &ist) < 0)
			r = cfs_error_errno(errno, "%s", path);
		else
			*image_size = (uint64_t)ist.st_size;
	}
	if (r == 0 && fchmod(af.fd, 0644) < 0)
		r = cfs_error_errno(errno, "%s", path);
	if (r < 0) {
		cfs_atomic_abort(&af);
		return cfs_error_prefix(-r, "%s", path);
	}
	r = cfs_atomic_commit(&af, base, true);
	if (r < 0)
		return cfs_error_errno(-r, "%s: renaming into place", path);
	/* The rename itself must survive a crash too. */
	if (fsync(dirfd) < 0 && errno != EINVAL && errno != EBADF)
		return cfs_error_errno(errno, "%s: fsync of directory", path);
	return 0;
}

int cfs_convert(const char *source, const char *output,
		const cfs_convert_options *opts, cfs_convert_stats *stats,
		uint8_t digest_out[CFS_DIGEST_SIZE], uint64_t *image_size)
{
	cfs_convert_options defaults = CFS_CONVERT_OPTIONS_INIT;
	cfs_convert_stats local = CFS_CONVERT_STATS_INIT;
	struct cfs_objects *objs = NULL;
	cfs_inode *root = NULL;
	int r;

	r = cfs_result_check(stats, CFS_CONVERT_STATS_VERSION, source);
	if (r < 0)
		return r;
	r = convert_tree(&root, source, opts ? opts : &defaults,
			 stats ? stats : &local, &objs);
	if (r < 0)
		return r;
	/* Objects first: an image must never point at content that a crash
	 * could still lose. */
	if (objs)
		r = cfs_objects_sync(objs);
	if (r == 0)
		r = cfs_image_write_file(root, convert_write_options(opts),
					 output, digest_out, image_size);
	cfs_objects_free(objs);
	cfs_inode_unref(root);
	return r;
}
