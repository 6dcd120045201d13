/* SPDX-License-Identifier: MIT */
/*
 * The runtime: configuration, kernel probing, shard threads (set-up on
 * their own thread: pin, bind, pool, ring, buffers), start-up hand-shake,
 * stop and teardown, and the two message paths (rp_shard_post between
 * shards over SPSC rings, rp_runtime_submit from other threads over MPSC).
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine_impl.h"
#include "op.h"

static __thread struct rp_shard *tls_shard;
static __thread char tls_error[RP_ENGINE_ERR_MAX];

void eng_set_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tls_error, sizeof(tls_error), fmt, ap);
	va_end(ap);
}

const char *rp_engine_error(void)
{
	return tls_error;
}

/* What to check when io_uring_setup says ENOMEM: the rings' memory is
 * charged to RLIMIT_MEMLOCK before Linux 5.12 (to the memory cgroup
 * since), and their size follows the entries asked for. */
static const char *enomem_hint(void)
{
	static __thread char hint[224];
	struct rlimit rl;
	char cur[32] = "unknown";

	if (!getrlimit(RLIMIT_MEMLOCK, &rl)) {
		if (rl.rlim_cur == RLIM_INFINITY)
			snprintf(cur, sizeof(cur), "unlimited");
		else
			snprintf(cur, sizeof(cur), "%llu KB", (unsigned long long)rl.rlim_cur >> 10);
	}
	snprintf(hint, sizeof(hint),
		 ": the kernel could not allocate the rings: check the memory cgroup's "
		 "limit (before Linux 5.12: RLIMIT_MEMLOCK, ulimit -l, here %s), or use "
		 "fewer shards or ring entries",
		 cur);
	return hint;
}

/* Why io_uring_setup failed, naming the knob that fixes it. */
static void explain_setup_error(int err)
{
	char buf[16] = "";
	FILE *f;

	if (err == -ENOMEM) {
		eng_set_error("io_uring_setup: %s%s", strerror(-err), enomem_hint());
		return;
	}
	if (err == -ENOSYS) {
		eng_set_error("io_uring_setup: %s: this kernel has no io_uring, or a seccomp "
				    "profile answers ENOSYS for it (containers: allow io_uring_setup, "
				    "io_uring_enter and io_uring_register)",
				    strerror(-err));
		return;
	}
	if (err != -EPERM && err != -EACCES) {
		eng_set_error("io_uring_setup: %s", strerror(-err));
		return;
	}
	f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = 0;
		fclose(f);
	}
	if (buf[0] == '1' || buf[0] == '2')
		eng_set_error("io_uring_setup: %s: kernel.io_uring_disabled is %c (%s); enable "
				    "it with: sysctl -w kernel.io_uring_disabled=0%s",
				    strerror(-err), buf[0],
				    buf[0] == '2' ? "io_uring is off for everyone" :
						    "only root and kernel.io_uring_group may use it",
				    buf[0] == '1' ? " (or add this user to kernel.io_uring_group)" : "");
	else
		eng_set_error("io_uring_setup: %s: a seccomp profile or LSM forbids io_uring "
				    "(containers: allow io_uring_setup, io_uring_enter and "
				    "io_uring_register, e.g. docker --security-opt seccomp=PROFILE)",
				    strerror(-err));
}

/* ---- probing ---- */

struct ring_try {
	unsigned flags;
	const char *name;
};

static const struct ring_try tries_plain[] = {
	{ IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "single_issuer|defer_taskrun" },
	{ IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, "coop_taskrun" },
	{ 0, "plain" },
};

static const struct ring_try tries_sqpoll[] = {
	{ IORING_SETUP_SQPOLL | IORING_SETUP_SINGLE_ISSUER, "sqpoll|single_issuer" },
	{ IORING_SETUP_SQPOLL, "sqpoll" },
};

/* Create @ring with the best setup flags the kernel takes; returns the
 * index into the tries table used, or a negative errno. */
static int ring_init(struct io_uring *ring, const struct rp_runtime_config *cfg, unsigned *flags,
		     const char **name, unsigned *features)
{
	const struct ring_try *tries = cfg->sqpoll ? tries_sqpoll : tries_plain;
	size_t n = cfg->sqpoll ? sizeof(tries_sqpoll) / sizeof(tries_sqpoll[0]) :
				 sizeof(tries_plain) / sizeof(tries_plain[0]);
	int ret = -EINVAL;

	for (size_t i = 0; i < n; i++) {
		struct io_uring_params p;

		memset(&p, 0, sizeof(p));
		p.flags = tries[i].flags | IORING_SETUP_CQSIZE;
		p.cq_entries = cfg->ring_entries * 4;
		if (cfg->sqpoll)
			p.sq_thread_idle = 50;
		ret = io_uring_queue_init_params(cfg->ring_entries, ring, &p);
		if (ret == 0) {
			*flags = tries[i].flags;
			*name = tries[i].name;
			*features = p.features;
			return 0;
		}
		if (ret != -EINVAL)
			break;
	}
	return ret;
}

/*
 * Multishot recv with a provided-buffer ring (5.19 / 6.0): the engine's
 * receive path. Registers a one-buffer ring, arms a multishot recv on one
 * end of a socketpair, writes a byte into the other and expects the byte
 * back with IORING_CQE_F_MORE. Returns 0, -EOPNOTSUPP with the error set,
 * or another negative errno when the probe itself could not run.
 */
static int probe_recv_multishot(struct io_uring *ring)
{
	struct io_uring_buf_reg reg;
	struct io_uring_buf_ring *br;
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	static char buf[64];
	int sv[2], ret;

	br = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (br == MAP_FAILED)
		return -errno;
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (unsigned long)br;
	reg.ring_entries = 1;
	reg.bgid = 0;
	ret = io_uring_register_buf_ring(ring, &reg, 0);
	if (ret) {
		munmap(br, 4096);
		eng_set_error("io_uring: this kernel has no provided-buffer rings (%s); the "
				    "engine needs Linux 6.0 or later",
				    strerror(-ret));
		return -EOPNOTSUPP;
	}
	io_uring_buf_ring_init(br);
	io_uring_buf_ring_add(br, buf, sizeof(buf), 0, io_uring_buf_ring_mask(1), 0);
	io_uring_buf_ring_advance(br, 1);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		ret = -errno;
		goto out_ring;
	}
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = 0;
	ret = -EIO;
	if (write(sv[1], "x", 1) != 1 || io_uring_submit_and_wait(ring, 1) < 0 ||
	    io_uring_peek_cqe(ring, &cqe))
		goto out_fds;
	if (cqe->res == 1 && (cqe->flags & IORING_CQE_F_MORE)) {
		ret = 0;
	} else {
		eng_set_error("io_uring: this kernel has no multishot recv (res %d); the "
				    "engine needs Linux 6.0 or later",
				    cqe->res);
		ret = -EOPNOTSUPP;
	}
	io_uring_cqe_seen(ring, cqe);
out_fds:
	/* the ring's exit ends the armed recv */
	close(sv[0]);
	close(sv[1]);
out_ring:
	io_uring_unregister_buf_ring(ring, 0);
	munmap(br, 4096);
	return ret;
}

/*
 * Submit what is prepared on the probing @ring and return the result of the
 * request tagged @ud (its user_data), consuming every CQE before it: a
 * SEND_ZC that fails still posts a notification after its result (with
 * IORING_CQE_F_MORE), and read as the next probe's answer it said "yes"
 * (its res is a usage report, not an errno). -ETIME when none came within
 * 1 s.
 */
static int probe_result(struct io_uring *ring, uint64_t ud)
{
	struct __kernel_timespec ts = { .tv_sec = 1 };
	struct io_uring_cqe *cqe;

	if (io_uring_submit(ring) < 0)
		return -ETIME;
	for (int i = 0; i < 16; i++) {
		int res;

		if (io_uring_wait_cqe_timeout(ring, &cqe, &ts))
			return -ETIME;
		res = cqe->res;
		if (cqe->user_data == ud && !(cqe->flags & IORING_CQE_F_NOTIF)) {
			io_uring_cqe_seen(ring, cqe);
			return res;
		}
		io_uring_cqe_seen(ring, cqe);
	}
	return -ETIME;
}

/*
 * Whether SEND_ZC sends from a registered buffer (IORING_RECVSEND_FIXED_BUF)
 * on @ring: a one-byte send from a buffer registered here, on an
 * unconnected UDP socket, imports the buffer and then fails in the
 * socket (-EDESTADDRREQ); a kernel that refuses the flag or the buffer
 * answers -EINVAL or -EFAULT first. The registration goes with the ring.
 */
static bool probe_zc_fixed(struct io_uring *ring, bool bad_index)
{
	static char byte[64];
	struct iovec iov = { .iov_base = byte, .iov_len = sizeof(byte) };
	struct io_uring_sqe *sqe;
	bool ok = false;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return false;
	if (io_uring_register_buffers(ring, &iov, 1) == 0 && (sqe = io_uring_get_sqe(ring))) {
		int res;

		/* @bad_index (a test hook): an index never registered, which
		 * the kernel refuses as it would the flag (-EFAULT) */
		io_uring_prep_send_zc_fixed(sqe, fd, byte, 1, 0, 0, bad_index ? 1 : 0);
		io_uring_sqe_set_data64(sqe, 2);
		res = probe_result(ring, 2);
		ok = res != -EINVAL && res != -EFAULT && res != -ETIME;
	}
	close(fd);
	return ok;
}

/* Which ops and op flags the kernel has: MSG_RING, SEND_ZC, its usage
 * report and its registered-buffer form, SENDMSG_ZC; refuses (-EOPNOTSUPP) a kernel without what the engine needs. */
static int probe(struct rp_runtime *rt)
{
	struct io_uring ring;
	struct io_uring_probe *pr;
	struct io_uring_sqe *sqe;
	const char *name;
	unsigned flags, features;
	int ret;

	ret = ring_init(&ring, &rt->cfg, &flags, &name, &features);
	if (ret) {
		explain_setup_error(ret);
		return ret;
	}
	rt->ring_flags = (int)flags;
	snprintf(rt->mode, sizeof(rt->mode), "%s", name);
	ret = probe_recv_multishot(&ring);
	if (ret) {
		if (ret != -EOPNOTSUPP)
			eng_set_error("io_uring: probing multishot recv failed: %s",
					    strerror(-ret));
		io_uring_queue_exit(&ring);
		return ret;
	}
	pr = io_uring_get_probe_ring(&ring);
	if (pr) {
		rt->msg_ring = io_uring_opcode_supported(pr, IORING_OP_MSG_RING);
		rt->send_zc = io_uring_opcode_supported(pr, IORING_OP_SEND_ZC);
		rt->sendmsg_zc = io_uring_opcode_supported(pr, IORING_OP_SENDMSG_ZC);
		io_uring_free_probe(pr);
	}
	if (RP_TEST_HOOK(zc_unsupported) & 1)
		rt->send_zc = false;
	if (RP_TEST_HOOK(zc_unsupported) & 2)
		rt->sendmsg_zc = false;
	if (rt->send_zc) {
		/* An unknown zc flag fails the prep with -EINVAL; a known one gets
		 * as far as looking up fd -1 (-EBADF). */
		sqe = io_uring_get_sqe(&ring);
		io_uring_prep_send_zc(sqe, -1, NULL, 0, 0, IORING_SEND_ZC_REPORT_USAGE);
		io_uring_sqe_set_data64(sqe, 1);
		ret = probe_result(&ring, 1);
		rt->zc_report = ret != -EINVAL && ret != -ETIME;
		ret = 0;
		rt->zc_fixed = probe_zc_fixed(&ring, RP_TEST_HOOK(zc_fixed_refused));
	}
	io_uring_queue_exit(&ring);
	snprintf(rt->features, sizeof(rt->features),
		 "ring=%s nodrop=%s msg_ring=%s send_zc=%s zc_report_usage=%s sendmsg_zc=%s "
		 "send_zc_fixed=%s",
		 rt->mode, (features & IORING_FEAT_NODROP) ? "yes" : "no",
		 rt->msg_ring ? "yes" : "no", rt->send_zc ? "yes" : "no",
		 rt->zc_report ? "yes" : "no", rt->sendmsg_zc ? "yes" : "no",
		 rt->zc_fixed ? "yes" : "no");
	return 0;
}

/* ---- configuration ---- */

static int plan_cpus(struct rp_runtime *rt, int **cpus, int **nodes, unsigned *count)
{
	struct rp_plan_opts po = { .cpus = rt->cfg.cpus };
	struct rp_plan *plan;
	unsigned n;
	int ret;

	ret = rp_topo_load(&rt->topo, NULL);
	if (ret)
		return ret;
	ret = rp_plan_build(rt->topo, &po, &plan);
	if (ret)
		return ret;
	n = rp_plan_count(plan);
	*cpus = calloc(n, sizeof(int));
	*nodes = calloc(n, sizeof(int));
	if (!*cpus || !*nodes) {
		rp_plan_free(plan);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n; i++) {
		(*cpus)[i] = rp_plan_cpu(plan, i);
		(*nodes)[i] = rp_plan_node(plan, i);
	}
	*count = n;
	rp_plan_free(plan);
	return 0;
}

/* The kernel's limits (IORING_MAX_ENTRIES, IORING_MAX_CQ_ENTRIES): the CQ
 * gets 4x the SQ, so the SQ may have at most 65536 / 4 entries. */
#define MAX_CQ_ENTRIES 65536u
#define MAX_SQ_ENTRIES (MAX_CQ_ENTRIES / 4)

static int check_config(const struct rp_runtime_config *c)
{
	const char *why = NULL;

	if (c->ring_entries > MAX_SQ_ENTRIES)
		why = "ring_entries above 16384 (its CQ of 4x would pass the kernel's 65536)";
	else if (c->bufs & (c->bufs - 1))
		why = "bufs is not a power of two";
	else if (c->bufs > 32768)
		why = "bufs above 32768 (the kernel's provided-buffer ring limit)";
	else if (c->buf_size > RP_POOL_MAX_CLASS)
		why = "buf_size above the pool's largest class (1 MB)";
	else if (c->mailbox && ((c->mailbox & (c->mailbox - 1)) || c->mailbox < 2))
		why = "mailbox is not a power of two >= 2";
	else if (c->shards > RP_POOL_MAX_POOLS_)
		why = "more shards than the pool registry holds (one pool per shard)";
	else if (c->pool_flags & ~(unsigned)(RP_POOL_HUGE | RP_POOL_HUGE_ONLY | RP_POOL_MLOCK))
		why = "pool_flags holds a bit that is no RP_POOL_* flag";
	if (!why)
		return 0;
	eng_set_error("bad runtime config: %s", why);
	return -EINVAL;
}

/* Default mailbox capacity: 4096 up to 4 shards, then shrinking so each
 * shard's inbound rings (one per sender) stay at 128 KB. */
static unsigned default_mailbox(unsigned n)
{
	unsigned cap = 4096;

	while (cap > 64 && (size_t)n * cap > 16384)
		cap /= 2;
	return cap;
}

int rp_runtime_create(const struct rp_runtime_config *cfg, struct rp_runtime **out)
{
	struct rp_runtime *rt;
	int *cpus = NULL, *nodes = NULL;
	unsigned ncpu = 0;
	int ret;

	tls_error[0] = 0;
	if (!cfg || !out) {
		eng_set_error("rp_runtime_create: no config or no result pointer");
		return -EINVAL;
	}
	rt = aligned_alloc(64, (sizeof(*rt) + 63) & ~(size_t)63);
	if (!rt)
		return -ENOMEM;
	memset(rt, 0, sizeof(*rt));
	rt->cfg = *cfg;
	if (!rt->cfg.ring_entries)
		rt->cfg.ring_entries = 256;
	if (!rt->cfg.pool_bytes)
		rt->cfg.pool_bytes = 64u << 20;
	if (!rt->cfg.pool_flags)
		rt->cfg.pool_flags = RP_POOL_HUGE;
	if (!rt->cfg.bufs)
		rt->cfg.bufs = 512;
	if (!rt->cfg.buf_size)
		rt->cfg.buf_size = 16384;
	if (!rt->cfg.stop_timeout_ms)
		rt->cfg.stop_timeout_ms = 5000;
	pthread_mutex_init(&rt->lock, NULL);
	pthread_cond_init(&rt->cond, NULL);
	ret = check_config(&rt->cfg);
	if (ret)
		goto fail;
#ifdef RP_FAULTS
	ret = eng_faults_parse(getenv("RP_FAULTS"), &rt->faults);
	if (ret)
		goto fail;
#endif

	ret = plan_cpus(rt, &cpus, &nodes, &ncpu);
	if (ret) {
		eng_set_error("placement plan: %s (cpus \"%s\")", strerror(-ret),
				    rt->cfg.cpus ? rt->cfg.cpus : "default");
		goto fail;
	}
	rt->n = rt->cfg.shards ? rt->cfg.shards : ncpu;
	if (rt->n > RP_POOL_MAX_POOLS_) {
		eng_set_error("%u shards: the pool registry holds at most %u pools, one per shard",
				    rt->n, RP_POOL_MAX_POOLS_);
		ret = -EINVAL;
		goto fail;
	}
	if (!rt->cfg.mailbox)
		rt->cfg.mailbox = default_mailbox(rt->n);
	ret = probe(rt);
	if (ret)
		goto fail;

	ret = -ENOMEM;
	rt->shards = calloc(rt->n, sizeof(*rt->shards));
	rt->mbox = calloc((size_t)rt->n * rt->n, sizeof(*rt->mbox));
	if (!rt->shards || !rt->mbox)
		goto fail;
	for (unsigned i = 0; i < rt->n; i++) {
		struct rp_shard *sh = aligned_alloc(64, (sizeof(*sh) + 63) & ~(size_t)63);

		if (!sh)
			goto fail;
		memset(sh, 0, sizeof(*sh));
		rt->shards[i] = sh;
		sh->rt = rt;
		sh->id = i;
		sh->efd = -1;
		sh->cpu = rt->cfg.no_pin ? -1 : cpus[i % ncpu];
		sh->node = nodes[i % ncpu];
		sh->efd_op.kind = OP_EVENTFD;
		sh->efd_op.tfd[0] = sh->efd_op.tfd[1] = -1; /* internal: not in sh->fdt */
#ifdef RP_FAULTS
		eng_faults_init(&sh->faults, &rt->faults, i);
#endif
		/* other threads' messages: an MPSC queue of the same capacity */
		sh->inbox = rp_mpsc_create(rt->cfg.mailbox);
		if (!sh->inbox)
			goto fail;
		/* here, not on the shard: rp_runtime_stop may write it any time */
		sh->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (sh->efd < 0) {
			ret = -errno;
			goto fail;
		}
	}
	free(cpus);
	free(nodes);
	*out = rt;
	return 0;
fail:
	if (!tls_error[0])
		eng_set_error("rp_runtime_create: %s", strerror(-ret));
	free(cpus);
	free(nodes);
	rp_runtime_destroy(rt);
	return ret;
}

/* ---- shard threads ---- */

/* The first shard error of a start, for the control thread's rp_engine_error. */
static void shard_error(struct rp_shard *sh, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void shard_error(struct rp_shard *sh, const char *fmt, ...)
{
	struct rp_runtime *rt = sh->rt;
	char msg[RP_ENGINE_ERR_MAX - 64]; /* fits whole in rt->err behind its prefix */
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&rt->lock);
	if (!rt->err[0])
		snprintf(rt->err, sizeof(rt->err), "shard %u (cpu %d): %s", sh->id, sh->cpu, msg);
	pthread_mutex_unlock(&rt->lock);
}

static int shard_setup(struct rp_shard *sh)
{
	struct rp_runtime *rt = sh->rt;
	const char *name;
	unsigned flags, features;
	int ret;

	if (sh->cpu >= 0) {
		ret = rp_pin_thread(rt->topo, sh->cpu);
		if (ret) {
			shard_error(sh, "pinning to cpu %d: %s", sh->cpu, strerror(-ret));
			return ret;
		}
		if (sh->node >= 0)
			(void)rp_bind_memory(rt->topo, sh->node); /* best effort: pool binds anyway */
	}
	sh->pool = rp_pool_create(sh->cpu >= 0 ? sh->node : -1, rt->cfg.pool_bytes,
				  rt->cfg.pool_flags);
	if (!sh->pool) {
		ret = -errno;
		shard_error(sh, "pool of %zu bytes on node %d: %s", rt->cfg.pool_bytes, sh->node,
			    strerror(errno));
		return ret;
	}
	/* Inbound mailboxes, one per sender, allocated and touched here so
	 * they live on this shard's node (memory is bound above). Published
	 * to the senders by the start-up hand-shake's mutex. */
	for (unsigned src = 0; src < rt->n; src++) {
		struct rp_spsc *box = rp_spsc_create(rt->cfg.mailbox);

		if (!box) {
			shard_error(sh, "mailbox of %u slots: %s", rt->cfg.mailbox, strerror(ENOMEM));
			return -ENOMEM;
		}
		rt->mbox[(size_t)sh->id * rt->n + src] = box;
	}
	ret = ring_init(&sh->ring, &rt->cfg, &flags, &name, &features);
	if (ret) {
		shard_error(sh, "io_uring_setup: %s%s", strerror(-ret),
			    ret == -ENOMEM ? enomem_hint() : "");
		return ret;
	}
	sh->ring_ok = true;
	sh->defer = flags & IORING_SETUP_DEFER_TASKRUN;
	sh->sq_ts = calloc(sh->ring.sq.ring_entries, sizeof(*sh->sq_ts));
	if (!sh->sq_ts) {
		shard_error(sh, "%u timespecs for the SQ: %s", sh->ring.sq.ring_entries,
			    strerror(ENOMEM));
		return -ENOMEM;
	}
	(void)io_uring_register_ring_fd(&sh->ring); /* saves an fd lookup per enter; optional */
	ret = eng_bufring_setup(sh);
	if (ret) {
		shard_error(sh, "%u provided buffers of %u bytes: %s", rt->cfg.bufs, rt->cfg.buf_size,
			    strerror(-ret));
		return ret;
	}
	if (rt->cfg.register_buffers) {
		struct iovec iov[8];
		int n = rp_pool_iovecs(sh->pool, iov, 8);

		sh->registered = n > 0 && n <= 8 &&
				 io_uring_register_buffers(&sh->ring, iov, (unsigned)n) == 0;
	}
	return 0;
}

/* Start-up hand-shake: every shard reports set-up, waits for all, runs
 * init, reports again. The first error makes everyone bail out. */
static bool report_and_wait(struct rp_runtime *rt, int err, unsigned stage_count)
{
	bool ok;

	pthread_mutex_lock(&rt->lock);
	if (err && !rt->start_err)
		rt->start_err = err;
	rt->ready++;
	pthread_cond_broadcast(&rt->cond);
	while (!rt->start_err && rt->ready < stage_count)
		pthread_cond_wait(&rt->cond, &rt->lock);
	ok = !rt->start_err;
	pthread_mutex_unlock(&rt->lock);
	return ok;
}

static void *shard_main(void *p)
{
	struct rp_shard *sh = p;
	struct rp_runtime *rt = sh->rt;
	char name[16];
	sigset_t pipe;
	unsigned closed;
	int ret;

	/* named "rp-shard-ID" (15 characters at most, the kernel's limit,
	 * truncated past it): top, perf and /proc/PID/task/TID/comm tell the
	 * shards apart from the embedder's threads and io_uring's workers.
	 * A failure (none expected for a name this short) changes nothing */
	snprintf(name, sizeof(name), "rp-shard-%u", sh->id);
	(void)pthread_setname_np(pthread_self(), name);
	/* a write, splice or sendfile on this thread to a socket whose peer
	 * has gone gets EPIPE and no SIGPIPE, whose default kills the whole
	 * process (splice(2) takes no MSG_NOSIGNAL; an AF_UNIX peer that
	 * closed mid-relay did it to an embedding service). Blocked, the
	 * thread-directed signal stays pending on this thread and is never
	 * delivered: the errno is the whole answer */
	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, NULL);
	tls_shard = sh;
	ret = shard_setup(sh);
	if (!report_and_wait(rt, ret, rt->n)) {
		sh->init_ret = ret;
		return NULL;
	}
	ret = rt->cfg.init ? rt->cfg.init(sh, rt->cfg.arg) : 0;
	if (ret > 0)
		ret = -ret;
	if (ret)
		shard_error(sh, "init: %s", strerror(-ret));
	sh->init_ret = ret;
	if (!report_and_wait(rt, ret, 2 * rt->n) && !ret) {
		/* another shard failed: undo what init started, then leave */
		atomic_store_explicit(&rt->stop, 1, memory_order_release);
	}
	if (!ret)
		eng_shard_loop(sh);
	/* what the loop left in the SQ (prepared after its last submit, when
	 * the stop's deadline ended it; an init's ops, when it failed) is
	 * never sent: its closes are done here, the rest made NOPs */
	closed = eng_sq_abandon(sh);
	sh->loop_over = true;
	if (closed)
		fprintf(stderr,
			"ringplane: shard %u: %u closes prepared after the loop's last "
			"submit, done at its end\n",
			sh->id, closed);
	/* closes linked behind ops the kernel still holds: done here if the
	 * kernel never runs them (a cancelled head fails its links) */
	if (sh->lclose) {
		unsigned left;

		closed = eng_linked_close_settle(sh, &left);
		fprintf(stderr,
			"ringplane: shard %u: %u closes linked behind ops in flight at the "
			"loop's end done there, %u left to the kernel\n",
			sh->id, closed, left);
	}
	if (!ret)
		eng_shard_drain_final(sh);
	if (rt->cfg.fini)
		rt->cfg.fini(sh, rt->cfg.arg);
	tls_shard = NULL;
	return NULL;
}

static void drop_leftovers(struct rp_runtime *rt);

int rp_runtime_start(struct rp_runtime *rt)
{
	unsigned started = 0;
	int err = 0;

	tls_error[0] = 0;
	if (!rt) {
		eng_set_error("rp_runtime_start: no runtime (NULL)");
		return -EINVAL;
	}
	/* also the case of a call from one of @rt's own shards (it runs) */
	if (rt->started) {
		eng_set_error("rp_runtime_start: the runtime was started before%s; "
			      "a runtime starts once", tls_shard && tls_shard->rt == rt ?
			      " (called on one of its own shard threads)" : "");
		return -EINVAL;
	}
	/* a stop before the start (a signal during setup, say) is kept: the
	 * shards would see it at once and the caller get a stopped runtime
	 * for a started one */
	if (atomic_load(&rt->stop)) {
		eng_set_error("the runtime was stopped before it started");
		return -ESHUTDOWN;
	}
	rt->started = true;
	for (; started < rt->n; started++) {
		err = -pthread_create(&rt->shards[started]->thread, NULL, shard_main,
				      rt->shards[started]);
		if (err)
			break;
	}
	pthread_mutex_lock(&rt->lock);
	if (err) {
		rt->start_err = err;
		pthread_cond_broadcast(&rt->cond);
	}
	while (!rt->start_err && rt->ready < 2 * rt->n)
		pthread_cond_wait(&rt->cond, &rt->lock);
	err = rt->start_err;
	pthread_mutex_unlock(&rt->lock);
	if (err) {
		rp_runtime_stop(rt);
		for (unsigned i = 0; i < started; i++)
			pthread_join(rt->shards[i]->thread, NULL);
		rt->joined = true;
		/* a shard whose init failed (or that never got that far) ran
		 * no loop: what was submitted to it before the start is dropped */
		drop_leftovers(rt);
		if (rt->err[0])
			eng_set_error("%s", rt->err);
		else
			eng_set_error("starting shard threads: %s", strerror(-err));
	}
	return err;
}

void rp_runtime_stop(struct rp_runtime *rt)
{
	static const uint64_t one = 1;

	if (!rt)
		return;
	/* seq_cst: pairs with the loop's check before sleeping (see eng_shard_loop) */
	atomic_store_explicit(&rt->stop, 1, memory_order_seq_cst);
	for (unsigned i = 0; i < rt->n; i++) {
		if (rt->shards && rt->shards[i] && rt->shards[i]->efd >= 0) {
			ssize_t w = write(rt->shards[i]->efd, &one, sizeof(one));

			(void)w; /* EAGAIN: the counter is already non-zero, it will wake */
		}
	}
}

static void drop_msg(struct rp_runtime *rt, struct rp_shard *t, rp_msg_fn fn, void *arg)
{
	t->st.msgs_dropped++; /* its thread has been joined, or never ran */
	if (rt->cfg.on_drop)
		rt->cfg.on_drop(fn, arg, rt->cfg.arg);
}

/*
 * A sender that looked at rt->stop just before it was set can push a
 * message after its target ran its last drain: hand every such message to
 * cfg.on_drop (after the joins nobody else touches the mailboxes). So do
 * messages whose target never ran its loop: submitted before a start that
 * failed, before a stop that came first (start -ESHUTDOWN), or to a
 * runtime destroyed unstarted (rp_runtime_destroy; no thread touches the
 * mailboxes there either). @rt may be half built (a failed create).
 */
static void drop_leftovers(struct rp_runtime *rt)
{
	if (!rt->shards)
		return;
	for (unsigned dst = 0; dst < rt->n; dst++) {
		struct rp_shard *t = rt->shards[dst];
		struct rp_msg *m;

		if (!t)
			continue;
		for (unsigned src = 0; rt->mbox && src < rt->n; src++) {
			struct rp_spsc *box = rt->mbox[(size_t)dst * rt->n + src];

			while (box && (m = rp_spsc_pop(box))) {
				rp_msg_fn fn = m->fn;
				void *arg = m->arg;

				rp_pool_free(m);
				drop_msg(rt, t, fn, arg);
			}
		}
		while (t->inbox && (m = rp_mpsc_pop(t->inbox))) {
			rp_msg_fn fn = m->fn;
			void *arg = m->arg;

			free(m);
			drop_msg(rt, t, fn, arg);
		}
	}
}

int rp_runtime_wait(struct rp_runtime *rt)
{
	int err = 0;

	if (!rt) {
		eng_set_error("rp_runtime_wait: no runtime (NULL)");
		return -EINVAL;
	}
	if (!rt->started) {
		eng_set_error("rp_runtime_wait: the runtime was never started%s",
			      atomic_load(&rt->stop) ? " (stopped before its start)" : "");
		return -EINVAL;
	}
	/* one of its own shards would join itself (EDEADLK, which the join
	 * below cannot report) and mark the shards joined while it still
	 * runs: refused, nothing joined */
	if (tls_shard && tls_shard->rt == rt) {
		eng_set_error("rp_runtime_wait: called on shard %u of the same runtime, "
			      "which cannot join itself; nothing joined: stop it from "
			      "there, wait on the control thread", tls_shard->id);
		return -EDEADLK;
	}
	if (!rt->joined) {
		for (unsigned i = 0; i < rt->n; i++)
			pthread_join(rt->shards[i]->thread, NULL);
		rt->joined = true;
		drop_leftovers(rt);
#ifdef RP_FAULTS
		eng_faults_report(rt);
#endif
	}
	for (unsigned i = 0; i < rt->n && !err; i++)
		err = rt->shards[i]->init_ret;
	if (!err)
		err = rt->start_err;
	/* only after a failed start: what rp_runtime_start said (the shards
	 * are joined, rt->err is written no more) */
	if (err) {
		if (rt->err[0])
			eng_set_error("%s", rt->err);
		else
			eng_set_error("rp_runtime_wait: the start failed: %s", strerror(-err));
	}
	return err;
}

int rp_runtime_run(struct rp_runtime *rt)
{
	int ret = rp_runtime_start(rt);

	return ret ? ret : rp_runtime_wait(rt);
}

static void shard_free(struct rp_shard *sh)
{
	if (sh->ring_ok)
		io_uring_queue_exit(&sh->ring);
	if (sh->br)
		munmap(sh->br, sh->br_bytes);
	free(sh->bufs);
	free(sh->buf_outmap);
	free(sh->stash);
	free(sh->sq_ts);
	free(sh->closing);
	free(sh->fdt);
	if (sh->efd >= 0)
		close(sh->efd);
	/* empty: rp_runtime_destroy handed what was left to cfg.on_drop */
	if (sh->inbox)
		rp_mpsc_destroy(sh->inbox);
	/* Last: messages in the SPSC mailboxes and the buffers live in pools. */
	rp_pool_destroy(sh->pool);
	free(sh);
}

void rp_runtime_destroy(struct rp_runtime *rt)
{
	if (!rt)
		return;
	/* from one of its own shards: it would free the shard it runs on
	 * (use after free as the loop goes on). A caller bug: only stopped */
	if (tls_shard && tls_shard->rt == rt) {
		eng_set_error("rp_runtime_destroy: called on shard %u of the same runtime, "
			      "which would free the shard it runs on; only stopped: "
			      "wait and destroy on the control thread", tls_shard->id);
		rp_runtime_stop(rt);
		return;
	}
	/* stopped first, started or not: a submit from here on (an on_drop
	 * that resubmits, say) is -ESHUTDOWN, or drop_leftovers would drop
	 * what it accepts, for good */
	rp_runtime_stop(rt);
	if (rt->started && !rt->joined)
		rp_runtime_wait(rt);
	/* every message accepted runs or reaches cfg.on_drop once: those of
	 * a runtime that never started its shards (never started, or stopped
	 * before its start: wait refuses it) are dropped here, on this
	 * thread; after a wait or a failed start nothing is left, bar a
	 * submit that raced the stop past the wait's drop */
	drop_leftovers(rt);
	if (rt->mbox)
		for (size_t i = 0; i < (size_t)rt->n * rt->n; i++)
			rp_spsc_destroy(rt->mbox[i]);
	if (rt->shards)
		for (unsigned i = 0; i < rt->n; i++)
			if (rt->shards[i])
				shard_free(rt->shards[i]);
	free(rt->mbox);
	free(rt->shards);
	rp_topo_free(rt->topo);
	pthread_mutex_destroy(&rt->lock);
	pthread_cond_destroy(&rt->cond);
	free(rt);
}

/* ---- queries ---- */

unsigned rp_runtime_shards(const struct rp_runtime *rt)
{
	return rt ? rt->n : 0;
}

int rp_runtime_shard_cpu(const struct rp_runtime *rt, unsigned shard)
{
	if (!rt || shard >= rt->n)
		return -EINVAL;
	return rt->shards[shard]->cpu;
}

static void stats_copy(const struct rp_shard_stats *src, struct rp_shard_stats *dst)
{
	const uint64_t *s = (const uint64_t *)src;
	uint64_t *d = (uint64_t *)dst;

	/* relaxed loads of counters each written by one thread (see STAT_ADD) */
	for (size_t i = 0; i < sizeof(*src) / sizeof(uint64_t); i++)
		d[i] = __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

int rp_runtime_stats(const struct rp_runtime *rt, unsigned shard, struct rp_shard_stats *out)
{
	if (!rt || !out || shard >= rt->n)
		return -EINVAL;
	stats_copy(&rt->shards[shard]->st, out);
	return 0;
}

const char *rp_runtime_ring_mode(const struct rp_runtime *rt)
{
	return rt ? rt->mode : NULL;
}

const char *rp_engine_features(const struct rp_runtime *rt)
{
	return rt ? rt->features : NULL;
}

unsigned rp_engine_zc(const struct rp_runtime *rt)
{
	if (!rt)
		return 0;
	return (rt->send_zc ? RP_ENGINE_SEND_ZC : 0u) |
	       (rt->sendmsg_zc ? RP_ENGINE_SENDMSG_ZC : 0u);
}

struct rp_shard *rp_shard_self(void)
{
	return tls_shard;
}

unsigned rp_shard_id(const struct rp_shard *sh)
{
	return sh->id;
}

struct rp_runtime *rp_shard_runtime(const struct rp_shard *sh)
{
	return sh->rt;
}

struct rp_pool *rp_shard_pool(const struct rp_shard *sh)
{
	return sh->pool;
}

bool rp_shard_stopping(const struct rp_shard *sh)
{
	return sh->stopping;
}

void rp_shard_idle_spin_hold(struct rp_shard *sh, bool hold)
{
	sh->spin_hold = hold;
}

bool rp_shard_loop_over(const struct rp_shard *sh)
{
	return sh->loop_over;
}

void rp_shard_stats(const struct rp_shard *sh, struct rp_shard_stats *out)
{
	stats_copy(&sh->st, out);
}

unsigned rp_shard_inflight(const struct rp_shard *sh)
{
	return sh->live;
}

/* ---- messages ---- */

/* After publishing a message: wake @t if it is (about to be) asleep. */
static void maybe_wake(struct rp_shard *sh, struct rp_shard *t)
{
	/* seq_cst fence: orders our publish before the load of "sleeping"
	 * (the other half of the Dekker pair in eng_shard_loop) */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&t->sleeping, memory_order_relaxed) &&
	    atomic_exchange_explicit(&t->sleeping, 0, memory_order_relaxed))
		eng_wake(sh, t);
}

int rp_shard_post(struct rp_shard *sh, unsigned target, rp_msg_fn fn, void *arg)
{
	struct rp_runtime *rt = sh->rt;
	struct rp_msg *m;

	if (target >= rt->n || !fn)
		return -EINVAL;
	if (atomic_load_explicit(&rt->stop, memory_order_relaxed))
		return -ESHUTDOWN;
	m = rp_pool_alloc(sh->pool, sizeof(*m));
	if (!m) {
		STAT_INC(sh, nomem);
		return -ENOMEM;
	}
	m->fn = fn;
	m->arg = arg;
	m->heap = false;
	if (!rp_spsc_push(rt->mbox[target * rt->n + sh->id], m)) {
		rp_pool_free(m);
		STAT_INC(sh, mailbox_full);
		return -EAGAIN;
	}
	STAT_INC(sh, msgs_out);
	if (target != sh->id)
		maybe_wake(sh, rt->shards[target]);
	return 0;
}

int rp_runtime_submit(struct rp_runtime *rt, unsigned shard, rp_msg_fn fn, void *arg)
{
	struct rp_msg *m;

	if (!rt || shard >= rt->n || !fn)
		return -EINVAL;
	if (atomic_load_explicit(&rt->stop, memory_order_relaxed))
		return -ESHUTDOWN;
	m = malloc(sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->fn = fn;
	m->arg = arg;
	m->heap = true;
	if (!rp_mpsc_push(rt->shards[shard]->inbox, m)) {
		free(m);
		return -EAGAIN;
	}
	/* not a shard: the wake always goes through the eventfd */
	maybe_wake(NULL, rt->shards[shard]);
	return 0;
}
