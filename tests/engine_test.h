/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the engine test programs (test_engine*.c): bounded
 * waits, failures recorded on shard threads (a cmocka assert cannot unwind
 * there: CHECK records the first failure, the control thread fails the
 * test after joining the shards), a SIGALRM watchdog, runtime start/stop,
 * loopback TCP pairs. Each program includes it once.
 */
#ifndef RP_TESTS_ENGINE_TEST_H
#define RP_TESTS_ENGINE_TEST_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <ringplane/engine.h>
#include <ringplane/pool.h>

#define MS	   (1000ull * 1000ull)
#define POOL_BYTES ((size_t)16 << 20)
#define WAIT_S	   10.0 /* default bound for a test's work */

/* ---- time, sizes ---- */

static inline double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static inline bool reduced(void)
{
	const char *r = getenv("RP_TEST_REDUCED");

	return r && *r == '1';
}

/* ---- failures seen on shard threads ---- */

static atomic_int g_fail; /* line of the first failed CHECK, 0 if none */
static char g_fail_msg[256] __attribute__((unused));

static inline void fail_at(int line, const char *fmt, ...)
{
	int zero = 0;
	va_list ap;

	if (!atomic_compare_exchange_strong(&g_fail, &zero, line))
		return;
	/* read by the control thread only after it joined the shards */
	va_start(ap, fmt);
	vsnprintf(g_fail_msg, sizeof(g_fail_msg), fmt, ap);
	va_end(ap);
}

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fail_at(__LINE__, "CHECK(%s)", #cond);                                     \
	} while (0)

#define CHECK_EQ(a, b)                                                                             \
	do {                                                                                       \
		long long a_ = (long long)(a), b_ = (long long)(b);                                \
		if (a_ != b_)                                                                      \
			fail_at(__LINE__, "%s == %s (%lld != %lld)", #a, #b, a_, b_);              \
	} while (0)

static inline void check_failures(void)
{
	int line = atomic_load(&g_fail);

	if (line)
		fail_msg("shard-side check failed at line %d: %s", line, g_fail_msg);
}

/* Hard backstop: a hang inside a join cannot be bounded any other way. */
static const char *watchdog_name __attribute__((unused));

static inline void watchdog_fire(int sig)
{
	static const char msg[] = "engine test: watchdog: a test ran past its deadline: ";
	ssize_t w;

	(void)sig;
	w = write(2, msg, sizeof(msg) - 1);
	w = write(2, watchdog_name, strlen(watchdog_name));
	w = write(2, "\n", 1);
	(void)w;
	_exit(1);
}

static inline void watchdog(const char *name, unsigned seconds)
{
	watchdog_name = name;
	signal(SIGALRM, watchdog_fire);
	alarm(seconds);
}

/* ---- runtime helpers ---- */

static inline struct rp_runtime_config base_cfg(unsigned shards)
{
	struct rp_runtime_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.shards = shards;
	cfg.no_pin = true;
	cfg.pool_bytes = POOL_BYTES;
	cfg.bufs = 16;
	return cfg;
}

/* Create and start @cfg: 0, or rp_runtime_create's error (nothing to
 * free); a failed start fails the test. */
static inline int rt_try_start(const struct rp_runtime_config *cfg, struct rp_runtime **out)
{
	int ret;

	atomic_store(&g_fail, 0);
	g_fail_msg[0] = 0;
	*out = NULL;
	ret = rp_runtime_create(cfg, out);
	if (ret)
		return ret;
	assert_non_null(*out);
	assert_int_equal(rp_runtime_start(*out), 0);
	return 0;
}

static inline struct rp_runtime *rt_start(const struct rp_runtime_config *cfg)
{
	struct rp_runtime *rt;

	assert_int_equal(rt_try_start(cfg, &rt), 0);
	return rt;
}

/* Start @cfg with SQPOLL rings. NULL when the kernel refuses an SQPOLL
 * ring here (EPERM: a kernel before 5.11 without CAP_SYS_ADMIN, or a
 * sandbox's seccomp policy); the reason is printed and the caller skips. */
static inline struct rp_runtime *rt_start_sqpoll(struct rp_runtime_config *cfg)
{
	struct rp_runtime *rt;
	int ret;

	cfg->sqpoll = true;
	ret = rt_try_start(cfg, &rt);
	if (ret == -EPERM || ret == -EACCES || ret == -EOPNOTSUPP) {
		print_message("# SKIP: the kernel refused an SQPOLL ring: %s (%s)\n",
			      rp_engine_error(), strerror(-ret));
		return NULL;
	}
	assert_int_equal(ret, 0);
	return rt;
}

/* Wait until *ctr >= want (or a shard-side failure), at most @limit_s. */
static inline bool wait_for(atomic_int *ctr, int want, double limit_s)
{
	double end = now_s() + limit_s;

	while (atomic_load(ctr) < want) {
		if (atomic_load(&g_fail))
			return true; /* reported by check_failures */
		if (now_s() > end)
			return false;
		sleep_ms(1);
	}
	return true;
}

static inline void rt_stop_join(struct rp_runtime *rt)
{
	rp_runtime_stop(rt);
	assert_int_equal(rp_runtime_wait(rt), 0);
}

/* Stop, join, free; then report what the shards saw. */
static inline void rt_end(struct rp_runtime *rt)
{
	rt_stop_join(rt);
	rp_runtime_destroy(rt);
	check_failures();
}

static inline void stats_of(struct rp_runtime *rt, unsigned shard, struct rp_shard_stats *st)
{
	assert_int_equal(rp_runtime_stats(rt, shard, st), 0);
}

/* rt_end, keeping shard 0's stats at the stop in @st: stop, join, read
 * them, free; then report what the shards saw. */
static inline void rt_end_stats(struct rp_runtime *rt, struct rp_shard_stats *st)
{
	rt_stop_join(rt);
	stats_of(rt, 0, st);
	rp_runtime_destroy(rt);
	check_failures();
}

/* A test whose ops its shards' @init starts: start @cfg with @init, wait
 * until *@ctr >= @want (at most WAIT_S), then rt_end, or rt_end_stats
 * into @st unless it is NULL. The test fails when the count did not come
 * in time, checked once the runtime is gone. */
static inline void rt_run_until(struct rp_runtime_config *cfg, rp_shard_init_fn init,
				atomic_int *ctr, int want, struct rp_shard_stats *st)
{
	struct rp_runtime *rt;
	bool ok;

	cfg->init = init;
	rt = rt_start(cfg);
	ok = wait_for(ctr, want, WAIT_S);
	if (st)
		rt_end_stats(rt, st);
	else
		rt_end(rt);
	assert_true(ok);
}

/* ---- fd helpers (control thread) ---- */

static inline int tcp_listener(struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)addr, sizeof(*addr)), 0);
	assert_int_equal(listen(fd, 4096), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)addr, &len), 0);
	return fd;
}

/* A connected client (blocking connect; loopback completes at once). */
static inline int tcp_connect(const struct sockaddr_in *addr)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr))) {
		close(fd);
		return -1;
	}
	return fd;
}

static inline void tcp_pair(int *client, int *server)
{
	struct sockaddr_in addr;
	int l = tcp_listener(&addr);

	*client = tcp_connect(&addr);
	assert_true(*client >= 0);
	*server = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	assert_true(*server >= 0);
	close(l);
}

/* Size one direction of a stream: @sender's SO_SNDBUF and @receiver's
 * SO_RCVBUF, @bytes each (the kernel doubles the value and clamps it to
 * its wmem_max/rmem_max). Small ones make a peer that stops reading fill
 * the path after little data; big ones let a whole send land with nobody
 * reading. */
static inline void sock_bufs(int sender, int receiver, int bytes)
{
	assert_int_equal(setsockopt(sender, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes)), 0);
	assert_int_equal(setsockopt(receiver, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes)), 0);
}

/* Close @fd with a reset (RST, not FIN): SO_LINGER with no linger time;
 * 0, or -1 when the option was refused (@fd is closed either way). */
static inline int close_reset(int fd)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	int ret = setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));

	close(fd);
	return ret;
}

/* A new empty file in @dir, already unlinked: its fd, or -1 (errno set)
 * when @dir has no room for one. */
static inline int tmp_file_in(const char *dir)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/rp_test_engine_XXXXXX", dir);
	fd = mkstemp(path);
	if (fd >= 0)
		unlink(path);
	return fd;
}

static inline int tmp_file(void)
{
	int fd = tmp_file_in("/tmp");

	assert_true(fd >= 0);
	return fd;
}

/* Pages of [@off, @off + @len) of @fd in the page cache (cachestat(2),
 * which reads nothing in; @len 0: to the end), or -1 where the kernel
 * lacks it. */
static inline long cachestat_pages(int fd, uint64_t off, uint64_t len)
{
	struct {
		uint64_t off, len;
	} r = { off, len };
	struct {
		uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
	} cs;

	if (syscall(451 /* __NR_cachestat */, fd, &r, &cs, 0))
		return -1;
	return (long)cs.nr_cache;
}

static inline void fill_pattern(uint8_t *p, size_t len, size_t start)
{
	for (size_t i = 0; i < len; i++) {
		size_t k = start + i;

		p[i] = (uint8_t)(k * 131u + (k >> 9) * 7u + 1u);
	}
}

static inline bool has_feature(struct rp_runtime *rt, const char *what)
{
	return strstr(rp_engine_features(rt), what) != NULL;
}

/* The bytes @sh's pool has out, every class summed (shard thread). */
static inline uint64_t pool_live(struct rp_shard *sh)
{
	struct rp_pool_stats ps;
	uint64_t n = 0;

	rp_pool_stats(rp_shard_pool(sh), &ps);
	for (unsigned c = 0; c < RP_POOL_NCLASS; c++)
		n += ps.class_live_bytes[c];
	return n;
}

/* ---- the program around the tests ---- */

static const char *engine_test_name __attribute__((unused));

static inline int engine_test_setup(void **state)
{
	(void)state;
	watchdog(engine_test_name, reduced() ? 120 : 90);
	return 0;
}

static inline int engine_test_teardown(void **state)
{
	(void)state;
	alarm(0);
	return 0;
}

/* A test with the program's watchdog around it. */
#define T(f) cmocka_unit_test_setup_teardown(f, engine_test_setup, engine_test_teardown)

/* RP_TEST_FILTER=pattern: only the matching tests of the next group run
 * (cmocka's glob on the test's name). */
static inline void test_filter_from_env(void)
{
	if (getenv("RP_TEST_FILTER"))
		cmocka_set_test_filter(getenv("RP_TEST_FILTER"));
}

/* Run the program's group: SIGPIPE ignored (a peer's reset is an error
 * code, never a signal), RP_TEST_FILTER=pattern runs the matching tests. */
static inline int engine_test_run(const char *name, const struct CMUnitTest *tests, size_t n)
{
	engine_test_name = name;
	signal(SIGPIPE, SIG_IGN);
	test_filter_from_env();
	return _cmocka_run_group_tests(name, tests, n, NULL, NULL);
}

#define ENGINE_TEST_RUN(name, tests) engine_test_run(name, tests, sizeof(tests) / sizeof(tests[0]))

#endif
