/* SPDX-License-Identifier: MIT */
/*
 * relay suite: `ringplane relay` (ours: the default mode, auto) in front of
 * an upstream, side by side with HAProxy 2.6 in front of the same upstream,
 * from the same run; socat and no relay at all ("direct") as extra
 * baselines.
 *
 * Every relay gets one CPU (the "server" CPU): `ringplane relay --shards 1
 * --cpus S`, `haproxy` with `nbthread 1` (mode tcp, `option splice-auto`),
 * `socat TCP-LISTEN:...,fork` (its forks inherit the CPU), each started as
 * a child pinned to S. All relays run at once on their own ports, and the
 * runs alternate between them, so neighbours on a shared host hit all alike
 * (the bulk rows: run r starts at relay r, after one unmeasured 1 s run
 * through each relay, so no relay pays for its first bytes in a row or
 * always follows the same neighbour).
 *
 * Bulk ("bulk N stream(s)", Gbit/s; "cpu s/GB N stream(s)", CPU seconds of
 * the relay process per GB moved, utime+stime+cutime+cstime from
 * /proc/PID/stat before and after, lower is better): `iperf3 -c -P N -J`
 * through each relay to an `iperf3 -s` upstream. The iperf3 client and the
 * upstream share the other CPU C, the relay has S to itself. HAProxy runs
 * twice: with `option splice-auto` (its heuristic did not splice loopback
 * bulk at all: no splice(2) call under perf) and with splice forced
 * (`option splice-request`, `splice-response`, `tune.pipesize 262144`, the
 * size of ours); each ringplane row is against the better of the two for
 * that measure (Gbit/s, s/GB), named in the row. "direct" is
 * the client straight to a second `iperf3 -s`, both on C as well: the
 * endpoints are placed alike, so "vs direct" is what putting a relay (on a
 * CPU of its own) in the path costs them. Each ringplane mode (auto,
 * splice, copy) is a row against HAProxy. 5 runs of 4 s a relay (1 of 1 s
 * with --quick); RP_BENCH_RELAY_BULK_RUNS (1..16) and
 * RP_BENCH_RELAY_BULK_SECS (1..60) set both, RP_BENCH_RELAY_BULK_STREAMS=1
 * (or 4) runs one of the two stream counts; a note gives every run of each
 * relay, its median and interquartile range.
 *
 * Bulk over veth ("veth bulk ...", "veth cpu s/GB ..."; root only, else a
 * skip with the reason): the same rows with both upstreams run through
 * `ip netns exec` in a namespace of their own behind a veth pair
 * (bench/netns.h); the relays still listen on 127.0.0.1 and connect to the
 * namespace's address, direct is the client straight to it. The relayed
 * data crosses loopback once and veth once (auto splices a stream toward
 * a veth peer as toward any other). Namespace and pair are removed at the end, on failure too, and a
 * left-over of a killed run before the start.
 *
 * Small messages ("p50/p99 64B", us, lower is better): `sockperf ping-pong
 * --tcp -m 64` on C through each relay to `sockperf server` on S (the relay
 * on S too).
 *
 * HTTP ("http 4KB keep-alive", req/s) and churn ("http 4KB conn per
 * request", connections/s): `wrk -t1 -c32` on C for a 4 KB file from nginx
 * (worker_processes 1, access_log off, a root readable by www-data, config
 * in a temp dir) on S behind each relay; churn adds `Connection: close`, so
 * every request is a new client connection and a new upstream connection.
 * wrk reporting non-2xx/3xx responses or socket errors fails the row.
 * 3 runs of 3 s a relay (1 of 1 s with --quick); RP_BENCH_RELAY_HTTP_RUNS
 * (1..8) and RP_BENCH_RELAY_HTTP_SECS (1..60) set both, e.g. 5 and 5 for
 * a steadier median.
 *
 * Small messages and HTTP over veth ("veth p50 64B", "veth http 4KB
 * keep-alive", "veth http 4KB conn per request", ...; root only, else a
 * skip with the reason): the same rows, the same relays and pinning, with
 * sockperf server and nginx run through `ip netns exec` in the namespace
 * (listening on its wildcard address, still on S), as the veth bulk rows
 * place iperf3 -s; the relays listen on 127.0.0.1 and connect to the
 * namespace's address, direct is the client straight to it. The pair is up
 * for each group only. Full suite only: --quick leaves them out (about
 * 50 s) unless RP_BENCH_RELAY_ROWS names veth-latency or veth-http.
 * RP_BENCH_RELAY_ROWS=bulk,veth,latency,veth-latency,http,veth-http picks
 * groups ("veth" is the veth bulk rows).
 *
 * Every child runs in its own process group and is stopped with SIGTERM
 * (then SIGKILL) at the end, on failure too; every wait is bounded. A
 * missing peer skips its rows with the reason. `ringplane` is found next to
 * this binary (../apps/ringplane) or through RINGPLANE_BIN; the peers on PATH.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "cleanup.h"
#include "netns.h"
#include "proc.h"
#include "report_impl.h"

#define MAX_RUNS	 16 /* RP_BENCH_RELAY_BULK_RUNS' bound */
#define FILE_SIZE	 4096u

/* ---- the suite's state ---- */

enum cfg {
	C_RP_AUTO,
	C_RP_SPLICE,
	C_RP_COPY,
	C_RP_URING, /* IORING_OP_SPLICE in io-wq: measured against splice */
	C_RP_NOSPIN, /* latency rows only: auto with --idle-spin 0, sleeping as HAProxy does */
	C_HAPROXY,
	C_HAPROXY_SPLICE, /* bulk rows only: splice forced, as ours can be */
	C_SOCAT,
	C_DIRECT,
	C_NR,
};

static const char *const cfg_name[C_NR] = {
	"ringplane relay (auto)", "ringplane relay --mode splice", "ringplane relay --mode copy",
	"ringplane relay --mode uring-splice", "ringplane relay --idle-spin 0", "haproxy", "haproxy (splice forced)", "socat",
	"direct (no relay)",
};

struct relay {
	struct proc p;
	int port;
	bool up;
};

struct ctx {
	const struct rp_bench_opts *opts;
	int cpu_s, cpu_c; /* relays and servers; clients */
	struct rp_bench_place pl; /* RP_BENCH_SHARDS: N CPUs each for relays, nginx, wrk */
	char rp[PATH_MAX], haproxy[PATH_MAX], socat[PATH_MAX], iperf3[PATH_MAX],
		sockperf[PATH_MAX], wrk[PATH_MAX], nginx[PATH_MAX], ip[PATH_MAX];
	bool have_rp, have_haproxy, have_socat, have_iperf3, have_sockperf, have_wrk, have_nginx,
		have_ip;
	char dir[64]; /* temp dir for configs and nginx's root */
	unsigned cfg_seq;
	int failed; /* a row failed loudly: the suite returns it */
	uint8_t file[FILE_SIZE];
};

static bool cfg_available(const struct ctx *x, enum cfg c)
{
	switch (c) {
	case C_RP_AUTO:
	case C_RP_SPLICE:
	case C_RP_COPY:
	case C_RP_URING:
	case C_RP_NOSPIN:
		return x->have_rp;
	case C_HAPROXY:
	case C_HAPROXY_SPLICE:
		return x->have_haproxy;
	case C_SOCAT:
		return x->have_socat;
	default:
		return true;
	}
}

static const char *cfg_missing(enum cfg c)
{
	switch (c) {
	case C_HAPROXY:
	case C_HAPROXY_SPLICE:
		return "haproxy was not found in PATH (apt-get install haproxy)";
	case C_SOCAT:
		return "socat was not found in PATH (apt-get install socat)";
	default:
		return "the ringplane binary was not found (../apps/ringplane next to this binary, or RINGPLANE_BIN)";
	}
}

static int write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	ssize_t w;

	if (fd < 0)
		return -errno;
	w = write(fd, data, len);
	fchmod(fd, mode); /* whatever the umask */
	if (close(fd) || w != (ssize_t)len)
		return -EIO;
	return 0;
}

/* A relay's process: on the server CPU, or on RP_BENCH_SHARDS' server CPUs. */
static int relay_spawn(struct ctx *x, struct proc *p, char *const argv[])
{
	return proc_spawn_placed(p, argv, x->pl.n, x->pl.srv, x->cpu_s);
}

/*
 * Start relay @c on the server CPU, listening on 127.0.0.1, in front of
 * @up_ip:@up; its port in r->port. Prints why on failure and returns -errno.
 */
static int relay_start(struct ctx *x, enum cfg c, const char *up_ip, int up, struct relay *r)
{
	char ups[48], cpus[96], shards[16], lst[] = "127.0.0.1:0", path[128], text[2048], a1[96],
		a2[64];
	static const char *const mode[] = { "auto", "splice", "copy", "uring-splice" };
	uint64_t deadline = rp_bench_now_ns() + (uint64_t)START_TIMEOUT_MS * 1000000u;
	int ret;

	memset(r, 0, sizeof(*r));
	r->p.pid = -1;
	r->p.out = -1;
	snprintf(ups, sizeof(ups), "%s:%d", up_ip, up);
	snprintf(cpus, sizeof(cpus), "%d", x->cpu_s);
	snprintf(shards, sizeof(shards), "%u", x->pl.n ? x->pl.n : 1);
	if (x->pl.n)
		snprintf(cpus, sizeof(cpus), "%s", x->pl.srv_list);
	if (c <= C_RP_NOSPIN) {
		char *argv[] = { x->rp, "relay", "--listen", lst, "--upstream", ups, "--shards", shards,
				 "--cpus", cpus, "--mode", (char *)mode[c == C_RP_NOSPIN ? 0 : c],
				 c == C_RP_NOSPIN ? "--idle-spin" : NULL, "0", NULL };
		const char *l, *colon;

		ret = relay_spawn(x, &r->p, argv);
		if (ret)
			goto fail;
		ret = proc_read(&r->p, deadline, "listening on ");
		l = r->p.log ? strstr(r->p.log, "listening on ") : NULL;
		if (ret < 0 || !l || !strchr(l, '\n')) {
			ret = ret == 1 ? -EIO : -ETIMEDOUT;
			goto fail;
		}
		colon = strchr(l, '\n');
		while (colon > l && *colon != ':')
			colon--;
		r->port = atoi(colon + 1);
		if (r->port <= 0 || r->port > 65535) {
			ret = -EBADMSG;
			goto fail;
		}
		r->up = true;
		return 0;
	}
	r->port = free_port();
	if (r->port < 0) {
		ret = r->port;
		goto fail;
	}
	if (c == C_HAPROXY || c == C_HAPROXY_SPLICE) {
		char *argv[] = { x->haproxy, "-db", "-f", path, NULL };
		char map[RP_BENCH_MAX_SHARDS * 24] = "";
		size_t off = 0;

		/* one thread a CPU, as ringplane's shards are */
		for (unsigned i = 0; i < x->pl.n && off < sizeof(map); i++)
			off += (size_t)snprintf(map + off, sizeof(map) - off, "    cpu-map 1/%u %d\n",
						i + 1, x->pl.srv[i]);
		snprintf(path, sizeof(path), "%s/haproxy-%u.cfg", x->dir, x->cfg_seq++);
		snprintf(text, sizeof(text),
			 "global\n"
			 "    nbthread %s\n"
			 "%s"
			 "%s"
			 "defaults\n"
			 "    mode tcp\n"
			 "    option splice-auto\n"
			 "%s"
			 "    timeout connect 5s\n"
			 "    timeout client 60s\n"
			 "    timeout server 60s\n"
			 "listen relay\n"
			 "    bind 127.0.0.1:%d\n"
			 "    server up %s\n",
			 shards, map,
			 /* HAProxy's splice-auto does not splice loopback bulk (its
			  * heuristic never fires: no splice(2) call seen under perf);
			  * forced, with pipes the size of ours (relay_splice.c) */
			 c == C_HAPROXY_SPLICE ? "    tune.pipesize 262144\n" : "",
			 c == C_HAPROXY_SPLICE ? "    option splice-request\n    option splice-response\n" : "",
			 r->port, ups);
		ret = write_file(path, text, strlen(text), 0644);
		if (!ret)
			ret = relay_spawn(x, &r->p, argv);
	} else {
		char *argv[] = { x->socat, a1, a2, NULL };

		snprintf(a1, sizeof(a1), "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork,backlog=1024",
			 r->port);
		snprintf(a2, sizeof(a2), "TCP:%s", ups);
		ret = relay_spawn(x, &r->p, argv);
	}
	if (!ret)
		ret = wait_bound(&r->p, r->port, START_TIMEOUT_MS);
	if (ret)
		goto fail;
	r->up = true;
	return 0;
fail:
	fprintf(stderr, "relay: cannot start %s in front of %s: %s; it printed:\n%s\n",
		cfg_name[c], ups, strerror(-ret), log_tail(&r->p, 8));
	proc_stop(&r->p, cfg_name[c], false, -1);
	return ret;
}

/* Stop the relays; ringplane's final counters (one line per shard) become
 * notes, so a row's mode can be checked (bytes spliced, switches). */
static void relays_stop(struct relay *rs, const char *group)
{
	for (int c = 0; c < C_NR; c++) {
		struct relay *r = &rs[c];
		const char *s;

		if (!r->up || r->p.pid <= 0)
			continue;
		proc_stop(&r->p, cfg_name[c], true, -1);
		if (c <= C_RP_NOSPIN && (s = strstr(proc_log(&r->p), "shard 0: conns"))) {
			const char *e = strchr(s, '\n');
			const char *ops = strstr(s, " | ops");

			if (ops && (!e || ops < e))
				e = ops;
			rp_report_note("%s: %s final counters: %.*s", group, cfg_name[c],
				       e ? (int)(e - s) : (int)strlen(s), s);
		}
		proc_free(&r->p);
		r->up = false;
	}
}

/* RP_BENCH_RELAY_SKIP=uring,socat,... leaves relays out (the rows that
 * need them are not printed): a tuning rerun of the ringplane modes and
 * HAProxy need not pay for the others' runs. Names: auto splice copy
 * uring haproxy socat. */
static bool want_cfg(int c)
{
	static const char *const key[C_NR] = { "auto", "splice", "copy", "uring", "nospin", "haproxy",
						"haproxy-splice",
						"socat", "direct" };
	const char *env = getenv("RP_BENCH_RELAY_SKIP");
	size_t n = strlen(key[c]);

	if (!env || !*env)
		return true;
	for (const char *p = env; (p = strstr(p, key[c])); p += n)
		if ((p == env || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
			return false;
	return true;
}

/* Start every relay in @want in front of @up_ip:@up; the ones missing or
 * failing are left down (missing ones are the caller's skips). A peer that
 * fails to start gives its @group rows as skipped, with why, and the
 * others go on; ringplane's own failing to start fails the suite. Returns
 * how many came up. */
static int relays_start(struct ctx *x, const bool *want, const char *up_ip, int up,
			struct relay *rs, const char *group)
{
	int n = 0;

	for (int c = 0; c < C_NR; c++) {
		memset(&rs[c], 0, sizeof(rs[c]));
		rs[c].p.pid = -1;
		rs[c].p.out = -1;
		if (!want[c] || c == C_DIRECT || !cfg_available(x, (enum cfg)c) || !want_cfg(c))
			continue;
		int ret = relay_start(x, (enum cfg)c, up_ip, up, &rs[c]);

		if (ret) {
			char what[96];

			if (c <= C_RP_NOSPIN) {
				x->failed = -EIO;
				continue;
			}
			snprintf(what, sizeof(what), "%s via %s", group, cfg_name[c]);
			rp_report_skip(what, "%s did not start: %s (its output is above)",
				       cfg_name[c], strerror(-ret));
			continue;
		}
		n++;
	}
	return n;
}

/* Rows kept out of the suite's geomean: it summarises ringplane against
 * HAProxy, the relay one would run instead. */
#define SELF "ours against ours (which splice path): not a peer"
#define SOCAT "socat forks a process a connection: a strawman, not a peer"
#define DIRECT "no relay at all: what any relay costs, below 1 by nature"

/* A row of ours against relay @c: socat's kept out of the geomean. */
static void peer_row(enum cfg c, const char *name, const char *unit, const double *o,
		     const double *b, unsigned runs, bool higher)
{
	if (c == C_SOCAT)
		rp_bench_runs_row_aside(name, unit, o, b, runs, cfg_name[c], higher, SOCAT);
	else
		rp_bench_runs_row(name, unit, o, b, runs, cfg_name[c], higher);
}

static void skip_missing(const struct ctx *x, const bool *want, const char *group)
{
	for (int c = 0; c < C_NR; c++)
		if (want[c] && !cfg_available(x, (enum cfg)c)) {
			char what[96];

			snprintf(what, sizeof(what), "%s via %s", group, cfg_name[c]);
			rp_report_skip(what, "%s", cfg_missing((enum cfg)c));
		}
}

/* ---- bulk: iperf3 ---- */

/* The number after "@key": inside the object that follows "@obj": in
 * iperf3's JSON. */
static int json_num(const char *js, const char *obj, const char *key, double *out)
{
	char k[64];
	const char *p = strstr(js, obj);

	if (!p)
		return -EBADMSG;
	snprintf(k, sizeof(k), "\"%s\":", key);
	p = strstr(p, k);
	if (!p || sscanf(p + strlen(k), "%lf", out) != 1)
		return -EBADMSG;
	return 0;
}

static unsigned count_str(const char *s, const char *what)
{
	unsigned n = 0;

	while ((s = strstr(s, what))) {
		n++;
		s += strlen(what);
	}
	return n;
}

/*
 * Wait (bounded) until iperf3 -s @srv printed "Server listening" more than
 * @seen times: it has finished the last test and takes the next. Without
 * this, a client that follows at once can reach a server still closing the
 * previous test, which refuses it as busy (and closes with the client's
 * cookie unread: a reset, through a relay).
 */
static int iperf_server_idle(struct proc *srv, unsigned seen)
{
	uint64_t deadline = rp_bench_now_ns() + 10000000000ull;

	while (count_str(proc_log(srv), "Server listening") <= seen) {
		if (!ms_left(deadline))
			return -ETIMEDOUT;
		if (proc_read(srv, rp_bench_now_ns() + 50000000u, NULL) == 1)
			return -EIO;
	}
	return 0;
}

/* One iperf3 run to @host:@port: Gbit/s received and bytes received. */
static int iperf_run(struct ctx *x, const char *host, int port, unsigned streams, unsigned secs,
		     double *gbps, double *bytes, char *err, size_t errsz)
{
	char p[16], t[16], n[16];
	char *argv[] = { x->iperf3, "-c", (char *)host, "-p", p, "-t", t, "-P", n, "-J", "-i", "0",
			 NULL };
	struct proc pr;
	double sent = 0, bps = 0;
	int ret;

	snprintf(p, sizeof(p), "%d", port);
	snprintf(t, sizeof(t), "%u", secs);
	snprintf(n, sizeof(n), "%u", streams);
	ret = run_tool(&pr, argv, x->cpu_c, secs + TOOL_SLACK_S);
	if (ret != 0) {
		snprintf(err, errsz, "iperf3 -c %s (%s); its last lines: %s",
			 ret > 0 ? "exited non-zero" : strerror(-ret), ret > 0 ? "status" : "error",
			 log_tail(&pr, 6));
		proc_free(&pr);
		return -EIO;
	}
	if (json_num(proc_log(&pr), "\"sum_received\":", "bytes", bytes) ||
	    json_num(proc_log(&pr), "\"sum_received\":", "bits_per_second", &bps) ||
	    json_num(proc_log(&pr), "\"sum_sent\":", "bytes", &sent) || !(*bytes > 0) ||
	    !(bps > 0)) {
		snprintf(err, errsz, "no sum_received in iperf3's JSON: %s", log_tail(&pr, 6));
		proc_free(&pr);
		return -EBADMSG;
	}
	proc_free(&pr);
	*gbps = bps / 1e9;
	return 0;
}

/* Where a group's upstreams (iperf3 -s, sockperf server, nginx) run: here
 * on loopback, or in a network namespace behind a veth pair. */
struct net_path {
	const char *label;	   /* the bulk rows' name prefix: "bulk", "veth bulk" */
	const char *up_ip;	   /* the upstreams' address, for relays and direct */
	const struct rp_netns *ns; /* the upstreams run inside it; NULL: here */
};

static const struct net_path path_lo = { "bulk", "127.0.0.1", NULL };

/* The other rows' name prefix: "" on loopback, "veth " over the pair. */
static const char *path_pre(const struct net_path *np)
{
	return np->ns ? "veth " : "";
}

#define NS_ARGV 24

/* @argv as it is run for @np: through `ip netns exec <ns>` when the path
 * has a namespace (built in @av), else @argv itself. `ip netns exec`
 * enters the namespace and execs the server in the same process: the pid
 * we stop and read is the server's. NULL when @argv is too long. */
static char *const *np_argv(struct ctx *x, const struct net_path *np, char *const argv[],
			    char **av)
{
	size_t n = 0;

	if (!np->ns)
		return argv;
	av[n++] = x->ip;
	av[n++] = "netns";
	av[n++] = "exec";
	av[n++] = (char *)np->ns->ns;
	for (size_t i = 0; argv[i]; i++) {
		if (n + 1 >= NS_ARGV)
			return NULL;
		av[n++] = argv[i];
	}
	av[n] = NULL;
	return av;
}

/* Wait until @p listens on @port: for a server in @np's namespace its port
 * is bound there, so look there (it must listen on the wildcard address,
 * which 127.0.0.1 collides with). */
static int np_wait_bound(const struct net_path *np, struct proc *p, int port)
{
	int back, ret, lr;

	if (!np->ns)
		return wait_bound(p, port, START_TIMEOUT_MS);
	ret = rp_netns_enter(np->ns, &back);
	if (ret)
		return ret;
	ret = wait_bound(p, port, START_TIMEOUT_MS);
	lr = rp_netns_leave(back);
	return lr ? lr : ret;
}

/* Start iperf3 -s on @port (on the client's CPU), in @bp's namespace when
 * it has one, and wait until it listens. */
static int iperf_server_start(struct ctx *x, const struct net_path *bp, struct proc *srv,
			      int port)
{
	char ps[16], *av[NS_ARGV];
	char *argv[] = { x->iperf3, "-s", "-p", ps, "-i", "0", "--forceflush", NULL };
	char *const *run = np_argv(x, bp, argv, av);
	int ret;

	snprintf(ps, sizeof(ps), "%d", port);
	ret = run ? proc_spawn(srv, run, x->cpu_c) : -E2BIG;
	return ret ? ret : np_wait_bound(bp, srv, port);
}

/* Of the HAProxy configurations measured (splice-auto, splice forced),
 * the one with the better median of @v (higher or lower is better); -1
 * when neither ran (a median of 0: its CPU could not be read). */
static int best_haproxy(const struct relay *rs, const bool *bad, double (*v)[MAX_RUNS],
			unsigned runs, bool higher)
{
	int best = -1;
	double bm = 0;

	for (int c = C_HAPROXY; c <= C_HAPROXY_SPLICE; c++) {
		double m;

		if (!rs[c].up || bad[c])
			continue;
		m = rp_bench_runs_median(v[c], runs);
		if (m > 0 && (best < 0 || (higher ? m > bm : m < bm)))
			best = c, bm = m;
	}
	return best;
}

static int bulk_rows(struct ctx *x, const struct net_path *bp, unsigned runs, unsigned secs)
{
	static const unsigned streams[] = { 1, 4 };
	static const char *const streams_key[] = { "1", "4" };
	const bool want[C_NR] = { [C_RP_AUTO] = true,	  [C_RP_SPLICE] = true, [C_RP_COPY] = true,
				  [C_RP_URING] = true,	  [C_HAPROXY] = true,	[C_HAPROXY_SPLICE] = true,
				  [C_SOCAT] = true,	  [C_DIRECT] = true };
	struct proc srv = { .pid = -1, .out = -1 }, dsrv = { .pid = -1, .out = -1 };
	struct relay rs[C_NR];
	const char *lb = bp->label;
	double gb[C_NR][MAX_RUNS], cpu[C_NR][MAX_RUNS];
	bool bad[C_NR];
	uint64_t idle_max[C_NR] = { 0 }; /* client exited -> server took a new test */
	int up, dp, ret = 0;

	memset(rs, 0, sizeof(rs));
	for (int c = 0; c < C_NR; c++)
		rs[c].p.pid = -1, rs[c].p.out = -1;
	if (!x->have_iperf3) {
		rp_report_skip(bp->ns ? "veth bulk (all rows)" : "bulk (all rows)",
			       "iperf3 was not found in PATH (apt-get install iperf3)");
		return 0;
	}
	up = free_port();
	dp = free_port();
	if (up < 0 || dp < 0 || up == dp) {
		fprintf(stderr, "relay: %s: no free port\n", lb);
		return -EADDRNOTAVAIL;
	}
	/* the upstreams share the client's CPU; the relay has the other */
	ret = iperf_server_start(x, bp, &srv, up);
	if (!ret)
		ret = iperf_server_start(x, bp, &dsrv, dp);
	if (!ret)
		ret = iperf_server_idle(&srv, 0);
	if (!ret)
		ret = iperf_server_idle(&dsrv, 0);
	if (ret) {
		fprintf(stderr, "relay: %s: iperf3 -s did not start (%s): %s%s\n", lb,
			strerror(-ret), proc_log(&srv), proc_log(&dsrv));
		goto out;
	}
	skip_missing(x, want, lb);
	relays_start(x, want, bp->up_ip, up, rs, lb);
	rs[C_DIRECT].port = dp;
	rs[C_DIRECT].up = want_cfg(C_DIRECT);
	if (bp->ns)
		rp_report_note("%s: the upstreams (iperf3 -s) run in network namespace %s at %s, behind a veth pair (%s, default MTU) from %s on this side; the relays listen on 127.0.0.1 and connect to %s; direct: the client to %s. Row names start \"veth\"; otherwise as the loopback rows",
			       lb, bp->ns->ns, bp->ns->ns_ip, bp->ns->host_if, bp->ns->host_ip,
			       bp->ns->ns_ip, bp->ns->ns_ip);
	rp_report_note("%s: iperf3 -c -P N -t %u -J on cpu %d through each relay (pinned to cpu %d: ringplane relay --shards 1 --cpus %d, haproxy nbthread 1 mode tcp option splice-auto and again with splice forced (option splice-request, splice-response, tune.pipesize 262144: splice-auto does not splice here), socat TCP-LISTEN,fork; each ringplane row against the better HAProxy of the two for that measure) to iperf3 -s on cpu %d; direct: client to iperf3 -s, both on cpu %d too (the endpoints placed alike; the relay has a CPU of its own); each relay warmed up by one unmeasured 1 s run; %u run%s per relay alternating, run r starting at relay r, median reported; cpu s/GB: the relay's utime+stime (+ reaped forks) per GB received",
		       lb, secs, x->cpu_c, x->cpu_s, x->cpu_s, x->cpu_c, x->cpu_c, runs,
		       runs == 1 ? "" : "s");
	/* one unmeasured 1 s run through each relay first: a relay's first
	 * bytes fault in its pool and provided buffers, and only the first
	 * row's first run would pay for them */
	for (int c = 0; c < C_NR; c++) {
		double g, b;
		char err[1024];
		unsigned seen = count_str(proc_log(&srv), "Server listening");

		if (!rs[c].up || c == C_DIRECT)
			continue;
		if (iperf_run(x, "127.0.0.1", rs[c].port, 4, 1, &g, &b, err, sizeof(err)))
			fprintf(stderr, "relay: %s warm-up via %s: %s\n", lb, cfg_name[c], err);
		if (iperf_server_idle(&srv, seen)) {
			ret = -ETIMEDOUT;
			goto out;
		}
	}
	for (size_t si = 0; si < sizeof(streams) / sizeof(streams[0]); si++) {
		unsigned ns = streams[si];
		char name[96], err[1024];

		if (!rp_bench_env_lists("RP_BENCH_RELAY_BULK_STREAMS", streams_key[si]))
			continue;
		memset(bad, 0, sizeof(bad));
		for (unsigned r = 0; r < runs; r++) {
			/* run r starts at relay r: none always follows the same one */
			for (int k = 0; k < C_NR; k++) {
				int c = (k + (int)r) % C_NR;
				double c0 = 0, c1 = 0, bytes = 0;

				gb[c][r] = cpu[c][r] = 0;
				if (!rs[c].up || bad[c])
					continue;
				if (rs[c].p.pid > 0)
					c0 = proc_cpu_s(rs[c].p.pid);
				struct proc *sv = c == C_DIRECT ? &dsrv : &srv;
				unsigned seen = count_str(proc_log(sv), "Server listening");

				uint64_t t_end;

				ret = iperf_run(x, c == C_DIRECT ? bp->up_ip : "127.0.0.1",
						rs[c].port, ns, secs, &gb[c][r], &bytes, err,
						sizeof(err));
				t_end = rp_bench_now_ns();
				if (iperf_server_idle(sv, seen)) {
					fprintf(stderr, "relay: %s: iperf3 -s did not take a new test within 10 s: %s\n",
						lb, log_tail(sv, 6));
					ret = -ETIMEDOUT;
					goto out;
				}
				t_end = rp_bench_now_ns() - t_end;
				if (t_end > idle_max[c])
					idle_max[c] = t_end;
				if (ret) {
					fprintf(stderr, "relay: FAILED %s %u stream%s via %s: %s\n",
						lb, ns, ns == 1 ? "" : "s", cfg_name[c], err);
					rp_report_note("FAILED: %s %u stream%s via %s: %s", lb, ns,
						       ns == 1 ? "" : "s", cfg_name[c], err);
					bad[c] = true;
					x->failed = -EIO;
					continue;
				}
				if (rs[c].p.pid > 0) {
					if (c == C_SOCAT)
						sleep_ms(200); /* its forks reaped */
					c1 = proc_cpu_s(rs[c].p.pid);
					if (c0 >= 0 && c1 >= c0)
						cpu[c][r] = (c1 - c0) / (bytes / 1e9);
				}
			}
		}
		const char *sn = ns == 1 ? "stream" : "streams";
		const char *cpre = bp->ns ? "veth " : "";

		ret = 0;
		for (int c = 0; c < C_NR; c++) {
			static const char *const suffix[C_NR] = { "", " splice", " copy" };
			int o = c <= C_RP_COPY ? c : C_RP_AUTO;

			if (bad[o] || !rs[o].up || bad[c] || !rs[c].up)
				continue;
			if (c <= C_RP_COPY) {
				/* against the better HAProxy of the two (splice-auto,
				 * splice forced), each measure on its own */
				int hg = best_haproxy(rs, bad, gb, runs, true);
				int hc = best_haproxy(rs, bad, cpu, runs, false);

				if (hg < 0)
					continue;
				snprintf(name, sizeof(name), "%s %u %s%s", lb, ns, sn, suffix[c]);
				rp_bench_runs_row(name, "Gbit/s", gb[c], gb[hg], runs, cfg_name[hg], true);
				snprintf(name, sizeof(name), "%scpu s/GB %u %s%s", cpre, ns, sn,
					 suffix[c]);
				if (hc >= 0 && rp_bench_runs_median(cpu[c], runs) > 0)
					rp_bench_runs_row(name, "s/GB", cpu[c], cpu[hc], runs, cfg_name[hc],
					    false);
			} else if (c == C_RP_URING) {
				/* readiness + splice(2) on the shard vs IORING_OP_SPLICE in io-wq */
				if (bad[C_RP_SPLICE] || !rs[C_RP_SPLICE].up)
					continue;
				snprintf(name, sizeof(name), "%s %u %s splice vs uring-splice", lb, ns,
					 sn);
				rp_bench_runs_row_aside(name, "Gbit/s", gb[C_RP_SPLICE], gb[c], runs,
							cfg_name[c], true, SELF);
				snprintf(name, sizeof(name), "%scpu s/GB %u %s splice vs uring-splice",
					 cpre, ns, sn);
				if (rp_bench_runs_median(cpu[C_RP_SPLICE], runs) > 0 &&
				    rp_bench_runs_median(cpu[c], runs) > 0)
					rp_bench_runs_row_aside(name, "s/GB", cpu[C_RP_SPLICE], cpu[c],
								runs, cfg_name[c], false, SELF);
			} else if (c == C_SOCAT) {
				snprintf(name, sizeof(name), "%s %u %s vs socat", lb, ns, sn);
				rp_bench_runs_row_aside(name, "Gbit/s", gb[C_RP_AUTO], gb[c], runs, "socat",
							true, SOCAT);
				snprintf(name, sizeof(name), "%scpu s/GB %u %s vs socat", cpre, ns, sn);
				if (rp_bench_runs_median(cpu[C_RP_AUTO], runs) > 0 && rp_bench_runs_median(cpu[c], runs) > 0)
					rp_bench_runs_row_aside(name, "s/GB", cpu[C_RP_AUTO], cpu[c], runs,
								"socat", false, SOCAT);
			} else if (c == C_DIRECT) {
				snprintf(name, sizeof(name), "%s %u %s vs direct", lb, ns, sn);
				rp_bench_runs_row_aside(name, "Gbit/s", gb[C_RP_AUTO], gb[c], runs,
							"direct (no relay)", true, DIRECT);
			}
		}
		/* every run of the ringplane modes and HAProxy, in run order: the
		 * medians above hide the spread a mode's choice is judged on;
		 * then each measure's median and interquartile range */
		for (int c = 0; c <= C_HAPROXY_SPLICE; c++) {
			char runs_txt[1024];
			size_t rl = 0;
			double sg[MAX_RUNS], sc[MAX_RUNS];

			if (!rs[c].up || bad[c])
				continue;
			runs_txt[0] = '\0';
			for (unsigned r = 0; r < runs && rl < sizeof(runs_txt); r++)
				rl += (size_t)snprintf(runs_txt + rl, sizeof(runs_txt) - rl,
						       "%s%.2f Gbit/s %.3f s/GB", r ? ", " : "",
						       gb[c][r], cpu[c][r]);
			memcpy(sg, gb[c], runs * sizeof(double));
			memcpy(sc, cpu[c], runs * sizeof(double));
			struct rp_bench_stat3 tg = rp_bench_summarize(sg, runs),
					      tc = rp_bench_summarize(sc, runs);

			rp_report_note("%s %u %s runs via %s: %s; median %.2f Gbit/s (IQR %.2f-%.2f), %.3f s/GB (IQR %.3f-%.3f)",
				       lb, ns, sn, cfg_name[c], runs_txt, tg.med, tg.q1, tg.q3,
				       tc.med, tc.q1, tc.q3);
		}
		/* how busy each relay's CPU was (s/GB x GB/s): a relay well under
		 * 100% did not limit its row, the endpoints on the other CPU did */
		char busy[512];
		size_t bl = 0;

		busy[0] = '\0';
		for (int c = 0; c < C_DIRECT && bl < sizeof(busy); c++)
			if (rs[c].up && !bad[c] && rp_bench_runs_median(cpu[c], runs) > 0)
				bl += (size_t)snprintf(busy + bl, sizeof(busy) - bl, "%s%s %.0f%%",
						       bl ? ", " : "", cfg_name[c],
						       100.0 * rp_bench_runs_median(cpu[c], runs) *
							       rp_bench_runs_median(gb[c], runs) / 8.0);
		if (bl)
			rp_report_note("%s %u %s: each relay's CPU busy (median s/GB x median GB/s): %s",
				       lb, ns, sn, busy);
	}
	for (int c = 0; c < C_NR; c++)
		if (idle_max[c] > 200000000u)
			rp_report_note("%s via %s: iperf3 -s took up to %.0f ms after its client exited to take the next test (the relay passing the close on)",
				       lb, cfg_name[c], (double)idle_max[c] / 1e6);
	ret = 0;
out:
	relays_stop(rs, lb);
	/* iperf3 -s exits 1 on SIGTERM ("interrupt - the server has terminated") */
	proc_stop(&srv, "iperf3 -s (relayed upstream)", false, 1);
	proc_stop(&dsrv, "iperf3 -s (direct)", false, 1);
	return ret;
}

/* ---- over veth: the upstreams in a network namespace ---- */

/* Its own names and /30, held under a lock while up (bench/netns.h: tag
 * "rl"): suite_zc's pair (tag "zc") may be up at the same time, and so
 * may another run's. */
static struct rp_netns relay_ns;

typedef int rows_fn(struct ctx *x, const struct net_path *np, unsigned runs, unsigned secs);

/* A group of rows (@rows: bulk, latency, http) again with the relays'
 * upstream leg (and direct's whole path) on a veth pair instead of
 * loopback; the namespace and the pair are up for this group only and
 * removed before this returns, whatever the rows did. @what names the
 * rows a skip is for. */
static int veth_rows(struct ctx *x, const char *label, const char *what, rows_fn *rows,
		     unsigned runs, unsigned secs)
{
	const struct net_path np = { label, relay_ns.ns_ip, &relay_ns };
	char why[256];
	int ret;

	if (!x->have_ip) {
		rp_report_skip(what, "ip (iproute2) was not found in PATH");
		return 0;
	}
	rp_netns_init(&relay_ns, "rl", 1);
	if (rp_netns_up(&relay_ns, why, sizeof(why))) {
		rp_report_skip(what, "%s", why);
		return 0;
	}
	rp_report_note("%s rows' receive steering: %s", label, relay_ns.steer);
	ret = rows(x, &np, runs, secs);
	rp_netns_down(&relay_ns);
	if (ret) {
		/* a failure of the namespace's rows (a server that would not
		 * start in it) fails the run, but the loopback rows still run */
		rp_report_skip(what, "the rows failed: %s", strerror(-ret));
		x->failed = ret;
		ret = 0;
	}
	return ret;
}

/* ---- small messages: sockperf ping-pong ---- */

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

static int sockperf_run(struct ctx *x, const char *host, int port, unsigned secs, double *p50,
			double *p99, char *err, size_t errsz)
{
	char p[16], t[16];
	char *argv[] = { x->sockperf, "ping-pong", "--tcp", "-i", (char *)host, "-p", p,
			 "-m", "64", "-t", t, NULL };
	struct proc pr;
	int ret;

	snprintf(p, sizeof(p), "%d", port);
	snprintf(t, sizeof(t), "%u", secs);
	ret = run_tool(&pr, argv, x->cpu_c, secs + TOOL_SLACK_S);
	if (ret != 0 || parse_pct(proc_log(&pr), "50.000", p50) ||
	    parse_pct(proc_log(&pr), "99.000", p99)) {
		snprintf(err, errsz, "sockperf ping-pong %s; its last lines: %s",
			 ret > 0 ? "exited non-zero" : ret < 0 ? strerror(-ret) : "printed no percentiles",
			 log_tail(&pr, 6));
		proc_free(&pr);
		return -EIO;
	}
	if (strstr(proc_log(&pr), "# dropped messages = ") &&
	    !strstr(proc_log(&pr), "# dropped messages = 0; # duplicated messages = 0; # out-of-order messages = 0"))
		rp_report_note("sockperf reported dropped, duplicated or out-of-order messages (%s:%d)",
			       host, port);
	proc_free(&pr);
	return 0;
}

/* sockperf server on the relays' CPU; in @np's namespace (listening on
 * its wildcard address) when it has one. */
static int latency_rows(struct ctx *x, const struct net_path *np, unsigned runs, unsigned secs)
{
	const bool want[C_NR] = { [C_RP_AUTO] = true, [C_RP_NOSPIN] = true, [C_HAPROXY] = true,
				  [C_SOCAT] = true, [C_DIRECT] = true };
	struct proc srv = { .pid = -1, .out = -1 };
	struct relay rs[C_NR];
	char ps[16], group[32], *av[NS_ARGV];
	char *sargv[] = { x->sockperf, "server", "--tcp", "-i", np->ns ? "0.0.0.0" : "127.0.0.1",
			  "-p", ps, NULL };
	char *const *run = np_argv(x, np, sargv, av);
	const char *pre = path_pre(np);
	double p50[C_NR][MAX_RUNS], p99[C_NR][MAX_RUNS];
	bool bad[C_NR] = { 0 };
	int up, ret;

	snprintf(group, sizeof(group), "%sp50/p99 64B", pre);

	memset(rs, 0, sizeof(rs));
	for (int c = 0; c < C_NR; c++)
		rs[c].p.pid = -1, rs[c].p.out = -1;
	if (!x->have_sockperf) {
		rp_report_skip(group, "sockperf was not found in PATH (apt-get install sockperf)");
		return 0;
	}
	up = free_port();
	if (up < 0)
		return up;
	snprintf(ps, sizeof(ps), "%d", up);
	ret = run ? proc_spawn(&srv, run, x->cpu_s) : -E2BIG;
	if (!ret)
		ret = np_wait_bound(np, &srv, up);
	if (ret) {
		fprintf(stderr, "relay: %ssockperf server did not start (%s): %s\n", pre,
			strerror(-ret), proc_log(&srv));
		goto out;
	}
	skip_missing(x, want, group);
	relays_start(x, want, np->up_ip, up, rs, group);
	rs[C_DIRECT].port = up;
	rs[C_DIRECT].up = want_cfg(C_DIRECT);
	if (np->ns)
		rp_report_note("%ssmall messages: sockperf server runs in network namespace %s, listening on its wildcard address, behind a veth pair (%s, default MTU) from %s on this side; the relays listen on 127.0.0.1 and connect to %s; direct: the client to %s. Row names start \"veth\"; otherwise as the loopback rows",
			       pre, np->ns->ns, np->ns->host_if, np->ns->host_ip, np->ns->ns_ip,
			       np->ns->ns_ip);
	rp_report_note("%ssmall messages: sockperf ping-pong --tcp -m 64 -t %u on cpu %d through each relay (ringplane relay --shards 1, by default spinning up to 50 us before it sleeps, and again with --idle-spin 0; haproxy nbthread 1, sleeping in epoll; socat; pinned to cpu %d) to sockperf server on cpu %d; a 1 s warm-up of each, then %u run%s per relay alternating, run r starting at relay r, median of the runs' percentiles",
		       pre, secs, x->cpu_c, x->cpu_s, x->cpu_s, runs, runs == 1 ? "" : "s");
	/* r = -1: the unmeasured warm-up; then run r starts at relay r, so no
	 * relay is always first or always follows the same one */
	for (int r = -1; r < (int)runs; r++)
		for (int k = 0; k < C_NR; k++) {
			int c = (k + (r < 0 ? 0 : r)) % C_NR;
			double w50, w99;
			char err[1024];

			if (!rs[c].up || bad[c])
				continue;
			if (sockperf_run(x, c == C_DIRECT ? np->up_ip : "127.0.0.1", rs[c].port,
					 r < 0 ? 1 : secs, r < 0 ? &w50 : &p50[c][r],
					 r < 0 ? &w99 : &p99[c][r], err, sizeof(err))) {
				fprintf(stderr, "relay: FAILED %s via %s: %s\n", group, cfg_name[c],
					err);
				rp_report_note("FAILED: %s via %s: %s", group, cfg_name[c], err);
				bad[c] = true;
				x->failed = -EIO;
			}
		}
	ret = 0;
	if (bad[C_RP_AUTO] || !rs[C_RP_AUTO].up)
		goto out;
	for (int c = C_HAPROXY; c <= C_SOCAT; c++) {
		char n50[64], n99[64];

		if (bad[c] || !rs[c].up)
			continue;
		snprintf(n50, sizeof(n50), "%sp50 64B%s", pre, c == C_SOCAT ? " vs socat" : "");
		snprintf(n99, sizeof(n99), "%sp99 64B%s", pre, c == C_SOCAT ? " vs socat" : "");
		peer_row(c, n50, "us", p50[C_RP_AUTO], p50[c], runs, false);
		peer_row(c, n99, "us", p99[C_RP_AUTO], p99[c], runs, false);
	}
	/* like for like: ours sleeping as soon as idle, as HAProxy does */
	if (!bad[C_RP_NOSPIN] && rs[C_RP_NOSPIN].up && !bad[C_HAPROXY] && rs[C_HAPROXY].up) {
		char n50[64], n99[64];

		snprintf(n50, sizeof(n50), "%sp50 64B --idle-spin 0", pre);
		snprintf(n99, sizeof(n99), "%sp99 64B --idle-spin 0", pre);
		rp_bench_runs_row(n50, "us", p50[C_RP_NOSPIN], p50[C_HAPROXY], runs,
				  cfg_name[C_HAPROXY], false);
		rp_bench_runs_row(n99, "us", p99[C_RP_NOSPIN], p99[C_HAPROXY], runs,
				  cfg_name[C_HAPROXY], false);
	}
	if (rs[C_DIRECT].up && !bad[C_DIRECT])
		rp_report_note("%ssmall messages: direct to sockperf server (no relay): p50 %.2f us, p99 %.2f us (what a relay adds is the difference)",
			       pre, rp_bench_runs_median(p50[C_DIRECT], runs), rp_bench_runs_median(p99[C_DIRECT], runs));
out:
	relays_stop(rs, np->ns ? "veth small messages" : "small messages");
	proc_stop(&srv, "sockperf server", false, -1);
	return ret;
}

/* ---- HTTP and churn: wrk and nginx ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* GET /4k.bin with HTTP/1.0 from @host:@port: 0 when the answer is 200
 * with exactly our file, else -EBADMSG (@err says what came back). */
static int http_check(struct ctx *x, const char *host, int port, char *err, size_t errsz)
{
	static const char req[] = "GET /4k.bin HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
	uint64_t deadline = rp_bench_now_ns() + 5000000000ull;
	struct sockaddr_in a = loopback(port);
	char buf[FILE_SIZE + 2048];
	size_t len = 0;
	const char *body;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ret = -EBADMSG;

	if (fd < 0)
		return -errno;
	if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
		snprintf(err, errsz, "not an IPv4 address: %s", host);
		close(fd);
		return -EINVAL;
	}
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1)) {
		snprintf(err, errsz, "connect/write: %s", strerror(errno));
		close(fd);
		return -EIO;
	}
	while (len < sizeof(buf) - 1 && ms_left(deadline)) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&pf, 1, (int)ms_left(deadline)) <= 0)
			continue;
		r = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = '\0';
	body = strstr(buf, "\r\n\r\n");
	if (len >= 12 && !strncmp(buf, "HTTP/1.1 200", 12) && body &&
	    len - (size_t)(body + 4 - buf) == FILE_SIZE && !memcmp(body + 4, x->file, FILE_SIZE))
		ret = 0;
	else
		snprintf(err, errsz, "expected 200 and our %u bytes, got %zu bytes starting \"%.40s\"",
			 FILE_SIZE, len, buf);
	return ret;
}

/* nginx on the relays' CPU (or RP_BENCH_SHARDS' upstream CPUs), on a free
 * port of 127.0.0.1, or of the wildcard address inside @np's namespace
 * when it has one. */
static int nginx_start(struct ctx *x, const struct net_path *np, struct proc *p, int *port)
{
	char conf[96], elog[96], www[80], file[96], text[4096]; /* x->dir: 64 bytes */
	char aff[RP_BENCH_MAX_SHARDS * 72], *av[NS_ARGV];
	char *argv[] = { x->nginx, "-p", x->dir, "-c", conf, "-e", elog, NULL };
	char *const *run = np_argv(x, np, argv, av);
	int ret;

	rp_bench_nginx_affinity(aff, sizeof(aff), x->pl.up, x->pl.n);
	*port = free_port();
	if (*port < 0)
		return *port;
	snprintf(conf, sizeof(conf), "%s/nginx.conf", x->dir);
	snprintf(elog, sizeof(elog), "%s/nginx-error.log", x->dir);
	snprintf(www, sizeof(www), "%s/www", x->dir);
	snprintf(file, sizeof(file), "%s/4k.bin", www);
	if (mkdir(www, 0755) && errno != EEXIST)
		return -errno;
	chmod(www, 0755);
	ret = write_file(file, x->file, FILE_SIZE, 0644);
	if (ret)
		return ret;
	snprintf(text, sizeof(text),
		 "daemon off;\n"
		 "worker_processes %u;\n"
		 "%s%s%s"
		 "%s"
		 "pid %s/nginx.pid;\n"
		 "error_log %s/nginx-error.log;\n"
		 "events { worker_connections 4096; }\n"
		 "http {\n"
		 "    access_log off;\n"
		 "    keepalive_requests 1000000;\n"
		 "    client_body_temp_path %s/t_body;\n"
		 "    proxy_temp_path %s/t_proxy;\n"
		 "    fastcgi_temp_path %s/t_fastcgi;\n"
		 "    uwsgi_temp_path %s/t_uwsgi;\n"
		 "    scgi_temp_path %s/t_scgi;\n"
		 "    server { listen %s%d; root %s; }\n"
		 "}\n",
		 x->pl.n ? x->pl.n : 1, x->pl.n ? "worker_cpu_affinity " : "", aff,
		 x->pl.n ? ";\n" : "", geteuid() == 0 ? "user www-data;\n" : "", x->dir, x->dir,
		 x->dir, x->dir, x->dir, x->dir, x->dir, np->ns ? "" : "127.0.0.1:", *port, www);
	ret = write_file(conf, text, strlen(text), 0644);
	if (ret)
		return ret;
	/* with RP_BENCH_SHARDS: N workers, one on each upstream CPU */
	ret = run ? proc_spawn_placed(p, run, x->pl.n, x->pl.up, x->cpu_s) : -E2BIG;
	if (!ret)
		ret = np_wait_bound(np, p, *port);
	return ret;
}

/* The count in wrk's "  84707 requests in 3.00s, ..." line, or 0. */
static double wrk_requests(const char *log)
{
	const char *l = strstr(log, " requests in ");

	while (l && l > log && l[-1] >= '0' && l[-1] <= '9')
		l--;
	return l ? strtod(l, NULL) : 0;
}

/* wrk for @secs; its req/s in *rps and, when @reqs is not NULL, the
 * requests it completed in *reqs. */
static int wrk_run(struct ctx *x, const char *host, int port, bool close_each, unsigned secs,
		   double *rps, double *reqs, char *err, size_t errsz)
{
	char d[16], url[64], t[16], c[16], hdr[] = "Connection: close";
	char *argv[] = { x->wrk, t, c, "-d", d, "--timeout", "5s", url,
			 close_each ? "-H" : NULL, hdr, NULL };
	unsigned n = x->pl.n ? x->pl.n : 1;
	struct proc pr;
	const char *l;
	int ret;

	/* RP_BENCH_SHARDS=N: N threads of 32 connections on the load CPUs */
	snprintf(t, sizeof(t), "-t%u", n);
	snprintf(c, sizeof(c), "-c%u", 32 * n);
	snprintf(d, sizeof(d), "%us", secs);
	snprintf(url, sizeof(url), "http://%s:%d/4k.bin", host, port);
	ret = x->pl.n ? run_tool_on(&pr, argv, x->pl.cli, x->pl.n, secs + TOOL_SLACK_S)
		      : run_tool(&pr, argv, x->cpu_c, secs + TOOL_SLACK_S);
	l = strstr(proc_log(&pr), "Requests/sec:");
	if (ret != 0 || !l || sscanf(l + 13, "%lf", rps) != 1 || !(*rps > 0)) {
		snprintf(err, errsz, "wrk %s; its last lines: %s",
			 ret > 0 ? "exited non-zero" : ret < 0 ? strerror(-ret) : "printed no Requests/sec",
			 log_tail(&pr, 6));
		ret = -EIO;
	} else if ((l = strstr(proc_log(&pr), "Non-2xx or 3xx responses:")) ||
		   (l = strstr(proc_log(&pr), "Socket errors:"))) {
		const char *e = strchr(l, '\n');

		snprintf(err, errsz, "wrk reported \"%.*s\"", e ? (int)(e - l) : 80, l);
		ret = -EPROTO;
	} else if (reqs && !(*reqs = wrk_requests(proc_log(&pr)))) {
		snprintf(err, errsz, "wrk printed no request count; its last lines: %s", log_tail(&pr, 6));
		ret = -EIO;
	}
	proc_free(&pr);
	return ret;
}

/* The ratio of each run (ours against the baseline run next to it): on a
 * shared VM the spread of these says more than the ratio of the medians. */
static void note_run_ratios(const char *name, const double *o, const double *b, unsigned n,
			    bool higher)
{
	char buf[256];
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < n && off < sizeof(buf); i++)
		if (o[i] > 0 && b[i] > 0)
			off += (size_t)snprintf(buf + off, sizeof(buf) - off, " %.2f",
						higher ? o[i] / b[i] : b[i] / o[i]);
	if (n > 1 && buf[0])
		rp_report_note("%s: ratio of each run:%s", name, buf);
}

/* nginx on the relays' CPU; in @np's namespace when it has one. */
static int http_rows(struct ctx *x, const struct net_path *np, unsigned runs, unsigned secs)
{
	const bool want[C_NR] = { [C_RP_AUTO] = true, [C_HAPROXY] = true, [C_SOCAT] = true,
				  [C_DIRECT] = true };
	struct proc ngx = { .pid = -1, .out = -1 };
	struct relay rs[C_NR];
	double rps[2][C_NR][MAX_RUNS], cpu_us[2][C_NR][MAX_RUNS];
	bool bad[2][C_NR];
	char err[1024], scale[24] = "", group[96];
	const char *pre = path_pre(np);
	int up = 0, ret;

	snprintf(group, sizeof(group), "%shttp 4KB keep-alive, %shttp 4KB conn per request", pre,
		 pre);

	if (x->pl.n) /* the rows of a scaling run are named apart */
		snprintf(scale, sizeof(scale), " %u shards", x->pl.n);
	memset(rs, 0, sizeof(rs));
	memset(bad, 0, sizeof(bad));
	memset(cpu_us, 0, sizeof(cpu_us));
	for (int c = 0; c < C_NR; c++)
		rs[c].p.pid = -1, rs[c].p.out = -1;
	if (!x->have_wrk || !x->have_nginx) {
		rp_report_skip(group, "%s was not found in PATH (apt-get install %s)",
			       x->have_wrk ? "nginx" : "wrk", x->have_wrk ? "nginx-light" : "wrk");
		return 0;
	}
	ret = nginx_start(x, np, &ngx, &up);
	if (!ret)
		ret = http_check(x, np->up_ip, up, err, sizeof(err));
	else
		snprintf(err, sizeof(err), "%s", strerror(-ret));
	if (ret) {
		char elog[96], tail[512] = "";
		FILE *f;

		snprintf(elog, sizeof(elog), "%s/nginx-error.log", x->dir);
		f = fopen(elog, "r");
		if (f) {
			size_t n = fread(tail, 1, sizeof(tail) - 1, f);

			tail[n] = '\0';
			fclose(f);
		}
		fprintf(stderr, "relay: nginx on %s:%d did not serve the 4 KB file: %s; it printed: %s %s\n",
			np->up_ip, up, err, proc_log(&ngx), tail);
		rp_report_skip(group, "nginx did not serve the file: %s", err);
		x->failed = -EIO;
		ret = 0;
		goto out;
	}
	skip_missing(x, want, np->ns ? "veth http" : "http");
	relays_start(x, want, np->up_ip, up, rs, np->ns ? "veth http" : "http");
	rs[C_DIRECT].port = up;
	rs[C_DIRECT].up = want_cfg(C_DIRECT);
	for (int c = 0; c < C_DIRECT; c++)
		if (rs[c].up && http_check(x, "127.0.0.1", rs[c].port, err, sizeof(err))) {
			fprintf(stderr, "relay: FAILED %shttp via %s: %s\n", pre, cfg_name[c], err);
			rp_report_note("FAILED: a %sGET through %s: %s", pre, cfg_name[c], err);
			bad[0][c] = bad[1][c] = true;
			x->failed = -EIO;
		}
	if (x->pl.n)
		rp_report_note("http, shard scaling (RP_BENCH_SHARDS=%u): wrk -t%u -c%u -d %us on cpus %s for a %u B file from nginx (worker_processes %u, one on each of cpus %s, access_log off) through each relay on cpus %s (ringplane relay --shards %u --cpus %s, haproxy nbthread %u with cpu-map one thread a CPU, socat); conn per request: the same with -H \"Connection: close\" (conns/s = req/s); %u run%s per relay alternating after a 1 s warm-up of each, median reported; relay cpu: the relay process's utime+stime per request (per connection); every relay first served one GET checked byte for byte",
			       x->pl.n, x->pl.n, 32 * x->pl.n, secs, x->pl.cli_list, FILE_SIZE, x->pl.n,
			       x->pl.up_list, x->pl.srv_list, x->pl.n, x->pl.srv_list, x->pl.n, runs,
			       runs == 1 ? "" : "s");
	else
		rp_report_note("%shttp: wrk -t1 -c32 -d %us on cpu %d for a %u B file from nginx (worker_processes 1, access_log off) on cpu %d%s through each relay (ringplane relay --shards 1, haproxy nbthread 1, socat; pinned to cpu %d); conn per request: the same with -H \"Connection: close\" (conns/s = req/s); %u run%s per relay alternating after a 1 s warm-up of each, median reported; relay cpu: the relay process's utime+stime per request (per connection); every relay first served one GET checked byte for byte",
			       pre, secs, x->cpu_c, FILE_SIZE, x->cpu_s,
			       np->ns ? " in the namespace behind the veth pair (listening on its wildcard address; relays connect to it, direct is wrk straight to it)" : "",
			       x->cpu_s, runs, runs == 1 ? "" : "s");
	for (int k = 0; k < 2; k++) {
		/* r = -1: a 1 s warm-up of every relay, not counted, so no
		 * measured run is a relay's first traffic of this kind */
		for (int r = -1; r < (int)runs; r++)
			for (int c = 0; c < C_NR; c++) {
				double dummy, reqs = 0, c0 = -1, c1 = -1;

				if (!rs[c].up || bad[k][c])
					continue;
				if (c != C_DIRECT)
					c0 = proc_cpu_s(rs[c].p.pid);
				ret = wrk_run(x, c == C_DIRECT ? np->up_ip : "127.0.0.1", rs[c].port,
					      k == 1, r < 0 ? 1 : secs,
					      r < 0 ? &dummy : &rps[k][c][r], &reqs, err, sizeof(err));
				if (c != C_DIRECT)
					c1 = proc_cpu_s(rs[c].p.pid);
				if (!ret && r >= 0)
					cpu_us[k][c][r] = c0 >= 0 && c1 >= c0 ? (c1 - c0) * 1e6 / reqs : 0;
				if (ret) {
					fprintf(stderr, "relay: FAILED %shttp %s via %s: %s\n",
						pre, k ? "conn per request" : "keep-alive",
						cfg_name[c], err);
					rp_report_note("FAILED: %shttp %s via %s: %s", pre,
						       k ? "conn per request" : "keep-alive",
						       cfg_name[c], err);
					bad[k][c] = true;
					x->failed = -EIO;
				}
			}
		if (bad[k][C_RP_AUTO] || !rs[C_RP_AUTO].up)
			continue;
		for (int c = C_HAPROXY; c <= C_SOCAT; c++) {
			char name[64];

			if (bad[k][c] || !rs[c].up)
				continue;
			snprintf(name, sizeof(name), "%shttp 4KB %s%s%s", pre,
				 k ? "conn per request" : "keep-alive", scale,
				 c == C_SOCAT ? " vs socat" : "");
			peer_row(c, name, k ? "conns/s" : "req/s", rps[k][C_RP_AUTO], rps[k][c], runs,
				 true);
			if (c != C_HAPROXY)
				continue;
			note_run_ratios(name, rps[k][C_RP_AUTO], rps[k][c], runs, true);
			/* what the relay itself spends: the rate is shared with
			 * nginx on the same CPU, this is the relay's part */
			snprintf(name, sizeof(name), "%shttp 4KB %s%s relay cpu", pre,
				 k ? "conn per request" : "keep-alive", scale);
			if (rp_bench_runs_median(cpu_us[k][C_RP_AUTO], runs) > 0 &&
			    rp_bench_runs_median(cpu_us[k][c], runs) > 0) {
				rp_bench_runs_row(name, k ? "us/conn" : "us/req", cpu_us[k][C_RP_AUTO],
						  cpu_us[k][c], runs, cfg_name[c], false);
				note_run_ratios(name, cpu_us[k][C_RP_AUTO], cpu_us[k][c], runs, false);
			}
		}
		if (rs[C_DIRECT].up && !bad[k][C_DIRECT])
			rp_report_note("%shttp %s: direct to nginx (no relay): %.0f %s", pre,
				       k ? "conn per request" : "keep-alive",
				       rp_bench_runs_median(rps[k][C_DIRECT], runs), k ? "conns/s" : "req/s");
	}
	ret = 0;
out:
	relays_stop(rs, np->ns ? "veth http" : "http");
	proc_stop(&ngx, "nginx", false, -1);
	return ret;
}

/* RP_BENCH_RELAY_ROWS=bulk,veth,latency,veth-latency,http,veth-http picks
 * groups of rows (all when unset): one group can be rerun while tuning
 * without the others' minutes. "veth" is the veth bulk rows. */
static bool want_rows(const char *group)
{
	return rp_bench_env_lists("RP_BENCH_RELAY_ROWS", group);
}

/* The veth small-message groups (veth-latency, veth-http) add about 50 s
 * to a --quick run (measured 2026-11-29): they are in the full suite, and
 * in a --quick one only when RP_BENCH_RELAY_ROWS names them. */
static bool want_veth_small(const char *group, bool quick)
{
	const char *env = getenv("RP_BENCH_RELAY_ROWS");

	if (quick && (!env || !*env))
		return false;
	return want_rows(group);
}

int rp_bench_suite_relay(const struct rp_bench_opts *opts)
{
	struct ctx *x = calloc(1, sizeof(*x));
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;
	bool quick = opts->quick;
	int cpu[2], ret = 0, dir_slot;

	if (!x)
		return -ENOMEM;
	x->opts = opts;
	if (rp_bench_pick_cpus(cpu)) {
		cpu[0] = sched_getcpu();
		cpu[1] = cpu[0];
		rp_report_note("only one usable CPU: clients, relays and servers share cpu %d",
			       cpu[0]);
	}
	x->cpu_c = cpu[0]; /* this thread is pinned there (main.c) */
	x->cpu_s = cpu[1];
	ret = rp_bench_place(&x->pl, 3);
	if (ret) {
		rp_report_skip("relay (all rows)",
			       "RP_BENCH_SHARDS=%s: %s", getenv("RP_BENCH_SHARDS"),
			       ret == -ENODEV ? "fewer usable CPUs than 3 x N plus this thread's (relays, nginx, wrk)"
					      : "not a number 1..16");
		free(x);
		return 0;
	}
	x->have_rp = !rp_bench_find_ringplane(x->rp, sizeof(x->rp));
	x->have_haproxy = rp_find_executable("haproxy", x->haproxy, sizeof(x->haproxy));
	if (!x->have_haproxy)
		x->have_haproxy = rp_find_executable("/usr/sbin/haproxy", x->haproxy,
						     sizeof(x->haproxy));
	x->have_nginx = rp_find_executable("nginx", x->nginx, sizeof(x->nginx));
	if (!x->have_nginx)
		x->have_nginx = rp_find_executable("/usr/sbin/nginx", x->nginx, sizeof(x->nginx));
	x->have_socat = rp_find_executable("socat", x->socat, sizeof(x->socat));
	x->have_iperf3 = rp_find_executable("iperf3", x->iperf3, sizeof(x->iperf3));
	x->have_sockperf = rp_find_executable("sockperf", x->sockperf, sizeof(x->sockperf));
	x->have_wrk = rp_find_executable("wrk", x->wrk, sizeof(x->wrk));
	x->have_ip = rp_find_executable("ip", x->ip, sizeof(x->ip));
	if (!x->have_ip)
		x->have_ip = rp_find_executable("/usr/sbin/ip", x->ip, sizeof(x->ip));
	if (!x->have_rp) {
		rp_report_skip("relay (all rows)", "%s", cfg_missing(C_RP_AUTO));
		free(x);
		return 0;
	}
	if (!x->have_haproxy)
		rp_report_note("haproxy was not found in PATH: the rows against it are skipped (apt-get install haproxy)");
	for (size_t i = 0; i < FILE_SIZE; i++)
		x->file[i] = (uint8_t)(i * 131u + 7u + (i >> 8));
	snprintf(x->dir, sizeof(x->dir), "/tmp/ringplane-bench-relay-%d.XXXXXX",
		 (int)getpid()); /* the PID: whose it is, on a shared machine */
	if (!mkdtemp(x->dir)) {
		ret = -errno;
		fprintf(stderr, "relay: mkdtemp: %s\n", strerror(errno));
		free(x);
		return ret;
	}
	dir_slot = rp_cleanup_add_dir(x->dir); /* removed on SIGINT/SIGTERM too */
	chmod(x->dir, 0755); /* nginx's workers (www-data) read the root below it */
	rp_report_note("ringplane: %s; relays on cpu %d, clients on cpu %d", x->rp, x->cpu_s,
		       x->cpu_c);
	{
		/* which peers these are: the rows hold against these versions */
		static const char *const flag[] = { "-v", "-v", "-v", "-v", "-V" }; /* socat: -V */
		const char *path[] = { x->have_haproxy ? x->haproxy : NULL,
				       x->have_nginx ? x->nginx : NULL,
				       x->have_wrk ? x->wrk : NULL,
				       x->have_iperf3 ? x->iperf3 : NULL,
				       x->have_socat ? x->socat : NULL };
		char v[5][128];

		for (int i = 0; i < 5; i++)
			if (path[i])
				peer_version(path[i], flag[i], v[i], sizeof(v[i]));
			else
				snprintf(v[i], sizeof(v[i]), "not found");
		rp_report_note("peers: %s; %s; %s; %s; %s", v[0], v[1], v[2], v[3], v[4]);
	}
	sigaction(SIGPIPE, &ign, &old);

	/* RP_BENCH_RELAY_BULK_RUNS (1..16), _SECS (1..60) and _STREAMS (1, 4
	 * or both) for the bulk and veth rows: more, shorter runs of one row
	 * to tell two modes apart (docs/net.md, "Auto mode and local
	 * receivers") */
	unsigned bulk_runs = rp_bench_env_uint("RP_BENCH_RELAY_BULK_RUNS", quick ? 1 : 5, MAX_RUNS);
	unsigned bulk_secs = rp_bench_env_uint("RP_BENCH_RELAY_BULK_SECS", quick ? 1 : 4, 60);

	if (x->pl.n)
		/* iperf3 3.12 is one thread and sockperf one connection: only
		 * wrk spreads its load over N CPUs */
		rp_report_note("RP_BENCH_SHARDS=%u: the http rows only (bulk and latency have a one-thread client)",
			       x->pl.n);
	if (!x->pl.n && want_rows("bulk"))
		/* 5 runs: at 4 streams runs fall at 8-9.5 or 10-13 Gbit/s, and
		 * one fast run moved a median of 3 by 10-15% (docs/net.md,
		 * "Relay bulk on a quiet host") */
		ret = bulk_rows(x, &path_lo, bulk_runs, bulk_secs);
	if (!ret && !x->pl.n && want_rows("veth"))
		ret = veth_rows(x, "veth bulk", "veth bulk (all rows)", bulk_rows, bulk_runs,
				bulk_secs);
	if (!ret && !x->pl.n && want_rows("latency"))
		ret = latency_rows(x, &path_lo, quick ? 1 : 5, quick ? 1 : 3);
	if (!x->pl.n && quick && !getenv("RP_BENCH_RELAY_ROWS"))
		rp_report_note("the veth small-message rows (veth p50/p99 64B, veth http) are in the full suite only: about 50 s more; RP_BENCH_RELAY_ROWS=veth-latency,veth-http runs them with --quick");
	if (!ret && !x->pl.n && want_veth_small("veth-latency", quick))
		ret = veth_rows(x, "veth", "veth p50/p99 64B", latency_rows, quick ? 1 : 5,
				quick ? 1 : 3);

	/* 3 runs of 3 s by default; RP_BENCH_RELAY_HTTP_RUNS=5
	 * RP_BENCH_RELAY_HTTP_SECS=5 for a median that can decide a ratio
	 * near a goal (paired 3 s runs of one relay on the 2-vCPU VM were
	 * 0.81-1.34x of each other, docs/net.md) */
	unsigned http_runs = rp_bench_env_uint("RP_BENCH_RELAY_HTTP_RUNS", quick ? 1 : 3, MAX_RUNS);
	unsigned http_secs = rp_bench_env_uint("RP_BENCH_RELAY_HTTP_SECS", quick ? 1 : 3, 60);

	if (!ret && want_rows("http"))
		ret = http_rows(x, &path_lo, http_runs, http_secs);
	if (!ret && !x->pl.n && want_veth_small("veth-http", quick))
		ret = veth_rows(x, "veth",
				"veth http 4KB keep-alive, veth http 4KB conn per request",
				http_rows, http_runs, http_secs);

	sigaction(SIGPIPE, &old, NULL);
	nftw(x->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	rp_cleanup_del(dir_slot);
	if (!ret && x->failed) {
		fprintf(stderr, "relay: some rows FAILED (see above)\n");
		ret = x->failed;
	}
	free(x);
	return ret;
}
