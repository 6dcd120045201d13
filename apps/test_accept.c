/* SPDX-License-Identifier: MIT */
/*
 * A listener whose accept failed with EMFILE comes back even when its
 * back-off timer cannot be armed (apps/server.c, rp_app_accept_*), for
 * `ringplane relay` and `ringplane serve`: each runs with RP_APP_FAULT_BACKOFF
 * set, so every back-off timer fails to arm as with an empty pool, and a
 * descriptor limit of 32, then 33 (a relay connection takes two
 * descriptors: one of the two limits makes the accept itself fail). Clients
 * connect one at a time and stay until one is not answered within 500 ms
 * (the limit struck); all are closed; then a fresh client must be
 * answered within 5 s: the closes re-arm the accept. Before the shared
 * recovery only echo did that, and relay and serve stayed down for good.
 * The servers' exit stats must count failed accepts. Usage: test_accept
 * RINGPLANE_BINARY.
 * Then relay under a limit where the accept gets a descriptor and the
 * upstream socket does not: queued clients wait (the accept paused), none
 * reset, no spinning, all relayed once descriptors are free; closed and
 * counted at --connect-timeout when descriptors never free.
 * Then serve under a limit, with more clients than descriptors that each
 * stay lingering after their answer: what lingers is ended while the
 * accept is down, and every client is answered.
 * The hook is compiled into the faults build (-Dfaults=true) only; in
 * other builds the same runs go without it (the reserved back-off timer
 * re-arms the accept) and the test says that the poke path was skipped.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "test_child.h"

enum { MAX_HELD = 64 };

/* RP_APP_FAULT_BACKOFF exists in the faults build only (apps/server.c). */
#ifdef RP_FAULTS
#define HOOKS 1
#else
#define HOOKS 0
#endif

/* Dial @port, send @req and wait up to @ms for a reply starting with @want:
 * 1 answered (then *@keep gets the open socket when @keep is not NULL), 0
 * closed by the server (EOF or reset) or answered otherwise, -1 nothing
 * (or no connection); every socket but a kept one is closed. */
static int exchange(int port, const char *req, const char *want, unsigned ms, int *keep)
{
	uint64_t end = now_ms() + ms;
	char buf[64];
	int fd = dial(port), ret = -1;
	size_t got = 0, wl = strlen(want);

	if (fd < 0)
		return -1;
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
		close(fd);
		return 0;
	}
	while (ret < 0 && now_ms() < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 20) <= 0)
			continue;
		r = recv(fd, buf + got, sizeof(buf) - got, MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			ret = 0;
		else if (r > 0 && (got += (size_t)r) >= wl)
			ret = !memcmp(buf, want, wl) ? 1 : 0;
	}
	if (ret == 1 && keep)
		*keep = fd;
	else
		close(fd);
	return ret;
}

/* The socket of a client answered @want within @ms, or -1. */
static int ask(int port, const char *req, const char *want, unsigned ms)
{
	int fd = -1;

	return exchange(port, req, want, ms, &fd) == 1 ? fd : -1;
}

static unsigned long long run(const char *name, const char *const *args, rlim_t limit,
			      const char *req, const char *want)
{
	int held[MAX_HELD], n = 0, fd = -1, st;
	unsigned long long errs;
	uint64_t end;
	struct child s;

	if (HOOKS)
		setenv("RP_APP_FAULT_BACKOFF", "1000000", 1);
	child_nofile = limit;
	st = child_start(&s, args);
	child_nofile = 0;
	unsetenv("RP_APP_FAULT_BACKOFF");
	CHECK(st == 0, "%s did not start", name);
	if (st)
		return 0;
	while (n < MAX_HELD && (held[n] = ask(s.port, req, want, 500)) >= 0)
		n++;
	CHECK(n > 0 && n < MAX_HELD, "%s: limit %llu: %d clients held (want some, not all)", name,
	      (unsigned long long)limit, n);
	for (int i = 0; i < n; i++)
		close(held[i]);
	/* with the hook the closes are what re-arms the accept: no timer will */
	end = now_ms() + 5000;
	while (fd < 0 && now_ms() < end)
		fd = ask(s.port, req, want, 200);
	CHECK(fd >= 0, "%s: limit %llu: no fresh client answered within 5 s of the closes", name,
	      (unsigned long long)limit);
	if (fd >= 0)
		close(fd);
	st = child_stop(&s, 5000);
	CHECK(st == 0, "%s: exit status %d", name, st);
	errs = stat_sum(s.log, "accept_errors");
	printf("%s: limit %llu, back-off timers %s: %d clients held, a fresh one %s after "
	       "they closed; %llu failed accepts\n",
	       name, (unsigned long long)limit, HOOKS ? "failing" : "working", n,
	       fd >= 0 ? "answered" : "NOT answered", errs);
	return errs;
}

/* ---- the upstream's socket(2) out of descriptors ---- */

/* Wait until @end (now_ms) for each of @fds[0..@n) to get its own @msg[i]
 * back: st[i] 1 echoed, 0 closed by the relay first (EOF or reset; then
 * at[i] is when, now_ms), -1 nothing by then. With @done_close each that
 * ended is closed at once (@fds[i] -1): a client done gives the relay
 * its descriptors back. */
static void await_all(int *fds, char (*msg)[8], int n, uint64_t end, bool done_close, int *st,
		      uint64_t *at)
{
	char got[MAX_HELD][8];
	size_t len[MAX_HELD] = { 0 };
	int left = n;

	for (int i = 0; i < n; i++)
		st[i] = -1;
	while (left && now_ms() < end) {
		struct pollfd p[MAX_HELD];
		int idx[MAX_HELD], np = 0;

		for (int i = 0; i < n; i++)
			if (st[i] < 0) {
				p[np] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
				idx[np++] = i;
			}
		if (poll(p, (nfds_t)np, 20) <= 0)
			continue;
		for (int k = 0; k < np; k++) {
			int i = idx[k];
			size_t want = strlen(msg[i]);
			ssize_t r;

			if (!p[k].revents)
				continue;
			r = recv(fds[i], got[i] + len[i], want - len[i], MSG_DONTWAIT);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r <= 0) {
				st[i] = 0;
			} else if ((len[i] += (size_t)r) == want) {
				st[i] = !memcmp(got[i], msg[i], want);
			} else {
				continue;
			}
			at[i] = now_ms();
			left--;
			if (done_close) {
				close(fds[i]);
				fds[i] = -1;
			}
		}
	}
}

/* Clients that each answer "ping" within 500 ms into @held (how many:
 * *@n), until one is not answered: that one's socket is returned, kept
 * open (it sent "ping"), -1 when none could connect. */
static int hold_until_short(int port, int *held, int *n)
{
	*n = 0;
	while (*n < MAX_HELD) {
		char m[1][8] = { "ping" };
		int fd = dial(port), st;
		uint64_t at;

		if (fd < 0)
			return -1;
		if (send(fd, "ping", 4, MSG_NOSIGNAL) != 4) {
			close(fd);
			return -1;
		}
		await_all(&fd, m, 1, now_ms() + 500, false, &st, &at);
		if (st != 1)
			return fd;
		held[(*n)++] = fd;
	}
	return -1;
}

/*
 * `ringplane relay` at its descriptor limit, with clients queued on its
 * listener that each sent bytes. Under one of the limits 32 and 33 (a
 * relayed client takes two descriptors) the accept gets the last
 * descriptor and the upstream socket(2) finds none: that client must wait
 * (upstream_waits), the accept pause and the rest stay queued; under the
 * other the accept itself fails and all stay queued. Either way, once the
 * held clients close, every queued client must be relayed (its bytes
 * echoed back), none reset, nothing counted as failed, and the relay must
 * not spin meanwhile. Before the wait list the relay took each queued
 * client in, failed its upstream socket and closed it: reset.
 * Then, under the limit that made clients wait, descriptors that never
 * free: each queued client is closed at --connect-timeout (600 ms), no
 * sooner, one after another, and counted in connect_timeouts.
 */
static void upstream_emfile(const char *up)
{
	enum { QUEUED = 20, LATE = 6, LATE_MS = 600, FREED = 2 };
	const char *rargs[] = { "relay", "--listen", "127.0.0.1:0", "--upstream", up,
				"--shards", "1", "--mode", "copy", "--connect-timeout", "20000",
				NULL };
	int held[MAX_HELD], q[MAX_HELD], st[MAX_HELD], n = 0, nq = 0, rc;
	char msg[MAX_HELD][8];
	uint64_t at[MAX_HELD], dialed[MAX_HELD];
	rlim_t wait_limit = 0;
	struct child s;

	for (rlim_t limit = 32; limit <= 33; limit++) {
		unsigned long long waits, timeouts, failed;
		int echoed = 0, closed = 0, silent = 0, fd;
		long long t0, t1;

		child_nofile = limit;
		rc = child_start(&s, rargs);
		child_nofile = 0;
		CHECK(rc == 0, "upstream emfile: relay did not start (limit %llu)",
		      (unsigned long long)limit);
		if (rc)
			return;
		fd = hold_until_short(s.port, held, &n);
		CHECK(fd >= 0 && n > 0, "upstream emfile: limit %llu: %d clients held, the limit "
		      "never struck", (unsigned long long)limit, n);
		nq = 0;
		if (fd >= 0) {
			q[nq] = fd;
			snprintf(msg[nq++], sizeof(msg[0]), "ping");
		}
		while (fd >= 0 && nq < QUEUED) {
			snprintf(msg[nq], sizeof(msg[0]), "q%02d", nq);
			q[nq] = dial(s.port);
			if (q[nq] < 0 || send(q[nq], msg[nq], strlen(msg[nq]), MSG_NOSIGNAL) < 0)
				break;
			nq++;
		}
		CHECK(fd < 0 || nq == QUEUED, "upstream emfile: limit %llu: only %d of %d clients "
		      "queued", (unsigned long long)limit, nq, QUEUED);
		/* the relay short of descriptors, clients queued: no spinning */
		t0 = cpu_ms(s.pid);
		usleep(1000000);
		t1 = cpu_ms(s.pid);
		CHECK(t0 >= 0 && t1 >= 0 && t1 - t0 <= 200,
		      "upstream emfile: limit %llu: the waiting relay used %lld ms of CPU in 1 s",
		      (unsigned long long)limit, t1 - t0);
		for (int i = 0; i < n; i++)
			close(held[i]);
		await_all(q, msg, nq, now_ms() + 10000, true, st, at);
		for (int i = 0; i < nq; i++) {
			echoed += st[i] == 1;
			closed += st[i] == 0;
			silent += st[i] < 0;
			if (q[i] >= 0)
				close(q[i]);
		}
		CHECK(echoed == nq && nq > 0, "upstream emfile: limit %llu: of %d queued clients %d "
		      "relayed, %d closed or reset, %d not answered within 10 s of the closes",
		      (unsigned long long)limit, nq, echoed, closed, silent);
		rc = child_stop(&s, 5000);
		CHECK(rc == 0, "upstream emfile: limit %llu: exit status %d",
		      (unsigned long long)limit, rc);
		waits = stat_sum(s.log, "upstream_waits");
		timeouts = stat_sum(s.log, "connect_timeouts");
		failed = stat_sum(s.log, "connect_failed");
		CHECK(timeouts == 0 && failed == 0, "upstream emfile: limit %llu: connect_timeouts "
		      "%llu, connect_failed %llu (want 0)", (unsigned long long)limit, timeouts,
		      failed);
		if (waits && !wait_limit)
			wait_limit = limit;
		printf("relay upstream emfile: limit %llu: %d clients held, %d queued: %d relayed "
		       "after the closes, %d closed or reset, %d silent; %lld ms of CPU in 1 s "
		       "short; upstream_waits %llu, connect_failed %llu\n",
		       (unsigned long long)limit, n, nq, echoed, closed, silent, t1 - t0, waits,
		       failed);
	}
	CHECK(wait_limit, "upstream emfile: no limit of 32 or 33 made a client wait for its "
	      "upstream socket (upstream_waits 0)");
	if (!wait_limit)
		return;

	/* descriptors freed once, then never: what waits past --connect-timeout is
	 * closed, no sooner, and counted */
	{
		const char *largs[] = { "relay", "--listen", "127.0.0.1:0", "--upstream", up,
					"--shards", "1", "--mode", "copy", "--connect-timeout",
					"600", NULL };
		unsigned long long waits, timeouts, failed;
		uint64_t soonest = UINT64_MAX, latest = 0;
		int closed = 0, echoed = 0, fd;

		child_nofile = wait_limit;
		rc = child_start(&s, largs);
		child_nofile = 0;
		CHECK(rc == 0, "upstream late: relay did not start");
		if (rc)
			return;
		fd = hold_until_short(s.port, held, &n);
		/* the last one was dialed before its 500 ms without an answer */
		dialed[0] = now_ms() - 500;
		CHECK(fd >= 0 && n > FREED, "upstream late: the limit never struck (%d held)", n);
		if (fd < 0 || n <= FREED) {
			(void)child_stop(&s, 5000);
			return;
		}
		nq = 0;
		q[nq] = fd;
		snprintf(msg[nq++], sizeof(msg[0]), "ping");
		while (nq < 1 + LATE) {
			snprintf(msg[nq], sizeof(msg[0]), "q%02d", nq);
			dialed[nq] = now_ms();
			q[nq] = dial(s.port);
			if (q[nq] < 0 || send(q[nq], msg[nq], strlen(msg[nq]), MSG_NOSIGNAL) < 0)
				break;
			nq++;
		}
		/* a few descriptors free (the accept takes queued clients in,
		 * more than their upstreams can have), then none: a relayed
		 * client stays open */
		for (int i = 0; i < FREED; i++)
			close(held[i]);
		await_all(q, msg, nq, now_ms() + 4 * LATE_MS + 3000, false, st, at);
		for (int i = 0; i < nq; i++) {
			echoed += st[i] == 1;
			closed += st[i] == 0;
			if (st[i] == 0) {
				uint64_t w = at[i] - dialed[i];

				soonest = w < soonest ? w : soonest;
				latest = w > latest ? w : latest;
			}
			close(q[i]);
		}
		for (int i = FREED; i < n; i++)
			close(held[i]);
		rc = child_stop(&s, 5000);
		CHECK(rc == 0, "upstream late: exit status %d", rc);
		waits = stat_sum(s.log, "upstream_waits");
		timeouts = stat_sum(s.log, "connect_timeouts");
		failed = stat_sum(s.log, "connect_failed");
		CHECK(nq == 1 + LATE && closed > 0, "upstream late: of %d queued clients none "
		      "closed (%d relayed): nothing waited past --connect-timeout", nq, echoed);
		CHECK(closed == 0 || soonest + 50 >= LATE_MS, "upstream late: a client closed %llu ms "
		      "after it connected, before --connect-timeout %d ms",
		      (unsigned long long)soonest, LATE_MS);
		CHECK(timeouts == (unsigned long long)closed && waits >= timeouts && failed == 0,
		      "upstream late: %d clients closed, connect_timeouts %llu, upstream_waits %llu, "
		      "connect_failed %llu (want %d, %d or more, 0)", closed, timeouts, waits, failed,
		      closed, closed);
		printf("relay upstream late: limit %llu, --connect-timeout %d ms, %d of %d held "
		       "closed: of %d queued %d relayed, %d closed %llu to %llu ms after they "
		       "connected; connect_timeouts %llu, upstream_waits %llu\n",
		       (unsigned long long)wait_limit, LATE_MS, FREED, n, nq, echoed, closed,
		       (unsigned long long)soonest, (unsigned long long)latest, timeouts, waits);
	}
}

/* ---- serve: what lingers gives its descriptor back ---- */

/*
 * `ringplane serve` under a descriptor limit of 32, and 40 clients one after
 * another that ask with Connection: close, read the answer and stay
 * (silent, never closing): each lingers on the server (--linger-timeout
 * 60, --linger-time 120: no bound ends one here), and about 20 descriptors
 * are free. Every client must be answered within 2 s all the same: once
 * the accept fails with EMFILE the tick ends what lingers (counted in
 * linger_timeouts) and the closes bring the accept back. Without that the
 * first client past the limit waited for the linger bound, a minute.
 */
/* A lingering client that keeps sending: a byte every 50 ms until told to
 * stop; how many sends worked, and the errno that ended them (0: none). */
struct sender {
	int fd;
	bool stop; /* atomic: set by the main thread */
	unsigned sent;
	int err;
};

static void *sender_main(void *arg)
{
	struct sender *s = arg;

	for (unsigned i = 0; i < 400 && !__atomic_load_n(&s->stop, __ATOMIC_RELAXED); i++) { /* 20 s at most */
		if (send(s->fd, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN) {
			s->err = errno;
			break;
		}
		s->sent++;
		usleep(50 * 1000);
	}
	return NULL;
}

static void serve_linger_emfile(const char *root)
{
	enum { CLIENTS = 40 };
	const char *args[] = { "serve", "--listen", "127.0.0.1:0", "--root", root, "--shards", "1",
			       "--linger-timeout", "60", "--linger-time", "120", NULL };
	static const char req[] = "GET /small.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
	int held[CLIENTS], n = 0, st;
	unsigned long long ended, errs;
	uint64_t t, worst = 0;
	struct child s;
	struct sender snd = { .fd = -1 };
	pthread_t th;
	bool th_ok = false;

	if (HOOKS)
		setenv("RP_APP_FAULT_BACKOFF", "1000000", 1);
	child_nofile = 32;
	st = child_start(&s, args);
	child_nofile = 0;
	unsetenv("RP_APP_FAULT_BACKOFF");
	CHECK(st == 0, "serve (linger) did not start");
	if (st)
		return;
	/* first, one that goes on sending after its answer: it lingers while
	 * its bytes come, EMFILE or not (only quiet ones are ended for their
	 * descriptor), so it is never reset while it sends */
	snd.fd = ask(s.port, req, "HTTP/1.1 200", 2000);
	CHECK(snd.fd >= 0, "serve linger: the sending client not answered");
	if (snd.fd >= 0)
		th_ok = pthread_create(&th, NULL, sender_main, &snd) == 0;
	for (; n < CLIENTS; n++) {
		t = now_ms();
		held[n] = ask(s.port, req, "HTTP/1.1 200", 2000);
		if (held[n] < 0)
			break;
		t = now_ms() - t;
		worst = t > worst ? t : worst;
	}
	CHECK(n == CLIENTS, "serve linger: limit 32: client %d of %d not answered within 2 s beside "
	      "%d lingering connections", n + 1, CLIENTS, n);
	if (th_ok) {
		__atomic_store_n(&snd.stop, true, __ATOMIC_RELAXED);
		pthread_join(th, NULL);
		CHECK(snd.err == 0, "serve linger: the client still sending was reset after %u sends "
		      "(%s)", snd.sent, strerror(snd.err));
	}
	if (snd.fd >= 0)
		close(snd.fd);
	for (int i = 0; i < n; i++)
		close(held[i]);
	st = child_stop(&s, 5000);
	CHECK(st == 0, "serve linger: exit status %d", st);
	ended = stat_sum(s.log, "linger_timeouts");
	errs = stat_sum(s.log, "accept_errors");
	CHECK(ended > 0 && errs > 0, "serve linger: linger_timeouts %llu, accept_errors %llu: the "
	      "limit never struck, or nothing lingering was ended", ended, errs);
	printf("serve linger: limit 32, back-off timers %s: %d of %d clients that stay lingering "
	       "answered, the slowest in %llu ms; linger_timeouts %llu, %llu failed accepts; one "
	       "sending all along not reset (%u sends)\n",
	       HOOKS ? "failing" : "working", n, CLIENTS, (unsigned long long)worst, ended, errs,
	       snd.sent);
}

int main(int argc, char **argv)
{
	char up[64], root[64], small[16], path[128];
	unsigned long long errs = 0;
	struct child echo;

	if (argc < 2) {
		fprintf(stderr, "usage: test_accept RINGPLANE_BINARY\n");
		return 2;
	}
	bin = argv[1];
	signal(SIGPIPE, SIG_IGN);
	{
		const char *eargs[] = { "echo", "--listen", "127.0.0.1:0", "--shards", "1", NULL };

		CHECK(child_start(&echo, eargs) == 0, "echo did not start");
		if (failures)
			return 1;
	}
	snprintf(up, sizeof(up), "127.0.0.1:%d", echo.port);
	{
		const char *rargs[] = { "relay", "--listen", "127.0.0.1:0", "--upstream", up,
					"--shards", "1", "--mode", "copy", NULL };

		for (rlim_t l = 32; l <= 33; l++)
			errs += run("relay", rargs, l, "ping", "ping");
		CHECK(errs > 0, "relay: no failed accept counted: the limit never struck the accept");
	}
	upstream_emfile(up);
	CHECK(child_stop(&echo, 5000) == 0, "echo exit");
	if (make_root(root, sizeof(root), "accept", small, sizeof(small))) {
		CHECK(0, "root: %s", strerror(errno));
	} else {
		const char *sargs[] = { "serve", "--listen", "127.0.0.1:0", "--root", root,
					"--shards", "1", NULL };

		errs = 0;
		for (rlim_t l = 32; l <= 33; l++)
			errs += run("serve", sargs, l,
				    "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n", "HTTP/1.1 ");
		CHECK(errs > 0, "serve: no failed accept counted: the limit never struck the accept");
		serve_linger_emfile(root);
		snprintf(path, sizeof(path), "%s/small.txt", root);
		unlink(path);
		rmdir(root);
	}
	if (!HOOKS)
		printf("SKIP (part): the back-off timers ran; the re-arm by connection closes when "
		       "they fail needs RP_APP_FAULT_BACKOFF, compiled into the faults build "
		       "(-Dfaults=true) only\n");
	printf("%s\n", failures ? "FAIL" : "PASS");
	return failures ? 1 : 0;
}
