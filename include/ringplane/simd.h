/* SPDX-License-Identifier: MIT */
/*
 * ringplane simd: CRC32C, XOR and the XOR-delta codec.
 *
 * Every function here is thread-safe and allocation-free. The kernels are
 * chosen once, on first use, from the CPU's features (one dispatch point,
 * simd/dispatch.c); RP_SIMD=scalar|sse42|avx2|avx512|neon in the environment
 * forces a lower level (never a higher one than the CPU has).
 *
 * Levels (x86-64):   scalar  slice-by-8 tables
 *                    sse42   crc32 instruction, 3 interleaved streams
 *                    avx2    crc32 lanes + VPCLMULQDQ ymm folding where the CPU
 *                            has VPCLMULQDQ (Zen3+, Alder Lake+), else PCLMULQDQ
 *                            xmm folding; AVX2 XOR and delta scan
 *                    avx512  VPCLMULQDQ folding on zmm; AVX-512 XOR and delta scan
 * Levels (aarch64):  scalar, neon (CRC32C instructions + PMULL folding, NEON XOR)
 */
#ifndef RINGPLANE_SIMD_H
#define RINGPLANE_SIMD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * rp_crc32c - CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected).
 * @crc: the CRC of the preceding bytes, or 0 to start.
 *
 * The initial and final XOR with 0xFFFFFFFF happen inside, so results chain:
 * rp_crc32c(rp_crc32c(0, a, n), b, m) is the CRC of a followed by b.
 * rp_crc32c(0, "123456789", 9) == 0xE3069283. @buf may be unaligned;
 * @len may be 0 (returns @crc unchanged).
 */
uint32_t rp_crc32c(uint32_t crc, const void *buf, size_t len);

/*
 * rp_xor - dst[i] = a[i] ^ b[i] for i in [0, len).
 *
 * @dst may be exactly @a or exactly @b (in-place update); any other overlap
 * between @dst and an input is undefined. No alignment is required.
 */
void rp_xor(void *dst, const void *a, const void *b, size_t len);

/*
 * XOR-delta codec: ships only the bytes of a buffer (typically a 4 KB page)
 * that changed since a previous version both sides hold.
 *
 * Byte format, version 1 (all integers are unsigned LEB128 varints, at most
 * 10 bytes, minimal: no trailing 0x80/0x00 continuation padding):
 *
 *   encoding := 0xD1 varint(len) record*
 *   record   := varint(skip) varint(lit) byte[lit]
 *
 * Records cover [0, len) exactly and in order. A record first leaves @skip
 * bytes unchanged (cur = prev), then applies @lit literal bytes d[] as
 * cur = prev ^ d (d holds cur ^ prev, zero bytes included when the encoder
 * chose to bridge a short unchanged gap). A record with lit == 0 is allowed
 * only as the last one (the trailing unchanged run), a record with
 * skip == 0 && lit == 0 never. For len == 0 there are no records; an
 * unchanged buffer of len > 0 is the single record {skip=len, lit=0}.
 * Because records must reach len exactly, a stream cut at any byte is
 * rejected, as is any byte after the last record.
 *
 * The encoder falls back to one literal record {0, len} whenever that is
 * smaller, so an encoding never exceeds rp_delta_bound(len).
 */

/* rp_delta_bound - the largest encoding rp_delta_encode() produces for @len. */
size_t rp_delta_bound(size_t len);

/*
 * rp_delta_encode - encode @cur against @prev (both @len bytes) into @out.
 *
 * Returns the number of bytes written, or 0 if @cap is too small (pass
 * rp_delta_bound(len) to never fail). @out must not overlap the inputs.
 */
size_t rp_delta_encode(void *out, size_t cap, const void *cur, const void *prev,
		       size_t len);

/*
 * rp_delta_decode - rebuild @cur (@len bytes) from @prev and an encoding.
 *
 * @cur may be exactly @prev (the delta is applied in place); any other
 * overlap is undefined. In place, only the literals' bytes (and at most 7
 * bytes after each, rewritten with their own values) are written. Returns 0 on
 * success; on a malformed, truncated or over-long encoding, or one made for
 * another @len, returns -EINVAL and @cur holds what it held before the
 * call: into another buffer, the encoding is checked before @cur is
 * written; in place, records are applied as they are read and, on an
 * error, the ones already applied are XORed out again (a thread reading
 * @cur during the call may see that). Never reads outside @enc[0, enc_len)
 * nor writes outside @cur[0, len).
 */
int rp_delta_decode(void *cur, const void *prev, size_t len, const void *enc,
		    size_t enc_len);

/*
 * The portable references every kernel is tested against (ISA-L exports its
 * *_base functions the same way), for tests and benchmarks outside simd/:
 * rp_crc32c_scalar computes exactly rp_crc32c (slice-by-8 tables), and
 * rp_xor_scalar exactly rp_xor, whatever the CPU.
 */
uint32_t rp_crc32c_scalar(uint32_t crc, const void *buf, size_t len);
void rp_xor_scalar(void *dst, const void *a, const void *b, size_t len);

/*
 * rp_simd_backend - names the kernels in use, e.g.
 * "crc32c=avx512-vpclmul xor=avx512 delta=avx512". Static storage.
 */
const char *rp_simd_backend(void);

#ifdef __cplusplus
}
#endif

#endif /* RINGPLANE_SIMD_H */
