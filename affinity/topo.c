/* SPDX-License-Identifier: MIT */
/*
 * Topology discovery (contract in include/ringplane/topo.h).
 *
 * hwloc 2 hangs NUMA nodes off the tree as memory children, so a PU's node
 * is read from its nodeset (the nodes local to it) rather than from an
 * ancestor. On the rare machine where a PU is local to several nodes (KNL
 * flat mode: DDR and MCDRAM), the first one, normally the DDR node, is the
 * PU's node.
 */
#include <ctype.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "topo_impl.h"

/* hwloc reports failures through errno; never turn one into a success. */
static int neg_errno(int fallback)
{
	return errno > 0 ? -errno : -fallback;
}

static unsigned count_of(hwloc_topology_t hw, hwloc_obj_type_t type)
{
	int n = hwloc_get_nbobjs_by_type(hw, type);

	/* -1 means "at several depths", which hwloc 2 never does for these
	 * types; treat it as unknown rather than as a huge count. */
	return n > 0 ? (unsigned)n : 0;
}

static void read_cache(hwloc_topology_t hw, hwloc_obj_type_t type, uint64_t *size, unsigned *count)
{
	hwloc_obj_t c = hwloc_get_obj_by_type(hw, type, 0);

	*count = count_of(hw, type);
	*size = c && c->attr ? c->attr->cache.size : 0;
}

static int snapshot(struct rp_topo *t)
{
	hwloc_topology_t hw = t->hw;
	unsigned hw_cores = count_of(hw, HWLOC_OBJ_CORE);
	unsigned lone_pus = 0; /* PUs without a Core: each is a core of its own */

	t->npus = count_of(hw, HWLOC_OBJ_PU);
	t->nnodes = count_of(hw, HWLOC_OBJ_NUMANODE);
	t->npackages = count_of(hw, HWLOC_OBJ_PACKAGE);
	if (t->npus == 0 || t->nnodes == 0)
		return -ENODEV;

	t->pu = calloc(t->npus, sizeof(*t->pu));
	t->pu_node_idx = calloc(t->npus, sizeof(*t->pu_node_idx));
	t->node_os = calloc(t->nnodes, sizeof(*t->node_os));
	if (!t->pu || !t->pu_node_idx || !t->node_os)
		return -ENOMEM;

	for (unsigned i = 0; i < t->nnodes; i++) {
		hwloc_obj_t n = hwloc_get_obj_by_type(hw, HWLOC_OBJ_NUMANODE, i);

		if (!n)
			return -EIO;
		t->node_os[i] = (int)n->os_index;
	}

	for (unsigned i = 0; i < t->npus; i++) {
		hwloc_obj_t pu = hwloc_get_obj_by_type(hw, HWLOC_OBJ_PU, i);
		hwloc_obj_t core, pkg, node = NULL;
		int first_node;

		if (!pu || pu->os_index == HWLOC_UNKNOWN_INDEX)
			return -EIO;
		core = hwloc_get_ancestor_obj_by_type(hw, HWLOC_OBJ_CORE, pu);
		pkg = hwloc_get_ancestor_obj_by_type(hw, HWLOC_OBJ_PACKAGE, pu);
		first_node = pu->nodeset ? hwloc_bitmap_first(pu->nodeset) : -1;
		if (first_node >= 0)
			node = hwloc_get_numanode_obj_by_os_index(hw, (unsigned)first_node);

		t->pu[i].cpu = (int)pu->os_index;
		t->pu[i].core = core ? (int)core->logical_index : (int)(hw_cores + lone_pus++);
		t->pu[i].package = pkg ? (int)pkg->logical_index : -1;
		t->pu[i].node = node ? (int)node->os_index : -1;
		t->pu_node_idx[i] = node ? (int)node->logical_index : -1;
	}
	t->ncores = hw_cores + lone_pus;

	read_cache(hw, HWLOC_OBJ_L1CACHE, &t->caches.l1d, &t->caches.l1d_count);
	read_cache(hw, HWLOC_OBJ_L2CACHE, &t->caches.l2, &t->caches.l2_count);
	read_cache(hw, HWLOC_OBJ_L3CACHE, &t->caches.l3, &t->caches.l3_count);
	return 0;
}

/*
 * The PU count a synthetic description asks for: the product of its level
 * counts ("type:N" or a bare "N"; attributes in (...) and memory children
 * in [...] skipped), saturated just above CPU_SETSIZE. Read here, before
 * hwloc, because hwloc builds every object it is told to: "pu:20000" ran
 * for more than 100 s inside hwloc_topology_load. 0 when a level's count
 * is not a plain decimal number (hwloc then judges the string).
 */
static unsigned long synthetic_pus(const char *s)
{
	unsigned long prod = 1;

	while (*s) {
		const char *tok, *num, *q;
		unsigned long n = 0;

		if (isspace((unsigned char)*s)) {
			s++;
			continue;
		}
		if (*s == '(' || *s == '[') {
			char close = *s == '(' ? ')' : ']';
			int depth = 0;

			for (; *s; s++) {
				depth += *s == '(' || *s == '[';
				depth -= *s == close || *s == (close == ')' ? ']' : ')');
				if (depth == 0) {
					s++;
					break;
				}
			}
			continue;
		}
		tok = s;
		while (*s && !isspace((unsigned char)*s) && *s != '(' && *s != '[')
			s++;
		num = tok;
		for (q = tok; q < s; q++)
			if (*q == ':')
				num = q + 1;
		if (num == s)
			return 0;
		for (q = num; q < s; q++) {
			if (!isdigit((unsigned char)*q))
				return 0;
			n = n * 10 + (unsigned long)(*q - '0');
			if (n > CPU_SETSIZE)
				n = CPU_SETSIZE + 1;
		}
		prod *= n;
		if (prod > CPU_SETSIZE)
			prod = CPU_SETSIZE + 1;
	}
	return prod;
}

int rp_topo_load(struct rp_topo **out, const char *synthetic)
{
	struct rp_topo *t;
	int ret;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (synthetic && synthetic_pus(synthetic) > CPU_SETSIZE)
		return -ERANGE;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	errno = 0;
	if (hwloc_topology_init(&t->hw)) {
		ret = neg_errno(ENOMEM);
		free(t);
		return ret;
	}
	if (synthetic) {
		t->synthetic = strdup(synthetic);
		if (!t->synthetic) {
			ret = -ENOMEM;
			goto err;
		}
		errno = 0;
		if (hwloc_topology_set_synthetic(t->hw, synthetic)) {
			ret = -EINVAL;
			goto err;
		}
	}
	errno = 0;
	if (hwloc_topology_load(t->hw)) {
		ret = neg_errno(EIO);
		goto err;
	}
	/* HWLOC_XMLFILE / HWLOC_SYNTHETIC in the environment can make even a
	 * "host" topology describe some other machine: never bind through it. */
	t->thissystem = !synthetic && hwloc_topology_is_thissystem(t->hw);
	ret = snapshot(t);
	if (ret)
		goto err;
	/* whatever form the string took: the plan holds CPU_SETSIZE PUs */
	if (synthetic && t->npus > CPU_SETSIZE) {
		ret = -ERANGE;
		goto err;
	}
	*out = t;
	return 0;
err:
	rp_topo_free(t);
	return ret;
}

void rp_topo_free(struct rp_topo *t)
{
	if (!t)
		return;
	hwloc_topology_destroy(t->hw);
	free(t->pu);
	free(t->pu_node_idx);
	free(t->node_os);
	free(t->synthetic);
	free(t);
}

const char *rp_topo_synthetic(const struct rp_topo *t)
{
	return t->synthetic;
}

unsigned rp_topo_packages(const struct rp_topo *t)
{
	return t->npackages;
}

unsigned rp_topo_nodes(const struct rp_topo *t)
{
	return t->nnodes;
}

unsigned rp_topo_cores(const struct rp_topo *t)
{
	return t->ncores;
}

unsigned rp_topo_pus(const struct rp_topo *t)
{
	return t->npus;
}

int rp_topo_pu(const struct rp_topo *t, unsigned i, struct rp_topo_pu *out)
{
	if (i >= t->npus)
		return -EINVAL;
	*out = t->pu[i];
	return 0;
}

int rp_topo_pu_of_cpu(const struct rp_topo *t, int cpu, struct rp_topo_pu *out)
{
	for (unsigned i = 0; i < t->npus; i++) {
		if (t->pu[i].cpu == cpu) {
			if (out)
				*out = t->pu[i];
			return 0;
		}
	}
	return -ENOENT;
}

int rp_topo_node(const struct rp_topo *t, unsigned i, cpu_set_t *cpus)
{
	if (i >= t->nnodes)
		return -EINVAL;
	if (cpus) {
		CPU_ZERO(cpus);
		for (unsigned p = 0; p < t->npus; p++) {
			/* A PU numbered beyond CPU_SETSIZE cannot be named in a
			 * cpu_set_t; it is left out of every set (and every plan). */
			if (t->pu_node_idx[p] == (int)i && t->pu[p].cpu < CPU_SETSIZE)
				CPU_SET((unsigned)t->pu[p].cpu, cpus);
		}
	}
	return t->node_os[i];
}

void rp_topo_caches(const struct rp_topo *t, struct rp_topo_caches *out)
{
	*out = t->caches;
}

int rp_topo_allowed(const struct rp_topo *t, cpu_set_t *out)
{
	cpu_set_t mask;

	CPU_ZERO(&mask);
	if (t->thissystem) {
		if (sched_getaffinity(0, sizeof(mask), &mask))
			return neg_errno(EINVAL);
	}
	CPU_ZERO(out);
	for (unsigned i = 0; i < t->npus; i++) {
		unsigned cpu = (unsigned)t->pu[i].cpu;

		if (cpu < CPU_SETSIZE && (!t->thissystem || CPU_ISSET(cpu, &mask)))
			CPU_SET(cpu, out);
	}
	return 0;
}
