/* SPDX-License-Identifier: MIT */
/*
 * Hold a thread at its ioctl(fd, SIOCATMARK) while another runs a callback,
 * then let the ioctl run for real: a seccomp user notification (a filter
 * with SECCOMP_RET_USER_NOTIF for that ioctl alone; the supervisor thread
 * answers SECCOMP_USER_NOTIF_FLAG_CONTINUE). The tests of TCP urgent data
 * use it to deliver a newer urgent byte exactly between a splice that
 * stopped at the urgent mark and the code's check of the mark, the race
 * that made a relay take a 0 for an EOF (net/splice_zero.h), every time
 * instead of now and then. The filter stays for the life of the process
 * and its later threads: install it only in a child of its own, before
 * the threads that should be held are created.
 */
#ifndef RP_TESTS_ATMARK_HOLD_H
#define RP_TESTS_ATMARK_HOLD_H

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "seccomp_test.h"

struct atmark_hold {
	int lfd;		/* the filter's listener */
	atomic_int fd;		/* the socket whose SIOCATMARK is held (others pass
				   at once); -1: any (another process's) */
	atomic_int stop;	/* the supervisor returns (atmark_hold_stop) */
	atomic_int armed;	/* hold the next one, once */
	atomic_int fired;	/* held ones so far */
	void (*fn)(void *arg);	/* runs while the ioctl is held (set with @arg
				   before @armed: read only once it is taken) */
	void *arg;
	pthread_t th;
};

static void *atmark_hold_main(void *p)
{
	struct atmark_hold *h = p;

	while (!atomic_load(&h->stop)) {
		struct seccomp_notif req;
		struct seccomp_notif_resp resp;
		struct pollfd pfd = { .fd = h->lfd, .events = POLLIN };
		int one = 1, fd;

		/* every task of the filter gone (a held child exited): HUP */
		if (poll(&pfd, 1, 100) <= 0 || !(pfd.revents & POLLIN)) {
			if (pfd.revents & (POLLHUP | POLLERR | POLLNVAL))
				return NULL;
			continue;
		}
		memset(&req, 0, sizeof(req));
		if (ioctl(h->lfd, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) {
			if (errno == EINTR || errno == ENOENT)
				continue;
			return NULL;
		}
		fd = atomic_load(&h->fd);
		if ((fd < 0 || (int)req.data.args[0] == fd) &&
		    atomic_compare_exchange_strong(&h->armed, &one, 0)) {
			h->fn(h->arg);
			atomic_fetch_add(&h->fired, 1);
		}
		memset(&resp, 0, sizeof(resp));
		resp.id = req.id;
		resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
		(void)ioctl(h->lfd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
	}
	return NULL;
}

/* Install the filter for this thread and those it creates later (and
 * what it executes): its listener, or a negative errno (no seccomp here). */
static inline int atmark_hold_filter(void)
{
#ifdef TEST_AUDIT_ARCH
	struct sock_filter f[] = {
		SECCOMP_TEST_PROLOGUE,
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		/* the request's low 32 bits (little-endian: x86-64, arm64) */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SIOCATMARK, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
	int lfd;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	lfd = (int)syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
			   &prog);
	return lfd < 0 ? -errno : lfd;
#else
	return -ENOSYS;
#endif
}

/* Answer the notifications of @h->lfd on a thread of this process: 0 or a
 * negative errno. */
static inline int atmark_hold_serve(struct atmark_hold *h)
{
	return -pthread_create(&h->th, NULL, atmark_hold_main, h);
}

/* The filter here and its supervisor: 0, or a negative errno (the caller skips). */
static inline int atmark_hold_start(struct atmark_hold *h)
{
	h->lfd = atmark_hold_filter();
	return h->lfd < 0 ? h->lfd : atmark_hold_serve(h);
}

/* End the supervisor (within 100 ms) and close the listener. */
static inline void atmark_hold_stop(struct atmark_hold *h)
{
	atomic_store(&h->stop, 1);
	pthread_join(h->th, NULL);
	close(h->lfd);
}

/* Until ioctl(@fd, FIONREAD) says @want (the kernel has taken in what was
 * just sent on loopback), at most @ms milliseconds. */
static inline int atmark_inq_wait(int fd, int want, int ms)
{
	int inq = -1;

	for (int i = 0; i < ms * 10; i++) {
		if (ioctl(fd, FIONREAD, &inq) == 0 && inq == want)
			return inq;
		usleep(100);
	}
	return inq;
}

#endif
