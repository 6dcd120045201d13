/* SPDX-License-Identifier: MIT */
/*
 * `ringplane serve --listen HOST:PORT --root DIR [...]`: HTTP/1.1 static
 * files on the engine. GET and HEAD, keep-alive (HTTP/1.0 closes unless it
 * asks), pipelined requests answered in order, one byte range (206/416,
 * If-Range honoured), ETag and Last-Modified with 304, Content-Type by
 * extension, and 400, 403,
 * 404, 405, 414, 431, 501, 505 for what the parser (net/http.c) refuses.
 *
 * Per connection: one multishot recv into the shard's provided buffers;
 * a request's first bytes are parsed in the provided buffer they arrived
 * in (more are appended while they fit), moved into a head buffer from the
 * pool only when they outgrow it, and the buffer is given back when no
 * request bytes are left, so an idle keep-alive connection holds none,
 * and when a body answer starts (what is pipelined behind its head copied
 * into a pool object of its size first: head_release), so a connection
 * whose answer goes out for long holds none either. One response is
 * in flight at a time (rp_file_send: the head and the file range as one
 * operation, with no user-space copy of a large body); the next pipelined
 * request is parsed when it is done. A connection whose head buffer is half
 * full while a response is in flight stops reading until it is sent. The
 * stop is a cancel, and the kernel may have filled more buffers before it
 * lands (all it had, on a big pipelined write): what the head buffer has no
 * room for is kept, in order, and copied in as requests are answered;
 * reading stays stopped while anything is kept, so a client that pipelines
 * without reading is held back by TCP. Kept bytes stay in their provided
 * buffers, at most HOLD_MAX of them a connection, and only while more than
 * a quarter of the shard's buffers are free; past either, the connection's
 * kept bytes are copied into a spill buffer from the pool (at most
 * SPILL_MAX, SPILL_SHARD for the shard) and its buffers given back at once
 * (a pool with no memory for the spill: the buffers stay kept, to
 * SPILL_MAX, while half are free, so the quarter the answered clients'
 * heads are parsed in stays theirs),
 * so a few pipelining clients never take the buffers every other
 * connection reads with. Past the spill's bound the connection is closed
 * (overflows). After the last answer, or at conn_close, what is kept is
 * dropped at once.
 *
 * Closing (RFC 9112 9.6): once the last answer (Connection: close, HTTP/1.0,
 * an error's) is in the kernel whole (a body that may have gone zero-copy:
 * and acknowledged by the peer, the file still as long, zc_poll; a reset
 * if it shrank), the connection lingers
 * (conn_linger): shutdown(SHUT_WR) puts the FIN behind the answer, and the
 * receive stays armed and drops what still comes (the rest of a refused
 * head, requests pipelined behind the last, a body), its buffers given back
 * at once, until the peer's EOF; a close with those bytes unread would be
 * a reset, and a reset makes the client's kernel drop the answer it has not
 * read yet. The tick ends a linger after --linger-timeout without a byte or
 * --linger-time in all (lingered, linger_timeouts, linger_bytes). What is
 * not a graceful end never lingers: the idle keep-alive close, the header
 * timeout, an overflow, a failed send, an abort (SO_LINGER 0), the stop.
 *
 * Drain (SIGQUIT, server.h): serve_drain stops the accept and gives
 * every idle keep-alive connection the lingering close; one with an answer
 * out finishes it (its FIN follows once it is idle), and the next request
 * answered is the last, with Connection: close (serve_request; what was
 * pipelined behind it is dropped for the client to retry), so no answer
 * is cut. Connections the kernel had queued on the listener are taken in
 * first and get their first answer as their last; only what completes in
 * the microseconds between that and the listener's shutdown is reset
 * (net.ipv4.tcp_migrate_req=1 moves those to another listener of the
 * port instead, e.g. the next process's). Out of descriptors, a request
 * the drain answers whose file open finds none waits for one (open_wait,
 * retry_opens) instead of a 503: its client cannot try again here; one
 * still waiting at --drain-timeout is closed unanswered (open_wait_closed).
 *
 * Out of descriptors (EMFILE, ENFILE) at a file's open or an accept, the
 * files the shard's cache keeps open for reuse are given back first: the
 * least recently used that no response holds, a few at a time, and the
 * open or accept tried again at once (rp_file_cache_get's own retry,
 * serve_shed; counted in fcache_evict_emfile); an accept leaves them to
 * lingering connections while there are any (the tick ends the quiet
 * ones while the accept is down). An open that finds no cached file to
 * give back then closes the empty pipes the shard keeps for its next
 * splice (rp_file_send_shed, pipes_shed: two descriptors each, what a
 * file's first open, O_PATH then the file, needs) and tries again, then
 * ends the oldest lingering connections whose client has acknowledged
 * the whole answer, quiet ones first (linger_free, linger_shed), waits
 * for their closes to complete and tries once more (shed_wait). An
 * accept with nothing cached unheld (or connections lingering) closes
 * the kept pipes too. Only when none of these frees a descriptor does
 * the 503 or the drain's open_wait follow (or, for an accept, its
 * back-off). A pipe out of descriptors needs none: the send goes by
 * sendfile(2) instead (filesend.h). Kept pipes no body took for a second
 * are closed by the tick (rp_file_send_trim, pipes_trimmed): an idle
 * shard holds none.
 *
 * Paths are percent-decoded once and normalized (no NUL, no encoded '/',
 * no climbing above the root); files open through a per-shard cache with
 * openat2(RESOLVE_BENEATH) on the root (the directory --root names, looked
 * up again each second: a deploy that switches it is served, check_root): nothing outside it is reachable by
 * "..", encoding or a symlink. A path ending in '/' serves its index.html;
 * without one, the directory is a 403 like anything that is not a regular
 * file (no listings), and a missing directory a 404.
 *
 * Timeouts (a per-shard tick): a request head must arrive whole within
 * --header-timeout seconds of its first byte (slowloris), and a new
 * connection's first byte within as long of its accept; a keep-alive
 * connection with no request for --keepalive-timeout seconds is closed, and
 * so is one whose body answer moves no byte (the peer acknowledges none)
 * for as long, or whose answers, queued or in its socket, stay
 * unacknowledged for as long (a client that does not read: send_timeouts).
 * Those are reset (SO_LINGER 0): a FIN queued behind bytes the peer never
 * reads never reaches it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <ringplane/engine.h>
#include <ringplane/filecache.h>
#include <ringplane/filesend.h>
#include <ringplane/http.h>
#include <ringplane/outq.h>
#include <ringplane/pool.h>

#include "args.h"
#include "commands.h"
#include "list.h"
#include "server.h"

#define HEAD_BUF (32u * 1024) /* > RP_HTTP_HEAD_MAX: the parser refuses before it fills */
/* rp_file_send's small_max (its default): a body up to this behind its
 * head is copied, a larger one goes zero-copy and is checked (zc_poll) */
#define SMALL_BODY (16u * 1024)
/* A body this large takes many sends, each waiting for the reader to make
 * room (POLLOUT): while every connection of a shard has bytes of one
 * still to send, its gaps end with send completions, which the idle spin
 * does not bring sooner, and the spin is held (spin_update). 64 MB bodies:
 * 18-27% more CPU per GB spinning, no more bytes (docs/net.md) */
#define BIG_BODY (1u << 20)
/* A body this large stays counted through its tail too (sconn.tail): after
 * its last byte went to the socket, while the client drains the socket's
 * buffer (MBs: milliseconds) and sends its next request, until that
 * request's first bytes, the connection's end, or TAIL_TICKS ticks. 64 MB
 * -c64: CPU per GB 0.86x main's, as --idle-spin 0's 0.87x (11 rounds).
 * Measured by size (wrk -c8, 4 rounds each, against main): held from 8 MB
 * on, 8 MB lost 3% of its req/s (0.95-0.99x), from 16 MB on 16 MB lost 5%
 * (0.91-1.04x) at 1.13x CPU per GB; 32 MB held 1.06x (0.82-1.26x, 8
 * rounds). Smaller answers (1 MB: the check held through hurt keep-alive)
 * keep the rule before (docs/net.md) */
#define TAIL_BODY (32u << 20)
/* the tail's bound: released 2 to 3 ticks (0.5 to 0.75 s) after the body's
 * last byte went to the socket, whether the client went quiet or reads
 * slowly (only the spin's cost is at stake, not a byte) */
#define TAIL_TICKS 3
#define TICK_NS (250ull * 1000 * 1000)
/* The shard's short timer (ss->soon): while a connection waits for pool
 * memory to answer (mem_wait) it is tried again from 1 ms on, as the
 * relay's parked pieces are (docs/net.md "Waiting instead of cutting"), and
 * while a pipelined request waits behind the check of an unacknowledged
 * zero-copy body (zc_check) the socket's queue is read from 1 ms on,
 * instead of both waiting for the 250 ms tick; armed only while something
 * is listed. Each connection backs off (soon_gap): 1 ms while it moves (the
 * queue fell since its last look, the pool freed something since its last
 * try), doubled each look that finds it still, up to SOON_GAP_MAX; a wait
 * is not tried again while the pool's frees have not moved. At most
 * SOON_SCAN looks a pass (the oldest first; one not done goes to the back),
 * and at most SOON_SEEN listed connections passed over as not due: a look
 * at a check costs one ioctl(2). */
#define SOON_NS	  (1000ull * 1000)
#define SOON_SCAN 64u
#define SOON_SEEN 1024u
/* The tick reads every check too: a look less often than it adds nothing.
 * A client that stops reading behind a zero-copy body for 2 s costs about
 * 16 looks (1 + 1 + 2 + ... + 128 ms, then every 250 ms), not 2,000. */
#define SOON_GAP_MAX 250u /* ms */
/* A check or a wait whose peer half-closed: no event reports its reset
 * (hup_arm), the looks read it (a poll(2) more each), so they back off
 * less: a reset is seen within 32 ms, not at the tick (226 ms after it,
 * measured). A wait's try whatever the frees say comes SOON_GAP_MAX ms
 * after its last (mem_tried), not at a gap this never reaches. */
#define SOON_GAP_EOF 32u /* ms */
/* After memory went back (mem_back), a pass tries the oldest waits in
 * line until MEM_WAKE tries found none (before 14591fc, a close made
 * every listed wait the frees moved for due: up to SOON_SCAN
 * serve_request a pass under churn); a try that got its memory goes on to
 * the next: one burst of frees (many clients closing) serves every wait
 * it can, not two (the third answered at its gap's end: 206-210 ms).
 * MEM_BATCH: the waits one walk of the list lines up; a chain that got
 * through them all goes on at the next pass (1 ms on). */
#define MEM_WAKE	  2u
#define MEM_BATCH	  16u
#define ROOT_CHECK_TICKS 4u /* check_root: once a second */
#define PIPE_TRIM_TICKS 4u  /* rp_file_send_trim: once a second */
#define ACCEPT_BACKOFF_NS (100ull * 1000 * 1000)
#define POOL_MB_DEFAULT 256u /* --pool-mb: the per-shard pool */
#define POOL_MB_MIN 8u /* measured: the least that serves (docs/net.md) */
#define SERVER_NAME "ringplane"
/* Stop parsing pipelined requests with this many bytes of bodiless answers
 * queued (a head is at most 1 KB, a head with its kept body, memo_body, at
 * most 17 KB): a peer that pipelines and does not read is then held back
 * by its socket, not by our memory. */
#define HEADS_PAUSE (16u * 1024)
#define HEADS_MAX (64u * 1024) /* the queue's bound: HEADS_PAUSE + a head, with room */
/* Provided buffers one connection keeps (64 KB of 4 KB buffers): 60
 * pipelining clients that read 4 KB/s each kept all 1024 of the shard's for
 * the whole run, and no other connection could read a byte. */
#define HOLD_MAX 16u
#define SPILL_FIRST (64u * 1024)
#define SPILL_MAX RP_POOL_MAX_CLASS /* 1 MB, the pool's largest object */
#define SPILL_SHARD (64u << 20)	    /* a quarter of the shard's 256 MB pool */
/* Lingering close (conn_linger): Apache's lingering close waits 2 s for
 * each read (SECONDS_TO_LINGER); nginx bounds the whole at lingering_time
 * (30 s) and each wait at lingering_timeout (5 s). A peer that still sends
 * after its answer sends what it wrote with its request (a body, pipelined
 * requests), in one burst: 2 s without a byte means it stopped, or it
 * dribbles on purpose. 10 s in all bounds a peer that keeps sending: each
 * lingering connection holds a descriptor and its struct, and its bytes
 * are dropped as they come, so 10 s of them costs no memory. */
#define LINGER_TIMEOUT_S 2u
#define LINGER_TIME_S	 10u
/* Lingering connections an open out of descriptors ends (linger_free): a
 * file's first open takes two at once, O_PATH and then the file. */
#define LINGER_SHED 2u
/* ... looking at most at this many of the oldest, a pass (one ioctl each) */
#define LINGER_SCAN 64u
/*
 * Room in the pool kept for the connections serve has taken in
 * (pool_room): a new client is refused at accept (conn_nomem), and a
 * client not answered yet its first head buffer (head_nomem), when the
 * pool could not then still give ROOM_OBJS objects of each of the 128,
 * 256 and 512 B classes and ROOM_HEADS of the head buffer's 32 KB class.
 * Room is spans, not bytes (docs/pool.md): a class with no free object
 * needs a whole free span, and 6000 idle clients (a 512 B struct sconn
 * and a 128 B receive op each) took every span of an 8 MB pool: the next
 * head of each client already answered found no head buffer (10 of 10).
 * What one answer takes, by class (class_allocs over 20 keep-alive
 * answers each): a GET of a 1 MB file the head buffer, rp_file_send's
 * 256 B head copy and 512 B state, and a 128 B op or, a send that ended
 * at once, a 64 B message (a 128 B nop when none can be had); a HEAD two
 * 128 B ops and its head's 512 B copy on the output queue; a 404 three
 * 128 B ops (its head's copy is one); a connection's first bodiless
 * answer its output queue (256 B and 128 B, kept until it closes); kept
 * input none (its buffers are listed in the shard's held table, by
 * buffer id). A body of 16 KB or less is read into a
 * buffer of its size with the head (1 to 32 KB): those classes are not
 * kept (at 8 MB a span for one leaves none for a client): with none to
 * be had, rp_file_send sends such a body by sendfile or splice instead
 * (small_nomem). A head is parsed in its provided buffer (no pool
 * memory) unless it outgrows one (over 4 KB with what follows it) or
 * fewer than a quarter of the buffers are free (half, for a client not
 * answered yet: buffers_half): with the pool full, 64
 * answered clients' heads at once were all answered (~31 found a head
 * buffer before); ROOM_HEADS answered clients' longer heads at once are
 * sure of a head buffer (more may find none: they wait for memory,
 * MW_HEAD); 256 objects a class cover their answers (a class
 * with no span of its own is kept a whole one: 8192, 4096, 2048). The
 * cost is clients: 8 MB held 1782 idle ones besides 10 answered, and all
 * 6000 a test opened without the room (docs/http.md).
 */
#define ROOM_OBJS  256u
#define ROOM_HEADS 8u

/* The statuses serve answers, each counted on its own in the stats line
 * (the last slot: any other, which none should be). */
static const uint16_t status_codes[] = { 200, 206, 304, 400, 403, 404, 405, 414,
					 416, 431, 500, 501, 503, 505, 0 };
#define STATUS_N (sizeof(status_codes) / sizeof(status_codes[0]))

struct serve_stats {
	/* requests: heads parsed whole (those the parser refuses are in
	 * refused[] by reason, not here); status[k]: every kxx answer, the
	 * refusals' too, so requests <= the sum of status[] */
	uint64_t accepted, requests, status[6];
	/* by_status[k]: answers of status_codes[k] (the last: any other),
	 * counted where status[] is */
	uint64_t by_status[STATUS_N];
	uint64_t bytes, header_timeouts, idle_closed, send_timeouts, bad_requests, file_errors,
		resets, accept_errors, overflows;
	uint64_t drain_retries, drain_reset; /* the drain's listener (server.h) */
	uint64_t conn_nomem; /* connections closed at accept: the pool had no room */
	uint64_t send_nomem; /* answers not sent, their connection closed: the pool had
			      * no room to send them (not a reset: the peer did nothing) */
	uint64_t head_nomem; /* connections closed at a head's first byte: no head
				buffer could be had (in overflows before); an answered
				client's head that outgrew its buffer waits for one
				(mem_wait, MW_HEAD) and is counted here only when the
				wait passes --keepalive-timeout */
	uint64_t open_waits; /* drained requests whose file open found no descriptor and
				waited for one (open_wait) instead of a 503 */
	uint64_t open_wait_closed; /* ... still waiting at the drain's end (or a
				      shed_wait at a stop): closed unanswered (serve_stop) */
	uint64_t held_max;    /* most provided buffers one connection kept at once */
	uint64_t buf_out_max; /* most of the shard's provided buffers out at a receive */
	uint64_t spills;      /* spills started: kept bytes copied into a spill buffer */
	uint64_t lingered;    /* lingering closes started (FIN sent, input drained) */
	uint64_t linger_timeouts; /* lingering ended by its bound (or, quiet for a tick, to
				     free a descriptor while the accept is down), not by
				     the peer's EOF */
	uint64_t linger_shed; /* lingering ended, their answers acknowledged, for a file
				 open that found no descriptor and no cached file to
				 give back (linger_free) */
	uint64_t linger_bytes;	  /* bytes read and dropped after a last answer */
	uint64_t root_changes;	  /* --root found naming another directory (check_root) */
	/* zero-copy bodies whose file was found shorter than their range by
	 * the check after their end (zc_poll): reset by serve (SO_LINGER 0),
	 * also in short_file, not in resets (the peer did nothing) */
	uint64_t short_queued;
	/* answers (and answered clients' heads outgrowing their buffer) that
	 * found no pool memory and waited for it (mem_wait)
	 * instead of being cut, each wait once (send_nomem counts those cut:
	 * their wait past --keepalive-timeout, or a send that may have gone
	 * out in part); mem_retries: the tries again that found none either */
	uint64_t mem_waits, mem_retries;
	/* looks of the soon pass at a pending zero-copy check (one SIOCOUTQ
	 * ioctl each; the tick's checks not counted) */
	uint64_t zc_polls;
	/* passes of the short timer (soon_pass), whatever fired it */
	uint64_t soon_passes;
	/* resets of a paused check's or wait's peer its poll reported
	 * first (hup_arm; also in resets, counted there by on_hup:
	 * conn_reset) */
	uint64_t hup_resets;
	/* body bytes answered from the memo (memo_body): copies, also in
	 * the stats line's copied; counted when queued */
	uint64_t memo_bytes;
	/* bodies read for the memo and not kept: the read returned more
	 * than the key's size, or the fstat after it found another stat
	 * (the file written meanwhile: memo_body) */
	uint64_t memo_stale;
	uint64_t refused[RP_HTTP_R_COUNT];
};

#define ST_ADD(ss, f, n) __atomic_store_n(&(ss)->st.f, (ss)->st.f + (n), __ATOMIC_RELAXED)

struct sconn;

/* An answer of @status in the counters: its class and its own. */
static void count_status(struct serve_stats *st, unsigned status)
{
	size_t k = 0;

	while (k < STATUS_N - 1 && status_codes[k] != status)
		k++;
	__atomic_store_n(&st->by_status[k], st->by_status[k] + 1, __ATOMIC_RELAXED);
	if (status / 100 < 6)
		__atomic_store_n(&st->status[status / 100], st->status[status / 100] + 1,
				 __ATOMIC_RELAXED);
}

/* A received buffer kept as it came: the head buffer had no room for it.
 * Indexed by the buffer's id in the shard's table (sshard.held), so
 * keeping one takes no pool memory; a connection's are a list, oldest
 * first, linked by next. */
struct held {
	const char *p; /* its bytes not yet copied into the head buffer */
	uint32_t len;
	uint16_t next; /* the buffer kept after it (valid but for the last) */
};

/*
 * The head of a whole-file 200 answer, kept per shard for the second it
 * was written in: it is a function of the file (its entry and the stat the
 * cache holds for it: inode, size, mtime, so ETag and Last-Modified, and
 * ctime, which a write moves even when the mtime is put back), the path
 * (Content-Type), keep-alive and the Date's second, all compared on a hit.
 * A request with a condition or a range builds its head as before. At
 * 4 KB and 8 keep-alive connections building the head took about 5% of
 * serve's CPU (docs/net.md, "Measured: serve 4 KB at 8 connections").
 * A small body is kept with its head, for the same key and no longer
 * (memo_body), so a GET of it again in that second is answered from
 * memory with no read (its preadv2 was 6% of serve's samples there).
 */
#define HEAD_MEMO_N	  32
/* memo_body keeps and sends bodies only while the pool has this many
 * whole 1 MB spans free: what it takes (a body, the answer's copy, the
 * connection's output queue) then never comes out of the room pool_room
 * keeps for clients (4 spans at most). Below (and with --pool-mb under
 * 16) answers go the file's way: at 8 MB one 1 B body took the span the
 * next accept's room counted on (test_serve_pool.sh, conn_nomem). */
#define MEMO_SPANS_MIN	  16u
#define HEAD_MEMO_PATH	  96
#define HEAD_MEMO_HEAD	  384
struct head_memo {
	const struct rp_file_entry *e;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim, ctim;
	time_t date;
	bool keep_alive;
	uint16_t plen, hlen;
	/* the whole small body (up to SMALL_BODY: memo_body), read at
	 * body_ns (CLOCK_MONOTONIC) in the second this head names; pool
	 * memory, given back with the head it goes with (memo_keep), at the
	 * tick after its second (memo_trim) and for any wait for memory
	 * (memo_shed). body_tried: a read was tried for this head (once) */
	char *body;
	uint32_t blen;
	bool body_tried;
	uint64_t body_ns;
	char path[HEAD_MEMO_PATH];
	char head[HEAD_MEMO_HEAD];
};

struct sshard {
	unsigned id;
	struct rp_app_accept acc; /* the listener and its accept */
	struct rp_timer *tick; /* reserved at init: a re-arm needs no memory */
	/* reserved at init too: the poll of the connections on soon. soon_t
	 * sleeps until the first look due (soon_at, rp_app_now_ns), moved
	 * earlier (rp_timer_rearm) when one is due sooner (soon_arm) */
	struct rp_timer *soon_t;
	uint64_t soon_at;
	/* waits for memory listed; mem_back: memory went back to the pool
	 * since the last pass (mem_kick: a connection's close, a head buffer
	 * or a queued head given back, an answer's end), or a chain of
	 * wake-ups goes on, so the next one tries the oldest waits (mem_seq)
	 * the pool's frees moved for, due or not, until MEM_WAKE found none
	 * (mem_wake); the others keep their gaps */
	unsigned mem_listed;
	bool mem_back;
	uint64_t mem_seq; /* the last wait begun (sconn.mem_seq) */
	struct rp_app_list soon; /* in mem_wait, or zc_check with a request behind or last */
	struct rp_file_cache *cache;
	struct sconn *conns;
	struct held *held; /* by provided buffer id (rp_buf_count of them) */
	unsigned live; /* connections on conns (the drain's answer, the stats') */
	unsigned big;  /* of them in a body of BIG_BODY or more (sconn.big) */
	bool spin_held; /* the last rp_shard_idle_spin_hold (spin_update) */
	uint64_t now_ticks;
	uint64_t spill_bytes; /* the connections' spill buffers, at most SPILL_SHARD */
	uint64_t lingering;   /* connections lingering now */
	/* those not yet closing, oldest first: linger_free ends from the head */
	struct rp_app_list linger;
	unsigned open_waiting; /* connections in open_wait now */
	/* lingering connections linger_free ended whose close (rp_close, at
	 * their last put) has not completed: the opens parked for their
	 * descriptors are tried again once it is 0 (shed_closed) */
	unsigned shed_closing;
	/* SIGQUIT's drain began (serve_drain): no accept, every connection
	 * ends after what it has buffered is answered */
	bool draining;
	/* the root this shard's cache looks beneath: g.root, or (owned) the
	 * directory --root names now, once it was replaced (check_root) */
	int root_fd;
	bool root_owned;
	dev_t root_dev;
	ino_t root_ino;
	struct serve_stats st;
	struct head_memo memo[HEAD_MEMO_N];
	/* clients refused at accept, looked at again in the loop's next
	 * rounds before they are closed (server.h, on_accept) */
	struct rp_app_again again;
};

struct sconn {
	struct sshard *ss;
	struct sconn *prev, *next;
	int fd;
	struct rp_op *recv_op;
	/* head buffer, or NULL while no request byte is pending: the
	 * provided buffer the head arrived in, parsed where it landed
	 * (buf_recv, its id buf_bid), or a HEAD_BUF copy from the pool once
	 * the bytes outgrow it (head_grow); cap bytes */
	char *buf;
	size_t have;
	uint32_t cap;
	uint16_t buf_bid;
	bool buf_recv;
	/* bytes received while buf is full, oldest first: first the spill's
	 * [sp_off, sp_off + sp_len) of sp_cap bytes, then the provided buffers
	 * in_n buffers kept in ss->held, from in_head to in_tail. Bytes go to
	 * the spill only after every buffer kept before them */
	char *spill;
	uint32_t sp_off, sp_len, sp_cap;
	uint16_t in_head, in_tail;
	unsigned in_n;
	struct rp_http_parser p;
	struct rp_file_entry *entry; /* the file of the response in flight */
	unsigned ops;		     /* references: recv, response, the set-up */
	uint64_t head_start;	     /* tick of a pending request's first byte */
	uint64_t last_tick;	     /* tick of the last activity */
	/* Answers without a body (errors, 304, 416, HEAD) leave through q, so
	 * pipelined ones gather into one sendmsg; so does the head of a body
	 * answer that follows them, its body waiting for q to drain. q is made
	 * at the first such answer and kept until the connection goes. */
	struct rp_outq *q;
	unsigned heads_out;	     /* heads pushed on q, not yet released */
	uint64_t body_off, body_len; /* the body that waits (body_wait) */
	uint64_t acked;		     /* the peer's bytes acknowledged at the last tick */
	bool sending, closing, paused, eof, keep_alive, body_wait, q_failed, send_timed_out;
	/* a request was answered: before one, a silent connection gets
	 * --header-timeout (from its accept), after, --keepalive-timeout */
	bool answered;
	/* counted in ss->big: the answer in flight has a body of BIG_BODY or
	 * more and bytes of it are still to be handed to the socket (from
	 * respond to on_sent), or one of TAIL_BODY or more went whole and
	 * its tail is not over (tail). A smaller body's check (zc_poll) and
	 * the wait for the next request are not: the gap the spin is for */
	bool big;
	/* big through the tail of a TAIL_BODY body (its last byte with the
	 * socket since tail_tick): ends with the connection's next receive,
	 * its next answer, its close, or the tick's bound (TAIL_TICKS) */
	bool tail, tail_ok; /* tail_ok: the body in flight is >= TAIL_BODY */
	uint64_t tail_tick;
	/* the last answer (an error's, or one without keep-alive) is queued or
	 * out: nothing more is parsed or answered, input is read and dropped
	 * until the close (answered once, however the rest arrives) */
	bool last;
	bool pausing; /* the recv in flight was cancelled for a pause */
	/* draining, its request's file open found no descriptor (EMFILE,
	 * ENFILE), or a shed_wait: the request stays parsed, unanswered, and
	 * retry_opens serves it again from the drain's step and the tick (a
	 * shed_wait from shed_closed; a reference held: c->ops) */
	bool open_wait, open_waited;
	/* out of descriptors outside a drain, lingering connections were
	 * ended for its open: it waits (open_wait) for their closes to
	 * complete and is tried once more (retry_opens), then 200 or 503 */
	bool shed_wait, shed_waited;
	uint64_t wait_tick; /* tick the shed_wait began */
	bool shed; /* ended by linger_free: its close's completion is counted */
	/* the last answer is in the socket whole and its FIN behind it: input
	 * is read and dropped until the peer's EOF or the linger bound */
	bool lingering;
	uint64_t linger_start, linger_tick; /* ticks: lingering began, its last byte */
	struct rp_app_link llink; /* on ss's lingering list: lingering, not closing */
	/* the body in flight may go by sendfile(2) or splice(2): the end of
	 * its range, which the file must still reach once the socket's queue
	 * has drained (zc_poll); 0: a copied body, nothing to check */
	uint64_t zc_end;
	/* its send ended and the check is pending: c->sending, c->entry and
	 * the answer's reference stay until it ends (zc_poll) */
	bool zc_check;
	/* hup's cancel was sent (its end comes, -ECANCELED) */
	bool hup_off;
	/* its reset (or its socket's error) is counted in resets: once a
	 * connection, whichever of its receive, its poll, its send or its
	 * check saw it first (conn_reset) */
	bool reset;
	/* the peer half-closed (a poll reported POLLRDHUP; its EOF may be
	 * unread behind a paused receive): no poll can wait for its reset
	 * any more, the looks read it (SOON_GAP_EOF) */
	bool rdhup;
	/* a pending check or a wait for memory with no receive armed
	 * (paused): a poll for its reset (POLLERR|POLLHUP), holding a
	 * reference, so the reset ends the check or the wait at once
	 * (hup_arm) */
	struct rp_op *hup;
	/* waiting for pool memory (soon_pass tries again every 1 ms), nothing
	 * of the answer sent: MW_REQ, the parsed request's answer (serve_request
	 * runs again), MW_ERR an error answer (error_response of mem_status
	 * runs again: the parser's refusal is not a request to serve), both
	 * holding the wait's reference; MW_BODY, the body behind heads already
	 * sent (file_send runs again; the answer's reference); MW_HEAD, an
	 * answered client's head that outgrew its buffer with no head buffer
	 * to be had (head_wait_retry grows it again; the wait's reference) */
	uint8_t mem_wait;
	bool mem_again;	   /* the answer runs as a retry of a wait: not a new one */
	uint16_t mem_status; /* MW_ERR: the status answered */
	uint64_t mem_tick; /* tick the wait began (its bound: --keepalive-timeout) */
	uint64_t mem_seq;  /* its wait's place in line (ss->mem_seq at its start) */
	uint64_t mem_tried; /* rp_app_now_ns() of its start, or its last try that found none */
	bool on_soon;	   /* on ss->soon (slink) */
	uint16_t soon_gap; /* ms from one look of the pass to the next: 1, doubled while still */
	struct rp_app_link slink;
	uint64_t soon_due; /* rp_app_now_ns() of its next look (0: the next pass) */
	/* what its last look saw: a check's unacknowledged bytes (UINT64_MAX:
	 * none yet), a wait's pool frees (pool_frees) after its last try */
	uint64_t soon_mark;
};

enum { MW_NONE, MW_REQ, MW_ERR, MW_BODY, MW_HEAD };

/* pool_room's classes, and what a new client takes at accept (its struct
 * sconn and its receive's op) and at its first head (the head buffer) */
enum { ROOM_128, ROOM_256, ROOM_512, ROOM_HEAD, ROOM_N };
static const size_t room_size[ROOM_N] = { 128, 256, 512, HEAD_BUF };
static const size_t room_objs[ROOM_N] = { ROOM_OBJS, ROOM_OBJS, ROOM_OBJS, ROOM_HEADS };
static const size_t room_accept[ROOM_N] = { [ROOM_128] = 1, [ROOM_512] = 1 };
static const size_t room_head[ROOM_N] = { [ROOM_HEAD] = 1 };
_Static_assert(sizeof(struct sconn) > 256 && sizeof(struct sconn) <= 512,
	       "struct sconn is in pool_room's 512 B class (room_accept)");

static struct {
	int root;
	const char *root_path; /* --root as given: looked up again each second */
	dev_t root_dev;	       /* g.root's directory */
	ino_t root_ino;
	unsigned shards;
	int *lfds;
	struct sshard **ss;
	uint64_t header_ticks, idle_ticks;
	uint64_t linger_ticks, linger_idle_ticks; /* --linger-time, --linger-timeout */
	unsigned send_flags; /* --mode: RP_FILE_SEND_CACHED_SPLICE for splice */
} g;

static void conn_next(struct rp_shard *sh, struct sconn *c);
static bool conn_answer(struct rp_shard *sh, struct sconn *c);
static bool answer_after(struct rp_shard *sh, struct sconn *c);
static void arm_recv(struct rp_shard *sh, struct sconn *c);
static void on_recv(struct rp_shard *sh, void *arg, const struct rp_cqe *cq);
static void refill(struct rp_shard *sh, struct sconn *c);
static void arm_tick(struct rp_shard *sh, struct sshard *ss);
static void shed_closed(struct rp_shard *sh, void *arg, const struct rp_cqe *cq);
static void on_soon(struct rp_shard *sh, void *arg, const struct rp_cqe *cq);
static void mem_retry(struct rp_shard *sh, struct sconn *c);
static void hup_arm(struct rp_shard *sh, struct sconn *c);

/* ---- the short timer's list (ss->soon) ---- */

/*
 * Make sure the pass runs by @due (rp_app_now_ns; at least SOON_NS from
 * @now) while something is listed: nothing when soon_t comes by then,
 * else soon_t armed or moved to @due (rp_timer_rearm: reserved, so
 * neither needs memory or fails for a full SQ, engine.h). Each pass arms
 * it for the next look due.
 */
static void soon_arm(struct rp_shard *sh, struct sshard *ss, uint64_t due, uint64_t now)
{
	if (rp_app_list_empty(&ss->soon) || rp_shard_stopping(sh))
		return;
	if (due < now + SOON_NS)
		due = now + SOON_NS;
	if (rp_timer_armed(ss->soon_t) && ss->soon_at <= due)
		return; /* a pass comes by then */
	if (!rp_timer_rearm(sh, ss->soon_t, due - now, on_soon, ss))
		ss->soon_at = due;
}

/* The frees the shard's pool applied (local, and remote ones reclaimed):
 * a wait for memory is tried again only once they moved. O(classes). */
static uint64_t pool_frees(struct rp_shard *sh)
{
	struct rp_pool_stats ps;

	rp_pool_stats(rp_shard_pool(sh), &ps);
	return ps.frees;
}

/* List @c (a link in its struct: no memory taken), at the back. */
static void soon_push(struct sconn *c)
{
	c->on_soon = true;
	c->ss->mem_listed += c->mem_wait != MW_NONE; /* set before, cleared after */
	rp_app_list_push(&c->ss->soon, &c->slink);
}

/* List @c for the pass, looked at within 1 ms: something happened to it
 * (a check began or a request arrived behind it, a wait began), so its
 * back-off starts over. A wait's mark is the pool's frees now, so its
 * first try again waits for them to move. */
static void soon_add(struct rp_shard *sh, struct sconn *c)
{
	uint64_t now;

	if (c->on_soon)
		return;
	c->soon_gap = 1;
	c->soon_due = 0;
	c->soon_mark = c->mem_wait ? pool_frees(sh) : UINT64_MAX;
	soon_push(c);
	now = rp_app_now_ns();
	soon_arm(sh, c->ss, now, now);
}

static void soon_del(struct sconn *c)
{
	if (!c->on_soon)
		return;
	c->on_soon = false;
	c->ss->mem_listed -= c->mem_wait != MW_NONE;
	rp_app_list_unlink(&c->ss->soon, &c->slink);
}

/* @c, listed and backed off, is due now: it closed (conn_close), so the
 * pass ends its check or wait within 1 ms; or what it waited for came
 * (a poll's POLLRDHUP, a head grown by a receive). */
static void soon_wake(struct rp_shard *sh, struct sconn *c)
{
	uint64_t now;

	if (!c->on_soon || !c->soon_due)
		return;
	c->soon_due = 0;
	now = rp_app_now_ns();
	soon_arm(sh, c->ss, now, now);
}

/* Memory went back to @ss's pool (a close, a head buffer, a queued
 * head's copy, an answer's end): with waits listed, the next pass comes
 * within 1 ms and tries the oldest of them (soon_pass). No memory, no
 * syscall (the timer's SQE goes with the batch). */
static void mem_kick(struct rp_shard *sh, struct sshard *ss)
{
	uint64_t now;

	if (!ss->mem_listed || ss->mem_back)
		return;
	now = rp_app_now_ns();
	ss->mem_back = true;
	soon_arm(sh, ss, now, now);
}

/* ---- connection life ---- */

/*
 * True when the pool can give @take (objects by room class) and still
 * ROOM_OBJS / ROOM_HEADS of each room class after it (rp_app_room_short:
 * the free spans counted once, not once a class). Refusing, the classes'
 * caches and the remote frees go back to their spans first (a flush, at
 * most 61 objects a class) and the count is taken again: a refused accept
 * or head costs that, one that is taken five O(1) counts.
 */
static bool pool_room(struct rp_shard *sh, const size_t take[ROOM_N])
{
	size_t want[ROOM_N];

	for (unsigned k = 0; k < ROOM_N; k++)
		want[k] = room_objs[k] + take[k];
	return !rp_app_room_short(rp_shard_pool(sh), room_size, want, ROOM_N);
}

/* Give the oldest kept buffer back to the shard. */
static void unhold_first(struct rp_shard *sh, struct sconn *c)
{
	uint16_t bid = c->in_head;

	c->in_head = c->ss->held[bid].next;
	c->in_n--;
	rp_buf_put(sh, bid);
}

/* Give the head buffer back: a provided buffer parsed in place to the
 * shard's ring, a copy to the pool. */
static void head_free(struct rp_shard *sh, struct sconn *c)
{
	if (c->buf_recv) {
		rp_buf_put(sh, c->buf_bid);
	} else if (c->buf) {
		rp_pool_free(c->buf);
		mem_kick(sh, c->ss);
	}
	c->buf = NULL;
	c->buf_recv = false;
	c->cap = 0;
	c->have = 0;
}

/*
 * The bytes of the head (and what is pipelined behind it) outgrew the
 * provided buffer they are parsed in, or the small copy head_release made
 * of them: move them into a HEAD_BUF head buffer from the pool (the
 * parser's spans are offsets: the buffer may move as a whole) and give
 * the old one back. A client not answered yet leaves the head buffers
 * kept for those that were (pool_room). False when none can be had; c is
 * unchanged then.
 */
static bool head_grow(struct rp_shard *sh, struct sconn *c, size_t need)
{
	/* head_release's small copy grows to a provided buffer's size first:
	 * one byte past it took a 32 KB head buffer, 8x the 4 KB the bytes
	 * had held before the copy */
	size_t size = c->cap < rp_buf_size(sh) && need <= rp_buf_size(sh) ? rp_buf_size(sh) : HEAD_BUF;
	char *b;

	if (!c->answered && !pool_room(sh, room_head))
		return false;
	b = rp_pool_alloc(rp_shard_pool(sh), size);
	if (!b && size < HEAD_BUF) /* the room keeps head buffers, not 4 KB */
		b = rp_pool_alloc(rp_shard_pool(sh), size = HEAD_BUF);
	if (!b)
		return false;
	memcpy(b, c->buf, c->have);
	if (c->buf_recv)
		rp_buf_put(sh, c->buf_bid);
	else
		rp_pool_free(c->buf);
	c->buf = b;
	c->cap = (uint32_t)size;
	c->buf_recv = false;
	return true;
}

/* Give back every kept buffer and free the spill: input that will never be
 * parsed (after the last answer, or closing) holds nothing of the shard's
 * while a stuck send waits for its timeout. */
static void drop_input(struct rp_shard *sh, struct sconn *c)
{
	while (c->in_n)
		unhold_first(sh, c);
	if (c->spill) {
		rp_pool_free(c->spill);
		c->ss->spill_bytes -= c->sp_cap;
		c->spill = NULL;
		c->sp_off = c->sp_len = c->sp_cap = 0;
	}
}

/* The idle spin pays while a connection waits for a request or a small
 * answer (a receive or a short send ends the gap, soon); it is held while
 * every connection is in a big body, whose gaps a send completion ends
 * (BIG_BODY), or in the tail of a very big one (TAIL_BODY). One connection
 * outside one (a keep-alive client between requests beside a download, one
 * after a 1 MB answer) lets the shard spin again. */
static void spin_update(struct rp_shard *sh, struct sshard *ss)
{
	bool hold = ss->big && ss->big == ss->live;

	/* ss->spin_held is what the engine was told: the stats print it, so
	 * a missed update shows there, not a value recomputed beside it */
	if (hold != ss->spin_held) {
		ss->spin_held = hold;
		rp_shard_idle_spin_hold(sh, hold);
	}
}

static void big_set(struct rp_shard *sh, struct sconn *c, bool big)
{
	if (c->big == big)
		return;
	c->big = big;
	if (big)
		c->ss->big++;
	else
		c->ss->big--;
	spin_update(sh, c->ss);
}

/* @c's tail (sconn.tail) is over: its next request's bytes came, it closes,
 * or the tick's bound passed */
static void tail_end(struct rp_shard *sh, struct sconn *c)
{
	c->tail = false;
	big_set(sh, c, false);
}

static void conn_put(struct rp_shard *sh, struct sconn *c)
{
	struct rp_app_accept *acc;
	struct sshard *ss;

	if (--c->ops)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		c->ss->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->ss->live--;
	/* a tail ends with its connection (big otherwise is set only while an
	 * answer, which holds a reference, has body bytes to send) */
	if (c->big)
		c->ss->big--;
	c->big = c->tail = false;
	spin_update(sh, c->ss);
	if (c->lingering) {
		if (!c->closing) /* never: its receive's end closes it first */
			rp_app_list_unlink(&c->ss->linger, &c->llink);
		c->ss->lingering--;
	}
	soon_del(c); /* never listed here: a wait or a check holds a reference */
	head_free(sh, c);
	drop_input(sh, c);
	rp_outq_close(c->q); /* empty: queued heads hold a reference */
	/* rp_close: the close comes after the cancels of the ops on the fd, so
	 * no op queued on it runs on a file that gets the number next */
	if (!rp_close(sh, c->fd, c->shed ? shed_closed : NULL, c->ss)) {
		close(c->fd);
		if (c->shed)
			c->ss->shed_closing--; /* the waits try at the tick (retry_opens) */
	}
	acc = &c->ss->acc;
	ss = c->ss;
	rp_pool_free(c);
	/* its memory is back: the oldest waits are tried within 1 ms, not
	 * at the end of their gaps (up to 250 ms: 157 ms measured) */
	mem_kick(sh, ss);
	/* a descriptor and memory came back: an accept that is down and has
	 * no back-off timer coming is armed here, once the connection's
	 * memory is back in the pool the accept takes its op from */
	rp_app_accept_poke(sh, acc);
}

/* Stop: the recv (if any) ends with -ECANCELED; the socket closes at the last put. */
static void conn_close(struct rp_shard *sh, struct sconn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	if (c->tail)
		tail_end(sh, c);
	soon_wake(sh, c); /* a check or wait backed off ends in 1 ms */
	if (c->lingering) /* off ss's list of lingering connections */
		rp_app_list_unlink(&c->ss->linger, &c->llink);
	drop_input(sh, c);
	/* no pool memory needed; an SQ that stayed full: SHUT_RD ends the
	 * recv with EOF instead */
	if (c->recv_op && rp_cancel_op(sh, c->recv_op))
		(void)shutdown(c->fd, SHUT_RD);
}

/* After the last answer: read again (a pause lifted; a cancel still in
 * flight re-arms at its end), every byte to be dropped. False when no
 * receive can be had. */
static bool read_to_drop(struct rp_shard *sh, struct sconn *c)
{
	if (c->closing)
		return false;
	c->paused = false;
	if (c->recv_op || c->eof)
		return true;
	c->recv_op = rp_recv_multishot(sh, c->fd, on_recv, c);
	if (!c->recv_op)
		return false;
	c->ops++;
	return true;
}

/*
 * The last answer was handed to the kernel whole: close gracefully. A
 * close(2) with unread input sends a reset instead of a FIN, and a reset
 * makes the peer's kernel drop what it has not read of the answer (the
 * rest of a refused request, a pipelined request after `Connection:
 * close`: RFC 9112 9.6). So the FIN goes out now, behind the answer
 * (shutdown SHUT_WR), and the receive stays armed to read and drop what
 * comes (its buffers given back at once, no head buffer, no spill) until
 * the peer's EOF, an error, or the linger bound of the tick: no byte for
 * --linger-timeout, or --linger-time in all; then the close may be a reset
 * (counted in linger_timeouts). Closed at once when the peer's EOF came
 * already (nothing can be unread), when lingering is off, when the shard
 * stops, or when no receive can be had (pool empty).
 *
 * shutdown(2) runs here on the shard thread, not as IORING_OP_SHUTDOWN:
 * the kernel punts that op to io-wq (net/relay_core.c's half_close
 * measured it on the churn row); on TCP it queues the FIN, never blocks.
 */
static void conn_linger(struct rp_shard *sh, struct sconn *c)
{
	struct sshard *ss = c->ss;

	if (c->closing || c->lingering)
		return;
	c->last = true;
	drop_input(sh, c);
	head_free(sh, c);
	if (c->eof || !g.linger_ticks || rp_shard_stopping(sh) || c->q_failed ||
	    c->send_timed_out || shutdown(c->fd, SHUT_WR) || !read_to_drop(sh, c)) {
		conn_close(sh, c);
		return;
	}
	/* its queue is empty (heads_out is 0) and nothing is answered again:
	 * what lingers holds its struct and its receive, nothing more */
	rp_outq_close(c->q);
	c->q = NULL;
	c->lingering = true;
	c->linger_start = c->linger_tick = ss->now_ticks;
	rp_app_list_push(&ss->linger, &c->llink);
	ss->lingering++;
	ST_ADD(ss, lingered, 1);
}

/* ---- responses ---- */

/* Count @c's reset in resets, once: one reset reaches several of its ops,
 * a receive's error and the check it ends (body_check's poll), or a poll
 * and a receive re-armed before its end was reaped; each counted it
 * (resets +2 for a client reset behind a zero-copy body, receive armed).
 * False when it was counted already. */
static bool conn_reset(struct sconn *c)
{
	if (c->reset)
		return false;
	c->reset = true;
	ST_ADD(c->ss, resets, 1);
	return true;
}

/* The answer in flight ended: @res its bytes (counted already) or a
 * negative errno. */
static void answer_end(struct rp_shard *sh, struct sconn *c, int64_t res)
{
	c->sending = false;
	mem_kick(sh, c->ss); /* rp_file_send's state and copies are back */
	if (c->entry) {
		rp_file_cache_put(c->ss->cache, c->entry);
		c->entry = NULL;
	}
	if (res < 0) {
		if (res == -ENOMEM)
			ST_ADD(c->ss, send_nomem, 1);
		else if (res != -ESHUTDOWN && res != -ECANCELED && res != -EIO &&
			 !c->send_timed_out)
			(void)conn_reset(c);
		if (res == -EIO) {
			/* a body that cannot be completed: the file shrank under it,
			 * or a read error of the disk (both -EIO, both counted in
			 * short_file, not in resets: the peer did nothing). A reset
			 * of ours, not a FIN, so what is still queued (zeros where
			 * a truncation reached its pages) is dropped and the client
			 * cannot take the answer for whole (docs/http.md) */
			struct linger lg = { 1, 0 };

			(void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		c->keep_alive = false;
	}
	c->last_tick = c->ss->now_ticks;
	/* a head pipelined behind the answer is due --header-timeout from
	 * now, not from its arrival while the answer went out (head_release
	 * moved it out of the parsed request; conn_answer restarts it too) */
	if (c->buf && c->have)
		c->head_start = c->ss->now_ticks;
	if (!c->keep_alive && res >= 0)
		conn_linger(sh, c); /* the last answer is out whole */
	else if (!c->keep_alive || rp_shard_stopping(sh))
		conn_close(sh, c);
	else
		conn_next(sh, c);
	conn_put(sh, c);
}

/* True when @ev, what a poll of a connection's socket reported (poll(2)'s
 * revents, or a poll op's result: a negative errno when it failed), holds
 * POLLERR or POLLHUP: the peer's reset. Only for a connection with no FIN
 * of ours out (a pending check: nothing follows its body; a wait for
 * memory: no last answer went), so POLLHUP is the peer's end, not a
 * half-close of both sides. */
static bool polled_reset(int ev)
{
	return ev > 0 && (ev & (POLLERR | POLLHUP));
}

/* True when @fd polls the peer's reset now (polled_reset). One poll(2). */
static bool peer_reset(int fd)
{
	struct pollfd p = { .fd = fd, .events = 0 };

	return poll(&p, 1, 0) > 0 && polled_reset(p.revents);
}

/*
 * Is the zero-copy body of @c still safe? sendfile(2) and splice(2) leave
 * references to the file's page-cache pages in the socket, and a
 * truncation zeroes them (rp_file_send's own fstat(2), when the last byte
 * was queued, sees only a shrink before it). They are unsafe until the
 * peer acknowledged them: SIOCOUTQ counts the bytes not acknowledged,
 * sent or not (SIOCOUTQNSD only those not sent: a lost segment is sent
 * again from the same pages). Nothing follows the body in the socket
 * while the check is pending (the next answer waits, the FIN too), so 0
 * is the body acknowledged. The queue is read before the size, so a size
 * read after the queue was seen empty covers the whole body. 1: drained,
 * the file as long as the range; 0: still queued, the file as long so
 * far; -EIO: the file ends before the range did. An ioctl that fails
 * counts as drained (nothing would ever tell more).
 */
static int body_check(struct sconn *c)
{
	struct stat sb;
	int q = 0;
	bool drained = ioctl(c->fd, SIOCOUTQ, &q) || q <= 0;

	if (!fstat(c->entry->fd, &sb) && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size < c->zc_end)
		return -EIO;
	/* A reset leaves SIOCOUTQ where it was (the queue is purged, the
	 * sequence numbers stay): the count never drops, and the check would
	 * hold the connection until the send timeout */
	if (!drained && peer_reset(c->fd))
		return -ECONNRESET;
	return drained;
}

/* Stop @c's poll for a reset (its end puts its reference). The SQ
 * refusing the cancel, the tick sends it again. */
static void hup_stop(struct rp_shard *sh, struct sconn *c)
{
	if (c->hup && !c->hup_off)
		c->hup_off = rp_cancel_op(sh, c->hup) == 0;
}

/* End @c's pending check with @r (1: whole, or a negative errno). */
static void zc_finish(struct rp_shard *sh, struct sconn *c, int r)
{
	c->zc_check = false;
	c->zc_end = 0;
	soon_del(c);
	if (!c->mem_wait)
		hup_stop(sh, c);
	if (r == -EIO)
		ST_ADD(c->ss, short_queued, 1);
	answer_end(sh, c, r < 0 ? r : 0);
}

/*
 * The pending check of @c's zero-copy body (c->zc_check), from its end
 * (on_sent), each tick, and each receive of the connection (a client's
 * next request carries the acknowledgement of the body it read; after a
 * last answer the bytes it still sends, dropped, or its EOF): ended
 * when the queue drained with the file whole (the answer ends as sent:
 * the next one goes out, or after a last answer the FIN and the lingering
 * close; bounded by the send timeout, check_send), when the file shrank
 * (-EIO: reset, short_queued), or when the connection closes or the shard
 * stops. True when it ended: answer_end ran and @c may be gone (the
 * caller holds no other reference). Only connections with a check pending
 * pay its ioctl(2) and fstat(2).
 */
static bool zc_poll(struct rp_shard *sh, struct sconn *c)
{
	int r;

	if (rp_shard_stopping(sh))
		r = -ESHUTDOWN;
	else if (c->closing || c->send_timed_out || !c->entry)
		r = -ECANCELED; /* closed meanwhile (an abort counts in send_timeouts) */
	else
		r = body_check(c);
	if (!r)
		return false;
	zc_finish(sh, c, r);
	return true;
}

/* @c's wait for memory (listed or not) found its peer reset: counted in
 * resets, the connection closed and the wait ended now (mem_retry,
 * closing: unanswered, not a send_nomem). The caller holds a reference. */
static void mem_reset(struct rp_shard *sh, struct sconn *c)
{
	(void)conn_reset(c);
	c->keep_alive = false;
	conn_close(sh, c);
	soon_del(c);
	mem_retry(sh, c);
}

/* The poll of hup_arm ended: POLLERR or POLLHUP is the peer's reset (no
 * FIN of ours is out while a check is pending, body_check, or a wait:
 * peer_reset), and the check ends now (-ECONNRESET), or the wait
 * (mem_reset), instead of at the tick or the wait's bound. POLLRDHUP
 * alone: the peer half-closed, and no poll can wait for its reset any
 * more (io_uring adds POLLRDHUP to every poll): the looks read it from
 * now on, at most SOON_GAP_EOF apart (c->rdhup; made due now). A cancel
 * sent when the check or the wait ended while another began (a pipelined
 * request's answer waits for memory): armed again. */
static void on_hup(struct rp_shard *sh, void *arg, const struct rp_cqe *cq)
{
	struct sconn *c = arg;
	bool reset = polled_reset(cq->res);

	c->hup = NULL;
	c->hup_off = false;
	if (cq->res > 0 && !reset && (cq->res & POLLRDHUP)) {
		c->rdhup = true;
		soon_wake(sh, c);
	}
	/* counted here, once (conn_reset): the check's or the wait's end
	 * below, or a receive re-armed meanwhile, finds it counted */
	if (reset && !c->closing && (c->zc_check || c->mem_wait) && conn_reset(c))
		ST_ADD(c->ss, hup_resets, 1);
	if (cq->res > 0 && c->zc_check)
		(void)zc_poll(sh, c); /* not ended: the pass's looks go on */
	else if (reset && c->mem_wait && !c->closing)
		mem_reset(sh, c);
	else if (cq->res == -ECANCELED)
		hup_arm(sh, c);
	conn_put(sh, c); /* the poll's reference */
}

/*
 * A reset leaves SIOCOUTQ where it was, so the pass's bare looks never
 * see it, and a wait for memory makes no call on its socket at all; a
 * receive armed reports it (on_recv's error: zc_poll, or the wait's end),
 * but a paused connection has none: a check or a wait listed without one
 * gets a one-shot poll for POLLERR and POLLHUP (an op from the pool; none
 * to be had, the next look tries again, and the tick's check reads a
 * check's reset). Armed when it is listed, when its receive ends paused
 * (on_recv), and at its looks. Not once the peer half-closed (its EOF
 * read, or a poll's POLLRDHUP: c->rdhup): io_uring reports POLLRDHUP
 * whatever is asked, so that poll ends at once; the looks read the reset
 * there (soon_zc, soon_mem: SOON_GAP_EOF). Stopped when neither a check
 * nor a wait is left (hup_stop).
 */
static void hup_arm(struct rp_shard *sh, struct sconn *c)
{
	if (c->hup || c->recv_op || c->eof || c->rdhup || !(c->zc_check || c->mem_wait) ||
	    c->closing || rp_shard_stopping(sh))
		return;
	c->hup = rp_poll(sh, c->fd, 0, on_hup, c);
	if (c->hup)
		c->ops++;
}

/* A check still pending with a request waiting behind it (pipelined, or
 * arrived since), or of a last answer (its FIN waits behind the check):
 * its socket's queue is read every 1 ms (soon_pass), so the next answer,
 * or the close, follows within about 1 ms of the acknowledgement, not at
 * the next tick (up to 250 ms after it). A client's next request carries
 * the acknowledgement of a body it read (on_recv polls then), but one
 * that pipelined has sent its requests already, and one reading to the
 * EOF sends nothing more: only bare ACKs come, which nothing reports. A
 * keep-alive one with nothing behind it waits for the tick or its next
 * request. The check starts once the whole body is queued, so it lasts
 * about a socket buffer's drain. */
static void zc_soon(struct rp_shard *sh, struct sconn *c)
{
	size_t used = c->p.status == RP_HTTP_DONE ? c->p.req.head_len : 0;

	if (c->zc_check &&
	    (!c->keep_alive || (c->buf && c->have > used) || c->in_n || c->sp_len)) {
		soon_add(sh, c);
		hup_arm(sh, c);
	}
}

/* rp_file_send's end: @res the bytes sent or a negative errno. A body that
 * may have gone zero-copy is checked before the answer ends (zc_poll). */
static void on_sent(struct rp_shard *sh, void *arg, int64_t res)
{
	struct sconn *c = arg;

	/* every body byte is with the socket (or the send failed): what is
	 * left, the check, ends with the peer's acknowledgement or its next
	 * request, and the shard may spin for it (spin_update); after a
	 * TAIL_BODY body only once its tail is over (tail_end) */
	if (c->big && c->tail_ok && res >= 0 && !c->closing) {
		c->tail = true;
		c->tail_tick = c->ss->now_ticks;
	} else {
		big_set(sh, c, false);
	}
	if (res >= 0) {
		ST_ADD(c->ss, bytes, (uint64_t)res);
		if (c->zc_end) {
			c->zc_check = true;
			if (!zc_poll(sh, c)) /* drained already: ends here */
				zc_soon(sh, c);
			return;
		}
	}
	c->zc_end = 0;
	answer_end(sh, c, res);
}

/* The calls rp_file_send counted: it counts one once its state and its
 * header copy were had, before any byte is sent. */
static uint64_t fsend_calls(struct rp_shard *sh)
{
	struct rp_file_send_stats fs;

	rp_file_send_stats(sh, &fs);
	return fs.calls[0] + fs.calls[1] + fs.calls[2];
}

/* One step of next_state's look for a whole head in @n bytes at @p. @lead:
 * still in the CRLFs a request may follow (RP_HTTP_EMPTY_LINES_MAX), @m:
 * bytes of "\r\n\r\n" matched. True once it is found. */
static bool head_end_scan(const char *p, size_t n, bool *lead, unsigned *m)
{
	static const char end[4] = { '\r', '\n', '\r', '\n' };

	for (size_t i = 0; i < n; i++) {
		char b = p[i];

		if (*lead) {
			/* "\r\n" pairs: m counts within one (0 or 1) */
			if ((*m == 0 && b == '\r') || (*m == 1 && b == '\n')) {
				*m ^= 1;
				continue;
			}
			*lead = false;
			*m = 0;
		}
		if (b == end[*m])
			(*m)++;
		else
			*m = b == '\r';
		if (*m == 4)
			return true;
	}
	return false;
}

/* What the bytes after the request being answered hold (next_state). */
enum next_req {
	NEXT_NONE,  /* no byte: nothing pipelined */
	NEXT_PART,  /* some (a stray CRLF, part of a head): its rest still to come */
	NEXT_WHOLE, /* the whole head of the next request: answered at once */
};

/* Steps of next_state's look within @n bytes at @p, at most *@left of
 * them (taken from it). True once a whole head is found. */
static bool next_scan(const char *p, size_t n, size_t *left, bool *lead, unsigned *m)
{
	bool found;

	if (n > *left)
		n = *left;
	found = head_end_scan(p, n, lead, m);
	*left -= n;
	return found;
}

/* The bytes after the request being answered (the head buffer's rest, then
 * the spill's, then the provided buffers kept): NEXT_WHOLE when they hold
 * the whole head of the next one, answered at once: only then may this
 * answer's last segment wait for it (MSG_MORE, RP_FILE_SEND_MORE). A stray
 * CRLF or the first part of a request (its rest still on the wire, or sent
 * only once this answer is read) held a small answer corked in the socket
 * until TCP's 200 ms timer (test_serve `partial next`): NEXT_PART. Any byte
 * at all is NEXT_PART at least: a client that sent it is likely to send
 * (or be sending) more now, and what it sends is answered only after this
 * answer's body, if that went by sendfile(2), is acknowledged (zc_poll:
 * the client's delayed ACK, 40 ms and more), so file_send copies a small
 * body (RP_FILE_SEND_COPY_SMALL). The look stops at the next head's end, a
 * few dozen bytes in for a pipelining client, and after RP_HTTP_HEAD_MAX
 * bytes at most: a head not ended by then is refused (431, 414 or 400)
 * anyway, and a client that sent that many bytes of one stalled nothing
 * but itself (NEXT_PART: no MSG_MORE). */
static enum next_req next_state(const struct sconn *c)
{
	unsigned m = 0, n = c->in_n;
	uint16_t bid = c->in_head;
	size_t left = RP_HTTP_HEAD_MAX;
	/* the request answered: its head is the buffer's first bytes (as
	 * zc_soon reads them; a parser not done holds no head to skip) */
	size_t used = c->p.status == RP_HTTP_DONE ? c->p.req.head_len : 0;
	bool lead = true;

	if (!c->buf)
		return c->in_n || c->sp_len ? NEXT_PART : NEXT_NONE;
	if (c->have <= used && !c->sp_len && !c->in_n)
		return NEXT_NONE;
	if (c->have > used && next_scan(c->buf + used, c->have - used, &left, &lead, &m))
		return NEXT_WHOLE;
	if (c->sp_len && next_scan(c->spill + c->sp_off, c->sp_len, &left, &lead, &m))
		return NEXT_WHOLE;
	for (; n && left; n--) {
		const struct held *h = &c->ss->held[bid];

		if (next_scan(h->p, h->len, &left, &lead, &m))
			return NEXT_WHOLE;
		bid = h->next;
	}
	return NEXT_PART;
}

/* Start the file send of the answer in flight: @hlen bytes of @head (none
 * when its head went through q) then @len bytes of c->entry from @off.
 * Returns 0 (started, or failed and ended through on_sent), or -ENOMEM:
 * the pool had no memory for its state and nothing was sent (the caller
 * waits for memory: mem_wait). An -ENOMEM after its count moved is a body
 * that went out within the call with no message or op left to report its
 * end (filesend.h): some of it may have gone, so that one is cut. */
static int file_send(struct rp_shard *sh, struct sconn *c, const char *head, size_t hlen,
		     uint64_t off, uint64_t len)
{
	struct iovec iov = { (void *)head, hlen };
	struct rp_file_send_opts o = { .small_max = SMALL_BODY, .flags = g.send_flags };
	uint64_t nomem = rp_file_send_small_nomem(sh), calls = fsend_calls(sh);
	unsigned copy;
	int ret;

	/* the next pipelined request already waits: its answer follows at
	 * once (MSG_MORE); any byte of one: a small body is copied, not
	 * sendfile(2)'d, so that request waits for no check (zc_end below) */
	if (c->keep_alive) {
		enum next_req nx = next_state(c);

		if (nx != NEXT_NONE)
			o.flags |= RP_FILE_SEND_COPY_SMALL;
		if (nx == NEXT_WHOLE)
			o.flags |= RP_FILE_SEND_MORE;
	}
	ret = rp_file_send(sh, c->fd, &iov, hlen ? 1 : 0, c->entry ? c->entry->fd : -1, off, len,
			   &o, on_sent, c);
	/* a body that may go by sendfile(2) or splice(2) is checked after its
	 * end (zc_poll): above SMALL_BODY, one without a head and without
	 * the copy flags (a cached small body then goes by one sendfile), or
	 * a small one the pool had no
	 * buffer for (rp_file_send_small_nomem moved). A small body behind
	 * its head is read into pool memory and sent from there: a copy,
	 * which a truncation cannot reach, so no check (done() never runs
	 * inside rp_file_send, so this is set before it) */
	/* A last answer (no keep-alive) is checked the same way: its FIN
	 * waits behind the check (SIOCOUTQ would count it: nothing follows
	 * the body in the socket until the check ends) and the connection
	 * lingers only once the body is acknowledged, or is reset when the
	 * file shrank (a FIN behind a queued body let a truncation reach the
	 * client as a clean close with zeros: test_serve truncated_last).
	 * linger_free never looks at it meanwhile: it is not lingering, and
	 * its answer is not acknowledged, which that shed waits for anyway */
	/* A small body without a head but with RP_FILE_SEND_COPY_SMALL (any
	 * byte of a next request is here) is copied too (filesend.h: a
	 * RWF_NOWAIT read or the ring's read into pool memory, then a send;
	 * never sendfile), so it is not checked: the request behind it waited
	 * for the client's delayed ACK of its last segment (40 ms and more)
	 * or the tick. Before COPY_SMALL the copy came only with a whole
	 * next head (RP_FILE_SEND_MORE): behind part of one the body went by
	 * sendfile and was checked, the rest of the request answered once
	 * that check ended (test_serve `partial next behind heads` counts
	 * zero_copy) */
	copy = o.flags & (RP_FILE_SEND_COPY_SMALL | RP_FILE_SEND_MORE);
	c->zc_end = len > SMALL_BODY || (!hlen && !copy) || rp_file_send_small_nomem(sh) != nomem ?
			    off + len :
			    0;
	if (ret == -ENOMEM && fsend_calls(sh) == calls) {
		c->zc_end = 0;
		return -ENOMEM;
	}
	if (ret) {
		c->keep_alive = false;
		on_sent(sh, c, ret);
	}
	return 0;
}

/* @c's answer found no pool memory, nothing of it sent (or, MW_HEAD, its
 * next head no buffer to grow into): it waits (@kind)
 * and soon_pass tries again every 1 ms, oldest first, as the relay waits
 * (docs/net.md "Waiting instead of cutting"): a full pool holds its
 * clients' answers back a while, it does not cut them. Bounded by
 * --keepalive-timeout from the wait's start (the tick: send_nomem, for a
 * head head_nomem), so a
 * retry that finds none (mem_again) neither counts a wait nor moves the
 * bound. Reading stops meanwhile as for an answer out (on_recv). */
static void memo_shed(struct sshard *ss);

static void mem_wait_start(struct rp_shard *sh, struct sconn *c, uint8_t kind)
{
	if (kind != MW_BODY && rp_shard_stopping(sh)) {
		/* serve_stop's pass over the list ran and the timer arms no
		 * more: a wait listed now (a cancelled receive's end parsing
		 * a buffered request) held its reference, and the socket,
		 * until the exit. (MW_BODY: rp_file_send refuses first.) */
		conn_close(sh, c);
		return;
	}
	/* the memo's bodies are the pool memory least worth keeping now */
	memo_shed(c->ss);
	if (c->mem_again) {
		ST_ADD(c->ss, mem_retries, 1);
	} else {
		ST_ADD(c->ss, mem_waits, 1);
		c->mem_tick = c->ss->now_ticks;
		c->mem_seq = ++c->ss->mem_seq; /* a retry keeps its place */
	}
	c->mem_tried = rp_app_now_ns();
	c->mem_wait = kind;
	if (kind != MW_BODY)
		c->ops++; /* the wait's reference (MW_BODY: the answer's) */
	soon_add(sh, c);
	hup_arm(sh, c); /* paused: a poll reports its reset */
}

/* A queued head was sent (or dropped: q failed). The last one out starts
 * the body that waited for them, and lets parsing go on. */
static void head_released(void *arg, const void *buf, size_t len)
{
	struct sconn *c = arg;
	struct rp_shard *sh = rp_shard_self();

	rp_pool_free((void *)buf);
	mem_kick(sh, c->ss);
	if (!c->q_failed) { /* q_error runs before a failed queue drops */
		ST_ADD(c->ss, bytes, len);
		c->last_tick = c->ss->now_ticks;
	}
	if (--c->heads_out)
		return;
	if (c->body_wait) {
		c->body_wait = false;
		if (c->q_failed) /* counted in q_error */
			on_sent(sh, c, -ECANCELED);
		else if (file_send(sh, c, NULL, 0, c->body_off, c->body_len))
			mem_wait_start(sh, c, MW_BODY); /* its head is out: the body waits */
	} else if (c->mem_wait) {
		/* the request after them waits for memory (soon_pass) */
	} else if (!c->keep_alive) {
		conn_linger(sh, c); /* the last answer is out whole (q failed: closing) */
	} else {
		conn_next(sh, c);
	}
	conn_put(sh, c); /* the queued heads' reference */
}

static void q_error(struct rp_outq *q, void *arg, int err)
{
	struct sconn *c = arg;

	(void)q;
	if (err != -ECANCELED && !c->send_timed_out) /* conn_abort's shutdown: EPIPE */
		(void)conn_reset(c);
	c->q_failed = true;
	c->keep_alive = false;
	conn_close(rp_shard_self(), c);
}

/* Queue a copy of @head and @body (a memo's answer, memo_body; or
 * none) on q (made here the first time). */
static int queue_head2(struct rp_shard *sh, struct sconn *c, const char *head, size_t hlen,
		       const char *body, size_t blen)
{
	struct rp_outq_opts o = {
		/* flushed once conn_next has answered what is buffered; small
		 * writes only: never SEND_ZC */
		.flags = RP_OUTQ_MANUAL | RP_OUTQ_ZC_OFF,
		.max_bytes = HEADS_MAX,
		.on_error = q_error,
		.arg = c,
	};
	char *copy;
	int ret;

	if (c->q_failed)
		return -EPIPE;
	if (!c->q && (ret = rp_outq_init(sh, &c->q, c->fd, &o)))
		return ret;
	copy = rp_pool_alloc(rp_shard_pool(sh), hlen + blen);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, head, hlen);
	if (blen)
		memcpy(copy + hlen, body, blen);
	ret = rp_outq_push(c->q, copy, hlen + blen, head_released, c);
	if (ret) {
		rp_pool_free(copy);
		return ret;
	}
	if (c->heads_out++ == 0)
		c->ops++; /* the connection stays until its heads are out */
	return 0;
}

static int queue_head(struct rp_shard *sh, struct sconn *c, const char *head, size_t hlen)
{
	return queue_head2(sh, c, head, hlen, NULL, 0);
}

/* Answer with @head and then @len bytes of @entry's file from @off (entry
 * may be NULL). Without a body the head is queued and the caller goes on
 * with the next pipelined request; a body answer is one rp_file_send of
 * head and body (coalesced by it), unless heads are queued before it: then
 * its head joins them and its body follows once they are out. */
static int respond(struct rp_shard *sh, struct sconn *c, unsigned status, const char *head,
		   size_t hlen, struct rp_file_entry *entry, uint64_t off, uint64_t len)
{
	bool queued;
	int ret;

	if (!entry || !len) {
		if (entry)
			rp_file_cache_put(c->ss->cache, entry);
		/* a next answer ends a tail, a bodiless one too (a HEAD or 304
		 * pipelined behind the big body, read before its tail began) */
		if (c->tail)
			tail_end(sh, c);
		ret = queue_head(sh, c, head, hlen);
		if (ret == -ENOMEM)
			return ret; /* the caller waits (mem_wait) */
		if (ret) {
			c->keep_alive = false;
			conn_close(sh, c);
		} else {
			count_status(&c->ss->st, status);
		}
		return 0;
	}
	c->entry = entry;
	c->sending = true;
	c->ops++;
	c->tail = false; /* a pipelined answer after a tail's: counted anew */
	c->tail_ok = len >= TAIL_BODY;
	big_set(sh, c, len >= BIG_BODY);
	queued = c->heads_out != 0; /* its head joins them, its body waits */
	ret = queued ? queue_head(sh, c, head, hlen) : file_send(sh, c, head, hlen, off, len);
	if (ret == -ENOMEM) {
		/* nothing of it went: the caller waits and answers again (the
		 * wait's reference replaces the answer's) */
		c->entry = NULL;
		c->sending = false;
		big_set(sh, c, false);
		rp_file_cache_put(c->ss->cache, entry);
		c->ops--;
		return ret;
	}
	count_status(&c->ss->st, status);
	if (!queued)
		return 0; /* file_send ended it itself if it failed */
	if (ret) {
		c->keep_alive = false;
		on_sent(sh, c, ret);
		return 0;
	}
	c->body_wait = true;
	c->body_off = off;
	c->body_len = len;
	return 0;
}

static void error_response(struct rp_shard *sh, struct sconn *c, unsigned status)
{
	char head[512];
	struct rp_http_response r = {
		.status = status,
		.date = time(NULL),
		.server = SERVER_NAME,
		.has_content_length = true,
		.content_length = 0,
		.allow = status == 405 ? "GET, HEAD" : NULL,
		.keep_alive = c->keep_alive,
	};
	ssize_t n;

	n = rp_http_response_write(head, sizeof(head), &r);
	if (n < 0) {
		count_status(&c->ss->st, status);
		conn_close(sh, c);
		return;
	}
	if (respond(sh, c, status, head, (size_t)n, NULL, 0, 0)) {
		/* no memory for it: error_response runs again (mem_retry) */
		c->mem_status = (uint16_t)status;
		mem_wait_start(sh, c, MW_ERR);
	}
}

static unsigned open_status(int err)
{
	switch (err) {
	case -ENOENT:
	case -ENOTDIR:
	case -ENAMETOOLONG: /* a name past NAME_MAX, or an index past the
			     * cache's path limit: no such file (nginx: 404) */
		return 404;
	case -EACCES:
	case -EPERM:
	case -EXDEV:
	case -ELOOP:
		return 403;
	default:
		return 503; /* EMFILE, EBUSY, ENOMEM: try again later */
	}
}

/* True when the peer acknowledged every byte @fd sent, the FIN behind
 * them too (SIOCOUTQ: sent or not, nothing unacknowledged is queued). */
static bool all_acked(int fd)
{
	int n = 0;

	return !ioctl(fd, SIOCOUTQ, &n) && n == 0;
}

/*
 * A file's open found no descriptor (EMFILE, ENFILE) and the cache had
 * none of its own to give back (rp_file_cache_get closes the files it
 * keeps for reuse first): end up to @want lingering connections whose
 * peer has acknowledged their whole answer and the FIN behind it
 * (all_acked), oldest first, those quiet for a whole tick before any
 * other. Their answers are in their clients' receive buffers: a reset,
 * which closing one with unread input sends, can no longer take a byte
 * of them. One whose answer is still unacknowledged (a client that does
 * not read) is never ended here: its kernel would drop the unsent and
 * unacknowledged tail, a cut answer, where a 503 to the open only asks
 * its client to try again. The close is conn_close's (the receive
 * cancelled; at the last put rp_close, after the cancels, so no receive
 * still queued on the fd runs on the file the open gets next); each one
 * counts in ss->shed_closing until its close completes (shed_closed).
 * Returns how many ended (counted in linger_shed). Only out of
 * descriptors: a walk of at most LINGER_SCAN of the oldest, one ioctl
 * each that is looked at, twice.
 */
static unsigned linger_free(struct rp_shard *sh, struct sshard *ss, unsigned want)
{
	unsigned n = 0;

	for (int any = 0; any < 2 && n < want; any++) {
		unsigned seen = 0;

		for (struct rp_app_link *l = ss->linger.first, *next;
		     l && n < want && seen < LINGER_SCAN; l = next, seen++) {
			struct sconn *c = rp_app_list_entry(l, struct sconn, llink);
			/* now_ticks moved on since a byte of the tick before:
			 * quiet for a whole tick is > 1 (the tick's rule); the
			 * second pass looks at the others */
			bool quiet = ss->now_ticks - c->linger_tick > 1;

			next = l->next;
			if (quiet == (bool)any || !all_acked(c->fd))
				continue;
			conn_close(sh, c); /* off the list; its receive cancelled */
			c->shed = true;
			ss->shed_closing++;
			n++;
		}
	}
	ST_ADD(ss, linger_shed, n);
	return n;
}

/* rp_file_cache_get (which closes the files the cache keeps first); out
 * of descriptors with none of those to give back, the pipes the shard
 * keeps (rp_file_send_shed), and the get once more. A kept pipe goes
 * before a lingering connection: it costs a pipe2 later, an ended
 * lingering connection its client's late bytes. The lingering
 * connections' descriptors come after, in serve_request (linger_free):
 * their closes complete after the open would be tried again here. */
static int cache_get(struct rp_shard *sh, struct sshard *ss, const char *path, size_t len,
		     struct rp_file_entry **e)
{
	int ret = rp_file_cache_get(ss->cache, path, len, e);

	if ((ret == -EMFILE || ret == -ENFILE) && rp_file_send_shed(sh))
		ret = rp_file_cache_get(ss->cache, path, len, e);
	return ret;
}

static struct head_memo *memo_slot(struct sshard *ss, const struct rp_file_entry *e)
{
	return &ss->memo[((uintptr_t)e / 64u) % HEAD_MEMO_N];
}

/* The head kept for @e's whole-file 200 answer at @path, @keep_alive, in
 * the second @date, or NULL. */
static struct head_memo *memo_find(struct sshard *ss, const struct rp_file_entry *e,
				   const char *path, size_t plen, bool keep_alive, time_t date)
{
	struct head_memo *m = memo_slot(ss, e);

	if (m->e != e || !m->hlen || m->date != date || m->keep_alive != keep_alive ||
	    m->plen != plen || m->size != e->st.st_size || m->ino != e->st.st_ino ||
	    m->dev != e->st.st_dev || m->mtim.tv_sec != e->st.st_mtim.tv_sec ||
	    m->mtim.tv_nsec != e->st.st_mtim.tv_nsec || m->ctim.tv_sec != e->st.st_ctim.tv_sec ||
	    m->ctim.tv_nsec != e->st.st_ctim.tv_nsec || memcmp(m->path, path, plen))
		return NULL;
	return m;
}

/* @st (an fstat after the body's read) is the file @m's key names: the
 * same inode, size, mtime and ctime. */
static bool memo_same(const struct head_memo *m, const struct stat *st)
{
	return st->st_dev == m->dev && st->st_ino == m->ino && st->st_size == m->size &&
	       st->st_mtim.tv_sec == m->mtim.tv_sec && st->st_mtim.tv_nsec == m->mtim.tv_nsec &&
	       st->st_ctim.tv_sec == m->ctim.tv_sec && st->st_ctim.tv_nsec == m->ctim.tv_nsec;
}

static void memo_body_drop(struct head_memo *m)
{
	rp_pool_free(m->body);
	m->body = NULL;
	m->blen = 0;
}

/* Every body kept, given back: a wait for memory began (mem_wait_start),
 * so the pool is short, and the memo is worth less than an answer. */
static void memo_shed(struct sshard *ss)
{
	for (unsigned i = 0; i < HEAD_MEMO_N; i++)
		memo_body_drop(&ss->memo[i]);
}

/* The bodies of past seconds, given back (the tick): a hit needs the
 * second it was read in, so they are dead weight in the pool. */
static void memo_trim(struct sshard *ss)
{
	time_t now = time(NULL);

	for (unsigned i = 0; i < HEAD_MEMO_N; i++)
		if (ss->memo[i].body && ss->memo[i].date != now)
			memo_body_drop(&ss->memo[i]);
}

/* The slot now keeping @head, or NULL (too long to keep: the slot keeps
 * what it held). Its body, if any, stays when it is this file's in this
 * second (the same entry and key: only the head's Connection differs, a
 * keep-alive client beside one that closes, each of which would else read
 * it again), and goes otherwise: another file's or version's. */
static struct head_memo *memo_keep(struct sshard *ss, const struct rp_file_entry *e,
				   const char *path, size_t plen, bool keep_alive, time_t date,
				   const char *head, size_t hlen)
{
	struct head_memo *m = memo_slot(ss, e);

	if (plen > HEAD_MEMO_PATH || hlen > HEAD_MEMO_HEAD)
		return NULL;
	if (m->e != e || m->date != date || !memo_same(m, &e->st)) {
		memo_body_drop(m);
		m->body_tried = false;
	}
	m->e = e;
	m->dev = e->st.st_dev;
	m->ino = e->st.st_ino;
	m->size = e->st.st_size;
	m->mtim = e->st.st_mtim;
	m->ctim = e->st.st_ctim;
	m->date = date;
	m->keep_alive = keep_alive;
	m->plen = (uint16_t)plen;
	m->hlen = (uint16_t)hlen;
	memcpy(m->path, path, plen);
	memcpy(m->head, head, hlen);
	return m;
}

/* Send @m's head and kept body on @c's socket now, as file_send's small
 * path sends a head and a body (one send, no ring round trip): only with
 * nothing queued before it (no head out, so nothing of an earlier answer
 * is still to go) and for a keep-alive answer (a last one ends through
 * the queue: answer_after, conn_linger). What the socket does not take is
 * queued (a copy of the rest; flushed by conn_next). 1 when answered
 * (all sent, or the rest queued); 0 with nothing sent: the caller queues
 * the whole answer (queue_head2), whose send reports a failed socket
 * through q_error as for any head; -1 when part went and the rest found
 * no memory: the answer is cut, its connection closed (send_nomem). */
static int memo_send_now(struct rp_shard *sh, struct sconn *c, const struct head_memo *m)
{
	struct iovec v[2] = { { (void *)m->head, m->hlen }, { m->body, m->blen } };
	struct msghdr mh = { .msg_iov = v, .msg_iovlen = 2 };
	size_t all = (size_t)m->hlen + m->blen, sent;
	unsigned more = 0;
	ssize_t n;

	if (c->heads_out || !c->keep_alive || c->q_failed || (c->q && rp_outq_pending(c->q)))
		return 0;
	/* the next pipelined request already waits: its answer follows at
	 * once (as file_send's RP_FILE_SEND_MORE) */
	if (next_state(c) == NEXT_WHOLE)
		more = MSG_MORE;
	do
		n = sendmsg(c->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL | more);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return 0; /* EAGAIN: all queued; an error: the queue's send reports it */
	sent = (size_t)n;
	ST_ADD(c->ss, bytes, sent);
	c->last_tick = c->ss->now_ticks;
	if (sent < all) {
		/* a full socket: the rest waits in the queue (its copy), and
		 * what follows queues behind it. No memory for it: the bytes
		 * already went, so the connection cannot answer on */
		size_t hrest = sent < m->hlen ? m->hlen - sent : 0;
		size_t boff = sent > m->hlen ? sent - m->hlen : 0;

		if (queue_head2(sh, c, m->head + (m->hlen - hrest), hrest, m->body + boff,
				m->blen - boff)) {
			ST_ADD(c->ss, send_nomem, 1);
			c->keep_alive = false;
			conn_close(sh, c);
			return -1;
		}
	}
	return 1;
}

/*
 * Answer @c's GET of @e (@len bytes, whole) with @m's head and the body
 * kept with it (one send from the memo, memo_send_now, or one copy into
 * the pool queued as a bodiless answer is; no read, no file send): true
 * when answered that way (@e given back). No body kept yet: read once
 * for this head, and only where the small path would read it itself (a
 * head of its own, not behind queued ones, which go by sendfile), by a
 * RWF_NOWAIT read that fails rather than wait for the disk (on tmpfs,
 * which takes no RWF_NOWAIT, a plain one: rp_file_read_nowait). False (nothing sent): the
 * caller answers as before.
 *
 * Staleness: the bytes serve only the head they were read for, whose key
 * is the Date second and the cache's stat (inode, size, mtime, ctime),
 * and at most 1 s after the read began (CLOCK_MONOTONIC: a wall clock set
 * back reaches the same second again). They are kept only when they are
 * that stat's bytes: the read asks one byte more than the key's size and
 * must return the size exactly (a file grown or shrunk is not kept), and
 * an fstat after the read must still be the key (a write that came
 * before or during the read moved mtime and ctime; one taken before the
 * read would miss a write between the two). Otherwise the request is
 * answered the file's way and nothing is kept. A file rewritten in place
 * is read fresh in the next second, or once the cache's check (0.5 s)
 * saw its new stat: within the 1 s filecache.h promises. The memo is
 * bounded: HEAD_MEMO_N bodies of at most SMALL_BODY, 512 KB of the
 * shard's pool.
 */
static bool memo_body(struct rp_shard *sh, struct sconn *c, struct head_memo *m,
		      struct rp_file_entry *e, uint64_t len)
{
	uint64_t now = rp_app_now_ns();
	int ret, sn;

	if (rp_pool_spans_free(rp_shard_pool(sh), 0) < MEMO_SPANS_MIN) {
		/* a pool short of spans: a body (or the answer's copy, or the
		 * connection's first queue) could take the one another
		 * answer or an accept then waits for (test_serve_pool.sh: an
		 * answer waited for good); the memory back, the file's way */
		memo_body_drop(m);
		return false;
	}
	if (m->body && now - m->body_ns >= 1000000000ull)
		memo_body_drop(m); /* the clock went back: a second of its own again */
	if (!m->body) {
		char past; /* the byte after the key's size: there must be none */
		struct iovec v[2];
		struct stat st;
		ssize_t n;

		if (m->body_tried || c->heads_out || !len || len > SMALL_BODY ||
		    len != (uint64_t)m->size)
			return false;
		m->body_tried = true;
		m->body = rp_pool_alloc(rp_shard_pool(sh), (size_t)len);
		if (!m->body)
			return false;
		v[0].iov_base = m->body;
		v[0].iov_len = (size_t)len;
		v[1].iov_base = &past;
		v[1].iov_len = 1;
		m->body_ns = now; /* before the read: its age bound holds from there */
		/* RWF_NOWAIT, or on tmpfs (which refuses it; its pages are
		 * memory) a plain read: once a second a file at most */
		n = rp_file_read_nowait(e->fd, v, 2, 0);
		/* not (all) cached, shorter or longer than the key says, or
		 * written since the stat the head was made from (the key):
		 * as before, nothing kept */
		if (n != (ssize_t)len || fstat(e->fd, &st) || !memo_same(m, &st)) {
			if (n >= (ssize_t)len) /* not for a miss (-EAGAIN) or a short read */
				ST_ADD(c->ss, memo_stale, 1);
			memo_body_drop(m);
			return false;
		}
		m->blen = (uint32_t)len;
	}
	if (m->blen != len)
		return false; /* the key holds the size: never, but no wrong answer */
	sn = memo_send_now(sh, c, m);
	if (sn < 0) { /* cut and closed (send_nomem): not a 200 */
		rp_file_cache_put(c->ss->cache, e);
		return true;
	}
	if (sn > 0) {
		ret = 0;
	} else {
		ret = queue_head2(sh, c, m->head, m->hlen, m->body, m->blen);
		if (ret == -ENOMEM)
			return false; /* the file's way, which waits for memory if it must */
	}
	rp_file_cache_put(c->ss->cache, e);
	if (ret) {
		c->keep_alive = false;
		conn_close(sh, c);
	} else {
		count_status(&c->ss->st, 200);
		ST_ADD(c->ss, memo_bytes, m->blen);
	}
	return true;
}

static void serve_request(struct rp_shard *sh, struct sconn *c)
{
	const struct rp_http_request *q = &c->p.req;
	char path[RP_FILE_CACHE_PATH_MAX + 16], etag[RP_HTTP_ETAG_MAX], head[1024];
	struct rp_http_response r = { .date = time(NULL), .server = SERVER_NAME };
	struct rp_file_entry *e = NULL;
	uint64_t first = 0, len;
	ssize_t plen, n;
	bool memo;
	int ret;

	c->answered = true;
	c->keep_alive = q->keep_alive;
	/* draining: every answer says Connection: close and is the last (as
	 * nginx's graceful stop does); what was pipelined behind it is dropped
	 * for the client to retry (RFC 9112 9.3.2). Answering all that is
	 * buffered let a client that keeps its pipeline full, a new request
	 * for each answer, hold the drain to its timeout and be cut there */
	if (c->ss->draining)
		c->keep_alive = false;
	plen = rp_http_path_decode(rp_http_span_ptr(c->buf, q->target), q->target.len, path,
				   sizeof(path) - 16, NULL);
	if (plen < 0) {
		ST_ADD(c->ss, bad_requests, 1);
		c->keep_alive = false;
		error_response(sh, c, plen == -ENOSPC ? 414 : plen == -EPERM ? 403 : 400);
		return;
	}
	if (path[plen - 1] == '/') {
		memcpy(path + plen, "index.html", 11);
		plen += 10;
		ret = cache_get(sh, c->ss, path, (size_t)plen, &e);
		if (ret == -ENOENT) {
			/* no index.html: a directory that exists is not a file
			 * to serve (403, as for "/dir"; no listings), one that
			 * does not is 404 (its lookup opens it O_PATH only) */
			struct rp_file_entry *d;
			int dr = cache_get(sh, c->ss, path, (size_t)plen - 10, &d);

			rp_file_cache_put(c->ss->cache, dr ? NULL : d);
			ret = dr ? dr : ret;
		}
	} else {
		ret = cache_get(sh, c->ss, path, (size_t)plen, &e);
	}
	c->shed_wait = false;
	if ((ret == -EMFILE || ret == -ENFILE) && !rp_shard_stopping(sh) && !c->ss->draining &&
	    !c->shed_waited &&
	    (linger_free(sh, c->ss, LINGER_SHED) || c->ss->shed_closing)) {
		/* lingering connections were ended for it (or still close
		 * for another's): it waits for their closes to complete, once
		 * (shed_closed; the tick's retry_opens if one is lost), and is
		 * served again: 200, or still none, 503 */
		c->shed_wait = c->shed_waited = true;
		c->wait_tick = c->ss->now_ticks;
		c->open_wait = true;
		c->ops++;
		c->ss->open_waiting++;
		return;
	}
	if ((ret == -EMFILE || ret == -ENFILE) && c->ss->draining && !rp_shard_stopping(sh)) {
		/* the lingering connections' descriptors, as above: the tick's
		 * retry or a close's completion tries it again */
		(void)linger_free(sh, c->ss, LINGER_SHED);
		/* a client the drain took in cannot try again later: the port
		 * refuses it. Its request waits for a descriptor, which the
		 * drain's other clients give back as they end (the spares the
		 * drain's accept counts on are the process's, and several
		 * connections' first opens, on this shard or another, can need
		 * them at once); bounded by --drain-timeout */
		if (!c->open_waited)
			ST_ADD(c->ss, open_waits, 1);
		c->open_wait = c->open_waited = true;
		c->ops++;
		c->ss->open_waiting++;
		return;
	}
	if (ret) {
		ST_ADD(c->ss, file_errors, 1);
		error_response(sh, c, open_status(ret));
		return;
	}
	len = (uint64_t)e->st.st_size;
	/* no condition, no range: a whole-file 200, whose head may be kept */
	memo = !q->has_if_none_match && !q->has_if_modified_since && !q->has_range;
	if (memo) {
		struct head_memo *m = memo_find(c->ss, e, path, (size_t)plen, c->keep_alive, r.date);

		if (m) {
			if (q->method != RP_HTTP_METHOD_HEAD && memo_body(sh, c, m, e, len))
				return;
			if (respond(sh, c, 200, m->head, m->hlen, e, 0,
				    q->method == RP_HTTP_METHOD_HEAD ? 0 : len))
				mem_wait_start(sh, c, MW_REQ);
			return;
		}
	}
	if (rp_http_etag_make(etag, sizeof(etag), len, e->st.st_mtim.tv_sec,
			      e->st.st_mtim.tv_nsec) < 0)
		etag[0] = 0;
	r.etag = etag[0] ? etag : NULL;
	r.has_last_modified = true;
	r.last_modified = e->st.st_mtim.tv_sec;
	r.accept_ranges = true;
	r.keep_alive = c->keep_alive;
	r.content_type = rp_http_mime_type(path, (size_t)plen);
	if ((q->has_if_none_match &&
	     rp_http_etag_match(rp_http_span_ptr(c->buf, q->if_none_match), q->if_none_match.len,
				etag, strlen(etag)) == 1) ||
	    (!q->has_if_none_match && q->has_if_modified_since &&
	     rp_http_not_modified_since(rp_http_span_ptr(c->buf, q->if_modified_since),
					q->if_modified_since.len, e->st.st_mtim.tv_sec) == 1)) {
		r.status = 304;
		r.content_type = NULL;
		len = 0;
	} else {
		int rr = q->has_range ? rp_http_range_parse(rp_http_span_ptr(c->buf, q->range),
							    q->range.len, len, &first, &r.range_last) :
					RP_HTTP_RANGE_IGNORE;

		/* If-Range not matching: the Range is ignored, the whole file sent */
		if (rr != RP_HTTP_RANGE_IGNORE && q->has_if_range &&
		    rp_http_if_range(rp_http_span_ptr(c->buf, q->if_range), q->if_range.len, etag,
				     strlen(etag)) != 1)
			rr = RP_HTTP_RANGE_IGNORE;

		r.has_content_length = true;
		if (rr == RP_HTTP_RANGE_OK) {
			r.status = 206;
			r.content_range = RP_HTTP_CONTENT_RANGE_BYTES;
			r.range_first = first;
			r.range_size = len;
			len = r.range_last - first + 1;
		} else if (rr == RP_HTTP_RANGE_UNSATISFIABLE) {
			r.status = 416;
			r.content_range = RP_HTTP_CONTENT_RANGE_UNSATISFIED;
			r.range_size = len;
			r.content_type = NULL;
			len = 0;
		} else {
			r.status = 200;
		}
		r.content_length = len;
	}
	n = rp_http_response_write(head, sizeof(head), &r);
	if (n < 0) {
		rp_file_cache_put(c->ss->cache, e);
		c->keep_alive = false;
		error_response(sh, c, 500);
		return;
	}
	if (memo && r.status == 200) {
		struct head_memo *m = memo_keep(c->ss, e, path, (size_t)plen, c->keep_alive,
						r.date, head, (size_t)n);

		if (m && q->method != RP_HTTP_METHOD_HEAD && memo_body(sh, c, m, e, len))
			return;
	}
	if (q->method == RP_HTTP_METHOD_HEAD)
		len = 0;
	if (respond(sh, c, r.status, head, (size_t)n, e, first, len))
		mem_wait_start(sh, c, MW_REQ); /* serve_request runs again (mem_retry) */
}

/*
 * A body answer's send started (rp_file_send: its head is a copy) for a
 * head parsed in the provided buffer it arrived in: nothing reads the head
 * again, so the buffer goes back now, not after the send, which lasts as
 * long as the client takes to read the body and, zero-copy, to
 * acknowledge it (zc_poll). A head alone in it: the buffer goes (800 slow
 * readers of a 30 MB file held 768 of 1024 for the whole transfer; now
 * 0). Bytes pipelined behind the head: they are copied into a pool
 * object of their size (its class: room to append what still comes, and
 * head_grow when more must fit), which is the head buffer from then on,
 * and the buffer goes too; with no memory for the copy the buffer stays,
 * as before (16 pipelining clients behind 1 MB answers held 16 buffers
 * until their clients had read them; test_serve behind). Kept input
 * behind it (in_n, sp_len) keeps the buffer: refill copies it in once
 * the answer is out. Never while open_wait (retry_opens parses its spans
 * again), never for a last answer (answer_after gives the buffer back).
 * One copy a received buffer at most: a pool copy is never copied again.
 */
static void head_release(struct rp_shard *sh, struct sconn *c)
{
	size_t used = c->p.req.head_len, rest;
	char *b;

	if (!c->sending || c->closing || c->open_wait || c->mem_wait || !c->keep_alive || !c->buf_recv ||
	    c->in_n || c->sp_len)
		return;
	rest = c->have - used;
	if (!rest) {
		head_free(sh, c);
		rp_http_parser_init(&c->p);
		return;
	}
	/* The whole class is used (appended to up to cap): ask for it, as
	 * only the size asked for is ours (pool.h, rp_pool_alloc). */
	size_t cap = rp_pool_class_size(rest);

	b = cap ? rp_pool_alloc(rp_shard_pool(sh), cap) : NULL;
	if (!b)
		return;
	memcpy(b, c->buf + used, rest);
	rp_buf_put(sh, c->buf_bid);
	c->buf = b;
	c->cap = (uint32_t)cap;
	c->buf_recv = false;
	c->have = rest;
	rp_http_parser_init(&c->p);
}

/* Parse what is buffered and answer it: requests without a body answer one
 * after another (queued on q, sent together), up to one with a body or
 * HEADS_PAUSE queued bytes; then wait for more bytes or for the send. */
static void conn_next(struct rp_shard *sh, struct sconn *c)
{
	while (conn_answer(sh, c))
		;
	if (c->q && !c->q_failed)
		rp_outq_flush(c->q); /* errors come through q_error */
}

/* Answer one buffered request; false when there is nothing more to do now. */
static bool conn_answer(struct rp_shard *sh, struct sconn *c)
{
	int st;

	if (c->sending || c->closing || c->last || c->open_wait || c->mem_wait)
		return false;
	if (c->buf && c->p.status == RP_HTTP_DONE) {
		/* drop the request just answered; keep what follows it */
		size_t used = c->p.req.head_len;

		memmove(c->buf, c->buf + used, c->have - used);
		c->have -= used;
		rp_http_parser_init(&c->p);
		if (c->have)
			c->head_start = c->ss->now_ticks;
	}
	if (c->buf)
		refill(sh, c);
	if (c->buf && !c->have)
		head_free(sh, c); /* idle: no buffer held */
	if (c->paused && !c->eof && !c->in_n && !c->sp_len) {
		c->paused = false;
		arm_recv(sh, c);
	}
	if (!c->buf) {
		if (c->eof && !c->heads_out)
			conn_close(sh, c);
		else if (c->ss->draining && !c->heads_out && !c->body_wait)
			conn_linger(sh, c); /* drained: idle now, its answers are out */
		return false;
	}
	if (c->q && rp_outq_pending(c->q) >= HEADS_PAUSE)
		return false; /* the last head's release goes on */
	st = rp_http_parse(&c->p, c->buf, c->have);
	if (st == RP_HTTP_MORE && c->cap < HEAD_BUF && c->have == c->cap) {
		/* a head longer than the provided buffer (or head_release's
		 * copy) it is parsed in, or kept bytes behind it: on in a head
		 * buffer, or none to be had (a wait for memory; head_nomem for
		 * a client not answered yet) */
		if (!head_grow(sh, c, (size_t)c->cap + 1)) {
			if (c->answered) {
				/* a keep-alive client's next head (its provided
				 * buffer or head_release's copy outgrown) waits
				 * for memory as an answer does; a client not
				 * answered yet is refused (pool_room) */
				mem_wait_start(sh, c, MW_HEAD);
				return false;
			}
			ST_ADD(c->ss, head_nomem, 1);
			conn_close(sh, c);
			return false;
		}
		return true; /* refilled and parsed on from where it stopped */
	}
	if (st == RP_HTTP_DONE) {
		ST_ADD(c->ss, requests, 1);
		c->shed_waited = false; /* a new request: its open may wait once */
		serve_request(sh, c);
		head_release(sh, c); /* its provided buffer back while the body goes */
	} else if (st == RP_HTTP_ERROR) {
		ST_ADD(c->ss, refused[c->p.reason], 1);
		c->keep_alive = false;
		error_response(sh, c, c->p.http_status);
	} else {
		if (c->eof && !c->heads_out)
			conn_close(sh, c); /* a request cut short by the peer's EOF */
		return false;
	}
	return answer_after(sh, c);
}

/* After a request's answer was queued or started: the last one (no
 * keep-alive) drops what follows. True when the next may be answered. */
static bool answer_after(struct rp_shard *sh, struct sconn *c)
{
	if (c->open_wait || c->mem_wait == MW_REQ || c->mem_wait == MW_ERR)
		return false; /* not answered yet: retry_opens, soon_pass */
	if (!c->keep_alive) {
		c->last = true;
		drop_input(sh, c); /* never parsed: the buffers go back now */
		/* and the head's: nothing parses it again (its answer's head
		 * is a copy), the bytes behind it are dropped */
		head_free(sh, c);
		if (!c->sending && !c->heads_out)
			conn_close(sh, c); /* answered for the last time (a queue error) */
		else
			/* what still comes is dropped as it arrives: a client
			 * that writes the rest of its request before it reads
			 * is not held back while its answer goes out (without
			 * a receive now, conn_linger tries again) */
			(void)read_to_drop(sh, c);
	}
	return c->keep_alive;
}

/* ---- receiving ---- */

/* Fewer than a quarter of the shard's provided buffers free (the low-water
 * mark apps/cmd_echo.c pauses at): what connections keep then goes to their
 * spill buffers, so three quarters at most are ever kept and the rest stay
 * for the receives of every other connection. */
static bool buffers_short(struct rp_shard *sh)
{
	unsigned n = rp_buf_count(sh);

	return n - rp_buf_out(sh) < n / 4;
}

/* Fewer than half of the shard's provided buffers free: the mark for what
 * only some clients take, so that it never reaches the quarter the
 * answered clients' in-place heads need: buffers kept beyond HOLD_MAX
 * (keep()'s no-spill path), and first heads parsed in place (a client
 * not answered yet: slowloris). At the quarter mark, 10 pipelining clients
 * that do not read took 762 of 1024 buffers, and 13 of 64 answered
 * clients' next heads were refused (head_nomem; apps/test_serve_pool.sh). */
static bool buffers_half(struct rp_shard *sh)
{
	unsigned n = rp_buf_count(sh);

	return n - rp_buf_out(sh) < n / 2;
}

/* Keep @cq's buffer behind c's kept ones (in the shard's table: no pool
 * memory). */
static void hold(struct sconn *c, const struct rp_cqe *cq)
{
	struct sshard *ss = c->ss;

	ss->held[cq->bid] = (struct held){ cq->buf, (uint32_t)cq->res, 0 };
	if (c->in_n)
		ss->held[c->in_tail].next = cq->bid;
	else
		c->in_head = cq->bid;
	c->in_tail = cq->bid;
	c->in_n++;
	if (c->in_n > c->ss->st.held_max)
		ST_ADD(c->ss, held_max, c->in_n - c->ss->st.held_max);
}

/* Append @len bytes to c's spill (made, or grown by doubling, from the
 * pool up to SPILL_MAX, within the shard's SPILL_SHARD). False: no room. */
static bool spill_add(struct rp_shard *sh, struct sconn *c, const char *p, size_t len)
{
	struct sshard *ss = c->ss;

	if (c->sp_off + c->sp_len + len > c->sp_cap) {
		if (c->sp_len + len <= c->sp_cap) { /* room at the front: move down */
			memmove(c->spill, c->spill + c->sp_off, c->sp_len);
		} else {
			size_t cap = c->sp_cap ? c->sp_cap : SPILL_FIRST;
			char *sp;

			while (cap < c->sp_len + len)
				cap *= 2;
			if (cap > SPILL_MAX || ss->spill_bytes - c->sp_cap + cap > SPILL_SHARD ||
			    !(sp = rp_pool_alloc(rp_shard_pool(sh), cap)))
				return false;
			if (c->sp_len)
				memcpy(sp, c->spill + c->sp_off, c->sp_len);
			if (!c->spill) /* a spill starts */
				ST_ADD(ss, spills, 1);
			rp_pool_free(c->spill);
			ss->spill_bytes = ss->spill_bytes - c->sp_cap + cap;
			c->spill = sp;
			c->sp_cap = (uint32_t)cap;
		}
		c->sp_off = 0;
	}
	memcpy(c->spill + c->sp_off + c->sp_len, p, len);
	c->sp_len += (uint32_t)len;
	return true;
}

/*
 * Keep @cq's bytes behind what is kept: in its provided buffer (*@kept)
 * while the connection keeps fewer than HOLD_MAX, nothing is spilled and
 * the shard has buffers to spare; else the kept buffers are copied into
 * the spill and given back, then @cq's bytes follow them. When the pool
 * has no memory for the spill, the buffers stay kept instead, up to the
 * spill's bound (SPILL_MAX a connection) while half of the shard's are
 * free (buffers_half: the last quarter is the in-place heads'): a full pool does not cut pipelined requests the provided
 * buffers can hold (10 clients' 24 pipelined 7 KB heads at --pool-mb 8
 * were 230 of 240 cut: docs/http.md). False: no room in either.
 */
static bool keep(struct rp_shard *sh, struct sconn *c, const struct rp_cqe *cq, bool *kept)
{
	if (!c->sp_len && c->in_n < HOLD_MAX && !buffers_short(sh)) {
		hold(c, cq);
		*kept = true;
		return true;
	}
	while (c->in_n) {
		struct held *h = &c->ss->held[c->in_head];

		if (!spill_add(sh, c, h->p, h->len))
			goto no_spill;
		unhold_first(sh, c);
	}
	if (spill_add(sh, c, cq->buf, (size_t)cq->res))
		return true;
no_spill:
	/* in order all the same: the spill's bytes, then the buffers' */
	if (c->sp_len + (size_t)(c->in_n + 1) * rp_buf_size(sh) > SPILL_MAX || buffers_half(sh))
		return false;
	hold(c, cq);
	*kept = true;
	return true;
}

/* Copy kept bytes into the head buffer while it has room, in order (the
 * spill's, then the buffers'); each buffer emptied goes back to the shard,
 * the spill and the array when empty. */
static void refill(struct rp_shard *sh, struct sconn *c)
{
	if (c->sp_len && c->have < c->cap) {
		size_t n = c->sp_len < c->cap - c->have ? c->sp_len : c->cap - c->have;

		memcpy(c->buf + c->have, c->spill + c->sp_off, n);
		c->have += n;
		c->sp_off += (uint32_t)n;
		c->sp_len -= (uint32_t)n;
	}
	while (c->in_n && c->have < c->cap) {
		struct held *h = &c->ss->held[c->in_head];
		size_t n = h->len < c->cap - c->have ? h->len : c->cap - c->have;

		memcpy(c->buf + c->have, h->p, n);
		c->have += n;
		h->p += n;
		h->len -= (uint32_t)n;
		if (!h->len)
			unhold_first(sh, c);
	}
	if (!c->sp_len && c->spill) {
		rp_pool_free(c->spill);
		c->ss->spill_bytes -= c->sp_cap;
		c->spill = NULL;
		c->sp_off = c->sp_cap = 0;
	}
}

static void on_recv(struct rp_shard *sh, void *arg, const struct rp_cqe *cq)
{
	struct sconn *c = arg;

	if (!rp_timer_armed(c->ss->tick) && !rp_shard_stopping(sh))
		arm_tick(sh, c->ss);
	/* its next request's bytes (or its EOF, an error): the tail is over */
	if (c->tail)
		tail_end(sh, c);

	if (cq->res > 0 && c->last) {
		rp_buf_put(sh, cq->bid); /* after the last answer: dropped */
		ST_ADD(c->ss, linger_bytes, (uint64_t)cq->res);
		if (c->lingering)
			c->linger_tick = c->ss->now_ticks;
	} else if (cq->res > 0) {
		uint64_t out = rp_buf_out(sh); /* @cq's buffer with them */
		bool kept = false;

		if (out > c->ss->st.buf_out_max)
			ST_ADD(c->ss, buf_out_max, out - c->ss->st.buf_out_max);
		if (!c->closing && !c->buf) {
			c->have = 0;
			c->head_start = c->ss->now_ticks;
			if (c->answered ? !buffers_short(sh) : !buffers_half(sh)) {
				/* parsed where it landed: a head that fits a
				 * provided buffer takes no pool memory, so an
				 * answered client's next head is never refused
				 * for a full pool (64 at once were, past ~31:
				 * docs/http.md). A client not answered yet
				 * only while half the ring is free: 900
				 * slowloris clients' 1-byte first heads held
				 * 768 of 1024 until --header-timeout, and
				 * in-place heads and kept input stopped for
				 * everyone; now 512 */
				c->buf = cq->buf;
				c->cap = rp_buf_size(sh);
				c->buf_bid = cq->bid;
				c->buf_recv = true;
				c->have = (size_t)cq->res;
				kept = true;
			} else if (c->answered || pool_room(sh, room_head)) {
				/* a client not answered yet leaves the head
				 * buffers kept for those that were (pool_room):
				 * a burst of new clients' first heads took them
				 * all before */
				c->buf = rp_pool_alloc(rp_shard_pool(sh), HEAD_BUF);
				c->cap = c->buf ? HEAD_BUF : 0;
			}
		}
		/* more than the provided buffer holds: on in a head buffer
		 * (none to be had: kept behind it, conn_answer decides) */
		if (!kept && !c->closing && c->buf && c->cap < HEAD_BUF && !c->in_n && !c->sp_len &&
		    c->have + (size_t)cq->res > c->cap && head_grow(sh, c, c->have + (size_t)cq->res) &&
		    c->mem_wait == MW_HEAD) {
			/* grown: its wait ends at the next pass, not at its
			 * gap's end, tried whether the pool's frees moved or
			 * not (a provided buffer given back is not a free) */
			c->soon_mark = UINT64_MAX;
			soon_wake(sh, c);
		}
		if (kept) {
			/* the head buffer itself */
		} else if (!c->closing && c->buf && !c->in_n && !c->sp_len &&
			   c->have + (size_t)cq->res <= c->cap) {
			memcpy(c->buf + c->have, cq->buf, (size_t)cq->res);
			c->have += (size_t)cq->res;
		} else if (!c->closing && c->buf && keep(sh, c, cq, &kept)) {
			refill(sh, c); /* behind the others; what fits goes in now */
		} else if (!c->closing && !c->buf) {
			/* no head buffer: never drop bytes silently */
			ST_ADD(c->ss, head_nomem, 1);
			conn_close(sh, c);
		} else if (!c->closing) {
			/* kept bytes past the spill's bound (or the pool
			 * empty): never drop bytes silently */
			ST_ADD(c->ss, overflows, 1);
			conn_close(sh, c);
		}
		if (!kept)
			rp_buf_put(sh, cq->bid);
		c->last_tick = c->ss->now_ticks;
		/* bytes kept, or half full (of its cap: HEAD_BUF / 2 never
		 * fired for a 4 KB in-place head) while a response is out:
		 * stop reading until they are answered (no pool memory needed).
		 * With the SQ full it keeps reading: what it keeps is bounded
		 * all the same (HOLD_MAX buffers, then SPILL_MAX, then an
		 * overflow). */
		if (c->buf && c->recv_op && !c->paused &&
		    (c->in_n || c->sp_len ||
		     (c->have >= c->cap / 2 && (c->sending || c->heads_out || c->mem_wait)))) {
			c->paused = rp_cancel_op(sh, c->recv_op) == 0;
			c->pausing = c->paused;
		}
		conn_next(sh, c);
	}
	/* a request (or the EOF) after a body it read whole: the peer's
	 * acknowledgement came with it, the check can end now */
	if (c->zc_check && !zc_poll(sh, c)) /* our reference is held until below */
		zc_soon(sh, c);
	if (cq->flags & RP_CQE_MORE)
		return;
	c->recv_op = NULL;
	if (cq->res > 0 || (cq->res == -ECANCELED && c->pausing)) {
		/* ended by our pause (or with data, by the kernel): not an
		 * EOF. Resumed before its cancel landed: read again now */
		c->pausing = false;
		if (!c->paused)
			arm_recv(sh, c);
	} else {
		if (cq->res < 0 && cq->res != -ECANCELED)
			(void)conn_reset(c);
		c->eof = true;
		c->paused = false;
		if (c->lingering)
			conn_close(sh, c); /* the peer's EOF (or an error) ends it */
		else if (c->mem_wait && cq->res < 0 && cq->res != -ECANCELED)
			conn_close(sh, c); /* a reset: the wait's next pass ends it
					    * (not a send_nomem; a half-close
					    * still reads, and waits on) */
		else if (!c->sending && !c->heads_out)
			conn_next(sh, c); /* answers what is whole, then closes */
	}
	/* a check or a wait listed while its receive was still armed (its
	 * cancel in flight): paused now, a poll reports its reset */
	hup_arm(sh, c);
	conn_put(sh, c);
}

static void arm_recv(struct rp_shard *sh, struct sconn *c)
{
	if (c->recv_op || c->closing || c->eof)
		return;
	c->recv_op = rp_recv_multishot(sh, c->fd, on_recv, c);
	if (c->recv_op)
		c->ops++;
	else
		conn_close(sh, c);
}

/* ---- timeouts ---- */

/* The bytes the peer has acknowledged on @fd (TCP_INFO's tcpi_bytes_acked,
 * Linux 4.1; glibc's struct tcp_info stops before it), or false. */
struct tcp_info_acked {
	struct tcp_info ti;
	uint64_t pacing_rate, max_pacing_rate, bytes_acked;
};

static bool peer_acked(int fd, uint64_t *acked)
{
	struct tcp_info_acked t;
	socklen_t len = sizeof(t);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &t, &len) ||
	    len < offsetof(struct tcp_info_acked, bytes_acked) + sizeof(t.bytes_acked))
		return false;
	*acked = t.bytes_acked;
	return true;
}

/* Bytes in @fd's send queue the peer has not acknowledged (SIOCOUTQ). */
static int unacked(int fd)
{
	int n = 0;

	return ioctl(fd, SIOCOUTQ, &n) ? 0 : n;
}

/* The peer's reading stalled: true once no byte of @c's output has been
 * acknowledged for the keep-alive timeout. An acknowledgement seen moves
 * c->last_tick on. Without TCP_INFO's count the send queue stands in
 * (SIOCOUTQ): it moves only when the peer acknowledges, or when a send fills
 * room an acknowledgement freed; neither readable, nothing moves and the
 * peer counts as stalled (a deaf one is never kept for good). */
static bool ack_stalled(struct sshard *ss, struct sconn *c)
{
	uint64_t acked;

	if (!peer_acked(c->fd, &acked))
		acked = (uint64_t)unacked(c->fd);
	if (acked != c->acked) {
		c->acked = acked;
		c->last_tick = ss->now_ticks;
		return false;
	}
	return ss->now_ticks - c->last_tick > g.idle_ticks;
}

/* Abort @c, whose peer does not read: SO_LINGER 0 makes the close a reset,
 * so the bytes stuck in the socket are dropped and the peer sees the end (a
 * graceful close queues its FIN behind them, where a peer that never reads
 * never finds it). SHUT_RDWR ends a send in flight where it stands (EPIPE,
 * or the cancelled poll). */
static void conn_abort(struct rp_shard *sh, struct sshard *ss, struct sconn *c)
{
	struct linger lg = { 1, 0 };

	ST_ADD(ss, send_timeouts, 1);
	c->send_timed_out = true;
	c->keep_alive = false;
	conn_close(sh, c);
	(void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	(void)shutdown(c->fd, SHUT_RDWR);
	(void)rp_cancel_fd_op(sh, c->fd);
}

/* A body answer in flight: the tick of its last byte acknowledged moves on;
 * none for the keep-alive timeout and the peer does not read (a client that
 * half-closed and never reads kept its send waiting until it left): the
 * connection is aborted. */
static void check_send(struct rp_shard *sh, struct sshard *ss, struct sconn *c)
{
	if (ack_stalled(ss, c))
		conn_abort(sh, ss, c);
}

/*
 * --root names a directory by path; a deploy that renames a new tree over
 * it, or switches the symlink it names, replaces that directory. Each
 * second the shard looks the path up again (one stat(2), off the request
 * path) and, when it names another directory, opens that one and makes it
 * its cache's root (rp_file_cache_set_root: what was cached is dropped;
 * answers in flight finish from the files they hold), as nginx, which
 * resolves its root per request, sees such a deploy. A path that names
 * nothing (the old tree moved away, the new one not yet in place) leaves
 * the shard on the directory it has: it keeps serving, never a gap of
 * 404s. Each shard switches on its own within a second of the others.
 */
static void check_root(struct sshard *ss)
{
	struct stat st;
	int fd;

	if (stat(g.root_path, &st) || !S_ISDIR(st.st_mode) ||
	    (st.st_dev == ss->root_dev && st.st_ino == ss->root_ino))
		return;
	fd = open(g.root_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	/* what was opened, not what was looked up (it may have moved on) */
	if (fd < 0 || fstat(fd, &st) ||
	    (st.st_dev == ss->root_dev && st.st_ino == ss->root_ino) ||
	    rp_file_cache_set_root(ss->cache, fd)) {
		if (fd >= 0)
			close(fd);
		return;
	}
	if (ss->root_owned)
		close(ss->root_fd);
	ss->root_fd = fd;
	ss->root_owned = true;
	ss->root_dev = st.st_dev;
	ss->root_ino = st.st_ino;
	ST_ADD(ss, root_changes, 1);
}

/*
 * The drain's requests waiting for a descriptor (open_wait), served again:
 * from the drain's step (every RP_APP_DRAIN_POLL_MS) and the tick, before
 * a held listener takes in more, so what the drain took in is served
 * first. Each is tried once; one that still finds none waits again. One
 * that was closed meanwhile (a reset, the peer gone) lets go. Bounded by
 * --drain-timeout: the stop lets go of the rest (serve_stop).
 */
static void retry_open(struct rp_shard *sh, struct sconn *c)
{
	if (!c->closing && !rp_shard_stopping(sh)) {
		serve_request(sh, c);
		(void)answer_after(sh, c);
		conn_next(sh, c);
	}
	conn_put(sh, c); /* the wait's reference */
}

/* Take every connection of @ss off its wait for a descriptor, each handed
 * to @fn with the wait's reference (which @fn puts); with @hold_sheds, not
 * a shed_wait while the closes it waits for are pending (less than 2
 * ticks: after that one is taken as lost). */
static void open_waits_take(struct rp_shard *sh, struct sshard *ss,
			    void (*fn)(struct rp_shard *, struct sconn *), bool hold_sheds)
{
	for (struct sconn *c = ss->conns, *next; c && ss->open_waiting; c = next) {
		next = c->next;
		if (!c->open_wait || (hold_sheds && c->shed_wait && ss->shed_closing &&
				      ss->now_ticks - c->wait_tick < 2))
			continue;
		c->open_wait = false;
		ss->open_waiting--;
		fn(sh, c);
	}
}

/* The drain's end: a request still waiting for a descriptor is closed
 * unanswered (its request was read whole: a FIN, its client sees EOF). */
static void close_waiter(struct rp_shard *sh, struct sconn *c)
{
	ST_ADD(c->ss, open_wait_closed, 1);
	conn_close(sh, c);
	conn_put(sh, c);
}

/* The waits for a descriptor tried again (retry_open): the drain's each
 * time; a shed_wait once the closes of the lingering connections ended
 * for it completed (shed_closed), or, one of them lost, 2 ticks on. */
static void retry_opens(struct rp_shard *sh, struct sshard *ss)
{
	open_waits_take(sh, ss, retry_open, true);
}

/* The close of a lingering connection linger_free ended completed
 * (rp_close's callback, at conn_put): its descriptor is free, and the
 * socket too (its receive ended before the close ran). Once every such
 * close completed, the opens waiting for them are tried again. */
static void shed_closed(struct rp_shard *sh, void *arg, const struct rp_cqe *cq)
{
	struct sshard *ss = arg;

	(void)cq;
	if (!--ss->shed_closing && ss->open_waiting && !rp_shard_stopping(sh))
		retry_opens(sh, ss);
}

/* An answered client's head that outgrew its buffer waited for a larger
 * one (MW_HEAD): grown now (or already, by a receive meanwhile), parsing
 * goes on where it stopped; still none, it waits on (mem_again: one wait). */
static void head_wait_retry(struct rp_shard *sh, struct sconn *c)
{
	if (c->buf && c->cap < HEAD_BUF && c->have == c->cap &&
	    !head_grow(sh, c, (size_t)c->cap + 1)) {
		mem_wait_start(sh, c, MW_HEAD);
		return;
	}
	c->mem_again = false; /* a wait of its request's answer is a new one */
	conn_next(sh, c);
}

/* @c's wait for memory ends: its answer is tried again the way it was
 * first made (MW_REQ: the request, parsed as it was, served again; MW_ERR:
 * the error answer of mem_status; MW_BODY: the body behind its head;
 * MW_HEAD: the head's growth, head_wait_retry), unless it closed
 * meanwhile (the tick's bound: send_nomem, head_nomem) or the shard
 * stops. Still no memory: it waits on (mem_again: one wait, counted once). */
static void mem_retry(struct rp_shard *sh, struct sconn *c)
{
	uint8_t kind = c->mem_wait;
	bool end = c->closing || rp_shard_stopping(sh);

	c->mem_wait = MW_NONE;
	c->mem_again = !end;
	if (kind == MW_BODY) {
		/* its wait holds the answer's reference only, which on_sent
		 * (here, or from file_send's failure) may drop as the last:
		 * held across, c->mem_again was written to a freed conn */
		c->ops++;
		if (end)
			on_sent(sh, c, -ECANCELED);
		else if (file_send(sh, c, NULL, 0, c->body_off, c->body_len))
			mem_wait_start(sh, c, MW_BODY);
		c->mem_again = false;
		if (!c->mem_wait && !c->zc_check)
			hup_stop(sh, c);
		conn_put(sh, c);
		return;
	}
	if (end) {
		conn_close(sh, c);
	} else if (kind == MW_HEAD) {
		head_wait_retry(sh, c);
	} else {
		if (kind == MW_ERR)
			error_response(sh, c, c->mem_status);
		else
			serve_request(sh, c);
		if (kind == MW_REQ)
			head_release(sh, c); /* as conn_answer: the buffer back while the body goes */
		c->mem_again = false; /* the next request's wait is a new one */
		(void)answer_after(sh, c);
		conn_next(sh, c); /* the next request, or the queue's flush */
	}
	c->mem_again = false;
	if (!c->mem_wait && !c->zc_check)
		hup_stop(sh, c); /* no wait left (nor a check): its poll ends */
	conn_put(sh, c); /* the wait's reference */
}

/* The next look at @c, listed again: @gap ms on (its gap doubled for the
 * look after, up to SOON_GAP_MAX). Returns when it is due. */
static uint64_t soon_later(struct sconn *c, uint64_t now, unsigned gap)
{
	/* a check or a wait whose peer half-closed: its looks read a reset
	 * too (no poll can wait for it: hup_arm) */
	unsigned max = c->eof || c->rdhup ? SOON_GAP_EOF : SOON_GAP_MAX;

	if (gap > max)
		gap = max;
	c->soon_due = now + gap * SOON_NS;
	c->soon_gap = (uint16_t)(gap * 2 < max ? gap * 2 : max);
	if (!c->on_soon)
		soon_push(c);
	return c->soon_due;
}

/* A look of the pass at @c's wait for memory (off the list; @frees the
 * pool's now): tried again (mem_retry) only once the pool freed something
 * since its last try, or at the longest gap or SOON_GAP_MAX ms after its
 * last try (mem_tried), whichever comes first; either way, still waiting, its
 * gap doubles (a pool that frees and fills again in turn is not tried each
 * ms either). Returns when its next look is due (UINT64_MAX: not listed
 * any more). */
static uint64_t soon_mem(struct rp_shard *sh, struct sconn *c, uint64_t now, uint64_t frees)
{
	unsigned gap = c->soon_gap;
	uint64_t due = UINT64_MAX;

	/* its peer half-closed: no poll reports a reset (hup_arm), the look
	 * reads it */
	if (!c->closing && (c->eof || c->rdhup) && peer_reset(c->fd)) {
		c->ops++;
		mem_reset(sh, c);
		conn_put(sh, c);
		return UINT64_MAX;
	}
	/* nothing came back: not tried (but at the longest gap, or
	 * SOON_GAP_MAX ms after its last try, in case what it waits for came
	 * back without a free the pool counts: a wait whose peer half-closed
	 * keeps its gap at SOON_GAP_EOF, so only the time tries it) */
	if (!c->closing && !rp_shard_stopping(sh) && c->soon_mark == frees && gap < SOON_GAP_MAX &&
	    now < c->mem_tried + SOON_GAP_MAX * SOON_NS) {
		hup_arm(sh, c); /* none yet (no op to be had, or its receive just paused) */
		return soon_later(c, now, gap);
	}
	c->ops++; /* mem_retry may put the last of the others */
	mem_retry(sh, c);
	if (c->on_soon && c->mem_wait) {
		/* waits on (listed again by mem_wait_start, as new): its
		 * back-off goes on from what this try left of the pool */
		c->soon_mark = pool_frees(sh);
		due = soon_later(c, now, gap);
	}
	hup_arm(sh, c);
	conn_put(sh, c);
	return due;
}

/* A look of the pass at @c's pending zero-copy check (off the list): one
 * ioctl(2) reads the socket's queue; drained (or the connection closing,
 * its fd maybe gone), the whole check (zc_poll) ends it and the next
 * answer goes. Still queued: looked at again in 1 ms when the queue fell
 * since the last look (the peer reads), or its gap doubled when it did
 * not. Returns when its next look is due (UINT64_MAX: not listed). */
static uint64_t soon_zc(struct rp_shard *sh, struct sconn *c, uint64_t now)
{
	int q = 0;

	if (!c->closing) {
		ST_ADD(c->ss, zc_polls, 1);
		q = unacked(c->fd);
	}
	if (q <= 0) {
		if (zc_poll(sh, c))
			return UINT64_MAX;
		q = 1; /* acknowledged, yet not ended: the next pass */
	}
	if ((uint64_t)q < c->soon_mark) {
		c->soon_mark = (uint64_t)q;
		return soon_later(c, now, 1);
	}
	/* the peer's EOF read: no receive and no poll can report a reset (a
	 * poll ends at once: io_uring always asks for POLLRDHUP), so the look
	 * reads it (zc_poll: body_check's poll(2)), at least each
	 * SOON_GAP_EOF; otherwise a poll for it (its receive may have paused
	 * since the check was listed) */
	if ((c->eof || c->rdhup) && zc_poll(sh, c))
		return UINT64_MAX;
	hup_arm(sh, c);
	return soon_later(c, now, c->soon_gap);
}

/*
 * After memory went back (mem_back): up to MEM_BATCH waits listed that
 * the pool's @frees moved for (their last try was before a free), not due
 * anyway (the pass's loop tries those) and not closing, into @wake in
 * the order they began (smallest mem_seq first); how many. One walk of
 * the list, at most its first SOON_SEEN entries: the list is in the order of the
 * last looks, not of age, so with more listed than that these are the
 * oldest of the first SOON_SEEN, not of all (the others are tried at
 * their gaps, at most SOON_GAP_MAX).
 */
struct mem_woken {
	uint64_t seq;
	struct sconn *c;
};

static unsigned mem_oldest(struct sshard *ss, uint64_t frees, uint64_t now,
			   struct mem_woken wake[MEM_BATCH])
{
	unsigned n = 0, seen = 0;

	for (struct rp_app_link *l = ss->soon.first; l && seen < SOON_SEEN; l = l->next, seen++) {
		struct sconn *c = rp_app_list_entry(l, struct sconn, slink);
		unsigned i;

		if (!c->mem_wait || c->soon_mark == frees || c->soon_due <= now || c->closing)
			continue;
		if (n == MEM_BATCH && c->mem_seq >= wake[n - 1].seq)
			continue;
		i = n < MEM_BATCH ? n++ : n - 1; /* in order, the youngest out */
		for (; i && wake[i - 1].seq > c->mem_seq; i--)
			wake[i] = wake[i - 1];
		wake[i] = (struct mem_woken){ c->mem_seq, c };
	}
	return n;
}

/*
 * The wake-up after memory went back: mem_oldest's waits tried in the
 * order they began (soon_mem, as if due), until MEM_WAKE of them found
 * none (the pool has nothing for the next either, likely: the rest keep
 * their gaps). A try that got its memory (answered, grown, or closed)
 * goes on to the next, so a burst of frees serves as many waits as it
 * can, each try bounded by a failure count, not by a fixed number; got
 * through every one lined up, mem_back is set again for the next pass.
 * Each held (ops) across the tries: one's try never frees another, but
 * the reference makes that a rule of this function, not of the others.
 * Returns the earliest look due of those tried (UINT64_MAX: none).
 */
static uint64_t mem_wake(struct rp_shard *sh, struct sshard *ss, uint64_t now, uint64_t frees)
{
	struct mem_woken wake[MEM_BATCH];
	uint64_t next = UINT64_MAX;
	unsigned n = mem_oldest(ss, frees, now, wake), failed = 0, i;

	for (i = 0; i < n; i++)
		wake[i].c->ops++;
	for (i = 0; i < n && failed < MEM_WAKE; i++) {
		struct sconn *c = wake[i].c;
		uint64_t due;

		/* an earlier try's answer may have changed it (never, today) */
		if (!c->on_soon || c->mem_wait == MW_NONE || c->mem_seq != wake[i].seq || c->closing)
			continue;
		soon_del(c);
		due = soon_mem(sh, c, now, frees);
		if (due < next)
			next = due;
		/* still the same wait (a retry keeps its mem_seq): none found.
		 * One whose peer half-closed (its EOF read, or a poll's
		 * POLLRDHUP) is tried in its turn, so frees under steady
		 * pressure do not all go to younger live waits, but its failure
		 * does not end the wake-up before a live one behind it is
		 * tried (it is looked at within SOON_GAP_EOF anyway) */
		if (c->mem_wait != MW_NONE && c->mem_seq == wake[i].seq && !c->eof && !c->rdhup)
			failed++;
	}
	if (i == n && n == MEM_BATCH && failed < MEM_WAKE && ss->mem_listed) {
		ss->mem_back = true; /* all got theirs: the next ones at the next pass */
		next = now;
	}
	for (i = 0; i < n; i++)
		conn_put(sh, wake[i].c);
	return next;
}

/*
 * The pass over ss->soon: after memory went back (mem_back), the oldest
 * waits the pool's frees moved for first (mem_wake: FIFO, until MEM_WAKE
 * find none; a close made every such wait due before 14591fc); then,
 * oldest first in list order, those due are looked at, at most SOON_SCAN
 * a pass (soon_mem, soon_zc), those not due passed over (at most
 * SOON_SEEN), each listed again at the back. Off the list before each
 * look, so what it calls may list it again; what another's retry ends or
 * lists meanwhile changes nothing but the pass's length. Returns when the
 * next pass is due: the first look due of those it saw, now when some
 * were left unseen (or the wake-up goes on).
 */
static uint64_t soon_pass(struct rp_shard *sh, struct sshard *ss, uint64_t now)
{
	/* the pool's frees once a pass (O(classes)), when a wait is listed */
	uint64_t next = UINT64_MAX, frees = ss->mem_listed ? pool_frees(sh) : 0;
	struct rp_app_link *end;
	unsigned looks = 0, seen = 0;
	bool at_end;

	if (ss->mem_back) {
		ss->mem_back = false; /* set again by a free during the tries */
		next = mem_wake(sh, ss, now, frees);
	}
	end = ss->soon.last; /* what is listed again comes after (the woken too) */
	at_end = !end;
	while (!at_end && !rp_app_list_empty(&ss->soon)) {
		struct sconn *c = rp_app_list_entry(ss->soon.first, struct sconn, slink);
		uint64_t due;

		if (looks == SOON_SCAN || seen == SOON_SEEN)
			return now; /* the rest at the next pass */
		at_end = &c->slink == end;
		soon_del(c);
		seen++;
		if (c->soon_due > now && !c->closing) {
			soon_push(c); /* not due: to the back as it was */
			due = c->soon_due;
		} else if (c->mem_wait) {
			looks++;
			due = soon_mem(sh, c, now, frees);
		} else if (c->zc_check) {
			looks++;
			due = soon_zc(sh, c, now);
		} else {
			continue; /* never: both end off the list */
		}
		if (due < next)
			next = due;
	}
	return next;
}

static void on_soon(struct rp_shard *sh, void *arg, const struct rp_cqe *cq)
{
	struct sshard *ss = arg;
	uint64_t now, next;

	(void)cq;
	if (rp_shard_stopping(sh))
		return; /* serve_stop ends what is listed */
	now = rp_app_now_ns();
	ST_ADD(ss, soon_passes, 1);
	next = soon_pass(sh, ss, now);
	if (next != UINT64_MAX)
		soon_arm(sh, ss, next, now);
}

static void on_tick(struct rp_shard *sh, void *arg, const struct rp_cqe *cq)
{
	struct sshard *ss = arg;
	bool accept_down;

	(void)cq;
	if (rp_shard_stopping(sh))
		return;
	ss->now_ticks++;
	if (ss->now_ticks % ROOT_CHECK_TICKS == 0)
		check_root(ss);
	if (ss->now_ticks % PIPE_TRIM_TICKS == 0)
		(void)rp_file_send_trim(sh); /* counted in pipes_trimmed */
	memo_trim(ss);
	retry_opens(sh, ss); /* before the poke: what was taken in first */
	/* read before the poke: a poke re-arms an accept whose back-off timer
	 * failed, and its EMFILE comes back only after the next submit */
	accept_down = ss->acc.down;
	rp_app_accept_poke(sh, &ss->acc);
	for (struct sconn *c = ss->conns, *next; c; c = next) {
		next = c->next;
		/* a tail bounded: a client gone quiet, or one draining its
		 * socket slowly, lets the shard spin again */
		if (c->tail && ss->now_ticks - c->tail_tick >= TAIL_TICKS)
			tail_end(sh, c);
		if (c->hup && !c->zc_check && !c->mem_wait)
			hup_stop(sh, c); /* its cancel the SQ refused: again */
		if (c->lingering) {
			/* no byte for --linger-timeout, --linger-time in all,
			 * or the accept down (EMFILE, memory short: what
			 * lingers has its last answer in the kernel whole,
			 * its descriptor is wanted) and
			 * no byte for a tick (one whose client's bytes still
			 * arrive keeps its answer from a reset a while more) */
			if (!c->closing &&
			    (ss->now_ticks - c->linger_tick > g.linger_idle_ticks ||
			     ss->now_ticks - c->linger_start > g.linger_ticks ||
			     /* now_ticks moved on before this check: a byte
			      * in the tick before it left linger_tick one
			      * behind, so quiet for a whole tick is > 1 */
			     (accept_down && ss->now_ticks - c->linger_tick > 1))) {
				ST_ADD(ss, linger_timeouts, 1);
				conn_close(sh, c);
			}
			continue;
		}
		if (c->open_wait)
			continue; /* its bound is the drain's */
		if (c->mem_wait) {
			/* a head waiting for a buffer to grow into is still a
			 * head that has not arrived whole: --header-timeout
			 * from its first byte (or its answer's end) holds too */
			bool head_late = c->mem_wait == MW_HEAD && c->buf && c->have &&
					 ss->now_ticks - c->head_start > g.header_ticks;

			/* no memory for its answer for the keep-alive timeout:
			 * cut after all (a body's wait too: its head is out,
			 * the client sees the answer end short) */
			if (!c->closing && (head_late || ss->now_ticks - c->mem_tick > g.idle_ticks)) {
				if (head_late)
					ST_ADD(ss, header_timeouts, 1);
				else if (c->mem_wait == MW_HEAD) /* no head buffer: no answer began */
					ST_ADD(ss, head_nomem, 1);
				else
					ST_ADD(ss, send_nomem, 1);
				c->keep_alive = false;
				conn_close(sh, c);
				soon_del(c);
				mem_retry(sh, c); /* closing: ends the wait (and may free @c) */
			}
			continue;
		}
		if (c->heads_out) {
			/* answers queued, none sent and none of the socket's
			 * bytes acknowledged for the keep-alive timeout (closing
			 * or not): the peer does not read. One still reading
			 * (a body's tail before them drains slowly) is kept.
			 * Abort: the stuck send ends, its heads come back, the
			 * last one closes */
			if (!c->q_failed && !c->send_timed_out &&
			    ss->now_ticks - c->last_tick > g.idle_ticks && ack_stalled(ss, c))
				conn_abort(sh, ss, c);
			continue;
		}
		if (c->zc_check && zc_poll(sh, c))
			continue; /* its answer ended (and @c may be gone) */
		if (c->sending && !c->send_timed_out)
			check_send(sh, ss, c); /* closing too: an overflow closes while it sends */
		if (c->closing || c->sending)
			continue;
		if (c->buf && c->have && ss->now_ticks - c->head_start > g.header_ticks) {
			ST_ADD(ss, header_timeouts, 1); /* a head that never completes */
			conn_close(sh, c);
		} else if (!c->buf && !c->answered &&
			   ss->now_ticks - c->last_tick > g.header_ticks) {
			/* connected and said nothing (a preconnect, a stalled
			 * client): the first head is due --header-timeout after
			 * the accept, as nginx's client_header_timeout; the
			 * keep-alive timeout would let it hold a drain to its
			 * end. Nothing was sent to it: a plain close */
			ST_ADD(ss, header_timeouts, 1);
			conn_close(sh, c);
		} else if (!c->buf && c->answered &&
			   ss->now_ticks - c->last_tick > g.idle_ticks) {
			/* answers unacknowledged in the socket: a graceful close
			 * queues its FIN behind them, unseen by a peer that does
			 * not read. One still acknowledging gets another timeout,
			 * one whose acknowledgements stalled is aborted */
			if (!unacked(c->fd)) {
				ST_ADD(ss, idle_closed, 1);
				conn_close(sh, c);
			} else if (ack_stalled(ss, c)) {
				conn_abort(sh, ss, c);
			}
		}
	}
	arm_tick(sh, ss);
}

/* The timeouts hang on this one timer, reserved at init so that an empty
 * pool cannot switch them off; only a full SQ the kernel keeps refusing
 * fails it (-EBUSY), and then the next accept or receive tries again. */
static void arm_tick(struct rp_shard *sh, struct sshard *ss)
{
	(void)rp_timer_arm(sh, ss->tick, TICK_NS, on_tick, ss);
}

/* ---- accepting ---- */

/* Take @fd in: its struct sconn, its receive armed. False, and @fd left
 * open, when the pool has no room for it (pool_room). */
static bool conn_take(struct rp_shard *sh, struct sshard *ss, int fd)
{
	int one = 1;
	struct sconn *c;

	/* taken in only while the pool keeps room for the connections it
	 * holds (pool_room): their next heads and answers come first */
	c = pool_room(sh, room_accept) ? rp_pool_alloc(rp_shard_pool(sh), sizeof(*c)) : NULL;
	if (!c)
		return false;
	memset(c, 0, sizeof(*c));
	c->ss = ss;
	c->fd = fd;
	c->ops = 1;
	c->last_tick = ss->now_ticks;
	rp_http_parser_init(&c->p);
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* sendfile and splice run on the shard thread: they must not block */
	(void)fcntl(c->fd, F_SETFL, O_NONBLOCK);
	c->next = ss->conns;
	if (ss->conns)
		ss->conns->prev = c;
	ss->conns = c;
	ss->live++;
	spin_update(sh, ss);
	arm_recv(sh, c);
	conn_put(sh, c);
	return true;
}

/* rp_app_again's: a refused client closed, counted */
static void accept_refused(struct rp_shard *sh, void *arg, int fd)
{
	struct sshard *ss = arg;

	(void)sh;
	close(fd);
	ST_ADD(ss, conn_nomem, 1);
}

/* rp_app_again's take: conn_take */
static bool again_take(struct rp_shard *sh, void *arg, int fd)
{
	return conn_take(sh, arg, fd);
}

static void on_accept(struct rp_shard *sh, void *arg, const struct rp_cqe *cq)
{
	struct sshard *ss = arg;
	int fd = rp_app_accepted(sh, &ss->acc, cq);

	if (fd < 0)
		return;
	ST_ADD(ss, accepted, 1);
	if (!rp_timer_armed(ss->tick))
		arm_tick(sh, ss); /* its last re-arm found the SQ full */
	if (conn_take(sh, ss, fd))
		return;
	/* No room now: again in the next round, after the messages this
	 * round posted (FIFO: an answer's end among them), before closing
	 * (rp_app_again). At --pool-mb 8 the provided buffers and the room
	 * are the whole pool, so one object of another class out for the
	 * round (an end's 64 B message) refused every accept behind it
	 * (docs/http.md, "A full pool"). */
	rp_app_again_add(sh, &ss->again, fd);
}

/* ---- shard hooks, stats ---- */

/* The accept out of descriptors (rp_app_accept's shed): the files the
 * cache keeps open for reuse go, a batch of the least recently used no
 * response holds (rp_file_cache_shed), unless connections linger: their
 * answers are in the kernel, and with the accept down the tick ends the quiet ones
 * for their descriptors as before. Shedding first handed the accept the
 * descriptor of a file its request then opened again and found none for
 * (a 503: test_accept's serve linger, 1 of 1 runs, before linger_free);
 * now that open would end lingering connections for it, so the cached
 * file closed would have bought nothing. A file's open goes the other way
 * round: the cache's files first (rp_file_cache_get), then lingering
 * connections whose answers were acknowledged (linger_free): the file it
 * opens is not one the cache holds, and a closed cached file costs an
 * open later where an ended lingering connection costs its client's late
 * bytes. Counted in the cache's shed, printed as fcache_evict_emfile.
 * With none of those, the pipes the shard keeps (rp_file_send_shed,
 * pipes_shed), lingering or not: a pipe kept for the next splice is worth
 * less than a lingering connection's descriptor. */
static unsigned serve_shed(struct rp_shard *sh, void *arg)
{
	struct sshard *ss = arg;
	unsigned n = 0;

	if (!ss->lingering)
		n = rp_file_cache_shed(ss->cache, RP_FILE_CACHE_SHED_BATCH);
	return n ? n : rp_file_send_shed(sh);
}

static void print_shard(struct rp_shard *sh, struct sshard *ss, FILE *f)
{
	struct rp_file_send_stats fs;
	struct rp_file_cache_stats cs;
	struct rp_pool_stats ps;
	uint64_t pool_live = 0; /* pool bytes held: connections, buffers, ops */
	uint64_t small_zc = rp_file_send_small_sendfile(sh);
	uint64_t memo_held = 0; /* pool bytes the memo's bodies hold (in pool_live) */
	struct rp_outq_stats qs;
	char refused[512], by_status[512];
	size_t off = 0;

	rp_file_send_stats(sh, &fs);
	/* body_bytes small holds the small bodies sent by sendfile(2) too,
	 * counted apart at each call (rp_file_send_small_sendfile): those
	 * are zero-copy, the rest of it copied */
	rp_outq_shard_stats(sh, &qs);
	rp_file_cache_stats(ss->cache, &cs);
	rp_pool_stats(rp_shard_pool(sh), &ps);
	for (unsigned k = 0; k < RP_POOL_NCLASS; k++)
		pool_live += ps.class_live_bytes[k];
	for (unsigned i = 0; i < HEAD_MEMO_N; i++)
		if (ss->memo[i].body)
			memo_held += rp_pool_class_size(ss->memo[i].blen);
	off = 0;
	for (size_t k = 0; k < STATUS_N && off < sizeof(by_status); k++) {
		if (status_codes[k])
			off += (size_t)snprintf(by_status + off, sizeof(by_status) - off, " %u=%llu",
						status_codes[k],
						(unsigned long long)ss->st.by_status[k]);
		else
			off += (size_t)snprintf(by_status + off, sizeof(by_status) - off,
						" other=%llu",
						(unsigned long long)ss->st.by_status[k]);
	}
	off = 0;
	refused[0] = 0;
	for (unsigned k = 1; k < RP_HTTP_R_COUNT; k++)
		if (ss->st.refused[k] && off < sizeof(refused))
			off += (size_t)snprintf(refused + off, sizeof(refused) - off, " %s=%llu",
						rp_http_reason_name((enum rp_http_reason)k),
						(unsigned long long)ss->st.refused[k]);
	fprintf(f,
		"shard %u: conns %llu live %u big_bodies %u spin_held %d requests %llu 2xx %llu 3xx %llu 4xx %llu 5xx %llu bytes %llu "
		"bad_requests %llu file_errors %llu header_timeouts %llu idle_closed %llu "
		"send_timeouts %llu resets %llu overflows %llu held_max %llu buf_out %u/%u buf_out_max %llu "
		"spills %llu spill_bytes %llu lingered %llu lingering %llu linger_timeouts %llu "
		"linger_shed %llu linger_bytes %llu accept_errors %llu draining %d drain_retries %llu "
		"drain_reset %llu open_waits %llu open_wait_closed %llu root_changes %llu conn_nomem %llu send_nomem %llu head_nomem %llu mem_waits %llu mem_retries %llu zc_polls %llu soon_passes %llu hup_resets %llu | send small "
		"%llu sendfile %llu splice %llu not_cached %llu "
		"shard_splice %llu pipe_short %llu small_nomem %llu to_iowq %llu pipes_kept %u pipes_shed %llu pipes_trimmed %llu waits "
		"%llu short_file %llu short_queued %llu body_bytes small %llu sendfile %llu splice %llu zero_copy %llu copied %llu memo_bytes %llu memo_held %llu memo_stale %llu | cache hits %llu "
		"misses %llu reopened %llu evicted %llu fcache_evict_emfile %llu "
		"open %u | pool_live %llu | queued heads %llu sendmsgs %llu outq_stalls %llu | refused%s | status%s\n",
		ss->id, (unsigned long long)ss->st.accepted, ss->live, ss->big, ss->spin_held,
		(unsigned long long)ss->st.requests,
		(unsigned long long)ss->st.status[2], (unsigned long long)ss->st.status[3],
		(unsigned long long)ss->st.status[4], (unsigned long long)ss->st.status[5],
		(unsigned long long)ss->st.bytes, (unsigned long long)ss->st.bad_requests,
		(unsigned long long)ss->st.file_errors, (unsigned long long)ss->st.header_timeouts,
		(unsigned long long)ss->st.idle_closed, (unsigned long long)ss->st.send_timeouts,
		(unsigned long long)ss->st.resets,
		(unsigned long long)ss->st.overflows, (unsigned long long)ss->st.held_max,
		rp_buf_out(sh), rp_buf_count(sh), (unsigned long long)ss->st.buf_out_max,
		(unsigned long long)ss->st.spills, (unsigned long long)ss->spill_bytes,
		(unsigned long long)ss->st.lingered, (unsigned long long)ss->lingering,
		(unsigned long long)ss->st.linger_timeouts, (unsigned long long)ss->st.linger_shed,
		(unsigned long long)ss->st.linger_bytes,
		(unsigned long long)ss->st.accept_errors, ss->draining,
		(unsigned long long)ss->st.drain_retries, (unsigned long long)ss->st.drain_reset,
		(unsigned long long)ss->st.open_waits, (unsigned long long)ss->st.open_wait_closed,
		(unsigned long long)ss->st.root_changes, (unsigned long long)ss->st.conn_nomem,
		(unsigned long long)ss->st.send_nomem, (unsigned long long)ss->st.head_nomem,
		(unsigned long long)ss->st.mem_waits, (unsigned long long)ss->st.mem_retries,
		(unsigned long long)ss->st.zc_polls, (unsigned long long)ss->st.soon_passes,
		(unsigned long long)ss->st.hup_resets,
		(unsigned long long)fs.calls[0], (unsigned long long)fs.calls[1],
		(unsigned long long)fs.calls[2], (unsigned long long)fs.not_cached,
		(unsigned long long)fs.shard_splice, (unsigned long long)fs.pipe_short,
		(unsigned long long)rp_file_send_small_nomem(sh),
		(unsigned long long)rp_file_send_to_iowq(sh), fs.pipes_kept, (unsigned long long)fs.pipes_shed,
		(unsigned long long)fs.pipes_trimmed,
		(unsigned long long)fs.waits,
		(unsigned long long)(fs.short_file + ss->st.short_queued),
		(unsigned long long)ss->st.short_queued,
		(unsigned long long)fs.body_bytes[0], (unsigned long long)fs.body_bytes[1],
		(unsigned long long)fs.body_bytes[2],
		(unsigned long long)(fs.body_bytes[1] + fs.body_bytes[2] + small_zc),
		(unsigned long long)(fs.body_bytes[0] - small_zc + ss->st.memo_bytes),
		(unsigned long long)ss->st.memo_bytes, (unsigned long long)memo_held,
		(unsigned long long)ss->st.memo_stale,
		(unsigned long long)cs.hits, (unsigned long long)cs.misses,
		(unsigned long long)cs.reopened, (unsigned long long)cs.evicted,
		(unsigned long long)cs.shed, cs.open_fds,
		(unsigned long long)pool_live, (unsigned long long)qs.pushes,
		(unsigned long long)qs.sendmsgs, (unsigned long long)qs.stalls,
		refused[0] ? refused : " none", by_status);
	fflush(f);
}

static void stats_msg(struct rp_shard *sh, void *arg)
{
	(void)arg;
	if (g.ss[rp_shard_id(sh)])
		print_shard(sh, g.ss[rp_shard_id(sh)], stdout);
}

static void print_stats(void *rt)
{
	rp_app_on_each_shard(rt, stats_msg);
}

static int serve_init(struct rp_shard *sh, void *arg)
{
	unsigned id = rp_shard_id(sh);
	struct sshard *ss = calloc(1, sizeof(*ss));
	int ret;

	(void)arg;
	if (!ss)
		return -ENOMEM;
	ss->id = id;
	/* the listener is the shard's from here: its stop or fini closes it */
	ss->acc = (struct rp_app_accept){ .cmd = "serve", .id = id, .lfd = g.lfds[id],
					  .backoff_ns = ACCEPT_BACKOFF_NS, .cb = on_accept, .arg = ss,
					  .shed = serve_shed,
					  .errors = &ss->st.accept_errors,
					  .spare_fds = 2, /* a file's first open: O_PATH, then the file */
					  .drain_retries = &ss->st.drain_retries,
					  .drain_reset = &ss->st.drain_reset };
	g.lfds[id] = -1;
	g.ss[id] = ss;
	/* kept buffers by id: ids run from 0 to rp_buf_count (engine/op_recv.c) */
	ss->held = calloc(rp_buf_count(sh), sizeof(*ss->held));
	if (!ss->held)
		return -ENOMEM;
	ss->root_fd = g.root;
	ss->root_dev = g.root_dev;
	ss->root_ino = g.root_ino;
	ss->cache = rp_file_cache_create(g.root, 1024, 0);
	if (!ss->cache)
		return -ENOMEM;
	ss->tick = rp_timer_new(sh);
	if (!ss->tick)
		return -ENOMEM;
	ss->soon_t = rp_timer_new(sh);
	if (!ss->soon_t)
		return -ENOMEM;
	ss->again = (struct rp_app_again){ .take = again_take, .refuse = accept_refused, .arg = ss };
	ret = rp_app_again_init(sh, &ss->again);
	if (ret)
		return ret;
	rp_app_list_init(&ss->soon);
	ret = rp_app_accept_start(sh, &ss->acc);
	if (ret)
		return ret;
	return rp_timer_arm(sh, ss->tick, TICK_NS, on_tick, ss);
}

/* SIGQUIT's drain (rp_app_run_drain), on the shard's thread: the first
 * call stops the accept (which first takes in what the kernel queued on
 * the listener, server.h) and closes every idle keep-alive connection
 * (its last answer kept it alive; no request byte buffered, nothing being
 * sent or queued) gracefully: the lingering close, its FIN at once and
 * what the client still sends dropped until its EOF. A new connection,
 * taken now or before, is not idle: its first request is still to come
 * (a client has no reason to retry it on another connection), and that
 * answer is its last. A connection with a request buffered or an answer
 * out ends after it (serve_request, conn_answer). Every call returns the
 * connections left, lingering ones included. */
static unsigned serve_drain(struct rp_shard *sh)
{
	struct sshard *ss = g.ss[rp_shard_id(sh)];

	if (!ss)
		return 0;
	if (!ss->draining) {
		ss->draining = true;
		rp_app_accept_close(sh, &ss->acc);
		for (struct sconn *c = ss->conns; c; c = c->next)
			if (c->keep_alive && !c->buf && !c->sending && !c->heads_out &&
			    !c->body_wait && !c->closing && !c->last)
				conn_linger(sh, c);
	} else {
		/* requests waiting for a descriptor first, then a listener
		 * held open for lack of descriptors takes in what closed
		 * connections made room for (server.h) */
		retry_opens(sh, ss);
		rp_app_accept_close(sh, &ss->acc);
	}
	return ss->live + ss->acc.held + ss->again.n;
}

static void serve_stop(struct rp_shard *sh, void *arg)
{
	struct sshard *ss = g.ss[rp_shard_id(sh)];

	(void)arg;
	if (!ss)
		return;
	rp_app_accept_stop(sh, &ss->acc);
	/* the drain's end: what waits for a descriptor is closed unanswered */
	open_waits_take(sh, ss, close_waiter, false);
	/* a wait for memory ends unanswered (the request's: closed; the
	 * body's: its answer ends cut, on_sent) */
	while (!rp_app_list_empty(&ss->soon)) {
		struct sconn *c = rp_app_list_entry(ss->soon.first, struct sconn, slink);

		soon_del(c);
		if (c->mem_wait)
			mem_retry(sh, c); /* stopping: closed or cut there */
	}
	/* a body's pending check holds no op the stop would end (the tick
	 * stops): it ends here, its connection closed */
	for (struct sconn *c = ss->conns, *next; c; c = next) {
		next = c->next;
		if (c->zc_check)
			zc_finish(sh, c, -ESHUTDOWN);
	}
}

static void serve_fini(struct rp_shard *sh, void *arg)
{
	struct sshard *ss = g.ss[rp_shard_id(sh)];

	(void)arg;
	if (!ss)
		return;
	if (ss->acc.lfd >= 0) {
		close(ss->acc.lfd);
		ss->acc.lfd = -1;
	}
	rp_app_accept_fini(sh, &ss->acc);
	rp_timer_free(sh, ss->tick);
	ss->tick = NULL;
	rp_timer_free(sh, ss->soon_t);
	ss->soon_t = NULL;
	rp_app_again_fini(sh, &ss->again); /* a pass the stop left undone */
	if (ss->cache)
		print_shard(sh, ss, stdout);
	memo_shed(ss);
	rp_file_cache_destroy(ss->cache);
	ss->cache = NULL;
	if (ss->root_owned) {
		close(ss->root_fd);
		ss->root_owned = false;
	}
}

/* ---- main ---- */

/*
 * The descriptors serve needs before it can answer one file on one
 * connection, checked once the runtime and the listeners exist (after
 * rp_app_raise_nofile: the soft limit is the hard one where it could be
 * raised), before the shards start: what is open below the soft limit
 * then (stdio, --root, each shard's listener and eventfd, whatever was
 * inherited), then each shard's io_uring, the file every other shard
 * keeps in its cache once it served it (a shard gives back only its own
 * cache's files when it runs out: 2 shards under 14 with one file
 * answered 503 on the shard that had not served it first), the
 * connection's socket, and the two descriptors a file's first open takes
 * (O_PATH, then the file: net/filecache.c). The shard's own cached files
 * and kept pipes are given back when descriptors run out, so they need
 * none. Below that every request was a 503 (file_errors), the server
 * otherwise healthy: refuse instead, one line naming the limit and the
 * need. Counted by taking them: dup until the start's need is held or
 * EMFILE (at most 2 * shards + 2 calls), so the descriptors already
 * open, inherited ones too, are what is counted.
 */
static int nofile_check(unsigned shards)
{
	unsigned need_free = 2 * shards + 2, got = 0;
	int *fds = calloc(need_free, sizeof(*fds)), err;
	struct rlimit rl;

	if (!fds || getrlimit(RLIMIT_NOFILE, &rl)) {
		free(fds);
		return 0; /* not checked: the start goes on as before */
	}
	while (got < need_free) {
		int fd = fcntl(g.root, F_DUPFD_CLOEXEC, 0);

		if (fd < 0)
			break;
		fds[got++] = fd;
	}
	err = got < need_free ? errno : 0;
	for (unsigned i = 0; i < got; i++)
		close(fds[i]);
	free(fds);
	if (err != EMFILE) /* enough, or a failure that says nothing of the limit */
		return 0;
	fprintf(stderr,
		"ringplane serve: RLIMIT_NOFILE %llu (hard %llu) is too low: serving one file on "
		"one connection needs %llu descriptors (%llu open now: stdio, --root, a listener "
		"and an eventfd per shard; %u io_uring%s; a cached file on each other shard; "
		"a connection; 2 for a file's open); "
		"raise it (ulimit -n, LimitNOFILE=)\n",
		(unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
		(unsigned long long)rl.rlim_cur - got + need_free,
		(unsigned long long)rl.rlim_cur - got, shards, shards == 1 ? "" : "s");
	return -EMFILE;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ringplane serve --listen HOST:PORT --root DIR [--shards N] [--cpus LIST]\n"
		"                       [--mode auto|splice|copy]\n"
		"                       [--header-timeout S] [--keepalive-timeout S]\n"
		"                       [--linger-timeout S] [--linger-time S]\n"
		"                       [--busy-poll US] [--idle-spin US] [--stats-interval S]\n"
		"                       [--drain-timeout S]\n"
		"                       [--no-pin] [--pool-mb N]\n"
		"  --listen HOST:PORT       address to serve: IPv4, [IPv6] or a name; port 0: any\n"
		"  --root DIR               the directory served; nothing outside it is reachable\n"
		"  --shards N               shards, 1..256 (default: one per core of the plan)\n"
		"  --cpus LIST              CPUs for the shards (cpulist, e.g. 0-3)\n"
		"  --mode auto|splice|copy  how a cached body above 16 KB goes: auto (default) by\n"
		"                           splice(2) through a pipe above 256 KB up to 1 MB, by\n"
		"                           sendfile(2) otherwise; splice: always through a pipe.\n"
		"                           copy means nothing for serve (the relay's copy): as auto.\n"
		"                           Bodies up to 16 KB are read and sent (a copy) or, alone,\n"
		"                           sent by sendfile(2); uncached ones by splice from io-wq\n"
		"  --header-timeout S       a request head must arrive within S seconds of its first\n"
		"                           byte, a new connection's first byte within S seconds of\n"
		"                           its accept (default 10)\n"
		"  --keepalive-timeout S    close a keep-alive connection idle for S seconds, and\n"
		"                           abort a response that moves no byte for as long\n"
		"                           (default 30)\n"
		"  --linger-timeout S       after the last answer of a connection (Connection: close,\n"
		"                           an error), its FIN is sent and what the client still\n"
		"                           sends is read and dropped until its EOF; close when no\n"
		"                           byte came for S seconds (default 2)\n"
		"  --linger-time S          ... or S seconds after the answer in all (default 10;\n"
		"                           0: no lingering, close at once)\n"
		"  --busy-poll US           poll for completions up to US microseconds before sleeping\n"
		"  --idle-spin US           poll up to US microseconds before sleeping while the gaps\n"
		"                           between events stay shorter, yielding the CPU to any\n"
		"                           other runnable task (default %u, at most %u; 0: off);\n"
		"                           none while every connection is sending a body of 1 MB\n"
		"                           or more (its waits end with sends, not requests), or\n"
		"                           is past one of 32 MB or more until its next request\n"
		"                           (or 0.5-0.75 s after its last byte went)\n"
		"  --stats-interval S       print per-shard counters every S seconds (also on SIGUSR1)\n"
		"  --drain-timeout S        on SIGQUIT stop accepting, close idle connections, answer\n"
		"                           what is buffered (the last with Connection: close) and\n"
		"                           exit 0 when no connection is left,\n"
		RP_APP_DRAIN_HELP("                           ")
		"  --no-pin                 do not pin shard threads\n"
		"  --pool-mb N              each shard's memory pool, reserved and populated at start:\n"
		"                           %u..%u MB (default %u);\n"
		RP_APP_POOL_HELP("                           "),
		RP_APP_IDLE_SPIN_US_DEFAULT, RP_APP_IDLE_SPIN_US_MAX, POOL_MB_MIN, RP_APP_POOL_MB_MAX, POOL_MB_DEFAULT);
}

int rp_cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "root", required_argument, NULL, 'r' },
		{ "shards", required_argument, NULL, 's' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "mode", required_argument, NULL, 'm' },
		{ "header-timeout", required_argument, NULL, 'H' },
		{ "keepalive-timeout", required_argument, NULL, 'K' },
		{ "linger-timeout", required_argument, NULL, 'T' },
		{ "linger-time", required_argument, NULL, 'L' },
		{ "busy-poll", required_argument, NULL, 'b' },
		{ "idle-spin", required_argument, NULL, 'I' },
		{ "stats-interval", required_argument, NULL, 'i' },
		{ "drain-timeout", required_argument, NULL, 'D' },
		{ "pool-mb", required_argument, NULL, 'P' },
		{ "no-pin", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const modes[] = { "auto", "splice", "copy", NULL };
	static const struct rp_app_drain drain = { .step = serve_drain };
	struct rp_runtime_config rc = { .idle_spin_ns = RP_APP_IDLE_SPIN_US_DEFAULT * 1000ull };
	struct rp_runtime *rt = NULL;
	struct rp_app_opts o = { .pool_mb_min = POOL_MB_MIN };
	const char *root = NULL;
	struct stat rst;
	unsigned hdr_s = 10, ka_s = 30, lt_s = LINGER_TIMEOUT_S, lg_s = LINGER_TIME_S, mode = 0,
		 spin_us;
	sigset_t sigs;
	int c, ret, status = RP_EXIT_FAIL;

	optind = 1;
	g.root = -1;
	while ((c = rp_getopt("ringplane serve", argc, argv, ":h", opts)) != -1) {
		int taken = rp_app_server_opt("serve", c, optarg, 256, &rc, &o);

		if (taken < 0)
			return RP_EXIT_USAGE;
		if (taken)
			continue;
		switch (c) {
		case 'r':
			root = optarg;
			break;
		case 'm':
			if (rp_arg_choice("serve", "--mode", optarg, modes, &mode))
				return RP_EXIT_USAGE;
			break;
		case 'H':
			if (rp_arg_uint("serve", "--header-timeout", optarg, 1, 3600, &hdr_s))
				return RP_EXIT_USAGE;
			break;
		case 'K':
			if (rp_arg_uint("serve", "--keepalive-timeout", optarg, 1, 86400, &ka_s))
				return RP_EXIT_USAGE;
			break;
		case 'T':
			if (rp_arg_uint("serve", "--linger-timeout", optarg, 1, 3600, &lt_s))
				return RP_EXIT_USAGE;
			break;
		case 'L':
			if (rp_arg_uint("serve", "--linger-time", optarg, 0, 3600, &lg_s))
				return RP_EXIT_USAGE;
			break;
		case 'I':
			if (rp_arg_uint("serve", "--idle-spin", optarg, 0, RP_APP_IDLE_SPIN_US_MAX, &spin_us))
				return RP_EXIT_USAGE;
			rc.idle_spin_ns = (uint64_t)spin_us * 1000u;
			break;
		case 'h':
			usage(stdout);
			return RP_EXIT_OK;
		default: /* rp_getopt said which */
			return RP_EXIT_USAGE;
		}
	}
	if (rp_args_none_left("ringplane serve", argc, argv))
		return RP_EXIT_USAGE;
	if (rp_arg_required("ringplane serve", "--listen", o.listen) ||
	    rp_arg_required("ringplane serve", "--root", root))
		return RP_EXIT_USAGE;
	/* auto: each cached body's path by its size (filesend.h); splice: every
	 * cached body above 16 KB through a pipe; copy: no copied path for
	 * bodies above 16 KB exists in serve, so as auto (usage) */
	g.send_flags = mode == 1 ? RP_FILE_SEND_CACHED_SPLICE : 0;
	g.root = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (g.root < 0 || fstat(g.root, &rst)) {
		fprintf(stderr, "ringplane serve: --root '%s': %s\n", root, strerror(errno));
		if (g.root >= 0)
			close(g.root);
		return RP_EXIT_USAGE;
	}
	g.root_path = root;
	g.root_dev = rst.st_dev;
	g.root_ino = rst.st_ino;
	g.header_ticks = (uint64_t)hdr_s * 1000000000ull / TICK_NS;
	g.idle_ticks = (uint64_t)ka_s * 1000000000ull / TICK_NS;
	g.linger_idle_ticks = (uint64_t)lt_s * 1000000000ull / TICK_NS;
	g.linger_ticks = (uint64_t)lg_s * 1000000000ull / TICK_NS;

	rp_app_raise_nofile();
	rp_app_block_signals(&sigs);

	rc.init = serve_init;
	rc.on_stop = serve_stop;
	rc.fini = serve_fini;
	rc.bufs = 1024;
	rc.buf_size = 4096;
	rc.pool_bytes = (size_t)(o.pool_mb ? o.pool_mb : POOL_MB_DEFAULT) << 20;
	rc.stop_timeout_ms = 3000;
	g.shards = rp_app_runtime_listen("serve", &rc, &o, &rt, &g.lfds);
	g.ss = g.shards ? calloc(g.shards, sizeof(*g.ss)) : NULL;
	if (!g.ss || nofile_check(g.shards))
		goto out;
	if (rp_app_start("serve", rt, &o.ss))
		goto out;
	fprintf(stderr,
		"ringplane serve: %u shard%s, root %s, header timeout %u s, keep-alive %u s, "
		"linger %u s idle / %u s, %s\n",
		g.shards, g.shards == 1 ? "" : "s", root, hdr_s, ka_s, lt_s, lg_s,
		rp_engine_features(rt));
	ret = rp_app_run_drain(rt, &sigs, &o, print_stats, rt, &drain);
	status = ret ? RP_EXIT_FAIL : RP_EXIT_OK;
out:
	rp_app_close_listeners(g.lfds, g.shards);
	rp_runtime_destroy(rt);
	for (unsigned i = 0; g.ss && i < g.shards; i++) {
		if (g.ss[i])
			free(g.ss[i]->held);
		free(g.ss[i]);
	}
	free(g.ss);
	free(g.lfds);
	close(g.root);
	return status;
}
