/* SPDX-License-Identifier: MIT */
/*
 * A veth pair into a network namespace for the suites that measure a path
 * that is not loopback (zc, relay): set up with ip(8), entered with
 * setns(2) by the calling thread only, torn down on success and failure.
 * Each suite passes its own names and subnet, so two suites (or a left-over
 * of one) never collide. Needs root (CAP_NET_ADMIN); callers skip their
 * rows with the reason this returns.
 */
#ifndef RP_BENCH_NETNS_H
#define RP_BENCH_NETNS_H

#include <stddef.h>

struct rp_netns {
	const char *ns;	     /* namespace, /var/run/netns/<ns> */
	const char *host_if; /* the pair's end that stays here (at most 15 chars) */
	const char *ns_if;   /* the end moved into the namespace */
	const char *host_ip; /* IPv4 address of host_if, e.g. "10.213.0.1" */
	const char *ns_ip;   /* IPv4 address of ns_if, same subnet */
	unsigned prefix;     /* the subnet's prefix length, e.g. 24 */
};

/*
 * Create the namespace and the pair, both ends up with their addresses,
 * and lo up inside. A left-over of the same names (a killed run) is removed
 * first. 0, or -errno with @why saying what failed (not root, which
 * command); on failure nothing is left behind.
 */
int rp_netns_up(const struct rp_netns *n, char *why, size_t whysz);

/* Remove the pair and the namespace (each step's failure ignored: either
 * may be gone already). Processes still inside keep it alive until they
 * exit; stop them first. */
void rp_netns_down(const struct rp_netns *n);

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
