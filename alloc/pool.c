/* SPDX-License-Identifier: MIT */
/*
 * Slab pool (contract in include/ringplane/pool.h).
 *
 * Arena: one mapping, 2 MB aligned, cut into 1 MB spans. Span metadata
 * lives outside the arena (struct span[], indexed by address), so objects
 * keep their natural alignment and a stray write into an object cannot
 * corrupt allocator state.
 *
 * A span serves one class. It hands out objects from its own free list
 * first, then by bumping through memory it has never handed out (so a
 * fresh span costs nothing up front). Each class allocates from one
 * "current" span; spans that gain a free object while not current go on
 * the class's partial list, and a span whose last object comes back goes
 * back to the arena for any class to reuse.
 *
 * Remote frees: a Treiber stack per pool, pushed by any thread (CAS,
 * release: the object's next pointer is written first) and taken whole by
 * the owner with one exchange (acquire). Push-only plus take-all has no
 * ABA problem: nobody pops single nodes.
 *
 * Finding the pool of a pointer: a small registry of arena ranges, and a
 * per-thread cache of the last registry slot that matched, so the common
 * case is one range check on registry memory (never on a pool that may
 * have been destroyed).
 */
#include <errno.h>
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

#include <ringplane/pool.h>

#define SPAN_SHIFT 20
#define HUGE_2M ((size_t)2 << 20)
#define POOL_MAX 256
#define IOV_CHUNK ((size_t)1 << 30) /* io_uring: at most 1 GB per registered buffer */
#define CLASS_NONE 0xff

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

#if defined(__GNUC__)
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#else
#define likely(x) (x)
#define unlikely(x) (x)
#endif

struct span {
	void *free;	    /* owner-local free list; next pointer in each object */
	uint32_t used;	    /* objects handed out, not yet freed */
	uint32_t bump;	    /* objects carved so far */
	uint32_t capacity;  /* objects per span for this class */
	uint8_t cls;	    /* CLASS_NONE while on the arena's free-span stack */
	uint8_t listed;	    /* on its class's partial list */
	struct span *next; /* partial list or free-span stack */
	struct span *prev; /* partial list */
};

struct sclass {
	struct span *cur;     /* allocations come from here */
	struct span *partial; /* spans with free objects, other than cur */
	uint64_t allocs;
};

struct rp_pool {
	/* Owner's state: only the owner thread reads or writes it. */
	_Alignas(64) char *base;
	size_t bytes;
	struct span *spans;
	struct span *free_spans;
	size_t nspans, spans_used;
	const void *owner;
	uint64_t frees, failures, remote_frees;
	struct sclass cls[RP_POOL_NCLASS];

	/* Written by other threads: its own line. */
	_Alignas(64) _Atomic(void *) remote;

	_Alignas(64) void *map;
	size_t map_len;
	enum rp_page_kind kind;
	int node;
	unsigned slot;
};

struct reg_entry {
	_Atomic uintptr_t base, end;
	_Atomic(struct rp_pool *) pool;
};

static struct reg_entry registry[POOL_MAX];
static _Atomic unsigned registry_hi; /* slots ever used */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t foreign_frees;

/*
 * initial-exec: the library is built -fPIC, where the default TLS model
 * calls __tls_get_addr on every access; these are read on every free.
 */
#define RP_TLS _Thread_local __attribute__((tls_model("initial-exec")))
static RP_TLS unsigned tls_slot;
/* Its address identifies the thread (owner check without a syscall). */
static RP_TLS char tls_token;

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
	return p->base + ((size_t)(s - p->spans) << SPAN_SHIFT);
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
	if (s->listed)
		partial_unlink(p, s);
	s->cls = CLASS_NONE;
	s->free = NULL;
	s->next = p->free_spans;
	p->free_spans = s;
	p->spans_used--;
}

static void free_not_current(struct rp_pool *p, struct span *s)
{
	struct sclass *sc = &p->cls[s->cls];
	struct span *cur = sc->cur;

	/* The current span is used up: let this one serve the next alloc
	 * directly (classes with few objects per span would otherwise take
	 * the slow path on every alloc). The old one is full and unlisted; its
	 * next free lists it again. */
	if (!cur || (!cur->free && cur->bump == cur->capacity)) {
		if (s->listed)
			partial_unlink(p, s);
		sc->cur = s;
		return;
	}
	if (!s->listed)
		partial_push(p, s);
}

static inline void free_local(struct rp_pool *p, void *ptr)
{
	struct span *s = &p->spans[(size_t)((char *)ptr - p->base) >> SPAN_SHIFT];

	*(void **)ptr = s->free;
	s->free = ptr;
	s->used--;
	p->frees++;
	/* A span that gains a free object while not current becomes a
	 * candidate for its class; even when empty it stays there (no churn
	 * for classes of few objects per span) until another class needs a
	 * span and the arena has none (reclaim_empty_span). */
	if (unlikely(s != p->cls[s->cls].cur))
		free_not_current(p, s);
}

/* Owner side: refuse what is not the start of an object of a live span (a
 * caller bug: double free into a released span, interior pointer). */
static inline void free_checked(struct rp_pool *p, void *ptr)
{
	size_t off = (size_t)((char *)ptr - p->base);
	const struct span *s = &p->spans[off >> SPAN_SHIFT];

	if (unlikely(s->cls == CLASS_NONE || (off & (((size_t)1 << class_shift(s->cls)) - 1)))) {
		atomic_fetch_add_explicit(&foreign_frees, 1, memory_order_relaxed);
		return;
	}
	free_local(p, ptr);
}

unsigned rp_pool_reclaim(struct rp_pool *p)
{
	/* Acquire: pairs with the release CAS of each remote push, so the next
	 * pointers written by those threads are visible. */
	void *list = atomic_exchange_explicit(&p->remote, NULL, memory_order_acquire);
	unsigned n = 0;

	while (list) {
		void *next = *(void **)list;

		free_checked(p, list);
		list = next;
		n++;
	}
	p->remote_frees += n;
	return n;
}

/*
 * Arena empty: give back one span that has nothing out, from any class's
 * partial list or current span. Slow (walks the lists), and only reached
 * when a class would otherwise fail.
 */
static bool reclaim_empty_span(struct rp_pool *p)
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

/* Thread up to CARVE_BATCH never-used objects onto the span's free list,
 * so the fast path only ever pops that list. */
#define CARVE_BATCH 32
static void span_carve(struct rp_pool *p, struct span *s, unsigned shift)
{
	char *base = span_addr(p, s);
	uint32_t n = s->capacity - s->bump;
	void *head = s->free;

	if (n > CARVE_BATCH)
		n = CARVE_BATCH;
	for (uint32_t i = s->bump + n; i-- > s->bump;) {
		void *obj = base + ((size_t)i << shift);

		*(void **)obj = head;
		head = obj;
	}
	s->free = head;
	s->bump += n;
}

static inline void *span_take(struct rp_pool *p, struct span *s, unsigned shift)
{
	void *obj;

	if (!s->free && s->bump < s->capacity)
		span_carve(p, s, shift);
	obj = s->free;
	if (!obj)
		return NULL;
	s->free = *(void **)obj;
	s->used++;
	return obj;
}

static void *alloc_slow(struct rp_pool *p, unsigned c)
{
	struct sclass *sc = &p->cls[c];
	unsigned shift = class_shift(c);
	struct span *s;
	void *obj;

	if (atomic_load_explicit(&p->remote, memory_order_relaxed))
		rp_pool_reclaim(p);
	s = sc->cur;
	if (s && (obj = span_take(p, s, shift)))
		return obj;
	/* cur is full; it will be listed again by its next local free. */
	if (sc->partial) {
		s = sc->partial;
		partial_unlink(p, s);
		sc->cur = s;
		return span_take(p, s, shift);
	}
	if (!p->free_spans && !reclaim_empty_span(p))
		return NULL;
	s = p->free_spans;
	p->free_spans = s->next;
	*s = (struct span){
		.capacity = (uint32_t)(RP_POOL_SPAN >> shift),
		.cls = (uint8_t)c,
	};
	p->spans_used++;
	sc->cur = s;
	return span_take(p, s, shift);
}

void *rp_pool_alloc(struct rp_pool *p, size_t size)
{
	unsigned c = class_index(size);
	struct span *s;
	void *obj;

	if (unlikely(c >= RP_POOL_NCLASS)) {
		p->failures++;
		return NULL;
	}
	s = p->cls[c].cur;
	if (likely(s && s->free)) {
		obj = s->free;
		s->free = *(void **)obj;
		s->used++;
	} else {
		obj = alloc_slow(p, c);
		if (unlikely(!obj)) {
			p->failures++;
			return NULL;
		}
	}
	p->cls[c].allocs++;
	return obj;
}

static struct rp_pool *pool_at(unsigned slot, uintptr_t a)
{
	/* Acquire: pairs with the release in register_pool, so base and end
	 * belong to this pool. */
	struct rp_pool *p = atomic_load_explicit(&registry[slot].pool, memory_order_acquire);
	uintptr_t base, end;

	if (!p)
		return NULL;
	base = atomic_load_explicit(&registry[slot].base, memory_order_relaxed);
	end = atomic_load_explicit(&registry[slot].end, memory_order_relaxed);
	return a - base < end - base ? p : NULL;
}

static struct rp_pool *pool_of(const void *ptr)
{
	uintptr_t a = (uintptr_t)ptr;
	struct rp_pool *p = pool_at(tls_slot, a);
	unsigned hi;

	if (likely(p))
		return p;
	hi = atomic_load_explicit(&registry_hi, memory_order_acquire);
	for (unsigned i = 0; i < hi; i++) {
		p = pool_at(i, a);
		if (p) {
			tls_slot = i;
			return p;
		}
	}
	return NULL;
}

void rp_pool_free(void *ptr)
{
	struct rp_pool *p;

	if (!ptr)
		return;
	p = pool_of(ptr);
	if (unlikely(!p)) {
		atomic_fetch_add_explicit(&foreign_frees, 1, memory_order_relaxed);
		return;
	}
	if (likely(p->owner == &tls_token)) {
		free_checked(p, ptr);
		return;
	}
	/* Remote: only the object's own memory is written before the CAS. */
	void *head = atomic_load_explicit(&p->remote, memory_order_relaxed);

	do {
		*(void **)ptr = head;
	} while (!atomic_compare_exchange_weak_explicit(&p->remote, &head, ptr,
							memory_order_release, memory_order_relaxed));
}

void rp_pool_adopt(struct rp_pool *p)
{
	p->owner = &tls_token;
}

static bool thp_enabled(void)
{
	char buf[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");

	if (!f)
		return false;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return strstr(buf, "[always]") || strstr(buf, "[madvise]");
}

/* Map @len bytes (a multiple of 2 MB), 2 MB aligned; sets p->map/map_len/kind. */
static int map_arena(struct rp_pool *p, size_t len, unsigned flags)
{
	void *raw;
	uintptr_t aligned;

	if (flags & (RP_POOL_HUGE | RP_POOL_HUGE_ONLY)) {
		/* Without MAP_NORESERVE the kernel reserves the huge pages now, so
		 * a short pool fails here and not at first touch (SIGBUS). */
		raw = mmap(NULL, len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
		if (raw != MAP_FAILED) {
			p->map = raw;
			p->map_len = len;
			p->kind = RP_PAGE_HUGETLB;
			return 0;
		}
		if (flags & RP_POOL_HUGE_ONLY)
			return -ENOMEM;
	}
	raw = mmap(NULL, len + HUGE_2M, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		   0);
	if (raw == MAP_FAILED)
		return -errno;
	aligned = ((uintptr_t)raw + HUGE_2M - 1) & ~(uintptr_t)(HUGE_2M - 1);
	if (aligned > (uintptr_t)raw)
		munmap(raw, aligned - (uintptr_t)raw);
	if ((uintptr_t)raw + len + HUGE_2M > aligned + len)
		munmap((void *)(aligned + len), (uintptr_t)raw + len + HUGE_2M - (aligned + len));
	p->map = (void *)aligned;
	p->map_len = len;
	p->kind = RP_PAGE_4K;
	if ((flags & RP_POOL_HUGE) && madvise(p->map, len, MADV_HUGEPAGE) == 0 && thp_enabled())
		p->kind = RP_PAGE_THP;
	return 0;
}

static int bind_node(struct rp_pool *p, int node)
{
	unsigned long mask[1024 / (8 * sizeof(unsigned long))] = { 0 };

	if (node < 0)
		return 0;
	if (numa_available() < 0)
		return node == 0 ? 0 : -EINVAL; /* no NUMA: everything is node 0 */
	if (node > numa_max_node() || node >= 1024)
		return -EINVAL;
	mask[node / (8 * sizeof(unsigned long))] = 1ul << (node % (8 * sizeof(unsigned long)));
	if (mbind(p->map, p->map_len, MPOL_BIND, mask, 1024, 0))
		return -errno;
	return 0;
}

/* Fault everything in now, on the bound node: the hot path never faults. */
static void prefault(struct rp_pool *p)
{
	if (madvise(p->map, p->map_len, MADV_POPULATE_WRITE) == 0)
		return;
	for (size_t off = 0; off < p->map_len; off += 4096)
		((volatile char *)p->map)[off] = 0;
}

static int register_pool(struct rp_pool *p)
{
	unsigned hi, slot;

	pthread_mutex_lock(&registry_lock);
	hi = atomic_load_explicit(&registry_hi, memory_order_relaxed);
	for (slot = 0; slot < hi; slot++)
		if (!atomic_load_explicit(&registry[slot].pool, memory_order_relaxed))
			break;
	if (slot == POOL_MAX) {
		pthread_mutex_unlock(&registry_lock);
		return -ENOSPC;
	}
	atomic_store_explicit(&registry[slot].base, (uintptr_t)p->base, memory_order_relaxed);
	atomic_store_explicit(&registry[slot].end, (uintptr_t)p->base + p->bytes,
			      memory_order_relaxed);
	/* Release: base and end are visible to whoever sees the pool. */
	atomic_store_explicit(&registry[slot].pool, p, memory_order_release);
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
	p->node = numa_node;
	err = map_arena(p, len, flags);
	if (err)
		goto fail_pool;
	err = bind_node(p, numa_node);
	if (err)
		goto fail_map;
	if ((flags & RP_POOL_MLOCK) && mlock(p->map, p->map_len)) {
		err = -errno;
		goto fail_map;
	}
	prefault(p);

	p->base = p->map;
	p->bytes = bytes;
	p->nspans = bytes >> SPAN_SHIFT;
	p->spans = calloc(p->nspans, sizeof(*p->spans));
	if (!p->spans) {
		err = -ENOMEM;
		goto fail_map;
	}
	for (size_t i = p->nspans; i-- > 0;) {
		p->spans[i].cls = CLASS_NONE;
		p->spans[i].next = p->free_spans;
		p->free_spans = &p->spans[i];
	}
	p->owner = &tls_token;
	err = register_pool(p);
	if (err)
		goto fail_spans;
	return p;

fail_spans:
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
	atomic_store_explicit(&registry[p->slot].pool, NULL, memory_order_release);
	atomic_store_explicit(&registry[p->slot].base, 0, memory_order_relaxed);
	atomic_store_explicit(&registry[p->slot].end, 0, memory_order_relaxed);
	pthread_mutex_unlock(&registry_lock);
	munmap(p->map, p->map_len);
	free(p->spans);
	free(p);
}

void rp_pool_stats(const struct rp_pool *p, struct rp_pool_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned c = 0; c < RP_POOL_NCLASS; c++) {
		out->class_allocs[c] = p->cls[c].allocs;
		out->allocs += p->cls[c].allocs;
	}
	for (size_t i = 0; i < p->nspans; i++) {
		const struct span *s = &p->spans[i];

		if (s->cls != CLASS_NONE)
			out->class_live_bytes[s->cls] += (uint64_t)s->used << class_shift(s->cls);
	}
	out->frees = p->frees;
	out->remote_frees = p->remote_frees;
	out->failures = p->failures;
	out->arena_bytes = p->bytes;
	out->spans_total = p->nspans;
	out->spans_used = p->spans_used;
	out->page_kind = p->kind;
	out->numa_node = p->node;
}

int rp_pool_iovecs(const struct rp_pool *p, struct iovec *iov, unsigned max)
{
	unsigned n = (unsigned)((p->bytes + IOV_CHUNK - 1) / IOV_CHUNK);

	for (unsigned i = 0; i < n && i < max; i++) {
		size_t off = (size_t)i * IOV_CHUNK;

		iov[i].iov_base = p->base + off;
		iov[i].iov_len = p->bytes - off < IOV_CHUNK ? p->bytes - off : IOV_CHUNK;
	}
	return (int)n;
}

int rp_pool_buf_index(const struct rp_pool *p, const void *ptr, size_t len)
{
	uintptr_t off = (uintptr_t)ptr - (uintptr_t)p->base;

	if (off >= p->bytes || len > p->bytes - off)
		return -EINVAL;
	if (len && off / IOV_CHUNK != (off + len - 1) / IOV_CHUNK)
		return -EINVAL;
	return (int)(off / IOV_CHUNK);
}
