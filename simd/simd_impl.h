/* SPDX-License-Identifier: MIT */
/*
 * Private interface between simd/dispatch.c and the per-ISA kernel files.
 * Each kernel file is compiled with its own -m flags (simd/meson.build), so
 * only dispatch.c decides whether its code may run on this CPU.
 *
 * Every crc32c kernel has the public rp_crc32c() semantics (inversion inside).
 * Every xor kernel has rp_xor() semantics. Every diff-scan kernel has
 * rp_delta_scan_fn semantics below. Tests call each kernel directly and
 * compare it with the scalar reference.
 */
#ifndef RP_SIMD_IMPL_H
#define RP_SIMD_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint32_t (*rp_crc32c_fn)(uint32_t crc, const void *buf, size_t len);
typedef void (*rp_xor_fn)(void *dst, const void *a, const void *b, size_t len);

/*
 * Diff scan for the delta encoder: for each of @nblocks (1..64) 64-byte
 * blocks starting at @a and @b, masks[i] gets bit j set iff
 * a[64 * i + j] != b[64 * i + j]. Returns a summary with bit i set iff
 * masks[i] != 0. One call per 4 KB keeps the call overhead off the per-block
 * path; the encoder then visits only the blocks that changed.
 */
typedef uint64_t (*rp_delta_scan_fn)(const uint8_t *a, const uint8_t *b, unsigned nblocks,
				     uint64_t *masks);

enum rp_simd_level {
	RP_SIMD_SCALAR = 0,
	RP_SIMD_SSE42 = 1,
	RP_SIMD_AVX2 = 2,
	RP_SIMD_AVX512 = 3,
	RP_SIMD_NEON = 4,
};

/* Highest level this CPU (and RP_SIMD) allows; computed once. */
enum rp_simd_level rp_simd_level(void);
/* Highest level this CPU allows, ignoring RP_SIMD. */
enum rp_simd_level rp_simd_cpu_level(void);
/* True when the CPU (and OS) run VPCLMULQDQ on ymm: the AVX2 level's CRC
 * kernel is then rp_crc32c_avx2, else rp_crc32c_pclmul. False off x86. */
bool rp_simd_cpu_has_vpclmul256(void);
/* The diff-scan kernel chosen for this CPU (simd/dispatch.c). */
uint64_t rp_delta_scan(const uint8_t *a, const uint8_t *b, unsigned nblocks, uint64_t *masks);
/* rp_delta_encode_ver(..., RP_DELTA_V2) with the diff-scan kernel @scan
 * instead of the dispatched one, so tests run the encoder on every kernel
 * (simd/delta.c). */
size_t rp_delta_encode_v2_scan(void *out, size_t cap, const void *cur, const void *prev,
			       size_t len, rp_delta_scan_fn scan);

/* scalar reference: simd/crc32c_scalar.c, simd/xor_scalar.c */
/* rp_crc32c_scalar, rp_xor_scalar: public references, in ringplane/simd.h */
#include <ringplane/simd.h>
uint64_t rp_delta_scan_scalar(const uint8_t *a, const uint8_t *b, unsigned nblocks,
			       uint64_t *masks);

/*
 * GF(2) arithmetic modulo the CRC-32C polynomial P, in the reflected 32-bit
 * representation (bit j holds the coefficient of x^(31-j), so 0x80000000 is
 * 1). Multiplying a raw CRC register by rp_crc32c_xpow(8 * n) appends n zero
 * bytes. The folding kernels derive their constants from these and tests
 * check them; nothing here runs on a hot path. (simd/crc32c_scalar.c)
 */
uint32_t rp_crc32c_mulmod(uint32_t a, uint32_t b);
uint32_t rp_crc32c_xpow(uint64_t k);

#if defined(__x86_64__) || defined(__i386__)
/* simd/crc32c_sse42.c: crc32 instruction, 3 streams combined with tables */
uint32_t rp_crc32c_sse42(uint32_t crc, const void *buf, size_t len);
/* simd/crc32c_pclmul.c: 4 x 128-bit PCLMULQDQ folding, crc32 for the tail */
uint32_t rp_crc32c_pclmul(uint32_t crc, const void *buf, size_t len);
/* simd/crc32c_avx2.c: crc32 instruction lanes + 4 x 256-bit VPCLMULQDQ folding;
 * needs AVX2 and VPCLMULQDQ (rp_simd_cpu_has_vpclmul256()) */
uint32_t rp_crc32c_avx2(uint32_t crc, const void *buf, size_t len);
/* simd/crc32c_avx512.c: 4 x 512-bit VPCLMULQDQ folding with crc32 lanes, the
 * block shape for this CPU's vendor; _amd and _intel fix the shape (tests) */
uint32_t rp_crc32c_avx512(uint32_t crc, const void *buf, size_t len);
uint32_t rp_crc32c_avx512_amd(uint32_t crc, const void *buf, size_t len);
uint32_t rp_crc32c_avx512_intel(uint32_t crc, const void *buf, size_t len);
/* simd/xor_avx2.c, simd/xor_avx512.c */
void rp_xor_avx2(void *dst, const void *a, const void *b, size_t len);
void rp_xor_avx512(void *dst, const void *a, const void *b, size_t len);
uint64_t rp_delta_scan_avx2(const uint8_t *a, const uint8_t *b, unsigned nblocks,
			       uint64_t *masks);
uint64_t rp_delta_scan_avx512(const uint8_t *a, const uint8_t *b, unsigned nblocks,
			       uint64_t *masks);
#endif

#if defined(__aarch64__)
/* simd/crc32c_arm64.c: CRC32C instructions + PMULL folding */
uint32_t rp_crc32c_neon(uint32_t crc, const void *buf, size_t len);
/* simd/xor_neon.c */
void rp_xor_neon(void *dst, const void *a, const void *b, size_t len);
uint64_t rp_delta_scan_neon(const uint8_t *a, const uint8_t *b, unsigned nblocks,
			       uint64_t *masks);
#endif

#endif /* RP_SIMD_IMPL_H */
