/* SPDX-License-Identifier: MIT */
/*
 * What the lock-free and pool tests (test_spsc.c, test_mpsc.c,
 * test_pool.c) share: the wall-clock bound of their spinning loops, a
 * monotonic clock, and UNDER_TSAN, defined in a ThreadSanitizer build (gcc
 * and clang spell it differently), where they run fewer rounds.
 */
#ifndef RP_THREAD_TEST_H
#define RP_THREAD_TEST_H

#include <time.h>

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

/* Wall-clock bound for every spinning loop of these tests. */
#define DEADLINE_S 120

static inline double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
