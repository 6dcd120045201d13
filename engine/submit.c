/* SPDX-License-Identifier: MIT */
/*
 * SQ full and CQ overflow, the fds being closed and the table of the live
 * ops of each fd (submit.h).
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "submit.h"

#ifdef RP_ENGINE_TEST_HOOKS
struct rp_engine_test_hooks rp_engine_test_hooks;
#endif

/* Move every CQE now in the CQ to the stash (dispatched by the loop before
 * anything newer), so the kernel can post again while we are inside a
 * callback. */
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

/* How long a flush of an SQPOLL ring waits for the SQ thread: it is a
 * kernel thread scheduled like any other, and on a loaded 2-vCPU host a
 * runnable thread can wait tens of ms for its turn. The bound only keeps a
 * shard from hanging on a wedged or dead SQ thread. */
#define SQPOLL_WAIT_NS 1000000000ull

/*
 * SQPOLL: io_uring_submit only publishes the SQ tail (and wakes the SQ
 * thread if it sleeps); the SQ thread takes the SQEs later, so the SQ is
 * not empty when it returns, as it is without SQPOLL. Wait until the
 * thread has taken every published SQE, so a flush leaves the room the
 * callers count on (eng_sqe: SQ_SPARE + 1; rp_close: all its SQEs).
 * IORING_ENTER_SQ_WAIT sleeps only while the SQ is full (the kernel's
 * io_sqpoll_wait_sq waits for one free slot); with a few slots free it
 * returns at once, so then the shard yields its CPU to the SQ thread.
 * Bounded by SQPOLL_WAIT_NS; false if the SQEs are still there then.
 */
static bool sqpoll_drain(struct rp_shard *sh)
{
	uint64_t end = 0;

	for (unsigned i = 0;; i++) {
		int ret = io_uring_submit(&sh->ring);

		STAT_INC(sh, submits);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
			return false; /* e.g. -EOWNERDEAD: the SQ thread is gone */
		if (!io_uring_sq_ready(&sh->ring))
			return true;
		if (!io_uring_sq_space_left(&sh->ring))
			(void)io_uring_enter((unsigned)sh->ring.ring_fd, 0, 0,
					     IORING_ENTER_SQ_WAKEUP | IORING_ENTER_SQ_WAIT, NULL);
		else
			sched_yield();
		/* the clock on the first round and every 64th */
		if (!(i & 63)) {
			uint64_t now = eng_now_ns();

			if (!end)
				end = now + SQPOLL_WAIT_NS;
			else if (now >= end)
				return false;
		}
	}
}

bool eng_flush(struct rp_shard *sh)
{
	/* after the loop nothing is sent (eng_sq_abandon): no room is made */
	if (sh->loop_over)
		return false;
	/* what is prepared goes to the kernel (also when the flush then
	 * fails for room): the last op's SQE is no longer ours to link or
	 * bound (rp_link_next, rp_link_timeout), as after the loop's enter.
	 * No link is pending: a flush would split its pair, so none is made */
	sh->last_sqe = NULL;
	sh->last_op = NULL;
	STAT_INC(sh, sq_full);
	if (RP_TEST_HOOK(flush_stash))
		stash_cqes(sh);
	if (sh->rt->cfg.sqpoll && !RP_TEST_HOOK(flush_fail) && sqpoll_drain(sh))
		return true;
	for (int tries = 0; tries < 1000 && !RP_TEST_HOOK(flush_fail); tries++) {
		int ret;

#ifdef RP_FAULTS
		/* nothing submitted: what is prepared stays in the SQ */
		if (ENG_FAULT(sh, FAULT_EAGAIN))
			ret = -EAGAIN;
		else
#endif
			ret = io_uring_submit(&sh->ring);

		STAT_INC(sh, submits);
		if (ret == -EBUSY || ret == -EAGAIN)
			stash_cqes(sh); /* CQ overflowed: make room, then retry */
		else if (ret < 0 && ret != -EINTR)
			break;
		if (io_uring_sq_space_left(&sh->ring) >= SQ_SPARE + 1)
			return true;
	}
	/* The op that wanted the SQE fails with EBUSY; what is prepared stays
	 * and goes with the loop's next submit. */
	STAT_INC(sh, sq_full_fail);
	return io_uring_sq_space_left(&sh->ring) >= SQ_SPARE + 1;
}

bool eng_fdt_grow(struct rp_shard *sh, int fd)
{
	unsigned cap = sh->fdt_cap ? sh->fdt_cap : 1024;
	struct rp_op **t;

	if (RP_TEST_HOOK(fdt_nomem))
		return false;
	while (cap <= (unsigned)fd) {
		if (cap > UINT_MAX / 2)
			return false;
		cap *= 2;
	}
	t = realloc(sh->fdt, (size_t)cap * sizeof(*t));
	if (!t)
		return false;
	memset(t + sh->fdt_cap, 0, (size_t)(cap - sh->fdt_cap) * sizeof(*t));
	sh->fdt = t;
	sh->fdt_cap = cap;
	return true;
}

bool eng_closing_add(struct rp_shard *sh, int fd)
{
	if (RP_TEST_HOOK(closing_nomem))
		return false;
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

void eng_closing_del(struct rp_shard *sh, int fd)
{
	for (unsigned i = 0; i < sh->nclosing; i++) {
		if (sh->closing[i] == fd) {
			sh->closing[i] = sh->closing[--sh->nclosing];
			return;
		}
	}
}

bool eng_fd_closing(const struct rp_shard *sh, int fd)
{
	for (unsigned i = 0; i < sh->nclosing; i++)
		if (sh->closing[i] == fd)
			return true;
	return false;
}

/* Make @sqe a NOP that posts no CQE (IOSQE_CQE_SKIP_SUCCESS: a NOP always
 * succeeds) and is linked to nothing; a close it held is done now. */
static unsigned sqe_neutralise(struct rp_shard *sh, struct io_uring_sqe *sqe)
{
	unsigned closed = 0;

	if (sqe->opcode == IORING_OP_CLOSE && !sqe->file_index && sqe->fd >= 0) {
		struct rp_op *op = (struct rp_op *)(uintptr_t)sqe->user_data;

		/* every close SQE is an rp_close op's (user_data its op): one
		 * another close of its fd superseded closes nothing */
		if (op && (op->flags & OPF_LCLOSE_GONE))
			goto nop;
		close(sqe->fd);
		closed = 1;
		/* a linked close done here: nothing left to settle; any other
		 * linked close of that fd (in the kernel, or later in the SQ)
		 * closes nothing more */
		if (op && (op->flags & OPF_LINKED_CLOSE)) {
			eng_olist_del(&sh->lclose, op);
			op->flags &= (uint16_t)~OPF_LINKED_CLOSE;
		}
		eng_lclose_supersede(sh, sqe->fd, NULL);
	}
nop:
	memset(sqe, 0, sizeof(*sqe));
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data64(sqe, 0);
	sqe->flags = IOSQE_CQE_SKIP_SUCCESS;
	return closed;
}

unsigned eng_sq_abandon(struct rp_shard *sh)
{
	struct io_uring_sq *sq = &sh->ring.sq;
	unsigned closed = 0, from;

	if (sh->loop_over || !sh->ring_ok)
		return 0;
	/* Without SQPOLL the kernel reads the SQ only inside this thread's
	 * io_uring_enter: everything past its head is still ours, also what
	 * an enter that failed (-EBUSY on a CQ overflow) left published.
	 * With SQPOLL only what was never published is. */
	from = sh->rt->cfg.sqpoll ? sq->sqe_head : IO_URING_READ_ONCE(*sq->khead);
	for (unsigned i = from; i != sq->sqe_tail; i++)
		closed += sqe_neutralise(sh, &sq->sqes[i & sq->ring_mask]);
	/* the SQ thread takes what was published (and the NOPs): a close
	 * among them then runs before the ring is closed, which would
	 * skip it (a dying ring submits nothing) */
	if (sh->rt->cfg.sqpoll && io_uring_sq_ready(&sh->ring))
		(void)sqpoll_drain(sh);
	sh->link_next = false;
	sh->last_sqe = NULL;
	sh->last_op = NULL;
	sh->loop_over = true;
	/* after loop_over nothing is sent again (close_send gives -EBUSY):
	 * the list stays empty */
	eng_lclose_sent_clear(sh);
	return closed;
}
