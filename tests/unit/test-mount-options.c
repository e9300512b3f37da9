/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* The mount.cfs option parser: good strings, bad strings, and the
 * translation into cfs_mount_options. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cfs/image.h>
#include <cfs/mount.h>

#include "mount/mount-internal.h"
#include "test.h"

#define HEX "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define HEX2 "ff112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static int parse(struct cfs_mount_args *a, const char *s)
{
	memset(a, 0, sizeof(*a));
	return cfs_mount_args_parse(a, s, 0);
}

/* Must fail with EINVAL, leave @a cleared and set a one-line message
 * that contains @needle. */
static void bad(const char *s, const char *needle)
{
	struct cfs_mount_args a;
	const char *msg;
	int r;

	cfs_error_clear();
	r = parse(&a, s);
	msg = cfs_error_message();
	test_checks++;
	if (r != -EINVAL || !strstr(msg, needle) || strchr(msg, '\n') ||
	    a.objects_dir || a.upperdir || a.workdir) {
		test_failures++;
		fprintf(stderr, "bad(\"%s\"): returned %d, message \"%s\"\n", s,
			r, msg);
	}
	cfs_mount_args_clear(&a);
}

static void test_good(void)
{
	struct cfs_mount_args a;
	cfs_mount_options o;
	uint8_t want[CFS_DIGEST_SIZE];

	CHECK_OK(parse(&a, "objects=/var/lib/objects"));
	CHECK(a.objects_dir && strcmp(a.objects_dir, "/var/lib/objects") == 0);
	CHECK(!a.upperdir && !a.workdir && !a.have_digest);
	CHECK(a.verity == CFS_VERITY_AUTO && a.flags == 0);
	cfs_mount_args_to_options(&a, &o);
	CHECK(o.version == CFS_MOUNT_OPTIONS_VERSION);
	CHECK(o.objects_dir == a.objects_dir && !o.expected_digest);
	cfs_mount_args_clear(&a);
	CHECK(!a.objects_dir);

	/* basedir= is composefs' name for it */
	CHECK_OK(parse(&a, "basedir=/o"));
	CHECK(a.objects_dir && strcmp(a.objects_dir, "/o") == 0);
	cfs_mount_args_clear(&a);

	/* everything, with mount(8)'s noise around it */
	CHECK_OK(parse(&a, ",defaults,objects=/o,,upperdir=/u,workdir=/w,"
			   "digest=" HEX ",verity=require,rw,nosuid,nodev,"
			   "noexec,x-systemd.automount,nofail,comment=foo,"));
	CHECK(strcmp(a.upperdir, "/u") == 0 && strcmp(a.workdir, "/w") == 0);
	CHECK(a.have_digest && a.verity == CFS_VERITY_REQUIRE);
	CHECK(cfs_digest_from_hex(want, HEX) == 0 &&
	      memcmp(a.digest, want, sizeof(want)) == 0);
	CHECK(a.flags ==
	      (CFS_MOUNT_NOSUID | CFS_MOUNT_NODEV | CFS_MOUNT_NOEXEC));
	cfs_mount_args_to_options(&a, &o);
	CHECK(o.upperdir == a.upperdir && o.workdir == a.workdir);
	CHECK(o.expected_digest == a.digest && o.flags == a.flags);
	CHECK(o.verity == CFS_VERITY_REQUIRE);
	cfs_mount_args_clear(&a);

	/* the last of ro/rw wins; flags can be turned back off */
	CHECK_OK(parse(&a, "objects=/o,rw,ro,nosuid,suid,exec"));
	CHECK(a.flags == CFS_MOUNT_READONLY);
	cfs_mount_args_clear(&a);
	CHECK_OK(parse(&a, "ro,objects=/o,rw"));
	CHECK(a.flags == 0);
	cfs_mount_args_clear(&a);

	/* verity modes */
	CHECK_OK(parse(&a, "objects=/o,verity=off"));
	CHECK(a.verity == CFS_VERITY_OFF);
	cfs_mount_args_clear(&a);
	CHECK_OK(parse(&a, "objects=/o,verity=on"));
	CHECK(a.verity == CFS_VERITY_ON);
	cfs_mount_args_clear(&a);
	CHECK_OK(parse(&a, "objects=/o,verity=require,verity=auto"));
	CHECK(a.verity == CFS_VERITY_AUTO);
	cfs_mount_args_clear(&a);

	/* `fsverity digest` output; upper-case hex */
	CHECK_OK(parse(&a, "objects=/o,digest=sha256:" HEX));
	CHECK(a.have_digest && memcmp(a.digest, want, sizeof(want)) == 0);
	cfs_mount_args_clear(&a);
	CHECK_OK(parse(&a, "objects=/o,digest=00112233445566778899AABBCCDDEEFF"
			   "00112233445566778899AABBCCDDEEFF"));
	CHECK(a.have_digest && memcmp(a.digest, want, sizeof(want)) == 0);
	cfs_mount_args_clear(&a);

	/* quotes hold commas; '=' in a value is kept */
	CHECK_OK(parse(&a, "objects=\"/a,b=c\",upperdir=\"/u\",workdir=/w=x"));
	CHECK(a.objects_dir && strcmp(a.objects_dir, "/a,b=c") == 0);
	CHECK(a.upperdir && strcmp(a.upperdir, "/u") == 0);
	CHECK(a.workdir && strcmp(a.workdir, "/w=x") == 0);
	cfs_mount_args_clear(&a);

	/* the same value twice is fine (fstab and command line) */
	CHECK_OK(parse(&a, "objects=/o,basedir=/o,digest=" HEX ",digest=" HEX));
	CHECK(strcmp(a.objects_dir, "/o") == 0 && a.have_digest);
	cfs_mount_args_clear(&a);

	/* sloppy ignores what it does not know */
	memset(&a, 0, sizeof(a));
	CHECK_OK(cfs_mount_args_parse(&a, "objects=/o,frobnicate,size=3",
				      CFS_MOUNT_PARSE_SLOPPY));
	CHECK(a.objects_dir && strcmp(a.objects_dir, "/o") == 0);
	cfs_mount_args_clear(&a);

	/* clearing twice, and a zeroed struct, are fine */
	cfs_mount_args_clear(&a);
}

static void test_bad(void)
{
	char *huge;

	bad("", "objects=DIR");
	bad(NULL, "objects=DIR");
	bad("ro", "objects=DIR");
	bad("objects", "needs a value");
	bad("objects=", "needs a value");
	bad("basedir", "needs a value");
	bad("objects=/o,upperdir=/u", "upperdir= given alone");
	bad("objects=/o,workdir=/w", "workdir= given alone");
	bad("objects=/o,frobnicate", "unknown mount option 'frobnicate'");
	bad("objects=/o,size=3", "unknown mount option 'size=3'");
	bad("objects=/o,Objects=/p", "unknown mount option 'Objects=/p'");
	bad("objects=/a,objects=/b", "given twice");
	bad("objects=/a,basedir=/b", "given twice");
	bad("objects=/o,upperdir=/u,upperdir=/v,workdir=/w", "given twice");
	bad("objects=/o,digest=abc", "64 hex digits");
	bad("objects=/o,digest=" HEX "0", "64 hex digits");
	bad("objects=/o,digest=sha512:" HEX, "64 hex digits");
	bad("objects=/o,digest", "needs a value");
	bad("objects=/o,digest=" HEX ",digest=" HEX2, "different values");
	bad("objects=/o,verity=maybe", "expected verity=off, on, require");
	bad("objects=/o,verity", "expected verity=off, on, require");
	bad("objects=/o,ro=1", "'ro' takes no value");
	bad("objects=/o,nosuid=yes", "'nosuid' takes no value");
	bad("objects=\"/o", "unterminated quote");
	bad("objects=/o\"x\"", "quotes must enclose the whole value");
	bad("objects=\"/o\"x", "quotes must enclose the whole value");
	bad("\"objects\"=/o", "bad name");
	bad("=/o", "bad name");
	bad("objects=/o,upperdir=/u,workdir=/w,bogus\nline",
	    "unknown mount option");

	huge = malloc(CFS_MOUNT_OPTSTR_MAX + 2);
	if (huge) {
		memset(huge, 'x', CFS_MOUNT_OPTSTR_MAX + 1);
		huge[CFS_MOUNT_OPTSTR_MAX + 1] = '\0';
		bad(huge, "longer than");
		free(huge);
	}
}

static void test_options_struct(void)
{
	struct cfs_mount_args a;
	const char *msg;

	/* unknown parse flags are refused */
	memset(&a, 0, sizeof(a));
	CHECK_ERR(cfs_mount_args_parse(&a, "objects=/o", 1u << 7), EINVAL);

	/* cfs_mount() checks its options before touching anything */
	cfs_mount_options o = CFS_MOUNT_OPTIONS_INIT;
	CHECK_ERR(cfs_mount("/nonexistent.cfs", "/nonexistent", &o), EINVAL);
	msg = cfs_error_message();
	CHECK(strstr(msg, "object directory") != NULL);
	o.objects_dir = "/o";
	o.upperdir = "/u";
	CHECK_ERR(cfs_mount("/nonexistent.cfs", "/nonexistent", &o), EINVAL);
	o.upperdir = NULL;
	o.flags = 1u << 20;
	CHECK_ERR(cfs_mount("/nonexistent.cfs", "/nonexistent", &o), EINVAL);
	o.flags = 0;
	o.version = 99;
	CHECK_ERR(cfs_mount("/nonexistent.cfs", "/nonexistent", &o), EINVAL);
	CHECK_ERR(cfs_mount("/nonexistent.cfs", "/nonexistent", NULL), EINVAL);
	o.version = CFS_MOUNT_OPTIONS_VERSION;
	CHECK_ERR(cfs_mount("/nonexistent.cfs", "/nonexistent", &o), ENOENT);
	msg = cfs_error_message();
	CHECK(strcmp(msg,
		     "image /nonexistent.cfs: No such file or directory") == 0);
	CHECK_ERR(cfs_umount("/nonexistent"), ENOENT);
	/* a directory, not a mount point; a mount, but not an overlay */
	CHECK_ERR(cfs_umount("/proc/self"), EINVAL);
	CHECK(strstr(cfs_error_message(), "not a mount point") != NULL);
	CHECK_ERR(cfs_umount("/proc"), EINVAL);
	CHECK(strstr(cfs_error_message(), "not an overlay mount") != NULL);
}

int main(int argc, char **argv)
{
	TEST_RUN(argc, argv, test_good);
	TEST_RUN(argc, argv, test_bad);
	TEST_RUN(argc, argv, test_options_struct);
	return test_done();
}
