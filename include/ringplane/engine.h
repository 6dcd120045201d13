/* SPDX-License-Identifier: MIT */
/*
 * ringplane engine: the shard runtime on io_uring.
 *
 * A runtime owns N shards. A shard is one thread, pinned to its CPU, with
 * its own io_uring (created on that thread; SINGLE_ISSUER|DEFER_TASKRUN
 * where the kernel has them, else COOP_TASKRUN, else plain), its own slab
 * pool on its NUMA node, a provided-buffer ring for multishot receives, and
 * mailboxes: one SPSC ring from every other shard, one MPSC queue for
 * threads that are not shards.
 *
 * Ops. Every rp_<op>() call below takes a buffer of an op from the shard's
 * pool, prepares one SQE whose user_data points at it, and returns the op
 * (a handle for rp_cancel), or NULL with errno set: ENOMEM (pool empty;
 * counted), EBADF/EINVAL (bad arguments), ESHUTDOWN (the shard is stopping
 * and takes no new ops except close and cancel), EBUSY (the SQ was full
 * and the kernel refused every flush; counted in sq_full_fail). Nothing is submitted
 * there: the shard loop submits every SQE prepared during one iteration
 * with one io_uring_submit_and_wait(); if the SQ fills up first it is
 * flushed and the call goes on (counted as sq_full). With cfg.sqpoll the
 * flush also waits (up to 1 s) for the kernel's SQ thread to take the SQEs.
 *
 * Completions. The callback runs on the shard thread, once per CQE:
 *   c->res    bytes, a file descriptor, or -errno, as the kernel reported;
 *   c->flags  RP_CQE_MORE: this op stays alive and will complete again
 *             (multishot accept/recv, the result half of send_zc); without
 *             it this is the op's last callback and its handle is dead after
 *             the callback returns. RP_CQE_NOTIF: the zero-copy notification
 *             of a send_zc (its buffer may now be reused); RP_CQE_ZC_COPIED
 *             with it: the kernel copied the payload instead (loopback, veth).
 *   c->buf    rp_recv_multishot only: the provided buffer holding res bytes.
 *             The callback owns it and gives it back with rp_buf_put()
 *             (from any later callback on this shard), e.g. after the send
 *             that echoes it completes.
 * Ops are only ever touched by their shard's thread. Callbacks may start
 * new ops and post messages. A NULL callback is allowed: the completion is
 * then only counted (fire-and-forget close or cancel).
 *
 * Threads: rp_runtime_create/start/stop/wait/destroy from any one control
 * thread; rp_runtime_stop and rp_runtime_submit also from other threads
 * (stop is async-signal-safe). Everything taking a struct rp_shard * runs on
 * that shard's thread only (from its init callback or any callback).
 *
 * Errors: functions returning int return 0 or a negative errno; none of
 * them aborts on bad input, on a peer's behaviour or on exhaustion.
 */
#ifndef RINGPLANE_ENGINE_H
#define RINGPLANE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rp_runtime;
struct rp_shard;
struct rp_op;
struct rp_pool;

enum {
	RP_CQE_MORE = 1u << 0,	    /* more completions of this op will follow */
	RP_CQE_NOTIF = 1u << 1,	    /* send_zc: the buffer-release notification */
	RP_CQE_ZC_COPIED = 1u << 2, /* send_zc notification: payload was copied */
	RP_CQE_REARMED = 1u << 3,   /* multishot recv/accept: the kernel ended the
				       request and the engine armed it again (or,
				       with the SQ full, arms it on the shard
				       loop's next turn) */
};

struct rp_cqe {
	int32_t res;
	uint32_t flags;	 /* RP_CQE_* */
	void *buf;	 /* multishot recv: the provided buffer, else NULL */
	uint16_t bid;	 /* its id, for rp_buf_put */
};

typedef void (*rp_cb)(struct rp_shard *sh, void *arg, const struct rp_cqe *c);

/* A message between shards or from another thread: runs fn(sh, arg) on the target shard. */
typedef void (*rp_msg_fn)(struct rp_shard *sh, void *arg);

/* Per-shard init/fini: run on the shard thread before its loop / after it ended.
 * A non-zero return from init stops the runtime; rp_runtime_wait returns it.
 * Once the loop is over (or never ran: an init that failed) nothing more
 * reaches the kernel: what it had prepared and not submitted is dropped,
 * except rp_close's closes, done then with close(2); an op asked for from
 * fini or a message run after the stop gets NULL with EBUSY (rp_close
 * too: the fd is still the caller's to close). */
typedef int (*rp_shard_init_fn)(struct rp_shard *sh, void *arg);
typedef void (*rp_shard_fini_fn)(struct rp_shard *sh, void *arg);
/* Called on each shard when the runtime begins stopping: close listeners,
 * stop starting work. In-flight ops are then cancelled by the engine. */
typedef void (*rp_shard_stop_fn)(struct rp_shard *sh, void *arg);
/* A message that was accepted (rp_shard_post or rp_runtime_submit returned
 * 0) but whose target shard had stopped before it could run, or never ran:
 * called on the control thread, so @msg_arg can be freed, from
 * rp_runtime_wait; from rp_runtime_start when the start fails (messages
 * submitted before it to a shard whose loop never ran); from
 * rp_runtime_destroy for a runtime that never ran its shards (submitted
 * before a start that never came, or before a stop that came first:
 * start -ESHUTDOWN). Every accepted message either runs or reaches
 * on_drop, once. @arg is the config's arg. */
typedef void (*rp_msg_drop_fn)(rp_msg_fn fn, void *msg_arg, void *arg);

struct rp_runtime_config {
	unsigned shards;	  /* number of shards; 0 = one per core of the plan */
	const char *cpus;	  /* cpulist for the plan ("0-3"), NULL = default plan */
	bool no_pin;		  /* leave shard threads unpinned (tests on busy hosts) */
	unsigned ring_entries;	  /* SQ entries (default 256); CQ gets 4x */
	bool sqpoll;		  /* IORING_SETUP_SQPOLL (off by default) */
	uint64_t spin_ns;	  /* busy-poll this long for completions before
				     sleeping (0: sleep at once); trades a CPU
				     for the wake-up latency */
	size_t pool_bytes;	  /* per-shard pool arena (default 64 MB) */
	unsigned pool_flags;	  /* RP_POOL_* (default RP_POOL_HUGE) */
	unsigned bufs;		  /* provided buffers per shard, power of two (default 512) */
	unsigned buf_size;	  /* size of each (default 16 KB, a pool class) */
	unsigned mailbox;	  /* SPSC/MPSC capacity per mailbox, a power of two;
				     default 4096 up to 4 shards, then 16384 / shards
				     (at least 64). Memory: every shard holds one SPSC
				     ring per sender shard, on its own node, of
				     mailbox * 8 bytes: shards * mailbox * 8 bytes per
				     shard (default: 64 KB per shard at 2 shards, 128 KB
				     from 4 shards up, 16 MB in all at 128 shards) */
	unsigned stop_timeout_ms; /* how long a stop waits for in-flight ops to end
				     (default 5000); then the ops left are reported on
				     stderr, counted in stuck_ops and left to the kernel */
	bool register_buffers;	  /* register the pool arena for *_fixed ops */
	rp_shard_init_fn init;
	rp_shard_stop_fn on_stop;
	rp_shard_fini_fn fini;
	rp_msg_drop_fn on_drop;	  /* messages that never ran (NULL: only counted) */
	void *arg;		  /* passed to init, on_stop, fini and on_drop */
	uint64_t idle_spin_ns;	  /* adaptive idle spin (0: off): before sleeping,
				     poll for completions and messages up to this
				     long, calling sched_yield() between polls so
				     any other runnable task on the CPU goes first,
				     but only while the shard's last idle stretch
				     was shorter than this (a stream of short gaps:
				     the sleep and the wake-up it saves are most of
				     a round trip); after a spin that found nothing
				     the shard sleeps until its gaps are short
				     again. Ignored when spin_ns is set */
};

/* Per-shard counters (rp_shard_stats / rp_runtime_stats). */
struct rp_shard_stats {
	uint64_t ops_submitted;	 /* SQEs handed to the kernel */
	uint64_t ops_completed;	 /* CQEs reaped (all kinds) */
	uint64_t submits;	 /* io_uring_submit_and_wait calls */
	uint64_t loops;		 /* loop iterations */
	uint64_t wakeups;	 /* wake CQEs (MSG_RING or eventfd) */
	uint64_t msgs_in;	 /* messages run (shards + other threads) */
	uint64_t msgs_out;	 /* messages posted to other shards */
	uint64_t sq_full;	 /* SQ full: flushed early */
	uint64_t cq_overflow;	 /* CQEs the kernel had to hold back (NODROP) */
	uint64_t nomem;		 /* op or buffer allocation failed: pool empty */
	uint64_t enobufs;	 /* multishot recv ran out of provided buffers */
	uint64_t rearms;	 /* multishot ops re-armed by the engine */
	uint64_t mailbox_full;	 /* rp_shard_post refused: target mailbox full */
	uint64_t err_cancelled;	 /* completions with -ECANCELED */
	uint64_t err_reset;	 /* -ECONNRESET, -EPIPE */
	uint64_t err_emfile;	 /* -EMFILE, -ENFILE */
	uint64_t err_timeout;	 /* -ETIME from timeouts that expired */
	uint64_t err_other;	 /* every other negative result */
	/* send_zc ops whose send went out (result > 0), counted at their
	 * notification; a failed send (counted in err_*) or a 0-byte one is
	 * not counted, though the kernel notifies it too */
	uint64_t zc_sends;	 /* rp_sendmsg_zc's too */
	/* ... of which the kernel copied the payload (RP_CQE_ZC_COPIED): not
	 * zero-copy. zc_sends - zc_copied went zero-copy where the kernel
	 * reports copies (IORING_SEND_ZC_REPORT_USAGE, rp_engine_features
	 * "zc_report_usage=yes"); without that, zc_copied stays 0 */
	uint64_t zc_copied;
	uint64_t fixed_fallback; /* *_fixed ops sent as plain ones (no registration);
				    rp_send_zc from a registered buffer sent
				    unregistered (see zc_fixed) */
	uint64_t sq_full_fail;	 /* SQ stayed full after a flush: the op failed (EBUSY);
				    a multishot re-arm or a reserved timer's arm or
				    move waits for the loop's next turn */
	uint64_t buf_misuse;	 /* rp_buf_put of a buffer that was not out: refused */
	uint64_t wake_fallback;	 /* MSG_RING wakes that failed: sent by eventfd instead */
	uint64_t msgs_dropped;	 /* messages to this shard that arrived after it stopped */
	uint64_t stuck_ops;	 /* ops still in flight when the stop deadline passed */
	uint64_t close_bare;	 /* rp_close with no op on the fd in the kernel: the close went
				    alone (a parked receive is ended without a cancel) */
	uint64_t op_cancels;	 /* cancels by user_data rp_close/rp_cancel_fd/rp_cancel_op sent, one per op */
	uint64_t cancel_fd_fallback; /* cancels by fd sent instead (fd table without memory) */
	uint64_t poll_rdhup;	 /* rp_poll_writable results of POLLRDHUP alone: dropped,
				    the poll left armed */
	/* rp_send_zc ops sent from the shard's registered pool
	 * (IORING_RECVSEND_FIXED_BUF): the runtime has register_buffers, the
	 * registration took, and the whole buffer lies in one registered
	 * span (rp_pool_buf_index). Counted when prepared. Such a send on a
	 * kernel whose SEND_ZC refuses registered buffers (rp_engine_features
	 * "send_zc_fixed=no") goes unregistered, counted in fixed_fallback */
	uint64_t zc_fixed;
};

/* ---- runtime (control thread) ---- */

/*
 * rp_runtime_create - validate @cfg (copied), build the placement plan and
 * probe the kernel. No thread runs yet. Returns 0 and *@out, or -EINVAL
 * (bad config: bufs not a power of two, buf_size above 1 MB, ring_entries
 * above 16384 (the CQ gets 4x, the kernel takes at most 65536), more shards
 * than the pool registry holds (RP_POOL_MAX_POOLS_), pool_flags with a
 * bit that is no RP_POOL_* flag, a bad cpulist...), -ERANGE (a CPU number
 * in the cpulist at or past CPU_SETSIZE),
 * the kernel's own errno when io_uring cannot be set up (-ENOSYS: no
 * io_uring in this kernel; -EPERM: kernel.io_uring_disabled or a seccomp
 * profile forbids it), -EOPNOTSUPP (the kernel lacks something the engine
 * needs: provided-buffer rings, multishot recv), -ENOMEM. On failure
 * rp_engine_error() says why in one line, naming the fix where there is one.
 * More shards than CPUs in the
 * plan share CPUs round-robin (shard i runs on the plan's CPU i mod n).
 *
 * The plan takes only CPUs in the calling thread's affinity mask
 * (sched_getaffinity(0)), so taskset, cgroup cpusets and isolcpus are
 * honoured, and a cfg->cpus entry outside that mask is -EINVAL. A caller
 * that has pinned its own thread to one CPU therefore gets a one-CPU plan:
 * create the runtime before pinning, or widen the mask first (as
 * ringplane-bench does). cfg->no_pin keeps the plan but pins nothing.
 */
int rp_runtime_create(const struct rp_runtime_config *cfg, struct rp_runtime **out);

/* rp_runtime_start - start the shard threads and return once every shard
 * ran its init (0) or one failed (its negative errno; the others are
 * stopped and joined; rp_engine_error() says which shard and why).
 * -EINVAL: @rt NULL or started before (rp_engine_error() says which);
 * -ESHUTDOWN: rp_runtime_stop ran
 * before the start (nothing started; a stopped runtime is never started
 * again: rp_runtime_destroy it). Each
 * shard thread blocks SIGPIPE: a write or splice on it to a socket whose
 * peer has gone fails with EPIPE instead of killing the process, and is
 * named "rp-shard-ID" (pthread_setname_np; ID its shard id, the name cut
 * at the kernel's 15 characters): /proc/PID/task/TID/comm, top and perf
 * show it. A shard's init may rename its own thread. */
int rp_runtime_start(struct rp_runtime *rt);

/* rp_runtime_stop - ask every shard to stop: on_stop, cancel in-flight ops,
 * wait for their last CQEs, fini. Any thread; async-signal-safe; idempotent. */
void rp_runtime_stop(struct rp_runtime *rt);

/* rp_runtime_wait - join the shard threads; 0, or the first shard error.
 * Messages still in the mailboxes then (posted while their target stopped)
 * go to cfg.on_drop and are counted in the target's msgs_dropped.
 * -EINVAL: @rt NULL or never started; -EDEADLK: called on one of @rt's own
 * shard threads (nothing is joined: a shard cannot wait for itself).
 * Each failure says why in rp_engine_error() on the calling thread. */
int rp_runtime_wait(struct rp_runtime *rt);

/* rp_runtime_run - start, then wait: returns when stopped. */
int rp_runtime_run(struct rp_runtime *rt);

/* rp_runtime_destroy - free a runtime that was never started or was waited for.
 * Messages still queued (submitted to a runtime that never ran) go to
 * cfg.on_drop first, on this thread. Called on one of @rt's own shard
 * threads (a caller bug: it would free the shard it runs on) it only
 * stops @rt and says so in that shard thread's rp_engine_error(); the
 * control thread still waits and destroys. */
void rp_runtime_destroy(struct rp_runtime *rt);

unsigned rp_runtime_shards(const struct rp_runtime *rt);
/* The shard's CPU (-1 when not pinned), or -EINVAL for @rt NULL or
 * @shard >= rp_runtime_shards(@rt). */
int rp_runtime_shard_cpu(const struct rp_runtime *rt, unsigned shard);

/* rp_runtime_stats - a copy of @shard's counters (racy but safe while it runs). */
int rp_runtime_stats(const struct rp_runtime *rt, unsigned shard, struct rp_shard_stats *out);

/* The io_uring setup the shards got, e.g. "single_issuer|defer_taskrun",
 * "coop_taskrun", "plain", "+sqpoll"; and whether MSG_RING wakes shards.
 * NULL for @rt NULL. */
const char *rp_runtime_ring_mode(const struct rp_runtime *rt);

/*
 * rp_runtime_submit - from a thread that is not a shard: run fn(sh, arg) on
 * shard @shard (MPSC queue; the shard is woken by an eventfd). Messages
 * from one thread run in the order submitted. Before rp_runtime_start a
 * message is queued and runs once the shards are up (after every init);
 * if they never run it reaches cfg.on_drop (rp_msg_drop_fn). Returns 0,
 * -EINVAL (no such shard), -EAGAIN (queue full), -ESHUTDOWN (stopping),
 * -ENOMEM.
 */
int rp_runtime_submit(struct rp_runtime *rt, unsigned shard, rp_msg_fn fn, void *arg);

/* ---- shard (its own thread) ---- */

/* The shard running the calling thread, or NULL. */
struct rp_shard *rp_shard_self(void);
unsigned rp_shard_id(const struct rp_shard *sh);
struct rp_runtime *rp_shard_runtime(const struct rp_shard *sh);
struct rp_pool *rp_shard_pool(const struct rp_shard *sh);
/* true once the runtime is stopping: start no new long-lived work. */
bool rp_shard_stopping(const struct rp_shard *sh);
/*
 * Hold (true) or release (false) this shard's adaptive idle spin
 * (cfg.idle_spin_ns): while held the shard sleeps at once whenever it is
 * idle, as with idle_spin_ns 0; released, the spin is as it was (the
 * window gate keeps its last idle stretch from before the hold). For the
 * user's own knowledge of what ends its gaps: a shard whose only work is
 * bodies draining to slow readers wakes for send completions, which a
 * spin does not bring sooner, and would spin on every POLLOUT wait.
 * Shard thread only; takes effect at the shard's next idle moment; a
 * store, no syscall. No effect when idle_spin_ns is 0 or spin_ns is set.
 * Released at start.
 */
void rp_shard_idle_spin_hold(struct rp_shard *sh, bool hold);
/* true once this shard's loop is over (or never ran: an init that failed):
 * from cfg.fini, or a message run after the stop, where nothing reaches
 * the kernel any more and no CQE is reaped. False in init, in the loop
 * and in on_stop (the loop still runs while it stops). */
bool rp_shard_loop_over(const struct rp_shard *sh);
void rp_shard_stats(const struct rp_shard *sh, struct rp_shard_stats *out);
/* Ops alive on this shard (prepared or in flight, multishot included). */
unsigned rp_shard_inflight(const struct rp_shard *sh);

/*
 * rp_shard_post - run fn(target, arg) on shard @target (it may be this
 * shard: the loop then runs it later, never inside this call). Per
 * (sender, target) pair, messages run in the order posted. The target is
 * woken with IORING_OP_MSG_RING where the kernel has it, else through its
 * eventfd.
 * Returns 0, -EINVAL, -EAGAIN (the pair's mailbox is full: retry later),
 * -ESHUTDOWN.
 */
int rp_shard_post(struct rp_shard *sh, unsigned target, rp_msg_fn fn, void *arg);

/* ---- ops (shard thread; see the top of this file) ---- */

struct rp_op *rp_nop(struct rp_shard *sh, rp_cb cb, void *arg);
struct rp_op *rp_read(struct rp_shard *sh, int fd, void *buf, unsigned len, uint64_t off, rp_cb cb,
		      void *arg);
struct rp_op *rp_write(struct rp_shard *sh, int fd, const void *buf, unsigned len, uint64_t off,
		       rp_cb cb, void *arg);
/* @iov must stay valid until the op completes. off = (uint64_t)-1: the file position. */
struct rp_op *rp_readv(struct rp_shard *sh, int fd, const struct iovec *iov, unsigned iovcnt,
		       uint64_t off, rp_cb cb, void *arg);
struct rp_op *rp_writev(struct rp_shard *sh, int fd, const struct iovec *iov, unsigned iovcnt,
			uint64_t off, rp_cb cb, void *arg);
/* @buf must lie in this shard's pool and the runtime must have
 * register_buffers; otherwise (registration refused) a plain read/write is
 * sent instead and counted in fixed_fallback. -EINVAL for a foreign buffer. */
struct rp_op *rp_read_fixed(struct rp_shard *sh, int fd, void *buf, unsigned len, uint64_t off,
			    rp_cb cb, void *arg);
struct rp_op *rp_write_fixed(struct rp_shard *sh, int fd, const void *buf, unsigned len,
			     uint64_t off, rp_cb cb, void *arg);
/* Multishot accept: res is the new fd, RP_CQE_MORE while it stays armed.
 * The kernel ends it on errors such as EMFILE; the caller re-arms (after a
 * back-off timer) when it wants to keep accepting. An end without an error
 * is re-armed by the engine (RP_CQE_REARMED), on the next loop turn when
 * the SQ is full. */
struct rp_op *rp_accept_multishot(struct rp_shard *sh, int fd, rp_cb cb, void *arg);
/* @addr is copied (up to sizeof(struct sockaddr_in6)). */
struct rp_op *rp_connect(struct rp_shard *sh, int fd, const struct sockaddr *addr, socklen_t len,
			 rp_cb cb, void *arg);
struct rp_op *rp_recv(struct rp_shard *sh, int fd, void *buf, unsigned len, int flags, rp_cb cb,
		      void *arg);
/*
 * Multishot recv into the shard's provided-buffer ring. Each CQE with
 * res > 0 carries c->buf/c->bid. When the kernel ends the request on its
 * own (ENOBUFS: every buffer is out; or a CQ overflow) the engine re-arms
 * it: at once if buffers are free, else when rp_buf_put returns one (a
 * re-arm that finds the SQ full is sent on the loop's next turn), and
 * the callback sees RP_CQE_MORE|RP_CQE_REARMED instead of ENOBUFS. It ends
 * for real on res == 0 (EOF), on other errors, or on cancel.
 */
struct rp_op *rp_recv_multishot(struct rp_shard *sh, int fd, rp_cb cb, void *arg);
/* Give a provided buffer back. A @bid that is not out (a double put, a
 * stray id) is refused and counted in buf_misuse. */
void rp_buf_put(struct rp_shard *sh, uint16_t bid);
/* The size of each provided buffer. */
unsigned rp_buf_size(const struct rp_shard *sh);
/* Provided buffers of this shard: in all, and currently held by callbacks
 * (handed out with a recv CQE and not yet given back with rp_buf_put). A
 * server uses them to budget buffers across its connections. */
unsigned rp_buf_count(const struct rp_shard *sh);
unsigned rp_buf_out(const struct rp_shard *sh);
struct rp_op *rp_send(struct rp_shard *sh, int fd, const void *buf, unsigned len, int flags,
		      rp_cb cb, void *arg);
/* @msg (and what it points to) must stay valid until the op completes. */
struct rp_op *rp_sendmsg(struct rp_shard *sh, int fd, const struct msghdr *msg, int flags,
			 rp_cb cb, void *arg);
/*
 * Zero-copy send: the callback runs for the result (res = bytes or -errno,
 * with RP_CQE_MORE when a notification follows) and then for the
 * notification (RP_CQE_NOTIF, plus RP_CQE_ZC_COPIED when the kernel copied
 * the payload). @buf may be reused only after the notification. A @buf
 * in the shard's pool goes from its registered span when the runtime has
 * register_buffers (counted in zc_fixed). A failed
 * or 0-byte send may be notified too; its RP_CQE_ZC_COPIED, set or not,
 * says nothing (nothing was sent), and the shard's zc_sends and zc_copied
 * do not count it. Where the kernel has no SEND_ZC, a plain send is made
 * and the callback runs once.
 */
struct rp_op *rp_send_zc(struct rp_shard *sh, int fd, const void *buf, unsigned len, int flags,
			 rp_cb cb, void *arg);
/*
 * rp_sendmsg_zc - rp_send_zc for a vector (IORING_OP_SENDMSG_ZC): the same
 * two callbacks, the usage report and counters (zc_sends, zc_copied).
 * @msg and its iovec array must stay valid until the result callback, the
 * bytes they point to until the notification. Not from registered
 * buffers (before 6.15 the kernel took none for a vector). Where the kernel has no
 * SENDMSG_ZC, an rp_sendmsg is made and the callback runs once.
 */
struct rp_op *rp_sendmsg_zc(struct rp_shard *sh, int fd, const struct msghdr *msg, int flags,
			    rp_cb cb, void *arg);
/* off = -1 for a pipe or socket end (no offset). */
struct rp_op *rp_splice(struct rp_shard *sh, int fd_in, int64_t off_in, int fd_out,
			int64_t off_out, unsigned len, unsigned flags, rp_cb cb, void *arg);
/*
 * rp_close - close @fd, after ending every op still on it: parked multishot
 * receives and ops in the kernel complete with -ECANCELED (or with their
 * result, if they had already completed), and no multishot op on @fd is
 * re-armed after this call, so a new file that gets the same number never
 * feeds an old op. (A pending io_uring request keeps its own reference to
 * the file: without this a recv would stay armed on a closed socket.)
 * Close a socket only after the sends that must reach the peer completed.
 * Allowed while stopping. The shard knows which of its ops name @fd: with
 * none the close goes alone (counted in close_bare); otherwise each is
 * cancelled by user_data (op_cancels), which the kernel finds with one
 * hash lookup, where a cancel by fd walks every request armed on the ring.
 * When the shard could not record an op's fd (no memory) it cancels by fd
 * instead (cancel_fd_fallback).
 * Two kinds of op may outlive the close's callback:
 * - an op running in io-wq (a splice always; a read or write the kernel
 *   could not do without blocking, e.g. on a file system without async
 *   buffered reads): the kernel answers its cancel with -EALREADY (it
 *   only signals the worker), the close goes on, and the op completes
 *   later with its result or an error. It holds its own reference to the
 *   file and is never re-armed, but it may still write into its buffer:
 *   free the buffer only after the op's own final callback.
 * - an op queued with rp_link_next behind an op that has not completed:
 *   the kernel holds it on its head's link list and takes its file by
 *   number only when it runs, so neither a cancel by user_data nor one by
 *   fd finds it (-ENOENT). If its head is on @fd too, the head's cancel
 *   ends it unrun: its callback gets -ECANCELED, and this close is the
 *   one that closes @fd (a linked close of @fd still due closes nothing
 *   once another rp_close of @fd was sent, nor at the loop's end).
 *   Otherwise, once the head completes, it runs on whatever @fd then
 *   names (EBADF, or a new file with that number). Close the fds of a
 *   chain only after the chain's final callbacks.
 * From fini, or a message run once the shard's loop is over, it returns
 * NULL with EBUSY: close @fd with close(2) then. (A close prepared before
 * the loop ended but never submitted is done with close(2) by the engine,
 * once.)
 * A close of @fd made with rp_link_next whose head ended it unrun is sent
 * again unlinked by the engine; until that close's callback has run,
 * rp_close(@fd) returns NULL with EALREADY and touches nothing on @fd.
 * The kernel may have run that close already (its CQE not yet reaped),
 * and the number then names whatever file took it since: one the caller
 * got in a callback earlier in the same batch (open(2), an accept, dup2)
 * or another thread's. The engine cannot tell which file the caller
 * means, so it closes neither; on EALREADY the caller decides:
 * - it meant the file the first close was for (a close superseding that
 *   linked close): nothing to do; the first close's callback reports
 *   that file's close.
 * - @fd is a file it got after making the first close (the number was
 *   free, so the kernel has run that close; no close of this file is
 *   under way): it must close it itself, or the file leaks: close(2) it
 *   (after ending its ops, if it started any: rp_cancel_fd), or call
 *   rp_close(@fd) again from the first close's callback or after it,
 *   which is then made as any close.
 * On failure (NULL: ENOMEM, EBUSY, ESHUTDOWN; not EALREADY, above, which
 * touches nothing) the ops on @fd that wait
 * outside the kernel (a parked receive, a re-arm the SQ had no room for)
 * are ended all the same (-ECANCELED): they need no SQE, and a caller that
 * falls back to shutdown(2) + close(2) must not find them armed later on a
 * new file with the same number. rp_cancel and rp_cancel_fd do the same.
 */
struct rp_op *rp_close(struct rp_shard *sh, int fd, rp_cb cb, void *arg);
/*
 * Cancel one op (its handle must still be alive) / every op on @fd. res of
 * the cancel: number cancelled or 0 (for one op), -ENOENT, -EALREADY. A
 * multishot op that was cancelled is never re-armed or parked again, even
 * when the kernel had just ended it (ENOBUFS) and the cancel found nothing
 * (-ENOENT): its next completion without RP_CQE_MORE is its last, with
 * -ECANCELED where it would have been re-armed. rp_cancel_fd cancels each
 * op on @fd that way (by user_data, as rp_close does) and completes once
 * all those cancels have, res = how many found their op (0: none on @fd);
 * its fallback without memory is a cancel by fd, which refuses re-arms on
 * @fd until it has completed. rp_cancel refuses (NULL, EBUSY) as the op
 * after an rp_link_next (see there).
 */
struct rp_op *rp_cancel(struct rp_shard *sh, struct rp_op *target, rp_cb cb, void *arg);
struct rp_op *rp_cancel_fd(struct rp_shard *sh, int fd, rp_cb cb, void *arg);
/*
 * rp_cancel_op - cancel @target (its handle must still be alive) as
 * rp_cancel does, with no callback and no op of its own: it takes no pool
 * memory, so it works when the pool is empty (a caller that must stop
 * reading because it has no memory for what it reads). The cancel's own
 * result is not reported; @target's final callback follows as after
 * rp_cancel (-ECANCELED, or its own result when it was ending anyway), and
 * a multishot @target is never re-armed or parked again. Allowed while
 * stopping; call on the shard's thread. Returns 0 (sent, or @target was
 * waiting outside the kernel and is ended here), -EBUSY (the SQ stayed
 * full: the kernel refused every flush; counted in sq_full_fail; nothing
 * changed, try again later) or -EINVAL (@target NULL); never -ENOMEM.
 */
int rp_cancel_op(struct rp_shard *sh, struct rp_op *target);
/*
 * rp_cancel_fd_op - cancel every op on @fd as rp_cancel_fd does, with no
 * callback and no op of its own: it takes no pool memory (a caller ending
 * a connection whose socket it must keep, with the pool empty). The
 * cancels' results are not reported; each op's final callback follows
 * as after rp_cancel_fd, and no multishot op on @fd is re-armed or
 * parked again; ops waiting outside the kernel are ended here. Its
 * fallback (an op the fd table could not hold, more ops than the SQ
 * holds) is a cancel by fd, with re-arms on @fd refused until it has
 * completed. Allowed while stopping; call on the shard's thread. Returns
 * 0 (sent, or no op on @fd), -EBUSY (the SQ stayed full, or an
 * rp_link_next is pending: nothing sent, the ops waiting outside the
 * kernel ended all the same; try again later) or -EINVAL (@fd < 0);
 * never -ENOMEM.
 */
int rp_cancel_fd_op(struct rp_shard *sh, int fd);
/* shutdown(2) of a socket: @how is SHUT_RD, SHUT_WR or SHUT_RDWR; res 0 or -errno. */
struct rp_op *rp_shutdown(struct rp_shard *sh, int fd, int how, rp_cb cb, void *arg);
/* One-shot readiness: completes once @fd has any of @events (POLLIN,
 * POLLOUT...), res = the events that are ready, or -errno. For work done
 * with plain syscalls on the shard thread (splice(2) on non-blocking fds). */
struct rp_op *rp_poll(struct rp_shard *sh, int fd, unsigned events, rp_cb cb, void *arg);
/*
 * rp_poll_writable - complete once the socket @fd can take bytes or has
 * failed: res = the ready events, with POLLOUT, POLLERR, POLLHUP or
 * POLLNVAL among them (POLLRDHUP may come along), or -errno (-ECANCELED
 * after rp_cancel, rp_close or a stop). One callback, without RP_CQE_MORE.
 * Unlike rp_poll(fd, POLLOUT) it never completes with POLLRDHUP alone:
 * io_uring adds RDHUP to every poll, so once the peer half-closed a
 * one-shot POLLOUT poll on a full socket returns at once, and polling
 * again spins. This one starts as that one-shot poll (the same cost when
 * there is room); an RDHUP-only result is dropped (counted in poll_rdhup)
 * and a multishot, edge-triggered poll waits instead until the socket's
 * write-space wake-up, with no timer and no added delay (armed on the
 * loop's next turn when the SQ is full, never dropped). After answering
 * from the multishot poll the engine cancels it; the op stays counted in
 * rp_shard_inflight until the kernel's final CQE, normally one loop
 * iteration later. Not for rp_link_timeout or rp_link_next (-EINVAL): a
 * link would bind only the first, one-shot poll.
 */
struct rp_op *rp_poll_writable(struct rp_shard *sh, int fd, rp_cb cb, void *arg);
/* A timer: completes with -ETIME after @ns nanoseconds (or -ECANCELED). */
struct rp_op *rp_timeout(struct rp_shard *sh, uint64_t ns, rp_cb cb, void *arg);

/*
 * Reserved timers: a timer whose op is taken from the shard's pool once, by
 * rp_timer_new, and used again by every rp_timer_arm, so arming it never
 * fails for lack of memory. For a recovery that must run exactly when the
 * pool may be empty (a listener's back-off after its accept could not be
 * armed). Shard thread only; a reserved timer belongs to the shard that
 * made it.
 */
struct rp_timer;
/* A reserved timer, not armed; NULL with errno ENOMEM (counted in nomem).
 * Not counted in rp_shard_inflight while it is not armed. */
struct rp_timer *rp_timer_new(struct rp_shard *sh);
/*
 * rp_timer_arm - @cb(@sh, @arg, c) runs once after @ns nanoseconds with
 * c->res -ETIME (-ECANCELED when the shard stops first), as for
 * rp_timeout; after that callback @t may be armed again (from inside it
 * too). Returns 0, -EALREADY (armed: its callback has not run yet),
 * -ESHUTDOWN (the shard is stopping), -EINVAL (@t NULL); never -ENOMEM,
 * never -EBUSY: when the SQ is full and the kernel refuses every flush,
 * @t is armed all the same (rp_timer_armed true, counted in
 * rp_shard_inflight and in sq_full_fail) and the shard's loop sends it
 * once its next submit made room, so the @ns count from then; a stop
 * first ends it with -ECANCELED, as an armed one. Armed while an
 * rp_link_next waits for its op, it is sent the same way (not counted in
 * sq_full_fail): a timer is never the linked half of a pair.
 */
int rp_timer_arm(struct rp_shard *sh, struct rp_timer *t, uint64_t ns, rp_cb cb, void *arg);
/*
 * rp_timer_rearm - as rp_timer_arm, but an armed @t is moved instead of
 * refused: @cb(@sh, @arg, c) runs once, @ns nanoseconds from now (c->res
 * -ETIME; -ECANCELED when the shard stops first), and @cb/@arg replace
 * the ones given before. Never needs memory, never fails for a full SQ:
 *  - @t not armed (also from inside its own callback): arms it
 *    (rp_timer_arm);
 *  - armed, its SQE (or the SQE of its last move) not yet handed to the
 *    kernel, or waiting for the loop's next turn: only the time changes,
 *    read when the SQE goes (a move costs nothing more, however many
 *    come in one loop iteration);
 *  - armed in the kernel: one IORING_OP_TIMEOUT_REMOVE with
 *    IORING_TIMEOUT_UPDATE, sent with the loop's next submit (no op
 *    memory; its CQE is the engine's), the @ns counting from then; with
 *    the SQ full (counted in sq_full_fail) it waits for the loop's next
 *    turn, the old time holding meanwhile;
 *  - the old time came first (the timer fired before the move reached the
 *    kernel, or its CQE is not reaped yet): the callback runs once, at
 *    the old time, and @t is not armed after it; a callback must not
 *    count on the later time;
 *  - the shard stopping: -ESHUTDOWN and @t is left as it was (an armed
 *    one ends with -ECANCELED, as rp_timer_arm's).
 * Returns 0, -ESHUTDOWN, -EINVAL (@t NULL), -EALREADY (given to
 * rp_timer_free). Shard thread only.
 */
int rp_timer_rearm(struct rp_shard *sh, struct rp_timer *t, uint64_t ns, rp_cb cb, void *arg);
/* Whether @t is armed (its callback is still due). */
bool rp_timer_armed(const struct rp_timer *t);
/* Give @t back to the pool (NULL: nothing). An armed timer is cancelled
 * (with no pool memory: rp_cancel_op) and its callback will not run; its
 * memory goes back at the kernel's final CQE (at once for one still
 * waiting for an SQE, and for any once the shard's loop is over: from
 * cfg.fini, or a message run after the stop, where no CQE is reaped any
 * more). @t is dead after this call. */
void rp_timer_free(struct rp_shard *sh, struct rp_timer *t);
/*
 * rp_link_timeout - bound @op, which must be the op prepared just before
 * this call, by @ns nanoseconds: if it has not completed by then it is
 * cancelled and completes with -ECANCELED (counted in err_timeout). Not for
 * multishot ops nor rp_poll_writable. Returns 0 or -EINVAL (not the last op); it
 * takes no op from the pool (never -ENOMEM), so an empty pool cannot unbound @op.
 */
int rp_link_timeout(struct rp_shard *sh, struct rp_op *op, uint64_t ns);

/*
 * rp_link_next - run the op prepared right after this call only once @op
 * (the op prepared just before it) has completed, and only if it succeeded
 * in full (IOSQE_IO_LINK: a failed or short read or write of @op ends the
 * next one with -ECANCELED). Both go to the kernel in the same submit. One
 * link per pair; not for multishot ops nor rp_poll_writable, nor after an op that is itself
 * linked to. When the next op cannot be made (NULL: no memory, the
 * shard stopping) the link is dropped and @op runs alone; an op or cancel
 * made later is never chained to it. A link still pending when the
 * callback (init, message, on_stop) that made it returns is dropped too: @op runs
 * alone. A reserved timer armed meanwhile (rp_timer_arm, rp_timer_rearm)
 * never takes the link: it is sent at the loop's next turn, and the link
 * stays for the next op; nor does what the engine sends for itself
 * meanwhile (the wake of a shard rp_shard_post wrote to, a receive
 * re-armed by rp_buf_put). rp_cancel as the next op is refused (NULL,
 * EBUSY) and the link dropped: a linked cancel would run once @op
 * completed, when its target's memory may be another op's. rp_cancel_fd as
 * the next op is a cancel by fd that runs once @op completed (its
 * fallback: the cancels by user_data would split the pair). An rp_close as the next op closes
 * its fd all the same: ended by its head (-ECANCELED from the kernel) it
 * is sent again, unlinked, and its callback gets that close's result;
 * still behind a head in the kernel when the shard's loop ends (the
 * stop's deadline), the engine cancels the head and closes the fd with
 * close(2) if the kernel did not. rp_cancel_fd or rp_cancel_fd_op on
 * the head's fd ends the head, and so the close is sent again and closes
 * the fd (a cancel leaves the close queued behind it to run). Another
 * rp_close of the same fd, made before that close's callback, supersedes
 * it: that one closes the fd, and the linked one, ended with its head,
 * gets -ECANCELED and closes nothing (else it would close whatever file
 * got the number in between). Returns 0 or -EINVAL.
 */
int rp_link_next(struct rp_shard *sh, struct rp_op *op);

/*
 * rp_engine_error - why the last lifecycle call on this thread failed or was
 * refused, in one line, naming the fix where there is one. Set by a failing
 * rp_runtime_create or rp_runtime_start (and so rp_runtime_run), each of
 * which clears it first ("" after one that succeeded); by rp_runtime_wait
 * when it fails (-EINVAL: NULL or never started; -EDEADLK: called on one of
 * the runtime's own shard threads; a failed start's shard error again); and
 * by rp_runtime_destroy called on one of the runtime's own shard threads
 * (it only stops: the text is its one report). rp_runtime_wait and
 * rp_runtime_destroy leave it as it was when they succeed.
 *
 * The text is per thread (thread-local storage; never NULL): a call on a
 * shard thread sets that shard thread's text, which only that thread
 * reads, and no other thread's. Any thread may call it at any time; the
 * pointer stays valid for the thread's life, its text until the thread's
 * next lifecycle call.
 */
const char *rp_engine_error(void);

/* The io_uring features the engine probed, as a string for logs; NULL for
 * @rt NULL. */
const char *rp_engine_features(const struct rp_runtime *rt);

/* The zero-copy sends @rt's kernel has (probed at rp_runtime_create):
 * RP_ENGINE_SEND_ZC, rp_send_zc goes by IORING_OP_SEND_ZC (Linux 6.0);
 * RP_ENGINE_SENDMSG_ZC, rp_sendmsg_zc goes by IORING_OP_SENDMSG_ZC (6.1).
 * Without its bit the call sends plain: one callback, no notification.
 * 0 for @rt NULL. */
enum {
	RP_ENGINE_SEND_ZC = 1u << 0,
	RP_ENGINE_SENDMSG_ZC = 1u << 1,
};
unsigned rp_engine_zc(const struct rp_runtime *rt);

#ifdef __cplusplus
}
#endif

#endif /* RINGPLANE_ENGINE_H */
