/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "netns.h"

static int sh_cmd(const char *cmd)
{
	char buf[512];
	int st;

	if (snprintf(buf, sizeof(buf), "%s >/dev/null 2>&1", cmd) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	st = system(buf);
	return st == 0 ? 0 : -EIO;
}

void rp_netns_down(const struct rp_netns *n)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "ip link del %s", n->host_if);
	sh_cmd(cmd);
	snprintf(cmd, sizeof(cmd), "ip netns del %s", n->ns);
	sh_cmd(cmd);
}

int rp_netns_up(const struct rp_netns *n, char *why, size_t whysz)
{
	char cmds[7][160];
	size_t nc = 0;

	if (geteuid() != 0) {
		snprintf(why, whysz,
			 "not root: creating a network namespace and a veth pair needs CAP_NET_ADMIN");
		return -EPERM;
	}
	snprintf(cmds[nc++], sizeof(cmds[0]), "ip netns add %s", n->ns);
	snprintf(cmds[nc++], sizeof(cmds[0]), "ip link add %s type veth peer name %s netns %s",
		 n->host_if, n->ns_if, n->ns);
	snprintf(cmds[nc++], sizeof(cmds[0]), "ip addr add %s/%u dev %s", n->host_ip, n->prefix,
		 n->host_if);
	snprintf(cmds[nc++], sizeof(cmds[0]), "ip link set %s up", n->host_if);
	snprintf(cmds[nc++], sizeof(cmds[0]), "ip -n %s addr add %s/%u dev %s", n->ns, n->ns_ip,
		 n->prefix, n->ns_if);
	snprintf(cmds[nc++], sizeof(cmds[0]), "ip -n %s link set %s up", n->ns, n->ns_if);
	snprintf(cmds[nc++], sizeof(cmds[0]), "ip -n %s link set lo up", n->ns);
	rp_netns_down(n); /* left over from a killed run */
	for (size_t i = 0; i < nc; i++)
		if (sh_cmd(cmds[i])) {
			snprintf(why, whysz, "`%s` failed", cmds[i]);
			rp_netns_down(n);
			return -EIO;
		}
	/* IPv4 addresses need no duplicate address detection: usable at once */
	return 0;
}

int rp_netns_enter(const struct rp_netns *n, int *back)
{
	char path[128];
	int self, ns, ret = 0;

	snprintf(path, sizeof(path), "/var/run/netns/%s", n->ns);
	self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	ns = open(path, O_RDONLY | O_CLOEXEC);
	if (self < 0 || ns < 0 || setns(ns, CLONE_NEWNET))
		ret = -errno;
	if (ns >= 0)
		close(ns);
	if (ret) {
		if (self >= 0)
			close(self);
		return ret;
	}
	*back = self;
	return 0;
}

int rp_netns_leave(int back)
{
	int ret = setns(back, CLONE_NEWNET) ? -errno : 0;

	close(back);
	return ret;
}
