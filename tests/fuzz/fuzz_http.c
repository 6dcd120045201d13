/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the HTTP/1.1 request side (include/ringplane/http.h).
 *
 * Input: one byte that seeds how the rest is cut, then the bytes a client
 * would send. The rest is parsed once in one piece and again as it would
 * arrive: a buffer that grows by pseudo-random steps, each call given a
 * fresh malloc'd copy of exactly the bytes so far, so ASan sees any read
 * past them and any pointer kept from an earlier call. Checked, trapping on
 * any violation:
 *   - both parses agree: status, reason, status to answer, bytes read, the
 *     request;
 *   - MORE read every byte; ERROR has a reason with a name and one of the
 *     statuses the header lists; DONE read exactly the head, which ends in
 *     CRLF CRLF, all its spans lie inside it, and the head alone, in a
 *     buffer of exactly its size, parses to the same result (no byte past
 *     the head was needed, and none was read: the first parse had them all);
 *   - the target's decoded path starts with '/' and holds no NUL, no "." or
 *     ".." segment and no "//"; the whole input decoded as a target obeys
 *     the same;
 *   - a Range resolves to first <= last < size for a few sizes; If-None-
 *     Match gives 0 or 1; an If-Modified-Since that parses formats back to
 *     the same time.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ringplane/http.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			__builtin_trap();                                                          \
	} while (0)

static int parse_copy(struct rp_http_parser *p, const uint8_t *in, size_t n)
{
	uint8_t *copy = malloc(n ? n : 1);
	int st;

	CHECK(copy);
	if (n)
		memcpy(copy, in, n);
	st = rp_http_parse(p, copy, n);
	free(copy);
	return st;
}

static int feed_growing(struct rp_http_parser *p, const uint8_t *in, size_t n, uint8_t seed)
{
	uint32_t s = 0x9E3779B9u ^ seed;
	size_t have = 0, span = n / 16 > 64 ? n / 16 : 64;
	int st = RP_HTTP_MORE;

	rp_http_parser_init(p);
	while (have < n) {
		s ^= s << 13;
		s ^= s >> 17;
		s ^= s << 5;
		have += 1 + s % span;
		if (have > n)
			have = n;
		st = parse_copy(p, in, have);
		CHECK(st >= 0);
		if (st != RP_HTTP_MORE)
			break;
		CHECK(p->scanned == have);
	}
	return st;
}

static bool span_in(struct rp_http_span s, uint32_t len)
{
	return s.off <= len && s.len <= len - s.off;
}

/* A decoded path: '/' first, no NUL, no "//", no "." or ".." segment. */
static void check_path(const char *out, ssize_t n)
{
	CHECK(n >= 1 && out[0] == '/' && out[n] == '\0');
	CHECK(memchr(out, '\0', (size_t)n) == NULL);
	for (ssize_t i = 0; i < n; i++) {
		size_t seg;

		if (out[i] != '/')
			continue;
		CHECK(i + 1 == n || out[i + 1] != '/');
		seg = 0;
		while (i + 1 + (ssize_t)seg < n && out[i + 1 + seg] != '/')
			seg++;
		CHECK(!(seg == 1 && out[i + 1] == '.'));
		CHECK(!(seg == 2 && out[i + 1] == '.' && out[i + 2] == '.'));
	}
}

static void check_decode(const char *t, size_t len)
{
	char out[8192];
	size_t q = (size_t)-1;
	ssize_t n = rp_http_path_decode(t, len, out, sizeof(out), &q);

	CHECK(q <= len && (q == len || t[q] == '?'));
	CHECK(memchr(t, '?', q) == NULL);
	if (n >= 0) {
		CHECK((size_t)n <= q);
		check_path(out, n);
	} else {
		CHECK(n == -EINVAL || n == -EILSEQ || n == -EPERM || n == -ENOSPC);
		CHECK(n != -ENOSPC || q + 1 > sizeof(out));
	}
}

static void check_request(const char *b, const struct rp_http_request *r)
{
	static const uint64_t sizes[] = {0, 1, 1000, UINT64_MAX};
	time_t t, back;

	CHECK(r->method == RP_HTTP_METHOD_GET || r->method == RP_HTTP_METHOD_HEAD);
	CHECK(r->version_minor <= 1);
	CHECK(r->head_len >= 4 && !memcmp(b + r->head_len - 4, "\r\n\r\n", 4));
	CHECK(span_in(r->target, r->head_len) && span_in(r->path, r->head_len));
	CHECK(span_in(r->query, r->head_len) && span_in(r->host, r->head_len));
	CHECK(span_in(r->range, r->head_len) && span_in(r->if_none_match, r->head_len));
	CHECK(span_in(r->if_modified_since, r->head_len));
	CHECK(r->target.len >= 1 && b[r->target.off] == '/');
	CHECK(r->path.off == r->target.off);
	CHECK(r->has_query ? r->path.len + 1 + r->query.len == r->target.len
			   : r->path.len == r->target.len);
	CHECK(r->version_minor == 0 || r->has_host);
	check_decode(b + r->target.off, r->target.len);

	if (r->has_range) {
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			uint64_t f = 7, l = 7;
			int rc = rp_http_range_parse(b + r->range.off, r->range.len, sizes[i], &f,
						     &l);

			CHECK(rc == RP_HTTP_RANGE_OK || rc == RP_HTTP_RANGE_IGNORE ||
			      rc == RP_HTTP_RANGE_UNSATISFIABLE);
			if (rc == RP_HTTP_RANGE_OK)
				CHECK(f <= l && l < sizes[i]);
			else
				CHECK(f == 7 && l == 7);
		}
	}
	if (r->has_if_none_match) {
		int m = rp_http_etag_match(b + r->if_none_match.off, r->if_none_match.len,
					   "\"1.0-2\"", 7);

		CHECK(m == 0 || m == 1);
	}
	if (r->has_if_range) {
		/* 0 or 1; a strong tag (quotes around etagc bytes) matches itself */
		const char *v = b + r->if_range.off;
		size_t n = r->if_range.len;
		bool tag = n >= 2 && v[0] == '"' && v[n - 1] == '"';
		int m = rp_http_if_range(v, n, "\"1.0-2\"", 7);

		CHECK(m == 0 || m == 1);
		for (size_t k = 1; tag && k + 1 < n; k++)
			tag = (unsigned char)v[k] > 0x20 && v[k] != '"' && v[k] != 0x7f;
		if (tag)
			CHECK(rp_http_if_range(v, n, v, n) == 1);
	}
	if (r->has_if_modified_since &&
	    rp_http_date_parse(b + r->if_modified_since.off, r->if_modified_since.len, &t) == 0) {
		char d[RP_HTTP_DATE_LEN + 1];

		CHECK(rp_http_date_format(d, t) == RP_HTTP_DATE_LEN);
		CHECK(rp_http_date_parse(d, RP_HTTP_DATE_LEN, &back) == 0 && back == t);
		CHECK(rp_http_not_modified_since(b + r->if_modified_since.off,
						 r->if_modified_since.len, t) == 1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rp_http_parser one, many, head;
	const uint8_t *in;
	size_t n;
	int st, st2;

	if (size < 1)
		return 0;
	in = data + 1;
	n = size - 1;

	rp_http_parser_init(&one);
	st = parse_copy(&one, in, n);
	st2 = feed_growing(&many, in, n, data[0]);

	CHECK(st == RP_HTTP_MORE || st == RP_HTTP_DONE || st == RP_HTTP_ERROR);
	CHECK(st == st2 && one.scanned == many.scanned);
	CHECK(one.reason == many.reason && one.http_status == many.http_status);
	CHECK(memcmp(&one.req, &many.req, sizeof(one.req)) == 0);
	CHECK(one.scanned <= n);

	switch (st) {
	case RP_HTTP_MORE:
		CHECK(one.scanned == n && one.reason == RP_HTTP_R_NONE && one.http_status == 0);
		break;
	case RP_HTTP_ERROR:
		CHECK(one.reason > RP_HTTP_R_NONE && one.reason < RP_HTTP_R_COUNT);
		CHECK(strcmp(rp_http_reason_name(one.reason), "invalid") != 0);
		CHECK(one.http_status == 400 || one.http_status == 405 || one.http_status == 414 ||
		      one.http_status == 431 || one.http_status == 501 || one.http_status == 505);
		CHECK(one.scanned >= 1);
		break;
	case RP_HTTP_DONE:
		CHECK(one.reason == RP_HTTP_R_NONE && one.http_status == 0);
		CHECK(one.scanned == one.req.head_len && one.req.head_len <= RP_HTTP_HEAD_MAX);
		/* The head alone is enough, and gives the same. */
		rp_http_parser_init(&head);
		CHECK(parse_copy(&head, in, one.req.head_len) == RP_HTTP_DONE);
		CHECK(memcmp(&head.req, &one.req, sizeof(one.req)) == 0);
		check_request((const char *)in, &one.req);
		break;
	default:
		CHECK(0);
	}

	/* The whole input as a raw target. */
	check_decode((const char *)in, n);
	return 0;
}
