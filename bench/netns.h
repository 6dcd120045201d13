/* SPDX-License-Identifier: MIT */
/*
 * A veth pair into a network namespace for the suites that measure a path
 * that is not loopback (zc, relay): set up with ip(8), entered with
 * setns(2) by the calling thread only, torn down on success and failure.
 * Each pair owns one /30 of 10.214.0.0/16, its index held under an
 * exclusive flock(2) of /run/ringplane-bench/netns-<index>.lock for as long
 * as the pair is up; the names carry the index. So two bench runs at once
 * (in any pid namespace that shares /run), or two suites of one run, never
 * share an address or a name, and a run never tears down another's pair:
 * what a killed run left is recognised by its lock being free. A lock file
 * is unlinked by its holder before it lets go (at rp_netns_down, or by the
 * SIGINT/SIGTERM handler, cleanup.h), and a free one (a killed run's) by the
 * next rp_netns_up; a lock taken on a file that is no longer at its path
 * does not count (the inode is checked). Needs root
 * (CAP_NET_ADMIN); callers skip their rows with the reason this returns.
 */
#ifndef RP_BENCH_NETNS_H
#define RP_BENCH_NETNS_H

#include <stddef.h>

struct rp_netns {
	char tag[3];	  /* the suite's two letters: "zc", "rl" */
	unsigned slot;	  /* where its search for a free /30 starts, with the pid */
	int lockfd;	  /* the index's lock while up; -1 otherwise */
	int cleanup;	  /* its slot in cleanup.h's registry while up, else -1 */
	char lock[64];	  /* the lock file's path, unlinked (while held) at down */
	char ns[32];	  /* namespace, /var/run/netns/<ns>: "rp<tag>bench-<index>" */
	char host_if[16]; /* the pair's end that stays here: "rp<tag>0-<index>" */
	char ns_if[16];	  /* the end moved into the namespace: "rp<tag>1-<index>" */
	char host_ip[16]; /* IPv4 address of host_if, in 10.214.0.0/16 */
	char ns_ip[16];	  /* IPv4 address of ns_if, the same /30 */
	unsigned prefix;  /* the subnet's prefix length: 30 */
	char steer[1400];  /* the pair's receive steering, said in the suites' notes
			   * (room for a 4096-CPU mask):
			   * "RPS rps_cpus=1 on both ends (ringplane-tune's udev rule)" */
};

/*
 * Prepare @n for suite @tag (two letters: "zc", "rl") and @slot (0 or 1,
 * one per suite); names and addresses are chosen by rp_netns_up
 * (test_relay's veth case uses 10.231.0.0/16).
 */
void rp_netns_init(struct rp_netns *n, const char *tag, unsigned slot); /* "zc" or "rl" */

/*
 * Take a free /30 (the first whose lock is free, from a start picked by
 * the pid and the slot; at most 256 tried), name the pair from it, create
 * the namespace and the pair, both ends up with their addresses, and lo
 * up inside. Both ends' receive steering (RPS) follows RP_BENCH_VETH_RPS,
 * else ringplane-tune's udev rule for veths (none without one): @n->steer
 * says which. What killed runs left (any namespace or link of ours whose
 * index lock is free) is removed first; a live run's are never touched.
 * 0, or -errno with @why saying what failed (not root, no free index,
 * which command); on failure nothing is left behind and nothing held.
 */
int rp_netns_up(struct rp_netns *n, char *why, size_t whysz);

/* Remove the pair and the namespace (each step's failure ignored: either
 * may be gone already), then release the index. A no-op when @n is not
 * up (the index may be another run's by then). Processes still inside
 * keep the namespace alive until they exit; stop them first. */
void rp_netns_down(struct rp_netns *n);

/*
 * Move the calling thread into the namespace; *@back gets an fd to return
 * with rp_netns_leave. Sockets made meanwhile keep the namespace. 0 or
 * -errno (then the thread is where it was).
 */
int rp_netns_enter(const struct rp_netns *n, int *back);

/* Back to the namespace rp_netns_enter left, closing @back. 0 or -errno:
 * then the thread is still inside, and whatever it measures next is the
 * wrong path, so callers stop. */
int rp_netns_leave(int back);

#endif
