/* SPDX-License-Identifier: MIT */
/*
 * Is a connected socket's peer on this host (net/peer.h, and
 * rp_peer_is_local in include/ringplane/outq.h)? First the addresses
 * (AF_UNIX, loopback, the socket's own address), then, when they do not
 * decide, the route: one rtnetlink RTM_GETROUTE for the peer's address,
 * and the interface it leaves by, read with SIOCGIFFLAGS (IFF_LOOPBACK)
 * and ETHTOOL_GDRVINFO (driver "veth": a peer in another network
 * namespace on this host). The kernel copies what it delivers to such a
 * peer, which is what SEND_ZC (outq.c) and rp_zc_file_to_socket (zc.c)
 * decide by.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/ethtool.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ringplane/outq.h>

#include "peer.h"

/*
 * The interface the route to @dst (AF_INET or AF_INET6, @len bytes) leaves
 * by, from one RTM_GETROUTE: > 0 an ifindex, 0 a local route (RTN_LOCAL:
 * the address is this host's own), -1 no answer. @scope (IPv6 link-local)
 * goes in as RTA_OIF. rtnetlink answers a GETROUTE inside the sendto that
 * asks it, so the reply is already queued when sendto returns and a
 * non-blocking recv needs no timeout: nothing there means no answer.
 */
static int route_oif(int family, const void *dst, size_t len, uint32_t scope)
{
	struct {
		struct nlmsghdr nh;
		struct rtmsg rt;
		char attrs[2 * RTA_SPACE(16)];
	} req;
	union {
		struct nlmsghdr nh;
		char b[2048]; /* one route: a few hundred bytes */
	} ans;
	struct sockaddr_nl kern = {.nl_family = AF_NETLINK};
	struct rtattr *a;
	ssize_t n;
	int s, attrs_len, oif = -1;

	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_type = RTM_GETROUTE;
	req.nh.nlmsg_flags = NLM_F_REQUEST;
	req.nh.nlmsg_seq = 1;
	req.rt.rtm_family = (unsigned char)family;
	req.rt.rtm_dst_len = (unsigned char)(len * 8);
	a = (struct rtattr *)req.attrs;
	a->rta_type = RTA_DST;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	memcpy(RTA_DATA(a), dst, len);
	attrs_len = RTA_SPACE(len);
	if (scope) {
		a = (struct rtattr *)(req.attrs + attrs_len);
		a->rta_type = RTA_OIF;
		a->rta_len = RTA_LENGTH(sizeof(scope));
		memcpy(RTA_DATA(a), &scope, sizeof(scope));
		attrs_len += RTA_SPACE(sizeof(scope));
	}
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(req.rt)) + (unsigned)attrs_len;

	s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
	if (s < 0)
		return -1;
	if (sendto(s, &req, req.nh.nlmsg_len, 0, (struct sockaddr *)&kern, sizeof(kern)) !=
	    (ssize_t)req.nh.nlmsg_len)
		goto out;
	n = recv(s, &ans, sizeof(ans), MSG_DONTWAIT | MSG_TRUNC);
	if (n < (ssize_t)NLMSG_LENGTH(sizeof(struct rtmsg)) || (size_t)n > sizeof(ans))
		goto out; /* error, nothing, too short or truncated */
	if (!NLMSG_OK(&ans.nh, (size_t)n) || ans.nh.nlmsg_type != RTM_NEWROUTE ||
	    ans.nh.nlmsg_seq != req.nh.nlmsg_seq ||
	    ans.nh.nlmsg_len < NLMSG_LENGTH(sizeof(struct rtmsg)))
		goto out; /* NLMSG_ERROR: no route */
	{
		const struct rtmsg *rt = NLMSG_DATA(&ans.nh);
		int left = (int)ans.nh.nlmsg_len - (int)NLMSG_LENGTH(sizeof(*rt));

		if (rt->rtm_type == RTN_LOCAL) {
			oif = 0;
			goto out;
		}
		for (a = RTM_RTA(rt); RTA_OK(a, left); a = RTA_NEXT(a, left)) {
			uint32_t v;

			if (a->rta_type != RTA_OIF || RTA_PAYLOAD(a) != sizeof(v))
				continue;
			memcpy(&v, RTA_DATA(a), sizeof(v));
			if (v && v <= INT32_MAX)
				oif = (int)v;
			break;
		}
	}
out:
	close(s);
	return oif;
}

/* Interface @oif is the loopback or a veth (ethtool's driver name). The
 * name comes from SIOCGIFNAME on the same socket (what if_indextoname
 * does with a socket of its own). */
static int oif_kind(int oif)
{
	struct ethtool_drvinfo info;
	struct ifreq ifr;
	int kind = PEER_ROUTE_REMOTE;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return PEER_ROUTE_REMOTE;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_ifindex = oif;
	if (ioctl(s, SIOCGIFNAME, &ifr))
		goto out;
	ifr.ifr_name[IFNAMSIZ - 1] = '\0';
	if (!ioctl(s, SIOCGIFFLAGS, &ifr) && (ifr.ifr_flags & IFF_LOOPBACK)) {
		kind = PEER_ROUTE_LO;
		goto out;
	}
	memset(&info, 0, sizeof(info));
	info.cmd = ETHTOOL_GDRVINFO;
	ifr.ifr_data = (char *)&info;
	if (!ioctl(s, SIOCETHTOOL, &ifr)) {
		info.driver[sizeof(info.driver) - 1] = '\0';
		if (!strcmp(info.driver, "veth"))
			kind = PEER_ROUTE_VETH;
	}
out:
	close(s);
	return kind;
}

/*
 * The peer's route leaves by the loopback or a veth, or is RTN_LOCAL. A
 * bridge is not followed: it may hold a real NIC beside the veths, and
 * which port a peer sits behind is the bridge's FDB, not the route; a peer
 * behind a bridge stays remote (zero-copy probes find out the rest).
 */
int peer_route_kind(const struct sockaddr_storage *peer)
{
	int oif = -1;

	if (peer->ss_family == AF_INET) {
		const struct sockaddr_in *p = (const void *)peer;

		oif = route_oif(AF_INET, &p->sin_addr, sizeof(p->sin_addr), 0);
	} else if (peer->ss_family == AF_INET6) {
		const struct sockaddr_in6 *p = (const void *)peer;

		if (IN6_IS_ADDR_V4MAPPED(&p->sin6_addr)) {
			oif = route_oif(AF_INET, p->sin6_addr.s6_addr + 12, 4, 0);
		} else {
			uint32_t scope =
				IN6_IS_ADDR_LINKLOCAL(&p->sin6_addr) ? p->sin6_scope_id : 0;

			oif = route_oif(AF_INET6, &p->sin6_addr, sizeof(p->sin6_addr), scope);
		}
	}
	if (oif < 0)
		return PEER_ROUTE_REMOTE;
	return oif == 0 ? PEER_ROUTE_LO : oif_kind(oif);
}

bool peer_route_local(const struct sockaddr_storage *peer)
{
	return peer_route_kind(peer) != PEER_ROUTE_REMOTE;
}

int peer_socket_check(int fd)
{
	int type;
	socklen_t len = sizeof(type);

	if (!getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len))
		return 0;
	return errno == ENOTSOCK ? -ENOTSOCK : -EINVAL;
}

int peer_addrs_get(int fd, struct peer_addrs *a)
{
	socklen_t pl = sizeof(a->peer), sl = sizeof(a->self);

	if (getpeername(fd, (struct sockaddr *)&a->peer, &pl) ||
	    getsockname(fd, (struct sockaddr *)&a->self, &sl))
		return -errno;
	return 0;
}

int peer_addrs_local(const struct peer_addrs *a)
{
	if (a->peer.ss_family == AF_UNIX)
		return 1;
	if (a->peer.ss_family == AF_INET) {
		const struct sockaddr_in *p = (const void *)&a->peer, *s = (const void *)&a->self;

		if ((ntohl(p->sin_addr.s_addr) >> 24) == 127 ||
		    p->sin_addr.s_addr == s->sin_addr.s_addr)
			return 1;
		return 0;
	}
	if (a->peer.ss_family == AF_INET6) {
		const struct sockaddr_in6 *p = (const void *)&a->peer, *s = (const void *)&a->self;
		const uint8_t *b = p->sin6_addr.s6_addr;

		if (IN6_IS_ADDR_LOOPBACK(&p->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&p->sin6_addr) && b[12] == 127) ||
		    !memcmp(&p->sin6_addr, &s->sin6_addr, sizeof(p->sin6_addr)))
			return 1;
		return 0;
	}
	return -1;
}

int peer_addrs_kind(const struct peer_addrs *a, int (*route)(const struct sockaddr_storage *))
{
	int r = peer_addrs_local(a);

	if (r != 0)
		return r > 0 ? PEER_ROUTE_LO : PEER_ROUTE_REMOTE;
	return route(&a->peer);
}

bool peer_addrs_is_local(const struct peer_addrs *a)
{
	return peer_addrs_kind(a, peer_route_kind) != PEER_ROUTE_REMOTE;
}

bool rp_peer_is_local(int fd)
{
	struct peer_addrs a;

	return !peer_addrs_get(fd, &a) && peer_addrs_is_local(&a);
}
