/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for rp_delta_decode (format in include/ringplane/simd.h).
 *
 * Input: two bytes that give len (little-endian, modulo 8193), then the
 * encoding, in either format version (v1 0xD1, v2 0xD2). prev is a fixed
 * pseudo-random function of len. The decoder runs into a malloc'd buffer of
 * exactly len bytes (ASan catches any write past it; the encoding itself is
 * libFuzzer's exact-size copy, so an over-read is caught too) and in place
 * over a copy of prev. Checked, trapping on any violation:
 *   - the result is 0 or -EINVAL, the same for both calls, and the same as
 *     an independent, byte-at-a-time reading of the format below gives
 *     (which also gives the expected output);
 *   - on -EINVAL neither buffer changed;
 *   - on success both outputs agree with the reference, and re-encoding the
 *     output against prev, in v1 and in v2, then decoding that, gives the
 *     output back; rp_delta_encode() (the default) gives v2's bytes.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ringplane/simd.h>

#define MAX_LEN 8192

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			__builtin_trap();                                                          \
	} while (0)

/* Minimal unsigned LEB128 of at most 10 bytes that fits in 64 bits. */
static bool ref_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
	const uint8_t *p = *pp;
	uint64_t v = 0;
	unsigned shift = 0;

	for (unsigned i = 0; i < 10; i++, shift += 7) {
		uint8_t c;

		if (p == end)
			return false;
		c = *p++;
		if (i == 9 && (c & 0x7f) > 1) /* bits 64 and up */
			return false;
		v |= (uint64_t)(c & 0x7f) << shift;
		if (c & 0x80)
			continue;
		if (i > 0 && c == 0) /* a zero last byte: a shorter form exists */
			return false;
		*out = v;
		*pp = p;
		return true;
	}
	return false; /* an 11th byte would be needed */
}

/*
 * Version 2 read straight from the header comment, after its tag: singles
 * {off, x}, runs {off, lit}, then the runs' bytes, which must end the input.
 */
static bool ref_decode_v2(uint8_t *out, size_t len, const uint8_t *p, const uint8_t *end)
{
	uint64_t hdr, ns, nr;
	const uint8_t *lit;

	if (!ref_varint(&p, end, &hdr) || hdr != len || len == 0 || len > 65536)
		return false;
	if (!ref_varint(&p, end, &ns) || !ref_varint(&p, end, &nr))
		return false;
	if (ns > (uint64_t)(end - p) / 3 || nr > (uint64_t)(end - p) / 3 - ns)
		return false;
	lit = p + 3 * ns + 3 * nr;
	for (uint64_t i = 0; i < ns; i++, p += 3) {
		size_t off = p[0] | (size_t)p[1] << 8;

		if (off >= len)
			return false;
		out[off] ^= p[2];
	}
	for (uint64_t j = 0; j < nr; j++, p += 3) {
		size_t off = p[0] | (size_t)p[1] << 8, l = p[2];

		if (l == 0 || off + l > len || l > (size_t)(end - lit))
			return false;
		for (size_t i = 0; i < l; i++)
			out[off + i] ^= lit[i];
		lit += l;
	}
	return lit == end;
}

/*
 * The format read straight from the header comment, writing into @out
 * (which starts as a copy of prev) as it goes; the caller throws @out away
 * when this returns false.
 */
static bool ref_decode(uint8_t *out, size_t len, const uint8_t *p, const uint8_t *end)
{
	uint64_t hdr, pos = 0;

	if (p != end && *p == 0xD2)
		return ref_decode_v2(out, len, p + 1, end);
	if (p == end || *p++ != 0xD1)
		return false;
	if (!ref_varint(&p, end, &hdr) || hdr != len)
		return false;
	while (pos < len) {
		uint64_t skip, lit;

		if (!ref_varint(&p, end, &skip) || !ref_varint(&p, end, &lit))
			return false;
		if (skip > len - pos || lit > len - pos - skip)
			return false;
		if (lit == 0 && pos + skip != len) /* {0,0}, or an empty record not last */
			return false;
		if (lit > (uint64_t)(end - p))
			return false;
		pos += skip;
		for (uint64_t i = 0; i < lit; i++)
			out[pos + i] ^= p[i];
		pos += lit;
		p += lit;
	}
	return p == end;
}

/* prev depends only on len, so a saved crash input replays exactly. */
static void make_prev(uint8_t *prev, size_t len)
{
	uint64_t s = 0x9E3779B97F4A7C15ull ^ len;

	for (size_t i = 0; i < len; i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		/* Every 8th byte zero, so cur == 0 outputs and zero XORs occur too. */
		prev[i] = (i & 7) == 3 ? 0 : (uint8_t)(s >> 24);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *enc;
	size_t len, enc_len, bound, n;
	uint8_t *prev, *cur, *inplace, *ref, *sentinel, *reenc, *again;
	bool ref_ok;
	int rc, rc_inplace;

	if (size < 2)
		return 0;
	len = (size_t)(data[0] | (data[1] << 8)) % (MAX_LEN + 1);
	enc = data + 2;
	enc_len = size - 2;

	/* Exactly len bytes each, so ASan sees one byte past the end. */
	prev = malloc(len);
	cur = malloc(len);
	inplace = malloc(len);
	ref = malloc(len);
	sentinel = malloc(len);
	CHECK(len == 0 || (prev && cur && inplace && ref && sentinel));
	make_prev(prev, len);
	for (size_t i = 0; i < len; i++)
		sentinel[i] = (uint8_t)(0xA5 ^ (i * 13));
	if (len) {
		memcpy(cur, sentinel, len);
		memcpy(inplace, prev, len);
		memcpy(ref, prev, len);
	}

	rc = rp_delta_decode(cur, prev, len, enc, enc_len);
	rc_inplace = rp_delta_decode(inplace, inplace, len, enc, enc_len);
	ref_ok = ref_decode(ref, len, enc, enc + enc_len);

	CHECK(rc == 0 || rc == -EINVAL);
	CHECK(rc == rc_inplace);
	CHECK((rc == 0) == ref_ok);
	if (rc != 0) {
		/* Rejected: nothing written, in either mode. */
		CHECK(len == 0 || memcmp(cur, sentinel, len) == 0);
		CHECK(len == 0 || memcmp(inplace, prev, len) == 0);
		goto out;
	}
	CHECK(len == 0 || memcmp(cur, ref, len) == 0);
	CHECK(len == 0 || memcmp(inplace, ref, len) == 0);

	/* Whatever the encoder makes of the result decodes back to it. */
	bound = rp_delta_bound(len);
	reenc = malloc(bound);
	again = malloc(len);
	CHECK(reenc && (len == 0 || again));
	for (unsigned ver = RP_DELTA_V1; ver <= RP_DELTA_V2; ver++) {
		n = rp_delta_encode_ver(reenc, bound, cur, prev, len, ver);
		CHECK(n > 0 && n <= bound);
		CHECK(rp_delta_decode(again, prev, len, reenc, n) == 0);
		CHECK(len == 0 || memcmp(again, cur, len) == 0);
		/* In place too, and a second in-place decode undoes the first (XOR). */
		if (len)
			memcpy(again, prev, len);
		CHECK(rp_delta_decode(again, again, len, reenc, n) == 0);
		CHECK(len == 0 || memcmp(again, cur, len) == 0);
		CHECK(rp_delta_decode(again, again, len, reenc, n) == 0);
		CHECK(len == 0 || memcmp(again, prev, len) == 0);
	}
	/* The default encoder is v2's: the same bytes (reenc holds them). */
	{
		uint8_t *dflt = malloc(bound);

		CHECK(dflt);
		CHECK(rp_delta_encode(dflt, bound, cur, prev, len) == n);
		CHECK(memcmp(dflt, reenc, n) == 0);
		free(dflt);
	}
	free(reenc);
	free(again);
out:
	free(prev);
	free(cur);
	free(inplace);
	free(ref);
	free(sentinel);
	return 0;
}
