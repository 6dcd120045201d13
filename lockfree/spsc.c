/* SPDX-License-Identifier: MIT */
/*
 * SPSC ring (layout and thread rules in include/ringplane/spsc.h).
 *
 * Memory ordering, the whole of it:
 *  - the producer writes slots, then store-releases tail; the consumer
 *    load-acquires tail before reading those slots (pairs A);
 *  - the consumer reads slots, then store-releases head; the producer
 *    load-acquires head before overwriting those slots (pairs B).
 * A side's own index is only written by that side, so it reads it relaxed.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <ringplane/spsc.h>

#define RP_CACHELINE 64

struct rp_spsc {
	/* Producer's line. */
	_Alignas(RP_CACHELINE) _Atomic uint32_t tail;
	uint32_t head_cache; /* producer's last view of head */
	uint32_t pmask;
	void **pslots;
	/* Consumer's line. */
	_Alignas(RP_CACHELINE) _Atomic uint32_t head;
	uint32_t tail_cache; /* consumer's last view of tail */
	uint32_t cmask;
	void **cslots;
	/* Read-only after create, on a line neither side writes. */
	_Alignas(RP_CACHELINE) uint32_t capacity;
	_Alignas(RP_CACHELINE) void *slots[];
};

struct rp_spsc *rp_spsc_create(uint32_t capacity)
{
	struct rp_spsc *r;
	size_t bytes;

	if (capacity < 2 || capacity > (1u << 31) || (capacity & (capacity - 1))) {
		errno = EINVAL;
		return NULL;
	}
	bytes = sizeof(*r) + (size_t)capacity * sizeof(void *);
	bytes = (bytes + RP_CACHELINE - 1) & ~(size_t)(RP_CACHELINE - 1);
	r = aligned_alloc(RP_CACHELINE, bytes);
	if (!r)
		return NULL; /* errno = ENOMEM */
	memset(r, 0, sizeof(*r));
	atomic_init(&r->tail, 0);
	atomic_init(&r->head, 0);
	r->pmask = r->cmask = capacity - 1;
	r->pslots = r->cslots = r->slots;
	r->capacity = capacity;
	return r;
}

void rp_spsc_destroy(struct rp_spsc *r)
{
	free(r);
}

uint32_t rp_spsc_capacity(const struct rp_spsc *r)
{
	return r->capacity;
}

uint32_t rp_spsc_count(const struct rp_spsc *r)
{
	/* Acquire both so a caller that then pops or pushes sees the slots. */
	uint32_t h = atomic_load_explicit(&r->head, memory_order_acquire);
	uint32_t t = atomic_load_explicit(&r->tail, memory_order_acquire);

	return t - h;
}

/* Producer: free slots, refreshing the view of head only when needed. */
static inline uint32_t spsc_free(struct rp_spsc *r, uint32_t t, uint32_t want)
{
	uint32_t cap = r->pmask + 1;
	uint32_t free_slots = cap - (t - r->head_cache);

	if (free_slots < want) {
		/* Pairs B: the consumer is done reading slots before head. */
		r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
		free_slots = cap - (t - r->head_cache);
	}
	return free_slots;
}

/* Consumer: filled slots, refreshing the view of tail only when needed. */
static inline uint32_t spsc_avail(struct rp_spsc *r, uint32_t h, uint32_t want)
{
	uint32_t avail = r->tail_cache - h;

	if (avail < want) {
		/* Pairs A: slots before tail are written. */
		r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
		avail = r->tail_cache - h;
	}
	return avail;
}

bool rp_spsc_push(struct rp_spsc *r, void *item)
{
	uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);

	if (spsc_free(r, t, 1) == 0)
		return false;
	r->pslots[t & r->pmask] = item;
	/* Pairs A: publish the slot. */
	atomic_store_explicit(&r->tail, t + 1, memory_order_release);
	return true;
}

void *rp_spsc_pop(struct rp_spsc *r)
{
	uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	void *item;

	if (spsc_avail(r, h, 1) == 0)
		return NULL;
	item = r->cslots[h & r->cmask];
	/* Pairs B: hand the slot back. */
	atomic_store_explicit(&r->head, h + 1, memory_order_release);
	return item;
}

unsigned rp_spsc_push_burst(struct rp_spsc *r, void *const *items, unsigned n)
{
	uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint32_t room = spsc_free(r, t, n);
	uint32_t mask = r->pmask;

	if (n > room)
		n = room;
	for (unsigned i = 0; i < n; i++)
		r->pslots[(t + i) & mask] = items[i];
	if (n)
		atomic_store_explicit(&r->tail, t + n, memory_order_release); /* pairs A */
	return n;
}

unsigned rp_spsc_pop_burst(struct rp_spsc *r, void **items, unsigned n)
{
	uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint32_t avail = spsc_avail(r, h, n);
	uint32_t mask = r->cmask;

	if (n > avail)
		n = avail;
	for (unsigned i = 0; i < n; i++)
		items[i] = r->cslots[(h + i) & mask];
	if (n)
		atomic_store_explicit(&r->head, h + n, memory_order_release); /* pairs B */
	return n;
}
