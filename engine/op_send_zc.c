/* SPDX-License-Identifier: MIT */
/*
 * Zero-copy sends (SEND_ZC, SENDMSG_ZC): a result CQE (with
 * IORING_CQE_F_MORE when a notification follows), then the notification
 * once the kernel let go of the buffers, reporting whether it copied the
 * payload after all (loopback, veth).
 */
#include <errno.h>

#include "op.h"

/* op->zst of a send_zc */
enum {
	OPZ_FIXED = 1u << 0,	   /* sent from a registered buffer (op->u.zc): a
				      refusal is sent again unregistered, once */
	OPZ_SKIP_NOTIF = 1u << 1, /* the refused send's notification is due:
				      not the caller's */
};

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
	if (idx >= 0 && rt->zc_fixed && !sh->zc_fixed_off) {
#ifdef RP_ENGINE_TEST_HOOKS
		/* an index never registered: the kernel refuses it at run
		 * time (-EFAULT), after the probe said yes */
		if (RP_TEST_HOOK(zc_fixed_bad_index))
			idx += 64;
#endif
		io_uring_prep_send_zc_fixed(sqe, fd, buf, len, flags, zc_flags, (unsigned)idx);
		STAT_INC(sh, zc_fixed);
		op->zst = OPZ_FIXED;
		op->u.zc.buf = buf;
		op->u.zc.len = len;
		op->u.zc.flags = flags;
		op->u.zc.fd = fd;
	} else {
		/* registered, but this kernel's SEND_ZC refused it (at the
		 * probe, or at run time on this shard: zc_fixed_off) */
		if (idx >= 0)
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


/*
 * The result of a send from a registered buffer that the kernel refused at
 * run time (-EFAULT, -EINVAL: an index it does not take, after the
 * start-up probe said yes): the shard sends unregistered from now on, and
 * this send goes again, once, a plain SEND_ZC of the same bytes from the
 * same memory, under the same op (counted in fixed_fallback). Its first
 * CQE is the caller's answer; the refused send's notification (when
 * @cflags has IORING_CQE_F_MORE) is skipped: the first notification that
 * comes (should the resend's come first, the op ends with the other, once
 * the kernel let go of both). Not sent again (false: the refusal is the
 * caller's) when the op is being ended (rp_close or rp_cancel of it, the
 * shard stopping: the fd's number may be another file's soon) or no SQE
 * can be had. An op linked behind the refused send was already failed by
 * the kernel (-ECANCELED); the resend goes alone. A -EINVAL for another
 * reason (send flags) is sent again all the same, and fails again.
 */
static bool zc_refused_resend(struct rp_shard *sh, struct rp_op *op, uint32_t cflags)
{
	struct io_uring_sqe *sqe;
	unsigned zc_flags = sh->rt->zc_report ? IORING_SEND_ZC_REPORT_USAGE : 0;

	op->zst &= (uint8_t)~OPZ_FIXED;
	sh->zc_fixed_off = true;
	/* as eng_may_rearm, on the send's own fd (op->fd is a re-arming
	 * op's): rp_close of it marked this op OPF_CANCEL_REQ (listed under
	 * the fd until its notification) */
	if (sh->stopping || (op->flags & OPF_CANCEL_REQ) || eng_fd_closing(sh, op->u.zc.fd) ||
	    !(sqe = eng_sqe_own(sh)))
		return false;
	io_uring_prep_send_zc(sqe, op->u.zc.fd, op->u.zc.buf, op->u.zc.len, op->u.zc.flags,
			      zc_flags);
	/* not eng_op_sqe: no rp_link_timeout of the caller's attaches to it */
	io_uring_sqe_set_data(sqe, op);
	STAT_INC(sh, fixed_fallback);
	if (cflags & IORING_CQE_F_MORE)
		op->zst |= OPZ_SKIP_NOTIF;
	return true;
}

void eng_send_zc_complete(struct rp_shard *sh, struct rp_op *op, int res, uint32_t cflags)
{
	struct rp_cqe c = { .res = res };

	if (__builtin_expect(op->zst, 0)) {
		if ((cflags & IORING_CQE_F_NOTIF) && (op->zst & OPZ_SKIP_NOTIF)) {
			/* the refused send's: nothing of the caller's */
			op->zst &= (uint8_t)~OPZ_SKIP_NOTIF;
			return;
		}
		if (!(cflags & IORING_CQE_F_NOTIF) && (op->zst & OPZ_FIXED)) {
			op->zst &= (uint8_t)~OPZ_FIXED; /* one result per send */
			if ((res == -EFAULT || res == -EINVAL) &&
			    zc_refused_resend(sh, op, cflags))
				return;
		}
	}
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
