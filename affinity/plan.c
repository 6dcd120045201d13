/* SPDX-License-Identifier: MIT */
/*
 * Shard placement plan (contract and policies in include/ringplane/topo.h).
 *
 * The planner works on the PU snapshot in logical order, where a core's
 * PUs are adjacent and a node's cores are adjacent. Each allowed PU gets a
 * rank within its core (0 for the first allowed PU, 1 for its first allowed
 * sibling, ...); without smt only rank 0 is kept. PUs are then bucketed
 * per NUMA node, ordered inside a bucket by (core, rank) for pack or by
 * (rank, core) for spread, and the buckets are concatenated (pack) or
 * dealt round-robin (spread).
 */
#include <errno.h>
#include <stdlib.h>

#include "topo_impl.h"

struct shard {
	int cpu;
	int core;
	int node;
	int package;
};

struct rp_plan {
	unsigned n;
	struct shard shard[];
};

static struct rp_plan *plan_alloc(unsigned n)
{
	return calloc(1, sizeof(struct rp_plan) + (size_t)n * sizeof(struct shard));
}

static void plan_add(struct rp_plan *p, const struct rp_topo_pu *pu)
{
	p->shard[p->n].cpu = pu->cpu;
	p->shard[p->n].core = pu->core;
	p->shard[p->n].node = pu->node;
	p->shard[p->n].package = pu->package;
	p->n++;
}

static bool pu_allowed(const struct rp_topo_pu *pu, const cpu_set_t *allowed)
{
	return pu->cpu >= 0 && pu->cpu < CPU_SETSIZE && CPU_ISSET((unsigned)pu->cpu, allowed);
}

/* Exactly the listed CPUs, ascending. */
static int plan_explicit(const struct rp_topo *t, const char *list, const cpu_set_t *allowed,
			 unsigned max, struct rp_plan **out)
{
	cpu_set_t want;
	struct rp_plan *p;
	int ret, n;

	ret = rp_cpulist_parse(list, &want);
	if (ret)
		return ret;
	n = CPU_COUNT(&want);
	if (n == 0)
		return -EINVAL;
	/* Every listed CPU is checked, also those beyond max_shards: a typo
	 * in the list is an error whatever the shard count. */
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (CPU_ISSET((unsigned)cpu, &want) &&
		    (!CPU_ISSET((unsigned)cpu, allowed) || rp_topo_pu_of_cpu(t, cpu, NULL)))
			return -EINVAL;
	}
	p = plan_alloc((unsigned)n);
	if (!p)
		return -ENOMEM;
	for (int cpu = 0; cpu < CPU_SETSIZE && p->n < max; cpu++) {
		struct rp_topo_pu pu;

		if (CPU_ISSET((unsigned)cpu, &want) && rp_topo_pu_of_cpu(t, cpu, &pu) == 0)
			plan_add(p, &pu);
	}
	*out = p;
	return 0;
}

static int plan_policy(const struct rp_topo *t, const struct rp_plan_opts *o,
		       const cpu_set_t *allowed, unsigned max, struct rp_plan **out)
{
	/* Buckets 0..nnodes-1 are the nodes in logical order; bucket nnodes
	 * collects PUs with no known node (hwloc always gives one, but a
	 * missing one must not drop a CPU). */
	unsigned nb = t->nnodes + 1;
	unsigned npus = t->npus;
	int *rank = NULL, *core_seen = NULL;
	unsigned *bcount = NULL, *bstart = NULL, *bfill = NULL, *order = NULL;
	unsigned max_rank = 0, used = 0, longest = 0;
	struct rp_plan *p = NULL;
	int ret = -ENOMEM;

	rank = malloc(npus * sizeof(*rank));
	core_seen = calloc(t->ncores, sizeof(*core_seen));
	bcount = calloc(nb, sizeof(*bcount));
	bstart = calloc(nb, sizeof(*bstart));
	bfill = calloc(nb, sizeof(*bfill));
	order = malloc(npus * sizeof(*order));
	if (!rank || !core_seen || !bcount || !bstart || !bfill || !order)
		goto out;

	/* Rank of each allowed PU within its core; -1: not used. */
	for (unsigned i = 0; i < npus; i++) {
		const struct rp_topo_pu *pu = &t->pu[i];
		unsigned b = t->pu_node_idx[i] >= 0 ? (unsigned)t->pu_node_idx[i] : t->nnodes;

		rank[i] = -1;
		if (!pu_allowed(pu, allowed))
			continue;
		rank[i] = core_seen[pu->core]++;
		if (rank[i] > 0 && !o->smt) {
			rank[i] = -1;
			continue;
		}
		if ((unsigned)rank[i] > max_rank)
			max_rank = (unsigned)rank[i];
		bcount[b]++;
		used++;
	}
	if (used == 0) {
		ret = -ENODEV;
		goto out;
	}
	for (unsigned b = 1; b < nb; b++)
		bstart[b] = bstart[b - 1] + bcount[b - 1];
	for (unsigned b = 0; b < nb; b++)
		longest = bcount[b] > longest ? bcount[b] : longest;

	/* Order inside each bucket: pack keeps logical order (core, rank);
	 * spread takes every core's rank-0 PU before any rank-1 sibling, so a
	 * truncated smt plan still uses as many physical cores as it can. */
	for (unsigned r = 0; r <= max_rank; r++) {
		for (unsigned i = 0; i < npus; i++) {
			unsigned b =
				t->pu_node_idx[i] >= 0 ? (unsigned)t->pu_node_idx[i] : t->nnodes;

			if (rank[i] < 0 || (o->policy == RP_PLAN_SPREAD && (unsigned)rank[i] != r))
				continue;
			order[bstart[b] + bfill[b]++] = i;
		}
		if (o->policy == RP_PLAN_PACK)
			break;
	}

	if (used < max)
		max = used;
	p = plan_alloc(max);
	if (!p)
		goto out;
	if (o->policy == RP_PLAN_PACK) {
		for (unsigned k = 0; k < used && p->n < max; k++)
			plan_add(p, &t->pu[order[k]]);
	} else {
		for (unsigned k = 0; k < longest && p->n < max; k++) {
			for (unsigned b = 0; b < nb && p->n < max; b++) {
				if (k < bcount[b])
					plan_add(p, &t->pu[order[bstart[b] + k]]);
			}
		}
	}
	*out = p;
	ret = 0;
out:
	free(rank);
	free(core_seen);
	free(bcount);
	free(bstart);
	free(bfill);
	free(order);
	return ret;
}

int rp_plan_build(const struct rp_topo *t, const struct rp_plan_opts *opts, struct rp_plan **out)
{
	static const struct rp_plan_opts defaults;
	const struct rp_plan_opts *o = opts ? opts : &defaults;
	cpu_set_t allowed;
	unsigned max;
	int ret;

	if (!t || !out)
		return -EINVAL;
	*out = NULL;
	if ((o->policy != RP_PLAN_SPREAD && o->policy != RP_PLAN_PACK) || o->max_shards < 0)
		return -EINVAL;
	max = o->max_shards ? (unsigned)o->max_shards : t->npus;

	if (o->allowed) {
		allowed = *o->allowed;
	} else {
		ret = rp_topo_allowed(t, &allowed);
		if (ret)
			return ret;
	}
	if (o->cpus)
		return plan_explicit(t, o->cpus, &allowed, max, out);
	return plan_policy(t, o, &allowed, max, out);
}

void rp_plan_free(struct rp_plan *p)
{
	free(p);
}

unsigned rp_plan_count(const struct rp_plan *p)
{
	return p->n;
}

int rp_plan_cpu(const struct rp_plan *p, unsigned shard)
{
	return shard < p->n ? p->shard[shard].cpu : -EINVAL;
}

int rp_plan_node(const struct rp_plan *p, unsigned shard)
{
	return shard < p->n ? p->shard[shard].node : -EINVAL;
}

int rp_plan_core(const struct rp_plan *p, unsigned shard)
{
	return shard < p->n ? p->shard[shard].core : -EINVAL;
}

int rp_plan_package(const struct rp_plan *p, unsigned shard)
{
	return shard < p->n ? p->shard[shard].package : -EINVAL;
}

void rp_plan_cpus(const struct rp_plan *p, cpu_set_t *out)
{
	CPU_ZERO(out);
	for (unsigned i = 0; i < p->n; i++)
		CPU_SET((unsigned)p->shard[i].cpu, out);
}
