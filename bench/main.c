/* SPDX-License-Identifier: MIT */
/*
 * ringplane-bench [SUITE...] [--quick] [--json FILE] [--plot DIR] [--list]
 *
 * Runs each named suite (all registered suites when none is named), each
 * printing ringplane and its baseline side by side with the ratio, from the
 * same run. Exit status: 0 when every suite ran, 1 when one failed or an
 * output could not be written, 2 on a usage error.
 */
#include <getopt.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ringplane/simd.h>

#include "args.h" /* rp_getopt, shared with the ringplane commands */
#include "bench.h"
#include "cleanup.h"

/* The registry: adding a suite is one entry here and its run function. */
static const struct rp_bench_suite suites[] = {
	{ "simd", "CRC32C, XOR and the XOR-delta codec vs ISA-L and scalar/naive references",
	  rp_bench_suite_simd },
	{ "ring", "SPSC ring between two pinned threads vs ck_ring and a mutex+condvar queue",
	  rp_bench_suite_ring },
	{ "alloc", "slab pool alloc+free and remote free vs glibc malloc and jemalloc",
	  rp_bench_suite_alloc },
	{ "engine", "NOPs through the shard loop vs a raw liburing loop; cross-shard round trip vs rp_spsc ping-pong (spinning), eventfd and MSG_RING ping-pong (sleeping)",
	  rp_bench_suite_engine },
	{ "echo", "ringplane echo: sockperf latency vs sockperf server (sleeping) and a busy-polling epoll server (busy-poll), 100/1000-connection throughput vs an epoll server",
	  rp_bench_suite_echo },
	{ "relay", "ringplane relay (auto; splice, copy) vs HAProxy 2.6 (tcp, splice-auto), socat and direct: iperf3 bulk Gbit/s and CPU s/GB, sockperf 64B p50/p99, wrk req/s and conns/s to nginx; each on loopback and (root) over a veth pair into a netns (the veth sockperf and wrk rows in the full suite only)",
	  rp_bench_suite_relay },
	{ "sendfile", "ringplane serve vs nginx (sendfile on, tcp_nopush on): 4KB and 64KB req/s, 1MB and 64MB Gbit/s, each at -c8 and -c64, CPU s/GB under every row, a byte range, pipelined 4KB, wrk on the other CPU",
	  rp_bench_suite_sendfile },
	{ "zc", "zero-copy: outq plain vs SEND_ZC vs adaptive (loopback, veth) Gbit/s and CPU s/GB, batched 64B output vs one rp_send each and one send(2) each, rp_zc_file_to_socket/socket_relay/file_copy vs read/write loops and cp",
	  rp_bench_suite_zc },
};

#define NSUITES (sizeof(suites) / sizeof(suites[0]))

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ringplane-bench [SUITE...] [--quick] [--json FILE] [--plot DIR] [--list]\n"
		"  SUITE        run only these suites (default: all); see --list\n"
		"  --quick      short samples, not a result to publish; still minutes: every suite\n"
		"               took 7 min 56 s on a shared 2-vCPU VM (2026-11-27), about\n"
		"               8.5 min with the sendfile rows added since (2026-11-29); the relay\n"
		"               suite's veth sockperf and wrk rows are full-suite only (about 50 s\n"
		"               more; RP_BENCH_RELAY_ROWS=veth-latency,veth-http adds them)\n"
		"  --json FILE  write host facts and every row to FILE\n"
		"  --plot DIR   write DIR/<suite>.dat and .gp (and .png when gnuplot is installed)\n"
		"  --list       list the suites and exit\n"
		"Each row shows ringplane, its baseline and the ratio; ratio > 1 means ringplane is better.\n");
}

static void list_suites(FILE *f)
{
	for (size_t i = 0; i < NSUITES; i++)
		fprintf(f, "  %-10s %s\n", suites[i].name, suites[i].desc);
}

static const struct rp_bench_suite *find_suite(const char *name)
{
	for (size_t i = 0; i < NSUITES; i++)
		if (!strcmp(suites[i].name, name))
			return &suites[i];
	return NULL;
}

/* Pin to the CPU we are on, so the scheduler does not migrate the thread
 * (and its caches) between the two sides of a comparison. */
static int pin_here(void)
{
	int cpu = sched_getcpu();
	cpu_set_t set;

	if (cpu < 0)
		return -1;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		return -1;
	return cpu;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "json", required_argument, NULL, 'j' },
		{ "plot", required_argument, NULL, 'p' },
		{ "list", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct rp_report_cfg cfg = { .pinned_cpu = -1 };
	struct rp_bench_opts opts = { 0 };
	const struct rp_bench_suite *run[NSUITES];
	size_t nrun = 0;
	int failed = 0, c;

	/* Not an option: the alloc suite re-executes us under LD_PRELOAD. */
	if (argc >= 2 && !strcmp(argv[1], "--alloc-child"))
		return rp_bench_alloc_child(argc, argv);
	/* Not an option either: the echo suite's epoll baseline server. */
	if (argc >= 2 && !strcmp(argv[1], "--echo-child"))
		return rp_bench_echo_child(argc, argv);
	while ((c = rp_getopt("ringplane-bench", argc, argv, ":h", longopts)) != -1) {
		switch (c) {
		case 'q':
			opts.quick = true;
			break;
		case 'j':
			cfg.json_path = optarg;
			break;
		case 'p':
			cfg.plot_dir = optarg;
			break;
		case 'l':
			list_suites(stdout);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default: /* rp_getopt said which */
			return 2;
		}
	}
	for (int i = optind; i < argc; i++) {
		const struct rp_bench_suite *s = find_suite(argv[i]);
		bool dup = false;

		if (!s) {
			fprintf(stderr, "ringplane-bench: unknown suite '%s'; available:\n", argv[i]);
			list_suites(stderr);
			return 2;
		}
		for (size_t k = 0; k < nrun; k++)
			dup |= run[k] == s;
		if (!dup)
			run[nrun++] = s;
	}
	if (nrun == 0)
		for (size_t i = 0; i < NSUITES; i++)
			run[nrun++] = &suites[i];

	cfg.quick = opts.quick;
	/* SIGINT/SIGTERM: stop the peers, remove temp dirs and veths, then die
	 * of the signal (cleanup.h) */
	rp_cleanup_install();
	rp_bench_cpus_init(); /* a taskset around us: kept to (bench.h) */
	cfg.pinned_cpu = pin_here();
	if (rp_report_open(&cfg))
		return 1;

	char model[256], cc[64];

	rp_report_cpu_model(model, sizeof(model));
	rp_report_tcp_cc(cc, sizeof(cc));
	printf("ringplane-bench: cpu \"%s\" (%ld online), tcp congestion control %s, ", model,
	       sysconf(_SC_NPROCESSORS_ONLN), cc);
	printf("simd backend \"%s\"%s%s, ", rp_simd_backend(),
	       getenv("RP_SIMD") ? ", RP_SIMD=" : "", getenv("RP_SIMD") ? getenv("RP_SIMD") : "");
	if (cfg.pinned_cpu >= 0)
		printf("pinned to cpu %d", cfg.pinned_cpu);
	else
		printf("not pinned (sched_setaffinity failed)");
	printf(", %s%.0f ms samples x %u per side, alternating, median reported"
	       " (suites that time threads or children note their own plan)\n",
	       opts.quick ? "quick: " : "", rp_bench_sample_ms(&opts), rp_bench_samples(&opts));
	printf("ratio > 1 means ringplane is better (throughput: ours/baseline; time: baseline/ours)\n");

	for (size_t i = 0; i < nrun; i++) {
		int ret;

		rp_report_suite_begin(run[i]->name, run[i]->desc);
		ret = run[i]->run(&opts);
		rp_report_suite_end(ret);
		failed |= ret != 0;
	}
	if (rp_report_close())
		failed = 1;
	return failed ? 1 : 0;
}
