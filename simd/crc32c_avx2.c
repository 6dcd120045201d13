/* SPDX-License-Identifier: MIT */
/*
 * CRC-32C for AVX2 cores with VPCLMULQDQ on ymm (AMD Zen3/Zen4 without
 * AVX-512, Intel Alder Lake and later): the crc32 instruction and 256-bit
 * carry-less folding, side by side.
 *
 * Why: on Zen3 crc32 r64 has a latency of 3 and a throughput of 1 per cycle,
 * so three chains give 8 bytes/cycle and no more (ISA-L's crc32_iscsi_01);
 * VPCLMULQDQ ymm (measured: one per 2 cycles, latency 4) folds 32 bytes per
 * two multiplies, another 8 bytes/cycle on other ports. The xmm PCLMULQDQ
 * kernel (crc32c_pclmul.c), latency-bound, reached only 0.5x ISA-L here.
 *
 * The initial value never waits for the data: crc(c, D) = c * x^(8|D|) +
 * crc(0, D) (raw registers, mod P), so from SHIFT_MIN bytes on the data's
 * CRC is computed from zero and c joins it with one multiply. A stream of
 * buffers checksummed in order (each call's result is the next one's
 * seed) then has one multiply per buffer on its critical path instead of
 * the whole computation, and consecutive buffers overlap.
 *
 * Paths by length (thresholds measured on Zen3 against ISA-L crc32_iscsi
 * with chained calls, the ringplane-bench pattern):
 * - below MID_MIN: one crc32 chain;
 * - below MID2_MIN: ymm folding alone (crc_mid): at these sizes a stream of
 *   calls is bound by latency (the vector scheduler fills up), and the
 *   fold's reduction is shorter than crc32 lanes and their combine;
 * - below MIX_B: one block of folding with three crc32 lanes in the same
 *   loop (crc_mid2);
 * - from MIX_B bytes on: blocks laid out as
 *       [ Z: MIX_NZ x 128 bytes, 4 ymm accumulators ][ L0 ][ L1 ][ L2 ]
 *   where each 128-byte fold step also advances three crc32 chains over
 *   the L lanes by MIX_Q words each. The lanes' combined CRC enters the
 *   next block the way the initial value enters the first (XORed into its
 *   first four bytes: a raw CRC c of a region is congruent to the word c
 *   placed right after it), and the accumulators jump over the lanes with
 *   the fold constants for D = 128 + 3 * MIX_L. The same technique as
 *   crc32c_avx512.c, on ymm.
 * Fold math and constants: simd/crc32c_x86.h.
 */
#include <immintrin.h>

#include "simd_impl.h"
#include "crc32c_x86.h"

/* Below this the initial value goes through the crc32 chain itself (at most
 * SHIFT_MIN / 8 steps of 3 cycles, no longer than the multiply). */
#ifndef SHIFT_MIN
#define SHIFT_MIN 32
#endif
_Static_assert(SHIFT_MIN >= 5, "x^(8n - 33) needs n >= 5");

/* Below MID_MIN, one crc32 chain (from zero, so off the critical path; it
 * beat three chains and their combine, and folding, at 72..127 bytes).
 * Folding alone from there (crc_mid); up to DIRECT_MAX bytes each 32-byte
 * chunk is folded straight to the end (independent multiplies), above it
 * four accumulators step by 128 bytes and are reduced. */
#ifndef MID_MIN
#define MID_MIN 128
#endif
#ifndef DIRECT_MAX
#define DIRECT_MAX 512
#endif

/* Folding and crc32 lanes in one loop from here (crc_mid2), MID2_Q crc32q
 * per lane per 128-byte fold step (measured: 3 beat 4 and 5 at 768 B..3 KB). */
#ifndef MID2_MIN
#define MID2_MIN 768
#endif
#ifndef MID2_Q
#define MID2_Q 3
#endif

/*
 * Block shape for long inputs: MIX_Q crc32q per lane per 128-byte ymm step
 * (measured at 4 KB..1 MB: Q = 4 and 5 alike, 3 and 2 slower); MIX_B =
 * 3968 bytes still fits once in a 4 KB page.
 */
#ifndef MIX_NZ
#define MIX_NZ 16
#endif
#ifndef MIX_Q
#define MIX_Q 5
#endif
#define MIX_L (MIX_NZ * MIX_Q * 8)
#define MIX_Z (MIX_NZ * 128)
#define MIX_B (MIX_Z + 3 * MIX_L)

_Static_assert(SHIFT_MIN <= MID_MIN && MID_MIN <= MID2_MIN && MID2_MIN <= MIX_B,
	       "paths in order of length");
_Static_assert(DIRECT_MAX <= 16 * 32, "fold_k reaches D = 512");
_Static_assert(MID2_MIN >= 128 + 24 * MID2_Q, "crc_mid2 needs a fold step and its lane words");

static uint32_t mix_jump_lo, mix_jump_hi;    /* fold by D = 128 + 3 * MIX_L */
static uint32_t mix_k_l, mix_k_2l, mix_k_3l; /* x^(8n - 33): n = MIX_L, 2 and 3 MIX_L */
/* Fold by D = 32 (d + 1) bytes, d = 0..15: {lo, hi, lo, hi}. */
static _Alignas(32) uint64_t fold_k[16][4];
/* Fold one xmm by D = 32 i bytes, i < MIX_B / 32 + 1: {lo, hi}. */
static _Alignas(16) uint64_t head_k[MIX_B / 32 + 1][2];
/* x^(8n - 33) = shift_short[n] (n < 128: one load for the short paths), or
 * merge(shift_hi[n / 64], shift_lo[n % 64]). */
static uint32_t shift_short[128], shift_lo[64], shift_hi[MIX_B / 64 + 2];

__attribute__((constructor(101))) static void crc32c_avx2_init(void)
{
	uint64_t d = 128 + 3 * MIX_L;

	mix_jump_lo = rp_crc32c_xpow(8 * d + 31);
	mix_jump_hi = rp_crc32c_xpow(8 * d - 33);
	mix_k_l = rp_crc32c_xpow(8ull * MIX_L - 33);
	mix_k_2l = rp_crc32c_xpow(8ull * 2 * MIX_L - 33);
	mix_k_3l = rp_crc32c_xpow(8ull * 3 * MIX_L - 33);
	for (uint64_t n = 5; n < 128; n++)
		shift_short[n] = rp_crc32c_xpow(8 * n - 33);
	for (uint64_t n = 0; n < 64; n++)
		shift_lo[n] = rp_crc32c_xpow(8 * n);
	for (uint64_t h = 1; h <= MIX_B / 64 + 1; h++)
		shift_hi[h] = rp_crc32c_xpow(512 * h - 66);
	for (uint64_t i = 1; i <= MIX_B / 32; i++) {
		head_k[i][0] = rp_crc32c_xpow(8 * 32 * i + 31);
		head_k[i][1] = rp_crc32c_xpow(8 * 32 * i - 33);
	}
	for (unsigned i = 0; i < 16; i++) {
		fold_k[i][0] = fold_k[i][2] = rp_crc32c_xpow(8 * 32 * (i + 1) + 31);
		fold_k[i][1] = fold_k[i][3] = rp_crc32c_xpow(8 * 32 * (i + 1) - 33);
	}
}

/* The 64-bit carry-less product of two raw registers, as crc32 input
 * (feeding it to crc32 from 0 multiplies by x^33 and reduces). */
static inline uint64_t clmul32(uint32_t a, uint32_t k)
{
	__m128i prod =
		_mm_clmulepi64_si128(_mm_cvtsi32_si128((int)a), _mm_cvtsi32_si128((int)k), 0);

	return (uint64_t)_mm_cvtsi128_si64(prod);
}

/* a * b * x^33 mod P: with b = x^(8n - 33), a raw register a moved over n bytes. */
static inline uint32_t merge(uint32_t a, uint32_t b)
{
	return (uint32_t)_mm_crc32_u64(0, clmul32(a, b));
}

/* crc(A) * x^(2L) + crc(B) * x^L + crc(C) for raw lane registers a, b, c. */
static inline uint32_t combine3(uint32_t a, uint32_t b, uint32_t c, uint32_t k2l, uint32_t kl)
{
	return (uint32_t)_mm_crc32_u64(0, clmul32(a, k2l) ^ clmul32(b, kl)) ^ c;
}

/* One word on each of three chains. */
#define STEP3(a, b, d, p, q, r, i)                                                                 \
	do {                                                                                       \
		a = _mm_crc32_u64(a, rp_load64((p) + (i)));                                        \
		b = _mm_crc32_u64(b, rp_load64((q) + (i)));                                        \
		d = _mm_crc32_u64(d, rp_load64((r) + (i)));                                        \
	} while (0)

static inline __m256i bcast(uint32_t lo_const, uint32_t hi_const)
{
	return _mm256_set_epi64x(hi_const, lo_const, hi_const, lo_const);
}

/* Fold by D = 32 (d + 1) bytes, d = 0..15, as one load. */
static inline __m256i kfold(unsigned d)
{
	return _mm256_load_si256((const __m256i *)fold_k[d]);
}

/* x moved forward by the distance k encodes, XORed with data. */
static inline __m256i fold256(__m256i x, __m256i k, __m256i data)
{
	return _mm256_xor_si256(_mm256_xor_si256(_mm256_clmulepi64_epi128(x, k, 0x00),
						 _mm256_clmulepi64_epi128(x, k, 0x11)),
				data);
}

static inline __m256i load256(const uint8_t *p)
{
	return _mm256_loadu_si256((const __m256i *)p);
}

/* Four consecutive 32-byte accumulators into one at x3's place. */
static inline __m256i reduce4(__m256i x0, __m256i x1, __m256i x2, __m256i x3)
{
	return _mm256_xor_si256(
		fold256(x0, kfold(2), x3),
		fold256(x1, kfold(1), fold256(x2, kfold(0), _mm256_setzero_si256())));
}

/* Consumes whole MIX_B blocks (len >= MIX_B); returns the raw register. */
static uint32_t crc_mixed(uint32_t c, const uint8_t **pp, size_t *plen)
{
	const uint8_t *p = *pp;
	size_t len = *plen;
	const __m256i k128 = kfold(3);
	const __m256i kjump = bcast(mix_jump_lo, mix_jump_hi);
	__m256i x0 =
		_mm256_xor_si256(load256(p), _mm256_zextsi128_si256(_mm_cvtsi32_si128((int)c)));
	__m256i x1 = load256(p + 32), x2 = load256(p + 64), x3 = load256(p + 96);
	uint32_t lanes;
	__m128i y;

	for (;;) {
		const uint8_t *l0 = p + MIX_Z;
		uint64_t a = 0, b = 0, d = 0;

		for (size_t j = 0; j < MIX_NZ; j++) {
			const uint8_t *q = l0 + j * MIX_Q * 8;

			if (j) {
				const uint8_t *z = p + 128 * j;

				x0 = fold256(x0, k128, load256(z));
				x1 = fold256(x1, k128, load256(z + 32));
				x2 = fold256(x2, k128, load256(z + 64));
				x3 = fold256(x3, k128, load256(z + 96));
			}
			for (size_t i = 0; i < MIX_Q; i++) {
				a = _mm_crc32_u64(a, rp_load64(q + 8 * i));
				b = _mm_crc32_u64(b, rp_load64(q + MIX_L + 8 * i));
				d = _mm_crc32_u64(d, rp_load64(q + 2 * MIX_L + 8 * i));
			}
		}
		lanes = combine3((uint32_t)a, (uint32_t)b, (uint32_t)d, mix_k_2l, mix_k_l);
		p += MIX_B;
		len -= MIX_B;
		if (len < MIX_B)
			break;
		/* Jump over the lanes; their CRC enters as the next block's first word. */
		x0 = fold256(x0, kjump,
			     _mm256_xor_si256(load256(p), _mm256_zextsi128_si256(
								  _mm_cvtsi32_si128((int)lanes))));
		x1 = fold256(x1, kjump, load256(p + 32));
		x2 = fold256(x2, kjump, load256(p + 64));
		x3 = fold256(x3, kjump, load256(p + 96));
	}
	/* Four accumulators into one at x3's place, then its two halves into one. */
	x0 = reduce4(x0, x1, x2, x3);
	y = _mm_xor_si128(rp_fold128(_mm256_castsi256_si128(x0), RP_K16),
			  _mm256_extracti128_si256(x0, 1));
	*pp = p;
	*plen = len;
	return (uint32_t)_mm_crc32_u64(0, clmul32(rp_crc32c_of128(y), mix_k_3l)) ^ lanes;
}

/* x^(8n - 33), for 5 <= n < MIX_B: the constant that moves a raw register over n bytes. */
static inline uint32_t kshift(size_t n)
{
	if (n < 128)
		return shift_short[n];
	return merge(shift_hi[n >> 6], shift_lo[n & 63]);
}

/* pshufb control: loadu(shift_tab + m) moves the first m bytes of an xmm to
 * its top, zeros below (m = 0..16). */
static const uint8_t shift_tab[32] = {
	0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	0x80, 0x80, 0x80, 0x80, 0x80, 0,    1,	  2,	3,    4,    5,
	6,    7,    8,	  9,	10,   11,   12,	  13,	14,   15,
};

/*
 * The f bytes at q (f a multiple of 32, 32 <= f < MIX_B) folded into one xmm
 * congruent to them (the CRC from zero of its 16 bytes is theirs). Four
 * accumulators take every fourth 32-byte chunk; when the chunk count is not
 * a multiple of four, the first row is padded with zero chunks in front
 * (leading zeros leave a CRC from zero unchanged).
 */
static inline __m128i fold_region(const uint8_t *q, size_t f)
{
	__m256i x;

	if (f <= DIRECT_MAX) {
		/* Each 32-byte chunk moves straight to the last one's place:
		 * independent multiplies, shorter than a loop and reduction. */
		__m256i a = load256(q + f - 32), b = _mm256_setzero_si256();

		for (size_t i = 0; i + 32 < f; i += 64) {
			a = fold256(load256(q + i), kfold((unsigned)((f - 64 - i) / 32)), a);
			if (i + 64 < f)
				b = fold256(load256(q + i + 32),
					    kfold((unsigned)((f - 96 - i) / 32)), b);
		}
		x = _mm256_xor_si256(a, b);
	} else {
		const __m256i k128 = kfold(3);
		size_t pad = (128 - f % 128) % 128;
		__m256i x0 = pad >= 32 ? _mm256_setzero_si256() : load256(q - pad);
		__m256i x1 = pad >= 64 ? _mm256_setzero_si256() : load256(q + 32 - pad);
		__m256i x2 = pad >= 96 ? _mm256_setzero_si256() : load256(q + 64 - pad);
		__m256i x3 = load256(q + 96 - pad);

		for (size_t i = 128 - pad; i < f; i += 128) {
			x0 = fold256(x0, k128, load256(q + i));
			x1 = fold256(x1, k128, load256(q + i + 32));
			x2 = fold256(x2, k128, load256(q + i + 64));
			x3 = fold256(x3, k128, load256(q + i + 96));
		}
		x = reduce4(x0, x1, x2, x3);
	}
	return _mm_xor_si128(rp_fold128(_mm256_castsi256_si128(x), RP_K16),
			     _mm256_extracti128_si256(x, 1));
}

/* The h (< 32) bytes at p, zero-padded in front to one xmm and moved over
 * the f bytes after them (f a multiple of 32), to be XORed into the xmm
 * that fold_region() made of those. */
static inline __m128i fold_head(const uint8_t *p, size_t h, size_t f)
{
	const __m128i k = _mm_load_si128((const __m128i *)head_k[f / 32]);
	__m128i hv;

	if (h <= 16) {
		hv = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p),
				      _mm_loadu_si128((const __m128i *)(shift_tab + h)));
	} else {
		__m128i h1 =
			_mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p),
					 _mm_loadu_si128((const __m128i *)(shift_tab + h - 16)));

		hv = _mm_xor_si128(rp_fold128(h1, RP_K16),
				   _mm_loadu_si128((const __m128i *)(p + h - 16)));
	}
	return rp_fold128(hv, k);
}

/*
 * The raw CRC from zero of len bytes at p (MID_MIN <= len < MID2_MIN) by
 * ymm folding alone. The len % 32 bytes in front of the last f = len -
 * len % 32 are one xmm, zero-padded in front, folded straight over the f
 * bytes into the final accumulator, so no crc32 chain waits for them.
 * Measured on Zen3: at these sizes a stream of calls is bound by the
 * latency of this computation (the vector scheduler fills up), and
 * folding's reduction is shorter than crc32 lanes and their combine.
 */
static inline uint32_t crc_mid(const uint8_t *p, size_t len)
{
	size_t h = len & 31, f = len - h;
	__m128i y = fold_region(p + h, f);

	if (h)
		y = _mm_xor_si128(y, fold_head(p, h, f));
	return rp_crc32c_of128(y);
}

/*
 * The raw CRC from zero of len bytes at p (MID2_MIN <= len < MIX_B) with
 * both units busy, laid out as [h][Z: s x 128 folded][L0][L1][L2]: each
 * 128-byte fold step also advances three crc32 chains by MIX_Q words (the
 * same loop: run one after the other, the folds fill the out-of-order
 * window and the chains start late), the chains finish the few words
 * beyond MIX_Q x s on their own, and h < 24 bytes ride on the fold as in
 * crc_mid().
 */
static inline uint32_t crc_mid2(const uint8_t *p, size_t len)
{
	size_t s = len / (128 + 24 * MID2_Q), z = 128 * s;
	size_t h = (len - z) % 24, l = (len - z - h) / 3;
	const uint8_t *q = p + h, *r0 = q + z, *r1 = r0 + l, *r2 = r1 + l;
	const __m256i k128 = kfold(3);
	__m256i x0 = load256(q), x1 = load256(q + 32), x2 = load256(q + 64), x3 = load256(q + 96);
	uint64_t a = 0, b = 0, d = 0;
	size_t i = 0;
	__m256i x;
	__m128i y;

	for (size_t j = 0; j < s; j++) {
		if (j) {
			const uint8_t *zj = q + 128 * j;

			x0 = fold256(x0, k128, load256(zj));
			x1 = fold256(x1, k128, load256(zj + 32));
			x2 = fold256(x2, k128, load256(zj + 64));
			x3 = fold256(x3, k128, load256(zj + 96));
		}
		for (size_t u = 0; u < MID2_Q; u++, i += 8)
			STEP3(a, b, d, r0, r1, r2, i);
	}
	for (; i < l; i += 8)
		STEP3(a, b, d, r0, r1, r2, i);
	x = reduce4(x0, x1, x2, x3);
	y = _mm_xor_si128(rp_fold128(_mm256_castsi256_si128(x), RP_K16),
			  _mm256_extracti128_si256(x, 1));
	if (h)
		y = _mm_xor_si128(y, fold_head(p, h, z));
	return merge(rp_crc32c_of128(y), kshift(3 * l)) ^
	       combine3((uint32_t)a, (uint32_t)b, (uint32_t)d, kshift(2 * l), kshift(l));
}

uint32_t rp_crc32c_avx2(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t c = ~crc, d;

	if (len >= MIX_B)
		c = crc_mixed(c, &p, &len);
	if (len < SHIFT_MIN)
		return ~rp_crc32c_tail(c, p, len);
	/*
	 * crc(c, D) = c * x^(8|D|) + crc(0, D): the data's own CRC does not
	 * wait for c, only one multiply does. A stream of buffers checksummed
	 * in order then costs one multiply per buffer on its critical path
	 * instead of the whole crc32 chain, and the chains of consecutive
	 * buffers overlap. x^(8 len - 33) comes from table entries, also
	 * independent of c.
	 */
	if (len < MID_MIN)
		d = rp_crc32c_tail(0, p, len);
	else if (len < MID2_MIN)
		d = crc_mid(p, len);
	else
		d = crc_mid2(p, len);
	return ~(merge(c, kshift(len)) ^ d);
}
