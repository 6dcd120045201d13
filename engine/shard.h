/* SPDX-License-Identifier: MIT */
/* The shard loop's helpers used by ops.c; not installed. */
#ifndef RP_ENGINE_SHARD_H
#define RP_ENGINE_SHARD_H

#include "engine_impl.h"

/* Counters are written only by their shard and read by anyone: a relaxed
 * atomic store of the owner's own value is a plain mov, and makes the
 * readers' relaxed loads race-free. */
#define STAT_ADD(sh, field, n) \
	__atomic_store_n(&(sh)->st.field, (sh)->st.field + (n), __ATOMIC_RELAXED)
#define STAT_INC(sh, field) STAT_ADD(sh, field, 1)

/* Submit what is prepared so the SQ has room again (SQ full). */
void rp_shard_flush(struct rp_shard *sh);

/* An SQE for the next op; always leaves one more free slot, so an op and
 * its linked timeout always go to the kernel in the same submit. */
static inline struct io_uring_sqe *rp_shard_sqe(struct rp_shard *sh)
{
	if (io_uring_sq_space_left(&sh->ring) < 2)
		rp_shard_flush(sh);
	/* Any SQE taken since an op's own (an internal eventfd re-arm or
	 * MSG_RING wake included) means that op is no longer the last one:
	 * rp_link_timeout would link the op to this SQE instead. op_sqe sets
	 * them again for an op. */
	sh->last_sqe = NULL;
	sh->last_op = NULL;
	STAT_INC(sh, ops_submitted);
	return io_uring_get_sqe(&sh->ring);
}

/* rp_close bookkeeping: see rp_shard.closing. add returns false without memory. */
bool rp_shard_closing_add(struct rp_shard *sh, int fd);

void rp_shard_arm_accept(struct rp_shard *sh, struct rp_op *op);
void rp_shard_arm_recv(struct rp_shard *sh, struct rp_op *op);
/* Multishot recv without buffers: wait, outside the kernel, for rp_buf_put. */
void rp_shard_park(struct rp_shard *sh, struct rp_op *op);
/* End a parked op: a NOP carrying it delivers its final -ECANCELED. */
void rp_shard_unpark_dead(struct rp_shard *sh, struct rp_op *op);

#endif
