/* SPDX-License-Identifier: MIT */
/*
 * The side-by-side timer. This host has two cores shared with other work,
 * so a single long run of each side would let a burst of noise, or a clock
 * change, land on one side only. Instead each side is cut into short
 * samples that alternate (ours, baseline, ours, baseline, ...) and each side
 * reports its median: an outlier sample costs one of 7 or 21, not the
 * result.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <time.h>

#include "bench.h"
#include "cleanup.h"

volatile uint64_t rp_bench_sink;

/* One sample: ~2 ms quick, ~10 ms otherwise (long enough that the 20-30 ns
 * clock_gettime() around it is noise, short enough to alternate often). */
#define SAMPLE_NS_QUICK 2000000ull
#define SAMPLE_NS_FULL 10000000ull
#define SAMPLES_QUICK 7u
#define SAMPLES_FULL 21u
#define SAMPLES_MAX SAMPLES_FULL

uint64_t rp_bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t run_timed(rp_bench_fn fn, void *ctx, uint64_t iters)
{
	uint64_t t0 = rp_bench_now_ns();

	fn(ctx, iters);
	return rp_bench_now_ns() - t0;
}

/* Iterations for one sample of about @target_ns. */
static uint64_t calibrate(rp_bench_fn fn, void *ctx, uint64_t target_ns)
{
	uint64_t iters = 1;

	/* First call outside the clock: page faults on fresh buffers, lazy
	 * kernel dispatch (ISA-L's and ours resolve on first use). */
	fn(ctx, 1);
	for (;;) {
		uint64_t t = run_timed(fn, ctx, iters);

		/* An eighth of the target is long enough to extrapolate from. */
		if (t >= target_ns / 8 || iters >= (1ull << 40)) {
			double n = (double)iters * (double)target_ns / (double)(t ? t : 1);

			return n < 1.0 ? 1 : (uint64_t)n;
		}
		if (t < 1000) {
			iters *= 16; /* below the clock's useful resolution */
		} else {
			/* aim at a quarter of the target, at least doubling */
			double next = (double)iters * (double)(target_ns / 4) / (double)t;

			iters = next > 2.0 * (double)iters ? (uint64_t)next : 2 * iters;
		}
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

struct rp_bench_stat3 rp_bench_summarize(double *s, unsigned n)
{
	struct rp_bench_stat3 st;

	qsort(s, n, sizeof(*s), cmp_double);
	st.med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2.0;
	st.q1 = s[n / 4];
	st.q3 = s[(3 * n) / 4];
	return st;
}

int rp_bench_run_pair(void *(*const fn[2])(void *), void *const arg[2], unsigned timeout_s,
		      void (*halt)(void *), void *halt_arg, const char *what)
{
	pthread_t th[2];
	int started = 0, ret = 0;

	for (; started < 2; started++) {
		ret = rp_cleanup_pthread_create(&th[started], NULL, fn[started], arg[started]);
		if (ret) {
			fprintf(stderr, "%s: pthread_create: %s\n", what, strerror(ret));
			halt(halt_arg);
			ret = -ret;
			break;
		}
	}
	for (int i = 0; i < started; i++) {
		struct timespec dl;

		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += timeout_s;
		if (pthread_timedjoin_np(th[i], NULL, &dl) == ETIMEDOUT) {
			fprintf(stderr, "%s still going after %u s; stopping it\n", what, timeout_s);
			halt(halt_arg);
			pthread_join(th[i], NULL);
			ret = ret ? ret : -ETIMEDOUT;
		}
	}
	return ret;
}

int rp_bench_pin_self(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return -pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* The CPUs the caller let us run on (taskset), read before main pins us. */
static cpu_set_t allowed;
static bool allowed_known;

void rp_bench_cpus_init(void)
{
	allowed_known = !sched_getaffinity(0, sizeof(allowed), &allowed);
}

bool rp_bench_cpu_allowed(int cpu)
{
	return cpu >= 0 && cpu < CPU_SETSIZE && (!allowed_known || CPU_ISSET(cpu, &allowed));
}

int rp_bench_pick_cpus(int cpu[2])
{
	int here = sched_getcpu(), nconf = get_nprocs_conf();
	cpu_set_t orig, one;

	if (here < 0 || get_nprocs() < 2)
		return -ENODEV;
	if (sched_getaffinity(0, sizeof(orig), &orig))
		return -errno;
	cpu[0] = here;
	cpu[1] = -1;
	for (int c = 0; c < nconf && c < CPU_SETSIZE && cpu[1] < 0; c++) {
		if (c == here || !rp_bench_cpu_allowed(c))
			continue;
		CPU_ZERO(&one);
		CPU_SET(c, &one);
		if (!sched_setaffinity(0, sizeof(one), &one))
			cpu[1] = c;
	}
	sched_setaffinity(0, sizeof(orig), &orig);
	return cpu[1] < 0 ? -ENODEV : 0;
}

int rp_bench_usable_cpus(int *cpus, int max)
{
	int nconf = get_nprocs_conf(), n = 0;
	cpu_set_t orig, one;

	if (sched_getaffinity(0, sizeof(orig), &orig))
		return -errno;
	for (int c = 0; c < nconf && c < CPU_SETSIZE && n < max; c++) {
		if (!rp_bench_cpu_allowed(c))
			continue;
		CPU_ZERO(&one);
		CPU_SET(c, &one);
		if (!sched_setaffinity(0, sizeof(one), &one))
			cpus[n++] = c;
	}
	sched_setaffinity(0, sizeof(orig), &orig);
	return n;
}

static void cpu_list(char *buf, size_t bufsz, const int *cpus, unsigned n)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < n && off < bufsz; i++)
		off += (size_t)snprintf(buf + off, bufsz - off, "%s%d", i ? "," : "", cpus[i]);
}

int rp_bench_place(struct rp_bench_place *pl, unsigned groups)
{
	const char *v = getenv("RP_BENCH_SHARDS");
	int cpus[3 * RP_BENCH_MAX_SHARDS + 1], here = sched_getcpu(), got, k = 0;
	int *dst[3] = { pl->srv, pl->up, pl->cli };
	char *end = NULL;
	unsigned long n;

	memset(pl, 0, sizeof(*pl));
	if (!v || !*v)
		return 0;
	n = strtoul(v, &end, 10);
	if (!end || *end || n < 1 || n > RP_BENCH_MAX_SHARDS || groups < 2 || groups > 3)
		return -EINVAL;
	got = rp_bench_usable_cpus(cpus, (int)(groups * n) + 1);
	if (got < 0)
		return got;
	/* the calling thread's CPU is left to the bench itself */
	for (int i = 0; i < got; i++)
		if (cpus[i] != here)
			cpus[k++] = cpus[i];
	if (k < (int)(groups * n))
		return -ENODEV;
	pl->n = (unsigned)n;
	for (unsigned g = 0; g < 3; g++) {
		/* two groups: servers, then load; up (unused there) = servers */
		static const unsigned from[2][3] = { { 0, 0, 1 }, { 0, 1, 2 } };

		memcpy(dst[g], cpus + from[groups - 2][g] * n, n * sizeof(int));
	}
	cpu_list(pl->srv_list, sizeof(pl->srv_list), pl->srv, pl->n);
	cpu_list(pl->up_list, sizeof(pl->up_list), pl->up, pl->n);
	cpu_list(pl->cli_list, sizeof(pl->cli_list), pl->cli, pl->n);
	return 0;
}

void rp_bench_nginx_affinity(char *buf, size_t bufsz, const int *cpus, unsigned n)
{
	int top = 0;
	size_t off = 0;

	for (unsigned i = 0; i < n; i++)
		top = cpus[i] > top ? cpus[i] : top;
	buf[0] = '\0';
	for (unsigned i = 0; i < n && off < bufsz; i++) {
		off += (size_t)snprintf(buf + off, bufsz - off, "%s", i ? " " : "");
		for (int b = top; b >= 0 && off < bufsz; b--)
			off += (size_t)snprintf(buf + off, bufsz - off, "%c", b == cpus[i] ? '1' : '0');
	}
}

void rp_bench_size_name(char *buf, size_t bufsz, size_t n)
{
	if (n >= (1u << 20) && n % (1u << 20) == 0)
		snprintf(buf, bufsz, "%zuMB", n >> 20);
	else if (n >= 1024 && n % 1024 == 0)
		snprintf(buf, bufsz, "%zuKB", n >> 10);
	else
		snprintf(buf, bufsz, "%zuB", n);
}

unsigned rp_bench_samples(const struct rp_bench_opts *opts)
{
	return opts->quick ? SAMPLES_QUICK : SAMPLES_FULL;
}

double rp_bench_sample_ms(const struct rp_bench_opts *opts)
{
	return (double)(opts->quick ? SAMPLE_NS_QUICK : SAMPLE_NS_FULL) / 1e6;
}

void rp_bench_compare(const struct rp_bench_opts *opts, rp_bench_fn ours, void *ours_ctx,
		      rp_bench_fn base, void *base_ctx, struct rp_bench_timing *out)
{
	uint64_t target = opts->quick ? SAMPLE_NS_QUICK : SAMPLE_NS_FULL;
	unsigned n = rp_bench_samples(opts);
	double so[SAMPLES_MAX], sb[SAMPLES_MAX];
	uint64_t it_o = calibrate(ours, ours_ctx, target);
	uint64_t it_b = calibrate(base, base_ctx, target);

	for (unsigned i = 0; i < n; i++) {
		so[i] = (double)run_timed(ours, ours_ctx, it_o) / (double)it_o;
		sb[i] = (double)run_timed(base, base_ctx, it_b) / (double)it_b;
	}
	struct rp_bench_stat3 o = rp_bench_summarize(so, n), b = rp_bench_summarize(sb, n);

	out->ours_ns = o.med;
	out->ours_q1_ns = o.q1;
	out->ours_q3_ns = o.q3;
	out->base_ns = b.med;
	out->base_q1_ns = b.q1;
	out->base_q3_ns = b.q3;
	out->samples = n;
}

/* Interquartile range of a side's samples, relative to its median, above
 * which a row is flagged. The middle half rather than min..max: one sample
 * hit by a neighbour's burst is what the median is there to absorb. */
#define NOISY_IQR 0.15

static void note_noise(const char *name, const struct rp_bench_timing *t)
{
	double so = (t->ours_q3_ns - t->ours_q1_ns) / t->ours_ns;
	double sb = (t->base_q3_ns - t->base_q1_ns) / t->base_ns;

	if (so > NOISY_IQR || sb > NOISY_IQR)
		rp_report_note("%s: noisy samples (interquartile range ringplane %.0f%%, baseline %.0f%% of median); rerun on a quiet host",
			       name, 100.0 * so, 100.0 * sb);
}

int rp_bench_row_gbps(const char *name, double bytes_per_op, const struct rp_bench_timing *t,
		      const char *baseline_name)
{
	/* bytes per ns is GB/s (10^9 bytes per second) */
	int ret = rp_report_row(name, "GB/s", bytes_per_op / t->ours_ns, bytes_per_op / t->base_ns,
				baseline_name, true);

	if (!ret)
		note_noise(name, t);
	return ret;
}

int rp_bench_row_ns(const char *name, const struct rp_bench_timing *t, const char *baseline_name)
{
	int ret = rp_report_row(name, "ns", t->ours_ns, t->base_ns, baseline_name, false);

	if (!ret)
		note_noise(name, t);
	return ret;
}

/* ---- rows from whole runs (suites that time peers' runs, not samples) ---- */

#define RUNS_MAX 32

double rp_bench_runs_median(const double *v, unsigned n)
{
	double c[RUNS_MAX];

	if (n > RUNS_MAX)
		n = RUNS_MAX;
	memcpy(c, v, n * sizeof(*v));
	return rp_bench_summarize(c, n).med;
}

/* Interquartile range of a side's runs above 15% of its median: the row was
 * measured on a noisy host (as note_noise above, for runs instead of samples). */
static void note_noise_runs(const char *name, const double *o, const double *b, unsigned n)
{
	double oc[RUNS_MAX], bc[RUNS_MAX];

	if (n < 3)
		return;
	if (n > RUNS_MAX)
		n = RUNS_MAX;
	memcpy(oc, o, n * sizeof(*o));
	memcpy(bc, b, n * sizeof(*b));
	struct rp_bench_stat3 so = rp_bench_summarize(oc, n), sb = rp_bench_summarize(bc, n);
	double io = (so.q3 - so.q1) / so.med, ib = (sb.q3 - sb.q1) / sb.med;

	if (io > 0.15 || ib > 0.15)
		rp_report_note("%s: noisy runs (interquartile range ringplane %.0f%%, baseline %.0f%% of median); rerun on a quiet host",
			       name, 100.0 * io, 100.0 * ib);
}

int rp_bench_runs_row(const char *name, const char *unit, const double *o, const double *b,
		      unsigned n, const char *bname, bool higher)
{
	int ret = rp_report_row(name, unit, rp_bench_runs_median(o, n), rp_bench_runs_median(b, n),
				bname, higher);

	if (!ret)
		note_noise_runs(name, o, b, n);
	return ret;
}

int rp_bench_runs_row_aside(const char *name, const char *unit, const double *o, const double *b,
			    unsigned n, const char *bname, bool higher, const char *why)
{
	int ret = rp_report_row_strawman(name, unit, rp_bench_runs_median(o, n),
					 rp_bench_runs_median(b, n), bname, higher, why);

	if (!ret)
		note_noise_runs(name, o, b, n);
	return ret;
}

bool rp_bench_env_lists(const char *var, const char *item)
{
	const char *env = getenv(var);
	size_t n = strlen(item);

	if (!env || !*env)
		return true;
	for (const char *p = env; (p = strstr(p, item)); p += n)
		if ((p == env || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
			return true;
	return false;
}

unsigned rp_bench_env_uint(const char *var, unsigned dflt, unsigned max)
{
	const char *v = getenv(var);
	char *end = NULL;
	unsigned long n = v && *v ? strtoul(v, &end, 10) : 0;

	return end && !*end && n >= 1 && n <= max ? (unsigned)n : dflt;
}
