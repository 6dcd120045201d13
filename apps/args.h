/* SPDX-License-Identifier: MIT */
/*
 * Option values of the `ringplane` commands, parsed strictly: every helper
 * takes the command's name ("echo") and the flag ("--shards") for its
 * message, and either stores the value and returns 0, or prints one line
 * on stderr naming the flag and the value ("ringplane echo: --shards '4x':
 * not a whole number in 1..1024") and returns -EINVAL. The caller then
 * exits with RP_EXIT_USAGE (2).
 *
 * Refused everywhere: the empty string, leading blanks or signs (strtoul
 * would take " 5", "+5" and turn "-1" into ULONG_MAX), trailing junk
 * ("4x", "1.5"), values out of the flag's range.
 */
#ifndef RP_APPS_ARGS_H
#define RP_APPS_ARGS_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* An unsigned decimal in [@min, @max]. Durations too, as whole numbers in
 * the unit the flag names (--connect-timeout MS, --idle-timeout S). */
int rp_arg_u64(const char *cmd, const char *flag, const char *s, uint64_t min, uint64_t max,
	       uint64_t *out);
int rp_arg_uint(const char *cmd, const char *flag, const char *s, unsigned min, unsigned max,
		unsigned *out);

/* HOST:PORT. HOST is a dotted IPv4 address ("127.0.0.1", not "127.1"), an
 * IPv6 address in brackets ("[::1]:7000"), or a name resolved with
 * getaddrinfo (the first address). PORT is decimal 1..65535, or 0 too when
 * @allow_port0 (a listener that lets the kernel pick). */
int rp_arg_hostport(const char *cmd, const char *flag, const char *s, bool allow_port0,
		    struct sockaddr_storage *ss, socklen_t *len);

/* A cpulist ("0-3,8"), not empty, CPU numbers below CPU_SETSIZE. Whether
 * the CPUs exist here is the placement plan's business. */
int rp_arg_cpus(const char *cmd, const char *flag, const char *s);

/* One of @choices (a NULL-terminated list); stores its index. */
int rp_arg_choice(const char *cmd, const char *flag, const char *s, const char *const *choices,
		  unsigned *out);

/* getopt_long, strict, for `ringplane <command>` and ringplane-bench.
 * @prog prefixes each message ("ringplane echo", "ringplane-bench");
 * @shortopts must begin with ':' (a missing value is then told apart).
 * Returns the option's value, -1 at the end of the options, or '?' after
 * printing one line on stderr naming the argument: an unknown option
 * ("ringplane echo: unknown option '--bogus'"), a missing value, a value
 * given to a flag that takes none, or an abbreviated long flag, which
 * getopt_long would take for the whole one: refused ("option '--lis' is
 * abbreviated: did you mean --listen?") so a flag added later cannot
 * change what a script's abbreviation means. The caller exits 2. */
int rp_getopt(const char *prog, int argc, char *const argv[], const char *shortopts,
	      const struct option *longopts);

/* After rp_getopt's loop, for a command that takes no operand: 0, or one
 * line naming the first stray argument ("ringplane echo: unexpected
 * argument 'extra'") and -EINVAL. */
int rp_args_none_left(const char *prog, int argc, char *const argv[]);

/* A flag the command cannot run without: 0 when @given, else one line
 * ("ringplane relay: --upstream is required") and -EINVAL. */
int rp_arg_required(const char *prog, const char *flag, bool given);

#endif /* RP_APPS_ARGS_H */
