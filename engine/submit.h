/* SPDX-License-Identifier: MIT */
/*
 * The engine's lowest layer: SQEs for ops, flushing a full SQ (moving a full
 * CQ aside meanwhile), counters, and the fds being closed or cancelled.
 * It knows nothing of op kinds or of the loop; the op files (op_*.c) and
 * the loop (shard.c) build on it. Not installed.
 */
#ifndef RP_ENGINE_SUBMIT_H
#define RP_ENGINE_SUBMIT_H

#include "engine_impl.h"

/* Counters are written only by their shard and read by anyone: a relaxed
 * atomic store of the owner's own value is a plain mov, and makes the
 * readers' relaxed loads race-free. */
#define STAT_ADD(sh, field, n) \
	__atomic_store_n(&(sh)->st.field, (sh)->st.field + (n), __ATOMIC_RELAXED)
#define STAT_INC(sh, field) STAT_ADD(sh, field, 1)

#ifdef RP_ENGINE_TEST_HOOKS
/* Faults a test build of the engine can switch on (tests/test_engine_faults.c). */
struct rp_engine_test_hooks {
	atomic_int flush_fail;	  /* eng_flush gives up at once */
	atomic_int msg_ring_fail; /* MSG_RING wakes target an fd that is no ring */
	atomic_int flush_stash;	  /* a flush moves the CQ aside, as on CQ overflow */
};
extern struct rp_engine_test_hooks rp_engine_test_hooks;
#define RP_TEST_HOOK(name) atomic_load_explicit(&rp_engine_test_hooks.name, memory_order_relaxed)
#else
#define RP_TEST_HOOK(name) 0
#endif

#ifdef RP_FAULTS
/* Roll the shard's dice for fault @k (faults.h); counts an injection. */
#define ENG_FAULT(sh, k) eng_faults_roll(&(sh)->faults, (k))
#endif

/* SQ slots eng_sqe keeps free after the one it hands out: an op with its
 * linked timeout, or rp_close's hard-linked cancel + close, always go to
 * the kernel in the same submit. */
#define SQ_SPARE 2

/* Submit what is prepared so the SQ has room again (SQ full). Returns false
 * when it could not make room (the kernel keeps refusing the submit). CQEs
 * it had to move out of a full CQ wait in sh->stash for the loop. */
bool eng_flush(struct rp_shard *sh);

/* An SQE for the next op, leaving SQ_SPARE more free; NULL (counted in
 * sq_full_fail) when the SQ is full and a flush could not empty it. */
static inline struct io_uring_sqe *eng_sqe(struct rp_shard *sh)
{
	/* After rp_link_next the next SQE, an op's or an internal one, is the
	 * linked one: it comes from the spare slots the linked op's SQE left,
	 * never after a flush, which would split the pair. */
	bool linked = sh->link_next;

	if (!linked && io_uring_sq_space_left(&sh->ring) < SQ_SPARE + 1 && !eng_flush(sh))
		return NULL;
	sh->link_next = false;
	sh->last_spare = linked;
	/* Any SQE taken since an op's own (an internal eventfd re-arm or
	 * MSG_RING wake included) means that op is no longer the last one:
	 * rp_link_timeout would link the op to this SQE instead. eng_op_sqe
	 * sets them again for an op. */
	sh->last_sqe = NULL;
	sh->last_op = NULL;
	STAT_INC(sh, ops_submitted);
	return io_uring_get_sqe(&sh->ring);
}

/* One of the SQ_SPARE slots, right after an SQE from eng_sqe. */
static inline struct io_uring_sqe *eng_sqe_spare(struct rp_shard *sh)
{
	STAT_INC(sh, ops_submitted);
	return io_uring_get_sqe(&sh->ring);
}

/* @sqe carries @op; it is the last op prepared (rp_link_timeout binds it). */
static inline struct io_uring_sqe *eng_op_sqe(struct rp_shard *sh, struct rp_op *op,
					      struct io_uring_sqe *sqe)
{
	io_uring_sqe_set_data(sqe, op);
	sh->last_sqe = sqe;
	sh->last_op = op;
	return sqe;
}

/* fds rp_close'd or rp_cancel_fd'd whose cancel has not completed: a
 * multishot op on one of them that the kernel ended meanwhile is not
 * re-armed. add returns false without memory; del removes one entry. */
bool eng_closing_add(struct rp_shard *sh, int fd);
void eng_closing_del(struct rp_shard *sh, int fd);
bool eng_fd_closing(const struct rp_shard *sh, int fd);

#endif
