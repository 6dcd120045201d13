/* SPDX-License-Identifier: MIT */
/*
 * `ringplane echo --listen HOST:PORT [--shards N] [--sockperf]`: a TCP echo
 * server on the engine.
 *
 * Every shard has its own listener on the same address (SO_REUSEPORT: the
 * kernel spreads connections), one multishot accept, and per connection a
 * multishot recv into the shard's provided buffers. Plain mode pushes each
 * received buffer as it is on the connection's rp_outq (net/outq.c:
 * everything queued leaves in one sendmsg of up to RP_OUTQ_IOV buffers,
 * one send in flight keeps the bytes in order) and the queue's release
 * callback returns the buffer to the ring once it has been sent. An idle
 * connection holds its struct conn (128 B pool object), its queue (256 B)
 * and its armed recv (128 B); the 256-entry queue that used to be inline
 * made that 8 KB.
 *
 * Buffer budget. A provided buffer stays out until the send that echoes it
 * completes, and a peer that never reads makes that never. So one
 * connection holds at most CONN_BUFS provided buffers (1 while the shard
 * has less than a quarter of them free); what it receives beyond that is
 * copied into pool memory ("spilled", at most SPILL_FRAC of the pool per
 * shard) and the buffer goes back at once. A connection with CONN_PAUSE
 * bytes queued, or one that spills while buffers are short, stops receiving
 * (its recv is cancelled) until its sends drain. The kernel fills up to 32
 * buffers per multishot round before we see a CQE, so a cap on what we
 * keep, not on what we ask for, is what bounds a connection. A connection
 * that makes no progress, read or write, for --idle-timeout seconds is
 * closed (counted in idle_closed); its stuck send is cancelled first, so
 * no buffer goes back to the ring while the kernel may still read it.
 *
 * --sockperf speaks sockperf's TCP framing: a 14-byte header (u64 sequence,
 * u16 flags, u32 frame length including the header; network byte order)
 * then payload. Frames without the client bit (1) and warm-up frames (4)
 * get no reply; a frame with pong-request (2) goes back unchanged except
 * that the client bit is cleared. A length below 14 or above 64 KiB closes
 * that connection only (counted as malformed).
 *
 * Test hooks (environment, read once at start; compiled into the faults
 * build, -Dfaults=true, only): RP_ECHO_FAULT_INIT=N makes shard N's init
 * fail with ENOMEM (a failed start); RP_APP_FAULT_REARM=N (server.h)
 * fails accept arms.
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
#include <ringplane/outq.h>
#include <ringplane/pool.h>

#include "args.h"
#include "commands.h"
#include "server.h"

#define QMAX 256		  /* queued entries per connection */
#define Q_PAUSE (QMAX / 2)	  /* stop receiving at this many entries */
#define CONN_BUFS 32		  /* provided buffers one connection may hold */
#define CONN_PAUSE (512u * 1024)  /* stop receiving with this many bytes queued */
#define CONN_RESUME (64u * 1024)  /* and resume at or below this */
#define POOL_MB_MIN 20 /* measured: 16 MB of provided buffers, the ops, a span of connections */
#define SPILL_FRAC 4		  /* spilled bytes: at most pool / SPILL_FRAC */
#define SP_HDR 14
#define SP_MAX_FRAME (64u * 1024)
#define SP_ACC (128u * 1024) /* reassembly buffer: at least one whole frame */
#define SP_OUT (128u * 1024) /* replies waiting to be sent (twice: one in flight) */
#define SP_F_CLIENT 1u
#define SP_F_PONG 2u
#define SP_F_WARMUP 4u
#define ACCEPT_BACKOFF_NS (10u * 1000 * 1000)
#define IDLE_DEFAULT_S 60

struct echo_stats {
	uint64_t accepted, closed, bytes_in, bytes_out, frames, replies, malformed, resets,
		accept_errors, paused, spilled, idle_closed, rearm_failed;
	uint64_t drain_retries, drain_reset; /* the drain's listener (server.h) */
	uint64_t conn_nomem; /* connections closed at accept: the pool had no room */
	uint64_t pool_live; /* a gauge: pool bytes held, at the last accept or close */
	uint64_t live;	    /* a gauge: connections set up and not yet freed */
	/* the shard's outq stalls (rp_outq_stats), as of the last accept,
	 * close, idle tick or the shard's exit */
	uint64_t outq_stalls;
};

struct conn;

struct echo_shard {
	unsigned id;
	struct rp_app_accept acc; /* the listener and its accept */
	struct rp_shard *sh;
	unsigned buf_count, buf_size;
	size_t spill_bytes, spill_max;
	/* plain mode: holder[bid] is the connection that queued provided
	 * buffer bid; a release's arg points at the slot, whose index is the
	 * buffer id */
	struct conn **holder;
	uint64_t tick;	      /* idle-timer ticks so far */
	struct rp_timer *tick_timer; /* reserved at init: a re-arm needs no memory */
	struct conn *conns;   /* every live connection, for the idle sweep */
	/* startup report, filled by init on the shard thread */
	int cpu, node;
	size_t pool_bytes;
	enum rp_page_kind page_kind;
	struct echo_stats st;
};

struct echo_cfg {
	bool sockperf;
	unsigned shards;
	unsigned idle_s;
	uint64_t tick_ns, idle_ticks;
	size_t spill_max;
	int fault_init;		 /* shard whose init fails, -1: none */
	int *lfds;		 /* listeners not yet taken by a shard's init */
	struct echo_shard **es;	 /* per shard, set by init */
};

struct qent {
	void *buf;
	uint32_t off, len;
	uint16_t bid;
	bool spill; /* buf is a pool chunk of buf_size bytes, not a provided buffer */
};

struct conn {
	struct echo_shard *es;
	struct conn *prev, *next;
	int fd;
	unsigned ops;	  /* ops alive on this connection (and running callbacks) */
	bool recv_on;	  /* multishot recv armed */
	bool paused;	  /* recv cancelled for back-pressure */
	bool eof;	  /* no more input (EOF, error, or shutdown) */
	bool failed;	  /* error: drop what is queued */
	bool sending;
	bool closing;
	bool cancelling;  /* a cancel of the recv is on its way */
	struct rp_op *recv_op;
	uint64_t last_tick; /* es->tick at the last read or write */
	unsigned qn;	    /* queued entries (plain: pushed, not yet released) */
	unsigned nbufs;	    /* provided buffers among the queued entries */
	/* plain mode: every entry is pushed on q (the buffer itself, or a
	 * spilled copy) and released by it once sent */
	struct rp_outq *q;	/* until the connection closes */
	size_t tick_pending;	/* rp_outq_pending at the last idle sweep */
	struct sp *sp;		/* sockperf mode only */
};

/* Sockperf mode's state, out of line: a plain connection does not carry it. */
struct sp {
	struct qent in[QMAX]; /* received entries waiting for room in acc */
	unsigned qh;
	uint64_t qbytes;      /* bytes queued in @in */
	uint8_t *acc, *out, *sending_buf;
	uint32_t acc_len, out_len, sending_len, sending_off;
};

static struct echo_cfg g_cfg;

#define ST_ADD(es, f, n) __atomic_store_n(&(es)->st.f, (es)->st.f + (n), __ATOMIC_RELAXED)

/* ---- connection life ---- */

static void conn_recv(struct rp_shard *sh, struct conn *c);
static void conn_kick(struct rp_shard *sh, struct conn *c);
static int arm_tick(struct rp_shard *sh, struct echo_shard *es);

/* Every op on a connection holds a reference (ops); so does the callback
 * that is running. The connection goes when the last one is dropped after
 * its close was submitted. */
static void conn_put(struct conn *c)
{
	/* plain mode: buffers a closed queue still holds come back through
	 * plain_released, which holds a reference while it runs */
	if (--c->ops == 0 && c->closing && !c->qn) {
		if (c->prev)
			c->prev->next = c->next;
		else
			c->es->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		__atomic_store_n(&c->es->st.live, c->es->st.live - 1, __ATOMIC_RELAXED);
		if (c->sp) {
			rp_pool_free(c->sp->acc);
			rp_pool_free(c->sp->out);
			rp_pool_free(c->sp->sending_buf);
			rp_pool_free(c->sp);
		}
		rp_pool_free(c);
	}
}

/* The shard's outq stalls (only the shard may read them) for the stats
 * line, which another thread prints. */
static void outq_gauge(struct rp_shard *sh, struct echo_shard *es)
{
	struct rp_outq_stats qs;

	rp_outq_shard_stats(sh, &qs);
	__atomic_store_n(&es->st.outq_stalls, qs.stalls, __ATOMIC_RELAXED);
}

/* The pool's live bytes (every object held, provided buffers included),
 * for the stats line: the difference between two snapshots over the
 * connections opened between them is what one holds. */
static void pool_gauge(struct rp_shard *sh, struct echo_shard *es)
{
	struct rp_pool_stats ps;
	uint64_t live = 0;

	rp_pool_stats(rp_shard_pool(sh), &ps);
	for (unsigned i = 0; i < RP_POOL_NCLASS; i++)
		live += ps.class_live_bytes[i];
	__atomic_store_n(&es->st.pool_live, live, __ATOMIC_RELAXED);
	outq_gauge(sh, es);
}

static void on_closed(struct rp_shard *sh, void *arg, const struct rp_cqe *cq)
{
	struct conn *c = arg;
	struct echo_shard *es = c->es;

	(void)cq;
	ST_ADD(es, closed, 1);
	conn_put(c);
	pool_gauge(sh, es);
	/* a close gives memory back: the moment to retry what lacked it */
	if (!rp_shard_stopping(sh)) {
		rp_app_accept_poke(sh, &es->acc);
		if (g_cfg.idle_s && !rp_timer_armed(es->tick_timer))
			(void)arm_tick(sh, es);
	}
}

/* Sockperf mode: give back what input entry @e holds (a provided buffer
 * or a spilled chunk). */
static void qent_release(struct rp_shard *sh, struct conn *c, struct qent *e)
{
	c->sp->qbytes -= e->len;
	if (e->spill) {
		rp_pool_free(e->buf);
		c->es->spill_bytes -= c->es->buf_size;
	} else {
		rp_buf_put(sh, e->bid);
		c->nbufs--;
	}
}

static void q_pop(struct rp_shard *sh, struct conn *c)
{
	qent_release(sh, c, &c->sp->in[c->sp->qh]);
	c->sp->qh = (c->sp->qh + 1) % QMAX;
	c->qn--;
}

/* Sockperf mode: drop the input entries (no send reads them: replies go
 * from the reply buffers). */
static void drop_queue(struct rp_shard *sh, struct conn *c)
{
	while (c->qn) {
		qent_release(sh, c, &c->sp->in[(c->sp->qh + c->qn - 1) % QMAX]);
		c->qn--;
	}
}

static bool has_output(const struct conn *c)
{
	return c->qn || (c->sp && (c->sp->out_len || c->sp->sending_len));
}

/* Bytes queued and not yet sent (plain) or not yet parsed (sockperf). */
static size_t queued_bytes(const struct conn *c)
{
	if (g_cfg.sockperf)
		return c->sp->qbytes;
	return c->q ? rp_outq_pending(c->q) : 0;
}

/* Close when input has ended and everything owed has been sent, or at once
 * when the connection failed (rp_close then ends its recv and its send,
 * whose entries go back when its last CQE comes). Called with a reference
 * held. */
static void conn_maybe_close(struct rp_shard *sh, struct conn *c)
{
	if (c->closing)
		return;
	if (c->failed) {
		if (g_cfg.sockperf) {
			drop_queue(sh, c);
			if (c->sp)
				c->sp->out_len = 0;
		} else if (c->q) {
			struct rp_outq *q = c->q;

			/* what the send in flight covers comes back at its
			 * completion (rp_close below cancels it) */
			c->q = NULL;
			rp_outq_close(q);
			if (c->closing) /* a release in there came back here */
				return;
		}
	}
	if (!c->eof)
		return;
	if (!c->failed) {
		if (c->sending || has_output(c))
			return;
		if (c->recv_on) {
			/* its last CQE brings us back here */
			if (!c->cancelling) {
				c->cancelling = true;
				/* needs no pool memory; an SQ that stayed full:
				 * SHUT_RD ends the recv with EOF instead */
				if (rp_cancel_op(sh, c->recv_op))
					(void)shutdown(c->fd, SHUT_RD);
			}
			return;
		}
	}
	if (c->q) { /* drained: nothing left in it */
		struct rp_outq *q = c->q;

		c->q = NULL;
		rp_outq_close(q);
	}
	c->closing = true;
	c->ops++;
	if (!rp_close(sh, c->fd, on_closed, c)) {
		/* no memory for the op: close synchronously; but a recv or send
		 * still armed holds the socket open past a bare close (the peer
		 * would never see the end), so shut it down first: they end */
		(void)shutdown(c->fd, SHUT_RDWR);
		close(c->fd);
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

/* ---- plain mode: the connection's output queue ---- */

static void maybe_resume(struct rp_shard *sh, struct conn *c);

/* An entry is gone from the queue (sent, or dropped after a failure): the
 * moment to resume a paused receive, or to close a drained connection.
 * Runs inside the queue's completion (or its close), which allows both. */
static void plain_released(struct conn *c, size_t len)
{
	struct rp_shard *sh = c->es->sh;

	c->qn--;
	c->ops++;
	if (!c->failed) { /* q_error runs before a failed queue drops */
		ST_ADD(c->es, bytes_out, len);
		c->last_tick = c->es->tick;
	}
	maybe_resume(sh, c);
	conn_maybe_close(sh, c);
	conn_put(c);
}

static void plain_release_buf(void *arg, const void *buf, size_t len)
{
	struct conn **slot = arg, *c = *slot;
	struct echo_shard *es = c->es;

	(void)buf;
	*slot = NULL;
	c->nbufs--;
	rp_buf_put(es->sh, (uint16_t)(slot - es->holder));
	plain_released(c, len);
}

/* A spilled copy: a pool object of the power of two that holds it. */
static size_t spill_size(size_t len)
{
	size_t n = RP_POOL_MIN_CLASS;

	while (n < len)
		n <<= 1;
	return n;
}

static void plain_release_spill(void *arg, const void *buf, size_t len)
{
	struct conn *c = arg;

	rp_pool_free((void *)buf);
	c->es->spill_bytes -= spill_size(len);
	plain_released(c, len);
}

static void q_error(struct rp_outq *q, void *arg, int err)
{
	struct conn *c = arg;

	(void)q;
	c->ops++;
	fail(c->es->sh, c, err);
	conn_put(c);
}

static int plain_queue_open(struct rp_shard *sh, struct conn *c)
{
	struct rp_outq_opts o = {
		/* Flushed by hand after each push (conn_kick): a NOP round
		 * would delay the first send by one loop iteration. No
		 * SEND_ZC: echoed buffers are at most one provided buffer
		 * (16 KB, the queue's zero-copy threshold), and a zero-copy
		 * send to a peer that stops reading holds its buffer and its
		 * notification until that socket dies, past a shutdown's
		 * grace (seen in test_echo's stuck case). */
		.flags = RP_OUTQ_MANUAL | RP_OUTQ_ZC_OFF,
		.max_bytes = (size_t)QMAX * c->es->buf_size,
		.on_error = q_error,
		.arg = c,
	};

	return rp_outq_init(sh, &c->q, c->fd, &o);
}

/* Queue a copy of @len received bytes; false: no spill budget or memory. */
static bool plain_spill(struct rp_shard *sh, struct conn *c, const void *data, uint32_t len)
{
	struct echo_shard *es = c->es;
	size_t size = spill_size(len);
	void *p;

	if (!c->q || es->spill_bytes + size > es->spill_max)
		return false;
	p = rp_pool_alloc(rp_shard_pool(sh), size);
	if (!p)
		return false;
	memcpy(p, data, len);
	if (rp_outq_push(c->q, p, len, plain_release_spill, c)) {
		rp_pool_free(p);
		return false;
	}
	es->spill_bytes += size;
	c->qn++;
	ST_ADD(es, spilled, 1);
	return true;
}

/* Queue the received buffer itself; it goes back to the ring when sent. */
static void plain_push(struct rp_shard *sh, struct conn *c, const struct rp_cqe *cq)
{
	struct conn **slot = &c->es->holder[cq->bid];
	int ret = c->q ? 0 : -EPIPE;

	*slot = c;
	if (!ret)
		ret = rp_outq_push(c->q, cq->buf, (size_t)cq->res, plain_release_buf, slot);
	if (ret) {
		*slot = NULL;
		rp_buf_put(sh, cq->bid);
		fail(sh, c, ret);
		return;
	}
	c->qn++;
	c->nbufs++;
}

/* Fewer than a quarter of the shard's provided buffers free. */
static bool buffers_short(struct rp_shard *sh, const struct echo_shard *es)
{
	return es->buf_count - rp_buf_out(sh) < es->buf_count / 4;
}

/* Queue @len bytes of a received buffer as a copy in pool memory (appended
 * to the last spilled chunk where it fits; a send in flight reads only up
 * to the length it was given, so appending is safe). false: no room. */
static bool plain_spill(struct rp_shard *sh, struct conn *c, const void *data, uint32_t len);

static bool spill(struct rp_shard *sh, struct conn *c, const void *data, uint32_t len)
{
	struct echo_shard *es = c->es;
	struct qent *e;
	void *p;

	if (!g_cfg.sockperf)
		return plain_spill(sh, c, data, len);
	if (c->qn) {
		e = &c->sp->in[(c->sp->qh + c->qn - 1) % QMAX];
		if (e->spill && e->off + e->len + len <= es->buf_size) {
			memcpy((uint8_t *)e->buf + e->off + e->len, data, len);
			e->len += len;
			c->sp->qbytes += len;
			return true;
		}
	}
	if (es->spill_bytes + es->buf_size > es->spill_max)
		return false;
	p = rp_pool_alloc(rp_shard_pool(sh), es->buf_size);
	if (!p)
		return false;
	es->spill_bytes += es->buf_size;
	memcpy(p, data, len);
	e = &c->sp->in[(c->sp->qh + c->qn) % QMAX];
	e->buf = p;
	e->off = 0;
	e->len = len;
	e->spill = true;
	c->qn++;
	c->sp->qbytes += len;
	ST_ADD(es, spilled, 1);
	return true;
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

	while (c->sp->acc_len - pos >= SP_HDR) {
		uint8_t *f = c->sp->acc + pos;
		uint32_t len = be32(f + 10);
		uint16_t flags = (uint16_t)(f[8] << 8 | f[9]);
		bool reply = (flags & SP_F_CLIENT) && !(flags & SP_F_WARMUP) && (flags & SP_F_PONG);

		if (len < SP_HDR || len > SP_MAX_FRAME) {
			ok = false;
			break;
		}
		if (c->sp->acc_len - pos < len)
			break;
		if (reply) {
			if (c->sp->out_len + len > SP_OUT)
				break; /* no room: parse again after the next send */
			memcpy(c->sp->out + c->sp->out_len, f, len);
			flags &= (uint16_t)~SP_F_CLIENT;
			c->sp->out[c->sp->out_len + 8] = (uint8_t)(flags >> 8);
			c->sp->out[c->sp->out_len + 9] = (uint8_t)flags;
			c->sp->out_len += len;
			ST_ADD(c->es, replies, 1);
		}
		ST_ADD(c->es, frames, 1);
		pos += len;
	}
	if (pos) {
		memmove(c->sp->acc, c->sp->acc + pos, c->sp->acc_len - pos);
		c->sp->acc_len -= pos;
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
		if (!c->qn || c->sp->acc_len == SP_ACC)
			return true;
		while (c->qn && c->sp->acc_len < SP_ACC) {
			struct qent *e = &c->sp->in[c->sp->qh];
			uint32_t take = SP_ACC - c->sp->acc_len;

			if (take > e->len)
				take = e->len;
			memcpy(c->sp->acc + c->sp->acc_len, (uint8_t *)e->buf + e->off, take);
			c->sp->acc_len += take;
			e->off += take;
			e->len -= take;
			c->sp->qbytes -= take;
			if (!e->len)
				q_pop(sh, c);
		}
		if (c->sp->acc_len == SP_ACC && c->sp->out_len + SP_HDR > SP_OUT)
			return sockperf_parse(c); /* wait for the send to make room */
	}
}

/* ---- sending ---- */

static void maybe_resume(struct rp_shard *sh, struct conn *c)
{
	if (c->paused && !c->eof && !c->recv_on && queued_bytes(c) <= CONN_RESUME &&
	    c->qn < Q_PAUSE / 2 && (!c->qn || !buffers_short(sh, c->es))) {
		c->paused = false;
		conn_recv(sh, c);
	}
}

/* Sockperf mode: a reply send completed (plain mode's sends are the
 * queue's; their entries come back through plain_released). */
static void on_sent(struct rp_shard *sh, void *arg, const struct rp_cqe *cq)
{
	struct conn *c = arg;
	uint32_t left = cq->res > 0 ? (uint32_t)cq->res : 0;

	c->sending = false;
	if (cq->res < 0) {
		fail(sh, c, cq->res);
		drop_queue(sh, c);
		conn_put(c);
		return;
	}
	if (left)
		c->last_tick = c->es->tick;
	ST_ADD(c->es, bytes_out, left);
	c->sp->sending_off += left;
	if (c->sp->sending_off == c->sp->sending_len)
		c->sp->sending_len = c->sp->sending_off = 0;
	if (!c->failed && !sockperf_pump(sh, c)) {
		ST_ADD(c->es, malformed, 1);
		fail(sh, c, -EPROTO);
	}
	if (c->failed)
		drop_queue(sh, c);
	conn_kick(sh, c);
	maybe_resume(sh, c);
	conn_maybe_close(sh, c);
	conn_put(c);
}

static void conn_kick(struct rp_shard *sh, struct conn *c)
{
	struct rp_op *op;

	if (!g_cfg.sockperf) {
		/* one sendmsg of what is queued, unless one is in flight: its
		 * completion sends the rest (errors come through q_error) */
		if (c->q && !c->failed)
			rp_outq_flush(c->q);
		return;
	}
	if (c->sending || c->failed)
		return;
	{
		if (!c->sp->sending_len) {
			uint8_t *t = c->sp->sending_buf;

			if (!c->sp->out_len)
				return;
			/* swap: the replies that piled up become what we send */
			c->sp->sending_buf = c->sp->out;
			c->sp->out = t;
			c->sp->sending_len = c->sp->out_len;
			c->sp->sending_off = 0;
			c->sp->out_len = 0;
		}
		op = rp_send(sh, c->fd, c->sp->sending_buf + c->sp->sending_off,
			     c->sp->sending_len - c->sp->sending_off, MSG_NOSIGNAL, on_sent, c);
	}
	if (!op) {
		fail(sh, c, -errno);
		return;
	}
	c->sending = true;
	c->ops++;
}

/* ---- receiving ---- */

static void pause_recv(struct rp_shard *sh, struct conn *c)
{
	if (rp_cancel_op(sh, c->recv_op))
		return; /* the SQ stayed full: keep reading; QMAX bounds it */
	c->paused = true;
	c->cancelling = true;
	ST_ADD(c->es, paused, 1);
}

/* Queue a received buffer within the connection's budget; true when the
 * connection is heavy while buffers are short (the caller pauses it). */
static bool queue_buf(struct rp_shard *sh, struct conn *c, const struct rp_cqe *cq)
{
	bool short_now = false;
	struct qent *e;

	/* the common case costs one compare: an idle connection's first buffer */
	if (c->nbufs && (c->nbufs >= CONN_BUFS || (short_now = buffers_short(sh, c->es)))) {
		if (spill(sh, c, cq->buf, (uint32_t)cq->res)) {
			rp_buf_put(sh, cq->bid);
			return short_now;
		}
		/* no spill memory left: keep the buffer, and stop this one */
		short_now = true;
	}
	if (!g_cfg.sockperf) {
		plain_push(sh, c, cq);
		return short_now;
	}
	e = &c->sp->in[(c->sp->qh + c->qn) % QMAX];
	e->buf = cq->buf;
	e->bid = cq->bid;
	e->off = 0;
	e->len = (uint32_t)cq->res;
	e->spill = false;
	c->qn++;
	c->nbufs++;
	c->sp->qbytes += (uint32_t)cq->res;
	return short_now;
}

static void on_recv(struct rp_shard *sh, void *arg, const struct rp_cqe *cq)
{
	struct conn *c = arg;
	bool more = cq->flags & RP_CQE_MORE, heavy = false;

	if (!more) {
		c->recv_on = false;
		c->recv_op = NULL;
		c->cancelling = false;
	}
	if (cq->res > 0 && cq->buf) {
		ST_ADD(c->es, bytes_in, (uint64_t)cq->res);
		c->last_tick = c->es->tick;
		if (c->failed || c->qn == QMAX) {
			/* QMAX: the peer sent far past our pause; refuse it */
			rp_buf_put(sh, cq->bid);
			if (!c->failed)
				fail(sh, c, -ENOBUFS);
		} else {
			heavy = queue_buf(sh, c, cq);
			if (g_cfg.sockperf && !sockperf_pump(sh, c)) {
				ST_ADD(c->es, malformed, 1);
				fail(sh, c, -EPROTO);
			}
		}
		if (!c->failed) {
			conn_kick(sh, c);
			if (more && !c->paused && !c->cancelling &&
			    (heavy || queued_bytes(c) >= CONN_PAUSE || c->qn >= Q_PAUSE))
				pause_recv(sh, c);
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

/* ---- idle timeout ---- */

static void on_tick(struct rp_shard *sh, void *arg, const struct rp_cqe *cq)
{
	struct echo_shard *es = arg;
	struct conn *c, *next;

	(void)cq;
	if (rp_shard_stopping(sh))
		return;
	es->tick++;
	outq_gauge(sh, es);
	rp_app_accept_poke(sh, &es->acc);
	for (c = es->conns; c; c = next) {
		next = c->next; /* only c can go below */
		if (c->q && rp_outq_pending(c->q) != c->tick_pending) {
			/* a send moved (part of) what is queued: progress */
			c->tick_pending = rp_outq_pending(c->q);
			c->last_tick = es->tick;
		}
		if (c->closing || c->failed || es->tick - c->last_tick <= g_cfg.idle_ticks)
			continue;
		ST_ADD(es, idle_closed, 1);
		c->ops++;
		fail(sh, c, -ETIMEDOUT);
		conn_put(c);
	}
	(void)arm_tick(sh, es); /* -EBUSY: the next close tries again */
}

/* The timer is reserved (echo_init), so an empty pool cannot stop the
 * idle timeouts; only a full SQ the kernel keeps refusing can (-EBUSY),
 * and then the next connection close tries again. */
static int arm_tick(struct rp_shard *sh, struct echo_shard *es)
{
	return rp_timer_arm(sh, es->tick_timer, g_cfg.tick_ns, on_tick, es);
}

/* ---- accepting ---- */

static void on_accept(struct rp_shard *sh, void *arg, const struct rp_cqe *cq)
{
	struct echo_shard *es = arg;
	int one = 1, fd = rp_app_accepted(sh, &es->acc, cq);
	struct conn *c;

	if (fd < 0)
		return;
	ST_ADD(es, accepted, 1);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c = rp_pool_alloc(rp_shard_pool(sh), sizeof(*c));
	if (!c) {
		close(fd); /* pool exhausted */
		ST_ADD(es, conn_nomem, 1);
		return;
	}
	memset(c, 0, sizeof(*c));
	c->es = es;
	c->fd = fd;
	c->last_tick = es->tick;
	c->ops = 1; /* our own reference until set-up is done */
	c->next = es->conns;
	if (es->conns)
		es->conns->prev = c;
	es->conns = c;
	ST_ADD(es, live, 1);
	if (!g_cfg.sockperf && plain_queue_open(sh, c)) {
		c->eof = c->failed = true;
		conn_maybe_close(sh, c);
		conn_put(c);
		return;
	}
	if (g_cfg.sockperf) {
		c->sp = rp_pool_alloc(rp_shard_pool(sh), sizeof(*c->sp));
		if (c->sp) {
			memset(c->sp, 0, sizeof(*c->sp));
			c->sp->acc = rp_pool_alloc(rp_shard_pool(sh), SP_ACC);
			c->sp->out = rp_pool_alloc(rp_shard_pool(sh), SP_OUT);
			c->sp->sending_buf = rp_pool_alloc(rp_shard_pool(sh), SP_OUT);
		}
		if (!c->sp || !c->sp->acc || !c->sp->out || !c->sp->sending_buf) {
			ST_ADD(es, conn_nomem, 1);
			c->eof = c->failed = true;
			conn_maybe_close(sh, c);
			conn_put(c);
			return;
		}
	}
	conn_recv(sh, c);
	conn_maybe_close(sh, c);
	conn_put(c);
	pool_gauge(sh, es);
}

/* ---- shard hooks ---- */

static int echo_init(struct rp_shard *sh, void *arg)
{
	struct echo_cfg *cfg = arg;
	unsigned id = rp_shard_id(sh);
	struct echo_shard *es = calloc(1, sizeof(*es));
	struct rp_pool_stats ps;
	int ret;

	if (!es)
		return -ENOMEM;
	/* the listener is the shard's from here: its stop or fini closes it */
	es->id = id;
	es->sh = sh;
	es->acc = (struct rp_app_accept){ .cmd = "echo", .id = id, .lfd = cfg->lfds[id],
					  .backoff_ns = ACCEPT_BACKOFF_NS, .cb = on_accept, .arg = es,
					  .errors = &es->st.accept_errors,
					  .rearm_failed = &es->st.rearm_failed,
					  .drain_retries = &es->st.drain_retries,
					  .drain_reset = &es->st.drain_reset };
	cfg->lfds[id] = -1;
	cfg->es[id] = es;
	es->buf_count = rp_buf_count(sh);
	es->buf_size = rp_buf_size(sh);
	es->holder = calloc(es->buf_count, sizeof(*es->holder));
	if (!es->holder)
		return -ENOMEM;
	es->spill_max = cfg->spill_max;
	rp_pool_stats(rp_shard_pool(sh), &ps);
	es->pool_bytes = ps.arena_bytes;
	es->page_kind = ps.page_kind;
	es->node = ps.numa_node;
	es->cpu = rp_runtime_shard_cpu(rp_shard_runtime(sh), id);
	if (cfg->fault_init == (int)id)
		return -ENOMEM;
	ret = rp_app_accept_start(sh, &es->acc);
	if (ret)
		return ret;
	if (cfg->idle_s) {
		es->tick_timer = rp_timer_new(sh);
		if (!es->tick_timer)
			return -ENOMEM;
		ret = arm_tick(sh, es);
		if (ret)
			return ret;
	}
	return 0;
}

/* SIGQUIT's drain (rp_app_run_drain), on the shard's thread: stop the
 * accept (the connections the kernel had queued are taken in first and
 * echoed as any other, server.h); connections go on until their peers
 * close (or the idle timeout). Returns the connections left (the
 * shard's own gauge). */
static unsigned echo_drain(struct rp_shard *sh)
{
	struct echo_shard *es = g_cfg.es[rp_shard_id(sh)];

	if (!es)
		return 0;
	rp_app_accept_close(sh, &es->acc); /* a held listener: another pass */
	return (unsigned)es->st.live + es->acc.held;
}

static void echo_stop(struct rp_shard *sh, void *arg)
{
	struct echo_cfg *cfg = arg;
	struct echo_shard *es = cfg->es[rp_shard_id(sh)];

	/* the engine cancels the accept and every recv/send next */
	if (es)
		rp_app_accept_stop(sh, &es->acc);
}

/* Runs also when this shard's init failed or another's did (no stop then). */
static void echo_fini(struct rp_shard *sh, void *arg)
{
	struct echo_cfg *cfg = arg;
	struct echo_shard *es = cfg->es[rp_shard_id(sh)];

	if (es && es->acc.lfd >= 0) {
		close(es->acc.lfd);
		es->acc.lfd = -1;
	}
	if (es) {
		outq_gauge(sh, es);
		rp_app_accept_fini(sh, &es->acc);
		rp_timer_free(sh, es->tick_timer);
		es->tick_timer = NULL;
	}
}

/* ---- main ---- */

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
			"shard %u: conns %llu live %llu closed %llu in %llu B out %llu B frames %llu replies %llu "
			"malformed %llu resets %llu accept_errors %llu accept_rearm_failed %llu "
			"drain_retries %llu drain_reset %llu paused %llu spilled %llu idle_closed %llu conn_nomem %llu | ops %llu cqes %llu "
			"submits %llu cqes/submit %.2f wakeups %llu enobufs %llu rearms %llu "
			"nomem %llu sq_full %llu cq_overflow %llu cancelled %llu other_errors %llu "
			"pool_live %llu B outq_stalls %llu\n",
			i, (unsigned long long)e.accepted, (unsigned long long)e.live,
			(unsigned long long)e.closed,
			(unsigned long long)e.bytes_in, (unsigned long long)e.bytes_out,
			(unsigned long long)e.frames, (unsigned long long)e.replies,
			(unsigned long long)e.malformed, (unsigned long long)e.resets,
			(unsigned long long)e.accept_errors, (unsigned long long)e.rearm_failed,
			(unsigned long long)e.drain_retries, (unsigned long long)e.drain_reset,
			(unsigned long long)e.paused, (unsigned long long)e.spilled,
			(unsigned long long)e.idle_closed, (unsigned long long)e.conn_nomem,
			(unsigned long long)s.ops_submitted, (unsigned long long)s.ops_completed,
			(unsigned long long)s.submits,
			s.submits ? (double)s.ops_completed / (double)s.submits : 0.0,
			(unsigned long long)s.wakeups, (unsigned long long)s.enobufs,
			(unsigned long long)s.rearms, (unsigned long long)s.nomem,
			(unsigned long long)s.sq_full, (unsigned long long)s.cq_overflow,
			(unsigned long long)s.err_cancelled, (unsigned long long)s.err_other,
			(unsigned long long)e.pool_live, (unsigned long long)e.outq_stalls);
	}
	fflush(f);
}

static void stats_now(void *rt)
{
	print_stats(rt, stdout);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ringplane echo --listen HOST:PORT [--shards N] [--cpus LIST] [--sockperf]\n"
		"                      [--idle-timeout S] [--stats-interval S] [--no-pin] [--sqpoll]\n"
		"                      [--busy-poll US] [--drain-timeout S] [--pool-mb N]\n"
		"  --listen HOST:PORT   address to serve: IPv4, [IPv6] or a name; port 0: any\n"
		"                       (the port is printed)\n"
		"  --shards N           shards, 1..256 (default: one per core of the placement plan)\n"
		"  --cpus LIST          CPUs for the shards (cpulist, e.g. 0-3)\n"
		"  --sockperf           answer sockperf's TCP frames as 'sockperf server' does\n"
		"  --idle-timeout S     close connections with no read or write for S seconds\n"
		"                       (default %d, 0: never)\n"
		"  --stats-interval S   print per-shard counters every S seconds (also on SIGUSR1)\n"
		"  --drain-timeout S    on SIGQUIT stop accepting, let connections go on until their\n"
		"                       peers close and exit 0 when none is left,\n"
		RP_APP_DRAIN_HELP("                       ")
		"  --no-pin             do not pin shard threads\n"
		"  --sqpoll             IORING_SETUP_SQPOLL rings\n"
		"  --busy-poll US       poll for completions up to US microseconds before sleeping\n"
		"  --pool-mb N          each shard's memory pool, reserved and populated at start:\n"
		"                       %u..%u MB (default 128, 512 with --sockperf);\n"
		RP_APP_POOL_HELP("                       "),
		IDLE_DEFAULT_S, POOL_MB_MIN, RP_APP_POOL_MB_MAX);
}

#ifdef RP_FAULTS
/* A test hook's value (see the top of this file): a whole number, else -1. */
static long fault_env(const char *name)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (!v || !*v)
		return -1;
	errno = 0;
	n = strtol(v, &end, 10);
	return errno || *end || n < 0 || n > 1000000 ? -1 : n;
}

static void read_faults(void)
{
	g_cfg.fault_init = (int)fault_env("RP_ECHO_FAULT_INIT");
}
#else
/* the hooks are compiled into the faults build only: a release binary
 * reads no test variable from its environment */
static void read_faults(void)
{
	g_cfg.fault_init = -1;
}
#endif

static void print_shards(void)
{
	for (unsigned i = 0; i < g_cfg.shards; i++) {
		const struct echo_shard *es = g_cfg.es[i];
		char cpu[16] = "unpinned";

		if (!es)
			continue;
		if (es->cpu >= 0)
			snprintf(cpu, sizeof(cpu), "cpu %d", es->cpu);
		fprintf(stderr, "ringplane echo: shard %u: %s, pool %zu MB on %s pages", i, cpu,
			es->pool_bytes >> 20, rp_pool_page_kind_name(es->page_kind));
		if (es->node >= 0)
			fprintf(stderr, ", node %d", es->node);
		fputc('\n', stderr);
	}
}

int rp_cmd_echo(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "shards", required_argument, NULL, 's' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "sockperf", no_argument, NULL, 'p' },
		{ "idle-timeout", required_argument, NULL, 't' },
		{ "stats-interval", required_argument, NULL, 'i' },
		{ "no-pin", no_argument, NULL, 'n' },
		{ "sqpoll", no_argument, NULL, 'q' },
		{ "busy-poll", required_argument, NULL, 'b' },
		{ "drain-timeout", required_argument, NULL, 'D' },
		{ "pool-mb", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct rp_app_drain drain = { .step = echo_drain };
	struct rp_runtime_config rc = { 0 };
	struct rp_runtime *rt = NULL;
	struct rp_app_opts o = { .pool_mb_min = POOL_MB_MIN };
	char idle[16] = "off";
	unsigned tick_ms;
	sigset_t sigs;
	int c, ret, status = RP_EXIT_FAIL;

	optind = 1;
	g_cfg.idle_s = IDLE_DEFAULT_S;
	while ((c = rp_getopt("ringplane echo", argc, argv, ":h", opts)) != -1) {
		/* one pool a shard: the registry's bound (RP_POOL_MAX_POOLS_) */
		int taken = rp_app_server_opt("echo", c, optarg, 256, &rc, &o);

		if (taken < 0)
			return RP_EXIT_USAGE;
		if (taken)
			continue;
		switch (c) {
		case 'p':
			g_cfg.sockperf = true;
			break;
		case 't':
			if (rp_arg_uint("echo", "--idle-timeout", optarg, 0, 86400, &g_cfg.idle_s))
				return RP_EXIT_USAGE;
			break;
		case 'q':
			rc.sqpoll = true;
			break;
		case 'h':
			usage(stdout);
			return RP_EXIT_OK;
		default: /* rp_getopt said which */
			return RP_EXIT_USAGE;
		}
	}
	if (rp_args_none_left("ringplane echo", argc, argv))
		return RP_EXIT_USAGE;
	if (rp_arg_required("ringplane echo", "--listen", o.listen))
		return RP_EXIT_USAGE;
	read_faults();
	/* Ticks of a quarter of the timeout, 100 ms .. 1 s: a connection goes
	 * between S and S + one tick after its last progress. */
	tick_ms = g_cfg.idle_s * 1000u / 4;
	tick_ms = tick_ms < 100 ? 100 : tick_ms > 1000 ? 1000 : tick_ms;
	g_cfg.tick_ns = (uint64_t)tick_ms * 1000000u;
	g_cfg.idle_ticks = ((uint64_t)g_cfg.idle_s * 1000u + tick_ms - 1) / tick_ms;

	/* One fd per connection: take the hard limit, as servers do. Signals
	 * are taken synchronously by this thread; shards inherit the mask. */
	rp_app_raise_nofile();
	rp_app_block_signals(&sigs);

	rc.init = echo_init;
	rc.on_stop = echo_stop;
	rc.fini = echo_fini;
	rc.arg = &g_cfg;
	rc.bufs = 1024;
	rc.buf_size = 16384;
	rc.pool_bytes = (size_t)(o.pool_mb ? o.pool_mb : g_cfg.sockperf ? 512u : 128u) << 20;
	/* A quarter of the pool for copies of what slow readers owe: the
	 * rest holds the provided buffers (16 MB), the connections (8 KB each,
	 * 384 KB more with --sockperf) and the ops. */
	g_cfg.spill_max = rc.pool_bytes / SPILL_FRAC;
	g_cfg.shards = rp_app_runtime_listen("echo", &rc, &o, &rt, &g_cfg.lfds);
	g_cfg.es = g_cfg.shards ? calloc(g_cfg.shards, sizeof(*g_cfg.es)) : NULL;
	if (!g_cfg.es)
		goto out;
	if (rp_app_start("echo", rt, &o.ss))
		goto out;
	if (g_cfg.idle_s)
		snprintf(idle, sizeof(idle), "%u s", g_cfg.idle_s);
	fprintf(stderr, "ringplane echo: %u shard%s, %s mode, idle timeout %s, %s\n", g_cfg.shards,
		g_cfg.shards == 1 ? "" : "s", g_cfg.sockperf ? "sockperf" : "plain", idle,
		rp_engine_features(rt));
	print_shards();

	ret = rp_app_run_drain(rt, &sigs, &o, stats_now, rt, &drain);
	print_stats(rt, stdout);
	status = ret ? RP_EXIT_FAIL : RP_EXIT_OK;
out:
	rp_app_close_listeners(g_cfg.lfds, g_cfg.shards);
	rp_runtime_destroy(rt);
	for (unsigned i = 0; g_cfg.es && i < g_cfg.shards; i++) {
		if (g_cfg.es[i])
			free(g_cfg.es[i]->holder);
		free(g_cfg.es[i]);
	}
	free(g_cfg.es);
	free(g_cfg.lfds);
	return status;
}
