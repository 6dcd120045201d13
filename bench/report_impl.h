/* SPDX-License-Identifier: MIT */
/*
 * Internal to ringplane-bench's reporting (report.c and the files it hands
 * work to); suites use report.h. One job per file:
 *   report.c      rows, the table, the summary, host facts and the JSON file
 *   json_check.c  a syntax check of JSON text we embed (ringplane-tune's)
 *   child.c       running a short-lived helper program, bounded in time
 *   plot.c        the plot directory and its gnuplot files
 */
#ifndef RP_BENCH_REPORT_IMPL_H
#define RP_BENCH_REPORT_IMPL_H

#include <stdbool.h>
#include <stddef.h>

/* A helper program (ringplane-tune check, gnuplot) is given this long, then killed. */
#define RP_CHILD_TIMEOUT_S 60

/* One measured row, as report.c keeps it until the JSON file is written. */
struct rp_report_rec {
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

/* ---- json_check.c ---- */

/*
 * rp_json_valid - is @s (@len bytes, NUL-terminated, no NUL inside) one
 * syntactically valid JSON value with only whitespace around it? Nesting
 * deeper than 64 levels is refused. Checks syntax only, never meaning.
 */
bool rp_json_valid(const char *s, size_t len);

/* ---- child.c ---- */

/*
 * rp_find_executable - is @name an executable regular file, as given (when
 * it contains '/') or on PATH? Fills @out (@size bytes) with the path found.
 */
bool rp_find_executable(const char *name, char *out, size_t size);

/*
 * rp_child_run - run @argv (argv[0] a path) in @cwd (NULL: ours), stdin from
 * /dev/null, in its own process group. With @out, stdout is captured into a
 * malloc'd NUL-terminated buffer (*out, *out_len; the caller frees it; at
 * most 4 MiB kept) and stderr discarded; without, both are inherited. The
 * group is killed after RP_CHILD_TIMEOUT_S. Returns the exit status
 * (0..255), or -errno (-ETIMEDOUT, -ECHILD for death by signal).
 */
int rp_child_run(char *const argv[], const char *cwd, char **out, size_t *out_len);

/* ---- plot.c ---- */

/* rp_plot_mkdir - create @dir and its parents (mkdir -p). 0 or -errno. */
int rp_plot_mkdir(const char *dir);

/*
 * rp_plot_write - write @dir/@suite.dat (name ours baseline ratio per row)
 * and @dir/@suite.gp for the @n rows at @rows, and render @suite.png with
 * gnuplot when it is installed. Prints one "  plot: ..." line saying what
 * it did. Returns 0 or -errno (-EIO when gnuplot failed).
 */
int rp_plot_write(const char *dir, const char *suite, const struct rp_report_rec *rows, size_t n);

#endif /* RP_BENCH_REPORT_IMPL_H */
