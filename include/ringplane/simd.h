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
 *
 * Byte format, version 2 (for 0 < len <= 65536; rp_delta_encode() makes it,
 * rp_delta_decode() reads both versions, told apart by the first byte):
 *
 *   encoding := 0xD2 varint(len) varint(ns) varint(nr) single[ns] run[nr] byte[total]
 *   single   := off:u16le x:u8            cur[off] = prev[off] ^ x
 *   run      := off:u16le lit:u8          cur[off, off + lit) = prev ^ d
 *
 * where run j's d is the next lit bytes after the run table (run 0 takes
 * the first ones) and total is the sum of all lit. A single's off < len, a
 * run's lit is 1..255 and off + lit <= len, and the run bytes end the
 * input exactly; anything else is rejected. Entries are independent XORs: the
 * decoder applies them in any order with the same result (the encoder
 * writes each table in increasing order, never overlapping, a changed byte
 * with no changed neighbour as a single, and nothing for unchanged bytes:
 * ns == nr == 0 is an unchanged buffer). Since each entry holds its own
 * place, a decoder needs no previous entry to apply the next one (v1's
 * records chain: each one's place is known only once the header before it
 * is read), which is what makes v2's in-place decode faster. A run longer
 * than 255 bytes is written as entries of 255 bytes, the last two sharing
 * what is left where one byte would be left over.
 * Where v2 would be larger than the single v1 literal record, the encoder
 * writes that v1 record instead.
 *
 * Compatibility: rp_delta_encode() writes v2 (it wrote v1 until v2's
 * encoder caught up with v1's speed). A decoder built before v2 existed
 * refuses v2 with -EINVAL: a sender whose receivers may be that old passes
 * RP_DELTA_V1 to rp_delta_encode_ver(). Every v1 encoding still decodes.
 */

/* rp_delta_bound - the largest encoding rp_delta_encode() or
 * rp_delta_encode_ver() produces for @len: never below @len; SIZE_MAX
 * where the exact bound would exceed it (within 22 bytes of SIZE_MAX on
 * 64 bits: no such buffer exists). */
size_t rp_delta_bound(size_t len);

/*
 * rp_delta_encode - encode @cur against @prev (both @len bytes) into @out.
 *
 * Writes version 2 where it applies (0 < len <= 65536), else version 1, and
 * the single v1 literal record where that is smaller: exactly
 * rp_delta_encode_ver(..., RP_DELTA_V2). Returns the number of bytes
 * written, or 0 if @cap is too small (pass rp_delta_bound(len) to never
 * fail). @out must not overlap the inputs. Stack: about 1 KB up to a 4 KB
 * input, about 9 KB above (v2 keeps a mask per 64-byte block); v1 under 1 KB.
 */
size_t rp_delta_encode(void *out, size_t cap, const void *cur, const void *prev,
		       size_t len);

/* Format versions for rp_delta_encode_ver(). */
#define RP_DELTA_V1 1u
#define RP_DELTA_V2 2u

/*
 * rp_delta_encode_ver - rp_delta_encode() in format @version.
 *
 * RP_DELTA_V2 is exactly rp_delta_encode(): version 2 (its receiver decodes
 * in place faster: see above), or the single v1 literal record where that
 * is smaller, and always v1 for len == 0 or len > 65536. RP_DELTA_V1 writes
 * version 1 only, for receivers built before v2 (see Compatibility above).
 * Both are bounded by rp_delta_bound(len). Returns bytes written, 0 if @cap
 * is too small or @version unknown.
 */
size_t rp_delta_encode_ver(void *out, size_t cap, const void *cur, const void *prev, size_t len,
			   unsigned version);

/*
 * rp_delta_decode - rebuild @cur (@len bytes) from @prev and an encoding
 * of either version.
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
