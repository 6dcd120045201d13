/* SPDX-License-Identifier: MIT */
/*
 * The copy path of a relay direction: a multishot recv into the shard's
 * provided buffers, and the received buffers pushed as they are (no copy)
 * onto the direction's output queue (rp_outq, net/outq.c): one send of
 * everything queued per round (a plain send for one buffer, a sendmsg for
 * more), one send in flight so bytes stay in order,
 * a short send continued where it stopped. A buffer goes back to the ring
 * when the queue releases it (every byte of it sent). The queue exists
 * only while bytes are queued: an idle direction holds none.
 * Memory per direction is bounded: at cfg.max_inflight bytes queued
 * the direction stops reading (its recv is cancelled) and resumes below
 * half. When the shard runs short of provided buffers, a direction that
 * holds some copies new data aside into pool memory and gives the buffer
 * back at once ("spilled"), so peers that do not read cannot starve the
 * others.
 *
 * A received buffer that cannot be queued for lack of pool memory (its
 * record, the queue's node, the queue itself, a spill's copy) is not lost
 * and does not end the relay: it is parked, in the shard's park table (a
 * slot per provided buffer: parking needs no memory), the direction stops
 * reading, and the shard's retry tick (relay_core.c, every 1 ms) queues
 * the parked pieces oldest first once memory is back; everything received
 * meanwhile is parked behind them, so bytes stay in order. Reading resumes
 * once none is parked (and the queue is under its bound). The cancel that
 * stops reading takes no pool memory (rp_cancel_op), so parking is
 * bounded by what was in flight when memory ran out. A recv that cannot
 * be armed, or a cancel the full SQ refused, is retried the same way.
 */
#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "outq_impl.h"
#include "relay_impl.h"

#define MAX_NODES 64	/* queued pieces per direction before pausing */
#define SPILL_HELD 2	/* a direction keeps this many buffers when the shard is short */

/* What a push needs back at its release: a provided buffer or a pool block. */
struct rpush {
	struct rdir *d;
	char *block;	/* pool memory (spilled, primed), or NULL */
	int32_t bid;	/* provided buffer id, or -1 */
};

static void copy_kick(struct rdir *d);
static void copy_recv_arm(struct rdir *d);
static void park_drop(struct rdir *d);

static struct rp_relay_stats *stats(struct rdir *d)
{
	return &relay_shard_get(d->r->sh)->st;
}

static void q_close(struct rdir *d)
{
	struct rp_outq *q = d->q;

	if (q) {
		d->q = NULL; /* the releases that follow see the queue gone */
		rp_outq_close(q);
	}
}

/* The relay ends: what is queued is dropped (released now, or when the
 * send holding it completes: each release drops the relay reference its
 * push took). */
static void copy_end(struct rdir *d)
{
	park_drop(d);
	q_close(d);
}

void relay_copy_drop(struct rdir *d)
{
	park_drop(d);
	q_close(d);
}

static void on_q_error(struct rp_outq *q, void *arg, int err)
{
	struct rdir *d = arg;

	(void)q;
	if (!d->r->ended)
		relay_fail(d->r, err, RP_RELAY_END_RESET);
}

static bool shard_short_of_buffers(struct rp_shard *sh)
{
	unsigned total = rp_buf_count(sh);

	return total - rp_buf_out(sh) < total / 4;
}

static bool over_limit(const struct rdir *d)
{
	return d->queued >= d->r->cfg.max_inflight || d->nodes >= MAX_NODES;
}

static bool under_resume(const struct rdir *d)
{
	return d->queued < d->r->cfg.max_inflight / 2 && d->nodes < MAX_NODES / 2;
}

/* Cancel the recv: its final callback (-ECANCELED, or data) follows. The
 * cancel needs no pool memory (rp_cancel_op), so a direction parking
 * buffers for lack of memory still stops reading; one the full SQ refused
 * is retried by the shard's tick, and meanwhile what comes is parked or
 * queued. */
static void cancel_recv(struct rdir *d)
{
	int err = rp_cancel_op(d->r->sh, d->recv_op);

	if (!err || (err == -EBUSY && !relay_wait(d, WAIT_CANCEL)))
		return;
	relay_fail(d->r, err, RP_RELAY_END_NOMEM);
}

/* Stop reading (back-pressure, a path switch). */
static void pause_reading(struct rdir *d)
{
	if (d->paused || !d->recv_op)
		return;
	d->paused = true;
	stats(d)->paused++;
	cancel_recv(d);
}

/* Everything queued was sent, none is parked and nothing reads: pass EOF
 * on, or hand over to another path. */
static void drained(struct rdir *d)
{
	if (!d->nodes && !d->nparked && !d->recv_op && (d->eof || d->paused))
		relay_dir_quiet(d);
}

static bool may_resume(const struct rdir *d)
{
	return d->paused && !d->nparked && under_resume(d) && !d->recv_op && d->path == PATH_COPY &&
	       d->want == PATH_COPY;
}

/* The queue is done with a piece: sent in full, or dropped (an error, the
 * end). Runs inside the queue's send completion (or its close). */
static void push_release(void *arg, const void *buf, size_t len)
{
	struct rpush *p = arg;
	struct rdir *d = p->d;
	struct rp_relay *r = d->r;
	bool sent = false;

	(void)buf;
	if (p->bid >= 0) {
		rp_buf_put(r->sh, (uint16_t)p->bid);
		d->held--;
	} else {
		rp_pool_free(p->block);
	}
	rp_pool_free(p);
	d->nodes--;
	d->queued -= len;
	if (d->q && !r->ended) {
		struct rp_outq_stats st;
		uint64_t n;

		/* pieces leave in order: the queue's sent bytes not yet counted
		 * cover this one, unless it was dropped by an error */
		rp_outq_stats(d->q, &st);
		n = st.plain_bytes - d->counted;
		if (n > len)
			n = len;
		if (n) {
			d->counted += n;
			relay_moved(d, (size_t)n, false);
		}
		sent = n == len;
	}
	if (sent) {
		if (!d->nodes)
			q_close(d); /* an idle direction holds no queue */
		if (may_resume(d)) {
			d->paused = false;
			copy_recv_arm(d);
		}
		drained(d);
	}
	relay_op_done(r);
}

/* Queue @len bytes at @ptr: a provided buffer (@bid >= 0) or a pool block
 * the queue's release frees. On failure both stay the caller's. */
static int push(struct rdir *d, char *ptr, size_t len, int32_t bid)
{
	struct rp_shard *sh = d->r->sh;
	struct rpush *p;
	int ret;

	if (!d->q) {
		struct rp_outq_opts o = {
			/* a flush per push: the send leaves with the loop's next
			 * submit, not a round later behind a NOP; the relay bounds
			 * itself (max_inflight), the queue need not; loopback and
			 * veth copy anyway, and a provided buffer is 16 KB */
			.flags = RP_OUTQ_MANUAL | RP_OUTQ_ZC_OFF,
			.max_bytes = (size_t)1 << 40,
			.on_error = on_q_error,
			.arg = d,
		};

		/* d->to is a socket: rp_relay_start asked (peer_socket_check),
		 * so the queue does not ask again for each direction */
		ret = outq_init_socket(sh, &d->q, d->to, &o);
		if (ret)
			return ret;
		d->counted = 0;
	}
	p = rp_pool_alloc(rp_shard_pool(sh), sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->d = d;
	p->block = bid >= 0 ? NULL : ptr;
	p->bid = bid;
	ret = rp_outq_push(d->q, ptr, len, push_release, p);
	if (ret) {
		rp_pool_free(p);
		return ret;
	}
	d->nodes++;
	d->queued += len;
	d->held += bid >= 0;
	d->r->pending++; /* the release drops it */
	return 0;
}

/* Queue the provided buffer @bid (@len bytes at @buf), or a copy of it
 * (spilled). On failure the buffer stays the caller's. */
static int enqueue(struct rdir *d, char *buf, size_t len, uint16_t bid)
{
	struct rp_shard *sh = d->r->sh;
	char *copy;
	int ret;

	if (shard_short_of_buffers(sh) && d->held >= SPILL_HELD &&
	    (copy = rp_pool_alloc(rp_shard_pool(sh), len))) {
		memcpy(copy, buf, len);
		ret = push(d, copy, len, -1);
		if (ret) {
			rp_pool_free(copy);
			return ret;
		}
		rp_buf_put(sh, bid);
		stats(d)->spilled++;
		return 0;
	}
	return push(d, buf, len, bid);
}

/* ---- parked buffers ---- */

/*
 * Keep the buffer of @c behind those parked already: 0, or -ENOBUFS (no
 * slot: the table has one per buffer, so only past 65535 buffers).
 *
 * How much can be parked. What holds by construction: a parked piece
 * holds its provided buffer, so never more than the ring (and the table
 * has a slot for each). What the code adds: the first park of a
 * direction stops its recv with a cancel that needs no memory
 * (cancel_recv: rp_cancel_op), sent with the loop's next submit; only an
 * SQ that stayed full delays it, to the next tick. What is parked after
 * that first park is what the kernel delivered to that recv before the
 * cancel reached it. How much that is, is the kernel's: the buffers free
 * in the ring and the bytes the socket holds at that moment, and (on a
 * DEFER_TASKRUN ring, whose completions are posted only inside the
 * shard's own enter, which submits before it waits) one enter's worth
 * of that recv's completions. Nothing here caps it below the ring: the
 * 3/4 of the ring that test_relay's pool_full_waits_* assert is a line
 * drawn from measurement (2 to 116 of 256 at once over 26 runs), not a
 * bound this code enforces. docs/net.md, "Waiting instead of cutting".
 */
static int park(struct rdir *d, const struct rp_cqe *c)
{
	struct relay_shard *rs = relay_shard_get(d->r->sh);
	struct relay_park *p;
	uint16_t i;

	if (rs->park_free != PARK_NONE) {
		i = rs->park_free;
		rs->park_free = rs->park[i].next;
	} else if (rs->park_fresh < rs->park_cap) {
		i = rs->park_fresh++;
	} else {
		rs->wst.park_full++;
		return -ENOBUFS;
	}
	p = &rs->park[i];
	p->buf = c->buf;
	p->len = (uint32_t)c->res;
	p->bid = c->bid;
	p->next = PARK_NONE;
	if (d->nparked)
		rs->park[d->park_tail].next = i;
	else
		d->park_head = i;
	d->park_tail = i;
	d->nparked++;
	rs->wst.parked++;
	if (++rs->wst.parked_now > rs->wst.parked_max)
		rs->wst.parked_max = rs->wst.parked_now;
	return 0;
}

/* The oldest parked piece is queued (or dropped): its slot goes back. */
static void park_pop(struct rdir *d, struct relay_shard *rs)
{
	uint16_t i = d->park_head;

	d->park_head = rs->park[i].next;
	rs->park[i].next = rs->park_free;
	rs->park_free = i;
	d->nparked--;
	rs->wst.parked_now--;
}

/* The relay ended: the parked buffers go back to the ring. */
static void park_drop(struct rdir *d)
{
	struct relay_shard *rs;

	if (!d->nparked)
		return;
	rs = relay_shard_get(d->r->sh);
	while (d->nparked) {
		rp_buf_put(d->r->sh, rs->park[d->park_head].bid);
		park_pop(d, rs);
	}
}

/* Queue the parked pieces, oldest first, while memory can be had. */
static void unpark(struct rdir *d)
{
	struct relay_shard *rs = relay_shard_get(d->r->sh);
	bool any = false;
	int ret = 0;

	while (d->nparked) {
		struct relay_park *p = &rs->park[d->park_head];

		ret = enqueue(d, p->buf, p->len, p->bid);
		if (ret)
			break;
		park_pop(d, rs);
		any = true;
	}
	if (any)
		copy_kick(d);
	if (d->r->ended || !d->nparked)
		return;
	if (ret != -ENOMEM || relay_wait(d, 0))
		relay_fail(d->r, ret == -ENOMEM ? -ENOMEM : ret, RP_RELAY_END_NOMEM);
}

/* rp_relay_start refuses a prime over RP_RELAY_PRIME_MAX, so its copy is
 * always one push of the queue (the old len <= UINT32_MAX guard could not
 * trigger) */
_Static_assert(RP_RELAY_PRIME_MAX <= RP_OUTQ_LEN_MAX, "a prime goes in one rp_outq_push");

int relay_copy_prime(struct rdir *d, const void *buf, size_t len)
{
	struct rp_shard *sh = d->r->sh;
	char *copy;

	if (!len)
		return 0;
	/* before anything else on @d: nothing is queued yet */
	copy = rp_pool_alloc(rp_shard_pool(sh), len);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, buf, len);
	if (push(d, copy, len, -1)) {
		rp_pool_free(copy);
		return -ENOMEM;
	}
	return 0;
}

/*
 * EOF came while bytes are still queued (typically an answer and its
 * server's close, read in one batch: the sendmsg of the answer is not even
 * submitted yet). Cork @to, so the tail of what is queued waits in the
 * socket for the shutdown(SHUT_WR) that follows the last send: tcp_send_fin
 * then sets FIN on that unsent tail instead of sending a segment of its own
 * (net/ipv4/tcp_output.c). The peer gets data and EOF in one segment and
 * one wake-up; on the churn row (wrk, Connection: close) that is 19.0
 * segments a connection instead of 20.0. Full-sized segments are not held
 * by the cork, and the shutdown always follows (or the relay ends and
 * closes), so nothing waits on its 200 ms ceiling. Not on a socket the
 * caller keeps (RP_RELAY_KEEP_FDS); EOPNOTSUPP on a non-TCP socket is
 * harmless.
 */
static void cork_for_fin(struct rdir *d)
{
	int one = 1;

	(void)setsockopt(d->to, IPPROTO_TCP, TCP_CORK, &one, sizeof(one));
}

static void on_recv(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct rdir *d = arg;
	struct rp_relay *r = d->r;
	bool last = !(c->flags & RP_CQE_MORE);

	if (c->res > 0) {
		/* behind a parked piece, a buffer is parked too: bytes in order */
		int ret = -ENOMEM;

		if (r->ended)
			ret = 0;
		else if (!d->nparked)
			ret = enqueue(d, c->buf, (size_t)c->res, c->bid);

		if (r->ended) {
			rp_buf_put(sh, c->bid);
		} else if (ret == -ENOMEM && !park(d, c)) {
			/* no memory to queue it: kept, and reading stops until the
			 * retry tick has queued every parked piece */
			d->started = true;
			if (relay_wait(d, 0)) {
				relay_fail(r, -ENOMEM, RP_RELAY_END_NOMEM); /* park_drop puts it */
			} else if (!d->paused) {
				d->paused = true;
				stats(d)->paused++;
				if (!last)
					cancel_recv(d);
			}
		} else if (ret) {
			rp_buf_put(sh, c->bid);
			relay_fail(r, ret, RP_RELAY_END_NOMEM);
		} else {
			d->started = true;
			relay_auto_read(d, (size_t)c->res, rp_buf_size(sh));
			if (over_limit(d))
				pause_reading(d);
			copy_kick(d);
		}
	}
	if (!last)
		return;
	d->recv_op = NULL;
	if (!r->ended) {
		if (c->res == 0) {
			d->eof = true;
			if (d->nodes && !(r->cfg.flags & RP_RELAY_KEEP_FDS))
				cork_for_fin(d);
		} else if (c->res == -ECANCELED && d->paused) {
			/* back-pressure or a path switch: resumed by the sends */
		} else if (c->res < 0) {
			relay_fail(r, c->res, RP_RELAY_END_RESET);
		}
		if (!r->ended) {
			if (may_resume(d)) {
				d->paused = false;
				copy_recv_arm(d);
			}
			drained(d);
		}
	}
	relay_op_done(r);
}

static void copy_recv_arm(struct rdir *d)
{
	struct rp_relay *r = d->r;

	if (r->ended || d->eof || d->paused || d->recv_op || d->path != PATH_COPY)
		return;
	d->recv_op = rp_recv_multishot(r->sh, d->from, on_recv, d);
	if (!d->recv_op) {
		int err = errno;

		/* no op (the pool empty, the SQ full): the tick arms it again */
		if ((err == ENOMEM || err == EBUSY) && !relay_wait(d, WAIT_REARM))
			return;
		relay_fail(r, -err, err == ESHUTDOWN ? RP_RELAY_END_ABORT : RP_RELAY_END_NOMEM);
		return;
	}
	r->pending++;
}

/* The shard's retry tick (relay_core.c): the cancel, the parked pieces,
 * the recv, in that order; reading resumes once nothing is parked. */
static void copy_retry(struct rdir *d)
{
	struct rp_relay *r = d->r;
	unsigned w = d->wait;

	d->wait &= (uint8_t)~(WAIT_CANCEL | WAIT_REARM);
	if ((w & WAIT_CANCEL) && d->recv_op && d->paused)
		cancel_recv(d);
	if (!r->ended && d->nparked)
		unpark(d);
	if (r->ended || d->nparked || d->path != PATH_COPY)
		return;
	if (w & WAIT_REARM)
		copy_recv_arm(d);
	if (may_resume(d)) {
		d->paused = false;
		copy_recv_arm(d);
	}
	drained(d);
}

/* Send what is queued unless a send is in flight (its completion sends
 * the rest). A failure runs on_q_error. */
static void copy_kick(struct rdir *d)
{
	if (d->q && d->nodes && !d->r->ended)
		(void)rp_outq_flush(d->q);
}

static int copy_start(struct rdir *d)
{
	d->path = PATH_COPY;
	d->paused = false;
	copy_kick(d);
	copy_recv_arm(d);
	drained(d);
	return 0;
}

void relay_copy_send_only(struct rdir *d)
{
	d->path = PATH_COPY;
	d->paused = true;
	copy_kick(d);
	drained(d);
}

static void copy_quiesce(struct rdir *d)
{
	if (d->recv_op)
		pause_reading(d);
	else
		d->paused = true;
	drained(d);
}

const struct relay_path relay_copy_path = {
	.name = "copy",
	.start = copy_start,
	.quiesce = copy_quiesce,
	.drop = relay_copy_drop,
	.end = copy_end,
	.retry = copy_retry,
};
