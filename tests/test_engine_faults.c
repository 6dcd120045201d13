/* SPDX-License-Identifier: MIT */
/*
 * engine faults, built against a copy of the engine compiled with
 * RP_ENGINE_TEST_HOOKS (engine/shard.h): faults the kernel gives rarely and
 * never on demand, switched on by the test.
 * - An SQ flush that gives up: the op that wanted the SQE fails with EBUSY
 *   (counted), nothing crashes, and the ops prepared before it still run.
 * - A MSG_RING wake that fails: the sender falls back to the target's
 *   eventfd, so a sleeping target still runs its message.
 * - A flush inside a callback that moves the CQ aside (the CQ-overflow
 *   path): completions still reach their callbacks in the order the kernel
 *   posted them.
 * - An fd table that cannot grow: rp_close and rp_cancel_fd fall back to a
 *   cancel by fd (counted) and still end every op on the fd.
 * - A reserved timer armed while the SQ stays full: armed (counted), its
 *   callback runs once after the loop found room; freed or stopped while
 *   it waits, it is unlinked or ended with -ECANCELED.
 * - A timer still in the kernel when the stop's deadline ended the loop:
 *   rp_timer_free from cfg.fini gives its op back and uncounts it at once
 *   (no cancel that no loop would send).
 * - An init that arms a timer and fails: the timer's SQE, never submitted,
 *   is made a NOP when the loop is over (there was none), so a submit
 *   after rp_timer_free (as a flush in cfg.fini did) sends nothing that
 *   names the freed op: no CQE for it; and no op takes an SQE after the
 *   loop (EBUSY), so none waits in the SQ for a submit that never comes.
 * - A kernel whose SEND_ZC refuses registered buffers (the runtime's
 *   probe says so): an rp_send_zc from the registered pool goes
 *   unregistered, counted in fixed_fallback, and its bytes arrive.
 * - rp_send_zc then rp_sendmsg_zc from malloc'd memory: the bytes arrive in
 *   order, each op's result then its notification, zc_sends and zc_copied
 *   right; and again with every notification read as uncopied (a NIC
 *   path's real zero-copy; loopback always copies): no RP_CQE_ZC_COPIED
 *   for the callers, zc_copied 0.
 * - rp_cancel_fd_op's cancel by fd (more ops on the fd than the SQ holds)
 *   with the list of closing fds unable to grow, while the kernel ends
 *   the fd's multishot recv (ENOBUFS): the recv ends for good, every op on
 *   the fd ends, nothing is left in flight and the fd stays open.
 */
#include <poll.h>

#include "engine_test.h"
#include "submit.h" /* struct rp_engine_test_hooks */

#define HOOK_SET(name, v) atomic_store(&rp_engine_test_hooks.name, (v))

/* ======================================================================
 * a flush that gives up
 * ====================================================================== */

static struct {
	atomic_int done;
	unsigned prepared, refused, completed;
	int refused_errno;
} tff;

static void ff_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	CHECK_EQ(c->res, 0);
	if (++tff.completed == tff.prepared)
		atomic_store(&tff.done, 1);
}

static int ff_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	HOOK_SET(flush_fail, 1);
	for (int i = 0; i < 64; i++) {
		if (rp_nop(sh, ff_cb, NULL)) {
			tff.prepared++;
		} else {
			tff.refused++;
			tff.refused_errno = errno;
		}
	}
	HOOK_SET(flush_fail, 0);
	return 0;
}

static void test_flush_that_gives_up_fails_the_op(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_shard_stats st;
	struct rp_runtime *rt;
	bool ok;

	(void)state;
	memset(&tff, 0, sizeof(tff));
	cfg.ring_entries = 8;
	cfg.init = ff_init;
	rt = rt_start(&cfg);
	ok = wait_for(&tff.done, 1, WAIT_S);
	stats_of(rt, 0, &st);
	rt_end(rt);
	assert_true(ok);
	print_message("# %u prepared, %u refused (errno %d), sq_full_fail %llu\n", tff.prepared,
		      tff.refused, tff.refused_errno, (unsigned long long)st.sq_full_fail);
	/* the SQ (8) holds at most 8 minus the eventfd read and the spare slots */
	assert_true(tff.prepared >= 1 && tff.prepared < 8);
	assert_int_equal(tff.prepared + tff.refused, 64);
	assert_int_equal(tff.refused_errno, EBUSY);
	assert_int_equal(st.sq_full_fail, tff.refused);
	assert_int_equal(tff.completed, tff.prepared);
}

/* ======================================================================
 * a MSG_RING wake that fails
 * ====================================================================== */

#define MR_ROUNDS 20

static struct {
	atomic_int ran;
} tmr;

static void mr_msg(struct rp_shard *sh, void *arg)
{
	(void)arg;
	CHECK_EQ(rp_shard_id(sh), 1);
	atomic_fetch_add(&tmr.ran, 1);
}

/* Runs on shard 0 (from the control thread): post to the sleeping shard 1. */
static void mr_post(struct rp_shard *sh, void *arg)
{
	(void)arg;
	CHECK_EQ(rp_shard_post(sh, 1, mr_msg, NULL), 0);
}

static void test_failed_msg_ring_wake_falls_back(void **state)
{
	struct rp_runtime_config cfg = base_cfg(2);
	struct rp_shard_stats st0;
	struct rp_runtime *rt;

	(void)state;
	memset(&tmr, 0, sizeof(tmr));
	rt = rt_start(&cfg);
	if (!has_feature(rt, "msg_ring=yes")) {
		rt_end(rt);
		skip(); /* wakes go through the eventfd already */
	}
	HOOK_SET(msg_ring_fail, 1);
	for (int i = 0; i < MR_ROUNDS; i++) {
		sleep_ms(20); /* shard 1 is asleep in io_uring_enter by now */
		assert_int_equal(rp_runtime_submit(rt, 0, mr_post, NULL), 0);
		if (!wait_for(&tmr.ran, i + 1, 2.0)) {
			HOOK_SET(msg_ring_fail, 0);
			rt_end(rt);
			fail_msg("round %d: the message to a sleeping shard never ran", i);
		}
	}
	HOOK_SET(msg_ring_fail, 0);
	stats_of(rt, 0, &st0);
	rt_end(rt);
	print_message("# %d messages to a sleeping shard, %llu wakes fell back to the eventfd\n",
		      MR_ROUNDS, (unsigned long long)st0.wake_fallback);
	assert_true(st0.wake_fallback >= 1);
}

/* ======================================================================
 * the fd table without memory: cancel by fd
 * ====================================================================== */

static struct {
	atomic_int done;
	int a, b, c, d;
	int recv_res, recv2_res, close_res, cancel_res, ends;
} tfn;

static void fn_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	int *res = arg;

	if (c->buf)
		rp_buf_put(sh, c->bid);
	if (c->flags & RP_CQE_MORE)
		return;
	*res = c->res;
	if (++tfn.ends == 4)
		atomic_store(&tfn.done, 1);
}

static void fn_go(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	(void)c;
	CHECK(rp_close(sh, tfn.a, fn_cb, &tfn.close_res) != NULL);
	CHECK(rp_cancel_fd(sh, tfn.c, fn_cb, &tfn.cancel_res) != NULL);
}

static int fn_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	CHECK(rp_recv_multishot(sh, tfn.a, fn_cb, &tfn.recv_res) != NULL);
	CHECK(rp_recv_multishot(sh, tfn.c, fn_cb, &tfn.recv2_res) != NULL);
	CHECK(rp_timeout(sh, 20 * MS, fn_go, NULL) != NULL);
	return 0;
}

static void test_fd_table_without_memory_cancels_by_fd(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_shard_stats st;
	struct rp_runtime *rt;
	bool ok;

	(void)state;
	memset(&tfn, 0, sizeof(tfn));
	tcp_pair(&tfn.a, &tfn.b);
	tcp_pair(&tfn.c, &tfn.d);
	HOOK_SET(fdt_nomem, 1);
	cfg.init = fn_init;
	rt = rt_start(&cfg);
	ok = wait_for(&tfn.done, 1, WAIT_S);
	rt_stop_join(rt);
	HOOK_SET(fdt_nomem, 0);
	stats_of(rt, 0, &st);
	rp_runtime_destroy(rt);
	check_failures();
	assert_true(ok);
	assert_int_equal(tfn.recv_res, -ECANCELED);
	assert_int_equal(tfn.recv2_res, -ECANCELED);
	assert_int_equal(tfn.close_res, 0);
	assert_int_equal(tfn.cancel_res, 1);
	assert_int_equal(st.cancel_fd_fallback, 2);
	assert_int_equal(st.op_cancels, 0);
	close(tfn.b);
	close(tfn.c);
	close(tfn.d);
}

/* ======================================================================
 * completions in the order the kernel posted them, across a stash
 * ====================================================================== */

#define SO_FIRST 200 /* NOPs completed before the first callback runs */

static struct {
	atomic_int done;
	unsigned next_seq, total, bad_order, first_bad_seq;
	bool burst_sent;
} tso;

static void so_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	unsigned seq = (unsigned)(uintptr_t)arg;

	(void)c;
	if (seq != tso.next_seq && !tso.bad_order++)
		tso.first_bad_seq = seq;
	tso.next_seq = seq + 1;
	if (!tso.burst_sent) {
		/* Overfill the SQ (256): the flush this forces moves the CQ
		 * (NOPs 64..199, not dispatched yet) aside, then the kernel
		 * posts these. */
		tso.burst_sent = true;
		HOOK_SET(flush_stash, 1);
		for (unsigned i = 0; i < 400; i++) {
			if (!rp_nop(sh, so_cb, (void *)(uintptr_t)(SO_FIRST + i)))
				break;
			tso.total++;
		}
		HOOK_SET(flush_stash, 0);
	}
	if (tso.next_seq == tso.total)
		atomic_store(&tso.done, 1);
}

static int so_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	for (unsigned i = 0; i < SO_FIRST; i++)
		CHECK(rp_nop(sh, so_cb, (void *)(uintptr_t)i) != NULL);
	tso.total = SO_FIRST;
	return 0;
}

static void test_stashed_completions_keep_kernel_order(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);

	(void)state;
	memset(&tso, 0, sizeof(tso));
	cfg.ring_entries = 256; /* SO_FIRST fit in one submit; the CQ (1024) holds all */
	rt_run_until(&cfg, so_init, &tso.done, 1, NULL);
	print_message("# %u completions, %u out of order (first: seq %u)\n", tso.total,
		      tso.bad_order, tso.first_bad_seq);
	assert_true(tso.total > SO_FIRST);
	assert_int_equal(tso.bad_order, 0);
}

/* ======================================================================
 * rp_close of no fd (-1) with the SQ full: EBUSY, as any op
 * ====================================================================== */

static struct {
	atomic_int done;
	unsigned prepared, completed;
	bool close_null;
	int close_errno;
} tcf;

static void cf_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	(void)c;
	if (++tcf.completed == tcf.prepared)
		atomic_store(&tcf.done, 1);
}

static int cf_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	HOOK_SET(flush_fail, 1);
	while (rp_nop(sh, cf_cb, NULL))
		tcf.prepared++;
	errno = 0;
	tcf.close_null = rp_close(sh, -1, cf_cb, NULL) == NULL;
	tcf.close_errno = errno;
	HOOK_SET(flush_fail, 0);
	if (!tcf.close_null)
		tcf.prepared++;
	return 0;
}

static void test_close_of_no_fd_with_sq_full_fails(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);

	(void)state;
	memset(&tcf, 0, sizeof(tcf));
	cfg.ring_entries = 8;
	rt_run_until(&cfg, cf_init, &tcf.done, 1, NULL);
	assert_true(tcf.close_null);
	assert_int_equal(tcf.close_errno, EBUSY);
}

/* ======================================================================
 * a reserved timer armed while the SQ stays full: armed all the same, sent
 * by the loop once there is room; freed, or the shard stopped, meanwhile
 * ====================================================================== */

static struct {
	struct rp_runtime *rt;
	struct rp_timer *t;
	atomic_int fired, late, stopped, nops_done, msg_done;
	unsigned nops, nops_seen;
	int arm_rc, again_rc, stop_res;
	bool armed, armed_after_free;
	unsigned base, inflight_deferred, inflight_freed;
	uint64_t fail_delta;
} ttd;

static void td_nop_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	CHECK_EQ(c->res, 0);
	if (++ttd.nops_seen == ttd.nops)
		atomic_store(&ttd.nops_done, 1);
}

/* Fill the SQ with nops while every flush gives up: the next eng_sqe
 * finds no room (the hook stays on: the caller arms, then clears it). */
static void td_fill(struct rp_shard *sh)
{
	HOOK_SET(flush_fail, 1);
	for (unsigned i = 0; i < 64 && rp_nop(sh, td_nop_cb, NULL); i++)
		ttd.nops++;
	CHECK_EQ(errno, EBUSY); /* stopped by a full SQ, not by the bound */
}

/* Arm @t with the SQ full: what the arm says, and what it counts. */
static void td_arm(struct rp_shard *sh, uint64_t ns, rp_cb cb)
{
	struct rp_shard_stats a, b;

	ttd.base = rp_shard_inflight(sh); /* the nops count too */
	rp_shard_stats(sh, &a);
	ttd.arm_rc = rp_timer_arm(sh, ttd.t, ns, cb, NULL);
	rp_shard_stats(sh, &b);
	ttd.fail_delta = b.sq_full_fail - a.sq_full_fail;
	ttd.armed = rp_timer_armed(ttd.t);
	ttd.inflight_deferred = rp_shard_inflight(sh) - ttd.base;
	ttd.again_rc = rp_timer_arm(sh, ttd.t, ns, cb, NULL);
}

static void td_fired(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	CHECK_EQ(c->res, -ETIME);
	CHECK(!rp_timer_armed(ttd.t));
	atomic_fetch_add(&ttd.fired, 1);
}

static void td_late(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	(void)c;
	atomic_fetch_add(&ttd.late, 1); /* freed while waiting: must never run */
}

static void td_stop_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	ttd.stop_res = c->res;
	CHECK(rp_shard_stopping(sh));
	CHECK(!rp_timer_armed(ttd.t));
	atomic_fetch_add(&ttd.stopped, 1);
}

static int td_init_fire(struct rp_shard *sh, void *arg)
{
	(void)arg;
	ttd.t = rp_timer_new(sh);
	CHECK(ttd.t != NULL);
	td_fill(sh);
	td_arm(sh, 2 * MS, td_fired);
	HOOK_SET(flush_fail, 0);
	return 0;
}

static int td_init_free(struct rp_shard *sh, void *arg)
{
	(void)arg;
	ttd.t = rp_timer_new(sh);
	CHECK(ttd.t != NULL);
	td_fill(sh);
	td_arm(sh, 2 * MS, td_late);
	rp_timer_free(sh, ttd.t);
	ttd.t = NULL;
	ttd.inflight_freed = rp_shard_inflight(sh) - ttd.base;
	HOOK_SET(flush_fail, 0);
	return 0;
}

static int td_init_new(struct rp_shard *sh, void *arg)
{
	(void)arg;
	ttd.t = rp_timer_new(sh);
	CHECK(ttd.t != NULL);
	return 0;
}

/* On the shard's loop: arm with the SQ full, then stop in the same turn,
 * before the loop could send the timer. */
static void td_stop_msg(struct rp_shard *sh, void *arg)
{
	(void)arg;
	td_fill(sh);
	td_arm(sh, 60000 * MS, td_stop_cb);
	rp_runtime_stop(ttd.rt);
	HOOK_SET(flush_fail, 0);
	atomic_store(&ttd.msg_done, 1);
}

static void td_fini(struct rp_shard *sh, void *arg)
{
	(void)arg;
	CHECK(!ttd.t || !rp_timer_armed(ttd.t));
	rp_timer_free(sh, ttd.t);
	ttd.t = NULL;
}

/* What every case checks of the arm that found the SQ full. */
static void td_check_arm(void)
{
	print_message(
		"# %u nops filled the SQ; arm %d, armed %d, inflight +%u, sq_full_fail +%llu\n",
		ttd.nops, ttd.arm_rc, ttd.armed, ttd.inflight_deferred,
		(unsigned long long)ttd.fail_delta);
	assert_true(ttd.nops >= 1);
	assert_int_equal(ttd.arm_rc, 0); /* was -EBUSY */
	assert_true(ttd.armed);
	assert_int_equal(ttd.inflight_deferred, 1);
	assert_int_equal(ttd.fail_delta, 1);
	assert_int_equal(ttd.again_rc, -EALREADY);
}

/* A one-shard runtime with an 8-entry SQ (easy to fill), @init on its
 * shard, ttd cleared. */
static struct rp_runtime *td_start(rp_shard_init_fn init)
{
	struct rp_runtime_config cfg = base_cfg(1);

	memset(&ttd, 0, sizeof(ttd));
	cfg.ring_entries = 8;
	cfg.init = init;
	cfg.fini = td_fini;
	return rt_start(&cfg);
}

static void test_timer_armed_with_sq_full_fires_once(void **state)
{
	struct rp_runtime *rt;
	bool ok;

	(void)state;
	rt = td_start(td_init_fire);
	ok = wait_for(&ttd.fired, 1, WAIT_S) && wait_for(&ttd.nops_done, 1, WAIT_S);
	sleep_ms(20); /* a second run would come within its 2 ms */
	rt_end(rt);
	assert_true(ok);
	td_check_arm();
	assert_int_equal(atomic_load(&ttd.fired), 1);
}

static void test_timer_freed_while_waiting_never_runs(void **state)
{
	struct rp_runtime *rt;
	bool ok;

	(void)state;
	rt = td_start(td_init_free);
	ok = wait_for(&ttd.nops_done, 1, WAIT_S);
	sleep_ms(20); /* ten times its delay */
	rt_end(rt);
	assert_true(ok);
	td_check_arm();
	assert_int_equal(ttd.inflight_freed, 0);
	assert_int_equal(atomic_load(&ttd.late), 0);
}

static void test_timer_waiting_at_stop_is_cancelled(void **state)
{
	struct rp_runtime *rt;
	double t0;
	bool ok;

	(void)state;
	rt = td_start(td_init_new);
	ttd.rt = rt;
	t0 = now_s();
	assert_int_equal(rp_runtime_submit(rt, 0, td_stop_msg, NULL), 0);
	ok = wait_for(&ttd.msg_done, 1, WAIT_S);
	rt_end(rt);
	assert_true(ok);
	assert_true(now_s() - t0 < 2.0); /* the waiting timer did not hold the stop */
	td_check_arm();
	assert_int_equal(atomic_load(&ttd.stopped), 1);
	assert_int_equal(ttd.stop_res, -ECANCELED);
}

/* ======================================================================
 * rp_timer_free with no loop behind it: the stop's deadline passed with
 * the timer in the kernel (the loop ended before its cancel went out)
 * ====================================================================== */

static struct {
	struct rp_timer *t;
	int arm_rc;
	uint64_t op_bytes; /* what rp_timer_new took */
	unsigned inflight_before, inflight_after;
	uint64_t live_before, live_after;
	uint64_t stuck;
} tlo;

static int lo_init(struct rp_shard *sh, void *arg)
{
	uint64_t before = pool_live(sh);

	(void)arg;
	tlo.t = rp_timer_new(sh);
	CHECK(tlo.t != NULL);
	tlo.op_bytes = pool_live(sh) - before;
	tlo.arm_rc = rp_timer_arm(sh, tlo.t, 60000 * MS, td_late, NULL);
	return 0;
}

/* the deadline (1 ms) was set before this ran: the loop's next look at it
 * ends the loop, before the stop's cancel-any is submitted */
static void lo_on_stop(struct rp_shard *sh, void *arg)
{
	(void)sh;
	(void)arg;
	sleep_ms(20);
}

static void lo_fini(struct rp_shard *sh, void *arg)
{
	struct rp_shard_stats st;

	(void)arg;
	CHECK(rp_timer_armed(tlo.t)); /* the loop ended with it in the kernel */
	rp_shard_stats(sh, &st);
	tlo.stuck = st.stuck_ops;
	tlo.inflight_before = rp_shard_inflight(sh);
	tlo.live_before = pool_live(sh);
	rp_timer_free(sh, tlo.t);
	tlo.t = NULL;
	tlo.inflight_after = rp_shard_inflight(sh);
	tlo.live_after = pool_live(sh);
}

static void test_timer_freed_after_the_loop_gives_its_op_back(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;

	(void)state;
	memset(&tlo, 0, sizeof(tlo));
	memset(&ttd, 0, sizeof(ttd));
	cfg.stop_timeout_ms = 1;
	cfg.init = lo_init;
	cfg.on_stop = lo_on_stop;
	cfg.fini = lo_fini;
	rt = rt_start(&cfg);
	rt_end(rt);
	print_message("# timer op %llu B; in fini: inflight %u -> %u, pool live %llu -> %llu B, "
		      "stuck_ops %llu\n",
		      (unsigned long long)tlo.op_bytes, tlo.inflight_before, tlo.inflight_after,
		      (unsigned long long)tlo.live_before, (unsigned long long)tlo.live_after,
		      (unsigned long long)tlo.stuck);
	assert_int_equal(tlo.arm_rc, 0);
	assert_true(tlo.stuck >= 1); /* the timer among them */
	assert_true(tlo.op_bytes > 0);
	/* before: a cancel prepared for no loop (one more op taken) and the
	 * timer's op kept live for good */
	assert_int_equal(tlo.inflight_after, tlo.inflight_before - 1);
	assert_int_equal(tlo.live_after, tlo.live_before - tlo.op_bytes);
	assert_int_equal(atomic_load(&ttd.late), 0);
}

/* ======================================================================
 * an init that arms a timer and fails: its SQE was never submitted
 * ====================================================================== */

static struct {
	struct rp_timer *t;
	uintptr_t op;		  /* the timer's op, freed in fini */
	unsigned sq_at_fini;	  /* SQEs waiting in the SQ when fini ran */
	int submitted;		  /* a submit of what the SQ held, after the free */
	unsigned cqes, for_freed; /* CQEs seen in fini; with the freed op's user_data */
	bool nop_refused;
	int nop_errno;
} tfi;

static int fi_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	tfi.t = rp_timer_new(sh);
	CHECK(tfi.t != NULL);
	if (tfi.t)
		CHECK_EQ(rp_timer_arm(sh, tfi.t, 1 * MS, td_late, NULL), 0);
	return -EIO;
}

static void fi_fini(struct rp_shard *sh, void *arg)
{
	struct io_uring_cqe *cqe;
	double end;

	(void)arg;
	if (!tfi.t)
		return;
	tfi.op = (uintptr_t)tfi.t;
	tfi.sq_at_fini = io_uring_sq_ready(&sh->ring);
	rp_timer_free(sh, tfi.t); /* no loop: its op goes back at once */
	tfi.t = NULL;
	/* what a flush in fini did (eng_flush of an SQ that fills): the SQ
	 * goes to the kernel. The timer (1 ms) would end by -ETIME with the
	 * freed op's address for user_data */
	tfi.submitted = io_uring_submit(&sh->ring);
	end = now_s() + 0.2;
	while (now_s() < end) {
		struct __kernel_timespec ts = { .tv_nsec = 20 * 1000 * 1000 };

		if (io_uring_wait_cqe_timeout(&sh->ring, &cqe, &ts))
			continue;
		tfi.cqes++;
		if (cqe->user_data == tfi.op)
			tfi.for_freed++;
		io_uring_cqe_seen(&sh->ring, cqe);
	}
	/* after the loop no op takes an SQE: none is left for a submit
	 * that never comes */
	tfi.nop_refused = rp_nop(sh, ff_cb, NULL) == NULL;
	tfi.nop_errno = errno;
}

static void test_failed_init_timer_never_reaches_kernel(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt = NULL;
	int ret;

	(void)state;
	memset(&tfi, 0, sizeof(tfi));
	memset(&ttd, 0, sizeof(ttd));
	atomic_store(&g_fail, 0);
	cfg.init = fi_init;
	cfg.fini = fi_fini;
	assert_int_equal(rp_runtime_create(&cfg, &rt), 0);
	ret = rp_runtime_start(rt);
	rp_runtime_destroy(rt);
	print_message("# init failed (%d): %u SQE(s) waiting at fini; a submit after the free "
		      "sent %d, %u CQE(s) in 200 ms, %u with the freed op's user_data; "
		      "an op after the loop %s (%s)\n",
		      ret, tfi.sq_at_fini, tfi.submitted, tfi.cqes, tfi.for_freed,
		      tfi.nop_refused ? "refused" : "taken", strerror(tfi.nop_errno));
	check_failures();
	assert_int_equal(ret, -EIO);
	assert_true(tfi.op != 0);
	assert_int_equal(tfi.sq_at_fini, 1); /* the timer's, never submitted */
	assert_int_equal(tfi.for_freed, 0);  /* was 1: -ETIME, user_data the freed op */
	assert_int_equal(tfi.cqes, 0);	     /* a NOP that posts none */
	assert_true(tfi.nop_refused);
	assert_int_equal(tfi.nop_errno, EBUSY);
	assert_int_equal(atomic_load(&ttd.late), 0);
}

/* ======================================================================
 * rp_cancel_fd_op's fallback (a cancel by fd) with the list of closing
 * fds unable to grow, racing the kernel's ENOBUFS end of a multishot recv
 * ====================================================================== */

#define CX_POLLS 20 /* one-shot POLLPRI polls on the fd: more than a 16-entry SQ */
#define CX_NBUFS 8
#define CX_BUF	 4096

static struct {
	int a, b;
	struct rp_op *op;
	atomic_int done, final_seen;
	bool cancel_sent, more_sent, final_before_settle;
	int cancel_ret, final_res;
	unsigned data_after_more, polls_ended, polls_cancelled;
	unsigned held_n;
	uint16_t held[CX_NBUFS];
	unsigned inflight_after;
} tcx;

static void cx_settle(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	(void)c;
	tcx.final_before_settle = atomic_load(&tcx.final_seen);
	/* this timeout's own op is still counted */
	tcx.inflight_after = rp_shard_inflight(sh) - 1;
	atomic_store(&tcx.done, 1);
}

/* 100 ms after the cancel: every buffer back and more data. A receive
 * that survived the cancel (re-armed by fd number) takes it. */
static void cx_more(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	(void)c;
	for (unsigned i = 0; i < tcx.held_n; i++)
		rp_buf_put(sh, tcx.held[i]);
	tcx.held_n = 0;
	tcx.more_sent = true;
	CHECK_EQ(write(tcx.b, "more data", 9), 9);
	CHECK(rp_timeout(sh, 100 * MS, cx_settle, NULL) != NULL);
}

static void cx_poll_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	tcx.polls_ended++;
	tcx.polls_cancelled += c->res == -ECANCELED;
}

static void cx_recv_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	if (c->res > 0 && tcx.more_sent)
		tcx.data_after_more++;
	if (c->buf && tcx.held_n < CX_NBUFS)
		tcx.held[tcx.held_n++] = c->bid; /* hold: the ring runs dry */
	else if (c->buf)
		rp_buf_put(sh, c->bid);
	if (!tcx.cancel_sent) {
		/* the first data CQE: the ENOBUFS end is in this batch, after
		 * it; the cancel by fd finds no receive to end */
		tcx.cancel_sent = true;
		HOOK_SET(closing_nomem, 1);
		tcx.cancel_ret = rp_cancel_fd_op(sh, tcx.a);
		HOOK_SET(closing_nomem, 0);
		CHECK(rp_timeout(sh, 100 * MS, cx_more, NULL) != NULL);
	}
	if (!(c->flags & RP_CQE_MORE)) {
		tcx.final_res = c->res;
		atomic_store(&tcx.final_seen, 1);
	}
}

static int cx_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	for (unsigned i = 0; i < CX_POLLS; i++)
		CHECK(rp_poll(sh, tcx.a, POLLPRI, cx_poll_cb, NULL) != NULL);
	tcx.op = rp_recv_multishot(sh, tcx.a, cx_recv_cb, NULL);
	CHECK(tcx.op != NULL);
	return 0;
}

static void test_cancel_fd_op_fallback_without_closing_memory(void **state)
{
	static uint8_t fill[(CX_NBUFS + 4) * CX_BUF];
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_shard_stats st;

	(void)state;
	memset(&tcx, 0, sizeof(tcx));
	tcp_pair(&tcx.a, &tcx.b);
	/* more than the buffers hold, queued before the receive is armed */
	assert_int_equal(write(tcx.b, fill, sizeof(fill)), (ssize_t)sizeof(fill));
	cfg.bufs = CX_NBUFS;
	cfg.buf_size = CX_BUF;
	cfg.ring_entries = 16;
	rt_run_until(&cfg, cx_init, &tcx.done, 1, &st);
	print_message("# cancel_fd_op fallback, no closing memory: ret %d, recv ended %d (res %d), "
		      "%u data CQEs after more was written; polls %u ended (%u cancelled); "
		      "inflight after %u; fallbacks %llu\n",
		      tcx.cancel_ret, tcx.final_before_settle, tcx.final_res, tcx.data_after_more,
		      tcx.polls_ended,
		      tcx.polls_cancelled, tcx.inflight_after,
		      (unsigned long long)st.cancel_fd_fallback);
	assert_int_equal(tcx.cancel_ret, 0);
	assert_int_equal(st.cancel_fd_fallback, 1);
	/* the receive ended for good, not re-armed by fd */
	assert_true(tcx.final_before_settle);
	assert_true(tcx.final_res <= 0);
	assert_int_equal(tcx.data_after_more, 0);
	/* the cancel by fd ended every poll */
	assert_int_equal(tcx.polls_ended, CX_POLLS);
	assert_int_equal(tcx.polls_cancelled, CX_POLLS);
	/* nothing left: no op, no internal cancel outstanding */
	assert_int_equal(tcx.inflight_after, 0);
	/* a cancel closes nothing: the fd is still ours */
	assert_int_equal(fcntl(tcx.a, F_GETFD), FD_CLOEXEC);
	close(tcx.a);
	close(tcx.b);
}

/* ======================================================================
 * Two fallback cancels by fd of one fd, the first listed on the closing
 * list and still pending (linked behind a poll on a pipe), the second
 * refused the list (no memory): the second's completion must leave the
 * first's entry alone
 * ====================================================================== */

static struct {
	int a, b, pr, pw;
	atomic_int done;
	int ret2;
	bool listed_mid, listed_after, cf1_ok;
	int cf1_res;
	unsigned polls_ended;
} tcl;

static void cl_poll_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	(void)c;
	tcl.polls_ended++;
}

static void cl_head_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	(void)c;
}

/* the first cancel by fd (rp_cancel_fd's fallback), run once its head
 * ended: its entry is off the list before its callback */
static void cl_cf1_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	tcl.cf1_ok = true;
	tcl.cf1_res = c->res;
	tcl.listed_after = eng_fd_closing(sh, tcl.a);
	atomic_store(&tcl.done, 1);
}

/* 50 ms on: the second cancel has long completed (it ended the polls),
 * the first still waits behind its head: @a must still be listed */
static void cl_check(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	(void)c;
	tcl.listed_mid = eng_fd_closing(sh, tcl.a);
	CHECK_EQ(write(tcl.pw, "x", 1), 1); /* the head ends, the first cancel runs */
}

static int cl_init(struct rp_shard *sh, void *arg)
{
	struct rp_op *head;

	(void)arg;
	for (unsigned i = 0; i < CX_POLLS; i++)
		CHECK(rp_poll(sh, tcl.a, POLLPRI, cl_poll_cb, NULL) != NULL);
	/* an rp_link_next pending: rp_cancel_fd falls back to a cancel by
	 * fd, listed, chained behind the head */
	head = rp_poll(sh, tcl.pr, POLLIN, cl_head_cb, NULL);
	CHECK(head != NULL);
	CHECK_EQ(rp_link_next(sh, head), 0);
	CHECK(rp_cancel_fd(sh, tcl.a, cl_cf1_cb, NULL) != NULL);
	/* more polls than the SQ holds: a cancel by fd, not listed */
	HOOK_SET(closing_nomem, 1);
	tcl.ret2 = rp_cancel_fd_op(sh, tcl.a);
	HOOK_SET(closing_nomem, 0);
	CHECK(rp_timeout(sh, 50 * MS, cl_check, NULL) != NULL);
	return 0;
}

static void test_unlisted_cancel_fd_leaves_anothers_closing_entry(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_shard_stats st;
	int p[2];

	(void)state;
	memset(&tcl, 0, sizeof(tcl));
	tcp_pair(&tcl.a, &tcl.b);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	tcl.pr = p[0];
	tcl.pw = p[1];
	cfg.ring_entries = 16;
	rt_run_until(&cfg, cl_init, &tcl.done, 1, &st);
	print_message("# two cancels by fd, the second unlisted: ret %d, listed while the first "
		      "pends %d, after it %d; polls ended %u; first res %d; fallbacks %llu\n",
		      tcl.ret2, tcl.listed_mid, tcl.listed_after, tcl.polls_ended, tcl.cf1_res,
		      (unsigned long long)st.cancel_fd_fallback);
	assert_int_equal(tcl.ret2, 0);
	assert_int_equal(st.cancel_fd_fallback, 2);
	assert_int_equal(tcl.polls_ended, CX_POLLS);
	/* was false: the unlisted cancel's completion took the first's entry */
	assert_true(tcl.listed_mid);
	assert_true(tcl.cf1_ok);
	assert_false(tcl.listed_after);
	close(tcl.a);
	close(tcl.b);
	close(tcl.pr);
	close(tcl.pw);
}

/* ======================================================================
 * SEND_ZC refusing registered buffers
 * ====================================================================== */

#define ZR_LEN 65536

static struct {
	atomic_int done;
	int c, s, file;
	uint8_t *buf, *wbuf;
	int res, cqes;
	bool notified, registered;
	uint64_t fallback_delta; /* fixed_fallback moved by the send's preparation */
} tzr;

static void zr_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	tzr.cqes++;
	if (c->flags & RP_CQE_NOTIF)
		tzr.notified = true;
	else
		tzr.res = c->res;
	if (!(c->flags & RP_CQE_MORE)) {
		rp_pool_free(tzr.buf);
		atomic_fetch_add(&tzr.done, 1);
	}
}

static void zr_write_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	CHECK_EQ(c->res, 4096);
	rp_pool_free(tzr.wbuf);
	atomic_fetch_add(&tzr.done, 1);
}

static int zr_init(struct rp_shard *sh, void *arg)
{
	struct rp_shard_stats a, b;

	(void)arg;
	tzr.buf = rp_pool_alloc(rp_shard_pool(sh), ZR_LEN);
	tzr.wbuf = rp_pool_alloc(rp_shard_pool(sh), 4096);
	CHECK(tzr.buf && tzr.wbuf);
	if (!tzr.buf || !tzr.wbuf) {
		atomic_store(&tzr.done, 2);
		return 0;
	}
	fill_pattern(tzr.buf, ZR_LEN, 0);
	memset(tzr.wbuf, 5, 4096);
	/* whether the registration took: a fixed write counts a fallback where not */
	rp_shard_stats(sh, &a);
	CHECK(rp_write_fixed(sh, tzr.file, tzr.wbuf, 4096, 0, zr_write_cb, NULL) != NULL);
	rp_shard_stats(sh, &b);
	tzr.registered = b.fixed_fallback == a.fixed_fallback;
	CHECK(rp_send_zc(sh, tzr.c, tzr.buf, ZR_LEN, MSG_NOSIGNAL, zr_cb, NULL) != NULL);
	rp_shard_stats(sh, &a);
	tzr.fallback_delta = a.fixed_fallback - b.fixed_fallback;
	return 0;
}

static void test_send_zc_fixed_refused_falls_back(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_shard_stats st;
	struct rp_runtime *rt;
	uint8_t want[ZR_LEN], rx[ZR_LEN];
	double end;
	size_t got = 0;
	bool ok, have_zc;

	(void)state;
	memset(&tzr, 0, sizeof(tzr));
	tcp_pair(&tzr.c, &tzr.s);
	sock_bufs(tzr.c, tzr.s, 4 << 20);
	tzr.file = tmp_file();
	cfg.register_buffers = true;
	cfg.init = zr_init;
	HOOK_SET(zc_fixed_refused, 1);
	rt = rt_start(&cfg);
	HOOK_SET(zc_fixed_refused, 0);
	have_zc = has_feature(rt, "send_zc=yes");
	assert_true(!have_zc || has_feature(rt, "send_zc_fixed=no"));
	ok = wait_for(&tzr.done, 2, WAIT_S);
	rt_end_stats(rt, &st);
	assert_true(ok);
	printf("# registered %d; res %d, %d callbacks; zc_fixed %llu, fixed_fallback +%llu by "
	       "the send\n",
	       tzr.registered, tzr.res, tzr.cqes, (unsigned long long)st.zc_fixed,
	       (unsigned long long)tzr.fallback_delta);
	assert_int_equal(tzr.res, ZR_LEN);
	fill_pattern(want, ZR_LEN, 0);
	end = now_s() + WAIT_S;
	while (got < ZR_LEN && now_s() < end) {
		ssize_t n = recv(tzr.s, rx + got, ZR_LEN - got, MSG_DONTWAIT);

		if (n > 0)
			got += (size_t)n;
		else
			sleep_ms(1);
	}
	assert_int_equal(got, ZR_LEN);
	assert_memory_equal(rx, want, ZR_LEN);
	assert_int_equal(st.zc_fixed, 0);
	if (!have_zc) {
		printf("# skip: no IORING_OP_SEND_ZC here: a plain send, nothing to fall back\n");
	} else {
		assert_true(tzr.notified);
		if (tzr.registered) {
			assert_int_equal(tzr.fallback_delta, 1);
		} else {
			printf("# skip: buffer registration refused here: nothing to fall back\n");
			assert_int_equal(tzr.fallback_delta, 0);
		}
	}
	close(tzr.c);
	close(tzr.s);
	close(tzr.file);
}

/* ======================================================================
 * rp_send_zc, rp_sendmsg_zc from plain memory: copied, and (the hook)
 * uncopied notifications
 * ====================================================================== */

#define ZM_ONE	 32768 /* rp_send_zc's buffer */
#define ZM_IOV	 3
#define ZM_PART	 20000 /* each of rp_sendmsg_zc's iovecs */
#define ZM_TOTAL (ZM_ONE + ZM_IOV * ZM_PART)

static struct {
	atomic_int done;
	int c, s;
	uint8_t *one, *part[ZM_IOV]; /* malloc'd: never the shard's pool */
	struct iovec iov[ZM_IOV];
	struct msghdr msg;
	/* per op (0: rp_send_zc, 1: rp_sendmsg_zc): its callbacks' flags in
	 * order, how many, its result */
	unsigned flags[2][4], n[2];
	int res[2], notif_res[2];
} tzm;

static void zm_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	unsigned k = (unsigned)(uintptr_t)arg;

	if (tzm.n[k] < 4)
		tzm.flags[k][tzm.n[k]] = c->flags;
	tzm.n[k]++;
	if (c->flags & RP_CQE_NOTIF) {
		tzm.notif_res[k] = c->res;
	} else {
		tzm.res[k] = c->res;
		/* the vector only once the single send's result is in: the
		 * stream's order does not hang on the kernel's */
		if (k == 0)
			CHECK(rp_sendmsg_zc(sh, tzm.c, &tzm.msg, MSG_NOSIGNAL, zm_cb,
					    (void *)(uintptr_t)1) != NULL);
	}
	if (!(c->flags & RP_CQE_MORE))
		atomic_fetch_add(&tzm.done, 1);
}

static int zm_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	CHECK(rp_send_zc(sh, tzm.c, tzm.one, ZM_ONE, MSG_NOSIGNAL, zm_cb, (void *)(uintptr_t)0) !=
	      NULL);
	return 0;
}

/*
 * One rp_send_zc, then (from its result) one rp_sendmsg_zc of ZM_IOV
 * iovecs, all from malloc'd memory, over TCP loopback: every byte arrives
 * in order; each op's callbacks are exactly its result (RP_CQE_MORE, every
 * byte) then its notification (res 0, RP_CQE_NOTIF, RP_CQE_ZC_COPIED
 * unless @uncopied); the shard counts both in zc_sends, in zc_copied the
 * copied ones, none in zc_fixed (no pool buffer) or the error counters.
 * @uncopied: the zc_uncopied hook makes the notifications read as a NIC
 * path's real zero-copy (loopback always copies).
 */
static void zm_run(bool uncopied)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_shard_stats st;
	struct rp_runtime *rt;
	uint8_t *want = malloc(ZM_TOTAL), *rx = malloc(ZM_TOTAL);
	bool ok, zc;
	size_t got = 0;
	double end;

	assert_true(want && rx);
	memset(&tzm, 0, sizeof(tzm));
	tcp_pair(&tzm.c, &tzm.s);
	sock_bufs(tzm.c, tzm.s, 4 << 20);
	tzm.one = malloc(ZM_ONE);
	assert_non_null(tzm.one);
	fill_pattern(tzm.one, ZM_ONE, 0);
	for (unsigned i = 0; i < ZM_IOV; i++) {
		tzm.part[i] = malloc(ZM_PART);
		assert_non_null(tzm.part[i]);
		fill_pattern(tzm.part[i], ZM_PART, ZM_ONE + (size_t)i * ZM_PART);
		tzm.iov[i].iov_base = tzm.part[i];
		tzm.iov[i].iov_len = ZM_PART;
	}
	tzm.msg.msg_iov = tzm.iov;
	tzm.msg.msg_iovlen = ZM_IOV;
	cfg.init = zm_init;
	HOOK_SET(zc_uncopied, uncopied);
	rt = rt_start(&cfg);
	zc = has_feature(rt, "send_zc=yes") && has_feature(rt, "sendmsg_zc=yes") &&
	     has_feature(rt, "zc_report_usage=yes");
	ok = wait_for(&tzm.done, 2, WAIT_S);
	rt_end_stats(rt, &st);
	HOOK_SET(zc_uncopied, 0);
	assert_true(ok);
	end = now_s() + WAIT_S;
	while (got < ZM_TOTAL && now_s() < end) {
		ssize_t r = recv(tzm.s, rx + got, ZM_TOTAL - got, MSG_DONTWAIT);

		if (r > 0)
			got += (size_t)r;
		else
			sleep_ms(1);
	}
	assert_int_equal(got, ZM_TOTAL);
	fill_pattern(want, ZM_TOTAL, 0);
	assert_memory_equal(rx, want, ZM_TOTAL);
	assert_int_equal(tzm.res[0], ZM_ONE);
	assert_int_equal(tzm.res[1], ZM_IOV * ZM_PART);
	printf("# %s: send_zc flags %#x, %#x; sendmsg_zc %#x, %#x; zc_sends %llu, zc_copied %llu\n",
	       uncopied ? "uncopied hook" : "as the kernel says", tzm.flags[0][0], tzm.flags[0][1],
	       tzm.flags[1][0], tzm.flags[1][1], (unsigned long long)st.zc_sends,
	       (unsigned long long)st.zc_copied);
	if (!zc) {
		printf("# skip: no SEND_ZC, SENDMSG_ZC or usage report here: plain sends\n");
	} else {
		unsigned notif = RP_CQE_NOTIF | (uncopied ? 0u : RP_CQE_ZC_COPIED);

		for (unsigned k = 0; k < 2; k++) {
			assert_int_equal(tzm.n[k], 2);
			assert_int_equal(tzm.flags[k][0], RP_CQE_MORE);
			assert_int_equal(tzm.flags[k][1], notif);
			assert_int_equal(tzm.notif_res[k], 0);
		}
		assert_int_equal(st.zc_sends, 2);
		assert_int_equal(st.zc_copied, uncopied ? 0 : 2);
	}
	assert_int_equal(st.zc_fixed, 0);
	assert_int_equal(st.fixed_fallback, 0);
	assert_int_equal(st.err_other + st.err_reset + st.err_cancelled, 0);
	close(tzm.c);
	close(tzm.s);
	free(tzm.one);
	for (unsigned i = 0; i < ZM_IOV; i++)
		free(tzm.part[i]);
	free(want);
	free(rx);
}

/* rp_sendmsg_zc (and rp_send_zc) from plain memory: loopback copies */
static void test_sendmsg_zc_plain_buffers(void **state)
{
	(void)state;
	zm_run(false);
}

/* the same with every notification uncopied (the hook): the callers see
 * no RP_CQE_ZC_COPIED, and zc_copied stays 0 */
static void test_zc_uncopied_notifications(void **state)
{
	(void)state;
	zm_run(true);
}

int main(void)
{
	const struct CMUnitTest all[] = {
		T(test_flush_that_gives_up_fails_the_op),
		T(test_failed_msg_ring_wake_falls_back),
		T(test_stashed_completions_keep_kernel_order),
		T(test_fd_table_without_memory_cancels_by_fd),
		T(test_close_of_no_fd_with_sq_full_fails),
		T(test_timer_armed_with_sq_full_fires_once),
		T(test_timer_freed_while_waiting_never_runs),
		T(test_timer_waiting_at_stop_is_cancelled),
		T(test_timer_freed_after_the_loop_gives_its_op_back),
		T(test_failed_init_timer_never_reaches_kernel),
		T(test_cancel_fd_op_fallback_without_closing_memory),
		T(test_unlisted_cancel_fd_leaves_anothers_closing_entry),
		T(test_send_zc_fixed_refused_falls_back),
		T(test_sendmsg_zc_plain_buffers),
		T(test_zc_uncopied_notifications),
	};

	return ENGINE_TEST_RUN("engine-faults", all);
}
