/* SPDX-License-Identifier: MIT */
/*
 * Idle timeouts survive an empty pool (faults build only): `ringplane
 * echo --idle-timeout 1`, `serve --header-timeout 1` (a connection that
 * never sent a byte waits for its first head that long) and `relay
 * --idle-timeout 1` (in front of an echo without faults) run with
 * RP_FAULTS=nomem=P, so that op allocations fail at random as with an
 * exhausted pool. Each round a batch of clients connects and sends
 * nothing; every one must be closed by the server within the timeout plus
 * a bound (those whose set-up found no op are closed at once, the others
 * by the periodic tick or sweep), and some must have lasted the timeout
 * (the tick closed them, not a failed set-up). The servers' exit stats
 * must count idle closes, and the injection must have struck (nomem).
 * Then `relay --accept-proxy` with silent clients: each PROXY header read
 * is bounded by a linked timeout (5 s), which takes no op of its own, so
 * nomem must not leave any read unbounded either (this one passed before
 * too: a guard, not a reproduction).
 *
 * The tick or sweep re-arms itself; on rp_timeout it needed an op each
 * time, and once an allocation failed with no connection opening or
 * closing afterwards it stayed off, with the idle connections open for
 * good (echo: at P = 0.7 a tick of 250 ms is lost at its first re-arm 7
 * times in 10; serve retried 4 times, 0.24 a tick; the relay's 1 s sweep
 * 0.5). A reserved timer (rp_timer_new at shard init) never needs memory
 * to re-arm. Elsewhere RP_FAULTS is not read: the test skips (77).
 * Usage: test_tick_nomem RINGPLANE_BINARY.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "test_child.h"

enum { BATCH = 24 }; /* clients a round */

/* A server under test and what it promises its silent clients. */
struct srv {
	const char *name, *faults; /* RP_FAULTS for it */
	const char *const *args;
	int rounds;
	unsigned bound_ms; /* every client closed within this of its connect */
	unsigned late_ms;  /* closed this long after its connect: by the timeout */
	const char *stat;  /* the exit stats' count of such closes */
	bool eq;	   /* written NAME=N, not NAME N */
};

/* Sum of NAME=V over the log (the relay's "ended ... idle=N"). */
static unsigned long long eq_sum(const char *log, const char *name)
{
	unsigned long long sum = 0;
	size_t nl = strlen(name);

	for (const char *p = log; (p = strstr(p, name)); p += nl)
		if (p > log && p[-1] == ' ' && p[nl] == '=')
			sum += strtoull(p + nl + 1, NULL, 10);
	return sum;
}

/* One round: BATCH clients connect and stay silent; how many the server
 * closed in time (@late: of those, how many after LATE_MS), -1 on a
 * client that could not connect. */
static int round_once(const struct srv *v, int port, int *late)
{
	int fds[BATCH], n = 0, closed = 0;
	uint64_t t0[BATCH], end;

	*late = 0;
	for (int i = 0; i < BATCH; i++) {
		fds[i] = dial(port);
		t0[i] = now_ms();
		if (fds[i] < 0)
			break;
		n++;
	}
	if (n < BATCH) {
		for (int i = 0; i < n; i++)
			close(fds[i]);
		return -1;
	}
	end = now_ms() + v->bound_ms;
	while (closed < n && now_ms() < end) {
		struct pollfd p[BATCH];

		for (int i = 0; i < n; i++)
			p[i] = (struct pollfd){ .fd = fds[i], .events = POLLIN | POLLRDHUP };
		if (poll(p, (nfds_t)n, 20) <= 0)
			continue;
		for (int i = 0; i < n; i++) {
			char b[64];
			ssize_t r;

			if (fds[i] < 0 || !p[i].revents)
				continue;
			r = recv(fds[i], b, sizeof(b), MSG_DONTWAIT);
			if (r > 0 || (r < 0 && (errno == EAGAIN || errno == EINTR)))
				continue; /* nothing was asked: no answer expected */
			if (now_ms() - t0[i] >= v->late_ms)
				(*late)++;
			close(fds[i]);
			fds[i] = -1;
			closed++;
		}
	}
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return closed;
}

/* Run @v's server with its RP_FAULTS for its rounds. */
static void run(const struct srv *v)
{
	const char *was = getenv("RP_FAULTS");
	char *saved = was ? strdup(was) : NULL;
	int st, total_late = 0;
	unsigned long long n, nomem;
	struct child s;

	setenv("RP_FAULTS", v->faults, 1);
	st = child_start(&s, v->args);
	if (saved)
		setenv("RP_FAULTS", saved, 1);
	else
		unsetenv("RP_FAULTS");
	free(saved);
	CHECK(st == 0, "%s did not start", v->name);
	if (st)
		return;
	for (int r = 0; r < v->rounds; r++) {
		int late, closed = round_once(v, s.port, &late);

		CHECK(closed == BATCH, "%s (%s): round %d: %d of %d silent clients closed within %u ms",
		      v->name, v->faults, r, closed, BATCH, v->bound_ms);
		if (closed < 0)
			break;
		total_late += late;
		printf("%s (%s): round %d: %d of %d closed, %d of them after %u ms (the timeout)\n",
		       v->name, v->faults, r, closed, BATCH, late, v->late_ms);
	}
	st = child_stop(&s, 10000);
	CHECK(st == 0, "%s: exit status %d", v->name, st);
	n = v->eq ? eq_sum(s.log, v->stat) : stat_sum(s.log, v->stat);
	nomem = stat_sum(s.log, "nomem");
	CHECK(total_late > 0, "%s: no client lasted %u ms: none was closed by the timeout", v->name,
	      v->late_ms);
	CHECK(n > 0, "%s: exit stats count no timeout (%s)", v->name, v->stat);
	printf("%s: %d clients closed by the timeout in %d rounds; exit stats %s %llu, nomem %llu\n",
	       v->name, total_late, v->rounds, v->stat, n, nomem);
}

int main(int argc, char **argv)
{
	char root[64], small[16], path[128], up[32];
	struct child echo;

	if (argc != 2) {
		fprintf(stderr, "usage: test_tick_nomem RINGPLANE_BINARY\n");
		return 2;
	}
	bin = argv[1];
	signal(SIGPIPE, SIG_IGN);
#ifndef RP_FAULTS
	printf("SKIP: RP_FAULTS (the engine's nomem injection) is read by the faults build "
	       "(-Dfaults=true) only; dev.sh test runs this test there\n");
	return 77;
#endif
	if (make_root(root, sizeof(root), "ticks", small, sizeof(small))) {
		printf("SKIP: cannot make a root under /tmp: %s\n", strerror(errno));
		return 77;
	}

	const char *eargs[] = { "echo", "--listen", "127.0.0.1:0", "--no-pin", "--shards", "1",
				"--idle-timeout", "1", NULL };
	const char *sargs[] = { "serve", "--listen", "127.0.0.1:0", "--root", root, "--no-pin",
				"--shards", "1", "--header-timeout", "1", NULL };

	run(&(struct srv){ .name = "echo", .faults = "nomem=0.7", .args = eargs, .rounds = 3,
			   .bound_ms = 5000, .late_ms = 700, .stat = "idle_closed" });
	run(&(struct srv){ .name = "serve", .faults = "nomem=0.7", .args = sargs, .rounds = 3,
			   .bound_ms = 5000, .late_ms = 700, .stat = "header_timeouts" });

	/* the relay's upstream: an echo without faults nor idle timeout */
	unsetenv("RP_FAULTS");
	const char *uargs[] = { "echo", "--listen", "127.0.0.1:0", "--no-pin", "--shards", "1",
				"--idle-timeout", "0", NULL };
	if (child_start(&echo, uargs)) {
		CHECK(0, "the relay's upstream echo did not start");
	} else {
		snprintf(up, sizeof(up), "127.0.0.1:%d", echo.port);
		const char *rargs[] = { "relay", "--listen", "127.0.0.1:0", "--upstream", up,
					"--no-pin", "--shards", "1", "--idle-timeout", "1", NULL };
		/* the PROXY header's 5 s timeout is a linked timeout of each
		 * read, with no op of its own: nomem must not unbound it */
		const char *pargs[] = { "relay", "--listen", "127.0.0.1:0", "--upstream", up,
					"--no-pin", "--shards", "1", "--accept-proxy", NULL };

		run(&(struct srv){ .name = "relay", .faults = "nomem=0.5", .args = rargs,
				   .rounds = 3, .bound_ms = 5000, .late_ms = 700, .stat = "idle",
				   .eq = true });
		run(&(struct srv){ .name = "relay --accept-proxy", .faults = "nomem=0.5",
				   .args = pargs, .rounds = 1, .bound_ms = 9000, .late_ms = 4500,
				   .stat = "timeouts" });
		CHECK(child_stop(&echo, 10000) == 0, "upstream echo: bad exit status");
	}

	snprintf(path, sizeof(path), "%s/small.txt", root);
	unlink(path);
	rmdir(root);
	printf("%s (%d failures)\n", failures ? "FAILED" : "OK", failures);
	return failures ? 1 : 0;
}
