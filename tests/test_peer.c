/* SPDX-License-Identifier: MIT */
/*
 * net/peer: is a socket's peer on this host? The address steps on real
 * sockets (loopback TCP over IPv4 and IPv6, a socketpair, an unconnected
 * socket: -ENOTCONN, a closed fd: -EBADF); the route step on real routes:
 * 127.0.0.1, ::1 and this host's own address are RTN_LOCAL, an address
 * behind the default route's device is not local where that device is a
 * real one (it has a /sys/class/net/DEV/device); and, as root, in a
 * network namespace of a forked child's own (the host untouched), over a
 * veth pair whose far end is in a further namespace (local: the route
 * leaves by a veth, though the address says nothing) and a bridge with an
 * address and no port (not local: a bridge is not followed), each a
 * visible skip where it cannot be made.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <ringplane/outq.h>

#include "child_wait.h"
#include "netns_test.h"
#include "peer.h"

static void tcp_pair(int family, int *a, int *b, bool *ok)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	socklen_t sl = family == AF_INET ? sizeof(*s4) : sizeof(*s6);
	int l = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	*ok = false;
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = (sa_family_t)family;
	if (family == AF_INET)
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		s6->sin6_addr = in6addr_loopback;
	if (l < 0 || bind(l, (struct sockaddr *)&ss, sl) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&ss, &sl)) {
		if (l >= 0)
			close(l);
		return;
	}
	*a = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(*a >= 0);
	assert_int_equal(connect(*a, (struct sockaddr *)&ss, sl), 0);
	*b = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	assert_true(*b >= 0);
	close(l);
	*ok = true;
}

static void sa4(struct sockaddr_storage *ss, const char *ip)
{
	struct sockaddr_in *s = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	s->sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, ip, &s->sin_addr), 1);
}

/* The address steps: loopback and AF_UNIX decide alone (1), an unconnected
 * socket and a bad fd are errors, and rp_peer_is_local agrees. */
static void test_addresses(void **state)
{
	struct peer_addrs pa;
	int a, b, sv[2], t;
	bool ok;

	(void)state;
	tcp_pair(AF_INET, &a, &b, &ok);
	assert_true(ok);
	assert_int_equal(peer_addrs_get(a, &pa), 0);
	assert_int_equal(pa.peer.ss_family, AF_INET);
	assert_int_equal(peer_addrs_local(&pa), 1);
	assert_true(rp_peer_is_local(a));
	assert_true(rp_peer_is_local(b));
	close(a);
	close(b);

	tcp_pair(AF_INET6, &a, &b, &ok);
	if (ok) {
		assert_int_equal(peer_addrs_get(b, &pa), 0);
		assert_int_equal(pa.peer.ss_family, AF_INET6);
		assert_int_equal(peer_addrs_local(&pa), 1);
		assert_true(rp_peer_is_local(a));
		close(a);
		close(b);
	} else {
		print_message("# addresses: SKIP ::1 case: no IPv6 loopback here\n");
	}

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(peer_addrs_get(sv[0], &pa), 0);
	assert_int_equal(peer_addrs_local(&pa), 1);
	assert_true(rp_peer_is_local(sv[1]));
	close(sv[0]);
	close(sv[1]);

	t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(t >= 0);
	assert_int_equal(peer_addrs_get(t, &pa), -ENOTCONN);
	assert_false(rp_peer_is_local(t));
	close(t);
	assert_int_equal(peer_addrs_get(-1, &pa), -EBADF);
	assert_false(rp_peer_is_local(-1));

	/* a family that is neither IP nor AF_UNIX: not local, no route */
	memset(&pa, 0, sizeof(pa));
	pa.peer.ss_family = AF_NETLINK;
	assert_int_equal(peer_addrs_local(&pa), -1);
}

/* The default route's device from /proc/net/route ("" when none). */
static void default_dev(char *dev, size_t n)
{
	char line[256], ifn[64];
	unsigned long dst;
	FILE *f = fopen("/proc/net/route", "r");

	dev[0] = '\0';
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%63s %lx", ifn, &dst) == 2 && dst == 0) {
			snprintf(dev, n, "%s", ifn);
			break;
		}
	}
	fclose(f);
}

/* The route step on this host's own routes. */
static void test_routes(void **state)
{
	struct sockaddr_storage ss, own;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	char dev[64], path[128];
	struct stat st;
	int u;

	(void)state;
	sa4(&ss, "127.0.0.1");
	assert_true(peer_route_local(&ss)); /* RTN_LOCAL */
	assert_int_equal(peer_route_kind(&ss), PEER_ROUTE_LO);
	sa4(&ss, "127.1.2.3");
	assert_true(peer_route_local(&ss));
	memset(&ss, 0, sizeof(ss));
	s6->sin6_family = AF_INET6;
	s6->sin6_addr = in6addr_loopback;
	if (peer_route_local(&ss))
		print_message("# routes: ::1 is RTN_LOCAL\n");
	else
		print_message("# routes: SKIP ::1 case: no IPv6 route for it here\n");
	/* an AF_UNIX address has no route: false, no lookup */
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	assert_false(peer_route_local(&ss));

	/* this host's address on its default route (a UDP connect sends
	 * nothing): RTN_LOCAL */
	sa4(&ss, "203.0.113.1");
	((struct sockaddr_in *)&ss)->sin_port = htons(9);
	u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(u >= 0);
	if (connect(u, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)) ||
	    getsockname(u, (struct sockaddr *)&own, &(socklen_t){sizeof(own)})) {
		print_message("# routes: SKIP own-address and remote cases: no default route\n");
		close(u);
		return;
	}
	close(u);
	((struct sockaddr_in *)&own)->sin_port = 0;
	assert_true(peer_route_local(&own));
	assert_int_equal(peer_route_kind(&own), PEER_ROUTE_LO);

	/* an address out through the default route's device: remote where
	 * that device is a real one (virtio, a NIC); a veth there (a
	 * container) makes every peer local, by design */
	default_dev(dev, sizeof(dev));
	snprintf(path, sizeof(path), "/sys/class/net/%s/device", dev);
	if (!dev[0] || stat(path, &st)) {
		print_message("# routes: SKIP remote case: default route's device '%s' is not a real one\n",
			      dev);
		return;
	}
	assert_false(peer_route_local(&ss));
	assert_int_equal(peer_route_kind(&ss), PEER_ROUTE_REMOTE);
	print_message("# routes: 203.0.113.1 via %s is remote\n", dev);
}

/* ---- a veth into a namespace, and a bridge ---- */

/*
 * All of it in a forked child inside a network namespace of its own
 * (unshare(CLONE_NEWNET)): the host's links, addresses and routes are
 * never touched and parallel runs cannot collide on the fixed names. The
 * veth's far end goes into a further namespace, held by a grandchild.
 */

#define WAIT_S 60.0

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "veth child: %s:%d: %s\n", __FILE__, __LINE__, #c);        \
			ok = false;                                                                \
			goto out;                                                                  \
		}                                                                                  \
	} while (0)

/* The child's work: 0 passed, 1 failed, 77 skipped (printed why). */
static int veth_bridge_child(void)
{
	static const char bridge[] =
		"ip link add rp_tpbr type bridge && "
		"ip addr add 10.237.0.1/24 dev rp_tpbr && ip link set rp_tpbr up";
	struct sockaddr_storage ss;
	struct peer_addrs pa;
	struct netns_veth v;
	int u, rc;
	bool ok = true;

	rc = netns_enter("veth");
	if (rc == 0)
		rc = netns_veth_make(&v, "veth", "rp_tp0", "10.236.0.1/30", "rp_tp1",
				     "10.236.0.2/30", (unsigned)WAIT_S);
	if (rc)
		return rc;
	rc = 77;
	if (system(bridge) != 0) {
		printf("# veth: SKIP: cannot make a bridge here\n");
		goto end;
	}
	/* the veth: the address decides nothing, the route does */
	sa4(&ss, "10.236.0.2");
	CHECK(peer_route_local(&ss));
	CHECK(peer_route_kind(&ss) == PEER_ROUTE_VETH);
	((struct sockaddr_in *)&ss)->sin_port = htons(9);
	u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CHECK(u >= 0);
	CHECK(connect(u, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)) == 0);
	CHECK(peer_addrs_get(u, &pa) == 0);
	CHECK(peer_addrs_local(&pa) == 0);
	CHECK(peer_addrs_kind(&pa, peer_route_kind) == PEER_ROUTE_VETH);
	CHECK(rp_peer_is_local(u));
	close(u);
	/* v4-mapped: asked as IPv4 */
	{
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		memset(&ss, 0, sizeof(ss));
		s6->sin6_family = AF_INET6;
		CHECK(inet_pton(AF_INET6, "::ffff:10.236.0.2", &s6->sin6_addr) == 1);
		CHECK(peer_route_local(&ss));
	}
	/* the bridge (no port behind it): not followed, not local */
	sa4(&ss, "10.237.0.2");
	CHECK(!peer_route_local(&ss));
	CHECK(peer_route_kind(&ss) == PEER_ROUTE_REMOTE);
	((struct sockaddr_in *)&ss)->sin_port = htons(9);
	u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CHECK(u >= 0);
	CHECK(connect(u, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)) == 0);
	CHECK(!rp_peer_is_local(u));
	close(u);
out:
	rc = ok ? 0 : 1;
end:
	netns_veth_end(&v);
	fflush(stdout);
	return rc;
}

static void test_veth_bridge(void **state)
{
	pid_t pid;

	(void)state;
	if (geteuid() != 0) {
		print_message("# veth: SKIP: network namespaces need root\n");
		skip();
	}
	fflush(stdout);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(veth_bridge_child());
	child_expect_ok(pid, WAIT_S, "veth child");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_veth_bridge),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
