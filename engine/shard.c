/* SPDX-License-Identifier: MIT */
/*
 * The shard loop: drain mailboxes, submit everything prepared with one
 * io_uring_submit_and_wait, reap CQEs in batches and run their callbacks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine_impl.h"
#include "shard.h"

#define REAP_BATCH 64
#define DRAIN_BUDGET 256		   /* messages per mailbox per iteration */
#define STOP_RECANCEL_NS (50 * 1000 * 1000) /* re-send cancel-any while stopping */

#ifdef RP_ENGINE_TEST_HOOKS
struct rp_engine_test_hooks rp_engine_test_hooks;
#endif

static inline void op_free(struct rp_shard *sh, struct rp_op *op)
{
	sh->live--;
	sh->live_kind[op->kind]--;
	rp_pool_free(op);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield" ::: "memory");
#endif
}

static inline void deliver(struct rp_shard *sh, struct rp_op *op, const struct rp_cqe *c)
{
	if (op->cb)
		op->cb(sh, op->arg, c);
}

static void count_err(struct rp_shard *sh, int res)
{
	if (res >= 0)
		return;
	switch (res) {
	case -ECANCELED:
		STAT_INC(sh, err_cancelled);
		break;
	case -ECONNRESET:
	case -EPIPE:
		STAT_INC(sh, err_reset);
		break;
	case -EMFILE:
	case -ENFILE:
		STAT_INC(sh, err_emfile);
		break;
	case -ETIME:
		STAT_INC(sh, err_timeout);
		break;
	default:
		STAT_INC(sh, err_other);
		break;
	}
}

/* ---- SQ full / CQ overflow ---- */

/* Move every CQE now in the CQ to the stash (dispatched by the next reap),
 * so the kernel can post again while we are inside a callback. */
static void stash_cqes(struct rp_shard *sh)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&sh->ring, head, cqe) {
		if (sh->nstash == sh->stash_cap) {
			unsigned cap = sh->stash_cap ? 2 * sh->stash_cap : 256;
			struct rp_cqe_copy *s = realloc(sh->stash, cap * sizeof(*s));

			if (!s)
				break; /* keep the rest in the CQ (NODROP holds the excess) */
			sh->stash = s;
			sh->stash_cap = cap;
		}
		sh->stash[sh->nstash++] = (struct rp_cqe_copy){ cqe->user_data, cqe->res,
								 cqe->flags };
		n++;
	}
	io_uring_cq_advance(&sh->ring, n);
}

bool rp_shard_flush(struct rp_shard *sh)
{
	STAT_INC(sh, sq_full);
	if (RP_TEST_HOOK(flush_stash))
		stash_cqes(sh);
	for (int tries = 0; tries < 1000 && !RP_TEST_HOOK(flush_fail); tries++) {
		int ret = io_uring_submit(&sh->ring);

		STAT_INC(sh, submits);
		if (ret == -EBUSY || ret == -EAGAIN)
			stash_cqes(sh); /* CQ overflowed: make room, then retry */
		else if (ret < 0 && ret != -EINTR)
			break;
		if (io_uring_sq_space_left(&sh->ring) >= SQ_SPARE + 1)
			return true;
		if (sh->rt->cfg.sqpoll)
			io_uring_sqring_wait(&sh->ring);
	}
	/* The op that wanted the SQE fails with EBUSY; what is prepared stays
	 * and goes with the loop's next submit. */
	STAT_INC(sh, sq_full_fail);
	return io_uring_sq_space_left(&sh->ring) >= SQ_SPARE + 1;
}

/* ---- provided buffers and parked receives ---- */

void rp_shard_park(struct rp_shard *sh, struct rp_op *op)
{
	op->flags |= OPF_PARKED;
	op->next = sh->parked;
	sh->parked = op;
}

void rp_shard_unpark_dead(struct rp_shard *sh, struct rp_op *op)
{
	struct rp_op **pp = &sh->parked;

	while (*pp && *pp != op)
		pp = &(*pp)->next;
	if (*pp)
		*pp = op->next;
	op->flags = (uint8_t)((op->flags & ~OPF_PARKED) | OPF_DEAD_PARKED);
	/* its final callback runs from the loop, never inside the caller */
	op->next = sh->dead;
	sh->dead = op;
}

static void count_err(struct rp_shard *sh, int res);

/* Final callbacks of ops ended outside the kernel (cancelled while parked). */
static void deliver_dead(struct rp_shard *sh)
{
	while (sh->dead) {
		struct rp_op *op = sh->dead;
		struct rp_cqe c = { .res = -ECANCELED };

		sh->dead = op->next;
		STAT_INC(sh, ops_completed);
		count_err(sh, c.res);
		if (op->cb)
			op->cb(sh, op->arg, &c);
		op_free(sh, op);
	}
}

static inline bool buf_is_out(const struct rp_shard *sh, unsigned bid)
{
	return sh->buf_outmap[bid / 64] & (1ull << (bid % 64));
}

static inline void buf_mark(struct rp_shard *sh, unsigned bid, bool out)
{
	if (out)
		sh->buf_outmap[bid / 64] |= 1ull << (bid % 64);
	else
		sh->buf_outmap[bid / 64] &= ~(1ull << (bid % 64));
}

/* Re-arm the first parked receive, if any (a buffer came back). */
static void unpark_one(struct rp_shard *sh)
{
	struct rp_op *op = sh->parked;

	if (!op || sh->stopping)
		return;
	sh->parked = op->next;
	op->flags &= (uint8_t)~OPF_PARKED;
	if (!rp_shard_arm_recv(sh, op))
		rp_shard_park(sh, op); /* SQ stuck: the next put tries again */
}

void rp_buf_put(struct rp_shard *sh, uint16_t bid)
{
	/* A buffer that is not out (a double put, a stray id) would be handed
	 * to two receives at once: refuse and count it. */
	if (bid >= sh->nbufs || !buf_is_out(sh, bid)) {
		STAT_INC(sh, buf_misuse);
		return;
	}
	buf_mark(sh, bid, false);
	io_uring_buf_ring_add(sh->br, sh->bufs[bid], sh->buf_size, bid,
			      io_uring_buf_ring_mask(sh->nbufs), 0);
	io_uring_buf_ring_advance(sh->br, 1);
	sh->bufs_out--;
	unpark_one(sh);
}

unsigned rp_buf_size(const struct rp_shard *sh)
{
	return sh->buf_size;
}

unsigned rp_buf_count(const struct rp_shard *sh)
{
	return sh->nbufs;
}

unsigned rp_buf_out(const struct rp_shard *sh)
{
	return sh->bufs_out;
}

/* ---- fds being closed ---- */

bool rp_shard_closing_add(struct rp_shard *sh, int fd)
{
	if (sh->nclosing == sh->closing_cap) {
		unsigned cap = sh->closing_cap ? 2 * sh->closing_cap : 16;
		int *c = realloc(sh->closing, cap * sizeof(*c));

		if (!c)
			return false;
		sh->closing = c;
		sh->closing_cap = cap;
	}
	sh->closing[sh->nclosing++] = fd;
	return true;
}

static void closing_del(struct rp_shard *sh, int fd)
{
	for (unsigned i = 0; i < sh->nclosing; i++) {
		if (sh->closing[i] == fd) {
			sh->closing[i] = sh->closing[--sh->nclosing];
			return;
		}
	}
}

static bool fd_closing(const struct rp_shard *sh, int fd)
{
	for (unsigned i = 0; i < sh->nclosing; i++)
		if (sh->closing[i] == fd)
			return true;
	return false;
}

/* ---- completions ---- */

/* The eventfd read stays armed: rp_runtime_submit and rp_runtime_stop wake
 * the shard through it. Without an SQE it is retried every iteration. */
static void arm_eventfd(struct rp_shard *sh)
{
	struct io_uring_sqe *sqe = rp_shard_sqe(sh);

	sh->efd_unarmed = !sqe;
	if (!sqe)
		return;
	io_uring_prep_read(sqe, sh->efd, &sh->efd_val, sizeof(sh->efd_val), 0);
	io_uring_sqe_set_data(sqe, &sh->efd_op);
	sh->internal++;
}

static void wake_sent(struct rp_shard *sh, uint64_t ud, int res)
{
	struct rp_runtime *rt = sh->rt;
	unsigned target = (unsigned)(ud & 0xffffffffu);
	static const uint64_t one = 1;

	sh->internal--;
	if (res >= 0 || target >= rt->n)
		return;
	/* The MSG_RING did not land (the target's CQ full, a kernel refusing
	 * it): the target may be asleep with mail waiting, so wake it through
	 * its eventfd instead. */
	STAT_INC(sh, wake_fallback);
	ssize_t w = write(rt->shards[target]->efd, &one, sizeof(one));
	(void)w; /* EAGAIN: the counter is already non-zero, it will wake */
}

static void token_cqe(struct rp_shard *sh, uint64_t ud, int res)
{
	switch (ud) {
	case UD_WAKE:
		STAT_INC(sh, wakeups);
		break;
	case UD_LINK_TO:
		sh->internal--;
		if (res == -ETIME)
			STAT_INC(sh, err_timeout);
		break;
	case UD_CANCEL_ALL:
		sh->internal--;
		break;
	default:
		break;
	}
}

/* A multishot op the kernel ended on its own may be armed again unless the
 * shard stops, its fd is being closed or cancelled, or rp_cancel asked. */
static inline bool may_rearm(const struct rp_shard *sh, const struct rp_op *op)
{
	return !sh->stopping && !(op->flags & OPF_CANCEL_REQ) && !fd_closing(sh, op->fd);
}

static void dispatch(struct rp_shard *sh, uint64_t ud, int res, uint32_t cflags)
{
	struct rp_cqe c = { .res = res };
	struct rp_op *op;

	STAT_INC(sh, ops_completed);
	if (ud < UD_MAX_TOKEN) {
		token_cqe(sh, ud, res);
		return;
	}
	if (ud & UD_CLOSING_FD) {
		/* every op that was on the fd has its final CQE queued before this */
		sh->internal--;
		closing_del(sh, (int)(uint32_t)ud);
		return;
	}
	if (ud & UD_WAKE_SENT) {
		wake_sent(sh, ud, res);
		return;
	}
	op = (struct rp_op *)(uintptr_t)ud;
	switch (op->kind) {
	case OP_EVENTFD:
		sh->internal--;
		if (res > 0)
			STAT_INC(sh, wakeups);
		if (!sh->stopping && res != -ECANCELED)
			arm_eventfd(sh);
		return;
	case OP_CANCEL_FD:
		if (op->fd >= 0)
			closing_del(sh, op->fd);
		break;
	case OP_ACCEPT_MS:
		if (cflags & IORING_CQE_F_MORE) {
			c.flags = RP_CQE_MORE;
			deliver(sh, op, &c);
			return;
		}
		if (res >= 0 && may_rearm(sh, op)) {
			/* the kernel ended it without an error: keep accepting */
			STAT_INC(sh, rearms);
			if (!rp_shard_arm_accept(sh, op)) {
				c.res = -EBUSY; /* SQ stuck: end it, the caller decides */
				break;
			}
			c.flags = RP_CQE_MORE | RP_CQE_REARMED;
			deliver(sh, op, &c);
			return;
		}
		break;
	case OP_RECV_MS:
		if (cflags & IORING_CQE_F_BUFFER) {
			c.bid = (uint16_t)(cflags >> IORING_CQE_BUFFER_SHIFT);
			c.buf = sh->bufs[c.bid];
			sh->bufs_out++;
			buf_mark(sh, c.bid, true);
		}
		if (cflags & IORING_CQE_F_MORE) {
			c.flags = RP_CQE_MORE;
			deliver(sh, op, &c);
			return;
		}
		if ((res == -ENOBUFS || res > 0) && may_rearm(sh, op)) {
			STAT_INC(sh, rearms);
			if (res == -ENOBUFS)
				STAT_INC(sh, enobufs);
			if (sh->bufs_out >= sh->nbufs) {
				rp_shard_park(sh, op);
			} else if (!rp_shard_arm_recv(sh, op)) {
				c.res = res > 0 ? res : -EBUSY; /* SQ stuck: this is its end */
				break;
			}
			if (res < 0)
				return; /* invisible to the caller: it is re-armed */
			c.flags = RP_CQE_MORE | RP_CQE_REARMED;
			deliver(sh, op, &c);
			return;
		}
		if (res == -ENOBUFS)
			c.res = -ECANCELED; /* cancelled (or closing) while it was ending */
		break;
	case OP_SEND_ZC:
		if (cflags & IORING_CQE_F_NOTIF) {
			STAT_INC(sh, zc_sends);
			c.flags = RP_CQE_NOTIF;
			if ((uint32_t)res & IORING_NOTIF_USAGE_ZC_COPIED) {
				c.flags |= RP_CQE_ZC_COPIED;
				STAT_INC(sh, zc_copied);
			}
			c.res = 0;
			goto last;
		}
		if (cflags & IORING_CQE_F_MORE) {
			count_err(sh, res);
			c.flags = RP_CQE_MORE;
			deliver(sh, op, &c);
			return;
		}
		break;
	default:
		break;
	}
last:
	count_err(sh, c.res);
	deliver(sh, op, &c);
	op_free(sh, op);
}

/*
 * CQEs moved aside by an SQ flush inside a callback are older than any
 * still in the CQ, and newer than the rest of the batch being dispatched
 * when the flush happened: run them after that batch and before peeking
 * again, or multishot data (and a send_zc's result vs its notification)
 * would be seen out of order. A callback run from here may stash more:
 * they queue behind.
 */
static void run_stash(struct rp_shard *sh)
{
	while (sh->stash_head < sh->nstash) {
		struct rp_cqe_copy c = sh->stash[sh->stash_head++];

		dispatch(sh, c.ud, c.res, c.flags);
	}
	sh->stash_head = sh->nstash = 0;
}

static void reap(struct rp_shard *sh)
{
	struct io_uring_cqe *cqes[REAP_BATCH];
	struct rp_cqe_copy batch[REAP_BATCH];
	unsigned n;

	run_stash(sh);
	do {
		n = io_uring_peek_batch_cqe(&sh->ring, cqes, REAP_BATCH);
		for (unsigned i = 0; i < n; i++)
			batch[i] = (struct rp_cqe_copy){ cqes[i]->user_data, cqes[i]->res,
							 cqes[i]->flags };
		io_uring_cq_advance(&sh->ring, n);
		for (unsigned i = 0; i < n; i++)
			dispatch(sh, batch[i].ud, batch[i].res, batch[i].flags);
		run_stash(sh);
	} while (n == REAP_BATCH);
	deliver_dead(sh);

	if (IO_URING_READ_ONCE(*sh->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW)
		STAT_INC(sh, cq_overflow);
}

/* ---- mailboxes ---- */

static unsigned drain(struct rp_shard *sh)
{
	struct rp_runtime *rt = sh->rt;
	unsigned n = 0;
	void *items[32];

	for (unsigned src = 0; src < rt->n; src++) {
		struct rp_spsc *box = rt->mbox[sh->id * rt->n + src];
		unsigned got, budget = DRAIN_BUDGET;

		while (budget && (got = rp_spsc_pop_burst(box, items, budget < 32 ? budget : 32))) {
			for (unsigned i = 0; i < got; i++) {
				struct rp_msg *m = items[i];
				rp_msg_fn fn = m->fn;
				void *arg = m->arg;

				rp_pool_free(m);
				fn(sh, arg);
			}
			n += got;
			budget -= got;
		}
	}
	for (unsigned k = 0; k < DRAIN_BUDGET; k++) {
		struct rp_msg *m = rp_mpsc_pop(sh->inbox);
		rp_msg_fn fn;
		void *arg;

		if (!m)
			break;
		fn = m->fn;
		arg = m->arg;
		free(m);
		fn(sh, arg);
		n++;
	}
	if (n)
		STAT_ADD(sh, msgs_in, n);
	return n;
}

/* After the loop ended: run every message that reached this shard's
 * mailboxes before it stopped (rp_shard_stopping() is true for them). What
 * a sender pushes after this is handed to cfg.on_drop by rp_runtime_wait. */
void rp_shard_drain_final(struct rp_shard *sh)
{
	for (unsigned rounds = 0; rounds < 64 && drain(sh); rounds++)
		;
}

static bool mail_pending(struct rp_shard *sh)
{
	struct rp_runtime *rt = sh->rt;

	for (unsigned src = 0; src < rt->n; src++)
		if (!rp_spsc_empty(rt->mbox[sh->id * rt->n + src]))
			return true;
	return !rp_mpsc_empty(sh->inbox);
}

/* ---- stopping ---- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void cancel_all(struct rp_shard *sh)
{
	struct io_uring_sqe *sqe = rp_shard_sqe(sh);

	sh->last_cancel_ns = now_ns();
	if (!sqe)
		return; /* retried after STOP_RECANCEL_NS */
	io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
	io_uring_sqe_set_data64(sqe, UD_CANCEL_ALL);
	sh->internal++;
}

static void begin_stop(struct rp_shard *sh)
{
	struct rp_runtime *rt = sh->rt;

	sh->stopping = true;
	sh->stop_deadline_ns = now_ns() + (uint64_t)rt->cfg.stop_timeout_ms * 1000000u;
	if (rt->cfg.on_stop)
		rt->cfg.on_stop(sh, rt->cfg.arg);
	while (sh->parked)
		rp_shard_unpark_dead(sh, sh->parked);
	cancel_all(sh);
}

static const char *const kind_names[OP_KINDS] = {
	[OP_PLAIN] = "plain",	      [OP_ACCEPT_MS] = "accept_multishot",
	[OP_RECV_MS] = "recv_multishot", [OP_SEND_ZC] = "send_zc",
	[OP_EVENTFD] = "eventfd",     [OP_CANCEL_FD] = "cancel_fd",
};

/*
 * The stop deadline passed with ops still in the kernel (a send_zc whose
 * notification waits on a peer's zero window, io-wq work that ignores the
 * cancel): say which, count them, and leave them to the kernel, which ends
 * them when the ring is closed. Their callbacks never run.
 */
static void report_stuck(struct rp_shard *sh)
{
	char kinds[256];
	size_t off = 0;

	kinds[0] = 0;
	for (unsigned k = 0; k < OP_KINDS; k++) {
		if (!sh->live_kind[k] || off >= sizeof(kinds))
			continue;
		off += (size_t)snprintf(kinds + off, sizeof(kinds) - off, " %s=%u", kind_names[k],
					sh->live_kind[k]);
	}
	STAT_ADD(sh, stuck_ops, sh->live);
	fprintf(stderr,
		"ringplane: shard %u: %u ops still in flight %u ms after stop (%s ), %u internal;"
		" leaving them to the kernel\n",
		sh->id, sh->live, sh->rt->cfg.stop_timeout_ms, kinds, sh->internal);
}

/* ---- the loop ---- */

static void enter(struct rp_shard *sh, bool wait)
{
	struct io_uring_cqe *cqe;
	int ret;

	if (sh->stopping) {
		struct __kernel_timespec ts = { .tv_nsec = STOP_RECANCEL_NS };

		if (wait)
			ret = io_uring_submit_and_wait_timeout(&sh->ring, &cqe, 1, &ts, NULL);
		else
			ret = io_uring_submit_and_get_events(&sh->ring);
		if (now_ns() - sh->last_cancel_ns >= STOP_RECANCEL_NS && sh->live)
			cancel_all(sh);
	} else if (wait) {
		ret = io_uring_submit_and_wait(&sh->ring, 1);
	} else if (sh->defer) {
		/* completions of a DEFER_TASKRUN ring appear only on GETEVENTS;
		 * not a zero timeout: that arms a timer and costs ~16 us here */
		ret = io_uring_submit_and_get_events(&sh->ring);
	} else {
		ret = io_uring_submit(&sh->ring);
	}
	(void)ret; /* -ETIME, -EINTR, -EBUSY (overflow: the reap makes room) */
	STAT_INC(sh, submits);
	/* submitted: the last op's SQE slot is the kernel's now (rp_link_timeout) */
	sh->last_sqe = NULL;
	sh->last_op = NULL;
}

/*
 * Busy-poll for up to cfg.spin_ns before sleeping: a CQE or a message found
 * here skips the sleep and the wake-up that would follow it (the scheduler
 * wake-up is most of a round trip's server-side latency). Returns true when
 * there is something to do.
 */
static bool spin(struct rp_shard *sh)
{
	uint64_t end = now_ns() + sh->rt->cfg.spin_ns;

	for (unsigned i = 0;; i++) {
		/* mailboxes are plain memory: look every time; the kernel (which
		 * a DEFER_TASKRUN ring needs for its completions) every 8th */
		if (mail_pending(sh) || atomic_load_explicit(&sh->rt->stop, memory_order_relaxed))
			return true;
		if (!(i & 7)) {
			if (sh->defer)
				io_uring_submit_and_get_events(&sh->ring);
			else
				io_uring_submit_and_wait(&sh->ring, 0);
			STAT_INC(sh, submits);
			if (now_ns() >= end)
				return io_uring_cq_ready(&sh->ring) != 0;
		}
		if (io_uring_cq_ready(&sh->ring))
			return true;
		cpu_relax();
	}
}

void rp_shard_loop(struct rp_shard *sh)
{
	struct rp_runtime *rt = sh->rt;

	arm_eventfd(sh);
	for (;;) {
		unsigned work = drain(sh);
		bool wait = true;

		STAT_INC(sh, loops);
		/* acquire: pairs with rp_runtime_stop's store; nothing else rides on it */
		if (!sh->stopping && atomic_load_explicit(&rt->stop, memory_order_acquire))
			begin_stop(sh);
		if (sh->stopping) {
			if (!sh->live && !sh->internal && !io_uring_sq_ready(&sh->ring))
				break;
			if (now_ns() >= sh->stop_deadline_ns) {
				report_stuck(sh);
				break;
			}
		} else if (sh->efd_unarmed) {
			arm_eventfd(sh);
		}
		if (work || sh->nstash || sh->dead) {
			wait = false;
		} else if (!sh->stopping && rt->cfg.spin_ns && spin(sh)) {
			wait = false; /* found work while awake: no wake-up needed */
		} else if (!sh->stopping) {
			/*
			 * Dekker with the senders: we publish "sleeping", then look at the
			 * mailboxes; a sender publishes its message, then looks at
			 * "sleeping". seq_cst on both sides means at least one of us sees
			 * the other's store: a message is never left asleep.
			 */
			atomic_store_explicit(&sh->sleeping, 1, memory_order_seq_cst);
			atomic_thread_fence(memory_order_seq_cst);
			if (mail_pending(sh) || atomic_load_explicit(&rt->stop, memory_order_seq_cst)) {
				atomic_store_explicit(&sh->sleeping, 0, memory_order_relaxed);
				wait = false;
			}
		}
		/* Messages ran but nothing was prepared for the kernel: go round
		 * again without a syscall, a few times at most so completions are
		 * still collected under a stream of messages. */
		if (!wait && !sh->stopping && !io_uring_sq_ready(&sh->ring) &&
		    sh->skipped_enters < 8) {
			sh->skipped_enters++;
			reap(sh);
			continue;
		}
		sh->skipped_enters = 0;
		enter(sh, wait);
		/* relaxed: a sender that still sees 1 only sends a spare wake-up */
		atomic_store_explicit(&sh->sleeping, 0, memory_order_relaxed);
		reap(sh);
	}
}
