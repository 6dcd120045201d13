/* SPDX-License-Identifier: MIT */
/*
 * engine: cancelling a multishot receive in the window where the kernel has
 * just ended it with ENOBUFS and its CQE is not reaped yet (rp_cancel and
 * rp_cancel_fd), rp_cancel_op with the pool empty, and provided buffers
 * given back twice.
 *
 * The window is made deterministic: the peer has written more than every
 * provided buffer holds before the receive is armed, so one task-work run
 * posts all the data CQEs and then the ENOBUFS end; the first data callback
 * (same reap batch, before the ENOBUFS CQE) asks for the cancel.
 */
#include "engine_test.h"

#define NBUFS	 8
#define BUF_SIZE 4096

/* ======================================================================
 * rp_cancel / rp_cancel_fd racing the kernel's ENOBUFS end
 * ====================================================================== */

static struct {
	bool by_fd;
	int a, b;
	struct rp_op *op;
	atomic_int cancel_done, final_seen, after_final, done;
	bool final_before_settle;
	unsigned data_after_cancel;
	int cancel_res, final_res;
	unsigned data_cqes, held_n;
	uint16_t held[NBUFS];
	bool cancel_sent;
} tc;

static void cr_settle(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	(void)c;
	/* before the stop, which would end any receive anyway */
	tc.final_before_settle = atomic_load(&tc.final_seen);
	atomic_store(&tc.done, 1);
}

static void cr_cancel_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	tc.cancel_res = c->res;
	atomic_store(&tc.cancel_done, 1);
	/* Give every buffer back: a receive that survived the cancel is
	 * re-armed (or un-parked) now and takes the data written next. */
	for (unsigned i = 0; i < tc.held_n; i++)
		rp_buf_put(sh, tc.held[i]);
	tc.held_n = 0;
	CHECK_EQ(write(tc.b, "more data", 9), 9);
	CHECK(rp_timeout(sh, 50 * MS, cr_settle, NULL) != NULL);
}

static void cr_recv_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	if (atomic_load(&tc.final_seen)) {
		atomic_fetch_add(&tc.after_final, 1);
		if (c->buf)
			rp_buf_put(sh, c->bid);
		return;
	}
	if (c->res > 0) {
		tc.data_cqes++;
		if (atomic_load(&tc.cancel_done))
			tc.data_after_cancel++;
		if (c->buf && tc.held_n < NBUFS)
			tc.held[tc.held_n++] = c->bid; /* hold: the ring runs dry */
		else if (c->buf)
			rp_buf_put(sh, c->bid);
	}
	if (!tc.cancel_sent) {
		tc.cancel_sent = true;
		if (tc.by_fd)
			CHECK(rp_cancel_fd(sh, tc.a, cr_cancel_cb, NULL) != NULL);
		else
			CHECK(rp_cancel(sh, tc.op, cr_cancel_cb, NULL) != NULL);
	}
	if (!(c->flags & RP_CQE_MORE)) {
		tc.final_res = c->res;
		atomic_store(&tc.final_seen, 1);
	}
}

static int cr_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	tc.op = rp_recv_multishot(sh, tc.a, cr_recv_cb, NULL);
	CHECK(tc.op != NULL);
	return 0;
}

static void run_cancel_race(bool by_fd)
{
	static uint8_t fill[(NBUFS + 4) * BUF_SIZE];
	struct rp_runtime_config cfg = base_cfg(1);

	memset(&tc, 0, sizeof(tc));
	tc.by_fd = by_fd;
	tcp_pair(&tc.a, &tc.b);
	/* more than the buffers hold, queued before the receive is armed */
	assert_int_equal(write(tc.b, fill, sizeof(fill)), (ssize_t)sizeof(fill));
	cfg.bufs = NBUFS;
	cfg.buf_size = BUF_SIZE;
	rt_run_until(&cfg, cr_init, &tc.done, 1, NULL);
	print_message("# %s: %u data CQEs before the end, cancel res %d, final res %d\n",
		      by_fd ? "rp_cancel_fd" : "rp_cancel", tc.data_cqes, tc.cancel_res,
		      tc.final_res);
	/* the receive ended for good, with an error, once the cancel was asked:
	 * not re-armed to take the data written after the cancel completed */
	if (!tc.final_before_settle || tc.data_after_cancel)
		fail_msg("the cancelled multishot receive was re-armed instead of ending "
			 "(%u data callbacks after the cancel)",
			 tc.data_after_cancel);
	assert_true(tc.final_res <= 0);
	assert_int_equal(atomic_load(&tc.after_final), 0);
	assert_true(tc.data_cqes >= 1);
	close(tc.a);
	close(tc.b);
}

static void test_cancel_while_kernel_ends_enobufs(void **state)
{
	(void)state;
	run_cancel_race(false);
}

static void test_cancel_fd_while_kernel_ends_enobufs(void **state)
{
	(void)state;
	run_cancel_race(true);
}

/* ======================================================================
 * rp_cancel_op with the pool empty
 *
 * A caller that must stop reading because it has no memory (a relay
 * parking what it cannot queue) could not: rp_cancel takes an op from the
 * pool, so with the pool empty it failed (ENOMEM) and the multishot
 * receive stayed armed, taking buffer after buffer. rp_cancel_op needs no
 * op: with every object of every class taken, the cancel still goes out
 * and the receive ends with -ECANCELED, then takes nothing written later.
 * The same for every op on an fd: rp_cancel_fd needs an op too (ENOMEM),
 * rp_cancel_fd_op none (a relay keeping its sockets used to shut the
 * caller's socket down both ways instead).
 * ====================================================================== */

#define NM_MAX (POOL_BYTES / RP_POOL_MIN_CLASS + 64)

static struct {
	int a, b;
	struct rp_op *op;
	void **hog;
	size_t nhog;
	bool by_fd; /* rp_cancel_fd / rp_cancel_fd_op */
	bool pool_empty, old_refused, empty_at_final;
	int old_errno, ret, final_res;
	unsigned finals, after_final;
	atomic_int cancelled, done;
} tnm;

static void nm_take(struct rp_pool *pool, size_t size)
{
	void *x;

	while (tnm.nhog < NM_MAX && (x = rp_pool_alloc(pool, size)))
		tnm.hog[tnm.nhog++] = x;
}

static void nm_recv_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	if (c->buf)
		rp_buf_put(sh, c->bid);
	if (tnm.finals) {
		tnm.after_final++;
		return;
	}
	if (c->flags & RP_CQE_MORE)
		return;
	tnm.finals++;
	tnm.final_res = c->res;
	/* still without memory: the cancel needed none */
	tnm.empty_at_final = !rp_pool_alloc(rp_shard_pool(sh), 1);
	for (size_t i = 0; i < tnm.nhog; i++)
		rp_pool_free(tnm.hog[i]);
	tnm.nhog = 0;
	atomic_store(&tnm.done, 1);
}

static int nm_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	tnm.op = rp_recv_multishot(sh, tnm.a, nm_recv_cb, NULL);
	CHECK(tnm.op != NULL);
	return 0;
}

static void nm_cancel_msg(struct rp_shard *sh, void *arg)
{
	struct rp_pool *pool = rp_shard_pool(sh);

	(void)arg;
	nm_take(pool, RP_POOL_MAX_CLASS); /* every free span */
	for (size_t sz = RP_POOL_MIN_CLASS; sz < RP_POOL_MAX_CLASS; sz *= 2)
		nm_take(pool, sz);
	CHECK(tnm.nhog < NM_MAX); /* the pool ran dry, not the array */
	tnm.pool_empty = !rp_pool_alloc(pool, 1);
	/* the old way: no op for the cancel */
	if (tnm.by_fd) {
		tnm.old_refused = !rp_cancel_fd(sh, tnm.a, NULL, NULL);
		tnm.old_errno = errno;
		tnm.ret = rp_cancel_fd_op(sh, tnm.a);
	} else {
		tnm.old_refused = !rp_cancel(sh, tnm.op, NULL, NULL);
		tnm.old_errno = errno;
		tnm.ret = rp_cancel_op(sh, tnm.op);
	}
	atomic_store(&tnm.cancelled, 1);
}

static void run_cancel_without_memory(bool by_fd)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_shard_stats st;
	struct rp_runtime *rt;
	bool ok;

	memset(&tnm, 0, sizeof(tnm));
	tnm.by_fd = by_fd;
	tnm.hog = calloc(NM_MAX, sizeof(*tnm.hog));
	assert_non_null(tnm.hog);
	tcp_pair(&tnm.a, &tnm.b);
	cfg.bufs = NBUFS;
	cfg.buf_size = BUF_SIZE;
	cfg.init = nm_init;
	rt = rt_start(&cfg);
	assert_int_equal(rp_runtime_submit(rt, 0, nm_cancel_msg, NULL), 0);
	ok = wait_for(&tnm.cancelled, 1, WAIT_S) && wait_for(&tnm.done, 1, WAIT_S);
	/* written after the end: a receive still armed would take it */
	assert_int_equal(write(tnm.b, "late", 4), 4);
	sleep_ms(50);
	stats_of(rt, 0, &st);
	rt_end(rt);
	print_message("# pool empty %d: %s refused %d (errno %d), %s %d, "
		      "final %d (pool still empty %d), %u callbacks after it, op_cancels %llu\n",
		      tnm.pool_empty, by_fd ? "rp_cancel_fd" : "rp_cancel", tnm.old_refused,
		      tnm.old_errno, by_fd ? "rp_cancel_fd_op" : "rp_cancel_op", tnm.ret,
		      tnm.final_res, tnm.empty_at_final, tnm.after_final,
		      (unsigned long long)st.op_cancels);
	assert_true(ok);
	assert_true(tnm.pool_empty);
	assert_true(tnm.old_refused);
	assert_int_equal(tnm.old_errno, ENOMEM);
	assert_int_equal(tnm.ret, 0);
	assert_int_equal(tnm.finals, 1);
	assert_int_equal(tnm.final_res, -ECANCELED);
	assert_true(tnm.empty_at_final);
	assert_int_equal(tnm.after_final, 0);
	assert_int_equal(st.op_cancels, 1);
	assert_int_equal(rp_cancel_op(NULL, NULL), -EINVAL);
	free(tnm.hog);
	close(tnm.a);
	close(tnm.b);
}

static void test_cancel_op_without_memory(void **state)
{
	(void)state;
	run_cancel_without_memory(false);
}

static void test_cancel_fd_op_without_memory(void **state)
{
	(void)state;
	run_cancel_without_memory(true);
}

/* ======================================================================
 * An rp_link_next whose linked op cannot be made (pool empty): the link is
 * dropped, so the next SQE taken, an unrelated op's, does not run as the
 * failed pair's second half. Before, it was chained behind the read and
 * ended with -ECANCELED when the read failed.
 * ====================================================================== */

static struct {
	int dirfd;
	int close_fd; /* >= 0: the linked half is an rp_close of it */
	bool link_ok, send_refused;
	int send_errno, read_res, nop_res;
	atomic_int ended;
} tld;

static void ld_read_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	tld.read_res = c->res;
	atomic_fetch_add(&tld.ended, 1);
}

static void ld_nop_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	tld.nop_res = c->res;
	atomic_fetch_add(&tld.ended, 1);
}

static void ld_msg(struct rp_shard *sh, void *arg)
{
	static char buf[64];
	struct rp_pool *pool = rp_shard_pool(sh);
	/* a read of a directory fails (-EISDIR): a linked op would end -ECANCELED */
	struct rp_op *rd = rp_read(sh, tld.dirfd, buf, sizeof(buf), 0, ld_read_cb, NULL);

	(void)arg;
	CHECK(rd != NULL);
	tld.link_ok = rp_link_next(sh, rd) == 0;
	nm_take(pool, RP_POOL_MAX_CLASS);
	for (size_t sz = RP_POOL_MIN_CLASS; sz < RP_POOL_MAX_CLASS; sz *= 2)
		nm_take(pool, sz);
	/* the linked half: no memory */
	if (tld.close_fd >= 0)
		tld.send_refused = !rp_close(sh, tld.close_fd, NULL, NULL);
	else
		tld.send_refused = !rp_nop(sh, ld_nop_cb, NULL);
	tld.send_errno = errno;
	for (size_t i = 0; i < tnm.nhog; i++)
		rp_pool_free(tnm.hog[i]);
	tnm.nhog = 0;
	CHECK(rp_nop(sh, ld_nop_cb, NULL) != NULL); /* unrelated: runs alone */
}

static void link_dropped_without_memory(bool close_half)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	int p[2] = { -1, -1 };
	bool ok;

	memset(&tnm, 0, sizeof(tnm));
	memset(&tld, 0, sizeof(tld));
	tld.close_fd = -1;
	if (close_half) {
		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
		tld.close_fd = p[0];
	}
	tnm.hog = calloc(NM_MAX, sizeof(*tnm.hog));
	assert_non_null(tnm.hog);
	tld.dirfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(tld.dirfd >= 0);
	rt = rt_start(&cfg);
	assert_int_equal(rp_runtime_submit(rt, 0, ld_msg, NULL), 0);
	ok = wait_for(&tld.ended, 2, WAIT_S);
	rt_end(rt);
	print_message("# link %d, linked op refused %d (errno %d), read %d, next op %d\n",
		      tld.link_ok, tld.send_refused, tld.send_errno, tld.read_res, tld.nop_res);
	assert_true(ok);
	assert_true(tld.link_ok);
	assert_true(tld.send_refused);
	assert_int_equal(tld.send_errno, ENOMEM);
	assert_true(tld.read_res < 0);
	assert_int_equal(tld.nop_res, 0);
	free(tnm.hog);
	close(tld.dirfd);
	if (close_half) {
		/* refused: the fd is still the caller's to close */
		assert_int_equal(close(p[0]), 0);
		close(p[1]);
	}
}

static void test_link_dropped_without_memory(void **state)
{
	(void)state;
	link_dropped_without_memory(false);
}

/* the same with rp_close as the linked half (its refusal kept the link:
 * the unrelated nop ran behind the failing read, -ECANCELED) */
static void test_link_dropped_close_without_memory(void **state)
{
	(void)state;
	link_dropped_without_memory(true);
}

/* ======================================================================
 * rp_buf_put of a buffer that is not out
 * ====================================================================== */

#define DP_TOTAL (64 * 1024)

static struct {
	int a, b;
	atomic_int done;
	size_t got;
	bool bad_data, doubled;
	uint8_t data[DP_TOTAL];
} tdp;

static void dp_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	if (c->res <= 0) {
		atomic_store(&tdp.done, 1);
		return;
	}
	if (tdp.got + (size_t)c->res > DP_TOTAL) {
		tdp.bad_data = true;
	} else {
		memcpy(tdp.data + tdp.got, c->buf, (size_t)c->res);
		tdp.got += (size_t)c->res;
	}
	rp_buf_put(sh, c->bid);
	if (!tdp.doubled) {
		/* a second put of the same id, and one of an id never handed out */
		tdp.doubled = true;
		rp_buf_put(sh, c->bid);
		rp_buf_put(sh, (uint16_t)(NBUFS + 3));
	}
	if (tdp.got == DP_TOTAL)
		atomic_store(&tdp.done, 1);
}

static int dp_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	CHECK(rp_recv_multishot(sh, tdp.a, dp_cb, NULL) != NULL);
	return 0;
}

static void *dp_writer(void *arg)
{
	static uint8_t src[DP_TOTAL];
	size_t off = 0;
	double end = now_s() + WAIT_S;

	(void)arg;
	fill_pattern(src, sizeof(src), 0);
	while (off < sizeof(src) && now_s() < end) {
		size_t n = sizeof(src) - off < 1000 ? sizeof(src) - off : 1000;
		ssize_t w = write(tdp.b, src + off, n);

		if (w <= 0)
			break;
		off += (size_t)w;
	}
	return NULL;
}

static void test_buf_put_twice_is_refused(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_shard_stats st;
	struct rp_runtime *rt;
	pthread_t w;
	uint8_t want[DP_TOTAL];
	bool ok;

	(void)state;
	memset(&tdp, 0, sizeof(tdp));
	tcp_pair(&tdp.a, &tdp.b);
	cfg.bufs = NBUFS;
	cfg.buf_size = BUF_SIZE;
	cfg.init = dp_init;
	rt = rt_start(&cfg);
	assert_int_equal(pthread_create(&w, NULL, dp_writer, NULL), 0);
	ok = wait_for(&tdp.done, 1, WAIT_S);
	pthread_join(w, NULL);
	stats_of(rt, 0, &st);
	rt_end(rt);
	assert_true(ok);
	/* both bad puts refused and counted; a buffer in the ring twice would
	 * have had two receives write into it, and the stream would not match */
	assert_int_equal(st.buf_misuse, 2);
	assert_false(tdp.bad_data);
	assert_int_equal(tdp.got, DP_TOTAL);
	fill_pattern(want, sizeof(want), 0);
	assert_memory_equal(tdp.data, want, DP_TOTAL);
	close(tdp.a);
	close(tdp.b);
}

int main(void)
{
	const struct CMUnitTest all[] = {
		T(test_cancel_while_kernel_ends_enobufs),
		T(test_cancel_fd_while_kernel_ends_enobufs),
		T(test_cancel_op_without_memory),
		T(test_cancel_fd_op_without_memory),
		T(test_link_dropped_without_memory),
		T(test_link_dropped_close_without_memory),
		T(test_buf_put_twice_is_refused),
	};

	return ENGINE_TEST_RUN("engine-cancel", all);
}
