/* SPDX-License-Identifier: MIT */
/*
 * Reporting for ringplane-bench: tables as rows arrive, a summary per suite,
 * and the JSON file (the schema README.md gives: {"host": {...}, "results": [...]}).
 * Plots (plot.c), helper programs (child.c) and the check of embedded JSON
 * (json_check.c) live in their own files, see report_impl.h.
 *
 * Rows are kept in memory until the end because the JSON file holds them
 * all; the table is printed (and flushed) as each row arrives so a long run
 * shows progress and a crash still leaves what was measured on the screen.
 */
#include <errno.h>
#include <glob.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <ringplane/simd.h>

#include "bench.h"
#include "cleanup.h"
#include "report_impl.h"

#ifndef RP_BENCH_VERSION
#define RP_BENCH_VERSION "unknown"
#endif

static struct {
	struct rp_report_cfg cfg;
	FILE *json;
	char json_tmp[4096]; /* PATH.tmp, renamed to PATH at close */
	int json_slot;       /* its cleanup slot: removed on SIGINT/SIGTERM */
	char date[32]; /* when the run started, UTC */
	struct rp_report_rec *rows;
	size_t nrows, cap;
	const char *suite;   /* current suite, NULL between suites */
	size_t suite_first;  /* index of its first row */
	bool header_printed;
	bool oom;
	/* what was not measured (rp_report_skip) and the suites that failed or
	 * stopped early: both go to the JSON file, so a reader can tell a
	 * partial run from a complete one */
	struct skip_rec {
		char *suite, *what, *why;
	} *skips;
	size_t nskips, skipcap;
	struct fail_rec {
		char *suite;
		int status;
	} *fails;
	size_t nfails, failcap;
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

/* ---- host facts ---- */

void rp_report_cpu_model(char *buf, size_t size)
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

void rp_report_tcp_cc(char *buf, size_t size)
{
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_congestion_control", "r");

	snprintf(buf, size, "unknown");
	if (!f)
		return;
	if (fgets(buf, (int)size, f))
		buf[strcspn(buf, "\n")] = '\0';
	else
		snprintf(buf, size, "unknown");
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

	if (!rp_find_executable("tuning/ringplane-tune", path, sizeof(path)) &&
	    !rp_find_executable("ringplane-tune", path, sizeof(path)))
		return; /* not built or not installed: nothing to say */
	rc = rp_child_run((char *const[]){ path, (char *)"check", (char *)"--json", NULL }, NULL,
		       &out, &len);
	if (rc < 0) {
		if (rc == -ETIMEDOUT)
			fprintf(stderr,
				"ringplane-bench: %s check --json: no answer in %d s, killed; tuning not recorded\n",
				path, RP_CHILD_TIMEOUT_S);
		else
			fprintf(stderr, "ringplane-bench: %s check --json: %s; tuning not recorded\n",
				path, strerror(-rc));
		return;
	}
	while (len && (out[len - 1] == '\n' || out[len - 1] == ' ' || out[len - 1] == '\r' ||
		       out[len - 1] == '\t'))
		out[--len] = '\0';
	if (!rp_json_valid(out, len)) {
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
	char host[256] = "unknown", model[256], cc[64];
	struct utsname u;
	const char *env = getenv("RP_SIMD");

	if (gethostname(host, sizeof(host) - 1))
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	if (uname(&u))
		memset(&u, 0, sizeof(u));
	rp_report_cpu_model(model, sizeof(model));
	rp_report_tcp_cc(cc, sizeof(cc));

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
	fputs(",\n    \"tcp_congestion_control\": ", f);
	json_str(f, cc);
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
		/* written to PATH.tmp, renamed at close: an interrupted run
		 * leaves the previous file as it was */
		if (snprintf(R.json_tmp, sizeof(R.json_tmp), "%s.tmp", cfg->json_path) >=
		    (int)sizeof(R.json_tmp)) {
			fprintf(stderr, "ringplane-bench: --json %s: name too long\n", cfg->json_path);
			return -ENAMETOOLONG;
		}
		R.json_slot = -1;
		R.json = fopen(R.json_tmp, "w");
		/* (a longer name would be cut in the slot: not registered) */
		if (R.json && strlen(R.json_tmp) < 128)
			R.json_slot = rp_cleanup_add_dir(R.json_tmp);
		if (!R.json) {
			ret = -errno;
			fprintf(stderr, "ringplane-bench: --json %s: %s\n", cfg->json_path,
				strerror(errno));
			return ret;
		}
	}
	if (cfg->plot_dir) {
		ret = rp_plot_mkdir(cfg->plot_dir);
		if (ret) {
			fprintf(stderr, "ringplane-bench: --plot %s: %s\n", cfg->plot_dir,
				strerror(-ret));
			if (R.json) {
				fclose(R.json);
				unlink(R.json_tmp);
				rp_cleanup_del(R.json_slot);
			}
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
	struct rp_report_rec *r;

	if (!R.suite)
		return -EINVAL;
	if (!isfinite(ours) || !isfinite(baseline) || ours <= 0.0 || baseline <= 0.0) {
		printf("  %-28s not reported: measured ours=%g baseline=%g\n", name, ours, baseline);
		fflush(stdout);
		return -EINVAL;
	}
	if (R.nrows == R.cap) {
		size_t cap = R.cap ? 2 * R.cap : 64;
		struct rp_report_rec *nr = realloc(R.rows, cap * sizeof(*nr));

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
	char why[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	printf("  skipped: %s: %s\n", what, why);
	fflush(stdout);
	if (R.nskips == R.skipcap) {
		size_t cap = R.skipcap ? 2 * R.skipcap : 16;
		struct skip_rec *n = realloc(R.skips, cap * sizeof(*n));

		if (!n) {
			R.oom = true;
			return;
		}
		R.skips = n;
		R.skipcap = cap;
	}
	R.skips[R.nskips++] = (struct skip_rec){ xstrdup(R.suite ? R.suite : ""), xstrdup(what),
						 xstrdup(why) };
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
	if (status) {
		printf("-- %s: FAILED: %s\n", R.suite, strerror(status < 0 ? -status : status));
		if (R.nfails == R.failcap) {
			size_t cap = R.failcap ? 2 * R.failcap : 8;
			struct fail_rec *f = realloc(R.fails, cap * sizeof(*f));

			if (f) {
				R.fails = f;
				R.failcap = cap;
			} else {
				R.oom = true;
			}
		}
		if (R.nfails < R.failcap)
			R.fails[R.nfails++] = (struct fail_rec){ xstrdup(R.suite), status };
	}
	fflush(stdout);
	if (R.cfg.plot_dir && n)
		rp_plot_write(R.cfg.plot_dir, R.suite, R.rows + R.suite_first, n);
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
			const struct rp_report_rec *r = &R.rows[i];

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
		fputs(R.nrows ? "\n  ]" : "]", f);
		/* rows not measured, and why (a missing tool, a peer that did
		 * not start): a partial table is not a complete one */
		fputs(",\n  \"skipped\": [", f);
		for (size_t i = 0; i < R.nskips; i++) {
			fputs(i ? ",\n    {\"suite\": " : "\n    {\"suite\": ", f);
			json_str(f, R.skips[i].suite);
			fputs(", \"what\": ", f);
			json_str(f, R.skips[i].what);
			fputs(", \"reason\": ", f);
			json_str(f, R.skips[i].why);
			fputc('}', f);
		}
		fputs(R.nskips ? "\n  ]" : "]", f);
		fputs(",\n  \"failed\": [", f);
		for (size_t i = 0; i < R.nfails; i++) {
			int st = R.fails[i].status;

			fputs(i ? ",\n    {\"suite\": " : "\n    {\"suite\": ", f);
			json_str(f, R.fails[i].suite);
			fputs(", \"error\": ", f);
			json_str(f, strerror(st < 0 ? -st : st));
			fputc('}', f);
		}
		fputs(R.nfails ? "\n  ]" : "]", f);
		/* false when a suite failed or stopped early, or a row was skipped */
		fprintf(f, ",\n  \"complete\": %s\n}\n",
			R.nfails || R.nskips ? "false" : "true");
		if ((ferror(f) | fclose(f)) || rename(R.json_tmp, R.cfg.json_path)) {
			unlink(R.json_tmp);
			rp_cleanup_del(R.json_slot);
			ret = -EIO;
			fprintf(stderr, "ringplane-bench: writing %s failed\n", R.cfg.json_path);
		} else {
			rp_cleanup_del(R.json_slot);
			printf("\njson: %s (%zu rows, %zu skipped, %zu suites failed)\n",
			       R.cfg.json_path, R.nrows, R.nskips, R.nfails);
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
	for (size_t i = 0; i < R.nskips; i++) {
		free(R.skips[i].suite);
		free(R.skips[i].what);
		free(R.skips[i].why);
	}
	free(R.skips);
	R.skips = NULL;
	R.nskips = R.skipcap = 0;
	for (size_t i = 0; i < R.nfails; i++)
		free(R.fails[i].suite);
	free(R.fails);
	R.fails = NULL;
	R.nfails = R.failcap = 0;
	R.nrows = R.cap = 0;
	return ret;
}
