/* SPDX-License-Identifier: MIT */
/*
 * CRC-32C: every kernel (the dispatcher, the scalar reference and each
 * SIMD variant this CPU runs) against the standard check value and the
 * RFC 3720 B.4 vectors, against the scalar reference at every length
 * 0..70000 and every one of 64 alignments, chained with arbitrary initial
 * values, and fenced by PROT_NONE pages so a vector load past either end of
 * the buffer faults. The scalar reference is itself checked against a
 * bit-at-a-time CRC, and the GF(2) helpers the folding constants come from
 * against their algebraic identities.
 *
 * RP_TEST_REDUCED=1 (qemu, sanitizers) checks all 64 alignments only up to
 * 4200 bytes and the long lengths at alignments 0, 1, 7 and 63.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <ringplane/simd.h>

#include "simd_impl.h"
#include "simd_test.h"

#define POLY_REFLECTED 0x82F63B78u

/* The length sweep: every length up to LONG_LEN; see next_len(). */
#define LONG_LEN   70000
#define ALIGNMENTS 64
/* Reduced plan: all alignments up to SHORT_LEN; at the wide alignments
 * every length up to DENSE_LEN, then every STRIDE-th up to LONG_LEN. */
#define SHORT_LEN 4200
#define DENSE_LEN 5000
#define STRIDE	  37

struct crc_backend {
	const char *name;
	rp_crc32c_fn fn;
	enum rp_simd_level min_level;
};

/* One row per kernel built for this architecture: X(arg, id, function, level). */
#if defined(__x86_64__)
#define CRC_BACKENDS(X, arg)                                                                       \
	X(arg, dispatch, rp_crc32c, RP_SIMD_SCALAR)                                                \
	X(arg, scalar, rp_crc32c_scalar, RP_SIMD_SCALAR)                                           \
	X(arg, sse42, rp_crc32c_sse42, RP_SIMD_SSE42)                                              \
	X(arg, pclmul, rp_crc32c_pclmul, RP_SIMD_AVX2)                                             \
	X(arg, avx2, rp_crc32c_avx2, RP_SIMD_AVX2)                                                 \
	X(arg, avx512, rp_crc32c_avx512, RP_SIMD_AVX512)                                           \
	X(arg, avx512_amd, rp_crc32c_avx512_amd, RP_SIMD_AVX512)                                   \
	X(arg, avx512_intel, rp_crc32c_avx512_intel, RP_SIMD_AVX512)
#elif defined(__aarch64__)
#define CRC_BACKENDS(X, arg)                                                                       \
	X(arg, dispatch, rp_crc32c, RP_SIMD_SCALAR)                                                \
	X(arg, scalar, rp_crc32c_scalar, RP_SIMD_SCALAR)                                           \
	X(arg, neon, rp_crc32c_neon, RP_SIMD_NEON)
#else
#define CRC_BACKENDS(X, arg)                                                                       \
	X(arg, dispatch, rp_crc32c, RP_SIMD_SCALAR)                                                \
	X(arg, scalar, rp_crc32c_scalar, RP_SIMD_SCALAR)
#endif

#define DEFINE_BACKEND(unused, id, f, lvl) static struct crc_backend be_##id = {#id, f, lvl};
CRC_BACKENDS(DEFINE_BACKEND, unused)

/* A cmocka test per kernel, named test/kernel, with the kernel as its state. */
#define BACKEND_ROW(test, id, f, lvl) {#test "/" #id, test, NULL, NULL, &be_##id},
#define FOR_EACH_BACKEND(test)	      CRC_BACKENDS(BACKEND_ROW, test)

static const struct crc_backend *backend(void **state)
{
	const struct crc_backend *be = *state;

	SKIP_UNLESS_CPU_RUNS(be->name, be->min_level);
#if defined(__x86_64__)
	/* AVX2 without VPCLMULQDQ (Haswell..Skylake, Zen2) keeps the xmm kernel. */
	if (be->fn == rp_crc32c_avx2 && !rp_simd_cpu_has_vpclmul256()) {
		printf("[ SKIP     ] %s: needs VPCLMULQDQ on ymm, this CPU has AVX2 without it\n",
		       be->name);
		skip();
	}
#endif
	return be;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Bit-at-a-time CRC-32C on the raw register: shares nothing with the kernels. */
static uint32_t crc_bitwise_raw(uint32_t reg, const uint8_t *p, size_t len)
{
	while (len--) {
		reg ^= *p++;
		for (int k = 0; k < 8; k++)
			reg = (reg & 1) ? (reg >> 1) ^ POLY_REFLECTED : reg >> 1;
	}
	return reg;
}

static void expect_crc(const char *kernel, const char *what, size_t len, unsigned align,
		       uint32_t want, uint32_t got)
{
	if (want != got)
		fail_msg("%s: %s, len %zu, alignment %u: expected 0x%08x, got 0x%08x", kernel, what,
			 len, align, want, got);
}

static uint8_t *alloc_page_aligned(size_t len)
{
	uint8_t *p = aligned_alloc(4096, (len + 4095) / 4096 * 4096);

	assert_non_null(p);
	return p;
}

/* ---- the reference and the GF(2) helpers -------------------------------- */

/* Slice-by-8 (and its byte-at-a-time head and tail) equals a bitwise CRC at
 * every length up to 3000 and every 8-byte phase. */
static void test_scalar_matches_bitwise_crc(void **state)
{
	const size_t n = 3000;
	uint8_t *buf = alloc_page_aligned(n + 8);
	struct rng r = rng_seed(1);

	(void)state;
	rng_fill(&r, buf, n + 8);
	for (unsigned a = 0; a < 8; a++) {
		uint32_t reg = 0xFFFFFFFFu;

		for (size_t len = 0; len <= n; len++) {
			expect_crc("scalar", "vs bitwise", len, a, ~reg,
				   rp_crc32c_scalar(0, buf + a, len));
			reg = crc_bitwise_raw(reg, buf + a + len, 1);
		}
	}
	free(buf);
}

/* x^k in the reflected representation: bit 31 - k for k < 32. */
static void test_xpow_and_mulmod_identities(void **state)
{
	static const uint64_t zero_runs[] = {0, 1, 4, 64, 1000};
	static const uint8_t zeros[1000];
	struct rng r = rng_seed(2);

	(void)state;
	assert_int_equal(rp_crc32c_xpow(0), 0x80000000u);
	for (unsigned k = 0; k < 32; k++)
		assert_int_equal(rp_crc32c_xpow(k), 0x80000000u >> k);
	/* x^32 mod P is P without its x^32 term. */
	assert_int_equal(rp_crc32c_xpow(32), POLY_REFLECTED);

	for (unsigned i = 0; i < 1000; i++) {
		uint32_t a = (uint32_t)rng_next(&r), b = (uint32_t)rng_next(&r);
		uint32_t c = (uint32_t)rng_next(&r);
		uint64_t j = rng_next(&r) >> 24, k = rng_next(&r) >> 24;

		assert_int_equal(rp_crc32c_mulmod(a, 0x80000000u), a);
		assert_int_equal(rp_crc32c_mulmod(0x80000000u, a), a);
		assert_int_equal(rp_crc32c_mulmod(a, 0), 0);
		assert_int_equal(rp_crc32c_mulmod(a, b), rp_crc32c_mulmod(b, a));
		assert_int_equal(rp_crc32c_mulmod(a, b ^ c),
				 rp_crc32c_mulmod(a, b) ^ rp_crc32c_mulmod(a, c));
		assert_int_equal(rp_crc32c_mulmod(rp_crc32c_mulmod(a, b), c),
				 rp_crc32c_mulmod(a, rp_crc32c_mulmod(b, c)));
		assert_int_equal(rp_crc32c_xpow(j + k),
				 rp_crc32c_mulmod(rp_crc32c_xpow(j), rp_crc32c_xpow(k)));
	}

	/* Multiplying a raw register by x^(8n) appends n zero bytes. */
	for (size_t i = 0; i < ARRAY_SIZE(zero_runs); i++) {
		uint64_t n = zero_runs[i];

		for (unsigned t = 0; t < 64; t++) {
			uint32_t raw = t == 0 ? 0 : t == 1 ? 0xFFFFFFFFu : (uint32_t)rng_next(&r);
			uint32_t want = ~rp_crc32c_scalar(~raw, zeros, (size_t)n);

			if (rp_crc32c_mulmod(raw, rp_crc32c_xpow(8 * n)) != want)
				fail_msg("mulmod(0x%08x, xpow(8 * %ju)) = 0x%08x, "
					 "appending %ju zero bytes gives 0x%08x",
					 raw, (uintmax_t)n,
					 rp_crc32c_mulmod(raw, rp_crc32c_xpow(8 * n)), (uintmax_t)n,
					 want);
		}
	}
}

/* ---- every kernel ------------------------------------------------------- */

static void test_check_value_123456789(void **state)
{
	const struct crc_backend *be = backend(state);
	static const uint32_t starts[] = {0, 1, 0xE3069283u, 0xFFFFFFFFu, 0x12345678u};

	expect_crc(be->name, "\"123456789\"", 9, 0, 0xE3069283u, be->fn(0, "123456789", 9));
	expect_crc(be->name, "\"1234\" then \"56789\"", 9, 0, 0xE3069283u,
		   be->fn(be->fn(0, "1234", 4), "56789", 5));
	/* len 0 leaves any crc as it is. */
	for (size_t i = 0; i < ARRAY_SIZE(starts); i++)
		expect_crc(be->name, "len 0", 0, 0, starts[i], be->fn(starts[i], "x", 0));
}

/* RFC 3720 (iSCSI) appendix B.4, at 16 alignments. */
static void test_rfc3720_b4_vectors(void **state)
{
	const struct crc_backend *be = backend(state);
	static const uint8_t scsi_read10[48] = {
		0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
		0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	struct {
		const char *name;
		uint8_t data[48];
		size_t len;
		uint32_t crc;
	} v[5] = {
		{"32 bytes of 0x00", {0}, 32, 0x8A9136AAu},
		{"32 bytes of 0xFF", {0}, 32, 0x62A8AB43u},
		{"0x00..0x1F ascending", {0}, 32, 0x46DD794Eu},
		{"0x1F..0x00 descending", {0}, 32, 0x113FDB5Cu},
		{"SCSI Read (10) command PDU", {0}, 48, 0xD9963A56u},
	};
	uint8_t buf[16 + 48];

	memset(v[1].data, 0xFF, 32);
	for (unsigned i = 0; i < 32; i++) {
		v[2].data[i] = (uint8_t)i;
		v[3].data[i] = (uint8_t)(31 - i);
	}
	memcpy(v[4].data, scsi_read10, sizeof(scsi_read10));

	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		for (unsigned a = 0; a < 16; a++) {
			memcpy(buf + a, v[i].data, v[i].len);
			expect_crc(be->name, v[i].name, v[i].len, a, v[i].crc,
				   be->fn(0, buf + a, v[i].len));
		}
	}
}

/* Lengths checked after @len at alignment @align; SIZE_MAX ends the sweep. */
static size_t next_len(size_t len, unsigned align, bool reduced)
{
	bool wide = align == 0 || align == 1 || align == 7 || align == 63;

	if (!reduced)
		return len < LONG_LEN ? len + 1 : SIZE_MAX;
	if (!wide)
		return len < SHORT_LEN ? len + 1 : SIZE_MAX;
	if (len < DENSE_LEN)
		return len + 1;
	if (len >= LONG_LEN)
		return SIZE_MAX;
	return len + STRIDE < LONG_LEN ? len + STRIDE : LONG_LEN;
}

/*
 * Every kernel equals the scalar reference for every length 0..70000 at all
 * 64 alignments. The reference for each prefix comes from one table per
 * alignment, built a byte at a time (chaining: crc(p[0..L+1)) is the CRC of
 * one more byte on top of crc(p[0..L))), so the sweep costs one kernel call
 * per (length, alignment). The scalar kernel is checked on the reduced plan
 * in every mode: the bitwise test above covers its structure and the full
 * sweep would take it minutes.
 */
static void test_matches_scalar_every_length_and_alignment(void **state)
{
	const struct crc_backend *be = backend(state);
	bool reduced = test_reduced() || be->fn == rp_crc32c_scalar;
	uint8_t *buf = alloc_page_aligned(ALIGNMENTS + LONG_LEN);
	uint32_t *ref = malloc((LONG_LEN + 1) * sizeof(*ref));
	struct rng r = rng_seed(3);
	uint64_t calls = 0, bytes = 0;
	double t0 = now_s();

	assert_non_null(ref);
	rng_fill(&r, buf, ALIGNMENTS + LONG_LEN);
	for (unsigned a = 0; a < ALIGNMENTS; a++) {
		const uint8_t *p = buf + a;
		size_t top = 0;

		for (size_t len = 0; len != SIZE_MAX; len = next_len(len, a, reduced))
			top = len;
		ref[0] = 0;
		for (size_t len = 0; len < top; len++)
			ref[len + 1] = rp_crc32c_scalar(ref[len], p + len, 1);

		for (size_t len = 0; len != SIZE_MAX; len = next_len(len, a, reduced)) {
			uint32_t got = be->fn(0, p, len);

			if (got != ref[len])
				expect_crc(be->name, "vs scalar", len, a, ref[len], got);
			calls++;
			bytes += len;
		}
	}
	printf("[ INFO     ] %s: %ju lengths x alignments (%s plan), %.1f GB in %.2f s\n", be->name,
	       (uintmax_t)calls, reduced ? "reduced" : "full", (double)bytes / 1e9, now_s() - t0);
	free(ref);
	free(buf);
}

/*
 * rp_crc32c(rp_crc32c(0, a, n), b, m) == crc(a || b) for splits at random
 * points (three pieces, so a middle piece starts from a mid-stream value),
 * and any initial crc gives what the reference gives.
 */
static void test_chains_across_splits_and_initial_values(void **state)
{
	const struct crc_backend *be = backend(state);
	const size_t max_len = 20000;
	unsigned iters = test_reduced() ? 400 : 4000;
	uint8_t *buf = alloc_page_aligned(ALIGNMENTS + max_len);
	struct rng r = rng_seed(4);

	rng_fill(&r, buf, ALIGNMENTS + max_len);
	for (unsigned i = 0; i < iters; i++) {
		/* Half short (the kernels' head/tail paths), half up to max_len. */
		size_t len = (size_t)rng_below(&r, (i & 1) ? max_len + 1 : 600);
		unsigned a = (unsigned)rng_below(&r, ALIGNMENTS);
		const uint8_t *p = buf + a;
		size_t s1 = (size_t)rng_below(&r, len + 1);
		size_t s2 = s1 + (size_t)rng_below(&r, len - s1 + 1);
		uint32_t init = (uint32_t)rng_next(&r);
		uint32_t want = rp_crc32c_scalar(0, p, len);
		uint32_t got = be->fn(be->fn(be->fn(0, p, s1), p + s1, s2 - s1), p + s2, len - s2);

		if (got != want)
			fail_msg("%s: len %zu alignment %u split at %zu and %zu: "
				 "expected 0x%08x, got 0x%08x",
				 be->name, len, a, s1, s2, want, got);
		want = rp_crc32c_scalar(init, p, len);
		got = be->fn(init, p, len);
		if (got != want)
			fail_msg("%s: len %zu alignment %u initial crc 0x%08x: "
				 "expected 0x%08x, got 0x%08x",
				 be->name, len, a, init, want, got);
	}
	free(buf);
}

/*
 * Data that ends exactly at a PROT_NONE page (and data that starts right
 * after one): a kernel that loads a whole vector past the last byte, or
 * rounds its start down, faults here where ASan would stay quiet.
 */
static void test_reads_nothing_outside_the_buffer(void **state)
{
	const struct crc_backend *be = backend(state);
	/* Path edges of the kernels: 3200 and 2432 (avx512 blocks, AMD and Intel
	 * shapes), 768 and 3968 (avx2 mixed paths and blocks), powers of two. */
	static const size_t big[] = {511,   512,   513,	  767,	 768,	769,   1023,  1024,
				     2431,  2432,  2433,  3199,	 3200,	3201,  3967,  3968,
				     3969,  4095,  4096,  4097,	 4864,	4865,  6400,  7936,
				     7937,  12287, 12288, 12289, 36863, 65535, 65536, 65537,
				     70000};
	struct guarded g = guarded_alloc(70000);
	struct rng r = rng_seed(5);
	size_t room;

	assert_non_null(g.map);
	room = (size_t)(g.hi - g.lo);
	rng_fill(&r, g.lo, room);
	for (size_t i = 0; i <= 300 + ARRAY_SIZE(big); i++) {
		size_t len = i <= 300 ? i : big[i - 301];
		const uint8_t *tail = g.hi - len;

		assert_true(len <= room);
		expect_crc(be->name, "ending at a guard page", len,
			   (unsigned)((uintptr_t)tail & 63), rp_crc32c_scalar(0, tail, len),
			   be->fn(0, tail, len));
		expect_crc(be->name, "starting after a guard page", len, 0,
			   rp_crc32c_scalar(0, g.lo, len), be->fn(0, g.lo, len));
	}
	guarded_free(&g);
}

/*
 * rp_simd_backend() names the CRC kernel that dispatch chose for this CPU's
 * level (or the lower one RP_SIMD forced), and rp_crc32c gives that
 * kernel's results: at the AVX2 level, the ymm kernel where the CPU has
 * VPCLMULQDQ, else the xmm one.
 */
static void test_dispatch_names_the_kernel_it_runs(void **state)
{
	const char *be = rp_simd_backend();

	(void)state;
	printf("[ INFO     ] level %s, backend \"%s\"\n", level_names[rp_simd_level()], be);
#if defined(__x86_64__)
	if (rp_simd_level() == RP_SIMD_AVX2) {
		const char *want = rp_simd_cpu_has_vpclmul256() ? "crc32c=avx2-vpclmul " :
								  "crc32c=pclmul ";

		if (strncmp(be, want, strlen(want)))
			fail_msg("level avx2: backend \"%s\", expected it to start with \"%s\"", be,
				 want);
		return;
	}
	if (rp_simd_level() == RP_SIMD_AVX512)
		assert_non_null(strstr(be, "crc32c=avx512-vpclmul"));
#endif
	assert_non_null(strstr(be, "crc32c="));
}

int main(void)
{
	/* One row per kernel comes from each FOR_EACH_BACKEND. */
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scalar_matches_bitwise_crc),
		cmocka_unit_test(test_xpow_and_mulmod_identities),
		cmocka_unit_test(test_dispatch_names_the_kernel_it_runs),
		FOR_EACH_BACKEND(test_check_value_123456789)
		FOR_EACH_BACKEND(test_rfc3720_b4_vectors)
		FOR_EACH_BACKEND(test_matches_scalar_every_length_and_alignment)
		FOR_EACH_BACKEND(test_chains_across_splits_and_initial_values)
		FOR_EACH_BACKEND(test_reads_nothing_outside_the_buffer)
	};
	/* clang-format on */

	print_mode("test_crc32c");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
