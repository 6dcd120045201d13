/* SPDX-License-Identifier: MIT */
/*
 * Relay internals shared by relay.c (the connection pair: start, ends,
 * half-close, reset, idle sweep, auto mode) and one file per transfer path
 * (relay_copy.c, relay_splice.c) behind a small table of direction
 * operations, after Redis's ae.c over its backends. Not installed.
 */
#ifndef RP_NET_RELAY_IMPL_H
#define RP_NET_RELAY_IMPL_H

#include <ringplane/engine.h>
#include <ringplane/outq.h>
#include <ringplane/pool.h>
#include <ringplane/relay.h>

#include "splice_zero.h"

enum rdir_path { PATH_COPY = 0, PATH_SPLICE = 1, PATH_URING = 2, PATH_COUNT };

struct rdir {
	struct rp_relay *r;
	int from, to;
	uint8_t idx;	/* 0: a -> b, 1: b -> a */
	uint8_t path;	/* enum rdir_path now in use */
	uint8_t want;	/* the path auto mode wants: switched to once quiet */
	bool eof;	/* read side reached EOF */
	bool shut;	/* shutdown(SHUT_WR) sent to @to */
	bool done;	/* EOF passed on: this direction is over */
	bool paused;	/* stopped reading: too much held */
	bool stalled;	/* splice: @to not writable, POLLOUT armed */
	bool started;	/* moved at least one byte (prime refused after) */
	uint8_t wait;	/* WAIT_*: what the shard's retry tick must do again */
	uint8_t streak; /* auto: reads in a row that filled a whole buffer */
	uint64_t read_ns; /* auto: the last read (the streak restarts after 1 s idle) */
	/* copy */
	struct rp_op *recv_op; /* alive multishot recv, or NULL */
	struct rp_outq *q;     /* the sends, while bytes are queued (else NULL) */
	unsigned nodes, held;  /* pieces pushed and not released; provided buffers among them */
	size_t queued;	       /* bytes pushed and not released */
	uint64_t counted;      /* bytes of q's sends counted as moved */
	/* received buffers that could not be queued for lack of pool memory,
	 * oldest first: slots of the shard's park table (relay_shard.park) */
	uint16_t park_head, park_tail, nparked;
	/* the shard's list of waiting directions (relay_shard.waiting, or
	 * .wait_run while the tick runs it), doubly linked: a relay that
	 * ends leaves it at once (relay_end), not at the next tick */
	struct rdir *wnext, *wprev;
	/* splice */
	struct rp_op *poll_op;
	struct rp_op *in_op, *out_op; /* uring: the splices in flight */
	bool readable;	/* uring: poll said @from has data (or EOF): splice it in */
	uint8_t zeros;	/* splice: socket -> pipe splices in a row that returned 0
			   while a peek found bytes (SPLICE_ZERO_DATA) */
	int pipe[2];
	size_t in_pipe;
	uint64_t bytes, spliced;
};

struct relay_path;

/*
 * Waiting instead of cutting. A direction that cannot go on for lack of
 * pool memory (a received buffer it cannot queue, an op it cannot get) goes
 * on the shard's wait list (relay_wait), holding a reference to its relay,
 * and the shard's reserved retry timer calls each waiting direction's
 * paths' retry every WAIT_NS until it can go on. The bits say what to do
 * again; a parked buffer is in d->nparked.
 */
enum {
	WAIT_LISTED = 1u << 0, /* on the shard's wait list */
	WAIT_REARM = 1u << 1,  /* copy: the multishot recv could not be armed */
	WAIT_CANCEL = 1u << 2, /* copy: the recv's cancel could not be had */
	WAIT_SPLICE = 1u << 3, /* splice: a poll (or its cancel) could not be had */
	WAIT_URING = 1u << 4,  /* uring-splice: a poll or splice could not be had */
	WAIT_RETRY = 1u << 5,  /* being retried by the tick: a re-wait is no new wait */
};
#define RELAY_WAIT_NS (1000ull * 1000) /* the retry tick: 1 ms, as rp_outq's retry */
#define PARK_NONE UINT16_MAX

/* A parked buffer: a provided buffer (bid) holding len bytes at buf. */
struct relay_park {
	char *buf;
	uint32_t len;
	uint16_t bid;
	uint16_t next; /* the direction's next parked piece, or PARK_NONE */
};

struct rp_relay {
	struct rp_shard *sh;
	const struct relay_path *const *paths; /* [PATH_COUNT], set by relay.c */
	struct rp_relay_config cfg;
	rp_relay_done_fn done;
	void *arg;
	int fd[2];
	unsigned pending; /* ops in flight that carry this relay */
	bool ended;	  /* end decided: no new work */
	bool reported;	  /* done() ran */
	enum rp_relay_end end;
	int err;
	uint64_t last_ns; /* last byte moved (idle sweep) */
	struct rp_relay *prev, *next; /* the shard's list of live relays */
	struct rdir d[2];
};

/* Per-shard state of the relay module (thread-local: a shard is a thread). */
struct relay_shard {
	struct rp_shard *sh;
	struct rp_relay_stats st;
	struct rp_relay *live; /* list for the idle sweep */
	struct rp_timer *sweep_timer; /* reserved: rp_relay_shard_init */
	uint64_t sweep_ns;     /* sweep period: min(smallest idle_ns / 4, 250 ms) */
	uint64_t coarse_res_ns; /* CLOCK_MONOTONIC_COARSE's resolution (a tick) */
	struct rp_relay_sweep_stats sw;
	int (*pipes)[2];       /* free pipes */
	unsigned npipes, pipes_cap, pipe_size;
	unsigned pipes_low;    /* the fewest in the pool since the trim's interval began */
	struct rp_timer *trim_timer; /* the pool's trim (relay_splice.c), armed while it holds pipes */
	struct rp_relay_wait_stats wst;
	struct rdir *waiting;	     /* the wait list, through wnext */
	struct rdir *wait_run;	     /* what the tick took off it and still runs */
	struct rp_timer *wait_timer; /* reserved: rp_relay_start, rp_relay_shard_init */
	bool exiting;		     /* rp_relay_shard_exit: the loop is over */
	/* The park table: one slot per provided buffer of the shard (at most
	 * 65535), so it cannot run out (a parked piece holds a buffer). */
	uint16_t park_cap, park_free; /* free list head, or PARK_NONE */
	uint16_t park_fresh;	      /* slots never used yet: [park_fresh, park_cap) */
	struct relay_park park[];
};

struct relay_shard *relay_shard_get(struct rp_shard *sh);
/* This thread's state if it is @sh's, else NULL (never allocates). */
struct relay_shard *relay_shard_find(struct rp_shard *sh);
uint64_t relay_now_ns(void);

/* relay_core.c: what the paths (and relay.c) report. */
void relay_end(struct rp_relay *r, enum rp_relay_end end, int err);
void relay_moved(struct rdir *d, size_t n, bool spliced);
/* The path holds nothing of @d (no op in flight, nothing queued or in a
 * pipe): pass EOF on if it was seen, or switch to the wanted path. */
void relay_dir_quiet(struct rdir *d);
void relay_fail(struct rp_relay *r, int err, enum rp_relay_end end);
/* Put @d on the shard's wait list with @bits (WAIT_*) to retry: 0, or a
 * negative errno (the shard is stopping): the caller then ends the relay. */
int relay_wait(struct rdir *d, unsigned bits);
/* The wait list's timer, reserved once per shard: 0 or -ENOMEM. */
int relay_wait_reserve(struct rp_shard *sh, struct relay_shard *rs);
void relay_op_done(struct rp_relay *r); /* an op carrying r completed */
/* Auto mode: a read of @n bytes into a buffer of @cap (copy: the provided
 * buffer's size; splice: the room left in the pipe). */
void relay_auto_read(struct rdir *d, size_t n, size_t cap);

/* One transfer path's operations on a direction. */
struct relay_path {
	const char *name;
	/* start (or resume) moving bytes: 0, or a negative errno (the path
	 * cannot run: splice falls back to copy) */
	int (*start)(struct rdir *d);
	/* stop reading; the path calls relay_dir_quiet once it holds nothing */
	void (*quiesce)(struct rdir *d);
	/* the relay ended: give back what the path holds (NULL: nothing) */
	void (*drop)(struct rdir *d);
	/* the relay is ending, before its sockets are closed: stop sending
	 * (NULL: nothing to stop); what is still in flight completes later */
	void (*end)(struct rdir *d);
	/* the shard's retry tick: try again what d->wait says this path
	 * waits for (NULL: the path never waits) */
	void (*retry)(struct rdir *d);
};

extern const struct relay_path relay_copy_path;
extern const struct relay_path relay_splice_path;
extern const struct relay_path relay_uring_path;

/* relay_copy.c: queue @len bytes (copied into pool memory) ahead of all. */
int relay_copy_prime(struct rdir *d, const void *buf, size_t len);
/* relay_copy.c: send what is queued without reading; quiet once sent. */
void relay_copy_send_only(struct rdir *d);
/* relay_copy.c: drop what is queued (the relay ended). */
void relay_copy_drop(struct rdir *d);
/* relay_splice.c: give the pipe back or close it (the relay ended). */
void relay_splice_drop(struct rdir *d);
/* relay_splice.c: the shard's pipe pool. get: a pipe from the pool, or a
 * new one sized to 256 KB; -1 and the fallback reason when none can be had.
 * put: an empty pipe goes back to the pool, one with bytes in it is closed. */
int relay_pipe_get(struct rdir *d, enum rp_relay_fallback *why);
void relay_pipe_put(struct rdir *d);
/* Move @d from a splice path to copy for good, counted in splice_fallback
 * by @why (relay_splice.c): the splice paths call it with nothing in
 * flight on @d and its pipe empty or put back. */
void relay_fall_back(struct rdir *d, enum rp_relay_fallback why);
/* Splices in a row that may return 0 while a peek finds bytes before the
 * direction falls back to copy (RP_RELAY_FB_SPLICE_ZERO): never seen, but a
 * loop on it would spin the shard (each poll answers at once). */
#define RELAY_ZEROS_MAX 4
/*
 * After a socket -> pipe splice of @d moved nothing (@res: 0 or -EAGAIN;
 * relay_splice.c): splice_zero_why's answer, except that at the urgent
 * mark one byte is read with recv (the mark stepped over; the byte that
 * followed it, if any, is in the pipe; d->eof set if the peer's FIN
 * followed it) before SPLICE_ZERO_MARK is returned. SPLICE_ZERO_DATA
 * counts in d->zeros (cleared by a splice that reads bytes and by a mark
 * stepped over); the caller falls back to copy at RELAY_ZEROS_MAX. A
 * negative errno when the socket failed.
 */
int relay_splice_nothing(struct rdir *d, ssize_t res);

#endif
