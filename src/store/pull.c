/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * cfs_store_pull(): "skopeo copy" from any of skopeo's transports into an
 * OCI layout in a writer directory of tmp/, then an ordinary import of
 * that layout.
 *
 * The writer directory is what makes a pull crash safe: we hold its lock
 * while we live, so cleaners leave it alone, and once we are gone (exit
 * or kill -9) it is a stale writer directory that every import, gc and
 * fsck removes. skopeo does not inherit that lock, and it gets SIGKILL
 * when we die (PR_SET_PDEATHSIG), so nothing keeps writing into a
 * directory a cleaner may be removing. skopeo's own big temporaries
 * (TMPDIR) go into the writer directory too, for the same reason.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "store/store-internal.h"

/* skopeo's stderr kept for the error message: only its last line is
 * used, so a longer output (a Go panic's stack) is dropped from the
 * front. */
#define PULL_STDERR_MAX (64 * 1024)
/* Longest transport name: skopeo's longest is "containers-storage". */
#define PULL_TRANSPORT_MAX 64
/* Longest OS, architecture or variant, as the converter's --platform. */
#define PULL_PLATFORM_PART_MAX 32
/* Longest message line taken from skopeo; cfs_error() cuts anyway. */
#define PULL_LINE_MAX 800

bool cfs_store_pull_source_valid(const char *source)
{
	size_t n;

	if (!source)
		return false;
	n = strspn(source, "abcdefghijklmnopqrstuvwxyz"
			   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-");
	/* A letter first, so that the source never reads as an option. */
	return n > 0 && n <= PULL_TRANSPORT_MAX && source[n] == ':' &&
	       source[n + 1] != '\0' &&
	       ((source[0] >= 'a' && source[0] <= 'z') ||
		(source[0] >= 'A' && source[0] <= 'Z'));
}

/* ---- --platform as skopeo's --override-os/-arch/-variant --------------- */

struct pull_platform {
	char os[PULL_PLATFORM_PART_MAX];
	char arch[PULL_PLATFORM_PART_MAX];
	char variant[PULL_PLATFORM_PART_MAX];
};

static bool platform_part_ok(const char *p, size_t n)
{
	if (n == 0 || n >= PULL_PLATFORM_PART_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= 'a' && p[i] <= 'z') ||
		      (p[i] >= 'A' && p[i] <= 'Z') ||
		      (p[i] >= '0' && p[i] <= '9') || strchr("._-", p[i])))
			return false;
	return true;
}

/* "OS/ARCH[/VARIANT]"; ARCH in uname's spelling is given to skopeo in
 * Go's, which is what image indexes use (the converter accepts both). */
static int parse_platform(const char *source, const char *s,
			  struct pull_platform *out)
{
	static const char *const arch_map[][2] = {
		{ "x86_64", "amd64" },	{ "x86-64", "amd64" },
		{ "aarch64", "arm64" }, { "i386", "386" },
		{ "i486", "386" },	{ "i586", "386" },
		{ "i686", "386" },	{ "armhf", "arm" },
		{ "armel", "arm" },	{ "ppc64el", "ppc64le" },
	};
	char *parts[3] = { out->os, out->arch, out->variant };
	const char *p = s;
	size_t n = 0;

	memset(out, 0, sizeof(*out));
	while (n < 3) {
		const char *end = strchrnul(p, '/');

		if (!platform_part_ok(p, (size_t)(end - p)))
			break;
		memcpy(parts[n++], p, (size_t)(end - p));
		p = end;
		if (!*p)
			break;
		p++;
	}
	if (n < 2 || *p)
		return cfs_error(EINVAL,
				 "%s: platform \"%.64s\": expected "
				 "OS/ARCH[/VARIANT]",
				 source, s);
	for (size_t i = 0; i < CFS_ARRAY_SIZE(arch_map); i++)
		if (strcmp(out->arch, arch_map[i][0]) == 0) {
			snprintf(out->arch, sizeof(out->arch), "%s",
				 arch_map[i][1]);
			break;
		}
	return 0;
}

/* ---- running skopeo ------------------------------------------------------ */

/* Move @fd above the standard descriptors (close-on-exec), so that
 * setting up the child's 0, 1 and 2 cannot overwrite it. */
static int fd_above_stdio(int fd)
{
	int nfd;

	if (fd < 0 || fd > STDERR_FILENO)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
	close(fd);
	return nfd;
}

/* The environment with TMPDIR replaced by @tmpdir (the strings are
 * borrowed, except the new TMPDIR entry, which is the last one). */
static char **env_with_tmpdir(const char *tmpdir)
{
	size_t n = 0, k = 0;
	char **env;

	while (environ && environ[n])
		n++;
	env = calloc(n + 2, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "TMPDIR=", 7) != 0)
			env[k++] = environ[i];
	if (asprintf(&env[k], "TMPDIR=%s", tmpdir) < 0) {
		free(env);
		return NULL;
	}
	return env;
}

static void env_free(char **env)
{
	size_t n = 0;

	if (!env)
		return;
	while (env[n + 1])
		n++;
	free(env[n]); /* the TMPDIR entry */
	free(env);
}

/* In the forked child: only async-signal-safe calls from here on. */
__attribute__((noreturn)) static void child_exec(pid_t parent, int devnull,
						 int err_w, int exec_w,
						 char *const argv[],
						 char *const envp[])
{
	sigset_t none;
	ssize_t wr;
	int e;

	/* Die with the caller, and do not outlive a parent that died
	 * before the request was made. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(127);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (dup2(devnull, STDIN_FILENO) < 0 ||
	    dup2(devnull, STDOUT_FILENO) < 0 || dup2(err_w, STDERR_FILENO) < 0)
		goto fail;
	execvpe(argv[0], argv, envp);
fail:
	e = errno;
	wr = write(exec_w, &e, sizeof(e));
	(void)wr;
	_exit(127);
}

/* Read @fd to EOF, keeping its last PULL_STDERR_MAX bytes in @buf
 * (PULL_STDERR_MAX + 1 bytes, NUL-terminated). */
static int read_tail(int fd, char *buf, size_t *len)
{
	*len = 0;
	for (;;) {
		ssize_t n;

		if (*len == PULL_STDERR_MAX) {
			size_t keep = PULL_STDERR_MAX / 2;
			memmove(buf, buf + *len - keep, keep);
			*len = keep;
		}
		n = read(fd, buf + *len, PULL_STDERR_MAX - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		*len += (size_t)n;
	}
	buf[*len] = '\0';
	return 0;
}

/*
 * The last non-empty line of @buf (modified) into @out. skopeo logs
 * through logrus, 'time="..." level=fatal msg="..."': then only the
 * message, with Go's quoting undone.
 */
static void last_line(char *buf, size_t len, char *out, size_t size)
{
	char *line, *msg, *o = out;

	while (len > 0 && strchr(" \t\r\n", buf[len - 1]))
		buf[--len] = '\0';
	line = strrchr(buf, '\n');
	line = line ? line + 1 : buf;
	msg = strstr(line, " msg=\"");
	if (strncmp(line, "time=", 5) != 0 || !msg) {
		snprintf(out, size, "%s", line);
		return;
	}
	for (msg += 6; *msg && *msg != '"' && o + 1 < out + size; msg++) {
		if (*msg == '\\' && msg[1]) {
			msg++;
			*o++ = *msg == 'n' ? ' ' : *msg == 't' ? ' ' : *msg;
		} else {
			*o++ = *msg;
		}
	}
	*o = '\0';
}

/* Run @argv (argv[0] "skopeo" or the caller's path) and wait for it. */
static int run_skopeo(const char *source, bool default_prog, char *const argv[],
		      char *const envp[]);

/* The digest of the manifest tagged "latest" in @layout/index.json. */
static int layout_manifest(const char *layout, char digest[80])
{
	_cleanup_free_ char *path = NULL;
	json_object *index, *list, *e, *v, *ann;
	int r = -ENOENT;

	if (asprintf(&path, "%s/index.json", layout) < 0)
		return -ENOMEM;
	index = json_object_from_file(path);
	if (index && json_object_object_get_ex(index, "manifests", &list) &&
	    json_object_is_type(list, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(list); i++) {
			e = json_object_array_get_idx(list, i);
			if (json_object_object_get_ex(e, "annotations", &ann) &&
			    json_object_object_get_ex(
				    ann, "org.opencontainers.image.ref.name",
				    &v) &&
			    strcmp(json_object_get_string(v), "latest") == 0 &&
			    json_object_object_get_ex(e, "digest", &v) &&
			    strlen(json_object_get_string(v)) < 80) {
				strcpy(digest, json_object_get_string(v));
				r = 0;
			}
		}
	}
	json_object_put(index);
	return r;
}

/*
 * A registry keeps the artifacts of a manifest under the referrers tag
 * "sha256-<hex>" (where it has no referrers API, and distribution 2.8
 * has none). Copy what is there into the layout, where the import finds
 * a composefs artifact (include/cfs/seal.h); nothing there is no error.
 * @argv holds the first copy's arguments, the last two the source and
 * destination.
 */
static void pull_artifact(const char *source, const char *layout,
			  const char **argv, size_t argc, char **envp,
			  const cfs_store_pull_options *pull_opts)
{
	_cleanup_free_ char *src = NULL, *dst = NULL;
	const char *args[24];
	char digest[80];
	const char *repo_end, *slash;
	size_t n = 0;

	if (strncmp(source, "docker://", 9) != 0 ||
	    layout_manifest(layout, digest) < 0 ||
	    strncmp(digest, "sha256:", 7) != 0)
		return;
	/* docker://HOST/REPO[:TAG][@DIGEST] -> docker://HOST/REPO */
	slash = strrchr(source, '/');
	repo_end = strchr(slash, '@');
	if (!repo_end)
		repo_end = strchr(slash, ':');
	if (!repo_end)
		repo_end = source + strlen(source);
	if (asprintf(&src, "%.*s:sha256-%s", (int)(repo_end - source), source,
		     digest + 7) < 0) {
		src = NULL;
		return;
	}
	if (asprintf(&dst, "oci:%s:sha256-%s", layout, digest + 7) < 0) {
		dst = NULL;
		return;
	}
	for (size_t i = 0; i + 2 < argc && n < 20; i++) {
		args[n++] = argv[i];
		if (strcmp(argv[i], "copy") == 0)
			args[n++] = "--all";
	}
	args[n++] = src;
	args[n++] = dst;
	args[n] = NULL;
	/* "manifest unknown" is the usual answer: no artifact. */
	if (run_skopeo(source, !pull_opts->skopeo, (char *const *)args, envp) <
	    0)
		cfs_error_clear();
}

static int run_skopeo(const char *source, bool default_prog, char *const argv[],
		      char *const envp[])
{
	_cleanup_close_ int devnull = -1, err_r = -1, err_w = -1;
	_cleanup_close_ int exec_r = -1, exec_w = -1;
	_cleanup_free_ char *tail = NULL;
	char line[PULL_LINE_MAX];
	pid_t parent = getpid(), pid;
	int fds[2], status, exec_errno = 0, r;
	size_t tail_len = 0;
	ssize_t n;

	tail = malloc(PULL_STDERR_MAX + 1);
	if (!tail)
		return -ENOMEM;
	devnull = fd_above_stdio(open("/dev/null", O_RDWR | O_CLOEXEC));
	if (devnull < 0)
		return cfs_error_errno(errno, "/dev/null");
	if (pipe2(fds, O_CLOEXEC) < 0)
		return cfs_error_errno(errno, "%s: pipe", source);
	err_r = fd_above_stdio(fds[0]);
	err_w = fd_above_stdio(fds[1]);
	if (pipe2(fds, O_CLOEXEC) < 0)
		return cfs_error_errno(errno, "%s: pipe", source);
	exec_r = fd_above_stdio(fds[0]);
	exec_w = fd_above_stdio(fds[1]);
	if (err_r < 0 || err_w < 0 || exec_r < 0 || exec_w < 0)
		return cfs_error_errno(errno, "%s: pipe", source);

	pid = fork();
	if (pid < 0)
		return cfs_error_errno(errno, "%s: fork", source);
	if (pid == 0)
		child_exec(parent, devnull, err_w, exec_w, argv, envp);
	cfs_closep(&err_w);
	err_w = -1;
	cfs_closep(&exec_w);
	exec_w = -1;

	/* The exec pipe closes on a successful exec, or brings errno. */
	do
		n = read(exec_r, &exec_errno, sizeof(exec_errno));
	while (n < 0 && errno == EINTR);
	if (n != sizeof(exec_errno))
		exec_errno = 0;
	r = read_tail(err_r, tail, &tail_len);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return cfs_error_errno(errno, "%s: waiting for skopeo",
					       source);
	}
	if (r < 0)
		return cfs_error_errno(-r, "%s: reading skopeo's output",
				       source);
	if (exec_errno == ENOENT && default_prog)
		return cfs_error(ENOENT,
				 "skopeo not found (apt-get install skopeo)");
	if (exec_errno)
		return cfs_error_errno(exec_errno, "running %s", argv[0]);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	last_line(tail, tail_len, line, sizeof(line));
	if (WIFSIGNALED(status))
		return cfs_error(EIO, "%s: skopeo copy killed by signal %d%s%s",
				 source, WTERMSIG(status), line[0] ? ": " : "",
				 line);
	return cfs_error(EIO, "%s: skopeo copy failed (exit %d)%s%s", source,
			 WIFEXITED(status) ? WEXITSTATUS(status) : -1,
			 line[0] ? ": " : "", line);
}

/* ---- the pull ------------------------------------------------------------ */

int cfs_store_pull(cfs_store *s, const char *source,
		   const cfs_store_pull_options *pull_opts,
		   const cfs_store_import_options *import_opts,
		   cfs_store_import_result *result)
{
	static const cfs_store_pull_options defaults =
		CFS_STORE_PULL_OPTIONS_INIT;
	struct store_writer w = { .fd = -1 };
	struct pull_platform plat;
	_cleanup_free_ char *layout = NULL, *dest = NULL, *tmpdir = NULL;
	const char *argv[20];
	const char *platform = NULL;
	char **envp = NULL;
	size_t argc = 0;
	int r;

	if (!pull_opts)
		pull_opts = &defaults;
	if (pull_opts->version != CFS_STORE_PULL_OPTIONS_VERSION ||
	    (pull_opts->flags & ~CFS_STORE_PULL_INSECURE))
		return cfs_error(EINVAL, "invalid pull options");
	if (!cfs_store_pull_source_valid(source))
		return cfs_error(EINVAL,
				 "'%.256s': not TRANSPORT:REFERENCE (e.g. "
				 "docker://IMAGE, docker-archive:FILE)",
				 source ? source : "");
	/* What the import would refuse, refused before the download. */
	if (import_opts) {
		if (import_opts->version != CFS_STORE_IMPORT_OPTIONS_VERSION ||
		    (import_opts->n_names && !import_opts->names))
			return cfs_error(EINVAL, "invalid import options");
		for (size_t i = 0; i < import_opts->n_names; i++)
			if (!cfs_store_name_valid(import_opts->names[i]))
				return cfs_error(EINVAL, "'%s': invalid name",
						 import_opts->names[i]);
		platform = import_opts->platform;
	}
	if (platform) {
		r = parse_platform(source, platform, &plat);
		if (r < 0)
			return r;
	}
	/* skopeo's oci: transport ends the path at the first ':'. */
	if (strchr(s->root, ':'))
		return cfs_error(EINVAL,
				 "store %s: skopeo cannot write below a path "
				 "with ':'",
				 s->root);

	r = store_writer_open(s, &w);
	if (r < 0)
		return r;
	if (asprintf(&layout, "%s/tmp/%s/layout", s->root, w.name) < 0)
		layout = NULL;
	if (asprintf(&tmpdir, "%s/tmp/%s/tmp", s->root, w.name) < 0)
		tmpdir = NULL;
	if (layout && asprintf(&dest, "oci:%s:latest", layout) < 0)
		dest = NULL;
	if (!layout || !tmpdir || !dest) {
		r = -ENOMEM;
		goto out;
	}
	if (mkdirat(w.fd, "tmp", 0700) < 0) {
		r = cfs_error_errno(errno, "store %s: tmp/%s/tmp", s->root,
				    w.name);
		goto out;
	}
	envp = env_with_tmpdir(tmpdir);
	if (!envp) {
		r = -ENOMEM;
		goto out;
	}

	/* The overrides are global options, before the command. */
	argv[argc++] = pull_opts->skopeo ? pull_opts->skopeo : "skopeo";
	if (platform) {
		argv[argc++] = "--override-os";
		argv[argc++] = plat.os;
		argv[argc++] = "--override-arch";
		argv[argc++] = plat.arch;
		if (plat.variant[0]) {
			argv[argc++] = "--override-variant";
			argv[argc++] = plat.variant;
		}
	}
	argv[argc++] = "copy";
	argv[argc++] = "--quiet";
	if (pull_opts->flags & CFS_STORE_PULL_INSECURE)
		argv[argc++] = "--src-tls-verify=false";
	/* No --preserve-digests: a docker v2s2 manifest must become an OCI
	 * one for the oci: destination. */
	argv[argc++] = "--";
	argv[argc++] = source;
	argv[argc++] = dest;
	argv[argc] = NULL;
	assert(argc < CFS_ARRAY_SIZE(argv));

	r = run_skopeo(source, !pull_opts->skopeo, (char *const *)argv, envp);
	if (r == 0)
		pull_artifact(source, layout, argv, argc, envp, pull_opts);
	if (r == 0) {
		r = store_import_as(s, dest, source, import_opts, result);
		if (r < 0)
			r = cfs_error_prefix(-r, "%s", source);
	}
out:
	env_free(envp);
	store_writer_close(s, &w);
	return r;
}
