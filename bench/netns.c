/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "netns.h"

void rp_netns_init(struct rp_netns *n, const char *tag, unsigned slot)
{
	unsigned pid = (unsigned)getpid();
	/* 14 bits: 13 of the pid and the slot; each value a /30 of 10.214/16 */
	unsigned idx = ((pid & 0x1fffu) << 1) | (slot & 1u);
	unsigned a = idx >> 6, b = (idx & 63u) << 2;

	memset(n, 0, sizeof(*n));
	/* "rpzc0-4194304" is 13 characters: inside IFNAMSIZ (16 with the NUL) */
	snprintf(n->ns, sizeof(n->ns), "rp%.2sbench-%u", tag, pid);
	snprintf(n->host_if, sizeof(n->host_if), "rp%.2s0-%u", tag, pid);
	snprintf(n->ns_if, sizeof(n->ns_if), "rp%.2s1-%u", tag, pid);
	snprintf(n->host_ip, sizeof(n->host_ip), "10.214.%u.%u", a, b + 1);
	snprintf(n->ns_ip, sizeof(n->ns_ip), "10.214.%u.%u", a, b + 2);
	n->prefix = 30;
}

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

/* The namespaces of @n's suite left by runs that were killed (a pid that
 * no longer exists): each taken away with its pair. Our own pid's are
 * rp_netns_down's; a live run's are never touched. */
static void sweep_dead(const struct rp_netns *n)
{
	char prefix[24], cmd[160];
	size_t plen;
	struct dirent *e;
	DIR *d = opendir("/var/run/netns");

	if (!d)
		return;
	/* "rp<tag>bench-" */
	snprintf(prefix, sizeof(prefix), "%.*s", (int)(strchr(n->ns, '-') - n->ns + 1), n->ns);
	plen = strlen(prefix);
	while ((e = readdir(d))) {
		char *end;
		unsigned long pid;

		if (strncmp(e->d_name, prefix, plen) || e->d_name[plen] < '1' ||
		    e->d_name[plen] > '9')
			continue;
		errno = 0;
		pid = strtoul(e->d_name + plen, &end, 10);
		if (errno || *end || end == e->d_name + plen || pid == (unsigned long)getpid() ||
		    pid > 0x7fffffffUL || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		/* the host end goes with its peer when the namespace does; del
		 * it too in case a process still holds the namespace */
		snprintf(cmd, sizeof(cmd), "ip link del %.4s0-%lu", n->host_if, pid);
		sh_cmd(cmd);
		snprintf(cmd, sizeof(cmd), "ip netns del %.*s%lu", (int)plen, prefix, pid);
		sh_cmd(cmd);
	}
	closedir(d);
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
	sweep_dead(n);
	rp_netns_down(n); /* ours, left by an earlier up of this run */
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
