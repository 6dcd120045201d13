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
 * for reading, and a regular file's descriptor is left blocking. Out of
 * descriptors (RLIMIT_NOFILE lowered to the lowest free one), a get closes
 * the least recently used entries nobody holds, a batch at a time, and
 * opens its file; with every entry held it fails with -EMFILE and closes
 * nothing; rp_file_cache_shed closes the oldest unheld ones only. A
 * destroy closes what nobody holds and leaves a held entry open, its
 * descriptor not reused, until its put (passed the destroyed cache or
 * NULL), which closes it and, the last one, frees the rest (LeakSanitizer
 * in the ASan build). A NULL path, out or cache, a NUL byte in the path
 * and a path too long are refused (-EINVAL, -ENAMETOOLONG) and counted.
 * A cache made on one thread is bound to the first that gets from it;
 * another thread's gets (-EPERM), puts, sheds and set_root are refused and
 * counted in wrong_thread while the owner goes on (in the TSan build too).
 * An unbound cache is bound by a shed or set_root as well: one racing
 * another thread's first get, exactly one of them gets through. A NULL
 * cache's shed, set_root and stats are refused (0, -EINVAL, zeroes).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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

/* Descriptors that fill the holes below the lowered limit (no_fd_left). */
static int fillers[256], nfillers;

/* The soft RLIMIT_NOFILE just above @hi, the highest of the cached files'
 * descriptors, and the free numbers below it taken by dups: not one left,
 * and a cached file's close gives a usable one back. */
static void no_fd_left(int hi)
{
	struct rlimit rl;
	int fd;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = (rlim_t)hi + 1;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	while ((fd = dup(0)) >= 0) {
		assert_true(nfillers < (int)(sizeof(fillers) / sizeof(fillers[0])));
		fillers[nfillers++] = fd;
	}
	assert_int_equal(errno, EMFILE);
}

/* The limit back to @saved, the fillers closed. */
static void fds_back(const struct rlimit *saved)
{
	assert_int_equal(setrlimit(RLIMIT_NOFILE, saved), 0);
	while (nfillers)
		close(fillers[--nfillers]);
}

static void test_emfile_sheds_what_nobody_holds(void **state)
{
	enum { N = 12 };
	struct rp_file_cache *c = rp_file_cache_create(rootfd, 64, 0);
	struct rp_file_entry *e[N], *x;
	struct rp_file_cache_stats st;
	struct rlimit saved;
	char name[16], want[16], buf[64];
	int hi = 0;

	(void)state;
	assert_non_null(c);
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "e%d.txt", i);
		snprintf(want, sizeof(want), "body %d", i);
		put_file(name, want);
	}
	/* e0 held (the LRU's tail), e1..e9 cached and unheld, e1 the oldest */
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "e%d.txt", i);
		assert_int_equal(rp_file_cache_get(c, name, strlen(name), &e[i]), 0);
		if (i)
			rp_file_cache_put(c, e[i]);
	}
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
	for (int i = 0; i < 10; i++)
		hi = e[i]->fd > hi ? e[i]->fd : hi;
	no_fd_left(hi);
	/* a miss with no descriptor free: a batch of the oldest unheld goes */
	assert_int_equal(rp_file_cache_get(c, "e10.txt", 7, &e[10]), 0);
	read_entry(e[10], buf, sizeof(buf));
	assert_string_equal(buf, "body 10");
	rp_file_cache_stats(c, &st);
	assert_int_equal(st.shed, RP_FILE_CACHE_SHED_BATCH);
	assert_int_equal(st.evicted, 0);
	assert_int_equal(st.entries, 11 - RP_FILE_CACHE_SHED_BATCH);
	assert_int_equal(st.open_fds, 11 - RP_FILE_CACHE_SHED_BATCH);
	read_entry(e[0], buf, sizeof(buf)); /* held: never closed under its holder */
	assert_string_equal(buf, "body 0");
	fds_back(&saved);
	/* e1..e4 went (misses now), e5..e9 stayed (hits) */
	for (int i = 1; i < 10; i++) {
		uint64_t misses = st.misses;

		snprintf(name, sizeof(name), "e%d.txt", i);
		assert_int_equal(rp_file_cache_get(c, name, strlen(name), &e[i]), 0);
		rp_file_cache_stats(c, &st);
		assert_int_equal(st.misses - misses, i <= (int)RP_FILE_CACHE_SHED_BATCH ? 1 : 0);
		snprintf(want, sizeof(want), "body %d", i);
		read_entry(e[i], buf, sizeof(buf));
		assert_string_equal(buf, want);
	}
	/* every entry held now and no descriptor free: nothing to give back,
	 * the get fails as the open did and closes nothing */
	for (int i = 0; i < 11; i++)
		hi = e[i]->fd > hi ? e[i]->fd : hi;
	no_fd_left(hi);
	rp_file_cache_stats(c, &st);
	assert_int_equal(rp_file_cache_get(c, "e11.txt", 7, &x), -EMFILE);
	assert_int_equal(rp_file_cache_shed(c, 100), 0);
	{
		struct rp_file_cache_stats st2;

		rp_file_cache_stats(c, &st2);
		assert_int_equal(st2.shed, st.shed);
		assert_int_equal(st2.open_fds, st.open_fds);
		assert_int_equal(st2.entries, st.entries);
	}
	for (int i = 0; i < 11; i++) {
		snprintf(want, sizeof(want), "body %d", i);
		read_entry(e[i], buf, sizeof(buf));
		assert_string_equal(buf, want);
	}
	fds_back(&saved);
	/* the holders done: the caller's own shed closes the oldest two */
	for (int i = 0; i < 11; i++)
		rp_file_cache_put(c, e[i]);
	assert_int_equal(rp_file_cache_shed(c, 2), 2);
	rp_file_cache_stats(c, &st);
	assert_int_equal(st.shed, RP_FILE_CACHE_SHED_BATCH + 2);
	assert_int_equal(st.entries, 9);
	rp_file_cache_destroy(c);
	for (int i = 0; i < N; i++) {
		char p[256];

		snprintf(p, sizeof(p), "%s/e%d.txt", root, i);
		unlink(p);
	}
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

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* Destroyed while a response holds an entry: the held file stays open and
 * unchanged until its put, which closes it; what nobody held is closed at
 * once. The old destroy closed the held descriptor (the next open took its
 * number: another file's bytes under the response) and freed the entry
 * under the put (heap-use-after-free under ASan). */
static void test_destroy_leaves_held_entries_until_put(void **state)
{
	struct rp_file_cache *c = rp_file_cache_create(rootfd, 8, 0);
	struct rp_file_entry *held, *free_e;
	struct stat before, now;
	int held_fd, free_fd, other;
	char buf[64];

	(void)state;
	assert_int_equal(rp_file_cache_get(c, "a.txt", 5, &held), 0);
	assert_int_equal(rp_file_cache_get(c, "sub/b.txt", 9, &free_e), 0);
	held_fd = held->fd;
	free_fd = free_e->fd;
	rp_file_cache_put(c, free_e);
	assert_int_equal(fstat(held_fd, &before), 0);
	rp_file_cache_destroy(c);
	assert_false(fd_open(free_fd)); /* nobody held it: closed now */
	assert_true(fd_open(held_fd));
	assert_int_equal(held->fd, held_fd);
	/* the next open does not get the held descriptor's number */
	other = openat(rootfd, "sub/b.txt", O_RDONLY | O_CLOEXEC);
	assert_true(other >= 0);
	assert_int_not_equal(other, held_fd);
	assert_int_equal(fstat(held_fd, &now), 0);
	assert_int_equal(now.st_ino, before.st_ino);
	read_entry(held, buf, sizeof(buf));
	assert_string_equal(buf, "version 1");
	assert_int_equal(held->st.st_size, 9);
	close(other);
	rp_file_cache_put(c, held); /* the destroyed cache, as the header allows */
	assert_false(fd_open(held_fd));
}

/* Several held through a destroy, one twice and one already evicted while
 * held (set_root): each closes at its own last put, the puts passing NULL
 * for the cache; the last frees the cache (LeakSanitizer checks it). */
static void test_destroy_with_several_held(void **state)
{
	struct rp_file_cache *c = rp_file_cache_create(rootfd, 3, 0);
	struct rp_file_entry *a, *a2, *b, *z;
	int afd, bfd, zfd;
	char buf[64];

	(void)state;
	assert_int_equal(rp_file_cache_get(c, "a.txt", 5, &z), 0);
	zfd = z->fd;
	assert_int_equal(rp_file_cache_set_root(c, rootfd), 0); /* z: held, dropped */
	assert_int_equal(rp_file_cache_get(c, "a.txt", 5, &a), 0);
	assert_int_equal(rp_file_cache_get(c, "a.txt", 5, &a2), 0);
	assert_ptr_equal(a, a2);
	assert_int_equal(rp_file_cache_get(c, "inside", 6, &b), 0);
	afd = a->fd;
	bfd = b->fd;
	assert_int_not_equal(afd, zfd);
	rp_file_cache_destroy(c);
	assert_true(fd_open(afd) && fd_open(bfd) && fd_open(zfd));
	rp_file_cache_put(NULL, a);
	assert_true(fd_open(afd)); /* a2 still holds it */
	rp_file_cache_put(NULL, z);
	assert_false(fd_open(zfd));
	read_entry(b, buf, sizeof(buf));
	assert_string_equal(buf, "bee");
	rp_file_cache_put(NULL, a2);
	assert_false(fd_open(afd));
	assert_true(fd_open(bfd));
	rp_file_cache_put(NULL, b); /* the last: frees the cache */
	assert_false(fd_open(bfd));
}

/* Bad arguments get -EINVAL (or -ENAMETOOLONG), *out untouched, counted in
 * refused, and the cache goes on working. The old get read a NULL path
 * (UBSan: null load, then SIGSEGV). */
static void test_bad_arguments_refused(void **state)
{
	struct rp_file_cache *c = rp_file_cache_create(rootfd, 4, 0);
	static struct rp_file_entry untouched;
	struct rp_file_entry *e = &untouched;
	struct rp_file_cache_stats st;
	static char longpath[RP_FILE_CACHE_PATH_MAX + 8];
	char buf[64];

	(void)state;
	assert_int_equal(rp_file_cache_get(c, NULL, 0, &e), -EINVAL);
	assert_int_equal(rp_file_cache_get(c, NULL, 5, &e), -EINVAL);
	assert_int_equal(rp_file_cache_get(c, "a.txt", 5, NULL), -EINVAL);
	assert_int_equal(rp_file_cache_get(NULL, "a.txt", 5, &e), -EINVAL);
	assert_int_equal(rp_file_cache_get(c, "a.t\0xt", 6, &e), -EINVAL);
	memset(longpath, 'x', sizeof(longpath) - 1);
	assert_int_equal(rp_file_cache_get(c, longpath, sizeof(longpath) - 1, &e), -ENAMETOOLONG);
	assert_ptr_equal(e, &untouched);
	rp_file_cache_stats(c, &st);
	assert_int_equal(st.refused, 5); /* the NULL cache has nowhere to count */
	/* a NULL cache: refused, not read (these crashed before) */
	assert_int_equal(rp_file_cache_set_root(NULL, rootfd), -EINVAL);
	assert_int_equal(rp_file_cache_shed(NULL, 8), 0);
	{
		struct rp_file_cache_stats z;

		memset(&z, 0xff, sizeof(z));
		rp_file_cache_stats(NULL, &z);
		assert_int_equal(z.entries + z.hits + z.misses + z.refused + z.wrong_thread, 0);
	}
	assert_int_equal(st.misses + st.hits, 0);
	assert_int_equal(st.open_fds, 0);
	assert_int_equal(rp_file_cache_get(c, "a.txt", 5, &e), 0);
	read_entry(e, buf, sizeof(buf));
	assert_string_equal(buf, "version 1");
	rp_file_cache_put(c, e);
	rp_file_cache_destroy(c);
}

/* ---- one owner thread ---- */

#define OW_OWNER_ROUNDS 20000
#define OW_OTHER_ROUNDS 20000
#define OW_LIMIT_S	20.0

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct {
	struct rp_file_cache *c;
	struct rp_file_entry *held; /* the owner's, through the other's calls */
	atomic_int bound, other_done, owner_done;
	/* the owner's results, read after its join */
	int first, fails, rounds;
	unsigned held_refs;
	struct rp_file_cache_stats st;
} OW;

static void *owner_main(void *arg)
{
	const char *names[2] = {"a.txt", "sub/b.txt"};
	double end = mono_s() + OW_LIMIT_S;
	int i;

	(void)arg;
	OW.first = rp_file_cache_get(OW.c, "a.txt", 5, &OW.held); /* binds it here */
	atomic_store(&OW.bound, 1);
	for (i = 0; i < OW_OWNER_ROUNDS && mono_s() < end; i++) {
		struct rp_file_entry *e;

		if (rp_file_cache_get(OW.c, names[i % 2], strlen(names[i % 2]), &e))
			OW.fails++;
		else
			rp_file_cache_put(OW.c, e);
	}
	OW.rounds = i;
	while (!atomic_load(&OW.other_done) && mono_s() < end)
		usleep(1000);
	if (!OW.first) {
		OW.held_refs = OW.held->refs; /* the other thread's puts did nothing */
		rp_file_cache_put(OW.c, OW.held);
	}
	rp_file_cache_stats(OW.c, &OW.st);
	atomic_store(&OW.owner_done, 1);
	return NULL;
}

/* Two threads on one cache: the old code let both walk and relink its
 * table, and a get from either could loop for good on a corrupted hash
 * chain (6 of 6 runs of 20,000 gets each; TSan: races in get). Now the
 * creating thread hands the cache over, the first get binds it to the
 * owner, and the creator's own calls are refused while the owner works. */
static void test_other_thread_refused(void **state)
{
	static struct rp_file_entry untouched;
	struct rp_file_entry *e;
	struct rp_file_cache_stats st;
	struct timespec ts;
	pthread_t th;
	double end;
	int i, eperm = 0, ret;

	(void)state;
	memset(&OW, 0, sizeof(OW));
	OW.c = rp_file_cache_create(rootfd, 8, 0);
	assert_non_null(OW.c);
	assert_int_equal(pthread_create(&th, NULL, owner_main, NULL), 0);
	for (end = mono_s() + OW_LIMIT_S; !atomic_load(&OW.bound) && mono_s() < end;)
		usleep(1000);
	assert_true(atomic_load(&OW.bound));
	/* this thread made the cache but is not its owner now */
	for (i = 0; i < OW_OTHER_ROUNDS && mono_s() < end; i++) {
		e = &untouched;
		ret = rp_file_cache_get(OW.c, "a.txt", 5, &e);
		eperm += ret == -EPERM;
		if (ret == 0) /* not expected: give it back where it came from */
			rp_file_cache_put(OW.c, e);
		else if (e != &untouched)
			fail_msg("a refused get wrote *out");
		rp_file_cache_put(OW.c, OW.held); /* refused: the owner's hold stays */
	}
	assert_int_equal(rp_file_cache_shed(OW.c, 8), 0);
	assert_int_equal(rp_file_cache_set_root(OW.c, rootfd), -EPERM);
	atomic_store(&OW.other_done, 1);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)OW_LIMIT_S + 10;
	ret = pthread_timedjoin_np(th, NULL, &ts);
	if (ret)
		fail_msg("the owner thread hung (pthread_timedjoin_np: %d)", ret);
	print_message("# owner: %d rounds, %d failed; other thread: %d gets, %d refused with "
		      "-EPERM; wrong_thread %llu\n",
		      OW.rounds, OW.fails, i, eperm, (unsigned long long)OW.st.wrong_thread);
	assert_int_equal(i, OW_OTHER_ROUNDS);
	assert_int_equal(eperm, OW_OTHER_ROUNDS);
	assert_int_equal(OW.first, 0);
	assert_int_equal(OW.rounds, OW_OWNER_ROUNDS);
	assert_int_equal(OW.fails, 0);
	assert_int_equal(OW.held_refs, 1);
	/* every get and put of the other thread, its shed and its set_root */
	assert_int_equal(OW.st.wrong_thread, 2 * OW_OTHER_ROUNDS + 2);
	assert_int_equal(OW.st.refused, 0);
	assert_int_equal(OW.st.hits + OW.st.misses, OW_OWNER_ROUNDS + 1);
	assert_int_equal(OW.st.misses, 2);
	rp_file_cache_stats(OW.c, &st); /* after the join: nothing moved */
	assert_int_equal(st.wrong_thread, OW.st.wrong_thread);
	assert_int_equal(st.entries, 2);
	rp_file_cache_destroy(OW.c);
}

/* ---- an unbound cache: set_root and shed race the first get ---- */

#define UB_ROUNDS  200
#define UB_LIMIT_S 20.0

static struct {
	struct rp_file_cache *c;
	pthread_barrier_t bar;
	int get, root;
	unsigned shed;
} UB;

static void *ub_getter(void *arg)
{
	struct rp_file_entry *e;

	(void)arg;
	pthread_barrier_wait(&UB.bar);
	UB.get = rp_file_cache_get(UB.c, "a.txt", 5, &e);
	if (UB.get == 0)
		rp_file_cache_put(UB.c, e);
	return NULL;
}

static void *ub_rooter(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&UB.bar);
	UB.root = rp_file_cache_set_root(UB.c, rootfd);
	UB.shed = rp_file_cache_shed(UB.c, 8);
	return NULL;
}

/* Two threads, released together on a fresh cache: one gets (and puts),
 * the other sets the root and sheds. Whichever comes first binds the
 * cache; the other's calls are refused and counted. Before, set_root and
 * shed on an unbound cache let any thread through without binding it, so
 * both got through and raced on the table (TSan: set_root against
 * openat2's root, set_root against the LRU's head), and the check below
 * that exactly one did failed in every round. */
static void test_unbound_set_root_races_first_get(void **state)
{
	double end = mono_s() + UB_LIMIT_S;
	int i, getter_won = 0, rooter_won = 0;

	(void)state;
	for (i = 0; i < UB_ROUNDS && mono_s() < end; i++) {
		struct rp_file_cache_stats st;
		pthread_t a, b;

		memset(&UB, 0, sizeof(UB));
		assert_int_equal(pthread_barrier_init(&UB.bar, NULL, 2), 0);
		UB.c = rp_file_cache_create(rootfd, 8, 0);
		assert_non_null(UB.c);
		assert_int_equal(pthread_create(&a, NULL, ub_getter, NULL), 0);
		assert_int_equal(pthread_create(&b, NULL, ub_rooter, NULL), 0);
		assert_int_equal(pthread_join(a, NULL), 0);
		assert_int_equal(pthread_join(b, NULL), 0);
		rp_file_cache_stats(UB.c, &st);
		if (UB.get == 0) { /* the getter bound it: set_root and shed refused */
			getter_won++;
			if (UB.root != -EPERM || UB.shed != 0 || st.wrong_thread != 2)
				fail_msg("round %d: get 0, set_root %d, shed %u, wrong_thread %llu", i,
					 UB.root, UB.shed, (unsigned long long)st.wrong_thread);
			assert_int_equal(st.entries, 1);
		} else { /* set_root bound it: the get refused, *out untouched */
			rooter_won++;
			if (UB.get != -EPERM || UB.root != 0 || st.wrong_thread != 1)
				fail_msg("round %d: get %d, set_root %d, wrong_thread %llu", i, UB.get,
					 UB.root, (unsigned long long)st.wrong_thread);
			assert_int_equal(st.entries, 0);
		}
		rp_file_cache_destroy(UB.c);
		pthread_barrier_destroy(&UB.bar);
	}
	print_message("# %d rounds: the get bound the cache in %d, set_root in %d\n", i,
		      getter_won, rooter_won);
	assert_true(i > 0);
	assert_int_equal(getter_won + rooter_won, i);
}

int main(void)
{
	const struct CMUnitTest all[] = {
		cmocka_unit_test(test_hits_share_one_file),
		cmocka_unit_test(test_replaced_file_seen_after_period),
		cmocka_unit_test(test_change_served_within_bound_every_time),
		cmocka_unit_test(test_lru_evicts_what_nobody_holds),
		cmocka_unit_test(test_emfile_sheds_what_nobody_holds),
		cmocka_unit_test(test_nothing_outside_the_root),
		cmocka_unit_test(test_fifo_and_device_refused_at_once),
		cmocka_unit_test(test_set_root),
		cmocka_unit_test(test_destroy_leaves_held_entries_until_put),
		cmocka_unit_test(test_destroy_with_several_held),
		cmocka_unit_test(test_bad_arguments_refused),
		cmocka_unit_test(test_other_thread_refused),
		cmocka_unit_test(test_unbound_set_root_races_first_get),
	};

	return cmocka_run_group_tests_name("filecache", all, setup, teardown);
}
