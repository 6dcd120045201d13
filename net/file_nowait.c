/* SPDX-License-Identifier: MIT */
/*
 * rp_file_read_nowait (include/ringplane/filesend.h): a small range of a
 * file read on the calling thread only when no disk is waited for, for
 * filesend's small path and `ringplane serve`'s kept bodies.
 */
#include <errno.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <time.h>

#include <ringplane/filesend.h>

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif
#ifndef RAMFS_MAGIC
#define RAMFS_MAGIC 0x858458f6
#endif

/*
 * The filesystems that refused RWF_NOWAIT, by st_dev, with whether their
 * pages are memory (tmpfs, ramfs): one fstatfs(2) a second per device and
 * thread, not one a call. Thread-local (no lock, no atomic, no race: a
 * shard, or any thread, learns a device for itself) rather than per shard,
 * since the helper takes no shard and is called from apps' threads too.
 * An answer is trusted for DEV_TTL_NS: a device number freed by an unmount
 * can come back as another filesystem (anonymous st_dev are reused), and
 * a stale "memory" would block the thread on that one's disk.
 */
#define DEV_SLOTS 4
#define DEV_TTL_NS 1000000000ull

static _Thread_local struct {
	struct {
		dev_t dev;
		uint64_t at_ns; /* 0: slot unused */
		bool memory;
	} slot[DEV_SLOTS];
	unsigned next; /* the slot a new device takes (round robin) */
} devs;

static uint64_t coarse_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + 1; /* never 0 */
}

/* 1: @fd's filesystem (which refused RWF_NOWAIT) keeps its pages in
 * memory; 0: not (a disk or the network behind it); <0: -errno. */
static int memory_backed(int fd)
{
	uint64_t now = coarse_ns();
	struct statfs sf;
	struct stat st;
	unsigned i;

	if (fstat(fd, &st))
		return -errno;
	/* a device node on devtmpfs (reported as tmpfs) that refused the
	 * flag, a FIFO: a plain read of those may wait (a hardware RNG,
	 * /dev/kmsg), so they are never memory here */
	if (!S_ISREG(st.st_mode))
		return 0;
	for (i = 0; i < DEV_SLOTS; i++)
		if (devs.slot[i].at_ns && devs.slot[i].dev == st.st_dev &&
		    now - devs.slot[i].at_ns < DEV_TTL_NS)
			return devs.slot[i].memory;
	if (fstatfs(fd, &sf))
		return -errno;
	for (i = 0; i < DEV_SLOTS; i++) /* an expired slot of this device, else the next */
		if (devs.slot[i].at_ns && devs.slot[i].dev == st.st_dev)
			break;
	if (i == DEV_SLOTS)
		i = devs.next++ % DEV_SLOTS;
	devs.slot[i].dev = st.st_dev;
	devs.slot[i].memory = sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC;
	devs.slot[i].at_ns = now;
	return devs.slot[i].memory;
}

/* the bytes @nv iovecs at @v hold (their total was checked to fit) */
static size_t iov_left(const struct iovec *v, int nv)
{
	size_t n = 0;

	for (int i = 0; i < nv; i++)
		n += v[i].iov_len;
	return n;
}

ssize_t rp_file_read_nowait(int fd, const struct iovec *iov, int iovcnt, off_t off)
{
	size_t want = 0, got = 0, in = 0; /* in: bytes of iov[k] already read */
	int k = 0, flags = RWF_NOWAIT;

	if (off < 0 || iovcnt < 0 || iovcnt > IOV_MAX || (iovcnt && !iov))
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > (size_t)SSIZE_MAX - want)
			return -EINVAL;
		want += iov[i].iov_len;
	}
	if (want > (size_t)(INT64_MAX - off))
		return -EINVAL;
	/*
	 * Until the range is read, EOF (a read of 0) or a failure. A short
	 * RWF_NOWAIT read is either EOF or a page past it not cached: a read
	 * that stops at a page not cached stops on a page boundary, so one
	 * that ends elsewhere ended at EOF; one that ends on a 4 KB boundary
	 * (a multiple of any page size) is asked again, and the next read
	 * tells (0, or EAGAIN). A short plain read (tmpfs, ramfs) is EOF.
	 * Each round reads at least a byte or ends, so at most want + 1
	 * rounds; in practice one, or two when EOF is 4 KB aligned.
	 */
	while (got < want) {
		struct iovec one;
		const struct iovec *v;
		int nv;
		ssize_t n;

		while (k < iovcnt && in == iov[k].iov_len) {
			k++;
			in = 0;
		}
		if (in) { /* part of iov[k] read: its rest alone */
			one.iov_base = (char *)iov[k].iov_base + in;
			one.iov_len = iov[k].iov_len - in;
			v = &one;
			nv = 1;
		} else {
			v = iov + k;
			nv = iovcnt - k;
		}
		n = preadv2(fd, v, nv, off + (off_t)got, flags);
		if (n < 0) {
			int e = errno, mem;

			if (e == EINTR)
				continue;
			if (e != EOPNOTSUPP || !(flags & RWF_NOWAIT))
				return -e; /* EAGAIN: not (all) in the page cache */
			mem = memory_backed(fd);
			if (mem < 0)
				return mem;
			if (!mem)
				return -EAGAIN; /* no way to ask without waiting: elsewhere */
			flags = 0; /* tmpfs, ramfs: a plain read waits for no disk */
			continue;
		}
		if (n == 0)
			break; /* EOF */
		got += (size_t)n;
		if (got < want && (size_t)n < iov_left(v, nv) &&
		    (!(flags & RWF_NOWAIT) || ((uint64_t)off + got) % 4096))
			break; /* short: EOF (see above) */
		for (size_t left = (size_t)n; left;) { /* advance k, in past n bytes */
			size_t room = iov[k].iov_len - in;

			if (left < room) {
				in += left;
				left = 0;
			} else {
				left -= room;
				k++;
				in = 0;
			}
		}
	}
	return (ssize_t)got;
}
