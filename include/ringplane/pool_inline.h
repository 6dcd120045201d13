/* SPDX-License-Identifier: MIT */
/*
 * ringplane pool: the inline fast paths of rp_pool_alloc and rp_pool_free.
 * Included by ringplane/pool.h; not a header to include on its own.
 *
 * What is here is the allocator's private layout, made visible so that the
 * common case of each call compiles into the caller (as liburing does with
 * its ring): an owner-thread alloc is a pop from its class's cache, an
 * owner-thread free a push onto it. Everything else (empty or full cache,
 * remote or foreign pointer, unknown pool) goes to the out-of-line slow paths in
 * alloc/pool.c, which also hold the only code that writes this layout
 * outside these two pushes and pops.
 *
 * Measured on the 2-core EPYC dev host, alloc+free pair at 64 B: two
 * out-of-line calls cost ~2.7 ns for nothing but a list pop and push; the
 * same pair inline ~1.3 ns. The layout is therefore ABI: a program built
 * against one version of this header must run with the same library
 * version (the soname carries the project version).
 *
 * Define RP_POOL_NO_INLINE before including ringplane/pool.h to call the
 * exported functions instead.
 */
#ifndef RINGPLANE_POOL_INLINE_H
#define RINGPLANE_POOL_INLINE_H

#if !defined(RINGPLANE_POOL_H)
#error "include <ringplane/pool.h>, not <ringplane/pool_inline.h>"
#endif

/* C11 atomics and GNU builtins: not for C++ or other compilers, which get
 * the exported functions. */
#if defined(__GNUC__) && !defined(__cplusplus)
#define RP_POOL_HAVE_INLINE 1

#include <stdatomic.h>
#include <stdint.h>

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

/* rp_pool_alloc, inline: owner thread only (as the function). */
static inline __attribute__((always_inline)) void *rp_pool_alloc_inline(struct rp_pool *pool,
									  size_t size)
{
	/* class = ceil(log2(size)) - 6, sizes 1..64 in class 0; size 0 wraps
	 * to a huge class and takes the slow path, which treats it as 1. */
	unsigned c = (unsigned)(58 - __builtin_clzll((unsigned long long)((size - 1) | 63)));

	if (__builtin_expect(c < RP_POOL_NCLASS, 1)) {
		struct rp_pool_cache_ *k = &((struct rp_pool_hot_ *)(void *)pool)->cache[c];
		uint32_t n = k->n;

		if (__builtin_expect(n != 0, 1)) {
			k->n = n - 1;
			k->allocs++;
			return k->slots[n - 1];
		}
	}
	return rp_pool_alloc_slow_(pool, size);
}

/* rp_pool_free, inline: any thread (as the function); the fast case is the
 * owner freeing into the pool its thread last freed into. */
static inline __attribute__((always_inline)) void rp_pool_free_inline(void *ptr)
{
	struct rp_pool_tls_ *t = &rp_pool_tls_;
	struct rp_pool_reg_ *e = &rp_pool_registry_[t->slot];
	/* Acquire: pairs with the release that published the slot (pool.c,
	 * register_pool), so base and len below belong to this pool. */
	const struct rp_pool_hot_ *p =
		(const struct rp_pool_hot_ *)(void *)atomic_load_explicit(&e->pool,
									  memory_order_acquire);
	/* Relaxed: ordered by the acquire above. NULL wraps to a huge offset. */
	uintptr_t off = (uintptr_t)ptr - atomic_load_explicit(&e->base, memory_order_relaxed);

	if (__builtin_expect(p != NULL, 1) &&
	    __builtin_expect(off < atomic_load_explicit(&e->len, memory_order_relaxed), 1) &&
	    __builtin_expect(p->owner == (const void *)t, 1)) {
		const struct rp_pool_span_hot_ *s =
			(const struct rp_pool_span_hot_ *)(void *)(p->spans +
				((off >> 20) << RP_POOL_SPAN_META_SHIFT_));

		uint32_t x = ((uint32_t)off & (RP_POOL_SPAN - 1)) - s->first;

		/* Only the start of an object of a live span: one mask test and
		 * one multiply refuse a pointer into a free span, an interior
		 * pointer and one below the first object (x wraps). */
		if (__builtin_expect(!((x | RP_POOL_CHK_FREE_) & s->chk), 1) &&
		    __builtin_expect((x >> 6) * s->inv <= s->lim, 1)) {
			struct rp_pool_cache_ *k = s->cache;
			uint32_t n = k->n;

			if (__builtin_expect(n < RP_POOL_CACHE_SLOTS_, 1)) {
				k->slots[n] = ptr;
				k->n = n + 1;
				k->frees++;
				return;
			}
		}
	}
	rp_pool_free_slow_(ptr);
}

#if !defined(RP_POOL_NO_INLINE)
/* The exported functions stay (take their address, or call (rp_pool_free)(p)). */
#define rp_pool_alloc(pool, size) rp_pool_alloc_inline((pool), (size))
#define rp_pool_free(ptr) rp_pool_free_inline(ptr)
#endif

#endif /* __GNUC__ && !__cplusplus */
#endif /* RINGPLANE_POOL_INLINE_H */
