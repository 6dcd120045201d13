/* SPDX-License-Identifier: MIT */
/*
 * rp_xor: every kernel (the dispatcher, the scalar reference and each SIMD
 * variant this CPU runs) equals a byte loop at every length 0..5000 under
 * several dst/a/b alignments, writes nothing outside dst, works in place
 * (dst == a, dst == b), never reads or writes past a PROT_NONE page at
 * either end, and handles 1 MB + 13 bytes.
 *
 * RP_TEST_REDUCED=1 (qemu, sanitizers) sweeps lengths 0..1100.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <ringplane/simd.h>

#include "simd_impl.h"
#include "simd_test.h"

#define FULL_LEN    5000
#define REDUCED_LEN 1100
/* Bytes of canary on each side of dst in the sweep. */
#define SLACK	  64
#define CANARY	  0xC3
#define LARGE_LEN ((1u << 20) + 13)

struct xor_backend {
	const char *name;
	rp_xor_fn fn;
	enum rp_simd_level min_level;
};

/* One row per kernel built for this architecture: X(arg, id, function, level). */
#if defined(__x86_64__)
#define XOR_BACKENDS(X, arg)                                                                       \
	X(arg, dispatch, rp_xor, RP_SIMD_SCALAR)                                                   \
	X(arg, scalar, rp_xor_scalar, RP_SIMD_SCALAR)                                              \
	X(arg, avx2, rp_xor_avx2, RP_SIMD_AVX2)                                                    \
	X(arg, avx512, rp_xor_avx512, RP_SIMD_AVX512)
#elif defined(__aarch64__)
#define XOR_BACKENDS(X, arg)                                                                       \
	X(arg, dispatch, rp_xor, RP_SIMD_SCALAR)                                                   \
	X(arg, scalar, rp_xor_scalar, RP_SIMD_SCALAR)                                              \
	X(arg, neon, rp_xor_neon, RP_SIMD_NEON)
#else
#define XOR_BACKENDS(X, arg)                                                                       \
	X(arg, dispatch, rp_xor, RP_SIMD_SCALAR)                                                   \
	X(arg, scalar, rp_xor_scalar, RP_SIMD_SCALAR)
#endif

#define DEFINE_BACKEND(unused, id, f, lvl) static struct xor_backend be_##id = {#id, f, lvl};
XOR_BACKENDS(DEFINE_BACKEND, unused)

/* A cmocka test per kernel, named test/kernel, with the kernel as its state. */
#define BACKEND_ROW(test, id, f, lvl) {#test "/" #id, test, NULL, NULL, &be_##id},
#define FOR_EACH_BACKEND(test)	      XOR_BACKENDS(BACKEND_ROW, test)

static const struct xor_backend *backend(void **state)
{
	const struct xor_backend *be = *state;

	SKIP_UNLESS_CPU_RUNS(be->name, be->min_level);
	return be;
}

/* dst[0..len) == a ^ b, byte by byte; the first wrong byte is reported. */
static void expect_xor(const char *kernel, const char *what, const uint8_t *dst, const uint8_t *a,
		       const uint8_t *b, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (dst[i] != (uint8_t)(a[i] ^ b[i]))
			fail_msg("%s: %s, len %zu (dst, a, b %% 64 = %u, %u, %u): "
				 "byte %zu is 0x%02x, expected 0x%02x",
				 kernel, what, len, (unsigned)((uintptr_t)dst & 63),
				 (unsigned)((uintptr_t)a & 63), (unsigned)((uintptr_t)b & 63), i,
				 dst[i], (uint8_t)(a[i] ^ b[i]));
	}
}

static void expect_canary(const char *kernel, const uint8_t *p, size_t n, size_t len,
			  const char *where)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] != CANARY)
			fail_msg("%s: len %zu wrote 0x%02x at byte %zu %s dst", kernel, len, p[i],
				 i, where);
	}
}

static uint8_t *alloc_page_aligned(size_t len)
{
	uint8_t *p = aligned_alloc(4096, (len + 4095) / 4096 * 4096);

	assert_non_null(p);
	return p;
}

static size_t sweep_len(void)
{
	return test_reduced() ? REDUCED_LEN : FULL_LEN;
}

/* Offsets mod 64 of dst, a and b: equal, all different, vector-half apart. */
static const unsigned offsets[][3] = {
	{0, 0, 0},   {1, 1, 1},	  {0, 1, 2},   {3, 5, 7},
	{63, 31, 1}, {17, 0, 33}, {32, 32, 0}, {8, 16, 24},
};

static void test_matches_byte_loop_every_length_and_alignment(void **state)
{
	const struct xor_backend *be = backend(state);
	size_t max = sweep_len();
	size_t room = SLACK + max + SLACK;
	uint8_t *a = alloc_page_aligned(room), *b = alloc_page_aligned(room);
	uint8_t *d = alloc_page_aligned(room);
	struct rng r = rng_seed(10);

	rng_fill(&r, a, room);
	rng_fill(&r, b, room);
	for (size_t o = 0; o < ARRAY_SIZE(offsets); o++) {
		uint8_t *dst = d + SLACK + offsets[o][0];
		const uint8_t *x = a + SLACK + offsets[o][1], *y = b + SLACK + offsets[o][2];

		for (size_t len = 0; len <= max; len++) {
			memset(dst - SLACK, CANARY, SLACK + len + SLACK);
			be->fn(dst, x, y, len);
			expect_xor(be->name, "separate buffers", dst, x, y, len);
			expect_canary(be->name, dst - SLACK, SLACK, len, "before");
			expect_canary(be->name, dst + len, SLACK, len, "after");
		}
	}
	free(a);
	free(b);
	free(d);
}

/* dst == a and dst == b: the in-place update the delta decoder relies on. */
static void test_in_place_with_dst_aliasing_a_or_b(void **state)
{
	const struct xor_backend *be = backend(state);
	static const unsigned align[] = {0, 1, 13, 63};
	size_t max = sweep_len();
	size_t room = max + 64;
	uint8_t *a = alloc_page_aligned(room), *b = alloc_page_aligned(room);
	uint8_t *x = alloc_page_aligned(room);
	struct rng r = rng_seed(11);

	rng_fill(&r, a, room);
	rng_fill(&r, b, room);
	for (size_t i = 0; i < ARRAY_SIZE(align); i++) {
		uint8_t *px = x + align[i];
		const uint8_t *pa = a + align[(i + 1) % ARRAY_SIZE(align)];
		const uint8_t *pb = b + align[i];

		for (size_t len = 0; len <= max; len++) {
			memcpy(px, pa, len);
			be->fn(px, px, pb, len); /* dst == a */
			expect_xor(be->name, "dst == a", px, pa, pb, len);
			memcpy(px, pb, len);
			be->fn(px, pa, px, len); /* dst == b */
			expect_xor(be->name, "dst == b", px, pa, pb, len);
		}
	}
	free(a);
	free(b);
	free(x);
}

/*
 * Inputs and output each end exactly at (or start right after) a PROT_NONE
 * page: a wide load or store past either end faults instead of passing.
 */
static void test_touches_nothing_outside_the_buffers(void **state)
{
	const struct xor_backend *be = backend(state);
	static const size_t big[] = {511, 512, 513, 1023, 1024, 4095, 4096, 4097, 65535, 65537};
	struct guarded ga = guarded_alloc(65537), gb = guarded_alloc(65537);
	struct guarded gd = guarded_alloc(65537);
	struct rng r = rng_seed(12);

	assert_non_null(ga.map);
	assert_non_null(gb.map);
	assert_non_null(gd.map);
	rng_fill(&r, ga.lo, (size_t)(ga.hi - ga.lo));
	rng_fill(&r, gb.lo, (size_t)(gb.hi - gb.lo));
	for (size_t i = 0; i <= 300 + ARRAY_SIZE(big); i++) {
		size_t len = i <= 300 ? i : big[i - 301];
		uint8_t *d = gd.hi - len;
		const uint8_t *x = ga.hi - len, *y = gb.hi - len;

		be->fn(d, x, y, len);
		expect_xor(be->name, "all ending at a guard page", d, x, y, len);
		be->fn(gd.lo, ga.lo, gb.lo, len);
		expect_xor(be->name, "all starting after a guard page", gd.lo, ga.lo, gb.lo, len);
		/* Mixed: one input's end and the other's start both at a guard. */
		be->fn(d, ga.lo, y, len);
		expect_xor(be->name, "mixed guard ends", d, ga.lo, y, len);
		/* In place at the guard: dst == a ends at the page. */
		memcpy(gd.hi - len, x, len);
		be->fn(d, d, y, len);
		expect_xor(be->name, "in place at a guard page", d, x, y, len);
	}
	guarded_free(&ga);
	guarded_free(&gb);
	guarded_free(&gd);
}

static void test_one_megabyte_plus_13(void **state)
{
	const struct xor_backend *be = backend(state);
	static const unsigned off[][3] = {{0, 0, 0}, {3, 1, 2}, {0, 17, 61}};
	size_t room = 64 + LARGE_LEN + SLACK;
	uint8_t *a = alloc_page_aligned(room), *b = alloc_page_aligned(room);
	uint8_t *d = alloc_page_aligned(room);
	struct rng r = rng_seed(13);

	rng_fill(&r, a, room);
	rng_fill(&r, b, room);
	for (size_t i = 0; i < ARRAY_SIZE(off); i++) {
		uint8_t *dst = d + off[i][0];

		memset(d, CANARY, room);
		be->fn(dst, a + off[i][1], b + off[i][2], LARGE_LEN);
		expect_xor(be->name, "1 MB + 13", dst, a + off[i][1], b + off[i][2], LARGE_LEN);
		expect_canary(be->name, d, off[i][0], LARGE_LEN, "before");
		expect_canary(be->name, dst + LARGE_LEN, SLACK, LARGE_LEN, "after");
	}
	free(a);
	free(b);
	free(d);
}

int main(void)
{
	/* One row per kernel comes from each FOR_EACH_BACKEND. */
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		FOR_EACH_BACKEND(test_matches_byte_loop_every_length_and_alignment)
		FOR_EACH_BACKEND(test_in_place_with_dst_aliasing_a_or_b)
		FOR_EACH_BACKEND(test_touches_nothing_outside_the_buffers)
		FOR_EACH_BACKEND(test_one_megabyte_plus_13)
	};
	/* clang-format on */

	print_mode("test_xor");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
