/* SPDX-License-Identifier: MIT */
/*
 * Portable references for XOR and the delta diff scan. This file is built
 * without auto-vectorisation (simd/meson.build) so "scalar" means scalar
 * when a benchmark or RP_SIMD=scalar asks for it.
 */
#include <stdint.h>
#include <string.h>

#include "simd_impl.h"

void rp_xor_scalar(void *dst, const void *a, const void *b, size_t len)
{
	uint8_t *d = dst;
	const uint8_t *x = a, *y = b;
	size_t i = 0;

	/* Both words are loaded before the store, so d == x or d == y is safe. */
	for (; i + 8 <= len; i += 8) {
		uint64_t u, v;

		memcpy(&u, x + i, 8);
		memcpy(&v, y + i, 8);
		u ^= v;
		memcpy(d + i, &u, 8);
	}
	for (; i < len; i++)
		d[i] = x[i] ^ y[i];
}

/* One bit per byte of w: bit k set iff byte k (little-endian order) != 0. */
static inline uint64_t nonzero_bytes(uint64_t w)
{
	const uint64_t lo7 = 0x7f7f7f7f7f7f7f7full;
	uint64_t t = (((w & lo7) + lo7) | w) & ~lo7; /* 0x80 in each non-zero byte */

	/* Gather bit 8k+7 to bit k: each 0x80 marker lands on a distinct bit of
	 * the top byte (no carries reach it; checked against a byte loop in
	 * tests/test_delta.c). */
	return ((t >> 7) * 0x0102040810204080ull) >> 56;
}

uint64_t rp_delta_scan_scalar(const uint8_t *a, const uint8_t *b, unsigned nblocks,
			      uint64_t *masks)
{
	uint64_t summary = 0;

	for (unsigned blk = 0; blk < nblocks; blk++) {
		uint64_t m = 0;

		for (unsigned w = 0; w < 8; w++) {
			uint64_t u, v;

			memcpy(&u, a + 64 * blk + 8 * w, 8);
			memcpy(&v, b + 64 * blk + 8 * w, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
			u = __builtin_bswap64(u);
			v = __builtin_bswap64(v);
#endif
			if (u != v)
				m |= nonzero_bytes(u ^ v) << (8 * w);
		}
		masks[blk] = m;
		summary |= (uint64_t)(m != 0) << blk;
	}
	return summary;
}
