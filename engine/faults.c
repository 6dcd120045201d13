/* SPDX-License-Identifier: MIT */
/*
 * Fault injection (faults.h): parsing RP_FAULTS, the per-shard PRNG, the
 * report at stop, and the two faults that need more than a changed
 * argument or result: a shortened sendmsg (a pool copy of the caller's
 * msghdr, which is never touched) and a reset ending a multishot recv
 * (through a cancel, so the kernel no longer holds the op when its final
 * callback runs). Built only with RP_FAULTS (meson -Dfaults=true, and the
 * test programs that compile the engine with it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"

#ifndef RP_FAULTS
#error "faults.c is built only with RP_FAULTS"
#endif

static const char *const kind_names[FAULT_KINDS] = {
	[FAULT_NOMEM] = "nomem",
	[FAULT_SHORT] = "short",
	[FAULT_RESET] = "reset",
	[FAULT_EAGAIN] = "eagain",
	[FAULT_REARM] = "rearm",
	[FAULT_TIMER] = "timer",
};

/* ---- RP_FAULTS ---- */

static int bad(const char *what, const char *tok, size_t len)
{
	eng_set_error("RP_FAULTS: %s \"%.*s\" (expected nomem=P,short=P,reset=P,eagain=P,rearm=P,"
		      "timer=P,seed=N with P in 0..1)",
		      what, (int)len, tok);
	return -EINVAL;
}

int eng_faults_parse(const char *spec, struct eng_faults_cfg *cfg)
{
	const char *p = spec;

	memset(cfg, 0, sizeof(*cfg));
	cfg->seed = 1;
	if (!p || !*p)
		return 0;
	for (;;) {
		size_t len = strcspn(p, ",");
		const char *eq = memchr(p, '=', len);
		char val[64], *end;
		size_t klen, vlen;
		int k;

		if (!len)
			return bad("empty item in", spec, strlen(spec));
		if (!eq)
			return bad("no '=' in", p, len);
		klen = (size_t)(eq - p);
		vlen = len - klen - 1;
		if (!vlen || vlen >= sizeof(val))
			return bad("bad value in", p, len);
		memcpy(val, eq + 1, vlen);
		val[vlen] = 0;
		errno = 0;
		if (klen == 4 && !memcmp(p, "seed", 4)) {
			unsigned long long s = strtoull(val, &end, 0);

			if (errno || *end || val[0] == '-')
				return bad("bad seed in", p, len);
			cfg->seed = s;
		} else {
			double v;

			for (k = 0; k < FAULT_KINDS; k++)
				if (strlen(kind_names[k]) == klen && !memcmp(p, kind_names[k], klen))
					break;
			if (k == FAULT_KINDS)
				return bad("unknown key in", p, len);
			v = strtod(val, &end);
			if (errno || *end || !(v >= 0.0 && v <= 1.0))
				return bad("bad probability in", p, len);
			cfg->thresh[k] = (uint64_t)(v * 4294967296.0);
			if (cfg->thresh[k])
				cfg->on = true;
		}
		p += len;
		if (!*p)
			return 0;
		p++; /* the ',' */
	}
}

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

void eng_faults_init(struct eng_faults *f, const struct eng_faults_cfg *cfg, unsigned shard)
{
	memset(f, 0, sizeof(*f)); /* thresholds 0 until eng_faults_start */
	f->s = splitmix64(cfg->seed + shard);
	if (!f->s)
		f->s = 1;
}

void eng_faults_start(struct eng_faults *f, const struct eng_faults_cfg *cfg)
{
	memcpy(f->thresh, cfg->thresh, sizeof(f->thresh));
}

uint64_t eng_faults_count(const struct rp_runtime *rt, unsigned shard, enum eng_fault_kind k)
{
	if (!rt || shard >= rt->n || k >= FAULT_KINDS)
		return 0;
	return __atomic_load_n(&rt->shards[shard]->faults.count[k], __ATOMIC_RELAXED);
}

void eng_faults_report(const struct rp_runtime *rt)
{
	if (!rt->faults.on)
		return;
	for (unsigned i = 0; i < rt->n; i++) {
		const uint64_t *c = rt->shards[i]->faults.count;

		fprintf(stderr,
			"faults injected: shard %u nomem=%llu short=%llu reset=%llu eagain=%llu "
			"rearm=%llu timer=%llu\n",
			i, (unsigned long long)c[FAULT_NOMEM], (unsigned long long)c[FAULT_SHORT],
			(unsigned long long)c[FAULT_RESET], (unsigned long long)c[FAULT_EAGAIN],
			(unsigned long long)c[FAULT_REARM], (unsigned long long)c[FAULT_TIMER]);
	}
}

/* ---- short sendmsg ---- */

/*
 * The caller's msghdr (and its iovec array) may be shared and reused, so
 * the shortened one is a copy in the shard's pool, freed with the op
 * (eng_op_free): the header, then the iovecs that hold the first @want
 * bytes, the last one cut. Without pool memory nothing is injected.
 */
const struct msghdr *eng_fault_sendmsg(struct rp_shard *sh, struct rp_op *op,
				       const struct msghdr *msg)
{
	struct msghdr *m;
	struct iovec *iov;
	uint64_t total = 0, want;
	size_t n = 0, bytes;

	if (!msg || !msg->msg_iov || !msg->msg_iovlen || !sh->faults.thresh[FAULT_SHORT])
		return NULL;
	for (size_t i = 0; i < msg->msg_iovlen; i++)
		total += msg->msg_iov[i].iov_len;
	if (total < 2 || total > UINT32_MAX || !eng_faults_hit(&sh->faults, FAULT_SHORT))
		return NULL;
	want = eng_faults_short_len(&sh->faults, total);
	for (uint64_t got = 0; got < want; n++)
		got += msg->msg_iov[n].iov_len;
	bytes = sizeof(*m) + n * sizeof(*iov);
	if (bytes > RP_POOL_MAX_CLASS)
		return NULL;
	m = rp_pool_alloc(sh->pool, bytes);
	if (!m)
		return NULL;
	iov = (struct iovec *)(m + 1);
	*m = *msg;
	memcpy(iov, msg->msg_iov, n * sizeof(*iov));
	for (size_t i = 0; i < n; i++) {
		if (iov[i].iov_len >= want) {
			iov[i].iov_len = want;
			n = i + 1;
			break;
		}
		want -= iov[i].iov_len;
	}
	m->msg_iov = iov;
	m->msg_iovlen = n;
	op->fault_mem = m;
	eng_faults_note(&sh->faults, FAULT_SHORT);
	return m;
}

/* ---- reset of a multishot recv ---- */

/*
 * After a data CQE (already delivered: those bytes are correct), end the
 * op the way rp_cancel would: OPF_CANCEL_REQ (never re-armed or parked
 * again) and a cancel by user_data, carried by an op of its own so the
 * target stays allocated until that cancel has completed (a cancel that
 * outlived its target could hit the next op given the same memory). The
 * target's final callback, -ECONNRESET, runs once both its final CQE and
 * the cancel's CQE are in, in whichever order the kernel posts them.
 */
void eng_fault_recv_reset(struct rp_shard *sh, struct rp_op *op)
{
	struct io_uring_sqe *sqe;
	struct rp_op *cop;

	if ((op->flags & OPF_FAULT_RESET) || !eng_may_rearm(sh, op) ||
	    !eng_faults_hit(&sh->faults, FAULT_RESET))
		return;
	cop = rp_pool_alloc(sh->pool, sizeof(*cop)); /* not eng_op_alloc: no nomem fault here */
	if (!cop)
		return;
	sqe = eng_sqe_own(sh);
	if (!sqe) {
		rp_pool_free(cop);
		return;
	}
	memset(cop, 0, sizeof(*cop));
	eng_op_init(sh, cop, OP_FAULT_CANCEL, NULL, op); /* names no fd: never in sh->fdt */
	io_uring_prep_cancel(sqe, op, 0);
	io_uring_sqe_set_data(sqe, cop);
	op->flags |= OPF_FAULT_RESET | OPF_FAULT_PENDING | OPF_CANCEL_REQ;
	eng_faults_note(&sh->faults, FAULT_RESET);
}

static void reset_finish(struct rp_shard *sh, struct rp_op *op)
{
	struct rp_cqe c = { .res = -ECONNRESET };

	eng_op_finish(sh, op, &c);
}

/* The recv's final CQE (-ECANCELED from the cancel, or an end of the
 * kernel's own): its buffer, if any, is never delivered, so it goes back. */
void eng_fault_recv_final(struct rp_shard *sh, struct rp_op *op, const struct rp_cqe *c)
{
	if (c->buf)
		rp_buf_put(sh, c->bid);
	if (op->flags & OPF_FAULT_PENDING) {
		op->flags |= OPF_FAULT_FINAL;
		return;
	}
	reset_finish(sh, op);
}

void eng_fault_cancel_complete(struct rp_shard *sh, struct rp_op *cop, int res, uint32_t cflags)
{
	struct rp_op *op = cop->arg;

	(void)res; /* 0, or -ENOENT/-EALREADY when the op was ending anyway */
	(void)cflags;
	eng_op_free(sh, cop);
	op->flags &= (uint16_t)~OPF_FAULT_PENDING;
	if (op->flags & OPF_FAULT_FINAL)
		reset_finish(sh, op);
}
