/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"

enum { K_FREE, K_DIR, K_NETNS, K_PGID };

#define NSLOTS 32

static struct slot {
	char a[128], b[40], c[128];
	pid_t pgid;
	atomic_int kind; /* set last on add, first on delete */
} slots[NSLOTS];

static char ip_path[64]; /* found once at install: execve needs a path */
/* The network namespace at install: a signal may come while a thread of
 * ours has entered a bench namespace (rp_netns_enter), and `ip link del`
 * run from there would miss the host end of the pair. */
static int host_ns = -1;
static atomic_flag busy = ATOMIC_FLAG_INIT;

static int slot_take(void)
{
	for (int i = 0; i < NSLOTS; i++)
		if (atomic_load(&slots[i].kind) == K_FREE)
			return i;
	return -1;
}

static int add(int kind, const char *a, const char *b, const char *c, pid_t pgid)
{
	int i = slot_take();

	if (i < 0)
		return -1;
	snprintf(slots[i].a, sizeof(slots[i].a), "%s", a ? a : "");
	snprintf(slots[i].b, sizeof(slots[i].b), "%s", b ? b : "");
	snprintf(slots[i].c, sizeof(slots[i].c), "%s", c ? c : "");
	slots[i].pgid = pgid;
	atomic_store(&slots[i].kind, kind);
	return i;
}

int rp_cleanup_add_dir(const char *dir)
{
	return add(K_DIR, dir, NULL, NULL, 0);
}

int rp_cleanup_add_netns(const char *host_if, const char *ns, const char *lock)
{
	return add(K_NETNS, host_if, ns, lock, 0);
}

int rp_cleanup_add_pgid(pid_t pgid)
{
	return add(K_PGID, NULL, NULL, NULL, pgid);
}

void rp_cleanup_del(int slot)
{
	if (slot >= 0 && slot < NSLOTS)
		atomic_store(&slots[slot].kind, K_FREE);
}

void rp_cleanup_del_pgid(pid_t pgid)
{
	for (int i = 0; i < NSLOTS; i++)
		if (atomic_load(&slots[i].kind) == K_PGID && slots[i].pgid == pgid)
			atomic_store(&slots[i].kind, K_FREE);
}

void rp_cleanup_block(sigset_t *old)
{
	sigset_t blk;

	sigemptyset(&blk);
	sigaddset(&blk, SIGINT);
	sigaddset(&blk, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &blk, old);
}

void rp_cleanup_restore(const sigset_t *old)
{
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

int rp_cleanup_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
			      void *arg)
{
	sigset_t old;
	int ret;

	rp_cleanup_block(&old);
	ret = pthread_create(t, attr, fn, arg);
	rp_cleanup_restore(&old);
	return ret;
}

pid_t rp_cleanup_fork(void)
{
	pid_t parent = getpid(), pid;
	sigset_t old;

	rp_cleanup_block(&old);
	pid = fork();
	if (pid < 0) {
		int e = errno;

		rp_cleanup_restore(&old);
		return -e;
	}
	if (pid == 0) {
		/* only async-signal-safe calls: the parent may have threads */
		setpgid(0, 0);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127); /* it died before PDEATHSIG was set: no one stops us */
		sigdelset(&old, SIGINT);
		sigdelset(&old, SIGTERM);
		sigprocmask(SIG_SETMASK, &old, NULL); /* a pending one kills us here */
		return 0;
	}
	setpgid(pid, pid); /* also here: no window where kill(-pid) misses */
	if (rp_cleanup_add_pgid(pid) < 0) {
		/* the registry is full: a child the cleanup could not stop is
		 * not started at all */
		kill(-pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		rp_cleanup_restore(&old);
		return -ENOSPC;
	}
	rp_cleanup_restore(&old);
	return pid;
}

void rp_cleanup_quiet_stdio(void)
{
	int fd = open("/dev/null", O_RDWR);

	if (fd < 0)
		return;
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2)
		close(fd);
}

/* Run @argv (argv[0] a path) with no output, and wait for it: only
 * async-signal-safe calls. */
static void run_quiet(char *const argv[])
{
	static char *const envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
	pid_t pid = _Fork();
	int st;

	if (pid == 0) {
		if (host_ns >= 0)
			(void)setns(host_ns, CLONE_NEWNET);
		rp_cleanup_quiet_stdio();
		execve(argv[0], argv, envp);
		_exit(127);
	}
	if (pid > 0)
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
}

static void on_signal(int sig)
{
	int saved = errno;

	if (atomic_flag_test_and_set(&busy)) {
		/* another thread is cleaning up and will re-raise */
		errno = saved;
		return;
	}
	/* the peers first: nothing should still use what is removed next */
	for (int i = 0; i < NSLOTS; i++)
		if (atomic_load(&slots[i].kind) == K_PGID && slots[i].pgid > 0)
			kill(-slots[i].pgid, SIGTERM);
	for (int i = 0; i < NSLOTS; i++) {
		struct slot *s = &slots[i];
		int kind = atomic_load(&s->kind);

		if (kind == K_DIR && s->a[0]) {
			run_quiet((char *const[]){ "/bin/rm", "-rf", "--", s->a, NULL });
		} else if (kind == K_NETNS) {
			if (ip_path[0] && s->a[0])
				run_quiet((char *const[]){ ip_path, "link", "del", s->a, NULL });
			if (ip_path[0] && s->b[0])
				run_quiet((char *const[]){ ip_path, "netns", "del", s->b, NULL });
			/* unlinked while its lock is still held: see netns.c */
			if (s->c[0])
				unlink(s->c);
		}
	}
	signal(sig, SIG_DFL);
	raise(sig);
	errno = saved;
}

void rp_cleanup_install(void)
{
	static const char *const ips[] = { "/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip" };
	static const int sigs[] = { SIGINT, SIGTERM };
	struct sigaction sa = { .sa_handler = on_signal }, old;

	if (host_ns < 0)
		host_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	for (size_t i = 0; i < sizeof(ips) / sizeof(ips[0]) && !ip_path[0]; i++)
		if (!access(ips[i], X_OK))
			snprintf(ip_path, sizeof(ip_path), "%s", ips[i]);
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(&sa.sa_mask, sigs[i]);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		if (sigaction(sigs[i], NULL, &old) || old.sa_handler == SIG_IGN)
			continue; /* nohup and the like: keep ignoring */
		sigaction(sigs[i], &sa, NULL);
	}
}
