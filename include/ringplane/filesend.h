/* SPDX-License-Identifier: MIT */
/*
 * ringplane filesend: a header followed by a byte range of a file, sent to
 * a socket as one operation on a shard, with no user-space copy of the
 * body where it can be avoided: the shape of an HTTP response and of a
 * Kafka fetch (size, header, metadata, then log-segment bytes).
 *
 * Paths, chosen per call and counted (rp_file_send_stats):
 * - small: body <= opts.small_max (default 16 KB). In the page cache: sent
 *   at once from the shard, behind a header by a RWF_NOWAIT read into pool
 *   memory and one send, without one by sendfile(2) (residency by
 *   cachestat, remembered per fd for 100 ms) unless RP_FILE_SEND_COPY_SMALL
 *   or RP_FILE_SEND_MORE is set (then read and sent from pool memory, a
 *   copy, as with a header: sendfile takes no MSG_MORE, and a copy is
 *   done with the file once it is sent; unless the pool has no buffer
 *   for it: RP_FILE_SEND_COPY_SMALL below); what a full socket does not
 *   take waits for room. Otherwise the body is read into pool memory
 *   behind a copy of the header by the ring, the read linked to the send
 *   (one submit, the send runs only after a full read). With no pool
 *   buffer of header + body to be had, a small body takes the sendfile or
 *   splice path below instead of failing (rp_file_send_small_nomem);
 * - sendfile: a larger body whose pages are in the page cache (cachestat(2),
 *   or a RWF_NOWAIT probe where the kernel lacks it): the header with
 *   MSG_MORE, then sendfile(2) on the shard thread in chunks of opts.chunk
 *   (default 2 MB) while the socket takes them, at most 1 MB per turn
 *   before the shard's other connections run, waiting for POLLOUT from
 *   the ring when it is full; or, for bodies above 256 KB up to 1 MB by
 *   default (and any with RP_FILE_SEND_CACHED_SPLICE), splice(2) file ->
 *   pipe -> socket
 *   on the shard thread (a pipe of up to 1 MB, kept by the shard for the
 *   next body; by default only when the pipe holds the whole body: one
 *   the user's pipe budget leaves smaller sends the body by sendfile(2),
 *   counted in pipe_short). Either way each piece is checked (cachestat,
 *   one call per MB) before the shard reads it: one not in the page cache
 *   sends the rest the splice path's way, from io-wq
 *   (rp_file_send_to_iowq);
 * - splice: a body not in the page cache: IORING_OP_SPLICE file -> pipe (the
 *   kernel runs it in io-wq, so a disk read never blocks the shard), then
 *   pipe -> socket with splice(2) on the shard thread when writable. With
 *   no pipe to be had (EMFILE, ENFILE) it ends done() with that errno
 *   rather than read the disk on the shard.
 * Every piece but the last carries MSG_MORE / SPLICE_F_MORE (and the last
 * too with RP_FILE_SEND_MORE, when another response follows at once), so a
 * response leaves in full segments.
 *
 * The socket should be O_NONBLOCK (the engine's own socket ops ignore that
 * flag). The file must stay open until done() ran, and be a regular file
 * (or a block device): it is not checked, which would cost an fstat(2) a
 * call. From a pipe or a socket a body above small_max ends done(-ESPIPE);
 * a smaller one is read from it as a stream, waiting for its bytes (or,
 * when the pool has no buffer for it, ends as a larger one does).
 */
#ifndef RINGPLANE_FILESEND_H
#define RINGPLANE_FILESEND_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <ringplane/engine.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
	/* more data follows at once: MSG_MORE on the end too (and, as
	 * RP_FILE_SEND_COPY_SMALL, a small body is copied: sendfile(2) takes
	 * no MSG_MORE) */
	RP_FILE_SEND_MORE = 1u << 0,
	/* a cached body above small_max by splice(2) file -> pipe -> socket on
	 * the shard, or by sendfile(2); neither: splice above 256 KB up to
	 * 1 MB, sendfile otherwise (as measured, docs/net.md) */
	RP_FILE_SEND_CACHED_SPLICE = 1u << 1,
	RP_FILE_SEND_CACHED_SENDFILE = 1u << 2,
	/* a small body (up to small_max) is read into pool memory and sent, a
	 * copy, not sendfile(2)'d, even cached and with no header; without
	 * MSG_MORE on its end (unless RP_FILE_SEND_MORE). Once sent, the
	 * bytes are the socket's own: a caller need not wait for the peer's
	 * acknowledgement before the file may change (a truncation after a
	 * sendfile(2) can still reach the wire as zeros). Except when the
	 * pool has no buffer for it: then it goes the large body's way
	 * (sendfile or splice) rather than fail, rp_file_send_small_nomem()
	 * moves, and the caller checks it as any such body */
	RP_FILE_SEND_COPY_SMALL = 1u << 3,
};

#define RP_FILE_SEND_HDR_MAX 16384 /* header bytes one call takes (copied) */

struct rp_file_send_opts {
	unsigned flags;	  /* RP_FILE_SEND_* */
	size_t small_max; /* bodies up to this go by read + one send (default 16 KB) */
	size_t chunk;	  /* sendfile/splice chunk (default 2 MB) */
};

/* done(): @res is the bytes sent (header + body; 0 for a call with no header
 * and an empty range, which sends nothing) or a negative errno: -EPIPE,
 * -ECONNRESET (the peer went away), -EIO (the file got shorter than the
 * range: the response is cut short and the connection should be closed),
 * -ESPIPE (@file is not a regular file, see above), -ENOMEM, -ESHUTDOWN;
 * another errno of the socket or the file as the kernel gave it. On an
 * error, part of the response may have been sent. Every error but -EIO is
 * counted in rp_file_send_stats.errors (-EIO in short_file).
 * A body by sendfile(2) or splice(2) hands the kernel references to the
 * file's page-cache pages, which a truncation zeroes: a file that shrank
 * is seen when a later piece meets its new end, and once the last byte is
 * in the socket by one fstat(2) (a regular file; not for a small body sent
 * whole at once): -EIO either way, though the bytes in the socket still go.
 * A file that shrinks after that check is not seen: done() reports the
 * whole length while the socket may still hold zeroed pages. */
typedef void (*rp_file_send_fn)(struct rp_shard *sh, void *arg, int64_t res);

/*
 * rp_file_send - send @hdr (@nhdr iovecs, copied; at most RP_FILE_SEND_HDR_MAX
 * bytes) then @len bytes of @file from @off, to @sock, on shard @sh. done()
 * runs once, on @sh, never inside this call. Returns 0, or -EINVAL (too
 * much header, bad fds, no @done, a flag bit this library does not know,
 * a range past INT64_MAX: @off above it or
 * @off + @len), -ENOMEM, -ESHUTDOWN: then done() never runs. -ENOMEM
 * also when the body ended within the call (an empty one, or one sent
 * whole at once) and neither a message nor an op was left to carry its
 * end to the loop (the pool empty, the mailbox full): some or all of it
 * may have gone out, so the connection should be closed.
 */
int rp_file_send(struct rp_shard *sh, int sock, const struct iovec *hdr, unsigned nhdr, int file,
		 uint64_t off, uint64_t len, const struct rp_file_send_opts *opts,
		 rp_file_send_fn done, void *arg);

struct rp_file_send_stats {
	uint64_t calls[3];     /* by path: [0] small, [1] sendfile, [2] splice */
	uint64_t body_bytes[3]; /* body bytes sent by each path */
	uint64_t hdr_bytes;
	uint64_t waits;	       /* times a full socket made a send wait for POLLOUT */
	uint64_t not_cached;   /* bodies the residency check sent to the splice path */
	uint64_t short_file;   /* files shorter than the range (-EIO) */
	uint64_t errors;       /* other failures */
	uint64_t small_direct; /* small bodies (of calls[0]) found cached and sent at once
				  from the shard (sendfile(2), or a RWF_NOWAIT read and
				  one send) instead of by the ring's read -> send */
	uint64_t shard_splice; /* cached bodies (of calls[1]) sent by splice(2) through a
				  pipe on the shard rather than by sendfile(2) */
	uint64_t pipe_short;   /* pipes smaller than the body that chose splice (the
				  user's pipe budget, fs.pipe-user-pages-soft, spent, or
				  pipe-max-size below 1 MB): such a cached body goes by
				  sendfile(2) instead (counted in calls[1], not in
				  shard_splice) */
	uint64_t pipes_shed;	/* stashed pipes closed by rp_file_send_shed */
	uint64_t pipes_trimmed; /* stashed pipes closed by rp_file_send_trim */
	unsigned pipes_kept;	/* empty pipes stashed now */
};

/* This shard's counters. Call on the shard. */
void rp_file_send_stats(struct rp_shard *sh, struct rp_file_send_stats *out);

/*
 * rp_file_send_small_nomem - how many small bodies (and headers with an
 * empty range) this shard sent the large body's way because the pool had
 * no buffer of header + body for them (its 1..32 KB classes spent): the
 * header by a send, the body by sendfile(2) or splice from the file, as
 * for a body above small_max. Each is counted in calls[] and body_bytes[]
 * of the path it took (calls[1] or calls[2], not calls[0]). A fallback
 * counter outside rp_file_send_stats, whose layout ABI 0.5 fixes. Call
 * on the shard. Returns the count since the shard's first call.
 */
uint64_t rp_file_send_small_nomem(struct rp_shard *sh);

/*
 * rp_file_send_to_iowq - how many bodies this shard began reading from
 * the page cache itself (sendfile(2), or splice(2) file -> pipe) and
 * moved, part-way, to the splice path's IORING_OP_SPLICE in io-wq: a
 * later piece was not in the page cache (a file cached only in part, or
 * pages evicted meanwhile; each piece is checked, one cachestat(2) per MB,
 * before the shard reads it). Each stays counted in the calls[] of the
 * path it began on; the bytes of its rest count in body_bytes[2]. Outside
 * rp_file_send_stats as rp_file_send_small_nomem. Call on the shard.
 * Returns the count since the shard's first call.
 */
uint64_t rp_file_send_to_iowq(struct rp_shard *sh);

/*
 * rp_file_send_small_sendfile - the bytes of body_bytes[small] this shard
 * sent by sendfile(2) from the page cache (small bodies with no header,
 * neither RP_FILE_SEND_MORE nor RP_FILE_SEND_COPY_SMALL, the range
 * cached): zero-copy, counted at each sendfile(2) as body_bytes is. The
 * rest of body_bytes[small] were read into pool memory (RWF_NOWAIT, or
 * the ring's read) and sent: copied; a body with no header whose range
 * was not all cached may go that way too (its RWF_NOWAIT read can find
 * the pages readahead just brought in), so
 * small_direct alone does not say which. A body whose next piece left the
 * page cache while it waited for room goes on in io-wq, those bytes in
 * body_bytes[splice]. Outside rp_file_send_stats as
 * rp_file_send_small_nomem. Call on the shard (another shard's handle
 * restarts this thread's counters, as for every rp_file_send_* count).
 * Returns the bytes since the shard's first call.
 */
uint64_t rp_file_send_small_sendfile(struct rp_shard *sh);

/*
 * The pipes of the splice paths: a body's pipe, given back empty, is kept
 * by its thread for the next body (up to 4; pipe2(2) and its sizing were
 * three syscalls a body). Each is two descriptors and, at 1 MB, 256 pages
 * of the user's pipe budget (fs.pipe-user-pages-soft), and nothing else
 * gives them back while the thread lives: these two do. Neither touches
 * a pipe a body in flight holds. Call on the shard.
 *
 * rp_file_send_shed - close every pipe kept, for a caller whose own open
 * or accept failed with EMFILE or ENFILE: it tries again when this
 * returned more than 0 (each closed pipe is two descriptors). Returns how
 * many were closed (counted in pipes_shed); 0 when none is kept.
 *
 * rp_file_send_trim - close the kept pipes no body took since the last
 * call (the fewest the stash held meanwhile: its low-water mark). Called
 * from a periodic timer (once a second, say), an idle shard keeps no pipe
 * within two periods of its last splice, while a steady load keeps what
 * it takes. Returns how many were closed (counted in pipes_trimmed).
 */
unsigned rp_file_send_shed(struct rp_shard *sh);
unsigned rp_file_send_trim(struct rp_shard *sh);

/*
 * rp_file_read_nowait - read [@off, @off + total) of @fd into @iov
 * (@iovcnt iovecs, total their lengths) on the calling thread, only where
 * that waits for no disk: the small path's read (above) and `ringplane
 * serve`'s kept bodies use it; a caller whose answer is -EAGAIN reads the
 * range elsewhere (the ring's read, io-wq).
 *
 * Returns the bytes read: all of the range, or fewer only at end of file
 * (the file ends at @off + the count, as the read saw it). -EAGAIN when
 * some of the range is not in the page cache: a RWF_NOWAIT read that
 * stops part-way (the first pages cached, a later one not) is not a short
 * count; the rest is asked again, and its EAGAIN ends the call so (the
 * bytes already in @iov are then to be ignored). Such a miss may start
 * readahead, so a later call can find the range cached. Also -EAGAIN when
 * the filesystem refuses RWF_NOWAIT (EOPNOTSUPP) and is not memory-backed.
 * On tmpfs and ramfs, which refuse it too, a regular file's range is
 * read by a plain read: their pages are memory (a tmpfs page swapped out
 * is waited for: a shard serving from tmpfs on a host that swaps can
 * stall on it). Anything else that refuses it (a directory, a device node
 * on devtmpfs, whose plain read may wait) is -EAGAIN. An fd opened with
 * O_DIRECT reads the device even with RWF_NOWAIT: not for such an fd.
 * Which devices refuse RWF_NOWAIT and which of them are memory is learned
 * by fstatfs(2) and remembered per st_dev by each thread for a second, so
 * such a read costs preadv2 (refused), fstat and preadv2. Otherwise
 * -errno of preadv2(2), fstat(2) or fstatfs(2): -EBADF, -ESPIPE for a
 * pipe or a socket, -EINVAL (@off < 0, @iovcnt out of 0..IOV_MAX, @iov
 * NULL with @iovcnt above 0, a total above
 * SSIZE_MAX or a range past INT64_MAX), -EFAULT... EINTR is retried. An
 * empty range reads nothing: 0, whatever @fd is. errno is unspecified
 * after the call, whatever it returned.
 *
 * Any thread; no shard or runtime needed. The file offset is not used or
 * moved.
 */
ssize_t rp_file_read_nowait(int fd, const struct iovec *iov, int iovcnt, off_t off);

#ifdef __cplusplus
}
#endif

#endif /* RINGPLANE_FILESEND_H */
