/* SPDX-License-Identifier: MIT */
/*
 * ringplane spsc: a bounded single-producer single-consumer ring of
 * pointers, the message path between two shards.
 *
 * Layout (one allocation, every part on its own 64-byte line):
 *
 *   +--------------------------+  producer line: written by the producer only
 *   | tail | mask | slots      |  tail: next slot to fill (free-running u32)
 *   +--------------------------+  consumer line: written by the consumer only
 *   | head | mask | slots      |  head: next slot to drain (free-running u32)
 *   +--------------------------+
 *   | slot[0] ... slot[cap-1]   |  cap = capacity, a power of two
 *   +--------------------------+
 *
 * A slot holds NULL when empty and an item when full, so each side learns
 * everything it needs from the slot it is about to use and never loads the
 * other side's index (details and the memory ordering in spsc_inline.h).
 * This is why items must not be NULL. All @capacity slots are usable.
 *
 * Thread rules: exactly one thread pushes and exactly one thread pops at a
 * time (they may be the same thread). Pushing from two threads is a bug;
 * use rp_mpsc (ringplane/mpsc.h) for threads that are not shards. There is
 * deliberately no MPMC queue: shards share nothing but these rings (one per
 * ordered pair of shards), so every queue has one producer and one consumer
 * by construction, and an MPMC queue would reintroduce the contended atomic
 * read-modify-write this design exists to avoid.
 */
#ifndef RINGPLANE_SPSC_H
#define RINGPLANE_SPSC_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rp_spsc;

/*
 * rp_spsc_create - allocate a ring of @capacity slots.
 * @capacity: a power of two, 2 .. 2^31.
 *
 * Returns the ring, or NULL with errno = EINVAL (bad capacity) or ENOMEM.
 */
struct rp_spsc *rp_spsc_create(uint32_t capacity);

/* rp_spsc_destroy - free the ring (NULL is a no-op); items still queued are not touched. */
void rp_spsc_destroy(struct rp_spsc *r);

/*
 * rp_spsc_push - producer: enqueue @item.
 * @item: must not be NULL (an empty slot is a NULL slot: a NULL item would
 *        be lost and stall the consumer).
 * Returns true, or false when the ring is full (nothing enqueued).
 */
bool rp_spsc_push(struct rp_spsc *r, void *item);

/* rp_spsc_pop - consumer: dequeue the oldest item, or NULL when empty. */
void *rp_spsc_pop(struct rp_spsc *r);

/*
 * rp_spsc_empty - consumer: true when rp_spsc_pop would return NULL now.
 * Reads only the consumer's next slot (never the producer's line).
 */
bool rp_spsc_empty(const struct rp_spsc *r);

/*
 * rp_spsc_push_burst - producer: enqueue up to @n items (none NULL) from
 * @items, in order. Burst semantics: as many as fit. Returns how many were
 * enqueued (0..n).
 */
unsigned rp_spsc_push_burst(struct rp_spsc *r, void *const *items, unsigned n);

/*
 * rp_spsc_pop_burst - consumer: dequeue up to @n items into @items, oldest
 * first. Returns how many were dequeued (0..n).
 */
unsigned rp_spsc_pop_burst(struct rp_spsc *r, void **items, unsigned n);

/* rp_spsc_capacity - the capacity given at create. Any thread. */
uint32_t rp_spsc_capacity(const struct rp_spsc *r);

/*
 * rp_spsc_count - items queued: exact for the producer or consumer when the
 * other side is idle, a snapshot (0..capacity) otherwise. Any thread; it
 * reads both sides' lines, so a consumer polling for work calls
 * rp_spsc_empty instead.
 */
uint32_t rp_spsc_count(const struct rp_spsc *r);

/* push, pop, empty and the bursts are also macros for inline versions in C
 * with GCC or Clang (same semantics; define RP_SPSC_NO_INLINE to opt out). */
#include <ringplane/spsc_inline.h>

#ifdef __cplusplus
}
#endif

#endif /* RINGPLANE_SPSC_H */
