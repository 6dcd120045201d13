/* SPDX-License-Identifier: MIT */
/*
 * XOR and delta diff scan on 256-bit vectors. Loads precede stores within
 * each step, so dst may be exactly a or b.
 */
#include <immintrin.h>
#include <string.h>

#include "simd_impl.h"

void rp_xor_avx2(void *dst, const void *a, const void *b, size_t len)
{
	uint8_t *d = dst;
	const uint8_t *x = a, *y = b;
	size_t i = 0;

	for (; i + 128 <= len; i += 128) {
		__m256i r0 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(x + i)),
					      _mm256_loadu_si256((const __m256i *)(y + i)));
		__m256i r1 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(x + i + 32)),
					      _mm256_loadu_si256((const __m256i *)(y + i + 32)));
		__m256i r2 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(x + i + 64)),
					      _mm256_loadu_si256((const __m256i *)(y + i + 64)));
		__m256i r3 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(x + i + 96)),
					      _mm256_loadu_si256((const __m256i *)(y + i + 96)));

		_mm256_storeu_si256((__m256i *)(d + i), r0);
		_mm256_storeu_si256((__m256i *)(d + i + 32), r1);
		_mm256_storeu_si256((__m256i *)(d + i + 64), r2);
		_mm256_storeu_si256((__m256i *)(d + i + 96), r3);
	}
	for (; i + 32 <= len; i += 32)
		_mm256_storeu_si256((__m256i *)(d + i),
				    _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(x + i)),
						     _mm256_loadu_si256((const __m256i *)(y + i))));
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

uint64_t rp_delta_scan_avx2(const uint8_t *a, const uint8_t *b, unsigned nblocks,
			    uint64_t *masks)
{
	uint64_t summary = 0;

	for (unsigned blk = 0; blk < nblocks; blk++) {
		const uint8_t *pa = a + 64 * (size_t)blk, *pb = b + 64 * (size_t)blk;
		__m256i e0 = _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)pa),
					       _mm256_loadu_si256((const __m256i *)pb));
		__m256i e1 = _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(pa + 32)),
					       _mm256_loadu_si256((const __m256i *)(pb + 32)));
		uint64_t eq = (uint32_t)_mm256_movemask_epi8(e0) |
			      ((uint64_t)(uint32_t)_mm256_movemask_epi8(e1) << 32);
		uint64_t m = ~eq;

		masks[blk] = m;
		summary |= (uint64_t)(m != 0) << blk;
	}
	return summary;
}
