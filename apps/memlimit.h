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

#endif
