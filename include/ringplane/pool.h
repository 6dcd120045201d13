/* SPDX-License-Identifier: MIT */
/*
 * ringplane pool: a per-shard slab allocator on one NUMA-local arena.
 *
 * The arena is mapped, bound to its NUMA node and faulted in at create
 * (huge pages first), so alloc and free never enter the kernel. It is cut
 * into 1 MB spans; a span serves one size class (powers of two, 64 B ..
 * 1 MB) and goes back to the arena when all its objects are free. Objects
 * of class C are aligned to C.
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

struct rp_pool_stats {
	uint64_t allocs;       /* successful rp_pool_alloc */
	uint64_t frees;	       /* frees applied by the owner (local + reclaimed remote) */
	uint64_t remote_frees; /* frees that came from another thread */
	uint64_t failures;     /* rp_pool_alloc returned NULL (exhausted or too big) */
	uint64_t class_allocs[RP_POOL_NCLASS];
	uint64_t class_live_bytes[RP_POOL_NCLASS]; /* allocated, not yet freed */
	size_t arena_bytes;
	size_t spans_total, spans_used;
	enum rp_page_kind page_kind;
	int numa_node; /* -1: not bound */
};

/*
 * rp_pool_create - map and bind an arena of @arena_bytes (rounded up to
 * whole 1 MB spans, at least one) on @numa_node (-1: no binding).
 *
 * Call on the thread that will own the pool. Returns NULL with errno set:
 * EINVAL (bad flags or node), ENOMEM (no memory, or no huge pages with
 * RP_POOL_HUGE_ONLY), EPERM/ENOMEM from mlock with RP_POOL_MLOCK, ENOSPC
 * (too many pools alive).
 */
struct rp_pool *rp_pool_create(int numa_node, size_t arena_bytes, unsigned flags);

/* rp_pool_destroy - unmap everything; NULL is a no-op. No thread may use
 * the pool or free into it concurrently or afterwards. */
void rp_pool_destroy(struct rp_pool *pool);

/*
 * rp_pool_alloc - owner thread only: an object of at least @size bytes
 * (1..1 MB; 0 is treated as 1), aligned to its class size. Returns NULL
 * when the pool is exhausted or @size > 1 MB; counted, never aborts.
 */
void *rp_pool_alloc(struct rp_pool *pool, size_t size);

/*
 * rp_pool_free - any thread: return @ptr to its pool; NULL is a no-op.
 * A pointer that no pool owns is ignored and counted in
 * rp_pool_foreign_frees() (it is a caller bug, but never a crash here).
 */
void rp_pool_free(void *ptr);

/* rp_pool_reclaim - owner only: apply pending remote frees now; returns how many. */
unsigned rp_pool_reclaim(struct rp_pool *pool);

/* rp_pool_adopt - make the calling thread the owner (the old owner must be quiescent). */
void rp_pool_adopt(struct rp_pool *pool);

/* rp_pool_stats - a snapshot; owner thread (other threads get a racy but safe view). */
void rp_pool_stats(const struct rp_pool *pool, struct rp_pool_stats *out);

/* rp_pool_foreign_frees - frees of pointers no pool owned, process-wide. */
uint64_t rp_pool_foreign_frees(void);

/* rp_pool_class_size - the class size serving @size, or 0 if > 1 MB. */
size_t rp_pool_class_size(size_t size);

/*
 * Fixed-buffer registration (io_uring_register_buffers): the arena as
 * iovecs of at most 1 GB each (the kernel's limit per buffer).
 * rp_pool_iovecs fills up to @max entries and returns how many the arena
 * needs (call with max = 0 to size the array), or -EINVAL.
 * rp_pool_buf_index returns the iovec index holding [@ptr, @ptr + @len), for
 * READ_FIXED/WRITE_FIXED/SEND_ZC with IORING_RECVSEND_FIXED_BUF, or -EINVAL
 * if that range is not inside one registered iovec.
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
