/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "netns.h"

#define LOCK_DIR "/run/ringplane-bench"
#define NIDX 16384u /* /30s in 10.214.0.0/16 */
#define TRIES 256u

void rp_netns_init(struct rp_netns *n, const char *tag, unsigned slot)
{
	memset(n, 0, sizeof(*n));
	snprintf(n->tag, sizeof(n->tag), "%.2s", tag);
	n->slot = slot & 1u;
	n->lockfd = -1;
	n->cleanup = -1;
}

static int run_argv(char **argv);

/* @cmd ("ip ...", words split at spaces) run as a child in its own process
 * group, registered for the SIGINT/SIGTERM cleanup while it runs (system()
 * would ignore SIGINT while waiting, and a SIGTERM could leave an `ip netns
 * add` finishing after the handler's del): rp_cleanup_fork. A child killed
 * by SIGINT or SIGTERM is re-raised here. */
static int sh_cmd(const char *cmd)
{
	char buf[512], *argv[24], *save = NULL;
	size_t n = 0;

	if (snprintf(buf, sizeof(buf), "%s", cmd) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
		if (n + 1 >= sizeof(argv) / sizeof(argv[0]))
			return -E2BIG;
		argv[n++] = w;
	}
	if (!n)
		return -EINVAL;
	argv[n] = NULL;
	return run_argv(argv);
}

/* ringplane-tune's udev rule (tuning/lib/rps.sh): the mask it gives veth
 * devices made on a tuned host. */
#define TUNE_RULE "/etc/udev/rules.d/90-ringplane-veth-rps.rules"

/* The longest mask taken: the kernel's cpumask text, comma-separated
 * 32-bit groups of 8 hex digits ("1,00000000,00000001" for CPUs 0 and 64;
 * ringplane-tune writes it so), for up to 4096 CPUs: 1024 digits, 127
 * commas. */
#define RPS_MASK_MAX (4096 / 4 + 4096 / 32)

/* A mask the kernel's rps_cpus reads: hex digits in groups split by single
 * commas (none first or last), at most RPS_MASK_MAX characters. */
static int hex_mask(const char *m)
{
	size_t n = strlen(m);

	if (!n || n > RPS_MASK_MAX || strspn(m, "0123456789abcdefABCDEF,") != n)
		return 0;
	return m[0] != ',' && m[n - 1] != ',' && !strstr(m, ",,");
}

/* The mask ringplane-tune's rule writes: 1 with it in @mask, 0 without a
 * rule (or without rps_cpus in it), -1 when the rule is there but its mask
 * is not one hex_mask() takes (@mask "" then). */
static int tune_rule_mask(char *mask, size_t sz)
{
	char buf[4096];
	const char *p;
	size_t n = 0;
	FILE *f = fopen(TUNE_RULE, "re");

	mask[0] = 0;
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strstr(buf, "rps_cpus}=\"");
	if (!p)
		return 0;
	p += strlen("rps_cpus}=\"");
	n = strcspn(p, "\"");
	if (p[n] != '"' || n >= sz)
		return -1;
	memcpy(mask, p, n);
	mask[n] = 0;
	if (!hex_mask(mask)) {
		mask[0] = 0;
		return -1;
	}
	return 1;
}

/* The receive steering of the pair: RPS on both ends' rx-0 (the
 * namespace's through `ip netns exec`, which mounts its own /sys), the
 * knob of docs/net.md's "Adaptive over veth: the receive side's
 * reordering" (veth receives on the sending CPU: a flow sent from both CPUs
 * lands in two backlogs and is reordered). The mask: RP_BENCH_VETH_RPS=<hex
 * mask>, else the one ringplane-tune's udev rule gives veths on a tuned
 * host (the namespace's end is made inside the namespace, where the host's
 * udev never sees it, so the bench writes both ends itself);
 * RP_BENCH_VETH_RPS=none, or no rule, leaves the pair as made. @n->steer
 * says which, for the suites' notes; a failed write is said there and on
 * stderr, and the run goes on. */
static void veth_tune(struct rp_netns *n)
{
	const char *env = getenv("RP_BENCH_VETH_RPS");
	const char *ends[2] = { n->host_if, n->ns_if };
	char mask[RPS_MASK_MAX + 1] = "", script[RPS_MASK_MAX + 128], ip_ns[64];
	const char *src;
	int bad = 0;

	if (env && *env && strcmp(env, "none")) {
		if (!hex_mask(env)) {
			snprintf(n->steer, sizeof(n->steer),
				 "none: RP_BENCH_VETH_RPS=%.40s is no hex mask, rps_cpus as made",
				 env);
			return;
		}
		snprintf(mask, sizeof(mask), "%s", env);
		src = "RP_BENCH_VETH_RPS";
	} else if (env && !strcmp(env, "none")) {
		snprintf(n->steer, sizeof(n->steer),
			 "none: rps_cpus as made (RP_BENCH_VETH_RPS=none)");
		return;
	} else {
		int r = tune_rule_mask(mask, sizeof(mask));

		src = "ringplane-tune's udev rule";
		if (r < 0) {
			snprintf(n->steer, sizeof(n->steer),
				 "none: rps_cpus as made (" TUNE_RULE
				 " is there but its rps_cpus mask is unusable; RP_BENCH_VETH_RPS=<mask> sets one)");
			fprintf(stderr, "netns: veth RPS: %s has no usable rps_cpus mask\n", TUNE_RULE);
			return;
		}
		if (!r) {
			snprintf(n->steer, sizeof(n->steer),
				 "none: rps_cpus as made (no " TUNE_RULE
				 "; RP_BENCH_VETH_RPS=<mask> sets one)");
			return;
		}
	}
	snprintf(ip_ns, sizeof(ip_ns), "%s", n->ns);
	for (int i = 0; i < 2; i++) {
		char *argv[] = { "ip", "netns", "exec", ip_ns, "sh", "-c", script, NULL };

		snprintf(script, sizeof(script), "echo %s > /sys/class/net/%s/queues/rx-0/rps_cpus",
			 mask, ends[i]);
		/* the host's end in our own namespace: plain sh -c */
		if (run_argv(i == 0 ? argv + 4 : argv)) {
			fprintf(stderr, "netns: veth RPS: `%s` failed\n", script);
			bad++;
		}
	}
	snprintf(n->steer, sizeof(n->steer), "RPS rps_cpus=%s on both ends (%s)%s", mask, src,
		 bad ? ", a write FAILED" : "");
}

static int run_argv(char **argv)
{
	pid_t pid;
	int st;

	pid = rp_cleanup_fork();
	if (pid < 0)
		return pid;
	if (pid == 0) {
		rp_cleanup_quiet_stdio();
		execvp(argv[0], argv);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			st = -1;
			break;
		}
	}
	rp_cleanup_del_pgid(pid);
	if (st != -1 && WIFSIGNALED(st) && (WTERMSIG(st) == SIGINT || WTERMSIG(st) == SIGTERM))
		raise(WTERMSIG(st)); /* the handler cleans up and dies of it */
	return st == 0 ? 0 : -EIO;
}

/* Index @idx's lock, taken without waiting: its fd, or -1 (held by a live
 * run, or no lock directory). */
static int idx_lock(unsigned idx)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), LOCK_DIR "/netns-%u.lock", idx);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		close(fd);
		return -1;
	}
	/* its holder unlinks it before letting go: a lock on a file that is
	 * gone (or replaced) from the path holds nothing */
	struct stat a, b;

	if (fstat(fd, &a) || stat(path, &b) || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
		close(fd);
		return -1;
	}
	return fd;
}

/* "rp" + a bench suite's tag (these only: test_relay's links are
 * "rptr0-<pid>") + @mid + decimal index: the index, or -1 */
static long name_idx(const char *name, const char *mid)
{
	size_t ml = strlen(mid);
	char *end;
	unsigned long v;

	if (strncmp(name, "rp", 2) || (strncmp(name + 2, "zc", 2) && strncmp(name + 2, "rl", 2)) ||
	    strncmp(name + 4, mid, ml) ||
	    name[4 + ml] < '0' || name[4 + ml] > '9')
		return -1;
	errno = 0;
	v = strtoul(name + 4 + ml, &end, 10);
	return errno || *end || v >= NIDX ? -1 : (long)v;
}

/* Unlink every lock file nobody holds (a killed run's; @own_idx's is ours):
 * taken, unlinked while held, then let go. */
static void sweep_locks(long own_idx)
{
	DIR *d = opendir(LOCK_DIR);
	struct dirent *e;
	char path[300];

	if (!d)
		return;
	while ((e = readdir(d))) {
		char *end;
		unsigned long idx;
		int fd;

		if (strncmp(e->d_name, "netns-", 6) || e->d_name[6] < '0' || e->d_name[6] > '9')
			continue;
		errno = 0;
		idx = strtoul(e->d_name + 6, &end, 10);
		if (errno || strcmp(end, ".lock") || idx >= NIDX || (long)idx == own_idx)
			continue;
		fd = idx_lock((unsigned)idx);
		if (fd < 0)
			continue; /* a live run's */
		snprintf(path, sizeof(path), LOCK_DIR "/%s", e->d_name);
		unlink(path);
		close(fd);
	}
	closedir(d);
}

/* Remove every namespace (/var/run/netns/rp<tag>bench-N) and host link
 * (rp<tag>0-N) whose index N nobody holds: a killed run's, or @own_idx's (held
 * by us, left by an earlier run that had it). */
static void sweep_dead(long own_idx)
{
	static const struct {
		const char *dir, *mid, *cmd;
	} kinds[] = { { "/sys/class/net", "0-", "ip link del" },
		      { "/var/run/netns", "bench-", "ip netns del" } };
	char cmd[128];

	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		DIR *d = opendir(kinds[k].dir);
		struct dirent *e;

		if (!d)
			continue;
		while ((e = readdir(d))) {
			long idx = name_idx(e->d_name, kinds[k].mid);
			int fd;

			if (idx < 0)
				continue;
			fd = idx == own_idx ? -1 : idx_lock((unsigned)idx);
			if (idx != own_idx && fd < 0)
				continue; /* a live run's */
			snprintf(cmd, sizeof(cmd), "%s %.40s", kinds[k].cmd, e->d_name);
			sh_cmd(cmd);
			if (fd >= 0)
				close(fd);
		}
		closedir(d);
	}
	sweep_locks(own_idx);
}

void rp_netns_down(struct rp_netns *n)
{
	char cmd[128];

	if (n->lockfd < 0)
		return;
	snprintf(cmd, sizeof(cmd), "ip link del %s", n->host_if);
	sh_cmd(cmd);
	snprintf(cmd, sizeof(cmd), "ip netns del %s", n->ns);
	sh_cmd(cmd);
	unlink(n->lock); /* while held: see idx_lock */
	rp_cleanup_del(n->cleanup);
	n->cleanup = -1;
	close(n->lockfd); /* the index is free again */
	n->lockfd = -1;
}

int rp_netns_up(struct rp_netns *n, char *why, size_t whysz)
{
	char cmds[7][160];
	size_t nc = 0;
	unsigned start, idx = 0, a, b;
	int fd = -1;

	if (geteuid() != 0) {
		snprintf(why, whysz,
			 "not root: creating a network namespace and a veth pair needs CAP_NET_ADMIN");
		return -EPERM;
	}
	if (n->lockfd >= 0)
		rp_netns_down(n);
	if (mkdir(LOCK_DIR, 0700) && errno != EEXIST) {
		snprintf(why, whysz, "mkdir " LOCK_DIR ": %s", strerror(errno));
		return -errno;
	}
	start = (((unsigned)getpid() * 2654435761u) >> 8) % NIDX;
	for (unsigned t = 0; t < TRIES && fd < 0; t++) {
		idx = (start + 2 * t + n->slot) % NIDX;
		fd = idx_lock(idx);
	}
	if (fd < 0) {
		snprintf(why, whysz, "no free /30 in 10.214.0.0/16 (%u locks under " LOCK_DIR " tried)",
			 TRIES);
		return -EBUSY;
	}
	n->lockfd = fd;
	a = idx >> 6;
	b = (idx & 63u) << 2;
	/* "rpzc0-16383" is 11 characters: inside IFNAMSIZ (16 with the NUL) */
	snprintf(n->ns, sizeof(n->ns), "rp%sbench-%u", n->tag, idx);
	snprintf(n->host_if, sizeof(n->host_if), "rp%s0-%u", n->tag, idx);
	snprintf(n->ns_if, sizeof(n->ns_if), "rp%s1-%u", n->tag, idx);
	snprintf(n->host_ip, sizeof(n->host_ip), "10.214.%u.%u", a, b + 1);
	snprintf(n->ns_ip, sizeof(n->ns_ip), "10.214.%u.%u", a, b + 2);
	n->prefix = 30;
	snprintf(n->lock, sizeof(n->lock), LOCK_DIR "/netns-%u.lock", idx);
	/* before the first command: a SIGINT from here on removes what is made */
	n->cleanup = rp_cleanup_add_netns(n->host_if, n->ns, n->lock);

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
	sweep_dead((long)idx);
	for (size_t i = 0; i < nc; i++)
		if (sh_cmd(cmds[i])) {
			snprintf(why, whysz, "`%s` failed", cmds[i]);
			rp_netns_down(n);
			return -EIO;
		}
	veth_tune(n);
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
