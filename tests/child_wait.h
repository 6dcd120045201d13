/* SPDX-License-Identifier: MIT */
/*
 * A bounded wait for a forked child, shared by the test programs that
 * run a case in a child of its own (a re-executed one, a namespace): a
 * hung child is killed and reported, never waited for past the test's
 * time. Their users are cmocka tests: child_expect_ok() reports through it.
 */
#ifndef RP_TESTS_CHILD_WAIT_H
#define RP_TESTS_CHILD_WAIT_H

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* Wait for @pid at most @secs seconds (WNOHANG every 10 ms). Returns true
 * with its status in *@status; false when it was still running (then
 * killed with SIGKILL and reaped) or waitpid failed (then *@status is -1
 * and nothing is killed: the pid may no longer be ours). */
static inline bool child_wait(pid_t pid, double secs, int *status)
{
	struct timespec t0, t;
	pid_t w;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		w = waitpid(pid, status, WNOHANG);
		if (w < 0)
			*status = -1;
		if (w != 0)
			return w == pid;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 > secs)
			break;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	(void)waitpid(pid, status, 0);
	return false;
}

/* Wait for @pid as child_wait does and judge it: still running fails the
 * test ("@what still running after N s, killed"), an exit of 77 skips it
 * (the child printed why), any other exit but 0 fails it. */
static inline void child_expect_ok(pid_t pid, double secs, const char *what)
{
	int status = 0;

	if (!child_wait(pid, secs, &status)) {
		if (status == -1)
			fail_msg("%s: waitpid failed, no exit status", what);
		fail_msg("%s still running after %.0f s, killed", what, secs);
	}
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		skip();
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* Run this test program again in a child, as `SELF @arg1 [@arg2]` (the
 * binary /proc/self/exe names; @arg2 may be NULL), and judge it as
 * child_expect_ok does. Buffered output is flushed first, so the child
 * does not print it again. Skips when /proc/self/exe is unreadable. */
static inline void child_run_self(const char *arg1, const char *arg2, double secs,
				  const char *what)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	pid_t pid;

	if (n <= 0) {
		print_message("# %s SKIP: /proc/self/exe unreadable\n", what);
		skip();
	}
	self[n] = 0;
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* the link itself, not its text: a binary rebuilt meanwhile
		 * reads "... (deleted)" and still runs from here */
		execl("/proc/self/exe", self, arg1, arg2, (char *)NULL);
		_exit(3);
	}
	child_expect_ok(pid, secs, what);
}

#endif /* RP_TESTS_CHILD_WAIT_H */
