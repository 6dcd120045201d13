/* SPDX-License-Identifier: MIT */
/*
 * Pieces shared by the x86 CRC-32C kernels. Include only from files built
 * with -msse4.2 -mpclmul (simd/meson.build).
 *
 * Folding constants. A 128-bit accumulator X holds 16 message bytes as
 * loaded (little-endian): its low qword is the earlier 8 bytes, i.e. the
 * higher-degree half. Moving X forward by D bytes, so it can be XORed into
 * the data D bytes later, is X * x^(8D) mod P, computed as
 *   clmul(lo(X), x^(8D+31) mod P) ^ clmul(hi(X), x^(8D-33) mod P)
 * with both constants as 32-bit reflected values (the +31/-33 absorb the
 * 64-bit split and the one-bit offset of a carry-less product of
 * reflected operands). Values below are rp_crc32c_xpow(n) for the n shown;
 * tests compare every kernel with the scalar reference, which would catch
 * any wrong digit. No Barrett step: the final 16 bytes are fed to the crc32
 * instruction as data, since the accumulator is congruent to the data it
 * replaces.
 */
#ifndef RP_CRC32C_X86_H
#define RP_CRC32C_X86_H

#include <nmmintrin.h>
#include <stdint.h>
#include <string.h>
#include <wmmintrin.h>

/*                              x^(8D+31)    x^(8D-33) */
#define RP_K16 _mm_set_epi64x(0x493c7d27, 0xf20c0dfe) /* D = 16  */
#define RP_K32 _mm_set_epi64x(0xba4fc28e, 0x3da6d0cb) /* D = 32  */
#define RP_K48 _mm_set_epi64x(0xddc0152b, 0x1c291d04) /* D = 48  */
#define RP_K64 _mm_set_epi64x(0x9e4addf8, 0x740eef02) /* D = 64  */
#define RP_K128_LO 0x6992cea2u /* x^1055, D = 128 */
#define RP_K128_HI 0x0d3b6092u /* x^991 */
#define RP_K192_LO 0xa87ab8a8u /* x^1567, D = 192 */
#define RP_K192_HI 0xab7aff2au /* x^1503 */
#define RP_K256_LO 0xdcb17aa4u /* x^2079, D = 256 */
#define RP_K256_HI 0xb9e02b86u /* x^2015 */

/* X moved forward by the distance k encodes (lane: {lo: x^(8D+31), hi: x^(8D-33)}). */
static inline __m128i rp_fold128(__m128i x, __m128i k)
{
	return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11));
}

static inline uint64_t rp_load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

/* The crc32 instruction over the last < 16 .. any bytes: the tail path. */
static inline uint32_t rp_crc32c_tail(uint32_t c, const uint8_t *p, size_t len)
{
	uint64_t c64 = c;

	for (; len >= 8; p += 8, len -= 8)
		c64 = _mm_crc32_u64(c64, rp_load64(p));
	c = (uint32_t)c64;
	if (len & 4) {
		uint32_t w;

		memcpy(&w, p, 4);
		c = _mm_crc32_u32(c, w);
		p += 4;
	}
	if (len & 2) {
		uint16_t h;

		memcpy(&h, p, 2);
		c = _mm_crc32_u16(c, h);
		p += 2;
	}
	if (len & 1)
		c = _mm_crc32_u8(c, *p);
	return c;
}

/* CRC (raw register, from 0) of the 16 bytes X stands for. */
static inline uint32_t rp_crc32c_of128(__m128i x)
{
	uint64_t c = _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(x));

	return (uint32_t)_mm_crc32_u64(c, (uint64_t)_mm_extract_epi64(x, 1));
}

#endif /* RP_CRC32C_X86_H */
