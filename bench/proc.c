/* SPDX-License-Identifier: MIT */
/* Child processes for the peer suites (proc.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "cleanup.h"
#include "proc.h"

/* ---- child processes ---- */

int64_t ms_left(uint64_t deadline_ns)
{
	uint64_t now = rp_bench_now_ns();

	return now >= deadline_ns ? 0 : (int64_t)((deadline_ns - now) / 1000000u) + 1;
}

void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Wait until @fd is readable (or at EOF or an error) or @deadline: 1, or 0
 * at the deadline, or -errno; EINTR is retried with the time left. */
int poll_in(int fd, uint64_t deadline_ns)
{
	for (;;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		int64_t left = ms_left(deadline_ns);
		int ret;

		if (!left)
			return 0;
		ret = poll(&pf, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (ret >= 0)
			return ret;
		if (errno != EINTR)
			return -errno;
	}
}

/* The ringplane binary the suites run: $RINGPLANE_BIN if set, else
 * ../apps/ringplane next to this binary. 0 with its path in @path, or
 * -ENOENT / -ENAMETOOLONG. */
int rp_bench_find_ringplane(char *path, size_t size)
{
	const char *env = getenv("RINGPLANE_BIN");
	char self[PATH_MAX];
	ssize_t n;

	if (env && *env) {
		snprintf(path, size, "%s", env);
		return access(path, X_OK) ? -ENOENT : 0;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return -ENOENT;
	self[n] = '\0';
	if (strrchr(self, '/'))
		*strrchr(self, '/') = '\0';
	if ((size_t)snprintf(path, size, "%s/../apps/ringplane", self) >= size)
		return -ENAMETOOLONG;
	return access(path, X_OK) ? -ENOENT : 0;
}

/* Start argv[0] (a path) in its own process group on @cpu (-1: any CPU we
 * may use), stdin /dev/null, stdout+stderr on a pipe we read; it gets
 * SIGTERM if the bench dies (rp_cleanup_fork). */
int proc_spawn(struct proc *p, char *const argv[], int cpu)
{
	return proc_spawn_on(p, argv, cpu >= 0 ? &cpu : NULL, cpu >= 0 ? 1 : 0);
}

int proc_spawn_placed(struct proc *p, char *const argv[], unsigned n, const int *cpus, int cpu)
{
	return n ? proc_spawn_on(p, argv, cpus, n) : proc_spawn(p, argv, cpu);
}

int proc_spawn_on(struct proc *p, char *const argv[], const int *cpus, unsigned ncpus)
{
	int pfd[2];

	memset(p, 0, sizeof(*p));
	p->out = -1;
	p->pid = -1;
	if (pipe2(pfd, O_CLOEXEC))
		return -errno;
	fflush(NULL);
	p->pid = rp_cleanup_fork(); /* registered: SIGINT/SIGTERM to us stop it */
	if (p->pid < 0) {
		int err = p->pid;

		p->pid = -1;
		close(pfd[0]);
		close(pfd[1]);
		return err;
	}
	if (p->pid == 0) {
		struct sigaction dfl = { .sa_handler = SIG_DFL };
		cpu_set_t set;
		sigset_t none;
		int devnull;

		CPU_ZERO(&set);
		for (unsigned i = 0; i < ncpus; i++)
			CPU_SET(cpus[i], &set);
		if (!ncpus) /* any CPU the caller allowed */
			for (int i = 0; i < CPU_SETSIZE; i++)
				if (rp_bench_cpu_allowed(i))
					CPU_SET(i, &set);
		sched_setaffinity(0, sizeof(set), &set);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		sigaction(SIGPIPE, &dfl, NULL); /* ignored here, not in the peers */
		devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, 0);
		if (dup2(pfd[1], 1) < 0 || dup2(pfd[1], 2) < 0)
			_exit(127);
		execv(argv[0], argv);
		if (write(2, "exec failed: ", 13) > 0 && write(2, argv[0], strlen(argv[0])) > 0)
			(void)!write(2, "\n", 1);
		_exit(127);
	}
	close(pfd[1]);
	p->out = pfd[0];
	return 0;
}

/* Read what the child prints until EOF (1), @deadline or @until seen in a
 * whole line (0), or an error (-errno). */
int proc_read(struct proc *p, uint64_t deadline_ns, const char *until)
{
	while (p->out >= 0) {
		char buf[16384];
		const char *u;
		ssize_t r;
		int ret;

		if (until && p->log && (u = strstr(p->log, until)) && strchr(u, '\n'))
			return 0;
		ret = poll_in(p->out, deadline_ns);
		if (ret <= 0)
			return ret;
		r = read(p->out, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			close(p->out);
			p->out = -1;
			return 1;
		}
		if (p->len + (size_t)r + 1 > p->cap && p->cap < OUT_MAX) {
			size_t ncap = p->cap ? p->cap : 16384;
			char *nb;

			while (ncap < p->len + (size_t)r + 1 && ncap < OUT_MAX)
				ncap *= 2;
			nb = realloc(p->log, ncap);
			if (nb) {
				p->log = nb;
				p->cap = ncap;
			}
		}
		if (p->len + 1 >= p->cap)
			continue; /* full: what comes later is dropped */
		if ((size_t)r > p->cap - p->len - 1)
			r = (ssize_t)(p->cap - p->len - 1);
		memcpy(p->log + p->len, buf, (size_t)r);
		p->len += (size_t)r;
		p->log[p->len] = '\0';
	}
	return 1;
}

/* Reap within @timeout_ms, else SIGKILL its group. Its wait status, or
 * -ETIMEDOUT (killed). */
int proc_reap(struct proc *p, unsigned timeout_ms)
{
	uint64_t deadline = rp_bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
	int status = 0;

	if (p->pid <= 0)
		return 0;
	for (;;) {
		pid_t r = waitpid(p->pid, &status, WNOHANG);

		if (r == p->pid || (r < 0 && errno != EINTR))
			break;
		if (!ms_left(deadline)) {
			kill(-p->pid, SIGKILL);
			waitpid(p->pid, &status, 0);
			rp_cleanup_del_pgid(p->pid);
			p->pid = -1;
			return -ETIMEDOUT;
		}
		/* keep its pipe drained so a full pipe cannot block its exit */
		proc_read(p, rp_bench_now_ns() + 10000000u, NULL);
		if (p->out < 0)
			sleep_ms(5);
	}
	rp_cleanup_del_pgid(p->pid);
	p->pid = -1;
	return status;
}

void proc_free(struct proc *p)
{
	if (p->out >= 0)
		close(p->out);
	p->out = -1;
	free(p->log);
	p->log = NULL;
	p->len = p->cap = 0;
}

const char *proc_log(const struct proc *p)
{
	return p->log ? p->log : "";
}

/* The last lines of what a child printed, for an error message. */
const char *log_tail(const struct proc *p, unsigned lines)
{
	const char *s = proc_log(p);
	size_t n = p->len, seen = 0;

	while (n > 0 && seen < lines)
		if (s[--n] == '\n' && n + 1 < p->len)
			seen++;
	return s + (n ? n + 1 : 0);
}

/* SIGTERM to the child's group, bounded reap, SIGKILL to what is left of
 * the group (socat's forks); notes an unclean exit (exit status 0, 143 or
 * @ok_exit, or death by SIGTERM, are clean). Frees the log unless @keep. */
void proc_stop(struct proc *p, const char *what, bool keep, int ok_exit)
{
	if (p->pid > 0) {
		pid_t pg = p->pid;
		int st;
		/* gone before we asked (a peer that failed to start): its own
		 * exit, not an answer to SIGTERM */
		bool own = waitpid(pg, &st, WNOHANG) == pg;

		if (own) {
			rp_cleanup_del_pgid(pg);
			p->pid = -1;
			kill(-pg, SIGKILL); /* what it forked */
			proc_read(p, rp_bench_now_ns() + 100000000u, NULL); /* its last words */
			if (!(WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == ok_exit)))
				rp_report_note("%s: exited on its own with %s %d (before any SIGTERM); its last lines: %s",
					       what, WIFEXITED(st) ? "status" : "signal",
					       WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
					       log_tail(p, 3));
			goto out;
		}
		kill(-pg, SIGTERM);
		st = proc_reap(p, STOP_TIMEOUT_MS);
		kill(-pg, SIGKILL);
		if (st == -ETIMEDOUT)
			rp_report_note("%s: did not exit within %d ms of SIGTERM; killed", what,
				       STOP_TIMEOUT_MS);
		else if (!(WIFEXITED(st) &&
			   (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 128 + SIGTERM ||
			    WEXITSTATUS(st) == ok_exit)) &&
			 !(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM))
			rp_report_note("%s: exited with %s %d after SIGTERM; its last lines: %s", what,
				       WIFEXITED(st) ? "status" : "signal",
				       WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
				       log_tail(p, 3));
	}
out:
	if (keep) {
		if (p->out >= 0)
			close(p->out);
		p->out = -1;
	} else {
		proc_free(p);
	}
}

/* Run a client tool to its end, bounded by @timeout_s; its output in p->log
 * (the caller frees it with proc_free). Returns its exit status (0..255),
 * or -errno (-ETIMEDOUT: killed; -ECHILD: died by a signal). */
int run_tool(struct proc *p, char *const argv[], int cpu, unsigned timeout_s)
{
	return run_tool_on(p, argv, cpu >= 0 ? &cpu : NULL, cpu >= 0 ? 1 : 0, timeout_s);
}

int run_tool_on(struct proc *p, char *const argv[], const int *cpus, unsigned ncpus,
		unsigned timeout_s)
{
	uint64_t deadline = rp_bench_now_ns() + (uint64_t)timeout_s * 1000000000ull;
	int ret, st;

	ret = proc_spawn_on(p, argv, cpus, ncpus);
	if (ret)
		return ret;
	ret = proc_read(p, deadline, NULL);
	if (ret != 1)
		kill(-p->pid, SIGKILL);
	st = proc_reap(p, 2000);
	if (ret != 1 || st == -ETIMEDOUT)
		return -ETIMEDOUT;
	if (st < 0)
		return st;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -ECHILD;
}

void peer_version(const char *path, const char *flag, char *buf, size_t size)
{
	char *argv[] = { (char *)path, (char *)flag, NULL };
	struct proc pr;
	const char *log;
	size_t n;

	buf[0] = '\0';
	(void)run_tool(&pr, argv, -1, 5); /* wrk -v exits 1: the line is what counts */
	log = proc_log(&pr);
	/* the line naming the version where one does (socat -V opens with
	 * its authors), else the first */
	for (const char *l = log; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (!strncmp(l, "socat version", 13)) {
			log = l;
			break;
		}
	n = strcspn(log, "\n");
	snprintf(buf, size, "%.*s", (int)(n < size ? n : size - 1), log);
	proc_free(&pr);
}

/* utime+stime+cutime+cstime of @pid in seconds (threads included; forks
 * once reaped), or a negative value. */
double proc_cpu_s(pid_t pid)
{
	char path[64], buf[2048];
	unsigned long long ut, st;
	long long cut, cst;
	ssize_t n;
	const char *q;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	q = strrchr(buf, ')');
	/* fields 3..17: state ppid pgrp session tty tpgid flags minflt cminflt
	 * majflt cmajflt utime stime cutime cstime */
	if (!q || sscanf(q + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld",
			 &ut, &st, &cut, &cst) != 4)
		return -1;
	return (double)(ut + st + (unsigned long long)cut + (unsigned long long)cst) /
	       (double)sysconf(_SC_CLK_TCK);
}

/* ---- ports ---- */

struct sockaddr_in loopback(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	return a;
}

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int free_port(void)
{
	struct sockaddr_in a = loopback(0);
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	if (fd < 0)
		return -errno;
	if (!bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
	    !getsockname(fd, (struct sockaddr *)&a, &len))
		port = ntohs(a.sin_port);
	close(fd);
	return port > 0 ? port : -EADDRNOTAVAIL;
}

/* Wait until @port on 127.0.0.1 is bound by someone (our own bind without
 * SO_REUSEADDR fails with EADDRINUSE): no probe connection reaches the
 * child, so an iperf3 behind a relay never sees a stray one. */
int wait_bound(struct proc *p, int port, unsigned timeout_ms)
{
	uint64_t deadline = rp_bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
	struct sockaddr_in a = loopback(port);

	while (ms_left(deadline)) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), busy;

		if (fd < 0)
			return -errno;
		busy = bind(fd, (struct sockaddr *)&a, sizeof(a)) && errno == EADDRINUSE;
		close(fd);
		if (busy)
			return 0;
		if (proc_read(p, rp_bench_now_ns() + 20000000u, NULL) == 1)
			return -EIO; /* EOF: it died */
	}
	return -ETIMEDOUT;
}

