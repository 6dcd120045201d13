/* SPDX-License-Identifier: MIT */
/*
 * Bounded MPSC queue (semantics and progress guarantee in
 * include/ringplane/mpsc.h). Ordering:
 *  - producer: load-acquire seq (pairs with the consumer's release that
 *    freed the slot, so the old item was read first), write the item,
 *    store-release seq = t + 1 (pairs with the consumer's acquire);
 *  - consumer: load-acquire seq, read the item, store-release
 *    seq = t + capacity (hands the slot to the ticket one lap later).
 * The tail CAS itself is relaxed: it only arbitrates tickets; the slot's
 * seq carries all the data ordering.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <ringplane/mpsc.h>

#define RP_CACHELINE 64

struct mpsc_slot {
	_Atomic uint64_t seq;
	void *item;
};

struct rp_mpsc {
	_Alignas(RP_CACHELINE) _Atomic uint64_t tail; /* next ticket; producers */
	_Alignas(RP_CACHELINE) uint64_t head;	      /* next ticket; consumer only */
	uint64_t mask;
	_Alignas(RP_CACHELINE) struct mpsc_slot slots[];
};

struct rp_mpsc *rp_mpsc_create(uint32_t capacity)
{
	struct rp_mpsc *q;
	size_t bytes;

	if (capacity < 2 || capacity > (1u << 31) || (capacity & (capacity - 1))) {
		errno = EINVAL;
		return NULL;
	}
	bytes = sizeof(*q) + (size_t)capacity * sizeof(struct mpsc_slot);
	bytes = (bytes + RP_CACHELINE - 1) & ~(size_t)(RP_CACHELINE - 1);
	q = aligned_alloc(RP_CACHELINE, bytes);
	if (!q)
		return NULL;
	memset(q, 0, sizeof(*q));
	atomic_init(&q->tail, 0);
	q->head = 0;
	q->mask = capacity - 1;
	for (uint32_t i = 0; i < capacity; i++) {
		atomic_init(&q->slots[i].seq, i);
		q->slots[i].item = NULL;
	}
	return q;
}

void rp_mpsc_destroy(struct rp_mpsc *q)
{
	free(q);
}

bool rp_mpsc_push(struct rp_mpsc *q, void *item)
{
	uint64_t t;
	struct mpsc_slot *s;

	/* pop's NULL means "nothing": a NULL item would be a published slot
	 * that empty() calls an item and pop() calls nothing */
	if (!item) {
		errno = EINVAL;
		return false;
	}
	t = atomic_load_explicit(&q->tail, memory_order_relaxed);
	for (;;) {
		int64_t diff;

		s = &q->slots[t & q->mask];
		diff = (int64_t)(atomic_load_explicit(&s->seq, memory_order_acquire) - t);
		if (diff == 0) {
			/* On failure t is reloaded with the current tail. */
			if (atomic_compare_exchange_weak_explicit(&q->tail, &t, t + 1,
								  memory_order_relaxed,
								  memory_order_relaxed))
				break;
		} else if (diff < 0) {
			errno = EAGAIN;
			return false; /* the slot still holds the item of t - capacity */
		} else {
			t = atomic_load_explicit(&q->tail, memory_order_relaxed);
		}
	}
	s->item = item;
	atomic_store_explicit(&s->seq, t + 1, memory_order_release);
	return true;
}

void *rp_mpsc_pop(struct rp_mpsc *q)
{
	uint64_t h = q->head;
	struct mpsc_slot *s = &q->slots[h & q->mask];
	void *item;

	if (atomic_load_explicit(&s->seq, memory_order_acquire) != h + 1)
		return NULL; /* empty, or ticket h claimed but not yet published */
	item = s->item;
	atomic_store_explicit(&s->seq, h + q->mask + 1, memory_order_release);
	q->head = h + 1;
	return item;
}

bool rp_mpsc_empty(const struct rp_mpsc *q)
{
	/* acquire: as in pop, a true "not empty" lets the caller pop the item */
	return atomic_load_explicit(&q->slots[q->head & q->mask].seq, memory_order_acquire) !=
	       q->head + 1;
}
