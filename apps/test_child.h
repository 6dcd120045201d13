/* SPDX-License-Identifier: MIT */
/*
 * Server processes for the integration tests that watch a server from the
 * outside (test_idle, test_stall, test_relay): start `ringplane ARGS...`
 * (in a network namespace if asked) with its stdout on a pipe and wait for
 * its "listening on HOST:PORT" line, take what it prints, stop it with
 * SIGTERM and get its exit status, and read its VmRSS and open descriptors
 * from /proc (test_proc.h), sum a counter over its stats lines; dial it;
 * make a root for `ringplane serve`. Include after test_util.h (bin,
 * now_ms). Every wait is bounded.
 */
#ifndef RP_APPS_TEST_CHILD_H
#define RP_APPS_TEST_CHILD_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_proc.h"

struct child {
	pid_t pid;
	int out; /* its stdout */
	int port;
	size_t len;
	char log[65536]; /* what it printed after the listening line */
};

/* When not 0, the children started next get this RLIMIT_NOFILE (soft and
 * hard, so the server's raise to the hard limit keeps it). */
static rlim_t child_nofile __attribute__((unused));

/* When set, the children started next run it before they execute (0 to go
 * on; else they exit 125): test_relay's urgent_moved installs a seccomp
 * filter there (tests/atmark_hold.h). */
static int (*child_pre_exec)(void) __attribute__((unused));

/* Start `[ip netns exec NS] ringplane ARGS...` (@ns NULL: no netns; at most
 * 34 ARGS), wait (10 s) for "listening on HOST:PORT"; 0, or -1 if it did
 * not say so in time. */
static int __attribute__((unused)) child_start_ns(struct child *c, const char *ns,
						  const char *const *args)
{
	const char *argv[40];
	int pfd[2], n = 0;
	pid_t parent;

	if (ns) {
		argv[n++] = "ip";
		argv[n++] = "netns";
		argv[n++] = "exec";
		argv[n++] = ns;
	}
	argv[n++] = bin;
	for (; *args && n < 39; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	c->len = 0;
	c->log[0] = 0;
	if (pipe2(pfd, O_CLOEXEC)) /* a later child must not hold this one's pipe */
		return -1;
	parent = getpid();
	c->pid = fork();
	if (c->pid == 0) {
		child_tie(parent);
		if (child_nofile) {
			struct rlimit rl = { child_nofile, child_nofile };

			if (setrlimit(RLIMIT_NOFILE, &rl))
				_exit(126);
		}
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		if (child_pre_exec && child_pre_exec())
			_exit(125);
		if (ns)
			execvp(argv[0], (char *const *)argv); /* ip through PATH */
		else
			execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	c->out = pfd[0];
	/* generous: on a loaded 2-vCPU host a server under ASan took 0.8-9.5 s
	 * to print its listening line (the veth rows start it through ip netns) */
	c->port = listening_port(c->out, 30000);
	return c->port < 0 ? -1 : 0;
}

static int __attribute__((unused)) child_start(struct child *c, const char *const *args)
{
	return child_start_ns(c, NULL, args);
}

/* Take what the child printed so far (up to @limit_ms waiting for @want). */
static void __attribute__((unused)) child_drain(struct child *c, const char *want,
						unsigned limit_ms)
{
	uint64_t end = now_ms() + limit_ms;

	while (now_ms() < end) {
		struct pollfd p = {.fd = c->out, .events = POLLIN};
		ssize_t r;

		if (want && strstr(c->log, want))
			return;
		if (poll(&p, 1, 20) <= 0)
			continue;
		if (c->len >= sizeof(c->log) - 1)
			return;
		r = read(c->out, c->log + c->len, sizeof(c->log) - 1 - c->len);
		if (r <= 0)
			return;
		c->len += (size_t)r;
		c->log[c->len] = 0;
	}
}

/* The exit status of @c, already signalled (-1: not within @limit_ms; then
 * killed); keeps its output. */
static int __attribute__((unused)) child_exit(struct child *c, unsigned limit_ms)
{
	uint64_t end = now_ms() + limit_ms;
	int st;

	for (;;) {
		struct pollfd p = {.fd = c->out, .events = POLLIN};

		if (poll(&p, 1, 20) > 0 && c->len < sizeof(c->log) - 1) {
			ssize_t r = read(c->out, c->log + c->len, sizeof(c->log) - 1 - c->len);

			if (r > 0)
				c->len += (size_t)r;
		}
		if (waitpid(c->pid, &st, WNOHANG) == c->pid)
			break;
		if (now_ms() > end) {
			kill(c->pid, SIGKILL);
			waitpid(c->pid, &st, 0);
			close(c->out);
			return -1;
		}
	}
	for (;;) {
		ssize_t r = c->len < sizeof(c->log) - 1
				    ? read(c->out, c->log + c->len, sizeof(c->log) - 1 - c->len)
				    : 0;

		if (r <= 0)
			break;
		c->len += (size_t)r;
	}
	c->log[c->len] = 0;
	close(c->out);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* SIGTERM, then the exit status (-1: not within @limit_ms); keeps its output. */
static int __attribute__((unused)) child_stop(struct child *c, unsigned limit_ms)
{
	kill(c->pid, SIGTERM);
	return child_exit(c, limit_ms);
}

/* Sum of "NAME VALUE" over the stats lines in the log. */
static unsigned long long __attribute__((unused)) stat_sum(const char *log, const char *name)
{
	unsigned long long sum = 0;
	size_t nl = strlen(name);

	for (const char *p = log; (p = strstr(p, name)); p += nl)
		if ((p == log || p[-1] == ' ') && p[nl] == ' ')
			sum += strtoull(p + nl + 1, NULL, 10);
	return sum;
}

/* A client of the server on 127.0.0.1:@port, TCP_NODELAY, connect() bounded
 * by 5 s, its receive buffer @rcv bytes when not 0 (set before the connect,
 * so the window it offers stays small and the server holds what it sends);
 * -1 if it failed. */
static int __attribute__((unused)) dial_rcvbuf(int port, int rcv)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {.tv_sec = 5};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	if (rcv)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)); /* bounds connect() */
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* dial_rcvbuf with the system's receive buffer. */
static int __attribute__((unused)) dial(int port)
{
	return dial_rcvbuf(port, 0);
}

/* A root for `ringplane serve`: @root (@size bytes) becomes a new 0755
 * directory /tmp/rp_NAME_XXXXXX holding small.txt (0644): @len bytes of
 * 'a'..'z' repeated, also left in @small. 0, or -1 (errno says why). */
static int __attribute__((unused)) make_root(char *root, size_t size, const char *name,
					     char *small, size_t len)
{
	char path[128];
	int fd;

	snprintf(root, size, "/tmp/rp_%s_XXXXXX", name);
	if (!mkdtemp(root) || chmod(root, 0755))
		return -1;
	for (size_t i = 0; i < len; i++)
		small[i] = (char)('a' + i % 26);
	snprintf(path, sizeof(path), "%s/small.txt", root);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	if (write(fd, small, len) != (ssize_t)len || fchmod(fd, 0644)) {
		close(fd);
		return -1;
	}
	return close(fd);
}

#endif
