/* SPDX-License-Identifier: MIT */
/*
 * Seccomp filters for tests that make the kernel answer differently than
 * it would (a syscall that returns 0 or an errno without running, an ioctl
 * held for a notification): the architecture check and the syscall number
 * load every filter starts with, and seccomp_deny. A filter stays for the
 * life of the process and its later threads: install one only in a child
 * of its own. Where the architecture is not known here (TEST_AUDIT_ARCH
 * undefined) the tests that need a filter skip.
 */
#ifndef RP_TESTS_SECCOMP_TEST_H
#define RP_TESTS_SECCOMP_TEST_H

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>

#if defined(__x86_64__)
#define TEST_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define TEST_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#ifdef TEST_AUDIT_ARCH
/* A filter's first four statements: another architecture's syscalls pass
 * (their numbers differ); then the syscall number is in the accumulator. */
#define SECCOMP_TEST_PROLOGUE                                                                  \
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),               \
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TEST_AUDIT_ARCH, 1, 0),                    \
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),                                  \
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))

#define SECCOMP_DENY_MAX 4

/* Make each syscall @nr[j] return -@err[j] without running it (0: return
 * 0), for up to SECCOMP_DENY_MAX of them, in this thread and those it
 * creates later: 0 or a negative errno (seccomp refused). */
static inline int seccomp_deny(const long *nr, const int *err, unsigned k)
{
	struct sock_filter f[4 + 2 * SECCOMP_DENY_MAX + 1] = { SECCOMP_TEST_PROLOGUE };
	struct sock_fprog prog = { .filter = f };
	unsigned i = 4;

	if (k > SECCOMP_DENY_MAX)
		return -EINVAL;
	for (unsigned j = 0; j < k; j++) {
		f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr[j], 0,
						      1);
		f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
						      SECCOMP_RET_ERRNO | (uint32_t)err[j]);
	}
	f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	prog.len = (unsigned short)i;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
		return -errno;
	return 0;
}

/* The low 32 bits of a syscall's argument @i in struct seccomp_data. */
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define SECCOMP_ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i) + 4)
#else
#define SECCOMP_ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))
#endif

/* Make syscall @nr return -@err without running it when the low 32 bits
 * of its argument @arg are @val (fcntl's F_SETFL, say: its other commands
 * run), in this thread and those it creates later: 0 or a negative errno
 * (seccomp refused). */
static inline int seccomp_deny_arg(long nr, unsigned arg, uint32_t val, int err)
{
	struct sock_filter f[] = {
		SECCOMP_TEST_PROLOGUE,
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)SECCOMP_ARG_LO(arg)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, val, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (uint32_t)err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (arg > 5)
		return -EINVAL;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
		return -errno;
	return 0;
}
#endif

#endif
