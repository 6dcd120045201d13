/* SPDX-License-Identifier: MIT */
/*
 * A listener whose accept failed with EMFILE comes back even when its
 * back-off timer cannot be armed (apps/server.c, rp_app_accept_*), for
 * `ringplane relay` and `ringplane serve`: each runs with RP_APP_FAULT_BACKOFF
 * set, so every back-off timer fails to arm as with an empty pool, and a
 * descriptor limit of 32, then 33 (a relay connection takes two
 * descriptors: one of the two limits makes the accept itself fail). Clients
 * connect one at a time and stay until one is not answered within 500 ms
 * (the limit struck); all are closed; then a fresh client must be
 * answered within 5 s: the closes re-arm the accept. Before the shared
 * recovery only echo did that, and relay and serve stayed down for good.
 * The servers' exit stats must count failed accepts. Usage: test_accept
 * RINGPLANE_BINARY.
 * The hook is compiled into the faults build (-Dfaults=true) only; in
 * other builds the same runs go without it (the reserved back-off timer
 * re-arms the accept) and the test says that the poke path was skipped.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "test_child.h"

enum { MAX_HELD = 64 };

/* RP_APP_FAULT_BACKOFF exists in the faults build only (apps/server.c). */
#ifdef RP_FAULTS
#define HOOKS 1
#else
#define HOOKS 0
#endif

/* Dial @port, send @req and wait up to @ms for a reply starting with @want:
 * the fd (answered), or -1. */
static int ask(int port, const char *req, const char *want, unsigned ms)
{
	size_t wl = strlen(want), got = 0;
	uint64_t end = now_ms() + ms;
	char buf[64];
	int fd = dial(port);

	if (fd < 0)
		return -1;
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0)
		goto fail;
	while (got < wl && now_ms() < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 20) <= 0)
			continue;
		r = recv(fd, buf + got, sizeof(buf) - got, MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			goto fail;
		if (r > 0)
			got += (size_t)r;
	}
	if (got >= wl && !memcmp(buf, want, wl))
		return fd;
fail:
	close(fd);
	return -1;
}

static unsigned long long run(const char *name, const char *const *args, rlim_t limit,
			      const char *req, const char *want)
{
	int held[MAX_HELD], n = 0, fd = -1, st;
	unsigned long long errs;
	uint64_t end;
	struct child s;

	if (HOOKS)
		setenv("RP_APP_FAULT_BACKOFF", "1000000", 1);
	child_nofile = limit;
	st = child_start(&s, args);
	child_nofile = 0;
	unsetenv("RP_APP_FAULT_BACKOFF");
	CHECK(st == 0, "%s did not start", name);
	if (st)
		return 0;
	while (n < MAX_HELD && (held[n] = ask(s.port, req, want, 500)) >= 0)
		n++;
	CHECK(n > 0 && n < MAX_HELD, "%s: limit %llu: %d clients held (want some, not all)", name,
	      (unsigned long long)limit, n);
	for (int i = 0; i < n; i++)
		close(held[i]);
	/* with the hook the closes are what re-arms the accept: no timer will */
	end = now_ms() + 5000;
	while (fd < 0 && now_ms() < end)
		fd = ask(s.port, req, want, 200);
	CHECK(fd >= 0, "%s: limit %llu: no fresh client answered within 5 s of the closes", name,
	      (unsigned long long)limit);
	if (fd >= 0)
		close(fd);
	st = child_stop(&s, 5000);
	CHECK(st == 0, "%s: exit status %d", name, st);
	errs = stat_sum(s.log, "accept_errors");
	printf("%s: limit %llu, back-off timers %s: %d clients held, a fresh one %s after "
	       "they closed; %llu failed accepts\n",
	       name, (unsigned long long)limit, HOOKS ? "failing" : "working", n,
	       fd >= 0 ? "answered" : "NOT answered", errs);
	return errs;
}

int main(int argc, char **argv)
{
	char up[64], root[64], small[16], path[128];
	unsigned long long errs = 0;
	struct child echo;

	if (argc < 2) {
		fprintf(stderr, "usage: test_accept RINGPLANE_BINARY\n");
		return 2;
	}
	bin = argv[1];
	signal(SIGPIPE, SIG_IGN);
	{
		const char *eargs[] = { "echo", "--listen", "127.0.0.1:0", "--shards", "1", NULL };

		CHECK(child_start(&echo, eargs) == 0, "echo did not start");
		if (failures)
			return 1;
	}
	snprintf(up, sizeof(up), "127.0.0.1:%d", echo.port);
	{
		const char *rargs[] = { "relay", "--listen", "127.0.0.1:0", "--upstream", up,
					"--shards", "1", "--mode", "copy", NULL };

		for (rlim_t l = 32; l <= 33; l++)
			errs += run("relay", rargs, l, "ping", "ping");
		CHECK(errs > 0, "relay: no failed accept counted: the limit never struck the accept");
	}
	CHECK(child_stop(&echo, 5000) == 0, "echo exit");
	if (make_root(root, sizeof(root), "accept", small, sizeof(small))) {
		CHECK(0, "root: %s", strerror(errno));
	} else {
		const char *sargs[] = { "serve", "--listen", "127.0.0.1:0", "--root", root,
					"--shards", "1", NULL };

		errs = 0;
		for (rlim_t l = 32; l <= 33; l++)
			errs += run("serve", sargs, l,
				    "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n", "HTTP/1.1 ");
		CHECK(errs > 0, "serve: no failed accept counted: the limit never struck the accept");
		snprintf(path, sizeof(path), "%s/small.txt", root);
		unlink(path);
		rmdir(root);
	}
	if (!HOOKS)
		printf("SKIP (part): the back-off timers ran; the re-arm by connection closes when "
		       "they fail needs RP_APP_FAULT_BACKOFF, compiled into the faults build "
		       "(-Dfaults=true) only\n");
	printf("%s\n", failures ? "FAIL" : "PASS");
	return failures ? 1 : 0;
}
