/* SPDX-License-Identifier: MIT */
/*
 * A relay of two connected sockets (include/ringplane/relay.h): starting a
 * pair, aborting it, the idle sweep, and the table of transfer paths the
 * pair uses (relay_copy.c, relay_splice.c, relay_uring.c), which report to
 * relay_core.c. The top of net/relay*: nothing calls back into it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "peer.h"
#include "relay_impl.h"

/* The idle sweep's period: a quarter of the shard's smallest idle timeout,
 * at most 250 ms, at least 1 ms. A fixed 1 s period landed each sweep at
 * nearly last_ns + k s (the timer is armed when last_ns is set), and the
 * coarse clock's lag made the k = 1 sweep miss by microseconds, so a 1 s
 * timeout ended at 2-3 s (docs/net.md, "Idle timeout"). */
#define SWEEP_MAX_NS (250ull * 1000 * 1000)
#define SWEEP_MIN_NS (1000ull * 1000)

_Static_assert(RP_RELAY_PRIME_MAX <= RP_POOL_MAX_CLASS, "a prime is copied into one pool block");
/* apps/server.c's headroom counts a relay as one 512 B object; parking and
 * the wait list live in the shard's state, not here */
_Static_assert(sizeof(void *) != 8 || sizeof(struct rp_relay) <= 512,
	       "a relay fits a 512 B pool object");

static const struct relay_path *const paths[] = {
	[PATH_COPY] = &relay_copy_path,
	[PATH_SPLICE] = &relay_splice_path,
	[PATH_URING] = &relay_uring_path,
};

void rp_relay_abort(struct rp_shard *sh, struct rp_relay *r)
{
	(void)sh;
	relay_end(r, RP_RELAY_END_ABORT, -ECANCELED);
}

/* ---- idle sweep ---- */

static void sweep(struct rp_shard *sh, void *arg, const struct rp_cqe *c);

/*
 * Arm the sweep's timer if some relay is live and it is not armed. The
 * arm cannot fail for want of an SQE (the engine then sends it on the
 * loop's next turn): 0, or -ESHUTDOWN, when no sweep is owed. A refused
 * arm (-EBUSY, before the engine queued such arms) was retried from a
 * message to this shard, which needs pool memory too.
 */
static void sweep_arm(struct rp_shard *sh, struct relay_shard *rs)
{
	if (!rs->live || !rs->sweep_ns || !rs->sweep_timer || rp_timer_armed(rs->sweep_timer) ||
	    rp_shard_stopping(sh))
		return;
	(void)rp_timer_arm(sh, rs->sweep_timer, rs->sweep_ns, sweep, rs);
}

static void sweep(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct relay_shard *rs = arg;
	uint64_t now = relay_now_ns(), t0 = net_now_ns(), n = 0;

	(void)c;
	/* A relay with nothing in flight (one waiting for memory) finishes
	 * inside relay_end, and its done() may end, and so free, any other
	 * relay (rp_relay_abort on a partner): the step holds a reference on
	 * the relay it looks at and on the next one, so neither is freed under
	 * it; dropping it finishes a relay that ended meanwhile. A relay
	 * started from a done() goes to the head, unvisited. */
	struct rp_relay *r = rs->live, *next;

	if (r)
		r->pending++;
	while (r) {
		n++;
		/* Both readings lag the true time by less than the coarse
		 * clock's resolution, so the true idle time exceeds now -
		 * last_ns - res: the res of slack means a relay never ends
		 * before idle_ns. */
		if (!r->ended && r->cfg.idle_ns &&
		    now - r->last_ns >= r->cfg.idle_ns + rs->coarse_res_ns)
			relay_end(r, RP_RELAY_END_IDLE, -ETIMEDOUT);
		next = r->next; /* r is still listed: finish() unlinks it */
		if (next)
			next->pending++;
		relay_op_done(r);
		r = next;
	}
	rs->sw.sweeps++;
	rs->sw.visited += n;
	rs->sw.ns += net_now_ns() - t0;
	sweep_arm(sh, rs);
}

/* The sweep's timer is reserved once per shard (rp_relay_shard_init or the
 * first relay with an idle timeout) and kept until rp_relay_shard_exit, so
 * an empty pool at a re-arm cannot switch the idle timeouts off. */
static int sweep_reserve(struct rp_shard *sh, struct relay_shard *rs)
{
	if (!rs->sweep_timer)
		rs->sweep_timer = rp_timer_new(sh);
	return rs->sweep_timer ? 0 : -ENOMEM;
}

int rp_relay_shard_init(struct rp_shard *sh)
{
	struct relay_shard *rs;

	if (!sh)
		return -EINVAL;
	rs = relay_shard_get(sh);
	if (!rs || sweep_reserve(sh, rs) || relay_wait_reserve(sh, rs))
		return -ENOMEM;
	return 0;
}

/* ---- start ---- */

/* A start that reserved the shard's wait timer (@fresh) and then failed
 * gives it back while no relay runs: a refused start leaves the pool as
 * it found it (test_relay's prime_refused). */
static void wait_unreserve(struct rp_shard *sh, struct relay_shard *rs, bool fresh)
{
	if (fresh && !rs->live && !rs->waiting) {
		rp_timer_free(sh, rs->wait_timer);
		rs->wait_timer = NULL;
	}
}

int rp_relay_start(struct rp_shard *sh, int a, int b, const struct rp_relay_config *cfg,
		   rp_relay_done_fn done, void *arg, struct rp_relay **out)
{
	struct relay_shard *rs;
	struct rp_relay *r;
	bool fresh;
	int ret;

	if (out)
		*out = NULL;
	if (!sh || a < 0 || b < 0 || a == b)
		return -EINVAL;
	/* a flag this version does not know (RP_RELAY_AUTO_SPLICE_LOCAL, gone
	 * in 0.4) is refused, not ignored */
	if (cfg && (cfg->mode > RP_RELAY_SPLICE_URING || (cfg->flags & ~RP_RELAY_FLAGS_ALL)))
		return -EINVAL;
	/* a prime is copied into one pool block: above the pool's largest
	 * object it could never be sent, so it is refused here, not ended
	 * with RP_RELAY_END_NOMEM after the sockets were taken */
	for (int i = 0; cfg && i < 2; i++)
		if (cfg->prime_len[i] > RP_RELAY_PRIME_MAX || (cfg->prime_len[i] && !cfg->prime[i]))
			return -EINVAL;
	if ((ret = peer_socket_check(a)) || (ret = peer_socket_check(b)))
		return ret;
	if (rp_shard_stopping(sh))
		return -ESHUTDOWN;
	rs = relay_shard_get(sh);
	if (!rs)
		return -ENOMEM;
	/* a relay with an idle timeout starts only with a sweep to enforce it */
	if (cfg && cfg->idle_ns && sweep_reserve(sh, rs))
		return -ENOMEM;
	/* and only with the retry timer it waits on, should the pool run
	 * short later: reserved once per shard, so waiting needs no memory
	 * (a start that fails gives back one it reserved for no relay) */
	fresh = !rs->wait_timer;
	if (relay_wait_reserve(sh, rs))
		return -ENOMEM;
	r = rp_pool_alloc(rp_shard_pool(sh), sizeof(*r));
	if (!r) {
		wait_unreserve(sh, rs, fresh);
		return -ENOMEM;
	}
	memset(r, 0, sizeof(*r));
	r->sh = sh;
	r->paths = paths;
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
	/* the primes are queued before the relay exists for anyone: a copy
	 * that cannot be had is -ENOMEM here, the sockets still the caller's */
	for (int i = 0; i < 2; i++) {
		if (r->cfg.prime_len[i] &&
		    relay_copy_prime(&r->d[i], r->cfg.prime[i], r->cfg.prime_len[i])) {
			/* nothing was sent: the queues release what they hold now,
			 * each release dropping the reference its push took */
			relay_copy_drop(&r->d[0]);
			relay_copy_drop(&r->d[1]);
			rp_pool_free(r);
			wait_unreserve(sh, rs, fresh);
			return -ENOMEM;
		}
	}
	r->cfg.prime[0] = r->cfg.prime[1] = NULL;
	r->next = rs->live;
	if (rs->live)
		rs->live->prev = r;
	rs->live = r;
	rs->st.started++;
	rs->st.active++;
	if (r->cfg.idle_ns) {
		uint64_t q = r->cfg.idle_ns / 4;

		/* never raised again: a sweep already armed keeps its period */
		q = q < SWEEP_MIN_NS ? SWEEP_MIN_NS : q;
		if (!rs->sweep_ns || q < rs->sweep_ns)
			rs->sweep_ns = q < SWEEP_MAX_NS ? q : SWEEP_MAX_NS;
		sweep_arm(sh, rs);
	}
	if (out)
		*out = r;
	/* hold a reference across the starts: a path that fails at once ends
	 * the relay, which must not be freed under us */
	r->pending++;
	for (int i = 0; i < 2 && !r->ended; i++) {
		struct rdir *d = &r->d[i];

		if (r->cfg.prime_len[i] && d->path != PATH_COPY) {
			/* the primed bytes go by copy first; once they are
			 * sent the direction is quiet and switches */
			relay_copy_send_only(d);
			continue;
		}
		paths[d->path]->start(d);
	}
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
		[RP_RELAY_FB_SPLICE_ZERO] = "splice_zero",
		[RP_RELAY_FB_FCNTL] = "fcntl",
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
