/* SPDX-License-Identifier: MIT */
/*
 * Stalls at scale (issue 14): many connections that trickle one byte a
 * second and never finish what they started, against the real servers.
 *
 *   serve   `ringplane serve --header-timeout 5`: N slowloris connections
 *           each send one byte of a GET head a second (never its end);
 *   relay   `ringplane relay --accept-proxy` in front of `ringplane echo`:
 *           N connections each send one byte of a PROXY v1 header a second
 *           (never its CRLF); the relay's PROXY header timeout is 5 s.
 *
 * N is 1,000 (200 with RP_TEST_REDUCED=1, for ASan; RP_STALL_CONNS=N
 * overrides). While they trickle, a thread of the test keeps starting fresh
 * clients (one whole exchange each, checked byte for byte: serve a GET of a
 * 100-byte file, relay a PROXY header and a line echoed back): every one
 * must be answered within 1 s; their latencies are printed. Every stalled
 * connection must be dropped by the server (EOF or reset seen by the
 * client) no earlier than the timeout less one tick and no later than the
 * timeout plus a bound (1.5 s; 3 s reduced) counted from its first byte
 * (serve) or its connect (relay). Then the server's descriptors must come
 * back to their count before the stall (the relay's upstream echo's too:
 * no upstream connection is made for a header that never completes), and
 * its exit counters must show the stall exactly: serve header_timeouts ==
 * N, relay PROXY timeouts == N, and the fresh clients all counted as
 * answered (2xx; PROXY accepted; echo connections).
 *
 * RLIMIT_NOFILE is raised for the test and the servers it starts; where it
 * cannot cover N connections the test exits 77 and says why. Every wait is
 * bounded.
 *
 * Usage: test_stall RINGPLANE_BINARY.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"
#include "test_child.h"

static bool reduced;
static unsigned nstall;
static char root[64];

#define SMALL_LEN   100
#define FRESH_LIMIT 1000 /* ms: a fresh client's whole exchange */
#define FRESH_MAX   4096 /* latencies kept per phase */
static char small[SMALL_LEN];

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* ---- clients (test_child.h: children, stat_sum, dial) ---- */

enum kind { K_SERVE, K_RELAY };

/* One fresh client's whole exchange; true when answered right by @end_ms. */
static bool fresh_exchange(int port, enum kind k, unsigned id, uint64_t end_ms)
{
	char req[160], buf[1024], line[32];
	int fd = dial(port), n, end;
	unsigned left;
	size_t got;
	bool ok = false;

	if (fd < 0)
		return false;
	snprintf(line, sizeof(line), "fresh-%08u\n", id);
	if (k == K_SERVE)
		n = snprintf(req, sizeof(req),
			     "GET /small.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	else
		n = snprintf(req, sizeof(req), "PROXY TCP4 192.0.2.1 198.51.100.2 %u 443\r\n%s",
			     1024 + id % 60000, line);
	if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
		goto out;
	left = end_ms > now_ms() ? (unsigned)(end_ms - now_ms()) : 0;
	if (k == K_RELAY) {
		/* echo answers the line; then we close (the relay passes it on) */
		size_t want = strlen(line);

		ok = read_upto(fd, buf, want, left, NULL) == want && !memcmp(buf, line, want);
		goto out;
	}
	/* everything the server sends until its EOF */
	got = read_upto(fd, buf, sizeof(buf) - 1, left, &end);
	if (end == 0 && got > 0) {
		char *eoh;

		buf[got] = 0;
		eoh = strstr(buf, "\r\n\r\n");
		ok = !strncmp(buf, "HTTP/1.1 200 ", 13) && eoh &&
		     got == (size_t)(eoh + 4 - buf) + SMALL_LEN && !memcmp(eoh + 4, small, SMALL_LEN);
	}
out:
	close(fd);
	return ok;
}

struct fresh {
	int port;
	enum kind k;
	atomic_bool stop;
	unsigned n, late;	/* exchanges; those not answered right within FRESH_LIMIT */
	uint32_t us[FRESH_MAX]; /* latency of each, us */
};

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* A fresh client every 100 ms until told to stop. */
static void *fresh_loop(void *arg)
{
	struct fresh *f = arg;

	while (!atomic_load(&f->stop) && f->n < FRESH_MAX) {
		uint64_t t0 = now_us();
		bool ok = fresh_exchange(f->port, f->k, f->n, t0 / 1000 + FRESH_LIMIT);
		uint64_t us = now_us() - t0;

		if (!ok || us > FRESH_LIMIT * 1000ull)
			f->late++;
		f->us[f->n++] = (uint32_t)(us < UINT32_MAX ? us : UINT32_MAX);
		sleep_ms(100);
	}
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* ---- one stall ---- */

struct stall {
	int fd;
	unsigned sent;	   /* bytes of the head sent */
	uint64_t t0;	   /* its first byte (serve) or connect (relay), ms */
	int64_t drop_ms;   /* dropped this long after t0; -1 while open */
	unsigned answered; /* bytes the server sent before dropping it */
};

static void drop(struct stall *s, uint64_t now)
{
	s->drop_ms = (int64_t)(now - s->t0);
	close(s->fd);
	s->fd = -1;
}

/*
 * N connections trickling @head one byte a second (never its last byte)
 * against the server at @port, whose timeout for them is @timeout_ms;
 * fresh clients of kind @k meanwhile. Checks what the header says.
 * @t0_at_connect: the server's clock for a connection starts at accept
 * (relay) rather than at its first byte (serve). @up: the relay's upstream,
 * whose descriptors must not change either.
 */
static void stall_phase(const char *name, struct child *srv, struct child *up, enum kind k,
			const char *head, unsigned timeout_ms, bool t0_at_connect,
			unsigned *fresh_count)
{
	const unsigned slack = reduced ? 3000 : 1500, tick = 300;
	size_t hlen = strlen(head);
	struct stall *st = calloc(nstall, sizeof(*st));
	struct pollfd *pfd = calloc(nstall, sizeof(*pfd));
	struct fresh *f = calloc(1, sizeof(*f));
	long fd0, fd_peak = 0, fd_after, up0 = 0, up_after = 0;
	uint64_t open_start, open_ms, next_tick, end, last_t0 = 0;
	unsigned open = 0, dropped = 0, early = 0, late = 0, answered = 0, failed_open = 0;
	int64_t dmin = INT64_MAX, dmax = 0;
	pthread_t th;

	if (!st || !pfd || !f) {
		CHECK(0, "%s: out of memory", name);
		goto out;
	}
	/* a warm-up exchange, so what the server opens once is in the count */
	CHECK(fresh_exchange(srv->port, k, 999999, now_ms() + 2000), "%s: warm-up exchange", name);
	sleep_ms(300);
	fd0 = fd_count(srv->pid);
	if (up)
		up0 = fd_count(up->pid);

	f->port = srv->port;
	f->k = k;
	if (pthread_create(&th, NULL, fresh_loop, f)) {
		CHECK(0, "%s: pthread_create", name);
		goto out;
	}

	open_start = now_ms();
	for (unsigned i = 0; i < nstall; i++) {
		uint64_t t = now_ms();

		st[i].drop_ms = -1;
		st[i].fd = dial(srv->port);
		if (st[i].fd < 0 || send(st[i].fd, head, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) {
			if (st[i].fd >= 0)
				close(st[i].fd);
			st[i].fd = -1;
			st[i].drop_ms = 0;
			failed_open++;
			continue;
		}
		st[i].sent = 1;
		st[i].t0 = t0_at_connect ? t : now_ms();
		last_t0 = st[i].t0;
		open++;
	}
	open_ms = now_ms() - open_start;
	CHECK(failed_open == 0, "%s: %u of %u stalled connections could not open", name,
	      failed_open, nstall);

	/* trickle, watch for drops; bounded by the last one's deadline */
	next_tick = open_start + 1000;
	end = last_t0 + timeout_ms + slack + 1000;
	while (dropped < open && now_ms() < end) {
		uint64_t now = now_ms();
		int wait = next_tick > now ? (int)(next_tick - now) : 0;

		for (unsigned i = 0; i < nstall; i++) {
			pfd[i].fd = st[i].fd;
			pfd[i].events = POLLIN;
			pfd[i].revents = 0;
		}
		if (poll(pfd, nstall, wait > 50 ? 50 : wait) > 0) {
			now = now_ms();
			for (unsigned i = 0; i < nstall; i++) {
				char b[512];
				ssize_t r;

				if (st[i].fd < 0 || !pfd[i].revents)
					continue;
				r = recv(st[i].fd, b, sizeof(b), MSG_DONTWAIT);
				if (r > 0) {
					st[i].answered += (unsigned)r;
					continue;
				}
				if (r < 0 && errno == EAGAIN)
					continue;
				drop(&st[i], now);
				dropped++;
			}
		}
		now = now_ms();
		if (now < next_tick)
			continue;
		if (!fd_peak)
			fd_peak = fd_count(srv->pid);
		for (unsigned i = 0; i < nstall; i++) {
			if (st[i].fd < 0 || st[i].sent + 1 >= hlen)
				continue; /* never the last byte: the head stays unfinished */
			if (send(st[i].fd, head + st[i].sent, 1, MSG_NOSIGNAL | MSG_DONTWAIT) ==
			    1) {
				st[i].sent++;
			} else if (errno != EAGAIN) {
				drop(&st[i], now); /* closed by the server since the last poll */
				dropped++;
			}
		}
		next_tick += 1000;
	}
	atomic_store(&f->stop, true);
	pthread_join(th, NULL);

	for (unsigned i = 0; i < nstall; i++) {
		if (st[i].fd >= 0) {
			close(st[i].fd);
			continue;
		}
		if (!st[i].t0)
			continue; /* never opened */
		if (st[i].drop_ms < dmin)
			dmin = st[i].drop_ms;
		if (st[i].drop_ms > dmax)
			dmax = st[i].drop_ms;
		if (st[i].drop_ms + tick < timeout_ms)
			early++;
		if (st[i].drop_ms > timeout_ms + slack)
			late++;
		if (st[i].answered)
			answered++;
	}
	CHECK(dropped == open, "%s: %u of %u stalled connections dropped within %u ms", name,
	      dropped, open, timeout_ms + slack + 1000);
	CHECK(!early, "%s: %u stalled connections dropped before %u ms", name, early,
	      timeout_ms - tick);
	CHECK(!late, "%s: %u stalled connections dropped after more than %u ms", name, late,
	      timeout_ms + slack);

	/* descriptors back to where they were */
	end = now_ms() + 5000;
	do {
		fd_after = fd_count(srv->pid);
		if (up)
			up_after = fd_count(up->pid);
		if (fd_after == fd0 && up_after == up0)
			break;
		sleep_ms(50);
	} while (now_ms() < end);
	CHECK(fd_after == fd0, "%s: %ld descriptors after the stall, %ld before", name, fd_after,
	      fd0);
	CHECK(up_after == up0, "%s: upstream has %ld descriptors after the stall, %ld before", name,
	      up_after, up0);

	/* fresh clients */
	CHECK(f->n >= 10, "%s: only %u fresh clients ran", name, f->n);
	CHECK(!f->late, "%s: %u of %u fresh clients not answered right within %u ms", name, f->late,
	      f->n, FRESH_LIMIT);
	*fresh_count = f->n;
	if (f->n) {
		qsort(f->us, f->n, sizeof(f->us[0]), cmp_u32);
		printf("%s: %u fresh clients during the stall, latency min %.2f median %.2f p99 "
		       "%.2f max %.2f ms (limit %u ms), %u late\n",
		       name, f->n, f->us[0] / 1000.0, f->us[f->n / 2] / 1000.0,
		       f->us[f->n * 99 / 100] / 1000.0, f->us[f->n - 1] / 1000.0, FRESH_LIMIT,
		       f->late);
	}
	printf("%s: %u stalled connections (opened in %llu ms, 1 byte/s), %u dropped at the "
	       "%u ms timeout after %lld..%lld ms (bound %u..%u), %u got bytes before the close; "
	       "server fds %ld before, %ld stalled, %ld after%s\n",
	       name, open, (unsigned long long)open_ms, dropped, timeout_ms,
	       (long long)(dropped ? dmin : 0), (long long)dmax, timeout_ms - tick,
	       timeout_ms + slack, answered, fd0, fd_peak, fd_after,
	       up ? "; upstream fds unchanged" : "");
out:
	free(st);
	free(pfd);
	free(f);
}

/* ---- the servers ---- */

static void test_serve(void)
{
	const char *args[] = {"serve",
			      "--listen",
			      "127.0.0.1:0",
			      "--root",
			      root,
			      "--no-pin",
			      "--shards",
			      "1",
			      "--header-timeout",
			      "5",
			      "--keepalive-timeout",
			      "60",
			      NULL};
	struct child *srv = calloc(1, sizeof(*srv));
	unsigned fresh = 0;
	int rc;

	if (!srv || child_start(srv, args)) {
		CHECK(0, "serve did not start");
		free(srv);
		return;
	}
	stall_phase("serve", srv, NULL, K_SERVE, "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n", 5000,
		    false, &fresh);
	rc = child_stop(srv, 5000);
	CHECK(rc == 0, "serve: exit status %d", rc);
	CHECK(stat_sum(srv->log, "header_timeouts") == nstall,
	      "serve: header_timeouts %llu, %u stalled", stat_sum(srv->log, "header_timeouts"),
	      nstall);
	CHECK(stat_sum(srv->log, "2xx") == fresh + 1, "serve: 2xx %llu, %u fresh clients + 1",
	      stat_sum(srv->log, "2xx"), fresh);
	printf("serve: counters at exit: header_timeouts %llu, 2xx %llu, conns %llu\n",
	       stat_sum(srv->log, "header_timeouts"), stat_sum(srv->log, "2xx"),
	       stat_sum(srv->log, "conns"));
	free(srv);
}

static void test_relay(void)
{
	const char *eargs[] = {"echo", "--listen",	 "127.0.0.1:0", "--no-pin", "--shards",
			       "1",    "--idle-timeout", "0",		NULL};
	struct child *up = calloc(1, sizeof(*up)), *srv = calloc(1, sizeof(*srv));
	unsigned fresh = 0;
	char upstr[32];
	int rc;

	if (!up || !srv || child_start(up, eargs)) {
		CHECK(0, "relay: upstream echo did not start");
		free(up);
		free(srv);
		return;
	}
	snprintf(upstr, sizeof(upstr), "127.0.0.1:%d", up->port);
	const char *rargs[] = {"relay",		 "--listen", "127.0.0.1:0", "--upstream", upstr,
			       "--accept-proxy", "--no-pin", "--shards",    "1",	  NULL};

	if (child_start(srv, rargs)) {
		CHECK(0, "relay did not start");
		child_stop(up, 5000);
		free(up);
		free(srv);
		return;
	}
	stall_phase("relay", srv, up, K_RELAY, "PROXY TCP4 192.0.2.1 198.51.100.2 40000 443\r\n",
		    5000, true, &fresh);
	rc = child_stop(srv, 5000);
	CHECK(rc == 0, "relay: exit status %d", rc);
	CHECK(child_stop(up, 5000) == 0, "relay: upstream echo exit");
	CHECK(stat_sum(srv->log, "timeouts") == nstall, "relay: PROXY timeouts %llu, %u stalled",
	      stat_sum(srv->log, "timeouts"), nstall);
	CHECK(stat_sum(srv->log, "accepted") == fresh + 1,
	      "relay: PROXY accepted %llu, %u fresh clients + 1", stat_sum(srv->log, "accepted"),
	      fresh);
	CHECK(stat_sum(up->log, "conns") == fresh + 1,
	      "relay: upstream saw %llu connections, %u fresh clients + 1",
	      stat_sum(up->log, "conns"), fresh);
	printf("relay: counters at exit: PROXY timeouts %llu, accepted %llu, refused %llu; "
	       "upstream connections %llu\n",
	       stat_sum(srv->log, "timeouts"), stat_sum(srv->log, "accepted"),
	       stat_sum(srv->log, "refused"), stat_sum(up->log, "conns"));
	free(up);
	free(srv);
}

int main(int argc, char **argv)
{
	const char *env = getenv("RP_STALL_CONNS");
	struct rlimit rl;
	unsigned need;
	char path[128];

	if (argc < 2) {
		fprintf(stderr, "usage: test_stall RINGPLANE_BINARY\n");
		return 2;
	}
	bin = argv[1];
	reduced = getenv("RP_TEST_REDUCED") && *getenv("RP_TEST_REDUCED") == '1';
	nstall = env && atoi(env) > 0 ? (unsigned)atoi(env) : reduced ? 200 : 1000;
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);

	/* the test holds N stalled + a few; the relay holds one per stalled
	 * connection (no upstream for them) and two per fresh one; the children
	 * inherit the limit */
	need = nstall + 1024;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < need) {
		rl.rlim_cur = rl.rlim_max < 65536 ? rl.rlim_max : 65536;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < need) {
		printf("SKIP: RLIMIT_NOFILE is %llu (hard %llu); %u stalled connections need %u\n",
		       (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max, nstall,
		       need);
		return 77;
	}
	if (make_root(root, sizeof(root), "stall", small, SMALL_LEN)) {
		printf("SKIP: cannot make a root under /tmp: %s\n", strerror(errno));
		return 77;
	}

	test_serve();
	test_relay();

	snprintf(path, sizeof(path), "%s/small.txt", root);
	unlink(path);
	rmdir(root);
	printf("%s\n", failures ? "FAIL" : "PASS");
	return failures ? 1 : 0;
}
