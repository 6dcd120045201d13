/* SPDX-License-Identifier: MIT */
/*
 * engine: set-up refusals that must reach the user as the real cause.
 * io_uring forbidden by a seccomp filter (as a container profile does, with
 * EPERM or ENOSYS) keeps its errno and rp_engine_error() names the fix,
 * and so does ENOMEM (what to check: the memory cgroup, RLIMIT_MEMLOCK,
 * ring entries), whole, from a shard's ring at the start too;
 * configurations the kernel or the pool registry cannot hold are -EINVAL
 * with a message, before any thread starts.
 */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <ringplane/pool.h>

#include "engine_test.h"

/* Make io_uring_setup fail with @err in this process (and the threads
 * it starts after): a seccomp filter. 0, or -1 when filters are not
 * permitted here. */
static int forbid_uring_setup(int err)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0))
		return -1;
	return 0;
}

/* In a child: forbid io_uring_setup with @err, then try to create a
 * runtime. Exit 0 when the result is -@err and the message names @want;
 * 77 when the filter cannot be installed. */
static int child_forbidden(int err, const char *want)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt = NULL;
	int ret;

	if (forbid_uring_setup(err))
		return 77;
	ret = rp_runtime_create(&cfg, &rt);
	fprintf(stderr, "# forbidden with %s: rp_runtime_create = %d, \"%s\"\n", strerror(err), ret,
		rp_engine_error());
	if (ret != -err || rt)
		return 1;
	return strstr(rp_engine_error(), want) ? 0 : 2;
}

/* In a child: create a runtime (its probe ring passes), then forbid
 * io_uring_setup with ENOMEM, so a shard's own ring fails at the start.
 * Exit 0 when the start is -ENOMEM and the message, whole, names the
 * shard and @want; 77 when the filter cannot be installed. */
static int child_shard_nomem(int err, const char *want)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt = NULL;
	int ret;

	if (rp_runtime_create(&cfg, &rt))
		return 3;
	if (forbid_uring_setup(err)) {
		rp_runtime_destroy(rt);
		return 77;
	}
	ret = rp_runtime_start(rt);
	fprintf(stderr, "# a shard's ring forbidden with %s: rp_runtime_start = %d, \"%s\"\n",
		strerror(err), ret, rp_engine_error());
	rp_runtime_destroy(rt);
	if (ret != -err)
		return 1;
	if (!strstr(rp_engine_error(), "shard 0"))
		return 2;
	return strstr(rp_engine_error(), want) ? 0 : 4;
}

static void run_forbidden_in(int (*child)(int, const char *), int err, const char *want)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child(err, want));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		skip(); /* seccomp filters not permitted here */
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void run_forbidden(int err, const char *want)
{
	run_forbidden_in(child_forbidden, err, want);
}

static void test_seccomp_eperm_keeps_errno_and_names_fix(void **state)
{
	char v[8] = "";
	FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");

	(void)state;
	if (f) {
		if (!fgets(v, sizeof(v), f))
			v[0] = 0;
		fclose(f);
	}
	/* with the sysctl at 0, EPERM can only come from a filter or LSM */
	run_forbidden(EPERM, v[0] == '1' || v[0] == '2' ? "io_uring_disabled" : "seccomp");
}

static void test_seccomp_enosys_keeps_errno_and_names_fix(void **state)
{
	(void)state;
	run_forbidden(ENOSYS, "seccomp");
}

/* ENOMEM (the rings' memory: the cgroup since 5.12, RLIMIT_MEMLOCK
 * before) says what to check instead of a bare strerror. */
static void test_seccomp_enomem_names_what_to_check(void **state)
{
	(void)state;
	run_forbidden(ENOMEM, "RLIMIT_MEMLOCK, ulimit -l, here ");
	run_forbidden(ENOMEM, "memory cgroup");
}

/* The same ENOMEM from a shard's own ring at the start: the message,
 * behind its "shard 0 (cpu N): " prefix, keeps its end, which names the
 * cause on current kernels. It was cut at 200 bytes (then 256) before:
 * "...or use fewer shards or ring e", the cgroup lost. */
static void test_shard_enomem_message_whole(void **state)
{
	(void)state;
	run_forbidden_in(child_shard_nomem, ENOMEM, "memory cgroup");
	run_forbidden_in(child_shard_nomem, ENOMEM, "ring entries");
}

static void test_bounds_refused_with_a_message(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt = NULL;

	(void)state;
	/* the CQ gets 4x the SQ: 16384 is the largest the kernel takes */
	cfg.ring_entries = 16385;
	assert_int_equal(rp_runtime_create(&cfg, &rt), -EINVAL);
	assert_null(rt);
	assert_non_null(strstr(rp_engine_error(), "ring_entries"));
	cfg.ring_entries = 16384;
	assert_int_equal(rp_runtime_create(&cfg, &rt), 0);
	assert_string_equal(rp_engine_error(), "");
	rp_runtime_destroy(rt);
	rt = NULL;

	/* one pool per shard: no more shards than the registry holds */
	cfg = base_cfg(RP_POOL_MAX_POOLS_ + 1);
	assert_int_equal(rp_runtime_create(&cfg, &rt), -EINVAL);
	assert_null(rt);
	assert_non_null(strstr(rp_engine_error(), "registry"));

	cfg = base_cfg(1);
	cfg.bufs = 3;
	assert_int_equal(rp_runtime_create(&cfg, &rt), -EINVAL);
	assert_non_null(strstr(rp_engine_error(), "bufs"));
}

/* A shard that fails to start says which and why. */
static void test_start_failure_names_the_shard(void **state)
{
	struct rp_runtime_config cfg = base_cfg(2);
	struct rp_runtime *rt = NULL;
	int ret;

	(void)state;
	/* more provided buffers than the pool has room for */
	cfg.pool_bytes = (size_t)4 << 20;
	cfg.bufs = 1024;
	cfg.buf_size = 64 * 1024;
	assert_int_equal(rp_runtime_create(&cfg, &rt), 0);
	ret = rp_runtime_start(rt);
	print_message("# start: %d \"%s\"\n", ret, rp_engine_error());
	assert_int_equal(ret, -ENOMEM);
	assert_non_null(strstr(rp_engine_error(), "shard "));
	assert_non_null(strstr(rp_engine_error(), "provided buffers"));
	rp_runtime_destroy(rt);
}

int main(void)
{
	const struct CMUnitTest all[] = {
		cmocka_unit_test(test_seccomp_eperm_keeps_errno_and_names_fix),
		cmocka_unit_test(test_seccomp_enosys_keeps_errno_and_names_fix),
		cmocka_unit_test(test_seccomp_enomem_names_what_to_check),
		cmocka_unit_test(test_shard_enomem_message_whole),
		cmocka_unit_test(test_bounds_refused_with_a_message),
		cmocka_unit_test(test_start_failure_names_the_shard),
	};

	watchdog("engine-setup", 60);
	return cmocka_run_group_tests_name("engine-setup", all, NULL, NULL);
}
