/* SPDX-License-Identifier: MIT */
/*
 * The splice path of a relay direction: socket -> pipe -> socket with
 * splice(2) on the shard thread, driven by readiness from the shard's ring
 * (rp_poll), as HAProxy does with epoll. IORING_OP_SPLICE is not used here:
 * the kernel always punts it to io-wq, and on a non-blocking socket it
 * returns -EAGAIN with no internal poll.
 *
 * The sockets are made O_NONBLOCK (io_uring's own socket ops ignore that
 * flag and still wait, so the copy path of the other direction is not
 * affected). splice's EAGAIN is ambiguous, socket empty or pipe full: the
 * direction counts the bytes it put in the pipe, so it knows which (after
 * HAProxy's raw_sock.c). A pipe comes from the shard's pool only while
 * bytes are in flight; an idle direction holds none. Where no pipe can be
 * had, or splice refuses the fds, the direction falls back to copy and the
 * reason is counted.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relay_impl.h"

#define PIPE_BYTES (256u * 1024) /* asked of F_SETPIPE_SZ: a few TCP windows' worth */
#define PIPES_MAX 256		 /* pipes per shard, in use and idle */
#define PUMP_ROUNDS 16		 /* splice rounds per readiness event */
#define TRIM_NS (1000ull * 1000 * 1000) /* the pool's trim interval */

static void splice_pump(struct rdir *d);

static struct relay_shard *rs_of(struct rdir *d)
{
	return relay_shard_get(d->r->sh);
}

static void pipe_close(struct relay_shard *rs, int p[2])
{
	close(p[0]);
	close(p[1]);
	rs->st.pipes_live--;
}

/*
 * The pool's trim. A pooled pipe costs two descriptors and, grown to
 * 256 KB, 64 pages of the user's fs.pipe-user-pages-soft budget (the
 * kernel charges a pipe's slots at F_SETPIPE_SZ, empty or not): kept for
 * the shard's life, one burst of 256 spliced streams held the whole
 * default budget (16384 pages) in an idle relay, and every later pipe of
 * the same user got 2 pages. So while the pool holds pipes a reserved
 * timer runs every TRIM_NS; relay_pipe_get keeps the pool's low-water
 * mark over the interval, and at its end that many pipes (in the pool the
 * whole interval: not needed) are closed, counted in pipes_trimmed. A
 * steady load keeps its working set; an idle shard is back to no pipe
 * within two intervals, and then nothing wakes it (the timer is armed
 * only while the pool is not empty). Only pooled pipes are closed: a
 * direction's pipe is never in the pool.
 */
static unsigned pool_close(struct relay_shard *rs, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		rs->npipes--;
		pipe_close(rs, rs->pipes[rs->npipes]);
	}
	return n;
}

/*
 * The pool shed at once (rp_relay_shard_shed_pipes): the process ran out
 * of descriptors (a socket(2) or an accept failed with EMFILE, ENFILE)
 * while idle pipes held two each, for reuse only. Every pooled pipe is
 * closed now, synchronously (the out-of-descriptors path, not the hot
 * one), counted in pipes_shed; a direction's pipe is never in the pool,
 * so none in use is touched. The trim's timer, if armed, runs on: the
 * low-water mark of its interval is 0 now, so it closes nothing that
 * was pooled after the shed, and stops once the pool is empty at a tick.
 */
unsigned rp_relay_shard_shed_pipes(struct rp_shard *sh)
{
	struct relay_shard *rs = sh ? relay_shard_get(sh) : NULL;
	unsigned n;

	if (!rs)
		return 0;
	n = pool_close(rs, rs->npipes);
	rs->pipes_low = 0;
	rs->st.pipes_shed += n;
	return n;
}

static void pool_trim(struct rp_shard *sh, void *arg, const struct rp_cqe *c);

/* Start an interval: 0, or -1 when the timer cannot be armed (the shard is
 * stopping, or the SQ stuck): the caller then keeps no pipe. */
static int trim_arm(struct rp_shard *sh, struct relay_shard *rs)
{
	rs->pipes_low = rs->npipes;
	return rp_timer_arm(sh, rs->trim_timer, TRIM_NS, pool_trim, rs) ? -1 : 0;
}

static void pool_trim(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct relay_shard *rs = arg;

	if (c->res == -ECANCELED)
		return; /* the shard stops: rp_relay_shard_exit closes the pool */
	rs->st.pipes_trimmed += pool_close(rs, rs->pipes_low);
	if (rs->npipes && trim_arm(sh, rs))
		rs->st.pipes_trimmed += pool_close(rs, rs->npipes);
}

int relay_pipe_get(struct rdir *d, enum rp_relay_fallback *why)
{
	struct relay_shard *rs = rs_of(d);
	int p[2];

	if (rs->npipes) {
		rs->npipes--;
		if (rs->npipes < rs->pipes_low)
			rs->pipes_low = rs->npipes;
		d->pipe[0] = rs->pipes[rs->npipes][0];
		d->pipe[1] = rs->pipes[rs->npipes][1];
		return 0;
	}
	if (rs->st.pipes_live >= PIPES_MAX) {
		*why = RP_RELAY_FB_NO_PIPE;
		return -1;
	}
	/* the trim's timer, reserved once per shard by its first pipe; without
	 * it no pipe is pooled (relay_pipe_put closes them) */
	if (!rs->trim_timer)
		rs->trim_timer = rp_timer_new(d->r->sh);
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC)) {
		*why = RP_RELAY_FB_PIPE_LIMIT;
		return -1;
	}
	rs->st.pipes_live++;
	if (rs->st.pipes_live > rs->st.pipes_max)
		rs->st.pipes_max = rs->st.pipes_live;
	/* Above fs.pipe-user-pages-soft a new pipe gets 2 pages and cannot
	 * grow: too small to pay for two syscalls per chunk. */
	if (fcntl(p[1], F_SETPIPE_SZ, PIPE_BYTES) < 0 || fcntl(p[1], F_GETPIPE_SZ) < 65536) {
		pipe_close(rs, p);
		*why = RP_RELAY_FB_PIPE_SIZE;
		return -1;
	}
	if (!rs->pipe_size)
		rs->pipe_size = (unsigned)fcntl(p[1], F_GETPIPE_SZ);
	d->pipe[0] = p[0];
	d->pipe[1] = p[1];
	return 0;
}

void relay_pipe_put(struct rdir *d)
{
	struct relay_shard *rs = rs_of(d);

	if (d->pipe[0] < 0)
		return;
	if (d->in_pipe == 0 && rs->npipes < PIPES_MAX && rs->trim_timer) {
		if (rs->npipes == rs->pipes_cap) {
			unsigned cap = rs->pipes_cap ? 2 * rs->pipes_cap : 16;
			int(*np)[2] = realloc(rs->pipes, cap * sizeof(*np));

			if (!np)
				goto close;
			rs->pipes = np;
			rs->pipes_cap = cap;
		}
		rs->pipes[rs->npipes][0] = d->pipe[0];
		rs->pipes[rs->npipes][1] = d->pipe[1];
		/* a pool that was empty starts the trim's interval (a pool that
		 * is not has it running) */
		if (!rs->npipes++ && !rp_timer_armed(rs->trim_timer) &&
		    trim_arm(d->r->sh, rs)) {
			rs->npipes--;
			goto close;
		}
		d->pipe[0] = d->pipe[1] = -1;
		return;
	}
close:
	pipe_close(rs, d->pipe);
	d->pipe[0] = d->pipe[1] = -1;
	d->in_pipe = 0;
}

void relay_splice_drop(struct rdir *d)
{
	relay_pipe_put(d);
}

/*
 * A socket -> pipe splice that moved nothing (@res 0 or -EAGAIN): why, by
 * splice_zero_why (splice_zero.h: the urgent mark, a mark the kernel moved
 * on, an EOF). At the urgent mark one byte is read with recv(2), which steps
 * over the urgent byte (without SO_OOBINLINE not part of the stream: the
 * copy path drops it the same way) and clears the mark, and put in the
 * pipe after any bytes already there. Only a splice that read nothing gets
 * here, never the bulk path.
 */
int relay_splice_nothing(struct rdir *d, ssize_t res)
{
	int why = splice_zero_why(d->from, res);
	char c;
	ssize_t n;

	if (why == SPLICE_ZERO_DATA && d->zeros < UINT8_MAX)
		d->zeros++;
	if (why != SPLICE_ZERO_MARK)
		return why;
	d->zeros = 0;
	n = recv(d->from, &c, 1, MSG_DONTWAIT);
	if (n < 0)
		/* EAGAIN: the urgent byte was the last one, and it is skipped */
		return errno == EAGAIN || errno == EINTR ? SPLICE_ZERO_MARK : -errno;
	if (n == 0) {
		d->eof = true;
		return SPLICE_ZERO_MARK;
	}
	if (write(d->pipe[1], &c, 1) != 1)
		return -EIO; /* the pipe had room (in_pipe < its size): cannot happen */
	d->in_pipe++;
	d->started = true;
	return SPLICE_ZERO_MARK;
}

void relay_fall_back(struct rdir *d, enum rp_relay_fallback why)
{
	rs_of(d)->st.splice_fallback[why]++;
	d->want = PATH_COPY;
	d->path = PATH_COPY;
	relay_copy_path.start(d);
}

static void on_ready(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct rdir *d = arg;
	struct rp_relay *r = d->r;

	(void)sh;
	d->poll_op = NULL;
	d->stalled = false;
	if (!r->ended) {
		if (c->res < 0 && c->res != -ECANCELED)
			relay_fail(r, c->res, RP_RELAY_END_RESET);
		else if (c->res == -ECANCELED && d->paused)
			relay_dir_quiet(d); /* a path switch: nothing in the pipe */
		else
			splice_pump(d);
	}
	relay_op_done(r);
}

static void wait_for(struct rdir *d, int fd, unsigned events)
{
	struct rp_relay *r = d->r;

	/* room on the way out: never RDHUP alone, which a peer that
	 * half-closed and does not read would give every poll (a spin) */
	d->poll_op = events == POLLOUT ? rp_poll_writable(r->sh, fd, on_ready, d) :
					 rp_poll(r->sh, fd, events, on_ready, d);
	if (!d->poll_op) {
		int err = errno;

		/* no op (the pool empty, the SQ full): the shard's retry tick
		 * pumps again (splice_retry), which polls again */
		if ((err == ENOMEM || err == EBUSY) && !relay_wait(d, WAIT_SPLICE))
			return;
		relay_fail(r, -err, err == ESHUTDOWN ? RP_RELAY_END_ABORT : RP_RELAY_END_NOMEM);
		return;
	}
	r->pending++;
}

static void splice_pump(struct rdir *d)
{
	struct rp_relay *r = d->r;
	bool want_in = false, want_out = false, read_any = false;

	for (int round = 0; round < PUMP_ROUNDS && !r->ended; round++) {
		ssize_t n;

		want_in = want_out = false;
		if (!d->eof && !d->paused && d->pipe[0] < 0) {
			enum rp_relay_fallback why;

			if (relay_pipe_get(d, &why)) {
				relay_fall_back(d, why);
				return;
			}
		}
		if (!d->eof && !d->paused && d->zeros >= RELAY_ZEROS_MAX) {
			/* splice kept returning 0 where a peek found bytes (should
			 * not happen: a loop on it would spin the shard): copy
			 * reads them, once the pipe is empty; no read meanwhile */
			if (!d->in_pipe) {
				relay_pipe_put(d);
				relay_fall_back(d, RP_RELAY_FB_SPLICE_ZERO);
				return;
			}
		} else if (!d->eof && !d->paused && d->in_pipe < rs_of(d)->pipe_size) {
			size_t room = rs_of(d)->pipe_size - d->in_pipe, held = d->in_pipe;

			n = splice(d->from, NULL, d->pipe[1], NULL, room,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				d->in_pipe += (size_t)n;
				d->started = true;
				d->zeros = 0;
				read_any = true;
				/* auto: only a read into an empty pipe can be short.
				 * A pipe holding bytes may be out of slots (one per
				 * skb piece, 16 in 64 KB) with bytes of room left:
				 * a small read then says the receiver is behind,
				 * not that the source is (counted as filling; the
				 * short-read rule itself: relay_auto_read, relay_core.c) */
				relay_auto_read(d, (size_t)n, held ? (size_t)n : room);
			} else if (n == 0 || (errno == EAGAIN && !read_any)) {
				/* nothing read: an EOF, the urgent mark, or none yet */
				int why = relay_splice_nothing(d, n == 0 ? 0 : -EAGAIN);

				if (why < 0) {
					relay_fail(r, why, RP_RELAY_END_RESET);
					return;
				}
				if (why == SPLICE_ZERO_MARK)
					read_any = true; /* was at the urgent mark: past it now, read on */
				else if (why == SPLICE_ZERO_EOF)
					d->eof = true;
				else
					want_in = true; /* splice again when readable */
			} else if (errno == EAGAIN) {
				want_in = true; /* the pipe has room: the socket is empty */
			} else if (errno == EINVAL && !d->started && d->in_pipe == 0) {
				relay_pipe_put(d);
				relay_fall_back(d, RP_RELAY_FB_EINVAL);
				return;
			} else if (errno != EINTR) {
				relay_fail(r, -errno, RP_RELAY_END_RESET);
				return;
			}
		}
		if (d->in_pipe) {
			n = splice(d->pipe[0], NULL, d->to, NULL, d->in_pipe,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				d->in_pipe -= (size_t)n;
				relay_moved(d, (size_t)n, true);
			} else if (n < 0 && errno == EAGAIN) {
				want_out = true; /* bytes in the pipe: the socket is full */
			} else if (n < 0 && errno != EINTR) {
				relay_fail(r, -errno, RP_RELAY_END_RESET);
				return;
			}
		}
		if (want_out || (want_in && !d->in_pipe) || d->eof || d->paused)
			break;
	}
	if (r->ended)
		return;
	if (d->in_pipe) {
		/* wait for room on the way out; reading more would only fill the pipe */
		d->stalled = true;
		wait_for(d, d->to, POLLOUT);
		return;
	}
	relay_pipe_put(d); /* empty: an idle direction holds no pipe */
	if (d->eof || d->paused) {
		relay_dir_quiet(d);
		return;
	}
	wait_for(d, d->from, POLLIN | POLLRDHUP);
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
		return -errno;
	return 0;
}

static int splice_start(struct rdir *d)
{
	int ret = set_nonblock(d->from);

	if (!ret)
		ret = set_nonblock(d->to);
	if (ret) {
		relay_fall_back(d, RP_RELAY_FB_FCNTL);
		return 0;
	}
	d->path = PATH_SPLICE;
	d->paused = false;
	d->zeros = 0;
	splice_pump(d);
	return 0;
}

/* Cancel the read poll (rp_cancel_op: no pool memory needed); one the
 * full SQ refused is retried by the tick. */
static void splice_cancel(struct rdir *d)
{
	int err = rp_cancel_op(d->r->sh, d->poll_op);

	if (!err || (err == -EBUSY && !relay_wait(d, WAIT_SPLICE)))
		return;
	relay_fail(d->r, err, RP_RELAY_END_NOMEM);
}

/*
 * The shard's retry tick: a poll that could not be had (the pump again:
 * it splices what it can, then polls), or a read poll's cancel that could
 * not be had (a quiesce: cancel again).
 */
static void splice_retry(struct rdir *d)
{
	if (!(d->wait & WAIT_SPLICE))
		return;
	d->wait &= (uint8_t)~WAIT_SPLICE;
	if (d->path != PATH_SPLICE)
		return;
	if (!d->poll_op)
		splice_pump(d);
	else if (d->paused && !d->stalled)
		splice_cancel(d);
}

static void splice_quiesce(struct rdir *d)
{
	d->paused = true;
	if (d->poll_op && !d->stalled) {
		/* waiting to read: stop waiting; on_ready sees -ECANCELED */
		splice_cancel(d);
		return;
	}
	/* a pump in progress or a stalled pipe: the pump ends in quiet once empty */
	if (!d->poll_op && !d->in_pipe)
		relay_dir_quiet(d);
}

const struct relay_path relay_splice_path = {
	.name = "splice",
	.start = splice_start,
	.quiesce = splice_quiesce,
	.drop = relay_splice_drop,
	.retry = splice_retry,
};
