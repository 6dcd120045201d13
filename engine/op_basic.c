/* SPDX-License-Identifier: MIT */
/*
 * The single-shot ops: one SQE, one CQE, one callback (nop, read/write and
 * their vectored and fixed-buffer forms, connect, recv, send, sendmsg,
 * splice, timeout), the linked timeout that bounds one of them, and their
 * common completion. Nothing here enters the kernel except an early flush
 * when the SQ is full.
 */
#include <errno.h>
#include <string.h>

#include "op.h"

#define OP_START(kind, cb, arg) eng_op_start(sh, kind, cb, arg, false, &sqe)
#define OP_START_FD(fd, cb, arg) start_on_fd(sh, fd, cb, arg, &sqe)

/* A single-shot op whose SQE names @fd, listed under it for rp_close. */
static struct rp_op *start_on_fd(struct rp_shard *sh, int fd, rp_cb cb, void *arg,
				 struct io_uring_sqe **sqep)
{
	struct rp_op *op = eng_op_start(sh, OP_PLAIN, cb, arg, false, sqep);

	if (op)
		eng_fdt_track(sh, op, fd);
	return op;
}

void eng_count_err(struct rp_shard *sh, int res)
{
	if (res >= 0)
		return;
	switch (res) {
	case -ECANCELED:
		STAT_INC(sh, err_cancelled);
		break;
	case -ECONNRESET:
	case -EPIPE:
		STAT_INC(sh, err_reset);
		break;
	case -EMFILE:
	case -ENFILE:
		STAT_INC(sh, err_emfile);
		break;
	case -ETIME:
		STAT_INC(sh, err_timeout);
		break;
	default:
		STAT_INC(sh, err_other);
		break;
	}
}

void eng_plain_complete(struct rp_shard *sh, struct rp_op *op, int res, uint32_t cflags)
{
	struct rp_cqe c = { .res = res };

	(void)cflags;
	if (__builtin_expect(op->flags & OPF_LINKED_CLOSE, 0) &&
	    eng_linked_close_end(sh, op, &c.res))
		return; /* sent again: its callback comes with that close */
	if (__builtin_expect(sh->lsent != NULL, 0))
		eng_lclose_sent_end(sh, op);
#ifdef RP_FAULTS
	/* an rp_recv chosen at preparation: the bytes the kernel took are
	 * lost with the connection, as with a real reset */
	if ((op->flags & OPF_FAULT_RESET) && res >= 0) {
		eng_faults_note(&sh->faults, FAULT_RESET);
		c.res = -ECONNRESET;
	}
#endif
	eng_op_finish(sh, op, &c);
}

struct rp_op *rp_nop(struct rp_shard *sh, rp_cb cb, void *arg)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op = OP_START(OP_PLAIN, cb, arg);

	if (op)
		io_uring_prep_nop(sqe);
	return op;
}

struct rp_op *rp_read(struct rp_shard *sh, int fd, void *buf, unsigned len, uint64_t off, rp_cb cb,
		      void *arg)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op = OP_START_FD(fd, cb, arg);

	if (op)
		io_uring_prep_read(sqe, fd, buf, len, off);
	return op;
}

struct rp_op *rp_write(struct rp_shard *sh, int fd, const void *buf, unsigned len, uint64_t off,
		       rp_cb cb, void *arg)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op = OP_START_FD(fd, cb, arg);

	if (op)
		io_uring_prep_write(sqe, fd, buf, len, off);
	return op;
}

struct rp_op *rp_readv(struct rp_shard *sh, int fd, const struct iovec *iov, unsigned iovcnt,
		       uint64_t off, rp_cb cb, void *arg)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op = OP_START_FD(fd, cb, arg);

	if (op)
		io_uring_prep_readv(sqe, fd, iov, iovcnt, off);
	return op;
}

struct rp_op *rp_writev(struct rp_shard *sh, int fd, const struct iovec *iov, unsigned iovcnt,
			uint64_t off, rp_cb cb, void *arg)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op = OP_START_FD(fd, cb, arg);

	if (op)
		io_uring_prep_writev(sqe, fd, iov, iovcnt, off);
	return op;
}

static struct rp_op *rw_fixed(struct rp_shard *sh, int fd, void *buf, unsigned len, uint64_t off,
			      rp_cb cb, void *arg, bool write)
{
	int idx = rp_pool_buf_index(sh->pool, buf, len);
	struct io_uring_sqe *sqe;
	struct rp_op *op;

	if (idx < 0) {
		errno = EINVAL;
		return NULL;
	}
	op = OP_START_FD(fd, cb, arg);
	if (!op)
		return NULL;
	if (sh->registered) {
		if (write)
			io_uring_prep_write_fixed(sqe, fd, buf, len, off, idx);
		else
			io_uring_prep_read_fixed(sqe, fd, buf, len, off, idx);
	} else {
		STAT_INC(sh, fixed_fallback);
		if (write)
			io_uring_prep_write(sqe, fd, buf, len, off);
		else
			io_uring_prep_read(sqe, fd, buf, len, off);
	}
	return op;
}

struct rp_op *rp_read_fixed(struct rp_shard *sh, int fd, void *buf, unsigned len, uint64_t off,
			    rp_cb cb, void *arg)
{
	return rw_fixed(sh, fd, buf, len, off, cb, arg, false);
}

struct rp_op *rp_write_fixed(struct rp_shard *sh, int fd, const void *buf, unsigned len,
			     uint64_t off, rp_cb cb, void *arg)
{
	return rw_fixed(sh, fd, (void *)buf, len, off, cb, arg, true);
}

struct rp_op *rp_connect(struct rp_shard *sh, int fd, const struct sockaddr *addr, socklen_t len,
			 rp_cb cb, void *arg)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op;

	if (!addr || len > sizeof(op->u.addr)) {
		errno = EINVAL;
		return NULL;
	}
	op = OP_START_FD(fd, cb, arg);
	if (op) {
		memcpy(&op->u.addr, addr, len);
		io_uring_prep_connect(sqe, fd, (struct sockaddr *)&op->u.addr, len);
	}
	return op;
}

struct rp_op *rp_recv(struct rp_shard *sh, int fd, void *buf, unsigned len, int flags, rp_cb cb,
		      void *arg)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op = OP_START_FD(fd, cb, arg);

	if (!op)
		return NULL;
	io_uring_prep_recv(sqe, fd, buf, len, flags);
#ifdef RP_FAULTS
	/* decided now, counted when the result is replaced */
	if (eng_faults_hit(&sh->faults, FAULT_RESET))
		op->flags |= OPF_FAULT_RESET;
#endif
	return op;
}

struct rp_op *rp_send(struct rp_shard *sh, int fd, const void *buf, unsigned len, int flags,
		      rp_cb cb, void *arg)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op = OP_START_FD(fd, cb, arg);

	if (!op)
		return NULL;
#ifdef RP_FAULTS
	/* the kernel really sends fewer bytes: the caller must go on from res */
	if (len >= 2 && ENG_FAULT(sh, FAULT_SHORT))
		len = eng_faults_short_len(&sh->faults, len);
#endif
	io_uring_prep_send(sqe, fd, buf, len, flags);
	return op;
}

struct rp_op *rp_sendmsg(struct rp_shard *sh, int fd, const struct msghdr *msg, int flags,
			 rp_cb cb, void *arg)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op = OP_START_FD(fd, cb, arg);

	if (!op)
		return NULL;
	msg = eng_sendmsg_msg(sh, op, msg);
	io_uring_prep_sendmsg(sqe, fd, msg, (unsigned)flags);
	return op;
}

struct rp_op *rp_splice(struct rp_shard *sh, int fd_in, int64_t off_in, int fd_out,
			int64_t off_out, unsigned len, unsigned flags, rp_cb cb, void *arg)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op = OP_START(OP_PLAIN, cb, arg);

	if (op) {
		io_uring_prep_splice(sqe, fd_in, off_in, fd_out, off_out, len, flags);
		eng_fdt_track(sh, op, fd_in);
		eng_fdt_track(sh, op, fd_out);
	}
	return op;
}

struct rp_op *rp_shutdown(struct rp_shard *sh, int fd, int how, rp_cb cb, void *arg)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op = OP_START_FD(fd, cb, arg);

	if (op)
		io_uring_prep_shutdown(sqe, fd, how);
	return op;
}

struct rp_op *rp_poll(struct rp_shard *sh, int fd, unsigned events, rp_cb cb, void *arg)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op = OP_START_FD(fd, cb, arg);

	if (op)
		io_uring_prep_poll_add(sqe, fd, events);
	return op;
}

struct rp_op *rp_timeout(struct rp_shard *sh, uint64_t ns, rp_cb cb, void *arg)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op = OP_START(OP_PLAIN, cb, arg);

	if (op) {
		op->u.ts.tv_sec = (long long)(ns / 1000000000u);
		op->u.ts.tv_nsec = (long long)(ns % 1000000000u);
		io_uring_prep_timeout(sqe, &op->u.ts, 0, 0);
	}
	return op;
}

/*
 * A reserved timer is its op, of kind OP_TIMER: the memory rp_timer_new
 * took, counted live only while armed (a stop does not wait for an idle
 * one). Its end puts it back in reserve before the callback runs, so the
 * callback may arm it again. Its timespec is op->lts (a timer is never
 * linked), so that op->u.park_prev is free for sh->timers while an arm
 * waits there for an SQE.
 */
/* An armed timer's end, whatever ends it (its CQE, a stop while it waited
 * on sh->timers, rp_timer_free): no longer counted live (rp_timer_new
 * counted it only while armed). */
static void timer_unlive(struct rp_shard *sh)
{
	sh->live--;
	sh->live_kind[OP_TIMER]--;
}

void eng_timer_complete(struct rp_shard *sh, struct rp_op *op, int res, uint32_t cflags)
{
	struct rp_cqe c = { .res = res };
	rp_cb cb = op->cb;
	void *arg = op->arg;

	(void)cflags;
	eng_count_err(sh, res);
	timer_unlive(sh);
	/* a move still owed (rp_timer_rearm found no SQE) is dropped: sent
	 * later it would move the timer the callback may arm again */
	if (op->flags & OPF_TIMER_MOVE)
		eng_olist_del(&sh->timers, op);
	if (op->flags & OPF_TIMER_FREE) {
		rp_pool_free(op); /* rp_timer_free cleared cb */
		return;
	}
	op->flags = 0;
	if (cb) {
		cb(sh, arg, &c);
		eng_link_drop(sh); /* as eng_deliver */
	}
}

struct rp_timer *rp_timer_new(struct rp_shard *sh)
{
	struct rp_op *op = eng_op_alloc(sh, OP_TIMER, NULL, NULL);

	if (!op)
		return NULL;
	sh->live--; /* counted again only while armed */
	sh->live_kind[OP_TIMER]--;
	return (struct rp_timer *)op;
}

/* The SQ position (sh->sq_tail64) of the SQE eng_sqe just handed out. */
static uint64_t sq_pos_last(struct rp_shard *sh)
{
	return eng_sq_tail_sync(sh) - 1;
}

/* Whether the SQE at @pos has not been handed to the kernel yet: liburing
 * moves sqe_head up to sqe_tail when a submit publishes the SQ (its
 * __io_uring_flush_sq), and the kernel reads a timeout's timespec from the
 * SQE's pointer only when it takes the SQE (io_timeout_prep,
 * io_timeout_remove_prep). With SQPOLL, published counts as sent: the SQ
 * thread may read it at any moment. The unpublished SQEs (sqe_tail -
 * sqe_head, at most the SQ's size) are the last ones taken, so the first
 * of them is at sq_tail64 less their number: 64-bit positions, which
 * cannot wrap (2^64 SQEs), where 32-bit ones compared as
 * (int32_t)(pos - sqe_head) >= 0 counted an SQE sent more than 2^31 SQEs
 * ago as unsent (a move of a long-idle timer only rewrote op->lts and it
 * fired at its old time). */
static bool sq_pos_unsent(struct rp_shard *sh, uint64_t pos)
{
	uint32_t unpublished = sh->ring.sq.sqe_tail - sh->ring.sq.sqe_head;

	return pos >= eng_sq_tail_sync(sh) - unpublished;
}

static void timer_prep(struct rp_shard *sh, struct rp_op *op, struct io_uring_sqe *sqe)
{
	eng_op_sqe(sh, op, sqe);
	io_uring_prep_timeout(sqe, &op->lts, 0, 0);
	op->u.tm.pos = sq_pos_last(sh);
	op->u.tm.upd = false;
}

/* The timespec of the SQ slot of the SQE at @pos (sh->sq_ts). */
static struct __kernel_timespec *sq_pos_ts(const struct rp_shard *sh, uint64_t pos)
{
	return &sh->sq_ts[(uint32_t)pos & sh->ring.sq.ring_mask];
}

/* Move @op's timeout in the kernel to op->lts from now (5.11's
 * IORING_TIMEOUT_UPDATE): no op memory, the CQE is a token. The time is
 * read from the SQE's slot's timespec, not from op->lts: nothing holds
 * the op until the kernel takes the SQE (the timer's own CQE, reaped in
 * the same turn, may run a callback that frees it, and the pool hand it
 * out again), while the slot is the SQE's until the kernel took it. */
static void timer_update_prep(struct rp_shard *sh, struct rp_op *op, struct io_uring_sqe *sqe)
{
	struct __kernel_timespec *ts;

	op->u.tm.upd_pos = sq_pos_last(sh);
	op->u.tm.upd = true;
	ts = sq_pos_ts(sh, op->u.tm.upd_pos);
	*ts = op->lts;
	io_uring_prep_timeout_update(sqe, ts, (uint64_t)(uintptr_t)op, 0);
	io_uring_sqe_set_data64(sqe, UD_TIMER_UPDATE);
	sh->internal++;
}

int rp_timer_arm(struct rp_shard *sh, struct rp_timer *t, uint64_t ns, rp_cb cb, void *arg)
{
	struct rp_op *op = (struct rp_op *)t;
	struct io_uring_sqe *sqe = NULL;
	bool stuck = false;

	if (!op)
		return -EINVAL;
	if (op->flags & (OPF_TIMER_ARMED | OPF_TIMER_FREE))
		return -EALREADY;
	if (sh->stopping)
		return -ESHUTDOWN;
#ifdef RP_FAULTS
	/* as if the flush could not empty the SQ (faults.h: timer) */
	if (ENG_FAULT(sh, FAULT_TIMER)) {
		STAT_INC(sh, sq_full_fail);
		stuck = true;
	}
#endif
	/* never the linked half of an rp_link_next pair: the link stays for
	 * the op prepared next, and the timer is sent by the loop's next
	 * turn (else it would wait on the link's head, and end with it) */
	if (!stuck && !sh->link_next) {
		sqe = eng_sqe(sh); /* NULL: counted in sq_full_fail */
		stuck = !sqe;
	} else {
		stuck = true;
	}
	eng_op_init(sh, op, OP_TIMER, cb, arg);
	op->flags = OPF_TIMER_ARMED;
	op->lts.tv_sec = (long long)(ns / 1000000000u);
	op->lts.tv_nsec = (long long)(ns % 1000000000u);
	if (stuck) {
		/* The SQ stayed full (or a link waits for its op): armed all
		 * the same, and sent by the loop once its submit made room.
		 * Its caller is typically the recovery that runs when nothing
		 * else can: an -EBUSY here left it to a retry that needed
		 * memory or an SQE too. */
		op->flags |= OPF_TIMER_DEFER;
		eng_olist_push(&sh->timers, op);
		return 0;
	}
	timer_prep(sh, op, sqe);
	return 0;
}

void eng_timer_defer_run(struct rp_shard *sh)
{
	struct rp_op *op;

	while ((op = sh->timers)) {
		struct io_uring_sqe *sqe = NULL;

		/* still full, or an rp_link_next pending (the timer would be
		 * its linked half): the next turn */
		if (!sh->stopping && (sh->link_next || !(sqe = eng_sqe(sh))))
			return;
		eng_olist_del(&sh->timers, op);
		if (op->flags & OPF_TIMER_MOVE) {
			/* in the kernel: a stop's cancel ends it there, so the
			 * move is dropped; else it is sent now, from now */
			op->flags &= (uint16_t)~OPF_TIMER_MOVE;
			if (sqe)
				timer_update_prep(sh, op, sqe);
			continue;
		}
		op->flags &= (uint16_t)~OPF_TIMER_DEFER;
		if (sqe) {
			timer_prep(sh, op, sqe);
			continue;
		}
		/* stopping: ended as the stop's cancel ends an armed timer (its
		 * callback may change the list: read again) */
		eng_timer_complete(sh, op, -ECANCELED, 0);
	}
}

int rp_timer_rearm(struct rp_shard *sh, struct rp_timer *t, uint64_t ns, rp_cb cb, void *arg)
{
	struct rp_op *op = (struct rp_op *)t;
	struct io_uring_sqe *sqe = NULL;

	if (!op)
		return -EINVAL;
	if (op->flags & OPF_TIMER_FREE)
		return -EALREADY; /* as rp_timer_arm: never after rp_timer_free */
	if (!(op->flags & OPF_TIMER_ARMED))
		return rp_timer_arm(sh, t, ns, cb, arg);
	if (sh->stopping)
		return -ESHUTDOWN; /* left as it was: the stop's cancel ends it */
	op->cb = cb;
	op->arg = arg;
	op->lts.tv_sec = (long long)(ns / 1000000000u);
	op->lts.tv_nsec = (long long)(ns % 1000000000u);
	/* The kernel has not read the time yet: its timeout waits for an SQE
	 * (sh->timers), its timeout's SQE is still in the SQ, or its update
	 * waits on sh->timers (each reads op->lts), or its update's SQE is
	 * still in the SQ (it reads its slot's timespec). */
	if ((op->flags & (OPF_TIMER_DEFER | OPF_TIMER_MOVE)) || sq_pos_unsent(sh, op->u.tm.pos))
		return 0;
	if (op->u.tm.upd && sq_pos_unsent(sh, op->u.tm.upd_pos)) {
		*sq_pos_ts(sh, op->u.tm.upd_pos) = op->lts;
		return 0;
	}
#ifdef RP_FAULTS
	/* as if the flush could not empty the SQ (faults.h: timer) */
	if (ENG_FAULT(sh, FAULT_TIMER))
		STAT_INC(sh, sq_full_fail);
	else
#endif
		/* never the linked half of an rp_link_next pair: the loop's
		 * next turn sends it */
		if (!sh->link_next)
			sqe = eng_sqe(sh); /* NULL: counted in sq_full_fail */
	if (!sqe) {
		/* the SQ stayed full: moved by the loop's next turn, as a
		 * timer armed then is armed (its old time holds till then) */
		op->flags |= OPF_TIMER_MOVE;
		eng_olist_push(&sh->timers, op);
		return 0;
	}
	timer_update_prep(sh, op, sqe);
	return 0;
}

bool rp_timer_armed(const struct rp_timer *t)
{
	return t && (((const struct rp_op *)t)->flags & OPF_TIMER_ARMED);
}

void rp_timer_free(struct rp_shard *sh, struct rp_timer *t)
{
	struct rp_op *op = (struct rp_op *)t;

	if (!op)
		return;
	if (op->flags & OPF_TIMER_MOVE) {
		/* in the kernel all the same: its move is not owed any more */
		eng_olist_del(&sh->timers, op);
		op->flags &= (uint16_t)~OPF_TIMER_MOVE;
	}
	if (op->flags & OPF_TIMER_DEFER) {
		/* never reached the kernel: no CQE will come */
		eng_olist_del(&sh->timers, op);
		timer_unlive(sh);
		rp_pool_free(op);
		return;
	}
	if (!(op->flags & OPF_TIMER_ARMED)) {
		rp_pool_free(op);
		return;
	}
	if (sh->loop_over) {
		/* No loop behind it (after a stop that hit its deadline, or an
		 * init that failed): a cancel asked for now would never be
		 * submitted, and its CQE never reaped, so the op was never
		 * freed and stayed live. The kernel copied the timespec when
		 * it took the SQE (io_timeout_prep), an SQE it never took was
		 * made a NOP when the loop ended (eng_sq_abandon: an init that
		 * armed the timer and failed), and its CQE, if any, is never
		 * read: the memory is free to go now. */
		timer_unlive(sh);
		rp_pool_free(op);
		return;
	}
	/* in the kernel: its end frees it, without the callback. The cancel
	 * takes no pool memory (rp_cancel_op); one the full SQ refuses leaves
	 * it to expire (or to the stop's cancel) */
	op->flags |= OPF_TIMER_FREE;
	op->cb = NULL;
	(void)rp_cancel_op(sh, op);
}

int rp_link_next(struct rp_shard *sh, struct rp_op *op)
{
	if (!op || op != sh->last_op || !sh->last_sqe || sh->last_spare || sh->link_next ||
	    op->kind == OP_ACCEPT_MS || op->kind == OP_RECV_MS || op->kind == OP_POLL_OUT)
		return -EINVAL;
	sh->last_sqe->flags |= IOSQE_IO_LINK;
	sh->link_next = true;
	return 0;
}

int rp_link_timeout(struct rp_shard *sh, struct rp_op *op, uint64_t ns)
{
	struct io_uring_sqe *sqe;

	if (!op || op != sh->last_op || !sh->last_sqe || op->kind == OP_ACCEPT_MS ||
	    op->kind == OP_RECV_MS || op->kind == OP_POLL_OUT || sh->link_next || sh->last_spare)
		return -EINVAL;
	/* eng_sqe left SQ_SPARE slots free after the op's SQE, so this one
	 * goes to the kernel in the same submit as the op. */
	sh->last_sqe->flags |= IOSQE_IO_LINK;
	op->lts.tv_sec = (long long)(ns / 1000000000u);
	op->lts.tv_nsec = (long long)(ns % 1000000000u);
	sqe = eng_sqe_spare(sh);
	io_uring_prep_link_timeout(sqe, &op->lts, 0);
	io_uring_sqe_set_data64(sqe, UD_LINK_TO);
	sh->internal++;
	sh->last_sqe = NULL;
	sh->last_op = NULL;
	return 0;
}
