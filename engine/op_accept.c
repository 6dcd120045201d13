/* SPDX-License-Identifier: MIT */
/*
 * Multishot accept: armed once, one CQE per new connection; armed again
 * when the kernel ends it without an error.
 */
#include <errno.h>
#include <sys/socket.h>

#include "op.h"

static void prep_accept(struct io_uring_sqe *sqe, struct rp_op *op)
{
	io_uring_prep_multishot_accept(sqe, op->fd, NULL, NULL, SOCK_CLOEXEC);
}

static bool arm_accept(struct rp_shard *sh, struct rp_op *op)
{
	struct io_uring_sqe *sqe = eng_sqe(sh);

	if (!sqe)
		return false;
	prep_accept(eng_op_sqe(sh, op, sqe), op);
	return true;
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
		if (!arm_accept(sh, op)) {
			c.res = -EBUSY; /* SQ stuck: end it, the caller decides */
			eng_op_finish(sh, op, &c);
			return;
		}
		c.flags = RP_CQE_MORE | RP_CQE_REARMED;
		eng_deliver(sh, op, &c);
		return;
	}
	eng_op_finish(sh, op, &c);
}
