/* SPDX-License-Identifier: MIT */
/*
 * Internal to net/ (not installed): is a connected socket's peer on this
 * host? rp_peer_is_local (include/ringplane/outq.h) is these steps in a
 * row; callers that already hold the addresses, or that must tell a reset
 * (ENOTCONN) from a remote peer, or that cache the route's answer, use the
 * steps. Used by outq.c (adaptive SEND_ZC) and zc.c (file -> socket for a
 * local peer); peer_socket_check by outq.c and relay.c.
 */
#ifndef RP_NET_PEER_H
#define RP_NET_PEER_H

#include <stdbool.h>
#include <sys/socket.h>

struct peer_addrs {
	struct sockaddr_storage peer, self;
};

/* getpeername + getsockname of @fd (two syscalls): 0, or a negative errno
 * (-ENOTCONN: never connected, or a reset left TCP in CLOSE; -EBADF...). */
int peer_addrs_get(int fd, struct peer_addrs *a);

/* What the addresses alone say: 1 local (AF_UNIX, 127/8, ::1,
 * ::ffff:127.x.y.z, the peer's address is the socket's own), 0 not
 * decided (an AF_INET or AF_INET6 peer elsewhere: ask the route), -1 a
 * family that is neither (not local). No syscall. */
int peer_addrs_local(const struct peer_addrs *a);

/* The route to @peer (AF_INET or AF_INET6; v4-mapped asked as IPv4) is
 * RTN_LOCAL or leaves by a loopback interface or a veth: one rtnetlink
 * RTM_GETROUTE (four syscalls), then up to five for the interface. False
 * on any failure. A bridge is not followed. */
bool peer_route_local(const struct sockaddr_storage *peer);

/* The same lookup, saying which way the route leaves: remote, the
 * loopback (RTN_LOCAL or an IFF_LOOPBACK device), or a veth. */
enum { PEER_ROUTE_REMOTE = 0, PEER_ROUTE_LO = 1, PEER_ROUTE_VETH = 2 };
int peer_route_kind(const struct sockaddr_storage *peer);

/* rp_peer_is_local's rule on addresses already read (the one place it is
 * written): PEER_ROUTE_LO where the addresses say local (AF_UNIX too),
 * PEER_ROUTE_REMOTE for a family that is neither IP nor AF_UNIX, else
 * what @route answers for the peer's address (peer_route_kind, or a
 * cache of it). */
int peer_addrs_kind(const struct peer_addrs *a, int (*route)(const struct sockaddr_storage *));

/* rp_peer_is_local on addresses already read: peer_addrs_kind with the
 * route looked up (peer_route_kind) is not PEER_ROUTE_REMOTE. */
bool peer_addrs_is_local(const struct peer_addrs *a);

/* @fd is a socket: 0, -ENOTSOCK for another open file (a pipe's end or a
 * regular file, whose every send would fail), -EINVAL for no open fd.
 * One getsockopt(2): for a call's start, never on the path of a byte. */
int peer_socket_check(int fd);

#endif /* RP_NET_PEER_H */
