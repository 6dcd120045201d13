/* SPDX-License-Identifier: MIT */
/*
 * ringplane-bench reporting: the per-suite table printed as rows arrive, the
 * summary line, the JSON file and the gnuplot files.
 *
 * One row is one measured comparison. Its ratio is computed here, never by a
 * suite, so the rule holds everywhere: ratio > 1 means ringplane is better
 * (ours / baseline when higher is better, baseline / ours otherwise).
 *
 * The bench is single-threaded at this level: call these from the thread
 * that runs the suites.
 */
#ifndef RP_BENCH_REPORT_H
#define RP_BENCH_REPORT_H

#include <stdbool.h>
#include <stddef.h>

struct rp_report_cfg {
	const char *json_path; /* NULL: no JSON */
	const char *plot_dir;  /* NULL: no plots */
	bool quick;
	int pinned_cpu;	       /* -1 when the thread could not be pinned */
};

/*
 * rp_report_open - check the outputs can be written before any suite runs
 * (opens the JSON file, creates the plot directory). Returns 0 or -errno,
 * having printed why.
 */
int rp_report_open(const struct rp_report_cfg *cfg);

/* Starts a suite's table. @desc is printed as its title. */
void rp_report_suite_begin(const char *suite, const char *desc);

/*
 * rp_report_row - record and print one measured row of the current suite.
 * @ours and @baseline are in @unit; both must be finite and > 0, else the
 * row is refused (-EINVAL, with a message) rather than printed.
 */
int rp_report_row(const char *name, const char *unit, double ours, double baseline,
		  const char *baseline_name, bool higher_is_better);

/*
 * rp_report_row_strawman - rp_report_row() for a baseline that shows a
 * known-bad design rather than what one would run instead (a queue that
 * takes a lock and signals a condition variable on every item). The row is
 * printed, plotted and written to JSON with "strawman": true and
 * "strawman_why": @why, but left out of the suite's geometric mean and win
 * count; the summary line names it and says why. Same return values.
 */
int rp_report_row_strawman(const char *name, const char *unit, double ours, double baseline,
			   const char *baseline_name, bool higher_is_better, const char *why);

/* A line of context under the current suite's table (sizes, checks). */
void rp_report_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A row (or group of rows) that was not measured, and why. */
void rp_report_skip(const char *what, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * rp_report_suite_end - print the suite's summary (rows, geometric mean of
 * the ratios, rows with ratio >= 1; strawman rows left out of both and
 * listed) and write its plot files if asked.
 * @status is the suite's run() result, shown when it failed.
 */
void rp_report_suite_end(int status);

/*
 * rp_report_cpu_model - the CPU model from /proc/cpuinfo ("model name" on
 * x86, the names arm64 and others use otherwise) into @buf, or "unknown".
 * The same text the JSON file's host.cpu_model holds.
 */
void rp_report_cpu_model(char *buf, size_t size);

/*
 * rp_report_tcp_cc - the host's default TCP congestion control
 * (net.ipv4.tcp_congestion_control) into @buf, "unknown" when unreadable.
 * Printed with the results: it sets the pace of one loopback connection
 * (bbr's pacing held a 1 MB or 64 MB answer to a third of cubic's rate on a
 * 2-vCPU Xeon VM, docs/net.md "Congestion control on loopback and veth").
 */
void rp_report_tcp_cc(char *buf, size_t size);

/*
 * rp_report_close - write the JSON file (host facts and every row) and free
 * the rows. Returns 0 or -errno.
 */
int rp_report_close(void);

#endif /* RP_BENCH_REPORT_H */
