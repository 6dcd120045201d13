/* SPDX-License-Identifier: MIT */
/*
 * Synchronous zero-copy calls (include/ringplane/zc.h): the chooser. Each
 * public call walks an ordered list of strategies (sendfile -> splice ->
 * read/write; copy_file_range -> read/write) and moves to the next one
 * when the kernel refuses the fds, counting the reason; the strategies live
 * in zc_sendfile.c, zc_splice.c, zc_cfr.c and zc_copy.c (as Redis keeps
 * one file per ae backend).
 *
 * Also here: the probe, the counters, and the calling thread's state: one
 * cached pipe (always empty between calls) and the table of bytes held for
 * non-blocking destinations that were full. Held bytes are kept in the
 * pipe they were spliced into (no copy) and, after a read/write fallback,
 * in a small spill buffer that is always older than what is in the pipe,
 * so a flush writes the spill first, then the pipe: order is kept.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zc_impl.h"

struct zc_counters zc_ctr;
_Atomic bool zc_have_sendfile = true, zc_have_splice = true, zc_have_cfr = true;

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static const char *backend = "none"; /* written once inside pthread_once, read after it */

/* An invalid fd answers EBADF where the syscall exists, ENOSYS where it
 * does not (an old kernel, a seccomp filter); splice needs len > 0, it
 * returns 0 for len 0 before looking at the fds. Any other answer (a
 * filter's EPERM) leaves the call to find out and fall back, counted. */
static bool syscall_present(long r)
{
	return r >= 0 || errno != ENOSYS;
}

static void probe(void)
{
	bool sf = syscall_present(sendfile(-1, -1, NULL, 1));
	bool sp = syscall_present(splice(-1, NULL, -1, NULL, 1, 0));
	bool cfr = syscall_present(copy_file_range(-1, NULL, -1, NULL, 1, 0));

	atomic_store_explicit(&zc_have_sendfile, sf, memory_order_relaxed);
	atomic_store_explicit(&zc_have_splice, sp, memory_order_relaxed);
	atomic_store_explicit(&zc_have_cfr, cfr, memory_order_relaxed);
	backend = sf && sp ? "sendfile+splice" : sf ? "sendfile" : "none";
}

void zc_probe(void)
{
	(void)pthread_once(&probe_once, probe);
}

const char *rp_zc_backend_name(void)
{
	zc_probe(); /* pthread_once orders the probe's stores before this load */
	return backend;
}

void rp_zc_stats(struct rp_zc_stats *out)
{
#define LD(f) out->f = atomic_load_explicit(&zc_ctr.f, memory_order_relaxed)
	memset(out, 0, sizeof(*out));
	LD(zc_bytes);
	LD(copied_bytes);
	LD(sendfile_calls);
	LD(splice_calls);
	LD(cfr_calls);
	LD(copy_calls);
	LD(sendfile_einval);
	LD(sendfile_enosys);
	LD(splice_einval);
	LD(splice_enosys);
	LD(pipe_fail);
	LD(cfr_exdev);
	LD(cfr_enosys);
	LD(cfr_eopnotsupp);
	LD(cfr_einval);
	LD(cfr_zero);
	LD(held_bytes);
	LD(held_busy);
#undef LD
}

/* ---- the calling thread's state ---- */

struct zc_held {
	int dst;
	bool used, has_pipe, no_splice;
	struct zc_pipe p;
	char *spill; /* ZC_BUF_BYTES, allocated on first need */
	size_t soff, slen;
};

struct zc_tls {
	bool registered, have_cache;
	struct zc_pipe cache;
	struct zc_held held[RP_ZC_HELD_MAX];
	char *buf;
};

static _Thread_local struct zc_tls zt;
static pthread_key_t zc_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static bool key_ok;

static void pipe_close(struct zc_pipe *p)
{
	close(p->rd);
	close(p->wr);
	p->rd = p->wr = -1;
	p->held = 0;
}

static void held_release(struct zc_held *h)
{
	if (h->has_pipe) {
		if (h->p.held == 0 && !zt.have_cache) {
			zt.cache = h->p;
			zt.have_cache = true;
		} else {
			pipe_close(&h->p);
		}
	}
	free(h->spill);
	memset(h, 0, sizeof(*h));
}

/* pthread key destructor: the thread is exiting; its pipes and buffers go. */
static void zc_thread_exit(void *arg)
{
	struct zc_tls *t = arg;

	for (unsigned i = 0; i < RP_ZC_HELD_MAX; i++) {
		if (t->held[i].used) {
			if (t->held[i].has_pipe)
				pipe_close(&t->held[i].p);
			free(t->held[i].spill);
			t->held[i].used = false;
		}
	}
	if (t->have_cache)
		pipe_close(&t->cache);
	t->have_cache = false;
	free(t->buf);
	t->buf = NULL;
	t->registered = false;
}

static void key_make(void)
{
	key_ok = pthread_key_create(&zc_key, zc_thread_exit) == 0;
}

static void zc_register(void)
{
	if (zt.registered)
		return;
	(void)pthread_once(&key_once, key_make);
	if (key_ok && pthread_setspecific(zc_key, &zt) == 0)
		zt.registered = true;
}

struct zc_pipe *zc_pipe_get(void)
{
	int fds[2], sz;

	if (zt.have_cache)
		return &zt.cache;
	if (pipe2(fds, O_CLOEXEC) < 0) {
		ZC_ADD(pipe_fail, 1);
		return NULL;
	}
	/* 256 KB where fs.pipe-max-size and pipe-user-pages-soft allow; the
	 * default 64 KB otherwise (one splice then moves less, nothing else). */
	(void)fcntl(fds[1], F_SETPIPE_SZ, (int)ZC_PIPE_BYTES);
	sz = fcntl(fds[1], F_GETPIPE_SZ);
	zt.cache.rd = fds[0];
	zt.cache.wr = fds[1];
	zt.cache.cap = sz > 0 ? (size_t)sz : ZC_PIPE_MIN;
	zt.cache.held = 0;
	zt.have_cache = true;
	zc_register();
	return &zt.cache;
}

char *zc_buf_get(void)
{
	if (!zt.buf) {
		zt.buf = malloc(ZC_BUF_BYTES);
		zc_register();
	}
	return zt.buf;
}

static struct zc_held *held_find(int dst)
{
	for (unsigned i = 0; i < RP_ZC_HELD_MAX; i++)
		if (zt.held[i].used && zt.held[i].dst == dst)
			return &zt.held[i];
	return NULL;
}

static struct zc_held *held_new(int dst)
{
	struct zc_held *h = held_find(dst);

	if (h)
		return h;
	for (unsigned i = 0; i < RP_ZC_HELD_MAX; i++) {
		if (!zt.held[i].used) {
			h = &zt.held[i];
			memset(h, 0, sizeof(*h));
			h->used = true;
			h->dst = dst;
			return h;
		}
	}
	return NULL;
}

bool zc_hold_room(int dst)
{
	if (held_find(dst))
		return true;
	for (unsigned i = 0; i < RP_ZC_HELD_MAX; i++)
		if (!zt.held[i].used)
			return true;
	return false;
}

bool zc_attach_pipe(int dst, struct zc_pipe *p)
{
	struct zc_held *h;

	if (p != &zt.cache || !zt.have_cache)
		return false;
	h = held_new(dst);
	if (!h || h->has_pipe)
		return false;
	h->p = *p;
	h->has_pipe = true;
	zt.have_cache = false;
	return true;
}

bool zc_hold_buf(int dst, const char *buf, size_t len)
{
	struct zc_held *h;

	if (len > ZC_BUF_BYTES)
		return false;
	h = held_new(dst);
	if (!h)
		return false;
	/* Only called with nothing held for dst (flushed first), so the
	 * spill is empty and older than any pipe content. */
	if (h->slen || h->has_pipe)
		return false;
	if (!h->spill) {
		h->spill = malloc(ZC_BUF_BYTES);
		zc_register();
	}
	if (!h->spill) {
		held_release(h);
		return false;
	}
	memcpy(h->spill, buf, len);
	h->soff = 0;
	h->slen = len;
	return true;
}

ssize_t zc_write_some(int fd, const char *buf, size_t len)
{
	size_t done = 0;
	bool sock = true;

	while (done < len) {
		ssize_t n = sock ? send(fd, buf + done, len - done, MSG_NOSIGNAL)
				 : write(fd, buf + done, len - done);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == ENOTSOCK && sock) {
			sock = false;
			continue;
		}
		if (n == 0)
			errno = EIO;
		return done ? (ssize_t)done : -errno;
	}
	return (ssize_t)done;
}

int zc_held_flush(int dst)
{
	struct zc_held *h = held_find(dst);
	ssize_t n;
	int err;

	if (!h)
		return 0;
	for (;;) {
		if (h->slen) {
			n = zc_write_some(dst, h->spill + h->soff, h->slen);
			if (n < 0) {
				err = (int)n;
				if (err == -EAGAIN || err == -EWOULDBLOCK)
					return -EAGAIN;
				goto fail;
			}
			ZC_ADD(copied_bytes, n);
			h->soff += (size_t)n;
			h->slen -= (size_t)n;
			if (h->slen)
				return -EAGAIN; /* a short send: dst is full */
			continue;
		}
		if (!h->has_pipe || h->p.held == 0)
			break;
		if (!h->no_splice) {
			n = splice(h->p.rd, NULL, dst, NULL, h->p.held, SPLICE_F_MOVE);
			if (n > 0) {
				h->p.held -= (size_t)n;
				ZC_ADD(zc_bytes, n);
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return -EAGAIN;
			if (n < 0 && errno != EINVAL) {
				err = -errno;
				goto fail;
			}
			/* dst refuses splice (O_APPEND, a file type without
			 * splice_write; n == 0 cannot happen with bytes in the
			 * pipe, treated the same): through the spill buffer. */
			ZC_ADD(splice_einval, 1);
			h->no_splice = true;
		}
		if (!h->spill) {
			h->spill = malloc(ZC_BUF_BYTES);
			zc_register();
			if (!h->spill) {
				err = -ENOMEM;
				goto fail;
			}
		}
		do
			n = read(h->p.rd, h->spill,
				 h->p.held < ZC_BUF_BYTES ? h->p.held : ZC_BUF_BYTES);
		while (n < 0 && errno == EINTR);
		if (n <= 0) {
			err = n < 0 ? -errno : -EIO;
			goto fail;
		}
		h->p.held -= (size_t)n;
		h->soff = 0;
		h->slen = (size_t)n;
	}
	held_release(h);
	return 0;
fail:
	/* dst is gone (EPIPE, ECONNRESET...): what was held for it is dropped */
	if (h->has_pipe)
		pipe_close(&h->p);
	h->has_pipe = false;
	held_release(h);
	return err;
}

void zc_pipe_drain(struct zc_pipe *p)
{
	char sink[4096];

	while (p->held) {
		ssize_t n = read(p->rd, sink, p->held < sizeof(sink) ? p->held : sizeof(sink));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* cannot happen with bytes in the pipe; never reuse it */
			pipe_close(p);
			zt.have_cache = false;
			return;
		}
		p->held -= (size_t)n;
	}
}

size_t rp_zc_held(int dst)
{
	struct zc_held *h = held_find(dst);

	return h ? h->slen + (h->has_pipe ? h->p.held : 0) : 0;
}

size_t rp_zc_drop(int dst)
{
	struct zc_held *h = held_find(dst);
	size_t n;

	if (!h)
		return 0;
	n = rp_zc_held(dst);
	if (h->has_pipe)
		zc_pipe_drain(&h->p);
	if (h->has_pipe && h->p.rd < 0)
		h->has_pipe = false;
	held_release(h);
	return n;
}

/* ---- the chooser ---- */

enum { S_SENDFILE, S_SPLICE, S_COPY };

/* Calls per strategy: once per public call in which it ran. */
static void count_call(bool *seen, int strat)
{
	if (seen[strat])
		return;
	seen[strat] = true;
	if (strat == S_SENDFILE)
		ZC_ADD(sendfile_calls, 1);
	else if (strat == S_SPLICE)
		ZC_ADD(splice_calls, 1);
	else
		ZC_ADD(copy_calls, 1);
}

static int next_after_sendfile(void)
{
	return atomic_load_explicit(&zc_have_splice, memory_order_relaxed) ? S_SPLICE : S_COPY;
}

ssize_t rp_zc_file_to_socket(int sock, int file, off_t *off, size_t count)
{
	bool seen[3] = {false, false, false};
	struct stat st;
	bool fifo, seekable;
	size_t done = 0;
	ssize_t n = 0;
	int strat, r;

	if (sock < 0 || file < 0)
		return -EBADF;
	if (off && *off < 0)
		return -EINVAL;
	zc_probe();
	r = zc_held_flush(sock); /* bytes held for sock go before any new ones */
	if (r < 0)
		return r;
	if (count == 0)
		return 0;
	if (fstat(file, &st) < 0)
		return -errno;
	fifo = S_ISFIFO(st.st_mode);
	seekable = S_ISREG(st.st_mode) || S_ISBLK(st.st_mode);
	if (off && !seekable && !S_ISCHR(st.st_mode))
		return -ESPIPE;
	/* an unseekable source cannot be moved back: a short send keeps the
	 * rest for sock, which needs a free slot */
	if (!seekable && !zc_hold_room(sock)) {
		ZC_ADD(held_busy, 1);
		return -EBUSY;
	}

	if (atomic_load_explicit(&zc_have_sendfile, memory_order_relaxed))
		strat = S_SENDFILE;
	else
		strat = next_after_sendfile();
	while (done < count) {
		size_t chunk = count - done < ZC_CHUNK_MAX ? count - done : ZC_CHUNK_MAX;

		count_call(seen, strat);
		switch (strat) {
		case S_SENDFILE:
			n = zc_sendfile_step(sock, file, off, chunk);
			if (n == -EINVAL) {
				ZC_ADD(sendfile_einval, 1);
				strat = next_after_sendfile();
				continue;
			}
			if (n == -ENOSYS) {
				ZC_ADD(sendfile_enosys, 1);
				atomic_store_explicit(&zc_have_sendfile, false,
						      memory_order_relaxed);
				strat = next_after_sendfile();
				continue;
			}
			break;
		case S_SPLICE:
			n = zc_splice_file_step(sock, file, off, chunk, fifo);
			if (n == -EINVAL || n == -ENOSYS || n == ZC_NOPIPE) {
				if (n == -EINVAL)
					ZC_ADD(splice_einval, 1);
				if (n == -ENOSYS) {
					ZC_ADD(splice_enosys, 1);
					atomic_store_explicit(&zc_have_splice, false,
							      memory_order_relaxed);
				}
				strat = S_COPY;
				continue;
			}
			break;
		default:
			n = zc_copy_file_step(sock, file, off, chunk, seekable);
			break;
		}
		if (n <= 0)
			break;
		done += (size_t)n;
		/* an unseekable source that left bytes held: sock is full */
		if (!seekable && rp_zc_held(sock))
			return (ssize_t)done;
	}
	if (n < 0 && (n == -EAGAIN || n == -EWOULDBLOCK))
		return done ? (ssize_t)done : -EAGAIN;
	if (n < 0)
		return n;
	return (ssize_t)done;
}

ssize_t rp_zc_socket_relay(int dst, int src, size_t count)
{
	ssize_t n;
	int r;

	if (dst < 0 || src < 0)
		return -EBADF;
	zc_probe();
	r = zc_held_flush(dst);
	if (r < 0)
		return r;
	if (count == 0)
		return 0;
	if (!zc_hold_room(dst)) {
		ZC_ADD(held_busy, 1);
		return -EBUSY;
	}
	if (atomic_load_explicit(&zc_have_splice, memory_order_relaxed)) {
		ZC_ADD(splice_calls, 1);
		n = zc_splice_relay_step(dst, src, count);
		if (n == -EINVAL) {
			ZC_ADD(splice_einval, 1);
		} else if (n == -ENOSYS) {
			ZC_ADD(splice_enosys, 1);
			atomic_store_explicit(&zc_have_splice, false, memory_order_relaxed);
		} else if (n != ZC_NOPIPE) {
			return n == -EWOULDBLOCK ? -EAGAIN : n;
		}
	}
	ZC_ADD(copy_calls, 1);
	n = zc_copy_relay_step(dst, src, count);
	return n == -EWOULDBLOCK ? -EAGAIN : n;
}

ssize_t rp_zc_file_copy(int dst, int src, off_t *off_in, off_t *off_out, size_t count)
{
	bool cfr_seen = false, copy_seen = false, cfr, zero;
	size_t done = 0;
	ssize_t n = 0;

	if (dst < 0 || src < 0)
		return -EBADF;
	if ((off_in && *off_in < 0) || (off_out && *off_out < 0))
		return -EINVAL;
	zc_probe();
	cfr = atomic_load_explicit(&zc_have_cfr, memory_order_relaxed);
	while (done < count) {
		size_t chunk = count - done < ZC_CHUNK_MAX ? count - done : ZC_CHUNK_MAX;

		if (cfr) {
			if (!cfr_seen)
				ZC_ADD(cfr_calls, 1);
			cfr_seen = true;
			n = zc_cfr_step(dst, src, off_in, off_out, chunk);
			if (n > 0) {
				done += (size_t)n;
				continue;
			}
			switch (n) {
			case 0:
				/* EOF, or a file that reports size 0 (/proc,
				 * sysfs): read(2) decides, below */
				break;
			case -EXDEV:
				ZC_ADD(cfr_exdev, 1);
				break;
			case -ENOSYS:
				ZC_ADD(cfr_enosys, 1);
				atomic_store_explicit(&zc_have_cfr, false, memory_order_relaxed);
				break;
			case -EOPNOTSUPP:
				ZC_ADD(cfr_eopnotsupp, 1);
				break;
			case -EINVAL:
				ZC_ADD(cfr_einval, 1);
				break;
			default:
				goto out;
			}
			cfr = false;
			if (!copy_seen)
				ZC_ADD(copy_calls, 1);
			copy_seen = true;
			zero = n == 0;
			n = zc_copy_fcopy_step(dst, src, off_in, off_out, chunk);
			if (n > 0 && zero)
				ZC_ADD(cfr_zero, 1); /* read(2) found what cfr did not */
			if (n > 0) {
				done += (size_t)n;
				continue;
			}
			goto out;
		}
		if (!copy_seen)
			ZC_ADD(copy_calls, 1);
		copy_seen = true;
		n = zc_copy_fcopy_step(dst, src, off_in, off_out, chunk);
		if (n <= 0)
			goto out;
		done += (size_t)n;
	}
out:
	if (n < 0 && (n == -EAGAIN || n == -EWOULDBLOCK))
		return done ? (ssize_t)done : -EAGAIN;
	if (n < 0)
		return n;
	return (ssize_t)done;
}
