/* SPDX-License-Identifier: MIT */
/*
 * A header and a file range to a socket as one operation
 * (include/ringplane/filesend.h): the small path (linked read -> send from
 * pool memory), the sendfile path (page-cached bodies: sendfile(2) on the
 * shard thread, POLLOUT from the ring when the socket is full) and the
 * splice path (bodies not in the page cache: IORING_OP_SPLICE file -> pipe
 * in io-wq, then splice(2) pipe -> socket on the shard thread).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <ringplane/filesend.h>
#include <ringplane/pool.h>

#define SMALL_DEFAULT (16u * 1024)
#define CHUNK_DEFAULT (2u * 1024 * 1024)
/* Bytes one body moves per readiness event (or yield) before the loop runs
 * the other connections: a connection waits at most one such turn of every
 * other before it moves again. 16 chunks (32 MB), bounded in practice by the
 * socket's free space (up to tcp_wmem's 4 MB), left a drained client of
 * test_serve's 100 x 8 MB downloads silent for over 5 s at load 30 while the
 * shard filled 99 other sockets (docs/net.md); nginx's sendfile_max_chunk
 * is 2 MB for the same reason. */
#define TURN_BYTES (1u * 1024 * 1024)
#define PIPE_BYTES (1u * 1024 * 1024)
/* Residency memo: a range cachestat(2) found in the page cache is taken as
 * still there for RES_TTL_NS, so a hot file costs one cachestat per 100 ms,
 * not one per call (at 4 KB that syscall and the ring's linked read were
 * what made rp_file_send 0.62-0.78x a sendfile(2) loop). */
#define PIPE_STASH 4 /* empty pipes a shard keeps for the next splice (pipe2 + F_SETPIPE_SZ
		      * + F_GETPIPE_SZ were three syscalls per body) */
/* Cached bodies above CACHED_SPLICE_MIN and up to CACHED_SPLICE_MAX go by
 * splice(2) file -> pipe -> socket on the shard, the others by sendfile(2).
 * Measured on a quiet 2-vCPU EPYC (docs/net.md, `ringplane serve` under
 * wrk -c8, sendfile / splice forced, 3-9 alternating sets): sendfile
 * 1.04-1.27x splice's throughput at 64 KB and 1.00-1.15x at 256 KB, at
 * 0.79-0.98x its CPU per GB (one syscall a body instead of two); at 1 MB
 * a tie (0.87-1.18x, median 1.00) with sendfile's CPU per GB 0.85-1.28x
 * (median 1.15). Above 1 MB sendfile: a long body, the one that waits on a
 * slow client, then holds no pipe. */
#define CACHED_SPLICE_MIN (256u << 10)
#define CACHED_SPLICE_MAX (1u << 20)
#define RES_SLOTS 64
#define RES_TTL_NS (100u * 1000 * 1000)

#ifndef __NR_cachestat
#define __NR_cachestat 451 /* Linux 6.5, every architecture */
#endif
#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif

enum { PATH_SMALL = 0, PATH_SENDFILE = 1, PATH_SPLICE = 2 };

struct fsend {
	struct rp_shard *sh;
	int sock, file;
	uint64_t off, left, total;
	unsigned flags;
	size_t chunk;
	int path;
	int acct; /* the path whose counters the body counts in */
	char *hdr;
	size_t hlen, hsent;
	char *buf; /* small path: header + body */
	size_t blen, bsent;
	rp_file_send_fn done;
	void *arg;
	unsigned pending; /* ops in flight */
	int64_t err;
	int pipe[2];
	size_t pipe_sz, in_pipe;
	bool fill_here; /* cached: file -> pipe by splice(2) on the shard, not in io-wq */
	bool finished;
};

/* ---- per-shard counters ---- */

struct res_slot {
	int fd;
	uint64_t off, end, at_ns;
};

struct pipe_slot {
	int fd[2];
	size_t size;
};

static __thread struct {
	struct rp_shard *sh;
	struct rp_file_send_stats st;
	struct res_slot res[RES_SLOTS];
	struct pipe_slot pipes[PIPE_STASH];
	unsigned npipes;
	unsigned pipes_low; /* the fewest npipes since the last rp_file_send_trim */
	uint64_t small_nomem; /* rp_file_send_small_nomem: not in the public stats (ABI 0.5 to 0.7) */
	uint64_t to_iowq;     /* rp_file_send_to_iowq: likewise */
	uint64_t small_sendfile; /* rp_file_send_small_sendfile (bytes): likewise */
} tls;

static pthread_key_t stash_key;
static pthread_once_t stash_once = PTHREAD_ONCE_INIT;
static bool stash_key_ok;

/* The stash's smallest pipe (npipes > 0). */
static unsigned stash_smallest(void)
{
	unsigned low = 0;

	for (unsigned i = 1; i < tls.npipes; i++)
		if (tls.pipes[i].size < tls.pipes[low].size)
			low = i;
	return low;
}

/* Close up to @n stashed pipes, the smallest first; how many. The stash
 * keeps its largest: a short pipe (made while the user's pipe budget was
 * spent) left in place of a whole one would send the next cached body by
 * sendfile(2) (pipe_short) unless it could grow, which costs two syscalls
 * and is refused while the budget stays spent. */
static unsigned stash_close_n(unsigned n)
{
	unsigned closed = 0;

	while (tls.npipes && closed < n) {
		struct pipe_slot *p = &tls.pipes[stash_smallest()];

		close(p->fd[0]);
		close(p->fd[1]);
		*p = tls.pipes[--tls.npipes];
		closed++;
	}
	if (tls.pipes_low > tls.npipes)
		tls.pipes_low = tls.npipes;
	return closed;
}

static void stash_close(void)
{
	(void)stash_close_n(PIPE_STASH);
}

/* The thread's exit closes its stashed pipes (glibc runs key destructors
 * before it frees the thread's TLS). */
static void stash_exit(void *arg)
{
	(void)arg;
	stash_close();
}

static void stash_key_make(void)
{
	stash_key_ok = pthread_key_create(&stash_key, stash_exit) == 0;
}

static struct rp_file_send_stats *stats(struct rp_shard *sh)
{
	if (tls.sh != sh) {
		stash_close();
		memset(&tls, 0, sizeof(tls));
		tls.sh = sh;
	}
	return &tls.st;
}

static void pipe_put(struct fsend *f);

/* An empty pipe: the stash's largest, or a new one, grown to PIPE_BYTES where the
 * kernel lets it. A pipe made while the user's pipe budget
 * (fs.pipe-user-pages-soft, 64 MB here; root is exempt) is spent gets two
 * pages and cannot grow; one made while pipe-max-size is below PIPE_BYTES
 * stays at 64 KB. A stashed pipe smaller than @need tries to grow again
 * (the budget may have come back). Fewer than @need bytes after that:
 * -ENOBUFS, the pipe back in the stash (a cached body goes by sendfile(2)
 * then: through a short pipe it would take two syscalls a pipeful, not
 * two a body, which is all splice had over sendfile). */
static int pipe_get(struct fsend *f, size_t need)
{
	int sz;

	(void)stats(f->sh);
	if (tls.npipes) {
		/* the largest: a short one put back must not stand in front
		 * of a whole one (it would send every body by sendfile, and
		 * hold the budget the whole one's replacement needs) */
		unsigned best = 0;
		struct pipe_slot *p;

		for (unsigned i = 1; i < tls.npipes; i++)
			if (tls.pipes[i].size > tls.pipes[best].size)
				best = i;
		p = &tls.pipes[best];
		f->pipe[0] = p->fd[0];
		f->pipe[1] = p->fd[1];
		sz = (int)p->size;
		*p = tls.pipes[--tls.npipes];
		if (tls.npipes < tls.pipes_low)
			tls.pipes_low = tls.npipes;
		if ((size_t)sz < need && (size_t)sz < PIPE_BYTES &&
		    fcntl(f->pipe[1], F_SETPIPE_SZ, PIPE_BYTES) > 0)
			sz = fcntl(f->pipe[1], F_GETPIPE_SZ);
	} else {
		if (pipe2(f->pipe, O_NONBLOCK | O_CLOEXEC)) {
			f->pipe[0] = f->pipe[1] = -1;
			return -errno;
		}
		(void)fcntl(f->pipe[1], F_SETPIPE_SZ, PIPE_BYTES);
		sz = fcntl(f->pipe[1], F_GETPIPE_SZ);
	}
	f->pipe_sz = sz > 0 ? (size_t)sz : 65536;
	if (f->pipe_sz < need) {
		tls.st.pipe_short++;
		pipe_put(f);
		return -ENOBUFS;
	}
	if (sz > 0 && (size_t)sz < f->chunk)
		f->chunk = (size_t)sz;
	return 0;
}

/* Back to the stash if empty and there is room, else closed; a full stash
 * keeps the larger of it and the stash's smallest (no syscall added: one
 * of the two is closed either way). */
static void pipe_put(struct fsend *f)
{
	if (f->pipe[0] < 0)
		return;
	(void)stats(f->sh);
	if (!f->in_pipe && !f->err && tls.npipes == PIPE_STASH) {
		struct pipe_slot *p = &tls.pipes[stash_smallest()];

		if (p->size < f->pipe_sz) {
			struct pipe_slot out = *p;

			p->fd[0] = f->pipe[0];
			p->fd[1] = f->pipe[1];
			p->size = f->pipe_sz;
			f->pipe[0] = out.fd[0];
			f->pipe[1] = out.fd[1];
		}
	} else if (!f->in_pipe && !f->err) {
		(void)pthread_once(&stash_once, stash_key_make);
		if (stash_key_ok && !pthread_getspecific(stash_key))
			(void)pthread_setspecific(stash_key, &tls);
		if (stash_key_ok) {
			struct pipe_slot *p = &tls.pipes[tls.npipes++];

			p->fd[0] = f->pipe[0];
			p->fd[1] = f->pipe[1];
			p->size = f->pipe_sz;
			f->pipe[0] = f->pipe[1] = -1;
			return;
		}
	}
	close(f->pipe[0]);
	close(f->pipe[1]);
	f->pipe[0] = f->pipe[1] = -1;
}

void rp_file_send_stats(struct rp_shard *sh, struct rp_file_send_stats *out)
{
	*out = *stats(sh);
	out->pipes_kept = tls.npipes;
}

uint64_t rp_file_send_small_nomem(struct rp_shard *sh)
{
	(void)stats(sh);
	return tls.small_nomem;
}

uint64_t rp_file_send_to_iowq(struct rp_shard *sh)
{
	(void)stats(sh);
	return tls.to_iowq;
}

uint64_t rp_file_send_small_sendfile(struct rp_shard *sh)
{
	(void)stats(sh);
	return tls.small_sendfile;
}

unsigned rp_file_send_shed(struct rp_shard *sh)
{
	unsigned n;

	(void)stats(sh);
	n = stash_close_n(PIPE_STASH);
	tls.st.pipes_shed += n;
	return n;
}

unsigned rp_file_send_trim(struct rp_shard *sh)
{
	unsigned n;

	(void)stats(sh);
	/* pipes_low of them stayed in the stash since the last call: no
	 * body took them */
	n = stash_close_n(tls.pipes_low);
	tls.st.pipes_trimmed += n;
	tls.pipes_low = tls.npipes;
	return n;
}

/* ---- the end ---- */

static void finish(struct fsend *f)
{
	struct rp_file_send_stats *st = stats(f->sh);
	int64_t res = f->err ? f->err : (int64_t)f->total;

	if (f->err == -EIO)
		st->short_file++;
	else if (f->err)
		st->errors++;
	pipe_put(f);
	rp_pool_free(f->buf);
	rp_pool_free(f->hdr);
	f->done(f->sh, f->arg, res);
	rp_pool_free(f);
}

static void op_done(struct fsend *f)
{
	if (--f->pending == 0 && f->finished)
		finish(f);
}

static void fail(struct fsend *f, int64_t err)
{
	if (!f->err)
		f->err = err;
	f->finished = true;
}

/* End from a synchronous step: done() must run from the loop, never from
 * inside rp_file_send, so a NOP carries the end. */
static void on_end_nop(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	(void)sh;
	(void)c;
	op_done(arg);
}

static void on_end_msg(struct rp_shard *sh, void *arg)
{
	(void)sh;
	op_done(arg);
}

/* Only at start, with nothing pending: 0, the end carried to the loop, or
 * -ENOMEM when neither a message nor an op is to be had (the pool empty, the
 * mailbox full): then the caller gives up (rp_file_send's -ENOMEM), as
 * finish() here would run done() inside the call. */
static int end_soon(struct fsend *f)
{
	f->finished = true;
	/* a message to ourselves runs in the loop's next round without an
	 * SQE or, when nothing else waits for the kernel, an enter: a small
	 * body sent at once costs its one sendfile(2) and nothing more */
	if (!rp_shard_post(f->sh, rp_shard_id(f->sh), on_end_msg, f)) {
		f->pending++;
		return 0;
	}
	if (rp_nop(f->sh, on_end_nop, f)) {
		f->pending++;
		return 0;
	}
	return -ENOMEM;
}

/* ---- small: linked read -> send ---- */

static void on_small_sent(struct rp_shard *sh, void *arg, const struct rp_cqe *c);

static void small_send_rest(struct fsend *f)
{
	struct rp_op *op = rp_send(f->sh, f->sock, f->buf + f->bsent, (unsigned)(f->blen - f->bsent),
				   MSG_NOSIGNAL | ((f->flags & RP_FILE_SEND_MORE) ? MSG_MORE : 0),
				   on_small_sent, f);

	if (op)
		f->pending++;
	else
		fail(f, -errno);
}

static void on_small_read(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct fsend *f = arg;

	(void)sh;
	if (c->res < 0)
		fail(f, c->res);
	else if ((uint64_t)c->res != f->left)
		fail(f, -EIO); /* the file is shorter than the range: its send was cancelled */
	op_done(f);
}

static void on_small_sent(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct fsend *f = arg;

	(void)sh;
	if (c->res == -ECANCELED && f->err) {
		/* the read fell short: the link cancelled us */
	} else if (c->res <= 0) {
		fail(f, c->res < 0 ? c->res : -EPIPE);
	} else {
		f->bsent += (size_t)c->res;
		if (f->bsent < f->blen) {
			small_send_rest(f);
		} else {
			struct rp_file_send_stats *st = stats(f->sh);

			st->body_bytes[PATH_SMALL] += f->left;
			st->hdr_bytes += f->hlen;
			f->total = f->blen;
			f->finished = true;
		}
	}
	op_done(f);
}

static int small_start(struct fsend *f)
{
	struct rp_op *op;

	f->blen = f->hlen + (size_t)f->left;
	if (!f->blen) {
		/* nothing asked (no header, an empty range): no send, whose 0
		 * would read as the peer gone; done(0) from the loop */
		return end_soon(f);
	}
	f->buf = rp_pool_alloc(rp_shard_pool(f->sh), f->blen);
	if (!f->buf)
		return -ENOMEM;
	if (f->hlen)
		memcpy(f->buf, f->hdr, f->hlen);
	if (!f->left) {
		small_send_rest(f);
		return f->pending ? 0 : (int)f->err;
	}
	op = rp_read(f->sh, f->file, f->buf + f->hlen, (unsigned)f->left, f->off, on_small_read, f);
	if (!op)
		return -errno;
	f->pending++;
	if (rp_link_next(f->sh, op) == 0)
		small_send_rest(f);
	else
		fail(f, -EBUSY);
	if (f->err) /* the read is in flight: done() reports the failure */
		f->finished = true;
	return 0;
}

/*
 * A small body with a header, at once: a RWF_NOWAIT read behind the header
 * (rp_file_read_nowait: it fails with EAGAIN rather than wait for the disk;
 * on tmpfs, which refuses RWF_NOWAIT, a plain read) and one send of both.
 * Two syscalls and one segment (four from tmpfs: the refused read and an
 * fstat first); header + sendfile(2) were two syscalls as
 * well, and slower (0.75x the ring's read -> send at 4 KB, 64 B header).
 * Returns 1 when it took the body (sent, or the rest handed to the ring's
 * send, or failed: f says which), 0 when the ring's read -> send must run.
 */
static int small_now(struct fsend *f)
{
	unsigned more = (f->flags & RP_FILE_SEND_MORE) ? MSG_MORE : 0;
	struct iovec v;
	ssize_t n;

	f->blen = f->hlen + (size_t)f->left;
	f->buf = rp_pool_alloc(rp_shard_pool(f->sh), f->blen);
	if (!f->buf)
		return 0; /* small_start tries again and reports -ENOMEM */
	v.iov_base = f->buf + f->hlen;
	v.iov_len = (size_t)f->left;
	n = rp_file_read_nowait(f->file, &v, 1, (off_t)f->off);
	if (n != (ssize_t)f->left) {
		/* not (all) cached, short, or not a file: the ring reads it
		 * and decides (-EIO, -ESPIPE, a stream's bytes) */
		rp_pool_free(f->buf);
		f->buf = NULL;
		return 0;
	}
	if (f->hlen)
		memcpy(f->buf, f->hdr, f->hlen);
	do
		n = send(f->sock, f->buf, f->blen, MSG_DONTWAIT | MSG_NOSIGNAL | more);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno != EAGAIN) {
		fail(f, -errno);
		return 1;
	}
	f->bsent = n > 0 ? (size_t)n : 0;
	if (f->bsent < f->blen) {
		small_send_rest(f); /* the ring's send waits for room (or f->err says why not) */
		return 1;
	}
	stats(f->sh)->body_bytes[PATH_SMALL] += f->left;
	stats(f->sh)->hdr_bytes += f->hlen;
	f->total = f->blen;
	f->finished = true;
	return 1;
}

/* ---- the header by a plain send, for the sendfile and splice paths ---- */

/* 1: all of the header is out; 0: the socket is full; <0: an error.
 * MSG_MORE only when body bytes or the caller's next response follow: a
 * header alone (an empty range whose small-path buffer was not to be had)
 * sent with it stayed corked until TCP's 200 ms timer. */
static int push_header(struct fsend *f)
{
	unsigned more = (f->left || (f->flags & RP_FILE_SEND_MORE)) ? MSG_MORE : 0;

	while (f->hsent < f->hlen) {
		ssize_t n = send(f->sock, f->hdr + f->hsent, f->hlen - f->hsent,
				 more | MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n > 0) {
			f->hsent += (size_t)n;
			f->total += (uint64_t)n;
			stats(f->sh)->hdr_bytes += (uint64_t)n;
		} else if (n < 0 && errno == EAGAIN) {
			return 0;
		} else if (n < 0 && errno != EINTR) {
			return -errno;
		}
	}
	return 1;
}

static void pump(struct fsend *f);
static bool resident(struct rp_shard *sh, int file, uint64_t off, uint64_t len);

static void on_writable(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct fsend *f = arg;

	(void)sh;
	if (c->res < 0)
		fail(f, c->res);
	else if (!f->finished)
		pump(f);
	op_done(f);
}

static void wait_writable(struct fsend *f)
{
	stats(f->sh)->waits++;
	/* never RDHUP alone: a half-closed peer that does not read cost
	 * ~47,000 polls a second for 20 clients with rp_poll */
	if (rp_poll_writable(f->sh, f->sock, on_writable, f))
		f->pending++;
	else
		fail(f, -errno);
}

/* ---- sendfile ---- */

/*
 * The next piece of a body the shard reads itself (sendfile(2), or splice(2)
 * file -> pipe) is not in the page cache: only the first chunk's residency
 * chose the path, and a file cached only in part, or pages evicted since,
 * would be read from the disk by that syscall, on the shard. The rest of
 * the body goes by IORING_OP_SPLICE in io-wq (counted in
 * rp_file_send_to_iowq, its bytes in body_bytes[2]). 0, or the errno of a
 * pipe that could not be had (EMFILE, ENFILE): the body then ends with it
 * rather than read the disk here (nothing here would tell when a
 * descriptor comes back, and a shard never blocks).
 */
static int leave_shard(struct fsend *f)
{
	int r;

	if (f->pipe[0] < 0 && (r = pipe_get(f, 0)))
		return r;
	f->path = PATH_SPLICE;
	f->fill_here = false;
	f->acct = PATH_SPLICE;
	(void)stats(f->sh);
	tls.to_iowq++;
	return 0;
}

/*
 * 1: body all sent; 0: wait (socket full); 2: yield; 4: the next piece is
 * not in the page cache (leave_shard); <0: an error.
 *
 * A call asks for the rest of the turn, and one that moves less found the
 * socket full (a non-blocking sendfile(2) returns what fit): we wait for
 * POLLOUT at once rather than ask again for an EAGAIN. Per GB at 64 MB
 * (wrk -c4, perf stat) that probe was 16-25% of our sendfile calls. The
 * one-shot poll looks at the socket when it is armed, so room that came
 * in between completes it at once; a file that shrank still ends in -EIO
 * on the next call.
 */
static int sendfile_body(struct fsend *f)
{
	for (size_t turn = 0; turn < TURN_BYTES && f->left;) {
		off_t off = (off_t)f->off;
		size_t want = f->left < f->chunk ? (size_t)f->left : f->chunk;
		ssize_t n;

		if (want > TURN_BYTES - turn)
			want = TURN_BYTES - turn;
		/* each piece's own range, through the memo: one cachestat(2)
		 * per MB of body, the first chunk's already made at the start */
		if (!resident(f->sh, f->file, f->off, want))
			return 4;
		n = sendfile(f->sock, f->file, &off, want);
		if (n > 0) {
			turn += (size_t)n;
			f->off += (uint64_t)n;
			f->left -= (uint64_t)n;
			f->total += (uint64_t)n;
			stats(f->sh)->body_bytes[f->acct] += (uint64_t)n;
			if (f->acct == PATH_SMALL) /* a small body by sendfile(2) */
				tls.small_sendfile += (uint64_t)n;
			if ((size_t)n < want && f->left)
				return 0; /* the socket is full */
		} else if (n == 0) {
			return -EIO; /* EOF before the range's end: the file shrank */
		} else if (errno == EAGAIN) {
			return 0;
		} else if (errno != EINTR) {
			return -errno;
		}
	}
	return f->left ? 2 : 1; /* 2: a long body yields to the other connections */
}

static void on_yield(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct fsend *f = arg;

	(void)sh;
	(void)c;
	if (!f->finished)
		pump(f);
	op_done(f);
}

/* ---- splice: file -> pipe in io-wq, pipe -> socket here ---- */

static void on_filled(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct fsend *f = arg;

	(void)sh;
	if (c->res < 0) {
		fail(f, c->res);
	} else if (c->res == 0) {
		fail(f, -EIO);
	} else {
		f->in_pipe = (size_t)c->res;
		f->off += (uint64_t)c->res;
		f->left -= (uint64_t)c->res;
		if (!f->finished)
			pump(f);
	}
	op_done(f);
}

/* 1: body all sent; 0: waiting for the socket; 2: yield; 3: waiting for
 * the disk; <0: an error. */
static int splice_body(struct fsend *f)
{
	uint64_t moved = 0;

	for (;;) {
		while (f->in_pipe) {
			unsigned more = (f->left || (f->flags & RP_FILE_SEND_MORE)) ? SPLICE_F_MORE : 0;
			ssize_t n = splice(f->pipe[0], NULL, f->sock, NULL, f->in_pipe,
					   SPLICE_F_MOVE | SPLICE_F_NONBLOCK | more);

			if (n > 0) {
				f->in_pipe -= (size_t)n;
				f->total += (uint64_t)n;
				moved += (uint64_t)n;
				stats(f->sh)->body_bytes[f->acct] += (uint64_t)n;
			} else if (n < 0 && errno == EAGAIN) {
				return 0;
			} else if (n < 0 && errno != EINTR) {
				return -errno;
			} else if (n == 0) {
				return -EPIPE;
			}
		}
		if (!f->left)
			return 1;
		if (!f->fill_here)
			break;
		if (moved >= TURN_BYTES)
			return 2; /* a long body yields to the other connections */
		/* cached: file -> pipe here; the pipe is empty, so the only wait
		 * is for pages not in the cache. SPLICE_F_NONBLOCK is for the
		 * pipe (only a kernel that reads with IOCB_NOWAIT fails such a
		 * fill with EAGAIN), so each fill's range is checked first, one
		 * cachestat(2) per fill through the memo; a miss sends the rest
		 * to io-wq, an EAGAIN this fill */
		size_t fill = (size_t)(f->left < f->chunk ? f->left : f->chunk);

		if (!resident(f->sh, f->file, f->off, fill)) {
			(void)leave_shard(f); /* has its pipe: cannot fail */
			break;
		}
		loff_t o = (loff_t)f->off;
		ssize_t n = splice(f->file, &o, f->pipe[1], NULL, fill,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

		if (n > 0) {
			f->in_pipe = (size_t)n;
			f->off += (uint64_t)n;
			f->left -= (uint64_t)n;
		} else if (n == 0) {
			return -EIO; /* EOF before the range's end: the file shrank */
		} else if (errno == EAGAIN) {
			break;
		} else if (errno != EINTR) {
			return -errno;
		}
	}
	/* the next chunk from the file, in io-wq: a disk read never blocks us */
	if (!rp_splice(f->sh, f->file, (int64_t)f->off, f->pipe[1], -1,
		       (unsigned)(f->left < f->chunk ? f->left : f->chunk), SPLICE_F_MOVE, on_filled, f))
		return -errno;
	f->pending++;
	return 3; /* waiting for the disk */
}

/*
 * The last byte of a zero-copy body is in the socket: is the file still as
 * long as the range? sendfile(2) and splice(2) queue references to the
 * file's page-cache pages, and a truncation zeroes them (a large folio that
 * straddles the new end is zeroed past it), so a file that shrank after
 * its pages were taken, in the pipe waiting for the socket or during the
 * last sendfile(2) call, would leave a whole-length body of zeros with no
 * short read to tell. One fstat(2) a body, not a piece; a small body sent
 * at once (acct PATH_SMALL) is one call and skips it. 1, or -EIO (counted
 * in short_file) when the file now ends before the range did. A shrink
 * after this check is not seen (filesend.h).
 */
static int body_still_there(struct fsend *f)
{
	struct stat sb;

	if (f->acct == PATH_SMALL)
		return 1;
	if (fstat(f->file, &sb))
		return -errno;
	/* a block device's st_size is 0: only a regular file's size is its end */
	return S_ISREG(sb.st_mode) && (uint64_t)sb.st_size < f->off ? -EIO : 1;
}

static void pump(struct fsend *f)
{
	int r = push_header(f);

	if (r == 1)
		r = f->path == PATH_SENDFILE ? sendfile_body(f) : splice_body(f);
	if (r == 4 && !(r = leave_shard(f)))
		r = splice_body(f);
	if (r == 1)
		r = body_still_there(f);
	if (r < 0) {
		fail(f, r);
	} else if (r == 0) {
		wait_writable(f);
	} else if (r == 1) {
		f->finished = true; /* op_done or end_soon reports it */
	} else if (r == 2) {
		if (rp_nop(f->sh, on_yield, f))
			f->pending++;
		else
			fail(f, -errno);
	}
}

/* ---- choosing ---- */

struct cachestat_range_ {
	uint64_t off, len;
};
struct cachestat_ {
	uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

/* Is every page of the range in the page cache? cachestat(2) where the
 * kernel has it, else a RWF_NOWAIT read of its first and last byte. */
static bool in_page_cache(int file, uint64_t off, uint64_t len)
{
	static int have_cachestat = 1; /* benign race: every thread finds the same */
	long page = sysconf(_SC_PAGESIZE);
	uint64_t first = off / (uint64_t)page, last = (off + len - 1) / (uint64_t)page;
	char b;

	if (have_cachestat) {
		struct cachestat_range_ r = { first * (uint64_t)page,
					      (last - first + 1) * (uint64_t)page };
		struct cachestat_ cs;

		if (!syscall(__NR_cachestat, file, &r, &cs, 0))
			return cs.nr_cache >= last - first + 1;
		if (errno == ENOSYS)
			have_cachestat = 0;
	}
	struct iovec v = { &b, 1 };

	return preadv2(file, &v, 1, (off_t)off, RWF_NOWAIT) == 1 &&
	       preadv2(file, &v, 1, (off_t)(off + len - 1), RWF_NOWAIT) == 1;
}

static uint64_t coarse_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* in_page_cache through the shard's memo (RES_TTL_NS). A memo is keyed by
 * the fd number: a file closed and another opened on the same number within
 * the TTL may be taken as resident once; what that costs is a read from
 * disk on the shard of at most the range checked (small_max, or a chunk).
 * A range that starts inside a fresh memo and runs past it (a body's next
 * piece) is checked only past its end and extends it, keeping its time:
 * a slow socket's short sends would otherwise walk the same MB of pages
 * again at each POLLOUT. */
static bool resident(struct rp_shard *sh, int file, uint64_t off, uint64_t len)
{
	struct res_slot *r;
	uint64_t now = coarse_ns();

	(void)stats(sh); /* the memo lives beside the shard's counters */
	r = &tls.res[(unsigned)file % RES_SLOTS];
	if (r->fd == file && off >= r->off && off <= r->end && now - r->at_ns < RES_TTL_NS) {
		if (off + len <= r->end)
			return true;
		if (!in_page_cache(file, r->end, off + len - r->end))
			return false;
		r->end = off + len;
		return true;
	}
	if (!in_page_cache(file, off, len))
		return false;
	r->fd = file;
	r->off = off;
	r->end = off + len;
	r->at_ns = now;
	return true;
}

/* Cached large bodies: sendfile(2) or splice(2) on the shard (filesend.h). */
static bool cached_by_splice(unsigned flags, uint64_t len)
{
	if (flags & RP_FILE_SEND_CACHED_SPLICE)
		return true;
	if (flags & RP_FILE_SEND_CACHED_SENDFILE)
		return false;
	return len > CACHED_SPLICE_MIN && len <= CACHED_SPLICE_MAX;
}

/* The pipe a cached body by splice needs: the whole body, so that it goes
 * in one fill and one send (what made splice the cheaper path there);
 * forced by the caller, any pipe. */
static size_t pipe_need(unsigned flags, uint64_t len)
{
	return (flags & RP_FILE_SEND_CACHED_SPLICE) ? 0 : (size_t)len;
}

int rp_file_send(struct rp_shard *sh, int sock, const struct iovec *hdr, unsigned nhdr, int file,
		 uint64_t off, uint64_t len, const struct rp_file_send_opts *opts,
		 rp_file_send_fn done, void *arg)
{
	struct rp_file_send_stats *st;
	size_t hlen = 0;
	struct fsend *f;
	int ret;

	if (!sh || sock < 0 || (len && file < 0) || !done || (nhdr && !hdr))
		return -EINVAL;
	/* a bit this library does not know (a caller built for a later one):
	 * refused, not ignored, since COPY_SMALL ignored means sendfile */
	if (opts && (opts->flags & ~(unsigned)(RP_FILE_SEND_MORE | RP_FILE_SEND_CACHED_SPLICE |
					       RP_FILE_SEND_CACHED_SENDFILE |
					       RP_FILE_SEND_COPY_SMALL)))
		return -EINVAL;
	/* the range must fit the kernel's signed file offsets (loff_t) */
	if (off > INT64_MAX || len > (uint64_t)INT64_MAX - off)
		return -EINVAL;
	for (unsigned i = 0; i < nhdr; i++)
		hlen += hdr[i].iov_len;
	if (hlen > RP_FILE_SEND_HDR_MAX)
		return -EINVAL;
	if (rp_shard_stopping(sh))
		return -ESHUTDOWN;
	f = rp_pool_alloc(rp_shard_pool(sh), sizeof(*f));
	if (!f)
		return -ENOMEM;
	memset(f, 0, sizeof(*f));
	f->sh = sh;
	f->sock = sock;
	f->file = file;
	f->off = off;
	f->left = len;
	f->flags = opts ? opts->flags : 0;
	f->chunk = opts && opts->chunk ? opts->chunk : CHUNK_DEFAULT;
	f->done = done;
	f->arg = arg;
	f->pipe[0] = f->pipe[1] = -1;
	f->hlen = hlen;
	/* no header, no copy: a body behind heads its caller sent (serve's
	 * pipelined answers) took a 64 B object for nothing, and a pool whose
	 * 64 B class had no span failed it (-ENOMEM) */
	f->hdr = hlen ? rp_pool_alloc(rp_shard_pool(sh), hlen) : NULL;
	if (hlen && !f->hdr) {
		rp_pool_free(f);
		return -ENOMEM;
	}
	for (unsigned i = 0, at = 0; i < nhdr; at += (unsigned)hdr[i].iov_len, i++)
		memcpy(f->hdr + at, hdr[i].iov_base, hdr[i].iov_len);

	st = stats(sh);
	if (len <= (opts && opts->small_max ? opts->small_max : SMALL_DEFAULT)) {
		st->calls[PATH_SMALL]++;
		/*
		 * A cached small body goes by sendfile(2) here and now, the header
		 * (if any) ahead of it with MSG_MORE: one syscall without a header,
		 * no ring round trip; the rest (a full socket) waits for POLLOUT as
		 * on the sendfile path. Not with RP_FILE_SEND_MORE: sendfile takes
		 * no MSG_MORE, and the linked send keeps the segment open; nor
		 * with RP_FILE_SEND_COPY_SMALL: the caller wants a copy (no
		 * wait for the peer's acknowledgement before the file may
		 * change, filesend.h).
		 */
		if (len && !hlen && !(f->flags & (RP_FILE_SEND_MORE | RP_FILE_SEND_COPY_SMALL)) &&
		    resident(sh, file, off, len)) {
			f->path = PATH_SENDFILE;
			f->acct = PATH_SMALL;
			st->small_direct++;
			goto pump_now;
		}
		f->path = PATH_SMALL;
		if (len && small_now(f)) {
			st->small_direct++;
			if (f->finished && !f->pending && (ret = end_soon(f)))
				goto fail;
			return 0;
		}
		ret = small_start(f);
		if (ret == -ENOMEM && !f->buf && !f->pending && !f->err) {
			/*
			 * No pool buffer of header + body (its 1..32 KB classes
			 * may be spent while the small ones a caller keeps room
			 * in are not): the body goes the large body's way, the
			 * header by a send and the body by sendfile(2) or splice
			 * from the file, which needs no buffer of its size.
			 * Counted in small_nomem; its bytes in the path taken.
			 */
			tls.small_nomem++;
			st->calls[PATH_SMALL]--; /* counted in the path taken */
			if (!len) {
				f->path = f->acct = PATH_SENDFILE; /* the header alone */
				st->calls[PATH_SENDFILE]++;
				goto pump_now;
			}
			goto large;
		}
		if (ret && !f->pending)
			goto fail;
		return 0;
	}
large:
	/* the first chunk decides the path: cachestat walks every page of its
	 * range, and over a whole 64 MB file at once that was 2.7% of serve's
	 * samples (perf); each later piece read on the shard is checked as it
	 * comes (leave_shard) */
	if (resident(sh, file, off, len < f->chunk ? len : f->chunk)) {
		f->path = PATH_SENDFILE;
		f->acct = PATH_SENDFILE;
		if (cached_by_splice(f->flags, len) && !pipe_get(f, pipe_need(f->flags, len))) {
			f->path = PATH_SPLICE; /* the splice machinery, filled here */
			f->fill_here = true;
			st->shard_splice++;
		}
		st->calls[PATH_SENDFILE]++;
	} else {
		f->path = f->acct = PATH_SPLICE;
		st->not_cached++;
		st->calls[PATH_SPLICE]++;
		ret = pipe_get(f, 0);
		if (ret) {
			/* no pipe (EMFILE, ENFILE): done() with its errno, nothing
			 * sent. sendfile(2) instead would read the disk on the
			 * shard, and nothing tells when a descriptor comes back;
			 * the caller sheds what it keeps (rp_file_send_shed, its
			 * own caches) or closes */
			fail(f, ret);
			goto end;
		}
	}
pump_now:
	pump(f);
end:
	/* all sent (or failed) at once: report from the loop */
	if (f->finished && !f->pending && (ret = end_soon(f)))
		goto fail;
	return 0;
fail:
	pipe_put(f);
	rp_pool_free(f->buf);
	rp_pool_free(f->hdr);
	rp_pool_free(f);
	return ret;
}
