/* SPDX-License-Identifier: MIT */
/*
 * The memory limit of this process's own cgroup, read once at a server's
 * start so that a pool that cannot fit is refused with a line and exit 1
 * instead of the OOM kill its population would get (cgroup v1 and v2).
 */
#ifndef RP_APPS_MEMLIMIT_H
#define RP_APPS_MEMLIMIT_H

#include <stdint.h>

/*
 * The lowest memory limit on the path of this process's memory cgroup, up
 * to the hierarchy's mount (v1: memory.limit_in_bytes of the memory
 * controller's group; v2: memory.max), into *@bytes. Returns 1 when there
 * is one, 0 when there is none ("max", a value of 2^60 or more, no cgroup
 * file system mounted, nothing readable): no limit to check against.
 */
int rp_app_cgroup_mem_limit(uint64_t *bytes);

/*
 * The same with every file it reads under the directory @prefix ("" for
 * the real ones): @prefix/proc/self/cgroup, @prefix/proc/self/mountinfo
 * and the limit files under @prefix followed by the mount point (the
 * unit test's fake /proc and /sys). The mount used is the deepest of the
 * hierarchy's mounts whose root holds the group; none, or a group path
 * below it with a ".." component, is 0: a limit that may not apply is
 * not read. Mountinfo's octal escapes (\040) are decoded.
 */
int rp_app_cgroup_mem_limit_at(const char *prefix, uint64_t *bytes);

#endif
