/* SPDX-License-Identifier: MIT */
/*
 * XOR-delta codec (format in include/ringplane/simd.h).
 *
 * Encoder: a SIMD kernel turns up to 4 KB at a time into one 64-bit
 * "differs" mask per 64-byte block plus a summary of non-zero blocks; the
 * encoder then walks only the set bits, so an unchanged block costs one
 * kernel iteration and nothing here. Runs of differing bytes closer than
 * BRIDGE_GAP are merged into one literal (the unchanged bytes between them
 * travel as zero XOR bytes): a new record costs at least two header bytes
 * and a decoder step, a bridged gap one byte per unchanged byte.
 *
 * Decoder: validates the whole encoding first, so a bad encoding never
 * leaves a half-updated page behind; then copies prev once and XORs the
 * literals in place (short ones as one masked 8-byte word).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <ringplane/simd.h>

#include "simd_impl.h"

#define DELTA_TAG 0xD1
#define VARINT_MAX 10
/* Gaps of 1..3 unchanged bytes are bridged (see above). */
#define BRIDGE_GAP 4
/* Blocks per scan call: 64 masks fill the summary word (4 KB of input). */
#define SCAN_BLOCKS 64

static inline size_t varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static inline uint8_t *put_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

/* Size of the single-literal-record encoding, the fallback and the bound. */
size_t rp_delta_bound(size_t len)
{
	if (len == 0)
		return 1 + 1;
	return 1 + varint_len(len) + 1 + varint_len(len) + len;
}

struct enc {
	const uint8_t *cur, *prev;
	uint8_t *o, *end;
	size_t done;	   /* end of the last record written */
	size_t lit_start; /* pending literal [lit_start, lit_end) */
	size_t lit_end;
	bool have_lit;
	bool overflow;
};

static void emit(struct enc *e, size_t skip, size_t lit)
{
	size_t start = e->done + skip;
	uint8_t *o = e->o;

	if ((size_t)(e->end - o) < 2 * VARINT_MAX + lit &&
	    (size_t)(e->end - o) < varint_len(skip) + varint_len(lit) + lit) {
		e->overflow = true;
		return;
	}
	o = put_varint(o, skip);
	o = put_varint(o, lit);
	if (lit < 16) {
		for (size_t i = 0; i < lit; i++)
			o[i] = e->cur[start + i] ^ e->prev[start + i];
	} else {
		rp_xor(o, e->cur + start, e->prev + start, lit);
	}
	e->o = o + lit;
	e->done = start + lit;
}

/* A run of differing bytes [a, b), in increasing order. */
static inline void on_run(struct enc *e, size_t a, size_t b)
{
	if (e->have_lit && a - e->lit_end < BRIDGE_GAP) {
		e->lit_end = b;
		return;
	}
	if (e->have_lit)
		emit(e, e->lit_start - e->done, e->lit_end - e->lit_start);
	e->lit_start = a;
	e->lit_end = b;
	e->have_lit = true;
}

/* Visit the runs of set bits of @m; bit i stands for byte @base + i. */
static inline void on_mask(struct enc *e, size_t base, uint64_t m)
{
	while (m) {
		unsigned s = (unsigned)__builtin_ctzll(m);
		uint64_t rest = ~(m >> s);
		/* rest == 0 only when all 64 bits are set (s == 0). */
		unsigned n = rest ? (unsigned)__builtin_ctzll(rest) : 64 - s;

		on_run(e, base + s, base + s + n);
		if (s + n >= 64)
			break;
		m &= ~0ull << (s + n);
	}
}

size_t rp_delta_encode(void *out, size_t cap, const void *cur, const void *prev, size_t len)
{
	size_t full = rp_delta_bound(len);
	/* Records are cut off as soon as they outgrow the single-literal
	 * fallback: a dense page stops early instead of being encoded twice. */
	struct enc e = {
		.cur = cur,
		.prev = prev,
		.o = out,
		.end = (uint8_t *)out + (cap < full ? cap : full),
	};
	size_t off = 0;
	uint64_t masks[SCAN_BLOCKS];

	if (cap < 1 + varint_len(len))
		return 0;
	*e.o++ = DELTA_TAG;
	e.o = put_varint(e.o, len);

	while (len - off >= 64 && !e.overflow) {
		size_t nb = (len - off) / 64;
		uint64_t summary;

		if (nb > SCAN_BLOCKS)
			nb = SCAN_BLOCKS;
		summary = rp_delta_scan(e.cur + off, e.prev + off, (unsigned)nb, masks);
		while (summary) {
			unsigned blk = (unsigned)__builtin_ctzll(summary);

			summary &= summary - 1;
			on_mask(&e, off + 64 * (size_t)blk, masks[blk]);
		}
		off += 64 * nb;
	}
	if (off < len && !e.overflow) {
		uint64_t m = 0;

		for (size_t i = off; i < len; i++)
			m |= (uint64_t)(e.cur[i] != e.prev[i]) << (i - off);
		on_mask(&e, off, m);
	}
	if (e.have_lit && !e.overflow)
		emit(&e, e.lit_start - e.done, e.lit_end - e.lit_start);
	if (e.done < len && !e.overflow)
		emit(&e, len - e.done, 0);

	if (!e.overflow)
		return (size_t)(e.o - (uint8_t *)out);

	/* Records would not fit or are larger than sending the page whole. */
	if (cap < full)
		return 0;
	e.o = (uint8_t *)out + 1 + varint_len(len);
	e.end = (uint8_t *)out + cap;
	e.done = 0;
	e.overflow = false;
	emit(&e, 0, len);
	return (size_t)(e.o - (uint8_t *)out);
}

/* Minimal LEB128, at most 10 bytes, fitting in 64 bits. */
static inline int get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
	const uint8_t *p = *pp;
	uint64_t x = 0;

	for (unsigned i = 0; i < VARINT_MAX; i++) {
		uint8_t c;

		if (p == end)
			return -EINVAL;
		c = *p++;
		if (i == VARINT_MAX - 1 && c > 1) /* bit 64 and up, or an 11th byte */
			return -EINVAL;
		x |= (uint64_t)(c & 0x7f) << (7 * i);
		if (!(c & 0x80)) {
			if (c == 0 && i > 0) /* padding: not minimal */
				return -EINVAL;
			*v = x;
			*pp = p;
			return 0;
		}
	}
	return -EINVAL;
}

/* One record's header. Single-byte varints (values < 128) are the common case. */
static inline int get_record(const uint8_t **pp, const uint8_t *end, uint64_t *skip, uint64_t *lit)
{
	const uint8_t *p = *pp;

	if (end - p >= 2 && !((p[0] | p[1]) & 0x80)) {
		*skip = p[0];
		*lit = p[1];
		*pp = p + 2;
		return 0;
	}
	if (get_varint(pp, end, skip))
		return -EINVAL;
	return get_varint(pp, end, lit);
}

/* The whole format check; nothing is written. */
static int delta_check(size_t len, const uint8_t *p, const uint8_t *end)
{
	size_t pos = 0;
	uint64_t v;

	if (p == end || *p++ != DELTA_TAG)
		return -EINVAL;
	if (get_varint(&p, end, &v) || v != len)
		return -EINVAL;
	while (pos < len) {
		uint64_t skip, lit;

		if (get_record(&p, end, &skip, &lit))
			return -EINVAL;
		if (skip > len - pos || lit > len - pos - skip)
			return -EINVAL;
		if (lit == 0 && pos + skip != len) /* empty record, or lit == 0 not last */
			return -EINVAL;
		if (lit > (uint64_t)(end - p))
			return -EINVAL;
		pos += skip + lit;
		p += lit;
	}
	return p == end ? 0 : -EINVAL;
}

/* XOR @n (1..8) bytes of @d into @dst; @dst_room and @d_room say how many
 * bytes may be touched, so the whole-word path never leaves either buffer. */
static inline void xor_short(uint8_t *dst, const uint8_t *d, size_t n, size_t dst_room,
			     size_t d_room)
{
	if (dst_room >= 8 && d_room >= 8) {
		uint64_t w, x;
		uint64_t keep = n == 8 ? ~0ull : (1ull << (8 * n)) - 1;

		memcpy(&w, dst, 8);
		memcpy(&x, d, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
		keep = __builtin_bswap64(keep);
#endif
		w ^= x & keep;
		memcpy(dst, &w, 8);
		return;
	}
	for (size_t i = 0; i < n; i++)
		dst[i] ^= d[i];
}

int rp_delta_decode(void *cur_, const void *prev, size_t len, const void *enc, size_t enc_len)
{
	uint8_t *cur = cur_;
	const uint8_t *p = enc, *end = p + enc_len;
	size_t pos = 0;
	uint64_t v;

	if (!enc || (len && (!cur || !prev)))
		return -EINVAL;
	if (delta_check(len, p, end))
		return -EINVAL;

	/* Valid: start from prev and XOR the literals in place. */
	if (cur != prev && len)
		memcpy(cur, prev, len);
	p++;
	get_varint(&p, end, &v);
	while (pos < len) {
		uint64_t skip = 0, lit = 0;

		get_record(&p, end, &skip, &lit); /* cannot fail: checked above */
		pos += skip;
		if (lit <= 8 && lit)
			xor_short(cur + pos, p, lit, len - pos, (size_t)(end - p));
		else if (lit)
			rp_xor(cur + pos, cur + pos, p, lit);
		pos += lit;
		p += lit;
	}
	return 0;
}
