/* SPDX-License-Identifier: MIT */
/*
 * Idle connections on the real servers (issue 14: 10,000 concurrent
 * connections on each server; issue 11: memory held per idle connection).
 *
 * For `ringplane echo`, `ringplane relay` (in front of a `ringplane echo`
 * upstream) and `ringplane serve` (a small world-readable root the test
 * makes), each --shards 1 --no-pin, two rounds of:
 *
 *   - the server's VmRSS (/proc/PID/status) and open descriptors
 *     (/proc/PID/fd) after one warm-up exchange (so what the server opens
 *     once, e.g. serve's cached file, is in the "before" figure);
 *   - N connections (10,000; 2,000 with RP_TEST_REDUCED=1; RP_IDLE_CONNS=N
 *     overrides), each doing one small exchange, checked byte for byte
 *     (echo: 11 bytes back; relay: the same through to echo; serve: one
 *     keep-alive GET of a 100-byte file), then left idle;
 *   - RSS and descriptors again; a fresh client must be answered within 2 s
 *     (its latency is printed); the exit-stats line is asked for (SIGUSR1);
 *   - everything closed; the descriptor count must come back to the
 *     "before" figure exactly within 15 s.
 *
 * Printed per server: idle RSS per connection ((RSS idle - RSS before) / N),
 * descriptors before / idle / after close, the fresh client's latency, RSS
 * after close of both rounds (the second round must not keep growing), and
 * the server's own counters at exit. RSS is the server's user memory
 * outside its pool: the pool is prefaulted at start (pool objects never
 * show in a delta), so the pool's live bytes ("pool_live" in the stats
 * line, asked for with SIGUSR1 before, idle and after close) are read
 * beside it, and must come back to the start after close. RSS delta + pool
 * delta per idle connection is asserted against the goal, 2.5 KB, on each
 * server (measured 2026-11-26, release, 10,000 connections: echo 511 B,
 * relay 1,792 B, serve 384 B of pool, RSS delta 0; docs/reliability.md).
 * The kernel's socket memory is not in RSS at all; the delta of the host's
 * TCP socket slab is printed beside it for that reason.
 *
 * Needs RLIMIT_NOFILE of N + 5000 (exit 77 otherwise); the relay holds two
 * descriptors per connection, and where the limit cannot hold 2N it runs
 * the N it can and says so (this host's hard limit is 20,000: 9,968).
 * Every wait is bounded.
 *
 * Usage: test_idle RINGPLANE_BINARY.
 */
#include <arpa/inet.h>
#include <dirent.h>
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"
#include "test_child.h"

static unsigned nconns;	     /* this server's N */
static unsigned nconns_want; /* N asked for (the relay may get fewer) */
static char root[64];

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* ---- /proc (test_child.h has RSS and descriptors) ---- */

/* Bytes of the host's TCP socket slab ("TCP" cache: active objects x size),
 * -1 where /proc/slabinfo cannot be read. Host-wide: both ends of every
 * loopback connection, and other processes. */
static long long tcp_slab_bytes(void)
{
	char line[512];
	long long v = -1;
	FILE *f = fopen("/proc/slabinfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long active, total, size;
		char name[64];

		if (sscanf(line, "%63s %lu %lu %lu", name, &active, &total, &size) == 4 &&
		    !strcmp(name, "TCP")) {
			v = (long long)active * (long long)size;
			break;
		}
	}
	fclose(f);
	return v;
}

/*
 * The bytes the server's pool holds ("pool_live N" in its stats line; echo,
 * relay and serve print it), summed over its shards, less serve's memo_held:
 * SIGUSR1, then the line(s) it prints within 2 s. -1 where the server
 * prints no such figure.
 */
static long long pool_live(struct child *c)
{
	size_t from = c->len;
	long long sum = -1;
	const char *p;

	kill(c->pid, SIGUSR1);
	for (uint64_t end = now_ms() + 2000; now_ms() < end;) {
		const char *line = strstr(c->log + from, "shard ");

		if (line && strchr(line, '\n'))
			break;
		child_drain(c, NULL, 20);
	}
	for (p = c->log + from; (p = strstr(p, " pool_live ")); p += 11)
		sum = (sum < 0 ? 0 : sum) + strtoll(p + 11, NULL, 10);
	/* less serve's kept small bodies (memo_held, in pool_live): a shard's
	 * cache of at most 512 KB, given back up to 1.25 s after its read,
	 * not a connection's (a body read by the last fresh client was still
	 * held when the close was measured: 128 B more) */
	for (p = c->log + from; sum > 0 && (p = strstr(p, " memo_held ")); p += 11)
		sum -= strtoll(p + 11, NULL, 10);
	return sum;
}

/* ---- clients ---- */

enum kind { K_ECHO, K_SERVE };

#define SMALL_LEN 100
static char small[SMALL_LEN + 1];

static bool ask(int fd, enum kind k, unsigned id)
{
	char req[64];
	int n = k == K_ECHO
			? snprintf(req, sizeof(req), "idle-%05u\n", id % 100000)
			: snprintf(req, sizeof(req), "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");

	return send(fd, req, (size_t)n, MSG_NOSIGNAL) == n;
}

/* Read the answer to ask(fd, k, id) by @end_ms; true when whole and right. */
static bool answer(int fd, enum kind k, unsigned id, uint64_t end_ms)
{
	char buf[1024], want[64];
	size_t got = 0, need = 0;

	if (k == K_ECHO)
		need = (size_t)snprintf(want, sizeof(want), "idle-%05u\n", id % 100000);
	while (now_ms() < end_ms && got < sizeof(buf) - 1) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t r;

		if (poll(&p, 1, 20) <= 0)
			continue;
		r = recv(fd, buf + got, sizeof(buf) - 1 - got, MSG_DONTWAIT);
		if (r <= 0)
			return false;
		got += (size_t)r;
		buf[got] = 0;
		if (k == K_ECHO) {
			if (got >= need)
				return got == need && !memcmp(buf, want, need);
			continue;
		}
		char *eoh = strstr(buf, "\r\n\r\n"), *cl;

		if (!eoh)
			continue;
		cl = strcasestr(buf, "\r\nContent-Length:");
		if (!cl || cl > eoh || strtoul(cl + 17, NULL, 10) != SMALL_LEN)
			return false;
		if (got < (size_t)(eoh + 4 - buf) + SMALL_LEN)
			continue;
		return !strncmp(buf, "HTTP/1.1 200 ", 13) &&
		       got == (size_t)(eoh + 4 - buf) + SMALL_LEN &&
		       !memcmp(eoh + 4, small, SMALL_LEN);
	}
	return false;
}

/* A new client, one exchange; its latency in us, or -1 if not answered in 2 s. */
static long long fresh_client(int port, enum kind k)
{
	uint64_t t0 = now_us();
	int fd = dial(port);
	bool ok = fd >= 0 && ask(fd, k, 99999) && answer(fd, k, 99999, now_ms() + 2000);
	long long us = (long long)(now_us() - t0);

	if (fd >= 0)
		close(fd);
	return ok ? us : -1;
}

/* ---- one server ---- */

#define BATCH 500

struct round {
	long rss0, rss1, rss2, fd0, fd1, fd2, up_fd0, up_fd2;
	long long slab0, slab1, fresh_us, pool0, pool1, pool2;
	unsigned ok, open_ms, close_ms;
};

static void one_round(const char *name, struct child *srv, struct child *up, enum kind k, int *fds,
		      struct round *r)
{
	uint64_t t0, end;

	CHECK(fresh_client(srv->port, k) >= 0, "%s: warm-up exchange failed", name);
	sleep_ms(300);
	r->rss0 = rss_kb(srv->pid);
	r->fd0 = fd_count(srv->pid);
	r->up_fd0 = up ? fd_count(up->pid) : 0;
	r->slab0 = tcp_slab_bytes();
	r->pool0 = pool_live(srv);

	/* batches: connect and ask BATCH, then read their answers */
	t0 = now_ms();
	r->ok = 0;
	for (unsigned b = 0; b < nconns; b += BATCH) {
		unsigned e = b + BATCH < nconns ? b + BATCH : nconns;

		for (unsigned i = b; i < e; i++) {
			fds[i] = dial(srv->port);
			if (fds[i] >= 0 && !ask(fds[i], k, i)) {
				close(fds[i]);
				fds[i] = -1;
			}
		}
		end = now_ms() + 10000;
		for (unsigned i = b; i < e; i++)
			if (fds[i] >= 0 && answer(fds[i], k, i, end))
				r->ok++;
	}
	r->open_ms = (unsigned)(now_ms() - t0);
	CHECK(r->ok == nconns, "%s: %u of %u exchanges right", name, r->ok, nconns);

	sleep_ms(500); /* idle */
	r->rss1 = rss_kb(srv->pid);
	r->fd1 = fd_count(srv->pid);
	r->slab1 = tcp_slab_bytes();
	r->pool1 = pool_live(srv); /* and the server's counters while they idle */
	r->fresh_us = fresh_client(srv->port, k);
	CHECK(r->fresh_us >= 0, "%s: a fresh client with %u idle ones not answered in 2 s", name,
	      nconns);

	t0 = now_ms();
	for (unsigned i = 0; i < nconns; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	end = now_ms() + 15000;
	do {
		sleep_ms(50);
		r->fd2 = fd_count(srv->pid);
		r->up_fd2 = up ? fd_count(up->pid) : 0;
	} while ((r->fd2 != r->fd0 || r->up_fd2 != r->up_fd0) && now_ms() < end);
	r->close_ms = (unsigned)(now_ms() - t0);
	sleep_ms(300);
	r->rss2 = rss_kb(srv->pid);
	r->pool2 = pool_live(srv);
	CHECK(r->pool2 == r->pool0, "%s: pool holds %lld B after close, %lld B before", name,
	      r->pool2, r->pool0);
	CHECK(r->fd2 == r->fd0, "%s: %ld descriptors after close, %ld before", name, r->fd2,
	      r->fd0);
	CHECK(r->up_fd2 == r->up_fd0, "%s: upstream has %ld descriptors after close, %ld before",
	      name, r->up_fd2, r->up_fd0);
}

/* Print the "shard N: ..." lines of @log, each once per snapshot. */
static void print_stats(const char *name, const char *log)
{
	for (const char *p = log; (p = strstr(p, "shard "));) {
		const char *nl = strchr(p, '\n');
		int len = nl ? (int)(nl - p) : (int)strlen(p);

		if (p == log || p[-1] == '\n')
			printf("  %s stats: %.*s\n", name, len, p);
		p += len;
	}
}

static void run_server(const char *name, const char *const *args, bool relay, enum kind k)
{
	struct child *srv, *up = NULL;
	unsigned per = relay ? 2 : 1; /* server descriptors per connection */
	struct round r[2];
	struct rlimit rl;
	char upstr[32];
	int *fds, rc;

	/* the server holds @per descriptors a connection and a few of its own;
	 * where the limit (hard 20,000 on some hosts) is short, the relay gets
	 * the N it can hold, said so, rather than none */
	getrlimit(RLIMIT_NOFILE, &rl);
	nconns = nconns_want;
	if (rl.rlim_cur < (rlim_t)per * nconns + 64) {
		nconns = rl.rlim_cur > 64 ? (unsigned)((rl.rlim_cur - 64) / per) : 0;
		if (nconns < 1000) {
			printf("%s: SKIP: RLIMIT_NOFILE %llu, %u connections need %u\n", name,
			       (unsigned long long)rl.rlim_cur, nconns_want,
			       per * nconns_want + 64);
			return;
		}
		printf("%s: RLIMIT_NOFILE %llu (hard %llu) holds %u connections of %u descriptors "
		       "each, not %u: running %u\n",
		       name, (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
		       nconns, per, nconns_want, nconns);
	}
	srv = calloc(1, sizeof(*srv));
	fds = calloc(nconns, sizeof(int));
	if (relay) {
		const char *eargs[] = {"echo",		 "--listen", "127.0.0.1:0",
				       "--no-pin",	 "--shards", "1",
				       "--idle-timeout", "0",	     NULL};

		up = calloc(1, sizeof(*up));
		CHECK(up && child_start(up, eargs) == 0, "%s: upstream echo did not start", name);
		snprintf(upstr, sizeof(upstr), "127.0.0.1:%d", up->port);
		const char *rargs[] = {"relay",	   "--listen", "127.0.0.1:0", "--upstream", upstr,
				       "--no-pin", "--shards", "1",	      NULL};
		CHECK(child_start(srv, rargs) == 0, "%s did not start", name);
	} else {
		CHECK(child_start(srv, args) == 0, "%s did not start", name);
	}
	for (int i = 0; i < 2 && !failures; i++)
		one_round(name, srv, up, k, fds, &r[i]);
	child_drain(srv, NULL, 200);
	rc = child_stop(srv, 5000);
	CHECK(rc == 0, "%s: exit status %d", name, rc);
	if (up)
		CHECK(child_stop(up, 5000) == 0, "%s: upstream echo exit", name);
	if (failures) {
		free(srv);
		free(up);
		free(fds);
		return;
	}
	for (int i = 0; i < 2; i++) {
		long long d = ((long long)r[i].rss1 - r[i].rss0) * 1024;
		long long slab = r[i].slab0 >= 0 && r[i].slab1 >= 0 ? r[i].slab1 - r[i].slab0 : -1;
		long long pool = r[i].pool0 >= 0 && r[i].pool1 >= 0 ? r[i].pool1 - r[i].pool0 : -1;
		long long per_conn = (d + (pool > 0 ? pool : 0)) / (long long)nconns;

		/* user memory an idle connection holds: the pool's live bytes (its
		 * arena is prefaulted, so they never show in RSS) plus what RSS
		 * grew by outside it */
		CHECK(pool >= 0, "%s: no pool_live in the server's stats line", name);
		if (pool >= 0)
			CHECK(per_conn <= 2560,
			      "%s: %lld B per idle connection (%lld B pool, %lld B RSS), goal 2560 "
			      "B",
			      name, per_conn, pool / (long long)nconns, d / (long long)nconns);
		if (pool >= 0)
			printf("%s round %d: pool live %lld -> %lld B = %lld B per connection, "
			       "after "
			       "close %lld B; with the RSS delta %lld B per idle connection, the "
			       "2560 "
			       "B goal %s\n",
			       name, i + 1, r[i].pool0, r[i].pool1, pool / (long long)nconns,
			       r[i].pool2, per_conn, per_conn <= 2560 ? "met" : "NOT met");
		else
			printf("%s round %d: the server prints no pool figure: its pool bytes per "
			       "connection are not measured here\n",
			       name, i + 1);
		printf("%s round %d: %u connections (%u ms to open and exchange), idle RSS %ld -> "
		       "%ld kB = %lld B per connection (pool prefaulted, not seen here; "
		       "vs the 2560 B goal: %s); fds %ld before, %ld idle, %ld after close "
		       "(%u ms)%s; "
		       "fresh client answered in %lld us; RSS after close %ld kB; host TCP slab "
		       "+%lld B (%lld B per connection, both ends%s)\n",
		       name, i + 1, nconns, r[i].open_ms, r[i].rss0, r[i].rss1,
		       d / (long long)nconns, d / (long long)nconns <= 2560 ? "met" : "NOT met",
		       r[i].fd0, r[i].fd1, r[i].fd2, r[i].close_ms,
		       up ? " (upstream echo back too)" : "", r[i].fresh_us, r[i].rss2, slab,
		       slab >= 0 ? slab / (long long)nconns : -1, up ? ", and the upstream's" : "");
	}
	printf("%s: RSS after close %ld kB (round 1), %ld kB (round 2): %s\n", name, r[0].rss2,
	       r[1].rss2, r[1].rss2 <= r[0].rss2 + 1024 ? "not growing" : "GREW by more than 1 MB");
	print_stats(name, srv->log);
	free(srv);
	free(up);
	free(fds);
}

int main(int argc, char **argv)
{
	const char *env = getenv("RP_IDLE_CONNS");
	bool reduced = getenv("RP_TEST_REDUCED") && *getenv("RP_TEST_REDUCED") == '1';
	struct rlimit rl = {65536, 65536};
	char path[128];

	if (argc < 2) {
		fprintf(stderr, "usage: test_idle RINGPLANE_BINARY\n");
		return 2;
	}
	bin = argv[1];
	nconns = env && atoi(env) > 0 ? (unsigned)atoi(env) : reduced ? 2000 : 10000;
	nconns_want = nconns;
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (setrlimit(RLIMIT_NOFILE, &rl)) { /* the children inherit it */
		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < nconns + 5000) {
		printf("SKIP: RLIMIT_NOFILE is %llu (hard %llu); %u idle connections need %u\n",
		       (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max, nconns,
		       nconns + 5000);
		return 77;
	}
	if (make_root(root, sizeof(root), "idle", small, SMALL_LEN)) {
		printf("SKIP: cannot make a root under /tmp: %s\n", strerror(errno));
		return 77;
	}

	const char *eargs[] = {"echo", "--listen",	 "127.0.0.1:0", "--no-pin", "--shards",
			       "1",    "--idle-timeout", "0",		NULL};
	const char *sargs[] = {
		"serve",    "--listen", "127.0.0.1:0",	       "--root", root, "--no-pin",
		"--shards", "1",	"--keepalive-timeout", "3600",	 NULL};

	run_server("echo", eargs, false, K_ECHO);
	if (!failures)
		run_server("relay", NULL, true, K_ECHO);
	if (!failures)
		run_server("serve", sargs, false, K_SERVE);

	snprintf(path, sizeof(path), "%s/small.txt", root);
	unlink(path);
	rmdir(root);
	printf("%s\n", failures ? "FAIL" : "PASS");
	return failures ? 1 : 0;
}
