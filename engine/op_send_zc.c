/* SPDX-License-Identifier: MIT */
/*
 * Zero-copy sends (SEND_ZC, SENDMSG_ZC): a result CQE (with
 * IORING_CQE_F_MORE when a notification follows), then the notification
 * once the kernel let go of the buffers, reporting whether it copied the
 * payload after all (loopback, veth).
 */
#include <errno.h>

#include "op.h"

struct rp_op *rp_send_zc(struct rp_shard *sh, int fd, const void *buf, unsigned len, int flags,
			 rp_cb cb, void *arg)
{
	struct rp_runtime *rt = sh->rt;
	struct io_uring_sqe *sqe;
	struct rp_op *op;
	unsigned zc_flags;
	int idx;

	if (!rt->send_zc)
		return rp_send(sh, fd, buf, len, flags, cb, arg);
	op = eng_op_start(sh, OP_SEND_ZC, cb, arg, false, &sqe);
	if (!op)
		return NULL;
#ifdef RP_FAULTS
	/* the kernel really sends fewer bytes: the caller must go on from res */
	if (len >= 2 && ENG_FAULT(sh, FAULT_SHORT))
		len = eng_faults_short_len(&sh->faults, len);
#endif
	zc_flags = rt->zc_report ? IORING_SEND_ZC_REPORT_USAGE : 0;
	/* from the registered pool: the kernel takes the pages it pinned at
	 * registration instead of looking each one up and pinning it per send */
	idx = sh->registered ? rp_pool_buf_index(sh->pool, buf, len) : -1;
	if (idx >= 0 && rt->zc_fixed) {
		io_uring_prep_send_zc_fixed(sqe, fd, buf, len, flags, zc_flags, (unsigned)idx);
		STAT_INC(sh, zc_fixed);
	} else {
		if (idx >= 0) /* registered, but this kernel's SEND_ZC refused it */
			STAT_INC(sh, fixed_fallback);
		io_uring_prep_send_zc(sqe, fd, buf, len, flags, zc_flags);
	}
	/* listed until its notification: rp_close cancels it only
	 * before its result (OPF_RESULT_SEEN) */
	eng_fdt_track(sh, op, fd);
	return op;
}

struct rp_op *rp_sendmsg_zc(struct rp_shard *sh, int fd, const struct msghdr *msg, int flags,
			    rp_cb cb, void *arg)
{
	struct rp_runtime *rt = sh->rt;
	struct io_uring_sqe *sqe;
	struct rp_op *op;

	if (!rt->sendmsg_zc)
		return rp_sendmsg(sh, fd, msg, flags, cb, arg);
	op = eng_op_start(sh, OP_SEND_ZC, cb, arg, false, &sqe);
	if (!op)
		return NULL;
	msg = eng_sendmsg_msg(sh, op, msg);
	io_uring_prep_sendmsg_zc(sqe, fd, msg, (unsigned)flags);
	if (rt->zc_report)
		sqe->ioprio |= IORING_SEND_ZC_REPORT_USAGE;
	eng_fdt_track(sh, op, fd);
	return op;
}


void eng_send_zc_complete(struct rp_shard *sh, struct rp_op *op, int res, uint32_t cflags)
{
	struct rp_cqe c = { .res = res };

	if (cflags & IORING_CQE_F_NOTIF) {
		/* the kernel notifies a failed or 0-byte send too (flagged
		 * copied, or not: EFAULT), when nothing went either way: only
		 * a send that sent bytes is counted */
		bool sent = op->flags & OPF_ZC_SENT;

		/* a test build reads it as a NIC path's real zero-copy */
		if (RP_TEST_HOOK(zc_uncopied))
			res = (int)((uint32_t)res & ~IORING_NOTIF_USAGE_ZC_COPIED);
		if (sent)
			STAT_INC(sh, zc_sends);
		c.flags = RP_CQE_NOTIF;
		if ((uint32_t)res & IORING_NOTIF_USAGE_ZC_COPIED) {
			c.flags |= RP_CQE_ZC_COPIED;
			if (sent)
				STAT_INC(sh, zc_copied);
		}
		c.res = 0;
		eng_op_finish(sh, op, &c);
		return;
	}
	if (cflags & IORING_CQE_F_MORE) {
		op->flags |= OPF_RESULT_SEEN; /* only the notification is due */
		if (res > 0)
			op->flags |= OPF_ZC_SENT;
		eng_count_err(sh, res);
		c.flags = RP_CQE_MORE;
		eng_deliver(sh, op, &c);
		return;
	}
	eng_op_finish(sh, op, &c);
}
