/* SPDX-License-Identifier: MIT */
/*
 * ringplane mpsc: a bounded multi-producer single-consumer queue of
 * pointers, for threads that are not shards (a service's own threads)
 * handing work to one shard. Shards talk to each other over rp_spsc.
 *
 * Each slot carries a sequence number: slot i is free for the producer
 * that claims ticket t when seq == t, and holds a published item for the
 * consumer at ticket t when seq == t + 1. Producers claim tickets with a
 * compare-and-swap on the shared tail.
 *
 * Progress guarantee: producers are lock-free among themselves (a failed
 * CAS means another producer claimed a ticket, so the system made
 * progress); push never waits and returns false when full. The consumer
 * never blocks either, but it delivers strictly in ticket order, so a
 * producer preempted between claiming a ticket and publishing its slot
 * holds back the items claimed after it (pop returns NULL meanwhile) until
 * it runs again — the usual price of a bounded array queue; it is not
 * wait-free for the consumer.
 */
#ifndef RINGPLANE_MPSC_H
#define RINGPLANE_MPSC_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rp_mpsc;

/* @capacity: a power of two, 2 .. 2^31. NULL with errno = EINVAL or ENOMEM. */
struct rp_mpsc *rp_mpsc_create(uint32_t capacity);
/* NULL is a no-op; queued items are not touched. */
void rp_mpsc_destroy(struct rp_mpsc *q);
/*
 * Any thread: enqueue @item. false when nothing was enqueued: errno =
 * EAGAIN when full; EINVAL when @item is NULL (refused: pop's NULL means
 * "nothing", so a NULL item would leave empty() false while pop() says
 * nothing; retrying it never succeeds).
 */
bool rp_mpsc_push(struct rp_mpsc *q, void *item);
/* The one consumer thread: the oldest published item, or NULL. */
void *rp_mpsc_pop(struct rp_mpsc *q);
/* The consumer thread: true when pop would return NULL now. */
bool rp_mpsc_empty(const struct rp_mpsc *q);

#ifdef __cplusplus
}
#endif

#endif /* RINGPLANE_MPSC_H */
