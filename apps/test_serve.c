/* SPDX-License-Identifier: MIT */
/*
 * Integration test of `ringplane serve`: the real command over a root the
 * test builds (world-readable, with a symlink that leads outside it), driven
 * by real TCP clients on loopback. Every wait is bounded.
 *
 *   statuses   200, HEAD, 206, 416, 304 (If-None-Match, If-Modified-Since),
 *              404, 403 (a symlink out of the root, "%2e%2e" climbing), 400
 *              (a bad request line, %00, %2F), 405, 501, 505, 414, 431;
 *              Content-Type by extension; index.html for a directory; a
 *              directory without one 403, a missing directory 404.
 *   keep-alive two requests on one HTTP/1.1 connection; HTTP/1.0 closes,
 *              unless it asks to keep alive.
 *   pipelining 30 requests for different files in one write: 30 answers, in
 *              order, every body checked. 3 x (10 answers without a body:
 *              HEAD, 404, 403, 416, 304) + a GET in one write: 33 answers in
 *              order, and the server's counters show the 33 heads left in
 *              at most 8 sendmsgs (gathered, not one send each). 10 1 MB
 *              GETs, and 10 HEAD + 90 B Range GETs, in one write each:
 *              each set within 1.2 s (a request behind a zero-copy body
 *              waited for the 250 ms tick: 2 s and more).
 *   partial    an answer with a CRLF, 2 CRLFs or part of a request behind
 *              it leaves at once (no MSG_MORE: 200 ms corked before).
 *              Behind queued heads, a 4000 B body without a head with
 *              part of a request behind it is copied (zero_copy +0, not
 *              sendfile(2)), the request's rest (20 ms later, or at once)
 *              answered within 30 ms.
 *   stuck      a client that pipelines a GET behind a 256 KB zero-copy
 *              body and reads nothing for 2 s: at most 40 looks at its
 *              check (zc_polls; 1861-1911 before the back-off, one a
 *              ms), both answers whole once it reads. Two such
 *              clients, the second stuck 700 ms after the first: at most
 *              40 passes of the short timer in 400 ms (118 before). The same client
 *              reset after 600 ms: gone from the server within 80 ms with
 *              its receive armed, paused (2.5 KB more pipelined) or
 *              half-closed (the tick's 250 ms before, for the last two).
 *              4 rounds of 12 such clients (2 with RP_TEST_REDUCED), a
 *              third each way, reset at once: resets +12 each round
 *              (+16: the armed ones counted twice before), hup_resets at
 *              most +4 (the paused; +4 but once).
 *   deep pipe  1500 and 4000 GETs with distinct Ranges in one write (past the
 *              32 KB head buffer: the connection was closed after one
 *              answer): every answer, in order. A client that pipelines
 *              10 MB without reading: the server's RSS grows by under
 *              24 MB and its pool by under 1 MB (TCP holds the client
 *              back), and a fresh client is served beside it.
 *   budget     40 clients pipeline 2 MB each, half reading 40 KB/s, half
 *              never: one connection keeps at most 16 provided buffers,
 *              all under 3/4 of the shard's 1024 (buf_out), a fresh
 *              client is answered within 2 s, and every buffer is back
 *              once they leave.
 *   behind     16 clients each pipeline a small GET behind a 1 MB range and
 *              leave the body unread: the server holds none of its
 *              provided buffers meanwhile (buf_out 0; 16 before), and
 *              both answers come whole, in order.
 *   big        an 8 MB file and ranges of it, byte for byte; 100 clients at
 *              once (30 with RP_TEST_REDUCED).
 *   fresh      a file replaced (rename) is served new within 1.5 s.
 *   memo       the per-shard memo of whole-file 200 heads, within one Date
 *              second (retried, at most 5 rounds): a keep-alive GET, a
 *              Connection: close GET (its head says close), a keep-alive
 *              GET again (keep-alive, the first head byte for byte); a
 *              HEAD (the GET's head) with a GET pipelined behind it (no
 *              body bytes between); two files asked twice each (each its
 *              own Content-Length, Content-Type, ETag). A file replaced by
 *              rename with another size: every answer one version's head
 *              with that version's body, the new one within 1.5 s. A 4 KB
 *              file whose body the memo keeps (memo_bytes) rewritten in
 *              place: same size, same size and mtime, 3000 B, 6000 B,
 *              7000 B with the old mtime: every answer one whole version
 *              whose ETag and Last-Modified are that version's (one from
 *              the memo always; the file's way's old head over the new
 *              bytes only before the cache's 0.5 s check), the new one
 *              from every request 1 s after the write and after the
 *              cache's reopen. The memo's read held (fanotify) while the
 *              file is rewritten: not kept (memo_stale +1), no answer
 *              from the memo under the old head; skipped, said so,
 *              without fanotify permission events.
 *   timeouts   a head that never completes is closed after --header-timeout;
 *              an idle keep-alive connection after --keepalive-timeout; a
 *              client that pipelines HEAD requests and never reads (answers
 *              queued, the send stuck) after --keepalive-timeout too, while
 *              a fresh client is served; so is one whose 200 answers were
 *              all sent and wait in the server's socket (reset: a FIN would
 *              wait behind them; counted in send_timeouts); a slow reader
 *              whose 8 MB answer's tail waits in the socket past that
 *              timeout gets all of it, and so does one that pipelines 100
 *              HEADs behind a 3 MB GET, with their answers.
 *   deaf bodies 20 clients (8 with RP_TEST_REDUCED) ask for the 8 MB file,
 *              half-close and never read: the server stays under 20% of a
 *              CPU, serves fresh clients, and aborts the stuck sends after
 *              --keepalive-timeout (counted in send_timeouts).
 *   silent     a connection that never sends a byte is closed at
 *              --header-timeout after its accept, also when the keep-alive
 *              timeout is shorter; one with an answer at --keepalive-timeout.
 *   once       a 414 (33000- and 16000-byte targets) and a 431 (500 field
 *              lines), sent in one write and in 512-byte writes: exactly one
 *              answer, then the close (a refused head was answered again at
 *              each later receive).
 *   if-range   Range with If-Range: the file's ETag or its exact
 *              Last-Modified 206; a stale or weak ETag, another date 200
 *              with the whole file (If-Range was ignored: always 206).
 *   special    a FIFO and a character device under the root: 403 at once
 *              (opening the FIFO for reading blocked the shard for good),
 *              and the next client is served.
 *   sigterm    SIGTERM with clients connected: exit 0 within 5 s.
 *   linger     lingering close: a Connection: close request with 64 KB or
 *              256 KB pipelined behind it in one write, a malformed head
 *              with more behind it and writes for 1 s after, and 20
 *              keep-alive GETs read slowly (the server stops reading) then
 *              a last one with 300 KB behind it: every answer, then EOF,
 *              never a reset (a close with their bytes
 *              unread reset them); a client that sends on after its answer
 *              is reset at --linger-time (linger_timeouts); one that reads
 *              to EOF and closes is gone from the server at once, one that
 *              stays silent at --linger-timeout, not reset; one lingering
 *              holds no more of the pool than an idle one; keep-alive
 *              never lingers; SIGTERM with one lingering exits 0 in 5 s.
 *   reroot     --root names a symlink a deploy switches, then a directory a
 *              new tree is renamed over: each served within 2 s; while the
 *              path names nothing, the old tree still is.
 *   nofile     under an RLIMIT_NOFILE too low to serve one file (8 on 1
 *              shard, 12 on 2, and one below the need it names) serve
 *              exits 1 with one line naming the limit and the need; at
 *              the need 20 GETs of one file are all 200 (it listened and
 *              answered 503 to every one before).
 *   counts     a serve of its own: after a known mix of answers the stats
 *              line's count of each status is exact, the classes too,
 *              and the body bytes by how they went (zero_copy, copied),
 *              a small body sent alone by sendfile(2) among the first.
 *   path bytes zero_copy and copied byte-exact for bodies of 1, 10000,
 *              16384, 16385, 300000 B and 2 MB: a GET cached and not
 *              cached (the ring's read -> send; splice in io-wq), behind
 *              a 404 (small: one sendfile(2)) and between two (small:
 *              read and sent, RP_FILE_SEND_MORE).
 *   interval   --stats-interval 1: two stats lines or more in 3.5 s.
 *   mode       --mode splice: a cached 3 MB body spliced through a pipe
 *              (shard_splice), whole; under auto (counts) it is not.
 *   escapes    (main runs it too) a directory symlink to a directory
 *              outside the root, "/../", %252e%252e, backslashes raw and
 *              encoded, 1,500 ".." segments, a path past PATH_MAX: each
 *              refused, the outside file's bytes never sent, serve still
 *              answering.
 *
 * Usage: test_serve RINGPLANE_BINARY [TEST...]: TEST main (statuses to
 * sigterm), timeouts, deaf_bodies, linger, reroot, nofile, truncated, counts, interval
 * or mode runs only those, budget only deep pipe and budget, behind only behind, escapes
 * only escapes, memo only memo, stuck only pipelined behind zero-copy, last answer's EOF, stuck and
 * its resets, partial only partial next and partial next behind heads (main runs them too); none
 * runs all.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"

#define BIG (8u << 20)
#define MID (3u << 20)
/* TAIL_BODY in cmd_serve.c: a body held through its tail (test_spin_tail);
 * huge.bin is big.bin HUGE / BIG times */
#define HUGE (32u << 20)
#define SMALL 16384u

static bool reduced;
static char root[64];
static char outside[64]; /* a directory beside root: nothing in it is served */
static int port;
static uint8_t *big;

/* ---- the server ---- */

static pid_t server;
static int server_out;

static int server_start(const char *const *extra)
{
	const char *argv[24] = { bin, "serve", "--listen", "127.0.0.1:0", "--root", root,
				 "--no-pin", "--shards", "1" };
	int n = 9, pfd[2];
	pid_t parent;

	while (extra && *extra)
		argv[n++] = *extra++;
	argv[n] = NULL;
	if (pipe(pfd))
		return -1;
	parent = getpid();
	server = fork();
	if (server < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (server == 0) {
		child_tie(parent);
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	server_out = pfd[0];
	/* the server faults in its 256 MB pool before it listens: at load 30
	 * (two pinned busy loops beside other builds) 10 s ran out 5 times in
	 * 9 runs, and each of those servers was found listening later */
	port = listening_port(server_out, 30000);
	if (port > 0)
		return 0;
	/* not started in time (or gone): never leave it running behind us */
	kill(server, SIGKILL);
	waitpid(server, NULL, 0);
	close(server_out);
	return -1;
}

static int server_stop(unsigned limit_ms)
{
	uint64_t end = now_ms() + limit_ms;
	char sink[4096];
	int st;

	kill(server, SIGTERM);
	for (;;) {
		struct pollfd p = { .fd = server_out, .events = POLLIN };

		if (poll(&p, 1, 20) > 0 && read(server_out, sink, sizeof(sink)) <= 0)
			p.fd = -1;
		if (waitpid(server, &st, WNOHANG) == server)
			break;
		if (now_ms() > end) {
			kill(server, SIGKILL);
			waitpid(server, &st, 0);
			close(server_out);
			return -1;
		}
	}
	close(server_out);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- a blocking client with a deadline ---- */

static int dial(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static bool send_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return false;
		p = (const char *)p + w;
		n -= (size_t)w;
	}
	return true;
}

struct resp {
	int status;
	char head[4096];
	long long clen; /* -1: none */
	uint8_t *body;
	size_t blen;
};

/* Bytes read ahead of the current response on a connection (pipelining). */
struct conn {
	int fd;
	char buf[65536];
	size_t have;
};

static ssize_t fill(struct conn *c)
{
	ssize_t r = recv(c->fd, c->buf + c->have, sizeof(c->buf) - c->have, 0);

	if (r > 0)
		c->have += (size_t)r;
	return r;
}

static const char *field(const struct resp *r, const char *name)
{
	static __thread char v[256]; /* readers on several threads call it */
	const char *p = r->head;
	size_t n = strlen(name);

	while ((p = strstr(p, "\r\n"))) {
		p += 2;
		if (!strncasecmp(p, name, n) && p[n] == ':') {
			const char *e = strstr(p, "\r\n");
			size_t l = (size_t)(e - p) - n - 2;

			if (l >= sizeof(v))
				l = sizeof(v) - 1;
			memcpy(v, p + n + 2, l);
			v[l] = 0;
			return v;
		}
	}
	return NULL;
}

/* Read one response; @head_only: a HEAD request (no body despite Content-Length). */
static int read_resp(struct conn *c, struct resp *r, bool head_only)
{
	char *end;
	size_t hlen, need;
	const char *cl;

	memset(r, 0, sizeof(*r));
	r->clen = -1;
	while (!(end = memmem(c->buf, c->have, "\r\n\r\n", 4)))
		if (c->have == sizeof(c->buf) || fill(c) <= 0)
			return -1;
	hlen = (size_t)(end - c->buf) + 4;
	if (hlen >= sizeof(r->head))
		return -1;
	memcpy(r->head, c->buf, hlen);
	r->head[hlen] = 0;
	r->status = atoi(r->head + 9);
	cl = field(r, "Content-Length");
	r->clen = cl ? atoll(cl) : -1;
	memmove(c->buf, c->buf + hlen, c->have - hlen);
	c->have -= hlen;
	need = head_only || r->clen < 0 ? 0 : (size_t)r->clen;
	r->body = malloc(need + 1);
	while (r->blen < need) {
		size_t take;

		if (!c->have && fill(c) <= 0)
			return -1;
		take = c->have < need - r->blen ? c->have : need - r->blen;
		memcpy(r->body + r->blen, c->buf, take);
		r->blen += take;
		memmove(c->buf, c->buf + take, c->have - take);
		c->have -= take;
	}
	return 0;
}

/* One request on a fresh connection; returns the status (-1 on an error). */
static int fetch(const char *req, struct resp *r, bool head_only)
{
	struct conn *c = calloc(1, sizeof(*c));
	int ret = -1;

	c->fd = dial();
	if (c->fd >= 0 && send_all(c->fd, req, strlen(req)) && !read_resp(c, r, head_only))
		ret = r->status;
	if (c->fd >= 0)
		close(c->fd);
	free(c);
	return ret;
}

static void resp_free(struct resp *r)
{
	free(r->body);
	r->body = NULL;
}

/* Closed by the server within @ms? */
static bool closed_within(int fd, unsigned ms)
{
	uint64_t end = now_ms() + ms;
	char b[256];

	while (now_ms() < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, 50) > 0) {
			ssize_t r = recv(fd, b, sizeof(b), MSG_DONTWAIT);

			if (r == 0 || (r < 0 && errno != EAGAIN))
				return true;
		}
	}
	return false;
}

/* ---- the root ---- */

static void put(const char *name, const void *data, size_t len)
{
	char p[256];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", root, name);
	f = fopen(p, "w");
	if (!f || fwrite(data, 1, len, f) != len)
		abort();
	fclose(f);
	chmod(p, 0644);
}

/* @len bytes of @data at @off of @name (created or extended) */
static void put_at_off(const char *name, const void *data, size_t len, off_t off)
{
	char p[256];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", root, name);
	fd = open(p, O_WRONLY | O_CREAT, 0644);
	if (fd < 0 || pwrite(fd, data, len, off) != (ssize_t)len)
		abort();
	close(fd);
}

static void make_root(void)
{
	char p[256];

	snprintf(root, sizeof(root), "/tmp/rp_serve_XXXXXX");
	if (!mkdtemp(root))
		abort();
	chmod(root, 0755); /* mkdtemp makes it 0700: readable by us only */
	snprintf(p, sizeof(p), "%s/dir", root);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/empty", root);
	mkdir(p, 0755);
	put("hello.txt", "hello world\n", 12);
	put("count.txt", "hello world\n", 12); /* test_counts': never replaced */
	put("page.html", "<p>hi</p>", 9);
	put("dir/index.html", "index!", 6);
	big = malloc(BIG);
	for (size_t i = 0; i < BIG; i++)
		big[i] = (uint8_t)((i * 2654435761u) >> 13);
	put("big.bin", big, BIG);
	for (unsigned i = 0; i < HUGE / BIG; i++)
		put_at_off("huge.bin", big, BIG, (off_t)i * BIG);
	put("mid.bin", big, MID);
	put("small.bin", big, SMALL);
	for (int i = 0; i < 30; i++) {
		char name[32], text[64];

		snprintf(name, sizeof(name), "f%02d.txt", i);
		snprintf(text, sizeof(text), "file number %d says %d\n", i, i * i);
		put(name, text, strlen(text));
	}
	put("old.txt", "0123456789", 10);
	{
		/* Sun, 06 Nov 1994 08:49:37 GMT: a Last-Modified long past */
		struct timespec ts[2] = { { 784111777, 0 }, { 784111777, 0 } };

		snprintf(p, sizeof(p), "%s/old.txt", root);
		if (utimensat(AT_FDCWD, p, ts, 0))
			abort();
	}
	snprintf(p, sizeof(p), "%s/escape", root);
	if (symlink("/etc/hostname", p))
		abort();
	/* a directory beside the root, its file's text known (test_escapes),
	 * and a directory symlink inside the root to it */
	snprintf(outside, sizeof(outside), "/tmp/rp_out_XXXXXX");
	if (!mkdtemp(outside))
		abort();
	chmod(outside, 0755);
	{
		char text[64];
		FILE *f;

		snprintf(p, sizeof(p), "%s/secret.txt", outside);
		snprintf(text, sizeof(text), "outside secret %d\n", (int)getpid());
		f = fopen(p, "w");
		if (!f || fputs(text, f) < 0 || fclose(f))
			abort();
	}
	snprintf(p, sizeof(p), "%s/outdir", root);
	if (symlink(outside, p))
		abort();
}

/* ---- tests ---- */

static void test_statuses(void)
{
	struct resp r;
	char req[24000], etag[128];
	const char *v;

	CHECK(fetch("GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r, false) == 200, "200");
	CHECK(r.blen == 12 && !memcmp(r.body, "hello world\n", 12), "body");
	v = field(&r, "Content-Type");
	CHECK(v && !strncmp(v, "text/plain", 10), "content-type %s", v ? v : "none");
	v = field(&r, "ETag");
	snprintf(etag, sizeof(etag), "%s", v ? v : "");
	resp_free(&r);

	CHECK(fetch("HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r, true) == 200, "HEAD");
	CHECK(r.clen == 12, "HEAD length %lld", r.clen);
	resp_free(&r);

	CHECK(fetch("GET /hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=6-10\r\n\r\n", &r,
		    false) == 206, "206");
	CHECK(r.blen == 5 && !memcmp(r.body, "world", 5), "range body");
	v = field(&r, "Content-Range");
	CHECK(v && !strcmp(v, "bytes 6-10/12"), "content-range %s", v ? v : "none");
	resp_free(&r);

	CHECK(fetch("GET /hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=50-\r\n\r\n", &r, false) ==
		      416, "416");
	resp_free(&r);

	snprintf(req, sizeof(req), "GET /hello.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: %s\r\n\r\n",
		 etag);
	CHECK(fetch(req, &r, true) == 304, "304 by etag %s", etag);
	resp_free(&r);
	CHECK(fetch("GET /hello.txt HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: Fri, 31 Dec 9999 "
		    "23:59:59 GMT\r\n\r\n", &r, true) == 304, "304 by date");
	resp_free(&r);

	CHECK(fetch("GET /page.html HTTP/1.1\r\nHost: x\r\n\r\n", &r, false) == 200, "html");
	v = field(&r, "Content-Type");
	CHECK(v && !strncmp(v, "text/html", 9), "html type %s", v ? v : "none");
	resp_free(&r);
	CHECK(fetch("GET /dir/ HTTP/1.1\r\nHost: x\r\n\r\n", &r, false) == 200, "index");
	CHECK(r.blen == 6 && !memcmp(r.body, "index!", 6), "index body");
	resp_free(&r);

	static const struct {
		const char *req;
		int status;
	} cases[] = {
		{ "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404 },
		{ "GET /escape HTTP/1.1\r\nHost: x\r\n\r\n", 403 },
		{ "GET /dir/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 403 },
		/* a directory without index.html: 403, as without the '/';
		 * a missing one 404 (the directory was a 404 with the '/') */
		{ "GET /empty/ HTTP/1.1\r\nHost: x\r\n\r\n", 403 },
		{ "GET /empty HTTP/1.1\r\nHost: x\r\n\r\n", 403 },
		{ "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 403 },
		{ "GET /nodir/ HTTP/1.1\r\nHost: x\r\n\r\n", 404 },
		{ "GET /hello.txt/ HTTP/1.1\r\nHost: x\r\n\r\n", 404 },
		{ "GET /hello%00.txt HTTP/1.1\r\nHost: x\r\n\r\n", 400 },
		{ "GET /dir%2Findex.html HTTP/1.1\r\nHost: x\r\n\r\n", 400 },
		{ "GET  /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", 400 },
		{ "GET /hello.txt HTTP/1.1\r\n\r\n", 400 },
		{ "POST /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", 405 },
		{ "BREW /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", 501 },
		{ "GET /hello.txt HTTP/2.0\r\nHost: x\r\n\r\n", 505 },
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int s = fetch(cases[i].req, &r, false);

		CHECK(s == cases[i].status, "case %u: %d, wanted %d", i, s, cases[i].status);
		resp_free(&r);
	}
	/* 414: a request line past the limit; 431: a header section past it */
	memcpy(req, "GET /", 5);
	memset(req + 5, 'a', 9000);
	strcpy(req + 9005, " HTTP/1.1\r\nHost: x\r\n\r\n");
	CHECK(fetch(req, &r, false) == 414, "414");
	resp_free(&r);
	/* a name longer than a file name can be (ENAMETOOLONG, 300 > 255) is
	 * a file that does not exist: 404, as nginx answers, not 414 (the
	 * target is short; 414 is for the request line and the path limit) */
	memset(req + 5, 'a', 300);
	strcpy(req + 305, " HTTP/1.1\r\nHost: x\r\n\r\n");
	CHECK(fetch(req, &r, false) == 404, "a 300-byte file name");
	resp_free(&r);
	strcpy(req, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n");
	for (int i = 0; i < 330; i++) /* 330 x 52 B: past the 16 KB section limit */
		strcat(req, "X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
	strcat(req, "\r\n");
	CHECK(fetch(req, &r, false) == 431, "431");
	resp_free(&r);
	/* 200 KB of headers: refused (431) and closed long before the end */
	{
		char *huge = malloc(210 * 1024);
		struct conn *c = calloc(1, sizeof(*c));
		size_t at;

		strcpy(huge, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n");
		at = strlen(huge);
		while (at < 200 * 1024) {
			memcpy(huge + at, "X-Big: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n", 61);
			at += 61;
		}
		memcpy(huge + at, "\r\n", 2);
		c->fd = dial();
		(void)send_all(c->fd, huge, at + 2); /* may fail midway: the server closed */
		CHECK(!read_resp(c, &r, false) && r.status == 431, "200 KB of headers: %d", r.status);
		resp_free(&r);
		CHECK(closed_within(c->fd, 3000), "200 KB of headers: not closed");
		close(c->fd);
		/* garbage: 400 and closed */
		c->fd = dial();
		c->have = 0;
		send_all(c->fd, "\x01\x02garbage\r\n\r\n", 13);
		CHECK(!read_resp(c, &r, false) && r.status == 400, "garbage: %d", r.status);
		resp_free(&r);
		CHECK(closed_within(c->fd, 3000), "garbage: not closed");
		close(c->fd);
		free(c);
		free(huge);
	}
	printf("statuses: 200 HEAD 206 416 304x2 types index 404 403x2 dirs 403x3 404x2 400x4 405 501 505 414 404 431x2 "
	       "garbage\n");
}

/* Send @req (@len bytes) in writes of @piece bytes (stopping when the server
 * closes), then read to the close, 5 s at most: the number of status lines
 * (the text at each answer's start), *@first the first one's status, and
 * *@closed whether the server closed. */
static int answers_to(const char *req, size_t len, size_t piece, int *first, bool *closed)
{
	int fd = dial(), one = 1, n = 0;
	uint64_t end = now_ms() + 5000;
	static char got[65536];
	size_t have = 0;

	*first = -1;
	*closed = false;
	if (fd < 0)
		return -1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (size_t at = 0; at < len; at += piece) {
		if (!send_all(fd, req + at, len - at < piece ? len - at : piece))
			break; /* closed: the rest is not wanted */
		if (piece < len)
			usleep(100);
	}
	while (now_ms() < end && have < sizeof(got) - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 50) <= 0)
			continue;
		r = recv(fd, got + have, sizeof(got) - 1 - have, 0);
		if (r <= 0) {
			*closed = true;
			break;
		}
		have += (size_t)r;
	}
	got[have] = 0;
	for (char *at = got; (at = memmem(at, have - (size_t)(at - got), "HTTP/1.1 ", 9)); at += 9)
		if (at == got || (at >= got + 4 && !memcmp(at - 4, "\r\n\r\n", 4))) {
			if (!n++)
				*first = atoi(at + 9);
		}
	close(fd);
	return n;
}

/* A refused head is answered once, whatever follows it and however it comes. */
static void test_refused_once(void)
{
	size_t cap = 64 * 1024, len;
	char *req = malloc(cap);
	static const struct {
		const char *what;
		size_t path, fields;
		int status;
	} cases[] = {
		{ "33000-byte target", 33000, 0, 414 },
		{ "16000-byte target", 16000, 0, 414 },
		{ "500 field lines", 10, 500, 431 },
	};

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		len = (size_t)snprintf(req, cap, "GET /");
		memset(req + len, 'a', cases[i].path);
		len += cases[i].path;
		len += (size_t)snprintf(req + len, cap - len, " HTTP/1.1\r\nHost: x\r\n");
		for (size_t f = 0; f < cases[i].fields; f++)
			len += (size_t)snprintf(req + len, cap - len, "X-F%zu: %040zu\r\n", f, f);
		len += (size_t)snprintf(req + len, cap - len, "\r\n");
		for (int split = 0; split < 2; split++) {
			bool closed;
			int first, n = answers_to(req, len, split ? 512 : len, &first, &closed);

			CHECK(n == 1 && first == cases[i].status && closed,
			      "once: %s in %s: %d answers (first %d), %s", cases[i].what,
			      split ? "512-byte writes" : "one write", n, first,
			      closed ? "closed" : "not closed");
		}
	}
	free(req);
	printf("once: 414 x2 and 431, each in one write and in 512-byte writes: one answer, then "
	       "closed\n");
}

/* RFC 9110 13.1.5: a Range goes only with a matching If-Range. */
static void test_if_range(void)
{
	char etag[128], req[512], weak[140];
	const char *v;
	struct resp r;
	const char *conds[5];
	/* a date never matches (net/http.c: an mtime cannot show it strong) */
	static const int want[5] = { 206, 200, 200, 200, 200 };

	CHECK(fetch("HEAD /old.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r, true) == 200, "if-range HEAD");
	v = field(&r, "ETag");
	snprintf(etag, sizeof(etag), "%s", v ? v : "\"none\"");
	v = field(&r, "Last-Modified");
	CHECK(v && !strcmp(v, "Sun, 06 Nov 1994 08:49:37 GMT"), "if-range: Last-Modified %s",
	      v ? v : "none");
	resp_free(&r);
	snprintf(weak, sizeof(weak), "W/%s", etag);
	conds[0] = etag;
	conds[1] = "\"stale\"";
	conds[2] = "Sun, 06 Nov 1994 08:49:37 GMT";
	conds[3] = "Sun, 06 Nov 1994 08:49:38 GMT";
	conds[4] = weak;
	for (int i = 0; i < 5; i++) {
		int s;

		snprintf(req, sizeof(req), "GET /old.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-4\r\n"
					   "If-Range: %s\r\n\r\n", conds[i]);
		s = fetch(req, &r, false);
		if (want[i] == 206)
			CHECK(s == 206 && r.blen == 5 && !memcmp(r.body, "01234", 5),
			      "if-range %s: %d, %zu bytes", conds[i], s, r.blen);
		else
			CHECK(s == 200 && r.blen == 10 && !memcmp(r.body, "0123456789", 10) &&
				      !field(&r, "Content-Range"),
			      "if-range %s: %d, %zu bytes", conds[i], s, r.blen);
		resp_free(&r);
	}
	printf("if-range: ETag 206, stale ETag 200, Last-Modified date 200, other date 200, weak "
	       "ETag 200\n");
}

/* Not regular files: 403 within a second each, and the shard goes on. */
static void test_special_files(void)
{
	static const char *const names[] = { "fifo", "null" };
	bool dev = false;
	struct resp r;
	char p[256];

	snprintf(p, sizeof(p), "%s/fifo", root);
	CHECK(mkfifo(p, 0644) == 0, "mkfifo: %s", strerror(errno));
	snprintf(p, sizeof(p), "%s/null", root);
	if (mknod(p, S_IFCHR | 0666, makedev(1, 3)) == 0)
		dev = true;
	else
		printf("special: SKIP the character device: mknod refused (%s)\n", strerror(errno));
	for (unsigned i = 0; i < (dev ? 2u : 1u); i++) {
		char req[96];
		uint64_t t0 = now_ms();
		int s;

		snprintf(req, sizeof(req), "GET /%s HTTP/1.1\r\nHost: x\r\n\r\n", names[i]);
		s = fetch(req, &r, false);
		resp_free(&r);
		CHECK(s == 403 && now_ms() - t0 < 1000, "special: /%s answered %d after %llu ms",
		      names[i], s, (unsigned long long)(now_ms() - t0));
		s = fetch("GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r, false);
		resp_free(&r);
		CHECK(s == 200, "special: a client after /%s got %d", names[i], s);
	}
	printf("special: a FIFO%s answered 403 at once, the next clients served\n",
	       dev ? " and a character device" : "");
}

static void test_keepalive_and_pipelining(void)
{
	struct conn *c = calloc(1, sizeof(*c));
	char req[8192] = "";
	struct resp r;
	int ok = 0;

	c->fd = dial();
	for (int i = 0; i < 20; i++) {
		send_all(c->fd, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", 36);
		if (!read_resp(c, &r, false) && r.status == 200 && r.blen == 12)
			ok++;
		resp_free(&r);
	}
	CHECK(ok == 20, "keep-alive: %d of 20 on one connection", ok);
	/* 30 requests in one write: 30 answers in order */
	for (int i = 0; i < 30; i++) {
		char one[96];

		snprintf(one, sizeof(one), "GET /f%02d.txt HTTP/1.1\r\nHost: x\r\n\r\n", i);
		strcat(req, one);
	}
	send_all(c->fd, req, strlen(req));
	ok = 0;
	for (int i = 0; i < 30; i++) {
		char want[64];

		snprintf(want, sizeof(want), "file number %d says %d\n", i, i * i);
		if (!read_resp(c, &r, false) && r.status == 200 && r.blen == strlen(want) &&
		    !memcmp(r.body, want, r.blen))
			ok++;
		resp_free(&r);
	}
	CHECK(ok == 30, "pipelining: %d of 30 in order", ok);
	close(c->fd);

	/* HTTP/1.0: closed after the answer, unless it asks to keep alive */
	c->fd = dial();
	c->have = 0;
	send_all(c->fd, "GET /hello.txt HTTP/1.0\r\n\r\n", 27);
	CHECK(!read_resp(c, &r, false) && r.status == 200, "1.0");
	resp_free(&r);
	CHECK(closed_within(c->fd, 2000), "1.0 not closed");
	close(c->fd);
	c->fd = dial();
	c->have = 0;
	send_all(c->fd, "GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 51);
	CHECK(!read_resp(c, &r, false) && r.status == 200, "1.0 keep-alive");
	resp_free(&r);
	CHECK(!closed_within(c->fd, 300), "1.0 keep-alive closed");
	close(c->fd);
	free(c);
	printf("keep-alive and pipelining: 20 on one connection, 30 pipelined in order, 1.0 rules\n");
}

/*
 * An answer followed in the same write by a stray CRLF, two, or the first
 * line of a next request (its rest not sent): the answer must leave at
 * once. It went with MSG_MORE, as if a whole request followed, and sat
 * corked in the socket for 200 ms (TCP's timer) on the small paths: a
 * kept body (hello.txt, GET twice first) and a small range read into the
 * pool (small.bin). Best of 5 tries a case under 100 ms (each try was
 * 204-208 ms before); each try a fresh connection, 5 s receive bound.
 */
static void test_partial_next(void)
{
	static const char *const tails[] = { "\r\n", "\r\n\r\n", "GET /hello.txt HTTP/1.1\r\n" };
	static const struct {
		const char *name, *req;
		size_t blen;
	} kinds[] = {
		{ "kept body", "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", 12 },
		{ "small range", "GET /small.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-99\r\n\r\n", 100 },
	};
	struct conn *c = calloc(1, sizeof(*c));
	uint64_t worst = 0;

	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		for (size_t t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
			uint64_t best = UINT64_MAX;

			for (int i = 0; i < 5 && best >= 100; i++) {
				char req[256];
				struct resp r;
				uint64_t t0;
				bool ok;

				c->fd = dial();
				c->have = 0;
				if (c->fd < 0)
					break;
				/* twice alone first: the memo keeps hello.txt's body */
				for (int j = 0; j < 2; j++) {
					send_all(c->fd, kinds[k].req, strlen(kinds[k].req));
					read_resp(c, &r, false);
					resp_free(&r);
				}
				snprintf(req, sizeof(req), "%s%s", kinds[k].req, tails[t]);
				t0 = now_ms();
				ok = send_all(c->fd, req, strlen(req)) && !read_resp(c, &r, false);
				ok = ok && (r.status == 200 || r.status == 206) &&
				     r.blen == kinds[k].blen;
				if (ok && now_ms() - t0 < best)
					best = now_ms() - t0;
				resp_free(&r);
				close(c->fd);
			}
			CHECK(best < 100,
			      "partial next: %s with %zu tail bytes after it: the answer whole "
			      "after %llu ms at best of 5 (want < 100: no MSG_MORE for a request "
			      "not all there)",
			      kinds[k].name, strlen(tails[t]), (unsigned long long)best);
			if (best != UINT64_MAX && best > worst)
				worst = best;
		}
	}
	free(c);
	printf("partial next: 2 small answers x 3 tails (CRLF, 2 CRLF, a line of a request): "
	       "each whole within %llu ms at best of 5\n",
	       (unsigned long long)worst);
}

/*
 * `partial next` behind queued heads: two HEADs, a GET of a small file
 * (an If-None-Match no ETag matches: not from the memo) and the first
 * line of a next GET, in one write. The HEADs' heads are queued, so the
 * GET's 4000 B body goes alone once they are out (no head of its own):
 * with only part of a next request behind it, it went by one sendfile(2)
 * (zero_copy), checked after its end (zc_poll) before that request could
 * be answered. Any byte behind the request now asks for a copy
 * (RP_FILE_SEND_COPY_SMALL): copied, not zero_copy. The request's rest
 * follows 20 ms after the answers are read (mode 0), or at once in a
 * second write (mode 1: it may land before the body goes, then a whole
 * head is behind the GET, or after); the next answer whole within 30 ms
 * of the rest's send, best of 5 tries a mode (fresh connections, 5 s
 * receive bound). On c722c68's serve mode 0 counted zero_copy +4000 and
 * mode 1 (its rest read first) +0; the rest carried the client's
 * acknowledgement, so its answer was not late (0 ms) either way.
 */
static bool server_stats(char *line, size_t cap);
static uint64_t stat_of(const char *line, const char *name);
static void bytes_after(char *line, size_t cap, uint64_t zc0, uint64_t cp0, uint64_t want,
			uint64_t *zc, uint64_t *cp);

static void test_partial_next_behind(void)
{
	static const char pre[] =
		"HEAD /pn.bin HTTP/1.1\r\nHost: x\r\n\r\n"
		"HEAD /pn.bin HTTP/1.1\r\nHost: x\r\n\r\n"
		"GET /pn.bin HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"other\"\r\n\r\n"
		"GET /hello.txt HTTP/1.1\r\n";
	static const char rest[] = "Host: x\r\n\r\n";
	static const char *const mode[] = { "rest 20 ms after", "rest at once" };
	static char line[16384];
	struct conn *c = calloc(1, sizeof(*c));

	put("pn.bin", big, 4000);
	for (int k = 0; k < 2; k++) {
		uint64_t best = UINT64_MAX, zc_all = 0, cp_all = 0;
		char ms[64] = "";
		int tries = 0, right = 0;

		for (int i = 0; i < 5 && best >= 30; i++) {
			uint64_t zc0, cp0, zc, cp, t0 = 0, dt;
			struct resp r;
			bool ok = true;

			if (!server_stats(line, sizeof(line)))
				break;
			zc0 = stat_of(line, " zero_copy ");
			cp0 = stat_of(line, " copied ");
			c->fd = dial();
			c->have = 0;
			if (c->fd < 0)
				break;
			tries++;
			ok = send_all(c->fd, pre, sizeof(pre) - 1);
			if (k == 1) {
				t0 = now_ms();
				ok = ok && send_all(c->fd, rest, sizeof(rest) - 1);
			}
			for (int j = 0; ok && j < 3; j++) {
				ok = !read_resp(c, &r, j < 2) && r.status == 200 &&
				     (j < 2 || (r.blen == 4000 && !memcmp(r.body, big, 4000)));
				resp_free(&r);
			}
			if (k == 0) {
				usleep(20 * 1000);
				t0 = now_ms();
				ok = ok && send_all(c->fd, rest, sizeof(rest) - 1);
			}
			ok = ok && !read_resp(c, &r, false) && r.status == 200 && r.blen == 12;
			dt = now_ms() - t0;
			if (ok && dt < best)
				best = dt;
			if (ok)
				right++;
			snprintf(ms + strlen(ms), sizeof(ms) - strlen(ms), "%s%llu", i ? " " : "",
				 (unsigned long long)dt);
			resp_free(&r);
			close(c->fd);
			bytes_after(line, sizeof(line), zc0, cp0, 4000, &zc, &cp);
			zc_all += zc;
			cp_all += cp;
		}
		CHECK(right == tries && tries > 0, "partial next behind heads, %s: %d of %d right",
		      mode[k], right, tries);
		CHECK(zc_all == 0 && cp_all >= 4000ull * (unsigned)tries,
		      "partial next behind heads, %s: the 4000 B body without a head, part of a "
		      "request behind it: zero_copy +%llu copied +%llu in %d tries (want zero_copy "
		      "+0, copied >= 4000 a try: copied, RP_FILE_SEND_COPY_SMALL, not "
		      "sendfile(2))",
		      mode[k], (unsigned long long)zc_all, (unsigned long long)cp_all, tries);
		CHECK(best < 30,
		      "partial next behind heads, %s: the next answer whole %llu ms after the "
		      "rest's send at best (ms: %s; want < 30: no wait for the body's "
		      "acknowledgement)",
		      mode[k], (unsigned long long)best, ms);
		printf("partial next behind heads, %s: the small body without a head copied "
		       "(zero_copy +%llu, copied +%llu in %d tries); the next answer in %s ms\n",
		       mode[k], (unsigned long long)zc_all, (unsigned long long)cp_all, tries, ms);
	}
	free(c);
}

/*
 * A request pipelined behind a body that went zero-copy waits for the
 * check of that body (the client's acknowledgement of it): 10 GETs of a
 * 1 MB range of big.bin in one write, and 10 x (HEAD, then a 90-byte
 * Range GET sent behind the HEAD's queued head: no head of its own) in
 * another. The queue was looked at by the 250 ms tick: at least 9 x 250 ms
 * each (1.5 to 2.1 s for 8 of the 1 MB ones, 1.5 s for 6 of the small
 * ones, measured); now every 1 ms while a request waits behind the check,
 * and a small body sent with a pipelined request behind it is copied (not
 * checked). Bound: 1.2 s each, half of what the tick alone takes.
 */
static void test_pipelined_behind_zc(void)
{
	struct conn *c = calloc(1, sizeof(*c));
	char req[4096] = "";
	struct resp r;
	uint64_t t0, big_ms, small_ms;
	int ok = 0;

	for (int i = 0; i < 10; i++)
		strcat(req, "GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1048575\r\n\r\n");
	c->fd = dial();
	t0 = now_ms();
	send_all(c->fd, req, strlen(req));
	for (int i = 0; i < 10; i++) {
		if (!read_resp(c, &r, false) && r.status == 206 && r.blen == 1048576 &&
		    !memcmp(r.body, big, r.blen))
			ok++;
		resp_free(&r);
	}
	big_ms = now_ms() - t0;
	CHECK(ok == 10, "pipelined behind zero-copy: %d of 10 1 MB answers whole", ok);
	req[0] = 0;
	for (int i = 0; i < 10; i++)
		strcat(req, "HEAD /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
			    "GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=10-99\r\n\r\n");
	ok = 0;
	t0 = now_ms();
	send_all(c->fd, req, strlen(req));
	for (int i = 0; i < 20; i++) {
		bool head = i % 2 == 0;

		if (!read_resp(c, &r, head) && r.status == (head ? 200 : 206) &&
		    (head || (r.blen == 90 && !memcmp(r.body, big + 10, 90))))
			ok++;
		resp_free(&r);
	}
	small_ms = now_ms() - t0;
	CHECK(ok == 20, "pipelined small bodies: %d of 20 answers whole", ok);
	CHECK(big_ms < 1200, "10 pipelined 1 MB answers took %llu ms", (unsigned long long)big_ms);
	CHECK(small_ms < 1200, "10 pipelined HEAD + 90 B Range answers took %llu ms",
	      (unsigned long long)small_ms);
	close(c->fd);
	free(c);
	printf("pipelined behind zero-copy: 10 x 1 MB in %llu ms, 10 x (HEAD, 90 B) in %llu ms\n",
	       (unsigned long long)big_ms, (unsigned long long)small_ms);
}

/* A last (Connection: close) zero-copy answer: its FIN waits behind the
 * body's check (acknowledged, and the file not shrunk). A client reading
 * to the EOF sends nothing after its request, so only the 1 ms poll sees
 * the acknowledgement: the EOF follows the body within a few ms, not at
 * the next 250 ms tick (median of 9: 249 ms before, 1 ms after). */
static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void test_close_fin_soon(void)
{
	static const char req[] = "GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
				  "Range: bytes=0-1048575\r\n\r\n";
	uint64_t gap[9];
	int ok = 0;

	for (int i = 0; i < 9; i++) {
		struct conn *c = calloc(1, sizeof(*c));
		struct pollfd p;
		struct resp r;
		char b[256];
		uint64_t t0;
		ssize_t n = -1;

		c->fd = dial();
		send_all(c->fd, req, sizeof(req) - 1);
		if (!read_resp(c, &r, false) && r.status == 206 && r.blen == 1048576 &&
		    !memcmp(r.body, big, r.blen))
			ok++;
		resp_free(&r);
		t0 = now_ms();
		p = (struct pollfd){ .fd = c->fd, .events = POLLIN };
		if (poll(&p, 1, 3000) == 1)
			n = recv(c->fd, b, sizeof(b), 0);
		gap[i] = n == 0 ? now_ms() - t0 : 3000;
		close(c->fd);
		free(c);
	}
	qsort(gap, 9, sizeof(gap[0]), cmp_u64);
	CHECK(ok == 9, "Connection: close 1 MB answers: %d of 9 whole", ok);
	CHECK(gap[4] < 50, "EOF after a last zero-copy body: median %llu ms (max %llu)",
	      (unsigned long long)gap[4], (unsigned long long)gap[8]);
	printf("last answer's EOF after its body: median %llu ms, max %llu ms (9 connections)\n",
	       (unsigned long long)gap[4], (unsigned long long)gap[8]);
}

/* SIGUSR1: the server's "shard 0:" stats line into @line; false if none came
 * within 3 s. */
static bool server_stats(char *line, size_t cap)
{
	static char acc[16384];
	size_t have = 0;
	uint64_t end = now_ms() + 3000;

	kill(server, SIGUSR1);
	while (now_ms() < end && have < sizeof(acc) - 1) {
		struct pollfd p = { .fd = server_out, .events = POLLIN };
		char *s, *nl;
		ssize_t r;

		if (poll(&p, 1, 50) <= 0)
			continue;
		r = read(server_out, acc + have, sizeof(acc) - 1 - have);
		if (r <= 0)
			return false;
		have += (size_t)r;
		acc[have] = 0;
		if ((s = strstr(acc, "shard 0:")) && (nl = strchr(s, '\n'))) {
			size_t n = (size_t)(nl - s) < cap - 1 ? (size_t)(nl - s) : cap - 1;

			memcpy(line, s, n);
			line[n] = 0;
			return true;
		}
	}
	return false;
}

/* The counter after @name in a stats line (0 if none). */
static uint64_t stat_of(const char *line, const char *name)
{
	const char *v = strstr(line, name);

	return v ? strtoull(v + strlen(name), NULL, 10) : 0;
}

/* A client with a 4 KB window sends a GET of a 256 KB body (past 16 KB:
 * zero-copy, its check pending once serve's socket holds it all) with
 * another pipelined behind, and reads nothing; -1 when it could not. */
static const char stuck_reqs[] =
	"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-262143\r\n\r\n"
	"GET /f05.txt HTTP/1.1\r\nHost: x\r\n\r\n";

static int dial_window(int rcv);

static int stuck_client(void)
{
	int fd = dial_window(4096);

	if (fd >= 0 && !send_all(fd, stuck_reqs, sizeof(stuck_reqs) - 1)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/*
 * A client that stops reading behind a zero-copy body: the request behind
 * it waits for the body's acknowledgement, and the shard's pass looks at
 * the check backed off (1 ms while the queue falls, doubled each look that
 * finds it still, up to 250 ms). Counted over 2 s of the stall: the looks
 * (zc_polls, one SIOCOUTQ each) were one a millisecond, about 2,000; now
 * at most 40. Then it reads: both answers whole, in order.
 */
static void test_stuck_behind_zc(void)
{
	static const char f05[] = "file number 5 says 25\n";
	struct conn *c = calloc(1, sizeof(*c));
	struct timeval tv = { .tv_sec = 5 };
	struct resp r1, r2;
	char line[4096];
	uint64_t p0 = 0, p1 = 0, t0;
	bool ok;

	c->fd = stuck_client();
	CHECK(c->fd >= 0, "stuck behind zero-copy: dial");
	if (c->fd < 0) {
		free(c);
		return;
	}
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	usleep(300 * 1000); /* the body queued whole, its check pending */
	CHECK(server_stats(line, sizeof(line)), "stuck behind zero-copy: stats");
	p0 = stat_of(line, "zc_polls ");
	usleep(2000 * 1000);
	CHECK(server_stats(line, sizeof(line)), "stuck behind zero-copy: stats");
	p1 = stat_of(line, "zc_polls ");
	/* at least one: the check was pending and listed all along (its
	 * reads still come, backed off), not ended or never begun */
	CHECK(p1 - p0 >= 1 && p1 - p0 <= 40,
	      "stuck behind zero-copy: %llu looks at its check in 2 s (want 1 to 40)",
	      (unsigned long long)(p1 - p0));
	t0 = now_ms();
	ok = !read_resp(c, &r1, false) && r1.status == 206 && r1.blen == 262144 &&
	     !memcmp(r1.body, big, 262144);
	if (ok)
		ok = !read_resp(c, &r2, false) && r2.status == 200 && r2.blen == sizeof(f05) - 1 &&
		     !memcmp(r2.body, f05, sizeof(f05) - 1);
	else
		memset(&r2, 0, sizeof(r2));
	CHECK(ok, "stuck behind zero-copy: both answers whole once it reads");
	printf("stuck behind zero-copy: %llu looks at the check in 2 s of the stall; both answers "
	       "%s %llu ms after it read\n",
	       (unsigned long long)(p1 - p0), ok ? "whole" : "NOT whole",
	       (unsigned long long)(now_ms() - t0));
	resp_free(&r1);
	resp_free(&r2);
	close(c->fd);
	free(c);
}

/*
 * The idle spin held while every connection has bytes of a body of 1 MB
 * or more still to send (BIG_BODY in cmd_serve.c): a client with a 4 KB
 * window GETs big.bin, 8 MB, more than serve's socket takes (tcp_wmem's
 * 4 MB at most; 2 MB went in whole), and reads nothing. The stats count it in a
 * big body and show the spin held when it is the only connection; an idle
 * second client lets go; once the first has read its body whole the count
 * is 0 again (a stuck count would hold the spin of a shard whose clients
 * all wait for requests; 8 MB is below TAIL_BODY: no tail is counted).
 *
 * The tail (TAIL_BODY, 32 MB): a keep-alive client reads big.bin (8 MB)
 * whole: the first stats after the read count nothing (below TAIL_BODY);
 * it reads huge.bin (32 MB) whole and idles: the first stats after the
 * read still count it and hold the spin (the rule before counted a body
 * only until its last byte was with the socket: 0 and 0 there), and within
 * 3 s of the read both are 0 again (the tail's bound, 0.5 to 0.75 s); it
 * reads huge.bin whole once more and GETs small.bin (16 KB): its request
 * ends the tail, the first stats after that answer count nothing.
 *
 * Then a client reads a 1 MB body whole, three times, and idles: a 1 MB
 * body is not held through its tail, so the first stats after the read
 * count no big body and no hold, while its zero-copy check may still wait
 * for the tick (the wait for a next request, the gap the spin is for). The waits poll the stats, bounded: 5 s each in 10 ms
 * steps (3 s a stats answer), 5 s a read.
 */
static bool spin_stats_wait(char *line, size_t cap, uint64_t big_want, int held_want,
			    uint64_t *live, uint64_t *nbig, uint64_t *held)
{
	uint64_t end = now_ms() + 5000;

	do {
		if (server_stats(line, cap)) {
			*live = stat_of(line, " live ");
			*nbig = stat_of(line, "big_bodies ");
			*held = stat_of(line, "spin_held ");
			/* held_want < 0: held exactly when it is the only one */
			if (*nbig == big_want &&
			    *held == (held_want < 0 ? *live == 1 : (uint64_t)held_want))
				return true;
		}
		usleep(10 * 1000);
	} while (now_ms() < end);
	return false;
}

/* One stats sample at once: true when it came, with its counts. */
static bool spin_sample(char *line, size_t cap, uint64_t *live, uint64_t *nbig, uint64_t *held)
{
	if (!server_stats(line, cap))
		return false;
	*live = stat_of(line, " live ");
	*nbig = stat_of(line, "big_bodies ");
	*held = stat_of(line, "spin_held ");
	return true;
}

/* @r is huge.bin whole: big.bin HUGE / BIG times */
static bool huge_whole(const struct resp *r)
{
	if (r->status != 200 || r->blen != HUGE)
		return false;
	for (unsigned i = 0; i < HUGE / BIG; i++)
		if (memcmp(r->body + (size_t)i * BIG, big, BIG))
			return false;
	return true;
}

/* The tail of a HUGE body (TAIL_BODY) counted until the tick's bound or
 * the client's next request, an 8 MB one's not (test_spin_hold) */
static void test_spin_tail(void)
{
	static const char req[] = "GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char req8[] = "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char req_head[] = "HEAD /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n";
	struct conn *c = calloc(1, sizeof(*c));
	struct timeval tv = { .tv_sec = 5 };
	uint64_t live = 0, b1 = 0, h1 = 0, b2 = 1, h2 = 1, b3 = 0, h3 = 0, b4 = 1, h4 = 1, l;
	uint64_t b8 = 1, h8 = 1, t0, waited = 0;
	char line[4096];
	struct resp r = { 0 };
	bool ok;

	c->fd = dial();
	if (c->fd >= 0)
		setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* 8 MB: below TAIL_BODY, not counted once its last byte went */
	ok = c->fd >= 0 && send_all(c->fd, req8, sizeof(req8) - 1) && !read_resp(c, &r, false);
	ok = ok && r.status == 200 && r.blen == BIG && !memcmp(r.body, big, BIG);
	resp_free(&r);
	ok = ok && spin_sample(line, sizeof(line), &l, &b8, &h8) && !b8 && !h8;
	CHECK(ok, "spin tail: %llu big bodies, spin_held %llu after an 8 MB body was read whole "
		  "(want 0, 0: not held through its tail)",
	      (unsigned long long)b8, (unsigned long long)h8);
	ok = c->fd >= 0 && send_all(c->fd, req, sizeof(req) - 1) && !read_resp(c, &r, false);
	ok = ok && huge_whole(&r);
	resp_free(&r);
	CHECK(ok, "spin tail: the %u MB body whole", HUGE >> 20);
	if (!ok)
		goto out;
	t0 = now_ms();
	/* at once: its last byte went to the socket milliseconds ago */
	ok = spin_sample(line, sizeof(line), &live, &b1, &h1) && b1 == 1 && h1 == (live == 1);
	CHECK(ok, "spin tail: %llu big bodies, spin_held %llu with %llu live after a %u MB body "
		  "was read whole (want 1, %d: held through its tail)",
	      (unsigned long long)b1, (unsigned long long)h1, (unsigned long long)live, HUGE >> 20,
	      live == 1);
	ok = spin_stats_wait(line, sizeof(line), 0, 0, &l, &b2, &h2);
	waited = now_ms() - t0;
	/* the bound is 2-3 ticks (0.5-0.75 s); 1500 ms leaves room for a
	 * loaded host's late ticks and still fails a bound of 6 ticks */
	CHECK(ok && waited <= 1500,
	      "spin tail: %llu big bodies, spin_held %llu %llu ms after the read of a quiet client "
	      "(want 0, 0 within 1500 ms: the tail is bounded)",
	      (unsigned long long)b2, (unsigned long long)h2, (unsigned long long)waited);
	/* again, then a next request: the tail ends with it */
	ok = send_all(c->fd, req, sizeof(req) - 1) && !read_resp(c, &r, false) && huge_whole(&r);
	resp_free(&r);
	ok = ok && spin_sample(line, sizeof(line), &l, &b3, &h3) && b3 == 1;
	CHECK(ok, "spin tail: the second %u MB body whole and counted after it (%llu big bodies)",
	      HUGE >> 20, (unsigned long long)b3);
	/* a HEAD: its answer has no body, so no new answer's count hides a
	 * tail the request left standing */
	ok = send_all(c->fd, req_head, sizeof(req_head) - 1) && !read_resp(c, &r, true);
	ok = ok && r.status == 200;
	resp_free(&r);
	ok = ok && spin_sample(line, sizeof(line), &l, &b4, &h4) && !b4 && !h4;
	CHECK(ok, "spin tail: %llu big bodies, spin_held %llu after the next request (a HEAD) "
		  "was answered (want 0, 0: the request ended the tail)",
	      (unsigned long long)b4, (unsigned long long)h4);
	printf("spin tail: 8 MB read whole: %llu big bodies, spin_held %llu; %u MB: %llu, %llu "
	       "(%llu live), released %llu ms after the read; after a next request %llu, %llu\n",
	       (unsigned long long)b8, (unsigned long long)h8, HUGE >> 20, (unsigned long long)b1,
	       (unsigned long long)h1, (unsigned long long)live, (unsigned long long)waited,
	       (unsigned long long)b4, (unsigned long long)h4);
out:
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

static void test_spin_hold(void)
{
	static const char req[] =
		"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char req1m[] =
		"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1048575\r\n\r\n";
	struct conn *c = calloc(1, sizeof(*c));
	struct timeval tv = { .tv_sec = 5 };
	uint64_t live = 0, b1 = 0, h1 = 0, b2 = 1, h2 = 1, b3 = 1, h3 = 1;
	uint64_t b4 = 0, h4 = 0, l4;
	char line[4096];
	struct resp r;
	unsigned i, bad = 0;
	int idle;
	bool ok;

	c->fd = dial_window(4096);
	if (c->fd < 0 || !send_all(c->fd, req, sizeof(req) - 1)) {
		CHECK(false, "spin hold: dial");
		if (c->fd >= 0)
			close(c->fd);
		free(c);
		return;
	}
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* its body started, stalled on the window: held exactly when it is
	 * the shard's only connection (an earlier test's lingering one may
	 * still count in live) */
	ok = spin_stats_wait(line, sizeof(line), 1, -1, &live, &b1, &h1);
	CHECK(ok, "spin hold: %llu big bodies, spin_held %llu with %llu live (want 1, %d)",
	      (unsigned long long)b1, (unsigned long long)h1, (unsigned long long)live,
	      live == 1);
	idle = dial();
	ok = idle >= 0 && spin_stats_wait(line, sizeof(line), 1, 0, &l4, &b2, &h2);
	CHECK(ok, "spin hold: spin_held %llu beside an idle client (want 0)",
	      (unsigned long long)h2);
	if (idle >= 0)
		close(idle);
	ok = !read_resp(c, &r, false) && r.status == 200 && r.blen == BIG &&
	     !memcmp(r.body, big, BIG);
	CHECK(ok, "spin hold: the 8 MB body whole once it reads");
	resp_free(&r);
	ok = spin_stats_wait(line, sizeof(line), 0, 0, &l4, &b3, &h3);
	CHECK(ok, "spin hold: %llu big bodies, spin_held %llu after it was read (want 0, 0)",
	      (unsigned long long)b3, (unsigned long long)h3);
	close(c->fd);

	test_spin_tail();

	/* a keep-alive client that reads its 1 MB bodies whole: not held
	 * through their tails */
	memset(c, 0, sizeof(*c));
	c->fd = dial();
	for (i = 0; i < 3 && c->fd >= 0; i++) {
		if (!send_all(c->fd, req1m, sizeof(req1m) - 1) || read_resp(c, &r, false)) {
			bad++;
			break;
		}
		ok = r.status == 206 && r.blen == 1048576 && !memcmp(r.body, big, 1048576);
		resp_free(&r);
		/* one sample, at once: the check may end at the tick (250 ms),
		 * and a later sample would not see the spin held for it */
		if (!ok || !server_stats(line, sizeof(line)) ||
		    (b4 = stat_of(line, "big_bodies ")) || (h4 = stat_of(line, "spin_held ")))
			bad++;
	}
	CHECK(c->fd >= 0 && !bad,
	      "spin hold: a client idle after reading 1 MB whole: %u of 3 reads with big_bodies "
	      "or spin_held (last %llu, %llu; want 0, 0)",
	      bad, (unsigned long long)b4, (unsigned long long)h4);
	printf("spin hold: 1 big body stalled (%llu live, spin_held %llu), beside an idle client "
	       "spin_held %llu, %llu after the read; 1 MB read whole then idle: %u of 3 counted or held\n",
	       (unsigned long long)live, (unsigned long long)h1, (unsigned long long)h2,
	       (unsigned long long)b3, bad);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

/*
 * Two clients stuck behind zero-copy bodies: A for 700 ms (its looks
 * backed off to 128 ms and more), then B, newly listed while the pass's
 * timer sleeps for A. The passes (soon_passes) follow the looks due, A's
 * and B's backed-off ones: 400 ms of B's stall cost 118 passes before
 * (the second timer armed again every 1 ms while the first slept, though
 * only 16 looks were due), 1 to 40 now. Both then read: every answer whole.
 */
static void test_stuck_two(void)
{
	int fa = stuck_client(), fb = -1;
	uint64_t p0 = 0, p1 = 0, l0 = 0, l1 = 0;
	char line[4096];

	CHECK(fa >= 0, "two stuck: dial A");
	if (fa < 0)
		return;
	usleep(700 * 1000);
	fb = stuck_client();
	CHECK(fb >= 0, "two stuck: dial B");
	if (fb < 0) {
		close(fa);
		return;
	}
	usleep(20 * 1000); /* B's body queued, its check listed */
	CHECK(server_stats(line, sizeof(line)), "two stuck: stats");
	p0 = stat_of(line, "soon_passes ");
	l0 = stat_of(line, "zc_polls ");
	usleep(400 * 1000);
	CHECK(server_stats(line, sizeof(line)), "two stuck: stats");
	p1 = stat_of(line, "soon_passes ");
	l1 = stat_of(line, "zc_polls ");
	CHECK(strstr(line, "soon_passes ") && p1 - p0 >= 1 && p1 - p0 <= 40,
	      "two stuck: %llu passes of the short timer in 400 ms (%llu looks; want 1 to 40)",
	      (unsigned long long)(p1 - p0), (unsigned long long)(l1 - l0));
	printf("two stuck behind zero-copy: %llu passes, %llu looks in 400 ms\n",
	       (unsigned long long)(p1 - p0), (unsigned long long)(l1 - l0));
	for (int k = 0; k < 2; k++) {
		struct conn *c = calloc(1, sizeof(*c));
		struct timeval tv = { .tv_sec = 5 };
		struct resp r1, r2;
		bool ok;

		c->fd = k ? fb : fa;
		setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		ok = !read_resp(c, &r1, false) && r1.status == 206 && r1.blen == 262144 &&
		     !memcmp(r1.body, big, 262144);
		if (ok)
			ok = !read_resp(c, &r2, false) && r2.status == 200;
		else
			memset(&r2, 0, sizeof(r2));
		CHECK(ok, "two stuck: client %c's answers whole once it reads", k ? 'B' : 'A');
		resp_free(&r1);
		resp_free(&r2);
		close(c->fd);
		free(c);
	}
}

/*
 * A client reset behind a zero-copy body, after 600 ms of not reading (its
 * check backed off): the reset ends the check, and the connection is gone
 * from the server (live) well within the 250 ms tick. Three ways: its
 * receive armed (the receive's error reports the reset); its receive
 * paused by 2.5 KB more pipelined behind (a poll reports it: 200-230 ms,
 * at the tick, without; hup_resets +1 asserted: the tick alone passed
 * the time bound in 2 runs of 4); half-closed first, the server read its EOF (the
 * backed-off looks read it, every 32 ms at most: 226 ms before).
 */
static void test_reset_behind_zc(void)
{
	static const char *const how[] = { "", ", paused", ", half-closed" };
	char more[2600] = "";

	while (strlen(more) < 2500)
		strcat(more, "GET /f05.txt HTTP/1.1\r\nHost: x\r\n\r\n");
	for (int k = 0; k < 3; k++) {
		struct linger lg = { 1, 0 };
		char line[4096];
		uint64_t live0 = 0, live = 0, t0, gone = 0, h0 = 0, h1 = 0;
		int fd = stuck_client();

		CHECK(fd >= 0, "reset behind zero-copy: dial");
		if (fd < 0)
			return;
		if (k == 1) {
			usleep(100 * 1000); /* its check pending: what comes now pauses it */
			send_all(fd, more, strlen(more));
		} else if (k == 2) {
			shutdown(fd, SHUT_WR);
		}
		usleep(600 * 1000);
		CHECK(server_stats(line, sizeof(line)), "reset behind zero-copy: stats");
		live0 = stat_of(line, " live ");
		h0 = stat_of(line, "hup_resets ");
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(fd); /* a reset: its body unread */
		t0 = now_ms();
		while (now_ms() - t0 < 1000 && server_stats(line, sizeof(line)) &&
		       (live = stat_of(line, " live ")) >= live0)
			usleep(2000);
		gone = now_ms() - t0;
		h1 = stat_of(line, "hup_resets ");
		CHECK(live < live0 && gone < 80,
		      "reset behind zero-copy%s: gone from the server after %llu ms (want < 80)",
		      how[k], (unsigned long long)gone);
		/* paused: the poll reported it (85, 53, 92, 70 ms at the tick,
		 * without one, passed the time bound 2 runs of 4) */
		CHECK(k != 1 || (strstr(line, "hup_resets ") && h1 == h0 + 1),
		      "reset behind zero-copy, paused: its poll reported the reset (hup_resets %llu -> %llu)",
		      (unsigned long long)h0, (unsigned long long)h1);
		printf("reset behind zero-copy%s: gone from the server %llu ms after the reset\n",
		       how[k], (unsigned long long)gone);
	}
}

/*
 * Resets counted once a connection: rounds of clients stuck behind a
 * zero-copy body (stuck_client), a third with their receive armed, a
 * third paused (2.5 KB more pipelined), a third half-closed, all reset at
 * once. resets moves by exactly the clients reset, hup_resets by exactly
 * the paused ones (their poll alone sees it). Before, a reset seen by the
 * receive's error and by the check it ends (body_check's poll) counted
 * twice: resets +2 for each client with its receive armed.
 */
static void test_reset_count(void)
{
	enum { PER = 12 };
	struct linger lg = {1, 0};
	unsigned rounds = reduced ? 2 : 4;
	char more[2600] = "", line[4096];

	while (strlen(more) < 2500)
		strcat(more, "GET /f05.txt HTTP/1.1\r\nHost: x\r\n\r\n");
	for (unsigned r = 0; r < rounds; r++) {
		uint64_t live0, live = 0, r0, h0, r1, h1, t0;
		int fd[PER];
		unsigned n = 0, paused = 0;

		CHECK(server_stats(line, sizeof(line)), "reset count: stats");
		live0 = stat_of(line, " live ");
		r0 = stat_of(line, " resets ");
		h0 = stat_of(line, "hup_resets ");
		for (int i = 0; i < PER; i++)
			fd[i] = stuck_client();
		usleep(100 * 1000); /* their checks pending: what comes now pauses them */
		for (int i = 0; i < PER; i++) {
			if (fd[i] < 0)
				continue;
			n++;
			if (i % 3 == 1) {
				send_all(fd[i], more, strlen(more));
				paused++;
			} else if (i % 3 == 2) {
				shutdown(fd[i], SHUT_WR);
			}
		}
		CHECK(n == PER, "reset count: %u of %d clients dialled", n, PER);
		usleep(300 * 1000);
		for (int i = 0; i < PER; i++) {
			if (fd[i] < 0)
				continue;
			setsockopt(fd[i], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			close(fd[i]); /* a reset: its body unread */
		}
		t0 = now_ms();
		while (now_ms() - t0 < 3000 && server_stats(line, sizeof(line)) &&
		       (live = stat_of(line, " live ")) > live0)
			usleep(5000);
		usleep(50 * 1000); /* a count after the close would show now */
		CHECK(server_stats(line, sizeof(line)), "reset count: stats");
		r1 = stat_of(line, " resets ");
		h1 = stat_of(line, "hup_resets ");
		CHECK(live <= live0, "reset count: round %u: live %llu, %llu before the clients", r,
		      (unsigned long long)live, (unsigned long long)live0);
		CHECK(r1 - r0 == n,
		      "reset count: round %u: resets %llu -> %llu for %u clients reset", r,
		      (unsigned long long)r0, (unsigned long long)r1, n);
		/* at most once each paused client, not exactly: this case
		 * proves the count once a connection (resets == n above), not
		 * which op saw a reset first. A paused client's reset reaches
		 * its hup poll (on_hup: hup_resets) and, in the same batch
		 * of completions, the tick's check of its pending body
		 * (on_tick: zc_poll, body_check's poll(2): resets alone);
		 * which is reaped first is the order of 12 resets' CQEs
		 * against the timer's, not serve's logic (+2 for 4 paused
		 * in 1 round of 4 once, under load). The pass's looks
		 * (soon_zc) cannot see it there: a reset leaves SIOCOUTQ
		 * where it was, and they read the reset only once the peer
		 * half-closed. That the poll reports a paused reset, and in
		 * time, is test_reset_behind_zc's paused case: one client,
		 * hup_resets exactly +1 and gone within 80 ms (the tick
		 * alone: 53-92 ms, over the bound 2 runs of 4). One
		 * suffices: telling the paths apart here would take a
		 * counter of the tick's resets, for a race the count-once
		 * property does not depend on. */
		CHECK(h1 - h0 <= paused,
		      "reset count: round %u: hup_resets %llu -> %llu for %u paused clients", r,
		      (unsigned long long)h0, (unsigned long long)h1, paused);
		printf("reset count: round %u: %u clients reset, resets +%llu, "
		       "hup_resets +%llu (%u paused)\n",
		       r, n, (unsigned long long)(r1 - r0), (unsigned long long)(h1 - h0), paused);
	}
}

/* Answers without a body gather into one send (the connection's rp_outq),
 * in order with a body answer behind them. */
static void test_pipelined_heads(void)
{
	static const char *const bodiless[] = {
		"HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /nope.txt HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /escape HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=100-200\r\n\r\n",
		"GET /hello.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: %s\r\n\r\n",
	};
	static const int want[] = { 200, 404, 403, 416, 304 };
	struct conn *c = calloc(1, sizeof(*c));
	char req[16384] = "", etag[128], line[2048];
	unsigned long long h0 = 0, m0 = 0, h1 = 0, m1 = 0;
	const char *v;
	struct resp r;
	int ok = 0, n = 0;

	CHECK(fetch("HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r, true) == 200, "HEAD");
	v = field(&r, "ETag");
	snprintf(etag, sizeof(etag), "%s", v ? v : "\"none\"");
	resp_free(&r);
	for (int g = 0; g < 3; g++) {
		for (int i = 0; i < 10; i++) {
			char one[256];

			snprintf(one, sizeof(one), bodiless[i % 5], etag);
			strcat(req, one);
		}
		strcat(req, "GET /f07.txt HTTP/1.1\r\nHost: x\r\n\r\n");
	}
	CHECK(server_stats(line, sizeof(line)) &&
		      (v = strstr(line, "queued heads ")) &&
		      sscanf(v, "queued heads %llu sendmsgs %llu", &h0, &m0) == 2,
	      "pipelined heads: no counters before: %s", line);
	c->fd = dial();
	send_all(c->fd, req, strlen(req));
	for (int g = 0; g < 3; g++) {
		for (int i = 0; i < 10; i++, n++) {
			if (!read_resp(c, &r, i % 5 == 0) && r.status == want[i % 5] &&
			    (i % 5 || r.clen == 12))
				ok++;
			else
				CHECK(0, "pipelined heads: answer %d: status %d, want %d", n,
				      r.status, want[i % 5]);
			resp_free(&r);
		}
		n++;
		if (!read_resp(c, &r, false) && r.status == 200 && r.blen == 22 &&
		    !memcmp(r.body, "file number 7 says 49\n", 22))
			ok++;
		else
			CHECK(0, "pipelined heads: answer %d: status %d, a body of %zu", n, r.status,
			      r.blen);
		resp_free(&r);
	}
	CHECK(ok == 33, "pipelined heads: %d of 33 in order", ok);
	CHECK(server_stats(line, sizeof(line)) &&
		      (v = strstr(line, "queued heads ")) &&
		      sscanf(v, "queued heads %llu sendmsgs %llu", &h1, &m1) == 2,
	      "pipelined heads: no counters after: %s", line);
	CHECK(h1 - h0 == 33 && m1 - m0 >= 1 && m1 - m0 <= 8,
	      "pipelined heads: %llu heads queued in %llu sendmsgs, want 33 in 1..8", h1 - h0,
	      m1 - m0);
	close(c->fd);
	free(c);
	printf("pipelined heads: %d of 33 answers in order, %llu heads left in %llu sendmsgs\n",
	       ok, h1 - h0, m1 - m0);
}

struct sender {
	int fd;
	const char *p;
	size_t len;
};

static void *send_thread(void *arg)
{
	struct sender *sd = arg;

	(void)send_all(sd->fd, sd->p, sd->len);
	return NULL;
}

static uint64_t stat_of(const char *line, const char *name);

/* Provided buffers the server's connections may keep in all: it copies
 * them into spill buffers once fewer than a quarter of its 1024 are free
 * (apps/cmd_serve.c, buffers_short), and one connection keeps at most 16
 * (HOLD_MAX). */
#define BUF_BUDGET (1024u * 3 / 4)
#define HOLD_MAX 16u

/* @n GETs of big.bin in one write, request i for bytes i*3..i*3+2: every
 * answer a 206 with its own Content-Range and bytes, in order. */
static int deep_pipeline(unsigned n)
{
	char *req = malloc((size_t)n * 96);
	struct conn *c = calloc(1, sizeof(*c));
	struct sender sd;
	pthread_t th;
	size_t len = 0;
	unsigned ok = 0;
	struct resp r;

	for (unsigned i = 0; i < n; i++)
		len += (size_t)sprintf(req + len, "GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: "
						   "bytes=%u-%u\r\n\r\n", i * 3, i * 3 + 2);
	c->fd = dial();
	sd = (struct sender){ c->fd, req, len };
	/* sent from a thread: the answers fill our socket while we send */
	if (c->fd < 0 || pthread_create(&th, NULL, send_thread, &sd))
		goto out;
	for (unsigned i = 0; i < n; i++) {
		char want[64];
		const char *v;

		snprintf(want, sizeof(want), "bytes %u-%u/%u", i * 3, i * 3 + 2, BIG);
		if (read_resp(c, &r, false)) {
			CHECK(0, "deep pipeline of %u: answer %u missing", n, i);
			break;
		}
		v = field(&r, "Content-Range");
		if (r.status == 206 && v && !strcmp(v, want) && r.blen == 3 &&
		    !memcmp(r.body, big + i * 3, 3))
			ok++;
		else
			CHECK(0, "deep pipeline of %u: answer %u: %d %s", n, i, r.status, v ? v : "");
		resp_free(&r);
		if (ok != i + 1)
			break;
	}
	shutdown(c->fd, SHUT_RDWR); /* ends the sender if it still sends */
	pthread_join(th, NULL);
out:
	if (c->fd >= 0)
		close(c->fd);
	free(c);
	free(req);
	return (int)ok;
}

static void test_deep_pipeline(void)
{
	static const char one[] = "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n";
	size_t total = 10u << 20, sent = 0, chunk = 64 * 1024;
	char *reqs = malloc(chunk), line[2048];
	long rss0, rss1;
	uint64_t end, blocked = 0, live0, live1;
	int fd, fresh;
	struct resp r;
	unsigned n1 = (unsigned)deep_pipeline(1500), n2 = (unsigned)deep_pipeline(4000);

	CHECK(n1 == 1500 && n2 == 4000, "deep pipeline: %u of 1500, %u of 4000 answered in order",
	      n1, n2);
	/* 10 MB of requests, never a byte read: the server stops reading */
	for (size_t at = 0; at + sizeof(one) - 1 <= chunk; at += sizeof(one) - 1)
		memcpy(reqs + at, one, sizeof(one) - 1);
	chunk -= chunk % (sizeof(one) - 1);
	CHECK(server_stats(line, sizeof(line)), "stats");
	live0 = stat_of(line, "pool_live ");
	rss0 = rss_kb(server);
	fd = dial();
	end = now_ms() + 15000;
	while (fd >= 0 && sent < total && now_ms() < end) {
		ssize_t w = send(fd, reqs + sent % chunk, chunk - sent % chunk,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w > 0) {
			sent += (size_t)w;
			blocked = 0;
		} else if (w < 0 && errno == EAGAIN) {
			if (!blocked)
				blocked = now_ms();
			else if (now_ms() - blocked > 1000)
				break; /* held back */
			usleep(2000);
		} else {
			break;
		}
	}
	rss1 = rss_kb(server);
	fresh = fetch("GET /f03.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r, false);
	resp_free(&r);
	CHECK(fresh == 200, "deep pipeline: a fresh client beside a deaf pipeliner got %d", fresh);
	CHECK(rss0 > 0 && rss1 > 0 && rss1 - rss0 < 24 * 1024,
	      "deep pipeline: server RSS %ld KB -> %ld KB after %zu bytes pipelined unread", rss0,
	      rss1, sent);
	CHECK(server_stats(line, sizeof(line)), "stats");
	/* kept buffers are the shard's own, HOLD_MAX a connection at most; the
	 * connection's own pool memory (head buffer, array of kept buffers,
	 * spill, queued heads) stays under 1 MB however much it sent */
	live1 = stat_of(line, "pool_live ");
	CHECK(stat_of(line, "overflows ") == 0 && stat_of(line, "held_max ") <= HOLD_MAX &&
		      live1 < live0 + (1u << 20),
	      "deep pipeline: overflows %llu, held_max %llu, pool_live %llu -> %llu",
	      (unsigned long long)stat_of(line, "overflows "),
	      (unsigned long long)stat_of(line, "held_max "), (unsigned long long)live0,
	      (unsigned long long)live1);
	printf("deep pipeline: 1500 and 4000 in one write all answered in order; %zu bytes "
	       "pipelined unread%s: server RSS %+ld KB, pool %+lld B, held_max %llu buffers, "
	       "a fresh client served\n", sent, sent < total ? " (then held back)" : "",
	       rss1 - rss0, (long long)(live1 - live0),
	       (unsigned long long)stat_of(line, "held_max "));
	if (fd >= 0)
		close(fd);
	free(reqs);
}

/* A client with a receive buffer of @rcv bytes, set before the connect so
 * the window it offers stays small; no receive timeout. -1 if it cannot
 * connect. */
static int dial_window(int rcv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* 40 clients pipeline 2 MB of GET /hello.txt each: the even ones read
 * 4 KB every 100 ms, the odd ones never read. Each keeps the server's
 * receive stopped while its answers go out, and each time it resumes the
 * kernel fills as many provided buffers as it can before the next stop
 * lands. They were kept until answered, up to all the shard's 1024 (a
 * review's run of 60 clients reading 4 KB/s: buf_out 1024/1024 for 38 s,
 * fresh clients accepted and never read). Now one connection keeps at
 * most HOLD_MAX and all of them under BUF_BUDGET, checked while they
 * pipeline; a fresh client, 2 s into the run, is answered within 2 s.
 * Before the bound this run kept 99 buffers on one connection (held_max)
 * but its fresh client was still answered: the bound, not the starvation,
 * is what it catches. */
static void test_pipeline_budget(void)
{
	enum { N = 40 };
	static const char one[] = "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char fresh_req[] = "GET /f05.txt HTTP/1.1\r\nHost: x\r\n\r\n";
	const size_t span = sizeof(one) - 1, quota = (2u << 20) / span * span;
	char *reqs = malloc(quota), line[2048], sink[4096], drop[4096];
	size_t sent[N] = { 0 }, total = 0, got = 0;
	uint64_t last_read[N] = { 0 }, t0 = now_ms(), fresh_at = 0, fresh_ms = 0, now, out = 0,
		 cnt = 0, back_ms;
	int fds[N], fresh = -1;
	bool answered = false, stats_ok = false;
	const char *v;

	for (size_t at = 0; at < quota; at += span)
		memcpy(reqs + at, one, span);
	for (int i = 0; i < N; i++)
		fds[i] = dial_window(4096); /* pipelines, never reads (the odd ones) */
	/* 6 s at most: 2 s of pipelining, then a fresh client given 2 s */
	/* the fresh client goes at the first turn 2 s in and has 2 s from its
	 * own dial (a turn can be slow under ASan); 20 s at most in all */
	while ((now = now_ms()) - t0 < 20000) {
		for (int i = 0; i < N; i++) {
			ssize_t w;

			if (fds[i] < 0)
				continue;
			if (sent[i] < quota) {
				size_t n = quota - sent[i] < (256u << 10) ? quota - sent[i] :
									      256u << 10;

				w = send(fds[i], reqs + sent[i], n, MSG_DONTWAIT | MSG_NOSIGNAL);
				if (w > 0)
					sent[i] += (size_t)w;
			}
			if (i % 2 == 0 && now - last_read[i] >= 100) {
				last_read[i] = now;
				(void)recv(fds[i], drop, sizeof(drop), MSG_DONTWAIT);
			}
		}
		if (fresh < 0 && now - t0 >= 2000) {
			fresh = dial();
			fresh_at = now_ms();
			CHECK(fresh >= 0 && send_all(fresh, fresh_req, sizeof(fresh_req) - 1),
			      "pipeline budget: fresh client: dial or send");
		}
		if (fresh >= 0 && !answered) {
			ssize_t r = recv(fresh, sink + got, sizeof(sink) - 1 - got, MSG_DONTWAIT);

			if (r > 0)
				got += (size_t)r;
			sink[got] = 0;
			if (strstr(sink, "\r\n\r\n")) {
				answered = true;
				fresh_ms = now_ms() - fresh_at;
			}
		}
		if (fresh >= 0 && (answered || now_ms() - fresh_at > 2000))
			break;
		usleep(5000);
	}
	for (int i = 0; i < N; i++)
		total += sent[i];
	CHECK(answered && !strncmp(sink, "HTTP/1.1 200 ", 13) && fresh_ms <= 2000,
	      "pipeline budget: a fresh client beside %d pipeliners (half never read) %s after "
	      "%llu ms", N, answered ? "answered" : "unanswered",
	      (unsigned long long)(answered ? fresh_ms : now_ms() - fresh_at));
	/* while they still pipeline */
	stats_ok = server_stats(line, sizeof(line));
	CHECK(stats_ok, "pipeline budget: stats");
	v = strstr(line, "buf_out ");
	out = stat_of(line, "buf_out ");
	cnt = v && strchr(v, '/') ? strtoull(strchr(v, '/') + 1, NULL, 10) : 0;
	/* held_max checks the per-connection bound (HOLD_MAX) is kept; the
	 * shard's quarter-free guard is not reached here: 40 connections keep
	 * at most 640 buffers, and the run peaks near 17 (buf_out_max) */
	CHECK(v && cnt == 1024 && out <= BUF_BUDGET && stat_of(line, "held_max ") <= HOLD_MAX,
	      "pipeline budget: buf_out %llu of %llu (budget %u), buf_out_max %llu, held_max %llu "
	      "(at most %u) after %zu bytes pipelined by %d clients: %s",
	      (unsigned long long)out, (unsigned long long)cnt, BUF_BUDGET,
	      (unsigned long long)stat_of(line, "buf_out_max "),
	      (unsigned long long)stat_of(line, "held_max "), HOLD_MAX, total, N, line);
	printf("pipeline budget: %d clients pipelined %zu KB (half read 40 KB/s, half never): a "
	       "fresh client answered in %llu ms, buf_out %llu/%llu (max %llu), held_max %llu, "
	       "spills %llu, overflows %llu\n", N, total >> 10, (unsigned long long)fresh_ms,
	       (unsigned long long)out, (unsigned long long)cnt,
	       (unsigned long long)stat_of(line, "buf_out_max "),
	       (unsigned long long)stat_of(line, "held_max "),
	       (unsigned long long)stat_of(line, "spills "),
	       (unsigned long long)stat_of(line, "overflows "));
	if (fresh >= 0)
		close(fresh);
	for (int i = 0; i < N; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	/* their connections end (reset): every buffer comes back */
	t0 = now_ms();
	while (now_ms() - t0 < 3000 && server_stats(line, sizeof(line)) &&
	       ((out = stat_of(line, "buf_out ")) != 0 || stat_of(line, "spill_bytes ") != 0))
		usleep(50 * 1000);
	back_ms = now_ms() - t0;
	/* and the shard's spill budget (a leak would close every later spill) */
	CHECK(out == 0 && stat_of(line, "spill_bytes ") == 0,
	      "pipeline budget: buf_out %llu, spill_bytes %llu 3 s after the clients left",
	      (unsigned long long)out, (unsigned long long)stat_of(line, "spill_bytes "));
	printf("pipeline budget: every buffer back %llu ms after the clients left\n",
	       (unsigned long long)back_ms);
	free(reqs);
}

/* BEHIND clients, each with a 4 KB receive window, write two requests in
 * one write: a 1 MB range of big.bin (zero-copy) and a GET of a small
 * file behind it, and read the first head only. While their bodies wait
 * in the server's socket, unread, the server must hold none of its
 * provided buffers (buf_out 0; the second requests not parsed yet:
 * requests moved by BEHIND): the bytes behind each head were copied out
 * of the buffer they came in (apps/cmd_serve.c, head_release). Then each
 * reads both answers whole, in order, and every buffer is back. Before,
 * each kept its buffer until its body was read and acknowledged: buf_out
 * 16. */
#define BEHIND 16u
static void test_behind(void)
{
	static const char reqs[] =
		"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1048575\r\n\r\n"
		"GET /f05.txt HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char f05[] = "file number 5 says 25\n";
	struct conn *cs = calloc(BEHIND, sizeof(*cs));
	struct timeval tv = { .tv_sec = 5 };
	char line[4096];
	uint64_t req0 = 0, req1 = 0, out = ~0ull, out_end = ~0ull, end;
	unsigned heads = 0, whole = 0;

	CHECK(server_stats(line, sizeof(line)), "behind: stats");
	req0 = stat_of(line, "requests ");
	for (unsigned i = 0; i < BEHIND; i++) {
		cs[i].fd = dial_window(4096);
		if (cs[i].fd >= 0)
			setsockopt(cs[i].fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (cs[i].fd < 0 || !send_all(cs[i].fd, reqs, sizeof(reqs) - 1))
			CHECK(0, "behind: client %u: dial or send", i);
	}
	/* each its first head (and what of the body came with it): 8 s */
	end = now_ms() + 8000;
	for (unsigned i = 0; i < BEHIND; i++) {
		while (cs[i].fd >= 0 && now_ms() < end &&
		       !memmem(cs[i].buf, cs[i].have, "\r\n\r\n", 4) && fill(&cs[i]) > 0)
			;
		heads += memmem(cs[i].buf, cs[i].have, "\r\n\r\n", 4) != NULL;
	}
	CHECK(heads == BEHIND, "behind: %u of %u first heads", heads, BEHIND);
	CHECK(server_stats(line, sizeof(line)), "behind: stats");
	req1 = stat_of(line, "requests ");
	out = stat_of(line, "buf_out ");
	CHECK(req1 - req0 == BEHIND && out == 0,
	      "behind: %llu requests parsed (want %u: the pipelined ones wait), buf_out %llu with "
	      "%u bodies unread and a request behind each (want 0)",
	      (unsigned long long)(req1 - req0), BEHIND, (unsigned long long)out, BEHIND);
	for (unsigned i = 0; i < BEHIND; i++) {
		struct resp r1, r2;
		bool ok = cs[i].fd >= 0 && !read_resp(&cs[i], &r1, false) && r1.status == 206 &&
			  r1.blen == (1u << 20) && !memcmp(r1.body, big, 1u << 20);

		if (ok)
			ok = !read_resp(&cs[i], &r2, false) && r2.status == 200 &&
			     r2.blen == sizeof(f05) - 1 && !memcmp(r2.body, f05, sizeof(f05) - 1);
		else
			memset(&r2, 0, sizeof(r2));
		whole += ok;
		resp_free(&r1);
		resp_free(&r2);
	}
	CHECK(whole == BEHIND, "behind: %u of %u clients got both answers whole, in order", whole,
	      BEHIND);
	for (unsigned i = 0; i < BEHIND; i++)
		if (cs[i].fd >= 0)
			close(cs[i].fd);
	end = now_ms() + 3000;
	while (now_ms() < end && server_stats(line, sizeof(line)) &&
	       (out_end = stat_of(line, "buf_out ")) != 0)
		usleep(50 * 1000);
	CHECK(out_end == 0, "behind: buf_out %llu after the clients left",
	      (unsigned long long)out_end);
	printf("behind: %u clients, a 1 MB body unread and a request pipelined behind each: "
	       "buf_out %llu while queued; %u of %u read both answers whole; buf_out %llu after\n",
	       BEHIND, (unsigned long long)out, whole, BEHIND, (unsigned long long)out_end);
	free(cs);
}

struct dl {
	int ok, status, err;
	size_t blen;
	uint64_t ms;
};

static void *download(void *arg)
{
	struct dl *d = arg;
	uint64_t t0 = now_ms();
	struct resp r;

	errno = 0;
	d->status = fetch("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n", &r, false);
	d->err = errno;
	d->blen = r.blen;
	d->ms = now_ms() - t0;
	if (d->status == 200 && r.blen == BIG && !memcmp(r.body, big, BIG))
		d->ok = 1;
	resp_free(&r);
	return NULL;
}

static void test_big(void)
{
	unsigned n = reduced ? 30 : 100, ok = 0;
	pthread_t *th = calloc(n, sizeof(*th));
	struct dl *d = calloc(n, sizeof(*d));
	struct resp r;

	CHECK(fetch("GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=1000000-1999999\r\n\r\n", &r,
		    false) == 206, "big range");
	CHECK(r.blen == 1000000 && !memcmp(r.body, big + 1000000, 1000000), "big range body");
	resp_free(&r);
	CHECK(fetch("GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=-100\r\n\r\n", &r, false) ==
		      206, "suffix");
	CHECK(r.blen == 100 && !memcmp(r.body, big + BIG - 100, 100), "suffix body");
	resp_free(&r);
	for (unsigned i = 0; i < n; i++)
		pthread_create(&th[i], NULL, download, &d[i]);
	for (unsigned i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		ok += (unsigned)d[i].ok;
		if (!d[i].ok)
			printf("big: download %u: status %d, %zu of %u body bytes, %s, after %llu ms\n",
			       i, d[i].status, d[i].blen, BIG, d[i].err ? strerror(d[i].err) : "no error",
			       (unsigned long long)d[i].ms);
	}
	CHECK(ok == n, "big: %u of %u downloads whole and correct", ok, n);
	printf("big: ranges of 8 MB file, %u concurrent downloads all byte-exact\n", ok);
	free(th);
	free(d);
}

/* Many keep-alive clients at once, each making a few requests. */
static void test_many_clients(void)
{
	unsigned n = reduced ? 200 : 1000, ok = 0;
	struct conn **cs = calloc(n, sizeof(*cs));
	struct resp r;

	for (unsigned i = 0; i < n; i++) {
		cs[i] = calloc(1, sizeof(**cs));
		cs[i]->fd = dial();
	}
	for (int round = 0; round < 3; round++)
		for (unsigned i = 0; i < n; i++) {
			char req[96], want[64];
			int f = (int)((i + (unsigned)round) % 30);

			if (cs[i]->fd < 0)
				continue;
			snprintf(req, sizeof(req), "GET /f%02d.txt HTTP/1.1\r\nHost: x\r\n\r\n", f);
			snprintf(want, sizeof(want), "file number %d says %d\n", f, f * f);
			if (send_all(cs[i]->fd, req, strlen(req)) && !read_resp(cs[i], &r, false) &&
			    r.status == 200 && r.blen == strlen(want) && !memcmp(r.body, want, r.blen))
				ok++;
			resp_free(&r);
		}
	CHECK(ok == 3 * n, "many clients: %u of %u answers right", ok, 3 * n);
	for (unsigned i = 0; i < n; i++) {
		if (cs[i]->fd >= 0)
			close(cs[i]->fd);
		free(cs[i]);
	}
	free(cs);
	printf("many clients: %u keep-alive connections at once, 3 requests each, all right\n", n);
}

/* A file rewritten and replaced while it is being downloaded: every answer
 * is one whole version, never a mix or a short body. */
struct churn {
	atomic_int stop;
	atomic_uint bad, ok; /* four readers count into them */
};

static void *churn_reader(void *arg)
{
	struct churn *ch = arg;
	struct resp r;

	while (!ch->stop) {
		int s = fetch("GET /churn.bin HTTP/1.1\r\nHost: x\r\n\r\n", &r, false);

		if (s == 200 && r.blen > 0 && (long long)r.blen == r.clen) {
			uint8_t v = r.body[0];
			bool same = true;

			for (size_t i = 0; i < r.blen; i++)
				same &= r.body[i] == v;
			if (same && r.blen == 65536u * (v % 4 + 1))
				ch->ok++;
			else
				ch->bad++;
		} else if (s != 200) {
			ch->bad++;
		}
		resp_free(&r);
	}
	return NULL;
}

static void test_changing_under_load(void)
{
	struct churn ch = { 0 };
	pthread_t th[4];
	uint8_t *buf = malloc(4 * 65536);
	char from[256], to[256];

	memset(buf, 0, 65536);
	put("churn.bin", buf, 65536);
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, churn_reader, &ch);
	snprintf(from, sizeof(from), "%s/churn.new", root);
	snprintf(to, sizeof(to), "%s/churn.bin", root);
	for (int v = 1; v <= 40; v++) {
		/* version v: v%4+1 blocks of 64 KB, every byte v; replaced by rename */
		size_t len = 65536u * (unsigned)(v % 4 + 1);

		memset(buf, v, len);
		put("churn.new", buf, len);
		rename(from, to);
		usleep(50000);
	}
	ch.stop = 1;
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	CHECK(ch.bad == 0 && ch.ok > 0, "file changing under load: %u whole answers, %u mixed or cut",
	      ch.ok, ch.bad);
	printf("changing under load: %u answers while the file was replaced 40 times, each one whole "
	       "version\n", ch.ok);
	free(buf);
}

/* Puts @name (@len bytes of @data) under the root, its path in @path,
 * and sends one GET of it (with the header lines @extra, "" for none)
 * from a client with a 4 KB receive window: the socket, or -1. */
static int window_get(const char *name, size_t len, const uint8_t *data, const char *extra,
		      char *path, size_t size)
{
	char req[256];
	int fd, n;

	put(name, data, len);
	snprintf(path, size, "%s/%s", root, name);
	fd = dial_window(4096);
	if (fd < 0)
		return -1;
	n = snprintf(req, sizeof(req), "GET /%s HTTP/1.1\r\nHost: x\r\n%s\r\n", name, extra);
	if (!send_all(fd, req, (size_t)n)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One read of an answer after its GET: waits for input (200 ms; 1 s once
 * @whole, the body all read and the connection kept open for the next
 * request), then receives at most @cap bytes into @buf. Returns the bytes
 * received, 0 when none came (read again while the caller's deadline
 * allows), or -1 when the answer ended: *@reset set on ECONNRESET, *@eof
 * on EOF, neither when it was @whole and nothing more came for 1 s. */
static ssize_t answer_recv(int fd, char *buf, size_t cap, bool whole, bool *reset, bool *eof)
{
	struct pollfd p = { fd, POLLIN, 0 };
	ssize_t r;

	if (poll(&p, 1, whole ? 1000 : 200) == 0)
		return whole ? -1 : 0;
	r = recv(fd, buf, cap, MSG_DONTWAIT);
	if (r < 0 && errno == EAGAIN)
		return 0;
	if (r <= 0) {
		*reset = r < 0 && errno == ECONNRESET;
		*eof = r == 0;
		return -1;
	}
	return r;
}

/* One GET of @name (@len bytes, every byte nonzero) by a client with a
 * 4 KB receive window; once its head is read (8 s at most) the file is
 * truncated to 64 KB in place and the client reads on (bounded: 8 s after
 * the truncation, 1 s of silence after a whole body). Returns 1 when the
 * answer ended in a reset, 0 when it came whole with the connection open or
 * ended by EOF, -1 on a setup failure; *@got: the body bytes read. */
static int truncated_get(const char *name, size_t len, const uint8_t *data, size_t *got)
{
	char path[256], *hdr_end;
	static char buf[1 << 16];
	size_t have = 0, body = 0, clen = 0;
	uint64_t end;
	bool reset = false, eof = false, in_body = false;
	int fd;

	fd = window_get(name, len, data, "", path, sizeof(path));
	if (fd < 0)
		return -1;
	/* the head read first (a deadline, not a fixed wait): the body has
	 * begun and the server queues what the socket takes */
	end = now_ms() + 8000;
	while (now_ms() < end) {
		ssize_t r = answer_recv(fd, buf + (in_body ? 0 : have),
					in_body ? sizeof(buf) : sizeof(buf) - have - 1,
					in_body && body >= clen, &reset, &eof);

		if (r < 0)
			break;
		if (r == 0)
			continue;
		if (in_body) {
			/* past the new end: the old bytes or zeros, not checked */
			body += (size_t)r;
			continue;
		}
		have += (size_t)r;
		buf[have] = '\0';
		hdr_end = strstr(buf, "\r\n\r\n");
		if (!hdr_end)
			continue;
		char *cl = strcasestr(buf, "Content-Length:");

		if (!cl || strncmp(buf, "HTTP/1.1 200", 12)) {
			close(fd);
			return -1;
		}
		clen = strtoull(cl + 15, NULL, 10);
		in_body = true;
		body = have - (size_t)(hdr_end + 4 - buf);
		if (truncate(path, 65536))
			abort();
		end = now_ms() + 8000;
	}
	close(fd);
	*got = body;
	printf("truncated under its body: %zu-byte file, Content-Length %zu, %zu body bytes, then "
	       "%s\n",
	       len, clen, body, reset ? "reset" : eof ? "EOF" : "open");
	if (!in_body || clen != len)
		return -1;
	return reset ? 1 : 0;
}

/* A file truncated in place while its body is in flight (docs/http.md): a
 * 4 MB body by sendfile, to a client that does not read, meets the new end
 * when the socket has room again (short_file). What the socket holds may
 * be zeros: the connection must end in a reset that drops it, not a FIN
 * behind it. The reset is serve's, not the client's: short_file +1,
 * resets unchanged (+1 before: answer_end counted the -EIO as a peer's
 * reset), and the next client is served. (A body all in the socket
 * before the truncation: test_truncated_queued.) */
static void test_truncated(void)
{
	uint8_t *data = malloc(4u << 20);
	size_t got = 0;
	char line[4096];
	uint64_t r0 = 0, s0 = 0, r1 = 0, s1 = 0;
	struct resp rs = { 0 };
	int r;

	for (size_t i = 0; i < (4u << 20); i++)
		data[i] = (uint8_t)(i % 251 + 1);
	CHECK(server_stats(line, sizeof(line)), "truncated: stats");
	r0 = stat_of(line, " resets ");
	s0 = stat_of(line, "short_file ");
	r = truncated_get("trunc.bin", 4u << 20, data, &got);
	CHECK(r == 1 && got < (4u << 20),
	      "4 MB file truncated under its body: %s, %zu body bytes",
	      r < 0 ? "no 200 of the full length" : r ? "reset" : "no reset", got);
	CHECK(server_stats(line, sizeof(line)), "truncated: stats");
	r1 = stat_of(line, " resets ");
	s1 = stat_of(line, "short_file ");
	CHECK(s1 == s0 + 1 && r1 == r0,
	      "truncated under its body: short_file %llu -> %llu (want +1), resets %llu -> %llu "
	      "(want unchanged: the reset is serve's)",
	      (unsigned long long)s0, (unsigned long long)s1, (unsigned long long)r0,
	      (unsigned long long)r1);
	CHECK(fetch("GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", &rs, false) == 200,
	      "truncated: the next client served");
	resp_free(&rs);
	free(data);
}

/* One GET of @name (@len bytes, every byte nonzero), with the header
 * lines @extra, by a client with a 4 KB receive window, which reads its
 * head and then nothing until the
 * server has counted the answer as sent (its stats' bytes, polled: 8 s at
 * most): the whole body waits in the server's socket. Then the file is
 * truncated to 64 KB in place, and after @delay_ms the client reads on
 * (bounded: 8 s, 1 s of silence after a whole body). Returns 1 when the
 * answer ended in a reset, 0 when it came whole with the connection left
 * open (or ended by EOF), -1 on a setup failure (no 200 of the full
 * length, or the body never all in the socket); *@got: the body bytes
 * read, *@zeros: how many of them were 0. */
static int queued_get(const char *name, size_t len, const uint8_t *data, const char *extra,
		      unsigned delay_ms, size_t *got, size_t *zeros)
{
	char path[256], line[4096], *hdr_end, *cl;
	static char buf[1 << 16];
	size_t have = 0, body = 0, clen = 0, zero = 0;
	uint64_t end, before, sent = 0;
	bool reset = false, eof = false;
	int fd;

	if (!server_stats(line, sizeof(line)))
		return -1;
	before = stat_of(line, " bytes ");
	fd = window_get(name, len, data, extra, path, sizeof(path));
	if (fd < 0)
		return -1;
	/* the head (and what of the body came with it) */
	end = now_ms() + 8000;
	for (hdr_end = NULL; !hdr_end && now_ms() < end;) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t r;

		if (poll(&p, 1, 200) <= 0)
			continue;
		r = recv(fd, buf + have, sizeof(buf) - have - 1, MSG_DONTWAIT);
		if (r <= 0)
			break;
		have += (size_t)r;
		buf[have] = '\0';
		hdr_end = strstr(buf, "\r\n\r\n");
	}
	cl = hdr_end ? strcasestr(buf, "Content-Length:") : NULL;
	if (!cl || strncmp(buf, "HTTP/1.1 200", 12)) {
		close(fd);
		return -1;
	}
	clen = strtoull(cl + 15, NULL, 10);
	body = have - (size_t)(hdr_end + 4 - buf);
	for (size_t i = 0; i < body; i++)
		zero += hdr_end[4 + i] == 0;
	/* the server counts an answer's bytes once its last one is in the
	 * socket: from then on the whole body waits there */
	while (now_ms() < end && server_stats(line, sizeof(line)) &&
	       (sent = stat_of(line, " bytes ") - before) < clen)
		usleep(20000);
	if (sent < clen) {
		printf("queued body: %zu bytes counted as sent of %zu: the body never all in the "
		       "socket\n", (size_t)sent, clen);
		close(fd);
		return -1;
	}
	if (truncate(path, 65536))
		abort();
	usleep(delay_ms * 1000u);
	end = now_ms() + 8000;
	while (now_ms() < end) {
		ssize_t r = answer_recv(fd, buf, sizeof(buf), body >= clen, &reset, &eof);

		if (r < 0)
			break;
		if (r == 0)
			continue;
		for (ssize_t i = 0; i < r; i++)
			zero += buf[i] == 0;
		body += (size_t)r;
	}
	close(fd);
	*got = body;
	*zeros = zero;
	printf("truncated with its body queued%s (read %u ms later): %zu-byte file, "
	       "Content-Length %zu, %zu body bytes (%zu zeros), then %s\n",
	       extra[0] ? " (Connection: close)" : "", delay_ms, len, clen, body, zero,
	       reset ? "reset" : eof ? "EOF" : "open");
	if (clen != len)
		return -1;
	return reset ? 1 : 0;
}

/* The file truncated after its whole body is in the server's socket (the
 * answer counted as sent): serve's check of the queued body (apps/
 * cmd_serve.c, zc_poll: each tick until the client acknowledged it) finds
 * the file shorter and resets the connection, and no next answer goes out
 * on it before. A client that reads later than a tick (600 ms) gets a
 * reset short of the body; one that reads at once may read the whole
 * body (zeros past 64 KB) before the check: then the reset follows it,
 * never a connection left open for the next request. Before the check:
 * the whole body with the connection open, both ways (docs/http.md). */
static void test_truncated_queued(void)
{
	uint8_t *data = malloc(1u << 20);
	size_t got = 0, zeros = 0;
	int r;

	for (size_t i = 0; i < (1u << 20); i++)
		data[i] = (uint8_t)(i % 251 + 1);
	r = queued_get("queued.bin", 1u << 20, data, "", 600, &got, &zeros);
	CHECK(r == 1 && got < (1u << 20),
	      "1 MB body queued whole, truncated, read 600 ms later: %s, %zu body bytes",
	      r < 0 ? "not set up" : r ? "reset" : "no reset", got);
	r = queued_get("queued2.bin", 1u << 20, data, "", 0, &got, &zeros);
	CHECK(r == 1, "1 MB body queued whole, truncated, read at once: %s, %zu body bytes",
	      r < 0 ? "not set up" : r ? "reset" : "no reset (kept alive)", got);
	free(data);
}

/* The same for a last answer (Connection: close): serve checks its queued
 * body as it does a keep-alive one, and its FIN waits behind the check, so
 * the truncation ends it in a reset: read 600 ms later, short of the body;
 * read at once, the whole body (zeros past 64 KB) and then the reset where
 * the FIN would have said it was whole. Each counted in short_queued,
 * not in resets (+2 before: the -EIO counted as the peer's). Before, a last answer was not checked: its FIN went behind the body at
 * once, and both clients read the whole 1 MB and a clean EOF, nothing
 * counted. */
static void test_truncated_last(void)
{
	uint8_t *data = malloc(1u << 20);
	size_t got = 0, zeros = 0;
	char line[4096];
	uint64_t q0 = 0, q1 = 0, r0 = 0, r1 = 0;
	int r;

	for (size_t i = 0; i < (1u << 20); i++)
		data[i] = (uint8_t)(i % 251 + 1);
	CHECK(server_stats(line, sizeof(line)), "truncated last: stats");
	q0 = stat_of(line, "short_queued ");
	r0 = stat_of(line, " resets ");
	r = queued_get("last.bin", 1u << 20, data, "Connection: close\r\n", 600, &got, &zeros);
	CHECK(r == 1 && got < (1u << 20),
	      "Connection: close, 1 MB body queued whole, truncated, read 600 ms later: %s, %zu "
	      "body bytes", r < 0 ? "not set up" : r ? "reset" : "no reset (a clean close)", got);
	r = queued_get("last2.bin", 1u << 20, data, "Connection: close\r\n", 0, &got, &zeros);
	CHECK(r == 1,
	      "Connection: close, 1 MB body queued whole, truncated, read at once: %s, %zu body "
	      "bytes", r < 0 ? "not set up" : r ? "reset" : "no reset (a clean close)", got);
	CHECK(server_stats(line, sizeof(line)), "truncated last: stats");
	q1 = stat_of(line, "short_queued ");
	r1 = stat_of(line, " resets ");
	CHECK(q1 - q0 == 2, "truncated last: short_queued %llu -> %llu, want 2 more",
	      (unsigned long long)q0, (unsigned long long)q1);
	CHECK(r1 == r0, "truncated last: resets %llu -> %llu, want unchanged (serve's resets)",
	      (unsigned long long)r0, (unsigned long long)r1);
	free(data);
}

static void test_fresh(void)
{
	struct resp r;
	char from[256], to[256];
	uint64_t t0;
	bool seen = false;

	CHECK(fetch("GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r, false) == 200, "before");
	resp_free(&r);
	put("hello.new", "brand new contents\n", 19);
	snprintf(from, sizeof(from), "%s/hello.new", root);
	snprintf(to, sizeof(to), "%s/hello.txt", root);
	rename(from, to);
	t0 = now_ms();
	while (!seen && now_ms() - t0 < 3000) {
		if (fetch("GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r, false) == 200 &&
		    r.blen == 19 && !memcmp(r.body, "brand new contents\n", 19))
			seen = true;
		resp_free(&r);
		if (!seen)
			usleep(50000);
	}
	CHECK(seen && now_ms() - t0 <= 1500, "replaced file seen after %llu ms",
	      (unsigned long long)(now_ms() - t0));
	printf("fresh: replaced file served after %llu ms\n", (unsigned long long)(now_ms() - t0));
}

/*
 * The per-shard memo of whole-file 200 heads (cmd_serve.c, memo_find): a
 * head kept for one answer may be sent again only for one it fits. It
 * lives for one Date second, so each round below runs within one (every
 * answer's Date the same), retried up to MEMO_TRIES times when the
 * second turned between its requests; at least one round must stay in
 * its second, or the memo was never hit and nothing was tested.
 */
#define MEMO_TRIES 5
static const char memo_f[] = "the memo's file, 33 bytes long.\n";
static const char memo_a[] = "a";
static const char memo_b[] = "<p>b, an HTML page of its own</p>";

struct memo_round {
	char date[64];
	bool same; /* every answer of the round carried date */
};

/* One request on @c: 200, Content-Length == the bytes that came == @len
 * (none after a HEAD's head), the body @body; its Date noted in @m. */
static bool memo_ask(struct conn *c, const char *req, bool head_only, const char *body, size_t len,
		     struct resp *r, struct memo_round *m, const char *what)
{
	bool ok = send_all(c->fd, req, strlen(req)) && !read_resp(c, r, head_only) &&
		  r->status == 200 && r->clen == (long long)len &&
		  (head_only ? r->blen == 0 : r->blen == len && !memcmp(r->body, body, len));
	const char *d = field(r, "Date");

	CHECK(ok, "memo %s: status %d, Content-Length %lld, %zu body bytes (want %zu)", what,
	      r->status, r->clen, r->blen, len);
	if (!d)
		m->same = false;
	else if (!m->date[0])
		snprintf(m->date, sizeof(m->date), "%s", d);
	else if (strcmp(m->date, d))
		m->same = false;
	return ok;
}

/* @r's field @name is @want (NULL: absent). */
static bool field_is(const struct resp *r, const char *name, const char *want)
{
	const char *v = field(r, name);

	return want ? v && !strcmp(v, want) : !v;
}

/* Keep-alive against close, HEAD after GET, two files: one round. */
static void memo_round(struct memo_round *m)
{
	static const char get_f[] = "GET /memo_f.txt HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char get_a[] = "GET /memo_a.txt HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char get_b[] = "GET /memo_b.html HTTP/1.1\r\nHost: x\r\n\r\n";
	const char *f = memo_f, *a = memo_a, *b = memo_b;
	struct conn *c = calloc(1, sizeof(*c)), *k = calloc(1, sizeof(*c));
	struct resp r[4], h;
	char etag_a[128] = "";

	memset(m, 0, sizeof(*m));
	m->same = true;
	c->fd = dial();
	k->fd = dial();
	/* 1: keep-alive, then Connection: close elsewhere, then keep-alive */
	memo_ask(c, get_f, false, f, strlen(f), &r[0], m, "GET keep-alive");
	memo_ask(k, "GET /memo_f.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false, f,
		 strlen(f), &r[1], m, "GET close");
	memo_ask(c, get_f, false, f, strlen(f), &r[2], m, "GET keep-alive again");
	CHECK(field_is(&r[0], "Connection", "keep-alive"), "memo: first GET's head:\n%s",
	      r[0].head);
	CHECK(field_is(&r[1], "Connection", "close"), "memo: the close GET's head:\n%s", r[1].head);
	CHECK(closed_within(k->fd, 2000), "memo: the close GET's connection left open");
	CHECK(field_is(&r[2], "Connection", "keep-alive"), "memo: keep-alive after close:\n%s",
	      r[2].head);
	if (m->same)
		CHECK(!strcmp(r[0].head, r[2].head),
		      "memo: two keep-alive heads differ:\n%s---\n%s", r[0].head, r[2].head);
	/* 2: HEAD after GET, a GET pipelined behind it: the HEAD's head as the
	 * GET's, and no body bytes between it and the next answer */
	memo_ask(c,
		 "HEAD /memo_f.txt HTTP/1.1\r\nHost: x\r\n\r\n"
		 "GET /memo_f.txt HTTP/1.1\r\nHost: x\r\n\r\n",
		 true, f, strlen(f), &h, m, "HEAD");
	memo_ask(c, "", false, f, strlen(f), &r[3], m, "GET behind the HEAD");
	if (m->same)
		CHECK(!strcmp(h.head, r[0].head), "memo: HEAD's head differs:\n%s---\n%s", h.head,
		      r[0].head);
	CHECK(c->have == 0 && !closed_within(c->fd, 100), "memo: %zu bytes more after the answers",
	      c->have);
	for (int i = 0; i < 4; i++)
		resp_free(&r[i]);
	resp_free(&h);
	/* 3: two files, each asked twice: each its own length, type and ETag */
	memo_ask(c, get_a, false, a, strlen(a), &r[0], m, "GET a");
	memo_ask(c, get_b, false, b, strlen(b), &r[1], m, "GET b");
	memo_ask(c, get_a, false, a, strlen(a), &r[2], m, "GET a again");
	memo_ask(c, get_b, false, b, strlen(b), &r[3], m, "GET b again");
	if (field(&r[0], "ETag"))
		snprintf(etag_a, sizeof(etag_a), "%s", field(&r[0], "ETag"));
	for (int i = 0; i < 4; i += 2) {
		CHECK(field_is(&r[i], "Content-Type", "text/plain; charset=utf-8") &&
			      field_is(&r[i + 1], "Content-Type", "text/html; charset=utf-8"),
		      "memo: a's or b's type:\n%s---\n%s", r[i].head, r[i + 1].head);
		CHECK(etag_a[0] && field_is(&r[i], "ETag", etag_a) &&
			      !field_is(&r[i + 1], "ETag", etag_a),
		      "memo: a's and b's ETags:\n%s---\n%s", r[i].head, r[i + 1].head);
	}
	if (m->same)
		CHECK(!strcmp(r[0].head, r[2].head) && !strcmp(r[1].head, r[3].head),
		      "memo: a file's heads differ in one second");
	for (int i = 0; i < 4; i++)
		resp_free(&r[i]);
	close(c->fd);
	close(k->fd);
	free(c);
	free(k);
}

/* 4: a file replaced (rename, another size): every answer one version's
 * head with that version's body, the new one within 1.5 s. */
static void memo_replaced(void)
{
	static const char get_r[] = "GET /memo_r.txt HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char v1[] = "version one of memo_r, the longer one\n";
	static const char v2[] = "version two\n";
	struct conn *c = calloc(1, sizeof(*c));
	struct memo_round m = { .same = true };
	char from[256], to[256], etag1[128] = "";
	unsigned olds = 0, news = 0, bad = 0;
	uint64_t t0, seen = 0;
	struct resp r;

	put("memo_r.txt", v1, sizeof(v1) - 1);
	c->fd = dial();
	for (int i = 0; i < 2; i++) { /* kept, then sent from the memo */
		if (memo_ask(c, get_r, false, v1, sizeof(v1) - 1, &r, &m, "GET before") &&
		    field(&r, "ETag"))
			snprintf(etag1, sizeof(etag1), "%s", field(&r, "ETag"));
		resp_free(&r);
	}
	put("memo_r.new", v2, sizeof(v2) - 1);
	snprintf(from, sizeof(from), "%s/memo_r.new", root);
	snprintf(to, sizeof(to), "%s/memo_r.txt", root);
	CHECK(!rename(from, to), "memo: rename");
	t0 = now_ms();
	/* on after the new one is first seen, to see it from the memo too */
	for (int i = 0; i < 600 && now_ms() - t0 < 3000 && (!seen || now_ms() - seen < 100); i++) {
		bool got = send_all(c->fd, get_r, sizeof(get_r) - 1) && !read_resp(c, &r, false) &&
			   r.status == 200;

		if (got && r.clen == (long long)sizeof(v1) - 1 && r.blen == sizeof(v1) - 1 &&
		    !memcmp(r.body, v1, r.blen) && field_is(&r, "ETag", etag1) && !seen)
			olds++;
		else if (got && r.clen == (long long)sizeof(v2) - 1 && r.blen == sizeof(v2) - 1 &&
			 !memcmp(r.body, v2, r.blen) && field(&r, "ETag") &&
			 !field_is(&r, "ETag", etag1)) {
			news++;
			if (!seen)
				seen = now_ms();
		} else {
			if (!bad++)
				fprintf(stderr,
					"memo: replaced file's answer: %s(%zu body bytes)\n",
					r.head, r.blen);
		}
		resp_free(&r);
		if (!got)
			break;
		usleep(5000);
	}
	CHECK(!bad && etag1[0] && seen && seen - t0 <= 1500 && news >= 2,
	      "memo: replaced file: %u answers old, %u new (first after %llu ms), %u mixed or "
	      "wrong",
	      olds, news, seen ? (unsigned long long)(seen - t0) : 0ull, bad);
	close(c->fd);
	free(c);
	printf("memo: replaced file: %u old answers, then %u new from %llu ms, %u mixed\n", olds,
	       news, seen ? (unsigned long long)(seen - t0) : 0ull, bad);
}

/*
 * 5: a small file rewritten in place (same inode) while its body is kept
 * with its head (cmd_serve.c, memo_body): the new bytes are served to
 * every request that starts 1 s or more after the write (filecache.h's
 * promise, which the memo must not stretch), and to every request after
 * the server's cache saw the new stat (its reopened count moved); every
 * answer is one whole version whose head names it: Content-Length, ETag
 * and Last-Modified are those of the version the body's bytes are (each
 * version's bytes begin with its number; the test makes each ETag and
 * Last-Modified from an fstat after the write, as serve does from its
 * cache's stat). An answer from the memo (memo_bytes moved by its body)
 * must always be so. Only an answer the file's way, before the cache's
 * check (0.5 s) saw the new stat, may carry the old version's head over
 * the new bytes, a prefix of a longer version or a cut of a shorter one
 * (-EIO), as before the memo kept bodies: admitted in the first
 * MEMO_STAT_MS only. Same size (new mtime), same size with the old mtime
 * put back (only the ctime says: both versions' ETag and Last-Modified
 * are the same), shorter, longer, longer with the old mtime put back.
 */
#define MEMO_STAT_MS  600u  /* the cache's 0.5 s check, with room */
#define MEMO_FRESH_MS 1000u /* the contract: a request this late sees the change */

struct memo_ver {
	unsigned id; /* the number its bytes begin with ("version N") */
	char data[8192];
	size_t len;
	/* the heads that name these bytes: from an fstat after the write
	 * and, when the old mtime is put back, after that too */
	unsigned nval;
	char etag[2][48], lm[2][40];
};

static void memo_ver_make(struct memo_ver *v, unsigned ver, size_t len)
{
	memset(v, 0, sizeof(*v));
	v->id = ver;
	v->len = len;
	for (size_t i = 0; i < len; i++)
		v->data[i] = (char)('A' + (i * 7 + ver * 13 + i / 97) % 26);
	snprintf(v->data, len < 16 ? len : 16, "version %u    ", ver);
}

/* @v's ETag and Last-Modified as serve makes them from @fd's stat
 * (rp_http_etag_make: "mtime sec hex.nsec hex-size hex"; an IMF date). */
static bool memo_ver_note(struct memo_ver *v, int fd)
{
	struct stat st;
	struct tm tm;
	time_t t;

	if (fstat(fd, &st) || v->nval >= 2)
		return false;
	t = st.st_mtim.tv_sec;
	snprintf(v->etag[v->nval], sizeof(v->etag[0]), "\"%llx.%lx-%llx\"",
		 (unsigned long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec,
		 (unsigned long long)st.st_size);
	gmtime_r(&t, &tm);
	strftime(v->lm[v->nval], sizeof(v->lm[0]), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	v->nval++;
	return true;
}

/* The versions of one memo case: @v[i] numbered @first + i, of @lens[i]
 * bytes, for i < @n; @v[0] written as @name and its stat noted (@what
 * names the case in a failure). */
static void memo_vers_setup(const char *what, const char *name, struct memo_ver *v,
			    unsigned first, const size_t *lens, unsigned n)
{
	char p[256];
	int fd;

	for (unsigned i = 0; i < n; i++)
		memo_ver_make(&v[i], first + i, lens[i]);
	put(name, v[0].data, v[0].len);
	snprintf(p, sizeof(p), "%s/%s", root, name);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0 && memo_ver_note(&v[0], fd), "%s: stat of %s", what, name);
	if (fd >= 0)
		close(fd);
}

/* @r's head names @v: its ETag and Last-Modified are one stat's of @v's. */
static bool memo_names(const struct memo_ver *v, const struct resp *r)
{
	char etag[64];
	const char *f = field(r, "ETag");

	if (!f || strlen(f) >= sizeof(etag))
		return false;
	strcpy(etag, f);
	f = field(r, "Last-Modified");
	for (unsigned i = 0; f && i < v->nval; i++)
		if (!strcmp(etag, v->etag[i]) && !strcmp(f, v->lm[i]))
			return true;
	return false;
}

/* @r is @v whole: its Content-Length, its bytes. */
static bool memo_is(const struct memo_ver *v, const struct resp *r)
{
	return r->clen == (long long)v->len && r->blen == v->len &&
	       !memcmp(r->body, v->data, v->len);
}

/* @name's bytes become @v's in place (same inode: pwrite, then ftruncate
 * for a shorter one); @keep_mtime: the old mtime put back after. */
static bool memo_rewrite(const char *name, struct memo_ver *v, bool keep_mtime)
{
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT } };
	struct stat st;
	char p[256];
	bool ok;
	int fd;

	snprintf(p, sizeof(p), "%s/%s", root, name);
	fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ok = !fstat(fd, &st) && pwrite(fd, v->data, v->len, 0) == (ssize_t)v->len &&
	     !ftruncate(fd, (off_t)v->len) && memo_ver_note(v, fd);
	if (ok && keep_mtime) {
		ts[1] = st.st_mtim;
		ok = !futimens(fd, ts) && memo_ver_note(v, fd);
	}
	close(fd);
	return ok;
}

/* One phase: @from served (and kept) before, rewritten to @to, GETs
 * until MEMO_FRESH_MS + 300 ms after the write, the server's counters
 * read after each (memo_bytes: from the memo; reopened: the cache saw a
 * new stat). */
static void memo_phase(const char *what, const struct memo_ver *from, struct memo_ver *to,
		       bool keep_mtime)
{
	static const char get_w[] = "GET /memo_w.bin HTTP/1.1\r\nHost: x\r\n\r\n";
	static char line[16384];
	struct conn *c = calloc(1, sizeof(*c));
	unsigned olds = 0, news = 0, window = 0, late_old = 0, bad = 0, n = 0, memo = 0;
	uint64_t tw, seen = 0, mb0 = 0, mb1 = 0, mb, reo0 = 0, reo;
	bool reopened = false;
	struct resp r;

	c->fd = dial();
	/* kept: three GETs of the old version, all three from the memo */
	if (server_stats(line, sizeof(line)))
		mb0 = stat_of(line, " memo_bytes ");
	for (int i = 0; i < 3; i++) {
		bool ok = c->fd >= 0 && send_all(c->fd, get_w, sizeof(get_w) - 1) &&
			  !read_resp(c, &r, false) && r.status == 200 && memo_is(from, &r) &&
			  memo_names(from, &r);

		CHECK(ok, "memo %s: GET before the change: %d, %zu body bytes, %s", what, r.status,
		      r.blen, r.head);
		resp_free(&r);
	}
	if (server_stats(line, sizeof(line))) {
		mb1 = stat_of(line, " memo_bytes ");
		reo0 = stat_of(line, " reopened ");
	}
	CHECK(mb1 - mb0 == 3 * from->len, "memo %s: memo_bytes +%llu for 3 GETs of %zu B", what,
	      (unsigned long long)(mb1 - mb0), from->len);
	CHECK(memo_rewrite("memo_w.bin", to, keep_mtime), "memo %s: rewrite", what);
	/* the versions' heads differ (the mtime moved with the write) but
	 * where the old mtime was put back over the same size */
	CHECK((keep_mtime && from->len == to->len) ==
		      !strcmp(from->etag[from->nval - 1], to->etag[to->nval - 1]),
	      "memo %s: ETag %s then %s", what, from->etag[from->nval - 1],
	      to->etag[to->nval - 1]);
	tw = now_ms();
	mb = mb1;
	for (; n < 400 && now_ms() - tw < MEMO_FRESH_MS + 300; n++) {
		uint64_t t = now_ms() - tw; /* this request's start */
		bool got, from_memo = false;

		if (c->fd < 0)
			c->fd = dial();
		got = c->fd >= 0 && send_all(c->fd, get_w, sizeof(get_w) - 1) &&
		      !read_resp(c, &r, false) && r.status == 200;
		if (server_stats(line, sizeof(line))) {
			uint64_t now_mb = stat_of(line, " memo_bytes ");

			from_memo = got && r.blen && now_mb - mb == r.blen;
			mb = now_mb;
			reo = stat_of(line, " reopened ");
		} else {
			reo = reo0;
			CHECK(0, "memo %s: stats", what);
		}
		memo += from_memo;
		if (got && memo_is(to, &r) && memo_names(to, &r)) {
			news++;
			if (!seen)
				seen = t + 1;
		} else if (got && memo_is(from, &r) && memo_names(from, &r)) {
			olds++;
			if (t >= MEMO_FRESH_MS || seen || reopened)
				late_old++;
		} else if (!from_memo && t < MEMO_STAT_MS && !seen && !reopened &&
			   (!got || (r.clen == (long long)r.blen && r.blen <= to->len &&
				     memo_names(from, &r) && !memcmp(r.body, to->data, r.blen)))) {
			window++; /* the cache's old stat: the old head, a cut, or a prefix */
		} else {
			if (!bad++)
				fprintf(stderr, "memo %s: answer at %llu ms (%s): %s(%zu body bytes: %.12s)\n",
					what, (unsigned long long)t, from_memo ? "memo" : "file",
					got ? r.head : "(none)\n", got ? r.blen : 0,
					got && r.blen ? (const char *)r.body : "");
		}
		reopened = reo != reo0; /* for the next request: the cache saw it */
		if (got)
			resp_free(&r);
		else if (c->fd >= 0) {
			close(c->fd); /* cut: a fresh connection */
			c->fd = -1;
			c->have = 0;
		}
		usleep(5000);
	}
	CHECK(!bad && !late_old && seen && seen - 1 < MEMO_FRESH_MS && memo,
	      "memo %s: %u old (%u of them 1 s or more after the change, or after the new, or "
	      "the cache's reopen), %u new (first at %llu ms), %u in the stat window, %u wrong, "
	      "%u from the memo",
	      what, olds, late_old, news, seen ? (unsigned long long)(seen - 1) : 0ull, window,
	      bad, memo);
	printf("memo %s: %u old answers, then %u new from %llu ms, %u in the stat window, %u of "
	       "%u answers from the memo\n",
	       what, olds, news, seen ? (unsigned long long)(seen - 1) : 0ull, window, memo, n);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

static void memo_rewritten(void)
{
	static struct memo_ver v[6];
	static const size_t lens[6] = { 4096, 4096, 4096, 3000, 6000, 7000 };

	memo_vers_setup("memo", "memo_w.bin", v, 0, lens, 6);
	memo_phase("same size", &v[0], &v[1], false);
	memo_phase("same size and mtime", &v[1], &v[2], true);
	memo_phase("truncated", &v[2], &v[3], false);
	memo_phase("extended", &v[3], &v[4], false);
	memo_phase("extended, mtime put back", &v[4], &v[5], true);
}

/*
 * 6: the memo's read raced by a write. fanotify (FAN_ACCESS_PERM on a
 * file serve opens after the mark) holds serve's first read of
 * memo_r.bin, the memo's, until the test has rewritten the file to
 * another version of the same size (its mtime and ctime moved): the read
 * returns the new bytes under the head made from the old stat. Kept,
 * they would go from the memo under the old version's ETag for the rest
 * of that second; an fstat after the read sees the write and nothing is
 * kept (memo_stale +1), so no answer comes from the memo until the cache
 * has the new stat, and every answer from it names its bytes. A stat
 * taken before the read would see the old stat and keep the new bytes.
 * Skipped (said so) where fanotify's permission events are refused
 * (no CAP_SYS_ADMIN, or a kernel without them).
 */
static struct {
	int fan;
	const char *name;
	struct memo_ver *to;
	volatile int armed, rewrote, events, stop;
} race;

static void *race_thread(void *arg)
{
	char buf[4096] __attribute__((aligned(8)));
	uint64_t end = now_ms() + 20000; /* bounded whatever the caller does */

	(void)arg;
	while (!race.stop && now_ms() < end) {
		struct pollfd p = { .fd = race.fan, .events = POLLIN };
		struct fanotify_event_metadata *m = (void *)buf;
		ssize_t n;

		if (poll(&p, 1, 20) <= 0)
			continue;
		n = read(race.fan, buf, sizeof(buf));
		for (; n > 0 && FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
			struct fanotify_response resp = { .fd = m->fd, .response = FAN_ALLOW };

			if (m->fd < 0)
				continue;
			if (m->mask & FAN_ACCESS_PERM) {
				if (race.armed) { /* serve's read waits meanwhile */
					race.armed = 0;
					race.rewrote = memo_rewrite(race.name, race.to, false) ? 1 : -1;
				}
				race.events++;
				if (write(race.fan, &resp, sizeof(resp)) != sizeof(resp))
					race.rewrote = -2;
			}
			close(m->fd);
		}
	}
	return NULL;
}

static void memo_raced(void)
{
	static const char get_r[] = "GET /memo_r.bin HTTP/1.1\r\nHost: x\r\n\r\n";
	static const size_t lens[2] = { 4096, 4096 };
	static struct memo_ver v[2];
	static char line[16384];
	struct conn *c = calloc(1, sizeof(*c));
	unsigned memo = 0, bad = 0, got_new = 0, n = 0;
	uint64_t mb0 = 0, st0 = 0, mb, st1 = 0, t0;
	char p[256];
	pthread_t th;

	memo_vers_setup("memo race", "memo_r.bin", v, 10, lens, 2);
	snprintf(p, sizeof(p), "%s/memo_r.bin", root);
	usleep(20000); /* the next write's mtime is another */
	race.fan = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC, O_RDONLY | O_LARGEFILE);
	if (race.fan < 0 || fanotify_mark(race.fan, FAN_MARK_ADD, FAN_ACCESS_PERM, AT_FDCWD, p)) {
		printf("memo race: skipped: fanotify permission events refused (%s)\n",
		       strerror(errno));
		if (race.fan >= 0)
			close(race.fan);
		free(c);
		return;
	}
	race.name = "memo_r.bin";
	race.to = &v[1];
	race.armed = 1;
	race.stop = 0;
	if (pthread_create(&th, NULL, race_thread, NULL)) {
		CHECK(0, "memo race: thread");
		close(race.fan);
		free(c);
		return;
	}
	if (server_stats(line, sizeof(line))) {
		mb0 = stat_of(line, " memo_bytes ");
		st0 = stat_of(line, " memo_stale ");
	}
	mb = mb0;
	c->fd = dial();
	/* the first GET (its read held while the file is rewritten) and the
	 * rest of the cache's 0.5 s with the old stat */
	for (t0 = now_ms(); n < 60 && now_ms() - t0 < 400; n++) {
		struct resp r;
		bool got = c->fd >= 0 && send_all(c->fd, get_r, sizeof(get_r) - 1) &&
			   !read_resp(c, &r, false) && r.status == 200;
		bool from_memo = false;

		if (server_stats(line, sizeof(line))) {
			from_memo = got && r.blen && stat_of(line, " memo_bytes ") - mb == r.blen;
			mb = stat_of(line, " memo_bytes ");
			st1 = stat_of(line, " memo_stale ");
		}
		memo += from_memo;
		if (!got) {
			if (!bad++)
				fprintf(stderr, "memo race: no answer\n");
			break;
		}
		got_new += memo_is(&v[1], &r);
		/* from the memo: a whole version its head names; the file's
		 * way (the cache's old stat) may carry the old head */
		if (from_memo ? !((memo_is(&v[0], &r) && memo_names(&v[0], &r)) ||
				  (memo_is(&v[1], &r) && memo_names(&v[1], &r))) :
				!(memo_is(&v[0], &r) || memo_is(&v[1], &r))) {
			if (!bad++)
				fprintf(stderr, "memo race: answer %u (%s): %s(%.12s)\n", n,
					from_memo ? "memo" : "file", r.head, (const char *)r.body);
		}
		resp_free(&r);
		usleep(5000);
	}
	race.stop = 1;
	pthread_join(th, NULL);
	close(race.fan); /* a read still held is let go */
	if (c->fd >= 0)
		close(c->fd);
	free(c);
	CHECK(race.rewrote == 1 && race.events >= 1 && got_new == n && n > 0,
	      "memo race: rewrite %d in serve's read (%d reads seen), %u of %u answers the new "
	      "bytes",
	      race.rewrote, race.events, got_new, n);
	CHECK(!bad && st1 - st0 >= 1,
	      "memo race: %u answers wrong, memo_stale +%llu (the read's bytes kept?), %u from the "
	      "memo",
	      bad, (unsigned long long)(st1 - st0), memo);
	printf("memo race: the file rewritten in serve's read: memo_stale +%llu, %u of %u answers "
	       "from the memo, %u wrong\n",
	       (unsigned long long)(st1 - st0), memo, n, bad);
}

static void test_memo(void)
{
	struct memo_round m;
	int tries = 0, within = 0;

	put("memo_f.txt", memo_f, strlen(memo_f));
	put("memo_a.txt", memo_a, strlen(memo_a));
	put("memo_b.html", memo_b, strlen(memo_b));
	while (tries < MEMO_TRIES && !within) {
		tries++;
		memo_round(&m);
		within += m.same;
	}
	CHECK(within, "memo: no round of %d within one Date second", tries);
	memo_replaced();
	memo_rewritten();
	memo_raced();
	printf("memo: keep-alive/close, HEAD after GET, two files: %d round(s), the last within "
	       "one second: %s\n",
	       tries, within ? "yes" : "no");
}

/* poll(2) says the peer closed or reset @fd, without reading from it. */
static bool hung_up_within(int fd, unsigned ms)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };

	return poll(&p, 1, (int)ms) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Pipeline HEAD requests, 8 a millisecond (slow enough that the server's
 * pause lands before its head buffer overflows), without reading, until
 * the server stops taking them (sends block for 500 ms) or 4 s pass;
 * returns the socket. */
static int deaf_client(unsigned *sent)
{
	static const char req[] = "HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n";
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), small = 4096;
	uint64_t end = now_ms() + 4000, blocked = 0;
	unsigned burst = 0;

	*sent = 0;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	while (now_ms() < end) {
		ssize_t w = send(fd, req, sizeof(req) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w == (ssize_t)sizeof(req) - 1) {
			(*sent)++;
			blocked = 0;
			if (++burst % 8 == 0)
				usleep(1000);
		} else if (w < 0 && errno == EAGAIN) {
			if (!blocked)
				blocked = now_ms();
			else if (now_ms() - blocked > 500)
				break;
			usleep(1000);
		} else {
			break; /* closed already, or a partial request: stop here */
		}
	}
	return fd;
}

/* @n HEAD requests in one write from a client with a small receive
 * buffer that never reads: the server reads them all and its answers, more
 * than the client's buffer holds, wait in the server's socket. */
static int deaf_batch(unsigned n)
{
	static const char req[] = "HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n";
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), small = 4096;
	char *b = malloc(n * (sizeof(req) - 1));
	bool ok = b && fd >= 0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (ok)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	ok = ok && !connect(fd, (struct sockaddr *)&a, sizeof(a));
	for (unsigned i = 0; ok && i < n; i++)
		memcpy(b + i * (sizeof(req) - 1), req, sizeof(req) - 1);
	ok = ok && send_all(fd, b, n * (sizeof(req) - 1));
	free(b);
	if (!ok && fd >= 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* An answer's head from @fd into @h, a byte at a time (so nothing past it
 * is read), until its blank line or @end (ms); false if it did not come. */
static bool read_head(int fd, char *h, size_t cap, uint64_t end)
{
	size_t n = 0;

	h[0] = 0;
	while (n < cap - 1 && now_ms() < end) {
		if (read(fd, h + n, 1) != 1)
			return false;
		h[++n] = 0;
		if (strstr(h, "\r\n\r\n"))
			return true;
	}
	return false;
}

/* GET /@path (its @len bytes are big's first) with a 64 KB receive buffer,
 * reading @chunk bytes every @pause_us: the server's last bytes wait in its
 * socket for seconds after its send is done, past the keep-alive timeout.
 * With @heads, that many HEADs are pipelined behind the GET: their answers
 * queue in the server behind the body's tail; *@head_ok says all came.
 * Returns the body bytes that matched (@len when all came, in order). */
static size_t slow_read(const char *path, size_t len, size_t chunk, unsigned pause_us,
			unsigned heads, bool *head_ok)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rcv = 65536;
	struct timeval tv = { 5, 0 };
	uint64_t end = now_ms() + 30000;
	static const char hreq[] = "HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n";
	char req[64], head_b[1024], *b = malloc(chunk);
	size_t got = 0, rl = 0;
	unsigned answered = 0;

	if (head_ok)
		*head_ok = false;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (!b || fd < 0)
		goto out;
	rl = (size_t)snprintf(req, sizeof(req), "GET /%s HTTP/1.1\r\nHost: x\r\n\r\n", path);
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) || !send_all(fd, req, rl))
		goto out;
	for (unsigned i = 0; i < heads; i++)
		if (!send_all(fd, hreq, sizeof(hreq) - 1))
			goto out;
	if (!read_head(fd, head_b, sizeof(head_b), end) || !strstr(head_b, " 200 "))
		goto out;
	while (got < len && now_ms() < end) {
		size_t want = len - got < chunk ? len - got : chunk;
		ssize_t n = read(fd, b, want);

		if (n <= 0 || memcmp(b, big + got, (size_t)n))
			break;
		got += (size_t)n;
		usleep(pause_us);
	}
	while (got == len && answered < heads && read_head(fd, head_b, sizeof(head_b), end) &&
	       strstr(head_b, " 200 "))
		answered++;
	if (head_ok)
		*head_ok = answered == heads;
out:
	free(b);
	if (fd >= 0)
		close(fd);
	return got;
}

static void test_timeouts(void)
{
	const char *extra[] = { "--header-timeout", "1", "--keepalive-timeout", "1", NULL };
	uint64_t t0;
	int slow, idle, deaf;
	unsigned sent;
	uint64_t timeouts0;
	bool head_ok;
	struct resp r;
	char line[2048] = "";
	const char *v, *o;

	CHECK(server_start(extra) == 0, "server with short timeouts");
	slow = dial();
	send_all(slow, "GET /hello.txt HTTP/1.1\r\nHo", 27); /* and never the rest */
	idle = dial();
	t0 = now_ms();
	CHECK(closed_within(slow, 4000), "slowloris head not closed");
	CHECK(now_ms() - t0 >= 900, "slow head closed too early");
	CHECK(closed_within(idle, 4000), "idle keep-alive not closed");
	close(slow);
	close(idle);
	/* every request read and answered, the answers stuck in the server's
	 * socket: its queue is empty, so only the socket says the peer does
	 * not read (a graceful close queued its FIN behind them, unseen) */
	CHECK(server_stats(line, sizeof(line)), "stats");
	timeouts0 = stat_of(line, "send_timeouts ");
	deaf = deaf_batch(200);
	CHECK(deaf >= 0, "deaf batch client");
	t0 = now_ms();
	if (deaf >= 0 && !hung_up_within(deaf, 6000))
		CHECK(0, "a client that never reads its 200 answers, all sent, not closed (%s)",
		      server_stats(line, sizeof(line)) ? line : "no stats");
	else
		printf("timeouts: a client that never read its 200 answers (all sent) closed after "
		       "%llu ms\n", (unsigned long long)(now_ms() - t0));
	/* reset, not closed gracefully: counted as a send timeout */
	CHECK(server_stats(line, sizeof(line)) && stat_of(line, "send_timeouts ") > timeouts0,
	      "a client that never reads its answers not counted in send_timeouts (%s)", line);
	if (deaf >= 0)
		close(deaf);
	/* a slow reader is not deaf: its answer's tail waits in the socket
	 * past the keep-alive timeout while it still acknowledges */
	t0 = now_ms();
	size_t got = slow_read("big.bin", BIG, 65536, 50000, 0, NULL);

	if (got != BIG)
		CHECK(0, "a slow reader got %zu of %u bytes of its answer (%s)", got, BIG,
		      server_stats(line, sizeof(line)) ? line : "no stats");
	else
		printf("timeouts: a slow reader (1.3 MB/s) got all 8 MB in %llu ms with a 1 s "
		       "keep-alive timeout\n", (unsigned long long)(now_ms() - t0));
	/* the same with HEADs pipelined behind the GET: their answers wait in
	 * the server's queue while the body's tail drains (when the socket is
	 * full as the body ends); the reader still acknowledges, so it is not
	 * deaf */
	t0 = now_ms();
	got = slow_read("mid.bin", MID, 16384, 20000, 100, &head_ok);
	if (got != MID || !head_ok)
		CHECK(0, "a slow reader with 100 HEADs pipelined got %zu of %u bytes of its answer, "
		      "%s HEADs' answers (%s)", got, MID, head_ok ? "the" : "not all",
		      server_stats(line, sizeof(line)) ? line : "no stats");
	else
		printf("timeouts: a slow reader (~0.8 MB/s) with 100 HEADs pipelined got all 3 MB "
		       "and the HEADs' answers in %llu ms with a 1 s keep-alive timeout\n",
		       (unsigned long long)(now_ms() - t0));
	deaf = deaf_client(&sent);
	CHECK(deaf >= 0, "deaf client");
	t0 = now_ms();
	CHECK(fetch("GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r, false) == 200,
	      "a fresh client beside a deaf one");
	resp_free(&r);
	if (!hung_up_within(deaf, 6000)) {
		int unread = -1;

		(void)ioctl(deaf, FIONREAD, &unread);
		CHECK(0, "a client that never reads its %u answers not closed (%d bytes unread; %s)",
		      sent, unread, server_stats(line, sizeof(line)) ? line : "no stats");
	}
	t0 = now_ms() - t0;
	CHECK(server_stats(line, sizeof(line)), "stats");
	v = strstr(line, "send_timeouts ");
	o = strstr(line, "overflows ");
	printf("timeouts: a client that pipelined %u HEADs and never read closed %llu ms after it "
	       "stopped (server: %.*s, %.*s)\n",
	       sent, (unsigned long long)t0, v ? (int)strcspn(v, " ") + 2 : 0, v ? v : "",
	       o ? (int)strcspn(o, " ") + 2 : 0, o ? o : "");
	close(deaf);
	CHECK(server_stop(5000) == 0, "stop");
	printf("timeouts: a never-finished head and an idle connection closed\n");
}

/*
 * A connection that never sends a byte (a browser's preconnect, a stalled
 * client) is due its first head --header-timeout after the accept, not the
 * keep-alive timeout: with the longer one, one such client held a SIGQUIT
 * drain to the keep-alive timeout (found by a black-box run). A connection
 * that has had an answer keeps the keep-alive timeout.
 */
static void test_silent(void)
{
	const char *extra[] = { "--header-timeout", "1", "--keepalive-timeout", "4", NULL };
	static const char req[] = "HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n";
	char line[2048] = "", h[1024];
	uint64_t t0, to0, t_silent, t_kept;
	int silent, kept;

	CHECK(server_start(extra) == 0, "server with a 1 s header and 4 s keep-alive timeout");
	CHECK(server_stats(line, sizeof(line)), "stats");
	to0 = stat_of(line, "header_timeouts ");
	kept = dial();
	CHECK(kept >= 0 && send_all(kept, req, sizeof(req) - 1), "keep-alive client");
	CHECK(read_head(kept, h, sizeof(h), now_ms() + 3000) && strstr(h, " 200 "),
	      "keep-alive client's answer (%s)", h);
	silent = dial();
	CHECK(silent >= 0, "silent client");
	t0 = now_ms();
	CHECK(closed_within(silent, 2500), "a connection that said nothing not closed at the "
	      "header timeout (1 s; keep-alive 4 s)");
	t_silent = now_ms() - t0;
	CHECK(t_silent >= 900, "a silent connection closed after %llu ms, before its 1 s",
	      (unsigned long long)t_silent);
	CHECK(!closed_within(kept, 1500), "a connection with an answer closed at the header "
	      "timeout, not the keep-alive timeout");
	CHECK(closed_within(kept, 5000), "an idle keep-alive connection not closed at 4 s");
	t_kept = now_ms() - t0;
	CHECK(server_stats(line, sizeof(line)) && stat_of(line, "header_timeouts ") == to0 + 1,
	      "header_timeouts %llu -> %llu, not one more (%s)", (unsigned long long)to0,
	      (unsigned long long)stat_of(line, "header_timeouts "), line);
	close(silent);
	close(kept);
	CHECK(server_stop(5000) == 0, "stop");
	printf("silent: a connection that said nothing closed %llu ms after its accept (header "
	       "timeout 1 s), an idle one after an answer at %llu ms (keep-alive 4 s)\n",
	       (unsigned long long)t_silent, (unsigned long long)t_kept);

	/* a keep-alive timeout shorter than the header timeout does not cut a
	 * fresh connection's wait for its first head (it was closed at the
	 * keep-alive timeout, 1.26 s here, and counted idle_closed) */
	const char *shorter[] = { "--header-timeout", "3", "--keepalive-timeout", "1", NULL };

	CHECK(server_start(shorter) == 0, "server with a 3 s header and 1 s keep-alive timeout");
	CHECK(server_stats(line, sizeof(line)), "stats");
	to0 = stat_of(line, "header_timeouts ");
	silent = dial();
	CHECK(silent >= 0, "silent client");
	t0 = now_ms();
	CHECK(closed_within(silent, 5000), "a silent connection not closed at the header timeout "
	      "(3 s; keep-alive 1 s)");
	t_silent = now_ms() - t0;
	CHECK(t_silent >= 2700, "a silent connection closed after %llu ms: the keep-alive timeout "
	      "(1 s), not its 3 s header timeout", (unsigned long long)t_silent);
	CHECK(server_stats(line, sizeof(line)) && stat_of(line, "header_timeouts ") == to0 + 1,
	      "header_timeouts %llu -> %llu, not one more (%s)", (unsigned long long)to0,
	      (unsigned long long)stat_of(line, "header_timeouts "), line);
	close(silent);
	CHECK(server_stop(5000) == 0, "stop");
	printf("silent: with a shorter keep-alive timeout (1 s) a silent connection still had its "
	       "header timeout: closed at %llu ms (3 s)\n", (unsigned long long)t_silent);
}

/*
 * Clients that ask for the 8 MB file, half-close (SHUT_WR) and never read:
 * each body send finds its socket full, and io_uring reports the peer's
 * RDHUP to every poll, so a send that polled again at once spun (a whole
 * CPU). The server must idle meanwhile, serve fresh clients, and abort the
 * stuck sends once no byte has moved for the keep-alive timeout (3 s here),
 * counting them in send_timeouts.
 */
static void test_deaf_bodies(void)
{
	const char *extra[] = { "--keepalive-timeout", "3", NULL };
	static const char req[] = "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n";
	unsigned n = reduced ? 8 : 20, early = 0, closed = 0, fresh = 0;
	long long cpu0, cpu1;
	int fds[20];
	uint64_t t0, t1, end, waits0, waits1;
	char line[2048];
	const char *v;
	struct resp r;

	CHECK(server_start(extra) == 0, "server for deaf bodies");
	for (unsigned i = 0; i < n; i++) {
		int small = 4096;

		fds[i] = dial();
		CHECK(fds[i] >= 0, "deaf body client %u", i);
		if (fds[i] < 0)
			continue;
		setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
		CHECK(send_all(fds[i], req, sizeof(req) - 1), "deaf body request %u", i);
		shutdown(fds[i], SHUT_WR);
	}
	t0 = now_ms();
	usleep(300 * 1000); /* the sockets fill */
	CHECK(server_stats(line, sizeof(line)), "stats");
	waits0 = stat_of(line, " waits ");
	cpu0 = cpu_ms(server);
	t1 = now_ms();
	/* fresh clients beside them, for about 1.2 s */
	for (int i = 0; i < 6; i++) {
		if (fetch("GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r, false) == 200)
			fresh++;
		resp_free(&r);
		usleep(200 * 1000);
	}
	if (fetch("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n", &r, false) == 200 && r.blen == BIG &&
	    !memcmp(r.body, big, BIG))
		fresh++;
	resp_free(&r);
	cpu1 = cpu_ms(server);
	CHECK(server_stats(line, sizeof(line)), "stats");
	waits1 = stat_of(line, " waits ");
	t1 = now_ms() - t1;
	/* rp_poll_writable never answers RDHUP alone: a wait ends only when
	 * a deaf client's socket has room (spinning, ~1,700 each; with a
	 * 10 ms pause after RDHUP, ~90 each) */
	double wps = t1 ? (double)(waits1 - waits0) * 1000.0 / (double)t1 : 0;
	CHECK(wps < 5.0 * n, "body sends spin beside %u deaf clients: %.0f waits a second", n,
	      wps);
	CHECK(fresh == 7, "fresh clients beside deaf ones: %u of 7 served", fresh);
	CHECK(cpu0 >= 0 && cpu1 >= 0, "server CPU time");
	double pct = t1 ? 100.0 * (double)(cpu1 - cpu0) / (double)t1 : 0;
	CHECK(pct < 20.0, "server spins beside %u deaf clients: %.0f%% CPU over %llu ms", n, pct,
	      (unsigned long long)t1);
	for (unsigned i = 0; i < n; i++)
		if (fds[i] >= 0 && hung_up_within(fds[i], 0))
			early++;
	CHECK(early == 0, "%u deaf clients closed before the timeout", early);
	end = now_ms() + 7000;
	for (unsigned i = 0; i < n; i++) {
		uint64_t now = now_ms();

		if (fds[i] >= 0 && hung_up_within(fds[i], now < end ? (unsigned)(end - now) : 0))
			closed++;
	}
	t0 = now_ms() - t0;
	CHECK(closed == n, "%u of %u deaf body clients closed at the send timeout", closed, n);
	CHECK(server_stats(line, sizeof(line)), "stats");
	v = strstr(line, "send_timeouts ");
	CHECK(v && strtoull(v + 14, NULL, 10) >= n, "send_timeouts counts %u stuck sends: %.*s", n,
	      v ? (int)strcspn(v + 14, " ") + 14 : 0, v ? v : "");
	printf("deaf bodies: %u clients that half-closed and never read: server %.1f%% CPU over "
	       "%llu ms (%.0f waits a second), %u fresh served, all closed %llu ms after the requests (%.*s)\n",
	       n, pct, (unsigned long long)t1, wps, fresh, (unsigned long long)t0,
	       v ? (int)strcspn(v + 14, " ") + 14 : 0, v ? v : "");
	for (unsigned i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	CHECK(server_stop(5000) == 0, "stop");
}

/* ---- lingering close ---- */

/* A client socket with a 5 s bound on sends too (dial bounds receives). */
static int dial_bounded(void)
{
	struct timeval tv = {.tv_sec = 5};
	int fd = dial();

	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Read @fd into @out until EOF (0), an error (-errno: ECONNRESET is the
 * server's close with our bytes unread), a full @cap (-ENOSPC) or @ms
 * (-ETIMEDOUT); *@got: the bytes read. */
static int read_to_end(int fd, uint8_t *out, size_t cap, size_t *got, unsigned ms)
{
	uint64_t end = now_ms() + ms;

	*got = 0;
	while (now_ms() < end) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t r;

		if (poll(&p, 1, 50) <= 0)
			continue;
		r = recv(fd, out + *got, cap - *got, MSG_DONTWAIT);
		if (r == 0)
			return 0;
		if (r < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (r > 0 && (*got += (size_t)r) == cap)
			return -ENOSPC;
	}
	return -ETIMEDOUT;
}

/* Exactly one answer in @b[0, @n): status @status, Content-Length @wlen
 * and the body @want byte for byte, nothing after it. */
static bool one_answer(const uint8_t *b, size_t n, int status, const uint8_t *want, size_t wlen)
{
	const uint8_t *e = memmem(b, n, "\r\n\r\n", 4);
	struct resp r = {0};
	size_t hlen;
	const char *cl;

	if (!e || (hlen = (size_t)(e - b) + 4) >= sizeof(r.head) || n < 12)
		return false;
	memcpy(r.head, b, hlen);
	r.head[hlen] = 0;
	cl = field(&r, "Content-Length");
	return !strncmp(r.head, "HTTP/1.1 ", 9) && atoi(r.head + 9) == status && cl &&
	       atoll(cl) == (long long)wlen && n == hlen + wlen && !memcmp(b + hlen, want, wlen);
}

static const char *end_name(int end)
{
	return end == 0 ? "EOF" : end == -ETIMEDOUT ? "no EOF within 5 s" : strerror(-end);
}

/* The server's "lingering" gauge back to @want within @ms; its line in @line. */
static bool lingering_back(char *line, size_t cap, uint64_t want, unsigned ms)
{
	uint64_t end = now_ms() + ms;

	do {
		if (server_stats(line, cap) && stat_of(line, " lingering ") == want)
			return true;
		usleep(50 * 1000);
	} while (now_ms() < end);
	return false;
}

/*
 * A request with Connection: close and @extra more bytes in the same write
 * (pipelined GETs, as a client that pipelines behind its last request
 * sends them), then @more in 16 KB writes: the whole answer, then EOF.
 * Closing with bytes unread, or with bytes still on their way, sent a
 * reset, and the client read ECONNRESET (or lost the answer) instead of
 * the end. Against the server without lingering, 2 runs of 10 each: 64 KB
 * alone passed 20 of 20 (read and dropped before the answer was out),
 * 256 KB 15 of 20, 64 KB + 192 KB 8 of 20, 256 KB + 256 KB 0 of 20.
 */
static void linger_pipelined(size_t extra, size_t more, unsigned rounds)
{
	static const char req[] = "GET /small.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	static const char next[] = "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n";
	size_t len = sizeof(req) - 1 + extra, got, cap = 4 * SMALL;
	char *b = malloc(len + more);
	uint8_t *in = malloc(cap);
	unsigned good = 0;

	memcpy(b, req, sizeof(req) - 1);
	for (size_t at = sizeof(req) - 1; at < len + more; at += sizeof(next) - 1)
		memcpy(b + at, next,
		       len + more - at < sizeof(next) - 1 ? len + more - at : sizeof(next) - 1);
	for (unsigned i = 0; i < rounds; i++) {
		int fd = dial_bounded(), end, serr = 0;
		bool sent;

		CHECK(fd >= 0, "linger: dial");
		if (fd < 0)
			continue;
		sent = send_all(fd, b, len);
		for (size_t at = len; sent && at < len + more; at += 16384)
			sent = send_all(fd, b + at,
					len + more - at < 16384 ? len + more - at : 16384);
		if (!sent)
			serr = errno;
		end = read_to_end(fd, in, cap, &got, 5000);
		CHECK(sent,
		      "linger: %zu+%zu bytes behind a Connection: close request: the send "
		      "failed (%s)",
		      extra, more, strerror(serr));
		CHECK(end == 0,
		      "linger: %zu+%zu bytes behind a Connection: close request: %s after "
		      "%zu bytes, not EOF",
		      extra, more, end_name(end), got);
		CHECK(one_answer(in, got, 200, big, SMALL),
		      "linger: %zu+%zu bytes behind a Connection: close request: not the one 200 "
		      "with %u body bytes (%zu bytes read)",
		      extra, more, SMALL, got);
		if (sent && end == 0 && one_answer(in, got, 200, big, SMALL))
			good++;
		close(fd);
	}
	printf("linger: GET with Connection: close and %zu KB behind it in one write, %zu KB in "
	       "16 KB writes after: %u of %u got the whole answer, then EOF\n",
	       extra / 1024, more / 1024, good, rounds);
	free(in);
	free(b);
}

/* A malformed head and more behind it, and the client writes on for about
 * a second (its answer waits unread): the 400, then EOF. */
static void linger_refused(void)
{
	static const char bad[] = "\x01\x02garbage\r\n\r\n";
	char junk[16384];
	uint8_t in[4096];
	size_t got;
	unsigned writes = 0;
	int fd = dial_bounded(), end = -1, serr = 0;
	bool sent;
	uint64_t stop;

	CHECK(fd >= 0, "linger: dial");
	if (fd < 0)
		return;
	memset(junk, 'x', sizeof(junk));
	sent = send_all(fd, bad, sizeof(bad) - 1) && send_all(fd, junk, sizeof(junk));
	stop = now_ms() + 1000;
	while (sent && now_ms() < stop && writes < 100) {
		usleep(50 * 1000);
		sent = send_all(fd, junk, 512);
		writes++;
	}
	if (!sent)
		serr = errno;
	end = read_to_end(fd, in, sizeof(in), &got, 5000);
	CHECK(sent, "linger: writing after a refused head: the send failed after %u writes (%s)",
	      writes, strerror(serr));
	CHECK(end == 0, "linger: after a refused head: %s after %zu bytes, not EOF", end_name(end),
	      got);
	CHECK(one_answer(in, got, 400, (const uint8_t *)"", 0),
	      "linger: after a refused head: not the one 400 "
	      "(%zu bytes read)",
	      got);
	close(fd);
	printf("linger: a malformed head, 16 KB behind it and %u writes over 1 s after: the 400, "
	       "then EOF (%s)\n",
	       writes, end_name(end));
}

/* A client that reads its answer and then sends on and on: closed (reset)
 * at --linger-time, counted in linger_timeouts; it never sees its sends
 * blocked for good. */
static void linger_forever(unsigned linger_s)
{
	static const char req[] = "GET /small.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	struct conn *c = calloc(1, sizeof(*c));
	char junk[1024], line[2048];
	uint64_t t0, t, to0, sent = 0;
	struct resp r;
	bool ended = false;

	memset(junk, 'y', sizeof(junk));
	CHECK(server_stats(line, sizeof(line)), "stats");
	to0 = stat_of(line, "linger_timeouts ");
	c->fd = dial_bounded();
	CHECK(c->fd >= 0 && send_all(c->fd, req, sizeof(req) - 1) && !read_resp(c, &r, false) &&
		      r.status == 200 && r.blen == SMALL && !memcmp(r.body, big, SMALL),
	      "linger: the answer before sending on");
	resp_free(&r);
	t0 = now_ms();
	/* 1 KB every 20 ms, well under --linger-timeout apart; bounded */
	while ((t = now_ms()) < t0 + (linger_s + 5) * 1000ull) {
		ssize_t w = send(c->fd, junk, sizeof(junk), MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && errno != EAGAIN && errno != EINTR) {
			ended = true; /* reset by the server */
			break;
		}
		if (w > 0)
			sent += (uint64_t)w;
		usleep(20 * 1000);
	}
	t -= t0;
	CHECK(ended, "linger: a client that sends on after its answer not closed within %u s",
	      linger_s + 5);
	CHECK(t + 500 >= linger_s * 1000ull && t <= linger_s * 1000ull + 2000,
	      "linger: a client that sends on closed after %llu ms, not at --linger-time %u s",
	      (unsigned long long)t, linger_s);
	CHECK(server_stats(line, sizeof(line)) && stat_of(line, "linger_timeouts ") == to0 + 1,
	      "linger: linger_timeouts %llu -> %llu, not one more (%s)", (unsigned long long)to0,
	      (unsigned long long)stat_of(line, "linger_timeouts "), line);
	printf("linger: a client that sent on (%llu KB) after its answer reset after %llu ms "
	       "(--linger-time %u s; linger_timeouts %llu)\n",
	       (unsigned long long)(sent / 1024), (unsigned long long)t, linger_s,
	       (unsigned long long)stat_of(line, "linger_timeouts "));
	close(c->fd);
	free(c);
}

/* Once nothing lingers (the stats line then in @line, the server's socket
 * count in *@socks0): a GET of /small.bin with Connection: close, read to
 * EOF and checked; the client's socket, still open (-1 if the dial
 * failed). @what names the case in failures. */
static int linger_ask(const char *what, char *line, size_t cap, long *socks0)
{
	static const char req[] = "GET /small.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	uint8_t *in = malloc(4 * SMALL);
	size_t got = 0;
	int fd, end = -1;

	CHECK(lingering_back(line, cap, 0, 5000), "linger: connections still lingering: %s", line);
	*socks0 = fd_count_kind(server, "socket:");
	fd = dial_bounded();
	CHECK(fd >= 0 && send_all(fd, req, sizeof(req) - 1), "linger: %s request", what);
	if (fd >= 0)
		end = read_to_end(fd, in, 4 * SMALL, &got, 5000);
	CHECK(end == 0 && one_answer(in, got, 200, big, SMALL),
	      "linger: %s: %s after %zu bytes, not the answer and EOF", what, end_name(end), got);
	free(in);
	return fd;
}

/* A client that reads its answer to EOF and closes: the server's side goes
 * at once (its socket count back, lingering 0, no linger timeout), well
 * within --linger-timeout. A keep-alive connection the client closes
 * never lingers. */
static void linger_prompt(unsigned idle_s)
{
	static const char ka[] = "GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n";
	char line[2048];
	uint64_t lingered0, to0, t0, t = 0;
	long socks0, socks = -1;
	int fd;
	struct conn *c = calloc(1, sizeof(*c));
	struct resp r;

	fd = linger_ask("prompt", line, sizeof(line), &socks0);
	lingered0 = stat_of(line, "lingered ");
	to0 = stat_of(line, "linger_timeouts ");
	if (fd >= 0)
		close(fd);
	t0 = now_ms();
	while ((t = now_ms() - t0) < 5000 && (socks = fd_count_kind(server, "socket:")) > socks0)
		usleep(5 * 1000);
	CHECK(socks == socks0 && t < idle_s * 1000ull / 2,
	      "linger: the server's socket count %ld (%ld before) %llu ms after the client closed",
	      socks, socks0, (unsigned long long)t);
	CHECK(server_stats(line, sizeof(line)) && stat_of(line, "lingered ") == lingered0 + 1 &&
		      stat_of(line, " lingering ") == 0 && stat_of(line, "linger_timeouts ") == to0,
	      "linger: prompt: lingered %llu -> %llu, lingering %llu, linger_timeouts %llu -> %llu",
	      (unsigned long long)lingered0, (unsigned long long)stat_of(line, "lingered "),
	      (unsigned long long)stat_of(line, " lingering "), (unsigned long long)to0,
	      (unsigned long long)stat_of(line, "linger_timeouts "));
	printf("linger: a client that read to EOF and closed: the server's socket gone %llu ms "
	       "after (--linger-timeout %u s)\n",
	       (unsigned long long)t, idle_s);
	/* keep-alive: two answers, the client closes, nothing lingers */
	c->fd = dial_bounded();
	for (int i = 0; i < 2 && c->fd >= 0; i++) {
		CHECK(send_all(c->fd, ka, sizeof(ka) - 1) && !read_resp(c, &r, false) &&
			      r.status == 200 && r.blen == SMALL,
		      "linger: keep-alive answer %d", i);
		resp_free(&r);
	}
	close(c->fd);
	free(c);
	t0 = now_ms();
	while (now_ms() - t0 < 5000 && fd_count_kind(server, "socket:") > socks0)
		usleep(5 * 1000);
	CHECK(server_stats(line, sizeof(line)) && stat_of(line, "lingered ") == lingered0 + 1,
	      "linger: a keep-alive connection closed by its client lingered (%llu -> %llu)",
	      (unsigned long long)lingered0, (unsigned long long)stat_of(line, "lingered "));
}

/* Clients that reset while their zero-copy body is still unacknowledged
 * (a 100 KB range into a 4 KB receive buffer, 1 KB read, then a close with
 * SO_LINGER 0): each connection goes at once. The body's check counted
 * SIOCOUTQ, which a reset leaves where it was, so each was held until the
 * send timeout (--keepalive-timeout, 30 s here). */
static void reset_mid_body(unsigned n)
{
	static const char req[] = "GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-102399\r\n\r\n";
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	int rcv = 4096;
	char line[2048];
	uint8_t in[1024];
	uint64_t to0, t0, t = 0;
	long socks0, socks = -1;

	CHECK(lingering_back(line, sizeof(line), 0, 5000), "reset: connections still lingering: %s",
	      line);
	to0 = stat_of(line, "send_timeouts ");
	socks0 = fd_count_kind(server, "socket:");
	for (unsigned i = 0; i < n; i++) {
		int fd = dial_bounded();
		struct pollfd p = {.fd = fd, .events = POLLIN};

		CHECK(fd >= 0, "reset: dial %u", i);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
		CHECK(send_all(fd, req, sizeof(req) - 1) && poll(&p, 1, 2000) == 1 &&
			      recv(fd, in, sizeof(in), 0) > 0,
		      "reset: no answer to request %u", i);
		usleep(50 * 1000); /* the server's send ends, its check pending */
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(fd);
	}
	t0 = now_ms();
	while ((t = now_ms() - t0) < 5000 && (socks = fd_count_kind(server, "socket:")) > socks0)
		usleep(10 * 1000);
	CHECK(socks == socks0 && t < 3000,
	      "reset: %u clients reset mid-body: the server's socket count %ld (%ld before) %llu ms "
	      "after, not at once",
	      n, socks, socks0, (unsigned long long)t);
	CHECK(server_stats(line, sizeof(line)) && stat_of(line, "send_timeouts ") == to0,
	      "reset: send_timeouts %llu -> %llu: a reset connection waited for the send timeout",
	      (unsigned long long)to0, (unsigned long long)stat_of(line, "send_timeouts "));
	printf("reset: %u clients reset with a zero-copy body unacknowledged: the server's sockets "
	       "gone %llu ms after\n",
	       n, (unsigned long long)t);
}

/* A client that reads its answer and then neither sends nor closes: the
 * server closes after --linger-timeout (a linger timeout), gracefully: the
 * client saw EOF at once and sees no reset after. */
static void linger_silent(unsigned idle_s)
{
	char line[2048];
	uint64_t to0, t0, t = 0;
	long socks0, socks = -1;
	int fd, err = 0;
	socklen_t elen = sizeof(err);

	fd = linger_ask("silent", line, sizeof(line), &socks0);
	to0 = stat_of(line, "linger_timeouts ");
	t0 = now_ms();
	while ((t = now_ms() - t0) < (idle_s + 5) * 1000ull &&
	       (socks = fd_count_kind(server, "socket:")) > socks0)
		usleep(10 * 1000);
	CHECK(socks == socks0 && t + 500 >= idle_s * 1000ull && t <= idle_s * 1000ull + 2000,
	      "linger: a silent client's connection: the server's socket count %ld (%ld before) "
	      "%llu ms after its answer, not at --linger-timeout %u s",
	      socks, socks0, (unsigned long long)t, idle_s);
	CHECK(server_stats(line, sizeof(line)) && stat_of(line, "linger_timeouts ") == to0 + 1,
	      "linger: silent: linger_timeouts %llu -> %llu, not one more", (unsigned long long)to0,
	      (unsigned long long)stat_of(line, "linger_timeouts "));
	usleep(100 * 1000);
	CHECK(!getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) && err == 0,
	      "linger: a silent client was reset (%s)", strerror(err));
	printf("linger: a client that read its answer and stayed silent: the server's socket gone "
	       "%llu ms after (--linger-timeout %u s), no reset\n",
	       (unsigned long long)t, idle_s);
	close(fd);
}

/*
 * Reading paused, then the last request (review): 20 keep-alive GETs, a
 * 21st with Connection: close and 300 KB behind it, written while the
 * client reads slowly through a 16 KB receive buffer. The server's sends
 * wait on the client, its head buffer fills with what follows, so reading
 * stops; the answer to the 21st must lift that stop, or the 300 KB stay
 * unread and the close is a reset that drops the answers still on their
 * way (a client got 11 of 21 and ECONNRESET, 4 runs of 4). Now: all 21,
 * each body checked, then EOF.
 */
static void linger_after_pause(unsigned rounds)
{
	static const char ka[] = "GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char last[] = "GET /small.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	enum { N = 20, JUNK = 300 * 1024 };
	size_t len = N * (sizeof(ka) - 1) + sizeof(last) - 1 + JUNK, cap = (N + 2) * (SMALL + 512);
	char *b = malloc(len);
	uint8_t *in = malloc(cap);
	unsigned good = 0;

	for (unsigned i = 0; i < N; i++)
		memcpy(b + i * (sizeof(ka) - 1), ka, sizeof(ka) - 1);
	memcpy(b + N * (sizeof(ka) - 1), last, sizeof(last) - 1);
	memset(b + N * (sizeof(ka) - 1) + sizeof(last) - 1, 'x', JUNK);
	for (unsigned r = 0; r < rounds; r++) {
		int fd = dial_window(16384), end = -ETIMEDOUT;
		size_t sent = 0, got = 0, at = 0;
		uint64_t stop = now_ms() + 10000;
		unsigned answers = 0;

		CHECK(fd >= 0, "linger after a pause: connect: %s", strerror(errno));
		if (fd < 0)
			break;
		/* write what the socket takes, read 4 KB every 2 ms: bounded */
		while (now_ms() < stop) {
			ssize_t n;

			if (sent < len) {
				n = send(fd, b + sent, len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
				if (n > 0)
					sent += (size_t)n;
				else if (n < 0 && errno != EAGAIN && errno != EINTR)
					break;
			}
			n = recv(fd, in + got, cap - got < 4096 ? cap - got : 4096, MSG_DONTWAIT);
			if (n == 0) {
				end = 0;
				break;
			}
			if (n < 0 && errno != EAGAIN && errno != EINTR) {
				end = -errno;
				break;
			}
			if (n > 0 && (got += (size_t)n) == cap) {
				end = -ENOSPC;
				break;
			}
			usleep(2000);
		}
		/* the answers, one by one, each body checked */
		while (at < got) {
			const uint8_t *e = memmem(in + at, got - at, "\r\n\r\n", 4);
			size_t hlen = e ? (size_t)(e - (in + at)) + 4 : 0;

			if (!e || !one_answer(in + at, hlen + SMALL <= got - at ? hlen + SMALL : got - at,
					      200, big, SMALL))
				break;
			at += hlen + SMALL;
			answers++;
		}
		CHECK(sent == len, "linger after a pause: %zu of %zu bytes sent", sent, len);
		CHECK(end == 0 && answers == N + 1 && at == got,
		      "linger after a pause: %u of %u answers (%zu bytes read), then %s", answers,
		      N + 1, got, end_name(end));
		if (sent == len && end == 0 && answers == N + 1 && at == got)
			good++;
		close(fd);
	}
	printf("linger: %u keep-alive GETs, a last one and 300 KB behind it, read slowly (reading "
	       "paused): %u of %u got every answer, then EOF\n",
	       N, good, rounds);
	free(in);
	free(b);
}

/* pool_live less what the memo's kept bodies hold (memo_held): the
 * shard's, not a connection's, and given back at a tick. */
static uint64_t conns_live(const char *line)
{
	return stat_of(line, "pool_live ") - stat_of(line, " memo_held ");
}

/* What a lingering connection holds of the server's pool: no more than an
 * idle keep-alive one (its struct and its receive). A HEAD with
 * Connection: close, whose answer goes through the connection's output
 * queue, read to EOF, the client silent: the queue went back when it began
 * to linger (it held 896 B against the idle one's 640 B before). */
static void linger_pool(void)
{
	static const char ka[] = "GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char req[] = "HEAD /small.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	struct conn *c = calloc(1, sizeof(*c));
	uint64_t live0, live1, live2;
	char line[2048];
	uint8_t in[1024];
	struct resp r;
	size_t got;
	int fd, end;

	CHECK(lingering_back(line, sizeof(line), 0, 5000), "linger: connections still lingering: %s",
	      line);
	live0 = conns_live(line);
	c->fd = dial_bounded();
	CHECK(c->fd >= 0 && send_all(c->fd, ka, sizeof(ka) - 1) && !read_resp(c, &r, false) &&
	      r.status == 200, "linger: pool: the idle connection's answer");
	resp_free(&r);
	CHECK(server_stats(line, sizeof(line)), "stats");
	live1 = conns_live(line);
	fd = dial_bounded();
	CHECK(fd >= 0 && send_all(fd, req, sizeof(req) - 1), "linger: pool: request");
	end = read_to_end(fd, in, sizeof(in), &got, 5000);
	CHECK(end == 0 && got > 12 && !memcmp(in, "HTTP/1.1 200", 12),
	      "linger: pool: %s after %zu bytes, not the HEAD's answer and EOF", end_name(end), got);
	CHECK(server_stats(line, sizeof(line)) && stat_of(line, " lingering ") == 1,
	      "linger: pool: the connection not lingering (%s)", line);
	live2 = conns_live(line);
	CHECK(live1 > live0 && live2 >= live1 && live2 - live1 <= live1 - live0,
	      "linger: pool: a lingering connection holds %lld B, an idle one %lld B",
	      (long long)(live2 - live1), (long long)(live1 - live0));
	printf("linger: a connection lingering after a HEAD holds %lld B of the pool, an idle "
	       "keep-alive one %lld B\n", (long long)(live2 - live1), (long long)(live1 - live0));
	close(fd);
	close(c->fd);
	free(c);
}

/*
 * Lingering close (RFC 9112 9.6): after its last answer the server sends
 * its FIN and reads and drops what the client still sends, so a client
 * whose bytes were not all read gets its whole answer and then EOF, not a
 * reset. Its own server with a 2 s idle and 4 s total bound; SIGTERM with
 * a connection lingering still exits 0 within 5 s.
 */
static void test_linger(void)
{
	const char *extra[] = {"--linger-timeout", "2", "--linger-time", "4", NULL};
	static const char req[] = "GET /small.bin HTTP/1.0\r\nHost: x\r\n\r\n";
	char line[2048] = "", junk[65536];
	uint8_t *in = malloc(4 * SMALL);
	size_t got;
	uint64_t t0;
	int fd, rc;

	CHECK(server_start(extra) == 0, "server for linger");
	linger_pipelined(64 * 1024, 0, reduced ? 3 : 10);
	linger_pipelined(256 * 1024, 0, reduced ? 3 : 10);
	linger_pipelined(64 * 1024, 192 * 1024, reduced ? 3 : 10);
	linger_pipelined(256 * 1024, 256 * 1024, reduced ? 3 : 10);
	linger_refused();
	linger_after_pause(reduced ? 2 : 4);
	linger_forever(4);
	linger_prompt(2);
	linger_silent(2);
	reset_mid_body(reduced ? 4 : 10);
	linger_pool();
	CHECK(server_stats(line, sizeof(line)) && stat_of(line, "linger_bytes ") > 0,
	      "linger: no linger_bytes counted (%s)", line);
	/* HTTP/1.0 closes too; the client sends on and does not close: SIGTERM */
	fd = dial_bounded();
	memset(junk, 'z', sizeof(junk));
	CHECK(fd >= 0 && send_all(fd, req, sizeof(req) - 1) && send_all(fd, junk, sizeof(junk)),
	      "linger: HTTP/1.0 request and 64 KB");
	CHECK(read_to_end(fd, in, 4 * SMALL, &got, 5000) == 0 &&
		      one_answer(in, got, 200, big, SMALL),
	      "linger: HTTP/1.0: the answer, then EOF");
	CHECK(server_stats(line, sizeof(line)) && stat_of(line, " lingering ") == 1,
	      "linger: the HTTP/1.0 connection not lingering (%s)", line);
	t0 = now_ms();
	rc = server_stop(5000);
	CHECK(rc == 0, "linger: exit status %d after SIGTERM with a connection lingering", rc);
	printf("linger: SIGTERM with a connection lingering: exit %d in %llu ms\n", rc,
	       (unsigned long long)(now_ms() - t0));
	if (fd >= 0)
		close(fd);
	free(in);
}

/* ---- a root replaced under the server ---- */

static void put_at(const char *dir, const char *name, const char *text)
{
	char path[200];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text), "reroot: write %s",
	      path);
	if (fd >= 0)
		close(fd);
}

/* GET /v.txt until its body is @want, at most @ms; the ms it took, or -1. */
static long served_within(const char *want, unsigned ms)
{
	uint64_t t0 = now_ms();

	do {
		struct resp r = { 0 };
		int st = fetch("GET /v.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r, false);
		bool ok = st == 200 && r.blen == strlen(want) && !memcmp(r.body, want, r.blen);

		resp_free(&r);
		if (ok)
			return (long)(now_ms() - t0);
		usleep(50 * 1000);
	} while (now_ms() - t0 < ms);
	return -1;
}

/*
 * --root names a symlink that a deploy switches (ln -s + rename), then a
 * directory that a deploy renames a new tree over: each new tree is served
 * within 2 s (the shard looks the path up each second), as nginx, which
 * resolves its root per request, serves it. The server opened its root
 * once: it served the first tree until restarted. While the path names
 * nothing the old tree goes on being served.
 */
static void test_reroot(void)
{
	char base[64] = "/tmp/rp_reroot_XXXXXX", saved[sizeof(root)], p[4][200], line[2048];
	long ms;

	CHECK(mkdtemp(base) != NULL, "reroot: mkdtemp");
	chmod(base, 0755);
	snprintf(p[0], sizeof(p[0]), "%s/a", base);
	snprintf(p[1], sizeof(p[1]), "%s/b", base);
	snprintf(p[2], sizeof(p[2]), "%s/current", base);
	snprintf(p[3], sizeof(p[3]), "%s/next", base);
	CHECK(!mkdir(p[0], 0755) && !mkdir(p[1], 0755) && !symlink("a", p[2]), "reroot: trees");
	put_at(p[0], "v.txt", "A");
	put_at(p[1], "v.txt", "B");
	memcpy(saved, root, sizeof(root));
	CHECK(strlen(p[2]) < sizeof(root), "reroot: path too long");
	memcpy(root, p[2], strlen(p[2]) + 1); /* "/tmp/rp_reroot_XXXXXX/current" fits */
	CHECK(server_start(NULL) == 0, "reroot: server");
	CHECK(served_within("A", 2000) >= 0, "reroot: the first tree");
	/* the symlink switched: ln -s b next && mv -T next current */
	CHECK(!symlink("b", p[3]) && !rename(p[3], p[2]), "reroot: switch the symlink");
	ms = served_within("B", 3000);
	CHECK(ms >= 0 && ms <= 2000, "reroot: the switched symlink's tree not served (%ld ms)", ms);
	printf("reroot: --root's symlink switched: the new tree served after %ld ms\n", ms);
	/* b itself replaced: a new tree renamed over it (the old one moved) */
	snprintf(p[3], sizeof(p[3]), "%s/b.old", base);
	CHECK(!rename(p[1], p[3]), "reroot: move b away");
	/* nothing at the path for a while: the old tree goes on */
	usleep(1200 * 1000);
	CHECK(served_within("B", 500) >= 0, "reroot: while the path names nothing, the old tree");
	CHECK(!mkdir(p[1], 0755), "reroot: new b");
	put_at(p[1], "v.txt", "C");
	ms = served_within("C", 3000);
	CHECK(ms >= 0 && ms <= 2000, "reroot: the renamed-in tree not served (%ld ms)", ms);
	printf("reroot: a new tree in place of the old: served after %ld ms\n", ms);
	CHECK(server_stats(line, sizeof(line)) && stat_of(line, "root_changes ") == 2,
	      "reroot: root_changes %llu, not 2", (unsigned long long)stat_of(line, "root_changes "));
	CHECK(server_stop(5000) == 0, "reroot: stop");
	memcpy(root, saved, sizeof(root));
	snprintf(p[3], sizeof(p[3]), "%s/b.old/v.txt", base);
	unlink(p[3]);
	snprintf(p[3], sizeof(p[3]), "%s/b.old", base);
	rmdir(p[3]);
	for (int i = 0; i < 2; i++) {
		char f[220];

		snprintf(f, sizeof(f), "%s/v.txt", p[i]);
		unlink(f);
		rmdir(p[i]);
	}
	unlink(p[2]);
	rmdir(base);
}

/* ---- the descriptor limit ---- */

/* Read @fd into @out (NUL-terminated, at most @cap - 1 bytes) until @want
 * is in it (NULL: none), its EOF or @ms: true when @want came. */
static bool read_until(int fd, char *out, size_t cap, size_t *have, const char *want,
		       unsigned ms)
{
	uint64_t end = now_ms() + ms;

	while (now_ms() < end && *have < cap - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (want && strstr(out, want))
			return true;
		if (poll(&p, 1, 50) <= 0)
			continue;
		r = read(fd, out + *have, cap - 1 - *have);
		if (r <= 0)
			break;
		*have += (size_t)r;
		out[*have] = 0;
	}
	return want && strstr(out, want);
}

/*
 * `ringplane serve --shards @shards` under RLIMIT_NOFILE @limit, soft and
 * hard (prlimit --nofile=L:L: the server's raise to the hard limit keeps
 * it), its stdout and stderr into @out: 0 once it said "listening on"
 * (server, server_out and port set, as server_start does), 1 when it
 * exited first (*@rc its exit status), -1 when neither within 30 s
 * (killed).
 */
static int nofile_start(rlim_t limit, const char *shards, char *out, size_t cap, int *rc)
{
	const char *argv[] = { bin, "serve", "--listen", "127.0.0.1:0", "--root", root,
			       "--no-pin", "--shards", shards, NULL };
	size_t have = 0;
	pid_t parent = getpid();
	int pfd[2], st;
	char *l;

	out[0] = 0;
	if (pipe2(pfd, O_CLOEXEC))
		return -1;
	server = fork();
	if (server < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (server == 0) {
		struct rlimit rl = { limit, limit };

		child_tie(parent);
		if (setrlimit(RLIMIT_NOFILE, &rl))
			_exit(126);
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	server_out = pfd[0];
	/* the listening line ends in '\n'; stdout is a pipe: it comes whole */
	if (read_until(server_out, out, cap, &have, "listening on ", 30000) &&
	    read_until(server_out, out, cap, &have, "\n", 1000) &&
	    (l = strstr(out, "listening on ")) && strchr(l, '\n')) {
		port = atoi(strrchr(l, ':') + 1);
		return 0;
	}
	if (waitpid(server, &st, 0) != server) {
		close(server_out);
		return -1;
	}
	read_until(server_out, out, cap, &have, NULL, 1000);
	close(server_out);
	if (!WIFEXITED(st)) {
		*rc = 128 + WTERMSIG(st);
		return 1;
	}
	*rc = WEXITSTATUS(st);
	return 1;
}

/* The descriptors the refusal under @limit said serve needs, or 0 when it
 * did not refuse (exit 1) with the line that names them. */
static unsigned long long nofile_refused(rlim_t limit, const char *shards)
{
	char out[4096], want[96];
	const char *need;
	int rc = -1, how = nofile_start(limit, shards, out, sizeof(out), &rc);

	if (how == 0) {
		CHECK(0, "nofile: --shards %s under RLIMIT_NOFILE %llu started listening", shards,
		      (unsigned long long)limit);
		server_stop(5000);
		return 0;
	}
	snprintf(want, sizeof(want), "ringplane serve: RLIMIT_NOFILE %llu (hard %llu) is too low",
		 (unsigned long long)limit, (unsigned long long)limit);
	need = strstr(out, "needs ");
	CHECK(how == 1 && rc == 1 && strstr(out, want) && need,
	      "nofile: --shards %s under %llu: exit %d, said '%s'", shards,
	      (unsigned long long)limit, rc, out);
	CHECK(!strchr(out, '\n') || !strchr(strchr(out, '\n') + 1, '\n'),
	      "nofile: more than one line: '%s'", out);
	return how == 1 && rc == 1 && need ? strtoull(need + 6, NULL, 10) : 0;
}

/* A GET of hello.txt on a fresh connection, then the client's FIN and
 * the server's close awaited, so the next GET finds its descriptor back:
 * the status, or -1. */
static int nofile_get(void)
{
	static const char req[] = "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n";
	struct conn *c = calloc(1, sizeof(*c));
	struct resp r;
	int ret = -1;

	c->fd = dial();
	if (c->fd >= 0 && send_all(c->fd, req, sizeof(req) - 1) && !read_resp(c, &r, false)) {
		ret = r.status == 200 && r.blen == 12 && !memcmp(r.body, "hello world\n", 12)
			      ? 200
			      : r.status;
		resp_free(&r);
		shutdown(c->fd, SHUT_WR);
		if (!closed_within(c->fd, 5000))
			ret = -1;
	}
	if (c->fd >= 0)
		close(c->fd);
	free(c);
	return ret;
}

/*
 * Under an RLIMIT_NOFILE too low to serve a file (8: stdio, the root, a
 * shard's listener, eventfd and ring leave one descriptor; a connection
 * and a file's first open, O_PATH then the file, take three), serve
 * refused nothing: it said "listening", answered every GET 503 (counted
 * in file_errors) and exited 0 at SIGTERM (a black-box run: 20 of 20).
 * Now it exits 1 with one line naming the limit and the need, also one
 * below the need; at the need it serves: 20 GETs of one file all 200, on
 * 1 shard and on 2 (where the other shard keeps the file cached), exit 0
 * at SIGTERM.
 */
static void test_nofile(void)
{
	static const char *const shard_args[] = { "1", "2" };
	static const rlim_t low[] = { 8, 12 };

	for (unsigned k = 0; k < 2; k++) {
		const char *shards = shard_args[k];
		unsigned long long need = nofile_refused(low[k], shards), need2;
		char out[16384];
		unsigned ok = 0, served[2] = { 0, 0 };
		int rc = -1, how;
		size_t have;

		CHECK(need > low[k], "nofile: --shards %s under %llu: need %llu", shards,
		      (unsigned long long)low[k], need);
		if (need <= low[k] || need > 4096)
			continue;
		if (need - 1 > low[k]) {
			need2 = nofile_refused((rlim_t)need - 1, shards);
			CHECK(need2 == need, "nofile: --shards %s: need %llu under %llu, %llu under %llu",
			      shards, need, (unsigned long long)low[k], need2, need - 1);
		}
		how = nofile_start((rlim_t)need, shards, out, sizeof(out), &rc);
		CHECK(how == 0, "nofile: --shards %s under %llu (its need) did not start: exit %d, '%s'",
		      shards, need, rc, out);
		if (how)
			continue;
		for (int i = 0; i < 20; i++)
			ok += nofile_get() == 200;
		kill(server, SIGTERM);
		have = 0;
		out[0] = 0;
		read_until(server_out, out, sizeof(out), &have, NULL, 10000);
		close(server_out);
		rc = -1;
		if (waitpid(server, &rc, 0) == server)
			rc = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
		for (unsigned s = 0; s < 2; s++) {
			char name[16];
			const char *line;

			snprintf(name, sizeof(name), "shard %u:", s);
			line = strstr(out, name);
			served[s] = line ? (unsigned)stat_of(line, " 2xx ") : 0;
		}
		CHECK(ok == 20, "nofile: --shards %s under %llu: %u of 20 GETs 200", shards, need, ok);
		CHECK(rc == 0, "nofile: --shards %s: exit %d at SIGTERM", shards, rc);
		/* 20 connections spread by SO_REUSEPORT's hash: both shards served */
		CHECK(k == 0 || (served[0] && served[1]),
		      "nofile: --shards 2: 200s by shard %u and %u", served[0], served[1]);
		printf("nofile: --shards %s: refused (exit 1) under %llu and %llu, needs %llu: "
		       "%u of 20 GETs 200 there (by shard: %u, %u)\n",
		       shards, (unsigned long long)low[k], need - 1, need, ok, served[0], served[1]);
	}
}

/* Is test @name to run? Every test without names after the binary. */
/* ---- the stats line's counters, --stats-interval, --mode ---- */

/* The count after " @code=" in the stats line's status section (~0 when
 * the section or the code is missing). */
static uint64_t status_of(const char *line, const char *code)
{
	const char *sec = strstr(line, "| status ");
	char key[16];
	const char *v;

	snprintf(key, sizeof(key), " %s=", code);
	if (!sec || !(v = strstr(sec, key)))
		return UINT64_MAX;
	return strtoull(v + strlen(key), NULL, 10);
}

/*
 * A serve of its own, so its counters start at 0: a known mix of answers
 * on fresh connections, then every status's own count in the stats line
 * is exact, and so are the body bytes by how they went: the small bodies
 * behind their heads copied (12 + 5), the 256 KB range zero-copy. Then
 * a 404 and a small body pipelined in one write: the body's head joins
 * the 404's queued head and the cached body follows alone by sendfile(2):
 * its 16 KB are zero-copy, though counted in body_bytes small with the
 * copied ones.
 * Then a 3 MB cached body under the default mode goes by sendfile(2), not
 * spliced (shard_splice stays 0: test_mode's contrast).
 */
static void test_counts(void)
{
	static const struct {
		const char *code;
		uint64_t n;
	} want[] = { { "200", 2 }, { "206", 2 }, { "304", 1 }, { "400", 1 }, { "403", 1 },
		     { "404", 2 }, { "405", 1 }, { "414", 1 }, { "416", 1 }, { "431", 1 },
		     { "500", 0 }, { "501", 1 }, { "503", 0 }, { "505", 1 }, { "other", 0 } };
	static char line[16384], req[24000];
	char etag[128];
	struct resp r;
	const char *v;
	uint64_t zc0, cp0, zc, cp;

	if (server_start(NULL)) {
		CHECK(0, "counts: server did not start");
		return;
	}
	CHECK(fetch("GET /count.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r, false) == 200, "counts 200");
	v = field(&r, "ETag");
	snprintf(etag, sizeof(etag), "%s", v ? v : "");
	resp_free(&r);
	CHECK(fetch("HEAD /count.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r, true) == 200, "counts HEAD");
	resp_free(&r);
	CHECK(fetch("GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-262143\r\n\r\n", &r, false) ==
		      206 && r.blen == 262144 && !memcmp(r.body, big, 262144),
	      "counts 206 of 256 KB");
	resp_free(&r);
	CHECK(fetch("GET /count.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=6-10\r\n\r\n", &r, false) ==
		      206, "counts 206");
	resp_free(&r);
	snprintf(req, sizeof(req), "GET /count.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: %s\r\n\r\n",
		 etag);
	CHECK(fetch(req, &r, true) == 304, "counts 304");
	resp_free(&r);
	static const struct {
		const char *req;
		int status;
	} cases[] = {
		{ "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404 },
		{ "GET /nope/either HTTP/1.1\r\nHost: x\r\n\r\n", 404 },
		{ "GET /escape HTTP/1.1\r\nHost: x\r\n\r\n", 403 },
		{ "GET /count%00.txt HTTP/1.1\r\nHost: x\r\n\r\n", 400 },
		{ "POST /count.txt HTTP/1.1\r\nHost: x\r\n\r\n", 405 },
		{ "BREW /count.txt HTTP/1.1\r\nHost: x\r\n\r\n", 501 },
		{ "GET /count.txt HTTP/2.0\r\nHost: x\r\n\r\n", 505 },
		{ "GET /count.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=50-\r\n\r\n", 416 },
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int s = fetch(cases[i].req, &r, false);

		CHECK(s == cases[i].status, "counts case %u: %d, wanted %d", i, s, cases[i].status);
		resp_free(&r);
	}
	memcpy(req, "GET /", 5);
	memset(req + 5, 'a', 9000);
	strcpy(req + 9005, " HTTP/1.1\r\nHost: x\r\n\r\n");
	CHECK(fetch(req, &r, false) == 414, "counts 414");
	resp_free(&r);
	strcpy(req, "GET /count.txt HTTP/1.1\r\nHost: x\r\n");
	for (int i = 0; i < 330; i++)
		strcat(req, "X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
	strcat(req, "\r\n");
	CHECK(fetch(req, &r, false) == 431, "counts 431");
	resp_free(&r);

	CHECK(server_stats(line, sizeof(line)), "counts: no stats line");
	for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		CHECK(status_of(line, want[i].code) == want[i].n, "counts: %s=%llu, want %llu",
		      want[i].code, (unsigned long long)status_of(line, want[i].code),
		      (unsigned long long)want[i].n);
	CHECK(stat_of(line, " 2xx ") == 4 && stat_of(line, " 3xx ") == 1 &&
		      stat_of(line, " 4xx ") == 8 && stat_of(line, " 5xx ") == 2,
	      "counts: classes 2xx %llu 3xx %llu 4xx %llu 5xx %llu, want 4 1 8 2",
	      (unsigned long long)stat_of(line, " 2xx "), (unsigned long long)stat_of(line, " 3xx "),
	      (unsigned long long)stat_of(line, " 4xx "), (unsigned long long)stat_of(line, " 5xx "));
	zc0 = stat_of(line, " zero_copy ");
	cp0 = stat_of(line, " copied ");
	CHECK(zc0 == 262144 && cp0 == 17, "counts: zero_copy %llu copied %llu, want 262144 17",
	      (unsigned long long)zc0, (unsigned long long)cp0);

	/* the pipelined pair: the 404's head is queued when small.bin's
	 * answer is made, so its body goes without a head */
	{
		struct conn *c = calloc(1, sizeof(*c));
		static const char two[] = "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
					  "GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n";

		c->fd = dial();
		CHECK(c->fd >= 0 && send_all(c->fd, two, sizeof(two) - 1), "counts: pipelined pair");
		CHECK(c->fd >= 0 && !read_resp(c, &r, false) && r.status == 404, "counts: pair's 404");
		resp_free(&r);
		CHECK(c->fd >= 0 && !read_resp(c, &r, false) && r.status == 200 && r.blen == SMALL &&
			      !memcmp(r.body, big, SMALL),
		      "counts: pair's 200");
		resp_free(&r);
		if (c->fd >= 0)
			close(c->fd);
		free(c);
	}
	CHECK(server_stats(line, sizeof(line)), "counts: no stats line");
	zc = stat_of(line, " zero_copy ") - zc0;
	cp = stat_of(line, " copied ") - cp0;
	CHECK(zc == SMALL && cp == 0,
	      "counts: a cached small body alone (by sendfile) moved zero_copy %llu copied %llu, "
	      "want %u 0",
	      (unsigned long long)zc, (unsigned long long)cp, SMALL);
	CHECK(status_of(line, "404") == 3 && status_of(line, "200") == 3, "counts: pair counted");
	printf("counts: zero_copy %llu copied %llu, then +%llu zero-copy for a small body alone\n",
	       (unsigned long long)zc0, (unsigned long long)cp0, (unsigned long long)zc);

	CHECK(fetch("GET /mid.bin HTTP/1.1\r\nHost: x\r\n\r\n", &r, false) == 200 && r.blen == MID &&
		      !memcmp(r.body, big, MID),
	      "counts: 3 MB body");
	resp_free(&r);
	CHECK(server_stats(line, sizeof(line)), "counts: no stats line");
	CHECK(stat_of(line, "shard_splice ") == 0, "auto: a 3 MB cached body spliced (%llu)",
	      (unsigned long long)stat_of(line, "shard_splice "));
	CHECK(server_stop(5000) == 0, "counts: stop");
}

/* The stats line's zero_copy and copied once their sum reaches @want
 * more than @zc0 + @cp0 (the answers' ends are counted after the client
 * read them), at most 2 s; into *@zc and *@cp as deltas, @line the last. */
static void bytes_after(char *line, size_t cap, uint64_t zc0, uint64_t cp0, uint64_t want,
			uint64_t *zc, uint64_t *cp)
{
	uint64_t end = now_ms() + 2000;

	do {
		*zc = *cp = 0;
		if (server_stats(line, cap)) {
			*zc = stat_of(line, " zero_copy ") - zc0;
			*cp = stat_of(line, " copied ") - cp0;
			if (*zc + *cp >= want)
				return;
		}
		usleep(20000);
	} while (now_ms() < end);
}

/* @name's pages dropped from the page cache (written back first). */
static void evict(const char *name)
{
	char p[256];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", root, name);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	(void)fdatasync(fd);
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
}

/* Is any page of @name in the page cache (mincore of a mapping)? -1: could
 * not tell. */
static int any_resident(const char *name, size_t len)
{
	unsigned char vec[1024];
	size_t pages = (len + 4095) / 4096;
	char p[256];
	void *m;
	int fd, any = 0;

	snprintf(p, sizeof(p), "%s/%s", root, name);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || !len || pages > sizeof(vec)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return -1;
	if (mincore(m, len, vec))
		any = -1;
	for (size_t i = 0; any == 0 && i < pages; i++)
		any = vec[i] & 1;
	munmap(m, len);
	return any;
}

/*
 * zero_copy and copied, byte-exact, for each way a body goes, at sizes
 * around the small path's bound (16 KB) and in the cached splice range:
 * a GET (its body behind its head: up to 16 KB read into pool memory,
 * copied, and kept with its head: memo_bytes; above, sendfile or splice,
 * zero-copy), then with an If-None-Match that fails (a 200 not from the
 * memo, so the paths below are seen whatever it keeps): the same with the file
 * dropped from the page cache first (up to 16 KB the ring's read -> send,
 * copied; above, splice from the file in io-wq, zero-copy), a GET
 * pipelined behind a 404 (no head of its own: a small cached body by one
 * sendfile(2), zero-copy) and one with another 404 pipelined behind it
 * too (RP_FILE_SEND_MORE: a small body read and sent, copied).
 */
static void test_path_bytes(void)
{
	static const uint32_t size[] = { 1, 10000, SMALL, SMALL + 1, 300000, 2u << 20 };
	static const char *const how[] = { "GET", "GET, not cached", "behind a 404",
					   "between two 404s" };
	static char line[16384];
	struct resp r;

	if (server_start(NULL)) {
		CHECK(0, "path bytes: server did not start");
		return;
	}
	for (unsigned i = 0; i < sizeof(size) / sizeof(size[0]); i++) {
		char name[32], req[256];
		bool small = size[i] <= SMALL;

		snprintf(name, sizeof(name), "pb%u.bin", size[i]);
		put(name, big, size[i]);
		for (unsigned k = 0; k < 4; k++) {
			uint64_t zc0, cp0, zc, cp, want_zc, splice0, nc0, mb0, mb;
			struct conn *c = calloc(1, sizeof(*c));
			int cached = 1;
			int got = 0, n = k < 2 ? 1 : k == 2 ? 2 : 3;

			CHECK(server_stats(line, sizeof(line)), "path bytes: no stats line");
			zc0 = stat_of(line, " zero_copy ");
			cp0 = stat_of(line, " copied ");
			splice0 = stat_of(line, " shard_splice ");
			nc0 = stat_of(line, " not_cached ");
			mb0 = stat_of(line, " memo_bytes ");
			if (k == 1) {
				evict(name);
				usleep(150 * 1000); /* past rp_file_send's residency memo (100 ms) */
				cached = any_resident(name, size[i]);
			}
			/* after the first, an If-None-Match no ETag matches:
			 * a 200 as before, but not from the memo, which the
			 * first GET filled (memo_bytes), so each path is seen */
			snprintf(req, sizeof(req), "%sGET /%s HTTP/1.1\r\nHost: x\r\n%s\r\n%s",
				 k >= 2 ? "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n" : "", name,
				 k ? "If-None-Match: \"other\"\r\n" : "",
				 k == 3 ? "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n" : "");
			c->fd = dial();
			if (c->fd >= 0 && send_all(c->fd, req, strlen(req))) {
				for (int j = 0; j < n; j++) {
					bool body = k < 2 || j == 1;

					if (read_resp(c, &r, false))
						break;
					if (body ? r.status == 200 && r.blen == size[i] &&
							   !memcmp(r.body, big, size[i]) :
						   r.status == 404)
						got++;
					resp_free(&r);
				}
			}
			CHECK(got == n, "path bytes: %u B %s: %d of %d answers right", size[i], how[k],
			      got, n);
			if (c->fd >= 0)
				close(c->fd);
			free(c);
			bytes_after(line, sizeof(line), zc0, cp0, size[i], &zc, &cp);
			/* the first GET of a small body: read once into the
			 * memo and sent from there, copied (memo_bytes) */
			mb = stat_of(line, " memo_bytes ") - mb0;
			CHECK(mb == (k == 0 && small ? size[i] : 0),
			      "path bytes: %u B %s: memo_bytes +%llu", size[i], how[k],
			      (unsigned long long)mb);
			want_zc = !small || k == 2 ? size[i] : 0;
			printf("path bytes: %u B %s: zero_copy +%llu copied +%llu (memo_bytes +%llu, "
			       "shard_splice +%llu, not_cached +%llu)\n",
			       size[i], how[k], (unsigned long long)zc, (unsigned long long)cp,
			       (unsigned long long)mb,
			       (unsigned long long)(stat_of(line, " shard_splice ") - splice0),
			       (unsigned long long)(stat_of(line, " not_cached ") - nc0));
			/* a big body found not cached goes by splice from io-wq
			 * (not_cached); a small one is copied either way (the ring's
			 * read -> send, or the cached read), so only its bytes say */
			if (k == 1 && !small && cached == 0)
				CHECK(stat_of(line, " not_cached ") - nc0 == 1,
				      "path bytes: %u B evicted: not_cached +%llu, want +1", size[i],
				      (unsigned long long)(stat_of(line, " not_cached ") - nc0));
			else if (k == 1 && !small)
				printf("path bytes: %u B: the eviction did not take (%d): not_cached not checked\n",
				       size[i], cached);
			CHECK(zc == want_zc && cp == size[i] - want_zc,
			      "path bytes: %u B %s: zero_copy +%llu copied +%llu, want +%llu +%llu",
			      size[i], how[k], (unsigned long long)zc, (unsigned long long)cp,
			      (unsigned long long)want_zc, (unsigned long long)(size[i] - want_zc));
		}
	}
	CHECK(server_stop(5000) == 0, "path bytes: stop");
}

/* --stats-interval 1: at least two stats lines within 3.5 s, none asked
 * for by SIGUSR1. */
static void test_stats_interval(void)
{
	static const char *const extra[] = { "--stats-interval", "1", NULL };
	static char acc[65536];
	size_t have = 0;
	unsigned lines = 0;
	uint64_t end;

	if (server_start(extra)) {
		CHECK(0, "interval: server did not start");
		return;
	}
	end = now_ms() + 3500;
	while (now_ms() < end && have < sizeof(acc) - 1) {
		struct pollfd p = { .fd = server_out, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 50) <= 0)
			continue;
		n = read(server_out, acc + have, sizeof(acc) - 1 - have);
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	acc[have] = 0;
	for (const char *at = acc; (at = strstr(at, "shard 0:")); at += 8)
		lines++;
	CHECK(lines >= 2, "interval: %u stats lines in 3.5 s with --stats-interval 1", lines);
	printf("stats-interval: %u lines in 3.5 s\n", lines);
	CHECK(server_stop(5000) == 0, "interval: stop");
}

/* --mode splice: a cached 3 MB body (above the 1 MB the default splices
 * up to: test_counts) goes through a pipe on the shard, whole. */
static void test_mode(void)
{
	static const char *const extra[] = { "--mode", "splice", NULL };
	static char line[16384];
	struct resp r;

	if (server_start(extra)) {
		CHECK(0, "mode: server did not start");
		return;
	}
	for (int i = 0; i < 2; i++) {
		CHECK(fetch("GET /mid.bin HTTP/1.1\r\nHost: x\r\n\r\n", &r, false) == 200 &&
			      r.blen == MID && !memcmp(r.body, big, MID),
		      "mode splice: 3 MB body %d", i);
		resp_free(&r);
	}
	CHECK(server_stats(line, sizeof(line)), "mode: no stats line");
	CHECK(stat_of(line, "shard_splice ") >= 1, "mode splice: shard_splice %llu pipe_short %llu",
	      (unsigned long long)stat_of(line, "shard_splice "),
	      (unsigned long long)stat_of(line, "pipe_short "));
	printf("mode splice: shard_splice %llu\n", (unsigned long long)stat_of(line, "shard_splice "));
	CHECK(server_stop(5000) == 0, "mode: stop");
}

/* ---- escapes ---- */

/* @req with Connection: close on a fresh connection, read to the EOF (5 s,
 * 64 KB at most): the status (-1: none) and whether @secret came back. */
static int raw_get(const char *req, const char *secret, bool *leaked)
{
	static char got[65537];
	size_t have = 0;
	int fd = dial(), status = -1;
	uint64_t end = now_ms() + 5000;

	*leaked = false;
	if (fd < 0)
		return -1;
	if (send_all(fd, req, strlen(req)))
		while (now_ms() < end && have < sizeof(got) - 1) {
			ssize_t n = recv(fd, got + have, sizeof(got) - 1 - have, 0);

			if (n <= 0)
				break;
			have += (size_t)n;
		}
	close(fd);
	got[have] = 0;
	if (have > 12 && !memcmp(got, "HTTP/1.1 ", 9))
		status = atoi(got + 9);
	*leaked = memmem(got, have, secret, strlen(secret)) != NULL;
	return status;
}

/*
 * Ways out of the root, each refused (400, 403, 404 or 414) without a
 * byte of the file outside (its text never in the answer), and serve
 * still answering after each: a directory symlink inside the root to a
 * directory outside, a raw "..", "%2e%2e" encoded twice (decoded once: a
 * name), backslashes raw and encoded, a path of 1,500 ".." segments and
 * one past PATH_MAX.
 */
static void test_escapes(void)
{
	char reqs[8][8192], secret[64];
	const char *base = strrchr(outside, '/') + 1; /* rp_out_XXXXXX, beside root */
	static char big_path[7000];
	char got[128];
	size_t at = 0, gl = 0;
	unsigned n = 0;

	snprintf(secret, sizeof(secret), "outside secret %d", (int)getpid());
	snprintf(reqs[n++], sizeof(reqs[0]), "GET /outdir/secret.txt HTTP/1.1\r\nHost: x\r\n"
					      "Connection: close\r\n\r\n");
	snprintf(reqs[n++], sizeof(reqs[0]), "GET /../%s/secret.txt HTTP/1.1\r\nHost: x\r\n"
					      "Connection: close\r\n\r\n", base);
	snprintf(reqs[n++], sizeof(reqs[0]), "GET /%%252e%%252e/%s/secret.txt HTTP/1.1\r\nHost: x\r\n"
					      "Connection: close\r\n\r\n", base);
	snprintf(reqs[n++], sizeof(reqs[0]), "GET /..\\%s\\secret.txt HTTP/1.1\r\nHost: x\r\n"
					      "Connection: close\r\n\r\n", base);
	snprintf(reqs[n++], sizeof(reqs[0]), "GET /..%%5c%s%%5csecret.txt HTTP/1.1\r\nHost: x\r\n"
					      "Connection: close\r\n\r\n", base);
	snprintf(reqs[n++], sizeof(reqs[0]), "GET /dir/%%2e%%2e%%5c%%2e%%2e%%5c%s%%5csecret.txt "
					      "HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", base);
	at = (size_t)snprintf(big_path, sizeof(big_path), "/");
	for (int i = 0; i < 1500; i++)
		at += (size_t)snprintf(big_path + at, sizeof(big_path) - at, "../");
	snprintf(big_path + at, sizeof(big_path) - at, "%s/secret.txt", base);
	snprintf(reqs[n++], sizeof(reqs[0]), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		 big_path);
	at = (size_t)snprintf(big_path, sizeof(big_path), "/outdir");
	while (at < 5000)
		at += (size_t)snprintf(big_path + at, sizeof(big_path) - at, "/.");
	snprintf(big_path + at, sizeof(big_path) - at, "/secret.txt");
	snprintf(reqs[n++], sizeof(reqs[0]), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		 big_path);
	for (unsigned i = 0; i < n; i++) {
		struct resp r;
		bool leaked;
		int s = raw_get(reqs[i], secret, &leaked);

		CHECK((s == 400 || s == 403 || s == 404 || s == 414) && !leaked,
		      "escape %u: status %d%s: %.60s", i, s, leaked ? ", the outside file's bytes" : "",
		      reqs[i]);
		CHECK(fetch("GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r, false) == 200 &&
			      r.blen == 12,
		      "escape %u: serve stopped answering", i);
		resp_free(&r);
		gl += (size_t)snprintf(got + gl, sizeof(got) - gl, " %d", s);
	}
	printf("escapes: %u answered %s\n", n, got + 1);
}

static bool wanted(int argc, char **argv, const char *name)
{
	if (argc < 3)
		return true;
	for (int i = 2; i < argc; i++)
		if (!strcmp(argv[i], name))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	int held[50];

	if (argc < 2) {
		fprintf(stderr, "usage: test_serve RINGPLANE_BINARY [TEST...]\n"
				"tests: main (statuses to sigterm), timeouts, deaf_bodies, linger, "
				"reroot, nofile, truncated, "
				"counts, interval, mode, escapes, memo (of main), "
				"budget (deep pipe and budget of main), behind, stuck (of main)\n");
		return 2;
	}
	bin = argv[1];
	reduced = getenv("RP_TEST_REDUCED") && *getenv("RP_TEST_REDUCED") == '1';
	signal(SIGPIPE, SIG_IGN);
	make_root();
	if (wanted(argc, argv, "main")) {
		if (server_start(NULL)) {
			fprintf(stderr, "FAIL: server did not start\n");
			return 1;
		}
		test_statuses();
		test_escapes();
		test_special_files();
		test_if_range();
		test_refused_once();
		test_keepalive_and_pipelining();
		test_partial_next();
		test_partial_next_behind();
		test_pipelined_behind_zc();
		test_close_fin_soon();
		test_stuck_behind_zc();
		test_stuck_two();
		test_reset_behind_zc();
		test_reset_count();
		test_spin_hold();
		test_pipelined_heads();
		test_deep_pipeline();
		test_pipeline_budget();
		test_behind();
		test_big();
		test_many_clients();
		test_changing_under_load();
		test_fresh();
		test_memo();
		for (int i = 0; i < 50; i++)
			held[i] = dial();
		uint64_t t0 = now_ms();
		int rc = server_stop(5000);

		CHECK(rc == 0, "exit status %d after SIGTERM with 50 clients", rc);
		printf("sigterm: exit %d in %llu ms with 50 clients connected\n", rc,
		       (unsigned long long)(now_ms() - t0));
		for (int i = 0; i < 50; i++)
			if (held[i] >= 0)
				close(held[i]);
	}
	if (argc >= 3 && wanted(argc, argv, "budget")) { /* main runs it too */
		if (server_start(NULL)) {
			fprintf(stderr, "FAIL: server did not start\n");
			return 1;
		}
		test_deep_pipeline();
		test_pipeline_budget();
		CHECK(server_stop(5000) == 0, "stop");
	}
	if (argc >= 3 && wanted(argc, argv, "escapes")) { /* main runs it too */
		if (server_start(NULL)) {
			fprintf(stderr, "FAIL: server did not start\n");
			return 1;
		}
		test_escapes();
		CHECK(server_stop(5000) == 0, "stop");
	}
	if (argc >= 3 && wanted(argc, argv, "memo")) { /* main runs it too */
		if (server_start(NULL)) {
			fprintf(stderr, "FAIL: server did not start\n");
			return 1;
		}
		test_memo();
		CHECK(server_stop(5000) == 0, "stop");
	}
	if (argc >= 3 && wanted(argc, argv, "behind")) { /* main runs it too */
		if (server_start(NULL)) {
			fprintf(stderr, "FAIL: server did not start\n");
			return 1;
		}
		test_behind();
		CHECK(server_stop(5000) == 0, "stop");
	}
	if (argc >= 3 && wanted(argc, argv, "partial")) { /* main runs it too */
		if (server_start(NULL)) {
			fprintf(stderr, "FAIL: server did not start\n");
			return 1;
		}
		test_partial_next();
		test_partial_next_behind();
		CHECK(server_stop(5000) == 0, "stop");
	}
	if (argc >= 3 && wanted(argc, argv, "stuck")) { /* main runs it too */
		if (server_start(NULL)) {
			fprintf(stderr, "FAIL: server did not start\n");
			return 1;
		}
		test_pipelined_behind_zc();
		test_close_fin_soon();
		test_stuck_behind_zc();
		test_stuck_two();
		test_reset_behind_zc();
		test_reset_count();
		test_spin_hold();
		CHECK(server_stop(5000) == 0, "stop");
	}
	if (wanted(argc, argv, "counts"))
		test_counts();
	if (wanted(argc, argv, "path_bytes"))
		test_path_bytes();
	if (wanted(argc, argv, "interval"))
		test_stats_interval();
	if (wanted(argc, argv, "mode"))
		test_mode();
	if (wanted(argc, argv, "timeouts"))
		test_timeouts();
	if (wanted(argc, argv, "silent"))
		test_silent();
	if (wanted(argc, argv, "deaf_bodies"))
		test_deaf_bodies();
	if (wanted(argc, argv, "linger"))
		test_linger();
	if (wanted(argc, argv, "reroot"))
		test_reroot();
	if (wanted(argc, argv, "nofile"))
		test_nofile();
	if (wanted(argc, argv, "truncated")) {
		if (server_start(NULL)) {
			fprintf(stderr, "FAIL: server did not start\n");
			return 1;
		}
		test_truncated();
		test_truncated_queued();
		test_truncated_last();
		CHECK(server_stop(5000) == 0, "stop");
	}
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s %s", root, outside);
	if (system(cmd))
		fprintf(stderr, "could not remove %s and %s\n", root, outside);
	free(big);
	printf("%s\n", failures ? "FAIL" : "PASS");
	return failures ? 1 : 0;
}
