/* SPDX-License-Identifier: MIT */
/*
 * ringplane-soak: the `ringplane` servers under a mixed load of real
 * clients with faults, for a given time, every byte checked end to end.
 *
 * Usage:
 *   ringplane-soak --ringplane PATH --seconds N [--server-faults] [--seed N]
 *                  [--conns N] [--mix KIND=W,...] [--servers LIST]
 *                  [--warmup S] [--max-size BYTES] [--server-timeout S]
 *                  [--no-rss-check] [--keep] [--shards N] [--stop quit|term]
 *
 *   --ringplane PATH   the `ringplane` binary (apps/); its servers are
 *                      started here on 127.0.0.1 port 0, with this
 *                      process's environment (RP_FAULTS, ASAN_OPTIONS...)
 *   --seconds N        load time (default 60), not counting the drains
 *                      nor the 5 s load before the SIGQUIT
 *   --server-faults    the servers inject faults (RP_FAULTS, -Dfaults=true):
 *                      a connection the server closes or resets early is
 *                      "closed by server" and fine when every byte received
 *                      before was right (a correct prefix); an HTTP 5xx
 *                      likewise. Anything else stays an error.
 *   --seed N           the one seed of every random choice (default 1)
 *   --conns N          client connections open at once, all servers
 *                      together (default 256, at most 4096)
 *   --mix K=W,...      weights of the client behaviours (default
 *                      stream=50,halfclose=15,reset=10,stall=8,silent=7,
 *                      garbage=10); garbage goes only where it can be
 *                      refused (serve, the PROXY relay), else it is a stream
 *   --servers LIST     a subset of echo,relay-copy,relay-splice,relay-auto,
 *                      relay-proxy,serve (default: all)
 *   --warmup S         warm-up time before the first measurement (default
 *                      seconds/4, at most 30)
 *   --max-size BYTES   largest stream and file (default 8 MB)
 *   --no-rss-check     print RSS but do not fail on growth (ASan's
 *                      quarantine grows by design)
 *   --server-timeout S the servers' idle, header and keep-alive timeouts
 *                      (default 8); a silent client gives up S + 4 s after
 *                      connecting. Under TSan give 30: a keep-alive
 *                      connection whose client is still reading a large
 *                      answer out of its socket buffer looks idle to serve
 *   --keep             keep the work directory (served root, server logs
 *                      with each server's exit counters)
 *   --shards N         every server runs N shards (default: 1 and 2 in
 *                      turn); under TSan give 2, so the shards' threads
 *                      really run side by side
 *   --stop quit|term   how the servers end (default quit): the graceful
 *                      drain under load below; term: SIGTERM once the
 *                      load has drained, as before the drain existed (to
 *                      tell a drain fault from the rest)
 *
 * Servers (--shards 1 or 2, --no-pin): `echo`; `relay --mode copy`,
 * `splice`, `auto`, each in front of one upstream `echo`; `relay
 * --accept-proxy` (auto) to which clients send a PROXY v1 or v2 header
 * first; `serve` over a root of files written here (0 B .. max-size,
 * contents and CRC32C known).
 *
 * Client behaviours (one epoll loop, every connection non-blocking):
 *   stream     a random total (1 B .. max-size, log-uniform) written in
 *              random pieces, read back as it is echoed, length and CRC32C
 *              checked; on serve: keep-alive GETs one after the other or
 *              pipelined, with ranges, HEAD and 404s, every body checked
 *   halfclose  stream, then shutdown(SHUT_WR) after the last byte (serve:
 *              after the last request): everything back, then EOF
 *   reset      SO_LINGER 0 close mid-stream; the prefix received is checked
 *   stall      stop reading for 1-3 s while the server's output backs up,
 *              then resume and verify the whole stream
 *   silent     connect and say nothing: the server must close it (idle /
 *              header timeouts, --server-timeout) or the client does after
 *              that and 4 s more
 *   garbage    random bytes: serve answers 4xx (or 501/505) or closes, the PROXY relay
 *              closes and nothing comes back (no byte reached the echo)
 *
 * Checks: connections by outcome and bytes verified per server; errors by
 * kind (unexpected ones fail the run); VmRSS and open descriptors of each
 * server when idle after the warm-up and at the end (load drained both
 * times; fail on growth beyond 5%, descriptors get 3 s for closes in
 * flight); sanitizer reports in the servers' stderr; with --stop term, each
 * server's exit status at SIGTERM (0 within 5 s).
 *
 * The drain (--stop quit, the default; quit_phase): after the checks
 * above, a last load of 5 s at full --conns (the open connections kept in
 * the mix's shares), then SIGQUIT to every server the clients use at once
 * and no new connection. Each connection open then must end as under load
 * (streams whole and CRC-checked, a half-close's EOF after every byte,
 * stalls resume in their own time and get everything, silent and garbage
 * ones closed by the server); serve's may end at an answer's end, the
 * answer whole (drain-closed), and an answer to a request sent after the
 * port refused connects must carry Connection: close and be the last. So
 * that such requests are sent, a few serve clients (HOLD_CONNS) started in
 * the last load are keep-alive and mid-request across
 * it: an answer, then a request whose last 2 bytes go only
 * once the port refuses connects; each must get that answer with
 * Connection: close, then EOF (the run fails if serve had none). A
 * connection reset before it received a byte, in the instant of the
 * SIGQUIT, is "reset-at-connect" (the drain takes in what the kernel
 * queued on the listener, then shuts it: what completes in the instant
 * between, or what an fd limit kept out, is reset; not with
 * --server-faults, whose injected resets strike accepted ones too), not
 * an error while no more were reset than the server never accepted. Each port must refuse connects
 * within 5 s, each server exit 0 when its last connection ends, before its
 * --drain-timeout (DRAIN_MS + --server-timeout, quit_drain_s says why);
 * the relays' upstream, SIGQUIT after them, within 5 s. The summary
 * prints per server the connections live at the SIGQUIT, how they ended,
 * the bytes moved and verified in the drain, the time to refuse and to
 * exit and the exit status. Exit 0 only when all pass, 1 otherwise,
 * 2 on a usage error. Every loop is bounded in count and time: a
 * connection with no progress for 30 s is an error (lost bytes), each
 * drain gives up after 60 s, the SIGQUIT drain after the servers' drain
 * timeout and 5 s more (then SIGKILL, a failure). Printed, not checked:
 * pauses of this process's own loop over 1 s (a starved client; an error
 * line names one in the 15 s before it).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ringplane/simd.h>

#include "test_proc.h" /* apps/: now_ms, listening_port, rss_kb, fd_count(_kind) */

#define PAT_LEN	    (16u << 20)	 /* the pattern every byte sent or served comes from */
#define PAT_TAIL    (128u << 10) /* pattern[PAT_LEN..] repeats its start: writes never wrap */
#define MAX_WRITE   (64u << 10)
#define MAX_CONNS   4096
#define MAX_REQ	    16
#define PROGRESS_MS 30000 /* no byte moved for this long: lost */
#define SILENT_EXTRA_MS                                                                            \
	4000 /* a silent or garbage client gives up this long after the                            \
		 servers' timeout */
#define DRAIN_MS      60000
#define STOP_MS	      5000
/* The SIGQUIT drain (quit_phase): the last load runs this long before
 * the SIGQUIT, so streams of every size are mid-transfer at it */
#define QUIT_LOAD_MS 5000
/* a draining server refuses new connects within this of its SIGQUIT
 * (every shard stops accepting within one message round, milliseconds) */
#define QUIT_REFUSE_MS 5000
/* a connection the kernel queued on a listener after the drain's last
 * accept is reset by its shutdown, so the client sees it at the latest
 * this long after the
 * port refused its first connect (one pass of the client's loop, which
 * may be starved for a second) */
#define QUIT_RESET_MS 2000
#define PROBE_MS      20 /* connects to a draining server until one is refused */
/*
 * serve's keep-alive clients held mid-request across the SIGQUIT
 * (quit_phase; plan_hold): HOLD_CONNS of them start as the last load does,
 * or later: at most half of --server-timeout before the SIGQUIT, so the
 * header timeout cannot end them first. Each gets HOLD_AT whole answers
 * (it is keep-alive), then sends all of its next request but the last 2
 * bytes, and those only once the port refuses connects, so once every
 * shard drains. That request comes whole in the drain: its answer must say
 * Connection: close and be the last (the answer check in http_head;
 * docs/http.md, "Graceful drain"). Without them that check was nearly
 * vacuous: a request is rarely sent to a draining serve on a connection it
 * has not closed. One whose tail was held HOLD_SETTLE_MS before the SIGQUIT
 * (serve has read its first bytes: the connection is not idle, the drain
 * must not close it) must get that answer; quit_summary fails the run
 * unless serve had some and every one got it (q_hold, q_hold_closed).
 * Started 1 s before the SIGQUIT, two answers first, none was held in
 * either TSan run (256 connections; each had 1 answer after 1.15 s); from
 * the last load's start, the shortest hold was 4.9 s.
 */
#define HOLD_CONNS     4
#define HOLD_AT	       1
#define HOLD_SETTLE_MS 100
#define FD_GRACE_MS   3000
#define NFILES	      16
#define MAX_ERR_PRINT 40

/* ---- small things ---- */

static uint64_t rng_state;

static uint64_t rng(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static uint64_t rnd(uint64_t n) /* 0 .. n-1; n > 0 */
{
	return rng() % n;
}

/* 1 .. max, log-uniform: as many 1-byte as megabyte-sized. */
static uint64_t rnd_size(uint64_t max)
{
	unsigned bits = 0;

	while ((1ull << bits) < max && bits < 63)
		bits++;
	uint64_t top = 1ull << rnd(bits + 1);
	uint64_t v = top / 2 + rnd(top / 2 + 1);

	if (v < 1)
		v = 1;
	return v > max ? max : v;
}

static uint8_t *pat;

/* CRC32C of pattern bytes [off, off + len), the offset taken modulo PAT_LEN. */
static uint32_t pat_crc(uint32_t crc, uint64_t off, uint64_t len)
{
	off %= PAT_LEN;
	while (len) {
		uint64_t n = PAT_LEN - off < len ? PAT_LEN - off : len;

		crc = rp_crc32c(crc, pat + off, n);
		len -= n;
		off = 0;
	}
	return crc;
}

/* ---- servers ---- */

enum kind { K_ECHO, K_RELAY, K_SERVE };

enum outcome {
	O_OK,		 /* whole and verified */
	O_RESET_CLIENT,	 /* reset by the client on purpose, prefix verified */
	O_IDLE_SERVER,	 /* silent: closed by the server's timeout */
	O_IDLE_CLIENT,	 /* silent: closed by the client after its bound */
	O_REFUSED,	 /* garbage refused (4xx or closed) */
	O_SERVER_CLOSED, /* --server-faults: closed early, prefix verified */
	O_DRAIN_CLOSED,	 /* serve's drain ended it at an answer's end, every answer whole */
	O_QUIT_RESET,	 /* reset in the instant of the SIGQUIT, nothing received */
	O_ERROR,
	O_COUNT
};
static const char *const outcome_name[O_COUNT] = {
	"ok",		"reset-by-client",  "idle-closed",
	"idle-client",	"refused",	    "server-closed",
	"drain-closed", "reset-at-connect", "error"};

enum err {
	E_CONNECT, /* connect failed */
	E_CORRUPT, /* CRC32C or length mismatch */
	E_SHORT,   /* EOF before every byte came back */
	E_RESET,   /* reset by the server */
	E_EXTRA,   /* bytes nobody sent */
	E_STALL,   /* no progress for PROGRESS_MS */
	E_HTTP,	   /* a response not the one asked for */
	E_GARBAGE, /* garbage accepted, relayed, or never refused */
	E_IO,	   /* another socket error */
	E_COUNT
};
static const char *const err_name[E_COUNT] = {"connect", "corrupt", "short",   "reset", "extra",
					      "stall",	 "http",    "garbage", "io"};

enum beh { B_STREAM, B_HALFCLOSE, B_RESET, B_STALL, B_SILENT, B_GARBAGE, B_COUNT };
static const char *const beh_name[B_COUNT] = {"stream", "halfclose", "reset",
					      "stall",	"silent",    "garbage"};

struct server {
	const char *name;
	enum kind kind;
	bool proxy_in; /* --accept-proxy */
	bool target;   /* clients connect to it (not the upstream echo) */
	bool enabled;
	const char *args[24];
	pid_t pid;
	int out, port;
	bool exited;   /* reaped while the soak ran */
	int status;    /* exit status: code, or 128 + signal; -1 not within STOP_MS */
	char log[256]; /* its stderr */
	unsigned shards;
	uint64_t outcome[O_COUNT], err[E_COUNT], verified, conns, active;
	long rss_start, fd_start; /* before any client, for reference */
	long rss0, rss1, fd0, fd1;
	long pipes0, pipes1; /* relay: pipes in its splice cache (2 fds each), -1 unknown */
	long proxy_refused;  /* relay: PROXY headers it refused or timed out, at the end */
	uint64_t refused_seen; /* outcome[O_REFUSED] when proxy_refused was read */
	/* the SIGQUIT drain (quit_phase) */
	bool quitting;	      /* SIGQUIT sent; reap() leaves it to quit_watch() */
	bool drain_timed_out; /* its log says the drain reached --drain-timeout */
	uint64_t quit_ms;     /* when the SIGQUIT went */
	uint64_t refused_ms;  /* the first connect refused after it; 0: none yet */
	uint64_t exit_ms;     /* its exit seen; 0: not (yet) */
	uint64_t next_probe_ms;
	uint64_t q_live;	       /* connections open at the SIGQUIT */
	uint64_t q_beh[B_COUNT];       /* their behaviours */
	uint64_t q_outcome[O_COUNT];   /* how those ended */
	uint64_t q_verified0, q_moved; /* verified at the SIGQUIT; bytes received after it */
	uint64_t q_close_hdr;	       /* serve: answers with Connection: close during the drain */
	uint64_t q_hold_started;       /* serve: HOLD_CONNS started in the last load */
	uint64_t q_hold;	       /* those held mid-request at the SIGQUIT */
	uint64_t q_hold_min_ms;	       /* the shortest of their holds then */
	uint64_t q_hold_closed;	       /* those whose held request got its Connection: close answer */
	uint64_t dials;	 /* connects not in conns that reached it: fresh clients, probes */
	long accepted;	 /* connections it accepted, by its exit counters; -1 unknown */
};

static struct server servers[] = {
	{.name = "echo", .kind = K_ECHO, .target = true},
	{.name = "upstream-echo", .kind = K_ECHO},
	{.name = "relay-copy", .kind = K_RELAY, .target = true},
	{.name = "relay-splice", .kind = K_RELAY, .target = true},
	{.name = "relay-auto", .kind = K_RELAY, .target = true},
	{.name = "relay-proxy", .kind = K_RELAY, .target = true, .proxy_in = true},
	{.name = "serve", .kind = K_SERVE, .target = true},
};
#define NSERVERS (sizeof(servers) / sizeof(servers[0]))

/* ---- options and run state ---- */

static const char *bin;
static unsigned opt_seconds = 60, opt_conns = 256, opt_warmup = ~0u, opt_timeout = 8;
static uint64_t opt_seed = 1, opt_max_size = 8u << 20;
static bool opt_faults, opt_rss_check = true, opt_keep;
static unsigned opt_shards; /* 0: 1 and 2 in turn */
static bool opt_quit = true; /* --stop quit (the drain) or term */
/*
 * Every server's --drain-timeout. A connection open at the SIGQUIT ends by
 * its client: the rest of a stream of at most --max-size after a stall of
 * at most 3 s, which the soak's own drains after each load allow DRAIN_MS
 * for (a stream no quicker is an error there too); or by the server: a
 * silent one at the idle or header timeout, --server-timeout after its
 * connect plus up to a quarter for the timer's tick. Not both on one
 * connection, so DRAIN_MS + --server-timeout holds either with room to
 * spare: a server that reaches it holds a connection the soak would call
 * stuck, and fails the run (its log says "drain timeout"). 68 s by
 * default, 90 s with the TSan soak's 30 s timeouts; docs/reliability.md
 * has the drain times measured.
 */
static unsigned quit_drain_s;
static unsigned weight[B_COUNT] = {50, 15, 10, 8, 7, 10};
static char workdir[64], rootdir[96];
static int failures; /* checks outside connections that failed */
static unsigned err_printed;

struct file {
	char name[32];
	uint64_t size, off; /* content = pat[off .. off + size) */
};
static struct file files[NFILES];

/* ---- connections ---- */

struct hreq {
	int file; /* -1: a missing path (404) */
	bool head;
	int status;
	uint64_t a, len; /* expected body: file bytes [a, a + len) */
	uint64_t queued_ms; /* when it went into the write buffer */
	bool check;	 /* check the body (200, 206); else skip it */
	char range[48];
};

struct conn {
	bool used;
	int fd;
	unsigned id;
	struct server *srv;
	enum beh beh;
	bool connected, wr_shut, stalled, stall_done, registered, pipelined, want_eof;
	bool at_quit;	  /* open when its server got the SIGQUIT */
	bool last_answer; /* serve said Connection: close on the answer being read */
	uint64_t quit_rx; /* bytes received before the SIGQUIT */
	/* serve, held mid-request across the SIGQUIT (HOLD_CONNS) */
	unsigned hold_at; /* 1 + the request whose tail is held back; 0: none */
	unsigned held;	  /* bytes at wbuf's end not to send yet */
	uint64_t held_ms; /* when the tail was held back */
	bool hold_check;  /* held HOLD_SETTLE_MS before the SIGQUIT: counted in q_hold */
	uint32_t events;
	uint64_t last_ms, last_rd_ms, stall_until, silent_until;
	/* a stream: pattern bytes from pat_off */
	uint64_t pat_off, total, sent, recvd, reset_at, stall_at;
	uint32_t crc_sent, crc_recv;
	/* bytes sent before the stream: a PROXY header or garbage */
	uint8_t pre[2304];
	unsigned pre_len, pre_off;
	/* HTTP */
	struct hreq rq[MAX_REQ];
	unsigned nreq, nqueued, ndone;
	char wbuf[MAX_REQ * 128];
	unsigned wlen, woff;
	char head[4096];
	unsigned hlen;
	bool in_body, got_4xx;
	uint64_t body_left, body_got;
	uint32_t body_crc;
};

static struct conn *conns;
static unsigned nactive, next_id;
/* The client's own loop: a pause between two epoll_waits longer than a
 * second (the soak itself starved of CPU) is counted, and the longest one
 * of the last 15 s is printed with each error, so an early end of a
 * starved client is told from a server's fault. */
#define LOOP_GAP_MS	   1000
#define LOOP_GAP_RECENT_MS 15000
static uint64_t loop_last_ms, loop_gap_max, loop_gaps, gap_recent_ms, gap_recent_at;
static uint64_t drain_ms[2];
/* Open connections by behaviour; mix_open (the load before the SIGQUIT)
 * keeps them in the mix's shares, not only the new ones: a silent one
 * lives for --server-timeout, a stream mostly for a fraction of a second,
 * so at the plain mix silent ones fill most of the table and the SIGQUIT
 * would find few transfers to drain. */
static unsigned open_beh[B_COUNT];
static bool mix_open;
static unsigned hold_want; /* HOLD_CONNS still to start (quit_phase) */
static int ep;
static uint8_t rbuf[256 << 10];

static void note_err(struct conn *c, enum err e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static bool is_http(const struct conn *c);

static void note_err(struct conn *c, enum err e, const char *fmt, ...)
{
	va_list ap;

	c->srv->err[e]++;
	if (err_printed++ >= MAX_ERR_PRINT)
		return;
	fprintf(stderr, "soak: %s conn %u (%s): %s: ", c->srv->name, c->id, beh_name[c->beh],
		err_name[e]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (is_http(c) && c->nreq) {
		fprintf(stderr, " [answer %u of %u:", c->ndone + 1, c->nreq);
		for (unsigned i = 0; i < c->nreq; i++)
			fprintf(stderr, " %s%s%s%s", i == c->ndone ? "*" : "",
				c->rq[i].head ? "HEAD " : "",
				c->rq[i].file >= 0 ? files[c->rq[i].file].name : "missing",
				c->rq[i].range);
		fprintf(stderr, "]");
	}
	fprintf(stderr, " [sent %llu recvd %llu total %llu; last read %llu ms ago]",
		(unsigned long long)c->sent, (unsigned long long)c->recvd,
		(unsigned long long)c->total,
		(unsigned long long)(c->last_rd_ms ? now_ms() - c->last_rd_ms : 0));
	if (gap_recent_at && now_ms() - gap_recent_at < LOOP_GAP_RECENT_MS)
		fprintf(stderr, " [the client's loop paused %llu ms, %llu ms ago]",
			(unsigned long long)gap_recent_ms,
			(unsigned long long)(now_ms() - gap_recent_at));
	fprintf(stderr, "\n");
}

static void finish(struct conn *c, enum outcome o, bool reset)
{
	if (reset) {
		struct linger l = {.l_onoff = 1, .l_linger = 0};

		(void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	}
	close(c->fd); /* also takes it out of the epoll set */
	c->srv->outcome[o]++;
	if (c->at_quit) {
		c->srv->q_outcome[o]++;
		if (o != O_ERROR)
			c->srv->q_moved += c->recvd - c->quit_rx;
	}
	c->srv->active--;
	c->used = false;
	nactive--;
	open_beh[c->beh]--;
}

static void fail(struct conn *c, enum err e, const char *why, int errnum)
{
	note_err(c, e, "%s%s%s", why, errnum ? ": " : "", errnum ? strerror(errnum) : "");
	finish(c, O_ERROR, false);
}

static bool is_http(const struct conn *c)
{
	return c->srv->kind == K_SERVE;
}

static bool has_output(const struct conn *c)
{
	if (c->pre_off < c->pre_len)
		return true;
	if (is_http(c))
		return c->woff < c->wlen - c->held;
	return c->sent < c->total;
}

static void set_events(struct conn *c)
{
	uint32_t ev = 0;

	if (!c->connected)
		ev = EPOLLOUT;
	else {
		if (!c->stalled)
			ev |= EPOLLIN;
		if (has_output(c) && !c->wr_shut)
			ev |= EPOLLOUT;
	}
	if (ev == c->events && c->registered)
		return;
	struct epoll_event e = {.events = ev, .data.u32 = (uint32_t)(c - conns)};

	if (!ev) { /* a stalled connection with nothing to write: nothing to wait for */
		if (c->registered)
			epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
		c->registered = false;
	} else if (c->registered) {
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
	} else {
		epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
		c->registered = true;
	}
	c->events = ev;
}

/* ---- plans ---- */

static enum beh pick_beh(const struct server *s)
{
	unsigned sum = 0, r;

	for (int b = 0; b < B_COUNT; b++)
		sum += weight[b];
	r = (unsigned)rnd(sum ? sum : 1);
	for (int b = 0; b < B_COUNT; b++) {
		if (r < weight[b]) {
			if (b == B_GARBAGE && s->kind != K_SERVE && !s->proxy_in)
				return B_STREAM;
			return (enum beh)b;
		}
		r -= weight[b];
	}
	return B_STREAM;
}

static void proxy_header(struct conn *c)
{
	if (rnd(2)) {
		c->pre_len = (unsigned)snprintf((char *)c->pre, sizeof(c->pre),
						"PROXY TCP4 192.0.2.%u 198.51.100.%u %u %u\r\n",
						(unsigned)rnd(254) + 1, (unsigned)rnd(254) + 1,
						(unsigned)rnd(65535) + 1, (unsigned)rnd(65535) + 1);
		return;
	}
	static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
					0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
	uint8_t *p = c->pre;

	memcpy(p, sig, 12);
	p[12] = 0x21; /* version 2, PROXY */
	p[13] = 0x11; /* TCP over IPv4 */
	p[14] = 0;
	p[15] = 12;
	for (int i = 16; i < 28; i++)
		p[i] = (uint8_t)rng();
	c->pre_len = 28;
}

static void garbage(struct conn *c, bool http)
{
	unsigned n = 1 + (unsigned)rnd(http ? 2048 : 256);

	for (unsigned i = 0; i < n; i++)
		c->pre[i] = (uint8_t)rng();
	/* Never the start of a valid PROXY header ('P', v2's CR): refused at once. */
	if (c->pre[0] == 'P' || c->pre[0] == '\r' || (http && isalpha(c->pre[0])))
		c->pre[0] = 0x01;
	if (http) {
		memcpy(c->pre + n, "\r\n\r\n", 4);
		n += 4;
	}
	c->pre_len = n;
}

static const struct file *pick_file(void)
{
	/* the largest one (index 0) only now and then: bytes stay bounded */
	if (rnd(24) == 0)
		return &files[0];
	return &files[1 + rnd(NFILES - 1)];
}

static void plan_req(struct hreq *r, const struct file *f, bool big)
{
	unsigned k = (unsigned)rnd(100);

	memset(r, 0, sizeof(*r));
	r->file = (int)(f - files);
	r->status = 200;
	r->a = 0;
	r->len = f->size;
	r->check = true;
	if (big)
		return;
	if (k < 5) {
		r->file = -1;
		r->status = 404;
		r->check = false;
	} else if (k < 15) {
		r->head = true;
	} else if (k < 40 && f->size > 0) {
		unsigned form = (unsigned)rnd(10);
		uint64_t a = rnd(f->size), b;

		r->status = 206;
		if (form < 4) {
			b = a + rnd(f->size - a);
			snprintf(r->range, sizeof(r->range), "bytes=%llu-%llu",
				 (unsigned long long)a, (unsigned long long)b);
			r->a = a;
			r->len = b - a + 1;
		} else if (form < 7) {
			snprintf(r->range, sizeof(r->range), "bytes=%llu-", (unsigned long long)a);
			r->a = a;
			r->len = f->size - a;
		} else if (form < 9) {
			uint64_t n = 1 + rnd(f->size);

			snprintf(r->range, sizeof(r->range), "bytes=-%llu", (unsigned long long)n);
			r->a = f->size - n;
			r->len = n;
		} else {
			snprintf(r->range, sizeof(r->range), "bytes=%llu-",
				 (unsigned long long)f->size);
			r->status = 416;
			r->check = false;
		}
	}
}

static void queue_req(struct conn *c)
{
	struct hreq *r = &c->rq[c->nqueued++];
	char path[48];

	r->queued_ms = now_ms();

	if (c->woff == c->wlen)
		c->woff = c->wlen = 0;
	if (r->file < 0)
		snprintf(path, sizeof(path), "/missing-%u.bin", (unsigned)rnd(1000));
	else
		snprintf(path, sizeof(path), "/%s", files[r->file].name);
	c->wlen += (unsigned)snprintf(c->wbuf + c->wlen, sizeof(c->wbuf) - c->wlen,
				      "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%s\r\n",
				      r->head ? "HEAD" : "GET", path, r->range[0] ? "Range: " : "",
				      r->range, r->range[0] ? "\r\n" : "");
	if (c->hold_at && c->nqueued == c->hold_at) { /* the head's last CRLF waits */
		c->held = 2;
		c->held_ms = now_ms();
	}
}

static void plan_http(struct conn *c)
{
	bool big = c->beh == B_RESET || c->beh == B_STALL;
	uint64_t body = 0;

	c->nreq = big ? 1 + (unsigned)rnd(3) : 1 + (unsigned)rnd(MAX_REQ);
	for (unsigned i = 0; i < c->nreq; i++) {
		/* reset and stall start with a large file, so the output backs up */
		plan_req(&c->rq[i], big && i == 0 ? &files[1] : pick_file(), big && i == 0);
		body += c->rq[i].head ? 0 : c->rq[i].len;
	}
	c->pipelined = c->beh == B_HALFCLOSE || rnd(2);
	if (c->pipelined)
		while (c->nqueued < c->nreq)
			queue_req(c);
	else
		queue_req(c);
	c->total = body;
	if (c->beh == B_RESET)
		c->reset_at = 1 + rnd(body + 1);
	if (c->beh == B_STALL)
		c->stall_at = rnd(body / 2 + 1);
}

/* A serve client held mid-request across the SIGQUIT (HOLD_CONNS): plain
 * GETs of the smallest file back to back, the tail of request HOLD_AT held
 * (queue_req) and one more planned behind it, never sent: the held one's
 * answer must be the last, then EOF. */
static void plan_hold(struct conn *c)
{
	const struct file *f = &files[1];

	for (unsigned i = 1; i < NFILES; i++)
		if (files[i].size < f->size)
			f = &files[i];
	c->nreq = HOLD_AT + 2;
	for (unsigned i = 0; i < c->nreq; i++) {
		plan_req(&c->rq[i], f, true); /* whole, 200 */
		c->total += c->rq[i].len;
	}
	c->pipelined = false;
	c->hold_at = HOLD_AT + 1;
	queue_req(c);
}

static void plan_stream(struct conn *c)
{
	c->pat_off = rnd(PAT_LEN);
	c->total = rnd_size(opt_max_size);
	if (c->beh == B_STALL && c->total < (1u << 20)) /* enough to back the output up */
		c->total =
			(1u << 20) + rnd(opt_max_size > (1u << 20) ? opt_max_size - (1u << 20) : 1);
	if (c->beh == B_RESET) {
		if (c->total < 2)
			c->total = 2;
		c->reset_at = 1 + rnd(c->total - 1);
	}
	if (c->beh == B_STALL)
		c->stall_at = rnd(c->total / 2 + 1);
	if (c->srv->proxy_in)
		proxy_header(c);
}

static struct server *pick_server(void)
{
	unsigned n = 0, k;

	for (unsigned i = 0; i < NSERVERS; i++)
		n += servers[i].target && servers[i].enabled && !servers[i].exited;
	if (!n)
		return NULL;
	k = (unsigned)rnd(n);
	for (unsigned i = 0; i < NSERVERS; i++)
		if (servers[i].target && servers[i].enabled && !servers[i].exited && k-- == 0)
			return &servers[i];
	return NULL;
}

/* serve, where the clients use it: the HOLD_CONNS go there */
static struct server *hold_server(void)
{
	for (unsigned i = 0; i < NSERVERS; i++)
		if (servers[i].kind == K_SERVE && servers[i].target && servers[i].enabled &&
		    !servers[i].exited)
			return &servers[i];
	return NULL;
}

static void start_conn(void)
{
	struct server *s = hold_want ? hold_server() : NULL;
	bool hold = s != NULL;
	struct conn *c = NULL;
	struct sockaddr_in sa = {.sin_family = AF_INET};

	if (!s)
		s = pick_server();
	if (!s)
		return;
	for (unsigned i = 0; i < opt_conns; i++)
		if (!conns[i].used) {
			c = &conns[i];
			break;
		}
	if (!c)
		return;
	memset(c, 0, offsetof(struct conn, rq));
	c->nreq = c->nqueued = c->ndone = 0;
	c->wlen = c->woff = c->hlen = 0;
	c->in_body = c->got_4xx = false;
	c->body_left = c->body_got = 0;
	c->body_crc = 0;
	c->used = true;
	c->id = next_id++;
	c->srv = s;
	c->beh = hold ? B_STREAM : pick_beh(s);
	if (hold) {
		hold_want--;
		s->q_hold_started++;
	}
	if (mix_open && !hold) {
		unsigned sum = 0;

		for (int b = 0; b < B_COUNT; b++)
			sum += weight[b];
		/* open ones in the mix's shares: a behaviour over its share is drawn again */
		for (unsigned k = 0; k < 8 && open_beh[c->beh] * sum >= weight[c->beh] * opt_conns;
		     k++)
			c->beh = pick_beh(s);
		if (open_beh[c->beh] * sum >= weight[c->beh] * opt_conns)
			c->beh = B_STREAM;
	}
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	nactive++;
	s->active++;
	s->conns++;
	if (c->fd < 0) {
		c->used = false;
		nactive--;
		s->active--;
		s->err[E_CONNECT]++;
		s->outcome[O_ERROR]++;
		return;
	}
	open_beh[c->beh]++;
	if (c->beh == B_GARBAGE)
		garbage(c, is_http(c));
	else if (hold)
		plan_hold(c);
	else if (c->beh != B_SILENT) {
		if (is_http(c))
			plan_http(c);
		else
			plan_stream(c);
	}
	c->last_ms = now_ms();
	c->silent_until = c->last_ms + opt_timeout * 1000ull + SILENT_EXTRA_MS;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)s->port);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) && errno != EINPROGRESS) {
		fail(c, E_CONNECT, "connect", errno);
		return;
	}
	set_events(c);
}

/* ---- verification ---- */

/* The stream's received bytes so far are the sent ones' prefix? */
static bool prefix_ok(struct conn *c)
{
	if (is_http(c)) {
		const struct hreq *r = &c->rq[c->ndone];

		if (!c->in_body || !r->check || c->ndone >= c->nreq)
			return true;
		return c->body_crc == pat_crc(0, files[r->file].off + r->a, c->body_got);
	}
	return c->crc_recv == pat_crc(0, c->pat_off, c->recvd);
}

/*
 * A reset (@errnum) that the listener's shutdown at the drain made: a
 * connection open at the SIGQUIT that had received nothing, reset no later
 * than QUIT_RESET_MS after the port was first refused. The kernel completes
 * a handshake on the listener's queue before the server accepts it; the
 * drain accepts what is queued, then shuts the listener, which resets what
 * came in between (docs/http.md, "Graceful drain"); a connection the server
 * had accepted is never reset by it.
 */
static bool quit_reset(const struct conn *c, int errnum)
{
	const struct server *s = c->srv;
	uint64_t bound = s->refused_ms ? s->refused_ms + QUIT_RESET_MS
				       : s->quit_ms + QUIT_REFUSE_MS + QUIT_RESET_MS;

	/* with --server-faults an injected reset strikes accepted connections
	 * too, before any byte: those are server-closed, as under load */
	if (opt_faults)
		return false;

	return c->at_quit && !c->recvd && now_ms() <= bound &&
	       (errnum == ECONNRESET || errnum == EPIPE || errnum == ECONNREFUSED);
}

/* The server closed (EOF, @errnum 0) or reset the connection. */
static void peer_closed(struct conn *c, int errnum)
{
	bool ok = prefix_ok(c);

	/* a silent client first: its server may end it with a reset (the
	 * relay resets an idle connection, docs/net.md) also right after the
	 * SIGQUIT, and it was accepted; counted as the listener's reset, it
	 * failed a correct relay as RESET-ACCEPTED (at --server-timeout 5) */
	if (c->beh == B_SILENT) {
		finish(c, O_IDLE_SERVER, false);
		return;
	}
	if (quit_reset(c, errnum)) {
		finish(c, O_QUIT_RESET, false);
		return;
	}
	if (c->beh == B_GARBAGE) {
		finish(c, O_REFUSED, false);
		return;
	}
	if (!ok) {
		fail(c, E_CORRUPT, "received prefix differs", 0);
		return;
	}
	/* serve's drain: the last answer (Connection: close, or one whose
	 * head went out before the drain) then EOF; requests left unanswered
	 * are the client's to retry, but an answer cut short is an error */
	if (!errnum && c->at_quit && is_http(c) && !c->in_body && !c->hlen &&
	    c->ndone < c->nreq) {
		finish(c, O_DRAIN_CLOSED, false);
		return;
	}
	if (!errnum && c->want_eof) { /* the EOF a half-close asked for */
		bool whole = is_http(c) ? c->ndone == c->nreq : c->recvd == c->total;

		if (!whole) {
			fail(c, E_SHORT, "EOF before the end", 0);
			return;
		}
		if (!is_http(c) && c->crc_recv != c->crc_sent) {
			fail(c, E_CORRUPT, "CRC32C differs", 0);
			return;
		}
		if (!is_http(c))
			c->srv->verified += c->recvd;
		finish(c, O_OK, false);
		return;
	}
	if (opt_faults) {
		c->srv->verified += is_http(c) ? c->body_got : c->recvd;
		finish(c, O_SERVER_CLOSED, false);
		return;
	}
	fail(c, errnum ? E_RESET : E_SHORT, errnum ? "reset by the server" : "EOF before the end",
	     errnum);
}

static void client_reset(struct conn *c)
{
	if (!prefix_ok(c)) {
		fail(c, E_CORRUPT, "received prefix differs", 0);
		return;
	}
	c->srv->verified += is_http(c) ? c->body_got : c->recvd;
	finish(c, O_RESET_CLIENT, true);
}

/* The stream came back whole: done, or wait for the EOF a half-close asks for. */
static void stream_done(struct conn *c)
{
	if (c->beh == B_HALFCLOSE) {
		c->want_eof = true;
		return;
	}
	if (c->beh == B_RESET) {
		client_reset(c);
		return;
	}
	if (c->crc_recv != c->crc_sent) {
		fail(c, E_CORRUPT, "CRC32C differs", 0);
		return;
	}
	c->srv->verified += c->recvd;
	finish(c, O_OK, false);
}

/* ---- HTTP responses ---- */

static const char *hfield(const char *lower_head, const char *name)
{
	const char *p = strstr(lower_head, name);

	return p ? p + strlen(name) : NULL;
}

/* A whole response head is in c->head: check it against the request. 0 or -1 (failed). */
static int http_head(struct conn *c)
{
	char low[sizeof(c->head)];
	const char *v;
	int status;
	long long cl = -1;

	for (unsigned i = 0; i <= c->hlen; i++)
		low[i] = (char)tolower((unsigned char)c->head[i]);
	if (strncmp(c->head, "HTTP/1.1 ", 9) || !isdigit((unsigned char)c->head[9])) {
		fail(c, E_HTTP, "not an HTTP/1.1 status line", 0);
		return -1;
	}
	status = atoi(c->head + 9);
	v = hfield(low, "\r\ncontent-length:");
	if (v)
		cl = strtoll(v, NULL, 10);
	if (c->beh == B_GARBAGE) {
		if (opt_faults && status >= 500) {
			finish(c, O_SERVER_CLOSED, false);
			return -1;
		}
		/* 4xx, or 501/505 when the random bytes happen to be a method token
		 * or a version the parser reads as such */
		if ((status < 400 || status > 499) && status != 501 && status != 505) {
			note_err(c, E_GARBAGE, "garbage answered %d", status);
			finish(c, O_ERROR, false);
			return -1;
		}
		c->got_4xx = true;
		c->in_body = true;
		c->body_left = cl > 0 ? (uint64_t)cl : 0;
		return 0;
	}
	if (c->ndone >= c->nreq) {
		fail(c, E_HTTP, "a response nobody asked for", 0);
		return -1;
	}
	const struct hreq *r = &c->rq[c->ndone];

	if (opt_faults && status >= 500) {
		finish(c, O_SERVER_CLOSED, false);
		return -1;
	}
	if (status != r->status) {
		note_err(c, E_HTTP, "status %d, asked for %d (%s%s)", status, r->status,
			 r->file >= 0 ? files[r->file].name : "missing", r->range);
		finish(c, O_ERROR, false);
		return -1;
	}
	if (cl < 0) {
		fail(c, E_HTTP, "no Content-Length", 0);
		return -1;
	}
	if (r->check && (uint64_t)cl != r->len) {
		note_err(c, E_HTTP, "Content-Length %lld, want %llu", cl,
			 (unsigned long long)r->len);
		finish(c, O_ERROR, false);
		return -1;
	}
	if (status == 206) {
		char want[96];

		snprintf(want, sizeof(want), "\r\ncontent-range: bytes %llu-%llu/%llu\r\n",
			 (unsigned long long)r->a, (unsigned long long)(r->a + r->len - 1),
			 (unsigned long long)files[r->file].size);
		if (!strstr(low, want)) {
			fail(c, E_HTTP, "wrong Content-Range", 0);
			return -1;
		}
	}
	c->last_answer =
		(v = hfield(low, "\r\nconnection:")) && !strncmp(v + strspn(v, " "), "close", 5);
	if (c->last_answer && c->ndone + 1 < c->nreq && !c->at_quit) {
		fail(c, E_HTTP, "Connection: close with requests left", 0);
		return -1;
	}
	/* A request sent once the port refused connects, so once every shard
	 * drains: its answer is the last and says so (docs/http.md) */
	if (c->at_quit && !c->last_answer && c->srv->refused_ms &&
	    r->queued_ms >= c->srv->refused_ms) {
		fail(c, E_HTTP, "an answer during the drain without Connection: close", 0);
		return -1;
	}
	if (c->at_quit && c->last_answer) {
		c->srv->q_close_hdr++;
		if (c->hold_check && c->ndone + 1 == c->hold_at)
			c->srv->q_hold_closed++;
	}
	c->in_body = true;
	c->body_left = r->head ? 0 : (uint64_t)cl;
	c->body_got = 0;
	c->body_crc = 0;
	return 0;
}

/* One response is complete. 0 to go on, -1 when the connection ended. */
static int http_done(struct conn *c)
{
	const struct hreq *r = &c->rq[c->ndone];

	c->in_body = false;
	c->hlen = 0;
	if (c->beh == B_GARBAGE)
		return 0; /* wait for the close */
	if (r->check && !r->head) {
		if (c->body_crc != pat_crc(0, files[r->file].off + r->a, r->len)) {
			fail(c, E_CORRUPT, "body CRC32C differs", 0);
			return -1;
		}
		c->srv->verified += r->len;
	}
	c->body_got = 0;
	c->body_crc = 0;
	c->ndone++;
	if (c->last_answer && c->ndone < c->nreq) { /* the drain's last answer: EOF next */
		c->want_eof = true;
		return 0;
	}
	if (c->ndone < c->nreq) {
		if (!c->pipelined)
			queue_req(c);
		return 0;
	}
	if (c->beh == B_HALFCLOSE) {
		c->want_eof = true;
		return 0;
	}
	if (c->beh == B_RESET) {
		client_reset(c);
		return -1;
	}
	finish(c, O_OK, false);
	return -1;
}

static int http_input(struct conn *c, const uint8_t *p, size_t n)
{
	while (n) {
		if (!c->in_body) {
			if (c->want_eof || (c->beh == B_GARBAGE && c->got_4xx)) {
				fail(c, E_EXTRA, "bytes after the last response", 0);
				return -1;
			}
			while (n) {
				if (c->hlen >= sizeof(c->head) - 1) {
					fail(c, E_HTTP, "response head too long", 0);
					return -1;
				}
				c->head[c->hlen++] = (char)*p++;
				n--;
				if (c->hlen >= 4 && !memcmp(c->head + c->hlen - 4, "\r\n\r\n", 4))
					break;
			}
			if (c->hlen < 4 || memcmp(c->head + c->hlen - 4, "\r\n\r\n", 4))
				return 0;
			c->head[c->hlen] = 0;
			if (http_head(c))
				return -1;
		}
		size_t take = n < c->body_left ? n : (size_t)c->body_left;

		if (take && c->beh != B_GARBAGE) {
			c->body_crc = rp_crc32c(c->body_crc, p, take);
			c->body_got += take;
		}
		p += take;
		n -= take;
		c->body_left -= take;
		if (!c->body_left && http_done(c))
			return -1;
	}
	return 0;
}

/* ---- I/O ---- */

static void on_read(struct conn *c)
{
	for (int round = 0; round < 4 && c->used; round++) {
		ssize_t r = recv(c->fd, rbuf, sizeof(rbuf), 0);

		if (r == 0) {
			peer_closed(c, 0);
			return;
		}
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			if (errno == ECONNRESET || errno == EPIPE)
				peer_closed(c, errno);
			else
				fail(c, E_IO, "recv", errno);
			return;
		}
		c->last_ms = c->last_rd_ms = now_ms();
		if (c->beh == B_SILENT) {
			fail(c, E_EXTRA, "bytes to a silent client", 0);
			return;
		}
		if (c->beh == B_GARBAGE && !is_http(c)) {
			note_err(c, E_GARBAGE, "%zd bytes came back: garbage was relayed", r);
			finish(c, O_ERROR, false);
			return;
		}
		c->recvd += (uint64_t)r;
		if (is_http(c)) {
			if (http_input(c, rbuf, (size_t)r))
				return;
		} else {
			if (c->recvd > c->sent) {
				fail(c, E_EXTRA, "more bytes back than sent", 0);
				return;
			}
			if (c->want_eof) {
				fail(c, E_EXTRA, "bytes after the whole stream", 0);
				return;
			}
			c->crc_recv = rp_crc32c(c->crc_recv, rbuf, (size_t)r);
			if (c->recvd == c->total) {
				stream_done(c);
				if (!c->used)
					return;
			}
		}
		if (c->beh == B_RESET && c->reset_at && c->recvd >= c->reset_at && is_http(c)) {
			client_reset(c);
			return;
		}
		if (c->beh == B_STALL && !c->stall_done && !c->stalled && c->recvd >= c->stall_at) {
			c->stalled = true;
			c->stall_until = c->last_ms + 1000 + rnd(2001);
			return;
		}
	}
}

static void on_write(struct conn *c)
{
	for (int round = 0; round < 8 && has_output(c); round++) {
		const void *p;
		size_t n;
		bool pre = c->pre_off < c->pre_len;

		if (pre) {
			p = c->pre + c->pre_off;
			n = c->pre_len - c->pre_off;
		} else if (is_http(c)) {
			p = c->wbuf + c->woff;
			n = c->wlen - c->held - c->woff;
		} else {
			uint64_t left = c->total - c->sent;
			unsigned want =
				rnd(3) ? 1 + (unsigned)rnd(MAX_WRITE) : 1 + (unsigned)rnd(512);

			if (c->beh == B_RESET && c->reset_at - c->sent < want)
				want = (unsigned)(c->reset_at - c->sent);
			n = left < want ? (size_t)left : want;
			p = pat + (c->pat_off + c->sent) % PAT_LEN;
		}
		ssize_t r = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			if (errno == ECONNRESET || errno == EPIPE)
				peer_closed(c, errno);
			else
				fail(c, E_IO, "send", errno);
			return;
		}
		c->last_ms = now_ms();
		if (pre) {
			c->pre_off += (unsigned)r;
		} else if (is_http(c)) {
			c->woff += (unsigned)r;
		} else {
			c->crc_sent = rp_crc32c(c->crc_sent, p, (size_t)r);
			c->sent += (uint64_t)r;
			if (c->beh == B_RESET && c->sent >= c->reset_at) {
				client_reset(c);
				return;
			}
		}
	}
	if (!has_output(c) && !c->wr_shut && c->beh == B_HALFCLOSE &&
	    (!is_http(c) || c->nqueued == c->nreq)) {
		shutdown(c->fd, SHUT_WR);
		c->wr_shut = true;
	}
}

static void on_event(struct conn *c, uint32_t ev)
{
	if (!c->connected) {
		int err = 0;
		socklen_t len = sizeof(err);

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err) {
			if (quit_reset(c, err))
				finish(c, O_QUIT_RESET, false);
			else if (opt_faults &&
			    (err == ECONNRESET || err == ECONNREFUSED || err == EPIPE))
				finish(c, O_SERVER_CLOSED, false);
			else
				fail(c, E_CONNECT, "connect", err);
			return;
		}
		c->connected = true;
		c->last_ms = now_ms();
		if (c->beh == B_HALFCLOSE && !has_output(c)) {
			shutdown(c->fd, SHUT_WR);
			c->wr_shut = true;
		}
	}
	if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->stalled)
		on_read(c);
	if (c->used && (ev & (EPOLLOUT | EPOLLERR)))
		on_write(c);
	if (c->used && !c->stalled && (ev & (EPOLLHUP | EPOLLERR)) && !(ev & EPOLLIN))
		on_read(c);
	if (c->used)
		set_events(c);
}

/* Timers: stalls that end, silent clients that give up, connections that stopped moving. */
static void sweep(bool draining)
{
	uint64_t t = now_ms();

	for (unsigned i = 0; i < opt_conns; i++) {
		struct conn *c = &conns[i];

		if (!c->used)
			continue;
		if (c->stalled && (t >= c->stall_until || draining)) {
			c->stalled = false;
			c->stall_done = true;
			c->last_ms = t;
			set_events(c);
			continue;
		}
		if (c->beh == B_SILENT && (t >= c->silent_until || (draining && c->connected))) {
			finish(c, O_IDLE_CLIENT, false);
			continue;
		}
		if (c->beh == B_GARBAGE && t >= c->silent_until) {
			fail(c, E_GARBAGE, "garbage not refused within the bound", 0);
			continue;
		}
		/* silent and garbage clients have their own bound above:
		 * --server-timeout plus SILENT_EXTRA_MS, which may be longer
		 * than PROGRESS_MS (under TSan the timeout is 30 s) */
		if (c->beh == B_SILENT || c->beh == B_GARBAGE)
			continue;
		if (!c->stalled && t - c->last_ms > PROGRESS_MS)
			fail(c, E_STALL, "no progress", 0);
	}
}

/* ---- children ---- */

/*
 * serve keeps up to 4 empty pipes per shard for its file splices
 * (net/filesend.c PIPE_STASH), more or fewer after a run depending on
 * which sends ended in an error (an error's pipe is closed, not kept):
 * bounded, a cache, not a leak. Once the load is drained every pipe it
 * holds is one of those. Returns the pipes (2 fds each), -1 unknown.
 */
static long serve_pipes(pid_t pid)
{
	long n = fd_count_kind(pid, "pipe:");

	return n < 0 ? -1 : n / 2;
}

/*
 * A relay keeps idle pipes for later splices (net/relay_splice.c, at most
 * 256 per shard, those idle a whole second trimmed): descriptors that are
 * a cache, not a leak, and whose number follows the concurrent splices. SIGUSR1 makes each shard
 * print its counters, "pipes N" among them; the pipes live when no
 * connection is open are all cached. -1 when the lines do not come (1 s).
 * Also takes the PROXY headers it refused or timed out (proxy_refused).
 */
static long relay_pipes(struct server *s)
{
	char buf[16384];
	size_t len = 0;
	unsigned lines = 0;
	long pipes = 0, refused = 0;
	unsigned long pt, pr;
	uint64_t end = now_ms() + 1000;

	if (kill(s->pid, SIGUSR1))
		return -1;
	while (lines < s->shards && now_ms() < end && len < sizeof(buf) - 1) {
		struct pollfd p = {.fd = s->out, .events = POLLIN};
		ssize_t r;
		char *nl, *at;

		if (poll(&p, 1, 20) <= 0)
			continue;
		r = read(s->out, buf + len, sizeof(buf) - 1 - len);
		if (r <= 0)
			return -1;
		len += (size_t)r;
		buf[len] = 0;
		while ((nl = strchr(buf, '\n'))) {
			*nl = 0;
			if (!strncmp(buf, "shard ", 6) && (at = strstr(buf, " pipes "))) {
				pipes += strtol(at + 7, NULL, 10);
				lines++;
				if ((at = strstr(buf, " proxy accepted ")) &&
				    sscanf(at, " proxy accepted %*u timeouts %lu refused %lu", &pt,
					   &pr) == 2)
					refused += (long)(pt + pr);
			}
			len -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, len + 1);
		}
	}
	if (lines != s->shards)
		return -1;
	s->proxy_refused = refused;
	s->refused_seen = s->outcome[O_REFUSED]; /* the quit phase's are not in its count */
	return pipes;
}

/* Start `ringplane ARGS...` with stderr to its log (server_listening waits for it). */
static int server_spawn(struct server *s)
{
	const char *argv[32];
	int pfd[2], n = 0, lfd;

	argv[n++] = bin;
	for (const char *const *a = s->args; *a && n < 31; a++)
		argv[n++] = *a;
	argv[n] = NULL;
	snprintf(s->log, sizeof(s->log), "%s/%s.log", workdir, s->name);
	lfd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (lfd < 0 || pipe2(pfd, O_CLOEXEC)) {
		perror("soak: log or pipe");
		return -1;
	}
	s->pid = fork();
	if (s->pid == 0) {
		dup2(pfd[1], 1);
		dup2(lfd, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(lfd);
	close(pfd[1]);
	s->out = pfd[0];
	return s->pid < 0 ? -1 : 0;
}

/* Wait for its "listening on H:P" (30 s: a pool is prefaulted at start, slow under ASan). */
static int server_listening(struct server *s)
{
	s->port = listening_port(s->out, 30000);
	if (s->port >= 0)
		return 0;
	fprintf(stderr, "soak: %s did not start (see %s)\n", s->name, s->log);
	return -1;
}

/* What is left in its stdout (its exit counters) into its log; closes it. */
static void server_collect(struct server *s)
{
	char buf[4096];
	int lfd = open(s->log, O_WRONLY | O_APPEND | O_CLOEXEC);
	ssize_t r;

	/* it has exited: the pipe holds the rest and then EOF (bounded by its size) */
	for (unsigned i = 0; i < 64; i++) {
		struct pollfd p = {.fd = s->out, .events = POLLIN};

		if (poll(&p, 1, 0) <= 0 || (r = read(s->out, buf, sizeof(buf))) <= 0)
			break;
		if (lfd >= 0)
			(void)!write(lfd, buf, (size_t)r);
	}
	if (lfd >= 0)
		close(lfd);
	close(s->out);
	s->pid = 0;
}

/* @sig (SIGTERM, or SIGQUIT to an idle server); the exit status within
 * STOP_MS, else SIGKILL and -1. */
static void server_stop(struct server *s, int sig)
{
	uint64_t end = now_ms() + STOP_MS;
	char buf[4096];
	int st = 0, lfd;
	struct pollfd p = {.fd = s->out, .events = POLLIN};

	if (s->pid <= 0)
		return;
	lfd = open(s->log, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (!s->exited) {
		if (sig == SIGQUIT) {
			s->quitting = true;
			s->quit_ms = now_ms();
		}
		kill(s->pid, sig);
		for (;;) {
			/* its exit counters go into its log; a closed stdout: poll just waits */
			if (poll(&p, 1, 20) > 0) {
				ssize_t r = read(s->out, buf, sizeof(buf));

				if (r > 0 && lfd >= 0)
					(void)!write(lfd, buf, (size_t)r);
				else if (r <= 0)
					p.fd = -1;
			}
			if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
				s->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
				s->exit_ms = now_ms();
				break;
			}
			if (now_ms() > end) {
				kill(s->pid, SIGKILL);
				waitpid(s->pid, &st, 0);
				s->status = -1;
				break;
			}
		}
	}
	if (lfd >= 0)
		close(lfd);
	close(s->out);
	s->pid = 0;
}

/* A server that died during the soak is a failure; it gets no more clients. */
static void reap(void)
{
	for (unsigned i = 0; i < NSERVERS; i++) {
		struct server *s = &servers[i];
		int st;

		if (s->pid > 0 && !s->exited && !s->quitting &&
		    waitpid(s->pid, &st, WNOHANG) == s->pid) {
			s->exited = true;
			s->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			fprintf(stderr, "soak: %s exited during the soak (status %d)\n", s->name,
				s->status);
		}
	}
}

/* Sanitizer reports and crashes in a server's stderr; prints and counts them. */
static bool log_clean(const struct server *s)
{
	static const char *const bad[] = {"AddressSanitizer", "LeakSanitizer", "ThreadSanitizer",
					  "runtime error:",   "Segmentation",  "Assertion"};
	char line[1024];
	bool clean = true;
	unsigned shown = 0;
	FILE *f = fopen(s->log, "r");

	if (!f)
		return true;
	while (fgets(line, sizeof(line), f)) {
		for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
			if (strstr(line, bad[k]))
				clean = false;
		if (!clean && shown++ < 40)
			fprintf(stderr, "  %s| %s", s->name, line);
	}
	fclose(f);
	return clean;
}

/* ---- the served root ---- */

static int write_root(void)
{
	static const uint64_t fixed[] = {0, 1, 100, 4095, 4096, 65537, 1u << 20};
	int dfd;

	snprintf(rootdir, sizeof(rootdir), "%s/root", workdir);
	if (mkdir(rootdir, 0755) || chmod(rootdir, 0755) || chmod(workdir, 0755))
		return -1;
	dfd = open(rootdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	for (unsigned i = 0; i < NFILES; i++) {
		struct file *f = &files[i];
		uint64_t done = 0;
		int fd;

		if (i == 0)
			f->size = opt_max_size;
		else if (i == 1)
			f->size = opt_max_size < (4u << 20) ? opt_max_size : (4u << 20);
		else if (i - 2 < sizeof(fixed) / sizeof(fixed[0]))
			f->size = fixed[i - 2] < opt_max_size ? fixed[i - 2] : opt_max_size;
		else
			f->size = rnd_size(opt_max_size / 4 + 1);
		f->off = rnd(PAT_LEN - f->size + 1);
		snprintf(f->name, sizeof(f->name), "f%u-%llu.bin", i, (unsigned long long)f->size);
		fd = openat(dfd, f->name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			goto fail;
		while (done < f->size) {
			ssize_t r = write(fd, pat + f->off + done, f->size - done);

			if (r <= 0) {
				close(fd);
				goto fail;
			}
			done += (uint64_t)r;
		}
		fchmod(fd, 0644);
		close(fd);
	}
	close(dfd);
	return 0;
fail:
	perror("soak: writing the root");
	close(dfd);
	return -1;
}

static void remove_workdir(void)
{
	char path[1024];

	if (opt_keep || !workdir[0])
		return;
	for (unsigned i = 0; i < NFILES; i++) {
		snprintf(path, sizeof(path), "%s/%s", rootdir, files[i].name);
		unlink(path);
	}
	rmdir(rootdir);
	for (unsigned i = 0; i < NSERVERS; i++)
		if (servers[i].log[0])
			unlink(servers[i].log);
	rmdir(workdir);
}

/* ---- phases ---- */

static void pump(unsigned timeout_ms)
{
	struct epoll_event evs[256];
	uint64_t t = now_ms();

	/* from the last wait's return: this process did not come back to it */
	if (loop_last_ms && t - loop_last_ms > LOOP_GAP_MS) {
		uint64_t gap = t - loop_last_ms;

		loop_gaps++;
		if (gap > loop_gap_max)
			loop_gap_max = gap;
		if (t - gap_recent_at >= LOOP_GAP_RECENT_MS || gap > gap_recent_ms) {
			gap_recent_ms = gap;
			gap_recent_at = t;
		}
	}
	int n = epoll_wait(ep, evs, 256, (int)timeout_ms);

	loop_last_ms = now_ms();

	for (int i = 0; i < n; i++) {
		struct conn *c = &conns[evs[i].data.u32];

		if (c->used)
			on_event(c, evs[i].events);
	}
}

/* Load until @end_ms: keep opt_conns connections open. */
static void run_load(uint64_t end_ms)
{
	uint64_t next_sweep = 0;

	loop_last_ms = 0; /* the phases between loads wait on /proc and signals */
	while (now_ms() < end_ms) {
		for (unsigned k = 0; k < 64 && nactive < opt_conns; k++)
			start_conn();
		pump(20);
		if (now_ms() >= next_sweep) {
			sweep(false);
			reap();
			next_sweep = now_ms() + 100;
		}
	}
}

/* Let every connection end (bounded by DRAIN_MS; what is left then is an error). */
static void drain(unsigned which)
{
	uint64_t t0 = now_ms(), end = t0 + DRAIN_MS, next_sweep = 0;

	while (nactive && now_ms() < end) {
		pump(20);
		if (now_ms() >= next_sweep) {
			sweep(true);
			next_sweep = now_ms() + 100;
		}
	}
	for (unsigned i = 0; i < opt_conns; i++)
		if (conns[i].used)
			fail(&conns[i], E_STALL, "still open after the drain", 0);
	reap();
	drain_ms[which] = now_ms() - t0;
}

static void measure(bool end)
{
	/* settle: closes in flight on the server side */
	uint64_t until = now_ms() + 500;

	while (now_ms() < until)
		pump(20);
	for (unsigned i = 0; i < NSERVERS; i++) {
		struct server *s = &servers[i];

		if (!s->enabled || s->exited)
			continue;
		if (!end) {
			/* a relay's pool trim (every second) may close pipes between
			 * its count and ours: counted again until both agree (3 tries) */
			for (int t = 0; t < 3; t++) {
				s->pipes0 = s->kind == K_RELAY ? relay_pipes(s) :
					    s->kind == K_SERVE ? serve_pipes(s->pid) : 0;
				s->fd0 = fd_count(s->pid) - 2 * (s->pipes0 > 0 ? s->pipes0 : 0);
				if (s->kind != K_RELAY || s->pipes0 < 0 || relay_pipes(s) == s->pipes0)
					break;
			}
			s->rss0 = rss_kb(s->pid);
			continue;
		}
		uint64_t grace = now_ms() + FD_GRACE_MS;

		do {
			s->pipes1 = s->kind == K_RELAY ? relay_pipes(s) :
				    s->kind == K_SERVE ? serve_pipes(s->pid) : 0;
			s->fd1 = fd_count(s->pid) - 2 * (s->pipes1 > 0 ? s->pipes1 : 0);
			if (s->fd1 * 100 <= s->fd0 * 105)
				break;
			pump(50);
		} while (now_ms() < grace);
		s->rss1 = rss_kb(s->pid);
	}
}

/*
 * A new client once the load is over, while the servers still run: echo
 * and the relays send back 4 KB, serve answers a GET of a small file
 * whole. With --server-faults a few tries (an injected fault may close
 * any one connection); without, the first must do.
 */
#define FRESH_TRIES 8

static bool fresh_once(struct server *s)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct timeval tv = {.tv_sec = 5};
	static uint8_t buf[8192];
	const struct file *f = NULL;
	size_t got = 0, want = 4096;
	bool ok = false;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return false;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)s->port);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		goto out;
	s->dials++;
	if (s->kind == K_SERVE) {
		char req[128];
		int n;

		for (unsigned i = 0; i < NFILES; i++)
			if (files[i].size && files[i].size <= 4096 && (!f || files[i].size > f->size))
				f = &files[i];
		if (!f)
			goto out;
		n = snprintf(req, sizeof(req), "GET /%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			     f->name);
		if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
			goto out;
		want = sizeof(buf);
	} else {
		static const char proxy[] = "PROXY UNKNOWN\r\n";

		if (s->proxy_in &&
		    send(fd, proxy, sizeof(proxy) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(proxy) - 1))
			goto out;
		if (send(fd, pat, want, MSG_NOSIGNAL) != (ssize_t)want)
			goto out;
	}
	while (got < want) {
		ssize_t r = recv(fd, buf + got, want - got, 0);

		if (r <= 0)
			break;
		got += (size_t)r;
	}
	if (s->kind == K_SERVE) {
		const uint8_t *end = memmem(buf, got, "\r\n\r\n", 4);

		ok = end && got > 12 && !memcmp(buf, "HTTP/1.1 200", 12) &&
		     (size_t)(buf + got - (end + 4)) == f->size &&
		     rp_crc32c(0, end + 4, f->size) == pat_crc(0, f->off, f->size);
	} else {
		ok = got == want && !memcmp(buf, pat, want);
	}
out:
	close(fd);
	return ok;
}

static void fresh_clients(void)
{
	char line[512];
	size_t off = 0;

	line[0] = 0;
	for (unsigned i = 0; i < NSERVERS; i++) {
		struct server *s = &servers[i];
		unsigned tries = 0;
		bool ok = false;

		if (!s->enabled || !s->target || s->exited)
			continue;
		while (!ok && tries < (opt_faults ? FRESH_TRIES : 1)) {
			ok = fresh_once(s);
			tries++;
		}
		if (!ok) {
			printf("soak: %s: a fresh client after the load was not answered (%u tries)\n",
			       s->name, tries);
			failures++;
		} else if (off < sizeof(line)) {
			off += (size_t)snprintf(line + off, sizeof(line) - off, " %s %u", s->name,
						tries);
		}
	}
	printf("soak: fresh clients after the load answered (tries):%s\n", line);
}

/* ---- the SIGQUIT drain ---- */

/* A new connect to @s: 1 connected, 0 refused, -1 neither (within 50 ms). */
static int probe(struct server *s)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), err = 0, ret = -1;
	socklen_t len = sizeof(err);

	if (fd < 0)
		return -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)s->port);
	if (!connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		ret = 1;
	} else if (errno == ECONNREFUSED) {
		ret = 0;
	} else if (errno == EINPROGRESS) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};

		if (poll(&p, 1, 50) > 0 && !getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
			ret = !err ? 1 : err == ECONNREFUSED ? 0 : -1;
	}
	close(fd); /* one that connected: the server sees EOF and ends it */
	if (ret)
		s->dials++; /* it may have reached the listener's queue */
	return ret;
}

/* From its log, once it has exited: whether its drain timed out, and the
 * connections it accepted (each shard's exit line "shard N: conns M ...",
 * the last one of each shard). */
static void quit_log(struct server *s)
{
	long per[64] = {0};
	char line[4096], *at;
	unsigned id, chunks = 0;
	bool start = true; /* the chunk begins a line (a longer one comes in pieces) */
	FILE *f = fopen(s->log, "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f) && chunks++ < 100000) {
		if (strstr(line, "drain timeout"))
			s->drain_timed_out = true;
		if (start && sscanf(line, "shard %u:", &id) == 1 && id < 64 &&
		    (at = strstr(line, ": conns ")))
			per[id] = strtol(at + 8, NULL, 10);
		start = strchr(line, '\n') != NULL;
	}
	fclose(f);
	s->accepted = 0;
	for (id = 0; id < s->shards && id < 64; id++)
		s->accepted += per[id];
}

/* Draining servers: probe each until its port refuses, and reap those
 * that exited (their exit counters go into their logs). */
static void quit_watch(void)
{
	uint64_t t = now_ms();

	for (unsigned i = 0; i < NSERVERS; i++) {
		struct server *s = &servers[i];
		int st;

		if (!s->quitting || s->exit_ms)
			continue;
		if (!s->refused_ms && t >= s->next_probe_ms) {
			if (!probe(s))
				s->refused_ms = now_ms();
			s->next_probe_ms = now_ms() + PROBE_MS;
		}
		if (waitpid(s->pid, &st, WNOHANG) != s->pid)
			continue;
		s->exit_ms = now_ms();
		s->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (!s->refused_ms && !probe(s)) /* it went before a probe saw it drain */
			s->refused_ms = s->exit_ms;
		server_collect(s);
		quit_log(s);
	}
}

/* A held request's tail goes once its server refuses connects: whole only
 * then, so its answer must say Connection: close (http_head). */
static void hold_release(void)
{
	for (unsigned i = 0; i < opt_conns; i++) {
		struct conn *c = &conns[i];

		if (!c->used || !c->held || !c->srv->refused_ms)
			continue;
		c->held = 0;
		c->rq[c->hold_at - 1].queued_ms = now_ms();
		set_events(c);
	}
}

/*
 * The graceful drain under load: a last load of QUIT_LOAD_MS at full
 * --conns, then SIGQUIT to every server the clients use, all at once, and
 * no new connection. Every connection open then must end as its behaviour
 * says (the same rules as under load; serve's last answer then EOF is
 * drain-closed; a reset before any byte in the instant of the SIGQUIT is
 * reset-at-connect), each port must refuse connects within
 * QUIT_REFUSE_MS, and each server must exit 0 once its last connection
 * has ended, before its --drain-timeout. Bounded: the drain timeout plus
 * STOP_MS, then whatever is left is killed and fails. The relays'
 * upstream gets its SIGQUIT after them (a relay still connecting upstream
 * must find it), idle by then: it must exit 0 within STOP_MS.
 */
static void quit_phase(void)
{
	uint64_t t0, end, next_sweep = 0;
	bool left = true;

	unsigned lead = opt_timeout * 500 < QUIT_LOAD_MS ? opt_timeout * 500 : QUIT_LOAD_MS;

	mix_open = true;
	run_load(now_ms() + QUIT_LOAD_MS - lead);
	/* serve's keep-alive clients held mid-request across the SIGQUIT:
	 * the first connections started from here on */
	hold_want = opt_conns / 16 < HOLD_CONNS ? (opt_conns / 16 ? opt_conns / 16 : 1) : HOLD_CONNS;
	run_load(now_ms() + lead);
	hold_want = 0;
	/* full --conns at the SIGQUIT: the newest are in the listeners' queues */
	for (unsigned k = 0; k < opt_conns && nactive < opt_conns; k++)
		start_conn();
	mix_open = false;
	for (unsigned i = 0; i < opt_conns; i++)
		if (conns[i].used) {
			conns[i].at_quit = true;
			conns[i].quit_rx = conns[i].recvd;
			conns[i].srv->q_beh[conns[i].beh]++;
			if (conns[i].held && now_ms() - conns[i].held_ms >= HOLD_SETTLE_MS) {
				struct server *s = conns[i].srv;
				uint64_t ms = now_ms() - conns[i].held_ms;

				conns[i].hold_check = true;
				if (!s->q_hold++ || ms < s->q_hold_min_ms)
					s->q_hold_min_ms = ms;
			}
		}
	t0 = now_ms();
	for (unsigned i = 0; i < NSERVERS; i++) {
		struct server *s = &servers[i];

		if (!s->enabled || !s->target || s->exited || s->pid <= 0)
			continue;
		s->q_live = s->active;
		s->q_verified0 = s->verified;
		s->accepted = -1;
		s->quitting = true;
		s->quit_ms = s->next_probe_ms = now_ms();
		kill(s->pid, SIGQUIT);
	}
	end = t0 + (uint64_t)quit_drain_s * 1000 + STOP_MS;
	while (left && now_ms() < end) {
		pump(10);
		quit_watch();
		hold_release();
		if (now_ms() >= next_sweep) {
			sweep(false); /* stalls resume in their own time, silent ones wait */
			next_sweep = now_ms() + 100;
		}
		left = nactive > 0;
		for (unsigned i = 0; i < NSERVERS; i++)
			if (servers[i].quitting && !servers[i].exit_ms)
				left = true;
	}
	for (unsigned i = 0; i < opt_conns; i++)
		if (conns[i].used)
			fail(&conns[i], E_STALL, "still open after the drain's bound", 0);
	for (unsigned i = 0; i < NSERVERS; i++) {
		struct server *s = &servers[i];

		if (s->quitting && !s->exit_ms) {
			fprintf(stderr, "soak: %s still running %u s after its SIGQUIT: killed\n",
				s->name, (unsigned)((now_ms() - s->quit_ms) / 1000));
			kill(s->pid, SIGKILL);
			waitpid(s->pid, NULL, 0);
			s->status = -1;
			s->exit_ms = now_ms();
			server_collect(s);
		}
	}
	if (servers[1].enabled)
		server_stop(&servers[1], SIGQUIT);
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ringplane-soak --ringplane PATH --seconds N [--server-faults] [--seed N]\n"
		"                      [--conns N] [--mix KIND=W,...] [--servers LIST]\n"
		"                      [--warmup S] [--max-size BYTES] [--server-timeout S]\n"
		"                      [--no-rss-check] [--keep] [--shards N] [--stop quit|term]\n"
		"  kinds: stream halfclose reset stall silent garbage\n"
		"  servers: echo relay-copy relay-splice relay-auto relay-proxy serve\n");
}

static int parse_mix(const char *arg)
{
	char buf[256], *save = NULL, *tok;

	snprintf(buf, sizeof(buf), "%s", arg);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		int b;

		if (!eq)
			return -1;
		*eq = 0;
		for (b = 0; b < B_COUNT; b++)
			if (!strcmp(tok, beh_name[b]))
				break;
		if (b == B_COUNT)
			return -1;
		weight[b] = (unsigned)strtoul(eq + 1, NULL, 10);
	}
	return 0;
}

static int parse_servers(const char *arg)
{
	char buf[256], *save = NULL, *tok;

	for (unsigned i = 0; i < NSERVERS; i++)
		servers[i].enabled = false;
	snprintf(buf, sizeof(buf), "%s", arg);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		unsigned i;

		for (i = 0; i < NSERVERS; i++)
			if (servers[i].target && !strcmp(tok, servers[i].name))
				break;
		if (i == NSERVERS)
			return -1;
		servers[i].enabled = true;
	}
	return 0;
}

static void set_args(void)
{
	static char up[32], timeout_arg[16], up_timeout_arg[16], shards_arg[NSERVERS][12],
		drain_arg[16];
	struct server *s;

	snprintf(timeout_arg, sizeof(timeout_arg), "%u", opt_timeout);
	snprintf(drain_arg, sizeof(drain_arg), "%u", quit_drain_s);
	/* The relays' upstream waits three times as long: the relays are under
	 * test, and their own --idle-timeout must be what ends an idle relayed
	 * connection. With equal timeouts a stream starved on a loaded host
	 * could be closed by the upstream first, and the relay would pass that
	 * end on as if it were its own fault. */
	snprintf(up_timeout_arg, sizeof(up_timeout_arg), "%u", 3 * opt_timeout);
	for (unsigned i = 0; i < NSERVERS; i++) {
		const char **a = servers[i].args;

		s = &servers[i];
		switch (s->kind) {
		case K_ECHO:
			*a++ = "echo";
			*a++ = "--idle-timeout";
			*a++ = s->target ? timeout_arg : up_timeout_arg;
			break;
		case K_RELAY:
			*a++ = "relay";
			*a++ = "--upstream";
			*a++ = up;
			*a++ = "--idle-timeout";
			*a++ = timeout_arg;
			*a++ = "--mode";
			*a++ = !strcmp(s->name, "relay-copy")	  ? "copy"
			       : !strcmp(s->name, "relay-splice") ? "splice"
								  : "auto";
			if (s->proxy_in)
				*a++ = "--accept-proxy";
			break;
		case K_SERVE:
			*a++ = "serve";
			*a++ = "--root";
			*a++ = rootdir;
			*a++ = "--header-timeout";
			*a++ = timeout_arg;
			*a++ = "--keepalive-timeout";
			*a++ = timeout_arg;
			break;
		}
		*a++ = "--listen";
		*a++ = "127.0.0.1:0";
		*a++ = "--shards";
		s->shards = opt_shards ? opt_shards : i % 2 ? 1 : 2;
		snprintf(shards_arg[i], sizeof(shards_arg[i]), "%u", s->shards);
		*a++ = shards_arg[i];
		*a++ = "--drain-timeout";
		*a++ = drain_arg;
		*a++ = "--no-pin";
		*a = NULL;
	}
	/* the upstream echo starts first; its port goes into the relays' args */
	snprintf(up, sizeof(up), "127.0.0.1:%d", servers[1].port);
}

static double pct(long a, long b)
{
	return a > 0 ? 100.0 * (double)(b - a) / (double)a : 0;
}

/* The SIGQUIT drain's figures and checks (the errors are in the table above). */
static bool quit_summary(void)
{
	bool pass = true;

	printf("drain: SIGQUIT %.1f s into a last load at %u connections, --drain-timeout %u s\n",
	       QUIT_LOAD_MS / 1000.0, opt_conns, quit_drain_s);
	printf("%-14s %5s %8s %7s %5s %9s %11s  %s\n", "server", "live", "refused", "exit s",
	       "exit", "MB moved", "MB verified", "how the live ones ended");
	for (unsigned i = 0; i < NSERVERS; i++) {
		struct server *s = &servers[i];
		uint64_t ended = 0;
		double exit_s = s->exit_ms ? (double)(s->exit_ms - s->quit_ms) / 1000 : -1;
		char refused[16] = "-";
		bool late = exit_s < 0 || exit_s >= quit_drain_s;

		if (!s->enabled || !s->quitting)
			continue;
		for (int o = 0; o < O_COUNT; o++)
			ended += s->q_outcome[o];
		if (s->refused_ms)
			snprintf(refused, sizeof(refused), "%llu ms",
				 (unsigned long long)(s->refused_ms - s->quit_ms));
		printf("%-14s %5llu %8s %7.1f %5d %9.1f %11.1f ", s->name,
		       (unsigned long long)s->q_live, s->target ? refused : "-", exit_s, s->status,
		       (double)s->q_moved / 1e6, (double)(s->verified - s->q_verified0) / 1e6);
		for (int o = 0; o < O_COUNT; o++)
			if (s->q_outcome[o])
				printf(" %s=%llu", outcome_name[o],
				       (unsigned long long)s->q_outcome[o]);
		if (s->q_close_hdr)
			printf(" (Connection: close on %llu)", (unsigned long long)s->q_close_hdr);
		/* HOLD_CONNS: some held mid-request at the SIGQUIT, each answered
		 * with Connection: close (with --server-faults an injected close
		 * may end one first: printed, not checked) */
		if (s->target && s->kind == K_SERVE) {
			bool bad = !s->q_hold || s->q_hold_closed != s->q_hold;

			printf(" (held mid-request at it %llu of %llu started, for %llu ms at least; "
			       "answered with close %llu%s)",
			       (unsigned long long)s->q_hold, (unsigned long long)s->q_hold_started,
			       (unsigned long long)s->q_hold_min_ms, (unsigned long long)s->q_hold_closed,
			       bad && !opt_faults ? !s->q_hold ? ": HOLD-NONE" : ": HOLD-UNANSWERED"
						  : "");
			if (bad && !opt_faults)
				pass = false;
		}
		/* a reset-at-connect is one the server never accepted: its own count says how
		 * many of the connects that reached it (by the soak's count) it did */
		if (s->target && s->accepted >= 0) {
			long never = (long)(s->conns + s->dials) - s->accepted;

			printf(" (%ld never accepted%s)", never,
			       (long)s->q_outcome[O_QUIT_RESET] > never ? ": RESET-ACCEPTED" : "");
			if ((long)s->q_outcome[O_QUIT_RESET] > never)
				pass = false;
		}
		if (!s->target)
			printf(" (the relays' upstream, after them)");
		if (ended != s->q_live)
			printf(" UNACCOUNTED %llu", (unsigned long long)(s->q_live - ended));
		if (s->target && !s->refused_ms)
			printf(" NOT-REFUSED");
		else if (s->target && s->refused_ms - s->quit_ms > QUIT_REFUSE_MS)
			printf(" REFUSED-LATE");
		if (s->drain_timed_out || late)
			printf(" DRAIN-TIMEOUT");
		if (s->status)
			printf(" BAD-EXIT");
		printf("\n");
		if (s->q_live) {
			printf("%-14s live ones by behaviour:", "");
			for (int b = 0; b < B_COUNT; b++)
				if (s->q_beh[b])
					printf(" %s=%llu", beh_name[b], (unsigned long long)s->q_beh[b]);
			printf("\n");
		}
		if (ended != s->q_live || (s->target && !s->refused_ms) ||
		    (s->target && s->refused_ms - s->quit_ms > QUIT_REFUSE_MS) ||
		    s->drain_timed_out || late || s->status)
			pass = false;
	}
	printf("live: connections open at the SIGQUIT; refused: a new connect first refused after\n"
	       "it; exit s: its exit after it; MB moved: received after it by the live ones that\n"
	       "ended well; MB verified: by CRC32C in the drain (whole streams and answers)\n");
	return pass;
}

static int summary(void)
{
	uint64_t tot_conns = 0, tot_ver = 0, tot_err = 0;
	char cpu[128] = "?";
	FILE *f = fopen("/proc/cpuinfo", "r");
	bool pass = failures == 0;

	while (f && fgets(cpu, sizeof(cpu), f))
		if (!strncmp(cpu, "model name", 10))
			break;
	if (f)
		fclose(f);
	cpu[strcspn(cpu, "\n")] = 0;
	printf("\n==== ringplane soak: seed %llu, %.0f s of load, %u connections at once, "
	       "server faults %s\n",
	       (unsigned long long)opt_seed, (double)opt_seconds, opt_conns,
	       opt_faults ? "on" : "off");
	printf("     %s, %ld CPUs\n", strchr(cpu, ':') ? strchr(cpu, ':') + 2 : cpu,
	       sysconf(_SC_NPROCESSORS_ONLN));
	printf("%-14s %8s %12s %7s  %s\n", "server", "conns", "MB verified", "errors", "outcomes");
	for (unsigned i = 0; i < NSERVERS; i++) {
		struct server *s = &servers[i];
		uint64_t errs = 0;

		if (!s->enabled)
			continue;
		for (int e = 0; e < E_COUNT; e++)
			errs += s->err[e];
		tot_conns += s->conns;
		tot_ver += s->verified;
		tot_err += errs;
		if (!s->target) {
			printf("%-14s (the relays' upstream)\n", s->name);
			continue;
		}
		printf("%-14s %8llu %12.1f %7llu ", s->name, (unsigned long long)s->conns,
		       (double)s->verified / 1e6, (unsigned long long)errs);
		for (int o = 0; o < O_COUNT; o++)
			if (s->outcome[o])
				printf(" %s=%llu", outcome_name[o],
				       (unsigned long long)s->outcome[o]);
		printf("\n");
		if (errs) {
			printf("%-14s errors:", "");
			for (int e = 0; e < E_COUNT; e++)
				if (s->err[e])
					printf(" %s=%llu", err_name[e],
					       (unsigned long long)s->err[e]);
			printf("\n");
		}
	}
	printf("%-14s %8llu %12.1f %7llu\n", "total", (unsigned long long)tot_conns,
	       (double)tot_ver / 1e6, (unsigned long long)tot_err);
	printf("%-14s %9s %9s %9s %7s %5s %5s %5s %11s %5s\n", "server", "VmRSS kB", "warm", "end",
	       "growth", "fds", "warm", "end", "pipe cache", "exit");
	for (unsigned i = 0; i < NSERVERS; i++) {
		struct server *s = &servers[i];
		bool rss_bad = s->rss0 <= 0 || s->rss1 <= 0 || s->rss1 * 100 > s->rss0 * 105;
		bool fd_bad = s->fd0 <= 0 || s->fd1 <= 0 || s->fd1 * 100 > s->fd0 * 105;
		char cache[32] = "-";
		bool clean;

		if (!s->enabled)
			continue;
		clean = log_clean(s);
		if (s->kind == K_RELAY || s->kind == K_SERVE)
			snprintf(cache, sizeof(cache), "%ld -> %ld", s->pipes0, s->pipes1);
		printf("%-14s %9ld %9ld %9ld %+6.1f%% %5ld %5ld %5ld %11s %5d%s%s%s\n", s->name,
		       s->rss_start, s->rss0, s->rss1, pct(s->rss0, s->rss1), s->fd_start, s->fd0,
		       s->fd1, cache, s->status,
		       rss_bad ? (opt_rss_check ? " RSS-GREW" : " (rss grew, not checked)") : "",
		       fd_bad ? " FDS-GREW" : "", s->status ? " BAD-EXIT" : "");
		if ((rss_bad && opt_rss_check) || fd_bad || s->status || s->exited || !clean)
			pass = false;
		if (!clean)
			printf("%-14s sanitizer or crash report in its stderr (above)\n", "");
	}
	printf("VmRSS and fds: each server idle after the warm-up and at the end (a relay's and\n"
	       "serve's fds without their cached pipes); drains took %.1f s and %.1f s; exit: status at "
	       "%s\n",
	       (double)drain_ms[0] / 1000, (double)drain_ms[1] / 1000,
	       opt_quit ? "the end of its SIGQUIT drain" : "SIGTERM");
	printf("client loop: %llu pauses over %u ms under load, the longest %llu ms\n",
	       (unsigned long long)loop_gaps, LOOP_GAP_MS, (unsigned long long)loop_gap_max);
	for (unsigned i = 0; i < NSERVERS; i++) {
		struct server *s = &servers[i];

		if (!s->enabled || !s->proxy_in)
			continue;
		/* every garbage header we saw refused was counted by the relay too */
		printf("%s: %ld PROXY headers refused or timed out by its count, %llu garbage "
		       "headers refused by ours%s\n",
		       s->name, s->proxy_refused, (unsigned long long)s->refused_seen,
		       s->proxy_refused < (long)s->refused_seen ? " UNCOUNTED" : "");
		if (s->proxy_refused < (long)s->refused_seen)
			pass = false;
	}
	if (opt_quit && !quit_summary())
		pass = false;
	if (tot_err)
		pass = false;
	printf("result: %s\n", pass ? "PASS" : "FAIL");
	fflush(stdout);
	return pass ? 0 : 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"ringplane", required_argument, NULL, 'r'},
		{"seconds", required_argument, NULL, 's'},
		{"server-faults", no_argument, NULL, 'f'},
		{"seed", required_argument, NULL, 'S'},
		{"conns", required_argument, NULL, 'c'},
		{"mix", required_argument, NULL, 'm'},
		{"servers", required_argument, NULL, 'v'},
		{"warmup", required_argument, NULL, 'w'},
		{"max-size", required_argument, NULL, 'M'},
		{"no-rss-check", no_argument, NULL, 'R'},
		{"keep", no_argument, NULL, 'k'},
		{"server-timeout", required_argument, NULL, 't'},
		{"shards", required_argument, NULL, 'n'},
		{"stop", required_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct rlimit rl;
	uint64_t t0;
	int o, rc;

	for (unsigned i = 0; i < NSERVERS; i++)
		servers[i].enabled = true;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'r':
			bin = optarg;
			break;
		case 's':
			opt_seconds = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'f':
			opt_faults = true;
			break;
		case 'S':
			opt_seed = strtoull(optarg, NULL, 0);
			break;
		case 'c':
			opt_conns = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'm':
			if (parse_mix(optarg)) {
				usage(stderr);
				return 2;
			}
			break;
		case 'v':
			if (parse_servers(optarg)) {
				usage(stderr);
				return 2;
			}
			break;
		case 'w':
			opt_warmup = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'M':
			opt_max_size = strtoull(optarg, NULL, 0);
			break;
		case 'R':
			opt_rss_check = false;
			break;
		case 'k':
			opt_keep = true;
			break;
		case 't':
			opt_timeout = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'n':
			opt_shards = (unsigned)strtoul(optarg, NULL, 10);
			if (!opt_shards || opt_shards > 16) {
				usage(stderr);
				return 2;
			}
			break;
		case 'q':
			if (strcmp(optarg, "quit") && strcmp(optarg, "term")) {
				usage(stderr);
				return 2;
			}
			opt_quit = !strcmp(optarg, "quit");
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!bin || optind != argc || !opt_seconds || !opt_conns || !opt_timeout ||
	    opt_timeout > 3600 || opt_conns > MAX_CONNS || opt_max_size < 1 ||
	    opt_max_size > PAT_LEN / 2) {
		usage(stderr);
		return 2;
	}
	if (opt_warmup == ~0u)
		opt_warmup = opt_seconds / 4 < 30 ? opt_seconds / 4 : 30;
	quit_drain_s = DRAIN_MS / 1000 + opt_timeout;
	/* the relays' upstream runs when any relay does */
	servers[1].enabled = false;
	for (unsigned i = 0; i < NSERVERS; i++)
		if (servers[i].enabled && servers[i].kind == K_RELAY)
			servers[1].enabled = true;
	rng_state = opt_seed * 0x9E3779B97F4A7C15ull + 1;
	signal(SIGPIPE, SIG_IGN);
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	pat = malloc(PAT_LEN + PAT_TAIL);
	conns = calloc(opt_conns, sizeof(*conns));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!pat || !conns || ep < 0) {
		perror("soak");
		return 1;
	}
	for (size_t i = 0; i < PAT_LEN; i += 8) {
		uint64_t v = rng();

		memcpy(pat + i, &v, 8);
	}
	memcpy(pat + PAT_LEN, pat, PAT_TAIL);

	snprintf(workdir, sizeof(workdir), "/tmp/ringplane-soak.XXXXXX");
	if (!mkdtemp(workdir) || write_root()) {
		perror("soak: work directory");
		return 1;
	}
	rc = 1;
	set_args();
	/* the upstream echo and the servers that do not need it start together */
	for (unsigned i = 0; i < NSERVERS; i++)
		if (servers[i].enabled && servers[i].kind != K_RELAY && server_spawn(&servers[i]))
			goto out;
	if (servers[1].enabled && server_listening(&servers[1]))
		goto out;
	set_args();
	for (unsigned i = 0; i < NSERVERS; i++)
		if (servers[i].enabled && servers[i].kind == K_RELAY && server_spawn(&servers[i]))
			goto out;
	for (unsigned i = 0; i < NSERVERS; i++)
		if (i != 1 && servers[i].enabled && server_listening(&servers[i]))
			goto out;
	printf("soak: seed %llu, %u s (warm-up %u s), %u connections, work dir %s\n",
	       (unsigned long long)opt_seed, opt_seconds, opt_warmup, opt_conns, workdir);
	fflush(stdout);

	for (unsigned i = 0; i < NSERVERS; i++) {
		servers[i].rss_start = servers[i].enabled ? rss_kb(servers[i].pid) : 0;
		servers[i].fd_start = servers[i].enabled ? fd_count(servers[i].pid) : 0;
	}
	t0 = now_ms();
	run_load(t0 + (uint64_t)opt_warmup * 1000);
	drain(0);
	measure(false);
	t0 = now_ms();
	run_load(t0 + (uint64_t)(opt_seconds - opt_warmup) * 1000);
	drain(1);
	measure(true);
	fresh_clients();
	if (opt_quit)
		quit_phase();
	/* relays before their upstream */
	for (unsigned i = NSERVERS; i-- > 0;)
		if (servers[i].enabled)
			server_stop(&servers[i], SIGTERM);
	rc = summary();
out:
	for (unsigned i = NSERVERS; i-- > 0;)
		if (servers[i].pid > 0) {
			servers[i].status = 0;
			server_stop(&servers[i], SIGTERM);
		}
	if (rc && !opt_keep)
		fprintf(stderr, "soak: server logs are removed; --keep keeps them\n");
	remove_workdir();
	free(conns);
	free(pat);
	close(ep);
	return rc;
}
