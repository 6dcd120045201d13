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
 * Run as `ringplane-bench --echo-child HOST:PORT [CPULIST]` (IPv4; port 0
 * picks a free one). Prints `listening on HOST:PORT` when ready, like every
 * ringplane server, and exits 0 on SIGTERM or SIGINT, closing every socket.
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

#define BUF_SIZE 16384u
#define EVENTS 256

struct econn {
	int fd;
	unsigned off, len; /* buf[off..len) still to be written */
	char buf[BUF_SIZE];
};

static void econn_close(struct econn **tab, struct econn *c)
{
	tab[c->fd] = NULL;
	close(c->fd); /* also removes it from the epoll set */
	free(c);
}

static void accept_all(int ep, int lfd, struct econn **tab, unsigned tabsz)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;
		struct epoll_event ev = { .events = EPOLLIN };
		struct econn *c;

		if (fd < 0)
			return; /* EAGAIN, or EMFILE and friends: try at the next event */
		if ((unsigned)fd >= tabsz || !(c = malloc(sizeof(*c)))) {
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->fd = fd;
		c->off = c->len = 0;
		ev.data.ptr = c;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)) {
			close(fd);
			free(c);
			continue;
		}
		tab[fd] = c;
	}
}

/* Write what is pending; false when the connection is dead. */
static bool flush_out(int ep, struct econn *c)
{
	struct epoll_event ev = { .data.ptr = c };

	while (c->off < c->len) {
		ssize_t w = write(c->fd, c->buf + c->off, c->len - c->off);

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
		r = read(c->fd, c->buf, BUF_SIZE);
	while (r < 0 && errno == EINTR);
	if (r == 0 || (r < 0 && errno != EAGAIN))
		return false;
	if (r < 0)
		return true;
	c->off = 0;
	c->len = (unsigned)r;
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
	int lfd, ep, stopfd;
	unsigned tabsz;
	struct econn **tab;
	int status;
};

static void *worker_main(void *p)
{
	struct worker *w = p;
	struct epoll_event evs[EVENTS];

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
		int n = epoll_wait(w->ep, evs, EVENTS, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("epoll echo: epoll_wait");
			w->status = 1;
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			struct econn *c = evs[i].data.ptr;

			if (c == (struct econn *)w)
				return NULL; /* stop: the eventfd */
			if (!c)
				accept_all(w->ep, w->lfd, w->tab, w->tabsz);
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
	struct sockaddr_in addr;
	struct worker *ws = NULL;
	cpu_set_t cpus;
	sigset_t sigs;
	struct rlimit rl;
	unsigned tabsz = 65536, n = 1, started = 0;
	char host[INET_ADDRSTRLEN];
	int stopfd = -1, status = 1, sig, k = 0;

	if ((argc != 3 && argc != 4) || parse_hostport(argv[2], &addr) ||
	    (argc == 4 && (rp_cpulist_parse(argv[3], &cpus) || !CPU_COUNT(&cpus)))) {
		fprintf(stderr, "usage: ringplane-bench --echo-child IPV4:PORT [CPULIST]\n");
		return 2;
	}
	if (argc == 4)
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
		if (argc == 4) {
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
		if (pthread_create(&ws[started].tid, NULL, worker_main, &ws[started])) {
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
