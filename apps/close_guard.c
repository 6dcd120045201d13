/* SPDX-License-Identifier: MIT */
/*
 * LD_PRELOAD shim for test_echo: close(2) of a descriptor that is not open
 * (EBADF) is reported on stderr as "close_guard: close(N): not open". A
 * program that closes a descriptor twice either gets EBADF, or, when the
 * number was reused in between, closes someone else's file; the first is
 * what a test can see.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

int close(int fd)
{
	long r = syscall(SYS_close, fd);

	if (r < 0 && errno == EBADF)
		dprintf(2, "close_guard: close(%d): not open\n", fd);
	return (int)r;
}
