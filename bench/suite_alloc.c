/* SPDX-License-Identifier: MIT */
/*
 * alloc suite: rp_pool side by side with glibc malloc (same process) and
 * jemalloc (a child of this program with jemalloc in LD_PRELOAD), and the
 * cost of remote frees (allocated on one thread, freed on another).
 *
 * alloc+free rows: 64 blocks of the size stay live; each operation frees
 * block i % 64, allocates a new one into its slot and writes its first
 * byte, as a request path fills in a header, so the allocator always has
 * objects out and reuses what was just freed, as a shard's buffers would,
 * and where it places them shows: blocks whose first lines share cache
 * sets miss where others hit. Unit: ns per free+alloc+touch.
 *
 * jemalloc cannot share a process with glibc malloc, so its rows come from
 * a child: /proc/self/exe re-executed with the hidden first argument
 * "--alloc-child SIZE quick|full" and LD_PRELOAD=libjemalloc.so.2, which
 * times the same body on malloc/free (jemalloc's, checked through its
 * mallctl symbol) and prints its median on stdout. Our side of those rows is
 * sampled just before and just after the child, on the same CPU (the child
 * inherits the pinning).
 *
 * remote free row: thread A allocates 256 B objects and passes them to
 * thread B over an rp_spsc; B frees them (rp_pool_free: a remote free, or
 * glibc free for the baseline). Runs alternate and each side reports its
 * median, as in the ring suite.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ringplane/pool.h>
#include <ringplane/spsc.h>

#include "bench.h"
#include "cleanup.h"

extern char **environ;

#define LIVE 64u
#define POOL_BYTES ((size_t)256 << 20)
#define JEMALLOC_SONAME "libjemalloc.so.2"
#define JEMALLOC_FALLBACK "/usr/lib/x86_64-linux-gnu/" JEMALLOC_SONAME
#define CHILD_TIMEOUT_S 60

/* remote free */
#define RF_SIZE 256u
#define RF_SLOTS 1024u
#define RF_BURST 32u
#define RUNS_QUICK 5u
#define RUNS_FULL 11u
#define RUNS_MAX RUNS_FULL
#define RUN_NS_QUICK 20000000ull
#define RUN_NS_FULL 100000000ull
#define WATCHDOG_S 30
#define NOISY_IQR 0.15 /* as in bench/timing.c */

/* Sampling plan of rp_bench_compare(), for the child and our side of the
 * jemalloc rows. */
#define SAMPLES_MAX 21u

#if defined(__GNUC__)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define always_inline inline __attribute__((always_inline))
#else
#define unlikely(x) (x)
#define always_inline inline
#endif

static const size_t sizes[] = { 64, 2048, 65536, 1u << 20 };
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

static bool noisy(const struct rp_bench_stat3 *s)
{
	return (s->q3 - s->q1) / s->med > NOISY_IQR;
}

/*
 * glibc malloc takes a lock-free path while a process has never had a second
 * thread, and leaves it for good at the first pthread_create. Whether the
 * ring suite ran first would then decide the baseline; a runtime with shard
 * threads is multi-threaded anyway, so every allocator here is measured in
 * that state (the jemalloc child too).
 */
static void *noop_thread(void *arg)
{
	return arg;
}

static int go_multithreaded(void)
{
	pthread_t t;
	int ret = rp_cleanup_pthread_create(&t, NULL, noop_thread, NULL);

	if (ret)
		return -ret;
	pthread_join(t, NULL);
	return 0;
}

/* ---- alloc+free bodies ---- */

struct alloc_ctx {
	struct rp_pool *pool; /* NULL: malloc/free */
	size_t size;
	unsigned next;	      /* the slot the next operation replaces */
	void *live[LIVE];
};

static void pool_body(void *p, uint64_t iters)
{
	struct alloc_ctx *c = p;
	struct rp_pool *pool = c->pool;
	const size_t size = c->size;
	unsigned k = c->next;

	for (uint64_t i = 0; i < iters; i++) {
		char *b;

		rp_pool_free(c->live[k]);
		c->live[k] = b = rp_pool_alloc(pool, size);
		if (b) /* a failure shows in ctx_ok */
			*(volatile char *)b = (char)i;
		k = (k + 1) % LIVE;
	}
	c->next = k;
	rp_bench_sink = (uintptr_t)c->live[0];
}

static void malloc_body(void *p, uint64_t iters)
{
	struct alloc_ctx *c = p;
	const size_t size = c->size;
	unsigned k = c->next;

	for (uint64_t i = 0; i < iters; i++) {
		char *b;

		free(c->live[k]);
		c->live[k] = b = malloc(size);
		if (b)
			*(volatile char *)b = (char)i;
		k = (k + 1) % LIVE;
	}
	c->next = k;
	rp_bench_sink = (uintptr_t)c->live[0];
}

/* Fill the 64 live slots; false when the allocator ran out. */
static bool ctx_fill(struct alloc_ctx *c)
{
	c->next = 0;
	for (unsigned i = 0; i < LIVE; i++) {
		c->live[i] = c->pool ? rp_pool_alloc(c->pool, c->size) : malloc(c->size);
		if (!c->live[i])
			return false;
		*(volatile char *)c->live[i] = 1;
	}
	return true;
}

/* Every slot still holds a block (an allocation that failed while timed
 * left NULL behind). */
static bool ctx_ok(const struct alloc_ctx *c)
{
	for (unsigned i = 0; i < LIVE; i++)
		if (!c->live[i])
			return false;
	return true;
}

static void ctx_drain(struct alloc_ctx *c)
{
	for (unsigned i = 0; i < LIVE; i++) {
		if (c->pool)
			rp_pool_free(c->live[i]);
		else
			free(c->live[i]);
		c->live[i] = NULL;
	}
}

/* ---- a single-side sampler (the child, and our side of the jemalloc
 * rows), with the plan of rp_bench_compare(). ---- */

static uint64_t time_body(rp_bench_fn fn, void *ctx, uint64_t iters)
{
	uint64_t t0 = rp_bench_now_ns();

	fn(ctx, iters);
	return rp_bench_now_ns() - t0;
}

static uint64_t calibrate_body(rp_bench_fn fn, void *ctx, uint64_t target_ns)
{
	uint64_t iters = 1;

	fn(ctx, 1);
	for (;;) {
		uint64_t t = time_body(fn, ctx, iters);

		if (t >= target_ns / 8 || iters >= (1ull << 40)) {
			double n = (double)iters * (double)target_ns / (double)(t ? t : 1);

			return n < 1.0 ? 1 : (uint64_t)n;
		}
		iters *= t < 1000 ? 16 : 2;
	}
}

/* Appends rp_bench_samples(opts) samples (ns per op) to @s at @n. */
static void sample_body(const struct rp_bench_opts *opts, rp_bench_fn fn, void *ctx, uint64_t iters,
			double *s, unsigned *n)
{
	unsigned k = rp_bench_samples(opts);

	for (unsigned i = 0; i < k; i++)
		s[(*n)++] = (double)time_body(fn, ctx, iters) / (double)iters;
}

static uint64_t sample_target_ns(const struct rp_bench_opts *opts)
{
	return (uint64_t)(rp_bench_sample_ms(opts) * 1e6);
}

/* ---- the jemalloc child ---- */

/*
 * ringplane-bench --alloc-child SIZE quick|full: time malloc_body at SIZE
 * and print "ns Q1 Q3 SAMPLES ALLOCATOR" on one line. ALLOCATOR is
 * "jemalloc-<version>" when jemalloc's mallctl answers in this process,
 * "libc" otherwise. Exit 0, or 2 on bad arguments or no memory.
 */
int rp_bench_alloc_child(int argc, char **argv)
{
	struct rp_bench_opts opts = { 0 };
	struct alloc_ctx c = { 0 };
	double s[SAMPLES_MAX];
	unsigned n = 0;
	char alloc_name[96] = "libc";
	struct rp_bench_stat3 st;
	uint64_t iters;
	char *end;
	int (*mallctl)(const char *, void *, size_t *, void *, size_t);

	if (argc != 4)
		return 2;
	c.size = strtoul(argv[2], &end, 10);
	if (*end || c.size == 0 || c.size > RP_POOL_MAX_CLASS)
		return 2;
	if (!strcmp(argv[3], "quick"))
		opts.quick = true;
	else if (strcmp(argv[3], "full"))
		return 2;

	/* Which malloc answers here: jemalloc exports mallctl, glibc does not. */
	*(void **)&mallctl = dlsym(RTLD_DEFAULT, "mallctl");
	if (mallctl) {
		const char *ver = NULL;
		size_t len = sizeof(ver);

		if (!mallctl("version", &ver, &len, NULL, 0) && ver) {
			snprintf(alloc_name, sizeof(alloc_name), "jemalloc-%s", ver);
			/* one token: "5.3.0-0-g54eaed1d8b56b1aa528be3bdd1877e59c56fa90c" */
			for (char *p = alloc_name; *p; p++)
				if (*p == ' ')
					*p = '_';
		} else {
			snprintf(alloc_name, sizeof(alloc_name), "jemalloc");
		}
	}
	if (go_multithreaded() || !ctx_fill(&c))
		return 2;
	iters = calibrate_body(malloc_body, &c, sample_target_ns(&opts));
	sample_body(&opts, malloc_body, &c, iters, s, &n);
	if (!ctx_ok(&c))
		return 2;
	ctx_drain(&c);
	st = rp_bench_summarize(s, n);
	printf("%.6f %.6f %.6f %u %s\n", st.med, st.q1, st.q3, n, alloc_name);
	return fflush(stdout) ? 2 : 0;
}

/* Where jemalloc is looked for: pkg-config's libdir at build time, then
 * Debian's amd64 path. */
static const char *const jemalloc_cand[] = {
#ifdef RP_JEMALLOC_LIBDIR
	RP_JEMALLOC_LIBDIR "/" JEMALLOC_SONAME,
#endif
	JEMALLOC_FALLBACK,
};
#define NJEMALLOC_CAND (sizeof(jemalloc_cand) / sizeof(jemalloc_cand[0]))

/* The jemalloc library to preload, or NULL. */
static const char *jemalloc_path(void)
{
	for (size_t i = 0; i < NJEMALLOC_CAND; i++)
		if (!access(jemalloc_cand[i], R_OK))
			return jemalloc_cand[i];
	return NULL;
}

/* The environment with LD_PRELOAD replaced by @preload; NULL on ENOMEM. */
static char **child_env(const char *preload, char **buf)
{
	size_t n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + 2, sizeof(*env));
	*buf = malloc(strlen("LD_PRELOAD=") + strlen(preload) + 1);
	if (!env || !*buf) {
		free(env);
		free(*buf);
		return NULL;
	}
	sprintf(*buf, "LD_PRELOAD=%s", preload);
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", 11))
			env[k++] = environ[i];
	env[k++] = *buf;
	env[k] = NULL;
	return env;
}

/*
 * Run the child at @size with @preload; fills @out (ns per pair) and
 * @name (what malloc the child found). Returns 0 or -errno, having printed
 * why.
 */
static int run_child(const struct rp_bench_opts *opts, const char *preload, size_t size,
		     struct rp_bench_stat3 *out, unsigned *samples, char *name, size_t name_size)
{
	char size_s[32], buf[512], fmt[32], *envbuf = NULL;
	char *argv[] = { "ringplane-bench", "--alloc-child", size_s,
			 opts->quick ? "quick" : "full", NULL };
	char **env = NULL;
	int pfd[2] = { -1, -1 }, status, ret;
	size_t len = 0;
	bool timed_out = false;
	pid_t pid;

	snprintf(size_s, sizeof(size_s), "%zu", size);
	env = child_env(preload, &envbuf);
	if (!env)
		return -ENOMEM;
	if (pipe2(pfd, O_CLOEXEC)) {
		ret = -errno;
		goto out;
	}
	fflush(NULL);
	/* not posix_spawn: between its return and a registration here a
	 * SIGINT would leave the child running (rp_cleanup_fork) */
	pid = rp_cleanup_fork();
	if (pid == 0) {
		if (dup2(pfd[1], STDOUT_FILENO) >= 0)
			execve("/proc/self/exe", argv, env);
		_exit(127);
	}
	close(pfd[1]);
	if (pid < 0) {
		ret = pid;
		fprintf(stderr, "alloc: could not start /proc/self/exe: %s\n", strerror(-ret));
		goto out;
	}

	uint64_t deadline = rp_bench_now_ns() + CHILD_TIMEOUT_S * 1000000000ull;

	for (;;) {
		uint64_t now = rp_bench_now_ns();
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		ssize_t r;
		int k;

		if (now >= deadline) {
			timed_out = true;
			break;
		}
		k = poll(&p, 1, (int)((deadline - now) / 1000000 + 1));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			timed_out = k == 0;
			break;
		}
		if (len + 1 >= sizeof(buf))
			break;
		r = read(pfd[0], buf + len, sizeof(buf) - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	buf[len] = '\0';
	if (timed_out)
		kill(-pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			ret = -errno;
			rp_cleanup_del_pgid(pid);
			goto out;
		}
	}
	rp_cleanup_del_pgid(pid);
	if (timed_out) {
		fprintf(stderr, "alloc: the jemalloc child at %zu B ran past %d s\n", size,
			CHILD_TIMEOUT_S);
		ret = -ETIMEDOUT;
		goto out;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "alloc: the jemalloc child at %zu B %s %d\n", size,
			WIFEXITED(status) ? "exited with" : "was killed by signal",
			WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		ret = -ECHILD;
		goto out;
	}
	snprintf(fmt, sizeof(fmt), "%%lf %%lf %%lf %%u %%%zus", name_size - 1);
	if (sscanf(buf, fmt, &out->med, &out->q1, &out->q3, samples, name) != 5) {
		fprintf(stderr, "alloc: unreadable output from the jemalloc child: \"%s\"\n", buf);
		ret = -EPROTO;
		goto out;
	}
	ret = 0;
out:
	if (pfd[0] >= 0)
		close(pfd[0]);
	free(env);
	free(envbuf);
	return ret;
}

/* ---- alloc+free rows ---- */

static int alloc_rows(const struct rp_bench_opts *opts, struct rp_pool *pool)
{
	const char *jem = jemalloc_path();
	struct rp_pool_stats st0, st1;
	bool jem_ok = jem != NULL;
	char sz[32], name[64];

	if (!jem_ok) {
		char tried[512] = "";
		size_t len = 0;

		for (size_t i = 0; i < NJEMALLOC_CAND; i++) {
			bool dup = false;

			for (size_t k = 0; k < i; k++)
				dup |= !strcmp(jemalloc_cand[k], jemalloc_cand[i]);
			if (!dup && len < sizeof(tried))
				len += (size_t)snprintf(tried + len, sizeof(tried) - len, "%s%s",
							len ? ", " : "", jemalloc_cand[i]);
		}
		rp_report_skip("alloc+free vs jemalloc", "not found (tried %s; install libjemalloc2)",
			       tried);
	}

	for (size_t i = 0; i < NSIZES; i++) {
		struct alloc_ctx o = { .pool = pool, .size = sizes[i] };
		struct alloc_ctx b = { .pool = NULL, .size = sizes[i] };
		struct rp_bench_timing t;

		rp_bench_size_name(sz, sizeof(sz), sizes[i]);
		rp_pool_stats(pool, &st0);
		if (!ctx_fill(&o) || !ctx_fill(&b)) {
			fprintf(stderr, "alloc: could not allocate %u blocks of %zu B to start with\n",
				LIVE, sizes[i]);
			ctx_drain(&o);
			ctx_drain(&b);
			return -ENOMEM;
		}
		snprintf(name, sizeof(name), "alloc+free %s", sz);
		rp_bench_compare(opts, pool_body, &o, malloc_body, &b, &t);
		if (!ctx_ok(&o) || !ctx_ok(&b)) {
			fprintf(stderr, "alloc: %s ran out of memory while timed at %zu B\n",
				ctx_ok(&o) ? "malloc" : "rp_pool_alloc", sizes[i]);
			ctx_drain(&o);
			ctx_drain(&b);
			return -ENOMEM;
		}
		rp_bench_row_ns(name, &t, "glibc malloc");
		ctx_drain(&b);

		if (jem_ok) {
			double so[2 * SAMPLES_MAX];
			unsigned n = 0, cn = 0;
			struct rp_bench_stat3 js, os;
			char alloc_name[96];
			uint64_t iters;
			int ret;

			/* Ours just before and just after the child. */
			iters = calibrate_body(pool_body, &o, sample_target_ns(opts));
			sample_body(opts, pool_body, &o, iters, so, &n);
			ret = run_child(opts, jem, sizes[i], &js, &cn, alloc_name, sizeof(alloc_name));
			sample_body(opts, pool_body, &o, iters, so, &n);
			if (!ret && strncmp(alloc_name, "jemalloc", 8)) {
				rp_report_skip("alloc+free vs jemalloc",
					       "with LD_PRELOAD=%s the child still ran %s's malloc",
					       jem, alloc_name);
				jem_ok = false;
			} else if (ret) {
				rp_report_skip("alloc+free vs jemalloc",
					       "the child process failed (%s)", strerror(-ret));
				jem_ok = false;
			} else {
				os = rp_bench_summarize(so, n);
				snprintf(name, sizeof(name), "alloc+free jemalloc %s", sz);
				if (!rp_report_row(name, "ns", os.med, js.med,
						   "jemalloc (LD_PRELOAD child)", false)) {
					if (i == 0)
						rp_report_note("jemalloc child: %s, LD_PRELOAD=%s, %u samples",
							       alloc_name, jem, cn);
					if (noisy(&os) || noisy(&js))
						rp_report_note("%s: noisy samples (interquartile range ringplane %.0f%%, jemalloc %.0f%% of median); rerun on a quiet host",
							       name,
							       100.0 * (os.q3 - os.q1) / os.med,
							       100.0 * (js.q3 - js.q1) / js.med);
				}
			}
		}
		if (!ctx_ok(&o)) {
			fprintf(stderr, "alloc: rp_pool_alloc ran out while timed at %zu B\n", sizes[i]);
			ctx_drain(&o);
			return -ENOMEM;
		}
		ctx_drain(&o);
		rp_pool_stats(pool, &st1);
		if (st1.failures != st0.failures) {
			fprintf(stderr, "alloc: rp_pool_alloc failed %llu times at %zu B\n",
				(unsigned long long)(st1.failures - st0.failures), sizes[i]);
			return -ENOMEM;
		}
	}
	return 0;
}

/* ---- class rows: each size against 64 B, same pool, alternating ---- */

/*
 * What a request path pays for the size it asks for: the alloc+free+touch
 * body at each size against the same body at 64 B, in one pool, samples
 * alternating (so a noisy neighbour hits both sides alike). The baseline
 * is rp_pool itself: a ratio below 1 says the size costs more than 64 B
 * (1/ratio times), which cache sets shared by the live blocks' first
 * lines show as. 16 KB is the engine's provided-buffer size.
 */
static const size_t class_sizes[] = { 2048, 16384, 65536, 1u << 20 };
#define NCLASS_SIZES (sizeof(class_sizes) / sizeof(class_sizes[0]))

static int class_rows(const struct rp_bench_opts *opts, struct rp_pool *pool)
{
	char sz[32], name[64];

	for (size_t i = 0; i < NCLASS_SIZES; i++) {
		struct alloc_ctx o = { .pool = pool, .size = class_sizes[i] };
		struct alloc_ctx b = { .pool = pool, .size = 64 };
		struct rp_bench_timing t;
		bool ok;
		int ret;

		if (!ctx_fill(&o) || !ctx_fill(&b)) {
			ctx_drain(&o);
			ctx_drain(&b);
			fprintf(stderr, "alloc: could not allocate %u blocks of %zu B and 64 B\n", LIVE,
				class_sizes[i]);
			return -ENOMEM;
		}
		rp_bench_compare(opts, pool_body, &o, pool_body, &b, &t);
		ok = ctx_ok(&o) && ctx_ok(&b);
		ctx_drain(&o);
		ctx_drain(&b);
		if (!ok) {
			fprintf(stderr, "alloc: rp_pool_alloc ran out while timed at %zu B\n",
				class_sizes[i]);
			return -ENOMEM;
		}
		rp_bench_size_name(sz, sizeof(sz), class_sizes[i]);
		snprintf(name, sizeof(name), "class %s vs 64B", sz);
		/* Out of the geomean and win count: ringplane against itself. */
		ret = rp_report_row_strawman(name, "ns", t.ours_ns, t.base_ns, "rp_pool at 64 B",
					     false,
					     "the baseline is rp_pool at 64 B: the spread between sizes, not a win over another allocator");
		if (ret)
			return ret;
		if ((t.ours_q3_ns - t.ours_q1_ns) / t.ours_ns > NOISY_IQR ||
		    (t.base_q3_ns - t.base_q1_ns) / t.base_ns > NOISY_IQR)
			rp_report_note("%s: noisy samples (interquartile range %.0f%%, 64 B %.0f%% of median); rerun on a quiet host",
				       name, 100.0 * (t.ours_q3_ns - t.ours_q1_ns) / t.ours_ns,
				       100.0 * (t.base_q3_ns - t.base_q1_ns) / t.base_ns);
	}
	return 0;
}

/* ---- remote free ---- */

struct rf_run {
	bool ours;
	struct rp_pool *pool;
	struct rp_spsc *ring;
	int cpu[2];
	uint64_t count;
	_Alignas(64) _Atomic unsigned ready;
	_Atomic bool halt;
	_Alignas(64) uint64_t t0;
	_Alignas(64) uint64_t t1;
	uint64_t got;
	uint64_t bad_at; /* sequence number + 1 of a wrong object, 0: none */
	bool oom;
	int err;
};

static inline bool rf_halted(struct rf_run *r)
{
	return atomic_load_explicit(&r->halt, memory_order_relaxed);
}

/* A: allocate 32, stamp each with its sequence number, pass them to B. */
static always_inline void rf_produce(struct rf_run *r, bool ours)
{
	const uint64_t n = r->count; /* a multiple of RF_BURST */
	void *items[RF_BURST];

	for (uint64_t seq = 0; seq < n; seq += RF_BURST) {
		unsigned done = 0;

		for (unsigned k = 0; k < RF_BURST; k++) {
			void *o = ours ? rp_pool_alloc(r->pool, RF_SIZE) : malloc(RF_SIZE);

			if (unlikely(!o)) {
				r->oom = true;
				atomic_store_explicit(&r->halt, true, memory_order_relaxed);
				for (unsigned j = 0; j < k; j++)
					ours ? rp_pool_free(items[j]) : free(items[j]);
				return;
			}
			*(uint64_t *)o = seq + k;
			items[k] = o;
		}
		while (done < RF_BURST) {
			unsigned d = rp_spsc_push_burst(r->ring, items + done, RF_BURST - done);

			if (!d) {
				if (rf_halted(r))
					return;
				rp_bench_cpu_relax();
			}
			done += d;
		}
	}
}

/* B: take what is there, check each stamp, free. */
static always_inline void rf_consume(struct rf_run *r, bool ours)
{
	const uint64_t n = r->count;
	uint64_t next = 0;
	void *items[RF_BURST];

	while (next < n) {
		unsigned m = rp_spsc_pop_burst(r->ring, items, RF_BURST);

		if (!m) {
			if (rf_halted(r))
				break;
			rp_bench_cpu_relax();
			continue;
		}
		for (unsigned k = 0; k < m; k++) {
			if (unlikely(*(uint64_t *)items[k] != next)) {
				r->bad_at = next + 1;
				atomic_store_explicit(&r->halt, true, memory_order_relaxed);
				goto out;
			}
			if (ours)
				rp_pool_free(items[k]);
			else
				free(items[k]);
			next++;
		}
	}
out:
	r->t1 = rp_bench_now_ns();
	r->got = next;
}

static void rf_produce_pool(struct rf_run *r)
{
	rf_produce(r, true);
}

static void rf_produce_malloc(struct rf_run *r)
{
	rf_produce(r, false);
}

static void rf_consume_pool(struct rf_run *r)
{
	rf_consume(r, true);
}

static void rf_consume_malloc(struct rf_run *r)
{
	rf_consume(r, false);
}

struct rf_arg {
	struct rf_run *r;
	int which; /* 0: A (allocates), 1: B (frees) */
};

static void *rf_main(void *p)
{
	struct rf_arg *a = p;
	struct rf_run *r = a->r;
	int ret;

	ret = rp_bench_pin_self(r->cpu[a->which]);
	if (ret) {
		r->err = ret;
		atomic_store(&r->halt, true);
		return NULL;
	}
	if (a->which == 0 && r->ours)
		rp_pool_adopt(r->pool); /* A allocates: A owns the pool this run */
	atomic_fetch_add_explicit(&r->ready, 1, memory_order_acq_rel);
	while (atomic_load_explicit(&r->ready, memory_order_acquire) < 2) {
		if (rf_halted(r))
			return NULL;
		rp_bench_cpu_relax();
	}
	if (a->which == 0) {
		r->t0 = rp_bench_now_ns();
		(r->ours ? rf_produce_pool : rf_produce_malloc)(r);
	} else {
		(r->ours ? rf_consume_pool : rf_consume_malloc)(r);
	}
	return NULL;
}

static const char *rf_name(const struct rf_run *r)
{
	return r->ours ? "rp_pool" : "malloc";
}

static void rf_halt(void *p)
{
	struct rf_run *r = p;

	atomic_store(&r->halt, true);
}

static int rf_once(struct rf_run *r, uint64_t count, uint64_t *ns)
{
	struct rf_arg args[2] = { { r, 0 }, { r, 1 } };
	void *(*const fns[2])(void *) = { rf_main, rf_main };
	void *const argp[2] = { &args[0], &args[1] };
	char what[64];
	int ret;

	r->count = count;
	atomic_store(&r->ready, 0);
	atomic_store(&r->halt, false);
	r->t0 = r->t1 = r->got = r->bad_at = 0;
	r->oom = false;
	r->err = 0;
	snprintf(what, sizeof(what), "alloc: remote free run (%s)", rf_name(r));
	ret = rp_bench_run_pair(fns, argp, WATCHDOG_S, rf_halt, r, what);
	/* Whatever is left in the ring (a stopped run) goes back. */
	for (void *p; (p = rp_spsc_pop(r->ring));)
		r->ours ? rp_pool_free(p) : free(p);
	if (ret)
		return ret;
	if (r->err) {
		fprintf(stderr, "alloc: could not pin a thread to cpu %d or %d: %s\n", r->cpu[0],
			r->cpu[1], strerror(-r->err));
		return r->err;
	}
	if (r->oom) {
		fprintf(stderr, "alloc: %s ran out of memory in the remote free run\n", rf_name(r));
		return -ENOMEM;
	}
	if (r->bad_at) {
		fprintf(stderr, "alloc: remote free (%s): object %llu came out of order\n",
			rf_name(r), (unsigned long long)(r->bad_at - 1));
		return -EBADMSG;
	}
	if (r->got != count) {
		fprintf(stderr, "alloc: remote free (%s): %llu of %llu objects arrived\n", rf_name(r),
			(unsigned long long)r->got, (unsigned long long)count);
		return -EBADMSG;
	}
	*ns = r->t1 > r->t0 ? r->t1 - r->t0 : 1;
	return 0;
}

static int rf_calibrate(struct rf_run *r, uint64_t target_ns, uint64_t *out)
{
	uint64_t n = 1u << 14, t;
	int ret;

	for (;;) {
		ret = rf_once(r, n, &t);
		if (ret)
			return ret;
		if (t >= target_ns / 8 || n >= (1ull << 34)) {
			uint64_t k = (uint64_t)((double)n * (double)target_ns / (double)t);

			k = k / RF_BURST * RF_BURST;
			*out = k < RF_BURST ? RF_BURST : k;
			return 0;
		}
		double f = (double)(target_ns / 4) / (double)(t ? t : 1);

		n *= f < 2.0 ? 2 : f > 16.0 ? 16 : (uint64_t)f;
	}
}

static int remote_free_row(const struct rp_bench_opts *opts, struct rp_pool *pool)
{
	unsigned runs = opts->quick ? RUNS_QUICK : RUNS_FULL;
	uint64_t target = opts->quick ? RUN_NS_QUICK : RUN_NS_FULL;
	struct rf_run *o = NULL, *b = NULL;
	double so[RUNS_MAX], sb[RUNS_MAX];
	struct rp_pool_stats st0, st1;
	uint64_t n_o = 0, n_b = 0, t;
	struct rp_bench_stat3 os, bs;
	int cpu[2] = { -1, -1 }, ret;

	if (rp_bench_pick_cpus(cpu)) {
		rp_report_skip("remote free", "needs two CPUs this process may run on (%d online)",
			       get_nprocs());
		return 0;
	}
	o = aligned_alloc(64, (sizeof(*o) + 63) / 64 * 64);
	b = aligned_alloc(64, (sizeof(*b) + 63) / 64 * 64);
	if (!o || !b) {
		ret = -ENOMEM;
		goto out;
	}
	memset(o, 0, sizeof(*o));
	memset(b, 0, sizeof(*b));
	o->ours = true;
	o->pool = pool;
	o->ring = rp_spsc_create(RF_SLOTS);
	b->ring = rp_spsc_create(RF_SLOTS);
	if (!o->ring || !b->ring) {
		ret = -ENOMEM;
		goto out;
	}
	memcpy(o->cpu, cpu, sizeof(cpu));
	memcpy(b->cpu, cpu, sizeof(cpu));

	rp_pool_stats(pool, &st0);
	ret = rf_calibrate(o, target, &n_o);
	if (!ret)
		ret = rf_calibrate(b, target, &n_b);
	for (unsigned i = 0; !ret && i < runs; i++) {
		ret = rf_once(o, n_o, &t);
		so[i] = (double)n_o * 1e3 / (double)t;
		if (!ret)
			ret = rf_once(b, n_b, &t);
		sb[i] = (double)n_b * 1e3 / (double)t;
	}
	/* The bench thread owns the pool again; take back what B freed last. */
	rp_pool_adopt(pool);
	rp_pool_reclaim(pool);
	if (ret)
		goto out;
	rp_pool_stats(pool, &st1);
	os = rp_bench_summarize(so, runs);
	bs = rp_bench_summarize(sb, runs);
	ret = rp_report_row("remote free 256B", "Mops/s", os.med, bs.med, "glibc malloc/free", true);
	if (ret)
		goto out;
	rp_report_note("remote free: A (cpu %d) allocates %u B objects and passes them over a %u-slot rp_spsc in bursts of %u to B (cpu %d), which frees them; %llu objects per run (ringplane), %llu (malloc), %u runs per side alternating, median",
		       cpu[0], RF_SIZE, RF_SLOTS, RF_BURST, cpu[1], (unsigned long long)n_o,
		       (unsigned long long)n_b, runs);
	rp_report_note("remote free: rp_pool counted %llu remote frees over all runs (calibration included)",
		       (unsigned long long)(st1.remote_frees - st0.remote_frees));
	if (noisy(&os) || noisy(&bs))
		rp_report_note("remote free 256B: noisy runs (interquartile range ringplane %.0f%%, baseline %.0f%% of median); rerun on a quiet host",
			       100.0 * (os.q3 - os.q1) / os.med, 100.0 * (bs.q3 - bs.q1) / bs.med);
out:
	if (ret == -ENOMEM)
		fprintf(stderr, "alloc: out of memory for the remote free run\n");
	if (o)
		rp_spsc_destroy(o->ring);
	if (b)
		rp_spsc_destroy(b->ring);
	free(o);
	free(b);
	return ret;
}

int rp_bench_suite_alloc(const struct rp_bench_opts *opts)
{
	struct rp_pool_stats st;
	struct rp_pool *pool;
	int ret;

	ret = go_multithreaded();
	if (ret) {
		fprintf(stderr, "alloc: pthread_create: %s\n", strerror(-ret));
		return ret;
	}
	pool = rp_pool_create(-1, POOL_BYTES, RP_POOL_HUGE);
	if (!pool) {
		ret = -errno;
		fprintf(stderr, "alloc: rp_pool_create(%zu MB, RP_POOL_HUGE): %s\n",
			POOL_BYTES >> 20, strerror(errno));
		return ret ? ret : -ENOMEM;
	}
	rp_pool_stats(pool, &st);
	rp_report_note("rp_pool: %zu MB arena, RP_POOL_HUGE, pages obtained: %s; created and used on the bench thread",
		       st.arena_bytes >> 20, rp_pool_page_kind_name(st.page_kind));
	rp_report_note("alloc+free: %u blocks stay live; each op frees block i%%%u, allocates a new one into its slot and writes its first byte; ns per op",
		       LIVE, LIVE);
	rp_report_note("malloc is measured in a process that has started a thread (glibc then locks its arenas; a runtime with shard threads always has)");

	ret = alloc_rows(opts, pool);
	if (!ret) {
		rp_report_note("class rows: the same alloc+free+touch body at each size against 64 B in the same pool, alternating; ratio = 64 B time / size time (below 1: the size costs more)");
		ret = class_rows(opts, pool);
	}
	if (!ret)
		ret = remote_free_row(opts, pool);
	rp_pool_destroy(pool);
	return ret;
}
