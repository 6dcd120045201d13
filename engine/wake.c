/* SPDX-License-Identifier: MIT */
/*
 * Waking a sleeping shard: IORING_OP_MSG_RING from another shard's ring
 * where the kernel has it, else (and when a MSG_RING fails) a write to the
 * target's eventfd, whose read every shard keeps armed on its own ring.
 */
#include <errno.h>
#include <unistd.h>

#include "op.h"

/* Without an SQE the arm is retried every loop iteration (efd_unarmed). */
void eng_eventfd_arm(struct rp_shard *sh)
{
	struct io_uring_sqe *sqe = eng_sqe_own(sh);

	sh->efd_unarmed = !sqe;
	if (!sqe)
		return;
	io_uring_prep_read(sqe, sh->efd, &sh->efd_val, sizeof(sh->efd_val), 0);
	io_uring_sqe_set_data(sqe, &sh->efd_op);
	sh->internal++;
}

void eng_eventfd_complete(struct rp_shard *sh, struct rp_op *op, int res, uint32_t cflags)
{
	(void)op;
	(void)cflags;
	sh->internal--;
	if (res > 0)
		STAT_INC(sh, wakeups);
	if (!sh->stopping && res != -ECANCELED)
		eng_eventfd_arm(sh);
}

static void efd_signal(struct rp_shard *t)
{
	static const uint64_t one = 1;
	ssize_t w = write(t->efd, &one, sizeof(one));

	(void)w; /* EAGAIN: the counter is already non-zero, it will wake */
}

void eng_wake(struct rp_shard *sh, struct rp_shard *t)
{
	struct io_uring_sqe *sqe;

	/* no SQE (or an rp_link_next pending, whose tail the MSG_RING would
	 * become, sent only once the head completes): the eventfd */
	if (sh && sh->rt->msg_ring && (sqe = eng_sqe_own(sh))) {
		/* a failed MSG_RING comes back on our CQ: eng_wake_sent then
		 * falls back to the eventfd */
		int fd = RP_TEST_HOOK(msg_ring_fail) ? sh->efd : t->ring.ring_fd;

		io_uring_prep_msg_ring(sqe, fd, 0, UD_WAKE, 0);
		io_uring_sqe_set_data64(sqe, UD_WAKE_SENT | t->id);
		sh->internal++;
		return;
	}
	efd_signal(t);
}

void eng_wake_sent(struct rp_shard *sh, uint64_t ud, int res)
{
	struct rp_runtime *rt = sh->rt;
	unsigned target = (unsigned)(ud & 0xffffffffu);

	sh->internal--;
	if (res >= 0 || target >= rt->n)
		return;
	/* The MSG_RING did not land (the target's CQ full, a kernel refusing
	 * it): the target may be asleep with mail waiting, so wake it through
	 * its eventfd instead. */
	STAT_INC(sh, wake_fallback);
	efd_signal(rt->shards[target]);
}
