/* SPDX-License-Identifier: MIT */
/* Strict option values for the `ringplane` commands (args.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <ringplane/topo.h>

#include "args.h"

__attribute__((format(printf, 4, 5))) static int bad(const char *cmd, const char *flag,
						      const char *s, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ringplane %s: %s '%s': ", cmd, flag, s);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -EINVAL;
}

/* Digits only, no overflow; true and *out, or false. */
static bool parse_dec(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (!n)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(unsigned char)s[i] - '0';

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

int rp_arg_u64(const char *cmd, const char *flag, const char *s, uint64_t min, uint64_t max,
	       uint64_t *out)
{
	uint64_t v;

	if (!parse_dec(s, strlen(s), &v) || v < min || v > max)
		return bad(cmd, flag, s, "not a whole number in %llu..%llu",
			   (unsigned long long)min, (unsigned long long)max);
	*out = v;
	return 0;
}

int rp_arg_uint(const char *cmd, const char *flag, const char *s, unsigned min, unsigned max,
		unsigned *out)
{
	uint64_t v = 0;
	int ret = rp_arg_u64(cmd, flag, s, min, max, &v);

	if (!ret)
		*out = (unsigned)v;
	return ret;
}

int rp_arg_hostport(const char *cmd, const char *flag, const char *s, bool allow_port0,
		    struct sockaddr_storage *ss, socklen_t *len)
{
	const char *colon = strrchr(s, ':');
	char host[256];
	uint64_t port;
	size_t hl;

	if (!colon)
		return bad(cmd, flag, s, "not HOST:PORT (IPv6 as [ADDR]:PORT)");
	if (!parse_dec(colon + 1, strlen(colon + 1), &port) || port > 65535 ||
	    (port == 0 && !allow_port0))
		return bad(cmd, flag, s, "port must be a number in %d..65535", allow_port0 ? 0 : 1);
	hl = (size_t)(colon - s);
	if (hl >= sizeof(host) || hl == 0)
		return bad(cmd, flag, s, "not HOST:PORT (IPv6 as [ADDR]:PORT)");
	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		if (hl < 3 || s[hl - 1] != ']')
			return bad(cmd, flag, s, "an IPv6 address goes in brackets: [ADDR]:PORT");
		memcpy(host, s + 1, hl - 2);
		host[hl - 2] = 0;
		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			return bad(cmd, flag, s, "'%s' is not an IPv6 address", host);
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		*len = sizeof(*a);
		return 0;
	}
	memcpy(host, s, hl);
	host[hl] = 0;
	if (strchr(host, ':'))
		return bad(cmd, flag, s, "an IPv6 address goes in brackets: [ADDR]:PORT");
	if (strspn(host, "0123456789.") == hl) {
		/* inet_pton takes only the dotted quad; getaddrinfo would also
		 * take "127.1" and "2130706433" */
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return bad(cmd, flag, s, "'%s' is not an IPv4 address", host);
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		*len = sizeof(*a);
		return 0;
	}
	{
		struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
		struct addrinfo *ai;
		int err = getaddrinfo(host, NULL, &hints, &ai);

		if (err)
			return bad(cmd, flag, s, "cannot resolve '%s': %s", host, gai_strerror(err));
		memcpy(ss, ai->ai_addr, ai->ai_addrlen);
		*len = ai->ai_addrlen;
		freeaddrinfo(ai);
		if (ss->ss_family == AF_INET6)
			((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
		else
			((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	}
	return 0;
}

int rp_arg_cpus(const char *cmd, const char *flag, const char *s)
{
	cpu_set_t set;
	int ret = rp_cpulist_parse(s, &set);

	if (ret == -ERANGE)
		return bad(cmd, flag, s, "CPU number beyond CPU_SETSIZE (%d)", CPU_SETSIZE);
	if (ret || CPU_COUNT(&set) == 0 || strchr(s, '\n'))
		return bad(cmd, flag, s, "not a cpulist like 0-3,8,10-11");
	return 0;
}

int rp_arg_choice(const char *cmd, const char *flag, const char *s, const char *const *choices,
		  unsigned *out)
{
	char list[256];
	size_t n = 0;

	for (unsigned i = 0; choices[i]; i++) {
		if (!strcmp(s, choices[i])) {
			*out = i;
			return 0;
		}
	}
	list[0] = 0;
	for (unsigned i = 0; choices[i] && n < sizeof(list); i++) {
		int w = snprintf(list + n, sizeof(list) - n, "%s%s", i ? "|" : "", choices[i]);

		if (w < 0)
			break;
		n += (size_t)w;
	}
	return bad(cmd, flag, s, "must be one of %s", list);
}

__attribute__((format(printf, 2, 3))) static int refuse(const char *prog, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (%s --help for usage)\n", prog);
	return '?';
}

int rp_getopt(const char *prog, int argc, char *const argv[], const char *shortopts,
	      const struct option *longopts)
{
	const struct option *lo;
	const char *arg, *name;
	size_t n;
	int li = -1, c, before = optind;

	opterr = 0;
	optopt = 0;
	c = getopt_long(argc, argv, shortopts, longopts, &li);
	if (c == -1)
		return -1;
	if (c == '?') {
		/* An unknown short option: optind is past its element when it
		 * ended it, but stays on a cluster ("-xh") it is inside of, so
		 * argv[optind - 1] is then the element before; name optopt. */
		if (optopt && (optind == before || optind < 1 || optind > argc ||
			       strncmp(argv[optind - 1], "--", 2)))
			return refuse(prog, "unknown option '-%c'", optopt);
		arg = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
		if (!strncmp(arg, "--", 2) && strchr(arg, '=')) {
			/* "--help=x": a known flag given a value it takes none of */
			for (lo = longopts; lo->name; lo++)
				if (lo->has_arg == no_argument &&
				    strlen(lo->name) == (size_t)(strchr(arg, '=') - arg - 2) &&
				    !strncmp(arg + 2, lo->name, strlen(lo->name)))
					return refuse(prog, "--%s takes no value", lo->name);
		}
		if (!strncmp(arg, "--", 2) && arg[2] && arg[2] != '=') {
			/* "--linger-tim": a prefix of more than one flag */
			const struct option *first = NULL;

			n = strcspn(arg + 2, "=");
			for (lo = longopts; lo->name; lo++) {
				if (strncmp(arg + 2, lo->name, n))
					continue;
				if (first)
					return refuse(prog,
						      "option '%.*s' is ambiguous: --%s or --%s?",
						      (int)n + 2, arg, first->name, lo->name);
				first = lo;
			}
		}
		return refuse(prog, "unknown option '%s'", arg);
	}
	if (c == ':')
		return refuse(prog, "%s needs a value", argv[optind - 1]);
	if (li < 0)
		return c; /* a short option: nothing to abbreviate */
	/* The element that named the flag: the one before optind, or the one
	 * before its value when that came as the next element. */
	lo = &longopts[li];
	arg = argv[optind - 1];
	if (lo->has_arg != no_argument && optarg && optarg == argv[optind - 1] && optind >= 2)
		arg = argv[optind - 2];
	name = arg + (arg[0] == '-') + (arg[0] == '-' && arg[1] == '-');
	n = strcspn(name, "=");
	if (n != strlen(lo->name))
		return refuse(prog, "option '%.*s' is abbreviated: did you mean --%s?",
			      (int)(name - arg + n), arg, lo->name);
	return c;
}

int rp_args_none_left(const char *prog, int argc, char *const argv[])
{
	if (optind >= argc)
		return 0;
	refuse(prog, "unexpected argument '%s'", argv[optind]);
	return -EINVAL;
}

int rp_arg_required(const char *prog, const char *flag, bool given)
{
	if (given)
		return 0;
	refuse(prog, "%s is required", flag);
	return -EINVAL;
}
