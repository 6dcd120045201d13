/* SPDX-License-Identifier: MIT */
/*
 * Short-lived helper programs for the reporting (ringplane-tune check
 * --json, gnuplot): found on PATH or by path, run with a deadline in their
 * own process group so a hung one (and its children) can be killed, stdout
 * optionally captured. The echo suite's long-running servers have their own
 * runner (bench/suite_echo.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "cleanup.h"
#include "report_impl.h"

/* Captured output beyond this is cut short (ringplane-tune check --json cut
 * short fails the JSON check and is not embedded). */
#define CHILD_OUTPUT_MAX (4u << 20)

bool rp_find_executable(const char *name, char *out, size_t size)
{
	struct stat st;

	if (strchr(name, '/')) {
		if (stat(name, &st) || !S_ISREG(st.st_mode) || access(name, X_OK))
			return false;
		snprintf(out, size, "%s", name);
		return true;
	}
	const char *path = getenv("PATH");

	if (!path)
		return false;
	while (*path) {
		const char *colon = strchr(path, ':');
		size_t dlen = colon ? (size_t)(colon - path) : strlen(path);

		if (dlen > 0 && dlen + 1 + strlen(name) < size) {
			memcpy(out, path, dlen);
			out[dlen] = '/';
			strcpy(out + dlen + 1, name);
			if (!stat(out, &st) && S_ISREG(st.st_mode) && !access(out, X_OK))
				return true;
		}
		if (!colon)
			break;
		path = colon + 1;
	}
	return false;
}

int rp_child_run(char *const argv[], const char *cwd, char **out, size_t *out_len)
{
	int pfd[2] = { -1, -1 };
	size_t len = 0, cap = 0;
	char *buf = NULL;
	bool timed_out = false;
	int status, ret;
	pid_t pid;

	if (out && pipe2(pfd, O_CLOEXEC))
		return -errno;
	fflush(NULL); /* or buffered output would be written twice */
	/* own process group (a timeout kills its children too), registered:
	 * SIGINT/SIGTERM to us stop it */
	pid = rp_cleanup_fork();
	if (pid < 0) {
		ret = pid;
		goto out_close;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);

		if (devnull >= 0)
			dup2(devnull, STDIN_FILENO);
		if (out) {
			dup2(pfd[1], STDOUT_FILENO);
			if (devnull >= 0)
				dup2(devnull, STDERR_FILENO);
		}
		if (cwd && chdir(cwd))
			_exit(127);
		execv(argv[0], argv);
		_exit(127);
	}

	uint64_t deadline = rp_bench_now_ns() + RP_CHILD_TIMEOUT_S * 1000000000ull;

	if (out) {
		close(pfd[1]);
		pfd[1] = -1;
		for (;;) {
			uint64_t now = rp_bench_now_ns();

			if (now >= deadline) {
				timed_out = true;
				break;
			}
			struct pollfd p = { .fd = pfd[0], .events = POLLIN };
			int n = poll(&p, 1, (int)((deadline - now) / 1000000 + 1));

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				timed_out = n == 0;
				break;
			}
			if (cap - len < 4096) {
				char *nb;

				if (cap >= CHILD_OUTPUT_MAX)
					break; /* too big: embedded nowhere */
				nb = realloc(buf, cap ? 2 * cap : 16384);
				if (!nb)
					break;
				buf = nb;
				cap = cap ? 2 * cap : 16384;
			}
			ssize_t r = read(pfd[0], buf + len, cap - len - 1);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			len += (size_t)r;
		}
	}
	/* Reap, with the same deadline. */
	if (timed_out)
		kill(-pid, SIGKILL);
	for (;;) {
		pid_t w = waitpid(pid, &status, timed_out ? 0 : WNOHANG);

		if (w == pid)
			break;
		if (w < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			rp_cleanup_del_pgid(pid);
			goto out_free;
		}
		if (rp_bench_now_ns() >= deadline) {
			timed_out = true;
			kill(-pid, SIGKILL);
			continue;
		}
		nanosleep(&(struct timespec){ .tv_nsec = 10000000 }, NULL);
	}
	rp_cleanup_del_pgid(pid);
	if (timed_out) {
		kill(-pid, SIGKILL); /* whatever the group still holds */
		ret = -ETIMEDOUT;
	}
	else if (WIFEXITED(status))
		ret = WEXITSTATUS(status);
	else
		ret = -ECHILD;
	if (out && ret >= 0) {
		if (!buf)
			buf = calloc(1, 1);
		if (!buf) {
			ret = -ENOMEM;
			goto out_close;
		}
		buf[len] = '\0';
		*out = buf;
		*out_len = len;
		buf = NULL;
	}
out_free:
	free(buf);
out_close:
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	return ret;
}
