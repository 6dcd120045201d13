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
 * rp_http_date_parse_at_ - rp_http_date_parse() at the time @now: an RFC 850
 * two-digit year is the latest year with those digits whose timestamp is
 * not more than 50 years after @now (RFC 9110 5.6.7). @now NULL reads the
 * clock, once, and only for an RFC 850 date. The rp_ prefix with a
 * trailing '_': a global of libringplane.a that is no API and not in the
 * .so's version map.
 */
int rp_http_date_parse_at_(const char *s, size_t len, time_t *t, const time_t *now);

#endif
