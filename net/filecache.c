/* SPDX-License-Identifier: MIT */
/*
 * A bounded LRU of open files beneath a root (include/ringplane/filecache.h):
 * a hash of paths over a fixed array of entries, allocated once at create,
 * so a lookup never allocates.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <ringplane/filecache.h>

#include "clock.h"

#ifndef __NR_openat2
#define __NR_openat2 437 /* Linux 5.6, every architecture */
#endif
#ifndef RESOLVE_BENEATH
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_BENEATH 0x08
#endif

struct open_how_ {
	uint64_t flags, mode, resolve;
};

struct rp_file_cache {
	int root;
	unsigned cap, nbuckets, used;
	uint64_t revalidate_ns;
	struct rp_file_entry **buckets;
	struct rp_file_entry *entries; /* cap of them */
	struct rp_file_entry *free;    /* unused entries (via hnext) */
	struct rp_file_entry *lru_head, *lru_tail; /* head: most recent; unreferenced and referenced */
	struct rp_file_cache_stats st;
	/* entries evicted while referenced wait here for their last put */
	struct rp_file_entry *zombies;
	/* after rp_file_cache_destroy: the entries still held, each closed at
	 * its last put; the last of them frees what is left of the cache */
	bool destroyed;
	unsigned orphans;
	/* the owning thread (pthread_self), bound by the first get or put;
	 * 0 until then, so a cache made on one thread may be handed to the
	 * shard that uses it. Read by every get and put, from any thread:
	 * atomic, as is the count of the calls it refused. */
	_Atomic uintptr_t owner;
	_Atomic uint64_t wrong_thread;
};

/* The clock is net_now_ns (clock.h), the precise one:
 * CLOCK_MONOTONIC_COARSE lags by up to a tick, which stretched the
 * freshness bound by as much (a change was once first served 1009 ms after
 * it, with a 1 s period). */

static uint32_t hash_path(const char *p, size_t n)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)p[i]) * 16777619u;
	return h;
}

struct rp_file_cache *rp_file_cache_create(int root_fd, unsigned max_entries,
					   uint64_t revalidate_ns)
{
	struct rp_file_cache *c;

	if (root_fd < 0 || !max_entries || max_entries > (1u << 20)) {
		errno = EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->root = root_fd;
	c->cap = max_entries;
	c->revalidate_ns = revalidate_ns ? revalidate_ns : RP_FILE_CACHE_REVALIDATE_NS;
	for (c->nbuckets = 16; c->nbuckets < 2 * max_entries; c->nbuckets *= 2)
		;
	c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
	c->entries = calloc(max_entries, sizeof(*c->entries));
	if (!c->buckets || !c->entries) {
		free(c->buckets);
		free(c->entries);
		free(c);
		errno = ENOMEM;
		return NULL;
	}
	for (unsigned i = 0; i < max_entries; i++) {
		c->entries[i].fd = -1;
		c->entries[i].cache = c;
		c->entries[i].hnext = c->free;
		c->free = &c->entries[i];
	}
	return c;
}

/*
 * Whether the calling thread may use @c: it owns it, or nobody does yet
 * and it takes it now (the first get, put, shed or set_root binds it). A
 * refusal is counted and touches nothing else. No syscall, no lock: pthread_self reads the thread pointer, and a bound
 * cache costs one relaxed load and a compare.
 */
static bool owner_ok(struct rp_file_cache *c)
{
	uintptr_t me = (uintptr_t)pthread_self();
	uintptr_t o = atomic_load_explicit(&c->owner, memory_order_relaxed);

	if (__builtin_expect(o == me, 1))
		return true;
	if (!o && atomic_compare_exchange_strong_explicit(&c->owner, &o, me, memory_order_relaxed,
							  memory_order_relaxed))
		return true;
	atomic_fetch_add_explicit(&c->wrong_thread, 1, memory_order_relaxed);
	return false;
}

static void lru_unlink(struct rp_file_cache *c, struct rp_file_entry *e)
{
	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else
		c->lru_head = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		c->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

static void lru_front(struct rp_file_cache *c, struct rp_file_entry *e)
{
	e->lru_next = c->lru_head;
	e->lru_prev = NULL;
	if (c->lru_head)
		c->lru_head->lru_prev = e;
	c->lru_head = e;
	if (!c->lru_tail)
		c->lru_tail = e;
}

static void hash_unlink(struct rp_file_cache *c, struct rp_file_entry *e)
{
	struct rp_file_entry **pp = &c->buckets[e->hash & (c->nbuckets - 1)];

	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	e->hnext = NULL;
}

static void entry_close(struct rp_file_cache *c, struct rp_file_entry *e)
{
	if (e->fd >= 0) {
		close(e->fd);
		c->st.open_fds--;
	}
	e->fd = -1;
}

/* Out of the hash and the LRU. Closed now if nobody holds it, else at its
 * last put; the slot itself is reused only once it is closed. */
static void retire(struct rp_file_cache *c, struct rp_file_entry *e)
{
	hash_unlink(c, e);
	lru_unlink(c, e);
	c->used--;
	if (e->refs) {
		e->dead = true;
		e->hnext = c->zombies;
		c->zombies = e;
		return;
	}
	entry_close(c, e);
	e->hnext = c->free;
	c->free = e;
}

static void zombie_free(struct rp_file_cache *c, struct rp_file_entry *e)
{
	struct rp_file_entry **pp = &c->zombies;

	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	entry_close(c, e);
	e->dead = false;
	e->hnext = c->free;
	c->free = e;
}

/* openat2 of @path beneath the root with @flags; the fd or -errno. */
static int openat_beneath(struct rp_file_cache *c, const char *path, uint64_t flags)
{
	struct open_how_ how = { .flags = flags | O_CLOEXEC,
				 .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
	int fd = (int)syscall(__NR_openat2, c->root, path, &how, sizeof(how));

	return fd < 0 ? -errno : fd;
}

/* fstat @fd into @st; 0, or -EACCES when it is not a regular file. */
static int regular_file(int fd, struct stat *st)
{
	if (fstat(fd, st))
		return -errno;
	return S_ISREG(st->st_mode) ? 0 : -EACCES;
}

/*
 * Only regular files are opened for reading. An open for reading has side
 * effects on anything else: a FIFO's open waits for a writer (a shard
 * blocked for good), a device's open runs its driver. So the path is first
 * opened O_PATH (no open of the file itself) and checked; then that same
 * inode, not the path again (a rename or a symlink swapped in between could
 * put a device there), is opened for reading through /proc/self/fd, with
 * O_NONBLOCK | O_NOCTTY, and checked again. Without /proc the path is
 * opened a second time beneath the root, and O_NONBLOCK | O_NOCTTY keep a
 * FIFO or a terminal swapped in from blocking or becoming ours. O_NONBLOCK
 * is cleared on the regular file so its reads behave as before (splice(2)
 * passes an input file's O_NONBLOCK on as SPLICE_F_NONBLOCK).
 */
static int open_beneath(struct rp_file_cache *c, const char *path, struct stat *st)
{
	int pfd = openat_beneath(c, path, O_PATH), ret, flags, fd;
	char self[40];

	if (pfd < 0)
		return pfd;
	ret = regular_file(pfd, st);
	if (ret) {
		close(pfd);
		return ret;
	}
	snprintf(self, sizeof(self), "/proc/self/fd/%d", pfd);
	fd = open(self, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		fd = errno == ENOENT ? openat_beneath(c, path, O_RDONLY | O_NONBLOCK | O_NOCTTY)
				     : -errno;
	close(pfd);
	if (fd < 0)
		return fd;
	ret = regular_file(fd, st);
	if (!ret && ((flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)))
		ret = -errno;
	if (ret) {
		close(fd);
		return ret;
	}
	c->st.open_fds++;
	return fd;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

int rp_file_cache_get(struct rp_file_cache *c, const char *path, size_t len,
		      struct rp_file_entry **out)
{
	struct rp_file_entry *e;
	uint32_t h;
	uint64_t now;
	struct stat st;
	int fd;

	if (!c)
		return -EINVAL;
	if (!owner_ok(c))
		return -EPERM; /* another thread's cache: its table is not ours to read */
	if (!path || !out) {
		c->st.refused++; /* bad arguments: refused, and counted */
		return -EINVAL;
	}
	while (len && *path == '/') {
		path++;
		len--;
	}
	if (!len)
		path = ".", len = 1; /* the root itself: a directory, refused below */
	if (len >= RP_FILE_CACHE_PATH_MAX) {
		c->st.refused++;
		return -ENAMETOOLONG;
	}
	if (memchr(path, 0, len)) {
		c->st.refused++;
		return -EINVAL;
	}
	h = hash_path(path, len);
	now = net_now_ns();
	for (e = c->buckets[h & (c->nbuckets - 1)]; e; e = e->hnext)
		if (e->hash == h && e->len == len && !memcmp(e->path, path, len))
			break;
	if (e && now - e->checked_ns < c->revalidate_ns) {
		c->st.hits++;
		goto found;
	}
	if (e) {
		/* old enough to check: has the path got another file, or this
		 * file other bytes? @now was read before this fstatat, so a
		 * change after it is at most revalidate_ns old when the next
		 * check runs: that is the whole bound (filecache.h) */
		c->st.revalidations++;
		if (!fstatat(c->root, e->path, &st, 0) && same_file(&st, &e->st)) {
			e->checked_ns = now;
			c->st.hits++;
			goto found;
		}
		c->st.reopened++;
		retire(c, e);
	} else {
		c->st.misses++;
	}
	while (!c->free) {
		/* full: the least recently used entry nobody holds goes */
		struct rp_file_entry *v = c->lru_tail;

		while (v && v->refs)
			v = v->lru_prev;
		if (!v)
			return -EBUSY; /* every cached file is in use: the caller's bound */
		c->st.evicted++;
		retire(c, v);
	}
	e = c->free; /* off the free list while it opens: a shed below adds to it */
	c->free = e->hnext;
	memcpy(e->path, path, len);
	e->path[len] = 0;
	fd = open_beneath(c, e->path, &st);
	/* out of descriptors: the ones kept for reuse go first (a batch of
	 * the least recently used nobody holds, then the open again); each
	 * pass closes at least one, so at most cap passes */
	while ((fd == -EMFILE || fd == -ENFILE) && rp_file_cache_shed(c, RP_FILE_CACHE_SHED_BATCH))
		fd = open_beneath(c, e->path, &st);
	if (fd < 0) {
		e->hnext = c->free;
		c->free = e;
		c->st.refused++;
		return fd;
	}
	e->fd = fd;
	e->st = st;
	e->len = (uint16_t)len;
	e->hash = h;
	e->refs = 0;
	e->dead = false;
	e->checked_ns = now;
	e->hnext = c->buckets[h & (c->nbuckets - 1)];
	c->buckets[h & (c->nbuckets - 1)] = e;
	lru_front(c, e);
	c->used++;
	*out = e;
	e->refs++;
	return 0;
found:
	lru_unlink(c, e);
	lru_front(c, e);
	e->refs++;
	*out = e;
	return 0;
}

/* The last put of an entry held through rp_file_cache_destroy: its file
 * closes now, and the last such put frees the cache's memory. */
static void orphan_free(struct rp_file_cache *c, struct rp_file_entry *e)
{
	if (e->fd >= 0)
		close(e->fd);
	e->fd = -1;
	if (--c->orphans == 0) {
		free(c->entries);
		free(c);
	}
}

void rp_file_cache_put(struct rp_file_cache *c, struct rp_file_entry *e)
{
	(void)c; /* the entry knows its cache, which may be destroyed already */
	if (!e || !owner_ok(e->cache) || !e->refs)
		return;
	if (--e->refs == 0 && e->dead) {
		if (e->cache->destroyed)
			orphan_free(e->cache, e);
		else
			zombie_free(e->cache, e);
	}
}

unsigned rp_file_cache_shed(struct rp_file_cache *c, unsigned max)
{
	struct rp_file_entry *v, *prev;
	unsigned n = 0;

	/* binds an unbound cache, as get and put do: unbound, any thread got
	 * through and raced another's first get on the LRU */
	if (!c || !owner_ok(c))
		return 0;
	for (v = c->lru_tail; v && n < max; v = prev) {
		prev = v->lru_prev;
		if (v->refs)
			continue; /* a response's file: closed at its last put */
		retire(c, v);
		n++;
	}
	c->st.shed += n;
	return n;
}

void rp_file_cache_stats(const struct rp_file_cache *c, struct rp_file_cache_stats *out)
{
	if (!out)
		return;
	if (!c) {
		memset(out, 0, sizeof(*out));
		return;
	}
	*out = c->st;
	out->entries = c->used;
	out->wrong_thread = atomic_load_explicit(&c->wrong_thread, memory_order_relaxed);
}

int rp_file_cache_set_root(struct rp_file_cache *c, int root_fd)
{
	if (!c || root_fd < 0)
		return -EINVAL;
	if (!owner_ok(c)) /* binds an unbound cache (see shed) */
		return -EPERM;
	while (c->lru_head)
		retire(c, c->lru_head);
	c->root = root_fd;
	return 0;
}

/*
 * Every entry nobody holds is closed now. One still held (a response in
 * flight) keeps its file open and its memory until its last put, which
 * closes it (orphan_free): closing it here would hand its descriptor's
 * number to the next open, another file's bytes under that response, and
 * free the entry under the put the header allows. So the entries' array
 * and the struct itself outlive this call while any is held; the last put
 * frees them. A get's or put's fast path pays nothing for it: the put
 * looks at the cache only for an entry marked dead.
 */
void rp_file_cache_destroy(struct rp_file_cache *c)
{
	unsigned held = 0;

	if (!c)
		return;
	for (unsigned i = 0; i < c->cap; i++) {
		struct rp_file_entry *e = &c->entries[i];

		if (e->refs) {
			e->dead = true;
			held++;
		} else if (e->fd >= 0) {
			close(e->fd);
			e->fd = -1;
		}
	}
	free(c->buckets);
	c->buckets = NULL;
	if (held) {
		c->destroyed = true;
		c->orphans = held;
		return;
	}
	free(c->entries);
	free(c);
}
