/* SPDX-License-Identifier: MIT */
/*
 * engine: ending ops and reusing fds: rp_close, rp_cancel and rp_cancel_fd,
 * multishot recv re-armed after ENOBUFS (parked until a buffer comes back),
 * and fd-number reuse after rp_close never feeding an old op.
 *
 * RP_TEST_REDUCED=1 lowers the counts; RP_TEST_FILTER=pattern runs the
 * matching tests only.
 */
#include <sys/stat.h>

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

	(void)state;
	memset(&tcc, 0, sizeof(tcc));
	tcp_pair(&tcc.c, &tcc.s);
	tcc.dupfd = dup(tcc.s);
	assert_true(tcc.dupfd >= 0);
	rt_run_until(&cfg, cc_init, &tcc.done, 7, &st);
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
	/* the two closes found no op on their fds; the two recvs were cancelled
	 * one by one, by user_data */
	assert_int_equal(st.close_bare, 2);
	assert_int_equal(st.op_cancels, 2);
	assert_int_equal(st.cancel_fd_fallback, 0);
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


/* ======================================================================
 * rp_close cancels exactly the ops on its fd: a send in flight, a splice
 * whose other end is the fd closed; a multishot recv on another fd keeps
 * working
 * ====================================================================== */

static struct {
	atomic_int done;
	int c1, s1, c2, s2, c3, s3, p[2];
	int send_res, splice_res, close1_res, close2_res, other_got, other_final;
	int closes, cancel_none_res;
	struct rp_op *other;
	char sbuf[4096];
} tce;

static void ce_send_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	tce.send_res = c->res;
}

static void ce_splice_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	tce.splice_res = c->res;
}

static void ce_other_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	if (c->res > 0)
		tce.other_got += c->res;
	if (c->buf)
		rp_buf_put(sh, c->bid);
	if (!(c->flags & RP_CQE_MORE)) {
		tce.other_final = c->res;
		atomic_store(&tce.done, 1);
		return;
	}
	if (tce.other_got == 5)
		CHECK(rp_cancel(sh, tce.other, NULL, NULL) != NULL); /* done: end it */
}

static void ce_closed_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	if (arg)
		tce.close2_res = c->res;
	else
		tce.close1_res = c->res;
	/* both closed: the receive on the other connection is still armed */
	if (++tce.closes == 2)
		CHECK_EQ(write(tce.c2, "alive", 5), 5);
}

static void ce_cancel_none_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	tce.cancel_none_res = c->res;
}

static void ce_go(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	(void)c;
	/* no op on c3: nothing to cancel, a count of 0 */
	CHECK(rp_cancel_fd(sh, tce.c3, ce_cancel_none_cb, NULL) != NULL);
	CHECK(rp_close(sh, tce.s1, ce_closed_cb, NULL) != NULL);
	CHECK(rp_close(sh, tce.p[1], ce_closed_cb, (void *)1) != NULL);
}

static int ce_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	/* s1's send buffer is full and c1 never reads: this send waits */
	CHECK(rp_send(sh, tce.s1, tce.sbuf, sizeof(tce.sbuf), 0, ce_send_cb, NULL) != NULL);
	/* nothing to read on s3: this splice into the pipe waits */
	CHECK(rp_splice(sh, tce.s3, -1, tce.p[1], -1, 4096, 0, ce_splice_cb, NULL) != NULL);
	tce.other = rp_recv_multishot(sh, tce.s2, ce_other_cb, NULL);
	CHECK(tce.other != NULL);
	CHECK(rp_timeout(sh, 30 * MS, ce_go, NULL) != NULL);
	return 0;
}

static void test_close_cancels_only_its_fd(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_shard_stats st;

	(void)state;
	memset(&tce, 0, sizeof(tce));
	tce.send_res = tce.splice_res = tce.cancel_none_res = 1;
	{
		/* a unix stream: its send queue does not grow behind our back
		 * (loopback TCP autotunes the peer's window and drains it) */
		int sv[2];

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		tce.c1 = sv[0];
		tce.s1 = sv[1];
	}
	tcp_pair(&tce.c2, &tce.s2);
	tcp_pair(&tce.c3, &tce.s3);
	assert_int_equal(pipe2(tce.p, O_CLOEXEC), 0);
	assert_int_equal(fcntl(tce.s1, F_SETFL, O_NONBLOCK), 0);
	for (int i = 0; i < 100000 && write(tce.s1, tce.sbuf, sizeof(tce.sbuf)) > 0; i++)
		;
	assert_int_equal(errno, EAGAIN);
	for (int i = 0; i < 100000 && write(tce.s1, tce.sbuf, 1) > 0; i++)
		; /* and its last bytes */
	rt_run_until(&cfg, ce_init, &tce.done, 1, &st);
	assert_int_equal(tce.close1_res, 0);
	assert_int_equal(tce.close2_res, 0);
	assert_int_equal(tce.send_res, -ECANCELED);
	assert_true(tce.splice_res < 0);
	assert_int_equal(tce.other_got, 5);
	assert_int_equal(tce.other_final, -ECANCELED);
	assert_int_equal(tce.cancel_none_res, 0);
	/* the send and the splice, by user_data; nothing by fd */
	assert_int_equal(st.op_cancels, 2);
	assert_int_equal(st.cancel_fd_fallback, 0);
	close(tce.c1);
	close(tce.c2);
	close(tce.s2);
	close(tce.c3);
	close(tce.s3);
	close(tce.p[0]);
}

/* ======================================================================
 * more ops on one fd than the SQ holds: rp_close falls back to a cancel
 * by fd and still ends them all
 * ====================================================================== */

#define MANY_OPS 12

static struct {
	atomic_int done;
	int c, s, ends, cancelled, close_res;
	char buf[MANY_OPS][8];
} tmo;

static void mo_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	if (arg)
		tmo.close_res = c->res;
	else if (c->res == -ECANCELED)
		tmo.cancelled++;
	if (++tmo.ends == MANY_OPS + 1)
		atomic_store(&tmo.done, 1);
}

static void mo_go(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	(void)c;
	CHECK(rp_close(sh, tmo.s, mo_cb, (void *)1) != NULL);
}

static int mo_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	for (int i = 0; i < MANY_OPS; i++)
		CHECK(rp_recv(sh, tmo.s, tmo.buf[i], sizeof(tmo.buf[i]), 0, mo_cb, NULL) != NULL);
	CHECK(rp_timeout(sh, 20 * MS, mo_go, NULL) != NULL);
	return 0;
}

static void test_close_of_more_ops_than_the_sq_holds(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_shard_stats st;

	(void)state;
	memset(&tmo, 0, sizeof(tmo));
	tmo.close_res = 1;
	tcp_pair(&tmo.c, &tmo.s);
	cfg.ring_entries = 8; /* 12 cancels + the close do not fit */
	rt_run_until(&cfg, mo_init, &tmo.done, 1, &st);
	assert_int_equal(tmo.close_res, 0);
	assert_int_equal(tmo.cancelled, MANY_OPS);
	assert_int_equal(st.cancel_fd_fallback, 1);
	assert_int_equal(st.op_cancels, 0);
	close(tmo.c);
}

/* ======================================================================
 * close storm: N connections, a multishot recv armed on each, closed at
 * once from one callback
 * ====================================================================== */

#define STORM_BUFS 16

static struct {
	atomic_int done;
	int n;
	int *srv, *cli;
	int closed, finals, close_errs, final_bad;
	double t0, t1;
	bool park;		 /* hold every buffer: the other receives park */
	uint16_t held[STORM_BUFS];
	unsigned nheld;
} tcs;

static void cs_end_one(void)
{
	if (tcs.closed == tcs.n && tcs.finals == tcs.n) {
		tcs.t1 = now_s();
		atomic_store(&tcs.done, 1);
	}
}

static void cs_recv_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	if (c->buf && tcs.park && tcs.nheld < STORM_BUFS)
		tcs.held[tcs.nheld++] = c->bid;
	else if (c->buf)
		rp_buf_put(sh, c->bid);
	if (c->flags & RP_CQE_MORE)
		return;
	if (c->res != -ECANCELED)
		tcs.final_bad++;
	tcs.finals++;
	cs_end_one();
}

static void cs_close_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	if (c->res)
		tcs.close_errs++;
	tcs.closed++;
	cs_end_one();
}

static void cs_go(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	(void)c;
	if (tcs.park) {
		struct rp_shard_stats st;

		/* every receive but those holding the buffers has parked */
		rp_shard_stats(sh, &st);
		if (st.enobufs < (uint64_t)(tcs.n - STORM_BUFS)) {
			CHECK(rp_timeout(sh, 10 * MS, cs_go, NULL) != NULL);
			return;
		}
	}
	tcs.t0 = now_s();
	for (int i = 0; i < tcs.n; i++)
		CHECK(rp_close(sh, tcs.srv[i], cs_close_cb, NULL) != NULL);
	for (unsigned i = 0; i < tcs.nheld; i++)
		rp_buf_put(sh, tcs.held[i]);
	tcs.nheld = 0;
}

static int cs_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	for (int i = 0; i < tcs.n; i++)
		CHECK(rp_recv_multishot(sh, tcs.srv[i], cs_recv_cb, NULL) != NULL);
	/* the receives reach the kernel with this iteration's submit */
	CHECK(rp_timeout(sh, 50 * MS, cs_go, NULL) != NULL);
	return 0;
}

static void run_close_storm(bool park, bool sqpoll)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_shard_stats st;
	struct rp_runtime *rt;
	struct sockaddr_in addr;
	struct rlimit rl;
	int lfd, n = reduced() ? 2000 : 10000;
	bool ok;

	memset(&tcs, 0, sizeof(tcs));
	tcs.park = park;
	/* two fds a connection, and a few for the runtime */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)n * 2 + 64 > rl.rlim_cur)
		n = (int)((rl.rlim_cur - 64) / 2);
	if (n < 100)
		skip();
	tcs.n = n;
	tcs.srv = calloc((size_t)n, sizeof(int));
	tcs.cli = calloc((size_t)n, sizeof(int));
	assert_non_null(tcs.srv);
	assert_non_null(tcs.cli);
	lfd = tcp_listener(&addr);
	for (int i = 0; i < n; i++) {
		tcs.cli[i] = tcp_connect(&addr);
		assert_true(tcs.cli[i] >= 0);
		tcs.srv[i] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		assert_true(tcs.srv[i] >= 0);
		if (park) /* a byte waiting for each receive */
			assert_int_equal(write(tcs.cli[i], "x", 1), 1);
	}
	close(lfd);
	if (park)
		cfg.bufs = STORM_BUFS;
	cfg.init = cs_init;
	rt = sqpoll ? rt_start_sqpoll(&cfg) : rt_start(&cfg);
	if (!rt) {
		for (int i = 0; i < n; i++) {
			close(tcs.srv[i]);
			close(tcs.cli[i]);
		}
		free(tcs.srv);
		free(tcs.cli);
		skip();
	}
	ok = wait_for(&tcs.done, 1, 60.0);
	rt_end_stats(rt, &st);
	assert_true(ok);
	print_message("# close storm: %d connections with a multishot recv each (%s%s) closed in "
		      "%.3f s (%.2f us each)\n",
		      n, park ? "all but 16 parked" : "armed", sqpoll ? ", sqpoll" : "",
		      tcs.t1 - tcs.t0, (tcs.t1 - tcs.t0) * 1e6 / n);
	assert_int_equal(tcs.close_errs, 0);
	assert_int_equal(tcs.final_bad, 0);
	/* each close cancelled its one receive by user_data: no cancel by fd,
	 * whose cost in the kernel grows with every request armed on the ring;
	 * a parked receive is not in the kernel and needs no cancel at all */
	assert_int_equal(st.cancel_fd_fallback, 0);
	assert_int_equal(st.op_cancels, (uint64_t)(park ? STORM_BUFS : n));
	assert_int_equal(st.close_bare, (uint64_t)(park ? n - STORM_BUFS : 0));
	assert_int_equal(st.sq_full_fail, 0);
	for (int i = 0; i < n; i++)
		close(tcs.cli[i]);
	free(tcs.srv);
	free(tcs.cli);
}

static void test_close_storm(void **state)
{
	(void)state;
	run_close_storm(false, false);
}

static void test_close_storm_parked(void **state)
{
	(void)state;
	run_close_storm(true, false);
}

/* The same with SQPOLL rings: 10,000 receives armed from one callback
 * overrun the SQ many times; the SQ thread, not the submit, empties it,
 * and each flush used to give up before it had (rp_recv_multishot NULL,
 * EBUSY, 508 receives in). */
static void test_close_storm_sqpoll(void **state)
{
	(void)state;
	run_close_storm(false, true);
}

/* ======================================================================
 * close order: the close's callback comes after the final callbacks of
 * the ops it cancelled (rp_close: "close @fd, after ending every op")
 * ====================================================================== */

static struct {
	atomic_int done;
	int c, s;
	int seq, recv_at, close_at, recv_res, close_res;
	struct rp_op *op;
	bool cancel_first; /* rp_cancel the recv just before the close */
} tco;

static void co_recv_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	if (c->buf)
		rp_buf_put(sh, c->bid);
	if (c->flags & RP_CQE_MORE)
		return;
	tco.recv_res = c->res;
	tco.recv_at = ++tco.seq;
	if (tco.seq == 2)
		atomic_store(&tco.done, 1);
}

static void co_close_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	tco.close_res = c->res;
	tco.close_at = ++tco.seq;
	if (tco.seq == 2)
		atomic_store(&tco.done, 1);
}

static void co_go(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	(void)c;
	if (tco.cancel_first)
		CHECK(rp_cancel(sh, tco.op, NULL, NULL) != NULL);
	CHECK(rp_close(sh, tco.s, co_close_cb, NULL) != NULL);
}

static int co_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	tco.op = rp_recv_multishot(sh, tco.s, co_recv_cb, NULL);
	CHECK(tco.op != NULL);
	CHECK(rp_timeout(sh, 20 * MS, co_go, NULL) != NULL);
	return 0;
}

static void close_order(bool cancel_first)
{
	struct rp_runtime_config cfg = base_cfg(1);

	memset(&tco, 0, sizeof(tco));
	tco.cancel_first = cancel_first;
	tcp_pair(&tco.c, &tco.s);
	rt_run_until(&cfg, co_init, &tco.done, 1, NULL);
	print_message("# recv final %d at %d, close %d at %d\n", tco.recv_res, tco.recv_at,
		      tco.close_res, tco.close_at);
	assert_int_equal(tco.recv_res, -ECANCELED);
	assert_int_equal(tco.close_res, 0);
	assert_int_equal(tco.recv_at, 1);
	assert_int_equal(tco.close_at, 2);
	close(tco.c);
}

static void test_close_completes_after_its_ops(void **state)
{
	(void)state;
	close_order(false);
}

/* The recv already asked to end (OPF_CANCEL_REQ) is cancelled again, and
 * the close linked behind it: a bare close completed first. */
static void test_close_after_rp_cancel_completes_after_its_op(void **state)
{
	(void)state;
	close_order(true);
}

/* ======================================================================
 * a close linked behind an op (rp_link_next) when the shard's loop ends:
 * the fd it was handed is closed, exactly once
 * ====================================================================== */

/* @fd and @other are the same file (inode and device). */
static void assert_same_file(int fd, int other)
{
	struct stat st, st_other;

	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(fstat(other, &st_other), 0);
	assert_true(st.st_ino == st_other.st_ino && st.st_dev == st_other.st_dev);
}

/* @fd is closed: the number is free; and once: a file put on the number
 * now (/dev/null) is still there @settle_ms later (no late close of the
 * ring's takes it). Closed again after. */
static void assert_closed_once(int fd, unsigned settle_ms)
{
	int nul;

	errno = 0;
	assert_true(fcntl(fd, F_GETFD) < 0 && errno == EBADF);
	nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(nul >= 0);
	if (nul != fd)
		assert_int_equal(dup3(nul, fd, O_CLOEXEC), fd);
	sleep_ms(settle_ms);
	assert_same_file(fd, nul);
	close(fd);
	if (nul != fd)
		close(nul);
}

static struct {
	atomic_int armed, close_cbs, head_cbs;
	int c, s;  /* the recv's pair: nothing is ever sent on c */
	int x, xw; /* x: the pipe end handed to the linked rp_close */
	int close_res, head_res;
	bool slow;		     /* on_stop outlasts a 1 ms deadline: no cancel-any */
	bool abandon;		     /* the head's callback outlasts a 1 ms deadline */
	bool fini_ran, fini_refused; /* la_fini's rp_close of x */
	int fini_errno;
	char buf[16];
} tlc;

static void lc_recv_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	tlc.head_res = c->res;
	atomic_fetch_add(&tlc.head_cbs, 1);
	/* tlc.abandon: past the stop's 1 ms deadline: the close sent again by
	 * the linked close's -ECANCELED (next in this batch) is never
	 * submitted */
	if (tlc.abandon)
		sleep_ms(20);
}

static void lc_close_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	tlc.close_res = c->res;
	atomic_fetch_add(&tlc.close_cbs, 1);
}

static int lc_init(struct rp_shard *sh, void *arg)
{
	struct rp_op *op;

	(void)arg;
	op = rp_recv(sh, tlc.s, tlc.buf, sizeof(tlc.buf), 0, lc_recv_cb, NULL);
	CHECK(op != NULL);
	CHECK(op && rp_link_next(sh, op) == 0);
	CHECK(rp_close(sh, tlc.x, lc_close_cb, NULL) != NULL);
	atomic_store(&tlc.armed, 1);
	return 0;
}

/* After the loop: an rp_close of the recv's fd (an op on it in the
 * kernel) is refused with EBUSY (engine.h), and the fd closed here. It
 * used to write its cancel into the NULL SQE eng_sqe gives then. */
static void lc_fini(struct rp_shard *sh, void *arg)
{
	(void)arg;
	errno = 0;
	CHECK(rp_close(sh, tlc.s, NULL, NULL) == NULL);
	CHECK_EQ(errno, EBUSY);
	close(tlc.s);
	tlc.s = -1;
}

static void lc_slow_stop(struct rp_shard *sh, void *arg)
{
	(void)sh;
	(void)arg;
	sleep_ms(20);
}

/* lc_init's chain on a new pair and pipe, under @cfg (its fini and stop
 * settings the caller's): started, the chain submitted, then stopped,
 * joined and freed. */
static void lc_run(struct rp_runtime_config *cfg)
{
	struct rp_runtime *rt;
	int p[2];

	tcp_pair(&tlc.c, &tlc.s);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	tlc.x = p[0];
	tlc.xw = p[1];
	cfg->init = lc_init;
	rt = rt_start(cfg);
	assert_true(wait_for(&tlc.armed, 1, WAIT_S));
	sleep_ms(50); /* the loop submitted the chain: the recv waits, the close behind it */
	rt_end(rt);
}

static void linked_close_at_end(bool slow)
{
	struct rp_runtime_config cfg = base_cfg(1);
	int cbs;

	memset(&tlc, 0, sizeof(tlc));
	tlc.slow = slow;
	cfg.fini = lc_fini;
	if (slow) {
		cfg.stop_timeout_ms = 1;
		cfg.on_stop = lc_slow_stop;
	}
	lc_run(&cfg);
	cbs = atomic_load(&tlc.close_cbs);
	errno = 0;
	print_message("# %s stop: close callbacks %d (res %d); fd %s after the join\n",
		      slow ? "deadline" : "plain", cbs, tlc.close_res,
		      fcntl(tlc.x, F_GETFD) < 0 && errno == EBADF ? "closed" : "OPEN");
	/* plain: the close sent again reports its result (0); deadline: the
	 * loop was over, no callback runs (the engine's close(2) at the end) */
	assert_int_equal(cbs, slow ? 0 : 1);
	if (!slow)
		assert_int_equal(tlc.close_res, 0);
	assert_closed_once(tlc.x, 100);
	close(tlc.xw);
	close(tlc.c);
	assert_int_equal(tlc.s, -1); /* closed by lc_fini */
}

/* The stop's cancel-any ends the recv, and with it (a link whose head
 * failed) the close, unrun: the engine sends it again unlinked, and its
 * one callback gets that close's result, 0. */
static void test_linked_close_at_stop(void **state)
{
	(void)state;
	linked_close_at_end(false);
}

/* The stop's deadline passes in on_stop: the loop ends with the recv and
 * the close behind it in the kernel; the fd is closed once the runtime
 * is joined, and once. */
static void test_linked_close_at_deadline(void **state)
{
	(void)state;
	linked_close_at_end(true);
}

/* ======================================================================
 * a close linked behind an op, superseded by another rp_close of its fd:
 * the other close closes the fd; the linked one, ended with its head,
 * closes nothing (it closed whatever file took the number in between)
 * ====================================================================== */

static struct {
	atomic_int done;
	int c, s, nul, reused;
	int lclose_res, close_res, lclose_cbs;
	bool at_stop; /* the explicit close from on_stop (the stop's cancel-any) */
	char buf[16];
} tsc;

static void sc_lclose_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	tsc.lclose_res = c->res;
	tsc.lclose_cbs++;
	atomic_fetch_add(&tsc.done, 1);
}

/* the number is free now: another thread's open or accept takes it */
static void sc_close_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	tsc.close_res = c->res;
	tsc.reused = dup2(tsc.nul, tsc.s);
	atomic_fetch_add(&tsc.done, 1);
}

static int sc_init(struct rp_shard *sh, void *arg)
{
	struct rp_op *op;

	(void)arg;
	/* a recv that waits (nothing is sent on c): the head */
	op = rp_recv(sh, tsc.s, tsc.buf, sizeof(tsc.buf), 0, lc_recv_cb, NULL);
	CHECK(op != NULL);
	CHECK(op && rp_link_next(sh, op) == 0);
	CHECK(rp_close(sh, tsc.s, sc_lclose_cb, NULL) != NULL);
	/* the connection aborted: closed now */
	if (!tsc.at_stop)
		CHECK(rp_close(sh, tsc.s, sc_close_cb, NULL) != NULL);
	return 0;
}

static void sc_on_stop(struct rp_shard *sh, void *arg)
{
	(void)arg;
	CHECK(rp_close(sh, tsc.s, sc_close_cb, NULL) != NULL);
}

static void superseded_linked_close(bool at_stop)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;

	memset(&tsc, 0, sizeof(tsc));
	tsc.at_stop = at_stop;
	tcp_pair(&tsc.c, &tsc.s);
	tsc.nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(tsc.nul >= 0);
	cfg.init = sc_init;
	if (at_stop)
		cfg.on_stop = sc_on_stop;
	rt = rt_start(&cfg);
	if (!at_stop)
		assert_true(wait_for(&tsc.done, 2, WAIT_S));
	else
		sleep_ms(50); /* the loop submitted the chain */
	sleep_ms(50);
	rt_end(rt);
	errno = 0;
	print_message("# %s: linked close %d (callbacks %d), explicit close %d; the file put "
		      "on %d after it: %s\n",
		      at_stop ? "on_stop" : "init", tsc.lclose_res, tsc.lclose_cbs, tsc.close_res,
		      tsc.s, fcntl(tsc.s, F_GETFD) >= 0 ? "open" : "CLOSED (double close)");
	assert_int_equal(atomic_load(&tsc.done), 2);
	assert_int_equal(tsc.close_res, 0);
	assert_int_equal(tsc.reused, tsc.s);
	assert_int_equal(tsc.lclose_cbs, 1);
	assert_int_equal(tsc.lclose_res, -ECANCELED);
	/* the number holds the file put on it after the explicit close */
	assert_same_file(tsc.s, tsc.nul);
	close(tsc.s);
	close(tsc.c);
	close(tsc.nul);
}

/* init: recv(s), rp_link_next, rp_close(s), then rp_close(s) */
static void test_linked_close_superseded(void **state)
{
	(void)state;
	superseded_linked_close(false);
}

/* the explicit rp_close(s) from on_stop, before the stop's cancel-any */
static void test_linked_close_superseded_at_stop(void **state)
{
	(void)state;
	superseded_linked_close(true);
}

/* ======================================================================
 * a close linked behind an op, ended unrun by its head's cancel and sent
 * again unlinked: another rp_close of its fd before that close's callback
 * is refused (EALREADY), not a second close of the number; a file the
 * caller put on the number meanwhile is closed by the recovery engine.h
 * gives (close(2) at once, or rp_close again after the first close's
 * callback), once, and nothing is left open
 * ====================================================================== */

enum rs_recovery { RS_CLOSE2, RS_RETRY };

static struct {
	atomic_int done;
	enum rs_recovery how;
	int c, s, nul, reused;
	struct rp_op *head;
	int lclose_res, lclose_cbs, eclose_cbs, eclose_res;
	bool s_free, eclose_made, retry_made;
	int eclose_errno, close2_rc;
	char buf[16];
} trs;

static void rs_eclose_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	trs.eclose_res = c->res;
	trs.eclose_cbs++;
	atomic_fetch_add(&trs.done, 1);
}

/* The first close's callback: its fd is off the list now; the retry is
 * made as any close, of the file the caller put on the number. */
static void rs_lclose_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	trs.lclose_res = c->res;
	trs.lclose_cbs++;
	if (trs.how == RS_RETRY && !trs.eclose_made && trs.eclose_errno == EALREADY) {
		trs.retry_made = rp_close(sh, trs.s, rs_eclose_cb, NULL) != NULL;
		if (trs.retry_made)
			return; /* done with the retry's callback */
	}
	atomic_fetch_add(&trs.done, 1);
}

/* Same submit as the linked close sent again, its CQE just before that
 * close's: the kernel closed s, the close's callback has not run. The
 * number is free: an open in this callback takes it (dup2 here); then
 * the application closes it. */
static void rs_nop_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct rp_op *op;

	(void)arg;
	(void)c;
	errno = 0;
	trs.s_free = fcntl(trs.s, F_GETFD) < 0 && errno == EBADF;
	trs.reused = dup2(trs.nul, trs.s);
	errno = 0;
	op = rp_close(sh, trs.s, rs_eclose_cb, NULL);
	trs.eclose_made = op != NULL;
	trs.eclose_errno = errno;
	/* engine.h: the file is the caller's (the number was free, so the
	 * kernel ran the first close): close(2) it now */
	if (!op && errno == EALREADY && trs.how == RS_CLOSE2)
		trs.close2_rc = close(trs.s);
}

/* the recv ended by its cancel: the nop goes ahead of the linked close's
 * resend (which that close's -ECANCELED, next in this batch, makes) */
static void rs_head_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	(void)c;
	CHECK(rp_nop(sh, rs_nop_cb, NULL) != NULL);
}

static int rs_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	trs.head = rp_recv(sh, trs.s, trs.buf, sizeof(trs.buf), 0, rs_head_cb, NULL);
	CHECK(trs.head != NULL);
	CHECK(trs.head && rp_link_next(sh, trs.head) == 0);
	CHECK(rp_close(sh, trs.s, rs_lclose_cb, NULL) != NULL);
	CHECK(trs.head && rp_cancel_op(sh, trs.head) == 0);
	return 0;
}

static void close_after_linked_close_resent(enum rs_recovery how)
{
	struct rp_runtime_config cfg = base_cfg(1);

	memset(&trs, 0, sizeof(trs));
	trs.how = how;
	tcp_pair(&trs.c, &trs.s);
	trs.nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(trs.nul >= 0);
	rt_run_until(&cfg, rs_init, &trs.done, 1, NULL);
	errno = 0;
	print_message("# linked close sent again: res %d (callbacks %d); s free at the nop %d; "
		      "rp_close after it %s (errno %d); recovery %s: close(2) %d, retry %s "
		      "(res %d, callbacks %d); the file put on %d: %s after the join\n",
		      trs.lclose_res, trs.lclose_cbs, trs.s_free,
		      trs.eclose_made ? "MADE" : "refused", trs.eclose_errno,
		      how == RS_CLOSE2 ? "close(2)" : "rp_close again", trs.close2_rc,
		      trs.retry_made ? "made" : "-", trs.eclose_res, trs.eclose_cbs, trs.s,
		      fcntl(trs.s, F_GETFD) >= 0 ? "OPEN (leaked)" : "closed");
	assert_true(trs.s_free); /* the resent close ran before the nop's callback */
	assert_int_equal(trs.reused, trs.s);
	assert_int_equal(trs.lclose_cbs, 1);
	assert_int_equal(trs.lclose_res, 0);
	/* refused: it would have closed the number a second time */
	assert_false(trs.eclose_made);
	assert_int_equal(trs.eclose_errno, EALREADY);
	if (how == RS_CLOSE2) {
		assert_int_equal(trs.close2_rc, 0);
		assert_false(trs.retry_made);
		assert_int_equal(trs.eclose_cbs, 0);
	} else {
		assert_true(trs.retry_made);
		assert_int_equal(trs.eclose_cbs, 1);
		assert_int_equal(trs.eclose_res, 0);
	}
	/* the file put on the number was closed: nothing leaked; and once */
	assert_closed_once(trs.s, 50);
	close(trs.c);
	close(trs.nul);
}

/* the caller close(2)s the file it put on the number at once */
static void test_close_after_linked_close_resent_close2(void **state)
{
	(void)state;
	close_after_linked_close_resent(RS_CLOSE2);
}

/* the caller calls rp_close again from the first close's callback */
static void test_close_after_linked_close_resent_retry(void **state)
{
	(void)state;
	close_after_linked_close_resent(RS_RETRY);
}

/* ======================================================================
 * a close linked behind an op, sent again unlinked when the stop's
 * cancel-any ended its head, and abandoned in the SQ by the loop's end
 * (the deadline passed in the head's callback): the loop's end closes
 * the fd with close(2), and an rp_close of it from fini gets EBUSY as
 * engine.h says, not EALREADY from a list the loop's end left behind
 * ====================================================================== */

/* the chain of lc_init; fini: an rp_close of x */
static void la_fini(struct rp_shard *sh, void *arg)
{
	(void)arg;
	errno = 0;
	tlc.fini_refused = rp_close(sh, tlc.x, NULL, NULL) == NULL;
	tlc.fini_errno = errno;
	tlc.fini_ran = true;
}

static void test_linked_close_resent_abandoned_fini_close(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);

	(void)state;
	memset(&tlc, 0, sizeof(tlc));
	tlc.abandon = true;
	cfg.fini = la_fini;
	cfg.stop_timeout_ms = 1;
	lc_run(&cfg);
	errno = 0;
	print_message("# head res %d (callbacks %d); linked close callbacks %d; rp_close from "
		      "fini: %s (errno %d); fd %s after the join\n",
		      tlc.head_res, atomic_load(&tlc.head_cbs), atomic_load(&tlc.close_cbs),
		      tlc.fini_refused ? "refused" : "MADE", tlc.fini_errno,
		      fcntl(tlc.x, F_GETFD) < 0 && errno == EBADF ? "closed" : "OPEN");
	assert_int_equal(atomic_load(&tlc.head_cbs), 1);
	assert_int_equal(tlc.head_res, -ECANCELED);
	/* the close sent again never went: no callback (the loop was over) */
	assert_int_equal(atomic_load(&tlc.close_cbs), 0);
	assert_true(tlc.fini_ran);
	assert_true(tlc.fini_refused);
	/* EALREADY before: the abandoned close was left on sh->lsent */
	assert_int_equal(tlc.fini_errno, EBUSY);
	/* closed by the loop's end, once: a file put on the number stays open */
	assert_closed_once(tlc.x, 50);
	close(tlc.xw);
	close(tlc.s);
	close(tlc.c);
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
		T(test_close_cancels_only_its_fd),
		T(test_close_of_more_ops_than_the_sq_holds),
		T(test_close_storm),
		T(test_close_storm_parked),
		T(test_close_storm_sqpoll),
		T(test_close_completes_after_its_ops),
		T(test_close_after_rp_cancel_completes_after_its_op),
		T(test_linked_close_at_stop),
		T(test_linked_close_at_deadline),
		T(test_linked_close_superseded),
		T(test_linked_close_superseded_at_stop),
		T(test_close_after_linked_close_resent_close2),
		T(test_close_after_linked_close_resent_retry),
		T(test_linked_close_resent_abandoned_fini_close),
	};

	return ENGINE_TEST_RUN("engine-close", all);
}
