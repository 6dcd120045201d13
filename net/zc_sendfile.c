/* SPDX-License-Identifier: MIT */
/*
 * zc strategy: sendfile(2), file -> socket in the kernel. One call moves
 * at most 0x7ffff000 bytes (MAX_RW_COUNT); the chooser loops. sendfile
 * advances *off (or the file position) by what it sent, also when it
 * returns early on a signal or a full non-blocking socket, so the caller
 * advances by the return value and nothing else (nginx's
 * ngx_linux_sendfile_chain does the same). -EINVAL means the fds are
 * refused: a pipe or a file with no splice_read as source, an O_APPEND
 * socket.
 */
#include <errno.h>
#include <sys/sendfile.h>

#include "zc_impl.h"

ssize_t zc_sendfile_step(int sock, int file, off_t *off, size_t count)
{
	for (;;) {
		ssize_t n = sendfile(sock, file, off, count);

		if (n >= 0) {
			ZC_ADD(zc_bytes, n);
			return n;
		}
		if (errno != EINTR)
			return -errno;
	}
}
