/* SPDX-License-Identifier: MIT */
/*
 * Why a socket -> pipe splice moved nothing (splice_zero.h): one place for
 * the urgent-mark rules the relay's splice paths and zc's splice step share.
 */
#include <errno.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "splice_zero.h"

int splice_zero_why(int fd, ssize_t res)
{
	int at = 0;
	char c;
	ssize_t n;

	if (ioctl(fd, SIOCATMARK, &at) < 0) {
		/* not a socket with a mark (a pipe: ENOTTY): 0 is its EOF */
		if (errno != ENOTTY && errno != ENOTSOCK && errno != EINVAL && errno != EOPNOTSUPP)
			return -errno;
		return res == 0 ? SPLICE_ZERO_EOF : SPLICE_ZERO_EMPTY;
	}
	if (at)
		return SPLICE_ZERO_MARK;
	if (res != 0)
		return SPLICE_ZERO_EMPTY; /* -EAGAIN, not at a mark: the socket is empty */
	/* a 0 not at the mark: an EOF only when a peek reads 0 too (a mark the
	 * kernel moved on between the splice and the ioctl leaves bytes) */
	n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0)
		return SPLICE_ZERO_EOF;
	if (n > 0)
		return SPLICE_ZERO_DATA;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return SPLICE_ZERO_EMPTY;
	if (errno == ENOTSOCK)
		return SPLICE_ZERO_EOF;
	return -errno;
}
