/* SPDX-License-Identifier: MIT */
/*
 * ringplane filecache: a bounded LRU of open files under one root directory
 * (fd + stat), for a shard that serves files. Owned by one thread (a
 * shard); no locks.
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

struct rp_file_entry {
	int fd;		/* open O_RDONLY (blocking), valid until rp_file_cache_put */
	struct stat st; /* as of the last open or check */
	/* private */
	unsigned refs;
	uint64_t checked_ns;
	struct rp_file_entry *lru_prev, *lru_next, *hnext;
	uint32_t hash;
	bool dead; /* evicted or replaced: closed at the last put */
	uint16_t len;
	char path[RP_FILE_CACHE_PATH_MAX];
};

struct rp_file_cache_stats {
	uint64_t hits, misses, revalidations, reopened, evicted, refused;
	unsigned entries, open_fds;
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
 * Returns 0, or -EINVAL (a negative @root_fd).
 */
int rp_file_cache_set_root(struct rp_file_cache *c, int root_fd);

/* Close every file (entries still referenced are closed at their put). */
void rp_file_cache_destroy(struct rp_file_cache *c);

/*
 * rp_file_cache_get - the open file at @path (relative to the root, @len
 * bytes, no NUL needed; a leading '/' is skipped). Returns 0 and *@out with
 * a reference, or -ENOENT, -EACCES (not a regular file, or no permission),
 * -EXDEV (the path leads outside the root), -ENAMETOOLONG, -EMFILE... as
 * openat2 reports them, -EBUSY (every entry is held).
 */
int rp_file_cache_get(struct rp_file_cache *c, const char *path, size_t len,
		      struct rp_file_entry **out);

/* rp_file_cache_put - give back a reference from rp_file_cache_get. */
void rp_file_cache_put(struct rp_file_cache *c, struct rp_file_entry *e);

void rp_file_cache_stats(const struct rp_file_cache *c, struct rp_file_cache_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* RINGPLANE_FILECACHE_H */
