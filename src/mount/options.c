/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * The option string of mount.cfs, in the form mount(8) hands it to a
 * helper: comma-separated "name" or "name=value" items, a value in double
 * quotes may hold commas (libmount's quoting). Unknown options are errors
 * unless the caller asked to be sloppy (mount -s).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cfs/image.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "mount-internal.h"

/* Options that only mean something to mount(8) and fstab (see mount(8),
 * "FILESYSTEM-INDEPENDENT MOUNT OPTIONS"); a helper may still see them. */
static const char *const ignored_options[] = {
	"defaults", "auto",   "noauto", "nofail", "_netdev",
	"user",	    "nouser", "users",	"owner",  "group",
};

static const struct {
	const char *name;
	unsigned int flag;
	bool set;
} flag_options[] = {
	{ "ro", CFS_MOUNT_READONLY, true },
	{ "rw", CFS_MOUNT_READONLY, false },
	{ "nosuid", CFS_MOUNT_NOSUID, true },
	{ "suid", CFS_MOUNT_NOSUID, false },
	{ "nodev", CFS_MOUNT_NODEV, true },
	{ "dev", CFS_MOUNT_NODEV, false },
	{ "noexec", CFS_MOUNT_NOEXEC, true },
	{ "exec", CFS_MOUNT_NOEXEC, false },
};

void cfs_mount_args_clear(struct cfs_mount_args *args)
{
	free(args->objects_dir);
	free(args->upperdir);
	free(args->workdir);
	free(args->idmap);
	memset(args, 0, sizeof(*args));
}

void cfs_mount_args_to_options(const struct cfs_mount_args *args,
			       cfs_mount_options *opts)
{
	*opts = (cfs_mount_options)CFS_MOUNT_OPTIONS_INIT;
	opts->flags = args->flags;
	opts->objects_dir = args->objects_dir;
	opts->upperdir = args->upperdir;
	opts->workdir = args->workdir;
	opts->verity = args->verity;
	opts->expected_digest = args->have_digest ? args->digest : NULL;
	opts->idmap = args->idmap;
}

/* A path option: set once (the same value twice is fine: fstab and the
 * command line may both carry it). */
static int set_path(char **slot, const char *name, const char *value)
{
	char *copy;

	if (!value || !*value)
		return cfs_error(EINVAL,
				 "mount option '%s' needs a value: %s=DIR",
				 name, name);
	if (*slot) {
		if (strcmp(*slot, value) == 0)
			return 0;
		return cfs_error(
			EINVAL, "mount option '%s' given twice ('%s' and '%s')",
			name, *slot, value);
	}
	copy = strdup(value);
	if (!copy)
		return cfs_error(ENOMEM, "mount options: out of memory");
	*slot = copy;
	return 0;
}

static int set_digest(struct cfs_mount_args *args, const char *value)
{
	uint8_t digest[CFS_DIGEST_SIZE];

	if (!value)
		return cfs_error(
			EINVAL,
			"mount option 'digest' needs a value: digest=HEX");
	/* `fsverity digest` prints "sha256:HEX"; take that as well. */
	if (strncmp(value, "sha256:", 7) == 0)
		value += 7;
	if (cfs_digest_from_hex(digest, value) < 0)
		return cfs_error(
			EINVAL,
			"mount option 'digest=%s': expected 64 hex digits (an fs-verity SHA-256 digest)",
			value);
	if (args->have_digest && memcmp(args->digest, digest, sizeof(digest)))
		return cfs_error(
			EINVAL,
			"mount option 'digest' given twice with different values");
	memcpy(args->digest, digest, sizeof(digest));
	args->have_digest = true;
	return 0;
}

static int set_verity(struct cfs_mount_args *args, const char *value)
{
	static const struct {
		const char *name;
		cfs_verity_mode mode;
	} modes[] = {
		{ "auto", CFS_VERITY_AUTO },
		{ "off", CFS_VERITY_OFF },
		{ "on", CFS_VERITY_ON },
		{ "require", CFS_VERITY_REQUIRE },
	};

	for (size_t i = 0; value && i < CFS_ARRAY_SIZE(modes); i++) {
		if (strcmp(value, modes[i].name) == 0) {
			args->verity = modes[i].mode;
			return 0;
		}
	}
	return cfs_error(
		EINVAL,
		"mount option 'verity%s%s': expected verity=off, on, require or auto",
		value ? "=" : "", value ? value : "");
}

static bool is_ignored(const char *name)
{
	if (strncmp(name, "x-", 2) == 0 || strcmp(name, "comment") == 0)
		return true;
	for (size_t i = 0; i < CFS_ARRAY_SIZE(ignored_options); i++)
		if (strcmp(name, ignored_options[i]) == 0)
			return true;
	return false;
}

/* One item, already split into @name and @value (NULL without '='). */
static int parse_item(struct cfs_mount_args *args, const char *name,
		      const char *value, unsigned int parse_flags)
{
	if (strcmp(name, "objects") == 0 || strcmp(name, "basedir") == 0)
		return set_path(&args->objects_dir, name, value);
	if (strcmp(name, "upperdir") == 0)
		return set_path(&args->upperdir, name, value);
	if (strcmp(name, "workdir") == 0)
		return set_path(&args->workdir, name, value);
	if (strcmp(name, "digest") == 0)
		return set_digest(args, value);
	if (strcmp(name, "verity") == 0)
		return set_verity(args, value);
	/* "user:NAME", "[u:|g:]FROM:TO:COUNT ..." (commas inside quotes),
	 * or a user namespace's path: cfs_idmap_userns(). */
	if (strcmp(name, "idmap") == 0) {
		if (!value || !*value)
			return cfs_error(
				EINVAL,
				"mount option 'idmap' needs a value: "
				"idmap=user:NAME or idmap=FROM:TO:COUNT");
		return set_path(&args->idmap, name, value);
	}
	for (size_t i = 0; i < CFS_ARRAY_SIZE(flag_options); i++) {
		if (strcmp(name, flag_options[i].name) != 0)
			continue;
		if (value)
			return cfs_error(EINVAL,
					 "mount option '%s' takes no value",
					 name);
		if (flag_options[i].set)
			args->flags |= flag_options[i].flag;
		else
			args->flags &= ~flag_options[i].flag;
		return 0;
	}
	if (is_ignored(name) || (parse_flags & CFS_MOUNT_PARSE_SLOPPY))
		return 0;
	return cfs_error(EINVAL, "unknown mount option '%s%s%s'", name,
			 value ? "=" : "", value ? value : "");
}

/* Split @item (modified in place) at the first '=' and strip the double
 * quotes around the value. */
static int split_item(char *item, char **name, char **value)
{
	char *eq = strchr(item, '=');
	char *q;
	size_t len;

	*name = item;
	*value = NULL;
	if (eq) {
		*eq = '\0';
		*value = eq + 1;
	}
	if (strchr(*name, '"') || !**name)
		return cfs_error(EINVAL, "mount option '%s%s%s': bad name",
				 *name, eq ? "=" : "", eq ? *value : "");
	if (!*value)
		return 0;
	q = strchr(*value, '"');
	if (!q)
		return 0;
	len = strlen(*value);
	if (q != *value || len < 2 || (*value)[len - 1] != '"' ||
	    memchr(*value + 1, '"', len - 2))
		return cfs_error(
			EINVAL,
			"mount option '%s=%s': quotes must enclose the whole value",
			*name, *value);
	(*value)[len - 1] = '\0';
	(*value)++;
	return 0;
}

static int parse_all(struct cfs_mount_args *args, char *s,
		     unsigned int parse_flags)
{
	while (*s) {
		char *item = s, *name, *value;
		bool quoted = false;
		int r;

		for (; *s && (quoted || *s != ','); s++)
			if (*s == '"')
				quoted = !quoted;
		if (quoted)
			return cfs_error(
				EINVAL, "mount option '%s': unterminated quote",
				item);
		if (*s)
			*s++ = '\0';
		if (!*item)
			continue; /* "a,,b" and a trailing comma */
		r = split_item(item, &name, &value);
		if (r < 0)
			return r;
		r = parse_item(args, name, value, parse_flags);
		if (r < 0)
			return r;
	}
	return 0;
}

int cfs_mount_args_parse(struct cfs_mount_args *args, const char *optstr,
			 unsigned int parse_flags)
{
	_cleanup_free_ char *copy = NULL;
	int r;

	if (parse_flags & ~CFS_MOUNT_PARSE_SLOPPY)
		return cfs_error(EINVAL, "mount options: unknown parse flags");
	if (!optstr)
		optstr = "";
	if (strlen(optstr) > CFS_MOUNT_OPTSTR_MAX)
		return cfs_error(EINVAL,
				 "mount options: %zu bytes, longer than %d",
				 strlen(optstr), CFS_MOUNT_OPTSTR_MAX);
	copy = strdup(optstr);
	if (!copy)
		return cfs_error(ENOMEM, "mount options: out of memory");
	r = parse_all(args, copy, parse_flags);
	if (r >= 0 && !args->objects_dir)
		r = cfs_error(
			EINVAL,
			"mount options: objects=DIR (the object directory) is required");
	if (r >= 0 && !args->upperdir != !args->workdir)
		r = cfs_error(
			EINVAL,
			"mount options: upperdir= and workdir= go together (%s given alone)",
			args->upperdir ? "upperdir=" : "workdir=");
	if (r < 0)
		cfs_mount_args_clear(args);
	return r;
}
