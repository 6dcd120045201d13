/* SPDX-License-Identifier: MIT */
/*
 * engine suite: what the shard loop costs on top of io_uring itself.
 *
 * Rows:
 *  - "nop batch B" (B = 1, 8, 32): NOPs per second through one shard. A run
 *    is a message (rp_runtime_submit) that starts B rp_nop ops whose
 *    callback starts another NOP until the run's count is reached, so B ops
 *    are in flight per loop iteration and the loop submits B per
 *    io_uring_submit_and_wait. Baseline: a thread with its own ring, set up
 *    with the flags the engine got (rp_runtime_ring_mode), SQ and CQ sized
 *    the same, that preps B NOPs, io_uring_submit_and_wait(ring, B), reaps
 *    them, and repeats: the least a program can do for the same work.
 *  - "msg round trip": shard 0 posts to shard 1 (rp_shard_post), shard 1
 *    posts back; ns per round trip. Each row compares like with like:
 *    "(spin)": the shards busy-poll (cfg.spin_ns) against one item bounced
 *    over two rp_spsc rings by two spinning threads, the floor of any
 *    cross-core hand-off. "(sleep) vs eventfd": the shards sleep (woken
 *    through MSG_RING or the eventfd) against two threads blocked in
 *    read(2) on eventfds, each woken by the other's write(2), the physical
 *    floor of a sleeping hand-off. "(sleep) vs MSG_RING": against two
 *    threads asleep in io_uring_submit_and_wait on rings set up as the
 *    engine's, woken by IORING_OP_MSG_RING from each other, the floor of
 *    the engine's own wake-up design. Baseline threads run on the shards'
 *    CPUs.
 *
 * Both sides run on the same CPU (the shard's): runs of a fixed count,
 * calibrated to ~20 ms quick / ~100 ms otherwise, alternate ringplane,
 * baseline, ringplane, ... and each side reports its median, so a noisy
 * stretch of this shared host lands on both. Every run is checked: each
 * CQE must carry res 0 and the ops (messages) completed must equal the
 * count exactly; a wrong run stops the suite.
 *
 * Timing is taken on the measuring thread itself (the shard, or the raw
 * thread) from the first submission to the last completion; the control
 * thread sleeps in poll() on an eventfd meanwhile, never on the shard's CPU.
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include <ringplane/engine.h>
#include <ringplane/spsc.h>

#include "bench.h"
#include "cleanup.h"

#include "uring_compat.h"

#define RUNS_QUICK 5u
#define RUNS_FULL 11u
#define RUNS_MAX RUNS_FULL
#define RUN_NS_QUICK 20000000ull
#define RUN_NS_FULL 100000000ull
/* A run not done by then lost a completion or never got a CPU: fail. */
#define WATCHDOG_MS 30000
/* Same threshold as bench/timing.c. */
#define NOISY_IQR 0.15
/* The engine's defaults (engine.h): SQ entries, CQ 4x. The raw ring copies them. */
#define RING_ENTRIES 256u
/* Busy-poll window for the spinning round-trip row: far above one round
 * trip, so a shard between two messages never goes to sleep. */
#define RT_SPIN_NS 200000ull
#define SLOTS 1024u

static const unsigned batches[] = { 1, 8, 32 };

/* ---- a side: one run of @count operations, elapsed ns out ---- */

struct side {
	const char *name;
	int (*run)(struct side *s, uint64_t count, uint64_t *ns);
	void *ctx;
	uint64_t start; /* first calibration count, a multiple of step */
	uint64_t step;	/* counts are rounded to multiples of it (the batch) */
};

/* ---- waiting for a run signalled through an eventfd ---- */

static int wait_efd(int efd, const char *what)
{
	struct pollfd p = { .fd = efd, .events = POLLIN };
	uint64_t v;
	int ret;

	do
		ret = poll(&p, 1, WATCHDOG_MS);
	while (ret < 0 && errno == EINTR);
	if (ret == 0) {
		fprintf(stderr, "engine: %s: run still going after %d ms\n", what, WATCHDOG_MS);
		return -ETIMEDOUT;
	}
	if (ret < 0)
		return -errno;
	if (read(efd, &v, sizeof(v)) != sizeof(v))
		return -EIO;
	return 0;
}

static void signal_efd(int efd)
{
	uint64_t one = 1;

	/* Best effort: an eventfd write fails only on counter overflow. */
	if (write(efd, &one, sizeof(one)) != sizeof(one))
		return;
}

/* ---- engine NOPs ---- */

struct eng_nop {
	struct rp_runtime *rt;
	int efd;
	unsigned batch;
	/* per run; touched only by the shard between submit and signal */
	uint64_t target, started, completed;
	uint64_t t0, t1;
	int err;      /* first bad CQE res or rp_nop failure (-errno) */
	bool done;
};

static void eng_nop_finish(struct eng_nop *e)
{
	if (e->done)
		return;
	e->done = true;
	e->t1 = rp_bench_now_ns();
	signal_efd(e->efd);
}

static void eng_nop_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct eng_nop *e = arg;

	e->completed++;
	if (c->res < 0 && !e->err)
		e->err = c->res;
	if (e->started < e->target && !e->err) {
		if (!rp_nop(sh, eng_nop_cb, e)) {
			e->err = -errno;
		} else {
			e->started++;
			return;
		}
	}
	if (e->completed == e->started)
		eng_nop_finish(e);
}

static void eng_nop_start(struct rp_shard *sh, void *arg)
{
	struct eng_nop *e = arg;

	e->t0 = rp_bench_now_ns();
	for (unsigned i = 0; i < e->batch && e->started < e->target; i++) {
		if (!rp_nop(sh, eng_nop_cb, e)) {
			e->err = -errno;
			break;
		}
		e->started++;
	}
	if (!e->started)
		eng_nop_finish(e);
}

static int eng_nop_run(struct side *s, uint64_t count, uint64_t *ns)
{
	struct eng_nop *e = s->ctx;
	int ret;

	e->target = count;
	e->started = e->completed = 0;
	e->t0 = e->t1 = 0;
	e->err = 0;
	e->done = false;
	ret = rp_runtime_submit(e->rt, 0, eng_nop_start, e);
	if (ret) {
		fprintf(stderr, "engine: rp_runtime_submit: %s\n", strerror(-ret));
		return ret;
	}
	/* The eventfd's read/write order the shard's stores before ours. */
	ret = wait_efd(e->efd, "engine nop");
	if (ret)
		return ret;
	if (e->err) {
		fprintf(stderr, "engine: nop batch %u: %s after %llu of %llu NOPs\n", e->batch,
			strerror(-e->err), (unsigned long long)e->completed,
			(unsigned long long)count);
		return e->err;
	}
	if (e->completed != count) {
		fprintf(stderr, "engine: nop batch %u: %llu of %llu NOPs completed\n", e->batch,
			(unsigned long long)e->completed, (unsigned long long)count);
		return -EBADMSG;
	}
	*ns = e->t1 > e->t0 ? e->t1 - e->t0 : 1;
	return 0;
}

/* ---- raw liburing NOPs ---- */

struct raw_nop {
	unsigned setup_flags;
	unsigned batch;
	int cpu;
	uint64_t count;
	uint64_t t0, t1, completed;
	int err;
	_Atomic bool halt; /* the watchdog gave up on this run */
};

static void *raw_nop_main(void *arg)
{
	struct raw_nop *r = arg;
	struct io_uring_params p;
	struct io_uring ring;
	struct io_uring_cqe *cqes[64];
	uint64_t done = 0;
	int ret;

	ret = rp_bench_pin_self(r->cpu);
	if (ret) {
		r->err = ret;
		return NULL;
	}
	/* Created on this thread, like a shard's: SINGLE_ISSUER binds it here. */
	memset(&p, 0, sizeof(p));
	p.flags = r->setup_flags | IORING_SETUP_CQSIZE;
	p.cq_entries = RING_ENTRIES * 4;
	ret = io_uring_queue_init_params(RING_ENTRIES, &ring, &p);
	if (ret) {
		r->err = ret;
		return NULL;
	}
	r->t0 = rp_bench_now_ns();
	while (done < r->count) {
		unsigned n = r->batch, got = 0;

		for (unsigned i = 0; i < n; i++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

			io_uring_prep_nop(sqe);
			io_uring_sqe_set_data64(sqe, done + i + 1);
		}
		ret = io_uring_submit_and_wait(&ring, n);
		if (ret < 0 && ret != -EINTR) {
			r->err = ret;
			break;
		}
		while (got < n) {
			unsigned k = io_uring_peek_batch_cqe(&ring, cqes, n - got);

			if (!k) {
				struct io_uring_cqe *cqe;

				ret = io_uring_wait_cqe(&ring, &cqe);
				if (ret < 0 && ret != -EINTR) {
					r->err = ret;
					goto out;
				}
				continue;
			}
			for (unsigned i = 0; i < k; i++)
				if (cqes[i]->res < 0 && !r->err)
					r->err = cqes[i]->res;
			io_uring_cq_advance(&ring, k);
			got += k;
		}
		done += got;
		if (r->err || atomic_load_explicit(&r->halt, memory_order_relaxed))
			break;
	}
out:
	r->t1 = rp_bench_now_ns();
	r->completed = done;
	io_uring_queue_exit(&ring);
	return NULL;
}

static int raw_nop_run(struct side *s, uint64_t count, uint64_t *ns)
{
	struct raw_nop *r = s->ctx;
	pthread_t th;
	int ret;

	r->count = count;
	r->completed = 0;
	r->err = 0;
	r->t0 = r->t1 = 0;
	atomic_store(&r->halt, false);
	ret = rp_cleanup_pthread_create(&th, NULL, raw_nop_main, r);
	if (ret) {
		fprintf(stderr, "engine: pthread_create: %s\n", strerror(ret));
		return -ret;
	}
	struct timespec dl;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += WATCHDOG_MS / 1000;
	if (pthread_timedjoin_np(th, NULL, &dl) == ETIMEDOUT) {
		fprintf(stderr, "engine: raw liburing nop batch %u still going after %d ms\n",
			r->batch, WATCHDOG_MS);
		atomic_store(&r->halt, true);
		pthread_join(th, NULL);
		return -ETIMEDOUT;
	}
	if (r->err) {
		fprintf(stderr, "engine: raw liburing nop batch %u: %s\n", r->batch,
			strerror(-r->err));
		return r->err;
	}
	if (r->completed != count) {
		fprintf(stderr, "engine: raw liburing nop batch %u: %llu of %llu NOPs\n", r->batch,
			(unsigned long long)r->completed, (unsigned long long)count);
		return -EBADMSG;
	}
	*ns = r->t1 > r->t0 ? r->t1 - r->t0 : 1;
	return 0;
}

/* The flags rp_runtime_ring_mode() names (engine/runtime.c's table). */
static int mode_flags(const char *mode, unsigned *flags)
{
	if (!strcmp(mode, "single_issuer|defer_taskrun"))
		*flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	else if (!strcmp(mode, "coop_taskrun"))
		*flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
	else if (!strcmp(mode, "plain"))
		*flags = 0;
	else
		return -EINVAL;
	return 0;
}

/* ---- cross-shard round trip ---- */

struct eng_rt {
	struct rp_runtime *rt;
	int efd;
	uint64_t target, done, seq_at_1; /* seq_at_1: shard 1's copy, checked by it */
	uint64_t t0, t1;
	int err;
};

static void rt_back(struct rp_shard *sh, void *arg);

/* On shard 1: the message must be the one shard 0 sent last; send it back. */
static void rt_there(struct rp_shard *sh, void *arg)
{
	struct eng_rt *e = arg;
	int ret;

	e->seq_at_1++;
	ret = rp_shard_post(sh, 0, rt_back, e);
	if (ret && !e->err) {
		/* Nothing comes back: shard 0 would wait forever, so report here. */
		e->err = ret;
		e->t1 = rp_bench_now_ns();
		signal_efd(e->efd);
	}
}

/* On shard 0: one round trip done; start the next or finish. */
static void rt_back(struct rp_shard *sh, void *arg)
{
	struct eng_rt *e = arg;
	int ret;

	e->done++;
	if (e->seq_at_1 != e->done && !e->err)
		e->err = -EBADMSG;
	if (e->done < e->target && !e->err) {
		ret = rp_shard_post(sh, 1, rt_there, e);
		if (!ret)
			return;
		e->err = ret;
	}
	e->t1 = rp_bench_now_ns();
	signal_efd(e->efd);
}

static void rt_start(struct rp_shard *sh, void *arg)
{
	struct eng_rt *e = arg;
	int ret;

	e->t0 = rp_bench_now_ns();
	ret = rp_shard_post(sh, 1, rt_there, e);
	if (ret) {
		e->err = ret;
		e->t1 = e->t0;
		signal_efd(e->efd);
	}
}

static int eng_rt_run(struct side *s, uint64_t count, uint64_t *ns)
{
	struct eng_rt *e = s->ctx;
	int ret;

	e->target = count;
	e->done = e->seq_at_1 = 0;
	e->t0 = e->t1 = 0;
	e->err = 0;
	ret = rp_runtime_submit(e->rt, 0, rt_start, e);
	if (ret) {
		fprintf(stderr, "engine: rp_runtime_submit: %s\n", strerror(-ret));
		return ret;
	}
	ret = wait_efd(e->efd, "cross-shard round trip");
	if (ret)
		return ret;
	if (e->err) {
		fprintf(stderr, "engine: cross-shard round trip: %s after %llu of %llu\n",
			e->err == -EBADMSG ? "messages out of step" : strerror(-e->err),
			(unsigned long long)e->done, (unsigned long long)count);
		return e->err;
	}
	if (e->done != count) {
		fprintf(stderr, "engine: cross-shard round trip: %llu of %llu\n",
			(unsigned long long)e->done, (unsigned long long)count);
		return -EBADMSG;
	}
	*ns = e->t1 > e->t0 ? e->t1 - e->t0 : 1;
	return 0;
}

/* ---- raw SPSC ping-pong, spinning ---- */

struct raw_pp {
	struct rp_spsc *ab, *ba;
	int cpu[2];
	uint64_t count;
	_Alignas(64) _Atomic unsigned ready;
	_Atomic bool halt;
	uint64_t t0, t1, got;
	uint64_t bad_at;
	int err;
};

#define SEQ(i) ((void *)(uintptr_t)(i))

static void *raw_pp_main(void *arg, int which)
{
	struct raw_pp *r = arg;
	int ret;

	ret = rp_bench_pin_self(r->cpu[which]);
	if (ret) {
		r->err = ret;
		atomic_store(&r->halt, true);
		return NULL;
	}
	atomic_fetch_add(&r->ready, 1);
	while (atomic_load(&r->ready) < 2)
		if (atomic_load_explicit(&r->halt, memory_order_relaxed))
			return NULL;
	if (which == 0) {
		uint64_t i;

		r->t0 = rp_bench_now_ns();
		for (i = 1; i <= r->count; i++) {
			void *p;

			while (!rp_spsc_push(r->ab, SEQ(i)))
				if (atomic_load_explicit(&r->halt, memory_order_relaxed))
					goto out;
			while (!(p = rp_spsc_pop(r->ba)))
				if (atomic_load_explicit(&r->halt, memory_order_relaxed))
					goto out;
			if (p != SEQ(i)) {
				r->bad_at = i;
				atomic_store(&r->halt, true);
				goto out;
			}
		}
out:
		r->t1 = rp_bench_now_ns();
		r->got = i - 1;
	} else {
		for (uint64_t i = 1; i <= r->count; i++) {
			void *p;

			while (!(p = rp_spsc_pop(r->ab)))
				if (atomic_load_explicit(&r->halt, memory_order_relaxed))
					return NULL;
			while (!rp_spsc_push(r->ba, p))
				if (atomic_load_explicit(&r->halt, memory_order_relaxed))
					return NULL;
		}
	}
	return NULL;
}

static void *raw_pp_ping(void *arg)
{
	return raw_pp_main(arg, 0);
}

static void *raw_pp_pong(void *arg)
{
	return raw_pp_main(arg, 1);
}

static void raw_pp_halt(void *p)
{
	struct raw_pp *r = p;

	atomic_store(&r->halt, true);
}

static int raw_pp_run(struct side *s, uint64_t count, uint64_t *ns)
{
	struct raw_pp *r = s->ctx;
	void *(*const fns[2])(void *) = { raw_pp_ping, raw_pp_pong };
	void *const argp[2] = { r, r };
	int ret;

	r->count = count;
	atomic_store(&r->ready, 0);
	atomic_store(&r->halt, false);
	r->t0 = r->t1 = r->got = r->bad_at = 0;
	r->err = 0;
	ret = rp_bench_run_pair(fns, argp, WATCHDOG_MS / 1000, raw_pp_halt, r,
				"engine: spsc ping-pong");
	if (ret)
		return ret;
	if (r->err) {
		fprintf(stderr, "engine: could not pin to cpu %d or %d: %s\n", r->cpu[0], r->cpu[1],
			strerror(-r->err));
		return r->err;
	}
	if (r->bad_at || r->got != count) {
		fprintf(stderr, "engine: spsc ping-pong: %llu of %llu round trips (bad at %llu)\n",
			(unsigned long long)r->got, (unsigned long long)count,
			(unsigned long long)r->bad_at);
		return -EBADMSG;
	}
	*ns = r->t1 > r->t0 ? r->t1 - r->t0 : 1;
	return 0;
}

/* ---- sleeping ping-pong baselines: blocking eventfds, MSG_RING between rings ----
 *
 * What a sleeping hand-off costs without the engine, on the shards' CPUs.
 * "eventfd": each thread blocks in read(2) on its own eventfd and the other
 * wakes it with write(2): two futex-free kernel wake-ups per round trip,
 * the physical floor of two sleeping threads. "MSG_RING": each thread
 * sleeps in io_uring_submit_and_wait(ring, 1) on its own ring, set up as
 * the engine's (rp_runtime_ring_mode's flags, same SQ/CQ sizes, created on
 * the thread that uses it), and the other posts the item to it with
 * IORING_OP_MSG_RING from its own ring, the sender's CQE skipped where the
 * kernel can (IOSQE_CQE_SKIP_SUCCESS): one syscall per hop, the floor of
 * the engine's own wake-up design.
 */

#define HALT_TAG UINT64_MAX

struct sleep_pp {
	bool ring;	      /* MSG_RING variant, else eventfds */
	unsigned setup_flags; /* ring variant: the engine's */
	int cpu[2];
	uint64_t count;
	int efd[2];	      /* eventfd variant: [0] wakes the pong side, [1] the ping side */
	_Atomic int ring_fd[2]; /* ring variant: each side's ring once set up, else -1 */
	_Atomic unsigned ready;
	_Atomic bool halt;
	uint64_t t0, t1, got, bad_at;
	bool skip_cqe;	      /* the sender's own CQE was skipped (IORING_FEAT_CQE_SKIP) */
	int err;	      /* first failure, -errno */
};

static void sleep_pp_fail(struct sleep_pp *s, int err)
{
	if (!s->err)
		s->err = err;
	atomic_store(&s->halt, true);
}

/* Both sides up (pinned, rings published) before the clock starts. */
static bool sleep_pp_rendezvous(struct sleep_pp *s)
{
	atomic_fetch_add(&s->ready, 1);
	while (atomic_load(&s->ready) < 2)
		if (atomic_load_explicit(&s->halt, memory_order_relaxed))
			return false;
	return true;
}

static void efd_side(struct sleep_pp *s, int which)
{
	int rd = s->efd[which == 0 ? 1 : 0], wr = s->efd[which == 0 ? 0 : 1];
	uint64_t i, v, one = 1;

	if (!sleep_pp_rendezvous(s))
		return;
	if (which == 0)
		s->t0 = rp_bench_now_ns();
	for (i = 1; i <= s->count; i++) {
		if (which == 0 && write(wr, &one, sizeof(one)) != sizeof(one))
			goto fail;
		if (read(rd, &v, sizeof(v)) != sizeof(v))
			goto fail;
		if (atomic_load_explicit(&s->halt, memory_order_relaxed))
			break;
		/* one write per hop: a counter above 1 is a hop counted twice */
		if (v != 1) {
			s->bad_at = i;
			sleep_pp_fail(s, -EBADMSG);
			break;
		}
		if (which == 1 && write(wr, &one, sizeof(one)) != sizeof(one))
			goto fail;
	}
	if (which == 0) {
		s->t1 = rp_bench_now_ns();
		s->got = i - 1;
	}
	return;
fail:
	sleep_pp_fail(s, -errno);
	if (which == 0)
		s->t1 = rp_bench_now_ns();
}

/* Wait for the next message on @ring; its tag in *tag. Own CQEs (only where
 * the kernel cannot skip them) are checked and passed over. */
static int ring_wait_msg(struct io_uring *ring, uint64_t *tag)
{
	for (;;) {
		struct io_uring_cqe *cqe;
		int ret = io_uring_submit_and_wait(ring, 1);

		if (ret < 0 && ret != -EINTR)
			return ret;
		while (!io_uring_peek_cqe(ring, &cqe)) {
			uint64_t ud = cqe->user_data;
			int res = cqe->res;

			io_uring_cqe_seen(ring, cqe);
			if (res < 0)
				return res; /* a failed MSG_RING of ours */
			if (ud) {
				*tag = ud;
				return 0;
			}
		}
	}
}

static void ring_post(struct io_uring *ring, int fd, uint64_t tag, bool skip)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring); /* never NULL: one op in flight */

	io_uring_prep_msg_ring(sqe, fd, 0, tag, 0);
	io_uring_sqe_set_data64(sqe, 0);
	if (skip)
		sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

static void ring_side(struct sleep_pp *s, int which)
{
	struct io_uring_params p;
	struct io_uring ring;
	uint64_t i, tag;
	int ret, peer;

	/* Created on this thread, like a shard's: SINGLE_ISSUER binds it here. */
	memset(&p, 0, sizeof(p));
	p.flags = s->setup_flags | IORING_SETUP_CQSIZE;
	p.cq_entries = RING_ENTRIES * 4;
	ret = io_uring_queue_init_params(RING_ENTRIES, &ring, &p);
	if (ret) {
		sleep_pp_fail(s, ret);
		return;
	}
	if (which == 0)
		s->skip_cqe = p.features & IORING_FEAT_CQE_SKIP;
	atomic_store(&s->ring_fd[which], ring.ring_fd);
	if (!sleep_pp_rendezvous(s))
		goto out;
	peer = atomic_load(&s->ring_fd[!which]);
	if (which == 0)
		s->t0 = rp_bench_now_ns();
	for (i = 1; i <= s->count; i++) {
		if (which == 0)
			ring_post(&ring, peer, i, p.features & IORING_FEAT_CQE_SKIP);
		ret = ring_wait_msg(&ring, &tag);
		if (ret) {
			sleep_pp_fail(s, ret);
			break;
		}
		if (tag == HALT_TAG)
			break;
		if (tag != i) {
			s->bad_at = i;
			sleep_pp_fail(s, -EBADMSG);
			break;
		}
		if (which == 1)
			ring_post(&ring, peer, i, p.features & IORING_FEAT_CQE_SKIP);
	}
	if (which == 0) {
		s->t1 = rp_bench_now_ns();
		s->got = i - 1;
	} else {
		io_uring_submit(&ring); /* the last reply */
	}
out:
	/* Stay until both are done: the peer may still post to this ring. */
	atomic_fetch_add(&s->ready, 1);
	while (atomic_load(&s->ready) < 4 && !atomic_load(&s->halt))
		sched_yield();
	atomic_store(&s->ring_fd[which], -1);
	io_uring_queue_exit(&ring);
}

static void *sleep_pp_main(void *arg, int which)
{
	struct sleep_pp *s = arg;
	int ret = rp_bench_pin_self(s->cpu[which]);

	if (ret) {
		sleep_pp_fail(s, ret);
		return NULL;
	}
	if (s->ring)
		ring_side(s, which);
	else
		efd_side(s, which);
	return NULL;
}

static void *sleep_pp_ping(void *arg)
{
	return sleep_pp_main(arg, 0);
}

static void *sleep_pp_pong(void *arg)
{
	return sleep_pp_main(arg, 1);
}

/* rp_bench_run_pair's halt: wake whichever side sleeps. */
static void sleep_pp_halt(void *arg)
{
	struct sleep_pp *s = arg;
	uint64_t one = 1;

	atomic_store(&s->halt, true);
	if (!s->ring) {
		for (int i = 0; i < 2; i++)
			if (write(s->efd[i], &one, sizeof(one)) != sizeof(one))
				fprintf(stderr, "engine: cannot wake a ping-pong thread: %s\n",
					strerror(errno));
		return;
	}
	struct io_uring r;

	if (io_uring_queue_init(4, &r, 0))
		return;
	for (int i = 0; i < 2; i++) {
		int fd = atomic_load(&s->ring_fd[i]);

		if (fd >= 0)
			io_uring_prep_msg_ring(io_uring_get_sqe(&r), fd, 0, HALT_TAG, 0);
	}
	io_uring_submit_and_wait(&r, io_uring_sq_ready(&r));
	io_uring_queue_exit(&r);
}

static int sleep_pp_run(struct side *sd, uint64_t count, uint64_t *ns)
{
	struct sleep_pp *s = sd->ctx;
	void *(*const fns[2])(void *) = { sleep_pp_ping, sleep_pp_pong };
	void *const argp[2] = { s, s };
	int ret;

	s->count = count;
	s->t0 = s->t1 = s->got = s->bad_at = 0;
	s->err = 0;
	atomic_store(&s->ready, 0);
	atomic_store(&s->halt, false);
	atomic_store(&s->ring_fd[0], -1);
	atomic_store(&s->ring_fd[1], -1);
	s->efd[0] = s->efd[1] = -1;
	if (!s->ring) {
		/* fresh counters every run: a halted run may leave one set */
		s->efd[0] = eventfd(0, EFD_CLOEXEC);
		s->efd[1] = eventfd(0, EFD_CLOEXEC);
		if (s->efd[0] < 0 || s->efd[1] < 0) {
			ret = -errno;
			fprintf(stderr, "engine: eventfd: %s\n", strerror(errno));
			goto out;
		}
	}
	ret = rp_bench_run_pair(fns, argp, WATCHDOG_MS / 1000, sleep_pp_halt, s, sd->name);
	if (ret)
		goto out;
	if (s->err) {
		fprintf(stderr, "engine: %s: %s after %llu of %llu round trips\n", sd->name,
			s->err == -EBADMSG ? "messages out of step" : strerror(-s->err),
			(unsigned long long)s->got, (unsigned long long)count);
		ret = s->err;
		goto out;
	}
	if (s->got != count) {
		fprintf(stderr, "engine: %s: %llu of %llu round trips\n", sd->name,
			(unsigned long long)s->got, (unsigned long long)count);
		ret = -EBADMSG;
		goto out;
	}
	*ns = s->t1 > s->t0 ? s->t1 - s->t0 : 1;
out:
	for (int i = 0; i < 2; i++)
		if (s->efd[i] >= 0)
			close(s->efd[i]);
	return ret;
}

/* ---- calibrate, alternate, report ---- */

struct plan {
	unsigned runs;
	uint64_t target_ns;
};

static int calibrate(struct side *s, uint64_t target_ns, uint64_t *out)
{
	uint64_t n = s->start, t;
	int ret;

	for (;;) {
		ret = s->run(s, n, &t);
		if (ret)
			return ret;
		if (t >= target_ns / 8 || n >= (1ull << 36)) {
			uint64_t k = (uint64_t)((double)n * (double)target_ns / (double)t);

			k = k / s->step * s->step;
			*out = k < s->step ? s->step : k;
			return 0;
		}
		double f = (double)(target_ns / 4) / (double)(t ? t : 1);

		n *= f < 2.0 ? 2 : f > 16.0 ? 16 : (uint64_t)f;
	}
}

/* @rt: report ns per operation (lower is better), else Mops/s. */
static int compare_row(const struct plan *pl, const char *name, bool rt, struct side *ours,
		       struct side *base, double *ratio_out)
{
	double so[RUNS_MAX], sb[RUNS_MAX];
	uint64_t n_o, n_b, t;
	struct rp_bench_stat3 o, b;
	int ret;

	ret = calibrate(ours, pl->target_ns, &n_o);
	if (!ret)
		ret = calibrate(base, pl->target_ns, &n_b);
	for (unsigned i = 0; !ret && i < pl->runs; i++) {
		ret = ours->run(ours, n_o, &t);
		so[i] = rt ? (double)t / (double)n_o : (double)n_o * 1e3 / (double)t;
		if (!ret)
			ret = base->run(base, n_b, &t);
		sb[i] = rt ? (double)t / (double)n_b : (double)n_b * 1e3 / (double)t;
	}
	if (ret) {
		fprintf(stderr, "engine: %s: stopped; the row is not reported\n", name);
		return ret;
	}
	o = rp_bench_summarize(so, pl->runs);
	b = rp_bench_summarize(sb, pl->runs);
	ret = rp_report_row(name, rt ? "ns" : "Mops/s", o.med, b.med, base->name, !rt);
	if (ret)
		return ret;
	if (ratio_out)
		*ratio_out = rt ? b.med / o.med : o.med / b.med;
	rp_report_note("%s: %llu %s per run (ringplane), %llu (%s), %u runs per side", name,
		       (unsigned long long)n_o, rt ? "round trips" : "NOPs",
		       (unsigned long long)n_b, base->name, pl->runs);
	double so_iqr = (o.q3 - o.q1) / o.med, sb_iqr = (b.q3 - b.q1) / b.med;

	if (so_iqr > NOISY_IQR || sb_iqr > NOISY_IQR)
		rp_report_note("%s: noisy runs (interquartile range ringplane %.0f%%, baseline %.0f%% of median); rerun on a quiet host",
			       name, 100.0 * so_iqr, 100.0 * sb_iqr);
	return 0;
}

/* A runtime of @shards shards on @cpus, its mode string copied to @mode. */
static int runtime_up(unsigned shards, const char *cpus, uint64_t spin_ns, struct rp_runtime **out)
{
	struct rp_runtime_config cfg = {
		.shards = shards,
		.cpus = cpus,
		.spin_ns = spin_ns,
	};
	cpu_set_t pinned, wide;
	sigset_t old;
	int ret;

	/*
	 * The placement plan only takes CPUs in the calling thread's affinity
	 * (affinity/topo.c, rp_topo_allowed), and main() pinned us to one CPU:
	 * widen it while the runtime is created, then pin back. Shard threads
	 * pin themselves to their own CPU.
	 */
	if (sched_getaffinity(0, sizeof(pinned), &pinned))
		return -errno;
	CPU_ZERO(&wide);
	for (int i = 0; i < CPU_SETSIZE; i++)
		CPU_SET(i, &wide);
	sched_setaffinity(0, sizeof(wide), &wide);
	ret = rp_runtime_create(&cfg, out);
	if (ret) {
		fprintf(stderr, "engine: rp_runtime_create (cpus %s): %s\n", cpus, strerror(-ret));
		goto out;
	}
	rp_cleanup_block(&old); /* its shard threads inherit the mask */
	ret = rp_runtime_start(*out);
	rp_cleanup_restore(&old);
	if (ret) {
		fprintf(stderr, "engine: rp_runtime_start: %s\n", strerror(-ret));
		rp_runtime_destroy(*out);
		*out = NULL;
	}
out:
	sched_setaffinity(0, sizeof(pinned), &pinned);
	return ret;
}

static int runtime_down(struct rp_runtime *rt)
{
	int ret;

	if (!rt)
		return 0;
	rp_runtime_stop(rt);
	ret = rp_runtime_wait(rt);
	rp_runtime_destroy(rt);
	if (ret)
		fprintf(stderr, "engine: the runtime stopped with %s\n", strerror(-ret));
	return ret;
}

static int nop_rows(const struct plan *pl, int cpu)
{
	struct rp_runtime *rt = NULL;
	struct eng_nop e = { 0 };
	struct raw_nop r = { 0 };
	char cpus[16], name[32];
	unsigned flags;
	int ret, efd;

	snprintf(cpus, sizeof(cpus), "%d", cpu);
	efd = eventfd(0, EFD_CLOEXEC);
	if (efd < 0) {
		fprintf(stderr, "engine: eventfd: %s\n", strerror(errno));
		return -errno;
	}
	ret = runtime_up(1, cpus, 0, &rt);
	if (ret)
		goto out;
	ret = mode_flags(rp_runtime_ring_mode(rt), &flags);
	if (ret) {
		fprintf(stderr, "engine: unknown ring mode \"%s\": cannot set up the same raw ring\n",
			rp_runtime_ring_mode(rt));
		goto out;
	}
	rp_report_note("nop: one shard on cpu %d (ring \"%s\", %u SQ / %u CQ entries); the raw liburing thread on the same cpu with the same setup flags and sizes",
		       cpu, rp_runtime_ring_mode(rt), RING_ENTRIES, RING_ENTRIES * 4);
	rp_report_note("nop batch B: B NOPs in flight, one io_uring_submit_and_wait per B on both sides; each callback (raw: each reaped CQE) is checked for res 0 and the count must be exact");
	e.rt = rt;
	e.efd = efd;
	r.setup_flags = flags;
	r.cpu = cpu;
	for (size_t i = 0; !ret && i < sizeof(batches) / sizeof(batches[0]); i++) {
		struct side ours = { "ringplane", eng_nop_run, &e, 0, 0 };
		struct side base = { "raw liburing loop", raw_nop_run, &r, 0, 0 };
		double ratio = 0;

		e.batch = r.batch = batches[i];
		ours.step = base.step = batches[i];
		ours.start = base.start = 1024u / batches[i] * batches[i];
		snprintf(name, sizeof(name), "nop batch %u", batches[i]);
		ret = compare_row(pl, name, false, &ours, &base, &ratio);
		if (!ret && batches[i] == 32)
			rp_report_note("nop batch 32: ringplane at %.2fx the raw loop (goal >= 0.80x)%s",
				       ratio, ratio >= 0.8 ? "" : ": BELOW GOAL");
	}
out:
	if (rt) {
		int r2 = runtime_down(rt);

		ret = ret ? ret : r2;
	}
	close(efd);
	return ret;
}

static int rt_rows(const struct plan *pl, const int cpu[2])
{
	struct raw_pp *pp = NULL;
	char cpus[32];
	int ret = 0, efd;

	snprintf(cpus, sizeof(cpus), "%d,%d", cpu[0] < cpu[1] ? cpu[0] : cpu[1],
		 cpu[0] < cpu[1] ? cpu[1] : cpu[0]);
	efd = eventfd(0, EFD_CLOEXEC);
	if (efd < 0) {
		fprintf(stderr, "engine: eventfd: %s\n", strerror(errno));
		return -errno;
	}
	pp = aligned_alloc(64, (sizeof(*pp) + 63) / 64 * 64);
	if (!pp) {
		ret = -ENOMEM;
		goto out;
	}
	memset(pp, 0, sizeof(*pp));
	pp->ab = rp_spsc_create(SLOTS);
	pp->ba = rp_spsc_create(SLOTS);
	if (!pp->ab || !pp->ba) {
		fprintf(stderr, "engine: out of memory for the rings\n");
		ret = -ENOMEM;
		goto out;
	}
	pp->cpu[0] = cpu[0] < cpu[1] ? cpu[0] : cpu[1];
	pp->cpu[1] = cpu[0] < cpu[1] ? cpu[1] : cpu[0];
	rp_report_note("msg round trip: shard 0 on cpu %d, shard 1 on cpu %d, rp_shard_post each way; every baseline runs its two threads on the same two cpus",
		       pp->cpu[0], pp->cpu[1]);
	for (int spin = 1; !ret && spin >= 0; spin--) {
		struct rp_runtime *rt = NULL;
		struct eng_rt e = { 0 };
		struct side ours = { "ringplane", eng_rt_run, &e, 1024, 1 };
		struct side base = { "rp_spsc ping-pong (spin)", raw_pp_run, pp, 1024, 1 };
		struct sleep_pp sp_efd = { .ring = false, .cpu = { pp->cpu[0], pp->cpu[1] } };
		struct sleep_pp sp_ring = { .ring = true, .cpu = { pp->cpu[0], pp->cpu[1] } };
		struct side b_efd = { "eventfd ping-pong (sleep)", sleep_pp_run, &sp_efd, 1024, 1 };
		struct side b_ring = { "MSG_RING ping-pong (sleep)", sleep_pp_run, &sp_ring, 1024, 1 };
		double ratio = 0;

		ret = runtime_up(2, cpus, spin ? RT_SPIN_NS : 0, &rt);
		if (ret)
			break;
		e.rt = rt;
		e.efd = efd;
		if (spin) {
			rp_report_note("msg round trip (spin): shards busy-poll for %llu us (cfg.spin_ns) before sleeping; baseline: two threads bouncing an item over two %u-slot rp_spsc rings, spinning",
				       (unsigned long long)(RT_SPIN_NS / 1000), SLOTS);
			ret = compare_row(pl, "msg round trip (spin)", true, &ours, &base, NULL);
			goto down;
		}
		rp_report_note("msg round trip (sleep): spin_ns 0, so each hand-off wakes a sleeping shard (%s); its baselines sleep too",
			       rp_engine_features(rt));
		rp_report_note("msg round trip (sleep) vs eventfd: two threads each blocked in read(2) on its own eventfd, woken by the other's write(2): the physical floor of a sleeping hand-off");
		struct rp_shard_stats st0[2], st1[2];
		bool have_st = !rp_runtime_stats(rt, 0, &st0[0]) && !rp_runtime_stats(rt, 1, &st1[0]);

		ret = compare_row(pl, "msg round trip (sleep) vs eventfd", true, &ours, &b_efd, &ratio);
		if (ret)
			goto down;
		rp_report_note("msg round trip (sleep) vs eventfd: ringplane takes %.2fx the eventfd pair's time (wake-up goal: <= 1.20x)%s",
			       1.0 / ratio, 1.0 / ratio <= 1.2 ? "" : ": ABOVE GOAL");
		if (!strstr(rp_engine_features(rt), "msg_ring=yes")) {
			rp_report_skip("msg round trip (sleep) vs MSG_RING",
				       "this kernel has no IORING_OP_MSG_RING (%s)", rp_engine_features(rt));
			goto down;
		}
		ret = mode_flags(rp_runtime_ring_mode(rt), &sp_ring.setup_flags);
		if (ret) {
			fprintf(stderr, "engine: unknown ring mode \"%s\": cannot set up the same raw rings\n",
				rp_runtime_ring_mode(rt));
			goto down;
		}
		ret = compare_row(pl, "msg round trip (sleep) vs MSG_RING", true, &ours, &b_ring,
				  &ratio);
		/* Were the shards really asleep at each hand-off? A wake CQE per
		 * message says so; fewer means some hops found the shard awake. */
		if (!ret && have_st && !rp_runtime_stats(rt, 0, &st0[1]) &&
		    !rp_runtime_stats(rt, 1, &st1[1]) && st1[1].msgs_in > st1[0].msgs_in &&
		    st0[1].msgs_in > st0[0].msgs_in)
			rp_report_note("msg round trip (sleep): wake CQEs per message received over both rows: shard 0 %.2f, shard 1 %.2f",
				       (double)(st0[1].wakeups - st0[0].wakeups) /
					       (double)(st0[1].msgs_in - st0[0].msgs_in),
				       (double)(st1[1].wakeups - st1[0].wakeups) /
					       (double)(st1[1].msgs_in - st1[0].msgs_in));
		if (!ret)
			rp_report_note("msg round trip (sleep) vs MSG_RING: two threads each asleep in io_uring_submit_and_wait(ring, 1) on its own ring (\"%s\", %u SQ / %u CQ entries, created on its thread, as a shard's), woken by IORING_OP_MSG_RING from the other's ring%s: the floor of the engine's wake-up design; ringplane takes %.2fx its time",
				       rp_runtime_ring_mode(rt), RING_ENTRIES, RING_ENTRIES * 4,
				       sp_ring.skip_cqe ? ", the sender's CQE skipped (IOSQE_CQE_SKIP_SUCCESS)" : ", the sender's own CQE reaped too (no IORING_FEAT_CQE_SKIP)",
				       1.0 / ratio);
down:;
		int r2 = runtime_down(rt);

		ret = ret ? ret : r2;
	}
out:
	if (pp) {
		rp_spsc_destroy(pp->ab);
		rp_spsc_destroy(pp->ba);
		free(pp);
	}
	close(efd);
	return ret;
}

int rp_bench_suite_engine(const struct rp_bench_opts *opts)
{
	struct plan pl = {
		.runs = opts->quick ? RUNS_QUICK : RUNS_FULL,
		.target_ns = opts->quick ? RUN_NS_QUICK : RUN_NS_FULL,
	};
	int cpu[2] = { -1, -1 }, ret;

	rp_report_note("runs of ~%.0f ms alternate ringplane/baseline, %u per side, median reported",
		       (double)pl.target_ns / 1e6, pl.runs);
	if (rp_bench_pick_cpus(cpu)) {
		cpu[0] = sched_getcpu();
		cpu[1] = -1;
	}
	/* The shard (and the raw thread) on the other CPU: this thread only
	 * waits, but must not share the CPU being measured. */
	ret = nop_rows(&pl, cpu[1] >= 0 ? cpu[1] : cpu[0]);
	if (ret)
		return ret;
	if (cpu[1] < 0) {
		rp_report_skip("msg round trip", "needs two CPUs this process may run on (%d online)",
			       get_nprocs());
		return 0;
	}
	return rt_rows(&pl, cpu);
}
