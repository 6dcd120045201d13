/* SPDX-License-Identifier: MIT */
/*
 * ringplane pool: the allocator's layout that its inline fast paths read.
 * Internal: not a header to include. ringplane/pool_inline.h (the inline
 * alloc and free) and alloc/pool.c (everything else) both include it; it is
 * the one place the shared structures and constants are written down, so
 * neither of the two encodes the other's layout. It is installed because
 * the inline paths compile into the caller: changing it changes the ABI
 * (the soname carries the ABI version).
 */
#ifndef RINGPLANE_POOL_LAYOUT_H
#define RINGPLANE_POOL_LAYOUT_H

#if !defined(RINGPLANE_POOL_INLINE_H) && !defined(RP_POOL_IMPL)
#error "internal: include <ringplane/pool.h>"
#endif

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <ringplane/pool.h>

/*
 * A class's object cache: a LIFO stack of free objects (freed by the owner
 * or reclaimed from remote frees), so the next allocation reuses the
 * warmest one. Pointers live here, not in the objects: a free never
 * writes the object, which matters for 64 KB .. 1 MB classes, whose
 * objects all fall into the same L1 and L2 sets (linked through their
 * first word, the 64 KB pair measured 6.6 ns; here it is what 64 B costs).
 * 512 bytes per class: 61 slots fill the rest of the stride.
 */
#define RP_POOL_CACHE_SLOTS_ 61u
struct rp_pool_cache_ {
	uint32_t n; /* objects in slots[0 .. n) */
	uint32_t spare_;
	uint64_t allocs; /* successful allocations of this class */
	uint64_t frees;	 /* frees applied by the owner (local + reclaimed remote) */
	void *slots[RP_POOL_CACHE_SLOTS_];
};

/* The first member of struct rp_pool (alloc/pool.c). */
struct rp_pool_hot_ {
	const void *owner;  /* &rp_pool_tls_ of the owning thread */
	uintptr_t base;	    /* arena start, 2 MB aligned */
	char *spans;	    /* span metadata, 1 << RP_POOL_SPAN_META_SHIFT_ bytes each */
	uintptr_t spare_[5];
	struct rp_pool_cache_ cache[RP_POOL_NCLASS];
};

/* The first member of each span's metadata. */
struct rp_pool_span_hot_ {
	struct rp_pool_cache_ *cache; /* its class's cache; NULL while the span is free */
	/*
	 * The low-bit mask an object's span offset (less .first) must clear:
	 * object size - 1 for an aligned class, 63 for a coloured one (objects
	 * a stride of size + 64 apart); RP_POOL_CHK_FREE_ (bit 31, never in a
	 * mask: spans are 1 MB) while the span is free, or always in a
	 * pool_debug build, which sends every free to the checked slow path.
	 */
	uint32_t chk;
	uint32_t first; /* span offset of the span's first object (its colour) */
	/*
	 * Object index test without a division: with x the offset from
	 * .first, a multiple of 64, (x >> 6) * inv is the object's index when
	 * x is a multiple of the stride and a number above .lim otherwise (inv
	 * is the inverse mod 2^32 of stride / 64, odd for a coloured class;
	 * Granlund-Montgomery). Aligned classes: inv = 1, lim = UINT32_MAX.
	 */
	uint32_t inv;
	uint32_t lim; /* objects in the span - 1 (coloured classes) */
	uint64_t spare_;
};

#define RP_POOL_SPAN_META_SHIFT_ 7 /* sizeof(struct span) == 128 */
#define RP_POOL_CHK_FREE_ 0x80000000u

/* One slot per live pool: who owns [base, base + len). */
struct rp_pool_reg_ {
	_Atomic(struct rp_pool *) pool;
	_Atomic uintptr_t base;
	_Atomic uintptr_t len;
};
#define RP_POOL_MAX_POOLS_ 256
extern struct rp_pool_reg_ rp_pool_registry_[RP_POOL_MAX_POOLS_];

/* Per thread: the registry slot that matched last; the struct's address
 * identifies the thread (the owner check, no syscall). initial-exec: the
 * library is PIC, where the default TLS model calls __tls_get_addr. */
struct rp_pool_tls_ {
	unsigned slot;
};
extern _Thread_local struct rp_pool_tls_ rp_pool_tls_ __attribute__((tls_model("initial-exec")));

void *rp_pool_alloc_slow_(struct rp_pool *pool, size_t size);
void rp_pool_free_slow_(void *ptr);

#endif /* RINGPLANE_POOL_LAYOUT_H */
