/* SPDX-License-Identifier: MIT */
/*
 * An op's life, shared by the op files (op_*.c): allocation from the
 * shard's pool, callbacks, counting errors, the end; and the table of op
 * kinds the loop dispatches completions through (opdef.c, after the
 * kernel's io_uring/opdef.c). Each op kind keeps its preparation and its
 * completion side by side in its own file. Not installed.
 */
#ifndef RP_ENGINE_OP_H
#define RP_ENGINE_OP_H

#include <errno.h>

#include "submit.h"

/*
 * One kind of op. complete() handles one CQE of @op (@res and @cflags as
 * the kernel posted them): it runs the callback, and ends the op (callback
 * without RP_CQE_MORE, then eng_op_free) or keeps it alive (more CQEs due,
 * or armed again).
 */
struct eng_op_kind {
	const char *name;
	void (*complete)(struct rp_shard *sh, struct rp_op *op, int res, uint32_t cflags);
	/*
	 * Kinds that re-arm themselves: send what the op's last (re-)arm
	 * could not (eng_rearm_later), from the loop (rearm_run has already
	 * ended, with -ECANCELED, an op that may not be re-armed: the shard
	 * stops, its fd is closing, or it was cancelled). Returns false when
	 * there is still no SQE (it stays on sh->rearm); true when sent or
	 * parked.
	 */
	bool (*rearm)(struct rp_shard *sh, struct rp_op *op);
};

extern const struct eng_op_kind eng_op_kinds[OP_KINDS];

/* A fresh op of @kind on no fd, counted live (eng_op_alloc, and the
 * fault-injection ops that bypass its nomem fault). */
static inline void eng_op_init(struct rp_shard *sh, struct rp_op *op, uint8_t kind, rp_cb cb,
			       void *arg)
{
	op->cb = cb;
	op->arg = arg;
	op->kind = kind;
	op->flags = 0;
	op->fd = -1;
	op->next = NULL;
	op->tfd[0] = op->tfd[1] = -1; /* in no list of sh->fdt */
#ifdef RP_FAULTS
	op->fault_mem = NULL;
#endif
	sh->live++;
	sh->live_kind[kind]++;
}

static inline struct rp_op *eng_op_alloc(struct rp_shard *sh, uint8_t kind, rp_cb cb, void *arg)
{
	struct rp_op *op;

#ifdef RP_FAULTS
	/* as if the pool were empty: the caller sees exactly that */
	if (ENG_FAULT(sh, FAULT_NOMEM)) {
		STAT_INC(sh, nomem);
		errno = ENOMEM;
		return NULL;
	}
#endif
	op = rp_pool_alloc(sh->pool, sizeof(*op));
	if (!op) {
		STAT_INC(sh, nomem);
		errno = ENOMEM;
		return NULL;
	}
	eng_op_init(sh, op, kind, cb, arg);
	return op;
}

/*
 * @op's (re-)arm found no SQE: queue it for the loop's next turn
 * (eng_op_kinds[kind].rearm) instead of ending it or leaving it armed in
 * name only. Idempotent.
 */
static inline void eng_rearm_later(struct rp_shard *sh, struct rp_op *op)
{
	if (op->flags & OPF_REARM)
		return;
	op->flags |= OPF_REARM;
	eng_olist_push(&sh->rearm, op);
}

static inline void eng_rearm_del(struct rp_shard *sh, struct rp_op *op)
{
	eng_olist_del(&sh->rearm, op);
	op->flags &= (uint16_t)~OPF_REARM;
}

/* Is @op waiting outside the kernel (parked for a buffer, or on sh->rearm
 * before its re-arm)? Such an op is ended by rp_close, rp_cancel and stop
 * without a cancel (eng_op_end_outside). An answered poll on sh->rearm is
 * still armed in the kernel: only its cancel is owed. */
static inline bool eng_op_outside(const struct rp_op *op)
{
	return (op->flags & OPF_PARKED) ||
	       ((op->flags & OPF_REARM) && !(op->flags & OPF_RESULT_SEEN));
}

/* The SQE for a re-arm from a completion or a buffer put: NULL when the SQ
 * stayed full or an rp_link_next is pending (a put from the callback that
 * made it: the re-arm would be its tail); the caller queues the op with
 * eng_rearm_later. */
static inline struct io_uring_sqe *eng_rearm_sqe(struct rp_shard *sh)
{
#ifdef RP_FAULTS
	/* as if the flush could not empty the SQ */
	if (ENG_FAULT(sh, FAULT_REARM)) {
		STAT_INC(sh, sq_full_fail);
		return NULL;
	}
#endif
	return eng_sqe_own(sh);
}

/* The op's memory goes back; it must never reach the kernel again. */
static inline void eng_op_free(struct rp_shard *sh, struct rp_op *op)
{
	if (op->flags & OPF_REARM) /* an answered poll whose cancel was owed */
		eng_rearm_del(sh, op);
	sh->live--;
	sh->live_kind[op->kind]--;
	eng_fdt_untrack(sh, op);
#ifdef RP_FAULTS
	rp_pool_free(op->fault_mem);
#endif
	rp_pool_free(op);
}

/*
 * The op meant to follow an rp_link_next could not be made: unlink its
 * predecessor (its SQE is still sh->last_sqe: no SQE was taken since), so
 * that it runs alone and the next SQE taken, an unrelated op's or an
 * internal one (a deferred timer, a cancel), is not chained behind it.
 */
static inline void eng_link_drop(struct rp_shard *sh)
{
	if (!sh->link_next)
		return;
	if (sh->last_sqe)
		sh->last_sqe->flags &= (uint8_t)~IOSQE_IO_LINK;
	sh->link_next = false;
}

/*
 * A new op and its SQE. @always: close and cancel are allowed while
 * stopping (shutdown needs them). NULL with errno ESHUTDOWN, ENOMEM, or
 * EBUSY (the SQ stayed full: the kernel refused every flush).
 */
static inline struct rp_op *eng_op_start(struct rp_shard *sh, uint8_t kind, rp_cb cb, void *arg,
					 bool always, struct io_uring_sqe **sqep)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op;

	if (sh->stopping && !always) {
		eng_link_drop(sh);
		errno = ESHUTDOWN;
		return NULL;
	}
	op = eng_op_alloc(sh, kind, cb, arg);
	if (!op) {
		eng_link_drop(sh);
		return NULL;
	}
	sqe = eng_sqe(sh); /* the spare slot after rp_link_next */
	if (!sqe) {
		eng_op_free(sh, op);
		errno = EBUSY;
		return NULL;
	}
	*sqep = eng_op_sqe(sh, op, sqe);
	return op;
}

/*
 * A new op that re-arms itself on @fd (multishot accept, poll_writable):
 * as eng_op_start, with @fd kept in op->fd for the re-arms and the op
 * listed under it for rp_close. NULL with errno EBADF for a negative @fd.
 */
static inline struct rp_op *eng_op_start_fd(struct rp_shard *sh, uint8_t kind, int fd, rp_cb cb,
					    void *arg, struct io_uring_sqe **sqep)
{
	struct rp_op *op;

	if (fd < 0) {
		errno = EBADF;
		return NULL;
	}
	op = eng_op_start(sh, kind, cb, arg, false, sqep);
	if (op) {
		op->fd = fd;
		eng_fdt_track(sh, op, fd);
	}
	return op;
}

static inline void eng_deliver(struct rp_shard *sh, struct rp_op *op, const struct rp_cqe *c)
{
	if (op->cb) {
		op->cb(sh, op->arg, c);
		eng_link_drop(sh); /* a link the callback left without its op */
	}
}

/* Count a negative result by kind (rp_shard_stats). */
void eng_count_err(struct rp_shard *sh, int res);

/* The op's last callback (flags without RP_CQE_MORE), then its end. */
static inline void eng_op_finish(struct rp_shard *sh, struct rp_op *op, const struct rp_cqe *c)
{
	eng_count_err(sh, c->res);
	eng_deliver(sh, op, c);
	eng_op_free(sh, op);
}

/* A multishot op the kernel ended on its own may be armed again unless the
 * shard stops, its fd is being closed or cancelled, or rp_cancel asked. */
static inline bool eng_may_rearm(const struct rp_shard *sh, const struct rp_op *op)
{
	return !sh->stopping && !(op->flags & OPF_CANCEL_REQ) && !eng_fd_closing(sh, op->fd);
}

/* Completions of the op kinds (opdef.c's table). */
void eng_plain_complete(struct rp_shard *sh, struct rp_op *op, int res, uint32_t cflags);
void eng_accept_complete(struct rp_shard *sh, struct rp_op *op, int res, uint32_t cflags);
void eng_recv_complete(struct rp_shard *sh, struct rp_op *op, int res, uint32_t cflags);
void eng_send_zc_complete(struct rp_shard *sh, struct rp_op *op, int res, uint32_t cflags);
void eng_cancel_fd_complete(struct rp_shard *sh, struct rp_op *op, int res, uint32_t cflags);
void eng_poll_out_complete(struct rp_shard *sh, struct rp_op *op, int res, uint32_t cflags);
void eng_timer_complete(struct rp_shard *sh, struct rp_op *op, int res, uint32_t cflags);
/* op_basic.c: send the reserved timers armed while the SQ stayed full
 * (sh->timers), and the updates of those moved then, from the loop; a
 * stopping shard ends the first with -ECANCELED and drops the updates.
 * One that still finds no SQE stays for the next turn. */
void eng_timer_defer_run(struct rp_shard *sh);
/*
 * op_cancel.c: the CQE (*@res) of an rp_close linked behind another op
 * (OPF_LINKED_CLOSE) came: off sh->lclose. -ECANCELED (its head failed or
 * was cancelled; the close never ran) sends the close again, unlinked:
 * true, the op lives on until that CQE; where it cannot be sent, close(2)
 * here and *@res its result. false: finish the op with *@res.
 */
bool eng_linked_close_end(struct rp_shard *sh, struct rp_op *op, int *res);
/*
 * op_cancel.c: at the loop's end, after eng_sq_abandon: the linked closes
 * still due (sh->lclose) are found out: a CQE already posted says whether
 * the kernel ran one; for the rest, whose heads are still in the kernel,
 * a cancel of everything is sent and their CQEs awaited (at most 1 s).
 * Each that never ran is closed with close(2). Returns how many; *@left:
 * those still undecided (their heads ignored the cancel), left to the
 * kernel.
 */
unsigned eng_linked_close_settle(struct rp_shard *sh, unsigned *left);
/* The CQE of one of the cancels by user_data an rp_cancel_fd sent. */
void eng_cancel_fd_sub(struct rp_shard *sh, struct rp_op *op, int res);
#ifdef RP_FAULTS
void eng_fault_cancel_complete(struct rp_shard *sh, struct rp_op *op, int res, uint32_t cflags);
/* faults.c: after a multishot recv delivered data, maybe start an injected
 * reset; and the final CQE of a recv ending that way. */
void eng_fault_recv_reset(struct rp_shard *sh, struct rp_op *op);
void eng_fault_recv_final(struct rp_shard *sh, struct rp_op *op, const struct rp_cqe *c);
/* faults.c: maybe shorten a sendmsg: NULL, or a pool copy of @msg sending
 * fewer bytes, owned by @op from then on (op->fault_mem). */
const struct msghdr *eng_fault_sendmsg(struct rp_shard *sh, struct rp_op *op,
				       const struct msghdr *msg);
#endif

/* The msghdr rp_sendmsg and rp_sendmsg_zc give the kernel: @msg, or in a
 * fault build maybe a shortened pool copy of it (eng_fault_sendmsg). */
static inline const struct msghdr *eng_sendmsg_msg(struct rp_shard *sh, struct rp_op *op,
						   const struct msghdr *msg)
{
#ifdef RP_FAULTS
	const struct msghdr *m = eng_fault_sendmsg(sh, op, msg);

	if (m)
		return m;
#else
	(void)sh;
	(void)op;
#endif
	return msg;
}
void eng_eventfd_complete(struct rp_shard *sh, struct rp_op *op, int res, uint32_t cflags);

/* The re-arms each kind sends from the loop (eng_op_kind.rearm). */
bool eng_accept_rearm(struct rp_shard *sh, struct rp_op *op);
bool eng_recv_rearm(struct rp_shard *sh, struct rp_op *op);
bool eng_poll_out_rearm(struct rp_shard *sh, struct rp_op *op);

/* op_recv.c: multishot receives waiting for a buffer, outside the kernel. */
void eng_recv_park(struct rp_shard *sh, struct rp_op *op);
/* End an op waiting outside the kernel (eng_op_outside: parked, or on
 * sh->rearm): its final -ECANCELED callback runs from the loop
 * (eng_recv_deliver_dead), never inside the caller. */
void eng_op_end_outside(struct rp_shard *sh, struct rp_op *op);
/* End every op waiting outside the kernel on @fd (all: every one). */
void eng_end_outside_fd(struct rp_shard *sh, int fd, bool all);
void eng_recv_deliver_dead(struct rp_shard *sh);
/* The provided-buffer ring of a shard (bgid 0): set up on its thread. */
int eng_bufring_setup(struct rp_shard *sh);

/* wake.c: the shard's armed eventfd read and MSG_RING wakes. */
void eng_eventfd_arm(struct rp_shard *sh);
/* Wake shard @t (asleep or about to be); @sh is the sender's shard or NULL. */
void eng_wake(struct rp_shard *sh, struct rp_shard *t);
/* The sender's own CQE of a MSG_RING wake (UD_WAKE_SENT). */
void eng_wake_sent(struct rp_shard *sh, uint64_t ud, int res);

#endif
