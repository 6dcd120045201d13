/* SPDX-License-Identifier: MIT */
/*
 * What a run leaves behind if it is stopped by SIGINT or SIGTERM: temp
 * directories, veth pairs with their namespaces, netns lock files, the
 * process groups of running peers. Each is registered here while it
 * exists; the signal handler (installed by rp_cleanup_install) walks the
 * registry with async-signal-safe calls only (kill, unlink, _Fork+execve of
 * rm and ip, waitpid), then re-raises the signal with its default action,
 * so the run ends as killed by that signal (shell status 128+sig).
 * Registration is from the suites' thread; a slot is filled before it is
 * marked live, so the handler never reads half a name. Only the main
 * thread takes SIGINT and SIGTERM: every other thread of the bench is
 * started with them blocked (rp_cleanup_pthread_create, rp_cleanup_block).
 */
#ifndef RP_BENCH_CLEANUP_H
#define RP_BENCH_CLEANUP_H

#include <pthread.h>
#include <signal.h>
#include <sys/types.h>

/* Handle SIGINT and SIGTERM (unless they are ignored, as under nohup). */
void rp_cleanup_install(void);

/* A temp directory, removed with rm -rf: a slot, or -1 when all are used
 * (then the directory is only removed by the suite, as before). */
int rp_cleanup_add_dir(const char *dir);

/* A veth pair's host end @host_if and namespace @ns, removed with ip(8),
 * and the lock file @lock, unlinked. */
int rp_cleanup_add_netns(const char *host_if, const char *ns, const char *lock);

/* A child's process group, sent SIGTERM. */
int rp_cleanup_add_pgid(pid_t pgid);

/* Forget the slot of process group @pgid (its leader was reaped). */
void rp_cleanup_del_pgid(pid_t pgid);

/* Forget slot @slot (-1: nothing): the thing is gone or removed already. */
void rp_cleanup_del(int slot);

/*
 * fork() for every child the bench starts, so that a SIGINT or SIGTERM at
 * any moment stops it. In the parent, INT and TERM are blocked (this
 * thread only: the bench's other threads keep them blocked for good, see
 * rp_bench_thread_create) from before the fork until the child's process
 * group is registered (rp_cleanup_add_pgid), so a signal in between is
 * taken after it and the handler stops the child too; returns the pid.
 * The child (0 returned) leads a process group of its own, has INT and
 * TERM at their default actions (never this process's handler: it would
 * run our cleanup), gets SIGTERM when the forking thread dies
 * (PR_SET_PDEATHSIG) and exits at once, status 127, if the parent died
 * before that was set; only then are INT and TERM unblocked. Call it from
 * the thread that reaps the child (the suites' thread), and
 * rp_cleanup_del_pgid(pid) once it is reaped. -errno if fork fails,
 * -ENOSPC if the registry is full (the child is killed and reaped first).
 */
pid_t rp_cleanup_fork(void);

/*
 * pthread_create for every thread the bench starts (same arguments and
 * result): the thread is created with INT and TERM blocked (it inherits
 * the creator's mask, which is restored after), so only the main thread
 * takes them: the handler never runs on a worker, whose syscalls are not
 * written for EINTR, and never while the main thread is inside
 * rp_cleanup_fork's window.
 */
int rp_cleanup_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
			      void *arg);

/* In a child between fork and exec: stdout and stderr to /dev/null (left
 * as they are when it cannot be opened). Async-signal-safe (open, dup2,
 * close only: no stdio, no malloc), so the signal handler's children may
 * call it too. */
void rp_cleanup_quiet_stdio(void);

/* Block INT and TERM in this thread, the mask before in @old; around a
 * library call that starts threads of its own (rp_runtime_start). */
void rp_cleanup_block(sigset_t *old);
/* Back to @old. */
void rp_cleanup_restore(const sigset_t *old);

#endif
