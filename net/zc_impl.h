/* SPDX-License-Identifier: MIT */
/*
 * Internal to net/zc*.c (not installed): the counters, the per-thread pipe
 * and held bytes, and the steps of each transfer strategy. zc.c is the
 * chooser; each strategy is a file of its own (zc_sendfile.c, zc_splice.c,
 * zc_cfr.c, zc_copy.c) and never calls another.
 *
 * A step makes one attempt (its syscalls retried on EINTR) and returns the
 * bytes it took from the source (> 0), 0 at EOF, or a negative errno;
 * -EINVAL, -ENOSYS (and for copy_file_range -EXDEV, -EOPNOTSUPP) before
 * any byte moved mean "refused": the chooser counts the reason and moves
 * to the next strategy.
 */
#ifndef RP_NET_ZC_IMPL_H
#define RP_NET_ZC_IMPL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ringplane/zc.h>

/* sendfile/splice/copy_file_range move at most MAX_RW_COUNT per call. */
#define ZC_CHUNK_MAX  ((size_t)0x7ffff000)
#define ZC_BUF_BYTES  (64u * 1024)  /* the read/write fallback's per-thread buffer */
#define ZC_PIPE_BYTES (256u * 1024) /* asked of F_SETPIPE_SZ, as the relay's pipes */
#define ZC_PIPE_MIN   (64u * 1024)  /* a pipe's default size: what we can count on */
/* The local-peer copy path's per-thread buffer (RP_ZC_COPY_BUF overrides,
 * ZC_LBUF_MIN..ZC_LBUF_MAX) and the smallest count that path takes. */
#define ZC_LBUF_BYTES (1024u * 1024)
#define ZC_LBUF_MIN   (16u * 1024)
#define ZC_LBUF_MAX   (16u * 1024 * 1024)

/* Process-wide counters: updated from any thread with relaxed atomics (no
 * reader infers anything about other memory from a counter's value). */
struct zc_counters {
	_Atomic uint64_t zc_bytes, copied_bytes;
	_Atomic uint64_t sendfile_calls, splice_calls, cfr_calls, copy_calls;
	_Atomic uint64_t sendfile_einval, sendfile_enosys, splice_einval, splice_enosys, pipe_fail;
	_Atomic uint64_t cfr_exdev, cfr_enosys, cfr_eopnotsupp, cfr_einval, cfr_zero;
	_Atomic uint64_t held_bytes, held_busy, splice_urgent;
	_Atomic uint64_t f2s_local_copy, f2s_forced_copy, f2s_forced_sendfile, f2s_local_sendfile;
	_Atomic uint64_t f2s_remote_sendfile, f2s_route_lookups;
};
extern struct zc_counters zc_ctr;
#define ZC_ADD(field, n)                                                                           \
	atomic_fetch_add_explicit(&zc_ctr.field, (uint64_t)(n), memory_order_relaxed)

/* What the kernel offers, probed once and cleared on a later ENOSYS. */
extern _Atomic bool zc_have_sendfile, zc_have_splice, zc_have_cfr;
void zc_probe(void);
/* From the environment, read once by the probe: what flags 0 means for
 * rp_zc_file_to_socket (RP_ZC_F2S: RP_ZC_F2S_* mode, 0 the built-in
 * default) and the copy path's buffer size (RP_ZC_COPY_BUF). */
extern unsigned zc_env_f2s;
extern size_t zc_lbuf_bytes;
/* RP_ZC_COPY_BUF's value @v: BYTES[K|M] (digits, no sign or space; K and M
 * either case) within ZC_LBUF_MIN..ZC_LBUF_MAX once multiplied: true and
 * *@out set; anything else (NULL included) false, *@out untouched.
 * (Internal; tests/test_zc.c calls it.) */
bool zc_parse_copy_buf(const char *v, size_t *out);

/* A pipe of this thread: the cached one (empty between calls) or one that
 * holds bytes for a destination. */
struct zc_pipe {
	int rd, wr;
	size_t cap;  /* bytes it can take (F_GETPIPE_SZ) */
	size_t held; /* bytes in it */
};

/* The thread's cached pipe, created on first use; NULL when none can be
 * had (counted in pipe_fail). Empty on return. */
struct zc_pipe *zc_pipe_get(void);
/* The thread's 64 KB bounce buffer (NULL when malloc fails); after the
 * thread's exit (a late key destructor's call) one of the call's own.
 * Either way handed back with zc_buf_put before the call returns. */
char *zc_buf_get(void);
/* The thread's copy-path buffer, zc_lbuf_bytes (NULL when malloc fails,
 * and after the thread's exit: then the caller takes zc_buf_get's). */
char *zc_lbuf_get(void);
/* Done with @buf (zc_buf_get's, zc_lbuf_get's or NULL): freed if it was
 * one made for the call only, kept if it is the thread's. */
void zc_buf_put(char *buf);
/* The thread's zc key destructor has run (a late key destructor's call). */
bool zc_exited(void);
/* Hand the cached pipe @p (bytes in it) to the held table for @dst. */
bool zc_attach_pipe(int dst, struct zc_pipe *p);
/* Keep @len (<= ZC_BUF_BYTES) bytes of @buf for @dst, nothing held for it
 * yet; false when no slot or memory can be had. */
bool zc_hold_buf(int dst, const char *buf, size_t len);
/* Whether a relay to @dst may take bytes it might have to hold. */
bool zc_hold_room(int dst);
/* Write what is held for @dst: 0 when nothing is held any more, -EAGAIN
 * while @dst is full, another negative errno (the held bytes dropped). */
int zc_held_flush(int dst);
/* Read and discard what @p holds. */
void zc_pipe_drain(struct zc_pipe *p);

/* Write all of @buf to @fd: send(MSG_NOSIGNAL), write(2) for a non-socket.
 * Returns bytes written (short only on -EAGAIN after some), or -errno. */
ssize_t zc_write_some(int fd, const char *buf, size_t len);

/* A splice step that could not get a pipe (pipe_fail counted): refused. */
#define ZC_NOPIPE (-4095)
/* A socket -> pipe splice step that moved nothing and is no EOF: at the
 * urgent mark, or bytes behind a mark the kernel moved on (splice_urgent
 * counted): the copy step reads on, this call. */
#define ZC_URGENT (-4094)

/* Strategies. */
ssize_t zc_sendfile_step(int sock, int file, off_t *off, size_t count);
ssize_t zc_splice_file_step(int sock, int file, off_t *off, size_t count, bool file_is_pipe);
ssize_t zc_splice_relay_step(int dst, int src, size_t count);
ssize_t zc_cfr_step(int dst, int src, off_t *off_in, off_t *off_out, size_t count);
/* @buf, @bufsz: zc_buf_get's (any source) or zc_lbuf_get's (a seekable
 * one only: an unseekable source's unsent rest is held, at most
 * ZC_BUF_BYTES). *@full: @sock took part of what was read and then said
 * EAGAIN (it is full; the rest moved back or held), so another read now
 * would be wasted. */
ssize_t zc_copy_file_step(int sock, int file, off_t *off, size_t count, bool seekable, char *buf,
			  size_t bufsz, bool *full);
ssize_t zc_copy_relay_step(int dst, int src, size_t count);
ssize_t zc_copy_fcopy_step(int dst, int src, off_t *off_in, off_t *off_out, size_t count);
/* One file's [@in, @in + @len) to [@out, @out + @len), @out > @in and the
 * ranges overlapping: pread/pwrite through the 64 KB buffer from the end
 * backwards, so each chunk reads bytes no earlier chunk overwrote (they all
 * went above it). Returns @len or a negative errno (-EIO: the file shrank
 * under the copy); the offsets are the caller's to move. */
ssize_t zc_copy_fcopy_back(int dst, int src, off_t in, off_t out, size_t len);

#endif /* RP_NET_ZC_IMPL_H */
