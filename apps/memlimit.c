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

/* This process's group in the v1 memory hierarchy (@v1 true) or in the v2
 * one: the path field of /proc/self/cgroup's line, into @out. */
static bool own_group(bool v1, char *out, size_t cap)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	char line[PATH_MAX + 64];
	bool found = false;

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

/* The mount of the v1 memory hierarchy (@v1) or of cgroup2: its mount
 * point and the group its root is, from /proc/self/mountinfo. */
static bool hierarchy_mount(bool v1, char *mnt, char *root, size_t cap)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[2 * PATH_MAX + 256];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char r[PATH_MAX], m[PATH_MAX], type[64], opts[512];
		char *dash = strstr(line, " - ");

		if (!dash || sscanf(line, "%*s %*s %*s %4095s %4095s", r, m) != 2 ||
		    sscanf(dash + 3, "%63s %*s %511s", type, opts) != 2)
			continue;
		if (v1) {
			char *tok, *save = NULL;

			if (strcmp(type, "cgroup"))
				continue;
			for (tok = strtok_r(opts, ",", &save); tok && !found;
			     tok = strtok_r(NULL, ",", &save))
				found = strcmp(tok, "memory") == 0;
		} else {
			found = strcmp(type, "cgroup2") == 0;
		}
		if (found && ((size_t)snprintf(mnt, cap, "%s", m) >= cap ||
			      (size_t)snprintf(root, cap, "%s", r) >= cap))
			found = false;
	}
	fclose(f);
	return found;
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

/* The lowest limit from the hierarchy's @mnt down to this process's group. */
static int walk(bool v1, uint64_t *bytes)
{
	char grp[PATH_MAX], mnt[PATH_MAX], root[PATH_MAX], dir[2 * PATH_MAX + 2];
	const char *file = v1 ? "memory.limit_in_bytes" : "memory.max";
	const char *rel;
	size_t base, rl;
	uint64_t v, low = UINT64_MAX;

	if (!own_group(v1, grp, sizeof(grp)) || !hierarchy_mount(v1, mnt, root, sizeof(mnt)))
		return 0;
	/* The group is named from the cgroup namespace's root; a mount of a
	 * group below it (a container's) holds what lies under its root. */
	rel = grp;
	rl = strlen(root);
	if (strcmp(root, "/") && strncmp(grp, root, rl) == 0 && (grp[rl] == '/' || !grp[rl]))
		rel = grp + rl;
	base = strlen(mnt);
	if ((size_t)snprintf(dir, sizeof(dir), "%s%s", mnt, rel) >= sizeof(dir))
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

int rp_app_cgroup_mem_limit(uint64_t *bytes)
{
	/* The v1 memory controller first: a hybrid host mounts cgroup2 too,
	 * without the memory controller in it. */
	return walk(true, bytes) || walk(false, bytes);
}
