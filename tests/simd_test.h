/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the simd unit tests (test_crc32c.c, test_xor.c,
 * test_delta.c): the full/reduced switch, a seeded PRNG, buffers fenced by
 * PROT_NONE pages, and the per-kernel "does this CPU run it" skip.
 *
 * Include after <cmocka.h> (and its prerequisites). Everything is static:
 * each test program gets its own copy.
 */
#ifndef RP_SIMD_TEST_H
#define RP_SIMD_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ringplane/simd.h>

#include "simd_impl.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * RP_TEST_REDUCED=1 (qemu-emulated aarch64, the sanitizer build) shrinks
 * the big loops. Every test program prints which mode ran.
 */
static inline bool test_reduced(void)
{
	const char *r = getenv("RP_TEST_REDUCED");

	return r && r[0] == '1' && r[1] == '\0';
}

static inline void print_mode(const char *prog)
{
	printf("[ INFO     ] %s: %s mode; kernels dispatched: %s\n", prog,
	       test_reduced() ? "reduced (RP_TEST_REDUCED=1)" : "full", rp_simd_backend());
}

/* xorshift64*: fixed seeds make every failure reproducible. */
struct rng {
	uint64_t s;
};

static inline struct rng rng_seed(uint64_t seed)
{
	struct rng r = {seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull};

	if (!r.s)
		r.s = 1;
	return r;
}

static inline uint64_t rng_next(struct rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545F4914F6CDD1Dull;
}

/* Uniform enough in [0, n) for test data; n > 0. */
static inline uint64_t rng_below(struct rng *r, uint64_t n)
{
	return (rng_next(r) >> 11) % n;
}

static inline void rng_fill(struct rng *r, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len >= 8) {
		uint64_t v = rng_next(r);

		memcpy(p, &v, 8);
		p += 8;
		len -= 8;
	}
	if (len) {
		uint64_t v = rng_next(r);

		for (size_t i = 0; i < len; i++)
			p[i] = (uint8_t)(v >> (8 * i));
	}
}

/*
 * A data area of whole pages with a PROT_NONE page on each side, so a
 * kernel that reads or writes even one byte before @lo or at/after @hi
 * faults. ASan alone misses such over-reads: its checks see the scalar
 * access that a wide vector load replaced, or none at all.
 */
struct guarded {
	uint8_t *map;
	size_t map_len;
	uint8_t *lo; /* first data byte, page aligned */
	uint8_t *hi; /* one past the last data byte; the next page faults */
};

static inline struct guarded guarded_alloc(size_t bytes)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t data = (bytes + page - 1) / page * page;
	struct guarded g = {0};
	void *m;

	if (!data)
		data = page;
	m = mmap(NULL, data + 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return g;
	g.map = m;
	g.map_len = data + 2 * page;
	g.lo = g.map + page;
	g.hi = g.lo + data;
	if (mprotect(g.map, page, PROT_NONE) || mprotect(g.hi, page, PROT_NONE)) {
		munmap(g.map, g.map_len);
		g.map = NULL;
	}
	return g;
}

static inline void guarded_free(struct guarded *g)
{
	if (g->map)
		munmap(g->map, g->map_len);
	g->map = NULL;
}

static const char *const level_names[] = {
	[RP_SIMD_SCALAR] = "scalar", [RP_SIMD_SSE42] = "sse42", [RP_SIMD_AVX2] = "avx2",
	[RP_SIMD_AVX512] = "avx512", [RP_SIMD_NEON] = "neon",
};

/*
 * A kernel that this CPU cannot run is a visible skip with the reason. The
 * CPU's own level decides, not RP_SIMD: every kernel the CPU supports is
 * tested whichever one the dispatcher picked.
 */
#define SKIP_UNLESS_CPU_RUNS(kname, min_level)                                                     \
	do {                                                                                       \
		enum rp_simd_level cpu_ = rp_simd_cpu_level();                                     \
		if (cpu_ < (min_level)) {                                                          \
			printf("[ SKIP     ] %s: needs the %s level, this CPU has %s\n", (kname),  \
			       level_names[(min_level)], level_names[cpu_]);                       \
			skip();                                                                    \
		}                                                                                  \
	} while (0)

#endif /* RP_SIMD_TEST_H */
