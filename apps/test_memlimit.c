/* SPDX-License-Identifier: MIT */
/*
 * The cgroup memory limit the servers check their pools against
 * (apps/memlimit.c), read from fake /proc/self/cgroup, mountinfo and limit
 * files under a temporary directory: cgroup v2 at the namespace root and
 * below it, a container's mount of its own group (v2 root /a, v1
 * /docker/x), v1 memory co-mounted with cpu under a lower parent, a
 * missing leaf file, "max" and v1's 2^63 as none, a hybrid host (v1
 * without memory, cgroup2 with it), the deepest of several mounts, a
 * mount of another subtree (none: its limits are not this group's), a
 * group path through ".." (none) and mountinfo's \040 escapes.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "memlimit.h"

#define MB(x) ((uint64_t)(x) << 20)

static char top[PATH_MAX];
static unsigned seq;
static char dir[PATH_MAX]; /* this case's fake root */

/* mkdir -p of @path's parent, then @path with @text */
static void put(const char *path, const char *text)
{
	char full[2 * PATH_MAX], *p;
	FILE *f;

	assert_true((size_t)snprintf(full, sizeof(full), "%s%s", dir, path) < sizeof(full));
	for (p = full + strlen(dir) + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		assert_true(mkdir(full, 0755) == 0 || errno == EEXIST);
		*p = '/';
	}
	f = fopen(full, "w");
	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

static int fresh(void **state)
{
	(void)state;
	assert_true((size_t)snprintf(dir, sizeof(dir), "%s/%u", top, seq++) < sizeof(dir));
	assert_int_equal(mkdir(dir, 0755), 0);
	return 0;
}

#define V2_MOUNT(root, mnt) \
	"30 25 0:26 " root " " mnt " rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
#define V1_MOUNT(root, mnt, ctl) \
	"40 30 0:35 " root " " mnt " rw,nosuid - cgroup cgroup rw," ctl "\n"
#define OTHER "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"

static uint64_t limit_or_0(void)
{
	uint64_t v = 0;

	return rp_app_cgroup_mem_limit_at(dir, &v) == 1 ? v : 0;
}

static void v2_root_and_below(void **state)
{
	(void)state;
	put("/proc/self/cgroup", "0::/a/b\n");
	put("/proc/self/mountinfo", OTHER V2_MOUNT("/", "/sys/fs/cgroup"));
	put("/sys/fs/cgroup/a/memory.max", "104857600\n");
	put("/sys/fs/cgroup/a/b/memory.max", "max\n");
	assert_int_equal(limit_or_0(), MB(100)); /* the parent's, the leaf is max */
}

static void v2_namespace_root_max(void **state)
{
	uint64_t v = 7;

	(void)state;
	put("/proc/self/cgroup", "0::/\n");
	put("/proc/self/mountinfo", V2_MOUNT("/", "/sys/fs/cgroup"));
	put("/sys/fs/cgroup/memory.max", "max\n");
	assert_int_equal(rp_app_cgroup_mem_limit_at(dir, &v), 0);
}

static void v2_container_mount_root(void **state)
{
	(void)state;
	/* the mount shows group /a at its mount point, /a/b below it */
	put("/proc/self/cgroup", "0::/a/b\n");
	put("/proc/self/mountinfo", V2_MOUNT("/a", "/sys/fs/cgroup"));
	put("/sys/fs/cgroup/memory.max", "max\n");
	put("/sys/fs/cgroup/b/memory.max", "67108864\n");
	assert_int_equal(limit_or_0(), MB(64));
}

static void v1_docker(void **state)
{
	(void)state;
	put("/proc/self/cgroup", "5:cpu,cpuacct:/docker/x\n4:memory:/docker/x\n");
	put("/proc/self/mountinfo",
	    OTHER V1_MOUNT("/docker/x", "/sys/fs/cgroup/memory", "memory")
		    V1_MOUNT("/docker/x", "/sys/fs/cgroup/cpu,cpuacct", "cpu,cpuacct"));
	put("/sys/fs/cgroup/memory/memory.limit_in_bytes", "268435456\n");
	assert_int_equal(limit_or_0(), MB(256));
}

static void v1_comounted_lower_parent(void **state)
{
	(void)state;
	put("/proc/self/cgroup", "3:cpu,memory:/p/c\n");
	put("/proc/self/mountinfo", V1_MOUNT("/", "/sys/fs/cgroup/cpu,memory", "cpu,memory"));
	put("/sys/fs/cgroup/cpu,memory/memory.limit_in_bytes", "9223372036854771712\n");
	put("/sys/fs/cgroup/cpu,memory/p/memory.limit_in_bytes", "33554432\n");
	put("/sys/fs/cgroup/cpu,memory/p/c/memory.limit_in_bytes", "134217728\n");
	assert_int_equal(limit_or_0(), MB(32));
}

static void v1_missing_leaf_and_no_limit(void **state)
{
	(void)state;
	put("/proc/self/cgroup", "4:memory:/a/b\n");
	put("/proc/self/mountinfo", V1_MOUNT("/", "/sys/fs/cgroup/memory", "memory"));
	put("/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
	put("/sys/fs/cgroup/memory/a/memory.limit_in_bytes", "52428800\n");
	put("/sys/fs/cgroup/memory/a/b/other", "\n"); /* the leaf has no limit file */
	assert_int_equal(limit_or_0(), MB(50));
	put("/sys/fs/cgroup/memory/a/memory.limit_in_bytes", "9223372036854771712\n");
	assert_int_equal(limit_or_0(), 0); /* 2^63 rounded to pages: none */
}

static void hybrid_falls_back_to_v2(void **state)
{
	(void)state;
	put("/proc/self/cgroup", "2:cpu,cpuacct:/s\n1:name=systemd:/s\n0::/s\n");
	put("/proc/self/mountinfo",
	    V1_MOUNT("/", "/sys/fs/cgroup/cpu,cpuacct", "cpu,cpuacct")
		    V2_MOUNT("/", "/sys/fs/cgroup/unified"));
	put("/sys/fs/cgroup/unified/s/memory.max", "41943040\n");
	assert_int_equal(limit_or_0(), MB(40));
}

static void deepest_mount_that_holds_the_group(void **state)
{
	(void)state;
	/* a mount of another subtree first, then the namespace root's, then
	 * /a's: /a's is used (the files differ only to tell them apart) */
	put("/proc/self/cgroup", "0::/a/b\n");
	put("/proc/self/mountinfo",
	    V2_MOUNT("/other", "/mnt/o") V2_MOUNT("/", "/sys/fs/cgroup") V2_MOUNT("/a", "/mnt/a"));
	put("/mnt/o/b/memory.max", "1048576\n");
	put("/mnt/o/memory.max", "1048576\n");
	put("/sys/fs/cgroup/a/b/memory.max", "2097152\n");
	put("/mnt/a/b/memory.max", "3145728\n");
	assert_int_equal(limit_or_0(), MB(3));
}

static void another_subtree_only_is_none(void **state)
{
	uint64_t v = 7;

	(void)state;
	/* the first version took this mount and read /other's b, a group not
	 * this process's */
	put("/proc/self/cgroup", "0::/a/b\n");
	put("/proc/self/mountinfo", V2_MOUNT("/other", "/sys/fs/cgroup"));
	put("/sys/fs/cgroup/memory.max", "1048576\n");
	put("/sys/fs/cgroup/a/b/memory.max", "1048576\n");
	assert_int_equal(rp_app_cgroup_mem_limit_at(dir, &v), 0);
	/* a root that is a prefix of the name but not a group above it */
	put("/proc/self/cgroup", "0::/ab\n");
	put("/proc/self/mountinfo", V2_MOUNT("/a", "/sys/fs/cgroup"));
	assert_int_equal(rp_app_cgroup_mem_limit_at(dir, &v), 0);
}

static void dotdot_is_none(void **state)
{
	uint64_t v = 7;

	(void)state;
	/* a group outside the cgroup namespace: the walk would go through ".."
	 * to the mount's parent (the first version returned its limit) */
	put("/proc/self/cgroup", "0::/../z\n");
	put("/proc/self/mountinfo", V2_MOUNT("/", "/sys/fs/cgroup"));
	put("/sys/fs/cgroup/memory.max", "1048576\n");
	put("/sys/fs/memory.max", "1048576\n");
	assert_int_equal(rp_app_cgroup_mem_limit_at(dir, &v), 0);
	put("/proc/self/cgroup", "4:memory:/a/..\n");
	put("/proc/self/mountinfo", V1_MOUNT("/", "/sys/fs/cgroup/memory", "memory"));
	put("/sys/fs/cgroup/memory/memory.limit_in_bytes", "1048576\n");
	assert_int_equal(rp_app_cgroup_mem_limit_at(dir, &v), 0);
	/* a name with dots that is not ".." is a group like any */
	put("/proc/self/cgroup", "4:memory:/a..b/..c\n");
	put("/sys/fs/cgroup/memory/a..b/..c/memory.limit_in_bytes", "2097152\n");
	assert_int_equal(limit_or_0(), MB(1));
}

static void escaped_mount_point(void **state)
{
	(void)state;
	/* the first version opened "my\040cg" literally: no limit */
	put("/proc/self/cgroup", "0::/s\n");
	put("/proc/self/mountinfo", V2_MOUNT("/", "/sys/fs/my\\040cg\\134x"));
	put("/sys/fs/my cg\\x/s/memory.max", "25165824\n");
	assert_int_equal(limit_or_0(), MB(24));
}

static void nothing_mounted(void **state)
{
	uint64_t v = 7;

	(void)state;
	put("/proc/self/cgroup", "0::/s\n");
	put("/proc/self/mountinfo", OTHER);
	assert_int_equal(rp_app_cgroup_mem_limit_at(dir, &v), 0);
	assert_int_equal(v, 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(v2_root_and_below, fresh),
		cmocka_unit_test_setup(v2_namespace_root_max, fresh),
		cmocka_unit_test_setup(v2_container_mount_root, fresh),
		cmocka_unit_test_setup(v1_docker, fresh),
		cmocka_unit_test_setup(v1_comounted_lower_parent, fresh),
		cmocka_unit_test_setup(v1_missing_leaf_and_no_limit, fresh),
		cmocka_unit_test_setup(hybrid_falls_back_to_v2, fresh),
		cmocka_unit_test_setup(deepest_mount_that_holds_the_group, fresh),
		cmocka_unit_test_setup(another_subtree_only_is_none, fresh),
		cmocka_unit_test_setup(dotdot_is_none, fresh),
		cmocka_unit_test_setup(escaped_mount_point, fresh),
		cmocka_unit_test_setup(nothing_mounted, fresh),
	};
	char cmd[PATH_MAX + 16];
	int rc;

	snprintf(top, sizeof(top), "%s/rp-memlimit-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(top))
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	if (system(cmd) != 0)
		rc = rc ? rc : 1;
	return rc;
}
