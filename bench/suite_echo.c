/* SPDX-License-Identifier: MIT */
/*
 * echo suite: `ringplane echo` as a TCP echo server, side by side with the
 * servers one would otherwise run, from the same run.
 *
 * Latency rows ("echo p50/p99/p99.9 64B", us, lower is better): sockperf
 * ping-pong over TCP with 64 B messages against `ringplane echo --sockperf
 * --shards 1` and a baseline server that waits the same way. Each sockperf
 * run is one sample of each percentile; runs alternate ringplane, baseline,
 * ... and each side reports the median of its runs. Four groups: both
 * servers sleeping, or both busy-polling, each against a sockperf client
 * that sleeps in epoll (its default) and one that spins on a non-blocking
 * socket ("spin-client"), so the client's own wake-up does not hide the
 * servers' difference. Sleeping: ringplane's shard against `sockperf
 * server` with its defaults (it sleeps in epoll_wait). Busy-polling
 * ("both busy-poll"): `--busy-poll 200` against the bench's own epoll
 * server (bench/epoll_echo.c) with `--sockperf --busy-poll 200`, which
 * answers the same framing and spins on epoll_wait with a zero timeout for
 * 200 us after each event, as the shard polls its ring: sockperf server
 * cannot busy-poll, so comparing it with a spinning shard would measure
 * the spinning, not the server.
 *
 * Throughput rows ("echo N conns 64B", Mops/s = million echoed messages per
 * second, higher is better): the bench itself is the client (one thread,
 * level-triggered epoll, non-blocking sockets, TCP_NODELAY) holding N
 * connections, each with one 64 B request in flight: send, wait for all 64
 * bytes to come back, send the next. Every echoed byte is compared with
 * what was sent (the payload differs per connection and per message), and
 * an echo that does not come back before the drain deadline, a byte too
 * many, or a closed connection fails the suite. Baseline: a plain epoll echo
 * server (bench/epoll_echo.c, this binary re-run with --echo-child).
 *
 * Placement: the server under test (either one) runs on one CPU, its client
 * on the other, so client and server never share a core; on a one-CPU host
 * they do, and a note says so. Servers are child processes started once per
 * group of rows and stopped with SIGTERM; every wait is bounded.
 *
 * `ringplane` is found next to this binary (../apps/ringplane) or through
 * RINGPLANE_BIN; sockperf through PATH. A missing one skips its rows.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "cleanup.h"
#include "proc.h"

#define MSG 64u			/* message size of every row */
#define CONNECT_TIMEOUT_MS 10000
#define DRAIN_TIMEOUT_MS 5000	/* echoes still in flight at the end of a run */
#define SOCKPERF_SLACK_S 15	/* sockperf -t S must exit within S + this */
#define NOISY_IQR 0.15

static const unsigned conn_counts[] = { 100, 1000 };

struct eplan {
	unsigned lat_runs;	/* sockperf runs per side */
	unsigned lat_secs;	/* sockperf -t */
	unsigned tp_runs;	/* throughput runs per side */
	uint64_t tp_ns;		/* each run's measured window */
	int cpu_server, cpu_client;
};

/* ---- child processes (proc.c) ---- */

/*
 * Start a server that prints "listening on HOST:PORT"; its port in *port.
 * On failure prints why (with what it printed) and returns -errno.
 */
static int server_start(struct proc *c, char *const argv[], int cpu, const char *what, int *port)
{
	uint64_t deadline = rp_bench_now_ns() + (uint64_t)START_TIMEOUT_MS * 1000000u;
	const char *p;
	int ret;

	ret = proc_spawn(c, argv, cpu);
	if (ret) {
		fprintf(stderr, "echo: cannot start %s: %s\n", what, strerror(-ret));
		return ret;
	}
	ret = proc_read(c, deadline, "listening on ");
	p = strstr(proc_log(c), "listening on ");
	if (ret >= 0 && p && strchr(p, '\n')) {
		const char *colon = strchr(p, '\n');

		while (colon > p && *colon != ':')
			colon--;
		*port = atoi(colon + 1);
		if (*colon == ':' && *port > 0 && *port < 65536)
			return 0;
	}
	fprintf(stderr, "echo: %s %s; it printed:\n%s\n", what,
		ret == 1 ? "exited before listening" : "did not print a usable \"listening on\" line in time",
		proc_log(c));
	proc_stop(c, what, false, 0);
	return -EIO;
}

/* ---- finding the programs ---- */

static int find_in_path(const char *name, char *path, size_t size)
{
	const char *p = getenv("PATH");

	if (!p)
		p = "/usr/local/bin:/usr/bin:/bin";
	while (*p) {
		const char *e = strchr(p, ':');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		if (len) {
			snprintf(path, size, "%.*s/%s", (int)len, p, name);
			if (!access(path, X_OK))
				return 0;
		}
		p += len + (e ? 1 : 0);
	}
	return -ENOENT;
}

/* Does this ringplane binary have the echo command? (`echo --help` exits 0) */
static bool has_echo(const char *rp)
{
	char *argv[] = { (char *)rp, "echo", "--help", NULL };
	struct proc c;
	int st = run_tool(&c, argv, -1, 5);

	proc_free(&c);
	return st == 0;
}

/* ---- latency: sockperf ping-pong ---- */

struct lat {
	double p50, p99, p999;
};

static int parse_pct(const char *log, const char *pct, double *out)
{
	char key[48];
	const char *p;

	snprintf(key, sizeof(key), "percentile %s =", pct);
	p = strstr(log, key);
	if (!p || sscanf(p + strlen(key), "%lf", out) != 1 || !(*out > 0))
		return -EINVAL;
	return 0;
}

/* sockperf's client options that make it spin on a non-blocking socket
 * (recv until data, never sleep in epoll: SPIN_CLIENT_TEXT), so a run measures the server
 * and the loopback path without the client's own wake-up. */
#define SPIN_CLIENT_TEXT "--nonblocked --recv_looping_num=-1"

/* @spin: the client spins (SPIN_CLIENT_TEXT) rather than sleeping in epoll. */
static int sockperf_run(const char *sockperf, int port, const struct eplan *pl, bool spin,
			struct lat *out)
{
	char p[16], t[16];
	char *argv[] = { (char *)sockperf, "ping-pong", "--tcp", "-i", "127.0.0.1", "-p", p,
			 "-m", "64", "-t", t,
			 /* the list ends here unless @spin */
			 spin ? "--nonblocked" : NULL, "--recv_looping_num=-1", NULL };
	struct proc c;
	int ret;

	snprintf(p, sizeof(p), "%d", port);
	snprintf(t, sizeof(t), "%u", pl->lat_secs);
	ret = run_tool(&c, argv, pl->cpu_client, pl->lat_secs + SOCKPERF_SLACK_S);
	if (ret) {
		fprintf(stderr, "echo: sockperf ping-pong %s; its last lines:\n%s\n",
			ret == -ETIMEDOUT ? "did not finish in time" : "failed", log_tail(&c, 4));
		proc_free(&c);
		return -EIO;
	}
	if (parse_pct(proc_log(&c), "50.000", &out->p50) ||
	    parse_pct(proc_log(&c), "99.000", &out->p99) ||
	    parse_pct(proc_log(&c), "99.900", &out->p999)) {
		fprintf(stderr, "echo: no percentile lines in sockperf's output:\n%s\n", log_tail(&c, 4));
		proc_free(&c);
		return -EBADMSG;
	}
	if (strstr(proc_log(&c), "# dropped messages = ") &&
	    !strstr(proc_log(&c), "# dropped messages = 0; # duplicated messages = 0; # out-of-order messages = 0"))
		rp_report_note("sockperf reported dropped, duplicated or out-of-order messages (port %d)",
			       port);
	proc_free(&c);
	return 0;
}

static void lat_note_noise(const char *name, double *o, double *b, unsigned n)
{
	struct rp_bench_stat3 so = rp_bench_summarize(o, n), sb = rp_bench_summarize(b, n);
	double io = (so.q3 - so.q1) / so.med, ib = (sb.q3 - sb.q1) / sb.med;

	if (n >= 3 && (io > NOISY_IQR || ib > NOISY_IQR))
		rp_report_note("%s: noisy runs (interquartile range ringplane %.0f%%, baseline %.0f%% of median); rerun on a quiet host",
			       name, 100.0 * io, 100.0 * ib);
}

/* Busy-poll window of both servers in the busy-poll groups, in us. */
#define BUSY_POLL_US "200"

/*
 * @busy: both servers busy-poll BUSY_POLL_US before sleeping: ringplane
 * echo --busy-poll against the bench's epoll server with --busy-poll (else
 * both sleep: ringplane against sockperf server); @spin: the sockperf
 * client spins (same client for both servers).
 */
static int latency_rows(const struct eplan *pl, const char *rp, const char *sockperf, bool busy,
			bool spin)
{
	/* /proc/self/exe: see throughput_rows */
	char cpus[16], listen_arg[] = "127.0.0.1:0", listen_b[] = "127.0.0.1:0", port_s[16],
	     self[] = "/proc/self/exe";
	char *rp_argv[] = { (char *)rp, "echo", "--listen", listen_arg, "--sockperf",
			    "--shards", "1", "--cpus", cpus, busy ? "--busy-poll" : NULL,
			    BUSY_POLL_US, NULL };
	char *sp_argv[] = { (char *)sockperf, "server", "--tcp", "-i", "127.0.0.1", "-p",
			    port_s, NULL };
	char *ep_argv[] = { self, "--echo-child", listen_b, cpus, "--sockperf", "--busy-poll",
			    BUSY_POLL_US, NULL };
	const char *base_name = busy ? "epoll echo busy-poll" : "sockperf server";
	const char *base_what = busy ? "epoll echo --sockperf --busy-poll (baseline)" : "sockperf server";
	double o[3][16], b[3][16];
	struct proc rs = { .pid = -1, .out = -1 }, ss = { .pid = -1, .out = -1 };
	int rport = 0, sport = 0, ret;

	snprintf(cpus, sizeof(cpus), "%d", pl->cpu_server);
	ret = server_start(&rs, rp_argv, pl->cpu_server, "ringplane echo --sockperf", &rport);
	if (ret)
		return ret;
	if (busy) {
		/* one thread pinned to the server's cpu, like the shard */
		ret = server_start(&ss, ep_argv, pl->cpu_server, base_what, &sport);
		if (ret)
			goto out;
	} else {
		sport = free_port();
		if (sport < 0) {
			ret = sport;
			goto out;
		}
		snprintf(port_s, sizeof(port_s), "%d", sport);
		ret = proc_spawn(&ss, sp_argv, pl->cpu_server);
		if (!ret) /* sockperf server prints no "listening on" */
			ret = wait_bound(&ss, sport, START_TIMEOUT_MS);
		if (ret) {
			fprintf(stderr, "echo: sockperf server did not start on port %d (%s); it printed:\n%s\n",
				sport, strerror(-ret), proc_log(&ss));
			goto out;
		}
	}
	if (busy)
		rp_report_note("latency: sockperf ping-pong --tcp -m 64 -t %u%s on cpu %d, %u run%s per side alternating (median of the runs' percentiles); server on cpu %d, both busy-polling " BUSY_POLL_US " us: `ringplane echo --sockperf --shards 1 --cpus %d --busy-poll " BUSY_POLL_US "` vs the bench's one-thread epoll server `--echo-child --sockperf --busy-poll " BUSY_POLL_US "` (epoll_wait timeout 0 in a loop, same framing)",
			       pl->lat_secs, spin ? " " SPIN_CLIENT_TEXT : "", pl->cpu_client,
			       pl->lat_runs, pl->lat_runs == 1 ? "" : "s", pl->cpu_server,
			       pl->cpu_server);
	else
		rp_report_note("latency: sockperf ping-pong --tcp -m 64 -t %u%s on cpu %d, %u run%s per side alternating (median of the runs' percentiles); server on cpu %d, both sleeping: `ringplane echo --sockperf --shards 1 --cpus %d` vs `sockperf server --tcp`",
			       pl->lat_secs, spin ? " " SPIN_CLIENT_TEXT : "", pl->cpu_client,
			       pl->lat_runs, pl->lat_runs == 1 ? "" : "s", pl->cpu_server,
			       pl->cpu_server);
	if (pl->lat_runs < 3)
		rp_report_note("latency: fewer than 3 runs per side (quick), so no spread is measured: a smoke test, not a result");
	for (unsigned i = 0; i < pl->lat_runs; i++) {
		struct lat lo, lb;

		ret = sockperf_run(sockperf, rport, pl, spin, &lo);
		if (!ret)
			ret = sockperf_run(sockperf, sport, pl, spin, &lb);
		if (ret)
			goto out;
		o[0][i] = lo.p50, o[1][i] = lo.p99, o[2][i] = lo.p999;
		b[0][i] = lb.p50, b[1][i] = lb.p99, b[2][i] = lb.p999;
	}
	static const char *const pct[3] = { "p50", "p99", "p99.9" };

	for (int k = 0; k < 3 && !ret; k++) {
		char name[64];
		double oc[16], bc[16];

		memcpy(oc, o[k], sizeof(oc));
		memcpy(bc, b[k], sizeof(bc));
		struct rp_bench_stat3 so = rp_bench_summarize(oc, pl->lat_runs);
		struct rp_bench_stat3 sb = rp_bench_summarize(bc, pl->lat_runs);

		snprintf(name, sizeof(name), "echo %s 64B%s%s", pct[k], busy ? " both busy-poll" : "",
			 spin ? " spin-client" : "");
		ret = rp_report_row(name, "us", so.med, sb.med, base_name, false);
		if (!ret)
			lat_note_noise(name, o[k], b[k], pl->lat_runs);
	}
out:
	proc_stop(&ss, base_what, false, 0);
	proc_stop(&rs, "ringplane echo --sockperf", false, 0);
	return ret;
}

/* ---- throughput: the bench's own client ---- */

struct cconn {
	int fd;
	unsigned id;
	uint32_t seq;
	unsigned sent, rcvd;	/* bytes of the current message */
	bool busy;		/* a message is in flight */
	bool want_out;		/* EPOLLOUT armed for a short write */
	uint8_t tx[MSG];
};

struct client {
	int ep;
	unsigned n;
	struct cconn *c;
	/* a corrupt or lost echo, for the message */
	char err[256];
};

/* Payload of message @seq on connection @id: differs per connection and per
 * message, so an echo sent to the wrong socket or replayed is caught. */
static void fill(struct cconn *c)
{
	uint64_t x = ((uint64_t)c->id << 32 | c->seq) * 0x9E3779B97F4A7C15ull + 1;

	for (unsigned k = 0; k < MSG; k++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		c->tx[k] = (uint8_t)x;
	}
}

static int cconn_arm(struct client *cl, struct cconn *c, bool out)
{
	struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c };

	if (c->want_out == out)
		return 0;
	c->want_out = out;
	return epoll_ctl(cl->ep, EPOLL_CTL_MOD, c->fd, &ev) ? -errno : 0;
}

/* Send what is left of the current message. */
static int cconn_send(struct client *cl, struct cconn *c)
{
	while (c->sent < MSG) {
		ssize_t w = write(c->fd, c->tx + c->sent, MSG - c->sent);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return cconn_arm(cl, c, true);
			snprintf(cl->err, sizeof(cl->err), "connection %u: write: %s", c->id,
				 strerror(errno));
			return -errno;
		}
		c->sent += (unsigned)w;
	}
	return cconn_arm(cl, c, false);
}

static int cconn_start(struct client *cl, struct cconn *c)
{
	c->seq++;
	fill(c);
	c->sent = c->rcvd = 0;
	c->busy = true;
	return cconn_send(cl, c);
}

/* Read and check echoed bytes; *done when the message is complete. */
static int cconn_recv(struct client *cl, struct cconn *c, bool *done)
{
	uint8_t buf[MSG];

	*done = false;
	for (;;) {
		/* one byte more than expected is read when idle: it must not exist */
		size_t want = c->busy ? MSG - c->rcvd : 1;
		ssize_t r = read(c->fd, buf, want);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return 0;
		if (r <= 0) {
			snprintf(cl->err, sizeof(cl->err), "connection %u: %s with %u of %u bytes of message %u echoed",
				 c->id, r == 0 ? "closed by the server" : strerror(errno),
				 c->rcvd, MSG, c->seq);
			return r == 0 ? -ECONNRESET : -errno;
		}
		if (!c->busy) {
			snprintf(cl->err, sizeof(cl->err), "connection %u: %zd byte(s) echoed that were never sent (after message %u)",
				 c->id, r, c->seq);
			return -EBADMSG;
		}
		if (memcmp(buf, c->tx + c->rcvd, (size_t)r)) {
			unsigned k = 0;

			while (buf[k] == c->tx[c->rcvd + k])
				k++;
			snprintf(cl->err, sizeof(cl->err), "connection %u: message %u byte %u echoed as 0x%02x, sent 0x%02x",
				 c->id, c->seq, c->rcvd + k, buf[k], c->tx[c->rcvd + k]);
			return -EBADMSG;
		}
		c->rcvd += (unsigned)r;
		if (c->rcvd == MSG) {
			c->busy = false;
			*done = true;
			return 0;
		}
	}
}

static void client_close(struct client *cl)
{
	for (unsigned i = 0; cl->c && i < cl->n; i++)
		if (cl->c[i].fd >= 0)
			close(cl->c[i].fd);
	free(cl->c);
	cl->c = NULL;
	if (cl->ep >= 0)
		close(cl->ep);
	cl->ep = -1;
}

/* Open @n connections to 127.0.0.1:@port, all established before returning. */
static int client_open(struct client *cl, unsigned n, int port)
{
	uint64_t deadline = rp_bench_now_ns() + (uint64_t)CONNECT_TIMEOUT_MS * 1000000u;
	struct sockaddr_in a = loopback(port);
	struct epoll_event evs[256];
	unsigned pending = 0;
	int ret = 0;

	memset(cl, 0, sizeof(*cl));
	cl->n = n;
	cl->ep = epoll_create1(EPOLL_CLOEXEC);
	cl->c = calloc(n, sizeof(*cl->c));
	if (cl->ep < 0 || !cl->c) {
		ret = cl->ep < 0 ? -errno : -ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < n; i++)
		cl->c[i].fd = -1;
	for (unsigned i = 0; i < n; i++) {
		struct cconn *c = &cl->c[i];
		struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
		int one = 1;

		c->id = i;
		c->want_out = true;
		c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->fd < 0) {
			ret = -errno;
			snprintf(cl->err, sizeof(cl->err), "socket #%u: %s", i, strerror(errno));
			goto fail;
		}
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) && errno != EINPROGRESS) {
			ret = -errno;
			snprintf(cl->err, sizeof(cl->err), "connect #%u: %s", i, strerror(errno));
			goto fail;
		}
		if (epoll_ctl(cl->ep, EPOLL_CTL_ADD, c->fd, &ev)) {
			ret = -errno;
			goto fail;
		}
		pending++;
	}
	while (pending) {
		int64_t left = ms_left(deadline);
		int k;

		if (!left) {
			snprintf(cl->err, sizeof(cl->err), "%u of %u connections not established after %d ms",
				 pending, n, CONNECT_TIMEOUT_MS);
			ret = -ETIMEDOUT;
			goto fail;
		}
		k = epoll_wait(cl->ep, evs, 256, left > 1000 ? 1000 : (int)left);
		if (k < 0 && errno != EINTR) {
			ret = -errno;
			goto fail;
		}
		for (int j = 0; j < k; j++) {
			struct cconn *c = evs[j].data.ptr;
			int err = 0;
			socklen_t len = sizeof(err);

			if (!c->want_out)
				continue;
			getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
			if (err) {
				snprintf(cl->err, sizeof(cl->err), "connect #%u: %s", c->id,
					 strerror(err));
				ret = -err;
				goto fail;
			}
			ret = cconn_arm(cl, c, false);
			if (ret)
				goto fail;
			pending--;
		}
	}
	return 0;
fail:
	client_close(cl);
	return ret ? ret : -EIO;
}

/*
 * One run: every connection sends a message, and each echo completed starts
 * the next, for @window_ns. Echoes completed in the window over the
 * window's length is the rate; then the messages still in flight are drained
 * (and checked) with no new ones started, so the next run starts idle.
 */
static int client_run(struct client *cl, uint64_t window_ns, double *mops)
{
	struct epoll_event evs[512];
	uint64_t t0, t_end, t_stop = 0, drain_deadline = 0, done_in_window = 0;
	unsigned inflight = 0;
	bool stopping = false;
	int ret;

	t0 = rp_bench_now_ns();
	t_end = t0 + window_ns;
	for (unsigned i = 0; i < cl->n; i++) {
		ret = cconn_start(cl, &cl->c[i]);
		if (ret)
			return ret;
		inflight++;
	}
	while (inflight) {
		int k = epoll_wait(cl->ep, evs, 512, stopping ? 10 : 1);
		uint64_t now;

		if (k < 0 && errno != EINTR)
			return -errno;
		for (int j = 0; j < k; j++) {
			struct cconn *c = evs[j].data.ptr;
			bool done;

			if ((evs[j].events & EPOLLOUT) && c->busy && c->sent < MSG) {
				ret = cconn_send(cl, c);
				if (ret)
					return ret;
			}
			if (!(evs[j].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				continue;
			ret = cconn_recv(cl, c, &done);
			if (ret)
				return ret;
			if (!done)
				continue;
			if (stopping) {
				inflight--;
				continue;
			}
			done_in_window++;
			ret = cconn_start(cl, c);
			if (ret)
				return ret;
		}
		now = rp_bench_now_ns();
		if (!stopping && now >= t_end) {
			stopping = true;
			t_stop = now;
			drain_deadline = now + (uint64_t)DRAIN_TIMEOUT_MS * 1000000u;
		}
		if (stopping && inflight && now >= drain_deadline) {
			snprintf(cl->err, sizeof(cl->err), "%u echoes never came back (waited %d ms)",
				 inflight, DRAIN_TIMEOUT_MS);
			return -ETIMEDOUT;
		}
	}
	*mops = (double)done_in_window * 1e3 / (double)(t_stop - t0);
	return 0;
}

/* Raise the soft fd limit for 1000 connections here and in the servers we start. */
static int raise_nofile(unsigned need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return -errno;
	if (rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
		return -EMFILE;
	rl.rlim_cur = need;
	return setrlimit(RLIMIT_NOFILE, &rl) ? -errno : 0;
}

static int throughput_rows(const struct eplan *pl, const char *rp)
{
	/* /proc/self/exe, not the path it names: a rebuild during the run
	 * replaces that file, and the link still reaches the running one. */
	char cpus[16], self[] = "/proc/self/exe", listen_a[] = "127.0.0.1:0",
	     listen_b[] = "127.0.0.1:0";
	char *rp_argv[] = { (char *)rp, "echo", "--listen", listen_a, "--shards", "1", "--cpus",
			    cpus, NULL };
	char *ep_argv[] = { self, "--echo-child", listen_b, NULL };
	struct proc rs = { .pid = -1, .out = -1 }, es = { .pid = -1, .out = -1 };
	int rport = 0, eport = 0, ret;

	snprintf(cpus, sizeof(cpus), "%d", pl->cpu_server);
	ret = server_start(&rs, rp_argv, pl->cpu_server, "ringplane echo", &rport);
	if (ret)
		return ret;
	ret = server_start(&es, ep_argv, pl->cpu_server, "epoll echo (baseline)", &eport);
	if (ret)
		goto out;
	rp_report_note("throughput: the bench is the client (one thread on cpu %d, epoll, TCP_NODELAY), one %u B request in flight per connection; server on cpu %d: `ringplane echo --shards 1 --cpus %d` vs a one-thread level-triggered epoll echo server (bench/epoll_echo.c)",
		       pl->cpu_client, MSG, pl->cpu_server, pl->cpu_server);
	rp_report_note("throughput: %u runs of %.0f ms per side alternating, median reported; every echoed byte is checked against what was sent",
		       pl->tp_runs, (double)pl->tp_ns / 1e6);
	for (size_t i = 0; !ret && i < sizeof(conn_counts) / sizeof(conn_counts[0]); i++) {
		unsigned nc = conn_counts[i];
		struct client co = { .ep = -1 }, cb = { .ep = -1 };
		double so[16], sb[16];
		char name[48];

		snprintf(name, sizeof(name), "echo %u conns %uB", nc, MSG);
		ret = client_open(&co, nc, rport);
		if (ret) {
			fprintf(stderr, "echo: %s: to ringplane echo: %s\n", name, co.err);
			break;
		}
		ret = client_open(&cb, nc, eport);
		if (ret) {
			fprintf(stderr, "echo: %s: to the epoll echo server: %s\n", name, cb.err);
			client_close(&co);
			break;
		}
		/* a short warm-up of each: first touches, the servers' slow paths */
		ret = client_run(&co, pl->tp_ns / 4, &so[0]);
		if (!ret)
			ret = client_run(&cb, pl->tp_ns / 4, &sb[0]);
		for (unsigned r = 0; !ret && r < pl->tp_runs; r++) {
			ret = client_run(&co, pl->tp_ns, &so[r]);
			if (!ret)
				ret = client_run(&cb, pl->tp_ns, &sb[r]);
		}
		if (ret) {
			fprintf(stderr, "echo: %s: FAILED: %s\n", name,
				co.err[0] ? co.err : cb.err[0] ? cb.err : strerror(-ret));
			if (co.err[0])
				fprintf(stderr, "echo: (against ringplane echo)\n");
			else if (cb.err[0])
				fprintf(stderr, "echo: (against the epoll echo server)\n");
		} else {
			struct rp_bench_stat3 o = rp_bench_summarize(so, pl->tp_runs);
			struct rp_bench_stat3 b = rp_bench_summarize(sb, pl->tp_runs);
			double io = (o.q3 - o.q1) / o.med, ib = (b.q3 - b.q1) / b.med;

			ret = rp_report_row(name, "Mops/s", o.med, b.med, "epoll echo server", true);
			if (!ret && pl->tp_runs >= 3 && (io > NOISY_IQR || ib > NOISY_IQR))
				rp_report_note("%s: noisy runs (interquartile range ringplane %.0f%%, baseline %.0f%% of median); rerun on a quiet host",
					       name, 100.0 * io, 100.0 * ib);
		}
		client_close(&co);
		client_close(&cb);
	}
out:
	proc_stop(&es, "epoll echo (baseline)", false, 0);
	proc_stop(&rs, "ringplane echo", false, 0);
	return ret;
}

/* ---- shard scaling: S server CPUs, a client thread per client CPU ---- */

#define SCALE_CONNS 1000u
#define SCALE_MAX_CPUS 256

struct cthread {
	pthread_t tid;
	int cpu;
	struct client cl;
	uint64_t window_ns;
	double mops;
	int ret;
};

static void *cthread_main(void *p)
{
	struct cthread *t = p;

	t->ret = rp_bench_pin_self(t->cpu);
	if (!t->ret)
		t->ret = client_run(&t->cl, t->window_ns, &t->mops);
	return NULL;
}

/* One run with every client thread at once; the rate is their sum. Each
 * client_run is bounded (its window, then DRAIN_TIMEOUT_MS), so the joins
 * are too. */
static int parallel_run(struct cthread *ts, unsigned nt, uint64_t window_ns, double *mops,
			const char **err)
{
	unsigned started = 0;
	int ret = 0;

	*mops = 0;
	for (; started < nt; started++) {
		ts[started].window_ns = window_ns;
		ts[started].ret = 0;
		if (rp_cleanup_pthread_create(&ts[started].tid, NULL, cthread_main, &ts[started])) {
			ret = -EAGAIN;
			break;
		}
	}
	for (unsigned i = 0; i < started; i++) {
		pthread_join(ts[i].tid, NULL);
		if (ts[i].ret && !ret) {
			ret = ts[i].ret;
			*err = ts[i].cl.err;
		}
		*mops += ts[i].mops;
	}
	return ret;
}

static void cthreads_close(struct cthread *ts, unsigned nt)
{
	for (unsigned i = 0; i < nt; i++)
		client_close(&ts[i].cl);
}

/* SCALE_CONNS connections to @port, spread over the client threads. */
static int cthreads_open(struct cthread *ts, unsigned nt, int port, const char **err)
{
	for (unsigned i = 0; i < nt; i++) {
		unsigned n = SCALE_CONNS / nt + (i < SCALE_CONNS % nt);
		int ret;

		ts[i].cl.ep = -1;
		ret = client_open(&ts[i].cl, n, port);
		if (ret) {
			*err = ts[i].cl.err;
			cthreads_close(ts, i);
			return ret;
		}
	}
	return 0;
}

static int scale_row(const struct eplan *pl, const char *rp, const int *scpu, unsigned shards,
		     const int *ccpu, unsigned nt)
{
	char list[1024], nshards[16], self[] = "/proc/self/exe", la[] = "127.0.0.1:0",
	     lb[] = "127.0.0.1:0", name[64];
	char *rp_argv[] = { (char *)rp, "echo", "--listen", la, "--shards", nshards, "--cpus", list,
			    NULL };
	char *ep_argv[] = { self, "--echo-child", lb, list, NULL };
	struct proc rs = { .pid = -1, .out = -1 }, es = { .pid = -1, .out = -1 };
	struct cthread *to = calloc(nt, sizeof(*to)), *tb = calloc(nt, sizeof(*tb));
	double so[16], sb[16];
	const char *err = "";
	int rport = 0, eport = 0, ret = -ENOMEM;
	size_t len = 0;

	if (!to || !tb)
		goto out_free;
	for (unsigned i = 0; i < shards; i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%d", i ? "," : "", scpu[i]);
	snprintf(nshards, sizeof(nshards), "%u", shards);
	snprintf(name, sizeof(name), "echo %u conns %uB %u shard%s", SCALE_CONNS, MSG, shards,
		 shards == 1 ? "" : "s");
	for (unsigned i = 0; i < nt; i++)
		to[i].cpu = tb[i].cpu = ccpu[i];
	/* -1: the children may use every CPU; both pin their threads to @list */
	ret = server_start(&rs, rp_argv, -1, "ringplane echo", &rport);
	if (ret)
		goto out_free;
	ret = server_start(&es, ep_argv, -1, "epoll echo (baseline)", &eport);
	if (ret)
		goto out_stop;
	ret = cthreads_open(to, nt, rport, &err);
	if (ret) {
		fprintf(stderr, "echo: %s: to ringplane echo: %s\n", name, err);
		goto out_stop;
	}
	ret = cthreads_open(tb, nt, eport, &err);
	if (ret) {
		fprintf(stderr, "echo: %s: to the epoll echo server: %s\n", name, err);
		cthreads_close(to, nt);
		goto out_stop;
	}
	/* warm-up, then alternate */
	ret = parallel_run(to, nt, pl->tp_ns / 4, &so[0], &err);
	if (!ret)
		ret = parallel_run(tb, nt, pl->tp_ns / 4, &sb[0], &err);
	for (unsigned r = 0; !ret && r < pl->tp_runs; r++) {
		ret = parallel_run(to, nt, pl->tp_ns, &so[r], &err);
		if (!ret)
			ret = parallel_run(tb, nt, pl->tp_ns, &sb[r], &err);
	}
	if (ret) {
		fprintf(stderr, "echo: %s: FAILED: %s\n", name, err[0] ? err : strerror(-ret));
	} else {
		struct rp_bench_stat3 o = rp_bench_summarize(so, pl->tp_runs);
		struct rp_bench_stat3 b = rp_bench_summarize(sb, pl->tp_runs);

		ret = rp_report_row(name, "Mops/s", o.med, b.med, "epoll echo server", true);
		if (!ret)
			rp_report_note("%s: server cpus %s; ringplane %.2f Mops/s per shard, epoll %.2f per thread",
				       name, list, o.med / shards, b.med / shards);
	}
	cthreads_close(to, nt);
	cthreads_close(tb, nt);
out_stop:
	proc_stop(&es, "epoll echo (baseline)", false, 0);
	proc_stop(&rs, "ringplane echo", false, 0);
out_free:
	free(to);
	free(tb);
	return ret;
}

/*
 * Shard scaling: half the usable CPUs serve, the other half run one client
 * thread each (SCALE_CONNS connections spread over them, each checked as in
 * the throughput rows); the server gets 1, 2, 4, ... of its CPUs, ringplane
 * echo as shards, the epoll server as SO_REUSEPORT threads, on the same
 * CPUs. Needs 4 CPUs or more.
 */
static int scaling_rows(const struct eplan *pl, const char *rp)
{
	int cpus[SCALE_MAX_CPUS], n = rp_bench_usable_cpus(cpus, SCALE_MAX_CPUS), ret = 0;
	unsigned half, shards;

	if (n < 4) {
		rp_report_skip("echo 1000 conns 64B N shards",
			       "shard scaling needs 4 usable CPUs or more (half serve, half drive); this host has %d",
			       n < 0 ? 0 : n);
		return 0;
	}
	half = (unsigned)n / 2;
	rp_report_note("scaling: server on cpus %d..%d (first N of them), %u client threads on cpus %d..%d, %u connections over them, one %u B request in flight each; %u runs of %.0f ms per side alternating, median reported",
		       cpus[0], cpus[half - 1], half, cpus[half], cpus[2 * half - 1], SCALE_CONNS, MSG,
		       pl->tp_runs, (double)pl->tp_ns / 1e6);
	for (shards = 1; !ret; shards *= 2) {
		if (shards > half)
			shards = half;
		ret = scale_row(pl, rp, cpus, shards, cpus + half, half);
		if (shards == half)
			break;
	}
	return ret;
}

int rp_bench_suite_echo(const struct rp_bench_opts *opts)
{
	struct eplan pl = {
		.lat_runs = opts->quick ? 1 : 5,
		.lat_secs = opts->quick ? 2 : 5,
		.tp_runs = opts->quick ? 3 : 5,
		.tp_ns = opts->quick ? 400000000ull : 2000000000ull,
	};
	char rp[PATH_MAX], sockperf[PATH_MAX];
	bool have_sp;
	int cpu[2], ret = 0;
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;

	if (rp_bench_pick_cpus(cpu)) {
		cpu[0] = sched_getcpu();
		cpu[1] = cpu[0];
		rp_report_note("only one usable CPU: client and server share cpu %d", cpu[0]);
	}
	pl.cpu_client = cpu[0]; /* this thread is pinned there (main.c) */
	pl.cpu_server = cpu[1];

	if (rp_bench_find_ringplane(rp, sizeof(rp))) {
		rp_report_skip("echo (all rows)", "the ringplane binary was not found (looked for %s; set RINGPLANE_BIN)",
			       getenv("RINGPLANE_BIN") && *getenv("RINGPLANE_BIN") ?
				       getenv("RINGPLANE_BIN") : "../apps/ringplane next to this binary");
		return 0;
	}
	if (!has_echo(rp)) {
		rp_report_skip("echo (all rows)", "`%s echo --help` failed: that ringplane has no echo command",
			       rp);
		return 0;
	}
	have_sp = !find_in_path("sockperf", sockperf, sizeof(sockperf));
	rp_report_note("ringplane: %s", rp);
	/* a server that dies under us must not kill the bench with SIGPIPE */
	sigaction(SIGPIPE, &ign, &old);
	ret = raise_nofile(2 * 1000 + 256);
	if (ret)
		rp_report_note("could not raise the open-file limit to %u (%s); the 1000-connection row may fail",
			       2 * 1000 + 256, strerror(-ret));
	ret = 0;
	if (!have_sp)
		rp_report_skip("echo p50/p99/p99.9 64B", "sockperf was not found in PATH (apt-get install sockperf)");
	/* server sleeps / busy-polls, each with a sleeping and a spinning client */
	/* RP_BENCH_ECHO_ROWS=latency,throughput,scaling picks groups of rows
	 * (all when unset), e.g. the scaling rows alone on a many-CPU host */
	for (int g = 0; have_sp && !ret && g < 4 && rp_bench_env_lists("RP_BENCH_ECHO_ROWS", "latency");
	     g++)
		ret = latency_rows(&pl, rp, sockperf, g & 1, g & 2);
	if (!ret && rp_bench_env_lists("RP_BENCH_ECHO_ROWS", "throughput"))
		ret = throughput_rows(&pl, rp);
	if (!ret && rp_bench_env_lists("RP_BENCH_ECHO_ROWS", "scaling"))
		ret = scaling_rows(&pl, rp);
	sigaction(SIGPIPE, &old, NULL);
	return ret;
}
