/* SPDX-License-Identifier: MIT */
/*
 * The shard loop: drain mailboxes, submit everything prepared with one
 * io_uring_submit_and_wait, reap CQEs in batches and run their callbacks.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine_impl.h"
#include "shard.h"

#define REAP_BATCH 64
#define DRAIN_BUDGET 256		   /* messages per mailbox per iteration */
#define STOP_RECANCEL_NS (50 * 1000 * 1000) /* re-send cancel-any while stopping */

static inline void op_free(struct rp_shard *sh, struct rp_op *op)
{
	sh->live--;
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

void rp_shard_flush(struct rp_shard *sh)
{
	STAT_INC(sh, sq_full);
	for (int tries = 0; tries < 1000; tries++) {
		int ret = io_uring_submit(&sh->ring);

		STAT_INC(sh, submits);
		if (ret == -EBUSY || ret == -EAGAIN)
			stash_cqes(sh); /* CQ overflowed: make room, then retry */
		else if (ret < 0 && ret != -EINTR)
			break;
		if (io_uring_sq_space_left(&sh->ring) >= 2)
			return;
		if (sh->rt->cfg.sqpoll)
			io_uring_sqring_wait(&sh->ring);
	}
	/* Unreachable in practice: io_uring_get_sqe would return NULL next, and
	 * a NULL SQE is a bug we prefer to see as a crash in tests over data loss. */
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
	struct io_uring_sqe *sqe;

	while (*pp && *pp != op)
		pp = &(*pp)->next;
	if (*pp)
		*pp = op->next;
	op->flags = (uint8_t)((op->flags & ~OPF_PARKED) | OPF_DEAD_PARKED);
	sqe = rp_shard_sqe(sh);
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data(sqe, op);
}

void rp_buf_put(struct rp_shard *sh, uint16_t bid)
{
	if (bid >= sh->nbufs || !sh->bufs_out)
		return;
	io_uring_buf_ring_add(sh->br, sh->bufs[bid], sh->buf_size, bid,
			      io_uring_buf_ring_mask(sh->nbufs), 0);
	io_uring_buf_ring_advance(sh->br, 1);
	sh->bufs_out--;
	if (sh->parked && !sh->stopping) {
		struct rp_op *op = sh->parked;

		sh->parked = op->next;
		op->flags &= (uint8_t)~OPF_PARKED;
		rp_shard_arm_recv(sh, op);
	}
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

static void arm_eventfd(struct rp_shard *sh)
{
	struct io_uring_sqe *sqe = rp_shard_sqe(sh);

	io_uring_prep_read(sqe, sh->efd, &sh->efd_val, sizeof(sh->efd_val), 0);
	io_uring_sqe_set_data(sqe, &sh->efd_op);
	sh->internal++;
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
	case UD_MSG_SENT:
	case UD_CANCEL_ALL:
		sh->internal--;
		break;
	default:
		break;
	}
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
	op = (struct rp_op *)(uintptr_t)ud;
	if (op->flags & OPF_DEAD_PARKED) {
		c.res = -ECANCELED;
		goto last;
	}
	switch (op->kind) {
	case OP_EVENTFD:
		sh->internal--;
		if (res > 0)
			STAT_INC(sh, wakeups);
		if (!sh->stopping && res != -ECANCELED)
			arm_eventfd(sh);
		return;
	case OP_ACCEPT_MS:
		if (cflags & IORING_CQE_F_MORE) {
			c.flags = RP_CQE_MORE;
			deliver(sh, op, &c);
			return;
		}
		if (res >= 0 && !sh->stopping && !fd_closing(sh, op->fd)) {
			/* the kernel ended it without an error: keep accepting */
			STAT_INC(sh, rearms);
			rp_shard_arm_accept(sh, op);
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
		}
		if (cflags & IORING_CQE_F_MORE) {
			c.flags = RP_CQE_MORE;
			deliver(sh, op, &c);
			return;
		}
		if ((res == -ENOBUFS || res > 0) && !sh->stopping && !fd_closing(sh, op->fd)) {
			STAT_INC(sh, rearms);
			if (res == -ENOBUFS)
				STAT_INC(sh, enobufs);
			if (sh->bufs_out < sh->nbufs)
				rp_shard_arm_recv(sh, op);
			else
				rp_shard_park(sh, op);
			if (res < 0)
				return; /* invisible to the caller: it is re-armed */
			c.flags = RP_CQE_MORE | RP_CQE_REARMED;
			deliver(sh, op, &c);
			return;
		}
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

static void reap(struct rp_shard *sh)
{
	struct io_uring_cqe *cqes[REAP_BATCH];
	struct rp_cqe_copy batch[REAP_BATCH];
	unsigned n;

	/* CQEs moved aside by an SQ flush inside a callback come first. */
	for (unsigned i = 0; i < sh->nstash; i++) {
		struct rp_cqe_copy c = sh->stash[i];

		dispatch(sh, c.ud, c.res, c.flags);
	}
	sh->nstash = 0;

	do {
		n = io_uring_peek_batch_cqe(&sh->ring, cqes, REAP_BATCH);
		for (unsigned i = 0; i < n; i++)
			batch[i] = (struct rp_cqe_copy){ cqes[i]->user_data, cqes[i]->res,
							 cqes[i]->flags };
		io_uring_cq_advance(&sh->ring, n);
		for (unsigned i = 0; i < n; i++)
			dispatch(sh, batch[i].ud, batch[i].res, batch[i].flags);
	} while (n == REAP_BATCH);

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

	io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
	io_uring_sqe_set_data64(sqe, UD_CANCEL_ALL);
	sh->internal++;
	sh->last_cancel_ns = now_ns();
}

static void begin_stop(struct rp_shard *sh)
{
	struct rp_runtime *rt = sh->rt;

	sh->stopping = true;
	if (rt->cfg.on_stop)
		rt->cfg.on_stop(sh, rt->cfg.arg);
	while (sh->parked)
		rp_shard_unpark_dead(sh, sh->parked);
	cancel_all(sh);
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
		if (sh->stopping && !sh->live && !sh->internal && !io_uring_sq_ready(&sh->ring))
			break;
		if (work || sh->nstash) {
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
