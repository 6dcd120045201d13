/* SPDX-License-Identifier: MIT */
/*
 * The `ringplane` command's subcommands. Each takes argv with argv[0] the
 * subcommand's name and returns the process exit status: 0 success,
 * 1 failure, 2 usage error (message already printed).
 */
#ifndef RP_APPS_COMMANDS_H
#define RP_APPS_COMMANDS_H

#define RP_EXIT_OK    0
#define RP_EXIT_FAIL  1
#define RP_EXIT_USAGE 2

int rp_cmd_echo(int argc, char **argv);
int rp_cmd_relay(int argc, char **argv);
int rp_cmd_serve(int argc, char **argv);
int rp_cmd_topo(int argc, char **argv);

#endif /* RP_APPS_COMMANDS_H */
