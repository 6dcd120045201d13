/* SPDX-License-Identifier: MIT */
/*
 * ringplane filecache: a bounded LRU of open files under one root directory
 * (fd + stat), for a shard that serves files. Owned by one thread (a
 * shard); no locks.
 *
 * Owner: the first of rp_file_cache_get, rp_file_cache_put,
 * rp_file_cache_shed and rp_file_cache_set_root binds the cache to its
 * calling thread (pthread_self), so a cache made on one thread may be
 * handed to the shard that uses it before any of those. From then on a get
 * from any other thread returns -EPERM, and a put, rp_file_cache_shed (0)
 * and rp_file_cache_set_root (-EPERM) from one do nothing; each such call
 * is counted in wrong_thread and touches nothing else (two threads sharing
 * one cache would corrupt its table: a get could loop for good). A put so
 * refused leaves its reference held: the entry stays pinned (open, never
 * evicted or shed) until a put on the owner's thread. The check is one
 * relaxed atomic load and a compare; no syscall, no lock. Stats and
 * destroy are not checked: destroy may follow the owner thread's end.
 *
 * Confinement: files are opened with openat2(2) on the root's fd with
 * RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS: no path, "..", absolute path or
 * symlink resolves outside the root (the kernel refuses with EXDEV); a
 * symlink that stays inside the root is followed. Only regular files are
 * handed out; anything else (a directory, FIFO, socket, device node) is
 * found by an O_PATH open and refused without being opened for reading (a
 * FIFO's open would wait for a writer, a device's runs its driver).
 *
 * Freshness: an entry is checked again (fstatat of its path) by the first
 * lookup at least one revalidation period (RP_FILE_CACHE_REVALIDATE_NS,
 * 0.5 s, by default) after its last check; a file replaced (another inode)
 * or rewritten (size, mtime or ctime changed) is opened again. The check's
 * time is read (CLOCK_MONOTONIC) before its fstatat, so every lookup that
 * starts one period or more after a change returns the changed file: with
 * the default, a change is served within 1 s with half a second to spare
 * for the request's own way, and a hot file costs one fstatat per period.
 * Bytes are always read from the open file itself, never copied, so a file
 * rewritten in place with its size unchanged is read fresh at once (only
 * its stat, and the validators made from it, wait for the check).
 *
 * References: an entry handed out by rp_file_cache_get stays open until
 * rp_file_cache_put, even if it is replaced meanwhile (a send in flight
 * keeps its file). A full cache evicts the least recently used entry that
 * nobody holds; when every entry is held, get fails with -EBUSY (size the
 * cache above the number of files in flight).
 *
 * Out of descriptors: the files the cache keeps open for reuse are
 * descriptors of the process. When a get's open fails with EMFILE or
 * ENFILE, the cache closes up to RP_FILE_CACHE_SHED_BATCH of its least
 * recently used entries that nobody holds and tries the open again, as
 * long as it fails so and something is left to close; only then does the
 * get fail with -EMFILE/-ENFILE. Its caller gives back the same way what
 * another open of its own found short (an accept, a pipe):
 * rp_file_cache_shed. Both count what they closed in shed.
 */
#ifndef RINGPLANE_FILECACHE_H
#define RINGPLANE_FILECACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rp_file_cache;

#define RP_FILE_CACHE_PATH_MAX 1024 /* longest path (relative to the root) cached */
#define RP_FILE_CACHE_REVALIDATE_NS 500000000ull /* default revalidation period */
/* Entries closed at once for an open out of descriptors: a file's first
 * open takes two for a moment (O_PATH, then the file), a pipe two, an
 * accept one; four covers any of them with one to spare for another
 * shard's open in the same table, while the rest of the cache stays warm */
#define RP_FILE_CACHE_SHED_BATCH 4u

struct rp_file_entry {
	int fd;		/* open O_RDONLY (blocking), valid until rp_file_cache_put */
	struct stat st; /* as of the last open or check */
	/* private */
	unsigned refs;
	uint64_t checked_ns;
	struct rp_file_entry *lru_prev, *lru_next, *hnext;
	struct rp_file_cache *cache; /* its own: a put past the destroy needs no @c */
	uint32_t hash;
	bool dead; /* evicted, replaced or its cache destroyed: closed at the last put */
	uint16_t len;
	char path[RP_FILE_CACHE_PATH_MAX];
};

struct rp_file_cache_stats {
	uint64_t hits, misses, revalidations, reopened, evicted;
	/* gets that failed: an open refused (-ENOENT, -EACCES, -EXDEV...), a
	 * path too long or with a NUL byte, a NULL @path or @out */
	uint64_t refused;
	/* entries closed to give their descriptor back: a get's open out of
	 * descriptors (EMFILE, ENFILE), or rp_file_cache_shed */
	uint64_t shed;
	unsigned entries, open_fds;
	/* calls from a thread other than the owner, refused (see Owner) */
	uint64_t wrong_thread;
};

/*
 * rp_file_cache_create - a cache of at most @max_entries open files under
 * the directory @root_fd (kept open by the caller for the cache's life),
 * rechecked after @revalidate_ns (0: RP_FILE_CACHE_REVALIDATE_NS). Returns it, or NULL with errno
 * (EINVAL, ENOMEM).
 */
struct rp_file_cache *rp_file_cache_create(int root_fd, unsigned max_entries,
					   uint64_t revalidate_ns);

/*
 * rp_file_cache_set_root - look up every later path beneath @root_fd
 * instead: a root directory replaced (a deploy renamed over it, a symlink
 * to it switched) is served from its new tree. Every entry is dropped at
 * once (those still referenced are closed at their put, their file
 * unchanged under the response that holds them). The caller keeps
 * @root_fd open for the cache's life and may close the old root now.
 * Returns 0, or -EINVAL (a NULL @c or a negative @root_fd), -EPERM (a
 * thread other than the owner: counted in wrong_thread).
 */
int rp_file_cache_set_root(struct rp_file_cache *c, int root_fd);

/*
 * rp_file_cache_destroy - close every file nobody holds and free the
 * cache. An entry still referenced stays open and valid (its fd, its st)
 * until its rp_file_cache_put, which closes it; the last such put frees
 * what the cache still used. So a response in flight keeps reading its
 * own file, and its descriptor's number is not reused under it. A put
 * after the destroy may pass the destroyed @c or NULL (an entry knows its
 * cache; @c is not read) and runs on the thread that owned the cache;
 * nothing else may be called on @c after its destroy.
 */
void rp_file_cache_destroy(struct rp_file_cache *c);

/*
 * rp_file_cache_get - the open file at @path (relative to the root, @len
 * bytes, no NUL needed; a leading '/' is skipped). Returns 0 and *@out with
 * a reference, or -ENOENT, -EACCES (not a regular file, or no permission),
 * -EXDEV (the path leads outside the root), -ENAMETOOLONG, -EMFILE... as
 * openat2 reports them, -EBUSY (every entry is held), -EINVAL (a NUL byte
 * in the path; a NULL @c, @path or @out, *@out untouched), -EPERM (called
 * from a thread other than the cache's owner: counted in wrong_thread,
 * *@out untouched). Every other failure but -EBUSY and a NULL @c is
 * counted in refused.
 */
int rp_file_cache_get(struct rp_file_cache *c, const char *path, size_t len,
		      struct rp_file_entry **out);

/* rp_file_cache_put - give back a reference from rp_file_cache_get (also
 * after rp_file_cache_destroy, which leaves held entries open until then),
 * on the owner's thread: from another it does nothing (counted in
 * wrong_thread) and the reference stays held, the entry pinned. */
void rp_file_cache_put(struct rp_file_cache *c, struct rp_file_entry *e);

/*
 * rp_file_cache_shed - close up to @max of the least recently used entries
 * nobody holds (an entry a response holds stays), giving their descriptors
 * back to the process: for a caller whose own open failed with EMFILE or
 * ENFILE, which tries it again when this returned more than 0. Returns how
 * many were closed (counted in shed); 0 when none is unreferenced, for a
 * NULL @c, or when called from a thread other than the owner (counted in
 * wrong_thread).
 */
unsigned rp_file_cache_shed(struct rp_file_cache *c, unsigned max);

/* rp_file_cache_stats - the counters into *@out; all zero for a NULL @c */
void rp_file_cache_stats(const struct rp_file_cache *c, struct rp_file_cache_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* RINGPLANE_FILECACHE_H */
