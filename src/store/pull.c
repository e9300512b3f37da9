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
#include <openssl/evp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/json.h"
#include "common/util.h"
#include "convert/layer.h"
#include "convert/oci.h"
#include "store/partial.h"
#include "store/store-internal.h"

/* skopeo's stderr kept for the error message: only its last line is
 * used, so a longer output (a Go panic's stack) is dropped from the
 * front. */
#define PULL_STDERR_MAX (64 * 1024)
/* Longest transport name: skopeo's longest is "containers-storage". */
#define PULL_TRANSPORT_MAX 64
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

/* ---- running skopeo ------------------------------------------------------ */

/* The descriptor the image proxy serves on in the child (--sockfd). */
#define PROXY_CHILD_FD 3

/* Move @fd above the standard descriptors and PROXY_CHILD_FD
 * (close-on-exec), so that setting up the child's 0, 1, 2 and 3 cannot
 * overwrite it. */
static int fd_above_stdio(int fd)
{
	int nfd;

	if (fd < 0 || fd > PROXY_CHILD_FD)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, PROXY_CHILD_FD + 1);
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
						 int sock, char *const argv[],
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
	/* (dup2 leaves the copy open across exec) */
	if (sock >= 0 && dup2(sock, PROXY_CHILD_FD) < 0)
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
	_cleanup_close_ int fd = -1;
	json_object *index = NULL, *list, *e, *v, *ann;
	int r = -ENOENT;

	if (asprintf(&path, "%s/index.json", layout) < 0)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && cfs_json_read_fd(fd, STORE_JSON_MAX, &index) == 0 &&
	    json_object_object_get_ex(index, "manifests", &list) &&
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
 * has none). The reference of that tag for @source, whose manifest is
 * @digest, in *@out; 1 when @source is no registry's.
 */
static int artifact_ref(const char *source, const char *digest, char **out)
{
	const char *repo_end, *slash;

	if (strncmp(source, "docker://", 9) != 0 ||
	    strncmp(digest, "sha256:", 7) != 0)
		return 1;
	/* docker://HOST/REPO[:TAG][@DIGEST] -> docker://HOST/REPO */
	slash = strrchr(source, '/');
	repo_end = strchr(slash, '@');
	if (!repo_end)
		repo_end = strchr(slash, ':');
	if (!repo_end)
		repo_end = source + strlen(source);
	if (asprintf(out, "%.*s:sha256-%s", (int)(repo_end - source), source,
		     digest + 7) < 0) {
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

/*
 * Copy what the referrers tag @src holds into the layout, where the
 * import finds a composefs artifact (include/cfs/seal.h); nothing there
 * is no error. @argv holds the first copy's arguments, the last two the
 * source and destination.
 */
static void pull_artifact(const char *source, const char *src,
			  const char *layout, const char **argv, size_t argc,
			  char **envp, const cfs_store_pull_options *pull_opts)
{
	_cleanup_free_ char *dst = NULL;
	const char *args[24];
	size_t n = 0;

	if (asprintf(&dst, "oci:%s:%s", layout, strrchr(src, ':') + 1) < 0) {
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

/*
 * The current message without its leading "@drop: " (who said it first,
 * where the new message names something else), copied into @buf: the
 * next cfs_error() overwrites the message.
 */
static const char *message_without(const char *drop, char *buf, size_t size)
{
	const char *m = cfs_error_message();
	size_t n = strlen(drop);

	if (strncmp(m, drop, n) == 0 && m[n] == ':' && m[n + 1] == ' ')
		m += n + 2;
	snprintf(buf, size, "%s", m);
	return buf;
}

/* A pipe whose ends are above stdin, stdout and stderr (the child's
 * dup2 targets); -errno with both closed. */
static int pipe_above_stdio(int *rd, int *wr)
{
	int fds[2], e;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	*rd = fd_above_stdio(fds[0]);
	*wr = fd_above_stdio(fds[1]);
	if (*rd >= 0 && *wr >= 0)
		return 0;
	e = errno;
	cfs_closep(rd);
	cfs_closep(wr);
	*rd = *wr = -1;
	return -e;
}

/*
 * Fork and exec @argv: stdin and stdout on /dev/null, stderr on @err,
 * @sock as fd 3 unless it is -1, killed when the caller dies. 0 and
 * *@pid once the exec succeeded; else the exec's errno as an error, the
 * child reaped ("skopeo not found" when @default_prog is missing).
 */
static int spawn(const char *source, bool default_prog, char *const argv[],
		 char *const envp[], int err, int sock, pid_t *pid)
{
	_cleanup_close_ int devnull = -1, exec_r = -1, exec_w = -1;
	pid_t parent = getpid();
	int exec_errno = 0, status, r;
	ssize_t n;

	devnull = fd_above_stdio(open("/dev/null", O_RDWR | O_CLOEXEC));
	if (devnull < 0)
		return cfs_error_errno(errno, "/dev/null");
	r = pipe_above_stdio(&exec_r, &exec_w);
	if (r < 0)
		return cfs_error_errno(-r, "%s: pipe", source);
	*pid = fork();
	if (*pid < 0)
		return cfs_error_errno(errno, "%s: fork", source);
	if (*pid == 0)
		child_exec(parent, devnull, err, exec_w, sock, argv, envp);
	cfs_closep(&exec_w);
	exec_w = -1;

	/* The exec pipe closes on a successful exec, or brings errno. */
	do
		n = read(exec_r, &exec_errno, sizeof(exec_errno));
	while (n < 0 && errno == EINTR);
	if (n != sizeof(exec_errno))
		return 0;
	while (waitpid(*pid, &status, 0) < 0 && errno == EINTR)
		;
	*pid = 0;
	if (exec_errno == ENOENT && default_prog)
		return cfs_error(ENOENT,
				 "skopeo not found (apt-get install skopeo)");
	return cfs_error_errno(exec_errno, "running %s", argv[0]);
}

static int run_skopeo(const char *source, bool default_prog, char *const argv[],
		      char *const envp[])
{
	_cleanup_close_ int err_r = -1, err_w = -1;
	_cleanup_free_ char *tail = NULL;
	char line[PULL_LINE_MAX];
	pid_t pid;
	int status, r;
	size_t tail_len = 0;

	tail = malloc(PULL_STDERR_MAX + 1);
	if (!tail)
		return -ENOMEM;
	r = pipe_above_stdio(&err_r, &err_w);
	if (r < 0)
		return cfs_error_errno(-r, "%s: pipe", source);
	r = spawn(source, default_prog, argv, envp, err_w, -1, &pid);
	if (r < 0)
		return r;
	cfs_closep(&err_w);
	err_w = -1;
	r = read_tail(err_r, tail, &tail_len);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return cfs_error_errno(errno, "%s: waiting for skopeo",
					       source);
	}
	if (r < 0)
		return cfs_error_errno(-r, "%s: reading skopeo's output",
				       source);
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

/* ---- skopeo's image proxy ------------------------------------------------ */

/*
 * `skopeo experimental-image-proxy` (the protocol containers-image-proxy
 * and composefs-rs speak): JSON requests {"method", "args"} over a
 * SOCK_SEQPACKET socket pair, one message each way; replies {"success",
 * "value", "pipeid", "error"}, with a pipe's read end passed by
 * SCM_RIGHTS for methods that return data. A pipe is drained, then
 * FinishPipe gives its status (a blob that did not match its digest
 * fails there). skopeo 1.9.3 speaks 0.2.3.
 */

/* A reply: JSON of a few short values (data comes through pipes). */
#define PROXY_REPLY_MAX (64 * 1024)

struct proxy {
	const char *source;
	pid_t pid;
	int sock;
	int log_fd; /* skopeo's stderr: a file of the writer directory */
	uint32_t img;
	bool img_open;
};

/* The last line skopeo wrote to its stderr, for a message. */
static void proxy_log_line(struct proxy *p, char *out, size_t size)
{
	char buf[4096];
	off_t end = lseek(p->log_fd, 0, SEEK_END);
	off_t start =
		end > (off_t)sizeof(buf) - 1 ? end - (off_t)sizeof(buf) + 1 : 0;
	ssize_t n =
		end > 0 ? pread(p->log_fd, buf, (size_t)(end - start), start) :
			  0;

	out[0] = '\0';
	if (n > 0)
		last_line(buf, (size_t)n, out, size);
}

/* Start the proxy, its log in @wfd/skopeo.log. Whether this skopeo
 * has one shows at the first request (-EPIPE). */
static int proxy_start(struct proxy *p, const char *const *prefix,
		       size_t n_prefix, bool insecure, int wfd, char **envp)
{
	_cleanup_close_ int child = -1;
	const char *argv[24];
	size_t argc = 0;
	int sv[2];

	for (size_t i = 0; i < n_prefix && argc < 18; i++)
		argv[argc++] = prefix[i];
	argv[argc++] = "experimental-image-proxy";
	argv[argc++] = "--sockfd";
	argv[argc++] = "3";
	if (insecure)
		argv[argc++] = "--tls-verify=false";
	argv[argc] = NULL;

	p->log_fd = fd_above_stdio(
		openat(wfd, "skopeo.log",
		       O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600));
	if (p->log_fd < 0)
		return cfs_error_errno(errno, "%s: skopeo's log", p->source);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return cfs_error_errno(errno, "%s: socketpair", p->source);
	p->sock = fd_above_stdio(sv[0]);
	child = fd_above_stdio(sv[1]);
	if (p->sock < 0 || child < 0)
		return cfs_error_errno(errno, "%s: socketpair", p->source);
	return spawn(p->source, strcmp(argv[0], "skopeo") == 0,
		     (char *const *)argv, envp, p->log_fd, child, &p->pid);
}

/* Wait for the proxy to end (after Shutdown, or killed on failure). */
static void proxy_stop(struct proxy *p, bool kill_it)
{
	int status;

	cfs_closep(&p->sock);
	p->sock = -1;
	if (p->pid > 0) {
		if (kill_it)
			kill(p->pid, SIGKILL);
		while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
			;
		p->pid = 0;
	}
	cfs_closep(&p->log_fd);
	p->log_fd = -1;
}

/* Send the request @method with @args (taken). -EPIPE when the proxy
 * is gone. */
static int proxy_send(struct proxy *p, const char *method, json_object *args)
{
	json_object *req = json_object_new_object();
	const char *text;
	ssize_t n;

	if (!req) {
		json_object_put(args);
		return -ENOMEM;
	}
	json_object_object_add(req, "method", json_object_new_string(method));
	json_object_object_add(req, "args",
			       args ? args : json_object_new_array());
	text = json_object_to_json_string_ext(
		req, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	do
		n = send(p->sock, text, strlen(text), MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	json_object_put(req);
	if (n < 0)
		return errno == EPIPE || errno == ECONNRESET ?
			       -EPIPE :
			       cfs_error_errno(errno, "%s: skopeo proxy",
					       p->source);
	return 0;
}

/*
 * The reply to @method. Its value in *@value (a reference the caller
 * puts), its pipe in *@pipe_fd and *@pipeid when it has one (else -1 and
 * 0). -EPIPE when the proxy is gone (an older skopeo exits at once: no
 * message set then).
 */
static int proxy_recv(struct proxy *p, const char *method, json_object **value,
		      int *pipe_fd, uint32_t *pipeid)
{
	_cleanup_free_ char *buf = malloc(PROXY_REPLY_MAX + 1);
	json_object *rep = NULL, *v;
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov;
	struct msghdr msg = { 0 };
	struct cmsghdr *c;
	char line[PULL_LINE_MAX];
	ssize_t n;
	int fd = -1, r = 0;

	if (value)
		*value = NULL;
	if (pipe_fd)
		*pipe_fd = -1;
	if (pipeid)
		*pipeid = 0;
	if (!buf)
		return -ENOMEM;
	iov.iov_base = buf;
	iov.iov_len = PROXY_REPLY_MAX;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = ctl.b;
	msg.msg_controllen = sizeof(ctl.b);
	do
		n = recvmsg(p->sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	for (c = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL; c;
	     c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)) && fd < 0)
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if (n == 0 || (n < 0 && errno == ECONNRESET))
		return -EPIPE;
	if (n < 0)
		return cfs_error_errno(errno, "%s: skopeo proxy", p->source);
	if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		r = cfs_error(EPROTO, "%s: skopeo proxy: %s: reply too long",
			      p->source, method);
		goto out;
	}
	if (cfs_json_parse(buf, (size_t)n, &rep) < 0 ||
	    !json_object_object_get_ex(rep, "success", &v)) {
		r = cfs_error(EPROTO, "%s: skopeo proxy: %s: bad reply",
			      p->source, method);
		goto out;
	}
	if (!json_object_get_boolean(v)) {
		const char *e = "no reason given";

		if (json_object_object_get_ex(rep, "error", &v) &&
		    json_object_get_string(v)[0])
			e = json_object_get_string(v);
		snprintf(line, sizeof(line), "%s", e);
		r = cfs_error(EIO, "%s: skopeo proxy: %s: %s", p->source,
			      method, line);
		goto out;
	}
	if (value && json_object_object_get_ex(rep, "value", &v))
		*value = json_object_get(v);
	if (pipeid && json_object_object_get_ex(rep, "pipeid", &v))
		*pipeid = (uint32_t)json_object_get_int64(v);
	if (pipe_fd) {
		*pipe_fd = fd;
		fd = -1;
	}
out:
	if (fd >= 0)
		close(fd);
	json_object_put(rep);
	return r;
}

/* Call @method with @args (taken); proxy_recv() says what comes back. */
static int proxy_call(struct proxy *p, const char *method, json_object *args,
		      json_object **value, int *pipe_fd, uint32_t *pipeid)
{
	int r = proxy_send(p, method, args);

	return r < 0 ? r : proxy_recv(p, method, value, pipe_fd, pipeid);
}

/* Ask for the status of pipe @pipeid; proxy_recv() gets it. */
static int proxy_finish_send(struct proxy *p, uint32_t pipeid)
{
	json_object *args = json_object_new_array();

	json_object_array_add(args, json_object_new_int64(pipeid));
	return proxy_send(p, "FinishPipe", args);
}

/* Read @fd to its end into a new buffer of at most @max bytes. */
static int read_all(int fd, size_t max, char **out, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap + 1);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t k;

		if (n == cap) {
			char *nb;

			if (cap > max) {
				free(buf);
				return -EFBIG;
			}
			cap *= 2;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
		}
		k = read(fd, buf + n, cap - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			int e = errno;
			free(buf);
			return -e;
		}
		if (k == 0)
			break;
		n += (size_t)k;
	}
	if (n > max) {
		free(buf);
		return -EFBIG;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* What @method ("GetManifest", "GetFullConfig") gives for the open
 * image. */
static int proxy_bytes(struct proxy *p, const char *method, char **out,
		       size_t *len, char **value)
{
	json_object *args = json_object_new_array(), *v = NULL;
	uint32_t pipeid;
	int fd, r;

	json_object_array_add(args, json_object_new_int64(p->img));
	r = proxy_call(p, method, args, &v, &fd, &pipeid);
	if (r == 0 && value)
		*value = strdup(json_object_is_type(v, json_type_string) ?
					json_object_get_string(v) :
					"");
	json_object_put(v);
	if (r == 0 && value && !*value) {
		if (fd >= 0)
			close(fd);
		return -ENOMEM;
	}
	if (r < 0)
		return r;
	if (fd < 0)
		return cfs_error(EPROTO,
				 "%s: skopeo proxy: GetManifest: no pipe",
				 p->source);
	/* The proxy closes the pipe only when FinishPipe is done, and
	 * FinishPipe waits until all was read: ask first, then read. */
	r = proxy_finish_send(p, pipeid);
	if (r == 0) {
		r = read_all(fd, CFS_OCI_JSON_MAX, out, len);
		if (r < 0)
			r = cfs_error_errno(-r, "%s: skopeo proxy: %s",
					    p->source, method);
	}
	close(fd);
	if (r == 0)
		r = proxy_recv(p, "FinishPipe", NULL, NULL, NULL);
	if (r < 0) {
		free(*out);
		*out = NULL;
	}
	return r;
}

/*
 * GetBlob: in *@fd the pipe blob @digest (@size bytes) of the open image
 * comes through, with FinishPipe asked for at once: skopeo closes the
 * pipe only when FinishPipe is done, and FinishPipe waits until all was
 * read, so a transfer that breaks ends the pipe early (and gives its
 * reason) instead of a read that waits for ever. Read, close, then
 * proxy_recv() the FinishPipe answer.
 */
static int proxy_get_blob(struct proxy *p, const char *digest, int64_t size,
			  int *fd, uint32_t *pipeid)
{
	json_object *args = json_object_new_array(), *v = NULL;
	int r;

	*fd = -1;
	json_object_array_add(args, json_object_new_int64(p->img));
	json_object_array_add(args, json_object_new_string(digest));
	json_object_array_add(args, json_object_new_int64(size));
	r = proxy_call(p, "GetBlob", args, &v, fd, pipeid);
	json_object_put(v);
	if (r == 0 && *fd < 0)
		r = cfs_error(EPROTO, "%s: skopeo proxy: GetBlob: no pipe",
			      p->source);
	if (r == 0)
		r = proxy_finish_send(p, *pipeid);
	if (r < 0 && *fd >= 0) {
		close(*fd);
		*fd = -1;
	}
	return r;
}

/*
 * Blob @digest ("sha256:<hex>", @size bytes) of the open image into
 * @dirfd/<hex>, checked against both while it streams: a short, long
 * or wrong blob is an error naming it, and leaves no file.
 */
static int proxy_blob(struct proxy *p, const char *digest, int64_t size,
		      int dirfd)
{
	struct cfs_atomic_file af = { .fd = -1 };
	_cleanup_free_ uint8_t *buf = NULL;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t got[32], want[32];
	uint64_t done = 0;
	uint32_t pipeid;
	unsigned int mdlen;
	int fd = -1, r;

	buf = malloc(1024 * 1024);
	if (!md || !buf || cfs_parse_sha256(digest, want) < 0 || size < 0) {
		EVP_MD_CTX_free(md);
		return buf && md ? cfs_error(EINVAL, "%s: blob %s: bad digest",
					     p->source, digest) :
				   -ENOMEM;
	}
	r = proxy_get_blob(p, digest, size, &fd, &pipeid);
	if (r < 0) {
		EVP_MD_CTX_free(md);
		return r;
	}
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		r = -EIO;
	if (r == 0)
		r = cfs_atomic_open(&af, dirfd, 0644);
	while (r == 0) {
		ssize_t k = read(fd, buf, 1024 * 1024);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			r = -errno;
		if (k <= 0)
			break;
		if (EVP_DigestUpdate(md, buf, (size_t)k) != 1)
			r = -EIO;
		if (r == 0)
			r = cfs_write_all(af.fd, buf, (size_t)k);
		done += (uint64_t)k;
	}
	close(fd);
	if (r < 0)
		r = cfs_error_errno(-r, "%s: blob %s", p->source, digest);
	else if ((r = proxy_recv(p, "FinishPipe", NULL, NULL, NULL)) < 0 &&
		 r != -EPIPE) {
		/* "SOURCE: skopeo proxy: FinishPipe: why" names no blob */
		char why[PULL_LINE_MAX];

		r = cfs_error(-r, "%s: blob %s: %s", p->source, digest,
			      message_without(p->source, why, sizeof(why)));
	}
	if (r == 0 && done != (uint64_t)size)
		r = cfs_error(EIO,
			      "%s: blob %s: %llu bytes came, the manifest "
			      "says %lld",
			      p->source, digest, (unsigned long long)done,
			      (long long)size);
	if (r == 0 && (EVP_DigestFinal_ex(md, got, &mdlen) != 1 ||
		       memcmp(got, want, 32) != 0))
		r = cfs_error(EBADMSG, "%s: blob %s: content does not match",
			      p->source, digest);
	if (r == 0)
		r = cfs_atomic_commit(&af, digest + 7, true);
	else
		cfs_atomic_abort(&af);
	EVP_MD_CTX_free(md);
	return r;
}

/* Blob @digest (@size bytes, a config: CFS_OCI_JSON_MAX at most) of the
 * open image into memory; its size and digest are checked where it is
 * used (cfs_oci_open_manifest()). */
static int proxy_blob_mem(struct proxy *p, const char *digest, int64_t size,
			  char **out, size_t *len)
{
	uint32_t pipeid;
	int fd = -1, r;

	if (size < 0 || size > CFS_OCI_JSON_MAX)
		return cfs_error(EFBIG, "%s: blob %s: %lld bytes, limit %d",
				 p->source, digest, (long long)size,
				 CFS_OCI_JSON_MAX);
	r = proxy_get_blob(p, digest, size, &fd, &pipeid);
	if (r < 0)
		return r;
	r = read_all(fd, CFS_OCI_JSON_MAX, out, len);
	if (r < 0)
		r = cfs_error_errno(-r, "%s: blob %s", p->source, digest);
	close(fd);
	if (r == 0) {
		r = proxy_recv(p, "FinishPipe", NULL, NULL, NULL);
		if (r < 0 && r != -EPIPE) {
			char why[PULL_LINE_MAX];

			r = cfs_error(-r, "%s: blob %s: %s", p->source, digest,
				      message_without(p->source, why,
						      sizeof(why)));
		}
		if (r < 0) {
			free(*out);
			*out = NULL;
		}
	}
	return r;
}

/* A JSON document of the proxy's: @key's descriptor {digest, size}. */
static int descriptor(json_object *d, const char **digest, int64_t *size)
{
	json_object *v;

	if (!d || !json_object_object_get_ex(d, "digest", &v) ||
	    !json_object_is_type(v, json_type_string))
		return -EINVAL;
	*digest = json_object_get_string(v);
	if (!json_object_object_get_ex(d, "size", &v) ||
	    !json_object_is_type(v, json_type_int))
		return -EINVAL;
	*size = json_object_get_int64(v);
	return *size >= 0 && strncmp(*digest, "sha256:", 7) == 0 &&
			       store_is_hex(*digest + 7, true) ?
		       0 :
		       -EINVAL;
}

/* @dirfd/@name with @data, fsync'ed by the import's syncfs later. */
static int write_file_at(int dirfd, const char *name, const void *data,
			 size_t len)
{
	return cfs_atomic_write(dirfd, name, data, len, CFS_ATOMIC_REPLACE);
}

/* What proxy_pull() fetched and skipped. */
struct proxy_layers {
	char *man, *config; /* the bytes, as the import gets them */
	size_t man_len, config_len;
	char man_digest[80]; /* "sha256:<hex>" of man */
	char media[128]; /* the manifest's media type */
	bool layout; /* written into the layout (write_layout()) */
	bool made; /* skopeo made the manifest (see proxy_fetch()) */
	json_object *manifest; /* parsed */
	char **diff_ids; /* 64 hex, from the config */
	size_t n_diff_ids;
	bool *skipped; /* per layer: its record made the blob unneeded */
	uint64_t *fetched; /* per layer: bytes of its blob that came */
	size_t n;
	/* The import asks for the blobs it needs (a stream each, converted
	 * as it comes); else proxy_fetch() copied them into the layout. */
	bool stream;
};

static void proxy_layers_clear(struct proxy_layers *pl)
{
	free(pl->man);
	free(pl->config);
	json_object_put(pl->manifest);
	store_strv_free(pl->diff_ids, pl->n_diff_ids);
	free(pl->skipped);
	free(pl->fetched);
	memset(pl, 0, sizeof(*pl));
}

/* Count @bytes of blob @digest as fetched, against the first layer of
 * that digest not counted yet. */
static void count_fetched(struct proxy_layers *pl, const char *digest,
			  uint64_t bytes)
{
	json_object *layers, *v;

	if (!json_object_object_get_ex(pl->manifest, "layers", &layers))
		return;
	for (size_t i = 0; i < pl->n; i++) {
		json_object *l = json_object_array_get_idx(layers, i);

		if (pl->fetched[i] == 0 &&
		    json_object_object_get_ex(l, "digest", &v) &&
		    strcmp(json_object_get_string(v), digest) == 0) {
			pl->fetched[i] = bytes;
			return;
		}
	}
}

/* The media type of layer descriptor @l as its blob's first bytes say
 * (gzip, zstd, else tar); *@changed when that is not what it said. */
static int fix_media_type(int bfd, json_object *l, bool *changed)
{
	static const char oci[] = "application/vnd.oci.image.layer.v1.tar";
	unsigned char m[4] = { 0 };
	const char *digest, *want, *have = "";
	char type[80];
	json_object *v;
	int fd;
	ssize_t n;

	json_object_object_get_ex(l, "digest", &v);
	digest = json_object_get_string(v);
	fd = openat(bfd, digest + 7, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = pread(fd, m, sizeof(m), 0);
	close(fd);
	if (n < 0)
		return -errno;
	want = m[0] == 0x1f && m[1] == 0x8b ? "+gzip" :
	       m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd ?
					      "+zstd" :
					      "";
	if (json_object_object_get_ex(l, "mediaType", &v))
		have = json_object_get_string(v);
	if ((strstr(have, "gzip") != NULL) == (strcmp(want, "+gzip") == 0) &&
	    (strstr(have, "zstd") != NULL) == (strcmp(want, "+zstd") == 0))
		return 0;
	snprintf(type, sizeof(type), "%s%s", oci, want);
	json_object_object_add(l, "mediaType", json_object_new_string(type));
	*changed = true;
	return 0;
}

/*
 * The manifest and config of the open image, into @pl, and the layers'
 * diff_ids. The manifest is the proxy's: skopeo converts a docker v2s2
 * manifest to OCI, as "skopeo copy" to an oci: layout does. Whether the
 * import can stream the blobs it needs (pl->stream), else
 * proxy_copy_blobs() must copy them first.
 */
static int proxy_fetch(struct proxy *p, struct proxy_layers *pl)
{
	_cleanup_free_ char *orig = NULL;
	char got[CFS_SHA256_STR_SIZE];
	json_object *layers, *cfg = NULL, *mt;
	const char *cdigest,
		*media = "application/vnd.oci.image.manifest.v1+json";
	int64_t csize;
	int r;

	r = proxy_bytes(p, "GetManifest", &pl->man, &pl->man_len, &orig);
	if (r < 0)
		return r;
	r = cfs_sha256(pl->man, pl->man_len, NULL, pl->man_digest);
	if (r < 0)
		return r;
	r = cfs_json_parse(pl->man, pl->man_len, &pl->manifest);
	if (r < 0)
		return cfs_error_prefix(-r, "%s: manifest %s", p->source,
					pl->man_digest);
	if (!json_object_object_get_ex(pl->manifest, "config", &cfg) ||
	    descriptor(cfg, &cdigest, &csize) < 0 ||
	    !json_object_object_get_ex(pl->manifest, "layers", &layers) ||
	    !json_object_is_type(layers, json_type_array))
		return cfs_error(EINVAL,
				 "%s: the manifest has no config or layers "
				 "(an index or an artifact?)",
				 p->source);
	if (json_object_object_get_ex(pl->manifest, "mediaType", &mt) &&
	    json_object_is_type(mt, json_type_string))
		media = json_object_get_string(mt);
	snprintf(pl->media, sizeof(pl->media), "%s", media);
	pl->n = json_object_array_length(layers);
	pl->skipped = calloc(pl->n ? pl->n : 1, sizeof(bool));
	pl->fetched = calloc(pl->n ? pl->n : 1, sizeof(uint64_t));
	if (!pl->skipped || !pl->fetched)
		return -ENOMEM;
	/* A manifest skopeo made (its digest is not the source's) may call
	 * a layer gzip that is not: a docker-archive's are plain tar,
	 * whatever its manifest says. skopeo copy looks at the bytes; so
	 * does fix_media_type(), on a copy of the blob. A registry's
	 * docker v2s2 manifest made OCI says what its layers are. */
	pl->made = strcmp(orig, "") != 0 &&
		   strcmp(orig + (strncmp(orig, "sha256:", 7) ? 0 : 7),
			  pl->man_digest + 7) != 0;
	pl->stream = !pl->made || strncmp(p->source, "docker://", 9) == 0;
	/* The config the manifest names. Converting a docker v2s2 manifest
	 * to OCI, skopeo converts the config too, and names the result,
	 * which no registry has: GetFullConfig gives it. Else the config is
	 * a blob of the registry's, raw (GetFullConfig's would be the same
	 * JSON written anew). */
	r = proxy_bytes(p, "GetFullConfig", &pl->config, &pl->config_len, NULL);
	if (r == 0) {
		r = cfs_sha256(pl->config, pl->config_len, NULL, got);
		if (r == 0 && strcmp(got, cdigest) != 0) {
			free(pl->config);
			pl->config = NULL;
			r = proxy_blob_mem(p, cdigest, csize, &pl->config,
					   &pl->config_len);
		}
	}
	if (r == 0)
		r = store_config_diff_ids(pl->config, pl->config_len,
					  &pl->diff_ids, &pl->n_diff_ids);
	return r;
}

/* The blobs of the layers the store has no usable record of, into the
 * layout's blobs/sha256 (@bfd), checked as they come; their media types
 * fixed from their bytes in a manifest skopeo made. */
static int proxy_copy_blobs(cfs_store *s, struct proxy *p, int bfd,
			    struct proxy_layers *pl)
{
	json_object *layers;
	int r = 0;

	json_object_object_get_ex(pl->manifest, "layers", &layers);
	for (size_t i = 0; r == 0 && i < pl->n; i++) {
		json_object *l = json_object_array_get_idx(layers, i);
		const char *digest;
		int64_t size;
		bool changed = false;

		if (descriptor(l, &digest, &size) < 0)
			return cfs_error(EINVAL,
					 "%s: layer %zu: bad descriptor",
					 p->source, i);
		pl->skipped[i] = i < pl->n_diff_ids &&
				 store_record_usable(s, pl->diff_ids[i]);
		if (pl->skipped[i])
			continue;
		if (faccessat(bfd, digest + 7, F_OK, 0) < 0) {
			r = proxy_blob(p, digest, size, bfd);
			if (r == 0)
				count_fetched(pl, digest, (uint64_t)size);
		}
		if (r == 0 && pl->made)
			r = fix_media_type(bfd, l, &changed);
		if (r == 0 && changed) {
			const char *text = json_object_to_json_string_ext(
				pl->manifest,
				JSON_C_TO_STRING_PLAIN |
					JSON_C_TO_STRING_NOSLASHESCAPE);
			free(pl->man);
			pl->man = strdup(text);
			if (!pl->man)
				return -ENOMEM;
			pl->man_len = strlen(pl->man);
			r = cfs_sha256(pl->man, pl->man_len, NULL,
				       pl->man_digest);
		}
	}
	return r;
}

/* The rest of the layout that the import reads (@lfd, its blobs in
 * @bfd): config, manifest, index.json and oci-layout. Only where the
 * import needs a layout: blobs copied first, or an artifact beside. */
static int write_layout(struct proxy *p, int lfd, int bfd,
			struct proxy_layers *pl)
{
	_cleanup_free_ char *index = NULL;
	const char *cdigest;
	json_object *cfg;
	int64_t csize;
	int r;

	if (pl->layout)
		return 0;
	json_object_object_get_ex(pl->manifest, "config", &cfg);
	r = descriptor(cfg, &cdigest, &csize);
	if (r == 0)
		r = write_file_at(bfd, cdigest + 7, pl->config, pl->config_len);
	if (r == 0)
		r = write_file_at(bfd, pl->man_digest + 7, pl->man,
				  pl->man_len);
	if (r == 0 &&
	    asprintf(&index,
		     "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"%s\","
		     "\"digest\":\"%s\",\"size\":%zu,\"annotations\":"
		     "{\"org.opencontainers.image.ref.name\":\"latest\"}}]}",
		     pl->media, pl->man_digest, pl->man_len) < 0) {
		index = NULL;
		r = -ENOMEM;
	}
	if (r == 0)
		r = write_file_at(lfd, "index.json", index, strlen(index));
	if (r == 0)
		r = write_file_at(lfd, "oci-layout",
				  "{\"imageLayoutVersion\":\"1.0.0\"}", 30);
	if (r < 0)
		return cfs_error_errno(-r, "%s: writing the layout", p->source);
	pl->layout = true;
	return 0;
}

/* Layers the import needed after all: their records went (gc, a
 * repair) between the check and the import. */
static int proxy_refetch(cfs_store *s, struct proxy *p, int bfd,
			 struct proxy_layers *pl)
{
	json_object *layers;
	int r = 0, n = 0;

	json_object_object_get_ex(pl->manifest, "layers", &layers);
	for (size_t i = 0; r == 0 && i < pl->n; i++) {
		const char *digest;
		int64_t size;

		if (!pl->skipped[i] || store_record_usable(s, pl->diff_ids[i]))
			continue;
		pl->skipped[i] = false;
		n++;
		r = descriptor(json_object_array_get_idx(layers, i), &digest,
			       &size);
		if (r == 0)
			r = proxy_blob(p, digest, size, bfd);
		if (r == 0)
			count_fetched(pl, digest, (uint64_t)size);
	}
	return r < 0 ? r : n;
}

static int open_dir_at(int dirfd, const char *name, int *fd)
{
	if (mkdirat(dirfd, name, 0755) < 0 && errno != EEXIST)
		return -errno;
	*fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return *fd < 0 ? -errno : 0;
}

/*
 * Is there an artifact under the referrers tag (*@ref)? Asked of the
 * proxy: a skopeo copy started only to hear "manifest unknown" costs a
 * process and its start-up on every pull. skopeo 1.9.3's proxy has no
 * OpenImageOptional: it opens the tag and asks for its manifest. Where
 * the proxy cannot say, true: the copy finds out.
 */
static bool proxy_has_artifact(struct proxy *p, const char *manifest_digest,
			       char **ref)
{
	_cleanup_free_ char *man = NULL;
	json_object *args, *v = NULL;
	uint32_t img = p->img;
	size_t len;
	bool has = true;
	int r;

	if (artifact_ref(p->source, manifest_digest, ref) != 0)
		return false;
	args = json_object_new_array();
	json_object_array_add(args, json_object_new_string(*ref));
	r = proxy_call(p, "OpenImage", args, &v, NULL, NULL);
	/* skopeo 1.9's OpenImage reads the manifest: the registry's "no
	 * such manifest" (distribution: "manifest unknown") is the answer. */
	if (r < 0 && r != -EPIPE &&
	    (strcasestr(cfs_error_message(), "manifest unknown") ||
	     strcasestr(cfs_error_message(), "not found")))
		has = false;
	if (r == 0 && json_object_is_type(v, json_type_int)) {
		p->img = (uint32_t)json_object_get_int64(v);
		has = proxy_bytes(p, "GetManifest", &man, &len, NULL) == 0;
		args = json_object_new_array();
		json_object_array_add(args, json_object_new_int64(p->img));
		if (proxy_call(p, "CloseImage", args, NULL, NULL, NULL) < 0)
			has = true;
		p->img = img;
	}
	json_object_put(v);
	cfs_error_clear();
	return has;
}

/*
 * The import's blobs, streamed (struct cfs_blob_fetch): GetBlob gives a
 * pipe the conversion reads as the bytes come; FinishPipe, asked for at
 * once (see proxy_blob()), answers when skopeo is done with it.
 */
struct proxy_stream {
	struct proxy *p;
	struct proxy_layers *pl;
	struct cfs_partial *partial; /* layers rebuilt instead, or NULL */
	uint32_t pipeid;
	char digest[80];
	int64_t size;
};

/* The current message, about blob @digest of @p's source, as
 * "blob DIGEST: WHY": the caller names the source. */
static int blob_error(struct proxy *p, int r, const char *digest)
{
	char why[PULL_LINE_MAX];

	if (r == -EPIPE)
		return cfs_error(EIO, "blob %s: skopeo proxy ended", digest);
	return cfs_error(-r, "blob %s: %s", digest,
			 message_without(p->source, why, sizeof(why)));
}

static int stream_open(void *opaque, const char *digest, int64_t size, int *fd)
{
	struct proxy_stream *ps = opaque;
	struct proxy *p = ps->p;
	int r;

	snprintf(ps->digest, sizeof(ps->digest), "%s", digest);
	ps->size = size;
	r = cfs_partial_open(ps->partial, digest, fd);
	if (r != 0)
		return r < 0 ? r : 0;
	r = proxy_get_blob(p, digest, size, fd, &ps->pipeid);
	if (r < 0)
		r = blob_error(p, r, digest);
	return r;
}

static int stream_finish(void *opaque, int fd, bool complete)
{
	struct proxy_stream *ps = opaque;
	struct proxy *p = ps->p;
	char why[PULL_LINE_MAX];
	const char *m;
	bool broke = false;
	uint64_t fetched;
	int r;

	if (cfs_partial_finish(ps->partial, fd, complete, &r)) {
		if (r == 0 && complete &&
		    cfs_partial_layer(ps->partial, ps->digest, &fetched, NULL))
			count_fetched(ps->pl, ps->digest, fetched);
		return r;
	}
	/* Stopped early: if the pipe is at its end, skopeo stopped first
	 * (a transfer that broke); else the conversion did, and skopeo's
	 * complaint about the pipe closed under it is no news. */
	if (!complete) {
		char c;
		int fl = fcntl(fd, F_GETFL);

		broke = fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0 &&
			read(fd, &c, 1) == 0;
	}
	/* Closed first: skopeo, still writing what was not read, stops. */
	close(fd);
	r = proxy_recv(p, "FinishPipe", NULL, NULL, NULL);
	if (r < 0 && r != -EPIPE && !complete && !broke) {
		cfs_error_clear();
		return 0;
	}
	if (r == 0) {
		if (complete)
			count_fetched(ps->pl, ps->digest, (uint64_t)ps->size);
		return 0;
	}
	/* "SOURCE: skopeo proxy: FinishPipe: why": said as a transfer */
	m = cfs_error_message();
	if (r != -EPIPE && strstr(m, "skopeo proxy: FinishPipe: ")) {
		snprintf(why, sizeof(why), "%s",
			 strstr(m, "skopeo proxy: FinishPipe: ") + 26);
		return cfs_error(-r, "blob %s: transfer failed: %s", ps->digest,
				 why);
	}
	return blob_error(p, r, ps->digest);
}

/* The import of @dest failed: say it of @source. The layout in tmp/
 * that the message names is ours, not the user's. */
static int import_error(int r, const char *source, const char *dest)
{
	char why[PULL_LINE_MAX];

	message_without(dest, why, sizeof(why));
	return cfs_error(-r, "%s: %s", source, why[0] ? why : strerror(-r));
}

/*
 * The pull through skopeo's image proxy: the manifest and config, then
 * only the blobs of the layers the store has no record of, each
 * streamed into the conversion as the import asks for it. The import
 * takes the manifest and config from memory; only a source whose blobs
 * must be copied first, or an image with a composefs artifact, gets an
 * OCI layout @layout (@dest as a source) in the writer's directory. 1 when this skopeo has
 * no proxy (the caller copies with "skopeo copy" instead), else 0 or
 * -errno.
 */
static int proxy_pull(cfs_store *s, struct store_writer *w, const char *source,
		      const char **copy_argv, size_t copy_argc, size_t n_prefix,
		      char **envp, const cfs_store_pull_options *pull_opts,
		      const char *layout, const char *dest,
		      const cfs_store_import_options *import_opts,
		      cfs_store_import_result *result)
{
	struct proxy p = { .source = source, .sock = -1, .log_fd = -1 };
	struct proxy_layers pl = { 0 };
	struct proxy_stream ps = { .p = &p, .pl = &pl };
	const struct cfs_blob_fetch fetch = { .open = stream_open,
					      .finish = stream_finish,
					      .opaque = &ps };
	_cleanup_free_ char *art = NULL;
	_cleanup_close_ int lfd = -1, bfd = -1, blobs = -1;
	json_object *args, *v = NULL;
	char line[PULL_LINE_MAX];
	bool have_art;
	int r;

	r = proxy_start(&p, copy_argv, n_prefix,
			pull_opts->flags & CFS_STORE_PULL_INSECURE, w->fd,
			envp);
	if (r == 0)
		r = proxy_call(&p, "Initialize", NULL, &v, NULL, NULL);
	if (r == 0 && (!json_object_is_type(v, json_type_string) ||
		       strncmp(json_object_get_string(v), "0.2.", 4) != 0))
		r = -EPIPE; /* a protocol this code does not know */
	json_object_put(v);
	v = NULL;
	if (r == -EPIPE) {
		proxy_stop(&p, true);
		cfs_error_clear();
		return 1;
	}
	if (r == 0) {
		args = json_object_new_array();
		json_object_array_add(args, json_object_new_string(source));
		r = proxy_call(&p, "OpenImage", args, &v, NULL, NULL);
		p.img = (uint32_t)json_object_get_int64(v);
		json_object_put(v);
	}
	if (r == 0)
		r = proxy_fetch(&p, &pl);
	/* A layout in the writer's directory only where the import needs
	 * one: blobs copied first, or an artifact beside the image. Else
	 * the import gets the manifest and config from memory. */
	have_art = r == 0 && proxy_has_artifact(&p, pl.man_digest, &art);
	if (r == 0 && (!pl.stream || have_art)) {
		r = open_dir_at(w->fd, "layout", &lfd);
		if (r == 0)
			r = open_dir_at(lfd, "blobs", &blobs);
		if (r == 0)
			r = open_dir_at(blobs, "sha256", &bfd);
		if (r < 0)
			r = cfs_error_errno(-r, "%s", layout);
		if (r == 0 && !pl.stream)
			r = proxy_copy_blobs(s, &p, bfd, &pl);
		if (r == 0)
			r = write_layout(&p, lfd, bfd, &pl);
	}
	if (r == 0 && have_art)
		pull_artifact(source, art, layout, copy_argv, copy_argc, envp,
			      pull_opts);
	if (r == 0 && !pl.layout) {
		struct cfs_oci_image *img = NULL;

		r = cfs_oci_open_manifest(&img, source, pl.man, pl.man_len,
					  pl.config, pl.config_len);
		if (r == 0 && !(pull_opts->flags & CFS_STORE_PULL_NO_PARTIAL))
			r = cfs_partial_prepare(
				&ps.partial, s, source,
				pull_opts->flags & CFS_STORE_PULL_INSECURE,
				pull_opts->flags & CFS_STORE_PULL_TRUST_TOC,
				img);
		if (r == 0)
			r = store_import_as(s, source, source, img, import_opts,
					    &fetch, result);
		cfs_oci_free(img);
		if (r < 0) /* one "SOURCE: " at the front */
			r = import_error(r, source, source);
	} else if (r == 0) {
		r = store_import_as(s, dest, source, NULL, import_opts,
				    pl.stream ? &fetch : NULL, result);
		if (r == -ENOENT && !pl.stream) {
			/* a blob the fetch left out, its record gone? */
			char why[PULL_LINE_MAX];
			int n;

			snprintf(why, sizeof(why), "%s", cfs_error_message());
			n = proxy_refetch(s, &p, bfd, &pl);
			if (n > 0)
				r = store_import_as(s, dest, source, NULL,
						    import_opts, NULL, result);
			else
				r = n < 0 ? n : cfs_error(ENOENT, "%s", why);
		}
		if (r < 0)
			r = import_error(r, source, dest);
	}
	for (size_t i = 0; r == 0 && result && i < result->n_layers; i++) {
		cfs_store_layer_result *l = &result->layers[i];

		l->bytes_fetched = (i < pl.n ? pl.fetched[i] : 0) +
				   cfs_partial_spent(ps.partial, l->digest);
		l->partial = cfs_partial_layer(ps.partial, l->digest, NULL,
					       &l->unverified);
	}
	if (r == -EPIPE) {
		proxy_log_line(&p, line, sizeof(line));
		r = cfs_error(EIO, "%s: skopeo proxy ended%s%s", source,
			      line[0] ? ": " : "", line);
	}
	if (p.sock >= 0 && r == 0) {
		/* CloseImage: the proxy removes what it unpacked */
		args = json_object_new_array();
		json_object_array_add(args, json_object_new_int64(p.img));
		if (proxy_call(&p, "CloseImage", args, NULL, NULL, NULL) < 0 ||
		    proxy_call(&p, "Shutdown", NULL, NULL, NULL, NULL) < 0)
			cfs_error_clear();
	}
	proxy_stop(&p, r < 0);
	proxy_layers_clear(&pl);
	cfs_partial_free(ps.partial);
	return r;
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
	struct cfs_oci_platform plat;
	_cleanup_free_ char *layout = NULL, *dest = NULL, *tmpdir = NULL;
	_cleanup_free_ char *art = NULL;
	const char *argv[20];
	const char *platform = NULL;
	char **envp = NULL;
	size_t argc = 0, n_prefix;
	int r;

	if (!pull_opts)
		pull_opts = &defaults;
	if (!CFS_OPTIONS_VERSION_OK(pull_opts->version,
				    CFS_STORE_PULL_OPTIONS_VERSION) ||
	    (pull_opts->flags &
	     ~(CFS_STORE_PULL_INSECURE | CFS_STORE_PULL_NO_PARTIAL |
	       CFS_STORE_PULL_TRUST_TOC)))
		return cfs_error(EINVAL, "invalid pull options");
	if (!cfs_store_pull_source_valid(source))
		return cfs_error(EINVAL,
				 "'%.256s': not TRANSPORT:REFERENCE (e.g. "
				 "docker://IMAGE, docker-archive:FILE)",
				 source ? source : "");
	/* What the import would refuse, refused before the download. */
	if (import_opts) {
		if (!CFS_OPTIONS_VERSION_OK(import_opts->version,
					    CFS_STORE_IMPORT_OPTIONS_VERSION) ||
		    (import_opts->n_names && !import_opts->names))
			return cfs_error(EINVAL, "invalid import options");
		for (size_t i = 0; i < import_opts->n_names; i++)
			if (!cfs_store_name_valid(import_opts->names[i]))
				return cfs_error(EINVAL, "'%s': invalid name",
						 import_opts->names[i]);
		platform = import_opts->platform;
	}
	if (platform) {
		/* given to skopeo as --override-os/-arch/-variant */
		r = cfs_oci_parse_platform(platform, &plat);
		if (r < 0)
			r = cfs_error_prefix(-r, "%s", source);
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

	/* The overrides are global options, before the command. So is
	 * --tmpdir: containers/image puts big temporary files (an
	 * oci-archive: unpacked, 65 MiB for debian-python) in /var/tmp
	 * whatever TMPDIR says, and skopeo 1.9's proxy leaves them there;
	 * in the writer's directory they go with it. */
	argv[argc++] = pull_opts->skopeo ? pull_opts->skopeo : "skopeo";
	argv[argc++] = "--tmpdir";
	argv[argc++] = tmpdir;
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
	n_prefix = argc;
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

	/* Through the image proxy, fetching only what the store lacks;
	 * with a skopeo that has none, a plain copy. */
	r = proxy_pull(s, &w, source, argv, argc, n_prefix, envp, pull_opts,
		       layout, dest, import_opts, result);
	if (r <= 0)
		goto out;
	r = run_skopeo(source, !pull_opts->skopeo, (char *const *)argv, envp);
	if (r == 0) {
		char digest[80];

		if (layout_manifest(layout, digest) < 0)
			r = 1;
		else if ((r = artifact_ref(source, digest, &art)) == 0)
			pull_artifact(source, art, layout, argv, argc, envp,
				      pull_opts);
	}
	if (r == 1)
		r = 0;
	if (r == 0) {
		r = store_import_as(s, dest, source, NULL, import_opts, NULL,
				    result);
		if (r < 0)
			r = import_error(r, source, dest);
	}
out:
	env_free(envp);
	store_writer_close(s, &w);
	return r;
}
