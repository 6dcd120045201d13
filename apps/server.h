/* SPDX-License-Identifier: MIT */
/*
 * What every server command of `ringplane` does the same way: one listener
 * per shard on the same address (SO_REUSEPORT), the "listening on" line,
 * the fd limit, and the control thread's wait for signals (SIGINT/SIGTERM
 * stop; SIGUSR1 or --stats-interval print the counters).
 */
#ifndef RP_APPS_SERVER_H
#define RP_APPS_SERVER_H

#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>

/*
 * Open @n listeners on @ss (SO_REUSEADDR|SO_REUSEPORT, backlog 4096) into
 * @fds. The first settles a port 0: @ss/@len are updated to the address
 * actually bound. On failure prints "ringplane CMD: listen on ARG: why",
 * closes what it opened (@fds back to -1) and returns the negative errno.
 */
int rp_app_listeners(const char *cmd, const char *arg, struct sockaddr_storage *ss,
		     socklen_t *len, int *fds, unsigned n);

/* "HOST:PORT", or "[HOST]:PORT" for IPv6, into @out. */
void rp_app_addr_str(const struct sockaddr_storage *ss, char *out, size_t cap);

/* Raise RLIMIT_NOFILE's soft limit to the hard one (a descriptor per connection). */
void rp_app_raise_nofile(void);

/* Block SIGINT, SIGTERM and SIGUSR1 in the calling thread (the shard threads
 * it starts inherit the mask) and ignore SIGPIPE; *@sigs gets the set. */
void rp_app_block_signals(sigset_t *sigs);

/* Wait for SIGINT or SIGTERM; on SIGUSR1, or every @interval seconds when
 * not 0, call @stats(@arg). */
void rp_app_wait_signals(const sigset_t *sigs, unsigned interval, void (*stats)(void *),
			 void *arg);

#endif
