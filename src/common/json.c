/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
#include "common/json.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"

/* More than CFS_JSON_CONTAINERS_MAX '{' and '[' outside strings? */
static bool too_many_containers(const char *buf, size_t len)
{
	bool in_string = false;
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		if (in_string) {
			if (buf[i] == '\\')
				i++;
			else if (buf[i] == '"')
				in_string = false;
		} else if (buf[i] == '"') {
			in_string = true;
		} else if ((buf[i] == '{' || buf[i] == '[') &&
			   ++n > CFS_JSON_CONTAINERS_MAX) {
			return true;
		}
	}
	return false;
}

int cfs_json_parse(const char *buf, size_t len, json_object **out)
{
	const char *nul = memchr(buf, '\0', len);
	enum json_tokener_error jerr;
	json_tokener *tok;
	json_object *obj;
	size_t end;

	*out = NULL;
	/* json-c stops at a NUL; strict JSON never has one. */
	if (nul)
		return cfs_error(EINVAL, "invalid JSON at byte %zu: NUL byte",
				 (size_t)(nul - buf));
	if (len > INT32_MAX)
		return cfs_error(EFBIG, "JSON document of %zu bytes", len);
	if (too_many_containers(buf, len))
		return cfs_error(E2BIG, "more than %d JSON objects and arrays",
				 CFS_JSON_CONTAINERS_MAX);
	tok = json_tokener_new_ex(CFS_JSON_DEPTH_MAX);
	if (!tok)
		return cfs_error(ENOMEM, "out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, buf, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	/* A document that ends early (or a bare number, which only its
	 * end ends) is told that the input is over. */
	if (!obj && jerr == json_tokener_continue) {
		obj = json_tokener_parse_ex(tok, "", 1);
		jerr = json_tokener_get_error(tok);
		end = len;
	}
	json_tokener_free(tok);
	if (!obj || jerr != json_tokener_success) {
		json_object_put(obj);
		return cfs_error(EINVAL, "invalid JSON at byte %zu: %s",
				 CFS_MIN(end, len),
				 json_tokener_error_desc(jerr));
	}
	for (; end < len; end++) {
		if (!strchr(" \t\r\n", buf[end])) {
			json_object_put(obj);
			return cfs_error(EINVAL,
					 "invalid JSON at byte %zu: data after "
					 "the document",
					 end);
		}
	}
	*out = obj;
	return 0;
}

int cfs_json_read_fd(int fd, size_t max, json_object **out)
{
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t got;
	int r;

	*out = NULL;
	if (fstat(fd, &st) < 0)
		return cfs_error_errno(errno, "fstat");
	if (!S_ISREG(st.st_mode))
		return cfs_error(EINVAL, "not a regular file");
	if ((uint64_t)st.st_size > max)
		return cfs_error(EFBIG, "%lld bytes, more than %zu",
				 (long long)st.st_size, max);
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return cfs_error(ENOMEM, "out of memory");
	/* (a file shorter than fstat said: what is there) */
	r = cfs_read_full(fd, buf, (size_t)st.st_size, &got);
	if (r < 0)
		return cfs_error_errno(-r, "reading");
	return cfs_json_parse(buf, got, out);
}
