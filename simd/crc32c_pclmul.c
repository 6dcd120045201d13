/* SPDX-License-Identifier: MIT */
/*
 * CRC-32C by PCLMULQDQ folding: four 128-bit accumulators consume 64 bytes
 * per iteration (math in simd/crc32c_x86.h). Short inputs, where the
 * fold-and-reduce overhead exceeds the work, use the crc32 instruction.
 */
#include "simd_impl.h"
#include "crc32c_x86.h"

/* Below this the single crc32 chain wins (fold setup + reduction cost
 * about as much as 16 chained crc32q). */
#define FOLD_MIN 128

uint32_t rp_crc32c_pclmul(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t c = ~crc;
	__m128i x0, x1, x2, x3;

	if (len < FOLD_MIN)
		return ~rp_crc32c_tail(c, p, len);

	x0 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)p), _mm_cvtsi32_si128((int)c));
	x1 = _mm_loadu_si128((const __m128i *)(p + 16));
	x2 = _mm_loadu_si128((const __m128i *)(p + 32));
	x3 = _mm_loadu_si128((const __m128i *)(p + 48));
	p += 64;
	len -= 64;
	while (len >= 64) {
		const __m128i k = RP_K64;

		x0 = _mm_xor_si128(rp_fold128(x0, k), _mm_loadu_si128((const __m128i *)p));
		x1 = _mm_xor_si128(rp_fold128(x1, k), _mm_loadu_si128((const __m128i *)(p + 16)));
		x2 = _mm_xor_si128(rp_fold128(x2, k), _mm_loadu_si128((const __m128i *)(p + 32)));
		x3 = _mm_xor_si128(rp_fold128(x3, k), _mm_loadu_si128((const __m128i *)(p + 48)));
		p += 64;
		len -= 64;
	}
	/* Four accumulators into one: each moves to the position of x3. */
	x0 = _mm_xor_si128(rp_fold128(x0, RP_K48), rp_fold128(x1, RP_K32));
	x0 = _mm_xor_si128(x0, _mm_xor_si128(rp_fold128(x2, RP_K16), x3));
	while (len >= 16) {
		x0 = _mm_xor_si128(rp_fold128(x0, RP_K16), _mm_loadu_si128((const __m128i *)p));
		p += 16;
		len -= 16;
	}
	return ~rp_crc32c_tail(rp_crc32c_of128(x0), p, len);
}
