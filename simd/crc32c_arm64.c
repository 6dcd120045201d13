/* SPDX-License-Identifier: MIT */
/*
 * CRC-32C for aarch64: the ARMv8 CRC32C instructions for short inputs and
 * tails, PMULL folding of four 128-bit accumulators (64 bytes a round) for
 * long ones. Built with -march=armv8-a+crc+crypto (simd/meson.build); only
 * simd/dispatch.c decides, from HWCAP_CRC32 and HWCAP_PMULL, that it may run.
 *
 * Folding math. A 16-byte chunk X is loaded little-endian, so bit i of the
 * 128-bit value is the coefficient of x^(127 - i) within the chunk: lo64(X)
 * holds the earlier 8 bytes (weight x^64 * L(x)), hi64(X) the later ones
 * (weight H(x)). Moving X forward by D bytes means multiplying it by
 * x^(8D) mod P. A carry-less product of a 64-bit reflected value and a
 * 32-bit reflected constant lands with bit k meaning x^(94 - k), i.e. the
 * chunk reading x^(127 - k) of the product is the product times x^33. So
 *
 *   Y = clmul(lo64(X), x^(8D + 64 - 33)) ^ clmul(hi64(X), x^(8D - 33))
 *
 * is congruent to X * x^(8D) mod P in the chunk reading, and fits in 95 bits
 * (no reduction needed before the next XOR). When one chunk is left, running
 * the CRC32C instruction over its 16 bytes from 0 reduces it to the CRC
 * register of everything before, because the initial value was XORed into
 * the first chunk's low 32 bits exactly where the byte-wise CRC applies it.
 */
#include <stdint.h>
#include <string.h>

#include <arm_acle.h>
#include <arm_neon.h>

#include "simd_impl.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
/* The lane layout above and the 8-byte tail loads assume little-endian. */
#error "crc32c_arm64.c supports little-endian aarch64 only"
#endif

/*
 * Fold constants { K_hi, K_lo } = { x^(8D + 31), x^(8D - 33) } mod P in the
 * reflected representation, i.e. rp_crc32c_xpow(8 * D + 31) and
 * rp_crc32c_xpow(8 * D - 33). Literals keep them usable before any
 * constructor has run; every one of them takes part in any input of at least
 * RP_CRC32C_NEON_FOLD_MIN bytes, so the kernel-versus-scalar comparison in
 * tests/test_crc32c.c catches a wrong digit. They are also the well-known
 * CRC-32C folding constants (e.g. 0x740eef02/0x9e4addf8 for 64 bytes in
 * Intel's crc_pcl, 0xf20c0dfe/0x493c7d27 for 16 bytes).
 */
#define K64_HI 0x740eef02u /* xpow(543) */
#define K64_LO 0x9e4addf8u /* xpow(479) */
#define K48_HI 0x1c291d04u /* xpow(415) */
#define K48_LO 0xddc0152bu /* xpow(351) */
#define K32_HI 0x3da6d0cbu /* xpow(287) */
#define K32_LO 0xba4fc28eu /* xpow(223) */
#define K16_HI 0xf20c0dfeu /* xpow(159) */
#define K16_LO 0x493c7d27u /* xpow(95) */

/*
 * Below this length the CRC32C instruction loop alone is used. Not measured
 * here (no aarch64 hardware; qemu timings mean nothing): crc32cx retires
 * 8 bytes a cycle on current cores (Cortex-A7x, Neoverse N1/V1), while the
 * fold path pays a fixed cost of about three dependent PMULL rounds for the
 * 4-to-1 reduction plus two crc32cx before it wins on bandwidth, so the
 * crossover lies in the low hundreds of bytes. Re-tune on hardware with
 * ringplane-bench simd. Must be at least 64 (one full round of loads);
 * a build may override it (-DRP_CRC32C_NEON_FOLD_MIN=64) to drive the fold
 * path with every length from 64 up.
 */
#ifndef RP_CRC32C_NEON_FOLD_MIN
#define RP_CRC32C_NEON_FOLD_MIN 256
#endif
_Static_assert(RP_CRC32C_NEON_FOLD_MIN >= 64, "the fold path loads 64 bytes up front");

static inline uint64x2_t load128(const uint8_t *p)
{
	return vreinterpretq_u64_u8(vld1q_u8(p));
}

static inline poly64x2_t fold_key(uint32_t k_hi, uint32_t k_lo)
{
	return vcombine_p64(vcreate_p64(k_hi), vcreate_p64(k_lo));
}

/* X * x^(8D) mod P in the chunk reading; @k = fold_key(K_hi, K_lo) for D. */
static inline uint64x2_t fold(uint64x2_t x, poly64x2_t k)
{
	poly64x2_t px = vreinterpretq_p64_u64(x);
	uint64x2_t lo =
		vreinterpretq_u64_p128(vmull_p64(vgetq_lane_p64(px, 0), vgetq_lane_p64(k, 0)));
	uint64x2_t hi = vreinterpretq_u64_p128(vmull_high_p64(px, k));

	return veorq_u64(lo, hi);
}

/* Raw CRC register update (no inversion) with the CRC32C instructions. */
static inline uint32_t crc_bytes(uint32_t c, const uint8_t *p, size_t len)
{
	uint64_t d;
	uint32_t w;
	uint16_t h;

	for (; len >= 8; p += 8, len -= 8) {
		memcpy(&d, p, 8);
		c = __crc32cd(c, d);
	}
	if (len & 4) {
		memcpy(&w, p, 4);
		c = __crc32cw(c, w);
		p += 4;
	}
	if (len & 2) {
		memcpy(&h, p, 2);
		c = __crc32ch(c, h);
		p += 2;
	}
	if (len & 1)
		c = __crc32cb(c, *p);
	return c;
}

uint32_t rp_crc32c_neon(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t c = ~crc;
	uint64x2_t x0, x1, x2, x3, y;

	if (len < RP_CRC32C_NEON_FOLD_MIN)
		return ~crc_bytes(c, p, len);

	x0 = veorq_u64(load128(p), vsetq_lane_u64((uint64_t)c, vdupq_n_u64(0), 0));
	x1 = load128(p + 16);
	x2 = load128(p + 32);
	x3 = load128(p + 48);
	p += 64;
	len -= 64;

	{
		const poly64x2_t k64 = fold_key(K64_HI, K64_LO);

		/* Four independent chains hide the PMULL latency. */
		for (; len >= 64; p += 64, len -= 64) {
			x0 = veorq_u64(fold(x0, k64), load128(p));
			x1 = veorq_u64(fold(x1, k64), load128(p + 16));
			x2 = veorq_u64(fold(x2, k64), load128(p + 32));
			x3 = veorq_u64(fold(x3, k64), load128(p + 48));
		}
	}

	/* x0 sits 48 bytes before x3, x1 32, x2 16: move each onto x3. */
	y = veorq_u64(fold(x0, fold_key(K48_HI, K48_LO)), fold(x1, fold_key(K32_HI, K32_LO)));
	y = veorq_u64(y, veorq_u64(fold(x2, fold_key(K16_HI, K16_LO)), x3));

	{
		const poly64x2_t k16 = fold_key(K16_HI, K16_LO);

		for (; len >= 16; p += 16, len -= 16)
			y = veorq_u64(fold(y, k16), load128(p));
	}

	c = __crc32cd(0, vgetq_lane_u64(y, 0));
	c = __crc32cd(c, vgetq_lane_u64(y, 1));
	return ~crc_bytes(c, p, len);
}
