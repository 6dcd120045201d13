/* SPDX-License-Identifier: MIT */
/*
 * ringplane spsc: the ring's layout and inline push/pop paths. Included by
 * ringplane/spsc.h; not a header to include on its own.
 *
 * The slots themselves say which side owns them (FastForward, Giacomoni
 * et al., PPoPP 2008): an empty slot holds NULL, a full one an item.
 * Neither side reads the other's index on the fast path:
 *  - the producer may fill slot[tail] once it reads NULL there, and the
 *    consumer empties slots in order, so one NULL at slot[tail + k - 1]
 *    says the k slots from tail are all free;
 *  - the consumer may take slot[head] once it reads an item there, then
 *    stores NULL to hand the slot back.
 * Only the slot lines move between the cores, and a line of eight slots
 * moves once per eight items when the sides are a line or more apart;
 * an index-based ring also moves an index line per item whenever it is
 * near empty or near full (measured: 4-7x the single-item throughput of
 * one with cached indices, on the dev host).
 *
 * Memory ordering, the whole of it:
 *  - pair A: the producer writes an item into a slot with release; the
 *    consumer reads the slot with acquire, so what the producer wrote
 *    before pushing is visible to the consumer;
 *  - pair B: the consumer stores NULL with release; the producer reads
 *    NULL with acquire before refilling the slot, so what the consumer did
 *    before popping happens before the producer's next use of that slot,
 *    as with an index-based ring.
 * Per-slot release/acquire rather than one fence per burst: the same
 * plain moves on x86, and ThreadSanitizer checks it (it does not model
 * fences).
 * tail and head are each written by their own side only (relaxed, on the
 * side's own line) and read by rp_spsc_count; the push and pop paths
 * never load the other side's index.
 *
 * The layout is ABI once a caller inlines these (the soname carries the
 * project version). Define RP_SPSC_NO_INLINE before including
 * ringplane/spsc.h to call the exported functions instead.
 */
#ifndef RINGPLANE_SPSC_INLINE_H
#define RINGPLANE_SPSC_INLINE_H

#if !defined(RINGPLANE_SPSC_H)
#error "include <ringplane/spsc.h>, not <ringplane/spsc_inline.h>"
#endif

/* C11 atomics and GNU builtins: not for C++ or other compilers, which get
 * the exported functions. */
#if defined(__GNUC__) && !defined(__cplusplus)
#define RP_SPSC_HAVE_INLINE 1

#include <stdatomic.h>
#include <stddef.h>

#define RP_SPSC_CACHELINE_ 64

struct rp_spsc {
	/* Producer's line. */
	_Alignas(RP_SPSC_CACHELINE_) _Atomic uint32_t tail; /* next slot to fill */
	uint32_t pmask;
	_Atomic(void *) *pslots;
	/* Consumer's line. */
	_Alignas(RP_SPSC_CACHELINE_) _Atomic uint32_t head; /* next slot to drain */
	uint32_t cmask;
	_Atomic(void *) *cslots;
	/* Read-only after create, on a line neither side writes. */
	_Alignas(RP_SPSC_CACHELINE_) uint32_t capacity;
	_Alignas(RP_SPSC_CACHELINE_) _Atomic(void *) slots[];
};

/* rp_spsc_push, inline. */
static inline __attribute__((always_inline)) bool rp_spsc_push_inline(struct rp_spsc *r,
								      void *item)
{
	uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	_Atomic(void *) *s = &r->pslots[t & r->pmask];

	/* Pair B: the consumer is done with this slot. */
	if (atomic_load_explicit(s, memory_order_acquire))
		return false; /* full */
	/* Pair A: publish the item. */
	atomic_store_explicit(s, item, memory_order_release);
	atomic_store_explicit(&r->tail, t + 1, memory_order_relaxed);
	return true;
}

/* rp_spsc_pop, inline. */
static inline __attribute__((always_inline)) void *rp_spsc_pop_inline(struct rp_spsc *r)
{
	uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	_Atomic(void *) *s = &r->cslots[h & r->cmask];
	/* Pair A: the producer's writes before the push are visible. */
	void *item = atomic_load_explicit(s, memory_order_acquire);

	if (!item)
		return NULL; /* empty */
	/* Pair B: hand the slot back. */
	atomic_store_explicit(s, NULL, memory_order_release);
	atomic_store_explicit(&r->head, h + 1, memory_order_relaxed);
	return item;
}

/* rp_spsc_empty, inline: the consumer's view (one load of its next slot). */
static inline __attribute__((always_inline)) bool rp_spsc_empty_inline(const struct rp_spsc *r)
{
	uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);

	return !atomic_load_explicit(&r->cslots[h & r->cmask], memory_order_relaxed);
}

/* rp_spsc_push_burst, inline: one load when the ring has room for all
 * @n, a scan of the free run otherwise. */
static inline __attribute__((always_inline)) unsigned
rp_spsc_push_burst_inline(struct rp_spsc *r, void *const *items, unsigned n)
{
	uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint32_t m = r->pmask;
	_Atomic(void *) *s = r->pslots;

	if (__builtin_expect(n > m + 1, 0))
		n = m + 1;
	if (__builtin_expect(!n, 0))
		return 0;
	/* Free slots form one run from tail; if its last wanted slot is
	 * free, all are. Otherwise take the free run's length.
	 * Pair B: the consumer cleared the slots in order, each with release,
	 * so acquiring the last NULL covers the slots before it. */
	if (__builtin_expect(atomic_load_explicit(&s[(t + n - 1) & m], memory_order_acquire) != NULL,
			     0)) {
		unsigned k = 0;

		while (k < n && !atomic_load_explicit(&s[(t + k) & m], memory_order_acquire))
			k++;
		n = k;
		if (!n)
			return 0;
	}
	/* Pair A: publish each item. */
	for (unsigned k = 0; k < n; k++)
		atomic_store_explicit(&s[(t + k) & m], items[k], memory_order_release);
	atomic_store_explicit(&r->tail, t + n, memory_order_relaxed);
	return n;
}

/* rp_spsc_pop_burst, inline: reads the full run from head, up to @n. */
static inline __attribute__((always_inline)) unsigned rp_spsc_pop_burst_inline(struct rp_spsc *r,
									       void **items,
									       unsigned n)
{
	uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint32_t m = r->cmask;
	_Atomic(void *) *s = r->cslots;
	unsigned k;

	if (__builtin_expect(n > m + 1, 0))
		n = m + 1;
	for (k = 0; k < n; k++) {
		/* Pair A: the producer's writes before this push are visible. */
		void *p = atomic_load_explicit(&s[(h + k) & m], memory_order_acquire);

		if (!p)
			break;
		items[k] = p;
	}
	if (!k)
		return 0;
	/* Pair B: hand the slots back, in order. */
	for (unsigned j = 0; j < k; j++)
		atomic_store_explicit(&s[(h + j) & m], NULL, memory_order_release);
	atomic_store_explicit(&r->head, h + k, memory_order_relaxed);
	return k;
}

#if !defined(RP_SPSC_NO_INLINE)
/* The exported functions stay (take their address, or call (rp_spsc_pop)(...)). */
#define rp_spsc_push(r, item) rp_spsc_push_inline((r), (item))
#define rp_spsc_pop(r) rp_spsc_pop_inline((r))
#define rp_spsc_empty(r) rp_spsc_empty_inline((r))
#define rp_spsc_push_burst(r, items, n) rp_spsc_push_burst_inline((r), (items), (n))
#define rp_spsc_pop_burst(r, items, n) rp_spsc_pop_burst_inline((r), (items), (n))
#endif

#endif /* __GNUC__ && !__cplusplus */
#endif /* RINGPLANE_SPSC_INLINE_H */
