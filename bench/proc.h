/* SPDX-License-Identifier: MIT */
/*
 * Child processes for the suites that run peers (relay, sendfile): spawn
 * pinned with their output captured, read until a line shows up, stop with
 * SIGTERM then SIGKILL, run a client tool to completion, CPU time from
 * /proc, loopback ports, the ringplane binary to run. Every wait is bounded.
 */
#ifndef RP_BENCH_PROC_H
#define RP_BENCH_PROC_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define START_TIMEOUT_MS 10000 /* a child must be listening by then */
#define STOP_TIMEOUT_MS	 5000  /* SIGTERM, then SIGKILL after this */
#define TOOL_SLACK_S	 20    /* a client tool run for T s must exit within T + this */
#define OUT_MAX		 (1u << 20)

struct proc {
	pid_t pid;
	int out;   /* read end of its stdout+stderr, -1 once closed */
	char *log; /* what it printed (the first OUT_MAX bytes), NUL-terminated */
	size_t len, cap;
};

int64_t ms_left(uint64_t deadline_ns);
void sleep_ms(unsigned ms);
int poll_in(int fd, uint64_t deadline_ns);
int rp_bench_find_ringplane(char *path, size_t size);
int proc_spawn(struct proc *p, char *const argv[], int cpu);
/* The same on the @ncpus CPUs in @cpus (the child may run on any of them). */
int proc_spawn_on(struct proc *p, char *const argv[], const int *cpus, unsigned ncpus);
/* RP_BENCH_SHARDS' placement or the two-CPU one: on the @n CPUs in @cpus
 * (a group of struct rp_bench_place) when @n > 0, else on @cpu as
 * proc_spawn. */
int proc_spawn_placed(struct proc *p, char *const argv[], unsigned n, const int *cpus, int cpu);
int proc_read(struct proc *p, uint64_t deadline_ns, const char *until);
int proc_reap(struct proc *p, unsigned timeout_ms);
void proc_free(struct proc *p);
const char *proc_log(const struct proc *p);
const char *log_tail(const struct proc *p, unsigned lines);
void proc_stop(struct proc *p, const char *what, bool keep, int ok_exit);
int run_tool(struct proc *p, char *const argv[], int cpu, unsigned timeout_s);
int run_tool_on(struct proc *p, char *const argv[], const int *cpus, unsigned ncpus,
		unsigned timeout_s);
/* The first line @path prints for @flag ("-v": its version; socat's
 * "socat version" line) in @buf, "" when it prints none: the peers'
 * versions go into the notes. */
void peer_version(const char *path, const char *flag, char *buf, size_t size);
double proc_cpu_s(pid_t pid);
struct sockaddr_in loopback(int port);
int free_port(void);
int wait_bound(struct proc *p, int port, unsigned timeout_ms);

#endif
