/* SPDX-License-Identifier: MIT */
/*
 * ringplane topo: the CPU and memory topology (from hwloc), the shard
 * placement plan built on it, and pinning a thread and its memory.
 *
 * Numbering used throughout:
 *   cpu      the OS index of a PU (hardware thread), as in taskset, /proc
 *            and cpu_set_t; a synthetic topology numbers its PUs 0..n-1.
 *   node     the OS index of a NUMA node, as libnuma, mbind and
 *            rp_pool_create take it.
 *   core     the logical index of a physical core (0..cores-1, in hwloc's
 *            order). A PU with no Core object above it (some VMs, synthetic
 *            "pu:N") counts as a core of its own.
 *   package  the logical index of a package (socket), -1 where the
 *            topology has none.
 *
 * Placement plan: one shard per physical core by default, on the first
 * allowed PU of that core (SMT siblings are left out unless opts.smt), on
 * the cores that have at least one allowed PU. The allowed set is the
 * caller's sched_getaffinity() on a host topology (so taskset, cgroup
 * cpusets and isolcpus are honoured) and every PU of a synthetic one,
 * unless opts.allowed says otherwise. Shard order:
 *
 *   spread  round-robin across NUMA nodes: node0 core0, node1 core0, ...,
 *           node0 core1, node1 core1, ...; a node whose cores run out is
 *           skipped. With smt, each node hands out the first PU of all its
 *           cores before any second PU.
 *   pack    node 0's cores in order, then node 1's, ...; with smt, a
 *           core's PUs are adjacent.
 *   cpus    an explicit cpulist: exactly those CPUs in ascending order;
 *           policy and smt are ignored.
 *
 * With max_shards the plan is the first max_shards shards of that order,
 * so spread places a few shards on distinct nodes and pack on one.
 *
 * Thread rules: a topology and a plan are immutable once built; any thread
 * may read them concurrently. rp_pin_thread, rp_bind_memory and rp_set_fifo
 * act on the calling thread only (a shard calls them first thing on its
 * own thread).
 */
#ifndef RINGPLANE_TOPO_H
#define RINGPLANE_TOPO_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rp_topo;
struct rp_plan;

/* One PU (hardware thread) of a topology; see the numbering above. */
struct rp_topo_pu {
	int cpu;     /* OS index */
	int core;    /* logical core index */
	int node;    /* NUMA node OS index, -1 if unknown */
	int package; /* logical package index, -1 if none */
};

/* Cache sizes in bytes of one cache of each level, and how many there are;
 * 0 where the topology does not say (synthetic descriptions without cache
 * levels, containers that hide /sys/devices/system/cpu/cpu* /cache). */
struct rp_topo_caches {
	uint64_t l1d, l2, l3;
	unsigned l1d_count, l2_count, l3_count;
};

/*
 * rp_topo_load - discover the topology of this host (@synthetic NULL) or
 * build the hwloc synthetic one @synthetic describes, e.g.
 * "package:2 numa:2 core:8 pu:2" (2 packages x 2 NUMA nodes x 8 cores x
 * 2 PUs: 64 PUs, 32 cores, 4 nodes).
 *
 * On a host, PUs outside the cgroup cpuset are not in the topology (hwloc's
 * default); taskset restrictions are applied by the plan, not here.
 * A synthetic description may give at most CPU_SETSIZE (1024) PUs, as many
 * as a plan can place (its PUs are all allowed, see above): the product of
 * its level counts is checked before hwloc builds anything, so "pu:20000"
 * is refused at once rather than after minutes inside hwloc.
 * Returns 0 and stores the topology in *@out, or -EINVAL (bad synthetic
 * description, NULL @out), -ERANGE (a synthetic description of more than
 * CPU_SETSIZE PUs), -ENOMEM, or another -errno from hwloc.
 */
int rp_topo_load(struct rp_topo **out, const char *synthetic);

/* rp_topo_free - free a topology (NULL is a no-op). Plans built from it
 * stay valid; no thread may use @t concurrently or afterwards. */
void rp_topo_free(struct rp_topo *t);

/* rp_topo_synthetic - the synthetic description @t was built from, or NULL
 * for this host's topology. Valid while @t lives. */
const char *rp_topo_synthetic(const struct rp_topo *t);

/* Object counts. A topology always has at least one PU, core and NUMA node;
 * packages may be 0 (synthetic "core:2 pu:2"). */
unsigned rp_topo_packages(const struct rp_topo *t);
unsigned rp_topo_nodes(const struct rp_topo *t);
unsigned rp_topo_cores(const struct rp_topo *t);
unsigned rp_topo_pus(const struct rp_topo *t);

/*
 * rp_topo_pu - describe the @i-th PU in hwloc's logical order (PUs of a
 * core are adjacent, cores of a node are adjacent).
 * Returns 0, or -EINVAL when @i >= rp_topo_pus(@t).
 */
int rp_topo_pu(const struct rp_topo *t, unsigned i, struct rp_topo_pu *out);

/*
 * rp_topo_pu_of_cpu - describe the PU whose OS index is @cpu.
 * Returns 0, or -ENOENT when @t has no such PU.
 */
int rp_topo_pu_of_cpu(const struct rp_topo *t, int cpu, struct rp_topo_pu *out);

/*
 * rp_topo_node - the @i-th NUMA node in logical order (0 ..
 * rp_topo_nodes(@t) - 1): returns its OS index (>= 0) and, when @cpus is not
 * NULL, stores the CPUs local to it. Returns -EINVAL when @i is out of range.
 */
int rp_topo_node(const struct rp_topo *t, unsigned i, cpu_set_t *cpus);

/* rp_topo_caches - fill @out with the cache sizes and counts of @t. */
void rp_topo_caches(const struct rp_topo *t, struct rp_topo_caches *out);

/*
 * rp_topo_allowed - the CPUs a plan may use when opts.allowed is NULL:
 * every PU of a synthetic topology; on a host, the PUs of @t that are in
 * the calling thread's sched_getaffinity() mask.
 * Returns 0, or -errno from sched_getaffinity.
 */
int rp_topo_allowed(const struct rp_topo *t, cpu_set_t *out);

enum rp_plan_policy {
	RP_PLAN_SPREAD = 0, /* round-robin across NUMA nodes (the default) */
	RP_PLAN_PACK = 1,   /* fill node 0, then node 1, ... */
};

/* Options of rp_plan_build; all-zero (or a NULL pointer) is the default:
 * spread, one shard per core, every allowed core. */
struct rp_plan_opts {
	const char *cpus; /* explicit cpulist ("0-3,8"), or NULL */
	enum rp_plan_policy policy;
	bool smt;		  /* one shard per allowed PU, not per core */
	int max_shards;		  /* 0 = as many as the topology allows */
	const cpu_set_t *allowed; /* NULL = rp_topo_allowed() */
};

/*
 * rp_plan_build - place shards on @t as described at the top of this file.
 *
 * Returns 0 and stores the plan in *@out (free it with rp_plan_free), or:
 *   -EINVAL  bad policy, negative max_shards, a cpulist with bad syntax or
 *            naming a CPU that is not in @t or not allowed;
 *   -ERANGE  a cpulist naming a CPU >= CPU_SETSIZE;
 *   -ENODEV  no CPU of @t is allowed (the plan would be empty);
 *   -ENOMEM, or -errno from sched_getaffinity.
 * Any thread; @t is only read.
 */
int rp_plan_build(const struct rp_topo *t, const struct rp_plan_opts *opts, struct rp_plan **out);

/* rp_plan_free - free a plan (NULL is a no-op). */
void rp_plan_free(struct rp_plan *p);

/* rp_plan_count - the number of shards (at least 1). */
unsigned rp_plan_count(const struct rp_plan *p);

/* Per shard (0 .. rp_plan_count - 1): its CPU (OS index), NUMA node (OS
 * index, -1 if unknown), logical core and package (-1 if none). Each
 * returns -EINVAL when @shard is out of range. */
int rp_plan_cpu(const struct rp_plan *p, unsigned shard);
int rp_plan_node(const struct rp_plan *p, unsigned shard);
int rp_plan_core(const struct rp_plan *p, unsigned shard);
int rp_plan_package(const struct rp_plan *p, unsigned shard);

/* rp_plan_cpus - store the set of the plan's CPUs in @out. */
void rp_plan_cpus(const struct rp_plan *p, cpu_set_t *out);

/*
 * rp_cpulist_parse - parse a Linux cpulist ("0-3,8,10-11": decimal CPU
 * numbers and inclusive ranges N-M with N <= M, separated by commas; one
 * trailing newline is accepted, as read from /sys) into @out. The empty
 * string is the empty set, as in /sys/devices/system/cpu/isolated.
 * Returns 0, -EINVAL on bad syntax (@out is then unspecified), or -ERANGE
 * when a CPU number is >= CPU_SETSIZE.
 */
int rp_cpulist_parse(const char *s, cpu_set_t *out);

/*
 * rp_cpulist_format - write @set as a cpulist into @buf (@len bytes with
 * the terminating NUL), runs of two or more CPUs as ranges: "0-3,8,10-11";
 * the empty set is "". Returns the string length, or -ENOSPC when @len is
 * too small (@buf then holds the whole entries that fit, NUL-terminated, if
 * @len > 0), or -EINVAL for a NULL argument.
 */
int rp_cpulist_format(const cpu_set_t *set, char *buf, size_t len);

/*
 * rp_pin_thread - bind the calling thread to CPU @cpu (hwloc_set_cpubind,
 * HWLOC_CPUBIND_THREAD). @t must be this host's topology.
 * Returns 0, -EINVAL (@t is synthetic, or @cpu is not one of its PUs), or
 * -errno from the kernel (e.g. -EINVAL for a CPU outside the cgroup cpuset,
 * -EPERM in some sandboxes).
 */
int rp_pin_thread(const struct rp_topo *t, int cpu);

/*
 * rp_bind_memory - make the calling thread's future allocations come from
 * NUMA node @node (OS index): hwloc_set_membind with HWLOC_MEMBIND_BIND |
 * HWLOC_MEMBIND_THREAD. Where hwloc cannot bind strictly (ENOSYS, EXDEV),
 * falls back to libnuma's set_mempolicy(MPOL_PREFERRED) (numa_set_preferred
 * would hide the error) and says so with a return value of 1.
 * Returns 0 (bound), 1 (preferred only), -EINVAL (@t is synthetic, or has
 * no node @node), or -errno (e.g. -EPERM where set_mempolicy is filtered).
 */
int rp_bind_memory(const struct rp_topo *t, int node);

/*
 * rp_set_fifo - switch the calling thread to SCHED_FIFO at @priority
 * (sched_get_priority_min..max, 1..99 on Linux).
 * Returns 0, -EINVAL for a priority out of range, -EPERM when not permitted
 * (see rp_set_fifo_strerror for what to tell the operator), or another
 * -errno. Never aborts; the thread's policy is unchanged on failure.
 */
int rp_set_fifo(int priority);

/* rp_set_fifo_strerror - a one-line explanation of rp_set_fifo's @err for
 * the caller to print; for -EPERM it names what grants the permission. */
const char *rp_set_fifo_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* RINGPLANE_TOPO_H */
