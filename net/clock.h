/* SPDX-License-Identifier: MIT */
/*
 * Internal to net/ (not installed): the precise monotonic clock in
 * nanoseconds, for outq.c's probe timing and filecache.c's freshness
 * checks. CLOCK_MONOTONIC is a vDSO read (no syscall); CLOCK_MONOTONIC_COARSE
 * (relay_now_ns, zc.c's route cache) lags by up to a tick, which is enough
 * for idle timeouts but stretched the file cache's freshness bound by as
 * much. apps/ has rp_app_now_ns for its own; net/ does not depend on apps/.
 */
#ifndef RP_NET_CLOCK_H
#define RP_NET_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t net_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif /* RP_NET_CLOCK_H */
