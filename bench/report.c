/* SPDX-License-Identifier: MIT */
/*
 * Reporting for ringplane-bench: tables as rows arrive, a summary per suite,
 * the JSON file (DESIGN.md schema: {"host": {...}, "results": [...]}) and
 * gnuplot files.
 *
 * Rows are kept in memory until the end because the JSON file holds them
 * all; the table is printed (and flushed) as each row arrives so a long run
 * shows progress and a crash still leaves what was measured on the screen.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ringplane/simd.h>

#include "bench.h"

#ifndef RP_BENCH_VERSION
#define RP_BENCH_VERSION "unknown"
#endif

/* ringplane-tune check and gnuplot are given this long, then killed. */
#define CHILD_TIMEOUT_S 60
/* Output of ringplane-tune check --json beyond this is not embedded. */
#define CHILD_OUTPUT_MAX (4u << 20)
#define JSON_DEPTH_MAX 64

struct row {
	char *suite;
	char *name;
	char *unit;
	char *baseline_name;
	double ours;
	double baseline;
	double ratio;
	bool higher_is_better;
	char *strawman; /* why the row is out of the geomean; NULL: it is in */
};

static struct {
	struct rp_report_cfg cfg;
	FILE *json;
	char date[32]; /* when the run started, UTC */
	struct row *rows;
	size_t nrows, cap;
	const char *suite;   /* current suite, NULL between suites */
	size_t suite_first;  /* index of its first row */
	bool header_printed;
	bool oom;
} R;

/* ---- small helpers ---- */

static char *xstrdup(const char *s)
{
	char *d = strdup(s ? s : "");

	if (!d)
		R.oom = true;
	return d;
}

/* A number for the table: 4-5 significant digits whatever its size. */
static void fmt_value(char *buf, size_t size, double v)
{
	double a = fabs(v);

	if (a >= 10000.0)
		snprintf(buf, size, "%.0f", v);
	else if (a >= 100.0)
		snprintf(buf, size, "%.1f", v);
	else if (a >= 10.0)
		snprintf(buf, size, "%.2f", v);
	else
		snprintf(buf, size, "%.3f", v);
}

static int mkdir_p(const char *path)
{
	char buf[4096];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0777) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0777) && errno != EEXIST)
		return -errno;
	struct stat st;

	if (stat(buf, &st))
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* Is @name an executable regular file, as given (contains '/') or on PATH?
 * Fills @out with the path found. */
static bool find_executable(const char *name, char *out, size_t size)
{
	struct stat st;

	if (strchr(name, '/')) {
		if (stat(name, &st) || !S_ISREG(st.st_mode) || access(name, X_OK))
			return false;
		snprintf(out, size, "%s", name);
		return true;
	}
	const char *path = getenv("PATH");

	if (!path)
		return false;
	while (*path) {
		const char *colon = strchr(path, ':');
		size_t dlen = colon ? (size_t)(colon - path) : strlen(path);

		if (dlen > 0 && dlen + 1 + strlen(name) < size) {
			memcpy(out, path, dlen);
			out[dlen] = '/';
			strcpy(out + dlen + 1, name);
			if (!stat(out, &st) && S_ISREG(st.st_mode) && !access(out, X_OK))
				return true;
		}
		if (!colon)
			break;
		path = colon + 1;
	}
	return false;
}

/*
 * Run @argv (argv[0] a path) in @cwd (NULL: ours), stdin from /dev/null.
 * With @out, stdout is captured into a malloc'd NUL-terminated buffer and
 * stderr discarded; without, both are inherited. The child is killed after
 * CHILD_TIMEOUT_S. Returns the exit status (0..255), or -errno (-ETIMEDOUT,
 * -ECHILD for death by signal).
 */
static int run_child(char *const argv[], const char *cwd, char **out, size_t *out_len)
{
	int pfd[2] = { -1, -1 };
	size_t len = 0, cap = 0;
	char *buf = NULL;
	bool timed_out = false;
	int status, ret;
	pid_t pid;

	if (out && pipe2(pfd, O_CLOEXEC))
		return -errno;
	fflush(NULL); /* or buffered output would be written twice */
	pid = fork();
	if (pid < 0) {
		ret = -errno;
		goto out_close;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);

		/* Own process group, so a timeout kills its children too. */
		setpgid(0, 0);
		if (devnull >= 0)
			dup2(devnull, STDIN_FILENO);
		if (out) {
			dup2(pfd[1], STDOUT_FILENO);
			if (devnull >= 0)
				dup2(devnull, STDERR_FILENO);
		}
		if (cwd && chdir(cwd))
			_exit(127);
		execv(argv[0], argv);
		_exit(127);
	}

	setpgid(pid, pid); /* also here: no window where kill(-pid) misses */

	uint64_t deadline = rp_bench_now_ns() + CHILD_TIMEOUT_S * 1000000000ull;

	if (out) {
		close(pfd[1]);
		pfd[1] = -1;
		for (;;) {
			uint64_t now = rp_bench_now_ns();

			if (now >= deadline) {
				timed_out = true;
				break;
			}
			struct pollfd p = { .fd = pfd[0], .events = POLLIN };
			int n = poll(&p, 1, (int)((deadline - now) / 1000000 + 1));

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				timed_out = n == 0;
				break;
			}
			if (cap - len < 4096) {
				char *nb;

				if (cap >= CHILD_OUTPUT_MAX)
					break; /* too big: embedded nowhere */
				nb = realloc(buf, cap ? 2 * cap : 16384);
				if (!nb)
					break;
				buf = nb;
				cap = cap ? 2 * cap : 16384;
			}
			ssize_t r = read(pfd[0], buf + len, cap - len - 1);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			len += (size_t)r;
		}
	}
	/* Reap, with the same deadline. */
	if (timed_out)
		kill(-pid, SIGKILL);
	for (;;) {
		pid_t w = waitpid(pid, &status, timed_out ? 0 : WNOHANG);

		if (w == pid)
			break;
		if (w < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			goto out_free;
		}
		if (rp_bench_now_ns() >= deadline) {
			timed_out = true;
			kill(-pid, SIGKILL);
			continue;
		}
		nanosleep(&(struct timespec){ .tv_nsec = 10000000 }, NULL);
	}
	if (timed_out) {
		kill(-pid, SIGKILL); /* whatever the group still holds */
		ret = -ETIMEDOUT;
	}
	else if (WIFEXITED(status))
		ret = WEXITSTATUS(status);
	else
		ret = -ECHILD;
	if (out && ret >= 0) {
		if (!buf)
			buf = calloc(1, 1);
		if (!buf) {
			ret = -ENOMEM;
			goto out_close;
		}
		buf[len] = '\0';
		*out = buf;
		*out_len = len;
		buf = NULL;
	}
out_free:
	free(buf);
out_close:
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	return ret;
}

/* ---- JSON ---- */

/* A JSON string: quotes, backslashes and control characters escaped, bytes
 * that are not valid UTF-8 replaced by U+FFFD (hostnames and /proc text are
 * not promised to be UTF-8, a JSON file is). */
static void json_str(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");

	fputc('"', f);
	while (*p) {
		unsigned char c = *p;
		size_t n = 0;

		if (c == '"' || c == '\\') {
			fputc('\\', f);
			fputc(c, f);
			p++;
			continue;
		}
		if (c < 0x20) {
			switch (c) {
			case '\n': fputs("\\n", f); break;
			case '\r': fputs("\\r", f); break;
			case '\t': fputs("\\t", f); break;
			default: fprintf(f, "\\u%04x", c); break;
			}
			p++;
			continue;
		}
		if (c < 0x80) {
			fputc(c, f);
			p++;
			continue;
		}
		/* Multi-byte: check the lead byte, the continuation bytes and the
		 * ranges that exclude overlong forms and surrogates. */
		unsigned char lo = 0x80, hi = 0xBF;

		if (c >= 0xC2 && c <= 0xDF) {
			n = 1;
		} else if (c >= 0xE0 && c <= 0xEF) {
			n = 2;
			if (c == 0xE0)
				lo = 0xA0;
			else if (c == 0xED)
				hi = 0x9F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 3;
			if (c == 0xF0)
				lo = 0x90;
			else if (c == 0xF4)
				hi = 0x8F;
		}
		bool ok = n > 0;

		for (size_t i = 1; ok && i <= n; i++) {
			unsigned char b = p[i];

			if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF))
				ok = false;
		}
		if (!ok) {
			fputs("\\ufffd", f);
			p++;
			continue;
		}
		fwrite(p, 1, n + 1, f);
		p += n + 1;
	}
	fputc('"', f);
}

/* Syntax check of a JSON text, so a broken ringplane-tune never makes our
 * file unreadable. */
struct jv {
	const char *p, *end;
	int depth;
};

static bool jv_value(struct jv *v);

static void jv_ws(struct jv *v)
{
	while (v->p < v->end && (*v->p == ' ' || *v->p == '\t' || *v->p == '\n' || *v->p == '\r'))
		v->p++;
}

static bool jv_eat(struct jv *v, char c)
{
	jv_ws(v);
	if (v->p < v->end && *v->p == c) {
		v->p++;
		return true;
	}
	return false;
}

static bool jv_string(struct jv *v)
{
	if (!jv_eat(v, '"'))
		return false;
	while (v->p < v->end) {
		unsigned char c = (unsigned char)*v->p++;

		if (c == '"')
			return true;
		if (c < 0x20)
			return false;
		if (c != '\\')
			continue;
		if (v->p >= v->end)
			return false;
		c = (unsigned char)*v->p++;
		if (c == 'u') {
			for (int i = 0; i < 4; i++, v->p++) {
				if (v->p >= v->end || !strchr("0123456789abcdefABCDEF", *v->p) || !*v->p)
					return false;
			}
		} else if (!strchr("\"\\/bfnrt", c) || !c) {
			return false;
		}
	}
	return false;
}

static bool jv_digits(struct jv *v)
{
	const char *s = v->p;

	while (v->p < v->end && *v->p >= '0' && *v->p <= '9')
		v->p++;
	return v->p > s;
}

static bool jv_number(struct jv *v)
{
	if (v->p < v->end && *v->p == '-')
		v->p++;
	if (v->p < v->end && *v->p == '0')
		v->p++;
	else if (!jv_digits(v))
		return false;
	if (v->p < v->end && *v->p == '.') {
		v->p++;
		if (!jv_digits(v))
			return false;
	}
	if (v->p < v->end && (*v->p == 'e' || *v->p == 'E')) {
		v->p++;
		if (v->p < v->end && (*v->p == '+' || *v->p == '-'))
			v->p++;
		if (!jv_digits(v))
			return false;
	}
	return true;
}

static bool jv_word(struct jv *v, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(v->end - v->p) < n || memcmp(v->p, w, n))
		return false;
	v->p += n;
	return true;
}

static bool jv_container(struct jv *v, char open, char close)
{
	if (!jv_eat(v, open) || ++v->depth > JSON_DEPTH_MAX)
		return false;
	if (jv_eat(v, close)) {
		v->depth--;
		return true;
	}
	do {
		if (open == '{' && (!jv_string(v) || !jv_eat(v, ':')))
			return false;
		if (!jv_value(v))
			return false;
	} while (jv_eat(v, ','));
	if (!jv_eat(v, close))
		return false;
	v->depth--;
	return true;
}

static bool jv_value(struct jv *v)
{
	jv_ws(v);
	if (v->p >= v->end)
		return false;
	switch (*v->p) {
	case '{': return jv_container(v, '{', '}');
	case '[': return jv_container(v, '[', ']');
	case '"': return jv_string(v);
	case 't': return jv_word(v, "true");
	case 'f': return jv_word(v, "false");
	case 'n': return jv_word(v, "null");
	default: return jv_number(v);
	}
}

static bool json_valid(const char *s, size_t len)
{
	struct jv v = { .p = s, .end = s + len, .depth = 0 };

	if (strlen(s) != len) /* a NUL inside */
		return false;
	if (!jv_value(&v))
		return false;
	jv_ws(&v);
	return v.p == v.end;
}

/* ---- host facts ---- */

static void read_cpu_model(char *buf, size_t size)
{
	/* x86 first, then the names arm64 and others use. */
	static const char *const keys[] = { "model name", "Model Name", "Hardware", "cpu model",
					    "Processor", "CPU part" };
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];

	snprintf(buf, size, "unknown");
	if (!f)
		return;
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		size_t klen = strlen(keys[k]);

		rewind(f);
		while (fgets(line, sizeof(line), f)) {
			char *colon = strchr(line, ':');

			if (!colon || strncmp(line, keys[k], klen) ||
			    (line[klen] != ' ' && line[klen] != '\t' && line[klen] != ':'))
				continue;
			colon++;
			while (*colon == ' ' || *colon == '\t')
				colon++;
			colon[strcspn(colon, "\n")] = '\0';
			snprintf(buf, size, "%s", colon);
			fclose(f);
			return;
		}
	}
	fclose(f);
}

static int count_numa_nodes(void)
{
	glob_t g;
	int n = 0;

	if (glob("/sys/devices/system/node/node[0-9]*", GLOB_NOSORT, NULL, &g) == 0)
		n = (int)g.gl_pathc;
	globfree(&g);
	return n;
}

/* ringplane-tune check --json, if the tool is there (tuning/ or PATH). */
static void json_tuning(FILE *f)
{
	char path[4096];
	char *out = NULL;
	size_t len = 0;
	int rc;

	if (!find_executable("tuning/ringplane-tune", path, sizeof(path)) &&
	    !find_executable("ringplane-tune", path, sizeof(path)))
		return; /* not built or not installed: nothing to say */
	rc = run_child((char *const[]){ path, (char *)"check", (char *)"--json", NULL }, NULL,
		       &out, &len);
	if (rc < 0) {
		if (rc == -ETIMEDOUT)
			fprintf(stderr,
				"ringplane-bench: %s check --json: no answer in %d s, killed; tuning not recorded\n",
				path, CHILD_TIMEOUT_S);
		else
			fprintf(stderr, "ringplane-bench: %s check --json: %s; tuning not recorded\n",
				path, strerror(-rc));
		return;
	}
	while (len && (out[len - 1] == '\n' || out[len - 1] == ' ' || out[len - 1] == '\r' ||
		       out[len - 1] == '\t'))
		out[--len] = '\0';
	if (!json_valid(out, len)) {
		fprintf(stderr,
			"ringplane-bench: %s check --json printed no valid JSON (exit %d); tuning not recorded\n",
			path, rc);
		free(out);
		return;
	}
	fprintf(f, ",\n    \"tuning\": %s,\n    \"tuning_exit\": %d", out, rc);
	free(out);
}

static void json_host(FILE *f)
{
	char host[256] = "unknown", model[256];
	struct utsname u;
	const char *env = getenv("RP_SIMD");

	if (gethostname(host, sizeof(host) - 1))
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	if (uname(&u))
		memset(&u, 0, sizeof(u));
	read_cpu_model(model, sizeof(model));

	fputs("  \"host\": {\n    \"hostname\": ", f);
	json_str(f, host);
	fputs(",\n    \"kernel\": ", f);
	json_str(f, u.release);
	fputs(",\n    \"machine\": ", f);
	json_str(f, u.machine);
	fputs(",\n    \"cpu_model\": ", f);
	json_str(f, model);
	fprintf(f, ",\n    \"online_cpus\": %ld", sysconf(_SC_NPROCESSORS_ONLN));
	fprintf(f, ",\n    \"numa_nodes\": %d", count_numa_nodes());
	fputs(",\n    \"simd_backend\": ", f);
	json_str(f, rp_simd_backend());
	if (env) {
		fputs(",\n    \"rp_simd_env\": ", f);
		json_str(f, env);
	}
	fputs(",\n    \"date\": ", f);
	json_str(f, R.date);
	fprintf(f, ",\n    \"quick\": %s", R.cfg.quick ? "true" : "false");
	fprintf(f, ",\n    \"pinned_cpu\": %d", R.cfg.pinned_cpu);
	fputs(",\n    \"bench_version\": ", f);
	json_str(f, RP_BENCH_VERSION);
	fputs(",\n    \"compiler\": ", f);
#if defined(__clang__)
	json_str(f, "clang " __clang_version__);
#elif defined(__GNUC__)
	json_str(f, "gcc " __VERSION__);
#else
	json_str(f, "unknown");
#endif
	json_tuning(f);
	fputs("\n  }", f);
}

/* ---- plots ---- */

static int write_plot(const char *suite, size_t first, size_t n)
{
	char path[4096], gnuplot[4096];
	FILE *f;
	int ret;

	snprintf(path, sizeof(path), "%s/%s.dat", R.cfg.plot_dir, suite);
	f = fopen(path, "w");
	if (!f)
		goto fail;
	fprintf(f, "# ringplane-bench %s: name ours baseline ratio (ratio > 1: ringplane better)\n",
		suite);
	for (size_t i = first; i < first + n; i++) {
		const struct row *r = &R.rows[i];

		fputc('"', f);
		for (const char *c = r->name; *c; c++)
			fputc(*c == '"' ? '\'' : *c, f);
		fprintf(f, "\" %.6g %.6g %.6g\n", r->ours, r->baseline, r->ratio);
	}
	if (fclose(f))
		goto fail;

	snprintf(path, sizeof(path), "%s/%s.gp", R.cfg.plot_dir, suite);
	f = fopen(path, "w");
	if (!f)
		goto fail;
	/*
	 * Paths are relative to the script so the directory can be moved. Each
	 * bar runs from 1.0 to the ratio on a log scale, so 2x better and 2x
	 * worse are the same height on either side of the line.
	 */
	fprintf(f,
		"# ringplane-bench %s: ratio per row, > 1 means ringplane is better.\n"
		"# Render: cd <this directory> && gnuplot %s.gp\n"
		"if (strstrt(GPVAL_TERMINALS, \"pngcairo\") > 0) {\n"
		"    set terminal pngcairo size %zu,640 noenhanced\n"
		"} else {\n"
		"    set terminal png size %zu,640 noenhanced\n"
		"}\n"
		"set output '%s.png'\n"
		"set title '%s: ringplane / baseline (log scale; above 1.0: ringplane better)' noenhanced\n"
		"set style fill solid 0.8 border -1\n"
		"set linetype 11 lc rgb '#4477aa'\n"
		"set linetype 12 lc rgb '#cc4455'\n"
		"set xtics rotate by -45 scale 0 noenhanced\n"
		"set logscale y 2\n"
		"set rmargin 10\n"
		"set bmargin 9\n"
		"set ylabel 'ratio'\n"
		"set grid ytics\n"
		"set xrange [-0.6:%zu.4]\n"
		"set arrow from graph 0, first 1.0 to graph 1, first 1.0 nohead lw 2 lc rgb 'black' front\n"
		"plot '%s.dat' using 0:4:($0-0.4):($0+0.4):($4<1?$4:1):($4<1?1:$4):($4>=1?11:12):xtic(1) \\\n"
		"    with boxxyerror lc variable notitle\n",
		suite, suite, 200 + 40 * n, 200 + 40 * n, suite, suite, n - 1, suite);
	if (fclose(f))
		goto fail;

	if (!find_executable("gnuplot", gnuplot, sizeof(gnuplot))) {
		printf("  plot: wrote %s/%s.gp and .dat; gnuplot not found, render with: cd %s && gnuplot %s.gp\n",
		       R.cfg.plot_dir, suite, R.cfg.plot_dir, suite);
		return 0;
	}
	snprintf(path, sizeof(path), "%s.gp", suite);
	ret = run_child((char *const[]){ gnuplot, path, NULL }, R.cfg.plot_dir, NULL, NULL);
	if (ret != 0) {
		printf("  plot: gnuplot failed (%s%d) on %s/%s.gp\n", ret < 0 ? "error " : "exit ",
		       ret < 0 ? -ret : ret, R.cfg.plot_dir, suite);
		return ret < 0 ? ret : -EIO;
	}
	printf("  plot: %s/%s.png\n", R.cfg.plot_dir, suite);
	return 0;
fail:
	ret = -errno;
	printf("  plot: %s: %s\n", path, strerror(errno));
	return ret;
}

/* ---- public ---- */

int rp_report_open(const struct rp_report_cfg *cfg)
{
	time_t now = time(NULL);
	struct tm tm;
	int ret;

	memset(&R, 0, sizeof(R));
	R.cfg = *cfg;
	if (gmtime_r(&now, &tm))
		strftime(R.date, sizeof(R.date), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (cfg->json_path) {
		R.json = fopen(cfg->json_path, "w");
		if (!R.json) {
			ret = -errno;
			fprintf(stderr, "ringplane-bench: --json %s: %s\n", cfg->json_path,
				strerror(errno));
			return ret;
		}
	}
	if (cfg->plot_dir) {
		ret = mkdir_p(cfg->plot_dir);
		if (ret) {
			fprintf(stderr, "ringplane-bench: --plot %s: %s\n", cfg->plot_dir,
				strerror(-ret));
			if (R.json)
				fclose(R.json);
			R.json = NULL;
			return ret;
		}
	}
	return 0;
}

void rp_report_suite_begin(const char *suite, const char *desc)
{
	R.suite = suite;
	R.suite_first = R.nrows;
	R.header_printed = false;
	printf("\n== %s: %s\n", suite, desc);
	fflush(stdout);
}

static int add_row(const char *name, const char *unit, double ours, double baseline,
		   const char *baseline_name, bool higher_is_better, const char *strawman)
{
	char o[32], b[32], ratio_s[32];
	struct row *r;

	if (!R.suite)
		return -EINVAL;
	if (!isfinite(ours) || !isfinite(baseline) || ours <= 0.0 || baseline <= 0.0) {
		printf("  %-28s not reported: measured ours=%g baseline=%g\n", name, ours, baseline);
		fflush(stdout);
		return -EINVAL;
	}
	if (R.nrows == R.cap) {
		size_t cap = R.cap ? 2 * R.cap : 64;
		struct row *nr = realloc(R.rows, cap * sizeof(*nr));

		if (!nr) {
			R.oom = true;
			return -ENOMEM;
		}
		R.rows = nr;
		R.cap = cap;
	}
	r = &R.rows[R.nrows++];
	r->suite = xstrdup(R.suite);
	r->name = xstrdup(name);
	r->unit = xstrdup(unit);
	r->baseline_name = xstrdup(baseline_name);
	r->ours = ours;
	r->baseline = baseline;
	r->higher_is_better = higher_is_better;
	r->ratio = higher_is_better ? ours / baseline : baseline / ours;
	r->strawman = strawman ? xstrdup(strawman) : NULL;

	if (!R.header_printed) {
		printf("  %-28s %-6s %10s %10s  %-18s %8s\n", "name", "unit", "ringplane", "baseline",
		       "baseline is", "ratio");
		R.header_printed = true;
	}
	fmt_value(o, sizeof(o), ours);
	fmt_value(b, sizeof(b), baseline);
	snprintf(ratio_s, sizeof(ratio_s), "%.2fx", r->ratio);
	printf("  %-28s %-6s %10s %10s  %-18s %8s%s\n", name, unit, o, b, baseline_name, ratio_s,
	       strawman ? "  (strawman: not in the geomean)" : "");
	fflush(stdout);
	return 0;
}

int rp_report_row(const char *name, const char *unit, double ours, double baseline,
		  const char *baseline_name, bool higher_is_better)
{
	return add_row(name, unit, ours, baseline, baseline_name, higher_is_better, NULL);
}

int rp_report_row_strawman(const char *name, const char *unit, double ours, double baseline,
			   const char *baseline_name, bool higher_is_better, const char *why)
{
	return add_row(name, unit, ours, baseline, baseline_name, higher_is_better,
		       why && *why ? why : "strawman baseline");
}

void rp_report_note(const char *fmt, ...)
{
	va_list ap;

	fputs("  note: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

void rp_report_skip(const char *what, const char *fmt, ...)
{
	va_list ap;

	printf("  skipped: %s: ", what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

void rp_report_suite_end(int status)
{
	size_t n = R.nrows - R.suite_first, counted = 0;
	unsigned wins = 0;
	double logsum = 0.0;

	if (!R.suite)
		return;
	for (size_t i = R.suite_first; i < R.nrows; i++) {
		if (R.rows[i].strawman)
			continue;
		logsum += log(R.rows[i].ratio);
		wins += R.rows[i].ratio >= 1.0;
		counted++;
	}
	for (size_t i = R.suite_first; i < R.nrows; i++)
		if (R.rows[i].strawman)
			printf("-- %s: left out of the geomean: \"%s\" (%.2fx vs %s): %s\n", R.suite,
			       R.rows[i].name, R.rows[i].ratio, R.rows[i].baseline_name,
			       R.rows[i].strawman);
	if (counted)
		printf("-- %s: %zu rows, geomean ratio %.2fx over %zu of them, %u/%zu rows with ratio >= 1.00%s\n",
		       R.suite, n, exp(logsum / (double)counted), counted, wins, counted,
		       status ? " (suite stopped early)" : "");
	else if (n)
		printf("-- %s: %zu rows, all against strawmen: no geomean%s\n", R.suite, n,
		       status ? " (suite stopped early)" : "");
	else
		printf("-- %s: no rows measured%s\n", R.suite, status ? " (suite failed)" : "");
	if (status)
		printf("-- %s: FAILED: %s\n", R.suite, strerror(status < 0 ? -status : status));
	fflush(stdout);
	if (R.cfg.plot_dir && n)
		write_plot(R.suite, R.suite_first, n);
	fflush(stdout);
	R.suite = NULL;
}

int rp_report_close(void)
{
	int ret = 0;

	if (R.json) {
		FILE *f = R.json;

		fputs("{\n", f);
		json_host(f);
		fputs(",\n  \"results\": [", f);
		for (size_t i = 0; i < R.nrows; i++) {
			const struct row *r = &R.rows[i];

			fputs(i ? ",\n    {" : "\n    {", f);
			fputs("\"suite\": ", f);
			json_str(f, r->suite);
			fputs(", \"name\": ", f);
			json_str(f, r->name);
			fputs(", \"unit\": ", f);
			json_str(f, r->unit);
			fprintf(f, ", \"ours\": %.6g, \"baseline\": %.6g", r->ours, r->baseline);
			fputs(", \"baseline_name\": ", f);
			json_str(f, r->baseline_name);
			fprintf(f, ", \"ratio\": %.6g, \"higher_is_better\": %s", r->ratio,
				r->higher_is_better ? "true" : "false");
			/* Not in the summary's geomean: see rp_report_row_strawman. */
			fprintf(f, ", \"strawman\": %s", r->strawman ? "true" : "false");
			if (r->strawman) {
				fputs(", \"strawman_why\": ", f);
				json_str(f, r->strawman);
			}
			fputc('}', f);
		}
		fputs(R.nrows ? "\n  ]\n}\n" : "]\n}\n", f);
		if (ferror(f) | fclose(f)) {
			ret = -EIO;
			fprintf(stderr, "ringplane-bench: writing %s failed\n", R.cfg.json_path);
		} else {
			printf("\njson: %s (%zu rows)\n", R.cfg.json_path, R.nrows);
		}
		R.json = NULL;
	}
	if (R.oom) {
		fprintf(stderr, "ringplane-bench: out of memory while recording rows\n");
		ret = ret ? ret : -ENOMEM;
	}
	for (size_t i = 0; i < R.nrows; i++) {
		free(R.rows[i].suite);
		free(R.rows[i].name);
		free(R.rows[i].unit);
		free(R.rows[i].baseline_name);
		free(R.rows[i].strawman);
	}
	free(R.rows);
	R.rows = NULL;
	R.nrows = R.cap = 0;
	return ret;
}
