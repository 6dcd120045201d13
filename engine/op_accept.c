/* SPDX-License-Identifier: MIT */
/*
 * Multishot accept: armed once, one CQE per new connection; armed again
 * when the kernel ends it without an error (at once, or from the loop's
 * next turn when the SQ stayed full: a listener never stops in silence).
 */
#include <errno.h>
#include <sys/socket.h>

#include "op.h"

static void prep_accept(struct io_uring_sqe *sqe, struct rp_op *op)
{
	io_uring_prep_multishot_accept(sqe, op->fd, NULL, NULL, SOCK_CLOEXEC);
}

static bool arm_accept(struct rp_shard *sh, struct rp_op *op, struct io_uring_sqe *sqe)
{
	if (!sqe)
		return false;
	prep_accept(eng_op_sqe(sh, op, sqe), op);
	return true;
}

/* From the loop: the re-arm the completion below could not send. */
bool eng_accept_rearm(struct rp_shard *sh, struct rp_op *op)
{
	return arm_accept(sh, op, eng_sqe(sh));
}

struct rp_op *rp_accept_multishot(struct rp_shard *sh, int fd, rp_cb cb, void *arg)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op = eng_op_start_fd(sh, OP_ACCEPT_MS, fd, cb, arg, &sqe);

	if (op)
		prep_accept(sqe, op);
	return op;
}


void eng_accept_complete(struct rp_shard *sh, struct rp_op *op, int res, uint32_t cflags)
{
	struct rp_cqe c = { .res = res };

	if (cflags & IORING_CQE_F_MORE) {
		c.flags = RP_CQE_MORE;
		eng_deliver(sh, op, &c);
		return;
	}
	if (res >= 0 && eng_may_rearm(sh, op)) {
		/* the kernel ended it without an error: keep accepting */
		STAT_INC(sh, rearms);
		/* SQ stuck: the loop arms it on its next turn; ending it here
		 * lost the connection in res and left the listener down */
		if (!arm_accept(sh, op, eng_rearm_sqe(sh)))
			eng_rearm_later(sh, op);
		c.flags = RP_CQE_MORE | RP_CQE_REARMED;
		eng_deliver(sh, op, &c);
		return;
	}
	eng_op_finish(sh, op, &c);
}
