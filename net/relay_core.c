/* SPDX-License-Identifier: MIT */
/*
 * The relayed pair's core (include/ringplane/relay.h): per-shard state and
 * counters, the end (resets, closes, done()), half-close, bytes moved and
 * auto mode's choice of path. The transfer paths (relay_copy.c,
 * relay_splice.c, relay_uring.c) report here; this file reaches them only
 * through the relay's table of paths (r->paths), which relay.c sets, so no
 * two files call each other.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "relay_impl.h"

#define AUTO_STREAK 3	   /* full reads in a row before splicing (HAProxy) */
#define AUTO_MIN_READ 4096 /* a splice read below this and below its room is "short" */
#define AUTO_IDLE_NS (1000ull * 1000 * 1000) /* a streak restarts after this without a read (HAProxy) */

/* ---- per-shard state ---- */

static __thread struct relay_shard *tls_rs;

struct relay_shard *relay_shard_get(struct rp_shard *sh)
{
	struct relay_shard *rs = tls_rs;
	struct timespec res;
	unsigned cap;

	if (rs && rs->sh == sh)
		return rs;
	/* first use on this thread (or a new runtime on it): a fresh state;
	 * the old one belonged to a shard that has stopped. Its park table
	 * has a slot per provided buffer (16 B each: 16 KB for 1024). */
	cap = rp_buf_count(sh);
	cap = cap < PARK_NONE ? cap : PARK_NONE;
	rs = calloc(1, sizeof(*rs) + cap * sizeof(rs->park[0]));
	if (!rs)
		return NULL;
	rs->sh = sh;
	rs->park_cap = (uint16_t)cap;
	rs->park_free = PARK_NONE;
	/* the idle sweep's slack (relay.c): a tick where getres fails */
	if (!clock_getres(CLOCK_MONOTONIC_COARSE, &res))
		rs->coarse_res_ns = (uint64_t)res.tv_sec * 1000000000u + (uint64_t)res.tv_nsec;
	else
		rs->coarse_res_ns = 10u * 1000 * 1000;
	tls_rs = rs;
	return rs;
}

struct relay_shard *relay_shard_find(struct rp_shard *sh)
{
	return tls_rs && tls_rs->sh == sh ? tls_rs : NULL;
}

uint64_t relay_now_ns(void)
{
	struct timespec ts;

	/* coarse: a vDSO read of the last tick is enough for idle timeouts */
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void wait_end_all(struct rp_shard *sh, struct relay_shard *rs);

/* rp_relay_shard_end's work, for it and rp_relay_shard_exit: @rs is the
 * state of @sh, whose loop is over. */
static unsigned shard_end(struct rp_shard *sh, struct relay_shard *rs)
{
	uint64_t active = rs->st.active;

	/* The loop is over (fini): an op asked for now would never reach the
	 * kernel, so release_fds closes the sockets itself. Relays still
	 * waiting (a retry tick that never came) end as the tick's
	 * -ECANCELED ends them, dropping the list's reference, so their
	 * done() runs; then any relay still live (one whose ops the stop
	 * left to the kernel at its deadline: their callbacks never run)
	 * ends too, its sockets closed. Nothing listed is left. */
	rs->exiting = true;
	wait_end_all(sh, rs);
	/* From the list's head each time: relay_end may run a done() that
	 * ends (and frees) any other relay, the next one included. A relay
	 * that ops still carry (an armed recv, a send in flight, ended
	 * before the exit or here) would wait for their callbacks, which
	 * never come now: their references go, and it finishes here (done()
	 * once, its memory back). What they held stays with the kernel
	 * until the ring is closed. */
	for (struct rp_relay *r; (r = rs->live);) {
		r->pending++; /* r outlives relay_end */
		relay_end(r, RP_RELAY_END_ABORT, -ESHUTDOWN);
		r->pending = 1;
		relay_op_done(r); /* finish: off the live list */
	}
	/* finish() counted each in ended[] and took it off active */
	return (unsigned)(active - rs->st.active);
}

unsigned rp_relay_shard_end(struct rp_shard *sh)
{
	struct relay_shard *rs = sh ? relay_shard_find(sh) : NULL;

	/* Only once the loop is over. While it runs (on_stop included) the
	 * relays' ops are still reaped: ending them here would set exiting
	 * for good (every later end close(2)s its sockets with ops armed on
	 * them, no cancel) and free relays whose callbacks are still due.
	 * Refused, the relays go on; a count of 0, as for a shard with
	 * nothing to end (the return type is 0.5's ABI). */
	if (!rs || !rp_shard_loop_over(sh))
		return 0;
	return shard_end(sh, rs);
}

void rp_relay_shard_exit(struct rp_shard *sh)
{
	struct relay_shard *rs = sh ? relay_shard_find(sh) : NULL;

	/* Only once the loop is over, as rp_relay_shard_end: while it runs
	 * (on_stop included) ending the live relays frees them with their
	 * ops' callbacks still due, and freeing the state takes the counters,
	 * the timers and the pooled pipes from under relays that go on.
	 * Refused, nothing changes; the exit from fini does it all. */
	if (!rs || !rp_shard_loop_over(sh))
		return;
	(void)shard_end(sh, rs);
	rp_timer_free(sh, rs->sweep_timer);
	rp_timer_free(sh, rs->trim_timer);
	rp_timer_free(sh, rs->wait_timer);
	for (unsigned i = 0; i < rs->npipes; i++) {
		close(rs->pipes[i][0]);
		close(rs->pipes[i][1]);
	}
	free(rs->pipes);
	free(rs);
	tls_rs = NULL;
}

void rp_relay_stats(struct rp_shard *sh, struct rp_relay_stats *out)
{
	/* find, not get: a read after rp_relay_shard_exit (or on a shard
	 * that never relayed) allocated a fresh state no exit freed */
	struct relay_shard *rs = relay_shard_find(sh);

	if (rs)
		*out = rs->st;
	else
		memset(out, 0, sizeof(*out));
}

void rp_relay_sweep_stats(struct rp_shard *sh, struct rp_relay_sweep_stats *out)
{
	struct relay_shard *rs = relay_shard_find(sh);

	if (rs)
		*out = rs->sw;
	else
		memset(out, 0, sizeof(*out));
}

void rp_relay_wait_stats(struct rp_shard *sh, struct rp_relay_wait_stats *out)
{
	struct relay_shard *rs = relay_shard_find(sh);

	if (rs)
		*out = rs->wst;
	else
		memset(out, 0, sizeof(*out));
}

/* ---- waiting for pool memory ---- */

int relay_wait_reserve(struct rp_shard *sh, struct relay_shard *rs)
{
	if (!rs->wait_timer)
		rs->wait_timer = rp_timer_new(sh);
	return rs->wait_timer ? 0 : -ENOMEM;
}

static void wait_tick(struct rp_shard *sh, void *arg, const struct rp_cqe *c);

/*
 * Armed whenever a direction waits. The arm cannot fail for want of an SQE
 * (the engine sends it on the loop's next turn): a waiting direction has
 * no op in flight (its recv cancelled, its splice or poll not had), so a
 * refused arm (-EBUSY, before the engine queued such arms) stalled those
 * relays for good. -ESHUTDOWN cannot be (relay_wait refuses first).
 */
static void wait_arm(struct rp_shard *sh, struct relay_shard *rs)
{
	if (rs->waiting && !rp_timer_armed(rs->wait_timer))
		(void)rp_timer_arm(sh, rs->wait_timer, RELAY_WAIT_NS, wait_tick, rs);
}

int relay_wait(struct rdir *d, unsigned bits)
{
	struct rp_relay *r = d->r;
	struct relay_shard *rs = relay_shard_get(r->sh);

	/* a stopping shard ends its relays (ABORT): nothing to wait for */
	if (rp_shard_stopping(r->sh) || !rs->wait_timer)
		return -ESHUTDOWN;
	if (!(d->wait & WAIT_LISTED)) {
		d->wait |= WAIT_LISTED;
		d->wprev = NULL;
		d->wnext = rs->waiting;
		if (d->wnext)
			d->wnext->wprev = d;
		rs->waiting = d;
		r->pending++; /* the list's reference: the tick's, or relay_end's */
		if (!(d->wait & WAIT_RETRY))
			rs->wst.waits++;
		rs->wst.waiting++;
	}
	d->wait |= (uint8_t)bits;
	wait_arm(r->sh, rs);
	return 0;
}

/* Take @d off the list it is on: the wait list, or the part of it the
 * tick is running (a direction with no wprev heads one of the two). The
 * caller drops the list's reference. */
static void wait_unlink(struct relay_shard *rs, struct rdir *d)
{
	if (d->wprev)
		d->wprev->wnext = d->wnext;
	else if (rs->waiting == d)
		rs->waiting = d->wnext;
	else
		rs->wait_run = d->wnext;
	if (d->wnext)
		d->wnext->wprev = d->wprev;
	d->wnext = d->wprev = NULL;
	d->wait &= (uint8_t)~WAIT_LISTED;
	rs->wst.waiting--;
}

/*
 * The retry tick: every direction on the list is taken off it and its
 * paths retry what they wait for (a path that still cannot go on puts
 * the direction back, to run at the next tick). A relay that ends leaves
 * the list then and there (relay_end), also while the tick runs it; at
 * the shard's stop (-ECANCELED) the waiting relays end.
 */
static void wait_run(struct rp_shard *sh, struct relay_shard *rs, bool cancel)
{
	struct rdir *d;

	rs->wait_run = rs->waiting;
	rs->waiting = NULL;
	while ((d = rs->wait_run)) {
		struct rp_relay *r = d->r;

		wait_unlink(rs, d);
		if (!r->ended && (cancel || rp_shard_stopping(sh))) {
			relay_fail(r, -ESHUTDOWN, RP_RELAY_END_ABORT);
		} else if (!r->ended) {
			rs->wst.retries++;
			d->wait |= WAIT_RETRY;
			for (int k = 0; k < PATH_COUNT && !r->ended; k++)
				if (r->paths[k]->retry)
					r->paths[k]->retry(d);
			d->wait &= (uint8_t)~WAIT_RETRY;
		}
		relay_op_done(r);
	}
}

static void wait_tick(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct relay_shard *rs = arg;

	/* -ECANCELED means the stop only while the shard stops: otherwise
	 * (a timer ended for another reason) the waits are retried */
	wait_run(sh, rs, c->res == -ECANCELED && rp_shard_stopping(sh));
	if (!rp_shard_stopping(sh))
		wait_arm(sh, rs);
}

/* rp_relay_shard_exit: every direction still listed, as at the stop. A
 * relay ended here may not wait again (relay_wait refuses a stopping
 * shard), so the list stays empty. */
static void wait_end_all(struct rp_shard *sh, struct relay_shard *rs)
{
	wait_run(sh, rs, true);
}

/* ---- the end ---- */

static void finish(struct rp_relay *r)
{
	struct relay_shard *rs = relay_shard_get(r->sh);
	struct rp_relay_result res = { .end = r->end, .err = r->err };

	for (int i = 0; i < 2; i++) {
		for (int k = 0; k < PATH_COUNT; k++)
			if (r->paths[k]->drop)
				r->paths[k]->drop(&r->d[i]);
		res.bytes[i] = r->d[i].bytes;
		res.spliced[i] = r->d[i].spliced;
	}
	if (r->prev)
		r->prev->next = r->next;
	else if (rs->live == r)
		rs->live = r->next;
	if (r->next)
		r->next->prev = r->prev;
	rs->st.active--;
	rs->st.ended[r->end]++;
	r->reported = true;
	if (r->done)
		r->done(r->sh, r->arg, &res);
	rp_pool_free(r);
}

void relay_op_done(struct rp_relay *r)
{
	r->pending--;
	if (r->ended && !r->pending && !r->reported)
		finish(r);
}

/* Does a direction still have an op in flight on the sockets? */
static bool ops_in_flight(const struct rp_relay *r)
{
	for (int i = 0; i < 2; i++) {
		const struct rdir *d = &r->d[i];

		if (d->recv_op || d->q || d->poll_op || d->in_op || d->out_op)
			return true;
	}
	return false;
}

/* Close (or leave, with RP_RELAY_KEEP_FDS) both sockets; rp_close ends
 * every op still on them first. */
static void release_fds(struct rp_relay *r, bool reset)
{
	/*
	 * Closed both ways: each direction was quiet when it passed its EOF
	 * on, so no op is left on either socket and they are closed here,
	 * before done() runs (test_relay checks it). rp_close would cost the
	 * kernel no more now (with no op on the fd it sends the close alone;
	 * it used to put a cancel-by-fd before it, which walks every request
	 * armed on the ring), but its close completes after done(). Should
	 * an op still be in flight, the sockets go through rp_close below,
	 * which cancels it first: close(2) would leave it armed.
	 */
	if (!reset && !ops_in_flight(r)) {
		if (!(r->cfg.flags & RP_RELAY_KEEP_FDS)) {
			close(r->fd[0]);
			close(r->fd[1]);
		}
		return;
	}
	for (int i = 0; i < 2; i++) {
		int fd = r->fd[i];

		if (reset) {
			struct linger lg = { .l_onoff = 1, .l_linger = 0 };

			/* close now sends an RST: the peer learns of the reset */
			(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			/* A splice blocked in io-wq (uring-splice mode) holds the
			 * file, so the close (and its RST) waits for it, and io-wq's
			 * cancel does not always interrupt a worker asleep in the
			 * socket: SHUT_RD wakes it (it returns 0) without a FIN. */
			(void)shutdown(fd, SHUT_RD);
		}
		if (relay_shard_get(r->sh)->exiting) {
			/* after the loop: no op would reach the kernel, and
			 * none of this relay's is left to end but those the
			 * ring's exit ends */
			if (!(r->cfg.flags & RP_RELAY_KEEP_FDS))
				close(fd);
		} else if (r->cfg.flags & RP_RELAY_KEEP_FDS) {
			/* no pool memory needed: an empty pool no longer shuts
			 * the caller's socket down both ways; only an SQ that
			 * stayed full does (the shutdown ends the ops on it) */
			if (rp_cancel_fd_op(r->sh, fd))
				(void)shutdown(fd, SHUT_RDWR);
		} else if (!rp_close(r->sh, fd, NULL, NULL)) {
			/* no op to be had: the ops in flight must still end before
			 * the number is reused, so end them with a shutdown and
			 * close synchronously (rare: pool empty or SQ stuck) */
			(void)shutdown(fd, SHUT_RDWR);
			close(fd);
		}
	}
}

void relay_end(struct rp_relay *r, enum rp_relay_end end, int err)
{
	struct relay_shard *rs = relay_shard_get(r->sh);

	if (r->ended)
		return;
	r->ended = true;
	r->end = end;
	r->err = err;
	if (end == RP_RELAY_END_RESET) {
		rs->st.resets_passed++;
		rs->st.reset_errno[err < 0 && -err < RP_RELAY_ERRNO_MAX ? -err : 0]++;
	}
	/* the paths' end hooks drop references (queued pieces released):
	 * hold one, so the relay outlives them and the closes below */
	r->pending++;
	/* off the wait list now: its reference held done() back until the
	 * next tick (which, at 1 ms, still came; a sweep ending the relay
	 * left it listed, and counted in waiting, meanwhile) */
	for (int i = 0; i < 2; i++) {
		if (r->d[i].wait & WAIT_LISTED) {
			wait_unlink(rs, &r->d[i]);
			r->pending--;
		}
	}
	for (int i = 0; i < 2; i++)
		for (int k = 0; k < PATH_COUNT; k++)
			if (r->paths[k]->end)
				r->paths[k]->end(&r->d[i]);
	release_fds(r, end != RP_RELAY_END_CLOSED);
	/* finish runs here if nothing is in flight, else from the last op */
	relay_op_done(r);
}

void relay_fail(struct rp_relay *r, int err, enum rp_relay_end end)
{
	if (rp_shard_stopping(r->sh) && end != RP_RELAY_END_IDLE)
		end = RP_RELAY_END_ABORT;
	relay_end(r, end, err);
}

/* ---- half-close ---- */

/*
 * Pass EOF on with shutdown(2) on the shard thread, not IORING_OP_SHUTDOWN:
 * the kernel always punts that op to io-wq (REQ_F_FORCE_ASYNC, 6.18), so
 * every half-close cost a worker wakeup and two context switches. perf on
 * the churn row (wrk, Connection: close) put 24% of the relay's samples in
 * io-wq workers running io_shutdown. On TCP, shutdown(SHUT_WR) queues a FIN
 * and never blocks.
 */
static void half_close(struct rdir *d)
{
	struct rp_relay *r = d->r;
	int res = shutdown(d->to, SHUT_WR) ? -errno : 0;

	if (res < 0 && res != -ENOTCONN) {
		relay_fail(r, res, RP_RELAY_END_RESET);
		return;
	}
	d->done = true;
	relay_shard_get(r->sh)->st.half_closes++;
	if (r->d[0].done && r->d[1].done)
		relay_end(r, RP_RELAY_END_CLOSED, 0);
}

void relay_dir_quiet(struct rdir *d)
{
	struct rp_relay *r = d->r;

	if (r->ended)
		return;
	if (d->eof) {
		/* every byte before the EOF was delivered: pass it on (the
		 * caller holds a reference: the relay outlives this call) */
		if (d->shut)
			return;
		d->shut = true;
		half_close(d);
		return;
	}
	if (d->want != d->path) {
		struct relay_shard *rs = relay_shard_get(r->sh);

		if (d->want == PATH_SPLICE)
			rs->st.to_splice++;
		else
			rs->st.to_copy++;
		d->path = d->want;
		r->paths[d->path]->start(d);
	}
}

/* ---- bytes moved, auto mode ---- */

void relay_moved(struct rdir *d, size_t n, bool spliced)
{
	struct rp_relay *r = d->r;
	struct relay_shard *rs = relay_shard_get(r->sh);

	d->bytes += n;
	if (spliced) {
		d->spliced += n;
		rs->st.bytes_spliced[d->idx] += n;
	} else {
		rs->st.bytes_copied[d->idx] += n;
	}
	if (r->cfg.idle_ns)
		r->last_ns = relay_now_ns();
}

/*
 * HAProxy's splice-auto rule: a direction that reads whole buffers 3 times
 * in a row (the count restarts after 1 s without a read) is streaming and
 * moves to splice; one whose splice reads come back short (under 4 KB and
 * under the room offered: the splice path offers a read into a pipe that
 * holds bytes as filling) 3 times in a row moves back to copy.
 *
 * Whatever the receiver: a stream to one on this host (loopback, a veth)
 * splices too, alone on its shard or not. It used to stay in copy while it
 * streamed alone there; in 40 alternating quiet runs a mode (docs/net.md,
 * "Auto mode and local receivers") one iperf3 stream through copy ran
 * 1.01x splice's median Gbit/s on loopback and 1.05-1.11x over a veth,
 * inside each mode's interquartile range, at 1.6-2.3x splice's relay CPU
 * per GB.
 */
void relay_auto_read(struct rdir *d, size_t n, size_t cap)
{
	struct rp_relay *r = d->r;
	uint64_t now;

	if (r->cfg.mode != RP_RELAY_AUTO || d->want != d->path)
		return;
	now = relay_now_ns();
	if (now - d->read_ns >= AUTO_IDLE_NS)
		d->streak = 0;
	d->read_ns = now;
	if (d->path == PATH_COPY) {
		d->streak = n >= cap ? (uint8_t)(d->streak + 1) : 0;
		if (d->streak < AUTO_STREAK)
			return;
		d->streak = 0;
		d->want = PATH_SPLICE;
		r->paths[PATH_COPY]->quiesce(d);
	} else {
		/* short: under 4 KB and under the room the pipe offered (a
		 * nearly full pipe, its receiver a bit slower than its sender,
		 * offers little: a read that filled it is no short read).
		 * A read into a pipe that held bytes comes with cap = n,
		 * never short: the call site decides (relay_splice.c) */
		d->streak = n < AUTO_MIN_READ && n < cap ? (uint8_t)(d->streak + 1) : 0;
		if (d->streak < AUTO_STREAK)
			return;
		d->streak = 0;
		d->want = PATH_COPY;
		r->paths[PATH_SPLICE]->quiesce(d);
	}
}
