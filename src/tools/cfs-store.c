/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* cfs-store: a local store of composefs images sharing their objects. */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "tools/tool.h"
#include <cfs/cfs.h>

#define PROG "cfs-store"
/* --name given more often is a mistake, not a use case. */
#define MAX_NAMES 64

#define CFS_STORE_OPTIONS(X)                                                   \
	TOOL_COMMON_OPTIONS(X)                                                 \
	X("root", required_argument, ROOT)                                     \
	X("name", required_argument, NAME)                                     \
	X("dry-run", no_argument, DRY_RUN)                                     \
	X("verify", no_argument, VERIFY)                                       \
	X("repair", no_argument, REPAIR)                                       \
	X("writable", no_argument, WRITABLE)                                   \
	X("upper", required_argument, UPPER)                                   \
	X("work", required_argument, WORK)                                     \
	X("verity", required_argument, VERITY)                                 \
	X("digest", required_argument, DIGEST)                                 \
	X("delete-upper", no_argument, DELETE_UPPER)                           \
	X("ais", required_argument, AIS)                                       \
	X("run", required_argument, RUN)                                       \
	X("force", no_argument, FORCE)                                         \
	X("insecure", no_argument, INSECURE)                                   \
	X("no-partial", no_argument, NO_PARTIAL)                               \
	X("trust-toc", no_argument, TRUST_TOC)                                 \
	X("require-sealed", no_argument, REQUIRE_SEALED)                       \
	X("trust-artifact", no_argument, TRUST_ARTIFACT)                       \
	X("trust-cert", required_argument, TRUST_CERT)                         \
	X("require-signed", no_argument, REQUIRE_SIGNED)                       \
	X("idmap", required_argument, IDMAP)

TOOL_OPTIONS(CFS_STORE_OPTIONS);

#define BIT(opt) (1u << ((opt)-OPT_FIRST_ - 1))

struct command {
	const char *name;
	int min_args, max_args; /* max -1: unlimited */
	unsigned int options; /* BIT()s allowed besides --root */
	int (*run)(cfs_store *s, char **args, int n);
	bool writes; /* opens the store creating it */
};

static struct {
	const char *root;
	const char *names[MAX_NAMES];
	const char *trust_certs[MAX_NAMES];
	size_t n_trust_certs;
	bool require_signed;
	const char *idmap;
	size_t n_names;
	const char *platform;
	unsigned int threads;
	bool json, dry_run, verify, repair;
	bool writable, delete_upper, force, insecure, no_partial, trust_toc,
		require_sealed;
	bool trust_artifact;
	const char *upper, *work;
	const char *ais, *run;
	cfs_verity_mode verity;
	uint8_t digest[CFS_DIGEST_SIZE];
	bool has_digest;
} o;

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: " PROG " [--root DIR] COMMAND [ARGS]...\n"
		"Keep composefs images and their shared objects in a store.\n"
		"\n"
		"Commands:\n"
		"  import SOURCE [--name NAME]...  convert SOURCE into the store and\n"
		"                     print the image digest; SOURCE as for oci2cfs\n"
		"                     (oci:, oci-archive:, docker-archive:, dir:, dump:)\n"
		"  pull TRANSPORT:REF [--name NAME]...  copy the image with skopeo\n"
		"                     (docker://, containers-storage:, docker-archive:,\n"
		"                     ... any skopeo transport), import it, print\n"
		"                     the image digest\n"
		"  list               list the images and their names\n"
		"  inspect NAME|DIGEST  show what is known about an image\n"
		"  tag NAME|DIGEST NEWNAME  give an image another name\n"
		"  rm NAME|DIGEST...  remove names (a digest: all names of the image);\n"
		"                     gc then removes images left without a name;\n"
		"                     refused while a container runs on the image\n"
		"  gc                 remove unnamed images, unreferenced objects and\n"
		"                     stale temporaries\n"
		"  fsck               check the store\n"
		"  mount NAME|DIGEST TARGET  mount the image at TARGET (read-only\n"
		"                     unless --writable or --upper/--work)\n"
		"  umount TARGET      unmount what mount put at TARGET\n"
		"  ais sync           make the AIS directory a podman additional\n"
		"                     image store of the named images (mounting\n"
		"                     them); see docs/podman.md\n"
		"  ais mount-all      mount what the AIS refers to (after a reboot)\n"
		"  ais unmount-all    unmount it (before shutdown); podman then\n"
		"                     refuses to run containers on those images\n"
		"\n"
		"Images are named by a NAME or any unique prefix of their DIGEST.\n"
		"\n"
		"Options:\n"
		"  --root DIR         the store (default: " CFS_STORE_DEFAULT_ROOT
		")\n"
		"  --name NAME        import, pull: name the image (repeatable)\n"
		"  --platform OS/ARCH[/VARIANT]  import, pull: image to pick from an\n"
		"                     index\n"
		"  --threads N        import, pull: worker threads\n"
		"  --insecure         pull: no TLS verification, or plain HTTP\n"
		"  --no-partial       pull: fetch zstd:chunked layers whole, also\n"
		"                     when the store has most of their files\n"
		"  --trust-toc        pull: also pull partially zstd:chunked layers\n"
		"                     without a tar-split, built from their TOC: no\n"
		"                     diff_id check (docs/security.md)\n"
		"  --require-sealed   import, pull: refuse images without sealing\n"
		"                     annotations (sealed ones are always checked)\n"
		"  --trust-artifact   import, pull: store the composefs image of the\n"
		"                     image's composefs artifact as it is (else it\n"
		"                     is only checked); see docs/security.md\n"
		"  --trust-cert FILE  import, pull: trust signatures by this PEM\n"
		"                     certificate (repeatable; also ROOT/trust/*.pem)\n"
		"  --require-signed   import, pull: refuse images whose merged and\n"
		"                     config digests are not signed by a trusted\n"
		"                     certificate\n"
		"  --json             import, pull, list, inspect, gc, fsck: JSON on\n"
		"                     stdout\n"
		"  --dry-run          gc: only list what would be removed\n"
		"  --verify           fsck: also check every fs-verity digest\n"
		"  --repair           fsck: remove what is broken and say what\n"
		"  --writable         mount: writable, the store keeps the upper dir\n"
		"                     (ROOT/mounts/<id>/upper) for the next mount\n"
		"  --upper DIR --work DIR  mount: writable with these directories\n"
		"  --verity off|on|require  mount: overlay verity (default: require\n"
		"                     when the image and its objects have fs-verity)\n"
		"  --digest HEX       mount: the image's fs-verity digest must be HEX\n"
		"  --delete-upper     umount: also delete the --writable upper dir\n"
		"  --force            rm: even if a container runs on the image\n"
		"  --idmap MAP        mount, ais: idmapped mounts: user:NAME (NAME's\n"
		"                     rootless podman: 0 is NAME, 1.. its /etc/subuid\n"
		"                     range), [u:|g:]FROM:TO:COUNT..., or a user\n"
		"                     namespace's path\n"
		"  --ais DIR          ais: the image store (default: ROOT/ais)\n"
		"  --run DIR          ais: mount images at DIR/<digest>; DIR gets a\n"
		"                     tmpfs if it is not on one (default: " CFS_STORE_AIS_DEFAULT_RUN_DIR
		")\n"
		"  --help             show this help and exit\n"
		"  --version          show the version and exit\n"
		"\n"
		"Exit status: 0 success, 1 failure (or fsck found problems it did\n"
		"not repair), 2 usage error.\n");
}

#define usage_error(...) tool_usage_error(PROG, 2, __VA_ARGS__)

static int fail(const char *context, int r)
{
	const char *msg = cfs_error_message();

	if (msg[0])
		fprintf(stderr, PROG ": %s: %s\n", context, msg);
	else
		fprintf(stderr, PROG ": %s: %s\n", context, strerror(-r));
	cfs_error_clear();
	return 1;
}

static void print_json(json_object *j)
{
	printf("%s\n", json_object_to_json_string_ext(
			       j, JSON_C_TO_STRING_PRETTY |
					  JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(j);
}

static json_object *jint(uint64_t v)
{
	return json_object_new_int64((int64_t)v);
}

static json_object *jstr_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static json_object *strv_json(char *const *v, size_t n)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

static void format_time(int64_t t, char buf[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- import ------------------------------------------------------------ */

/* One line, redrawn in place: only ever shown when stderr is a tty. The
 * bytes are those of the layers read (for a pull: fetched); the layers
 * built from the store's records cost none. */
static void show_progress(void *opaque, const cfs_progress *p)
{
	static struct timespec start;
	struct timespec now;
	double secs;

	(void)opaque;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (start.tv_sec == 0 && start.tv_nsec == 0)
		start = now;
	secs = (double)(now.tv_sec - start.tv_sec) +
	       (double)(now.tv_nsec - start.tv_nsec) / 1e9;
	fprintf(stderr,
		"\rlayer %zu/%zu (%zu from the store)  %.1f/%.1f MiB  "
		"%.1f MiB/s  %llu objects ",
		p->layer, p->n_layers, p->layers_reused,
		(double)p->input_bytes / 1048576.0,
		(double)p->input_total / 1048576.0,
		secs > 0.05 ? (double)p->input_bytes / 1048576.0 / secs : 0.0,
		(unsigned long long)p->objects);
	if (p->done)
		fputc('\n', stderr);
	fflush(stderr);
}

/* Import options from the command line, for import and pull. */
static void import_setup(cfs_store_import_options *opts)
{
	struct rlimit rl;

	/* Deep trees hold one descriptor per level. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	opts->names = o.names;
	opts->n_names = o.n_names;
	opts->platform = o.platform;
	opts->threads = o.threads;
	if (o.require_sealed)
		opts->flags |= CFS_STORE_IMPORT_REQUIRE_SEALED;
	if (o.trust_artifact)
		opts->flags |= CFS_STORE_IMPORT_TRUST_ARTIFACT;
	if (o.require_signed)
		opts->flags |= CFS_STORE_IMPORT_REQUIRE_SIGNED;
	opts->trust_certs = o.trust_certs;
	opts->n_trust_certs = o.n_trust_certs;
	if (isatty(STDERR_FILENO))
		opts->progress = show_progress;
}

/* Print what import or pull (@cmd) did, or its error. */
static int import_report(const char *cmd, int r,
			 const cfs_store_import_result *res)
{
	if (r < 0)
		return fail(cmd, r);
	if (!o.json) {
		printf("%s\n", res->digest);
		return 0;
	}
	json_object *j = json_object_new_object();
	json_object_object_add(j, "digest",
			       json_object_new_string(res->digest));
	json_object_object_add(j, "existed",
			       json_object_new_boolean(res->existed));
	json_object_object_add(j, "sealed",
			       json_object_new_boolean(res->sealed));
	json_object_object_add(j, "signature_checked",
			       json_object_new_boolean(res->signature_checked));
	json_object_object_add(j, "signer",
			       res->signature_checked ?
				       json_object_new_string(res->signer) :
				       NULL);
	json_object_object_add(j, "artifact",
			       json_object_new_boolean(res->artifact));
	json_object_object_add(j, "names",
			       strv_json((char **)o.names, o.n_names));
	json_object_object_add(j, "image_size", jint(res->image_size));
	json_object_object_add(j, "objects", jint(res->objects));
	json_object_object_add(j, "object_bytes", jint(res->object_bytes));
	json_object_object_add(j, "objects_new", jint(res->objects_new));
	json_object_object_add(j, "objects_new_bytes",
			       jint(res->objects_new_bytes));
	json_object_object_add(j, "verity",
			       json_object_new_boolean(res->verity));
	json_object_object_add(j, "verity_enabled", jint(res->verity_enabled));
	json_object_object_add(
		j, "verity_error",
		res->verity_errno ?
			json_object_new_string(strerror(res->verity_errno)) :
			NULL);
	json_object *layers = json_object_new_array();
	for (size_t i = 0; i < res->n_layers; i++) {
		const cfs_store_layer_result *l = &res->layers[i];
		json_object *lj = json_object_new_object();

		json_object_object_add(lj, "digest",
				       json_object_new_string(l->digest));
		json_object_object_add(
			lj, "diff_id",
			l->diff_id[0] ? json_object_new_string(l->diff_id) :
					NULL);
		json_object_object_add(
			lj, "source",
			json_object_new_string(l->skipped ? "none" :
					       l->reused  ? "record" :
							    "blob"));
		json_object_object_add(lj, "recorded",
				       json_object_new_boolean(l->recorded));
		json_object_object_add(lj, "bytes_read", jint(l->bytes_read));
		if (strcmp(cmd, "pull") == 0) {
			json_object_object_add(lj, "bytes_fetched",
					       jint(l->bytes_fetched));
			json_object_object_add(
				lj, "partial",
				json_object_new_boolean(l->partial));
			json_object_object_add(
				lj, "diff_id_checked",
				json_object_new_boolean(!l->unverified));
		}
		json_object_object_add(lj, "tar_bytes", jint(l->tar_bytes));
		json_object_object_add(lj, "entries", jint(l->entries));
		json_object_array_add(layers, lj);
	}
	json_object_object_add(j, "layers", layers);
	print_json(j);
	return 0;
}

static int cmd_import(cfs_store *s, char **args, int n)
{
	cfs_store_import_options opts = CFS_STORE_IMPORT_OPTIONS_INIT;
	cfs_store_import_result res = CFS_STORE_IMPORT_RESULT_INIT;
	int r;

	import_setup(&opts);
	r = import_report("import", cfs_store_import(s, args[0], &opts, &res),
			  &res);
	cfs_store_import_result_clear(&res);
	return r;
}

static int cmd_pull(cfs_store *s, char **args, int n)
{
	cfs_store_pull_options popts = CFS_STORE_PULL_OPTIONS_INIT;
	cfs_store_import_options opts = CFS_STORE_IMPORT_OPTIONS_INIT;
	cfs_store_import_result res = CFS_STORE_IMPORT_RESULT_INIT;
	int r;

	if (!cfs_store_pull_source_valid(args[0]))
		return usage_error("pull: '%s': not TRANSPORT:REF (e.g. "
				   "docker://IMAGE, docker-archive:FILE)",
				   args[0]);
	if (o.insecure)
		popts.flags |= CFS_STORE_PULL_INSECURE;
	if (o.no_partial)
		popts.flags |= CFS_STORE_PULL_NO_PARTIAL;
	if (o.trust_toc)
		popts.flags |= CFS_STORE_PULL_TRUST_TOC;
	import_setup(&opts);
	r = import_report(
		"pull", cfs_store_pull(s, args[0], &popts, &opts, &res), &res);
	cfs_store_import_result_clear(&res);
	return r;
}

/* ---- list, inspect ----------------------------------------------------- */

static json_object *image_json(const cfs_store_image *img)
{
	json_object *j = json_object_new_object();
	json_object *config = NULL;

	/* the library checked it (strict, bounded) at import */
	if (img->config)
		config = json_tokener_parse(img->config);
	json_object_object_add(j, "digest",
			       json_object_new_string(img->digest));
	json_object_object_add(j, "names", strv_json(img->names, img->n_names));
	json_object_object_add(j, "complete",
			       json_object_new_boolean(img->complete));
	json_object_object_add(j, "broken",
			       json_object_new_boolean(img->broken));
	json_object_object_add(j, "image_size", jint(img->image_size));
	if (img->complete) {
		char when[32];

		format_time(img->created, when);
		json_object_object_add(j, "source",
				       json_object_new_string(img->source));
		json_object_object_add(j, "manifest_digest",
				       jstr_or_null(img->manifest_digest));
		json_object_object_add(j, "config_digest",
				       jstr_or_null(img->config_digest));
		json_object_object_add(j, "created",
				       json_object_new_string(when));
		json_object_object_add(j, "objects", jint(img->objects));
		json_object_object_add(j, "object_bytes",
				       jint(img->object_bytes));
		json_object_object_add(j, "verity",
				       json_object_new_boolean(img->verity));
		json_object_object_add(j, "config", config);
	} else {
		json_object_put(config);
	}
	return j;
}

static void names_line(const cfs_store_image *img)
{
	if (img->n_names == 0)
		fputs(img->complete ? "<none>" : "<incomplete>", stdout);
	for (size_t i = 0; i < img->n_names; i++)
		printf("%s%s", i ? "," : "", img->names[i]);
	if (img->broken)
		fputs(" (broken: import it again)", stdout);
	putchar('\n');
}

static int cmd_list(cfs_store *s, char **args, int n)
{
	cfs_store_image *images;
	size_t count;
	int r;

	r = cfs_store_list(s, &images, &count);
	if (r < 0)
		return fail("list", r);
	if (o.json) {
		json_object *a = json_object_new_array();
		for (size_t i = 0; i < count; i++)
			json_object_array_add(a, image_json(&images[i]));
		print_json(a);
	} else {
		printf("%-12s  %-20s  %10s  %8s  %s\n", "DIGEST", "CREATED",
		       "SIZE", "OBJECTS", "NAMES");
		for (size_t i = 0; i < count; i++) {
			const cfs_store_image *img = &images[i];
			char when[32] = "-";
			if (img->complete)
				format_time(img->created, when);
			printf("%-12.12s  %-20s  %10llu  %8llu  ", img->digest,
			       when, (unsigned long long)img->image_size,
			       (unsigned long long)img->objects);
			names_line(img);
		}
	}
	cfs_store_images_free(images, count);
	return 0;
}

static int cmd_inspect(cfs_store *s, char **args, int n)
{
	cfs_store_image img;
	int r;

	r = cfs_store_inspect(s, args[0], &img);
	if (r < 0)
		return fail("inspect", r);
	if (o.json) {
		print_json(image_json(&img));
	} else {
		char when[32];

		printf("digest:          %s\n", img.digest);
		printf("names:           ");
		names_line(&img);
		printf("image size:      %llu\n",
		       (unsigned long long)img.image_size);
		if (img.complete) {
			format_time(img.created, when);
			printf("source:          %s\n", img.source);
			printf("manifest digest: %s\n",
			       img.manifest_digest ? img.manifest_digest : "-");
			printf("config digest:   %s\n",
			       img.config_digest ? img.config_digest : "-");
			printf("created:         %s\n", when);
			printf("objects:         %llu (%llu bytes)\n",
			       (unsigned long long)img.objects,
			       (unsigned long long)img.object_bytes);
			printf("fs-verity:       %s\n",
			       img.verity ? "yes" : "no");
		}
	}
	cfs_store_image_clear(&img);
	return 0;
}

/* ---- tag, rm ----------------------------------------------------------- */

static int cmd_tag(cfs_store *s, char **args, int n)
{
	int r;

	if (!cfs_store_name_valid(args[1]))
		return usage_error("'%s': invalid name", args[1]);
	r = cfs_store_tag(s, args[0], args[1]);
	return r < 0 ? fail("tag", r) : 0;
}

static int cmd_rm(cfs_store *s, char **args, int n)
{
	int status = 0;

	for (int i = 0; i < n; i++) {
		int r = cfs_store_remove_ext(
			s, args[i], o.force ? CFS_STORE_REMOVE_FORCE : 0);
		if (r < 0)
			status = fail("rm", r);
	}
	return status;
}

/* ---- gc, fsck ---------------------------------------------------------- */

static int cmd_gc(cfs_store *s, char **args, int n)
{
	cfs_store_gc_result res = CFS_STORE_GC_RESULT_INIT;
	int r;

	r = cfs_store_gc(s, o.dry_run ? CFS_STORE_GC_DRY_RUN : 0, &res);
	if (r < 0)
		return fail("gc", r);
	if (o.json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "dry_run",
				       json_object_new_boolean(o.dry_run));
		json_object_object_add(j, "images", jint(res.images));
		json_object_object_add(j, "objects", jint(res.objects));
		json_object_object_add(j, "object_bytes",
				       jint(res.object_bytes));
		json_object_object_add(j, "temporaries", jint(res.temporaries));
		json_object_object_add(j, "records", jint(res.records));
		json_object_object_add(j, "removed",
				       strv_json(res.paths, res.n_paths));
		print_json(j);
	} else {
		for (size_t i = 0; i < res.n_paths; i++)
			printf("%s %s\n",
			       o.dry_run ? "would remove" : "removed",
			       res.paths[i]);
		printf("%s %llu images, %llu objects (%llu bytes), %llu "
		       "temporaries, %llu layer records\n",
		       o.dry_run ? "would remove" : "removed",
		       (unsigned long long)res.images,
		       (unsigned long long)res.objects,
		       (unsigned long long)res.object_bytes,
		       (unsigned long long)res.temporaries,
		       (unsigned long long)res.records);
	}
	cfs_store_gc_result_clear(&res);
	return 0;
}

static int cmd_fsck(cfs_store *s, char **args, int n)
{
	cfs_store_fsck_result res = CFS_STORE_FSCK_RESULT_INIT;
	unsigned int flags = 0;
	size_t left = 0;
	int r;

	if (o.verify)
		flags |= CFS_STORE_FSCK_VERIFY;
	if (o.repair)
		flags |= CFS_STORE_FSCK_REPAIR;
	r = cfs_store_fsck(s, flags, &res);
	if (r < 0)
		return fail("fsck", r);
	for (size_t i = 0; i < res.n_problems; i++)
		left += !res.problems[i].repaired;
	if (o.json) {
		json_object *j = json_object_new_object();
		json_object *a = json_object_new_array();
		for (size_t i = 0; i < res.n_problems; i++) {
			const cfs_store_problem *p = &res.problems[i];
			json_object *pj = json_object_new_object();
			json_object_object_add(pj, "kind",
					       json_object_new_string(p->kind));
			json_object_object_add(pj, "path",
					       json_object_new_string(p->path));
			json_object_object_add(
				pj, "message",
				json_object_new_string(p->message));
			json_object_object_add(
				pj, "repaired",
				json_object_new_boolean(p->repaired));
			json_object_array_add(a, pj);
		}
		json_object_object_add(j, "ok", json_object_new_boolean(!left));
		json_object_object_add(j, "images", jint(res.images));
		json_object_object_add(j, "objects", jint(res.objects));
		json_object_object_add(j, "incomplete", jint(res.incomplete));
		json_object_object_add(j, "records", jint(res.records));
		json_object_object_add(j, "broken", jint(res.broken));
		json_object_object_add(j, "problems", a);
		json_object_object_add(j, "cleaned",
				       strv_json(res.cleaned, res.n_cleaned));
		print_json(j);
	} else {
		for (size_t i = 0; i < res.n_cleaned; i++)
			printf("cleaned stale temporary %s\n", res.cleaned[i]);
		for (size_t i = 0; i < res.n_problems; i++) {
			const cfs_store_problem *p = &res.problems[i];
			printf("%s%s: %s: %s\n", p->repaired ? "removed " : "",
			       p->path, p->kind, p->message);
		}
		printf("%llu images, %llu objects checked%s: %zu problems",
		       (unsigned long long)res.images,
		       (unsigned long long)res.objects,
		       o.verify ? " (digests verified)" : "", res.n_problems);
		if (res.n_problems)
			printf(", %zu repaired", res.n_problems - left);
		if (res.incomplete)
			printf("; %llu incomplete imports (gc removes them)",
			       (unsigned long long)res.incomplete);
		if (res.broken)
			printf("; %llu images broken by a repair (import them "
			       "again to restore them)",
			       (unsigned long long)res.broken);
		putchar('\n');
	}
	cfs_store_fsck_result_clear(&res);
	if (left) {
		fprintf(stderr, PROG ": fsck: %zu problems%s\n", left,
			o.repair ? " left" :
				   " (--repair removes what is broken)");
		return 1;
	}
	return 0;
}

/* ---- mount, umount ------------------------------------------------------ */

static int cmd_mount(cfs_store *s, char **args, int n)
{
	cfs_store_mount_options opts = CFS_STORE_MOUNT_OPTIONS_INIT;
	int r;

	if (o.writable)
		opts.flags |= CFS_STORE_MOUNT_WRITABLE;
	opts.upperdir = o.upper;
	opts.workdir = o.work;
	opts.verity = o.verity;
	if (o.has_digest)
		opts.expected_digest = o.digest;
	opts.idmap = o.idmap;
	r = cfs_store_mount(s, args[0], args[1], &opts);
	return r < 0 ? fail("mount", r) : 0;
}

static int cmd_umount(cfs_store *s, char **args, int n)
{
	int r = cfs_store_umount(
		s, args[0], o.delete_upper ? CFS_STORE_UMOUNT_DELETE_UPPER : 0);

	return r < 0 ? fail("umount", r) : 0;
}

/* ---- ais ---------------------------------------------------------------- */

static int cmd_ais(cfs_store *s, char **args, int n)
{
	cfs_store_ais_options opts = CFS_STORE_AIS_OPTIONS_INIT;
	cfs_store_ais_result res = CFS_STORE_AIS_RESULT_INIT;
	const char *what = args[0];
	int r;

	(void)n;
	opts.ais_dir = o.ais;
	opts.run_dir = o.run;
	opts.idmap = o.idmap;
	if (strcmp(what, "sync") == 0)
		r = cfs_store_ais_sync(s, &opts, &res);
	else if (strcmp(what, "mount-all") == 0)
		r = cfs_store_ais_mount_all(s, &opts, &res);
	else if (strcmp(what, "unmount-all") == 0)
		r = cfs_store_ais_unmount_all(s, &opts, &res);
	else
		return usage_error("ais: unknown subcommand '%s' (sync, "
				   "mount-all, unmount-all)",
				   what);
	if (r == 0 && res.run_mounted)
		fprintf(stderr,
			"cfs-store: ais %s: %s was not on tmpfs: mounted "
			"a tmpfs of the store's own on it\n",
			what, o.run ? o.run : CFS_STORE_AIS_DEFAULT_RUN_DIR);
	if (o.json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "images", jint(res.images));
		json_object_object_add(j, "mounted", jint(res.mounted));
		json_object_object_add(
			j, "run_mounted",
			json_object_new_boolean(res.run_mounted));
		json_object_object_add(j, "skipped", jint(res.skipped));
		json_object_object_add(j, "unmounted", jint(res.unmounted));
		json_object_object_add(j, "busy", jint(res.busy));
		if (r == 0)
			print_json(j);
		else
			json_object_put(j);
	} else if (r == 0 && strcmp(what, "sync") == 0) {
		printf("%zu images (%zu newly mounted), %zu names without OCI "
		       "config left out, %zu removed",
		       res.images, res.mounted, res.skipped, res.unmounted);
		if (res.busy)
			printf(", %zu gone but still in use", res.busy);
		putchar('\n');
	} else if (r == 0) {
		printf("%zu layers, %zu %s\n", res.images,
		       what[0] == 'm' ? res.mounted : res.unmounted,
		       what[0] == 'm' ? "newly mounted" : "unmounted");
	}
	if (r < 0) {
		char label[32];
		snprintf(label, sizeof(label), "ais %s", what);
		return fail(label, r);
	}
	return 0;
}

static const struct command commands[] = {
	{ "import", 1, 1,
	  BIT(OPT_NAME) | BIT(OPT_PLATFORM) | BIT(OPT_THREADS) | BIT(OPT_JSON) |
		  BIT(OPT_REQUIRE_SEALED) | BIT(OPT_TRUST_ARTIFACT) |
		  BIT(OPT_TRUST_CERT) | BIT(OPT_REQUIRE_SIGNED),
	  cmd_import, true },
	{ "pull", 1, 1,
	  BIT(OPT_NAME) | BIT(OPT_PLATFORM) | BIT(OPT_THREADS) | BIT(OPT_JSON) |
		  BIT(OPT_INSECURE) | BIT(OPT_NO_PARTIAL) | BIT(OPT_TRUST_TOC) |
		  BIT(OPT_REQUIRE_SEALED) | BIT(OPT_TRUST_ARTIFACT) |
		  BIT(OPT_TRUST_CERT) | BIT(OPT_REQUIRE_SIGNED),
	  cmd_pull, true },
	{ "list", 0, 0, BIT(OPT_JSON), cmd_list, false },
	{ "inspect", 1, 1, BIT(OPT_JSON), cmd_inspect, false },
	{ "tag", 2, 2, 0, cmd_tag, true },
	{ "rm", 1, -1, BIT(OPT_FORCE), cmd_rm, true },
	{ "gc", 0, 0, BIT(OPT_DRY_RUN) | BIT(OPT_JSON), cmd_gc, true },
	{ "fsck", 0, 0, BIT(OPT_VERIFY) | BIT(OPT_REPAIR) | BIT(OPT_JSON),
	  cmd_fsck, true },
	{ "mount", 2, 2,
	  BIT(OPT_WRITABLE) | BIT(OPT_UPPER) | BIT(OPT_WORK) | BIT(OPT_VERITY) |
		  BIT(OPT_DIGEST) | BIT(OPT_IDMAP),
	  cmd_mount, false },
	{ "umount", 1, 1, BIT(OPT_DELETE_UPPER), cmd_umount, false },
	{ "ais", 1, 1,
	  BIT(OPT_AIS) | BIT(OPT_RUN) | BIT(OPT_JSON) | BIT(OPT_IDMAP), cmd_ais,
	  false },
};

int main(int argc, char **argv)
{
	cfs_store_options sopts = CFS_STORE_OPTIONS_INIT;
	const struct command *cmd = NULL;
	unsigned int given = 0;
	cfs_store *s = NULL;
	int c, r, nargs;

	/* Options may come anywhere (GNU permutation), so that
	 * "cfs-store import SRC --name x --root DIR" works. */
	while ((c = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
		if (c > OPT_FIRST_ && c < OPT_END_)
			given |= BIT(c);
		switch (c) {
		case OPT_ROOT:
			o.root = optarg;
			break;
		case OPT_NAME:
			if (o.n_names == MAX_NAMES)
				return usage_error("more than %d --name",
						   MAX_NAMES);
			if (!cfs_store_name_valid(optarg))
				return usage_error("'%s': invalid name",
						   optarg);
			o.names[o.n_names++] = optarg;
			break;
		case OPT_PLATFORM:
			o.platform = optarg;
			break;
		case OPT_THREADS:
			if (tool_parse_threads(optarg, &o.threads) < 0)
				return usage_error("invalid thread count '%s'",
						   optarg);
			break;
		case OPT_JSON:
			o.json = true;
			break;
		case OPT_DRY_RUN:
			o.dry_run = true;
			break;
		case OPT_VERIFY:
			o.verify = true;
			break;
		case OPT_REPAIR:
			o.repair = true;
			break;
		case OPT_WRITABLE:
			o.writable = true;
			break;
		case OPT_UPPER:
			o.upper = optarg;
			break;
		case OPT_WORK:
			o.work = optarg;
			break;
		case OPT_VERITY:
			if (strcmp(optarg, "off") == 0)
				o.verity = CFS_VERITY_OFF;
			else if (strcmp(optarg, "on") == 0)
				o.verity = CFS_VERITY_ON;
			else if (strcmp(optarg, "require") == 0)
				o.verity = CFS_VERITY_REQUIRE;
			else
				return usage_error("invalid verity mode '%s' "
						   "(off, on or require)",
						   optarg);
			break;
		case OPT_DIGEST: {
			const char *hex = optarg;
			if (strncmp(hex, "sha256:", 7) == 0)
				hex += 7;
			if (cfs_digest_from_hex(o.digest, hex) < 0)
				return usage_error(
					"invalid digest '%s' (64 hex "
					"digits)",
					optarg);
			o.has_digest = true;
			break;
		}
		case OPT_DELETE_UPPER:
			o.delete_upper = true;
			break;
		case OPT_AIS:
			o.ais = optarg;
			break;
		case OPT_RUN:
			o.run = optarg;
			break;
		case OPT_FORCE:
			o.force = true;
			break;
		case OPT_REQUIRE_SEALED:
			o.require_sealed = true;
			break;
		case OPT_TRUST_ARTIFACT:
			o.trust_artifact = true;
			break;
		case OPT_TRUST_CERT:
			if (o.n_trust_certs == MAX_NAMES)
				return usage_error("more than %d --trust-cert",
						   MAX_NAMES);
			o.trust_certs[o.n_trust_certs++] = optarg;
			break;
		case OPT_REQUIRE_SIGNED:
			o.require_signed = true;
			break;
		case OPT_IDMAP:
			o.idmap = optarg;
			break;
		case OPT_INSECURE:
			o.insecure = true;
			break;
		case OPT_NO_PARTIAL:
			o.no_partial = true;
			break;
		case OPT_TRUST_TOC:
			o.trust_toc = true;
			break;
		default: /* --help, --version, or a bad option */
			return tool_option_end(PROG, usage, c == OPT_HELP,
					       c == OPT_VERSION);
		}
	}
	if (optind >= argc)
		return usage_error("missing COMMAND");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			cmd = &commands[i];
	if (!cmd)
		return usage_error("unknown command '%s'", argv[optind]);
	given &= ~BIT(OPT_ROOT);
	if (given & ~cmd->options) {
		for (const struct option *lo = long_options; lo->name; lo++)
			if (lo->val > OPT_FIRST_ && (given & BIT(lo->val)) &&
			    !(cmd->options & BIT(lo->val)))
				return usage_error("%s: --%s does not apply",
						   cmd->name, lo->name);
	}
	if (o.writable && (o.upper || o.work))
		return usage_error("mount: --writable and --upper/--work "
				   "exclude each other");
	if (!o.upper != !o.work)
		return usage_error("mount: --upper and --work go together");
	nargs = argc - optind - 1;
	if (nargs < cmd->min_args)
		return usage_error("%s: missing argument", cmd->name);
	if (cmd->max_args >= 0 && nargs > cmd->max_args)
		return usage_error("%s: too many arguments", cmd->name);

	if (!cmd->writes)
		sopts.flags |= CFS_STORE_OPEN_NOCREATE;
	r = cfs_store_open(&s, o.root, &sopts);
	if (r < 0)
		return fail(cmd->name, r);
	r = cmd->run(s, argv + optind + 1, nargs);
	cfs_store_free(s);
	if (fflush(stdout) != 0) {
		fprintf(stderr, PROG ": stdout: %s\n", strerror(errno));
		return 1;
	}
	return r;
}
