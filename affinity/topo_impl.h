/* SPDX-License-Identifier: MIT */
/*
 * Private to affinity/: the snapshot of an hwloc topology that the public
 * accessors and the planner read. Everything the plan needs is copied out
 * of hwloc at load, so planning never walks the hwloc tree; the hwloc
 * topology is kept for binding.
 */
#ifndef RP_AFFINITY_TOPO_IMPL_H
#define RP_AFFINITY_TOPO_IMPL_H

#include <stdbool.h>

#include <hwloc.h>

#include <ringplane/topo.h>

#if HWLOC_API_VERSION < 0x00020000
#error "ringplane needs hwloc 2.x (NUMA nodes as memory children)"
#endif

struct rp_topo {
	hwloc_topology_t hw;
	char *synthetic; /* NULL: this host */
	bool thissystem; /* hwloc describes the machine we run on */
	unsigned npackages;
	unsigned nnodes;
	unsigned ncores;
	unsigned npus;
	struct rp_topo_pu *pu; /* npus, logical order */
	int *pu_node_idx;      /* npus: logical index of the PU's node, -1 unknown */
	int *node_os;	       /* nnodes: OS index per logical node */
	struct rp_topo_caches caches;
};

#endif /* RP_AFFINITY_TOPO_IMPL_H */
