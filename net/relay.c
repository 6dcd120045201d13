/* SPDX-License-Identifier: MIT */
/*
 * A relay of two connected sockets (include/ringplane/relay.h): the pair's
 * life (start, half-close, reset, the end), the idle sweep, auto mode's
 * choice of path per direction, and the per-shard counters. The bytes are
 * moved by one path per direction (relay_copy.c, relay_splice.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "relay_impl.h"

#define SWEEP_NS (1000ull * 1000 * 1000) /* idle sweep period */
#define AUTO_STREAK 3			 /* full reads in a row before splicing (HAProxy) */
#define AUTO_MIN_READ 4096		 /* a read below this in splice is "short" */

static const struct relay_path *const paths[] = {
	[PATH_COPY] = &relay_copy_path,
	[PATH_SPLICE] = &relay_splice_path,
	[PATH_URING] = &relay_uring_path,
};

/* ---- per-shard state ---- */

static __thread struct relay_shard *tls_rs;

struct relay_shard *relay_shard_get(struct rp_shard *sh)
{
	struct relay_shard *rs = tls_rs;

	if (rs && rs->sh == sh)
		return rs;
	/* first use on this thread (or a new runtime on it): a fresh state;
	 * the old one belonged to a shard that has stopped */
	rs = calloc(1, sizeof(*rs));
	if (!rs)
		return NULL;
	rs->sh = sh;
	tls_rs = rs;
	return rs;
}

uint64_t relay_now_ns(void)
{
	struct timespec ts;

	/* coarse: a vDSO read of the last tick is enough for idle timeouts */
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void rp_relay_shard_exit(struct rp_shard *sh)
{
	struct relay_shard *rs = tls_rs;

	if (!rs || rs->sh != sh)
		return;
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
	struct relay_shard *rs = relay_shard_get(sh);

	if (rs)
		*out = rs->st;
	else
		memset(out, 0, sizeof(*out));
}

/* ---- the end ---- */

static void finish(struct rp_relay *r)
{
	struct relay_shard *rs = relay_shard_get(r->sh);
	struct rp_relay_result res = { .end = r->end, .err = r->err };

	for (int i = 0; i < 2; i++) {
		relay_copy_drop(&r->d[i]);
		relay_splice_drop(&r->d[i]);
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

/* Close (or leave, with RP_RELAY_KEEP_FDS) both sockets; rp_close ends
 * every op still on them first. */
static void release_fds(struct rp_relay *r, bool reset)
{
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
		if (r->cfg.flags & RP_RELAY_KEEP_FDS) {
			if (!rp_cancel_fd(r->sh, fd, NULL, NULL))
				(void)shutdown(fd, SHUT_RDWR); /* ends the ops on it */
		} else if (!rp_close(r->sh, fd, NULL, NULL)) {
			/* no op to be had: the ops in flight must still end before
			 * the number is reused, so end them with a shutdown and
			 * close synchronously (rare: pool empty or SQ stuck) */
			(void)shutdown(fd, SHUT_RDWR);
			close(fd);
		}
	}
}

static void end_relay(struct rp_relay *r, enum rp_relay_end end, int err)
{
	struct relay_shard *rs = relay_shard_get(r->sh);

	if (r->ended)
		return;
	r->ended = true;
	r->end = end;
	r->err = err;
	if (end == RP_RELAY_END_RESET)
		rs->st.resets_passed++;
	release_fds(r, end != RP_RELAY_END_CLOSED);
	/* the caller holds a reference (a callback, or start): finish runs
	 * from relay_op_done, or here if nothing is in flight */
	if (!r->pending && !r->reported)
		finish(r);
}

void relay_fail(struct rp_relay *r, int err, enum rp_relay_end end)
{
	if (rp_shard_stopping(r->sh) && end != RP_RELAY_END_IDLE)
		end = RP_RELAY_END_ABORT;
	end_relay(r, end, err);
}

void rp_relay_abort(struct rp_shard *sh, struct rp_relay *r)
{
	(void)sh;
	end_relay(r, RP_RELAY_END_ABORT, -ECANCELED);
}

/* ---- half-close ---- */

static void on_shut(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct rdir *d = arg;
	struct rp_relay *r = d->r;

	(void)sh;
	if (!r->ended) {
		if (c->res < 0 && c->res != -ENOTCONN) {
			relay_fail(r, c->res, RP_RELAY_END_RESET);
		} else {
			d->done = true;
			relay_shard_get(r->sh)->st.half_closes++;
			if (r->d[0].done && r->d[1].done)
				end_relay(r, RP_RELAY_END_CLOSED, 0);
		}
	}
	relay_op_done(r);
}

void relay_dir_quiet(struct rdir *d)
{
	struct rp_relay *r = d->r;

	if (r->ended)
		return;
	if (d->eof) {
		/* every byte before the EOF was delivered: pass it on */
		if (d->shut)
			return;
		d->shut = true;
		if (!rp_shutdown(r->sh, d->to, SHUT_WR, on_shut, d)) {
			relay_fail(r, -errno, RP_RELAY_END_NOMEM);
			return;
		}
		r->pending++;
		return;
	}
	if (d->want != d->path) {
		struct relay_shard *rs = relay_shard_get(r->sh);

		if (d->want == PATH_SPLICE)
			rs->st.to_splice++;
		else
			rs->st.to_copy++;
		d->path = d->want;
		paths[d->path]->start(d);
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
 * in a row is streaming and moves to splice; one whose splice reads come
 * back short 3 times in a row moves back to copy.
 */
void relay_auto_read(struct rdir *d, size_t n, size_t cap)
{
	struct rp_relay *r = d->r;

	if (r->cfg.mode != RP_RELAY_AUTO || d->want != d->path)
		return;
	if (d->path == PATH_COPY) {
		d->streak = n >= cap ? (uint8_t)(d->streak + 1) : 0;
		if (d->streak >= AUTO_STREAK) {
			d->streak = 0;
			d->want = PATH_SPLICE;
			relay_copy_path.quiesce(d);
		}
	} else {
		d->streak = n < AUTO_MIN_READ ? (uint8_t)(d->streak + 1) : 0;
		if (d->streak >= AUTO_STREAK) {
			d->streak = 0;
			d->want = PATH_COPY;
			relay_splice_path.quiesce(d);
		}
	}
}

/* ---- idle sweep ---- */

static void sweep(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct relay_shard *rs = arg;
	uint64_t now = relay_now_ns();

	(void)c;
	rs->sweep_op = NULL;
	for (struct rp_relay *r = rs->live, *next; r; r = next) {
		next = r->next;
		/* a relay can only end (and free itself) later, from a callback */
		if (!r->ended && r->cfg.idle_ns && now - r->last_ns >= r->cfg.idle_ns)
			end_relay(r, RP_RELAY_END_IDLE, -ETIMEDOUT);
	}
	if (rs->live && !rp_shard_stopping(sh))
		rs->sweep_op = rp_timeout(sh, SWEEP_NS, sweep, rs);
}

/* ---- start ---- */

int rp_relay_start(struct rp_shard *sh, int a, int b, const struct rp_relay_config *cfg,
		   rp_relay_done_fn done, void *arg, struct rp_relay **out)
{
	struct relay_shard *rs;
	struct rp_relay *r;

	if (out)
		*out = NULL;
	if (!sh || a < 0 || b < 0 || a == b)
		return -EINVAL;
	if (cfg && (cfg->mode > RP_RELAY_SPLICE_URING))
		return -EINVAL;
	if (rp_shard_stopping(sh))
		return -ESHUTDOWN;
	rs = relay_shard_get(sh);
	if (!rs)
		return -ENOMEM;
	r = rp_pool_alloc(rp_shard_pool(sh), sizeof(*r));
	if (!r)
		return -ENOMEM;
	memset(r, 0, sizeof(*r));
	r->sh = sh;
	if (cfg)
		r->cfg = *cfg;
	if (!r->cfg.max_inflight)
		r->cfg.max_inflight = 256 * 1024;
	r->done = done;
	r->arg = arg;
	r->fd[0] = a;
	r->fd[1] = b;
	r->last_ns = relay_now_ns();
	for (int i = 0; i < 2; i++) {
		struct rdir *d = &r->d[i];

		d->r = r;
		d->idx = (uint8_t)i;
		d->from = i ? b : a;
		d->to = i ? a : b;
		d->pipe[0] = d->pipe[1] = -1;
		d->path = r->cfg.mode == RP_RELAY_SPLICE	  ? PATH_SPLICE :
			  r->cfg.mode == RP_RELAY_SPLICE_URING ? PATH_URING :
								 PATH_COPY;
		d->want = d->path;
	}
	r->next = rs->live;
	if (rs->live)
		rs->live->prev = r;
	rs->live = r;
	rs->st.started++;
	rs->st.active++;
	if (r->cfg.idle_ns && !rs->sweep_op)
		rs->sweep_op = rp_timeout(sh, SWEEP_NS, sweep, rs);
	if (out)
		*out = r;
	/* hold a reference across the starts: a path that fails at once ends
	 * the relay, which must not be freed under us */
	r->pending++;
	for (int i = 0; i < 2 && !r->ended; i++) {
		struct rdir *d = &r->d[i];

		if (r->cfg.prime_len[i]) {
			if (relay_copy_prime(d, r->cfg.prime[i], r->cfg.prime_len[i])) {
				end_relay(r, RP_RELAY_END_NOMEM, -ENOMEM);
				break;
			}
			if (d->path != PATH_COPY) {
				/* the primed bytes go by copy first; once they are
				 * sent the direction is quiet and switches */
				relay_copy_send_only(d);
				continue;
			}
		}
		paths[d->path]->start(d);
	}
	r->cfg.prime[0] = r->cfg.prime[1] = NULL;
	relay_op_done(r);
	return 0;
}

const char *rp_relay_mode_name(enum rp_relay_mode m)
{
	switch (m) {
	case RP_RELAY_AUTO:
		return "auto";
	case RP_RELAY_COPY:
		return "copy";
	case RP_RELAY_SPLICE:
		return "splice";
	case RP_RELAY_SPLICE_URING:
		return "uring-splice";
	}
	return "?";
}

const char *rp_relay_fallback_name(enum rp_relay_fallback f)
{
	static const char *const names[RP_RELAY_FB_NR] = {
		[RP_RELAY_FB_NO_PIPE] = "no_pipe",
		[RP_RELAY_FB_PIPE_LIMIT] = "pipe_limit",
		[RP_RELAY_FB_PIPE_SIZE] = "pipe_size",
		[RP_RELAY_FB_EINVAL] = "einval",
	};

	return (unsigned)f < RP_RELAY_FB_NR ? names[f] : "?";
}

const char *rp_relay_end_name(enum rp_relay_end e)
{
	static const char *const names[] = {
		[RP_RELAY_END_CLOSED] = "closed", [RP_RELAY_END_RESET] = "reset",
		[RP_RELAY_END_IDLE] = "idle",	  [RP_RELAY_END_ABORT] = "abort",
		[RP_RELAY_END_NOMEM] = "nomem",
	};

	return (unsigned)e <= RP_RELAY_END_NOMEM ? names[e] : "?";
}
