/* SPDX-License-Identifier: MIT */
/* engine internals shared by the engine/ sources; not installed. */
#ifndef RP_ENGINE_IMPL_H
#define RP_ENGINE_IMPL_H

#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>

#include <ringplane/engine.h>
#include <ringplane/mpsc.h>
#include <ringplane/pool.h>
#include <ringplane/spsc.h>
#include <ringplane/topo.h>

#include "uring_compat.h"

/* user_data values that are not ops (ops are pool objects, 128-byte aligned). */
enum {
	UD_WAKE = 1,	 /* MSG_RING wake landing on the target ring */
	UD_MSG_SENT = 2, /* the sender's own CQE of a MSG_RING */
	UD_LINK_TO = 3,	 /* a linked timeout */
	UD_CANCEL_ALL = 4, /* shutdown's cancel-any */
	UD_MAX_TOKEN = 64,
};
/* rp_close's cancel of the ops still on an fd: this bit | the fd number
 * (user-space op addresses never have bit 63 set). */
#define UD_CLOSING_FD (1ull << 63)

enum op_kind {
	OP_PLAIN = 0,	 /* one CQE */
	OP_ACCEPT_MS,	 /* multishot accept */
	OP_RECV_MS,	 /* multishot recv with provided buffers */
	OP_SEND_ZC,	 /* result CQE, then notification CQE */
	OP_EVENTFD,	 /* the shard's internal armed eventfd read */
};

enum {
	OPF_PARKED = 1u << 0,	 /* recv_ms waiting for buffers, not in the kernel */
	OPF_DEAD_PARKED = 1u << 1, /* parked op cancelled: its NOP delivers -ECANCELED */
	OPF_RESULT_SEEN = 1u << 2, /* send_zc: result CQE delivered */
};

struct rp_op {
	rp_cb cb;
	void *arg;
	uint8_t kind;
	uint8_t flags;
	uint16_t pad;
	int fd;
	struct rp_op *next; /* parked list */
	union {
		struct __kernel_timespec ts;
		struct sockaddr_in6 addr;
	} u;
	struct __kernel_timespec lts; /* linked timeout */
};

struct rp_cqe_copy {
	uint64_t ud;
	int32_t res;
	uint32_t flags;
};

struct rp_msg {
	rp_msg_fn fn;
	void *arg;
	bool heap; /* from malloc (rp_runtime_submit), else from the sender's pool */
};

struct rp_shard {
	/* hot: the loop's own state */
	struct io_uring ring;
	struct rp_runtime *rt;
	struct rp_pool *pool;
	unsigned id;
	unsigned live;	   /* user ops alive */
	unsigned internal; /* internal SQEs whose CQE is still due */
	bool stopping;
	bool defer;	   /* DEFER_TASKRUN: GETEVENTS needed to see completions */
	bool registered;   /* pool arena registered as fixed buffers */
	bool ring_ok;
	unsigned skipped_enters; /* loop iterations without a syscall in a row */
	struct io_uring_sqe *last_sqe;
	struct rp_op *last_op;

	/* provided buffers (bgid 0) */
	struct io_uring_buf_ring *br;
	size_t br_bytes;
	void **bufs;
	unsigned nbufs, buf_size, bufs_out;
	struct rp_op *parked;

	/* wake-ups */
	int efd;
	uint64_t efd_val;
	struct rp_op efd_op;
	uint64_t last_cancel_ns;

	/* fds rp_close'd whose cancel has not completed yet: a multishot op on
	 * one of them that the kernel ended meanwhile is not re-armed (the
	 * number may belong to a new file by then) */
	int *closing;
	unsigned nclosing, closing_cap;

	/* CQEs moved out of a full CQ during an SQ flush inside a callback */
	struct rp_cqe_copy *stash;
	unsigned nstash, stash_cap;

	struct rp_shard_stats st;

	pthread_t thread;
	int cpu, node;
	int init_ret;

	/* written by other threads */
	_Alignas(64) atomic_int sleeping;
	struct rp_mpsc *inbox; /* from threads that are not shards */
};

struct rp_runtime {
	struct rp_runtime_config cfg;
	unsigned n;
	struct rp_shard **shards;
	struct rp_spsc **mbox; /* mbox[dst * n + src] */
	struct rp_topo *topo;
	char mode[96];
	char features[160];
	bool msg_ring, send_zc, zc_report;
	bool started, joined;
	int ring_flags;

	pthread_mutex_t lock; /* start-up hand-shake only */
	pthread_cond_t cond;
	unsigned ready;
	int start_err;
	bool go;

	_Alignas(64) atomic_int stop;
};

void rp_shard_loop(struct rp_shard *sh);

#endif /* RP_ENGINE_IMPL_H */
