/* SPDX-License-Identifier: MIT */
/*
 * engine: every op kind on real fds (files from mkstemp, pipes, loopback TCP,
 * socketpair), multishot recv re-armed after ENOBUFS, fd-number reuse after
 * rp_close, cross-shard messages and rp_runtime_submit in order under load,
 * shutdown with hundreds of ops in flight, and the error paths.
 *
 * Callbacks run on shard threads, where a cmocka assert cannot unwind: they
 * record the first failed CHECK, and the control thread fails the test after
 * joining the shards. Every wait is bounded by a deadline, and a SIGALRM
 * watchdog ends the process if a join itself hangs.
 *
 * `test_engine threads` runs only the cross-shard, submit and shutdown tests
 * (the TSan build's "threads" suite). RP_TEST_REDUCED=1 lowers the counts;
 * RP_TEST_FILTER=pattern runs the matching tests only.
 */
#include "engine_test.h"

/* ======================================================================
 * nop, timeout
 * ====================================================================== */

static struct {
	atomic_int done;
	double t0;
	double elapsed;
	unsigned inflight_after_prep;
} tn;

static void nop_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	CHECK(arg == &tn);
	CHECK_EQ(c->res, 0);
	CHECK_EQ(c->flags, 0);
	CHECK(c->buf == NULL);
	atomic_fetch_add(&tn.done, 1);
}

static void timer_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	tn.elapsed = now_s() - tn.t0;
	CHECK_EQ(c->res, -ETIME);
	CHECK_EQ(c->flags, 0);
	atomic_fetch_add(&tn.done, 1);
}

static int nop_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	CHECK(rp_shard_self() == sh);
	CHECK_EQ(rp_shard_id(sh), 0);
	CHECK(rp_shard_pool(sh) != NULL);
	CHECK(!rp_shard_stopping(sh));
	for (int i = 0; i < 10; i++)
		CHECK(rp_nop(sh, nop_cb, &tn) != NULL);
	CHECK(rp_nop(sh, NULL, NULL) != NULL); /* NULL callback: only counted */
	tn.t0 = now_s();
	CHECK(rp_timeout(sh, 30 * MS, timer_cb, NULL) != NULL);
	tn.inflight_after_prep = rp_shard_inflight(sh);
	return 0;
}

static void test_nop_and_timeout(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_shard_stats st;
	struct rp_runtime *rt;

	(void)state;
	memset(&tn, 0, sizeof(tn));
	cfg.init = nop_init;
	rt = rt_start(&cfg);
	assert_true(wait_for(&tn.done, 11, WAIT_S));
	rt_stop_join(rt);
	stats_of(rt, 0, &st);
	rp_runtime_destroy(rt);
	check_failures();
	assert_int_equal(tn.inflight_after_prep, 12);
	/* io_uring timeouts are hrtimers: never early; "roughly" is generous
	 * because the host is shared */
	assert_true(tn.elapsed >= 0.0295);
	assert_true(tn.elapsed < 2.0);
	assert_true(st.err_timeout >= 1);
	assert_true(st.ops_completed >= 12);
	assert_true(st.ops_submitted >= 12);
	assert_true(st.submits >= 1);
}

/* ======================================================================
 * read, write, readv, writev on a file and a pipe
 * ====================================================================== */

#define RW_LEN 8192

static struct {
	atomic_int done;
	int file, pr, pw;
	int step;
	uint8_t wbuf[RW_LEN], rbuf[RW_LEN];
	uint8_t v1[100], v2[3000], v3[1000], r1[2000], r2[2100];
	struct iovec wiov[3], riov[2];
} trw;

static void rw_step(struct rp_shard *sh, void *arg, const struct rp_cqe *c);

static void rw_next(struct rp_shard *sh)
{
	struct rp_op *op = NULL;

	switch (trw.step) {
	case 0: /* write the file at offset 0 */
		fill_pattern(trw.wbuf, RW_LEN, 0);
		op = rp_write(sh, trw.file, trw.wbuf, RW_LEN, 0, rw_step, NULL);
		break;
	case 1: /* read it back */
		memset(trw.rbuf, 0, RW_LEN);
		op = rp_read(sh, trw.file, trw.rbuf, RW_LEN, 0, rw_step, NULL);
		break;
	case 2: /* writev three pieces at RW_LEN */
		fill_pattern(trw.v1, sizeof(trw.v1), 1000);
		fill_pattern(trw.v2, sizeof(trw.v2), 1100);
		fill_pattern(trw.v3, sizeof(trw.v3), 4100);
		trw.wiov[0] = (struct iovec){trw.v1, sizeof(trw.v1)};
		trw.wiov[1] = (struct iovec){trw.v2, sizeof(trw.v2)};
		trw.wiov[2] = (struct iovec){trw.v3, sizeof(trw.v3)};
		op = rp_writev(sh, trw.file, trw.wiov, 3, RW_LEN, rw_step, NULL);
		break;
	case 3: /* readv them back, split differently */
		trw.riov[0] = (struct iovec){trw.r1, sizeof(trw.r1)};
		trw.riov[1] = (struct iovec){trw.r2, sizeof(trw.r2)};
		op = rp_readv(sh, trw.file, trw.riov, 2, RW_LEN, rw_step, NULL);
		break;
	case 4: /* pipe: writev with no offset */
		op = rp_writev(sh, trw.pw, trw.wiov, 3, (uint64_t)-1, rw_step, NULL);
		break;
	case 5: /* pipe: readv with no offset */
		memset(trw.r1, 0, sizeof(trw.r1));
		memset(trw.r2, 0, sizeof(trw.r2));
		op = rp_readv(sh, trw.pr, trw.riov, 2, (uint64_t)-1, rw_step, NULL);
		break;
	case 6: /* pipe: write then read */
		op = rp_write(sh, trw.pw, "ringplane", 9, (uint64_t)-1, rw_step, NULL);
		break;
	case 7:
		memset(trw.rbuf, 0, 16);
		op = rp_read(sh, trw.pr, trw.rbuf, 16, (uint64_t)-1, rw_step, NULL);
		break;
	default:
		atomic_store(&trw.done, 1);
		return;
	}
	CHECK(op != NULL);
}

static bool iov_matches_v(void)
{
	uint8_t all[4100], got[4100];

	memcpy(all, trw.v1, 100);
	memcpy(all + 100, trw.v2, 3000);
	memcpy(all + 3100, trw.v3, 1000);
	memcpy(got, trw.r1, 2000);
	memcpy(got + 2000, trw.r2, 2100);
	return memcmp(all, got, sizeof(all)) == 0;
}

static void rw_step(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	switch (trw.step) {
	case 0:
	case 1:
		CHECK_EQ(c->res, RW_LEN);
		if (trw.step == 1)
			CHECK(memcmp(trw.wbuf, trw.rbuf, RW_LEN) == 0);
		break;
	case 2:
	case 3:
	case 4:
		CHECK_EQ(c->res, 4100);
		if (trw.step == 3)
			CHECK(iov_matches_v());
		break;
	case 5:
		CHECK_EQ(c->res, 4100);
		CHECK(iov_matches_v());
		break;
	case 6:
		CHECK_EQ(c->res, 9);
		break;
	case 7:
		CHECK_EQ(c->res, 9);
		CHECK(memcmp(trw.rbuf, "ringplane", 9) == 0);
		break;
	default:
		break;
	}
	CHECK_EQ(c->flags, 0);
	trw.step++;
	if (!atomic_load(&g_fail))
		rw_next(sh);
}

static int rw_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	rw_next(sh);
	return 0;
}

static void test_read_write_readv_writev(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	uint8_t check[RW_LEN];
	int p[2];

	(void)state;
	memset(&trw, 0, sizeof(trw));
	trw.file = tmp_file();
	assert_int_equal(pipe(p), 0);
	trw.pr = p[0];
	trw.pw = p[1];
	cfg.init = rw_init;
	{
		struct rp_runtime *rt = rt_start(&cfg);
		bool ok = wait_for(&trw.done, 1, WAIT_S);

		rt_end(rt);
		assert_true(ok);
	}
	/* the kernel's view of the file agrees */
	assert_int_equal(pread(trw.file, check, RW_LEN, 0), RW_LEN);
	assert_memory_equal(check, trw.wbuf, RW_LEN);
	assert_int_equal(pread(trw.file, check, 100, RW_LEN), 100);
	assert_memory_equal(check, trw.v1, 100);
	close(trw.file);
	close(trw.pr);
	close(trw.pw);
}

/* ======================================================================
 * read_fixed / write_fixed
 * ====================================================================== */

static struct {
	atomic_int done;
	int file;
	uint8_t *a, *b;
	int step;
	int foreign_errno[3];
	bool foreign_null[3];
} tfx;

static void fx_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	CHECK_EQ(c->res, 4096);
	if (tfx.step++ == 0) {
		memset(tfx.b, 0, 4096);
		CHECK(rp_read_fixed(sh, tfx.file, tfx.b, 4096, 0, fx_cb, NULL) != NULL);
		return;
	}
	CHECK(memcmp(tfx.a, tfx.b, 4096) == 0);
	rp_pool_free(tfx.a);
	rp_pool_free(tfx.b);
	atomic_store(&tfx.done, 1);
}

static int fx_init(struct rp_shard *sh, void *arg)
{
	static uint8_t not_pool[4096];
	struct rp_op *op;
	uint8_t *heap = malloc(4096);

	(void)arg;
	/* buffers outside the shard's pool are refused */
	errno = 0;
	op = rp_write_fixed(sh, tfx.file, not_pool, sizeof(not_pool), 0, fx_cb, NULL);
	tfx.foreign_null[0] = op == NULL;
	tfx.foreign_errno[0] = errno;
	errno = 0;
	op = rp_read_fixed(sh, tfx.file, heap, 4096, 0, fx_cb, NULL);
	tfx.foreign_null[1] = op == NULL;
	tfx.foreign_errno[1] = errno;
	free(heap);
	tfx.a = rp_pool_alloc(rp_shard_pool(sh), 4096);
	tfx.b = rp_pool_alloc(rp_shard_pool(sh), 4096);
	CHECK(tfx.a && tfx.b);
	if (!tfx.a || !tfx.b)
		return 0;
	/* a pool buffer with a length running past the arena is refused too */
	errno = 0;
	op = rp_write_fixed(sh, tfx.file, tfx.a, (unsigned)(POOL_BYTES * 2), 0, fx_cb, NULL);
	tfx.foreign_null[2] = op == NULL;
	tfx.foreign_errno[2] = errno;
	fill_pattern(tfx.a, 4096, 77);
	CHECK(rp_write_fixed(sh, tfx.file, tfx.a, 4096, 0, fx_cb, NULL) != NULL);
	return 0;
}

static void run_fixed(bool register_buffers, struct rp_shard_stats *st)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	uint8_t check[4096], want[4096];
	bool ok;

	memset(&tfx, 0, sizeof(tfx));
	tfx.file = tmp_file();
	cfg.register_buffers = register_buffers;
	cfg.init = fx_init;
	rt = rt_start(&cfg);
	ok = wait_for(&tfx.done, 1, WAIT_S);
	rt_stop_join(rt);
	stats_of(rt, 0, st);
	rp_runtime_destroy(rt);
	check_failures();
	assert_true(ok);
	for (int i = 0; i < 3; i++) {
		assert_true(tfx.foreign_null[i]);
		assert_int_equal(tfx.foreign_errno[i], EINVAL);
	}
	assert_int_equal(pread(tfx.file, check, 4096, 0), 4096);
	fill_pattern(want, 4096, 77);
	assert_memory_equal(check, want, 4096);
	close(tfx.file);
}

static void test_fixed_buffers(void **state)
{
	struct rp_shard_stats st;

	(void)state;
	run_fixed(true, &st);
	if (st.fixed_fallback)
		printf("# note: buffer registration refused here (RLIMIT_MEMLOCK?): "
		       "fixed ops ran as plain ones (fixed_fallback=%llu)\n",
		       (unsigned long long)st.fixed_fallback);
	/* without registration the same calls work and are counted as fallbacks */
	run_fixed(false, &st);
	assert_int_equal(st.fixed_fallback, 2);
}

/* ======================================================================
 * accept multishot, connect
 * ====================================================================== */

#define NCONN 4

static struct {
	atomic_int accepted, connected, accept_final;
	int accept_final_res;
	int lfd;
	struct sockaddr_in addr;
	int cfd[NCONN];
	int sfd[NCONN];
	bool bad_fd_refused, bad_len_refused;
} tac;

static void accept_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	if (!(c->flags & RP_CQE_MORE)) {
		tac.accept_final_res = c->res;
		atomic_fetch_add(&tac.accept_final, 1);
		return;
	}
	CHECK(c->res >= 0);
	if (c->res >= 0) {
		int i = atomic_load(&tac.accepted);

		CHECK(i < NCONN);
		if (i < NCONN)
			tac.sfd[i] = c->res;
		atomic_fetch_add(&tac.accepted, 1);
	}
}

static void connect_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	CHECK_EQ(c->res, 0);
	CHECK_EQ(c->flags, 0);
	atomic_fetch_add(&tac.connected, 1);
}

static int accept_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	errno = 0;
	tac.bad_fd_refused = rp_accept_multishot(sh, -1, accept_cb, NULL) == NULL && errno == EBADF;
	errno = 0;
	{
		struct sockaddr_storage big;

		memset(&big, 0, sizeof(big));
		tac.bad_len_refused = rp_connect(sh, 0, (struct sockaddr *)&big, sizeof(big),
						 connect_cb, NULL) == NULL &&
				      errno == EINVAL;
	}
	CHECK(rp_accept_multishot(sh, tac.lfd, accept_cb, NULL) != NULL);
	for (int i = 0; i < NCONN; i++) {
		tac.cfd[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		CHECK(tac.cfd[i] >= 0);
		CHECK(rp_connect(sh, tac.cfd[i], (struct sockaddr *)&tac.addr, sizeof(tac.addr),
				 connect_cb, NULL) != NULL);
	}
	return 0;
}

static void test_accept_multishot_and_connect(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	bool ok;

	(void)state;
	memset(&tac, 0, sizeof(tac));
	tac.lfd = tcp_listener(&tac.addr);
	cfg.init = accept_init;
	rt = rt_start(&cfg);
	ok = wait_for(&tac.accepted, NCONN, WAIT_S) && wait_for(&tac.connected, NCONN, WAIT_S);
	/* still armed: no final callback before stop */
	assert_int_equal(atomic_load(&tac.accept_final), 0);
	rt_end(rt);
	assert_true(ok);
	assert_true(tac.bad_fd_refused);
	assert_true(tac.bad_len_refused);
	/* stop ended the multishot accept: one final callback, cancelled */
	assert_int_equal(atomic_load(&tac.accept_final), 1);
	assert_int_equal(tac.accept_final_res, -ECANCELED);
	for (int i = 0; i < NCONN; i++) {
		struct sockaddr_in peer, local;
		socklen_t l1 = sizeof(peer), l2 = sizeof(local);

		/* each accepted fd is the far end of one of our connects */
		assert_int_equal(getpeername(tac.sfd[i], (struct sockaddr *)&peer, &l1), 0);
		assert_int_equal(getsockname(tac.sfd[i], (struct sockaddr *)&local, &l2), 0);
		assert_int_equal(local.sin_port, tac.addr.sin_port);
		close(tac.sfd[i]);
		close(tac.cfd[i]);
	}
	close(tac.lfd);
}

/* ======================================================================
 * send, recv, sendmsg
 * ====================================================================== */

static struct {
	atomic_int done;
	int c, s, step;
	char rbuf[64];
	struct iovec iov[2];
	struct msghdr msg;
} tsr;

static void sr_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	const char *what = arg;

	CHECK_EQ(c->flags, 0);
	if (!strcmp(what, "send")) {
		CHECK_EQ(c->res, 5);
	} else if (!strcmp(what, "recv")) {
		CHECK_EQ(c->res, 5);
		CHECK(memcmp(tsr.rbuf, "hello", 5) == 0);
		/* next: sendmsg of two pieces, received with MSG_WAITALL */
		tsr.iov[0] = (struct iovec){(void *)"ring", 4};
		tsr.iov[1] = (struct iovec){(void *)"plane", 5};
		memset(&tsr.msg, 0, sizeof(tsr.msg));
		tsr.msg.msg_iov = tsr.iov;
		tsr.msg.msg_iovlen = 2;
		memset(tsr.rbuf, 0, sizeof(tsr.rbuf));
		CHECK(rp_recv(sh, tsr.s, tsr.rbuf, 9, MSG_WAITALL, sr_cb, "recv2") != NULL);
		CHECK(rp_sendmsg(sh, tsr.c, &tsr.msg, MSG_NOSIGNAL, sr_cb, "sendmsg") != NULL);
	} else if (!strcmp(what, "sendmsg")) {
		CHECK_EQ(c->res, 9);
	} else if (!strcmp(what, "recv2")) {
		CHECK_EQ(c->res, 9);
		CHECK(memcmp(tsr.rbuf, "ringplane", 9) == 0);
	}
	atomic_fetch_add(&tsr.done, 1);
}

static int sr_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	CHECK(rp_recv(sh, tsr.s, tsr.rbuf, sizeof(tsr.rbuf), 0, sr_cb, "recv") != NULL);
	CHECK(rp_send(sh, tsr.c, "hello", 5, MSG_NOSIGNAL, sr_cb, "send") != NULL);
	return 0;
}

static void test_send_recv_sendmsg(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	bool ok;

	(void)state;
	memset(&tsr, 0, sizeof(tsr));
	tcp_pair(&tsr.c, &tsr.s);
	cfg.init = sr_init;
	rt = rt_start(&cfg);
	ok = wait_for(&tsr.done, 4, WAIT_S);
	rt_end(rt);
	assert_true(ok);
	close(tsr.c);
	close(tsr.s);
}

/* ======================================================================
 * recv multishot (provided buffers)
 * ====================================================================== */

#define MS_CHUNK  1000
#define MS_NCHUNK 5

static struct {
	atomic_int done;
	int c, s;
	uint8_t tx[MS_CHUNK * MS_NCHUNK];
	uint8_t rx[MS_CHUNK * MS_NCHUNK];
	size_t got;
	int more_cqes, final_res, puts;
	unsigned buf_size;
} tms;

static void ms_send_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	CHECK_EQ(c->res, MS_CHUNK);
}

static void ms_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	if (c->res > 0) {
		CHECK(c->flags & RP_CQE_MORE);
		CHECK(c->buf != NULL);
		CHECK((unsigned)c->res <= tms.buf_size);
		CHECK(tms.got + (size_t)c->res <= sizeof(tms.rx));
		if (c->buf && tms.got + (size_t)c->res <= sizeof(tms.rx))
			memcpy(tms.rx + tms.got, c->buf, (size_t)c->res);
		tms.got += (size_t)c->res;
		tms.more_cqes++;
		rp_buf_put(sh, c->bid);
		tms.puts++;
		if (tms.got == sizeof(tms.tx))
			CHECK(shutdown(tms.c, SHUT_WR) == 0); /* EOF ends the multishot */
		return;
	}
	/* the last one: EOF, no buffer, no MORE */
	tms.final_res = c->res;
	CHECK(!(c->flags & RP_CQE_MORE));
	CHECK(c->buf == NULL);
	atomic_store(&tms.done, 1);
}

static int ms_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	tms.buf_size = rp_buf_size(sh);
	errno = 0;
	CHECK(rp_recv_multishot(sh, -1, ms_cb, NULL) == NULL && errno == EBADF);
	CHECK(rp_recv_multishot(sh, tms.s, ms_cb, NULL) != NULL);
	for (int i = 0; i < MS_NCHUNK; i++)
		CHECK(rp_send(sh, tms.c, tms.tx + i * MS_CHUNK, MS_CHUNK, MSG_NOSIGNAL, ms_send_cb,
			      NULL) != NULL);
	return 0;
}

static void test_recv_multishot(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	bool ok;

	(void)state;
	memset(&tms, 0, sizeof(tms));
	fill_pattern(tms.tx, sizeof(tms.tx), 5);
	tcp_pair(&tms.c, &tms.s);
	cfg.init = ms_init;
	rt = rt_start(&cfg);
	ok = wait_for(&tms.done, 1, WAIT_S);
	rt_end(rt);
	assert_true(ok);
	assert_int_equal(tms.final_res, 0);
	assert_int_equal(tms.got, sizeof(tms.tx));
	assert_memory_equal(tms.rx, tms.tx, sizeof(tms.tx));
	assert_true(tms.more_cqes >= 1);
	assert_int_equal(tms.buf_size, 16384);
	close(tms.c);
	close(tms.s);
}

/* ======================================================================
 * send_zc
 * ====================================================================== */

#define ZC_LEN 65536

static struct {
	atomic_int done;
	int c, s;
	uint8_t *buf;
	uint8_t copy[ZC_LEN];
	int cqes, result_res;
	uint32_t result_flags, notif_flags;
	bool have_zc;
} tzc;

static void zc_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	tzc.cqes++;
	if (tzc.cqes == 1) {
		tzc.result_res = c->res;
		tzc.result_flags = c->flags;
		if (!(c->flags & RP_CQE_MORE)) /* no SEND_ZC in this kernel, or failed */
			atomic_store(&tzc.done, 1);
		return;
	}
	CHECK_EQ(c->res, 0);
	tzc.notif_flags = c->flags;
	CHECK(!(c->flags & RP_CQE_MORE));
	/* only now may the buffer be reused */
	rp_pool_free(tzc.buf);
	atomic_store(&tzc.done, 1);
}

static int zc_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	tzc.buf = rp_pool_alloc(rp_shard_pool(sh), ZC_LEN);
	CHECK(tzc.buf != NULL);
	if (!tzc.buf)
		return 0;
	memcpy(tzc.buf, tzc.copy, ZC_LEN);
	CHECK(rp_send_zc(sh, tzc.c, tzc.buf, ZC_LEN, MSG_NOSIGNAL, zc_cb, NULL) != NULL);
	return 0;
}

static void test_send_zc(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_shard_stats st;
	struct rp_runtime *rt;
	uint8_t rx[ZC_LEN];
	bool ok, report;
	size_t got = 0;
	double end;
	int bufsz = 4 << 20;

	(void)state;
	memset(&tzc, 0, sizeof(tzc));
	fill_pattern(tzc.copy, ZC_LEN, 99);
	tcp_pair(&tzc.c, &tzc.s);
	/* room for the whole send, so the result needs no reader */
	(void)setsockopt(tzc.c, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
	(void)setsockopt(tzc.s, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
	cfg.init = zc_init;
	rt = rt_start(&cfg);
	printf("# features: %s, ring: %s\n", rp_engine_features(rt), rp_runtime_ring_mode(rt));
	tzc.have_zc = has_feature(rt, "send_zc=yes");
	report = has_feature(rt, "zc_report_usage=yes");
	ok = wait_for(&tzc.done, 1, WAIT_S);
	rt_stop_join(rt);
	stats_of(rt, 0, &st);
	rp_runtime_destroy(rt);
	check_failures();
	assert_true(ok);
	assert_true(tzc.result_res > 0);
	end = now_s() + WAIT_S;
	while (got < (size_t)tzc.result_res && now_s() < end) {
		ssize_t n = recv(tzc.s, rx + got, (size_t)tzc.result_res - got, MSG_DONTWAIT);

		if (n > 0)
			got += (size_t)n;
		else
			sleep_ms(1);
	}
	assert_int_equal(got, tzc.result_res);
	assert_memory_equal(rx, tzc.copy, got);
	if (!tzc.have_zc) {
		printf("# skip: no IORING_OP_SEND_ZC here: plain send, one callback\n");
		assert_int_equal(tzc.cqes, 1);
		goto out;
	}
	/* result (MORE), then the notification */
	assert_int_equal(tzc.cqes, 2);
	assert_true(tzc.result_flags & RP_CQE_MORE);
	assert_false(tzc.result_flags & RP_CQE_NOTIF);
	assert_true(tzc.notif_flags & RP_CQE_NOTIF);
	assert_int_equal(st.zc_sends, 1);
	if (report) {
		/* loopback always copies: reported, counted, never called zero-copy */
		assert_true(tzc.notif_flags & RP_CQE_ZC_COPIED);
		assert_int_equal(st.zc_copied, 1);
	} else {
		printf("# skip: kernel has no IORING_SEND_ZC_REPORT_USAGE: copy not reported\n");
	}
out:
	close(tzc.c);
	close(tzc.s);
}

/* ======================================================================
 * splice: pipe -> file, socket -> pipe
 * ====================================================================== */

#define SP_FILE_LEN 5000
#define SP_SOCK_LEN 3000

static struct {
	atomic_int done;
	int file, p1r, p1w, p2r, p2w, c, s;
	int sock_moved;
	int step;
} tsp;

static void sp_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	CHECK_EQ(c->flags, 0);
	if (tsp.step == 0) {
		CHECK_EQ(c->res, SP_FILE_LEN);
		tsp.step = 1;
	} else {
		CHECK(c->res > 0);
		if (c->res <= 0) {
			atomic_store(&tsp.done, 1);
			return;
		}
		tsp.sock_moved += c->res;
	}
	if (tsp.sock_moved < SP_SOCK_LEN) {
		CHECK(rp_splice(sh, tsp.s, -1, tsp.p2w, -1,
				(unsigned)(SP_SOCK_LEN - tsp.sock_moved), 0, sp_cb, NULL) != NULL);
		return;
	}
	atomic_store(&tsp.done, 1);
}

static int sp_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	CHECK(rp_splice(sh, tsp.p1r, -1, tsp.file, 0, SP_FILE_LEN, 0, sp_cb, NULL) != NULL);
	return 0;
}

static void test_splice(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	uint8_t tx[SP_FILE_LEN], rx[SP_FILE_LEN];
	struct rp_runtime *rt;
	int p[2];
	bool ok;

	(void)state;
	memset(&tsp, 0, sizeof(tsp));
	tsp.file = tmp_file();
	assert_int_equal(pipe(p), 0);
	tsp.p1r = p[0];
	tsp.p1w = p[1];
	assert_int_equal(pipe(p), 0);
	tsp.p2r = p[0];
	tsp.p2w = p[1];
	tcp_pair(&tsp.c, &tsp.s);
	fill_pattern(tx, SP_FILE_LEN, 3);
	assert_int_equal(write(tsp.p1w, tx, SP_FILE_LEN), SP_FILE_LEN);
	assert_int_equal(write(tsp.c, tx, SP_SOCK_LEN), SP_SOCK_LEN);
	cfg.init = sp_init;
	rt = rt_start(&cfg);
	ok = wait_for(&tsp.done, 1, WAIT_S);
	rt_end(rt);
	assert_true(ok);
	assert_int_equal(pread(tsp.file, rx, SP_FILE_LEN, 0), SP_FILE_LEN);
	assert_memory_equal(rx, tx, SP_FILE_LEN);
	assert_int_equal(tsp.sock_moved, SP_SOCK_LEN);
	assert_int_equal(read(tsp.p2r, rx, SP_SOCK_LEN), SP_SOCK_LEN);
	assert_memory_equal(rx, tx, SP_SOCK_LEN);
	close(tsp.file);
	close(tsp.p1r);
	close(tsp.p1w);
	close(tsp.p2r);
	close(tsp.p2w);
	close(tsp.c);
	close(tsp.s);
}

/* ======================================================================
 * close, cancel, cancel_fd
 * ====================================================================== */

static struct {
	atomic_int done;
	int c, s, dupfd;
	int close_res, close_bad_res, fcntl_errno;
	int recv_res[3], cancel_res, cancel_fd_res;
	bool cancel_null_einval;
	char buf[3][16];
} tcc;

static void cc_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	int which = (int)(intptr_t)arg;

	(void)sh;
	CHECK_EQ(c->flags, 0);
	switch (which) {
	case 0:
	case 1:
	case 2:
		tcc.recv_res[which] = c->res;
		break;
	case 10:
		tcc.close_res = c->res;
		/* the fd is gone from the table once the close completed */
		errno = 0;
		CHECK(fcntl(tcc.dupfd, F_GETFD) == -1);
		tcc.fcntl_errno = errno;
		break;
	case 11:
		tcc.close_bad_res = c->res;
		break;
	case 12:
		tcc.cancel_res = c->res;
		break;
	case 13:
		tcc.cancel_fd_res = c->res;
		break;
	default:
		CHECK(0);
	}
	atomic_fetch_add(&tcc.done, 1);
}

static int cc_init(struct rp_shard *sh, void *arg)
{
	struct rp_op *op;

	(void)arg;
	CHECK(rp_close(sh, tcc.dupfd, cc_cb, (void *)(intptr_t)10) != NULL);
	CHECK(rp_close(sh, 1 << 20, cc_cb, (void *)(intptr_t)11) != NULL);
	/* cancel one in-flight recv */
	op = rp_recv(sh, tcc.s, tcc.buf[0], 16, 0, cc_cb, (void *)(intptr_t)0);
	CHECK(op != NULL);
	CHECK(rp_cancel(sh, op, cc_cb, (void *)(intptr_t)12) != NULL);
	errno = 0;
	tcc.cancel_null_einval = rp_cancel(sh, NULL, cc_cb, NULL) == NULL && errno == EINVAL;
	/* cancel every op on an fd */
	CHECK(rp_recv(sh, tcc.c, tcc.buf[1], 16, 0, cc_cb, (void *)(intptr_t)1) != NULL);
	CHECK(rp_recv(sh, tcc.c, tcc.buf[2], 16, 0, cc_cb, (void *)(intptr_t)2) != NULL);
	CHECK(rp_cancel_fd(sh, tcc.c, cc_cb, (void *)(intptr_t)13) != NULL);
	return 0;
}

static void test_close_cancel_cancel_fd(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_shard_stats st;
	struct rp_runtime *rt;
	bool ok;

	(void)state;
	memset(&tcc, 0, sizeof(tcc));
	tcp_pair(&tcc.c, &tcc.s);
	tcc.dupfd = dup(tcc.s);
	assert_true(tcc.dupfd >= 0);
	cfg.init = cc_init;
	rt = rt_start(&cfg);
	ok = wait_for(&tcc.done, 7, WAIT_S);
	rt_stop_join(rt);
	stats_of(rt, 0, &st);
	rp_runtime_destroy(rt);
	check_failures();
	assert_true(ok);
	assert_int_equal(tcc.close_res, 0);
	assert_int_equal(tcc.fcntl_errno, EBADF);
	assert_int_equal(tcc.close_bad_res, -EBADF);
	assert_int_equal(tcc.recv_res[0], -ECANCELED);
	assert_int_equal(tcc.cancel_res, 0);
	assert_true(tcc.cancel_null_einval);
	assert_int_equal(tcc.recv_res[1], -ECANCELED);
	assert_int_equal(tcc.recv_res[2], -ECANCELED);
	assert_int_equal(tcc.cancel_fd_res, 2);
	assert_true(st.err_cancelled >= 3);
	close(tcc.c);
	close(tcc.s);
}

/* ======================================================================
 * link timeout
 * ====================================================================== */

static struct {
	atomic_int done, submitted;
	int c, s;
	double t0, elapsed;
	int recv_res, stale_ret, stale2_ret;
	int not_last_ret, multishot_ret, null_ret;
	char buf[16], buf2[16];
	struct rp_op *stale, *stale2;
} tlt;

static void lt_recv_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	tlt.elapsed = now_s() - tlt.t0;
	tlt.recv_res = c->res;
	atomic_fetch_add(&tlt.done, 1);
}

static void lt_count_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	(void)c;
}

static void lt_submitted_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	(void)c;
	atomic_store(&tlt.submitted, 1);
}

/* A recv prepared in the iteration before: submitted since, so it can no
 * longer get a linked timeout. */
static void lt_later2(struct rp_shard *sh, void *arg)
{
	(void)arg;
	tlt.stale2_ret = rp_link_timeout(sh, tlt.stale2, 1 * MS);
	atomic_fetch_add(&tlt.done, 1);
}

/* Runs from the mailbox after init: the loop took an SQE of its own (its
 * eventfd read) after the recv prepared in init, so that recv is not the
 * last op any more (linking it would chain the loop's eventfd read behind a
 * recv that may never complete: the shard could no longer be woken). */
static void lt_later(struct rp_shard *sh, void *arg)
{
	(void)arg;
	tlt.stale_ret = rp_link_timeout(sh, tlt.stale, 1 * MS);
	/* the nop's completion proves the recv after it was submitted too */
	CHECK(rp_nop(sh, lt_submitted_cb, NULL) != NULL);
	tlt.stale2 = rp_recv(sh, tlt.c, tlt.buf2, sizeof(tlt.buf2), 0, lt_count_cb, NULL);
	CHECK(tlt.stale2 != NULL);
}

static int lt_init(struct rp_shard *sh, void *arg)
{
	struct rp_op *a, *b, *ms, *r;

	(void)arg;
	tlt.t0 = now_s();
	r = rp_recv(sh, tlt.s, tlt.buf, sizeof(tlt.buf), 0, lt_recv_cb, NULL);
	CHECK(r != NULL);
	CHECK_EQ(rp_link_timeout(sh, r, 20 * MS), 0);

	a = rp_nop(sh, lt_count_cb, NULL);
	b = rp_nop(sh, lt_count_cb, NULL);
	CHECK(a && b);
	tlt.not_last_ret = rp_link_timeout(sh, a, 1 * MS);
	tlt.null_ret = rp_link_timeout(sh, NULL, 1 * MS);
	ms = rp_recv_multishot(sh, tlt.c, lt_count_cb, NULL);
	CHECK(ms != NULL);
	tlt.multishot_ret = rp_link_timeout(sh, ms, 1 * MS);

	tlt.stale = rp_recv(sh, tlt.c, tlt.buf, sizeof(tlt.buf), 0, lt_count_cb, NULL);
	CHECK(tlt.stale != NULL);
	CHECK_EQ(rp_shard_post(sh, rp_shard_id(sh), lt_later, NULL), 0);
	return 0;
}

static void test_link_timeout(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_shard_stats st;
	struct rp_runtime *rt;
	bool ok;

	(void)state;
	memset(&tlt, 0, sizeof(tlt));
	tcp_pair(&tlt.c, &tlt.s);
	cfg.init = lt_init;
	rt = rt_start(&cfg);
	ok = wait_for(&tlt.done, 1, WAIT_S) && wait_for(&tlt.submitted, 1, WAIT_S);
	/* from outside: runs in a later iteration, after stale2 was submitted */
	assert_int_equal(rp_runtime_submit(rt, 0, lt_later2, NULL), 0);
	ok = ok && wait_for(&tlt.done, 2, WAIT_S);
	if (!ok) /* not stopped: a shard that cannot be woken would hang the join */
		fail_msg("the shard never ran a message submitted from outside: it cannot be "
			 "woken (its eventfd read linked behind a pending recv?)");
	rt_stop_join(rt);
	stats_of(rt, 0, &st);
	rp_runtime_destroy(rt);
	check_failures();
	assert_true(ok);
	assert_int_equal(tlt.recv_res, -ECANCELED);
	assert_true(tlt.elapsed >= 0.0195);
	assert_true(tlt.elapsed < 2.0);
	assert_true(st.err_timeout >= 1);
	assert_int_equal(tlt.not_last_ret, -EINVAL);
	assert_int_equal(tlt.null_ret, -EINVAL);
	assert_int_equal(tlt.multishot_ret, -EINVAL);
	/* not the last SQE / already handed to the kernel: refused */
	assert_int_equal(tlt.stale_ret, -EINVAL);
	assert_int_equal(tlt.stale2_ret, -EINVAL);
	close(tlt.c);
	close(tlt.s);
}

/* ======================================================================
 * multishot recv re-armed after ENOBUFS
 * ====================================================================== */

#define NB_BUFS	    4
#define NB_BUF_SIZE 4096

static struct {
	atomic_int done;
	int c, s;
	size_t total;
	uint8_t *rx;
	size_t got;
	uint16_t held[NB_BUFS * 2];
	unsigned nheld;
	bool release_pending;
	int rearmed_flags, final_res, holds;
	atomic_int writer_err;
} tnb;

static void nb_release(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	CHECK(c->res == -ETIME || c->res == -ECANCELED);
	for (unsigned i = 0; i < tnb.nheld; i++)
		rp_buf_put(sh, tnb.held[i]);
	tnb.nheld = 0;
	tnb.release_pending = false;
}

static void nb_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	if (c->flags & RP_CQE_REARMED)
		tnb.rearmed_flags++;
	if (c->res > 0) {
		CHECK(c->flags & RP_CQE_MORE);
		CHECK(c->buf != NULL);
		CHECK(tnb.got + (size_t)c->res <= tnb.total);
		CHECK(tnb.nheld < NB_BUFS);
		if (tnb.got + (size_t)c->res <= tnb.total && c->buf)
			memcpy(tnb.rx + tnb.got, c->buf, (size_t)c->res);
		tnb.got += (size_t)c->res;
		if (tnb.nheld < NB_BUFS * 2)
			tnb.held[tnb.nheld++] = c->bid;
		/* every buffer out: hold them while more data arrives */
		if (tnb.nheld == NB_BUFS && !tnb.release_pending) {
			tnb.release_pending = true;
			tnb.holds++;
			CHECK(rp_timeout(sh, 3 * MS, nb_release, NULL) != NULL);
		}
		return;
	}
	tnb.final_res = c->res;
	CHECK(!(c->flags & RP_CQE_MORE));
	/* buffers still held go back now */
	for (unsigned i = 0; i < tnb.nheld && !tnb.release_pending; i++)
		rp_buf_put(sh, tnb.held[i]);
	if (!tnb.release_pending)
		tnb.nheld = 0;
	atomic_store(&tnb.done, 1);
}

static int nb_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	CHECK_EQ(rp_buf_size(sh), NB_BUF_SIZE);
	CHECK(rp_recv_multishot(sh, tnb.s, nb_cb, NULL) != NULL);
	return 0;
}

static void *nb_writer(void *arg)
{
	uint8_t chunk[1000];
	size_t off = 0;
	double end = now_s() + 20;

	(void)arg;
	while (off < tnb.total && now_s() < end) {
		size_t n = tnb.total - off < sizeof(chunk) ? tnb.total - off : sizeof(chunk);
		ssize_t w;

		fill_pattern(chunk, n, off);
		w = send(tnb.c, chunk, n, MSG_NOSIGNAL);
		if (w < 0) {
			atomic_store(&tnb.writer_err, errno);
			break;
		}
		off += (size_t)w;
	}
	shutdown(tnb.c, SHUT_WR);
	return NULL;
}

static void test_multishot_enobufs_rearm(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_shard_stats st;
	struct rp_runtime *rt;
	pthread_t writer;
	uint8_t *want;
	bool ok;
	struct timeval tv = {.tv_sec = 5};

	(void)state;
	memset(&tnb, 0, sizeof(tnb));
	tnb.total = reduced() ? (256u << 10) : (1u << 20);
	tnb.rx = calloc(1, tnb.total);
	want = malloc(tnb.total);
	assert_non_null(tnb.rx);
	assert_non_null(want);
	fill_pattern(want, tnb.total, 0);
	tcp_pair(&tnb.c, &tnb.s);
	/* a writer stuck on a dead reader gives up rather than hang the test */
	assert_int_equal(setsockopt(tnb.c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
	cfg.bufs = NB_BUFS;
	cfg.buf_size = NB_BUF_SIZE;
	cfg.init = nb_init;
	rt = rt_start(&cfg);
	assert_int_equal(pthread_create(&writer, NULL, nb_writer, NULL), 0);
	ok = wait_for(&tnb.done, 1, 20);
	rt_stop_join(rt);
	pthread_join(writer, NULL);
	stats_of(rt, 0, &st);
	rp_runtime_destroy(rt);
	check_failures();
	assert_true(ok);
	assert_int_equal(atomic_load(&tnb.writer_err), 0);
	assert_int_equal(tnb.final_res, 0);
	assert_int_equal(tnb.got, tnb.total);
	assert_memory_equal(tnb.rx, want, tnb.total);
	assert_true(tnb.holds > 0);
	printf("# enobufs=%llu rearms=%llu holds=%d rearmed_cqes=%d\n",
	       (unsigned long long)st.enobufs, (unsigned long long)st.rearms, tnb.holds,
	       tnb.rearmed_flags);
	assert_true(st.enobufs > 0);
	assert_true(st.rearms > 0);
	free(tnb.rx);
	free(want);
	close(tnb.c);
	close(tnb.s);
}

/* ======================================================================
 * fd-number reuse after rp_close
 *
 * The old op on socket A must end when A is closed through rp_close, and a
 * new socket given A's number must never feed the old op's callback.
 * ====================================================================== */

enum fr_kind {
	FR_PLAIN,		  /* a recv in the kernel */
	FR_MULTISHOT_ARMED,	  /* a multishot recv in the kernel */
	FR_MULTISHOT_PARKED,	  /* a multishot recv the engine parked (no buffers) */
	FR_MULTISHOT_CLOSE_IN_CB, /* closed from its own data callback, with the
				     kernel's ENOBUFS end already on its way */
};

static struct {
	atomic_int done;
	enum fr_kind kind;
	int lfd;
	struct sockaddr_in addr;
	int a, b;   /* old pair: a is closed through rp_close */
	int a2, b2; /* new pair: a2 has a's number */
	int old_number;
	bool closed; /* rp_close of a issued */
	atomic_int old_ended;
	int old_final_res;
	int old_data_after_close;
	int new_res;
	char old_buf[64], new_buf[64];
	uint16_t held[8];
	unsigned nheld;
	int step;
} tfr;

static void fr_new_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c);
static void fr_step(struct rp_shard *sh, void *arg, const struct rp_cqe *c);

static void fr_old_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	if (c->res > 0) {
		if (tfr.closed)
			tfr.old_data_after_close++;
		if (c->buf && tfr.nheld < 8)
			tfr.held[tfr.nheld++] = c->bid; /* held: the shard runs out */
		else if (c->buf)
			rp_buf_put(sh, c->bid);
		if (tfr.kind == FR_MULTISHOT_CLOSE_IN_CB && tfr.nheld == 4 && !tfr.closed) {
			tfr.closed = true;
			CHECK(rp_close(sh, tfr.a, fr_step, (void *)"closed") != NULL);
		}
	}
	if (!(c->flags & RP_CQE_MORE)) {
		atomic_store(&tfr.old_ended, 1);
		tfr.old_final_res = c->res;
	}
}

/* The second socket, on the number the closed one had. */
static int fr_reopen(void)
{
	int fd = tcp_connect(&tfr.addr);
	int peer;

	CHECK(fd >= 0);
	if (fd < 0)
		return -1;
	if (fd != tfr.old_number) {
		/* something else took the lowest number: put it on ours */
		CHECK(dup2(fd, tfr.old_number) == tfr.old_number);
		close(fd);
		fd = tfr.old_number;
	}
	peer = accept4(tfr.lfd, NULL, NULL, SOCK_CLOEXEC); /* already queued */
	CHECK(peer >= 0);
	tfr.a2 = fd;
	tfr.b2 = peer;
	return 0;
}

static void fr_new_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	tfr.new_res = c->res;
	CHECK_EQ(c->res, 5);
	CHECK(memcmp(tfr.new_buf, "fresh", 5) == 0);
	/* more data nobody asked for: a misrouted old op would take it */
	CHECK_EQ(write(tfr.b2, "stray", 5), 5);
	CHECK(rp_timeout(sh, 20 * MS, fr_step, (void *)"settle") != NULL);
}

static void fr_step(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	const char *what = arg;

	if (!strcmp(what, "held")) {
		/* parked case: all buffers held by the old op, which the kernel
		 * ended with ENOBUFS and the engine parked */
		struct rp_shard_stats st;

		rp_shard_stats(sh, &st);
		CHECK(st.enobufs >= 1);
		CHECK_EQ(tfr.nheld, 4);
		tfr.closed = true;
		CHECK(rp_close(sh, tfr.a, fr_step, (void *)"closed") != NULL);
	} else if (!strcmp(what, "closed")) {
		CHECK_EQ(c->res, 0);
		if (fr_reopen())
			return;
		CHECK(rp_recv(sh, tfr.a2, tfr.new_buf, sizeof(tfr.new_buf), 0, fr_new_cb, NULL) !=
		      NULL);
		/* buffers back: a parked op must not wake up on the new socket */
		for (unsigned i = 0; i < tfr.nheld; i++)
			rp_buf_put(sh, tfr.held[i]);
		tfr.nheld = 0;
		CHECK(rp_timeout(sh, 5 * MS, fr_step, (void *)"send") != NULL);
	} else if (!strcmp(what, "send")) {
		CHECK_EQ(write(tfr.b2, "fresh", 5), 5);
	} else if (!strcmp(what, "settle")) {
		atomic_store(&tfr.done, 1);
	}
}

static int fr_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	tfr.old_number = tfr.a;
	switch (tfr.kind) {
	case FR_PLAIN:
		CHECK(rp_recv(sh, tfr.a, tfr.old_buf, sizeof(tfr.old_buf), 0, fr_old_cb, NULL) !=
		      NULL);
		tfr.closed = true;
		CHECK(rp_close(sh, tfr.a, fr_step, (void *)"closed") != NULL);
		break;
	case FR_MULTISHOT_ARMED:
		CHECK(rp_recv_multishot(sh, tfr.a, fr_old_cb, NULL) != NULL);
		tfr.closed = true;
		CHECK(rp_close(sh, tfr.a, fr_step, (void *)"closed") != NULL);
		break;
	case FR_MULTISHOT_PARKED:
	case FR_MULTISHOT_CLOSE_IN_CB: {
		/* five buffers' worth: four fill the ring, the rest hits ENOBUFS */
		static uint8_t fill[5 * NB_BUF_SIZE];

		CHECK(rp_recv_multishot(sh, tfr.a, fr_old_cb, NULL) != NULL);
		CHECK_EQ(write(tfr.b, fill, sizeof(fill)), sizeof(fill));
		if (tfr.kind == FR_MULTISHOT_PARKED)
			CHECK(rp_timeout(sh, 30 * MS, fr_step, (void *)"held") != NULL);
		break;
	}
	}
	return 0;
}

static void run_fd_reuse(enum fr_kind kind)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	bool ok, ended;

	memset(&tfr, 0, sizeof(tfr));
	tfr.kind = kind;
	tfr.a2 = tfr.b2 = -1;
	tfr.lfd = tcp_listener(&tfr.addr);
	tfr.a = tcp_connect(&tfr.addr);
	assert_true(tfr.a >= 0);
	tfr.b = accept4(tfr.lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(tfr.b >= 0);
	cfg.bufs = 4;
	cfg.buf_size = NB_BUF_SIZE;
	cfg.init = fr_init;
	rt = rt_start(&cfg);
	ok = wait_for(&tfr.done, 1, WAIT_S);
	/* read before stop: stop cancels everything, which would hide a
	 * recv that rp_close left running */
	ended = atomic_load(&tfr.old_ended);
	rt_end(rt);
	assert_true(ok);
	assert_int_equal(tfr.a2, tfr.old_number);
	assert_int_equal(tfr.new_res, 5);
	assert_int_equal(tfr.old_data_after_close, 0);
	if (!ended)
		fail_msg("the op on the closed fd was still alive after rp_close");
	assert_true(tfr.old_final_res <= 0);
	close(tfr.a2);
	close(tfr.b2);
	close(tfr.b);
	close(tfr.lfd);
}

static void test_fd_reuse_plain_recv(void **state)
{
	(void)state;
	run_fd_reuse(FR_PLAIN);
}

static void test_fd_reuse_armed_multishot(void **state)
{
	(void)state;
	run_fd_reuse(FR_MULTISHOT_ARMED);
}

static void test_fd_reuse_parked_multishot(void **state)
{
	(void)state;
	run_fd_reuse(FR_MULTISHOT_PARKED);
}

static void test_fd_reuse_close_in_data_callback(void **state)
{
	(void)state;
	run_fd_reuse(FR_MULTISHOT_CLOSE_IN_CB);
}

/* ======================================================================
 * cross-shard messages: both directions at once, in order per sender
 * ====================================================================== */

static struct {
	atomic_int done;
	uint64_t n;
	uint64_t sent[2];	      /* each written by its own shard only */
	_Atomic uint64_t received[2]; /* [sender]: written by the receiver only */
	uint64_t eagain[2];
	int wrong_shard;
} txs;

static void xs_msg(struct rp_shard *sh, void *arg)
{
	uintptr_t v = (uintptr_t)arg;
	unsigned from = (unsigned)(v & 1);
	uint64_t seq = (uint64_t)(v >> 1);
	uint64_t want = atomic_load_explicit(&txs.received[from], memory_order_relaxed);

	if (rp_shard_id(sh) != 1 - from)
		txs.wrong_shard++;
	if (seq != want) {
		fail_at(__LINE__, "from shard %u: got seq %llu, expected %llu", from,
			(unsigned long long)seq, (unsigned long long)want);
		return;
	}
	atomic_store_explicit(&txs.received[from], want + 1, memory_order_relaxed);
	if (want + 1 == txs.n)
		atomic_fetch_add(&txs.done, 1);
}

static void xs_pump(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	unsigned me = rp_shard_id(sh);
	unsigned burst = 0;

	(void)arg;
	(void)c;
	if (atomic_load(&g_fail) || rp_shard_stopping(sh))
		return;
	while (txs.sent[me] < txs.n && burst < 1024) {
		int r = rp_shard_post(sh, 1 - me, xs_msg,
				      (void *)(uintptr_t)((txs.sent[me] << 1) | me));

		if (r == -EAGAIN) {
			txs.eagain[me]++;
			break; /* mailbox full: the receiver drains it; retry next iteration */
		}
		CHECK_EQ(r, 0);
		if (r)
			return;
		txs.sent[me]++;
		burst++;
	}
	if (txs.sent[me] < txs.n)
		CHECK(rp_nop(sh, xs_pump, NULL) != NULL); /* continue next loop iteration */
}

static int xs_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	xs_pump(sh, NULL, NULL);
	return 0;
}

static void test_cross_shard_messages(void **state)
{
	struct rp_runtime_config cfg = base_cfg(2);
	struct rp_shard_stats st0, st1;
	struct rp_runtime *rt;
	double t0;
	bool ok;

	(void)state;
	memset(&txs, 0, sizeof(txs));
	txs.n = reduced() ? 100000 : 1000000;
	cfg.mailbox = 1024; /* small: the senders do hit a full mailbox */
	cfg.init = xs_init;
	t0 = now_s();
	rt = rt_start(&cfg);
	ok = wait_for(&txs.done, 2, 40);
	rt_stop_join(rt);
	stats_of(rt, 0, &st0);
	stats_of(rt, 1, &st1);
	rp_runtime_destroy(rt);
	check_failures();
	if (!ok)
		fail_msg("timed out: received %llu and %llu of %llu",
			 (unsigned long long)atomic_load(&txs.received[0]),
			 (unsigned long long)atomic_load(&txs.received[1]),
			 (unsigned long long)txs.n);
	printf("# %llu messages each way in %.2f s, EAGAIN %llu/%llu, wakeups %llu/%llu\n",
	       (unsigned long long)txs.n, now_s() - t0, (unsigned long long)txs.eagain[0],
	       (unsigned long long)txs.eagain[1], (unsigned long long)st0.wakeups,
	       (unsigned long long)st1.wakeups);
	assert_int_equal(txs.wrong_shard, 0);
	assert_int_equal(atomic_load(&txs.received[0]), txs.n);
	assert_int_equal(atomic_load(&txs.received[1]), txs.n);
	assert_true(st0.msgs_out >= txs.n && st1.msgs_out >= txs.n);
	assert_true(st0.msgs_in >= txs.n && st1.msgs_in >= txs.n);
	assert_int_equal(st0.mailbox_full, txs.eagain[0]);
	assert_int_equal(st1.mailbox_full, txs.eagain[1]);
}

/* ======================================================================
 * rp_runtime_submit from two plain threads, in order per thread
 * ====================================================================== */

static struct {
	atomic_int done;
	struct rp_runtime *rt;
	uint64_t n;
	_Atomic uint64_t received[2];
	atomic_int wrong_shard;
	atomic_int submit_err[2];
	_Atomic uint64_t eagain[2];
} tsb;

static void sb_msg(struct rp_shard *sh, void *arg)
{
	uintptr_t v = (uintptr_t)arg;
	unsigned from = (unsigned)(v & 1);
	uint64_t seq = (uint64_t)(v >> 1);
	uint64_t want = atomic_load_explicit(&tsb.received[from], memory_order_relaxed);

	if (rp_shard_id(sh) != 1)
		atomic_fetch_add(&tsb.wrong_shard, 1);
	if (seq != want) {
		fail_at(__LINE__, "from thread %u: got seq %llu, expected %llu", from,
			(unsigned long long)seq, (unsigned long long)want);
		return;
	}
	atomic_store_explicit(&tsb.received[from], want + 1, memory_order_relaxed);
	if (want + 1 == tsb.n)
		atomic_fetch_add(&tsb.done, 1);
}

static void *sb_thread(void *arg)
{
	unsigned me = (unsigned)(uintptr_t)arg;
	double end = now_s() + 30;

	for (uint64_t seq = 0; seq < tsb.n; seq++) {
		int r;

		while ((r = rp_runtime_submit(tsb.rt, 1, sb_msg,
					      (void *)(uintptr_t)((seq << 1) | me))) == -EAGAIN) {
			atomic_fetch_add(&tsb.eagain[me], 1);
			if (now_s() > end) {
				atomic_store(&tsb.submit_err[me], -ETIMEDOUT);
				return NULL;
			}
			sched_yield();
		}
		if (r) {
			atomic_store(&tsb.submit_err[me], r);
			return NULL;
		}
	}
	return NULL;
}

static void test_submit_from_threads(void **state)
{
	struct rp_runtime_config cfg = base_cfg(2);
	pthread_t th[2];
	bool ok;

	(void)state;
	memset(&tsb, 0, sizeof(tsb));
	tsb.n = reduced() ? 20000 : 100000;
	cfg.mailbox = 256;
	tsb.rt = rt_start(&cfg);
	/* bad targets */
	assert_int_equal(rp_runtime_submit(tsb.rt, 2, sb_msg, NULL), -EINVAL);
	assert_int_equal(rp_runtime_submit(tsb.rt, 0, NULL, NULL), -EINVAL);
	for (uintptr_t i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, sb_thread, (void *)i), 0);
	ok = wait_for(&tsb.done, 2, 40);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	rt_stop_join(tsb.rt);
	/* after stop: refused */
	assert_int_equal(rp_runtime_submit(tsb.rt, 1, sb_msg, NULL), -ESHUTDOWN);
	rp_runtime_destroy(tsb.rt);
	check_failures();
	assert_int_equal(atomic_load(&tsb.submit_err[0]), 0);
	assert_int_equal(atomic_load(&tsb.submit_err[1]), 0);
	assert_true(ok);
	assert_int_equal(atomic_load(&tsb.wrong_shard), 0);
	assert_int_equal(atomic_load(&tsb.received[0]), tsb.n);
	assert_int_equal(atomic_load(&tsb.received[1]), tsb.n);
}

/* ======================================================================
 * stop with many ops in flight
 * ====================================================================== */

static struct {
	int nconn;
	int lfd;
	int *cfd, *sfd;
	atomic_int armed; /* shards done arming */
	atomic_int started, finals;
	atomic_int data_cqes, expect_data;
	atomic_int on_stop[2], fini[2];
	atomic_int inflight_at_fini[2];
	atomic_int stop_checks; /* on_stop's refused-op checks that passed */
	atomic_int extra_fd[2];
} tst;

static void st_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	if (c->res > 0 && c->buf)
		atomic_fetch_add(&tst.data_cqes, 1); /* buffer kept: still out at stop */
	if (!(c->flags & RP_CQE_MORE))
		atomic_fetch_add(&tst.finals, 1);
}

static void st_msg(struct rp_shard *sh, void *arg)
{
	(void)sh;
	(void)arg;
}

static int st_init(struct rp_shard *sh, void *arg)
{
	unsigned me = rp_shard_id(sh);
	static char sink[2][1];

	(void)arg;
	for (int i = (int)me; i < tst.nconn; i += 2) {
		if (!rp_recv_multishot(sh, tst.sfd[i], st_cb, NULL) ||
		    !rp_timeout(sh, 60ull * 1000 * MS, st_cb, NULL) ||
		    !rp_recv(sh, tst.cfd[i], sink[me], 1, 0, st_cb, NULL)) {
			fail_at(__LINE__, "arming conn %d: errno %d", i, errno);
			break;
		}
		atomic_fetch_add(&tst.started, 3);
	}
	atomic_fetch_add(&tst.armed, 1);
	return 0;
}

static void st_on_stop(struct rp_shard *sh, void *arg)
{
	unsigned me = rp_shard_id(sh);
	int ok = 0;
	char b[1];

	(void)arg;
	atomic_fetch_add(&tst.on_stop[me], 1);
	CHECK(rp_shard_stopping(sh));
	/* no new work once stopping... */
	errno = 0;
	ok += rp_nop(sh, st_cb, NULL) == NULL && errno == ESHUTDOWN;
	errno = 0;
	ok += rp_timeout(sh, MS, st_cb, NULL) == NULL && errno == ESHUTDOWN;
	errno = 0;
	ok += rp_recv(sh, tst.cfd[me], b, 1, 0, st_cb, NULL) == NULL && errno == ESHUTDOWN;
	errno = 0;
	ok += rp_recv_multishot(sh, tst.cfd[me], st_cb, NULL) == NULL && errno == ESHUTDOWN;
	errno = 0;
	ok += rp_send(sh, tst.cfd[me], "x", 1, MSG_NOSIGNAL, st_cb, NULL) == NULL &&
	      errno == ESHUTDOWN;
	errno = 0;
	ok += rp_accept_multishot(sh, tst.lfd, st_cb, NULL) == NULL && errno == ESHUTDOWN;
	ok += rp_shard_post(sh, 1 - me, st_msg, NULL) == -ESHUTDOWN;
	CHECK_EQ(ok, 7);
	if (ok == 7)
		atomic_fetch_add(&tst.stop_checks, 1);
	/* ...except close and cancel, which shutdown needs */
	if (rp_close(sh, atomic_load(&tst.extra_fd[me]), st_cb, NULL))
		atomic_fetch_add(&tst.started, 1);
	else
		fail_at(__LINE__, "rp_close while stopping: errno %d", errno);
	if (rp_cancel_fd(sh, tst.cfd[me], st_cb, NULL))
		atomic_fetch_add(&tst.started, 1);
	else
		fail_at(__LINE__, "rp_cancel_fd while stopping: errno %d", errno);
}

static void st_fini(struct rp_shard *sh, void *arg)
{
	unsigned me = rp_shard_id(sh);

	(void)arg;
	atomic_store(&tst.inflight_at_fini[me], (int)rp_shard_inflight(sh));
	atomic_fetch_add(&tst.fini[me], 1);
}

static void test_stop_with_ops_in_flight(void **state)
{
	struct rp_runtime_config cfg = base_cfg(2);
	struct sockaddr_in addr;
	struct rp_runtime *rt;
	struct rlimit rl;
	double t0, stop_s;
	bool ok;

	(void)state;
	memset(&tst, 0, sizeof(tst));
	tst.nconn = reduced() ? 200 : 500;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)(2 * tst.nconn + 64)) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < (rlim_t)(2 * tst.nconn + 64))
			tst.nconn = ((int)rl.rlim_cur - 64) / 2;
	}
	tst.cfd = calloc((size_t)tst.nconn, sizeof(int));
	tst.sfd = calloc((size_t)tst.nconn, sizeof(int));
	assert_non_null(tst.cfd);
	assert_non_null(tst.sfd);
	tst.lfd = tcp_listener(&addr);
	for (int i = 0; i < tst.nconn; i++) {
		tst.cfd[i] = tcp_connect(&addr);
		assert_true(tst.cfd[i] >= 0);
		tst.sfd[i] = accept4(tst.lfd, NULL, NULL, SOCK_CLOEXEC);
		assert_true(tst.sfd[i] >= 0);
		/* some connections carry data: their buffers are out at stop */
		if (i % 10 == 0) {
			assert_int_equal(write(tst.cfd[i], "x", 1), 1);
			atomic_fetch_add(&tst.expect_data, 1);
		}
	}
	for (int i = 0; i < 2; i++) {
		atomic_store(&tst.extra_fd[i], dup(tst.lfd));
		assert_true(atomic_load(&tst.extra_fd[i]) >= 0);
	}
	cfg.ring_entries = 64; /* arming overflows the SQ and the CQ: flushes */
	cfg.bufs = 128;	       /* the data CQEs keep their buffers till the end */
	cfg.init = st_init;
	cfg.on_stop = st_on_stop;
	cfg.fini = st_fini;
	rt = rt_start(&cfg);
	ok = wait_for(&tst.armed, 2, WAIT_S) &&
	     wait_for(&tst.data_cqes, atomic_load(&tst.expect_data), WAIT_S);
	sleep_ms(20); /* let the arming reach the kernel */
	t0 = now_s();
	rp_runtime_stop(rt);
	rp_runtime_stop(rt); /* idempotent */
	assert_int_equal(rp_runtime_wait(rt), 0);
	stop_s = now_s() - t0;
	rp_runtime_stop(rt); /* still harmless once joined */
	assert_int_equal(rp_runtime_submit(rt, 0, st_msg, NULL), -ESHUTDOWN);
	rp_runtime_destroy(rt);
	check_failures();
	assert_true(ok);
	printf("# %d connections, %d ops stopped in %.3f s\n", tst.nconn, atomic_load(&tst.started),
	       stop_s);
	assert_true(stop_s < 5.0);
	/* every op's last callback ran exactly once */
	assert_int_equal(atomic_load(&tst.finals), atomic_load(&tst.started));
	assert_int_equal(atomic_load(&tst.started), 3 * tst.nconn + 4);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(atomic_load(&tst.on_stop[i]), 1);
		assert_int_equal(atomic_load(&tst.fini[i]), 1);
		assert_int_equal(atomic_load(&tst.inflight_at_fini[i]), 0);
	}
	assert_int_equal(atomic_load(&tst.stop_checks), 2);
	for (int i = 0; i < tst.nconn; i++) {
		close(tst.cfd[i]);
		close(tst.sfd[i]);
	}
	close(tst.lfd);
	free(tst.cfd);
	free(tst.sfd);
}

/* ======================================================================
 * errors: bad config, init failure, ops after stop
 * ====================================================================== */

static void test_create_rejects_bad_config(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt = NULL;

	(void)state;
	assert_int_equal(rp_runtime_create(NULL, &rt), -EINVAL);
	assert_int_equal(rp_runtime_create(&cfg, NULL), -EINVAL);
	cfg.bufs = 3;
	assert_int_equal(rp_runtime_create(&cfg, &rt), -EINVAL);
	assert_null(rt);
	cfg = base_cfg(1);
	cfg.buf_size = 2u << 20;
	assert_int_equal(rp_runtime_create(&cfg, &rt), -EINVAL);
	cfg = base_cfg(1);
	cfg.mailbox = 1000;
	assert_int_equal(rp_runtime_create(&cfg, &rt), -EINVAL);
	cfg = base_cfg(1);
	cfg.cpus = "not-a-cpulist";
	assert_int_equal(rp_runtime_create(&cfg, &rt), -EINVAL);
	assert_null(rt);
	/* a good one, never started: wait refuses, destroy frees */
	cfg = base_cfg(2);
	assert_int_equal(rp_runtime_create(&cfg, &rt), 0);
	assert_int_equal(rp_runtime_shards(rt), 2);
	assert_int_equal(rp_runtime_shard_cpu(rt, 0), -1); /* no_pin */
	assert_int_equal(rp_runtime_shard_cpu(rt, 2), -EINVAL);
	assert_int_equal(rp_runtime_wait(rt), -EINVAL);
	rp_runtime_destroy(rt);
}

static struct {
	int fail_shard, fail_ret;
	atomic_int inits[2], finis[2], timer_final[2];
	atomic_int timer_res[2];
} tie;

static void ie_timer_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	unsigned me = rp_shard_id(sh);

	(void)arg;
	atomic_store(&tie.timer_res[me], c->res);
	if (!(c->flags & RP_CQE_MORE))
		atomic_fetch_add(&tie.timer_final[me], 1);
}

static int ie_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	atomic_fetch_add(&tie.inits[rp_shard_id(sh)], 1);
	if ((int)rp_shard_id(sh) == tie.fail_shard)
		return tie.fail_ret;
	/* work started by a shard whose peer then fails must still be ended */
	CHECK(rp_timeout(sh, 60ull * 1000 * MS, ie_timer_cb, NULL) != NULL);
	return 0;
}

static void ie_fini(struct rp_shard *sh, void *arg)
{
	(void)arg;
	atomic_fetch_add(&tie.finis[rp_shard_id(sh)], 1);
}

static void run_init_error(int fail_shard, int fail_ret)
{
	struct rp_runtime_config cfg = base_cfg(2);
	struct rp_runtime *rt = NULL;
	double t0;

	memset(&tie, 0, sizeof(tie));
	atomic_store(&g_fail, 0);
	tie.fail_shard = fail_shard;
	tie.fail_ret = fail_ret;
	cfg.init = ie_init;
	cfg.fini = ie_fini;
	assert_int_equal(rp_runtime_create(&cfg, &rt), 0);
	t0 = now_s();
	assert_int_equal(rp_runtime_start(rt), -EIO); /* a positive EIO is negated */
	assert_true(now_s() - t0 < 5.0);
	assert_int_equal(rp_runtime_wait(rt), -EIO);
	assert_int_equal(rp_runtime_start(rt), -EINVAL); /* started once already */
	rp_runtime_stop(rt);
	rp_runtime_destroy(rt);
	check_failures();
	assert_int_equal(atomic_load(&tie.inits[fail_shard]), 1);
	for (int i = 0; i < 2; i++) {
		if (i == fail_shard)
			continue;
		/* the healthy shard may skip init when its peer failed first;
		 * if it ran, the work it started was ended and its fini ran */
		assert_true(atomic_load(&tie.inits[i]) <= 1);
		if (!atomic_load(&tie.inits[i]))
			continue;
		assert_int_equal(atomic_load(&tie.timer_final[i]), 1);
		assert_int_equal(atomic_load(&tie.timer_res[i]), -ECANCELED);
		assert_int_equal(atomic_load(&tie.finis[i]), 1);
	}
}

static void test_init_error_fails_start(void **state)
{
	(void)state;
	run_init_error(1, -EIO);
	run_init_error(0, EIO);
}

static struct {
	atomic_int done, on_stop;
	int fd;
	int nop_errno, timeout_errno, close_res, cancel_res, post_ret;
	bool nop_null, timeout_null;
} tas;

static void as_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	if (!strcmp(arg, "close"))
		tas.close_res = c->res;
	else
		tas.cancel_res = c->res;
	atomic_fetch_add(&tas.done, 1);
}

static void as_on_stop(struct rp_shard *sh, void *arg)
{
	(void)arg;
	atomic_fetch_add(&tas.on_stop, 1);
	errno = 0;
	tas.nop_null = rp_nop(sh, as_cb, "nop") == NULL;
	tas.nop_errno = errno;
	errno = 0;
	tas.timeout_null = rp_timeout(sh, MS, as_cb, "timeout") == NULL;
	tas.timeout_errno = errno;
	tas.post_ret = rp_shard_post(sh, 0, st_msg, NULL);
	CHECK(rp_close(sh, tas.fd, as_cb, "close") != NULL);
	CHECK(rp_cancel_fd(sh, 0, as_cb, "cancel") != NULL);
}

static void test_ops_after_stop(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;

	(void)state;
	memset(&tas, 0, sizeof(tas));
	tas.fd = dup(0);
	assert_true(tas.fd >= 0);
	cfg.on_stop = as_on_stop;
	rt = rt_start(&cfg);
	rp_runtime_stop(rt);
	assert_int_equal(rp_runtime_wait(rt), 0);
	assert_int_equal(rp_runtime_submit(rt, 0, st_msg, NULL), -ESHUTDOWN);
	rp_runtime_destroy(rt);
	check_failures();
	assert_int_equal(atomic_load(&tas.on_stop), 1);
	assert_true(tas.nop_null);
	assert_int_equal(tas.nop_errno, ESHUTDOWN);
	assert_true(tas.timeout_null);
	assert_int_equal(tas.timeout_errno, ESHUTDOWN);
	assert_int_equal(tas.post_ret, -ESHUTDOWN);
	/* close and cancel ran to completion during the stop */
	assert_int_equal(atomic_load(&tas.done), 2);
	assert_int_equal(tas.close_res, 0);
	assert_true(tas.cancel_res == -ENOENT || tas.cancel_res >= 0);
	errno = 0;
	assert_int_equal(fcntl(tas.fd, F_GETFD), -1);
	assert_int_equal(errno, EBADF);
}

/* ====================================================================== */

static int setup_watchdog(void **state)
{
	(void)state;
	watchdog("engine", reduced() ? 120 : 90);
	return 0;
}

static int teardown_watchdog(void **state)
{
	(void)state;
	alarm(0);
	return 0;
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup_watchdog, teardown_watchdog)

int main(int argc, char **argv)
{
	const struct CMUnitTest all[] = {
		T(test_nop_and_timeout),
		T(test_read_write_readv_writev),
		T(test_fixed_buffers),
		T(test_accept_multishot_and_connect),
		T(test_send_recv_sendmsg),
		T(test_recv_multishot),
		T(test_send_zc),
		T(test_splice),
		T(test_close_cancel_cancel_fd),
		T(test_link_timeout),
		T(test_multishot_enobufs_rearm),
		T(test_fd_reuse_plain_recv),
		T(test_fd_reuse_armed_multishot),
		T(test_fd_reuse_parked_multishot),
		T(test_fd_reuse_close_in_data_callback),
		T(test_cross_shard_messages),
		T(test_submit_from_threads),
		T(test_stop_with_ops_in_flight),
		T(test_create_rejects_bad_config),
		T(test_init_error_fails_start),
		T(test_ops_after_stop),
	};
	/* the TSan build runs only what crosses threads */
	const struct CMUnitTest threads[] = {
		T(test_cross_shard_messages),	 T(test_submit_from_threads),
		T(test_stop_with_ops_in_flight), T(test_init_error_fails_start),
		T(test_ops_after_stop),
	};

	signal(SIGPIPE, SIG_IGN);
	if (getenv("RP_TEST_FILTER")) /* e.g. RP_TEST_FILTER='test_fd_reuse*' */
		cmocka_set_test_filter(getenv("RP_TEST_FILTER"));
	if (argc > 1 && !strcmp(argv[1], "threads"))
		return cmocka_run_group_tests_name("engine-threads", threads, NULL, NULL);
	return cmocka_run_group_tests_name("engine", all, NULL, NULL);
}
