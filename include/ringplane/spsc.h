/* SPDX-License-Identifier: MIT */
/*
 * ringplane spsc: a bounded single-producer single-consumer ring of
 * pointers, the message path between two shards.
 *
 * Layout (one allocation, every part on its own 64-byte line):
 *
 *   +--------------------------+  producer line: written by the producer only
 *   | tail | head_cache | mask  |  tail: next slot to fill (free-running u32)
 *   +--------------------------+  consumer line: written by the consumer only
 *   | head | tail_cache | mask  |  head: next slot to drain (free-running u32)
 *   +--------------------------+
 *   | slot[0] ... slot[cap-1]   |  cap = capacity, a power of two
 *   +--------------------------+
 *
 * Each side keeps a private copy of the other side's index and reloads it
 * only when the copy says the ring is full (producer) or empty (consumer),
 * so in steady state a call touches its own line and the slot line only.
 * All @capacity slots are usable (indices run freely; tail - head is the
 * fill level).
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
 * rp_spsc_push - producer: enqueue @item (must not be NULL).
 * Returns true, or false when the ring is full (nothing enqueued).
 */
bool rp_spsc_push(struct rp_spsc *r, void *item);

/* rp_spsc_pop - consumer: dequeue the oldest item, or NULL when empty. */
void *rp_spsc_pop(struct rp_spsc *r);

/*
 * rp_spsc_push_burst - producer: enqueue up to @n items from @items, in order.
 * Burst semantics: as many as fit. Returns how many were enqueued (0..n).
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
 * rp_spsc_count - items queued, as seen by the calling side: exact for the
 * producer or consumer when the other side is idle, a snapshot otherwise.
 */
uint32_t rp_spsc_count(const struct rp_spsc *r);

/* The bursts are also macros for inline versions in C with GCC or Clang
 * (same semantics; define RP_SPSC_NO_INLINE to opt out). */
#include <ringplane/spsc_inline.h>

#ifdef __cplusplus
}
#endif

#endif /* RINGPLANE_SPSC_H */
