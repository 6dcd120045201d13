/* SPDX-License-Identifier: MIT */
/*
 * Internal to net/ (not installed, not exported): http.c's helpers that the
 * tests drive with inputs the public API takes from the environment.
 */
#ifndef RP_NET_HTTP_IMPL_H
#define RP_NET_HTTP_IMPL_H

#include <stddef.h>
#include <time.h>

/*
 * rp_http_date_parse_year_ - rp_http_date_parse() with the current year
 * given (the rp_ prefix and trailing '_': a global of libringplane.a that
 * is no API and not in the .so's version map): an RFC 850 two-digit year is read in the window
 * @now_year - 49 ..
 * @now_year + 50 (RFC 9110 5.6.7). @now_year <= 0 reads the clock, once,
 * and only for an RFC 850 date.
 */
int rp_http_date_parse_year_(const char *s, size_t len, time_t *t, int now_year);

#endif
