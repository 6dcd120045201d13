/* SPDX-License-Identifier: MIT */
/*
 * Linux cpulist syntax (Documentation/admin-guide/cputopology.rst): the
 * format of /sys/devices/system/cpu/{online,isolated}, taskset -c,
 * isolcpus= and nohz_full=. Strict on input so a typo in --cpus is an
 * error, not a silently different plan.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <ringplane/topo.h>

/* Reads one decimal number at *pp. Returns -EINVAL when there is no digit,
 * -ERANGE when the value reaches CPU_SETSIZE (digits are still consumed, so
 * a later syntax error is not masked by the order of checks). */
static int read_num(const char **pp, unsigned *out)
{
	const char *p = *pp;
	unsigned v = 0;
	bool big = false;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (!big)
			v = v * 10 + (unsigned)(*p - '0');
		if (v >= CPU_SETSIZE)
			big = true;
	}
	*pp = p;
	*out = v;
	return big ? -ERANGE : 0;
}

int rp_cpulist_parse(const char *s, cpu_set_t *out)
{
	const char *p = s;
	int range_err = 0;

	if (!s || !out)
		return -EINVAL;
	CPU_ZERO(out);
	if (*p == '\0' || (p[0] == '\n' && p[1] == '\0'))
		return 0;
	for (;;) {
		unsigned lo, hi;
		int r1, r2 = 0;

		r1 = read_num(&p, &lo);
		if (r1 == -EINVAL)
			return -EINVAL;
		hi = lo;
		if (*p == '-') {
			p++;
			r2 = read_num(&p, &hi);
			if (r2 == -EINVAL)
				return -EINVAL;
			/* Both ends in range: order checkable. An out-of-range
			 * end is reported as -ERANGE once the syntax is known
			 * good. */
			if (!r1 && !r2 && hi < lo)
				return -EINVAL;
		}
		if (r1 || r2) {
			range_err = -ERANGE;
		} else {
			for (unsigned c = lo; c <= hi; c++)
				CPU_SET(c, out);
		}
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p == '\0' || (p[0] == '\n' && p[1] == '\0'))
			break;
		return -EINVAL;
	}
	return range_err;
}

int rp_cpulist_format(const cpu_set_t *set, char *buf, size_t len)
{
	size_t used = 0;

	if (!set || !buf)
		return -EINVAL;
	if (len == 0)
		return -ENOSPC; /* not even room for the NUL */
	buf[0] = '\0';
	for (int c = 0; c < CPU_SETSIZE; c++) {
		char piece[32]; /* ",1023-1023" at most */
		int end = c, n;

		if (!CPU_ISSET((unsigned)c, set))
			continue;
		while (end + 1 < CPU_SETSIZE && CPU_ISSET((unsigned)(end + 1), set))
			end++;
		if (end > c)
			n = snprintf(piece, sizeof(piece), "%s%d-%d", used ? "," : "", c, end);
		else
			n = snprintf(piece, sizeof(piece), "%s%d", used ? "," : "", c);
		if (n < 0 || (size_t)n >= sizeof(piece))
			return -EINVAL;
		/* Stop at the last whole entry: a cut "1-3" read back as "1-"
		 * or "1" would name different CPUs. */
		if (used + (size_t)n >= len)
			return -ENOSPC;
		memcpy(buf + used, piece, (size_t)n + 1);
		used += (size_t)n;
		c = end;
	}
	return (int)used;
}
