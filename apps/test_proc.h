/* SPDX-License-Identifier: MIT */
/*
 * What the tests that watch a server from the outside read of it in /proc:
 * its VmRSS and its open descriptors. Shared by test_child.h (test_idle,
 * test_stall, test_relay) and tests/soak; needs nothing else.
 */
#ifndef RP_APPS_TEST_PROC_H
#define RP_APPS_TEST_PROC_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* VmRSS of @pid in kB, or -1. */
static long __attribute__((unused)) rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			kb = strtol(line + 6, NULL, 10);
	fclose(f);
	return kb;
}

/* Open descriptors of @pid, or -1. */
static long __attribute__((unused)) fd_count(pid_t pid)
{
	char path[64];
	struct dirent *d;
	long n = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while ((d = readdir(dir)) && n < 1000000)
		if (d->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

#endif
