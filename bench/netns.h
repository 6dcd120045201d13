/* SPDX-License-Identifier: MIT */
/*
 * A veth pair into a network namespace for the suites that measure a path
 * that is not loopback (zc, relay): set up with ip(8), entered with
 * setns(2) by the calling thread only, torn down on success and failure.
 * The names and the subnet come from the suite's tag and the pid
 * (rp_netns_init), so two bench runs at once, or a bench beside a test,
 * never tear down each other's namespace, and two suites of one run never
 * collide. Needs root (CAP_NET_ADMIN); callers skip their rows with the
 * reason this returns.
 */
#ifndef RP_BENCH_NETNS_H
#define RP_BENCH_NETNS_H

#include <stddef.h>

struct rp_netns {
	char ns[32];	  /* namespace, /var/run/netns/<ns>: "rp<tag>bench-<pid>" */
	char host_if[16]; /* the pair's end that stays here: "rp<tag>0-<pid>" */
	char ns_if[16];	  /* the end moved into the namespace: "rp<tag>1-<pid>" */
	char host_ip[16]; /* IPv4 address of host_if, in 10.214.0.0/16 */
	char ns_ip[16];	  /* IPv4 address of ns_if, the same /30 */
	unsigned prefix;  /* the subnet's prefix length: 30 */
};

/*
 * Name @n for suite @tag (two letters: "zc", "rl") and @slot (0 or 1, one
 * per suite) from the pid: a /30 in 10.214.0.0/16 picked by 13 bits of the
 * pid and the slot (test_relay's veth case uses 10.231.0.0/16).
 */
void rp_netns_init(struct rp_netns *n, const char *tag, unsigned slot);

/*
 * Create the namespace and the pair, both ends up with their addresses,
 * and lo up inside. Left-overs of this suite's tag from runs that were
 * killed (their pid no longer exists) are removed first; a live run's are
 * never touched. 0, or -errno with @why saying what failed (not root,
 * which command); on failure nothing is left behind.
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
