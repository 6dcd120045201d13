/* SPDX-License-Identifier: MIT */
/*
 * NEON XOR and delta diff scan for aarch64. Built with
 * -march=armv8-a+crc+crypto (simd/meson.build) although only Advanced SIMD,
 * which every ARMv8-A core has, is used here; dispatch.c pairs these with
 * the CRC kernel at the one "neon" level.
 */
#include <stdint.h>

#include <arm_neon.h>

#include "simd_impl.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
/* The bit order of the diff masks below assumes little-endian lanes. */
#error "xor_neon.c supports little-endian aarch64 only"
#endif

void rp_xor_neon(void *dst, const void *a, const void *b, size_t len)
{
	uint8_t *d = dst;
	const uint8_t *x = a, *y = b;
	size_t i = 0;

	/*
	 * Every load of a round happens before its stores, so d == x or
	 * d == y (the in-place update rp_xor allows) reads each byte before
	 * overwriting it.
	 */
	for (; i + 64 <= len; i += 64) {
		uint8x16_t r0 = veorq_u8(vld1q_u8(x + i), vld1q_u8(y + i));
		uint8x16_t r1 = veorq_u8(vld1q_u8(x + i + 16), vld1q_u8(y + i + 16));
		uint8x16_t r2 = veorq_u8(vld1q_u8(x + i + 32), vld1q_u8(y + i + 32));
		uint8x16_t r3 = veorq_u8(vld1q_u8(x + i + 48), vld1q_u8(y + i + 48));

		vst1q_u8(d + i, r0);
		vst1q_u8(d + i + 16, r1);
		vst1q_u8(d + i + 32, r2);
		vst1q_u8(d + i + 48, r3);
	}
	for (; i + 16 <= len; i += 16)
		vst1q_u8(d + i, veorq_u8(vld1q_u8(x + i), vld1q_u8(y + i)));
	for (; i + 8 <= len; i += 8)
		vst1_u8(d + i, veor_u8(vld1_u8(x + i), vld1_u8(y + i)));
	for (; i < len; i++)
		d[i] = x[i] ^ y[i];
}

/*
 * One bit per byte of a 64-byte block: bit j set iff byte j of the block is
 * non-zero. Each 0xFF/0x00 lane is ANDed with its bit weight 1 << (j % 8);
 * three rounds of pairwise adds then sum each run of 8 lanes (distinct
 * weights, so the sums are ORs) into one byte, in memory order: after the
 * last round bytes 0..7 of the result are the mask bytes for block bytes
 * 0-7, 8-15, ..., 56-63, and lane 0 read as u64 is the mask.
 */
static inline uint64_t nonzero_mask64(uint8x16_t v0, uint8x16_t v1, uint8x16_t v2, uint8x16_t v3)
{
	static const uint8_t weights[16] = {1, 2, 4, 8, 16, 32, 64, 128,
					    1, 2, 4, 8, 16, 32, 64, 128};
	const uint8x16_t w = vld1q_u8(weights);
	uint8x16_t t0 = vandq_u8(vtstq_u8(v0, v0), w);
	uint8x16_t t1 = vandq_u8(vtstq_u8(v1, v1), w);
	uint8x16_t t2 = vandq_u8(vtstq_u8(v2, v2), w);
	uint8x16_t t3 = vandq_u8(vtstq_u8(v3, v3), w);
	uint8x16_t s = vpaddq_u8(vpaddq_u8(t0, t1), vpaddq_u8(t2, t3));

	s = vpaddq_u8(s, s);
	return vgetq_lane_u64(vreinterpretq_u64_u8(s), 0);
}

uint64_t rp_delta_scan_neon(const uint8_t *a, const uint8_t *b, unsigned nblocks, uint64_t *masks)
{
	uint64_t summary = 0;

	for (unsigned blk = 0; blk < nblocks; blk++) {
		const uint8_t *pa = a + 64 * (size_t)blk;
		const uint8_t *pb = b + 64 * (size_t)blk;
		uint8x16_t x0 = veorq_u8(vld1q_u8(pa), vld1q_u8(pb));
		uint8x16_t x1 = veorq_u8(vld1q_u8(pa + 16), vld1q_u8(pb + 16));
		uint8x16_t x2 = veorq_u8(vld1q_u8(pa + 32), vld1q_u8(pb + 32));
		uint8x16_t x3 = veorq_u8(vld1q_u8(pa + 48), vld1q_u8(pb + 48));
		uint8x16_t any = vorrq_u8(vorrq_u8(x0, x1), vorrq_u8(x2, x3));

		/* Most blocks of a page delta are unchanged: one UMAXV decides. */
		if (vmaxvq_u8(any) == 0) {
			masks[blk] = 0;
			continue;
		}
		masks[blk] = nonzero_mask64(x0, x1, x2, x3);
		summary |= (uint64_t)1 << blk;
	}
	return summary;
}
