/* SPDX-License-Identifier: MIT */
/*
 * CRC-32C by VPCLMULQDQ folding on zmm registers: each zmm is four 128-bit
 * fold lanes (math in simd/crc32c_x86.h), four zmm accumulators consume
 * 256 bytes per iteration. Inputs of 64..255 bytes use one accumulator;
 * below 64 bytes the crc32 instruction chain is shorter than a reduction.
 */
#include <immintrin.h>

#include "simd_impl.h"
#include "crc32c_x86.h"

static inline __m512i bcast(uint32_t lo_const, uint32_t hi_const)
{
	return _mm512_broadcast_i32x4(_mm_set_epi64x(hi_const, lo_const));
}

/* fold(x) ^ data in one ternary-logic op (0x96 = a ^ b ^ c). */
static inline __m512i fold512(__m512i x, __m512i k, __m512i data)
{
	return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, k, 0x00),
					 _mm512_clmulepi64_epi128(x, k, 0x11), data, 0x96);
}

static inline __m512i load512(const uint8_t *p)
{
	return _mm512_loadu_si512((const void *)p);
}

/* The four 128-bit lanes of x into one, each moved to lane 3's place. */
static inline __m128i reduce512(__m512i x)
{
	/* Lanes 0..2 move by 48, 32, 16 bytes; lane 3 has zero constants and
	 * comes back in through the masked copy. */
	const __m512i k = _mm512_inserti64x4(
		_mm512_castsi256_si512(_mm256_set_epi64x(0xba4fc28e, 0x3da6d0cb, /* D=32 */
							 0xddc0152b, 0x1c291d04)), /* D=48 */
		_mm256_set_epi64x(0, 0, 0x493c7d27, 0xf20c0dfe), /* D=16, lane 3: 0 */
		1);
	__m512i t = _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, k, 0x00),
					      _mm512_clmulepi64_epi128(x, k, 0x11),
					      _mm512_maskz_mov_epi64(0xC0, x), 0x96);
	__m256i h = _mm256_xor_si256(_mm512_castsi512_si256(t), _mm512_extracti64x4_epi64(t, 1));

	return _mm_xor_si128(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

uint32_t rp_crc32c_avx512(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t c = ~crc;
	__m512i x0;
	__m128i y;

	if (len < 64)
		return ~rp_crc32c_tail(c, p, len);

	/* The initial value enters as an XOR into the first four bytes. */
	x0 = _mm512_xor_si512(load512(p), _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)c)));
	if (len >= 256) {
		const __m512i k256 = bcast(RP_K256_LO, RP_K256_HI);
		__m512i x1 = load512(p + 64), x2 = load512(p + 128), x3 = load512(p + 192);

		p += 256;
		len -= 256;
		while (len >= 256) {
			x0 = fold512(x0, k256, load512(p));
			x1 = fold512(x1, k256, load512(p + 64));
			x2 = fold512(x2, k256, load512(p + 128));
			x3 = fold512(x3, k256, load512(p + 192));
			p += 256;
			len -= 256;
		}
		/* Four accumulators into one at x3's place: three independent folds. */
		x0 = _mm512_ternarylogic_epi64(
			fold512(x0, bcast(RP_K192_LO, RP_K192_HI), x3),
			fold512(x1, bcast(RP_K128_LO, RP_K128_HI), _mm512_setzero_si512()),
			fold512(x2, bcast(0x740eef02, 0x9e4addf8), _mm512_setzero_si512()), 0x96);
	} else {
		p += 64;
		len -= 64;
	}
	while (len >= 64) {
		x0 = fold512(x0, bcast(0x740eef02, 0x9e4addf8), load512(p));
		p += 64;
		len -= 64;
	}
	y = reduce512(x0);
	while (len >= 16) {
		y = _mm_xor_si128(rp_fold128(y, RP_K16), _mm_loadu_si128((const __m128i *)p));
		p += 16;
		len -= 16;
	}
	return ~rp_crc32c_tail(rp_crc32c_of128(y), p, len);
}
