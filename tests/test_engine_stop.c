/* SPDX-License-Identifier: MIT */
/*
 * engine: stopping. An op that never completes (a zero-copy send whose
 * notification waits on a peer that never reads) no longer holds the stop
 * forever: the deadline passes, the stuck ops are reported and counted, and
 * rp_runtime_wait returns. Every message that rp_shard_post or
 * rp_runtime_submit accepted either runs or reaches cfg.on_drop, however
 * the stop races the senders, and when it was submitted before a start
 * that never came, came after a stop or failed. Mailboxes are sized by
 * shard count.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include "engine_test.h"

/* ======================================================================
 * stop deadline: a send_zc notification that never comes
 * ====================================================================== */

#define ZC_LEN (8u << 20)

static struct {
	int a, b;
	uint8_t *buf;
	atomic_int result_seen, notif_seen;
	int result_res;
} tz;

static void zs_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	if (c->flags & RP_CQE_NOTIF) {
		atomic_store(&tz.notif_seen, 1);
		return;
	}
	tz.result_res = c->res;
	atomic_store(&tz.result_seen, 1);
}

static int zs_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	CHECK(rp_send_zc(sh, tz.a, tz.buf, ZC_LEN, MSG_DONTWAIT, zs_cb, NULL) != NULL);
	return 0;
}

static void test_stop_deadline_reports_stuck_ops(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_shard_stats st;
	struct rp_runtime *rt;
	int small = 4096, big = 16 << 20;
	double t0, took;

	(void)state;
	memset(&tz, 0, sizeof(tz));
	tcp_pair(&tz.a, &tz.b);
	/* the peer's window closes at once; our side queues megabytes */
	assert_int_equal(setsockopt(tz.b, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	if (setsockopt(tz.a, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)))
		assert_int_equal(setsockopt(tz.a, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big)), 0);
	tz.buf = calloc(1, ZC_LEN);
	assert_non_null(tz.buf);
	cfg.stop_timeout_ms = 300;
	cfg.init = zs_init;
	rt = rt_start(&cfg);
	if (!has_feature(rt, "send_zc=yes")) {
		rt_end(rt);
		skip(); /* a plain send has no notification to wait for */
	}
	assert_true(wait_for(&tz.result_seen, 1, WAIT_S));
	sleep_ms(50);
	if (atomic_load(&tz.notif_seen) || tz.result_res <= 0) {
		/* nothing of ours is left in the kernel: no stuck op to test */
		print_message("# notification already in (res %d): nothing stuck\n", tz.result_res);
		rt_end(rt);
		skip();
	}
	t0 = now_s();
	rp_runtime_stop(rt);
	assert_int_equal(rp_runtime_wait(rt), 0);
	took = now_s() - t0;
	stats_of(rt, 0, &st);
	rp_runtime_destroy(rt);
	check_failures();
	print_message("# stop took %.3f s with the notification of a %d-byte send pending\n", took,
		      tz.result_res);
	assert_true(took >= 0.25 && took < 3.0);
	assert_int_equal(st.stuck_ops, 1);
	assert_int_equal(atomic_load(&tz.notif_seen), 0);
	close(tz.a);
	close(tz.b);
	/* the kernel may still hold pages of the buffer until the socket is
	 * gone: it is closed above, and the process keeps the memory anyway */
	free(tz.buf);
}

/* ======================================================================
 * every accepted message runs or is dropped, racing the stop
 * ====================================================================== */

#define DR_TRIALS 30

static struct {
	atomic_int ran, dropped;
	atomic_int go;
	struct rp_runtime *rt;
	atomic_long accepted;
} tdr;

struct dr_arg {
	long seq;
};

static void dr_msg(struct rp_shard *sh, void *arg)
{
	(void)sh;
	free(arg);
	atomic_fetch_add(&tdr.ran, 1);
}

static void dr_drop(rp_msg_fn fn, void *msg_arg, void *arg)
{
	(void)arg;
	CHECK(fn == dr_msg);
	free(msg_arg); /* ASan's leak check sees any message lost on the way */
	atomic_fetch_add(&tdr.dropped, 1);
}

/* From a shard: post to the other shard until the stop refuses. */
static void dr_pump(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	(void)c;
	for (int i = 0; i < 64; i++) {
		struct dr_arg *m = malloc(sizeof(*m));
		int r;

		if (!m)
			return;
		r = rp_shard_post(sh, 1 - rp_shard_id(sh), dr_msg, m);
		if (r) {
			free(m);
			if (r == -ESHUTDOWN)
				return;
			continue;
		}
		atomic_fetch_add(&tdr.accepted, 1);
	}
	(void)rp_nop(sh, dr_pump, NULL); /* ESHUTDOWN ends the pumping */
}

static int dr_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	dr_pump(sh, NULL, NULL);
	return 0;
}

/* From a thread that is not a shard. */
static void *dr_thread(void *arg)
{
	double end = now_s() + WAIT_S;

	(void)arg;
	while (!atomic_load(&tdr.go))
		sched_yield();
	for (long i = 0; now_s() < end; i++) {
		struct dr_arg *m = malloc(sizeof(*m));
		int r;

		if (!m)
			break;
		m->seq = i;
		r = rp_runtime_submit(tdr.rt, (unsigned)(i & 1), dr_msg, m);
		if (r) {
			free(m);
			if (r == -ESHUTDOWN)
				break;
			continue;
		}
		atomic_fetch_add(&tdr.accepted, 1);
	}
	return NULL;
}

static void test_messages_run_or_drop_across_stop(void **state)
{
	long total_accepted = 0, total_dropped = 0;

	(void)state;
	for (int t = 0; t < (reduced() ? 10 : DR_TRIALS); t++) {
		struct rp_runtime_config cfg = base_cfg(2);
		pthread_t th;

		atomic_store(&tdr.ran, 0);
		atomic_store(&tdr.dropped, 0);
		atomic_store(&tdr.accepted, 0);
		atomic_store(&tdr.go, 0);
		cfg.mailbox = 64;
		cfg.init = dr_init;
		cfg.on_drop = dr_drop;
		tdr.rt = rt_start(&cfg);
		assert_int_equal(pthread_create(&th, NULL, dr_thread, NULL), 0);
		atomic_store(&tdr.go, 1);
		sleep_ms(2 + (unsigned)(t % 5));
		rp_runtime_stop(tdr.rt);
		pthread_join(th, NULL);
		assert_int_equal(rp_runtime_wait(tdr.rt), 0);
		rp_runtime_destroy(tdr.rt);
		check_failures();
		assert_int_equal(atomic_load(&tdr.ran) + atomic_load(&tdr.dropped),
				 atomic_load(&tdr.accepted));
		total_accepted += atomic_load(&tdr.accepted);
		total_dropped += atomic_load(&tdr.dropped);
	}
	print_message("# %ld messages accepted, %ld of them dropped at stop\n", total_accepted,
		      total_dropped);
}

/* ======================================================================
 * messages submitted before the start
 * ====================================================================== */

/* Each message's arg: malloc'd, freed by whoever gets it (its run or
 * on_drop), so a message that reaches neither is a leak under ASan too. */
struct pre_msg {
	int id;
};

static struct {
	atomic_int ran[4], dropped[4];
	atomic_int drop_off_thread; /* on_drop calls not on the control thread */
	atomic_int ran_before_init;
	atomic_int inits;
	pthread_t control;
	int fail_shard; /* -1: every init succeeds */
} tpre;

static void pre_msg(struct rp_shard *sh, void *arg)
{
	struct pre_msg *m = arg;

	(void)sh;
	/* the promise: after EVERY shard's init (2 shards), not just one */
	if (atomic_load(&tpre.inits) < 2)
		atomic_fetch_add(&tpre.ran_before_init, 1);
	atomic_fetch_add(&tpre.ran[m->id], 1);
	free(m);
}

static void pre_drop(rp_msg_fn fn, void *msg_arg, void *arg)
{
	struct pre_msg *m = msg_arg;

	CHECK(fn == pre_msg);
	CHECK(arg == &tpre);
	if (!pthread_equal(pthread_self(), tpre.control))
		atomic_fetch_add(&tpre.drop_off_thread, 1);
	atomic_fetch_add(&tpre.dropped[m->id], 1);
	free(m);
}

static int pre_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	atomic_fetch_add(&tpre.inits, 1);
	return (int)rp_shard_id(sh) == tpre.fail_shard ? -EIO : 0;
}

/* A runtime of two shards with messages 0 and 1 submitted to shard 0,
 * 2 and 3 to shard 1, before any start. */
static struct rp_runtime *pre_create(int fail_shard)
{
	struct rp_runtime_config cfg = base_cfg(2);
	struct rp_runtime *rt;

	memset(&tpre, 0, sizeof(tpre));
	atomic_store(&g_fail, 0);
	tpre.control = pthread_self();
	tpre.fail_shard = fail_shard;
	cfg.init = pre_init;
	cfg.on_drop = pre_drop;
	cfg.arg = &tpre;
	assert_int_equal(rp_runtime_create(&cfg, &rt), 0);
	for (int i = 0; i < 4; i++) {
		struct pre_msg *m = malloc(sizeof(*m));

		assert_non_null(m);
		m->id = i;
		assert_int_equal(rp_runtime_submit(rt, (unsigned)i / 2, pre_msg, m), 0);
	}
	return rt;
}

/* Each message ran @ran times and was dropped @dropped times, every drop
 * on the control thread and counted in its shard's msgs_dropped. */
static void pre_expect(struct rp_runtime *rt, const int ran[4], const int dropped[4])
{
	struct rp_shard_stats st;

	check_failures();
	for (int i = 0; i < 4; i++) {
		if (atomic_load(&tpre.ran[i]) != ran[i] ||
		    atomic_load(&tpre.dropped[i]) != dropped[i])
			fail_msg("message %d: ran %d, dropped %d; want %d and %d", i,
				 atomic_load(&tpre.ran[i]), atomic_load(&tpre.dropped[i]), ran[i],
				 dropped[i]);
	}
	assert_int_equal(atomic_load(&tpre.drop_off_thread), 0);
	if (rt) {
		for (unsigned s = 0; s < 2; s++) {
			assert_int_equal(rp_runtime_stats(rt, s, &st), 0);
			assert_int_equal(st.msgs_dropped,
					 (uint64_t)(dropped[2 * s] + dropped[2 * s + 1]));
		}
	}
}

/*
 * Submitted before the start, a message runs once the start came (after
 * the inits), or reaches cfg.on_drop once, on the control thread, when
 * its shard never runs: the runtime destroyed unstarted; stopped first
 * (start -ESHUTDOWN, wait -EINVAL, then destroy); a start that fails in a
 * shard's init (dropped by the start, for the shard that failed; the
 * other one may have run its loop and its messages). These reached
 * neither and leaked their args before.
 */
static const int pre_none[4] = {0, 0, 0, 0}, pre_all[4] = {1, 1, 1, 1};

/* started: all run, after the inits, none dropped */
static void test_submit_before_start_runs(void **state)
{
	struct rp_runtime *rt = pre_create(-1);

	(void)state;
	assert_int_equal(rp_runtime_start(rt), 0);
	for (double end = now_s() + 10; now_s() < end;) {
		int n = 0;

		for (int i = 0; i < 4; i++)
			n += atomic_load(&tpre.ran[i]);
		if (n == 4)
			break;
		sleep_ms(1);
	}
	rp_runtime_stop(rt);
	assert_int_equal(rp_runtime_wait(rt), 0);
	pre_expect(rt, pre_all, pre_none);
	assert_int_equal(atomic_load(&tpre.ran_before_init), 0);
	rp_runtime_destroy(rt);
	pre_expect(NULL, pre_all, pre_none);
}

/* never started: destroy drops them */
static void test_submit_before_start_never_started(void **state)
{
	struct rp_runtime *rt = pre_create(-1);

	(void)state;
	rp_runtime_destroy(rt);
	pre_expect(NULL, pre_none, pre_all);
	assert_int_equal(atomic_load(&tpre.inits), 0);
}

/* never started, with an on_drop that resubmits what it gets (a common
 * retry): the destroy's own drops see -ESHUTDOWN, so each message reaches
 * on_drop once and destroy returns. Before, the runtime was not yet
 * stopped there: every resubmit was accepted and destroy dropped them
 * for ever (here: until the bound below). */
#define RESUB_MAX 1000

static struct {
	struct rp_runtime *rt;
	int drops, submits, shutdown, other;
} trs;

static void resub_msg(struct rp_shard *sh, void *arg)
{
	(void)sh;
	(void)arg;
}

static void resub_drop(rp_msg_fn fn, void *msg_arg, void *arg)
{
	int r;

	(void)arg;
	trs.drops++;
	if (trs.drops > RESUB_MAX)
		return; /* bounded: the old code would loop here for good */
	r = rp_runtime_submit(trs.rt, 0, fn, msg_arg);
	if (r == 0)
		trs.submits++;
	else if (r == -ESHUTDOWN)
		trs.shutdown++;
	else
		trs.other++;
}

static void test_destroy_unstarted_resubmit_shutdown(void **state)
{
	struct rp_runtime_config cfg = base_cfg(2);

	(void)state;
	memset(&trs, 0, sizeof(trs));
	atomic_store(&g_fail, 0);
	cfg.on_drop = resub_drop;
	assert_int_equal(rp_runtime_create(&cfg, &trs.rt), 0);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(rp_runtime_submit(trs.rt, i % 2, resub_msg, NULL), 0);
	trs.submits = 4;
	rp_runtime_destroy(trs.rt);
	check_failures();
	assert_int_equal(trs.other, 0);
	assert_int_equal(trs.drops, trs.submits); /* each accepted one dropped once */
	assert_int_equal(trs.drops, 4);
	assert_int_equal(trs.shutdown, 4); /* every resubmit refused */
}

/* stopped before the start: refused start, refused wait, destroy drops */
static void test_submit_before_start_stopped_first(void **state)
{
	struct rp_runtime *rt = pre_create(-1);

	(void)state;
	rp_runtime_stop(rt);
	assert_int_equal(rp_runtime_submit(rt, 0, pre_msg, NULL), -ESHUTDOWN);
	assert_int_equal(rp_runtime_start(rt), -ESHUTDOWN);
	assert_int_equal(rp_runtime_wait(rt), -EINVAL);
	pre_expect(rt, pre_none, pre_none); /* not yet: destroy is where they go */
	rp_runtime_destroy(rt);
	pre_expect(NULL, pre_none, pre_all);
}

/* a shard's init fails (shard 0, then shard 1): its messages are dropped
 * by the failed start; the other shard's ran (its init succeeded, its
 * loop ran to the stop) or, where it saw the failure before its own init,
 * were dropped too */
static void test_submit_before_start_fails(void **state)
{
	struct rp_runtime *rt;

	(void)state;
	for (int fail = 0; fail < 2; fail++) {
		int ran[4], dropped[4];

		rt = pre_create(fail);
		assert_int_equal(rp_runtime_start(rt), -EIO);
		for (int i = 0; i < 4; i++) {
			bool failed = i / 2 == fail;

			dropped[i] = atomic_load(&tpre.dropped[i]);
			ran[i] = failed ? 0 : 1 - dropped[i];
		}
		for (int i = 0; i < 4; i++)
			if (i / 2 == fail)
				assert_int_equal(dropped[i], 1);
		pre_expect(rt, ran, dropped);
		assert_int_equal(rp_runtime_wait(rt), -EIO);
		rp_runtime_destroy(rt);
		pre_expect(NULL, ran, dropped); /* nothing twice */
	}
}

/* ======================================================================
 * mailboxes sized by shard count
 * ====================================================================== */

static struct {
	atomic_int done;
	int first_eagain;
} tmb;

static void mb_msg(struct rp_shard *sh, void *arg)
{
	(void)sh;
	(void)arg;
}

static int mb_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	if (rp_shard_id(sh) != 0)
		return 0;
	/* shard 1 cannot drain before our init returns (it waits for every
	 * init): the pair's ring fills at its capacity */
	for (int i = 0; i < 100000; i++) {
		if (rp_shard_post(sh, 1, mb_msg, NULL) == -EAGAIN) {
			tmb.first_eagain = i;
			break;
		}
	}
	atomic_store(&tmb.done, 1);
	return 0;
}

static int mailbox_capacity(unsigned shards)
{
	struct rp_runtime_config cfg = base_cfg(shards);
	struct rp_runtime *rt;

	memset(&tmb, 0, sizeof(tmb));
	cfg.pool_bytes = (size_t)4 << 20;
	cfg.init = mb_init;
	rt = rt_start(&cfg);
	assert_true(wait_for(&tmb.done, 1, WAIT_S));
	rt_end(rt);
	return tmb.first_eagain;
}

static void test_mailbox_shrinks_with_shard_count(void **state)
{
	(void)state;
	/* default: 4096 per sender up to 4 shards, then 16384 / shards */
	assert_int_equal(mailbox_capacity(2), 4096);
	assert_int_equal(mailbox_capacity(32), 512);
}

/* ======================================================================
 * SQPOLL: what the loop prepared and never published when the stop's
 * deadline ended it (eng_sq_abandon's SQPOLL path)
 * ====================================================================== */

static struct {
	atomic_int armed, late;
	atomic_bool over; /* the loop ended: a callback after it is late */
	int c1, s1; /* a recv armed on s1 in init; s1 closed in on_stop */
	int c2, s2; /* a recv on s2 in a message, y's close linked behind it */
	int c3, s3; /* a recv on s3 in init, z's close linked behind it */
	int x[2], y[2], z[2]; /* x[0]: closed alone in on_stop; y[0], z[0]: linked */
	char buf[3][16];
	bool nop_ok, close_ok[4];
} tsa;

static void sa_cb(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)arg;
	(void)c;
	if (atomic_load(&tsa.over))
		atomic_fetch_add(&tsa.late, 1);
}

static int sa_init(struct rp_shard *sh, void *arg)
{
	(void)arg;
	struct rp_op *r;

	CHECK(rp_recv(sh, tsa.s1, tsa.buf[0], sizeof(tsa.buf[0]), 0, sa_cb, NULL) != NULL);
	/* a chain the loop submits: still in the kernel at the deadline */
	r = rp_recv(sh, tsa.s3, tsa.buf[2], sizeof(tsa.buf[2]), 0, sa_cb, NULL);
	tsa.close_ok[3] = r && !rp_link_next(sh, r) && rp_close(sh, tsa.z[0], sa_cb, NULL);
	atomic_store(&tsa.armed, 1);
	return 0;
}

/* A message that prepares a NOP and a recv with a close linked behind
 * it, then stops the runtime: the loop sees the stop in the same turn,
 * after its messages, before any submit. */
static void sa_msg(struct rp_shard *sh, void *arg)
{
	struct rp_op *r;

	(void)arg;
	tsa.nop_ok = rp_nop(sh, sa_cb, NULL) != NULL;
	r = rp_recv(sh, tsa.s2, tsa.buf[1], sizeof(tsa.buf[1]), 0, sa_cb, NULL);
	tsa.close_ok[2] = r && !rp_link_next(sh, r) && rp_close(sh, tsa.y[0], sa_cb, NULL);
	rp_runtime_stop(rp_shard_runtime(sh));
}

/* Prepares more (a close with its cancel, a bare close); the 1 ms
 * deadline passes in here, so the loop publishes none of it. */
static void sa_stop(struct rp_shard *sh, void *arg)
{
	(void)arg;
	tsa.close_ok[0] = rp_close(sh, tsa.s1, sa_cb, NULL) != NULL;
	tsa.close_ok[1] = rp_close(sh, tsa.x[0], sa_cb, NULL) != NULL;
	sleep_ms(20);
}

static void sa_fini(struct rp_shard *sh, void *arg)
{
	(void)sh;
	(void)arg;
	atomic_store(&tsa.over, true);
}

/* Close every descriptor of tsa still held (>= 0), and mark it -1. */
static void sa_close_fds(void)
{
	int *const fds[] = {
		&tsa.c1, &tsa.s1, &tsa.c2, &tsa.s2, &tsa.c3, &tsa.s3,
		&tsa.x[0], &tsa.x[1], &tsa.y[0], &tsa.y[1], &tsa.z[0], &tsa.z[1],
	};

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

/* *@fdp was closed, and once: a file put on its number stays open. The
 * number is closed again here (*@fdp = -1). */
static void closed_once(int *fdp, const char *what)
{
	struct stat st, st_nul;
	int fd = *fdp, nul, bad;

	errno = 0;
	bad = fcntl(fd, F_GETFD) < 0 && errno == EBADF;
	print_message("# %s (fd %d): %s after the join\n", what, fd, bad ? "closed" : "OPEN");
	assert_true(bad);
	nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(nul >= 0);
	if (nul != fd)
		assert_int_equal(dup3(nul, fd, O_CLOEXEC), fd);
	sleep_ms(50);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(fstat(nul, &st_nul), 0);
	assert_true(st.st_ino == st_nul.st_ino && st.st_dev == st_nul.st_dev);
	close(fd);
	*fdp = -1;
	if (nul != fd)
		close(nul);
}

static void test_sqpoll_deadline_abandons_unpublished(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_shard_stats st;
	struct rp_runtime *rt;

	(void)state;
	memset(&tsa, 0, sizeof(tsa));
	tcp_pair(&tsa.c1, &tsa.s1);
	tcp_pair(&tsa.c2, &tsa.s2);
	tcp_pair(&tsa.c3, &tsa.s3);
	assert_int_equal(pipe2(tsa.z, O_CLOEXEC), 0);
	assert_int_equal(pipe2(tsa.x, O_CLOEXEC), 0);
	assert_int_equal(pipe2(tsa.y, O_CLOEXEC), 0);
	cfg.init = sa_init;
	cfg.on_stop = sa_stop;
	cfg.fini = sa_fini;
	cfg.stop_timeout_ms = 1;
	rt = rt_start_sqpoll(&cfg);
	if (!rt) {
		sa_close_fds();
		skip();
	}
	assert_true(wait_for(&tsa.armed, 1, WAIT_S));
	sleep_ms(50); /* the recv reached the kernel (the SQ thread took it) */
	assert_int_equal(rp_runtime_submit(rt, 0, sa_msg, NULL), 0);
	assert_int_equal(rp_runtime_wait(rt), 0);
	stats_of(rt, 0, &st);
	rp_runtime_destroy(rt);
	check_failures();
	print_message("# sqpoll deadline: nop %d closes %d %d %d %d, %d late callbacks, "
		      "stuck_ops %llu\n",
		      tsa.nop_ok, tsa.close_ok[0], tsa.close_ok[1], tsa.close_ok[2], tsa.close_ok[3],
		      atomic_load(&tsa.late), (unsigned long long)st.stuck_ops);
	assert_true(tsa.nop_ok && tsa.close_ok[0] && tsa.close_ok[1] && tsa.close_ok[2] &&
		    tsa.close_ok[3]);
	assert_int_equal(atomic_load(&tsa.late), 0);
	closed_once(&tsa.s1, "the recv's socket, closed in on_stop");
	closed_once(&tsa.x[0], "a pipe closed alone in on_stop");
	closed_once(&tsa.y[0], "a pipe whose close was linked behind a recv, unpublished");
	closed_once(&tsa.z[0], "a pipe whose close was linked behind a recv, in the kernel");
	/* the second recv's socket was never handed to a close */
	errno = 0;
	assert_int_equal(fcntl(tsa.s2, F_GETFD), FD_CLOEXEC);
	sa_close_fds(); /* the 8 the test still holds */
}

int main(void)
{
	const struct CMUnitTest all[] = {
		T(test_stop_deadline_reports_stuck_ops),
		T(test_messages_run_or_drop_across_stop),
		T(test_submit_before_start_runs),
		T(test_submit_before_start_never_started),
		T(test_submit_before_start_stopped_first),
		T(test_destroy_unstarted_resubmit_shutdown),
		T(test_submit_before_start_fails),
		T(test_mailbox_shrinks_with_shard_count),
		T(test_sqpoll_deadline_abandons_unpublished),
	};

	return ENGINE_TEST_RUN("engine-stop", all);
}
