/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* oci2cfs: convert a source into a composefs image and an object store. */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "tools/tool.h"
#include <cfs/cfs.h>

#define PROG "oci2cfs"

#define OCI2CFS_OPTIONS(X)                                                     \
	TOOL_COMMON_OPTIONS(X)                                                 \
	X("objects", required_argument, OBJECTS)                               \
	X("dump", required_argument, DUMP)                                     \
	X("print-digest", no_argument, PRINT_DIGEST)                           \
	X("tag", required_argument, TAG)                                       \
	X("format-version", required_argument, FORMAT_VERSION)                 \
	X("canonical", no_argument, CANONICAL)                                 \
	X("sign-key", required_argument, SIGN_KEY)                             \
	X("sign-cert", required_argument, SIGN_CERT)                           \
	X("image", no_argument, IMAGE)                                         \
	X("zstd-chunked", no_argument, ZSTD_CHUNKED)

TOOL_OPTIONS(OCI2CFS_OPTIONS);

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: " PROG " [OPTION]... SOURCE OUTPUT\n"
		"       " PROG
		" seal oci:PATH[:REF] [--tag TAG] [--zstd-chunked]\n"
		"                    [--sign-key KEY.pem --sign-cert CERT.pem] [--json]\n"
		"       " PROG
		" artifact [--image] SOURCE OUTPUT-LAYOUT [--sign-key KEY.pem\n"
		"                    --sign-cert CERT.pem] [--json]\n"
		"Convert SOURCE into the composefs image OUTPUT ('-' for stdout).\n"
		"seal: write into the layout a manifest that carries the composefs\n"
		"digests of the composefs OCI sealing spec (" CFS_SPEC_MERGED
		",\n" CFS_SPEC_CONFIG ", signed with --sign-key) and the\n"
		"legacy per-layer ones (" CFS_ANNOTATION_LAYER "), tagged TAG\n"
		"(default: the source's tag); print its digest. With --zstd-chunked\n"
		"its layers are rewritten as zstd:chunked, with fs-verity digests in\n"
		"their TOCs (for partial pulls by podman, CRI-O and cfs-store).\n"
		"artifact: write into the OCI layout OUTPUT-LAYOUT the sealing spec's\n"
		"metadata artifact of SOURCE (" CFS_SPEC_ARTIFACT_TYPE ": its\n"
		"digests, signed with --sign-key), or with --image one holding its\n"
		"composefs image (" CFS_ARTIFACT_TYPE "); the subject is\n"
		"SOURCE's manifest, the referrers tag sha256-<subject hex>; print\n"
		"its digest.\n"
		"\n"
		"Sources:\n"
		"  dir:PATH           a directory tree (hardlinks kept)\n"
		"  dump:FILE          a composefs-dump(5) text file\n"
		"  cfs:IMAGE          an existing composefs image (e.g. to --dump it)\n"
		"  oci:PATH[:REF]     an OCI image layout (REF: tag or manifest digest)\n"
		"  oci-archive:FILE[:REF]     an OCI image layout in a tar file\n"
		"  docker-archive:FILE[:REF]  'docker save' output (REF: name:tag or @N)\n"
		"\n"
		"Options:\n"
		"  --objects DIR      store file contents in DIR as XX/<62 hex>,\n"
		"                     named by their fs-verity digest\n"
		"  --dump FILE        also write the tree as composefs-dump(5) text\n"
		"                     ('-' for stdout)\n"
		"  --print-digest     print the image's fs-verity digest (image id)\n"
		"  --json             print a JSON report on stdout\n"
		"  --threads N        threads to use (1-1024; today an OCI layer always\n"
		"                     uses two: decompression and the rest); output\n"
		"                     never depends on it\n"
		"  --canonical        write the canonical tree of the composefs OCI\n"
		"                     sealing spec (the erofs.v1 digests): root as\n"
		"                     /usr, /run empty, whole-second mtimes, no xattr\n"
		"                     but security.capability; format version 1\n"
		"  --format-version N composefs format N (0 or 1) whatever the tree\n"
		"                     (mkcomposefs --min-version=N --max-version=N);\n"
		"                     default: 0, or 1 for a tree with whiteouts\n"
		"  --platform OS/ARCH[/VARIANT]  image to pick from an index\n"
		"                     (default: the host's)\n"
		"  --tag TAG          seal: tag of the sealed manifest\n"
		"  --zstd-chunked     seal: layers as zstd:chunked, into the layout\n"
		"  --image            artifact: ours, holding the composefs image\n"
		"  --sign-key KEY.pem seal, artifact: sign the spec's digests with this key\n"
		"  --sign-cert CERT.pem  seal, artifact: the key's certificate (fs-verity\n"
		"                     PKCS#7, as 'fsverity sign' makes)\n"
		"  --help             show this help and exit\n"
		"  --version          show the version and exit\n");
}

#define usage_error(...) tool_usage_error(PROG, 2, __VA_ARGS__)

/* The library's message for @r, else strerror. */
static const char *error_text(int r)
{
	return cfs_error_message()[0] ? cfs_error_message() : strerror(-r);
}

/* Print @o as pretty JSON on stdout and free it. */
static void put_json(json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(
			       o, JSON_C_TO_STRING_PRETTY |
					  JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

/* Exit status after the last output: stdout must reach its file. */
static int finish_stdout(void)
{
	if (fflush(stdout) != 0) {
		fprintf(stderr, PROG ": stdout: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

struct progress_state {
	struct timespec start;
	bool shown;
};

/* One line, redrawn in place: only ever called when stderr is a tty. */
static void show_progress(void *opaque, const cfs_progress *p)
{
	struct progress_state *ps = opaque;
	struct timespec now;
	double secs, frac = 0;
	char bar[31];
	int filled;

	clock_gettime(CLOCK_MONOTONIC, &now);
	secs = (double)(now.tv_sec - ps->start.tv_sec) +
	       (double)(now.tv_nsec - ps->start.tv_nsec) / 1e9;
	if (p->input_total)
		frac = (double)p->input_bytes / (double)p->input_total;
	if (frac > 1)
		frac = 1;
	filled = (int)(frac * 30);
	memset(bar, '#', (size_t)filled);
	memset(bar + filled, '.', (size_t)(30 - filled));
	bar[30] = '\0';
	fprintf(stderr,
		"\r[%s] layer %zu/%zu  %.1f/%.1f MiB  %llu objects  %.1f MiB/s ",
		bar, p->layer, p->n_layers, (double)p->input_bytes / 1048576.0,
		(double)p->input_total / 1048576.0,
		(unsigned long long)p->objects,
		secs > 0 ? (double)p->input_bytes / 1048576.0 / secs : 0.0);
	if (p->done)
		fputc('\n', stderr);
	fflush(stderr);
	ps->shown = !p->done;
}

static void raise_fd_limit(void)
{
	/* Deep trees hold one descriptor per level. */
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int write_dump(cfs_inode *root, const char *path)
{
	FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "we");
	int r;

	if (!f) {
		fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
		return -errno;
	}
	r = cfs_dump_write(root, f);
	if (f != stdout && fclose(f) != 0 && r == 0)
		r = -errno;
	else if (f == stdout && fflush(f) != 0 && r == 0)
		r = -errno;
	if (r < 0)
		fprintf(stderr, PROG ": %s: %s\n", path, error_text(r));
	return r;
}

/* This process's own I/O, as the kernel counts it (/proc/self/io), so
 * that benchmarks can tell what a conversion really wrote. */
static json_object *io_report(void)
{
	json_object *io = json_object_new_object();
	FILE *f = fopen("/proc/self/io", "re");
	char key[64];
	long long v;

	while (f && fscanf(f, "%63[^:]: %lld\n", key, &v) == 2)
		if (strcmp(key, "read_bytes") == 0 ||
		    strcmp(key, "write_bytes") == 0 ||
		    strcmp(key, "cancelled_write_bytes") == 0)
			json_object_object_add(io, key,
					       json_object_new_int64(v));
	if (f)
		fclose(f);
	return io;
}

static void print_json(const char *source, const char *output,
		       const cfs_convert_stats *s, const char *digest_hex,
		       uint64_t image_size, double seconds)
{
	json_object *o = json_object_new_object();
	json_object *inodes = json_object_new_object();
	json_object *objects = json_object_new_object();

	json_object *layers = json_object_new_array();

	json_object_object_add(o, "source", json_object_new_string(source));
	json_object_object_add(o, "output", json_object_new_string(output));
	if (s->manifest_digest[0])
		json_object_object_add(
			o, "manifest_digest",
			json_object_new_string(s->manifest_digest));
	if (s->config_digest[0])
		json_object_object_add(
			o, "config_digest",
			json_object_new_string(s->config_digest));
	for (size_t i = 0; i < s->n_layers; i++) {
		const cfs_layer_info *l = &s->layers[i];
		json_object *lo = json_object_new_object();
		json_object_object_add(lo, "digest",
				       json_object_new_string(l->digest));
		json_object_object_add(lo, "media_type",
				       json_object_new_string(l->media_type));
		json_object_object_add(
			lo, "compressed_bytes",
			json_object_new_int64((int64_t)l->compressed_bytes));
		json_object_object_add(
			lo, "uncompressed_bytes",
			json_object_new_int64((int64_t)l->uncompressed_bytes));
		json_object_object_add(
			lo, "entries",
			json_object_new_int64((int64_t)l->entries));
		json_object_array_add(layers, lo);
	}
	if (s->n_layers)
		json_object_object_add(o, "layers", layers);
	else
		json_object_put(layers);
	json_object_object_add(inodes, "directories",
			       json_object_new_int64((int64_t)s->dirs));
	json_object_object_add(inodes, "files",
			       json_object_new_int64((int64_t)s->files));
	json_object_object_add(inodes, "symlinks",
			       json_object_new_int64((int64_t)s->symlinks));
	json_object_object_add(inodes, "chardevs",
			       json_object_new_int64((int64_t)s->chardevs));
	json_object_object_add(inodes, "blockdevs",
			       json_object_new_int64((int64_t)s->blockdevs));
	json_object_object_add(inodes, "fifos",
			       json_object_new_int64((int64_t)s->fifos));
	json_object_object_add(inodes, "sockets",
			       json_object_new_int64((int64_t)s->sockets));
	json_object_object_add(o, "inodes", inodes);
	json_object_object_add(o, "hardlinks",
			       json_object_new_int64((int64_t)s->hardlinks));
	json_object_object_add(o, "file_bytes",
			       json_object_new_int64((int64_t)s->file_bytes));
	json_object_object_add(o, "inline_files",
			       json_object_new_int64((int64_t)s->inline_files));
	json_object_object_add(
		o, "xattrs_dropped",
		json_object_new_int64((int64_t)s->xattrs_dropped));
	json_object_object_add(objects, "new",
			       json_object_new_int64((int64_t)s->objects_new));
	json_object_object_add(
		objects, "reused",
		json_object_new_int64((int64_t)s->objects_reused));
	json_object_object_add(
		objects, "new_bytes",
		json_object_new_int64((int64_t)s->objects_new_bytes));
	json_object_object_add(
		objects, "reused_bytes",
		json_object_new_int64((int64_t)s->objects_reused_bytes));
	json_object_object_add(o, "objects", objects);
	json_object_object_add(o, "image_size",
			       json_object_new_int64((int64_t)image_size));
	json_object_object_add(o, "image_digest",
			       json_object_new_string(digest_hex));
	json_object_object_add(o, "seconds", json_object_new_double(seconds));
	json_object_object_add(o, "io", io_report());
	put_json(o);
}

static int seal_main(const char *source, const cfs_seal_options *opts,
		     bool json)
{
	cfs_seal_result res = CFS_SEAL_RESULT_INIT;
	int r = cfs_seal(source, opts, &res);

	if (r < 0) {
		fprintf(stderr, PROG ": seal: %s\n", error_text(r));
		return 1;
	}
	if (!res.canonical[0])
		fprintf(stderr,
			PROG ": seal: note: %s has no /usr, so no canonical "
			     "tree: only the legacy " CFS_ANNOTATION_MERGED
			     " keys were written\n",
			source);
	if (json) {
		json_object *o = json_object_new_object();
		json_object *layers = json_object_new_array();

		json_object_object_add(o, "source",
				       json_object_new_string(source));
		json_object_object_add(
			o, "manifest_digest",
			json_object_new_string(res.manifest_digest));
		json_object_object_add(
			o, "manifest_size",
			json_object_new_int64((int64_t)res.manifest_size));
		json_object_object_add(
			o, "source_manifest_digest",
			json_object_new_string(res.source_manifest_digest));
		json_object_object_add(
			o, "config_digest",
			json_object_new_string(res.config_digest));
		json_object_object_add(
			o, "tag",
			res.tag ? json_object_new_string(res.tag) : NULL);
		json_object_object_add(o, CFS_ANNOTATION_MERGED,
				       json_object_new_string(res.merged));
		json_object_object_add(
			o, CFS_SPEC_MERGED,
			res.canonical[0] ?
				json_object_new_string(res.canonical) :
				NULL);
		json_object_object_add(
			o, CFS_SPEC_CONFIG,
			res.canonical[0] ?
				json_object_new_string(res.config_verity) :
				NULL);
		json_object_object_add(
			o, "signed", json_object_new_boolean(res.sig_written));
		for (size_t i = 0; i < res.n_layers; i++) {
			json_object *l = json_object_new_object();
			json_object_object_add(
				l, "digest",
				json_object_new_string(res.layers[i].digest));
			json_object_object_add(
				l, CFS_ANNOTATION_LAYER,
				json_object_new_string(
					res.layers[i].composefs));
			json_object_array_add(layers, l);
		}
		json_object_object_add(o, "layers", layers);
		put_json(o);
	} else {
		printf("%s\n", res.manifest_digest);
	}
	cfs_seal_result_clear(&res);
	return finish_stdout();
}

/*
 * Report an artifact made: its manifest digest, or with --json what both
 * kinds report, then the members of @extra (taken; its keys are those
 * of one kind).
 */
static int artifact_done(const char *source, const char *output, bool json,
			 const char *digest, uint64_t size, const char *subject,
			 const char *tag, json_object *extra)
{
	json_object *o = json_object_new_object();

	if (!json) {
		json_object_put(extra);
		json_object_put(o);
		printf("%s\n", digest);
		return finish_stdout();
	}
	json_object_object_add(o, "source", json_object_new_string(source));
	json_object_object_add(o, "output", json_object_new_string(output));
	json_object_object_add(o, "manifest_digest",
			       json_object_new_string(digest));
	json_object_object_add(o, "manifest_size",
			       json_object_new_int64((int64_t)size));
	json_object_object_add(o, "subject", json_object_new_string(subject));
	json_object_object_add(o, "tag", json_object_new_string(tag));
	json_object_object_foreach(extra, key, val)
		json_object_object_add(o, key, json_object_get(val));
	json_object_put(extra);
	put_json(o);
	return finish_stdout();
}

/* oci2cfs artifact: the sealing spec's metadata artifact. */
static int spec_artifact_main(const char *source, const char *output,
			      const cfs_artifact_options *opts, bool json)
{
	cfs_spec_artifact_result res = CFS_SPEC_ARTIFACT_RESULT_INIT;
	int r = cfs_spec_artifact(source, output, opts, &res);
	json_object *x;

	if (r < 0) {
		fprintf(stderr, PROG ": artifact: %s\n", error_text(r));
		return 1;
	}
	x = json_object_new_object();
	json_object_object_add(x, CFS_SPEC_MANIFEST,
			       json_object_new_string(res.manifest_verity));
	json_object_object_add(x, CFS_SPEC_CONFIG,
			       json_object_new_string(res.config_verity));
	json_object_object_add(x, CFS_SPEC_MERGED,
			       json_object_new_string(res.merged));
	json_object_object_add(x, "signed",
			       json_object_new_boolean(res.sig_written));
	return artifact_done(source, output, json, res.manifest_digest,
			     res.manifest_size, res.subject_digest, res.tag, x);
}

/* oci2cfs artifact --image: ours, with the composefs image. */
static int artifact_main(const char *source, const char *output,
			 const cfs_artifact_options *opts, bool json)
{
	cfs_artifact_result res = CFS_ARTIFACT_RESULT_INIT;
	int r = cfs_artifact(source, output, opts, &res);
	json_object *x;

	if (r < 0) {
		fprintf(stderr, PROG ": artifact: %s\n", error_text(r));
		return 1;
	}
	x = json_object_new_object();
	json_object_object_add(x, "image_digest",
			       json_object_new_string(res.image_digest));
	json_object_object_add(x, "image_size",
			       json_object_new_int64((int64_t)res.image_size));
	json_object_object_add(x, CFS_ANNOTATION_MERGED,
			       json_object_new_string(res.merged));
	return artifact_done(source, output, json, res.manifest_digest,
			     res.manifest_size, res.subject_digest, res.tag, x);
}

int main(int argc, char **argv)
{
	cfs_convert_options opts = CFS_CONVERT_OPTIONS_INIT;
	cfs_write_options wopts = CFS_WRITE_OPTIONS_INIT;
	cfs_convert_stats stats = CFS_CONVERT_STATS_INIT;
	const char *dump_path = NULL, *source, *output;
	bool print_digest = false, json = false, with_image = false;
	bool zstd_chunked = false;
	const char *tag = NULL, *sign_key = NULL, *sign_cert = NULL;
	uint8_t digest[CFS_DIGEST_SIZE];
	char hex[CFS_DIGEST_HEX_SIZE + 1];
	uint64_t image_size = 0;
	struct timespec t0, t1;
	cfs_inode *root = NULL;
	int c, r;

	while ((c = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
		switch (c) {
		case OPT_OBJECTS:
			opts.objects_dir = optarg;
			break;
		case OPT_DUMP:
			dump_path = optarg;
			break;
		case OPT_PRINT_DIGEST:
			print_digest = true;
			break;
		case OPT_JSON:
			json = true;
			break;
		case OPT_THREADS:
			if (tool_parse_threads(optarg, &opts.threads) < 0)
				return usage_error("invalid thread count '%s'",
						   optarg);
			break;
		case OPT_PLATFORM:
			opts.platform = optarg;
			break;
		case OPT_TAG:
			tag = optarg;
			break;
		case OPT_FORMAT_VERSION:
			if (strcmp(optarg, "0") != 0 &&
			    strcmp(optarg, "1") != 0)
				return usage_error(
					"--format-version '%s': 0 or "
					"1",
					optarg);
			wopts.min_format = wopts.max_format =
				(unsigned int)(optarg[0] - '0');
			opts.write = &wopts;
			break;
		case OPT_CANONICAL:
			opts.flags |= CFS_CONVERT_CANONICAL;
			break;
		case OPT_SIGN_KEY:
			sign_key = optarg;
			break;
		case OPT_SIGN_CERT:
			sign_cert = optarg;
			break;
		case OPT_IMAGE:
			with_image = true;
			break;
		case OPT_ZSTD_CHUNKED:
			zstd_chunked = true;
			break;
		default: /* --help, --version, or a bad option */
			return tool_option_end(PROG, usage, c == OPT_HELP,
					       c == OPT_VERSION);
		}
	}
	if (optind < argc && strcmp(argv[optind], "seal") == 0) {
		cfs_seal_options so = CFS_SEAL_OPTIONS_INIT;

		if (argc - optind != 2)
			return usage_error("%s",
					   argc - optind < 2 ?
						   "seal: missing SOURCE" :
						   "seal: too many "
						   "arguments");
		if (opts.objects_dir || dump_path || print_digest ||
		    opts.write || opts.flags || with_image)
			return usage_error("%s", "seal takes only --tag, "
						 "--zstd-chunked, "
						 "--sign-key, --sign-cert, "
						 "--json, --platform and "
						 "--threads");
		if (!sign_key != !sign_cert)
			return usage_error("%s", "seal: --sign-key and "
						 "--sign-cert go together");
		so.tag = tag;
		so.flags = zstd_chunked ? CFS_SEAL_ZSTD_CHUNKED : 0;
		so.sign_key = sign_key;
		so.sign_cert = sign_cert;
		so.platform = opts.platform;
		so.threads = opts.threads;
		raise_fd_limit();
		return seal_main(argv[optind + 1], &so, json);
	}
	if (optind < argc && strcmp(argv[optind], "artifact") == 0) {
		cfs_artifact_options ao = CFS_ARTIFACT_OPTIONS_INIT;

		if (argc - optind != 3)
			return usage_error("%s",
					   "artifact: SOURCE OUTPUT-LAYOUT "
					   "expected");
		if (opts.objects_dir || dump_path || print_digest || tag ||
		    opts.write || opts.flags || zstd_chunked)
			return usage_error("%s", "artifact takes only --image, "
						 "--sign-key, --sign-cert, "
						 "--json, --platform and "
						 "--threads");
		if (!sign_key != !sign_cert)
			return usage_error("%s", "artifact: --sign-key and "
						 "--sign-cert go together");
		if (with_image && sign_key)
			return usage_error("%s", "artifact --image is not "
						 "signed (sign the spec's "
						 "artifact)");
		ao.platform = opts.platform;
		ao.threads = opts.threads;
		ao.sign_key = sign_key;
		ao.sign_cert = sign_cert;
		raise_fd_limit();
		if (with_image)
			return artifact_main(argv[optind + 1], argv[optind + 2],
					     &ao, json);
		return spec_artifact_main(argv[optind + 1], argv[optind + 2],
					  &ao, json);
	}
	if (with_image)
		return usage_error("%s", "--image applies to artifact only");
	if (tag || sign_key || sign_cert || zstd_chunked)
		return usage_error("%s",
				   "--tag, --zstd-chunked, --sign-key and "
				   "--sign-cert apply to seal only");
	if ((opts.flags & CFS_CONVERT_CANONICAL) && opts.write &&
	    wopts.max_format < CFS_CANONICAL_FORMAT)
		return usage_error("%s", "--canonical writes format version 1");
	if ((opts.flags & CFS_CONVERT_CANONICAL) && !opts.write) {
		wopts.min_format = CFS_CANONICAL_FORMAT;
		opts.write = &wopts;
	}
	if (argc - optind != 2)
		return usage_error("%s", argc - optind < 2 ?
						 "missing SOURCE or OUTPUT" :
						 "too many arguments");
	source = argv[optind];
	output = argv[optind + 1];
	if (strcmp(output, "-") == 0 && isatty(STDOUT_FILENO)) {
		fprintf(stderr, PROG
			": refusing to write a binary image to a terminal\n");
		return 1;
	}
	if (strcmp(output, "-") == 0 &&
	    (json || print_digest ||
	     (dump_path && strcmp(dump_path, "-") == 0)))
		return usage_error("%s", "OUTPUT '-' cannot share stdout with "
					 "--json, --print-digest or --dump -");
	raise_fd_limit();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* A progress bar only for a person watching, never in logs. */
	struct progress_state ps = { .start = t0 };
	if (isatty(STDERR_FILENO)) {
		opts.progress = show_progress;
		opts.progress_opaque = &ps;
	}

	if (strcmp(output, "-") == 0) {
		r = cfs_convert_tree(&root, source, &opts, &stats);
		if (r == 0 && opts.objects_dir)
			fprintf(stderr, PROG
				": note: objects are not synced when writing to stdout\n");
		if (r == 0)
			r = cfs_image_write_fd(root, opts.write, STDOUT_FILENO,
					       digest);
	} else if (dump_path) {
		/* The tree is needed twice: convert once, write both. */
		r = cfs_convert_tree(&root, source, &opts, &stats);
		if (r == 0)
			r = cfs_image_write_file(root, opts.write, output,
						 digest, &image_size);
	} else {
		r = cfs_convert(source, output, &opts, &stats, digest,
				&image_size);
	}
	if (r < 0) {
		if (ps.shown)
			fputc('\n', stderr);
		fprintf(stderr, PROG ": %s\n", error_text(r));
		cfs_inode_unref(root);
		cfs_convert_stats_clear(&stats);
		return 1;
	}
	if (dump_path && write_dump(root, dump_path) < 0) {
		cfs_inode_unref(root);
		cfs_convert_stats_clear(&stats);
		return 1;
	}
	cfs_inode_unref(root);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (stats.xattrs_dropped)
		fprintf(stderr,
			PROG ": warning: %s: dropped %llu user.* xattrs of "
			     "symlinks, devices or fifos (Linux keeps user.* "
			     "on regular files and directories only)\n",
			source, (unsigned long long)stats.xattrs_dropped);

	cfs_digest_to_hex(digest, hex);
	if (print_digest)
		printf("%s\n", hex);
	if (json)
		print_json(source, output, &stats, hex, image_size,
			   (double)(t1.tv_sec - t0.tv_sec) +
				   (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	cfs_convert_stats_clear(&stats);
	return finish_stdout();
}
