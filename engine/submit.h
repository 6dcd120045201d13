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
	atomic_int fdt_nomem;	  /* the fd table cannot grow */
	atomic_int closing_nomem; /* the list of closing fds cannot grow */
	atomic_int zc_fixed_refused; /* the probe asks with an unregistered index: refused */
	/* the opcode probe says no SEND_ZC (bit 0: then no report nor
	 * registered form either) or no SENDMSG_ZC (bit 1), as on a kernel
	 * before 6.0 or 6.1: rp_send_zc, rp_sendmsg_zc send plain */
	atomic_int zc_unsupported;
	/* send_zc notifications read as uncopied (IORING_NOTIF_USAGE_ZC_COPIED
	 * cleared), as on a NIC path; loopback and veth always copy */
	atomic_int zc_uncopied;
	/* seen, not switched on: the results of the reserved timers' update
	 * SQEs (rp_timer_rearm), their last one and their count (shard.c) */
	atomic_int timer_update_res, timer_updates;
};
extern struct rp_engine_test_hooks rp_engine_test_hooks;
#define RP_TEST_HOOK(name) atomic_load_explicit(&rp_engine_test_hooks.name, memory_order_relaxed)
#else
#define RP_TEST_HOOK(name) 0
#endif

/* ---- lists of ops (sh->parked, sh->rearm, sh->timers, sh->lclose), doubly
 * linked through op->next and op->u.park_prev: O(1) removal ---- */

static inline void eng_olist_push(struct rp_op **head, struct rp_op *op)
{
	op->next = *head;
	op->u.park_prev = NULL;
	if (*head)
		(*head)->u.park_prev = op;
	*head = op;
}

static inline void eng_olist_del(struct rp_op **head, struct rp_op *op)
{
	if (op->u.park_prev)
		op->u.park_prev->next = op->next;
	else
		*head = op->next;
	if (op->next)
		op->next->u.park_prev = op->u.park_prev;
	op->next = NULL;
}

/* ---- the live ops of each fd (sh->fdt) ---- */

/* Make sh->fdt hold @fd (doubling, from 1024): false without memory. */
bool eng_fdt_grow(struct rp_shard *sh, int fd);

/* The slot of @op's links that lists it under @fd (it is listed under it). */
static inline unsigned eng_fdt_slot(const struct rp_op *op, int fd)
{
	return op->tfd[0] == fd ? 0 : 1;
}

/*
 * List @op under @fd, the fd its SQE names (a second call: splice's other
 * fd). Called when the op is prepared, undone by eng_fdt_untrack when it
 * is freed. Without memory for the table the op is counted in
 * sh->fd_untracked instead, and rp_close falls back to cancel-by-fd.
 */
static inline void eng_fdt_track(struct rp_shard *sh, struct rp_op *op, int fd)
{
	unsigned s = op->tfd[0] < 0 ? 0 : 1;
	struct rp_op *head;

	if (fd < 0 || op->tfd[0] == fd)
		return;
	if ((unsigned)fd >= sh->fdt_cap && !eng_fdt_grow(sh, fd)) {
		if (!(op->flags & OPF_UNTRACKED)) {
			op->flags |= OPF_UNTRACKED;
			sh->fd_untracked++;
		}
		return;
	}
	head = sh->fdt[fd];
	op->tfd[s] = fd;
	op->tprev[s] = NULL;
	op->tnext[s] = head;
	if (head)
		head->tprev[eng_fdt_slot(head, fd)] = op;
	sh->fdt[fd] = op;
}

static inline void eng_fdt_untrack(struct rp_shard *sh, struct rp_op *op)
{
	for (unsigned s = 0; s < 2; s++) {
		int fd = op->tfd[s];
		struct rp_op *n = op->tnext[s], *p = op->tprev[s];

		if (fd < 0)
			continue;
		if (p)
			p->tnext[eng_fdt_slot(p, fd)] = n;
		else
			sh->fdt[fd] = n;
		if (n)
			n->tprev[eng_fdt_slot(n, fd)] = p;
		op->tfd[s] = -1;
	}
	if (op->flags & OPF_UNTRACKED) {
		op->flags &= (uint16_t)~OPF_UNTRACKED;
		sh->fd_untracked--;
	}
}

/* The first op listed under @fd, or NULL; the next one after @op. */
static inline struct rp_op *eng_fdt_first(const struct rp_shard *sh, int fd)
{
	return fd >= 0 && (unsigned)fd < sh->fdt_cap ? sh->fdt[fd] : NULL;
}

static inline struct rp_op *eng_fdt_next(const struct rp_op *op, int fd)
{
	return op->tnext[eng_fdt_slot(op, fd)];
}

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

/* Bring sh->sq_tail64 up to liburing's 32-bit sqe_tail: exact while fewer
 * than 2^32 SQEs are taken between two calls, and every eng_sqe makes one
 * (the spare slots and the loop's last settle take a handful without). */
static inline uint64_t eng_sq_tail_sync(struct rp_shard *sh)
{
	sh->sq_tail64 += (uint32_t)(sh->ring.sq.sqe_tail - (uint32_t)sh->sq_tail64);
	return sh->sq_tail64;
}

/* An SQE for the next op, leaving SQ_SPARE more free; NULL (counted in
 * sq_full_fail) when the SQ is full and a flush could not empty it. */
static inline struct io_uring_sqe *eng_sqe(struct rp_shard *sh)
{
	/* After rp_link_next the next SQE, an op's or an internal one, is the
	 * linked one: it comes from the spare slots the linked op's SQE left,
	 * never after a flush, which would split the pair. */
	bool linked = sh->link_next;

	/* No loop runs the ring any more: an SQE taken now would never be
	 * submitted (or be sent by a flush, its CQE never reaped); the caller
	 * gets NULL, as with an SQ that stayed full (eng_sq_abandon) */
	if (__builtin_expect(sh->loop_over, 0))
		return NULL;
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
	eng_sq_tail_sync(sh);
	return io_uring_get_sqe(&sh->ring);
}

/*
 * An SQE for the engine's own use (a wake by MSG_RING, the eventfd's read,
 * the stop's cancel, a re-arm, a fault's reset): never the linked half of
 * a pending rp_link_next, which only the op the user starts next may take.
 * NULL then, as for an SQ that stayed full (not counted), and the caller
 * falls back as it does for that: the eventfd, the loop's re-arm list, a
 * retry at the loop's next turn. (A wake taking the link slept the target
 * shard with mail waiting until the link's head completed, and a parked
 * receive re-armed by a buffer put ran behind another connection's head.)
 */
static inline struct io_uring_sqe *eng_sqe_own(struct rp_shard *sh)
{
	if (__builtin_expect(sh->link_next, 0))
		return NULL;
	return eng_sqe(sh);
}

/*
 * The shard's loop is over (it ended, or never ran: an init that failed):
 * what is still in the SQ is never sent. Each close among it (rp_close's:
 * the fd was handed to the engine) is done here with close(2), and every
 * SQE the kernel has not taken is made a NOP with user_data 0 that posts
 * no CQE, so a later submit cannot send an op whose memory may be freed
 * by then (rp_timer_free after the loop). With SQPOLL, what was published
 * is the SQ thread's: it is given up to 1 s to take it. Sets loop_over,
 * after which eng_sqe hands out no SQE and eng_flush submits nothing.
 * Returns the number of closes done here.
 */
unsigned eng_sq_abandon(struct rp_shard *sh);
/*
 * op_cancel.c: another close of @fd was sent or done (an unlinked rp_close,
 * a close(2) at the loop's end): the closes linked behind ops on @fd still
 * due (sh->lclose) are no longer the fd's owners. Each is taken off the
 * list and marked OPF_LCLOSE_GONE: its -ECANCELED reaches its callback
 * as is, and its SQE, if never sent, closes nothing (sqe_neutralise).
 * Otherwise it would close whatever file got @fd's number after the other
 * close. @keep: an op left as it is (NULL: none).
 */
void eng_lclose_supersede(struct rp_shard *sh, int fd, const struct rp_op *keep);

/* The CQE of a plain op while sh->lsent is not empty: a linked close
 * sent again unlinked is taken off sh->lsent, so its fd number is free for rp_close again. */
void eng_lclose_sent_end(struct rp_shard *sh, struct rp_op *op);

/* The loop is over (eng_sq_abandon): every close on sh->lsent was closed
 * with close(2) there (its SQE still ours) or is the kernel's, and none is
 * reaped with a callback: the list is emptied, so an rp_close of such an
 * fd (from fini) gets EBUSY as for any other, and nothing points at ops
 * that may never complete. */
void eng_lclose_sent_clear(struct rp_shard *sh);

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
