/* SPDX-License-Identifier: MIT */
/* The memory limit of this process's cgroup (memlimit.h). */
#include "memlimit.h"

#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* At or above this a limit is "none" (v1 writes 2^63 rounded to pages). */
#define NO_LIMIT ((uint64_t)1 << 60)

/* @prefix then @path into @out; false when it does not fit. */
static bool join(char *out, size_t cap, const char *prefix, const char *path)
{
	return (size_t)snprintf(out, cap, "%s%s", prefix, path) < cap;
}

/* This process's group in the v1 memory hierarchy (@v1 true) or in the v2
 * one: the path field of /proc/self/cgroup's line, into @out. */
static bool own_group(const char *prefix, bool v1, char *out, size_t cap)
{
	char line[PATH_MAX + 64];
	bool found = false;
	FILE *f;

	if (!join(line, sizeof(line), prefix, "/proc/self/cgroup"))
		return false;
	f = fopen(line, "re");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *ctl = strchr(line, ':'), *path, *tok, *save = NULL;

		if (!ctl)
			continue;
		path = strchr(++ctl, ':');
		if (!path)
			continue;
		*path++ = '\0';
		path[strcspn(path, "\n")] = '\0';
		if (!v1) {
			found = line[0] == '0' && line[1] == ':' && ctl[0] == '\0';
		} else {
			for (tok = strtok_r(ctl, ",", &save); tok && !found;
			     tok = strtok_r(NULL, ",", &save))
				found = strcmp(tok, "memory") == 0;
		}
		if (found && (size_t)snprintf(out, cap, "%s", path) >= cap)
			found = false;
	}
	fclose(f);
	return found;
}

/* mountinfo's octal escapes (\040 a space, \011, \012, \134) decoded in place. */
static void unescape(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

/* The length of @root when the group @grp lies at or below it, else -1. */
static long root_prefix(const char *root, const char *grp)
{
	size_t rl = strlen(root);

	while (rl && root[rl - 1] == '/')
		rl--; /* "/" (and "/a/") name the same groups as "" ("/a") */
	if (strncmp(grp, root, rl) || (grp[rl] != '/' && grp[rl] != '\0'))
		return -1;
	return (long)rl;
}

/* The mount of the v1 memory hierarchy (@v1) or of cgroup2 that holds the
 * group @grp: of those whose root (the group the mount shows) is @grp or
 * above it, the deepest, from mountinfo. Its mount point into @mnt and
 * @grp's path below its root into @rel. False when no mount holds @grp: a
 * mount of another subtree would give another group's limits. */
static bool hierarchy_mount(const char *prefix, bool v1, const char *grp, char *mnt,
			    char *rel, size_t cap)
{
	char line[2 * PATH_MAX + 256];
	long best = -1;
	FILE *f;

	if (!join(line, sizeof(line), prefix, "/proc/self/mountinfo"))
		return false;
	f = fopen(line, "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		char r[PATH_MAX], m[PATH_MAX], type[64], opts[512];
		char *dash = strstr(line, " - ");
		bool match = false;
		long rl;

		if (!dash || sscanf(line, "%*s %*s %*s %4095s %4095s", r, m) != 2 ||
		    sscanf(dash + 3, "%63s %*s %511s", type, opts) != 2)
			continue;
		if (v1) {
			char *tok, *save = NULL;

			if (strcmp(type, "cgroup"))
				continue;
			for (tok = strtok_r(opts, ",", &save); tok && !match;
			     tok = strtok_r(NULL, ",", &save))
				match = strcmp(tok, "memory") == 0;
		} else {
			match = strcmp(type, "cgroup2") == 0;
		}
		if (!match)
			continue;
		unescape(r);
		unescape(m);
		rl = root_prefix(r, grp);
		if (rl <= best || (size_t)snprintf(mnt, cap, "%s", m) >= cap ||
		    (size_t)snprintf(rel, cap, "%s", grp + rl) >= cap)
			continue;
		best = rl;
	}
	fclose(f);
	return best >= 0;
}

/* True when @rel has a ".." component: the walk would leave the mount. */
static bool has_dotdot(const char *rel)
{
	const char *c = rel;

	while ((c = strstr(c, "..")) != NULL) {
		if ((c == rel || c[-1] == '/') && (c[2] == '/' || c[2] == '\0'))
			return true;
		c += 2;
	}
	return false;
}

/* @dir's @file as a limit; false for "max", unreadable or none. */
static bool read_limit(const char *dir, const char *file, uint64_t *out)
{
	char path[2 * PATH_MAX], buf[64], *end;
	unsigned long long v;
	FILE *f;
	bool ok;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, file) >= sizeof(path))
		return false;
	f = fopen(path, "re");
	if (!f)
		return false;
	ok = fgets(buf, sizeof(buf), f) != NULL;
	fclose(f);
	if (!ok || buf[0] < '0' || buf[0] > '9')
		return false; /* "max", or nothing */
	v = strtoull(buf, &end, 10);
	if (*end != '\n' && *end != '\0')
		return false;
	*out = v;
	return v < NO_LIMIT;
}

/* The lowest limit from the hierarchy's mount down to this process's group. */
static int walk(const char *prefix, bool v1, uint64_t *bytes)
{
	char grp[PATH_MAX], mnt[PATH_MAX], rel[PATH_MAX], dir[3 * PATH_MAX + 2];
	const char *file = v1 ? "memory.limit_in_bytes" : "memory.max";
	size_t base, l;
	uint64_t v, low = UINT64_MAX;

	/* The group is named from the cgroup namespace's root; a mount shows
	 * the groups under its root (a container's mount, its own group). */
	if (!own_group(prefix, v1, grp, sizeof(grp)) ||
	    !hierarchy_mount(prefix, v1, grp, mnt, rel, sizeof(mnt)) || has_dotdot(rel))
		return 0;
	l = strlen(rel);
	while (l && rel[l - 1] == '/')
		rel[--l] = '\0';
	if ((size_t)snprintf(dir, sizeof(dir), "%s%s", prefix, mnt) >= sizeof(dir))
		return 0;
	base = strlen(dir);
	if (!join(dir + base, sizeof(dir) - base, "", rel))
		return 0;
	for (;;) {
		char *slash;

		if (read_limit(dir, file, &v) && v < low)
			low = v;
		slash = strrchr(dir, '/');
		if (!slash || (size_t)(slash - dir) < base || strlen(dir) <= base)
			break;
		*slash = '\0';
	}
	if (low == UINT64_MAX)
		return 0;
	*bytes = low;
	return 1;
}

int rp_app_cgroup_mem_limit_at(const char *prefix, uint64_t *bytes)
{
	/* The v1 memory controller first: a hybrid host mounts cgroup2 too,
	 * without the memory controller in it. */
	return walk(prefix, true, bytes) || walk(prefix, false, bytes);
}

int rp_app_cgroup_mem_limit(uint64_t *bytes)
{
	return rp_app_cgroup_mem_limit_at("", bytes);
}
