/* SPDX-License-Identifier: MIT */
/*
 * Engine fault injection (engine/faults.h), built against a copy of the
 * engine compiled with RP_FAULTS, each case with its own RP_FAULTS:
 * - the syntax: unknown keys and bad values are -EINVAL with a message;
 * - nomem: ops fail with ENOMEM as on an empty pool, the others complete;
 *   none fails in a shard's init (a fresh pool is never empty);
 * - short: rp_send, rp_sendmsg and rp_send_zc really send fewer bytes
 *   (the peer reads exactly res bytes, the caller's msghdr is untouched),
 *   and a stream through rp_outq with short=0.3 arrives whole and in order;
 *   so does one under nomem (a flush that finds no op retries, no error);
 * - reset: rp_recv ends with -ECONNRESET; multishot receives deliver only
 *   correct bytes in order, then end with -ECONNRESET, with every buffer
 *   back and no op left alive, also when the caller closes the socket
 *   while the reset's cancel is under way;
 * - eagain: flushes and the loop's submits that fail lose nothing; at
 *   rate 1 the flush gives up (EBUSY) and the loop still runs;
 * - rearm: every re-arm from a completion or a buffer put finds no SQE:
 *   a poll for writable after an RDHUP-only answer still answers POLLOUT
 *   once the peer reads, and its own end still comes; a multishot receive
 *   whose buffers all came back while it was parked still receives the
 *   whole stream (both waited forever, or ended with EBUSY, before the
 *   engine's re-arm list);
 * - timer: rp_timer_arm finds no SQE half the time: the timer waits armed
 *   for the loop's next turn, the relay's idle sweep goes on, and silent
 *   relays still end.
 */
#include <poll.h>

#include <ringplane/outq.h>
#include <ringplane/relay.h>

#include "engine_test.h"
#include "engine_impl.h"
#include "faults.h"

static struct rp_runtime *rt_start_faults(const struct rp_runtime_config *cfg, const char *spec)
{
	assert_int_equal(setenv("RP_FAULTS", spec, 1), 0);
	return rt_start(cfg);
}

/* ======================================================================
 * RP_FAULTS syntax
 * ====================================================================== */

static void test_rp_faults_syntax(void **state)
{
	static const char *const bad[] = {
		"bogus=0.1", "nomem",	      "nomem=",		    "nomem=1.5",
		"nomem=-0.1", "nomem=0.1x",   "nomem=0.1,,short=0.1", "nomem=0.1,",
		",nomem=0.1", "seed=-1",      "seed=abc",	    "short=nan",
		"Reset=0.1",  "eagain=0.5 ",
	};
	static const char *const good[] = {
		"", "nomem=0", "seed=3", "nomem=0.01,short=0.05,reset=0.5,eagain=1,seed=42", "rearm=0.5",
		"timer=0.5",
	};
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rt = NULL;
		setenv("RP_FAULTS", bad[i], 1);
		if (rp_runtime_create(&cfg, &rt) != -EINVAL || rt)
			fail_msg("RP_FAULTS=\"%s\" was not refused with -EINVAL", bad[i]);
		if (!strstr(rp_engine_error(), "RP_FAULTS"))
			fail_msg("RP_FAULTS=\"%s\": message \"%s\"", bad[i], rp_engine_error());
	}
	print_message("# e.g. %s\n", rp_engine_error());
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		setenv("RP_FAULTS", good[i], 1);
		if (rp_runtime_create(&cfg, &rt))
			fail_msg("RP_FAULTS=\"%s\" refused: %s", good[i], rp_engine_error());
		rp_runtime_destroy(rt);
	}
	unsetenv("RP_FAULTS");
}

/* ======================================================================
 * nomem
 * ====================================================================== */

#define NM_OPS 400

static struct {
	atomic_int done;
	unsigned prepared, refused, completed, other_errno, init_ok;
} tnm;

static void nm_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	CHECK_EQ(c->res, 0);
	if (++tnm.completed == tnm.prepared)
		atomic_store(&tnm.done, 1);
}

static void nm_cb_init(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	(void)c;
}

/* A shard's init runs on a fresh pool: no fault strikes there. */
static int nm_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	for (int i = 0; i < 20; i++)
		tnm.init_ok += rp_nop(sh, nm_cb_init, NULL) != NULL;
	return 0;
}

static void nm_run(struct rp_shard *sh, void *arg)
{
	(void)arg;
	for (int i = 0; i < NM_OPS; i++) {
		if (rp_nop(sh, nm_cb, NULL))
			tnm.prepared++;
		else if (errno == ENOMEM)
			tnm.refused++;
		else
			tnm.other_errno++;
	}
}

static void test_nomem_fails_ops_as_an_empty_pool(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_shard_stats st;
	struct rp_runtime *rt;
	uint64_t injected;
	bool ok;

	(void)state;
	memset(&tnm, 0, sizeof(tnm));
	cfg.init = nm_init;
	rt = rt_start_faults(&cfg, "nomem=0.5,seed=7");
	assert_int_equal(rp_runtime_submit(rt, 0, nm_run, NULL), 0);
	ok = wait_for(&tnm.done, 1, WAIT_S);
	stats_of(rt, 0, &st);
	injected = eng_faults_count(rt, 0, FAULT_NOMEM);
	rt_end(rt);
	print_message("# %u prepared, %u refused with ENOMEM, nomem %llu, injected %llu\n",
		      tnm.prepared, tnm.refused, (unsigned long long)st.nomem,
		      (unsigned long long)injected);
	assert_true(ok);
	assert_int_equal(tnm.init_ok, 20);
	assert_int_equal(tnm.other_errno, 0);
	assert_int_equal(tnm.prepared + tnm.refused, NM_OPS);
	assert_true(tnm.refused > NM_OPS / 4 && tnm.refused < NM_OPS * 3 / 4);
	assert_int_equal(st.nomem, tnm.refused);
	assert_int_equal(injected, tnm.refused);
	assert_int_equal(tnm.completed, tnm.prepared);
}

/* ======================================================================
 * short sends: the kernel sends fewer bytes
 * ====================================================================== */

#define SS_LEN 4096

static struct {
	int fd;
	uint8_t buf[SS_LEN];
	struct iovec iov[3];
	struct msghdr msg;
	atomic_int done;
	int res;
	bool notif, msg_intact;
} tss;

static void ss_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	if (c->flags & RP_CQE_NOTIF) {
		tss.notif = true;
		atomic_store(&tss.done, 1);
		return;
	}
	tss.res = c->res;
	tss.msg_intact = tss.msg.msg_iov == tss.iov && tss.msg.msg_iovlen == 3 &&
			 tss.iov[0].iov_base == tss.buf && tss.iov[0].iov_len == 1000 &&
			 tss.iov[1].iov_len == 96 && tss.iov[2].iov_len == SS_LEN - 1096;
	if (!(c->flags & RP_CQE_MORE))
		atomic_store(&tss.done, 1);
}

static void ss_send(struct rp_shard *sh, void *arg)
{
	CHECK(rp_send(sh, tss.fd, tss.buf, SS_LEN, MSG_NOSIGNAL, ss_cb, arg) != NULL);
}

static void ss_sendmsg(struct rp_shard *sh, void *arg)
{
	CHECK(rp_sendmsg(sh, tss.fd, &tss.msg, MSG_NOSIGNAL, ss_cb, arg) != NULL);
}

static void ss_send_zc(struct rp_shard *sh, void *arg)
{
	CHECK(rp_send_zc(sh, tss.fd, tss.buf, SS_LEN, MSG_NOSIGNAL, ss_cb, arg) != NULL);
}

/* Read what arrived on @fd within 200 ms of the last byte. */
static size_t read_all(int fd, uint8_t *out, size_t cap)
{
	struct timeval tv = { .tv_usec = 200 * 1000 };
	size_t got = 0;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (got < cap) {
		ssize_t n = recv(fd, out + got, cap - got, 0);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

static void test_short_sends_send_fewer_bytes(void **state)
{
	static const struct {
		const char *name;
		rp_msg_fn fn;
	} kinds[] = { { "rp_send", ss_send }, { "rp_sendmsg", ss_sendmsg }, { "rp_send_zc", ss_send_zc } };
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	uint8_t got[SS_LEN];
	int cli, srv;

	(void)state;
	fill_pattern(tss.buf, SS_LEN, 0);
	tss.iov[0] = (struct iovec){ tss.buf, 1000 };
	tss.iov[1] = (struct iovec){ tss.buf + 1000, 96 };
	tss.iov[2] = (struct iovec){ tss.buf + 1096, SS_LEN - 1096 };
	memset(&tss.msg, 0, sizeof(tss.msg));
	tss.msg.msg_iov = tss.iov;
	tss.msg.msg_iovlen = 3;
	rt = rt_start_faults(&cfg, "short=1,seed=5");
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		for (int round = 0; round < 8; round++) {
			size_t n;

			tcp_pair(&cli, &srv);
			tss.fd = srv;
			tss.res = 0;
			tss.notif = false;
			atomic_store(&tss.done, 0);
			assert_int_equal(rp_runtime_submit(rt, 0, kinds[k].fn, NULL), 0);
			assert_true(wait_for(&tss.done, 1, WAIT_S));
			n = read_all(cli, got, sizeof(got));
			if (!round)
				print_message("# %s of %d bytes: res %d, the peer read %zu\n",
					      kinds[k].name, SS_LEN, tss.res, n);
			assert_true(tss.res >= 1 && tss.res < SS_LEN);
			assert_int_equal(n, (size_t)tss.res);
			assert_memory_equal(got, tss.buf, n);
			if (kinds[k].fn == ss_sendmsg)
				assert_true(tss.msg_intact);
			close(cli);
			close(srv);
		}
	}
	assert_int_equal(eng_faults_count(rt, 0, FAULT_SHORT), 24);
	rt_end(rt);
}

/* ======================================================================
 * a stream through rp_outq under short sends
 * ====================================================================== */

static struct {
	struct rp_outq *q;
	int fd;
	uint8_t *src;
	size_t total, pos;
	unsigned step;
	atomic_int produced, closed, errors;
	struct rp_outq_stats st;
} toq;

static void oq_produce(struct rp_shard *sh);

static void oq_error(struct rp_outq *q, void *arg, int err)
{
	(void)q;
	(void)arg;
	fail_at(__LINE__, "outq error %d", err);
	atomic_fetch_add(&toq.errors, 1);
}

static void oq_writable(struct rp_outq *q, void *arg)
{
	(void)q;
	(void)arg;
	oq_produce(rp_shard_self());
}

/* Pushes (no copy: slices of toq.src) and copies of sizes from 1 byte to
 * 100 KB, until the bound refuses one; on_writable goes on. */
static void oq_produce(struct rp_shard *sh)
{
	static const size_t sizes[] = { 1, 700, 64, 20000, 3, 100000, 16384, 9000, 65536, 1500 };

	(void)sh;
	while (toq.pos < toq.total) {
		size_t len = sizes[toq.step % (sizeof(sizes) / sizeof(sizes[0]))];
		bool copy = len <= RP_OUTQ_COPY_MAX && (toq.step / 3) % 2;
		int ret;

		if (len > toq.total - toq.pos)
			len = toq.total - toq.pos;
		ret = copy ? rp_outq_copy(toq.q, toq.src + toq.pos, len) :
			     rp_outq_push(toq.q, toq.src + toq.pos, len, NULL, NULL);
		if (ret == -ENOBUFS)
			return;
		CHECK_EQ(ret, 0);
		if (ret)
			return;
		toq.pos += len;
		toq.step++;
	}
	atomic_store(&toq.produced, 1);
}

static void oq_start(struct rp_shard *sh, void *arg)
{
	/* RP_OUTQ_LOCAL_PROBE: a loopback peer would start plain, and the
	 * stream's trial SEND_ZC is part of what the faults hit */
	struct rp_outq_opts o = { .flags = RP_OUTQ_LOCAL_PROBE, .on_error = oq_error,
				  .on_writable = oq_writable, .max_bytes = 256 << 10 };
	int ret = -ENOMEM;

	(void)arg;
	/* under nomem the retry timer's reservation may be refused: the
	 * caller's answer to -ENOMEM is to try again (each try rolls anew) */
	for (unsigned i = 0; i < 100 && ret == -ENOMEM; i++)
		ret = rp_outq_init(sh, &toq.q, toq.fd, &o);
	CHECK_EQ(ret, 0);
	if (!ret)
		oq_produce(sh);
}

static void oq_close(struct rp_shard *sh, void *arg)
{
	(void)sh;
	(void)arg;
	if (toq.q) { /* NULL: its init failed (checked there) */
		CHECK_EQ(rp_outq_pending(toq.q), 0);
		rp_outq_stats(toq.q, &toq.st);
		rp_outq_close(toq.q);
	}
	atomic_store(&toq.closed, 1);
}

/* A stream of @total bytes through rp_outq under RP_FAULTS=@spec, read
 * back and compared; returns the injections of @kind (the runtime ended). */
static uint64_t oq_stream(const char *spec, size_t total, enum eng_fault_kind kind)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	size_t got = 0, bad_at = SIZE_MAX;
	uint8_t *rbuf = malloc(1 << 16);
	uint64_t hits;
	double end;
	int cli, srv;

	memset(&toq, 0, sizeof(toq));
	toq.src = malloc(total);
	assert_non_null(toq.src);
	assert_non_null(rbuf);
	fill_pattern(toq.src, total, 0);
	toq.total = total;
	tcp_pair(&cli, &srv);
	toq.fd = srv;
	rt = rt_start_faults(&cfg, spec);
	assert_int_equal(rp_runtime_submit(rt, 0, oq_start, NULL), 0);
	end = now_s() + 60;
	{
		struct timeval tv = { .tv_sec = 1 };

		setsockopt(cli, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	while (got < total && now_s() < end && !atomic_load(&g_fail)) {
		ssize_t n = recv(cli, rbuf, 1 << 16, 0);

		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			break;
		}
		if (bad_at == SIZE_MAX && memcmp(rbuf, toq.src + got, (size_t)n)) {
			for (size_t i = 0; i < (size_t)n; i++)
				if (rbuf[i] != toq.src[got + i]) {
					bad_at = got + i;
					break;
				}
		}
		got += (size_t)n;
	}
	assert_int_equal(rp_runtime_submit(rt, 0, oq_close, NULL), 0);
	assert_true(wait_for(&toq.closed, 1, WAIT_S));
	hits = eng_faults_count(rt, 0, kind);
	print_message("# %s: %zu of %zu bytes read back, first bad byte %zd; %llu sendmsgs, "
		      "%llu SEND_ZC, %llu faults injected\n",
		      spec, got, total, bad_at == SIZE_MAX ? (ssize_t)-1 : (ssize_t)bad_at,
		      (unsigned long long)toq.st.sendmsgs, (unsigned long long)toq.st.zc_sends,
		      (unsigned long long)hits);
	rt_end(rt);
	close(cli);
	close(srv);
	check_failures();
	assert_int_equal(got, total);
	assert_true(bad_at == SIZE_MAX);
	assert_int_equal(atomic_load(&toq.errors), 0);
	free(toq.src);
	free(rbuf);
	return hits;
}

static void test_outq_stream_whole_under_short_sends(void **state)
{
	(void)state;
	assert_true(oq_stream("short=0.3,seed=11", reduced() ? (8u << 20) : (16u << 20),
			      FAULT_SHORT) > 10);
}

/* An op the queue cannot get (the pool empty: nomem; or the SQ full) is a
 * shortage, not a send error: the data stays queued and the flush is
 * tried again, so the stream arrives whole with no on_error. Before, one
 * refused op ran on_error(-ENOMEM) and dropped megabytes already
 * accepted. With and without short sends and failed submits (eagain). */
static void test_outq_stream_whole_under_nomem(void **state)
{
	static const char *const specs[] = {
		"nomem=0.05,seed=1",
		"nomem=0.05,seed=8",
		"nomem=0.2,seed=3",
		"nomem=0.05,short=0.3,eagain=0.3,seed=5",
	};
	size_t total = reduced() ? (4u << 20) : (8u << 20);

	(void)state;
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
		assert_true(oq_stream(specs[i], total, FAULT_NOMEM) >= 1);
}

/* ======================================================================
 * reset: single-shot and multishot receives
 * ====================================================================== */

static struct {
	int fd;
	uint8_t buf[256];
	atomic_int done;
	int res;
} trs;

static void rs_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	trs.res = c->res;
	atomic_store(&trs.done, 1);
}

static void rs_recv(struct rp_shard *sh, void *arg)
{
	(void)arg;
	CHECK(rp_recv(sh, trs.fd, trs.buf, sizeof(trs.buf), 0, rs_cb, NULL) != NULL);
}

static void test_recv_ends_with_reset(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_shard_stats st;
	struct rp_runtime *rt;
	int cli, srv;

	(void)state;
	memset(&trs, 0, sizeof(trs));
	tcp_pair(&cli, &srv);
	trs.fd = srv;
	rt = rt_start_faults(&cfg, "reset=1");
	assert_int_equal(rp_runtime_submit(rt, 0, rs_recv, NULL), 0);
	assert_int_equal(send(cli, "hello", 5, 0), 5);
	assert_true(wait_for(&trs.done, 1, WAIT_S));
	stats_of(rt, 0, &st);
	assert_int_equal(trs.res, -ECONNRESET);
	assert_int_equal(st.err_reset, 1);
	assert_int_equal(eng_faults_count(rt, 0, FAULT_RESET), 1);
	rt_end(rt);
	close(cli);
	close(srv);
}

#define MS_CONNS 40
#define MS_BYTES (256u << 10)

static struct {
	int fd;
	struct rp_op *op;
	uint8_t *expect;
	size_t got;
	unsigned holding[4], nhold;
	int final_res;
	bool bad;
	atomic_bool final_seen;
	unsigned inflight_after, bufs_out_after;
	atomic_int done;
} tms;

static void ms_check(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	(void)c;
	/* this timer is the only op alive; every buffer is back */
	tms.inflight_after = rp_shard_inflight(sh);
	tms.bufs_out_after = rp_buf_out(sh);
	atomic_store(&tms.done, 1);
}

static void ms_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	if (c->res > 0) {
		if (tms.got + (size_t)c->res > MS_BYTES ||
		    memcmp(c->buf, tms.expect + tms.got, (size_t)c->res))
			tms.bad = true;
		tms.got += (size_t)c->res;
		/* hold a few buffers a while, so some are out when the reset comes */
		if (tms.nhold == 4) {
			for (unsigned i = 0; i < 4; i++)
				rp_buf_put(sh, (uint16_t)tms.holding[i]);
			tms.nhold = 0;
		}
		tms.holding[tms.nhold++] = c->bid;
	}
	if (c->flags & RP_CQE_MORE)
		return;
	tms.final_res = c->res;
	atomic_store(&tms.final_seen, true);
	for (unsigned i = 0; i < tms.nhold; i++)
		rp_buf_put(sh, (uint16_t)tms.holding[i]);
	tms.nhold = 0;
	CHECK(rp_timeout(sh, 20 * MS, ms_check, NULL) != NULL);
}

static void ms_arm(struct rp_shard *sh, void *arg)
{
	(void)arg;
	tms.op = rp_recv_multishot(sh, tms.fd, ms_cb, NULL);
	CHECK(tms.op != NULL);
}

static void test_multishot_recv_reset_ends_cleanly(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_shard_stats st;
	struct rp_runtime *rt;
	uint8_t *data = malloc(MS_BYTES);
	unsigned resets = 0, eofs = 0;

	(void)state;
	assert_non_null(data);
	fill_pattern(data, MS_BYTES, 3);
	cfg.bufs = 16;
	cfg.buf_size = 4096;
	rt = rt_start_faults(&cfg, "reset=0.03,seed=9");
	for (int i = 0; i < MS_CONNS; i++) {
		int cli, srv;
		size_t sent = 0;

		memset(&tms, 0, sizeof(tms));
		tms.expect = data;
		tcp_pair(&cli, &srv);
		tms.fd = srv;
		assert_int_equal(rp_runtime_submit(rt, 0, ms_arm, NULL), 0);
		/* the reader may stop at any time: send what fits, then EOF */
		fcntl(cli, F_SETFL, O_NONBLOCK);
		for (double end = now_s() + 5; sent < MS_BYTES && now_s() < end;) {
			ssize_t n = send(cli, data + sent, MS_BYTES - sent, MSG_NOSIGNAL);

			if (n > 0)
				sent += (size_t)n;
			else if (n < 0 && errno != EAGAIN)
				break;
			else if (atomic_load(&tms.final_seen))
				break;
			else
				sleep_ms(1);
		}
		shutdown(cli, SHUT_WR);
		assert_true(wait_for(&tms.done, 1, WAIT_S));
		check_failures();
		if (tms.final_res == -ECONNRESET)
			resets++;
		else
			eofs++;
		assert_false(tms.bad);
		assert_true(tms.final_res == -ECONNRESET || (tms.final_res == 0 && tms.got == sent));
		assert_int_equal(tms.inflight_after, 1);
		assert_int_equal(tms.bufs_out_after, 0);
		close(cli);
		close(srv);
	}
	stats_of(rt, 0, &st);
	print_message("# %d connections: %u ended by an injected reset, %u by EOF; reset "
		      "injected %llu, buf_misuse %llu\n",
		      MS_CONNS, resets, eofs,
		      (unsigned long long)eng_faults_count(rt, 0, FAULT_RESET),
		      (unsigned long long)st.buf_misuse);
	assert_true(resets > 0);
	assert_int_equal(eng_faults_count(rt, 0, FAULT_RESET), resets);
	assert_int_equal(st.buf_misuse, 0);
	rt_end(rt);
	free(data);
}

/* The caller closes the socket while the injected reset is under way (its
 * cancel not yet completed): still exactly one last callback, -ECONNRESET,
 * and nothing left behind. */
static struct {
	int fd;
	unsigned data_cbs, finals, closes;
	int final_res;
	unsigned inflight_after, bufs_out_after;
	atomic_int done;
} trc;

static void rc_check(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	(void)c;
	trc.inflight_after = rp_shard_inflight(sh);
	trc.bufs_out_after = rp_buf_out(sh);
	atomic_store(&trc.done, 1);
}

static void rc_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	if (c->res > 0) {
		trc.data_cbs++;
		rp_buf_put(sh, c->bid);
	}
	if (c->flags & RP_CQE_MORE) {
		/* the first data CQE started the reset (reset=1: right after
		 * its callback); a second one came before the reset's cancel
		 * completed: close now */
		if (trc.data_cbs == 2 && !trc.closes++)
			CHECK(rp_close(sh, trc.fd, NULL, NULL) != NULL);
		return;
	}
	trc.finals++;
	trc.final_res = c->res;
	CHECK(rp_timeout(sh, 20 * MS, rc_check, NULL) != NULL);
}

static void rc_arm(struct rp_shard *sh, void *arg)
{
	(void)arg;
	CHECK(rp_recv_multishot(sh, trc.fd, rc_cb, NULL) != NULL);
}

static void test_multishot_reset_with_a_close_under_way(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	uint8_t data[1000];
	unsigned closed_early = 0;

	(void)state;
	fill_pattern(data, sizeof(data), 0);
	/* 1000 bytes fill four 256-byte buffers: four CQEs in one batch, the
	 * later ones reaped before the reset's cancel reaches the kernel */
	cfg.buf_size = 256;
	rt = rt_start_faults(&cfg, "reset=1");
	for (int i = 0; i < 20; i++) {
		int cli, srv;

		memset(&trc, 0, sizeof(trc));
		tcp_pair(&cli, &srv);
		trc.fd = srv;
		assert_int_equal(rp_runtime_submit(rt, 0, rc_arm, NULL), 0);
		assert_int_equal(send(cli, data, sizeof(data), 0), (ssize_t)sizeof(data));
		assert_true(wait_for(&trc.done, 1, WAIT_S));
		check_failures();
		closed_early += trc.closes;
		assert_int_equal(trc.finals, 1);
		assert_int_equal(trc.final_res, -ECONNRESET);
		assert_int_equal(trc.inflight_after, 1);
		assert_int_equal(trc.bufs_out_after, 0);
		close(cli);
		if (!trc.closes)
			close(srv);
	}
	print_message("# 20 resets, %u with the socket closed while the reset's cancel was "
		      "under way\n",
		      closed_early);
	assert_true(closed_early > 0);
	rt_end(rt);
}

/* ======================================================================
 * eagain: submits that fail
 * ====================================================================== */

#define EA_OPS 300

static struct {
	atomic_int done;
	unsigned prepared, refused, completed, twice;
	int refused_errno;
	uint8_t seen[EA_OPS];
} tea;

static void ea_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	unsigned i = (unsigned)(uintptr_t)arg;

	(void)sh;
	CHECK_EQ(c->res, 0);
	if (tea.seen[i]++)
		tea.twice++;
	if (++tea.completed == tea.prepared)
		atomic_store(&tea.done, 1);
}

static void ea_run(struct rp_shard *sh, void *arg)
{
	(void)arg;
	for (unsigned i = 0; i < EA_OPS; i++) {
		if (rp_nop(sh, ea_cb, (void *)(uintptr_t)i)) {
			tea.prepared++;
		} else {
			tea.refused++;
			tea.refused_errno = errno;
		}
	}
}

static void run_eagain(const char *spec, uint64_t *injected)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	bool ok;

	memset(&tea, 0, sizeof(tea));
	cfg.ring_entries = 8; /* 300 NOPs: dozens of flushes */
	rt = rt_start_faults(&cfg, spec);
	assert_int_equal(rp_runtime_submit(rt, 0, ea_run, NULL), 0);
	ok = wait_for(&tea.done, 1, WAIT_S);
	*injected = eng_faults_count(rt, 0, FAULT_EAGAIN);
	rt_end(rt);
	print_message("# %s: %u prepared, %u refused (errno %d), %u completed, %llu injected\n",
		      spec, tea.prepared, tea.refused, tea.refused_errno, tea.completed,
		      (unsigned long long)*injected);
	assert_true(ok);
	assert_int_equal(tea.twice, 0);
	assert_int_equal(tea.completed, tea.prepared);
	for (unsigned i = 0; i < EA_OPS; i++)
		if (!tea.seen[i] && !tea.refused)
			fail_msg("op %u never completed", i);
}

static void test_eagain_loses_nothing(void **state)
{
	uint64_t injected;

	(void)state;
	run_eagain("eagain=0.5,seed=3", &injected);
	assert_int_equal(tea.refused, 0);
	assert_int_equal(tea.prepared, EA_OPS);
	assert_true(injected > 10);
	/* every flush fails: the ops that fit run, the rest get EBUSY */
	run_eagain("eagain=1", &injected);
	assert_true(tea.prepared >= 1 && tea.prepared < 8);
	assert_int_equal(tea.refused_errno, EBUSY);
	assert_int_equal(tea.prepared + tea.refused, EA_OPS);
}


/* ======================================================================
 * rearm: the SQ is full at every re-arm
 * ====================================================================== */

static struct {
	int fd;
	int res, calls;
	unsigned inflight_after;
	atomic_int answered, done;
} trp;

static void rp_after(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	(void)c;
	trp.inflight_after = rp_shard_inflight(sh); /* this timer alone */
	atomic_store(&trp.done, 1);
}

static void rp_poll_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	trp.res = c->res;
	trp.calls++;
	CHECK(!(c->flags & RP_CQE_MORE));
	atomic_store(&trp.answered, 1);
	/* the poll's own end (its cancel found no SQE either) is due well
	 * within this */
	CHECK(rp_timeout(sh, 200 * MS, rp_after, NULL) != NULL);
}

static void rp_poll_start(struct rp_shard *sh, void *arg)
{
	(void)arg;
	CHECK(rp_poll_writable(sh, trp.fd, rp_poll_cb, NULL) != NULL);
}

/* Fill @fd's send buffer (small, so the peer's reads free room fast). */
static void fill_sndbuf(int fd)
{
	static char chunk[4096];
	int sz = 4096, fl = fcntl(fd, F_GETFL);

	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)), 0);
	assert_int_equal(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
	for (int i = 0; i < 100000; i++)
		if (send(fd, chunk, sizeof(chunk), 0) < 0)
			break;
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	assert_int_equal(fcntl(fd, F_SETFL, fl), 0);
}

static void test_rearm_without_sqe_poll_still_answers(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_shard_stats st;
	struct rp_runtime *rt;
	char sink[65536];
	double end;
	int cli, srv, rcv = 4096;

	(void)state;
	memset(&trp, 0, sizeof(trp));
	tcp_pair(&cli, &srv);
	assert_int_equal(setsockopt(cli, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv)), 0);
	fill_sndbuf(srv);
	/* the peer half-closes: a POLLOUT poll on the full socket answers
	 * POLLRDHUP alone, and the engine must arm a multishot poll */
	assert_int_equal(shutdown(cli, SHUT_WR), 0);
	trp.fd = srv;
	rt = rt_start_faults(&cfg, "rearm=1");
	assert_int_equal(rp_runtime_submit(rt, 0, rp_poll_start, NULL), 0);
	/* until the RDHUP-only answer was dropped (and the re-arm deferred) */
	end = now_s() + WAIT_S;
	do {
		sleep_ms(5);
		stats_of(rt, 0, &st);
	} while (!st.poll_rdhup && now_s() < end);
	assert_true(st.poll_rdhup >= 1);
	sleep_ms(50);
	assert_int_equal(atomic_load(&trp.answered), 0); /* still full: no answer yet */
	/* the peer reads: write space wakes the (deferred) multishot poll */
	end = now_s() + WAIT_S;
	while (!atomic_load(&trp.answered) && now_s() < end) {
		if (recv(cli, sink, sizeof(sink), MSG_DONTWAIT) <= 0)
			sleep_ms(1);
	}
	assert_true(wait_for(&trp.done, 1, WAIT_S));
	stats_of(rt, 0, &st);
	print_message("# poll answered 0x%x after %llu RDHUP-only results; %llu re-arms deferred\n",
		      (unsigned)trp.res, (unsigned long long)st.poll_rdhup,
		      (unsigned long long)eng_faults_count(rt, 0, FAULT_REARM));
	/* the multishot arm and the answered poll's cancel both found no SQE */
	assert_true(eng_faults_count(rt, 0, FAULT_REARM) >= 2);
	rt_end(rt);
	assert_int_equal(trp.calls, 1);
	assert_true(trp.res > 0 && (trp.res & POLLOUT));
	assert_int_equal(trp.inflight_after, 1); /* the poll ended: only the timer */
	close(cli);
	close(srv);
}

#define RR_BYTES (256u << 10)
#define RR_BUFS	 16

static struct {
	int fd;
	uint8_t *expect;
	size_t got;
	uint16_t held[RR_BUFS];
	unsigned nheld, puts_rounds;
	bool bad, timer_on;
	atomic_int done;
} trr;

static void rr_put_all(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	(void)c;
	trr.timer_on = false;
	/* every buffer back at once: the parked receive's re-arm is the first
	 * put's, and it finds no SQE */
	for (unsigned i = 0; i < trr.nheld; i++)
		rp_buf_put(sh, trr.held[i]);
	trr.nheld = 0;
	trr.puts_rounds++;
}

static void rr_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	if (c->res > 0) {
		if (trr.got + (size_t)c->res > RR_BYTES ||
		    memcmp(c->buf, trr.expect + trr.got, (size_t)c->res))
			trr.bad = true;
		trr.got += (size_t)c->res;
		CHECK(trr.nheld < RR_BUFS);
		trr.held[trr.nheld++] = c->bid;
		/* hold every buffer a while: the kernel ends the receive with
		 * ENOBUFS and the engine parks it */
		if (trr.nheld == RR_BUFS && !trr.timer_on)
			trr.timer_on = rp_timeout(sh, 20 * MS, rr_put_all, NULL) != NULL;
		if (trr.got == RR_BYTES) {
			for (unsigned i = 0; i < trr.nheld; i++)
				rp_buf_put(sh, trr.held[i]);
			trr.nheld = 0;
			atomic_store(&trr.done, 1);
		}
	}
	if (!(c->flags & RP_CQE_MORE))
		CHECK(trr.got == RR_BYTES || rp_shard_stopping(sh)); /* never ended early */
}

static void rr_start(struct rp_shard *sh, void *arg)
{
	(void)arg;
	CHECK(rp_recv_multishot(sh, trr.fd, rr_cb, NULL) != NULL);
}

/* One non-blocking send of what is left of @buf (sleep 1 ms when none
 * went, or all has): the test's sender, polled in a bounded loop. */
static void send_step(int fd, const uint8_t *buf, size_t len, size_t *sent)
{
	ssize_t w = *sent < len ? send(fd, buf + *sent, len - *sent, MSG_DONTWAIT | MSG_NOSIGNAL) : 0;

	if (w > 0)
		*sent += (size_t)w;
	else
		sleep_ms(1);
}

static void test_rearm_without_sqe_parked_recv_still_receives(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_shard_stats st;
	struct rp_runtime *rt;
	uint64_t deferred;
	size_t sent = 0;
	double end;
	int cli, srv;

	(void)state;
	memset(&trr, 0, sizeof(trr));
	trr.expect = malloc(RR_BYTES);
	assert_non_null(trr.expect);
	fill_pattern(trr.expect, RR_BYTES, 11);
	tcp_pair(&cli, &srv);
	trr.fd = srv;
	cfg.bufs = RR_BUFS;
	cfg.buf_size = 4096;
	rt = rt_start_faults(&cfg, "rearm=1");
	assert_int_equal(rp_runtime_submit(rt, 0, rr_start, NULL), 0);
	end = now_s() + WAIT_S;
	while (!atomic_load(&trr.done) && !atomic_load(&g_fail) && now_s() < end)
		send_step(cli, trr.expect, RR_BYTES, &sent);
	stats_of(rt, 0, &st);
	deferred = eng_faults_count(rt, 0, FAULT_REARM);
	print_message("# %zu of %u bytes; %u put rounds, enobufs %llu, %llu re-arms deferred\n",
		      trr.got, RR_BYTES, trr.puts_rounds, (unsigned long long)st.enobufs,
		      (unsigned long long)deferred);
	rt_end(rt);
	assert_int_equal(atomic_load(&trr.done), 1);
	assert_false(trr.bad);
	assert_true(st.enobufs >= 1); /* the receive really was parked */
	assert_true(deferred >= 1); /* the parked receive's re-arm found no SQE */
	free(trr.expect);
	close(cli);
	close(srv);
}

/* ======================================================================
 * refused: rp_close, rp_cancel_fd or rp_cancel that cannot start (no op
 * memory) still end the ops on the fd that wait outside the kernel; a
 * caller falling back to close(2) must not find a parked receive re-armed
 * on the fd (or on a new file with its number) by the next buffer put.
 * ====================================================================== */

enum rf_how { RF_CLOSE, RF_CANCEL_FD, RF_CANCEL };

static struct {
	int fd;
	enum rf_how how;
	struct rp_op *recv;
	uint16_t held[RR_BUFS];
	unsigned nheld;
	size_t got_after;
	int final_res, finals, refused_errno;
	bool refused;
	atomic_int done;
} trf;

static void rf_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	if (c->res > 0) {
		if (trf.refused)
			trf.got_after += (size_t)c->res;
		/* hold every buffer: the kernel ends the receive with ENOBUFS
		 * and the engine parks it */
		if (trf.nheld < RR_BUFS)
			trf.held[trf.nheld++] = c->bid;
		else
			rp_buf_put(sh, c->bid);
	}
	if (!(c->flags & RP_CQE_MORE)) {
		trf.final_res = c->res;
		trf.finals++;
		trf.recv = NULL;
		atomic_store(&trf.done, 1);
	}
}

static void rf_start(struct rp_shard *sh, void *arg)
{
	(void)arg;
	trf.recv = rp_recv_multishot(sh, trf.fd, rf_cb, NULL);
	CHECK(trf.recv != NULL);
}

static void rf_refuse(struct rp_shard *sh, void *arg)
{
	struct rp_op *op = NULL;

	(void)arg;
	CHECK(trf.recv != NULL);
	sh->faults.thresh[FAULT_NOMEM] = 1ull << 32; /* every op allocation fails */
	if (trf.how == RF_CLOSE)
		op = rp_close(sh, trf.fd, NULL, NULL);
	else if (trf.how == RF_CANCEL_FD)
		op = rp_cancel_fd(sh, trf.fd, NULL, NULL);
	else
		op = rp_cancel(sh, trf.recv, NULL, NULL);
	trf.refused_errno = op ? 0 : errno;
	sh->faults.thresh[FAULT_NOMEM] = 0;
	trf.refused = true;
	/* every buffer back: a receive still parked would be re-armed now */
	for (unsigned i = 0; i < trf.nheld; i++)
		rp_buf_put(sh, trf.held[i]);
	trf.nheld = 0;
}

static void refused_ends_parked_recv(enum rf_how how)
{
	static uint8_t chunk[RR_BYTES];
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_shard_stats st;
	struct rp_runtime *rt;
	size_t sent = 0;
	double end;
	int cli, srv;

	memset(&trf, 0, sizeof(trf));
	trf.how = how;
	tcp_pair(&cli, &srv);
	trf.fd = srv;
	cfg.bufs = RR_BUFS;
	cfg.buf_size = 4096;
	rt = rt_start_faults(&cfg, "");
	assert_int_equal(rp_runtime_submit(rt, 0, rf_start, NULL), 0);
	/* more than the buffers hold, until the receive is parked */
	end = now_s() + WAIT_S;
	do {
		send_step(cli, chunk, sizeof(chunk), &sent);
		stats_of(rt, 0, &st);
	} while ((!st.enobufs || sent < sizeof(chunk)) && now_s() < end);
	assert_true(st.enobufs >= 1);
	assert_int_equal(rp_runtime_submit(rt, 0, rf_refuse, NULL), 0);
	/* the parked receive ends (-ECANCELED) and is never armed again */
	assert_true(wait_for(&trf.done, 1, WAIT_S));
	sleep_ms(50);
	rt_end(rt);
	print_message("# how %d: refused with errno %d, final %d, %zu bytes after\n", (int)how,
		      trf.refused_errno, trf.final_res, trf.got_after);
	assert_int_equal(trf.refused_errno, ENOMEM);
	assert_int_equal(trf.finals, 1);
	assert_int_equal(trf.final_res, -ECANCELED);
	assert_int_equal(trf.got_after, 0);
	close(cli);
	close(srv);
}

static void test_refused_close_ends_parked_recv(void **state)
{
	(void)state;
	refused_ends_parked_recv(RF_CLOSE);
}

static void test_refused_cancel_fd_ends_parked_recv(void **state)
{
	(void)state;
	refused_ends_parked_recv(RF_CANCEL_FD);
}

static void test_refused_cancel_ends_parked_recv(void **state)
{
	(void)state;
	refused_ends_parked_recv(RF_CANCEL);
}

/* ======================================================================
 * timer: the relay's idle sweep finds no SQE at its arm
 * ====================================================================== */

#define TS_RELAYS 8
#define TS_IDLE_NS (50 * MS) /* a sweep every 12.5 ms: 4 or 5 arms before any ends */

static struct {
	atomic_int done;
	int peer[TS_RELAYS][2]; /* the client and server ends the test keeps */
	int a[TS_RELAYS], b[TS_RELAYS];
	unsigned idle, other;
	struct rp_relay_sweep_stats sw;
} tts;

static void ts_done(struct rp_shard *sh, void *arg, const struct rp_relay_result *res)
{
	(void)arg;
	if (res->end == RP_RELAY_END_IDLE)
		tts.idle++;
	else
		tts.other++;
	if (tts.idle + tts.other == TS_RELAYS) {
		rp_relay_sweep_stats(sh, &tts.sw);
		atomic_store(&tts.done, 1);
	}
}

static void ts_start(struct rp_shard *sh, void *arg)
{
	struct rp_relay_config cfg = { .mode = RP_RELAY_COPY, .idle_ns = TS_IDLE_NS };

	(void)arg;
	for (int i = 0; i < TS_RELAYS; i++)
		CHECK_EQ(rp_relay_start(sh, tts.a[i], tts.b[i], &cfg, ts_done, NULL, NULL), 0);
}

static void ts_fini(struct rp_shard *sh, void *arg)
{
	(void)arg;
	rp_relay_shard_exit(sh);
}

/*
 * Half the arms of the sweep's timer find no SQE (as with the SQ full and
 * every flush refused): each is armed all the same and sent by the loop's
 * next turn, so each relay, silent, still ends as idle, and no arm is
 * refused. A refused arm (-EBUSY, before the engine queued such arms)
 * used to stop the sweeps until the next relay start, so with every
 * relay started these 8 never ended (seed 7 without any retry: 3 sweeps,
 * then a refused arm; none of the 8 ended in the 10 s waited).
 */
static void test_timer_arm_failing_idle_relays_still_end(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	uint64_t injected;
	double t0, took;
	bool ok;

	(void)state;
	memset(&tts, 0, sizeof(tts));
	for (int i = 0; i < TS_RELAYS; i++) {
		tcp_pair(&tts.peer[i][0], &tts.a[i]);
		tcp_pair(&tts.b[i], &tts.peer[i][1]);
	}
	cfg.fini = ts_fini;
	rt = rt_start_faults(&cfg, "timer=0.5,seed=7");
	t0 = now_s();
	assert_int_equal(rp_runtime_submit(rt, 0, ts_start, NULL), 0);
	ok = wait_for(&tts.done, 1, WAIT_S);
	took = now_s() - t0;
	injected = eng_faults_count(rt, 0, FAULT_TIMER);
	rt_end(rt);
	for (int i = 0; i < TS_RELAYS; i++) {
		close(tts.peer[i][0]);
		close(tts.peer[i][1]);
	}
	print_message("# timer=0.5: %u of %d relays ended idle (%u otherwise) in %.3f s; "
		      "sweeps %llu, arms refused %llu (%llu injected)\n",
		      tts.idle, TS_RELAYS, tts.other, took, (unsigned long long)tts.sw.sweeps,
		      (unsigned long long)tts.sw.rearm_failed, (unsigned long long)injected);
	assert_true(ok);
	assert_int_equal(tts.idle, TS_RELAYS);
	assert_true(injected > 0);
	assert_int_equal(tts.sw.rearm_failed, 0); /* the arm no longer fails */
	assert_true(tts.sw.sweeps > 0);
}

int main(void)
{
	const struct CMUnitTest all[] = {
		T(test_rp_faults_syntax),
		T(test_nomem_fails_ops_as_an_empty_pool),
		T(test_short_sends_send_fewer_bytes),
		T(test_outq_stream_whole_under_short_sends),
		T(test_outq_stream_whole_under_nomem),
		T(test_recv_ends_with_reset),
		T(test_multishot_recv_reset_ends_cleanly),
		T(test_multishot_reset_with_a_close_under_way),
		T(test_eagain_loses_nothing),
		T(test_rearm_without_sqe_poll_still_answers),
		T(test_rearm_without_sqe_parked_recv_still_receives),
		T(test_refused_close_ends_parked_recv),
		T(test_refused_cancel_fd_ends_parked_recv),
		T(test_refused_cancel_ends_parked_recv),
		T(test_timer_arm_failing_idle_relays_still_end),
	};

	return ENGINE_TEST_RUN("engine-inject", all);
}
