/* SPDX-License-Identifier: MIT */
/*
 * rp_link_next against the engine's own SQEs: between rp_link_next and the
 * op meant as its tail, the engine may take an SQE for itself (a wake of a
 * sleeping shard, the re-arm of a receive parked for want of a buffer) or
 * be asked for a cancel. None of those may become the link's tail: the
 * kernel would hold it until the head completes (for an idle receive,
 * never), and the tail the caller meant would run unlinked. Each case
 * has the head wait on a socket with no data; every wait is bounded.
 */
#include "engine_test.h"

#include <errno.h>
#include <string.h>

/* ======================================================================
 * rp_shard_post to a sleeping shard from a callback that has a link
 * pending: the MSG_RING wake took the link's spare slot, so the target
 * slept with the message waiting (not run within 2 s) until the head's
 * data came, and the send meant as the tail ran before the receive.
 * ====================================================================== */

static struct {
	int a, b;
	char in[8];
	bool with_tail;
	atomic_int msg, posted, sent, recvd;
	int recv_res, send_res;
	bool sent_before_recv;
} lp;

static void lp_msg(struct rp_shard *sh, void *arg)
{
	(void)sh;
	(void)arg;
	atomic_store(&lp.msg, 1);
}

static void lp_recv_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	lp.recv_res = c->res;
	atomic_store(&lp.recvd, 1);
}

static void lp_send_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	lp.send_res = c->res;
	lp.sent_before_recv = !atomic_load(&lp.recvd);
	atomic_store(&lp.sent, 1);
}

static void lp_fire(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct rp_op *head;

	(void)arg;
	(void)c;
	head = rp_recv(sh, lp.a, lp.in, sizeof(lp.in), 0, lp_recv_cb, NULL);
	CHECK(head != NULL);
	CHECK_EQ(rp_link_next(sh, head), 0);
	CHECK_EQ(rp_shard_post(sh, 1, lp_msg, NULL), 0);
	if (lp.with_tail)
		CHECK(rp_send(sh, lp.a, "sent", 4, MSG_NOSIGNAL, lp_send_cb, NULL) != NULL);
	atomic_store(&lp.posted, 1);
}

static int lp_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	/* shard 1 is asleep by then (it spins at most cfg.idle_spin_ns) */
	if (rp_shard_id(sh) == 0)
		CHECK(rp_timeout(sh, 200 * MS, lp_fire, NULL) != NULL);
	return 0;
}

static void post_behind_pending_link(bool with_tail)
{
	struct rp_runtime_config cfg = base_cfg(2);
	struct rp_runtime *rt;
	bool ran, sent = false;
	char got[4];

	memset(&lp, 0, sizeof(lp));
	lp.with_tail = with_tail;
	tcp_pair(&lp.a, &lp.b);
	cfg.init = lp_init;
	rt = rt_start(&cfg);
	assert_true(wait_for(&lp.posted, 1, WAIT_S));
	ran = wait_for(&lp.msg, 1, 2.0);
	/* the head's data: the tail may go now (and a wake held behind the
	 * head is let go, so the stop is not held either) */
	assert_int_equal(write(lp.b, "wake", 4), 4);
	if (with_tail)
		sent = wait_for(&lp.sent, 1, WAIT_S);
	rt_end(rt);
	assert_true(ran);
	assert_int_equal(lp.recv_res, 4);
	if (with_tail) {
		/* the link stayed for the send: after the receive */
		assert_true(sent);
		assert_false(lp.sent_before_recv);
		assert_int_equal(lp.send_res, 4);
		assert_int_equal(recv(lp.b, got, sizeof(got), MSG_DONTWAIT), 4);
		assert_memory_equal(got, "sent", 4);
	}
	close(lp.a);
	close(lp.b);
}

static void test_post_behind_pending_link(void **state)
{
	(void)state;
	post_behind_pending_link(true);
}

static void test_post_behind_dangling_link(void **state)
{
	(void)state;
	post_behind_pending_link(false);
}

/* ======================================================================
 * rp_buf_put from a callback that has a link pending, while another
 * connection's multishot receive is parked (one provided buffer, held):
 * the put re-armed the parked receive with the link's spare slot, so it
 * waited for an unrelated connection's head (its byte not delivered
 * within 2 s), and the nop meant as the tail ran unlinked.
 * ====================================================================== */

static struct {
	int a1, b1, a2, b2, a3, b3;
	int held_bid;
	char hin[8];
	atomic_int got1, got2, fired, tail_ran, head_ran;
	bool tail_before_head;
} bp;

static void bp_cb1(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	if (c->res > 0 && c->buf) {
		bp.held_bid = c->bid; /* kept: the shard's only buffer */
		atomic_store(&bp.got1, 1);
	}
}

static void bp_cb2(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	if (c->res > 0 && c->buf) {
		rp_buf_put(sh, c->bid);
		atomic_store(&bp.got2, 1);
	}
}

static void bp_head_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	(void)c;
	atomic_store(&bp.head_ran, 1);
}

static void bp_tail_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	(void)c;
	bp.tail_before_head = !atomic_load(&bp.head_ran);
	atomic_store(&bp.tail_ran, 1);
}

static void bp_fire(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct rp_op *head;

	(void)arg;
	(void)c;
	CHECK(atomic_load(&bp.got1));
	head = rp_recv(sh, bp.a3, bp.hin, sizeof(bp.hin), 0, bp_head_cb, NULL);
	CHECK(head != NULL);
	CHECK_EQ(rp_link_next(sh, head), 0);
	rp_buf_put(sh, (uint16_t)bp.held_bid); /* the parked receive's turn */
	CHECK(rp_nop(sh, bp_tail_cb, NULL) != NULL);
	atomic_store(&bp.fired, 1);
}

static void bp_arm_fire(struct rp_shard *sh, void *arg)
{
	(void)arg;
	CHECK(rp_timeout(sh, 1 * MS, bp_fire, NULL) != NULL);
}

static int bp_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	CHECK(rp_recv_multishot(sh, bp.a1, bp_cb1, NULL) != NULL);
	CHECK(rp_recv_multishot(sh, bp.a2, bp_cb2, NULL) != NULL);
	return 0;
}

static void test_put_behind_pending_link(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_shard_stats st;
	struct rp_runtime *rt;
	bool delivered, tail;

	(void)state;
	memset(&bp, 0, sizeof(bp));
	tcp_pair(&bp.a1, &bp.b1);
	tcp_pair(&bp.a2, &bp.b2);
	tcp_pair(&bp.a3, &bp.b3);
	cfg.bufs = 1;
	cfg.init = bp_init;
	rt = rt_start(&cfg);
	assert_int_equal(write(bp.b1, "x", 1), 1);
	assert_true(wait_for(&bp.got1, 1, WAIT_S));
	/* the second receive finds no buffer (ENOBUFS): parked, until the put */
	assert_int_equal(write(bp.b2, "y", 1), 1);
	for (int i = 0; i < 1000; i++) {
		stats_of(rt, 0, &st);
		if (st.enobufs)
			break;
		sleep_ms(2);
	}
	assert_true(st.enobufs > 0);
	assert_int_equal(rp_runtime_submit(rt, 0, bp_arm_fire, NULL), 0);
	assert_true(wait_for(&bp.fired, 1, WAIT_S));
	delivered = wait_for(&bp.got2, 1, 2.0);
	/* the head's data: the tail may go now */
	assert_int_equal(write(bp.b3, "z", 1), 1);
	tail = wait_for(&bp.tail_ran, 1, WAIT_S);
	rt_end(rt);
	assert_true(delivered);
	assert_true(tail);
	assert_false(bp.tail_before_head);
	close(bp.a1);
	close(bp.b1);
	close(bp.a2);
	close(bp.b2);
	close(bp.a3);
	close(bp.b3);
}

/* ======================================================================
 * rp_cancel with a link pending: a cancel linked behind the head runs once
 * the head completed, when its target's memory may be another op's.
 * Refused with EBUSY, the link dropped: the head runs alone, and an op
 * made after it is not chained to it (the nop below runs at once).
 * ====================================================================== */

static struct {
	int a, b, c, d;
	char in[8], in2[8];
	struct rp_op *victim;
	bool cancel_refused;
	int cancel_errno, victim_res, head_res, nop_res;
	atomic_int done, ended;
} lc;

static void lc_victim_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	lc.victim_res = c->res;
	atomic_fetch_add(&lc.ended, 1);
}

static void lc_head_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	lc.head_res = c->res;
	atomic_fetch_add(&lc.ended, 1);
}

static void lc_nop_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	lc.nop_res = c->res;
	atomic_fetch_add(&lc.ended, 1);
}

static void lc_msg(struct rp_shard *sh, void *arg)
{
	struct rp_op *head;

	(void)arg;
	lc.victim = rp_recv(sh, lc.c, lc.in2, sizeof(lc.in2), 0, lc_victim_cb, NULL);
	CHECK(lc.victim != NULL);
	head = rp_recv(sh, lc.a, lc.in, sizeof(lc.in), 0, lc_head_cb, NULL);
	CHECK(head != NULL);
	CHECK_EQ(rp_link_next(sh, head), 0);
	lc.cancel_refused = !rp_cancel(sh, lc.victim, NULL, NULL);
	lc.cancel_errno = errno;
	CHECK(rp_nop(sh, lc_nop_cb, NULL) != NULL); /* unlinked: runs at once */
	atomic_store(&lc.done, 1);
}

static void test_cancel_behind_pending_link(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	bool nop_ran;

	(void)state;
	memset(&lc, 0, sizeof(lc));
	tcp_pair(&lc.a, &lc.b);
	tcp_pair(&lc.c, &lc.d);
	rt = rt_start(&cfg);
	assert_int_equal(rp_runtime_submit(rt, 0, lc_msg, NULL), 0);
	assert_true(wait_for(&lc.done, 1, WAIT_S));
	/* the nop ran although the head (an idle receive) has not */
	nop_ran = wait_for(&lc.ended, 1, WAIT_S);
	assert_int_equal(write(lc.b, "head", 4), 4);
	assert_int_equal(write(lc.d, "vict", 4), 4);
	assert_true(wait_for(&lc.ended, 3, WAIT_S));
	rt_end(rt);
	assert_true(nop_ran);
	assert_true(lc.cancel_refused);
	assert_int_equal(lc.cancel_errno, EBUSY);
	assert_int_equal(lc.nop_res, 0);
	assert_int_equal(lc.head_res, 4);
	assert_int_equal(lc.victim_res, 4); /* never cancelled */
	close(lc.a);
	close(lc.b);
	close(lc.c);
	close(lc.d);
}

int main(void)
{
	const struct CMUnitTest all[] = {
		T(test_post_behind_pending_link),
		T(test_post_behind_dangling_link),
		T(test_put_behind_pending_link),
		T(test_cancel_behind_pending_link),
	};

	return ENGINE_TEST_RUN("engine-link", all);
}
