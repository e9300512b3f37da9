/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * mount.cfs: mount a composefs image, called by mount(8) for "-t cfs" as
 *     mount.cfs IMAGE TARGET [-sfnv] [-N NS] -o OPTIONS
 * with mount(8)'s exit codes (libmount's MNT_EX_*).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libmount.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/tool.h"
#include <cfs/cfs.h>

#include "mount/mount-internal.h"

#define PROG "mount.cfs"

enum {
	OPT_UMOUNT = 0x100,
	OPT_HELP,
	OPT_VERSION,
};

static const struct option long_options[] = {
	{ "options", required_argument, NULL, 'o' },
	{ "sloppy", no_argument, NULL, 's' },
	{ "fake", no_argument, NULL, 'f' },
	{ "no-mtab", no_argument, NULL, 'n' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "namespace", required_argument, NULL, 'N' },
	{ "types", required_argument, NULL, 't' },
	{ "umount", no_argument, NULL, OPT_UMOUNT },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: " PROG
		" IMAGE TARGET [-sfnv] [-N NS] -o objects=DIR[,OPTION...]\n"
		"       " PROG " --umount TARGET\n"
		"Mount the composefs image IMAGE at TARGET (as mount -t cfs does).\n"
		"\n"
		"Mount options (-o, comma-separated):\n"
		"  objects=DIR        the object directory (required; also basedir=)\n"
		"  upperdir=DIR,workdir=DIR  a writable overlay (same filesystem)\n"
		"  digest=HEX         the image's fs-verity digest must be HEX\n"
		"  verity=off|on|require|auto  check the objects' fs-verity digests\n"
		"                     (auto: require if the image has fs-verity)\n"
		"  ro, rw             read-only (always without upperdir) or not\n"
		"  nosuid, nodev, noexec  as for any mount\n"
		"\n"
		"Options:\n"
		"  -o, --options OPTS mount options (may be repeated)\n"
		"  -s, --sloppy       ignore unknown mount options\n"
		"  -f, --fake         check the options, mount nothing\n"
		"  -n, --no-mtab      accepted (there is no mtab to write)\n"
		"  -v, --verbose      say what was mounted\n"
		"  -N, --namespace NS mount in the mount namespace of PID or file NS\n"
		"  -t, --types TYPE   accepted (mount(8) passes cfs.SUBTYPE)\n"
		"      --umount       unmount the overlay at TARGET\n"
		"      --help         show this help and exit\n"
		"      --version      show the version and exit\n"
		"\n"
		"Exit status (as mount(8)): 0 success, 1 usage error, 2 system error,\n"
		"32 mount failure.\n");
}

#define usage_error(...) tool_usage_error(PROG, MNT_EX_USAGE, __VA_ARGS__)

/* A library failure: its one-line message, and mount(8)'s exit code. */
static int failed(int r)
{
	fprintf(stderr, PROG ": %s\n", cfs_error_message());
	return r == -ENOMEM ? MNT_EX_SYSERR : MNT_EX_FAIL;
}

/* Append @more to the comma-separated @all (-o may be repeated). */
static int add_options(char **all, const char *more)
{
	char *joined;

	if (asprintf(&joined, "%s%s%s", *all ? *all : "", *all ? "," : "",
		     more) < 0) {
		fprintf(stderr, PROG ": out of memory\n");
		return MNT_EX_SYSERR;
	}
	free(*all);
	*all = joined;
	return 0;
}

/* -N: a PID or the path of a mount namespace file. */
static int enter_namespace(const char *ns)
{
	char path[64];
	const char *p = ns;
	int fd;

	if (*ns && strspn(ns, "0123456789") == strlen(ns)) {
		snprintf(path, sizeof(path), "/proc/%s/ns/mnt", ns);
		p = path;
	}
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNS) < 0) {
		fprintf(stderr, PROG ": namespace %s: %s\n", ns,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return MNT_EX_FAIL;
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct cfs_mount_args args = { 0 };
	cfs_mount_options opts;
	unsigned int parse_flags = 0;
	bool fake = false, verbose = false, umount = false;
	const char *ns = NULL;
	char *optstr = NULL;
	int c, r, ret;

	while ((c = getopt_long(argc, argv, "o:sfnvN:t:", long_options,
				NULL)) != -1) {
		switch (c) {
		case 'o':
			ret = add_options(&optstr, optarg);
			if (ret)
				return ret;
			break;
		case 's':
			parse_flags |= CFS_MOUNT_PARSE_SLOPPY;
			break;
		case 'f':
			fake = true;
			break;
		case 'n':
		case 't':
			break;
		case 'v':
			verbose = true;
			break;
		case 'N':
			ns = optarg;
			break;
		case OPT_UMOUNT:
			umount = true;
			break;
		case OPT_HELP:
			usage(stdout);
			return MNT_EX_SUCCESS;
		case OPT_VERSION:
			printf(PROG " %s\n", cfs_version());
			return MNT_EX_SUCCESS;
		default:
			/* getopt printed the reason. */
			fprintf(stderr, "Try '" PROG
					" --help' for more information.\n");
			return MNT_EX_USAGE;
		}
	}

	if (umount) {
		if (argc - optind != 1)
			return usage_error("--umount takes one TARGET");
		if (optstr)
			return usage_error("--umount takes no -o");
		if (ns && (ret = enter_namespace(ns)))
			return ret;
		if (fake)
			return MNT_EX_SUCCESS;
		r = cfs_umount(argv[optind]);
		if (r < 0)
			return failed(r);
		if (verbose)
			printf(PROG ": unmounted %s\n", argv[optind]);
		return MNT_EX_SUCCESS;
	}

	if (argc - optind != 2)
		return usage_error(
			"expected IMAGE and TARGET, got %d argument%s",
			argc - optind, argc - optind == 1 ? "" : "s");
	r = cfs_mount_args_parse(&args, optstr, parse_flags);
	free(optstr);
	if (r < 0) {
		if (r == -ENOMEM)
			return failed(r);
		return usage_error("%s", cfs_error_message());
	}
	cfs_mount_args_to_options(&args, &opts);
	ret = MNT_EX_SUCCESS;
	if (ns)
		ret = enter_namespace(ns);
	if (!ret && !fake) {
		r = cfs_mount(argv[optind], argv[optind + 1], &opts);
		if (r < 0)
			ret = failed(r);
	}
	if (!ret && verbose)
		printf(PROG ": %s %s on %s (%s)\n", argv[optind],
		       fake ? "would be mounted" : "mounted", argv[optind + 1],
		       opts.upperdir && !(opts.flags & CFS_MOUNT_READONLY) ?
			       "rw" :
			       "ro");
	cfs_mount_args_clear(&args);
	return ret;
}
