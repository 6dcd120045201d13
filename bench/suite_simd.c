/* SPDX-License-Identifier: MIT */
/*
 * simd suite: the dispatched kernels (rp_crc32c, rp_xor, rp_delta_*) side by
 * side with ISA-L (crc32_iscsi, xor_gen), our own scalar references and a
 * naive byte-by-byte delta codec.
 *
 * Every output is checked against its reference before anything is timed:
 * a fast wrong kernel stops the suite instead of producing a ratio.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringplane/simd.h>

#include "bench.h"

#ifdef RP_HAVE_ISAL
#include <isa-l/crc.h>
#include <isa-l/raid.h>
#endif

#define BUF_MAX (1u << 20)
#define PAGE 4096u
/* 64-byte aligned: ISA-L xor_gen needs 32 B, its AVX-512 path 64 B. */
#define ALIGN 64

static const size_t sizes[] = { 64, 256, 1024, 4096, 65536, BUF_MAX };
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

/*
 * Distinct pages per density, visited in turn. With one page encoded over
 * and over, the branch predictor learns its 4096 byte-compare outcomes and
 * the byte-wise baseline swings 2x from run to run; 16 pages (64 K
 * outcomes) it cannot learn, and 16 x 2 x 4 KB still sits in L2 as a page
 * being shipped would.
 */
#define NPAGES 16u

/* Changed-byte densities for the delta codec, in percent of the page. */
static const unsigned delta_pcts[] = { 1, 10, 50 };
#define NPCTS (sizeof(delta_pcts) / sizeof(delta_pcts[0]))

/* splitmix64: fixed seed, so every run measures the same bytes. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static void fill_random(uint8_t *p, size_t n, uint64_t *s)
{
	for (size_t i = 0; i < n; i += 8) {
		uint64_t v = rng_next(s);

		memcpy(p + i, &v, n - i < 8 ? n - i : 8);
	}
}

/* ---- CRC32C ----
 * Both sides chain the CRC through calls (crc = f(buf, len, crc)), so each
 * call depends on the previous one's result: the compiler cannot drop or
 * overlap calls, and both sides measure the same latency-bound pattern
 * (what a stream of buffers checksummed in order costs). ISA-L's
 * crc32_iscsi does not invert on entry and exit and ours does; feeding one
 * side's raw output back as the other's state is still a chain of the same
 * shape, which is all the timing needs. */

struct crc_ctx {
	const uint8_t *buf;
	size_t len;
	uint32_t crc;
};

static void crc_ours(void *p, uint64_t iters)
{
	struct crc_ctx *c = p;
	uint32_t crc = c->crc;

	for (uint64_t i = 0; i < iters; i++)
		crc = rp_crc32c(crc, c->buf, c->len);
	c->crc = crc;
	rp_bench_sink = crc;
}

static void crc_scalar(void *p, uint64_t iters)
{
	struct crc_ctx *c = p;
	uint32_t crc = c->crc;

	for (uint64_t i = 0; i < iters; i++)
		crc = rp_crc32c_scalar(crc, c->buf, c->len);
	c->crc = crc;
	rp_bench_sink = crc;
}

#ifdef RP_HAVE_ISAL
static void crc_isal(void *p, uint64_t iters)
{
	struct crc_ctx *c = p;
	uint32_t crc = c->crc;

	for (uint64_t i = 0; i < iters; i++)
		crc = crc32_iscsi((unsigned char *)c->buf, (int)c->len, crc);
	c->crc = crc;
	rp_bench_sink = crc;
}
#endif

/* ---- XOR ----
 * Each call writes len bytes of output; the clobber makes every store
 * observable, so repeated calls with the same inputs are all performed. */

struct xor_ctx {
	uint8_t *dst;
	const uint8_t *a, *b;
	size_t len;
};

static void xor_ours(void *p, uint64_t iters)
{
	struct xor_ctx *x = p;

	for (uint64_t i = 0; i < iters; i++) {
		rp_xor(x->dst, x->a, x->b, x->len);
		rp_bench_clobber();
	}
	rp_bench_sink = x->dst[0];
}

static void xor_scalar(void *p, uint64_t iters)
{
	struct xor_ctx *x = p;

	for (uint64_t i = 0; i < iters; i++) {
		rp_xor_scalar(x->dst, x->a, x->b, x->len);
		rp_bench_clobber();
	}
	rp_bench_sink = x->dst[0];
}

#ifdef RP_HAVE_ISAL
static void xor_isal(void *p, uint64_t iters)
{
	struct xor_ctx *x = p;
	void *vec[3] = { (void *)x->a, (void *)x->b, x->dst }; /* sources, then dest */

	for (uint64_t i = 0; i < iters; i++) {
		xor_gen(3, (int)x->len, vec);
		rp_bench_clobber();
	}
	rp_bench_sink = x->dst[0];
}
#endif

/* ---- delta codec ----
 * The baseline is the codec anyone would write first: encode compares byte
 * by byte and writes a (16-bit offset, xor byte) triple per changed byte;
 * decode copies the previous page (unless it decodes in place) and applies
 * the triples. Plain C, built with the same flags as ours.
 *
 * In place, a receiver applies the delta to the page it holds. Both sides
 * decode into their own copy of the NPAGES previous pages; applying an XOR
 * delta twice gives the page back, so each page flips between prev and cur
 * and the count of flips says which one it must hold at the end. */

struct delta_ctx {
	const uint8_t *cur, *prev; /* NPAGES pages each */
	uint8_t *enc;		   /* encode: one scratch output; decode: NPAGES inputs */
	size_t cap;		   /* encode: output room; decode: stride between inputs */
	const size_t *enc_len;	   /* decode: length of each input */
	uint8_t *out;		   /* decode output, one page */
	uint8_t *work;		   /* in-place decode: NPAGES pages, each prev or cur */
	unsigned flips[NPAGES];	   /* in-place decode: decodes per page */
	unsigned page;		   /* the page last visited */
	unsigned ver;		   /* encode: format version (rp_delta_encode_ver) */
	int err;
};

static size_t naive_encode(uint8_t *out, const uint8_t *cur, const uint8_t *prev, size_t len)
{
	size_t k = 0;

	for (size_t i = 0; i < len; i++) {
		if (cur[i] != prev[i]) {
			out[k++] = (uint8_t)i;
			out[k++] = (uint8_t)(i >> 8);
			out[k++] = cur[i] ^ prev[i];
		}
	}
	return k;
}

static int naive_decode(uint8_t *cur, const uint8_t *prev, size_t len, const uint8_t *enc,
			size_t enc_len)
{
	if (enc_len % 3)
		return -EINVAL;
	if (cur != prev)
		memcpy(cur, prev, len);
	for (size_t k = 0; k < enc_len; k += 3) {
		size_t off = enc[k] | (size_t)enc[k + 1] << 8;

		if (off >= len)
			return -EINVAL;
		cur[off] ^= enc[k + 2];
	}
	return 0;
}

static void enc_ours(void *p, uint64_t iters)
{
	struct delta_ctx *d = p;
	unsigned pg = d->page;
	size_t n = 0;

	for (uint64_t i = 0; i < iters; i++) {
		pg = (pg + 1) % NPAGES;
		n += rp_delta_encode_ver(d->enc, d->cap, d->cur + pg * PAGE, d->prev + pg * PAGE,
					 PAGE, d->ver);
		rp_bench_clobber();
	}
	d->page = pg;
	rp_bench_sink = n;
}

static void enc_naive(void *p, uint64_t iters)
{
	struct delta_ctx *d = p;
	unsigned pg = d->page;
	size_t n = 0;

	for (uint64_t i = 0; i < iters; i++) {
		pg = (pg + 1) % NPAGES;
		n += naive_encode(d->enc, d->cur + pg * PAGE, d->prev + pg * PAGE, PAGE);
		rp_bench_clobber();
	}
	d->page = pg;
	rp_bench_sink = n;
}

static void dec_ours(void *p, uint64_t iters)
{
	struct delta_ctx *d = p;
	unsigned pg = d->page;
	int err = 0;

	for (uint64_t i = 0; i < iters; i++) {
		pg = (pg + 1) % NPAGES;
		err |= rp_delta_decode(d->out, d->prev + pg * PAGE, PAGE, d->enc + pg * d->cap,
				       d->enc_len[pg]);
		rp_bench_clobber();
	}
	d->page = pg;
	d->err |= err;
	rp_bench_sink = d->out[0];
}

static void dec_naive(void *p, uint64_t iters)
{
	struct delta_ctx *d = p;
	unsigned pg = d->page;
	int err = 0;

	for (uint64_t i = 0; i < iters; i++) {
		pg = (pg + 1) % NPAGES;
		err |= naive_decode(d->out, d->prev + pg * PAGE, PAGE, d->enc + pg * d->cap,
				    d->enc_len[pg]);
		rp_bench_clobber();
	}
	d->page = pg;
	d->err |= err;
	rp_bench_sink = d->out[0];
}

static void dec_ours_inplace(void *p, uint64_t iters)
{
	struct delta_ctx *d = p;
	unsigned pg = d->page;
	int err = 0;

	for (uint64_t i = 0; i < iters; i++) {
		uint8_t *w;

		pg = (pg + 1) % NPAGES;
		w = d->work + pg * PAGE;
		err |= rp_delta_decode(w, w, PAGE, d->enc + pg * d->cap, d->enc_len[pg]);
		d->flips[pg]++;
		rp_bench_clobber();
	}
	d->page = pg;
	d->err |= err;
	rp_bench_sink = d->work[0];
}

static void dec_naive_inplace(void *p, uint64_t iters)
{
	struct delta_ctx *d = p;
	unsigned pg = d->page;
	int err = 0;

	for (uint64_t i = 0; i < iters; i++) {
		uint8_t *w;

		pg = (pg + 1) % NPAGES;
		w = d->work + pg * PAGE;
		err |= naive_decode(w, w, PAGE, d->enc + pg * d->cap, d->enc_len[pg]);
		d->flips[pg]++;
		rp_bench_clobber();
	}
	d->page = pg;
	d->err |= err;
	rp_bench_sink = d->work[0];
}

/* What a receiver without a delta does: copy the whole page. */
static void page_memcpy(void *p, uint64_t iters)
{
	struct delta_ctx *d = p;
	unsigned pg = d->page;

	for (uint64_t i = 0; i < iters; i++) {
		pg = (pg + 1) % NPAGES;
		memcpy(d->out, d->cur + pg * PAGE, PAGE);
		rp_bench_clobber();
	}
	d->page = pg;
	rp_bench_sink = d->out[0];
}

/* Each in-place page holds cur after an odd number of decodes, else prev. */
static bool inplace_ok(const struct delta_ctx *d)
{
	if (d->err)
		return false;
	for (unsigned pg = 0; pg < NPAGES; pg++) {
		const uint8_t *want = (d->flips[pg] & 1) ? d->cur : d->prev;

		if (memcmp(d->work + pg * PAGE, want + pg * PAGE, PAGE))
			return false;
	}
	return true;
}

/* ---- the suite ---- */

struct bufs {
	uint8_t *data;	   /* CRC input, XOR input a */
	uint8_t *b;	   /* XOR input b */
	uint8_t *dst;	   /* XOR output */
	uint8_t *ref;	   /* XOR reference output */
	/* delta, per density: NPAGES pages of each, NPAGES encodings enc_cap apart */
	uint8_t *prev[NPCTS], *cur[NPCTS];
	uint8_t *enc_ours[NPCTS], *enc_naive[NPCTS], *enc_v2[NPCTS];
	size_t enc_ours_len[NPCTS][NPAGES], enc_naive_len[NPCTS][NPAGES], enc_v2_len[NPCTS][NPAGES];
	unsigned changed[NPCTS]; /* per page */
	uint8_t *scratch;	 /* encode output while timed */
	uint8_t *out_ours, *out_naive;
	uint8_t *work_ours, *work_naive; /* in-place decode: NPAGES pages each */
	size_t enc_cap;
};

static int check_crc(const struct bufs *B)
{
	static const char check[] = "123456789";
	uint32_t kat = rp_crc32c(0, check, 9);

	if (kat != 0xE3069283u) {
		fprintf(stderr, "simd: rp_crc32c(0, \"123456789\", 9) = 0x%08x, want 0xe3069283 (%s)\n",
			kat, rp_simd_backend());
		return -EBADMSG;
	}
	for (size_t i = 0; i < NSIZES; i++) {
		size_t n = sizes[i];
		uint32_t ours = rp_crc32c(0, B->data, n);
		uint32_t ref = rp_crc32c_scalar(0, B->data, n);

		if (ours != ref) {
			fprintf(stderr, "simd: rp_crc32c over %zu B = 0x%08x, scalar reference 0x%08x\n",
				n, ours, ref);
			return -EBADMSG;
		}
#ifdef RP_HAVE_ISAL
		/* crc32_iscsi neither inverts the seed nor the result. */
		uint32_t isal = ~crc32_iscsi(B->data, (int)n, 0xFFFFFFFFu);

		if (ours != isal) {
			fprintf(stderr, "simd: rp_crc32c over %zu B = 0x%08x, ISA-L crc32_iscsi 0x%08x\n",
				n, ours, isal);
			return -EBADMSG;
		}
#endif
	}
	return 0;
}

static int check_xor(struct bufs *B)
{
	for (size_t i = 0; i < NSIZES; i++) {
		size_t n = sizes[i];

		rp_xor_scalar(B->ref, B->data, B->b, n);
		memset(B->dst, 0, n);
		rp_xor(B->dst, B->data, B->b, n);
		if (memcmp(B->dst, B->ref, n)) {
			fprintf(stderr, "simd: rp_xor over %zu B differs from the scalar reference\n", n);
			return -EBADMSG;
		}
#ifdef RP_HAVE_ISAL
		void *vec[3] = { B->data, B->b, B->dst };
		int rc;

		memset(B->dst, 0, n);
		rc = xor_gen(3, (int)n, vec);
		if (rc || memcmp(B->dst, B->ref, n)) {
			fprintf(stderr, "simd: ISA-L xor_gen over %zu B %s\n", n,
				rc ? "failed" : "differs from rp_xor_scalar");
			return -EBADMSG;
		}
#endif
	}
	return 0;
}

/* A random @prev, and @cur = @prev with @changed bytes at distinct random
 * positions changed by a non-zero XOR. */
static void make_page(uint8_t *cur, uint8_t *prev, unsigned changed, uint64_t *seed)
{
	static uint16_t pos[PAGE];

	fill_random(prev, PAGE, seed);
	memcpy(cur, prev, PAGE);
	for (unsigned i = 0; i < PAGE; i++)
		pos[i] = (uint16_t)i;
	/* partial Fisher-Yates: the first @changed entries are a random subset */
	for (unsigned i = 0; i < changed; i++) {
		unsigned j = i + (unsigned)(rng_next(seed) % (PAGE - i));
		uint16_t t = pos[i];
		uint8_t x;

		pos[i] = pos[j];
		pos[j] = t;
		do
			x = (uint8_t)rng_next(seed);
		while (!x);
		cur[pos[i]] ^= x;
	}
}

/* Builds NPAGES pages per density, encodes each both ways and checks that
 * each encoding decodes back to its page. */
static int prepare_delta(struct bufs *B, uint64_t *seed)
{
	for (size_t k = 0; k < NPCTS; k++) {
		unsigned changed = (PAGE * delta_pcts[k] + 50) / 100;

		B->changed[k] = changed;
		for (unsigned pg = 0; pg < NPAGES; pg++) {
			uint8_t *cur = B->cur[k] + pg * PAGE, *prev = B->prev[k] + pg * PAGE;
			uint8_t *eo = B->enc_ours[k] + pg * B->enc_cap;
			uint8_t *en = B->enc_naive[k] + pg * B->enc_cap;
			size_t n;

			make_page(cur, prev, changed, seed);
			/* The "delta" rows are v1's, the "delta v2" rows v2's. */
			n = rp_delta_encode_ver(eo, B->enc_cap, cur, prev, PAGE, RP_DELTA_V1);
			memset(B->out_ours, 0, PAGE);
			if (!n || rp_delta_decode(B->out_ours, prev, PAGE, eo, n) ||
			    memcmp(B->out_ours, cur, PAGE)) {
				fprintf(stderr,
					"simd: v1 delta does not round-trip at %u%% changed (encoded %zu B)\n",
					delta_pcts[k], n);
				return -EBADMSG;
			}
			B->enc_ours_len[k][pg] = n;

			n = rp_delta_encode_ver(B->enc_v2[k] + pg * B->enc_cap, B->enc_cap, cur,
						prev, PAGE, RP_DELTA_V2);
			memset(B->out_ours, 0, PAGE);
			if (!n ||
			    rp_delta_decode(B->out_ours, prev, PAGE, B->enc_v2[k] + pg * B->enc_cap,
					    n) ||
			    memcmp(B->out_ours, cur, PAGE)) {
				fprintf(stderr,
					"simd: v2 delta does not round-trip at %u%% changed "
					"(encoded %zu B)\n",
					delta_pcts[k], n);
				return -EBADMSG;
			}
			B->enc_v2_len[k][pg] = n;

			n = naive_encode(en, cur, prev, PAGE);
			memset(B->out_naive, 0, PAGE);
			if (naive_decode(B->out_naive, prev, PAGE, en, n) ||
			    memcmp(B->out_naive, cur, PAGE)) {
				fprintf(stderr,
					"simd: the naive delta baseline does not round-trip at %u%%\n",
					delta_pcts[k]);
				return -EBADMSG;
			}
			B->enc_naive_len[k][pg] = n;
		}
	}
	return 0;
}

static void *xalloc(size_t n, bool *fail)
{
	void *p = aligned_alloc(ALIGN, (n + ALIGN - 1) / ALIGN * ALIGN);

	if (!p)
		*fail = true;
	return p;
}

static void free_bufs(struct bufs *B)
{
	free(B->data);
	free(B->b);
	free(B->dst);
	free(B->ref);
	free(B->scratch);
	free(B->out_ours);
	free(B->out_naive);
	free(B->work_ours);
	free(B->work_naive);
	for (size_t k = 0; k < NPCTS; k++) {
		free(B->prev[k]);
		free(B->cur[k]);
		free(B->enc_ours[k]);
		free(B->enc_naive[k]);
		free(B->enc_v2[k]);
	}
}

static void run_crc(const struct rp_bench_opts *opts, struct bufs *B)
{
	struct rp_bench_timing t;
	char sz[32], name[64];

#ifdef RP_HAVE_ISAL
	for (size_t i = 0; i < NSIZES; i++) {
		struct crc_ctx o = { B->data, sizes[i], 0 }, b = { B->data, sizes[i], 0 };

		rp_bench_size_name(sz, sizeof(sz), sizes[i]);
		snprintf(name, sizeof(name), "crc32c %s", sz);
		rp_bench_compare(opts, crc_ours, &o, crc_isal, &b, &t);
		rp_bench_row_gbps(name, (double)sizes[i], &t, "isa-l crc32_iscsi");
	}
#else
	rp_report_skip("crc32c vs isa-l", "ISA-L was not found at build time (libisal-dev)");
#endif
	for (size_t i = 0; i < NSIZES; i++) {
		struct crc_ctx o = { B->data, sizes[i], 0 }, b = { B->data, sizes[i], 0 };

		rp_bench_size_name(sz, sizeof(sz), sizes[i]);
		snprintf(name, sizeof(name), "crc32c scalar %s", sz);
		rp_bench_compare(opts, crc_ours, &o, crc_scalar, &b, &t);
		rp_bench_row_gbps(name, (double)sizes[i], &t, "ringplane-scalar");
	}
}

static void run_xor(const struct rp_bench_opts *opts, struct bufs *B)
{
	struct rp_bench_timing t;
	char sz[32], name[64];

#ifdef RP_HAVE_ISAL
	for (size_t i = 0; i < NSIZES; i++) {
		struct xor_ctx x = { B->dst, B->data, B->b, sizes[i] };

		rp_bench_size_name(sz, sizeof(sz), sizes[i]);
		snprintf(name, sizeof(name), "xor %s", sz);
		rp_bench_compare(opts, xor_ours, &x, xor_isal, &x, &t);
		rp_bench_row_gbps(name, (double)sizes[i], &t, "isa-l xor_gen");
	}
#else
	rp_report_skip("xor vs isa-l", "ISA-L was not found at build time (libisal-dev)");
#endif
	for (size_t i = 0; i < NSIZES; i++) {
		struct xor_ctx x = { B->dst, B->data, B->b, sizes[i] };

		rp_bench_size_name(sz, sizeof(sz), sizes[i]);
		snprintf(name, sizeof(name), "xor scalar %s", sz);
		rp_bench_compare(opts, xor_ours, &x, xor_scalar, &x, &t);
		rp_bench_row_gbps(name, (double)sizes[i], &t, "ringplane-scalar");
	}
}

/*
 * The same pages in format v2 (rp_delta_encode_ver): encode, and decode in
 * place against the naive decoder and (at 1%) against a page memcpy. v2
 * exists for the in-place decode: its entries do not chain.
 */
static int run_delta_v2(const struct rp_bench_opts *opts, struct bufs *B, size_t k)
{
	struct delta_ctx eo = { .cur = B->cur[k], .prev = B->prev[k], .enc = B->scratch,
				.cap = B->enc_cap, .ver = RP_DELTA_V2 };
	struct delta_ctx en = eo;
	struct delta_ctx dv = { .cur = B->cur[k], .prev = B->prev[k], .enc = B->enc_v2[k],
				.cap = B->enc_cap, .enc_len = B->enc_v2_len[k],
				.out = B->out_ours, .work = B->work_ours };
	struct delta_ctx dn = { .cur = B->cur[k], .prev = B->prev[k], .enc = B->enc_naive[k],
				.cap = B->enc_cap, .enc_len = B->enc_naive_len[k],
				.out = B->out_naive, .work = B->work_naive };
	struct rp_bench_timing t;
	char name[64];
	size_t sv = 0;

	for (unsigned pg = 0; pg < NPAGES; pg++)
		sv += B->enc_v2_len[k][pg];
	rp_report_note("delta v2 %u%%: encoded %.0f B (%.1f%% of the page), mean of %u pages",
		       delta_pcts[k], (double)sv / NPAGES, 100.0 * (double)sv / (NPAGES * PAGE),
		       NPAGES);
	snprintf(name, sizeof(name), "delta v2 encode %u%%", delta_pcts[k]);
	rp_bench_compare(opts, enc_ours, &eo, enc_naive, &en, &t);
	rp_bench_row_gbps(name, PAGE, &t, "naive-bytewise");
	/* The same pages in v1 as the baseline: v2 is the default encoder
	 * only while it keeps up with v1 (issue 9 asks for >= 0.9x). */
	en.ver = RP_DELTA_V1;
	snprintf(name, sizeof(name), "delta v2 encode vs v1 %u%%", delta_pcts[k]);
	rp_bench_compare(opts, enc_ours, &eo, enc_ours, &en, &t);
	rp_bench_row_gbps(name, PAGE, &t, "ringplane v1 encode");

	memcpy(B->work_ours, B->prev[k], NPAGES * PAGE);
	memcpy(B->work_naive, B->prev[k], NPAGES * PAGE);
	snprintf(name, sizeof(name), "delta v2 decode %u%%", delta_pcts[k]);
	rp_bench_compare(opts, dec_ours_inplace, &dv, dec_naive_inplace, &dn, &t);
	if (!inplace_ok(&dv) || !inplace_ok(&dn)) {
		fprintf(stderr, "simd: in-place v2 delta decode went wrong while timed at %u%%\n",
			delta_pcts[k]);
		return -EBADMSG;
	}
	rp_bench_row_gbps(name, PAGE, &t, "naive-bytewise");
	if (k == 0) {
		struct delta_ctx mc = { .cur = B->cur[k], .out = B->out_naive };

		memset(dv.flips, 0, sizeof(dv.flips));
		memcpy(B->work_ours, B->prev[k], NPAGES * PAGE);
		snprintf(name, sizeof(name), "delta v2 decode in place %u%%", delta_pcts[k]);
		rp_bench_compare(opts, dec_ours_inplace, &dv, page_memcpy, &mc, &t);
		if (!inplace_ok(&dv)) {
			fprintf(stderr, "simd: in-place v2 delta decode went wrong while timed\n");
			return -EBADMSG;
		}
		rp_bench_row_gbps(name, PAGE, &t, "memcpy 4KB page");
	}
	return 0;
}

static int run_delta(const struct rp_bench_opts *opts, struct bufs *B)
{
	struct rp_bench_timing t;
	char name[64];

	rp_report_note("delta rows: format v1 (RP_DELTA_V1, for receivers built before v2); "
		       "delta v2 rows: v2, what rp_delta_encode() writes");
	for (size_t k = 0; k < NPCTS; k++) {
		struct delta_ctx eo = { .cur = B->cur[k], .prev = B->prev[k], .enc = B->scratch,
					.cap = B->enc_cap, .ver = RP_DELTA_V1 };
		struct delta_ctx en = eo;
		struct delta_ctx dout = { .cur = B->cur[k], .prev = B->prev[k],
					  .enc = B->enc_ours[k],
					  .cap = B->enc_cap, .enc_len = B->enc_ours_len[k],
					  .out = B->out_ours };
		struct delta_ctx dn = { .cur = B->cur[k], .prev = B->prev[k],
					.enc = B->enc_naive[k],
					.cap = B->enc_cap, .enc_len = B->enc_naive_len[k],
					.out = B->out_naive };
		size_t so = 0, sn = 0;

		for (unsigned pg = 0; pg < NPAGES; pg++) {
			so += B->enc_ours_len[k][pg];
			sn += B->enc_naive_len[k][pg];
		}
		rp_report_note("delta %u%%: %u bytes changed per page; encoded ringplane %.0f B (%.1f%% of the page), naive %.0f B (%.1f%%), mean of %u pages",
			       delta_pcts[k], B->changed[k], (double)so / NPAGES,
			       100.0 * (double)so / (NPAGES * PAGE), (double)sn / NPAGES,
			       100.0 * (double)sn / (NPAGES * PAGE), NPAGES);

		snprintf(name, sizeof(name), "delta encode %u%%", delta_pcts[k]);
		rp_bench_compare(opts, enc_ours, &eo, enc_naive, &en, &t);
		rp_bench_row_gbps(name, PAGE, &t, "naive-bytewise");

		/* In place: the receiver's own page (cur == prev). */
		memcpy(B->work_ours, B->prev[k], NPAGES * PAGE);
		memcpy(B->work_naive, B->prev[k], NPAGES * PAGE);
		dout.work = B->work_ours;
		dn.work = B->work_naive;
		snprintf(name, sizeof(name), "delta decode %u%%", delta_pcts[k]);
		rp_bench_compare(opts, dec_ours_inplace, &dout, dec_naive_inplace, &dn, &t);
		if (!inplace_ok(&dout) || !inplace_ok(&dn)) {
			fprintf(stderr,
				"simd: in-place delta decode went wrong while timed at %u%%\n",
				delta_pcts[k]);
			return -EBADMSG;
		}
		rp_bench_row_gbps(name, PAGE, &t, "naive-bytewise");

		if (k == 0) {
			/* Against copying the page whole: what the delta saves the receiver. */
			struct delta_ctx mc = { .cur = B->cur[k], .out = B->out_naive };

			memset(dout.flips, 0, sizeof(dout.flips));
			memcpy(B->work_ours, B->prev[k], NPAGES * PAGE);
			snprintf(name, sizeof(name), "delta decode in place %u%%", delta_pcts[k]);
			rp_bench_compare(opts, dec_ours_inplace, &dout, page_memcpy, &mc, &t);
			if (!inplace_ok(&dout)) {
				fprintf(stderr,
					"simd: in-place delta decode went wrong while timed\n");
				return -EBADMSG;
			}
			rp_bench_row_gbps(name, PAGE, &t, "memcpy 4KB page");
		}

		/* Into a separate buffer (prev kept): both sides copy the page first. */
		snprintf(name, sizeof(name), "delta decode copy %u%%", delta_pcts[k]);
		rp_bench_compare(opts, dec_ours, &dout, dec_naive, &dn, &t);
		/* What each side decoded last must still be that page. */
		if (dout.err || dn.err ||
		    memcmp(B->out_ours, B->cur[k] + dout.page * PAGE, PAGE) ||
		    memcmp(B->out_naive, B->cur[k] + dn.page * PAGE, PAGE)) {
			fprintf(stderr, "simd: delta decode went wrong while timed at %u%%\n",
				delta_pcts[k]);
			return -EBADMSG;
		}
		rp_bench_row_gbps(name, PAGE, &t, "naive-bytewise");

		if (run_delta_v2(opts, B, k))
			return -EBADMSG;
	}
	return 0;
}

int rp_bench_suite_simd(const struct rp_bench_opts *opts)
{
	struct bufs B = { 0 };
	uint64_t seed = 0x52494e47504c414eull; /* "RINGPLAN" */
	bool fail = false;
	int ret;

	B.data = xalloc(BUF_MAX, &fail);
	B.b = xalloc(BUF_MAX, &fail);
	B.dst = xalloc(BUF_MAX, &fail);
	B.ref = xalloc(BUF_MAX, &fail);
	B.out_ours = xalloc(PAGE, &fail);
	B.out_naive = xalloc(PAGE, &fail);
	B.work_ours = xalloc(NPAGES * PAGE, &fail);
	B.work_naive = xalloc(NPAGES * PAGE, &fail);
	/* room for ours (rp_delta_bound) and the naive 3 bytes per change */
	B.enc_cap = rp_delta_bound(PAGE) > 3 * PAGE ? rp_delta_bound(PAGE) : 3 * PAGE;
	B.scratch = xalloc(B.enc_cap, &fail);
	for (size_t k = 0; k < NPCTS; k++) {
		B.prev[k] = xalloc(NPAGES * PAGE, &fail);
		B.cur[k] = xalloc(NPAGES * PAGE, &fail);
		B.enc_ours[k] = xalloc(NPAGES * B.enc_cap, &fail);
		B.enc_naive[k] = xalloc(NPAGES * B.enc_cap, &fail);
		B.enc_v2[k] = xalloc(NPAGES * B.enc_cap, &fail);
	}
	if (fail) {
		fprintf(stderr, "simd: out of memory for the benchmark buffers\n");
		ret = -ENOMEM;
		goto out;
	}
	fill_random(B.data, BUF_MAX, &seed);
	fill_random(B.b, BUF_MAX, &seed);

	rp_report_note("kernels: %s", rp_simd_backend());
	ret = check_crc(&B);
	if (!ret)
		ret = check_xor(&B);
	if (!ret)
		ret = prepare_delta(&B, &seed);
	if (ret) {
		fprintf(stderr, "simd: a kernel disagrees with its reference; nothing timed\n");
		goto out;
	}
	rp_report_note("checked: crc32c and xor match %s at every size; delta round-trips",
#ifdef RP_HAVE_ISAL
		       "the scalar reference and ISA-L"
#else
		       "the scalar reference"
#endif
	);

	run_crc(opts, &B);
	run_xor(opts, &B);
	ret = run_delta(opts, &B);
out:
	free_bufs(&B);
	return ret;
}
