/* SPDX-License-Identifier: MIT */
/*
 * `ringplane echo --listen HOST:PORT [--shards N] [--sockperf]`: a TCP echo
 * server on the engine.
 *
 * Every shard has its own listener on the same address (SO_REUSEPORT: the
 * kernel spreads connections), one multishot accept, and per connection a
 * multishot recv into the shard's provided buffers. Plain mode sends the
 * received buffers back as they are (sendmsg of up to 16 queued buffers;
 * one send in flight per connection keeps the bytes in order) and returns
 * each buffer to the ring when it has been sent. A connection whose peer
 * does not read stops receiving (its recv is cancelled) once 32 buffers
 * wait, and resumes when they drain, so one slow peer cannot take every
 * buffer of the shard.
 *
 * --sockperf speaks sockperf's TCP framing: a 14-byte header (u64 sequence,
 * u16 flags, u32 frame length including the header; network byte order)
 * then payload. Frames without the client bit (1) and warm-up frames (4)
 * get no reply; a frame with pong-request (2) goes back unchanged except
 * that the client bit is cleared. A length below 14 or above 64 KiB closes
 * that connection only (counted as malformed).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ringplane/engine.h>
#include <ringplane/pool.h>

#include "args.h"
#include "commands.h"

#define QMAX 256	 /* received buffers queued per connection */
#define Q_PAUSE 32	 /* stop receiving at this many */
#define Q_RESUME 8	 /* and resume below this */
#define SEND_IOV 16	 /* buffers per sendmsg */
#define SP_HDR 14
#define SP_MAX_FRAME (64u * 1024)
#define SP_ACC (128u * 1024) /* reassembly buffer: at least one whole frame */
#define SP_OUT (128u * 1024) /* replies waiting to be sent (twice: one in flight) */
#define SP_F_CLIENT 1u
#define SP_F_PONG 2u
#define SP_F_WARMUP 4u
#define ACCEPT_BACKOFF_NS (10u * 1000 * 1000)

struct echo_stats {
	uint64_t accepted, closed, bytes_in, bytes_out, frames, replies, malformed, resets,
		accept_errors, paused;
};

struct echo_shard {
	int lfd;
	struct rp_op *accept_op;
	struct echo_stats st;
};

struct echo_cfg {
	bool sockperf;
	unsigned shards;
	int *lfds;
	struct echo_shard **es; /* per shard, set by init */
};

struct qent {
	void *buf;
	uint32_t off, len;
	uint16_t bid;
};

struct conn {
	struct echo_shard *es;
	int fd;
	unsigned ops;	  /* ops alive on this connection */
	bool recv_on;	  /* multishot recv armed */
	bool paused;	  /* recv cancelled for back-pressure */
	bool eof;	  /* no more input (EOF, error, or shutdown) */
	bool failed;	  /* error: drop what is queued */
	bool sending;
	bool closing;
	bool cancelling;  /* a cancel of the recv is on its way */
	struct rp_op *recv_op;
	/* plain mode */
	struct qent q[QMAX];
	unsigned qh, qn;
	struct iovec iov[SEND_IOV];
	struct msghdr msg;
	/* sockperf mode */
	uint8_t *acc, *out, *sending_buf;
	uint32_t acc_len, out_len, sending_len, sending_off;
};

static struct echo_cfg g_cfg;

#define ST_ADD(es, f, n) __atomic_store_n(&(es)->st.f, (es)->st.f + (n), __ATOMIC_RELAXED)

/* ---- connection life ---- */

static void conn_recv(struct rp_shard *sh, struct conn *c);
static void conn_kick(struct rp_shard *sh, struct conn *c);

/* Every op on a connection holds a reference (ops); so does the callback
 * that is running. The connection goes when the last one is dropped after
 * its close was submitted. */
static void conn_put(struct conn *c)
{
	if (--c->ops == 0 && c->closing) {
		rp_pool_free(c->acc);
		rp_pool_free(c->out);
		rp_pool_free(c->sending_buf);
		rp_pool_free(c);
	}
}

static void on_closed(struct rp_shard *sh, void *arg, const struct rp_cqe *cq)
{
	struct conn *c = arg;

	(void)sh;
	(void)cq;
	ST_ADD(c->es, closed, 1);
	conn_put(c);
}

static void drop_queue(struct rp_shard *sh, struct conn *c)
{
	while (c->qn) {
		rp_buf_put(sh, c->q[c->qh].bid);
		c->qh = (c->qh + 1) % QMAX;
		c->qn--;
	}
}

static bool has_output(const struct conn *c)
{
	return c->qn || c->out_len || c->sending_len;
}

/* Close when input has ended and everything owed has been sent (or the
 * connection failed). Called with a reference held. */
static void conn_maybe_close(struct rp_shard *sh, struct conn *c)
{
	if (c->closing)
		return;
	if (c->failed) {
		drop_queue(sh, c);
		c->out_len = c->sending_len = 0;
	}
	if (!c->eof || c->sending || (!c->failed && has_output(c)))
		return;
	if (c->recv_on) {
		/* its last CQE brings us back here */
		if (!c->cancelling) {
			c->cancelling = true;
			rp_cancel(sh, c->recv_op, NULL, NULL);
		}
		return;
	}
	c->closing = true;
	c->ops++;
	if (!rp_close(sh, c->fd, on_closed, c)) {
		close(c->fd); /* no memory for the op: close synchronously */
		ST_ADD(c->es, closed, 1);
		c->ops--;
	}
}

static void fail(struct rp_shard *sh, struct conn *c, int res)
{
	if (res == -ECONNRESET || res == -EPIPE)
		ST_ADD(c->es, resets, 1);
	c->failed = true;
	c->eof = true;
	conn_maybe_close(sh, c);
}

/* ---- sockperf framing ---- */

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Parse whole frames out of acc into out; false on a malformed frame. */
static bool sockperf_parse(struct conn *c)
{
	uint32_t pos = 0;
	bool ok = true;

	while (c->acc_len - pos >= SP_HDR) {
		uint8_t *f = c->acc + pos;
		uint32_t len = be32(f + 10);
		uint16_t flags = (uint16_t)(f[8] << 8 | f[9]);
		bool reply = (flags & SP_F_CLIENT) && !(flags & SP_F_WARMUP) && (flags & SP_F_PONG);

		if (len < SP_HDR || len > SP_MAX_FRAME) {
			ok = false;
			break;
		}
		if (c->acc_len - pos < len)
			break;
		if (reply) {
			if (c->out_len + len > SP_OUT)
				break; /* no room: parse again after the next send */
			memcpy(c->out + c->out_len, f, len);
			flags &= (uint16_t)~SP_F_CLIENT;
			c->out[c->out_len + 8] = (uint8_t)(flags >> 8);
			c->out[c->out_len + 9] = (uint8_t)flags;
			c->out_len += len;
			ST_ADD(c->es, replies, 1);
		}
		ST_ADD(c->es, frames, 1);
		pos += len;
	}
	if (pos) {
		memmove(c->acc, c->acc + pos, c->acc_len - pos);
		c->acc_len -= pos;
	}
	return ok;
}

/* Move queued input into the reassembly buffer as far as it has room, and
 * frames from there into the reply buffer. false: malformed input. */
static bool sockperf_pump(struct rp_shard *sh, struct conn *c)
{
	for (;;) {
		if (!sockperf_parse(c))
			return false;
		if (!c->qn || c->acc_len == SP_ACC)
			return true;
		while (c->qn && c->acc_len < SP_ACC) {
			struct qent *e = &c->q[c->qh];
			uint32_t take = SP_ACC - c->acc_len;

			if (take > e->len)
				take = e->len;
			memcpy(c->acc + c->acc_len, (uint8_t *)e->buf + e->off, take);
			c->acc_len += take;
			e->off += take;
			e->len -= take;
			if (!e->len) {
				rp_buf_put(sh, e->bid);
				c->qh = (c->qh + 1) % QMAX;
				c->qn--;
			}
		}
		if (c->acc_len == SP_ACC && c->out_len + SP_HDR > SP_OUT)
			return sockperf_parse(c); /* wait for the send to make room */
	}
}

/* ---- sending ---- */

static void maybe_resume(struct rp_shard *sh, struct conn *c)
{
	if (c->paused && !c->eof && !c->recv_on && c->qn < Q_RESUME) {
		c->paused = false;
		conn_recv(sh, c);
	}
}

static void on_sent(struct rp_shard *sh, void *arg, const struct rp_cqe *cq)
{
	struct conn *c = arg;
	uint32_t left = cq->res > 0 ? (uint32_t)cq->res : 0;

	c->sending = false;
	if (cq->res < 0) {
		fail(sh, c, cq->res);
		conn_put(c);
		return;
	}
	ST_ADD(c->es, bytes_out, left);
	if (g_cfg.sockperf) {
		c->sending_off += left;
		if (c->sending_off == c->sending_len)
			c->sending_len = c->sending_off = 0;
		if (!c->failed && !sockperf_pump(sh, c)) {
			ST_ADD(c->es, malformed, 1);
			fail(sh, c, -EPROTO);
		}
	} else {
		while (left && c->qn) {
			struct qent *e = &c->q[c->qh];
			uint32_t take = left < e->len ? left : e->len;

			e->off += take;
			e->len -= take;
			left -= take;
			if (!e->len) {
				rp_buf_put(sh, e->bid);
				c->qh = (c->qh + 1) % QMAX;
				c->qn--;
			}
		}
	}
	conn_kick(sh, c);
	maybe_resume(sh, c);
	conn_maybe_close(sh, c);
	conn_put(c);
}

static void conn_kick(struct rp_shard *sh, struct conn *c)
{
	struct rp_op *op;

	if (c->sending || c->failed)
		return;
	if (g_cfg.sockperf) {
		if (!c->sending_len) {
			uint8_t *t = c->sending_buf;

			if (!c->out_len)
				return;
			/* swap: the replies that piled up become what we send */
			c->sending_buf = c->out;
			c->out = t;
			c->sending_len = c->out_len;
			c->sending_off = 0;
			c->out_len = 0;
		}
		op = rp_send(sh, c->fd, c->sending_buf + c->sending_off,
			     c->sending_len - c->sending_off, MSG_NOSIGNAL, on_sent, c);
	} else {
		unsigned n = 0;

		if (!c->qn)
			return;
		for (; n < c->qn && n < SEND_IOV; n++) {
			struct qent *e = &c->q[(c->qh + n) % QMAX];

			c->iov[n].iov_base = (uint8_t *)e->buf + e->off;
			c->iov[n].iov_len = e->len;
		}
		memset(&c->msg, 0, sizeof(c->msg));
		c->msg.msg_iov = c->iov;
		c->msg.msg_iovlen = n;
		op = rp_sendmsg(sh, c->fd, &c->msg, MSG_NOSIGNAL, on_sent, c);
	}
	if (!op) {
		fail(sh, c, -errno);
		return;
	}
	c->sending = true;
	c->ops++;
}

/* ---- receiving ---- */

static void on_recv(struct rp_shard *sh, void *arg, const struct rp_cqe *cq)
{
	struct conn *c = arg;
	bool more = cq->flags & RP_CQE_MORE;

	if (!more) {
		c->recv_on = false;
		c->recv_op = NULL;
		c->cancelling = false;
	}
	if (cq->res > 0 && cq->buf) {
		ST_ADD(c->es, bytes_in, (uint64_t)cq->res);
		if (c->failed || c->qn == QMAX) {
			/* QMAX: the peer sent far past our pause; refuse it */
			rp_buf_put(sh, cq->bid);
			if (!c->failed)
				fail(sh, c, -ENOBUFS);
		} else {
			struct qent *e = &c->q[(c->qh + c->qn) % QMAX];

			e->buf = cq->buf;
			e->bid = cq->bid;
			e->off = 0;
			e->len = (uint32_t)cq->res;
			c->qn++;
			if (g_cfg.sockperf && !sockperf_pump(sh, c)) {
				ST_ADD(c->es, malformed, 1);
				fail(sh, c, -EPROTO);
			}
		}
		if (!c->failed) {
			conn_kick(sh, c);
			if (more && !c->paused && !c->cancelling && c->qn >= Q_PAUSE) {
				c->paused = true;
				c->cancelling = true;
				ST_ADD(c->es, paused, 1);
				rp_cancel(sh, c->recv_op, NULL, NULL);
			}
		}
	} else if (cq->res == 0) {
		c->eof = true;
	} else if (cq->res < 0) {
		/* -ECANCELED of a pause is not the end of the input */
		if (!(cq->res == -ECANCELED && c->paused && !rp_shard_stopping(sh))) {
			if (cq->res == -ECANCELED)
				c->eof = true;
			else
				fail(sh, c, cq->res);
		}
	}
	if (!more) {
		maybe_resume(sh, c);
		conn_maybe_close(sh, c);
		conn_put(c);
	}
}

static void conn_recv(struct rp_shard *sh, struct conn *c)
{
	c->recv_op = rp_recv_multishot(sh, c->fd, on_recv, c);
	if (!c->recv_op) {
		c->eof = true;
		c->failed = true;
		return;
	}
	c->recv_on = true;
	c->ops++;
}

/* ---- accepting ---- */

static void arm_accept(struct rp_shard *sh, struct echo_shard *es);

static void on_backoff(struct rp_shard *sh, void *arg, const struct rp_cqe *cq)
{
	(void)cq;
	if (!rp_shard_stopping(sh))
		arm_accept(sh, arg);
}

static void on_accept(struct rp_shard *sh, void *arg, const struct rp_cqe *cq)
{
	struct echo_shard *es = arg;
	struct conn *c;
	int one = 1;

	if (!(cq->flags & RP_CQE_MORE))
		es->accept_op = NULL;
	if (cq->res < 0) {
		if (cq->res != -ECANCELED)
			ST_ADD(es, accept_errors, 1);
		/* EMFILE and friends end the multishot: back off, keep serving */
		if (!(cq->flags & RP_CQE_MORE) && !rp_shard_stopping(sh) &&
		    !rp_timeout(sh, ACCEPT_BACKOFF_NS, on_backoff, es))
			arm_accept(sh, es);
		return;
	}
	if (rp_shard_stopping(sh)) {
		close(cq->res);
		return;
	}
	ST_ADD(es, accepted, 1);
	setsockopt(cq->res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c = rp_pool_alloc(rp_shard_pool(sh), sizeof(*c));
	if (!c) {
		close(cq->res); /* pool exhausted: counted by the engine (nomem) */
		return;
	}
	memset(c, 0, sizeof(*c));
	c->es = es;
	c->fd = cq->res;
	c->ops = 1; /* our own reference until set-up is done */
	if (g_cfg.sockperf) {
		c->acc = rp_pool_alloc(rp_shard_pool(sh), SP_ACC);
		c->out = rp_pool_alloc(rp_shard_pool(sh), SP_OUT);
		c->sending_buf = rp_pool_alloc(rp_shard_pool(sh), SP_OUT);
		if (!c->acc || !c->out || !c->sending_buf) {
			c->eof = c->failed = true;
			conn_maybe_close(sh, c);
			conn_put(c);
			return;
		}
	}
	conn_recv(sh, c);
	conn_maybe_close(sh, c);
	conn_put(c);
}

static void arm_accept(struct rp_shard *sh, struct echo_shard *es)
{
	es->accept_op = rp_accept_multishot(sh, es->lfd, on_accept, es);
}

/* ---- shard hooks ---- */

static int echo_init(struct rp_shard *sh, void *arg)
{
	struct echo_cfg *cfg = arg;
	struct echo_shard *es = calloc(1, sizeof(*es));

	if (!es)
		return -ENOMEM;
	es->lfd = cfg->lfds[rp_shard_id(sh)];
	cfg->es[rp_shard_id(sh)] = es;
	arm_accept(sh, es);
	return es->accept_op ? 0 : -errno;
}

static void echo_stop(struct rp_shard *sh, void *arg)
{
	struct echo_cfg *cfg = arg;
	struct echo_shard *es = cfg->es[rp_shard_id(sh)];

	/* the engine cancels the accept and every recv/send next */
	if (es && es->lfd >= 0) {
		if (!rp_close(sh, es->lfd, NULL, NULL))
			close(es->lfd);
		es->lfd = -1;
	}
}

/* ---- main ---- */

static int listen_on(struct sockaddr_storage *ss, socklen_t len)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)ss, len) || listen(fd, 4096)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static void print_stats(struct rp_runtime *rt, FILE *f)
{
	for (unsigned i = 0; i < g_cfg.shards; i++) {
		struct rp_shard_stats s;
		struct echo_stats e = { 0 };
		const uint64_t *src;

		rp_runtime_stats(rt, i, &s);
		if (g_cfg.es[i]) {
			src = (const uint64_t *)&g_cfg.es[i]->st;
			for (size_t k = 0; k < sizeof(e) / 8; k++)
				((uint64_t *)&e)[k] = __atomic_load_n(&src[k], __ATOMIC_RELAXED);
		}
		fprintf(f,
			"shard %u: conns %llu closed %llu in %llu B out %llu B frames %llu replies %llu "
			"malformed %llu resets %llu accept_errors %llu paused %llu | ops %llu cqes %llu "
			"submits %llu cqes/submit %.2f wakeups %llu enobufs %llu rearms %llu "
			"nomem %llu sq_full %llu cq_overflow %llu cancelled %llu other_errors %llu\n",
			i, (unsigned long long)e.accepted, (unsigned long long)e.closed,
			(unsigned long long)e.bytes_in, (unsigned long long)e.bytes_out,
			(unsigned long long)e.frames, (unsigned long long)e.replies,
			(unsigned long long)e.malformed, (unsigned long long)e.resets,
			(unsigned long long)e.accept_errors, (unsigned long long)e.paused,
			(unsigned long long)s.ops_submitted, (unsigned long long)s.ops_completed,
			(unsigned long long)s.submits,
			s.submits ? (double)s.ops_completed / (double)s.submits : 0.0,
			(unsigned long long)s.wakeups, (unsigned long long)s.enobufs,
			(unsigned long long)s.rearms, (unsigned long long)s.nomem,
			(unsigned long long)s.sq_full, (unsigned long long)s.cq_overflow,
			(unsigned long long)s.err_cancelled, (unsigned long long)s.err_other);
	}
	fflush(f);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ringplane echo --listen HOST:PORT [--shards N] [--cpus LIST] [--sockperf]\n"
		"                      [--stats-interval S] [--no-pin] [--sqpoll] [--busy-poll US]\n"
		"  --listen HOST:PORT   address to serve: IPv4, [IPv6] or a name; port 0: any\n"
		"                       (the port is printed)\n"
		"  --shards N           shards, 1..1024 (default: one per core of the placement plan)\n"
		"  --cpus LIST          CPUs for the shards (cpulist, e.g. 0-3)\n"
		"  --sockperf           answer sockperf's TCP frames as 'sockperf server' does\n"
		"  --stats-interval S   print per-shard counters every S seconds (also on SIGUSR1)\n"
		"  --no-pin             do not pin shard threads\n"
		"  --sqpoll             IORING_SETUP_SQPOLL rings\n"
		"  --busy-poll US       poll for completions up to US microseconds before sleeping\n");
}

int rp_cmd_echo(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "shards", required_argument, NULL, 's' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "sockperf", no_argument, NULL, 'p' },
		{ "stats-interval", required_argument, NULL, 'i' },
		{ "no-pin", no_argument, NULL, 'n' },
		{ "sqpoll", no_argument, NULL, 'q' },
		{ "busy-poll", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct rp_runtime_config rc = { 0 };
	struct rp_runtime *rt = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen = 0;
	const char *listen_arg = NULL;
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned interval = 0, busy_us = 0;
	sigset_t sigs;
	int c, ret, port = 0, status = RP_EXIT_FAIL;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			listen_arg = optarg;
			if (rp_arg_hostport("echo", "--listen", optarg, true, &ss, &sslen))
				return RP_EXIT_USAGE;
			break;
		case 's':
			if (rp_arg_uint("echo", "--shards", optarg, 1, 1024, &rc.shards))
				return RP_EXIT_USAGE;
			break;
		case 'c':
			if (rp_arg_cpus("echo", "--cpus", optarg))
				return RP_EXIT_USAGE;
			rc.cpus = optarg;
			break;
		case 'p':
			g_cfg.sockperf = true;
			break;
		case 'i':
			if (rp_arg_uint("echo", "--stats-interval", optarg, 0, 86400, &interval))
				return RP_EXIT_USAGE;
			break;
		case 'n':
			rc.no_pin = true;
			break;
		case 'q':
			rc.sqpoll = true;
			break;
		case 'b':
			if (rp_arg_uint("echo", "--busy-poll", optarg, 0, 1000000, &busy_us))
				return RP_EXIT_USAGE;
			rc.spin_ns = (uint64_t)busy_us * 1000u;
			break;
		case 'h':
			usage(stdout);
			return RP_EXIT_OK;
		default:
			usage(stderr);
			return RP_EXIT_USAGE;
		}
	}
	if (!listen_arg || optind != argc) {
		usage(stderr);
		return RP_EXIT_USAGE;
	}

	/* One fd per connection: take the hard limit, as servers do. */
	struct rlimit rl;

	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	/* Signals are taken synchronously by this thread; shards inherit the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	rc.init = echo_init;
	rc.on_stop = echo_stop;
	rc.arg = &g_cfg;
	rc.bufs = 1024;
	rc.buf_size = 16384;
	rc.pool_bytes = g_cfg.sockperf ? 512u << 20 : 128u << 20;
	ret = rp_runtime_create(&rc, &rt);
	if (ret) {
		fprintf(stderr, "ringplane echo: runtime: %s\n", strerror(-ret));
		return RP_EXIT_FAIL;
	}
	g_cfg.shards = rp_runtime_shards(rt);
	g_cfg.lfds = calloc(g_cfg.shards, sizeof(int));
	g_cfg.es = calloc(g_cfg.shards, sizeof(*g_cfg.es));
	if (!g_cfg.lfds || !g_cfg.es)
		goto out;
	for (unsigned i = 0; i < g_cfg.shards; i++)
		g_cfg.lfds[i] = -1;
	/* The first listener settles the port (port 0 picks one); the others share it. */
	for (unsigned i = 0; i < g_cfg.shards; i++) {
		ret = listen_on(&ss, sslen);
		if (ret < 0) {
			fprintf(stderr, "ringplane echo: listen on %s: %s\n", listen_arg,
				strerror(-ret));
			goto out;
		}
		g_cfg.lfds[i] = ret;
		if (i == 0) {
			getsockname(ret, (struct sockaddr *)&ss, &sslen);
			if (ss.ss_family == AF_INET6) {
				struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

				port = ntohs(a->sin6_port);
				inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
			} else {
				struct sockaddr_in *a = (struct sockaddr_in *)&ss;

				port = ntohs(a->sin_port);
				inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
			}
		}
	}
	ret = rp_runtime_start(rt);
	if (ret) {
		fprintf(stderr, "ringplane echo: start: %s\n", strerror(-ret));
		goto out;
	}
	printf(ss.ss_family == AF_INET6 ? "listening on [%s]:%d\n" : "listening on %s:%d\n", host,
	       port);
	fprintf(stderr, "ringplane echo: %u shard%s, %s mode, %s\n", g_cfg.shards,
		g_cfg.shards == 1 ? "" : "s", g_cfg.sockperf ? "sockperf" : "plain",
		rp_engine_features(rt));
	fflush(stdout);

	for (;;) {
		struct timespec ts = { .tv_sec = interval ? interval : 3600 };
		int sig = sigtimedwait(&sigs, NULL, &ts);

		if (sig == SIGUSR1 || (sig < 0 && errno == EAGAIN && interval)) {
			print_stats(rt, stdout);
		} else if (sig == SIGINT || sig == SIGTERM) {
			break;
		}
	}
	rp_runtime_stop(rt);
	ret = rp_runtime_wait(rt);
	print_stats(rt, stdout);
	status = ret ? RP_EXIT_FAIL : RP_EXIT_OK;
	for (unsigned i = 0; i < g_cfg.shards; i++)
		g_cfg.lfds[i] = -1; /* closed by the shards */
out:
	for (unsigned i = 0; g_cfg.lfds && i < g_cfg.shards; i++)
		if (g_cfg.lfds[i] >= 0)
			close(g_cfg.lfds[i]);
	rp_runtime_destroy(rt);
	for (unsigned i = 0; g_cfg.es && i < g_cfg.shards; i++)
		free(g_cfg.es[i]);
	free(g_cfg.es);
	free(g_cfg.lfds);
	return status;
}
