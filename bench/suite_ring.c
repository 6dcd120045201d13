/* SPDX-License-Identifier: MIT */
/*
 * ring suite: rp_spsc between two pinned threads side by side with
 * Concurrency Kit's ck_ring (ck_ring_enqueue_spsc / ck_ring_dequeue_spsc)
 * and with the classic bounded queue under a pthread mutex and two condition
 * variables.
 *
 * Rows: single-item throughput with two retry policies (spin, pause),
 * burst-32 throughput, single-item throughput against the mutex+condvar
 * queue, and the round trip of one item bounced over two rings.
 *
 * Cross-core latency on this host wanders by about 3x over seconds, so
 * one long run per side would compare two different machines. A run moves
 * a fixed count of items (calibrated to ~20 ms quick, ~100 ms otherwise);
 * runs alternate (ours, baseline, ours, baseline, ...) and each side
 * reports its median, so a slow stretch of the host lands on both sides.
 *
 * Every run is checked: the consumer compares each item with the one it
 * expects (sequence numbers 1..n) and the count must be exact. A run that
 * fails the check stops the suite; it is never reported.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <time.h>

#include <ringplane/spsc.h>

#include "bench.h"

#ifdef RP_HAVE_CK
#include <ck_ring.h>
#endif

#define SLOTS 1024u /* ring size for every queue, ours and the baselines */
#define BURST 32u
#define RUNS_QUICK 5u
#define RUNS_FULL 11u
#define RUNS_MAX RUNS_FULL
#define RUN_NS_QUICK 20000000ull
#define RUN_NS_FULL 100000000ull
/* A run that has not finished by then has lost an item (or a thread never
 * got a CPU): the threads are told to stop and the suite fails. */
#define WATCHDOG_S 30
/* Same threshold as bench/timing.c: flag a row whose middle half of runs
 * spreads by more than this fraction of its median. */
#define NOISY_IQR 0.15

#if defined(__GNUC__)
#define unlikely(x) __builtin_expect(!!(x), 0)
#else
#define unlikely(x) (x)
#endif

enum impl { IMPL_OURS, IMPL_CK, IMPL_LOCK, NIMPL };
enum kind { KIND_SINGLE, KIND_BURST, KIND_PINGPONG, NKIND };

/* ---- the mutex + condvar baseline ----
 * The textbook bounded buffer: one lock, "not empty" and "not full"
 * condition variables, a signal on every push and pop. */

struct lockq {
	pthread_mutex_t mu;
	pthread_cond_t not_empty, not_full;
	uint32_t head, tail, mask;
	bool halt; /* under mu: wakes and fails both sides (watchdog, bad item) */
	void **slots;
};

static int lockq_init(struct lockq *q, uint32_t cap)
{
	memset(q, 0, sizeof(*q));
	q->slots = calloc(cap, sizeof(void *));
	if (!q->slots)
		return -ENOMEM;
	q->mask = cap - 1;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->not_empty, NULL);
	pthread_cond_init(&q->not_full, NULL);
	return 0;
}

static void lockq_fini(struct lockq *q)
{
	if (!q->slots)
		return;
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->not_empty);
	pthread_cond_destroy(&q->not_full);
	free(q->slots);
	q->slots = NULL;
}

/* Blocks while full; false only when halted. */
static bool lockq_push(struct lockq *q, void *item)
{
	pthread_mutex_lock(&q->mu);
	while (q->tail - q->head > q->mask && !q->halt)
		pthread_cond_wait(&q->not_full, &q->mu);
	if (q->halt) {
		pthread_mutex_unlock(&q->mu);
		return false;
	}
	q->slots[q->tail++ & q->mask] = item;
	pthread_cond_signal(&q->not_empty);
	pthread_mutex_unlock(&q->mu);
	return true;
}

/* Blocks while empty; NULL only when halted. */
static void *lockq_pop(struct lockq *q)
{
	void *item = NULL;

	pthread_mutex_lock(&q->mu);
	while (q->tail == q->head && !q->halt)
		pthread_cond_wait(&q->not_empty, &q->mu);
	if (!q->halt) {
		item = q->slots[q->head++ & q->mask];
		pthread_cond_signal(&q->not_full);
	}
	pthread_mutex_unlock(&q->mu);
	return item;
}

static void lockq_halt(struct lockq *q)
{
	pthread_mutex_lock(&q->mu);
	q->halt = true;
	pthread_cond_broadcast(&q->not_empty);
	pthread_cond_broadcast(&q->not_full);
	pthread_mutex_unlock(&q->mu);
}

/* ---- one run ---- */

struct rrun {
	/* set up once per row */
	enum impl impl;
	enum kind kind;
	bool pause;		/* retry policy: pause (true) or immediate (false) */
	int cpu[2];		/* producer / initiator, consumer / echo */
	struct rp_spsc *rp[2];	/* [0] A->B, [1] B->A (ping-pong) */
#ifdef RP_HAVE_CK
	struct ck_ring *ck[2];
	ck_ring_buffer_t *ckbuf[2];
#endif
	struct lockq lq;
	/* per run */
	uint64_t count;
	_Alignas(64) _Atomic unsigned ready;
	_Atomic bool halt;	/* read only on retry paths */
	_Alignas(64) uint64_t t0; /* written by the producer / initiator */
	_Alignas(64) uint64_t t1; /* written by the side that finishes last */
	uint64_t got;		/* items (round trips) verified */
	uint64_t bad_at;	/* sequence number where a wrong item came, 0: none */
	uintptr_t bad_item;
	int err;		/* a thread could not be pinned: -errno */
};

static inline bool halted(struct rrun *r)
{
	return atomic_load_explicit(&r->halt, memory_order_relaxed);
}

static void halt_run(struct rrun *r)
{
	atomic_store_explicit(&r->halt, true, memory_order_relaxed);
	if (r->impl == IMPL_LOCK)
		lockq_halt(&r->lq);
}

static void bad_item(struct rrun *r, uint64_t want, const void *got)
{
	r->bad_at = want;
	r->bad_item = (uintptr_t)got;
	halt_run(r);
}

static inline void retry(const struct rrun *r)
{
	if (r->pause)
		rp_bench_cpu_relax();
}

#define SEQ(i) ((void *)(uintptr_t)(i))

/* ours, one item per call */

static void ours_single_prod(struct rrun *r)
{
	struct rp_spsc *q = r->rp[0];
	const uint64_t n = r->count;

	for (uint64_t i = 1; i <= n; i++) {
		while (!rp_spsc_push(q, SEQ(i))) {
			if (halted(r))
				return;
			retry(r);
		}
	}
}

static void ours_single_cons(struct rrun *r)
{
	struct rp_spsc *q = r->rp[0];
	const uint64_t n = r->count;
	uint64_t i;

	for (i = 1; i <= n; i++) {
		void *p;

		while (!(p = rp_spsc_pop(q))) {
			if (halted(r))
				goto out;
			retry(r);
		}
		if (unlikely(p != SEQ(i))) {
			bad_item(r, i, p);
			goto out;
		}
	}
out:
	r->t1 = rp_bench_now_ns();
	r->got = i - 1;
}

/* ours, bursts of 32 */

static void ours_burst_prod(struct rrun *r)
{
	struct rp_spsc *q = r->rp[0];
	const uint64_t n = r->count; /* a multiple of BURST */
	void *items[BURST];

	for (uint64_t i = 1; i <= n; i += BURST) {
		unsigned done = 0;

		for (unsigned k = 0; k < BURST; k++)
			items[k] = SEQ(i + k);
		while (done < BURST) {
			unsigned d = rp_spsc_push_burst(q, items + done, BURST - done);

			if (!d) {
				if (halted(r))
					return;
				retry(r);
			}
			done += d;
		}
	}
}

static void ours_burst_cons(struct rrun *r)
{
	struct rp_spsc *q = r->rp[0];
	const uint64_t n = r->count;
	uint64_t next = 1;
	void *items[BURST];

	while (next <= n) {
		unsigned m = rp_spsc_pop_burst(q, items, BURST);

		if (!m) {
			if (halted(r))
				break;
			retry(r);
			continue;
		}
		for (unsigned k = 0; k < m; k++) {
			if (unlikely(items[k] != SEQ(next + k))) {
				bad_item(r, next + k, items[k]);
				goto out;
			}
		}
		next += m;
	}
out:
	r->t1 = rp_bench_now_ns();
	r->got = next - 1;
}

/* ours, ping-pong: A sends i and waits for it to come back. */

static void ours_ping(struct rrun *r)
{
	struct rp_spsc *ab = r->rp[0], *ba = r->rp[1];
	const uint64_t n = r->count;
	uint64_t i;

	for (i = 1; i <= n; i++) {
		void *p;

		while (!rp_spsc_push(ab, SEQ(i))) {
			if (halted(r))
				goto out;
			retry(r);
		}
		while (!(p = rp_spsc_pop(ba))) {
			if (halted(r))
				goto out;
			retry(r);
		}
		if (unlikely(p != SEQ(i))) {
			bad_item(r, i, p);
			goto out;
		}
	}
out:
	r->t1 = rp_bench_now_ns();
	r->got = i - 1;
}

static void ours_pong(struct rrun *r)
{
	struct rp_spsc *ab = r->rp[0], *ba = r->rp[1];
	const uint64_t n = r->count;

	for (uint64_t i = 1; i <= n; i++) {
		void *p;

		while (!(p = rp_spsc_pop(ab))) {
			if (halted(r))
				return;
			retry(r);
		}
		if (unlikely(p != SEQ(i))) {
			bad_item(r, i, p);
			return;
		}
		while (!rp_spsc_push(ba, p)) {
			if (halted(r))
				return;
			retry(r);
		}
	}
}

#ifdef RP_HAVE_CK
/* ck_ring: the same loops with ck_ring_enqueue_spsc / ck_ring_dequeue_spsc. */

static void ck_single_prod(struct rrun *r)
{
	struct ck_ring *ring = r->ck[0];
	ck_ring_buffer_t *buf = r->ckbuf[0];
	const uint64_t n = r->count;

	for (uint64_t i = 1; i <= n; i++) {
		while (!ck_ring_enqueue_spsc(ring, buf, SEQ(i))) {
			if (halted(r))
				return;
			retry(r);
		}
	}
}

static void ck_single_cons(struct rrun *r)
{
	struct ck_ring *ring = r->ck[0];
	ck_ring_buffer_t *buf = r->ckbuf[0];
	const uint64_t n = r->count;
	uint64_t i;

	for (i = 1; i <= n; i++) {
		void *p;

		while (!ck_ring_dequeue_spsc(ring, buf, &p)) {
			if (halted(r))
				goto out;
			retry(r);
		}
		if (unlikely(p != SEQ(i))) {
			bad_item(r, i, p);
			goto out;
		}
	}
out:
	r->t1 = rp_bench_now_ns();
	r->got = i - 1;
}

/* ck_ring has no burst calls for its SPSC ring: a burst is 32 single calls,
 * with the same "as many as fit / as many as there are" semantics as ours. */
static void ck_burst_prod(struct rrun *r)
{
	struct ck_ring *ring = r->ck[0];
	ck_ring_buffer_t *buf = r->ckbuf[0];
	const uint64_t n = r->count;

	for (uint64_t i = 1; i <= n; i += BURST) {
		for (unsigned k = 0; k < BURST; k++) {
			while (!ck_ring_enqueue_spsc(ring, buf, SEQ(i + k))) {
				if (halted(r))
					return;
				retry(r);
			}
		}
	}
}

static void ck_burst_cons(struct rrun *r)
{
	struct ck_ring *ring = r->ck[0];
	ck_ring_buffer_t *buf = r->ckbuf[0];
	const uint64_t n = r->count;
	uint64_t next = 1;
	void *items[BURST];

	while (next <= n) {
		unsigned m = 0;

		while (m < BURST && ck_ring_dequeue_spsc(ring, buf, &items[m]))
			m++;
		if (!m) {
			if (halted(r))
				break;
			retry(r);
			continue;
		}
		for (unsigned k = 0; k < m; k++) {
			if (unlikely(items[k] != SEQ(next + k))) {
				bad_item(r, next + k, items[k]);
				goto out;
			}
		}
		next += m;
	}
out:
	r->t1 = rp_bench_now_ns();
	r->got = next - 1;
}

static void ck_ping(struct rrun *r)
{
	struct ck_ring *ab = r->ck[0], *ba = r->ck[1];
	ck_ring_buffer_t *abuf = r->ckbuf[0], *bbuf = r->ckbuf[1];
	const uint64_t n = r->count;
	uint64_t i;

	for (i = 1; i <= n; i++) {
		void *p;

		while (!ck_ring_enqueue_spsc(ab, abuf, SEQ(i))) {
			if (halted(r))
				goto out;
			retry(r);
		}
		while (!ck_ring_dequeue_spsc(ba, bbuf, &p)) {
			if (halted(r))
				goto out;
			retry(r);
		}
		if (unlikely(p != SEQ(i))) {
			bad_item(r, i, p);
			goto out;
		}
	}
out:
	r->t1 = rp_bench_now_ns();
	r->got = i - 1;
}

static void ck_pong(struct rrun *r)
{
	struct ck_ring *ab = r->ck[0], *ba = r->ck[1];
	ck_ring_buffer_t *abuf = r->ckbuf[0], *bbuf = r->ckbuf[1];
	const uint64_t n = r->count;

	for (uint64_t i = 1; i <= n; i++) {
		void *p;

		while (!ck_ring_dequeue_spsc(ab, abuf, &p)) {
			if (halted(r))
				return;
			retry(r);
		}
		if (unlikely(p != SEQ(i))) {
			bad_item(r, i, p);
			return;
		}
		while (!ck_ring_enqueue_spsc(ba, bbuf, p)) {
			if (halted(r))
				return;
			retry(r);
		}
	}
}
#endif /* RP_HAVE_CK */

/* mutex + condvar: the queue blocks, so there is no retry loop. */

static void lock_single_prod(struct rrun *r)
{
	const uint64_t n = r->count;

	for (uint64_t i = 1; i <= n; i++)
		if (!lockq_push(&r->lq, SEQ(i)))
			return;
}

static void lock_single_cons(struct rrun *r)
{
	const uint64_t n = r->count;
	uint64_t i;

	for (i = 1; i <= n; i++) {
		void *p = lockq_pop(&r->lq);

		if (!p)
			break;
		if (unlikely(p != SEQ(i))) {
			bad_item(r, i, p);
			break;
		}
	}
	r->t1 = rp_bench_now_ns();
	r->got = i - 1;
}

typedef void (*side_fn)(struct rrun *r);

/* [impl][kind] = { producer or initiator, consumer or echo } */
static const side_fn side_fns[NIMPL][NKIND][2] = {
	[IMPL_OURS] = {
		[KIND_SINGLE] = { ours_single_prod, ours_single_cons },
		[KIND_BURST] = { ours_burst_prod, ours_burst_cons },
		[KIND_PINGPONG] = { ours_ping, ours_pong },
	},
#ifdef RP_HAVE_CK
	[IMPL_CK] = {
		[KIND_SINGLE] = { ck_single_prod, ck_single_cons },
		[KIND_BURST] = { ck_burst_prod, ck_burst_cons },
		[KIND_PINGPONG] = { ck_ping, ck_pong },
	},
#endif
	[IMPL_LOCK] = {
		[KIND_SINGLE] = { lock_single_prod, lock_single_cons },
	},
};

struct side_arg {
	struct rrun *r;
	int which; /* 0: producer / initiator, 1: consumer / echo */
};

static void *side_main(void *p)
{
	struct side_arg *a = p;
	struct rrun *r = a->r;
	int ret;

	ret = rp_bench_pin_self(r->cpu[a->which]);
	if (ret) {
		r->err = ret;
		halt_run(r);
		return NULL;
	}
	/* Both pinned and running before the clock starts. */
	atomic_fetch_add_explicit(&r->ready, 1, memory_order_acq_rel);
	while (atomic_load_explicit(&r->ready, memory_order_acquire) < 2) {
		if (halted(r))
			return NULL;
		rp_bench_cpu_relax();
	}
	if (a->which == 0)
		r->t0 = rp_bench_now_ns();
	side_fns[r->impl][r->kind][a->which](r);
	return NULL;
}

static const char *impl_name(enum impl impl)
{
	switch (impl) {
	case IMPL_OURS: return "rp_spsc";
	case IMPL_CK: return "ck_ring";
	default: return "mutex+condvar queue";
	}
}

/*
 * One run of @count items (round trips for ping-pong). Returns 0 with the
 * elapsed ns in @ns, or a negative errno after printing why (a thread could
 * not start or be pinned, an item came out wrong or missing).
 */
static void halt_cb(void *p)
{
	halt_run(p);
}

static int run_once(struct rrun *r, uint64_t count, uint64_t *ns)
{
	struct side_arg args[2] = { { r, 0 }, { r, 1 } };
	void *(*const fns[2])(void *) = { side_main, side_main };
	void *const argp[2] = { &args[0], &args[1] };
	char what[96];
	int ret;

	r->count = count;
	atomic_store(&r->ready, 0);
	atomic_store(&r->halt, false);
	r->t0 = r->t1 = 0;
	r->got = r->bad_at = 0;
	r->bad_item = 0;
	r->err = 0;
	if (r->impl == IMPL_LOCK) {
		r->lq.halt = false;
		r->lq.head = r->lq.tail = 0;
	}
	snprintf(what, sizeof(what), "ring: %s run of %llu items", impl_name(r->impl),
		 (unsigned long long)count);
	ret = rp_bench_run_pair(fns, argp, WATCHDOG_S, halt_cb, r, what);
	if (ret)
		return ret;
	if (r->err) {
		fprintf(stderr, "ring: could not pin a thread to cpu %d or %d: %s\n", r->cpu[0],
			r->cpu[1], strerror(-r->err));
		return r->err;
	}
	if (r->bad_at) {
		fprintf(stderr, "ring: %s delivered item %#llx where %llu was expected (run of %llu)\n",
			impl_name(r->impl), (unsigned long long)r->bad_item,
			(unsigned long long)r->bad_at, (unsigned long long)count);
		return -EBADMSG;
	}
	if (r->got != count) {
		fprintf(stderr, "ring: %s delivered %llu of %llu items\n", impl_name(r->impl),
			(unsigned long long)r->got, (unsigned long long)count);
		return -EBADMSG;
	}
	*ns = r->t1 > r->t0 ? r->t1 - r->t0 : 1;
	return 0;
}

/* Items per run for about @target_ns, grown from @start (a multiple of BURST). */
static int calibrate(struct rrun *r, uint64_t start, uint64_t target_ns, uint64_t *out)
{
	uint64_t n = start, t;
	int ret;

	for (;;) {
		ret = run_once(r, n, &t);
		if (ret)
			return ret;
		if (t >= target_ns / 8 || n >= (1ull << 36)) {
			double c = (double)n * (double)target_ns / (double)t;
			uint64_t k = (uint64_t)c / BURST * BURST;

			*out = k < BURST ? BURST : k;
			return 0;
		}
		/* aim at a quarter of the target, between 2x and 16x more */
		double f = (double)(target_ns / 4) / (double)(t ? t : 1);

		n *= f < 2.0 ? 2 : f > 16.0 ? 16 : (uint64_t)f;
	}
}

struct plan {
	unsigned runs;
	uint64_t target_ns;
};

/*
 * Calibrate both sides, then alternate their runs and report the medians:
 * Mops/s (higher is better) for throughput kinds, ns per round trip (lower
 * is better) for ping-pong.
 */
static int compare_row(const struct plan *pl, const char *name, struct rrun *ours,
		       struct rrun *base, uint64_t start_ours, uint64_t start_base,
		       const char *baseline_name)
{
	bool rt = ours->kind == KIND_PINGPONG;
	double so[RUNS_MAX], sb[RUNS_MAX];
	uint64_t n_o, n_b, t;
	struct rp_bench_stat3 o, b;
	int ret;

	ret = calibrate(ours, start_ours, pl->target_ns, &n_o);
	if (!ret)
		ret = calibrate(base, start_base, pl->target_ns, &n_b);
	for (unsigned i = 0; !ret && i < pl->runs; i++) {
		ret = run_once(ours, n_o, &t);
		so[i] = rt ? (double)t / (double)n_o : (double)n_o * 1e3 / (double)t;
		if (!ret)
			ret = run_once(base, n_b, &t);
		sb[i] = rt ? (double)t / (double)n_b : (double)n_b * 1e3 / (double)t;
	}
	if (ret) {
		fprintf(stderr, "ring: %s: stopped; the row is not reported\n", name);
		return ret;
	}
	o = rp_bench_summarize(so, pl->runs);
	b = rp_bench_summarize(sb, pl->runs);
	if (base->impl == IMPL_LOCK)
		/* Locks and signals on every item: it shows what the SPSC ring
		 * saves, but no tuned program moves items that way. */
		ret = rp_report_row_strawman(name, rt ? "ns" : "Mops/s", o.med, b.med, baseline_name,
					     !rt,
					     "the baseline takes a mutex and signals a condvar on every item, a design shown for scale, not a competitor");
	else
		ret = rp_report_row(name, rt ? "ns" : "Mops/s", o.med, b.med, baseline_name, !rt);
	if (ret)
		return ret;
	rp_report_note("%s: %llu %s per run (ringplane), %llu (%s), %u runs per side",
		       name, (unsigned long long)n_o, rt ? "round trips" : "items",
		       (unsigned long long)n_b, baseline_name, pl->runs);
	double so_iqr = (o.q3 - o.q1) / o.med, sb_iqr = (b.q3 - b.q1) / b.med;

	if (so_iqr > NOISY_IQR || sb_iqr > NOISY_IQR)
		rp_report_note("%s: noisy runs (interquartile range ringplane %.0f%%, baseline %.0f%% of median); rerun on a quiet host",
			       name, 100.0 * so_iqr, 100.0 * sb_iqr);
	return 0;
}

/* ---- set-up ---- */

static void rrun_fini(struct rrun *r)
{
	for (int i = 0; i < 2; i++) {
		rp_spsc_destroy(r->rp[i]);
		r->rp[i] = NULL;
#ifdef RP_HAVE_CK
		free(r->ck[i]);
		free(r->ckbuf[i]);
		r->ck[i] = NULL;
		r->ckbuf[i] = NULL;
#endif
	}
	lockq_fini(&r->lq);
}

static int rrun_init(struct rrun *r, enum impl impl, enum kind kind, bool pause,
		     const int cpu[2])
{
	int nrings = kind == KIND_PINGPONG ? 2 : 1;

	memset(r, 0, sizeof(*r));
	r->impl = impl;
	r->kind = kind;
	r->pause = pause;
	r->cpu[0] = cpu[0];
	r->cpu[1] = cpu[1];
	for (int i = 0; i < nrings; i++) {
		switch (impl) {
		case IMPL_OURS:
			r->rp[i] = rp_spsc_create(SLOTS);
			if (!r->rp[i])
				goto nomem;
			break;
#ifdef RP_HAVE_CK
		case IMPL_CK:
			/* Its own lines, like ours: c_head and p_tail are already
			 * a line apart inside struct ck_ring. */
			r->ck[i] = aligned_alloc(64, (sizeof(struct ck_ring) + 63) / 64 * 64);
			r->ckbuf[i] = aligned_alloc(64, SLOTS * sizeof(ck_ring_buffer_t));
			if (!r->ck[i] || !r->ckbuf[i])
				goto nomem;
			memset(r->ckbuf[i], 0, SLOTS * sizeof(ck_ring_buffer_t));
			ck_ring_init(r->ck[i], SLOTS);
			break;
#endif
		case IMPL_LOCK:
			if (lockq_init(&r->lq, SLOTS))
				goto nomem;
			break;
		default:
			return -EINVAL;
		}
	}
	return 0;
nomem:
	rrun_fini(r);
	fprintf(stderr, "ring: out of memory for the rings\n");
	return -ENOMEM;
}

/* One row: set up both sides, compare, tear down. */
static int row(const struct plan *pl, const char *name, enum kind kind, bool pause,
	       enum impl base_impl, const int cpu[2], uint64_t start_ours, uint64_t start_base,
	       const char *baseline_name)
{
	struct rrun *o = NULL, *b = NULL;
	int ret;

	/* aligned_alloc: struct rrun holds cache-line-aligned members */
	o = aligned_alloc(64, (sizeof(*o) + 63) / 64 * 64);
	b = aligned_alloc(64, (sizeof(*b) + 63) / 64 * 64);
	if (!o || !b) {
		free(o);
		free(b);
		fprintf(stderr, "ring: out of memory\n");
		return -ENOMEM;
	}
	ret = rrun_init(o, IMPL_OURS, kind, pause, cpu);
	if (ret)
		goto out_free;
	ret = rrun_init(b, base_impl, kind, pause, cpu);
	if (ret)
		goto out_o;
	ret = compare_row(pl, name, o, b, start_ours, start_base, baseline_name);
	rrun_fini(b);
out_o:
	rrun_fini(o);
out_free:
	free(o);
	free(b);
	return ret;
}

int rp_bench_suite_ring(const struct rp_bench_opts *opts)
{
	struct plan pl = {
		.runs = opts->quick ? RUNS_QUICK : RUNS_FULL,
		.target_ns = opts->quick ? RUN_NS_QUICK : RUN_NS_FULL,
	};
	int cpu[2] = { -1, -1 }, ret;

	ret = rp_bench_pick_cpus(cpu);
	if (ret) {
		rp_report_skip("ring", "needs two CPUs this process may run on (%d online)",
			       get_nprocs());
		return 0;
	}
	rp_report_note("producer pinned to cpu %d, consumer to cpu %d; %u-slot rings; runs of ~%.0f ms alternate ringplane/baseline, %u per side, median reported",
		       cpu[0], cpu[1], SLOTS, (double)pl.target_ns / 1e6, pl.runs);
	rp_report_note("retry on full/empty, identical for every queue: spin = retry at once, pause = %s first",
#if defined(__x86_64__)
		       "the pause instruction"
#else
		       "sched_yield()"
#endif
	);
	rp_report_note("every run checks each item against its sequence number and the count; a wrong run stops the suite");

#ifdef RP_HAVE_CK
	rp_report_note("ck_ring holds %u of its %u slots (one stays empty), rp_spsc all %u",
		       SLOTS - 1, SLOTS, SLOTS);
	ret = row(&pl, "spsc single (spin)", KIND_SINGLE, false, IMPL_CK, cpu, 1u << 14,
		  1u << 14, "ck_ring spsc");
	if (!ret)
		ret = row(&pl, "spsc single (pause)", KIND_SINGLE, true, IMPL_CK, cpu, 1u << 14,
			  1u << 14, "ck_ring spsc");
	if (!ret) {
		rp_report_note("burst-32: ck_ring has no burst calls for its SPSC ring, so its side is a loop of %u ck_ring_enqueue_spsc / ck_ring_dequeue_spsc calls; retry policy: pause",
			       BURST);
		ret = row(&pl, "spsc burst-32 (pause)", KIND_BURST, true, IMPL_CK, cpu, 1u << 14,
			  1u << 14, "ck_ring 32x single");
	}
#else
	rp_report_skip("spsc single/burst vs ck_ring",
		       "Concurrency Kit was not found at build time (libck-dev)");
#endif
	if (!ret)
		ret = row(&pl, "spsc single vs lock (pause)", KIND_SINGLE, true, IMPL_LOCK, cpu,
			  1u << 14, 1u << 10, "mutex+condvar queue");
#ifdef RP_HAVE_CK
	if (!ret) {
		rp_report_note("ping-pong: one item bounces over two rings (A->B, B->A), spin retry; a round trip is two one-way hand-offs");
		ret = row(&pl, "ping-pong round trip", KIND_PINGPONG, false, IMPL_CK, cpu,
			  1u << 10, 1u << 10, "ck_ring spsc");
	}
#else
	rp_report_skip("ping-pong vs ck_ring", "Concurrency Kit was not found at build time (libck-dev)");
#endif
	return ret;
}
