/* SPDX-License-Identifier: MIT */
/*
 * rp_timer_rearm: a reserved timer moved while armed. Each case proves the
 * callback runs once, at the new time (or, where the old time came first,
 * at the old one), on a real ring:
 *   moved_earlier / moved_later   in the kernel: one TIMEOUT_UPDATE
 *                                 (later: 200 ms moved to 1 s)
 *   moved_before_sent             its SQE still in the SQ: no SQE more
 *   moved_many_times              100 moves in one callback: one SQE
 *   moved_from_its_callback       armed by the move, moved again
 *   moved_after_it_fired          the old time came first: one callback
 *   moved_with_sq_full            the update finds no SQE (a flush that
 *                                 gives up): sent by the loop's next turn;
 *                                 freed, or the shard stopped, meanwhile
 *   moved_at_stop                 -ESHUTDOWN, the callback -ECANCELED once
 *   moved_after_2g_sqes           its SQE sent more than 2^31 SQEs ago (the
 *                                 shard's SQ count set forward): one update
 *   moved_then_freed_by_its_end   its -ETIME reaped after the move, before
 *                                 the update's submit: the callback frees it
 *                                 and the pool hands the op out again; the
 *                                 update reads its time from the shard
 *   (re)armed_behind_pending_link armed while an rp_link_next waits for its
 *                                 op: the timer is not the link's tail
 *   *_behind_dangling_link        no op after the link: dropped at the
 *                                 loop's turn (a timer goes, a message
 *                                 wakes the shard)
 * Built with the engine's test hooks (flush_fail), as test_engine_faults.
 */
#include "engine_test.h"

#include "submit.h" /* struct rp_engine_test_hooks */

#define HOOK_SET(name, v) atomic_store(&rp_engine_test_hooks.name, (v))

enum tcase {
	C_EARLIER,
	C_LATER,
	C_UNSENT,
	C_MANY,
	C_CALLBACK,
	C_FIRED,
	C_SQ_FULL,
	C_SQ_FULL_FREE,
	C_SQ_FULL_STOP,
	C_STOP,
	C_WRAP,
	C_FREED,
};

static struct {
	enum tcase kase;
	struct rp_runtime *rt;
	struct rp_timer *t;
	atomic_int fired, done, stopped;
	int res[4];	      /* c->res of each callback */
	double fire_s[4];     /* now_s() at each */
	double move_s;	      /* now_s() at the move */
	int move_rc, stop_rc; /* rp_timer_rearm's return: the move, in on_stop */
	uint64_t sqes;	      /* ops_submitted across the moves */
	uint64_t fail_delta;  /* sq_full_fail across the move */
	unsigned nops, inflight_before, inflight_after;
	bool armed_after;
	/* C_FREED, seen by the callback after rp_timer_free and the reuse */
	struct rp_timer *t2;	  /* the next timer: the freed op again */
	bool upd_unsent;	  /* the update's SQE not yet published */
	bool upd_in_op;		  /* ... pointing into the freed (reused) op */
	struct __kernel_timespec upd_ts; /* what it points at, after the reuse */
} tm;

static void tm_fired(struct rp_shard *sh, void *arg, const struct rp_cqe *c);

static uint64_t submitted(struct rp_shard *sh)
{
	struct rp_shard_stats st;

	rp_shard_stats(sh, &st);
	return st.ops_submitted;
}

static uint64_t full_fails(struct rp_shard *sh)
{
	struct rp_shard_stats st;

	rp_shard_stats(sh, &st);
	return st.sq_full_fail;
}

static uint64_t full_flushes(struct rp_shard *sh)
{
	struct rp_shard_stats st;

	rp_shard_stats(sh, &st);
	return st.sq_full;
}

/* C_FREED, from the timer's callback: the update SQE still in the SQ
 * (taken, not published), or NULL. */
static struct io_uring_sqe *unsent_update(struct rp_shard *sh)
{
	struct io_uring_sq *sq = &sh->ring.sq;

	for (unsigned i = sq->sqe_head; i != sq->sqe_tail; i++) {
		struct io_uring_sqe *sqe = &sq->sqes[i & sq->ring_mask];

		if (sqe->opcode == IORING_OP_TIMEOUT_REMOVE && sqe->user_data == UD_TIMER_UPDATE)
			return sqe;
	}
	return NULL;
}

/* C_FREED: the timer's end, after the move and before its update went.
 * Freed, its op taken by the next rp_timer_new (the pool's last freed
 * object of the class), whose new owner writes over the bytes where the
 * old one kept its time (all ones: a time the kernel refuses, -EINVAL). */
static void freed_end(struct rp_shard *sh)
{
	struct io_uring_sqe *sqe = unsent_update(sh);
	struct rp_op *old = (struct rp_op *)tm.t, *op;

	tm.upd_unsent = sqe != NULL;
	rp_timer_free(sh, tm.t);
	tm.t = NULL;
	tm.t2 = rp_timer_new(sh);
	CHECK(tm.t2 != NULL);
	op = (struct rp_op *)tm.t2;
	CHECK(op == old); /* else this case proves nothing about reuse */
	memset(&op->lts, 0xff, sizeof(op->lts));
	if (sqe) {
		uintptr_t a = (uintptr_t)sqe->addr2;

		tm.upd_in_op = a >= (uintptr_t)op && a < (uintptr_t)(op + 1);
		memcpy(&tm.upd_ts, (const void *)a, sizeof(tm.upd_ts));
	}
}

static void nop_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	CHECK_EQ(c->res, 0);
}

/* Fill the SQ while every flush gives up: the next SQE finds no room. */
static void fill_sq(struct rp_shard *sh)
{
	HOOK_SET(flush_fail, 1);
	for (unsigned i = 0; i < 64 && rp_nop(sh, nop_cb, NULL); i++)
		tm.nops++;
	CHECK_EQ(errno, EBUSY); /* stopped by a full SQ, not by the bound */
}

static int move(struct rp_shard *sh, uint64_t ns)
{
	tm.move_s = now_s();
	return rp_timer_rearm(sh, tm.t, ns, tm_fired, NULL);
}

/* After the submit that sent the timer (a nop's callback runs after it):
 * the timer is in the kernel. */
static void sent_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	uint64_t s0 = submitted(sh), f0;

	(void)arg;
	CHECK_EQ(c->res, 0);
	CHECK(rp_timer_armed(tm.t));
	switch (tm.kase) {
	case C_EARLIER:
		tm.move_rc = move(sh, 20 * MS);
		break;
	case C_LATER:
		tm.move_rc = move(sh, 1000 * MS);
		break;
	case C_MANY:
		for (unsigned i = 0; i < 99; i++)
			CHECK_EQ(move(sh, (i & 1) ? 10 * MS : 60000 * MS), 0);
		tm.move_rc = move(sh, 40 * MS);
		break;
	case C_FIRED:
		sleep_ms(20); /* its 1 ms passed: the kernel ended it, unreaped */
		/* far: a callback at the moved time would come 60 s on, past
		 * any wait of this test, so that no stall of the shard (ASan,
		 * a loaded host) can pass for it */
		tm.move_rc = move(sh, 60000 * MS);
		break;
	case C_SQ_FULL:
	case C_SQ_FULL_FREE:
	case C_SQ_FULL_STOP:
		fill_sq(sh);
		s0 = submitted(sh);
		f0 = full_fails(sh);
		tm.move_rc = move(sh, tm.kase == C_SQ_FULL ? 20 * MS : 30000 * MS);
		tm.fail_delta = full_fails(sh) - f0;
		tm.armed_after = rp_timer_armed(tm.t);
		if (tm.kase == C_SQ_FULL_FREE) {
			tm.inflight_before = rp_shard_inflight(sh);
			rp_timer_free(sh, tm.t);
			tm.t = NULL;
			tm.inflight_after = rp_shard_inflight(sh);
		}
		if (tm.kase == C_SQ_FULL_STOP)
			rp_runtime_stop(rp_shard_runtime(sh)); /* same turn: the move owed */
		HOOK_SET(flush_fail, 0);
		if (tm.kase != C_SQ_FULL)
			atomic_store(&tm.done, 1);
		break;
	case C_STOP:
		tm.move_rc = move(sh, 30000 * MS); /* moved in the kernel, then stopped */
		atomic_store(&tm.done, 1);
		break;
	case C_FREED:
		/* Its 1 ms passed; its -ETIME (task work on this ring) posted
		 * and moved aside by a flush (as on a CQ overflow), so that it
		 * is dispatched after this callback, before the loop's next
		 * submit. Under load it may instead be in this batch already,
		 * after this nop's: the same order. */
		sleep_ms(20);
		(void)io_uring_get_events(&sh->ring);
		f0 = full_flushes(sh);
		HOOK_SET(flush_stash, 1);
		for (unsigned i = 0; i < 16 && full_flushes(sh) == f0; i++)
			CHECK(rp_nop(sh, nop_cb, NULL) != NULL);
		HOOK_SET(flush_stash, 0);
		CHECK(full_flushes(sh) > f0);
		s0 = submitted(sh);
		tm.move_rc = move(sh, 200 * MS); /* in the kernel: an update SQE */
		break;
	case C_WRAP: {
		struct rp_op *op = (struct rp_op *)tm.t;

		/* As if 2^31 + 1 SQEs more had been sent since the timer's:
		 * the shard's count 2^32 on (liburing's 32-bit positions come
		 * back to what they are now), the timer's SQE 2^31 - 1 on
		 * from where it was. A 32-bit (int32_t)(pos - sqe_head) took
		 * it for unsent and only rewrote its time: no SQE, the
		 * callback at the old 60 s. */
		sh->sq_tail64 += 1ull << 32;
		op->u.tm.pos += (1ull << 31) - 1;
		s0 = submitted(sh);
		tm.move_rc = move(sh, 20 * MS);
		break;
	}
	default:
		break;
	}
	tm.sqes = submitted(sh) - s0;
}

static void tm_fired(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	int n = atomic_load(&tm.fired);

	(void)arg;
	if (n < 4) {
		tm.res[n] = c->res;
		tm.fire_s[n] = now_s();
	}
	CHECK(!rp_timer_armed(tm.t));
	if (tm.kase == C_FREED)
		freed_end(sh);
	if (tm.kase == C_CALLBACK && n == 0) {
		/* not armed: the move arms it; moved again before it is sent */
		CHECK_EQ(move(sh, 10 * MS), 0);
		CHECK(rp_timer_armed(tm.t));
		tm.sqes = submitted(sh);
		tm.move_rc = move(sh, 50 * MS);
		tm.sqes = submitted(sh) - tm.sqes;
	}
	atomic_store(&tm.fired, n + 1);
}

static int tm_init(struct rp_shard *sh, void *arg)
{
	uint64_t s0;

	(void)arg;
	tm.t = rp_timer_new(sh);
	CHECK(tm.t != NULL);
	switch (tm.kase) {
	case C_UNSENT:
		CHECK_EQ(rp_timer_arm(sh, tm.t, 60000 * MS, tm_fired, NULL), 0);
		s0 = submitted(sh);
		tm.move_rc = move(sh, 30 * MS); /* its SQE is still in the SQ */
		tm.sqes = submitted(sh) - s0;
		break;
	case C_CALLBACK:
		CHECK_EQ(rp_timer_rearm(sh, tm.t, 5 * MS, tm_fired, NULL), 0); /* arms it */
		break;
	default: {
		/* C_LATER: 200 ms, so that a stall of the shard thread
		 * between the arm and sent_cb (2 shared vCPUs, TSan) does not
		 * let the old time pass before the move */
		uint64_t ns = tm.kase == C_LATER			  ? 200 * MS
			      : tm.kase == C_FIRED || tm.kase == C_FREED ? 1 * MS
									 : 60000 * MS;

		CHECK_EQ(rp_timer_arm(sh, tm.t, ns, tm_fired, NULL), 0);
		CHECK(rp_nop(sh, sent_cb, NULL) != NULL);
		break;
	}
	}
	return 0;
}

static void tm_stop(struct rp_shard *sh, void *arg)
{
	(void)arg;
	if (tm.t && rp_timer_armed(tm.t))
		tm.stop_rc = rp_timer_rearm(sh, tm.t, 1 * MS, tm_fired, NULL);
}

static void tm_fini(struct rp_shard *sh, void *arg)
{
	(void)arg;
	CHECK(!tm.t || !rp_timer_armed(tm.t));
	rp_timer_free(sh, tm.t);
	rp_timer_free(sh, tm.t2);
	tm.t = tm.t2 = NULL;
}

/* Run @kase until @fires callbacks came (or done was set), then a little
 * more (@settle_ms: a second callback would come by then), then stop. */
static void run(enum tcase kase, int fires, unsigned settle_ms, struct rp_shard_stats *st)
{
	struct rp_runtime_config cfg = base_cfg(1);
	bool ok;

	memset(&tm, 0, sizeof(tm));
	tm.kase = kase;
	cfg.ring_entries = 8; /* fill_sq fills it in a few nops */
	cfg.init = tm_init;
	cfg.on_stop = tm_stop;
	cfg.fini = tm_fini;
	tm.rt = rt_start(&cfg);
	ok = fires ? wait_for(&tm.fired, fires, WAIT_S) : wait_for(&tm.done, 1, WAIT_S);
	sleep_ms(settle_ms);
	rt_end_stats(tm.rt, st);
	if (!ok)
		print_message("# case %d: %d callbacks, done %d\n", kase, atomic_load(&tm.fired),
			      atomic_load(&tm.done));
	assert_true(ok);
	assert_int_equal(st->stuck_ops, 0);
}

/* Run @kase, which moves the timer once (move_rc 0) and sees @n callbacks
 * all -ETIME; the seconds from the move to callback @n - 1. */
static double moved_fired(int kase, int n, unsigned ms)
{
	struct rp_shard_stats st;

	run(kase, n, ms, &st);
	assert_int_equal(tm.move_rc, 0);
	assert_int_equal(atomic_load(&tm.fired), n);
	for (int i = 0; i < n; i++)
		assert_int_equal(tm.res[i], -ETIME);
	return tm.fire_s[n - 1] - tm.move_s;
}

static void test_moved_earlier(void **state)
{
	double at;

	(void)state;
	at = moved_fired(C_EARLIER, 1, 50);
	print_message("# 60 s timer moved to 20 ms: fired %.1f ms after the move, 1 SQE\n",
		      at * 1e3);
	assert_int_equal(tm.sqes, 1); /* the update */
	assert_true(at >= 0.0195 && at < 2.0);
}

static void test_moved_later(void **state)
{
	double at;

	(void)state;
	at = moved_fired(C_LATER, 1, 100);
	print_message("# 200 ms timer moved to 1 s: fired %.1f ms after the move\n", at * 1e3);
	assert_int_equal(tm.sqes, 1);
	assert_true(at >= 0.9995 && at < 3.5); /* not at 200 ms */
}

static void test_moved_before_sent(void **state)
{
	double at;

	(void)state;
	at = moved_fired(C_UNSENT, 1, 50);
	print_message("# moved before its SQE was sent: fired %.1f ms after, %llu SQEs more\n",
		      at * 1e3, (unsigned long long)tm.sqes);
	assert_int_equal(tm.sqes, 0);
	assert_true(at >= 0.0295 && at < 2.0);
}

static void test_moved_many_times(void **state)
{
	double at;

	(void)state;
	at = moved_fired(C_MANY, 1, 50);
	print_message("# 100 moves in one callback: %llu SQE, fired %.1f ms after the last\n",
		      (unsigned long long)tm.sqes, at * 1e3);
	assert_int_equal(tm.sqes, 1); /* the first update; the rest changed its time */
	assert_true(at >= 0.0395 && at < 2.0); /* the last time, not 10 ms */
}

static void test_moved_from_its_callback(void **state)
{
	double at;

	(void)state;
	at = moved_fired(C_CALLBACK, 2, 100);
	print_message("# armed by a move in its callback, moved to 50 ms: fired %.1f ms after\n",
		      at * 1e3);
	assert_int_equal(tm.sqes, 0); /* the arm's SQE was still in the SQ */
	assert_true(at >= 0.0495 && at < 2.0);
}

/*
 * Its 1 ms passed in the kernel before the move to 60 s: the update finds
 * no timer (-ENOENT) and the callback runs once, for the old time. Told
 * apart by events, not by how soon it came: a callback at the moved time
 * would come 60 s on (the wait for it, WAIT_S, fails first), and a second
 * arming, in the kernel or owed, is ended by the stop's cancel
 * (-ECANCELED: two callbacks). The stop ends the shard only once its
 * update's token was reaped too, so no settling wait is needed.
 */
static void test_moved_after_it_fired(void **state)
{
	int updates0 = atomic_load(&rp_engine_test_hooks.timer_updates);
	double at;

	(void)state;
	atomic_store(&rp_engine_test_hooks.timer_update_res, 1);
	at = moved_fired(C_FIRED, 1, 0);
	print_message("# moved after its 1 ms passed: one callback, %.1f ms after the move, "
		      "%llu SQE, the update's result %d\n",
		      at * 1e3, (unsigned long long)tm.sqes,
		      atomic_load(&rp_engine_test_hooks.timer_update_res));
	assert_int_equal(tm.sqes, 1); /* the update: the timer was in the kernel */
	assert_int_equal(atomic_load(&rp_engine_test_hooks.timer_updates), updates0 + 1);
	/* the kernel had ended it: nothing was moved */
	assert_int_equal(atomic_load(&rp_engine_test_hooks.timer_update_res), -ENOENT);
	assert_true(at < 30.0); /* the old time, not the moved 60 s */
}

static void test_moved_with_sq_full(void **state)
{
	double at;

	(void)state;
	at = moved_fired(C_SQ_FULL, 1, 50);
	print_message("# %u nops filled the SQ; move %d, sq_full_fail +%llu; fired %.1f ms after\n",
		      tm.nops, tm.move_rc, (unsigned long long)tm.fail_delta, at * 1e3);
	assert_true(tm.nops >= 1);
	assert_int_equal(tm.fail_delta, 1);
	assert_true(tm.armed_after);
	assert_true(at >= 0.0195 && at < 2.0); /* not the old 60 s */
}

static void test_moved_with_sq_full_then_freed(void **state)
{
	struct rp_shard_stats st;
	double t0 = now_s();

	(void)state;
	run(C_SQ_FULL_FREE, 0, 50, &st);
	assert_int_equal(tm.move_rc, 0);
	assert_int_equal(tm.fail_delta, 1);
	/* its op counted live until the cancel's CQE; the callback never runs */
	assert_int_equal(tm.inflight_after, tm.inflight_before);
	assert_int_equal(atomic_load(&tm.fired), 0);
	assert_true(now_s() - t0 < 5.0); /* the 60 s timer did not hold the stop */
}

static void test_moved_with_sq_full_then_stopped(void **state)
{
	struct rp_shard_stats st;

	(void)state;
	run(C_SQ_FULL_STOP, 1, 0, &st);
	assert_int_equal(tm.move_rc, 0);
	assert_int_equal(tm.fail_delta, 1);
	assert_int_equal(atomic_load(&tm.fired), 1);
	assert_int_equal(tm.res[0], -ECANCELED);
}

static void test_moved_at_stop(void **state)
{
	struct rp_shard_stats st;
	double t0 = now_s();

	(void)state;
	run(C_STOP, 0, 20, &st);
	assert_int_equal(tm.move_rc, 0);
	assert_int_equal(tm.stop_rc, -ESHUTDOWN);
	assert_int_equal(atomic_load(&tm.fired), 1);
	assert_int_equal(tm.res[0], -ECANCELED);
	assert_true(now_s() - t0 < 5.0);
}

static void test_moved_after_2g_sqes(void **state)
{
	double at;

	(void)state;
	at = moved_fired(C_WRAP, 1, 50);
	print_message("# sent 2^31 + 1 SQEs before the move: %llu SQE, fired %.1f ms after\n",
		      (unsigned long long)tm.sqes, at * 1e3);
	assert_int_equal(tm.sqes, 1); /* the update, not only op->lts rewritten */
	assert_true(at >= 0.0195 && at < 2.0);
}

static void test_moved_then_freed_by_its_end(void **state)
{
	struct rp_shard_stats st;
	int updates0 = atomic_load(&rp_engine_test_hooks.timer_updates), res;

	(void)state;
	atomic_store(&rp_engine_test_hooks.timer_update_res, 1);
	run(C_FREED, 1, 50, &st);
	res = atomic_load(&rp_engine_test_hooks.timer_update_res);
	print_message("# moved, then freed by its own end before the update went: update SQE %s, "
		      "reads %lld.%09lld s%s; its result %d\n",
		      tm.upd_unsent ? "unsent" : "gone", (long long)tm.upd_ts.tv_sec,
		      (long long)tm.upd_ts.tv_nsec, tm.upd_in_op ? " from the freed op" : "", res);
	assert_int_equal(tm.move_rc, 0);
	assert_int_equal(tm.sqes, 1);
	assert_int_equal(atomic_load(&tm.fired), 1);
	assert_int_equal(tm.res[0], -ETIME);
	assert_true(tm.upd_unsent); /* the order this case is about */
	/* the kernel reads the moved time from the shard, not the op's bytes
	 * its new owner wrote */
	assert_false(tm.upd_in_op);
	assert_int_equal(tm.upd_ts.tv_sec, 0);
	assert_int_equal(tm.upd_ts.tv_nsec, 200 * MS);
	/* and it found no timer (it had ended), rather than a time it refused */
	assert_int_equal(atomic_load(&rp_engine_test_hooks.timer_updates), updates0 + 1);
	assert_int_equal(res, -ENOENT);
}

/*
 * A timer armed while an rp_link_next is pending (a recv that has no data
 * yet as the head) never becomes the link's tail: it fires at its time,
 * and the link stays for the op prepared next (a send, which runs only
 * once the recv completed). Before, the timer's SQE took the link: it
 * waited on the recv (which nothing completes until the timer's callback
 * writes) and the send went out unlinked. @rearm: the timer is armed by
 * rp_timer_rearm (its not-armed path).
 */
static struct {
	int a, b;		   /* a: the shard's end; b: the test's */
	struct rp_timer *t;
	uint8_t in[8];
	atomic_int fired, sent;
	int timer_res, recv_res, send_res;
	bool sent_before_timer;	   /* the send's callback ran first */
	bool rearm;
	bool dangling; /* no op follows the link: the head runs alone */
} tl;

static void tl_recv_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	tl.recv_res = c->res;
}

static void tl_send_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	tl.send_res = c->res;
	atomic_store(&tl.sent, 1);
}

static void tl_timer_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	tl.timer_res = c->res;
	tl.sent_before_timer = atomic_load(&tl.sent) != 0;
	/* the recv's data: the linked send may go now */
	CHECK_EQ(write(tl.b, "wake", 4), 4);
	atomic_store(&tl.fired, 1);
}

static int tl_init(struct rp_shard *sh, void *arg)
{
	struct rp_op *head;

	(void)arg;
	tl.t = rp_timer_new(sh);
	CHECK(tl.t != NULL);
	head = rp_recv(sh, tl.a, tl.in, sizeof(tl.in), 0, tl_recv_cb, NULL);
	CHECK(head != NULL);
	CHECK_EQ(rp_link_next(sh, head), 0);
	if (tl.rearm)
		CHECK_EQ(rp_timer_rearm(sh, tl.t, 20 * MS, tl_timer_cb, NULL), 0);
	else
		CHECK_EQ(rp_timer_arm(sh, tl.t, 20 * MS, tl_timer_cb, NULL), 0);
	if (!tl.dangling)
		CHECK(rp_send(sh, tl.a, "sent", 4, MSG_NOSIGNAL, tl_send_cb, NULL) != NULL);
	return 0;
}

static void timer_behind_pending_link(bool rearm, bool dangling)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	char got[4];
	bool fired, sent;

	memset(&tl, 0, sizeof(tl));
	tl.rearm = rearm;
	tl.dangling = dangling;
	tcp_pair(&tl.a, &tl.b);
	cfg.init = tl_init;
	rt = rt_start(&cfg);
	fired = wait_for(&tl.fired, 1, WAIT_S);
	sent = !dangling && wait_for(&tl.sent, 1, WAIT_S);
	rt_end(rt);
	assert_true(fired);
	assert_int_equal(tl.timer_res, -ETIME);
	if (dangling) {
		/* the link was dropped at the loop's turn: the recv ran alone
		 * and took the timer callback's bytes */
		assert_int_equal(tl.recv_res, 4);
		assert_memory_equal(tl.in, "wake", 4);
		close(tl.a);
		close(tl.b);
		return;
	}
	/* the link stayed for the send: it ran after the recv, not at once */
	assert_false(tl.sent_before_timer);
	assert_true(sent);
	assert_int_equal(tl.recv_res, 4);
	assert_int_equal(tl.send_res, 4);
	assert_int_equal(recv(tl.b, got, sizeof(got), MSG_DONTWAIT), 4);
	assert_memory_equal(got, "sent", 4);
	close(tl.a);
	close(tl.b);
}

static void test_armed_behind_pending_link(void **state)
{
	(void)state;
	timer_behind_pending_link(false, false);
}

static void test_rearmed_behind_pending_link(void **state)
{
	(void)state;
	timer_behind_pending_link(true, false);
}

/* The link is still pending when init returns (no op prepared after it):
 * the loop's turn drops it, the recv runs alone, and the timer, which
 * waited for that link, is sent. Before, the timer waited for an op that
 * never came, and the loop turned without sleeping. */
static void test_armed_behind_dangling_link(void **state)
{
	(void)state;
	timer_behind_pending_link(false, true);
}

/* A message from the control thread to a shard whose init left a link
 * pending (a recv with no data as its head, nothing after it) runs: the
 * link was dropped at the loop's turn. Before, the shard's eventfd poll
 * became the link's tail, waited for the recv, and the shard slept
 * through the message (and through a stop) until the recv's data came. */
static atomic_int dl_msg, dl_inited;

static void dl_msg_fn(struct rp_shard *sh, void *arg)
{
	(void)sh;
	(void)arg;
	atomic_store(&dl_msg, 1);
}

static int dl_init(struct rp_shard *sh, void *arg)
{
	struct rp_op *head;

	(void)arg;
	head = rp_recv(sh, tl.a, tl.in, sizeof(tl.in), 0, tl_recv_cb, NULL);
	CHECK(head != NULL);
	CHECK_EQ(rp_link_next(sh, head), 0);
	atomic_store(&dl_inited, 1);
	return 0;
}

static void test_message_behind_dangling_link(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	bool ran;

	(void)state;
	memset(&tl, 0, sizeof(tl));
	atomic_store(&dl_msg, 0);
	atomic_store(&dl_inited, 0);
	tcp_pair(&tl.a, &tl.b);
	cfg.init = dl_init;
	rt = rt_start(&cfg);
	/* past init, and asleep (it spins at most cfg.idle_spin_ns) */
	ran = wait_for(&dl_inited, 1, WAIT_S);
	usleep(100 * 1000);
	assert_int_equal(rp_runtime_submit(rt, 0, dl_msg_fn, NULL), 0);
	ran = ran && wait_for(&dl_msg, 1, 2.0);
	/* the recv's data: ends the wait either way, so the stop is not held */
	assert_int_equal(write(tl.b, "wake", 4), 4);
	rt_end(rt);
	assert_true(ran);
	assert_int_equal(tl.recv_res, 4);
	close(tl.a);
	close(tl.b);
}

int main(void)
{
	const struct CMUnitTest all[] = {
		T(test_moved_earlier),
		T(test_moved_later),
		T(test_moved_before_sent),
		T(test_moved_many_times),
		T(test_moved_from_its_callback),
		T(test_moved_after_it_fired),
		T(test_moved_with_sq_full),
		T(test_moved_with_sq_full_then_freed),
		T(test_moved_with_sq_full_then_stopped),
		T(test_moved_at_stop),
		T(test_moved_after_2g_sqes),
		T(test_moved_then_freed_by_its_end),
		T(test_armed_behind_pending_link),
		T(test_rearmed_behind_pending_link),
		T(test_armed_behind_dangling_link),
		T(test_message_behind_dangling_link),
	};

	return ENGINE_TEST_RUN("engine-timer", all);
}
