/* SPDX-License-Identifier: MIT */
/*
 * ringplane relay: move bytes both ways between two connected sockets on a
 * shard, until both directions have ended.
 *
 * Semantics (each direction on its own):
 * - bytes arrive at the other side unchanged and in order;
 * - EOF on a side is passed on as shutdown(SHUT_WR) to the other side once
 *   every byte before it was delivered; the other direction keeps flowing;
 * - a reset (or any error) on either side resets the other (SO_LINGER 0,
 *   then close) and ends the relay;
 * - at most cfg.max_inflight bytes are held per direction: above it the
 *   relay stops reading that side (back-pressure) and resumes below half.
 * - lack of pool memory does not end an established relay: a direction
 *   that cannot queue what it received keeps it without allocating (a
 *   slot per provided buffer in the shard's state), stops reading and
 *   retries every 1 ms from a reserved timer, bytes kept in order; an op
 *   that cannot be had (a recv, a poll, a splice), or a stop-reading cancel
 *   the full SQ refused (it needs no memory: rp_cancel_op), is retried the
 *   same way. Counted in rp_relay_wait_stats. Still ended
 *   RP_RELAY_END_NOMEM: a relay that finds no park slot (only past 65535
 *   provided buffers on the shard), counted in park_full. Known gap: a
 *   retry timer the SQ refused (-EBUSY) is re-armed only by a later wait
 *   or tick, so waiting relays can stall (docs/net.md, "Known gaps").
 * The relay ends when both directions ended (or on an error); it then
 * closes both sockets (unless RP_RELAY_KEEP_FDS) and calls done() once.
 *
 * Paths ("modes"), one file each behind relay.c:
 * - RP_RELAY_COPY (relay_copy.c): multishot recv into the shard's provided
 *   buffers, sendmsg straight from those buffers (no second copy), short
 *   sends continued. An idle connection holds no buffer.
 * - RP_RELAY_SPLICE (relay_splice.c): socket -> pipe -> socket with
 *   splice(2) on the shard thread, driven by readiness (rp_poll), with a
 *   pipe from the shard's bounded pipe pool taken only while bytes are in
 *   flight. Where no pipe can be had (pool empty, pipe-user-pages limits,
 *   F_SETPIPE_SZ refused) or splice is refused (EINVAL: a socket type
 *   without splice support), that direction falls back to copy, counted by
 *   reason.
 * - RP_RELAY_SPLICE_URING (relay_uring.c): IORING_OP_SPLICE both ways, on
 *   blocking sockets (the kernel runs it in io-wq, with no poll of its own),
 *   a read issued only once a poll on the ring says the socket is readable:
 *   an idle direction holds a pipe and an armed poll. Each direction takes
 *   its pipe from the same pool at its start and keeps it for the relay's
 *   life; where none can be had it falls back to copy, counted by reason,
 *   as splice does (never an end). Kept to measure the splice path
 *   against; never chosen by auto.
 * - RP_RELAY_AUTO: starts in copy; a direction that streams (reads that fill
 *   whole buffers, 3 in a row, the count reset after 1 s without a read)
 *   moves to splice; one whose splice reads come back short (under 4 KB,
 *   each into an empty pipe, 3 in a row) moves back. HAProxy's splice-auto
 *   rule, for every receiver:
 *   one on this host (loopback, a veth) splices too, alone on its shard
 *   or not (a lone stream through copy had no throughput edge beyond the
 *   runs' spread: none on loopback, a median lead inside the
 *   interquartile ranges over a veth; at 1.6-2.3x splice's CPU per GB:
 *   docs/net.md).
 *
 * The pipe pool (splice, uring-splice): a pipe given back empty is kept for
 * reuse, up to the pool's bound of 256 per shard; one given back with
 * bytes in it is closed. Idle ones are trimmed: while the pool holds pipes
 * a timer runs every second and closes as many as the pool never went
 * below during that second (counted in pipes_trimmed), so a steady load
 * keeps its working set and an idle shard holds no pipe (no descriptor,
 * none of the user's fs.pipe-user-pages budget) about 2 s after its last
 * splice; an empty pool arms no timer. rp_relay_shard_exit closes the
 * rest. pipes_live counts the kept ones with those in use. A caller out
 * of descriptors need not wait for the trim: rp_relay_shard_shed_pipes
 * closes every pooled pipe at once (counted in pipes_shed).
 *
 * Threads: everything runs on the shard that called rp_relay_start; the
 * sockets must not be used by anyone else meanwhile.
 */
#ifndef RINGPLANE_RELAY_H
#define RINGPLANE_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringplane/engine.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rp_relay;

enum rp_relay_mode {
	RP_RELAY_AUTO = 0,
	RP_RELAY_COPY = 1,
	RP_RELAY_SPLICE = 2,
	RP_RELAY_SPLICE_URING = 3, /* both ways IORING_OP_SPLICE in io-wq: to measure */
};

enum {
	RP_RELAY_KEEP_FDS = 1u << 0, /* do not close the sockets at the end */
	RP_RELAY_FLAGS_ALL = RP_RELAY_KEEP_FDS, /* any other bit: rp_relay_start -EINVAL */
};

/* Why a direction left splice for copy (rp_relay_stats.splice_fallback[]). */
enum rp_relay_fallback {
	RP_RELAY_FB_NO_PIPE = 0,  /* the shard's pipe pool was empty */
	RP_RELAY_FB_PIPE_LIMIT,	  /* pipe(2) refused: EMFILE/ENFILE/ENOMEM/EPERM */
	RP_RELAY_FB_PIPE_SIZE,	  /* F_SETPIPE_SZ refused (pipe-user-pages limits) */
	RP_RELAY_FB_EINVAL,	  /* splice(2) refused the fds */
	RP_RELAY_FB_SPLICE_ZERO,  /* splice(2) from the socket returned 0 four times in a
				     row while a peek found bytes (a spin otherwise) */
	RP_RELAY_FB_FCNTL,	  /* fcntl(F_SETFL) refused to change O_NONBLOCK on a
				     socket (splice and uring-splice need it set or
				     cleared); splice never ran */
	RP_RELAY_FB_NR,
};

/* Why a relay ended (done() gets it; counted in rp_relay_stats). */
enum rp_relay_end {
	RP_RELAY_END_CLOSED = 0, /* both directions reached EOF and passed it on */
	RP_RELAY_END_RESET,	 /* a side reset or failed: the other was reset */
	RP_RELAY_END_IDLE,	 /* idle timeout */
	RP_RELAY_END_ABORT,	 /* rp_relay_abort or the shard stopping */
	RP_RELAY_END_NOMEM,	 /* an op or a buffer could not be had */
};

struct rp_relay_result {
	enum rp_relay_end end;
	int err;		/* the first error seen (negative errno), 0 if none */
	uint64_t bytes[2];	/* [0]: a -> b, [1]: b -> a */
	uint64_t spliced[2];	/* of which moved by splice */
};

typedef void (*rp_relay_done_fn)(struct rp_shard *sh, void *arg,
				 const struct rp_relay_result *res);

struct rp_relay_config {
	enum rp_relay_mode mode;
	unsigned flags;		/* RP_RELAY_* */
	size_t max_inflight;	/* bytes held per direction (default 256 KB) */
	uint64_t idle_ns;	/* end the relay after this long without a byte (0: never);
				 * ended after at least idle_ns, normally within a quarter
				 * of it (at most 250 ms) and a clock tick more */
	/* bytes to send to b ([0]) and to a ([1]) before anything relayed that
	 * way (a PROXY header, bytes read past one); copied at start into the
	 * shard's pool, at most RP_RELAY_PRIME_MAX bytes each: every byte is
	 * sent, or rp_relay_start fails (-EINVAL: longer, or NULL with a
	 * length; -ENOMEM: no pool memory for the copy) */
	const void *prime[2];
	size_t prime_len[2];
};

/* The longest prime per direction: the shard pool's largest object. */
#define RP_RELAY_PRIME_MAX ((size_t)1 << 20)

#define RP_RELAY_ERRNO_MAX 134 /* errnos counted one by one (Linux: EHWPOISON 133) */

/* Per-shard counters of every relay that ran on the shard. */
struct rp_relay_stats {
	uint64_t started, active, ended[5]; /* ended[] by enum rp_relay_end */
	uint64_t bytes_copied[2], bytes_spliced[2]; /* [0] a -> b, [1] b -> a */
	uint64_t half_closes;	/* EOFs passed on with shutdown(SHUT_WR) */
	uint64_t resets_passed;	/* resets passed on to the other side */
	uint64_t paused;	/* times a direction stopped reading (back-pressure, or a buffer parked for lack of memory) */
	uint64_t spilled;	/* buffers copied aside so the shard got them back */
	uint64_t to_splice, to_copy; /* auto mode switches */
	uint64_t splice_fallback[RP_RELAY_FB_NR];
	uint64_t pipes_live, pipes_max;
	uint64_t pipes_trimmed;	/* idle pooled pipes closed by the pool's trim */
	uint64_t pipes_shed;	/* pooled pipes closed by rp_relay_shard_shed_pipes */
	/* relays ended as RP_RELAY_END_RESET, by the errno of the error that
	 * ended them ([0]: no errno, or one of RP_RELAY_ERRNO_MAX or above) */
	uint64_t reset_errno[RP_RELAY_ERRNO_MAX];
};

/*
 * Per-shard counters of the waits for pool memory (rp_relay_wait_stats).
 * An established relay is not cut for lack of pool memory: a copy
 * direction that cannot queue a received buffer keeps it ("parks" it, in a
 * per-shard table of one slot per provided buffer, so that needs no
 * memory), stops reading, and retries from a reserved 1 ms timer until
 * the buffer is queued, then reads again, bytes in order; a recv, a cancel,
 * a poll or a splice op that cannot be had is retried the same way.
 */
struct rp_relay_wait_stats {
	uint64_t waits;	     /* a direction began to wait (once until it goes on): a
				buffer parked, or an op not had (a recv, its cancel,
				a poll, a splice) */
	uint64_t parked;     /* received buffers parked */
	uint64_t parked_now; /* parked and not yet queued (gauge) */
	uint64_t parked_max; /* the most parked at once on the shard */
	uint64_t park_full;  /* relays ended RP_RELAY_END_NOMEM: no park slot (cannot
				happen while the shard has at most 65535 buffers) */
	uint64_t retries;    /* waiting directions the retry timer tried again */
	uint64_t waiting;    /* directions waiting now (gauge) */
};

/*
 * rp_relay_wait_stats - a copy of shard @sh's wait counters (zeros where
 * the shard never ran a relay). Call on @sh's thread.
 */
void rp_relay_wait_stats(struct rp_shard *sh, struct rp_relay_wait_stats *out);

/*
 * rp_relay_start - relay between sockets @a and @b (connected, owned by the
 * caller until now, used by nobody else afterwards) on shard @sh. @cfg is
 * copied; NULL means defaults (auto mode). @done runs once, on @sh, when the
 * relay ended; after it the relay handle is gone. Returns 0 and *@out (may be
 * NULL), or -EINVAL (a bad fd: negative, not open, or both the same; an
 * unknown mode, a flag outside RP_RELAY_FLAGS_ALL, a prime longer than
 * RP_RELAY_PRIME_MAX or NULL with a length), -ENOTSOCK (@a or @b is open
 * but not a socket: a pipe, a file), -ENOMEM (no memory for the relay, the
 * shard's first wait timer (once per shard: rp_relay_shard_init) or a
 * prime's copy), -ESHUTDOWN (nothing was started; the fds are still the
 * caller's). The checks cost one getsockopt(2) per socket at the start.
 */
int rp_relay_start(struct rp_shard *sh, int a, int b, const struct rp_relay_config *cfg,
		   rp_relay_done_fn done, void *arg, struct rp_relay **out);

/* rp_relay_abort - end the relay now: both sides are reset and done() runs
 * with RP_RELAY_END_ABORT once the ops in flight have completed: before
 * rp_relay_abort returns when none is (a relay waiting for pool memory),
 * so the relay and what done() frees must not be touched after the call. */
void rp_relay_abort(struct rp_shard *sh, struct rp_relay *r);

/* A copy of this shard's relay counters (all 0 before its first relay or
 * rp_relay_shard_init, and after rp_relay_shard_exit). Call on the shard. */
void rp_relay_stats(struct rp_shard *sh, struct rp_relay_stats *out);

/* The idle sweep's own counters on a shard (rp_relay_sweep_stats). */
struct rp_relay_sweep_stats {
	uint64_t sweeps;       /* sweeps run */
	uint64_t visited;      /* relays looked at, all sweeps together */
	uint64_t ns;	       /* CLOCK_MONOTONIC time the sweeps took, together */
	/* arms of the sweep's timer refused: always 0 now. rp_timer_arm used
	 * to refuse one with the SQ full and the kernel refusing every flush
	 * (-EBUSY); it arms it all the same since, and the engine sends it on
	 * the loop's next turn. Kept for the layout. */
	uint64_t rearm_failed;
};

/* A copy of this shard's idle sweep counters (all 0 before its first
 * relay or rp_relay_shard_init). Call on the shard. */
void rp_relay_sweep_stats(struct rp_shard *sh, struct rp_relay_sweep_stats *out);

/*
 * rp_relay_shard_init - set up this shard's relay state now, with the idle
 * sweep's and the wait's reserved timers (rp_timer_new), so that no relay
 * start needs them later and no empty pool at a re-arm can switch idle
 * timeouts or the waits off. Call from the shard's init; optional (the
 * first rp_relay_start does it, and fails with -ENOMEM if it cannot).
 * Returns 0, -EINVAL, -ENOMEM.
 */
int rp_relay_shard_init(struct rp_shard *sh);

/*
 * rp_relay_shard_shed_pipes - close every pipe pooled on shard @sh now
 * (two descriptors each), for a caller out of descriptors: a socket(2) or
 * an accept that failed with EMFILE or ENFILE, to try again at once
 * rather than wait up to 2 s for the pool's trim. Only idle pooled pipes
 * are closed, never one a relay's direction holds (bytes in flight, or a
 * uring-splice direction's for its relay's life); a later splice takes a
 * new pipe as usual. close(2) runs synchronously here: not for the hot
 * path. Returns how many pipes were closed (0: none pooled, or @sh NULL),
 * also counted in rp_relay_stats.pipes_shed (not in pipes_trimmed). Call
 * on @sh's thread.
 */
unsigned rp_relay_shard_shed_pipes(struct rp_shard *sh);

/*
 * rp_relay_shard_end - end every relay still waiting or live on shard @sh
 * (a stop whose deadline left its ops to the kernel), as
 * rp_relay_shard_exit would, but keep the shard's relay state: each is
 * ended RP_RELAY_END_ABORT, its sockets closed (unless RP_RELAY_KEEP_FDS)
 * and its done() run once, before this returns, and the counters
 * (rp_relay_stats, rp_relay_wait_stats, rp_relay_sweep_stats) count those
 * ends until rp_relay_shard_exit. For an exit report: call it from the
 * shard's fini (only there: the ops those relays had in flight never
 * complete after the loop, and the relays are finished without them),
 * then read the counters, then call rp_relay_shard_exit. Calling it again
 * ends nothing. Called while @sh's loop still runs (rp_shard_loop_over
 * false: init, a message, a callback, on_stop) it does nothing and
 * returns 0: the relays go on as before the call. Returns the number of
 * relays it ended (0 also when @sh is NULL, has no relay state, or its
 * loop is not over). Call on @sh's thread.
 */
unsigned rp_relay_shard_end(struct rp_shard *sh);

/* Free the shard's relay state (its idle pipes, the sweep's timer): call
 * from the shard's fini. A relay still waiting or live then (a stop whose
 * deadline left its ops to the kernel) is ended here first, as
 * rp_relay_shard_end ends it: after this the counters are gone (a
 * report that must count those ends calls rp_relay_shard_end, reads the
 * counters, then this). Called while @sh's loop still runs
 * (rp_shard_loop_over false: init, a message, a callback, on_stop) it
 * does nothing: the relays go on, the state and counters stay, and the
 * call from fini frees them. Nothing either when @sh is NULL or has no
 * relay state. Call on @sh's thread. */
void rp_relay_shard_exit(struct rp_shard *sh);

const char *rp_relay_mode_name(enum rp_relay_mode m);
const char *rp_relay_fallback_name(enum rp_relay_fallback f);
const char *rp_relay_end_name(enum rp_relay_end e);

#ifdef __cplusplus
}
#endif

#endif /* RINGPLANE_RELAY_H */
