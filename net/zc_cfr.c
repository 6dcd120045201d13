/* SPDX-License-Identifier: MIT */
/*
 * zc strategy: copy_file_range(2), file -> file in the kernel (a reflink
 * or server-side copy where the filesystem has one, an in-kernel splice
 * otherwise). Refusals the chooser falls back on: EXDEV (two filesystems;
 * 5.3-5.18 allowed some, 5.19+ only within one filesystem type), ENOSYS
 * (before 4.5, or a seccomp filter), EOPNOTSUPP, EINVAL (not regular
 * files, overlapping ranges). 0 bytes is EOF or a file that reports size 0
 * (/proc): the chooser asks read(2).
 */
#include <errno.h>
#include <unistd.h>

#include "zc_impl.h"

ssize_t zc_cfr_step(int dst, int src, off_t *off_in, off_t *off_out, size_t count)
{
	/* copy_file_range takes loff_t, which need not be off_t's type */
	loff_t in = off_in ? (loff_t)*off_in : 0, out = off_out ? (loff_t)*off_out : 0;

	for (;;) {
		ssize_t n = copy_file_range(src, off_in ? &in : NULL, dst, off_out ? &out : NULL,
					    count, 0);
		if (n >= 0) {
			if (off_in)
				*off_in = (off_t)in;
			if (off_out)
				*off_out = (off_t)out;
			ZC_ADD(zc_bytes, n);
			return n;
		}
		if (errno != EINTR)
			return -errno;
	}
}
