/* SPDX-License-Identifier: MIT */
/*
 * engine ops: one function per op kind, each taking an op from the shard's
 * pool and preparing one SQE (two with a linked timeout). Nothing here
 * enters the kernel except an early flush when the SQ is full.
 */
#include <errno.h>
#include <string.h>

#include "engine_impl.h"
#include "shard.h"

static inline struct rp_op *op_alloc(struct rp_shard *sh, uint8_t kind, rp_cb cb, void *arg)
{
	struct rp_op *op = rp_pool_alloc(sh->pool, sizeof(*op));

	if (!op) {
		STAT_INC(sh, nomem);
		errno = ENOMEM;
		return NULL;
	}
	op->cb = cb;
	op->arg = arg;
	op->kind = kind;
	op->flags = 0;
	op->fd = -1;
	op->next = NULL;
	sh->live++;
	sh->live_kind[kind]++;
	return op;
}

/* An op that never reached the kernel. */
static inline void op_drop(struct rp_shard *sh, struct rp_op *op)
{
	sh->live--;
	sh->live_kind[op->kind]--;
	rp_pool_free(op);
}

static inline struct io_uring_sqe *op_sqe_set(struct rp_shard *sh, struct rp_op *op,
					      struct io_uring_sqe *sqe)
{
	io_uring_sqe_set_data(sqe, op);
	sh->last_sqe = sqe;
	sh->last_op = op;
	return sqe;
}

/*
 * A new op and its SQE. @always: close and cancel are allowed while
 * stopping (shutdown needs them). NULL with errno ESHUTDOWN, ENOMEM, or
 * EBUSY (the SQ stayed full: the kernel refused every flush).
 */
static inline struct rp_op *op_start(struct rp_shard *sh, uint8_t kind, rp_cb cb, void *arg,
				     bool always, struct io_uring_sqe **sqep)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op;

	if (sh->stopping && !always) {
		errno = ESHUTDOWN;
		return NULL;
	}
	op = op_alloc(sh, kind, cb, arg);
	if (!op)
		return NULL;
	sqe = rp_shard_sqe(sh);
	if (!sqe) {
		op_drop(sh, op);
		errno = EBUSY;
		return NULL;
	}
	*sqep = op_sqe_set(sh, op, sqe);
	return op;
}

#define OP_START(kind, cb, arg) op_start(sh, kind, cb, arg, false, &sqe)

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
	struct rp_op *op = OP_START(OP_PLAIN, cb, arg);

	if (op)
		io_uring_prep_read(sqe, fd, buf, len, off);
	return op;
}

struct rp_op *rp_write(struct rp_shard *sh, int fd, const void *buf, unsigned len, uint64_t off,
		       rp_cb cb, void *arg)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op = OP_START(OP_PLAIN, cb, arg);

	if (op)
		io_uring_prep_write(sqe, fd, buf, len, off);
	return op;
}

struct rp_op *rp_readv(struct rp_shard *sh, int fd, const struct iovec *iov, unsigned iovcnt,
		       uint64_t off, rp_cb cb, void *arg)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op = OP_START(OP_PLAIN, cb, arg);

	if (op)
		io_uring_prep_readv(sqe, fd, iov, iovcnt, off);
	return op;
}

struct rp_op *rp_writev(struct rp_shard *sh, int fd, const struct iovec *iov, unsigned iovcnt,
			uint64_t off, rp_cb cb, void *arg)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op = OP_START(OP_PLAIN, cb, arg);

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
	op = OP_START(OP_PLAIN, cb, arg);
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

static void prep_accept(struct io_uring_sqe *sqe, struct rp_op *op)
{
	io_uring_prep_multishot_accept(sqe, op->fd, NULL, NULL, SOCK_CLOEXEC);
}

bool rp_shard_arm_accept(struct rp_shard *sh, struct rp_op *op)
{
	struct io_uring_sqe *sqe = rp_shard_sqe(sh);

	if (!sqe)
		return false;
	prep_accept(op_sqe_set(sh, op, sqe), op);
	return true;
}

struct rp_op *rp_accept_multishot(struct rp_shard *sh, int fd, rp_cb cb, void *arg)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op;

	if (fd < 0) {
		errno = EBADF;
		return NULL;
	}
	op = OP_START(OP_ACCEPT_MS, cb, arg);
	if (op) {
		op->fd = fd;
		prep_accept(sqe, op);
	}
	return op;
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
	op = OP_START(OP_PLAIN, cb, arg);
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
	struct rp_op *op = OP_START(OP_PLAIN, cb, arg);

	if (op)
		io_uring_prep_recv(sqe, fd, buf, len, flags);
	return op;
}

static void prep_recv_ms(struct io_uring_sqe *sqe, struct rp_op *op)
{
	io_uring_prep_recv_multishot(sqe, op->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = 0;
}

bool rp_shard_arm_recv(struct rp_shard *sh, struct rp_op *op)
{
	struct io_uring_sqe *sqe = rp_shard_sqe(sh);

	if (!sqe)
		return false;
	prep_recv_ms(op_sqe_set(sh, op, sqe), op);
	return true;
}

struct rp_op *rp_recv_multishot(struct rp_shard *sh, int fd, rp_cb cb, void *arg)
{
	struct rp_op *op;

	if (fd < 0) {
		errno = EBADF;
		return NULL;
	}
	if (!sh->br) {
		errno = EOPNOTSUPP;
		return NULL;
	}
	if (sh->stopping) {
		errno = ESHUTDOWN;
		return NULL;
	}
	op = op_alloc(sh, OP_RECV_MS, cb, arg);
	if (!op)
		return NULL;
	op->fd = fd;
	if (sh->bufs_out >= sh->nbufs) {
		rp_shard_park(sh, op);
	} else if (!rp_shard_arm_recv(sh, op)) {
		op_drop(sh, op);
		errno = EBUSY;
		return NULL;
	}
	return op;
}

struct rp_op *rp_send(struct rp_shard *sh, int fd, const void *buf, unsigned len, int flags,
		      rp_cb cb, void *arg)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op = OP_START(OP_PLAIN, cb, arg);

	if (op)
		io_uring_prep_send(sqe, fd, buf, len, flags);
	return op;
}

struct rp_op *rp_sendmsg(struct rp_shard *sh, int fd, const struct msghdr *msg, int flags,
			 rp_cb cb, void *arg)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op = OP_START(OP_PLAIN, cb, arg);

	if (op)
		io_uring_prep_sendmsg(sqe, fd, msg, (unsigned)flags);
	return op;
}

struct rp_op *rp_send_zc(struct rp_shard *sh, int fd, const void *buf, unsigned len, int flags,
			 rp_cb cb, void *arg)
{
	struct rp_runtime *rt = sh->rt;
	struct io_uring_sqe *sqe;
	struct rp_op *op;

	if (!rt->send_zc)
		return rp_send(sh, fd, buf, len, flags, cb, arg);
	op = OP_START(OP_SEND_ZC, cb, arg);
	if (op)
		io_uring_prep_send_zc(sqe, fd, buf, len, flags,
				      rt->zc_report ? IORING_SEND_ZC_REPORT_USAGE : 0);
	return op;
}

struct rp_op *rp_splice(struct rp_shard *sh, int fd_in, int64_t off_in, int fd_out,
			int64_t off_out, unsigned len, unsigned flags, rp_cb cb, void *arg)
{
	struct io_uring_sqe *sqe;
	struct rp_op *op = OP_START(OP_PLAIN, cb, arg);

	if (op)
		io_uring_prep_splice(sqe, fd_in, off_in, fd_out, off_out, len, flags);
	return op;
}

/* End parked multishot receives on @fd: they are not in the kernel. */
static void unpark_fd(struct rp_shard *sh, int fd)
{
	for (struct rp_op *p = sh->parked, *next; p; p = next) {
		next = p->next;
		if (p->fd == fd)
			rp_shard_unpark_dead(sh, p);
	}
}

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
	struct rp_op *op = op_alloc(sh, OP_PLAIN, cb, arg);

	if (!op)
		return NULL;
	sqe = rp_shard_sqe(sh);
	if (!sqe) {
		op_drop(sh, op);
		errno = EBUSY;
		return NULL;
	}
	if (fd >= 0) {
		unpark_fd(sh, fd);
		io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
		sqe->flags |= IOSQE_IO_HARDLINK;
		io_uring_sqe_set_data64(sqe, UD_CLOSING_FD | (uint32_t)fd);
		sh->internal++;
		(void)rp_shard_closing_add(sh, fd); /* without memory: best effort */
		sqe = rp_shard_sqe_spare(sh);	    /* same submit as the cancel */
	}
	io_uring_prep_close(op_sqe_set(sh, op, sqe), fd);
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
	op = op_start(sh, OP_PLAIN, cb, arg, true, &sqe);
	if (!op)
		return NULL;
	target->flags |= OPF_CANCEL_REQ;
	if (target->flags & OPF_PARKED) {
		/* Not in the kernel: end it ourselves; the cancel reports success. */
		rp_shard_unpark_dead(sh, target);
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
	struct rp_op *op = op_start(sh, OP_CANCEL_FD, cb, arg, true, &sqe);

	if (!op)
		return NULL;
	op->fd = fd;
	unpark_fd(sh, fd);
	if (fd >= 0 && !rp_shard_closing_add(sh, fd))
		op->fd = -1; /* without memory: best effort, as rp_close */
	io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
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

int rp_link_timeout(struct rp_shard *sh, struct rp_op *op, uint64_t ns)
{
	struct io_uring_sqe *sqe;

	if (!op || op != sh->last_op || !sh->last_sqe || op->kind == OP_ACCEPT_MS ||
	    op->kind == OP_RECV_MS)
		return -EINVAL;
	/* rp_shard_sqe left SQ_SPARE slots free after the op's SQE, so this one
	 * goes to the kernel in the same submit as the op. */
	sh->last_sqe->flags |= IOSQE_IO_LINK;
	op->lts.tv_sec = (long long)(ns / 1000000000u);
	op->lts.tv_nsec = (long long)(ns % 1000000000u);
	sqe = rp_shard_sqe_spare(sh);
	io_uring_prep_link_timeout(sqe, &op->lts, 0);
	io_uring_sqe_set_data64(sqe, UD_LINK_TO);
	sh->internal++;
	sh->last_sqe = NULL;
	sh->last_op = NULL;
	return 0;
}
