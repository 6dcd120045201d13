/* SPDX-License-Identifier: MIT */
/*
 * rp_spsc: wraparound at every capacity, burst edge cases, and two pinned
 * threads moving many items with single and burst calls mixed, checking
 * order and loss. Built again under TSan (tests/meson.build, suite
 * "threads"), where the item count is smaller.
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
#include <unistd.h>

#include <cmocka.h>

#include <ringplane/spsc.h>

#include "thread_test.h"

static void test_create_rejects_bad_capacity(void **state)
{
	static const uint32_t bad[] = { 0, 1, 3, 6, 100, 1000, (1u << 31) + 1, UINT32_MAX };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		assert_null(rp_spsc_create(bad[i]));
		assert_int_equal(errno, EINVAL);
	}
}

/* Fill to capacity, check full, drain in order; at every fill level and
 * across many laps so the free-running indices wrap the slot array. */
static void test_wraparound_every_capacity(void **state)
{
	(void)state;
	for (uint32_t cap = 2; cap <= 4096; cap *= 2) {
		struct rp_spsc *r = rp_spsc_create(cap);
		uintptr_t next_in = 1, next_out = 1;

		assert_non_null(r);
		assert_int_equal(rp_spsc_capacity(r), cap);
		for (uint32_t lap = 0; lap < 3 * cap + 7; lap++) {
			uint32_t fill = 1 + (lap * 2654435761u) % cap;

			for (uint32_t i = 0; i < fill; i++)
				assert_true(rp_spsc_push(r, (void *)next_in++));
			assert_int_equal(rp_spsc_count(r), fill);
			if (fill == cap)
				assert_false(rp_spsc_push(r, (void *)next_in));
			for (uint32_t i = 0; i < fill; i++)
				assert_ptr_equal(rp_spsc_pop(r), (void *)next_out++);
			assert_null(rp_spsc_pop(r));
		}
		/* Full ring: exactly cap items fit. */
		for (uint32_t i = 0; i < cap; i++)
			assert_true(rp_spsc_push(r, (void *)next_in++));
		assert_false(rp_spsc_push(r, (void *)next_in));
		assert_int_equal(rp_spsc_count(r), cap);
		for (uint32_t i = 0; i < cap; i++)
			assert_ptr_equal(rp_spsc_pop(r), (void *)next_out++);
		rp_spsc_destroy(r);
	}
}

static void test_burst_partial(void **state)
{
	struct rp_spsc *r = rp_spsc_create(8);
	void *in[16], *out[16];

	(void)state;
	for (uintptr_t i = 0; i < 16; i++)
		in[i] = (void *)(i + 1);
	assert_int_equal(rp_spsc_push_burst(r, in, 5), 5);
	/* Only 3 slots left: burst takes as many as fit. */
	assert_int_equal(rp_spsc_push_burst(r, in + 5, 10), 3);
	assert_int_equal(rp_spsc_push_burst(r, in, 1), 0);
	assert_int_equal(rp_spsc_pop_burst(r, out, 2), 2);
	assert_ptr_equal(out[0], in[0]);
	assert_ptr_equal(out[1], in[1]);
	assert_int_equal(rp_spsc_pop_burst(r, out, 16), 6);
	for (int i = 0; i < 6; i++)
		assert_ptr_equal(out[i], in[i + 2]);
	assert_int_equal(rp_spsc_pop_burst(r, out, 16), 0);
	assert_int_equal(rp_spsc_push_burst(r, in, 0), 0);
	rp_spsc_destroy(r);
}

/* The free run a burst push sees, at every start offset and fill level:
 * exactly the slots the consumer has handed back, no more, no fewer (the
 * ring reads slots, not indices, to tell), and rp_spsc_empty agrees with
 * rp_spsc_pop throughout. */
static void test_free_run_every_offset_and_fill(void **state)
{
	(void)state;
	for (uint32_t cap = 2; cap <= 32; cap *= 2) {
		struct rp_spsc *r = rp_spsc_create(cap);
		void *in[64], *out[64];
		uintptr_t next_in = 1, next_out = 1;

		assert_non_null(r);
		for (uint32_t off = 0; off < cap; off++) {
			for (uint32_t fill = 0; fill <= cap; fill++) {
				uint32_t drained = fill / 2, got;

				assert_true(rp_spsc_empty(r));
				assert_null(rp_spsc_pop(r));
				/* move to this offset: one item in and out per step */
				for (uint32_t i = 0; i < off; i++) {
					assert_true(rp_spsc_push(r, (void *)next_in++));
					assert_false(rp_spsc_empty(r));
					assert_ptr_equal(rp_spsc_pop(r), (void *)next_out++);
				}
				for (uint32_t i = 0; i < fill; i++)
					in[i] = (void *)next_in++;
				assert_int_equal(rp_spsc_push_burst(r, in, fill), fill);
				assert_int_equal(rp_spsc_count(r), fill);
				assert_true(rp_spsc_empty(r) == (fill == 0));
				/* hand back half: a burst now fits exactly cap - fill + drained */
				assert_int_equal(rp_spsc_pop_burst(r, out, drained), drained);
				for (uint32_t i = 0; i < drained; i++)
					assert_ptr_equal(out[i], (void *)next_out++);
				for (uint32_t i = 0; i < 2 * cap; i++)
					in[i] = (void *)(next_in + i);
				got = rp_spsc_push_burst(r, in, 2 * cap);
				assert_int_equal(got, cap - fill + drained);
				next_in += got;
				assert_false(rp_spsc_push(r, (void *)next_in));
				assert_int_equal(rp_spsc_count(r), cap);
				/* drain in order, single and burst mixed */
				while (next_out < next_in) {
					if (next_out & 1) {
						assert_ptr_equal(rp_spsc_pop(r), (void *)next_out++);
					} else {
						got = rp_spsc_pop_burst(r, out, 3);
						assert_true(got >= 1 && got <= 3);
						for (uint32_t i = 0; i < got; i++)
							assert_ptr_equal(out[i], (void *)next_out++);
					}
				}
				assert_int_equal(rp_spsc_count(r), 0);
			}
		}
		rp_spsc_destroy(r);
	}
}

/* Bursts at every start offset of a small ring, so some split at the end of
 * the slots (the two-piece copy); the exported functions and the inline
 * macros must agree. */
static void test_burst_wraps_at_every_offset(void **state)
{
	struct rp_spsc *r = rp_spsc_create(8);
	void *in[8], *out[8];
	uintptr_t next_in = 1, next_out = 1;

	(void)state;
	assert_non_null(r);
	for (unsigned lap = 0; lap < 64; lap++) {
		unsigned n = 1 + lap % 8, got;

		for (unsigned i = 0; i < n; i++)
			in[i] = (void *)next_in++;
		/* alternate the exported function and the inline macro */
		got = lap & 1 ? (rp_spsc_push_burst)(r, in, n) : rp_spsc_push_burst(r, in, n);
		assert_int_equal(got, n);
		got = lap & 2 ? (rp_spsc_pop_burst)(r, out, 8) : rp_spsc_pop_burst(r, out, 8);
		assert_int_equal(got, n);
		for (unsigned i = 0; i < n; i++)
			assert_ptr_equal(out[i], (void *)next_out++);
		/* leave the ring at a new offset */
		if (lap % 3 == 0) {
			assert_true(rp_spsc_push(r, (void *)next_in++));
			assert_ptr_equal(rp_spsc_pop(r), (void *)next_out++);
		}
	}
	rp_spsc_destroy(r);
}

struct xfer {
	struct rp_spsc *r;
	uint64_t n;
	int cpu;
	int timed_out;
};

static void pin_to(int cpu)
{
	cpu_set_t set;

	if (cpu < 0 || cpu >= CPU_SETSIZE)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	/* Best effort: a restricted cpuset only makes the test less sharp. */
	(void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* Producer: items 1..n, alternating single pushes and bursts of 1..32. */
static void *producer(void *arg)
{
	struct xfer *x = arg;
	uint64_t next = 1, spins = 0;
	double deadline = now_s() + DEADLINE_S;
	void *batch[32];

	pin_to(x->cpu);
	while (next <= x->n) {
		unsigned want = (unsigned)(next % 33);

		if (want == 0 || next % 3 == 0) {
			if (!rp_spsc_push(x->r, (void *)(uintptr_t)next)) {
				if ((++spins & 0xfffff) == 0 && now_s() > deadline) {
					x->timed_out = 1;
					return NULL;
				}
				sched_yield();
				continue;
			}
			next++;
			continue;
		}
		if (want > x->n - next + 1)
			want = (unsigned)(x->n - next + 1);
		for (unsigned i = 0; i < want; i++)
			batch[i] = (void *)(uintptr_t)(next + i);
		unsigned done = 0;
		while (done < want) {
			unsigned k = rp_spsc_push_burst(x->r, batch + done, want - done);

			done += k;
			if (!k) {
				if ((++spins & 0xfffff) == 0 && now_s() > deadline) {
					x->timed_out = 1;
					return NULL;
				}
				sched_yield();
			}
		}
		next += want;
	}
	return NULL;
}

static void run_two_threads(uint32_t cap, uint64_t n)
{
	struct xfer x = { .r = rp_spsc_create(cap), .n = n, .cpu = 1 };
	pthread_t t;
	uint64_t expect = 1, spins = 0;
	double deadline = now_s() + DEADLINE_S;
	void *batch[32];

	assert_non_null(x.r);
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		x.cpu = -1;
	pin_to(x.cpu >= 0 ? 0 : -1);
	assert_int_equal(pthread_create(&t, NULL, producer, &x), 0);
	while (expect <= n) {
		unsigned got;

		if (expect & 1) {
			void *p = rp_spsc_pop(x.r);

			got = p != NULL;
			if (p && (uint64_t)(uintptr_t)p != expect)
				fail_msg("out of order: got %ju, expected %ju", (uintmax_t)(uintptr_t)p,
					 (uintmax_t)expect);
		} else {
			got = rp_spsc_pop_burst(x.r, batch, 1 + (unsigned)(expect % 32));
			for (unsigned i = 0; i < got; i++)
				if ((uint64_t)(uintptr_t)batch[i] != expect + i)
					fail_msg("burst out of order: got %ju, expected %ju",
						 (uintmax_t)(uintptr_t)batch[i], (uintmax_t)(expect + i));
		}
		expect += got;
		if (!got && (++spins & 0xfffff) == 0) {
			if (now_s() > deadline)
				fail_msg("timed out at item %ju of %ju", (uintmax_t)expect, (uintmax_t)n);
			sched_yield();
		}
	}
	pthread_join(t, NULL);
	assert_false(x.timed_out);
	assert_null(rp_spsc_pop(x.r)); /* nothing extra */
	rp_spsc_destroy(x.r);
}

static uint64_t items(void)
{
#ifdef UNDER_TSAN
	return 200000;
#else
	const char *r = getenv("RP_TEST_REDUCED");

	return (r && *r == '1') ? 2000000 : 100000000;
#endif
}

static void test_two_threads_order_and_loss(void **state)
{
	uint64_t n = items();

	(void)state;
	printf("[ INFO     ] moving %ju items through a 1024-slot ring\n", (uintmax_t)n);
	run_two_threads(1024, n);
}

/* A tiny ring keeps both threads on the full/empty edges. */
static void test_two_threads_tiny_ring(void **state)
{
	(void)state;
	run_two_threads(2, items() / 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_rejects_bad_capacity),
		cmocka_unit_test(test_wraparound_every_capacity),
		cmocka_unit_test(test_burst_partial),
		cmocka_unit_test(test_burst_wraps_at_every_offset),
		cmocka_unit_test(test_free_run_every_offset_and_fill),
		cmocka_unit_test(test_two_threads_order_and_loss),
		cmocka_unit_test(test_two_threads_tiny_ring),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
