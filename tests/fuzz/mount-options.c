/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * fuzz-mount-options: the input is the option string mount.cfs gets
 * after "-o" (cut at the first NUL, as a C string would be), parsed
 * strictly and sloppily. Checked: an error leaves the arguments cleared;
 * a success has objects=, and upperdir= exactly when workdir=.
 */
#include <stdlib.h>
#include <string.h>

#include <cfs/mount.h>

#include "fuzz.h"
#include "mount/mount-internal.h"

static void parse(const char *s, unsigned int flags)
{
	struct cfs_mount_args a;
	cfs_mount_options o;
	int r;

	memset(&a, 0, sizeof(a));
	cfs_error_clear();
	r = cfs_mount_args_parse(&a, s, flags);
	fuzz_check_error(r, "cfs_mount_args_parse");
	if (r < 0) {
		if (a.objects_dir || a.upperdir || a.workdir || a.have_digest)
			fuzz_fail("cfs_mount_args_parse failed but left "
				  "arguments set");
		return;
	}
	if (!a.objects_dir || !a.objects_dir[0])
		fuzz_fail("options parsed without objects=");
	if (!a.upperdir != !a.workdir)
		fuzz_fail("options parsed with upperdir= but not workdir= "
			  "or the reverse");
	cfs_mount_args_to_options(&a, &o);
	if (o.objects_dir != a.objects_dir ||
	    (o.expected_digest != NULL) != a.have_digest)
		fuzz_fail("cfs_mount_args_to_options lost an option");
	cfs_mount_args_clear(&a);
	if (a.objects_dir || a.upperdir || a.workdir)
		fuzz_fail("cfs_mount_args_clear left strings");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	parse(s, 0);
	parse(s, CFS_MOUNT_PARSE_SLOPPY);
	free(s);
	return 0;
}
