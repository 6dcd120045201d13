/* SPDX-License-Identifier: MIT */
/*
 * net/outq: per-connection output queues on real sockets, every byte read
 * back and compared. Thousands of mixed pushes and copies of random sizes
 * from many callbacks: on loopback (adaptive SEND_ZC must switch to plain
 * at the first copied notification and count it; never count a copied
 * byte as zero-copied; gathered vectors by SENDMSG_ZC alike;
 * RP_OUTQ_LOCAL_PROBE, as a loopback peer is plain
 * by default), with the local-peer rule (starts plain, no SEND_ZC: by
 * default, and with the route asked too), with probes by bytes and by
 * time alone, over a veth pair (in a child's network namespace
 * of its own, the far end in a further one: the host untouched; skipped
 * with the reason where one cannot be made; a veth peer is local, so there
 * the local-peer rule starts plain); rp_peer_is_local on loopback, on a
 * route to this host's own address and on an unconnected socket; batching (N pushes in one
 * callback leave in one sendmsg, also with RP_OUTQ_MANUAL; a lone push as
 * one IORING_OP_SEND; more than RP_OUTQ_IOV separate buffers in
 * ceil(n / RP_OUTQ_IOV) sends); the bound (a
 * peer that stops reading makes pushes fail with -ENOBUFS, then drains;
 * again on an O_NONBLOCK socket, where a full socket must be waited for);
 * one message bigger than the bound into an empty queue (taken, not
 * refused: the bound is on backlog); rp_outq_init's refusals (a pipe, a
 * file, an fd not open, an unknown flag, ZC_OFF with ZC_ALWAYS);
 * a peer reset (on_error once, every buffer released exactly once); release
 * callbacks that push, flush and finally close the queue from inside its
 * completion (the stream stays whole and in order); flushes that stall on
 * an exhausted pool (counted in stalls, per queue and per shard, retried
 * every 1 ms; every byte arrives once the pool is given back); a pool with
 * no block for a sendmsg's iovecs or a zero-copy record (the head goes
 * alone by IORING_OP_SEND: every byte arrives while the pool stays full,
 * nothing stalls but for an op the shard refused (the faults build's
 * RP_FAULTS=nomem), the pool's failures grow by far less than the sends,
 * and a block given back is used by the next send). RP_TEST_FILTER=pattern
 * runs the matching tests.
 *
 * Built again on the engine with its test hooks (test_outq_hooks, the
 * outq-hooks test; RP_ENGINE_TEST_HOOKS) it runs only what needs them: a
 * kernel without SEND_ZC or SENDMSG_ZC (the probe's answer, zc_unsupported)
 * gets plain sends counted as plain, never a zc_sends; and over the veth
 * pair, its near end behind a bridge (remote to the local-peer lookup),
 * with notifications read uncopied (zc_uncopied: a NIC path's real
 * zero-copy) the trial proves zero-copy and the queue stays on it, or a
 * probe after a copied trial takes it back to zero-copy.
 *
 * RP_OUTQ_MEASURE=1 runs the measurement of docs/net.md instead (ratios
 * from one run, printed; nothing timed is asserted); RP_OUTQ_MEASURE=dry
 * the one of a dry iovec class (ns a send, dry and not).
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>

#include <ringplane/outq.h>

#include "child_wait.h"
#include "engine_test.h"
#include "netns_test.h"
#ifdef RP_ENGINE_TEST_HOOKS
#include "submit.h" /* struct rp_engine_test_hooks */

#define HOOK_SET(name, v) atomic_store(&rp_engine_test_hooks.name, (v))
#endif

#define MAX_BUFS 8192

/* ---- the producer: random pushes and copies, checked on the far side ---- */

struct pbuf {
	uint8_t *p;
	size_t len;
	atomic_int released;
};

static struct {
	struct rp_outq *q;
	struct rp_outq_opts opts;
	int fd;
	unsigned msgs, sent_msgs; /* to send / accepted so far */
	size_t max_msg_big;
	uint64_t pos;		    /* stream offset of the next byte */
	uint64_t seed, seed_rounds; /* message sizes; round lengths */
	bool have_next;		    /* a refused message, sent first next round */
	size_t next_len;
	bool next_copy;
	struct pbuf bufs[MAX_BUFS];
	unsigned nbufs;
	atomic_int releases, double_release;
	atomic_int errors, writable, produced_all, finished;
	int err;
	atomic_bool blocked; /* a push was refused: wait for on_writable */
	atomic_size_t blocked_pos; /* P.pos at the last refusal, for other threads */
	bool stop_on_error;
	struct rp_outq_stats st, shard;
	size_t pending_at_end;
	bool zc_at_end;
	unsigned rounds;
	/* batching */
	unsigned batch_n;
	bool manual;
	/* hooks build: notifications read uncopied once the queue switched */
	bool uncopy_after_switch;
} P;

static uint64_t xs(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static uint64_t rnd(void)
{
	return xs(&P.seed);
}

/* The next message of the stream: its size and whether it is copied. */
static void next_msg(size_t *len, bool *copy)
{
	bool big = rnd() % 8 == 0;

	*len = big ? 16384 + (size_t)(rnd() % (P.max_msg_big - 16384 + 1))
		   : 1 + (size_t)(rnd() % 700);
	*copy = !big && rnd() % 2;
}

static void on_release(void *arg, const void *buf, size_t len)
{
	struct pbuf *b = arg;

	CHECK(buf == b->p);
	CHECK_EQ(len, b->len);
	if (atomic_fetch_add(&b->released, 1))
		atomic_fetch_add(&P.double_release, 1);
	free(b->p);
	b->p = NULL;
#ifdef RP_ENGINE_TEST_HOOKS
	/* the trial's push is released after its notification switched the
	 * queue and before 256 KB more went plain (FIFO): set here, the hook
	 * is on before any probe can go out. stream() has every buffer
	 * released before it closes the queue: P.q is live. */
	if (P.uncopy_after_switch) {
		struct rp_outq_stats st;

		rp_outq_stats(P.q, &st);
		if (st.switched)
			HOOK_SET(zc_uncopied, 1);
	}
#endif
	atomic_fetch_add(&P.releases, 1);
}

static void on_error(struct rp_outq *q, void *arg, int err)
{
	(void)arg;
	CHECK(q == P.q);
	P.err = err;
	atomic_fetch_add(&P.errors, 1);
	if (P.stop_on_error && atomic_load(&P.blocked))
		atomic_store(&P.produced_all, 1); /* no on_writable will come */
}

static void produce(struct rp_shard *sh, void *arg);

static void on_writable(struct rp_outq *q, void *arg)
{
	(void)q;
	(void)arg;
	atomic_fetch_add(&P.writable, 1);
	if (atomic_load(&P.blocked)) {
		atomic_store(&P.blocked, false);
		CHECK_EQ(rp_shard_post(rp_shard_self(), 0, produce, NULL), 0);
	}
}

/* One callback round: a random number of messages, 1 in 8 big. */
static void produce(struct rp_shard *sh, void *arg)
{
	unsigned n = 1 + (unsigned)(xs(&P.seed_rounds) % 48);

	(void)arg;
	P.rounds++;
	for (unsigned i = 0; i < n && P.sent_msgs < P.msgs; i++) {
		size_t len;
		bool copy;
		int ret;

		if (!P.have_next)
			next_msg(&P.next_len, &P.next_copy);
		P.have_next = true;
		len = P.next_len;
		copy = P.next_copy;

		if (copy) {
			uint8_t tmp[700];

			fill_pattern(tmp, len, P.pos);
			ret = rp_outq_copy(P.q, tmp, len);
		} else {
			struct pbuf *b = &P.bufs[P.nbufs];

			CHECK(P.nbufs < MAX_BUFS);
			b->p = malloc(len);
			b->len = len;
			fill_pattern(b->p, len, P.pos);
			ret = rp_outq_push(P.q, b->p, len, on_release, b);
			if (ret) {
				free(b->p);
				b->p = NULL;
			} else {
				P.nbufs++;
			}
		}
		if (ret == -ENOBUFS) {
			atomic_store(&P.blocked_pos, (size_t)P.pos);
			atomic_store(&P.blocked, true); /* on_writable posts the next round */
			return;
		}
		if (ret) {
			CHECK(P.stop_on_error);
			atomic_store(&P.produced_all, 1);
			return;
		}
		P.have_next = false;
		P.pos += len;
		P.sent_msgs++;
	}
	if (P.sent_msgs == P.msgs) {
		atomic_store(&P.produced_all, 1);
		return;
	}
	CHECK_EQ(rp_shard_post(sh, 0, produce, NULL), 0); /* a later iteration */
}

static void start(struct rp_shard *sh, void *arg)
{
	(void)arg;
	CHECK_EQ(rp_outq_init(sh, &P.q, P.fd, &P.opts), 0);
	produce(sh, NULL);
}

static void finish(struct rp_shard *sh, void *arg)
{
	(void)arg;
	P.pending_at_end = rp_outq_pending(P.q);
	P.zc_at_end = rp_outq_zc(P.q);
	rp_outq_stats(P.q, &P.st);
	rp_outq_close(P.q);
	rp_outq_shard_stats(sh, &P.shard);
	atomic_store(&P.finished, 1);
}

/* ---- the reader ---- */

struct reader {
	int fd;
	uint8_t *buf;
	size_t cap, got;
	atomic_int go;	    /* 0: do not read yet (a peer that stopped reading) */
	size_t reset_at;    /* reset the connection after this many bytes (0: never) */
	bool discard;	    /* measurement: count only */
	atomic_size_t seen; /* published progress */
};

static void *reader_main(void *p)
{
	struct reader *r = p;
	double end = now_s() + 60;
	static uint8_t sink[1 << 16];

	while (!atomic_load(&r->go) && now_s() < end)
		sleep_ms(1);
	while (r->got < r->cap && now_s() < end) {
		size_t want = r->cap - r->got < sizeof(sink) ? r->cap - r->got : sizeof(sink);
		ssize_t n = read(r->fd, r->discard ? sink : r->buf + r->got, want);

		if (n <= 0)
			break;
		r->got += (size_t)n;
		atomic_store(&r->seen, r->got);
		if (r->reset_at && r->got >= r->reset_at) {
			close_reset(r->fd);
			r->fd = -1;
			break;
		}
	}
	return NULL;
}

#define RD_GO	   1u /* read at once (without it: until the test stores rd->go) */
#define RD_DISCARD 2u /* count the bytes, keep none: no buffer */

/* Zero @rd and start it on a thread of its own (*th, the caller joins it):
 * it reads up to @cap bytes from @fd into rd->buf, @cap bytes allocated
 * here and freed by the caller, and stops early at the end of the stream
 * or an error. Without RD_GO, what the thread reads only after go
 * (reset_at) may still be set between this call and the store to rd->go. */
static void reader_start(struct reader *rd, pthread_t *th, int fd, size_t cap, unsigned flags)
{
	memset(rd, 0, sizeof(*rd));
	rd->fd = fd;
	rd->cap = cap;
	rd->discard = flags & RD_DISCARD;
	if (!rd->discard) {
		rd->buf = malloc(cap);
		assert_non_null(rd->buf);
	}
	atomic_store(&rd->go, (flags & RD_GO) ? 1 : 0);
	assert_int_equal(pthread_create(th, NULL, reader_main, rd), 0);
}

static void check_stream(const uint8_t *buf, size_t len)
{
	uint8_t *want = malloc(len ? len : 1);

	assert_non_null(want);
	fill_pattern(want, len, 0);
	for (size_t i = 0; i < len; i++)
		if (buf[i] != want[i])
			fail_msg("byte %zu of %zu: 0x%02x, want 0x%02x", i, len, buf[i], want[i]);
	free(want);
}

static bool wait_int(atomic_int *v, int want, double limit_s)
{
	return wait_for(v, want, limit_s);
}

static void free_bufs(void)
{
	for (unsigned i = 0; i < P.nbufs; i++)
		free(P.bufs[i].p);
}

static void print_stats(const char *name, const struct rp_outq_stats *s)
{
	print_message(
		"# %s: zc %llu B, zc copied %llu B, zc dropped %llu B, plain %llu B, sendmsgs "
		"%llu, zc sends %llu, "
		"notifs %llu, switched %llu, probes %llu, copied in %llu B, pushes %llu, refused "
		"%llu, errors %llu, local %llu, zc sendmsgs %llu\n",
		name, (unsigned long long)s->zc_bytes, (unsigned long long)s->zc_copied_bytes,
		(unsigned long long)s->zc_dropped_bytes, (unsigned long long)s->plain_bytes,
		(unsigned long long)s->sendmsgs, (unsigned long long)s->zc_sends,
		(unsigned long long)s->notifs, (unsigned long long)s->switched,
		(unsigned long long)s->probes, (unsigned long long)s->copied_in,
		(unsigned long long)s->pushes, (unsigned long long)s->refused,
		(unsigned long long)s->errors, (unsigned long long)s->local_plain,
		(unsigned long long)s->zc_sendmsgs);
}

/* Send P.msgs random messages from @a to @b, read them all, check them. */
static struct rp_runtime *stream(int a, int b, const struct rp_outq_opts *opts, unsigned msgs)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	struct reader rd;
	pthread_t th;
	bool uncopy = P.uncopy_after_switch; /* kept: hooks build */

	memset(&P, 0, sizeof(P));
	P.uncopy_after_switch = uncopy;
	P.seed = 0x9e3779b97f4a7c15ull ^ msgs;
	P.seed_rounds = 0x2545f4914f6cdd1dull;
	P.fd = a;
	P.opts = *opts;
	P.opts.on_error = on_error;
	P.opts.on_writable = on_writable;
	P.msgs = msgs;
	P.max_msg_big = 96 * 1024;
	/* the stream's length: the same generator, run ahead */
	{
		uint64_t s = P.seed, total = 0;

		for (unsigned i = 0; i < msgs; i++) {
			size_t len;
			bool copy;

			next_msg(&len, &copy);
			total += len;
		}
		P.seed = s;
		reader_start(&rd, &th, b, (size_t)total, RD_GO);
	}
	cfg.pool_bytes = (size_t)64 << 20;
	rt = rt_start(&cfg);
	assert_int_equal(rp_runtime_submit(rt, 0, start, NULL), 0);
	assert_true(wait_int(&P.produced_all, 1, 60));
	pthread_join(th, NULL);
	assert_int_equal(rd.got, rd.cap);
	/* every release, zero-copy notifications included */
	assert_true(wait_int(&P.releases, (int)P.nbufs, 10));
	assert_int_equal(rp_runtime_submit(rt, 0, finish, NULL), 0);
	assert_true(wait_int(&P.finished, 1, 10));
	check_failures();
	check_stream(rd.buf, rd.cap);
	free(rd.buf);
	assert_int_equal(P.pending_at_end, 0);
	assert_int_equal(atomic_load(&P.errors), 0);
	assert_int_equal(atomic_load(&P.double_release), 0);
	assert_int_equal(atomic_load(&P.releases), P.nbufs);
	assert_int_equal(P.st.pushes, msgs);
	assert_int_equal(P.st.plain_bytes + P.st.zc_bytes + P.st.zc_copied_bytes, rd.cap);
	print_message("# %u messages, %zu bytes in %u rounds, every byte checked\n", msgs, rd.cap,
		      P.rounds);
	print_stats("queue", &P.st);
	free_bufs();
	return rt;
}

static bool zc_reported(struct rp_runtime *rt)
{
	return has_feature(rt, "send_zc=yes") && has_feature(rt, "zc_report_usage=yes");
}

static unsigned n_msgs(void)
{
	return reduced() ? 1000 : 3000;
}

/* With RP_OUTQ_LOCAL_PROBE (a loopback peer is plain by default):
 * loopback copies every SEND_ZC payload: the first copied notification
 * switches the socket to plain, and those bytes are counted as copied.
 * Until that notification only one push (the trial) goes by SEND_ZC, and
 * only its first zc_threshold (16 KB) bytes: the rest of it and the big
 * pushes behind it go plain, so exactly 16 KB (in one or more SEND_ZC ops
 * if the socket took the piece in parts) were sent by SEND_ZC. */
static void test_loopback_adaptive(void **state)
{
	struct rp_outq_opts o = {.flags = RP_OUTQ_LOCAL_PROBE,
				 .probe_ns = 60ull * 1000 * MS,
				 .probe_bytes = (uint64_t)1 << 40};
	struct rp_runtime *rt;
	int a, b;

	(void)state;
	tcp_pair(&a, &b);
	rt = stream(a, b, &o, n_msgs());
	if (!zc_reported(rt)) {
		print_message("# SKIP adaptive checks: %s\n", rp_engine_features(rt));
	} else {
		assert_true(P.st.zc_sends >= 1);
		assert_int_equal(P.st.notifs, P.st.zc_sends);
		assert_int_equal(P.st.switched, 1);
		assert_int_equal(P.st.probes, 0);
		assert_int_equal(P.st.zc_bytes, 0); /* loopback never sends zero-copy */
		assert_int_equal(P.st.zc_copied_bytes, 16384); /* the trial's piece alone */
		assert_true(P.st.plain_bytes > 0);
		assert_false(P.zc_at_end);
		assert_int_equal(P.shard.switched, 1);
		assert_int_equal(P.shard.zc_bytes, 0);
	}
	rt_end(rt);
	close(a);
	close(b);
}

/* A queue whose peer is local (the local-peer rule): every send was plain,
 * no trial, no probe, no switch, not in zero-copy mode at the end (P, as
 * stream() left it). */
static void assert_all_plain(void)
{
	assert_int_equal(P.st.local_plain, 1);
	assert_int_equal(P.st.zc_sends, 0);
	assert_int_equal(P.st.zc_sendmsgs, 0);
	assert_int_equal(P.st.probes, 0);
	assert_int_equal(P.st.switched, 0);
	assert_int_equal(P.st.zc_bytes + P.st.zc_copied_bytes, 0);
	assert_false(P.zc_at_end);
}

/* The local-peer rule with the route asked too (RP_OUTQ_LOCAL_PLAIN): a
 * loopback peer is on plain sends for good, no trial and no probe (with
 * probes due every 256 KB, as in test_loopback_probe, which sees 2 to 8
 * of them without the rule). */
static void test_loopback_local_plain(void **state)
{
	struct rp_outq_opts o = {.flags = RP_OUTQ_LOCAL_PLAIN,
				 .probe_ns = 60ull * 1000 * MS,
				 .probe_bytes = 256 * 1024};
	struct rp_runtime *rt;
	int a, b;

	(void)state;
	tcp_pair(&a, &b);
	rt = stream(a, b, &o, n_msgs());
	assert_all_plain();
	rt_end(rt);
	close(a);
	close(b);
}

/* With RP_OUTQ_LOCAL_PROBE, plain after the switch, probing again after
 * 256 KB: every probe comes
 * back copied, goes plain again, and is not counted as a switch; each
 * copied probe doubles the wait (256 KB, 512 KB, ... at most 64 x 256 KB
 * = 16 MB), so the stream's 8-24 MB of plain bytes see 2 to 8 probes, not
 * the 30-90 a fixed 256 KB would make. */
static void test_loopback_probe(void **state)
{
	struct rp_outq_opts o = {.flags = RP_OUTQ_LOCAL_PROBE,
				 .probe_ns = 60ull * 1000 * MS,
				 .probe_bytes = 256 * 1024};
	struct rp_runtime *rt;
	int a, b;

	(void)state;
	tcp_pair(&a, &b);
	rt = stream(a, b, &o, n_msgs());
	if (zc_reported(rt)) {
		assert_int_equal(P.st.switched, 1);
		assert_true(P.st.probes >= 2);
		assert_true(P.st.probes <= 8);
		assert_int_equal(P.st.zc_bytes, 0);
		assert_int_equal(P.st.notifs, P.st.zc_sends);
		assert_true(P.st.zc_sends >= 1 + P.st.probes);
		/* the trial and each probe: one 16 KB piece by SEND_ZC */
		assert_int_equal(P.st.zc_copied_bytes, 16384 * (1 + P.st.probes));
	}
	rt_end(rt);
	close(a);
	close(b);
}

/*
 * Gathered vectors by SENDMSG_ZC. VZ_N small pieces (300-699 B, every
 * fifth a copy) pushed in one callback: gathered, 64 to a send, their
 * bytes past the 16 KB threshold.
 *  - default mode, zero-copy not proven: the first vector is the trial,
 *    cut to 16 KB, by one rp_sendmsg_zc; loopback copies it, so its
 *    notification switches the socket to plain (switched 1) and the rest
 *    leaves by plain sendmsgs: exactly one SENDMSG_ZC, 16 KB copied;
 *  - RP_OUTQ_ZC_ALWAYS: every gathered vector of 16 KB or more goes by
 *    SENDMSG_ZC, uncut, the copies reported but never switching.
 * Each pushed buffer is released exactly once, and one whose bytes a
 * SENDMSG_ZC carried (the first 16 KB of the stream: the first vector's)
 * only once the queue has seen a notification; every byte arrives in
 * order. A socket in plain mode (test_loopback_local_plain) makes no
 * SENDMSG_ZC.
 */
#define VZ_N 400

static struct {
	struct rp_outq *q;
	int fd;
	unsigned flags;
	uint8_t *buf[VZ_N];
	size_t len[VZ_N];
	uint64_t off[VZ_N]; /* stream offset of its first byte */
	bool pushed[VZ_N];
	uint64_t notifs_at_release[VZ_N];
	atomic_int released[VZ_N];
	atomic_int releases, double_release, errors, started, finished;
	unsigned npushed;
	uint64_t total;
	struct rp_outq_stats st;
	size_t pending;
	bool zc_at_end;
} VZ;

static void vz_release(void *arg, const void *buf, size_t len)
{
	unsigned i = (unsigned)(uintptr_t)arg;
	struct rp_outq_stats st;

	CHECK(buf == VZ.buf[i]);
	CHECK_EQ(len, VZ.len[i]);
	rp_outq_stats(VZ.q, &st);
	VZ.notifs_at_release[i] = st.notifs;
	if (atomic_fetch_add(&VZ.released[i], 1))
		atomic_fetch_add(&VZ.double_release, 1);
	atomic_fetch_add(&VZ.releases, 1);
}

static void vz_error(struct rp_outq *q, void *arg, int err)
{
	(void)q;
	(void)arg;
	(void)err;
	atomic_fetch_add(&VZ.errors, 1);
}

static void vz_start(struct rp_shard *sh, void *arg)
{
	struct rp_outq_opts o = {.flags = VZ.flags,
				 .probe_ns = 60ull * 1000 * MS,
				 .probe_bytes = (uint64_t)1 << 40,
				 .on_error = vz_error};

	(void)arg;
	CHECK_EQ(rp_outq_init(sh, &VZ.q, VZ.fd, &o), 0);
	for (unsigned i = 0; i < VZ_N; i++) {
		if (i % 5 == 4) {
			CHECK_EQ(rp_outq_copy(VZ.q, VZ.buf[i], VZ.len[i]), 0);
			continue;
		}
		VZ.pushed[i] = true;
		VZ.npushed++;
		CHECK_EQ(rp_outq_push(VZ.q, VZ.buf[i], VZ.len[i], vz_release, (void *)(uintptr_t)i), 0);
	}
	atomic_store(&VZ.started, 1);
}

static void vz_finish(struct rp_shard *sh, void *arg)
{
	(void)sh;
	(void)arg;
	VZ.pending = rp_outq_pending(VZ.q);
	VZ.zc_at_end = rp_outq_zc(VZ.q);
	rp_outq_stats(VZ.q, &VZ.st);
	rp_outq_close(VZ.q);
	atomic_store(&VZ.finished, 1);
}

static struct rp_runtime *vz_run(unsigned flags)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	struct reader rd;
	pthread_t th;
	int a, b;

	memset(&VZ, 0, sizeof(VZ));
	VZ.flags = flags;
	for (unsigned i = 0; i < VZ_N; i++) {
		VZ.len[i] = 300 + (i * 37u) % 400;
		VZ.off[i] = VZ.total;
		VZ.buf[i] = malloc(VZ.len[i]);
		assert_non_null(VZ.buf[i]);
		fill_pattern(VZ.buf[i], VZ.len[i], VZ.total);
		VZ.total += VZ.len[i];
	}
	tcp_pair(&a, &b);
	VZ.fd = a;
	reader_start(&rd, &th, b, (size_t)VZ.total, RD_GO);
	rt = rt_start(&cfg);
	assert_int_equal(rp_runtime_submit(rt, 0, vz_start, NULL), 0);
	assert_true(wait_int(&VZ.started, 1, 10));
	pthread_join(th, NULL);
	assert_int_equal(rd.got, rd.cap);
	/* every release, the zero-copy notifications' included */
	assert_true(wait_int(&VZ.releases, (int)VZ.npushed, 10));
	assert_int_equal(rp_runtime_submit(rt, 0, vz_finish, NULL), 0);
	assert_true(wait_int(&VZ.finished, 1, 10));
	check_failures();
	check_stream(rd.buf, rd.cap);
	free(rd.buf);
	print_stats(flags & RP_OUTQ_ZC_ALWAYS ? "vectors, zc always" : "vectors", &VZ.st);
	assert_int_equal(VZ.pending, 0);
	assert_int_equal(atomic_load(&VZ.errors), 0);
	assert_int_equal(atomic_load(&VZ.double_release), 0);
	assert_int_equal(atomic_load(&VZ.releases), VZ.npushed);
	assert_int_equal(VZ.st.plain_bytes + VZ.st.zc_bytes + VZ.st.zc_copied_bytes, VZ.total);
	close(a);
	close(b);
	return rt;
}

/* The pushes a SENDMSG_ZC carried went back only after a notification. */
static void vz_check_released_after_notif(uint64_t zc_end)
{
	unsigned checked = 0;

	for (unsigned i = 0; i < VZ_N; i++) {
		if (!VZ.pushed[i] || VZ.off[i] >= zc_end)
			continue;
		if (VZ.notifs_at_release[i] == 0)
			fail_msg("push %u (stream bytes %llu..) released before any notification", i,
				 (unsigned long long)VZ.off[i]);
		checked++;
	}
	assert_true(checked > 0);
}

static void vz_free(void)
{
	for (unsigned i = 0; i < VZ_N; i++)
		free(VZ.buf[i]);
}

static void test_vector_zc(void **state)
{
	struct rp_runtime *rt;

	(void)state;
	rt = vz_run(RP_OUTQ_LOCAL_PROBE); /* loopback: the trial runs */
	if (!zc_reported(rt) || !has_feature(rt, "sendmsg_zc=yes")) {
		print_message("# SKIP vector checks: %s\n", rp_engine_features(rt));
		assert_int_equal(VZ.st.zc_sendmsgs, 0);
		goto always;
	}
	/* the trial: one SENDMSG_ZC of the first 16 KB, copied, switching */
	assert_int_equal(VZ.st.zc_sendmsgs, 1);
	assert_int_equal(VZ.st.zc_sends, 1);
	assert_int_equal(VZ.st.notifs, 1);
	assert_int_equal(VZ.st.switched, 1);
	assert_int_equal(VZ.st.probes, 0);
	assert_int_equal(VZ.st.zc_bytes, 0); /* loopback never sends zero-copy */
	assert_int_equal(VZ.st.zc_copied_bytes, 16384);
	assert_false(VZ.zc_at_end);
	vz_check_released_after_notif(16384);
always:
	rt_end(rt);
	vz_free();

	rt = vz_run(RP_OUTQ_ZC_ALWAYS);
	if (zc_reported(rt) && has_feature(rt, "sendmsg_zc=yes")) {
		/* uncut, never switched: more than a trial's 16 KB, all copied */
		assert_true(VZ.st.zc_sendmsgs >= 1);
		assert_int_equal(VZ.st.zc_sends, VZ.st.zc_sendmsgs);
		assert_int_equal(VZ.st.notifs, VZ.st.zc_sends);
		assert_int_equal(VZ.st.switched, 0);
		assert_int_equal(VZ.st.zc_bytes, 0);
		assert_true(VZ.st.zc_copied_bytes > 16384);
		assert_true(VZ.zc_at_end);
		vz_check_released_after_notif(16384);
	}
	rt_end(rt);
	vz_free();
}

#ifdef RP_ENGINE_TEST_HOOKS
/*
 * A kernel without the zero-copy ops (the probe's answer, zc_unsupported),
 * every queue RP_OUTQ_ZC_ALWAYS, so that each big push and each big
 * gathered vector would go zero-copy: the engine would send them plain
 * (rp_send_zc, rp_sendmsg_zc fall back), and the queue sends them plain
 * itself, counted in plain_bytes, never in zc_sends or zc_sendmsgs, no
 * notification; rp_outq_zc says no. Without SEND_ZC or SENDMSG_ZC (as
 * before 6.0) the random stream's big pushes; without SENDMSG_ZC alone
 * (6.0) the vectors of test_vector_zc.
 */
static void test_no_zc_in_kernel_counts_plain(void **state)
{
	struct rp_outq_opts o = {.flags = RP_OUTQ_ZC_ALWAYS};
	struct rp_runtime *rt;
	int a, b;

	(void)state;
	tcp_pair(&a, &b);
	HOOK_SET(zc_unsupported, 3);
	rt = stream(a, b, &o, n_msgs());
	HOOK_SET(zc_unsupported, 0);
	assert_int_equal(rp_engine_zc(rt), 0);
	assert_false(has_feature(rt, "send_zc=yes"));
	assert_int_equal(P.st.zc_sends, 0);
	assert_int_equal(P.st.zc_sendmsgs, 0);
	assert_int_equal(P.st.notifs, 0);
	assert_int_equal(P.st.zc_bytes + P.st.zc_copied_bytes + P.st.zc_dropped_bytes, 0);
	assert_int_equal(P.shard.zc_sends, 0);
	assert_false(P.zc_at_end);
	rt_end(rt);
	close(a);
	close(b);

	HOOK_SET(zc_unsupported, 2);
	rt = vz_run(RP_OUTQ_ZC_ALWAYS);
	HOOK_SET(zc_unsupported, 0);
	assert_int_equal(rp_engine_zc(rt), RP_ENGINE_SEND_ZC);
	assert_false(has_feature(rt, "sendmsg_zc=yes"));
	assert_int_equal(VZ.st.zc_sendmsgs, 0);
	assert_int_equal(VZ.st.zc_sends, 0); /* no push reaches 16 KB alone */
	assert_int_equal(VZ.st.notifs, 0);
	assert_int_equal(VZ.st.plain_bytes, VZ.total);
	rt_end(rt);
	vz_free();
}
#endif

/* rp_peer_is_local: true for a loopback pair (the address test) and for
 * a socket on 127.0.0.1 connected to this host's own non-loopback address
 * (neither address test: the route says RTN_LOCAL, through lo); false for
 * an unconnected socket. The veth case is in test_veth. */
static void test_peer_is_local(void **state)
{
	struct sockaddr_in any = {.sin_family = AF_INET, .sin_port = htons(9)};
	struct sockaddr_in own, lo = {.sin_family = AF_INET};
	int a, b, u, t;

	(void)state;
	tcp_pair(&a, &b);
	assert_true(rp_peer_is_local(a));
	assert_true(rp_peer_is_local(b));
	close(a);
	close(b);
	t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(t >= 0);
	assert_false(rp_peer_is_local(t));
	close(t);
	assert_false(rp_peer_is_local(-1));

	/* this host's address on its default route (a UDP connect sends nothing) */
	u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(u >= 0);
	inet_pton(AF_INET, "203.0.113.1", &any.sin_addr);
	if (connect(u, (struct sockaddr *)&any, sizeof(any)) ||
	    getsockname(u, (struct sockaddr *)&own, &(socklen_t){sizeof(own)}) ||
	    (ntohl(own.sin_addr.s_addr) >> 24) == 127) {
		print_message("# peer_is_local: SKIP own-address case: no default route here\n");
		close(u);
		return;
	}
	close(u);
	u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(u >= 0);
	lo.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	own.sin_port = htons(9);
	assert_int_equal(bind(u, (struct sockaddr *)&lo, sizeof(lo)), 0);
	if (connect(u, (struct sockaddr *)&own, sizeof(own))) {
		print_message(
			"# peer_is_local: SKIP own-address case: connect from 127.0.0.1: %s\n",
			strerror(errno));
		close(u);
		return;
	}
	assert_true(rp_peer_is_local(u));
	close(u);
}

/* ---- veth ---- */

/*
 * In a child of its own (this program re-executed with --veth-child, so
 * that cmocka's asserts work there as here), inside a network namespace of
 * the child's own (unshare(CLONE_NEWNET), lo up): the veth's far end,
 * with the listener, goes into a further namespace held by a grandchild.
 * The host's links, addresses and routes are never touched and parallel
 * runs cannot collide on rp_to0/rp_to1.
 */

#define VETH_WAIT_S 60.0

static struct {
	int l; /* listening on 10.232.0.2, in the far namespace */
	struct sockaddr_in addr;
} V;

/* a connected pair across the veth: *a the near end, *b accepted on V.l */
static void veth_pair(int *a, int *b)
{
	*a = tcp_connect(&V.addr);
	assert_true(*a >= 0);
	*b = accept4(V.l, NULL, NULL, SOCK_CLOEXEC);
	assert_true(*b >= 0);
}

static void test_veth_in_ns(void **state)
{
	struct rp_outq_opts o = {.probe_ns = 60ull * 1000 * MS, .probe_bytes = (uint64_t)1 << 40};
	struct rp_outq_opts lp = {.flags = RP_OUTQ_LOCAL_PLAIN,
				  .probe_ns = 60ull * 1000 * MS,
				  .probe_bytes = (uint64_t)1 << 40};
	struct rp_runtime *rt;
	int a, b;

	(void)state;
	veth_pair(&a, &b);
	/* the peer's route leaves by a veth: local, though its address is not */
	assert_true(rp_peer_is_local(a));
	/* the default rule asks the addresses alone, and a veth peer's is no
	 * loopback nor the socket's own: the queue still tries zero-copy */
	rt = stream(a, b, &o, n_msgs() / 2);
	assert_int_equal(P.st.local_plain, 0);
	if (zc_reported(rt)) {
		assert_true(P.st.zc_sends >= 1);
		/* veth hands the skb to another namespace's stack: copied */
		assert_int_equal(P.st.switched, P.st.zc_copied_bytes ? 1 : 0);
		assert_int_equal(P.st.notifs, P.st.zc_sends);
	}
	rt_end(rt);
	close(a);
	close(b);
	/* with it, a veth peer starts plain: no SEND_ZC at all */
	veth_pair(&a, &b);
	rt = stream(a, b, &lp, n_msgs() / 4);
	assert_all_plain();
	rt_end(rt);
	close(a);
	close(b);
}

#ifdef RP_ENGINE_TEST_HOOKS
/*
 * A peer behind a bridge (its route not followed: remote, as behind a
 * NIC; veth_child) with every notification read uncopied, as a NIC
 * path's real zero-copy: the trial proves it (counted in zc_bytes, neither copied nor
 * dropped), the queue never switches nor probes, the big pushes behind the
 * trial go by SEND_ZC too, and it ends in zero-copy mode.
 */
static void test_veth_uncopied_stays_zc(void **state)
{
	struct rp_outq_opts o = {.probe_ns = 60ull * 1000 * MS, .probe_bytes = (uint64_t)1 << 40};
	struct rp_runtime *rt;
	int a, b;

	(void)state;
	veth_pair(&a, &b);
	HOOK_SET(zc_uncopied, 1);
	rt = stream(a, b, &o, n_msgs() / 2);
	HOOK_SET(zc_uncopied, 0);
	if (!zc_reported(rt)) {
		print_message("# SKIP uncopied checks: %s\n", rp_engine_features(rt));
	} else {
		assert_int_equal(P.st.local_plain, 0);
		assert_true(P.st.zc_sends >= 2); /* the trial, and proven ones after it */
		assert_int_equal(P.st.notifs, P.st.zc_sends);
		assert_int_equal(P.st.switched, 0);
		assert_int_equal(P.st.probes, 0);
		assert_int_equal(P.st.zc_copied_bytes, 0);
		assert_int_equal(P.st.zc_dropped_bytes, 0);
		assert_true(P.st.zc_bytes > 16384); /* more than the trial's piece */
		assert_true(P.zc_at_end);
		assert_int_equal(P.shard.zc_bytes, P.st.zc_bytes);
		assert_int_equal(P.shard.switched, 0);
	}
	rt_end(rt);
	close(a);
	close(b);
}

/*
 * The same peer, the trial copied (as veth really does): the queue
 * switches to plain; from then on notifications read uncopied, so the
 * next probe (due every 256 KB of plain bytes) finds zero-copy and the
 * queue goes back to it for good: one switch, exactly one probe (the
 * hook is set at the trial's release, before a probe can be due: on_release),
 * bytes counted zero-copied after it, and zero-copy mode at the end.
 */
static void test_veth_uncopied_probe_returns(void **state)
{
	struct rp_outq_opts o = {.probe_ns = 60ull * 1000 * MS, .probe_bytes = 256 * 1024};
	struct rp_runtime *rt;
	int a, b;

	(void)state;
	veth_pair(&a, &b);
	HOOK_SET(zc_uncopied, 0);
	P.uncopy_after_switch = true; /* stream() keeps it */
	rt = stream(a, b, &o, n_msgs() / 2);
	P.uncopy_after_switch = false;
	HOOK_SET(zc_uncopied, 0);
	if (!zc_reported(rt)) {
		print_message("# SKIP uncopied checks: %s\n", rp_engine_features(rt));
	} else {
		assert_int_equal(P.st.local_plain, 0);
		assert_int_equal(P.st.switched, 1);
		assert_int_equal(P.st.probes, 1);	       /* the hook was on before it */
		assert_int_equal(P.st.zc_copied_bytes, 16384); /* the trial's piece alone */
		assert_int_equal(P.st.zc_dropped_bytes, 0);
		assert_true(P.st.zc_bytes > 0);
		assert_int_equal(P.st.notifs, P.st.zc_sends);
		assert_true(P.zc_at_end);
	}
	rt_end(rt);
	close(a);
	close(b);
}
#endif

/* The re-executed child: 0 passed, 1 failed, 77 skipped (printed why). */
static int veth_child(void)
{
#ifdef RP_ENGINE_TEST_HOOKS
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_veth_uncopied_stays_zc),
					   cmocka_unit_test(test_veth_uncopied_probe_returns)};
#else
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_veth_in_ns)};
#endif
	struct netns_veth v;
	int one = 1, rc;

#ifdef RP_ENGINE_TEST_HOOKS
	(void)test_veth_in_ns; /* test_outq's */
#endif
	rc = netns_enter("veth");
	if (rc == 0)
		rc = netns_veth_make(&v, "veth", "rp_to0", "10.232.0.1/30", "rp_to1",
				     "10.232.0.2/30", (unsigned)VETH_WAIT_S);
#ifdef RP_ENGINE_TEST_HOOKS
	/* the near end a bridge's port, the address on the bridge: the
	 * route leaves by the bridge, which the local-peer lookup does not
	 * follow (peer.c), so an uncopied notification is no reset's but a
	 * real zero-copy, as behind a NIC */
	if (rc == 0 &&
	    system("ip addr del 10.232.0.1/30 dev rp_to0 && "
		   "ip link add rp_tobr type bridge && "
		   "ip link set rp_to0 master rp_tobr && "
		   "ip addr add 10.232.0.1/30 dev rp_tobr && ip link set rp_tobr up") != 0) {
		printf("# veth: SKIP: cannot put the veth behind a bridge here\n");
		fflush(stdout);
		netns_veth_end(&v);
		rc = 77;
	}
#endif
	if (rc)
		return rc;
	memset(&V.addr, 0, sizeof(V.addr));
	V.addr.sin_family = AF_INET;
	inet_pton(AF_INET, "10.232.0.2", &V.addr.sin_addr);
	V.l = netns_far_socket(&v, AF_INET, SOCK_STREAM | SOCK_CLOEXEC);
	if (V.l < 0 || setsockopt(V.l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(V.l, (struct sockaddr *)&V.addr, sizeof(V.addr)) || listen(V.l, 4) ||
	    getsockname(V.l, (struct sockaddr *)&V.addr, &(socklen_t){sizeof(V.addr)})) {
		printf("# veth: SKIP: cannot listen on 10.232.0.2 in the far namespace: %s\n",
		       strerror(errno));
		rc = 77;
	} else {
		rc = cmocka_run_group_tests_name("test_outq veth child", tests, NULL, NULL) ? 1 : 0;
	}
	if (V.l >= 0)
		close(V.l);
	netns_veth_end(&v);
	fflush(stdout);
	return rc;
}

static void test_veth(void **state)
{
	(void)state;
	if (geteuid() != 0) {
		print_message("# veth: SKIP: network namespaces need root\n");
		skip();
	}
	child_run_self("--veth-child", NULL, VETH_WAIT_S, "veth child");
}

/* ---- batching ---- */

static void batch_round(struct rp_shard *sh, void *arg)
{
	(void)arg;
	CHECK_EQ(rp_outq_init(sh, &P.q, P.fd, &P.opts), 0);
	for (unsigned i = 0; i < P.batch_n; i++) {
		uint8_t m[64];

		fill_pattern(m, sizeof(m), i * 64u);
		if (i % 2)
			CHECK_EQ(rp_outq_copy(P.q, m, sizeof(m)), 0);
		else {
			struct pbuf *pb = &P.bufs[P.nbufs++];

			pb->p = malloc(64);
			pb->len = 64;
			memcpy(pb->p, m, 64);
			CHECK_EQ(rp_outq_push(P.q, pb->p, 64, on_release, pb), 0);
		}
	}
	if (P.manual)
		CHECK_EQ(rp_outq_flush(P.q), 0);
	atomic_store(&P.produced_all, 1);
}

static void batch_once(bool manual, unsigned n)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	struct reader rd;
	pthread_t th;
	int a, b;

	tcp_pair(&a, &b);
	memset(&P, 0, sizeof(P));
	P.fd = a;
	P.batch_n = n;
	P.manual = manual;
	P.opts.flags = manual ? RP_OUTQ_MANUAL : 0;
	reader_start(&rd, &th, b, 64u * P.batch_n, RD_GO);
	rt = rt_start(&cfg);
	assert_int_equal(rp_runtime_submit(rt, 0, batch_round, NULL), 0);
	pthread_join(th, NULL);
	assert_int_equal(rd.got, rd.cap);
	/* produced_all (stored after the last push) orders P.nbufs for us */
	assert_true(wait_int(&P.produced_all, 1, 10));
	assert_true(wait_int(&P.releases, (int)P.nbufs, 10));
	assert_int_equal(rp_runtime_submit(rt, 0, finish, NULL), 0);
	assert_true(wait_int(&P.finished, 1, 10));
	rt_end(rt);
	check_stream(rd.buf, rd.cap);
	print_message("# %u pushes in one callback (%s): %llu send op, %llu of them single\n",
		      P.batch_n, manual ? "manual flush" : "NOP-deferred flush",
		      (unsigned long long)P.st.sendmsgs, (unsigned long long)P.st.single_sends);
	assert_int_equal(P.st.pushes, P.batch_n);
	assert_int_equal(P.st.sendmsgs, 1);
	/* one buffer goes by IORING_OP_SEND, two or more by one SENDMSG */
	assert_int_equal(P.st.single_sends, n == 1 ? 1 : 0);
	assert_int_equal(P.st.plain_bytes, rd.cap);
	assert_int_equal(atomic_load(&P.double_release), 0);
	free(rd.buf);
	free_bufs();
	close(a);
	close(b);
}

static void test_batching(void **state)
{
	(void)state;
	batch_once(false, 50);
	batch_once(true, 50);
	batch_once(false, 1);
	batch_once(true, 1);
}

/* ---- the iovec bound: RP_OUTQ_IOV buffers a sendmsg ---- */

/* @n pushes of 100 B in one callback, each its own buffer (pushes are
 * never merged: only a copy is appended to the copy before it), flushed
 * once: they leave in ceil(n / RP_OUTQ_IOV) sends, full ones first, every
 * byte in order. */
static void iov_round(struct rp_shard *sh, void *arg)
{
	(void)arg;
	CHECK_EQ(rp_outq_init(sh, &P.q, P.fd, &P.opts), 0);
	for (unsigned i = 0; i < P.batch_n; i++) {
		struct pbuf *pb = &P.bufs[P.nbufs++];

		pb->p = malloc(100);
		pb->len = 100;
		fill_pattern(pb->p, 100, i * 100u);
		CHECK_EQ(rp_outq_push(P.q, pb->p, 100, on_release, pb), 0);
	}
	CHECK_EQ(rp_outq_flush(P.q), 0);
	atomic_store(&P.produced_all, 1);
}

static void iov_once(unsigned n)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	struct reader rd;
	pthread_t th;
	unsigned want = (n + RP_OUTQ_IOV - 1) / RP_OUTQ_IOV;
	int a, b;

	tcp_pair(&a, &b);
	memset(&P, 0, sizeof(P));
	P.fd = a;
	P.batch_n = n;
	P.opts.flags = RP_OUTQ_MANUAL;
	reader_start(&rd, &th, b, 100u * n, RD_GO);
	rt = rt_start(&cfg);
	assert_int_equal(rp_runtime_submit(rt, 0, iov_round, NULL), 0);
	pthread_join(th, NULL);
	assert_int_equal(rd.got, rd.cap);
	assert_true(wait_int(&P.produced_all, 1, 10));
	assert_true(wait_int(&P.releases, (int)P.nbufs, 10));
	assert_int_equal(rp_runtime_submit(rt, 0, finish, NULL), 0);
	assert_true(wait_int(&P.finished, 1, 10));
	rt_end(rt);
	check_stream(rd.buf, rd.cap);
	print_message("# %u separate buffers: %llu sends (%llu single), want %u\n", n,
		      (unsigned long long)P.st.sendmsgs, (unsigned long long)P.st.single_sends,
		      want);
	assert_int_equal(P.st.pushes, n);
	assert_int_equal(P.st.copied_in, 0);
	assert_int_equal(P.st.sendmsgs, want);
	/* a last group of one buffer goes by IORING_OP_SEND */
	assert_int_equal(P.st.single_sends, n % RP_OUTQ_IOV == 1 ? 1 : 0);
	assert_int_equal(P.st.plain_bytes, rd.cap);
	assert_int_equal(atomic_load(&P.double_release), 0);
	assert_int_equal(atomic_load(&P.releases), n);
	free(rd.buf);
	free_bufs();
	close(a);
	close(b);
}

static void test_iov_bound(void **state)
{
	(void)state;
	iov_once(3 * RP_OUTQ_IOV + 5);
	iov_once(2 * RP_OUTQ_IOV + 1);
	iov_once(RP_OUTQ_IOV);
}

/* ---- probes by time ---- */

#define PT_PUSHES 8
#define PT_LEN	  (64u * 1024)

static void pt_push(struct rp_shard *sh, void *arg)
{
	struct pbuf *pb = &P.bufs[P.nbufs];

	(void)arg;
	if (!P.q)
		CHECK_EQ(rp_outq_init(sh, &P.q, P.fd, &P.opts), 0);
	pb->p = malloc(PT_LEN);
	pb->len = PT_LEN;
	fill_pattern(pb->p, PT_LEN, (size_t)P.nbufs * PT_LEN);
	CHECK_EQ(rp_outq_push(P.q, pb->p, PT_LEN, on_release, pb), 0);
	P.nbufs++;
	P.sent_msgs++;
	atomic_store(&P.produced_all, (int)P.sent_msgs);
}

/* probe_bytes out of reach and probe_ns 50 ms: big pushes 100 ms apart
 * on loopback (copied) probe by time alone. The trial switches the socket
 * to plain; a push 50 ms or more after that probes, and each copied probe
 * doubles the wait (100 ms, 200 ms...), so the 8 pushes over 0.7 s see 1
 * to 7 probes, each one threshold-sized piece (16 KB) by SEND_ZC. */
static void test_probe_by_time(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	struct reader rd;
	pthread_t th;
	int a, b;

	(void)state;
	tcp_pair(&a, &b);
	memset(&P, 0, sizeof(P));
	P.fd = a;
	P.opts.flags = RP_OUTQ_LOCAL_PROBE; /* loopback: the trial and probes run */
	P.opts.probe_bytes = (uint64_t)1 << 40;
	P.opts.probe_ns = 50 * MS;
	P.opts.on_error = on_error;
	reader_start(&rd, &th, b, (size_t)PT_PUSHES * PT_LEN, RD_GO);
	rt = rt_start(&cfg);
	for (int i = 0; i < PT_PUSHES; i++) {
		assert_int_equal(rp_runtime_submit(rt, 0, pt_push, NULL), 0);
		assert_true(wait_int(&P.produced_all, i + 1, 10));
		sleep_ms(100);
	}
	pthread_join(th, NULL);
	assert_int_equal(rd.got, rd.cap);
	assert_true(wait_int(&P.releases, PT_PUSHES, 10));
	assert_int_equal(rp_runtime_submit(rt, 0, finish, NULL), 0);
	assert_true(wait_int(&P.finished, 1, 10));
	check_stream(rd.buf, rd.cap);
	print_stats("probe by time", &P.st);
	if (!zc_reported(rt)) {
		print_message("# SKIP probe checks: %s\n", rp_engine_features(rt));
	} else {
		assert_int_equal(P.st.switched, 1);
		assert_true(P.st.probes >= 1);
		assert_true(P.st.probes <= PT_PUSHES - 1);
		assert_int_equal(P.st.zc_bytes, 0);
		assert_int_equal(P.st.notifs, P.st.zc_sends);
		/* the trial and each probe: one 16 KB piece by SEND_ZC */
		assert_int_equal(P.st.zc_copied_bytes, 16384 * (1 + P.st.probes));
		assert_int_equal(P.st.plain_bytes + P.st.zc_copied_bytes, rd.cap);
	}
	assert_int_equal(atomic_load(&P.errors), 0);
	assert_int_equal(atomic_load(&P.double_release), 0);
	rt_end(rt);
	free(rd.buf);
	free_bufs();
	close(a);
	close(b);
}

/* ---- the local-peer rule by default ---- */

static struct {
	int fd, r_both, r_probe;
	atomic_int done;
} LD;

static void local_flags(struct rp_shard *sh, void *arg)
{
	struct rp_outq_opts both = {.flags = RP_OUTQ_LOCAL_PLAIN | RP_OUTQ_LOCAL_PROBE};
	struct rp_outq_opts probe = {.flags = RP_OUTQ_LOCAL_PROBE};
	struct rp_outq *q;

	(void)arg;
	LD.r_both = rp_outq_init(sh, &q, LD.fd, &both);
	if (!LD.r_both)
		rp_outq_close(q);
	LD.r_probe = rp_outq_init(sh, &q, LD.fd, &probe);
	if (!LD.r_probe)
		rp_outq_close(q);
	atomic_store(&LD.done, 1);
}

/* With no flag a loopback peer is on plain sends for good (the address
 * test alone decides it): no trial and no probe, with probes due every
 * 256 KB (test_loopback_probe sees 2 to 8 with RP_OUTQ_LOCAL_PROBE).
 * RP_OUTQ_LOCAL_PROBE is taken; with RP_OUTQ_LOCAL_PLAIN it is -EINVAL. */
static void test_loopback_local_default(void **state)
{
	struct rp_outq_opts o = {.probe_ns = 60ull * 1000 * MS, .probe_bytes = 256 * 1024};
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	int a, b;

	(void)state;
	tcp_pair(&a, &b);
	rt = stream(a, b, &o, n_msgs());
	assert_all_plain();
	assert_int_equal(P.shard.local_plain, 1);
	rt_end(rt);
	memset(&LD, 0, sizeof(LD));
	LD.fd = a;
	rt = rt_start(&cfg);
	assert_int_equal(rp_runtime_submit(rt, 0, local_flags, NULL), 0);
	assert_true(wait_int(&LD.done, 1, 10));
	rt_end(rt);
	assert_int_equal(LD.r_both, -EINVAL);
	assert_int_equal(LD.r_probe, 0);
	close(a);
	close(b);
}

/* ---- a peer that stops reading: the bound ---- */

/* @nonblock: the socket is O_NONBLOCK, as serve and relay make theirs for
 * sendfile and splice; io_uring then gives a send's EAGAIN back once its
 * retry after its own poll finds no room either (seen by the soak: a head
 * queued behind a 4 MB body failed with -EAGAIN and the connection closed
 * with answers missing). The queue must wait for room, not fail. */
static void bound_once(bool nonblock)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	struct reader rd;
	pthread_t th;
	int a, b, small = 64 * 1024;
	size_t max = 1 << 20, peak = 0;

	tcp_pair(&a, &b);
	if (nonblock) {
		assert_int_equal(fcntl(a, F_SETFL, fcntl(a, F_GETFL) | O_NONBLOCK), 0);
		shutdown(b, SHUT_WR); /* a client that half-closed after its requests */
	}
	sock_bufs(a, b, small);
	memset(&P, 0, sizeof(P));
	P.seed = 12345;
	P.seed_rounds = 99;
	P.fd = a;
	P.opts.max_bytes = max;
	P.opts.flags = RP_OUTQ_ZC_OFF;
	P.opts.on_error = on_error;
	P.opts.on_writable = on_writable;
	P.msgs = 2000;
	P.max_msg_big = 64 * 1024;
	reader_start(&rd, &th, b, (size_t)64 << 20, 0);
	rt = rt_start(&cfg);
	assert_int_equal(rp_runtime_submit(rt, 0, start, NULL), 0);
	/* the peer reads nothing: the producer must block on the bound */
	for (double end = now_s() + 10; now_s() < end && !atomic_load(&P.blocked);)
		sleep_ms(5);
	sleep_ms(200);
	assert_true(atomic_load(&P.blocked));
	assert_false(atomic_load(&P.produced_all));
	peak = atomic_load(&P.blocked_pos);
	print_message("# peer not reading: %zu bytes accepted, then -ENOBUFS (bound %zu)\n", peak,
		      max);
	/* bound + what the kernel buffers (small SO_SNDBUF/SO_RCVBUF, doubled) */
	assert_true(peak <= max + 4u * (size_t)small + 64 * 1024);
	/* now read: it drains, on_writable resumes the producer, all arrives */
	atomic_store(&rd.go, 1);
	assert_true(wait_int(&P.produced_all, 1, 30));
	assert_true(wait_int(&P.releases, (int)P.nbufs, 30));
	for (double end = now_s() + 30; now_s() < end && atomic_load(&rd.seen) < P.pos;)
		sleep_ms(5);
	shutdown(a, SHUT_WR);
	pthread_join(th, NULL);
	assert_int_equal(rp_runtime_submit(rt, 0, finish, NULL), 0);
	assert_true(wait_int(&P.finished, 1, 10));
	rt_end(rt);
	assert_int_equal(rd.got, P.pos);
	check_stream(rd.buf, rd.got);
	print_stats(nonblock ? "bound, O_NONBLOCK socket" : "bound", &P.st);
	assert_true(P.st.refused >= 1);
	assert_true(atomic_load(&P.writable) >= 1);
	assert_int_equal(atomic_load(&P.errors), 0);
	free(rd.buf);
	free_bufs();
	close(a);
	close(b);
}

static void test_bound(void **state)
{
	(void)state;
	bound_once(false);
}

static void test_bound_nonblock(void **state)
{
	(void)state;
	bound_once(true);
}

/* ---- one message bigger than the bound, into an empty queue ---- */

#define BIG_LEN (((size_t)4 << 20) + 1) /* the default bound, plus one */
#define BIG_SMALL 1024
#define BIG_COPY 2000 /* copied into a queue whose bound is 1000 */

static struct {
	struct rp_outq *q;
	int fd;
	uint8_t *big, small[BIG_SMALL], copy[BIG_COPY];
	int ret_big, ret_small, ret_small_again, ret_copy, ret_copy_more;
	atomic_int writable, released, done;
} BG;

static void bg_copy_phase(struct rp_shard *sh);

/* Both pushes sent (in order: the small one is the second): on to the
 * copy, from inside the release (which may close the queue). */
static void bg_release(void *arg, const void *buf, size_t len)
{
	(void)arg;
	CHECK(buf == BG.big || buf == BG.small);
	CHECK(len == BIG_LEN || len == BIG_SMALL);
	if (atomic_fetch_add(&BG.released, 1) == 1) {
		CHECK(buf == BG.small);
		CHECK_EQ(rp_outq_pending(BG.q), 0);
		bg_copy_phase(rp_shard_self());
	}
}

static void bg_copy_writable(struct rp_outq *q, void *arg)
{
	(void)arg;
	CHECK(q == BG.q);
	rp_outq_close(BG.q); /* from its own callback: freed after the send */
	BG.q = NULL;
	atomic_fetch_add(&BG.writable, 1);
	atomic_store(&BG.done, 1);
}

/* The 4 MB + 1 push went out: a queue bound to 1000 bytes, empty, takes a
 * 2000-byte copy, then refuses the next byte until it drained. */
static void bg_copy_phase(struct rp_shard *sh)
{
	struct rp_outq_opts o = {.max_bytes = 1000, .on_writable = bg_copy_writable};

	rp_outq_close(BG.q);
	BG.q = NULL;
	CHECK_EQ(rp_outq_init(sh, &BG.q, BG.fd, &o), 0);
	BG.ret_copy = rp_outq_copy(BG.q, BG.copy, BIG_COPY);
	BG.ret_copy_more = rp_outq_copy(BG.q, BG.copy, 1);
}

static void bg_writable(struct rp_outq *q, void *arg)
{
	(void)arg;
	CHECK(q == BG.q);
	atomic_fetch_add(&BG.writable, 1);
	/* drained to half the bound: the refused message goes now */
	BG.ret_small_again = rp_outq_push(BG.q, BG.small, BIG_SMALL, bg_release, NULL);
}

static void bg_start(struct rp_shard *sh, void *arg)
{
	struct rp_outq_opts o = {.on_writable = bg_writable, .flags = RP_OUTQ_ZC_OFF};

	(void)arg;
	CHECK_EQ(rp_outq_init(sh, &BG.q, BG.fd, &o), 0);
	BG.ret_big = rp_outq_push(BG.q, BG.big, BIG_LEN, bg_release, NULL);
	/* the bound now refuses more: there is backlog to drain */
	BG.ret_small = rp_outq_push(BG.q, BG.small, BIG_SMALL, bg_release, NULL);
	if (BG.ret_big)
		atomic_store(&BG.done, 1); /* the old refusal: nothing will follow */
}

/* The bound is on backlog, not on one message: an empty queue takes one
 * push bigger than max_bytes (4 MB + 1 with the default bound; up to
 * RP_OUTQ_LEN_MAX), and a copy bigger than a small bound. Before, both
 * were refused with -ENOBUFS and on_writable never ran (an empty queue
 * never drains to half), so a caller that waits for it hung. */
static void test_big_push_empty_queue(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	struct reader rd;
	pthread_t th;
	int a, b;

	(void)state;
	tcp_pair(&a, &b);
	memset(&BG, 0, sizeof(BG));
	BG.fd = a;
	BG.big = malloc(BIG_LEN);
	assert_non_null(BG.big);
	fill_pattern(BG.big, BIG_LEN, 0);
	fill_pattern(BG.small, BIG_SMALL, BIG_LEN);
	fill_pattern(BG.copy, BIG_COPY, BIG_LEN + BIG_SMALL);
	reader_start(&rd, &th, b, BIG_LEN + BIG_SMALL + BIG_COPY, RD_GO);
	rt = rt_start(&cfg);
	assert_int_equal(rp_runtime_submit(rt, 0, bg_start, NULL), 0);
	assert_true(wait_int(&BG.done, 1, 30));
	shutdown(a, SHUT_WR); /* all sent: the reader sees the end */
	pthread_join(th, NULL);
	rt_end(rt);
	print_message("# empty queue: push of %zu B -> %d, copy of %d B (bound 1000) -> %d; "
		      "%zu bytes read\n",
		      BIG_LEN, BG.ret_big, BIG_COPY, BG.ret_copy, rd.got);
	check_failures();
	assert_int_equal(BG.ret_big, 0);
	assert_int_equal(BG.ret_small, -ENOBUFS);
	assert_int_equal(BG.ret_small_again, 0);
	assert_int_equal(BG.ret_copy, 0);
	assert_int_equal(BG.ret_copy_more, -ENOBUFS);
	assert_int_equal(atomic_load(&BG.writable), 2);
	assert_int_equal(atomic_load(&BG.released), 2);
	assert_int_equal(rd.got, rd.cap);
	check_stream(rd.buf, rd.got);
	free(rd.buf);
	free(BG.big);
	close(a);
	close(b);
}

/* ---- rp_outq_init's refusals ---- */

static struct {
	int sock, pipe_rd, file, closed_fd;
	int r_pipe, r_file, r_closed, r_unknown, r_both, r_ok[5];
	atomic_int done;
} IN;

static int init_try(struct rp_shard *sh, int fd, unsigned flags)
{
	struct rp_outq_opts o = {.flags = flags};
	struct rp_outq *q = NULL;
	int ret = rp_outq_init(sh, &q, fd, &o);

	if (!ret)
		rp_outq_close(q);
	return ret;
}

static void init_refusals(struct rp_shard *sh, void *arg)
{
	static const unsigned ok[5] = {0, RP_OUTQ_MANUAL, RP_OUTQ_LOCAL_PLAIN, RP_OUTQ_ZC_OFF,
				       RP_OUTQ_ZC_ALWAYS | RP_OUTQ_MANUAL};

	(void)arg;
	IN.r_pipe = init_try(sh, IN.pipe_rd, 0);
	IN.r_file = init_try(sh, IN.file, 0);
	IN.r_closed = init_try(sh, IN.closed_fd, 0);
	IN.r_unknown = init_try(sh, IN.sock, 1u << 9);
	IN.r_both = init_try(sh, IN.sock, RP_OUTQ_ZC_OFF | RP_OUTQ_ZC_ALWAYS);
	for (int i = 0; i < 5; i++)
		IN.r_ok[i] = init_try(sh, IN.sock, ok[i]);
	atomic_store(&IN.done, 1);
}

/* A queue only on a socket, with only flags this version knows, and not
 * both "never" and "always" zero-copy: -ENOTSOCK for a pipe or a regular
 * file, -EINVAL for an fd that is not open, an unknown flag bit (1 << 9)
 * or RP_OUTQ_ZC_OFF | RP_OUTQ_ZC_ALWAYS. Before, all five were taken (a
 * queue on a pipe whose every send fails, a flag silently ignored). */
static void test_init_refusals(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	int a, b, pfd[2];

	(void)state;
	tcp_pair(&a, &b);
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	memset(&IN, 0, sizeof(IN));
	IN.sock = a;
	IN.pipe_rd = pfd[0];
	IN.file = tmp_file();
	assert_true(IN.file >= 0);
	IN.closed_fd = INT_MAX; /* no open file has it (above any RLIMIT_NOFILE) */
	rt = rt_start(&cfg);
	assert_int_equal(rp_runtime_submit(rt, 0, init_refusals, NULL), 0);
	assert_true(wait_int(&IN.done, 1, 10));
	rt_end(rt);
	print_message("# init: pipe %d, file %d, closed fd %d, flag 1<<9 %d, ZC_OFF|ZC_ALWAYS %d\n",
		      IN.r_pipe, IN.r_file, IN.r_closed, IN.r_unknown, IN.r_both);
	assert_int_equal(IN.r_pipe, -ENOTSOCK);
	assert_int_equal(IN.r_file, -ENOTSOCK);
	assert_int_equal(IN.r_closed, -EINVAL);
	assert_int_equal(IN.r_unknown, -EINVAL);
	assert_int_equal(IN.r_both, -EINVAL);
	for (int i = 0; i < 5; i++)
		assert_int_equal(IN.r_ok[i], 0);
	close(pfd[0]);
	close(pfd[1]);
	close(IN.file);
	close(a);
	close(b);
}

/* ---- close with buffers queued and in flight ---- */

static void close_all(struct rp_shard *sh, void *arg)
{
	(void)arg;
	P.pending_at_end = rp_outq_pending(P.q);
	rp_outq_stats(P.q, &P.st);
	rp_outq_close(P.q);
	/* the send in flight waits for room the peer never makes: end it */
	CHECK(rp_close(sh, P.fd, NULL, NULL) != NULL);
	atomic_store(&P.finished, 1);
}

static void shard_sum(struct rp_shard *sh, void *arg)
{
	(void)arg;
	rp_outq_shard_stats(sh, &P.shard);
	atomic_store(&P.writable, 1000);
}

static void test_close(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	int a, b, small = 64 * 1024;

	(void)state;
	tcp_pair(&a, &b);
	sock_bufs(a, b, small);
	memset(&P, 0, sizeof(P));
	P.seed = 4242;
	P.seed_rounds = 7;
	P.fd = a;
	P.opts.max_bytes = 1 << 20;
	P.opts.flags = RP_OUTQ_ZC_ALWAYS; /* zero-copy sends among those in flight */
	P.opts.on_error = on_error;
	P.opts.on_writable = on_writable;
	P.msgs = 2000;
	P.max_msg_big = 64 * 1024;
	rt = rt_start(&cfg);
	assert_int_equal(rp_runtime_submit(rt, 0, start, NULL), 0);
	/* nobody reads b: the queue fills to its bound */
	for (double end = now_s() + 10; now_s() < end && !atomic_load(&P.blocked);)
		sleep_ms(5);
	assert_true(atomic_load(&P.blocked));
	assert_int_equal(rp_runtime_submit(rt, 0, close_all, NULL), 0);
	assert_true(wait_int(&P.finished, 1, 10));
	close(b); /* frees what the sockets still hold: the last notifications */
	assert_true(wait_int(&P.releases, (int)P.nbufs, 10));
	sleep_ms(50); /* a double release would come now */
	assert_int_equal(rp_runtime_submit(rt, 0, shard_sum, NULL), 0);
	assert_true(wait_int(&P.writable, 1000, 10));
	rt_end(rt);
	print_message("# closed with %zu bytes queued: %u buffers pushed, %d released\n",
		      P.pending_at_end, P.nbufs, atomic_load(&P.releases));
	print_stats("close", &P.st);
	assert_true(P.pending_at_end > 0);
	assert_int_equal(atomic_load(&P.releases), P.nbufs);
	assert_int_equal(atomic_load(&P.double_release), 0);
	assert_int_equal(atomic_load(&P.errors), 0); /* no callback after close */
	assert_int_equal(P.shard.zc_bytes, 0);
	free_bufs();
}

/* ---- a peer reset ---- */

static void test_reset(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	struct reader rd;
	pthread_t th;
	int a, b;

	(void)state;
	tcp_pair(&a, &b);
	memset(&P, 0, sizeof(P));
	P.seed = 777;
	P.seed_rounds = 5;
	P.fd = a;
	P.opts.on_error = on_error;
	P.opts.on_writable = on_writable;
	P.opts.flags = RP_OUTQ_ZC_ALWAYS; /* zero-copy buffers in flight at the reset */
	P.msgs = 6000;
	P.max_msg_big = 128 * 1024;
	P.stop_on_error = true;
	reader_start(&rd, &th, b, (size_t)1 << 30, RD_DISCARD);
	rd.reset_at = (size_t)1 << 20;
	atomic_store(&rd.go, 1);
	rt = rt_start(&cfg);
	assert_int_equal(rp_runtime_submit(rt, 0, start, NULL), 0);
	pthread_join(th, NULL);
	assert_true(wait_int(&P.errors, 1, 20));
	assert_true(wait_int(&P.produced_all, 1, 20));
	assert_true(wait_int(&P.releases, (int)P.nbufs, 20));
	assert_int_equal(rp_runtime_submit(rt, 0, finish, NULL), 0);
	assert_true(wait_int(&P.finished, 1, 10));
	sleep_ms(50);
	rt_end(rt);
	print_message("# reset after %zu bytes: error %d, %u buffers pushed, %d released\n", rd.got,
		      P.err, P.nbufs, atomic_load(&P.releases));
	print_stats("reset", &P.st);
	assert_int_equal(atomic_load(&P.errors), 1);
	assert_true(P.err == -ECONNRESET || P.err == -EPIPE);
	assert_int_equal(atomic_load(&P.releases), P.nbufs);
	assert_int_equal(atomic_load(&P.double_release), 0);
	assert_int_equal(P.pending_at_end, 0);
	/* loopback: nothing is zero-copied; what a reset freed is dropped */
	assert_int_equal(P.st.zc_bytes, 0);
	assert_int_equal(P.st.notifs, P.st.zc_sends);
	free(rd.buf);
	free_bufs();
	close(a);
}

/* ---- release callbacks that push, flush and close (echo's shape) ---- */

#define RE_MSGS 3000
#define RE_WINDOW 8

static struct {
	struct rp_outq *q;
	uint8_t *bufs[RE_MSGS];
	size_t lens[RE_MSGS];
	unsigned pushed, released, in_release, max_depth;
	uint64_t pos;
	int released_twice, errors;
	atomic_int done;
	struct rp_outq_stats st;
} R;

static void re_rel(void *arg, const void *buf, size_t len);

static void re_push(void)
{
	unsigned i = R.pushed;
	size_t len = 1 + (i * 7919u) % 3000;

	R.bufs[i] = malloc(len);
	CHECK(R.bufs[i] != NULL);
	fill_pattern(R.bufs[i], len, R.pos);
	R.lens[i] = len;
	R.pos += len;
	CHECK_EQ(rp_outq_push(R.q, R.bufs[i], len, re_rel, (void *)(uintptr_t)i), 0);
	R.pushed++;
}

/* Each release pushes the next message and flushes (from inside the send's
 * completion); the last one reads the counters and closes the queue. */
static void re_rel(void *arg, const void *buf, size_t len)
{
	unsigned i = (unsigned)(uintptr_t)arg;

	CHECK(buf == R.bufs[i] && len == R.lens[i]);
	if (R.bufs[i] != buf)
		R.released_twice++;
	R.bufs[i] = NULL;
	free((void *)buf);
	R.released++;
	if (++R.in_release > R.max_depth)
		R.max_depth = R.in_release;
	if (R.pushed < RE_MSGS) {
		re_push();
		CHECK_EQ(rp_outq_flush(R.q), 0);
	} else if (R.released == RE_MSGS) {
		CHECK_EQ(rp_outq_pending(R.q), 0);
		rp_outq_stats(R.q, &R.st);
		rp_outq_close(R.q); /* inside its own completion */
		atomic_store(&R.done, 1);
	}
	R.in_release--;
}

static void re_error(struct rp_outq *q, void *arg, int err)
{
	(void)q;
	(void)arg;
	(void)err;
	R.errors++;
}

static void re_start(struct rp_shard *sh, void *arg)
{
	struct rp_outq_opts o = { .flags = RP_OUTQ_MANUAL | RP_OUTQ_ZC_OFF, .on_error = re_error };

	CHECK_EQ(rp_outq_init(sh, &R.q, *(int *)arg, &o), 0);
	for (unsigned i = 0; i < RE_WINDOW; i++)
		re_push();
	CHECK_EQ(rp_outq_flush(R.q), 0);
}

static void test_release_reentry(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	struct reader rd;
	pthread_t th;
	int a, b;

	(void)state;
	tcp_pair(&a, &b);
	memset(&R, 0, sizeof(R));
	reader_start(&rd, &th, b, (size_t)RE_MSGS * 3000, RD_GO);
	rt = rt_start(&cfg);
	assert_int_equal(rp_runtime_submit(rt, 0, re_start, &a), 0);
	assert_true(wait_for(&R.done, 1, 30));
	shutdown(a, SHUT_WR);
	pthread_join(th, NULL);
	rt_end(rt);
	print_message("# %u messages pushed from release callbacks, %llu bytes, %llu sendmsgs\n",
		      R.pushed, (unsigned long long)R.pos, (unsigned long long)R.st.sendmsgs);
	assert_int_equal(R.released, RE_MSGS);
	assert_int_equal(R.released_twice, 0);
	assert_int_equal(R.errors, 0);
	assert_int_equal(R.max_depth, 1); /* a release never runs inside another */
	assert_int_equal(rd.got, R.pos);
	check_stream(rd.buf, rd.got);
	/* several releases per completion: pushes made in them share a send */
	assert_true(R.st.sendmsgs < RE_MSGS);
	free(rd.buf);
	close(a);
	close(b);
}

/* ---- the pool-shortage tests: their data and the array of what they hog ---- */

/* @len bytes of the stream's pattern in *@data, and room for @hogmax
 * pointers in *@hog (pool objects the test takes to starve the pool);
 * both malloc'd, freed by the caller. */
static void hog_bufs(uint8_t **data, size_t len, void ***hog, size_t hogmax)
{
	*data = malloc(len);
	*hog = malloc(hogmax * sizeof(void *));
	assert_non_null(*data);
	assert_non_null(*hog);
	fill_pattern(*data, len, 0);
}

/* on_error of those tests: counts in the atomic_int at @arg. */
static void count_error(struct rp_outq *q, void *arg, int err)
{
	(void)q;
	(void)err;
	atomic_fetch_add((atomic_int *)arg, 1);
}

/* ---- a flush stalled by an empty pool is counted ---- */

/*
 * Two queues flush while the shard's pool is exhausted: one on zero-copy
 * sends whose head is a big push (no zero-copy record from the pool, and
 * no op to send it plain instead), one plain with three pushes (no block for the sendmsg's
 * msghdr and iovecs, and no op for the head alone either). Neither can
 * send: each flush is deferred to the 1 ms retry timer, and each deferral,
 * the timer's included, is counted in stalls, per queue and in the
 * shard's sum. Once the pool is given back every byte arrives, whole and
 * in order. Before stalls existed nothing counted these: outq's own pool
 * allocations bypass the engine's nomem.
 */
#define ST_NQ	  2
#define ST_BIG	  (64u * 1024)
#define ST_SMALL  1000u
#define ST_LEN	  (ST_BIG + 2 * ST_SMALL)
#define ST_HOGMAX (POOL_BYTES / 16 + 1024)

static struct {
	int fd[ST_NQ];
	struct rp_outq *q[ST_NQ];
	uint8_t *data;
	void **hog;
	size_t nhog;
	atomic_int step, errors;
	struct rp_outq_stats st[ST_NQ], shard;
	size_t pending[ST_NQ];
} S;

static void st_snap(struct rp_shard *sh)
{
	for (unsigned i = 0; i < ST_NQ; i++) {
		rp_outq_stats(S.q[i], &S.st[i]);
		S.pending[i] = rp_outq_pending(S.q[i]);
	}
	rp_outq_shard_stats(sh, &S.shard);
}

/* On the shard: two queues, their pushes, the pool taken, the flushes. */
static void st_start(struct rp_shard *sh, void *arg)
{
	struct rp_pool *pool = rp_shard_pool(sh);
	void *x;

	(void)arg;
	for (unsigned i = 0; i < ST_NQ; i++) {
		struct rp_outq_opts o = {.flags = RP_OUTQ_MANUAL |
						  (i ? RP_OUTQ_ZC_OFF : RP_OUTQ_ZC_ALWAYS),
					 .on_error = count_error,
					 .arg = &S.errors};

		CHECK_EQ(rp_outq_init(sh, &S.q[i], S.fd[i], &o), 0);
		/* the big push first: on the zero-copy queue it heads the flush */
		CHECK_EQ(rp_outq_push(S.q[i], S.data, ST_BIG, NULL, NULL), 0);
		CHECK_EQ(rp_outq_push(S.q[i], S.data + ST_BIG, ST_SMALL, NULL, NULL), 0);
		CHECK_EQ(rp_outq_push(S.q[i], S.data + ST_BIG + ST_SMALL, ST_SMALL, NULL, NULL), 0);
	}
	for (size_t sz = (size_t)1 << 20; sz >= 16; sz >>= 1)
		while (S.nhog < ST_HOGMAX && (x = rp_pool_alloc(pool, sz)))
			S.hog[S.nhog++] = x;
	CHECK(S.nhog < ST_HOGMAX); /* the pool ran dry, not the array */
	for (unsigned i = 0; i < ST_NQ; i++)
		CHECK_EQ(rp_outq_flush(S.q[i]), 0); /* no error: deferred */
	st_snap(sh);
	atomic_store(&S.step, 1);
}

static void st_look(struct rp_shard *sh, void *arg)
{
	(void)arg;
	st_snap(sh);
	atomic_store(&S.step, 2);
}

static void st_unhog(struct rp_shard *sh, void *arg)
{
	(void)sh;
	(void)arg;
	for (size_t i = 0; i < S.nhog; i++)
		rp_pool_free(S.hog[i]);
	S.nhog = 0;
	atomic_store(&S.step, 3);
}

static void st_finish(struct rp_shard *sh, void *arg)
{
	(void)arg;
	st_snap(sh);
	for (unsigned i = 0; i < ST_NQ; i++)
		rp_outq_close(S.q[i]);
	atomic_store(&S.step, 4);
}

static void test_stall_counted(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	struct reader rd[ST_NQ];
	pthread_t th[ST_NQ];
	int b[ST_NQ];
	uint64_t first[ST_NQ];
	double end;

	(void)state;
	memset(&S, 0, sizeof(S));
	hog_bufs(&S.data, ST_LEN, &S.hog, ST_HOGMAX);
	for (unsigned i = 0; i < ST_NQ; i++) {
		tcp_pair(&S.fd[i], &b[i]);
		reader_start(&rd[i], &th[i], b[i], ST_LEN, RD_GO);
	}
	rt = rt_start(&cfg);
	assert_int_equal(rp_runtime_submit(rt, 0, st_start, NULL), 0);
	assert_true(wait_int(&S.step, 1, 10));
	for (unsigned i = 0; i < ST_NQ; i++) {
		first[i] = S.st[i].stalls;
		print_message("# queue %u (%s) with the pool empty: stalls %llu, pending %zu\n", i,
			      i ? "plain" : "zero-copy", (unsigned long long)first[i], S.pending[i]);
		assert_int_equal(first[i], 1);
		assert_int_equal(S.pending[i], ST_LEN);
	}
	assert_int_equal(S.shard.stalls, 2);
	/* the retry timer tries again every 1 ms and stalls again */
	end = now_s() + 10;
	do {
		sleep_ms(20);
		atomic_store(&S.step, 1);
		assert_int_equal(rp_runtime_submit(rt, 0, st_look, NULL), 0);
		assert_true(wait_int(&S.step, 2, 10));
	} while ((S.st[0].stalls < 3 || S.st[1].stalls < 3) && now_s() < end);
	print_message("# after the retries: stalls %llu and %llu, shard %llu; read %zu and %zu B\n",
		      (unsigned long long)S.st[0].stalls, (unsigned long long)S.st[1].stalls,
		      (unsigned long long)S.shard.stalls, atomic_load(&rd[0].seen),
		      atomic_load(&rd[1].seen));
	for (unsigned i = 0; i < ST_NQ; i++) {
		assert_true(S.st[i].stalls >= 3);
		assert_int_equal(S.pending[i], ST_LEN);
		assert_int_equal(atomic_load(&rd[i].seen), 0); /* nothing went out */
	}
	assert_int_equal(S.shard.stalls, S.st[0].stalls + S.st[1].stalls);
	/* the pool back: the next retry sends everything */
	assert_int_equal(rp_runtime_submit(rt, 0, st_unhog, NULL), 0);
	assert_true(wait_int(&S.step, 3, 10));
	for (unsigned i = 0; i < ST_NQ; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(rd[i].got, ST_LEN);
		check_stream(rd[i].buf, ST_LEN);
	}
	assert_int_equal(rp_runtime_submit(rt, 0, st_finish, NULL), 0);
	assert_true(wait_int(&S.step, 4, 10));
	rt_end(rt);
	for (unsigned i = 0; i < ST_NQ; i++) {
		assert_int_equal(S.pending[i], 0);
		assert_int_equal(S.st[i].errors, 0);
		free(rd[i].buf);
		close(S.fd[i]);
		close(b[i]);
	}
	assert_int_equal(S.st[1].plain_bytes, ST_LEN);
	assert_true(S.st[0].zc_sends >= 1);
	assert_int_equal(atomic_load(&S.errors), 0);
	free(S.hog);
	free(S.data);
}

/* ---- the class-full tests' refill: many sends while a class stays dry ---- */

/*
 * Both class-full tests below keep CF_DEPTH pieces queued for CF_SENDS
 * pieces: each release pushes the next, so each send is a flush that asks
 * the dry class for a block. A refused block costs the pool's slow path
 * (the class's spans, every class's cache flushed) and counts in the
 * pool's failures; net/outq.c remembers the refusal (block_alloc), so
 * while the class stays dry the failures grow by far less than the sends
 * (before: one a send). Once CF_SENDS pieces are released the pool's
 * failures and the queue's stats are taken, CF_ROOM objects of the dry
 * class (the last ones hogged) are given back, and CF_DEPTH more pieces
 * are pushed at once: the next flush must get its block at once.
 */
#define CF_SENDS 640u
#define CF_DEPTH 8u
#define CF_ROOM	 4u
#define CF_TOTAL (CF_SENDS + CF_DEPTH)

static struct {
	struct rp_outq *q;
	struct rp_pool *pool;
	const uint8_t *data;
	size_t piece;
	unsigned pushed, released;
	void **hog;
	size_t *nhog;
	uint64_t fail0, fail1;	  /* pool failures at the flush, after CF_SENDS */
	struct rp_outq_stats st1; /* the queue's stats after CF_SENDS */
	size_t dry_size;	  /* the dry class's, and its room once CF_ROOM */
	size_t room;		  /* ... are given back (rp_pool_class_free, no flush) */
} CF;

static uint64_t pool_failures(struct rp_pool *pool)
{
	struct rp_pool_stats ps;

	rp_pool_stats(pool, &ps);
	return ps.failures;
}

static void cf_release(void *arg, const void *buf, size_t len);

static void cf_push(void)
{
	CHECK_EQ(rp_outq_push(CF.q, CF.data + (size_t)CF.pushed * CF.piece, CF.piece, cf_release, NULL),
		 0);
	CF.pushed++;
}

static void cf_release(void *arg, const void *buf, size_t len)
{
	(void)arg;
	(void)buf;
	(void)len;
	if (++CF.released == CF_SENDS) {
		CF.fail1 = pool_failures(CF.pool);
		rp_outq_stats(CF.q, &CF.st1);
		for (unsigned i = 0; i < CF_ROOM; i++)
			rp_pool_free(CF.hog[--*CF.nhog]);
		CF.room = rp_pool_class_free(CF.pool, CF.dry_size, 0);
		while (CF.pushed < CF_TOTAL)
			cf_push(); /* the release's send flushes them */
	} else if (CF.pushed < CF_SENDS) {
		cf_push();
	}
}

/* On the shard: the queue's first CF_DEPTH pieces. */
static void cf_begin(struct rp_shard *sh, struct rp_outq *q, const uint8_t *data, size_t piece,
		     void **hog, size_t *nhog)
{
	memset(&CF, 0, sizeof(CF));
	CF.q = q;
	CF.pool = rp_shard_pool(sh);
	CF.data = data;
	CF.piece = piece;
	CF.hog = hog;
	CF.nhog = nhog;
	while (CF.pushed < CF_DEPTH)
		cf_push();
}

/* ---- a dry block class does not stall a queue ---- */

/*
 * CF_DEPTH pushes on a queue, then the shard's pool taken so that no
 * block of one class can be had: every free span (1 MB objects:
 * docs/pool.md, "Room is spans, not bytes"), then every object of the
 * class, as many idle connections' blocks would hold it. The 128 B class
 * of the queue's nodes and the engine's ops keeps its span (the queued
 * nodes are in it), so an op can still be had. The flush must send: each
 * head alone by IORING_OP_SEND, each completion the next, each release
 * pushing another piece (the refill above), CF_SENDS of them within 5 s
 * while the pool stays full, with no stall and with far fewer pool
 * failures than sends; then, with CF_ROOM objects of the class given
 * back, the block is used again at the next send. Before, the flush was
 * deferred to the 1 ms retry timer, which found no block either, for as
 * long as the pool stayed full. Two cases:
 *  - sendv_class_full: a plain queue of 1000 B pieces, the class of the
 *    sendmsg's msghdr and 8 iovecs (184 B: the 256 B class) taken; then
 *    the CF_DEPTH pushed at once leave in one sendmsg;
 *  - zc_rec_class_full: a RP_OUTQ_ZC_ALWAYS queue of 4 KB pieces
 *    (zc_threshold 1 KB: each goes by SEND_ZC when it can), the zero-copy
 *    record's class (24 B: the 64 B class) taken; then a SEND_ZC again.
 */
#define CF_HOGMAX (POOL_BYTES / 64 + 1024)
#define CF_WAIT_S 5.0
#define FV_HOGMAX (POOL_BYTES / 256 + 1024) /* the measurement's */

struct cf_case {
	const char *name;
	unsigned flags;
	size_t zc_threshold;
	size_t piece;
	size_t dry_size; /* a block of this size cannot be had */
};

static struct {
	const struct cf_case *c;
	int fd;
	struct rp_outq *q;
	uint8_t *data;
	void **hog;
	size_t nhog;
	bool class_full; /* no block of dry_size, no free span */
	bool op_room;	 /* a 128 B object (an op's class) still */
	atomic_int step, errors;
	struct rp_outq_stats st;
	size_t pending;
	/* the shard's refused ops (nomem + sq_full_fail) at the flush and at
	 * the end: the only stalls allowed (a fault build's RP_FAULTS=nomem) */
	uint64_t refused0, refused;
} F;

static uint64_t ops_refused(struct rp_shard *sh)
{
	struct rp_shard_stats ss;

	rp_shard_stats(sh, &ss);
	return ss.nomem + ss.sq_full_fail;
}

static void cf_start(struct rp_shard *sh, void *arg)
{
	struct rp_pool *pool = rp_shard_pool(sh);
	struct rp_outq_opts o = {.flags = RP_OUTQ_MANUAL | F.c->flags,
				 .zc_threshold = F.c->zc_threshold,
				 .on_error = count_error,
				 .arg = &F.errors};
	void *x;

	(void)arg;
	CHECK_EQ(rp_outq_init(sh, &F.q, F.fd, &o), 0);
	cf_begin(sh, F.q, F.data, F.c->piece, F.hog, &F.nhog);
	/* one object of the class first, so that the class has a span of its
	 * own whose rest is hogged last: the CF_ROOM given back are then the
	 * class's own objects, counted by rp_pool_class_free at once. Without
	 * it the 64 B class had no span, the last ones hogged were 1 MB spans
	 * (in their class's cache: only a real try finds them, every
	 * DRY_TRIES-th ask) and zc_rec_class_full passed only because
	 * CF_SENDS is a multiple of DRY_TRIES; the faults build's stalls
	 * (each retry clears the memo) moved that phase and no SEND_ZC
	 * followed the room (8 of 10 seeds of RP_FAULTS=nomem=0.02) */
	CF.dry_size = F.c->dry_size;
	CHECK((x = rp_pool_alloc(pool, F.c->dry_size)) != NULL);
	F.hog[F.nhog++] = x;
	while (F.nhog < CF_HOGMAX && (x = rp_pool_alloc(pool, (size_t)1 << 20)))
		F.hog[F.nhog++] = x;
	while (F.nhog < CF_HOGMAX && (x = rp_pool_alloc(pool, F.c->dry_size)))
		F.hog[F.nhog++] = x;
	CHECK(F.nhog < CF_HOGMAX); /* the class ran dry, not the array */
	x = rp_pool_alloc(pool, F.c->dry_size);
	F.class_full = !x && rp_pool_spans_free(pool, 0) == 0;
	rp_pool_free(x);
	x = rp_pool_alloc(pool, 128);
	F.op_room = x != NULL;
	rp_pool_free(x);
	CF.fail0 = pool_failures(pool);
	F.refused0 = ops_refused(sh);
	CHECK_EQ(rp_outq_flush(F.q), 0);
	atomic_store(&F.step, 1);
}

static void cf_finish(struct rp_shard *sh, void *arg)
{
	(void)arg;
	rp_outq_stats(F.q, &F.st);
	F.refused = ops_refused(sh) - F.refused0;
	F.pending = rp_outq_pending(F.q);
	for (size_t i = 0; i < F.nhog; i++)
		rp_pool_free(F.hog[i]);
	F.nhog = 0;
	rp_outq_close(F.q);
	atomic_store(&F.step, 2);
}

/* Runs case @c and asserts what both cases share; F.st (at the end) and
 * CF.st1 (after CF_SENDS) stay for the caller's own. */
static void run_class_full(const struct cf_case *c)
{
	struct rp_runtime_config cfg = base_cfg(1);
	size_t len = CF_TOTAL * c->piece, arrived;
	struct rp_runtime *rt;
	struct reader rd;
	pthread_t th;
	double end;
	int b;

	memset(&F, 0, sizeof(F));
	F.c = c;
	hog_bufs(&F.data, len, &F.hog, CF_HOGMAX);
	tcp_pair(&F.fd, &b);
	reader_start(&rd, &th, b, len, RD_GO);
	rt = rt_start(&cfg);
	assert_int_equal(rp_runtime_submit(rt, 0, cf_start, NULL), 0);
	assert_true(wait_int(&F.step, 1, 10));
	end = now_s() + CF_WAIT_S;
	while (atomic_load(&rd.seen) < len && now_s() < end)
		sleep_ms(5);
	arrived = atomic_load(&rd.seen);
	/* the pool back and the queue closed before any verdict: a queue that
	 * stalled must not leave the shard or the reader behind */
	assert_int_equal(rp_runtime_submit(rt, 0, cf_finish, NULL), 0);
	assert_true(wait_int(&F.step, 2, 10));
	rt_end(rt);
	close(F.fd);
	pthread_join(th, NULL);
	close(b);
	print_message("# %s: %zu of %zu B arrived within %.0f s; while dry: sendmsgs %llu, single "
		      "sends %llu, zc_sends %llu, pool failures %llu; at the end: sendmsgs %llu, "
		      "single sends %llu, zc_sends %llu, stalls %llu; ops refused %llu; room given "
		      "back %zu\n",
		      c->name, arrived, len, CF_WAIT_S, (unsigned long long)CF.st1.sendmsgs,
		      (unsigned long long)CF.st1.single_sends, (unsigned long long)CF.st1.zc_sends,
		      (unsigned long long)(CF.fail1 - CF.fail0), (unsigned long long)F.st.sendmsgs,
		      (unsigned long long)F.st.single_sends, (unsigned long long)F.st.zc_sends,
		      (unsigned long long)F.st.stalls, (unsigned long long)F.refused, CF.room);
	assert_true(F.class_full);
	assert_true(CF.room >= CF_ROOM); /* seen by a dry class's cheap check */
	assert_true(F.op_room);
	assert_int_equal(arrived, len);
	check_stream(rd.buf, len);
	assert_int_equal(F.pending, 0);
	/* the refusal remembered: a real try every 64 asks, not one a send */
	assert_true(CF.fail1 - CF.fail0 <= CF.st1.single_sends / 8);
	/* the dry class stalls nothing: a stall is only an op the shard
	 * refused (none in a release run: F.op_room; in the faults build each
	 * injected nomem that strikes a flush's op, retried 1 ms later) */
	assert_true(F.st.stalls <= F.refused);
	assert_int_equal(atomic_load(&F.errors), 0);
	free(rd.buf);
	free(F.hog);
	free(F.data);
}

static void test_sendv_class_full(void **state)
{
	const struct cf_case c = {
		.name = "sendmsg class full",
		.flags = RP_OUTQ_ZC_OFF,
		.piece = 1000,
		.dry_size = sizeof(struct msghdr) + CF_DEPTH * sizeof(struct iovec),
	};

	(void)state;
	run_class_full(&c);
	assert_int_equal(F.st.plain_bytes, CF_TOTAL * c.piece);
	/* while dry each send had CF_DEPTH queued, 5..8 of which need a 256 B
	 * block: those heads went alone, each asking the dry class */
	assert_true(CF.st1.single_sends >= CF_SENDS - CF_DEPTH);
	/* room again: the CF_DEPTH pushed at once leave gathered */
	assert_true(F.st.sendmsgs - F.st.single_sends > CF.st1.sendmsgs - CF.st1.single_sends);
	assert_true(F.st.single_sends - CF.st1.single_sends <= 1);
}

static void test_zc_rec_class_full(void **state)
{
	const struct cf_case c = {
		.name = "zero-copy record class full",
		.flags = RP_OUTQ_ZC_ALWAYS,
		.zc_threshold = 1024,
		.piece = 4096,
		.dry_size = 64,
	};

	(void)state;
	run_class_full(&c);
	/* while dry every piece went plain, each send asking the dry class */
	assert_int_equal(CF.st1.plain_bytes, (uint64_t)CF_SENDS * c.piece);
	assert_int_equal(CF.st1.zc_sends, 0);
	assert_true(CF.st1.single_sends >= CF_SENDS);
	/* room again: SEND_ZC again */
	assert_true(F.st.zc_sends >= 1);
}

/* ---- the measurement (RP_OUTQ_MEASURE=1) ---- */

static struct {
	struct rp_outq *q;
	int fd;
	unsigned n, rounds, round, got;
	int mode; /* 0: outq, 1: rp_send per message */
	atomic_int done;
	size_t big;
	uint64_t bytes, sent, pushed;
	struct rp_outq_stats st;
	double t0, t1;
} M;

static const uint8_t msg64[64] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde";
static uint8_t *bigbuf;

static void m_round(struct rp_shard *sh, void *arg);

static void m_round_done(struct rp_shard *sh)
{
	M.got = 0;
	if (++M.round == M.rounds) {
		M.t1 = now_s();
		if (M.q)
			rp_outq_close(M.q);
		M.q = NULL;
		atomic_store(&M.done, 1);
		return;
	}
	m_round(sh, NULL);
}

static void m_rel(void *arg, const void *buf, size_t len)
{
	(void)buf;
	(void)len;
	m_round_done(arg);
}

static void m_sent(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)arg;
	if (c->res != 64)
		fail_at(__LINE__, "send %d", c->res);
	if (++M.got == M.n)
		m_round_done(sh);
}

static void m_round(struct rp_shard *sh, void *arg)
{
	(void)arg;
	if (M.mode == 1) {
		for (unsigned i = 0; i < M.n; i++)
			if (!rp_send(sh, M.fd, msg64, 64, MSG_NOSIGNAL, m_sent, NULL))
				fail_at(__LINE__, "rp_send");
		return;
	}
	for (unsigned i = 0; i + 1 < M.n; i++)
		CHECK_EQ(rp_outq_copy(M.q, msg64, 64), 0);
	CHECK_EQ(rp_outq_push(M.q, msg64, 64, m_rel, sh), 0);
}

static void m_start(struct rp_shard *sh, void *arg)
{
	struct rp_outq_opts o = {.max_bytes = (size_t)64 << 20};

	(void)arg;
	if (M.mode == 0)
		CHECK_EQ(rp_outq_init(sh, &M.q, M.fd, &o), 0);
	M.t0 = now_s();
	m_round(sh, NULL);
}

/* Big buffers: one 256 KB push at a time, the next when it is released. */
static void b_push(struct rp_shard *sh);

static void b_rel(void *arg, const void *buf, size_t len)
{
	struct rp_shard *sh = arg;

	(void)buf;
	M.sent += len;
	if (M.sent >= M.bytes) {
		M.t1 = now_s();
		rp_outq_stats(M.q, &M.st);
		rp_outq_close(M.q);
		atomic_store(&M.done, 1);
		return;
	}
	b_push(sh);
}

static void b_push(struct rp_shard *sh)
{
	/* keep 4 buffers queued so the queue never runs dry */
	while (M.pushed < M.bytes && rp_outq_pending(M.q) < 4 * M.big) {
		size_t slot = (size_t)(M.round++ % 8) * M.big;

		if (rp_outq_push(M.q, bigbuf + slot, M.big, b_rel, sh))
			break;
		M.pushed += M.big;
	}
}

static void b_start(struct rp_shard *sh, void *arg)
{
	struct rp_outq_opts o = {.flags = (unsigned)(uintptr_t)arg, .max_bytes = (size_t)64 << 20};

	CHECK_EQ(rp_outq_init(sh, &M.q, M.fd, &o), 0);
	M.t0 = now_s();
	b_push(sh);
}

/* CPU seconds of the whole process (shard, reader, the kernel's work in
 * their context): what other programs on a busy host disturb least. */
static double m_cpu;

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double m_run(int kind, int mode, unsigned n, unsigned rounds, uintptr_t flags)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	struct reader rd;
	pthread_t th;
	int sv[2];

	memset(&M, 0, sizeof(M));
	if (kind == 0) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	} else {
		tcp_pair(&sv[0], &sv[1]);
	}
	M.fd = sv[0];
	M.mode = mode;
	M.n = n;
	M.rounds = rounds;
	M.big = 256 * 1024;
	M.bytes = (uint64_t)128 << 20;
	reader_start(&rd, &th, sv[1], kind == 0 ? (size_t)n * 64 * rounds : (size_t)M.bytes,
		     RD_GO | RD_DISCARD);
	cfg.pool_bytes = (size_t)128 << 20;
	rt = rt_start(&cfg);
	m_cpu = cpu_s();
	if (kind == 0)
		assert_int_equal(rp_runtime_submit(rt, 0, m_start, NULL), 0);
	else
		assert_int_equal(rp_runtime_submit(rt, 0, b_start, (void *)flags), 0);
	assert_true(wait_int(&M.done, 1, 120));
	pthread_join(th, NULL);
	m_cpu = cpu_s() - m_cpu;
	assert_int_equal(rd.got, rd.cap);
	rt_end(rt);
	close(sv[0]);
	close(sv[1]);
	return M.t1 - M.t0;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median5(double *v)
{
	qsort(v, 5, sizeof(*v), cmp_d);
	return v[2];
}

static void test_measure(void **state)
{
	(void)state;
	bigbuf = malloc((size_t)8 * 256 * 1024);
	memset(bigbuf, 0x5a, (size_t)8 * 256 * 1024);
	for (int run = 1; run <= 3; run++) {
		for (unsigned n = 16; n <= 256; n *= 4) {
			unsigned rounds = 1000000 / n / 16;
			double tq[5], ts[5];

			for (int i = 0; i < 5; i++) {
				tq[i] = m_run(0, 0, n, rounds, 0);
				ts[i] = m_run(0, 1, n, rounds, 0);
			}
			print_message(
				"# run %d: %u x 64 B per iteration, %u iterations, socketpair, "
				"medians of 5: time rp_send per message / outq = %.2f\n",
				run, n, rounds, median5(ts) / median5(tq));
		}
		{
			/* 5 samples of each, alternating; medians (a shared host is noisy) */
			double ta[5], tz[5], tp[5], ca[5], cz[5], cp[5];
			uint64_t zcs = 0, probes = 0, plain = 0;

			for (int i = 0; i < 5; i++) {
				ta[i] = m_run(1, 0, 0, 0, 0);
				ca[i] = m_cpu;
				zcs += M.st.zc_sends;
				probes += M.st.probes;
				plain += M.st.plain_bytes;
				tz[i] = m_run(1, 0, 0, 0, RP_OUTQ_ZC_ALWAYS);
				cz[i] = m_cpu;
				tp[i] = m_run(1, 0, 0, 0, RP_OUTQ_ZC_OFF);
				cp[i] = m_cpu;
			}
			print_message(
				"# run %d: 128 MB in 256 KB buffers, loopback TCP, medians of 5: "
				"CPU time adaptive / plain = %.2f, always SEND_ZC / plain = %.2f\n",
				run, median5(ca) / median5(cp), median5(cz) / median5(cp));
			print_message(
				"# run %d: 128 MB in 256 KB buffers, loopback TCP, medians of 5: "
				"time adaptive / plain = %.2f, always SEND_ZC / plain = %.2f "
				"(adaptive: "
				"%llu SEND_ZC, %llu probes, %.1f%% plain bytes in 5 samples)\n",
				run, median5(ta) / median5(tp), median5(tz) / median5(tp),
				(unsigned long long)zcs, (unsigned long long)probes,
				100.0 * (double)plain / (5.0 * (double)M.bytes));
		}
	}
	free(bigbuf);
}

/* ---- the measurement of a dry iovec class (RP_OUTQ_MEASURE=dry) ---- */

/*
 * A plain queue kept at CF_DEPTH 64 B pieces for DM_SENDS pieces (each
 * release pushes the next), its shard's pool left alone or taken as in
 * test_sendv_class_full (every span, every 256 B object: no block for
 * the sendmsg of 8). The shard thread's CPU time from the first flush to
 * the last release, over the sends made: ns a send, dry (each send one
 * piece, alone) and not (each send a sendmsg of 8). Before the runs, on
 * the dry pool, what one ask costs: a refused rp_pool_alloc of the
 * block, and rp_pool_class_free(pool, size, 0).
 */
#define DM_SENDS 20000u
#define DM_ASKS	 20000u

static struct {
	struct rp_outq *q;
	unsigned pushed, released;
	bool dry;
	void **hog;
	size_t nhog;
	uint64_t fail0, fail1;
	struct rp_outq_stats st;
	double cpu0, cpu1, ask_alloc_ns, ask_free_ns;
	atomic_int done;
} DM;

static double thread_cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void dm_release(void *arg, const void *buf, size_t len)
{
	struct rp_shard *sh = arg;

	(void)buf;
	(void)len;
	if (++DM.released < DM_SENDS) {
		if (DM.pushed < DM_SENDS) {
			CHECK_EQ(rp_outq_push(DM.q, msg64, 64, dm_release, sh), 0);
			DM.pushed++;
		}
		return;
	}
	DM.cpu1 = thread_cpu_s();
	DM.fail1 = pool_failures(rp_shard_pool(sh));
	rp_outq_stats(DM.q, &DM.st);
	rp_outq_close(DM.q);
	for (size_t i = 0; i < DM.nhog; i++)
		rp_pool_free(DM.hog[i]);
	DM.nhog = 0;
	atomic_store(&DM.done, 1);
}

static void dm_start(struct rp_shard *sh, void *arg)
{
	struct rp_pool *pool = rp_shard_pool(sh);
	struct rp_outq_opts o = {.flags = RP_OUTQ_MANUAL | RP_OUTQ_ZC_OFF};
	size_t sendv = sizeof(struct msghdr) + CF_DEPTH * sizeof(struct iovec);
	size_t room = 0;
	void *x;

	CHECK_EQ(rp_outq_init(sh, &DM.q, (int)(intptr_t)arg, &o), 0);
	for (; DM.pushed < CF_DEPTH; DM.pushed++)
		CHECK_EQ(rp_outq_push(DM.q, msg64, 64, dm_release, sh), 0);
	if (DM.dry) {
		double t;

		while (DM.nhog < FV_HOGMAX && (x = rp_pool_alloc(pool, (size_t)1 << 20)))
			DM.hog[DM.nhog++] = x;
		while (DM.nhog < FV_HOGMAX && (x = rp_pool_alloc(pool, sendv)))
			DM.hog[DM.nhog++] = x;
		CHECK(DM.nhog < FV_HOGMAX);
		t = now_s();
		for (unsigned i = 0; i < DM_ASKS; i++)
			CHECK(rp_pool_alloc(pool, sendv) == NULL);
		DM.ask_alloc_ns = (now_s() - t) * 1e9 / DM_ASKS;
		t = now_s();
		for (unsigned i = 0; i < DM_ASKS; i++)
			room += rp_pool_class_free(pool, sendv, 0);
		DM.ask_free_ns = (now_s() - t) * 1e9 / DM_ASKS;
		CHECK_EQ(room, 0);
	}
	DM.fail0 = pool_failures(pool);
	DM.cpu0 = thread_cpu_s();
	CHECK_EQ(rp_outq_flush(DM.q), 0);
}

/* ns of shard CPU a send; DM has the rest */
static double dm_run(bool dry)
{
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	struct reader rd;
	pthread_t th;
	int a, b;

	memset(&DM, 0, sizeof(DM));
	DM.dry = dry;
	DM.hog = malloc(FV_HOGMAX * sizeof(void *));
	assert_non_null(DM.hog);
	tcp_pair(&a, &b);
	reader_start(&rd, &th, b, (size_t)DM_SENDS * 64, RD_GO | RD_DISCARD);
	rt = rt_start(&cfg);
	assert_int_equal(rp_runtime_submit(rt, 0, dm_start, (void *)(intptr_t)a), 0);
	assert_true(wait_int(&DM.done, 1, 60));
	pthread_join(th, NULL);
	assert_int_equal(rd.got, rd.cap);
	rt_end(rt);
	close(a);
	close(b);
	free(DM.hog);
	return (DM.cpu1 - DM.cpu0) * 1e9 / (double)DM.st.sendmsgs;
}

static void test_measure_dry(void **state)
{
	(void)state;
	for (int run = 1; run <= 3; run++) {
		double d[5], n[5], fails = 0, singles = 0, ask_a[5], ask_f[5];

		for (int i = 0; i < 5; i++) {
			d[i] = dm_run(true);
			ask_a[i] = DM.ask_alloc_ns;
			ask_f[i] = DM.ask_free_ns;
			fails += (double)(DM.fail1 - DM.fail0) / (double)DM.st.sendmsgs;
			singles += (double)DM.st.single_sends / (double)DM.st.sendmsgs;
			n[i] = dm_run(false);
		}
		print_message("# dry run %d: %u pieces of 64 B, 8 queued, loopback TCP, medians of 5: "
			      "shard CPU ns a send: class dry %.0f, not dry %.0f; dry: %.3f pool "
			      "failures and %.3f single sends a send; one ask on the dry pool: "
			      "refused alloc %.1f ns, rp_pool_class_free %.1f ns\n",
			      run, DM_SENDS, median5(d), median5(n), fails / 5, singles / 5,
			      median5(ask_a), median5(ask_f));
	}
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batching),
		cmocka_unit_test(test_loopback_adaptive),
		cmocka_unit_test(test_loopback_local_plain),
		cmocka_unit_test(test_loopback_probe),
		cmocka_unit_test(test_loopback_local_default),
		cmocka_unit_test(test_probe_by_time),
		cmocka_unit_test(test_iov_bound),
		cmocka_unit_test(test_vector_zc),
		cmocka_unit_test(test_bound),
		cmocka_unit_test(test_bound_nonblock),
		cmocka_unit_test(test_big_push_empty_queue),
		cmocka_unit_test(test_init_refusals),
		cmocka_unit_test(test_close),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_release_reentry),
		cmocka_unit_test(test_stall_counted),
		cmocka_unit_test(test_sendv_class_full),
		cmocka_unit_test(test_zc_rec_class_full),
		cmocka_unit_test(test_peer_is_local),
		cmocka_unit_test(test_veth),
	};
	const struct CMUnitTest measure[] = {cmocka_unit_test(test_measure)};
	const struct CMUnitTest measure_dry[] = {cmocka_unit_test(test_measure_dry)};
	const char *m = getenv("RP_OUTQ_MEASURE");

	signal(SIGPIPE, SIG_IGN);
	if (argc == 2 && !strcmp(argv[1], "--veth-child")) {
		watchdog("test_outq veth child", (unsigned)VETH_WAIT_S - 5);
		return veth_child();
	}
	if (m && *m == '1') {
		watchdog("test_outq measure", 1200);
		return cmocka_run_group_tests(measure, NULL, NULL);
	}
	if (m && !strcmp(m, "dry")) {
		watchdog("test_outq measure dry", 300);
		return cmocka_run_group_tests(measure_dry, NULL, NULL);
	}
	watchdog("test_outq", 170);
	test_filter_from_env();
#ifdef RP_ENGINE_TEST_HOOKS
	{
		/* the hooks build: only what needs them (the rest is test_outq's) */
		const struct CMUnitTest hooked[] = {
			cmocka_unit_test(test_no_zc_in_kernel_counts_plain),
			cmocka_unit_test(test_veth),
		};

		(void)tests;
		return cmocka_run_group_tests(hooked, NULL, NULL);
	}
#endif
	return cmocka_run_group_tests(tests, NULL, NULL);
}
