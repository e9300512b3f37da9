/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Importing a source into the store. The order of the steps is what
 * makes a kill -9 at any moment harmless:
 *
 *   1. convert, new objects going to the writer's tmp/w-.../objects
 *      (objects already in the store are found there and not written);
 *   2. write the image to tmp/w-.../image.cfs, enable fs-verity on the
 *      staged objects and the image, syncfs;
 *   3. under names.lock, write what is left to write into tmp/w-...
 *      (blobs, metadata, the new names.json) and make the objects/XX
 *      directories: the last steps that need room on the disk;
 *   4. move the objects into objects/ (an unreferenced object is fine);
 *   5. move the image to images/<digest>.cfs (an image without metadata
 *      or name is an interrupted import: fsck accepts it, gc removes it);
 *   6. blobs, images/<digest>.json, then names.json, each by rename.
 *
 * A failure in 4-6 (a rename that finds the disk full: a directory may
 * need a new block) takes back, still under names.lock, everything this
 * import moved in: until names.json is replaced, a failed import leaves
 * the store as it was. The whole import holds ROOT/lock shared, so gc
 * (exclusive) can neither take an object this import found in the store
 * nor see it half done.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/fsverity.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/json.h"
#include "common/sign.h"
#include "common/util.h"
#include "convert/artifact.h"
#include "convert/convert-internal.h"
#include "convert/oci.h"
#include "convert/records.h"
#include "store/store-internal.h"

CFS_DEFINE_CLEANUP(DIR *, closedir)

/* Does objects/XX exist, or did this import make it? */
enum subdir_state { SUBDIR_UNKNOWN, SUBDIR_THERE, SUBDIR_MADE };

/*
 * What the commit moved into the store, so that a failure before
 * names.json is replaced takes it all back (commit_undo()). Everything
 * here is this import's own: renamed in with RENAME_NOREPLACE while it
 * holds names.lock, which every commit and every undo holds.
 */
struct undo {
	uint8_t (*objects)[CFS_DIGEST_SIZE]; /* room for all of the image's */
	size_t n_objects;
	uint8_t subdir[256]; /* objects/XX: enum subdir_state */
	bool image, meta;
	char blobs[2][CFS_DIGEST_HEX_SIZE + 1];
	size_t n_blobs;
	char (*records)[CFS_DIGEST_HEX_SIZE + 1]; /* layers/<hex> moved in */
	size_t n_records;
};

/* What step 3 staged in the writer's directory for steps 4-6. */
struct stage {
	bool image; /* image.cfs: the store lacks the image */
	bool meta; /* meta.json: the store lacks its metadata */
	bool names; /* names.json: the new table */
	char blobs[2][CFS_DIGEST_HEX_SIZE + 1]; /* blobs the store lacks */
	size_t n_blobs;
};

struct import {
	cfs_store *s;
	struct store_writer w;
	struct stage st; /* what the commit moves in */
	int meta_fd; /* tmp/w-.../meta.json, until fsync'ed */
	const uint8_t *image; /* the composefs image (borrowed) */
	size_t image_len;
	cfs_store_import_result res;
	const struct store_objset *set; /* objects the image references */
	/* objects the layer records this import made reference: the
	 * content of files later layers replaced goes into the store too,
	 * for the next image that has those layers without the later ones */
	struct store_objset rset;
	int layers_fd; /* tmp/w-.../layers: the records this import made */
	size_t n_records;
	bool verity_off; /* stop trying once the filesystem said no */
	int subfd[256]; /* objects/XX opened by staged_move(), or -1 */
	/* the undo generation (store.c) when the import began */
	uint64_t undo_gen;
	bool undo_gen_known;
	int lockfd; /* names.lock while the commit holds it */
	struct undo undo;
	bool committed; /* names.json replaced: nothing to take back */
};

/*
 * Enable fs-verity on @name in @dirfd, with the built-in signature @sig
 * (@sig_len bytes) if not NULL. The file system may not support it
 * (EOPNOTSUPP, or ENOTTY/EINVAL/ENOSYS from older kernels and file
 * systems without the ioctl): that is recorded, not an error, as are
 * other failures (EFBIG, EROFS...): an image without fs-verity still
 * works, it is only not protected. But a signature the kernel refuses
 * (its key is not in the .fs-verity keyring, or it does not match) is
 * an error: that is the kernel enforcing what the caller asked for.
 * 1 when enabled here, else 0.
 */
static int enable_verity(struct import *im, int dirfd, const char *name,
			 const uint8_t *sig, size_t sig_len)
{
	struct fsverity_enable_arg arg = {
		.version = 1,
		.hash_algorithm = FS_VERITY_HASH_ALG_SHA256,
		.block_size = 4096,
		.sig_size = (uint32_t)sig_len,
		.sig_ptr = (uint64_t)(uintptr_t)sig,
	};
	_cleanup_close_ int fd = -1;

	if (im->verity_off)
		return 0;
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, FS_IOC_ENABLE_VERITY, &arg) == 0) {
		im->res.verity_enabled++;
		return 1;
	}
	if (errno == EEXIST)
		return 0;
	if (sig && (errno == EKEYREJECTED || errno == ENOKEY ||
		    errno == EBADMSG || errno == EKEYEXPIRED))
		return cfs_error(errno,
				 "the kernel refused the image's signature "
				 "(%s): is its certificate in the .fs-verity "
				 "keyring?",
				 strerror(errno));
	im->res.verity_errno = errno;
	im->verity_off = true;
	return 0;
}

/* Call @fn for every staged object <64 hex> in @objdir (the flat
 * staging directory of cfs_objects_open_staged()). */
static int for_each_staged(int objdir,
			   int (*fn)(struct import *im, int stagefd,
				     const char *name),
			   struct import *im)
{
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;
	int fd = openat(objdir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = 0;

	if (fd < 0 || !(d = fdopendir(fd))) {
		r = cfs_error_errno(errno, "store %s: tmp/%s/objects",
				    im->s->root, im->w.name);
		cfs_closep(&fd);
		return r;
	}
	while (r == 0 && (de = readdir(d)))
		if (strlen(de->d_name) == CFS_DIGEST_HEX_SIZE &&
		    store_is_hex(de->d_name, false))
			r = fn(im, dirfd(d), de->d_name);
	return r;
}

/* The digest of the staged object @name if the image or a layer record
 * this import made references it: content of files that a later layer
 * deleted or replaced, in a layer that left no record, is not, and
 * never enters the store. */
static bool staged_wanted(struct import *im, const char *name,
			  uint8_t digest[CFS_DIGEST_SIZE])
{
	return cfs_digest_from_hex(digest, name) == 0 &&
	       (store_objset_has(im->set, digest) ||
		store_objset_has(&im->rset, digest));
}

static int staged_verity(struct import *im, int stagefd, const char *name)
{
	uint8_t digest[CFS_DIGEST_SIZE];
	int r;

	if (!staged_wanted(im, name, digest))
		return 0;
	r = enable_verity(im, stagefd, name, NULL, 0);
	return r < 0 ? r : 0;
}

/* objects/XX unless it is there (the conversion made the XX/ of every
 * new object; a directory made here goes again with an undo if it is
 * still empty). */
static int make_subdir(struct import *im, uint8_t idx)
{
	char sub[3];

	if (im->undo.subdir[idx] != SUBDIR_UNKNOWN)
		return 0;
	snprintf(sub, sizeof(sub), "%02x", idx);
	if (mkdirat(im->s->objects_fd, sub, 0755) == 0)
		im->undo.subdir[idx] = SUBDIR_MADE;
	else if (errno == EEXIST)
		im->undo.subdir[idx] = SUBDIR_THERE;
	else
		return cfs_error_errno(errno, "store %s: objects/%s",
				       im->s->root, sub);
	return 0;
}

static int staged_mkdir(struct import *im, int stagefd, const char *name)
{
	uint8_t digest[CFS_DIGEST_SIZE];

	(void)stagefd;
	if (!staged_wanted(im, name, digest))
		return 0;
	return make_subdir(im, digest[0]);
}

static int staged_move(struct import *im, int stagefd, const char *name)
{
	cfs_store *s = im->s;
	uint8_t digest[CFS_DIGEST_SIZE];
	int *dst;
	struct stat st;
	int r;

	if (!staged_wanted(im, name, digest))
		return 0;
	r = make_subdir(im, digest[0]);
	if (r < 0)
		return r;
	dst = &im->subfd[digest[0]];
	if (*dst < 0) {
		char sub[3] = { name[0], name[1], '\0' };

		*dst = openat(s->objects_fd, sub,
			      O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (*dst < 0 || fstatat(stagefd, name, &st, 0) < 0)
		return cfs_error_errno(errno, "store %s: objects/%.2s", s->root,
				       name);
	/* Another import may have committed the same object since the
	 * conversion looked: same name, same content, keep theirs. */
	if (renameat2(stagefd, name, *dst, name + 2, RENAME_NOREPLACE) < 0) {
		if (errno != EEXIST)
			return cfs_error_errno(
				errno,
				"store %s: moving objects/%.2s/%s "
				"into place",
				s->root, name, name + 2);
		return 0;
	}
	/* Room for every object was made before the first move. */
	memcpy(im->undo.objects[im->undo.n_objects++], digest, CFS_DIGEST_SIZE);
	im->res.objects_new++;
	im->res.objects_new_bytes += (uint64_t)st.st_size;
	return 0;
}

/* The config of @img, parsed (NULL for a source without one). */
static int parse_config(const struct cfs_oci_image *img, json_object **config)
{
	*config = NULL;
	if (!img || !img->config)
		return 0;
	/* The opening accepted this config: failing to parse it here can
	 * only be memory. */
	return cfs_json_parse((const char *)img->config, img->config_len,
			      config) < 0 ?
		       -ENOMEM :
		       0;
}

static int64_t import_time(void)
{
	/* Reproducible builds of a store (tests, image pipelines) may fix
	 * the clock. */
	const char *sde = getenv("SOURCE_DATE_EPOCH");

	if (sde && *sde) {
		char *end;
		long long v = strtoll(sde, &end, 10);
		if (*end == '\0' && v >= 0)
			return v;
	}
	return (int64_t)time(NULL);
}

/* cfs_image_write() into memory. */
static int buf_write(void *opaque, const void *data, size_t len)
{
	return cfs_buf_add(opaque, data, len);
}

/* The image (im->image) as tmp/w-.../image.cfs; fsync'ed when @sync (the
 * commit writes it when the copy it counted on went meanwhile), else
 * made durable by the syncfs of step 3. */
static int write_image(struct import *im, bool sync)
{
	_cleanup_close_ int fd = -1;
	int r;

	fd = openat(im->w.fd, "image.cfs",
		    O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
	r = fd < 0 ? -errno : cfs_write_all(fd, im->image, im->image_len);
	if (r == 0 && sync && fsync(fd) < 0)
		r = -errno;
	/* "writing image": say where (a full file system names the store
	 * that is full). */
	if (r < 0)
		return cfs_error_errno(-r, "store %s: tmp/%s/image.cfs",
				       im->s->root, im->w.name);
	return 0;
}

/* The sealing spec's signatures of @oci, for the metadata: NULL when it
 * has none. */
static json_object *signatures_json(const struct cfs_oci_image *oci)
{
	json_object *o;

	if (!oci || (!oci->spec_merged_sig && !oci->spec_config_sig &&
		     !oci->spec_manifest_sig))
		return NULL;
	o = json_object_new_object();
	if (!o)
		return NULL;
	if (oci->spec_merged_sig)
		json_object_object_add(
			o, CFS_SPEC_MERGED,
			json_object_new_string(oci->spec_merged_sig));
	if (oci->spec_config_sig)
		json_object_object_add(
			o, CFS_SPEC_CONFIG,
			json_object_new_string(oci->spec_config_sig));
	if (oci->spec_manifest_sig)
		json_object_object_add(
			o, CFS_SPEC_MANIFEST,
			json_object_new_string(oci->spec_manifest_sig));
	return o;
}

/* The metadata, as meta.json in the writer's directory. */
static int stage_meta(struct import *im, const char *source,
		      const cfs_convert_stats *stats, json_object *config,
		      const struct cfs_oci_image *oci)
{
	cfs_store *s = im->s;
	_cleanup_close_ int fd = -1;
	json_object *o = json_object_new_object();
	char when[32];
	int64_t now = import_time();
	time_t t = (time_t)now;
	struct tm tm;
	const char *text;
	int r;

	if (!o)
		return -ENOMEM;
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_object_add(o, "version",
			       json_object_new_int(STORE_FORMAT_VERSION));
	json_object_object_add(o, "digest",
			       json_object_new_string(im->res.digest));
	json_object_object_add(o, "source", json_object_new_string(source));
	json_object_object_add(
		o, "manifest_digest",
		stats->manifest_digest[0] ?
			json_object_new_string(stats->manifest_digest) :
			NULL);
	json_object_object_add(
		o, "config_digest",
		stats->config_digest[0] ?
			json_object_new_string(stats->config_digest) :
			NULL);
	json_object_object_add(o, "config",
			       config ? json_object_get(config) : NULL);
	json_object_object_add(o, "created", json_object_new_string(when));
	json_object_object_add(o, "created_unix", json_object_new_int64(now));
	json_object_object_add(
		o, "image_size",
		json_object_new_int64((int64_t)im->res.image_size));
	json_object_object_add(o, "objects",
			       json_object_new_int64((int64_t)im->res.objects));
	json_object_object_add(
		o, "object_bytes",
		json_object_new_int64((int64_t)im->res.object_bytes));
	json_object_object_add(o, "verity",
			       json_object_new_boolean(im->res.verity));
	/* Only a sealed image's own: they sign its digests. */
	if (im->res.sealed)
		json_object_object_add(o, "signatures", signatures_json(oci));
	text = json_object_to_json_string_ext(
		o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	fd = openat(im->w.fd, "meta.json",
		    O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
	r = fd < 0 ? -errno : cfs_write_all(fd, text, strlen(text));
	if (r == 0)
		r = cfs_write_all(fd, "\n", 1);
	json_object_put(o);
	/* Written out now, fsync'ed after names.json (commit_stage()):
	 * the file system then commits both in one go. */
	if (r == 0 && sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE) < 0)
		r = -errno;
	if (r < 0)
		return cfs_error_errno(-r,
				       "store %s: tmp/%s/meta.json: "
				       "writing metadata",
				       s->root, im->w.name);
	im->meta_fd = TAKE_FD(fd);
	return 0;
}

/* The names table with the new names, as names.json in the writer's
 * directory (names.lock held). */
static int stage_names(struct import *im, const cfs_store_import_options *opts,
		       const struct cfs_oci_image *oci)
{
	const char *config = oci ? oci->config_digest : NULL;
	const char *manifest = oci ? oci->manifest_digest : NULL;
	struct store_names t;
	int r;

	r = store_names_read(im->s, &t);
	for (size_t i = 0; r == 0 && i < opts->n_names; i++)
		r = store_names_set(&t, opts->names[i], im->res.digest, config,
				    manifest);
	if (r == 0)
		r = store_names_stage(im->s, &im->w, &t);
	store_names_clear(&t);
	return r;
}

/*
 * The sealing spec's artifact @art of @oci: its digests and signatures
 * count as the manifest's own keys would (the same checks follow). An
 * image with both must say the same in both.
 */
static int take_spec_artifact(struct cfs_oci_image *oci,
			      const struct cfs_found_artifact *art,
			      const char *source)
{
	static const char *const keys[CFS_SPEC_ROLES] = { CFS_SPEC_MANIFEST,
							  CFS_SPEC_CONFIG,
							  CFS_SPEC_MERGED };
	char *hex[CFS_SPEC_ROLES] = { oci->spec_manifest, oci->spec_config,
				      oci->spec_merged };
	char **sig[CFS_SPEC_ROLES] = { &oci->spec_manifest_sig,
				       &oci->spec_config_sig,
				       &oci->spec_merged_sig };

	for (int i = 0; i < CFS_SPEC_ROLES; i++) {
		const char *a = art->spec_hex[i];

		if (!a[0])
			continue;
		if (hex[i][0] && strcmp(hex[i], a) != 0)
			return cfs_error(EBADMSG,
					 "%s: artifact %s: %s is %s, the "
					 "manifest's annotation says %s",
					 source, art->spec_manifest_digest,
					 keys[i], a, hex[i]);
		memcpy(hex[i], a, CFS_DIGEST_HEX_SIZE + 1);
		if (art->spec_sig[i] && !*sig[i]) {
			*sig[i] = cfs_base64_encode(art->spec_sig[i],
						    art->spec_sig_len[i]);
			if (!*sig[i])
				return -ENOMEM;
		}
	}
	return 0;
}

/*
 * The signature @b64 of the digest @hex (role @role), against @trust.
 */
static int check_signature(const char *source, const char *role,
			   const char *key, const char *hex, const char *b64,
			   const struct cfs_trust *trust, char *signer,
			   size_t signer_size)
{
	_cleanup_free_ uint8_t *sig = NULL;
	uint8_t d[CFS_DIGEST_SIZE];
	size_t len = 0;
	int r;

	if (cfs_base64_decode(b64, &sig, &len) < 0)
		return cfs_error(EBADMSG,
				 "%s: %s signature: %s%s is not base64", source,
				 role, key, CFS_SPEC_SIG_SUFFIX);
	if (cfs_digest_from_hex(d, hex) < 0)
		return -EINVAL;
	r = cfs_verify_digest(trust, sig, len, d, signer, signer_size);
	if (r < 0)
		return cfs_error_prefix(-r, "%s: %s signature (%s%s)", source,
					role, key, CFS_SPEC_SIG_SUFFIX);
	return 0;
}

/*
 * The signatures of the spec's digests: checked when a certificate is
 * trusted, required with CFS_STORE_IMPORT_REQUIRE_SIGNED.
 */
static int check_signatures(struct import *im, const char *source,
			    const cfs_store_import_options *opts,
			    const struct cfs_oci_image *oci)
{
	struct cfs_trust *trust = NULL;
	_cleanup_free_ char *dir = NULL;
	bool require = opts->flags & CFS_STORE_IMPORT_REQUIRE_SIGNED;
	char signer2[sizeof(im->res.signer)];
	int r;

	if (!require &&
	    (!oci || (!oci->spec_merged_sig && !oci->spec_config_sig)))
		return 0;
	if (require && (!oci || !oci->spec_merged_sig || !oci->spec_config_sig))
		return cfs_error(EPERM,
				 "%s: not signed (no %s" CFS_SPEC_SIG_SUFFIX
				 ") and signed images are required",
				 source,
				 oci && oci->spec_merged_sig ? CFS_SPEC_CONFIG :
							       CFS_SPEC_MERGED);
	if (asprintf(&dir, "%s/trust", im->s->root) < 0) {
		dir = NULL;
		return -ENOMEM;
	}
	r = cfs_trust_load(&trust,
			   opts->version >= 2 ? opts->trust_certs : NULL,
			   opts->version >= 2 ? opts->n_trust_certs : 0, dir);
	if (r < 0)
		return cfs_error_prefix(-r, "%s", source);
	if (cfs_trust_count(trust) == 0) {
		cfs_trust_free(trust);
		if (!require)
			return 0; /* nothing to check against: kept as is */
		return cfs_error(EPERM,
				 "%s: signed images are required, but no "
				 "certificate is trusted (--trust-cert, or "
				 "%s/*.pem)",
				 source, dir);
	}
	r = 0;
	if (oci->spec_merged_sig)
		r = check_signature(source, "merged", CFS_SPEC_MERGED,
				    oci->spec_merged, oci->spec_merged_sig,
				    trust, im->res.signer,
				    sizeof(im->res.signer));
	if (r == 0 && oci->spec_config_sig)
		r = check_signature(source, "config", CFS_SPEC_CONFIG,
				    oci->spec_config, oci->spec_config_sig,
				    trust, signer2, sizeof(signer2));
	if (r == 0 && oci->spec_manifest_sig)
		r = check_signature(source, "manifest", CFS_SPEC_MANIFEST,
				    oci->spec_manifest, oci->spec_manifest_sig,
				    trust, signer2, sizeof(signer2));
	cfs_trust_free(trust);
	if (r == 0)
		im->res.signature_checked =
			oci->spec_merged_sig && oci->spec_config_sig;
	return r;
}

/*
 * The fs-verity digest of the @len bytes at @data (the manifest or the
 * config, @what, as stored: @digest) must be @sealed, what the sealing
 * key @key says.
 */
static int check_sealed_json(const char *source, const char *what,
			     const char *digest, const void *data, size_t len,
			     const char *key, const char *sealed)
{
	char hex[CFS_DIGEST_HEX_SIZE + 1];
	uint8_t d[CFS_DIGEST_SIZE];
	int r;

	if (!sealed[0])
		return 0;
	r = cfs_verity_digest_buffer(data, len, d);
	if (r < 0)
		return r;
	cfs_digest_to_hex(d, hex);
	if (strcmp(hex, sealed) != 0)
		return cfs_error(EBADMSG,
				 "%s: %s %s: not the sealed %s: %s is %s, the "
				 "%s gives %s",
				 source, what, digest, what, key, sealed, what,
				 hex);
	return 0;
}

/*
 * The converter checked every legacy sealing annotation against the
 * layers; the image written here must be the sealed one too: the spec's
 * canonical image when the manifest has CFS_SPEC_MERGED (the import
 * made it canonical), else the legacy CFS_ANNOTATION_MERGED one (the
 * same tree, written the same way: a mismatch is a bug, and then nothing
 * is committed either). The config must be the one CFS_SPEC_CONFIG
 * names, and the signatures must check out.
 */
static int check_sealed(struct import *im, const char *source,
			const cfs_store_import_options *opts,
			const cfs_convert_stats *stats,
			const struct cfs_oci_image *oci)
{
	bool spec = oci && oci->spec_merged[0];
	const char *merged =
		spec ? oci->spec_merged :
		stats->n_layers ?
		       stats->layers[stats->n_layers - 1].sealed_merged :
		       "";
	const char *key = spec ? CFS_SPEC_MERGED : CFS_ANNOTATION_MERGED;
	int r;

	if (oci) {
		r = check_sealed_json(source, "manifest", oci->manifest_digest,
				      oci->manifest, oci->manifest_len,
				      CFS_SPEC_MANIFEST, oci->spec_manifest);
		if (r == 0)
			r = check_sealed_json(source, "config",
					      oci->config_digest, oci->config,
					      oci->config_len, CFS_SPEC_CONFIG,
					      oci->spec_config);
		if (r < 0)
			return r;
	}
	if (!merged[0]) {
		if (opts->flags & CFS_STORE_IMPORT_REQUIRE_SEALED)
			return cfs_error(
				EPERM,
				"%s: not sealed (no " CFS_SPEC_MERGED
				" or " CFS_ANNOTATION_MERGED
				" annotation) and sealed images are required",
				source);
		return check_signatures(im, source, opts, oci);
	}
	if (strcmp(merged, im->res.digest) != 0)
		return cfs_error(EBADMSG,
				 "%s: not the sealed image: %s is %s, the "
				 "image is %s",
				 source, key, merged, im->res.digest);
	im->res.sealed = true;
	return check_signatures(im, source, opts, oci);
}

/*
 * A composefs artifact of the image is in the layout: its image must be
 * the one this import made (or, with CFS_STORE_IMPORT_TRUST_ARTIFACT, is
 * the one it stores: then it must be the one its annotation names).
 */
static int check_artifact(struct import *im, const char *source,
			  const cfs_store_import_options *opts,
			  const struct cfs_found_artifact *art)
{
	uint8_t d[CFS_DIGEST_SIZE];
	char hex[CFS_DIGEST_HEX_SIZE + 1];
	int r = cfs_verity_digest_buffer(art->image, art->image_len, d);

	if (r < 0)
		return r;
	cfs_digest_to_hex(d, hex);
	if (art->merged[0] && strcmp(art->merged, hex) != 0)
		return cfs_error(EBADMSG,
				 "%s: artifact %s: its image is %s, its "
				 "annotation says %s",
				 source, art->manifest_digest, hex,
				 art->merged);
	if (strcmp(hex, im->res.digest) != 0)
		return cfs_error(EBADMSG,
				 "%s: artifact %s: its composefs image is %s, "
				 "the image converts to %s",
				 source, art->manifest_digest, hex,
				 im->res.digest);
	im->res.artifact = true;
	(void)opts;
	return 0;
}

/* --trust-artifact: is every object of the artifact's image (@set) in
 * the store already? Then no layer need be read at all. */
static bool all_objects_there(struct cfs_objects *objs,
			      const struct store_objset *set)
{
	for (size_t i = 0; i < set->n; i++)
		if (!cfs_objects_has(objs, set->v[i].digest))
			return false;
	return true;
}

/* --trust-artifact: every object the artifact's image names must have
 * come with the layers (staged now, or in the store already). */
static int check_objects(struct cfs_objects *objs,
			 const struct store_objset *set, const char *source,
			 const struct cfs_found_artifact *art)
{
	for (size_t i = 0; i < set->n; i++) {
		char hex[CFS_DIGEST_HEX_SIZE + 1];

		if (cfs_objects_has(objs, set->v[i].digest))
			continue;
		cfs_digest_to_hex(set->v[i].digest, hex);
		return cfs_error(EBADMSG,
				 "%s: artifact %s names object %s, which no "
				 "layer has",
				 source, art->manifest_digest, hex);
	}
	return 0;
}

/* ---- the commit (steps 3-6) ---------------------------------------- */

/* 0 and whether @path in @dirfd has fs-verity, or -errno. */
static int file_verity(int dirfd, const char *path, bool *verity)
{
	struct statx stx;

	if (statx(dirfd, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx) <
	    0)
		return -errno;
	*verity = (stx.stx_attributes_mask & STATX_ATTR_VERITY) &&
		  (stx.stx_attributes & STATX_ATTR_VERITY);
	return 0;
}

/*
 * Every object the image references is in objects/ or staged here, and
 * will the image and all of them have fs-verity once in place? An object
 * the conversion found in the store can be gone by now: an import that
 * had just moved it in failed and took it back. Under names.lock nothing
 * changes until this import's commit is done, so the answer holds.
 */
static int check_objects_there(struct import *im, int stage_fd,
			       const struct stage *st, bool *verity)
{
	cfs_store *s = im->s;
	char image_name[CFS_DIGEST_HEX_SIZE + 8];
	bool v = false;
	int r;

	snprintf(image_name, sizeof(image_name), "%s.cfs", im->res.digest);
	r = st->image ? file_verity(im->w.fd, "image.cfs", &v) :
			file_verity(s->images_fd, image_name, &v);
	if (r < 0)
		return cfs_error_errno(-r, "store %s: images/%s", s->root,
				       image_name);
	*verity = v;
	/* No commit was taken back since the import began: what it found
	 * in the store is there. What is left to learn is fs-verity, which
	 * a file system that refused it for this import does not have. */
	if (im->undo_gen_known && im->verity_off) {
		uint64_t gen;

		if (store_undo_gen(im->lockfd, &gen) && gen == im->undo_gen) {
			*verity = false;
			return 0;
		}
	}
	for (size_t i = 0; i < im->set->n + im->rset.n; i++) {
		const struct store_obj *o = i < im->set->n ?
						    &im->set->v[i] :
						    &im->rset.v[i - im->set->n];
		char path[CFS_DIGEST_HEX_SIZE + 2];

		cfs_digest_to_object_path(o->digest, path);
		r = file_verity(s->objects_fd, path, &v);
		if (r == -ENOENT) {
			char hex[CFS_DIGEST_HEX_SIZE + 1];

			cfs_digest_to_hex(o->digest, hex);
			r = file_verity(stage_fd, hex, &v);
		}
		if (r == -ENOENT)
			return cfs_error(EAGAIN,
					 "store %s: objects/%s was in the "
					 "store when the import began and is "
					 "gone (a concurrent import failed "
					 "and took it back); import again",
					 s->root, path);
		if (r < 0)
			return cfs_error_errno(-r, "store %s: objects/%s",
					       s->root, path);
		/* the records' objects are not the image's */
		if (i < im->set->n)
			*verity = *verity && v;
	}
	return 0;
}

/* A blob the store lacks goes to the writer's directory, fsync'ed when
 * @sync (under names.lock: it went since the syncfs of step 3). */
static int stage_blob(struct import *im, const char *digest, const void *data,
		      size_t len, bool sync)
{
	struct stage *st = &im->st;
	int r;

	/* a config that is its own manifest is staged once */
	for (size_t i = 0; i < st->n_blobs; i++)
		if (strcmp(st->blobs[i], digest + 7) == 0)
			return 0;
	if (faccessat(im->s->blobs_fd, digest + 7, F_OK, AT_SYMLINK_NOFOLLOW) ==
	    0)
		return 0;
	r = store_blob_stage(im->s, &im->w, digest, data, len, sync);
	if (r == 0)
		snprintf(st->blobs[st->n_blobs++], sizeof(st->blobs[0]), "%s",
			 digest + 7);
	return r;
}

/* The raw config and manifest the store lacks: staged before the syncfs
 * of step 3, which makes them durable with the objects and the image;
 * and again under names.lock (@sync), for any that an import which had
 * moved it in took back meanwhile. */
static int stage_blobs(struct import *im, const struct cfs_oci_image *oci,
		       bool sync)
{
	int r = 0;

	if (oci && oci->config)
		r = stage_blob(im, oci->config_digest, oci->config,
			       oci->config_len, sync);
	if (r == 0 && oci && oci->manifest)
		r = stage_blob(im, oci->manifest_digest, oci->manifest,
			       oci->manifest_len, sync);
	return r;
}

/*
 * Step 3: everything the commit writes, written into the writer's
 * directory, and the objects/XX directories made: what can fail for
 * want of room fails here, before the store shows anything.
 */
static int commit_stage(struct import *im, int stage_fd, struct stage *st,
			const char *recorded,
			const cfs_store_import_options *opts,
			const cfs_convert_stats *stats, json_object *config,
			const struct cfs_oci_image *oci)
{
	cfs_store *s = im->s;
	char name[CFS_DIGEST_HEX_SIZE + 8];
	int r;

	r = for_each_staged(stage_fd, staged_mkdir, im);
	if (r < 0)
		return r;
	snprintf(name, sizeof(name), "%s.cfs", im->res.digest);
	st->image =
		faccessat(s->images_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) < 0;
	im->res.existed = !st->image;
	/* gone since step 2 (an import that had moved it in failed) */
	if (st->image &&
	    faccessat(im->w.fd, "image.cfs", F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
		r = write_image(im, true);
		if (r < 0)
			return r;
	}
	r = stage_blobs(im, oci, true);
	if (r < 0)
		return r;
	r = check_objects_there(im, stage_fd, st, &im->res.verity);
	if (r < 0)
		return r;
	/* A complete import of the image keeps its metadata (the first
	 * import's config). */
	snprintf(name, sizeof(name), "%s.json", im->res.digest);
	if (faccessat(s->images_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
		r = stage_meta(im, recorded, stats, config, oci);
		if (r < 0)
			return r;
		st->meta = true;
	}
	if (opts->n_names) {
		r = stage_names(im, opts, oci);
		if (r < 0)
			return r;
		st->names = true;
	}
	if (im->meta_fd >= 0 && fsync(im->meta_fd) < 0)
		return cfs_error_errno(errno,
				       "store %s: tmp/%s/meta.json: "
				       "writing metadata",
				       s->root, im->w.name);
	return 0;
}

/* Rename @name of the writer's directory to @to in @dirfd unless that
 * exists: 1 if moved, 0 if it was there. */
static int move_in(struct import *im, const char *name, int dirfd,
		   const char *to, const char *where)
{
	if (renameat2(im->w.fd, name, dirfd, to, RENAME_NOREPLACE) == 0)
		return 1;
	if (errno == EEXIST)
		return 0;
	return cfs_error_errno(errno, "store %s: %s/%s", im->s->root, where,
			       to);
}

static int fsync_dir(cfs_store *s, int dirfd, const char *where)
{
	if (fsync(dirfd) < 0)
		return cfs_error_errno(errno, "store %s: fsync %s", s->root,
				       where);
	return 0;
}

/* Move the staged @staged to images/<digest>@suffix and make that
 * lasting; @moved: whether this import put it there (for the undo). */
static int move_to_images(struct import *im, const char *staged,
			  const char *suffix, bool *moved)
{
	char name[CFS_DIGEST_HEX_SIZE + 8];
	int r;

	snprintf(name, sizeof(name), "%s%s", im->res.digest, suffix);
	r = move_in(im, staged, im->s->images_fd, name, "images");
	if (r < 0)
		return r;
	*moved = r > 0;
	return fsync_dir(im->s, im->s->images_fd, "images");
}

/* The staged layer records (tmp/w-.../layers/<hex>) the store lacks:
 * into layers/, after the objects they name. */
static int move_records(struct import *im)
{
	cfs_store *s = im->s;
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;
	int r = 0, fd;

	if (im->n_records == 0)
		return 0;
	fd = openat(im->layers_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		r = cfs_error_errno(errno, "store %s: tmp/%s/layers", s->root,
				    im->w.name);
		cfs_closep(&fd);
		return r;
	}
	while ((de = readdir(d))) {
		if (!store_is_hex(de->d_name, true))
			continue;
		if (renameat2(im->layers_fd, de->d_name, s->layers_fd,
			      de->d_name, RENAME_NOREPLACE) < 0) {
			if (errno == EEXIST)
				continue; /* recorded meanwhile: the same */
			return cfs_error_errno(errno, "store %s: layers/%s",
					       s->root, de->d_name);
		}
		/* room for every staged record was made before */
		memcpy(im->undo.records[im->undo.n_records++], de->d_name,
		       CFS_DIGEST_HEX_SIZE + 1);
	}
	return im->undo.n_records ? fsync_dir(s, s->layers_fd, "layers") : 0;
}

/*
 * Steps 4-6: only renames and fsyncs, each recorded for commit_undo(),
 * up to the rename of names.json, which commits the import.
 */
static int commit_apply(struct import *im, int stage_fd, const struct stage *st)
{
	cfs_store *s = im->s;
	int r;

	im->undo.objects =
		calloc(im->set->n + im->rset.n + 1, sizeof(*im->undo.objects));
	im->undo.records = calloc(im->n_records + 1, sizeof(*im->undo.records));
	if (!im->undo.objects || !im->undo.records)
		return -ENOMEM;
	r = for_each_staged(stage_fd, staged_move, im);
	if (r == 0)
		r = move_records(im);
	if (r < 0)
		return r;
	if (st->image) {
		r = move_to_images(im, "image.cfs", ".cfs", &im->undo.image);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < st->n_blobs; i++) {
		r = move_in(im, st->blobs[i], s->blobs_fd, st->blobs[i],
			    "blobs/sha256");
		if (r < 0)
			return r;
		if (r > 0)
			memcpy(im->undo.blobs[im->undo.n_blobs++], st->blobs[i],
			       sizeof(st->blobs[i]));
	}
	if (im->undo.n_blobs && (r = fsync_dir(s, s->blobs_fd, "blobs")) < 0)
		return r;
	if (st->meta) {
		r = move_to_images(im, "meta.json", ".json", &im->undo.meta);
		if (r < 0)
			return r;
	}
	if (!st->names) {
		im->committed = true;
		return 0;
	}
	r = store_names_commit(s, &im->w);
	if (r < 0)
		return r;
	/* From here on the import stands: a failing fsync is reported,
	 * nothing is taken back (the old table is gone). */
	im->committed = true;
	return fsync_dir(s, s->root_fd, "names.json");
}

/*
 * Take back what commit_apply() moved in, newest first: the metadata
 * before its image (fsck would call it orphaned), the image before its
 * objects (a plain fsck, running alongside, would find it lacking
 * them), empty objects/XX directories last. Only this import's own
 * files are removed: nobody else committed meanwhile (names.lock).
 */
static void commit_undo(struct import *im)
{
	cfs_store *s = im->s;
	struct undo *u = &im->undo;
	char name[CFS_DIGEST_HEX_SIZE + 8];

	if (u->meta) {
		snprintf(name, sizeof(name), "%s.json", im->res.digest);
		unlinkat(s->images_fd, name, 0);
	}
	if (u->image) {
		snprintf(name, sizeof(name), "%s.cfs", im->res.digest);
		unlinkat(s->images_fd, name, 0);
	}
	/* records before the objects they name */
	for (size_t i = 0; i < u->n_records; i++)
		unlinkat(s->layers_fd, u->records[i], 0);
	for (size_t i = 0; i < u->n_blobs; i++)
		unlinkat(s->blobs_fd, u->blobs[i], 0);
	for (size_t i = 0; i < u->n_objects; i++) {
		char path[CFS_DIGEST_HEX_SIZE + 2];

		cfs_digest_to_object_path(u->objects[i], path);
		unlinkat(s->objects_fd, path, 0);
	}
	for (int i = 0; i < 256; i++) {
		if (u->subdir[i] != SUBDIR_MADE)
			continue;
		snprintf(name, sizeof(name), "%02x", i);
		unlinkat(s->objects_fd, name, AT_REMOVEDIR);
	}
	/* Not made durable: a crash now leaves what a killed import
	 * leaves, which fsck accepts and gc removes. */
}

/*
 * Steps 3-6 under names.lock: no other import commits or takes a commit
 * back meanwhile, so what this one checks stays true until it is done,
 * and what it takes back on failure is its own.
 */
static int commit(struct import *im, int stage_fd, const char *recorded,
		  const cfs_store_import_options *opts,
		  const cfs_convert_stats *stats, json_object *config,
		  const struct cfs_oci_image *oci)
{
	int lockfd, r;

	lockfd = store_names_lock(im->s);
	if (lockfd < 0)
		return lockfd;
	im->lockfd = lockfd;
	r = commit_stage(im, stage_fd, &im->st, recorded, opts, stats, config,
			 oci);
	if (r == 0)
		r = commit_apply(im, stage_fd, &im->st);
	if (r < 0 && !im->committed) {
		commit_undo(im);
		store_undo_gen_bump(lockfd);
	}
	im->lockfd = -1;
	close(lockfd);
	/* Every object the image needs is in place: an image a repair
	 * marked broken is whole again. Only now: an undo would have
	 * made it broken again. */
	if (im->committed)
		store_broken_clear(im->s, im->res.digest);
	return r;
}

/* ---- layer records ------------------------------------------------------ */

/* The store's records to replay, and tmp/w-.../layers for new ones
 * (@path: its path, which the caller frees). */
static int open_records(struct import *im, struct cfs_records *records,
			char **path)
{
	cfs_store *s = im->s;

	if (asprintf(path, "%s/tmp/%s/layers", s->root, im->w.name) < 0) {
		*path = NULL;
		return -ENOMEM;
	}
	if (mkdirat(im->w.fd, "layers", 0755) < 0 ||
	    (im->layers_fd = openat(im->w.fd, "layers",
				    O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return cfs_error_errno(errno, "store %s: tmp/%s/layers",
				       s->root, im->w.name);
	records->read_fd = s->layers_fd;
	records->write_fd = im->layers_fd;
	records->write_path = *path;
	/* A record is in layers/ only while every object it names is in
	 * objects/: imports move records in after their objects and take
	 * them back first, gc removes records before objects, fsck --repair
	 * drops the records of the objects it removed. Only a repair that
	 * was cut short (its marker, fsck.c) leaves that unsure. */
	records->check_objects = faccessat(s->root_fd, STORE_REPAIR_MARKER,
					   F_OK, AT_SYMLINK_NOFOLLOW) == 0;
	return 0;
}

/* The objects the new records name: they go into the store with the
 * image's. */
static int records_objects(struct import *im, const struct cfs_records *rec)
{
	_cleanup_free_ char *where = NULL;
	int r = 0;

	for (size_t i = 0; r == 0 && i < rec->n; i++)
		im->n_records += rec->written[i];
	if (im->n_records) {
		_cleanup_(closedirp) DIR *d = NULL;
		struct dirent *de;
		int fd = openat(im->layers_fd, ".",
				O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (fd < 0 || !(d = fdopendir(fd))) {
			cfs_closep(&fd);
			return cfs_error_errno(errno, "store %s: tmp/%s/layers",
					       im->s->root, im->w.name);
		}
		while (r == 0 && (de = readdir(d))) {
			if (!store_is_hex(de->d_name, true))
				continue;
			free(where);
			if (asprintf(&where, "store %s: tmp/%s/layers/%s",
				     im->s->root, im->w.name, de->d_name) < 0) {
				where = NULL;
				return -ENOMEM;
			}
			r = store_record_objects(im->layers_fd, de->d_name,
						 where, &im->rset);
		}
	}
	store_objset_finish(&im->rset);
	return r;
}

/* What became of each layer, for the result. */
static int layer_results(struct import *im, const cfs_convert_stats *stats,
			 const struct cfs_records *rec,
			 const struct cfs_oci_image *oci, bool skipped)
{
	if (stats->n_layers == 0)
		return 0;
	im->res.layers = calloc(stats->n_layers, sizeof(*im->res.layers));
	if (!im->res.layers)
		return -ENOMEM;
	im->res.n_layers = stats->n_layers;
	for (size_t i = 0; i < stats->n_layers; i++) {
		cfs_store_layer_result *l = &im->res.layers[i];
		const cfs_layer_info *info = &stats->layers[i];

		snprintf(l->digest, sizeof(l->digest), "%s", info->digest);
		if (oci && i < oci->n_layers && oci->layers[i].diff_id)
			snprintf(l->diff_id, sizeof(l->diff_id), "%s",
				 oci->layers[i].diff_id);
		l->reused = i < rec->n && rec->reused[i];
		l->skipped = skipped;
		l->recorded = i < rec->n && rec->written[i];
		l->bytes_read = info->compressed_bytes;
		l->tar_bytes = info->uncompressed_bytes;
		l->entries = info->entries;
	}
	return 0;
}

static int do_import(struct import *im, const char *source,
		     const char *recorded, struct cfs_oci_image *given,
		     const cfs_store_import_options *opts,
		     const struct cfs_blob_fetch *fetch)
{
	static const cfs_write_options canonical = CFS_WRITE_OPTIONS_CANONICAL;
	cfs_store *s = im->s;
	cfs_convert_options copts = CFS_CONVERT_OPTIONS_INIT;
	cfs_convert_stats stats = CFS_CONVERT_STATS_INIT;
	struct store_objset set = { 0 };
	struct cfs_objects *objs = NULL;
	_cleanup_free_ char *staging = NULL, *records_path = NULL;
	_cleanup_close_ int stage_fd = -1;
	struct cfs_buf image_buf = { 0 };
	json_object *config = NULL;
	struct cfs_oci_image *oci = NULL;
	struct cfs_records records = { .read_fd = -1, .write_fd = -1 };
	struct cfs_found_artifact art = { 0 };
	bool have_art = false, trusted, skip_layers = false, existed;
	uint8_t digest[CFS_DIGEST_SIZE];
	char image_name[CFS_DIGEST_HEX_SIZE + 8];
	cfs_inode *root = NULL, *art_root = NULL;
	int r;

	if (asprintf(&staging, "%s/tmp/%s/objects", s->root, im->w.name) < 0) {
		staging = NULL;
		return -ENOMEM;
	}
	/* The undo generation now: see check_objects_there(). */
	{
		int lockfd = store_names_lock(s);

		if (lockfd < 0)
			return lockfd;
		im->undo_gen_known =
			store_undo_gen_start(lockfd, &im->undo_gen);
		close(lockfd);
	}
	r = cfs_objects_open_staged(&objs, staging, s->objects_path);
	if (r == 0) {
		cfs_objects_prefetch(objs);
		r = open_records(im, &records, &records_path);
	}
	if (r < 0)
		goto out;
	copts.platform = opts->platform;
	copts.threads = opts->threads;
	copts.progress = opts->progress;
	copts.progress_opaque = opts->progress_opaque;
	/* An OCI source is opened once: what is converted, checked and
	 * recorded is the one manifest and config read here. */
	if (given || cfs_oci_is_source(source)) {
		r = given ? 0 : cfs_oci_open(&oci, source, opts->platform);
		if (given)
			oci = given;
		if (r == 0)
			r = parse_config(oci, &config);
		/* An image given open came without a layout, and without
		 * an artifact. */
		if (r == 0 && !given && oci->manifest_digest) {
			r = cfs_find_artifact(source, oci->manifest_digest,
					      &art);
			have_art = r == 0 && art.image;
			if (r == 0 && art.spec_found)
				r = take_spec_artifact(oci, &art, source);
			r = r < 0 ? r : 0;
		}
		if (r < 0)
			goto out;
		/* Sealed by the spec: the image is its canonical tree. */
		if (oci->spec_merged[0])
			copts.flags |= CFS_CONVERT_CANONICAL;
	}
	trusted = have_art && (opts->flags & CFS_STORE_IMPORT_TRUST_ARTIFACT);
	if (trusted) {
		/* The artifact's metadata, only the objects from the layers
		 * or the store (docs/security.md). */
		r = cfs_image_read(&art_root, art.image, art.image_len, NULL);
		if (r < 0) {
			r = cfs_error_prefix(-r, "%s: artifact %s", source,
					     art.manifest_digest);
			goto out;
		}
		r = store_objset_add_tree(&set, art_root);
		if (r < 0) {
			r = cfs_error_prefix(-r, "%s", source);
			goto out;
		}
		store_objset_finish(&set);
		skip_layers = all_objects_there(objs, &set);
	}
	if (skip_layers)
		r = cfs_oci_stats(oci, &stats);
	else if (oci)
		r = cfs_convert_oci_objs(&root, oci, &copts, objs, &records,
					 fetch, &stats);
	else
		r = cfs_convert_tree_objs(&root, source, &copts, objs, &stats);
	if (r == 0)
		r = records_objects(im, &records);
	if (r < 0)
		goto out;
	if (trusted) {
		cfs_inode_unref(root);
		root = art_root;
		art_root = NULL;
	} else {
		r = store_objset_add_tree(&set, root);
		if (r < 0) {
			r = cfs_error_prefix(-r, "%s", source);
			goto out;
		}
		store_objset_finish(&set);
	}
	im->set = &set;
	im->res.objects = set.n;
	for (size_t i = 0; i < set.n; i++)
		im->res.object_bytes += set.v[i].size;
	r = layer_results(im, &stats, &records, oci, skip_layers);
	if (r < 0)
		goto out;

	/* 2: the image, in memory: written to the store's disk only if
	 * the store lacks it (a re-import writes nothing but metadata). */
	if (trusted) {
		im->image = art.image;
		im->image_len = art.image_len;
		r = cfs_verity_digest_buffer(art.image, art.image_len, digest);
		if (r == 0 && !skip_layers)
			r = check_objects(objs, &set, source, &art);
	} else {
		r = cfs_image_write(
			root,
			copts.flags & CFS_CONVERT_CANONICAL ? &canonical : NULL,
			buf_write, &image_buf, digest);
		im->image = (const uint8_t *)image_buf.buf;
		im->image_len = image_buf.len;
	}
	if (r < 0)
		goto out;
	im->res.image_size = (uint64_t)im->image_len;
	cfs_digest_to_hex(digest, im->res.digest);
	snprintf(image_name, sizeof(image_name), "%s.cfs", im->res.digest);
	r = check_sealed(im, source, opts, &stats, oci);
	if (r == 0 && have_art)
		r = check_artifact(im, source, opts, &art);
	if (r < 0)
		goto out;
	/* An image already there needs no copy (if it is gone by the
	 * commit, one is written then, without fs-verity, and the metadata
	 * says so). */
	existed = faccessat(s->images_fd, image_name, F_OK,
			    AT_SYMLINK_NOFOLLOW) == 0;
	if (!existed) {
		r = write_image(im, false);
		if (r < 0)
			goto out;
	}
	stage_fd = open(staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (stage_fd < 0) {
		r = cfs_error_errno(errno, "%s", staging);
		goto out;
	}
	/* then fs-verity on everything new */
	r = for_each_staged(stage_fd, staged_verity, im);
	if (r == 0 && !existed) {
		_cleanup_free_ uint8_t *sig = NULL;
		size_t sig_len = 0;

		/* --require-signed: the kernel checks the signature too. */
		if (im->res.signature_checked &&
		    (opts->flags & CFS_STORE_IMPORT_REQUIRE_SIGNED))
			r = cfs_base64_decode(oci->spec_merged_sig, &sig,
					      &sig_len);
		if (r == 0)
			r = enable_verity(im, im->w.fd, "image.cfs", sig,
					  sig_len);
		if (r == -EKEYREJECTED || r == -ENOKEY || r == -EBADMSG ||
		    r == -EKEYEXPIRED) {
			r = cfs_error_prefix(-r, "%s", source);
			goto out;
		}
		r = r < 0 ? r : 0;
	}
	if (r < 0) {
		r = cfs_error_errno(-r, "store %s: enabling fs-verity",
				    s->root);
		goto out;
	}
	/* Objects, image and blobs durable before anything names them. */
	r = stage_blobs(im, oci, false);
	/* Nothing staged (a re-import): nothing to make durable. */
	if (r == 0 && (!existed || im->n_records || im->st.n_blobs ||
		       cfs_objects_stats(objs)->new_objects))
		r = cfs_objects_sync(objs);
	if (r == 0)
		r = commit(im, stage_fd, recorded, opts, &stats, config, oci);
out:
	im->image = NULL;
	free(image_buf.buf);
	cfs_records_clear(&records);
	cfs_found_artifact_clear(&art);
	if (oci != given)
		cfs_oci_free(oci);
	json_object_put(config);
	store_objset_clear(&set);
	cfs_inode_unref(root);
	cfs_inode_unref(art_root);
	cfs_objects_free(objs);
	cfs_convert_stats_clear(&stats);
	return r;
}

int cfs_store_import(cfs_store *s, const char *source,
		     const cfs_store_import_options *opts,
		     cfs_store_import_result *result)
{
	return store_import_as(s, source, source, NULL, opts, NULL, result);
}

int store_import_as(cfs_store *s, const char *source, const char *recorded,
		    struct cfs_oci_image *img,
		    const cfs_store_import_options *opts,
		    const struct cfs_blob_fetch *fetch,
		    cfs_store_import_result *result)
{
	static const cfs_store_import_options defaults =
		CFS_STORE_IMPORT_OPTIONS_INIT;
	struct import im = { .s = s,
			     .w = { .fd = -1 },
			     .layers_fd = -1,
			     .lockfd = -1,
			     .meta_fd = -1 };
	int r;

	for (int i = 0; i < 256; i++)
		im.subfd[i] = -1;
	r = cfs_result_check(result, CFS_STORE_IMPORT_RESULT_VERSION, source);
	if (r < 0)
		return r;
	im.res.version = CFS_STORE_IMPORT_RESULT_VERSION;
	if (!opts)
		opts = &defaults;
	if (!CFS_OPTIONS_VERSION_OK(opts->version,
				    CFS_STORE_IMPORT_OPTIONS_VERSION) ||
	    (opts->flags & ~(CFS_STORE_IMPORT_REQUIRE_SEALED |
			     CFS_STORE_IMPORT_TRUST_ARTIFACT |
			     CFS_STORE_IMPORT_REQUIRE_SIGNED)) ||
	    (opts->n_names && !opts->names) ||
	    (opts->version >= 2 && opts->n_trust_certs && !opts->trust_certs))
		return cfs_error(EINVAL, "invalid import options");
	for (size_t i = 0; i < opts->n_names; i++)
		if (!cfs_store_name_valid(opts->names[i]))
			return cfs_error(EINVAL, "'%s': invalid name",
					 opts->names[i]);
	r = store_lock(s, LOCK_SH);
	if (r < 0)
		return r;
	/* Leftovers of killed writers go first; live ones hold their lock. */
	r = store_clean_tmp(s, false, false, NULL, NULL);
	if (r == 0)
		r = store_writer_open(s, &im.w);
	if (r == 0)
		r = do_import(&im, source, recorded, img, opts, fetch);
	cfs_closep(&im.layers_fd);
	cfs_closep(&im.meta_fd);
	for (int i = 0; i < 256; i++)
		cfs_closep(&im.subfd[i]);
	store_writer_close(s, &im.w);
	store_lock(s, LOCK_UN);
	free(im.undo.objects);
	free(im.undo.records);
	store_objset_clear(&im.rset);
	if (r == 0 && result)
		*result = im.res;
	else
		cfs_store_import_result_clear(&im.res);
	return r;
}

void cfs_store_import_result_clear(cfs_store_import_result *res)
{
	if (!res)
		return;
	free(res->layers);
	cfs_result_zero(res, sizeof(*res));
}
