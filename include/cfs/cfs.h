/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* libcfs umbrella header. */
#ifndef CFS_CFS_H
#define CFS_CFS_H

#include "common.h"
#include "image.h"
#include "convert.h"
#include "seal.h"
#include "store.h"
#include "mount.h"

#endif
