/* SPDX-License-Identifier: MIT */
/*
 * The echo suite's baseline server: the plain epoll echo server a
 * programmer would write without ringplane. One thread per CPU of an
 * optional cpulist (one unpinned thread without one), each with its own
 * SO_REUSEPORT listener and level-triggered epoll set, as `ringplane echo`
 * has one listener per shard; non-blocking sockets, TCP_NODELAY (as `ringplane echo` sets);
 * each readable event is one read() of up to 16 KB and one write() of what
 * was read. A short write parks the rest and waits for EPOLLOUT before the
 * connection is read again, so nothing is dropped or reordered.
 *
 * --sockperf answers sockperf's TCP ping-pong framing exactly as `ringplane
 * echo --sockperf` does (apps/cmd_echo.c): a 14-byte header (u64 sequence,
 * u16 flags, u32 frame length including the header; network byte order),
 * then payload; a frame with the client (1) and pong-request (2) bits and
 * without warm-up (4) goes back unchanged but for the client bit cleared,
 * other frames get no reply; a length below 14 or above 64 KiB closes that
 * connection. Frames are reassembled across reads; the replies of one read
 * go out as one write().
 *
 * --busy-poll US polls like `ringplane echo --busy-poll US`: after the last
 * event a thread keeps calling epoll_wait with a zero timeout (spinning,
 * one syscall per poll) for US microseconds before it sleeps in
 * epoll_wait(-1) again. Under ping-pong traffic it never sleeps.
 *
 * Run as `ringplane-bench --echo-child HOST:PORT [CPULIST] [--sockperf]
 * [--busy-poll US]` (IPv4; port 0 picks a free one). Prints `listening on
 * HOST:PORT` when ready, like every ringplane server, and exits 0 on SIGTERM
 * or SIGINT, closing every socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ringplane/topo.h>

#include "bench.h"
#include "cleanup.h"

#define BUF_SIZE 16384u
#define EVENTS 256

/* sockperf framing, as apps/cmd_echo.c has it. */
#define SP_HDR 14u
#define SP_MAX_FRAME (64u * 1024)
#define SP_ACC (128u * 1024) /* reassembly buffer: at least one whole frame */
#define SP_F_CLIENT 1u
#define SP_F_PONG 2u
#define SP_F_WARMUP 4u

struct emode {
	bool sockperf;
	uint64_t busy_ns; /* 0: sleep in epoll_wait(-1) at once */
};

struct econn {
	int fd;
	unsigned off, len; /* out[off..len) still to be written */
	char *out;	   /* buf, or SP_ACC bytes of its own in sockperf mode */
	uint8_t *acc;	   /* sockperf mode: bytes of frames not yet whole */
	unsigned acc_len;
	char buf[BUF_SIZE];
};

static void econn_close(struct econn **tab, struct econn *c)
{
	tab[c->fd] = NULL;
	close(c->fd); /* also removes it from the epoll set */
	if (c->out != c->buf)
		free(c->out);
	free(c->acc);
	free(c);
}

static struct econn *econn_new(int fd, const struct emode *m)
{
	struct econn *c = malloc(sizeof(*c));

	if (!c)
		return NULL;
	c->fd = fd;
	c->off = c->len = c->acc_len = 0;
	c->out = c->buf;
	c->acc = NULL;
	if (m->sockperf) {
		/* Replies are never longer than the frames they answer, and a
		 * read happens only with nothing pending, so SP_ACC bytes of
		 * output always hold the replies to a full reassembly buffer. */
		c->out = malloc(SP_ACC);
		c->acc = malloc(SP_ACC);
		if (!c->out || !c->acc) {
			free(c->out);
			free(c->acc);
			free(c);
			return NULL;
		}
	}
	return c;
}

static void accept_all(int ep, int lfd, struct econn **tab, unsigned tabsz, const struct emode *m)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;
		struct epoll_event ev = { .events = EPOLLIN };
		struct econn *c;

		if (fd < 0)
			return; /* EAGAIN, or EMFILE and friends: try at the next event */
		if ((unsigned)fd >= tabsz || !(c = econn_new(fd, m))) {
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		ev.data.ptr = c;
		tab[fd] = c;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
			econn_close(tab, c);
	}
}

/* Write what is pending; false when the connection is dead. */
static bool flush_out(int ep, struct econn *c)
{
	struct epoll_event ev = { .data.ptr = c };

	while (c->off < c->len) {
		ssize_t w = write(c->fd, c->out + c->off, c->len - c->off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return false;
			ev.events = EPOLLOUT;
			return !epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		}
		c->off += (unsigned)w;
	}
	return true;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * Turn the whole frames in acc into replies in out (empty on entry, see
 * econn_new) and keep the partial one. false on a malformed frame.
 */
static bool sockperf_parse(struct econn *c)
{
	unsigned pos = 0;

	while (c->acc_len - pos >= SP_HDR) {
		uint8_t *f = c->acc + pos;
		uint32_t len = be32(f + 10);
		uint16_t flags = (uint16_t)(f[8] << 8 | f[9]);

		if (len < SP_HDR || len > SP_MAX_FRAME)
			return false;
		if (c->acc_len - pos < len)
			break;
		if ((flags & SP_F_CLIENT) && (flags & SP_F_PONG) && !(flags & SP_F_WARMUP)) {
			flags &= (uint16_t)~SP_F_CLIENT;
			memcpy(c->out + c->len, f, len);
			c->out[c->len + 8] = (char)(flags >> 8);
			c->out[c->len + 9] = (char)flags;
			c->len += len;
		}
		pos += len;
	}
	if (pos) {
		memmove(c->acc, c->acc + pos, c->acc_len - pos);
		c->acc_len -= pos;
	}
	return true;
}

static bool on_event(int ep, struct econn *c, uint32_t events)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	ssize_t r;

	if (c->off < c->len) {
		/* parked: only EPOLLOUT (or an error) is armed */
		if (!flush_out(ep, c))
			return false;
		if (c->off < c->len)
			return true;
		c->off = c->len = 0;
		return !epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return true;
	do
		r = c->acc ? read(c->fd, c->acc + c->acc_len, SP_ACC - c->acc_len)
			   : read(c->fd, c->buf, BUF_SIZE);
	while (r < 0 && errno == EINTR);
	if (r == 0 || (r < 0 && errno != EAGAIN))
		return false;
	if (r < 0)
		return true;
	c->off = 0;
	if (c->acc) {
		c->len = 0;
		c->acc_len += (unsigned)r;
		if (!sockperf_parse(c))
			return false;
	} else {
		c->len = (unsigned)r;
	}
	if (!flush_out(ep, c))
		return false;
	if (c->off == c->len)
		c->off = c->len = 0;
	return true;
}

static int parse_hostport(const char *s, struct sockaddr_in *sa)
{
	const char *colon = strrchr(s, ':');
	char host[64];
	char *end;
	long port;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end || port < 0 || port > 65535)
		return -EINVAL;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -EINVAL;
}

/* One serving thread: its own SO_REUSEPORT listener, epoll set and table. */
struct worker {
	pthread_t tid;
	int cpu;		/* -1: not pinned */
	const struct emode *mode;
	int lfd, ep, stopfd;
	unsigned tabsz;
	struct econn **tab;
	int status;
};

static void *worker_main(void *p)
{
	struct worker *w = p;
	struct epoll_event evs[EVENTS];
	uint64_t spin_until = 0; /* busy-poll: poll with timeout 0 until then */

	if (w->cpu >= 0) {
		cpu_set_t one;

		CPU_ZERO(&one);
		CPU_SET(w->cpu, &one);
		if (pthread_setaffinity_np(pthread_self(), sizeof(one), &one)) {
			fprintf(stderr, "epoll echo: cannot pin a thread to cpu %d\n", w->cpu);
			w->status = 1;
			return NULL;
		}
	}
	for (;;) {
		bool spin = spin_until && rp_bench_now_ns() < spin_until;
		int n = epoll_wait(w->ep, evs, EVENTS, spin ? 0 : -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("epoll echo: epoll_wait");
			w->status = 1;
			return NULL;
		}
		if (n > 0 && w->mode->busy_ns)
			spin_until = rp_bench_now_ns() + w->mode->busy_ns;
		for (int i = 0; i < n; i++) {
			struct econn *c = evs[i].data.ptr;

			if (c == (struct econn *)w)
				return NULL; /* stop: the eventfd */
			if (!c)
				accept_all(w->ep, w->lfd, w->tab, w->tabsz, w->mode);
			else if (!on_event(w->ep, c, evs[i].events))
				econn_close(w->tab, c);
		}
	}
}

/* Listener (bound to *@addr, which gets the port picked for port 0), epoll
 * set with it and the stop eventfd, fd table. */
static int worker_setup(struct worker *w, struct sockaddr_in *addr, unsigned tabsz, int stopfd)
{
	struct epoll_event lev = { .events = EPOLLIN }, sev = { .events = EPOLLIN, .data.ptr = w };
	socklen_t alen = sizeof(*addr);
	int one = 1;

	w->tabsz = tabsz;
	w->stopfd = stopfd;
	w->tab = calloc(tabsz, sizeof(*w->tab));
	w->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	w->ep = epoll_create1(EPOLL_CLOEXEC);
	if (!w->tab || w->lfd < 0 || w->ep < 0)
		return -1;
	setsockopt(w->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(w->lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(w->lfd, (struct sockaddr *)addr, sizeof(*addr)) || listen(w->lfd, 4096) ||
	    getsockname(w->lfd, (struct sockaddr *)addr, &alen) ||
	    epoll_ctl(w->ep, EPOLL_CTL_ADD, w->lfd, &lev) ||
	    epoll_ctl(w->ep, EPOLL_CTL_ADD, stopfd, &sev))
		return -1;
	return 0;
}

static void worker_fini(struct worker *w)
{
	for (unsigned fd = 0; w->tab && fd < w->tabsz; fd++)
		if (w->tab[fd])
			econn_close(w->tab, w->tab[fd]);
	free(w->tab);
	if (w->ep >= 0)
		close(w->ep);
	if (w->lfd >= 0)
		close(w->lfd);
}

int rp_bench_echo_child(int argc, char **argv)
{
	static struct emode mode;
	const char *cpulist = NULL;
	struct sockaddr_in addr;
	struct worker *ws = NULL;
	cpu_set_t cpus;
	sigset_t sigs;
	struct rlimit rl;
	unsigned tabsz = 65536, n = 1, started = 0;
	char host[INET_ADDRSTRLEN];
	int stopfd = -1, status = 1, sig, k = 0;

	bool bad = argc < 3 || parse_hostport(argv[2], &addr);

	for (int i = 3; !bad && i < argc; i++) {
		char *end;

		if (!strcmp(argv[i], "--sockperf")) {
			mode.sockperf = true;
		} else if (!strcmp(argv[i], "--busy-poll") && i + 1 < argc) {
			unsigned long us = strtoul(argv[++i], &end, 10);

			bad = *end || !*argv[i] || us > 10000000ul;
			mode.busy_ns = (uint64_t)us * 1000u;
		} else if (!cpulist && argv[i][0] != '-') {
			cpulist = argv[i];
			bad = rp_cpulist_parse(cpulist, &cpus) || !CPU_COUNT(&cpus);
		} else {
			bad = true;
		}
	}
	if (bad) {
		fprintf(stderr, "usage: ringplane-bench --echo-child IPV4:PORT [CPULIST] [--sockperf] [--busy-poll US]\n");
		return 2;
	}
	if (cpulist)
		n = (unsigned)CPU_COUNT(&cpus);
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < tabsz)
		tabsz = (unsigned)rl.rlim_cur;
	/* Signals are taken by this thread alone, with sigwait. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	ws = calloc(n, sizeof(*ws));
	stopfd = eventfd(0, EFD_CLOEXEC);
	if (!ws || stopfd < 0) {
		perror("epoll echo: setup");
		goto out;
	}
	for (unsigned i = 0; i < n; i++) {
		ws[i].lfd = ws[i].ep = -1;
		ws[i].cpu = -1;
		ws[i].mode = &mode;
		if (cpulist) {
			while (!CPU_ISSET(k, &cpus))
				k++;
			ws[i].cpu = k++;
		}
		/* the first bind picks the port (port 0); the rest share it */
		if (worker_setup(&ws[i], &addr, tabsz, stopfd)) {
			perror("epoll echo: listen");
			goto out;
		}
	}
	for (; started < n; started++)
		if (rp_cleanup_pthread_create(&ws[started].tid, NULL, worker_main, &ws[started])) {
			fprintf(stderr, "epoll echo: cannot start thread %u\n", started);
			goto out;
		}
	inet_ntop(AF_INET, &addr.sin_addr, host, sizeof(host));
	printf("listening on %s:%d\n", host, ntohs(addr.sin_port));
	fflush(stdout);
	while (sigwait(&sigs, &sig))
		;
	status = 0;
out:
	if (stopfd >= 0)
		(void)!write(stopfd, &(uint64_t){ 1 }, sizeof(uint64_t));
	for (unsigned i = 0; i < started; i++) {
		pthread_join(ws[i].tid, NULL);
		if (ws[i].status)
			status = 1;
	}
	for (unsigned i = 0; ws && i < n; i++)
		worker_fini(&ws[i]);
	free(ws);
	if (stopfd >= 0)
		close(stopfd);
	return status;
}
