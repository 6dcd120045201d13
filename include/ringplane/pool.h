/* SPDX-License-Identifier: MIT */
/*
 * ringplane pool: a per-shard slab allocator on one NUMA-local arena.
 *
 * The arena is mapped, bound to its NUMA node and faulted in at create
 * (huge pages first), so alloc and free never enter the kernel. It is cut
 * into 1 MB spans; a span serves one size class (powers of two, 64 B ..
 * 1 MB) and goes back to the arena when all its objects are free.
 *
 * Alignment: objects of the classes 64 B .. 4 KB and 128 KB .. 1 MB are
 * aligned to their class size. Objects of 8 KB .. 64 KB
 * (RP_POOL_COLOUR_MIN..RP_POOL_COLOUR_MAX) are coloured (Bonwick): a
 * stride of size + 64 B apart, each span starting where the colours of the
 * span before it stopped, so successive objects start 64 B further into a
 * page; they are only 64 B (cache line) aligned. Aligned to their size,
 * 64 live objects of 64 KB put their first lines into one L1 set and one
 * L2 set (8 ways each), so a request path that touches them misses both
 * (issue 9 measured the 64 KB alloc+free+touch at 9-21 ns against 3.3 ns
 * at 64 B; on a busy host the gap comes and goes with the neighbours' use
 * of the L3: ringplane-bench alloc, class rows). A coloured span holds
 * one object fewer than 1 MB / size (rp_pool_class_capacity: 1/128 ..
 * 1/16 of the span).
 * 128 KB .. 1 MB stay aligned: with 8 or fewer objects per span a colour
 * would cost 1/8 of the span, up to all of it for 1 MB.
 *
 * Thread rules: one owner thread allocates (the creator, or the thread
 * that called rp_pool_adopt). Any thread may free: a free from another
 * thread is pushed on a lock-free stack and the owner reclaims it on its
 * next allocation that finds its free lists empty, or in rp_pool_reclaim().
 * The owner is found from the address alone.
 *
 * rp_pool_alloc and rp_pool_free are exported functions and, in C with
 * GCC or Clang, also macros for inline fast paths (ringplane/pool_inline.h;
 * define RP_POOL_NO_INLINE to get only the functions). Same semantics.
 */
#ifndef RINGPLANE_POOL_H
#define RINGPLANE_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rp_pool;

enum {
	RP_POOL_HUGE = 1u << 0,	     /* prefer 2 MB pages, then THP, then 4 KB */
	RP_POOL_HUGE_ONLY = 1u << 1, /* 2 MB hugetlb pages or fail with ENOMEM */
	RP_POOL_MLOCK = 1u << 2,     /* mlock the arena (needs RLIMIT_MEMLOCK) */
};

enum rp_page_kind {
	RP_PAGE_4K = 0,	    /* ordinary pages */
	RP_PAGE_THP = 1,    /* MADV_HUGEPAGE accepted, THP enabled on the host */
	RP_PAGE_HUGETLB = 2 /* 2 MB MAP_HUGETLB pages */
};

#define RP_POOL_MIN_CLASS 64u
#define RP_POOL_MAX_CLASS (1u << 20)
#define RP_POOL_NCLASS 15 /* 64 B .. 1 MB */
#define RP_POOL_SPAN (1u << 20)
#define RP_POOL_COLOUR_MIN (8u << 10)  /* smallest coloured class */
#define RP_POOL_COLOUR_MAX (64u << 10) /* largest coloured class */

struct rp_pool_stats {
	uint64_t allocs;       /* successful rp_pool_alloc */
	uint64_t frees;	       /* frees applied by the owner (local + reclaimed remote) */
	uint64_t remote_frees; /* frees that came from another thread */
	uint64_t failures;     /* rp_pool_alloc returned NULL (exhausted or too big) */
	uint64_t class_allocs[RP_POOL_NCLASS];
	uint64_t class_live_bytes[RP_POOL_NCLASS]; /* allocated, not yet freed */
	size_t arena_bytes;
	size_t spans_total, spans_used;
	/*
	 * The pages the arena got, checked at create: RP_PAGE_HUGETLB when the
	 * MAP_HUGETLB mapping was faulted in whole; otherwise RP_PAGE_THP when
	 * /proc/self/smaps shows AnonHugePages in the arena (huge_bytes says
	 * how much; where smaps cannot be read, when MADV_HUGEPAGE was
	 * accepted with THP enabled), else RP_PAGE_4K.
	 */
	enum rp_page_kind page_kind;
	int numa_node;	       /* -1: not bound */
	size_t huge_bytes;     /* arena bytes on 2 MB pages at create (hugetlb or THP) */
	uint64_t double_frees; /* frees refused as double frees (never applied) */
};

/*
 * rp_pool_create - map and bind an arena of @arena_bytes (rounded up to
 * whole 1 MB spans, at least one) on @numa_node (-1: no binding).
 *
 * Call on the thread that will own the pool. The arena is faulted in
 * whole here with MADV_POPULATE_WRITE. Huge pages: the hugetlb mapping is
 * kept only if that succeeds (a node without free huge pages fails the
 * fault, where a first touch by hand would be a SIGBUS); otherwise it is
 * unmapped and RP_POOL_HUGE falls back to THP, then 4 KB pages,
 * RP_POOL_HUGE_ONLY fails with ENOMEM. Kernels before
 * 5.14 (no MADV_POPULATE_WRITE) get no hugetlb pool. rp_pool_stats says
 * which pages the arena got.
 *
 * Returns NULL with errno set: EINVAL (bad flags or node), ENOMEM (no
 * memory, or no huge pages with RP_POOL_HUGE_ONLY), EPERM/ENOMEM from mlock
 * with RP_POOL_MLOCK, ENOSPC (too many pools alive).
 */
struct rp_pool *rp_pool_create(int numa_node, size_t arena_bytes, unsigned flags);

/* rp_pool_destroy - unmap everything; NULL is a no-op. No thread may use
 * the pool or free into it concurrently or afterwards. */
void rp_pool_destroy(struct rp_pool *pool);

/*
 * rp_pool_alloc - owner thread only: an object of at least @size bytes
 * (1..1 MB; 0 is treated as 1), aligned to its class size, or to 64 B for
 * the coloured classes (see Alignment above). Returns NULL when the pool
 * is exhausted or @size > 1 MB; counted, never aborts.
 *
 * Only @size bytes are the caller's, although the object is a whole class
 * (rp_pool_class_size(@size) bytes): a caller that wants the class's room
 * (a buffer to append to) asks for it, rp_pool_alloc(pool,
 * rp_pool_class_size(n)), which takes the same object at the same cost.
 * AddressSanitizer builds unpoison @size bytes and leave the rest of the
 * class poisoned, so a read or write past @size is reported
 * (use-after-poison); release builds do not check it.
 */
void *rp_pool_alloc(struct rp_pool *pool, size_t size);

/*
 * rp_pool_free - any thread: return @ptr to its pool; NULL is a no-op.
 * A pointer that no pool owns is ignored and counted in
 * rp_pool_foreign_frees() (it is a caller bug, but never a crash here).
 *
 * A free from another thread writes the object's first two words (the
 * remote list's link and a state word).
 *
 * AddressSanitizer builds: the whole object (its class size) is poisoned
 * from this free to its next allocation, which unpoisons the size that
 * allocation asked for, so a use after free is reported (docs/pool.md,
 * "AddressSanitizer"); the caller's code
 * and the library must both be ASan builds, or the caller defines
 * RP_POOL_NO_INLINE.
 *
 * Double frees: a second free from another thread of an object whose
 * first remote free the owner has not reclaimed yet is refused and
 * counted in rp_pool_stats().double_frees (the state word, set with one
 * atomic exchange; the object would otherwise link the remote list into a
 * cycle that the owner walks forever). A double free that the owner sees (local, or remote after
 * the reclaim) is caught only in a pool_debug build (meson -Dpool_debug=true),
 * which tracks every object in a bitmap and sends every alloc and free
 * through the checked slow path.
 */
void rp_pool_free(void *ptr);

/* rp_pool_reclaim - owner only: apply pending remote frees now; returns how many.
 * rp_pool_alloc, rp_pool_reclaim, rp_pool_adopt and rp_pool_stats take a
 * pool that is not NULL (and rp_pool_stats an @out that is not NULL): they
 * return no error, and alloc is the per-object hot path, so they do not check. */
unsigned rp_pool_reclaim(struct rp_pool *pool);

/* rp_pool_adopt - make the calling thread the owner (the old owner must be quiescent). */
void rp_pool_adopt(struct rp_pool *pool);

/* rp_pool_stats - a snapshot; owner thread (other threads get a racy but safe view). */
void rp_pool_stats(const struct rp_pool *pool, struct rp_pool_stats *out);

/*
 * rp_pool_spans_free - owner only: the 1 MB spans any size class could
 * take now: those no class holds, and those a class holds with none of
 * their objects out of the span (an object freed into its class's cache
 * still counts as out until the flush below). Bytes free are not room: a class with
 * no free object needs a whole span, so a pool whose spans all went to
 * other classes fails an allocation although many bytes are free in
 * theirs. A caller that keeps a reserve for what its established work will
 * still allocate counts it here, in spans. When fewer than @want are
 * counted, the pending remote frees and every class cache go back to their
 * spans first (as an allocation that finds the arena empty does) and the
 * spans are counted again; so with @want 0 it never flushes, and with a
 * @want above the count it costs a walk of the caches (at most 61 objects
 * a class): a check per connection, not per object. Never fails.
 */
size_t rp_pool_spans_free(struct rp_pool *pool, size_t want);

/*
 * rp_pool_class_free - owner only: how many objects of the class serving
 * @size (the class of rp_pool_class_size(@size); 0 is treated as 1) the
 * pool can give now, in two parts:
 *   - without a new span: the objects in the class's cache and those its
 *     spans still hold (never handed out, or back from the cache), in its
 *     spans that have something out;
 *   - plus rp_pool_spans_free(pool, 0) * rp_pool_class_capacity(@size):
 *     every span any class could take now, this class's own spans with
 *     nothing out among them, filled with this class.
 * So rp_pool_class_free(p, s, 0) - rp_pool_spans_free(p, 0) *
 * rp_pool_class_capacity(s) is the class's own part, and a caller that
 * needs room in several classes at once must not count the free spans once
 * per class (they are shared): compare the sum of each class's missing
 * spans with rp_pool_spans_free instead.
 * Like rp_pool_spans_free, when fewer than @want are counted the pending
 * remote frees and every class cache go back to their spans first and the
 * count is taken again (@want 0: never; SIZE_MAX: always). After that
 * flush the count is exact: the number of rp_pool_alloc(pool, @size) calls
 * in a row that succeed, with no free in between; without it, a lower
 * bound (objects cached by other classes may empty more spans). A check
 * per connection, not per object: O(1), plus the flush (at most 61
 * objects a class) when it counts fewer than @want.
 * Returns 0 for @size > 1 MB; never fails.
 */
size_t rp_pool_class_free(struct rp_pool *pool, size_t size, size_t want);

/* rp_pool_foreign_frees - frees of pointers no pool owned, process-wide. */
uint64_t rp_pool_foreign_frees(void);

/* rp_pool_class_size - the class size serving @size, or 0 if > 1 MB.
 * The object rp_pool_alloc(pool, @size) gives is this big, but only @size
 * of it is the caller's: ask for this size to use all of it. */
size_t rp_pool_class_size(size_t size);

/* rp_pool_class_capacity - objects of the class serving @size that one
 * 1 MB span holds (one fewer than 1 MB / size for coloured classes), or 0
 * if @size > 1 MB. */
size_t rp_pool_class_capacity(size_t size);

/* rp_pool_debug - 1 when the library was built with pool_debug (every
 * free checked, see rp_pool_free), else 0. */
int rp_pool_debug(void);

/*
 * Fixed-buffer registration (io_uring_register_buffers): the arena as
 * iovecs of at most 1 GB each (the kernel's limit per buffer).
 * rp_pool_iovecs fills up to @max entries and returns how many the arena
 * needs (call with max = 0 to size the array; @iov may then be NULL), or
 * -EINVAL for a NULL @pool or a NULL @iov with @max > 0.
 * rp_pool_buf_index returns the iovec index holding [@ptr, @ptr + @len), for
 * READ_FIXED/WRITE_FIXED/SEND_ZC with IORING_RECVSEND_FIXED_BUF, or -EINVAL
 * for a NULL @pool or @ptr or if that range is not inside one registered iovec.
 */
int rp_pool_iovecs(const struct rp_pool *pool, struct iovec *iov, unsigned max);
int rp_pool_buf_index(const struct rp_pool *pool, const void *ptr, size_t len);

/* rp_pool_page_kind_name - "hugetlb-2M", "thp", "4K". */
const char *rp_pool_page_kind_name(enum rp_page_kind kind);

#include <ringplane/pool_inline.h>

#ifdef __cplusplus
}
#endif

#endif /* RINGPLANE_POOL_H */
