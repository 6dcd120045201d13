/* SPDX-License-Identifier: MIT */
/*
 * net/filecache on a real directory tree: hits share one open file; a file
 * replaced (rename over it) or rewritten is served fresh after at most the
 * revalidation period, while a holder of the old one keeps reading it (and
 * with the default period every lookup that starts 0.5 s after a change,
 * replace or rewrite, at any phase of the period, serves it); the
 * LRU evicts only entries nobody holds; nothing outside the root is reachable
 * by "..", an absolute path or a symlink, while a symlink inside it works;
 * directories are refused; so are a FIFO and a device node, at once (a
 * FIFO's open for reading would wait for a writer) and without opening them
 * for reading, and a regular file's descriptor is left blocking.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <ringplane/filecache.h>

static char root[64];
static int rootfd;

static void put_file(const char *name, const char *text)
{
	char p[256];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", root, name);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void read_entry(const struct rp_file_entry *e, char *buf, size_t cap)
{
	ssize_t n = pread(e->fd, buf, cap - 1, 0);

	assert_true(n >= 0);
	buf[n] = 0;
}

static int setup(void **state)
{
	char p[256];

	(void)state;
	snprintf(root, sizeof(root), "/tmp/rp_filecache_XXXXXX");
	assert_non_null(mkdtemp(root));
	snprintf(p, sizeof(p), "%s/sub", root);
	assert_int_equal(mkdir(p, 0755), 0);
	put_file("a.txt", "version 1");
	put_file("sub/b.txt", "bee");
	snprintf(p, sizeof(p), "%s/inside", root);
	assert_int_equal(symlink("sub/b.txt", p), 0);
	snprintf(p, sizeof(p), "%s/outside", root);
	assert_int_equal(symlink("/etc/hostname", p), 0);
	rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(rootfd >= 0);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	close(rootfd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_hits_share_one_file(void **state)
{
	struct rp_file_cache *c = rp_file_cache_create(rootfd, 8, 0);
	struct rp_file_entry *e1, *e2;
	struct rp_file_cache_stats st;
	char buf[64];

	(void)state;
	assert_int_equal(rp_file_cache_get(c, "/a.txt", 6, &e1), 0);
	assert_int_equal(rp_file_cache_get(c, "a.txt", 5, &e2), 0);
	assert_ptr_equal(e1, e2);
	read_entry(e1, buf, sizeof(buf));
	assert_string_equal(buf, "version 1");
	assert_int_equal(e1->st.st_size, 9);
	rp_file_cache_put(c, e1);
	rp_file_cache_put(c, e2);
	rp_file_cache_stats(c, &st);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.open_fds, 1);
	rp_file_cache_destroy(c);
}

static void test_replaced_file_seen_after_period(void **state)
{
	struct rp_file_cache *c = rp_file_cache_create(rootfd, 8, 200 * 1000 * 1000ull);
	struct rp_file_entry *e, *old;
	char from[256], to[256], buf[64];

	(void)state;
	assert_int_equal(rp_file_cache_get(c, "a.txt", 5, &old), 0);
	/* replaced by rename, as deploy tools do */
	put_file("a.new", "version 2, longer");
	snprintf(from, sizeof(from), "%s/a.new", root);
	snprintf(to, sizeof(to), "%s/a.txt", root);
	assert_int_equal(rename(from, to), 0);
	usleep(250 * 1000);
	assert_int_equal(rp_file_cache_get(c, "a.txt", 5, &e), 0);
	read_entry(e, buf, sizeof(buf));
	assert_string_equal(buf, "version 2, longer");
	assert_int_equal(e->st.st_size, 17);
	/* the old entry, still referenced, still reads the old file */
	read_entry(old, buf, sizeof(buf));
	assert_string_equal(buf, "version 1");
	rp_file_cache_put(c, old);
	rp_file_cache_put(c, e);
	/* rewritten in place (same inode, new size): seen too */
	usleep(250 * 1000);
	put_file("a.txt", "v3");
	usleep(250 * 1000);
	assert_int_equal(rp_file_cache_get(c, "a.txt", 5, &e), 0);
	assert_int_equal(e->st.st_size, 2);
	rp_file_cache_put(c, e);
	put_file("a.txt", "version 1");
	rp_file_cache_destroy(c);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* What a lookup serves right now: the bytes of the file it hands out. */
static void served(struct rp_file_cache *c, char *buf, size_t cap)
{
	struct rp_file_entry *e;

	assert_int_equal(rp_file_cache_get(c, "bound.txt", 9, &e), 0);
	assert_true(e->st.st_size < (off_t)cap);
	ssize_t n = pread(e->fd, buf, (size_t)e->st.st_size, 0);

	assert_true(n >= 0);
	buf[n] = 0;
	rp_file_cache_put(c, e);
}

/*
 * The promise with the default period: every lookup that starts one period
 * (0.5 s) or more after a change serves the changed file, so a change is
 * served within 1 s. A hot entry is looked up every 2 ms; the file is
 * replaced by rename or rewritten in place with another size, at a phase
 * that moves across the period, the first one right after a check (the
 * worst case: the longest wait). Every lookup up to 0.2 s past the bound
 * is checked, and once the new bytes are served the old never come back.
 */
static void test_change_served_within_bound_every_time(void **state)
{
	const char *reduced = getenv("RP_TEST_REDUCED");
	unsigned rounds = reduced && *reduced == '1' ? 4 : 8;
	const uint64_t period = RP_FILE_CACHE_REVALIDATE_NS;
	struct rp_file_cache *c = rp_file_cache_create(rootfd, 8, 0);
	struct rp_file_cache_stats st0, st;
	char from[256], to[256], want[64], buf[64];
	uint64_t worst = 0;

	(void)state;
	snprintf(from, sizeof(from), "%s/bound.new", root);
	snprintf(to, sizeof(to), "%s/bound.txt", root);
	put_file("bound.txt", "round 0");
	served(c, buf, sizeof(buf));
	assert_string_equal(buf, "round 0");
	for (unsigned i = 1; i <= rounds; i++) {
		uint64_t t0, tc, first = 0;
		unsigned looks = 0;

		/* let the entry fall due, then a lookup checks it: the phase
		 * counts from that check */
		usleep((useconds_t)(period / 1000 + 20000));
		rp_file_cache_stats(c, &st0);
		served(c, buf, sizeof(buf));
		rp_file_cache_stats(c, &st);
		assert_int_equal(st.revalidations, st0.revalidations + 1);
		t0 = mono_ns();
		while (mono_ns() - t0 < (uint64_t)(i - 1) * period / rounds)
			usleep(2000);
		/* another size every round, so an in-place rewrite shows in stat */
		snprintf(want, sizeof(want), "round %u%.*s", i, (int)i, "++++++++++++++++");
		if (i % 2) {
			put_file("bound.new", want);
			assert_int_equal(rename(from, to), 0);
		} else {
			put_file("bound.txt", want);
		}
		tc = mono_ns();
		for (;;) {
			uint64_t start = mono_ns();
			bool fresh;

			if (start - tc > period + 200000000ull)
				break;
			served(c, buf, sizeof(buf));
			looks++;
			fresh = !strcmp(buf, want);
			if (fresh && !first)
				first = mono_ns() - tc;
			/* the bound: a lookup that starts a period after the change */
			if (start - tc >= period && !fresh)
				fail_msg("round %u: stale %llu ms after the change", i,
					 (unsigned long long)((start - tc) / 1000000));
			if (first && !fresh)
				fail_msg("round %u: the old bytes came back", i);
			usleep(2000);
		}
		assert_true(first > 0);
		assert_true(first <= 1000000000ull);
		if (first > worst)
			worst = first;
		assert_true(looks >= 10);
	}
	print_message("change served after at most %llu ms (bound %llu ms), %u rounds\n",
		      (unsigned long long)(worst / 1000000), (unsigned long long)(period / 1000000),
		      rounds);
	rp_file_cache_destroy(c);
}

static void test_lru_evicts_what_nobody_holds(void **state)
{
	struct rp_file_cache *c = rp_file_cache_create(rootfd, 2, 0);
	struct rp_file_entry *a, *b, *x, *y;
	struct rp_file_cache_stats st;
	char buf[64];

	(void)state;
	put_file("c.txt", "sea");
	assert_int_equal(rp_file_cache_get(c, "a.txt", 5, &a), 0); /* held, least recent */
	assert_int_equal(rp_file_cache_get(c, "sub/b.txt", 9, &b), 0);
	rp_file_cache_put(c, b);
	assert_int_equal(rp_file_cache_get(c, "c.txt", 5, &x), 0); /* evicts b, not a */
	rp_file_cache_stats(c, &st);
	assert_int_equal(st.evicted, 1);
	assert_int_equal(st.entries, 2);
	assert_int_equal(st.open_fds, 2);
	read_entry(a, buf, sizeof(buf));
	assert_string_equal(buf, "version 1");
	/* both held: no room, and nothing is closed under its holder */
	assert_int_equal(rp_file_cache_get(c, "sub/b.txt", 9, &y), -EBUSY);
	rp_file_cache_put(c, x);
	assert_int_equal(rp_file_cache_get(c, "sub/b.txt", 9, &y), 0); /* evicts c */
	rp_file_cache_put(c, y);
	assert_int_equal(rp_file_cache_get(c, "a.txt", 5, &x), 0); /* still cached: a hit */
	assert_ptr_equal(x, a);
	rp_file_cache_put(c, x);
	rp_file_cache_put(c, a);
	rp_file_cache_stats(c, &st);
	assert_int_equal(st.misses, 5); /* the refused lookup was a miss too */
	assert_int_equal(st.open_fds, 2);
	rp_file_cache_destroy(c);
}

static void test_nothing_outside_the_root(void **state)
{
	struct rp_file_cache *c = rp_file_cache_create(rootfd, 8, 0);
	struct rp_file_entry *e;
	char buf[64], abs[300];

	(void)state;
	assert_int_equal(rp_file_cache_get(c, "../etc/hostname", 15, &e), -EXDEV);
	assert_int_equal(rp_file_cache_get(c, "sub/../../etc/hostname", 22, &e), -EXDEV);
	assert_int_equal(rp_file_cache_get(c, "outside", 7, &e), -EXDEV);
	/* an absolute path is taken relative to the root (the leading '/' goes) */
	snprintf(abs, sizeof(abs), "%s/a.txt", root);
	assert_int_equal(rp_file_cache_get(c, abs, strlen(abs), &e), -ENOENT);
	assert_int_equal(rp_file_cache_get(c, "inside", 6, &e), 0);
	read_entry(e, buf, sizeof(buf));
	assert_string_equal(buf, "bee");
	rp_file_cache_put(c, e);
	assert_int_equal(rp_file_cache_get(c, "sub", 3, &e), -EACCES);
	assert_int_equal(rp_file_cache_get(c, "/", 1, &e), -EACCES);
	assert_int_equal(rp_file_cache_get(c, "nope", 4, &e), -ENOENT);
	assert_int_equal(rp_file_cache_get(c, "a\0b", 3, &e), -EINVAL);
	rp_file_cache_destroy(c);
}

/* A hung open is a failure, not a hung test: SIGALRM ends the program. */
/* A new root (a deploy replaced the directory): every entry is dropped,
 * one still held reads its old file until its put, and lookups go beneath
 * the new root. */
static void test_set_root(void **state)
{
	struct rp_file_cache *c = rp_file_cache_create(rootfd, 8, 0);
	struct rp_file_entry *held, *other, *now;
	struct rp_file_cache_stats st;
	char p[256], buf[64];
	int subfd;

	(void)state;
	put_file("r.txt", "old root");
	put_file("sub/r.txt", "new root");
	snprintf(p, sizeof(p), "%s/sub", root);
	subfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(subfd >= 0);
	assert_int_equal(rp_file_cache_get(c, "r.txt", 5, &held), 0);
	assert_int_equal(rp_file_cache_get(c, "a.txt", 5, &other), 0);
	rp_file_cache_put(c, other);
	assert_int_equal(rp_file_cache_set_root(c, -1), -EINVAL);
	assert_int_equal(rp_file_cache_set_root(c, subfd), 0);
	rp_file_cache_stats(c, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.open_fds, 1); /* the held one, until its put */
	read_entry(held, buf, sizeof(buf));
	assert_string_equal(buf, "old root");
	assert_int_equal(rp_file_cache_get(c, "r.txt", 5, &now), 0);
	assert_ptr_not_equal(now, held);
	read_entry(now, buf, sizeof(buf));
	assert_string_equal(buf, "new root");
	/* a.txt is not beneath the new root */
	assert_int_equal(rp_file_cache_get(c, "a.txt", 5, &other), -ENOENT);
	rp_file_cache_put(c, held);
	rp_file_cache_stats(c, &st);
	assert_int_equal(st.open_fds, 1);
	rp_file_cache_put(c, now);
	rp_file_cache_destroy(c);
	close(subfd);
}

static void test_fifo_and_device_refused_at_once(void **state)
{
	struct rp_file_cache *c = rp_file_cache_create(rootfd, 8, 0);
	struct rp_file_entry *e;
	char p[256];
	int flags;

	(void)state;
	snprintf(p, sizeof(p), "%s/fifo", root);
	assert_int_equal(mkfifo(p, 0644), 0);
	alarm(10);
	assert_int_equal(rp_file_cache_get(c, "fifo", 4, &e), -EACCES);
	/* never opened for reading: a writer still finds no reader */
	assert_int_equal(open(p, O_WRONLY | O_NONBLOCK | O_CLOEXEC), -1);
	assert_int_equal(errno, ENXIO);
	snprintf(p, sizeof(p), "%s/null", root);
	if (mknod(p, S_IFCHR | 0666, makedev(1, 3)) == 0)
		assert_int_equal(rp_file_cache_get(c, "null", 4, &e), -EACCES);
	else
		printf("SKIP part: mknod of a character device refused (%s)\n", strerror(errno));
	alarm(0);
	assert_int_equal(rp_file_cache_get(c, "inside", 6, &e), 0);
	flags = fcntl(e->fd, F_GETFL);
	assert_true(flags >= 0 && !(flags & O_NONBLOCK));
	rp_file_cache_put(c, e);
	rp_file_cache_destroy(c);
}

int main(void)
{
	const struct CMUnitTest all[] = {
		cmocka_unit_test(test_hits_share_one_file),
		cmocka_unit_test(test_replaced_file_seen_after_period),
		cmocka_unit_test(test_change_served_within_bound_every_time),
		cmocka_unit_test(test_lru_evicts_what_nobody_holds),
		cmocka_unit_test(test_nothing_outside_the_root),
		cmocka_unit_test(test_fifo_and_device_refused_at_once),
		cmocka_unit_test(test_set_root),
	};

	return cmocka_run_group_tests_name("filecache", all, setup, teardown);
}
