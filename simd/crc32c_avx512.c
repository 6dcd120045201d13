/* SPDX-License-Identifier: MIT */
/*
 * CRC-32C by VPCLMULQDQ folding on zmm registers: each zmm is four 128-bit
 * fold lanes (math in simd/crc32c_x86.h), four zmm accumulators consume
 * 256 bytes per iteration. Inputs of 64..255 bytes use one accumulator;
 * below 64 bytes the crc32 instruction chain is shorter than a reduction.
 *
 * Long inputs: carry-less multiplies and the crc32 instruction run on
 * different execution ports, and folding alone saturates the multiplier
 * (measured: ~15 bytes/cycle here, the same as ISA-L). So each block of
 * MIX_B(q) bytes is laid out as
 *     [ Z: MIX_NZ x 256 bytes, zmm folding ][ L0 ][ L1 ][ L2 ]
 * with the three L lanes (MIX_L(q) bytes each, q crc32q per lane per zmm
 * step: a per-vendor shape, see below) run through three independent
 * crc32 chains in the same loop. The lanes' CRCs are combined (shifts by a
 * fixed length: one clmul + one crc32 each) and enter the next block the
 * way the initial value enters the first: XORed into its first four bytes,
 * since a raw CRC c of a region is congruent to the 4-byte word c placed
 * right after it. The zmm accumulators jump over the lanes with the fold
 * constants for D = 256 + 3 * MIX_L(q).
 */
#include <immintrin.h>

#include "simd_impl.h"
#include "crc32c_x86.h"

#ifndef SHORT_MAX
#define SHORT_MAX 128 /* crossover measured: chain 14.0 ns vs zmm 12.0 ns at 128 B, 12.3 vs 15.0 at 112 B */
#endif

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

/*
 * Block shape, measured with chained calls against ISA-L on a Zen-class
 * EPYC (ratio at 4 KB / 64 KB / 1 MB): NZ=16,Q=5: 1.02/1.33/-;
 * NZ=8,Q=5: 1.19/1.30/-; NZ=8,Q=6: 1.20/1.33/1.32; NZ=8,Q=8: 1.29/1.28/1.29;
 * NZ=6,Q=6: 1.11/1.32/1.28. NZ=8,Q=6 (3200-byte blocks) is the best balance
 * there and still fits once in a 4 KB page.
 *
 * Intel cores get Q=2 (MIX_Q_INTEL), by arithmetic, not measured (no
 * AVX-512 host was at hand): there VPCLMULQDQ zmm issues one per cycle
 * (port 5) while crc32 has its own port at one per cycle, so a 256-byte
 * fold step costs 8 cycles and Q=6 adds 18 crc32 to it: 400 bytes per 18
 * cycles, 22 bytes/cycle, which is the 61 GB/s reported against ISA-L's 81
 * (pure folding, ~29 bytes/cycle) on such a host. Q=2 gives 304 bytes per 8
 * cycles. On Zen4 a zmm multiply takes two cycles (16 per step), which is
 * what Q=6's 18 crc32 balance.
 */
#define MIX_NZ 8
#ifndef MIX_Q_AMD
#define MIX_Q_AMD 6 /* crc32q per lane per 256-byte zmm step */
#endif
#ifndef MIX_Q_INTEL
#define MIX_Q_INTEL 2
#endif
#define MIX_L(q) (MIX_NZ * (q) * 8)
#define MIX_Z (MIX_NZ * 256)
#define MIX_B(q) (MIX_Z + 3 * MIX_L(q))

/* Constants of one block shape: fold by D = 256 + 3 L, x^(8n - 33) for n = L and 3 L. */
struct mix_geom {
	uint32_t jump_lo, jump_hi, k_lane, k_lanes;
};
static struct mix_geom geom_amd, geom_intel;
static bool cpu_intel;

static void geom_init(struct mix_geom *g, uint64_t l)
{
	uint64_t d = 256 + 3 * l;

	g->jump_lo = rp_crc32c_xpow(8 * d + 31);
	g->jump_hi = rp_crc32c_xpow(8 * d - 33);
	g->k_lane = rp_crc32c_xpow(8 * l - 33);
	g->k_lanes = rp_crc32c_xpow(8 * 3 * l - 33);
}

__attribute__((constructor(101))) static void crc32c_avx512_init(void)
{
	geom_init(&geom_amd, MIX_L(MIX_Q_AMD));
	geom_init(&geom_intel, MIX_L(MIX_Q_INTEL));
	__builtin_cpu_init();
	cpu_intel = __builtin_cpu_is("intel");
}

/* c * x^(8n) mod P for a raw register c, given k = x^(8n - 33): the
 * carry-less product is 63 bits; fed to crc32 as data it gains x^33. */
static inline uint32_t shift_crc(uint32_t c, uint32_t k)
{
	__m128i prod = _mm_clmulepi64_si128(_mm_cvtsi32_si128((int)c), _mm_cvtsi32_si128((int)k), 0);

	return (uint32_t)_mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(prod));
}

static inline __m512i zext32(uint32_t c)
{
	return _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)c));
}

/* Consumes whole blocks of MIX_B(q) bytes (len >= MIX_B(q)); returns the raw
 * register. Inlined into one function per shape, so q is a constant. */
static inline __attribute__((always_inline)) uint32_t crc_mixed(uint32_t c, const uint8_t **pp,
								size_t *plen, const size_t q,
								const struct mix_geom *g)
{
	const size_t mix_l = MIX_L(q), mix_b = MIX_B(q);
	const uint8_t *p = *pp;
	size_t len = *plen;
	const __m512i k256 = bcast(RP_K256_LO, RP_K256_HI);
	const __m512i kjump = bcast(g->jump_lo, g->jump_hi);
	__m512i x0 = _mm512_xor_si512(load512(p), zext32(c));
	__m512i x1 = load512(p + 64), x2 = load512(p + 128), x3 = load512(p + 192);
	uint32_t lanes = 0;
	__m128i y;

	for (;;) {
		const uint8_t *l0 = p + MIX_Z;
		uint64_t a = 0, b = 0, d = 0;

		for (size_t j = 0; j < MIX_NZ; j++) {
			const uint8_t *q0 = l0 + j * q * 8;

			if (j) {
				const uint8_t *z = p + 256 * j;

				x0 = fold512(x0, k256, load512(z));
				x1 = fold512(x1, k256, load512(z + 64));
				x2 = fold512(x2, k256, load512(z + 128));
				x3 = fold512(x3, k256, load512(z + 192));
			}
			for (size_t i = 0; i < q; i++) {
				a = _mm_crc32_u64(a, rp_load64(q0 + 8 * i));
				b = _mm_crc32_u64(b, rp_load64(q0 + mix_l + 8 * i));
				d = _mm_crc32_u64(d, rp_load64(q0 + 2 * mix_l + 8 * i));
			}
		}
		lanes = shift_crc(shift_crc((uint32_t)a, g->k_lane) ^ (uint32_t)b, g->k_lane) ^
			(uint32_t)d;
		p += mix_b;
		len -= mix_b;
		if (len < mix_b)
			break;
		/* Jump over the lanes; their CRC enters as the next block's first word. */
		x0 = fold512(x0, kjump, _mm512_xor_si512(load512(p), zext32(lanes)));
		x1 = fold512(x1, kjump, load512(p + 64));
		x2 = fold512(x2, kjump, load512(p + 128));
		x3 = fold512(x3, kjump, load512(p + 192));
	}
	x0 = _mm512_ternarylogic_epi64(
		fold512(x0, bcast(RP_K192_LO, RP_K192_HI), x3),
		fold512(x1, bcast(RP_K128_LO, RP_K128_HI), _mm512_setzero_si512()),
		fold512(x2, bcast(0x740eef02, 0x9e4addf8), _mm512_setzero_si512()), 0x96);
	y = reduce512(x0);
	*pp = p;
	*plen = len;
	return shift_crc(rp_crc32c_of128(y), g->k_lanes) ^ lanes;
}

static uint32_t crc_mixed_amd(uint32_t c, const uint8_t **pp, size_t *plen)
{
	return crc_mixed(c, pp, plen, MIX_Q_AMD, &geom_amd);
}

static uint32_t crc_mixed_intel(uint32_t c, const uint8_t **pp, size_t *plen)
{
	return crc_mixed(c, pp, plen, MIX_Q_INTEL, &geom_intel);
}

/* The kernel for one block shape; intel picks it (see MIX_Q_INTEL). */
static inline __attribute__((always_inline)) uint32_t crc_avx512(uint32_t crc, const void *buf,
								 size_t len, bool intel)
{
	const uint8_t *p = buf;
	uint32_t c = ~crc;
	__m512i x0;
	__m128i y;

	if (len < SHORT_MAX)
		return ~rp_crc32c_tail(c, p, len);
	if (len >= (intel ? MIX_B(MIX_Q_INTEL) : MIX_B(MIX_Q_AMD))) {
		c = intel ? crc_mixed_intel(c, &p, &len) : crc_mixed_amd(c, &p, &len);
		if (len < 64)
			return ~rp_crc32c_tail(c, p, len);
	}

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
	/* The < 64 bytes left go through the crc32 chain: two chained crc32q
	 * (6 cycles) beat one latency-bound 16-byte fold (~10 cycles here). */
	y = reduce512(x0);
	return ~rp_crc32c_tail(rp_crc32c_of128(y), p, len);
}

uint32_t rp_crc32c_avx512_amd(uint32_t crc, const void *buf, size_t len)
{
	return crc_avx512(crc, buf, len, false);
}

uint32_t rp_crc32c_avx512_intel(uint32_t crc, const void *buf, size_t len)
{
	return crc_avx512(crc, buf, len, true);
}

uint32_t rp_crc32c_avx512(uint32_t crc, const void *buf, size_t len)
{
	if (cpu_intel)
		return rp_crc32c_avx512_intel(crc, buf, len);
	return rp_crc32c_avx512_amd(crc, buf, len);
}
