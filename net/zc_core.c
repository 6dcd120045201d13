/* SPDX-License-Identifier: MIT */
/*
 * Synchronous zero-copy calls: what the chooser (zc.c) and the strategies
 * (zc_sendfile.c, zc_splice.c, zc_cfr.c, zc_copy.c) share, below both: the
 * probe, the counters, and the calling thread's state: one cached pipe
 * (always empty between calls) and the table of bytes held for
 * non-blocking destinations that were full. Held bytes are kept in the
 * pipe they were spliced into (no copy) and, after a read/write fallback,
 * in a small spill buffer that is always older than what is in the pipe,
 * so a flush writes the spill first, then the pipe: order is kept.
 *
 * Every thread's pipe fds are also in a process-wide registry, so that a
 * fork child can close them all, not only the forking thread's: a pipe is
 * made and registered, unregistered and closed, under one mutex that the
 * pthread_atfork prepare handler takes, so a fork never comes between a
 * pipe2(2) and its registration nor between an unregistration and its
 * close(2). Only making or closing a pipe takes it (rare: a thread's
 * first splice, a full destination's hold and release, the thread's exit);
 * a call that finds its cached pipe takes no lock.
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
unsigned zc_env_f2s;			/* written once inside pthread_once, read after it */
size_t zc_lbuf_bytes = ZC_LBUF_BYTES; /* likewise */

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

bool zc_parse_copy_buf(const char *v, size_t *out)
{
	unsigned long long b, unit = 1;
	int saved = errno;
	char *end;

	/* digits first: strtoull would take a sign ("-N" wraps to 2^64 - N)
	 * and leading spaces */
	if (!v || *v < '0' || *v > '9')
		return false;
	errno = 0;
	b = strtoull(v, &end, 10);
	if (errno) { /* ERANGE: more than 2^64 - 1 */
		errno = saved;
		return false;
	}
	errno = saved;
	if (*end == 'K' || *end == 'k')
		unit = 1ull << 10, end++;
	else if (*end == 'M' || *end == 'm')
		unit = 1ull << 20, end++;
	/* the range before the multiplication: b * unit must not wrap
	 * (18014398509482000K was 16384 when shifted first) */
	if (*end || b > ZC_LBUF_MAX / unit || b * unit < ZC_LBUF_MIN)
		return false;
	*out = (size_t)(b * unit);
	return true;
}

/* RP_ZC_F2S=sendfile|copy|local-copy|auto: what rp_zc_file_to_socket does
 * without flags (operators, benchmarks; auto: the built-in default, as
 * unset); RP_ZC_COPY_BUF=BYTES[K|M]: the copy path's buffer. Anything
 * unreadable leaves the default, silently (zc.h says so). */
static void env_read(void)
{
	const char *v = getenv("RP_ZC_F2S");

	if (v && !strcmp(v, "sendfile"))
		zc_env_f2s = RP_ZC_F2S_SENDFILE;
	else if (v && !strcmp(v, "copy"))
		zc_env_f2s = RP_ZC_F2S_COPY;
	else if (v && !strcmp(v, "local-copy"))
		zc_env_f2s = RP_ZC_F2S_LOCAL_COPY;
	else if (v && !strcmp(v, "auto"))
		zc_env_f2s = 0; /* the built-in default */
	(void)zc_parse_copy_buf(getenv("RP_ZC_COPY_BUF"), &zc_lbuf_bytes);
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
	env_read();
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
	LD(f2s_local_copy);
	LD(f2s_forced_copy);
	LD(f2s_forced_sendfile);
	LD(f2s_local_sendfile);
	LD(f2s_remote_sendfile);
	LD(f2s_route_lookups);
	LD(splice_urgent);
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

/* Most pipes a thread has at once: the cached one and one per held slot
 * (zc_attach_pipe moves the cached pipe to a slot; only then is another
 * made). */
#define ZC_PIPES_MAX (RP_ZC_HELD_MAX + 1)

/* A thread's entry in the registry: the fds of its open pipes, fd[0..n)
 * (both ends of each), and its place in the list of threads that have
 * one. Every field is read and written under reg_lock; the entry lives
 * in the thread's TLS (zc_tls), linked from its first pipe until its
 * exit (the key destructor). */
struct zc_reg {
	struct zc_reg *next, *prev;
	bool linked;
	unsigned n;
	int fd[2 * ZC_PIPES_MAX];
};

struct zc_tls {
	bool registered, have_cache;
	bool exiting; /* zc_thread_exit has run: no pipe from here on */
	struct zc_reg reg;
	struct zc_pipe cache;
	struct zc_held held[RP_ZC_HELD_MAX];
	char *buf, *lbuf;
};

static _Thread_local struct zc_tls zt;
static pthread_key_t zc_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static bool key_ok, fork_ok;

/* The registry: every thread's zc_reg that has pipe fds (or had, since
 * its last fork or exit). */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct zc_reg *reg_head;

static void reg_link(struct zc_reg *r)
{
	if (r->linked)
		return;
	r->prev = NULL;
	r->next = reg_head;
	if (reg_head)
		reg_head->prev = r;
	reg_head = r;
	r->linked = true;
}

static void reg_unlink(struct zc_reg *r)
{
	if (!r->linked)
		return;
	if (r->prev)
		r->prev->next = r->next;
	else
		reg_head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->next = r->prev = NULL;
	r->linked = false;
}

static void reg_forget(struct zc_reg *r, int fd)
{
	for (unsigned i = 0; i < r->n; i++) {
		if (r->fd[i] == fd) {
			r->fd[i] = r->fd[--r->n];
			return;
		}
	}
}

/* A pipe of the calling thread: out of the registry and closed, both
 * under reg_lock (a fork in between would leave the child an fd nobody
 * closes, or, closed first, have the child close a number another
 * thread has reused meanwhile). */
static void pipe_close(struct zc_pipe *p)
{
	if (p->rd >= 0 || p->wr >= 0) {
		(void)pthread_mutex_lock(&reg_lock);
		reg_forget(&zt.reg, p->rd);
		reg_forget(&zt.reg, p->wr);
		if (p->rd >= 0)
			close(p->rd);
		if (p->wr >= 0)
			close(p->wr);
		(void)pthread_mutex_unlock(&reg_lock);
	}
	p->rd = p->wr = -1;
	p->held = 0;
}

/* pipe2(2) and the registration of both fds, under reg_lock; 0 or -1
 * with errno (EMFILE, ENFILE; ENOSPC: no room in the entry, which the
 * bound ZC_PIPES_MAX rules out). */
static int pipe_open(int fds[2])
{
	int rc = -1;

	(void)pthread_mutex_lock(&reg_lock);
	if (zt.reg.n + 2 > 2 * ZC_PIPES_MAX) {
		errno = ENOSPC;
	} else if (pipe2(fds, O_CLOEXEC) == 0) {
		zt.reg.fd[zt.reg.n++] = fds[0];
		zt.reg.fd[zt.reg.n++] = fds[1];
		reg_link(&zt.reg);
		rc = 0;
	}
	(void)pthread_mutex_unlock(&reg_lock);
	return rc;
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

/* pthread key destructor: the thread is exiting; its pipes and buffers
 * go, and its registry entry (in its TLS, about to be freed or reused by
 * a new thread) leaves the list. @arg is the exiting thread's &zt. */
static void zc_thread_exit(void *arg)
{
	struct zc_tls *t = arg;

	for (unsigned i = 0; i < RP_ZC_HELD_MAX; i++) {
		if (t->held[i].used) {
			if (t->held[i].has_pipe)
				pipe_close(&t->held[i].p);
			t->held[i].used = false;
		}
		free(t->held[i].spill); /* a free slot keeps one after a fork */
		t->held[i].spill = NULL;
	}
	if (t->have_cache)
		pipe_close(&t->cache);
	t->have_cache = false;
	free(t->buf);
	t->buf = NULL;
	free(t->lbuf);
	t->lbuf = NULL;
	(void)pthread_mutex_lock(&reg_lock);
	reg_unlink(&t->reg);
	(void)pthread_mutex_unlock(&reg_lock);
	t->registered = false;
	/* A thread-key destructor of the application's may call us after
	 * this, in glibc's last round (PTHREAD_DESTRUCTOR_ITERATIONS), when
	 * ours would not run again: a pipe made then would stay open and
	 * registered in this dying TLS, which a new thread may get, relink
	 * and so cut other entries out of the list. So no pipe after exit
	 * (pipe_fail, the read/write path), and no buffer kept past the call
	 * (zc_buf_get, zc_hold_buf); a new thread's TLS starts with the flag
	 * clear. */
	t->exiting = true;
}

/* pthread_atfork prepare and parent handlers: the fork happens with
 * reg_lock held by the forking thread, so no other thread is between a
 * pipe2 and its registration, or an unregistration and its close: the
 * registry the child inherits names exactly the pipe fds it inherits.
 * (A thread holding reg_lock makes no call that could wait on the fork:
 * pipe2, close.) */
static void zc_fork_prepare(void)
{
	(void)pthread_mutex_lock(&reg_lock);
}

static void zc_fork_parent(void)
{
	(void)pthread_mutex_unlock(&reg_lock);
}

/*
 * pthread_atfork child handler, run in a fork(2) child by the thread that
 * forked, its only thread, with reg_lock still held (zc_fork_prepare).
 * Every pipe of every thread is the parent's pipe too (one pipe buffer,
 * two processes' fds): a child relaying through the forking thread's
 * while the parent does spliced each one's bytes into the other's
 * connection; the other threads' do not run in the child, and nobody there
 * could ever use or close their fds (one leak per thread per fork, each
 * pipe kept alive as long as the child lives). So the child closes every
 * fd in the registry (close(2) only: no malloc or free, which POSIX does
 * not allow a fork child of a threaded process until it execs) and
 * empties it. The other threads' held bytes go with their pipes: theirs
 * to write, in the parent. Their TLS (and the registry entries in it) is
 * dead memory in the child, which glibc may hand to a new thread: the list
 * is left empty, not pointing into it.
 * The forking thread also forgets what it held for a destination (the
 * parent still holds it: written by the child too, it would reach the
 * peer twice): rp_zc_held says 0, each slot is freed, its spill buffer
 * kept for the slot's next use (free(3) is not async-signal-safe); its
 * next call makes a pipe of its own. The buffers are plain memory,
 * private after the fork: kept.
 */
static void zc_fork_child(void)
{
	for (struct zc_reg *r = reg_head, *next; r; r = next) {
		next = r->next;
		for (unsigned i = 0; i < r->n; i++)
			close(r->fd[i]);
		r->n = 0;
		r->next = r->prev = NULL;
		r->linked = false;
	}
	reg_head = NULL;
	for (unsigned i = 0; i < RP_ZC_HELD_MAX; i++) {
		struct zc_held *h = &zt.held[i];
		char *spill = h->spill;

		if (!h->used)
			continue;
		memset(h, 0, sizeof(*h)); /* counters and pipe (closed above) gone, slot free */
		h->spill = spill;
	}
	zt.cache.rd = zt.cache.wr = -1; /* closed above */
	zt.have_cache = false;
	(void)pthread_mutex_unlock(&reg_lock);
}

static void key_make(void)
{
	key_ok = pthread_key_create(&zc_key, zc_thread_exit) == 0;
	fork_ok = pthread_atfork(zc_fork_prepare, zc_fork_parent, zc_fork_child) == 0;
}

/*
 * The key and the fork handlers are made when the library is loaded,
 * before main and before any handler the application registers itself:
 * prepare handlers run in reverse order of registration (parent and child
 * handlers in order), so ringplane's prepare runs after every prepare
 * registered later, and takes reg_lock last. An application's prepare
 * that takes its lock M therefore runs first, and a thread holding M
 * around rp_zc_* calls (which take reg_lock inside) keeps the same order,
 * M then reg_lock: no deadlock. Registered at the first zc call instead,
 * after such a handler, ours ran first and the fork could wait forever
 * (the forking thread holding reg_lock and waiting for M, the other
 * holding M and waiting for reg_lock). A zc call from an earlier
 * constructor still makes them there (pthread_once).
 */
__attribute__((constructor)) static void zc_core_init(void)
{
	(void)pthread_once(&key_once, key_make);
}

/* Whether the fork handlers are in place: without them (pthread_atfork's
 * ENOMEM, once per process) no pipe is made and no byte held, so that a
 * child never shares either (the read/write fallback runs, pipe_fail
 * counted; a full destination is waited for). */
static bool zc_fork_safe(void)
{
	(void)pthread_once(&key_once, key_make);
	return fork_ok;
}

/* The key destructor armed for this thread: true once it is. */
static bool zc_register(void)
{
	if (zt.registered)
		return true;
	(void)pthread_once(&key_once, key_make);
	if (key_ok && pthread_setspecific(zc_key, &zt) == 0)
		zt.registered = true;
	return zt.registered;
}

struct zc_pipe *zc_pipe_get(void)
{
	int fds[2], sz;

	if (zt.have_cache)
		return &zt.cache;
	/* A pipe only with the fork handlers in place and the destructor
	 * armed: without it the thread's exit would neither close the pipe
	 * nor take its registry entry, in its dying TLS, out of the list. */
	if (zt.exiting || !zc_fork_safe() || !zc_register() || pipe_open(fds) < 0) {
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
	return &zt.cache;
}

/* After zc_thread_exit (an application's key destructor calling us in
 * glibc's last round) a buffer kept in zt would never be freed: our
 * destructor does not run again. So the 64 KB buffer is then the call's
 * own, malloc'd here and freed by zc_buf_put, and the large one is not
 * had at all (the copy path takes the 64 KB one, as when malloc fails). */
char *zc_buf_get(void)
{
	if (!zt.buf) {
		if (zt.exiting)
			return malloc(ZC_BUF_BYTES);
		zt.buf = malloc(ZC_BUF_BYTES);
		(void)zc_register();
	}
	return zt.buf;
}

char *zc_lbuf_get(void)
{
	if (!zt.lbuf && !zt.exiting) {
		zt.lbuf = malloc(zc_lbuf_bytes);
		(void)zc_register();
	}
	return zt.lbuf;
}

bool zc_exited(void)
{
	return zt.exiting;
}

void zc_buf_put(char *buf)
{
	if (buf != zt.buf && buf != zt.lbuf)
		free(buf); /* one zc_buf_get made for this call only */
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
			char *spill = zt.held[i].spill; /* kept by a fork (zc_fork_child) */

			h = &zt.held[i];
			memset(h, 0, sizeof(*h));
			h->spill = spill;
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
	/* no spill after exit (it would never be freed, as zc_buf_get's
	 * buffers): the caller waits for @dst instead */
	if (!h->spill && !zt.exiting && zc_fork_safe()) {
		h->spill = malloc(ZC_BUF_BYTES);
		(void)zc_register();
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
			(void)zc_register();
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
			/*
			 * Not met in normal use: the pipe is blocking and we
			 * hold its write end, so with bytes in it read(2)
			 * neither returns 0 nor fails; only an fd closed behind
			 * our back (EBADF) gets here. Never reuse the pipe. @p
			 * is the cached pipe or a held one (rp_zc_drop): only
			 * the cached one's flag goes, or the cached pipe,
			 * still open, would be forgotten and its fds leaked.
			 */
			pipe_close(p);
			if (p == &zt.cache)
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

