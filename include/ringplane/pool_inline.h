/* SPDX-License-Identifier: MIT */
/*
 * ringplane pool: the inline fast paths of rp_pool_alloc and rp_pool_free.
 * Included by ringplane/pool.h; not a header to include on its own.
 *
 * The common case of each call compiles into the caller (as liburing does
 * with its ring): an owner-thread alloc is a pop from its class's cache, an
 * owner-thread free a push onto it. Everything else (empty or full cache,
 * remote or foreign pointer, unknown pool) goes to the out-of-line slow paths in
 * alloc/pool.c. The layout these paths read has one owner,
 * ringplane/pool_layout.h, which alloc/pool.c includes too: the dependency
 * runs one way (after DPDK's rte_ring_core.h and rte_ring_elem_pvt.h).
 *
 * Measured on the 2-core EPYC dev host, alloc+free pair at 64 B: two
 * out-of-line calls cost ~2.7 ns for nothing but a list pop and push; the
 * same pair inline ~1.3 ns. The layout is therefore ABI: a program built
 * against one version of this header must run with the same library
 * version (the soname carries the ABI version, major.minor for 0.x).
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

#include <ringplane/pool_layout.h>

/*
 * AddressSanitizer: an object is poisoned from its free to its next
 * allocation, so a write or read through a pointer kept after
 * rp_pool_free is reported as a use-after-poison. Every object in the
 * pool (cached, in its span, never handed out) is poisoned whole; an
 * allocation unpoisons the size asked for and no more (only that is the
 * caller's, pool.h), so the tail up to the class size stays poisoned and
 * a write past the requested size is reported too. Other builds: nothing,
 * no cost. The paths
 * compiled here and the library's slow paths each poison what they hand
 * back, so the library and the code calling these inline paths must both
 * be built with ASan, or the caller defines RP_POOL_NO_INLINE.
 */
#if defined(__SANITIZE_ADDRESS__)
#define RP_POOL_ASAN_POISON_(p, n) __asan_poison_memory_region((p), (n))
#define RP_POOL_ASAN_UNPOISON_(p, n) __asan_unpoison_memory_region((p), (n))
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RP_POOL_ASAN_POISON_(p, n) __asan_poison_memory_region((p), (n))
#define RP_POOL_ASAN_UNPOISON_(p, n) __asan_unpoison_memory_region((p), (n))
#endif
#endif
#if defined(RP_POOL_ASAN_POISON_)
#include <sanitizer/asan_interface.h>
#else
#define RP_POOL_ASAN_POISON_(p, n) ((void)(p), (void)(n))
#define RP_POOL_ASAN_UNPOISON_(p, n) ((void)(p), (void)(n))
#endif

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
			void *obj = k->slots[n - 1];

			k->n = n - 1;
			k->allocs++;
			/* size >= 1 here: 0 took the slow path. */
			RP_POOL_ASAN_UNPOISON_(obj, size);
			return obj;
		}
	}
	return rp_pool_alloc_slow_(pool, size); /* unpoisons @size of what it returns */
}

/* rp_pool_free, inline: any thread (as the function); the fast case is the
 * owner freeing into the pool its thread last freed into. */
static inline __attribute__((always_inline)) void rp_pool_free_inline(void *ptr)
{
	/* The TLS variable itself, never through a pointer to it: UBSan's null
	 * check on such a pointer misfired in a forked child (GCC 12). */
	struct rp_pool_reg_ *e = &rp_pool_registry_[rp_pool_tls_.slot];
	/* Acquire: pairs with the release that published the slot (pool.c,
	 * register_pool), so base and len below belong to this pool. */
	const struct rp_pool_hot_ *p =
		(const struct rp_pool_hot_ *)(void *)atomic_load_explicit(&e->pool,
									  memory_order_acquire);
	/* Relaxed: ordered by the acquire above. NULL wraps to a huge offset. */
	uintptr_t off = (uintptr_t)ptr - atomic_load_explicit(&e->base, memory_order_relaxed);

	if (__builtin_expect(p != NULL, 1) &&
	    __builtin_expect(off < atomic_load_explicit(&e->len, memory_order_relaxed), 1) &&
	    __builtin_expect(p->owner == (const void *)&rp_pool_tls_, 1)) {
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
				/* The class: the cache's index in the pool's. */
				RP_POOL_ASAN_POISON_(ptr, (size_t)RP_POOL_MIN_CLASS << (k - p->cache));
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
