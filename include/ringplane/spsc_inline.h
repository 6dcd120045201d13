/* SPDX-License-Identifier: MIT */
/*
 * ringplane spsc: the ring's layout and inline push/pop paths. Included by
 * ringplane/spsc.h; not a header to include on its own.
 *
 * The calls are a handful of instructions around one release store (and,
 * only when the cached view of the other index runs out, one acquire
 * load). The layout is ABI once a caller inlines them (the soname carries
 * the project version).
 *
 * Memory ordering, the whole of it:
 *  - the producer writes slots, then store-releases tail; the consumer
 *    load-acquires tail before reading those slots (pairs A);
 *  - the consumer reads slots, then store-releases head; the producer
 *    load-acquires head before overwriting those slots (pairs B).
 * A side's own index is only written by that side, so it reads it relaxed.
 *
 * Define RP_SPSC_NO_INLINE before including ringplane/spsc.h to call the
 * exported functions instead.
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
#include <string.h>

#define RP_SPSC_CACHELINE_ 64

struct rp_spsc {
	/* Producer's line. */
	_Alignas(RP_SPSC_CACHELINE_) _Atomic uint32_t tail;
	uint32_t head_cache; /* producer's last view of head */
	uint32_t pmask;
	void **pslots;
	/* Consumer's line. */
	_Alignas(RP_SPSC_CACHELINE_) _Atomic uint32_t head;
	uint32_t tail_cache; /* consumer's last view of tail */
	uint32_t cmask;
	void **cslots;
	/* Read-only after create, on a line neither side writes. */
	_Alignas(RP_SPSC_CACHELINE_) uint32_t capacity;
	_Alignas(RP_SPSC_CACHELINE_) void *slots[];
};

/* rp_spsc_push, inline. */
static inline __attribute__((always_inline)) bool rp_spsc_push_inline(struct rp_spsc *r,
								      void *item)
{
	uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);

	if (__builtin_expect(t - r->head_cache > r->pmask, 0)) {
		/* Pairs B: the consumer is done reading slots before head. */
		r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
		if (t - r->head_cache > r->pmask)
			return false;
	}
	r->pslots[t & r->pmask] = item;
	/* Pairs A: publish the slot. */
	atomic_store_explicit(&r->tail, t + 1, memory_order_release);
	return true;
}

/* rp_spsc_pop, inline. */
static inline __attribute__((always_inline)) void *rp_spsc_pop_inline(struct rp_spsc *r)
{
	uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	void *item;

	/* The cached tail still shows items: no load of the producer's line. */
	if (__builtin_expect(r->tail_cache == h, 0)) {
		/* Pairs A: slots before tail are written. */
		r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
		if (r->tail_cache == h)
			return NULL;
	}
	item = r->cslots[h & r->cmask];
	/* Pairs B: hand the slot back. */
	atomic_store_explicit(&r->head, h + 1, memory_order_release);
	return item;
}

/* rp_spsc_push_burst, inline: at most one acquire load (only when the
 * cached head shows too little room) and one release store. */
static inline __attribute__((always_inline)) unsigned
rp_spsc_push_burst_inline(struct rp_spsc *r, void *const *items, unsigned n)
{
	uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint32_t cap = r->pmask + 1;
	uint32_t room = cap - (t - r->head_cache);
	uint32_t i, first;

	if (__builtin_expect(room < n, 0)) {
		/* Pairs B: the consumer is done reading slots before head. */
		r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
		room = cap - (t - r->head_cache);
		if (n > room)
			n = room;
		if (!n)
			return 0;
	}
	/* Two contiguous pieces at most: up to the end of the slots, then
	 * from the start. */
	i = t & r->pmask;
	first = cap - i;
	if (__builtin_expect(n <= first, 1)) {
		memcpy(&r->pslots[i], items, (size_t)n * sizeof(void *));
	} else {
		memcpy(&r->pslots[i], items, (size_t)first * sizeof(void *));
		memcpy(&r->pslots[0], items + first, (size_t)(n - first) * sizeof(void *));
	}
	/* Pairs A: publish the slots. */
	atomic_store_explicit(&r->tail, t + n, memory_order_release);
	return n;
}

/* rp_spsc_pop_burst, inline: at most one acquire load (only when the
 * cached tail shows fewer than @n items) and one release store. */
static inline __attribute__((always_inline)) unsigned rp_spsc_pop_burst_inline(struct rp_spsc *r,
									       void **items,
									       unsigned n)
{
	uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint32_t avail = r->tail_cache - h;
	uint32_t i, first;

	if (__builtin_expect(avail < n, 0)) {
		/* Pairs A: slots before tail are written. */
		r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
		avail = r->tail_cache - h;
		if (n > avail)
			n = avail;
		if (!n)
			return 0;
	}
	i = h & r->cmask;
	first = r->cmask + 1 - i;
	if (__builtin_expect(n <= first, 1)) {
		memcpy(items, &r->cslots[i], (size_t)n * sizeof(void *));
	} else {
		memcpy(items, &r->cslots[i], (size_t)first * sizeof(void *));
		memcpy(items + first, &r->cslots[0], (size_t)(n - first) * sizeof(void *));
	}
	/* Pairs B: hand the slots back. */
	atomic_store_explicit(&r->head, h + n, memory_order_release);
	return n;
}

/*
 * Only the bursts are macros. Inline single push/pop measured worse, not
 * better, between two cores: 47-92 -> 18-37 Mops/s on the single-item rows, runs
 * interleaved with the out-of-line build on the dev host (both
 * sides faster keeps the ring near empty, so every item moves the slot and
 * index lines across cores; the call's cost let items gather). Callers
 * who want them inline anyway call rp_spsc_push_inline/rp_spsc_pop_inline.
 */
#if !defined(RP_SPSC_NO_INLINE)
/* The exported functions stay (take their address, or call (rp_spsc_pop_burst)(...)). */
#define rp_spsc_push_burst(r, items, n) rp_spsc_push_burst_inline((r), (items), (n))
#define rp_spsc_pop_burst(r, items, n) rp_spsc_pop_burst_inline((r), (items), (n))
#endif

#endif /* __GNUC__ && !__cplusplus */
#endif /* RINGPLANE_SPSC_INLINE_H */
