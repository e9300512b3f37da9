/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * Idmapped mounts (cfs_mount_options.idmap): the user namespace whose id
 * mapping an idmapped mount applies, made from a map or a user's
 * subordinate ids, and the idmapped clone of a mount.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cfs/mount.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "mount-internal.h"

/* <linux/mount.h>, which clashes with glibc's <sys/mount.h>. */
#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

struct idmap_attr { /* struct mount_attr */
	uint64_t attr_set, attr_clr, propagation, userns_fd;
};

/* A map as /proc/PID/uid_map takes it: "FROM TO COUNT\n"..., at most
 * 340 lines of the kernel's limit, far more than anyone writes. */
#define MAP_MAX 4096

static int add_line(char *map, unsigned long from, unsigned long to,
		    unsigned long count)
{
	size_t len = strlen(map);
	int n = snprintf(map + len, MAP_MAX - len, "%lu %lu %lu\n", from, to,
			 count);

	return n < 0 || (size_t)n >= MAP_MAX - len ? -E2BIG : 0;
}

/* The first range of @name (or of its uid @id) in @file ("NAME:START:COUNT"). */
static int subid_range(const char *file, const char *name, unsigned long id,
		       unsigned long *start, unsigned long *count)
{
	_cleanup_fclose_ FILE *f = fopen(file, "re");
	char line[512], idstr[32];

	if (!f)
		return cfs_error_errno(errno, "idmap: %s", file);
	snprintf(idstr, sizeof(idstr), "%lu", id);
	while (fgets(line, sizeof(line), f)) {
		char *who = strtok(line, ":\n"), *s = strtok(NULL, ":\n"),
		     *c = strtok(NULL, ":\n"), *end;

		if (!who || !s || !c ||
		    (strcmp(who, name) != 0 && strcmp(who, idstr) != 0))
			continue;
		errno = 0;
		*start = strtoul(s, &end, 10);
		if (errno || *end)
			continue;
		*count = strtoul(c, &end, 10);
		if (errno || *end || *count == 0)
			continue;
		return 0;
	}
	return cfs_error(ENOENT, "idmap: user %s has no range in %s", name,
			 file);
}

/* "user:NAME": rootless podman's default mapping for NAME. */
static int user_maps(const char *name, char *uids, char *gids)
{
	struct passwd *pw = getpwnam(name);
	unsigned long us, uc, gs, gc;
	int r;

	if (!pw)
		return cfs_error(EINVAL, "idmap: no user %s", name);
	r = subid_range("/etc/subuid", name, pw->pw_uid, &us, &uc);
	if (r == 0)
		r = subid_range("/etc/subgid", name, pw->pw_uid, &gs, &gc);
	if (r < 0)
		return r;
	r = add_line(uids, 0, pw->pw_uid, 1);
	if (r == 0)
		r = add_line(uids, 1, us, uc);
	if (r == 0)
		r = add_line(gids, 0, pw->pw_gid, 1);
	if (r == 0)
		r = add_line(gids, 1, gs, gc);
	return r;
}

/* Entries "[u:|g:]FROM:TO:COUNT", separated by spaces or commas. */
static int entry_maps(const char *idmap, char *uids, char *gids)
{
	_cleanup_free_ char *copy = strdup(idmap);
	char *save = NULL;

	if (!copy)
		return -ENOMEM;
	for (char *e = strtok_r(copy, " ,", &save); e;
	     e = strtok_r(NULL, " ,", &save)) {
		bool u = true, g = true;
		unsigned long v[3];
		char *p = e, *end;
		int r = 0;

		if ((p[0] == 'u' || p[0] == 'g') && p[1] == ':') {
			u = p[0] == 'u';
			g = p[0] == 'g';
			p += 2;
		}
		for (int i = 0; i < 3; i++) {
			if (!isdigit((unsigned char)*p))
				return cfs_error(EINVAL,
						 "idmap: '%s': not "
						 "[u:|g:]FROM:TO:COUNT",
						 e);
			errno = 0;
			v[i] = strtoul(p, &end, 10);
			if (errno || v[i] > 0xfffffffful ||
			    *end != (i < 2 ? ':' : '\0'))
				return cfs_error(EINVAL,
						 "idmap: '%s': not "
						 "[u:|g:]FROM:TO:COUNT",
						 e);
			p = end + (i < 2);
		}
		if (v[2] == 0)
			return cfs_error(EINVAL, "idmap: '%s': COUNT is 0", e);
		if (u)
			r = add_line(uids, v[0], v[1], v[2]);
		if (r == 0 && g)
			r = add_line(gids, v[0], v[1], v[2]);
		if (r < 0)
			return cfs_error(E2BIG, "idmap: too many entries");
	}
	if (!uids[0] && !gids[0])
		return cfs_error(EINVAL, "idmap: empty");
	return 0;
}

static int write_map(pid_t pid, const char *which, const char *map)
{
	char path[64];
	_cleanup_close_ int fd = -1;
	size_t len = strlen(map);

	if (!len)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, which);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, map, len) != (ssize_t)len)
		return cfs_error_errno(errno,
				       "idmap: %s (overlapping ranges, or not "
				       "root?)",
				       which);
	return 0;
}

int cfs_idmap_userns(const char *idmap, int *userns_fd)
{
	char uids[MAP_MAX] = "", gids[MAP_MAX] = "", path[64];
	int pipefd[2], r, fd;
	pid_t pid;

	*userns_fd = -1;
	if (!idmap || !*idmap)
		return cfs_error(EINVAL, "idmap: empty");
	if (idmap[0] == '/') {
		fd = open(idmap, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return cfs_error_errno(errno, "idmap: %s", idmap);
		*userns_fd = fd;
		return 0;
	}
	if (strncmp(idmap, "user:", 5) == 0)
		r = user_maps(idmap + 5, uids, gids);
	else
		r = entry_maps(idmap, uids, gids);
	if (r < 0)
		return r;
	/* A child in a new user namespace, which waits until the maps are
	 * written and the namespace is held by an fd. */
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return cfs_error_errno(errno, "idmap: pipe");
	pid = fork();
	if (pid < 0) {
		r = cfs_error_errno(errno, "idmap: fork");
		close(pipefd[0]);
		close(pipefd[1]);
		return r;
	}
	if (pid == 0) {
		char c;

		close(pipefd[1]);
		if (unshare(CLONE_NEWUSER) < 0)
			_exit(1);
		/* until the parent is done with our namespace */
		if (read(pipefd[0], &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	close(pipefd[0]);
	/* Wait until the child is in its namespace: its user ns differs. */
	for (int i = 0; i < 1000; i++) {
		char a[64], b[64];
		ssize_t la, lb;

		snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
		la = readlink(path, a, sizeof(a) - 1);
		lb = readlink("/proc/self/ns/user", b, sizeof(b) - 1);
		if (la > 0 && lb > 0 &&
		    (la != lb || memcmp(a, b, (size_t)la) != 0))
			break;
		usleep(1000);
	}
	r = write_map(pid, "uid_map", uids);
	if (r == 0)
		r = write_map(pid, "gid_map", gids);
	if (r == 0) {
		snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			r = cfs_error_errno(errno, "idmap: %s", path);
		else
			*userns_fd = fd;
	}
	close(pipefd[1]); /* the child's read ends */
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return r;
}

int cfs_idmap_mount(int mount_fd, int userns_fd, const char *what)
{
	struct idmap_attr a = {
		.attr_set = MOUNT_ATTR_IDMAP,
		.userns_fd = (uint64_t)userns_fd,
	};

	if (syscall(SYS_mount_setattr, mount_fd, "", AT_EMPTY_PATH, &a,
		    sizeof(a)) < 0)
		return cfs_error_errno(errno == EINVAL ? EOPNOTSUPP : errno,
				       "idmap: %s (idmapped mounts need "
				       "Linux 5.12 and a file system that "
				       "takes them)",
				       what);
	return 0;
}

int cfs_idmap_clone(const char *path, int userns_fd, int *out_fd)
{
	int fd = (int)syscall(SYS_open_tree, AT_FDCWD, path,
			      OPEN_TREE_CLONE | O_CLOEXEC);
	int r;

	*out_fd = -1;
	if (fd < 0)
		return cfs_error_errno(errno, "idmap: open_tree %s", path);
	r = cfs_idmap_mount(fd, userns_fd, path);
	if (r < 0) {
		close(fd);
		return r;
	}
	*out_fd = fd;
	return 0;
}
