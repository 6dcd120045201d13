/* SPDX-License-Identifier: MIT */
/*
 * test_drain RINGPLANE_BINARY: SIGQUIT's graceful drain (server.h) on real
 * servers with real clients on 127.0.0.1.
 * serve: an 8 MB download read at a throttled pace, mid-body at SIGQUIT,
 * completes byte-exact and then EOF; an idle keep-alive connection gets
 * EOF within 1 s; a new connect is refused within 1 s; the server exits 0
 * once the last client is done, well before --drain-timeout. A client that
 * stops reading holds the drain until --drain-timeout 2: exit 0 then.
 * relay (upstream: `ringplane echo`): a stream mid-transfer at SIGQUIT
 * completes byte-exact both ways, a new connect is refused, and the relay
 * exits 0 after the stream ends. echo: a connection open at SIGQUIT still
 * echoes, a new connect is refused, the exit follows its close. While
 * draining, the stats lines (SIGUSR1) count the connections the drain
 * waits for ("live"), and the exit's lines count none.
 * Connections the kernel completed but the server had not accepted at the
 * SIGQUIT (the faults build keeps every accept down: RP_APP_FAULT_START,
 * RP_APP_FAULT_REARM; skipped elsewhere): serve gives each its whole
 * answer with Connection: close then EOF, echo and relay give each its
 * bytes back then EOF after its half-close, none is reset, and the exit
 * (0) follows the last. serve: a connection accepted before the SIGQUIT
 * whose first request comes after it is answered (its last), not closed
 * as an idle keep-alive one. Out of descriptors at the drain (the same,
 * under a limit of 40 descriptors): the drain takes in what fits, keeps
 * the listener open and takes in the rest as the clients it served close;
 * every client answered (serve: Connection: close; echo, relay: its bytes
 * back) then EOF, none reset, exit 0. When no descriptor ever comes back
 * the drain ends at --drain-timeout (exit 0), the queue reset and counted
 * (drain_reset). serve on 1, 2 and 4 shards with 8 distinct files (each
 * shard's first open of each needs descriptors): every queued client 200
 * with Connection: close, no 503. serve whose accepts a real EMFILE
 * stopped before the SIGQUIT (every build): the drain takes in the queue
 * as descriptors free up, each 200 with Connection: close. Requests that
 * wait for a descriptor no client gives back end at --drain-timeout,
 * closed unanswered (EOF, counted in open_wait_closed), exit 0. Outside a
 * drain (every build): out of descriptors, an open gets the cache's
 * unheld files, then the descriptors of lingering connections, before a
 * 503; when the one lingering connection ended frees one descriptor of the
 * two a file's first open takes, the retry after its close is a complete
 * 503 (keep-alive) and the server serves again once a client leaves. A
 * stop or a drain while requests wait for such a close (the shard thread
 * held by ptrace at the shed's SIOCOUTQ while the signal is taken):
 * SIGTERM closes them unanswered (EOF, counted); SIGQUIT lets them wait
 * for a descriptor as the drain's requests do, then 200 with Connection:
 * close, or closed unanswered at --drain-timeout. relay --accept-proxy
 * drained at its descriptor limit with clients in the header wait and its
 * reserve lent: the listener closed though no spare descriptor can be had
 * (a new connect refused, its descriptor to the waiting client), every
 * relayed byte whole, the silent clients closed at their header timeout
 * and counted, the descriptors back, exit 0; at the drain's deadline the
 * silent ones closed (EOF), not counted as refusals. A shed_wait's retry whose
 * freed descriptor another shard's accept took first: one complete 503
 * to it, its own answer to the new client. Every wait is bounded.
 * `test_drain BINARY CASE...` runs the named cases only.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "test_util.h"
#include "test_child.h"

#define BIG_LEN (8u << 20)

/* RP_APP_FAULT_START and RP_APP_FAULT_REARM (apps/server.c) exist in the
 * faults build only: the queued cases need them. */
#ifdef RP_FAULTS
#define HOOKS 1
#else
#define HOOKS 0
#endif

/* A queued case's first step: true in the faults build; elsewhere it prints
 * "@name: SKIP: needs ... (faults build)" and the case returns with nothing
 * checked (a skipped case, said so on stdout; the run's result is the other
 * cases'). */
static bool need_hooks(const char *name)
{
	if (HOOKS)
		return true;
	printf("%s: SKIP: needs RP_APP_FAULT_START and RP_APP_FAULT_REARM (faults build)\n",
	       name);
	return false;
}

/* Clients left in the listeners' queues at the SIGQUIT; each sends
 * QUEUED_LEN bytes (echo, relay). */
enum { QUEUED = 64, QUEUED_LEN = 16384 };

static char root[96];
static char small[64];
static unsigned char *big;

/* Wait up to @ms for @fd readable; then one recv into @buf. -2: timeout. */
static ssize_t recv_wait(int fd, void *buf, size_t len, unsigned ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t r;

	if (poll(&p, 1, (int)ms) <= 0)
		return -2;
	r = recv(fd, buf, len, MSG_DONTWAIT);
	return r < 0 ? -errno : r;
}

/* A connect after the drain began: refused, or reset at once (1 s). */
static bool refused(int port)
{
	char b;
	int fd = dial(port);
	ssize_t r;

	if (fd < 0)
		return true;
	r = recv_wait(fd, &b, 1, 1000);
	close(fd);
	return r == -ECONNRESET || r == 0;
}

/* The sum of "live N" (a shard's connections: what the drain waits for)
 * over the stats lines @c printed after @from, once @shards whole lines
 * with it are there (2 s); -1 if they are not. */
static long long live_since(struct child *c, size_t from, unsigned shards)
{
	uint64_t end = now_ms() + 2000;

	for (;;) {
		unsigned lines = 0;

		for (const char *p = c->log + from, *nl; (nl = strchr(p, '\n')); p = nl + 1)
			if (memmem(p, (size_t)(nl - p), " live ", 6))
				lines++;
		if (lines >= shards)
			return (long long)stat_sum(c->log + from, "live");
		if (now_ms() >= end)
			return -1;
		child_drain(c, NULL, 20);
	}
}

/* SIGUSR1: the stats lines, and the connections live now in all. */
static long long live_now(struct child *c, unsigned shards)
{
	size_t from = c->len;

	kill(c->pid, SIGUSR1);
	return live_since(c, from, shards);
}

/* Send GET /@path on @fd, @hdrs (more header lines, each ending in CRLF;
 * "" for none) in its head: 0, or -1. */
static int send_get(int fd, const char *path, const char *hdrs)
{
	char req[256];
	int n = snprintf(req, sizeof(req), "GET /%s HTTP/1.1\r\nHost: t\r\n%s\r\n", path, hdrs);

	if (n <= 0 || (size_t)n >= sizeof(req))
		return -1;
	return send(fd, req, (size_t)n, MSG_NOSIGNAL) == n ? 0 : -1;
}

/* send_get, then read until the answer's head is whole, by @end (now_ms):
 * the bytes read into @buf (@cap, NUL-terminated: the head and what came
 * of the body), the head's in *@hlen; -1 on a failure or at @end. */
static ssize_t get_head(int fd, const char *path, const char *hdrs, char *buf, size_t cap,
			size_t *hlen, uint64_t end)
{
	size_t have = 0;
	char *e = NULL;

	if (send_get(fd, path, hdrs))
		return -1;
	while (!e) {
		ssize_t r;

		if (now_ms() >= end || have >= cap - 1)
			return -1;
		r = recv_wait(fd, buf + have, cap - 1 - have, (unsigned)(end - now_ms()));
		if (r <= 0)
			return -1;
		have += (size_t)r;
		buf[have] = 0;
		e = strstr(buf, "\r\n\r\n");
	}
	*hlen = (size_t)(e + 4 - buf);
	return (ssize_t)have;
}

/* Send GET /@path and read the head (into @head) and at most @max bytes of
 * the body into @body (5 s); returns the body bytes read, -1 on error. */
static ssize_t get_start(int fd, const char *path, char *head, size_t hcap, unsigned char *body,
			 size_t max)
{
	char buf[65536];
	size_t hl;
	ssize_t n = get_head(fd, path, "", buf, sizeof(buf), &hl, now_ms() + 5000);

	if (n < 0 || (size_t)n - hl > max)
		return -1;
	snprintf(head, hcap, "%.*s", (int)hl, buf);
	memcpy(body, buf + hl, (size_t)n - hl);
	return n - (ssize_t)hl;
}

/* One GET /@path on @fd (@hdrs as send_get's) and its whole answer, within
 * @ms: the status (0: none came whole), Content-Length bytes of body into
 * @body (at most @cap), *@closing when it says Connection: close. The
 * body's length, or -1. */
static ssize_t get_one(int fd, const char *path, const char *hdrs, int *status, char *body,
		       size_t cap, bool *closing, unsigned ms)
{
	char buf[4096];
	size_t hlen, clen;
	uint64_t end = now_ms() + ms;
	ssize_t have = get_head(fd, path, hdrs, buf, sizeof(buf), &hlen, end);
	const char *cl;

	*status = 0;
	*closing = false;
	if (have < 0)
		return -1;
	cl = strcasestr(buf, "\r\nContent-Length: ");
	if (strncmp(buf, "HTTP/1.1 ", 9) || !cl || cl > buf + hlen)
		return -1;
	clen = strtoul(cl + 18, NULL, 10);
	*closing = strcasestr(buf, "\r\nConnection: close\r\n") != NULL;
	if (clen > cap || (size_t)have - hlen > clen)
		return -1;
	memcpy(body, buf + hlen, (size_t)have - hlen);
	for (size_t got = (size_t)have - hlen; got < clen;) {
		ssize_t r;

		if (now_ms() >= end)
			return -1;
		r = recv_wait(fd, body + got, clen - got, (unsigned)(end - now_ms()));
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	*status = atoi(buf + 9);
	return (ssize_t)clen;
}

/* Read @fd into @buf until EOF (@ms): the bytes read, or -errno (a reset:
 * -ECONNRESET), -ETIMEDOUT when no EOF came in time, -ENOSPC when @cap
 * filled first. */
static ssize_t read_to_eof_ms(int fd, char *buf, size_t cap, unsigned ms)
{
	int end;
	size_t n = read_upto(fd, buf, cap, ms, &end);

	return end == 0 ? (ssize_t)n : end == READ_FULL ? -ENOSPC : end;
}

/* read_to_eof_ms within 10 s. */
static ssize_t read_to_eof(int fd, char *buf, size_t cap)
{
	return read_to_eof_ms(fd, buf, cap, 10000);
}

/* @buf (@n bytes, NUL-terminated) is exactly one answer a drain owes: 200
 * with Connection: close and Content-Length @len, then @len bytes of @body. */
static bool closing_200(const char *buf, size_t n, const char *body, size_t len)
{
	const char *e = strstr(buf, "\r\n\r\n");
	char want[64];

	snprintf(want, sizeof(want), "\r\nContent-Length: %zu\r\n", len);
	return e && !strncmp(buf, "HTTP/1.1 200 ", 13) && strstr(buf, "\r\nConnection: close\r\n") &&
	       strstr(buf, want) && n == (size_t)(e + 4 - buf) + len && !memcmp(e + 4, body, len);
}

/* Read into @body from @got up to @len at a throttled pace (32 KB a
 * 10 ms), then expect EOF; the bytes read in all. */
static size_t read_rest(int fd, unsigned char *body, size_t got, size_t len)
{
	uint64_t end = now_ms() + 30000;

	while (got < len && now_ms() < end) {
		size_t want = len - got < 32768 ? len - got : 32768;
		ssize_t r = recv_wait(fd, body + got, want, 2000);

		if (r <= 0)
			break;
		got += (size_t)r;
		usleep(10000);
	}
	return got;
}

static void test_serve_drain(void)
{
	const char *args[] = { "serve", "--listen", "127.0.0.1:0", "--root", root, "--shards",
			       "2", "--no-pin", "--drain-timeout", "20", NULL };
	unsigned char *got = malloc(BIG_LEN);
	char head[1024], b[256];
	struct child c = { 0 };
	int idle, dl, rcv = 65536, st;
	long long live;
	ssize_t n;
	size_t total, from;
	uint64_t t0, t1;

	if (!got || child_start(&c, args)) {
		CHECK(0, "serve did not start");
		free(got);
		return;
	}
	idle = dial(c.port);
	n = idle >= 0 ? get_start(idle, "small.txt", head, sizeof(head), (unsigned char *)b,
				  sizeof(b)) :
			-1;
	CHECK(n >= 0 && strstr(head, "200 OK"), "idle connection's first answer");
	dl = dial_rcvbuf(c.port, rcv); /* keep the body in the server */
	CHECK(dl >= 0, "download connect");
	n = get_start(dl, "big.bin", head, sizeof(head), got, BIG_LEN);
	CHECK(n >= 0 && strstr(head, "200 OK") && strstr(head, "Content-Length: 8388608"),
	      "download head: %s", head);
	total = read_rest(dl, got, n > 0 ? (size_t)n : 0, 512 * 1024);
	CHECK(total < BIG_LEN / 2, "mid-body at SIGQUIT (%zu read)", total);

	t0 = now_ms();
	kill(c.pid, SIGQUIT);
	n = recv_wait(idle, b, sizeof(b), 1000);
	CHECK(n == 0, "idle keep-alive connection: EOF within 1 s of SIGQUIT (got %zd after %llu ms)",
	      n, (unsigned long long)(now_ms() - t0));
	/* the download, and the idle one lingering until its client's EOF */
	live = live_now(&c, 2);
	CHECK(live == 2, "serve: %lld connections live while draining, not 2", live);
	usleep(100000);
	CHECK(refused(c.port), "a new connect after SIGQUIT is refused");
	CHECK(now_ms() - t0 < 1500, "refused within 1 s");

	total = read_rest(dl, got, total, BIG_LEN);
	CHECK(total == BIG_LEN && !memcmp(got, big, BIG_LEN), "download byte-exact (%zu of %u)",
	      total, BIG_LEN);
	n = recv_wait(dl, b, sizeof(b), 3000);
	CHECK(n == 0, "EOF after the download's last byte (got %zd)", n);
	t1 = now_ms();
	close(dl);
	close(idle);
	from = c.len;
	st = child_exit(&c, 5000);
	CHECK(st == 0, "serve exits 0 after the drain (status %d)", st);
	live = live_since(&c, from, 2);
	CHECK(live == 0, "serve: %lld connections live at the exit", live);
	printf("serve drain: download ended %llu ms after SIGQUIT, exit %llu ms after the last "
	       "client (--drain-timeout 20)\n",
	       (unsigned long long)(t1 - t0), (unsigned long long)(now_ms() - t1));
	CHECK(now_ms() - t1 < 3000, "exit well before --drain-timeout");
	free(got);
}

/*
 * A client that keeps its pipeline full (16 ranges of 1 MB out, a new one
 * for each answer, a 64 KB receive buffer) must not hold the drain to its
 * timeout: every answer after the SIGQUIT says Connection: close, so the
 * first one ends the connection (what was pipelined behind it is dropped,
 * for the client to retry, RFC 9112 9.3.2). A review's client held the
 * drain of the code before (only the last request buffered got that
 * header) to its timeout; this one did not reproduce that here (the
 * server ran ahead of it and went idle), so it guards the end only.
 */
static void test_serve_drain_pipelined(void)
{
	enum { DEPTH = 16, PART = 1 << 20 };
	const char *args[] = { "serve", "--listen", "127.0.0.1:0", "--root", root, "--shards",
			       "1", "--no-pin", "--drain-timeout", "10", NULL };
	static const char req[] = "GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1048575\r\n\r\n";
	char head[2048], buf[65536];
	size_t hlen = 0, body_left = 0, body_at = 0;
	struct child c = { 0 };
	unsigned answered = 0, after = 0, bad = 0;
	bool quit = false, closed_hdr = false, eof = false, last = false;
	uint64_t t0, tq = 0;
	int fd, st, rcv = 65536;

	if (child_start(&c, args)) {
		CHECK(0, "serve did not start");
		return;
	}
	fd = dial_rcvbuf(c.port, rcv);
	CHECK(fd >= 0, "pipelined: connect");
	for (int i = 0; i < DEPTH; i++)
		(void)send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL);
	t0 = now_ms();
	while (now_ms() - t0 < 8000) {
		ssize_t r = recv_wait(fd, buf, sizeof(buf), 200);
		size_t at = 0;

		if (!quit && now_ms() - t0 >= 300) {
			kill(c.pid, SIGQUIT);
			quit = true;
			tq = now_ms();
		}
		if (r == 0) {
			eof = true;
			break;
		}
		if (r < 0 && r != -2)
			break;
		/* a stream of answers: a head, then its body of PART bytes */
		while (r > 0 && at < (size_t)r) {
			if (body_left) {
				size_t n = (size_t)r - at < body_left ? (size_t)r - at : body_left;

				bad += memcmp(buf + at, big + body_at, n) != 0;
				at += n;
				body_at += n;
				body_left -= n;
				if (!body_left) {
					answered++;
					after += quit;
					if (last)
						closed_hdr = true;
					else if (!closed_hdr)
						(void)send(fd, req, sizeof(req) - 1,
							   MSG_NOSIGNAL | MSG_DONTWAIT);
				}
				continue;
			}
			if (hlen == sizeof(head) - 1) {
				bad++;
				break;
			}
			head[hlen++] = buf[at++];
			head[hlen] = 0;
			if (hlen >= 4 && !memcmp(head + hlen - 4, "\r\n\r\n", 4)) {
				bad += strncmp(head, "HTTP/1.1 206", 12) != 0;
				last = strstr(head, "Connection: close") != NULL;
				body_left = PART;
				body_at = 0;
				hlen = 0;
			}
		}
	}
	CHECK(bad == 0, "pipelined: %u answers not the file's first 1 MB", bad);
	/* the end: EOF after whole answers (the last with Connection: close,
	 * or, when the server had answered all it held before the SIGQUIT
	 * reached it, the FIN behind them), long before --drain-timeout */
	CHECK(quit && eof && !body_left && !hlen,
	      "pipelined: %u answers, %u after SIGQUIT, EOF %s within 8 s, %zu body bytes and "
	      "%zu head bytes of an answer cut short",
	      answered, after, eof ? "seen" : "never", body_left, hlen);
	st = child_exit(&c, 5000);
	CHECK(st == 0 && now_ms() - tq < 8000, "pipelined: exit status %d %llu ms after SIGQUIT", st,
	      (unsigned long long)(now_ms() - tq));
	printf("serve drain: a client keeping %d 1 MB ranges pipelined: %u answers (%u after "
	       "SIGQUIT), Connection: close %s, EOF %s, exit %d %llu ms after SIGQUIT "
	       "(--drain-timeout 10)\n",
	       DEPTH, answered, after, closed_hdr ? "seen" : "never", eof ? "seen" : "never", st,
	       (unsigned long long)(now_ms() - tq));
	close(fd);
}

static void test_serve_drain_timeout(void)
{
	const char *args[] = { "serve", "--listen", "127.0.0.1:0", "--root", root, "--shards",
			       "1", "--no-pin", "--drain-timeout", "2", NULL };
	unsigned char *got = malloc(BIG_LEN);
	char head[1024];
	struct child c = { 0 };
	int dl, rcv = 65536, st;
	uint64_t t0, dt;
	ssize_t n;

	if (!got || child_start(&c, args)) {
		CHECK(0, "serve did not start");
		free(got);
		return;
	}
	dl = dial_rcvbuf(c.port, rcv);
	CHECK(dl >= 0, "download connect");
	n = get_start(dl, "big.bin", head, sizeof(head), got, BIG_LEN);
	CHECK(n >= 0 && strstr(head, "200 OK"), "download head");
	usleep(200000); /* and never read again */
	t0 = now_ms();
	kill(c.pid, SIGQUIT);
	st = child_exit(&c, 8000);
	dt = now_ms() - t0;
	printf("serve drain timeout: a client that stopped reading, exit %llu ms after SIGQUIT "
	       "(--drain-timeout 2)\n",
	       (unsigned long long)dt);
	CHECK(st == 0, "exit 0 at --drain-timeout (status %d)", st);
	CHECK(dt >= 1900 && dt < 5000, "exit at --drain-timeout 2 s (%llu ms)",
	      (unsigned long long)dt);
	close(dl);
	free(got);
}

/* Through the relay to `ringplane echo`: write @len bytes, read them back,
 * SIGQUIT to the relay once @quit_at were written; then a half-close and
 * everything back before EOF. */
static void test_relay_drain(void)
{
	const char *eargs[] = { "echo", "--listen", "127.0.0.1:0", "--shards", "1", "--no-pin",
				NULL };
	char up[64];
	const char *rargs[] = { "relay", "--listen", "127.0.0.1:0", "--upstream", up, "--shards",
				"2", "--no-pin", "--drain-timeout", "20", NULL };
	const size_t len = 4u << 20, quit_at = 1u << 20;
	unsigned char *back = malloc(len);
	struct child e = { 0 }, r = { 0 };
	size_t sent = 0, recvd = 0, back_at_quit = 0, from;
	bool quit = false, shut = false, eof = false;
	long long live = -1;
	uint64_t end, t0 = 0, t1;
	int fd, st;

	if (!back || child_start(&e, eargs)) {
		CHECK(0, "echo did not start");
		free(back);
		return;
	}
	snprintf(up, sizeof(up), "127.0.0.1:%d", e.port);
	if (child_start(&r, rargs)) {
		CHECK(0, "relay did not start");
		child_stop(&e, 5000);
		free(back);
		return;
	}
	fd = dial(r.port);
	CHECK(fd >= 0, "dial the relay");
	end = now_ms() + 30000;
	while (fd >= 0 && !eof && now_ms() < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN | (sent < len ? POLLOUT : 0) };

		if (poll(&p, 1, 1000) <= 0)
			continue;
		if (p.revents & POLLOUT) {
			/* 16 KB at a time: the stream is mid-transfer for a while */
			size_t w = len - sent < 16384 ? len - sent : 16384;
			ssize_t k = send(fd, big + sent, w, MSG_DONTWAIT);

			if (k > 0)
				sent += (size_t)k;
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t k = recv(fd, back + recvd, len - recvd, MSG_DONTWAIT);

			if (k == 0 || (k < 0 && errno != EAGAIN))
				eof = true;
			else if (k > 0)
				recvd += (size_t)k;
		}
		if (!quit && sent >= quit_at) {
			quit = true;
			back_at_quit = recvd;
			t0 = now_ms();
			kill(r.pid, SIGQUIT);
			usleep(100000);
			CHECK(refused(r.port), "a new connect to the draining relay is refused");
			live = live_now(&r, 2);
			CHECK(live == 1, "relay: %lld connections live while draining, not 1",
			      live);
		}
		if (sent == len && !shut) {
			shut = true;
			shutdown(fd, SHUT_WR); /* echo answers with its own EOF */
		}
		usleep(1000);
	}
	CHECK(quit && back_at_quit < len, "SIGQUIT mid-transfer (%zu of %zu back)", back_at_quit,
	      len);
	CHECK(eof && recvd == len && !memcmp(back, big, len),
	      "relayed stream byte-exact both ways (%zu sent, %zu back, eof %d)", sent, recvd,
	      eof);
	t1 = now_ms();
	if (fd >= 0)
		close(fd);
	from = r.len;
	st = child_exit(&r, 5000);
	CHECK(st == 0, "relay exits 0 after the drain (status %d)", st);
	live = live_since(&r, from, 2);
	CHECK(live == 0, "relay: %lld connections live at the exit", live);
	printf("relay drain: stream ended %llu ms after SIGQUIT, exit %llu ms after\n",
	       (unsigned long long)(t1 - t0), (unsigned long long)(now_ms() - t1));
	CHECK(now_ms() - t1 < 3000, "relay exits soon after the stream ends");
	st = child_stop(&e, 5000);
	CHECK(st == 0, "echo exits 0 on SIGTERM (status %d)", st);
	free(back);
}

/* echo: a connection open at SIGQUIT still echoes, a new connect is
 * refused, and the exit (0) follows the peer's close. */
static void test_echo_drain(void)
{
	const char *args[] = { "echo", "--listen", "127.0.0.1:0", "--shards", "2", "--no-pin",
			       "--drain-timeout", "20", NULL };
	struct child c = { 0 };
	char b[64];
	uint64_t t1;
	long long live;
	size_t from;
	ssize_t n;
	int fd, st;

	if (child_start(&c, args)) {
		CHECK(0, "echo did not start");
		return;
	}
	fd = dial(c.port);
	CHECK(fd >= 0 && send(fd, "ping", 4, 0) == 4, "echo: first write");
	n = fd >= 0 ? (ssize_t)read_upto(fd, b, 4, 2000, NULL) : -1;
	CHECK(n == 4 && !memcmp(b, "ping", 4), "echo: first answer");
	kill(c.pid, SIGQUIT);
	usleep(200000);
	CHECK(refused(c.port), "echo: a new connect after SIGQUIT is refused");
	CHECK(fd >= 0 && send(fd, "pong", 4, 0) == 4, "echo: write while draining");
	n = fd >= 0 ? (ssize_t)read_upto(fd, b, 4, 2000, NULL) : -1;
	CHECK(n == 4 && !memcmp(b, "pong", 4), "echo: a connection goes on while draining (%zd)",
	      n);
	live = live_now(&c, 2);
	CHECK(live == 1, "echo: %lld connections live while draining, not 1", live);
	t1 = now_ms();
	if (fd >= 0)
		close(fd);
	from = c.len;
	st = child_exit(&c, 5000);
	CHECK(st == 0 && now_ms() - t1 < 3000, "echo exits 0 after its peer closed (status %d)",
	      st);
	live = live_since(&c, from, 2);
	CHECK(live == 0, "echo: %lld connections live at the exit", live);
}

/*
 * serve: a connection accepted before the SIGQUIT whose first request is
 * sent after it is not an idle keep-alive connection (its client has no
 * reason to retry that request elsewhere): its answer comes, whole, with
 * Connection: close, then EOF. The drain before closed it with the idle
 * ones (EOF and no answer).
 */
static void test_serve_drain_fresh(void)
{
	const char *args[] = { "serve", "--listen", "127.0.0.1:0", "--root", root, "--shards",
			       "1", "--no-pin", "--drain-timeout", "10", NULL };
	struct child c = { 0 };
	char buf[1024];
	ssize_t n = -1;
	int fd, st;

	if (child_start(&c, args)) {
		CHECK(0, "serve did not start");
		return;
	}
	fd = dial(c.port);
	CHECK(fd >= 0, "fresh: connect");
	usleep(200000); /* accepted by now: the accept is up */
	kill(c.pid, SIGQUIT);
	usleep(200000); /* the drain began */
	/* the answer and the EOF behind it within 3 s, not at --drain-timeout */
	if (fd >= 0 && !send_get(fd, "small.txt", ""))
		n = read_to_eof_ms(fd, buf, sizeof(buf) - 1, 3000);
	if (n >= 0)
		buf[n] = 0;
	CHECK(n > 0 && closing_200(buf, (size_t)n, small, sizeof(small)),
	      "fresh: a request sent after SIGQUIT on a connection accepted before it: whole "
	      "answer with Connection: close then EOF within 3 s (%zd): %.80s",
	      n, n > 0 ? buf : "");
	if (fd >= 0)
		close(fd);
	st = child_exit(&c, 5000);
	CHECK(st == 0, "fresh: serve exits 0 (status %d)", st);
}

/* Start @args with every shard's accept down for good (the faults build's
 * hooks): what connects waits in the listener's queue. 0, or -1. */
static int start_not_accepting(struct child *c, const char *const *args)
{
	int st;

	setenv("RP_APP_FAULT_START", "64", 1);
	setenv("RP_APP_FAULT_REARM", "1000000", 1);
	st = child_start(c, args);
	unsetenv("RP_APP_FAULT_START");
	unsetenv("RP_APP_FAULT_REARM");
	return st;
}

/* True when none of @fds (-1: left out) has anything to read within @ms. */
static bool none_readable(const int *fds, int n, unsigned ms)
{
	uint64_t end = now_ms() + ms;
	bool quiet = true;

	while (quiet && now_ms() < end) {
		for (int i = 0; i < n && quiet; i++) {
			struct pollfd p = { .fd = fds[i], .events = POLLIN };

			if (fds[i] >= 0 && poll(&p, 1, 0) > 0)
				quiet = false;
		}
		usleep(10000);
	}
	return quiet;
}

/* @n clients of @port into @fds, each sending @req (@len bytes; NULL: the
 * QUEUED_LEN bytes of big at its own offset); then true when none of them
 * has anything to read within @ms (the server accepted none). */
static bool queue_clients(int port, int *fds, int n, const char *req, size_t len, unsigned ms)
{
	for (int i = 0; i < n; i++) {
		const void *p = req ? (const void *)req : big + (size_t)i * QUEUED_LEN;

		fds[i] = dial(port);
		if (fds[i] >= 0 && send(fds[i], p, req ? len : QUEUED_LEN, MSG_NOSIGNAL) !=
					   (ssize_t)(req ? len : QUEUED_LEN)) {
			close(fds[i]);
			fds[i] = -1;
		}
	}
	return none_readable(fds, n, ms);
}

/*
 * serve with its accepts down: QUEUED clients connect (the kernel
 * completes each handshake and queues it) and send a GET; none is
 * answered. At SIGQUIT each must get the whole answer, Connection: close,
 * then EOF; none reset; exit 0 after. The drain before shut the
 * listeners with them queued: every one reset.
 */
static void test_serve_drain_queued(void)
{
	const char *args[] = { "serve", "--listen", "127.0.0.1:0", "--root", root, "--shards",
			       "2", "--no-pin", "--drain-timeout", "20", NULL };
	static const char req[] = "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n";
	int fds[QUEUED], whole = 0, reset = 0, st;
	char buf[4096];
	struct child c = { 0 };
	uint64_t t0;

	if (!need_hooks("serve drain queued"))
		return;
	if (start_not_accepting(&c, args)) {
		CHECK(0, "serve did not start");
		return;
	}
	CHECK(queue_clients(c.port, fds, QUEUED, req, sizeof(req) - 1, 300),
	      "queued serve: a client was answered with every accept down");
	t0 = now_ms();
	kill(c.pid, SIGQUIT);
	for (int i = 0; i < QUEUED; i++) {
		ssize_t n = fds[i] >= 0 ? read_to_eof(fds[i], buf, sizeof(buf) - 1) : -1;

		if (n >= 0)
			buf[n] = 0;
		reset += n == -ECONNRESET;
		if (n > 0 && closing_200(buf, (size_t)n, small, sizeof(small)))
			whole++;
		else
			fprintf(stderr, "queued serve client %d: %zd: %.200s\n", i, n,
				n > 0 ? buf : "");
		if (fds[i] >= 0)
			close(fds[i]);
	}
	CHECK(whole == QUEUED && !reset,
	      "queued serve: %d of %d whole answers with Connection: close then EOF, %d reset",
	      whole, QUEUED, reset);
	st = child_exit(&c, 5000);
	CHECK(st == 0, "queued serve: exit status %d", st);
	printf("serve drain: %d connections queued at SIGQUIT (2 shards, accepts down): %d whole "
	       "answers then EOF, %d reset, exit %d %llu ms after SIGQUIT\n",
	       QUEUED, whole, reset, st, (unsigned long long)(now_ms() - t0));
}

/* Each of @fds sent its QUEUED_LEN bytes of big: read them back (10 s),
 * half-close, then expect EOF. The count of clients that got all that;
 * *@reset those reset. */
static int echoed_then_eof(int *fds, int n, int *reset)
{
	static char back[QUEUED_LEN + 1];
	int good = 0;

	*reset = 0;
	for (int i = 0; i < n; i++) {
		size_t got;
		int end;
		ssize_t r;

		if (fds[i] < 0)
			continue;
		got = read_upto(fds[i], back, QUEUED_LEN, 10000, &end);
		r = end; /* READ_FULL, else how the echo ended short */
		if (got == QUEUED_LEN && !memcmp(back, big + (size_t)i * QUEUED_LEN, QUEUED_LEN)) {
			shutdown(fds[i], SHUT_WR);
			r = read_to_eof(fds[i], back, sizeof(back));
			good += r == 0;
		}
		*reset += r == -ECONNRESET;
		if (got != QUEUED_LEN || r != 0)
			fprintf(stderr, "queued client %d: %zu of %u back, then %zd\n", i, got,
				(unsigned)QUEUED_LEN, r);
		close(fds[i]);
		fds[i] = -1;
	}
	return good;
}

/* The queued cases of echo and relay (@c started with every accept down):
 * QUEUED clients connect and send, none is @verb; at SIGQUIT each gets its
 * bytes back byte-exact then EOF after its half-close, none reset, exit 0. */
static void drain_queued_echoed(struct child *c, const char *name, const char *verb)
{
	int fds[QUEUED], good, reset, st;
	uint64_t t0;

	CHECK(queue_clients(c->port, fds, QUEUED, NULL, 0, 300),
	      "queued %s: a client was %s with every accept down", name, verb);
	t0 = now_ms();
	kill(c->pid, SIGQUIT);
	good = echoed_then_eof(fds, QUEUED, &reset);
	CHECK(good == QUEUED && !reset,
	      "queued %s: %d of %d %s byte-exact then EOF after the half-close, %d reset", name,
	      good, QUEUED, verb, reset);
	st = child_exit(c, 5000);
	CHECK(st == 0, "queued %s: exit status %d", name, st);
	printf("%s drain: %d connections queued at SIGQUIT (2 shards, accepts down): %d %s "
	       "%u bytes then EOF, %d reset, exit %d %llu ms after SIGQUIT\n",
	       name, QUEUED, good, verb, (unsigned)QUEUED_LEN, reset, st,
	       (unsigned long long)(now_ms() - t0));
}

/* echo with its accepts down: QUEUED clients connect and send; none is
 * echoed. At SIGQUIT each gets its bytes back byte-exact, then EOF after
 * its half-close; none reset; exit 0 after the last. */
static void test_echo_drain_queued(void)
{
	const char *args[] = { "echo", "--listen", "127.0.0.1:0", "--shards", "2", "--no-pin",
			       "--drain-timeout", "20", NULL };
	struct child c = { 0 };

	if (!need_hooks("echo drain queued"))
		return;
	if (start_not_accepting(&c, args)) {
		CHECK(0, "echo did not start");
		return;
	}
	drain_queued_echoed(&c, "echo", "echoed");
}

/* The kinds of queued clients drive_queued drives. */
enum qkind { Q_ECHOED, Q_SERVED };

/*
 * Every client of @fds at once (poll, 20 s in all): read until EOF; an
 * echoed one (echo, relay) half-closes once its QUEUED_LEN bytes are back,
 * a served one only reads; each closes at its EOF, so the descriptors its
 * connection held in the server come back while the others still wait.
 * @hold: nobody half-closes (the clients never finish). A served one's
 * body is @bodies[i] (sizeof(small) bytes; @bodies NULL: small). Returns
 * the clients that got all they should (byte-exact, and for serve the
 * whole answer, 200 with Connection: close) then EOF; *@reset those reset,
 * *@eof those that saw EOF with less.
 */
static int drive_queued(int *fds, int n, enum qkind kind, bool hold, const char *const *bodies,
			int *reset, int *eof)
{
	static char bufs[QUEUED][QUEUED_LEN + 4096];
	size_t got[QUEUED] = { 0 }, cap = sizeof(bufs[0]);
	bool shut[QUEUED] = { false }, done[QUEUED] = { false };
	uint64_t end = now_ms() + 20000;
	int good = 0, left = 0;

	*reset = *eof = 0;
	for (int i = 0; i < n; i++) {
		done[i] = fds[i] < 0;
		left += !done[i];
	}
	while (left && now_ms() < end) {
		struct pollfd p[QUEUED];
		int k = 0, map[QUEUED];

		for (int i = 0; i < n; i++)
			if (!done[i]) {
				p[k] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
				map[k++] = i;
			}
		if (poll(p, (nfds_t)k, 100) <= 0)
			continue;
		for (int j = 0; j < k; j++) {
			int i = map[j];
			ssize_t r;

			if (!p[j].revents)
				continue;
			r = recv(fds[i], bufs[i] + got[i], cap - got[i], MSG_DONTWAIT);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r > 0) {
				got[i] += (size_t)r;
				if (kind == Q_ECHOED && !hold && !shut[i] && got[i] >= QUEUED_LEN) {
					shut[i] = true;
					shutdown(fds[i], SHUT_WR);
				}
				if (got[i] < cap)
					continue;
			}
			done[i] = true;
			left--;
			if (r < 0) {
				*reset += errno == ECONNRESET;
				fprintf(stderr, "queued client %d: %zu bytes then %s\n", i, got[i],
					strerror(errno));
			} else if (kind == Q_ECHOED) {
				bool ok = r == 0 && got[i] == QUEUED_LEN &&
					  !memcmp(bufs[i], big + (size_t)i * QUEUED_LEN, QUEUED_LEN);

				good += ok;
				*eof += r == 0 && !ok;
			} else {
				bool ok;

				bufs[i][got[i] < cap ? got[i] : cap - 1] = 0;
				ok = r == 0 && closing_200(bufs[i], got[i], bodies ? bodies[i] : small,
							   sizeof(small));
				good += ok;
				*eof += r == 0 && !ok;
				if (!ok)
					fprintf(stderr, "queued serve client %d: %zu bytes: %.200s\n",
						i, got[i], bufs[i]);
			}
			close(fds[i]);
			fds[i] = -1;
		}
	}
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
	return good;
}

/*
 * A drain that runs out of descriptors: @c was started with every accept
 * down and a descriptor limit of EMFILE_LIMIT; QUEUED clients connect and
 * send (@req: serve's GET; NULL: QUEUED_LEN bytes each), none is answered.
 * At SIGQUIT the drain takes in what the limit allows (its accept4 ends at
 * EMFILE, counted in accept_errors) and keeps the listener open; as the
 * clients taken in finish and close, the rest are taken in (drain_retries
 * counts the passes): each answered then EOF, none reset, none left in
 * the queue (drain_reset 0), exit 0 well before --drain-timeout 20. The
 * drain before shut the listener at the EMFILE: the rest were reset.
 */
enum { EMFILE_LIMIT = 40 };

static void drain_emfile(struct child *c, const char *name, const char *req, size_t len)
{
	int fds[QUEUED], good, reset, eof, st;
	unsigned long long errs, retries, lost;
	uint64_t t0, dt;

	CHECK(queue_clients(c->port, fds, QUEUED, req, len, 300),
	      "%s emfile: a client was answered with every accept down", name);
	t0 = now_ms();
	kill(c->pid, SIGQUIT);
	good = drive_queued(fds, QUEUED, req ? Q_SERVED : Q_ECHOED, false, NULL, &reset, &eof);
	st = child_exit(c, 5000);
	dt = now_ms() - t0;
	errs = stat_sum(c->log, "accept_errors");
	retries = stat_sum(c->log, "drain_retries");
	lost = stat_sum(c->log, "drain_reset");
	CHECK(good == QUEUED && !reset && !eof,
	      "%s emfile: %d of %d answered then EOF, %d reset, %d EOF short (limit %d)", name, good,
	      QUEUED, reset, eof, EMFILE_LIMIT);
	CHECK(errs > 0 && retries > 0 && lost == 0,
	      "%s emfile: %llu failed accepts (the EMFILE), %llu retries, %llu reset in the queue",
	      name, errs, retries, lost);
	CHECK(st == 0 && dt < 15000, "%s emfile: exit status %d %llu ms after SIGQUIT", name, st,
	      (unsigned long long)dt);
	printf("%s drain: limit %d, %d queued at SIGQUIT (accepts down): %d answered "
	       "then EOF, %d reset, %llu failed accepts, %llu retries, exit %d %llu ms after "
	       "SIGQUIT\n",
	       name, EMFILE_LIMIT, QUEUED, good, reset, errs, retries, st, (unsigned long long)dt);
}

/* Start @args with every accept down under the descriptor limit. */
static int start_emfile(struct child *c, const char *const *args)
{
	int st;

	child_nofile = EMFILE_LIMIT;
	st = start_not_accepting(c, args);
	child_nofile = 0;
	return st;
}

static void test_echo_drain_emfile(void)
{
	const char *args[] = { "echo", "--listen", "127.0.0.1:0", "--shards", "2", "--no-pin",
			       "--drain-timeout", "20", NULL };
	struct child c = { 0 };

	if (!need_hooks("echo drain emfile"))
		return;
	if (start_emfile(&c, args)) {
		CHECK(0, "echo did not start");
		return;
	}
	drain_emfile(&c, "echo", NULL, 0);
}

/* One shard: serve's second descriptor is the file its cache opens once
 * per shard (two for that open); another shard's pass can leave both
 * shards' first opens one descriptor short (docs/reliability.md) */
static void test_serve_drain_emfile(void)
{
	const char *args[] = { "serve", "--listen", "127.0.0.1:0", "--root", root, "--shards",
			       "1", "--no-pin", "--drain-timeout", "20", NULL };
	static const char req[] = "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n";
	struct child c = { 0 };

	if (!need_hooks("serve drain emfile"))
		return;
	if (start_emfile(&c, args)) {
		CHECK(0, "serve did not start");
		return;
	}
	drain_emfile(&c, "serve", req, sizeof(req) - 1);
}

/* The files of serve's emfile cases on several shards: NFILES of
 * sizeof(small) bytes, each its own (small rotated by k + 1), so each
 * shard's cache opens each file once (a miss: O_PATH, then the file) */
enum { NFILES = 8 };
static char fbody[NFILES][sizeof(small)];

/* Each of @n clients of @port into @fds sends GET /f(i % NFILES).txt
 * with @hdrs in its head (more header lines, each ending in CRLF; "" for
 * none: send_get); @bodies[i] is the body it is owed. A client whose dial
 * or send failed is -1 in @fds. */
static void get_files(int port, int *fds, const char **bodies, int n, const char *hdrs)
{
	for (int i = 0; i < n; i++) {
		char path[16];

		snprintf(path, sizeof(path), "f%d.txt", i % NFILES);
		bodies[i] = fbody[i % NFILES];
		fds[i] = dial(port);
		if (fds[i] >= 0 && send_get(fds[i], path, hdrs)) {
			close(fds[i]);
			fds[i] = -1;
		}
	}
}

/* The listening sockets on port @port (/proc/net/tcp: a LISTEN row's
 * rx_queue is its accept queue's length): how many in *@n, the
 * connections queued on them in all in *@queued; returns how many have
 * one queued or more (-1: no /proc). */
static int listen_queues(int port, int *n, unsigned *queued)
{
	FILE *f = fopen("/proc/net/tcp", "r");
	char line[512];
	int with = 0;

	*n = 0;
	*queued = 0;
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned lport, st, txq, rxq;

		if (sscanf(line, " %*u: %*x:%x %*x:%*x %x %x:%x", &lport, &st, &txq, &rxq) == 4 &&
		    lport == (unsigned)port && st == 0x0A) {
			(*n)++;
			*queued += rxq;
			with += rxq > 0;
		}
	}
	fclose(f);
	return with;
}

/* Wait (up to @ms, polling every 5 ms) for port @port's LISTEN row to
 * leave /proc/net/tcp: the ms it took, or -1 when it was still there
 * (or no /proc). A drain closes its listener a little after the signal;
 * how long after is the host's load, not the product's. */
static long listener_gone(int port, unsigned ms)
{
	uint64_t t = now_ms(), end = t + ms;
	unsigned queued;
	int n;

	for (;;) {
		if (listen_queues(port, &n, &queued) >= 0 && n == 0)
			return (long)(now_ms() - t);
		if (now_ms() >= end)
			return -1;
		usleep(5 * 1000);
	}
}

/* Silent clients dialled to @port (their sockets into @fds, how many in
 * *@n, at most @max) until @pid holds @lim descriptors below @lim, each
 * dial given 3 s (a loaded host) to show in the count: the count at the
 * end (below @lim when @max ran out or a dial failed; -1: no /proc). */
static long fill_silent(pid_t pid, int port, unsigned lim, int *fds, int max, int *n)
{
	long full = fd_count_where(pid, NULL, lim);

	while (*n < max && full >= 0 && full < (long)lim) {
		long before = full;

		fds[*n] = dial(port);
		if (fds[*n] < 0)
			break;
		(*n)++;
		for (uint64_t end = now_ms() + 3000;
		     now_ms() < end && (full = fd_count_where(pid, NULL, lim)) == before;)
			usleep(2000);
	}
	return full;
}

/*
 * serve on @shards shards with every accept down, under a limit that
 * holds its own descriptors, each shard's cache of the NFILES files and
 * a few connections: QUEUED clients, client i
 * GETting f(i % NFILES).txt, queued on every shard's listener (each
 * listener's accept queue read in /proc/net/tcp). At SIGQUIT every shard
 * takes in what fits, and their connections' first opens of each file
 * (two descriptors each: O_PATH, then the file) run on the shards'
 * threads at once, in the process's one descriptor table. Each client,
 * which closes once answered, must get 200 with Connection: close and
 * its own file's bytes, then EOF: no 503, none reset, nothing left
 * queued (drain_reset 0), exit 0.
 */
static void serve_drain_emfile_shards(unsigned shards)
{
	char nsh[8], name[32];
	const char *args[] = { "serve", "--listen", "127.0.0.1:0", "--root", root, "--shards",
			       nsh, "--no-pin", "--drain-timeout", "20", NULL };
	const char *bodies[QUEUED];
	int fds[QUEUED], good, reset, eof, st, nl = 0, with;
	/* serve's own (3 + 3 a shard, and 3 more std ones), each
	 * shard's cache of the NFILES files, and spare: 40 at 2 shards; at 4
	 * fewer spare, so that the accepts still run out */
	unsigned queued = 0, limit = 6 + 3 * shards + NFILES * shards + (shards > 2 ? 6 : 12);
	unsigned long long errs, retries, lost, s5, s2, waits;
	struct child c = { 0 };
	uint64_t t0, dt;

	snprintf(nsh, sizeof(nsh), "%u", shards);
	snprintf(name, sizeof(name), "serve emfile %u shards", shards);
	if (!need_hooks(name))
		return;
	child_nofile = limit;
	st = start_not_accepting(&c, args);
	child_nofile = 0;
	if (st) {
		CHECK(0, "%s: serve did not start", name);
		return;
	}
	get_files(c.port, fds, bodies, QUEUED, "");
	CHECK(none_readable(fds, QUEUED, 300), "%s: a client was answered with every accept down",
	      name);
	with = listen_queues(c.port, &nl, &queued);
	CHECK(with == (int)shards && nl == (int)shards && queued == QUEUED,
	      "%s: %d of %d listeners with connections queued, %u queued in all (want every "
	      "listener, %d)",
	      name, with, nl, queued, QUEUED);
	t0 = now_ms();
	kill(c.pid, SIGQUIT);
	good = drive_queued(fds, QUEUED, Q_SERVED, false, bodies, &reset, &eof);
	st = child_exit(&c, 5000);
	dt = now_ms() - t0;
	errs = stat_sum(c.log, "accept_errors");
	retries = stat_sum(c.log, "drain_retries");
	lost = stat_sum(c.log, "drain_reset");
	s5 = stat_sum(c.log, "5xx");
	s2 = stat_sum(c.log, "2xx");
	waits = stat_sum(c.log, "open_waits");
	CHECK(good == QUEUED && !reset && !eof && s5 == 0 && s2 == QUEUED,
	      "%s: %d of %d answered 200 with Connection: close then EOF, %d reset, %d EOF "
	      "short; the server's 2xx %llu, 5xx %llu (limit %u)",
	      name, good, QUEUED, reset, eof, s2, s5, limit);
	/* at 4 shards the accepts do not always fail: the opens do */
	CHECK((errs > 0 || (shards > 2 && waits > 0)) && lost == 0,
	      "%s: %llu failed accepts, %llu opens that waited (the EMFILE), %llu reset in the "
	      "queue",
	      name, errs, waits, lost);
	CHECK(st == 0 && dt < 15000, "%s: exit status %d %llu ms after SIGQUIT", name, st,
	      (unsigned long long)dt);
	printf("serve drain: %u shards, limit %u, %d queued at SIGQUIT on %d listeners, %d "
	       "files: %d answered 200 then EOF, %d reset, 5xx %llu, %llu failed accepts, %llu "
	       "retries, %llu opens waited, exit %d %llu ms after SIGQUIT\n",
	       shards, limit, QUEUED, with, NFILES, good, reset, s5, errs, retries, waits, st,
	       (unsigned long long)dt);
}

static void test_serve_drain_emfile_shards(void)
{
	serve_drain_emfile_shards(1);
	serve_drain_emfile_shards(2);
	serve_drain_emfile_shards(4);
}

/*
 * serve's accepts stopped by a real EMFILE before the SIGQUIT (no hook:
 * every build): 2 shards under a limit of EMFILE_LIMIT, QUEUED clients
 * each GET a file of the NFILES, keep-alive; serve answers what its
 * descriptors allow (200, or 503 for an open that found none, as outside
 * a drain), those connections idle and keep their descriptors
 * (--keepalive-timeout 60), the accepts fail (accept_errors, read by
 * SIGUSR1, the back-off armed) and the rest wait in the listeners' queues.
 * At SIGQUIT the drain closes the idle ones (EOF, the clients close) and
 * must take in every queued one as descriptors free up: each 200 with
 * Connection: close and its file's bytes then EOF, none reset, no 5xx
 * beyond those answered before the SIGQUIT, exit 0.
 */
static void test_serve_drain_emfile_before(void)
{
	const char *args[] = { "serve",	 "--listen",	    "127.0.0.1:0", "--root",
			       root,	 "--shards",	    "2",	   "--no-pin",
			       "--drain-timeout", "20", "--keepalive-timeout", "60",
			       "--header-timeout", "60", NULL };
	static char bufs[QUEUED][1024];
	const char *bodies[QUEUED], *qbodies[QUEUED];
	int fds[QUEUED], qfds[QUEUED], nq = 0, pre = 0, pre503 = 0, bad = 0, good, reset, eof, st;
	int nl = 0, with, closed_ok = 0;
	size_t got[QUEUED] = { 0 };
	unsigned queued = 0;
	unsigned long long errs, lost, s5, retries, waits;
	struct child c = { 0 };
	uint64_t t0, dt, end, last;
	size_t from;

	child_nofile = EMFILE_LIMIT;
	st = child_start(&c, args);
	child_nofile = 0;
	if (st) {
		CHECK(0, "emfile before: serve did not start");
		return;
	}
	get_files(c.port, fds, bodies, QUEUED, "");
	/* the answers serve can give: until none came for 1 s (5 s in all) */
	end = now_ms() + 5000;
	last = now_ms();
	while (now_ms() < end && now_ms() - last < 1000) {
		for (int i = 0; i < QUEUED; i++) {
			ssize_t r;

			if (fds[i] < 0)
				continue;
			r = recv(fds[i], bufs[i] + got[i], sizeof(bufs[i]) - 1 - got[i],
				 MSG_DONTWAIT);
			if (r > 0) {
				got[i] += (size_t)r;
				last = now_ms();
			}
		}
		usleep(10000);
	}
	for (int i = 0; i < QUEUED; i++) {
		char *e;

		if (fds[i] < 0 || !got[i]) {
			qfds[nq] = fds[i];
			qbodies[nq++] = bodies[i];
			continue;
		}
		pre++;
		bufs[i][got[i]] = 0;
		e = strstr(bufs[i], "\r\n\r\n");
		if (e && !strncmp(bufs[i], "HTTP/1.1 503 ", 13) && !strstr(bufs[i], "Connection: close"))
			pre503++;
		else if (!e || strncmp(bufs[i], "HTTP/1.1 200 ", 13) ||
			 strstr(bufs[i], "Connection: close") ||
			 got[i] != (size_t)(e + 4 - bufs[i]) + sizeof(small) ||
			 memcmp(e + 4, bodies[i], sizeof(small))) {
			bad++;
			fprintf(stderr, "emfile before: client %d before the SIGQUIT: %.200s\n", i,
				bufs[i]);
		}
	}
	from = c.len;
	(void)live_now(&c, 2);
	errs = stat_sum(c.log + from, "accept_errors");
	from = c.len; /* the exit's stats lines come after */
	with = listen_queues(c.port, &nl, &queued);
	CHECK(pre > 0 && nq > 0 && !bad && errs > 0 && queued == (unsigned)nq,
	      "emfile before: %d answered before the SIGQUIT (%d of them 503, %d wrong), %d "
	      "waiting, %u queued on %d of %d listeners, %llu failed accepts (want some "
	      "answered, the rest queued, the accepts failing)",
	      pre, pre503, bad, nq, queued, with, nl, errs);
	t0 = now_ms();
	kill(c.pid, SIGQUIT);
	/* the idle ones end (the drain's close of an idle keep-alive
	 * connection: EOF, nothing more), and their clients close */
	for (int i = 0; i < QUEUED; i++) {
		char b[256];

		if (fds[i] < 0 || !got[i])
			continue;
		closed_ok += read_to_eof(fds[i], b, sizeof(b)) == 0;
		close(fds[i]);
	}
	good = drive_queued(qfds, nq, Q_SERVED, false, qbodies, &reset, &eof);
	st = child_exit(&c, 5000);
	dt = now_ms() - t0;
	lost = stat_sum(c.log, "drain_reset");
	retries = stat_sum(c.log, "drain_retries");
	waits = stat_sum(c.log + from, "open_waits");
	s5 = stat_sum(c.log + from, "5xx");
	CHECK(closed_ok == pre, "emfile before: %d of %d idle connections ended with EOF",
	      closed_ok, pre);
	CHECK(good == nq && !reset && !eof && s5 == (unsigned long long)pre503 && lost == 0,
	      "emfile before: %d of %d queued answered 200 with Connection: close then EOF, %d "
	      "reset, %d EOF short; 5xx %llu (%d before the SIGQUIT), %llu reset in the queue",
	      good, nq, reset, eof, s5, pre503, lost);
	CHECK(st == 0 && dt < 15000, "emfile before: exit status %d %llu ms after SIGQUIT", st,
	      (unsigned long long)dt);
	printf("serve drain: 2 shards, limit %d, accepts down at EMFILE before the SIGQUIT "
	       "(%llu failed accepts): %d answered before (%d 503), %d queued on %d listeners: "
	       "%d answered 200 then EOF, %d reset, %llu retries, %llu opens waited, exit %d %llu "
	       "ms after SIGQUIT\n",
	       EMFILE_LIMIT, errs, pre, pre503, nq, with, good, reset, retries, waits, st,
	       (unsigned long long)dt);
}

/*
 * The stop of a drain with requests still waiting for a descriptor: serve
 * on 1 shard, every accept down, a limit of about 8 descriptors beyond its
 * own; 16 clients queued, each GETting a file of its own (every open a
 * first one). The drain takes in what its spares allow; the first open
 * answers (200, Connection: close) and that client keeps sending a byte
 * every 100 ms, so its lingering connection is never quiet; the others'
 * opens find none and wait until the cache gives back a file no answer
 * holds, or a lingering connection is ended for them (linger_shed: busy
 * ones too, none being quiet), at the tick's retry, within --drain-timeout
 * 2. At the deadline any still waiting are closed unanswered (EOF or a
 * reset, never a 503), the queue is reset, and the exit is 0. A wait still
 * pending at the deadline: serve_drain_emfile_wait_closed.
 */
static void test_serve_drain_emfile_wait_deadline(void)
{
	const char *args[] = { "serve", "--listen", "127.0.0.1:0", "--root", root, "--shards",
			       "1", "--no-pin", "--drain-timeout", "2", NULL };
	enum { N = 16 };
	const char *bodies[N];
	static char bufs[N][1024];
	size_t got[N] = { 0 };
	bool done[N] = { false }, eof[N] = { false };
	int fds[N], answered = 0, bad = 0, closed = 0, left = N, st;
	unsigned long long waits, s5, taken, lshed;
	struct child c = { 0 };
	uint64_t t0, dt, end, next_byte;

	if (!need_hooks("serve drain emfile wait deadline"))
		return;
	child_nofile = 9 + 8; /* serve's own at 1 shard (6 + 3), and 8 */
	st = start_not_accepting(&c, args);
	child_nofile = 0;
	if (st) {
		CHECK(0, "wait deadline: serve did not start");
		return;
	}
	/* an If-None-Match no ETag matches: answered 200 the file's way, not
	 * from the memo, whose answer holds no file (its entry goes back at
	 * once, the shed closes it, and no open ever waited here) */
	get_files(c.port, fds, bodies, N, "If-None-Match: \"none\"\r\n");
	CHECK(none_readable(fds, N, 300), "wait deadline: a client was answered with every "
					  "accept down");
	t0 = now_ms();
	kill(c.pid, SIGQUIT);
	end = t0 + 8000;
	next_byte = t0;
	while (left && now_ms() < end) {
		struct pollfd p[N];

		for (int i = 0; i < N; i++)
			p[i] = (struct pollfd){ .fd = done[i] || eof[i] ? -1 : fds[i],
						.events = POLLIN };
		(void)poll(p, N, 20);
		for (int i = 0; i < N; i++) {
			ssize_t r;

			if (done[i] || !p[i].revents)
				continue;
			r = recv(fds[i], bufs[i] + got[i], sizeof(bufs[i]) - 1 - got[i], MSG_DONTWAIT);
			if (r > 0) {
				got[i] += (size_t)r;
				continue;
			}
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r == 0 && got[i]) {
				eof[i] = true; /* answered, its FIN: it goes on sending */
				continue;
			}
			done[i] = true; /* EOF or a reset */
			left--;
		}
		/* an answered client keeps its lingering connection busy: a
		 * byte each 100 ms, never quiet for a tick; done once the
		 * server's close refuses it */
		if (now_ms() >= next_byte) {
			next_byte = now_ms() + 100;
			for (int i = 0; i < N; i++)
				if (!done[i] && got[i] &&
				    send(fds[i], "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 &&
				    errno != EAGAIN) {
					done[i] = true;
					left--;
				}
		}
	}
	for (int i = 0; i < N; i++) {
		bufs[i][got[i]] = 0;
		if (!got[i]) {
			closed += done[i];
		} else if (closing_200(bufs[i], got[i], bodies[i], sizeof(small))) {
			answered++;
		} else {
			bad++;
			fprintf(stderr, "wait deadline: client %d: %.200s\n", i, bufs[i]);
		}
		close(fds[i]);
	}
	st = child_exit(&c, 5000);
	dt = now_ms() - t0;
	waits = stat_sum(c.log, "open_waits");
	s5 = stat_sum(c.log, "5xx");
	taken = stat_sum(c.log, "conns");
	lshed = stat_sum(c.log, "linger_shed");
	/* taken in and closed unanswered: each was waiting at the stop. Since
	 * the cache gives back the files no answer holds (9d84169), and
	 * lingering connections their descriptors (linger_free), a waiting
	 * open takes one of those at the next retry, so here every one taken
	 * in is answered (7-10 of 16, 6-7 after a wait) and the deadline
	 * closes the queue the drain never took in; a wait still pending at
	 * the stop needs every descriptor held (serve_drain_emfile_wait_closed) */
	CHECK(answered >= 1 && closed == N - answered && !bad && s5 == 0 &&
		      taken >= (unsigned long long)answered && waits >= 1 &&
		      waits >= taken - (unsigned)answered,
	      "wait deadline: %d answered 200, %d closed unanswered, %d wrong, of %d; %llu "
	      "taken in, 5xx %llu, %llu opens waited (want some answered after opens that "
	      "waited, the rest closed at the deadline)",
	      answered, closed, bad, N, taken, s5, waits);
	CHECK(st == 0 && dt >= 1900 && dt < 6000,
	      "wait deadline: exit status %d %llu ms after SIGQUIT (--drain-timeout 2)", st,
	      (unsigned long long)dt);
	printf("serve drain: 1 shard, limit 17, %d queued, answered clients never quiet: %llu "
	       "taken in, %d answered, %d closed unanswered at the deadline, %llu opens waited, "
	       "linger_shed %llu, 5xx %llu, exit %d %llu ms after SIGQUIT (--drain-timeout 2)\n",
	       N, taken, answered, closed, waits, lshed, s5, st, (unsigned long long)dt);
}

/*
 * relay (2 shards, to a `ringplane echo` that accepts) as echo's queued
 * cases, through the relay: with its accepts down (test_echo_drain_queued)
 * or @emfile, under an fd limit (test_echo_drain_emfile; the relay takes
 * two descriptors a connection, the client's and the upstream's: the drain
 * takes one in only with a spare).
 */
static void relay_drain(const char *name, bool emfile)
{
	const char *eargs[] = { "echo", "--listen", "127.0.0.1:0", "--shards", "1", "--no-pin",
				NULL };
	char up[64];
	const char *rargs[] = { "relay", "--listen", "127.0.0.1:0", "--upstream", up, "--shards",
				"2", "--no-pin", "--drain-timeout", "20", NULL };
	struct child e = { 0 }, r = { 0 };
	int st;

	if (!need_hooks(name))
		return;
	if (child_start(&e, eargs)) {
		CHECK(0, "echo did not start");
		return;
	}
	snprintf(up, sizeof(up), "127.0.0.1:%d", e.port);
	if (emfile ? start_emfile(&r, rargs) : start_not_accepting(&r, rargs)) {
		CHECK(0, "relay did not start");
		child_stop(&e, 5000);
		return;
	}
	if (emfile)
		drain_emfile(&r, "relay", NULL, 0);
	else
		drain_queued_echoed(&r, "relay", "relayed");
	st = child_stop(&e, 5000);
	CHECK(st == 0, "%s: echo exits 0 on SIGTERM (status %d)", name, st);
}

static void test_relay_drain_queued(void)
{
	relay_drain("relay drain queued", false);
}

static void test_relay_drain_emfile(void)
{
	relay_drain("relay drain emfile", true);
}

/*
 * As test_echo_drain_emfile, but the clients taken in never finish: no
 * descriptor comes back. The drain ends at --drain-timeout 2 (exit 0, as
 * documented), the listener's queue reset then and counted (drain_reset,
 * the clients still queued: each reset), no hang.
 */
static void test_echo_drain_emfile_deadline(void)
{
	const char *args[] = { "echo", "--listen", "127.0.0.1:0", "--shards", "2", "--no-pin",
			       "--drain-timeout", "2", NULL };
	struct child c = { 0 };
	int fds[QUEUED], good, reset, eof, st = -1;
	unsigned long long lost;
	uint64_t t0, dt;

	if (!need_hooks("echo drain emfile deadline"))
		return;
	if (start_emfile(&c, args)) {
		CHECK(0, "echo did not start");
		return;
	}
	CHECK(queue_clients(c.port, fds, QUEUED, NULL, 0, 300),
	      "emfile deadline: a client was echoed with every accept down");
	t0 = now_ms();
	kill(c.pid, SIGQUIT);
	/* nobody half-closes: the ones taken in are echoed and stay; the
	 * drain's deadline ends them (EOF, or a reset) and the queue (reset) */
	good = drive_queued(fds, QUEUED, Q_ECHOED, true, NULL, &reset, &eof);
	st = child_exit(&c, 8000);
	dt = now_ms() - t0;
	lost = stat_sum(c.log, "drain_reset");
	CHECK(st == 0 && dt >= 1900 && dt < 8000,
	      "emfile deadline: exit status %d %llu ms after SIGQUIT (--drain-timeout 2)", st,
	      (unsigned long long)dt);
	CHECK(lost > 0 && reset >= (int)lost,
	      "emfile deadline: %llu queued connections reset at the deadline, %d clients reset",
	      lost, reset);
	printf("echo drain: limit %d, %d queued, no descriptor ever freed: exit %d %llu ms after "
	       "SIGQUIT (--drain-timeout 2), %llu reset in the queue (counted), %d clients reset, "
	       "%d EOF, %d whole\n",
	       EMFILE_LIMIT, QUEUED, st, (unsigned long long)dt, lost, reset, eof, good);
}

/* The files of the cache cases: MFILES of MLEN bytes each, m(k).txt, its
 * own bytes (mbody), so each request is a cache entry of its own. */
enum { MFILES = 64, MLEN = 300 };
static char mbody[MFILES][MLEN];

/* The stats lines of @c now (SIGUSR1, one shard): the sum of @name. */
static unsigned long long stat_now(struct child *c, const char *name)
{
	size_t from = c->len;

	if (live_now(c, 1) < 0)
		return ~0ull;
	return stat_sum(c->log + from, name);
}

/*
 * serve out of descriptors with its cache holding them (every build): 1
 * shard under a limit of its own 9 and MHEAD more, one keep-alive client
 * GETs the MFILES files one after another: the cache keeps each open, so
 * past MHEAD or so every descriptor is a cached file nobody fetches. Each
 * next file, not in the cache, must be served at once (200, its bytes,
 * within 500 ms): the open closes some of the least recently used and
 * tries again (fcache_evict_emfile > 0). Then 8 new clients at once, each
 * accept out of descriptors the same way: each answered 200 within 500
 * ms too. No 5xx. Before, each open past the headroom answered 503 (the
 * cached files were never given back) and the new clients' accepts failed
 * every 100 ms for good.
 */
enum { MHEAD = 24, MNEW = 8 };
static void test_serve_emfile_cache_shed(void)
{
	const char *args[] = { "serve", "--listen", "127.0.0.1:0", "--root", root, "--shards",
			       "1", "--no-pin", NULL };
	char body[MLEN + 1], name[32];
	int fd, st, ok = 0, bad = 0, nok = 0, nfds[MNEW];
	unsigned long long shed, s5, errs;
	uint64_t worst = 0, nworst = 0;
	struct child c = { 0 };
	bool closing;

	child_nofile = 9 + MHEAD;
	st = child_start(&c, args);
	child_nofile = 0;
	if (st) {
		CHECK(0, "cache shed: serve did not start");
		return;
	}
	fd = dial(c.port);
	CHECK(fd >= 0, "cache shed: connect");
	for (int k = 0; fd >= 0 && k < MFILES; k++) {
		uint64_t t0 = now_ms(), dt;
		ssize_t n;

		snprintf(name, sizeof(name), "m%d.txt", k);
		n = get_one(fd, name, "", &st, body, sizeof(body), &closing, 2000);
		dt = now_ms() - t0;
		worst = dt > worst ? dt : worst;
		if (n == MLEN && st == 200 && !closing && !memcmp(body, mbody[k], MLEN) && dt < 500) {
			ok++;
			continue;
		}
		if (bad++ < 4)
			fprintf(stderr, "cache shed: m%d.txt: status %d, %zd bytes, %s, %llu ms\n", k,
				st, n, closing ? "closing" : "keep-alive", (unsigned long long)dt);
		if (n < 0 || closing)
			break;
	}
	/* every descriptor is a connection or a cached file: new clients */
	for (int i = 0; i < MNEW; i++)
		nfds[i] = dial(c.port);
	for (int i = 0; i < MNEW; i++) {
		uint64_t t0 = now_ms(), dt;
		int k = (i * 7) % MFILES;
		ssize_t n = -1;

		snprintf(name, sizeof(name), "m%d.txt", k);
		if (nfds[i] >= 0)
			n = get_one(nfds[i], name, "", &st, body, sizeof(body), &closing, 2000);
		dt = now_ms() - t0;
		nworst = dt > nworst ? dt : nworst;
		if (n == MLEN && st == 200 && !memcmp(body, mbody[k], MLEN) && dt < 500)
			nok++;
		else
			fprintf(stderr, "cache shed: new client %d: status %d, %zd bytes, %llu ms\n", i,
				n < 0 ? 0 : st, n, (unsigned long long)dt);
	}
	shed = stat_now(&c, "fcache_evict_emfile");
	s5 = stat_now(&c, "5xx");
	errs = stat_now(&c, "accept_errors");
	CHECK(ok == MFILES && nok == MNEW && shed > 0 && shed != ~0ull && s5 == 0,
	      "cache shed: %d of %d files 200 within 500 ms on one connection (slowest %llu ms), "
	      "%d of %d new clients (slowest %llu ms), fcache_evict_emfile %llu, 5xx %llu",
	      ok, MFILES, (unsigned long long)worst, nok, MNEW, (unsigned long long)nworst, shed,
	      s5);
	if (fd >= 0)
		close(fd);
	for (int i = 0; i < MNEW; i++)
		if (nfds[i] >= 0)
			close(nfds[i]);
	st = child_stop(&c, 5000);
	CHECK(st == 0, "cache shed: exit status %d", st);
	printf("serve emfile: 1 shard, limit %d: %d of %d files 200 on one connection (slowest "
	       "%llu ms), %d of %d new clients 200 (slowest %llu ms), %llu cached files closed "
	       "(fcache_evict_emfile), %llu failed accepts, 5xx %llu\n",
	       9 + MHEAD, ok, MFILES, (unsigned long long)worst, nok, MNEW,
	       (unsigned long long)nworst, shed, errs, s5);
}

/* Read @fd to EOF within 20 s, dropping the bytes: how many (-1: an error
 * or no EOF in time). */
static long long sink_to_eof(int fd)
{
	static char b[65536];
	uint64_t end = now_ms() + 20000;
	long long n = 0;

	while (now_ms() < end) {
		ssize_t r = recv_wait(fd, b, sizeof(b), 2000);

		if (r == 0)
			return n;
		if (r < 0 && r != -2)
			return -1;
		if (r > 0)
			n += r;
	}
	return -1;
}

/*
 * Every descriptor of serve (1 shard, started with @args under a limit of
 * its own 9 and 8 more) held, nothing to give back: a client *@w is taken
 * in and stays silent; then holders into @hfd GET the 8 MB big.bin with a
 * 4 KB receive buffer and do not read, one more until a holder is not
 * answered within 500 ms (the accept out of descriptors, and the one
 * cached file held by every answer: nothing to close). The holders (the
 * last one queued, unanswered), or -1 when serve did not start.
 */
enum { HMAX = 16 };
static int hold_every_fd(struct child *c, const char *const *args, int *w, int *hfd)
{
	unsigned long long shed;
	int nh = 0, st;

	child_nofile = 9 + 8;
	st = child_start(c, args);
	child_nofile = 0;
	if (st)
		return -1;
	*w = dial(c->port);
	usleep(200 * 1000); /* W taken in while descriptors are plenty */
	while (nh < HMAX) {
		struct pollfd p;

		hfd[nh] = dial_rcvbuf(c->port, 4096);
		if (hfd[nh] < 0)
			break;
		if (send_get(hfd[nh], "big.bin", "")) {
			close(hfd[nh]);
			break;
		}
		p = (struct pollfd){ .fd = hfd[nh], .events = POLLIN };
		nh++;
		if (poll(&p, 1, 500) <= 0)
			break; /* not taken in: every descriptor is in use */
	}
	shed = stat_now(c, "fcache_evict_emfile");
	CHECK(*w >= 0 && nh >= 2 && nh < HMAX && shed == 0,
	      "every fd held: %d holders (want the last one not answered), fcache_evict_emfile "
	      "%llu (nothing unheld to close)",
	      nh, shed);
	return nh;
}

/*
 * hold_every_fd, then SIGQUIT (at *@t0) and, 100 ms on, W's request for
 * m0.txt (not cached: an open that finds no descriptor); *@early gets what
 * W's first read within 300 ms after it gave (-2: nothing came, as the
 * open waits). The holders, or -1 when serve did not start (counted).
 * @what names the case in the failures.
 */
static int hold_quit_ask(struct child *c, const char *const *args, const char *what, int *w,
			 int *hfd, int *early, uint64_t *t0)
{
	char buf[2048];
	int nh = hold_every_fd(c, args, w, hfd);

	if (nh < 0) {
		CHECK(0, "%s: serve did not start", what);
		return -1;
	}
	*t0 = now_ms();
	kill(c->pid, SIGQUIT);
	usleep(100 * 1000);
	CHECK(*w >= 0 && !send_get(*w, "m0.txt", ""), "%s: W's request", what);
	*early = *w >= 0 ? (int)recv_wait(*w, buf, sizeof(buf), 300) : -1;
	return nh;
}

/*
 * Nothing to give back (hold_every_fd), then SIGQUIT; W asks for a file
 * not in the cache: its open finds no descriptor, nothing cached to
 * close and nothing lingering, so it waits (open_waits), unanswered for
 * 300 ms; the holders then read theirs one by one, and once descriptors
 * come back W gets 200 with Connection: close and its file's bytes. Every
 * holder gets its whole answer, the queued one too; no 5xx; exit 0.
 */
static void test_serve_drain_emfile_cache_held(void)
{
	const char *args[] = { "serve", "--listen", "127.0.0.1:0", "--root", root, "--shards",
			       "1", "--no-pin", "--drain-timeout", "20", NULL };
	int hfd[HMAX], nh, w = -1, st, whole = 0, released = 0, early;
	char wbuf[2048];
	ssize_t wn = -1;
	unsigned long long waits, s5;
	struct child c = { 0 };
	uint64_t t0;

	nh = hold_quit_ask(&c, args, "cache held", &w, hfd, &early, &t0);
	if (nh < 0)
		return;
	/* the holders read theirs, one at a time, until W is answered */
	for (int i = 0; i < nh; i++) {
		long long n = sink_to_eof(hfd[i]);

		whole += n > (long long)BIG_LEN;
		close(hfd[i]);
		if (wn < 0 && w >= 0) {
			struct pollfd p = { .fd = w, .events = POLLIN };

			if (poll(&p, 1, 300) > 0) {
				wn = read_to_eof(w, wbuf, sizeof(wbuf) - 1);
				released = i + 1;
			}
		}
	}
	if (wn < 0 && w >= 0)
		wn = read_to_eof(w, wbuf, sizeof(wbuf) - 1);
	if (w >= 0)
		close(w);
	st = child_exit(&c, 10000);
	waits = stat_sum(c.log, "open_waits");
	s5 = stat_sum(c.log, "5xx");
	if (wn > 0)
		wbuf[wn] = 0;
	CHECK(early == -2 && wn > 0 && closing_200(wbuf, (size_t)wn, mbody[0], MLEN),
	      "cache held: W %s for 300 ms after its request, then %zd bytes: %.80s",
	      early == -2 ? "unanswered" : "answered", wn, wn > 0 ? wbuf : "");
	CHECK(whole == nh && waits >= 1 && s5 == 0 && st == 0,
	      "cache held: %d of %d holders whole, %llu opens waited, 5xx %llu, exit %d", whole,
	      nh, waits, s5, st);
	printf("serve drain: 1 shard, limit 17, %d holders of the one cached file (the last "
	       "queued), nothing to close (fcache_evict_emfile 0): W waited (%llu opens waited) "
	       "and was answered 200 after %d holders read theirs, %d of %d whole, 5xx %llu, "
	       "exit %d %llu ms after SIGQUIT\n",
	       nh, waits, released, whole, nh, s5, st, (unsigned long long)(now_ms() - t0));
}

/*
 * The drain's deadline with a request still waiting for a descriptor: as
 * cache_held, but the holders never read, so no descriptor ever comes
 * back. W's open waits (open_waits) until --drain-timeout 2; then serve
 * exits 0 and W is closed unanswered: its request was read whole, so the
 * close is a FIN and W reads EOF with no byte before it (not a reset, not
 * a 503), counted in open_wait_closed. No 5xx.
 */
static void test_serve_drain_emfile_wait_closed(void)
{
	const char *args[] = { "serve", "--listen", "127.0.0.1:0", "--root", root, "--shards",
			       "1", "--no-pin", "--drain-timeout", "2", NULL };
	int hfd[HMAX], nh, w = -1, st, early;
	char wbuf[2048];
	ssize_t wn = -1;
	unsigned long long waits, closed, s5;
	struct child c = { 0 };
	uint64_t t0, dt, wt = 0;

	nh = hold_quit_ask(&c, args, "wait closed", &w, hfd, &early, &t0);
	if (nh < 0)
		return;
	if (w >= 0) {
		wn = read_to_eof(w, wbuf, sizeof(wbuf) - 1);
		wt = now_ms() - t0;
		close(w);
	}
	st = child_exit(&c, 8000);
	dt = now_ms() - t0;
	for (int i = 0; i < nh; i++)
		close(hfd[i]);
	waits = stat_sum(c.log, "open_waits");
	closed = stat_sum(c.log, "open_wait_closed");
	s5 = stat_sum(c.log, "5xx");
	CHECK(early == -2 && wn == 0 && wt >= 1900,
	      "wait closed: W %s for 300 ms after its request, then %zd (0: EOF, no byte; "
	      "-%d: reset) %llu ms after SIGQUIT (want EOF at the 2 s deadline)",
	      early == -2 ? "unanswered" : "answered", wn, ECONNRESET, (unsigned long long)wt);
	CHECK(waits >= 1 && closed == 1 && s5 == 0,
	      "wait closed: %llu opens waited, %llu closed waiting at the deadline (want 1), "
	      "5xx %llu",
	      waits, closed, s5);
	CHECK(st == 0 && dt >= 1900 && dt < 6000,
	      "wait closed: exit status %d %llu ms after SIGQUIT (--drain-timeout 2)", st,
	      (unsigned long long)dt);
	printf("serve drain: 1 shard, limit 17, %d holders never reading, W's open waiting: "
	       "EOF %llu ms after SIGQUIT, %llu opens waited, open_wait_closed %llu, 5xx %llu, "
	       "exit %d %llu ms after SIGQUIT (--drain-timeout 2)\n",
	       nh, (unsigned long long)wt, waits, closed, s5, st, (unsigned long long)dt);
}

/*
 * Lingering connections give their descriptors to a file's open (every
 * build, no drain): serve on 1 shard under a limit of its own 9 and LHEAD
 * more, --linger-timeout 60 (no tick ends a lingering connection in the
 * run). First a victim V (4 KB receive buffer) asks for the first 16 KB
 * of big.bin with Connection: close and reads nothing: its answer is in
 * serve's socket whole, so V lingers, and V sends VSEND bytes every 20 ms
 * throughout, so it is never quiet and its answer never acknowledged.
 * Then LCLIENTS clients one after another, 20 ms apart, each GET a file
 * of its own (m(k).txt: an open) with Connection: close, read the whole
 * answer and stay, silent: each connection lingers, holding its
 * descriptor. Once the lingering ones hold every descriptor the cache does
 * not, a new client's open finds none, and the cache has nothing left to
 * close: the open must end the oldest lingering connections whose answer
 * the peer acknowledged and be answered 200 with its bytes, not 503. Every
 * client 200 within 2 s, linger_shed > 0, no 5xx. V, never acknowledged,
 * is never ended: it then reads its whole answer (206, 16 KB, the bytes
 * of big.bin) and the EOF behind it. (3765735 ended V as the oldest
 * lingering connection: V read 4 KB, then the end.) 16 KB is the largest
 * body serve copies (its SMALL_BODY): a larger one may go zero-copy, and
 * a last answer's zero-copy body is checked until the client acknowledged
 * it before the connection lingers (apps/cmd_serve.c, zc_poll), so V with
 * 512 KB unread never lingered.
 */
enum { LHEAD = 16, LCLIENTS = 48, VLEN = 16 * 1024, VSEND = 512 };
static void test_serve_emfile_linger_shed(void)
{
	const char *args[] = { "serve", "--listen", "127.0.0.1:0", "--root", root, "--shards",
			       "1", "--no-pin", "--linger-timeout", "60", "--linger-time", "120",
			       NULL };
	char body[MLEN + 1], name[32], vhdrs[96], junk[VSEND], *vbuf = malloc(VLEN + 4096);
	int fds[LCLIENTS], st, ok = 0, s503 = 0, nc = 0, v, vend = 1;
	unsigned long long shed, s5, errs, ended, cshed, rst, lingering = 0;
	uint64_t worst = 0;
	size_t vn = 0, vhl = 0;
	struct child c = { 0 };
	bool closing, vwhole = false;
	const char *e;

	memset(junk, 'x', sizeof(junk));
	child_nofile = 9 + LHEAD;
	st = child_start(&c, args);
	child_nofile = 0;
	if (st || !vbuf) {
		CHECK(0, "linger shed: serve did not start");
		free(vbuf);
		return;
	}
	v = dial_rcvbuf(c.port, 4096);
	snprintf(vhdrs, sizeof(vhdrs), "Range: bytes=0-%d\r\nConnection: close\r\n", VLEN - 1);
	CHECK(v >= 0 && !send_get(v, "big.bin", vhdrs), "linger shed: victim's request");
	/* V lingers once its answer is in serve's socket whole (2 s) */
	for (int i = 0; i < 20 && lingering != 1; i++) {
		usleep(100 * 1000);
		(void)send(v, junk, sizeof(junk), MSG_DONTWAIT | MSG_NOSIGNAL);
		lingering = stat_now(&c, "lingering");
	}
	CHECK(lingering == 1, "linger shed: the victim lingers (lingering %llu)", lingering);
	for (; nc < LCLIENTS; nc++) {
		uint64_t t0, dt;
		int k = nc % MFILES;
		ssize_t n = -1;

		usleep(20 * 1000);
		(void)send(v, junk, sizeof(junk), MSG_DONTWAIT | MSG_NOSIGNAL);
		t0 = now_ms();
		fds[nc] = dial(c.port);
		if (fds[nc] < 0)
			break;
		snprintf(name, sizeof(name), "m%d.txt", k);
		n = get_one(fds[nc], name, "Connection: close\r\n", &st, body, sizeof(body), &closing,
			    2000);
		dt = now_ms() - t0;
		worst = dt > worst ? dt : worst;
		s503 += st == 503;
		if (n == MLEN && st == 200 && closing && !memcmp(body, mbody[k], MLEN)) {
			ok++;
			continue;
		}
		fprintf(stderr, "linger shed: client %d, m%d.txt: status %d, %zd bytes, %s, %llu ms\n",
			nc, k, st, n, closing ? "closing" : "keep-alive", (unsigned long long)dt);
	}
	shed = stat_now(&c, "linger_shed");
	s5 = stat_now(&c, "5xx");
	errs = stat_now(&c, "accept_errors");
	ended = stat_now(&c, "linger_timeouts");
	cshed = stat_now(&c, "fcache_evict_emfile");
	rst = stat_now(&c, "resets");
	/* resets: a receive of an ended connection that ran on the socket or
	 * file that took its number (ENOTSOCK) would count there */
	CHECK(ok == LCLIENTS && s503 == 0 && s5 == 0 && shed > 0 && shed != ~0ull && rst == 0,
	      "linger shed: %d of %d clients 200 with their bytes (slowest %llu ms), %d 503; "
	      "server: 5xx %llu, linger_shed %llu, resets %llu (want every client answered 200, "
	      "lingering connections ended for the opens, no receive failed)",
	      ok, LCLIENTS, (unsigned long long)worst, s503, s5, shed, rst);
	/* V reads now: its whole answer, then the EOF (10 s) */
	if (v >= 0) {
		vn = read_upto(v, vbuf, VLEN + 4095, 10000, &vend);
		vbuf[vn] = 0;
		e = strstr(vbuf, "\r\n\r\n");
		vhl = e ? (size_t)(e + 4 - vbuf) : 0;
		snprintf(vhdrs, sizeof(vhdrs), "\r\nContent-Length: %d\r\n", VLEN);
		vwhole = e && !strncmp(vbuf, "HTTP/1.1 206 ", 13) && strstr(vbuf, vhdrs) &&
			 vn == vhl + VLEN && !memcmp(vbuf + vhl, big, VLEN);
	}
	CHECK(vwhole && vend == 0,
	      "linger shed: the victim (lingering, its answer unacknowledged, still sending) "
	      "read %zu bytes of %zu (head %zu), %s, then %s (want its whole answer, then EOF: "
	      "never ended while its answer is not acknowledged)",
	      vn, vhl + VLEN, vhl, vwhole ? "whole" : "not whole",
	      vend == 0 ? "EOF" : vend == -ECONNRESET ? "a reset" : "no EOF");
	if (v >= 0)
		close(v);
	for (int i = 0; i < nc; i++)
		close(fds[i]);
	st = child_stop(&c, 5000);
	CHECK(st == 0, "linger shed: exit status %d", st);
	printf("serve emfile: 1 shard, limit %d, a victim lingering with 16 KB unread and %d "
	       "clients each lingering after a file of its own: %d answered 200 (slowest %llu "
	       "ms), %d 503; victim read %zu bytes, %s; linger_shed %llu, fcache_evict_emfile "
	       "%llu, linger_timeouts %llu, %llu failed accepts, resets %llu\n",
	       9 + LHEAD, LCLIENTS, ok, (unsigned long long)worst, s503, vn,
	       vwhole ? "whole" : "cut", shed, cshed, ended, errs, rst);
	free(vbuf);
}

/* The lowest descriptor number @pid has free (what its next open gets),
 * or -1. */
static long lowest_free_fd(pid_t pid)
{
	for (long n = 0; n < 4096; n++) {
		char path[64];
		struct stat sb;

		snprintf(path, sizeof(path), "/proc/%d/fd/%ld", (int)pid, n);
		if (lstat(path, &sb))
			return errno == ENOENT ? n : -1;
	}
	return -1;
}

/* One SIGUSR1 stats line of @c (one shard) taken now into @line (@cap,
 * NUL-terminated): 0, or -1 when none came (2 s). */
static int stats_line(struct child *c, char *line, size_t cap)
{
	size_t from = c->len;
	const char *p, *nl;

	if (live_now(c, 1) < 0)
		return -1;
	for (p = c->log + from; (nl = strchr(p, '\n')); p = nl + 1)
		if (memmem(p, (size_t)(nl - p), " live ", 6)) {
			snprintf(line, cap, "%.*s", (int)(nl - p), p);
			return 0;
		}
	return -1;
}

/* @pid's descriptors numbered below @lim (its limit: what it may use; one
 * inherited above it is not its own) reach @want within 2 s: the count
 * seen last. */
static long fds_reach(pid_t pid, long lim, long want)
{
	uint64_t end = now_ms() + 2000;
	long n;

	while ((n = fd_count_where(pid, NULL, (unsigned long long)lim)) != want && now_ms() < end)
		usleep(10 * 1000);
	return n;
}

/* The bytes serve's socket on @port to the client whose local port is
 * @cport has sent and not had acknowledged (its FIN counts one:
 * /proc/net/tcp's tx_queue, what SIOCOUTQ says), or -1 when none is
 * listed. */
static long unacked_to(int port, int cport)
{
	FILE *f = fopen("/proc/net/tcp", "r");
	char line[512];
	long q = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned lport, rport, st, txq;

		if (sscanf(line, " %*u: %*x:%x %*x:%x %x %x:%*x", &lport, &rport, &st, &txq) == 4 &&
		    lport == (unsigned)port && rport == (unsigned)cport)
			q = (long)txq;
	}
	fclose(f);
	return q;
}

/*
 * One acknowledged lingering connection, and nothing else to give back,
 * under a limit with no descriptor free (the shed_wait cases): serve (1
 * shard, @args) starts; L GETs a file that does not exist with
 * Connection: close, reads its 404 whole and the FIN behind it, and stays
 * silent (lingering, its answer and FIN acknowledged: all a shed takes);
 * @nw clients W (into @w) and K connect and say nothing. Then serve's
 * RLIMIT_NOFILE is set (prlimit) to its lowest free descriptor number:
 * every descriptor it may have is taken (its own, the clients'), nothing
 * is cached, no pipe is kept. 0 with *@lim the limit and *@base serve's
 * descriptors below it then (*@lim: none free), or -1 (checked and said;
 * serve stopped).
 */
static int shed_setup(struct child *c, const char *const *args, int *l, int *w, int nw,
		      int *k, long *lim, long *base)
{
	char buf[1024];
	unsigned long long lingering = 0;
	struct sockaddr_in la;
	socklen_t alen = sizeof(la);
	struct rlimit rl;
	long unacked = -1;
	size_t hl;
	ssize_t n;
	int nwd = 0;

	*l = *k = -1;
	for (int i = 0; i < nw; i++)
		w[i] = -1;
	if (child_start(c, args)) {
		CHECK(0, "shed: serve did not start");
		(void)child_stop(c, 2000);
		return -1;
	}
	*l = dial(c->port);
	n = *l >= 0 ? get_head(*l, "nope.txt", "Connection: close\r\n", buf, sizeof(buf), &hl,
			       now_ms() + 2000)
		    : -1;
	CHECK(n > 0 && !strncmp(buf, "HTTP/1.1 404 ", 13) &&
		      strstr(buf, "\r\nConnection: close\r\n") &&
		      strstr(buf, "\r\nContent-Length: 0\r\n") &&
		      read_to_eof_ms(*l, buf + n, sizeof(buf) - (size_t)n, 2000) == 0,
	      "shed: L's 404 with Connection: close, then EOF (%zd bytes: %.60s)", n,
	      n > 0 ? buf : "");
	for (int i = 0; i < nw; i++)
		nwd += (w[i] = dial(c->port)) >= 0;
	*k = dial(c->port);
	/* L lingers, and its kernel acknowledged the answer and the FIN (a
	 * delayed ACK may take up to 200 ms): what a shed looks for */
	if (*l >= 0 && !getsockname(*l, (struct sockaddr *)&la, &alen))
		for (int i = 0; i < 40 && (lingering != 1 || unacked); i++) {
			lingering = stat_now(c, "lingering");
			unacked = unacked_to(c->port, ntohs(la.sin_port));
			if (lingering != 1 || unacked)
				usleep(50 * 1000);
		}
	*lim = lowest_free_fd(c->pid);
	*base = *lim > 0 ? fd_count_where(c->pid, NULL, (unsigned long long)*lim) : -1;
	rl.rlim_cur = rl.rlim_max = (rlim_t)*lim;
	if (n <= 0 || nwd < nw || *k < 0 || lingering != 1 || unacked || *lim <= 0 ||
	    *base != *lim || prlimit(c->pid, RLIMIT_NOFILE, &rl, NULL)) {
		CHECK(0, "shed: L %s, lingering %llu, %ld bytes unacknowledged to it, %d of %d W "
			 "connected, K %d, limit %ld, %ld descriptors below it: %s",
		      n > 0 ? "answered" : "not answered", lingering, unacked, nwd, nw, *k, *lim,
		      *base, strerror(errno));
		(void)child_stop(c, 5000);
		return -1;
	}
	return 0;
}

/*
 * The shed_wait that ends in a 503 (every build, no drain): shed_setup,
 * then W GETs m1.txt (keep-alive). Its open finds no descriptor, the cache
 * none to close and no pipe kept, so L is ended for it (linger_shed 1) and
 * W waits for L's close; tried once more, the open has L's one descriptor
 * where a file's first open takes two (O_PATH, then the file): W gets a
 * complete 503 (status line, Content-Length: 0 and nothing after it,
 * Connection: keep-alive: its client may try again, here or on this
 * connection), within 2 s. Counted: 5xx 1, file_errors 2 (L's 404 and
 * it), linger_shed 1, lingering 0, no pipe shed, nothing cached, no
 * parser refusal; serve's descriptors one fewer than at the limit (L's:
 * the O_PATH taken for the retry was given back). Then K leaves: once
 * serve closed it, two are free, and W's GET of m1.txt again on the same
 * connection is a 200 with the file's bytes; a new client's GET of it
 * (now cached) 200 too. serve exits 0 at SIGTERM.
 */
static void test_serve_emfile_shed_503(void)
{
	const char *args[] = { "serve", "--listen", "127.0.0.1:0", "--root", root, "--shards",
			       "1", "--no-pin", "--linger-timeout", "60", "--linger-time", "120",
			       "--header-timeout", "60", "--keepalive-timeout", "60", NULL };
	char head[1024], line[4096] = "", body[MLEN + 1];
	int l, w, k, st = 0, st2 = 0, nfd = -1, more;
	long lim, base, after503 = -1, afterk = -1;
	size_t hl = 0;
	ssize_t n, n2 = -1, n3 = -1;
	unsigned long long s5 = ~0ull, fe = ~0ull, shed = ~0ull, lingering = ~0ull, pshed = ~0ull,
			   evict = ~0ull, open = ~0ull, s2 = ~0ull;
	struct child c = { 0 };
	uint64_t t0, dt;
	bool closing = true, ok503;

	if (shed_setup(&c, args, &l, &w, 1, &k, &lim, &base))
		goto out;
	t0 = now_ms();
	n = get_head(w, "m1.txt", "", head, sizeof(head), &hl, t0 + 2000);
	dt = now_ms() - t0;
	more = (int)recv_wait(w, line, sizeof(line), 200); /* -2: nothing more, no EOF */
	ok503 = n > 0 && (size_t)n == hl &&
		!strncmp(head, "HTTP/1.1 503 Service Unavailable\r\n", 34) &&
		strstr(head, "\r\nContent-Length: 0\r\n") &&
		strstr(head, "\r\nConnection: keep-alive\r\n") && more == -2;
	CHECK(ok503,
	      "shed 503: W's GET (limit %ld, one lingering connection to end): %zd bytes (head "
	      "%zu) in %llu ms, then %d (-2: nothing more): %.120s (want a complete 503, "
	      "Content-Length: 0, keep-alive)",
	      lim, n, hl, (unsigned long long)dt, more, n > 0 ? head : "");
	after503 = fd_count_where(c.pid, NULL, (unsigned long long)lim);
	if (!stats_line(&c, line, sizeof(line))) {
		s5 = stat_sum(line, "5xx");
		fe = stat_sum(line, "file_errors");
		shed = stat_sum(line, "linger_shed");
		lingering = stat_sum(line, "lingering");
		pshed = stat_sum(line, "pipes_shed");
		evict = stat_sum(line, "fcache_evict_emfile");
		open = stat_sum(line, "open");
	}
	CHECK(s5 == 1 && fe == 2 && shed == 1 && lingering == 0 && pshed == 0 && evict == 0 &&
		      open == 0 && strstr(line, "refused none") && after503 == base - 1,
	      "shed 503: 5xx %llu, file_errors %llu, linger_shed %llu, lingering %llu, pipes_shed "
	      "%llu, fcache_evict_emfile %llu, cache open %llu, descriptors %ld (at the limit "
	      "%ld; want 1, 2, 1, 0, 0, 0, 0, L's one fewer, no parser refusal): %.200s",
	      s5, fe, shed, lingering, pshed, evict, open, after503, base, line);
	/* descriptors back: K leaves, serve closes it */
	close(k);
	k = -1;
	afterk = fds_reach(c.pid, lim, base - 2);
	n2 = get_one(w, "m1.txt", "", &st, body, sizeof(body), &closing, 2000);
	CHECK(afterk == base - 2 && n2 == MLEN && st == 200 && !closing &&
		      !memcmp(body, mbody[1], MLEN),
	      "shed 503: K gone (descriptors %ld, want %ld), W's GET again: status %d, %zd "
	      "bytes, %s (want 200 with m1.txt's bytes, keep-alive)",
	      afterk, base - 2, st, n2, closing ? "closing" : "keep-alive");
	nfd = dial(c.port);
	n3 = nfd >= 0 ? get_one(nfd, "m1.txt", "", &st2, body, sizeof(body), &closing, 2000) : -1;
	CHECK(n3 == MLEN && st2 == 200 && !memcmp(body, mbody[1], MLEN),
	      "shed 503: a new client's GET of m1.txt: status %d, %zd bytes (want 200)", st2, n3);
	s2 = stat_now(&c, "2xx");
	CHECK(s2 == 2, "shed 503: 2xx %llu (want 2)", s2);
	st = child_stop(&c, 5000);
	CHECK(st == 0, "shed 503: exit status %d", st);
	printf("serve emfile: 1 shard, limit %ld (none free), one acknowledged lingering "
	       "connection: the open ended it (linger_shed %llu), waited for its close and was "
	       "answered 503 in %llu ms (Content-Length 0, keep-alive); 5xx %llu, file_errors "
	       "%llu; descriptors %ld at the limit, %ld after the 503, %ld after one client left: "
	       "the same GET 200, a new client 200; exit %d\n",
	       lim, shed, (unsigned long long)dt, s5, fe, base, after503, afterk, st);
out:
	if (l >= 0)
		close(l);
	if (w >= 0)
		close(w);
	if (k >= 0)
		close(k);
	if (nfd >= 0)
		close(nfd);
}

/* The thread of shard @id of @pid, found by the name the engine gives
 * it ("rp-shard-ID", docs/engine.md), or -1. */
static pid_t shard_tid(pid_t pid, unsigned id)
{
	char path[64], comm[32], want[32];
	struct dirent *d;
	pid_t tid = -1;
	DIR *dir;

	snprintf(want, sizeof(want), "rp-shard-%u\n", id);
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while (tid < 0 && (d = readdir(dir))) {
		pid_t t = (pid_t)atoi(d->d_name);
		FILE *f;

		if (t <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int)pid, (int)t);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && !strcmp(comm, want))
			tid = t;
		fclose(f);
	}
	closedir(dir);
	return tid;
}

/* The voluntary context switches of thread @tid of @pid so far, with
 * *@sleeping whether it sleeps now; -1 when unknown. */
static long long vol_switches(pid_t pid, pid_t tid, bool *sleeping)
{
	char path[64], line[256];
	long long n = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)tid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	*sleeping = false;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "State:", 6))
			*sleeping = strchr(line, 'S') != NULL;
		else if (!strncmp(line, "voluntary_ctxt_switches:", 24))
			n = strtoll(line + 24, NULL, 10);
	}
	fclose(f);
	return n;
}

/* The next stop of traced @tid (into *@st), polled (WNOHANG, 1 ms sleeps)
 * until @end (now_ms): 0, or -1 (an error, or none by @end). */
static int wait_stop(pid_t tid, uint64_t end, int *st)
{
	for (unsigned i = 0; i < 100000; i++) {
		pid_t r = waitpid(tid, st, __WALL | WNOHANG);

		if (r == tid)
			return 0;
		if (r < 0 || now_ms() >= end)
			return -1;
		usleep(1000);
	}
	return -1;
}

/* Let traced @tid go: PTRACE_DETACH, which needs it stopped; running (a
 * wait for its stop that gave up), it is interrupted first (seized). */
static void let_go(pid_t tid)
{
	int st;

	if (!ptrace(PTRACE_DETACH, tid, 0, 0))
		return;
	if (!ptrace(PTRACE_INTERRUPT, tid, 0, 0) && !wait_stop(tid, now_ms() + 1000, &st))
		(void)ptrace(PTRACE_DETACH, tid, 0, 0);
}

/*
 * Hold serve's shard thread @tid, traced (ptrace) and stopped, at the
 * entry of its next ioctl(SIOCOUTQ): linger_free asking whether a
 * lingering client acknowledged its whole answer, an open out of
 * descriptors about to end that connection, the request about to wait for
 * the close (its shed_wait). The thread is already seized and stopped.
 * Up to @ms, each stop waited for against that deadline. 0 held there
 * (still traced: the caller lets it go); -1 not, and let go.
 */
static int hold_at_outq(pid_t tid, unsigned ms)
{
	uint64_t end = now_ms() + ms;
	int sig = 0, st;

	while (now_ms() < end) {
		struct __ptrace_syscall_info si;

		if (ptrace(PTRACE_SYSCALL, tid, 0, (void *)(long)sig) ||
		    wait_stop(tid, end, &st) || !WIFSTOPPED(st))
			break;
		sig = 0;
		if (WSTOPSIG(st) == (SIGTRAP | 0x80)) {
			if (ptrace(PTRACE_GET_SYSCALL_INFO, tid, (void *)sizeof(si), &si) > 0 &&
			    si.op == PTRACE_SYSCALL_INFO_ENTRY && si.entry.nr == SYS_ioctl &&
			    si.entry.args[1] == TIOCOUTQ)
				return 0;
		} else if ((st >> 16) != PTRACE_EVENT_STOP) {
			sig = WSTOPSIG(st); /* a signal for the thread: passed on */
		}
	}
	let_go(tid);
	return -1;
}

/*
 * The requests of shed_setup's @nw clients W (into @w), each a GET of
 * m1.txt, and @sig, come to serve while a shed_wait is pending: serve's
 * shard thread is seized (ptrace) and stopped, the requests sent, and
 * the thread let run to its ioctl(SIOCOUTQ) (hold_at_outq): it has read
 * them, the first open found no descriptor and no cached file or kept
 * pipe, and it is about to end L and wait for its close. There it is
 * held while @sig is sent and serve's main thread acts on it (stops the
 * shards, or posts the drain's first step, and sleeps again: one more
 * voluntary switch), then let go: it ends L, every W waits for that close
 * (the others out of descriptors too, a close pending), and at its next
 * turn the shard finds the stop or the drain, before L's close completes.
 * 0; 1 when this host does not let the test trace its child (said: the
 * case is skipped, @name); -1 (checked and said). @sig is sent all the
 * same, at *@t (now_ms). With @q not NULL, a client *@q connects while
 * the thread is held at the ioctl: it stays queued on the listener (its
 * accept, when the thread runs again, finds no descriptor: L's close is
 * still to come),
 * so a drain's pass holds the listener open, its descriptor not given
 * back (an empty queue would let the drain close it: one descriptor more
 * for the waits).
 */
static int shed_fire(struct child *c, const char *name, const int *w, int nw, int sig,
		     uint64_t *t, int *q)
{
	pid_t tid = shard_tid(c->pid, 0);
	int sent = 0, st, seized, held = -1;
	long long before = -1, now = -1;
	bool sleeping = false;
	uint64_t end;

	seized = tid > 0 && !ptrace(PTRACE_SEIZE, tid, 0, (void *)PTRACE_O_TRACESYSGOOD);
	/* EPERM, EACCES: not permitted (Yama, a container's policy); ENOSYS:
	 * a seccomp filter or a sandbox (gVisor) without ptrace */
	if (tid > 0 && !seized && (errno == EPERM || errno == EACCES || errno == ENOSYS)) {
		printf("%s: SKIP: ptrace of the server not permitted here\n", name);
		*t = now_ms();
		kill(c->pid, sig);
		return 1;
	}
	if (seized && (ptrace(PTRACE_INTERRUPT, tid, 0, 0) || wait_stop(tid, now_ms() + 5000, &st))) {
		let_go(tid);
		seized = 0;
	}
	for (int i = 0; i < nw; i++)
		sent += !send_get(w[i], "m1.txt", "");
	if (seized)
		held = hold_at_outq(tid, 5000);
	if (q)
		*q = dial(c->port);
	before = vol_switches(c->pid, c->pid, &sleeping);
	*t = now_ms();
	kill(c->pid, sig);
	end = now_ms() + 2000;
	while (held == 0 && now_ms() < end &&
	       ((now = vol_switches(c->pid, c->pid, &sleeping)) <= before || !sleeping))
		usleep(1000);
	if (held == 0)
		let_go(tid); /* hold_at_outq let it go itself on -1 */
	CHECK(seized && held == 0 && sent == nw && now > before && sleeping,
	      "shed: shard thread %d %s, %s at the shed's ioctl(SIOCOUTQ); %d of %d requests "
	      "sent; the main thread %s after the signal (switches %lld -> %lld): %s",
	      (int)tid, seized ? "traced" : "not traced", held ? "not held" : "held", sent, nw,
	      sleeping ? "asleep" : "not asleep", before, now, strerror(errno));
	return seized && held == 0 && sent == nw ? 0 : -1;
}

/* What one W of the shed cases got, read until EOF (@ms): 0 EOF with no
 * byte, 503 a complete 503 with keep-alive then EOF, 200 a complete 200
 * of m1.txt with Connection: close then EOF, -1 anything else (said). */
static int shed_outcome(int fd, const char *name, int i, unsigned ms)
{
	char buf[2048];
	ssize_t n = read_to_eof_ms(fd, buf, sizeof(buf) - 1, ms);
	const char *e;

	if (n == 0)
		return 0;
	if (n > 0) {
		buf[n] = 0;
		e = strstr(buf, "\r\n\r\n");
		if (e && (size_t)n == (size_t)(e + 4 - buf) &&
		    !strncmp(buf, "HTTP/1.1 503 Service Unavailable\r\n", 34) &&
		    strstr(buf, "\r\nContent-Length: 0\r\n") &&
		    strstr(buf, "\r\nConnection: keep-alive\r\n"))
			return 503;
		if (closing_200(buf, (size_t)n, mbody[1], MLEN))
			return 200;
	}
	fprintf(stderr, "%s: W %d: %zd (-%d: reset, -%d: no EOF): %.60s\n", name, i, n,
		ECONNRESET, ETIMEDOUT, n > 0 ? buf : "");
	return -1;
}

enum { SW = 4 };

/* The shed cases' end: L, K and the SW clients W that are still open. */
static void shed_close(int l, int k, const int *w)
{
	if (l >= 0)
		close(l);
	if (k >= 0)
		close(k);
	for (int i = 0; i < SW; i++)
		if (w[i] >= 0)
			close(w[i]);
}

/*
 * A stop (SIGTERM) while requests wait in a shed_wait (every build; needs
 * ptrace): shed_setup with SW clients W, then shed_fire with SIGTERM: the
 * stop is seen while every W waits for the close of L, the lingering
 * connection ended for the first one's open. A request that waits is
 * closed unanswered at the stop, as the drain's end closes one waiting
 * for a descriptor (serve_stop; the retry does not run at a stop): its
 * request was read whole, so the close is a FIN and W reads EOF with no
 * byte before it, never a 503, a reset or part of an answer. Counted:
 * open_wait_closed SW, linger_shed 1, no 5xx; exit 0 within 5 s (the
 * stop's bound), and the exit's line has no connection live (each wait's
 * reference let go).
 */
static void test_serve_emfile_shed_stop(void)
{
	const char *args[] = { "serve", "--listen", "127.0.0.1:0", "--root", root, "--shards",
			       "1", "--no-pin", "--linger-timeout", "60", "--linger-time", "120",
			       "--header-timeout", "60", "--keepalive-timeout", "60", NULL };
	int l, w[SW], k, st, eof = 0, other = 0;
	unsigned long long closed, s5, shed, live, waits;
	long lim, base;
	struct child c = { 0 };
	uint64_t t0, dt;
	size_t from;

	if (shed_setup(&c, args, &l, w, SW, &k, &lim, &base))
		goto out;
	from = c.len;
	if (shed_fire(&c, "shed stop", w, SW, SIGTERM, &t0, NULL) == 1) {
		(void)child_exit(&c, 5000);
		goto out;
	}
	for (int i = 0; i < SW; i++) {
		int o = shed_outcome(w[i], "shed stop", i, 5000);

		eof += o == 0;
		other += o != 0;
	}
	st = child_exit(&c, 5000);
	dt = now_ms() - t0;
	closed = stat_sum(c.log + from, "open_wait_closed");
	waits = stat_sum(c.log + from, "open_waits");
	s5 = stat_sum(c.log + from, "5xx");
	shed = stat_sum(c.log + from, "linger_shed");
	live = stat_sum(c.log + from, "live");
	CHECK(eof == SW && closed == SW && s5 == 0 && shed == 1 && waits == 0 && live == 0 &&
		      st == 0 && dt < 5000,
	      "shed stop: %d of %d W closed unanswered (EOF, no byte), %d otherwise; "
	      "open_wait_closed %llu, 5xx %llu, linger_shed %llu, open_waits %llu, live %llu at "
	      "the exit, exit %d %llu ms after SIGTERM (want every W closed unanswered and "
	      "counted, L ended, no drain wait, none live, exit 0 within 5 s)",
	      eof, SW, other, closed, s5, shed, waits, live, st, (unsigned long long)dt);
	printf("serve emfile: 1 shard, limit %ld (none free), SIGTERM with %d requests in a "
	       "shed_wait: %d closed unanswered (EOF); open_wait_closed %llu, linger_shed %llu, "
	       "5xx %llu, live %llu at the exit; exit %d %llu ms after SIGTERM\n",
	       lim, SW, eof, closed, shed, s5, live, st, (unsigned long long)dt);
out:
	shed_close(l, k, w);
}

/*
 * A drain (SIGQUIT) while requests wait in a shed_wait (every build;
 * needs ptrace): shed_setup with SW clients W, then shed_fire with
 * SIGQUIT: the drain's first step runs while every W waits for L's close.
 * Once it completes each W is tried again, now in the drain: L's one
 * descriptor is not the two a file's first open takes, so none is
 * answered 503 (its client could not try again: the port is closed);
 * each waits for a descriptor instead (docs/reliability.md, open_waits),
 * unanswered. Meanwhile serve holds one descriptor fewer than at the
 * limit (L's; the O_PATH each retry took given back; a client Q queued
 * on the listener at the SIGQUIT keeps the drain's listener, and its
 * descriptor, held: shed_fire). With @k_leaves, K
 * then leaves: once two are free the drain's next retry answers every W
 * 200 with Connection: close and its file's bytes, then EOF, and serve
 * exits 0 as the last W leaves, well within --drain-timeout 5. Without,
 * no descriptor comes back: at --drain-timeout 2 every W is closed
 * unanswered (EOF, no byte: its request was read whole), counted in
 * open_wait_closed, and serve exits 0. Either way: open_waits SW,
 * linger_shed 1, no 5xx, no connection live in the exit's line.
 */
static void shed_drain(bool k_leaves)
{
	const char *name = k_leaves ? "shed drain" : "shed drain deadline";
	const char *args[] = { "serve", "--listen", "127.0.0.1:0", "--root", root, "--shards",
			       "1", "--no-pin", "--linger-timeout", "60", "--linger-time", "120",
			       "--header-timeout", "60", "--keepalive-timeout", "60",
			       "--drain-timeout", k_leaves ? "5" : "2", NULL };
	int l, w[SW], k, st, ok = 0, other = 0, want = k_leaves ? 200 : 0, fired, q = -1;
	unsigned long long closed, s5, s2, shed, live, waits;
	long lim, base, waiting = -1;
	bool quiet = false;
	struct child c = { 0 };
	uint64_t t0, dt;
	size_t from;

	if (shed_setup(&c, args, &l, w, SW, &k, &lim, &base))
		goto out;
	from = c.len;
	fired = shed_fire(&c, name, w, SW, SIGQUIT, &t0, &q);
	if (fired == 1) {
		(void)child_stop(&c, 5000);
		goto out;
	}
	if (!fired) {
		quiet = none_readable(w, SW, 300);
		waiting = fds_reach(c.pid, lim, base - 1);
	}
	CHECK(quiet && waiting == base - 1,
	      "%s: every W %s for 300 ms after the drain began; serve's descriptors below its "
	      "limit %ld (want %ld: L's closed, the retries' O_PATH given back)",
	      name, quiet ? "unanswered" : "not unanswered", waiting, base - 1);
	if (k_leaves) {
		close(k);
		k = -1;
	}
	for (int i = 0; i < SW; i++) {
		int o = shed_outcome(w[i], name, i, 5000);

		ok += o == want;
		other += o != want;
		close(w[i]);
		w[i] = -1;
	}
	if (q >= 0)
		close(q); /* taken in once descriptors free, or reset at the deadline */
	q = -1;
	st = child_exit(&c, 8000);
	dt = now_ms() - t0;
	closed = stat_sum(c.log + from, "open_wait_closed");
	waits = stat_sum(c.log + from, "open_waits");
	s5 = stat_sum(c.log + from, "5xx");
	s2 = stat_sum(c.log + from, "2xx");
	shed = stat_sum(c.log + from, "linger_shed");
	live = stat_sum(c.log + from, "live");
	CHECK(ok == SW && waits == SW && closed == (k_leaves ? 0 : SW) &&
		      s2 == (k_leaves ? SW : 0) && s5 == 0 && shed == 1 && live == 0,
	      "%s: %d of %d W %s, %d otherwise; open_waits %llu, open_wait_closed %llu, 2xx "
	      "%llu, 5xx %llu, linger_shed %llu, live %llu at the exit",
	      name, ok, SW, k_leaves ? "200 with Connection: close then EOF" :
				       "closed unanswered (EOF, no byte)",
	      other, waits, closed, s2, s5, shed, live);
	CHECK(st == 0 && (k_leaves ? dt < 4000 : dt >= 1900 && dt < 6000),
	      "%s: exit status %d %llu ms after SIGQUIT (--drain-timeout %s)", name, st,
	      (unsigned long long)dt, k_leaves ? "5" : "2");
	printf("serve emfile: 1 shard, limit %ld (none free), SIGQUIT with %d requests in a "
	       "shed_wait: unanswered, %ld descriptors (%ld at the limit); %s: %d %s; open_waits "
	       "%llu, open_wait_closed %llu, linger_shed %llu, 5xx %llu, live %llu at the exit; "
	       "exit %d %llu ms after SIGQUIT\n",
	       lim, SW, waiting, base, k_leaves ? "a client left" : "none came back", ok,
	       k_leaves ? "answered 200" : "closed unanswered at the deadline", waits, closed, shed,
	       s5, live, st, (unsigned long long)dt);
out:
	if (q >= 0)
		close(q);
	shed_close(l, k, w);
}

static void test_serve_emfile_shed_drain(void)
{
	shed_drain(true);
}

static void test_serve_emfile_shed_drain_deadline(void)
{
	shed_drain(false);
}

/*
 * The shed_wait that ends in a 503 while a new client's accept takes the
 * descriptor freed for it (every build; needs ptrace). A shard's own
 * accept cannot come between the close a shed_wait waits for and its
 * retry (the close's completion runs the retry; the accept's work waits
 * for the next submit), but another shard's can: descriptors are the
 * process's, and no descriptor is reserved for a wait
 * (docs/reliability.md). serve on 2 shards under a limit of SLIM set
 * before it starts (an io_uring accept keeps the limit of its prep: a
 * prlimit later does not bind it); L, on shard A, GETs a missing file
 * with Connection: close, reads its 404 and the FIN and stays (lingering,
 * acknowledged); W connects to A too, K anywhere, silent clients until
 * serve holds every descriptor of its limit; a local port whose
 * connections go to shard B is found (SO_REUSEPORT hashes the addresses).
 * W's GET of m1.txt is read and A's thread held (ptrace) at the shed's
 * ioctl(SIOCOUTQ); N connects from that port: B's accept finds no
 * descriptor and backs off. A is let run to the entry of its next openat2,
 * the retry's O_PATH: L is ended and its close completed, one descriptor
 * free; held there until B's back-off takes N in on it (serve at its
 * limit again), then let go: the O_PATH fails with EMFILE. W must get
 * exactly one complete 503 (Content-Length: 0, keep-alive), nothing after
 * it for 300 ms; N, on B, its own answer to its own GET of m2.txt (a 503:
 * nothing to end on B either), never W's, never two. Counted: 5xx 2,
 * file_errors 3 (L's 404 and the 503s), linger_shed 1, lingering 0. Then
 * K and three silent clients leave: W's and N's GETs again are each a 200
 * of their own file, and serve exits 0 at SIGTERM.
 */
enum { SLIM = 40, SFILL = 32 };

/* A client of 127.0.0.1:@port from 127.0.0.1:@lport, TCP_NODELAY, connect
 * bounded by 5 s; -1. */
static int dial_from(int port, int lport)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct sockaddr_in b = { .sin_family = AF_INET, .sin_port = htons((uint16_t)lport) };
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	a.sin_addr.s_addr = b.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (bind(fd, (struct sockaddr *)&b, sizeof(b)) ||
	    connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* Close @fd with a reset: no TIME_WAIT, its addresses free at once. */
static void close_rst(int fd)
{
	struct linger lg = { 1, 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* SIGUSR1 to @c; the value of @name on shard @id's next line (2 s), or
 * ~0 when none came (a shard held by ptrace prints none). */
static unsigned long long shard_now(struct child *c, unsigned id, const char *name)
{
	size_t from = c->len;
	char head[32];
	uint64_t end = now_ms() + 2000;

	snprintf(head, sizeof(head), "shard %u: ", id);
	kill(c->pid, SIGUSR1);
	while (now_ms() < end) {
		const char *p = strstr(c->log + from, head), *nl = p ? strchr(p, '\n') : NULL;

		if (nl) {
			char line[4096];

			snprintf(line, sizeof(line), "%.*s", (int)(nl - p), p);
			return stat_sum(line, name);
		}
		child_drain(c, NULL, 20);
	}
	return ~0ull;
}

/* The shard @c's connection from @fd went to (its conns grew): 0, 1, or
 * -1; @before the two shards' conns before it, updated. */
static int landed(struct child *c, unsigned long long before[2])
{
	uint64_t end = now_ms() + 2000;

	while (now_ms() < end) {
		for (unsigned id = 0; id < 2; id++) {
			unsigned long long v = shard_now(c, id, "conns");

			if (v != ~0ull && v > before[id]) {
				before[id] = v;
				return (int)id;
			}
		}
		usleep(10 * 1000);
	}
	return -1;
}

/* From a stop of traced @tid, run it to its next openat2: with @entry, to
 * the call's entry (0, stopped there); else to its exit: the call's
 * result (a descriptor, or -errno). 1 when none came within @ms. */
static long next_openat2(pid_t tid, bool entry, unsigned ms)
{
	uint64_t end = now_ms() + ms;
	bool in = !entry; /* from the entry stop: its exit is next */
	int sig = 0, st;

	while (now_ms() < end) {
		struct __ptrace_syscall_info si;

		if (ptrace(PTRACE_SYSCALL, tid, 0, (void *)(long)sig) ||
		    wait_stop(tid, end, &st) || !WIFSTOPPED(st))
			return 1;
		sig = 0;
		if (WSTOPSIG(st) != (SIGTRAP | 0x80)) {
			if ((st >> 16) != PTRACE_EVENT_STOP)
				sig = WSTOPSIG(st); /* a signal for the thread: passed on */
			continue;
		}
		if (ptrace(PTRACE_GET_SYSCALL_INFO, tid, (void *)sizeof(si), &si) <= 0)
			continue;
		if (si.op == PTRACE_SYSCALL_INFO_ENTRY) {
			in = si.entry.nr == SYS_openat2;
			if (in && entry)
				return 0;
		} else if (si.op == PTRACE_SYSCALL_INFO_EXIT && in) {
			return (long)si.exit.rval;
		}
	}
	return 1;
}

/* One complete bodiless 503 in @buf (@n bytes, NUL-terminated) and nothing
 * after it. */
static bool only_503(const char *buf, ssize_t n)
{
	const char *e = n > 0 ? strstr(buf, "\r\n\r\n") : NULL;

	return e && e + 4 == buf + n &&
	       !strncmp(buf, "HTTP/1.1 503 Service Unavailable\r\n", 34) &&
	       strstr(buf, "\r\nContent-Length: 0\r\n") && strstr(buf, "\r\nConnection: keep-alive\r\n");
}

/* Read @fd's answer (2 s) into @buf: it must be only_503, and nothing
 * more come for 300 ms. */
static bool one_503(int fd, char *buf, size_t cap, ssize_t *n)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	*n = read_upto(fd, buf, cap - 1, 2000, NULL);
	buf[*n > 0 ? *n : 0] = 0;
	if (!only_503(buf, *n))
		return false;
	return poll(&p, 1, 300) == 0;
}

static void test_serve_emfile_shed_503_accept(void)
{
	const char *args[] = { "serve", "--listen", "127.0.0.1:0", "--root", root, "--shards",
			       "2", "--no-pin", "--linger-timeout", "60", "--linger-time", "120",
			       "--header-timeout", "60", "--keepalive-timeout", "60", NULL };
	const char *name = "shed 503 accept";
	char wb[2048], nb[2048], body[MLEN + 1], buf[1024];
	int l = -1, w[SW] = { -1, -1, -1, -1 }, k = -1, n = -1, f[SFILL], nf = 0, st = 0, wst = 0,
	    nst = 0, a = -1, bsh, lport = 0, probes = 0, seized = 0, held = -1;
	long full = -1, unacked = -1, entry = 1, retry_open = 1, taken = -1;
	ssize_t wn = -1, nn = -1, w2 = -1, n2 = -1, ln;
	unsigned long long conns[2] = { 0, 0 }, s5 = 0, fe = 0, shed = 0, lingering = 0, berr = 0;
	struct child c = { 0 };
	struct sockaddr_in la;
	socklen_t alen = sizeof(la);
	bool closing = true, w503 = false, n503 = false, wgood, ngood, sent = false;
	pid_t tid = -1;
	size_t hl;

	child_nofile = SLIM;
	st = child_start(&c, args);
	child_nofile = 0;
	if (st) {
		CHECK(0, "%s: serve did not start", name);
		(void)child_stop(&c, 2000);
		return;
	}
	l = dial(c.port);
	a = l >= 0 ? landed(&c, conns) : -1;
	ln = a >= 0 ? get_head(l, "nope.txt", "Connection: close\r\n", buf, sizeof(buf), &hl,
			       now_ms() + 2000)
		    : -1;
	CHECK(ln > 0 && !strncmp(buf, "HTTP/1.1 404 ", 13) &&
		      read_to_eof_ms(l, buf + ln, sizeof(buf) - (size_t)ln, 2000) == 0,
	      "%s: L (shard %d) 404 with Connection: close, then EOF", name, a);
	bsh = 1 - a;
	/* W on L's shard: the others reset (the 4-tuple free again) */
	for (int i = 0; i < 16 && a >= 0 && w[0] < 0; i++) {
		int fd = dial(c.port), on = fd >= 0 ? landed(&c, conns) : -1;

		if (on == a)
			w[0] = fd;
		else if (fd >= 0)
			close_rst(fd);
		probes += on >= 0 && on != a;
	}
	/* a local port whose connections B's listener takes */
	for (int i = 0, base = 20000 + (int)(getpid() % 20000); i < 32 && a >= 0 && !lport; i++) {
		int fd = dial_from(c.port, base + i), on = fd >= 0 ? landed(&c, conns) : -1;

		if (fd >= 0)
			close_rst(fd);
		probes += on >= 0;
		if (on == bsh)
			lport = base + i;
	}
	k = dial(c.port);
	/* L lingers, its answer and FIN acknowledged (a delayed ACK: 200 ms) */
	if (l >= 0 && !getsockname(l, (struct sockaddr *)&la, &alen))
		for (int i = 0; i < 40 && (lingering != 1 || unacked); i++) {
			lingering = shard_now(&c, (unsigned)a, "lingering");
			unacked = unacked_to(c.port, ntohs(la.sin_port));
			if (lingering != 1 || unacked)
				usleep(50 * 1000);
		}
	/* the resets' closes done, then silent clients until every
	 * descriptor is held, none left queued */
	usleep(100 * 1000);
	full = fill_silent(c.pid, c.port, SLIM, f, SFILL, &nf);
	CHECK(ln > 0 && w[0] >= 0 && lport && k >= 0 && lingering == 1 && !unacked &&
		      full == SLIM,
	      "%s: L on shard %d %s, lingering %llu, %ld bytes unacknowledged to it, W %s, a port "
	      "to shard %d %s, K %d, %d silent clients, %ld descriptors (want the limit %d)",
	      name, a, ln > 0 ? "answered" : "not answered", lingering, unacked,
	      w[0] >= 0 ? "on it" : "not on it", bsh, lport ? "found" : "not found", k, nf, full,
	      SLIM);
	if (ln <= 0 || w[0] < 0 || !lport || k < 0 || lingering != 1 || unacked || full != SLIM)
		goto stop;
	/* A's thread by its name; a /proc that hides the server's threads
	 * (hidepid, a sandbox) gives none: nothing to trace here */
	tid = shard_tid(c.pid, (unsigned)a);
	if (tid < 0) {
		printf("%s: SKIP: no thread named rp-shard-%d under /proc/%d/task here\n", name, a,
		       (int)c.pid);
		goto stop;
	}
	seized = !ptrace(PTRACE_SEIZE, tid, 0, (void *)PTRACE_O_TRACESYSGOOD);
	if (!seized && (errno == EPERM || errno == EACCES || errno == ENOSYS)) {
		printf("%s: SKIP: ptrace of the server not permitted here\n", name);
		goto stop;
	}
	if (seized && (ptrace(PTRACE_INTERRUPT, tid, 0, 0) || wait_stop(tid, now_ms() + 5000, &st))) {
		let_go(tid);
		seized = 0;
	}
	sent = !send_get(w[0], "m1.txt", "");
	held = seized ? hold_at_outq(tid, 5000) : -1;
	n = held == 0 ? dial_from(c.port, lport) : -1;
	/* B's accept met EMFILE for N (A held: only B's line comes) */
	for (uint64_t end = now_ms() + 2000; n >= 0 && now_ms() < end && !berr;) {
		berr = shard_now(&c, (unsigned)bsh, "accept_errors");
		berr = berr == ~0ull ? 0 : berr;
	}
	/* A on to its retry's O_PATH: L closed, one descriptor free; B's
	 * back-off takes N in on it (serve at its limit again) */
	entry = held == 0 && n >= 0 ? next_openat2(tid, true, 5000) : 1;
	taken = entry == 0 ? fds_reach(c.pid, SLIM, SLIM) : -1;
	retry_open = entry == 0 ? next_openat2(tid, false, 5000) : 1;
	if (held == 0)
		let_go(tid);
	CHECK(seized && held == 0 && sent && n >= 0 && berr > 0 && entry == 0 && taken == SLIM &&
		      retry_open == -EMFILE,
	      "%s: shard %d's thread %d %s, %s at the shed's ioctl(SIOCOUTQ), W's request %s, N "
	      "%s, shard %d's accept_errors %llu; at the retry's O_PATH %s, %ld descriptors (want "
	      "%d: N taken in on L's); the O_PATH %ld (want -%d)",
	      name, a, (int)tid, seized ? "traced" : "not traced", held ? "not held" : "held",
	      sent ? "sent" : "not sent", n >= 0 ? "connected" : "not connected", bsh, berr,
	      entry ? "not reached" : "reached", taken, SLIM, retry_open, EMFILE);
	w503 = w[0] >= 0 && one_503(w[0], wb, sizeof(wb), &wn);
	CHECK(w503, "%s: W got %zd bytes: %.100s (want one complete 503, keep-alive, and nothing "
	      "after it)", name, wn, wn > 0 ? wb : "");
	/* N: its GET of m2.txt answered on its own connection */
	n503 = n >= 0 && !send_get(n, "m2.txt", "") && one_503(n, nb, sizeof(nb), &nn);
	CHECK(n503, "%s: N's GET of m2.txt: %zd bytes: %.100s (want its own 503: nothing to end "
	      "on shard %d)", name, nn, nn > 0 ? nb : "", bsh);
	{
		size_t f0;

		/* the lines A owed for the SIGUSR1s while it was held come
		 * first: taken before the snapshot */
		child_drain(&c, NULL, 200);
		f0 = c.len;
		(void)live_now(&c, 2);
		s5 = stat_sum(c.log + f0, "5xx");
		fe = stat_sum(c.log + f0, "file_errors");
		shed = stat_sum(c.log + f0, "linger_shed");
		lingering = stat_sum(c.log + f0, "lingering");
	}
	CHECK(s5 == 2 && fe == 3 && shed == 1 && lingering == 0,
	      "%s: 5xx %llu, file_errors %llu, linger_shed %llu, lingering %llu (want 2, 3: L's "
	      "404 and the 503s, 1, 0)", name, s5, fe, shed, lingering);
	/* K and three silent clients leave: both served again, each its own file */
	close(k);
	k = -1;
	for (int i = 0; i < 3 && nf > 0; i++)
		close(f[--nf]);
	(void)fds_reach(c.pid, SLIM, SLIM - 4);
	w2 = get_one(w[0], "m1.txt", "", &wst, body, sizeof(body), &closing, 2000);
	wgood = w2 == MLEN && wst == 200 && !memcmp(body, mbody[1], MLEN);
	n2 = n >= 0 ? get_one(n, "m2.txt", "", &nst, body, sizeof(body), &closing, 2000) : -1;
	ngood = n2 == MLEN && nst == 200 && !memcmp(body, mbody[2], MLEN);
	CHECK(wgood && ngood, "%s: descriptors back: W's GET %d (%zd bytes), N's GET %d (%zd "
	      "bytes) (want 200 with m1.txt's and m2.txt's bytes)", name, wst, w2, nst, n2);
	printf("serve emfile: 2 shards, limit %d, all held; a shed_wait on shard %d while shard "
	       "%d's accept takes the descriptor its close freed (%ld held then): the retry's "
	       "O_PATH %ld; W %s, N %s; 5xx %llu, file_errors %llu, linger_shed %llu; %d probes "
	       "for the port; once descriptors came back W %d, N %d\n",
	       SLIM, a, bsh, taken, retry_open, w503 ? "503" : "not 503", n503 ? "503" : "not 503",
	       s5, fe, shed, probes, wst, nst);
stop:
	st = child_stop(&c, 5000);
	CHECK(st == 0, "%s: exit status %d", name, st);
	if (n >= 0)
		close(n);
	for (int i = 0; i < nf; i++)
		close(f[i]);
	shed_close(l, k, w);
}

/* ---- relay --accept-proxy drained at its descriptor limit ---- */

/* A PROXY v1 header from 10.9.0.@i:40000+@i to 10.8.0.1:443 into @out; its
 * length. */
static size_t pp_v1(char *out, size_t cap, int i)
{
	return (size_t)snprintf(out, cap, "PROXY TCP4 10.9.0.%d 10.8.0.1 %d 443\r\n", i, 40000 + i);
}

/* Through a relay to `ringplane echo`: send @len bytes of big from @off on
 * @fd (after @hl bytes of @hdr when @hdr is not NULL) and read them back
 * within 5 s: true when every byte came back as sent. */
static bool echo_round(int fd, const char *hdr, size_t hl, size_t off, size_t len)
{
	static unsigned char back[256 * 1024];
	size_t got;

	if (len > sizeof(back) || (hdr && send(fd, hdr, hl, MSG_NOSIGNAL) != (ssize_t)hl) ||
	    send(fd, big + off, len, MSG_NOSIGNAL) != (ssize_t)len)
		return false;
	got = read_upto(fd, back, len, 5000, NULL);
	return got == len && !memcmp(back, big + off, len);
}

/* Half-close @fd, then its EOF within 5 s with nothing before it: true. */
static bool shut_eof(int fd)
{
	char b[64];

	return !shutdown(fd, SHUT_WR) && read_to_eof_ms(fd, b, sizeof(b), 5000) == 0;
}

/*
 * `ringplane relay --accept-proxy` (1 shard, copy, upstream `ringplane
 * echo`) drained at its descriptor limit (RLIMIT_NOFILE PLIM) with its
 * reserve in play. Before the SIGQUIT: two clients A0, A1 send their
 * headers and 64 KB each, relayed (two descriptors each); silent clients
 * (in the header wait: one each) fill the table to the limit; two of
 * them (the last two but one dialled), P0 and P1, then send their
 * headers and a tag: P0's upstream socket finds no descriptor and goes
 * on through the reserve, P1 waits (waiting 1, upstream_waits 2). Then SIGQUIT, with the listener's queue
 * empty: the drain must close the listener, though its spare descriptor
 * cannot be had, so a new connect is refused (within 100 ms + 1 s) and
 * the listener's descriptor goes to P1, relayed within 1 s of the SIGQUIT
 * (before the silent clients' 5 s header timeouts free any). Then: A1
 * sends 64 KB more, gets them back, half-closes, reads EOF, leaves; H (the
 * last silent one dialled) sends its header and a tag during the drain and is relayed
 * (upstream_waits still 2); P0, P1 and H half-close and read EOF; the
 * silent rest are closed at their header timeout (EOF, no byte), counted
 * in proxy_timeouts. With only A0 left, the relay holds exactly what it
 * held at its start, less the listener and the reserve (lent, not taken
 * again once the listener is gone), plus A0's two. A0 then sends 64 KB
 * more, half-closes and reads it all back and EOF; the relay exits 0
 * within 2 s, well within --drain-timeout 20, its exit line counting
 * every accepted header, the timeouts, no refusal, no connect failure
 * or timeout, and no accept error or drain retry after the listener's
 * close. (Before: the drain's pass found no spare for an empty queue and
 * held the listener open: new connects completed, were taken in later
 * and held the drain to their own header timeout; P1 waited 5 s.)
 */
enum { PLIM = 40, PCHUNK = 64 * 1024, PMAX = 48 };
static void test_relay_proxy_drain(void)
{
	const char *eargs[] = { "echo", "--listen", "127.0.0.1:0", "--shards", "1", "--no-pin",
				NULL };
	char up[64], hdr[128], tag[8], b[64];
	const char *rargs[] = { "relay", "--listen", "127.0.0.1:0", "--upstream", up, "--shards",
				"1", "--no-pin", "--mode", "copy", "--accept-proxy",
				"--connect-timeout", "20000", "--drain-timeout", "20", NULL };
	struct child e = { 0 }, r = { 0 };
	int a[2] = { -1, -1 }, s[PMAX], ns = 0, st, eofs = 0, newc, p0, p1, hc;
	bool a_ok[2] = { false, false }, p_ok[2] = { false, false }, h_ok = false, refused_new;
	bool a1_done = false, a0_done = false, p_end = false;
	long base = -1, full = -1, left = -1;
	unsigned long long waits = ~0ull, waiting = ~0ull, accepted, timeouts, refusedn, errs,
			   retries, cfail, ctime;
	uint64_t t0 = 0, p1_at = 0, t_last, t_exit;
	size_t hl;

	for (int i = 0; i < PMAX; i++)
		s[i] = -1;
	if (child_start(&e, eargs)) {
		CHECK(0, "proxy drain: echo did not start");
		return;
	}
	snprintf(up, sizeof(up), "127.0.0.1:%d", e.port);
	child_nofile = PLIM;
	st = child_start(&r, rargs);
	child_nofile = 0;
	if (st) {
		CHECK(0, "proxy drain: relay did not start");
		goto out;
	}
	base = fd_count_where(r.pid, NULL, PLIM);
	for (int i = 0; i < 2; i++) {
		a[i] = dial(r.port);
		hl = pp_v1(hdr, sizeof(hdr), 100 + i);
		a_ok[i] = a[i] >= 0 && echo_round(a[i], hdr, hl, (size_t)i * PCHUNK * 4, PCHUNK);
	}
	CHECK(a_ok[0] && a_ok[1], "proxy drain: A0 %s, A1 %s (want 64 KB each relayed whole)",
	      a_ok[0] ? "relayed" : "not relayed", a_ok[1] ? "relayed" : "not relayed");
	/* silent clients until the table is full (a loaded host: 3 s) */
	full = fill_silent(r.pid, r.port, PLIM, s, PMAX, &ns);
	CHECK(full == PLIM && ns >= 6,
	      "proxy drain: %d silent clients, %ld descriptors (want the limit %d, %ld at the "
	      "start)", ns, full, PLIM, base);
	if (full != PLIM || ns < 6 || !a_ok[0] || !a_ok[1])
		goto out;
	/* P0, P1 and H are the last three dialled: their 5 s header
	 * timeouts run from their own dials, not from the fill's start (up
	 * to 3 s a dial on a loaded host); the silent rest are s[0..ns-4] */
	p0 = s[ns - 3];
	p1 = s[ns - 2];
	hc = s[ns - 1];
	/* P0 through the reserve, P1 waits */
	for (int i = 0; i < 2; i++) {
		hl = pp_v1(hdr, sizeof(hdr), 1 + i);
		snprintf(tag, sizeof(tag), "p%02d\n", i);
		memcpy(hdr + hl, tag, 4);
		CHECK(send(i ? p1 : p0, hdr, hl + 4, MSG_NOSIGNAL) == (ssize_t)hl + 4,
		      "proxy drain: P%d", i);
		usleep(50 * 1000);
	}
	p_ok[0] = read_upto(p0, b, 4, 2000, NULL) == 4 && !memcmp(b, "p00\n", 4);
	for (uint64_t end = now_ms() + 2000; now_ms() < end;) {
		waits = stat_now(&r, "upstream_waits");
		waiting = stat_now(&r, "waiting");
		if (waits == 2 && waiting == 1)
			break;
		usleep(20 * 1000);
	}
	CHECK(p_ok[0] && waits == 2 && waiting == 1,
	      "proxy drain: before SIGQUIT: P0 %s through the reserve, upstream_waits %llu, "
	      "waiting %llu (want relayed, 2, 1)",
	      p_ok[0] ? "relayed" : "not relayed", waits, waiting);
	t0 = now_ms();
	kill(r.pid, SIGQUIT);
	/* P1 gets the listener's descriptor */
	if (read_upto(p1, b, 4, 1000, NULL) == 4 && !memcmp(b, "p01\n", 4)) {
		p_ok[1] = true;
		p1_at = now_ms() - t0;
	}
	usleep(100 * 1000);
	newc = dial(r.port);
	refused_new = true;
	if (newc >= 0) {
		ssize_t k = recv_wait(newc, b, 1, 1000);

		refused_new = k == -ECONNRESET || k == 0;
		close(newc);
	}
	CHECK(p_ok[1] && refused_new,
	      "proxy drain: after SIGQUIT (listener's queue empty, no spare descriptor): P1 %s "
	      "(%llu ms), a new connect %s (want P1 relayed within 1 s, the connect refused)",
	      p_ok[1] ? "relayed" : "not relayed within 1 s", (unsigned long long)p1_at,
	      refused_new ? "refused" : "completed and left waiting");
	/* A1 goes on and leaves; then H sends its header */
	a1_done = echo_round(a[1], NULL, 0, PCHUNK, PCHUNK) && shut_eof(a[1]);
	close(a[1]);
	a[1] = -1;
	usleep(50 * 1000);
	hl = pp_v1(hdr, sizeof(hdr), 3);
	memcpy(hdr + hl, "h00\n", 4);
	h_ok = send(hc, hdr, hl + 4, MSG_NOSIGNAL) == (ssize_t)hl + 4 &&
	       read_upto(hc, b, 4, 2000, NULL) == 4 && !memcmp(b, "h00\n", 4);
	p_end = shut_eof(p0) && shut_eof(p1) && shut_eof(hc);
	CHECK(a1_done && h_ok && p_end,
	      "proxy drain: in the drain: A1 %s, H %s, P0 P1 H %s (want 64 KB more back whole "
	      "then EOF, H relayed, each EOF after its half-close)",
	      a1_done ? "whole then EOF" : "not whole", h_ok ? "relayed" : "not relayed",
	      p_end ? "EOF" : "no EOF");
	for (int i = ns - 3; i < ns; i++) {
		close(s[i]);
		s[i] = -1;
	}
	/* the silent rest: closed at their header timeout, EOF and no byte */
	for (int i = 0; i < ns - 3; i++) {
		eofs += read_to_eof_ms(s[i], b, sizeof(b), 8000) == 0;
		close(s[i]);
		s[i] = -1;
	}
	left = fds_reach(r.pid, PLIM, base - 2 + 2);
	CHECK(eofs == ns - 3 && left == base,
	      "proxy drain: %d of %d silent clients closed at their header timeout (EOF); with A0 "
	      "left the relay holds %ld descriptors (want %ld: the start's, less the listener and "
	      "the lent reserve, plus A0's two)",
	      eofs, ns - 3, left, base);
	a0_done = echo_round(a[0], NULL, 0, PCHUNK * 2, PCHUNK) && shut_eof(a[0]);
	close(a[0]);
	a[0] = -1;
	t_last = now_ms();
	st = child_exit(&r, 5000);
	t_exit = now_ms();
	accepted = shard_stat(r.log, 0, "accepted");
	timeouts = shard_stat(r.log, 0, "timeouts");
	refusedn = shard_stat(r.log, 0, "refused");
	waits = shard_stat(r.log, 0, "upstream_waits");
	errs = shard_stat(r.log, 0, "accept_errors");
	retries = shard_stat(r.log, 0, "drain_retries");
	cfail = shard_stat(r.log, 0, "connect_failed");
	ctime = shard_stat(r.log, 0, "connect_timeouts");
	CHECK(a0_done && st == 0 && t_exit - t_last < 2000 && t_exit - t0 < 20000,
	      "proxy drain: A0 %s; exit %d %llu ms after the last client, %llu ms after SIGQUIT "
	      "(want 0 within 2 s, within --drain-timeout 20)",
	      a0_done ? "whole then EOF" : "not whole", st, (unsigned long long)(t_exit - t_last),
	      (unsigned long long)(t_exit - t0));
	CHECK(accepted == 5 && timeouts == (unsigned long long)ns - 3 && refusedn == 0 &&
		      waits == 2 && cfail == 0 && ctime == 0 && errs == 0 && retries == 0,
	      "proxy drain: exit line: proxy accepted %llu (want 5), timeouts %llu (want %d), "
	      "refused %llu, upstream_waits %llu (want 2), connect_failed %llu, connect_timeouts "
	      "%llu, accept_errors %llu, drain_retries %llu (want 0 each)",
	      accepted, timeouts, ns - 3, refusedn, waits, cfail, ctime, errs, retries);
	printf("relay proxy drain: limit %d, %d silent clients in the header wait, reserve lent: "
	       "P1 relayed %llu ms after SIGQUIT, a new connect %s; %d closed at their header "
	       "timeout; %ld descriptors with one client left (start %ld); exit %d %llu ms after "
	       "SIGQUIT, %llu ms after the last client\n",
	       PLIM, ns, (unsigned long long)p1_at, refused_new ? "refused" : "not refused", eofs,
	       left, base, st, (unsigned long long)(t_exit - t0),
	       (unsigned long long)(t_exit - t_last));
	goto done;
out:
	if (r.pid > 0)
		(void)child_stop(&r, 5000);
done:
	for (int i = 0; i < 2; i++)
		if (a[i] >= 0)
			close(a[i]);
	for (int i = 0; i < ns; i++)
		if (s[i] >= 0)
			close(s[i]);
	st = child_stop(&e, 5000);
	CHECK(st == 0, "proxy drain: echo exits 0 on SIGTERM (status %d)", st);
}

/*
 * The drain's deadline with clients in the PROXY header wait: relay
 * --accept-proxy (1 shard, copy, upstream `ringplane echo`,
 * --drain-timeout 2): A sends its header and 64 KB (relayed) and stays
 * open; PHOLD clients connect and say nothing. SIGQUIT: the listener
 * closes (its LISTEN row gone within 2 s: waited for, not slept on), a
 * new connect then refused; nothing ends before the deadline (the header timeout is 5 s),
 * so at 2 s the drain stops as SIGTERM does: every silent client is
 * closed (EOF, no byte: it sent nothing), A ends, and the relay exits 0
 * within 2-4 s of the SIGQUIT. The stop's close is not the client's: its
 * exit line counts no PROXY refusal and no header timeout (as the
 * connects and the descriptor waits the stop cancels are not counted),
 * one accepted header. (Before, each silent client was counted as a
 * refusal, "closed": one that closed or reset before its header.)
 */
enum { PHOLD = 6 };
static void test_relay_proxy_drain_deadline(void)
{
	const char *eargs[] = { "echo", "--listen", "127.0.0.1:0", "--shards", "1", "--no-pin",
				NULL };
	char up[64], hdr[128], b[64];
	const char *rargs[] = { "relay", "--listen", "127.0.0.1:0", "--upstream", up, "--shards",
				"1", "--no-pin", "--mode", "copy", "--accept-proxy",
				"--drain-timeout", "2", NULL };
	struct child e = { 0 }, r = { 0 };
	int a, h[PHOLD], eofs = 0, st;
	bool a_ok, refused_new, live_ok;
	unsigned long long accepted, timeouts, refusedn;
	long long live = -1;
	long gone;
	uint64_t t0, dt;
	size_t hl;

	if (child_start(&e, eargs)) {
		CHECK(0, "proxy drain deadline: echo did not start");
		return;
	}
	snprintf(up, sizeof(up), "127.0.0.1:%d", e.port);
	if (child_start(&r, rargs)) {
		CHECK(0, "proxy drain deadline: relay did not start");
		(void)child_stop(&r, 2000);
		(void)child_stop(&e, 5000);
		return;
	}
	a = dial(r.port);
	hl = pp_v1(hdr, sizeof(hdr), 100);
	a_ok = a >= 0 && echo_round(a, hdr, hl, 0, PCHUNK);
	for (int i = 0; i < PHOLD; i++)
		h[i] = dial(r.port);
	for (uint64_t end = now_ms() + 2000; now_ms() < end && live != 1 + PHOLD;)
		live = live_now(&r, 1); /* the accepts of the last dials */
	live_ok = live == 1 + PHOLD;
	CHECK(a_ok && live_ok, "proxy drain deadline: A %s, %lld live (want relayed, %d)",
	      a_ok ? "relayed" : "not relayed", live, 1 + PHOLD);
	t0 = now_ms();
	kill(r.pid, SIGQUIT);
	/* the listener gone (a loaded host: 130 ms once), then the dial */
	gone = listener_gone(r.port, 2000);
	refused_new = refused(r.port);
	for (int i = 0; i < PHOLD; i++) {
		eofs += h[i] >= 0 && read_to_eof_ms(h[i], b, sizeof(b), 5000) == 0;
		if (h[i] >= 0)
			close(h[i]);
	}
	st = child_exit(&r, 8000);
	dt = now_ms() - t0;
	if (a >= 0)
		close(a);
	accepted = shard_stat(r.log, 0, "accepted");
	timeouts = shard_stat(r.log, 0, "timeouts");
	refusedn = shard_stat(r.log, 0, "refused");
	CHECK(gone >= 0 && refused_new && eofs == PHOLD && st == 0 && dt >= 1900 && dt < 4000,
	      "proxy drain deadline: listener %s %ld ms after SIGQUIT, a new connect %s; %d of %d "
	      "silent clients closed (EOF, no byte); exit %d %llu ms after SIGQUIT (want closed "
	      "within 2 s, refused, all, 0 at the 2 s deadline)",
	      gone >= 0 ? "closed" : "still listening", gone, refused_new ? "refused" : "not refused",
	      eofs, PHOLD, st, (unsigned long long)dt);
	CHECK(accepted == 1 && timeouts == 0 && refusedn == 0,
	      "proxy drain deadline: exit line: proxy accepted %llu, timeouts %llu, refused %llu "
	      "(want 1, 0, 0: the stop closed the silent clients, no refusal)",
	      accepted, timeouts, refusedn);
	printf("relay proxy drain deadline: %d clients in the header wait at SIGQUIT: listener "
	       "closed %ld ms after it, %d closed (EOF) at the 2 s deadline, exit %d %llu ms after "
	       "SIGQUIT; proxy accepted %llu, timeouts %llu, refused %llu\n",
	       PHOLD, gone, eofs, st, (unsigned long long)dt, accepted, timeouts, refusedn);
	st = child_stop(&e, 5000);
	CHECK(st == 0, "proxy drain deadline: echo exits 0 on SIGTERM (status %d)", st);
}

/* Every case, in order; test_drain BINARY NAME... runs the NAMEd ones. */
static const struct {
	const char *name;
	void (*fn)(void);
} cases[] = {
	{ "serve_drain", test_serve_drain },
	{ "serve_drain_pipelined", test_serve_drain_pipelined },
	{ "serve_drain_timeout", test_serve_drain_timeout },
	{ "relay_drain", test_relay_drain },
	{ "echo_drain", test_echo_drain },
	{ "serve_drain_fresh", test_serve_drain_fresh },
	{ "serve_drain_queued", test_serve_drain_queued },
	{ "echo_drain_queued", test_echo_drain_queued },
	{ "relay_drain_queued", test_relay_drain_queued },
	{ "echo_drain_emfile", test_echo_drain_emfile },
	{ "serve_drain_emfile", test_serve_drain_emfile },
	{ "serve_drain_emfile_shards", test_serve_drain_emfile_shards },
	{ "serve_drain_emfile_before", test_serve_drain_emfile_before },
	{ "serve_drain_emfile_wait_deadline", test_serve_drain_emfile_wait_deadline },
	{ "relay_drain_emfile", test_relay_drain_emfile },
	{ "echo_drain_emfile_deadline", test_echo_drain_emfile_deadline },
	{ "serve_emfile_cache_shed", test_serve_emfile_cache_shed },
	{ "serve_drain_emfile_cache_held", test_serve_drain_emfile_cache_held },
	{ "serve_drain_emfile_wait_closed", test_serve_drain_emfile_wait_closed },
	{ "serve_emfile_linger_shed", test_serve_emfile_linger_shed },
	{ "serve_emfile_shed_503", test_serve_emfile_shed_503 },
	{ "serve_emfile_shed_stop", test_serve_emfile_shed_stop },
	{ "serve_emfile_shed_drain", test_serve_emfile_shed_drain },
	{ "serve_emfile_shed_drain_deadline", test_serve_emfile_shed_drain_deadline },
	{ "relay_proxy_drain", test_relay_proxy_drain },
	{ "relay_proxy_drain_deadline", test_relay_proxy_drain_deadline },
	{ "serve_emfile_shed_503_accept", test_serve_emfile_shed_503_accept },
};

int main(int argc, char **argv)
{
	char path[256];
	int fd;

	if (argc < 2) {
		fprintf(stderr, "usage: test_drain RINGPLANE_BINARY [CASE...]\n");
		return 2;
	}
	bin = argv[1];
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (make_root(root, sizeof(root), "drain", small, sizeof(small))) {
		printf("SKIP: cannot make a root under /tmp: %s\n", strerror(errno));
		return 77;
	}
	big = malloc(BIG_LEN);
	if (!big)
		return 1;
	for (size_t i = 0; i < BIG_LEN; i += 8) {
		uint64_t v = rng();

		memcpy(big + i, &v, 8);
	}
	snprintf(path, sizeof(path), "%s/big.bin", root);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, big, BIG_LEN) != (ssize_t)BIG_LEN) {
		printf("SKIP: cannot write %s: %s\n", path, strerror(errno));
		return 77;
	}
	close(fd);
	for (int k = 0; k < MFILES; k++) {
		for (size_t i = 0; i < MLEN; i++)
			mbody[k][i] = (char)('A' + (i * 7 + (size_t)k * 13) % 58);
		snprintf(path, sizeof(path), "%s/m%d.txt", root, k);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || write(fd, mbody[k], MLEN) != MLEN) {
			printf("SKIP: cannot write %s: %s\n", path, strerror(errno));
			return 77;
		}
		close(fd);
	}
	for (int k = 0; k < NFILES; k++) {
		for (size_t i = 0; i < sizeof(small); i++)
			fbody[k][i] = small[(i + (size_t)k + 1) % sizeof(small)];
		snprintf(path, sizeof(path), "%s/f%d.txt", root, k);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || write(fd, fbody[k], sizeof(small)) != (ssize_t)sizeof(small)) {
			printf("SKIP: cannot write %s: %s\n", path, strerror(errno));
			return 77;
		}
		close(fd);
	}

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		bool run = argc < 3;

		for (int a = 2; a < argc; a++)
			run = run || !strcmp(argv[a], cases[k].name);
		if (run)
			cases[k].fn();
	}

	snprintf(path, sizeof(path), "%s/big.bin", root);
	unlink(path);
	for (int k = 0; k < NFILES; k++) {
		snprintf(path, sizeof(path), "%s/f%d.txt", root, k);
		unlink(path);
	}
	for (int k = 0; k < MFILES; k++) {
		snprintf(path, sizeof(path), "%s/m%d.txt", root, k);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/small.txt", root);
	unlink(path);
	rmdir(root);
	free(big);
	if (failures) {
		printf("FAIL: %d check(s)\n", failures);
		return 1;
	}
	printf("PASS\n");
	return 0;
}
