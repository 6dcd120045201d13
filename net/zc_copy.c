/* SPDX-License-Identifier: MIT */
/*
 * zc strategy: read/write through the calling thread's 64 KB buffer, where
 * the kernel refuses every zero-copy path; file -> socket also through a
 * larger buffer (zc_lbuf_get) where the peer is on this host or the
 * caller asks (zc.c). Sends use MSG_NOSIGNAL (write(2)
 * for a destination that is not a socket). A short write on a full
 * non-blocking destination never loses bytes: a seekable source is moved
 * back by what was not written; from an unseekable one (a pipe, a socket)
 * the rest is held for the destination (zc.c) and goes first next time.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "zc_impl.h"

static ssize_t read_retry(int fd, char *buf, size_t len, const off_t *off)
{
	for (;;) {
		ssize_t n = off ? pread(fd, buf, len, *off) : read(fd, buf, len);

		if (n >= 0)
			return n;
		if (errno != EINTR)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

/* Keep the unwritten tail for dst; where no slot or memory can be had,
 * wait until dst takes it (the only place a non-blocking dst is waited
 * for; it needs malloc to fail, or a late call's short write from a
 * source late_step cannot peek). Returns 0 or a negative errno. */
static int keep_rest(int dst, const char *buf, size_t len)
{
	while (len && !zc_hold_buf(dst, buf, len)) {
		struct pollfd pfd = {.fd = dst, .events = POLLOUT};
		ssize_t w;

		if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
			return -errno;
		w = zc_write_some(dst, buf, len);
		if (w < 0 && w != -EAGAIN)
			return (int)w;
		if (w > 0) {
			ZC_ADD(copied_bytes, w);
			buf += w;
			len -= (size_t)w;
		}
	}
	if (len)
		ZC_ADD(held_bytes, len);
	return 0;
}

#define ZC_LATE_READ (-100000)

/* A source late_step may peek: a stream socket whose peek offset the
 * application has not set (SO_PEEK_OFF moves with every peek, so a peek
 * here would skew its next read). A message socket (SOCK_SEQPACKET,
 * datagrams) is not: consuming part of a peeked message drops the rest. */
static bool late_peekable(int src)
{
	int type = 0, off = -1;
	socklen_t l = sizeof(type);

	if (getsockopt(src, SOL_SOCKET, SO_TYPE, &type, &l) < 0 || type != SOCK_STREAM)
		return false;
	l = sizeof(off);
	return getsockopt(src, SOL_SOCKET, SO_PEEK_OFF, &off, &l) < 0 || off < 0;
}

/* After the thread's exit (an application's key destructor calling us in
 * glibc's last round) nothing can be held for dst and nothing may be waited
 * for: take from @src no more than @dst accepts now. A peekable source
 * (late_peekable; the call must be its only reader) is peeked, the bytes
 * written, and exactly the written ones consumed. Any other source is read
 * only if dst polls writable; ZC_LATE_READ then says go on with the read (a
 * short write's rest is waited for, keep_rest). Returns bytes moved, 0 at
 * EOF, -EAGAIN (dst full, or src empty and non-blocking) or a negative
 * errno. */
static ssize_t late_step(int dst, int src, size_t len, char *buf)
{
	ssize_t n, w;
	size_t got = 0;

	if (!late_peekable(src)) {
		struct pollfd pfd = {.fd = dst, .events = POLLOUT};
		int r = poll(&pfd, 1, 0);

		if (r < 0)
			return errno == EINTR ? -EAGAIN : -errno;
		return r ? ZC_LATE_READ : -EAGAIN;
	}
	do
		n = recv(src, buf, len, MSG_PEEK);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return n < 0 ? (errno == EWOULDBLOCK ? -EAGAIN : -errno) : 0;
	w = zc_write_some(dst, buf, (size_t)n);
	if (w <= 0)
		return w < 0 ? w : -EAGAIN;
	/* the peeked bytes are still queued: consume exactly those written */
	while (got < (size_t)w) {
		ssize_t c = recv(src, buf, (size_t)w - got, MSG_DONTWAIT);

		if (c < 0 && errno == EINTR)
			continue;
		if (c <= 0)
			break; /* another reader took them: nothing more to do */
		got += (size_t)c;
	}
	ZC_ADD(copied_bytes, w);
	return w;
}

ssize_t zc_copy_file_step(int sock, int file, off_t *off, size_t count, bool seekable, char *buf,
			  size_t bufsz, bool *full)
{
	ssize_t n, w;
	int r;

	*full = false;
	if (!buf)
		return -ENOMEM;
	if (!seekable && bufsz > ZC_BUF_BYTES)
		bufsz = ZC_BUF_BYTES; /* what keep_rest can hold */
	if (!seekable && zc_exited()) {
		n = late_step(sock, file, count < bufsz ? count : bufsz, buf);
		if (n != ZC_LATE_READ) {
			*full = n == -EAGAIN;
			return n;
		}
	}
	n = read_retry(file, buf, count < bufsz ? count : bufsz, off);
	if (n <= 0)
		return n;
	w = zc_write_some(sock, buf, (size_t)n);
	/* zc_write_some is short after some bytes on any error, its errno
	 * kept: only EAGAIN says the socket is full (an error, a reset, is
	 * met by the next step and returned) */
	*full = w >= 0 && w < n && (errno == EAGAIN || errno == EWOULDBLOCK);
	if (w < 0 && w != -EAGAIN && seekable) {
		if (!off)
			(void)lseek(file, -(off_t)n, SEEK_CUR);
		return w;
	}
	if (w < 0 && w != -EAGAIN)
		return w; /* the peer is gone: what was read is dropped with it */
	if (w < 0)
		w = 0;
	ZC_ADD(copied_bytes, w);
	if (seekable) {
		if (off)
			*off += (off_t)w;
		else if (w < n && lseek(file, -(off_t)(n - w), SEEK_CUR) < 0)
			return -errno;
		return w ? w : -EAGAIN;
	}
	r = keep_rest(sock, buf + w, (size_t)(n - w));
	return r < 0 ? r : n;
}

static ssize_t relay_step(int dst, int src, size_t count, char *buf)
{
	ssize_t n, w;
	int r;

	if (!buf)
		return -ENOMEM;
	if (zc_exited()) {
		n = late_step(dst, src, count < ZC_BUF_BYTES ? count : ZC_BUF_BYTES, buf);
		if (n != ZC_LATE_READ)
			return n;
	}
	n = read_retry(src, buf, count < ZC_BUF_BYTES ? count : ZC_BUF_BYTES, NULL);
	if (n <= 0)
		return n;
	w = zc_write_some(dst, buf, (size_t)n);
	if (w < 0 && w != -EAGAIN)
		return w;
	if (w < 0)
		w = 0;
	ZC_ADD(copied_bytes, w);
	r = keep_rest(dst, buf + w, (size_t)(n - w));
	return r < 0 ? r : n;
}

ssize_t zc_copy_relay_step(int dst, int src, size_t count)
{
	char *buf = zc_buf_get();
	ssize_t n = relay_step(dst, src, count, buf);

	zc_buf_put(buf);
	return n;
}

static ssize_t fcopy_step(int dst, int src, off_t *off_in, off_t *off_out, size_t count, char *buf)
{
	size_t w = 0;
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	n = read_retry(src, buf, count < ZC_BUF_BYTES ? count : ZC_BUF_BYTES, off_in);
	if (n <= 0)
		return n;
	while (w < (size_t)n) {
		ssize_t m = off_out ? pwrite(dst, buf + w, (size_t)n - w, *off_out + (off_t)w)
				    : write(dst, buf + w, (size_t)n - w);
		if (m > 0) {
			w += (size_t)m;
			continue;
		}
		if (m < 0 && errno == EINTR)
			continue;
		/* a short copy (ENOSPC, EAGAIN): the source goes back by what
		 * was not written, as far as it can */
		int err = m < 0 ? (errno == EWOULDBLOCK ? -EAGAIN : -errno) : -EIO;

		if (!off_in)
			(void)lseek(src, -(off_t)((size_t)n - w), SEEK_CUR);
		if (off_in)
			*off_in += (off_t)w;
		if (off_out)
			*off_out += (off_t)w;
		ZC_ADD(copied_bytes, w);
		return w ? (ssize_t)w : err;
	}
	if (off_in)
		*off_in += n;
	if (off_out)
		*off_out += n;
	ZC_ADD(copied_bytes, n);
	return n;
}

ssize_t zc_copy_fcopy_step(int dst, int src, off_t *off_in, off_t *off_out, size_t count)
{
	char *buf = zc_buf_get();
	ssize_t n = fcopy_step(dst, src, off_in, off_out, count, buf);

	zc_buf_put(buf);
	return n;
}

static ssize_t fcopy_back(int dst, int src, off_t in, off_t out, size_t len, char *buf)
{
	size_t left = len;

	if (!buf)
		return -ENOMEM;
	/* the destination's blocks first, where the filesystem can: a full
	 * disk or RLIMIT_FSIZE (ENOSPC, EFBIG) then stops the copy before it
	 * has overwritten any of the source */
	if (fallocate(dst, 0, out, (off_t)len) < 0 && errno != EOPNOTSUPP && errno != ENOSYS &&
	    errno != EINTR)
		return -errno;
	while (left) {
		size_t c = left < ZC_BUF_BYTES ? left : ZC_BUF_BYTES, got = 0, put = 0;
		off_t at = in + (off_t)(left - c);

		while (got < c) {
			ssize_t n = pread(src, buf + got, c - got, at + (off_t)got);

			if (n > 0) {
				got += (size_t)n;
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			return n < 0 ? -errno : -EIO; /* 0: truncated under the copy */
		}
		while (put < c) {
			ssize_t m = pwrite(dst, buf + put, c - put, at + (out - in) + (off_t)put);

			if (m > 0) {
				put += (size_t)m;
				continue;
			}
			if (m < 0 && errno == EINTR)
				continue;
			return m < 0 ? -errno : -EIO;
		}
		left -= c;
		ZC_ADD(copied_bytes, c);
	}
	return (ssize_t)len;
}

ssize_t zc_copy_fcopy_back(int dst, int src, off_t in, off_t out, size_t len)
{
	char *buf = zc_buf_get();
	ssize_t n = fcopy_back(dst, src, in, out, len, buf);

	zc_buf_put(buf);
	return n;
}
