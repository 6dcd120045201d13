/* SPDX-License-Identifier: MIT */
/*
 * `ringplane <command> [options]`: one binary, one subcommand per file
 * (cmd_<name>.c), dispatched from the table below.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"

#ifndef RP_VERSION
#define RP_VERSION "unknown"
#endif

struct command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

static const struct command commands[] = {
	{"echo", "TCP echo server on the shard runtime (plain, or sockperf's protocol)", rp_cmd_echo},
	{"relay", "TCP relay: each client to a new upstream connection, splice or copy", rp_cmd_relay},
	{"serve", "HTTP/1.1 static files: GET/HEAD, keep-alive, ranges, no copy of large bodies", rp_cmd_serve},
	{"topo", "print the CPU topology and the shard placement plan", rp_cmd_topo},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	fprintf(f, "usage: ringplane <command> [options]\n"
		   "       ringplane --version | --help\n\ncommands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'ringplane <command> --help' lists the command's options;\n"
		   "--version prints the version, --help this text.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return RP_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return RP_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("ringplane %s\n", RP_VERSION);
		return RP_EXIT_OK;
	}
	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	}
	fprintf(stderr, "ringplane: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return RP_EXIT_USAGE;
}
