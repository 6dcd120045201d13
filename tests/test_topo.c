/* SPDX-License-Identifier: MIT */
/*
 * affinity: topologies (this host and hwloc synthetic ones: a 1x2 host,
 * 2 packages x 2 NUMA x 8 cores x 2 PUs, uneven nodes), the placement plan
 * (one shard per core, spread vs pack per node, smt, cpuset restrictions,
 * explicit --cpus, max_shards), cpulist parse/format, and pinning, memory
 * binding and SCHED_FIFO on the real host (a printed skip where the
 * sandbox refuses them).
 */
#include <errno.h>
#include <numaif.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <ringplane/topo.h>

/* 2 packages x 2 NUMA nodes x 8 cores x 2 PUs: 64 PUs, 32 cores, 4 nodes;
 * PU i is core i/2 on node i/16 in package i/32. */
#define S4 "package:2 numa:2 core:8 pu:2"

static struct rp_topo *load(const char *synthetic)
{
	struct rp_topo *t = NULL;

	assert_int_equal(rp_topo_load(&t, synthetic), 0);
	assert_non_null(t);
	return t;
}

static struct rp_plan *plan(const struct rp_topo *t, const struct rp_plan_opts *o)
{
	struct rp_plan *p = NULL;

	assert_int_equal(rp_plan_build(t, o, &p), 0);
	assert_non_null(p);
	assert_true(rp_plan_count(p) >= 1);
	return p;
}

static cpu_set_t cpus_of(const char *list)
{
	cpu_set_t s;

	assert_int_equal(rp_cpulist_parse(list, &s), 0);
	return s;
}

/* Shards per node (OS index < 8) of plan @p. */
static void node_counts(const struct rp_plan *p, unsigned counts[8])
{
	memset(counts, 0, 8 * sizeof(counts[0]));
	for (unsigned s = 0; s < rp_plan_count(p); s++) {
		int n = rp_plan_node(p, s);

		assert_true(n >= 0 && n < 8);
		counts[n]++;
	}
}

/* ---- topologies ---- */

static void test_load_rejects_bad_input(void **state)
{
	struct rp_topo *t = (struct rp_topo *)1;

	(void)state;
	assert_int_equal(rp_topo_load(&t, "bogus:3"), -EINVAL);
	assert_null(t);
	assert_int_equal(rp_topo_load(NULL, NULL), -EINVAL);
	rp_topo_free(NULL);
}

static void test_host_topology(void **state)
{
	struct rp_topo *t = load(NULL);
	struct rp_plan *p;
	cpu_set_t allowed, mine;

	(void)state;
	assert_null(rp_topo_synthetic(t));
	assert_true(rp_topo_pus(t) >= 1);
	assert_true(rp_topo_cores(t) >= 1 && rp_topo_cores(t) <= rp_topo_pus(t));
	assert_true(rp_topo_nodes(t) >= 1);
	printf("# host: %u packages, %u nodes, %u cores, %u PUs\n", rp_topo_packages(t),
	       rp_topo_nodes(t), rp_topo_cores(t), rp_topo_pus(t));

	/* The plan's default allowed set is this thread's affinity. */
	assert_int_equal(rp_topo_allowed(t, &allowed), 0);
	assert_int_equal(sched_getaffinity(0, sizeof(mine), &mine), 0);
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (CPU_ISSET((unsigned)c, &allowed))
			assert_true(CPU_ISSET((unsigned)c, &mine));
	}
	assert_true(CPU_COUNT(&allowed) >= 1);

	/* Default plan: one shard per core with an allowed PU, all allowed. */
	p = plan(t, NULL);
	assert_true(rp_plan_count(p) <= rp_topo_cores(t));
	for (unsigned s = 0; s < rp_plan_count(p); s++)
		assert_true(CPU_ISSET((unsigned)rp_plan_cpu(p, s), &allowed));
	rp_plan_free(p);
	rp_topo_free(t);
}

/* This machine's shape: one package, two cores, one PU each. */
static void test_synthetic_1x2(void **state)
{
	struct rp_topo *t = load("package:1 core:2 pu:1");
	struct rp_topo_pu pu;
	struct rp_plan *p;
	cpu_set_t node_cpus;

	(void)state;
	assert_string_equal(rp_topo_synthetic(t), "package:1 core:2 pu:1");
	assert_int_equal(rp_topo_packages(t), 1);
	assert_int_equal(rp_topo_nodes(t), 1);
	assert_int_equal(rp_topo_cores(t), 2);
	assert_int_equal(rp_topo_pus(t), 2);
	assert_int_equal(rp_topo_node(t, 0, &node_cpus), 0);
	assert_int_equal(CPU_COUNT(&node_cpus), 2);
	assert_int_equal(rp_topo_pu(t, 1, &pu), 0);
	assert_int_equal(pu.cpu, 1);
	assert_int_equal(pu.core, 1);
	assert_int_equal(pu.node, 0);
	assert_int_equal(pu.package, 0);

	p = plan(t, NULL);
	assert_int_equal(rp_plan_count(p), 2);
	assert_int_equal(rp_plan_cpu(p, 0), 0);
	assert_int_equal(rp_plan_cpu(p, 1), 1);
	assert_int_equal(rp_plan_node(p, 0), 0);
	assert_int_equal(rp_plan_node(p, 1), 0);
	rp_plan_free(p);
	rp_topo_free(t);

	/* No Core level: each PU counts as a core; no package. */
	t = load("pu:2");
	assert_int_equal(rp_topo_packages(t), 0);
	assert_int_equal(rp_topo_cores(t), 2);
	assert_int_equal(rp_topo_pus(t), 2);
	assert_int_equal(rp_topo_pu(t, 0, &pu), 0);
	assert_int_equal(pu.package, -1);
	p = plan(t, NULL);
	assert_int_equal(rp_plan_count(p), 2);
	assert_int_equal(rp_plan_package(p, 0), -1);
	rp_plan_free(p);
	rp_topo_free(t);
}

static void test_synthetic_2x2x8x2_counts(void **state)
{
	struct rp_topo *t = load(S4);
	struct rp_topo_pu pu;
	cpu_set_t all, node_cpus;

	(void)state;
	assert_int_equal(rp_topo_packages(t), 2);
	assert_int_equal(rp_topo_nodes(t), 4);
	assert_int_equal(rp_topo_cores(t), 32);
	assert_int_equal(rp_topo_pus(t), 64);
	for (unsigned i = 0; i < 64; i++) {
		assert_int_equal(rp_topo_pu(t, i, &pu), 0);
		assert_int_equal(pu.cpu, (int)i);
		assert_int_equal(pu.core, (int)i / 2);
		assert_int_equal(pu.node, (int)i / 16);
		assert_int_equal(pu.package, (int)i / 32);
	}
	assert_int_equal(rp_topo_pu(t, 64, &pu), -EINVAL);
	assert_int_equal(rp_topo_pu_of_cpu(t, 37, &pu), 0);
	assert_int_equal(pu.core, 18);
	assert_int_equal(rp_topo_pu_of_cpu(t, 64, &pu), -ENOENT);

	for (unsigned n = 0; n < 4; n++) {
		char want[16];
		cpu_set_t w;

		assert_int_equal(rp_topo_node(t, n, &node_cpus), (int)n);
		snprintf(want, sizeof(want), "%u-%u", n * 16, n * 16 + 15);
		w = cpus_of(want);
		assert_true(CPU_EQUAL(&node_cpus, &w));
	}
	assert_int_equal(rp_topo_node(t, 4, NULL), -EINVAL);

	/* A synthetic topology allows all its PUs, whatever our affinity. */
	assert_int_equal(rp_topo_allowed(t, &all), 0);
	assert_int_equal(CPU_COUNT(&all), 64);
	rp_topo_free(t);

	/* the design's example: one NUMA node per package. */
	t = load("package:2 numa:1 core:8 pu:2");
	assert_int_equal(rp_topo_nodes(t), 2);
	assert_int_equal(rp_topo_cores(t), 16);
	assert_int_equal(rp_topo_pus(t), 32);
	rp_topo_free(t);
}

/* A synthetic topology may have at most CPU_SETSIZE PUs (every one is
 * allowed, and a plan places at most that many); more is -ERANGE at load,
 * decided from the string before hwloc builds anything. */
static void test_synthetic_pu_limit(void **state)
{
	static const char *const over[] = {
		"pu:1025",
		"pu:2000",
		"package:2 core:513 pu:1",
		"package:2 [numa(memory=1073741824)] core:300 pu:2",
		"core:2(indexes=0,1) pu:1000",
		"pu:20000",
		"package:1000 core:1000 pu:1000",
		"pu:99999999999999999999999999",
		"2 2 257",
	};
	struct timespec t0, t1;
	struct rp_topo *t;
	struct rp_plan *p;

	(void)state;
	t = load("pu:1024");
	assert_int_equal(rp_topo_pus(t), CPU_SETSIZE);
	p = plan(t, NULL);
	assert_int_equal(rp_plan_count(p), CPU_SETSIZE);
	rp_plan_free(p);
	rp_topo_free(t);

	for (size_t i = 0; i < sizeof(over) / sizeof(over[0]); i++) {
		double s;
		int rc;

		t = (struct rp_topo *)&t0; /* not NULL: the call must clear it */
		clock_gettime(CLOCK_MONOTONIC, &t0);
		rc = rp_topo_load(&t, over[i]);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		if (rc != -ERANGE || t != NULL)
			fail_msg("\"%s\": rp_topo_load returned %d (expected -ERANGE)", over[i], rc);
		/* refused from the string: hwloc took 1.5 s for pu:5000 and more
		 * than 100 s for pu:20000. Refusals take microseconds; the bound
		 * is wide so a loaded CI host cannot trip it, and still catches
		 * hwloc building the topology */
		if (s > 5.0)
			fail_msg("\"%s\": refused after %.2f s", over[i], s);
	}
}

static void test_synthetic_caches(void **state)
{
	struct rp_topo *t = load("package:1 l3:1(size=33554432) l2:2(size=1048576) "
				 "l1d:1(size=49152) core:1 pu:2");
	struct rp_topo_caches c;

	(void)state;
	rp_topo_caches(t, &c);
	assert_int_equal(c.l3, 33554432);
	assert_int_equal(c.l3_count, 1);
	assert_int_equal(c.l2, 1048576);
	assert_int_equal(c.l2_count, 2);
	assert_int_equal(c.l1d, 49152);
	assert_int_equal(c.l1d_count, 2);
	rp_topo_free(t);

	/* No cache levels described: unknown, not invented. */
	t = load("pu:2");
	rp_topo_caches(t, &c);
	assert_int_equal(c.l1d + c.l2 + c.l3, 0);
	rp_topo_free(t);
}

/* ---- plans ---- */

static void test_default_plan_one_per_core_spread(void **state)
{
	struct rp_topo *t = load(S4);
	struct rp_plan *p = plan(t, NULL);
	unsigned counts[8];
	bool core_used[32] = {false};

	(void)state;
	assert_int_equal(rp_plan_count(p), 32);
	for (unsigned s = 0; s < 32; s++) {
		int cpu = rp_plan_cpu(p, s), core = rp_plan_core(p, s);

		/* First PU of each core, every core once. */
		assert_int_equal(cpu % 2, 0);
		assert_int_equal(core, cpu / 2);
		assert_false(core_used[core]);
		core_used[core] = true;
		/* Round-robin over the 4 nodes, cores in order within one. */
		assert_int_equal(rp_plan_node(p, s), (int)s % 4);
		assert_int_equal(core, (int)(s % 4) * 8 + (int)s / 4);
		assert_int_equal(rp_plan_package(p, s), rp_plan_node(p, s) / 2);
	}
	node_counts(p, counts);
	for (unsigned n = 0; n < 4; n++)
		assert_int_equal(counts[n], 8);
	assert_int_equal(rp_plan_cpu(p, 32), -EINVAL);
	assert_int_equal(rp_plan_node(p, 32), -EINVAL);
	assert_int_equal(rp_plan_core(p, 32), -EINVAL);
	assert_int_equal(rp_plan_package(p, 32), -EINVAL);
	rp_plan_free(p);
	rp_topo_free(t);
}

static void test_pack_fills_node0_first(void **state)
{
	struct rp_topo *t = load(S4);
	struct rp_plan_opts o = {.policy = RP_PLAN_PACK};
	struct rp_plan *p = plan(t, &o);

	(void)state;
	assert_int_equal(rp_plan_count(p), 32);
	for (unsigned s = 0; s < 32; s++) {
		assert_int_equal(rp_plan_cpu(p, s), (int)s * 2);
		assert_int_equal(rp_plan_node(p, s), (int)s / 8);
	}
	rp_plan_free(p);
	rp_topo_free(t);
}

/* The same number of shards lands differently per node. */
static void test_spread_vs_pack_counts_per_node(void **state)
{
	struct rp_topo *t = load(S4);
	struct rp_plan_opts o = {.max_shards = 12};
	unsigned counts[8];
	struct rp_plan *p;

	(void)state;
	p = plan(t, &o);
	assert_int_equal(rp_plan_count(p), 12);
	node_counts(p, counts);
	assert_int_equal(counts[0], 3);
	assert_int_equal(counts[1], 3);
	assert_int_equal(counts[2], 3);
	assert_int_equal(counts[3], 3);
	rp_plan_free(p);

	o.policy = RP_PLAN_PACK;
	p = plan(t, &o);
	assert_int_equal(rp_plan_count(p), 12);
	node_counts(p, counts);
	assert_int_equal(counts[0], 8);
	assert_int_equal(counts[1], 4);
	assert_int_equal(counts[2], 0);
	assert_int_equal(counts[3], 0);
	rp_plan_free(p);

	/* The first four spread shards: nodes 0, 1, 2, 3, core 0 of each. */
	o.policy = RP_PLAN_SPREAD;
	o.max_shards = 4;
	p = plan(t, &o);
	assert_int_equal(rp_plan_count(p), 4);
	for (unsigned s = 0; s < 4; s++) {
		assert_int_equal(rp_plan_node(p, s), (int)s);
		assert_int_equal(rp_plan_cpu(p, s), (int)s * 16);
	}
	rp_plan_free(p);

	/* More than the topology has: clamped, not an error. */
	o.max_shards = 1000;
	p = plan(t, &o);
	assert_int_equal(rp_plan_count(p), 32);
	rp_plan_free(p);
	rp_topo_free(t);
}

static void test_smt_doubles(void **state)
{
	struct rp_topo *t = load(S4);
	struct rp_plan_opts o = {.smt = true};
	struct rp_plan *p;
	unsigned counts[8];
	cpu_set_t used;

	(void)state;
	p = plan(t, &o);
	assert_int_equal(rp_plan_count(p), 64);
	rp_plan_cpus(p, &used);
	assert_int_equal(CPU_COUNT(&used), 64);
	node_counts(p, counts);
	for (unsigned n = 0; n < 4; n++)
		assert_int_equal(counts[n], 16);
	/* Spread hands out every core's first PU before any sibling. */
	for (unsigned s = 0; s < 64; s++) {
		assert_int_equal(rp_plan_node(p, s), (int)s % 4);
		assert_int_equal(rp_plan_cpu(p, s) % 2, s < 32 ? 0 : 1);
	}
	rp_plan_free(p);

	/* Pack keeps siblings adjacent: logical order. */
	o.policy = RP_PLAN_PACK;
	p = plan(t, &o);
	assert_int_equal(rp_plan_count(p), 64);
	for (unsigned s = 0; s < 64; s++)
		assert_int_equal(rp_plan_cpu(p, s), (int)s);
	rp_plan_free(p);
	rp_topo_free(t);
}

static void test_allowed_cpuset_restricts(void **state)
{
	struct rp_topo *t = load(S4);
	cpu_set_t allowed = cpus_of("0-15");
	struct rp_plan_opts o = {.allowed = &allowed};
	struct rp_plan *p;
	unsigned counts[8];

	(void)state;
	/* Node 0 only: its 8 cores, whatever the policy. */
	p = plan(t, &o);
	assert_int_equal(rp_plan_count(p), 8);
	for (unsigned s = 0; s < 8; s++)
		assert_int_equal(rp_plan_cpu(p, s), (int)s * 2);
	rp_plan_free(p);

	/* Nodes 0 and 3: spread alternates between them. */
	allowed = cpus_of("0-15,48-63");
	p = plan(t, &o);
	assert_int_equal(rp_plan_count(p), 16);
	for (unsigned s = 0; s < 16; s++)
		assert_int_equal(rp_plan_node(p, s), s % 2 ? 3 : 0);
	node_counts(p, counts);
	assert_int_equal(counts[0], 8);
	assert_int_equal(counts[3], 8);
	rp_plan_free(p);

	/* Only second siblings allowed: every core still gets its shard,
	 * on the PU that is allowed. */
	CPU_ZERO(&allowed);
	for (unsigned c = 1; c < 64; c += 2)
		CPU_SET(c, &allowed);
	p = plan(t, &o);
	assert_int_equal(rp_plan_count(p), 32);
	for (unsigned s = 0; s < 32; s++)
		assert_int_equal(rp_plan_cpu(p, s) % 2, 1);
	rp_plan_free(p);

	/* Half a core allowed with smt: the core contributes one shard. */
	allowed = cpus_of("0-2");
	o.smt = true;
	p = plan(t, &o);
	assert_int_equal(rp_plan_count(p), 3);
	rp_plan_free(p);

	/* Nothing of the topology allowed. */
	CPU_ZERO(&allowed);
	assert_int_equal(rp_plan_build(t, &o, &p), -ENODEV);
	assert_null(p);
	allowed = cpus_of("100-200");
	assert_int_equal(rp_plan_build(t, &o, &p), -ENODEV);
	rp_topo_free(t);
}

/* A node whose allowed cores run out is skipped by spread. */
static void test_spread_uneven_nodes(void **state)
{
	struct rp_topo *t = load("package:1 numa:2 core:4 pu:1");
	cpu_set_t allowed = cpus_of("0-4");
	struct rp_plan_opts o = {.allowed = &allowed};
	struct rp_plan *p = plan(t, &o);
	static const int want[] = {0, 4, 1, 2, 3};

	(void)state;
	assert_int_equal(rp_plan_count(p), 5);
	for (unsigned s = 0; s < 5; s++)
		assert_int_equal(rp_plan_cpu(p, s), want[s]);
	rp_plan_free(p);
	rp_topo_free(t);
}

static void test_explicit_cpus(void **state)
{
	struct rp_topo *t = load(S4);
	struct rp_plan_opts o = {.cpus = "9,1-3", .policy = RP_PLAN_PACK};
	cpu_set_t allowed;
	struct rp_plan *p;
	static const int want[] = {1, 2, 3, 9};

	(void)state;
	/* Exactly those CPUs, ascending, siblings included without smt. */
	p = plan(t, &o);
	assert_int_equal(rp_plan_count(p), 4);
	for (unsigned s = 0; s < 4; s++) {
		assert_int_equal(rp_plan_cpu(p, s), want[s]);
		assert_int_equal(rp_plan_node(p, s), 0);
	}
	rp_plan_free(p);

	o.cpus = "40";
	p = plan(t, &o);
	assert_int_equal(rp_plan_count(p), 1);
	assert_int_equal(rp_plan_node(p, 0), 2);
	assert_int_equal(rp_plan_core(p, 0), 20);
	rp_plan_free(p);

	o.max_shards = 2;
	o.cpus = "9,1-3";
	p = plan(t, &o);
	assert_int_equal(rp_plan_count(p), 2);
	assert_int_equal(rp_plan_cpu(p, 1), 2);
	rp_plan_free(p);
	o.max_shards = 0;

	o.cpus = "0,64"; /* 64 is not in the topology */
	assert_int_equal(rp_plan_build(t, &o, &p), -EINVAL);
	o.cpus = "1-3,x";
	assert_int_equal(rp_plan_build(t, &o, &p), -EINVAL);
	o.cpus = "";
	assert_int_equal(rp_plan_build(t, &o, &p), -EINVAL);
	o.cpus = "2000";
	assert_int_equal(rp_plan_build(t, &o, &p), -ERANGE);

	/* Listed but not allowed. */
	allowed = cpus_of("0-15");
	o.allowed = &allowed;
	o.cpus = "15,16";
	assert_int_equal(rp_plan_build(t, &o, &p), -EINVAL);
	assert_null(p);
	rp_topo_free(t);
}

static void test_plan_rejects_bad_opts(void **state)
{
	struct rp_topo *t = load(S4);
	struct rp_plan_opts o = {.policy = (enum rp_plan_policy)7};
	struct rp_plan *p = NULL;

	(void)state;
	assert_int_equal(rp_plan_build(t, &o, &p), -EINVAL);
	o.policy = RP_PLAN_SPREAD;
	o.max_shards = -1;
	assert_int_equal(rp_plan_build(t, &o, &p), -EINVAL);
	assert_int_equal(rp_plan_build(NULL, NULL, &p), -EINVAL);
	assert_int_equal(rp_plan_build(t, NULL, NULL), -EINVAL);
	rp_plan_free(NULL);
	rp_topo_free(t);
}

/* ---- cpulist ---- */

static void test_cpulist_parse(void **state)
{
	cpu_set_t s;

	(void)state;
	assert_int_equal(rp_cpulist_parse("0-3,8,10-11", &s), 0);
	assert_int_equal(CPU_COUNT(&s), 7);
	assert_true(CPU_ISSET(8, &s) && CPU_ISSET(11, &s) && !CPU_ISSET(9, &s));
	assert_int_equal(rp_cpulist_parse("5-5", &s), 0);
	assert_int_equal(CPU_COUNT(&s), 1);
	assert_int_equal(rp_cpulist_parse("3,1,3,0-1", &s), 0); /* unordered, overlapping */
	assert_int_equal(CPU_COUNT(&s), 3);
	assert_int_equal(rp_cpulist_parse("0-1\n", &s), 0); /* as read from /sys */
	assert_int_equal(CPU_COUNT(&s), 2);
	assert_int_equal(rp_cpulist_parse("", &s), 0);
	assert_int_equal(CPU_COUNT(&s), 0);
	assert_int_equal(rp_cpulist_parse("1023", &s), 0);
	assert_true(CPU_ISSET(1023, &s));
	assert_int_equal(rp_cpulist_parse("0-1023", &s), 0);
	assert_int_equal(CPU_COUNT(&s), CPU_SETSIZE);
}

static void test_cpulist_parse_errors(void **state)
{
	static const char *const bad[] = {
		"a",   "1-",  "-1", "1,,2",  "3-1",  "1 2",
		" 1",  "1,",  ",1", "1-2-3", "0x1",  "1\n\n",
		"\n1", "1;2", "+1", "1-+2",  "01-a", "9999999999999999999999x",
	};
	static const char *const range[] = {
		"1024", "0-1024", "99999999999999999999", "1,2000", "1023-4096",
	};
	cpu_set_t s;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (rp_cpulist_parse(bad[i], &s) != -EINVAL)
			fail_msg("'%s' was not rejected as bad syntax", bad[i]);
	}
	for (size_t i = 0; i < sizeof(range) / sizeof(range[0]); i++) {
		if (rp_cpulist_parse(range[i], &s) != -ERANGE)
			fail_msg("'%s' was not rejected as out of range", range[i]);
	}
	assert_int_equal(rp_cpulist_parse(NULL, &s), -EINVAL);
}

static void test_cpulist_format(void **state)
{
	char buf[8192];
	cpu_set_t s = cpus_of("0-3,8,10-11"), back;

	(void)state;
	assert_int_equal(rp_cpulist_format(&s, buf, sizeof(buf)), 11);
	assert_string_equal(buf, "0-3,8,10-11");
	s = cpus_of("0,1");
	assert_int_equal(rp_cpulist_format(&s, buf, sizeof(buf)), 3);
	assert_string_equal(buf, "0-1");
	CPU_ZERO(&s);
	assert_int_equal(rp_cpulist_format(&s, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	s = cpus_of("0-1023");
	assert_int_equal(rp_cpulist_format(&s, buf, sizeof(buf)), 6);
	assert_string_equal(buf, "0-1023");

	/* Too small: -ENOSPC and a NUL-terminated prefix. */
	s = cpus_of("0-3,8");
	assert_int_equal(rp_cpulist_format(&s, buf, 5), -ENOSPC);
	assert_string_equal(buf, "0-3");
	assert_int_equal(rp_cpulist_format(&s, buf, 6), 5); /* exact fit */
	assert_int_equal(rp_cpulist_format(&s, buf, 0), -ENOSPC);

	/* Worst case: every other CPU. */
	CPU_ZERO(&s);
	for (unsigned c = 0; c < CPU_SETSIZE; c += 2)
		CPU_SET(c, &s);
	assert_true(rp_cpulist_format(&s, buf, sizeof(buf)) > 0);
	back = cpus_of(buf);
	assert_true(CPU_EQUAL(&s, &back));
}

/* Random sets survive format then parse (fixed seed, bounded count). */
static void test_cpulist_round_trip(void **state)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;
	char buf[8192];

	(void)state;
	for (unsigned iter = 0; iter < 500; iter++) {
		cpu_set_t s, back;
		unsigned density = 1 + iter % 7;

		CPU_ZERO(&s);
		for (unsigned c = 0; c < CPU_SETSIZE; c++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			if (x % 8 < density)
				CPU_SET(c, &s);
		}
		assert_true(rp_cpulist_format(&s, buf, sizeof(buf)) >= 0);
		assert_int_equal(rp_cpulist_parse(buf, &back), 0);
		assert_true(CPU_EQUAL(&s, &back));
	}
}

/* ---- binding on the real host ---- */

static void test_pin_thread(void **state)
{
	struct rp_topo *t = load(NULL), *syn = load(S4);
	cpu_set_t before, after;
	int cpu = sched_getcpu(), ret;

	(void)state;
	assert_int_equal(rp_pin_thread(syn, 0), -EINVAL);
	assert_int_equal(rp_pin_thread(t, -1), -EINVAL);
	assert_int_equal(rp_pin_thread(t, 1 << 20), -EINVAL);
	if (cpu < 0) {
		printf("# SKIP pin: sched_getcpu failed: %s\n", strerror(errno));
		goto out;
	}
	assert_int_equal(sched_getaffinity(0, sizeof(before), &before), 0);
	ret = rp_pin_thread(t, cpu);
	if (ret) {
		printf("# SKIP pin: hwloc cannot bind this thread to CPU %d here: %s\n", cpu,
		       strerror(-ret));
		goto out;
	}
	assert_int_equal(sched_getaffinity(0, sizeof(after), &after), 0);
	assert_int_equal(CPU_COUNT(&after), 1);
	assert_true(CPU_ISSET((unsigned)cpu, &after));
	assert_int_equal(sched_getcpu(), cpu);
	printf("# pinned to CPU %d\n", cpu);
	assert_int_equal(sched_setaffinity(0, sizeof(before), &before), 0);
out:
	rp_topo_free(syn);
	rp_topo_free(t);
}

static void test_bind_memory(void **state)
{
	struct rp_topo *t = load(NULL), *syn = load(S4);
	struct rp_topo_pu pu;
	int cpu = sched_getcpu(), ret;
	char *m;

	(void)state;
	assert_int_equal(rp_bind_memory(syn, 0), -EINVAL);
	assert_int_equal(rp_bind_memory(t, -1), -EINVAL);
	assert_int_equal(rp_bind_memory(t, 100000), -EINVAL);
	if (cpu < 0 || rp_topo_pu_of_cpu(t, cpu, &pu) || pu.node < 0) {
		printf("# SKIP bind: no NUMA node known for the current CPU\n");
		goto out;
	}
	ret = rp_bind_memory(t, pu.node);
	if (ret < 0) {
		assert_true(ret == -EPERM || ret == -ENOSYS || ret == -EXDEV);
		printf("# SKIP bind: memory binding refused here: %s\n", strerror(-ret));
		goto out;
	}
	assert_true(ret == 0 || ret == 1);
	printf("# memory bound to node %d (%s)\n", pu.node, ret ? "preferred" : "strict");
	/* A bound thread still allocates and touches memory. */
	m = malloc(1 << 20);
	assert_non_null(m);
	memset(m, 1, 1 << 20);
	free(m);
	assert_int_equal(set_mempolicy(MPOL_DEFAULT, NULL, 0), 0);
out:
	rp_topo_free(syn);
	rp_topo_free(t);
}

static void test_set_fifo(void **state)
{
	struct sched_param sp = {0};
	int ret, policy;

	(void)state;
	assert_int_equal(rp_set_fifo(0), -EINVAL);
	assert_int_equal(rp_set_fifo(100), -EINVAL);
	assert_int_equal(rp_set_fifo(-5), -EINVAL);
	assert_non_null(strstr(rp_set_fifo_strerror(-EPERM), "CAP_SYS_NICE"));
	assert_non_null(rp_set_fifo_strerror(-ENOMEM));

	ret = rp_set_fifo(1);
	if (ret == -EPERM) {
		printf("# SKIP fifo: %s\n", rp_set_fifo_strerror(ret));
		return;
	}
	assert_int_equal(ret, 0);
	assert_int_equal(pthread_getschedparam(pthread_self(), &policy, &sp), 0);
	assert_int_equal(policy, SCHED_FIFO);
	assert_int_equal(sp.sched_priority, 1);
	printf("# SCHED_FIFO 1 set, back to SCHED_OTHER\n");
	sp.sched_priority = 0;
	assert_int_equal(pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_rejects_bad_input),
		cmocka_unit_test(test_host_topology),
		cmocka_unit_test(test_synthetic_1x2),
		cmocka_unit_test(test_synthetic_2x2x8x2_counts),
		cmocka_unit_test(test_synthetic_pu_limit),
		cmocka_unit_test(test_synthetic_caches),
		cmocka_unit_test(test_default_plan_one_per_core_spread),
		cmocka_unit_test(test_pack_fills_node0_first),
		cmocka_unit_test(test_spread_vs_pack_counts_per_node),
		cmocka_unit_test(test_smt_doubles),
		cmocka_unit_test(test_allowed_cpuset_restricts),
		cmocka_unit_test(test_spread_uneven_nodes),
		cmocka_unit_test(test_explicit_cpus),
		cmocka_unit_test(test_plan_rejects_bad_opts),
		cmocka_unit_test(test_cpulist_parse),
		cmocka_unit_test(test_cpulist_parse_errors),
		cmocka_unit_test(test_cpulist_format),
		cmocka_unit_test(test_cpulist_round_trip),
		cmocka_unit_test(test_pin_thread),
		cmocka_unit_test(test_bind_memory),
		cmocka_unit_test(test_set_fifo),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
