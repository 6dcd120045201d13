/* SPDX-License-Identifier: MIT */
/*
 * CRC-32C scalar reference: slice-by-8 tables, plus the GF(2) arithmetic
 * modulo P that the other kernels derive their constants from.
 *
 * Reflected representation throughout: bit j of a 32-bit value holds the
 * coefficient of x^(31-j), so 0x80000000 is the polynomial 1 and
 * multiplying by x is a right shift (reducing by P when bit 0 falls off).
 */
#include <stdint.h>
#include <string.h>

#include "simd_impl.h"

#define CRC32C_POLY_REFLECTED 0x82F63B78u

static uint32_t crc_tab[8][256];

/*
 * Priority 101 (the first one open to programs): a constructor of the
 * embedding program may already compute CRCs, and must find these filled.
 */
__attribute__((constructor(101))) static void crc32c_scalar_init(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ CRC32C_POLY_REFLECTED : c >> 1;
		crc_tab[0][n] = c;
	}
	for (uint32_t n = 0; n < 256; n++)
		for (int k = 1; k < 8; k++)
			crc_tab[k][n] = (crc_tab[k - 1][n] >> 8) ^ crc_tab[0][crc_tab[k - 1][n] & 0xff];
}

static inline uint64_t load_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

uint32_t rp_crc32c_scalar(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	crc = ~crc;
	/* Align so the 8-byte loads below do not straddle cache lines. */
	while (len && ((uintptr_t)p & 7)) {
		crc = crc_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
		len--;
	}
	while (len >= 8) {
		uint64_t w = load_le64(p) ^ crc;

		/* The first byte in memory has the most bytes after it: table 7. */
		crc = crc_tab[7][w & 0xff] ^ crc_tab[6][(w >> 8) & 0xff] ^
		      crc_tab[5][(w >> 16) & 0xff] ^ crc_tab[4][(w >> 24) & 0xff] ^
		      crc_tab[3][(w >> 32) & 0xff] ^ crc_tab[2][(w >> 40) & 0xff] ^
		      crc_tab[1][(w >> 48) & 0xff] ^ crc_tab[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = crc_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

uint32_t rp_crc32c_mulmod(uint32_t a, uint32_t b)
{
	uint32_t prod = 0;

	/* Walk a's terms from x^0 upwards while b is multiplied by x each step. */
	for (int k = 0; k < 32; k++) {
		if (a & (0x80000000u >> k))
			prod ^= b;
		b = (b & 1) ? (b >> 1) ^ CRC32C_POLY_REFLECTED : b >> 1;
	}
	return prod;
}

uint32_t rp_crc32c_xpow(uint64_t k)
{
	uint32_t result = 0x80000000u; /* 1 */
	uint32_t base = 0x40000000u;   /* x */

	while (k) {
		if (k & 1)
			result = rp_crc32c_mulmod(result, base);
		base = rp_crc32c_mulmod(base, base);
		k >>= 1;
	}
	return result;
}
