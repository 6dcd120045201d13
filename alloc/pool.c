/* SPDX-License-Identifier: MIT */
/*
 * Slab pool (contract in include/ringplane/pool.h).
 *
 * Arena: one mapping, 2 MB aligned, cut into 1 MB spans. Span metadata
 * lives outside the arena (struct span[], indexed by address), so objects
 * keep their natural alignment and a stray write into an object cannot
 * corrupt allocator state.
 *
 * Two levels per class:
 *  - the class cache (struct rp_pool_cache_, ringplane/pool_inline.h): a
 *    LIFO stack of up to 61 pointers to free objects of any span of the
 *    class. The fast paths (inline in the caller) are a pop and a push on
 *    it and one counter each, nothing else: no span state and no write
 *    into the object, so a 1 MB class (one object per span) costs what a
 *    64 B class costs;
 *  - spans: each hands out objects from its own free list, then by
 *    bumping through memory it has never handed out. A span's "used"
 *    counts objects out of the span, in the cache or with the caller.
 * An empty cache refills with up to REFILL_BATCH objects from one span
 * (the class's current span, else one from its partial list, else a new
 * span); a full one gives its older half back to the spans. All caches go
 * back to their spans when the arena has no span for a class that needs
 * one (reclaim_empty_span); a span whose objects are all back then returns
 * to the arena for any class to reuse.
 *
 * Remote frees: a Treiber stack per pool, pushed by any thread (CAS,
 * release: the object's next pointer is written first) and taken whole by
 * the owner with one exchange (acquire). Push-only plus take-all has no
 * ABA problem: nobody pops single nodes.
 *
 * Colouring (Bonwick): the classes RP_POOL_COLOUR_MIN..MAX are carved at a
 * stride of size + 64, starting at a per-span colour, so the first lines
 * of live objects fall into different L1 and L2 sets. The inline free
 * checks an object start with a mask and a multiply (span hot metadata,
 * ringplane/pool_inline.h); the slow paths compute the index the same way.
 *
 * Double frees: a remote free swaps a tag (the object's address ^
 * REMOTE_TAG) into the object's second word and refuses the free when the
 * tag was there already: that object is on the remote list, and pushing
 * it again would make the list a cycle. The owner clears the tag when it
 * reclaims the object. A pool_debug build (RP_POOL_DEBUG) also keeps a
 * bit per object that is out with a caller, never caches objects (so the
 * inline alloc always misses) and marks every span so that the inline
 * free always misses too: every alloc and free is checked.
 *
 * Pages: each kind (hugetlb, then anonymous memory with MADV_HUGEPAGE,
 * which is THP where the kernel gives it) is mapped, bound and faulted in
 * with MADV_POPULATE_WRITE as one attempt; a hugetlb mapping whose fault
 * fails is unmapped, never touched (that is a SIGBUS when the bound node
 * has no free huge pages), and the next kind is tried.
 *
 * Finding the pool of a pointer: a small registry of arena ranges, and a
 * per-thread cache of the last registry slot that matched, so the common
 * case is one range check on registry memory (never on a pool that may
 * have been destroyed).
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <numa.h>
#include <numaif.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* This file defines the functions the header's macros stand for. */
#define RP_POOL_NO_INLINE 1
#define RP_POOL_IMPL 1
#include <ringplane/pool.h>
#include <ringplane/pool_layout.h> /* the layout it shares with the inline paths */

#define SPAN_SHIFT 20
#define HUGE_2M ((size_t)2 << 20)
#define POOL_MAX RP_POOL_MAX_POOLS_
#define IOV_CHUNK ((size_t)1 << 30) /* io_uring: at most 1 GB per registered buffer */
#define CLASS_NONE 0xff

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#ifdef RP_POOL_DEBUG
#define POOL_DEBUG 1
#else
#define POOL_DEBUG 0
#endif

/*
 * AddressSanitizer (ringplane/pool_inline.h): every object not out with a
 * caller is poisoned, from the arena's creation to its destroy, and the
 * pool reaches the words it keeps inside free objects (the span free
 * list's link, the remote stack's link and tag) only through the
 * uninstrumented accessors below: never by unpoisoning them, which would
 * race with a thread that frees or allocates the object meanwhile. Other
 * builds: plain loads and stores, inlined.
 */
#if defined(__SANITIZE_ADDRESS__)
#define POOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_ASAN 1
#endif
#endif
#ifdef POOL_ASAN
#define NO_ASAN __attribute__((no_sanitize_address, noinline))
#else
#define NO_ASAN
#endif

#define COLOUR 64u /* colour step: one cache line */
#define MAX_OBJS (RP_POOL_SPAN / RP_POOL_MIN_CLASS)
#define REMOTE_TAG ((uintptr_t)0x5250504f4f4c4446ull) /* "RPPOOLDF" */

struct span {
	struct rp_pool_span_hot_ hot; /* read by the inline free */
	void *free;		      /* span-local free list; next pointer in each object */
	uint64_t *out;		      /* pool_debug: a bit per object out with a caller */
	uint32_t used;		      /* objects out of the span (in the cache or allocated) */
	uint32_t bump;		      /* objects carved so far */
	uint32_t capacity;	      /* objects per span for this class */
	uint32_t stride;	      /* bytes from one object to the next */
	uint32_t mask;		      /* hot.chk without the pool_debug bit */
	uint8_t cls;		      /* CLASS_NONE while on the arena's free-span stack */
	uint8_t listed;		      /* on its class's partial list */
	uint8_t jshift;		      /* aligned classes: log2(size / 64) */
	struct span *next;	      /* partial list or free-span stack */
	struct span *prev;	      /* partial list */
	char spare[40];
};
static_assert(sizeof(struct span) == (size_t)1 << RP_POOL_SPAN_META_SHIFT_,
	      "the inline free indexes spans by this size");
static_assert(sizeof(struct rp_pool_span_hot_) <= 64 && (1 << RP_POOL_SPAN_META_SHIFT_) % 64 == 0,
	      "the inline free reads one line of span metadata");
static_assert(RP_POOL_SPAN == (size_t)1 << SPAN_SHIFT, "the inline free assumes 1 MB spans");

struct sclass {
	struct span *cur;     /* refills come from here */
	struct span *partial; /* spans with free objects, other than cur */
	size_t avail;	      /* objects in the class's spans, not out (sum of capacity - used) */
	size_t idle;	      /* of its spans, those with nothing out (used == 0) */
};

struct rp_pool {
	/* Owner's state: only the owner thread writes it; the inline free of
	 * any thread reads hot.owner, hot.base and hot.spans (set before the
	 * pool is published). */
	struct rp_pool_hot_ hot;
	size_t bytes;
	struct span *spans;
	struct span *free_spans;
	size_t nspans, spans_used;
	size_t spans_idle; /* spans a class holds with nothing out (used == 0) */
	uint64_t failures, remote_frees;
	struct sclass cls[RP_POOL_NCLASS];

	/* Written by other threads: its own line. */
	_Alignas(64) _Atomic(void *) remote;
	_Atomic uint64_t double_frees; /* rare: shares the remote line */

	_Alignas(64) void *map;
	size_t map_len;
	size_t huge_bytes;
	uint64_t *out_bits; /* pool_debug: MAX_OBJS bits per span */
	enum rp_page_kind kind;
	int node;
	unsigned slot;
};
static_assert(offsetof(struct rp_pool, hot) == 0, "the inline paths cast the pool");

struct rp_pool_reg_ rp_pool_registry_[POOL_MAX];
static _Atomic unsigned registry_hi; /* slots ever used */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t foreign_frees;

_Thread_local struct rp_pool_tls_ rp_pool_tls_ __attribute__((tls_model("initial-exec")));

static inline unsigned class_index(size_t size)
{
	if (size <= RP_POOL_MIN_CLASS)
		return 0;
	return (unsigned)(64 - __builtin_clzll((unsigned long long)(size - 1))) - 6;
}

static inline unsigned class_shift(unsigned c)
{
	return c + 6;
}

size_t rp_pool_class_size(size_t size)
{
	unsigned c = class_index(size);

	return c < RP_POOL_NCLASS ? (size_t)1 << class_shift(c) : 0;
}

static inline bool class_coloured(unsigned c)
{
	size_t size = (size_t)1 << class_shift(c);

	return size >= RP_POOL_COLOUR_MIN && size <= RP_POOL_COLOUR_MAX;
}

static inline uint32_t class_stride(unsigned c)
{
	return ((uint32_t)1 << class_shift(c)) + (class_coloured(c) ? COLOUR : 0);
}

static inline uint32_t class_capacity(unsigned c)
{
	return RP_POOL_SPAN / class_stride(c);
}

size_t rp_pool_class_capacity(size_t size)
{
	unsigned c = class_index(size);

	return c < RP_POOL_NCLASS ? class_capacity(c) : 0;
}

int rp_pool_debug(void)
{
	return POOL_DEBUG;
}

/* The inverse of odd @q mod 2^32 (Newton: each step doubles the correct
 * low bits; q * q == 1 mod 8 gives the first three). */
static uint32_t inverse_u32(uint32_t q)
{
	uint32_t x = q;

	for (int i = 0; i < 4; i++)
		x *= 2 - q * x;
	return x;
}

const char *rp_pool_page_kind_name(enum rp_page_kind kind)
{
	switch (kind) {
	case RP_PAGE_HUGETLB:
		return "hugetlb-2M";
	case RP_PAGE_THP:
		return "thp";
	default:
		return "4K";
	}
}

uint64_t rp_pool_foreign_frees(void)
{
	return atomic_load_explicit(&foreign_frees, memory_order_relaxed);
}

static inline char *span_addr(const struct rp_pool *p, const struct span *s)
{
	return (char *)p->hot.base + ((size_t)(s - p->spans) << SPAN_SHIFT);
}

static inline struct span *span_of(const struct rp_pool *p, const void *ptr)
{
	return &p->spans[((uintptr_t)ptr - p->hot.base) >> SPAN_SHIFT];
}

/* The second word of an object: the remote-free tag lives there. */
static inline _Atomic uintptr_t *tag_word(void *obj)
{
	return (_Atomic uintptr_t *)(void *)((char *)obj + sizeof(void *));
}

static inline uintptr_t tag_of(const void *obj)
{
	return (uintptr_t)obj ^ REMOTE_TAG;
}

/* The words inside a free (under ASan, poisoned) object. */
static NO_ASAN void *obj_link(const void *obj)
{
	return *(void *const *)obj;
}

static NO_ASAN void obj_set_link(void *obj, void *next)
{
	*(void **)obj = next;
}

static NO_ASAN uintptr_t obj_tag_load(void *obj)
{
	return atomic_load_explicit(tag_word(obj), memory_order_relaxed);
}

static NO_ASAN void obj_tag_clear(void *obj)
{
	atomic_store_explicit(tag_word(obj), 0, memory_order_relaxed);
}

static NO_ASAN uintptr_t obj_tag_swap(void *obj)
{
	return atomic_exchange_explicit(tag_word(obj), tag_of(obj), memory_order_relaxed);
}

static void partial_unlink(struct rp_pool *p, struct span *s)
{
	struct sclass *sc = &p->cls[s->cls];

	if (s->prev)
		s->prev->next = s->next;
	else
		sc->partial = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
	s->listed = 0;
}

static void partial_push(struct rp_pool *p, struct span *s)
{
	struct sclass *sc = &p->cls[s->cls];

	s->prev = NULL;
	s->next = sc->partial;
	if (sc->partial)
		sc->partial->prev = s;
	sc->partial = s;
	s->listed = 1;
}

static void span_release(struct rp_pool *p, struct span *s)
{
	assert(s->used == 0);
	p->spans_idle--;
	p->cls[s->cls].idle--;
	p->cls[s->cls].avail -= s->capacity;
	if (s->listed)
		partial_unlink(p, s);
	s->cls = CLASS_NONE;
	s->hot.cache = NULL;
	s->hot.chk = RP_POOL_CHK_FREE_;
	s->hot.first = 0;
	s->hot.inv = 1;
	s->hot.lim = UINT32_MAX;
	s->free = NULL;
	s->next = p->free_spans;
	p->free_spans = s;
	p->spans_used--;
}

/* Back from a cache to its span (cache full, or reclaim_empty_span). */
static void span_put(struct rp_pool *p, struct span *s, void *obj)
{
	struct sclass *sc = &p->cls[s->cls];
	struct span *cur = sc->cur;

	obj_set_link(obj, s->free);
	s->free = obj;
	sc->avail++;
	if (--s->used == 0) {
		p->spans_idle++;
		sc->idle++;
	}
	if (s == cur)
		return;
	/* The current span is used up: let this one serve the next refill
	 * directly. The old one is full and unlisted; a later put lists it. */
	if (!cur || (!cur->free && cur->bump == cur->capacity)) {
		if (s->listed)
			partial_unlink(p, s);
		sc->cur = s;
		return;
	}
	if (!s->listed)
		partial_push(p, s);
}

/* Full cache: its older (colder) half back to the spans. */
static void cache_spill(struct rp_pool *p, struct rp_pool_cache_ *k)
{
	uint32_t half = k->n / 2;

	for (uint32_t i = 0; i < half; i++)
		span_put(p, span_of(p, k->slots[i]), k->slots[i]);
	memmove(k->slots, k->slots + half, (k->n - half) * sizeof(k->slots[0]));
	k->n -= half;
}

/* The index of the object that starts at span offset @x of @s, or -1 when
 * none does (a free span, an interior pointer, memory never handed out). */
static inline int64_t obj_index(const struct span *s, uint32_t x)
{
	uint32_t j;

	if (s->cls == CLASS_NONE)
		return -1;
	x -= s->hot.first; /* wraps below the first object: fails the tests below */
	if (x & s->mask)
		return -1;
	j = ((x >> 6) >> s->jshift) * s->hot.inv;
	return j < s->bump ? (int64_t)j : -1;
}

static void count_double_free(struct rp_pool *p)
{
	atomic_fetch_add_explicit(&p->double_frees, 1, memory_order_relaxed);
}

/*
 * Owner side: refuse what is not the start of an object of a live span (a
 * caller bug: double free into a released span, interior pointer). In a
 * pool_debug build also what is not out with a caller (double free), and
 * the object goes straight back to its span.
 */
static void free_checked(struct rp_pool *p, void *ptr, bool remote)
{
	uintptr_t off = (uintptr_t)ptr - p->hot.base;
	struct span *s = &p->spans[off >> SPAN_SHIFT];
	struct rp_pool_cache_ *k;
	int64_t j = obj_index(s, (uint32_t)off & (RP_POOL_SPAN - 1));

	if (unlikely(j < 0)) {
		atomic_fetch_add_explicit(&foreign_frees, 1, memory_order_relaxed);
		return;
	}
	k = s->hot.cache;
	if (POOL_DEBUG) {
		uint64_t bit = 1ull << (j % 64);

		/* A local free of an object whose remote free is still pending,
		 * or of one that is not out: refused. Relaxed: the tag, if
		 * any, was written by a thread this one synchronised with. */
		if ((!remote && obj_tag_load(ptr) == tag_of(ptr)) || !(s->out[j / 64] & bit)) {
			count_double_free(p);
			return;
		}
		s->out[j / 64] &= ~bit;
		RP_POOL_ASAN_POISON_(ptr, (size_t)1 << class_shift(s->cls));
		k->frees++;
		span_put(p, s, ptr);
		return;
	}
	RP_POOL_ASAN_POISON_(ptr, (size_t)1 << class_shift(s->cls));
	if (unlikely(k->n == RP_POOL_CACHE_SLOTS_))
		cache_spill(p, k);
	k->slots[k->n++] = ptr;
	k->frees++;
}

unsigned rp_pool_reclaim(struct rp_pool *p)
{
	/* Acquire: pairs with the release CAS of each remote push, so the next
	 * pointers and tags written by those threads are visible. */
	void *list = atomic_exchange_explicit(&p->remote, NULL, memory_order_acquire);
	unsigned n = 0;

	while (list) {
		void *next = obj_link(list);

		/* Off the list: a later remote free of it is a free again.
		 * Relaxed: the object is the owner's until it hands it out. */
		obj_tag_clear(list);
		free_checked(p, list, true);
		list = next;
		n++;
	}
	p->remote_frees += n;
	return n;
}

/* Every cached object back to its span. */
static void caches_flush(struct rp_pool *p)
{
	for (unsigned c = 0; c < RP_POOL_NCLASS; c++) {
		struct rp_pool_cache_ *k = &p->hot.cache[c];

		for (uint32_t i = 0; i < k->n; i++)
			span_put(p, span_of(p, k->slots[i]), k->slots[i]);
		k->n = 0;
	}
}

/* A span with nothing out, from any class's partial list or current span. */
static bool release_empty_span(struct rp_pool *p)
{
	for (unsigned k = 0; k < RP_POOL_NCLASS; k++) {
		struct sclass *sc = &p->cls[k];

		for (struct span *s = sc->partial; s; s = s->next) {
			if (s->used == 0) {
				span_release(p, s);
				return true;
			}
		}
		if (sc->cur && sc->cur->used == 0) {
			struct span *idle = sc->cur;

			sc->cur = NULL;
			span_release(p, idle);
			return true;
		}
	}
	return false;
}

/*
 * Arena empty: give back one span that has nothing out. Slow (walks the
 * lists, and the caches when no span is empty without them), and only
 * reached when a class would otherwise fail.
 */
static bool reclaim_empty_span(struct rp_pool *p)
{
	if (release_empty_span(p))
		return true;
	caches_flush(p);
	return release_empty_span(p);
}

/*
 * Up to REFILL_BATCH objects of @s into the class cache (span list first,
 * then never-used memory). The batch is the one that carving used before
 * the cache existed (32: one slow path per 32 allocations of a fresh
 * class, and at most 2 KB of 64 B objects moved at a time). pool_debug:
 * one object, taken at once by the caller, so the cache stays empty.
 */
#define REFILL_BATCH (POOL_DEBUG ? 1 : 32)
static_assert(REFILL_BATCH <= RP_POOL_CACHE_SLOTS_, "a refill fits an empty cache");
static unsigned span_refill(struct rp_pool *p, struct span *s, unsigned c)
{
	struct rp_pool_cache_ *k = &p->hot.cache[c];
	unsigned n = 0;
	char *base = span_addr(p, s) + s->hot.first;

	(void)c;
	/* Called with an empty cache; the batch fits in it. */
	while (n < REFILL_BATCH) {
		void *obj = s->free;

		if (obj)
			s->free = obj_link(obj);
		else if (s->bump < s->capacity)
			obj = base + (size_t)s->bump++ * s->stride;
		else
			break;
		n++;
		/* Lowest address on top: handed out first. */
		k->slots[REFILL_BATCH - n] = obj;
	}
	if (n < REFILL_BATCH)
		memmove(k->slots, k->slots + REFILL_BATCH - n, n * sizeof(k->slots[0]));
	k->n = n;
	if (s->used == 0 && n) {
		p->spans_idle--;
		p->cls[c].idle--;
	}
	s->used += n;
	p->cls[c].avail -= n;
	return n;
}

/*
 * A free span takes class @c. Coloured classes start at a colour that
 * continues the sequence of the span before it (span i's objects take the
 * colours after those of span i - 1), within the slack that one object
 * fewer leaves at the span's end.
 */
static void span_setup(struct rp_pool *p, struct span *s, unsigned c)
{
	uint32_t stride = class_stride(c), cap = class_capacity(c);
	size_t idx = (size_t)(s - p->spans);
	struct rp_pool_span_hot_ hot = { .cache = &p->hot.cache[c], .inv = 1, .lim = UINT32_MAX };
	uint32_t mask = ((uint32_t)1 << class_shift(c)) - 1;
	uint8_t jshift = (uint8_t)(class_shift(c) - 6);

	if (class_coloured(c)) {
		uint32_t slack = RP_POOL_SPAN - cap * stride;

		hot.first = (uint32_t)((idx * cap) % (4096 / COLOUR)) * COLOUR;
		if (hot.first > slack)
			hot.first = slack / COLOUR * COLOUR;
		hot.inv = inverse_u32(stride / COLOUR);
		hot.lim = cap - 1;
		mask = COLOUR - 1;
		jshift = 0;
	}
	hot.chk = mask | (POOL_DEBUG ? RP_POOL_CHK_FREE_ : 0);
	*s = (struct span){
		.hot = hot,
		.capacity = cap,
		.stride = stride,
		.mask = mask,
		.jshift = jshift,
		.cls = (uint8_t)c,
	};
	if (POOL_DEBUG) {
		s->out = p->out_bits + idx * (MAX_OBJS / 64);
		memset(s->out, 0, MAX_OBJS / 8);
	}
}

static bool span_empty(const struct span *s)
{
	return !s->free && s->bump == s->capacity;
}

/* Refill class @c's empty cache; false when the arena has nothing left. */
static bool cache_refill(struct rp_pool *p, unsigned c)
{
	struct sclass *sc = &p->cls[c];
	struct span *s;

again:
	s = sc->cur;
	if (s && span_refill(p, s, c))
		return true;
	/* cur is used up; a later span_put lists it again. */
	while ((s = sc->partial)) {
		partial_unlink(p, s);
		sc->cur = s;
		if (span_refill(p, s, c))
			return true;
	}
	/*
	 * The class's spans are dry: take the remote frees now, all at once,
	 * before a new span. Not earlier: reclaiming on every empty cache
	 * fought the freeing thread for the remote line a few objects at a
	 * time (remote free row: 40 -> 6.5 Mops/s).
	 */
	if (atomic_load_explicit(&p->remote, memory_order_relaxed) && rp_pool_reclaim(p)) {
		if (p->hot.cache[c].n)
			return true;
		goto again; /* they went to other classes' caches or spilled */
	}
	if (!p->free_spans && !reclaim_empty_span(p))
		return false;
	/* reclaim_empty_span may have flushed this class's spans: use them. */
	if (sc->cur && !span_empty(sc->cur))
		return span_refill(p, sc->cur, c) != 0;
	if (sc->partial) {
		s = sc->partial;
		partial_unlink(p, s);
		sc->cur = s;
		return span_refill(p, s, c) != 0;
	}
	s = p->free_spans;
	p->free_spans = s->next;
	span_setup(p, s, c);
	p->spans_used++;
	p->spans_idle++; /* nothing out yet: the refill below takes it back */
	sc->idle++;
	sc->avail += s->capacity;
	sc->cur = s;
	return span_refill(p, s, c) != 0;
}

void *rp_pool_alloc_slow_(struct rp_pool *p, size_t size)
{
	unsigned c = class_index(size);
	struct rp_pool_cache_ *k;
	void *obj;

	if (unlikely(c >= RP_POOL_NCLASS)) {
		p->failures++;
		return NULL;
	}
	k = &p->hot.cache[c];
	if (!k->n && !cache_refill(p, c)) {
		p->failures++;
		return NULL;
	}
	obj = k->slots[--k->n];
	k->allocs++;
	if (POOL_DEBUG) {
		uintptr_t off = (uintptr_t)obj - p->hot.base;
		struct span *s = &p->spans[off >> SPAN_SHIFT];
		int64_t j = obj_index(s, (uint32_t)off & (RP_POOL_SPAN - 1));

		assert(j >= 0);
		s->out[j / 64] |= 1ull << (j % 64);
	}
	/* The size asked for (0 is 1), not the class: the tail stays
	 * poisoned as the free left it (pool.h, rp_pool_alloc). */
	RP_POOL_ASAN_UNPOISON_(obj, size ? size : 1);
	return obj;
}

void *rp_pool_alloc(struct rp_pool *p, size_t size)
{
	return rp_pool_alloc_inline(p, size);
}

static struct rp_pool *pool_at(unsigned slot, uintptr_t a)
{
	/* Acquire: pairs with the release in register_pool, so base and len
	 * belong to this pool. */
	struct rp_pool *p = atomic_load_explicit(&rp_pool_registry_[slot].pool, memory_order_acquire);
	uintptr_t base, len;

	if (!p)
		return NULL;
	base = atomic_load_explicit(&rp_pool_registry_[slot].base, memory_order_relaxed);
	len = atomic_load_explicit(&rp_pool_registry_[slot].len, memory_order_relaxed);
	return a - base < len ? p : NULL;
}

static struct rp_pool *pool_of(const void *ptr)
{
	uintptr_t a = (uintptr_t)ptr;
	struct rp_pool *p = pool_at(rp_pool_tls_.slot, a);
	unsigned hi;

	if (likely(p))
		return p;
	/* Acquire: pairs with the release in register_pool (slots below hi
	 * are initialized). */
	hi = atomic_load_explicit(&registry_hi, memory_order_acquire);
	for (unsigned i = 0; i < hi; i++) {
		p = pool_at(i, a);
		if (p) {
			rp_pool_tls_.slot = i;
			return p;
		}
	}
	return NULL;
}

/* A remote free: poison the object when @ptr is one (the owner refuses
 * the others when it reclaims them). */
static void remote_poison(struct rp_pool *p, void *ptr)
{
#ifdef POOL_ASAN
	uintptr_t off = (uintptr_t)ptr - p->hot.base;
	const struct span *s = &p->spans[off >> SPAN_SHIFT];

	if (obj_index(s, (uint32_t)off & (RP_POOL_SPAN - 1)) >= 0)
		RP_POOL_ASAN_POISON_(ptr, (size_t)1 << class_shift(s->cls));
#else
	(void)p;
	(void)ptr;
#endif
}

void rp_pool_free_slow_(void *ptr)
{
	struct rp_pool *p;

	if (!ptr)
		return;
	p = pool_of(ptr);
	if (unlikely(!p)) {
		atomic_fetch_add_explicit(&foreign_frees, 1, memory_order_relaxed);
		return;
	}
	if (likely(p->hot.owner == (const void *)&rp_pool_tls_)) {
		free_checked(p, ptr, false);
		return;
	}
	/*
	 * Remote: only the object's own memory is written before the CAS.
	 * The tag first: whoever swaps it in owns the push; a second free
	 * finds it and is refused (two racing frees: the exchange picks one).
	 * Relaxed: the push's release publishes it with the next pointer.
	 */
	if (unlikely(obj_tag_swap(ptr) == tag_of(ptr))) {
		count_double_free(p);
		return;
	}
	/* Poisoned before the push publishes it: once pushed, the owner may
	 * reclaim it and hand it out again (unpoisoned) at any time. An
	 * object of a live span: its class is fixed while it is out. */
	remote_poison(p, ptr);
	void *head = atomic_load_explicit(&p->remote, memory_order_relaxed);

	do {
		obj_set_link(ptr, head);
		/* Release: the next pointer just written is visible to the owner's
		 * acquire exchange in rp_pool_reclaim. */
	} while (!atomic_compare_exchange_weak_explicit(&p->remote, &head, ptr,
							memory_order_release, memory_order_relaxed));
}

void rp_pool_free(void *ptr)
{
	rp_pool_free_inline(ptr);
}

void rp_pool_adopt(struct rp_pool *p)
{
	p->hot.owner = &rp_pool_tls_;
}

static int bind_node(void *map, size_t len, int node)
{
	unsigned long mask[1024 / (8 * sizeof(unsigned long))] = { 0 };

	if (node < 0)
		return 0;
	if (numa_available() < 0)
		return node == 0 ? 0 : -EINVAL; /* no NUMA: everything is node 0 */
	if (node > numa_max_node() || node >= 1024)
		return -EINVAL;
	mask[node / (8 * sizeof(unsigned long))] = 1ul << (node % (8 * sizeof(unsigned long)));
	if (mbind(map, len, MPOL_BIND, mask, 1024, 0))
		return -errno;
	return 0;
}

/*
 * Bytes of [@map, @map + @len) on transparent huge pages, from the
 * AnonHugePages lines of /proc/self/smaps (a mapping that extends past the
 * range counts at most its overlap); -1 when smaps cannot be read.
 */
static long long thp_bytes(const void *map, size_t len)
{
	uintptr_t lo = (uintptr_t)map, hi = lo + len, vlo = 0, vhi = 0;
	long long total = 0;
	bool inside = false;
	char line[512];
	FILE *f = fopen("/proc/self/smaps", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		uintptr_t a, b;
		unsigned long long kb;

		/* "START-END perms ..." opens a mapping; field lines ("Name:
		 * value") never parse as two hex numbers around a dash. */
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &a, &b) == 2) {
			vlo = a;
			vhi = b;
			inside = a < hi && b > lo;
		} else if (inside && sscanf(line, "AnonHugePages: %llu kB", &kb) == 1) {
			uintptr_t olo = vlo > lo ? vlo : lo, ohi = vhi < hi ? vhi : hi;
			long long b2 = (long long)kb << 10;

			total += b2 < (long long)(ohi - olo) ? b2 : (long long)(ohi - olo);
		}
	}
	fclose(f);
	return total;
}

static bool thp_enabled(void)
{
	char buf[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");

	if (!f)
		return false;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return strstr(buf, "[always]") || strstr(buf, "[madvise]");
}

/*
 * 2 MB hugetlb pages, bound and faulted in; 0, -ENOMEM when the kernel has
 * none to give (mapping or fault), or the binding's error. Without
 * MAP_NORESERVE the kernel reserves the pages at mmap, but a reservation
 * is not a page on the bound node: only a fault that succeeded is, so the
 * pages are faulted with MADV_POPULATE_WRITE (an error, not a SIGBUS) and
 * the mapping is dropped untouched when that fails.
 */
static int map_hugetlb(struct rp_pool *p, size_t len, int node)
{
	void *raw = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	int err;

	if (raw == MAP_FAILED)
		return -ENOMEM;
	err = bind_node(raw, len, node);
	if (!err && madvise(raw, len, MADV_POPULATE_WRITE))
		err = -ENOMEM; /* ENOMEM, EFAULT, EINVAL before Linux 5.14: all a no */
	if (err) {
		munmap(raw, len);
		return err;
	}
	p->map = raw;
	p->map_len = len;
	p->kind = RP_PAGE_HUGETLB;
	p->huge_bytes = len;
	return 0;
}

/* Anonymous memory, 2 MB aligned (THP with RP_POOL_HUGE where the kernel
 * gives it), bound and faulted in. */
static int map_anon(struct rp_pool *p, size_t len, unsigned flags, int node)
{
	void *raw = mmap(NULL, len + HUGE_2M, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uintptr_t aligned;
	void *map;
	long long thp;
	bool advised = false;
	int err;

	if (raw == MAP_FAILED)
		return -errno;
	aligned = ((uintptr_t)raw + HUGE_2M - 1) & ~(uintptr_t)(HUGE_2M - 1);
	if (aligned > (uintptr_t)raw)
		munmap(raw, aligned - (uintptr_t)raw);
	if ((uintptr_t)raw + len + HUGE_2M > aligned + len)
		munmap((void *)(aligned + len), (uintptr_t)raw + len + HUGE_2M - (aligned + len));
	map = (void *)aligned;
	if (flags & RP_POOL_HUGE)
		advised = madvise(map, len, MADV_HUGEPAGE) == 0;
	err = bind_node(map, len, node);
	if (err)
		goto fail;
	/* Fault everything in now, on the bound node: the hot path never
	 * faults. Before Linux 5.14 (EINVAL) by hand, which is safe here (no
	 * hugetlb); any other error is a real shortage. */
	if (madvise(map, len, MADV_POPULATE_WRITE)) {
		if (errno != EINVAL) {
			err = -ENOMEM;
			goto fail;
		}
		for (size_t off = 0; off < len; off += 4096)
			((volatile char *)map)[off] = 0;
	}
	p->map = map;
	p->map_len = len;
	thp = thp_bytes(map, len);
	if (thp < 0) /* no smaps: what was asked for */
		thp = advised && thp_enabled() ? (long long)len : 0;
	p->huge_bytes = (size_t)thp;
	p->kind = thp > 0 ? RP_PAGE_THP : RP_PAGE_4K;
	return 0;
fail:
	munmap(map, len);
	return err;
}

/* Map, bind and fault in @len bytes (a multiple of 2 MB), 2 MB aligned,
 * trying the page kinds in order; sets p->map, map_len, kind, huge_bytes. */
static int map_arena(struct rp_pool *p, size_t len, unsigned flags, int node)
{
	if (flags & (RP_POOL_HUGE | RP_POOL_HUGE_ONLY)) {
		int err = map_hugetlb(p, len, node);

		if (err != -ENOMEM || (flags & RP_POOL_HUGE_ONLY))
			return err;
	}
	return map_anon(p, len, flags, node);
}

static int register_pool(struct rp_pool *p)
{
	unsigned hi, slot;

	pthread_mutex_lock(&registry_lock);
	hi = atomic_load_explicit(&registry_hi, memory_order_relaxed);
	for (slot = 0; slot < hi; slot++)
		if (!atomic_load_explicit(&rp_pool_registry_[slot].pool, memory_order_relaxed))
			break;
	if (slot == POOL_MAX) {
		pthread_mutex_unlock(&registry_lock);
		return -ENOSPC;
	}
	atomic_store_explicit(&rp_pool_registry_[slot].base, p->hot.base, memory_order_relaxed);
	atomic_store_explicit(&rp_pool_registry_[slot].len, p->bytes, memory_order_relaxed);
	/* Release: base and end are visible to whoever sees the pool. */
	atomic_store_explicit(&rp_pool_registry_[slot].pool, p, memory_order_release);
	if (slot == hi)
		atomic_store_explicit(&registry_hi, hi + 1, memory_order_release);
	p->slot = slot;
	pthread_mutex_unlock(&registry_lock);
	return 0;
}

struct rp_pool *rp_pool_create(int numa_node, size_t arena_bytes, unsigned flags)
{
	struct rp_pool *p = NULL;
	size_t bytes, len;
	int err;

	if ((flags & ~(unsigned)(RP_POOL_HUGE | RP_POOL_HUGE_ONLY | RP_POOL_MLOCK)) ||
	    numa_node < -1 || arena_bytes > ((size_t)1 << 46)) {
		errno = EINVAL;
		return NULL;
	}
	bytes = (arena_bytes + RP_POOL_SPAN - 1) & ~(size_t)(RP_POOL_SPAN - 1);
	if (!bytes)
		bytes = RP_POOL_SPAN;
	len = (bytes + HUGE_2M - 1) & ~(HUGE_2M - 1);

	if (posix_memalign((void **)&p, 64, sizeof(*p))) {
		errno = ENOMEM;
		return NULL;
	}
	memset(p, 0, sizeof(*p));
	atomic_init(&p->remote, NULL);
	atomic_init(&p->double_frees, 0);
	p->node = numa_node;
	err = map_arena(p, len, flags, numa_node);
	if (err)
		goto fail_pool;
	if ((flags & RP_POOL_MLOCK) && mlock(p->map, p->map_len)) {
		err = -errno;
		goto fail_map;
	}

	p->hot.base = (uintptr_t)p->map;
	p->bytes = bytes;
	p->nspans = bytes >> SPAN_SHIFT;
	/* One line per span's metadata (the inline free reads one line). */
	p->spans = aligned_alloc(sizeof(*p->spans), p->nspans * sizeof(*p->spans));
	if (!p->spans) {
		err = -ENOMEM;
		goto fail_map;
	}
	memset(p->spans, 0, p->nspans * sizeof(*p->spans));
	if (POOL_DEBUG) {
		p->out_bits = calloc(p->nspans, MAX_OBJS / 8);
		if (!p->out_bits) {
			err = -ENOMEM;
			goto fail_spans;
		}
	}
	for (size_t i = p->nspans; i-- > 0;) {
		p->spans[i].cls = CLASS_NONE;
		p->spans[i].hot.chk = RP_POOL_CHK_FREE_;
		p->spans[i].hot.inv = 1;
		p->spans[i].hot.lim = UINT32_MAX;
		p->spans[i].next = p->free_spans;
		p->free_spans = &p->spans[i];
	}
	p->hot.spans = (char *)p->spans;
	p->hot.owner = &rp_pool_tls_;
	/* ASan: nothing is out with a caller yet (the colours' gaps and the
	 * slack at a span's end are never handed out: they stay poisoned). */
	RP_POOL_ASAN_POISON_(p->map, p->map_len);
	err = register_pool(p);
	if (err)
		goto fail_unpoison;
	return p;

fail_unpoison:
	RP_POOL_ASAN_UNPOISON_(p->map, p->map_len);
fail_spans:
	free(p->out_bits);
	free(p->spans);
fail_map:
	munmap(p->map, p->map_len);
fail_pool:
	free(p);
	errno = -err;
	return NULL;
}

void rp_pool_destroy(struct rp_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&registry_lock);
	atomic_store_explicit(&rp_pool_registry_[p->slot].pool, NULL, memory_order_release);
	atomic_store_explicit(&rp_pool_registry_[p->slot].base, 0, memory_order_relaxed);
	atomic_store_explicit(&rp_pool_registry_[p->slot].len, 0, memory_order_relaxed);
	pthread_mutex_unlock(&registry_lock);
	/* ASan: the shadow outlives the mapping; whatever maps these
	 * addresses next must not find them poisoned. */
	RP_POOL_ASAN_UNPOISON_(p->map, p->map_len);
	munmap(p->map, p->map_len);
	free(p->out_bits);
	free(p->spans);
	free(p);
}

void rp_pool_stats(const struct rp_pool *p, struct rp_pool_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned c = 0; c < RP_POOL_NCLASS; c++) {
		const struct rp_pool_cache_ *k = &p->hot.cache[c];

		out->class_allocs[c] = k->allocs;
		out->allocs += k->allocs;
		out->frees += k->frees;
		/* Objects in the cache are free: live is what callers hold. */
		out->class_live_bytes[c] = (k->allocs - k->frees) << class_shift(c);
	}
	out->remote_frees = p->remote_frees;
	out->failures = p->failures;
	out->arena_bytes = p->bytes;
	out->spans_total = p->nspans;
	out->spans_used = p->spans_used;
	out->page_kind = p->kind;
	out->numa_node = p->node;
	out->huge_bytes = p->huge_bytes;
	out->double_frees = atomic_load_explicit(&p->double_frees, memory_order_relaxed);
}

static size_t spans_takeable(const struct rp_pool *p)
{
	return p->nspans - p->spans_used + p->spans_idle;
}

size_t rp_pool_spans_free(struct rp_pool *p, size_t want)
{
	size_t n = spans_takeable(p);

	if (n >= want)
		return n;
	/* What the remote frees and the caches hold may empty whole spans:
	 * give them back (what an allocation that finds the arena empty
	 * does, reclaim_empty_span) and count again. */
	if (atomic_load_explicit(&p->remote, memory_order_relaxed))
		rp_pool_reclaim(p);
	caches_flush(p);
	return spans_takeable(p);
}

/* Objects of class @c to be had without a new span (its cache, and what its
 * spans that have something out still hold), plus @spans whole spans' worth.
 * A span of the class with nothing out is counted among @spans, not here. */
static size_t class_room(const struct rp_pool *p, unsigned c, size_t spans)
{
	const struct sclass *sc = &p->cls[c];
	size_t cap = class_capacity(c);

	return p->hot.cache[c].n + (sc->avail - sc->idle * cap) + spans * cap;
}

size_t rp_pool_class_free(struct rp_pool *p, size_t size, size_t want)
{
	unsigned c = class_index(size);
	size_t n;

	if (c >= RP_POOL_NCLASS)
		return 0;
	n = class_room(p, c, spans_takeable(p));
	if (n >= want)
		return n;
	/* As rp_pool_spans_free: the remote frees and the other classes'
	 * caches may empty whole spans. This class's cached objects move to
	 * its spans and are counted there. */
	if (atomic_load_explicit(&p->remote, memory_order_relaxed))
		rp_pool_reclaim(p);
	caches_flush(p);
	return class_room(p, c, spans_takeable(p));
}

int rp_pool_iovecs(const struct rp_pool *p, struct iovec *iov, unsigned max)
{
	unsigned n;

	if (!p || (!iov && max))
		return -EINVAL;
	n = (unsigned)((p->bytes + IOV_CHUNK - 1) / IOV_CHUNK);

	for (unsigned i = 0; i < n && i < max; i++) {
		size_t off = (size_t)i * IOV_CHUNK;

		iov[i].iov_base = (char *)p->hot.base + off;
		iov[i].iov_len = p->bytes - off < IOV_CHUNK ? p->bytes - off : IOV_CHUNK;
	}
	return (int)n;
}

int rp_pool_buf_index(const struct rp_pool *p, const void *ptr, size_t len)
{
	uintptr_t off;

	/* one predictable branch: op_basic.c calls this once per fixed-buffer op */
	if (!p || !ptr)
		return -EINVAL;
	off = (uintptr_t)ptr - p->hot.base;
	if (off >= p->bytes || len > p->bytes - off)
		return -EINVAL;
	if (len && off / IOV_CHUNK != (off + len - 1) / IOV_CHUNK)
		return -EINVAL;
	return (int)(off / IOV_CHUNK);
}
