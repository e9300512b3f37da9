/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * The per-thread error message behind cfs_error_message().
 *
 * Every failure path that returns -errno to a caller outside its module
 * records one line saying what failed and where (image, layer, path,
 * offset). cfs_error() returns -err so that call sites read
 *     return cfs_error(EINVAL, "%s: offset %zu: bad inode", name, off);
 * A message set deeper down may be prefixed with cfs_error_prefix().
 */
#ifndef CFS_ERROR_H
#define CFS_ERROR_H

#include <cfs/common.h>

__attribute__((format(printf, 2, 3))) int cfs_error(int err, const char *fmt,
						    ...);
/* Like cfs_error but appends ": strerror(err)". */
__attribute__((format(printf, 2, 3))) int cfs_error_errno(int err,
							  const char *fmt, ...);
/* Put "PREFIX: " in front of the current message; returns -err. */
__attribute__((format(printf, 2, 3))) int
cfs_error_prefix(int err, const char *fmt, ...);
/* Set a message only if none is set yet (for generic fallbacks). */
int cfs_error_default(int err, const char *what);

#endif
