/* SPDX-License-Identifier: MIT */
/*
 * What every server command of `ringplane` does the same way: one listener
 * per shard on the same address (SO_REUSEPORT), the "listening on" line,
 * the fd limit, and the control thread's wait for signals (SIGINT/SIGTERM
 * stop; SIGUSR1 or --stats-interval print the counters; SIGQUIT drains).
 *
 * Drain (SIGQUIT, rp_app_run_drain): the graceful shutdown of a rolling
 * restart behind a load balancer (nginx's SIGQUIT, HAProxy's soft-stop).
 * Every shard stops accepting at once (what the kernel already queued on
 * its listener taken in and served, then its multishot accept cancelled,
 * its listener shut down and closed: once every shard's is, the kernel
 * refuses new connections; a listener whose queue could not be emptied
 * for lack of descriptors stays open until it can, rp_app_accept_close)
 * and lets its command end what it holds gracefully, those taken at the
 * drain included; the process exits 0 when no shard has a connection
 * (or a listener held open) left, or at
 * --drain-timeout, where it stops as SIGTERM does. SIGINT/SIGTERM during a
 * drain stop at once; SIGUSR1 still prints the counters. The control thread
 * asks each shard its live connections by message every RP_APP_DRAIN_POLL_MS
 * (only while draining): nothing is added to a shard's hot path.
 */
#ifndef RP_APPS_SERVER_H
#define RP_APPS_SERVER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

struct rp_runtime;
struct rp_runtime_config;
struct rp_shard;

/* The most spare descriptors a drain's accept looks for (spare_fds). */
#define RP_APP_SPARE_MAX 4u

/* The listeners' backlog: the kernel queues up to one more completed
 * connection than this (net.core.somaxconn caps it lower). */
#define RP_APP_BACKLOG 4096u

/* CLOCK_MONOTONIC in ns: the one clock of apps/ (deadlines, the drain's
 * poll); the shards' hot paths count ticks or use the engine's. */
static inline uint64_t rp_app_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t rp_app_now_ms(void)
{
	return rp_app_now_ns() / 1000000u;
}

/*
 * Open @n listeners on @ss (SO_REUSEADDR|SO_REUSEPORT, RP_APP_BACKLOG) into
 * @fds. The first settles a port 0: @ss/@len are updated to the address
 * actually bound. On failure prints "ringplane CMD: listen on ARG: why",
 * closes what it opened (@fds back to -1) and returns the negative errno.
 */
int rp_app_listeners(const char *cmd, const char *arg, struct sockaddr_storage *ss,
		     socklen_t *len, int *fds, unsigned n);

/* What every server command parses the same way. */
struct rp_app_opts {
	const char *listen;	    /* --listen's argument; NULL until given */
	struct sockaddr_storage ss; /* its address (port 0 allowed) */
	socklen_t sslen;
	unsigned interval; /* --stats-interval in seconds; 0: on SIGUSR1 only */
	bool drain_set;	   /* --drain-timeout was given ... */
	unsigned drain_s;  /* ... its seconds (else RP_APP_DRAIN_DEFAULT_S) */
	unsigned pool_mb_min; /* --pool-mb's least, the command's own (set before parsing) */
	unsigned pool_mb;     /* --pool-mb's MB; 0 until given (the command's default) */
};

/* --pool-mb's most, and what the process needs besides the shards' pools
 * (stacks, rings, serve's file cache, the binary's pages): RP_APP_POOL_REST_MB
 * and RP_APP_POOL_REST_SHARD_MB a shard, kept under the cgroup's memory
 * limit by rp_app_runtime_listen's check (server.c says how they were
 * measured). Bare numbers: RP_APP_POOL_HELP prints them. */
#define RP_APP_POOL_MB_MAX	  65536
#define RP_APP_POOL_REST_MB	  4
#define RP_APP_POOL_REST_SHARD_MB 2
/* The end of each command's --pool-mb help (the command's own lines name
 * the range and the default), its lines indented by @ind. */
#define RP_APP_POOL_HELP(ind)                                                                \
	ind "the process needs shards x N MB + " RP_APP_DRAIN_STR(RP_APP_POOL_REST_MB)          \
	    " MB + " RP_APP_DRAIN_STR(RP_APP_POOL_REST_SHARD_MB) " MB a shard and\n" ind          \
	    "refuses to start (exit 1) past its cgroup's memory limit;\n" ind                     \
	    "a full pool closes new connections at accept (conn_nomem)\n"

/* --idle-spin's default and bound, relay and serve alike: the engine's
 * adaptive idle spin (cfg.idle_spin_ns). For serve at 4 KB and 8
 * keep-alive connections the sleep and its wake-up cost more than the gap
 * they cover (1.07-1.12x req/s); a shard that only streams large bodies
 * spun on its POLLOUT waits, 18-27% more CPU per GB at 64 MB, so serve
 * holds the spin while every connection is sending a body of 1 MB or more
 * (docs/net.md, "Measured: serve 4 KB at 8 connections"). The relay holds
 * none: its gaps end with its peers' bytes arriving, which the spin is for */
#define RP_APP_IDLE_SPIN_US_DEFAULT 50u
#define RP_APP_IDLE_SPIN_US_MAX	    1000u

/* --drain-timeout's default, 30 s: the grace period a supervisor commonly
 * gives before its SIGKILL (Kubernetes' terminationGracePeriodSeconds is
 * 30), so a drain that outlives it is cut by us, cleanly, not by a kill.
 * nginx (worker_shutdown_timeout) and HAProxy (hard-stop-after) have no
 * bound by default; one that never ends would hold a rolling restart.
 * Long downloads want more: at most 3600. 0: stop at once. */
#define RP_APP_DRAIN_DEFAULT_S 30
#define RP_APP_DRAIN_MAX_S     3600 /* both bare: RP_APP_DRAIN_HELP prints them */
/* The end of each command's --drain-timeout help (the command's own
 * sentence says what a drain ends how, then "and exit 0 when none is
 * left,"), its lines indented by @ind, the command's help column: the
 * range and default printed are those the code uses. */
#define RP_APP_DRAIN_STR_(x) #x
#define RP_APP_DRAIN_STR(x)  RP_APP_DRAIN_STR_(x)
#define RP_APP_DRAIN_HELP(ind)                                                        \
	ind "or after S seconds as on SIGTERM (0.." RP_APP_DRAIN_STR(RP_APP_DRAIN_MAX_S) \
	    ", default " RP_APP_DRAIN_STR(RP_APP_DRAIN_DEFAULT_S) ";\n" ind               \
	    "SIGINT/SIGTERM stop at once)\n"
/* The control thread's poll of the shards' live connections while draining. */
#define RP_APP_DRAIN_POLL_MS 50u

/*
 * Take getopt_long's @c and @arg when they are one of the options every
 * server command has: --listen ('l', into @o), --shards ('s', 1..@max_shards),
 * --cpus ('c'), --busy-poll ('b', us into @rc->spin_ns), --stats-interval
 * ('i', into @o), --drain-timeout ('D', 0..RP_APP_DRAIN_MAX_S s into @o), --pool-mb
 * ('P', @o->pool_mb_min..RP_APP_POOL_MB_MAX MB into @o) and --no-pin ('n'). Returns 1 when taken, 0 when @c is
 * none of them, -1 on a bad value ("ringplane CMD: ..." printed).
 */
int rp_app_server_opt(const char *cmd, int c, const char *arg, unsigned max_shards,
		      struct rp_runtime_config *rc, struct rp_app_opts *o);

/*
 * Create the runtime of @rc into *@rt (a failure said as "ringplane CMD:
 * runtime: why"), then one listener per shard on @o's address into a new
 * array *@lfds (rp_app_listeners; a port 0 settles in @o). Returns the
 * shard count, or 0 on failure; what was made is the caller's to free
 * either way (*@rt stays NULL when the create failed, *@lfds may be NULL).
 */
unsigned rp_app_runtime_listen(const char *cmd, const struct rp_runtime_config *rc,
			       struct rp_app_opts *o, struct rp_runtime **rt, int **lfds);

/* "HOST:PORT", or "[HOST]:PORT" for IPv6, into @out. */
void rp_app_addr_str(const struct sockaddr_storage *ss, char *out, size_t cap);

/* Raise RLIMIT_NOFILE's soft limit to the hard one (a descriptor per connection). */
void rp_app_raise_nofile(void);

/* Block SIGINT, SIGTERM, SIGQUIT and SIGUSR1 in the calling thread (the shard threads
 * it starts inherit the mask) and ignore SIGPIPE; *@sigs gets the set. */
void rp_app_block_signals(sigset_t *sigs);

/* Wait for SIGINT, SIGTERM or SIGQUIT; on SIGUSR1, or every @interval
 * seconds when not 0, call @stats(@arg). Returns the signal that ended it. */
int rp_app_wait_signals(const sigset_t *sigs, unsigned interval, void (*stats)(void *),
			void *arg);

/* "ringplane CMD: WHAT: why" on stderr, why being rp_engine_error() when it
 * has a line and strerror(-@err) otherwise (a failed runtime create or start). */
void rp_app_runtime_error(const char *cmd, const char *what, int err);

/* Start @rt's shards (each init takes its listener); on success print
 * "listening on ADDR" for @ss on stdout (not yet flushed), on failure
 * "ringplane CMD: start: why". Returns rp_runtime_start's result. */
int rp_app_start(const char *cmd, struct rp_runtime *rt, const struct sockaddr_storage *ss);

/*
 * A command's part of the drain: @step runs on each shard's own thread, by
 * message, at SIGQUIT and then every RP_APP_DRAIN_POLL_MS until the exit.
 * Its first call stops the shard's accept (rp_app_accept_close) and starts
 * ending what the command ends gracefully; every call returns the shard's
 * live connections (0: nothing left). Idempotent.
 */
struct rp_app_drain {
	unsigned (*step)(struct rp_shard *sh);
};

/*
 * Flush stdout (the "listening on" line scripts wait for) and serve until
 * SIGINT/SIGTERM (rp_app_wait_signals: SIGUSR1 or @o's --stats-interval
 * call @stats(@arg)); on SIGQUIT, the drain of @d (NULL, or
 * --drain-timeout 0: SIGQUIT stops as SIGTERM does) until every shard's
 * step said 0, @o's --drain-timeout after the SIGQUIT, or a SIGINT/SIGTERM;
 * stderr says "draining" at the SIGQUIT and how the drain ended. Then stop
 * @rt and join its shards. Returns rp_runtime_wait's result.
 */
int rp_app_run_drain(struct rp_runtime *rt, const sigset_t *sigs, const struct rp_app_opts *o,
		     void (*stats)(void *), void *arg, const struct rp_app_drain *d);

/* From the control thread: each of @rt's shards runs @fn(sh, NULL) on its own
 * thread (a stats line: a shard's counters are its own, read only there).
 * A shard whose queue is full, that stops or lacks memory skips this round. */
void rp_app_on_each_shard(struct rp_runtime *rt, void (*fn)(struct rp_shard *sh, void *arg));

/* Close the listeners of @fds[0..@n) no shard took (>= 0); @fds may be NULL. */
void rp_app_close_listeners(const int *fds, unsigned n);

/* A one-shot timer that re-arms what failed (an accept ended by EMFILE, a
 * multishot accept the engine could not arm). Its op is reserved up front
 * (rp_app_backoff_init: an engine rp_timer), so arming it never fails for
 * lack of memory, which is when it is needed. Lives in the shard's state. */
struct rp_app_backoff {
	bool pending; /* a timer is armed and will call fn */
	void (*fn)(struct rp_shard *sh, void *arg);
	void *arg;
	struct rp_timer *timer; /* the reserved timer; NULL before init */
};

/* Reserve @b's timer (from the shard's init): 0 or -ENOMEM. Idempotent. */
int rp_app_backoff_init(struct rp_shard *sh, struct rp_app_backoff *b);
/* Give the reserved timer back (fini); an armed one is cancelled. */
void rp_app_backoff_fini(struct rp_shard *sh, struct rp_app_backoff *b);

/*
 * Call @fn(@sh, @arg) after @ns, unless @b's timer is already armed (that one
 * will) or @sh is stopping (0 both); the timer does not call @fn once @sh
 * stops. Returns 0, or -ENOMEM when @b never reserved its timer (the
 * caller must then try again on some later event); a full SQ no longer
 * refuses the arm (the engine sends it on the loop's next turn). Call
 * only on @sh's thread.
 */
int rp_app_backoff_arm(struct rp_shard *sh, struct rp_app_backoff *b, uint64_t ns,
		       void (*fn)(struct rp_shard *sh, void *arg), void *arg);

/*
 * A shard's listener and its multishot accept, with the one recovery every
 * server command shares: an accept that ends (EMFILE, ENFILE, ENOBUFS) or
 * cannot be armed (ENOMEM, EBUSY) is armed again after @backoff_ns by the
 * reserved back-off timer (at once instead when EMFILE or ENFILE ended it
 * and @shed gave descriptors back); that timer's arm cannot fail (its op
 * is reserved, and a full SQ only delays it a loop turn), so the listener
 * never silently stays down. Fill cmd, id,
 * lfd, backoff_ns, spare_fds, cb, arg, shed and the counters, the rest zero; then
 * rp_app_accept_start from the shard's init and rp_app_accept_fini from
 * its fini. Lives in the shard's state; call only on its thread.
 * Test hooks, compiled into the faults build (-Dfaults=true) only
 * (environment, read once): RP_APP_FAULT_REARM=N makes the next N accept
 * arms fail with ENOMEM, RP_APP_FAULT_START=N the next N
 * rp_app_accept_start leave the accept down (not armed, the back-off to
 * arm it; with RP_APP_FAULT_REARM it stays down: every connection waits in
 * the listener's queue, as test_drain's queued cases want).
 */
struct rp_app_accept {
	const char *cmd;	/* "echo", "relay", "serve": for its messages */
	unsigned id;		/* the shard's id */
	int lfd;		/* the listener (the shard's); -1 once closed */
	uint64_t backoff_ns;
	/* the descriptors a connection may take besides its own (the relay's
	 * upstream; the two a file's first open takes in serve's cache):
	 * the drain takes one in only with as many spare (RP_APP_SPARE_MAX) */
	unsigned spare_fds;
	void (*cb)(struct rp_shard *sh, void *arg, const struct rp_cqe *cq); /* on_accept */
	void *arg;
	/* an accept (or the drain's spare) out of descriptors (EMFILE,
	 * ENFILE): close some the command keeps only for reuse (serve's open
	 * files) and say how many; more than 0 and the accept is tried again
	 * at once instead of after the back-off. NULL: none kept */
	unsigned (*shed)(struct rp_shard *sh, void *arg);
	uint64_t *errors;	/* failed accepts (not -ECANCELED); NULL: not counted */
	uint64_t *rearm_failed; /* arms that failed; NULL: not counted */
	uint64_t *drain_retries; /* passes over a held listener's queue; NULL: not counted */
	uint64_t *drain_reset;	 /* queued connections a drained listener's close reset
				    (its TCP_INFO queue length then); NULL: not counted */
	struct rp_op *op;	/* the multishot accept; NULL while down */
	bool down;		/* it must be armed again */
	bool failing;		/* an arm failed: said once, until one works */
	bool closed;		/* rp_app_accept_close ran: never armed again */
	/* drained, but out of descriptors (or memory) with connections still
	 * queued: the listener is kept open (no accept armed on it) until a
	 * pass of rp_app_accept_close empties its queue, or the stop */
	bool held;
	bool said_held;	/* the drain's accept failure was said */
	bool in_queued; /* a pass runs: a poke from its callback waits */
	/* rp_app_accept_pause: kept down (nothing arms it: not the back-off,
	 * a poke, an ended accept) until rp_app_accept_resume */
	bool paused;
	struct rp_app_backoff backoff;
};

/* From the shard's init: reserve @a's back-off timer, then arm the accept
 * the first time. 0, or the negative errno (-ENOMEM, or the accept's):
 * the init fails with it. */
int rp_app_accept_start(struct rp_shard *sh, struct rp_app_accept *a);

/* From the shard's fini (also after a failed init): give the reserved
 * timer back. */
void rp_app_accept_fini(struct rp_shard *sh, struct rp_app_accept *a);

/* Arm @a's accept again: 0, or the negative errno of a failure, after
 * which the recovery above re-arms it (said once on stderr: "cannot arm
 * accept: why; retrying every N ms", or, when the back-off timer failed
 * too, "...; retrying when a connection closes"). */
int rp_app_accept_arm(struct rp_shard *sh, struct rp_app_accept *a);

/* The drain: take every connection the kernel completed and queued on
 * @a's listener (non-blocking accept4, at most RP_APP_BACKLOG + 1 a pass;
 * each handed to @a's cb as the multishot accept would: a CQE with the fd
 * as res and RP_CQE_MORE, so the command serves it under the drain's rules
 * and counts it live; a failure other than EAGAIN counted in errors), then
 * cancel the accept, shut the listener down (a multishot accept the cancel
 * could not reach ends with it, the kernel refuses new connections and
 * resets what completed in the microseconds since the last accept4: counted
 * in drain_reset) and close it. When a pass stops for lack of descriptors
 * or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) with connections still
 * queued the listener is kept open instead (held; said once on stderr; a
 * spare that cannot be had for an empty queue ends the pass as EAGAIN): every later call, and every
 * rp_app_accept_poke (a connection closed, a tick), runs another pass
 * (counted in drain_retries), the first that ends with the queue empty
 * shuts and closes it; at the stop (the drain's deadline)
 * rp_app_accept_stop closes it, the queue left reset and counted. A
 * command's drain step counts a held listener as something left (@a's
 * held). Nothing arms the accept again: not a poke, a tick, nor the
 * back-off timer; a fd the multishot accept delivers after this is served
 * (rp_app_accepted). Runs @a's cb on the calling shard's thread.
 * Idempotent once the listener is closed. */
void rp_app_accept_close(struct rp_shard *sh, struct rp_app_accept *a);

/* From the command's stop: close @a's listener if still open; one the
 * drain held open (above) has its queue reset: counted in drain_reset
 * and said on stderr ("drain ended with the listener's queue not
 * emptied: N queued connections reset"). */
void rp_app_accept_stop(struct rp_shard *sh, struct rp_app_accept *a);

/* Something was freed (a connection closed) or time passed (a tick): if
 * @a's accept is down and no back-off timer will arm it, arm it now; if
 * the drain holds @a's listener open, take in what is queued on it
 * (rp_app_accept_close). */
void rp_app_accept_poke(struct rp_shard *sh, struct rp_app_accept *a);

/*
 * Keep @a's accept down while the command cannot take a client in (the
 * relay's clients wait for descriptors for their upstream): its multishot
 * accept is cancelled (a fd it delivers before the cancel lands is still
 * served; a cancel that cannot be sent leaves it running until it ends,
 * at the latest with EMFILE) and neither rp_app_accept_arm, a poke nor
 * the back-off arms it until rp_app_accept_resume, which arms it again at
 * once (a drained listener stays closed). New clients wait in the
 * listener's queue meanwhile, as with an accept that failed. Idempotent.
 */
void rp_app_accept_pause(struct rp_shard *sh, struct rp_app_accept *a);
void rp_app_accept_resume(struct rp_shard *sh, struct rp_app_accept *a);

/*
 * The top of every on_accept: the accepted fd to serve (>= 0), or -1 when
 * @cq brings none: an error (counted unless -ECANCELED or after
 * rp_app_accept_close; the accept backs off when it ended) or a stopping
 * shard (the new fd is closed). A draining shard's fd is served: the
 * kernel completed that connection before the listener was shut.
 */
int rp_app_accepted(struct rp_shard *sh, struct rp_app_accept *a, const struct rp_cqe *cq);

/*
 * Clients refused at accept for want of pool room, looked at again before
 * they are closed: the room is often short only until the loop's next
 * round (serve: an answer sent whole holds its state and a 64 B end
 * message until that message runs; the relay: a closing connection's
 * objects come back once its ends complete), and a client refused then
 * was closed with room to spare a round later. A refused client waits on
 * @q (RP_APP_AGAIN_MAX a shard; more are refused at once) behind ONE
 * self-posted message for all of them (a message is itself a 64 B object
 * out of the pool until it runs: a message a client refused the next
 * one again), which runs in the loop's next drain, after the messages
 * the refusal's round posted; those still short are looked at again from
 * the reserved timer @t, RP_APP_AGAIN_GAP_NS apart (a message posted from
 * a pass would run in the same drain, with no completion reaped between),
 * RP_APP_AGAIN_TRIES passes in all; then, or at once when the shard
 * stops, @refuse closes them. Fill take, refuse and arg, the rest zero;
 * rp_app_again_init from the shard's init, rp_app_again_fini from its
 * fini. A command's drain step counts @n as connections left. Lives in
 * the shard's state; shard thread only.
 */
#define RP_APP_AGAIN_MAX    64u
#define RP_APP_AGAIN_TRIES  3u
#define RP_APP_AGAIN_GAP_NS 2000000ull
struct rp_app_again {
	/* take @fd in: true when taken, false (@fd left open) while the
	 * pool has no room for it */
	bool (*take)(struct rp_shard *sh, void *arg, int fd);
	/* close @fd and count it (conn_nomem) */
	void (*refuse)(struct rp_shard *sh, void *arg, int fd);
	void *arg;
	struct rp_timer *t; /* reserved at init: a re-arm needs no memory */
	unsigned n;	    /* on q now, oldest first */
	bool due;	    /* the next pass is queued: its message, or t armed */
	struct {
		int fd;
		unsigned tries; /* passes so far */
	} q[RP_APP_AGAIN_MAX];
};

/* Reserve @a's timer: 0 or -ENOMEM (the init fails with it). */
int rp_app_again_init(struct rp_shard *sh, struct rp_app_again *a);

/* @fd was just refused (take said false): listed for the next pass, or,
 * with the list full, no message to be had or @sh stopping, refused now. */
void rp_app_again_add(struct rp_shard *sh, struct rp_app_again *a, int fd);

/* From the shard's fini: refuse the clients a pass the stop left undone
 * still lists, give the timer back. */
void rp_app_again_fini(struct rp_shard *sh, struct rp_app_again *a);

/*
 * True when @sh's pool is too full to take one more connection: what its
 * callers hold (provided buffers, connections, ops, queued bytes), plus
 * @pending (what the caller's accepted connections will still take: a
 * burst is accepted before any of its relays start), leaves less than a
 * reserve of the arena, 2 MB or a sixteenth of it, whichever is more.
 * Bytes only: the reserve is not also asked for in whole free spans. The
 * classes a running relay copies through (64 B .. 2048 B) hold one span
 * each, and at 22 MB they take every span the provided buffers leave, so
 * such a check closed every new client at accept while any one relay was
 * backed up (apps/test_pool.sh, "a relay backed up does not close the
 * newcomers"); the room in spans is the relay's per-class headroom below.
 * The relay asks at accept, so that a full pool closes a new client there
 * (conn_nomem), not after an upstream was connected for it: at 22 MB and
 * 5000 idle clients its 915-920 refusals were all failed connects and
 * starts (ENOMEM) and relays ended nomem, none at accept. It does not
 * promise the established connections room in the classes they need:
 * the relay adds a per-class headroom for that (apps/cmd_relay.c,
 * headroom_short; docs/net.md, "Idle newcomers can starve the running
 * relays").
 */
#define RP_APP_POOL_RESERVE_MIN ((size_t)2 << 20)
bool rp_app_pool_low(struct rp_shard *sh, size_t pending);

/*
 * rp_app_room_short - true when @pool cannot give, for each k < @n,
 * @want[k] objects of @size[k]. Each class counts what it can give
 * without a new span (rp_pool_class_free less the free spans' share); what
 * it lacks is taken in whole spans, and the sum of those must be free
 * (rp_pool_spans_free): the free spans are counted once, not once a class.
 * Counted first without a flush; only when short are the classes' caches
 * and the remote frees given back to their spans and the count taken
 * again. Owner thread. The relay's headroom at accept and serve's room
 * for its clients both ask it.
 */
bool rp_app_room_short(struct rp_pool *pool, const size_t *size, const size_t *want, unsigned n);

#endif
