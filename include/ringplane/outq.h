/* SPDX-License-Identifier: MIT */
/*
 * ringplane outq: a per-connection output queue on a shard, flushed as one
 * vectored send per loop iteration, with adaptive zero-copy sends.
 *
 * - rp_outq_push() queues the caller's buffer as it is (no copy); it is
 *   released through release_fn(arg, buf, len) once the kernel is done
 *   with it. rp_outq_copy() copies small messages into pool memory,
 *   appended to the previous copied message where there is room, so a
 *   burst of small copies leaves as one iovec.
 * - Flush: everything queued leaves in ONE sendmsg (up to RP_OUTQ_IOV
 *   iovecs) per round, or one plain send (IORING_OP_SEND: no msghdr or
 *   iovec to import) when a single buffer is queued; one send in flight
 *   per connection, order kept, a short send continued where it stopped.
 *   A sendmsg's msghdr and iovecs take a pool block; when the pool has
 *   none of that size (other connections hold it), the head's first
 *   buffer leaves alone by IORING_OP_SEND, which needs none (counted in
 *   single_sends), and its completion sends the rest: the queue keeps
 *   moving, one buffer a send, instead of stalling. The shard remembers
 *   such a refusal per pool class (a zero-copy record's too): while the
 *   class stays dry a send checks rp_pool_class_free (O(1)) instead of
 *   paying a refused allocation, tries for real once every 64 asks (and
 *   at each 1 ms retry of a stalled flush), and gathers again as soon as
 *   the check counts an object of the class.
 *   By default the first push of a
 *   callback round prepares a NOP whose completion flushes, so every push
 *   made before the loop's next submit is batched into that one send;
 *   with RP_OUTQ_MANUAL nothing is scheduled and the caller calls
 *   rp_outq_flush() once per iteration (saves the NOP's SQE and CQE). While
 *   a send is in flight, pushes just queue: its completion sends them.
 * - Adaptive SEND_ZC: a push of at least opts.zc_threshold bytes (default
 *   16 KB) goes out alone with rp_send_zc from the caller's memory while
 *   the socket is in zero-copy mode; its buffer is released on the
 *   notification (RP_CQE_NOTIF), which the send path never waits for.
 *   Until a notification has proven zero-copy, one such push (the trial)
 *   sends only its first opts.zc_threshold bytes by SEND_ZC and the rest
 *   plain, and the big pushes behind it go plain until that notification.
 *   A notification with RP_CQE_ZC_COPIED (loopback, veth: the kernel
 *   copied after all) switches the socket to plain sends; after
 *   opts.probe_bytes plain bytes or opts.probe_ns (whichever first) the
 *   next big push probes zero-copy again, with a threshold-sized piece as
 *   the trial does, and each probe that comes back copied doubles both, up
 *   to 64 times; a zero-copy notification resets them.
 * - Local peers: the kernel copies every payload it delivers on this host,
 *   so a socket whose peer is local is on plain sends for good: no trial,
 *   no probe (counted in local_plain). By default rp_outq_init decides by
 *   the addresses alone (getpeername + getsockname): AF_UNIX, a loopback
 *   address, or a peer address equal to the socket's own.
 *   RP_OUTQ_LOCAL_PLAIN adds the route (rp_peer_is_local: a route through
 *   lo or a veth, a peer in another network namespace); it stays opt-in
 *   because for a remote peer, the case that has to be asked, the lookup
 *   is nine more syscalls (an rtnetlink socket, a GETROUTE, an interface's
 *   ioctls), not cached per peer here. On the 2-vCPU test host (20,000
 *   calls, three runs at each load): the addresses 0.6-1.1 us a queue and
 *   the route 15-18 us at load 7, 3.2-6.3 us and 95-119 us during a
 *   build; the route is 15-30x the addresses, a cost paid by every
 *   connection to a remote peer. RP_OUTQ_LOCAL_PROBE turns the
 *   rule off: a local peer gets the trial and probes as a remote one
 *   does (what every peer got before the rule was the default). Neither
 *   look runs with RP_OUTQ_ZC_ALWAYS or RP_OUTQ_ZC_OFF (LOCAL_PLAIN with
 *   ZC_OFF still counts local_plain).
 * - Gathered vectors: pieces gathered for one send (small pushes and
 *   copies, up to RP_OUTQ_IOV) whose bytes reach opts.zc_threshold go by
 *   one rp_sendmsg_zc while the socket is in zero-copy mode, under the
 *   same rules: before a notification has proven zero-copy, one such
 *   vector (cut to opts.zc_threshold bytes) may be the trial, its
 *   notification counted and switching the socket as a single push's
 *   does, and each buffer it covered is released only at that
 *   notification. A socket in plain mode sends them by sendmsg; there is
 *   no probe by a vector.
 * - A kernel without SENDMSG_ZC (6.0: the engine refuses kernels before
 *   6.0, which lack SEND_ZC too), as rp_engine_zc reports it: big pushes (gathered vectors) go by plain
 *   sends, counted in plain_bytes and never in zc_sends (zc_sendmsgs).
 *
 * Bound: queued bytes (pushed and not yet sent; bytes waiting only for a
 * zero-copy notification are not counted) may not pass opts.max_bytes
 * (default 4 MB): a push that would is refused with -ENOBUFS, and
 * opts.on_writable runs once the queue has drained to half the bound.
 * The bound is on backlog, not on one message: an empty queue (pending 0)
 * takes any one push or copy whatever its size (up to RP_OUTQ_LEN_MAX), so
 * a refusal always has queued bytes behind it to drain, and on_writable
 * always follows -ENOBUFS (unless the queue fails or is closed first).
 *
 * Errors: the first failed send (-EPIPE, -ECONNRESET...) runs opts.on_error
 * once; every queued buffer is released after it (a buffer under a zero-copy
 * send is released by its notification), and later pushes return that
 * error. Buffers are released exactly once, on success, error or close.
 * A flush that cannot get an op (the shard's pool is empty, or its SQ
 * stayed full: the engine's ENOMEM and EBUSY) is no error (a zero-copy
 * head whose record the pool cannot give goes plain instead, by
 * IORING_OP_SEND, and back to SEND_ZC once it can): nothing was sent or lost,
 * everything stays queued and the flush is tried again
 * after 1 ms (on a timer the shard's first queue reserves at
 * rp_outq_init; pushes meanwhile only queue). Each such deferral is
 * counted in stalls, each 1 ms retry that is deferred again too: a queue
 * stalled for 50 ms counts about 50 (queue-milliseconds), not one. Only a shard that stops fails it (-ESHUTDOWN,
 * through on_error).
 *
 * Threads: everything here runs on the queue's shard only (the one given
 * to rp_outq_init): from its init callback or any callback. No call
 * allocates outside the shard's pool, takes a lock or makes a syscall
 * beyond the engine's ops (rp_outq_init checks that the fd is a socket,
 * reads the two addresses, and with RP_OUTQ_LOCAL_PLAIN asks the route,
 * once: see Local peers).
 */
#ifndef RINGPLANE_OUTQ_H
#define RINGPLANE_OUTQ_H

#include <stddef.h>
#include <stdint.h>

#include <ringplane/engine.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rp_outq;

#define RP_OUTQ_IOV	 64	      /* iovecs one sendmsg gathers (IOV_MAX / 16) */
#define RP_OUTQ_LEN_MAX	 (1u << 30)   /* the largest single push */
#define RP_OUTQ_COPY_MAX (64u * 1024) /* the largest rp_outq_copy */

enum {
	RP_OUTQ_MANUAL = 1u << 0,      /* no NOP: the caller calls rp_outq_flush */
	RP_OUTQ_LOCAL_PLAIN = 1u << 1, /* the local-peer rule asks the route too
					  (veth, own address through lo) */
	RP_OUTQ_ZC_OFF = 1u << 2,      /* never SEND_ZC */
	RP_OUTQ_ZC_ALWAYS = 1u << 3,   /* SEND_ZC for every big push, never switch
					  (not with RP_OUTQ_ZC_OFF: -EINVAL) */
	RP_OUTQ_LOCAL_PROBE = 1u << 4, /* no local-peer rule: a loopback or AF_UNIX
					  peer gets the SEND_ZC trial too (not with
					  RP_OUTQ_LOCAL_PLAIN: -EINVAL) */
};

/* Releases a pushed buffer: the kernel is done with it (sent, or dropped
 * on error or close). Runs on the shard, once per accepted push, never
 * inside rp_outq_push itself. It may push, flush or close the queue
 * (buffers of one send are released after its counts are settled). After
 * a send error, on_error has run before the first dropped buffer's
 * release. */
typedef void (*rp_outq_release_fn)(void *arg, const void *buf, size_t len);
/* The first send error (negative errno), once. */
typedef void (*rp_outq_error_fn)(struct rp_outq *q, void *arg, int err);
/* The queue drained to half the bound after a push was refused. */
typedef void (*rp_outq_writable_fn)(struct rp_outq *q, void *arg);

struct rp_outq_opts {
	unsigned flags;	      /* RP_OUTQ_* */
	size_t max_bytes;     /* bound on queued bytes (0: 4 MB) */
	size_t zc_threshold;  /* pushes this big go by SEND_ZC (0: 16 KB) */
	uint64_t probe_bytes; /* plain bytes before probing zc again (0: 64 MB) */
	uint64_t probe_ns;    /* or time before probing again (0: 1 s) */
	rp_outq_error_fn on_error;
	rp_outq_writable_fn on_writable;
	void *arg; /* for on_error and on_writable */
};

/* Counters, per queue and summed per shard. Bytes are counted when their
 * fate is known: SEND_ZC bytes at their notification. A reset or close
 * frees unsent zero-copy data without a copy, so a notification after the
 * queue failed or closed proves nothing: its bytes count as dropped, never
 * as zero-copied. */
struct rp_outq_stats {
	uint64_t zc_bytes;	   /* SEND_ZC bytes whose notification said zero-copy */
	uint64_t zc_copied_bytes;  /* SEND_ZC bytes the kernel copied (RP_CQE_ZC_COPIED) */
	uint64_t zc_dropped_bytes; /* SEND_ZC bytes whose notification (not copied) came
				      after the queue failed or closed, or on a socket
				      whose peer is local (the kernel copies what it
				      delivers there, so an uncopied notification means
				      data freed unsent, e.g. by a reset) */
	uint64_t plain_bytes;	   /* bytes sent by SENDMSG/SEND (or a SEND_ZC the kernel lacks) */
	uint64_t sendmsgs;	   /* plain send ops: SENDMSG, or SEND for one buffer */
	uint64_t zc_sends;	   /* SEND_ZC ops, SENDMSG_ZC ones included */
	uint64_t notifs;	   /* zero-copy notifications */
	uint64_t switched;	   /* times a socket went from zero-copy to plain */
	uint64_t probes;	   /* zero-copy probes from plain mode */
	uint64_t copied_in;	   /* bytes rp_outq_copy copied into pool memory */
	uint64_t pushes;	   /* accepted pushes and copies */
	uint64_t refused;	   /* pushes refused by the bound (-ENOBUFS) */
	uint64_t errors;	   /* queues that hit a send error */
	uint64_t local_plain;	   /* queues started plain: the peer is on this host
				      (see Local peers) */
	uint64_t single_sends;	   /* of sendmsgs, IORING_OP_SEND: one buffer queued,
				      or the head's first buffer sent alone because
				      the pool had no block for a sendmsg's iovecs
				      or no zero-copy record (see Flush above).
				      These stats cannot tell the two apart; each
				      such fallback also counts one failed
				      allocation in the shard pool's
				      rp_pool_stats.failures (not outq's alone) */
	uint64_t stalls;	   /* flushes deferred to the shard's 1 ms retry timer,
				      each retry deferred again counted too
				      (queue-milliseconds, not distinct stalls):
				      no op (the pool empty: ENOMEM; the SQ full:
				      EBUSY), counted by the engine in the shard's
				      nomem or sq_full_fail too. A zero-copy head
				      with no record, or a sendmsg with no iovec
				      block, is not deferred: it goes as a single
				      send (counted in single_sends) */
	uint64_t zc_sendmsgs;	   /* of zc_sends, SENDMSG_ZC ops: gathered vectors
				      (see Gathered vectors above) */
};

/*
 * rp_outq_init - a queue for connected socket @fd on shard @sh, in the
 * shard's pool; @opts may be NULL (defaults). The fd stays the caller's:
 * the queue never closes it. Call on the owning shard. Returns 0 and *@q,
 * or -EINVAL (@sh or @q NULL, @fd negative or not open, a flag that is no
 * RP_OUTQ_* flag, RP_OUTQ_ZC_OFF with RP_OUTQ_ZC_ALWAYS, or
 * RP_OUTQ_LOCAL_PLAIN with RP_OUTQ_LOCAL_PROBE), -ENOTSOCK (@fd
 * is open but no socket: one getsockopt(2) here tells), -ENOMEM (the pool:
 * the queue's 256 B, or with no other live queue on the shard the retry
 * timer's op too), -ESHUTDOWN.
 */
int rp_outq_init(struct rp_shard *sh, struct rp_outq **q, int fd, const struct rp_outq_opts *opts);

/*
 * rp_outq_push - queue @len bytes at @buf (1..RP_OUTQ_LEN_MAX) without a
 * copy; @buf must stay valid and unchanged until release(rarg, buf, len)
 * runs (@release may be NULL: static memory). Call on the owning shard.
 * Returns 0, or (and then release never runs: the buffer stays the
 * caller's) -EINVAL, -ENOBUFS (the bound), -ENOMEM (pool empty), or the
 * error the queue already failed with.
 */
int rp_outq_push(struct rp_outq *q, const void *buf, size_t len, rp_outq_release_fn release,
		 void *rarg);

/*
 * rp_outq_copy - queue a copy of @len bytes (1..RP_OUTQ_COPY_MAX) into pool
 * memory; @data may be reused on return. Call on the owning shard. Returns
 * 0, -EINVAL, -ENOBUFS, -ENOMEM, or the queue's error.
 */
int rp_outq_copy(struct rp_outq *q, const void *data, size_t len);

/*
 * rp_outq_flush - start sending what is queued, unless a send is in flight
 * (its completion sends the rest). Needed only with RP_OUTQ_MANUAL (once
 * per loop iteration, after the round's pushes); harmless otherwise. Call
 * on the owning shard. Returns 0 or the queue's error (0 too when no op
 * could be had: the flush is retried, see Errors above).
 */
int rp_outq_flush(struct rp_outq *q);

/*
 * rp_outq_close - drop what is still queued (released now, or when the
 * send holding it completes) and free the queue once no op of it is in
 * flight; @q is dead to the caller on return and no callback of its opts
 * runs again. Buffers under a zero-copy send are released by their
 * notification. Wait for rp_outq_pending() == 0 first to deliver all.
 * Call on the owning shard; then the fd may be closed (rp_close).
 */
void rp_outq_close(struct rp_outq *q);

/* Bytes queued and not yet sent (in flight included). Owning shard only. */
size_t rp_outq_pending(const struct rp_outq *q);

/* Whether the socket is on zero-copy sends now (never on a kernel without
 * SEND_ZC: rp_engine_zc). Owning shard only. */
bool rp_outq_zc(const struct rp_outq *q);

/* This queue's counters. Owning shard only. */
void rp_outq_stats(const struct rp_outq *q, struct rp_outq_stats *out);

/* The sum over every queue this shard ever had. Call on the shard. */
void rp_outq_shard_stats(struct rp_shard *sh, struct rp_outq_stats *out);

/*
 * rp_peer_is_local - true when the peer of connected socket @fd is on this
 * host: an AF_UNIX socket, an IPv4 peer in 127/8, ::1 or ::ffff:127.x.y.z,
 * a peer whose address is the socket's own, or else a peer whose route
 * (one rtnetlink RTM_GETROUTE for its address, v4-mapped asked as IPv4) is
 * RTN_LOCAL or leaves by a loopback interface (IFF_LOOPBACK) or a veth
 * (ethtool driver "veth"): a peer in another network namespace on this
 * host. The kernel copies what it delivers to such a peer, so zero-copy
 * cannot pay there (RP_OUTQ_LOCAL_PLAIN uses it; the queue's default rule
 * is its address part alone). A bridge is not followed (it may hold a real NIC too): a
 * peer behind one is not local. Where the default route itself is a veth
 * (a container), every peer is local: SEND_ZC is copied there too, as the
 * skb enters the host's receive path. The route is asked in the calling
 * thread's network namespace. False when either address cannot be read,
 * or on any failure of the route or interface lookups. Any thread; two
 * syscalls for the addresses, then, when they do not decide, four for the
 * route (netlink socket, sendto, recv, close) and up to five for the
 * interface (socket, three ioctls, close), none blocking: look it up once
 * per connection, never per send.
 */
bool rp_peer_is_local(int fd);

#ifdef __cplusplus
}
#endif

#endif /* RINGPLANE_OUTQ_H */
