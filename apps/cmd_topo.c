/* SPDX-License-Identifier: MIT */
/*
 * `ringplane topo`: the topology and the shard placement plan, as a table,
 * as JSON, or (--cpulist) as the bare cpulist the tuning scripts feed to
 * isolcpus=/nohz_full=.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringplane/topo.h>

#include "args.h"
#include "commands.h"

/* Longest cpulist of CPU_SETSIZE (1024) CPUs: every other CPU, up to four
 * digits and a comma each. */
#define CPULIST_MAX 4096

struct topo_args {
	const char *synthetic;
	struct rp_plan_opts opts;
	bool cpulist;
	bool json;
};

static void topo_usage(FILE *f)
{
	fputs("usage: ringplane topo [--synthetic DESC] [--cpus LIST] [--policy spread|pack]\n"
	      "                      [--smt] [--shards N] [--cpulist | --json]\n"
	      "\n"
	      "Prints the CPU topology (hwloc) and where ringplane would place its shards:\n"
	      "one shard per physical core on the CPUs this process may run on\n"
	      "(sched_getaffinity: taskset, cgroup cpusets, isolcpus).\n"
	      "\n"
	      "  --synthetic DESC  an hwloc synthetic topology instead of this host, e.g.\n"
	      "                    \"package:2 numa:2 core:8 pu:2\" (all its CPUs allowed)\n"
	      "  --cpus LIST       exactly these CPUs (cpulist, e.g. 0-3,8), ascending\n"
	      "  --policy P        spread: round-robin across NUMA nodes (default)\n"
	      "                    pack: fill NUMA node 0's cores first, then node 1, ...\n"
	      "  --smt             one shard per hardware thread, SMT siblings included\n"
	      "  --shards N        at most N shards\n"
	      "  --cpulist         print only the plan's CPUs as a cpulist (e.g. 0-1)\n"
	      "  --json            print the topology and the plan as JSON\n"
	      "\n"
	      "Exit status: 0 ok, 1 failure, 2 usage error.\n",
	      f);
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ringplane topo: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (ringplane topo --help for usage)\n");
	return RP_EXIT_USAGE;
}

static int parse_args(int argc, char **argv, struct topo_args *a)
{
	enum { O_SYNTHETIC = 256, O_CPUS, O_POLICY, O_SMT, O_SHARDS, O_CPULIST, O_JSON };
	static const struct option longopts[] = {
		{"synthetic", required_argument, NULL, O_SYNTHETIC},
		{"cpus", required_argument, NULL, O_CPUS},
		{"policy", required_argument, NULL, O_POLICY},
		{"smt", no_argument, NULL, O_SMT},
		{"shards", required_argument, NULL, O_SHARDS},
		{"cpulist", no_argument, NULL, O_CPULIST},
		{"json", no_argument, NULL, O_JSON},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static const char *const policies[] = { "spread", "pack", NULL };
	unsigned u;
	int c;

	memset(a, 0, sizeof(*a));
	optind = 1;
	while ((c = rp_getopt("ringplane topo", argc, argv, ":h", longopts)) != -1) {
		switch (c) {
		case O_SYNTHETIC:
			a->synthetic = optarg;
			break;
		case O_CPUS:
			/* Syntax is checked here so a typo is a usage error;
			 * whether the CPUs exist is the plan's business. */
			if (rp_arg_cpus("topo", "--cpus", optarg))
				return RP_EXIT_USAGE;
			a->opts.cpus = optarg;
			break;
		case O_POLICY:
			if (rp_arg_choice("topo", "--policy", optarg, policies, &u))
				return RP_EXIT_USAGE;
			a->opts.policy = u == 0 ? RP_PLAN_SPREAD : RP_PLAN_PACK;
			break;
		case O_SMT:
			a->opts.smt = true;
			break;
		case O_SHARDS:
			if (rp_arg_uint("topo", "--shards", optarg, 1, 1u << 20, &u))
				return RP_EXIT_USAGE;
			a->opts.max_shards = (int)u;
			break;
		case O_CPULIST:
			a->cpulist = true;
			break;
		case O_JSON:
			a->json = true;
			break;
		case 'h':
			topo_usage(stdout);
			return -1;
		default: /* rp_getopt said which */
			return RP_EXIT_USAGE;
		}
	}
	if (rp_args_none_left("ringplane topo", argc, argv))
		return RP_EXIT_USAGE;
	if (a->cpulist && a->json)
		return usage_error("--cpulist and --json exclude each other");
	return RP_EXIT_OK;
}

static void format_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	unsigned u = 0;

	/* Only exact multiples move up a unit: cache sizes are, and an odd
	 * size shown in bytes is more honest than a rounded one. */
	while (u + 1 < sizeof(unit) / sizeof(unit[0]) && bytes >= 1024 && bytes % 1024 == 0) {
		bytes /= 1024;
		u++;
	}
	snprintf(buf, len, "%llu %s", (unsigned long long)bytes, unit[u]);
}

/* Distinct cores with a PU on the node of logical index @idx. */
static unsigned node_cores(const struct rp_topo *t, unsigned idx)
{
	unsigned ncores = rp_topo_cores(t), count = 0;
	int node_os = rp_topo_node(t, idx, NULL);
	bool *seen = calloc(ncores ? ncores : 1, sizeof(*seen));

	if (!seen)
		return 0;
	for (unsigned i = 0; i < rp_topo_pus(t); i++) {
		struct rp_topo_pu pu;

		if (rp_topo_pu(t, i, &pu) == 0 && pu.node == node_os && pu.core >= 0 &&
		    (unsigned)pu.core < ncores && !seen[pu.core]) {
			seen[pu.core] = true;
			count++;
		}
	}
	free(seen);
	return count;
}

static void print_json_string(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static const char *policy_name(const struct topo_args *a)
{
	if (a->opts.cpus)
		return "cpus";
	return a->opts.policy == RP_PLAN_PACK ? "pack" : "spread";
}

static void print_int_or_dash(int v, int width)
{
	if (v < 0)
		printf(" %*s", width, "-");
	else
		printf(" %*d", width, v);
}

static void print_text(const struct rp_topo *t, const struct rp_plan *p, const struct topo_args *a,
		       const char *allowed)
{
	struct rp_topo_caches c;
	char list[CPULIST_MAX], sz[32];
	const char *per;
	cpu_set_t cpus;

	if (rp_topo_synthetic(t))
		printf("topology: synthetic \"%s\"\n", rp_topo_synthetic(t));
	else
		printf("topology: this host\n");
	printf("  packages %u, NUMA nodes %u, cores %u, PUs %u\n", rp_topo_packages(t),
	       rp_topo_nodes(t), rp_topo_cores(t), rp_topo_pus(t));

	rp_topo_caches(t, &c);
	if (!c.l1d && !c.l2 && !c.l3) {
		printf("  caches: unknown\n");
	} else {
		const char *sep = "";

		printf("  caches:");
		if (c.l1d) {
			format_size(c.l1d, sz, sizeof(sz));
			printf("%s L1d %s x%u", sep, sz, c.l1d_count);
			sep = ",";
		}
		if (c.l2) {
			format_size(c.l2, sz, sizeof(sz));
			printf("%s L2 %s x%u", sep, sz, c.l2_count);
			sep = ",";
		}
		if (c.l3) {
			format_size(c.l3, sz, sizeof(sz));
			printf("%s L3 %s x%u", sep, sz, c.l3_count);
		}
		printf("\n");
	}
	for (unsigned i = 0; i < rp_topo_nodes(t); i++) {
		int os = rp_topo_node(t, i, &cpus);

		if (rp_cpulist_format(&cpus, list, sizeof(list)) < 0)
			list[0] = '\0';
		printf("  node %d: cpus %s (%u cores)\n", os, list, node_cores(t, i));
	}
	printf("  allowed cpus: %s\n", allowed);

	if (a->opts.cpus)
		per = "CPUs as listed";
	else
		per = a->opts.smt ? "one per PU" : "one per core";
	printf("plan: %u shard%s, policy %s, %s\n", rp_plan_count(p),
	       rp_plan_count(p) == 1 ? "" : "s", policy_name(a), per);
	printf("  shard   cpu  core  node  package\n");
	for (unsigned s = 0; s < rp_plan_count(p); s++) {
		printf("  %5u", s);
		print_int_or_dash(rp_plan_cpu(p, s), 5);
		print_int_or_dash(rp_plan_core(p, s), 5);
		print_int_or_dash(rp_plan_node(p, s), 5);
		print_int_or_dash(rp_plan_package(p, s), 8);
		printf("\n");
	}
}

static void print_json(const struct rp_topo *t, const struct rp_plan *p, const struct topo_args *a,
		       const char *allowed)
{
	struct rp_topo_caches c;
	char list[CPULIST_MAX];
	cpu_set_t cpus;

	printf("{\n  \"topology\": {\n    \"synthetic\": ");
	if (rp_topo_synthetic(t))
		print_json_string(rp_topo_synthetic(t));
	else
		printf("null");
	printf(",\n    \"packages\": %u, \"numa_nodes\": %u, \"cores\": %u, \"pus\": %u,\n",
	       rp_topo_packages(t), rp_topo_nodes(t), rp_topo_cores(t), rp_topo_pus(t));
	rp_topo_caches(t, &c);
	printf("    \"caches\": {\"l1d\": %llu, \"l1d_count\": %u, \"l2\": %llu, \"l2_count\": %u, "
	       "\"l3\": %llu, \"l3_count\": %u},\n",
	       (unsigned long long)c.l1d, c.l1d_count, (unsigned long long)c.l2, c.l2_count,
	       (unsigned long long)c.l3, c.l3_count);
	printf("    \"nodes\": [");
	for (unsigned i = 0; i < rp_topo_nodes(t); i++) {
		int os = rp_topo_node(t, i, &cpus);

		if (rp_cpulist_format(&cpus, list, sizeof(list)) < 0)
			list[0] = '\0';
		printf("%s\n      {\"node\": %d, \"cpus\": \"%s\", \"cores\": %u}", i ? "," : "",
		       os, list, node_cores(t, i));
	}
	printf("\n    ],\n    \"allowed\": \"%s\"\n  },\n", allowed);

	printf("  \"plan\": {\n    \"policy\": \"%s\", \"smt\": %s, \"cpus\": ", policy_name(a),
	       a->opts.smt ? "true" : "false");
	if (a->opts.cpus)
		print_json_string(a->opts.cpus);
	else
		printf("null");
	printf(",\n    \"shards\": [");
	for (unsigned s = 0; s < rp_plan_count(p); s++) {
		printf("%s\n      {\"shard\": %u, \"cpu\": %d, \"core\": %d, \"node\": %d, "
		       "\"package\": %d}",
		       s ? "," : "", s, rp_plan_cpu(p, s), rp_plan_core(p, s), rp_plan_node(p, s),
		       rp_plan_package(p, s));
	}
	printf("\n    ]\n  }\n}\n");
}

int rp_cmd_topo(int argc, char **argv)
{
	struct topo_args a;
	struct rp_topo *t = NULL;
	struct rp_plan *p = NULL;
	char list[CPULIST_MAX], allowed_list[CPULIST_MAX];
	cpu_set_t set;
	int ret, status = RP_EXIT_FAIL;

	ret = parse_args(argc, argv, &a);
	if (ret < 0)
		return RP_EXIT_OK; /* --help */
	if (ret)
		return ret;

	ret = rp_topo_load(&t, a.synthetic);
	if (ret == -EINVAL && a.synthetic)
		return usage_error("--synthetic '%s': not a valid hwloc synthetic description",
				   a.synthetic);
	if (ret) {
		fprintf(stderr, "ringplane topo: cannot load the topology: %s\n", strerror(-ret));
		return RP_EXIT_FAIL;
	}

	ret = rp_topo_allowed(t, &set);
	if (ret) {
		fprintf(stderr, "ringplane topo: cannot read the allowed CPUs: %s\n",
			strerror(-ret));
		goto out;
	}
	if (rp_cpulist_format(&set, allowed_list, sizeof(allowed_list)) < 0)
		allowed_list[0] = '\0';

	ret = rp_plan_build(t, &a.opts, &p);
	if (ret == -EINVAL && a.opts.cpus) {
		status = usage_error("--cpus '%s': names a CPU that is not in the topology or not "
				     "allowed here",
				     a.opts.cpus);
		goto out;
	}
	if (ret == -ENODEV) {
		fprintf(stderr,
			"ringplane topo: no CPU of the topology is allowed (allowed: '%s')\n",
			allowed_list);
		goto out;
	}
	if (ret) {
		fprintf(stderr, "ringplane topo: cannot build the plan: %s\n", strerror(-ret));
		goto out;
	}

	if (a.cpulist) {
		rp_plan_cpus(p, &set);
		if (rp_cpulist_format(&set, list, sizeof(list)) < 0) {
			fprintf(stderr, "ringplane topo: cpulist does not fit\n");
			goto out;
		}
		printf("%s\n", list);
	} else if (a.json) {
		print_json(t, p, &a, allowed_list);
	} else {
		print_text(t, p, &a, allowed_list);
	}
	status = fflush(stdout) == 0 ? RP_EXIT_OK : RP_EXIT_FAIL;
out:
	rp_plan_free(p);
	rp_topo_free(t);
	return status;
}
