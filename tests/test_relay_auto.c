/* SPDX-License-Identifier: MIT */
/*
 * Auto mode's read rule (net/relay_core.c relay_auto_read) on a relay of
 * its own making: no shard, no fds, the paths' quiesce a counter. A
 * direction in splice moves back to copy after 3 short reads in a row; a
 * read is short when it is under 4 KB and under the room the pipe had
 * left. A read that filled a nearly full pipe (its receiver a bit slower
 * than its sender) is no short read: such a direction used to drop back
 * to copy while it streamed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../net/relay_impl.h"

static unsigned quiesced[PATH_COUNT];

static void fake_quiesce_copy(struct rdir *d)
{
	(void)d;
	quiesced[PATH_COPY]++;
}

static void fake_quiesce_splice(struct rdir *d)
{
	(void)d;
	quiesced[PATH_SPLICE]++;
}

static const struct relay_path fake_copy = { .name = "copy", .quiesce = fake_quiesce_copy };
static const struct relay_path fake_splice = { .name = "splice",
					       .quiesce = fake_quiesce_splice };
static const struct relay_path *const fake_paths[PATH_COUNT] = {
	[PATH_COPY] = &fake_copy,
	[PATH_SPLICE] = &fake_splice,
	[PATH_URING] = &fake_splice,
};

static struct rp_relay R;

/* Direction 0 of an auto-mode relay, now in @path and wanting it. */
static struct rdir *dir_in(enum rdir_path path)
{
	struct rdir *d = &R.d[0];

	memset(&R, 0, sizeof(R));
	memset(quiesced, 0, sizeof(quiesced));
	R.cfg.mode = RP_RELAY_AUTO;
	R.paths = fake_paths;
	d->r = &R;
	d->path = d->want = (uint8_t)path;
	return d;
}

/* Splice reads that filled a pipe with little room left (1 KB, 100 B,
 * 4095 B: each under 4 KB, each the whole room offered), many in a row:
 * the direction stays in splice, nothing quiesced. Under the old rule
 * (short: under 4 KB whatever the room) the third moved it to copy. */
static void test_full_pipe_reads_stay_in_splice(void **state)
{
	static const size_t room[] = { 1024, 100, 4095, 1, 2048 };
	struct rdir *d = dir_in(PATH_SPLICE);

	(void)state;
	for (unsigned i = 0; i < 20; i++) {
		size_t n = room[i % (sizeof(room) / sizeof(room[0]))];

		relay_auto_read(d, n, n);
	}
	assert_int_equal(d->want, PATH_SPLICE);
	assert_int_equal(d->streak, 0);
	assert_int_equal(quiesced[PATH_SPLICE], 0);
	assert_int_equal(quiesced[PATH_COPY], 0);
}

/* Reads under 4 KB and under their room are short: the third in a row
 * moves the direction to copy (splice quiesced once), whether the pipe
 * was empty (256 KB of room) or nearly full (200 B offered, 100 read). */
static void test_short_reads_move_to_copy(void **state)
{
	static const size_t cap[] = { 256 * 1024, 200, 4096 };
	struct rdir *d = dir_in(PATH_SPLICE);

	(void)state;
	relay_auto_read(d, 100, cap[0]);
	relay_auto_read(d, 100, cap[1]);
	assert_int_equal(d->want, PATH_SPLICE);
	assert_int_equal(d->streak, 2);
	relay_auto_read(d, 4095, cap[2]);
	assert_int_equal(d->want, PATH_COPY);
	assert_int_equal(d->streak, 0);
	assert_int_equal(quiesced[PATH_SPLICE], 1);
	assert_int_equal(quiesced[PATH_COPY], 0);
}

/* A read that filled its room, or one of 4 KB or more, ends a streak of
 * short ones: two short, one that filled a 512 B room, two short, one of
 * 4 KB into a roomy pipe, two short: still in splice. */
static void test_full_read_restarts_streak(void **state)
{
	struct rdir *d = dir_in(PATH_SPLICE);

	(void)state;
	relay_auto_read(d, 10, 65536);
	relay_auto_read(d, 10, 65536);
	relay_auto_read(d, 512, 512);
	assert_int_equal(d->streak, 0);
	relay_auto_read(d, 10, 65536);
	relay_auto_read(d, 10, 65536);
	relay_auto_read(d, 4096, 65536);
	assert_int_equal(d->streak, 0);
	relay_auto_read(d, 10, 65536);
	relay_auto_read(d, 10, 65536);
	assert_int_equal(d->want, PATH_SPLICE);
	assert_int_equal(quiesced[PATH_SPLICE], 0);
}

/* Copy's rule is unchanged: 3 reads that fill the whole buffer move it to
 * splice; a read under the buffer restarts the count. */
static void test_copy_full_reads_move_to_splice(void **state)
{
	struct rdir *d = dir_in(PATH_COPY);

	(void)state;
	relay_auto_read(d, 4096, 4096);
	relay_auto_read(d, 4096, 4096);
	relay_auto_read(d, 4095, 4096);
	assert_int_equal(d->streak, 0);
	relay_auto_read(d, 4096, 4096);
	relay_auto_read(d, 4096, 4096);
	assert_int_equal(d->want, PATH_COPY);
	relay_auto_read(d, 4096, 4096);
	assert_int_equal(d->want, PATH_SPLICE);
	assert_int_equal(quiesced[PATH_COPY], 1);
	assert_int_equal(quiesced[PATH_SPLICE], 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_pipe_reads_stay_in_splice),
		cmocka_unit_test(test_short_reads_move_to_copy),
		cmocka_unit_test(test_full_read_restarts_streak),
		cmocka_unit_test(test_copy_full_reads_move_to_splice),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
