/* SPDX-License-Identifier: MIT */
/*
 * rp_pool: every class, alignment and colouring, no overlap, exhaustion and
 * span reuse across classes, remote frees from another thread reused by
 * the owner, refused frees (foreign, interior, remote double frees), fixed-
 * buffer iovecs, the huge-page path for real (reserving and withholding
 * 2 MB pages when running as root, a printed skip otherwise), the page kind
 * checked against /proc/self/smaps and mlock against VmLck.
 *
 * Built twice: test_pool against the library, and test_pool_debug with
 * alloc/pool.c compiled in with RP_POOL_DEBUG (the pool_debug build), which
 * also runs the tests of local double frees.
 */
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <ringplane/pool.h>
#include <ringplane/spsc.h>

#include "thread_test.h"

#define MB ((size_t)1 << 20)

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED_CLANG 1
#endif
#endif
#ifndef SANITIZED_CLANG
#define SANITIZED_CLANG 0
#endif
#if defined(__SANITIZE_ADDRESS__)
#define ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN_BUILD 1
#endif
#endif
#ifdef ASAN_BUILD
#include <sanitizer/asan_interface.h>
#endif

/*
 * mmap, seen by the library linked into this program: with
 * hugetlb_noreserve set, a MAP_HUGETLB mapping also gets MAP_NORESERVE, so
 * the kernel maps it without setting pages aside and the pages are
 * missing at fault time, as they are on a NUMA node without free huge
 * pages (the reservation is global, the fault is on the bound node).
 * Everything else goes to the next mmap unchanged (libc, or a sanitizer's).
 */
static atomic_int hugetlb_noreserve;

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	static _Atomic(void *) next_p;
	void *(*next)(void *, size_t, int, int, int, off_t);
	void *n = atomic_load(&next_p);

	if (!n) {
		n = dlsym(RTLD_NEXT, "mmap64");
		atomic_store(&next_p, n);
	}
	if (!n) {
		errno = ENOSYS;
		return MAP_FAILED;
	}
	*(void **)&next = n;
	if ((flags & MAP_HUGETLB) && atomic_load(&hugetlb_noreserve))
		flags |= MAP_NORESERVE;
	return next(addr, len, prot, flags, fd, off);
}

/*
 * Run @fn in a child process with a deadline of @timeout_s; a hang (an
 * owner spinning on a cyclic remote list) or a signal (SIGBUS from a
 * huge page touched by hand) is a failure of the test, not of the run.
 * The child reports through its exit status: 0 passed, 77 skipped.
 */
#define CHILD_FAIL(...)                                                   \
	do {                                                              \
		fprintf(stderr, "child: " __VA_ARGS__);                   \
		fputc('\n', stderr);                                      \
		_exit(1);                                                 \
	} while (0)
#define CHILD_CHECK(cond)                                                 \
	do {                                                              \
		if (!(cond))                                              \
			CHILD_FAIL("%s:%d: %s", __FILE__, __LINE__, #cond); \
	} while (0)

#define CHILD_HUNG 1000
#define CHILD_SIGNAL 2000 /* + the signal */

/* 0..255: the child's exit status; CHILD_HUNG; CHILD_SIGNAL + signal. The
 * caller restores what it changed, then checks with child_ok. */
static int run_child(void (*fn)(void), double timeout_s)
{
	double deadline = now_s() + timeout_s;
	int status;
	pid_t pid, r;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/* cmocka's handlers would carry on with the next test here. */
		signal(SIGBUS, SIG_DFL);
		signal(SIGSEGV, SIG_DFL);
		signal(SIGILL, SIG_DFL);
		signal(SIGFPE, SIG_DFL);
		fn();
		_exit(0);
	}
	while ((r = waitpid(pid, &status, WNOHANG)) == 0 && now_s() < deadline)
		usleep(10000);
	if (r == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		return CHILD_HUNG;
	}
	if (r != pid)
		return -ECHILD;
	if (WIFSIGNALED(status))
		return CHILD_SIGNAL + WTERMSIG(status);
	return WEXITSTATUS(status);
}

static void child_ok(int rc, double timeout_s)
{
	if (rc == CHILD_HUNG)
		fail_msg("child still running after %.0f s (hung)", timeout_s);
	if (rc >= CHILD_SIGNAL)
		fail_msg("child killed by signal %d (%s)", rc - CHILD_SIGNAL,
			 strsignal(rc - CHILD_SIGNAL));
	assert_int_equal(rc, 0);
}

static void test_class_sizes(void **state)
{
	(void)state;
	assert_int_equal(rp_pool_class_size(0), 64);
	assert_int_equal(rp_pool_class_size(1), 64);
	assert_int_equal(rp_pool_class_size(64), 64);
	assert_int_equal(rp_pool_class_size(65), 128);
	assert_int_equal(rp_pool_class_size(4096), 4096);
	assert_int_equal(rp_pool_class_size(4097), 8192);
	assert_int_equal(rp_pool_class_size(MB), MB);
	assert_int_equal(rp_pool_class_size(MB + 1), 0);
}

static void test_create_rejects_bad_arguments(void **state)
{
	(void)state;
	errno = 0;
	assert_null(rp_pool_create(-1, MB, 0x80));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(rp_pool_create(4095, MB, 0));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(rp_pool_create(-2, MB, 0));
	assert_int_equal(errno, EINVAL);
}

/* Every class: aligned to its size, writable over the size asked for, and
 * no two live objects overlap: their whole classes are disjoint address
 * ranges, and each keeps its own fill pattern until freed. Only the size
 * asked for is written (the rest of the class is not the caller's, and
 * poisoned under ASan); the first of each class asks for the whole class. */
static void test_every_class_aligned_no_overlap(void **state)
{
	struct rp_pool *p = rp_pool_create(-1, 64 * MB, 0);
	enum { PER_CLASS = 7 };
	void *objs[RP_POOL_NCLASS][PER_CLASS];
	struct rp_pool_stats st;

	(void)state;
	assert_non_null(p);
	for (unsigned c = 0; c < RP_POOL_NCLASS; c++) {
		size_t sz = (size_t)64 << c;

		for (unsigned i = 0; i < PER_CLASS; i++) {
			/* Ask for odd sizes inside the class too. */
			size_t ask = i == 0 ? sz : sz / 2 + 1 + i;

			objs[c][i] = rp_pool_alloc(p, ask);
			assert_non_null(objs[c][i]);
			/* The header's promise: coloured classes to 64 B. */
			if (sz >= RP_POOL_COLOUR_MIN && sz <= RP_POOL_COLOUR_MAX)
				assert_int_equal((uintptr_t)objs[c][i] & 63, 0);
			else
				assert_int_equal((uintptr_t)objs[c][i] & (sz - 1), 0);
			memset(objs[c][i], (int)(c * PER_CLASS + i + 1), ask);
		}
	}
	for (unsigned c = 0; c < RP_POOL_NCLASS * PER_CLASS; c++)
		for (unsigned d = c + 1; d < RP_POOL_NCLASS * PER_CLASS; d++) {
			uintptr_t a = (uintptr_t)objs[c / PER_CLASS][c % PER_CLASS];
			uintptr_t b = (uintptr_t)objs[d / PER_CLASS][d % PER_CLASS];

			if (a < b + ((size_t)64 << (d / PER_CLASS)) &&
			    b < a + ((size_t)64 << (c / PER_CLASS)))
				fail_msg("class %u obj %u overlaps class %u obj %u", c / PER_CLASS,
					 c % PER_CLASS, d / PER_CLASS, d % PER_CLASS);
		}
	for (unsigned c = 0; c < RP_POOL_NCLASS; c++) {
		size_t sz = (size_t)64 << c;

		for (unsigned i = 0; i < PER_CLASS; i++) {
			const unsigned char *b = objs[c][i];
			unsigned char want = (unsigned char)(c * PER_CLASS + i + 1);
			size_t ask = i == 0 ? sz : sz / 2 + 1 + i;

			for (size_t k = 0; k < ask; k += 61)
				if (b[k] != want)
					fail_msg("class %u obj %u byte %zu overwritten", c, i, k);
			assert_int_equal(b[ask - 1], want);
		}
	}
	rp_pool_stats(p, &st);
	assert_int_equal(st.allocs, RP_POOL_NCLASS * PER_CLASS);
	assert_int_equal(st.class_live_bytes[3], PER_CLASS * 512);
	for (unsigned c = 0; c < RP_POOL_NCLASS; c++)
		for (unsigned i = 0; i < PER_CLASS; i++)
			rp_pool_free(objs[c][i]);
	rp_pool_stats(p, &st);
	assert_int_equal(st.frees, RP_POOL_NCLASS * PER_CLASS);
	for (unsigned c = 0; c < RP_POOL_NCLASS; c++)
		assert_int_equal(st.class_live_bytes[c], 0);
	rp_pool_destroy(p);
}

/*
 * Colouring: 64 live objects of each class (the bench's working set) put
 * at most 8 first lines into one L2 set (512 KB, 8 ways: address bits
 * 6..15) for every class up to RP_POOL_COLOUR_MAX, and into one L1 set
 * (32 KB, 8 ways: bits 6..11) for the coloured classes; aligned, 64 objects
 * of 64 KB share one L2 set and those of 4 KB and up one L1 set (1..4 KB
 * stay aligned: their lines spread over the L2, where the bench shows them
 * as cheap as 64 B). A span holds rp_pool_class_capacity objects,
 * not one more; an interior pointer on a 64 B boundary of a coloured object
 * is refused; every object is inside the registered iovec.
 */
static unsigned max_per_set(void *const *obj, unsigned n, unsigned set_bits)
{
	unsigned count[1024] = { 0 }, max = 0;

	for (unsigned i = 0; i < n; i++) {
		unsigned set = (unsigned)(((uintptr_t)obj[i] >> 6) & ((1u << set_bits) - 1));

		if (++count[set] > max)
			max = count[set];
	}
	return max;
}

static void test_coloured_classes_spread_cache_sets(void **state)
{
	enum { LIVE = 64 };
	struct rp_pool *p = rp_pool_create(-1, 64 * MB, 0);
	uint64_t foreign0 = rp_pool_foreign_frees();
	struct rp_pool_stats st;
	struct iovec iov;
	void *obj[LIVE];

	(void)state;
	assert_non_null(p);
	assert_int_equal(rp_pool_iovecs(p, &iov, 1), 1);
	for (size_t sz = 64; sz <= RP_POOL_COLOUR_MAX; sz *= 2) {
		for (unsigned i = 0; i < LIVE; i++) {
			obj[i] = rp_pool_alloc(p, sz);
			assert_non_null(obj[i]);
			assert_true((char *)obj[i] >= (char *)iov.iov_base &&
				    (char *)obj[i] + sz <= (char *)iov.iov_base + iov.iov_len);
			assert_int_equal(rp_pool_buf_index(p, obj[i], sz), 0);
			memset(obj[i], 0x11, sz);
		}
		if (max_per_set(obj, LIVE, 10) > 8 ||
		    (sz >= RP_POOL_COLOUR_MIN && max_per_set(obj, LIVE, 6) > 8))
			fail_msg("%zu B: %u of %u first lines in one L1 set, %u in one L2 set", sz,
				 max_per_set(obj, LIVE, 6), LIVE, max_per_set(obj, LIVE, 10));
		if (sz >= RP_POOL_COLOUR_MIN) {
			rp_pool_free((char *)obj[1] + 64); /* interior, 64 B aligned */
			assert_int_equal(rp_pool_foreign_frees(), foreign0 + 1);
			foreign0++;
		}
		for (unsigned i = 0; i < LIVE; i++)
			rp_pool_free(obj[i]);
	}
	rp_pool_stats(p, &st);
	assert_int_equal(st.allocs, st.frees);
	rp_pool_destroy(p);

	/* Capacity: a one-span pool holds exactly the class's capacity. */
	for (size_t sz = 64; sz <= RP_POOL_MAX_CLASS; sz *= 2) {
		size_t cap = rp_pool_class_capacity(sz), n = 0;
		static void *all[MB / 64 + 1]; /* one more than fits: must fail */

		p = rp_pool_create(-1, MB, 0);
		assert_non_null(p);
		if (sz >= RP_POOL_COLOUR_MIN && sz <= RP_POOL_COLOUR_MAX)
			assert_int_equal(cap, MB / (sz + 64));
		else
			assert_int_equal(cap, MB / sz);
		while (n <= cap && (all[n] = rp_pool_alloc(p, sz)))
			n++;
		assert_int_equal(n, cap);
		/* The last object ends inside the span: write all of it. */
		memset(all[n - 1], 0x22, sz);
		for (size_t i = 0; i < n; i++)
			rp_pool_free(all[i]);
		rp_pool_stats(p, &st);
		assert_int_equal(st.frees, cap);
		rp_pool_destroy(p);
	}
	assert_int_equal(rp_pool_class_capacity(MB + 1), 0);
}

/* Exhaustion returns NULL and counts; freed spans serve other classes. */
static void test_exhaustion_and_span_reuse(void **state)
{
	struct rp_pool *p = rp_pool_create(-1, 4 * MB, 0);
	void *big[4], *small[4 * (MB / 4096)];
	struct rp_pool_stats st;
	size_t n = 0;

	(void)state;
	assert_non_null(p);
	for (int i = 0; i < 4; i++)
		assert_non_null(big[i] = rp_pool_alloc(p, MB));
	assert_null(rp_pool_alloc(p, MB));
	assert_null(rp_pool_alloc(p, 64));
	assert_null(rp_pool_alloc(p, MB + 1)); /* too big: also a counted failure */
	rp_pool_stats(p, &st);
	assert_int_equal(st.failures, 3);
	assert_int_equal(st.spans_used, 4);
	for (int i = 0; i < 4; i++)
		rp_pool_free(big[i]);
	/* Every span back: now all of it as 4 KB objects. */
	while (n < sizeof(small) / sizeof(small[0]) && (small[n] = rp_pool_alloc(p, 4096)))
		n++;
	assert_int_equal(n, 4 * (MB / 4096));
	assert_null(rp_pool_alloc(p, 4096));
	for (size_t i = 0; i < n; i++)
		rp_pool_free(small[i]);
	/* Empty spans stay with their class (no churn)... */
	rp_pool_stats(p, &st);
	assert_int_equal(st.spans_used, 4);
	assert_int_equal(st.class_live_bytes[6], 0);
	/* ...until another class needs them: all four come back. */
	for (int i = 0; i < 4; i++)
		assert_non_null(big[i] = rp_pool_alloc(p, MB));
	assert_null(rp_pool_alloc(p, 64));
	for (int i = 0; i < 4; i++)
		rp_pool_free(big[i]);
	rp_pool_destroy(p);
}

/*
 * rp_pool_spans_free counts whole spans, not bytes: one 64 B object holds
 * a span from every other class; with the rest taken by 1 MB objects a
 * 4 KB allocation fails while nearly 1 MB of bytes is free, and the count
 * says 0. An object freed into its class cache hides its span from the
 * cheap count; asking for more than that flushes the caches and counts it.
 */
static void test_spans_free_counts_spans_not_bytes(void **state)
{
	struct rp_pool *p = rp_pool_create(-1, 4 * MB, 0);
	void *small, *big[3], *page;

	(void)state;
	assert_non_null(p);
	assert_int_equal(rp_pool_spans_free(p, 0), 4);
	assert_non_null(small = rp_pool_alloc(p, 64));
	assert_int_equal(rp_pool_spans_free(p, 0), 3);
	for (int i = 0; i < 3; i++)
		assert_non_null(big[i] = rp_pool_alloc(p, MB));
	assert_int_equal(rp_pool_spans_free(p, 4), 0);
	assert_null(rp_pool_alloc(p, 4096)); /* ~1 MB of bytes free, no span */
	rp_pool_free(small);
	/* in the 64 B cache: its span looks held until the caches go back */
	if (!rp_pool_debug())
		assert_int_equal(rp_pool_spans_free(p, 0), 0);
	assert_int_equal(rp_pool_spans_free(p, 1), 1);
	assert_non_null(page = rp_pool_alloc(p, 4096)); /* that span, for 4 KB */
	assert_int_equal(rp_pool_spans_free(p, 1), 0);
	rp_pool_free(page);
	for (int i = 0; i < 3; i++)
		rp_pool_free(big[i]);
	assert_int_equal(rp_pool_spans_free(p, 4), 4);
	rp_pool_destroy(p);
}

struct spans_remote {
	void **objs;
	size_t n;
};

static void *spans_remote_freer(void *arg)
{
	struct spans_remote *r = arg;

	for (size_t i = 0; i < r->n; i++) {
		rp_pool_free(r->objs[i]);
		if (i % 64 == 0)
			sched_yield();
	}
	return NULL;
}

/* Remote frees while the owner counts: what another thread freed is
 * counted once the owner asks for more than it sees (the count takes the
 * remote stack); the owner's reads race with no push (TSan: tsan build). */
static void test_spans_free_takes_remote_frees(void **state)
{
	enum { N = 8 * 256 }; /* 4 KB objects: all 8 spans */
	struct rp_pool *p = rp_pool_create(-1, 8 * MB, 0);
	struct spans_remote r = { .objs = calloc(N, sizeof(void *)), .n = N };
	pthread_t t;
	size_t seen = 0;

	(void)state;
	assert_non_null(p);
	assert_non_null(r.objs);
	for (size_t i = 0; i < N; i++)
		assert_non_null(r.objs[i] = rp_pool_alloc(p, 4096));
	assert_null(rp_pool_alloc(p, 4096));
	assert_int_equal(rp_pool_spans_free(p, 8), 0);
	assert_int_equal(pthread_create(&t, NULL, spans_remote_freer, &r), 0);
	/* bounded: 100000 counts, or until all 8 are seen */
	for (int i = 0; i < 100000 && seen < 8; i++) {
		size_t n = rp_pool_spans_free(p, 8);

		assert_true(n <= 8);
		if (n > seen)
			seen = n;
	}
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(rp_pool_spans_free(p, 8), 8);
	/* and they are real: 8 spans of 1 MB objects */
	for (int i = 0; i < 8; i++)
		assert_non_null(r.objs[i] = rp_pool_alloc(p, MB));
	for (int i = 0; i < 8; i++)
		rp_pool_free(r.objs[i]);
	free(r.objs);
	rp_pool_destroy(p);
}

/* Allocate @size until the pool says no (at most @max); returns how many. */
static size_t alloc_until_null(struct rp_pool *p, size_t size, void **objs, size_t max)
{
	size_t n = 0;

	while (n < max && (objs[n] = rp_pool_alloc(p, size)))
		n++;
	return n;
}

static void free_all(void **objs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		rp_pool_free(objs[i]);
}

/*
 * rp_pool_class_free counts objects of one class: its own free objects
 * (cache and spans) plus the free spans filled with it. The cheap count
 * (@want 0) is a lower bound; once it flushes (@want above the count) it is
 * exactly how many allocations of that class succeed in a row. Checked
 * against real allocation for a small class, a coloured one and 1 MB, in a
 * pool that other classes share.
 */
static void test_class_free_counts_one_class(void **state)
{
	enum { MAXOBJ = 6 * 16384 };
	struct rp_pool *p = rp_pool_create(-1, 6 * MB, 0);
	void **objs = calloc(MAXOBJ, sizeof(void *));
	void *small[100], *mid[3], *big, *s64;
	size_t cap64 = rp_pool_class_capacity(64), cap8k = rp_pool_class_capacity(8192);
	size_t n, cheap;

	(void)state;
	assert_non_null(p);
	assert_non_null(objs);
	assert_int_equal(rp_pool_class_free(p, 64, 0), 6 * cap64);
	assert_int_equal(rp_pool_class_free(p, 0, 0), 6 * cap64); /* 0 is 1: 64 B */
	assert_int_equal(rp_pool_class_free(p, MB, 0), 6);
	assert_int_equal(rp_pool_class_free(p, MB + 1, SIZE_MAX), 0);
	assert_int_equal(rp_pool_class_free(p, 5000, 0), 6 * cap8k); /* 8 KB, coloured */

	/* three classes hold a span each; half the 64 B objects go back */
	for (int i = 0; i < 100; i++)
		assert_non_null(small[i] = rp_pool_alloc(p, 64));
	for (int i = 0; i < 3; i++)
		assert_non_null(mid[i] = rp_pool_alloc(p, 8192));
	assert_non_null(big = rp_pool_alloc(p, MB));
	for (int i = 50; i < 100; i++)
		rp_pool_free(small[i]);
	assert_int_equal(rp_pool_spans_free(p, 0), 3);
	/* the class's own part is exact without a flush: cache plus spans */
	assert_int_equal(rp_pool_class_free(p, 64, 0), cap64 - 50 + 3 * cap64);
	assert_int_equal(rp_pool_class_free(p, 8192, 0) - 3 * cap8k, cap8k - 3);
	assert_int_equal(rp_pool_class_free(p, MB, 0), 3);
	n = rp_pool_class_free(p, 64, SIZE_MAX);
	assert_int_equal(n, cap64 - 50 + 3 * cap64);
	assert_int_equal(alloc_until_null(p, 64, objs, MAXOBJ), n);
	assert_int_equal(rp_pool_class_free(p, 64, SIZE_MAX), 0);
	assert_int_equal(rp_pool_class_free(p, MB, SIZE_MAX), 0);
	free_all(objs, n);

	/* the 64 B objects just freed sit in its cache (61 at most) and hold
	 * a span: the cheap count does not see it, the flushed one does */
	cheap = rp_pool_class_free(p, 8192, 0);
	n = rp_pool_class_free(p, 8192, SIZE_MAX);
	assert_true(cheap <= n);
	if (!rp_pool_debug())
		assert_int_equal(cheap, cap8k - 3 + 2 * cap8k);
	assert_int_equal(n, cap8k - 3 + 3 * cap8k);
	assert_int_equal(alloc_until_null(p, 8192, objs, MAXOBJ), n);
	/* the 64 B span (50 out) is all that class has left */
	assert_int_equal(rp_pool_class_free(p, 64, SIZE_MAX), cap64 - 50);
	assert_non_null(s64 = rp_pool_alloc(p, 64));
	assert_int_equal(rp_pool_class_free(p, 64, SIZE_MAX), cap64 - 51);
	rp_pool_free(s64);
	free_all(objs, n);

	/* everything back: every span for any class */
	for (int i = 0; i < 50; i++)
		rp_pool_free(small[i]);
	for (int i = 0; i < 3; i++)
		rp_pool_free(mid[i]);
	rp_pool_free(big);
	assert_int_equal(rp_pool_class_free(p, MB, SIZE_MAX), 6);
	assert_int_equal(rp_pool_class_free(p, 64, 0), 6 * cap64);
	free(objs);
	rp_pool_destroy(p);
}

/* Objects another thread freed are counted once the owner asks for more
 * than the cheap count sees (the count takes the remote stack). */
static void test_class_free_takes_remote_frees(void **state)
{
	enum { N = 4 * 256 }; /* 4 KB objects: all 4 spans */
	struct rp_pool *p = rp_pool_create(-1, 4 * MB, 0);
	/* one slot more: the allocation that fails writes its NULL there */
	struct spans_remote r = { .objs = calloc(N + 1, sizeof(void *)), .n = N };
	pthread_t t;

	(void)state;
	assert_non_null(p);
	assert_non_null(r.objs);
	assert_int_equal(alloc_until_null(p, 4096, r.objs, N), N);
	assert_null(rp_pool_alloc(p, 4096)); /* and no more */
	assert_int_equal(rp_pool_class_free(p, 4096, SIZE_MAX), 0);
	assert_int_equal(pthread_create(&t, NULL, spans_remote_freer, &r), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(rp_pool_class_free(p, 4096, 0), 0); /* pending: not seen */
	assert_int_equal(rp_pool_class_free(p, 64, 1), 4 * rp_pool_class_capacity(64));
	assert_int_equal(rp_pool_class_free(p, 4096, 0), N);
	free(r.objs);
	rp_pool_destroy(p);
}

static void test_foreign_and_interior_frees_are_refused(void **state)
{
	struct rp_pool *p = rp_pool_create(-1, 2 * MB, 0);
	uint64_t before = rp_pool_foreign_frees();
	char *obj, *heap = malloc(32);
	struct rp_pool_stats st;

	(void)state;
	assert_non_null(p);
	obj = rp_pool_alloc(p, 256);
	assert_non_null(obj);
	rp_pool_free(heap);    /* not ours */
	rp_pool_free(obj + 8); /* interior */
	rp_pool_free(NULL);    /* no-op */
	assert_int_equal(rp_pool_foreign_frees(), before + 2);
	rp_pool_stats(p, &st);
	assert_int_equal(st.frees, 0);
	rp_pool_free(obj);
	free(heap);
	rp_pool_destroy(p);
}

/* More frees than the class cache holds (it gives half back to the spans),
 * two pools freed into alternately (the per-thread registry slot moves),
 * and the exported functions next to the inline macros: every object comes
 * back exactly once and the counts add up. */
static void test_cache_spill_two_pools_exported(void **state)
{
	enum { N = 1000 };
	struct rp_pool *p[2] = { rp_pool_create(-1, 2 * MB, 0), rp_pool_create(-1, 2 * MB, 0) };
	static void *obj[2][N];
	struct rp_pool_stats st;

	(void)state;
	assert_non_null(p[0]);
	assert_non_null(p[1]);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < N; i++) {
			for (int k = 0; k < 2; k++) {
				obj[k][i] = (i & 1) ? (rp_pool_alloc)(p[k], 128) : rp_pool_alloc(p[k], 128);
				assert_non_null(obj[k][i]);
				memset(obj[k][i], 0xa0 + k, 128);
			}
		}
		/* distinct objects: sort-free check through a stamp */
		for (int i = 0; i < N; i++)
			for (int k = 0; k < 2; k++)
				*(int *)obj[k][i] = i;
		for (int i = 0; i < N; i++)
			for (int k = 0; k < 2; k++)
				assert_int_equal(*(int *)obj[k][i], i);
		for (int i = 0; i < N; i++) {
			for (int k = 0; k < 2; k++) {
				if (i & 2)
					(rp_pool_free)(obj[k][i]);
				else
					rp_pool_free(obj[k][i]);
			}
		}
	}
	for (int k = 0; k < 2; k++) {
		rp_pool_stats(p[k], &st);
		assert_int_equal(st.allocs, 3 * N);
		assert_int_equal(st.frees, 3 * N);
		assert_int_equal(st.class_live_bytes[1], 0);
		assert_int_equal(st.spans_used, 1);
		rp_pool_destroy(p[k]);
	}
}

static void test_iovecs_and_buf_index(void **state)
{
	struct rp_pool *p = rp_pool_create(-1, 3 * MB, 0);
	struct iovec iov[2];
	char *a;

	(void)state;
	assert_non_null(p);
	assert_int_equal(rp_pool_iovecs(p, NULL, 0), 1);
	assert_int_equal(rp_pool_iovecs(p, iov, 2), 1);
	assert_int_equal(iov[0].iov_len, 3 * MB);
	a = rp_pool_alloc(p, 4096);
	assert_true(a >= (char *)iov[0].iov_base && a + 4096 <= (char *)iov[0].iov_base + 3 * MB);
	assert_int_equal(rp_pool_buf_index(p, a, 4096), 0);
	assert_int_equal(rp_pool_buf_index(p, (char *)iov[0].iov_base + 3 * MB, 1), -EINVAL);
	assert_int_equal(rp_pool_buf_index(p, a, 4 * MB), -EINVAL);
	/* NULL arguments are refused as the header says, not dereferenced */
	assert_int_equal(rp_pool_iovecs(NULL, iov, 2), -EINVAL);
	assert_int_equal(rp_pool_iovecs(NULL, NULL, 0), -EINVAL);
	assert_int_equal(rp_pool_iovecs(p, NULL, 4), -EINVAL);
	assert_int_equal(rp_pool_buf_index(NULL, a, 1), -EINVAL);
	assert_int_equal(rp_pool_buf_index(p, NULL, 1), -EINVAL);
	assert_int_equal(rp_pool_buf_index(p, NULL, 0), -EINVAL);
	rp_pool_free(a);
	rp_pool_destroy(p);
}

struct remote {
	struct rp_spsc *ring;
	uint64_t n;
	int timed_out;
};

/* The other thread frees everything the owner hands it. */
static void *remote_freer(void *arg)
{
	struct remote *r = arg;
	double deadline = now_s() + DEADLINE_S;
	uint64_t done = 0, spins = 0;

	while (done < r->n) {
		void *obj = rp_spsc_pop(r->ring);

		if (!obj) {
			if ((++spins & 0xffff) == 0 && now_s() > deadline) {
				r->timed_out = 1;
				return NULL;
			}
			sched_yield();
			continue;
		}
		rp_pool_free(obj);
		done++;
	}
	return NULL;
}

/* 10^6 objects freed by another thread; the pool holds 16384 of them, so
 * the owner only keeps going by reclaiming the remote frees. */
static void test_million_remote_frees_reused(void **state)
{
	const uint64_t n = 1000000;
	struct rp_pool *p = rp_pool_create(-1, 4 * MB, 0);
	struct remote r = { .ring = rp_spsc_create(1024), .n = n };
	double deadline = now_s() + DEADLINE_S;
	struct rp_pool_stats st;
	pthread_t t;
	uint64_t sent = 0;

	(void)state;
	assert_non_null(p);
	assert_non_null(r.ring);
	assert_int_equal(pthread_create(&t, NULL, remote_freer, &r), 0);
	while (sent < n) {
		void *obj = rp_pool_alloc(p, 256);

		if (!obj) { /* everything is in flight: let the freer catch up */
			if (now_s() > deadline)
				fail_msg("pool never refilled after %ju objects", (uintmax_t)sent);
			sched_yield();
			continue;
		}
		*(uint64_t *)obj = sent;
		while (!rp_spsc_push(r.ring, obj)) {
			if (now_s() > deadline)
				fail_msg("freer stalled at %ju", (uintmax_t)sent);
			sched_yield();
		}
		sent++;
	}
	pthread_join(t, NULL);
	assert_false(r.timed_out);
	rp_pool_reclaim(p);
	rp_pool_stats(p, &st);
	assert_int_equal(st.remote_frees, n);
	assert_int_equal(st.frees, n);
	assert_int_equal(st.class_live_bytes[2], 0);
	assert_true(st.spans_used <= 4);
	rp_spsc_destroy(r.ring);
	rp_pool_destroy(p);
}

static long read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static int write_long(const char *path, long v)
{
	FILE *f = fopen(path, "w");
	int ok;

	if (!f)
		return -1;
	ok = fprintf(f, "%ld\n", v) > 0;
	return (fclose(f) == 0 && ok) ? 0 : -1;
}

#define NR_HUGE "/proc/sys/vm/nr_hugepages"
#define FREE_HUGE "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"

/*
 * What /proc/self/smaps says about [@lo, @lo + @len): the largest
 * KernelPageSize of the mappings it overlaps (kB) and their AnonHugePages
 * (bytes, at most the overlap each). False when smaps cannot be read.
 */
static bool smaps_range(const void *lo_p, size_t len, long *page_kb, long long *thp)
{
	uintptr_t lo = (uintptr_t)lo_p, hi = lo + len, vlo = 0, vhi = 0;
	FILE *f = fopen("/proc/self/smaps", "r");
	bool inside = false;
	char line[512];

	*page_kb = 0;
	*thp = 0;
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		uintptr_t a, b;
		long kb;

		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &a, &b) == 2) {
			vlo = a;
			vhi = b;
			inside = a < hi && b > lo;
		} else if (inside && sscanf(line, "KernelPageSize: %ld kB", &kb) == 1) {
			if (kb > *page_kb)
				*page_kb = kb;
		} else if (inside && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1) {
			long long ov = (long long)((vhi < hi ? vhi : hi) - (vlo > lo ? vlo : lo));

			*thp += (long long)kb * 1024 < ov ? (long long)kb * 1024 : ov;
		}
	}
	fclose(f);
	return true;
}

/* The kind rp_pool_stats reports is the kind the arena's mapping has. */
static void check_kind_against_smaps(struct rp_pool *p)
{
	struct rp_pool_stats st;
	struct iovec iov;
	long page_kb;
	long long thp;

	rp_pool_stats(p, &st);
	assert_int_equal(rp_pool_iovecs(p, &iov, 1), 1);
	if (!smaps_range(iov.iov_base, iov.iov_len, &page_kb, &thp)) {
		printf("[ SKIP     ] page kind: /proc/self/smaps unreadable\n");
		skip();
	}
	printf("[ INFO     ] pool of %zu MB: %s, smaps: KernelPageSize %ld kB, AnonHugePages %lld kB, huge_bytes %zu kB\n",
	       st.arena_bytes >> 20, rp_pool_page_kind_name(st.page_kind), page_kb, thp >> 10,
	       st.huge_bytes >> 10);
	switch (st.page_kind) {
	case RP_PAGE_HUGETLB:
		assert_string_equal(rp_pool_page_kind_name(st.page_kind), "hugetlb-2M");
		assert_int_equal(page_kb, 2048);
		assert_true(st.huge_bytes >= st.arena_bytes);
		break;
	case RP_PAGE_THP:
		assert_string_equal(rp_pool_page_kind_name(st.page_kind), "thp");
		assert_int_equal(page_kb, 4);
		assert_true(thp > 0);
		assert_int_equal(st.huge_bytes, (size_t)thp);
		break;
	case RP_PAGE_4K:
		assert_string_equal(rp_pool_page_kind_name(st.page_kind), "4K");
		assert_int_equal(page_kb, 4);
		assert_int_equal(thp, 0);
		assert_int_equal(st.huge_bytes, 0);
		break;
	default:
		fail_msg("unknown page kind %d", (int)st.page_kind);
	}
}

/* A plain pool and a RP_POOL_HUGE pool report what smaps shows (with
 * huge pages reserved, RP_POOL_HUGE must get them). */
static void test_page_kind_matches_smaps(void **state)
{
	struct rp_pool *p = rp_pool_create(-1, 8 * MB, 0);
	long nr = read_long(NR_HUGE);

	(void)state;
	assert_non_null(p);
	check_kind_against_smaps(p);
	rp_pool_destroy(p);
	p = rp_pool_create(-1, 8 * MB, RP_POOL_HUGE);
	assert_non_null(p);
	check_kind_against_smaps(p);
	rp_pool_destroy(p);
	if (nr < 0 || geteuid() != 0) {
		printf("[ SKIP     ] hugetlb kind: needs root and %s\n", NR_HUGE);
		skip();
	}
	if (write_long(NR_HUGE, nr + 4) || read_long(FREE_HUGE) < 4) {
		write_long(NR_HUGE, nr);
		printf("[ SKIP     ] hugetlb kind: could not reserve 4 more 2 MB pages\n");
		skip();
	}
	p = rp_pool_create(-1, 8 * MB, RP_POOL_HUGE);
	if (p) {
		struct rp_pool_stats st;

		rp_pool_stats(p, &st);
		if (st.page_kind == RP_PAGE_HUGETLB)
			check_kind_against_smaps(p);
		rp_pool_destroy(p);
		write_long(NR_HUGE, nr);
		assert_int_equal(st.page_kind, RP_PAGE_HUGETLB);
	} else {
		write_long(NR_HUGE, nr);
		fail_msg("RP_POOL_HUGE with 4 free 2 MB pages: errno %d", errno);
	}
}

/* The real 2 MB page path: reserve pages, require RP_POOL_HUGE_ONLY to get
 * them, and require it to fail cleanly when asking for more than is free. */
static void test_hugetlb_pages_for_real(void **state)
{
	long nr = read_long(NR_HUGE), free_pages;
	struct rp_pool_stats st;
	struct rp_pool *p;
	char *obj;

	(void)state;
	if (nr < 0 || geteuid() != 0) {
		printf("[ SKIP     ] hugetlb: needs root and %s to reserve 2 MB pages\n", NR_HUGE);
		skip();
	}
	if (write_long(NR_HUGE, nr + 4) || read_long(FREE_HUGE) < 4) {
		write_long(NR_HUGE, nr);
		printf("[ SKIP     ] hugetlb: could not reserve 4 more 2 MB pages (memory fragmented?)\n");
		skip();
	}
	p = rp_pool_create(0, 4 * MB, RP_POOL_HUGE_ONLY);
	if (!p)
		write_long(NR_HUGE, nr);
	assert_non_null(p);
	rp_pool_stats(p, &st);
	assert_int_equal(st.page_kind, RP_PAGE_HUGETLB);
	assert_string_equal(rp_pool_page_kind_name(st.page_kind), "hugetlb-2M");
	obj = rp_pool_alloc(p, MB);
	assert_non_null(obj);
	memset(obj, 0x5a, MB);
	rp_pool_free(obj);
	rp_pool_destroy(p);

	free_pages = read_long(FREE_HUGE);
	errno = 0;
	p = rp_pool_create(-1, (size_t)(free_pages + 1) * 2 * MB, RP_POOL_HUGE_ONLY);
	if (p)
		rp_pool_destroy(p);
	write_long(NR_HUGE, nr);
	assert_null(p);
	assert_int_equal(errno, ENOMEM);
}

/*
 * Huge pages short or missing, in a child (a SIGBUS there fails the test
 * instead of ending the run), with nr_hugepages set by the parent:
 *  - RP_POOL_HUGE falls back to THP or 4 KB pages and the pool works,
 *    RP_POOL_HUGE_ONLY fails with ENOMEM, both with the kernel reserving
 *    at mmap (the arena does not fit: mmap refuses) and with the pages
 *    missing at fault time (MAP_NORESERVE through the mmap above, as on a
 *    node without free pages): there the old pool touched the mapping by
 *    hand and died of SIGBUS;
 *  - no huge page stays taken once create has fallen back.
 */
static long hugetlb_free_at_start;

static void huge_short_child(void)
{
	for (int noreserve = 0; noreserve < 2; noreserve++) {
		struct rp_pool_stats st;
		struct rp_pool *p;
		char *obj;

		atomic_store(&hugetlb_noreserve, noreserve);
		/* 8 MB: more than the free pages (0 or 2). */
		p = rp_pool_create(-1, 8 * MB, RP_POOL_HUGE);
		if (!p)
			CHILD_FAIL("RP_POOL_HUGE (noreserve %d): NULL, errno %d", noreserve, errno);
		rp_pool_stats(p, &st);
		CHILD_CHECK(st.page_kind != RP_PAGE_HUGETLB);
		CHILD_CHECK(read_long(FREE_HUGE) == hugetlb_free_at_start);
		obj = rp_pool_alloc(p, MB);
		CHILD_CHECK(obj != NULL);
		memset(obj, 0x3c, MB);
		rp_pool_free(obj);
		rp_pool_destroy(p);

		errno = 0;
		p = rp_pool_create(-1, 8 * MB, RP_POOL_HUGE_ONLY);
		CHILD_CHECK(p == NULL);
		CHILD_CHECK(errno == ENOMEM);
		CHILD_CHECK(read_long(FREE_HUGE) == hugetlb_free_at_start);
	}
}

static void huge_short_case(long nr, long pages)
{
	int rc;

	if (write_long(NR_HUGE, pages) || read_long(NR_HUGE) != pages) {
		write_long(NR_HUGE, nr);
		printf("[ SKIP     ] hugetlb: could not set %s to %ld\n", NR_HUGE, pages);
		skip();
	}
	hugetlb_free_at_start = read_long(FREE_HUGE);
	rc = run_child(huge_short_child, 60);
	write_long(NR_HUGE, nr);
	child_ok(rc, 60);
}

static void test_huge_pages_missing_fall_back(void **state)
{
	long nr = read_long(NR_HUGE);

	(void)state;
	if (nr < 0 || geteuid() != 0 || write_long(NR_HUGE, nr)) {
		printf("[ SKIP     ] hugetlb: needs root and a writable %s\n", NR_HUGE);
		skip();
	}
	huge_short_case(nr, 0);
}

static void test_huge_pages_short_fall_back(void **state)
{
	long nr = read_long(NR_HUGE);

	(void)state;
	if (nr < 0 || geteuid() != 0 || write_long(NR_HUGE, nr)) {
		printf("[ SKIP     ] hugetlb: needs root and a writable %s\n", NR_HUGE);
		skip();
	}
	huge_short_case(nr, 2); /* 4 MB for an 8 MB arena */
}

static long vmlck_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* RP_POOL_MLOCK locks the whole arena: VmLck grows by it, and shrinks back
 * at destroy. */
static void test_mlock_flag(void **state)
{
	long before = vmlck_kb(), during, after;
	struct rp_pool *p;

	(void)state;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || SANITIZED_CLANG
	/* Their runtimes intercept mlock and return 0 without locking. */
	printf("[ SKIP     ] mlock: a sanitizer runtime turns mlock into a no-op\n");
	skip();
#endif
	p = rp_pool_create(-1, 2 * MB, RP_POOL_MLOCK);
	if (!p) {
		assert_true(errno == EPERM || errno == ENOMEM || errno == EAGAIN);
		printf("[ SKIP     ] mlock refused (errno %d): RLIMIT_MEMLOCK too low\n", errno);
		skip();
	}
	if (before < 0) {
		rp_pool_destroy(p);
		printf("[ SKIP     ] mlock: no VmLck in /proc/self/status\n");
		skip();
	}
	during = vmlck_kb();
	rp_pool_destroy(p);
	after = vmlck_kb();
	printf("[ INFO     ] VmLck %ld -> %ld -> %ld kB\n", before, during, after);
	assert_true(during - before >= (long)(2 * MB >> 10));
	assert_int_equal(after, before);
}

/*
 * A remote double free: another thread frees the same object twice
 * before the owner reclaims it. Refused and counted; the owner reclaims
 * one object (no cycle: the old remote list looped the owner forever, so
 * this runs in a child with a deadline) and hands it out once.
 */
struct dfree {
	void **obj;
	unsigned n, rounds;
};

static void *double_freer(void *arg)
{
	struct dfree *d = arg;

	for (unsigned r = 0; r < d->rounds; r++)
		for (unsigned i = 0; i < d->n; i++)
			rp_pool_free(d->obj[i]);
	return NULL;
}

static void remote_double_free_child(void)
{
	enum { N = 1000 };
	static void *obj[N], *again[N];
	struct rp_pool *p = rp_pool_create(-1, 2 * MB, 0);
	struct dfree one = { obj, 1, 2 }, all = { obj, N, 1 };
	struct rp_pool_stats st;
	pthread_t t[2];

	CHILD_CHECK(p != NULL);
	/* One object, freed twice by one other thread. */
	obj[0] = rp_pool_alloc(p, 256);
	CHILD_CHECK(obj[0] != NULL);
	CHILD_CHECK(pthread_create(&t[0], NULL, double_freer, &one) == 0);
	pthread_join(t[0], NULL);
	CHILD_CHECK(rp_pool_reclaim(p) == 1); /* a cycle: never returns */
	rp_pool_stats(p, &st);
	CHILD_CHECK(st.double_frees == 1);
	again[0] = rp_pool_alloc(p, 256);
	again[1] = rp_pool_alloc(p, 256);
	CHILD_CHECK(again[0] == obj[0] && again[1] != obj[0]);
	rp_pool_free(again[0]);
	rp_pool_free(again[1]);

	/* N objects, each freed by two threads racing. */
	for (unsigned i = 0; i < N; i++)
		CHILD_CHECK((obj[i] = rp_pool_alloc(p, 256)) != NULL);
	for (int k = 0; k < 2; k++)
		CHILD_CHECK(pthread_create(&t[k], NULL, double_freer, &all) == 0);
	for (int k = 0; k < 2; k++)
		pthread_join(t[k], NULL);
	rp_pool_stats(p, &st);
	CHILD_CHECK(st.double_frees == 1 + N);
	CHILD_CHECK(rp_pool_reclaim(p) == N);
	/* Every object comes back once: N + 1 allocations, all distinct. */
	for (unsigned i = 0; i < N; i++)
		CHILD_CHECK((again[i] = rp_pool_alloc(p, 256)) != NULL);
	for (unsigned i = 0; i < N; i++)
		memset(again[i], (int)(i & 0xff), 256);
	for (unsigned i = 0; i < N; i++) {
		const unsigned char *b = again[i];

		if (b[0] != (i & 0xff) || b[255] != (i & 0xff))
			CHILD_FAIL("object %u handed out twice", i);
	}
	rp_pool_stats(p, &st);
	CHILD_CHECK(st.remote_frees == 1 + N);
	for (unsigned i = 0; i < N; i++)
		rp_pool_free(again[i]);
	/* A refused free left nothing behind: a later remote free works. */
	obj[0] = rp_pool_alloc(p, 256);
	one.rounds = 1;
	CHILD_CHECK(pthread_create(&t[0], NULL, double_freer, &one) == 0);
	pthread_join(t[0], NULL);
	CHILD_CHECK(rp_pool_reclaim(p) == 1);
	rp_pool_stats(p, &st);
	CHILD_CHECK(st.double_frees == 1 + N);
	CHILD_CHECK(st.allocs == st.frees);
	rp_pool_destroy(p);
}

#ifdef ASAN_BUILD
/* Every byte of [@p, @p + @n) poisoned (ASan's shadow, 8-byte granules). */
static bool all_poisoned(const void *p, size_t n)
{
	for (size_t i = 0; i < n; i += 8)
		if (!__asan_address_is_poisoned((const char *)p + i))
			return false;
	return __asan_address_is_poisoned((const char *)p + n - 1);
}

static void *poison_remote_freer(void *arg)
{
	rp_pool_free(arg);
	return NULL;
}

/*
 * Run @fn in a child with its stderr on a pipe; return its wait status,
 * with the first @len - 1 bytes of what it wrote in @buf (read to the
 * end: the child never blocks on a full pipe).
 */
static int asan_child(void (*fn)(void), char *buf, size_t len)
{
	char rest[4096];
	ssize_t n, got = 0;
	int pfd[2], rc;
	pid_t pid;

	assert_int_equal(pipe(pfd), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pfd[1], 2);
		close(pfd[0]);
		fn();
		_exit(0);
	}
	close(pfd[1]);
	while ((n = read(pfd[0], got < (ssize_t)len - 1 ? buf + got : rest,
			 got < (ssize_t)len - 1 ? len - 1 - (size_t)got : sizeof(rest))) > 0)
		if (got < (ssize_t)len - 1)
			got += n;
	buf[got] = 0;
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &rc, 0), pid);
	return rc;
}

/* A write through a pointer kept after rp_pool_free: ASan must stop it. */
static void write_after_free_child(void)
{
	struct rp_pool *p = rp_pool_create(-1, 2 * MB, 0);
	volatile char *c;

	CHILD_CHECK(p != NULL);
	c = rp_pool_alloc(p, 200);
	CHILD_CHECK(c != NULL);
	rp_pool_free((void *)c);
	c[100] = 1; /* ASan reports this and exits */
	_exit(0);   /* not reached when the object is poisoned */
}
#endif

/*
 * ASan builds: an object is poisoned from rp_pool_free to its next
 * rp_pool_alloc (every class, the inline paths and the exported ones, a
 * free from another thread before the owner reclaims it, objects sent
 * back to their spans by a full cache), so a use after free is reported;
 * memory never handed out is poisoned, the arena is clean after destroy,
 * and a write after free in a child is reported as a use-after-poison.
 */
static void test_asan_poisons_free_objects(void **state)
{
	(void)state;
#ifndef ASAN_BUILD
	printf("skip: not an AddressSanitizer build (the pool poisons nothing here)\n");
	skip();
#else
	static void *objs[300];
	static const size_t sizes[] = { 1, 64, 100, 4096, 5000, 8192, 40000, 65536, 100000, MB };
	struct rp_pool *p = rp_pool_create(-1, 16 * MB, 0);
	char *arena;
	pthread_t t;
	char buf[4096];
	int rc;

	assert_non_null(p);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t cls = rp_pool_class_size(sizes[i]);
		char *a = rp_pool_alloc(p, sizes[i]), *b;

		assert_non_null(a);
		assert_null(__asan_region_is_poisoned(a, sizes[i]));
		memset(a, 0x5a, sizes[i]);
		rp_pool_free(a);
		assert_true(all_poisoned(a, cls));
		b = rp_pool_alloc(p, sizes[i]);
		assert_ptr_equal(b, a); /* the same object, LIFO */
		assert_null(__asan_region_is_poisoned(b, sizes[i]));
		(rp_pool_free)(b); /* the exported function */
		assert_true(all_poisoned(b, cls));
		b = (rp_pool_alloc)(p, sizes[i]);
		assert_ptr_equal(b, a);
		assert_null(__asan_region_is_poisoned(b, sizes[i]));

		/* Freed by another thread: poisoned before the owner reclaims. */
		assert_int_equal(pthread_create(&t, NULL, poison_remote_freer, b), 0);
		pthread_join(t, NULL);
		assert_true(all_poisoned(b, cls));
		assert_int_equal(rp_pool_reclaim(p), 1);
		assert_true(all_poisoned(b, cls));
		b = rp_pool_alloc(p, sizes[i]);
		assert_ptr_equal(b, a);
		assert_null(__asan_region_is_poisoned(b, sizes[i]));
		rp_pool_free(b);
	}

	/* 300 objects of 64 B: the cache spills to the spans, which link
	 * free objects through their first word (unseen by ASan). */
	for (unsigned i = 0; i < 300; i++) {
		objs[i] = rp_pool_alloc(p, 64);
		assert_non_null(objs[i]);
		memset(objs[i], 0xa5, 64);
	}
	/* The next object of the span, never handed out, is poisoned. */
	assert_true(all_poisoned((char *)objs[299] + 64, 64));
	for (unsigned i = 0; i < 300; i++)
		rp_pool_free(objs[i]);
	for (unsigned i = 0; i < 300; i++)
		assert_true(all_poisoned(objs[i], 64));
	assert_true(rp_pool_spans_free(p, SIZE_MAX) == 16); /* every cache flushed */
	for (unsigned i = 0; i < 300; i++) {
		objs[i] = rp_pool_alloc(p, 64);
		assert_non_null(objs[i]);
		assert_null(__asan_region_is_poisoned(objs[i], 64));
	}
	for (unsigned i = 0; i < 300; i++)
		rp_pool_free(objs[i]);

	arena = objs[0];
	rp_pool_destroy(p);
	/* The shadow outlives the mapping: nothing left poisoned there. */
	assert_false(__asan_address_is_poisoned(arena));

	/* A write after free in a child: ASan's report, not a clean exit. */
	rc = asan_child(write_after_free_child, buf, sizeof(buf));
	assert_false(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
	if (!strstr(buf, "use-after-poison"))
		fail_msg("no use-after-poison report from the child:\n%s", buf);
#endif
}

#ifdef ASAN_BUILD
/* The tail of an object of @cls bytes allocated for @n: [n, cls) poisoned,
 * the byte at n too (in the granule of n's last byte), [0, n) not. */
static void check_tail(const char *a, size_t n, size_t cls)
{
	assert_null(__asan_region_is_poisoned((void *)a, n));
	if (n < cls && !all_poisoned(a + n, cls - n))
		fail_msg("alloc %zu in class %zu: tail not poisoned", n, cls);
}

/* Sizes asked for in the tail children, and the byte written. */
#define TAIL_ASK 200
static size_t tail_at;

/* A write at tail_at of an object asked for TAIL_ASK bytes (class 256). */
static void write_at_child(void)
{
	struct rp_pool *p = rp_pool_create(-1, 2 * MB, 0);
	volatile char *c;

	CHILD_CHECK(p != NULL);
	c = rp_pool_alloc(p, TAIL_ASK);
	CHILD_CHECK(c != NULL);
	c[tail_at] = 1; /* past TAIL_ASK: ASan reports it and exits */
	rp_pool_free((void *)c);
	rp_pool_destroy(p);
	_exit(0);
}
#endif

/*
 * ASan builds: only the size asked for is unpoisoned by an allocation; the
 * rest of the class stays poisoned (every class, sizes at the class's
 * edges and the granule edges, the inline cache pop, the slow path's
 * refill, the exported function, an object reclaimed from a remote free),
 * and the same object asked for again with a larger size has that size.
 * A write one byte past the size asked for, and one at the class's last
 * byte, are reported in a child as use-after-poison; a write at the last
 * byte asked for is not.
 */
static void test_asan_poisons_tail(void **state)
{
	(void)state;
#ifndef ASAN_BUILD
	printf("skip: not an AddressSanitizer build (the pool poisons nothing here)\n");
	skip();
#else
	static const size_t bad[] = { TAIL_ASK, 255 }; /* one past, the class's last byte */
	struct rp_pool *p = rp_pool_create(-1, 16 * MB, 0);
	char buf[4096];
	pthread_t t;
	int rc;

	assert_non_null(p);
	for (size_t cls = RP_POOL_MIN_CLASS; cls <= MB; cls <<= 1) {
		const size_t asks[] = { cls / 2 + 1, cls / 2 + 7, cls / 2 + 8, cls - 9, cls - 1, cls };
		char *a;

		for (size_t i = 0; i < sizeof(asks) / sizeof(asks[0]); i++) {
			size_t n = cls == RP_POOL_MIN_CLASS && i == 0 ? 1 : asks[i];

			assert_int_equal(rp_pool_class_size(n), cls);
			/* nothing cached: the slow path's refill */
			a = rp_pool_alloc(p, n);
			assert_non_null(a);
			check_tail(a, n, cls);
			memset(a, 0x5a, n);
			rp_pool_free(a);
			/* the cache's pop, inline and exported */
			assert_ptr_equal(rp_pool_alloc(p, n), a);
			check_tail(a, n, cls);
			rp_pool_free(a);
			assert_ptr_equal((rp_pool_alloc)(p, n), a);
			check_tail(a, n, cls);
			/* freed by another thread, reclaimed, asked for again */
			assert_int_equal(pthread_create(&t, NULL, poison_remote_freer, a), 0);
			pthread_join(t, NULL);
			assert_int_equal(rp_pool_reclaim(p), 1);
			assert_ptr_equal(rp_pool_alloc(p, n), a);
			check_tail(a, n, cls);
			rp_pool_free(a);
			/* the cache back to the span: the next ask refills */
			assert_true(rp_pool_spans_free(p, SIZE_MAX) == 16);
		}
		/* Smaller, then the whole class: what the second asks for. */
		a = rp_pool_alloc(p, cls / 2 + 1);
		rp_pool_free(a);
		assert_ptr_equal(rp_pool_alloc(p, cls), a);
		check_tail(a, cls, cls);
		memset(a, 0xa5, cls);
		rp_pool_free(a);
		assert_true(all_poisoned(a, cls));
		assert_true(rp_pool_spans_free(p, SIZE_MAX) == 16);
	}
	rp_pool_destroy(p);

	/* In a child: one past the size, and the class's last byte. */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tail_at = bad[i];
		rc = asan_child(write_at_child, buf, sizeof(buf));
		assert_false(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
		if (!strstr(buf, "use-after-poison"))
			fail_msg("write at %zu of %u asked: no use-after-poison report:\n%s",
				 tail_at, TAIL_ASK, buf);
	}
	/* The last byte asked for: no report, a clean exit. */
	tail_at = TAIL_ASK - 1;
	rc = asan_child(write_at_child, buf, sizeof(buf));
	if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 0)
		fail_msg("write at %zu of %u asked: child status %#x:\n%s", tail_at, TAIL_ASK, rc,
			 buf);
#endif
}

static void test_remote_double_free_refused(void **state)
{
	(void)state;
	child_ok(run_child(remote_double_free_child, 30), 30);
}

#ifdef RP_POOL_DEBUG
/*
 * pool_debug: every free is checked. A local double free (the object in
 * the cache, which a release build cannot see), a local free of an object
 * whose remote free is pending, and a remote double free after the owner
 * reclaimed the first are refused and counted, and nothing is handed out
 * twice.
 */
static void test_debug_local_double_free_caught(void **state)
{
	struct rp_pool *p = rp_pool_create(-1, 2 * MB, 0);
	struct dfree one;
	struct rp_pool_stats st;
	void *a, *b, *c;
	pthread_t t;

	(void)state;
	assert_int_equal(rp_pool_debug(), 1);
	assert_non_null(p);
	a = rp_pool_alloc(p, 128);
	assert_non_null(a);
	rp_pool_free(a);
	rp_pool_free(a); /* local double free */
	rp_pool_stats(p, &st);
	assert_int_equal(st.double_frees, 1);
	assert_int_equal(st.frees, 1);
	b = rp_pool_alloc(p, 128);
	c = rp_pool_alloc(p, 128);
	assert_true(b != c);

	/* Remote free pending, then a local free of the same object. */
	one = (struct dfree){ &b, 1, 1 };
	assert_int_equal(pthread_create(&t, NULL, double_freer, &one), 0);
	pthread_join(t, NULL);
	rp_pool_free(b);
	rp_pool_stats(p, &st);
	assert_int_equal(st.double_frees, 2);
	assert_int_equal(rp_pool_reclaim(p), 1);

	/* Remote double free after the reclaim of the first. */
	assert_int_equal(pthread_create(&t, NULL, double_freer, &one), 0);
	pthread_join(t, NULL);
	assert_int_equal(rp_pool_reclaim(p), 1);
	rp_pool_stats(p, &st);
	assert_int_equal(st.double_frees, 3);

	rp_pool_free(c);
	rp_pool_stats(p, &st);
	assert_int_equal(st.allocs, st.frees);
	a = rp_pool_alloc(p, 128);
	b = rp_pool_alloc(p, 128);
	assert_true(a != b);
	rp_pool_free(a);
	rp_pool_free(b);
	rp_pool_destroy(p);
}
#endif

/* nr_hugepages as found: put back after the group, whatever failed. */
static long nr_hugepages_saved = -1;

static int save_nr_hugepages(void **state)
{
	(void)state;
	nr_hugepages_saved = read_long(NR_HUGE);
	return 0;
}

static int restore_nr_hugepages(void **state)
{
	(void)state;
	if (nr_hugepages_saved >= 0 && read_long(NR_HUGE) != nr_hugepages_saved)
		write_long(NR_HUGE, nr_hugepages_saved);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_class_sizes),
		cmocka_unit_test(test_create_rejects_bad_arguments),
		cmocka_unit_test(test_every_class_aligned_no_overlap),
		cmocka_unit_test(test_coloured_classes_spread_cache_sets),
		cmocka_unit_test(test_exhaustion_and_span_reuse),
		cmocka_unit_test(test_spans_free_counts_spans_not_bytes),
		cmocka_unit_test(test_spans_free_takes_remote_frees),
		cmocka_unit_test(test_class_free_counts_one_class),
		cmocka_unit_test(test_class_free_takes_remote_frees),
		cmocka_unit_test(test_foreign_and_interior_frees_are_refused),
		cmocka_unit_test(test_cache_spill_two_pools_exported),
		cmocka_unit_test(test_iovecs_and_buf_index),
		cmocka_unit_test(test_million_remote_frees_reused),
		cmocka_unit_test(test_remote_double_free_refused),
		cmocka_unit_test(test_asan_poisons_free_objects),
		cmocka_unit_test(test_asan_poisons_tail),
#ifdef RP_POOL_DEBUG
		cmocka_unit_test(test_debug_local_double_free_caught),
#endif
		cmocka_unit_test(test_page_kind_matches_smaps),
		cmocka_unit_test(test_hugetlb_pages_for_real),
		cmocka_unit_test(test_huge_pages_missing_fall_back),
		cmocka_unit_test(test_huge_pages_short_fall_back),
		cmocka_unit_test(test_mlock_flag),
	};

#ifndef RP_POOL_DEBUG
	if (rp_pool_debug())
		printf("[ INFO     ] the library is a pool_debug build: every free is checked\n");
#endif
	return cmocka_run_group_tests(tests, save_nr_hugepages, restore_nr_hugepages);
}
