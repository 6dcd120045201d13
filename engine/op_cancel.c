/* SPDX-License-Identifier: MIT */
/*
 * Ending ops: rp_close (cancel every op on the fd, then close it),
 * rp_cancel (one op) and rp_cancel_fd (every op on an fd), each closing
 * the window in which the kernel has just ended a multishot op and the
 * engine would arm it again.
 */
#include <errno.h>
#include <unistd.h>

#include "op.h"

/* How long the loop's end waits for the closes linked behind ops still in
 * the kernel once it cancelled them all (eng_linked_close_settle): a
 * cancelled poll-armed head ends at once; io-wq work is signalled and may
 * take a while, or ignore it (then its close is left to the kernel). */
#define LINKED_CLOSE_SETTLE_NS (1000ull * 1000 * 1000)

/*
 * What each kind of cancel costs the kernel (io_uring/cancel.c, poll.c;
 * docs/engine.md): a cancel by user_data hashes to one bucket of the
 * ring's poll table (io_poll_find); a cancel by fd walks every bucket and
 * every armed request (io_poll_file_find), and with CANCEL_ALL walks them
 * again for each match. rp_close used to send one cancel by fd per close,
 * so N connections closing at once cost N walks of N armed receives.
 * Now the shard knows the live ops of each fd (sh->fdt, submit.h) and
 * cancels exactly those by user_data.
 */

/* Does @op still hold kernel work a cancel could end? Parked receives are
 * not in the kernel (ended here instead); a send_zc past its result waits
 * only for its notification, which no cancel ends. An op that rp_cancel
 * (or an earlier close) asked to end is cancelled again: it is still
 * allocated, and rp_close's close must be linked behind a cancel, or it
 * completes before that op's -ECANCELED (posted from task work). A
 * poll_writable that gave its answer and whose end is already asked for
 * (end_poll) has nothing left for a caller: it is not counted again. */
static bool needs_cancel(const struct rp_op *op)
{
	if (eng_op_outside(op) || (op->flags & OPF_DEAD_PARKED))
		return false;
	if (op->kind == OP_POLL_OUT)
		return (op->flags & (OPF_RESULT_SEEN | OPF_CANCEL_REQ)) !=
		       (OPF_RESULT_SEEN | OPF_CANCEL_REQ);
	return !(op->kind == OP_SEND_ZC && (op->flags & OPF_RESULT_SEEN));
}

/*
 * Room for the cancels of the live ops on @fd plus @extra SQEs, all taken
 * here: the number of cancels, -1 when cancel-by-fd must do it instead (an
 * op on @fd the table could not hold; more cancels than the SQ holds; an
 * rp_link_next pending, whose pair a flush here would split), or -2 when
 * the SQ stayed full (EBUSY).
 */
static int plan_cancels(struct rp_shard *sh, int fd, unsigned extra)
{
	unsigned k = 0, sq = sh->rt->cfg.ring_entries;

	/* the loop is over: eng_sqe gives none (cancel_ops would write into
	 * a NULL SQE): EBUSY, as engine.h says for then */
	if (sh->loop_over)
		return -2;

	if (sh->fd_untracked || sh->link_next)
		return -1;
	for (struct rp_op *op = eng_fdt_first(sh, fd); op; op = eng_fdt_next(op, fd))
		if (needs_cancel(op))
			k++;
	if (k + extra + SQ_SPARE > sq)
		return -1;
	if (io_uring_sq_space_left(&sh->ring) < k + extra + SQ_SPARE) {
		eng_flush(sh);
		if (io_uring_sq_space_left(&sh->ring) < k + extra + SQ_SPARE)
			return -2;
	}
	return (int)k;
}

/*
 * End the parked receives on @fd and cancel, by user_data @ud, every op on
 * @fd the kernel holds; each is marked OPF_CANCEL_REQ, so a multishot one
 * the kernel ended meanwhile (its CQE not reaped yet; the cancel finds
 * nothing) is never armed again, on this file or on a new one with the
 * same number. The cancels are not linked: each runs inline when the
 * kernel reaches its SQE, before any SQE prepared after this call, so it
 * cannot hit an op that reuses a target's memory later (a linked cancel
 * would run from task work, after the rest of that submit). The SQ has
 * room for them (plan_cancels). Returns the number sent.
 */
static int cancel_ops(struct rp_shard *sh, int fd, uint64_t ud, struct io_uring_sqe **last)
{
	struct io_uring_sqe *sqe = NULL;
	int n = 0;

	for (struct rp_op *op = eng_fdt_first(sh, fd); op; op = eng_fdt_next(op, fd)) {
		if (eng_op_outside(op)) {
			eng_op_end_outside(sh, op);
			continue;
		}
		if (!needs_cancel(op))
			continue;
		op->flags |= OPF_CANCEL_REQ;
		sqe = n ? eng_sqe_spare(sh) : eng_sqe(sh);
		io_uring_prep_cancel(sqe, op, 0);
		io_uring_sqe_set_data64(sqe, ud);
		n++;
	}
	STAT_ADD(sh, op_cancels, (uint64_t)n);
	if (last)
		*last = sqe;
	return n;
}

/*
 * A fallback's cancel by fd: every op listed under @fd is marked as a
 * cancel by user_data marks it (never re-armed or parked again). The
 * closing list (eng_closing_add) kept a multishot op the kernel had just
 * ended (its CQE not reaped: the cancel finds nothing) from being armed
 * again by number, but only when it could grow: without memory the op
 * was re-armed and the cancel lost (test_engine_faults,
 * cancel_fd_op_fallback_without_closing_memory: 5 data CQEs after it, the
 * receive ended only by the stop); after rp_close, on whatever file got
 * the number next. Ops the fd table could not list have the list only.
 */
static void mark_fd_ops(struct rp_shard *sh, int fd)
{
	for (struct rp_op *op = eng_fdt_first(sh, fd); op; op = eng_fdt_next(op, fd))
		op->flags |= OPF_CANCEL_REQ;
}

/*
 * The user_data of a fallback's cancel by fd sent without an op (rp_close,
 * rp_cancel_fd_op): @fd listed as closing when the list could grow, and
 * then UD_CLOSING_LISTED, so that its completion takes off the entry it
 * added and no other: the closing list holds one entry per pending
 * cancel, and an unlisted one's completion used to take a listed one's,
 * letting ops on @fd be armed again while that cancel was still pending
 * (test_engine_faults unlisted_cancel_fd_leaves_anothers_closing_entry).
 */
static uint64_t closing_ud(struct rp_shard *sh, int fd)
{
	uint64_t ud = UD_CLOSING_FD | (uint32_t)fd;

	return eng_closing_add(sh, fd) ? ud | UD_CLOSING_LISTED : ud;
}

/*
 * rp_close / rp_cancel_fd could not send (no op memory, the SQ stayed
 * full): the ops on @fd waiting outside the kernel (parked, or listed for
 * a re-arm) end anyway. That needs no SQE, and a caller that falls back to
 * close(2) would otherwise see them armed on whatever file takes @fd's
 * number next. Returns NULL with errno @err.
 */
static struct rp_op *refused(struct rp_shard *sh, int fd, int err)
{
	if (fd >= 0)
		eng_end_outside_fd(sh, fd, false);
	errno = err;
	return NULL;
}

/*
 * A pending request holds its own reference to the file, so a bare close
 * would leave a recv on @fd armed on the old socket for good; and the
 * engine re-arms multishot ops by fd number, so a parked (or just ended)
 * multishot recv would be armed on whatever file gets the number next.
 * Hence: end the parked ones here, cancel the rest by user_data
 * (cancel_ops), then close; with no op on @fd the close goes alone.
 *
 * The fallback (plan_cancels says when) is the cancel by fd this used to
 * send: hard-linked before the close (a hard link runs the close even
 * when there was nothing to cancel; the cancel must see the fd still
 * open), with re-arms on @fd refused until it has completed.
 *
 * close_send prepares all that for @op: 0, or -EBUSY (the SQ stayed full:
 * nothing sent, @op untouched).
 */
static int close_send(struct rp_shard *sh, struct rp_op *op, int fd)
{
	struct io_uring_sqe *sqe;
	int k = fd >= 0 ? plan_cancels(sh, fd, 1) : 0;

	if (k == -2) {
		if (!sh->loop_over) /* after the loop: EBUSY, no SQ at fault */
			STAT_INC(sh, sq_full_fail);
		return -EBUSY;
	}
	if (k >= 0) {
		struct io_uring_sqe *last = NULL;
		int n;

		/* fd < 0: plan_cancels made no room; nothing is sent */
		if (fd < 0 && !(sqe = eng_sqe(sh)))
			return -EBUSY;
		/* k of them, as plan_cancels counted and made room for */
		n = fd >= 0 ? cancel_ops(sh, fd, UD_OP_CANCEL, &last) : 0;
		if (fd >= 0 && !n)
			STAT_INC(sh, close_bare);
		/* The close after the last cancel (hard: it runs even when that
		 * one found nothing): the cancelled ops' -ECANCELED is posted
		 * from task work, and an unlinked close completed inline before
		 * it, so its callback ran before theirs. Linked, the close is
		 * queued behind that task work. It names no user_data, so its
		 * running later cannot hit a reused op. */
		if (last)
			last->flags |= IOSQE_IO_HARDLINK;
		sh->internal += (unsigned)n;
		if (fd >= 0)
			sqe = n ? eng_sqe_spare(sh) : eng_sqe(sh);
		io_uring_prep_close(eng_op_sqe(sh, op, sqe), fd);
		return 0;
	}
	sqe = eng_sqe(sh);
	if (!sqe)
		return -EBUSY;
	STAT_INC(sh, cancel_fd_fallback);
	eng_end_outside_fd(sh, fd, false);
	mark_fd_ops(sh, fd);
	io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
	sqe->flags |= IOSQE_IO_HARDLINK;
	sh->internal++;
	/* without memory: best effort, and the completion takes no entry */
	io_uring_sqe_set_data64(sqe, closing_ud(sh, fd));
	sqe = eng_sqe_spare(sh);	    /* same submit as the cancel */
	io_uring_prep_close(eng_op_sqe(sh, op, sqe), fd);
	return 0;
}

/* A linked close of @fd sent again unlinked whose CQE is due (sh->lsent):
 * the kernel has closed @fd, or will, and the number may be another
 * file's already. */
static bool lclose_sent(const struct rp_shard *sh, int fd)
{
	for (const struct rp_op *op = sh->lsent; op; op = op->next)
		if (op->fd == fd)
			return true;
	return false;
}

void eng_lclose_sent_end(struct rp_shard *sh, struct rp_op *op)
{
	for (struct rp_op *o = sh->lsent; o; o = o->next)
		if (o == op) {
			eng_olist_del(&sh->lsent, op);
			op->fd = -1;
			return;
		}
}

void eng_lclose_sent_clear(struct rp_shard *sh)
{
	while (sh->lsent) {
		struct rp_op *op = sh->lsent;

		eng_olist_del(&sh->lsent, op);
		op->fd = -1;
	}
}

struct rp_op *rp_close(struct rp_shard *sh, int fd, rp_cb cb, void *arg)
{
	struct rp_op *op;
	/* behind another op (rp_link_next): the chain's first SQE is ours */
	bool linked = sh->link_next;
	int ret;

	/* A linked close of @fd ended by its head was sent again, and its
	 * callback has not run: that close is the fd's. Another would close
	 * the number twice (whatever file took it in between): refused, and
	 * nothing of @fd's touched (it may be a new file's already). */
	if (fd >= 0 && __builtin_expect(sh->lsent != NULL, 0) && lclose_sent(sh, fd)) {
		if (linked)
			eng_link_drop(sh);
		errno = EALREADY;
		return NULL;
	}
	op = eng_op_alloc(sh, OP_PLAIN, cb, arg);
	/* not made: the pending rp_link_next is dropped and its head runs
	 * alone (engine.h), as eng_op_start does for every other op; else
	 * the next SQE taken (anyone's) would be chained behind the head */
	if (!op) {
		ret = errno;
		if (linked)
			eng_link_drop(sh);
		return refused(sh, fd, ret);
	}
	ret = close_send(sh, op, fd);
	if (ret) {
		eng_op_free(sh, op);
		if (linked)
			eng_link_drop(sh);
		return refused(sh, fd, -ret);
	}
	if (linked && fd >= 0) {
		/* a head that fails or is cancelled ends it -ECANCELED, the
		 * close never run: eng_linked_close_end, and at the loop's end
		 * eng_linked_close_settle, close the fd then */
		op->flags |= OPF_LINKED_CLOSE;
		op->fd = fd;
		eng_olist_push(&sh->lclose, op);
	} else if (fd >= 0) {
		/* this close ends @fd (its cancels end a linked close's head
		 * too): a linked close still due on @fd closes nothing more */
		eng_lclose_supersede(sh, fd, op);
	}
	return op;
}

void eng_lclose_supersede(struct rp_shard *sh, int fd, const struct rp_op *keep)
{
	struct rp_op *op = sh->lclose, *next;

	for (; op; op = next) {
		next = op->next;
		if (op == keep || op->fd != fd)
			continue;
		eng_olist_del(&sh->lclose, op);
		op->flags = (uint16_t)((op->flags & ~OPF_LINKED_CLOSE) | OPF_LCLOSE_GONE);
		op->fd = -1;
	}
}

bool eng_linked_close_end(struct rp_shard *sh, struct rp_op *op, int *res)
{
	int fd = op->fd;

	eng_olist_del(&sh->lclose, op);
	op->flags &= (uint16_t)~OPF_LINKED_CLOSE;
	op->fd = -1;
	/* 0: closed; another error (EBADF): the kernel ran it */
	if (*res != -ECANCELED)
		return false;
	/* The close never ran: the fd is still open, and what was on it
	 * too (the fallback's cancel by fd went down with it). Sent again,
	 * unlinked (this op's callback comes with that close's CQE); where
	 * it cannot be (the SQ stayed full, an rp_link_next pending in a
	 * callback), close(2) here, after ending the ops waiting outside
	 * the kernel (an armed one keeps its own reference to the file). */
	if (!sh->link_next && !close_send(sh, op, fd)) {
		eng_lclose_supersede(sh, fd, op);
		/* findable until its CQE: a later rp_close of @fd is refused */
		op->fd = fd;
		eng_olist_push(&sh->lsent, op);
		return true;
	}
	eng_lclose_supersede(sh, fd, op);
	eng_end_outside_fd(sh, fd, false);
	mark_fd_ops(sh, fd); /* none armed again on the number's next file */
	*res = close(fd) ? -errno : 0;
	return false;
}

unsigned eng_linked_close_settle(struct rp_shard *sh, unsigned *left)
{
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts = { .tv_nsec = 10 * 1000 * 1000 };
	uint64_t end = 0;
	unsigned closed = 0;
	bool cancelled = false;

	*left = 0;
	while (sh->lclose) {
		unsigned head, n = 0;

		/* The loop is over: no callback runs. Each CQE of a linked
		 * close says whether the kernel ran it (-ECANCELED: never);
		 * every other CQE is consumed unread, as it would have been
		 * left unreaped (those ops stay allocated, as stuck ops do). */
		io_uring_for_each_cqe(&sh->ring, head, cqe) {
			struct rp_op *op = (struct rp_op *)(uintptr_t)cqe->user_data;

			n++;
			if (cqe->user_data < UD_MAX_TOKEN ||
			    (cqe->user_data & (UD_CLOSING_FD | UD_WAKE_SENT | UD_SUB_CANCEL)) ||
			    !(op->flags & OPF_LINKED_CLOSE))
				continue;
			eng_olist_del(&sh->lclose, op);
			op->flags &= (uint16_t)~OPF_LINKED_CLOSE;
			if (cqe->res == -ECANCELED) {
				close(op->fd);
				closed++;
				/* another linked close of it: nothing more */
				eng_lclose_supersede(sh, op->fd, NULL);
			}
		}
		io_uring_cq_advance(&sh->ring, n);
		if (!sh->lclose)
			break;
		if (!cancelled) {
			/* their heads are still in the kernel: a cancel of
			 * everything ends them, and so the closes behind them,
			 * unrun (or run, for a head that had just succeeded) */
			struct io_uring_sqe *sqe = io_uring_get_sqe(&sh->ring);

			if (sqe) {
				io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
				io_uring_sqe_set_data64(sqe, UD_CANCEL_ALL);
				sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
			}
			cancelled = true;
			end = eng_now_ns() + LINKED_CLOSE_SETTLE_NS;
		} else if (eng_now_ns() >= end) {
			break;
		}
		(void)io_uring_submit_and_wait_timeout(&sh->ring, &cqe, 1, &ts, NULL);
	}
	for (struct rp_op *op = sh->lclose; op; op = op->next)
		(*left)++;
	return closed;
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
	bool outside = false;

	if (!target) {
		errno = EINVAL;
		return NULL;
	}
	/* Not in the kernel: end it ourselves (no SQE needed, so even when
	 * the cancel's own op cannot start: a caller that then closes the fd
	 * must not find it armed on a reused number); the cancel reports
	 * success. */
	if (eng_op_outside(target)) {
		target->flags |= OPF_CANCEL_REQ;
		eng_op_end_outside(sh, target);
		outside = true;
	}
	/* never as the linked half of an rp_link_next pair: a linked cancel
	 * runs once its head completed, when @target's memory may be another
	 * op's (as rp_cancel_op); refused, and the link dropped as for any op
	 * that cannot be made (one outside the kernel is ended all the same) */
	if (sh->link_next) {
		eng_link_drop(sh);
		errno = EBUSY;
		return NULL;
	}
	op = eng_op_start(sh, OP_PLAIN, cb, arg, true, &sqe);
	if (!op)
		return NULL;
	target->flags |= OPF_CANCEL_REQ;
	if (outside) {
		io_uring_prep_nop(sqe);
	} else if (target->flags & OPF_DEAD_PARKED) {
		io_uring_prep_nop(sqe); /* already ending: its -ECANCELED is due */
	} else {
		io_uring_prep_cancel(sqe, target, 0);
	}
	return op;
}

/*
 * rp_cancel without a callback and without an op: the cancel goes out
 * tagged UD_OP_CANCEL (as rp_close's cancels), counted in sh->internal
 * and consumed by the reap, so stopping a read needs no pool memory (a
 * relay that parks buffers for lack of memory must still be able to end
 * its multishot recv). Unlinked, so it runs inline when the kernel reaches
 * its SQE, before anything prepared after it: it cannot hit an op that
 * reuses @target's memory later.
 */
int rp_cancel_op(struct rp_shard *sh, struct rp_op *target)
{
	struct io_uring_sqe *sqe;

	if (!target)
		return -EINVAL;
	if (eng_op_outside(target)) { /* as rp_cancel: ended here, no SQE */
		target->flags |= OPF_CANCEL_REQ;
		eng_op_end_outside(sh, target);
		return 0;
	}
	if (target->flags & OPF_DEAD_PARKED) { /* its -ECANCELED is due */
		target->flags |= OPF_CANCEL_REQ;
		return 0;
	}
	/* never as the linked half of an rp_link_next pair: a linked cancel
	 * would run from task work, after its target's memory may be reused */
	if (sh->link_next)
		return -EBUSY;
	sqe = eng_sqe(sh); /* counted in sq_full_fail when NULL */
	if (!sqe)
		return -EBUSY;
	target->flags |= OPF_CANCEL_REQ;
	io_uring_prep_cancel(sqe, target, 0);
	io_uring_sqe_set_data64(sqe, UD_OP_CANCEL);
	sh->internal++;
	STAT_INC(sh, op_cancels);
	return 0;
}

/*
 * As rp_close without the close: one cancel by user_data per op on @fd,
 * tagged with this op's address (UD_SUB_CANCEL), and this op's callback
 * once all have completed, with the number that found their op (as a
 * cancel by fd with CANCEL_ALL counts); a NOP when there is none. The
 * fallback is a cancel by fd, with re-arms on @fd refused until it
 * completes (see rp_cancel for the race it closes).
 */
struct rp_op *rp_cancel_fd(struct rp_shard *sh, int fd, rp_cb cb, void *arg)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op;
	int k = fd >= 0 ? plan_cancels(sh, fd, 1) : -1;

	if (k == -2) {
		if (!sh->loop_over) /* after the loop: EBUSY, no SQ at fault */
			STAT_INC(sh, sq_full_fail);
		return refused(sh, fd, EBUSY);
	}
	if (k >= 0) {
		op = eng_op_alloc(sh, OP_CANCEL_FD, cb, arg);
		if (!op)
			return refused(sh, fd, errno);
		op->u.cf.nr = 0;
		op->u.cf.pending = (unsigned)cancel_ops(sh, fd, (uintptr_t)op | UD_SUB_CANCEL, NULL);
		if (!op->u.cf.pending)
			io_uring_prep_nop(eng_op_sqe(sh, op, eng_sqe(sh)));
		return op;
	}
	op = eng_op_start(sh, OP_CANCEL_FD, cb, arg, true, &sqe);
	if (!op)
		return refused(sh, fd, errno);
	if (fd >= 0)
		STAT_INC(sh, cancel_fd_fallback);
	op->fd = fd;
	eng_end_outside_fd(sh, fd, false);
	mark_fd_ops(sh, fd);
	if (fd >= 0 && !eng_closing_add(sh, fd))
		op->fd = -1; /* without memory: best effort, as rp_close */
	io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
	return op;
}

/*
 * rp_cancel_fd without a callback and without an op: each cancel by
 * user_data goes out tagged UD_OP_CANCEL (as rp_cancel_op's), and the
 * fallback's cancel by fd UD_CLOSING_FD (as rp_close's), so ending the
 * ops on an fd needs no pool memory: a relay that keeps its sockets
 * (RP_RELAY_KEEP_FDS) and ends while the pool is empty used to fall back
 * to shutdown(SHUT_RDWR) of the caller's socket. Never while an
 * rp_link_next is pending (the first SQE would be its linked half).
 */
int rp_cancel_fd_op(struct rp_shard *sh, int fd)
{
	struct io_uring_sqe *sqe;
	int k;

	if (fd < 0)
		return -EINVAL;
	if (sh->link_next) {
		refused(sh, fd, EBUSY);
		return -EBUSY;
	}
	k = plan_cancels(sh, fd, 0);
	if (k == -2) {
		if (!sh->loop_over) /* after the loop: EBUSY, no SQ at fault */
			STAT_INC(sh, sq_full_fail);
		refused(sh, fd, EBUSY);
		return -EBUSY;
	}
	if (k >= 0) {
		sh->internal += (unsigned)cancel_ops(sh, fd, UD_OP_CANCEL, NULL);
		return 0;
	}
	sqe = eng_sqe(sh); /* counted in sq_full_fail when NULL */
	if (!sqe) {
		refused(sh, fd, EBUSY);
		return -EBUSY;
	}
	STAT_INC(sh, cancel_fd_fallback);
	eng_end_outside_fd(sh, fd, false);
	mark_fd_ops(sh, fd);
	io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
	sh->internal++;
	/* without memory: best effort, as rp_close */
	io_uring_sqe_set_data64(sqe, closing_ud(sh, fd));
	return 0;
}

void eng_cancel_fd_sub(struct rp_shard *sh, struct rp_op *op, int res)
{
	struct rp_cqe c;

	if (res == 0 || res == -EALREADY)
		op->u.cf.nr++;
	if (--op->u.cf.pending)
		return;
	c = (struct rp_cqe){ .res = op->u.cf.nr };
	eng_op_finish(sh, op, &c);
}

/* The fallback's cancel by fd, or the NOP of a cancel that found no op. */
void eng_cancel_fd_complete(struct rp_shard *sh, struct rp_op *op, int res, uint32_t cflags)
{
	struct rp_cqe c = { .res = res };

	(void)cflags;
	if (op->fd >= 0)
		eng_closing_del(sh, op->fd);
	eng_op_finish(sh, op, &c);
}
