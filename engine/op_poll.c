/* SPDX-License-Identifier: MIT */
/*
 * rp_poll_writable: wait until a socket can take bytes, with an answer for
 * the peer that half-closed and does not read.
 *
 * io_uring adds EPOLLERR|EPOLLHUP|EPOLLNVAL|EPOLLRDHUP to every poll it
 * arms (IO_POLL_UNMASK, io_uring/poll.c, io_init_poll_iocb), whatever the
 * caller asked for. Once the peer sent its FIN, a one-shot POLLOUT poll on
 * a full socket therefore completes at once with POLLRDHUP alone, and
 * polling again spins: filesend measured ~47,000 polls a second for 20
 * half-closed clients that never read. net/ used to pause 10 ms after each
 * such answer.
 *
 * Here the first poll is the one-shot rp_poll would send, so a socket
 * with room costs no more. Only when it answers POLLRDHUP alone does the
 * engine arm a multishot poll (IORING_POLL_ADD_MULTI; the kernel has it
 * since 5.13, older than the multishot recv the engine requires). Without
 * IORING_POLL_ADD_LEVEL it is edge-triggered: after its first result it
 * posts only when the socket's wait queue is woken with an event it asked
 * for (io_poll_wake). Its first result, RDHUP alone again unless room came
 * meanwhile, is dropped too (each counted in poll_rdhup) and the poll stays
 * armed; the next CQE comes with the write-space wake-up (key EPOLLOUT,
 * sk_stream_write_space), an error or a hang-up; a wake-up with no event
 * mask (a state change, the owner's own shutdown) posts RDHUP alone again,
 * dropped and counted the same way. No timer, no delay to a
 * real POLLOUT. Once the caller has its answer the engine cancels the
 * multishot poll by user_data; the op then lives on, invisible, until the
 * kernel's final CQE (one more loop iteration). A re-arm or a cancel that
 * finds the SQ full waits on the shard's re-arm list for the loop's next
 * turn: never a poll that is armed only in the op's state.
 */
#include <poll.h>

#include "op.h"

#define WRITABLE (POLLOUT | POLLERR | POLLHUP | POLLNVAL)

static bool arm_poll(struct rp_shard *sh, struct rp_op *op, struct io_uring_sqe *sqe)
{
	if (!sqe)
		return false;
	io_uring_prep_poll_multishot(eng_op_sqe(sh, op, sqe), op->fd, POLLOUT);
	return true;
}

struct rp_op *rp_poll_writable(struct rp_shard *sh, int fd, rp_cb cb, void *arg)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op = eng_op_start_fd(sh, OP_POLL_OUT, fd, cb, arg, &sqe);

	if (op)
		io_uring_prep_poll_add(sqe, fd, POLLOUT);
	return op;
}

/* Cancel the answered poll by user_data (OPF_CANCEL_REQ marks it asked). */
static bool send_end(struct rp_shard *sh, struct rp_op *op, struct io_uring_sqe *sqe)
{
	if (!sqe)
		return false;
	op->flags |= OPF_CANCEL_REQ;
	io_uring_prep_cancel(sqe, op, 0);
	io_uring_sqe_set_data64(sqe, UD_OP_CANCEL);
	sh->internal++;
	return true;
}

/* The caller has its answer: end the poll. Without an SQE the loop sends
 * the cancel on its next turn (eng_poll_out_rearm); an rp_close or a stop
 * meanwhile cancels it as any armed op. */
static void end_poll(struct rp_shard *sh, struct rp_op *op)
{
	if (op->flags & OPF_CANCEL_REQ)
		return;
	if (!send_end(sh, op, eng_rearm_sqe(sh)))
		eng_rearm_later(sh, op);
}

/* From the loop: what a completion could not send, the multishot poll
 * after an RDHUP-only answer or an answered poll's cancel. */
bool eng_poll_out_rearm(struct rp_shard *sh, struct rp_op *op)
{
	if (op->flags & OPF_RESULT_SEEN) /* still armed: only its end is owed */
		return (op->flags & OPF_CANCEL_REQ) || send_end(sh, op, eng_sqe(sh));
	return arm_poll(sh, op, eng_sqe(sh));
}

void eng_poll_out_complete(struct rp_shard *sh, struct rp_op *op, int res, uint32_t cflags)
{
	struct rp_cqe c = { .res = res };
	bool more = cflags & IORING_CQE_F_MORE;

	if (op->flags & OPF_RESULT_SEEN) { /* answered: only the poll's end is due */
		if (more)
			end_poll(sh, op);
		else
			eng_op_free(sh, op);
		return;
	}
	if (res >= 0 && !(res & WRITABLE)) {
		/* POLLRDHUP alone (IO_POLL_UNMASK): not an answer */
		STAT_INC(sh, poll_rdhup);
		if (more)
			return; /* still armed: the next wake-up posts again */
		/* the one-shot poll, or a multishot one the kernel ended on
		 * its own (a CQ overflow): wait with a multishot poll */
		if (!eng_may_rearm(sh, op)) {
			c.res = -ECANCELED; /* stopping, closing or cancelled */
		} else {
			/* SQ stuck: the loop arms it on its next turn */
			if (!arm_poll(sh, op, eng_rearm_sqe(sh)))
				eng_rearm_later(sh, op);
			return;
		}
	}
	if (!more) {
		eng_op_finish(sh, op, &c);
		return;
	}
	/* The multishot poll's answer, the poll still armed: the caller sees
	 * its one final callback now, and the engine ends the poll. */
	op->flags |= OPF_RESULT_SEEN;
	eng_deliver(sh, op, &c);
	op->cb = NULL;
	end_poll(sh, op);
}
