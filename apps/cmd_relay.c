/* SPDX-License-Identifier: MIT */
/*
 * `ringplane relay --listen HOST:PORT --upstream HOST:PORT [...]`: a TCP
 * relay on the engine. Every shard has its own listener on the same address
 * (SO_REUSEPORT) and one multishot accept; each client gets a new upstream
 * connection (io_uring connect bounded by --connect-timeout), then
 * rp_relay (net/relay.c) moves the bytes both ways in the chosen mode,
 * passing half-closes and resets on. An unreachable or refusing upstream,
 * or a connect timeout, closes the client and is counted. A client whose
 * upstream socket finds no descriptor, even after the shard's pooled
 * pipes were closed for it, waits on its shard's wait list, the accept
 * paused, until one frees or its --connect-timeout (docs/net.md).
 *
 * --accept-proxy: every client must start with a PROXY v1 or v2 header,
 * read (in pieces if need be) within 5 s and parsed strictly
 * (net/proxy.c); a refused or late header closes the client, counted by
 * reason (one the stop closes is not), and none of its bytes reach an upstream (none is connected before
 * the header is whole). The header's addresses replace the connection's
 * own, unless it says LOCAL/UNKNOWN. Bytes that came after the header go
 * upstream first.
 *
 * --proxy-protocol v1|v2: a PROXY header goes upstream before any client
 * byte: source = the client's address and port, destination = the address
 * and port it connected to (or those of an accepted header).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ringplane/engine.h>
#include <ringplane/outq.h>
#include <ringplane/pool.h>
#include <ringplane/proxy.h>
#include <ringplane/relay.h>

#include "args.h"
#include "commands.h"
#include "list.h"
#include "server.h"

#define MS			 1000000ull
#define HEADER_TIMEOUT_NS	 (5000 * MS) /* a client's PROXY header must be whole by then */
#define HDR_BUF			 2048	     /* header read buffer (header + early payload) */
#define ACCEPT_BACKOFF_NS	 (100 * MS)
#define WAIT_RETRY_NS		 (5 * MS)    /* the wait list's retry of socket(2) */
#define POOL_MB_DEFAULT		 256u /* --pool-mb: the per-shard pool */
#define POOL_MB_MIN		 22u /* measured: the least that relays (docs/net.md) */
/* with --accept-proxy: a connection not started yet holds a 2 KB header
 * buffer and a parser (two more pool classes, a span each); measured: 22
 * held 95-129 of 300 idle clients, 24 held 2000 of 2000 (with
 * --proxy-protocol v1) */
#define POOL_MB_MIN_PROXY	 24u
#define STOP_MS_DEFAULT		 3000u	     /* --stop-timeout: the engine's stop deadline */

/* Counters of one shard: written by it (relaxed stores), read by anyone. */
struct relay_app_stats {
	uint64_t accepted, refused_max, connect_failed, connect_timeouts, proxy_accepted,
		proxy_timeouts, proxy_refused[RP_PROXY_R_COUNT], accept_errors, rearm_failed,
		peer_gone;
	uint64_t upstream_waits; /* clients put on the wait list (out of descriptors) */
	uint64_t drain_retries, drain_reset; /* the drain's listener (server.h) */
	uint64_t conn_nomem; /* clients closed at accept, or at a PROXY header's
				next read: the pool had no room */
	/* connect_failed by errno: the upstream socket(2) (EMFILE, ENFILE:
	 * out of descriptors), the connect op's start (ENOMEM, EBUSY) or its
	 * result (ECONNREFUSED...); [0] for one above the table */
	uint64_t connect_errno[RP_RELAY_ERRNO_MAX];
	/* relays refused at their start, the client closed: rp_relay_start's
	 * -errno (ENOMEM: no pool memory for the prime, also the prime's own
	 * buffer; EINVAL, ENOTSOCK) by errno ([0] above the table) */
	uint64_t start_failed, start_errno[RP_RELAY_ERRNO_MAX];
};

#define ST_ADD(rs, f, n) \
	__atomic_store_n(&(rs)->st.f, (rs)->st.f + (n), __ATOMIC_RELAXED)

struct rconn;

struct rshard {
	unsigned id;
	struct rp_app_accept acc; /* the listener and its accept */
	unsigned conns; /* set up, not yet freed: --max-conns, the drain, "live" */
	struct relay_app_stats st;
	/* upstream connects in flight, oldest first: every connect has the
	 * same bound, so deadlines come in this order, and one reserved timer
	 * for the oldest bounds them all (a linked timeout per connect was
	 * 1.0% of the relay's churn samples: its prep, arm and disarm) */
	struct rp_app_list pend;
	struct rp_timer *ctimer;
	/* clients whose upstream socket(2) found no descriptor (EMFILE,
	 * ENFILE) or no kernel memory (ENOBUFS, ENOMEM), oldest first; while
	 * any waits the accept is paused and wtimer retries the socket every
	 * WAIT_RETRY_NS, in this order */
	struct rp_app_list wait;
	unsigned waiting;
	struct rp_timer *wtimer;
	/* a descriptor held in reserve (a dup of the listener): the
	 * multishot accept takes what the kernel queued in one burst, before
	 * the first socket(2) fails, and can take every free descriptor for
	 * clients that then all wait with nothing left to free one; closed
	 * for the wait list's head when its socket fails, so one waiter
	 * always goes on, and taken again before the accept resumes (the
	 * pooled pipes shed first when that dup finds no descriptor) */
	int spare;
	bool spare_lent; /* closed for a waiter: taken again before the resume */
	/* clients refused at accept for pool room, looked at again in the
	 * loop's next rounds before they are closed (server.h, on_accept) */
	struct rp_app_again again;
};

static struct {
	struct sockaddr_storage up;
	socklen_t uplen;
	struct rp_relay_config rcfg;
	unsigned proxy_out; /* 0 off, 1 v1, 2 v2 */
	bool accept_proxy;
	uint64_t connect_ns;
	unsigned max_conns; /* --max-conns, all shards together; 0: no limit */
	unsigned shards;
	int *lfds;
	struct rshard **rs;
} g;

/* Connections set up and not yet freed, all shards together: what
 * --max-conns bounds. Written at accept and free only (with a limit set),
 * on a line of its own so the shards' writes do not share g's. */
static _Alignas(64) atomic_uint conns_total;

struct rconn {
	struct rshard *rs;
	int cfd, ufd;
	struct sockaddr_storage src, dst; /* for the PROXY header we send */
	socklen_t srclen, dstlen;
	bool local;			  /* an accepted header's peers are not TCP (AF_UNIX) */
	bool noaddr;			  /* the client's addresses were gone at accept */
	struct rp_proxy_parser *pp;	  /* --accept-proxy, until the header is whole */
	char *hbuf;			  /* header bytes and what followed them */
	size_t hlen, payload_off;
	uint64_t hdr_deadline;
	struct rp_app_link link; /* on rs's pend list while connecting, or its wait list */
	struct rp_op *cop;	     /* the connect, while on the list */
	uint64_t conn_deadline; /* from connect_upstream: the wait and the connect */
	bool timed_out; /* the connect was cancelled at its deadline */
};

/* A failed upstream connect (@err > 0), counted in total and by errno. */
static void connect_failed(struct rshard *rs, int err)
{
	ST_ADD(rs, connect_failed, 1);
	ST_ADD(rs, connect_errno[err > 0 && err < RP_RELAY_ERRNO_MAX ? err : 0], 1);
}

/* A relay refused at its start (@err > 0), counted in total and by errno. */
static void start_failed(struct rshard *rs, int err)
{
	ST_ADD(rs, start_failed, 1);
	ST_ADD(rs, start_errno[err > 0 && err < RP_RELAY_ERRNO_MAX ? err : 0], 1);
}

static void wait_arm(struct rp_shard *sh, struct rshard *rs);

/* A connection's place under --max-conns given back (set up, then freed;
 * or refused after the count took it). */
static void conns_total_put(void)
{
	if (g.max_conns)
		atomic_fetch_sub_explicit(&conns_total, 1, memory_order_relaxed);
}

/* A new upstream socket, or -1 with errno. Out of descriptors (EMFILE,
 * ENFILE), the shard's pooled pipes (two descriptors each, kept only for
 * reuse) are closed first and the socket tried again at once, before the
 * caller falls back on the spare or the wait list: the pool's own trim
 * would give them back only 1-2 s later. */
static int upstream_socket(struct rp_shard *sh)
{
	int fd = socket(g.up.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), err = errno;

	if (fd < 0 && (err == EMFILE || err == ENFILE) && rp_relay_shard_shed_pipes(sh))
		return socket(g.up.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	errno = err;
	return fd;
}

/* The accept out of descriptors (rp_app_accept's shed): the pooled pipes,
 * as for an upstream socket; more than 0 and the accept is tried again at
 * once instead of after its back-off. */
static unsigned relay_shed(struct rp_shard *sh, void *arg)
{
	(void)arg;
	return rp_relay_shard_shed_pipes(sh);
}

static void conn_free(struct rp_shard *sh, struct rconn *c, bool close_fds)
{
	struct rshard *rs = c->rs;
	struct rp_app_accept *acc = &rs->acc;

	if (close_fds) {
		if (c->cfd >= 0 && !rp_close(sh, c->cfd, NULL, NULL))
			close(c->cfd);
		if (c->ufd >= 0 && !rp_close(sh, c->ufd, NULL, NULL))
			close(c->ufd);
	}
	rp_pool_free(c->pp);
	rp_pool_free(c->hbuf);
	rs->conns--;
	conns_total_put();
	rp_pool_free(c);
	/* clients wait for a descriptor: not retried here (rp_close is
	 * asynchronous, the descriptor is not free yet), by the wait
	 * timer's next pass; one that could not be armed (SQ full) is
	 * armed here */
	if (!rp_app_list_empty(&rs->wait) || rs->spare_lent)
		wait_arm(sh, rs);
	/* a close gives descriptors and memory back: an accept that is down
	 * and has no back-off timer coming is armed here, once this
	 * connection's memory is back in the pool the accept takes its op
	 * from (relay has no tick: after the last close nothing else would) */
	rp_app_accept_poke(sh, acc);
}

/* ---- relaying ---- */

static void on_relay_done(struct rp_shard *sh, void *arg, const struct rp_relay_result *res)
{
	struct rconn *c = arg;

	(void)res;
	c->cfd = c->ufd = -1; /* the relay closed them */
	conn_free(sh, c, false);
}

static void start_relay(struct rp_shard *sh, struct rconn *c)
{
	struct rp_relay_config cfg = g.rcfg;
	char hdr[RP_PROXY_V2_MAX];
	char *prime = NULL, *hbuf;
	size_t plen = 0, early = c->hbuf ? c->hlen - c->payload_off : 0;
	ssize_t n = 0;
	int ret;

	if (g.proxy_out) {
		const struct sockaddr *src = c->local ? NULL : (struct sockaddr *)&c->src;

		n = g.proxy_out == 1 ?
			    rp_proxy_v1_write(hdr, sizeof(hdr), src, (struct sockaddr *)&c->dst) :
			    rp_proxy_v2_write(hdr, sizeof(hdr), src, (struct sockaddr *)&c->dst, 0);
		if (n < 0)
			n = g.proxy_out == 1 ? rp_proxy_v1_write(hdr, sizeof(hdr), NULL, NULL) :
					       rp_proxy_v2_write(hdr, sizeof(hdr), NULL, NULL, 0);
		if (n < 0)
			n = 0;
	}
	if (n || early) {
		plen = (size_t)n + early;
		if (c->hbuf && plen <= HDR_BUF) {
			/* in the header buffer, the early bytes moved up behind
			 * the header: no allocation between an accepted header
			 * and its relay (at the smallest pools one failed here) */
			prime = c->hbuf;
			memmove(prime + n, c->hbuf + c->payload_off, early);
		} else {
			prime = rp_pool_alloc(rp_shard_pool(sh), plen);
			if (!prime) {
				start_failed(c->rs, ENOMEM);
				conn_free(sh, c, true);
				return;
			}
			if (early)
				memcpy(prime + n, c->hbuf + c->payload_off, early);
		}
		memcpy(prime, hdr, (size_t)n);
		cfg.prime[0] = prime;
		cfg.prime_len[0] = plen;
	}
	/* the header buffer is not kept for the relay's life (pool_low
	 * counts it for a connection not started): taken off @c before the
	 * start, whose on_relay_done may free @c before it returns */
	hbuf = c->hbuf;
	c->hbuf = NULL;
	ret = rp_relay_start(sh, c->cfd, c->ufd, &cfg, on_relay_done, c, NULL);
	/* copied by the relay */
	if (prime != hbuf)
		rp_pool_free(prime);
	rp_pool_free(hbuf);
	if (ret) {
		start_failed(c->rs, -ret);
		conn_free(sh, c, true);
	}
}

/* ---- the upstream connection ---- */

/* The oldest connection on @l (rs->pend or rs->wait), or NULL. */
static struct rconn *oldest(const struct rp_app_list *l)
{
	return l->first ? rp_app_list_entry(l->first, struct rconn, link) : NULL;
}

static void pend_del(struct rshard *rs, struct rconn *c)
{
	rp_app_list_unlink(&rs->pend, &c->link);
	c->cop = NULL;
}

static void ctimer_arm(struct rp_shard *sh, struct rshard *rs, uint64_t now);

/* The oldest connect's deadline came: cancel every connect past its own
 * (the cancel ends it with -ECANCELED, counted as a timeout), then wait for
 * the next one's. */
static void on_ctimer(struct rp_shard *sh, void *arg, const struct rp_cqe *cq)
{
	struct rshard *rs = arg;
	uint64_t now = rp_app_now_ns();
	struct rconn *c;

	if (cq->res == -ECANCELED)
		return; /* the shard stops: its ops are cancelled anyway */
	while ((c = oldest(&rs->pend)) && c->conn_deadline <= now) {
		if (rp_cancel_op(sh, c->cop))
			break; /* no SQ room (no memory needed): again at the next pass */
		c->timed_out = true;
		pend_del(rs, c);
	}
	ctimer_arm(sh, rs, now);
}

static void ctimer_arm(struct rp_shard *sh, struct rshard *rs, uint64_t now)
{
	struct rconn *c = oldest(&rs->pend);
	uint64_t ns;

	if (!c || !rs->ctimer || rp_timer_armed(rs->ctimer))
		return;
	/* a cancel that could not start is retried 1 ms on */
	ns = c->conn_deadline > now ? c->conn_deadline - now : MS;
	/* -EBUSY (SQ full after every flush), -ESHUTDOWN: the next connect
	 * arms it; until then a connect still ends, at the kernel's own
	 * SYN retries' end */
	(void)rp_timer_arm(sh, rs->ctimer, ns, on_ctimer, rs);
}

static void on_connect(struct rp_shard *sh, void *arg, const struct rp_cqe *cq)
{
	struct rconn *c = arg;

	if (c->cop)
		pend_del(c->rs, c);
	if (cq->res < 0) {
		/* unreachable, refused or too slow: the client is closed */
		if (cq->res == -ECANCELED && c->timed_out)
			ST_ADD(c->rs, connect_timeouts, 1);
		else if (cq->res != -ECANCELED || !rp_shard_stopping(sh))
			connect_failed(c->rs, -cq->res); /* not the stop's cancel */
		conn_free(sh, c, true);
		return;
	}
	start_relay(sh, c);
}

/* The connect of @c, whose upstream socket is c->ufd, bounded by its
 * conn_deadline (set by connect_upstream: a wait for a descriptor came
 * out of the same --connect-timeout). */
static void connect_start(struct rp_shard *sh, struct rconn *c, uint64_t now)
{
	struct rshard *rs = c->rs;
	int one = 1;
	struct rp_op *op;

	(void)setsockopt(c->ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	op = rp_connect(sh, c->ufd, (struct sockaddr *)&g.up, g.uplen, on_connect, c);
	if (!op) {
		connect_failed(rs, errno);
		conn_free(sh, c, true);
		return;
	}
	c->cop = op;
	/* deadlines stay in list order: a connect starts directly only
	 * while no client waits, and waiters leave the wait list in order */
	rp_app_list_push(&rs->pend, &c->link);
	ctimer_arm(sh, rs, now);
}

/* ---- the wait for a descriptor ---- */

/* socket(2) failed for lack of descriptors or kernel memory: what passes
 * once other connections close, so the client waits instead of being
 * closed (and reset, if it had sent bytes) */
static bool fd_shortage(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

static void on_wtimer(struct rp_shard *sh, void *arg, const struct rp_cqe *cq);

static void wait_arm(struct rp_shard *sh, struct rshard *rs)
{
	if (!rs->wtimer || rp_timer_armed(rs->wtimer))
		return;
	/* -EBUSY (SQ full after every flush), -ESHUTDOWN: the next close
	 * arms it (conn_free) */
	(void)rp_timer_arm(sh, rs->wtimer, WAIT_RETRY_NS, on_wtimer, rs);
}

/* @c joins the wait list's tail (its descriptor-less upstream: c->ufd
 * -1); the first waiter pauses the accept: each client taken in now
 * would hold a descriptor the waiters need. */
static void wait_add(struct rp_shard *sh, struct rconn *c)
{
	struct rshard *rs = c->rs;

	ST_ADD(rs, upstream_waits, 1);
	rp_app_list_push(&rs->wait, &c->link);
	rs->waiting++;
	rp_app_accept_pause(sh, &rs->acc);
	wait_arm(sh, rs);
}

static struct rconn *wait_pop(struct rshard *rs)
{
	struct rconn *c = oldest(&rs->wait);

	rp_app_list_unlink(&rs->wait, &c->link);
	rs->waiting--;
	return c;
}

/* The wait timer: in order, each waiter past its deadline is closed
 * (a connect timeout), the others get their upstream socket until one
 * fails for lack of descriptors again; an empty list resumes the accept. */
static void on_wtimer(struct rp_shard *sh, void *arg, const struct rp_cqe *cq)
{
	struct rshard *rs = arg;
	uint64_t now = rp_app_now_ns();
	struct rconn *c;

	if (cq->res == -ECANCELED || rp_shard_stopping(sh))
		return; /* the stop frees the waiters (relay_stop) */
	while ((c = oldest(&rs->wait))) {
		if (c->conn_deadline <= now) {
			ST_ADD(rs, connect_timeouts, 1);
			conn_free(sh, wait_pop(rs), true);
			continue;
		}
		c->ufd = upstream_socket(sh); /* the pooled pipes shed first */
		if (c->ufd < 0 && errno == EMFILE && rs->spare >= 0) {
			close(rs->spare); /* synchronous: free for the socket now */
			rs->spare = -1;
			rs->spare_lent = true;
			c->ufd = upstream_socket(sh);
		}
		if (c->ufd < 0 && fd_shortage(errno))
			break; /* still short: the next pass */
		wait_pop(rs);
		if (c->ufd < 0) {
			connect_failed(rs, errno);
			conn_free(sh, c, true);
			continue;
		}
		connect_start(sh, c, now);
	}
	if (rp_app_list_empty(&rs->wait) && rs->spare_lent) {
		/* a listener the drain has ended needs no reserve: not retaken
		 * (a dup of -1 would fail every 5 ms until the exit) */
		bool open = rs->acc.lfd >= 0 && !rs->acc.closed;

		rs->spare = open ? fcntl(rs->acc.lfd, F_DUPFD_CLOEXEC, 0) : -1;
		/* out of descriptors: the pooled pipes go first, as for an
		 * upstream socket (else the accept stayed paused until the
		 * pool's trim gave them back, 1-2 s) */
		if (rs->spare < 0 && open && (errno == EMFILE || errno == ENFILE) &&
		    rp_relay_shard_shed_pipes(sh))
			rs->spare = fcntl(rs->acc.lfd, F_DUPFD_CLOEXEC, 0);
		rs->spare_lent = open && rs->spare < 0;
	}
	if (!rp_app_list_empty(&rs->wait) || rs->spare_lent)
		wait_arm(sh, rs); /* the accept stays paused until the spare is back */
	else
		rp_app_accept_resume(sh, &rs->acc);
}

/* The upstream of @c: a socket and its connect, bounded by
 * --connect-timeout from here; a client that finds no descriptor for its
 * socket, or others waiting before it, waits (wait_add). */
static void connect_upstream(struct rp_shard *sh, struct rconn *c)
{
	uint64_t now = rp_app_now_ns();

	c->conn_deadline = now + g.connect_ns;
	if (!rp_app_list_empty(&c->rs->wait)) {
		wait_add(sh, c); /* first come, first served */
		return;
	}
	c->ufd = upstream_socket(sh); /* out of descriptors: the pooled pipes shed first */
	if (c->ufd < 0) {
		if (fd_shortage(errno)) {
			wait_add(sh, c);
			return;
		}
		connect_failed(c->rs, errno);
		conn_free(sh, c, true);
		return;
	}
	connect_start(sh, c, now);
}

/* ---- an accepted PROXY header ---- */

static void read_header(struct rp_shard *sh, struct rconn *c);

/*
 * The client reset before its addresses were read (getpeername: ENOTCONN),
 * and no accepted header gave others: a header sent upstream would carry
 * none (v1 UNKNOWN, v2 LOCAL), and an upstream takes the relay's own
 * address for the sender then, one it may trust. Closed, counted, never
 * connected upstream; the bytes it sent before its reset are dropped with it.
 */
static void peer_gone(struct rp_shard *sh, struct rconn *c)
{
	ST_ADD(c->rs, peer_gone, 1);
	conn_free(sh, c, true);
}

static void refuse(struct rp_shard *sh, struct rconn *c, enum rp_proxy_reason why)
{
	ST_ADD(c->rs, proxy_refused[why], 1);
	conn_free(sh, c, true);
}

static void on_header(struct rp_shard *sh, void *arg, const struct rp_cqe *cq)
{
	struct rconn *c = arg;
	size_t consumed = 0, start = c->hlen;
	const struct rp_proxy_hdr *h;
	int st;

	if (cq->res <= 0) {
		/* the stop's cancel (SIGTERM, the drain's deadline) is the
		 * relay's close, not the client's: not counted, as the
		 * connects and the descriptor waits it ends */
		if (cq->res == -ECANCELED) {
			if (!rp_shard_stopping(sh))
				ST_ADD(c->rs, proxy_timeouts, 1);
		} else {
			ST_ADD(c->rs, proxy_refused[RP_PROXY_R_NONE], 1); /* closed or reset early */
		}
		conn_free(sh, c, true);
		return;
	}
	c->hlen += (size_t)cq->res;
	st = rp_proxy_feed(c->pp, c->hbuf + start, (size_t)cq->res, &consumed);
	if (st == RP_PROXY_MORE) {
		if (c->hlen == HDR_BUF) {
			refuse(sh, c, RP_PROXY_R_V2_TOO_LONG);
			return;
		}
		read_header(sh, c);
		return;
	}
	if (st != RP_PROXY_DONE) {
		refuse(sh, c, c->pp->reason);
		return;
	}
	ST_ADD(c->rs, proxy_accepted, 1);
	c->payload_off = start + consumed;
	h = &c->pp->hdr;
	/* LOCAL/UNKNOWN: the connection's own addresses, kept from accept */
	if (!h->local) {
		if (h->family == AF_INET || h->family == AF_INET6) {
			memcpy(&c->src, &h->src, sizeof(c->src));
			memcpy(&c->dst, &h->dst, sizeof(c->dst));
			c->noaddr = false;
		} else {
			c->local = true; /* AF_UNIX peers: no TCP addresses to pass on */
		}
	}
	if (c->noaddr && g.proxy_out) {
		peer_gone(sh, c);
		return;
	}
	rp_pool_free(c->pp);
	c->pp = NULL;
	connect_upstream(sh, c);
}

static void read_header(struct rp_shard *sh, struct rconn *c)
{
	uint64_t now = rp_app_now_ns();
	struct rp_op *op;

	if (now >= c->hdr_deadline) {
		ST_ADD(c->rs, proxy_timeouts, 1);
		conn_free(sh, c, true);
		return;
	}
	op = rp_recv(sh, c->cfd, c->hbuf + c->hlen, (unsigned)(HDR_BUF - c->hlen), 0, on_header, c);
	if (!op) {
		if (errno == ENOMEM) /* the read's op: counted as at accept */
			ST_ADD(c->rs, conn_nomem, 1);
		conn_free(sh, c, true);
		return;
	}
	/* takes no op from the pool (its timespec is in the read's op, its SQE
	 * slot was kept spare): only a misuse fails it, and right after the
	 * read's own prep there is none, so an empty pool cannot unbound the
	 * header's wait (test_tick_nomem's accept-proxy case) */
	(void)rp_link_timeout(sh, op, c->hdr_deadline - now);
}

/* ---- accepting ---- */

/* What a copy-mode relay holds of the pool once started: measured 1280 B
 * (pool_live over 4092 idle relays at --pool-mb 22: its rconn, its
 * rp_relay, its receives' ops), rounded up. */
#define CONN_POOL_BYTES 2048u

/*
 * Room kept for the relays already running: what a copy direction that
 * backs up allocates, per pool class, for HEADROOM_DIRS such directions at
 * once. A client is refused at accept (conn_nomem) when the pool could not
 * give that, so that idle newcomers cannot take the spans an established
 * relay needs mid-stream: its pieces' records and the queue's nodes are
 * allocated per received buffer, and one that fails cuts the relay
 * (RP_RELAY_END_NOMEM, net/relay_copy.c). Measured on 8 relays streaming
 * 4 MB each into slow readers (the "objs" of the stats line, peak over
 * the run, per backed-up direction): 64 B 55, 128 B 57 beyond the idle
 * relays' ops, 256 B 1, 512 B 0, 1024 B and 2048 B under 1. The counts
 * below are the bounds: MAX_NODES (64) pieces a direction, each a 24 B
 * record (64 B class) and an outq node (128 B), plus its recv, cancel and
 * send ops (128 B: struct rp_op); its rp_outq (256 B). A sendmsg's iovec
 * block (1024 B, 2048 B classes) is not kept: a queue that cannot get one
 * sends its head piece alone by IORING_OP_SEND (net/outq.c, send_plain),
 * so a backed-up direction goes on, one piece a send, without it.
 * HEADROOM_DIRS 32: the 8 data relays of apps/test_pool.sh's flood (16
 * directions) twice over. At --pool-mb 22 that holds 3 of the 5 spans
 * the provided buffers leave (docs/net.md, "The relay's check at accept").
 */
#define HEADROOM_DIRS 32u
static const struct {
	unsigned size, per_dir, per_start;
} headroom[] = {
	{ 64, 64, 0 },	 /* a piece's record (struct rpush) */
	{ 128, 67, 3 },	 /* a piece's outq node; recv, cancel and send ops */
	{ 256, 1, 0 },	 /* the direction's rp_outq */
	{ 512, 0, 2 },	 /* a connection's rconn and rp_relay */
};

/* True when the pool cannot give the headroom above on top of what
 * @starting connections (accepted, their relays not started; this one
 * among them) will still take: their rconn and rp_relay (512 B), their
 * connect and two receives (128 B). Without them a burst of accepts each
 * passed the check and then took, once started, the spans it had counted
 * (measured: 8 of 8 data relays stalled with 1023 idle clients held).
 * The classes share the free spans (rp_app_room_short). */
#define HEADROOM_N (sizeof(headroom) / sizeof(headroom[0]))
static bool headroom_short(struct rp_pool *pool, size_t starting)
{
	size_t size[HEADROOM_N], want[HEADROOM_N];

	for (unsigned i = 0; i < HEADROOM_N; i++) {
		size[i] = headroom[i].size;
		want[i] = (size_t)HEADROOM_DIRS * headroom[i].per_dir +
			  starting * headroom[i].per_start;
	}
	return rp_app_room_short(pool, size, want, HEADROOM_N);
}

static bool pool_low(struct rp_shard *sh, struct rshard *rs)
{
	struct rp_relay_stats r;
	uint64_t starting;

	rp_relay_stats(sh, &r);
	starting = rs->conns > r.active ? rs->conns - r.active : 0;
	return rp_app_pool_low(sh, (size_t)starting * (CONN_POOL_BYTES +
						       (g.accept_proxy ? HDR_BUF + sizeof(struct rp_proxy_parser) : 0))) ||
	       headroom_short(rp_shard_pool(sh), (size_t)starting + 1);
}

/* Take the accepted @fd in: its rconn, then its PROXY header's read or
 * its upstream's connect. False, and @fd left open (its --max-conns
 * place kept), when the pool has no room for it (pool_low). */
static bool conn_take(struct rp_shard *sh, struct rshard *rs, int fd)
{
	struct rconn *c;

	/* a pool short of its reserve refuses here, before an upstream is
	 * connected for a client it could not carry (rp_app_pool_low); the
	 * connections accepted whose relays have not started yet count at
	 * what a started one holds */
	c = pool_low(sh, rs) ? NULL : rp_pool_alloc(rp_shard_pool(sh), sizeof(*c));
	if (!c)
		return false;
	memset(c, 0, sizeof(*c));
	/* the PROXY header's parser and buffer too, before anything is
	 * started: a pool short of them refuses the client here as well, so
	 * it waits for its next look (rp_app_again) like any other */
	if (g.accept_proxy) {
		c->pp = rp_pool_alloc(rp_shard_pool(sh), sizeof(*c->pp));
		c->hbuf = rp_pool_alloc(rp_shard_pool(sh), HDR_BUF);
		if (!c->pp || !c->hbuf) {
			rp_pool_free(c->pp);
			rp_pool_free(c->hbuf);
			rp_pool_free(c);
			return false;
		}
	}
	c->rs = rs;
	c->cfd = fd;
	c->ufd = -1;
	rs->conns++;
	/* TCP_NODELAY came with the socket: set once on the listener (main) */
	if (g.proxy_out || g.accept_proxy) {
		c->srclen = sizeof(c->src);
		c->dstlen = sizeof(c->dst);
		if (getpeername(c->cfd, (struct sockaddr *)&c->src, &c->srclen) ||
		    getsockname(c->cfd, (struct sockaddr *)&c->dst, &c->dstlen))
			c->noaddr = true;
	}
	if (c->noaddr && !g.accept_proxy) {
		peer_gone(sh, c);
		return true;
	}
	if (g.accept_proxy) {
		rp_proxy_parser_init(c->pp);
		c->hdr_deadline = rp_app_now_ns() + HEADER_TIMEOUT_NS;
		read_header(sh, c);
		return true;
	}
	connect_upstream(sh, c);
	return true;
}

/* rp_app_again's: a client refused for pool room closed, counted, its
 * --max-conns place given back */
static void accept_refused(struct rp_shard *sh, void *arg, int fd)
{
	struct rshard *rs = arg;

	(void)sh;
	conns_total_put();
	close(fd);
	ST_ADD(rs, conn_nomem, 1);
}

/* rp_app_again's take: conn_take */
static bool again_take(struct rp_shard *sh, void *arg, int fd)
{
	return conn_take(sh, arg, fd);
}

static void on_accept(struct rp_shard *sh, void *arg, const struct rp_cqe *cq)
{
	struct rshard *rs = arg;
	int fd = rp_app_accepted(sh, &rs->acc, cq);

	if (fd < 0)
		return;
	ST_ADD(rs, accepted, 1);
	/* one count for the process: a shard's share would refuse clients
	 * under the limit while another shard sat empty */
	if (g.max_conns &&
	    atomic_fetch_add_explicit(&conns_total, 1, memory_order_relaxed) >= g.max_conns) {
		conns_total_put();
		ST_ADD(rs, refused_max, 1);
		close(fd);
		return;
	}
	if (conn_take(sh, rs, fd))
		return;
	/* No room now: looked at again in the loop's next rounds before it
	 * is closed (rp_app_again). At --pool-mb 22 the provided buffers
	 * and the headroom are nearly the whole pool, and the objects of a
	 * connection whose client just closed come back only once its relay
	 * ends, a few completions later: a client accepted in the same
	 * round was refused with the room there a round later
	 * (apps/test_pool.sh, "accept behind a close"). Its --max-conns
	 * place is kept while it waits. */
	rp_app_again_add(sh, &rs->again, fd);
}

/* ---- shard hooks, stats ---- */

/* " EMFILE=3 ECONNREFUSED=1" for the non-zero counters of @by (indexed by
 * errno; [0]: no errno or one above the table, as "other"), "" when all
 * are 0; the connect failures' and the resets' lists. */
static void errno_list(char *out, size_t cap, const uint64_t *by)
{
	size_t off = 0;

	out[0] = 0;
	for (unsigned k = 0; k < RP_RELAY_ERRNO_MAX && off < cap; k++) {
		uint64_t v = __atomic_load_n(&by[k], __ATOMIC_RELAXED);
		const char *name = k ? strerrorname_np((int)k) : "other";

		if (!v)
			continue;
		if (name)
			off += (size_t)snprintf(out + off, cap - off, " %s=%llu", name,
						(unsigned long long)v);
		else
			off += (size_t)snprintf(out + off, cap - off, " %u=%llu", k,
						(unsigned long long)v);
	}
}

static void print_shard(struct rp_shard *sh, struct rshard *rs, FILE *f)
{
	struct rp_relay_stats r;
	struct rp_relay_sweep_stats sw;
	struct rp_relay_wait_stats w;
	struct rp_shard_stats s;
	struct rp_pool_stats ps;
	struct rp_outq_stats qs;
	char refused[512], errs[512], cerrs[512], serrs[512], objs[256];
	size_t off = 0, ooff = 0;
	uint64_t ref_total = 0, pool_live = 0; /* pool bytes held: connections, ops */

	rp_relay_stats(sh, &r);
	rp_relay_sweep_stats(sh, &sw);
	rp_relay_wait_stats(sh, &w);
	rp_shard_stats(sh, &s);
	rp_outq_shard_stats(sh, &qs);
	rp_pool_stats(rp_shard_pool(sh), &ps);
	for (unsigned k = 0; k < RP_POOL_NCLASS; k++) {
		/* the live objects of each class in use, " 64=N 128=N ...":
		 * what the headroom at accept (headroom_short) is sized by */
		if (ps.class_live_bytes[k] && ooff < sizeof(objs))
			ooff += (size_t)snprintf(objs + ooff, sizeof(objs) - ooff, " %u=%llu",
						 64u << k,
						 (unsigned long long)(ps.class_live_bytes[k] >> (6 + k)));
		pool_live += ps.class_live_bytes[k];
	}
	if (!ooff)
		snprintf(objs, sizeof(objs), " none");
	refused[0] = 0;
	for (unsigned k = 0; k < RP_PROXY_R_COUNT; k++) {
		uint64_t v = __atomic_load_n(&rs->st.proxy_refused[k], __ATOMIC_RELAXED);

		if (!v || off >= sizeof(refused))
			continue;
		ref_total += v;
		off += (size_t)snprintf(refused + off, sizeof(refused) - off, " %s=%llu",
					k ? rp_proxy_reason_name((enum rp_proxy_reason)k) : "closed",
					(unsigned long long)v);
	}
	errno_list(errs, sizeof(errs), r.reset_errno);
	errno_list(cerrs, sizeof(cerrs), rs->st.connect_errno);
	errno_list(serrs, sizeof(serrs), rs->st.start_errno);
	fprintf(f,
		"shard %u: conns %llu live %u open %llu refused_max %llu connect_failed %llu "
		"connect_errno%s start_failed %llu start_errno%s connect_timeouts %llu upstream_waits %llu waiting %u accept_errors %llu peer_gone %llu drain_retries %llu drain_reset %llu conn_nomem %llu | copied %llu/%llu B spliced %llu/%llu B half_closes %llu "
		"resets_passed %llu reset_errno%s ended closed=%llu reset=%llu idle=%llu abort=%llu nomem=%llu "
		"paused %llu spilled %llu waits %llu parked %llu park_full %llu to_splice %llu "
		"to_copy %llu splice_fallback no_pipe=%llu "
		"pipe_limit=%llu pipe_size=%llu einval=%llu splice_zero=%llu fcntl=%llu pipes %llu max %llu trimmed %llu shed %llu "
		"sweeps %llu sweep_visited %llu sweep_ns %llu | proxy accepted "
		"%llu timeouts %llu refused %llu%s | ops %llu submits %llu enobufs %llu nomem %llu "
		"sq_full %llu outq_stalls %llu | pool_live %llu spans_free %zu objs%s\n",
		rs->id, (unsigned long long)rs->st.accepted, rs->conns, (unsigned long long)r.active,
		(unsigned long long)rs->st.refused_max, (unsigned long long)rs->st.connect_failed,
		cerrs[0] ? cerrs : " none", (unsigned long long)rs->st.start_failed,
		serrs[0] ? serrs : " none", (unsigned long long)rs->st.connect_timeouts,
		(unsigned long long)rs->st.upstream_waits, rs->waiting,
		(unsigned long long)rs->st.accept_errors,
		(unsigned long long)rs->st.peer_gone, (unsigned long long)rs->st.drain_retries,
		(unsigned long long)rs->st.drain_reset, (unsigned long long)rs->st.conn_nomem,
		(unsigned long long)r.bytes_copied[0],
		(unsigned long long)r.bytes_copied[1], (unsigned long long)r.bytes_spliced[0],
		(unsigned long long)r.bytes_spliced[1], (unsigned long long)r.half_closes,
		(unsigned long long)r.resets_passed, errs[0] ? errs : " none",
		(unsigned long long)r.ended[0],
		(unsigned long long)r.ended[1], (unsigned long long)r.ended[2],
		(unsigned long long)r.ended[3], (unsigned long long)r.ended[4],
		(unsigned long long)r.paused, (unsigned long long)r.spilled,
		(unsigned long long)w.waits, (unsigned long long)w.parked,
		(unsigned long long)w.park_full, (unsigned long long)r.to_splice, (unsigned long long)r.to_copy,
		(unsigned long long)r.splice_fallback[0], (unsigned long long)r.splice_fallback[1],
		(unsigned long long)r.splice_fallback[2], (unsigned long long)r.splice_fallback[3],
		(unsigned long long)r.splice_fallback[RP_RELAY_FB_SPLICE_ZERO],
		(unsigned long long)r.splice_fallback[RP_RELAY_FB_FCNTL],
		(unsigned long long)r.pipes_live, (unsigned long long)r.pipes_max,
		(unsigned long long)r.pipes_trimmed, (unsigned long long)r.pipes_shed,
		(unsigned long long)sw.sweeps, (unsigned long long)sw.visited,
		(unsigned long long)sw.ns,
		(unsigned long long)rs->st.proxy_accepted, (unsigned long long)rs->st.proxy_timeouts,
		(unsigned long long)ref_total, refused, (unsigned long long)s.ops_submitted,
		(unsigned long long)s.submits, (unsigned long long)s.enobufs,
		(unsigned long long)s.nomem, (unsigned long long)s.sq_full,
		(unsigned long long)qs.stalls, (unsigned long long)pool_live,
		rp_pool_spans_free(rp_shard_pool(sh), 0), objs);
	fflush(f);
}

static void stats_msg(struct rp_shard *sh, void *arg)
{
	(void)arg;
	if (g.rs[rp_shard_id(sh)])
		print_shard(sh, g.rs[rp_shard_id(sh)], stdout);
}

static void print_stats(void *rt)
{
	rp_app_on_each_shard(rt, stats_msg);
}

static int relay_init(struct rp_shard *sh, void *arg)
{
	unsigned id = rp_shard_id(sh);
	struct rshard *rs = calloc(1, sizeof(*rs));
	int ret;

	(void)arg;
	if (!rs)
		return -ENOMEM;
	rs->id = id;
	/* the listener is the shard's from here: its stop or fini closes it */
	rs->acc = (struct rp_app_accept){ .cmd = "relay", .id = id, .lfd = g.lfds[id],
					  .backoff_ns = ACCEPT_BACKOFF_NS, .cb = on_accept, .arg = rs,
					  .errors = &rs->st.accept_errors,
					  .rearm_failed = &rs->st.rearm_failed,
					  .spare_fds = 1, /* the upstream socket */
					  .shed = relay_shed, /* the pooled pipes */
					  .drain_retries = &rs->st.drain_retries,
					  .drain_reset = &rs->st.drain_reset };
	g.lfds[id] = -1;
	g.rs[id] = rs;
	/* -1 when it cannot be had: the wait list works without it */
	rs->spare = fcntl(rs->acc.lfd, F_DUPFD_CLOEXEC, 0);
	rs->ctimer = rp_timer_new(sh);
	rs->wtimer = rp_timer_new(sh);
	if (!rs->ctimer || !rs->wtimer)
		return -ENOMEM;
	rs->again = (struct rp_app_again){ .take = again_take, .refuse = accept_refused, .arg = rs };
	ret = rp_app_again_init(sh, &rs->again);
	if (ret)
		return ret;
	ret = rp_relay_shard_init(sh); /* the idle sweep's timer, reserved */
	if (ret)
		return ret;
	ret = rp_app_accept_start(sh, &rs->acc);
	if (ret)
		return ret;
	struct rp_pool_stats ps;

	rp_pool_stats(rp_shard_pool(sh), &ps);
	fprintf(stderr, "ringplane relay: shard %u: cpu %d, pool %zu MB on %s pages\n", id,
		rp_runtime_shard_cpu(rp_shard_runtime(sh), id), ps.arena_bytes >> 20,
		rp_pool_page_kind_name(ps.page_kind));
	return 0;
}

/* SIGQUIT's drain (rp_app_run_drain), on the shard's thread: stop the
 * accept (the connections the kernel had queued are taken in first and
 * relayed as any other, --max-conns applying, server.h); every relay
 * goes on until both directions end (or the --idle-timeout, a reset, an
 * unreachable upstream: their normal ends).
 * Returns the connections left, those still connecting upstream or
 * reading a PROXY header included, and the clients refused at accept
 * that wait for another look (rs->again). */
static unsigned relay_drain(struct rp_shard *sh)
{
	struct rshard *rs = g.rs[rp_shard_id(sh)];

	if (!rs)
		return 0;
	rp_app_accept_close(sh, &rs->acc); /* a held listener: another pass */
	return rs->conns + rs->acc.held + rs->again.n;
}

static void relay_stop(struct rp_shard *sh, void *arg)
{
	struct rshard *rs = g.rs[rp_shard_id(sh)];

	(void)arg;
	/* the engine cancels the accept and every relay's ops next: each relay
	 * ends (reset, counted as abort) and frees itself; a client waiting
	 * for a descriptor has no op: closed here (not counted, as the
	 * connects the stop cancels) */
	if (!rs)
		return;
	/* the listener first: a waiter's free pokes the accept, which would
	 * otherwise end a held listener itself, without the drain's line
	 * saying how many queued clients were reset */
	rp_app_accept_stop(sh, &rs->acc);
	while (!rp_app_list_empty(&rs->wait))
		conn_free(sh, wait_pop(rs), true);
	if (rs->spare >= 0 && !rp_close(sh, rs->spare, NULL, NULL))
		close(rs->spare);
	rs->spare = -1;
	rs->spare_lent = false;
}

static void relay_fini(struct rp_shard *sh, void *arg)
{
	struct rshard *rs = g.rs[rp_shard_id(sh)];

	(void)arg;
	/* The relays a stop's deadline left live (their ops still in the
	 * kernel) end first, their done() freeing their connections, so the
	 * exit line below counts them (ended abort, not live or open); the
	 * exit after it frees the counters. */
	rp_relay_shard_end(sh);
	if (rs) {
		if (rs->acc.lfd >= 0) {
			close(rs->acc.lfd);
			rs->acc.lfd = -1;
		}
		rp_app_accept_fini(sh, &rs->acc);
		rp_timer_free(sh, rs->ctimer);
		rp_timer_free(sh, rs->wtimer);
		rs->ctimer = rs->wtimer = NULL;
		rp_app_again_fini(sh, &rs->again); /* a pass the stop left undone */
		print_shard(sh, rs, stdout);
	}
	rp_relay_shard_exit(sh);
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ringplane relay --listen HOST:PORT --upstream HOST:PORT [--shards N]\n"
		"                       [--cpus LIST] [--mode auto|splice|copy|uring-splice]\n"
		"                       [--proxy-protocol off|v1|v2] [--accept-proxy]\n"
		"                       [--connect-timeout MS] [--idle-timeout S] [--max-conns N]\n"
		"                       [--busy-poll US] [--idle-spin US] [--stats-interval S]\n"
		"                       [--drain-timeout S] [--stop-timeout MS] [--no-pin]\n"
		"                       [--pool-mb N]\n"
		"  --listen HOST:PORT      address to serve: IPv4, [IPv6] or a name; port 0: any\n"
		"  --upstream HOST:PORT    where each client's bytes go (a new connection each)\n"
		"  --shards N              shards, 1..256 (default: one per core of the plan)\n"
		"  --cpus LIST             CPUs for the shards (cpulist, e.g. 0-3)\n"
		"  --mode M                auto (default): copy, splice while a direction streams;\n"
		"                          splice: socket->pipe->socket; copy: provided buffers;\n"
		"                          uring-splice: IORING_OP_SPLICE in io-wq (to compare)\n"
		"  --proxy-protocol V      send a PROXY header upstream first (v1 text, v2 binary)\n"
		"  --accept-proxy          require a PROXY v1/v2 header from each client (5 s)\n"
		"  --connect-timeout MS    upstream connect bound, a wait for a free descriptor\n"
		"                          included (default 5000)\n"
		"  --idle-timeout S        end relays with no byte moved for S seconds (0: never,\n"
		"                          the default); checked every 250 ms: ended after\n"
		"                          at least S, normally within 300 ms more\n"
		"  --max-conns N           at most N relayed connections, all shards together (0: no\n"
		"                          limit); clients past the limit are closed at once (counted)\n"
		"  --busy-poll US          poll for completions up to US microseconds before sleeping\n"
		"  --idle-spin US          poll up to US microseconds before sleeping while the gaps\n"
		"                          between events stay shorter, yielding the CPU to any\n"
		"                          other runnable task (default %u, at most %u; 0: off)\n"
		"  --stats-interval S      print per-shard counters every S seconds (also on SIGUSR1)\n"
		"  --drain-timeout S       on SIGQUIT stop accepting, let every relay run to its end\n"
		"                          and exit 0 when none is left,\n"
		RP_APP_DRAIN_HELP("                          ")
		"  --stop-timeout MS       on SIGINT/SIGTERM, how long a shard waits for the ops it\n"
		"                          cancelled before it leaves them to the kernel and ends\n"
		"                          the relays still open (default 3000)\n"
		"  --no-pin                do not pin shard threads\n"
		"  --pool-mb N             each shard's memory pool, reserved and populated at start:\n"
		"                          %u..%u MB (default %u; at least %u with --accept-proxy);\n"
		RP_APP_POOL_HELP("                          "),
		RP_APP_IDLE_SPIN_US_DEFAULT, RP_APP_IDLE_SPIN_US_MAX, POOL_MB_MIN, RP_APP_POOL_MB_MAX,
		POOL_MB_DEFAULT, POOL_MB_MIN_PROXY);
}

int rp_cmd_relay(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "upstream", required_argument, NULL, 'u' },
		{ "shards", required_argument, NULL, 's' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "mode", required_argument, NULL, 'm' },
		{ "proxy-protocol", required_argument, NULL, 'p' },
		{ "accept-proxy", no_argument, NULL, 'a' },
		{ "connect-timeout", required_argument, NULL, 'C' },
		{ "idle-timeout", required_argument, NULL, 't' },
		{ "max-conns", required_argument, NULL, 'M' },
		{ "busy-poll", required_argument, NULL, 'b' },
		{ "idle-spin", required_argument, NULL, 'I' },
		{ "stats-interval", required_argument, NULL, 'i' },
		{ "drain-timeout", required_argument, NULL, 'D' },
		{ "pool-mb", required_argument, NULL, 'P' },
		{ "stop-timeout", required_argument, NULL, 'T' },
		{ "no-pin", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const modes[] = { "auto", "copy", "splice", "uring-splice", NULL };
	static const char *const pp[] = { "off", "v1", "v2", NULL };
	static const struct rp_app_drain drain = { .step = relay_drain };
	/* idle spin on by default: on the 2-vCPU test VMs it took sockperf's
	 * p50 through the relay from 59-70 us to 36-52 us, below HAProxy's
	 * 65-82 (docs/net.md, "Latency, keep-alive and churn") */
	struct rp_runtime_config rc = { .idle_spin_ns = RP_APP_IDLE_SPIN_US_DEFAULT * 1000ull };
	struct rp_runtime *rt = NULL;
	struct rp_app_opts o = { .pool_mb_min = POOL_MB_MIN };
	const char *up_arg = NULL;
	char ustr[80];
	unsigned busy_us = 0, mode = 0, conn_ms = 5000, idle_s = 0, max_conns = 0,
		 stop_ms = STOP_MS_DEFAULT;
	sigset_t sigs;
	int c, ret, status = RP_EXIT_FAIL;

	optind = 1;
	while ((c = rp_getopt("ringplane relay", argc, argv, ":h", opts)) != -1) {
		int taken = rp_app_server_opt("relay", c, optarg, 256, &rc, &o);

		if (taken < 0)
			return RP_EXIT_USAGE;
		if (taken)
			continue;
		switch (c) {
		case 'u':
			up_arg = optarg;
			if (rp_arg_hostport("relay", "--upstream", optarg, false, &g.up, &g.uplen))
				return RP_EXIT_USAGE;
			break;
		case 'm':
			if (rp_arg_choice("relay", "--mode", optarg, modes, &mode))
				return RP_EXIT_USAGE;
			break;
		case 'p':
			if (rp_arg_choice("relay", "--proxy-protocol", optarg, pp, &g.proxy_out))
				return RP_EXIT_USAGE;
			break;
		case 'a':
			g.accept_proxy = true;
			break;
		case 'C':
			if (rp_arg_uint("relay", "--connect-timeout", optarg, 1, 3600000, &conn_ms))
				return RP_EXIT_USAGE;
			break;
		case 't':
			if (rp_arg_uint("relay", "--idle-timeout", optarg, 0, 86400 * 7, &idle_s))
				return RP_EXIT_USAGE;
			break;
		case 'M':
			if (rp_arg_uint("relay", "--max-conns", optarg, 0, 100000000, &max_conns))
				return RP_EXIT_USAGE;
			break;
		case 'I':
			if (rp_arg_uint("relay", "--idle-spin", optarg, 0, RP_APP_IDLE_SPIN_US_MAX, &busy_us))
				return RP_EXIT_USAGE;
			rc.idle_spin_ns = (uint64_t)busy_us * 1000u;
			break;
		case 'T':
			if (rp_arg_uint("relay", "--stop-timeout", optarg, 1, 600000, &stop_ms))
				return RP_EXIT_USAGE;
			break;
		case 'h':
			usage(stdout);
			return RP_EXIT_OK;
		default: /* rp_getopt said which */
			return RP_EXIT_USAGE;
		}
	}
	if (rp_args_none_left("ringplane relay", argc, argv))
		return RP_EXIT_USAGE;
	if (rp_arg_required("ringplane relay", "--listen", o.listen) ||
	    rp_arg_required("ringplane relay", "--upstream", up_arg))
		return RP_EXIT_USAGE;
	if (g.accept_proxy && o.pool_mb && o.pool_mb < POOL_MB_MIN_PROXY) {
		fprintf(stderr, "ringplane relay: --pool-mb %u is below %u, the least that relays with --accept-proxy\n",
			o.pool_mb, POOL_MB_MIN_PROXY);
		return RP_EXIT_USAGE;
	}
	static const enum rp_relay_mode mode_of[] = { RP_RELAY_AUTO, RP_RELAY_COPY, RP_RELAY_SPLICE,
						      RP_RELAY_SPLICE_URING };

	g.rcfg.mode = mode_of[mode];
	g.rcfg.idle_ns = (uint64_t)idle_s * 1000000000u;
	g.connect_ns = (uint64_t)conn_ms * MS;

	rp_app_raise_nofile(); /* two fds per relayed connection */
	rp_app_block_signals(&sigs);

	rc.init = relay_init;
	rc.on_stop = relay_stop;
	rc.fini = relay_fini;
	rc.bufs = 1024;
	rc.buf_size = 16384;
	rc.pool_bytes = (size_t)(o.pool_mb ? o.pool_mb : POOL_MB_DEFAULT) << 20;
	rc.stop_timeout_ms = stop_ms;
	g.shards = rp_app_runtime_listen("relay", &rc, &o, &rt, &g.lfds);
	g.rs = g.shards ? calloc(g.shards, sizeof(*g.rs)) : NULL;
	if (!g.rs)
		goto out;
	g.max_conns = max_conns;
	/* Accepted sockets inherit TCP_NODELAY from their listener on Linux
	 * (the clone copies it): one setsockopt here instead of one per client. */
	for (unsigned i = 0; i < g.shards; i++) {
		int one = 1;

		(void)setsockopt(g.lfds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (rp_app_start("relay", rt, &o.ss))
		goto out;
	rp_app_addr_str(&g.up, ustr, sizeof(ustr));
	fprintf(stderr,
		"ringplane relay: %u shard%s, upstream %s, mode %s, proxy-protocol %s%s, "
		"connect timeout %u ms, %s\n",
		g.shards, g.shards == 1 ? "" : "s", ustr, rp_relay_mode_name(g.rcfg.mode),
		pp[g.proxy_out], g.accept_proxy ? ", accept-proxy" : "", conn_ms,
		rp_engine_features(rt));

	ret = rp_app_run_drain(rt, &sigs, &o, print_stats, rt, &drain);
	status = ret ? RP_EXIT_FAIL : RP_EXIT_OK;
out:
	rp_app_close_listeners(g.lfds, g.shards);
	rp_runtime_destroy(rt);
	for (unsigned i = 0; g.rs && i < g.shards; i++)
		free(g.rs[i]);
	free(g.rs);
	free(g.lfds);
	return status;
}
