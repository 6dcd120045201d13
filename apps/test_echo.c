/* SPDX-License-Identifier: MIT */
/*
 * Integration test of `ringplane echo`: starts the real server as a child
 * and drives it over loopback.
 *
 *   plain     1000 concurrent connections (200 with RP_TEST_REDUCED), each
 *             sending a random payload of 1 B .. 300 KB while reading the
 *             echo, every byte checked; a few peers reset mid-transfer
 *             (SO_LINGER 0) and must not disturb the others.
 *   sockperf  frames with every flag combination: only client+pong-request
 *             frames come back, with the client bit cleared; a frame split
 *             over many writes; a malformed length closes that connection
 *             only, while another connection keeps being served.
 *   shutdown  SIGTERM with connections mid-transfer: exit status 0 within a
 *             second.
 *
 * Usage: test_echo RINGPLANE_BINARY. Every wait is bounded by a deadline.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PAYLOAD (300 * 1024)

static const char *bin;
static int failures;

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                      \
			fputc('\n', stderr);                               \
			failures++;                                        \
		}                                                          \
	} while (0)

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

/* ---- the server child ---- */

struct server {
	pid_t pid;
	int out; /* its stdout */
	int port;
	rlim_t nofile;	  /* 0, or the child's RLIMIT_NOFILE (soft and hard) */
	char log[8192];	  /* what it printed while stopping (its exit stats), cut short */
};

static int server_start(struct server *s, const char *const *extra)
{
	int pfd[2];
	const char *argv[16] = { bin, "echo", "--listen", "127.0.0.1:0", "--no-pin" };
	int argc = 5;
	char line[256];
	size_t len = 0;
	uint64_t deadline = now_ms() + 10000;

	for (; extra && *extra && argc < 15; extra++)
		argv[argc++] = *extra;
	argv[argc] = NULL;
	if (pipe(pfd))
		return -1;
	s->pid = fork();
	if (s->pid < 0)
		return -1;
	if (s->pid == 0) {
		if (s->nofile) {
			struct rlimit rl = { s->nofile, s->nofile };

			if (setrlimit(RLIMIT_NOFILE, &rl))
				_exit(126);
		}
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	s->out = pfd[0];
	/* read "listening on HOST:PORT\n" */
	while (now_ms() < deadline && len < sizeof(line) - 1) {
		struct pollfd p = { .fd = s->out, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 100) <= 0)
			continue;
		r = read(s->out, line + len, 1);
		if (r <= 0)
			break;
		if (line[len++] == '\n')
			break;
	}
	line[len] = 0;
	if (sscanf(line, "listening on 127.0.0.1:%d", &s->port) != 1) {
		fprintf(stderr, "server did not start: '%s'\n", line);
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
		return -1;
	}
	return 0;
}

/* SIGTERM, then wait at most @ms; returns the exit status or -1 (killed). */
static int server_stop(struct server *s, int ms)
{
	uint64_t deadline = now_ms() + (uint64_t)ms;
	size_t len = 0;
	ssize_t n;
	int st;

	s->log[0] = 0;
	kill(s->pid, SIGTERM);
	while (now_ms() < deadline) {
		pid_t r = waitpid(s->pid, &st, WNOHANG);

		/* drain its stats; keep the first sizeof(log) - 1 bytes */
		while ((n = read(s->out, s->log + len, sizeof(s->log) - 1 - len)) > 0) {
			len += (size_t)n;
			s->log[len] = 0;
			if (len == sizeof(s->log) - 1) {
				char sink[4096];

				while (read(s->out, sink, sizeof(sink)) > 0)
					;
				break;
			}
		}
		if (r == s->pid) {
			close(s->out);
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		usleep(10000);
	}
	kill(s->pid, SIGKILL);
	waitpid(s->pid, NULL, 0);
	close(s->out);
	return -1;
}

static int connect_to(int port, bool nonblock)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	if (nonblock)
		fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

/* ---- plain: many connections, random payloads ---- */

struct cl {
	int fd;
	uint8_t *data;
	size_t len, sent, got;
	bool reset;	/* this one aborts mid-transfer */
	bool done, shut;
};

static void test_plain(void)
{
	bool reduced = getenv("RP_TEST_REDUCED") != NULL;
	unsigned n = reduced ? 200 : 1000, finished = 0, resets = 0;
	const char *extra[] = { "--shards", "2", NULL };
	struct cl *cls = calloc(n, sizeof(*cls));
	struct epoll_event ev, evs[256];
	uint8_t *rbuf = malloc(MAX_PAYLOAD);
	uint64_t deadline, total = 0, corrupt = 0;
	struct server s = { .nofile = 0 };
	int ep, st;

	if (server_start(&s, extra)) {
		CHECK(0, "plain: server start");
		free(cls);
		free(rbuf);
		return;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	for (unsigned i = 0; i < n; i++) {
		struct cl *c = &cls[i];
		/* sizes spread over 1 B .. 300 KB, many small */
		uint64_t r = rng();

		c->len = (r & 3) == 0 ? 1 + r % 64 : 1 + (r >> 8) % MAX_PAYLOAD;
		c->data = malloc(c->len);
		for (size_t k = 0; k < c->len; k++)
			c->data[k] = (uint8_t)(rng() >> 24);
		c->reset = i % 97 == 13;
		c->fd = connect_to(s.port, true);
		CHECK(c->fd >= 0, "plain: connect %u: %s", i, strerror(errno));
		if (c->fd < 0) {
			c->done = true;
			finished++;
			continue;
		}
		ev.events = EPOLLIN | EPOLLOUT;
		ev.data.u32 = i;
		epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
	}
	deadline = now_ms() + (reduced ? 60000 : 60000);
	while (finished < n && now_ms() < deadline) {
		int k = epoll_wait(ep, evs, 256, 100);

		for (int e = 0; e < k; e++) {
			struct cl *c = &cls[evs[e].data.u32];

			if (c->done)
				continue;
			if (c->sent < c->len && (evs[e].events & EPOLLOUT)) {
				ssize_t w = send(c->fd, c->data + c->sent, c->len - c->sent,
						 MSG_NOSIGNAL);

				if (w > 0)
					c->sent += (size_t)w;
				if (c->reset && c->sent > c->len / 2) {
					struct linger lg = { 1, 0 };

					/* abort: the server sees a reset mid-transfer */
					setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
					epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
					close(c->fd);
					c->done = true;
					finished++;
					resets++;
					continue;
				}
				if (c->sent == c->len && !c->shut) {
					shutdown(c->fd, SHUT_WR);
					c->shut = true;
					ev.events = EPOLLIN;
					ev.data.u32 = evs[e].data.u32;
					epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
				}
			}
			if (evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
				ssize_t r = recv(c->fd, rbuf, MAX_PAYLOAD, 0);

				if (r > 0) {
					if (c->got + (size_t)r > c->len ||
					    memcmp(rbuf, c->data + c->got, (size_t)r)) {
						corrupt++;
						CHECK(0, "plain: conn %u: wrong bytes at %zu",
						      evs[e].data.u32, c->got);
						c->got = c->len; /* stop checking it */
					} else {
						c->got += (size_t)r;
					}
					total += (uint64_t)r;
				} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
					CHECK(c->got == c->len && c->sent == c->len,
					      "plain: conn %u ended early: sent %zu got %zu of %zu (%s)",
					      evs[e].data.u32, c->sent, c->got, c->len,
					      r == 0 ? "EOF" : strerror(errno));
					epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
					close(c->fd);
					c->done = true;
					finished++;
				}
			}
		}
	}
	CHECK(finished == n, "plain: %u of %u connections finished before the deadline", finished,
	      n);
	CHECK(corrupt == 0, "plain: %llu corrupt connections", (unsigned long long)corrupt);
	printf("plain: %u connections (%u reset mid-transfer), %llu bytes echoed and checked\n", n,
	       resets, (unsigned long long)total);
	st = server_stop(&s, 2000);
	CHECK(st == 0, "plain: server exit status %d", st);
	for (unsigned i = 0; i < n; i++) {
		if (!cls[i].done && cls[i].fd >= 0)
			close(cls[i].fd);
		free(cls[i].data);
	}
	close(ep);
	free(cls);
	free(rbuf);
}

/* ---- sockperf framing ---- */

static void put_frame(uint8_t *f, uint64_t seq, uint16_t flags, uint32_t len)
{
	for (int i = 0; i < 8; i++)
		f[i] = (uint8_t)(seq >> (56 - 8 * i));
	f[8] = (uint8_t)(flags >> 8);
	f[9] = (uint8_t)flags;
	f[10] = (uint8_t)(len >> 24);
	f[11] = (uint8_t)(len >> 16);
	f[12] = (uint8_t)(len >> 8);
	f[13] = (uint8_t)len;
	for (uint32_t i = 14; i < len; i++)
		f[i] = (uint8_t)(seq + i);
}

/* Read exactly @len bytes within @ms; returns bytes read. */
static size_t read_full(int fd, uint8_t *buf, size_t len, int ms)
{
	uint64_t deadline = now_ms() + (uint64_t)ms;
	size_t got = 0;

	while (got < len && now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 50) <= 0)
			continue;
		r = recv(fd, buf + got, len - got, 0);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return got;
}

/* true if the peer closed within @ms (EOF or reset) */
static bool closed_by_peer(int fd, int ms)
{
	uint64_t deadline = now_ms() + (uint64_t)ms;
	uint8_t b[256];

	while (now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 50) <= 0)
			continue;
		r = recv(fd, b, sizeof(b), 0);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			return true;
	}
	return false;
}

static void test_sockperf(void)
{
	const char *extra[] = { "--shards", "1", "--sockperf", NULL };
	uint8_t f[2048], want[2048], got[2048];
	struct server s = { .nofile = 0 };
	int fd, fd2, st;
	size_t off;

	if (server_start(&s, extra)) {
		CHECK(0, "sockperf: server start");
		return;
	}
	fd = connect_to(s.port, false);
	fd2 = connect_to(s.port, false);
	CHECK(fd >= 0 && fd2 >= 0, "sockperf: connect");
	if (fd < 0 || fd2 < 0)
		goto out;

	/* every flag combination; only client|pong (no warm-up) is answered */
	off = 0;
	for (uint16_t flags = 0; flags < 8; flags++) {
		put_frame(f, 100 + flags, flags, 64);
		CHECK(send(fd, f, 64, 0) == 64, "sockperf: send");
		if (flags == 3) {
			memcpy(want, f, 64);
			want[9] = 2; /* client bit cleared */
			off = 64;
		}
	}
	/* then a 1000-byte frame split into 1-byte writes */
	put_frame(f, 7, 3, 1000);
	for (int i = 0; i < 1000; i++)
		CHECK(send(fd, f + i, 1, 0) == 1, "sockperf: send byte %d", i);
	memcpy(want + off, f, 1000);
	want[off + 9] = 2;
	off += 1000;
	CHECK(read_full(fd, got, off, 3000) == off, "sockperf: replies missing");
	CHECK(!memcmp(got, want, off), "sockperf: reply bytes differ");

	/* a frame whose length lies (below the header size) closes that
	 * connection only */
	put_frame(f, 9, 3, 64);
	f[13] = 5;
	CHECK(send(fd2, f, 64, 0) == 64, "sockperf: send malformed");
	CHECK(closed_by_peer(fd2, 3000), "sockperf: malformed frame did not close the connection");
	/* and one longer than 64 KiB too */
	close(fd2);
	fd2 = connect_to(s.port, false);
	put_frame(f, 9, 3, 64);
	f[10] = 0x7f;
	CHECK(send(fd2, f, 64, 0) == 64, "sockperf: send oversized");
	CHECK(closed_by_peer(fd2, 3000), "sockperf: oversized frame did not close the connection");
	/* the first connection is still served */
	put_frame(f, 11, 3, 200);
	memcpy(want, f, 200);
	want[9] = 2;
	CHECK(send(fd, f, 200, 0) == 200, "sockperf: send after malformed");
	CHECK(read_full(fd, got, 200, 3000) == 200 && !memcmp(got, want, 200),
	      "sockperf: good connection not served after another's malformed frame");
	printf("sockperf: flag table, split frame, malformed lengths: checked\n");
out:
	if (fd >= 0)
		close(fd);
	if (fd2 >= 0)
		close(fd2);
	st = server_stop(&s, 2000);
	CHECK(st == 0, "sockperf: server exit status %d", st);
}

/* ---- shutdown mid-transfer ---- */

static void test_shutdown(void)
{
	const char *extra[] = { "--shards", "2", NULL };
	enum { N = 100 };
	int fds[N];
	uint8_t *buf = calloc(1, 256 * 1024);
	struct server s = { .nofile = 0 };
	uint64_t t0;
	int st;

	if (server_start(&s, extra)) {
		CHECK(0, "shutdown: server start");
		free(buf);
		return;
	}
	for (int i = 0; i < N; i++) {
		fds[i] = connect_to(s.port, true);
		/* fill the pipes both ways: we never read */
		if (fds[i] >= 0)
			(void)!send(fds[i], buf, 256 * 1024, MSG_NOSIGNAL);
	}
	usleep(100000);
	t0 = now_ms();
	st = server_stop(&s, 3000);
	CHECK(st == 0, "shutdown: exit status %d", st);
	CHECK(now_ms() - t0 <= 1000, "shutdown: took %llu ms",
	      (unsigned long long)(now_ms() - t0));
	printf("shutdown: SIGTERM with %d busy connections: exit %d in %llu ms\n", N, st,
	       (unsigned long long)(now_ms() - t0));
	for (int i = 0; i < N; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(buf);
}

/* ---- EMFILE: out of descriptors, back off, keep serving ---- */

/* Wait up to @ms for one byte on @fd (non-blocking) and check it is @want. */
static int echo_byte(int fd, uint8_t want, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint8_t b;

	if (poll(&p, 1, ms) != 1)
		return 0;
	if (recv(fd, &b, 1, 0) != 1)
		return -1;
	return b == want ? 1 : -1;
}

/*
 * The server gets a descriptor limit of 32 and 60 clients connect: the
 * kernel completes every handshake, the server accepts until accept fails
 * with EMFILE and the rest wait in the backlog. Those it accepted must
 * echo; as clients close, the server must take the waiting ones in (its
 * accept backs off and re-arms) until every client has had its echo, and
 * its exit stats must count the failed accepts.
 */
static void test_emfile(void)
{
	const char *extra[] = { "--shards", "1", NULL };
	enum { N = 60 };
	struct server s = { .nofile = 32 };
	int fds[N], echoed = 0, first = 0, bad = 0;
	bool done[N] = { false };
	unsigned long long errs = 0;
	const char *e;
	uint64_t deadline;
	int st;

	if (server_start(&s, extra)) {
		CHECK(0, "emfile: server start");
		return;
	}
	for (int i = 0; i < N; i++) {
		fds[i] = connect_to(s.port, true);
		CHECK(fds[i] >= 0, "emfile: connect %d: %s", i, strerror(errno));
		if (fds[i] >= 0)
			CHECK(send(fds[i], &(uint8_t){ (uint8_t)i }, 1, MSG_NOSIGNAL) == 1,
			      "emfile: send %d", i);
	}
	/* Round 1: the accepted ones answer; the rest cannot yet. */
	for (int i = 0; i < N; i++) {
		int r = fds[i] >= 0 ? echo_byte(fds[i], (uint8_t)i, i == 0 ? 2000 : 50) : 0;

		bad += r < 0;
		if (r > 0) {
			done[i] = true;
			first++;
		}
	}
	CHECK(first > 0 && first < N,
	      "emfile: %d of %d clients echoed under a limit of 32 descriptors (want some, not all)",
	      first, N);
	/* Round 2: close the answered ones, one at a time, and collect the
	 * rest as the server takes them in; bounded by count and time. */
	echoed = first;
	deadline = now_ms() + 15000;
	for (int i = 0; i < N; i++)
		if (done[i]) {
			close(fds[i]);
			fds[i] = -1;
		}
	while (echoed < N && now_ms() < deadline) {
		for (int i = 0; i < N; i++) {
			int r;

			if (done[i] || fds[i] < 0)
				continue;
			r = echo_byte(fds[i], (uint8_t)i, 10);
			bad += r < 0;
			if (r != 0) {
				done[i] = true;
				echoed++;
				close(fds[i]); /* makes room for the next */
				fds[i] = -1;
			}
		}
	}
	CHECK(bad == 0, "emfile: %d wrong echoes", bad);
	CHECK(echoed == N, "emfile: %d of %d clients echoed within 15 s of closing the first %d",
	      echoed, N, first);
	for (int i = 0; i < N; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	st = server_stop(&s, 3000);
	CHECK(st == 0, "emfile: server exit status %d", st);
	e = strstr(s.log, "accept_errors ");
	CHECK(e && sscanf(e, "accept_errors %llu", &errs) == 1 && errs > 0,
	      "emfile: exit stats do not count failed accepts: %.200s", e ? e : s.log);
	printf("emfile: limit 32: %d of %d clients served at once, all %d after closes; %llu failed accepts counted\n",
	       first, N, echoed, errs);
}

int main(int argc, char **argv)
{
	struct rlimit rl;

	if (argc != 2) {
		fprintf(stderr, "usage: test_echo RINGPLANE_BINARY\n");
		return 2;
	}
	bin = argv[1];
	signal(SIGPIPE, SIG_IGN);
	/* 1000 client sockets */
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	test_sockperf();
	test_shutdown();
	test_emfile();
	test_plain();
	printf("%s (%d failures)\n", failures ? "FAILED" : "OK", failures);
	return failures ? 1 : 0;
}
