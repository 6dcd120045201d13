/* SPDX-License-Identifier: MIT */
/*
 * Pinning a thread, binding its memory, real-time scheduling (contract in
 * include/ringplane/topo.h). All of these act on the calling thread only.
 */
#include <errno.h>
#include <limits.h>
#include <numaif.h>
#include <pthread.h>
#include <string.h>

#include "topo_impl.h"

static int neg_errno(int fallback)
{
	return errno > 0 ? -errno : -fallback;
}

int rp_pin_thread(const struct rp_topo *t, int cpu)
{
	hwloc_obj_t pu;

	if (!t || !t->thissystem || cpu < 0)
		return -EINVAL;
	pu = hwloc_get_pu_obj_by_os_index(t->hw, (unsigned)cpu);
	if (!pu || !pu->cpuset)
		return -EINVAL;
	errno = 0;
	if (hwloc_set_cpubind(t->hw, pu->cpuset, HWLOC_CPUBIND_THREAD))
		return neg_errno(EINVAL);
	return 0;
}

/* The preferred-node fallback, straight through libnuma's syscall wrapper:
 * numa_set_preferred() returns void and reports failure only on stderr. */
static int prefer_node(int node)
{
	enum { BITS = (int)(sizeof(unsigned long) * CHAR_BIT) };
	unsigned long mask[1024 / BITS];

	if (node >= (int)(sizeof(mask) * CHAR_BIT) - 1)
		return -EINVAL;
	memset(mask, 0, sizeof(mask));
	mask[node / BITS] = 1ul << (node % BITS);
	errno = 0;
	/* maxnode counts bits, and the kernel reads one fewer than given
	 * (a long-standing off-by-one in mm/mempolicy.c get_nodes()). */
	if (set_mempolicy(MPOL_PREFERRED, mask, sizeof(mask) * CHAR_BIT))
		return neg_errno(EINVAL);
	return 1;
}

int rp_bind_memory(const struct rp_topo *t, int node)
{
	hwloc_obj_t n;
	int err;

	if (!t || !t->thissystem || node < 0)
		return -EINVAL;
	n = hwloc_get_numanode_obj_by_os_index(t->hw, (unsigned)node);
	if (!n || !n->nodeset)
		return -EINVAL;
	errno = 0;
	if (hwloc_set_membind(t->hw, n->nodeset, HWLOC_MEMBIND_BIND,
			      HWLOC_MEMBIND_THREAD | HWLOC_MEMBIND_BYNODESET) == 0)
		return 0;
	err = neg_errno(EINVAL);
	/* ENOSYS: hwloc has no strict binding here; EXDEV: it cannot bind to
	 * exactly this node set. Either way a preference is the best left. */
	if (err != -ENOSYS && err != -EXDEV)
		return err;
	return prefer_node(node);
}

int rp_set_fifo(int priority)
{
	struct sched_param sp;
	int lo = sched_get_priority_min(SCHED_FIFO);
	int hi = sched_get_priority_max(SCHED_FIFO);
	int ret;

	if (lo < 0 || hi < 0)
		return -ENOSYS;
	if (priority < lo || priority > hi)
		return -EINVAL;
	memset(&sp, 0, sizeof(sp));
	sp.sched_priority = priority;
	/* pthread_setschedparam returns the error; it does not set errno. */
	ret = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
	return ret > 0 ? -ret : ret;
}

const char *rp_set_fifo_strerror(int err)
{
	switch (err) {
	case 0:
		return "SCHED_FIFO set";
	case -EPERM:
		return "SCHED_FIFO not permitted: needs CAP_SYS_NICE, or RLIMIT_RTPRIO at least "
		       "the priority (ulimit -r, LimitRTPRIO= in systemd); with cgroup v1 RT group "
		       "scheduling the cgroup also needs cpu.rt_runtime_us > 0";
	case -EINVAL:
		return "SCHED_FIFO priority out of range (1..99)";
	case -ENOSYS:
		return "SCHED_FIFO not supported by this kernel";
	default:
		return err < 0 ? strerror(-err) : "unknown error";
	}
}
