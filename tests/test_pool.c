/* SPDX-License-Identifier: MIT */
/*
 * rp_pool: every class, alignment, no overlap, exhaustion and span reuse
 * across classes, remote frees from another thread reused by the owner,
 * refused frees, fixed-buffer iovecs, and the huge-page path for real
 * (reserving 2 MB pages when running as root, a printed skip otherwise).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <ringplane/pool.h>
#include <ringplane/spsc.h>

#define MB ((size_t)1 << 20)
#define DEADLINE_S 120

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
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

/* Every class: aligned to its size, writable end to end, and no two live
 * objects overlap (each keeps its own fill pattern until freed). */
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
			assert_int_equal((uintptr_t)objs[c][i] & (sz - 1), 0);
			memset(objs[c][i], (int)(c * PER_CLASS + i + 1), sz);
		}
	}
	for (unsigned c = 0; c < RP_POOL_NCLASS; c++) {
		size_t sz = (size_t)64 << c;

		for (unsigned i = 0; i < PER_CLASS; i++) {
			const unsigned char *b = objs[c][i];
			unsigned char want = (unsigned char)(c * PER_CLASS + i + 1);

			for (size_t k = 0; k < sz; k += 61)
				if (b[k] != want)
					fail_msg("class %u obj %u byte %zu overwritten", c, i, k);
			assert_int_equal(b[sz - 1], want);
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

/* RP_POOL_HUGE falls back rather than failing, and says what it got. */
static void test_huge_fallback_reports_kind(void **state)
{
	struct rp_pool *p = rp_pool_create(-1, 8 * MB, RP_POOL_HUGE);
	struct rp_pool_stats st;

	(void)state;
	assert_non_null(p);
	rp_pool_stats(p, &st);
	printf("[ INFO     ] RP_POOL_HUGE got %s pages\n", rp_pool_page_kind_name(st.page_kind));
	assert_true(st.page_kind == RP_PAGE_HUGETLB || st.page_kind == RP_PAGE_THP ||
		    st.page_kind == RP_PAGE_4K);
	rp_pool_destroy(p);
}

static void test_mlock_flag(void **state)
{
	struct rp_pool *p = rp_pool_create(-1, 2 * MB, RP_POOL_MLOCK);

	(void)state;
	if (!p) {
		assert_true(errno == EPERM || errno == ENOMEM || errno == EAGAIN);
		printf("[ SKIP     ] mlock refused (errno %d): RLIMIT_MEMLOCK too low\n", errno);
		skip();
	}
	rp_pool_destroy(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_class_sizes),
		cmocka_unit_test(test_create_rejects_bad_arguments),
		cmocka_unit_test(test_every_class_aligned_no_overlap),
		cmocka_unit_test(test_exhaustion_and_span_reuse),
		cmocka_unit_test(test_foreign_and_interior_frees_are_refused),
		cmocka_unit_test(test_cache_spill_two_pools_exported),
		cmocka_unit_test(test_iovecs_and_buf_index),
		cmocka_unit_test(test_million_remote_frees_reused),
		cmocka_unit_test(test_hugetlb_pages_for_real),
		cmocka_unit_test(test_huge_fallback_reports_kind),
		cmocka_unit_test(test_mlock_flag),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
