/* SPDX-License-Identifier: MIT */
/*
 * --plot DIR: per suite, DIR/<suite>.dat (one row per line: name, ours,
 * baseline, ratio) and DIR/<suite>.gp, a gnuplot script drawing each row's
 * ratio as a bar from 1.0 on a log scale, rendered to DIR/<suite>.png when
 * gnuplot is installed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "report_impl.h"

int rp_plot_mkdir(const char *path)
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

int rp_plot_write(const char *dir, const char *suite, const struct rp_report_rec *rows, size_t n)
{
	char path[4096], gnuplot[4096];
	FILE *f;
	int ret;

	snprintf(path, sizeof(path), "%s/%s.dat", dir, suite);
	f = fopen(path, "w");
	if (!f)
		goto fail;
	fprintf(f, "# ringplane-bench %s: name ours baseline ratio (ratio > 1: ringplane better)\n",
		suite);
	for (size_t i = 0; i < n; i++) {
		const struct rp_report_rec *r = &rows[i];

		fputc('"', f);
		for (const char *c = r->name; *c; c++)
			fputc(*c == '"' ? '\'' : *c, f);
		fprintf(f, "\" %.6g %.6g %.6g\n", r->ours, r->baseline, r->ratio);
	}
	if (fclose(f))
		goto fail;

	snprintf(path, sizeof(path), "%s/%s.gp", dir, suite);
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

	if (!rp_find_executable("gnuplot", gnuplot, sizeof(gnuplot))) {
		printf("  plot: wrote %s/%s.gp and .dat; gnuplot not found, render with: cd %s && gnuplot %s.gp\n",
		       dir, suite, dir, suite);
		return 0;
	}
	snprintf(path, sizeof(path), "%s.gp", suite);
	ret = rp_child_run((char *const[]){ gnuplot, path, NULL }, dir, NULL, NULL);
	if (ret != 0) {
		printf("  plot: gnuplot failed (%s%d) on %s/%s.gp\n", ret < 0 ? "error " : "exit ",
		       ret < 0 ? -ret : ret, dir, suite);
		return ret < 0 ? ret : -EIO;
	}
	printf("  plot: %s/%s.png\n", dir, suite);
	return 0;
fail:
	ret = -errno;
	printf("  plot: %s: %s\n", path, strerror(errno));
	return ret;
}
