/* SPDX-License-Identifier: MIT */
/*
 * net/filesend: a header and a file range sent as one operation, on a real
 * file and a real loopback TCP connection, every byte read back and
 * compared, on each path: small (cached: at once, a RWF_NOWAIT read and
 * one send, or sendfile(2) without a header, also into a full socket; not
 * cached: linked read -> send, both SQEs prepared before any enter, a
 * short read cancelling the send with no byte out), sendfile and splice
 * on the shard (a cached
 * body, a reader slower than the sender so the socket fills), splice in
 * io-wq (a body dropped from the page cache first), header only (one
 * SQE: no read), nothing
 * at all (done(0), no error counted), a body with no header while the
 * pool has no 64 B object to give; and the
 * failures: a file shorter than the range (-EIO) on every path, a range
 * past INT64_MAX (refused at once), a pipe for a file (-ESPIPE). No
 * descriptor outlives the shard (its stashed pipes close with its thread).
 * A user whose pipe budget is spent (a child, as a uid of its own) gets a
 * body that would go by splice through a short pipe sent by sendfile(2);
 * with a short pipe and a 1 MB one kept, a trim keeps the 1 MB one, and a
 * stash full of short pipes keeps a 1 MB one given back. The pipe a
 * splice kept is given back while the shard lives: by rp_file_send_trim
 * once no body took it since the last trim, and by rp_file_send_shed at
 * once.
 */
#include <dirent.h>
#include <grp.h>
#include <unistd.h>
#include <linux/magic.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <ringplane/filesend.h>

#include "child_wait.h"
#include "engine_test.h"

static struct {
	int file, a, b;
	uint64_t off, len;
	char hdr[2048];
	size_t hlen;
	size_t hdr_pad;	 /* > 0: a header of exactly this many bytes (padded) */
	bool hog_leave1; /* T.hog, with one object of the 1 KB class left for the header copy */
	int unsent;	 /* SIOCOUTQNSD of T.a at done(): bytes not yet sent */
	bool no_fds;	 /* the send asked for with every descriptor taken (EMFILE) */
	unsigned dups;	 /* no_fds: descriptors taken */
	unsigned flags;	 /* rp_file_send_opts.flags */
	bool no_hdr;	 /* send no header at all */
	bool unix_pair;	 /* an AF_UNIX socketpair rather than TCP */
	bool shm;	 /* the file on tmpfs (/dev/shm) rather than /tmp */
	size_t small_max; /* rp_file_send_opts.small_max */
	long cached_before; /* evicted files: pages cached when the send was asked for */
	bool hog;	    /* the pool's 1..32 KB classes spent when the send is asked for */
	bool hog64;	    /* the 64 B class spent and no free span, until done() */
	unsigned hogged;    /* objects that took */
	size_t free64;	    /* hog64: rp_pool_class_free(64 B) when the send was asked for */
	uint64_t small_nomem; /* rp_file_send_small_nomem at done() */
	uint64_t to_iowq;     /* rp_file_send_to_iowq at done() */
	uint64_t small_sendfile; /* rp_file_send_small_sendfile at done() */
	size_t cache_head;    /* evicted files: these first bytes read back into the cache */
	long head_cached, tail_cached; /* pages of the head and of the rest cached then */
	atomic_int done;
	int64_t res;
	struct rp_file_send_stats st;
	/* the shard's counters just before and just after rp_file_send
	 * returned: the SQEs it prepared (ops_submitted) and the enters and
	 * flushes it made (submits, sq_full) */
	struct rp_shard_stats eng0, eng1;
	size_t got; /* bytes the reader read, whatever the result */
} T;

static void hog64_release(struct rp_shard *sh);

static void on_done(struct rp_shard *sh, void *arg, int64_t res)
{
	(void)arg;
	if (T.hog64)
		hog64_release(sh);
	T.res = res;
	rp_file_send_stats(sh, &T.st);
	T.small_nomem = rp_file_send_small_nomem(sh);
	if (ioctl(T.a, SIOCOUTQNSD, &T.unsent))
		T.unsent = -1;
	T.to_iowq = rp_file_send_to_iowq(sh);
	T.small_sendfile = rp_file_send_small_sendfile(sh);
	atomic_store(&T.done, 1);
}

/* T.hog: the pool objects holding every 1..32 KB object the pool can give */
#define HOG_MAX 40000 /* a 32 MB pool holds at most 32768 objects of 1 KB */
static void *hog[HOG_MAX];

/*
 * T.hog64: no 64 B object to be had (its class's spans full, no span
 * free) while the classes of 128 B .. 4 KB keep 8 objects each (the call's
 * state, the engine's ops and messages): what a shard whose pool filled
 * looks like to a body sent behind heads its caller wrote itself. Held
 * until done(), so the body's whole life runs in it.
 */
#define HOG64_MAX 65536 /* the rest of the spans already cut: at most 2 x 16383 objects */
static void *hog64[HOG64_MAX];
static unsigned nhog64;

static void hog64_take(struct rp_pool *pool)
{
	void *keep[6][8];

	nhog64 = 0; /* a failed case's pool went with its runtime */
	for (unsigned c = 0; c < 6; c++)
		for (unsigned i = 0; i < 8; i++)
			keep[c][i] = rp_pool_alloc(pool, 128u << c);
	for (size_t sz = 1u << 20; sz >= 64; sz /= 2)
		while (nhog64 < HOG64_MAX && (hog64[nhog64] = rp_pool_alloc(pool, sz)))
			nhog64++;
	for (unsigned c = 0; c < 6; c++)
		for (unsigned i = 0; i < 8; i++)
			rp_pool_free(keep[c][i]);
	T.hogged = nhog64;
	T.free64 = rp_pool_class_free(pool, 64, 1);
}

static void hog64_release(struct rp_shard *sh)
{
	(void)sh;
	while (nhog64)
		rp_pool_free(hog64[--nhog64]);
}

/* T.no_fds: the soft descriptor limit lowered to at most 4096 and every
 * descriptor under it taken (dup), so the next pipe2(2) fails EMFILE;
 * given back, and the limit restored, right after the call. */
enum { DUPS_MAX = 4096 };
static int dups[DUPS_MAX];
static struct rlimit nofile;

static void fds_take(void)
{
	struct rlimit lim;
	int fd;

	CHECK_EQ(getrlimit(RLIMIT_NOFILE, &nofile), 0);
	lim = nofile;
	if (lim.rlim_cur > DUPS_MAX)
		lim.rlim_cur = DUPS_MAX;
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &lim), 0);
	T.dups = 0;
	while (T.dups < DUPS_MAX && (fd = dup(T.a)) >= 0)
		dups[T.dups++] = fd;
	CHECK_EQ(errno, EMFILE);
}

static void fds_give_back(void)
{
	for (unsigned i = 0; i < T.dups; i++)
		close(dups[i]);
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &nofile), 0);
}

static void send_msg(struct rp_shard *sh, void *arg)
{
	struct iovec iov = { T.hdr, T.hlen };
	struct rp_file_send_opts o = { .flags = T.flags, .small_max = T.small_max };
	struct rp_pool *pool = rp_shard_pool(sh);
	void *small[4] = { 0 }, *one = NULL;
	unsigned n = 0;
	int ret;

	(void)arg;
	if (T.hog) {
		/* the classes of the call's state and header copy get a span of
		 * their own first (held), then the larger classes are taken,
		 * largest first, until the pool has no span left */
		for (unsigned i = 0; i < 4; i++)
			small[i] = rp_pool_alloc(pool, 64u << i);
		if (T.hog_leave1)
			one = rp_pool_alloc(pool, 1024);
		for (size_t sz = 32768; sz >= 1024; sz /= 2)
			while (n < HOG_MAX && (hog[n] = rp_pool_alloc(pool, sz)))
				n++;
		T.hogged = n;
		/* the 1 KB class's span, cut before the rest was taken, gets
		 * one object back: the header copy's, the last of its class */
		rp_pool_free(one);
	}
	if (T.hog64)
		hog64_take(pool);
	if (T.no_fds)
		fds_take();
	rp_shard_stats(sh, &T.eng0);
	ret = rp_file_send(sh, T.a, &iov, T.hlen ? 1 : 0, T.file, T.off, T.len, &o, on_done, NULL);
	rp_shard_stats(sh, &T.eng1);
	if (ret && T.hog64) {
		/* refused: no done() to come; the case fails on its result */
		on_done(sh, NULL, ret);
		shutdown(T.a, SHUT_RDWR); /* and its reader sees the end */
	}
	if (T.no_fds)
		fds_give_back();
	CHECK_EQ(ret, 0);
	while (n)
		rp_pool_free(hog[--n]);
	for (unsigned i = 0; i < 4; i++)
		rp_pool_free(small[i]);
}

struct reader {
	int fd;
	uint8_t *buf;
	size_t cap, got;
	unsigned delay_us; /* between reads: a slow peer */
	bool reset_after; /* reset once this many bytes came */
	size_t reset_at;
};

static void *reader_main(void *p)
{
	struct reader *r = p;
	double end = now_s() + WAIT_S;

	while (r->got < r->cap && now_s() < end) {
		ssize_t n = read(r->fd, r->buf + r->got, r->cap - r->got < 65536 ? r->cap - r->got :
										   65536);

		if (n <= 0)
			break;
		r->got += (size_t)n;
		if (r->reset_after && r->got >= r->reset_at) {
			close_reset(r->fd);
			r->fd = -1;
			break;
		}
		if (r->delay_us)
			usleep(r->delay_us);
	}
	return NULL;
}

/* Pages of the file in the page cache (cachestat(2), which reads nothing
 * in), or -1 where the kernel lacks it. */
static long cached_pages(int fd)
{
	return cachestat_pages(fd, 0, 0);
}

/* Pages of [off, off + len) in the page cache: cachestat(2), or mincore(2)
 * on a mapping where the kernel lacks it (neither reads a page in); -1
 * when neither can tell. */
static long cached_range(int fd, uint64_t off, uint64_t len)
{
	long page = sysconf(_SC_PAGESIZE), n = 0;
	uint64_t first = off / (uint64_t)page * (uint64_t)page;
	size_t pages = (size_t)((off + len - first + (uint64_t)page - 1) / (uint64_t)page);
	unsigned char *vec;
	void *map;

	n = cachestat_pages(fd, off, len);
	if (n >= 0)
		return n;
	n = 0;
	map = mmap(NULL, pages * (size_t)page, PROT_READ, MAP_SHARED, fd, (off_t)first);
	if (map == MAP_FAILED)
		return -1;
	vec = malloc(pages);
	assert_non_null(vec);
	if (mincore(map, pages * (size_t)page, vec))
		n = -1;
	for (size_t i = 0; n >= 0 && i < pages; i++)
		n += vec[i] & 1;
	free(vec);
	munmap(map, pages * (size_t)page);
	return n;
}

/* The first T.cache_head bytes of the evicted file read back in through a
 * description of its own with readahead off (POSIX_FADV_RANDOM: only what
 * is asked is read, with no readahead mark to pull more in later), so the
 * rest stays on disk; what the cache then holds in T.head_cached and
 * T.tail_cached. */
static void cache_head(size_t size)
{
	char path[64], *buf = malloc(65536);
	int fd;

	assert_non_null(buf);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", T.file);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM), 0);
	for (size_t at = 0; at < T.cache_head; at += 65536)
		assert_int_equal(pread(fd, buf, 65536, (off_t)at), 65536);
	close(fd);
	free(buf);
	T.head_cached = cached_range(T.file, 0, T.cache_head);
	T.tail_cached = cached_range(T.file, T.cache_head, size - T.cache_head);
}

static void make_file(size_t size, bool evict)
{
	uint8_t *data = malloc(size ? size : 1);

	assert_non_null(data);
	fill_pattern(data, size, 7);
	T.file = T.shm ? tmp_file_in("/dev/shm") : tmp_file();
	assert_true(T.file >= 0);
	assert_int_equal(pwrite(T.file, data, size, 0), (ssize_t)size);
	free(data);
	if (evict) {
		/* written back, then dropped: the next read must come from disk
		 * (a loaded host sometimes keeps a page the first time: again) */
		long left = 0;

		for (int i = 0; i < 20; i++) {
			assert_int_equal(fsync(T.file), 0);
			posix_fadvise(T.file, 0, 0, POSIX_FADV_DONTNEED);
			left = cached_pages(T.file);
			if (left <= 0)
				break;
			usleep(10000);
		}
		if (left > 0)
			print_message("# the page cache kept %ld pages of the evicted file\n", left);
	}
	if (evict && T.cache_head) {
		long want = (long)(T.cache_head / (size_t)sysconf(_SC_PAGESIZE));

		/* a page kept or read ahead past the head: dropped and read again */
		for (int i = 0; i < 5; i++) {
			cache_head(size);
			if (T.head_cached == want && T.tail_cached == 0)
				break;
			assert_int_equal(fsync(T.file), 0);
			posix_fadvise(T.file, 0, 0, POSIX_FADV_DONTNEED);
			usleep(10000);
		}
		print_message("# cached: %ld of %ld pages of the first %zu B, %ld past them\n",
			      T.head_cached, want, T.cache_head, T.tail_cached);
	}
}

/* A cached file of @size bytes, a TCP pair with T.a non-blocking and a
 * one-shard runtime (@pool_bytes: its pool, 0 for base_cfg's). */
static struct rp_runtime *pair_start(size_t size, size_t pool_bytes)
{
	struct rp_runtime_config cfg = base_cfg(1);

	make_file(size, false);
	tcp_pair(&T.a, &T.b);
	assert_int_equal(fcntl(T.a, F_SETFL, O_NONBLOCK), 0);
	if (pool_bytes)
		cfg.pool_bytes = pool_bytes;
	return rt_start(&cfg);
}

static unsigned open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Send [off, off+len) of a file of @size behind a header; check every byte. */
static void run(size_t size, uint64_t off, uint64_t len, bool evict, unsigned delay_us,
		int64_t err, int path)
{
	int64_t want_res;
	struct rp_runtime_config cfg = base_cfg(1);
	struct rp_runtime *rt;
	struct reader rd = { 0 };
	pthread_t th;
	size_t expect;
	unsigned fds0;

	T.res = 0;
	atomic_store(&T.done, 0);
	memset(&T.st, 0, sizeof(T.st));
	make_file(size, evict);
	if (T.cache_head && (T.head_cached != (long)(T.cache_head / (size_t)sysconf(_SC_PAGESIZE)) ||
			     T.tail_cached != 0)) {
		print_message("# SKIP: the page cache would not hold the first %zu B alone\n",
			      T.cache_head);
		close(T.file);
		skip();
	}
	if (T.no_fds && cached_pages(T.file) != 0) {
		print_message("# SKIP: the page cache kept pages of the evicted file\n");
		close(T.file);
		skip();
	}
	if (T.unix_pair) {
		int sv[2];

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		T.a = sv[0];
		T.b = sv[1];
	} else {
		tcp_pair(&T.a, &T.b);
	}
	fds0 = open_fds();
	assert_int_equal(fcntl(T.a, F_SETFL, O_NONBLOCK), 0);
	if (delay_us) {
		/* small socket buffers: a slow reader must make the send wait */
		sock_bufs(T.a, T.b, 65536);
	}
	T.off = off;
	T.len = len;
	T.hlen = T.no_hdr ? 0 :
		 (size_t)snprintf(T.hdr, sizeof(T.hdr), "HTTP/1.1 200 OK\r\nContent-Length: %llu\r\n\r\n",
				  (unsigned long long)len);
	if (T.hdr_pad) {
		/* "HTTP/1.1 200 OK\r\nX-Pad: aaa...\r\n\r\n", T.hdr_pad bytes */
		int at = snprintf(T.hdr, sizeof(T.hdr), "HTTP/1.1 200 OK\r\nX-Pad: ");

		assert_true(T.hdr_pad <= sizeof(T.hdr) && T.hdr_pad >= (size_t)at + 4);
		memset(T.hdr + at, 'a', T.hdr_pad - (size_t)at - 4);
		memcpy(T.hdr + T.hdr_pad - 4, "\r\n\r\n", 4);
		T.hlen = T.hdr_pad;
	}
	want_res = err ? err : (int64_t)(T.hlen + len);
	expect = want_res >= 0 ? (size_t)want_res : 0;
	rd.fd = T.b;
	rd.cap = T.hlen + len;
	rd.buf = malloc(rd.cap);
	rd.delay_us = delay_us;
	assert_non_null(rd.buf);
	assert_int_equal(pthread_create(&th, NULL, reader_main, &rd), 0);
	cfg.pool_bytes = (size_t)32 << 20;
	rt = rt_start(&cfg);
	T.cached_before = evict ? cached_pages(T.file) : -1;
	assert_int_equal(rp_runtime_submit(rt, 0, send_msg, NULL), 0);
	assert_true(wait_for(&T.done, 1, WAIT_S));
	if (want_res < 0)
		shutdown(T.a, SHUT_RDWR); /* let the reader see the end */
	pthread_join(th, NULL);
	rt_end(rt);
	T.got = rd.got;
	print_message("# %zu B file, [%llu, +%llu)%s: res %lld, paths small/sendfile/splice "
		      "%llu/%llu/%llu, at once %llu, shard splice %llu, waits %llu, not cached %llu, "
		      "pipe short %llu, to io-wq %llu\n",
		      size, (unsigned long long)off, (unsigned long long)len,
		      T.hlen ? "" : " no header", (long long)T.res,
		      (unsigned long long)T.st.calls[0], (unsigned long long)T.st.calls[1],
		      (unsigned long long)T.st.calls[2], (unsigned long long)T.st.small_direct,
		      (unsigned long long)T.st.shard_splice, (unsigned long long)T.st.waits,
		      (unsigned long long)T.st.not_cached, (unsigned long long)T.st.pipe_short,
		      (unsigned long long)T.to_iowq);
	assert_int_equal(T.res, want_res);
	if (want_res >= 0) {
		uint8_t *body;

		assert_int_equal(rd.got, expect);
		assert_memory_equal(rd.buf, T.hdr, T.hlen);
		body = malloc(len ? len : 1);
		fill_pattern(body, len, 7 + off);
		assert_memory_equal(rd.buf + T.hlen, body, len);
		free(body);
		if (path >= 0)
			assert_int_equal(T.st.calls[path], 1);
	}
	/* the shard's thread is gone: every pipe it kept went with it */
	assert_int_equal(open_fds(), fds0);
	free(rd.buf);
	close(T.a);
	close(T.b);
	close(T.file);
}

static int zero_T(void **state)
{
	(void)state;
	memset(&T, 0, sizeof(T));
	return 0;
}

static void test_small_path(void **state)
{
	(void)state;
	run(10000, 100, 5000, false, 0, 0, 0);
	/* cached: read (RWF_NOWAIT) and sent at once, no ring round trip */
	assert_int_equal(T.st.small_direct, 1);
	assert_int_equal(T.small_sendfile, 0); /* copied, not by sendfile(2) */
}

/* From tmpfs, which refuses RWF_NOWAIT: read plainly (its pages are
 * memory) and sent at once too; before rp_file_read_nowait it took the
 * ring's read -> send (small_direct 0) */
static void test_small_path_tmpfs(void **state)
{
	struct statfs sf;

	(void)state;
	if (statfs("/dev/shm", &sf) || sf.f_type != TMPFS_MAGIC) {
		print_message("# SKIP: /dev/shm is not tmpfs here\n");
		skip();
	}
	T.shm = true;
	run(10000, 100, 5000, false, 0, 0, 0);
	assert_int_equal(T.st.small_direct, 1);
	assert_int_equal(T.small_sendfile, 0);
}

static void test_small_path_whole_16k(void **state)
{
	(void)state;
	run(16384, 0, 16384, false, 0, 0, 0);
	assert_int_equal(T.st.small_direct, 1);
}

static void test_small_no_header_by_sendfile(void **state)
{
	(void)state;
	T.no_hdr = true;
	run(10000, 100, 5000, false, 0, 0, 0);
	assert_int_equal(T.st.small_direct, 1);
	assert_int_equal(T.small_sendfile, 5000); /* its bytes, counted at the call */
	assert_int_equal(T.st.body_bytes[0], 5000);
	/* with RP_FILE_SEND_MORE: read (RWF_NOWAIT) and sent, not sendfile(2)
	 * (it takes no MSG_MORE): small_direct, and not small_sendfile */
	T.flags = RP_FILE_SEND_MORE;
	run(10000, 100, 5000, false, 0, 0, 0);
	assert_int_equal(T.st.small_direct, 1);
	assert_int_equal(T.small_sendfile, 0);
	/* with RP_FILE_SEND_COPY_SMALL alone: copied the same way, and its
	 * end not corked (no MSG_MORE): nothing unsent at done() */
	T.flags = RP_FILE_SEND_COPY_SMALL;
	run(10000, 100, 5000, false, 0, 0, 0);
	assert_int_equal(T.st.small_direct, 1);
	assert_int_equal(T.small_sendfile, 0);
	assert_int_equal(T.unsent, 0);
}

static void test_small_not_cached_by_ring(void **state)
{
	(void)state;
	/* dropped from the page cache: the ring's linked read -> send. Not
	 * asserted: a RWF_NOWAIT read that misses starts readahead, and this
	 * VM's disk can finish it before the read looks again (the read then
	 * succeeds without having waited), so either path may run; the bytes
	 * are checked either way */
	for (int k = 0; k < 2; k++) {
		T.no_hdr = k == 1;
		run(10000, 100, 5000, true, 0, 0, 0);
		print_message("# evicted (%ld pages cached before the send): %s\n",
			      T.cached_before, T.st.small_direct ? "sent at once" : "read by the ring");
	}
}

static void test_small_full_socket(void **state)
{
	(void)state;
	/* a "small" body of 512 KB into 64 KB socket buffers and a slow
	 * reader: the send at once is short, the rest waits for room (the
	 * ring's send after the header's one send; POLLOUT after sendfile) */
	T.small_max = 512u << 10;
	run(600000, 1000, 512u << 10, false, 2000, 0, 0);
	assert_int_equal(T.st.small_direct, 1);
	T.no_hdr = true;
	run(600000, 1000, 512u << 10, false, 2000, 0, 0);
	assert_int_equal(T.st.small_direct, 1);
	assert_true(T.st.waits >= 1);
}

/*
 * With no pool buffer of header + body to be had (the 1..32 KB classes
 * spent), a small body goes the large body's way (header by a send, body
 * by sendfile(2) from the page cache), whole, counted in small_nomem and
 * in calls[1]. rp_file_send returned -ENOMEM before (done() never ran).
 * Bodies of 1 KB (head + body in the 2 KB class), 10,000 B and 16 KB.
 */
static void test_small_no_pool_buffer_by_sendfile(void **state)
{
	static const uint64_t len[3][2] = { { 10000, 0 }, { 1024, 0 }, { 16384, 0 } };

	(void)state;
	for (int k = 0; k < 3; k++) {
		memset(&T, 0, sizeof(T));
		T.hog = true;
		run((size_t)len[k][0] + 100, 100, len[k][0], false, 0, 0, 1);
		print_message("# %llu B body, %u pool objects held: small_nomem %llu\n",
			      (unsigned long long)len[k][0], T.hogged,
			      (unsigned long long)T.small_nomem);
		assert_true(T.hogged > 0 && T.hogged < HOG_MAX);
		assert_int_equal(T.small_nomem, 1);
		assert_int_equal(T.st.calls[0], 0);
		assert_int_equal(T.st.body_bytes[1], len[k][0]);
		assert_int_equal(T.st.errors, 0);
	}
}

/*
 * A body with no header (serve's pipelined answers: the heads went first,
 * by the caller) while the 64 B class has no object and no span is free:
 * sent whole, small (cached: sendfile at once) and large (sendfile). The
 * call took a 1-byte header copy for nothing and failed -ENOMEM before
 * (done() never ran).
 */
static void test_no_header_no_64b_object(void **state)
{
	static const uint64_t len[2] = { 5000, 200000 };

	(void)state;
	for (int k = 0; k < 2; k++) {
		memset(&T, 0, sizeof(T));
		T.no_hdr = true;
		T.hog64 = true;
		run((size_t)len[k] + 100, 100, len[k], false, 0, 0, k ? 1 : 0);
		print_message("# %llu B body, no header, %u pool objects held, 64 B objects free %zu\n",
			      (unsigned long long)len[k], T.hogged, T.free64);
		assert_true(T.hogged > 0 && T.hogged < HOG64_MAX);
		assert_int_equal(T.free64, 0);
		assert_int_equal(T.st.errors, 0);
	}
}

static void test_header_only(void **state)
{
	(void)state;
	run(100, 0, 0, false, 0, 0, 0);
}

/*
 * The call prepared @sqes SQEs and entered no ring (no submit, no flush
 * for room) before it returned: whatever it prepared goes to the kernel
 * in the loop's next enter, together.
 */
static void sqes_prepared(uint64_t sqes)
{
	print_message("# SQEs prepared by the call %llu, enters %llu, flushes %llu\n",
		      (unsigned long long)(T.eng1.ops_submitted - T.eng0.ops_submitted),
		      (unsigned long long)(T.eng1.submits - T.eng0.submits),
		      (unsigned long long)(T.eng1.sq_full - T.eng0.sq_full));
	assert_int_equal(T.eng1.ops_submitted - T.eng0.ops_submitted, sqes);
	assert_int_equal(T.eng1.submits, T.eng0.submits);
	assert_int_equal(T.eng1.sq_full, T.eng0.sq_full);
}

/*
 * The small path's ring read -> send (small_start) is one submit of two
 * linked SQEs. A file of 1000 B asked for [0, 4000) behind a header, and
 * one of 2000 B asked for [500, +3000) behind a 1000 B one: the RWF_NOWAIT
 * read at once comes back short, so the ring reads (small_direct 0). rp_file_send prepares the read's SQE and the
 * send's and enters no ring between them (one submit), and the read's
 * short result cancels the send (linked): -EIO, and not one byte reaches
 * the peer, the header included (header and body are one buffer, one
 * send). Unlinked, the send went out with the header and 3000 B of
 * stale buffer; sent from the read's completion, the call prepared one
 * SQE.
 */
static void test_small_ring_linked_one_submit(void **state)
{
	(void)state;
	for (int k = 0; k < 2; k++) {
		memset(&T, 0, sizeof(T));
		T.hdr_pad = k ? 1000 : 0;
		if (k)
			run(2000, 500, 3000, false, 0, -EIO, 0);
		else
			run(1000, 0, 4000, false, 0, -EIO, 0);
		assert_int_equal(T.st.calls[0], 1);
		assert_int_equal(T.st.small_direct, 0);
		sqes_prepared(2);
		assert_int_equal(T.got, 0);
		assert_int_equal(T.st.body_bytes[0] + T.st.hdr_bytes, 0);
		assert_int_equal(T.st.short_file, 1);
	}
	/*
	 * A whole body the ring reads: 60,000 B of an evicted file (small_max
	 * 64 KB), every byte checked by run(). A miss may still be read by
	 * readahead before the RWF_NOWAIT read looks again (see
	 * test_small_not_cached_by_ring): tried up to 5 times.
	 */
	for (int k = 0; k < 5; k++) {
		memset(&T, 0, sizeof(T));
		T.small_max = 64u << 10;
		run(100000, 100, 60000, true, 0, 0, 0);
		if (T.st.small_direct)
			continue;
		sqes_prepared(2);
		assert_int_equal(T.got, T.hlen + 60000);
		return;
	}
	print_message("# SKIP: the evicted body was sent at once each time\n");
	skip();
}

/*
 * An empty range takes no read: a header alone is one SQE, its send; no
 * header is none (the end goes by a message to the shard itself).
 */
static void test_empty_range_no_read(void **state)
{
	(void)state;
	run(100, 50, 0, false, 0, 0, 0);
	sqes_prepared(1);
	assert_int_equal(T.got, T.hlen);
	assert_int_equal(T.st.hdr_bytes, T.hlen);
	memset(&T, 0, sizeof(T));
	T.no_hdr = true;
	run(100, 50, 0, false, 0, 0, 0);
	sqes_prepared(0);
	assert_int_equal(T.got, 0);
}

/*
 * A header with an empty range whose copy took the last object of its
 * pool class (1 KB: the 1..32 KB classes spent, one object given back)
 * has no small-path buffer: it goes alone by a send (small_nomem). With
 * nothing behind it, it must leave at once: no byte of it unsent at
 * done() (SIOCOUTQNSD). It was sent with MSG_MORE and stayed corked until
 * TCP's 200 ms timer (the whole header unsent at done()). With
 * RP_FILE_SEND_MORE (a response follows) it stays corked: the control
 * that shows the check sees a corked send.
 */
static void test_header_only_no_pool_buffer_not_corked(void **state)
{
	(void)state;
	for (int k = 0; k < 2; k++) {
		memset(&T, 0, sizeof(T));
		T.hog = true;
		T.hog_leave1 = true;
		T.hdr_pad = 1000;
		T.flags = k ? RP_FILE_SEND_MORE : 0;
		run(100, 0, 0, false, 0, 0, 1);
		print_message("# %zu B header alone%s, %u pool objects held: small_nomem %llu, "
			      "unsent at done() %d\n",
			      T.hlen, k ? " (RP_FILE_SEND_MORE)" : "", T.hogged,
			      (unsigned long long)T.small_nomem, T.unsent);
		assert_true(T.hogged > 0 && T.hogged < HOG_MAX);
		assert_int_equal(T.small_nomem, 1);
		assert_int_equal(T.st.hdr_bytes, T.hlen);
		assert_int_equal(T.unsent, k ? (int)T.hlen : 0);
	}
}

/*
 * Nothing asked (no header, an empty range: length 0, or an offset at the
 * file's end) to a live reader, over TCP and AF_UNIX: done(0), nothing
 * sent, no error counted. It was done(-EPIPE), counted in errors: the
 * empty send's 0 read as the peer gone.
 */
static void test_empty_no_header(void **state)
{
	(void)state;
	T.no_hdr = true;
	for (int k = 0; k < 4; k++) {
		T.unix_pair = k >= 2;
		run(100, k % 2 ? 100 : 0, 0, false, 0, 0, 0);
		assert_int_equal(T.st.errors, 0);
		assert_int_equal(T.st.hdr_bytes + T.st.body_bytes[0], 0);
	}
}

#ifdef RP_FAULTS
static void noop_msg(struct rp_shard *sh, void *arg)
{
	(void)sh;
	(void)arg;
}

static struct {
	atomic_int asked;
	int full;	/* the last post's return: the mailbox full */
	int empty, sent; /* rp_file_send's returns */
	unsigned posted;
} N;

/* On the shard, under nomem=1 (no op to be had): its own mailbox filled
 * (no message either), then an empty request and a small cached body sent
 * whole at once: nothing left to carry their ends to the loop. */
static void no_end_msg(struct rp_shard *sh, void *arg)
{
	(void)arg;
	for (unsigned i = 0; i < (1u << 20); i++) {
		N.full = rp_shard_post(sh, rp_shard_id(sh), noop_msg, NULL);
		if (N.full)
			break;
		N.posted++;
	}
	N.empty = rp_file_send(sh, T.a, NULL, 0, -1, 0, 0, NULL, on_done, NULL);
	N.sent = rp_file_send(sh, T.a, NULL, 0, T.file, 0, 4096, NULL, on_done, NULL);
	atomic_store(&N.asked, 1);
}
#endif

/*
 * A body that ends within rp_file_send (an empty one; one sent whole at
 * once) with neither a message nor an op to carry its end to the loop
 * (RP_FAULTS nomem=1 and the shard's own mailbox full): -ENOMEM and done()
 * never runs. It ran done() inside the call and returned 0, against
 * filesend.h. Faults build only: elsewhere no op alloc can be made to fail.
 */
static void test_end_without_op_is_enomem(void **state)
{
#ifdef RP_FAULTS
	struct rp_runtime_config cfg = base_cfg(1);
	const char *was = getenv("RP_FAULTS");
	char *saved = was ? strdup(was) : NULL;
	struct rp_runtime *rt;
	uint8_t got[4096], want[4096];
	size_t n = 0;
	double end;

	(void)state;
	make_file(4096, false);
	tcp_pair(&T.a, &T.b);
	assert_int_equal(setenv("RP_FAULTS", "nomem=1", 1), 0);
	rt = rt_start(&cfg);
	if (saved)
		setenv("RP_FAULTS", saved, 1);
	else
		unsetenv("RP_FAULTS");
	free(saved);
	memset(&N, 0, sizeof(N));
	assert_int_equal(rp_runtime_submit(rt, 0, no_end_msg, NULL), 0);
	assert_true(wait_for(&N.asked, 1, WAIT_S));
	print_message("# posted %u to fill the mailbox (then %d); empty %d, sent %d\n", N.posted,
		      N.full, N.empty, N.sent);
	assert_true(N.full == -EAGAIN || N.full == -ENOMEM);
	assert_int_equal(N.empty, -ENOMEM);
	assert_int_equal(N.sent, -ENOMEM);
	/* the body went out all the same */
	fill_pattern(want, sizeof(want), 7);
	end = now_s() + WAIT_S;
	while (n < sizeof(got) && now_s() < end) {
		ssize_t r = recv(T.b, got + n, sizeof(got) - n, MSG_DONTWAIT);

		if (r > 0)
			n += (size_t)r;
		else
			usleep(1000);
	}
	assert_int_equal(n, sizeof(got));
	assert_memory_equal(got, want, sizeof(got));
	usleep(100000); /* the loop's rounds after: still no done() */
	rt_end(rt);
	assert_int_equal(atomic_load(&T.done), 0);
	close(T.a);
	close(T.b);
	close(T.file);
#else
	(void)state;
	print_message("# SKIP: needs the faults build (RP_FAULTS nomem)\n");
	skip();
#endif
}

/* bad_range_msg's returns: ranges past the kernel's signed offsets */
static int range_ret[5];
static atomic_int range_asked;

static void bad_range_msg(struct rp_shard *sh, void *arg)
{
	/* a flag bit the library does not know: refused, not ignored */
	const struct rp_file_send_opts unknown = { .flags = RP_FILE_SEND_COPY_SMALL << 1 };
	static const uint64_t r[4][2] = {
		{ (uint64_t)INT64_MAX + 1, 10 }, /* started, then done(-EINVAL), before */
		{ UINT64_MAX, 1 },
		{ INT64_MAX, 2 },
		{ 0, UINT64_MAX },
	};

	(void)arg;
	for (int i = 0; i < 4; i++)
		range_ret[i] = rp_file_send(sh, T.a, NULL, 0, T.file, r[i][0], r[i][1], NULL,
					    on_done, NULL);
	range_ret[4] = rp_file_send(sh, T.a, NULL, 0, T.file, 0, 10, &unknown, on_done, NULL);
	atomic_store(&range_asked, 1);
}

/*
 * A range that does not fit a signed file offset, or a flag bit the
 * library does not know, is refused at once with -EINVAL and done()
 * never runs: an offset of 2^63 started and ended
 * done(-EINVAL) before. Then a body above small_max from a pipe (not a
 * regular file) ends done(-ESPIPE), counted in errors, nothing sent.
 */
static void test_bad_range_and_pipe(void **state)
{
	struct rp_runtime *rt;
	int p[2];
	uint8_t b;

	(void)state;
	rt = pair_start(100, 0);
	assert_int_equal(rp_runtime_submit(rt, 0, bad_range_msg, NULL), 0);
	assert_true(wait_for(&range_asked, 1, WAIT_S));
	for (int i = 0; i < 5; i++)
		assert_int_equal(range_ret[i], -EINVAL);
	/* a done() would run in the loop's next rounds */
	usleep(100 * 1000);
	assert_int_equal(atomic_load(&T.done), 0);

	close(T.file);
	assert_int_equal(pipe(p), 0);
	T.file = p[0];
	T.no_hdr = true;
	T.len = 1u << 20;
	assert_int_equal(rp_runtime_submit(rt, 0, send_msg, NULL), 0);
	assert_true(wait_for(&T.done, 1, WAIT_S));
	rt_end(rt);
	assert_int_equal(T.res, -ESPIPE);
	assert_int_equal(T.st.errors, 1);
	assert_int_equal(recv(T.b, &b, 1, MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	close(p[0]);
	close(p[1]);
	close(T.a);
	close(T.b);
}

static void test_sendfile_path(void **state)
{
	(void)state;
	/* by default a cached body goes by sendfile(2), one above 256 KB up
	 * to 1 MB by splice(2) on the shard */
	run(8u << 20, 12345, (8u << 20) - 12345, false, 0, 0, 1);
	assert_int_equal(T.st.shard_splice, 0);
	run(2u << 20, 4096, 1u << 20, false, 0, 0, 1);
	assert_int_equal(T.st.shard_splice, 1);
	run(2u << 20, 4096, (1u << 20) + 1, false, 0, 0, 1);
	assert_int_equal(T.st.shard_splice, 0);
	run(2u << 20, 4096, (256u << 10) + 1, false, 0, 0, 1);
	assert_int_equal(T.st.shard_splice, 1);
	run(2u << 20, 4096, 256u << 10, false, 0, 0, 1);
	assert_int_equal(T.st.shard_splice, 0);
	run(1u << 20, 100, 64u << 10, false, 0, 0, 1);
	assert_int_equal(T.st.shard_splice, 0);
}

static void test_sendfile_slow_reader(void **state)
{
	(void)state;
	T.flags = RP_FILE_SEND_CACHED_SENDFILE;
	run(4u << 20, 0, 4u << 20, false, 2000, 0, 1);
	assert_true(T.st.waits >= 1);
	assert_int_equal(T.st.shard_splice, 0);
}

static void test_cached_by_splice_on_the_shard(void **state)
{
	(void)state;
	T.flags = RP_FILE_SEND_CACHED_SPLICE;
	run(8u << 20, 12345, (8u << 20) - 12345, false, 0, 0, 1);
	assert_int_equal(T.st.shard_splice, 1);
	assert_int_equal(T.st.body_bytes[1], (8u << 20) - 12345);
	/* a slow reader: the pipe holds what the socket did not take */
	run(4u << 20, 0, 4u << 20, false, 2000, 0, 1);
	assert_int_equal(T.st.shard_splice, 1);
	assert_true(T.st.waits >= 1);
}

static void test_splice_path_not_cached(void **state)
{
	(void)state;
	run(6u << 20, 4096, 5u << 20, true, 0, 0, 2);
	if (!T.st.not_cached)
		fail_msg("the evicted file was taken as cached");
}

/*
 * An 8 MB body of a file of which only the first 2 MB are in the page
 * cache (written, written back, dropped, the first 2 MB read back): the
 * first chunk's check finds it cached, so the shard reads it itself, by
 * sendfile(2) and, forced, by splice(2); the piece at 2 MB is not in the
 * cache, and the rest goes by IORING_OP_SPLICE in io-wq: to_iowq 1, the
 * 6 MB past the head in body_bytes[2], no more than the head read by the
 * shard, every byte as in the file. Before, the shard's sendfile(2) read
 * those 6 MB from the disk itself (body_bytes[1] 8 MB, to_iowq 0). The
 * head dropped again before the send (not_cached: a host short of memory)
 * is retried, and skipped after three tries.
 */
static void test_cached_head_rest_from_iowq(void **state)
{
	static const unsigned flags[2] = { 0, RP_FILE_SEND_CACHED_SPLICE };

	(void)state;
	for (int k = 0; k < 2; k++) {
		int tries = 0;

		do {
			memset(&T, 0, sizeof(T));
			T.flags = flags[k];
			T.cache_head = 2u << 20;
			run(8u << 20, 0, 8u << 20, true, 0, 0, -1);
		} while (T.st.not_cached && ++tries < 3);
		if (T.st.not_cached) {
			print_message("# SKIP: the cached head left the cache before each send\n");
			skip();
		}
		assert_int_equal(T.st.calls[1], 1);
		assert_int_equal(T.st.shard_splice, (uint64_t)k);
		assert_int_equal(T.to_iowq, 1);
		assert_true(T.st.body_bytes[1] <= 2u << 20);
		assert_true(T.st.body_bytes[2] >= 6u << 20);
		assert_int_equal(T.st.body_bytes[1] + T.st.body_bytes[2], 8u << 20);
		assert_int_equal(T.st.errors, 0);
	}
}

/*
 * A body not in the page cache with no pipe to be had (every descriptor
 * taken: pipe2 fails EMFILE): done(-EMFILE), counted in errors, nothing
 * sent, not even the header. It went by sendfile(2) from the disk on the
 * shard before.
 */
static void test_not_cached_no_pipe_is_emfile(void **state)
{
	(void)state;
	T.no_fds = true;
	run(2u << 20, 0, 1u << 20, true, 0, -EMFILE, 2);
	print_message("# %u descriptors taken: res %lld\n", T.dups, (long long)T.res);
	assert_int_equal(T.st.not_cached, 1);
	assert_int_equal(T.st.calls[2], 1);
	assert_int_equal(T.st.errors, 1);
	assert_int_equal(T.st.hdr_bytes + T.st.body_bytes[1] + T.st.body_bytes[2], 0);
}

/* A 3 MB file sent from 1 MB for 3 MB: the first chunk is within the
 * file, so the residency check decides the path, and every path must meet
 * the end 1 MB early with -EIO. Cached: sendfile, or with
 * RP_FILE_SEND_CACHED_SPLICE splice on the shard; not cached (@evict, or
 * pages the kernel dropped between the write and the check on a loaded
 * host, which the run's "not cached" prints): IORING_OP_SPLICE from the
 * file. Whichever the check chose is asserted for what it is. */
static void short_file_run(unsigned flags, bool evict)
{
	T.flags = flags;
	run(3u << 20, 1u << 20, 3u << 20, evict, 0, -EIO, 1);
	if (T.st.not_cached) {
		assert_int_equal(T.st.calls[2], 1);
		assert_int_equal(T.st.shard_splice, 0);
		return;
	}
	assert_int_equal(T.st.calls[1], 1);
	assert_int_equal(T.st.shard_splice, flags == RP_FILE_SEND_CACHED_SPLICE);
}

static void test_short_file_is_eio(void **state)
{
	(void)state;
	/* the range runs 1 MB past the end: the check of [0, 2 MB) finds half
	 * its pages (none past the end), so the splice path; then small */
	run(1u << 20, 0, 2u << 20, false, 0, -EIO, 2);
	assert_int_equal(T.st.not_cached, 1);
	assert_int_equal(T.st.calls[2], 1);
	run(1000, 0, 4000, false, 0, -EIO, 0);
	T.no_hdr = true; /* small, at once by sendfile(2) */
	run(1000, 0, 4000, false, 0, -EIO, 0);
	T.no_hdr = false;
	short_file_run(RP_FILE_SEND_CACHED_SENDFILE, false);
	short_file_run(RP_FILE_SEND_CACHED_SPLICE, false);
	/* the same range with the file evicted: from the disk by the ring */
	short_file_run(0, true);
}

/* A file truncated while the tail of its body waits in the pipe for a full
 * socket: no later read of the file finds the end (the pipe already holds
 * the last byte), and the pages it holds are zeroed past the new end. The
 * size checked once the last byte is in the socket makes it -EIO, counted
 * in short_file, not a whole send. */
static void test_shrunk_under_the_pipe_is_eio(void **state)
{
	struct reader rd = { 0 };
	struct rp_runtime *rt;
	pthread_t th;

	(void)state;
	rt = pair_start(1u << 20, (size_t)32 << 20);
	sock_bufs(T.a, T.b, 65536); /* the socket takes ~128 KB; the pipe the rest */
	T.flags = RP_FILE_SEND_CACHED_SPLICE;
	T.len = 1u << 20;
	T.hlen = (size_t)snprintf(T.hdr, sizeof(T.hdr), "HTTP/1.1 200 OK\r\n\r\n");
	assert_int_equal(rp_runtime_submit(rt, 0, send_msg, NULL), 0);
	usleep(200 * 1000); /* filled: the body is in the pipe and the socket */
	assert_int_equal(atomic_load(&T.done), 0);
	assert_int_equal(ftruncate(T.file, 65536), 0);
	rd.fd = T.b;
	rd.cap = T.hlen + T.len;
	rd.buf = malloc(rd.cap);
	assert_non_null(rd.buf);
	assert_int_equal(pthread_create(&th, NULL, reader_main, &rd), 0);
	assert_true(wait_for(&T.done, 1, WAIT_S));
	shutdown(T.a, SHUT_RDWR); /* let the reader see the end */
	pthread_join(th, NULL);
	rt_end(rt);
	print_message("# 1 MB by splice, truncated to 64 KB under it: res %lld, %zu bytes read, "
		      "shard splice %llu, waits %llu, short_file %llu\n",
		      (long long)T.res, rd.got, (unsigned long long)T.st.shard_splice,
		      (unsigned long long)T.st.waits, (unsigned long long)T.st.short_file);
	assert_int_equal(T.st.shard_splice, 1);
	assert_int_equal(T.res, -EIO);
	assert_int_equal(T.st.short_file, 1);
	free(rd.buf);
	close(T.a);
	close(T.b);
	close(T.file);
}

static struct {
	atomic_int done;
	unsigned kept, first, second, after;
	uint64_t counted;
} K;

/* On the shard: the pipes kept, then two trims (arg 0) or a trim and two
 * sheds (arg 1), then the pipes kept and the counter of what closed them. */
static void keep_msg(struct rp_shard *sh, void *arg)
{
	struct rp_file_send_stats st;
	bool shed = arg != NULL;

	rp_file_send_stats(sh, &st);
	K.kept = st.pipes_kept;
	K.first = rp_file_send_trim(sh);
	K.second = shed ? rp_file_send_shed(sh) + 10 * rp_file_send_shed(sh) :
			  rp_file_send_trim(sh);
	rp_file_send_stats(sh, &st);
	K.after = st.pipes_kept;
	K.counted = shed ? st.pipes_shed : st.pipes_trimmed;
	atomic_store(&K.done, 1);
}

/*
 * A cached 512 KB body forced by splice keeps its pipe (two descriptors
 * more than before). Round 0: a trim right after closes nothing (a body
 * took the pipe since the last one), the next closes it (pipes_trimmed
 * 1). Round 1: the same body again, then a trim (nothing: taken since),
 * a shed (1) and a shed with nothing kept (0; pipes_shed 1). Each round
 * ends with the descriptors of before while the shard still runs.
 */
static void test_kept_pipe_trim_and_shed(void **state)
{
	struct rp_runtime *rt;
	unsigned fds0;

	(void)state;
	rt = pair_start(1u << 20, (size_t)32 << 20);
	fds0 = open_fds(); /* the runtime's own (its ring, its eventfd) included */
	for (intptr_t round = 0; round < 2; round++) {
		struct reader rd = { .fd = T.b, .cap = 512u << 10 };
		pthread_t th;

		T.flags = RP_FILE_SEND_CACHED_SPLICE;
		T.off = 0;
		T.len = rd.cap;
		T.hlen = 0;
		rd.buf = malloc(rd.cap);
		assert_non_null(rd.buf);
		atomic_store(&T.done, 0);
		assert_int_equal(pthread_create(&th, NULL, reader_main, &rd), 0);
		assert_int_equal(rp_runtime_submit(rt, 0, send_msg, NULL), 0);
		assert_true(wait_for(&T.done, 1, WAIT_S));
		pthread_join(th, NULL);
		free(rd.buf);
		assert_int_equal(T.res, (int64_t)rd.cap);
		assert_int_equal(rd.got, rd.cap);
		assert_int_equal(T.st.shard_splice, (uint64_t)round + 1);
		assert_int_equal(open_fds(), fds0 + 2);
		atomic_store(&K.done, 0);
		assert_int_equal(rp_runtime_submit(rt, 0, keep_msg, (void *)round), 0);
		assert_true(wait_for(&K.done, 1, WAIT_S));
		print_message("# round %d: kept %u, trim %u, %s %u, kept after %u, counted %llu\n",
			      (int)round, K.kept, K.first, round ? "shed+10*shed" : "trim", K.second,
			      K.after, (unsigned long long)K.counted);
		assert_int_equal(K.kept, 1);
		assert_int_equal(K.first, 0);
		assert_int_equal(K.second, 1);
		assert_int_equal(K.after, 0);
		assert_int_equal(K.counted, 1);
		assert_int_equal(open_fds(), fds0);
	}
	rt_end(rt);
	close(T.a);
	close(T.b);
	close(T.file);
}

/* The child's pipe budget (fs.pipe-user-pages-soft), held by pipes of
 * 1 MB until a new one comes out short (two pages): the user's next pipe
 * gets two pages and cannot grow. */
enum { MAX_HELD = 400 };
static int held[MAX_HELD][2];
static unsigned nheld;

static void budget_release(void)
{
	for (unsigned i = 0; i < nheld; i++) {
		close(held[i][0]);
		close(held[i][1]);
	}
	nheld = 0;
}

/* Hold the budget; skip when it cannot be spent (pipe-user-pages-soft 0,
 * or too many descriptors). */
static void budget_hold(void)
{
	int sz = 1 << 20;

	while (nheld < MAX_HELD) {
		if (pipe2(held[nheld], O_CLOEXEC))
			break;
		(void)fcntl(held[nheld][1], F_SETPIPE_SZ, 1 << 20);
		sz = fcntl(held[nheld][1], F_GETPIPE_SZ);
		nheld++;
		if (sz < 65536)
			break; /* made past the soft limit: the budget is spent */
	}
	print_message("# %u pipes held as uid %u, the last %d B\n", nheld, (unsigned)getuid(), sz);
	if (sz >= 65536) {
		budget_release();
		skip();
	}
}

/* As a uid of this run's own (not root), with every page of its pipe
 * budget held (fs.pipe-user-pages-soft; root is exempt): a new pipe gets two
 * pages and cannot grow, so a 512 KB cached body, which would go by splice
 * through a 1 MB pipe, goes by sendfile (pipe_short). With the pipes given
 * back, the next shard splices it again. Runs in a child (re-executed):
 * the uid change is for good. */
static void pipe_budget_case(void **state)
{
	(void)state;
	budget_hold();
	run(1u << 20, 4096, 512u << 10, false, 0, 0, 1);
	assert_int_equal(T.st.pipe_short, 1);
	assert_int_equal(T.st.shard_splice, 0);
	budget_release();
	run(1u << 20, 4096, 512u << 10, false, 0, 0, 1);
	assert_int_equal(T.st.pipe_short, 0);
	assert_int_equal(T.st.shard_splice, 1);
}

/* One body of its own connection, for bodies in flight at once. */
struct job {
	int a, b;
	uint64_t len;
	unsigned flags; /* rp_file_send_opts.flags */
	atomic_int done;
	int64_t res;
	struct rp_file_send_stats st; /* the shard's, at its end */
	struct reader rd;
	pthread_t th;
	bool reading; /* th runs or was not joined yet */
	bool started; /* a and b open */
	uint8_t *check; /* job_end's pattern, freed there */
};

static void job_done(struct rp_shard *sh, void *arg, int64_t res)
{
	struct job *j = arg;

	j->res = res;
	rp_file_send_stats(sh, &j->st);
	atomic_store(&j->done, 1);
}

static void job_msg(struct rp_shard *sh, void *arg)
{
	struct job *j = arg;
	struct rp_file_send_opts o = { .flags = j->flags };

	/* default flags: a cached body of 256 KB-1 MB chooses splice and
	 * wants a pipe as large as itself */
	CHECK_EQ(rp_file_send(sh, j->a, NULL, 0, T.file, 0, j->len, &o, job_done, j), 0);
}

static void job_read(struct job *j)
{
	j->rd.fd = j->b;
	j->rd.cap = j->len;
	j->rd.buf = malloc(j->len);
	assert_non_null(j->rd.buf);
	assert_int_equal(pthread_create(&j->th, NULL, reader_main, &j->rd), 0);
	j->reading = true;
}

/* Start the body; its reader at once or (@read false) by job_read later. */
static void job_start(struct rp_runtime *rt, struct job *j, uint64_t len, unsigned flags, bool read)
{
	memset(j, 0, sizeof(*j));
	j->len = len;
	j->flags = flags;
	tcp_pair(&j->a, &j->b);
	j->started = true;
	assert_int_equal(fcntl(j->a, F_SETFL, O_NONBLOCK), 0);
	if (!read)
		sock_bufs(j->a, j->b, 65536); /* small: the body waits with its pipe full */
	else
		job_read(j);
	assert_int_equal(rp_runtime_submit(rt, 0, job_msg, j), 0);
}

/* Wait for the body's end; check every byte. */
static void job_end(struct job *j)
{
	uint8_t *body = malloc(j->len);

	assert_non_null(body);
	j->check = body;
	assert_true(wait_for(&j->done, 1, WAIT_S));
	assert_true(j->reading);
	pthread_join(j->th, NULL);
	j->reading = false;
	assert_int_equal(j->res, (int64_t)j->len);
	assert_int_equal(j->rd.got, j->len);
	fill_pattern(body, j->len, 7);
	assert_memory_equal(j->rd.buf, body, j->len);
	free(body);
	j->check = NULL;
	free(j->rd.buf);
	j->rd.buf = NULL;
	close(j->a);
	close(j->b);
	j->started = false;
}

/* A pipe case's last body, @name: with the pipe budget held again (topped
 * up: a trim or a closed pipe may have given pages back), a cached 1 MB
 * body @j with its reader at once, to its end; what the shard counted by
 * then is printed, for the case to check. */
static void job_held(struct rp_runtime *rt, struct job *j, const char *name)
{
	budget_hold();
	job_start(rt, j, 1u << 20, 0, true);
	job_end(j);
	print_message("# %s: shard splice %llu, pipe short %llu\n", name,
		      (unsigned long long)j->st.shard_splice, (unsigned long long)j->st.pipe_short);
}

static struct {
	atomic_int done;
	unsigned trimmed;
	struct rp_file_send_stats st;
} Q;

enum { Q_STATS, Q_TRIM, Q_SHED };

/* On the shard: nothing, a trim or a shed (arg), then the stats. */
static void trim_msg(struct rp_shard *sh, void *arg)
{
	intptr_t what = (intptr_t)arg;

	if (what == Q_TRIM)
		Q.trimmed = rp_file_send_trim(sh);
	else if (what == Q_SHED)
		Q.trimmed = rp_file_send_shed(sh);
	else
		Q.trimmed = 0;
	rp_file_send_stats(sh, &Q.st);
	atomic_store(&Q.done, 1);
}

static void shard_q(struct rp_runtime *rt, intptr_t what)
{
	atomic_store(&Q.done, 0);
	assert_int_equal(rp_runtime_submit(rt, 0, trim_msg, (void *)what), 0);
	assert_true(wait_for(&Q.done, 1, WAIT_S));
}

/*
 * The two cases below share a runtime of one shard (a pool of 32 MB), a
 * file of 1 MB and bodies in flight at once, all file-level: after a
 * failed assertion the teardown still gives back the held pipe budget,
 * wakes and joins the readers (the sockets shut down), ends the runtime
 * and closes what is left, so one failing case does not fail the next.
 * A case that reaches its end sets P.shed_want: then the teardown sheds
 * the kept pipes, checks how many, and that the descriptors are those of
 * before.
 */
static struct {
	struct rp_runtime *rt;
	struct job j[6];
	unsigned fds0;
	int shed_want; /* -1: the case did not reach its end */
} P;

static int pipe_case_start(void **state)
{
	struct rp_runtime_config cfg = base_cfg(1);

	zero_T(state);
	memset(&P, 0, sizeof(P));
	P.shed_want = -1;
	make_file(1u << 20, false);
	cfg.pool_bytes = (size_t)32 << 20;
	P.rt = rt_start(&cfg);
	P.fds0 = open_fds();
	return 0;
}

static int pipe_case_end(void **state)
{
	unsigned shed = 0, fds = 0;
	bool tail = P.shed_want >= 0;

	(void)state;
	budget_release();
	for (unsigned i = 0; i < 6; i++) {
		struct job *j = &P.j[i];

		if (j->started) { /* a reader waiting wakes, a send fails */
			shutdown(j->a, SHUT_RDWR);
			shutdown(j->b, SHUT_RDWR);
		}
		if (j->reading)
			pthread_join(j->th, NULL);
		j->reading = false;
		free(j->rd.buf);
		j->rd.buf = NULL;
		free(j->check);
		j->check = NULL;
	}
	if (P.rt) {
		if (tail) {
			/* the kept pipes, given back: the descriptors of before */
			shard_q(P.rt, Q_SHED);
			shed = Q.trimmed;
			fds = open_fds();
		}
		rt_end(P.rt);
		P.rt = NULL;
	}
	for (unsigned i = 0; i < 6; i++) {
		if (P.j[i].started) {
			close(P.j[i].a);
			close(P.j[i].b);
			P.j[i].started = false;
		}
	}
	if (T.file > 0)
		close(T.file);
	T.file = -1;
	if (tail) {
		assert_int_equal(shed, (unsigned)P.shed_want);
		assert_int_equal(fds, P.fds0);
	}
	return 0;
}

/*
 * A trim keeps the largest kept pipe, closes a short one first. As a uid of
 * this run's own, on one shard: body A (1 MB, cached, so by splice through a 1 MB pipe)
 * waits with its pipe full for a reader not there yet; then the budget is
 * held, and body B, on the shard meanwhile, gets a new pipe of two pages
 * that cannot grow: by sendfile (pipe_short 1), its pipe kept. A is read
 * and ends: 2 pipes kept, the short one and the 1 MB. A trim (none idle
 * since the last: 0), body C takes the 1 MB pipe (the largest) and puts it
 * back, a trim closes one (one stayed idle). With the budget held again
 * (topped up: the trim may have given pages back), body D must find the
 * 1 MB pipe: spliced, pipe_short still 1. The trim before closed the pipe
 * put back last, the 1 MB one C had used, and D went by sendfile past the
 * short one left behind, which could not grow (pipe_short 2).
 */
static void pipe_trim_keeps_largest_case(void **state)
{
	struct rp_runtime *rt = P.rt;
	struct job *a = &P.j[0], *b = &P.j[1], *c = &P.j[2], *d = &P.j[3];

	(void)state;
	job_start(rt, a, 1u << 20, 0, false);
	shard_q(rt, Q_STATS);
	assert_int_equal(Q.st.shard_splice, 1); /* A holds its 1 MB pipe */
	budget_hold();
	job_start(rt, b, 1u << 20, 0, true);
	job_end(b);
	assert_int_equal(atomic_load(&a->done), 0); /* A still waits for its reader */
	assert_int_equal(b->st.pipe_short, 1);
	assert_int_equal(b->st.shard_splice, 1);
	job_read(a);
	job_end(a);
	shard_q(rt, Q_TRIM);
	print_message("# A and B done: kept %u, trim %u\n", Q.st.pipes_kept, Q.trimmed);
	assert_int_equal(Q.st.pipes_kept, 2);
	assert_int_equal(Q.trimmed, 0);
	job_start(rt, c, 1u << 20, 0, true);
	job_end(c);
	assert_int_equal(c->st.shard_splice, 2);
	assert_int_equal(c->st.pipe_short, 1);
	shard_q(rt, Q_TRIM);
	print_message("# C done: trim %u, kept %u\n", Q.trimmed, Q.st.pipes_kept);
	assert_int_equal(Q.trimmed, 1);
	assert_int_equal(Q.st.pipes_kept, 1);
	/* the budget spent again (the trim may have given some back): a
	 * short pipe left could not grow */
	job_held(rt, d, "D");
	assert_int_equal(d->st.pipe_short, 1);
	assert_int_equal(d->st.shard_splice, 3);
	P.shed_want = 1;
}

/*
 * A full stash keeps the larger pipe. As a uid of this run's own, on one
 * shard: body A (1 MB, cached: splice through a 1 MB pipe) waits for its
 * reader; the budget is held; bodies B1-B4, forced by splice (any pipe
 * will do), each get a new pipe of two pages and wait for theirs. B1-B4
 * are read and end: 4 short pipes kept, the stash full. A is read and
 * ends: its 1 MB pipe must replace a short one. With the budget held
 * again (topped up), body E (1 MB, cached) must be spliced through it
 * (pipe_short 0). Before, a full stash closed the pipe coming back, the
 * 1 MB one, and E went by sendfile past short pipes that could not grow
 * (pipe_short 1).
 */
static void pipe_full_stash_keeps_largest_case(void **state)
{
	struct rp_runtime *rt = P.rt;
	struct job *a = &P.j[0], *b = &P.j[1], *e = &P.j[5];

	(void)state;
	job_start(rt, a, 1u << 20, 0, false);
	shard_q(rt, Q_STATS);
	assert_int_equal(Q.st.shard_splice, 1); /* A holds its 1 MB pipe */
	budget_hold();
	for (unsigned i = 0; i < 4; i++)
		job_start(rt, &b[i], 1u << 20, RP_FILE_SEND_CACHED_SPLICE, false);
	shard_q(rt, Q_STATS);
	assert_int_equal(Q.st.shard_splice, 5);
	assert_int_equal(Q.st.pipes_kept, 0);
	for (unsigned i = 0; i < 4; i++) {
		job_read(&b[i]);
		job_end(&b[i]);
	}
	assert_int_equal(atomic_load(&a->done), 0); /* A still waits for its reader */
	shard_q(rt, Q_STATS);
	assert_int_equal(Q.st.pipes_kept, 4);
	job_read(a);
	job_end(a);
	shard_q(rt, Q_STATS);
	assert_int_equal(Q.st.pipes_kept, 4);
	/* the budget spent again (a pipe closed may have given some back) */
	job_held(rt, e, "E");
	assert_int_equal(e->st.pipe_short, 0);
	assert_int_equal(e->st.shard_splice, 6);
	P.shed_want = 4;
}

static int child_main(void)
{
	const struct CMUnitTest one[] = {
		cmocka_unit_test_setup(pipe_budget_case, zero_T),
		cmocka_unit_test_setup_teardown(pipe_trim_keeps_largest_case, pipe_case_start,
						pipe_case_end),
		cmocka_unit_test_setup_teardown(pipe_full_stash_keeps_largest_case,
						pipe_case_start, pipe_case_end),
	};
	unsigned id;

	if (geteuid() != 0) {
		printf("# pipe budget: needs root to change its uid\n");
		return 77;
	}
	/* a uid of this run's own: the budget is per user, host-wide, so as
	 * nobody another run's held pipes would spend ours too */
	id = 200000 + (unsigned)getpid() % 100000;
	if (setgroups(0, NULL) || setresgid(id, id, id) || setresuid(id, id, id)) {
		printf("# pipe budget: cannot become uid %u: %s\n", id, strerror(errno));
		return 77;
	}
	return cmocka_run_group_tests_name("filesend-pipe-budget", one, NULL, NULL) ? 1 : 0;
}

static void test_pipe_budget_spent_goes_by_sendfile(void **state)
{
	(void)state;
	child_run_self("--child-pipe-budget", NULL, WAIT_S, "pipe budget child:");
}

int main(int argc, char **argv)
{
	const struct CMUnitTest all[] = {
		cmocka_unit_test_setup(test_small_path, zero_T),
		cmocka_unit_test_setup(test_small_path_tmpfs, zero_T),
		cmocka_unit_test_setup(test_small_path_whole_16k, zero_T),
		cmocka_unit_test_setup(test_small_no_header_by_sendfile, zero_T),
		cmocka_unit_test_setup(test_small_not_cached_by_ring, zero_T),
		cmocka_unit_test_setup(test_small_full_socket, zero_T),
		cmocka_unit_test_setup(test_small_no_pool_buffer_by_sendfile, zero_T),
		cmocka_unit_test_setup(test_no_header_no_64b_object, zero_T),
		cmocka_unit_test_setup(test_header_only, zero_T),
		cmocka_unit_test_setup(test_small_ring_linked_one_submit, zero_T),
		cmocka_unit_test_setup(test_empty_range_no_read, zero_T),
		cmocka_unit_test_setup(test_header_only_no_pool_buffer_not_corked, zero_T),
		cmocka_unit_test_setup(test_empty_no_header, zero_T),
		cmocka_unit_test_setup(test_end_without_op_is_enomem, zero_T),
		cmocka_unit_test_setup(test_bad_range_and_pipe, zero_T),
		cmocka_unit_test_setup(test_sendfile_path, zero_T),
		cmocka_unit_test_setup(test_sendfile_slow_reader, zero_T),
		cmocka_unit_test_setup(test_cached_by_splice_on_the_shard, zero_T),
		cmocka_unit_test_setup(test_splice_path_not_cached, zero_T),
		cmocka_unit_test_setup(test_cached_head_rest_from_iowq, zero_T),
		cmocka_unit_test_setup(test_not_cached_no_pipe_is_emfile, zero_T),
		cmocka_unit_test_setup(test_short_file_is_eio, zero_T),
		cmocka_unit_test_setup(test_shrunk_under_the_pipe_is_eio, zero_T),
		cmocka_unit_test_setup(test_pipe_budget_spent_goes_by_sendfile, zero_T),
		cmocka_unit_test_setup(test_kept_pipe_trim_and_shed, zero_T),
	};

	signal(SIGPIPE, SIG_IGN);
	if (argc > 1 && !strcmp(argv[1], "--child-pipe-budget")) {
		watchdog("filesend-pipe-budget", 60);
		return child_main();
	}
	watchdog("filesend", 120);
	test_filter_from_env();
	return cmocka_run_group_tests_name("filesend", all, NULL, NULL);
}
