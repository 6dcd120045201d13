/* SPDX-License-Identifier: MIT */
/*
 * XOR and delta diff scan on 512-bit vectors. The tail uses masked loads
 * and stores, which never touch bytes outside the mask (no fault, no
 * over-read). Loads precede stores within each step, so dst may be exactly
 * a or b.
 */
#include <immintrin.h>

#include "simd_impl.h"

void rp_xor_avx512(void *dst, const void *a, const void *b, size_t len)
{
	uint8_t *d = dst;
	const uint8_t *x = a, *y = b;
	size_t i = 0;

	for (; i + 256 <= len; i += 256) {
		__m512i r0 = _mm512_xor_si512(_mm512_loadu_si512(x + i), _mm512_loadu_si512(y + i));
		__m512i r1 = _mm512_xor_si512(_mm512_loadu_si512(x + i + 64),
					      _mm512_loadu_si512(y + i + 64));
		__m512i r2 = _mm512_xor_si512(_mm512_loadu_si512(x + i + 128),
					      _mm512_loadu_si512(y + i + 128));
		__m512i r3 = _mm512_xor_si512(_mm512_loadu_si512(x + i + 192),
					      _mm512_loadu_si512(y + i + 192));

		_mm512_storeu_si512(d + i, r0);
		_mm512_storeu_si512(d + i + 64, r1);
		_mm512_storeu_si512(d + i + 128, r2);
		_mm512_storeu_si512(d + i + 192, r3);
	}
	for (; i + 64 <= len; i += 64)
		_mm512_storeu_si512(d + i, _mm512_xor_si512(_mm512_loadu_si512(x + i),
							    _mm512_loadu_si512(y + i)));
	if (i < len) {
		__mmask64 m = (1ull << (len - i)) - 1; /* len - i < 64 */

		_mm512_mask_storeu_epi8(d + i, m,
					_mm512_xor_si512(_mm512_maskz_loadu_epi8(m, x + i),
							 _mm512_maskz_loadu_epi8(m, y + i)));
	}
}

uint64_t rp_delta_scan_avx512(const uint8_t *a, const uint8_t *b, unsigned nblocks,
			      uint64_t *masks)
{
	uint64_t summary = 0;

	for (unsigned blk = 0; blk < nblocks; blk++) {
		uint64_t m = _mm512_cmpneq_epi8_mask(_mm512_loadu_si512(a + 64 * (size_t)blk),
						     _mm512_loadu_si512(b + 64 * (size_t)blk));

		masks[blk] = m;
		summary |= (uint64_t)(m != 0) << blk;
	}
	return summary;
}
