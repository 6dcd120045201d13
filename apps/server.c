/* SPDX-License-Identifier: MIT */
/* Shared parts of the server commands (server.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <ringplane/engine.h>
#include <ringplane/pool.h>

#include "args.h"
#include "memlimit.h"
#include "server.h"

bool rp_app_pool_low(struct rp_shard *sh, size_t pending)
{
	struct rp_pool_stats ps;
	uint64_t live = 0;
	size_t reserve;

	rp_pool_stats(rp_shard_pool(sh), &ps);
	for (unsigned k = 0; k < RP_POOL_NCLASS; k++)
		live += ps.class_live_bytes[k];
	reserve = ps.arena_bytes / 16 > RP_APP_POOL_RESERVE_MIN ? ps.arena_bytes / 16 :
								 RP_APP_POOL_RESERVE_MIN;
	return live + pending + reserve > ps.arena_bytes;
}

bool rp_app_room_short(struct rp_pool *pool, const size_t *size, const size_t *want, unsigned n)
{
	for (int pass = 0; pass < 2; pass++) {
		size_t spans = rp_pool_spans_free(pool, pass ? SIZE_MAX : 0), missing = 0;

		for (unsigned k = 0; k < n; k++) {
			size_t cap = rp_pool_class_capacity(size[k]);
			size_t own = rp_pool_class_free(pool, size[k], 0) - spans * cap;

			if (want[k] > own)
				missing += (want[k] - own + cap - 1) / cap;
		}
		if (missing <= spans)
			return false;
	}
	return true;
}

static int listen_one(const struct sockaddr_storage *ss, socklen_t len)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    bind(fd, (const struct sockaddr *)ss, len) || listen(fd, RP_APP_BACKLOG)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

int rp_app_listeners(const char *cmd, const char *arg, struct sockaddr_storage *ss,
		     socklen_t *len, int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		fds[i] = -1;
	for (unsigned i = 0; i < n; i++) {
		int fd = listen_one(ss, *len);

		if (fd < 0) {
			fprintf(stderr, "ringplane %s: listen on %s: %s\n", cmd, arg, strerror(-fd));
			for (unsigned k = 0; k < i; k++) {
				close(fds[k]);
				fds[k] = -1;
			}
			return fd;
		}
		fds[i] = fd;
		if (i == 0) /* port 0: the others share the one the kernel picked */
			getsockname(fd, (struct sockaddr *)ss, len);
	}
	return 0;
}

void rp_app_addr_str(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		snprintf(out, cap, "[%s]:%d", host, ntohs(a->sin6_port));
	} else {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		snprintf(out, cap, "%s:%d", host, ntohs(a->sin_port));
	}
}

void rp_app_raise_nofile(void)
{
	struct rlimit rl;

	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

void rp_app_block_signals(sigset_t *sigs)
{
	sigemptyset(sigs);
	sigaddset(sigs, SIGINT);
	sigaddset(sigs, SIGTERM);
	sigaddset(sigs, SIGQUIT);
	sigaddset(sigs, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int rp_app_wait_signals(const sigset_t *sigs, unsigned interval, void (*stats)(void *),
			void *arg)
{
	for (;;) {
		struct timespec ts = { .tv_sec = interval ? interval : 3600 };
		int sig = sigtimedwait(sigs, NULL, &ts);

		if (sig == SIGUSR1 || (sig < 0 && errno == EAGAIN && interval))
			stats(arg);
		else if (sig == SIGINT || sig == SIGTERM || sig == SIGQUIT)
			return sig;
	}
}

void rp_app_runtime_error(const char *cmd, const char *what, int err)
{
	fprintf(stderr, "ringplane %s: %s: %s\n", cmd, what,
		rp_engine_error()[0] ? rp_engine_error() : strerror(-err));
}

/* Each shard populates its whole pool at start: past the cgroup's memory
 * limit that is an OOM kill (exit 137, nothing said), so it is refused
 * here, before any shard runs, with a line naming the way out. The rest
 * of the process (rings, stacks, serve's file cache, the binary's pages)
 * is kept besides: 4 MB and 2 MB a shard. Measured in a v1 memory group
 * (max_usage_in_bytes less the pools, release): echo and relay 0.4 to
 * 0.7 MB a shard (echo 16 x 20 MB: 6 MB), serve 1.6 MB a shard (16 x 8
 * MB: 25 MB). A flat 4 MB let echo 16 x 20 MB pass under 324 MB and be
 * OOM-killed. */
static bool pool_over_limit(const char *cmd, unsigned n, size_t pool)
{
	uint64_t lim, total = (uint64_t)n * pool;
	uint64_t rest = ((uint64_t)RP_APP_POOL_REST_MB + (uint64_t)n * RP_APP_POOL_REST_SHARD_MB)
			<< 20;
	char rest_note[96];

	if (rp_app_cgroup_mem_limit(&lim) != 1 || total + rest <= lim)
		return false;
	snprintf(rest_note, sizeof(rest_note),
		 " (less %" PRIu64 " MB for the rest of the process: %u MB and %u MB a shard)",
		 rest >> 20, RP_APP_POOL_REST_MB, RP_APP_POOL_REST_SHARD_MB);
	fprintf(stderr,
		"ringplane %s: shards %u x pool %zu MB = %" PRIu64
		" MB exceeds the cgroup memory limit %" PRIu64 " MB%s; use --pool-mb or --shards\n",
		cmd, n, pool >> 20, total >> 20, lim >> 20, total <= lim ? rest_note : "");
	return true;
}

unsigned rp_app_runtime_listen(const char *cmd, const struct rp_runtime_config *rc,
			       struct rp_app_opts *o, struct rp_runtime **rt, int **lfds)
{
	unsigned n;
	int ret = rp_runtime_create(rc, rt);

	if (ret) {
		rp_app_runtime_error(cmd, "runtime", ret);
		return 0;
	}
	n = rp_runtime_shards(*rt);
	if (pool_over_limit(cmd, n, rc->pool_bytes))
		return 0;
	*lfds = calloc(n, sizeof(int));
	if (!*lfds)
		return 0;
	/* The first listener settles the port (port 0 picks one); the others
	 * share it. Each shard's init takes its listener (lfds[i] = -1) and
	 * closes it when it stops; what is left after is the caller's. */
	if (rp_app_listeners(cmd, o->listen, &o->ss, &o->sslen, *lfds, n))
		return 0;
	return n;
}

int rp_app_start(const char *cmd, struct rp_runtime *rt, const struct sockaddr_storage *ss)
{
	char host[INET6_ADDRSTRLEN + 16];
	int ret = rp_runtime_start(rt);

	if (ret) {
		rp_app_runtime_error(cmd, "start", ret);
		return ret;
	}
	rp_app_addr_str(ss, host, sizeof(host));
	printf("listening on %s\n", host);
	return 0;
}

/* One shard's answers to the drain's polls. The control thread writes
 * asked and reads the rest; the shard writes live, then answered. */
struct drain_slot {
	const struct rp_app_drain *d;
	unsigned asked;	   /* control thread only: polls submitted */
	unsigned answered; /* polls run (the shard's release store) */
	unsigned live;	   /* the shard's live connections at its last answer */
	unsigned seen;	   /* control thread only: the answer counted in quiet */
	unsigned quiet;	   /* control thread only: answers in a row with live 0 */
};

static void drain_msg(struct rp_shard *sh, void *arg)
{
	struct drain_slot *s = arg;

	if (rp_shard_stopping(sh))
		return; /* reached the shard after the stop: it is ending anyway */
	__atomic_store_n(&s->live, s->d->step(sh), __ATOMIC_RELAXED);
	/* R1: pairs with the control thread's acquire load of answered (A1):
	 * live is the count of the round answered */
	__atomic_store_n(&s->answered, __atomic_load_n(&s->answered, __ATOMIC_RELAXED) + 1,
			 __ATOMIC_RELEASE);
}

/* One poll round: ask every shard whose last poll was answered (a busy
 * shard is not queued more than one); true when every shard's last two
 * answers were 0. Two, not one: an answer is up to a round old, and a
 * connection accepted after it (a completion the kernel posted while the
 * shard answered: with SQPOLL it may post one at any time) would be cut
 * by the stop that follows; the second answer, asked after the listener
 * was shut, sees it. The drain ends one round (RP_APP_DRAIN_POLL_MS) later. */
static bool drain_poll(struct rp_runtime *rt, struct drain_slot *slots, unsigned n)
{
	bool done = true;

	for (unsigned i = 0; i < n; i++) {
		struct drain_slot *s = &slots[i];
		unsigned answered = __atomic_load_n(&s->answered, __ATOMIC_ACQUIRE); /* A1 */

		if (answered != s->asked) {
			done = false; /* still running the last one */
			continue;
		}
		if (answered != s->seen) { /* a new answer */
			s->seen = answered;
			s->quiet = __atomic_load_n(&s->live, __ATOMIC_RELAXED) ? 0 : s->quiet + 1;
		}
		if (s->quiet < 2)
			done = false;
		/* a full queue or no memory: asked again at the next round */
		if (!rp_runtime_submit(rt, i, drain_msg, s))
			s->asked++;
	}
	return done;
}

int rp_app_run_drain(struct rp_runtime *rt, const sigset_t *sigs, const struct rp_app_opts *o,
		     void (*stats)(void *), void *arg, const struct rp_app_drain *d)
{
	unsigned n = rp_runtime_shards(rt), limit_s = o->drain_set ? o->drain_s :
								      RP_APP_DRAIN_DEFAULT_S;
	struct drain_slot *slots = NULL;
	uint64_t deadline, next_stats;
	int sig, ret;

	fflush(stdout);
	sig = rp_app_wait_signals(sigs, o->interval, stats, arg);
	if (sig != SIGQUIT || !d || !limit_s)
		goto stop;
	slots = calloc(n, sizeof(*slots));
	if (!slots) {
		fprintf(stderr, "ringplane: drain: out of memory; stopping\n");
		goto stop;
	}
	fprintf(stderr, "ringplane: SIGQUIT: draining (stop accepting, end connections "
			"gracefully; at most %u s)\n", limit_s);
	for (unsigned i = 0; i < n; i++)
		slots[i].d = d;
	deadline = rp_app_now_ms() + (uint64_t)limit_s * 1000u;
	next_stats = rp_app_now_ms() + (uint64_t)o->interval * 1000u;
	for (;;) {
		struct timespec ts = { .tv_nsec = (long)RP_APP_DRAIN_POLL_MS * 1000000L };
		uint64_t now;

		if (drain_poll(rt, slots, n)) {
			fprintf(stderr, "ringplane: drained: no connection left\n");
			break;
		}
		now = rp_app_now_ms();
		if (now >= deadline) {
			fprintf(stderr, "ringplane: drain timeout (%u s): stopping\n", limit_s);
			break;
		}
		if (o->interval && now >= next_stats) {
			stats(arg);
			next_stats = now + (uint64_t)o->interval * 1000u;
		}
		sig = sigtimedwait(sigs, NULL, &ts);
		if (sig == SIGINT || sig == SIGTERM) {
			fprintf(stderr, "ringplane: %s during the drain: stopping\n",
				sig == SIGINT ? "SIGINT" : "SIGTERM");
			break;
		}
		if (sig == SIGUSR1)
			stats(arg);
	}
stop:
	rp_runtime_stop(rt);
	ret = rp_runtime_wait(rt);
	free(slots); /* the shards are joined: no poll runs any more */
	return ret;
}

void rp_app_close_listeners(const int *fds, unsigned n)
{
	for (unsigned i = 0; fds && i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

static void on_backoff(struct rp_shard *sh, void *arg, const struct rp_cqe *cq)
{
	struct rp_app_backoff *b = arg;

	(void)cq;
	b->pending = false;
	if (!rp_shard_stopping(sh))
		b->fn(sh, b->arg);
}

#ifdef RP_FAULTS
/* Test hooks (server.h), in the faults build only: failures left to
 * inject, taken by any shard. */
static unsigned fault_rearm, fault_start;
static pthread_once_t faults_once = PTHREAD_ONCE_INIT;

static void read_faults(void)
{
	const char *r = getenv("RP_APP_FAULT_REARM"), *st = getenv("RP_APP_FAULT_START");

	fault_rearm = r ? (unsigned)strtoul(r, NULL, 10) : 0;
	fault_start = st ? (unsigned)strtoul(st, NULL, 10) : 0;
}

static bool fault_take(unsigned *left)
{
	unsigned f;

	pthread_once(&faults_once, read_faults);
	f = __atomic_load_n(left, __ATOMIC_RELAXED);
	while (f && !__atomic_compare_exchange_n(left, &f, f - 1, false, __ATOMIC_RELAXED,
						 __ATOMIC_RELAXED))
		;
	return f != 0;
}
#define FAULT_TAKE(what) fault_take(&fault_##what)
#else
#define FAULT_TAKE(what) false
#endif

int rp_app_backoff_init(struct rp_shard *sh, struct rp_app_backoff *b)
{
	if (!b->timer)
		b->timer = rp_timer_new(sh);
	return b->timer ? 0 : -ENOMEM;
}

void rp_app_backoff_fini(struct rp_shard *sh, struct rp_app_backoff *b)
{
	rp_timer_free(sh, b->timer);
	b->timer = NULL;
	b->pending = false;
}

int rp_app_backoff_arm(struct rp_shard *sh, struct rp_app_backoff *b, uint64_t ns,
		       void (*fn)(struct rp_shard *sh, void *arg), void *arg)
{
	int ret;

	if (b->pending || rp_shard_stopping(sh))
		return 0;
	if (!b->timer)
		return -ENOMEM; /* never reserved (rp_app_backoff_init) */
	b->fn = fn;
	b->arg = arg;
	/* the reserved op cannot run out, and since 2fdfacb a full SQ no
	 * longer refuses the arm either (the engine sends it on the loop's
	 * next turn): -EALREADY and -ESHUTDOWN are ruled out above, so 0 */
	ret = rp_timer_arm(sh, b->timer, ns, on_backoff, b);
	b->pending = ret == 0;
	return ret;
}

/* A counter its shard writes and any thread reads (relaxed, as ST_ADD). */
static void count(uint64_t *c)
{
	if (c)
		__atomic_store_n(c, *c + 1, __ATOMIC_RELAXED);
}

/* ---- clients refused at accept, looked at again (server.h) ---- */

int rp_app_again_init(struct rp_shard *sh, struct rp_app_again *a)
{
	if (!a->t)
		a->t = rp_timer_new(sh);
	return a->t ? 0 : -ENOMEM;
}

/* Refuse every client still listed. */
static void again_refuse(struct rp_shard *sh, struct rp_app_again *a)
{
	for (unsigned i = 0; i < a->n; i++)
		a->refuse(sh, a->arg, a->q[i].fd);
	a->n = 0;
}

static void on_again(struct rp_shard *sh, void *arg, const struct rp_cqe *cq);

/*
 * A pass over the listed clients, oldest first: each is offered to take
 * again. Those still short are kept for the timer's next pass, until
 * their RP_APP_AGAIN_TRIES-th; a stop (the timer's -ECANCELED, or the
 * shard stopping) refuses them all. A take may list a client itself (a
 * failed receive closing a connection pokes a listener the drain holds,
 * and its accept is refused): appended at n, it is looked at in this
 * pass too, and the message its add posted finds the timer armed below.
 */
static void again_pass(struct rp_shard *sh, struct rp_app_again *a, bool stop)
{
	unsigned kept = 0;

	a->due = false;
	stop = stop || rp_shard_stopping(sh);
	for (unsigned i = 0; i < a->n; i++) {
		int fd = a->q[i].fd;

		if (!stop && a->take(sh, a->arg, fd))
			continue;
		if (stop || ++a->q[i].tries >= RP_APP_AGAIN_TRIES) {
			a->refuse(sh, a->arg, fd);
			continue;
		}
		a->q[kept++] = a->q[i];
	}
	a->n = kept;
	/* armed already: a pass before this one (the message of an add from
	 * within a pass) armed it; it stays due. -EBUSY or -ESHUTDOWN: no
	 * later pass can be had, so closed now */
	if (kept && !stop && (rp_timer_armed(a->t) ||
			      !rp_timer_arm(sh, a->t, RP_APP_AGAIN_GAP_NS, on_again, a))) {
		a->due = true;
		return;
	}
	again_refuse(sh, a);
}

static void again_msg(struct rp_shard *sh, void *arg)
{
	again_pass(sh, arg, false);
}

static void on_again(struct rp_shard *sh, void *arg, const struct rp_cqe *cq)
{
	again_pass(sh, arg, cq->res == -ECANCELED);
}

void rp_app_again_add(struct rp_shard *sh, struct rp_app_again *a, int fd)
{
	if (rp_shard_stopping(sh) || a->n == RP_APP_AGAIN_MAX || !a->t) {
		a->refuse(sh, a->arg, fd);
		return;
	}
	/* one message for the whole list: the first refusal since the last
	 * pass posts it, the others wait behind it */
	if (!a->due) {
		if (rp_shard_post(sh, rp_shard_id(sh), again_msg, a)) {
			a->refuse(sh, a->arg, fd);
			return;
		}
		a->due = true;
	}
	a->q[a->n].fd = fd;
	a->q[a->n].tries = 0;
	a->n++;
}

void rp_app_again_fini(struct rp_shard *sh, struct rp_app_again *a)
{
	again_refuse(sh, a); /* a pass the stop left undone */
	rp_timer_free(sh, a->t);
	a->t = NULL;
}

static void accept_again(struct rp_shard *sh, void *arg)
{
	(void)rp_app_accept_arm(sh, arg);
}

/* Down: a timer arms it after the back-off; without one, the next poke.
 * Returns the timer's arm: 0, or why it failed. */
static int accept_later(struct rp_shard *sh, struct rp_app_accept *a)
{
	if (a->closed)
		return 0; /* drained: never armed again */
	a->down = true;
	return rp_app_backoff_arm(sh, &a->backoff, a->backoff_ns, accept_again, a);
}

int rp_app_accept_start(struct rp_shard *sh, struct rp_app_accept *a)
{
	int ret = rp_app_backoff_init(sh, &a->backoff);

	if (ret)
		return ret;
	/* the hook starts the accept down, as after an arm that failed: the
	 * back-off arms it (and RP_APP_FAULT_REARM can keep it down) */
	if (FAULT_TAKE(start)) {
		(void)accept_later(sh, a); /* reserved just above: armed */
		return 0;
	}
	a->op = rp_accept_multishot(sh, a->lfd, a->cb, a->arg);
	return a->op ? 0 : -errno;
}

void rp_app_accept_fini(struct rp_shard *sh, struct rp_app_accept *a)
{
	rp_app_backoff_fini(sh, &a->backoff);
}

int rp_app_accept_arm(struct rp_shard *sh, struct rp_app_accept *a)
{
	int err;

	if (a->op || a->lfd < 0 || a->closed || a->paused || rp_shard_stopping(sh))
		return 0;
	if (FAULT_TAKE(rearm))
		errno = ENOMEM;
	else
		a->op = rp_accept_multishot(sh, a->lfd, a->cb, a->arg);
	if (a->op) {
		if (a->failing)
			fprintf(stderr, "ringplane %s: shard %u: accepting again\n", a->cmd, a->id);
		a->down = a->failing = false;
		return 0;
	}
	err = errno;
	count(a->rearm_failed);
	/* the back-off timer was reserved by rp_app_accept_start, and its
	 * arm no longer fails for want of an SQE: the retry always comes.
	 * Said once per failing stretch */
	(void)accept_later(sh, a);
	if (!a->failing)
		fprintf(stderr,
			"ringplane %s: shard %u: cannot arm accept: %s; retrying every %llu ms\n",
			a->cmd, a->id, strerror(err),
			(unsigned long long)(a->backoff_ns / 1000000));
	a->failing = true;
	return -err;
}

static bool out_of_fds(int err)
{
	return err == EMFILE || err == ENFILE;
}

/* Up to @want spare descriptors (dups of @lfd) into @fds: how many. */
static unsigned spare_take(int lfd, int *fds, unsigned want)
{
	unsigned n = 0;

	while (n < want && (fds[n] = fcntl(lfd, F_DUPFD_CLOEXEC, 0)) >= 0)
		n++;
	return n;
}

/* Close the @n spare descriptors of spare_take. Its own function, never
 * inlined: tests/soak/tsan.supp names it (a dup's number may last have
 * been another shard's socket closed by that shard's ring, a descriptor
 * reuse TSan cannot see). */
static __attribute__((noinline)) void spare_give(const int *fds, unsigned n)
{
	while (n)
		close(fds[--n]);
}

/* True when @lfd (a listener) has a completed connection queued, or when
 * that cannot be told: what its accept4 would take. */
static bool listen_ready(int lfd)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };

	return poll(&p, 1, 0) != 0;
}

/*
 * The drain's own accepts: every connection the kernel completed and
 * queued on @a's listener, taken with accept4 and handed to @a's callback
 * as the multishot accept would (res: the fd; RP_CQE_MORE, so the
 * multishot's state is left as it is). The fd is made as the multishot's
 * (op_accept.c: SOCK_CLOEXEC, blocking; each command sets what it needs);
 * the listener turns O_NONBLOCK so the last accept4 says EAGAIN instead of
 * waiting. Bounded by the queue's size (RP_APP_BACKLOG; the kernel queues
 * up to one more than the backlog): what completes while this runs is
 * taken too, up to the bound. A failure other than EAGAIN is counted as a
 * failed accept; ECONNABORTED (a connection reset while queued) goes on.
 * Only at the drain: never on the hot path. Returns true when the queue
 * was emptied (EAGAIN, or the bound), false when a failure for lack of
 * descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM...) stopped it
 * with connections still queued: the caller keeps the listener open and
 * comes back once some have closed (rp_app_accept_close).
 */
static bool accept_queued(struct rp_shard *sh, struct rp_app_accept *a)
{
	unsigned taken = 0;
	int fl = fcntl(a->lfd, F_GETFL);

	if (fl < 0 || fcntl(a->lfd, F_SETFL, fl | O_NONBLOCK) < 0)
		return true; /* a blocking accept4 would hold the shard */
	for (unsigned i = 0; i <= RP_APP_BACKLOG; i++) {
		/* a connection that needs more descriptors (the relay's
		 * upstream, the file serve opens) is taken only with as many
		 * spare: held by dups until the accept4 succeeded, given back
		 * just before the callback */
		int spare[RP_APP_SPARE_MAX], fd = -1, err;
		unsigned want = a->spare_fds < RP_APP_SPARE_MAX ? a->spare_fds : RP_APP_SPARE_MAX;
		unsigned ns = spare_take(a->lfd, spare, want);

		if (ns == want)
			fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC);
		err = errno;
		spare_give(spare, ns);
		/* no spare, but nothing queued either: the queue is empty,
		 * as an accept4's EAGAIN would have said. Held for lack of
		 * a spare, the listener stayed open with no client waiting
		 * on it: new connects completed (not refused) and were
		 * taken in later, each failed pass counted as an error */
		if (ns < want && !listen_ready(a->lfd))
			break;
		if (fd < 0) {
			if (err == EAGAIN || err == EWOULDBLOCK)
				break;
			if (err == EINTR)
				continue;
			count(a->errors);
			if (err == ECONNABORTED || err == EPROTO)
				continue;
			/* the command's descriptors kept for reuse go first,
			 * then the same accept again, not counted against the
			 * bound: each shed closed one or more of a finite few */
			if (out_of_fds(err) && a->shed && a->shed(sh, a->arg)) {
				i--;
				continue;
			}
			/* said once per drain: a retry that fails again is the
			 * expected case while the connections held close */
			if (!a->said_held)
				fprintf(stderr,
					"ringplane %s: shard %u: drain: accept: %s (%u queued "
					"connections taken in); the rest wait in the listener's "
					"queue, taken in as descriptors free up (until the drain's "
					"end)\n",
					a->cmd, a->id, strerror(err), taken);
			a->said_held = true;
			return false;
		}
		taken++;
		a->cb(sh, a->arg,
		      &(struct rp_cqe){ .res = fd, .flags = RP_CQE_MORE, .buf = NULL, .bid = 0 });
	}
	return true;
}

/* The connections completed and still queued on the listener @fd (a
 * listening TCP socket's TCP_INFO: tcpi_unacked is its accept queue's
 * length); 0 when it cannot say. */
static unsigned listen_queued(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) || ti.tcpi_state != TCP_LISTEN)
		return 0;
	return ti.tcpi_unacked;
}

/* The end of a drained listener: what is still queued on it is reset by
 * the close (counted in drain_reset); a close at the stop (@why not NULL:
 * the drain's deadline, a SIGINT/SIGTERM) says how many on stderr. */
static void listener_end(struct rp_shard *sh, struct rp_app_accept *a, const char *why)
{
	unsigned left = listen_queued(a->lfd);

	if (a->drain_reset && left)
		__atomic_store_n(a->drain_reset, *a->drain_reset + left, __ATOMIC_RELAXED);
	if (why)
		fprintf(stderr,
			"ringplane %s: shard %u: %s with the listener's queue not emptied: %u "
			"queued connections reset\n",
			a->cmd, a->id, why, left);
	/* the shutdown ends a listen the cancel could not reach (no op
	 * memory): the kernel refuses what comes, resets what it queued
	 * in the microseconds since accept_queued's last EAGAIN, and a
	 * multishot accept on it ends (-EINVAL) */
	(void)shutdown(a->lfd, SHUT_RDWR);
	if (!rp_close(sh, a->lfd, NULL, NULL))
		close(a->lfd);
	a->lfd = -1;
	a->held = a->down = false;
}

/* A drain's pass over a listener's queue runs on one shard at a time:
 * the descriptors are the process's, and another shard's spare probes
 * or accepts would take the spare one counted on between the pass's
 * accept4 and its callback's use of it (the relay's upstream socket). A
 * shard that finds another's pass running does not wait: its listener is
 * held and its next step or poke tries again. */
static bool drain_pass_busy;

void rp_app_accept_close(struct rp_shard *sh, struct rp_app_accept *a)
{
	bool first = !a->closed;

	if (first) {
		a->closed = true;
		a->down = false; /* not down for a reason that passes: see the tick's linger rule */
	} else if (!a->held || a->in_queued) {
		return; /* closed already; or this runs inside accept_queued's callback */
	} else {
		count(a->drain_retries);
	}
	if (a->lfd < 0)
		return;
	/* first what the kernel has queued: a client whose handshake completed
	 * did nothing wrong, and the shutdown below would reset it */
	if (rp_shard_stopping(sh)) {
		a->held = false; /* a stop serves nothing more */
	} else if (__atomic_exchange_n(&drain_pass_busy, true, __ATOMIC_ACQUIRE)) {
		a->held = true; /* another shard's pass runs: the next step */
	} else {
		a->in_queued = true;
		a->held = !accept_queued(sh, a);
		a->in_queued = false;
		__atomic_store_n(&drain_pass_busy, false, __ATOMIC_RELEASE);
	}
	if (first && a->op)
		(void)rp_cancel_op(sh, a->op); /* the drain never accepts by it */
	if (a->held) {
		/* out of descriptors (or memory) with connections queued: the
		 * listener stays open, its queue growing no more than the
		 * backlog allows, until a pass ends with it empty; the drain's
		 * step, the tick and closes try again (rp_app_accept_poke).
		 * Down as an accept that waits for descriptors: the tick's
		 * linger rule frees those that lingering answers hold */
		a->down = true;
		return;
	}
	listener_end(sh, a, NULL);
}

void rp_app_accept_stop(struct rp_shard *sh, struct rp_app_accept *a)
{
	if (a->lfd < 0)
		return;
	if (a->held) {
		listener_end(sh, a, "drain ended");
		return;
	}
	if (!rp_close(sh, a->lfd, NULL, NULL))
		close(a->lfd);
	a->lfd = -1;
}

void rp_app_accept_poke(struct rp_shard *sh, struct rp_app_accept *a)
{
	if (a->held) {
		rp_app_accept_close(sh, a); /* a drain waiting for descriptors: try again */
		return;
	}
	if (a->down && !a->closed && !a->backoff.pending && !rp_shard_stopping(sh))
		(void)rp_app_accept_arm(sh, a);
}

void rp_app_accept_pause(struct rp_shard *sh, struct rp_app_accept *a)
{
	if (a->paused)
		return;
	a->paused = true;
	if (a->closed)
		return; /* drained: never armed again anyway */
	a->down = true;
	/* the cancel needs no pool memory; an SQ that stayed full: the
	 * accept runs on until it ends */
	if (a->op)
		(void)rp_cancel_op(sh, a->op);
}

void rp_app_accept_resume(struct rp_shard *sh, struct rp_app_accept *a)
{
	if (!a->paused)
		return;
	a->paused = false;
	if (a->op || a->closed)
		return; /* still armed (its cancel comes: re-armed then); or drained */
	a->down = true;
	if (!a->backoff.pending)
		(void)rp_app_accept_arm(sh, a);
}

int rp_app_accepted(struct rp_shard *sh, struct rp_app_accept *a, const struct rp_cqe *cq)
{
	if (!(cq->flags & RP_CQE_MORE))
		a->op = NULL;
	if (cq->res < 0) {
		if (cq->res != -ECANCELED && !a->closed)
			count(a->errors);
		/* EMFILE and friends end the multishot: back off, keep serving;
		 * paused: down until the resume; a pause's cancel that a resume
		 * overtook: armed again at once */
		if (!(cq->flags & RP_CQE_MORE) && !rp_shard_stopping(sh)) {
			if (a->paused)
				a->down = true;
			else if (cq->res == -ECANCELED ||
				 (out_of_fds(-cq->res) && a->shed && a->shed(sh, a->arg)))
				/* cancelled by a pause a resume overtook; or out
				 * of descriptors and the command gave some back */
				(void)rp_app_accept_arm(sh, a);
			else
				(void)accept_later(sh, a);
		}
		return -1;
	}
	/* after rp_app_accept_close a fd is still served: the kernel completed
	 * that connection before the listener was shut; a stop ends it */
	if (rp_shard_stopping(sh)) {
		close(cq->res);
		return -1;
	}
	return cq->res;
}

int rp_app_server_opt(const char *cmd, int c, const char *arg, unsigned max_shards,
		      struct rp_runtime_config *rc, struct rp_app_opts *o)
{
	unsigned us;

	switch (c) {
	case 'l':
		o->listen = arg;
		return rp_arg_hostport(cmd, "--listen", arg, true, &o->ss, &o->sslen) ? -1 : 1;
	case 's':
		return rp_arg_uint(cmd, "--shards", arg, 1, max_shards, &rc->shards) ? -1 : 1;
	case 'c':
		if (rp_arg_cpus(cmd, "--cpus", arg))
			return -1;
		rc->cpus = arg;
		return 1;
	case 'b':
		if (rp_arg_uint(cmd, "--busy-poll", arg, 0, 1000000, &us))
			return -1;
		rc->spin_ns = (uint64_t)us * 1000u;
		return 1;
	case 'i':
		return rp_arg_uint(cmd, "--stats-interval", arg, 0, 86400, &o->interval) ? -1 : 1;
	case 'D':
		o->drain_set = true;
		return rp_arg_uint(cmd, "--drain-timeout", arg, 0, RP_APP_DRAIN_MAX_S, &o->drain_s) ?
			       -1 :
			       1;
	case 'P':
		return rp_arg_uint(cmd, "--pool-mb", arg, o->pool_mb_min ? o->pool_mb_min : 1,
				   RP_APP_POOL_MB_MAX, &o->pool_mb) ?
			       -1 :
			       1;
	case 'n':
		rc->no_pin = true;
		return 1;
	default:
		return 0;
	}
}

void rp_app_on_each_shard(struct rp_runtime *rt, void (*fn)(struct rp_shard *sh, void *arg))
{
	unsigned n = rp_runtime_shards(rt);

	for (unsigned i = 0; i < n; i++)
		(void)rp_runtime_submit(rt, i, fn, NULL);
}
