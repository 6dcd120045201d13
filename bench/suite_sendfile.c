/* SPDX-License-Identifier: MIT */
/*
 * sendfile suite: `ringplane serve --shards 1` (ours) side by side with
 * nginx (worker_processes 1, sendfile on, tcp_nopush on, open_file_cache
 * as ours keeps open files, keep-alive, access_log off, a config in a temp
 * dir) serving the same files from the same root, from the same run.
 *
 * Both servers run at once, each started as a child pinned to the same CPU
 * S (ringplane also with --cpus S); wrk (-t1) runs on the other CPU C.
 * Each row starts with a 1 s unmeasured run of each server; then runs
 * alternate between the two, run r starting at server r, so neighbours
 * on a shared host hit both alike and neither is always first; the
 * median of the runs is reported.
 *
 * Rows:
 * - "4KB keep-alive" and "64KB" req/s: wrk -c8 and -c64 for a 4 KB and a
 *   64 KB file (and -c32 for 4 KB, the row the earlier sets were taken
 *   with);
 * - "1MB" and "64MB" Gbit/s: wrk -c8 and -c64 (and -c4 for 64 MB, the
 *   earlier sets' row), bytes wrk read (its Lua done() hook:
 *   summary.bytes / summary.duration, headers included, and the part of
 *   a body still coming when the run ends) in Gbit/s; the files are read
 *   once first, so they are in the page cache;
 * - "cpu s/GB ROW" under every row ("cpu s/GB 1MB" and "cpu s/GB 64MB"
 *   under -c8 and -c4, their earlier names): CPU seconds of the server
 *   (the run time of every thread from /proc/PID/task/TID/schedstat, else
 *   utime+stime; nginx: its master and its worker) per GB wrk read, over
 *   the row's runs; lower is better, ratio nginx/ours;
 * - "range 1MB of 64MB" req/s: wrk -c8 with "Range: bytes=A-B" (1 MB from
 *   the middle of the 64 MB file; 206 answers);
 * - "4KB pipelined x16" req/s: wrk -c32 and -c1 with a Lua script that
 *   sends 16 requests per write (wrk's pipeline.lua). nginx answers such
 *   batches late (the last answers of a batch wait on TCP timers: with one
 *   connection it sits idle); when nginx's CPU was busy less than half as
 *   much as ours in the -c1 row, both pipelined rows are shown as
 *   strawmen, out of the geomean: they measure that stall rather than
 *   work per request.
 * Under every row a note gives the measure the row does not (Gbit/s of a
 * req/s row, req/s of a Gbit/s row: completed answers only), each
 * server's CPU busy fraction (CPU s per wall s of its runs) and wrk's in
 * the same runs (RUSAGE_CHILDREN: wrk is the only child reaped
 * meanwhile), which tells which side set the row: in the 64 MB rows wrk,
 * copying every byte out of its socket, is the busy one.
 *
 * Checks: before any row, one GET of every file (and the range) from each
 * server with a small client here, compared by status, length and CRC32C
 * with the file on disk; a server that serves other bytes fails the suite.
 * wrk reporting non-2xx/3xx responses or socket errors fails the row
 * loudly (as does a Lua summary with errors). wrk or nginx missing: the
 * rows skip with the reason. Every child runs in its own process group,
 * is stopped with SIGTERM (then SIGKILL), and every wait is bounded.
 * `ringplane` is found next to this binary (../apps/ringplane) or through
 * RINGPLANE_BIN; nginx and wrk on PATH (or /usr/sbin/nginx).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ringplane/engine.h>
#include <ringplane/filesend.h>
#include <ringplane/simd.h>

#include "bench.h"
#include "cleanup.h"
#include "proc.h"
#include "report_impl.h"

#define MAX_RUNS	 8

/* ---- the suite's state ---- */

#define NFILES	  4
#define RANGE_OFF (32ull << 20) /* 1 MB from the middle of the 64 MB file */
#define RANGE_LEN (1ull << 20)
#define PIPE_DEPTH 16

/* S_RP_NOSPIN: serve with --idle-spin 0, on the 4 KB keep-alive and 64 MB
 * rows only (nospin_row): what its default spin buys at 4 KB and costs
 * (or, held for big bodies, no longer costs) at 64 MB */
enum srv { S_RP, S_NGINX, S_RP_NOSPIN, S_NR };

static const char *const srv_name[S_NR] = { "ringplane serve", "nginx",
					    "ringplane serve --idle-spin 0" };

static const struct {
	const char *name;
	size_t size;
} files[NFILES] = { { "4k.bin", 4096 },
		     { "64k.bin", 64u << 10 },
		     { "1m.bin", 1u << 20 },
		     { "64m.bin", 64u << 20 } }; /* the largest last: the range's */

struct ctx {
	const struct rp_bench_opts *opts;
	int cpu_s, cpu_c; /* servers; wrk */
	struct rp_bench_place pl; /* RP_BENCH_SHARDS: N CPUs for each server, N for wrk */
	char rp[PATH_MAX], wrk[PATH_MAX], nginx[PATH_MAX];
	bool have_rp, have_wrk, have_nginx;
	char dir[64]; /* temp dir: configs, scripts, the root */
	char www[96];
	uint32_t crc[NFILES], range_crc;
	struct proc p[S_NR];
	int port[S_NR];
	int failed; /* a row failed loudly: the suite returns it */
};

static int write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	ssize_t w;

	if (fd < 0)
		return -errno;
	w = write(fd, data, len);
	fchmod(fd, mode); /* whatever the umask */
	if (close(fd) || w != (ssize_t)len)
		return -EIO;
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* The files under x->www (0755, files 0644: nginx's workers run as
 * www-data), their CRC32C and the range's; each read back once so all are
 * in the page cache before any run. */
static int make_files(struct ctx *x)
{
	size_t max = files[NFILES - 1].size;
	uint8_t *buf = malloc(max);
	char path[160];
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < max; i++)
		buf[i] = (uint8_t)(i * 131u + 7u + (i >> 8) + (i >> 20));
	if (mkdir(x->www, 0755) && errno != EEXIST) {
		ret = -errno;
		goto out;
	}
	chmod(x->www, 0755);
	for (int f = 0; f < NFILES && !ret; f++) {
		snprintf(path, sizeof(path), "%s/%s", x->www, files[f].name);
		ret = write_file(path, buf, files[f].size, 0644);
		x->crc[f] = rp_crc32c(0, buf, files[f].size);
	}
	x->range_crc = rp_crc32c(0, buf + RANGE_OFF, RANGE_LEN);
	/* Read back (page cache warm, and what is on disk is what we wrote). */
	for (int f = 0; f < NFILES && !ret; f++) {
		int fd;
		ssize_t r;

		snprintf(path, sizeof(path), "%s/%s", x->www, files[f].name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			ret = -errno;
			break;
		}
		r = read(fd, buf, files[f].size);
		close(fd);
		if (r != (ssize_t)files[f].size || rp_crc32c(0, buf, files[f].size) != x->crc[f])
			ret = -EIO;
	}
out:
	free(buf);
	return ret;
}

/* ---- the servers ---- */

static int nginx_start(struct ctx *x)
{
	char conf[96], elog[96], text[4096]; /* x->dir: 64 bytes */
	char aff[RP_BENCH_MAX_SHARDS * 72];
	char *argv[] = { x->nginx, "-p", x->dir, "-c", conf, "-e", elog, NULL };
	int ret, port = free_port();

	rp_bench_nginx_affinity(aff, sizeof(aff), x->pl.srv, x->pl.n);
	if (port < 0)
		return port;
	x->port[S_NGINX] = port;
	snprintf(conf, sizeof(conf), "%s/nginx.conf", x->dir);
	snprintf(elog, sizeof(elog), "%s/nginx-error.log", x->dir);
	snprintf(text, sizeof(text),
		 "daemon off;\n"
		 "worker_processes %u;\n"
		 "%s%s%s"
		 "%s"
		 "pid %s/nginx.pid;\n"
		 "error_log %s/nginx-error.log;\n"
		 "events { worker_connections 4096; }\n"
		 "http {\n"
		 "    access_log off;\n"
		 "    sendfile on;\n"
		 "    tcp_nopush on;\n"
		 /* ours keeps open files (rechecked within 1 s): so does nginx */
		 "    open_file_cache max=1024 inactive=60s;\n"
		 "    open_file_cache_valid 1s;\n"
		 "    keepalive_timeout 65;\n"
		 "    keepalive_requests 1000000;\n"
		 "    default_type application/octet-stream;\n"
		 "    client_body_temp_path %s/t_body;\n"
		 "    proxy_temp_path %s/t_proxy;\n"
		 "    fastcgi_temp_path %s/t_fastcgi;\n"
		 "    uwsgi_temp_path %s/t_uwsgi;\n"
		 "    scgi_temp_path %s/t_scgi;\n"
		 "    server { listen 127.0.0.1:%d; root %s; }\n"
		 "}\n",
		 x->pl.n ? x->pl.n : 1, x->pl.n ? "worker_cpu_affinity " : "", aff,
		 x->pl.n ? ";\n" : "", geteuid() == 0 ? "user www-data;\n" : "", x->dir, x->dir,
		 x->dir, x->dir, x->dir, x->dir, x->dir, port, x->www);
	ret = write_file(conf, text, strlen(text), 0644);
	if (ret)
		return ret;
	/* with RP_BENCH_SHARDS: N workers, one on each server CPU */
	ret = proc_spawn_placed(&x->p[S_NGINX], argv, x->pl.n, x->pl.srv, x->cpu_s);
	if (!ret)
		ret = wait_bound(&x->p[S_NGINX], port, START_TIMEOUT_MS);
	return ret;
}

static int rp_start(struct ctx *x, enum srv s)
{
	char lst[32], cpus[96], shards[16];
	char *argv[] = { x->rp, "serve", "--listen", lst, "--root", x->www, "--shards", shards,
			 "--cpus", cpus, s == S_RP_NOSPIN ? "--idle-spin" : NULL, "0", NULL };
	uint64_t deadline = rp_bench_now_ns() + (uint64_t)START_TIMEOUT_MS * 1000000u;
	struct proc *p = &x->p[s];
	int ret, port = free_port();

	if (port < 0)
		return port;
	x->port[s] = port;
	snprintf(lst, sizeof(lst), "127.0.0.1:%d", port);
	snprintf(cpus, sizeof(cpus), "%d", x->cpu_s);
	snprintf(shards, sizeof(shards), "%u", x->pl.n ? x->pl.n : 1);
	if (x->pl.n)
		snprintf(cpus, sizeof(cpus), "%s", x->pl.srv_list);
	ret = proc_spawn_placed(p, argv, x->pl.n, x->pl.srv, x->cpu_s);
	if (ret)
		return ret;
	ret = proc_read(p, deadline, "listening on");
	if (ret < 0)
		return ret;
	if (!strstr(proc_log(p), "listening on"))
		return ret == 1 ? -EIO : -ETIMEDOUT;
	return 0;
}

/*
 * CPU seconds of process @pid: the sum of its threads' run time from
 * /proc/PID/task/TID/schedstat (nanoseconds, kept by the scheduler), else
 * utime+stime. Those are sampled at the tick (CONFIG_TICK_CPU_ACCOUNTING:
 * 4 ms a sample at HZ=250), so a 3 s run of a server busy 40% of the time
 * holds about 300 samples, +-6% from sampling alone.
 */
static double proc_run_s(pid_t pid)
{
	char path[64], buf[128];
	unsigned long long ns, sum = 0;
	struct dirent *d;
	DIR *dir;
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (!dir)
		return proc_cpu_s(pid);
	while ((d = readdir(dir))) {
		if (d->d_name[0] < '0' || d->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.16s/schedstat", (int)pid, d->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue; /* the thread is gone */
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		if (sscanf(buf, "%llu", &ns) != 1) {
			closedir(dir);
			return proc_cpu_s(pid);
		}
		sum += ns;
	}
	closedir(dir);
	return sum ? (double)sum / 1e9 : proc_cpu_s(pid);
}

/* CPU seconds of server @s: every thread of the process, and for nginx its
 * children (the worker) too, read live (cutime counts only reaped ones). */
static double srv_cpu_s(const struct ctx *x, enum srv s)
{
	pid_t pid = x->p[s].pid;
	double t = proc_run_s(pid);
	char path[64], buf[512], *q, *e;
	int fd;
	ssize_t n;

	if (s != S_NGINX || t < 0)
		return t;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	for (q = buf;; q = e) {
		long c = strtol(q, &e, 10);
		double ct;

		if (e == q)
			break;
		ct = proc_run_s((pid_t)c);
		if (ct < 0)
			return -1;
		t += ct;
	}
	return t;
}

/* ---- the check: one GET per file from each server, compared here ---- */

/*
 * GET @path (with "Range: bytes=@off-@end" when @len is not 0) from
 * 127.0.0.1:@port over HTTP/1.1 with Connection: close; 0 when the status
 * is @want_status and the body has @want_len bytes with CRC32C @want_crc,
 * else -EBADMSG / -EIO with @err saying what came back.
 */
static int http_check(int port, const char *path, uint64_t off, uint64_t len, int want_status,
		      size_t want_len, uint32_t want_crc, char *err, size_t errsz)
{
	uint64_t deadline = rp_bench_now_ns() + 10000000000ull;
	struct sockaddr_in a = loopback(port);
	char req[256], head[8192], rng[80] = "";
	size_t hlen = 0, blen = 0;
	const char *body = NULL;
	uint32_t crc = 0;
	int fd, status = 0, n, ret = -EBADMSG;

	if (len)
		snprintf(rng, sizeof(rng), "Range: bytes=%llu-%llu\r\n", (unsigned long long)off,
			 (unsigned long long)(off + len - 1));
	n = snprintf(req, sizeof(req),
		     "GET /%s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sConnection: close\r\n\r\n", path,
		     rng);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) || write(fd, req, (size_t)n) != n) {
		snprintf(err, errsz, "connect/write: %s", strerror(errno));
		close(fd);
		return -EIO;
	}
	for (;;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		char buf[65536];
		ssize_t r;

		if (!ms_left(deadline)) {
			snprintf(err, errsz, "no EOF within 10 s (%zu body bytes)", blen);
			close(fd);
			return -ETIMEDOUT;
		}
		if (poll(&pf, 1, (int)ms_left(deadline)) <= 0)
			continue;
		r = read(fd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (!body) {
			size_t take = (size_t)r < sizeof(head) - 1 - hlen ? (size_t)r
									  : sizeof(head) - 1 - hlen;
			char *end;

			memcpy(head + hlen, buf, take);
			hlen += take;
			head[hlen] = '\0';
			end = strstr(head, "\r\n\r\n");
			if (!end) {
				if (hlen == sizeof(head) - 1)
					break;
				continue;
			}
			body = end + 4;
			/* body bytes: what followed the head in this read */
			size_t before = hlen - take, hend = (size_t)(body - head);
			size_t from = hend - before;

			crc = rp_crc32c(crc, buf + from, (size_t)r - from);
			blen += (size_t)r - from;
		} else {
			crc = rp_crc32c(crc, buf, (size_t)r);
			blen += (size_t)r;
		}
	}
	close(fd);
	if (hlen >= 12)
		sscanf(head + 9, "%d", &status);
	if (body && status == want_status && blen == want_len && crc == want_crc)
		ret = 0;
	else
		snprintf(err, errsz,
			 "expected %d and %zu bytes with crc32c %08x, got status %d, %zu body bytes, crc32c %08x; head \"%.60s\"",
			 want_status, want_len, want_crc, status, blen, crc, head);
	return ret;
}

/* Every file and the range from server @s, byte-exact: 0 or -EBADMSG. */
static int check_server(struct ctx *x, enum srv s)
{
	char err[512];
	int ret = 0;

	for (int f = 0; f < NFILES && !ret; f++) {
		ret = http_check(x->port[s], files[f].name, 0, 0, 200, files[f].size, x->crc[f],
				 err, sizeof(err));
		if (ret)
			fprintf(stderr, "sendfile: FAILED GET /%s from %s: %s\n", files[f].name,
				srv_name[s], err);
	}
	if (!ret) {
		ret = http_check(x->port[s], files[NFILES - 1].name, RANGE_OFF, RANGE_LEN, 206,
				 RANGE_LEN, x->range_crc, err, sizeof(err));
		if (ret)
			fprintf(stderr, "sendfile: FAILED range GET from %s: %s\n", srv_name[s],
				err);
	}
	if (ret)
		rp_report_note("FAILED: %s did not serve the files byte for byte (see stderr)",
			       srv_name[s]);
	return ret;
}

/* ---- wrk ---- */

struct wrk_result {
	double rps, gbps;
	uint64_t bytes, us, reqs;
	double client_cpu_s; /* wrk's own CPU seconds */
};

static double children_cpu_s(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_CHILDREN, &ru))
		return -1;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* wrk's summary, exact, from the Lua done() hook (the text rounds). */
#define LUA_DONE                                                                                   \
	"done = function(s, lat, req)\n"                                                           \
	"  local e = s.errors\n"                                                                   \
	"  io.write(string.format(\"RPSTAT %d %d %d %d %d %d %d %d\\n\", s.bytes, s.duration,"     \
	" s.requests, e.connect, e.read, e.write, e.status, e.timeout))\n"                         \
	"end\n"

static int write_scripts(struct ctx *x)
{
	char path[128], text[1024];
	int ret;

	snprintf(path, sizeof(path), "%s/stat.lua", x->dir);
	ret = write_file(path, LUA_DONE, strlen(LUA_DONE), 0644);
	if (ret)
		return ret;
	/* wrk's scripts/pipeline.lua: PIPE_DEPTH requests in one write */
	snprintf(text, sizeof(text),
		 "init = function(args)\n"
		 "  local r = {}\n"
		 "  for i = 1, %d do r[i] = wrk.format(nil, \"/4k.bin\") end\n"
		 "  req = table.concat(r)\n"
		 "end\n"
		 "request = function() return req end\n%s",
		 PIPE_DEPTH, LUA_DONE);
	snprintf(path, sizeof(path), "%s/pipe.lua", x->dir);
	return write_file(path, text, strlen(text), 0644);
}

/* wrk -t1 -c@conns -d@secs on cpu C for @path on server @s (@hdr: one
 * extra header or NULL; @pipe: the pipelining script). Fails (-EPROTO,
 * with @err) on non-2xx/3xx responses or socket errors.
 * @bulk: a Gbit/s row, whose rate counts bytes: a run may end before any
 * answer completes (64 connections sharing ~10 Gbit/s take about 3 s for
 * each 64 MB answer, past a 1 s run and wrk's usual 5 s timeout), so wrk's
 * timeout is set past the run's end and bytes read suffice. */
static int wrk_run(struct ctx *x, enum srv s, const char *path, unsigned conns, const char *hdr,
		   bool pipe, bool bulk, unsigned secs, struct wrk_result *res, char *err,
		   size_t errsz)
{
	char d[16], c[16], t[16], url[96], script[128], tmo[16];
	char *argv[16];
	unsigned long long v[8];
	struct proc pr;
	const char *l;
	int ret, n = 0;

	snprintf(d, sizeof(d), "%us", secs);
	snprintf(tmo, sizeof(tmo), "%us", bulk ? secs + TOOL_SLACK_S : 5);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/%s", x->port[s], path);
	snprintf(script, sizeof(script), "%s/%s", x->dir, pipe ? "pipe.lua" : "stat.lua");
	/* RP_BENCH_SHARDS=N: N threads with N times the connections */
	snprintf(t, sizeof(t), "-t%u", x->pl.n ? x->pl.n : 1);
	snprintf(c, sizeof(c), "-c%u", conns * (x->pl.n ? x->pl.n : 1));
	argv[n++] = x->wrk;
	argv[n++] = t;
	argv[n++] = c;
	argv[n++] = "-d";
	argv[n++] = d;
	argv[n++] = "--timeout";
	argv[n++] = tmo;
	argv[n++] = "-s";
	argv[n++] = script;
	if (hdr) {
		argv[n++] = "-H";
		argv[n++] = (char *)hdr;
	}
	argv[n++] = url;
	argv[n] = NULL;
	/* wrk is the only child reaped meanwhile: the servers run on */
	double c0 = children_cpu_s();

	ret = x->pl.n ? run_tool_on(&pr, argv, x->pl.cli, x->pl.n, secs + TOOL_SLACK_S)
		      : run_tool(&pr, argv, x->cpu_c, secs + TOOL_SLACK_S);
	res->client_cpu_s = c0 >= 0 ? children_cpu_s() - c0 : -1;
	l = strstr(proc_log(&pr), "RPSTAT ");
	if (ret != 0 || !l ||
	    sscanf(l + 7, "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]) != 8 ||
	    !v[1] || !(bulk ? v[0] : v[2])) {
		const char *why = ret > 0 ? "exited non-zero"
				  : ret < 0 ? strerror(-ret)
				  : bulk    ? "read no byte"
					    : "completed no request";

		snprintf(err, errsz, "wrk %s; its last lines: %s", why, log_tail(&pr, 6));
		ret = -EIO;
	} else if ((l = strstr(proc_log(&pr), "Non-2xx or 3xx responses:")) ||
		   (l = strstr(proc_log(&pr), "Socket errors:"))) {
		const char *e = strchr(l, '\n');

		snprintf(err, errsz, "wrk reported \"%.*s\"", e ? (int)(e - l) : 80, l);
		ret = -EPROTO;
	} else if (v[3] + v[4] + v[5] + v[6] + v[7]) {
		snprintf(err, errsz,
			 "wrk counted errors: connect %llu read %llu write %llu status %llu timeout %llu",
			 v[3], v[4], v[5], v[6], v[7]);
		ret = -EPROTO;
	} else {
		res->bytes = v[0];
		res->us = v[1];
		res->reqs = v[2];
		res->rps = (double)v[2] * 1e6 / (double)v[1];
		res->gbps = (double)v[0] * 8.0 / ((double)v[1] * 1e3);
	}
	proc_free(&pr);
	return ret;
}

/* ---- rows ---- */

/* Every size at 8 and 64 connections; -c32 (4 KB) and -c4 (64 MB) are the
 * rows the earlier sets in docs/net.md were taken with, kept beside them. */
enum row_kind {
	R_4K,
	R_4K8,
	R_4K64,
	R_64K8,
	R_64K64,
	R_1M,
	R_1M64,
	R_64M,
	R_64M8,
	R_64M64,
	R_RANGE,
	R_PIPE1,
	R_PIPE,
	R_NR
};

static const struct {
	const char *name, *cpu_name, *path, *unit;
	unsigned conns;
	bool gbps, range, pipe;
} rows[R_NR] = {
	[R_4K] = { "4KB keep-alive -c32", NULL, "4k.bin", "req/s", 32, false, false, false },
	[R_4K8] = { "4KB keep-alive -c8", NULL, "4k.bin", "req/s", 8, false, false, false },
	[R_4K64] = { "4KB keep-alive -c64", NULL, "4k.bin", "req/s", 64, false, false, false },
	[R_64K8] = { "64KB -c8", NULL, "64k.bin", "req/s", 8, false, false, false },
	[R_64K64] = { "64KB -c64", NULL, "64k.bin", "req/s", 64, false, false, false },
	[R_1M] = { "1MB -c8", "1MB", "1m.bin", "Gbit/s", 8, true, false, false },
	[R_1M64] = { "1MB -c64", NULL, "1m.bin", "Gbit/s", 64, true, false, false },
	[R_64M] = { "64MB -c4", "64MB", "64m.bin", "Gbit/s", 4, true, false, false },
	[R_64M8] = { "64MB -c8", NULL, "64m.bin", "Gbit/s", 8, true, false, false },
	[R_64M64] = { "64MB -c64", NULL, "64m.bin", "Gbit/s", 64, true, false, false },
	[R_RANGE] = { "range 1MB of 64MB -c8", NULL, "64m.bin", "req/s", 8, false, true, false },
	[R_PIPE1] = { "4KB pipelined x16 -c1", NULL, "4k.bin", "req/s", 1, false, false, true },
	[R_PIPE] = { "4KB pipelined x16 -c32", NULL, "4k.bin", "req/s", 32, false, false, true },
};

/* RP_BENCH_SENDFILE_ROWS=op,4k,64k,1m,64m,range,pipe picks groups of rows
 * (all when unset), and a size's key with its connections (4k-c8, 64m-c64)
 * one row of it, so one row can be rerun while tuning without the others. */
static const char *const row_group[R_NR][2] = {
	[R_4K] = { "4k", "4k-c32" },	   [R_4K8] = { "4k", "4k-c8" },
	[R_4K64] = { "4k", "4k-c64" },	   [R_64K8] = { "64k", "64k-c8" },
	[R_64K64] = { "64k", "64k-c64" },  [R_1M] = { "1m", "1m-c8" },
	[R_1M64] = { "1m", "1m-c64" },	   [R_64M] = { "64m", "64m-c4" },
	[R_64M8] = { "64m", "64m-c8" },	   [R_64M64] = { "64m", "64m-c64" },
	[R_RANGE] = { "range", "range" },  [R_PIPE1] = { "pipe", "pipe" },
	[R_PIPE] = { "pipe", "pipe" },
};

static bool want_rows(const char *group)
{
	return rp_bench_env_lists("RP_BENCH_SENDFILE_ROWS", group);
}

static void fail_row(struct ctx *x, const char *row, enum srv s, const char *err)
{
	fprintf(stderr, "sendfile: FAILED %s on %s: %s\n", row, srv_name[s], err);
	rp_report_note("FAILED: %s on %s: %s", row, srv_name[s], err);
	x->failed = -EIO;
}

/* The body bytes a request of row @k carries. */
static uint64_t body_len(int k)
{
	if (rows[k].range)
		return RANGE_LEN;
	for (int f = 0; f < NFILES; f++)
		if (!strcmp(files[f].name, rows[k].path))
			return files[f].size;
	return 0;
}

/* The 64 MB rows get more runs: wrk sets its pace, and one binary's runs
 * spread 0.71-1.10x nginx's there in quiet sets of 3-4 (docs/net.md). */
#define RUNS_64M 5

static bool row_64m(int k)
{
	return !rows[k].range && !strcmp(rows[k].path, "64m.bin");
}

/* The rows S_RP_NOSPIN runs in too (the issue's: 4 KB and 64 MB, -c8 and
 * -c64); the others skip it, so the suite takes about 1 min more, not 50%. */
#define NOSPIN_WHY \
	"serve --idle-spin 0 beside the default: ours in another setting, not in the geomean"

static bool nospin_row(int k)
{
	return k == R_4K8 || k == R_4K64 || k == R_64M8 || k == R_64M64;
}

static void measure(struct ctx *x, unsigned runs_all, unsigned secs)
{
	char rng[64], err[1024];
	bool stalled = false; /* nginx sat idle on one pipelining connection */
	const char *stall_why =
		"with one pipelining connection nginx's CPU sat idle (the -c1 row): its pipelined answers wait on TCP timers (tcp_nopush/Nagle), so the row shows that stall, not the work per request";

	snprintf(rng, sizeof(rng), "Range: bytes=%llu-%llu", (unsigned long long)RANGE_OFF,
		 (unsigned long long)(RANGE_OFF + RANGE_LEN - 1));
	for (int k = 0; k < R_NR; k++) {
		double v[S_NR][MAX_RUNS], cpu[S_NR][MAX_RUNS], busy[S_NR][MAX_RUNS],
			cbusy[S_NR][MAX_RUNS], other[S_NR][MAX_RUNS];
		unsigned runs = row_64m(k) && runs_all > 1 ? RUNS_64M : runs_all;
		/* the servers this row runs, in order: the runs rotate over
		 * them, so each starts a round as often as the others */
		enum srv run_srv[S_NR];
		int nsrv = 0;
		bool bad = false, strawman;
		char name[64];

		if (!want_rows(row_group[k][0]) && !want_rows(row_group[k][1]))
			continue;
		/* the rows of a scaling run are named apart */
		snprintf(name, sizeof(name), "%s", rows[k].name);
		if (x->pl.n)
			snprintf(name, sizeof(name), "%s %u shards", rows[k].name, x->pl.n);
		/* a 1 s unmeasured warm-up of each server, then run r starts at
		 * server r: neither is always first */
		for (int s = 0; s < S_NR && !bad; s++) {
			struct wrk_result w;

			if (s == S_RP_NOSPIN && !nospin_row(k))
				continue;
			if (wrk_run(x, (enum srv)s, rows[k].path, rows[k].conns,
				    rows[k].range ? rng : NULL, rows[k].pipe, rows[k].gbps, 1, &w, err,
				    sizeof(err))) {
				fail_row(x, name, (enum srv)s, err);
				bad = true;
			}
		}
		for (int s = 0; s < S_NR; s++)
			if (s != S_RP_NOSPIN || nospin_row(k))
				run_srv[nsrv++] = (enum srv)s;
		for (unsigned r = 0; r < runs && !bad; r++)
			for (int j = 0; j < nsrv && !bad; j++) {
				int s = run_srv[(j + (int)r) % nsrv];
				struct wrk_result w;
				double c0, c1;

				c0 = srv_cpu_s(x, (enum srv)s);
				if (wrk_run(x, (enum srv)s, rows[k].path, rows[k].conns,
					    rows[k].range ? rng : NULL, rows[k].pipe, rows[k].gbps, secs,
					    &w, err, sizeof(err))) {
					fail_row(x, name, (enum srv)s, err);
					bad = true;
					break;
				}
				c1 = srv_cpu_s(x, (enum srv)s);
				/* a 2xx with a short body would pass wrk's checks:
				 * every completed request must have carried its body */
				if (w.bytes < w.reqs * body_len(k)) {
					snprintf(err, sizeof(err),
						 "wrk read %llu bytes for %llu requests of a %llu-byte body",
						 (unsigned long long)w.bytes, (unsigned long long)w.reqs,
						 (unsigned long long)body_len(k));
					fail_row(x, name, (enum srv)s, err);
					bad = true;
					break;
				}
				v[s][r] = rows[k].gbps ? w.gbps : w.rps;
				other[s][r] = rows[k].gbps ? w.rps : w.gbps;
				cpu[s][r] = c0 >= 0 && c1 > c0 ? (c1 - c0) / ((double)w.bytes / 1e9)
							       : -1;
				busy[s][r] = c0 >= 0 && c1 >= c0 ? (c1 - c0) / ((double)w.us / 1e6)
								 : -1;
				cbusy[s][r] = w.client_cpu_s / ((double)w.us / 1e6);
			}
		if (bad)
			continue;
		double b_rp = rp_bench_runs_median(busy[S_RP], runs), b_ngx = rp_bench_runs_median(busy[S_NGINX], runs);

		/*
		 * A server that sat idle during its runs was not limited by its
		 * work: nginx answers wrk's pipelined batches late (with
		 * tcp_nopush on, and Nagle while a pipelined batch is served,
		 * the end of a batch waits on TCP timers). Such a row shows the
		 * stall, not the cost per request: when the one-connection row
		 * shows nginx that idle, both pipelined rows (and their CPU
		 * rows) stay out of the geomean (with 32 connections the stall
		 * is hidden in part).
		 */
		if (k == R_PIPE1)
			stalled = b_ngx >= 0 && b_rp > 0 && b_ngx < 0.5 * b_rp;
		strawman = rows[k].pipe && stalled;
		if (strawman)
			rp_report_row_strawman(name, rows[k].unit, rp_bench_runs_median(v[S_RP], runs),
					       rp_bench_runs_median(v[S_NGINX], runs), "nginx", true,
					       stall_why);
		else
			rp_bench_runs_row(name, rows[k].unit, v[S_RP], v[S_NGINX], runs, "nginx", true);
		rp_report_note("%s: %s (median): ringplane %.4g, nginx %.4g%s", name,
			       rows[k].gbps ? "req/s" : "Gbit/s",
			       rp_bench_runs_median(other[S_RP], runs),
			       rp_bench_runs_median(other[S_NGINX], runs),
			       rows[k].gbps ? " (completed answers; the rate counts bytes)" : "");
		if (b_rp >= 0 && b_ngx >= 0)
			rp_report_note("%s: CPU busy (CPU s / wall s, median): ringplane %.0f%% (wrk %.0f%%), nginx %.0f%% (wrk %.0f%%)",
				       name, 100.0 * b_rp, 100.0 * rp_bench_runs_median(cbusy[S_RP], runs),
				       100.0 * b_ngx, 100.0 * rp_bench_runs_median(cbusy[S_NGINX], runs));

		bool ok = true;

		snprintf(name, sizeof(name), "cpu s/GB %s",
			 rows[k].cpu_name ? rows[k].cpu_name : rows[k].name);
		if (x->pl.n)
			snprintf(name, sizeof(name), "cpu s/GB %s %u shards",
				 rows[k].cpu_name ? rows[k].cpu_name : rows[k].name, x->pl.n);
		for (unsigned r = 0; r < runs; r++)
			ok &= cpu[S_RP][r] > 0 && cpu[S_NGINX][r] > 0;
		if (!ok)
			rp_report_skip(name,
				       "a server's /proc/PID/stat could not be read, or it used no measurable CPU");
		else if (strawman)
			rp_report_row_strawman(name, "s/GB", rp_bench_runs_median(cpu[S_RP], runs),
					       rp_bench_runs_median(cpu[S_NGINX], runs), "nginx",
					       false, stall_why);
		else
			rp_bench_runs_row(name, "s/GB", cpu[S_RP], cpu[S_NGINX], runs, "nginx", false);
		if (!nospin_row(k))
			continue;
		/* the same two rows for serve --idle-spin 0, against the same
		 * nginx runs (as the relay suite's latency rows do), kept out
		 * of the geomean: ours in another setting, not a new peer, and
		 * the default's rows count already */
		snprintf(name, sizeof(name), "%s --idle-spin 0", rows[k].name);
		if (x->pl.n)
			snprintf(name, sizeof(name), "%s %u shards --idle-spin 0", rows[k].name,
				 x->pl.n);
		rp_bench_runs_row_aside(name, rows[k].unit, v[S_RP_NOSPIN], v[S_NGINX], runs,
					"nginx", true, NOSPIN_WHY);
		ok = true;
		for (unsigned r = 0; r < runs; r++)
			ok &= cpu[S_RP_NOSPIN][r] > 0 && cpu[S_NGINX][r] > 0;
		snprintf(name, sizeof(name), "cpu s/GB %s --idle-spin 0", rows[k].name);
		if (x->pl.n)
			snprintf(name, sizeof(name), "cpu s/GB %s %u shards --idle-spin 0",
				 rows[k].name, x->pl.n);
		if (!ok)
			rp_report_skip(name,
				       "a server's /proc/PID/stat could not be read, or it used no measurable CPU");
		else
			rp_bench_runs_row_aside(name, "s/GB", cpu[S_RP_NOSPIN], cpu[S_NGINX], runs,
						"nginx", false, NOSPIN_WHY);
	}
}

/* ---- the operation alone: rp_file_send vs read/write and sendfile(2) loops ---- */

/*
 * No HTTP and no second process: one runtime with one shard on the sending
 * CPU repeats rp_file_send of one page-cached file into a loopback TCP
 * connection, drained by a reader thread on the other CPU; the baselines are
 * a 64 KB pread/write loop and a sendfile(2) loop on this thread, pinned to
 * the same CPU as the shard. Timed from the first byte to the reader's EOF;
 * CPU is user+system of the whole process (reader included, alike).
 */
enum { OP_RP, OP_RW, OP_SF, OP_RP_SPLICE, OP_RP_SENDFILE, OP_NR };
static const char *const op_side[OP_NR] = { "rp_file_send", "read/write 64KB", "sendfile loop",
					     "rp_file_send splice", "rp_file_send sendfile" };
/* the cached-body paths forced (RP_FILE_SEND_CACHED_*): only above the
 * small path's 16 KB, where they differ */
#define OP_FORCED_MIN (16u * 1024)

struct op_send {
	int sock, file, efd;
	uint64_t size, left;
	unsigned flags;
	int64_t err;
};

static void op_start(struct rp_shard *sh, void *arg);

static void op_done(struct rp_shard *sh, void *arg, int64_t res)
{
	struct op_send *o = arg;

	if (res != (int64_t)o->size) {
		o->err = res < 0 ? res : -EIO;
		rp_zb_signal_efd(o->efd);
		return;
	}
	if (--o->left == 0) {
		rp_zb_signal_efd(o->efd);
		return;
	}
	op_start(sh, o);
}

static void op_start(struct rp_shard *sh, void *arg)
{
	struct op_send *o = arg;
	struct rp_file_send_opts opts = { .flags = o->flags };
	int r = rp_file_send(sh, o->sock, NULL, 0, o->file, 0, o->size, &opts, op_done, o);

	if (r) {
		o->err = r;
		rp_zb_signal_efd(o->efd);
	}
}

static int op_base(int side, int sock, int file, uint64_t size, uint64_t reps, char *buf)
{
	for (uint64_t i = 0; i < reps; i++) {
		off_t off = 0;

		while ((uint64_t)off < size) {
			ssize_t n;

			if (side == OP_SF) {
				n = sendfile(sock, file, &off, size - (uint64_t)off);
			} else {
				n = pread(file, buf, 65536, off);
				for (ssize_t w = 0, k; n > 0 && w < n; w += k) {
					k = write(sock, buf + w, (size_t)(n - w));
					if (k <= 0)
						return k < 0 ? -errno : -EIO;
				}
				if (n > 0)
					off += n;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return n < 0 ? -errno : -EIO;
		}
	}
	return 0;
}

static int op_rows(const struct rp_bench_opts *opts)
{
	static const uint64_t sizes[] = { 4096, 65536, 1u << 20, 64u << 20 };
	unsigned runs = opts->quick ? 1 : 3;
	char dir[] = "/tmp/ringplane-bench-fsop.XXXXXX", *buf = malloc(65536);
	struct rp_runtime *rt = NULL;
	struct sockaddr_in addr;
	int cpu[2], lfd = -1, efd = -1, ret, dslot;

	if (!buf)
		return -ENOMEM;
	if (rp_bench_pick_cpus(cpu)) {
		cpu[0] = sched_getcpu();
		cpu[1] = cpu[0];
	}
	if (!mkdtemp(dir)) {
		free(buf);
		return -errno;
	}
	dslot = rp_cleanup_add_dir(dir); /* removed on SIGINT/SIGTERM too */
	ret = rp_zb_listen("127.0.0.1", &lfd, &addr);
	if (!ret && (efd = eventfd(0, EFD_CLOEXEC)) < 0)
		ret = -errno;
	if (!ret)
		ret = rp_zb_runtime_up(cpu[0], &rt);
	if (ret)
		goto out;
	rp_report_note("operation alone: one shard on cpu %d (rp_file_send, default options, no header) vs a 64 KB pread/write loop and a sendfile(2) loop on a thread on cpu %d; a reader thread on cpu %d drains one loopback TCP connection per run; CPU s/GB = user+system of the whole process (reader included); %u run%s a side, alternating, median; above 16 KB also rp_file_send with the cached path forced to splice(2) on the shard and to sendfile(2)",
		       cpu[0], cpu[0], cpu[1], runs, runs == 1 ? "" : "s");
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]) && !ret; k++) {
		double g[OP_NR][8], c[OP_NR][8];
		uint64_t total = opts->quick ? (64ull << 20) : (512ull << 20), reps;
		char sz[16], path[512], name[96];
		int file;

		if (total < 4 * sizes[k])
			total = 4 * sizes[k];
		reps = total / sizes[k];
		total = reps * sizes[k];
		rp_bench_size_name(sz, sizeof(sz), sizes[k]);
		ret = rp_zb_make_file(dir, sz, sizes[k], path, sizeof(path));
		if (ret)
			break;
		file = open(path, O_RDONLY | O_CLOEXEC);
		if (file < 0) {
			ret = -errno;
			break;
		}
		for (unsigned r = 0; r < runs && !ret; r++)
			for (int s = 0; s < OP_NR && !ret; s++) {
				struct rp_zb_sink sk;
				int snd, rcv;
				uint64_t t0, got;
				double c0;

				if (s >= OP_RP_SPLICE && sizes[k] <= OP_FORCED_MIN)
					break;
				ret = rp_zb_pair(lfd, &addr, &snd, &rcv);
				if (ret || (ret = rp_zb_sink_start(&sk, rcv, cpu[1])))
					break;
				c0 = rp_zb_cpu_s();
				t0 = rp_bench_now_ns();
				if (s == OP_RP || s >= OP_RP_SPLICE) {
					struct op_send o = { .sock = snd, .file = file, .efd = efd,
							     .size = sizes[k], .left = reps };

					if (s == OP_RP_SPLICE)
						o.flags = RP_FILE_SEND_CACHED_SPLICE;
					else if (s == OP_RP_SENDFILE)
						o.flags = RP_FILE_SEND_CACHED_SENDFILE;

					/* the engine's socket ops want O_NONBLOCK (filesend.h) */
					fcntl(snd, F_SETFL, fcntl(snd, F_GETFL) | O_NONBLOCK);
					ret = rp_runtime_submit(rt, 0, op_start, &o);
					if (!ret)
						ret = rp_zb_wait_efd(efd);
					if (!ret && o.err)
						ret = (int)o.err;
				} else {
					ret = op_base(s, snd, file, sizes[k], reps, buf);
				}
				shutdown(snd, SHUT_WR);
				got = rp_zb_sink_join(&sk);
				double w = (double)(rp_bench_now_ns() - t0) / 1e9;

				g[s][r] = (double)total * 8 / 1e9 / w;
				c[s][r] = (rp_zb_cpu_s() - c0) / ((double)total / 1e9);
				close(snd);
				if (!ret && got != total)
					ret = -EIO;
				if (ret)
					fprintf(stderr, "sendfile: operation rows, %s %s: %s\n", sz,
						op_side[s], strerror(-ret));
			}
		close(file);
		unlink(path);
		for (int s = OP_RW; s <= OP_SF && !ret; s++) {
			snprintf(name, sizeof(name), "op %s vs %s", sz, op_side[s]);
			rp_zb_row(name, "Gbit/s", g[OP_RP], g[s], runs, op_side[s], true);
			snprintf(name, sizeof(name), "op %s cpu vs %s", sz, op_side[s]);
			rp_zb_row(name, "s/GB", c[OP_RP], c[s], runs, op_side[s], false);
		}
		/* the two ways a cached body can go, both forced: ratio > 1 means
		 * splice(2) through a pipe on the shard beat sendfile(2) */
		if (!ret && sizes[k] > OP_FORCED_MIN) {
			snprintf(name, sizeof(name), "op %s cached: splice vs sendfile", sz);
			rp_zb_row(name, "Gbit/s", g[OP_RP_SPLICE], g[OP_RP_SENDFILE], runs,
				  op_side[OP_RP_SENDFILE], true);
			snprintf(name, sizeof(name), "op %s cached cpu: splice vs sendfile", sz);
			rp_zb_row(name, "s/GB", c[OP_RP_SPLICE], c[OP_RP_SENDFILE], runs,
				  op_side[OP_RP_SENDFILE], false);
		}
	}
out:
	rp_zb_runtime_down(rt);
	if (efd >= 0)
		close(efd);
	if (lfd >= 0)
		close(lfd);
	rmdir(dir);
	rp_cleanup_del(dslot);
	free(buf);
	return ret;
}

static int sendfile_servers(const struct rp_bench_opts *opts);

int rp_bench_suite_sendfile(const struct rp_bench_opts *opts)
{
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;
	int ret, ret2;

	sigaction(SIGPIPE, &ign, &old);
	/* the operation alone is one shard's: not a scaling row */
	ret = want_rows("op") && !getenv("RP_BENCH_SHARDS") ? op_rows(opts) : 0;
	sigaction(SIGPIPE, &old, NULL);
	if (ret)
		fprintf(stderr, "sendfile: the operation rows stopped: %s\n", strerror(-ret));
	ret2 = sendfile_servers(opts);
	return ret ? ret : ret2;
}

static int sendfile_servers(const struct rp_bench_opts *opts)
{
	struct ctx *x = calloc(1, sizeof(*x));
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;
	bool quick = opts->quick;
	unsigned runs = quick ? 1 : 3, secs = quick ? 1 : 3;
	int cpu[2], ret = 0, dslot;

	if (!x)
		return -ENOMEM;
	x->opts = opts;
	for (int s = 0; s < S_NR; s++)
		x->p[s].pid = -1, x->p[s].out = -1;
	if (rp_bench_pick_cpus(cpu)) {
		cpu[0] = sched_getcpu();
		cpu[1] = cpu[0];
		rp_report_note("only one usable CPU: wrk and the servers share cpu %d", cpu[0]);
	}
	x->cpu_c = cpu[0]; /* this thread is pinned there (main.c) */
	x->cpu_s = cpu[1];
	ret = rp_bench_place(&x->pl, 2);
	if (ret) {
		rp_report_skip("sendfile (the server rows)", "RP_BENCH_SHARDS=%s: %s",
			       getenv("RP_BENCH_SHARDS"),
			       ret == -ENODEV ? "fewer usable CPUs than 2 x N plus this thread's (servers, wrk)"
					      : "not a number 1..16");
		free(x);
		return 0;
	}
	x->have_rp = !rp_bench_find_ringplane(x->rp, sizeof(x->rp));
	x->have_nginx = rp_find_executable("nginx", x->nginx, sizeof(x->nginx));
	if (!x->have_nginx)
		x->have_nginx = rp_find_executable("/usr/sbin/nginx", x->nginx, sizeof(x->nginx));
	x->have_wrk = rp_find_executable("wrk", x->wrk, sizeof(x->wrk));
	if (!x->have_rp || !x->have_nginx || !x->have_wrk) {
		const char *why =
			!x->have_rp ? "the ringplane binary was not found (../apps/ringplane next to this binary, or RINGPLANE_BIN)"
			: !x->have_nginx ? "nginx was not found in PATH (apt-get install nginx-light)"
					 : "wrk was not found in PATH (apt-get install wrk)";

		rp_report_skip("sendfile (all rows)", "%s", why);
		free(x);
		return 0;
	}
	snprintf(x->dir, sizeof(x->dir), "/tmp/ringplane-bench-sendfile.XXXXXX");
	if (!mkdtemp(x->dir)) {
		ret = -errno;
		fprintf(stderr, "sendfile: mkdtemp: %s\n", strerror(errno));
		free(x);
		return ret;
	}
	dslot = rp_cleanup_add_dir(x->dir); /* removed on SIGINT/SIGTERM too */
	chmod(x->dir, 0755); /* nginx's workers (www-data) read the root below it */
	snprintf(x->www, sizeof(x->www), "%s/www", x->dir);
	sigaction(SIGPIPE, &ign, &old);
	ret = make_files(x);
	if (!ret)
		ret = write_scripts(x);
	if (ret) {
		fprintf(stderr, "sendfile: could not write the files under %s: %s\n", x->dir,
			strerror(-ret));
		goto out;
	}
	ret = rp_start(x, S_RP);
	if (ret) {
		fprintf(stderr, "sendfile: ringplane serve did not start (%s); it printed: %s\n",
			strerror(-ret), proc_log(&x->p[S_RP]));
		goto out;
	}
	ret = rp_start(x, S_RP_NOSPIN);
	if (ret) {
		fprintf(stderr,
			"sendfile: ringplane serve --idle-spin 0 did not start (%s); it printed: %s\n",
			strerror(-ret), proc_log(&x->p[S_RP_NOSPIN]));
		goto out;
	}
	ret = nginx_start(x);
	if (ret) {
		fprintf(stderr, "sendfile: nginx did not start (%s); it printed: %s\n",
			strerror(-ret), proc_log(&x->p[S_NGINX]));
		goto out;
	}
	if (check_server(x, S_RP) | check_server(x, S_NGINX) | check_server(x, S_RP_NOSPIN)) {
		ret = -EIO;
		goto out;
	}
	{
		char nv[128], wv[128];

		peer_version(x->nginx, "-v", nv, sizeof(nv));
		peer_version(x->wrk, "-v", wv, sizeof(wv));
		rp_report_note("peers: %s; %s", nv, wv);
	}
	if (x->pl.n)
		rp_report_note("shard scaling (RP_BENCH_SHARDS=%u): ringplane: %s serve --shards %u --cpus %s; nginx: %s (worker_processes %u, one on each of cpus %s, sendfile on, tcp_nopush on, open_file_cache max=1024 valid 1s, keep-alive, access_log off); wrk -t%u on cpus %s with %u times each row's connections",
			       x->pl.n, x->rp, x->pl.n, x->pl.srv_list, x->nginx, x->pl.n,
			       x->pl.srv_list, x->pl.n, x->pl.cli_list, x->pl.n);
	else
		rp_report_note("ringplane: %s serve --shards 1 --cpus %d (the 4KB -c8/-c64 and 64MB -c8/-c64 rows: once more with --idle-spin 0, its own rows); nginx: %s (worker_processes 1, sendfile on, tcp_nopush on, open_file_cache max=1024 valid 1s, keep-alive, access_log off); both on cpu %d, wrk -t1 on cpu %d",
			       x->rp, x->cpu_s, x->nginx, x->cpu_s, x->cpu_c);
	rp_report_note("files 4 KB, 64 KB, 1 MB, 64 MB in the page cache; each server first served every file and a 1 MB range byte for byte (length and CRC32C checked here); a 1 s warm-up of each server per row, then %u run%s of %u s per server per row (64 MB: %u), alternating, run r starting at server r, median reported; Gbit/s counts every byte wrk read (headers too, and bodies still coming when a run ends); CPU s/GB: the server's CPU per GB wrk read",
		       runs, runs == 1 ? "" : "s", secs, runs > 1 ? RUNS_64M : runs);
	measure(x, runs, secs);
out:
	proc_stop(&x->p[S_RP], "ringplane serve", false, -1);
	proc_stop(&x->p[S_RP_NOSPIN], "ringplane serve --idle-spin 0", false, -1);
	proc_stop(&x->p[S_NGINX], "nginx", false, -1);
	sigaction(SIGPIPE, &old, NULL);
	nftw(x->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	rp_cleanup_del(dslot);
	if (!ret && x->failed) {
		fprintf(stderr, "sendfile: some rows FAILED (see above)\n");
		ret = x->failed;
	}
	free(x);
	return ret;
}
