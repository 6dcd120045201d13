/* SPDX-License-Identifier: MIT */
/*
 * SPSC ring (layout and thread rules in include/ringplane/spsc.h, the
 * ring's layout, memory ordering and fast paths in spsc_inline.h).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* This file defines the functions the header's macros stand for. */
#define RP_SPSC_NO_INLINE 1
#include <ringplane/spsc.h>

#ifndef RP_SPSC_HAVE_INLINE
#error "lockfree/spsc.c needs the GNU C layout in ringplane/spsc_inline.h"
#endif

#define RP_CACHELINE RP_SPSC_CACHELINE_

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
	/* Every slot starts empty (NULL). */
	for (uint32_t i = 0; i < capacity; i++)
		atomic_init(&r->slots[i], NULL);
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
	/* Each index is stored after its side's slot accesses, relaxed: a
	 * snapshot, exact on either side while the other is idle. The
	 * difference of two snapshots can briefly exceed the capacity or go
	 * negative mid-call; clamp it. */
	uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint32_t n = t - h;

	if (n > r->capacity)
		n = (int32_t)n < 0 ? 0 : r->capacity;
	return n;
}

bool rp_spsc_empty(const struct rp_spsc *r)
{
	return rp_spsc_empty_inline(r);
}

bool rp_spsc_push(struct rp_spsc *r, void *item)
{
	return rp_spsc_push_inline(r, item);
}

void *rp_spsc_pop(struct rp_spsc *r)
{
	return rp_spsc_pop_inline(r);
}

unsigned rp_spsc_push_burst(struct rp_spsc *r, void *const *items, unsigned n)
{
	return rp_spsc_push_burst_inline(r, items, n);
}

unsigned rp_spsc_pop_burst(struct rp_spsc *r, void **items, unsigned n)
{
	return rp_spsc_pop_burst_inline(r, items, n);
}
