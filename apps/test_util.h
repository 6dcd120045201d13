/* SPDX-License-Identifier: MIT */
/*
 * What the integration test programs of apps/ (test_echo, test_relay,
 * test_serve) share: the binary under test, a failure count and CHECK (a
 * failed check is printed and counted, the program goes on and exits 1 at
 * the end), a monotonic clock in ms (now_ms, from test_proc.h), a small
 * xorshift generator, a bounded read (read_upto) and a counter of a
 * server's per-shard stats lines (shard_stat). Each program includes it
 * once.
 */
#ifndef RP_APPS_TEST_UTIL_H
#define RP_APPS_TEST_UTIL_H

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "test_proc.h"

static const char *bin;	 /* the ringplane binary under test (argv[1]) */
static int failures;

#define CHECK(cond, ...)                                                     \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                        \
			fputc('\n', stderr);                                 \
			failures++;                                          \
		}                                                            \
	} while (0)

/* xorshift64; each program seeds rng_state as it likes */
static uint64_t rng_state __attribute__((unused)) = 0x9E3779B97F4A7C15ull;

static inline uint64_t rng(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

#define READ_FULL 1 /* read_upto's *end: @cap bytes came */

/*
 * Read @fd into @buf, in as many pieces as come, until @cap bytes, its
 * EOF, an error or @ms: the bytes read, kept whatever ended it. *@end
 * (when not NULL) says what did: READ_FULL, 0 at the EOF, -errno on an
 * error (a reset: -ECONNRESET), -ETIMEDOUT when @ms passed first.
 */
static size_t __attribute__((unused)) read_upto(int fd, void *buf, size_t cap, unsigned ms, int *end)
{
	uint64_t deadline = now_ms() + ms;
	size_t got = 0;
	int why = -ETIMEDOUT;

	while (got < cap && now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 20) <= 0)
			continue;
		r = recv(fd, (char *)buf + got, cap - got, MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0) {
			why = r ? -errno : 0;
			break;
		}
		got += (size_t)r;
	}
	if (got == cap)
		why = READ_FULL;
	if (end)
		*end = why;
	return got;
}

/* The value of counter @name ("... @name N ...") on the last line of
 * @log that begins "shard @id: " (the per-shard stats lines the servers
 * print, their exit's last); 0 when there is none. */
static unsigned long long __attribute__((unused))
shard_stat(const char *log, unsigned id, const char *name)
{
	char head[32], key[64];
	const char *line = NULL, *end, *p;

	snprintf(head, sizeof(head), "shard %u: ", id);
	for (p = log; (p = strstr(p, head)); p++)
		if (p == log || p[-1] == '\n')
			line = p;
	if (!line)
		return 0;
	end = strchr(line, '\n');
	snprintf(key, sizeof(key), " %s ", name);
	p = strstr(line, key);
	if (!p || (end && p > end))
		return 0;
	return strtoull(p + strlen(key), NULL, 10);
}

#endif
