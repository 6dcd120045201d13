/* SPDX-License-Identifier: MIT */
/*
 * XOR-delta codec (format in include/ringplane/simd.h).
 *
 * Encoder: a SIMD kernel turns up to 4 KB at a time into one 64-bit
 * "differs" mask per 64-byte block plus a summary of non-zero blocks; the
 * encoder then walks only the set bits, so an unchanged block costs one
 * kernel iteration and nothing here. v1 merges runs of differing bytes
 * closer than BRIDGE_GAP into one literal (the unchanged bytes between them
 * travel as zero XOR bytes): a new record costs at least two header bytes
 * and a decoder step, a bridged gap one byte per unchanged byte. v2 keeps
 * the masks of the whole input and finds its singles and runs with a few
 * bit operations per block (see "v2" below).
 *
 * Decoder: one walk over the records, which checks each record before it
 * touches cur. In place (cur == prev) it XORs each literal into cur as it
 * goes, so only the changed bytes' neighbourhood is touched and the input
 * is read once; on an error, walking the records before the failing one
 * again XORs them back out. Into another buffer, a first walk only checks,
 * then prev is copied and a second walk applies.
 *
 * Version 2 has the same structure with two tables, singles and runs,
 * whose entries each carry their own offset: v1's records chain through
 * their headers, v2's entries are independent, which is what its in-place
 * decode gains (docs/simd.md).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <ringplane/simd.h>

#include "simd_impl.h"

#define DELTA_TAG  0xD1
#define DELTA_TAG2 0xD2
/* v2: offsets are 16-bit, literal lengths 8-bit. */
#define V2_LEN_MAX 65536u
#define V2_LIT_MAX 255u
/* v2 keeps one mask per 64-byte block of its whole input, on the stack of
 * a frame sized for it: 8 KB for inputs above 4 KB, 528 bytes up to a 4 KB
 * page (encode2_masks). */
#define V2_BLOCKS (V2_LEN_MAX / 64)
#define V2_SMALL_BLOCKS (4096 / 64)
#define VARINT_MAX 10
/* Gaps of 1..3 unchanged bytes are bridged (see above). v2 bridges nothing,
 * it only joins adjacent bytes: its records do not chain, so fewer of them
 * saves less, and a lone changed byte is a single (the cheapest entry).
 * Measured on Zen3, in-place decode against the naive decoder at 10%
 * density: 1.16x with no bridging, 1.08x bridging 1 byte, 1.05x bridging
 * 1..2, 1.02x bridging 1..3 as v1 does. */
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

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

/* Size of the single-literal-record encoding, the fallback and the bound. */
size_t rp_delta_bound(size_t len)
{
	size_t head;

	if (len == 0)
		return 1 + 1;
	head = 1 + varint_len(len) + 1 + varint_len(len);
	/* saturates: within head bytes of SIZE_MAX the sum would wrap to a
	 * small number, below @len (no buffer that large exists anyway) */
	return len > SIZE_MAX - head ? SIZE_MAX : head + len;
}

/* ---- v1 ---- */

struct enc {
	const uint8_t *cur, *prev;
	uint8_t *o, *end;
	size_t done;	  /* end of the last record written */
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
static inline __attribute__((always_inline)) void on_run(struct enc *e, size_t a, size_t b)
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
static inline __attribute__((always_inline)) void on_mask(struct enc *e, size_t base, uint64_t m)
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

/* Every record of cur against prev, in order, through on_mask() and emit(). */
static void scan_records(struct enc *e, size_t len)
{
	size_t off = 0;
	uint64_t masks[SCAN_BLOCKS];

	while (len - off >= 64 && !e->overflow) {
		size_t nb = (len - off) / 64;
		uint64_t summary;

		if (nb > SCAN_BLOCKS)
			nb = SCAN_BLOCKS;
		summary = rp_delta_scan(e->cur + off, e->prev + off, (unsigned)nb, masks);
		while (summary) {
			unsigned blk = (unsigned)__builtin_ctzll(summary);

			summary &= summary - 1;
			on_mask(e, off + 64 * (size_t)blk, masks[blk]);
		}
		off += 64 * nb;
	}
	if (off < len && !e->overflow) {
		uint64_t m = 0;

		for (size_t i = off; i < len; i++)
			m |= (uint64_t)(e->cur[i] != e->prev[i]) << (i - off);
		on_mask(e, off, m);
	}
	if (e->have_lit && !e->overflow)
		emit(e, e->lit_start - e->done, e->lit_end - e->lit_start);
	if (e->done < len && !e->overflow)
		emit(e, len - e->done, 0);
}

/* The single v1 literal record {0, len}: rp_delta_bound(len) bytes. */
static size_t put_whole(uint8_t *out, const uint8_t *cur, const uint8_t *prev, size_t len)
{
	struct enc e = {.cur = cur, .prev = prev, .o = out, .end = out + rp_delta_bound(len)};

	*e.o++ = DELTA_TAG;
	e.o = put_varint(e.o, len);
	emit(&e, 0, len);
	return (size_t)(e.o - out);
}

static size_t encode1(void *out, size_t cap, const void *cur, const void *prev, size_t len)
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

	if (cap < 1 + varint_len(len))
		return 0;
	*e.o++ = DELTA_TAG;
	e.o = put_varint(e.o, len);
	scan_records(&e, len);
	if (!e.overflow)
		return (size_t)(e.o - (uint8_t *)out);
	/* Records would not fit or are larger than sending the page whole. */
	if (cap < full)
		return 0;
	return put_whole(out, cur, prev, len);
}

/* ---- v2 ----
 *
 * One scan of the input fills mk[] with the "differs" mask of every 64-byte
 * block (mk[0] and mk[nb + 1] stay 0, so each block has both neighbours)
 * and nz[] with a bit per non-zero block. With l and r a block's mask
 * shifted to show each byte's left and right neighbour, m & ~(l | r) are
 * its singles, m & ~l & r the starts and m & l & ~r the ends of its runs.
 * Two walks over the masks, never over the input again, write the output:
 *  1. the singles, at the place they have when both counts fit one-byte
 *     varints; the runs are counted (a popcount per block that has any);
 *  2. with the counts, hence the header, known: the singles move up by
 *     1..4 bytes if a count needs more (a memmove of the table), and each
 *     run is written at its place, entries after the singles, bytes after
 *     the entries.
 * The previous encoder sized the tables in a first pass over every record
 * and wrote them in a second one, keeping up to 512 records on the stack
 * in between; it encoded at half v1's speed (docs/simd.md).
 */

struct v2 {
	const uint8_t *cur, *prev;
	size_t len, nw;			/* nw: words of nz[] and rz[] in use */
	uint64_t *mk;			/* mk[1 + b]: block b's mask */
	uint64_t nz[V2_BLOCKS / 64];	/* bit b: block b has a changed byte */
	uint64_t rz[V2_BLOCKS / 64];	/* bit b: block b has bytes of runs */
	/* walk 2 */
	uint8_t *we, *wl, *wend;	/* next run entry, next run byte, end of room */
	size_t runs_left;
};

static inline unsigned popcount64(uint64_t x)
{
#if defined(__POPCNT__) || defined(__aarch64__)
	return (unsigned)__builtin_popcountll(x);
#else
	/* No popcnt instruction at the baseline ISA, and the builtin would be a
	 * libgcc call: at 1% and 10% density x is 0 or has a bit or two. */
	unsigned n = 0;

	for (; x; x &= x - 1)
		n++;
	return n;
#endif
}

static inline uint64_t left_of(const uint64_t *mk, size_t i)
{
	return mk[i] << 1 | mk[i - 1] >> 63;
}

static inline uint64_t right_of(const uint64_t *mk, size_t i)
{
	return mk[i] >> 1 | mk[i + 1] << 63;
}

/* Entries for a run of @l >= 2 bytes at @s: 255 bytes each, except that the
 * last two share what is left when one byte would be left over (no entry
 * is a single; the sizes are those of 255 + 1 as a run and a single). */
static inline size_t run_entries(size_t l)
{
	return (l + V2_LIT_MAX - 1) / V2_LIT_MAX;
}

/*
 * Walk 2 for one run [s, s + l), l >= 2. Returns false when its bytes do
 * not fit the room left. The run's bytes go as one XOR; an 8-byte store
 * where l <= 8 writes up to 8 - l bytes past them, which the runs after
 * this one (at least 2 bytes each) overwrite.
 */
static inline __attribute__((always_inline)) bool put_run(struct v2 *x, size_t s, size_t l)
{
	uint8_t *wl = x->wl;

	x->runs_left--;
	if (l <= 8 && l + 2 * x->runs_left >= 8 && x->len - s >= 8 && x->wend - wl >= 8) {
		uint64_t v = load64(x->cur + s) ^ load64(x->prev + s);

		memcpy(wl, &v, 8);
	} else if ((size_t)(x->wend - wl) < l) {
		return false;
	} else if (l >= 32) {
		rp_xor(wl, x->cur + s, x->prev + s, l);
	} else {
		size_t i = 0;

		for (; i + 8 <= l; i += 8) {
			uint64_t v = load64(x->cur + s + i) ^ load64(x->prev + s + i);

			memcpy(wl + i, &v, 8);
		}
		for (; i < l; i++)
			wl[i] = x->cur[s + i] ^ x->prev[s + i];
	}
	x->wl = wl + l;
	while (l) {
		size_t p = l <= V2_LIT_MAX ? l : l == V2_LIT_MAX + 1 ? V2_LIT_MAX - 1 : V2_LIT_MAX;
		uint8_t *we = x->we;

		we[0] = (uint8_t)s;
		we[1] = (uint8_t)(s >> 8);
		we[2] = (uint8_t)p;
		x->we = we + 3;
		s += p;
		l -= p;
	}
	return true;
}

/*
 * The runs in offset order: with @write, walk 2 (false if the bytes do not
 * fit); without, *@extra gets how many more entries than runs the runs
 * longer than 255 bytes take.
 */
static inline __attribute__((always_inline)) bool v2_runs(struct v2 *x, bool write, size_t *extra)
{
	size_t open = 0;
	bool is_open = false;

	for (size_t w = 0; w < x->nw; w++) {
		uint64_t blocks = x->rz[w];

		while (blocks) {
			size_t b = 64 * w + (unsigned)__builtin_ctzll(blocks), i = b + 1;
			uint64_t m = x->mk[i], l = left_of(x->mk, i), r = right_of(x->mk, i);
			uint64_t st = m & ~l & r, en = m & l & ~r;

			blocks &= blocks - 1;
			/* A run open from an earlier block ends at this one's
			 * first end, or goes on through it (then st == en == 0). */
			while (st | en) {
				size_t e;

				if (!is_open) {
					open = 64 * b + (unsigned)__builtin_ctzll(st);
					st &= st - 1;
					is_open = true;
				}
				if (!en)
					break;
				e = 64 * b + (unsigned)__builtin_ctzll(en) + 1;
				en &= en - 1;
				is_open = false;
				if (!write)
					*extra += run_entries(e - open) - 1;
				else if (!put_run(x, open, e - open))
					return false;
			}
		}
	}
	return true;
}

/*
 * v2 of @len (1..65536) bytes with the diff-scan kernel @scan; the tests
 * pass each kernel, the library the dispatched one.
 */
static inline __attribute__((always_inline)) size_t
encode2_with(uint8_t *out, size_t cap, const uint8_t *cur, const uint8_t *prev, size_t len,
	     rp_delta_scan_fn scan, uint64_t *mk)
{
	size_t full = rp_delta_bound(len), limit = cap < full ? cap : full;
	size_t hv = 1 + varint_len(len), nfull = len / 64, nb = (len + 63) / 64;
	size_t ns, nruns = 0, nr, h, extra = 0;
	bool longrun = false;
	uint8_t *ws, *s0;
	struct v2 x;

	if (limit < hv + 2)
		goto whole;
	x.mk = mk; /* (len + 63) / 64 + 2 masks */
	x.cur = cur;
	x.prev = prev;
	x.len = len;
	x.nw = (nb + 63) / 64;
	x.mk[0] = 0;
	for (size_t b = 0; b < nfull; b += SCAN_BLOCKS) {
		size_t n = nfull - b < SCAN_BLOCKS ? nfull - b : SCAN_BLOCKS;

		x.nz[b / 64] = scan(cur + 64 * b, prev + 64 * b, (unsigned)n, x.mk + 1 + b);
	}
	if (nb > nfull) {
		size_t off = 64 * nfull;
		uint64_t m = 0;

		for (size_t i = off; i < len; i++)
			m |= (uint64_t)(cur[i] != prev[i]) << (i - off);
		x.mk[1 + nfull] = m;
		if (nfull % 64 == 0)
			x.nz[nfull / 64] = 0;
		x.nz[nfull / 64] |= (uint64_t)(m != 0) << (nfull % 64);
	}
	x.mk[nb + 1] = 0;

	/* Walk 1: singles after a header with one-byte counts; runs counted. */
	s0 = ws = out + hv + 2;
	x.wend = out + limit;
	for (size_t w = 0; w < x.nw; w++) {
		uint64_t blocks = x.nz[w], runs = 0;

		while (blocks) {
			unsigned bit = (unsigned)__builtin_ctzll(blocks);
			size_t b = 64 * w + bit, i = b + 1;
			uint64_t m = x.mk[i], l = left_of(x.mk, i), r = right_of(x.mk, i);
			uint64_t sg = m & ~(l | r);

			blocks &= blocks - 1;
			if (m != sg) {
				runs |= 1ull << bit;
				nruns += popcount64(m & ~l & r);
				longrun |= m == ~0ull;
			}
			while (sg) {
				size_t o = 64 * b + (unsigned)__builtin_ctzll(sg);

				sg &= sg - 1;
				if (x.wend - ws < 3)
					goto whole;
				ws[0] = (uint8_t)o;
				ws[1] = (uint8_t)(o >> 8);
				ws[2] = cur[o] ^ prev[o];
				ws += 3;
			}
		}
		x.rz[w] = runs;
	}
	ns = (size_t)(ws - s0) / 3;
	/* A run of more than 255 bytes spans an all-ones block. */
	if (longrun)
		v2_runs(&x, false, &extra);
	nr = nruns + extra;
	h = hv + varint_len(ns) + varint_len(nr);
	/* Tables, and at least 2 bytes per run. */
	if (h + 3 * (ns + nr) + 2 * nruns > limit)
		goto whole;
	if (h != hv + 2)
		memmove(out + h, s0, 3 * ns);
	out[0] = DELTA_TAG2;
	put_varint(put_varint(put_varint(out + 1, len), ns), nr);
	if (!nruns)
		return h + 3 * ns;

	/* Walk 2: runs at their places. */
	x.we = out + h + 3 * ns;
	x.wl = x.we + 3 * nr;
	x.runs_left = nruns;
	if (!v2_runs(&x, true, NULL))
		goto whole;
	return (size_t)(x.wl - out);
whole:
	/* Larger than the single v1 literal record, or no room. */
	return cap < full ? 0 : put_whole(out, cur, prev, len);
}

/* Inputs above a 4 KB page get the whole mask array in a frame of their
 * own, so that encoding a page needs about 1 KB of stack, not 9. */
static __attribute__((noinline)) size_t encode2_big(void *out, size_t cap, const void *cur,
						    const void *prev, size_t len, rp_delta_scan_fn scan)
{
	uint64_t mk[V2_BLOCKS + 2];

	return encode2_with(out, cap, cur, prev, len, scan, mk);
}

static size_t encode2_masks(void *out, size_t cap, const void *cur, const void *prev, size_t len,
			    rp_delta_scan_fn scan)
{
	uint64_t mk[V2_SMALL_BLOCKS + 2];

	if (len == 0 || len > V2_LEN_MAX)
		return encode1(out, cap, cur, prev, len);
	if (len > 64 * V2_SMALL_BLOCKS)
		return encode2_big(out, cap, cur, prev, len, scan);
	return encode2_with(out, cap, cur, prev, len, scan, mk);
}

size_t rp_delta_encode_v2_scan(void *out, size_t cap, const void *cur, const void *prev,
			       size_t len, rp_delta_scan_fn scan)
{
	return encode2_masks(out, cap, cur, prev, len, scan);
}

static size_t encode2(void *out, size_t cap, const void *cur, const void *prev, size_t len)
{
	return encode2_masks(out, cap, cur, prev, len, rp_delta_scan);
}

/* v2 by default since it encodes faster than v1 (docs/simd.md). */
size_t rp_delta_encode(void *out, size_t cap, const void *cur, const void *prev, size_t len)
{
	return encode2(out, cap, cur, prev, len);
}

size_t rp_delta_encode_ver(void *out, size_t cap, const void *cur, const void *prev, size_t len,
			   unsigned version)
{
	if (version == RP_DELTA_V1)
		return encode1(out, cap, cur, prev, len);
	if (version != RP_DELTA_V2)
		return 0;
	return encode2(out, cap, cur, prev, len);
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

/*
 * XOR the @lit (1..8) bytes at @d into @c as one 4- or 8-byte read-modify-
 * write (the bytes past @lit are written back unchanged); 8 bytes must be
 * readable at @d and writable at @c. Measured on Zen3 against storing
 * exactly @lit bytes without branches (1/2/4/8-byte stores aimed at a
 * scratch word when not needed): 1.8x faster at 1% and 10% density. The
 * 4-byte form for short literals (8% faster at 10%) makes it rarer that the
 * next record's load overlaps this store, which costs a store-forwarding
 * stall when it does.
 */
static inline void xor_lit(uint8_t *c, const uint8_t *d, size_t lit)
{
	if (lit <= 4) {
		uint32_t x, v, keep = ~0u >> (32 - 8 * lit);

#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
		keep = __builtin_bswap32(keep);
#endif
		memcpy(&x, d, 4);
		memcpy(&v, c, 4);
		v ^= x & keep;
		memcpy(c, &v, 4);
	} else {
		uint64_t keep = ~0ull >> (64 - 8 * lit), v;

#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
		keep = __builtin_bswap64(keep);
#endif
		v = load64(c) ^ (load64(d) & keep);
		memcpy(c, &v, 8);
	}
}

/*
 * Walk the records at [p, end) for a buffer of @len bytes; with @cur, XOR
 * each literal into cur as soon as its record is checked (nothing of a
 * failing record is written). Returns 0 when the records reach len exactly
 * and end the input, else -EINVAL with *@stop at the start of the first
 * record that failed (or at the first byte after the last record), so that
 * walking [p, *stop) again applies exactly what this call applied.
 *
 * The fast path takes records with a one- or two-byte skip and a literal of
 * 1..8 bytes, away from both ends of the input and of cur. Records form a
 * chain (where one ends is where the next begins), so the decoder's floor
 * is one dependent byte load per record: the one-byte-skip case keeps the
 * chain at that (p += 2 + p[1], measured 4.8 cycles/record on Zen3); a
 * branch-free choice between one- and two-byte skips lengthened it to 8.5
 * and lost more than the two-byte case's mispredictions (a two-byte skip is
 * one record in four at 1% density, rare at 10%).
 */
static inline __attribute__((always_inline)) int walk(uint8_t *cur, size_t len, const uint8_t *p,
						      const uint8_t *end, const uint8_t **stop)
{
	size_t pos = 0;

	while (pos < len) {
		const uint8_t *rec = p;
		uint64_t skip, lit;

		if (end - p >= 16) {
			size_t b0 = p[0], b1 = p[1];

			if (b0 < 0x80) {
				/* One-byte skip: the next record is at p + 2 + b1, the
				 * shortest record-to-record chain (one byte load). */
				if (__builtin_expect(b1 - 1 < 8 && len - pos >= b0 + 8, 1)) {
					if (cur)
						xor_lit(cur + pos + b0, p + 2, b1);
					pos += b0 + b1;
					p += 2 + b1;
					continue;
				}
			} else {
				size_t b2 = p[2], sk = (b0 & 0x7f) | (b1 << 7);

				/* Two-byte skip, its second byte in 1..0x7f (minimal,
				 * and no third byte). */
				bool ok = b2 - 1 < 8 && b1 - 1 < 0x7f && len - pos >= sk + 8;

				if (__builtin_expect(ok, 1)) {
					if (cur)
						xor_lit(cur + pos + sk, p + 3, b2);
					pos += sk + b2;
					p += 3 + b2;
					continue;
				}
			}
		}
		if (get_record(&p, end, &skip, &lit) || skip > len - pos ||
		    lit > len - pos - skip || (lit == 0 && pos + skip != len) ||
		    lit > (uint64_t)(end - p)) {
			*stop = rec;
			return -EINVAL;
		}
		pos += skip;
		if (cur && lit) {
			if (lit <= 8)
				xor_short(cur + pos, p, lit, len - pos, (size_t)(end - p));
			else
				rp_xor(cur + pos, cur + pos, p, lit);
		}
		pos += lit;
		p += lit;
	}
	*stop = p;
	return p == end ? 0 : -EINVAL;
}

static inline size_t ld16le(const uint8_t *p)
{
	return p[0] | (size_t)p[1] << 8;
}

/*
 * v2 singles: XOR s[3i + 2] into cur[off_i] for i in [0, n), each after
 * checking off_i < len (with @cur NULL, only check). Returns how many
 * passed and were applied, n when all did. The naive offset-and-byte
 * decoder's loop, four entries per check: nothing waits for a previous
 * entry.
 */
static inline __attribute__((always_inline)) size_t singles2(uint8_t *cur, size_t len,
							     const uint8_t *s, size_t n)
{
	size_t i = 0;

	for (; i + 4 <= n; i += 4) {
		const uint8_t *q = s + 3 * i;
		size_t o0 = ld16le(q), o1 = ld16le(q + 3), o2 = ld16le(q + 6), o3 = ld16le(q + 9);

		if ((o0 >= len) | (o1 >= len) | (o2 >= len) | (o3 >= len))
			break; /* the loop below finds which one */
		if (cur) {
			cur[o0] ^= q[2];
			cur[o1] ^= q[5];
			cur[o2] ^= q[8];
			cur[o3] ^= q[11];
		}
	}
	for (; i < n; i++) {
		size_t o = ld16le(s + 3 * i);

		if (o >= len)
			return i;
		if (cur)
			cur[o] ^= s[3 * i + 2];
	}
	return n;
}

/* XOR the @lit (1..8) bytes at @d into @c as one 8-byte read-modify-write;
 * 8 bytes must be readable at @d and writable at @c. */
static inline void xor_lit8(uint8_t *c, const uint8_t *d, size_t lit)
{
	uint64_t keep = ~0ull >> (64 - 8 * lit), v;

#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	keep = __builtin_bswap64(keep);
#endif
	v = load64(c) ^ (load64(d) & keep);
	memcpy(c, &v, 8);
}

/*
 * v2 runs: entry j XORs the next l_j bytes of @lit[0, @lit_len) into
 * cur[off_j, off_j + l_j), after checking it (with @cur NULL, only check).
 * Returns how many passed and were applied; *@used is the literal bytes
 * they took. An entry's place is its own offset and the literal cursor a
 * sum of lengths: no load waits for a previous entry, unlike v1's chain of
 * records. Runs sit apart from the singles, so a run's 8-byte write seldom
 * meets the next one's read (a partial overlap stalls store forwarding).
 */
static inline __attribute__((always_inline)) size_t runs2(uint8_t *cur, size_t len,
							  const uint8_t *r, size_t n,
							  const uint8_t *lit, size_t lit_len,
							  size_t *used)
{
	size_t d = 0, j;

	for (j = 0; j < n; j++) {
		size_t off = ld16le(r + 3 * j), l = r[3 * j + 2];

		if (l == 0 || off + l > len || l > lit_len - d)
			break;
		if (cur) {
			if (__builtin_expect(l <= 8 && len - off >= 8 && lit_len - d >= 8, 1))
				xor_lit8(cur + off, lit + d, l);
			else if (l <= 8)
				xor_short(cur + off, lit + d, l, len - off, lit_len - d);
			else
				rp_xor(cur + off, cur + off, lit + d, l);
		}
		d += l;
	}
	*used = d;
	return j;
}

/* v2 after its tag: varint(len) varint(ns) varint(nr) singles runs bytes. */
static int decode2(uint8_t *cur, const uint8_t *prev, size_t len, const uint8_t *p,
		   const uint8_t *end)
{
	const uint8_t *s, *r, *lit;
	size_t k, j, used, lit_len;
	uint64_t v, ns, nr;

	if (get_varint(&p, end, &v) || v != len || len == 0 || len > V2_LEN_MAX ||
	    get_varint(&p, end, &ns) ||
	    get_varint(&p, end, &nr) || ns > (uint64_t)(end - p) / 3 ||
	    nr > (uint64_t)(end - p) / 3 - ns)
		return -EINVAL;
	s = p;
	r = s + 3 * ns;
	lit = r + 3 * nr;
	lit_len = (size_t)(end - lit);
	if (cur == prev) {
		/* Apply while reading; on an error XOR out what was applied. */
		k = singles2(cur, len, s, ns);
		if (k != ns) {
			singles2(cur, len, s, k);
			return -EINVAL;
		}
		j = runs2(cur, len, r, nr, lit, lit_len, &used);
		if (j != nr || used != lit_len) {
			runs2(cur, len, r, j, lit, lit_len, &used);
			singles2(cur, len, s, ns);
			return -EINVAL;
		}
		return 0;
	}
	if (singles2(NULL, len, s, ns) != ns ||
	    runs2(NULL, len, r, nr, lit, lit_len, &used) != nr || used != lit_len)
		return -EINVAL;
	if (len)
		memcpy(cur, prev, len);
	singles2(cur, len, s, ns);
	runs2(cur, len, r, nr, lit, lit_len, &used);
	return 0;
}

int rp_delta_decode(void *cur_, const void *prev, size_t len, const void *enc, size_t enc_len)
{
	uint8_t *cur = cur_;
	const uint8_t *p = enc, *end = p + enc_len, *stop;
	uint64_t v;

	if (!enc || (len && (!cur || !prev)))
		return -EINVAL;
	if (p != end && *p == DELTA_TAG2)
		return decode2(cur, prev, len, p + 1, end);
	if (p == end || *p++ != DELTA_TAG || get_varint(&p, end, &v) || v != len)
		return -EINVAL;

	if (cur == prev) {
		/* In place: apply while reading. On an error, walking the
		 * records before the failing one again XORs their literals
		 * back out (XOR is its own inverse): cur is as it was. */
		if (walk(cur, len, p, end, &stop)) {
			walk(cur, len, p, stop, &stop);
			return -EINVAL;
		}
		return 0;
	}
	/* Into another buffer: check everything before cur is written. */
	if (walk(NULL, len, p, end, &stop))
		return -EINVAL;
	if (len)
		memcpy(cur, prev, len);
	walk(cur, len, p, end, &stop); /* cannot fail: checked above */
	return 0;
}
