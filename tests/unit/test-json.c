/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* The one JSON reader: strict, bounded, and a message saying where. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "test.h"

static int parse(const char *text, json_object **out)
{
	return cfs_json_parse(text, strlen(text), out);
}

static void check_refused(const char *text, int err, const char *msg)
{
	json_object *o = (json_object *)1;

	CHECK_ERR(parse(text, &o), err);
	CHECK(o == NULL);
	if (strcmp(cfs_error_message(), msg) != 0) {
		fprintf(stderr, "%s: message '%s', want '%s'\n", text,
			cfs_error_message(), msg);
		CHECK(false);
	}
}

static void test_accepted(void)
{
	json_object *o = NULL;

	CHECK_OK(parse("{\"a\": [1, 2, {\"b\": null}]}\n \t", &o));
	CHECK(json_object_is_type(o, json_type_object));
	json_object_put(o);
	/* a bare value, whose end only the end of the input tells */
	CHECK_OK(parse("12", &o));
	CHECK(json_object_get_int(o) == 12);
	json_object_put(o);
	CHECK_OK(parse("\"x\"", &o));
	json_object_put(o);
}

static void test_refused(void)
{
	char nul[] = "{\"a\":1}";
	json_object *o = NULL;

	check_refused("{\"a\":1", EINVAL,
		      "invalid JSON at byte 6: unexpected end of data");
	/* json-c's strict mode reads on past the document */
	check_refused("{\"a\":1} x", EINVAL,
		      "invalid JSON at byte 8: unexpected character");
	check_refused("{\"a\":1,}", EINVAL,
		      "invalid JSON at byte 7: unexpected character");
	check_refused("/* c */ {}", EINVAL,
		      "invalid JSON at byte 0: unexpected character");
	check_refused("", EINVAL,
		      "invalid JSON at byte 0: unexpected end of data");
	nul[3] = '\0';
	CHECK_ERR(cfs_json_parse(nul, sizeof(nul) - 1, &o), EINVAL);
	CHECK(strcmp(cfs_error_message(), "invalid JSON at byte 3: NUL byte") ==
	      0);
}

static void test_limits(void)
{
	size_t n = CFS_JSON_CONTAINERS_MAX + 1, deep = CFS_JSON_DEPTH_MAX + 1;
	char *buf = malloc(3 * n + 3);
	json_object *o = NULL;
	size_t len = 0;

	/* nested one level more than the limit */
	for (size_t i = 0; i < deep; i++)
		buf[len++] = '[';
	for (size_t i = 0; i < deep; i++)
		buf[len++] = ']';
	CHECK_ERR(cfs_json_parse(buf, len, &o), EINVAL);
	CHECK(strstr(cfs_error_message(), "nesting too deep") != NULL);
	/* and at the limit */
	CHECK_OK(cfs_json_parse(buf + 1, len - 2, &o));
	json_object_put(o);

	/* one array more than the limit, flat */
	len = 0;
	buf[len++] = '[';
	for (size_t i = 0; i < n - 1; i++) {
		memcpy(buf + len, "[],", 3);
		len += 3;
	}
	buf[len - 1] = ']';
	CHECK_ERR(cfs_json_parse(buf, len, &o), E2BIG);
	/* brackets in strings do not count */
	CHECK_OK(parse("[\"[[[\\\"[[\"]", &o));
	json_object_put(o);
	free(buf);
}

static void test_read_fd(void)
{
	char path[] = "/tmp/test-json-XXXXXX";
	int fd = mkstemp(path);
	json_object *o = NULL;

	CHECK(fd >= 0);
	CHECK(write(fd, "{\"k\": true}", 11) == 11);
	close(fd);
	fd = open(path, O_RDONLY);
	CHECK_OK(cfs_json_read_fd(fd, 11, &o));
	CHECK(json_object_is_type(o, json_type_object));
	json_object_put(o);
	CHECK_ERR(cfs_json_read_fd(fd, 10, &o), EFBIG);
	CHECK(o == NULL);
	close(fd);
	unlink(path);
	fd = open("/tmp", O_RDONLY | O_DIRECTORY);
	CHECK_ERR(cfs_json_read_fd(fd, 10, &o), EINVAL);
	close(fd);
}

int main(int argc, char **argv)
{
	TEST_RUN(argc, argv, test_accepted);
	TEST_RUN(argc, argv, test_refused);
	TEST_RUN(argc, argv, test_limits);
	TEST_RUN(argc, argv, test_read_fd);
	return test_done();
}
