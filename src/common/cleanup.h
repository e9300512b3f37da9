/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* Scope-bound cleanup, in the manner of systemd's _cleanup_ and TAKE_PTR. */
#ifndef CFS_CLEANUP_H
#define CFS_CLEANUP_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void cfs_freep(void *p)
{
	free(*(void **)p);
}

static inline void cfs_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

static inline void cfs_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(cfs_freep)
#define _cleanup_close_ _cleanup_(cfs_closep)
#define _cleanup_fclose_ _cleanup_(cfs_fclosep)

/* Define a cleanup function for a type with its own free function, which
 * must accept NULL or is skipped for NULL here. */
#define CFS_DEFINE_CLEANUP(type, func)                                         \
	static inline void func##p(type *p)                                    \
	{                                                                      \
		if (*p)                                                        \
			func(*p);                                              \
	}

/* Hand a pointer out of a cleanup scope. */
#define TAKE_PTR(ptr)                                                          \
	({                                                                     \
		__typeof__(ptr) _p = (ptr);                                    \
		(ptr) = NULL;                                                  \
		_p;                                                            \
	})

#define TAKE_FD(fd)                                                            \
	({                                                                     \
		int _fd = (fd);                                                \
		(fd) = -1;                                                     \
		_fd;                                                           \
	})

#endif
