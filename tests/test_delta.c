/* SPDX-License-Identifier: MIT */
/*
 * XOR-delta codec (format in include/ringplane/simd.h): round trips over
 * change densities 0..100 % with scattered and clustered changes, on 4 KB
 * pages, odd lengths and hand-made patterns around the block and bridging
 * boundaries, decoded into a separate buffer and in place; exact encodings
 * of unchanged and fully changed buffers; an encoder that returns 0 and
 * writes nothing past @cap when @cap is short; a decoder that rejects every
 * malformed, truncated or extended encoding with -EINVAL and leaves @cur
 * untouched; and every diff-scan kernel against a byte-by-byte mask.
 *
 * Decoder inputs and outputs sit against PROT_NONE pages, so a read past the
 * encoding or a write past @cur faults even where ASan would not look.
 * RP_TEST_REDUCED=1 (qemu, sanitizers) runs fewer random trials.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <ringplane/simd.h>

#include "simd_impl.h"
#include "simd_test.h"

#define TAG  0xD1
#define TAG2 0xD2
#define PAGE 4096
/* Canary bytes after an encoder's @cap. */
#define SLACK  64
#define CANARY 0xC3

/* ---- helpers ------------------------------------------------------------ */

static size_t varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

/* Format v1, which rp_delta_encode() wrote before v2 became its default. */
static size_t encode_v1(void *out, size_t cap, const void *cur, const void *prev, size_t len)
{
	return rp_delta_encode_ver(out, cap, cur, prev, len, RP_DELTA_V1);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	assert_non_null(p);
	return p;
}

/* A pattern that no decoder would produce by chance. */
static void fill_sentinel(uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(0x5A ^ (i * 7));
}

static void expect_same(const char *what, const uint8_t *got, const uint8_t *want, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (got[i] != want[i])
			fail_msg("%s: len %zu: byte %zu is 0x%02x, expected 0x%02x", what, len, i,
				 got[i], want[i]);
	}
}

/* Changes sprinkled byte by byte, or clustered in runs of 1..16. */
enum pattern { SCATTERED, RUNS };
static const char *const pattern_names[] = {"scattered", "runs"};

/* Densities in 1/10000: 0, 0.1, 1, 5, 10, 25, 50, 75 and 100 %. */
static const unsigned densities[] = {0, 10, 100, 500, 1000, 2500, 5000, 7500, 10000};

/* cur = prev with about @per10k / 10000 of its bytes changed. */
static void make_cur(uint8_t *cur, const uint8_t *prev, size_t len, unsigned per10k,
		     enum pattern pat, struct rng *r)
{
	size_t i = 0;
	uint64_t mean_gap;

	memcpy(cur, prev, len);
	if (per10k == 0)
		return;
	if (pat == SCATTERED || per10k >= 10000) {
		for (i = 0; i < len; i++) {
			if (per10k >= 10000 || rng_below(r, 10000) < per10k)
				cur[i] ^= (uint8_t)(1 + rng_below(r, 255));
		}
		return;
	}
	/* Runs average 8.5 bytes; gaps are sized to give the density. */
	mean_gap = 8 * (10000 - (uint64_t)per10k) / per10k;
	while (i < len) {
		size_t run = 1 + (size_t)rng_below(r, 16);

		i += (size_t)rng_below(r, 2 * mean_gap + 1);
		for (; run && i < len; run--, i++)
			cur[i] ^= (uint8_t)(1 + rng_below(r, 255));
	}
}

/* The format round_trip() encodes in (the v2 tests switch it). */
static unsigned rt_version = RP_DELTA_V1;

/*
 * Encode cur against prev (in format rt_version), then decode it (from a
 * copy that ends at a PROT_NONE page) into a separate buffer that ends at
 * one too, and in place over a copy of prev. Returns the encoded size.
 */
static size_t round_trip(const uint8_t *cur, const uint8_t *prev, size_t len, const char *what)
{
	size_t bound = rp_delta_bound(len);
	uint8_t *enc = xmalloc(bound + SLACK);
	struct guarded gc = guarded_alloc(len), ge;
	uint8_t *out, *e;
	size_t n;
	int rc;

	memset(enc, CANARY, bound + SLACK);
	n = rp_delta_encode_ver(enc, bound, cur, prev, len, rt_version);
	if (n == 0 || n > bound)
		fail_msg("%s: len %zu: encode returned %zu with cap = bound = %zu", what, len, n,
			 bound);
	/* v2 where it applies, unless the single v1 literal record is smaller. */
	if (rt_version == RP_DELTA_V2 && len > 0 && len <= 65536 && !(enc[0] == TAG2) &&
	    !(enc[0] == TAG && n == bound))
		fail_msg("%s: len %zu: v2 asked, got tag 0x%02x and %zu of %zu bytes", what, len,
			 enc[0], n, bound);
	if ((rt_version == RP_DELTA_V1 || len == 0 || len > 65536) && enc[0] != TAG)
		fail_msg("%s: len %zu: v1 expected, got tag 0x%02x", what, len, enc[0]);
	/* The default encoder writes v2's bytes. */
	if (rt_version == RP_DELTA_V2) {
		uint8_t *dflt = xmalloc(bound);

		if (rp_delta_encode(dflt, bound, cur, prev, len) != n || memcmp(dflt, enc, n))
			fail_msg("%s: len %zu: rp_delta_encode() differs from v2", what, len);
		free(dflt);
	}
	for (size_t i = bound; i < bound + SLACK; i++) {
		if (enc[i] != CANARY)
			fail_msg("%s: len %zu: encode wrote past cap (byte %zu)", what, len, i);
	}
	ge = guarded_alloc(n);
	assert_non_null(gc.map);
	assert_non_null(ge.map);
	out = gc.hi - len;
	e = ge.hi - n;
	memcpy(e, enc, n);

	fill_sentinel(out, len);
	rc = rp_delta_decode(out, prev, len, e, n);
	if (rc != 0)
		fail_msg("%s: len %zu: decoding its own %zu-byte encoding returned %d", what, len,
			 n, rc);
	expect_same(what, out, cur, len);

	memcpy(out, prev, len);
	rc = rp_delta_decode(out, out, len, e, n);
	if (rc != 0)
		fail_msg("%s: len %zu: in-place decode returned %d", what, len, rc);
	expect_same(what, out, cur, len);

	guarded_free(&gc);
	guarded_free(&ge);
	free(enc);
	return n;
}

/* ---- round trips -------------------------------------------------------- */

static void test_round_trip_densities_on_4096_byte_pages(void **state)
{
	unsigned seeds = test_reduced() ? 2 : 12;
	uint8_t prev[PAGE], cur[PAGE];
	char what[96];

	(void)state;
	for (size_t d = 0; d < ARRAY_SIZE(densities); d++) {
		for (unsigned pat = SCATTERED; pat <= RUNS; pat++) {
			size_t total = 0;

			for (unsigned s = 0; s < seeds; s++) {
				struct rng r = rng_seed(100 + 1000 * d + 10 * pat + s);

				rng_fill(&r, prev, PAGE);
				make_cur(cur, prev, PAGE, densities[d], (enum pattern)pat, &r);
				snprintf(what, sizeof(what), "4096 B, %u.%02u %% %s, seed %u",
					 densities[d] / 100, densities[d] % 100, pattern_names[pat],
					 s);
				total += round_trip(cur, prev, PAGE, what);
			}
			printf("[ INFO     ] 4096 B page, %6.2f %% changed, %-9s: "
			       "%5zu bytes encoded (mean of %u)\n",
			       densities[d] / 100.0, pattern_names[pat], total / seeds, seeds);
		}
	}
}

static void test_round_trip_odd_lengths(void **state)
{
	static const size_t lens[] = {0, 1, 63, 64, 65, 127, 4095, 4097, 65537};
	unsigned seeds = test_reduced() ? 1 : 3;
	uint8_t *prev = xmalloc(65537), *cur = xmalloc(65537);
	char what[96];

	(void)state;
	for (size_t l = 0; l < ARRAY_SIZE(lens); l++) {
		for (size_t d = 0; d < ARRAY_SIZE(densities); d++) {
			for (unsigned pat = SCATTERED; pat <= RUNS; pat++) {
				for (unsigned s = 0; s < seeds; s++) {
					struct rng r =
						rng_seed(7 + lens[l] * 131 + d * 17 + pat + s);

					rng_fill(&r, prev, lens[l]);
					make_cur(cur, prev, lens[l], densities[d],
						 (enum pattern)pat, &r);
					snprintf(what, sizeof(what), "%u.%02u %% %s, seed %u",
						 densities[d] / 100, densities[d] % 100,
						 pattern_names[pat], s);
					round_trip(cur, prev, lens[l], what);
				}
			}
		}
	}
	free(prev);
	free(cur);
}

/* Hand-made change maps around 64-byte blocks, 4 KB scan chunks, and gaps
 * just under and over what the encoder bridges. */
enum shape {
	FIRST_BYTE,
	LAST_BYTE,
	FIRST_AND_LAST,
	EVERY_KTH,   /* k = 1..9: gaps of 0..8 unchanged bytes */
	BLOCK_EDGES, /* bytes 63 and 64 of every 128 */
	CHUNK_EDGES, /* 6 bytes either side of every 4096 boundary */
	ALL_BUT_FIRST,
	ALL_BUT_LAST,
	ALL_BUT_MIDDLE,
	ONE_FULL_BLOCK, /* bytes 64..127 */
	SHAPES
};

static bool changed(enum shape sh, size_t i, size_t len, unsigned k)
{
	switch (sh) {
	case FIRST_BYTE:
		return i == 0;
	case LAST_BYTE:
		return i == len - 1;
	case FIRST_AND_LAST:
		return i == 0 || i == len - 1;
	case EVERY_KTH:
		return i % k == 0;
	case BLOCK_EDGES:
		return i % 128 == 63 || i % 128 == 64;
	case CHUNK_EDGES:
		return (i + 6) % 4096 < 12 && i >= 4090;
	case ALL_BUT_FIRST:
		return i != 0;
	case ALL_BUT_LAST:
		return i != len - 1;
	case ALL_BUT_MIDDLE:
		return i != len / 2;
	case ONE_FULL_BLOCK:
		return i >= 64 && i < 128;
	case SHAPES:
		break;
	}
	return false;
}

static void test_round_trip_block_and_bridge_edges(void **state)
{
	static const size_t lens[] = {1, 2, 5, 64, 65, 127, 128, 129, 4096, 4097, 8193};
	uint8_t *prev = xmalloc(8193), *cur = xmalloc(8193);
	struct rng r = rng_seed(20);
	char what[64];

	(void)state;
	for (size_t l = 0; l < ARRAY_SIZE(lens); l++) {
		size_t len = lens[l];

		for (unsigned sh = 0; sh < SHAPES; sh++) {
			for (unsigned k = 1; k <= (sh == EVERY_KTH ? 9u : 1u); k++) {
				rng_fill(&r, prev, len);
				memcpy(cur, prev, len);
				for (size_t i = 0; i < len; i++) {
					if (changed((enum shape)sh, i, len, k))
						cur[i] ^= (uint8_t)(1 + rng_below(&r, 255));
				}
				snprintf(what, sizeof(what), "shape %u k %u", sh, k);
				round_trip(cur, prev, len, what);
			}
		}
	}
	free(prev);
	free(cur);
}

/* An unchanged buffer is the header and the single record {len, 0}; for
 * len 0 the header alone. */
static void test_unchanged_buffer_is_header_plus_one_record(void **state)
{
	static const size_t lens[] = {0, 1, 63, 64, 127, 128, 4096, 16383, 16384, 65537};
	uint8_t *prev = xmalloc(65537);
	uint8_t want[32], got[32];
	struct rng r = rng_seed(21);

	(void)state;
	for (size_t l = 0; l < ARRAY_SIZE(lens); l++) {
		size_t len = lens[l], n;
		uint8_t *w = want;

		rng_fill(&r, prev, len);
		*w++ = TAG;
		w = put_varint(w, len);
		if (len) {
			w = put_varint(w, len); /* skip */
			*w++ = 0;		/* lit */
		}
		n = encode_v1(got, sizeof(got), prev, prev, len);
		assert_int_equal(n, (size_t)(w - want));
		assert_memory_equal(got, want, n);
		assert_int_equal(n, round_trip(prev, prev, len, "unchanged"));
	}
	free(prev);
}

/*
 * rp_delta_bound at the top of size_t: exact (1 + varint + 1 + varint +
 * len) up to SIZE_MAX, then SIZE_MAX, never below len and never
 * decreasing. It wrapped before: rp_delta_bound(SIZE_MAX) was 21.
 */
static void test_bound_saturates_at_size_max(void **state)
{
	size_t v = 1; /* varint bytes of a length near SIZE_MAX */
	size_t head, prev = 0;

	(void)state;
	for (size_t x = SIZE_MAX; x >= 0x80; x >>= 7)
		v++;
	head = 2 + 2 * v;
	assert_int_equal(rp_delta_bound(SIZE_MAX), SIZE_MAX);
	assert_int_equal(rp_delta_bound(SIZE_MAX - head), SIZE_MAX);
	assert_int_equal(rp_delta_bound(SIZE_MAX - head - 1), SIZE_MAX - 1);
	/* the top bit alone takes as many varint bytes as SIZE_MAX */
	assert_int_equal(rp_delta_bound(SIZE_MAX / 2 + 1), SIZE_MAX / 2 + 1 + head);
	for (size_t k = 3 * head; k != (size_t)-1; k--) {
		size_t len = SIZE_MAX - k, b = rp_delta_bound(len);

		assert_true(b >= len);
		assert_true(b >= prev);
		prev = b;
	}
}

/* Every byte changed: one literal record {0, len}, exactly rp_delta_bound(len). */
static void test_all_changed_is_one_literal_record(void **state)
{
	static const size_t lens[] = {1, 63, 64, 65, 4096, 65537};
	uint8_t *prev = xmalloc(65537), *cur = xmalloc(65537);
	uint8_t *enc = xmalloc(rp_delta_bound(65537));
	struct rng r = rng_seed(22);

	(void)state;
	for (size_t l = 0; l < ARRAY_SIZE(lens); l++) {
		size_t len = lens[l], bound = rp_delta_bound(len), n, h;

		rng_fill(&r, prev, len);
		make_cur(cur, prev, len, 10000, SCATTERED, &r);
		n = encode_v1(enc, bound, cur, prev, len);
		assert_int_equal(n, bound);
		h = 1 + varint_len(len) + 1 + varint_len(len);
		assert_int_equal(n, h + len);
		assert_int_equal(enc[0], TAG);
		assert_int_equal(enc[1 + varint_len(len)], 0); /* skip 0 */
		for (size_t i = 0; i < len; i++)
			assert_int_equal(enc[h + i], (uint8_t)(cur[i] ^ prev[i]));
	}
	free(prev);
	free(cur);
	free(enc);
}

/*
 * A random valid encoding of @len bytes, such as another encoder could
 * make: many short records (skips of 0..5, literals of 1..9 bytes, some
 * literal bytes zero), adjacent literal records, the trailing {skip, 0}
 * only when the dice leave one. @want gets prev with the literals applied.
 */
static size_t random_valid_encoding(uint8_t *enc, uint8_t *want, const uint8_t *prev, size_t len,
				    struct rng *r)
{
	uint8_t *p = enc;
	size_t pos = 0;

	memcpy(want, prev, len);
	*p++ = TAG;
	p = put_varint(p, len);
	while (pos < len) {
		size_t left = len - pos;
		size_t skip = (size_t)rng_below(r, 6), lit;

		if (skip > left)
			skip = left;
		lit = 1 + (size_t)rng_below(r, 9);
		if (lit > left - skip)
			lit = left - skip; /* 0 only when skip == left > 0: the last record */
		p = put_varint(p, skip);
		p = put_varint(p, lit);
		for (size_t i = 0; i < lit; i++) {
			uint8_t d = rng_below(r, 4) == 0 ? 0 : (uint8_t)rng_next(r);

			*p++ = d;
			want[pos + skip + i] ^= d;
		}
		pos += skip + lit;
	}
	return (size_t)(p - enc);
}

/*
 * The decoder takes any valid encoding, not only the ones this encoder
 * makes. Short records packed near the end of @cur, with more encoding
 * bytes after them, are where a whole-word write could pass the end.
 */
static void test_decode_accepts_valid_encodings_from_any_encoder(void **state)
{
	unsigned per_len = test_reduced() ? 10 : 60;
	size_t max = 1000;
	uint8_t *prev = xmalloc(max), *want = xmalloc(max), *enc = xmalloc(3 * max + 16);
	struct guarded gc = guarded_alloc(max), ge = guarded_alloc(3 * max + 16);
	struct rng r = rng_seed(25);

	(void)state;
	assert_non_null(gc.map);
	assert_non_null(ge.map);
	for (size_t i = 0; i < 100 + 40; i++) {
		/* Every length up to 100, then 40 random ones up to max. */
		size_t len = i < 100 ? i + 1 : 101 + (size_t)rng_below(&r, max - 100);

		for (unsigned t = 0; t < per_len; t++) {
			size_t n;
			uint8_t *cur = gc.hi - len, *e;
			int rc;

			rng_fill(&r, prev, len);
			n = random_valid_encoding(enc, want, prev, len, &r);
			assert_true(n <= 3 * max + 16);
			e = ge.hi - n;
			memcpy(e, enc, n);

			fill_sentinel(cur, len);
			rc = rp_delta_decode(cur, prev, len, e, n);
			if (rc != 0)
				fail_msg("len %zu: a valid %zu-byte encoding was refused (%d)", len,
					 n, rc);
			expect_same("valid foreign encoding", cur, want, len);

			memcpy(cur, prev, len);
			assert_int_equal(rp_delta_decode(cur, cur, len, e, n), 0);
			expect_same("valid foreign encoding, in place", cur, want, len);
		}
	}
	guarded_free(&gc);
	guarded_free(&ge);
	free(prev);
	free(want);
	free(enc);
}

/* ---- encoder capacity --------------------------------------------------- */

/*
 * Every cap below the real size returns 0 and writes nothing at or past
 * cap; the real size (and anything larger) gives the same bytes as the
 * bound does.
 */
static void test_encode_with_short_cap_returns_zero(void **state)
{
	static const struct {
		size_t len;
		unsigned per10k;
		enum pattern pat;
	} cases[] = {
		{0, 0, SCATTERED},	 {1, 0, SCATTERED},	  {1, 10000, SCATTERED},
		{4096, 0, SCATTERED},	 {4096, 100, SCATTERED},  {4096, 1000, RUNS},
		{4096, 5000, SCATTERED}, {300, 10000, SCATTERED}, {1000, 5000, RUNS},
		{4097, 500, RUNS},	 {65537, 10, SCATTERED},
	};
	uint8_t *prev = xmalloc(65537), *cur = xmalloc(65537);
	uint8_t *ref = xmalloc(rp_delta_bound(65537)),
		*out = xmalloc(rp_delta_bound(65537) + SLACK);
	struct rng r = rng_seed(23);

	(void)state;
	for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
		size_t len = cases[c].len, bound = rp_delta_bound(len), n;

		rng_fill(&r, prev, len);
		make_cur(cur, prev, len, cases[c].per10k, cases[c].pat, &r);
		n = encode_v1(ref, bound, cur, prev, len);
		assert_true(n > 0 && n <= bound);
		for (size_t cap = 0; cap < n; cap++) {
			size_t got;

			memset(out, CANARY, n + SLACK);
			got = encode_v1(out, cap, cur, prev, len);
			if (got != 0)
				fail_msg("case %zu (len %zu): cap %zu < %zu returned %zu", c, len,
					 cap, n, got);
			for (size_t i = cap; i < n + SLACK; i++) {
				if (out[i] != CANARY)
					fail_msg("case %zu (len %zu): cap %zu: wrote byte %zu", c,
						 len, cap, i);
			}
		}
		for (size_t cap = n; cap <= n + 1; cap++) {
			memset(out, CANARY, n + SLACK);
			assert_int_equal(encode_v1(out, cap, cur, prev, len), n);
			assert_memory_equal(out, ref, n);
		}
	}
	free(prev);
	free(cur);
	free(ref);
	free(out);
}

/* ---- decoder rejections ------------------------------------------------- */

/*
 * Decode @n bytes (copied to end at a PROT_NONE page) for @len into a
 * sentinel-filled buffer and in place over prev: both must give -EINVAL and
 * change nothing.
 */
static void expect_rejected(const char *what, size_t len, const uint8_t *enc, size_t n,
			    const uint8_t *prev)
{
	struct guarded ge = guarded_alloc(n), gc = guarded_alloc(len);
	uint8_t *e, *cur, *before = xmalloc(len);
	int rc;

	assert_non_null(ge.map);
	assert_non_null(gc.map);
	e = ge.hi - n;
	cur = gc.hi - len;
	memcpy(e, enc, n);

	fill_sentinel(cur, len);
	memcpy(before, cur, len);
	rc = rp_delta_decode(cur, prev, len, e, n);
	if (rc != -EINVAL)
		fail_msg("%s (len %zu, %zu bytes): decode returned %d, expected -EINVAL", what, len,
			 n, rc);
	expect_same(what, cur, before, len);

	memcpy(cur, prev, len);
	rc = rp_delta_decode(cur, cur, len, e, n);
	if (rc != -EINVAL)
		fail_msg("%s (len %zu, %zu bytes): in-place decode returned %d, expected -EINVAL",
			 what, len, n, rc);
	expect_same(what, cur, prev, len);

	guarded_free(&ge);
	guarded_free(&gc);
	free(before);
}

#define FF9   0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF
#define X80_8 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80
#define X80_9 X80_8, 0x80

static void test_decode_rejects_malformed_encodings(void **state)
{
	/* One case per line. */
	/* clang-format off */
	static const struct {
		const char *why;
		size_t len;
		size_t n;
		uint8_t b[24];
	} cases[] = {
		/* Nothing at all, for a non-empty and an empty buffer. */
		{"empty input", 4, 0, {0}},
		{"empty input, len 0", 0, 0, {0}},
		/* The tag is the format version: anything else is refused. */
		{"wrong tag 0xD0", 4, 4, {0xD0, 0x04, 0x04, 0x00}},
		{"wrong tag, len 0", 0, 2, {0xD0, 0x00}},
		/* The header names the length it was made for. */
		{"len 0 in header, 4 expected", 4, 2, {TAG, 0x00}},
		{"len 5 in header, 4 expected", 4, 4, {TAG, 0x05, 0x05, 0x00}},
		{"len 3 in header, 4 expected", 4, 4, {TAG, 0x03, 0x03, 0x00}},
		/* A varint whose continuation bit promises a byte that is not there. */
		{"tag only: len varint missing", 4, 1, {TAG}},
		{"len varint truncated (0xC8, then end)", 200, 2, {TAG, 0xC8}},
		{"skip varint truncated", 200, 4, {TAG, 0xC8, 0x01, 0xC8}},
		{"lit varint missing", 200, 4, {TAG, 0xC8, 0x01, 0x00}},
		{"lit varint truncated", 200, 5, {TAG, 0xC8, 0x01, 0x00, 0xC8}},
		/* At most 10 bytes: an 11th is refused even if the value would fit. */
		{"11-byte len varint (0x84, 9 x 0x80, 0x01)", 4, 12, {TAG, 0x84, X80_9, 0x01}},
		{"11-byte skip varint (10 x 0x80, 0x00)", 4, 15,
		  {TAG, 0x04, 0x80, X80_9, 0x00, 0x00, 0x04}},
		/* Minimal varints only: one value, one encoding. */
		{"non-minimal len 0x84 0x00", 4, 5, {TAG, 0x84, 0x00, 0x04, 0x00}},
		{"non-minimal skip 0x84 0x00", 4, 5, {TAG, 0x04, 0x84, 0x00, 0x00}},
		{"non-minimal zero skip 0x80 0x00", 4, 9,
		  {TAG, 0x04, 0x80, 0x00, 0x04, 1, 2, 3, 4}},
		{"non-minimal lit 0x84 0x80 0x00", 4, 10,
		  {TAG, 0x04, 0x00, 0x84, 0x80, 0x00, 1, 2, 3, 4}},
		{"non-minimal 10-byte len (9 x 0x80 over 4, then 0x00)", 4, 12,
		  {TAG, 0x84, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00}},
		/* The 10th byte carries bit 63 only: 2 and up overflow 64 bits. */
		{"len varint overflows 64 bits (10th byte 0x02)", 4, 13,
		  {TAG, FF9, 0x02, 0x04, 0x00}},
		{"skip varint overflows 64 bits (10th byte 0x7F)", 4, 13,
		  {TAG, 0x04, FF9, 0x7F, 0x00}},
		/* 4 + 2^64: only the overflow check tells these from a plain 4. */
		{"len varint 4 + 2^64", 4, 13, {TAG, 0x84, X80_8, 0x02, 0x04, 0x00}},
		{"skip varint 4 + 2^64", 4, 13, {TAG, 0x04, 0x84, X80_8, 0x02, 0x00}},
		/* Valid varints whose values do not fit in len; sums must not wrap. */
		{"skip 2^64-1", 4, 13, {TAG, 0x04, FF9, 0x01, 0x00}},
		{"skip 1, lit 2^64-1 (skip + lit wraps)", 4, 13, {TAG, 0x04, 0x01, FF9, 0x01}},
		{"skip beyond len", 4, 4, {TAG, 0x04, 0x05, 0x00}},
		{"lit beyond len", 4, 9, {TAG, 0x04, 0x00, 0x05, 1, 2, 3, 4, 5}},
		{"skip + lit beyond len", 4, 7, {TAG, 0x04, 0x02, 0x03, 1, 2, 3}},
		{"second record runs past len", 4, 10,
		  {TAG, 0x04, 0x00, 0x02, 1, 2, 0x01, 0x02, 1, 2}},
		/* The record says lit bytes follow; fewer do. */
		{"literal bytes missing (3 of 4)", 4, 7, {TAG, 0x04, 0x00, 0x04, 1, 2, 3}},
		{"literal bytes missing (all)", 4, 4, {TAG, 0x04, 0x00, 0x04}},
		/* {0, 0} says nothing and would let a stream grow without end. */
		{"record {0,0} then a valid record", 4, 10,
		  {TAG, 0x04, 0x00, 0x00, 0x00, 0x04, 1, 2, 3, 4}},
		{"record {0,0} alone", 4, 4, {TAG, 0x04, 0x00, 0x00}},
		/* lit == 0 is the trailing unchanged run: only last. */
		{"lit 0 record, then a literal", 4, 8, {TAG, 0x04, 0x02, 0x00, 0x00, 0x02, 1, 2}},
		{"two lit 0 records", 4, 6, {TAG, 0x04, 0x01, 0x00, 0x03, 0x00}},
		{"lit 0 record 1 short of len 200", 200, 6, {TAG, 0xC8, 0x01, 0xC7, 0x01, 0x00}},
		/* Records must reach len exactly, and nothing may follow them. */
		{"records stop short (trailing run ends early)", 4, 4, {TAG, 0x04, 0x02, 0x00}},
		{"records stop short (literal, then end)", 4, 6, {TAG, 0x04, 0x00, 0x02, 1, 2}},
		{"trailing 0x00 after {len, 0}", 4, 5, {TAG, 0x04, 0x04, 0x00, 0x00}},
		{"trailing byte after a literal record", 4, 9,
		  {TAG, 0x04, 0x00, 0x04, 1, 2, 3, 4, 0x00}},
		{"a second encoding appended", 4, 8,
		  {TAG, 0x04, 0x04, 0x00, TAG, 0x04, 0x04, 0x00}},
		{"len 0 with a record {0,0}", 0, 4, {TAG, 0x00, 0x00, 0x00}},
		{"len 0 with a trailing byte", 0, 3, {TAG, 0x00, 0x00}},
		{"len 0 with a record {1,0}", 0, 4, {TAG, 0x00, 0x01, 0x00}},
	};
	/* clang-format on */
	uint8_t prev[256];
	struct rng r = rng_seed(30);

	(void)state;
	rng_fill(&r, prev, sizeof(prev));
	for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
		assert_true(cases[c].len <= sizeof(prev));
		assert_true(cases[c].n <= sizeof(cases[c].b));
		expect_rejected(cases[c].why, cases[c].len, cases[c].b, cases[c].n, prev);
	}
	/* The same check accepts what it should: the valid neighbours. */
	{
		static const uint8_t ok4[] = {TAG, 0x04, 0x04, 0x00};
		static const uint8_t ok0[] = {TAG, 0x00};
		static const uint8_t ok200[] = {TAG, 0xC8, 0x01, 0xC8, 0x01, 0x00};
		uint8_t out[200];

		assert_int_equal(rp_delta_decode(out, prev, 4, ok4, sizeof(ok4)), 0);
		assert_memory_equal(out, prev, 4);
		assert_int_equal(rp_delta_decode(out, prev, 0, ok0, sizeof(ok0)), 0);
		assert_int_equal(rp_delta_decode(out, prev, 200, ok200, sizeof(ok200)), 0);
		assert_memory_equal(out, prev, 200);
	}
}

/*
 * A valid encoding cut at any byte is rejected (records must reach len, so
 * no prefix is itself valid), and so is the encoding with any one byte
 * appended.
 */
static void test_decode_rejects_every_truncation_and_extra_byte(void **state)
{
	static const struct {
		size_t len;
		unsigned per10k;
		enum pattern pat;
	} cases[] = {
		{0, 0, SCATTERED},	{1, 0, SCATTERED},	 {1, 10000, SCATTERED},
		{65, 5000, SCATTERED},	{200, 10000, SCATTERED}, {4096, 0, SCATTERED},
		{4096, 100, SCATTERED}, {4096, 1000, RUNS},	 {16384, 10, SCATTERED},
	};
	uint8_t *prev = xmalloc(16384), *cur = xmalloc(16384);
	uint8_t *enc = xmalloc(rp_delta_bound(16384) + 1);
	struct rng r = rng_seed(31);
	char what[96];

	(void)state;
	for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
		size_t len = cases[c].len, n;

		rng_fill(&r, prev, len);
		make_cur(cur, prev, len, cases[c].per10k, cases[c].pat, &r);
		n = encode_v1(enc, rp_delta_bound(len), cur, prev, len);
		assert_true(n > 0);
		for (size_t k = 0; k < n; k++) {
			snprintf(what, sizeof(what), "case %zu cut to %zu of %zu bytes", c, k, n);
			expect_rejected(what, len, enc, k, prev);
		}
		for (unsigned v = 0; v < 256; v++) {
			enc[n] = (uint8_t)v;
			snprintf(what, sizeof(what), "case %zu with 0x%02x appended", c, v);
			expect_rejected(what, len, enc, n + 1, prev);
		}
	}
	free(prev);
	free(cur);
	free(enc);
}

/* A varint of a valid encoding at enc[*off], moving *off past it. */
static size_t read_uvarint(const uint8_t *enc, size_t *off)
{
	size_t v = 0;

	for (unsigned sh = 0;; sh += 7) {
		uint8_t c = enc[(*off)++];

		v |= (size_t)(c & 0x7f) << sh;
		if (!(c & 0x80))
			return v;
	}
}

/*
 * An in-place decode applies records as it reads them; one that meets a bad
 * record partway must leave the page exactly as it was (the records it
 * already applied are XORed out again), and a decode into another buffer
 * must not touch it. Every record of a 1% and a 10% page is replaced in
 * turn by a header that can never be valid there: a non-minimal varint
 * (0x80 0x00) and an empty record (0 0) before the end.
 */
static void test_decode_failing_midway_leaves_cur_as_it_was(void **state)
{
	static const struct {
		unsigned per10k;
		enum pattern pat;
	} cases[] = {{100, SCATTERED}, {1000, RUNS}, {1000, SCATTERED}};
	static const uint8_t bad[][2] = {{0x80, 0x00}, {0x00, 0x00}};
	uint8_t *prev = xmalloc(PAGE), *cur = xmalloc(PAGE);
	uint8_t *enc = xmalloc(rp_delta_bound(PAGE)), *copy = xmalloc(rp_delta_bound(PAGE));
	struct rng r = rng_seed(41);
	char what[96];

	(void)state;
	for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
		size_t n, off = 1 + varint_len(PAGE), records = 0;

		rng_fill(&r, prev, PAGE);
		make_cur(cur, prev, PAGE, cases[c].per10k, cases[c].pat, &r);
		n = encode_v1(enc, rp_delta_bound(PAGE), cur, prev, PAGE);
		assert_true(n > off);
		while (off < n) {
			size_t start = off, skip, lit;

			skip = read_uvarint(enc, &off);
			lit = read_uvarint(enc, &off);

			off += lit;
			records++;
			for (size_t b = 0; b < ARRAY_SIZE(bad); b++) {
				/* The final skip-only record: 0 0 would be one too. */
				if (b == 1 && lit == 0)
					continue;
				memcpy(copy, enc, n);
				memcpy(copy + start, bad[b], 2);
				snprintf(what, sizeof(what),
					 "case %zu record %zu (skip %zu lit %zu) -> %02x %02x", c,
					 records, skip, lit, bad[b][0], bad[b][1]);
				expect_rejected(what, PAGE, copy, n, prev);
			}
		}
		assert_int_equal(off, n);
		printf("[ INFO     ] case %zu: %zu records, each replaced by %zu bad headers\n", c,
		       records, ARRAY_SIZE(bad));
	}
	free(prev);
	free(cur);
	free(enc);
	free(copy);
}

/* ---- format version 2 --------------------------------------------------- */

/* The round trips above, in v2 (v1 where v2 does not apply). */
static void test_v2_round_trips(void **state)
{
	rt_version = RP_DELTA_V2;
	test_round_trip_densities_on_4096_byte_pages(state);
	test_round_trip_odd_lengths(state);
	test_round_trip_block_and_bridge_edges(state);
	rt_version = RP_DELTA_V1;
}

/* Lone changed bytes are singles, adjacent ones one run, in offset order. */
static void test_v2_exact_bytes(void **state)
{
	uint8_t prev[300] = {0}, cur[300] = {0}, got[400];
	static const uint8_t want_hdr[] = {TAG2, 0xAC, 0x02, 3, 2};
	uint8_t want[64], *w = want;
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(prev); i++)
		prev[i] = cur[i] = (uint8_t)(i * 37);
	cur[2] ^= 0x11; /* single */
	cur[5] ^= 0x21; /* run 5..7 */
	cur[6] ^= 0x22;
	cur[7] ^= 0x23;
	cur[9] ^= 0x31;	  /* single (gap of one: not bridged in v2) */
	cur[260] ^= 0x41; /* run 260..261 */
	cur[261] ^= 0x42;
	cur[299] ^= 0x51; /* single, the last byte */
	memcpy(w, want_hdr, sizeof(want_hdr));
	w += sizeof(want_hdr);
	/* singles {off, x} */
	*w++ = 2, *w++ = 0, *w++ = 0x11;
	*w++ = 9, *w++ = 0, *w++ = 0x31;
	*w++ = 299 & 0xff, *w++ = 299 >> 8, *w++ = 0x51;
	/* runs {off, lit}, then their bytes */
	*w++ = 5, *w++ = 0, *w++ = 3;
	*w++ = 260 & 0xff, *w++ = 260 >> 8, *w++ = 2;
	*w++ = 0x21, *w++ = 0x22, *w++ = 0x23, *w++ = 0x41, *w++ = 0x42;

	n = rp_delta_encode_ver(got, sizeof(got), cur, prev, sizeof(cur), RP_DELTA_V2);
	assert_int_equal(n, (size_t)(w - want));
	assert_memory_equal(got, want, n);
	rt_version = RP_DELTA_V2;
	assert_int_equal(round_trip(cur, prev, sizeof(cur), "v2 exact"), n);
	/* Unchanged: no entries at all. */
	n = rp_delta_encode_ver(got, sizeof(got), prev, prev, sizeof(prev), RP_DELTA_V2);
	assert_int_equal(n, 5);
	assert_memory_equal(got, ((const uint8_t[]){TAG2, 0xAC, 0x02, 0, 0}), 5);
	rt_version = RP_DELTA_V1;
	/* The default, rp_delta_encode(), is v2; V1 asked for is v1 (tag 0xD1,
	 * gaps of up to 3 bytes bridged: 2..9 is one record); unknown versions
	 * give 0. */
	n = rp_delta_encode_ver(got, sizeof(got), cur, prev, sizeof(cur), RP_DELTA_V2);
	assert_int_equal(rp_delta_encode(want, sizeof(want), cur, prev, sizeof(cur)), n);
	assert_memory_equal(got, want, n);
	n = rp_delta_encode_ver(got, sizeof(got), cur, prev, sizeof(cur), RP_DELTA_V1);
	assert_int_equal(got[0], TAG);
	assert_memory_equal(got + 1, ((const uint8_t[]){0xAC, 0x02, 2, 8}), 4);
	assert_int_equal(n, round_trip(cur, prev, sizeof(cur), "v1 asked for"));
	assert_int_equal(rp_delta_encode_ver(got, sizeof(got), cur, prev, sizeof(cur), 0), 0);
	assert_int_equal(rp_delta_encode_ver(got, sizeof(got), cur, prev, sizeof(cur), 3), 0);
}

/* Every cap below the v2 size returns 0 and writes nothing at or past it. */
static void test_v2_encode_with_short_cap_returns_zero(void **state)
{
	static const struct {
		size_t len;
		unsigned per10k;
		enum pattern pat;
	} cases[] = {{1, 10000, SCATTERED}, {300, 100, SCATTERED},   {4096, 100, SCATTERED},
		     {4096, 1000, RUNS},    {4096, 5000, SCATTERED}, {65536, 50, RUNS}};
	size_t max = rp_delta_bound(65536) + SLACK;
	uint8_t *prev = xmalloc(65536), *cur = xmalloc(65536);
	uint8_t *ref = xmalloc(max), *out = xmalloc(max);
	struct rng r = rng_seed(51);

	(void)state;
	for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
		size_t len = cases[c].len, full, step;

		rng_fill(&r, prev, len);
		make_cur(cur, prev, len, cases[c].per10k, cases[c].pat, &r);
		full = rp_delta_encode_ver(ref, rp_delta_bound(len), cur, prev, len, RP_DELTA_V2);
		assert_true(full > 0 && full <= rp_delta_bound(len));
		step = full > 600 ? full / 300 : 1;
		for (size_t cap = 0; cap < full; cap += step) {
			memset(out, CANARY, max);
			assert_int_equal(rp_delta_encode_ver(out, cap, cur, prev, len, RP_DELTA_V2),
					 0);
			for (size_t i = cap; i < max; i++) {
				if (out[i] != CANARY)
					fail_msg("case %zu cap %zu: byte %zu written", c, cap, i);
			}
		}
		memset(out, CANARY, max);
		assert_int_equal(rp_delta_encode_ver(out, full, cur, prev, len, RP_DELTA_V2), full);
		assert_memory_equal(out, ref, full);
		assert_int_equal(out[full], CANARY);
	}
	free(prev);
	free(cur);
	free(ref);
	free(out);
}

struct v2_entry {
	size_t off, lit; /* lit 0: a single */
	uint8_t x;
};

/* A v2 encoding of @ns singles and @nr runs (entries as given, any order),
 * run bytes from @bytes. */
static size_t v2_build(uint8_t *enc, size_t len, const struct v2_entry *e, size_t ns, size_t nr,
		       const uint8_t *bytes, size_t nbytes)
{
	uint8_t *p = enc;

	*p++ = TAG2;
	p = put_varint(p, len);
	p = put_varint(p, ns);
	p = put_varint(p, nr);
	for (size_t i = 0; i < ns + nr; i++) {
		*p++ = (uint8_t)e[i].off;
		*p++ = (uint8_t)(e[i].off >> 8);
		*p++ = i < ns ? e[i].x : (uint8_t)e[i].lit;
	}
	memcpy(p, bytes, nbytes);
	return (size_t)(p - enc) + nbytes;
}

/*
 * Any valid v2 encoding decodes, not only this encoder's: entries in random
 * order, overlapping, adjacent, zero XOR bytes, runs up to 255 bytes and
 * near both ends of cur and of the input (where a whole-word access could
 * leave them).
 */
static void test_v2_decode_accepts_foreign_encodings(void **state)
{
	unsigned trials = test_reduced() ? 300 : 3000;
	size_t max_len = 700, max_e = 64, max_enc = 8 + 3 * max_e + max_e * 255;
	uint8_t *prev = xmalloc(max_len), *want = xmalloc(max_len), *enc = xmalloc(max_enc);
	uint8_t *bytes = xmalloc(max_e * 255);
	struct v2_entry *e = xmalloc(max_e * sizeof(*e));
	struct guarded gc = guarded_alloc(max_len), ge = guarded_alloc(max_enc);
	struct rng r = rng_seed(52);

	(void)state;
	assert_non_null(gc.map);
	assert_non_null(ge.map);
	for (unsigned t = 0; t < trials; t++) {
		size_t len = 1 + (size_t)rng_below(&r, max_len), ns = (size_t)rng_below(&r, 20);
		size_t nr = (size_t)rng_below(&r, 20), nb = 0, n;
		uint8_t *cur = gc.hi - len, *ep;

		rng_fill(&r, prev, len);
		memcpy(want, prev, len);
		for (size_t i = 0; i < ns; i++) {
			/* Near the end a third of the time. */
			e[i].off = rng_below(&r, 3)
					   ? (size_t)rng_below(&r, len)
					   : len - 1 - (size_t)rng_below(&r, len < 8 ? len : 8);
			e[i].x = rng_below(&r, 5) ? (uint8_t)rng_next(&r) : 0;
			want[e[i].off] ^= e[i].x;
		}
		for (size_t j = ns; j < ns + nr; j++) {
			size_t l = 1 + (size_t)rng_below(&r, rng_below(&r, 8) ? 12 : 255);

			if (l > len)
				l = len;
			e[j].lit = l;
			e[j].off = rng_below(&r, 3) ? (size_t)rng_below(&r, len - l + 1) : len - l;
			for (size_t k = 0; k < l; k++) {
				bytes[nb] = rng_below(&r, 4) ? (uint8_t)rng_next(&r) : 0;
				want[e[j].off + k] ^= bytes[nb++];
			}
		}
		n = v2_build(enc, len, e, ns, nr, bytes, nb);
		ep = ge.hi - n;
		memcpy(ep, enc, n);

		fill_sentinel(cur, len);
		if (rp_delta_decode(cur, prev, len, ep, n) != 0)
			fail_msg("trial %u: len %zu, %zu singles, %zu runs: refused", t, len, ns,
				 nr);
		expect_same("v2 foreign", cur, want, len);
		memcpy(cur, prev, len);
		assert_int_equal(rp_delta_decode(cur, cur, len, ep, n), 0);
		expect_same("v2 foreign, in place", cur, want, len);
	}
	guarded_free(&gc);
	guarded_free(&ge);
	free(prev);
	free(want);
	free(enc);
	free(bytes);
	free(e);
}

/*
 * Lying v2 encodings are refused and change nothing, in place too (where
 * singles already applied are XORed out when a run fails): entries past
 * len, empty runs, run bytes short or in excess, counts larger than the
 * input, another len, a len over 65536, every truncation and every extra
 * byte.
 */
static void test_v2_decode_rejects_lies(void **state)
{
	static const struct v2_entry ok[] = {{3, 0, 0x11}, {9, 0, 0x22}, {0, 2, 0}, {12, 4, 0}};
	static const uint8_t rb[6] = {1, 2, 3, 4, 5, 6};
	uint8_t prev[16], enc[128], *big = xmalloc(65537);
	struct v2_entry bad[4];
	size_t len = sizeof(prev), n;
	char what[96];

	(void)state;
	for (size_t i = 0; i < len; i++)
		prev[i] = (uint8_t)(0x30 + i);
	n = v2_build(enc, len, ok, 2, 2, rb, 6);
	{
		uint8_t cur[16];

		memcpy(cur, prev, len);
		assert_int_equal(rp_delta_decode(cur, cur, len, enc, n), 0);
	}
	for (size_t k = 0; k < n; k++) {
		snprintf(what, sizeof(what), "v2 cut to %zu of %zu bytes", k, n);
		expect_rejected(what, len, enc, k, prev);
	}
	for (unsigned v = 0; v < 256; v++) {
		enc[n] = (uint8_t)v;
		snprintf(what, sizeof(what), "v2 with 0x%02x appended", v);
		expect_rejected(what, len, enc, n + 1, prev);
	}
	memcpy(bad, ok, sizeof(ok));
	bad[1].off = len; /* single past the end */
	expect_rejected("v2 single at len", len, enc, v2_build(enc, len, bad, 2, 2, rb, 6), prev);
	memcpy(bad, ok, sizeof(ok));
	bad[3].off = len - 3; /* run over the end (after the singles applied) */
	expect_rejected("v2 run over len", len, enc, v2_build(enc, len, bad, 2, 2, rb, 6), prev);
	memcpy(bad, ok, sizeof(ok));
	bad[3].lit = 0; /* empty run */
	expect_rejected("v2 empty run", len, enc, v2_build(enc, len, bad, 2, 2, rb, 2), prev);
	memcpy(bad, ok, sizeof(ok));
	bad[2].lit = 3; /* run bytes short by one: 7 claimed, 6 there */
	expect_rejected("v2 run bytes short", len, enc, v2_build(enc, len, bad, 2, 2, rb, 6), prev);
	/* Counts larger than the input holds, and one that overflows 3 * n. */
	n = v2_build(enc, len, ok, 2, 2, rb, 6);
	enc[2] = 0x7f;
	expect_rejected("v2 ns too large", len, enc, n, prev);
	n = v2_build(enc, len, ok, 2, 2, rb, 6);
	enc[3] = 0x7f;
	expect_rejected("v2 nr too large", len, enc, n, prev);
	{
		uint8_t huge[] = {TAG2, 16,   0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
				  0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0};

		expect_rejected("v2 ns near 2^64", len, huge, sizeof(huge), prev);
	}
	/* Made for another length. */
	n = v2_build(enc, len, ok, 2, 2, rb, 6);
	memset(big, 0x77, 17);
	expect_rejected("v2 made for len 16, given 17", 17, enc, n, big);
	enc[1] = 17;
	expect_rejected("v2 claims len 17", len, enc, n, prev);
	/* Over 65536: v2 does not exist there, even with no entries. */
	{
		uint8_t hdr[8], *p = hdr;

		memset(big, 0x77, 65537);
		*p++ = TAG2;
		p = put_varint(p, 65537);
		*p++ = 0;
		*p++ = 0;
		expect_rejected("v2 for len 65537", 65537, hdr, (size_t)(p - hdr), big);
	}
	/* Nor at len 0 (0 < len <= 65536): an empty buffer has one encoding,
	 * v1's, which the encoder writes; D2 00 00 00 would be a second. */
	{
		static const uint8_t empty2[] = {TAG2, 0, 0, 0};
		uint8_t v1[16], one = 0x42;

		expect_rejected("v2 for len 0", 0, empty2, sizeof(empty2), prev);
		assert_int_equal(rp_delta_decode(NULL, NULL, 0, empty2, sizeof(empty2)), -EINVAL);
		assert_int_equal(rp_delta_decode(&one, &one, 0, empty2, sizeof(empty2)), -EINVAL);
		n = rp_delta_encode(v1, sizeof(v1), NULL, NULL, 0);
		assert_true(n > 0 && v1[0] != TAG2);
		assert_int_equal(rp_delta_decode(NULL, NULL, 0, v1, n), 0);
	}
	free(big);
}

/* ---- diff-scan kernels -------------------------------------------------- */

struct scan_backend {
	const char *name;
	rp_delta_scan_fn fn;
	enum rp_simd_level min_level;
};

/* One row per kernel built for this architecture: X(arg, id, function, level). */
#if defined(__x86_64__)
#define SCAN_BACKENDS(X, arg)                                                                      \
	X(arg, dispatch, rp_delta_scan, RP_SIMD_SCALAR)                                            \
	X(arg, scalar, rp_delta_scan_scalar, RP_SIMD_SCALAR)                                       \
	X(arg, avx2, rp_delta_scan_avx2, RP_SIMD_AVX2)                                             \
	X(arg, avx512, rp_delta_scan_avx512, RP_SIMD_AVX512)
#elif defined(__aarch64__)
#define SCAN_BACKENDS(X, arg)                                                                      \
	X(arg, dispatch, rp_delta_scan, RP_SIMD_SCALAR)                                            \
	X(arg, scalar, rp_delta_scan_scalar, RP_SIMD_SCALAR)                                       \
	X(arg, neon, rp_delta_scan_neon, RP_SIMD_NEON)
#else
#define SCAN_BACKENDS(X, arg)                                                                      \
	X(arg, dispatch, rp_delta_scan, RP_SIMD_SCALAR)                                            \
	X(arg, scalar, rp_delta_scan_scalar, RP_SIMD_SCALAR)
#endif

#define DEFINE_BACKEND(unused, id, f, lvl) static struct scan_backend be_##id = {#id, f, lvl};
SCAN_BACKENDS(DEFINE_BACKEND, unused)

/* A cmocka test per kernel, named test/kernel, with the kernel as its state. */
#define BACKEND_ROW(test, id, f, lvl) {#test "/" #id, test, NULL, NULL, &be_##id},
#define FOR_EACH_BACKEND(test)	      SCAN_BACKENDS(BACKEND_ROW, test)

static const struct scan_backend *backend(void **state)
{
	const struct scan_backend *be = *state;

	SKIP_UNLESS_CPU_RUNS(be->name, be->min_level);
	return be;
}

#define MASK_SENTINEL 0xA5A5A5A5DEADBEEFull

/* Run the kernel and compare masks, summary and the untouched tail. */
static void expect_scan(const struct scan_backend *be, const uint8_t *a, const uint8_t *b,
			unsigned nblocks, const char *what)
{
	uint64_t masks[65], summary = 0, got;

	for (unsigned i = 0; i < 65; i++)
		masks[i] = MASK_SENTINEL;
	got = be->fn(a, b, nblocks, masks);
	for (unsigned blk = 0; blk < nblocks; blk++) {
		uint64_t want = 0;

		for (unsigned j = 0; j < 64; j++)
			want |= (uint64_t)(a[64 * blk + j] != b[64 * blk + j]) << j;
		if (masks[blk] != want)
			fail_msg("%s: %s, nblocks %u: masks[%u] = 0x%016jx, expected 0x%016jx",
				 be->name, what, nblocks, blk, (uintmax_t)masks[blk],
				 (uintmax_t)want);
		summary |= (uint64_t)(want != 0) << blk;
	}
	if (got != summary)
		fail_msg("%s: %s, nblocks %u: summary 0x%016jx, expected 0x%016jx", be->name, what,
			 nblocks, (uintmax_t)got, (uintmax_t)summary);
	for (unsigned i = nblocks; i < 65; i++) {
		if (masks[i] != MASK_SENTINEL)
			fail_msg("%s: %s, nblocks %u: wrote masks[%u]", be->name, what, nblocks, i);
	}
}

/*
 * Each byte position alone, with differences in the low bit, the sign bit
 * and all bits (a compare that is signed or word-wise shows here), then
 * random blocks: all equal, all different, sparse and dense, for every
 * nblocks 1..64, with both inputs ending at a PROT_NONE page.
 */
static void test_scan_matches_byte_by_byte_mask(void **state)
{
	const struct scan_backend *be = backend(state);
	static const uint8_t flips[] = {0x01, 0x80, 0xFF};
	unsigned trials = test_reduced() ? 6 : 40;
	struct guarded ga = guarded_alloc(64 * 64), gb = guarded_alloc(64 * 64);
	struct rng r = rng_seed(40);

	assert_non_null(ga.map);
	assert_non_null(gb.map);
	for (unsigned nb = 1; nb <= 2; nb++) {
		uint8_t *a = ga.hi - 64 * nb, *b = gb.hi - 64 * nb;

		for (unsigned f = 0; f < ARRAY_SIZE(flips); f++) {
			for (unsigned pos = 0; pos < 64 * nb; pos++) {
				rng_fill(&r, a, 64 * nb);
				memcpy(b, a, 64 * nb);
				b[pos] ^= flips[f];
				expect_scan(be, a, b, nb, "one byte differs");
			}
		}
	}
	for (unsigned nb = 1; nb <= 64; nb++) {
		size_t n = 64 * (size_t)nb;
		uint8_t *a = ga.hi - n, *b = gb.hi - n;

		for (unsigned t = 0; t < trials; t++) {
			unsigned kind = t % 5;
			const char *what = "";

			rng_fill(&r, a, n);
			memcpy(b, a, n);
			switch (kind) {
			case 0:
				what = "all equal";
				break;
			case 1:
				what = "all different";
				for (size_t i = 0; i < n; i++)
					b[i] ^= (uint8_t)(1 + rng_below(&r, 255));
				break;
			case 2: {
				unsigned k = 1 + (unsigned)rng_below(&r, 8);

				what = "a few bytes differ";
				for (unsigned i = 0; i < k; i++)
					b[rng_below(&r, n)] ^= (uint8_t)(1 + rng_below(&r, 255));
				break;
			}
			case 3:
				what = "about 1 in 16 bytes differ";
				for (size_t i = 0; i < n; i++) {
					if (rng_below(&r, 16) == 0)
						b[i] ^= (uint8_t)(1 + rng_below(&r, 255));
				}
				break;
			default:
				what = "whole random blocks differ";
				for (unsigned blk = 0; blk < nb; blk++) {
					if (rng_below(&r, 3) == 0)
						rng_fill(&r, b + 64 * blk, 64);
				}
				break;
			}
			expect_scan(be, a, b, nb, what);
			/* The same data starting right after a guard page. */
			memmove(ga.lo, a, n);
			memmove(gb.lo, b, n);
			expect_scan(be, ga.lo, gb.lo, nb, what);
		}
	}
	guarded_free(&ga);
	guarded_free(&gb);
}

/* ---- the v2 encoder against a reference, on every kernel ---------------- */

/*
 * The v2 encoding the format and simd.h ask for, byte by byte: singles for
 * changed bytes with no changed neighbour, runs for the rest, cut into
 * entries of 255 bytes where longer (the last two share what is left when
 * one byte would be left over), both tables in offset order; the single v1
 * literal record where that is smaller. @out has room for 4 * len + 32.
 */
static size_t ref_encode_v2(uint8_t *out, const uint8_t *cur, const uint8_t *prev, size_t len)
{
	size_t ns = 0, nr = 0, nb = 0, bound = rp_delta_bound(len), n;
	uint8_t *sg = xmalloc(3 * len), *rn = xmalloc(3 * len), *by = xmalloc(len), *p = out;

	for (size_t i = 0; i < len;) {
		size_t j = i;

		if (cur[i] == prev[i]) {
			i++;
			continue;
		}
		while (j < len && cur[j] != prev[j])
			j++;
		if (j - i == 1) {
			sg[3 * ns] = (uint8_t)i;
			sg[3 * ns + 1] = (uint8_t)(i >> 8);
			sg[3 * ns + 2] = cur[i] ^ prev[i];
			ns++;
		}
		while (j - i >= 2) {
			size_t l = j - i <= 255 ? j - i : j - i == 256 ? 254 : 255;

			rn[3 * nr] = (uint8_t)i;
			rn[3 * nr + 1] = (uint8_t)(i >> 8);
			rn[3 * nr + 2] = (uint8_t)l;
			nr++;
			for (size_t k = 0; k < l; k++)
				by[nb++] = cur[i + k] ^ prev[i + k];
			i += l;
		}
		i = j;
	}
	*p++ = TAG2;
	p = put_varint(p, len);
	p = put_varint(p, ns);
	p = put_varint(p, nr);
	memcpy(p, sg, 3 * ns);
	memcpy(p + 3 * ns, rn, 3 * nr);
	memcpy(p + 3 * (ns + nr), by, nb);
	n = (size_t)(p - out) + 3 * (ns + nr) + nb;
	if (n > bound) {
		p = out;
		*p++ = TAG;
		p = put_varint(p, len);
		*p++ = 0;
		p = put_varint(p, len);
		for (size_t i = 0; i < len; i++)
			*p++ = cur[i] ^ prev[i];
		n = (size_t)(p - out);
	}
	free(sg);
	free(rn);
	free(by);
	return n;
}

/* Runs of 2..9 bytes and of 250..520 and 1000 bytes (over and around 255,
 * 256, 510, 511), @count of them at random places. */
static void make_long_runs(uint8_t *cur, const uint8_t *prev, size_t len, unsigned count,
			   struct rng *r)
{
	static const size_t lens[] = {2, 3, 9, 254, 255, 256, 257, 509, 510, 511, 512, 513, 1000};

	memcpy(cur, prev, len);
	for (unsigned c = 0; c < count; c++) {
		size_t l = lens[rng_below(r, ARRAY_SIZE(lens))], at;

		if (l > len)
			l = len;
		at = (size_t)rng_below(r, len - l + 1);
		for (size_t i = at; i < at + l; i++)
			cur[i] = prev[i] ^ (uint8_t)(1 + rng_below(r, 255));
	}
}

/*
 * The v2 encoder on each diff-scan kernel writes exactly the reference's
 * bytes, for lengths 1..65536 (v1 beyond), densities 0..100 % scattered,
 * in runs and in runs longer than 255 bytes, inputs at every alignment mod
 * 64 and ending at a PROT_NONE page (an 8-byte read past @len faults);
 * with @cap one byte short it returns 0 and writes nothing at or past @cap,
 * with @cap exact it writes exactly that. The dispatched kernel's row also
 * checks rp_delta_encode_ver() and rp_delta_encode().
 */
static void test_v2_encoder_matches_reference(void **state)
{
	const struct scan_backend *be = backend(state);
	unsigned trials = test_reduced() ? 60 : 500;
	size_t max = 70000, room = 4 * max + 32;
	struct guarded gc = guarded_alloc(max + 64), gp = guarded_alloc(max + 64);
	uint8_t *want = xmalloc(room), *got = xmalloc(room), *back = xmalloc(max);
	struct rng r = rng_seed(60);
	char what[128];

	assert_non_null(gc.map);
	assert_non_null(gp.map);
	for (unsigned t = 0; t < trials; t++) {
		unsigned kind = t % 8, per10k = densities[rng_below(&r, ARRAY_SIZE(densities))];
		size_t len, n, m, bound;
		uint8_t *cur, *prev;

		switch (kind) {
		case 0:
			len = 1 + (size_t)rng_below(&r, 200);
			break;
		case 1:
			len = 4096;
			break;
		case 2:
			len = 65536 - (size_t)rng_below(&r, 3);
			break;
		case 3:
			len = 65537 + (size_t)rng_below(&r, max - 65537 + 1);
			break;
		default:
			len = 1 + (size_t)rng_below(&r, rng_below(&r, 4) ? 9000 : 65536);
			break;
		}
		/* Both inputs end at a guard page, at independent alignments. */
		cur = gc.hi - len - (size_t)rng_below(&r, 64);
		prev = gp.hi - len - (size_t)rng_below(&r, 64);
		if (t % 2)
			cur = gc.hi - len, prev = gp.hi - len;
		rng_fill(&r, prev, len);
		if (kind == 5 || kind == 6) {
			make_long_runs(cur, prev, len, 1 + (unsigned)rng_below(&r, 12), &r);
			per10k = 0;
		} else {
			make_cur(cur, prev, len, per10k, (enum pattern)(t / 8 % 2), &r);
		}
		snprintf(what, sizeof(what), "%s: trial %u, len %zu, %u/10000 %s", be->name, t,
			 len, per10k,
			 kind == 5 || kind == 6 ? "long runs" : pattern_names[t / 8 % 2]);
		bound = rp_delta_bound(len);
		if (len <= 65536)
			n = ref_encode_v2(want, cur, prev, len);
		else
			n = rp_delta_encode_ver(want, room, cur, prev, len, RP_DELTA_V1);
		assert_true(n > 0 && n <= bound);

		memset(got, CANARY, n + SLACK);
		m = rp_delta_encode_v2_scan(got, bound, cur, prev, len, be->fn);
		if (m != n)
			fail_msg("%s: encoded %zu bytes, the reference %zu", what, m, n);
		for (size_t i = 0; i < n; i++) {
			if (got[i] != want[i])
				fail_msg("%s: byte %zu of %zu is 0x%02x, the reference's 0x%02x",
					 what, i, n, got[i], want[i]);
		}
		for (size_t i = n; i < n + SLACK; i++) {
			if (got[i] != CANARY)
				fail_msg("%s: wrote byte %zu past its %zu", what, i, n);
		}
		/* One byte short: 0, nothing at or past cap. Exact: the same bytes. */
		memset(got, CANARY, n + SLACK);
		if (rp_delta_encode_v2_scan(got, n - 1, cur, prev, len, be->fn) != 0)
			fail_msg("%s: cap %zu (one short) did not return 0", what, n - 1);
		for (size_t i = n - 1; i < n + SLACK; i++) {
			if (got[i] != CANARY)
				fail_msg("%s: cap %zu: wrote byte %zu", what, n - 1, i);
		}
		memset(got, CANARY, n + SLACK);
		assert_int_equal(rp_delta_encode_v2_scan(got, n, cur, prev, len, be->fn), n);
		assert_memory_equal(got, want, n);
		assert_int_equal(got[n], CANARY);
		if (be->fn == rp_delta_scan) {
			assert_int_equal(rp_delta_encode_ver(got, bound, cur, prev, len, RP_DELTA_V2),
					 n);
			assert_memory_equal(got, want, n);
		}
		/* And it decodes back. */
		if (rp_delta_decode(back, prev, len, want, n) != 0)
			fail_msg("%s: the decoder refused it", what);
		expect_same(what, back, cur, len);
	}
	guarded_free(&gc);
	guarded_free(&gp);
	free(want);
	free(got);
	free(back);
}

int main(void)
{
	/* One row per kernel comes from each FOR_EACH_BACKEND. */
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_densities_on_4096_byte_pages),
		cmocka_unit_test(test_round_trip_odd_lengths),
		cmocka_unit_test(test_round_trip_block_and_bridge_edges),
		cmocka_unit_test(test_unchanged_buffer_is_header_plus_one_record),
		cmocka_unit_test(test_all_changed_is_one_literal_record),
		cmocka_unit_test(test_bound_saturates_at_size_max),
		cmocka_unit_test(test_encode_with_short_cap_returns_zero),
		cmocka_unit_test(test_decode_accepts_valid_encodings_from_any_encoder),
		cmocka_unit_test(test_decode_rejects_malformed_encodings),
		cmocka_unit_test(test_decode_rejects_every_truncation_and_extra_byte),
		cmocka_unit_test(test_decode_failing_midway_leaves_cur_as_it_was),
		cmocka_unit_test(test_v2_round_trips),
		cmocka_unit_test(test_v2_exact_bytes),
		cmocka_unit_test(test_v2_encode_with_short_cap_returns_zero),
		cmocka_unit_test(test_v2_decode_accepts_foreign_encodings),
		cmocka_unit_test(test_v2_decode_rejects_lies),
		FOR_EACH_BACKEND(test_scan_matches_byte_by_byte_mask)
		FOR_EACH_BACKEND(test_v2_encoder_matches_reference)
	};
	/* clang-format on */

	print_mode("test_delta");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
