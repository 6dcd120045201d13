/* SPDX-License-Identifier: MIT */
/*
 * rp_mpsc: full/empty edges, a NULL item refused, and 4 producer threads
 * whose items must each arrive exactly once and in per-producer order.
 * Built again under TSan.
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
#include <time.h>

#include <cmocka.h>

#include <ringplane/mpsc.h>

#include "thread_test.h"

#define PRODUCERS 4

static void test_full_and_empty(void **state)
{
	struct rp_mpsc *q;

	(void)state;
	errno = 0;
	assert_null(rp_mpsc_create(12));
	assert_int_equal(errno, EINVAL);
	q = rp_mpsc_create(4);
	assert_non_null(q);
	assert_null(rp_mpsc_pop(q));
	for (uintptr_t lap = 0; lap < 10; lap++) {
		for (uintptr_t i = 1; i <= 4; i++)
			assert_true(rp_mpsc_push(q, (void *)(lap * 4 + i)));
		errno = 0;
		assert_false(rp_mpsc_push(q, (void *)99));
		assert_int_equal(errno, EAGAIN);
		for (uintptr_t i = 1; i <= 4; i++)
			assert_ptr_equal(rp_mpsc_pop(q), (void *)(lap * 4 + i));
		assert_null(rp_mpsc_pop(q));
	}
	rp_mpsc_destroy(q);
}

struct prod {
	struct rp_mpsc *q;
	uint64_t id, n;
	int timed_out;
};

/* Item = producer id in the top bits, sequence 1..n below. */
static void *producer(void *arg)
{
	struct prod *p = arg;
	double deadline = now_s() + DEADLINE_S;
	uint64_t spins = 0;

	for (uint64_t i = 1; i <= p->n;) {
		if (rp_mpsc_push(p->q, (void *)(uintptr_t)((p->id << 56) | i))) {
			i++;
			continue;
		}
		if ((++spins & 0xffff) == 0 && now_s() > deadline) {
			p->timed_out = 1;
			return NULL;
		}
		sched_yield();
	}
	return NULL;
}

static void test_four_producers_per_producer_order(void **state)
{
#ifdef UNDER_TSAN
	const uint64_t n = 50000;
#else
	const char *r = getenv("RP_TEST_REDUCED");
	const uint64_t n = (r && *r == '1') ? 200000 : 2000000;
#endif
	struct rp_mpsc *q = rp_mpsc_create(256);
	struct prod prods[PRODUCERS];
	pthread_t t[PRODUCERS];
	uint64_t next[PRODUCERS], total = 0, spins = 0;
	double deadline = now_s() + DEADLINE_S;

	(void)state;
	assert_non_null(q);
	for (int i = 0; i < PRODUCERS; i++) {
		prods[i] = (struct prod){ .q = q, .id = (uint64_t)i + 1, .n = n };
		next[i] = 1;
		assert_int_equal(pthread_create(&t[i], NULL, producer, &prods[i]), 0);
	}
	while (total < PRODUCERS * n) {
		void *item = rp_mpsc_pop(q);
		uint64_t v, id, seq;

		if (!item) {
			if ((++spins & 0xffff) == 0 && now_s() > deadline)
				fail_msg("timed out after %ju items", (uintmax_t)total);
			continue;
		}
		v = (uint64_t)(uintptr_t)item;
		id = v >> 56;
		seq = v & ((1ull << 56) - 1);
		assert_true(id >= 1 && id <= PRODUCERS);
		if (seq != next[id - 1])
			fail_msg("producer %ju: got %ju, expected %ju", (uintmax_t)id, (uintmax_t)seq,
				 (uintmax_t)next[id - 1]);
		next[id - 1]++;
		total++;
	}
	for (int i = 0; i < PRODUCERS; i++) {
		pthread_join(t[i], NULL);
		assert_false(prods[i].timed_out);
	}
	assert_null(rp_mpsc_pop(q));
	rp_mpsc_destroy(q);
}

/* A NULL item is refused (EINVAL), empty or full: empty() stays true and
 * pop() NULL, never an "item" that pops as nothing. The old push took it:
 * empty() false, pop() NULL. */
static void test_null_item_refused(void **state)
{
	struct rp_mpsc *q = rp_mpsc_create(2);

	(void)state;
	assert_non_null(q);
	errno = 0;
	assert_false(rp_mpsc_push(q, NULL));
	assert_int_equal(errno, EINVAL);
	assert_true(rp_mpsc_empty(q));
	assert_null(rp_mpsc_pop(q));
	/* the queue is as it was: both slots usable, in order */
	assert_true(rp_mpsc_push(q, (void *)1));
	errno = 0;
	assert_false(rp_mpsc_push(q, NULL));
	assert_int_equal(errno, EINVAL);
	assert_true(rp_mpsc_push(q, (void *)2));
	errno = 0;
	assert_false(rp_mpsc_push(q, NULL)); /* full, and NULL: still EINVAL */
	assert_int_equal(errno, EINVAL);
	assert_false(rp_mpsc_empty(q));
	assert_ptr_equal(rp_mpsc_pop(q), (void *)1);
	assert_ptr_equal(rp_mpsc_pop(q), (void *)2);
	assert_true(rp_mpsc_empty(q));
	assert_null(rp_mpsc_pop(q));
	rp_mpsc_destroy(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_and_empty),
		cmocka_unit_test(test_null_item_refused),
		cmocka_unit_test(test_four_producers_per_producer_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
