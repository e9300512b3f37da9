/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * libcfs: a local store of composefs images sharing one object directory.
 *
 * Layout under the root (see docs/store.md):
 *   objects/XX/<62 hex>     file contents, named by fs-verity digest
 *   images/<64 hex>.cfs     one composefs image per file, named by its
 *                           fs-verity digest (the image id)
 *   images/<64 hex>.json    what is known about the image (source, OCI
 *                           digests and config, sizes, fs-verity state)
 *   blobs/sha256/<64 hex>   raw OCI configs and manifests, by SHA-256
 *   names.json              name -> image digest, and the config and
 *                           manifest the name was imported with
 *   tmp/                    temporaries of running (or killed) writers
 *   mounts/<id>.json        a mount made by cfs_store_mount() (id: hash of
 *                           the target), mounts/<id>/ its upper and work
 *   lock, gate.lock, names.lock  flock(2) files
 *
 * Images are referred to by a name or by a unique prefix of their digest
 * (a name wins over a digest prefix that happens to spell it).
 *
 * Concurrency: any number of imports, tags and removals may run at once
 * (in processes or threads, each with its own handle); gc and a repairing
 * fsck wait for them and make them wait (those that start while gc waits
 * wait for gc: it is not starved). Listing never blocks.
 * A handle itself must not be used by two threads at once.
 */
#ifndef CFS_STORE_H
#define CFS_STORE_H

#include <stdbool.h>

#include "common.h"
#include "convert.h"
#include "mount.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Default store root. */
#define CFS_STORE_DEFAULT_ROOT "/var/lib/cfs"
/** Longest image name, in bytes. */
#define CFS_STORE_NAME_MAX 255

typedef struct cfs_store cfs_store;

/** cfs_store_options.flags: fail with -ENOENT instead of creating the
 * layout when @root is not a store yet (for read-only users). */
#define CFS_STORE_OPEN_NOCREATE 0x1u

typedef struct cfs_store_options {
	unsigned int version; /**< CFS_STORE_OPTIONS_VERSION */
	unsigned int flags; /**< CFS_STORE_OPEN_* */
} cfs_store_options;

#define CFS_STORE_OPTIONS_VERSION 1
#define CFS_STORE_OPTIONS_INIT                                                 \
	{                                                                      \
		CFS_STORE_OPTIONS_VERSION, 0                                   \
	}

/**
 * Open the store at @root (NULL: CFS_STORE_DEFAULT_ROOT), creating the
 * directory and its layout on first use. @opts may be NULL.
 */
CFS_EXPORT int cfs_store_open(cfs_store **out, const char *root,
			      const cfs_store_options *opts);
/** Close the store. Accepts NULL. */
CFS_EXPORT void cfs_store_free(cfs_store *store);
/** The root directory (borrowed). */
CFS_EXPORT const char *cfs_store_root(const cfs_store *store);
/** The shared object directory, ROOT/objects (borrowed): the basedir to
 * mount the store's images with. */
CFS_EXPORT const char *cfs_store_objects_dir(const cfs_store *store);

/* ---- Import ---------------------------------------------------------- */

/** cfs_store_import_options.flags: refuse an image whose manifest does
 * not carry the sealing annotations (include/cfs/seal.h). A sealed
 * image is always checked: one that does not convert to the digests its
 * annotations name is refused, sealed or not asked for. */
#define CFS_STORE_IMPORT_REQUIRE_SEALED 0x1u
/** cfs_store_import_options.flags: when the layout holds a composefs
 * artifact of the image (include/cfs/seal.h), store its composefs image
 * as it is and take only the objects from the layers (every object it
 * names must come with them). Without the flag such an artifact is
 * checked: its image must be the one the import makes. See
 * docs/security.md for what trusting it means. */
#define CFS_STORE_IMPORT_TRUST_ARTIFACT 0x2u
/** Refuse an image whose merged and config digests (CFS_SPEC_MERGED,
 * CFS_SPEC_CONFIG) are not both signed by a trusted certificate: one of
 * @trust_certs or of the store's ROOT/trust/ *.pem (docs/security.md).
 * Whatever the flags, a signature that is present is checked when any
 * certificate is trusted, and a bad one refused. */
#define CFS_STORE_IMPORT_REQUIRE_SIGNED 0x4u

typedef struct cfs_store_import_options {
	unsigned int version; /**< CFS_STORE_IMPORT_OPTIONS_VERSION */
	unsigned int flags; /**< CFS_STORE_IMPORT_* */
	/** Names to give the image (each moved here if it named another). */
	const char *const *names;
	size_t n_names;
	/** As in cfs_convert_options. */
	const char *platform;
	unsigned int threads;
	cfs_progress_fn progress;
	void *progress_opaque;
	/** Since version 2: PEM certificates whose signatures are trusted,
	 * besides the store's ROOT/trust/ *.pem. */
	const char *const *trust_certs;
	size_t n_trust_certs;
} cfs_store_import_options;

/* Version 1 (without trust_certs) is still accepted. */
#define CFS_STORE_IMPORT_OPTIONS_VERSION 2
#define CFS_STORE_IMPORT_OPTIONS_INIT                                          \
	{                                                                      \
		CFS_STORE_IMPORT_OPTIONS_VERSION, 0, NULL, 0, NULL, 0, NULL,   \
			NULL, NULL, 0                                          \
	}

/** What an import did. */
/** What an import did with one layer of an OCI image. */
typedef struct cfs_store_layer_result {
	char digest[CFS_DIGEST_STR_MAX]; /**< "sha256:<hex>" of the layer blob */
	char diff_id[CFS_DIGEST_STR_MAX]; /**< "sha256:<hex>" of its tar, "" if not known */
	/** Built from the store's record of the layer (its diff_id): the
	 * blob was not read. */
	bool reused;
	/** A record of the layer was made (it goes into the store with
	 * the image). */
	bool recorded;
	/** Neither read nor built: the image is a trusted artifact's
	 * (CFS_STORE_IMPORT_TRUST_ARTIFACT) and every object it names was
	 * in the store already. */
	bool skipped;
	uint64_t bytes_read; /**< compressed bytes read from the blob */
	uint64_t tar_bytes; /**< bytes of the layer's tar */
	uint64_t entries; /**< tar entries */
	/** cfs_store_pull(): bytes of the blob that came from the source
	 * (0 for a layer built from its record). */
	uint64_t bytes_fetched;
	/** cfs_store_pull(): a partial pull of a zstd:chunked layer: only
	 * the files the store lacked were fetched (its TOC, tar-split and
	 * those files make bytes_fetched). */
	bool partial;
	/** ...built from its TOC alone (CFS_STORE_PULL_TRUST_TOC): its
	 * diff_id was not checked, and it was not recorded. */
	bool unverified;
} cfs_store_layer_result;

typedef struct cfs_store_import_result {
	unsigned int version; /**< CFS_STORE_IMPORT_RESULT_VERSION */
	char digest[CFS_DIGEST_HEX_SIZE + 1]; /**< the image id */
	bool existed; /**< the image was in the store already */
	uint64_t image_size; /**< bytes of the image file */
	/** Distinct objects the image references and their bytes. */
	uint64_t objects, object_bytes;
	/** Objects this import added to the store, and their bytes. */
	uint64_t objects_new, objects_new_bytes;
	/** Files (new objects and the image) this import enabled fs-verity
	 * on. */
	uint64_t verity_enabled;
	/** The image and every object it references have fs-verity. */
	bool verity;
	/** Why fs-verity could not be enabled (positive errno, e.g.
	 * EOPNOTSUPP), 0 if nothing failed. Not an import error. */
	int verity_errno;
	/** The image was sealed and its digests checked out. */
	bool sealed;
	/** Its merged and config digests' signatures were checked out
	 * (CFS_STORE_IMPORT_REQUIRE_SIGNED); signer: the certificate's
	 * subject. */
	bool signature_checked;
	char signer[256];
	/** A composefs artifact of the image was found and checked out
	 * (or, CFS_STORE_IMPORT_TRUST_ARTIFACT, used). */
	bool artifact;
	/** OCI sources: each layer, in order; owned, freed by
	 * cfs_store_import_result_clear(). */
	cfs_store_layer_result *layers;
	size_t n_layers;
} cfs_store_import_result;

#define CFS_STORE_IMPORT_RESULT_VERSION 1
#define CFS_STORE_IMPORT_RESULT_INIT                                           \
	{                                                                      \
		.version = CFS_STORE_IMPORT_RESULT_VERSION                     \
	}

/** Free what a filled-in cfs_store_import_result owns and zero it.
 * Accepts NULL. */
CFS_EXPORT void cfs_store_import_result_clear(cfs_store_import_result *res);

/**
 * Convert @source (any cfs_convert() source) into the store and name the
 * image. New objects are staged under tmp/ and moved in only after the
 * conversion succeeded, so a failed import leaves the store as it was.
 * fs-verity is enabled on the new objects and the image where the
 * filesystem supports it. An image already present costs a conversion
 * (to learn its digest) but writes no object; its names are added.
 * @result may be NULL.
 */
CFS_EXPORT int cfs_store_import(cfs_store *store, const char *source,
				const cfs_store_import_options *opts,
				cfs_store_import_result *result);

/* ---- Images and names ------------------------------------------------ */

/** An image of the store, as listed. Free with cfs_store_image_clear(). */
typedef struct cfs_store_image {
	char digest[CFS_DIGEST_HEX_SIZE + 1];
	/** false for an image whose import was interrupted before its
	 * metadata was written: only digest, image_size and names are set,
	 * and gc removes it unless it is named. */
	bool complete;
	char *source; /**< the import's source string */
	char *manifest_digest; /**< "sha256:<hex>", NULL if none */
	char *config_digest; /**< "sha256:<hex>", NULL if none */
	char *config; /**< the OCI config as JSON text, NULL if none */
	int64_t created; /**< import time, seconds since the epoch */
	uint64_t image_size;
	uint64_t objects, object_bytes; /**< distinct objects referenced */
	bool verity; /**< fs-verity on the image and all its objects */
	/** fsck --repair removed objects the image needs (corrupt or
	 * missing): mounting it is refused until an import of the image
	 * brings them back. */
	bool broken;
	char **names; /**< sorted */
	size_t n_names;
} cfs_store_image;

/** Free what @img owns and zero it. */
CFS_EXPORT void cfs_store_image_clear(cfs_store_image *img);
/** Free an array from cfs_store_list(). Accepts NULL. */
CFS_EXPORT void cfs_store_images_free(cfs_store_image *images, size_t n);

/** All images, sorted by digest. Does not wait for running writers. */
CFS_EXPORT int cfs_store_list(cfs_store *store, cfs_store_image **images_out,
			      size_t *n_out);

/**
 * Resolve @ref, a name or a digest prefix (1..64 hex digits), to an
 * image digest. -ENOENT if nothing matches, -ENOTUNIQ if a prefix
 * matches several images.
 */
CFS_EXPORT int cfs_store_resolve(cfs_store *store, const char *ref,
				 char digest_out[CFS_DIGEST_HEX_SIZE + 1]);

/** Resolve @ref and describe the image. */
CFS_EXPORT int cfs_store_inspect(cfs_store *store, const char *ref,
				 cfs_store_image *out);

/**
 * The path of the image file @ref resolves to (owned by the caller; free
 * it), e.g. to mount it with cfs_store_objects_dir(). @digest_out
 * (nullable) receives its digest.
 */
CFS_EXPORT int cfs_store_image_path(cfs_store *store, const char *ref,
				    char **path_out,
				    char digest_out[CFS_DIGEST_HEX_SIZE + 1]);

/** Is @name a valid image name: 1..CFS_STORE_NAME_MAX bytes of
 * [A-Za-z0-9._:/@+-], starting with a letter or digit. */
CFS_EXPORT bool cfs_store_name_valid(const char *name);

/** Give the image @ref resolves to the name @name (moving @name if it
 * named another image). */
CFS_EXPORT int cfs_store_tag(cfs_store *store, const char *ref,
			     const char *name);
/** Remove the name @name (-ENOENT if there is none). The image stays
 * until gc finds it without names. -EBUSY as cfs_store_remove(). */
CFS_EXPORT int cfs_store_untag(cfs_store *store, const char *name);
/**
 * Remove @ref: the name if @ref is a name, else every name of the image
 * the digest prefix @ref resolves to. -EBUSY (nothing removed) if that
 * takes the last name of an image and config from an image a container
 * runs on (a mount of it is the lower layer of an overlay mount, as
 * podman's containers on the AIS are).
 */
CFS_EXPORT int cfs_store_remove(cfs_store *store, const char *ref);

/** cfs_store_remove_ext(): remove even if a container uses the image
 * (its mount stays until the container is gone; gc keeps the image). */
#define CFS_STORE_REMOVE_FORCE 0x1u

/** cfs_store_remove() with CFS_STORE_REMOVE_* @flags. */
CFS_EXPORT int cfs_store_remove_ext(cfs_store *store, const char *ref,
				    unsigned int flags);

/* ---- Garbage collection and checking --------------------------------- */

/** cfs_store_gc(): only report what would be removed. */
#define CFS_STORE_GC_DRY_RUN 0x1u

/** What gc removed (or would remove). Free with
 * cfs_store_gc_result_clear(). */
typedef struct cfs_store_gc_result {
	unsigned int version; /**< CFS_STORE_GC_RESULT_VERSION */
	uint64_t images; /**< images without a name */
	uint64_t objects; /**< objects no remaining image references */
	uint64_t object_bytes;
	uint64_t temporaries; /**< stale temporaries of dead writers */
	/** Every path removed, relative to the root, in removal order. */
	char **paths;
	size_t n_paths;
	/** layer records no remaining image needs (or damaged ones) */
	uint64_t records;
} cfs_store_gc_result;

#define CFS_STORE_GC_RESULT_VERSION 1
#define CFS_STORE_GC_RESULT_INIT                                               \
	{                                                                      \
		.version = CFS_STORE_GC_RESULT_VERSION                         \
	}

/** Free what a filled-in cfs_store_gc_result owns and zero it; accepts
 * NULL. */
CFS_EXPORT void cfs_store_gc_result_clear(cfs_store_gc_result *res);

/**
 * Remove images without a name, then objects no remaining image
 * references, and stale temporaries. Waits for running imports (and
 * makes new ones wait). @flags: CFS_STORE_GC_*. @res may be NULL.
 */
CFS_EXPORT int cfs_store_gc(cfs_store *store, unsigned int flags,
			    cfs_store_gc_result *res);

/** cfs_store_fsck(): also hash every object and image and compare the
 * fs-verity digest with the name. */
#define CFS_STORE_FSCK_VERIFY 0x1u
/** cfs_store_fsck(): remove what is broken (objects with wrong content,
 * images that do not parse, lack objects or disagree with their
 * metadata, names of missing images, stray files). */
#define CFS_STORE_FSCK_REPAIR 0x2u

/** One problem fsck found. */
typedef struct cfs_store_problem {
	/** "missing-object", "corrupt-object" (--repair removes the object
	 * and marks the images that need it broken), "bad-image",
	 * "image-digest",
	 * "bad-metadata", "missing-metadata", "orphan-metadata",
	 * "dangling-name", "bad-names", "stray-file", "image-in-use" (a
	 * broken image --repair left alone because it is mounted) */
	char *kind;
	char *path; /**< relative to the root (a name for dangling-name) */
	char *message; /**< one line */
	bool repaired; /**< removed by --repair */
} cfs_store_problem;

typedef struct cfs_store_fsck_result {
	unsigned int version; /**< CFS_STORE_FSCK_RESULT_VERSION */
	uint64_t images, objects; /**< checked */
	/** Images without metadata and name: an interrupted import, not a
	 * problem; gc removes them. */
	uint64_t incomplete;
	/** Images marked broken: a repair removed objects they need (see
	 * cfs_store_image.broken); not a problem, a re-import restores
	 * them. */
	uint64_t broken;
	cfs_store_problem *problems;
	size_t n_problems;
	/** Stale temporaries of dead writers, removed (always, as imports
	 * and gc do): paths relative to the root. */
	char **cleaned;
	size_t n_cleaned;
	/** Layer records checked (each must read and have its objects;
	 * repair removes a bad one, the next import of its layer reads the
	 * layer again). */
	uint64_t records;
} cfs_store_fsck_result;

#define CFS_STORE_FSCK_RESULT_VERSION 1
#define CFS_STORE_FSCK_RESULT_INIT                                             \
	{                                                                      \
		.version = CFS_STORE_FSCK_RESULT_VERSION                       \
	}

/** Free what a filled-in cfs_store_fsck_result owns and zero it; accepts
 * NULL. */
CFS_EXPORT void cfs_store_fsck_result_clear(cfs_store_fsck_result *res);

/**
 * Check the store: every image parses, every object it references
 * exists, the metadata agrees with the image file, every name points to
 * an image; with CFS_STORE_FSCK_VERIFY also every digest. Returns 0 when
 * the check ran (problems are in @res, which is required), -errno when it
 * could not run. With CFS_STORE_FSCK_REPAIR it takes the store's lock
 * like gc.
 */
CFS_EXPORT int cfs_store_fsck(cfs_store *store, unsigned int flags,
			      cfs_store_fsck_result *res);

/* ---- Mounting -------------------------------------------------------- */

/** cfs_store_mount_options.flags: a writable root whose upper and work
 * directories the store creates and keeps, ROOT/mounts/<id>/upper and
 * .../work (reused by a later mount of the same target). */
#define CFS_STORE_MOUNT_WRITABLE 0x1u

typedef struct cfs_store_mount_options {
	unsigned int version; /**< CFS_STORE_MOUNT_OPTIONS_VERSION */
	unsigned int flags; /**< CFS_STORE_MOUNT_*; unknown bits: -EINVAL */
	/** Both or neither, not with CFS_STORE_MOUNT_WRITABLE: a writable
	 * root with these (caller-owned) upper and work directories. */
	const char *upperdir;
	const char *workdir;
	/** As in cfs_mount_options; CFS_VERITY_AUTO here means "require"
	 * when the image's metadata says it and all its objects have
	 * fs-verity, else "off". */
	cfs_verity_mode verity;
	/** If not NULL: the image file's fs-verity digest must equal it. */
	const uint8_t *expected_digest;
	/** Since version 2: as cfs_mount_options.idmap. */
	const char *idmap;
} cfs_store_mount_options;

/* Version 1 (without idmap) is still accepted. */
#define CFS_STORE_MOUNT_OPTIONS_VERSION 2
#define CFS_STORE_MOUNT_OPTIONS_INIT                                           \
	{                                                                      \
		CFS_STORE_MOUNT_OPTIONS_VERSION, 0, NULL, NULL,                \
			CFS_VERITY_AUTO, NULL, NULL                            \
	}

/**
 * Mount the image @ref resolves to at @target with cfs_mount(), the
 * store's objects as its data layer. The image is parsed in full first
 * (-EINVAL naming it if it does not parse). The mount is recorded in
 * ROOT/mounts/ so that gc keeps the image while it is mounted, even
 * without a name. Holds the store's lock shared meanwhile, so gc cannot
 * remove the image between lookup and mount. On error nothing is mounted
 * and nothing recorded. @opts may be NULL (read-only).
 */
CFS_EXPORT int cfs_store_mount(cfs_store *store, const char *ref,
			       const char *target,
			       const cfs_store_mount_options *opts);

/** cfs_store_umount(): also delete the upper and work directories of a
 * CFS_STORE_MOUNT_WRITABLE mount (kept by default). */
#define CFS_STORE_UMOUNT_DELETE_UPPER 0x1u

/**
 * Unmount what cfs_store_mount() put at @target and drop its record.
 * -ENOENT if the store has no mount recorded at @target; a record whose
 * target is no longer mounted (say, after a reboot) is just removed.
 * @flags: CFS_STORE_UMOUNT_*.
 */
CFS_EXPORT int cfs_store_umount(cfs_store *store, const char *target,
				unsigned int flags);

/* ---- Pulling through skopeo ------------------------------------------ */

/** cfs_store_pull_options.flags: talk to the source registry without TLS
 * verification, or over plain HTTP (skopeo's --src-tls-verify=false). */
#define CFS_STORE_PULL_INSECURE 0x1u
/** cfs_store_pull_options.flags: fetch every layer whole, also a
 * zstd:chunked one whose files the store mostly has (by default those
 * files are not fetched again: docs/distribution.md, "Partial pulls"). */
#define CFS_STORE_PULL_NO_PARTIAL 0x2u
/** cfs_store_pull_options.flags: also pull partially the zstd:chunked
 * layers that have no tar-split (skopeo 1.9, podman 4), building each
 * from its table of contents: its diff_id is then not checked, the
 * layer not recorded, and the image may differ from a whole pull's
 * where the TOC cannot say what the tar does (docs/security.md). */
#define CFS_STORE_PULL_TRUST_TOC 0x4u

typedef struct cfs_store_pull_options {
	unsigned int version; /**< CFS_STORE_PULL_OPTIONS_VERSION */
	unsigned int flags; /**< CFS_STORE_PULL_*; unknown bits: -EINVAL */
	/** The skopeo program to run (NULL: "skopeo", looked up in PATH). */
	const char *skopeo;
} cfs_store_pull_options;

#define CFS_STORE_PULL_OPTIONS_VERSION 1
#define CFS_STORE_PULL_OPTIONS_INIT                                            \
	{                                                                      \
		CFS_STORE_PULL_OPTIONS_VERSION, 0, NULL                        \
	}

/** Is @source "TRANSPORT:REFERENCE", as cfs_store_pull() takes it: a
 * transport of letters, digits and '-' starting with a letter (so it
 * never reads as an option), a colon, a non-empty reference.
 * Whether skopeo knows the transport is only found out by running it. */
CFS_EXPORT bool cfs_store_pull_source_valid(const char *source);

/**
 * Fetch @source, any image reference skopeo(1) takes ("docker://REF",
 * "containers-storage:REF", "docker-archive:FILE", "oci:DIR:TAG", ...),
 * through skopeo's image proxy into an OCI layout in a writer directory
 * under the store's tmp/ (its manifest, its config, and the blobs of the
 * layers the store has no layer record of: a layer the store has is not
 * fetched), then cfs_store_import() it with @import_opts. A skopeo
 * without the proxy gets "skopeo copy" of every blob instead. Its
 * platform (OS/ARCH[/VARIANT]), if set, also tells skopeo which image of
 * a multi-platform index to copy. The layout is removed on success and
 * on failure; if the process dies, what is left is a stale writer
 * directory that the next import, gc or fsck removes (skopeo is killed
 * with its caller). skopeo runs without a shell, with stdin and stdout
 * on /dev/null and TMPDIR in that writer directory; when it fails (-EIO)
 * the error message carries its reason (the proxy's, or the last line
 * "skopeo copy" wrote to stderr). -ENOENT if
 * skopeo is not installed, -EINVAL if @source is not valid
 * (cfs_store_pull_source_valid()) or the store's root contains a ':'
 * (skopeo's oci: transport cannot name it). The store is not locked
 * while skopeo runs. @pull_opts, @import_opts and @result may be NULL.
 */
CFS_EXPORT int cfs_store_pull(cfs_store *store, const char *source,
			      const cfs_store_pull_options *pull_opts,
			      const cfs_store_import_options *import_opts,
			      cfs_store_import_result *result);

/* ---- Podman additional image store ----------------------------------- */

/** Where cfs_store_ais_sync() mounts images by default. */
#define CFS_STORE_AIS_DEFAULT_RUN_DIR "/run/cfs"

typedef struct cfs_store_ais_options {
	unsigned int version; /**< CFS_STORE_AIS_OPTIONS_VERSION */
	unsigned int flags; /**< none defined yet; must be 0 */
	/** The additional image store directory (NULL: ROOT/ais). */
	const char *ais_dir;
	/** Images are mounted at RUN/<image digest> (NULL:
	 * CFS_STORE_AIS_DEFAULT_RUN_DIR). */
	const char *run_dir;
	/** Since version 2: mount the images idmapped (see
	 * cfs_idmap_userns()), e.g. "user:NAME" for NAME's rootless podman
	 * (docs/podman.md); NULL: not idmapped. */
	const char *idmap;
} cfs_store_ais_options;

/* Version 1 (without idmap) is still accepted. */
#define CFS_STORE_AIS_OPTIONS_VERSION 2
#define CFS_STORE_AIS_OPTIONS_INIT                                             \
	{                                                                      \
		CFS_STORE_AIS_OPTIONS_VERSION, 0, NULL, NULL, NULL             \
	}

/** What cfs_store_ais_sync() did. */
typedef struct cfs_store_ais_result {
	unsigned int version; /**< CFS_STORE_AIS_RESULT_VERSION */
	size_t images; /**< images in the AIS now */
	size_t mounted; /**< of them, mounted by this call */
	/** names left out: without an OCI config (dir: and dump: imports),
	 * or with the config of another name on a different tree */
	size_t skipped;
	size_t unmounted; /**< images gone from the store, unmounted */
	size_t busy; /**< gone, but their mount is busy: left mounted */
	/** RUN was not on tmpfs and this call mounted one of the store's
	 * own on it (a caller should say so). */
	bool run_mounted;
} cfs_store_ais_result;

#define CFS_STORE_AIS_RESULT_VERSION 1
#define CFS_STORE_AIS_RESULT_INIT                                              \
	{                                                                      \
		.version = CFS_STORE_AIS_RESULT_VERSION                        \
	}

/**
 * Make the AIS directory a containers/storage additional image store
 * (overlay driver) holding one image per distinct (store image, OCI
 * config) among the store's names, with the raw config and manifest the
 * names were imported with, on one layer per store image whose content
 * is the image mounted read-only with cfs_store_mount() at RUN/<digest>
 * (mounted here if it is not). RUN must be on tmpfs: a mount point left
 * empty by a reboot must not become a container's root. Where it is
 * not, a 1 MiB tmpfs is mounted on it (res->run_mounted); -errno if that
 * fails. Images gone from the store leave the AIS and are unmounted. Updates
 * hold the fcntl write locks of layers.lock and images.lock, replace
 * the JSON files atomically and write a fresh token to each lock file,
 * so running podman processes notice them. See docs/podman.md.
 * @opts and @res may be NULL.
 */
CFS_EXPORT int cfs_store_ais_sync(cfs_store *store,
				  const cfs_store_ais_options *opts,
				  cfs_store_ais_result *res);

/**
 * Mount every layer the AIS refers to that is not mounted (after a
 * reboot), without changing what podman sees. res->images counts the
 * layers, res->mounted those mounted now. Tries all; returns the first
 * error.
 */
CFS_EXPORT int cfs_store_ais_mount_all(cfs_store *store,
				       const cfs_store_ais_options *opts,
				       cfs_store_ais_result *res);

/**
 * Unmount every layer of the AIS and remove its mount point, so that
 * podman fails to start containers on them (instead of starting them
 * on an empty root) until cfs_store_ais_mount_all(). A layer a container
 * runs on stays mounted (res->busy, -EBUSY naming it). Tries all;
 * returns the first error.
 */
CFS_EXPORT int cfs_store_ais_unmount_all(cfs_store *store,
					 const cfs_store_ais_options *opts,
					 cfs_store_ais_result *res);

#ifdef __cplusplus
}
#endif

#endif
