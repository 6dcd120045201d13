/* SPDX-License-Identifier: MIT */
/*
 * Multishot receive into the shard's provided-buffer ring (bgid 0), and the
 * ring itself: buffers handed to callbacks, given back with rp_buf_put, and
 * receives parked outside the kernel while every buffer is out, armed again
 * when one comes back.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "op.h"

/* ---- the provided-buffer ring ---- */

int eng_bufring_setup(struct rp_shard *sh)
{
	struct io_uring_buf_reg reg;
	unsigned n = sh->rt->cfg.bufs;
	int ret;

	sh->nbufs = n;
	sh->buf_size = sh->rt->cfg.buf_size;
	sh->br_bytes = (n * sizeof(struct io_uring_buf) + 4095) & ~(size_t)4095;
	sh->br = mmap(NULL, sh->br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		      0);
	if (sh->br == MAP_FAILED) {
		sh->br = NULL;
		return -errno;
	}
	sh->bufs = calloc(n, sizeof(void *));
	sh->buf_outmap = calloc((n + 63) / 64, sizeof(uint64_t));
	if (!sh->bufs || !sh->buf_outmap)
		return -ENOMEM;
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (unsigned long)sh->br;
	reg.ring_entries = n;
	reg.bgid = 0;
	ret = io_uring_register_buf_ring(&sh->ring, &reg, 0);
	if (ret)
		return ret;
	io_uring_buf_ring_init(sh->br);
	for (unsigned i = 0; i < n; i++) {
		sh->bufs[i] = rp_pool_alloc(sh->pool, sh->buf_size);
		if (!sh->bufs[i])
			return -ENOMEM;
		io_uring_buf_ring_add(sh->br, sh->bufs[i], sh->buf_size, (unsigned short)i,
				      io_uring_buf_ring_mask(n), (int)i);
	}
	io_uring_buf_ring_advance(sh->br, (int)n);
	return 0;
}

static inline bool buf_is_out(const struct rp_shard *sh, unsigned bid)
{
	return sh->buf_outmap[bid / 64] & (1ull << (bid % 64));
}

static inline void buf_mark(struct rp_shard *sh, unsigned bid, bool out)
{
	if (out)
		sh->buf_outmap[bid / 64] |= 1ull << (bid % 64);
	else
		sh->buf_outmap[bid / 64] &= ~(1ull << (bid % 64));
}

unsigned rp_buf_size(const struct rp_shard *sh)
{
	return sh->buf_size;
}

unsigned rp_buf_count(const struct rp_shard *sh)
{
	return sh->nbufs;
}

unsigned rp_buf_out(const struct rp_shard *sh)
{
	return sh->bufs_out;
}

/* ---- arming, parking ---- */

static void prep_recv(struct io_uring_sqe *sqe, struct rp_op *op)
{
	io_uring_prep_recv_multishot(sqe, op->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = 0;
}

static bool arm_recv(struct rp_shard *sh, struct rp_op *op, struct io_uring_sqe *sqe)
{
	if (!sqe)
		return false;
	prep_recv(eng_op_sqe(sh, op, sqe), op);
	return true;
}

/* sh->parked is doubly linked (op->next, op->u.park_prev): closing N
 * connections whose receives are parked ends each in O(1), not a walk. */
void eng_recv_park(struct rp_shard *sh, struct rp_op *op)
{
	op->flags |= OPF_PARKED;
	eng_olist_push(&sh->parked, op);
}

static void park_unlink(struct rp_shard *sh, struct rp_op *op)
{
	eng_olist_del(&sh->parked, op);
	op->flags &= (uint16_t)~OPF_PARKED;
}

/* @op is outside the kernel (eng_op_outside): every caller checks. */
void eng_op_end_outside(struct rp_shard *sh, struct rp_op *op)
{
	if (op->flags & OPF_PARKED)
		park_unlink(sh, op);
	else
		eng_rearm_del(sh, op);
	op->flags |= OPF_DEAD_PARKED;
	op->next = sh->dead;
	sh->dead = op;
}

static void end_outside_list(struct rp_shard *sh, struct rp_op *list, int fd, bool all)
{
	for (struct rp_op *p = list, *next; p; p = next) {
		next = p->next;
		if ((all || p->fd == fd) && eng_op_outside(p))
			eng_op_end_outside(sh, p);
	}
}

void eng_end_outside_fd(struct rp_shard *sh, int fd, bool all)
{
	end_outside_list(sh, sh->parked, fd, all);
	end_outside_list(sh, sh->rearm, fd, all);
}

void eng_recv_deliver_dead(struct rp_shard *sh)
{
	while (sh->dead) {
		struct rp_op *op = sh->dead;
		struct rp_cqe c = { .res = -ECANCELED };

		sh->dead = op->next;
		STAT_INC(sh, ops_completed);
		eng_op_finish(sh, op, &c);
	}
}

/* Re-arm the first parked receive, if any (a buffer came back). */
static void unpark_one(struct rp_shard *sh)
{
	struct rp_op *op = sh->parked;

	if (!op || sh->stopping)
		return;
	park_unlink(sh, op);
	/* SQ stuck: the loop arms it on its next turn (parked again, it
	 * waited for a put that may never come: every buffer was back) */
	if (!arm_recv(sh, op, eng_rearm_sqe(sh)))
		eng_rearm_later(sh, op);
}

/* From the loop: the re-arm a completion or a put could not send. */
bool eng_recv_rearm(struct rp_shard *sh, struct rp_op *op)
{
	if (sh->bufs_out >= sh->nbufs) {
		eng_recv_park(sh, op);
		return true;
	}
	return arm_recv(sh, op, eng_sqe(sh));
}

void rp_buf_put(struct rp_shard *sh, uint16_t bid)
{
	/* A buffer that is not out (a double put, a stray id) would be handed
	 * to two receives at once: refuse and count it. */
	if (bid >= sh->nbufs || !buf_is_out(sh, bid)) {
		STAT_INC(sh, buf_misuse);
		return;
	}
	buf_mark(sh, bid, false);
	io_uring_buf_ring_add(sh->br, sh->bufs[bid], sh->buf_size, bid,
			      io_uring_buf_ring_mask(sh->nbufs), 0);
	io_uring_buf_ring_advance(sh->br, 1);
	sh->bufs_out--;
	unpark_one(sh);
}

/* ---- the op ---- */

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
	op = eng_op_alloc(sh, OP_RECV_MS, cb, arg);
	if (!op)
		return NULL;
	op->fd = fd;
	eng_fdt_track(sh, op, fd); /* armed or parked, until it is freed */
	if (sh->bufs_out >= sh->nbufs) {
		eng_recv_park(sh, op);
	} else if (!arm_recv(sh, op, eng_sqe(sh))) {
		eng_op_free(sh, op);
		errno = EBUSY;
		return NULL;
	}
	return op;
}

void eng_recv_complete(struct rp_shard *sh, struct rp_op *op, int res, uint32_t cflags)
{
	struct rp_cqe c = { .res = res };

	if (cflags & IORING_CQE_F_BUFFER) {
		c.bid = (uint16_t)(cflags >> IORING_CQE_BUFFER_SHIFT);
		c.buf = sh->bufs[c.bid];
		sh->bufs_out++;
		buf_mark(sh, c.bid, true);
	}
	if (cflags & IORING_CQE_F_MORE) {
		c.flags = RP_CQE_MORE;
		eng_deliver(sh, op, &c);
#ifdef RP_FAULTS
		if (res > 0)
			eng_fault_recv_reset(sh, op);
#endif
		return;
	}
#ifdef RP_FAULTS
	if (op->flags & OPF_FAULT_RESET) {
		eng_fault_recv_final(sh, op, &c);
		return;
	}
#endif
	if ((res == -ENOBUFS || res > 0) && eng_may_rearm(sh, op)) {
		STAT_INC(sh, rearms);
		if (res == -ENOBUFS)
			STAT_INC(sh, enobufs);
		if (sh->bufs_out >= sh->nbufs)
			eng_recv_park(sh, op);
		else if (!arm_recv(sh, op, eng_rearm_sqe(sh)))
			eng_rearm_later(sh, op); /* SQ stuck: the loop's next turn */
		if (res < 0)
			return; /* invisible to the caller: it is re-armed */
		c.flags = RP_CQE_MORE | RP_CQE_REARMED;
		eng_deliver(sh, op, &c);
		return;
	}
	if (res == -ENOBUFS)
		c.res = -ECANCELED; /* cancelled (or closing) while it was ending */
	eng_op_finish(sh, op, &c);
}
