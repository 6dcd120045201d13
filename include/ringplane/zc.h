/* SPDX-License-Identifier: MIT */
/*
 * ringplane zc: synchronous zero-copy transfers for code that owns its own
 * threads; no runtime, no shard. Each call moves bytes in the kernel where
 * it can (sendfile(2), splice(2) through a pipe, copy_file_range(2)) and
 * falls back to a read/write loop through a 64 KB per-thread buffer where
 * the kernel refuses; every fallback is counted by reason (rp_zc_stats).
 * File -> socket to a TCP peer on this host's loopback copies by choice
 * (a 1 MB per-thread buffer): there the copy is faster than sendfile
 * (docs/zc.md).
 *
 * Thread rules: every function may be called from any thread at once. The
 * counters are process-wide. Each thread keeps one cached pipe for splice
 * and, for non-blocking destinations, the bytes a call took from its source
 * but could not write yet ("held" bytes, see rp_zc_socket_relay); both are
 * closed when the thread exits. A call made after that, from a thread-key
 * destructor of the application's in glibc's last round, moves bytes by
 * read/write through a buffer freed before it returns: it makes no pipe,
 * keeps no buffer, and holds no byte, so it takes from an unseekable
 * source no more than the destination accepts: a stream socket source is
 * peeked and only the bytes written are consumed (the call must then be the
 * source's only reader); a full non-blocking destination gives -EAGAIN
 * (nothing taken, nothing waited for; retry or give up). Another unseekable
 * source (a pipe, a SOCK_SEQPACKET or datagram socket, a stream socket with
 * SO_PEEK_OFF set) is read only when the destination polls writable, and
 * the rest of a short write is then waited for.
 * That needs the thread to have made a zc call before its exit began.
 * A thread whose FIRST zc call is made from a key destructor in glibc's
 * last round (PTHREAD_DESTRUCTOR_ITERATIONS) is not known to be exiting:
 * that call arms a key whose destructor never runs, so it keeps its pipe
 * (2 fds), its buffers (64 KB, and 1 MB on the copy path) and a registry
 * entry in the dead thread's TLS, which a later thread reusing that TLS
 * corrupts (the fork handlers walk the list). Do not do that: make the
 * first zc call of a thread before it returns, or not at all from its
 * key destructors. A first call in an earlier round is cleaned up in the
 * next one.
 *
 * fork(2): a child never uses its parent's pipes or held bytes. In the
 * child, the thread that called fork (its only thread) closes its copies
 * of every thread's pipe fds, its own and all the other threads' (a
 * process-wide registry of them), and forgets what it held (pthread_atfork
 * handlers, registered when the library is loaded): the parent still holds those bytes and writes them, the child's
 * rp_zc_held says 0, and its next call makes a pipe of its own. Bytes
 * held at a fork stay with the parent: a parent that forks and exits
 * (daemon(3)) loses them, so flush until rp_zc_held() is 0 for each
 * destination before such a fork. What the other threads held goes with
 * their pipes, in the child: theirs to write, in the parent. So a
 * process may warm up (or relay) from many threads and then fork workers
 * that all relay at once, as a prefork server does, each child with no
 * fd of the parent's pipes. The registry is updated only where a pipe is
 * made or closed, under a mutex the fork's prepare handler takes: a fork
 * waits for a thread making or closing a pipe (never for a call that
 * finds its pipe made), and must not come from a signal handler that
 * interrupted one. That mutex is one for the whole process, held across
 * pipe2(2) and close(2). A hold takes the thread's cached pipe and its
 * release gives it back, with no lock; a pipe is made (and at the release
 * closed) under the mutex only when the thread needs another while
 * holding: a second held destination, or a relay elsewhere meanwhile. So
 * threads that keep two or more destinations in that state serialise on
 * it; a single held destination and the normal paths take no lock. Lock order: prepare handlers run in reverse order of
 * registration, so ringplane's, registered at load, runs after every
 * prepare handler registered later (in main or after) and takes its mutex
 * last; a thread may hold a lock that such a handler takes across rp_zc_*
 * calls. A lock taken by a prepare handler registered before the library
 * was loaded (an earlier constructor, or before a dlopen of it) must not
 * be held across rp_zc_* calls: that fork can deadlock. Only fork(2)
 * through the C library runs the handlers:
 * a child made by a raw clone(2) must not call these functions.
 *
 * SIGPIPE: sendfile(2) and splice(2) to a socket whose peer has gone raise
 * SIGPIPE (they take no MSG_NOSIGNAL); the read/write fallback sends with
 * MSG_NOSIGNAL. A caller must ignore SIGPIPE (SIG_IGN, as nginx does) or
 * block it in the calling thread; the calls then return -EPIPE.
 *
 * Errors: negative errno, never -1. An error other than -EAGAIN ends a
 * call with that error even after some bytes moved; the offsets (or the
 * file positions) say how far it got, exactly as the syscalls leave them.
 */
#ifndef RINGPLANE_ZC_H
#define RINGPLANE_ZC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Process-wide counters, read with rp_zc_stats (relaxed atomics: each
 * counter is exact, a snapshot of several is not one instant). */
struct rp_zc_stats {
	uint64_t zc_bytes;     /* moved by sendfile, splice out of a pipe, copy_file_range */
	uint64_t copied_bytes; /* moved by read/write through user memory */
	/* calls per strategy: public calls in which the strategy ran at least once */
	uint64_t sendfile_calls, splice_calls, cfr_calls, copy_calls;
	/* fallbacks by reason: the kernel refused, the next strategy ran */
	uint64_t sendfile_einval; /* sendfile refused the fds (a pipe or an unreadable file,
				     O_APPEND) */
	uint64_t sendfile_enosys; /* no sendfile (seccomp, a stripped kernel) */
	uint64_t splice_einval;	  /* splice refused an fd -> read/write */
	uint64_t splice_enosys;	  /* no splice */
	uint64_t pipe_fail;	  /* no pipe could be had (EMFILE, ENFILE) -> read/write */
	uint64_t cfr_exdev;	  /* copy_file_range across filesystems -> read/write */
	uint64_t cfr_enosys;	  /* no copy_file_range */
	uint64_t cfr_eopnotsupp;  /* the filesystem refused */
	uint64_t cfr_einval;	  /* not regular files, overlapping ranges... */
	uint64_t cfr_zero;	  /* 0 bytes at a position read(2) finds data at (/proc) */
	uint64_t held_bytes;	  /* bytes kept for a non-blocking destination that was full */
	uint64_t held_busy;	  /* calls refused: the thread already holds bytes for
				     RP_ZC_HELD_MAX other destinations (-EBUSY) */
	/* rp_zc_file_to_socket: which path, and why (each a count of calls) */
	uint64_t f2s_local_copy;      /* copied: a loopback peer (LOCAL_COPY) */
	uint64_t f2s_forced_copy;     /* copied: RP_ZC_F2S_COPY asked (flag or env) */
	uint64_t f2s_forced_sendfile; /* sendfile first: RP_ZC_F2S_SENDFILE asked */
	uint64_t f2s_local_sendfile;  /* the peer is on this host but the copy does not
					 pay: an AF_UNIX or a veth peer, or a source
					 that is no regular file (a pipe); the
					 zero-copy chain ran */
	uint64_t f2s_remote_sendfile; /* LOCAL_COPY looked the peer up: not on this host,
					 the zero-copy chain ran */
	uint64_t f2s_route_lookups;   /* LOCAL_COPY's route lookups (rtnetlink; once per
					 peer address per thread, kept 10 s) */
	/* rp_zc_socket_relay: calls whose splice from a TCP @src moved nothing
	 * and was no EOF (stopped at the urgent mark of MSG_OOB data, or a 0
	 * with bytes behind a mark the kernel moved on): the read/write step
	 * read on in that call (added last: the fields above keep their places) */
	uint64_t splice_urgent;
};

/* Destinations a thread can hold bytes for at once (rp_zc_socket_relay). */
#define RP_ZC_HELD_MAX 8

/*
 * rp_zc_file_to_socket - send up to @count bytes of @file to @sock.
 * @off: as in sendfile(2): non-NULL, read from *off and set *off past the
 * last byte sent, the file position untouched; NULL, read from the file
 * position, which advances by what was sent (an unseekable @file, a pipe,
 * needs NULL: -ESPIPE otherwise).
 * Strategy: for a peer reached through the loopback (127/8, ::1, the
 * host's own address) and a @count of 1 MB or more, a copy
 * (rp_zc_file_to_socket_flags, RP_ZC_F2S_LOCAL_COPY); otherwise
 * sendfile(2); where it refuses (-EINVAL: @file is a pipe or a
 * file with no splice support) splice(2) through the thread's pipe (a pipe
 * @file straight to @sock); where that is refused too, pread/read + send.
 * Blocking @sock: loops until @count bytes or EOF (huge counts in
 * 0x7ffff000-byte calls). Non-blocking @sock: returns what moved, or
 * -EAGAIN when nothing could; bytes the kernel took into the pipe but the
 * socket did not accept are dropped and the offset moved back, so it
 * always says what the socket got (a pipe @file cannot be moved back: its
 * bytes are held for @sock as in rp_zc_socket_relay). Bytes held for
 * @sock from an earlier call on this thread go out first.
 * Returns bytes taken from @file (0 at EOF or for @count 0), or a negative
 * errno (-EPIPE, -ECONNRESET for a peer that went away; -EBADF...). A
 * @count of 0 reads nothing from @file; bytes held for @sock are still
 * written first (-EAGAIN while it is full), as rp_zc_socket_relay does.
 */
ssize_t rp_zc_file_to_socket(int sock, int file, off_t *off, size_t count);

/* rp_zc_file_to_socket_flags's @flags: which path moves the bytes. */
#define RP_ZC_F2S_AUTO	     0u /* the default below */
#define RP_ZC_F2S_SENDFILE   1u /* the zero-copy chain (sendfile first), whatever the peer */
#define RP_ZC_F2S_COPY	     2u /* pread + send through a buffer, whatever the peer */
#define RP_ZC_F2S_LOCAL_COPY 3u /* COPY for a loopback peer, else SENDFILE */
#define RP_ZC_F2S_MASK	     3u

/*
 * rp_zc_file_to_socket_flags - rp_zc_file_to_socket with the path chosen
 * by @flags (RP_ZC_F2S_*; any other bit: -EINVAL). RP_ZC_F2S_AUTO is what
 * rp_zc_file_to_socket does: RP_ZC_F2S_LOCAL_COPY, unless the environment
 * variable RP_ZC_F2S (sendfile, copy, local-copy, or auto: the built-in
 * default; read once per process) says otherwise.
 * COPY reads a regular file into the calling thread's copy buffer (1 MB,
 * allocated on first use, freed at thread exit; RP_ZC_COPY_BUF=BYTES[K|M]
 * sets 16 KB..16 MB, read once) and sends it with send(MSG_NOSIGNAL); a
 * source that is not a regular file or a block device (a pipe) takes the
 * zero-copy chain anyway. A send the socket takes only part of (a full
 * non-blocking socket) ends the call: the offset says what was sent.
 * Either variable with a value not listed here (a typo, a size outside
 * 16 KB..16 MB, a suffix other than K or M) is ignored without a word:
 * the default stays.
 * LOCAL_COPY, for a @count of 1 MB or more, asks whether the peer is
 * reached through the loopback (rp_peer_is_local's rule less AF_UNIX and
 * veth peers: getpeername, getsockname and an fstat of @file each such
 * call; a route's answer cached per thread, 64 peer addresses, for 10 s) and
 * copies only then; below 1 MB, for a remote, an AF_UNIX or a veth peer,
 * sendfile. Over loopback TCP the reader's copy out of the page-cache
 * pages sendfile hands it costs more than its copy out of just-written
 * socket memory, more than the sender saves; over AF_UNIX and a veth it
 * does not (docs/zc.md).
 * Every return, offset and non-blocking rule is rp_zc_file_to_socket's;
 * rp_zc_stats counts which path ran and why (f2s_*).
 */
ssize_t rp_zc_file_to_socket_flags(int sock, int file, off_t *off, size_t count,
				   unsigned flags);

/*
 * rp_zc_socket_relay - move up to @count bytes that @src (a socket or a
 * pipe) has to @dst (a socket), by splice(2) through the calling thread's
 * cached pipe; by read + send where splice is refused (-EINVAL).
 * One read's worth per call: it waits for data only if @src is blocking,
 * takes at most @count bytes (and at most the pipe's size, 256 KB where
 * the kernel allows, else 64 KB), then writes them all to @dst.
 * Bytes are never lost on a short write: a blocking @dst is written until
 * all are out; a non-blocking @dst that fills up leaves the rest held in a
 * pipe for @dst on this thread, written first by the next call for @dst
 * from this thread (rp_zc_held tells how many). While bytes are held for
 * @dst and it is still full the call takes nothing from @src and returns
 * -EAGAIN. A thread holds bytes for at most RP_ZC_HELD_MAX destinations;
 * a call for another one is refused with -EBUSY and moves nothing.
 * Returns bytes taken from @src (all delivered or held), 0 at EOF of @src
 * with nothing held for @dst, -EAGAIN when nothing could move, or a
 * negative errno; on an error writing @dst the bytes held for it are
 * dropped (the peer is gone).
 * A @count of 0 is no read and says nothing about EOF, as for
 * rp_zc_file_to_socket and rp_zc_file_copy: @src is not touched; bytes
 * held for @dst are written as by every call (-EAGAIN while @dst is
 * still full, its error if it fails), and then 0. With nothing held it
 * touches neither fd and returns 0.
 * A @dst that is not open, or open read-only, is -EBADF before @src is
 * read (one fcntl(2) F_GETFL a call): a blocking @src with nothing to read
 * does not hold the call first, and no byte is taken from it.
 */
ssize_t rp_zc_socket_relay(int dst, int src, size_t count);

/*
 * rp_zc_held - bytes this thread holds for @dst (taken from a source by an
 * earlier rp_zc_ call, not yet accepted by @dst); 0 when none. Call it
 * before closing a non-blocking @dst, and rp_zc_drop to discard them.
 */
size_t rp_zc_held(int dst);

/*
 * rp_zc_drop - discard the bytes this thread holds for @dst (its peer is
 * gone, or it is being closed); returns how many were dropped.
 */
size_t rp_zc_drop(int dst);

/*
 * rp_zc_file_copy - copy up to @count bytes from @src to @dst by
 * copy_file_range(2), loops until @count or EOF of @src.
 * @off_in, @off_out: as in copy_file_range(2): non-NULL, used and advanced
 * by what was copied, the file position untouched; NULL, the file position
 * is used and advances.
 * Falls back to read/write (pread/pwrite with an offset) on -EXDEV,
 * -ENOSYS, -EOPNOTSUPP, -EINVAL (a pipe, not a regular file, overlapping
 * ranges of one file) and on 0 bytes copied where read(2) still finds data
 * (/proc files report size 0); each counted. An @dst opened O_APPEND is
 * -EBADF, as copy_file_range(2) says, with no fallback: pwrite(2) on it
 * would append wherever @off_out points.
 * One file on both sides (the same st_dev and st_ino): the result is
 * memmove's, overlapping ranges included: where @dst's range starts
 * inside @src's, the read/write copy runs from the end backwards. The
 * source is what it held when the call began: a count past its end
 * never copies bytes the call itself wrote (a file copied onto its own
 * end grows once). With both offsets NULL each fd's file position is
 * used: two open(2)s of the file have two and the copy goes from one to
 * the other; one open file description (@dst == @src, or a dup) has one
 * position, which cannot be both where the copy reads and where it
 * writes: -EINVAL, nothing moved (0 at EOF). A backward copy that fails
 * part-way (EIO) returns the error with the offsets unmoved and the
 * destination range, overlapped source bytes included, partly rewritten;
 * ENOSPC and EFBIG come first, before any byte is written, where the
 * filesystem has fallocate(2). Telling one file from two is an fstat(2)
 * of each (and an lseek(2) per NULL offset), made only where it can
 * matter: a call that copy_file_range serves at once makes none. After a
 * copy_file_range short of its count the source's fstat comes first, and
 * at the end it reports the call is done (a source still growing is not
 * followed further), instead of the copy_file_range and read(2) that
 * used to confirm EOF; a count above 0x7ffff000 looks at the source
 * first, and at the destination too where more than that is left; a
 * read/write fallback looks at both.
 * Returns bytes copied (0 at EOF or for @count 0) or a negative errno.
 */
ssize_t rp_zc_file_copy(int dst, int src, off_t *off_in, off_t *off_out, size_t count);

/*
 * rp_zc_backend_name - what the running kernel allows for file -> socket:
 * "sendfile+splice", "sendfile" or "none" (then every call is read/write;
 * a kernel with splice but no sendfile also reports "none", as
 * rp_zc_file_to_socket then starts at splice). Probed once (pthread_once),
 * thread-safe; the string is static.
 */
const char *rp_zc_backend_name(void);

/*
 * rp_zc_stats - copy the process-wide counters into @out.
 */
void rp_zc_stats(struct rp_zc_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* RINGPLANE_ZC_H */
