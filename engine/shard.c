/* SPDX-License-Identifier: MIT */
/*
 * The shard loop: drain mailboxes, submit everything prepared with one
 * io_uring_submit_and_wait, reap CQEs in batches and hand each to its op
 * kind (opdef.c), stop. The loop calls down into the op files; they never
 * call back into it.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "op.h"

#define REAP_BATCH 64
#define DRAIN_BUDGET 256		   /* messages per mailbox per iteration */
#define STOP_RECANCEL_NS (50 * 1000 * 1000) /* re-send cancel-any while stopping */
/* cfg.idle_spin_ns: a yield this long means the CPU is contended (the
 * scheduler's base slice is 750 us since Linux 6.6, 3 ms before); then no
 * spin for the back-off */
#define IDLE_SPIN_CONTENDED_NS (500 * 1000)
#define IDLE_SPIN_BACKOFF_NS   (50 * 1000 * 1000)

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield" ::: "memory");
#endif
}

/* ---- completions ---- */

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
	case UD_OP_CANCEL: /* 0, or -ENOENT/-EALREADY: the op was ending anyway */
		sh->internal--;
		break;
	/* 0, or -ENOENT/-EALREADY: the timer had fired, its CQE comes or came */
	case UD_TIMER_UPDATE:
#ifdef RP_ENGINE_TEST_HOOKS
		atomic_store(&rp_engine_test_hooks.timer_update_res, res);
		atomic_fetch_add(&rp_engine_test_hooks.timer_updates, 1);
#endif
		sh->internal--;
		break;
	default:
		break;
	}
}

static void dispatch(struct rp_shard *sh, uint64_t ud, int res, uint32_t cflags)
{
	struct rp_op *op;

	STAT_INC(sh, ops_completed);
	if (ud < UD_MAX_TOKEN) {
		token_cqe(sh, ud, res);
		return;
	}
	if (ud & UD_CLOSING_FD) {
		/* every op that was on the fd has its final CQE queued before this */
		sh->internal--;
		if (ud & UD_CLOSING_LISTED) /* the entry this cancel added */
			eng_closing_del(sh, (int)(uint32_t)ud);
		return;
	}
	if (ud & UD_WAKE_SENT) {
		eng_wake_sent(sh, ud, res);
		return;
	}
	if (ud & UD_SUB_CANCEL) {
		eng_cancel_fd_sub(sh, (struct rp_op *)(uintptr_t)(ud & ~UD_SUB_CANCEL), res);
		return;
	}
	op = (struct rp_op *)(uintptr_t)ud;
	eng_op_kinds[op->kind].complete(sh, op, res, cflags);
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
	eng_recv_deliver_dead(sh);

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
				eng_link_drop(sh); /* as eng_deliver */
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
		eng_link_drop(sh);
		n++;
	}
	if (n)
		STAT_ADD(sh, msgs_in, n);
	return n;
}

/* After the loop ended: run every message that reached this shard's
 * mailboxes before it stopped (rp_shard_stopping() is true for them). What
 * a sender pushes after this is handed to cfg.on_drop by rp_runtime_wait. */
void eng_shard_drain_final(struct rp_shard *sh)
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

static void cancel_all(struct rp_shard *sh)
{
	struct io_uring_sqe *sqe = eng_sqe_own(sh);

	sh->last_cancel_ns = eng_now_ns();
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
	sh->stop_deadline_ns = eng_now_ns() + (uint64_t)rt->cfg.stop_timeout_ms * 1000000u;
	if (rt->cfg.on_stop) {
		rt->cfg.on_stop(sh, rt->cfg.arg);
		eng_link_drop(sh); /* as after init: not cancel_all's tail */
	}
	eng_end_outside_fd(sh, -1, true);
	cancel_all(sh);
}

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
		off += (size_t)snprintf(kinds + off, sizeof(kinds) - off, " %s=%u", eng_op_kinds[k].name,
					sh->live_kind[k]);
	}
	STAT_ADD(sh, stuck_ops, sh->live);
	fprintf(stderr,
		"ringplane: shard %u: %u ops still in flight %u ms after stop (%s ), %u internal;"
		" leaving them to the kernel\n",
		sh->id, sh->live, sh->rt->cfg.stop_timeout_ms, kinds, sh->internal);
}

/* ---- re-arms that found the SQ full ---- */

/*
 * Send what a completion or a buffer put could not (eng_rearm_later): the
 * loop's last submit emptied the SQ, so this normally arms every op on
 * the list; one that still finds no SQE stays for the next turn. A
 * callback run from here (an op ended because the shard stops or its fd
 * is closing) may change the list: it is read again after each op.
 */
static void rearm_run(struct rp_shard *sh)
{
	struct rp_op *op;

	while ((op = sh->rearm)) {
		/* an answered poll is still armed: its end is owed whatever */
		bool outside = eng_op_outside(op);

		eng_rearm_del(sh, op);
		if (outside && !eng_may_rearm(sh, op)) {
			/* stopping, its fd closing, or cancelled meanwhile */
			struct rp_cqe c = { .res = -ECANCELED };

			eng_op_finish(sh, op, &c);
			continue;
		}
		if (!eng_op_kinds[op->kind].rearm(sh, op)) {
			eng_rearm_later(sh, op);
			break;
		}
	}
}

/* ---- the loop ---- */

static void enter(struct rp_shard *sh, bool wait)
{
	struct io_uring_cqe *cqe;
	int ret;

#ifdef RP_FAULTS
	/* -EAGAIN without entering: the SQEs stay for the next round. Never
	 * twice in a row, so the loop makes progress whatever the rate. */
	if (!sh->faults.enter_skipped && ENG_FAULT(sh, FAULT_EAGAIN)) {
		sh->faults.enter_skipped = true;
		return;
	}
	sh->faults.enter_skipped = false;
#endif
	if (sh->stopping) {
		struct __kernel_timespec ts = { .tv_nsec = STOP_RECANCEL_NS };

		if (wait)
			ret = io_uring_submit_and_wait_timeout(&sh->ring, &cqe, 1, &ts, NULL);
		else
			ret = io_uring_submit_and_get_events(&sh->ring);
		if (eng_now_ns() - sh->last_cancel_ns >= STOP_RECANCEL_NS && sh->live)
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
	uint64_t end = eng_now_ns() + sh->rt->cfg.spin_ns;

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
			if (eng_now_ns() >= end)
				return io_uring_cq_ready(&sh->ring) != 0;
		}
		if (io_uring_cq_ready(&sh->ring))
			return true;
		cpu_relax();
	}
}

/*
 * The adaptive idle spin (cfg.idle_spin_ns): poll as spin() does, but give
 * the CPU to any other runnable task between polls. A relay and the server
 * it talks to often share a CPU: the relay's send wakes the server there,
 * and a spin that did not yield would hold the CPU the answer must be
 * computed on. sched_yield() with nothing else runnable returns at once.
 * Returns true when there is something to do.
 */
static bool idle_spin(struct rp_shard *sh, uint64_t start)
{
	uint64_t end = start + sh->rt->cfg.idle_spin_ns, now, yielded;

	for (;;) {
		if (mail_pending(sh) || atomic_load_explicit(&sh->rt->stop, memory_order_relaxed))
			return true;
		if (sh->defer)
			io_uring_submit_and_get_events(&sh->ring);
		else
			io_uring_submit_and_wait(&sh->ring, 0);
		STAT_INC(sh, submits);
		if (io_uring_cq_ready(&sh->ring))
			return true;
		yielded = eng_now_ns();
		if (yielded >= end)
			return false;
		sched_yield();
		/* A yield that lasted a scheduler slice handed the CPU to a task
		 * that keeps it (a build, a second busy shard), not to a peer
		 * answering a message (tens of us here). A runnable spinner gets
		 * no wake-up preemption, so every event would wait behind such
		 * slices: sleep instead, and leave spinning alone for a while. */
		now = eng_now_ns();
		if (now - yielded >= IDLE_SPIN_CONTENDED_NS) {
			sh->spin_after_ns = now + IDLE_SPIN_BACKOFF_NS;
			return false;
		}
	}
}

void eng_shard_loop(struct rp_shard *sh)
{
	struct rp_runtime *rt = sh->rt;

#ifdef RP_FAULTS
	eng_faults_start(&sh->faults, &rt->faults);
#endif
	/* An rp_link_next still pending once the user code that made it
	 * returned (init here; each callback: eng_deliver; each message:
	 * drain; on_stop: begin_stop) had no op made after it: its head runs
	 * alone. Left pending, the next SQE taken, the eventfd's re-arm, a
	 * timer's or the stop's cancel, would wait on that head (a stop or a
	 * message never woke the shard), and a deferred timer never went. */
	eng_link_drop(sh);
	eng_eventfd_arm(sh);
	for (;;) {
		unsigned work = drain(sh);
		bool wait = true;
		uint64_t idle_t0 = 0;

		STAT_INC(sh, loops);
		/* acquire: pairs with rp_runtime_stop's store; nothing else rides on it */
		if (!sh->stopping && atomic_load_explicit(&rt->stop, memory_order_acquire))
			begin_stop(sh);
		if (sh->stopping) {
			if (!sh->live && !sh->internal && !io_uring_sq_ready(&sh->ring))
				break;
			if (eng_now_ns() >= sh->stop_deadline_ns) {
				report_stuck(sh);
				break;
			}
		} else if (sh->efd_unarmed) {
			eng_eventfd_arm(sh);
		}
		if (sh->rearm)
			rearm_run(sh);
		if (sh->timers)
			eng_timer_defer_run(sh);
		/* Messages ran and none is waiting: what they prepared goes to
		 * the kernel with the same enter that waits (one syscall per
		 * hand-off, not a submit and then a wait). The enter returns at
		 * once if a completion is already due. */
		if (work && !mail_pending(sh))
			work = 0;
		if (work || sh->nstash || sh->dead || sh->rearm || sh->timers) {
			wait = false;
		} else if (!sh->stopping && rt->cfg.spin_ns && spin(sh)) {
			wait = false; /* found work while awake: no wake-up needed */
		} else if (!sh->stopping && !rt->cfg.spin_ns && rt->cfg.idle_spin_ns &&
			   !sh->spin_hold && /* before idle_t0: a held gap is not measured */
			   (idle_t0 = eng_now_ns(), sh->last_idle_ns < rt->cfg.idle_spin_ns) &&
			   idle_t0 >= sh->spin_after_ns &&
			   idle_spin(sh, idle_t0)) {
			wait = false;
			sh->last_idle_ns = eng_now_ns() - idle_t0;
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
		if (idle_t0 && wait)
			sh->last_idle_ns = eng_now_ns() - idle_t0;
		/* relaxed: a sender that still sees 1 only sends a spare wake-up */
		atomic_store_explicit(&sh->sleeping, 0, memory_order_relaxed);
		reap(sh);
	}
}
