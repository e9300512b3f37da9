// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
/* Blob ranges from an OCI distribution registry (registry.h). */

#include <curl/curl.h>
#include <dlfcn.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/json.h"
#include "common/util.h"
#include "store/registry.h"

/* auth.json, the token document and an error body read at most. */
#define AUTH_FILE_MAX (1024 * 1024)
#define TOKEN_MAX (64 * 1024)
#define ERROR_BODY_MAX 512
/* A header line, a line of a multipart answer between its parts. */
#define LINE_MAX_ 1024

struct cfs_registry {
	CURL *curl;
	char *source; /* for messages */
	char *host; /* where the API is: "127.0.0.1:5000" */
	char *auth_host; /* as auth.json names it: "docker.io" */
	char *repo; /* "library/debian" */
	bool insecure, plain_http;
	bool no_ranges; /* it answered ranges with the whole blob, or refused one */
	bool ranges_only; /* cfs_registry_ranges_only() */
	char *authz; /* "Authorization: ..." once the registry asked */
	char *creds; /* base64 "user:password" of auth.json, or NULL */
	bool creds_looked;
	struct cfs_registry_stats stats;
};

/*
 * libcurl, loaded when a registry client is first made: linking it would
 * load its 26 libraries (TLS, HTTP/2, LDAP, Kerberos...) into every
 * command of the tools, about 3 ms each, for the one that fetches ranges.
 * Without it, cfs_registry_open() says so and the caller takes whole
 * blobs through skopeo.
 */
static struct {
	CURLcode (*global_init)(long flags);
	CURL *(*easy_init)(void);
	void (*easy_cleanup)(CURL *c);
	void (*easy_reset)(CURL *c);
	CURLcode (*easy_setopt)(CURL *c, CURLoption opt, ...);
	CURLcode (*easy_perform)(CURL *c);
	CURLcode (*easy_getinfo)(CURL *c, CURLINFO info, ...);
	const char *(*easy_strerror)(CURLcode code);
	char *(*easy_escape)(CURL *c, const char *s, int len);
	void (*free)(void *p);
	struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
	void (*slist_free_all)(struct curl_slist *l);
} lc;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static char curl_why[256]; /* why libcurl is not there, or "" */

static void curl_load(void)
{
	static const char *const sonames[] = { "libcurl.so.4",
					       "libcurl-gnutls.so.4" };
	static const struct {
		const char *name;
		size_t offset;
	} syms[] = {
#define SYM(field, name) { name, offsetof(__typeof__(lc), field) }
		SYM(global_init, "curl_global_init"),
		SYM(easy_init, "curl_easy_init"),
		SYM(easy_cleanup, "curl_easy_cleanup"),
		SYM(easy_reset, "curl_easy_reset"),
		SYM(easy_setopt, "curl_easy_setopt"),
		SYM(easy_perform, "curl_easy_perform"),
		SYM(easy_getinfo, "curl_easy_getinfo"),
		SYM(easy_strerror, "curl_easy_strerror"),
		SYM(easy_escape, "curl_easy_escape"),
		SYM(free, "curl_free"),
		SYM(slist_append, "curl_slist_append"),
		SYM(slist_free_all, "curl_slist_free_all"),
#undef SYM
	};
	void *h = NULL;
	CURLcode res;

	for (size_t i = 0; i < CFS_ARRAY_SIZE(sonames) && !h; i++)
		h = dlopen(sonames[i], RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(curl_why, sizeof(curl_why),
			 "libcurl is not installed (%s)", dlerror());
		return;
	}
	for (size_t i = 0; i < CFS_ARRAY_SIZE(syms); i++) {
		void *f = dlsym(h, syms[i].name);

		if (!f) {
			snprintf(curl_why, sizeof(curl_why), "libcurl lacks %s",
				 syms[i].name);
			return;
		}
		memcpy((char *)&lc + syms[i].offset, &f, sizeof(f));
	}
	res = lc.global_init(CURL_GLOBAL_DEFAULT);
	if (res != CURLE_OK)
		snprintf(curl_why, sizeof(curl_why), "libcurl: %s",
			 lc.easy_strerror(res));
}

/* ---- the reference ------------------------------------------------------ */

static bool repo_ok(const char *s, size_t len)
{
	if (len == 0 || len > 255 || s[0] == '/' || s[len - 1] == '/')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789._-/", s[i]))
			return false;
	return true;
}

static bool host_ok(const char *s, size_t len)
{
	if (len == 0 || len > 255)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]",
			    s[i]))
			return false;
	return true;
}

static int parse_ref(struct cfs_registry *r, const char *source)
{
	const char *ref, *slash, *colon;
	size_t len, first;
	bool domain, hub;

	if (strncmp(source, "docker://", 9) != 0)
		return cfs_error(EINVAL, "%s: not a docker:// reference",
				 source);
	ref = source + 9;
	len = strcspn(ref, "@");
	/* a tag: after the last ':' that follows the last '/' */
	slash = memrchr(ref, '/', len);
	colon = memrchr(slash ? slash : ref, ':',
			len - (size_t)(slash ? slash - ref : 0));
	if (colon)
		len = (size_t)(colon - ref);
	first = strcspn(ref, "/");
	domain = first < len &&
		 (memchr(ref, '.', first) || memchr(ref, ':', first) ||
		  (first == 9 && strncmp(ref, "localhost", 9) == 0));
	if (domain) {
		r->host = strndup(ref, first);
		r->repo = strndup(ref + first + 1, len - first - 1);
	} else {
		r->host = strdup("docker.io");
		if (memchr(ref, '/', len))
			r->repo = strndup(ref, len);
		else if (asprintf(&r->repo, "library/%.*s", (int)len, ref) < 0)
			r->repo = NULL;
	}
	if (!r->host || !r->repo)
		return -ENOMEM;
	if (!host_ok(r->host, strlen(r->host)) ||
	    !repo_ok(r->repo, strlen(r->repo)))
		return cfs_error(EINVAL,
				 "%s: not a registry and repository this "
				 "client can name",
				 source);
	/* Docker Hub: named docker.io, served by registry-1.docker.io */
	hub = strcmp(r->host, "docker.io") == 0 ||
	      strcmp(r->host, "index.docker.io") == 0;
	r->auth_host = strdup(hub ? "docker.io" : r->host);
	if (hub) {
		free(r->host);
		r->host = strdup("registry-1.docker.io");
	}
	return r->host && r->auth_host ? 0 : -ENOMEM;
}

int cfs_registry_open(struct cfs_registry **out, const char *source,
		      bool insecure)
{
	struct cfs_registry *r;
	int err;

	*out = NULL;
	pthread_once(&curl_once, curl_load);
	if (curl_why[0])
		return cfs_error(ENOTSUP, "%s: %s", source, curl_why);
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->insecure = insecure;
	r->source = strdup(source);
	err = r->source ? parse_ref(r, source) : -ENOMEM;
	if (err == 0 && !(r->curl = lc.easy_init()))
		err = cfs_error(EIO, "libcurl: cannot make a handle");
	if (err < 0) {
		cfs_registry_free(r);
		return err;
	}
	*out = r;
	return 0;
}

void cfs_registry_free(struct cfs_registry *r)
{
	if (!r)
		return;
	if (r->curl)
		lc.easy_cleanup(r->curl);
	free(r->source);
	free(r->host);
	free(r->auth_host);
	free(r->repo);
	free(r->authz);
	free(r->creds);
	free(r);
}

void cfs_registry_ranges_only(struct cfs_registry *r)
{
	r->ranges_only = true;
}

void cfs_registry_stats(const struct cfs_registry *r,
			struct cfs_registry_stats *out)
{
	*out = r->stats;
}

/* ---- credentials ---------------------------------------------------------- */

/* The "auth" of @key in the "auths" of @doc, or NULL. */
static const char *auth_of(json_object *doc, const char *key)
{
	json_object *auths, *entry, *v;

	if (!json_object_object_get_ex(doc, "auths", &auths) ||
	    !json_object_object_get_ex(auths, key, &entry) ||
	    !json_object_object_get_ex(entry, "auth", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    !*json_object_get_string(v))
		return NULL;
	return json_object_get_string(v);
}

/* The credentials for the registry in the auth file @path, if any. */
static char *creds_in(struct cfs_registry *r, const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	json_object *doc = NULL;
	char keys[4][300];
	char *found = NULL;

	if (fd < 0 || cfs_json_read_fd(fd, AUTH_FILE_MAX, &doc) < 0) {
		cfs_error_clear();
		return NULL;
	}
	/* namespaced entries first, as containers-auth.json(5) says */
	snprintf(keys[0], sizeof(keys[0]), "%s/%s", r->auth_host, r->repo);
	snprintf(keys[1], sizeof(keys[1]), "%s", r->auth_host);
	snprintf(keys[2], sizeof(keys[2]), "https://%s", r->auth_host);
	if (strcmp(r->auth_host, "docker.io") == 0)
		snprintf(keys[3], sizeof(keys[3]),
			 "https://index.docker.io/v1/");
	else
		snprintf(keys[3], sizeof(keys[3]), "http://%s", r->auth_host);
	for (size_t i = 0; i < 4 && !found; i++) {
		const char *a = auth_of(doc, keys[i]);

		if (a)
			found = strdup(a);
	}
	json_object_put(doc);
	return found;
}

static const char *credentials(struct cfs_registry *r)
{
	/* where podman and skopeo look, in their order */
	static const struct {
		const char *env, *file;
	} files[] = {
		{ "REGISTRY_AUTH_FILE", "" },
		{ "XDG_RUNTIME_DIR", "/containers/auth.json" },
		{ "HOME", "/.config/containers/auth.json" },
		{ "HOME", "/.docker/config.json" },
	};
	char path[4096];

	if (r->creds_looked)
		return r->creds;
	r->creds_looked = true;
	for (size_t i = 0; i < CFS_ARRAY_SIZE(files) && !r->creds; i++) {
		const char *dir = getenv(files[i].env);

		if (!dir || !*dir)
			continue;
		snprintf(path, sizeof(path), "%s%s", dir, files[i].file);
		r->creds = creds_in(r, path);
	}
	return r->creds;
}

/* ---- one HTTP exchange ---------------------------------------------------- */

enum answer_mode {
	ANSWER_UNDECIDED,
	ANSWER_SINGLE, /* 206, one range (Content-Range) */
	ANSWER_MULTI, /* 206, multipart/byteranges */
	ANSWER_WHOLE, /* 200: the whole blob */
	ANSWER_ERROR, /* anything else: its body, for the message */
};

enum multi_state { MULTI_LINE, MULTI_HEADERS, MULTI_BODY, MULTI_DONE };

struct answer {
	struct cfs_registry *reg;
	uint64_t size; /* of the blob */
	struct cfs_registry_part *parts; /* all of the fetch's */
	size_t n, first, count; /* this request asked for [first, +count) */
	size_t unfilled; /* parts of [0, n) not filled yet (whole blob) */
	long status;
	char content_type[256], content_range[128], www_auth[LINE_MAX_];
	enum answer_mode mode;
	uint64_t pos, left; /* next byte's offset in the blob, bytes to come */
	uint64_t received, received_max;
	char boundary[80];
	char line[LINE_MAX_];
	size_t line_len;
	enum multi_state mstate;
	char part_range[128];
	char body[ERROR_BODY_MAX + 1];
	size_t body_len;
	bool stopped; /* whole blob: every part filled, transfer ended */
	CURLcode res; /* of the transfer */
	const char *bad; /* the answer broke the protocol: why */
};

/* A header line's value if its name is @name (case-insensitive). */
static const char *header_value(const char *line, size_t len, const char *name)
{
	size_t n = strlen(name);

	if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
		return NULL;
	line += n + 1;
	while (*line == ' ' || *line == '\t')
		line++;
	return line;
}

static void header_copy(char *dst, size_t size, const char *v, size_t len)
{
	size_t n = CFS_MIN(len, size - 1);

	memcpy(dst, v, n);
	while (n &&
	       (dst[n - 1] == '\r' || dst[n - 1] == '\n' || dst[n - 1] == ' '))
		n--;
	dst[n] = '\0';
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *opaque)
{
	struct answer *a = opaque;
	size_t len = size * nitems;
	const char *v;

	/* a status line starts each answer (redirects, 100 Continue) */
	if (len > 5 && strncmp(buf, "HTTP/", 5) == 0) {
		a->content_type[0] = a->content_range[0] = a->www_auth[0] = 0;
		return len;
	}
	if ((v = header_value(buf, len, "Content-Type")))
		header_copy(a->content_type, sizeof(a->content_type), v,
			    len - (size_t)(v - buf));
	else if ((v = header_value(buf, len, "Content-Range")))
		header_copy(a->content_range, sizeof(a->content_range), v,
			    len - (size_t)(v - buf));
	else if ((v = header_value(buf, len, "WWW-Authenticate")))
		header_copy(a->www_auth, sizeof(a->www_auth), v,
			    len - (size_t)(v - buf));
	return len;
}

/* "bytes A-B/TOTAL" (TOTAL may be "*") of a blob of @size: [A, B]. */
static bool parse_content_range(const char *s, uint64_t size, uint64_t *from,
				uint64_t *to)
{
	unsigned long long a, b, total;
	int n = 0;

	if (sscanf(s, "bytes %llu-%llu/%n", &a, &b, &n) != 2 || n == 0)
		return false;
	s += n;
	if (strcmp(s, "*") != 0 &&
	    (sscanf(s, "%llu%n", &total, &n) != 1 || s[n] || total != size))
		return false;
	if (a > b || b >= size)
		return false;
	*from = a;
	*to = b;
	return true;
}

static bool part_full(const struct cfs_registry_part *p)
{
	return p->filled == p->end - p->offset;
}

/* Copy what of @len bytes at blob offset @off the parts asked want,
 * each part filled from its start without a hole. */
static void deliver(struct answer *a, uint64_t off, const uint8_t *data,
		    size_t len)
{
	bool all = a->mode == ANSWER_WHOLE;
	size_t lo = all ? 0 : a->first, hi = all ? a->n : a->first + a->count;
	size_t end = hi;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (a->parts[mid].end <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < end && a->parts[i].offset < off + len; i++) {
		struct cfs_registry_part *p = &a->parts[i];
		uint64_t have = p->offset + p->filled;
		uint64_t e = CFS_MIN(off + len, p->end);

		if (off > have || e <= have)
			continue; /* after a hole, or sent before */
		memcpy(p->data + p->filled, data + (have - off), e - have);
		p->filled = e - p->offset;
		if (part_full(p) && a->unfilled)
			a->unfilled--;
	}
}

/* The boundary parameter of a multipart Content-Type. */
static bool parse_boundary(struct answer *a)
{
	const char *b = strcasestr(a->content_type, "boundary=");
	size_t n;

	if (!b)
		return false;
	b += strlen("boundary=");
	if (*b == '"') {
		b++;
		n = strcspn(b, "\"");
	} else {
		n = strcspn(b, "; \t");
	}
	if (n == 0 || n + 3 > sizeof(a->boundary))
		return false;
	memcpy(a->boundary, b, n);
	a->boundary[n] = '\0';
	return true;
}

static void multi_line(struct answer *a)
{
	const char *v;
	size_t bl = strlen(a->boundary);

	if (a->mstate == MULTI_LINE) {
		if (strncmp(a->line, "--", 2) != 0 ||
		    strncmp(a->line + 2, a->boundary, bl) != 0)
			return; /* preamble, or the CRLF after a part */
		if (strcmp(a->line + 2 + bl, "--") == 0)
			a->mstate = MULTI_DONE;
		else if (a->line[2 + bl] == '\0')
			a->mstate = MULTI_HEADERS;
		a->part_range[0] = '\0';
		return;
	}
	/* MULTI_HEADERS */
	if (a->line_len == 0) {
		uint64_t from, to;

		if (!parse_content_range(a->part_range, a->size, &from, &to)) {
			a->bad = "a part without a valid Content-Range";
			return;
		}
		a->pos = from;
		a->left = to - from + 1;
		a->mstate = MULTI_BODY;
		return;
	}
	if ((v = header_value(a->line, a->line_len, "Content-Range")))
		header_copy(a->part_range, sizeof(a->part_range), v,
			    a->line_len - (size_t)(v - a->line));
}

static void multi_feed(struct answer *a, const uint8_t *d, size_t len)
{
	while (len && !a->bad) {
		if (a->mstate == MULTI_BODY) {
			size_t k = (size_t)CFS_MIN((uint64_t)len, a->left);

			deliver(a, a->pos, d, k);
			a->pos += k;
			a->left -= k;
			d += k;
			len -= k;
			if (a->left == 0) {
				a->mstate = MULTI_LINE;
				a->line_len = 0;
			}
			continue;
		}
		if (a->mstate == MULTI_DONE)
			return; /* the epilogue */
		if (*d == '\n') {
			if (a->line_len && a->line[a->line_len - 1] == '\r')
				a->line_len--;
			a->line[a->line_len] = '\0';
			multi_line(a);
			a->line_len = 0;
		} else if (a->line_len + 2 >= sizeof(a->line)) {
			a->bad = "a multipart line too long";
		} else {
			a->line[a->line_len++] = (char)*d;
		}
		d++;
		len--;
	}
}

/* What the body's first byte says of the answer. */
static void decide(struct answer *a)
{
	uint64_t to;

	lc.easy_getinfo(a->reg->curl, CURLINFO_RESPONSE_CODE, &a->status);
	if (a->status == 206 &&
	    strncasecmp(a->content_type, "multipart/byteranges", 20) == 0) {
		a->mode = ANSWER_MULTI;
		a->mstate = MULTI_LINE;
		if (!parse_boundary(a))
			a->bad = "multipart/byteranges without a boundary";
	} else if (a->status == 206) {
		a->mode = ANSWER_SINGLE;
		if (!parse_content_range(a->content_range, a->size, &a->pos,
					 &to))
			a->bad = "a partial answer without a valid "
				 "Content-Range";
		else
			a->left = to - a->pos + 1;
	} else if (a->status == 200) {
		a->mode = ANSWER_WHOLE;
		a->pos = 0;
		a->left = a->size;
	} else {
		a->mode = ANSWER_ERROR;
	}
}

static size_t on_body(char *buf, size_t size, size_t nitems, void *opaque)
{
	struct answer *a = opaque;
	size_t len = size * nitems, k;

	if (a->mode == ANSWER_UNDECIDED)
		decide(a);
	/* the whole blob is not wanted: stop at once */
	if (a->mode == ANSWER_WHOLE && a->reg->ranges_only) {
		a->stopped = true;
		return 0;
	}
	a->received += len;
	a->reg->stats.bytes += len;
	if (a->received > a->received_max)
		a->bad = "more bytes than asked for";
	switch (a->bad ? ANSWER_UNDECIDED : a->mode) {
	case ANSWER_MULTI:
		multi_feed(a, (const uint8_t *)buf, len);
		break;
	case ANSWER_SINGLE:
	case ANSWER_WHOLE:
		k = (size_t)CFS_MIN((uint64_t)len, a->left);
		deliver(a, a->pos, (const uint8_t *)buf, k);
		a->pos += k;
		a->left -= k;
		if (k < len)
			a->bad = "more bytes than its range";
		/* a whole blob: stop after the last byte wanted */
		if (a->mode == ANSWER_WHOLE && a->unfilled == 0) {
			a->stopped = true;
			return 0;
		}
		break;
	case ANSWER_ERROR:
		k = CFS_MIN(len, ERROR_BODY_MAX - a->body_len);
		memcpy(a->body + a->body_len, buf, k);
		a->body_len += k;
		break;
	default:
		break;
	}
	return a->bad ? 0 : len;
}

/* The first error of a registry's JSON error body, "CODE: message". */
static void error_of_body(struct answer *a, char *out, size_t size)
{
	json_object *doc = NULL, *errs, *e, *code, *msg;

	out[0] = '\0';
	a->body[a->body_len] = '\0';
	if (cfs_json_parse(a->body, a->body_len, &doc) < 0) {
		cfs_error_clear();
		return;
	}
	if (json_object_object_get_ex(doc, "errors", &errs) &&
	    (e = json_object_array_get_idx(errs, 0)) &&
	    json_object_object_get_ex(e, "code", &code) &&
	    json_object_object_get_ex(e, "message", &msg))
		snprintf(out, size, ": %s: %s", json_object_get_string(code),
			 json_object_get_string(msg));
	json_object_put(doc);
}

/* What every request of @r sets: @url, @headers, redirects within HTTP,
 * timeouts, TLS verification unless insecure. */
static void set_common(struct cfs_registry *r, const char *url,
		       struct curl_slist *headers)
{
	CURL *c = r->curl;

	lc.easy_reset(c);
	lc.easy_setopt(c, CURLOPT_URL, url);
	lc.easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	lc.easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	lc.easy_setopt(c, CURLOPT_MAXREDIRS, 8L);
	lc.easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	lc.easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	lc.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	lc.easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
	/* a registry that stalls: a minute under a byte a second */
	lc.easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	lc.easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
	if (r->insecure) {
		lc.easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		lc.easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	r->stats.requests++;
}

/*
 * GET @url (with @range, "bytes=..." or NULL) into @a: 0 when an answer
 * came (its status in a->status, whatever it is), else -errno with the
 * message.
 */
static int perform(struct cfs_registry *r, struct answer *a, const char *url,
		   const char *range, const char *what)
{
	struct curl_slist *headers = NULL;
	char line[4096];
	CURLcode res;
	CURL *c = r->curl;

	a->mode = ANSWER_UNDECIDED;
	a->status = 0;
	a->received = a->body_len = a->line_len = 0;
	a->bad = NULL;
	a->stopped = false;
	headers = lc.slist_append(headers,
				  "User-Agent: cfs-store/" CFS_VERSION_STRING);
	if (range) {
		snprintf(line, sizeof(line), "Range: %s", range);
		headers = lc.slist_append(headers, line);
	}
	if (r->authz)
		headers = lc.slist_append(headers, r->authz);
	if (!headers)
		return -ENOMEM;
	set_common(r, url, headers);
	lc.easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	lc.easy_setopt(c, CURLOPT_HEADERDATA, a);
	lc.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	lc.easy_setopt(c, CURLOPT_WRITEDATA, a);
	res = a->res = lc.easy_perform(c);
	lc.slist_free_all(headers);
	if (a->mode == ANSWER_UNDECIDED && res == CURLE_OK)
		decide(a); /* an answer without a body */
	if (a->bad)
		return cfs_error(EPROTO, "%s: %s: the registry's answer has %s",
				 r->source, what, a->bad);
	if (res == CURLE_WRITE_ERROR && a->stopped)
		return 0;
	if (res == CURLE_PARTIAL_FILE)
		return cfs_error(EIO,
				 "%s: %s: the registry's answer was cut short "
				 "(%" PRIu64 " bytes came)",
				 r->source, what, a->received);
	if (res != CURLE_OK)
		return cfs_error(EIO, "%s: %s: %s", r->source, what,
				 lc.easy_strerror(res));
	return 0;
}

/* ---- authentication ------------------------------------------------------- */

/* The value of @key in a challenge's parameters (key="value", ...). */
static bool challenge_param(const char *params, const char *key, char *out,
			    size_t size)
{
	size_t n = strlen(key);
	const char *p = params;

	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		if (strncasecmp(p, key, n) == 0 && p[n] == '=') {
			const char *v = p + n + 1;
			size_t len;

			if (*v == '"') {
				v++;
				len = strcspn(v, "\"");
			} else {
				len = strcspn(v, ", ");
			}
			if (len >= size)
				return false;
			memcpy(out, v, len);
			out[len] = '\0';
			return true;
		}
		/* the next parameter: past a quoted value's commas */
		while (*p && *p != ',' && *p != '"')
			p++;
		if (*p == '"') {
			p = strchr(p + 1, '"');
			if (!p)
				return false;
			p++;
		}
	}
	return false;
}

static size_t on_token(char *buf, size_t size, size_t nitems, void *opaque)
{
	struct cfs_buf *t = opaque;
	size_t len = size * nitems;

	if (t->len + len > TOKEN_MAX || cfs_buf_add(t, buf, len) < 0)
		return 0;
	return len;
}

/* A bearer token from @realm for @scope, with the credentials if any. */
static int bearer_token(struct cfs_registry *r, const char *realm,
			const char *service, const char *scope)
{
	struct cfs_buf t = { 0 };
	struct curl_slist *headers = NULL;
	json_object *doc = NULL, *v;
	char *esc_service = NULL, *esc_scope = NULL, *url = NULL, *hdr = NULL;
	const char *creds = credentials(r);
	long status = 0;
	CURLcode res;
	CURL *c = r->curl;
	int err = 0;

	if (strncmp(realm, "https://", 8) != 0 &&
	    strncmp(realm, "http://", 7) != 0)
		return cfs_error(EPROTO, "%s: token realm \"%s\" is not HTTP",
				 r->source, realm);
	esc_service = lc.easy_escape(c, service, 0);
	esc_scope = lc.easy_escape(c, scope, 0);
	if (!esc_service || !esc_scope ||
	    asprintf(&url, "%s%sservice=%s&scope=%s", realm,
		     strchr(realm, '?') ? "&" : "?", esc_service,
		     esc_scope) < 0) {
		url = NULL;
		err = -ENOMEM;
		goto out;
	}
	if (creds) {
		if (asprintf(&hdr, "Authorization: Basic %s", creds) < 0) {
			hdr = NULL;
			err = -ENOMEM;
			goto out;
		}
		headers = lc.slist_append(headers, hdr);
	}
	set_common(r, url, headers);
	lc.easy_setopt(c, CURLOPT_TIMEOUT, 120L);
	lc.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_token);
	lc.easy_setopt(c, CURLOPT_WRITEDATA, &t);
	res = lc.easy_perform(c);
	lc.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (res != CURLE_OK) {
		err = cfs_error(EIO, "%s: token from %s: %s", r->source, realm,
				lc.easy_strerror(res));
		goto out;
	}
	if (status != 200) {
		err = cfs_error(EACCES, "%s: token from %s: HTTP %ld%s",
				r->source, realm, status,
				creds ? "" : " (no credentials in auth.json)");
		goto out;
	}
	if (cfs_json_parse(t.buf ? t.buf : "", t.len, &doc) < 0 ||
	    !((json_object_object_get_ex(doc, "token", &v) &&
	       json_object_is_type(v, json_type_string)) ||
	      (json_object_object_get_ex(doc, "access_token", &v) &&
	       json_object_is_type(v, json_type_string))) ||
	    strpbrk(json_object_get_string(v), "\r\n")) {
		err = cfs_error(EPROTO,
				"%s: token from %s: no token in the answer",
				r->source, realm);
		goto out;
	}
	free(r->authz);
	if (asprintf(&r->authz, "Authorization: Bearer %s",
		     json_object_get_string(v)) < 0) {
		r->authz = NULL;
		err = -ENOMEM;
	}
out:
	json_object_put(doc);
	lc.slist_free_all(headers);
	lc.free(esc_service);
	lc.free(esc_scope);
	free(url);
	free(hdr);
	free(t.buf);
	return err;
}

/* Answer the challenge of a 401 (@a->www_auth). */
static int authenticate(struct cfs_registry *r, const struct answer *a,
			const char *what)
{
	char realm[1024], service[256] = "", scope[512];
	const char *ch = a->www_auth, *creds;

	if (strncasecmp(ch, "Bearer ", 7) == 0) {
		if (!challenge_param(ch + 7, "realm", realm, sizeof(realm)))
			return cfs_error(EPROTO,
					 "%s: %s: a bearer challenge without "
					 "a realm",
					 r->source, what);
		challenge_param(ch + 7, "service", service, sizeof(service));
		if (!challenge_param(ch + 7, "scope", scope, sizeof(scope)))
			snprintf(scope, sizeof(scope), "repository:%s:pull",
				 r->repo);
		return bearer_token(r, realm, service, scope);
	}
	creds = credentials(r);
	if (strncasecmp(ch, "Basic", 5) == 0 && creds) {
		free(r->authz);
		if (asprintf(&r->authz, "Authorization: Basic %s", creds) < 0) {
			r->authz = NULL;
			return -ENOMEM;
		}
		return 0;
	}
	return cfs_error(EACCES, "%s: %s: HTTP 401 (%s)", r->source, what,
			 !ch[0] ? "no challenge" :
			 creds	? "an authentication this client lacks" :
				  "no credentials in auth.json");
}

/* ---- fetching ranges ---------------------------------------------------- */

/* The range header of parts [@first, +@count). */
static char *range_header(const struct cfs_registry_part *parts, size_t first,
			  size_t count)
{
	struct cfs_buf b = { 0 };
	char one[48];

	if (cfs_buf_add(&b, "bytes=", 6) < 0)
		return NULL;
	for (size_t i = first; i < first + count; i++) {
		int n = snprintf(one, sizeof(one), "%s%" PRIu64 "-%" PRIu64,
				 i > first ? "," : "", parts[i].offset,
				 parts[i].end - 1);

		if (cfs_buf_add(&b, one, (size_t)n) < 0) {
			free(b.buf);
			return NULL;
		}
	}
	if (cfs_buf_add(&b, "", 1) < 0) {
		free(b.buf);
		return NULL;
	}
	return b.buf;
}

/* Results of one request besides 0 and -errno. */
#define RANGES_REFUSED 1 /* 400, 416, 501: ask for fewer */
#define WHOLE_TAKEN 2 /* 200: every part came from the whole blob */

static int request(struct cfs_registry *r, struct answer *a, const char *url,
		   bool ranged, const char *what)
{
	_cleanup_free_ char *range = NULL;
	char why[ERROR_BODY_MAX + 64];
	bool authed = false;
	int err;

	a->received_max = a->size + 64 * 1024 + 256 * (uint64_t)a->count;
	if (ranged && !(range = range_header(a->parts, a->first, a->count)))
		return -ENOMEM;
	for (;;) {
		err = perform(r, a, url, range, what);
		if (err < 0)
			return err;
		if (a->status == 401 && !authed) {
			authed = true;
			err = authenticate(r, a, what);
			if (err < 0)
				return err;
			continue;
		}
		break;
	}
	if (a->status == 200 || a->status == 206) {
		if (a->status == 200)
			r->stats.whole_blobs++;
		return a->status == 200 ? WHOLE_TAKEN : 0;
	}
	if (ranged &&
	    (a->status == 400 || a->status == 416 || a->status == 501))
		return RANGES_REFUSED;
	error_of_body(a, why, sizeof(why));
	return cfs_error(a->status == 404		      ? ENOENT :
			 a->status == 401 || a->status == 403 ? EACCES :
								EIO,
			 "%s: %s: HTTP %ld%s", r->source, what, a->status, why);
}

/*
 * The parts not filled yet, CFS_REGISTRY_RANGES_MAX a request; fewer,
 * then one, then the whole blob when the registry refuses; the ranges
 * an answer left out asked for one by one.
 */
static int fetch_ranges(struct cfs_registry *r, struct answer *a,
			const char *url, const char *what)
{
	size_t batch = CFS_REGISTRY_RANGES_MAX, i = 0, k;
	int err;

	while (i < a->n && part_full(&a->parts[i]))
		i++;
	while (i < a->n) {
		if (r->no_ranges && r->ranges_only)
			return cfs_error(ENOTSUP,
					 "%s: %s: the registry does not serve "
					 "ranges",
					 r->source, what);
		if (r->no_ranges) {
			/* the whole blob, once, for every part left */
			a->first = 0;
			a->count = a->n;
			err = request(r, a, url, false, what);
			return err < 0 ? err : 0;
		}
		a->first = i;
		a->count = CFS_MIN(batch, a->n - i);
		err = request(r, a, url, true, what);
		if (err == WHOLE_TAKEN) {
			r->no_ranges = true;
			if (r->ranges_only)
				continue; /* said above */
			return 0;
		}
		if (err == RANGES_REFUSED) {
			if (a->count == 1)
				r->no_ranges = true;
			batch = a->count > 8 ? 8 : 1;
			continue;
		}
		if (err < 0)
			return err;
		for (k = i; k < i + a->count && part_full(&a->parts[k]); k++)
			;
		if (k < i + a->count && batch == 1)
			return 0; /* a range cut short: the caller says so */
		if (k < i + a->count)
			batch = 1;
		i = k;
	}
	return 0;
}

int cfs_registry_fetch(struct cfs_registry *r, const char *digest,
		       uint64_t size, struct cfs_registry_part *parts, size_t n)
{
	struct answer a = { .reg = r, .size = size, .parts = parts, .n = n };
	_cleanup_free_ char *url = NULL, *what = NULL;
	int err;

	if (asprintf(&what, "blob %s", digest) < 0) {
		what = NULL;
		return -ENOMEM;
	}
	for (size_t k = 0; k < n; k++) {
		if (parts[k].offset >= parts[k].end || parts[k].end > size ||
		    (k && parts[k].offset < parts[k - 1].end))
			return cfs_error(EINVAL, "%s: %s: ranges out of order",
					 r->source, what);
		parts[k].filled = 0;
	}
	a.unfilled = n;
	for (;;) {
		free(url);
		if (asprintf(&url, "%s://%s/v2/%s/blobs/%s",
			     r->plain_http ? "http" : "https", r->host, r->repo,
			     digest) < 0) {
			url = NULL;
			return -ENOMEM;
		}
		err = fetch_ranges(r, &a, url, what);
		/* insecure: a server that speaks no TLS gets plain HTTP */
		if (err < 0 && a.res == CURLE_SSL_CONNECT_ERROR &&
		    r->insecure && !r->plain_http) {
			cfs_error_clear();
			r->plain_http = true;
			continue;
		}
		break;
	}
	if (err < 0)
		return err;
	for (size_t k = 0; k < n; k++)
		if (!part_full(&parts[k]))
			return cfs_error(EPROTO,
					 "%s: %s: the registry's answer lacks "
					 "bytes %" PRIu64 "-%" PRIu64
					 " (%" PRIu64 " of %" PRIu64 " came)",
					 r->source, what,
					 parts[k].offset + parts[k].filled,
					 parts[k].end - 1, parts[k].filled,
					 parts[k].end - parts[k].offset);
	return 0;
}
