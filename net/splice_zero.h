/* SPDX-License-Identifier: MIT */
/*
 * Internal to net/ (not installed): why a socket -> pipe splice(2) moved
 * nothing (net/splice_zero.c). Used by the relay's splice paths
 * (relay_splice.c, relay_uring.c) and zc's splice step (zc_splice.c).
 *
 * splice(2) from a TCP socket stops at the urgent mark (tcp_read_sock never
 * reads past it): there a blocking splice returns 0, a non-blocking one
 * -EAGAIN (0 too once the peer's FIN is in), while poll says POLLIN. When a
 * newer urgent byte arrives while the reader is held at the old mark, the
 * kernel steps over the old one itself (tcp_check_urg), and SIOCATMARK then
 * says 0 although bytes wait: so a 0 is an EOF only when a peek reads 0
 * too. Checked on 6.18.
 */
#ifndef RP_NET_SPLICE_ZERO_H
#define RP_NET_SPLICE_ZERO_H

#include <sys/types.h>

enum splice_zero {
	SPLICE_ZERO_EOF = 0, /* the peer's FIN (or @fd is not a socket: a pipe's 0) */
	SPLICE_ZERO_MARK,    /* at the urgent mark: a read (recv) steps over the urgent byte */
	SPLICE_ZERO_DATA,    /* not at a mark, not an EOF, bytes wait: a mark the kernel
				moved on (splice again; a read reads them) */
	SPLICE_ZERO_EMPTY,   /* not at a mark, nothing to read now: wait for POLLIN */
};

/*
 * splice_zero_why - classify a socket -> pipe splice from @fd that moved
 * nothing; @res is what it returned: 0 or -EAGAIN. For -EAGAIN one ioctl
 * (SIOCATMARK): MARK or EMPTY. For 0 the ioctl and, when not at the mark,
 * one recv(MSG_PEEK | MSG_DONTWAIT) of a byte: EOF, DATA or EMPTY.
 * Returns an enum splice_zero or a negative errno (the peek's: the peer
 * reset). Only a splice that moved nothing calls it, never the bulk path.
 */
int splice_zero_why(int fd, ssize_t res);

#endif
