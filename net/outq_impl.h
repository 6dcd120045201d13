/* SPDX-License-Identifier: MIT */
/*
 * net/outq_impl.h - what the library's own users of rp_outq share with
 * net/outq.c and an embedder does not see.
 */
#ifndef RP_NET_OUTQ_IMPL_H
#define RP_NET_OUTQ_IMPL_H

#include <ringplane/outq.h>

/*
 * rp_outq_init for an @fd the caller already knows is a socket (the relay
 * asked once in rp_relay_start): the same checks and results, without the
 * getsockopt(2) that rp_outq_init makes. @sh, @out and @fd >= 0 are the
 * caller's to guarantee.
 */
int outq_init_socket(struct rp_shard *sh, struct rp_outq **out, int fd,
		     const struct rp_outq_opts *opts);

#endif
