/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * cfs-mkcomposefs: the command line of composefs' mkcomposefs (1.0.8) on
 * our writer, for what calls mkcomposefs by name: containers/storage's
 * use_composefs runs "mkcomposefs --from-file - -" (a composefs-dump(5)
 * on stdin, the image on stdout), composefs-rs the same. The image is
 * byte for byte mkcomposefs 1.0.8's (format versions 0 and 1); what
 * this writer cannot do like mkcomposefs (other versions, the options
 * that change the tree) is refused, never done differently. Installed under
 * our own name; the name mkcomposefs is the installer's choice
 * (docs/podman.md).
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cfs/cfs.h>

#include "tools/tool.h"

#define PROG "cfs-mkcomposefs"

/* mkcomposefs 1.0.8's defaults; the versions this writer knows are
 * CFS_FORMAT_MIN to CFS_FORMAT_MAX. */
#define VERSION_MIN 0
#define VERSION_MAX 1

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: " PROG " [OPTION]... SOURCE IMAGE\n"
		"       " PROG " --print-digest-only [OPTION]... SOURCE\n"
		"Write the composefs image IMAGE ('-' for stdout) of SOURCE, a\n"
		"directory or, with --from-file, a composefs-dump(5) file ('-'\n"
		"for stdin), as composefs' mkcomposefs 1.0.8 does, byte for byte.\n"
		"\n"
		"Options:\n"
		"  --from-file          SOURCE is a composefs-dump(5) file\n"
		"  --digest-store=DIR   store the contents of SOURCE's regular\n"
		"                       files in DIR, named by fs-verity digest\n"
		"                       (directory sources)\n"
		"  --print-digest       print the image's fs-verity digest\n"
		"  --print-digest-only  print it, and write no image\n"
		"  --min-version=N      lowest format version (default %d)\n"
		"  --max-version=N      highest format version (default %d),\n"
		"                       used if the tree needs it\n"
		"  --threads=N          accepted; output never depends on it\n"
		"  --help               show this help and exit\n"
		"  --version            show the version and exit\n"
		"Refused (this writer cannot match mkcomposefs there):\n"
		"  --use-epoch, --skip-devices, --skip-xattrs, --user-xattrs,\n"
		"  format versions other than %d to %d.\n",
		VERSION_MIN, VERSION_MAX, CFS_FORMAT_MIN, CFS_FORMAT_MAX);
}

#define usage_error(...) tool_usage_error(PROG, 2, __VA_ARGS__)

static const char *error_text(int r)
{
	return cfs_error_message()[0] ? cfs_error_message() : strerror(-r);
}

/* A format version option's value into *@out (a usage error unless
 * this writer knows it). */
static int parse_version(const char *opt, const char *arg, unsigned int *out)
{
	char *end;
	long v = strtol(arg, &end, 10);

	if (*arg == '\0' || *end)
		return usage_error("--%s: '%s' is not a number", opt, arg);
	if (v < CFS_FORMAT_MIN || v > CFS_FORMAT_MAX)
		return usage_error("--%s=%ld: this writer knows format "
				   "versions %d to %d",
				   opt, v, CFS_FORMAT_MIN, CFS_FORMAT_MAX);
	*out = (unsigned int)v;
	return 0;
}

/* --print-digest-only: the image goes nowhere. */
static int discard(void *opaque, const void *buf, size_t len)
{
	(void)opaque;
	(void)buf;
	(void)len;
	return 0;
}

enum {
	OPT_FROM_FILE = 256,
	OPT_DIGEST_STORE,
	OPT_PRINT_DIGEST,
	OPT_PRINT_DIGEST_ONLY,
	OPT_MIN_VERSION,
	OPT_MAX_VERSION,
	OPT_THREADS,
	OPT_REFUSED,
	OPT_HELP,
	OPT_VERSION,
};

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "from-file", no_argument, NULL, OPT_FROM_FILE },
		{ "digest-store", required_argument, NULL, OPT_DIGEST_STORE },
		{ "print-digest", no_argument, NULL, OPT_PRINT_DIGEST },
		{ "print-digest-only", no_argument, NULL,
		  OPT_PRINT_DIGEST_ONLY },
		{ "min-version", required_argument, NULL, OPT_MIN_VERSION },
		{ "max-version", required_argument, NULL, OPT_MAX_VERSION },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "use-epoch", no_argument, NULL, OPT_REFUSED },
		{ "skip-devices", no_argument, NULL, OPT_REFUSED },
		{ "skip-xattrs", no_argument, NULL, OPT_REFUSED },
		{ "user-xattrs", no_argument, NULL, OPT_REFUSED },
		{ "help", no_argument, NULL, OPT_HELP },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	cfs_convert_options opts = CFS_CONVERT_OPTIONS_INIT;
	cfs_write_options wopts = CFS_WRITE_OPTIONS_INIT;
	bool from_file = false, print_digest = false, digest_only = false;
	const char *store = NULL, *image = NULL;
	char *source = NULL, hex[CFS_DIGEST_HEX_SIZE + 1];
	uint8_t digest[CFS_DIGEST_SIZE];
	cfs_inode *root = NULL;
	unsigned int threads;
	int c, r;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_FROM_FILE:
			from_file = true;
			break;
		case OPT_DIGEST_STORE:
			store = optarg;
			break;
		case OPT_PRINT_DIGEST:
			print_digest = true;
			break;
		case OPT_PRINT_DIGEST_ONLY:
			digest_only = true;
			break;
		case OPT_MIN_VERSION:
			if (parse_version("min-version", optarg,
					  &wopts.min_format))
				return 2;
			break;
		case OPT_MAX_VERSION:
			if (parse_version("max-version", optarg,
					  &wopts.max_format))
				return 2;
			break;
		case OPT_THREADS:
			if (tool_parse_threads(optarg, &threads) < 0)
				return usage_error("--threads: '%s' is not "
						   "1 to 1024",
						   optarg);
			break;
		case OPT_REFUSED:
			return usage_error("%s: not supported (the image "
					   "would differ from mkcomposefs')",
					   argv[optind - 1]);
		case OPT_HELP:
			usage(stdout);
			return 0;
		case OPT_VERSION:
			printf(PROG " %s (the image of mkcomposefs 1.0.8)\n",
			       cfs_version());
			return 0;
		default:
			return usage_error("unknown option '%s'",
					   argv[optind - 1]);
		}
	}
	if (argc - optind != (digest_only ? 1 : 2))
		return usage_error("%s", digest_only ?
						 "--print-digest-only takes "
						 "SOURCE alone" :
						 "SOURCE and IMAGE are needed");
	if (!digest_only)
		image = argv[optind + 1];
	if (wopts.min_format > wopts.max_format)
		return usage_error("--min-version=%u is above --max-version=%u",
				   wopts.min_format, wopts.max_format);
	if (from_file && store)
		return usage_error("%s", "--digest-store with --from-file: a "
					 "dump names its objects, there is "
					 "nothing to store");
	if (image && strcmp(image, "-") == 0 && print_digest)
		return usage_error("%s", "IMAGE '-' and --print-digest would "
					 "share stdout");
	if (image && strcmp(image, "-") == 0 && isatty(STDOUT_FILENO)) {
		fprintf(stderr,
			PROG ": refusing to write an image to a terminal\n");
		return 1;
	}
	if (asprintf(&source, "%s:%s", from_file ? "dump" : "dir",
		     argv[optind]) < 0)
		return 1;
	opts.objects_dir = store;
	r = cfs_convert_tree(&root, source, &opts, NULL);
	if (r == 0 && !image)
		r = cfs_image_write(root, &wopts, discard, NULL, digest);
	else if (r == 0 && strcmp(image, "-") == 0)
		r = cfs_image_write_fd(root, &wopts, STDOUT_FILENO, digest);
	else if (r == 0)
		r = cfs_image_write_file(root, &wopts, image, digest, NULL);
	cfs_inode_unref(root);
	free(source);
	if (r < 0) {
		fprintf(stderr, PROG ": %s\n", error_text(r));
		return 1;
	}
	cfs_digest_to_hex(digest, hex);
	if (print_digest || digest_only)
		printf("%s\n", hex);
	if (fflush(stdout) != 0) {
		fprintf(stderr, PROG ": stdout: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}
