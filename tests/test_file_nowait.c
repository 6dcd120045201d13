/* SPDX-License-Identifier: MIT */
/*
 * rp_file_read_nowait (include/ringplane/filesend.h): a file range read
 * only when no disk is waited for. On tmpfs (/dev/shm), which refuses
 * RWF_NOWAIT, by a plain read (without that fallback every call there was
 * -EAGAIN: the tmpfs case failed so); on a disk filesystem (/var/tmp) from
 * the page cache, over several iovecs, short only at end of file; the
 * same file dropped from the page cache, whole or past its first pages:
 * -EAGAIN or (readahead the miss started may finish first) the right
 * bytes, never a short count; a bad or closed fd (-EBADF), a pipe and a
 * socket (-ESPIPE), a directory on disk (-EAGAIN: it refuses RWF_NOWAIT),
 * bad arguments (-EINVAL), an
 * empty range (0, nothing read).
 */
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>

#include <ringplane/filesend.h>

#include "engine_test.h"

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif

#define SIZE 10000u

/* A file of @size pattern bytes in @dir (unlinked), or -1 when @dir has
 * no room for one. */
static int file_in(const char *dir, size_t size)
{
	uint8_t *data = malloc(size);
	int fd;

	assert_non_null(data);
	fd = tmp_file_in(dir);
	if (fd < 0) {
		free(data);
		return -1;
	}
	fill_pattern(data, size, 0);
	assert_int_equal(pwrite(fd, data, size, 0), (ssize_t)size);
	free(data);
	return fd;
}

static void check_bytes(const uint8_t *p, size_t len, size_t off)
{
	uint8_t *want = malloc(len ? len : 1);

	assert_non_null(want);
	fill_pattern(want, len, off);
	assert_memory_equal(p, want, len);
	free(want);
}

/* Pages of @fd in the page cache (cachestat(2)), -1 where the kernel lacks it. */
static long cached_pages(int fd, uint64_t off, uint64_t len)
{
	return cachestat_pages(fd, off, len);
}

/* The reads every filesystem that serves from memory must answer so:
 * a range inside, one across the end (short), iovecs split anywhere,
 * one past the end (0). */
static void reads_from_memory(int fd)
{
	static uint8_t buf[SIZE + 64];
	struct iovec v[4];
	char past;

	v[0] = (struct iovec){ buf, 4096 };
	assert_int_equal(rp_file_read_nowait(fd, v, 1, 100), 4096);
	check_bytes(buf, 4096, 100);

	/* memo_body's shape: the size and one byte more, which must not come */
	memset(buf, 0, sizeof(buf));
	v[0] = (struct iovec){ buf, SIZE };
	v[1] = (struct iovec){ &past, 1 };
	assert_int_equal(rp_file_read_nowait(fd, v, 2, 0), SIZE);
	check_bytes(buf, SIZE, 0);

	/* end of file inside the third iovec, an empty one on the way */
	memset(buf, 0, sizeof(buf));
	v[0] = (struct iovec){ buf, 3 };
	v[1] = (struct iovec){ buf + 3, 0 };
	v[2] = (struct iovec){ buf + 3, 5000 };
	v[3] = (struct iovec){ buf + 5003, 7 };
	assert_int_equal(rp_file_read_nowait(fd, v, 4, SIZE - 3000), 3000);
	check_bytes(buf, 3000, SIZE - 3000);

	v[0] = (struct iovec){ buf, 16 };
	assert_int_equal(rp_file_read_nowait(fd, v, 1, SIZE), 0);
	assert_int_equal(rp_file_read_nowait(fd, v, 1, SIZE + 4096), 0);
}

static void test_tmpfs_plain_read(void **state)
{
	struct iovec v;
	struct statfs sf;
	char b;
	int fd = -1;

	(void)state;
	if (statfs("/dev/shm", &sf) || sf.f_type != TMPFS_MAGIC ||
	    (fd = file_in("/dev/shm", SIZE)) < 0) {
		print_message("# SKIP: no tmpfs at /dev/shm to write a file in\n");
		skip();
	}
	v = (struct iovec){ &b, 1 };
	if (preadv2(fd, &v, 1, 0, RWF_NOWAIT) < 0)
		print_message("# tmpfs: a RWF_NOWAIT read fails with errno %d%s\n", errno,
			      errno == EOPNOTSUPP ? " (EOPNOTSUPP): the plain read's case" : "");
	else
		print_message("# tmpfs: this kernel takes RWF_NOWAIT there\n");
	/* again and again: the answer for /dev/shm's device remembered */
	for (int i = 0; i < 3; i++)
		reads_from_memory(fd);
	close(fd);
}

static int disk_file(void)
{
	struct statfs sf;
	int fd = -1;

	if (statfs("/var/tmp", &sf) || sf.f_type == TMPFS_MAGIC ||
	    (fd = file_in("/var/tmp", SIZE)) < 0) {
		print_message("# SKIP: /var/tmp is no disk filesystem to write a file in\n");
		skip();
	}
	return fd;
}

static void test_disk_cached(void **state)
{
	int fd;

	(void)state;
	fd = disk_file();
	reads_from_memory(fd); /* just written: in the page cache */
	close(fd);
}

/* Written back and dropped from the page cache (again while a loaded
 * host keeps a page); false when it would not let go. */
static bool evict(int fd)
{
	for (int i = 0; i < 20; i++) {
		assert_int_equal(fsync(fd), 0);
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		if (cached_pages(fd, 0, 0) == 0)
			return true;
		usleep(10000);
	}
	return false;
}

/* A miss is -EAGAIN. The miss may start readahead, which this VM's disk
 * can finish before the read looks again (filesend's small path test
 * sees both): then all the bytes, right. Never a short count, never the
 * wrong bytes. */
static ssize_t read_evicted_once(int fd, size_t off, size_t len, const char *what)
{
	static uint8_t buf[256 << 10];
	struct iovec v = { buf, len };
	ssize_t n;

	assert_true(len <= sizeof(buf));
	n = rp_file_read_nowait(fd, &v, 1, (off_t)off);
	print_message("# %s: %zd (%s)\n", what, n,
		      n == -EAGAIN ? "not cached" : "read: readahead was quicker?");
	if (n != -EAGAIN) {
		assert_int_equal(n, (ssize_t)len);
		check_bytes(buf, len, off);
	}
	return n;
}

/* ... but not every time: up to 5 evictions, and at least one of their
 * reads must miss (a read that waited for the disk never would). @drop
 * evicts again (false: the cache kept the file: skipped). */
static void read_evicted(int fd, size_t off, size_t len, const char *what, bool (*drop)(int))
{
	for (int i = 0; i < 5; i++) {
		if (i && !drop(fd)) {
			print_message("# SKIP: the page cache kept the file\n");
			skip();
		}
		if (read_evicted_once(fd, off, len, what) == -EAGAIN)
			return;
	}
	fail_msg("%s: 5 reads after eviction, none missed: it waited for the disk", what);
}

static void test_disk_evicted(void **state)
{
	int fd;

	(void)state;
	fd = disk_file();
	if (cached_pages(fd, 0, 0) < 0 || !evict(fd)) {
		print_message("# SKIP: no cachestat, or the page cache kept the file\n");
		close(fd);
		skip();
	}
	read_evicted(fd, 100, 5000, "dropped from the page cache", evict);
	close(fd);
}

/* The first pages cached, the rest not: the RWF_NOWAIT read stops
 * part-way, which is a miss (-EAGAIN), not a short count. */
static void test_disk_cached_in_part(void **state)
{
	const size_t size = 256 << 10, head = 64 << 10;
	char path[64], *buf = malloc(head);
	int fd, fd2;
	long h = -1, t = -1;

	(void)state;
	assert_non_null(buf);
	if ((fd = file_in("/var/tmp", size)) < 0) {
		free(buf);
		skip();
	}
	for (int i = 0; i < 5; i++) {
		if (cached_pages(fd, 0, 0) < 0 || !evict(fd))
			break;
		/* the head read back by a description with no readahead */
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		fd2 = open(path, O_RDONLY);
		assert_true(fd2 >= 0);
		assert_int_equal(posix_fadvise(fd2, 0, 0, POSIX_FADV_RANDOM), 0);
		assert_int_equal(pread(fd2, buf, head, 0), (ssize_t)head);
		close(fd2);
		h = cached_pages(fd, 0, head);
		t = cached_pages(fd, head, size - head);
		if (h == (long)(head / (size_t)sysconf(_SC_PAGESIZE)) && t == 0)
			break;
	}
	free(buf);
	if (h != (long)(head / (size_t)sysconf(_SC_PAGESIZE)) || t != 0) {
		print_message("# SKIP: the page cache would not hold the head alone (%ld, %ld)\n",
			      h, t);
		close(fd);
		skip();
	}
	read_evicted_once(fd, 0, 128 << 10, "first 64 KB of 128 KB cached");
	close(fd);
}

static void test_bad_fds(void **state)
{
	uint8_t buf[64];
	struct iovec v = { buf, sizeof(buf) };
	int p[2], s[2], fd;

	(void)state;
	assert_int_equal(rp_file_read_nowait(-1, &v, 1, 0), -EBADF);
	fd = disk_file();
	close(fd); /* a number no longer open */
	assert_int_equal(rp_file_read_nowait(fd, &v, 1, 0), -EBADF);

	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(rp_file_read_nowait(p[0], &v, 1, 0), -ESPIPE);
	close(p[0]);
	close(p[1]);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	assert_int_equal(write(s[1], "x", 1), 1);
	assert_int_equal(rp_file_read_nowait(s[0], &v, 1, 0), -ESPIPE);
	close(s[0]);
	close(s[1]);

	/* a directory on a disk filesystem refuses RWF_NOWAIT (EOPNOTSUPP)
	 * and is no memory: -EAGAIN, its read left to the caller's other way */
	fd = open("/var/tmp", O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	assert_int_equal(rp_file_read_nowait(fd, &v, 1, 0), -EAGAIN);
	close(fd);
	/* so does one on tmpfs: only a regular file there is read plainly */
	fd = open("/dev/shm", O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		assert_int_equal(rp_file_read_nowait(fd, &v, 1, 0), -EAGAIN);
		close(fd);
	}
	/* a device node on devtmpfs (which says tmpfs) that refuses the
	 * flag: its plain read may wait (a hardware RNG), so -EAGAIN. Read
	 * plainly, /dev/kmsg hands back its oldest record at once */
	fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	if (fd >= 0) {
		ssize_t n = rp_file_read_nowait(fd, &v, 1, 0);

		print_message("# /dev/kmsg: %zd\n", n);
		assert_true(n == -EAGAIN || n == -ESPIPE);
		close(fd);
	} else {
		print_message("# /dev/kmsg not readable here (%s): device case skipped\n",
			      strerror(errno));
	}
}

static void test_bad_args(void **state)
{
	uint8_t buf[64];
	struct iovec v[2] = { { buf, sizeof(buf) }, { buf, SIZE_MAX / 2 + 1 } };
	int fd;

	(void)state;
	fd = disk_file();
	assert_int_equal(rp_file_read_nowait(fd, v, 1, -1), -EINVAL);
	assert_int_equal(rp_file_read_nowait(fd, v, -1, 0), -EINVAL);
	assert_int_equal(rp_file_read_nowait(fd, v, 2, 0), -EINVAL); /* above SSIZE_MAX */
	assert_int_equal(rp_file_read_nowait(fd, v, 1, INT64_MAX - 10), -EINVAL);
	/* an empty range: 0, nothing read, whatever the fd */
	assert_int_equal(rp_file_read_nowait(fd, NULL, 0, 0), 0);
	v[1].iov_len = 0;
	assert_int_equal(rp_file_read_nowait(-1, v + 1, 1, 0), 0);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tmpfs_plain_read),   cmocka_unit_test(test_disk_cached),
		cmocka_unit_test(test_disk_evicted),	   cmocka_unit_test(test_disk_cached_in_part),
		cmocka_unit_test(test_bad_fds),		   cmocka_unit_test(test_bad_args),
	};

	watchdog("file-nowait", 60);
	return ENGINE_TEST_RUN("file-nowait", tests);
}
