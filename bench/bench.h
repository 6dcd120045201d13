/* SPDX-License-Identifier: MIT */
/*
 * ringplane-bench internals: the suite registry, the side-by-side timer and
 * the reporting entry points every suite uses.
 *
 * A suite is one entry in the table in bench/main.c: a name, a one-line
 * description and a run function. The run function measures ringplane and
 * its baseline in the same process, alternating between them, and hands
 * each measured pair to rp_report_row(). It reports nothing it did not
 * measure: a baseline that is missing is an rp_report_skip() with a reason.
 */
#ifndef RP_BENCH_H
#define RP_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <sched.h>
#include <stdint.h>
#include <pthread.h>

#include "report.h"

struct rp_bench_opts {
	bool quick; /* short samples, fewer of them: a smoke run, not a result */
};

/*
 * run() returns 0 when every row it meant to measure was measured or skipped
 * with a reason, or a negative errno when the suite had to stop (a kernel
 * that disagrees with its reference, a resource it could not get). It must
 * print why before returning an error.
 */
struct rp_bench_suite {
	const char *name;
	const char *desc;
	int (*run)(const struct rp_bench_opts *opts);
};

/* Suites (one file each: bench/suite_<name>.c). */
int rp_bench_suite_simd(const struct rp_bench_opts *opts);
int rp_bench_suite_ring(const struct rp_bench_opts *opts);
int rp_bench_suite_alloc(const struct rp_bench_opts *opts);
int rp_bench_suite_engine(const struct rp_bench_opts *opts);
int rp_bench_suite_echo(const struct rp_bench_opts *opts);
int rp_bench_suite_relay(const struct rp_bench_opts *opts);
int rp_bench_suite_sendfile(const struct rp_bench_opts *opts);
int rp_bench_suite_zc(const struct rp_bench_opts *opts);

/*
 * The alloc suite's jemalloc child: main() hands over when argv[1] is the
 * hidden "--alloc-child" (see bench/suite_alloc.c). Returns the exit status.
 */
int rp_bench_alloc_child(int argc, char **argv);

/*
 * The echo suite's baseline server (bench/epoll_echo.c): main() hands over
 * when argv[1] is the hidden "--echo-child"; argv[2] is IPV4:PORT, then an
 * optional cpulist (one pinned thread per CPU), --sockperf (sockperf's
 * ping-pong framing, as `ringplane echo --sockperf`) and --busy-poll US
 * (epoll_wait with a zero timeout for US after each event). Prints
 * "listening on HOST:PORT", serves until SIGTERM. Returns the exit status.
 */
int rp_bench_echo_child(int argc, char **argv);

/* ---- timing (bench/timing.c) ---- */

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t rp_bench_now_ns(void);

/*
 * A measured body: performs @iters operations of one kind. The loop lives
 * inside the body so the timer adds no indirect call per operation; a body
 * must leave its result in rp_bench_sink (or memory the compiler cannot
 * prove dead) so the work is not optimised away.
 */
typedef void (*rp_bench_fn)(void *ctx, uint64_t iters);

/* Written by bodies, read by nobody: a volatile store the compiler must keep. */
extern volatile uint64_t rp_bench_sink;

/* Compiler barrier: memory written before it counts as observed. */
static inline void rp_bench_clobber(void)
{
	__asm__ volatile("" ::: "memory");
}

struct rp_bench_timing {
	double ours_ns;	     /* median ns per operation */
	double base_ns;
	double ours_q1_ns;   /* first and third quartile, for the noise note */
	double ours_q3_ns;
	double base_q1_ns;
	double base_q3_ns;
	unsigned samples;    /* per side */
};

/*
 * rp_bench_compare - time two bodies side by side.
 *
 * Each side gets its own iteration count, calibrated so one sample lasts
 * about 2 ms (quick) or 10 ms; then samples alternate ours, baseline, ours,
 * baseline... (7 per side quick, 21 otherwise) so frequency drift and
 * neighbours on a shared host hit both sides alike. Reports the median ns
 * per operation of each side.
 */
void rp_bench_compare(const struct rp_bench_opts *opts, rp_bench_fn ours, void *ours_ctx,
		      rp_bench_fn base, void *base_ctx, struct rp_bench_timing *out);

/* The sampling plan rp_bench_compare() follows, for headers and notes. */
unsigned rp_bench_samples(const struct rp_bench_opts *opts);
double rp_bench_sample_ms(const struct rp_bench_opts *opts);

/*
 * Report a compared pair as a throughput row (GB/s, @bytes_per_op bytes per
 * operation, higher is better) or a time row (ns per operation, lower is
 * better). Adds a note when the middle half of a side's samples spreads by
 * more than 15% of its median: that row was measured on a noisy host.
 */
int rp_bench_row_gbps(const char *name, double bytes_per_op, const struct rp_bench_timing *t,
		      const char *baseline_name);
int rp_bench_row_ns(const char *name, const struct rp_bench_timing *t, const char *baseline_name);

/* Median and quartiles of @n samples (sorts @s in place). */
struct rp_bench_stat3 {
	double med, q1, q3;
};
struct rp_bench_stat3 rp_bench_summarize(double *s, unsigned n);

/* Spin-wait hint shared by every queue and allocator the suites compare. */
static inline void rp_bench_cpu_relax(void)
{
#if defined(__x86_64__)
	__builtin_ia32_pause();
#else
	sched_yield();
#endif
}

/*
 * rp_bench_cpus_init - remember the CPUs the caller allowed (a `taskset`
 * around the bench), read once in main before it pins itself; the CPU
 * pickers below and children started on "any CPU" keep to them.
 * rp_bench_cpu_allowed - whether @cpu is one of them (all, when unknown).
 */
void rp_bench_cpus_init(void);
bool rp_bench_cpu_allowed(int cpu);

/*
 * Two CPUs for a producer/consumer pair: cpu[0] is the one the calling
 * thread runs on, cpu[1] the first other CPU this process may use (each
 * candidate is tried on ourselves, since cpusets may hide online CPUs).
 * Returns 0, or -ENODEV when only one CPU is usable.
 */
int rp_bench_pick_cpus(int cpu[2]);

/*
 * rp_bench_usable_cpus - the CPUs this process may run on, ascending, at
 * most @max of them, found by trying each (the bench's own threads are
 * pinned, so their affinity mask is no guide). Returns the count or -errno.
 */
int rp_bench_usable_cpus(int *cpus, int max);

/*
 * Shard scaling (RP_BENCH_SHARDS=N, 1..RP_BENCH_MAX_SHARDS): the relay
 * suite's http rows and the sendfile suite's server rows run ringplane
 * with --shards N against each peer with N threads or workers, every side
 * on CPUs of its own instead of the two-CPU placement: N CPUs for the
 * servers under test (ringplane's shards, HAProxy's threads, nginx's
 * workers, one CPU each), N for the relay's upstream (nginx behind the
 * relays) and N for the load (wrk -tN). For a host with 3N CPUs (or 2N);
 * on a 2-vCPU VM leave it unset.
 */
#define RP_BENCH_MAX_SHARDS 16
struct rp_bench_place {
	unsigned n; /* 0: RP_BENCH_SHARDS unset, the two-CPU placement */
	int srv[RP_BENCH_MAX_SHARDS], up[RP_BENCH_MAX_SHARDS], cli[RP_BENCH_MAX_SHARDS];
	char srv_list[96], up_list[96], cli_list[96]; /* "4,5,6,7" for --cpus */
};

/*
 * rp_bench_place - fill @pl from RP_BENCH_SHARDS for @groups groups of N
 * CPUs (2: servers and load; 3: servers, upstream and load), taken in
 * ascending order from rp_bench_usable_cpus, leaving out the CPU the
 * calling thread runs on. Returns 0 (pl->n = 0 when the variable is unset),
 * -EINVAL when it is not 1..RP_BENCH_MAX_SHARDS, -ENODEV when fewer CPUs
 * are usable than the placement needs.
 */
int rp_bench_place(struct rp_bench_place *pl, unsigned groups);

/* nginx's worker_cpu_affinity value for @cpus: one bit mask per worker. */
void rp_bench_nginx_affinity(char *buf, size_t bufsz, const int *cpus, unsigned n);

/* rp_bench_size_name - @n bytes for a row name: "64B", "2KB", "1MB" (the
 * largest unit that divides it). */
void rp_bench_size_name(char *buf, size_t bufsz, size_t n);
/* Whether @item is in the comma-separated list in environment variable
 * @var (true when it is unset or empty): the suites' RP_BENCH_*_ROWS row
 * pickers, so one group of rows can be rerun without the others. */
bool rp_bench_env_lists(const char *var, const char *item);
/* The unsigned number in environment variable @var when it is 1..@max,
 * else @dflt (unset, empty, 0, out of range or not a number): the suites'
 * run-count and duration overrides. */
unsigned rp_bench_env_uint(const char *var, unsigned dflt, unsigned max);

/*
 * rp_bench_run_pair - run fn[i](arg[i]) on two threads and join both, each
 * join bounded by @timeout_s. If a thread cannot be created, or one is
 * still running at its deadline (reported on stderr as "@what still going
 * after N s"), halt(halt_arg) is called so the other side stops, and the
 * join waits for it. Returns 0, a negative errno from pthread_create, or
 * -ETIMEDOUT.
 */
int rp_bench_run_pair(void *(*const fn[2])(void *), void *const arg[2], unsigned timeout_s,
		      void (*halt)(void *), void *halt_arg, const char *what);

/* Pin the calling thread to @cpu: 0 or a negative errno. */
int rp_bench_pin_self(int cpu);

/* ---- socket-transfer helpers (bench/suite_zc.c; suite_sendfile.c's operation rows) ---- */

struct rp_runtime;
struct sockaddr_in;

/* A reader thread pinned to @cpu that reads @fd until EOF, counting bytes. */
struct rp_zb_sink {
	int fd, cpu, err;
	uint64_t bytes;
	double cpu_s; /* the reader thread's own CPU time (CLOCK_THREAD_CPUTIME_ID) */
	pthread_t th;
};
int rp_zb_sink_start(struct rp_zb_sink *s, int fd, int cpu);
/* Joins it and closes its fd; returns the bytes it read (0 on a read error). */
uint64_t rp_zb_sink_join(struct rp_zb_sink *s);
/* A listening TCP socket on @ip, port chosen by the kernel, its address in *@addr. */
int rp_zb_listen(const char *ip, int *lfd, struct sockaddr_in *addr);
/* A connected pair through listener @lfd: *@snd (TCP_NODELAY) and *@rcv. */
int rp_zb_pair(int lfd, const struct sockaddr_in *addr, int *snd, int *rcv);
/* A started runtime of one shard on @cpu / stop, wait and destroy it. */
int rp_zb_runtime_up(int cpu, struct rp_runtime **out);
void rp_zb_runtime_down(struct rp_runtime *rt);
int rp_zb_wait_efd(int efd);
void rp_zb_signal_efd(int efd);
/* A page-cached file of @size bytes at @dir/@name (path in @path). */
int rp_zb_make_file(const char *dir, const char *name, size_t size, char *path, size_t pathsz);
/* User+system CPU seconds of the whole process. */
double rp_zb_cpu_s(void);
/* The median of @n whole runs (at most 32 are read). */
double rp_bench_runs_median(const double *v, unsigned n);
/* rp_report_row of the medians of @n runs a side, with a note when a side's
 * interquartile range passes 15% of its median (3 runs or more). */
int rp_bench_runs_row(const char *name, const char *unit, const double *o, const double *b,
		      unsigned n, const char *bname, bool higher);
/* The same, kept out of the suite's geomean (rp_report_row_strawman, @why):
 * for rows that are not ringplane against a peer one would run instead
 * (ours against ours, against no relay, against a fork-per-connection
 * strawman). */
int rp_bench_runs_row_aside(const char *name, const char *unit, const double *o, const double *b,
			    unsigned n, const char *bname, bool higher, const char *why);
/* rp_report_row of the medians of @n runs a side, noting a spread > 15%. */
int rp_zb_row(const char *name, const char *unit, const double *o, const double *b, unsigned n,
	      const char *bname, bool higher);

#endif /* RP_BENCH_H */
