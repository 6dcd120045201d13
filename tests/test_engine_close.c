/* SPDX-License-Identifier: MIT */
/*
 * engine: ending ops and reusing fds: rp_close, rp_cancel and rp_cancel_fd,
 * multishot recv re-armed after ENOBUFS (parked until a buffer comes back),
 * and fd-number reuse after rp_close never feeding an old op.
 *
 * RP_TEST_REDUCED=1 lowers the counts; RP_TEST_FILTER=pattern runs the
 * matching tests only.
 */
#include "engine_test.h"

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

/* ====================================================================== */

int main(void)
{
	const struct CMUnitTest all[] = {
		T(test_close_cancel_cancel_fd),
		T(test_multishot_enobufs_rearm),
		T(test_fd_reuse_plain_recv),
		T(test_fd_reuse_armed_multishot),
		T(test_fd_reuse_parked_multishot),
		T(test_fd_reuse_close_in_data_callback),
	};

	return ENGINE_TEST_RUN("engine-close", all);
}
