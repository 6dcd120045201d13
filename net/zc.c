/* SPDX-License-Identifier: MIT */
/*
 * Synchronous zero-copy calls (include/ringplane/zc.h): the chooser. Each
 * public call walks an ordered list of strategies (sendfile -> splice ->
 * read/write; copy_file_range -> read/write) and moves to the next one
 * when the kernel refuses the fds, counting the reason; the strategies live
 * in zc_sendfile.c, zc_splice.c, zc_cfr.c and zc_copy.c (as Redis keeps
 * one file per ae backend) and, like this file, build on zc_core.c.
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

/* What the source is, found with fstat(2) only when a strategy other than
 * sendfile is about to run: a sendfile that moves bytes needs none of it,
 * and at 4 KB the fstat was a second syscall per call (0.76-0.79x a
 * pread/write loop before it went). */
struct zc_src {
	bool known, fifo, seekable;
};

static int src_learn(struct zc_src *s, int sock, int file, const off_t *off)
{
	struct stat st;

	if (s->known)
		return 0;
	if (fstat(file, &st) < 0)
		return -errno;
	s->known = true;
	s->fifo = S_ISFIFO(st.st_mode);
	s->seekable = S_ISREG(st.st_mode) || S_ISBLK(st.st_mode);
	if (off && !s->seekable && !S_ISCHR(st.st_mode))
		return -ESPIPE;
	/* an unseekable source cannot be moved back: a short send keeps the
	 * rest for sock, which needs a free slot */
	if (!s->seekable && !zc_hold_room(sock)) {
		ZC_ADD(held_busy, 1);
		return -EBUSY;
	}
	return 0;
}

ssize_t rp_zc_file_to_socket(int sock, int file, off_t *off, size_t count)
{
	bool seen[3] = {false, false, false};
	struct zc_src src = { false, false, false };
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

	if (atomic_load_explicit(&zc_have_sendfile, memory_order_relaxed)) {
		strat = S_SENDFILE;
	} else {
		strat = next_after_sendfile();
		r = src_learn(&src, sock, file, off);
		if (r < 0)
			return r;
	}
	while (done < count) {
		size_t chunk = count - done < ZC_CHUNK_MAX ? count - done : ZC_CHUNK_MAX;

		count_call(seen, strat);
		switch (strat) {
		case S_SENDFILE:
			n = zc_sendfile_step(sock, file, off, chunk);
			if (n > 0 || n == -EAGAIN || n == -EWOULDBLOCK)
				break;
			/* a refusal, an error or 0 on the first call: learn the
			 * source now; what it says (ESPIPE, EBUSY) comes first,
			 * as it did when fstat ran before any sendfile */
			r = src_learn(&src, sock, file, off);
			if (r < 0) {
				n = r;
				break;
			}
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
			n = zc_splice_file_step(sock, file, off, chunk, src.fifo);
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
			n = zc_copy_file_step(sock, file, off, chunk, src.seekable);
			break;
		}
		if (n <= 0)
			break;
		done += (size_t)n;
		/* an unseekable source that left bytes held: sock is full */
		if (src.known && !src.seekable && rp_zc_held(sock))
			return (ssize_t)done;
	}
	if (n < 0 && (n == -EAGAIN || n == -EWOULDBLOCK))
		return done ? (ssize_t)done : -EAGAIN;
	if (n < 0)
		return done && (n == -ESPIPE || n == -EBUSY) ? (ssize_t)done : n;
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
