/* SPDX-License-Identifier: MIT */
/*
 * The echo suite's baseline server: the plain epoll echo server a
 * programmer would write without ringplane. One thread, level-triggered
 * epoll, non-blocking sockets, TCP_NODELAY (as `ringplane echo` sets);
 * each readable event is one read() of up to 16 KB and one write() of what
 * was read. A short write parks the rest and waits for EPOLLOUT before the
 * connection is read again, so nothing is dropped or reordered.
 *
 * Run as `ringplane-bench --echo-child HOST:PORT` (IPv4; port 0 picks a
 * free one). Prints `listening on HOST:PORT` when ready, like every
 * ringplane server, and exits 0 on SIGTERM or SIGINT, closing every socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

#define BUF_SIZE 16384u
#define EVENTS 256

struct econn {
	int fd;
	unsigned off, len; /* buf[off..len) still to be written */
	char buf[BUF_SIZE];
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

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

int rp_bench_echo_child(int argc, char **argv)
{
	struct epoll_event evs[EVENTS], lev = { .events = EPOLLIN };
	struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART */
	struct sockaddr_in addr;
	socklen_t alen = sizeof(addr);
	struct econn **tab = NULL;
	struct rlimit rl;
	unsigned tabsz = 65536;
	char host[INET_ADDRSTRLEN];
	int lfd = -1, ep = -1, one = 1, status = 1;

	if (argc != 3 || parse_hostport(argv[2], &addr)) {
		fprintf(stderr, "usage: ringplane-bench --echo-child IPV4:PORT\n");
		return 2;
	}
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < tabsz)
		tabsz = (unsigned)rl.rlim_cur;
	tab = calloc(tabsz, sizeof(*tab));
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!tab || lfd < 0 || ep < 0) {
		perror("epoll echo: setup");
		goto out;
	}
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) || listen(lfd, 4096) ||
	    getsockname(lfd, (struct sockaddr *)&addr, &alen) ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev)) {
		perror("epoll echo: listen");
		goto out;
	}
	inet_ntop(AF_INET, &addr.sin_addr, host, sizeof(host));
	printf("listening on %s:%d\n", host, ntohs(addr.sin_port));
	fflush(stdout);

	while (!stop_flag) {
		int n = epoll_wait(ep, evs, EVENTS, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("epoll echo: epoll_wait");
			goto out;
		}
		for (int i = 0; i < n; i++) {
			struct econn *c = evs[i].data.ptr;

			if (!c)
				accept_all(ep, lfd, tab, tabsz);
			else if (!on_event(ep, c, evs[i].events))
				econn_close(tab, c);
		}
	}
	status = 0;
out:
	for (unsigned fd = 0; tab && fd < tabsz; fd++)
		if (tab[fd])
			econn_close(tab, tab[fd]);
	free(tab);
	if (ep >= 0)
		close(ep);
	if (lfd >= 0)
		close(lfd);
	return status;
}
