/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * composefs-dump(5): the tree as text, one line per entry, and back.
 *
 * The writer prints what `composefs-info dump` prints for the same tree,
 * except that xattrs are always sorted by name and directories always have
 * size 0 (the tree does not size directories; mkcomposefs ignores the
 * field for them). The reader accepts what mkcomposefs accepts, minus
 * ambiguities: see the limits and the checks in parse_line().
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "image/tree-internal.h"

/* Longest dump line read, newline excluded. A legitimate line holds a
 * path, a payload, at most 5000 bytes of content and 64 KiB of xattrs,
 * each at most 4x longer once escaped; 1 MiB leaves ample room and bounds
 * the memory one hostile line can take. */
#define CFS_DUMP_LINE_MAX (1024 * 1024)

/* The fixed fields of a line, in order; xattrs follow. */
enum {
	FIELD_PATH,
	FIELD_SIZE,
	FIELD_MODE,
	FIELD_NLINK,
	FIELD_UID,
	FIELD_GID,
	FIELD_RDEV,
	FIELD_MTIME,
	FIELD_PAYLOAD,
	FIELD_CONTENT,
	FIELD_DIGEST,
	FIELD_COUNT,
};

static const char *const field_names[FIELD_COUNT] = {
	"PATH", "SIZE",	 "MODE",    "NLINK",   "UID",	 "GID",
	"RDEV", "MTIME", "PAYLOAD", "CONTENT", "DIGEST",
};

/* ---- Escaping (shared by the writer and the reader's messages) ------ */

#define ESC_EQUAL 1u /* '=' as \x3d: xattr names and values */
#define ESC_LONE_DASH 2u /* a lone "-" as \x2d: optional fields */

static const char hexdigits[] = "0123456789abcdef";

/* isgraph() in the C locale, without depending on the current locale. */
static bool is_graph(unsigned char c)
{
	return c > 0x20 && c < 0x7f;
}

/* Write the escaped form of one byte to @out (room for 4), return its
 * length. */
static size_t escape_byte(unsigned char c, unsigned int flags, char *out)
{
	const char *special = NULL;

	switch (c) {
	case '\\':
		special = "\\\\";
		break;
	case '\n':
		special = "\\n";
		break;
	case '\r':
		special = "\\r";
		break;
	case '\t':
		special = "\\t";
		break;
	default:
		if (is_graph(c) && !(c == '=' && (flags & ESC_EQUAL))) {
			out[0] = (char)c;
			return 1;
		}
		out[0] = '\\';
		out[1] = 'x';
		out[2] = hexdigits[c >> 4];
		out[3] = hexdigits[c & 0xf];
		return 4;
	}
	memcpy(out, special, 2);
	return 2;
}

/* Longest excerpt of input quoted in an error message, escaped. */
#define SHOW_MAX 160

/* Escape @len bytes of @data into @buf for an error message, cut at
 * SHOW_MAX with "...". Returns @buf. */
static const char *show(char buf[SHOW_MAX + 4], const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		char tmp[4];
		size_t k = escape_byte(p[i], 0, tmp);

		if (n + k > SHOW_MAX) {
			memcpy(buf + n, "...", 3);
			n += 3;
			break;
		}
		memcpy(buf + n, tmp, k);
		n += k;
	}
	buf[n] = '\0';
	return buf;
}

/* ---- Writer ---------------------------------------------------------- */

static __attribute__((format(printf, 2, 3))) int sb_addf(struct cfs_buf *sb,
							 const char *fmt, ...)
{
	va_list ap;
	int n, r;

	/* Only numbers go through here: 128 bytes always suffice. */
	r = cfs_buf_reserve(sb, 128);
	if (r < 0)
		return r;
	va_start(ap, fmt);
	n = vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sb->cap - sb->len)
		return -EOVERFLOW;
	sb->len += (size_t)n;
	return 0;
}

static int sb_add_escaped(struct cfs_buf *sb, const void *data, size_t len,
			  unsigned int flags)
{
	const unsigned char *p = data;
	int r;

	if ((flags & ESC_LONE_DASH) && len == 1 && p[0] == '-')
		return cfs_buf_add(sb, "\\x2d", 4);
	if (len > SIZE_MAX / 4)
		return -ENOMEM;
	r = cfs_buf_reserve(sb, 4 * len);
	if (r < 0)
		return r;
	for (size_t i = 0; i < len; i++)
		sb->len += escape_byte(p[i], flags, sb->buf + sb->len);
	return 0;
}

/* "-" for an unset optional field. */
static int sb_add_optional(struct cfs_buf *sb, const void *data, size_t len)
{
	if (!data)
		return cfs_buf_add(sb, "-", 1);
	return sb_add_escaped(sb, data, len, ESC_LONE_DASH);
}

struct dump_writer {
	FILE *out;
	struct cfs_buf line;
	struct cfs_buf path; /* raw path of the current entry, "" for the root */
	/* Inodes whose walk_data holds the first path they were met at. */
	cfs_inode **seen;
	size_t n_seen, cap_seen;
};

/* The path of the first name of a hardlinked inode, or NULL if @inode is
 * met for the first time (then remember @path for the later names). */
static int hardlink_first(struct dump_writer *w, cfs_inode *inode,
			  const char **first)
{
	char *dup;

	*first = NULL;
	if (inode->dir || cfs_inode_nlink(inode) < 2)
		return 0;
	if (inode->walk_data) {
		*first = inode->walk_data;
		return 0;
	}
	if (w->n_seen == w->cap_seen) {
		size_t cap = w->cap_seen ? 2 * w->cap_seen : 16;
		cfs_inode **n = reallocarray(w->seen, cap, sizeof(*n));

		if (!n)
			return -ENOMEM;
		w->seen = n;
		w->cap_seen = cap;
	}
	dup = strndup(w->path.buf, w->path.len);
	if (!dup)
		return -ENOMEM;
	inode->walk_data = dup;
	w->seen[w->n_seen++] = inode;
	return 0;
}

static int format_line(struct dump_writer *w, cfs_inode *inode)
{
	struct cfs_buf *sb = &w->line;
	uint32_t type = cfs_inode_type(inode);
	const char *first, *payload = NULL;
	const uint8_t *digest;
	const void *content = NULL;
	uint64_t size;
	int64_t sec;
	uint32_t nsec;
	int r;

	r = hardlink_first(w, inode, &first);
	if (r < 0)
		return r;

	sb->len = 0;
	if (w->path.len == 0)
		r = cfs_buf_add(sb, "/", 1);
	else
		r = sb_add_escaped(sb, w->path.buf, w->path.len, 0);
	if (r < 0)
		return r;

	size = type == S_IFDIR ? 0 : cfs_inode_size(inode);
	cfs_inode_mtime(inode, &sec, &nsec);
	r = sb_addf(sb,
		    " %" PRIu64 " %s%o %u %u %u %" PRIu64 " %" PRIi64 ".%u ",
		    size, first ? "@" : "", cfs_inode_mode(inode),
		    cfs_inode_nlink(inode), cfs_inode_uid(inode),
		    cfs_inode_gid(inode), cfs_inode_rdev(inode), sec, nsec);
	if (r < 0)
		return r;

	if (first)
		payload = first;
	else if (type == S_IFLNK)
		payload = cfs_inode_target(inode);
	else if (type == S_IFREG)
		payload = cfs_inode_payload(inode);
	r = sb_add_optional(sb, payload, payload ? strlen(payload) : 0);
	if (r < 0)
		return r;

	if (type == S_IFREG)
		content = cfs_inode_content(inode);
	r = cfs_buf_add(sb, " ", 1);
	if (r < 0)
		return r;
	r = sb_add_optional(sb, content, (size_t)size);
	if (r < 0)
		return r;

	digest = type == S_IFREG ? cfs_inode_digest(inode) : NULL;
	if (digest) {
		char hex[CFS_DIGEST_HEX_SIZE + 1];

		cfs_digest_to_hex(digest, hex);
		r = sb_addf(sb, " %s", hex);
	} else {
		r = cfs_buf_add(sb, " -", 2);
	}
	if (r < 0)
		return r;

	for (size_t i = 0; i < cfs_inode_xattr_count(inode); i++) {
		const char *name;
		const void *value;
		size_t len;

		r = cfs_inode_xattr_at(inode, i, &name, &value, &len);
		if (r < 0)
			return r;
		r = cfs_buf_add(sb, " ", 1);
		if (r >= 0)
			r = sb_add_escaped(sb, name, strlen(name), ESC_EQUAL);
		if (r >= 0)
			r = cfs_buf_add(sb, "=", 1);
		if (r >= 0)
			r = sb_add_escaped(sb, value, len, ESC_EQUAL);
		if (r < 0)
			return r;
	}
	return cfs_buf_add(sb, "\n", 1);
}

static int emit(struct dump_writer *w, cfs_inode *inode)
{
	char buf[SHOW_MAX + 4];
	const char *where;
	int r;

	r = format_line(w, inode);
	if (r < 0) {
		where = w->path.len ? show(buf, w->path.buf, w->path.len) : "/";
		return cfs_error_errno(-r, "dump: %s", where);
	}
	errno = 0;
	if (fwrite(w->line.buf, 1, w->line.len, w->out) != w->line.len) {
		r = errno ? errno : EIO;
		where = w->path.len ? show(buf, w->path.buf, w->path.len) : "/";
		return cfs_error_errno(r, "dump: writing %s", where);
	}
	return 0;
}

struct walk_frame {
	cfs_inode *dir;
	size_t next; /* index of the next entry to visit */
	size_t path_len; /* length of the directory's path */
};

/* Depth-first preorder without recursion. A tree deeper than
 * CFS_TREE_DEPTH_MAX is refused: the dump reader would refuse its dump. */
static int walk(struct dump_writer *w, cfs_inode *root)
{
	_cleanup_free_ struct walk_frame *stack = NULL;
	char buf[SHOW_MAX + 4];
	size_t depth = 0, cap = 0;
	int r;

	r = emit(w, root);
	if (r < 0)
		return r;
	stack = malloc(16 * sizeof(*stack));
	if (!stack)
		return cfs_error(ENOMEM, "dump: out of memory");
	cap = 16;
	stack[depth++] = (struct walk_frame){ root, 0, 0 };

	while (depth > 0) {
		struct walk_frame *f = &stack[depth - 1];
		const char *name;
		cfs_inode *child;
		size_t path_len;

		if (cfs_dir_entry_at(f->dir, f->next, &name, &child) < 0) {
			depth--;
			continue;
		}
		f->next++;
		w->path.len = f->path_len;
		r = cfs_buf_add(&w->path, "/", 1);
		if (r >= 0)
			r = cfs_buf_add(&w->path, name, strlen(name));
		if (r < 0)
			return cfs_error(ENOMEM, "dump: out of memory");
		path_len = w->path.len;
		/* with the root's frame, @depth frames: @child is at that level */
		if (depth > CFS_TREE_DEPTH_MAX)
			return cfs_error(ELOOP,
					 "dump: %s: deeper than %d levels",
					 show(buf, w->path.buf, w->path.len),
					 CFS_TREE_DEPTH_MAX);
		r = emit(w, child);
		if (r < 0)
			return r;
		if (!child->dir)
			continue;
		if (depth == cap) {
			struct walk_frame *n =
				reallocarray(stack, 2 * cap, sizeof(*n));

			if (!n)
				return cfs_error(ENOMEM, "dump: out of memory");
			stack = n;
			cap *= 2;
		}
		stack[depth++] = (struct walk_frame){ child, 0, path_len };
	}
	return 0;
}

int cfs_dump_write(cfs_inode *root, FILE *out)
{
	struct dump_writer w = { .out = out };
	int r;

	if (!root->dir)
		return cfs_error(EINVAL, "dump: the root is not a directory");
	r = walk(&w, root);
	errno = 0;
	if (r >= 0 && (fflush(out) != 0 || ferror(out))) {
		int err = errno ? errno : EIO;

		r = cfs_error_errno(err, "dump: flushing the output");
	}
	/* Give the scratch fields back, as found. */
	for (size_t i = 0; i < w.n_seen; i++) {
		free(w.seen[i]->walk_data);
		w.seen[i]->walk_data = NULL;
	}
	free(w.seen);
	free(w.line.buf);
	free(w.path.buf);
	return r;
}

/* ---- Reader ---------------------------------------------------------- */

CFS_DEFINE_CLEANUP(cfs_inode *, cfs_inode_unref)

/* A hardlink line, resolved once the whole dump is read. */
struct fixup {
	size_t lineno;
	cfs_inode *parent; /* borrowed: directories are never removed */
	char *name;
	char *target; /* absolute path of the first name */
	cfs_inode *resolved; /* borrowed */
};

struct dump_reader {
	FILE *in;
	size_t lineno;
	char *line; /* one extra byte for the last field's NUL */
	size_t len, cap;
	cfs_inode *root;
	struct fixup *fixups;
	size_t n_fixups, cap_fixups;
};

/* Marks the placeholder inode of a hardlink line (in walk_data) until the
 * hardlinks are resolved. */
static char placeholder_mark;

struct field {
	char *data;
	size_t len;
};

static __attribute__((format(printf, 3, 4))) int
fail(struct dump_reader *r, int err, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return cfs_error(err, "dump line %zu: %s", r->lineno, msg);
}

/* A tree call failed: keep its message, say where. */
static int fail_tree(struct dump_reader *r, int ret)
{
	if (ret == -ENOMEM)
		return fail(r, ENOMEM, "out of memory");
	return cfs_error_prefix(EINVAL, "dump line %zu", r->lineno);
}

/* Read the next line into r->line without its newline. Returns 1 for a
 * line, 0 at the end of the input, or -errno. */
static int read_line(struct dump_reader *r)
{
	int c;

	r->len = 0;
	r->lineno++;
	for (;;) {
		c = getc_unlocked(r->in);
		if (c == EOF) {
			if (ferror(r->in))
				return cfs_error_errno(errno ? errno : EIO,
						       "dump line %zu: reading",
						       r->lineno);
			return r->len > 0 ? 1 : 0;
		}
		if (c == '\n')
			return 1;
		if (r->len == CFS_DUMP_LINE_MAX)
			return fail(r, EINVAL, "line longer than %d bytes",
				    CFS_DUMP_LINE_MAX);
		if (r->len + 1 >= r->cap) {
			size_t cap = r->cap ? 2 * r->cap : 4096;
			char *n;

			if (cap > CFS_DUMP_LINE_MAX + 1)
				cap = CFS_DUMP_LINE_MAX + 1;
			n = realloc(r->line, cap);
			if (!n)
				return fail(r, ENOMEM, "out of memory");
			r->line = n;
			r->cap = cap;
		}
		r->line[r->len++] = (char)c;
	}
}

/* Unescape a field in place (unescaping never lengthens) and terminate it
 * with a NUL; the byte after the field is its separator, or the spare
 * byte at the end of the line. */
static int unescape(struct dump_reader *r, const char *what, struct field *f)
{
	char *s = f->data, *out = f->data;
	size_t len = f->len;
	char buf[SHOW_MAX + 4];

	for (size_t i = 0; i < len; i++) {
		int hi, lo;

		if (s[i] != '\\') {
			*out++ = s[i];
			continue;
		}
		if (++i == len)
			return fail(r, EINVAL, "%s: lone backslash at the end",
				    what);
		switch (s[i]) {
		case '\\':
			*out++ = '\\';
			break;
		case 'n':
			*out++ = '\n';
			break;
		case 'r':
			*out++ = '\r';
			break;
		case 't':
			*out++ = '\t';
			break;
		case 'x':
			hi = i + 1 < len ? cfs_hex_value(s[i + 1]) : -1;
			lo = i + 2 < len ? cfs_hex_value(s[i + 2]) : -1;
			if (hi < 0 || lo < 0)
				return fail(
					r, EINVAL,
					"%s: \\x not followed by two hex digits",
					what);
			*out++ = (char)(hi << 4 | lo);
			i += 2;
			break;
		default:
			return fail(r, EINVAL, "%s: unknown escape \\%s", what,
				    show(buf, &s[i], 1));
		}
	}
	*out = '\0';
	f->len = (size_t)(out - s);
	return 0;
}

/* Unescape a field that names something: no NUL inside. */
static int unescape_string(struct dump_reader *r, const char *what,
			   struct field *f)
{
	int ret = unescape(r, what, f);

	if (ret < 0)
		return ret;
	if (strlen(f->data) != f->len)
		return fail(r, EINVAL, "%s: NUL byte inside", what);
	return 0;
}

/* "-" is unset (data NULL); "\x2d" is a dash. */
static int unescape_optional(struct dump_reader *r, const char *what,
			     struct field *f, bool string)
{
	if (f->len == 1 && f->data[0] == '-') {
		f->data = NULL;
		f->len = 0;
		return 0;
	}
	return string ? unescape_string(r, what, f) : unescape(r, what, f);
}

/* Plain digits in @base, at most @max. No sign, no blanks, no prefix. */
static int parse_uint(struct dump_reader *r, const char *what, const char *s,
		      size_t len, unsigned int base, uint64_t max,
		      uint64_t *out)
{
	char buf[SHOW_MAX + 4];
	uint64_t v = 0;

	if (len == 0)
		return fail(r, EINVAL, "%s: empty number", what);
	for (size_t i = 0; i < len; i++) {
		unsigned int d = (unsigned char)s[i] - '0';

		if (d >= base)
			return fail(r, EINVAL, "%s: invalid number '%s'", what,
				    show(buf, s, len));
		if (v > (max - d) / base)
			return fail(r, EINVAL, "%s: number '%s' out of range",
				    what, show(buf, s, len));
		v = v * base + d;
	}
	*out = v;
	return 0;
}

static int parse_field_uint(struct dump_reader *r, struct field *fields,
			    int which, unsigned int base, uint64_t max,
			    uint64_t *out)
{
	return parse_uint(r, field_names[which], fields[which].data,
			  fields[which].len, base, max, out);
}

/* "SEC.NSEC": seconds may be negative, nanoseconds below 1e9. */
static int parse_mtime(struct dump_reader *r, struct field *f, int64_t *sec,
		       uint32_t *nsec)
{
	char buf[SHOW_MAX + 4];
	const char *s = f->data, *dot = memchr(f->data, '.', f->len);
	bool neg = f->len > 0 && s[0] == '-';
	uint64_t usec, unsec;
	int ret;

	if (!dot)
		return fail(r, EINVAL, "MTIME: '%s' is not SEC.NSEC",
			    show(buf, f->data, f->len));
	ret = parse_uint(r, "MTIME", s + neg, (size_t)(dot - s) - neg, 10,
			 neg ? (uint64_t)INT64_MAX + 1 : INT64_MAX, &usec);
	if (ret < 0)
		return ret;
	ret = parse_uint(r, "MTIME", dot + 1, f->len - (size_t)(dot - s) - 1,
			 10, UINT64_MAX, &unsec);
	if (ret < 0)
		return ret;
	if (unsec >= 1000000000u)
		return fail(r, EINVAL,
			    "MTIME: nanoseconds %" PRIu64 " out of range",
			    unsec);
	/* Down to -(INT64_MAX + 1) without overflowing on the way. */
	*sec = neg && usec > 0 ? -(int64_t)(usec - 1) - 1 : (int64_t)usec;
	*nsec = (uint32_t)unsec;
	return 0;
}

/*
 * Check the absolute path @path (NUL-terminated, @len bytes; modified
 * while running, restored on return) and walk to the directory that holds
 * its last component: *parent (NULL for "/") and *name (inside @path).
 * @what prefixes the path in messages.
 */
static int walk_path(struct dump_reader *r, const char *what, char *path,
		     size_t len, cfs_inode **parent, char **name)
{
	char buf[SHOW_MAX + 4], buf2[SHOW_MAX + 4];
	cfs_inode *dir = r->root;
	size_t depth = 0;
	char *p;

	if (path[0] != '/')
		return fail(r, EINVAL, "%s%s is not an absolute path", what,
			    show(buf, path, len));
	if (len == 1) {
		*parent = NULL;
		*name = path;
		return 0;
	}
	for (p = path + 1;;) {
		char *end = strchr(p, '/');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		cfs_inode *child;

		/* "/a" is level 1: the same count as every tree's */
		if (++depth > CFS_TREE_DEPTH_MAX)
			return fail(r, EINVAL, "%s%s: deeper than %d levels",
				    what, show(buf, path, len),
				    CFS_TREE_DEPTH_MAX);
		if (n == 0)
			return fail(r, EINVAL, "empty component in %s%s", what,
				    show(buf, path, len));
		if ((n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			return fail(r, EINVAL, "'.' or '..' in %s%s", what,
				    show(buf, path, len));
		if (n > CFS_NAME_MAX)
			return fail(r, EINVAL,
				    "component of %zu bytes (over %d) in %s%s",
				    n, CFS_NAME_MAX, what,
				    show(buf, path, len));
		if (!end)
			break;
		*end = '\0';
		child = cfs_dir_lookup(dir, p);
		*end = '/';
		if (!child)
			return fail(r, EINVAL,
				    "parent directory %s missing for %s%s",
				    show(buf, path, (size_t)(end - path)), what,
				    show(buf2, path, len));
		if (!child->dir)
			return fail(r, EINVAL,
				    "parent %s of %s%s is not a directory",
				    show(buf, path, (size_t)(end - path)), what,
				    show(buf2, path, len));
		dir = child;
		p = end + 1;
	}
	*parent = dir;
	*name = p;
	return 0;
}

static int add_fixup(struct dump_reader *r, cfs_inode *parent, const char *name,
		     const char *target)
{
	struct fixup *f;

	if (r->n_fixups == r->cap_fixups) {
		size_t cap = r->cap_fixups ? 2 * r->cap_fixups : 16;
		struct fixup *n = reallocarray(r->fixups, cap, sizeof(*n));

		if (!n)
			return fail(r, ENOMEM, "out of memory");
		r->fixups = n;
		r->cap_fixups = cap;
	}
	f = &r->fixups[r->n_fixups];
	*f = (struct fixup){ .lineno = r->lineno, .parent = parent };
	f->name = strdup(name);
	f->target = strdup(target);
	if (!f->name || !f->target) {
		free(f->name);
		free(f->target);
		return fail(r, ENOMEM, "out of memory");
	}
	r->n_fixups++;
	return 0;
}

/* The attributes of a regular file: CONTENT or SIZE, DIGEST, PAYLOAD. */
static int set_regular(struct dump_reader *r, cfs_inode *inode, uint64_t size,
		       const struct field *content, const uint8_t *digest,
		       const char *payload)
{
	int ret;

	if (content->data) {
		if (content->len != size)
			return fail(r, EINVAL,
				    "CONTENT of %zu bytes but SIZE %" PRIu64,
				    content->len, size);
		if (content->len > CFS_INLINE_MAX)
			return fail(
				r, EINVAL,
				"CONTENT of %zu bytes, over the %d inline limit",
				content->len, CFS_INLINE_MAX);
		ret = cfs_inode_set_content(inode, content->data, content->len);
	} else {
		ret = cfs_inode_set_size(inode, size);
	}
	/* After the content, which drops digest and payload. */
	if (ret >= 0 && digest)
		ret = cfs_inode_set_digest(inode, digest);
	if (ret >= 0 && payload)
		ret = cfs_inode_set_payload(inode, payload);
	return ret < 0 ? fail_tree(r, ret) : 0;
}

static int parse_xattrs(struct dump_reader *r, cfs_inode *inode, char *p,
			char *end)
{
	char buf[SHOW_MAX + 4];

	/* As mkcomposefs splits: one trailing space ends the line quietly,
	 * two spaces in a row make an empty (invalid) xattr. */
	while (p < end) {
		char *sp = memchr(p, ' ', (size_t)(end - p));
		char *xend = sp ? sp : end;
		char *eq = memchr(p, '=', (size_t)(xend - p));
		struct field name, value;
		int ret;

		if (!eq)
			return fail(r, EINVAL, "xattr '%s' without '='",
				    show(buf, p, (size_t)(xend - p)));
		name = (struct field){ p, (size_t)(eq - p) };
		value = (struct field){ eq + 1, (size_t)(xend - eq - 1) };
		ret = unescape_string(r, "xattr name", &name);
		if (ret >= 0)
			ret = unescape(r, "xattr value", &value);
		if (ret < 0)
			return ret;
		ret = cfs_inode_set_xattr(inode, name.data, value.data,
					  value.len);
		if (ret < 0)
			return fail_tree(r, ret);
		p = sp ? sp + 1 : end;
	}
	return 0;
}

static int parse_line(struct dump_reader *r)
{
	_cleanup_(cfs_inode_unrefp) cfs_inode *inode = NULL;
	char buf[SHOW_MAX + 4];
	struct field f[FIELD_COUNT];
	char *p = r->line, *end = r->line + r->len, *name;
	uint8_t digest[CFS_DIGEST_SIZE];
	uint64_t size, mode, nlink, uid, gid, rdev;
	cfs_inode *parent;
	int64_t sec = 0;
	uint32_t nsec = 0;
	bool hardlink;
	int ret;

	/* Nothing escaped can hold a raw NUL; it would only hide bytes. */
	if (memchr(r->line, '\0', r->len))
		return fail(r, EINVAL, "NUL byte at column %zu",
			    (size_t)((char *)memchr(r->line, '\0', r->len) -
				     r->line) +
				    1);
	for (int i = 0; i < FIELD_COUNT; i++) {
		char *sp;

		if (p > end)
			return fail(r, EINVAL,
				    "%d fields, expected at least %d", i,
				    FIELD_COUNT);
		sp = memchr(p, ' ', (size_t)(end - p));
		f[i].data = p;
		f[i].len = (size_t)((sp ? sp : end) - p);
		p = sp ? sp + 1 : end + 1;
	}

	ret = unescape_string(r, "PATH", &f[FIELD_PATH]);
	if (ret < 0)
		return ret;
	if (f[FIELD_PATH].len == 0)
		return fail(r, EINVAL, "empty PATH");
	if (!r->root && strcmp(f[FIELD_PATH].data, "/") != 0)
		return fail(
			r, EINVAL,
			"the first entry must be the root directory /, not %s",
			show(buf, f[FIELD_PATH].data, f[FIELD_PATH].len));
	ret = walk_path(r, "", f[FIELD_PATH].data, f[FIELD_PATH].len, &parent,
			&name);
	if (ret < 0)
		return ret;
	if (parent ? cfs_dir_lookup(parent, name) != NULL : r->root != NULL)
		return fail(r, EINVAL, "duplicate path %s",
			    show(buf, f[FIELD_PATH].data, f[FIELD_PATH].len));

	hardlink = f[FIELD_MODE].len > 0 && f[FIELD_MODE].data[0] == '@';
	ret = parse_uint(r, "MODE", f[FIELD_MODE].data + hardlink,
			 f[FIELD_MODE].len - hardlink, 8, UINT32_MAX, &mode);
	if (ret < 0)
		return ret;
	ret = cfs_inode_new(&inode, (uint32_t)mode);
	if (ret < 0)
		return fail_tree(r, ret);
	if (!parent && !S_ISDIR(mode))
		return fail(r, EINVAL, "the root / is not a directory");
	if (hardlink && S_ISDIR(mode))
		return fail(r, EINVAL, "a directory cannot be a hardlink");

	if (hardlink) {
		/* Only PATH, MODE and PAYLOAD count, as in mkcomposefs; the
		 * entry holds a placeholder until the target is known. */
		ret = unescape_optional(r, "PAYLOAD", &f[FIELD_PAYLOAD], true);
		if (ret < 0)
			return ret;
		if (!f[FIELD_PAYLOAD].data)
			return fail(r, EINVAL, "hardlink without a target");
		ret = add_fixup(r, parent, name, f[FIELD_PAYLOAD].data);
		if (ret < 0)
			return ret;
		ret = cfs_dir_link(parent, name, inode);
		if (ret < 0)
			return fail_tree(r, ret);
		inode->walk_data = &placeholder_mark;
		return 0;
	}

	ret = parse_field_uint(r, f, FIELD_SIZE, 10, UINT64_MAX, &size);
	if (ret >= 0)
		ret = parse_field_uint(r, f, FIELD_NLINK, 10, UINT64_MAX,
				       &nlink);
	if (ret >= 0)
		ret = parse_field_uint(r, f, FIELD_UID, 10, UINT32_MAX, &uid);
	if (ret >= 0)
		ret = parse_field_uint(r, f, FIELD_GID, 10, UINT32_MAX, &gid);
	if (ret >= 0)
		ret = parse_field_uint(r, f, FIELD_RDEV, 10, UINT64_MAX, &rdev);
	if (ret >= 0)
		ret = parse_mtime(r, &f[FIELD_MTIME], &sec, &nsec);
	if (ret >= 0)
		ret = unescape_optional(r, "PAYLOAD", &f[FIELD_PAYLOAD], true);
	if (ret >= 0)
		ret = unescape_optional(r, "CONTENT", &f[FIELD_CONTENT], false);
	if (ret >= 0)
		ret = unescape_optional(r, "DIGEST", &f[FIELD_DIGEST], true);
	if (ret < 0)
		return ret;
	if (f[FIELD_DIGEST].data &&
	    cfs_digest_from_hex(digest, f[FIELD_DIGEST].data) < 0)
		return fail(r, EINVAL, "DIGEST '%s' is not 64 hex digits",
			    show(buf, f[FIELD_DIGEST].data,
				 f[FIELD_DIGEST].len));

	/* What a type has no use for is ignored, as mkcomposefs does: SIZE
	 * of non-regular files, RDEV of non-devices, PAYLOAD, CONTENT and
	 * DIGEST of anything but regular files (PAYLOAD: and symlinks). */
	switch (mode & S_IFMT) {
	case S_IFREG:
		ret = set_regular(r, inode, size, &f[FIELD_CONTENT],
				  f[FIELD_DIGEST].data ? digest : NULL,
				  f[FIELD_PAYLOAD].data);
		break;
	case S_IFLNK:
		if (!f[FIELD_PAYLOAD].data)
			return fail(r, EINVAL, "symlink without a target");
		ret = cfs_inode_set_target(inode, f[FIELD_PAYLOAD].data);
		if (ret < 0)
			ret = fail_tree(r, ret);
		break;
	case S_IFCHR:
	case S_IFBLK:
		ret = cfs_inode_set_rdev(inode, rdev);
		if (ret < 0)
			ret = fail_tree(r, ret);
		break;
	default:
		break;
	}
	if (ret < 0)
		return ret;
	cfs_inode_set_owner(inode, (uint32_t)uid, (uint32_t)gid);
	ret = cfs_inode_set_mtime(inode, sec, nsec);
	if (ret < 0)
		return fail_tree(r, ret);
	(void)nlink; /* the tree counts links itself */

	ret = parse_xattrs(r, inode, p, end);
	if (ret < 0)
		return ret;

	if (!parent) {
		r->root = TAKE_PTR(inode);
		return 0;
	}
	ret = cfs_dir_link(parent, name, inode);
	return ret < 0 ? fail_tree(r, ret) : 0;
}

/* Resolve every hardlink line: first check all targets, while the
 * placeholders still tell hardlink lines apart, then relink. */
static int resolve_hardlinks(struct dump_reader *r)
{
	char buf[SHOW_MAX + 4];
	int ret;

	for (size_t i = 0; i < r->n_fixups; i++) {
		struct fixup *f = &r->fixups[i];
		size_t len = strlen(f->target);
		cfs_inode *parent, *target;
		char *name;

		r->lineno = f->lineno;
		ret = walk_path(r, "hardlink target ", f->target, len, &parent,
				&name);
		if (ret < 0)
			return ret;
		target = parent ? cfs_dir_lookup(parent, name) : r->root;
		if (!target)
			return fail(r, EINVAL, "hardlink target %s missing",
				    show(buf, f->target, len));
		if (target->dir)
			return fail(r, EINVAL,
				    "hardlink target %s is a directory",
				    show(buf, f->target, len));
		if (target->walk_data == &placeholder_mark)
			return fail(r, EINVAL,
				    "hardlink target %s is itself a hardlink",
				    show(buf, f->target, len));
		f->resolved = target;
	}
	for (size_t i = 0; i < r->n_fixups; i++) {
		struct fixup *f = &r->fixups[i];

		r->lineno = f->lineno;
		ret = cfs_dir_unlink(f->parent, f->name);
		assert(ret == 0);
		ret = cfs_dir_link(f->parent, f->name, f->resolved);
		if (ret < 0)
			return fail_tree(r, ret);
	}
	return 0;
}

int cfs_dump_read(cfs_inode **root_out, FILE *in)
{
	struct dump_reader r = { .in = in };
	int ret;

	flockfile(in);
	for (;;) {
		ret = read_line(&r);
		if (ret <= 0)
			break;
		if (r.len == 0)
			continue;
		ret = parse_line(&r);
		if (ret < 0)
			break;
	}
	funlockfile(in);
	if (ret == 0 && !r.root)
		ret = fail(&r, EINVAL,
			   "no entries: the root directory / is missing");
	if (ret == 0)
		ret = resolve_hardlinks(&r);

	for (size_t i = 0; i < r.n_fixups; i++) {
		free(r.fixups[i].name);
		free(r.fixups[i].target);
	}
	free(r.fixups);
	free(r.line);
	if (ret < 0) {
		/* Placeholders still marked go with the tree. */
		cfs_inode_unref(r.root);
		return ret;
	}
	*root_out = r.root;
	return 0;
}
