/* SPDX-License-Identifier: MIT */
/*
 * What the tests that watch a server from the outside read of it: the port
 * of its "listening on" line, and in /proc its VmRSS, open descriptors and
 * CPU time.
 * Shared by test_child.h (test_idle, test_stall, test_relay), test_util.h
 * and tests/soak; needs nothing else. It holds the tests' one clock,
 * now_ms(), as every one of those programs includes it.
 */
#ifndef RP_APPS_TEST_PROC_H
#define RP_APPS_TEST_PROC_H

#include <dirent.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* In a child just forked from @parent (its getpid() before the fork):
 * die with the test program (SIGKILL when it exits or is killed, by
 * meson's timeout or a `timeout` around it), so a server a test started
 * never outlives it holding its port, its descriptors and its CPU. Call
 * from a fork made on the program's main thread (the signal follows the
 * thread that forked). */
static inline void child_tie(pid_t parent)
{
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent) /* it died before the prctl */
		_exit(126);
}

/* CLOCK_MONOTONIC in ms. */
static inline uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The first line @fd (a server's stdout) brings within @limit_ms must be
 * "listening on HOST:PORT": PORT, or -1 (another line, EOF, or none in
 * time). Read a byte at a time: what follows the line stays in the pipe. */
static int __attribute__((unused)) listening_port(int fd, unsigned limit_ms)
{
	char line[256];
	size_t len = 0;
	uint64_t end = now_ms() + limit_ms;

	while (now_ms() < end && len < sizeof(line) - 1) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		char *colon;

		if (poll(&p, 1, 100) <= 0)
			continue;
		if (read(fd, line + len, 1) != 1)
			return -1;
		if (line[len] != '\n') {
			len++;
			continue;
		}
		line[len] = 0;
		colon = strrchr(line, ':');
		if (strncmp(line, "listening on ", 13) || !colon)
			return -1;
		return atoi(colon + 1);
	}
	return -1;
}

/* VmRSS of @pid in kB, or -1. */
static long __attribute__((unused)) rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			kb = strtol(line + 6, NULL, 10);
	fclose(f);
	return kb;
}

/* Open descriptors of @pid whose /proc/PID/fd link starts with @kind
 * ("pipe:", "socket:"), or of every kind for NULL, and numbered below
 * @below (0: any number); -1 when unknown. */
static long __attribute__((unused)) fd_count_where(pid_t pid, const char *kind, unsigned long long below)
{
	char path[64], link[96], target[64];
	size_t klen = kind ? strlen(kind) : 0;
	struct dirent *d;
	long n = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while ((d = readdir(dir)) && n < 1000000) {
		ssize_t len;

		if (d->d_name[0] == '.')
			continue;
		if (below && strtoull(d->d_name, NULL, 10) >= below)
			continue;
		if (kind) {
			snprintf(link, sizeof(link), "%s/%.20s", path, d->d_name);
			len = readlink(link, target, sizeof(target) - 1);
			if (len < (ssize_t)klen || memcmp(target, kind, klen))
				continue;
		}
		n++;
	}
	closedir(dir);
	return n;
}

/* Open descriptors of @pid of @kind (fd_count_where), or -1. */
static long __attribute__((unused)) fd_count_kind(pid_t pid, const char *kind)
{
	return fd_count_where(pid, kind, 0);
}

/* CPU time of @pid so far (utime + stime of /proc/PID/stat) in ms, or -1. */
static long long __attribute__((unused)) cpu_ms(pid_t pid)
{
	char path[64], line[1024], *p;
	unsigned long long ut = 0, st = 0;
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	p = fgets(line, sizeof(line), f) ? strrchr(line, ')') : NULL;
	fclose(f);
	/* after ") ": state, then fields 4..13, then utime (14) and stime (15) */
	if (!p || hz <= 0 ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (long long)((ut + st) * 1000 / (unsigned long long)hz);
}

/* Open descriptors of @pid, or -1. */
static long __attribute__((unused)) fd_count(pid_t pid)
{
	return fd_count_kind(pid, NULL);
}

#endif
