/* SPDX-License-Identifier: MIT */
/*
 * A veth pair for a test, never on the host. Called in a forked child of
 * the test: netns_enter() moves it into a network namespace of its own
 * (unshare(CLONE_NEWNET), lo up), so the host's links, addresses and
 * routes are never touched and parallel runs cannot collide on fixed
 * names; netns_veth_make() makes a veth pair there whose far end is in a
 * further namespace, held by a grandchild (lo up there too), both ends
 * addressed and up; netns_far_socket() opens a socket in that far
 * namespace; netns_veth_end() kills the grandchild, and its namespace
 * takes the far end, and with it the pair, away. What cannot be made is a
 * skip, printed as "# TAG: SKIP: why" (stdout flushed: a child may leave
 * by _exit) and returned as 77.
 */
#ifndef RP_TESTS_NETNS_TEST_H
#define RP_TESTS_NETNS_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

struct netns_veth {
	pid_t far;	    /* the grandchild holding the far namespace */
	int to[2], from[2]; /* pipes to and from it */
};

/* Into a network namespace of the caller's own, lo up: 0, or 77 (printed
 * why). */
static inline int netns_enter(const char *tag)
{
	if (unshare(CLONE_NEWNET)) {
		printf("# %s: SKIP: unshare(CLONE_NEWNET): %s\n", tag, strerror(errno));
		fflush(stdout);
		return 77;
	}
	if (system("ip link set lo up") != 0) {
		printf("# %s: SKIP: no ip(8) to set up a namespace\n", tag);
		fflush(stdout);
		return 77;
	}
	return 0;
}

/* The grandchild: unshares, says 'r'; told 'c', runs @cmd (answers 'y'
 * or 'n'); then waits to be killed: by its parent, by its parent's death,
 * or by its alarm after @secs. */
static inline void netns_far_end(int rd, int wr, pid_t parent, const char *cmd, unsigned secs)
{
	char c;

	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	alarm(secs);
	if (unshare(CLONE_NEWNET) || write(wr, "r", 1) != 1)
		_exit(1);
	if (read(rd, &c, 1) != 1 || c != 'c')
		_exit(1);
	c = system(cmd) == 0 ? 'y' : 'n';
	if (write(wr, &c, 1) != 1)
		_exit(1);
	for (;;)
		pause();
}

static inline void netns_veth_end(struct netns_veth *v)
{
	if (v->far > 0) {
		kill(v->far, SIGKILL);
		(void)waitpid(v->far, NULL, 0);
		v->far = -1;
	}
	for (unsigned i = 0; i < 2; i++) {
		if (v->to[i] >= 0)
			close(v->to[i]);
		if (v->from[i] >= 0)
			close(v->from[i]);
		v->to[i] = v->from[i] = -1;
	}
}

/* In the namespace netns_enter() made: the veth pair @near (here, @near_cidr,
 * up) and @far (in the grandchild's namespace, @far_cidr, up; lo up). 0, or
 * 77 (printed why; nothing left). The grandchild lives at most @secs. */
static inline int netns_veth_make(struct netns_veth *v, const char *tag, const char *near,
				  const char *near_cidr, const char *far, const char *far_cidr,
				  unsigned secs)
{
	char far_cmd[160], cmd[160], c;
	pid_t self = getpid();

	*v = (struct netns_veth){.far = -1, .to = {-1, -1}, .from = {-1, -1}};
	snprintf(far_cmd, sizeof(far_cmd),
		 "ip link set lo up && ip addr add %s dev %s && ip link set %s up", far_cidr, far,
		 far);
	if (pipe(v->to) || pipe(v->from)) {
		printf("# %s: SKIP: pipe: %s\n", tag, strerror(errno));
		goto skip;
	}
	fflush(stdout);
	fflush(stderr);
	v->far = fork();
	if (v->far == 0)
		netns_far_end(v->to[0], v->from[1], self, far_cmd, secs);
	if (v->far < 0 || read(v->from[0], &c, 1) != 1 || c != 'r') {
		printf("# %s: SKIP: no second namespace for the far end\n", tag);
		goto skip;
	}
	snprintf(cmd, sizeof(cmd), "ip link add %s type veth peer name %s netns %d", near, far,
		 (int)v->far);
	if (system(cmd) != 0 || write(v->to[1], "c", 1) != 1 || read(v->from[0], &c, 1) != 1 ||
	    c != 'y') {
		printf("# %s: SKIP: cannot make a veth pair into a namespace here\n", tag);
		goto skip;
	}
	snprintf(cmd, sizeof(cmd), "ip link set %s up && ip addr add %s dev %s", near, near_cidr,
		 near);
	if (system(cmd) != 0) {
		printf("# %s: SKIP: cannot address the veth here\n", tag);
		goto skip;
	}
	return 0;
skip:
	fflush(stdout);
	netns_veth_end(v);
	return 77;
}

/* A socket(@domain, @type) in the far namespace (setns there and back, on
 * the calling thread): the fd, or -1. */
static inline int netns_far_socket(const struct netns_veth *v, int domain, int type)
{
	char path[64];
	int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC), ns, s = -1;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)v->far);
	ns = open(path, O_RDONLY | O_CLOEXEC);
	if (self >= 0 && ns >= 0 && setns(ns, CLONE_NEWNET) == 0) {
		s = socket(domain, type, 0);
		if (setns(self, CLONE_NEWNET)) {
			fprintf(stderr, "netns: cannot return to the test's namespace\n");
			_exit(1);
		}
	}
	if (self >= 0)
		close(self);
	if (ns >= 0)
		close(ns);
	return s;
}

#endif /* RP_TESTS_NETNS_TEST_H */
