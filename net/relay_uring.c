/* SPDX-License-Identifier: MIT */
/*
 * The io_uring splice path of a relay direction (RP_RELAY_SPLICE_URING):
 * IORING_OP_SPLICE socket -> pipe, then pipe -> socket until the pipe is
 * empty, one splice in flight at a time (see uring_pump for why).
 * It exists to be measured against relay_splice.c (readiness + splice(2) on
 * the shard thread), which the auto and splice modes use:
 *
 * - the kernel always punts IORING_OP_SPLICE to io-wq (forced async), so
 *   every chunk costs two hand-offs to a worker thread and back;
 * - it has no internal poll: on a non-blocking socket it returns -EAGAIN at
 *   once, so the sockets are made blocking, and the socket -> pipe splice
 *   is issued only once a poll on the shard's ring said the socket is
 *   readable (see uring_pump): an idle direction holds a pipe and an armed
 *   poll, no io-wq worker. A direction that can get no pipe moves to copy
 *   (see uring_start).
 *
 * Ending a relay cancels the poll and any splice in flight.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include "relay_impl.h"

static void uring_pump(struct rdir *d);

static struct relay_shard *rs_of(struct rdir *d)
{
	return relay_shard_get(d->r->sh);
}

static void on_out(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct rdir *d = arg;
	struct rp_relay *r = d->r;

	(void)sh;
	d->out_op = NULL;
	/* counted whether or not the relay ended: the pipe goes back to the
	 * shard's pool only when in_pipe says it is empty (see on_in) */
	if (c->res > 0)
		d->in_pipe -= (size_t)c->res;
	if (!r->ended) {
		if (c->res > 0) {
			relay_moved(d, (size_t)c->res, true);
			uring_pump(d);
		} else {
			relay_fail(r, c->res < 0 ? c->res : -EPIPE, RP_RELAY_END_RESET);
		}
	}
	relay_op_done(r);
}

/*
 * The read splice returned 0 RELAY_ZEROS_MAX times in a row while a peek
 * found bytes (relay_splice_nothing): each poll would answer at once, a
 * spin. Nothing is in flight on the direction and its pipe is empty (a
 * read splice is issued only then): it moves to copy, counted. The sockets
 * stay blocking; the copy path's io_uring ops do not mind.
 */
static void uring_fall_back(struct rdir *d)
{
	relay_pipe_put(d);
	relay_fall_back(d, RP_RELAY_FB_SPLICE_ZERO);
}

static void on_in(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct rdir *d = arg;
	struct rp_relay *r = d->r;

	(void)sh;
	d->in_op = NULL;
	/*
	 * Counted even after the relay ended: a splice that was already
	 * moving bytes when the other side reset completes with them in the
	 * pipe. Left uncounted, the pipe went back to the pool with them and
	 * the next relay that took it sent them to its own peer first
	 * (iperf3 -P 4 through this mode hung: a stream's cookie arrived
	 * behind a previous test's bytes and the server refused it).
	 */
	if (c->res > 0)
		d->in_pipe += (size_t)c->res;
	if (!r->ended) {
		if (c->res > 0) {
			d->started = true;
			d->zeros = 0;
			uring_pump(d);
		} else if (c->res == 0) {
			/* 0 is also a blocking splice stopped at TCP urgent data
			 * (relay_splice_nothing): not an EOF then; the pump polls
			 * before it splices again */
			int why = relay_splice_nothing(d, 0);

			if (why < 0) {
				relay_fail(r, why, RP_RELAY_END_RESET);
			} else if (why == SPLICE_ZERO_DATA && d->zeros >= RELAY_ZEROS_MAX) {
				uring_fall_back(d);
			} else {
				if (why == SPLICE_ZERO_EOF)
					d->eof = true;
				uring_pump(d);
			}
		} else {
			relay_fail(r, c->res, RP_RELAY_END_RESET);
		}
	}
	relay_op_done(r);
}

static void on_readable(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct rdir *d = arg;
	struct rp_relay *r = d->r;

	(void)sh;
	d->poll_op = NULL;
	if (!r->ended) {
		if (c->res < 0) {
			relay_fail(r, c->res, RP_RELAY_END_RESET);
		} else {
			d->readable = true;
			uring_pump(d);
		}
	}
	relay_op_done(r);
}

/* An op could not be had (errno): the pool empty or the SQ full wait for
 * the shard's retry tick, which pumps again; anything else ends the relay. */
static void uring_no_op(struct rdir *d)
{
	int err = errno;

	if ((err == ENOMEM || err == EBUSY) && !relay_wait(d, WAIT_URING))
		return;
	relay_fail(d->r, -err, err == ESHUTDOWN ? RP_RELAY_END_ABORT : RP_RELAY_END_NOMEM);
}

static void uring_retry(struct rdir *d)
{
	if (!(d->wait & WAIT_URING))
		return;
	d->wait &= (uint8_t)~WAIT_URING;
	if (d->path == PATH_URING)
		uring_pump(d);
}

static void uring_pump(struct rdir *d)
{
	struct rp_relay *r = d->r;
	unsigned size = rs_of(d)->pipe_size;

	if (r->ended)
		return;
	if (d->in_pipe && !d->out_op) {
		d->out_op = rp_splice(r->sh, d->pipe[0], -1, d->to, -1, (unsigned)d->in_pipe,
				      SPLICE_F_MOVE, on_out, d);
		if (!d->out_op) {
			uring_no_op(d);
			return;
		}
		r->pending++;
	}
	/*
	 * Read only into an empty pipe, so one chunk at a time: a socket ->
	 * pipe splice waits in the socket for data holding the pipe's lock
	 * (splice_file_to_pipe, fs/splice.c), so one issued while bytes were
	 * in the pipe kept the pipe -> socket splice of them waiting on that
	 * lock until the next bytes came, for ever when the peer awaited an
	 * answer to them: iperf3 -P 4 hung in 4 of 8 runs (two io-wq workers
	 * seen in sk_wait_data and splice_to_socket's pipe_lock).
	 *
	 * And only once the socket is readable. Issued at once, a read splice
	 * put an io-wq worker to sleep in sk_wait_data per idle direction, and
	 * 8 clients doing 64 B rounds through a fresh relay stalled under load
	 * (a request read, never answered; 13 workers asleep in sk_wait_data,
	 * 3 idle, the ring empty). With the poll first a read splice finds data
	 * and returns, so no worker sleeps in a receive and io-wq need not
	 * create one for the next item. The stall did not come back on a quiet
	 * host with the old code either (32 fresh relays of test_relay's uring
	 * burst): the burst bounds it, it does not reproduce it.
	 */
	if (!d->eof && !d->in_op && !d->out_op && !d->in_pipe && !d->poll_op && !d->readable) {
		d->poll_op = rp_poll(r->sh, d->from, POLLIN | POLLRDHUP, on_readable, d);
		if (!d->poll_op) {
			uring_no_op(d);
			return;
		}
		r->pending++;
	}
	if (!d->eof && !d->in_op && !d->out_op && !d->in_pipe && d->readable) {
		d->readable = false;
		d->in_op = rp_splice(r->sh, d->from, -1, d->pipe[1], -1, size, SPLICE_F_MOVE,
				     on_in, d);
		if (!d->in_op) {
			d->readable = true; /* still readable: splice it on the retry */
			uring_no_op(d);
			return;
		}
		r->pending++;
	}
	if (d->eof && !d->in_pipe && !d->out_op)
		relay_dir_quiet(d);
}

static int set_blocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || ((fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0))
		return -errno;
	return 0;
}

/*
 * A direction holds its pipe for the relay's life (an idle one too: its
 * poll is armed with the pipe taken), so a shard's pool of PIPES_MAX
 * (relay_splice.c: 256) serves 128 idle relays. A direction that can get
 * none (the pool is empty, or the kernel refused a new pipe or its size)
 * moves to copy for good, counted in splice_fallback by the reason, as
 * splice mode does: before, its relay was ended as nomem and the client
 * reset. The sockets may be blocking by then; the copy path's io_uring ops
 * do not mind (uring_fall_back relies on it too).
 */
static int uring_start(struct rdir *d)
{
	enum rp_relay_fallback why;

	d->path = PATH_URING;
	if (set_blocking(d->from) || set_blocking(d->to)) {
		relay_fall_back(d, RP_RELAY_FB_FCNTL);
		return 0;
	}
	if (relay_pipe_get(d, &why)) {
		relay_fall_back(d, why);
		return 0;
	}
	uring_pump(d);
	return 0;
}

static void uring_quiesce(struct rdir *d)
{
	(void)d; /* never switched: the mode is fixed for the relay's life */
}

const struct relay_path relay_uring_path = {
	.name = "uring-splice",
	.start = uring_start,
	.quiesce = uring_quiesce,
	.retry = uring_retry,
};
