/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * libcfs: common definitions shared by every public header.
 *
 * Conventions (as in libgit2):
 *  - Fallible functions return 0 on success or a negative errno value.
 *  - Constructors take the out-parameter first: cfs_x_new(cfs_x **out, ...).
 *    What comes back through **out belongs to the caller.
 *  - Getters borrow: the returned pointer lives as long as its owner.
 *  - Every _free and _unref accepts NULL.
 *  - The library never prints. On failure it records one line that says
 *    what went wrong and where; read it with cfs_error_message().
 */
#ifndef CFS_COMMON_H
#define CFS_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CFS_BUILDING_LIBRARY) && defined(__GNUC__)
#define CFS_EXPORT __attribute__((visibility("default")))
#else
#define CFS_EXPORT
#endif

/* Project version; independent of the library SOVERSION and of the
 * on-disk format version (see image.h). */
#define CFS_VERSION_MAJOR 0
#define CFS_VERSION_MINOR 1
#define CFS_VERSION_PATCH 0
#define CFS_VERSION_STRING "0.1.0"

/*
 * Option structs carry a version (FOO_OPTIONS_VERSION, set by the
 * FOO_OPTIONS_INIT initializer). A struct grows only at its end, with
 * its version raised; the library accepts every version from 1 up to
 * its own and reads only the fields that version has, so a caller
 * built against an older header keeps working.
 */
#define CFS_OPTIONS_VERSION_OK(v, current) ((v) >= 1 && (v) <= (current))

/*
 * Result structs that may grow (the FOO_result structs, and
 * cfs_convert_stats) carry a version too, as their first field: the
 * caller sets it (FOO_RESULT_INIT, CFS_CONVERT_STATS_INIT) and the
 * library writes only the fields that version has, so a caller built
 * against an older header never has its struct overrun. A version the
 * library does not know is refused (-EINVAL, before anything is done);
 * the FOO_clear() functions keep the version, so a struct can be used
 * again.
 */

/** Size of a SHA-256 digest in bytes. */
#define CFS_DIGEST_SIZE 32
/** Size of a SHA-256 digest as lower-case hex, without the NUL. */
#define CFS_DIGEST_HEX_SIZE 64
/** Bytes the API's structs give a digest string ("sha256:<hex>" and its
 * NUL, 72 bytes, with room to spare for a longer algorithm's name). */
#define CFS_DIGEST_STR_MAX 80

/**
 * The message of the last error raised on this thread, or "" if none.
 * The string is owned by the library and valid until the next libcfs call
 * on this thread.
 *
 * As with libgit2's git_error_last(), the message is only meaningful
 * right after a call that returned an error: success does not clear it,
 * and a few calls fail without a sentence to add (a lookup such as
 * cfs_dir_unlink() of a missing name returns -ENOENT alone), leaving the
 * message of an earlier failure in place. Decide on the return value,
 * never on the message; to tell a fresh message from an old one, call
 * cfs_error_clear() before the call.
 */
CFS_EXPORT const char *cfs_error_message(void);

/** Forget the last error of this thread. */
CFS_EXPORT void cfs_error_clear(void);

/** The project version string, e.g. "0.1.0". */
CFS_EXPORT const char *cfs_version(void);

#ifdef __cplusplus
}
#endif

#endif
