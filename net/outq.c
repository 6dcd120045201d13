/* SPDX-License-Identifier: MIT */
/*
 * Per-connection output queues (include/ringplane/outq.h): a FIFO of
 * nodes in the shard's pool, one send in flight, everything queued
 * gathered into one sendmsg (a plain send when it is one buffer), big
 * pushes by SEND_ZC and big gathered vectors by SENDMSG_ZC while the
 * socket's notifications say the kernel really did not copy.
 *
 * A node is either a push (the caller's buffer, released through its
 * release_fn) or a copy (header and bytes in one pool block, appended to
 * while it has room). A node under SEND_ZC leaves the FIFO once all of it
 * was sent and waits on the queue's wait list for its notifications; the
 * list is detached (node->q = NULL) when the queue is freed, so a late
 * notification still releases the buffer and counts it in the shard's sum.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ringplane/outq.h>
#include <ringplane/pool.h>

#include "clock.h"
#include "outq_impl.h"
#include "peer.h"

#define MAX_BYTES_DEFAULT    ((size_t)4 << 20)
#define ZC_THRESHOLD_DEFAULT ((size_t)16 << 10)
#define PROBE_BYTES_DEFAULT  ((uint64_t)64 << 20)
#define PROBE_NS_DEFAULT     (1000ull * 1000 * 1000)
#define COPY_BLOCK	     ((size_t)16 << 10) /* room of a copy node: a pool class */
#define ZC_PIECE_MAX	     (1u << 30)
#define PROBE_SHIFT_MAX	     6 /* probe_bytes, probe_ns at most x64: 4 GB, 64 s */
#define RETRY_NS	     (1000ull * 1000) /* a flush that found no op tries again */
#define DRY_TRIES	     64u /* a dry class: one real allocation per this many asks */

enum { KIND_PUSH = 0, KIND_COPY = 1 };
enum { MODE_ZC = 0, MODE_PLAIN = 1 };

struct node {
	struct node *next;  /* FIFO, or the wait list */
	struct node *wprev; /* wait list only */
	struct rp_outq *q;  /* NULL once the queue is gone */
	const char *base;
	size_t len, off, cap; /* cap: copy nodes' room */
	rp_outq_release_fn release;
	void *rarg;
	unsigned kind;
	unsigned notifs; /* SEND_ZC notifications still to come */
	/* decided: bytes [.., zc_end) go by SEND_ZC (0: undecided or plain).
	 * The whole push once zero-copy is proven; a trial or a probe sends
	 * only its first zc_threshold bytes so, the rest plain. */
	size_t zc_end;
	bool done; /* left the FIFO (sent, dropped) */
};

struct zc_rec {
	struct node *node;
	struct rp_outq *q; /* for the result half; the notification uses node->q */
	size_t bytes;
};

/* A queue's own counters: struct rp_outq_stats but for errors and
 * local_plain, which are at most 1 per queue and read off q->err and
 * q->local_plain (so that the queue fits its 256 B pool object). */
struct q_stats {
	uint64_t zc_bytes, zc_copied_bytes, zc_dropped_bytes, plain_bytes, sendmsgs, zc_sends,
		notifs, switched, probes, copied_in, pushes, refused, single_sends, stalls,
		zc_sendmsgs;
};

struct rp_outq {
	struct rp_shard *sh;
	int fd;
	int err;
	size_t max_bytes, zc_threshold;
	uint64_t probe_bytes, probe_ns;
	rp_outq_error_fn on_error;
	rp_outq_writable_fn on_writable;
	void *arg;

	struct node *head, *tail;
	struct node *wait;	 /* nodes waiting only for notifications */
	size_t queued;		 /* bytes in the FIFO not yet sent */
	/* 16 bits each: ops are a send, a NOP and a callback's hold; a send
	 * covers at most RP_OUTQ_IOV nodes; the flags are RP_OUTQ_*. Narrow,
	 * and the states below in bits, so that the queue fits a 256 B pool
	 * object (an idle connection holds one). */
	uint16_t ops;		 /* our ops in flight (a send, a NOP) */
	uint16_t inflight_nodes; /* FIFO nodes the send in flight covers */
	uint16_t flags;
	bool inflight : 1, nop_pending : 1, closing : 1, want_writable : 1, probing : 1;
	/* a flush found no op (pool or SQ): on the shard's retry list */
	bool stalled : 1;
	/* zero-copy mode not yet proven by a notification: one SEND_ZC (the
	 * trial) waits for its notification while the pushes behind it go
	 * plain. Without it every big push sent before the first notification
	 * came back went by SEND_ZC: 29 of them at 64 KB on veth, where a
	 * copied SEND_ZC runs at about half of plain's rate. */
	bool trial : 1, proven : 1;
	unsigned mode : 1; /* MODE_ZC, MODE_PLAIN */
	/* each probe that comes back copied doubles the wait before the next
	 * one, up to PROBE_SHIFT_MAX: a path that copied once (loopback, veth)
	 * keeps copying, and each probe sends a big push by a copied SEND_ZC
	 * at about half of plain's rate on those paths. Reset by zero-copy. */
	unsigned probe_shift : 3;
	signed local : 2; /* peer on this host: 1, 0, or -1 not looked up yet */
	unsigned local_plain : 1; /* started plain: the peer was local at init */
	uint64_t plain_mark; /* plain_bytes when the socket went plain */
	uint64_t t_mark;     /* and when */

	/* sv: the sendmsg in flight's msghdr and iovecs; snext: the shard's
	 * retry list. Never both: a stalled queue has no send in flight, and
	 * only the retry (after taking it off the list) flushes it. */
	union {
		struct sendv *sv;
		struct rp_outq *snext;
	};
	struct q_stats st;
};

_Static_assert(sizeof(void *) != 8 || sizeof(struct rp_outq) <= 256,
	       "an idle queue fits a 256 B pool object");
_Static_assert((RP_OUTQ_MANUAL | RP_OUTQ_LOCAL_PLAIN | RP_OUTQ_ZC_OFF | RP_OUTQ_ZC_ALWAYS |
		RP_OUTQ_LOCAL_PROBE) <=
		       UINT16_MAX, /* FLAGS_ALL */
	       "the flags fit the queue's 16 bits");

/* A SENDMSG_ZC's record: the block holds @msg's iovecs, then the nodes
 * the kernel may still read from (vec_held) once its result came: those
 * its bytes reached, and the head at least, through which the
 * notification finds the queue (node->q: NULL once it is freed), as a
 * single send's does. Each holds a notification (node->notifs). */
struct zc_vec {
	struct rp_outq *q; /* for the result half */
	size_t bytes;	   /* what the result said went out */
	unsigned held;
	struct msghdr msg;
	struct iovec iov[];
};

static struct node **vec_held(struct zc_vec *v)
{
	return (struct node **)(v->iov + v->msg.msg_iovlen);
}

/* A sendmsg's msghdr and iovecs live in a pool block of their own, sized to
 * the round and freed at its completion, not inline in the queue: an idle
 * queue then holds no iovec array (the 64 inline took the queue from a
 * 512 B to a 2 KB pool object, held by every idle connection). */
struct sendv {
	struct msghdr msg;
	struct iovec iov[];
};

/* block_alloc's sizes index tls.dry by pool class: all within the classes */
_Static_assert(sizeof(struct sendv) + RP_OUTQ_IOV * sizeof(struct iovec) <= RP_POOL_SPAN,
	       "a sendmsg's block is in a pool class");
_Static_assert(sizeof(struct zc_vec) + RP_OUTQ_IOV * (sizeof(struct iovec) + sizeof(void *)) <=
		       RP_POOL_SPAN,
	       "a SENDMSG_ZC's block is in a pool class");

/* ---- per-shard state: the sum, and the retry of stalled flushes ---- */

/*
 * A flush that finds no op (the pool empty: ENOMEM; the SQ full: EBUSY)
 * keeps everything queued: the queue goes on the shard's retry list,
 * holding an op reference (a close meanwhile frees it at the retry), and
 * the shard's retry timer flushes it again after RETRY_NS. The timer is
 * reserved (rp_timer_new) by the shard's first live queue, at
 * rp_outq_init, where -ENOMEM can still be returned, and given back with
 * its last, so arming it never needs memory, nor an SQE: with the SQ full
 * the engine sends it on the loop's next turn. (A refused arm, -EBUSY
 * before the engine queued such arms, was armed again only at the end of
 * another of the shard's outq ops: a queue whose every flush stalled had
 * none left, and its data stayed queued for good.)
 */
static __thread struct {
	struct rp_shard *sh;
	struct rp_outq_stats st;
	struct rp_timer *retry;	 /* reserved while queues > 0 */
	struct rp_outq *stalled; /* the retry list, through snext */
	unsigned queues;	 /* live queues (closed ones count until freed) */
	/* per pool class: asks left before the next real allocation of a
	 * send's block the pool last refused (0: not dry); see block_alloc */
	uint8_t dry[RP_POOL_NCLASS];
} tls;

static void shard_use(struct rp_shard *sh)
{
	if (tls.sh != sh) {
		memset(&tls, 0, sizeof(tls));
		tls.sh = sh;
	}
}

static struct rp_outq_stats *shard_st(struct rp_shard *sh)
{
	shard_use(sh);
	return &tls.st;
}

#define ADD(q, field, n)                                                                           \
	do {                                                                                       \
		(q)->st.field += (n);                                                              \
		shard_st((q)->sh)->field += (n);                                                   \
	} while (0)

/* Whether the engine has zero-copy op @what (RP_ENGINE_SEND_ZC,
 * RP_ENGINE_SENDMSG_ZC): without it rp_send_zc (rp_sendmsg_zc) sends
 * plain, so the queue sends plain itself and counts no zero-copy send.
 * Asked each time (two calls, on the big sends' path only): the queue has
 * no bit left for it in its 256 B. */
static bool engine_has(const struct rp_outq *q, unsigned what)
{
	return rp_engine_zc(rp_shard_runtime(q->sh)) & what;
}

void rp_outq_shard_stats(struct rp_shard *sh, struct rp_outq_stats *out)
{
	*out = *shard_st(sh);
}

void rp_outq_stats(const struct rp_outq *q, struct rp_outq_stats *out)
{
	*out = (struct rp_outq_stats){
		.zc_bytes = q->st.zc_bytes,
		.zc_copied_bytes = q->st.zc_copied_bytes,
		.zc_dropped_bytes = q->st.zc_dropped_bytes,
		.plain_bytes = q->st.plain_bytes,
		.sendmsgs = q->st.sendmsgs,
		.zc_sends = q->st.zc_sends,
		.notifs = q->st.notifs,
		.switched = q->st.switched,
		.probes = q->st.probes,
		.copied_in = q->st.copied_in,
		.pushes = q->st.pushes,
		.refused = q->st.refused,
		.errors = q->err != 0,
		.local_plain = q->local_plain,
		.single_sends = q->st.single_sends,
		.stalls = q->st.stalls,
		.zc_sendmsgs = q->st.zc_sendmsgs,
	};
}

size_t rp_outq_pending(const struct rp_outq *q)
{
	return q->queued;
}

bool rp_outq_zc(const struct rp_outq *q)
{
	return !(q->flags & RP_OUTQ_ZC_OFF) && engine_has(q, RP_ENGINE_SEND_ZC) &&
	       q->mode == MODE_ZC;
}

/* ---- nodes ---- */

static void node_release(struct node *n)
{
	if (n->kind == KIND_PUSH && n->release)
		n->release(n->rarg, n->base, n->len);
	rp_pool_free(n);
}

static void wait_add(struct rp_outq *q, struct node *n)
{
	n->wprev = NULL;
	n->next = q->wait;
	if (q->wait)
		q->wait->wprev = n;
	q->wait = n;
}

static void wait_del(struct rp_outq *q, struct node *n)
{
	if (n->wprev)
		n->wprev->next = n->next;
	else
		q->wait = n->next;
	if (n->next)
		n->next->wprev = n->wprev;
}

/* @n left the FIFO: release it now, or when its last notification comes. */
static void node_retire(struct rp_outq *q, struct node *n)
{
	n->done = true;
	if (n->notifs)
		wait_add(q, n);
	else
		node_release(n);
}

static struct node *fifo_pop(struct rp_outq *q)
{
	struct node *n = q->head;

	q->head = n->next;
	if (!q->head)
		q->tail = NULL;
	n->next = NULL;
	return n;
}

/* Drop every FIFO node but those the send in flight covers. */
static void drop_queued(struct rp_outq *q)
{
	struct node *keep = NULL, *n;
	unsigned k = q->inflight ? q->inflight_nodes : 0;

	if (k) { /* cut the FIFO after the k-th node */
		keep = q->head;
		for (unsigned i = 1; i < k && keep->next; i++)
			keep = keep->next;
		n = keep->next;
		keep->next = NULL;
		q->tail = keep;
	} else {
		n = q->head;
		q->head = q->tail = NULL;
	}
	while (n) {
		struct node *next = n->next;

		q->queued -= n->len - n->off;
		n->next = NULL;
		node_retire(q, n);
		n = next;
	}
}

static void destroy(struct rp_outq *q)
{
	struct rp_shard *sh = q->sh;

	rp_pool_free(q->sv);
	for (struct node *n = q->wait; n; n = n->next)
		n->q = NULL; /* its notifications free it */
	rp_pool_free(q);
	shard_use(sh);
	/* the last queue: nothing is stalled (a stalled one is still live),
	 * so the timer is idle or armed for nothing; safe from its callback */
	if (--tls.queues == 0) {
		rp_timer_free(sh, tls.retry);
		tls.retry = NULL;
	}
}

static void fail(struct rp_outq *q, int err)
{
	if (q->err)
		return;
	q->err = err;
	shard_st(q->sh)->errors++; /* the queue's own: q->err set */
	/* on_error first: a release callback that runs after it knows its
	 * buffer was dropped, not sent. Every caller of fail holds an op
	 * reference (q->ops), so a close from on_error does not free q here. */
	if (q->on_error && !q->closing)
		q->on_error(q, q->arg, err);
	drop_queued(q);
}

/* ---- a send's block: a zero-copy record, a sendmsg's iovecs ---- */

/* The pool's class of @size: its formula (ringplane/pool_inline.h), 64 B
 * and below in class 0. */
static unsigned pool_class(size_t size)
{
	return (unsigned)(58 - __builtin_clzll((unsigned long long)((size - 1) | 63)));
}

/*
 * A block of @size for a send from the shard's pool, or NULL: the caller
 * then sends the head alone, plain (send_zc, send_plain). A refused
 * allocation is not cheap: it walks the class's spans, takes the remote
 * frees and flushes every class's cache looking for an empty span (the
 * other classes' next allocations then refill theirs), and counts in the
 * pool's failures. While the class stays dry (held by idle connections,
 * possibly for minutes) every send of every queue on the shard paid it.
 * So a refusal marks the class dry for the shard: the next asks check
 * rp_pool_class_free(pool, size, 0) instead (O(1), no flush) and allocate
 * only when it counts an object (one freed since: back at once), and
 * every DRY_TRIES-th ask allocates anyway, for the room only a flush can
 * find (objects in other classes' caches whose spans would be empty).
 * A dry class thus costs one refusal per DRY_TRIES sends, not one a send.
 */
static void *block_alloc(struct rp_shard *sh, size_t size)
{
	struct rp_pool *pool = rp_shard_pool(sh);
	unsigned c = pool_class(size);
	void *b;

	shard_use(sh);
	if (__builtin_expect(tls.dry[c] != 0, 0)) {
		/* look without allocating, but for every DRY_TRIES-th ask */
		if (--tls.dry[c] && !rp_pool_class_free(pool, size, 0))
			return NULL;
		tls.dry[c] = 0;
	}
	b = rp_pool_alloc(pool, size);
	if (__builtin_expect(!b, 0))
		tls.dry[c] = DRY_TRIES;
	return b;
}

/* ---- adaptive zero-copy ---- */

static uint64_t shl_sat(uint64_t v, unsigned shift)
{
	return v > UINT64_MAX >> shift ? UINT64_MAX : v << shift;
}

static bool probe_due(struct rp_outq *q)
{
	return q->st.plain_bytes - q->plain_mark >= shl_sat(q->probe_bytes, q->probe_shift) ||
	       net_now_ns() - q->t_mark >= shl_sat(q->probe_ns, q->probe_shift);
}

static void go_plain(struct rp_outq *q)
{
	q->mode = MODE_PLAIN;
	q->proven = false;
	q->plain_mark = q->st.plain_bytes;
	q->t_mark = net_now_ns();
}

/* Would @n go by SEND_ZC if it were at the head now? (no side effect) */
static bool wants_zc(struct rp_outq *q, const struct node *n)
{
	if (n->zc_end)
		return n->off < n->zc_end; /* decided; past a piece, the rest is plain */
	if (n->kind != KIND_PUSH || n->off || n->len < q->zc_threshold ||
	    (q->flags & RP_OUTQ_ZC_OFF) || !engine_has(q, RP_ENGINE_SEND_ZC))
		return false;
	if (q->flags & RP_OUTQ_ZC_ALWAYS)
		return true;
	if (q->mode == MODE_ZC)
		return q->proven || !q->trial;
	/* a local peer copies every SEND_ZC payload (loopback delivery does,
	 * skb_orphan_frags_rx): nothing to probe for */
	return !q->probing && q->local != 1 && probe_due(q);
}

/* Would a gathered vector of @bytes go by SENDMSG_ZC? Only in zero-copy
 * mode, as a big push would there: a socket in plain mode keeps its plain
 * sendmsg, and probes only by a big push. */
static bool vec_wants_zc(const struct rp_outq *q, size_t bytes)
{
	if (bytes < q->zc_threshold || (q->flags & RP_OUTQ_ZC_OFF) ||
	    !engine_has(q, RP_ENGINE_SENDMSG_ZC))
		return false;
	if (q->flags & RP_OUTQ_ZC_ALWAYS)
		return true;
	return q->mode == MODE_ZC && (q->proven || !q->trial);
}

/* ---- sending ---- */

static void flush(struct rp_outq *q);

/* After a send's completion: what the bound, a close or an error need. */
static void after_send(struct rp_outq *q)
{
	if (q->closing) {
		drop_queued(q);
		return;
	}
	if (q->err)
		return;
	if (q->want_writable && q->queued <= q->max_bytes / 2) {
		q->want_writable = false;
		if (q->on_writable)
			q->on_writable(q, q->arg);
	}
	if (!q->closing && !q->err)
		flush(q);
}

static void op_end(struct rp_outq *q)
{
	if (--q->ops == 0 && q->closing)
		destroy(q);
}

static void on_retry(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct rp_outq *list;

	(void)arg;
	(void)c; /* -ECANCELED at a stop: the flush then fails with -ESHUTDOWN */
	shard_use(sh);
	/* a retry asks the pool for real (block_alloc): it runs at most once
	 * a ms, and a pool given back whole (room in caches that only a
	 * flush finds, which rp_pool_class_free(.., 0) does not count) is
	 * used at once, its zero-copy records too (test_stall_counted) */
	memset(tls.dry, 0, sizeof(tls.dry));
	list = tls.stalled;
	tls.stalled = NULL;
	while (list) {
		struct rp_outq *q = list;

		list = q->snext;
		q->snext = NULL;
		q->stalled = false;
		/* the list's reference covers the flush (on_error may close) */
		if (!q->closing && !q->err)
			flush(q);
		op_end(q);
	}
}

static void retry_arm(struct rp_shard *sh)
{
	/* never -EBUSY (see tls); -ESHUTDOWN cannot be (a stopping shard
	 * fails a flush instead of stalling it) */
	(void)rp_timer_arm(sh, tls.retry, RETRY_NS, on_retry, NULL);
}

/*
 * A flush could not get an op; @err (positive errno) says why. A shortage
 * (ENOMEM: the pool is empty, or EBUSY: the SQ stayed full) is transient:
 * nothing was sent or lost, so the data stays queued and the retry timer
 * flushes it again (pushes meanwhile only queue). Anything else
 * (ESHUTDOWN: the shard stops) fails the queue. The caller holds an op
 * reference (fail's rule).
 */
static void op_refused(struct rp_outq *q, int err)
{
	if ((err != ENOMEM && err != EBUSY) || rp_shard_stopping(q->sh)) {
		fail(q, err == ESHUTDOWN || rp_shard_stopping(q->sh) ? -ESHUTDOWN : -err);
		return;
	}
	shard_use(q->sh);
	ADD(q, stalls, 1);
	if (!q->stalled) {
		q->stalled = true;
		q->ops++; /* the list's reference */
		q->snext = tls.stalled;
		tls.stalled = q;
	}
	if (!rp_timer_armed(tls.retry))
		retry_arm(q->sh);
}

static void wait_room(struct rp_outq *q);

static void on_room(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct rp_outq *q = arg;

	(void)sh;
	if (c->res < 0)
		fail(q, c->res);
	q->inflight = false;
	after_send(q);
	op_end(q);
}

/*
 * A send found the socket full and gave EAGAIN back: the fd is O_NONBLOCK
 * (serve and relay make theirs so for sendfile and splice), and io_uring
 * gives EAGAIN back when its retry after its own poll finds no room either,
 * which is every time once the peer half-closed: io_uring reports RDHUP to
 * every poll, so its poll returns at once (6.18; found by the soak: a head
 * queued behind a 4 MB body failed and serve closed the connection with
 * answers missing; test_outq's bound case on an O_NONBLOCK socket). Nothing
 * was sent: wait for room on the ring (rp_poll_writable, which never
 * answers RDHUP alone), then flush from where it stopped. The wait
 * stands for the send in flight (inflight, covering no node), so nothing
 * else flushes meanwhile; a close drops the queue as usual, an error or a
 * cancel of the poll (rp_cancel_fd) fails it.
 */
static void wait_room(struct rp_outq *q)
{
	if (!rp_poll_writable(q->sh, q->fd, on_room, q)) {
		op_refused(q, errno);
		return;
	}
	q->inflight = true;
	q->inflight_nodes = 0;
	q->ops++;
}

/* @left bytes from the FIFO's head went out: advance over them, and retire
 * the nodes sent whole (released now, or at their last notification). */
static void fifo_sent(struct rp_outq *q, size_t left)
{
	struct node *sent = NULL, **tail = &sent;

	while (left && q->head) {
		struct node *n = q->head;
		size_t take = n->len - n->off < left ? n->len - n->off : left;

		n->off += take;
		q->queued -= take;
		left -= take;
		if (n->off < n->len)
			break; /* a short send: the next flush goes on from here */
		*tail = fifo_pop(q);
		tail = &(*tail)->next;
	}
	/* Release only once the FIFO and the counts are settled: a
	 * release callback may push, flush or close the queue. */
	while (sent) {
		struct node *n = sent;

		sent = n->next;
		n->next = NULL;
		node_retire(q, n);
	}
}

static void on_plain(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct rp_outq *q = arg;

	(void)sh;
	q->inflight = false;
	q->inflight_nodes = 0;
	rp_pool_free(q->sv);
	q->sv = NULL;
	if (c->res > 0) {
		ADD(q, plain_bytes, (uint64_t)c->res);
		fifo_sent(q, (size_t)c->res);
	} else if (c->res == -EAGAIN) {
		wait_room(q);
	} else {
		fail(q, c->res < 0 ? c->res : -EPIPE);
	}
	after_send(q);
	op_end(q);
}

/*
 * A zero-copy notification for @bytes sent by a SEND_ZC or a SENDMSG_ZC
 * of queue @q (NULL: freed since): count them as zero-copied, copied or
 * dropped, and let a copy switch the socket to plain (or prove zero-copy).
 */
static void zc_notified(struct rp_shard *sh, struct rp_outq *q, size_t bytes, bool copied)
{
	struct rp_outq_stats *ss = shard_st(sh);
	bool dead;

	/* after an error or a close the kernel frees unsent data without
	 * a copy: such a notification proves no zero-copy transmission.
	 * Nor can one on a local peer: loopback delivery always copies,
	 * so an uncopied notification there is data a reset freed before
	 * the queue saw the error (looked up here, on this rare path). */
	dead = !q || q->err || q->closing;
	if (!dead && !copied && q->local < 0) {
		struct peer_addrs pa;
		int pr = peer_addrs_get(q->fd, &pa);

		/* a reset the queue has not seen yet leaves TCP in CLOSE,
		 * where getpeername says ENOTCONN: unsent data freed, and
		 * the peer cannot be looked up (not cached: a later
		 * notification asks again). The addresses read here are
		 * the ones the local test uses (no second getpeername). */
		if (pr == -ENOTCONN) {
			dead = true;
		} else {
			q->local = !pr && peer_addrs_is_local(&pa);
		}
	}
	if (!dead && !copied)
		dead = q->local > 0;
	ss->notifs++;
	if (copied)
		ss->zc_copied_bytes += bytes;
	else if (dead)
		ss->zc_dropped_bytes += bytes;
	else
		ss->zc_bytes += bytes;
	if (q) {
		q->st.notifs++;
		if (copied)
			q->st.zc_copied_bytes += bytes;
		else if (dead)
			q->st.zc_dropped_bytes += bytes;
		else
			q->st.zc_bytes += bytes;
		/* a send that moved no byte (a final EAGAIN, an error) may still
		 * carry COPIED on its notification, which then says nothing
		 * (rp_send_zc): no switch, the next big push asks again; nor
		 * does one on a queue that is ending */
		if (copied && bytes && !dead && !(q->flags & RP_OUTQ_ZC_ALWAYS)) {
			if (q->mode == MODE_ZC && !q->probing)
				ADD(q, switched, 1);
			if (q->probing && q->probe_shift < PROBE_SHIFT_MAX)
				q->probe_shift++;
			if (q->mode == MODE_ZC || q->probing)
				go_plain(q);
		} else if (!copied && q->probing) {
			q->mode = MODE_ZC; /* the probe went out without a copy */
		}
		if (!copied && !dead && q->mode == MODE_ZC) {
			q->proven = true;
			q->probe_shift = 0;
		}
		q->probing = false;
		q->trial = false;
	}
}

/* A notification @n waited for came: release it if it was its last and
 * @n has left the FIFO. */
static void node_unhold(struct node *n)
{
	if (--n->notifs == 0 && n->done) {
		if (n->q)
			wait_del(n->q, n);
		node_release(n);
	}
}

static void on_zc(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct zc_rec *r = arg;
	struct node *n = r->node;
	struct rp_outq *q;

	if (c->flags & RP_CQE_NOTIF) {
		zc_notified(sh, n->q, r->bytes, c->flags & RP_CQE_ZC_COPIED);
		rp_pool_free(r);
		node_unhold(n);
		return;
	}
	q = r->q;
	q->inflight = false;
	q->inflight_nodes = 0;
	if (c->flags & RP_CQE_MORE) {
		r->bytes = c->res > 0 ? (size_t)c->res : 0;
		n->notifs++;
	} else {
		/* no notification follows: a failed send, or (not seen: the
		 * queue asks rp_engine_zc first) bytes the engine sent plain */
		if (c->res > 0)
			ADD(q, plain_bytes, (uint64_t)c->res);
		q->trial = false; /* no notification will come for this one */
		rp_pool_free(r);
	}
	if (c->res > 0) {
		n->off += (size_t)c->res;
		q->queued -= (size_t)c->res;
		if (n->off == n->len)
			node_retire(q, fifo_pop(q));
	} else if (c->res == -EAGAIN) {
		wait_room(q);
	} else {
		fail(q, c->res < 0 ? c->res : -EPIPE);
	}
	after_send(q);
	op_end(q);
}

/* Sends the head @n by SEND_ZC. Returns false, having done nothing, when
 * the pool has no zero-copy record (its 64 B class out of objects and no
 * span free): the caller then sends the head plain, which needs only an op
 * (another class). zc_end, trial and probing stay as they were: the plain
 * send advances n->off, and wants_zc goes back to SEND_ZC for what is left
 * below zc_end once a record can be had; no byte is sent twice. Stalling
 * instead held the queue on the retry timer for as long as the class
 * stayed dry (test_outq's zc_rec_class_full). True: sent, or refused
 * (op_refused ran). */
static bool send_zc(struct rp_outq *q, struct node *n)
{
	size_t len;
	struct zc_rec *r = block_alloc(q->sh, sizeof(*r));

	if (!r)
		return false;
	if (!n->zc_end) {
		n->zc_end = n->len;
		if (q->mode == MODE_PLAIN && !(q->flags & RP_OUTQ_ZC_ALWAYS)) {
			q->probing = true;
			ADD(q, probes, 1);
		} else if (!q->proven && !(q->flags & RP_OUTQ_ZC_ALWAYS)) {
			q->trial = true;
		}
		/* A trial or a probe needs one notification, not the whole
		 * push: on a path that copies (loopback, veth) a copied
		 * SEND_ZC runs at 0.5-0.6x of plain's rate, so only a
		 * threshold-sized piece pays it (1/64 of a 1 MB push). */
		if ((q->probing || q->trial) && n->len - n->off > q->zc_threshold)
			n->zc_end = n->off + q->zc_threshold;
	}
	len = n->zc_end - n->off;
	r->node = n;
	r->q = q;
	r->bytes = 0;
	if (!rp_send_zc(q->sh, q->fd, n->base + n->off,
			(unsigned)(len < ZC_PIECE_MAX ? len : ZC_PIECE_MAX), MSG_NOSIGNAL, on_zc,
			r)) {
		int err = errno;

		rp_pool_free(r);
		op_refused(q, err);
		return true;
	}
	ADD(q, zc_sends, 1);
	q->inflight = true;
	q->inflight_nodes = 1;
	q->ops++;
	return true;
}

static void on_zc_vec(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct zc_vec *v = arg;
	struct node **held = vec_held(v);
	struct rp_outq *q;

	if (c->flags & RP_CQE_NOTIF) {
		zc_notified(sh, v->held ? held[0]->q : NULL, v->bytes, c->flags & RP_CQE_ZC_COPIED);
		/* a release may close the queue: each node is looked at only
		 * through its own node->q, which a free of the queue clears */
		for (unsigned i = 0; i < v->held; i++)
			node_unhold(held[i]);
		rp_pool_free(v);
		return;
	}
	q = v->q;
	q->inflight = false;
	q->inflight_nodes = 0;
	if (c->flags & RP_CQE_MORE) {
		size_t left = c->res > 0 ? (size_t)c->res : 0;

		v->bytes = left;
		/* the nodes the kernel may still read from, and the head at
		 * least (nothing sent: the notification finds q through it);
		 * the send in flight kept them all in the FIFO, in order */
		for (struct node *n = q->head; n && v->held < v->msg.msg_iovlen; n = n->next) {
			size_t take = n->len - n->off < left ? n->len - n->off : left;

			held[v->held++] = n;
			n->notifs++;
			left -= take;
			if (!left)
				break;
		}
	} else {
		/* no notification follows: a failed send, or (not seen: the
		 * queue asks rp_engine_zc first) bytes the engine sent plain */
		if (c->res > 0)
			ADD(q, plain_bytes, (uint64_t)c->res);
		q->trial = false; /* no notification will come for this one */
		rp_pool_free(v);
	}
	if (c->res > 0)
		fifo_sent(q, (size_t)c->res);
	else if (c->res == -EAGAIN)
		wait_room(q);
	else
		fail(q, c->res < 0 ? c->res : -EPIPE);
	after_send(q);
	op_end(q);
}

/*
 * Sends the head's first @niov nodes by one SENDMSG_ZC (vec_wants_zc).
 * Returns false, having done nothing, when the pool has no block for its
 * record: the caller then sends them plain (send_plain). While zero-copy
 * is not proven the vector is the trial and carries only its first
 * zc_threshold bytes, as a big push's trial does; the rest follows plain
 * behind it. True: sent, or refused (op_refused ran).
 */
static bool send_zc_vec(struct rp_outq *q, unsigned niov)
{
	bool trial = !q->proven && !(q->flags & RP_OUTQ_ZC_ALWAYS);
	size_t room = trial ? q->zc_threshold : SIZE_MAX;
	struct zc_vec *v =
		block_alloc(q->sh, sizeof(*v) + niov * (sizeof(struct iovec) + sizeof(struct node *)));
	struct node *n = q->head;
	unsigned i;

	if (!v)
		return false;
	memset(v, 0, sizeof(*v));
	for (i = 0; i < niov && room; i++, n = n->next) {
		size_t len = n->len - n->off < room ? n->len - n->off : room;

		v->iov[i].iov_base = (void *)(n->base + n->off);
		v->iov[i].iov_len = len;
		room -= len;
	}
	v->q = q;
	v->msg.msg_iov = v->iov;
	v->msg.msg_iovlen = i; /* vec_held: the node pointers after these */
	if (!rp_sendmsg_zc(q->sh, q->fd, &v->msg, MSG_NOSIGNAL, on_zc_vec, v)) {
		int err = errno;

		rp_pool_free(v);
		op_refused(q, err);
		return true;
	}
	if (trial)
		q->trial = true;
	ADD(q, zc_sends, 1);
	ADD(q, zc_sendmsgs, 1);
	q->inflight = true;
	q->inflight_nodes = (uint16_t)i;
	q->ops++;
	return true;
}

/* One send op for the head's first @niov nodes: IORING_OP_SEND for one
 * buffer (no msghdr or iovec for the kernel to copy in and import, and no
 * pool block for them here), IORING_OP_SENDMSG for more. Returns the nodes
 * the send covers: @niov, or 1 when the pool had no block for the iovecs;
 * 0: no op could be had (op_refused ran).
 *
 * No iovec block (its class out of objects and no span free: the pool is
 * held by other connections, possibly for as long as they stay idle) is no
 * reason to stop: the head's first buffer needs no block, so it leaves
 * alone by IORING_OP_SEND, counted in single_sends, and its completion
 * flushes the rest (gathered again once a block can be had). Deferring it
 * to the retry timer instead stalled a queue whose data could go out for
 * as long as the pool stayed full (test_outq's sendv_class_full). */
static unsigned send_plain(struct rp_outq *q, unsigned niov)
{
	struct node *n = q->head;
	struct sendv *sv = NULL;

	if (niov > 1) {
		sv = block_alloc(q->sh, sizeof(*sv) + niov * sizeof(struct iovec));
		if (!sv)
			niov = 1;
	}
	if (niov == 1) {
		if (!rp_send(q->sh, q->fd, n->base + n->off, (unsigned)(n->len - n->off),
			     MSG_NOSIGNAL, on_plain, q)) {
			op_refused(q, errno);
			return 0;
		}
		ADD(q, single_sends, 1);
		return 1;
	}
	for (unsigned i = 0; i < niov; i++, n = n->next) {
		sv->iov[i].iov_base = (void *)(n->base + n->off);
		sv->iov[i].iov_len = n->len - n->off;
	}
	memset(&sv->msg, 0, sizeof(sv->msg));
	sv->msg.msg_iov = sv->iov;
	sv->msg.msg_iovlen = niov;
	if (!rp_sendmsg(q->sh, q->fd, &sv->msg, MSG_NOSIGNAL, on_plain, q)) {
		int err = errno;

		rp_pool_free(sv);
		op_refused(q, err);
		return 0;
	}
	q->sv = sv;
	return niov;
}

static void flush(struct rp_outq *q)
{
	unsigned niov = 0;
	struct node *n;

	/* stalled: the retry timer flushes it (its snext is in sv's place) */
	if (q->inflight || q->err || !q->head || q->stalled)
		return;
	if (wants_zc(q, q->head)) {
		if (send_zc(q, q->head))
			return;
		niov = 1; /* no zero-copy record: the head alone, plain */
	} else {
		size_t bytes = 0;

		for (n = q->head; n && niov < RP_OUTQ_IOV; n = n->next) {
			if (niov && wants_zc(q, n))
				break; /* order: the big one goes after these */
			bytes += n->len - n->off;
			niov++;
		}
		if (niov > 1 && vec_wants_zc(q, bytes) && send_zc_vec(q, niov))
			return;
	}
	niov = send_plain(q, niov);
	if (!niov)
		return;
	ADD(q, sendmsgs, 1);
	q->inflight = true;
	q->inflight_nodes = (uint16_t)niov;
	q->ops++;
}

static void on_nop(struct rp_shard *sh, void *arg, const struct rp_cqe *c)
{
	struct rp_outq *q = arg;

	(void)sh;
	(void)c;
	q->nop_pending = false;
	if (!q->closing && !q->err)
		flush(q);
	op_end(q);
}

/* A push made in this round: flush once the round ends (the NOP completes
 * after the loop's next submit, with every push of the round queued). */
static void schedule(struct rp_outq *q)
{
	if ((q->flags & RP_OUTQ_MANUAL) || q->inflight || q->nop_pending)
		return;
	if (rp_nop(q->sh, on_nop, q)) {
		q->nop_pending = true;
		q->ops++;
		return;
	}
	q->ops++; /* no NOP to be had: send now (on_error may close the queue) */
	flush(q);
	op_end(q);
}

/* ---- the API ---- */

#define FLAGS_ALL                                                                          \
	(RP_OUTQ_MANUAL | RP_OUTQ_LOCAL_PLAIN | RP_OUTQ_ZC_OFF | RP_OUTQ_ZC_ALWAYS |       \
	 RP_OUTQ_LOCAL_PROBE)
#define ZC_BOTH	   (RP_OUTQ_ZC_OFF | RP_OUTQ_ZC_ALWAYS)
#define LOCAL_BOTH (RP_OUTQ_LOCAL_PLAIN | RP_OUTQ_LOCAL_PROBE)

int rp_outq_init(struct rp_shard *sh, struct rp_outq **out, int fd, const struct rp_outq_opts *opts)
{
	int ret;

	if (!sh || !out || fd < 0)
		return -EINVAL;
	ret = peer_socket_check(fd);
	if (ret)
		return ret;
	return outq_init_socket(sh, out, fd, opts);
}

int outq_init_socket(struct rp_shard *sh, struct rp_outq **out, int fd,
		     const struct rp_outq_opts *opts)
{
	struct rp_outq *q;

	/* a flag this version does not know is refused, not ignored; so is
	 * never zero-copy together with always zero-copy */
	if (opts && ((opts->flags & ~FLAGS_ALL) || (opts->flags & ZC_BOTH) == ZC_BOTH ||
		     (opts->flags & LOCAL_BOTH) == LOCAL_BOTH))
		return -EINVAL;
	if (rp_shard_stopping(sh))
		return -ESHUTDOWN;
	shard_use(sh);
	if (!tls.retry && !(tls.retry = rp_timer_new(sh)))
		return -ENOMEM; /* the shard's first queue reserves the retry timer */
	q = rp_pool_alloc(rp_shard_pool(sh), sizeof(*q));
	if (!q) {
		if (!tls.queues) {
			rp_timer_free(sh, tls.retry);
			tls.retry = NULL;
		}
		return -ENOMEM;
	}
	tls.queues++;
	memset(q, 0, sizeof(*q));
	q->sh = sh;
	q->fd = fd;
	if (opts) {
		q->flags = (uint16_t)opts->flags;
		q->max_bytes = opts->max_bytes;
		q->zc_threshold = opts->zc_threshold;
		q->probe_bytes = opts->probe_bytes;
		q->probe_ns = opts->probe_ns;
		q->on_error = opts->on_error;
		q->on_writable = opts->on_writable;
		q->arg = opts->arg;
	}
	if (!q->max_bytes)
		q->max_bytes = MAX_BYTES_DEFAULT;
	if (!q->zc_threshold)
		q->zc_threshold = ZC_THRESHOLD_DEFAULT;
	if (!q->probe_bytes)
		q->probe_bytes = PROBE_BYTES_DEFAULT;
	if (!q->probe_ns)
		q->probe_ns = PROBE_NS_DEFAULT;
	q->mode = MODE_ZC;
	q->local = -1;
	/* RP_OUTQ_ZC_OFF has nothing to decide (looked up still where
	 * RP_OUTQ_LOCAL_PLAIN asks: local_plain counts it, as it did) */
	if (!(q->flags & (RP_OUTQ_ZC_ALWAYS | RP_OUTQ_LOCAL_PROBE)) &&
	    (!(q->flags & RP_OUTQ_ZC_OFF) || (q->flags & RP_OUTQ_LOCAL_PLAIN))) {
		struct peer_addrs pa;

		/* the addresses always (two syscalls); the route only with
		 * RP_OUTQ_LOCAL_PLAIN: for a remote peer, the one that needs an
		 * answer, it is nine more, 15-30x the addresses' cost (outq.h,
		 * Local peers). Undecided stays -1: the notification path looks
		 * it up on its rare uncopied case. */
		if (!peer_addrs_get(fd, &pa)) {
			if (q->flags & RP_OUTQ_LOCAL_PLAIN)
				q->local = peer_addrs_is_local(&pa);
			else if (peer_addrs_local(&pa))
				q->local = peer_addrs_local(&pa) > 0;
		}
		if (q->local == 1) {
			go_plain(q);
			q->local_plain = 1;
			shard_st(sh)->local_plain++;
		}
	}
	*out = q;
	return 0;
}

static int admit(struct rp_outq *q, size_t len, size_t max)
{
	if (!len || len > max)
		return -EINVAL;
	if (q->closing)
		return -ESHUTDOWN;
	if (q->err)
		return q->err;
	/* The bound is on backlog, not on one message's size: an empty queue
	 * takes any one push (up to RP_OUTQ_LEN_MAX). Refusing it with
	 * -ENOBUFS left the caller waiting for an on_writable that could
	 * never come (an empty queue never drains to half the bound). */
	if (q->queued && q->queued + len > q->max_bytes) {
		q->want_writable = true;
		ADD(q, refused, 1);
		return -ENOBUFS;
	}
	return 0;
}

static void fifo_add(struct rp_outq *q, struct node *n)
{
	if (q->tail)
		q->tail->next = n;
	else
		q->head = n;
	q->tail = n;
}

int rp_outq_push(struct rp_outq *q, const void *buf, size_t len, rp_outq_release_fn release,
		 void *rarg)
{
	struct node *n;
	int ret;

	if (!q || !buf)
		return -EINVAL;
	ret = admit(q, len, RP_OUTQ_LEN_MAX);
	if (ret)
		return ret;
	n = rp_pool_alloc(rp_shard_pool(q->sh), sizeof(*n));
	if (!n)
		return -ENOMEM;
	memset(n, 0, sizeof(*n));
	n->q = q;
	n->base = buf;
	n->len = len;
	n->release = release;
	n->rarg = rarg;
	n->kind = KIND_PUSH;
	fifo_add(q, n);
	q->queued += len;
	ADD(q, pushes, 1);
	schedule(q);
	return 0;
}

int rp_outq_copy(struct rp_outq *q, const void *data, size_t len)
{
	struct node *n;
	int ret;

	if (!q || !data)
		return -EINVAL;
	ret = admit(q, len, RP_OUTQ_COPY_MAX);
	if (ret)
		return ret;
	n = q->tail;
	if (n && n->kind == KIND_COPY && n->cap - n->len >= len) {
		/* append: a send in flight covers only the bytes it was given */
		memcpy((char *)n->base + n->len, data, len);
		n->len += len;
	} else {
		size_t cap = len > COPY_BLOCK - sizeof(*n) ? len : COPY_BLOCK - sizeof(*n);

		n = rp_pool_alloc(rp_shard_pool(q->sh), sizeof(*n) + cap);
		if (!n)
			return -ENOMEM;
		memset(n, 0, sizeof(*n));
		n->q = q;
		n->base = (const char *)(n + 1);
		n->cap = cap;
		n->kind = KIND_COPY;
		memcpy(n + 1, data, len);
		n->len = len;
		fifo_add(q, n);
	}
	q->queued += len;
	ADD(q, pushes, 1);
	ADD(q, copied_in, len);
	schedule(q);
	return 0;
}

int rp_outq_flush(struct rp_outq *q)
{
	int err;

	if (!q)
		return -EINVAL;
	if (q->closing)
		return -ESHUTDOWN;
	q->ops++; /* on_error may close the queue: free it only after we are done */
	flush(q);
	err = q->err;
	op_end(q);
	return err;
}

void rp_outq_close(struct rp_outq *q)
{
	if (!q || q->closing)
		return;
	q->closing = true;
	drop_queued(q);
	if (!q->ops)
		destroy(q);
}
