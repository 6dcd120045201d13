/* SPDX-License-Identifier: MIT */
/* engine internals shared by the engine/ sources; not installed. */
#ifndef RP_ENGINE_IMPL_H
#define RP_ENGINE_IMPL_H

#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <ringplane/engine.h>
#include <ringplane/mpsc.h>
#include <ringplane/pool.h>
#include <ringplane/spsc.h>
#include <ringplane/topo.h>

#include "uring_compat.h"
#ifdef RP_FAULTS
#include "faults.h"
#endif

/* rp_engine_error's buffer and a shard's start error: room for the longest
 * message (a shard's prefix and io_uring_setup's ENOMEM hint) whole */
#define RP_ENGINE_ERR_MAX 512

/* user_data values that are not ops (ops are pool objects, 128-byte aligned). */
enum {
	UD_WAKE = 1,	 /* MSG_RING wake landing on the target ring */
	UD_LINK_TO = 3,	 /* a linked timeout */
	UD_CANCEL_ALL = 4, /* shutdown's cancel-any */
	UD_OP_CANCEL = 5,  /* rp_close's cancel of one op by user_data */
	UD_TIMER_UPDATE = 6, /* rp_timer_rearm's IORING_TIMEOUT_UPDATE of a timer */
	UD_MAX_TOKEN = 64,
};
/* rp_close's cancel of the ops still on an fd: this bit | the fd number
 * (user-space op addresses never have bit 63 or 62 set). */
#define UD_CLOSING_FD (1ull << 63)
/* With UD_CLOSING_FD: this cancel put the fd on the closing list
 * (eng_closing_add had memory), so its completion takes one entry off;
 * without it the entry its completion took was another pending cancel's. */
#define UD_CLOSING_LISTED (1ull << 61)
/* The sender's own CQE of a MSG_RING wake: this bit | the target shard id,
 * so a failed wake can be sent again through the target's eventfd. */
#define UD_WAKE_SENT (1ull << 62)
/* One of the cancels by user_data an rp_cancel_fd sent: the rp_cancel_fd
 * op's address | this bit (ops are pool objects, at least 64-byte aligned). */
#define UD_SUB_CANCEL 1ull

enum op_kind {
	OP_PLAIN = 0,	 /* one CQE */
	OP_ACCEPT_MS,	 /* multishot accept */
	OP_RECV_MS,	 /* multishot recv with provided buffers */
	OP_SEND_ZC,	 /* result CQE, then notification CQE */
	OP_EVENTFD,	 /* the shard's internal armed eventfd read */
	OP_CANCEL_FD,	 /* rp_cancel_fd: re-arms on op->fd are refused until it completes */
	OP_POLL_OUT,	 /* rp_poll_writable: multishot POLLOUT poll, one answer */
	OP_TIMER,	 /* a reserved timer (rp_timer_new): its end keeps the op */
#ifdef RP_FAULTS
	OP_FAULT_CANCEL, /* an injected reset ending a multishot recv (faults.c) */
#endif
	OP_KINDS,
};

enum {
	OPF_PARKED = 1u << 0,	 /* recv_ms waiting for buffers, not in the kernel */
	OPF_DEAD_PARKED = 1u << 1, /* parked op cancelled: on sh->dead, the loop
				      delivers its final -ECANCELED */
	OPF_RESULT_SEEN = 1u << 2, /* send_zc: result CQE delivered; poll_out:
				      the answer delivered, its end is due */
	OPF_CANCEL_REQ = 1u << 3,  /* rp_cancel asked: never re-arm or park it again */
	/* fault injection only (RP_FAULTS, faults.c) */
	OPF_FAULT_RESET = 1u << 4,   /* its receive ends with an injected -ECONNRESET */
	OPF_FAULT_PENDING = 1u << 5, /* recv_ms: the fault's cancel has not completed */
	OPF_FAULT_FINAL = 1u << 6,   /* recv_ms: final CQE seen; the cancel's CQE ends it */
	OPF_UNTRACKED = 1u << 7, /* names an fd the shard's fd table could not hold */
	OPF_REARM = 1u << 8, /* on sh->rearm: a re-arm (or a poll's end) found no
				SQE; the loop sends it on its next turn */
	OPF_TIMER_ARMED = 1u << 9, /* a reserved timer whose CQE is due */
	OPF_TIMER_FREE = 1u << 10, /* ... that rp_timer_free gave up: freed at its end */
	OPF_ZC_SENT = 1u << 11, /* send_zc: its result sent bytes (res > 0): the
				   notification is counted (zc_sends, zc_copied) */
	OPF_TIMER_DEFER = 1u << 12, /* a reserved timer armed while the SQ stayed
				       full: on sh->timers, sent by the loop */
	OPF_LINKED_CLOSE = 1u << 13, /* an rp_close linked behind another op
					(rp_link_next), its CQE due: on
					sh->lclose, op->fd its fd */
	OPF_LCLOSE_GONE = 1u << 14, /* a linked close another close of its fd
				       superseded (eng_lclose_supersede): it
				       closes nothing more of its own */
	OPF_TIMER_MOVE = 1u << 15, /* a reserved timer in the kernel whose move
				      (rp_timer_rearm) found no SQE: on
				      sh->timers, its update sent by the loop */
};

struct rp_op {
	rp_cb cb;
	void *arg;
	uint8_t kind;
	uint8_t pad;
	uint16_t flags; /* OPF_* */
	int fd;
	struct rp_op *next; /* parked, re-arm or dead list */
	union {
		struct __kernel_timespec ts;
		struct sockaddr_in6 addr;
		struct {
			unsigned pending; /* its cancels whose CQE is due */
			int nr;		  /* ... of which found their op */
		} cf;		/* rp_cancel_fd */
		struct rp_op *park_prev; /* on sh->parked or sh->rearm: O(1) removal */
		/* a reserved timer (op_basic.c): the SQ positions (sh->sq_tail64,
		 * which never wraps) of its timeout's SQE and of its last
		 * update's (upd: one was taken since the timeout's), to tell
		 * whether the kernel has read op->lts yet; after park_prev, so
		 * that a stay on sh->timers leaves them as they were */
		struct {
			struct rp_op *park_prev_;
			uint64_t pos, upd_pos;
			bool upd;
		} tm;
	} u;
	struct __kernel_timespec lts; /* linked timeout; a reserved timer's own */
	/* the fds whose SQE names this op, listed in sh->fdt (submit.h): -1 when
	 * the slot is unused; two for splice */
	int tfd[2];
	struct rp_op *tnext[2], *tprev[2];
#ifdef RP_FAULTS
	void *fault_mem; /* a shortened sendmsg's msghdr copy, freed with the op */
#endif
};

/* Ops come from the pool's 128-byte class: keep them there. */
_Static_assert(sizeof(struct rp_op) <= 128, "struct rp_op outgrew the 128-byte pool class");

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
	uint64_t last_idle_ns;	 /* the last spin + wait, for cfg.idle_spin_ns */
	uint64_t spin_after_ns;	 /* no idle spin before this (the CPU was contended) */
	bool spin_hold;		 /* rp_shard_idle_spin_hold: no idle spin now */
	struct io_uring_sqe *last_sqe;
	struct rp_op *last_op;
	bool link_next;	 /* rp_link_next: the next op's SQE comes from the spare
			    slots, in the same submit as the one linked to it */
	bool last_spare; /* the last op's SQE was a spare one: no link from it */
	/* liburing's free-running 32-bit sq.sqe_tail extended to 64 bits,
	 * brought up to it by every eng_sqe: a reserved timer's SQ positions
	 * (op->u.tm) are compared with it, and 32-bit ones compared as
	 * (int32_t)(pos - head) took an SQE sent 2^31 SQEs ago for unsent */
	uint64_t sq_tail64;
	/* one timespec per SQ slot (sq.ring_entries, from shard_setup): what
	 * a reserved timer's update SQE in that slot points at (op_basic.c).
	 * The kernel reads it when it takes the SQE, and liburing hands the
	 * slot out again only after that, so it outlives the SQE whatever
	 * becomes of the timer's op meanwhile (freed, reused) */
	struct __kernel_timespec *sq_ts;

	/* provided buffers (bgid 0) */
	struct io_uring_buf_ring *br;
	size_t br_bytes;
	void **bufs;
	unsigned nbufs, buf_size, bufs_out;
	struct rp_op *parked;
	struct rp_op *dead; /* ended outside the kernel: final callback due */
	/* multishot ops (accept, recv, poll_writable) whose re-arm from a
	 * completion or a buffer put found no SQE (the SQ stayed full), and
	 * answered polls whose cancel found none: armed by the loop on its
	 * next turn (eng_rearm_run), ended by rp_close/rp_cancel/stop like a
	 * parked receive while they are outside the kernel */
	struct rp_op *rearm;
	/* reserved timers armed while the SQ stayed full (OPF_TIMER_DEFER):
	 * sent by the loop once its submit made room (eng_timer_defer_run),
	 * ended with -ECANCELED by a stop, unlinked by rp_timer_free; and
	 * timers in the kernel whose move found no SQE (OPF_TIMER_MOVE): the
	 * update sent by the loop, dropped by their end, a free or a stop */
	struct rp_op *timers;
	/* rp_close ops linked behind another op (OPF_LINKED_CLOSE) whose CQE
	 * has not been reaped: a head that fails or is cancelled (the stop's
	 * cancel-any) ends them with -ECANCELED, the fd still open; the
	 * completion sends the close again, and at the loop's end
	 * eng_linked_close_settle finds out which the kernel never ran */
	struct rp_op *lclose;
	/* those sent again unlinked, their CQE not reaped (no flag bit is left:
	 * found by op on the list):
	 * the fd is as good as closed, so another rp_close of it is refused
	 * (EALREADY) instead of closing the number a second time */
	struct rp_op *lsent;

	/* wake-ups */
	int efd;
	uint64_t efd_val;
	bool efd_unarmed; /* arming the eventfd read found no SQE: retry */
	struct rp_op efd_op;
	uint64_t last_cancel_ns;

	/* fds rp_close'd whose cancel has not completed yet: a multishot op on
	 * one of them that the kernel ended meanwhile is not re-armed (the
	 * number may belong to a new file by then) */
	int *closing;
	unsigned nclosing, closing_cap;

	/* the live ops whose SQE names each fd: fdt[fd] heads a list through
	 * rp_op.tnext/tprev, so rp_close cancels exactly those by user_data
	 * (a hash lookup in the kernel) instead of by fd (a walk of every
	 * armed request). Grown by doubling on first use of a larger fd,
	 * never shrunk; fd_untracked counts live ops it could not hold
	 * (no memory), whose fds then go back to cancel-by-fd. */
	struct rp_op **fdt;
	unsigned fdt_cap;
	unsigned fd_untracked;

	/* CQEs moved out of a full CQ during an SQ flush inside a callback,
	 * dispatched (from stash_head) before any CQE still in the CQ */
	struct rp_cqe_copy *stash;
	unsigned stash_head, nstash, stash_cap;

	/* provided buffers handed to callbacks and not yet put back, one bit
	 * per buffer id: a put of a buffer that is not out is refused */
	uint64_t *buf_outmap;

	/* ops alive by kind, for the report of a stop that hit its deadline */
	unsigned live_kind[OP_KINDS];
	uint64_t stop_deadline_ns;
	/* no loop runs this ring any more (it ended, or never ran: a failed
	 * init): nothing is submitted (eng_sqe gives no SQE, eng_flush sends
	 * nothing), no CQE is reaped. Set by eng_sq_abandon before the final
	 * drain and cfg.fini (rp_timer_free) */
	bool loop_over;

	struct rp_shard_stats st;
#ifdef RP_FAULTS
	struct eng_faults faults;
#endif

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
	/* mbox[dst * n + src]: created by shard dst on its own thread (so on its
	 * node) before any init runs, destroyed by rp_runtime_destroy */
	struct rp_spsc **mbox;
	struct rp_topo *topo;
	char mode[96];
	char features[224];
	bool msg_ring, send_zc, zc_report, sendmsg_zc;
	bool zc_fixed; /* SEND_ZC takes IORING_RECVSEND_FIXED_BUF (probed) */
	bool started, joined;
	int ring_flags;
#ifdef RP_FAULTS
	struct eng_faults_cfg faults;
#endif

	pthread_mutex_t lock; /* start-up hand-shake only */
	pthread_cond_t cond;
	unsigned ready;
	int start_err;
	bool go;
	/* why a shard failed to start (copied to the caller's rp_engine_error) */
	char err[RP_ENGINE_ERR_MAX];

	_Alignas(64) atomic_int stop;
};

/* CLOCK_MONOTONIC in ns (stop deadlines, spin bounds, the SQPOLL wait). */
static inline uint64_t eng_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void eng_shard_loop(struct rp_shard *sh);
/* After the loop: run what is still in the shard's mailboxes (stopping). */
void eng_shard_drain_final(struct rp_shard *sh);
/* Set the calling thread's rp_engine_error() text (printf-style). */
void eng_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* RP_ENGINE_IMPL_H */
