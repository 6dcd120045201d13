/* SPDX-License-Identifier: MIT */
/*
 * The copy path of a relay direction: a multishot recv into the shard's
 * provided buffers, and sendmsg straight from those buffers (up to 16 per
 * send, one send in flight so bytes stay in order), continued where a short
 * send stopped. A buffer goes back to the ring once every byte of it was
 * sent. Memory per direction is bounded: at cfg.max_inflight bytes queued
 * the direction stops reading (its recv is cancelled) and resumes below
 * half. When the shard runs short of provided buffers, a direction that
 * holds some copies new data aside into pool memory and gives the buffer
 * back at once ("spilled"), so peers that do not read cannot starve the
 * others.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "relay_impl.h"

#define MAX_NODES 64	/* queued pieces per direction before pausing */
#define SPILL_HELD 2	/* a direction keeps this many buffers when the shard is short */

static void copy_kick(struct rdir *d);
static void copy_recv_arm(struct rdir *d);

static struct rp_relay_stats *stats(struct rdir *d)
{
	return &relay_shard_get(d->r->sh)->st;
}

static void node_free(struct rp_shard *sh, struct rnode *n)
{
	if (n->bid >= 0)
		rp_buf_put(sh, (uint16_t)n->bid);
	else
		rp_pool_free(n->ptr);
	rp_pool_free(n);
}

void relay_copy_drop(struct rdir *d)
{
	struct rp_shard *sh = d->r->sh;

	while (d->head) {
		struct rnode *n = d->head;

		d->head = n->next;
		node_free(sh, n);
	}
	d->tail = NULL;
	d->nodes = 0;
	d->queued = 0;
}

static bool shard_short_of_buffers(struct rp_shard *sh)
{
	unsigned total = rp_buf_count(sh);

	return total - rp_buf_out(sh) < total / 4;
}

static unsigned held_buffers(const struct rdir *d)
{
	unsigned held = 0;

	for (const struct rnode *n = d->head; n; n = n->next)
		held += n->bid >= 0;
	return held;
}

static int enqueue(struct rdir *d, const struct rp_cqe *c)
{
	struct rp_shard *sh = d->r->sh;
	struct rnode *n = rp_pool_alloc(rp_shard_pool(sh), sizeof(*n));

	if (!n)
		return -ENOMEM;
	n->next = NULL;
	n->ptr = c->buf;
	n->len = (uint32_t)c->res;
	n->off = 0;
	n->bid = c->bid;
	if (shard_short_of_buffers(sh) && held_buffers(d) >= SPILL_HELD) {
		char *copy = rp_pool_alloc(rp_shard_pool(sh), (size_t)c->res);

		if (copy) {
			memcpy(copy, c->buf, (size_t)c->res);
			rp_buf_put(sh, c->bid);
			n->ptr = copy;
			n->bid = -1;
			stats(d)->spilled++;
		}
	}
	if (d->tail)
		d->tail->next = n;
	else
		d->head = n;
	d->tail = n;
	d->nodes++;
	d->queued += (size_t)c->res;
	return 0;
}

int relay_copy_prime(struct rdir *d, const void *buf, size_t len)
{
	struct rp_shard *sh = d->r->sh;
	struct rnode *n;
	char *copy;

	if (!len)
		return 0;
	n = rp_pool_alloc(rp_shard_pool(sh), sizeof(*n));
	copy = rp_pool_alloc(rp_shard_pool(sh), len);
	if (!n || !copy || len > UINT32_MAX) {
		rp_pool_free(n);
		rp_pool_free(copy);
		return -ENOMEM;
	}
	memcpy(copy, buf, len);
	*n = (struct rnode){ .next = d->head, .ptr = copy, .len = (uint32_t)len, .bid = -1 };
	d->head = n;
	if (!d->tail)
		d->tail = n;
	d->nodes++;
	d->queued += len;
	return 0;
}

static bool over_limit(const struct rdir *d)
{
	return d->queued >= d->r->cfg.max_inflight || d->nodes >= MAX_NODES;
}

static bool under_resume(const struct rdir *d)
{
	return d->queued < d->r->cfg.max_inflight / 2 && d->nodes < MAX_NODES / 2;
}

/* Stop reading: the recv's final callback (-ECANCELED, or data) follows. */
static void pause_reading(struct rdir *d)
{
	if (d->paused || !d->recv_op)
		return;
	d->paused = true;
	stats(d)->paused++;
	if (!rp_cancel(d->r->sh, d->recv_op, NULL, NULL))
		relay_fail(d->r, -errno, RP_RELAY_END_NOMEM);
}

/* Everything queued was sent and nothing reads: pass EOF on, or hand over
 * to another path. */
static void drained(struct rdir *d)
{
	if (!d->head && !d->sending && !d->recv_op && (d->eof || d->paused))
		relay_dir_quiet(d);
}

static bool may_resume(const struct rdir *d)
{
	return d->paused && under_resume(d) && !d->recv_op && d->path == PATH_COPY &&
	       d->want == PATH_COPY;
}

static void on_recv(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct rdir *d = arg;
	struct rp_relay *r = d->r;
	bool last = !(c->flags & RP_CQE_MORE);

	if (c->res > 0) {
		if (r->ended) {
			rp_buf_put(sh, c->bid);
		} else if (enqueue(d, c)) {
			rp_buf_put(sh, c->bid);
			relay_fail(r, -ENOMEM, RP_RELAY_END_NOMEM);
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
		relay_fail(r, -errno, errno == ESHUTDOWN ? RP_RELAY_END_ABORT : RP_RELAY_END_NOMEM);
		return;
	}
	r->pending++;
}

static void advance(struct rdir *d, size_t n)
{
	struct rp_shard *sh = d->r->sh;

	d->queued -= n;
	while (n && d->head) {
		struct rnode *h = d->head;
		size_t left = h->len - h->off;

		if (n < left) {
			h->off += (uint32_t)n;
			return;
		}
		n -= left;
		d->head = h->next;
		if (!d->head)
			d->tail = NULL;
		d->nodes--;
		node_free(sh, h);
	}
}

static void on_writable(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct rdir *d = arg;

	(void)sh;
	d->sending = false;
	if (!d->r->ended && c->res < 0)
		relay_fail(d->r, c->res, RP_RELAY_END_RESET);
	else
		copy_kick(d);
	relay_op_done(d->r);
}

static void on_sent(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct rdir *d = arg;
	struct rp_relay *r = d->r;

	d->sending = false;
	if (!r->ended) {
		if (c->res > 0) {
			advance(d, (size_t)c->res);
			relay_moved(d, (size_t)c->res, false);
		} else if (c->res == -EAGAIN) {
			/* a kernel that honours O_NONBLOCK on sockets: wait for room */
			if (rp_poll(sh, d->to, POLLOUT, on_writable, d)) {
				d->sending = true;
				r->pending++;
			} else {
				relay_fail(r, -errno, RP_RELAY_END_NOMEM);
			}
		} else {
			relay_fail(r, c->res < 0 ? c->res : -EPIPE, RP_RELAY_END_RESET);
		}
	}
	if (!r->ended) {
		copy_kick(d);
		if (may_resume(d)) {
			d->paused = false;
			copy_recv_arm(d);
		}
		drained(d);
	}
	relay_op_done(r);
}

static void copy_kick(struct rdir *d)
{
	struct rp_relay *r = d->r;
	unsigned n = 0;

	if (d->sending || !d->head || r->ended)
		return;
	for (struct rnode *p = d->head; p && n < 16; p = p->next, n++) {
		d->iov[n].iov_base = p->ptr + p->off;
		d->iov[n].iov_len = p->len - p->off;
	}
	memset(&d->msg, 0, sizeof(d->msg));
	d->msg.msg_iov = d->iov;
	d->msg.msg_iovlen = n;
	if (!rp_sendmsg(r->sh, d->to, &d->msg, MSG_NOSIGNAL, on_sent, d)) {
		relay_fail(r, -errno, errno == ESHUTDOWN ? RP_RELAY_END_ABORT : RP_RELAY_END_NOMEM);
		return;
	}
	d->sending = true;
	r->pending++;
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
};
