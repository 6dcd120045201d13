/* SPDX-License-Identifier: MIT */
/*
 * zc strategy: splice(2) through the calling thread's pipe.
 *
 * File -> socket: file -> pipe -> socket; a pipe source goes straight to
 * the socket (splice needs one end to be a pipe, and it is one). When a
 * non-blocking socket takes less than the pipe holds, the rest is read out
 * and dropped and the file offset moved back by it: the file still has
 * those bytes, and the offset then says exactly what the socket got.
 *
 * Socket/pipe -> socket: src -> pipe, then the pipe is handed to the held
 * table for dst and flushed (zc.c): a blocking dst takes it all, a full
 * non-blocking one leaves it held for the next call. splice's EAGAIN is
 * ambiguous (source empty or pipe full); the pipe is always empty before a
 * read here, so it only ever means "source empty" (HAProxy's raw_sock.c
 * counts the bytes in its pipe for the same reason).
 */
#include <errno.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <unistd.h>

#include "splice_zero.h"
#include "zc_impl.h"

static ssize_t splice_retry(int in, loff_t *off_in, int out, size_t len)
{
	for (;;) {
		ssize_t n = splice(in, off_in, out, NULL, len, SPLICE_F_MOVE);

		if (n >= 0)
			return n;
		if (errno != EINTR)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

ssize_t zc_splice_file_step(int sock, int file, off_t *off, size_t count, bool file_is_pipe)
{
	struct zc_pipe *p;
	loff_t pos;
	size_t sent = 0;
	ssize_t n, r = 0;

	if (file_is_pipe) {
		n = splice_retry(file, NULL, sock, count);
		if (n > 0)
			ZC_ADD(zc_bytes, n);
		return n;
	}
	p = zc_pipe_get();
	if (!p)
		return ZC_NOPIPE;
	pos = off ? (loff_t)*off : 0;
	n = splice_retry(file, off ? &pos : NULL, p->wr, count < p->cap ? count : p->cap);
	if (n <= 0)
		return n;
	p->held = (size_t)n;
	while (p->held) {
		r = splice_retry(p->rd, NULL, sock, p->held);
		if (r <= 0)
			break;
		p->held -= (size_t)r;
		sent += (size_t)r;
		ZC_ADD(zc_bytes, r);
	}
	if (p->held) {
		/* the socket took less than the pipe held: drop the rest and
		 * move the offset back to just after the last byte sent */
		size_t back = p->held;

		zc_pipe_drain(p);
		if (!off && lseek(file, -(off_t)back, SEEK_CUR) < 0 && !r)
			r = -errno;
	}
	if (off)
		*off += (off_t)sent;
	if (sent)
		return (ssize_t)sent;
	return r ? r : -EIO; /* -EAGAIN, -EINVAL (sock refuses: fall back), -EPIPE... */
}

ssize_t zc_splice_relay_step(int dst, int src, size_t count)
{
	struct zc_pipe *p = zc_pipe_get();
	ssize_t n;
	int r;

	if (!p)
		return ZC_NOPIPE;
	n = splice_retry(src, NULL, p->wr, count < p->cap ? count : p->cap);
	/*
	 * splice stops at TCP urgent data (tcp_read_sock reads up to the mark,
	 * never past it): a blocking splice there returns 0 and a non-blocking
	 * one -EAGAIN (0 too once the FIN is in) while the socket polls
	 * readable; and where a newer urgent byte moved the mark on after the
	 * splice stopped, the 0 comes with bytes waiting and SIOCATMARK saying
	 * 0 (splice_zero.h). Neither is an EOF: the copy step reads on (its
	 * read steps over an urgent byte, not part of the stream without
	 * SO_OOBINLINE, and clears the mark; a blocking read waits as the
	 * splice would), counted in splice_urgent. Only a splice that moved
	 * nothing pays the ioctl (and for a 0, a peek); a pipe @src has no
	 * mark: its 0 is an EOF.
	 */
	if (n == 0 || n == -EAGAIN) {
		int why = splice_zero_why(src, n);

		if (why < 0)
			return why;
		if (why == SPLICE_ZERO_MARK || (n == 0 && why != SPLICE_ZERO_EOF)) {
			ZC_ADD(splice_urgent, 1);
			return ZC_URGENT;
		}
	}
	if (n <= 0)
		return n;
	p->held = (size_t)n;
	/* room for dst was checked by the chooser before anything was taken */
	if (!zc_attach_pipe(dst, p)) {
		zc_pipe_drain(p);
		return -EBUSY;
	}
	r = zc_held_flush(dst);
	if (r == -EAGAIN) {
		ZC_ADD(held_bytes, rp_zc_held(dst));
		return n;
	}
	return r < 0 ? r : n;
}
