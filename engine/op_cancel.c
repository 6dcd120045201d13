/* SPDX-License-Identifier: MIT */
/*
 * Ending ops: rp_close (cancel everything on the fd, then close it),
 * rp_cancel (one op) and rp_cancel_fd (every op on an fd), each closing
 * the window in which the kernel has just ended a multishot op and the
 * engine would arm it again.
 */
#include <errno.h>

#include "op.h"

/*
 * A pending request holds its own reference to the file, so a bare close
 * would leave a recv on @fd armed on the old socket for good; and the
 * engine re-arms multishot ops by fd number, so a parked (or just ended)
 * multishot recv would be armed on whatever file gets the number next.
 * Hence: end the parked ones here, cancel the rest with a cancel-by-fd
 * hard-linked before the close (a hard link runs the close even when there
 * was nothing to cancel), and refuse re-arms on @fd until that cancel has
 * completed.
 */
struct rp_op *rp_close(struct rp_shard *sh, int fd, rp_cb cb, void *arg)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op = eng_op_alloc(sh, OP_PLAIN, cb, arg);

	if (!op)
		return NULL;
	sqe = eng_sqe(sh);
	if (!sqe) {
		eng_op_free(sh, op);
		errno = EBUSY;
		return NULL;
	}
	if (fd >= 0) {
		eng_recv_unpark_fd(sh, fd, false);
		io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
		sqe->flags |= IOSQE_IO_HARDLINK;
		io_uring_sqe_set_data64(sqe, UD_CLOSING_FD | (uint32_t)fd);
		sh->internal++;
		(void)eng_closing_add(sh, fd); /* without memory: best effort */
		sqe = eng_sqe_spare(sh);	    /* same submit as the cancel */
	}
	io_uring_prep_close(eng_op_sqe(sh, op, sqe), fd);
	return op;
}

/*
 * The kernel may have ended a multishot op on its own (ENOBUFS, overflow)
 * with the CQE not reaped yet: the cancel then finds nothing (-ENOENT) and
 * the loop would re-arm the op. OPF_CANCEL_REQ forbids that re-arm (and
 * parking), so the op ends for good with its next final CQE.
 */
struct rp_op *rp_cancel(struct rp_shard *sh, struct rp_op *target, rp_cb cb, void *arg)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op;

	if (!target) {
		errno = EINVAL;
		return NULL;
	}
	op = eng_op_start(sh, OP_PLAIN, cb, arg, true, &sqe);
	if (!op)
		return NULL;
	target->flags |= OPF_CANCEL_REQ;
	if (target->flags & OPF_PARKED) {
		/* Not in the kernel: end it ourselves; the cancel reports success. */
		eng_recv_unpark_dead(sh, target);
		io_uring_prep_nop(sqe);
	} else if (target->flags & OPF_DEAD_PARKED) {
		io_uring_prep_nop(sqe); /* already ending: its -ECANCELED is due */
	} else {
		io_uring_prep_cancel(sqe, target, 0);
	}
	return op;
}

/* As rp_close without the close: re-arms on @fd are refused until this
 * cancel completes (see rp_cancel for the race it closes). */
struct rp_op *rp_cancel_fd(struct rp_shard *sh, int fd, rp_cb cb, void *arg)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op = eng_op_start(sh, OP_CANCEL_FD, cb, arg, true, &sqe);

	if (!op)
		return NULL;
	op->fd = fd;
	eng_recv_unpark_fd(sh, fd, false);
	if (fd >= 0 && !eng_closing_add(sh, fd))
		op->fd = -1; /* without memory: best effort, as rp_close */
	io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
	return op;
}


void eng_cancel_fd_complete(struct rp_shard *sh, struct rp_op *op, int res, uint32_t cflags)
{
	struct rp_cqe c = { .res = res };

	(void)cflags;
	if (op->fd >= 0)
		eng_closing_del(sh, op->fd);
	eng_op_finish(sh, op, &c);
}
