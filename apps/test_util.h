/* SPDX-License-Identifier: MIT */
/*
 * What the integration test programs of apps/ (test_echo, test_relay,
 * test_serve) share: the binary under test, a failure count and CHECK (a
 * failed check is printed and counted, the program goes on and exits 1 at
 * the end), a monotonic clock in ms (now_ms, from test_proc.h) and a small
 * xorshift generator. Each program includes it once.
 */
#ifndef RP_APPS_TEST_UTIL_H
#define RP_APPS_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>

#include "test_proc.h"

static const char *bin;	 /* the ringplane binary under test (argv[1]) */
static int failures;

#define CHECK(cond, ...)                                                     \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                        \
			fputc('\n', stderr);                                 \
			failures++;                                          \
		}                                                            \
	} while (0)

/* xorshift64; each program seeds rng_state as it likes */
static uint64_t rng_state __attribute__((unused)) = 0x9E3779B97F4A7C15ull;

static inline uint64_t rng(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

#endif
