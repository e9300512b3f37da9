/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* The image store: what its modules (store, import, gc/fsck) share. */
#ifndef CFS_STORE_INTERNAL_H
#define CFS_STORE_INTERNAL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include <cfs/image.h>
#include <cfs/store.h>

#include "common/cleanup.h"

CFS_DEFINE_CLEANUP(json_object *, json_object_put)

/* Version of images/<digest>.json. */
#define STORE_FORMAT_VERSION 1
/* Version of names.json written; version 1 (NAME: DIGEST) is read too. */
#define STORE_NAMES_VERSION 2
/* Largest names.json or metadata file read: a name table of 100000 long
 * names stays below; the limit keeps a damaged file from eating memory. */
#define STORE_JSON_MAX (64 * 1024 * 1024)
/* "w-<pid>-<16 hex>": a writer's scratch directory in tmp/. */
#define STORE_WRITER_PREFIX "w-"
/* ROOT/repairing: a fsck --repair is (or was, if it is still there)
 * removing files; imports then check every object a layer record names
 * (import.c, open_records()). */
#define STORE_REPAIR_MARKER "repairing"

struct cfs_store {
	char *root;
	char *objects_path;
	int root_fd, objects_fd, images_fd, tmp_fd;
	int blobs_fd; /* blobs/sha256; -1 if absent (read-only open) */
	int layers_fd; /* layers/: layer records; -1 if absent (read-only) */
	int lock_fd; /* ROOT/lock, flock'ed shared or exclusive */
};

/* A writer's scratch directory tmp/w-...: it holds the flock on it for
 * as long as it lives, so that cleaners can tell a live writer from the
 * remains of a dead one. */
struct store_writer {
	int fd;
	char name[64];
};

int store_writer_open(cfs_store *s, struct store_writer *w);
/* Remove the directory and everything in it. */
void store_writer_close(cfs_store *s, struct store_writer *w);

/* The turnstile every locker of ROOT/lock passes (store_lock()). */
#define STORE_GATE_LOCK "gate.lock"

/* flock(2) on ROOT/lock: LOCK_SH, LOCK_EX or LOCK_UN. Shared and
 * exclusive lockers queue through ROOT/gate.lock, so that a waiting
 * exclusive locker (gc) is not starved by overlapping shared ones.
 * Never call it while holding ROOT/lock: a waiting gc would hold the
 * gate and wait for us. */
int store_lock(cfs_store *s, int op);
/* Take ROOT/names.lock exclusively; returns its fd (close to release). */
int store_names_lock(cfs_store *s);
/* The undo generation in names.lock (store.c), under that lock: false
 * when it cannot be read. _start() makes a missing one 0. */
bool store_undo_gen(int lockfd, uint64_t *gen);
bool store_undo_gen_start(int lockfd, uint64_t *gen);
void store_undo_gen_bump(int lockfd);

/* Remove stale writer directories in tmp/ (and, with @strays, any other
 * entry of tmp/). Paths removed (or, with @dry_run, that would be) are
 * appended to @paths when it is not NULL. */
int store_clean_tmp(cfs_store *s, bool strays, bool dry_run, char ***paths,
		    size_t *n_paths);

/* rm -rf of @name in @dirfd (no symlinks followed). */
int store_rm_rf_at(int dirfd, const char *name);

/* ---- names.json ------------------------------------------------------ */

/* Each name points at an image and, for an OCI import, at the config
 * and manifest it came with ("sha256:<hex>" in blobs/sha256/, or NULL):
 * images with the same tree but different configs share one image. */
struct store_name {
	char *name;
	char digest[CFS_DIGEST_HEX_SIZE + 1];
	char *config; /* "sha256:<hex>" or NULL */
	char *manifest; /* "sha256:<hex>" or NULL */
};

struct store_names {
	struct store_name *v;
	size_t n;
};

/* Read names.json (a missing file is an empty table). */
int store_names_read(cfs_store *s, struct store_names *t);
/* Write @t as names.json: into @w's directory, fsync, rename over. */
int store_names_write(cfs_store *s, struct store_writer *w,
		      const struct store_names *t);
/* The halves of store_names_write(): stage writes @w's names.json (this
 * can fail for want of space), commit renames it over ROOT's (replacing
 * an entry needs no room); then the caller fsyncs ROOT. */
int store_names_stage(cfs_store *s, struct store_writer *w,
		      const struct store_names *t);
int store_names_commit(cfs_store *s, struct store_writer *w);
void store_names_clear(struct store_names *t);
/* Set (or move) @name to @digest with its OCI @config and @manifest
 * digests (each "sha256:<hex>" or NULL); remove it (-ENOENT if absent). */
int store_names_set(struct store_names *t, const char *name, const char *digest,
		    const char *config, const char *manifest);
int store_names_del(struct store_names *t, const char *name);
/* The entry of @name or NULL (borrowed). */
const struct store_name *store_names_find(const struct store_names *t,
					  const char *name);
/* The digest of @name or NULL (borrowed). */
const char *store_names_get(const struct store_names *t, const char *name);

/* ---- blobs/sha256: raw OCI configs and manifests ----------------------- */

/* Is @digest "sha256:" and 64 lower-case hex digits? */
bool store_blob_digest_valid(const char *digest);
/* Read blob @digest ("sha256:<hex>") and check its SHA-256: -ENOENT if
 * absent, -EBADMSG (with a message) if its content does not match. */
int store_blob_read(cfs_store *s, const char *digest, char **out, size_t *len);
/* Stage @len bytes as the blob @digest (their SHA-256, checked) in the
 * writer's directory, named by the hex digits, for the caller to rename
 * into blobs/sha256/ (RENAME_NOREPLACE: the store may have it by then);
 * fsync'ed with @sync, else the caller makes it durable (the import's
 * syncfs of step 3). */
int store_blob_stage(cfs_store *s, struct store_writer *w, const char *digest,
		     const void *data, size_t len, bool sync);

/* ---- objects an image references -------------------------------------- */

struct store_obj {
	uint8_t digest[CFS_DIGEST_SIZE];
	uint64_t size;
};

struct store_objset {
	struct store_obj *v;
	size_t n, cap;
};

/* Add every object the tree below @root references (regular files with
 * a digest). -EINVAL with a message if a payload is not the digest's
 * object path. Call store_objset_finish() before lookups. */
int store_objset_add_tree(struct store_objset *set, cfs_inode *root);
int store_objset_add(struct store_objset *set, const uint8_t *digest,
		     uint64_t size);
/* Sort and drop duplicates. */
void store_objset_finish(struct store_objset *set);
bool store_objset_has(const struct store_objset *set, const uint8_t *digest);
void store_objset_clear(struct store_objset *set);

/* ---- images ---------------------------------------------------------- */

/* Digests of the image files images/<hex>.cfs, sorted. */
int store_image_digests(cfs_store *s, char (**out)[CFS_DIGEST_HEX_SIZE + 1],
			size_t *n_out);
/* Fill @img from images/<hex>.json (-ENOENT if there is none). */
int store_meta_read(cfs_store *s, const char *hex, cfs_store_image *img);
/* The "signatures" object of image @hex's metadata (a reference), NULL
 * in *@out when it has none. */
int store_meta_signatures(cfs_store *s, const char *hex, json_object **out);
/* The fs-verity digest of the stored blob @digest ("sha256:<hex>"). */
int store_blob_verity(cfs_store *s, const char *digest,
		      uint8_t out[CFS_DIGEST_SIZE]);
/* Is @s 1..64 lower-case hex digits? @exact: exactly 64. */
bool store_is_hex(const char *s, bool exact);
/* Does @path (relative to @dirfd) have fs-verity enabled? */
bool store_has_verity(int dirfd, const char *path);
/* Append a copy of @str to the string vector. */
int store_strv_add(char ***v, size_t *n, const char *str);
void store_strv_free(char **v, size_t n);
/* The names in @dirfd (the store's directory @what, as messages name
 * it) but . and .., sorted: walks whose reports must not depend on
 * readdir order. Free with store_strv_free(). */
int store_dir_names(cfs_store *s, int dirfd, const char *what, char ***names,
		    size_t *n);

/* ---- layer records (layers.c; format in convert/records.h) ----------- */

/* Add every object the record @dirfd/@hex names to @set. -EBADMSG (with
 * a message naming @where) when the record is damaged. */
int store_record_objects(int dirfd, const char *hex, const char *where,
			 struct store_objset *set);
/* Whether layers/@hex is a record an import can use: it reads, and
 * every object it names is in objects/. */
bool store_record_usable(cfs_store *s, const char *hex);
/* The diff_ids (64 hex, "sha256:" left out) of the config JSON @config,
 * added to @v: the layer records an image of that config needs. Configs
 * without rootfs.diff_ids add nothing. */
int store_config_diff_ids(const char *config, size_t len, char ***v, size_t *n);

/* 1 (and the object's 64 hex in @bad) when an object of a SHA-256 pair
 * of record layers/@hex has content of another SHA-256; 0 when all that
 * are there match; -EBADMSG when the record is damaged. fsck --verify. */
int store_record_check_pairs(cfs_store *s, const char *hex, const char *where,
			     char bad[CFS_DIGEST_HEX_SIZE + 1]);

/*
 * The store's content by SHA-256 (docs/store.md): the union of the
 * pairs of all its records, sorted by SHA-256, each once (u8[32]
 * SHA-256, u8[32] object). Damaged records add nothing. Whether the
 * object is still there is the caller's to check.
 */
struct store_shamap {
	uint8_t (*v)[2 * CFS_DIGEST_SIZE];
	size_t n;
	size_t n_records; /* read, with pairs or not (format 1) */
};
int store_shamap_load(cfs_store *s, struct store_shamap *m);
/* The object holding content of @sha256, or NULL. */
const uint8_t *store_shamap_find(const struct store_shamap *m,
				 const uint8_t sha256[CFS_DIGEST_SIZE]);
void store_shamap_free(struct store_shamap *m);

/* ---- broken images ---------------------------------------------------- */

/*
 * images/<hex>.broken: fsck --repair removed objects the image needs
 * (corrupt or missing); one object path ("XX/<62 hex>") per line. The
 * image and its names stay; mounting it is refused while any of those
 * objects is missing, and an import that brings them back removes the
 * file. Implemented in broken.c.
 */
#define STORE_BROKEN_SUFFIX ".broken"
int store_broken_mark(cfs_store *s, const char *hex,
		      const struct store_objset *missing);
/* 1 (and *@missing_out, "XX/<62 hex>", to free) if the image is marked
 * broken and one of its listed objects is still missing, else 0. */
int store_broken_check(cfs_store *s, const char *hex, char **missing_out);
/* Remove the mark (after an import restored the objects). */
void store_broken_clear(cfs_store *s, const char *hex);

/*
 * Is the image mounted (a record in ROOT/mounts/ names it and its target
 * is a mount point), so that gc must keep it even without a name?
 * Implemented in mount.c; gc and fsck --repair call it.
 */
bool store_image_busy(cfs_store *s, const char *hex);

/*
 * Is a mount of the image (made by cfs_store_mount()) a lower layer of
 * an overlay mount, such as the root of a podman container running on
 * the image through the AIS? 1 and *@user_out (free it) = that overlay's
 * mount point, 0 if none. Implemented in mount.c.
 */
int store_image_user(cfs_store *s, const char *hex, char **user_out);

/* cfs_store_import() recording @recorded as the image's source (pull
 * imports a temporary layout, or the manifest and config it holds in
 * memory, but records what was pulled). @img: the image already open
 * (cfs_oci_open_manifest(); borrowed), used instead of opening @source;
 * NULL to open @source. The blobs the source lacks are streamed from
 * @fetch (convert/oci.h) when it is not NULL. */
struct cfs_blob_fetch;
struct cfs_oci_image;
int store_import_as(cfs_store *s, const char *source, const char *recorded,
		    struct cfs_oci_image *img,
		    const cfs_store_import_options *opts,
		    const struct cfs_blob_fetch *fetch,
		    cfs_store_import_result *result);

/* mount-records.c: ROOT/mounts/<id>.json, a record per store mount. */
#define MOUNTS_DIR "mounts"
/* Bytes of the target's SHA-256 in a record's id: 128 bits make a
 * collision between two targets of one machine out of the question. */
#define MOUNT_ID_BYTES 16
#define MOUNT_ID_HEX (2 * MOUNT_ID_BYTES)
/* A record holds a path and a digest; anything longer is not ours. */
#define MOUNT_RECORD_MAX (PATH_MAX + 4096)

struct mount_record {
	char *target;
	char image[CFS_DIGEST_HEX_SIZE + 1];
	bool writable;
};

void store_mount_record_clear(struct mount_record *rec);
/* The record id of mount target @target (hex of its SHA-256's start). */
int store_mount_id(const char *target, char id[MOUNT_ID_HEX + 1]);
/* Is @path the root of a mount (statx)? */
bool store_is_mount_root(const char *path);
/* Open ROOT/mounts (creating it with @create); -ENOENT without. */
int store_open_mounts(cfs_store *s, bool create);
/* Read mounts/@name; -ENOENT if absent, -EBADMSG if it is not a record. */
int store_mount_record_read(int mfd, const char *name,
			    struct mount_record *rec);
int store_mount_record_write(cfs_store *s, int mfd, const char *id,
			     const char *target, const char *hex,
			     bool writable);

/* gc and fsck (store.c) */
bool store_names_has_digest(const struct store_names *t, const char *hex);
/* Parse images/<hex>.cfs and add the objects it references to @set. */
int store_image_objects(cfs_store *s, const char *hex, struct store_objset *set,
			struct stat *st_out);
/* @fn for every entry below objects/ (entries of objects/ itself that are
 * not XX directories come with subfd -1). */
typedef int (*store_object_fn)(void *ctx, const char *sub, int subfd,
			       const char *name, bool is_object);
int store_walk_objects(cfs_store *s, store_object_fn fn, void *ctx);
void store_object_digest(const char *sub, const char *name,
			 uint8_t digest[CFS_DIGEST_SIZE]);
/* broken.c: the objects images/<hex>.broken lists, into @set. */
int store_broken_read(cfs_store *s, const char *hex, struct store_objset *set);

#endif
