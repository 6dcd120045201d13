/* SPDX-License-Identifier: MIT */
/*
 * HTTP/1.1 request heads for a static file server: an incremental, strict
 * parser and the pure helpers around it (path, Range, conditionals, the
 * response head). The rules and the reasons behind them are in docs/http.md.
 *
 * The parser takes one byte per state step and keeps only offsets, so its
 * result depends on the bytes only, never on where the pieces were cut, and
 * the first rule a byte breaks, in byte order, is the one reported. A field
 * is looked at when its line's LF arrives: its name and value are still in
 * the caller's buffer at the offsets the parser noted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <string.h>

#include <ringplane/http.h>

#include "http_impl.h"

enum {
	S_START,    /* before the request line: empty lines or the method */
	S_START_LF, /* CR of an empty line read */
	S_METHOD,
	S_TARGET, /* the target's first byte */
	S_PATH,
	S_QUERY,
	S_VERSION, /* "HTTP/x.y", ver_at bytes read */
	S_RL_CR,   /* the version read: CR */
	S_RL_LF,
	S_FIELD, /* a field line's first byte, or the final CR */
	S_NAME,
	S_OWS, /* after ':', before the value */
	S_VALUE,
	S_FIELD_LF,
	S_END_LF,
};

/* parser.flags */
enum {
	F_CL = 1u << 0,	    /* Content-Length seen */
	F_CLOSE = 1u << 1,  /* Connection: close */
	F_KEEP = 1u << 2,   /* Connection: keep-alive */
	F_RANGE2 = 1u << 3, /* Range seen twice: dropped for good */
	F_INM2 = 1u << 4,   /* If-None-Match seen twice */
	F_IMS2 = 1u << 5,   /* If-Modified-Since seen twice */
};

static const char *const reason_names[RP_HTTP_R_COUNT] = {
	[RP_HTTP_R_NONE] = "none",
	[RP_HTTP_R_REQUEST_LINE] = "request_line",
	[RP_HTTP_R_TARGET] = "target",
	[RP_HTTP_R_VERSION] = "version",
	[RP_HTTP_R_BARE_CR] = "bare_cr",
	[RP_HTTP_R_BARE_LF] = "bare_lf",
	[RP_HTTP_R_CTL] = "ctl",
	[RP_HTTP_R_FIELD_SYNTAX] = "field_syntax",
	[RP_HTTP_R_SPACE_BEFORE_COLON] = "space_before_colon",
	[RP_HTTP_R_OBS_FOLD] = "obs_fold",
	[RP_HTTP_R_HOST_MISSING] = "host_missing",
	[RP_HTTP_R_HOST_INVALID] = "host_invalid",
	[RP_HTTP_R_CONTENT_LENGTH] = "content_length",
	[RP_HTTP_R_BODY] = "body",
	[RP_HTTP_R_TRANSFER_ENCODING] = "transfer_encoding",
	[RP_HTTP_R_METHOD_NOT_ALLOWED] = "method_not_allowed",
	[RP_HTTP_R_METHOD_UNKNOWN] = "method_unknown",
	[RP_HTTP_R_LINE_TOO_LONG] = "line_too_long",
	[RP_HTTP_R_HEADERS_TOO_LARGE] = "headers_too_large",
	[RP_HTTP_R_TOO_MANY_FIELDS] = "too_many_fields",
	[RP_HTTP_R_VERSION_UNSUPPORTED] = "version_unsupported",
};

static const uint16_t reason_status[RP_HTTP_R_COUNT] = {
	[RP_HTTP_R_METHOD_NOT_ALLOWED] = 405, [RP_HTTP_R_METHOD_UNKNOWN] = 501,
	[RP_HTTP_R_LINE_TOO_LONG] = 414,      [RP_HTTP_R_HEADERS_TOO_LARGE] = 431,
	[RP_HTTP_R_TOO_MANY_FIELDS] = 431,    [RP_HTTP_R_VERSION_UNSUPPORTED] = 505,
};

_Static_assert(RP_HTTP_HEAD_MAX < UINT32_MAX, "offsets are 32-bit");
_Static_assert(RP_HTTP_FIELDS_MAX < UINT16_MAX, "the field count is 16-bit");

const char *rp_http_reason_name(enum rp_http_reason r)
{
	if ((unsigned)r >= RP_HTTP_R_COUNT)
		return "invalid";
	return reason_names[r];
}

/* ---- characters ------------------------------------------------------- */

/* tchar (RFC 9110 5.6.2): the bytes of a method or a field name. */
static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c);
}

/* CTL: 0x00-0x1f and DEL. */
static bool is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static unsigned char lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* @a (@n bytes) equals the lower-case @lit, ignoring ASCII case. */
static bool ieq(const char *a, size_t n, const char *lit)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!lit[i] || lower((unsigned char)a[i]) != (unsigned char)lit[i])
			return false;
	return lit[i] == '\0';
}

static bool is_ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* ---- the request head ------------------------------------------------- */

void rp_http_parser_init(struct rp_http_parser *p)
{
	if (p)
		memset(p, 0, sizeof(*p));
}

static int refuse(struct rp_http_parser *p, enum rp_http_reason r)
{
	p->status = RP_HTTP_ERROR;
	p->reason = r;
	p->http_status = reason_status[r] ? reason_status[r] : 400;
	return RP_HTTP_ERROR;
}

/* The method is [line_start, end): GET or HEAD, else 405 or 501. */
static int method_end(struct rp_http_parser *p, const char *b, uint32_t end)
{
	/* RFC 9110 9.3's methods and PATCH (RFC 5789): a server knows them
	 * and answers 405 with Allow; other tokens are 501 (RFC 9110 9.1). */
	static const char *const known[] = {"POST",    "PUT",	"DELETE", "CONNECT",
					    "OPTIONS", "TRACE", "PATCH"};
	const char *m = b + p->line_start;
	size_t n = end - p->line_start;

	if (n == 3 && !memcmp(m, "GET", 3)) {
		p->req.method = RP_HTTP_METHOD_GET;
		return RP_HTTP_MORE;
	}
	if (n == 4 && !memcmp(m, "HEAD", 4)) {
		p->req.method = RP_HTTP_METHOD_HEAD;
		return RP_HTTP_MORE;
	}
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (n == strlen(known[i]) && !memcmp(m, known[i], n))
			return refuse(p, RP_HTTP_R_METHOD_NOT_ALLOWED);
	return refuse(p, RP_HTTP_R_METHOD_UNKNOWN);
}

/* A byte of a request target: printable ASCII but '#', or obs-text. */
static bool is_target_byte(unsigned char c)
{
	return c > 0x20 && c != 0x7f && c != '#';
}

static bool is_hexdig(unsigned char c)
{
	return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* pct-encoded = "%" HEXDIG HEXDIG (RFC 3986 2.1): the '%' at @v[@i] is
 * followed, within @n, by two hex digits. */
static bool pct_ok(const char *v, size_t n, size_t i)
{
	return n - i >= 3 && is_hexdig((unsigned char)v[i + 1]) &&
	       is_hexdig((unsigned char)v[i + 2]);
}

/* RFC 3986 unreserved / sub-delims */
static bool is_unreserved_sub(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("-._~!$&'()*+,;=", c);
}

/*
 * IP-literal = "[" ( IPv6address / IPv6addrz / IPvFuture ) "]", the brackets
 * excluded (RFC 3986 3.2.2, RFC 6874 2).
 */
static bool ip_literal_ok(const char *v, size_t n)
{
	char buf[INET6_ADDRSTRLEN];
	struct in6_addr a;
	size_t i = 1;

	if (n && (v[0] == 'v' || v[0] == 'V')) {
		/* IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) */
		while (i < n && is_hexdig((unsigned char)v[i]))
			i++;
		if (i == 1 || i >= n - 1 || v[i] != '.')
			return false;
		for (i++; i < n; i++)
			if (v[i] != ':' && !is_unreserved_sub((unsigned char)v[i]))
				return false;
		return true;
	}
	/*
	 * RFC 6874: IPv6addrz = IPv6address "%25" ZoneID, ZoneID =
	 * 1*( unreserved / pct-encoded ), as in "[fe80::1%25eth0]".
	 */
	for (i = 0; i < n && v[i] != '%'; i++)
		if (!is_hexdig((unsigned char)v[i]) && v[i] != ':' && v[i] != '.')
			return false;
	if (i < n) {
		size_t z = i + 3;

		if (n - i < 4 || v[i + 1] != '2' || v[i + 2] != '5')
			return false;
		while (z < n) {
			unsigned char c = (unsigned char)v[z];

			if (c == '%') {
				if (!pct_ok(v, n, z))
					return false;
				z += 3;
			} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
				   (c >= '0' && c <= '9') || (c && strchr("-._~", c))) {
				z++;
			} else {
				return false;
			}
		}
		n = i;
	}
	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, v, n);
	buf[n] = '\0';
	return inet_pton(AF_INET6, buf, &a) == 1;
}

/*
 * Host = uri-host [ ":" port ] (RFC 9112 3.2, RFC 3986 3.2.2): a bracketed
 * IP-literal, or a reg-name (unreserved, sub-delims, "%" HEXDIG HEXDIG; an
 * IPv4address is one), then optionally ':' and digits. Empty is allowed.
 */
static bool host_ok(const char *v, size_t n)
{
	size_t i = 0;

	if (n && v[0] == '[') {
		const char *end = memchr(v, ']', n);

		if (!end || !ip_literal_ok(v + 1, (size_t)(end - v) - 1))
			return false;
		i = (size_t)(end - v) + 1;
	} else {
		while (i < n && v[i] != ':') {
			unsigned char c = (unsigned char)v[i];

			if (c == '%') {
				if (!pct_ok(v, n, i))
					return false;
				i += 3;
				continue;
			}
			if (!is_unreserved_sub(c))
				return false;
			i++;
		}
	}
	if (i == n)
		return true;
	if (v[i] != ':')
		return false;
	for (i++; i < n; i++)
		if (v[i] < '0' || v[i] > '9')
			return false;
	return true;
}

/* Connection's comma list: the close and keep-alive options. */
static void connection_tokens(struct rp_http_parser *p, const char *v, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t s, e;

		while (i < n && (is_ows((unsigned char)v[i]) || v[i] == ','))
			i++;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > s && is_ows((unsigned char)v[e - 1]))
			e--;
		if (ieq(v + s, e - s, "close"))
			p->flags |= F_CLOSE;
		else if (ieq(v + s, e - s, "keep-alive"))
			p->flags |= F_KEEP;
	}
}

/* An optional field (Range, If-*): kept once, dropped for good if repeated. */
static void optional_field(struct rp_http_parser *p, bool *has, struct rp_http_span *s,
			   uint8_t twice, struct rp_http_span v)
{
	if (p->flags & twice)
		return;
	if (*has) {
		*has = false;
		memset(s, 0, sizeof(*s));
		p->flags |= twice;
		return;
	}
	*has = true;
	*s = v;
}

/* The field line [line_start, LF) is complete: act on the ones we use. */
static int field_end(struct rp_http_parser *p, const char *b)
{
	const char *name = b + p->line_start;
	size_t nlen = p->name_end - p->line_start;
	struct rp_http_span v = {p->value_start, p->value_end - p->value_start};
	const char *val = b + v.off;

	if (ieq(name, nlen, "host")) {
		/* RFC 9112 3.2: more than one Host, or an invalid one, is 400. */
		if (p->req.has_host || !host_ok(val, v.len))
			return refuse(p, RP_HTTP_R_HOST_INVALID);
		p->req.has_host = true;
		p->req.host = v;
	} else if (ieq(name, nlen, "content-length")) {
		uint64_t cl = 0;

		if ((p->flags & F_CL) || v.len == 0)
			return refuse(p, RP_HTTP_R_CONTENT_LENGTH);
		p->flags |= F_CL;
		for (size_t i = 0; i < v.len; i++) {
			if (val[i] < '0' || val[i] > '9')
				return refuse(p, RP_HTTP_R_CONTENT_LENGTH);
			/* Saturates: any value above 0 is refused anyway. */
			if (cl < UINT32_MAX)
				cl = cl * 10 + (uint64_t)(val[i] - '0');
		}
		if (cl)
			return refuse(p, RP_HTTP_R_BODY);
	} else if (ieq(name, nlen, "transfer-encoding")) {
		return refuse(p, RP_HTTP_R_TRANSFER_ENCODING);
	} else if (ieq(name, nlen, "connection")) {
		connection_tokens(p, val, v.len);
	} else if (ieq(name, nlen, "range")) {
		optional_field(p, &p->req.has_range, &p->req.range, F_RANGE2, v);
	} else if (ieq(name, nlen, "if-none-match")) {
		optional_field(p, &p->req.has_if_none_match, &p->req.if_none_match, F_INM2, v);
	} else if (ieq(name, nlen, "if-range")) {
		/* twice: an empty value, matching nothing (the Range is ignored) */
		p->req.if_range = (struct rp_http_span){ v.off, p->req.has_if_range ? 0 : v.len };
		p->req.has_if_range = true;
	} else if (ieq(name, nlen, "if-modified-since")) {
		optional_field(p, &p->req.has_if_modified_since, &p->req.if_modified_since, F_IMS2,
			       v);
	}
	return RP_HTTP_MORE;
}

static int head_end(struct rp_http_parser *p, uint32_t i)
{
	struct rp_http_request *r = &p->req;

	if (r->version_minor == 1 && !r->has_host)
		return refuse(p, RP_HTTP_R_HOST_MISSING);
	if (p->flags & F_CLOSE)
		r->keep_alive = false;
	else
		r->keep_alive = r->version_minor == 1 || (p->flags & F_KEEP);
	r->head_len = i + 1;
	p->status = RP_HTTP_DONE;
	return RP_HTTP_DONE;
}

/* The request line's bytes before its CR: the 414 limit. */
static bool line_too_long(const struct rp_http_parser *p, uint32_t i)
{
	return i - p->line_start >= RP_HTTP_LINE_MAX;
}

/* One byte, b[i], in state p->state. */
static int step(struct rp_http_parser *p, const char *b, uint32_t i)
{
	unsigned char c = (unsigned char)b[i];
	struct rp_http_request *r = &p->req;

	if (p->state >= S_METHOD && p->state <= S_RL_CR && c != '\r' && line_too_long(p, i))
		return refuse(p, RP_HTTP_R_LINE_TOO_LONG);
	if (p->state >= S_FIELD && i - p->section_start >= RP_HTTP_HEADERS_MAX)
		return refuse(p, RP_HTTP_R_HEADERS_TOO_LARGE);

	switch (p->state) {
	case S_START:
		if (c == '\r') {
			if (p->empty_lines == RP_HTTP_EMPTY_LINES_MAX)
				return refuse(p, RP_HTTP_R_REQUEST_LINE);
			p->state = S_START_LF;
		} else if (c == '\n') {
			return refuse(p, RP_HTTP_R_BARE_LF);
		} else if (is_tchar(c)) {
			p->line_start = i;
			p->state = S_METHOD;
		} else {
			return refuse(p, is_ctl(c) ? RP_HTTP_R_CTL : RP_HTTP_R_REQUEST_LINE);
		}
		return RP_HTTP_MORE;
	case S_START_LF:
		if (c != '\n')
			return refuse(p, RP_HTTP_R_BARE_CR);
		p->empty_lines++;
		p->state = S_START;
		return RP_HTTP_MORE;
	case S_METHOD:
		if (c == ' ') {
			p->state = S_TARGET;
			return method_end(p, b, i);
		}
		if (is_tchar(c))
			return RP_HTTP_MORE;
		if (c == '\n')
			return refuse(p, RP_HTTP_R_BARE_LF);
		return refuse(p, is_ctl(c) && c != '\r' ? RP_HTTP_R_CTL : RP_HTTP_R_REQUEST_LINE);
	case S_TARGET:
		/* origin-form only: no absolute-form, authority or '*' */
		if (c != '/') {
			if (c == '\n')
				return refuse(p, RP_HTTP_R_BARE_LF);
			if (is_ctl(c) && c != '\r')
				return refuse(p, RP_HTTP_R_CTL);
			return refuse(p, c == ' ' || c == '\r' ? RP_HTTP_R_REQUEST_LINE
							       : RP_HTTP_R_TARGET);
		}
		r->target.off = r->path.off = i;
		p->state = S_PATH;
		return RP_HTTP_MORE;
	case S_PATH:
	case S_QUERY:
		if (c == ' ') {
			r->target.len = i - r->target.off;
			if (p->state == S_PATH)
				r->path.len = i - r->path.off;
			else
				r->query.len = i - r->query.off;
			p->ver_at = 0;
			p->state = S_VERSION;
			return RP_HTTP_MORE;
		}
		if (c == '?' && p->state == S_PATH) {
			r->path.len = i - r->path.off;
			r->has_query = true;
			r->query.off = i + 1;
			p->state = S_QUERY;
			return RP_HTTP_MORE;
		}
		if (is_target_byte(c))
			return RP_HTTP_MORE;
		if (c == '\n')
			return refuse(p, RP_HTTP_R_BARE_LF);
		if (c == '\r') /* no version: HTTP/0.9 or a cut line */
			return refuse(p, RP_HTTP_R_REQUEST_LINE);
		return refuse(p, is_ctl(c) ? RP_HTTP_R_CTL : RP_HTTP_R_TARGET);
	case S_VERSION: {
		static const char pre[] = "HTTP/";
		unsigned k = p->ver_at++;
		bool ok;

		if (k < 5)
			ok = c == (unsigned char)pre[k];
		else if (k == 6)
			ok = c == '.';
		else
			ok = c >= '0' && c <= '9';
		if (!ok) {
			if (c == '\n')
				return refuse(p, RP_HTTP_R_BARE_LF);
			return refuse(p,
				      is_ctl(c) && c != '\r' ? RP_HTTP_R_CTL : RP_HTTP_R_VERSION);
		}
		if (k == 7) {
			char major = b[i - 2], minor = (char)c;

			if (major != '1' || (minor != '0' && minor != '1'))
				return refuse(p, RP_HTTP_R_VERSION_UNSUPPORTED);
			r->version_minor = (uint8_t)(minor - '0');
			p->state = S_RL_CR;
		}
		return RP_HTTP_MORE;
	}
	case S_RL_CR:
		if (c == '\r') {
			p->state = S_RL_LF;
			return RP_HTTP_MORE;
		}
		if (c == '\n')
			return refuse(p, RP_HTTP_R_BARE_LF);
		return refuse(p, is_ctl(c) ? RP_HTTP_R_CTL : RP_HTTP_R_VERSION);
	case S_RL_LF:
		if (c != '\n')
			return refuse(p, RP_HTTP_R_BARE_CR);
		p->section_start = i + 1;
		p->state = S_FIELD;
		return RP_HTTP_MORE;
	case S_FIELD:
		if (c == '\r') {
			p->state = S_END_LF;
			return RP_HTTP_MORE;
		}
		if (c == '\n')
			return refuse(p, RP_HTTP_R_BARE_LF);
		/* RFC 9112 5.2: obs-fold is refused with 400; so is whitespace
		 * between the request line and the first field (2.2). */
		if (is_ows(c))
			return refuse(p, RP_HTTP_R_OBS_FOLD);
		if (!is_tchar(c))
			return refuse(p, is_ctl(c) ? RP_HTTP_R_CTL : RP_HTTP_R_FIELD_SYNTAX);
		if (p->fields == RP_HTTP_FIELDS_MAX)
			return refuse(p, RP_HTTP_R_TOO_MANY_FIELDS);
		p->fields++;
		p->line_start = i;
		p->state = S_NAME;
		return RP_HTTP_MORE;
	case S_NAME:
		if (c == ':') {
			p->name_end = i;
			p->state = S_OWS;
			return RP_HTTP_MORE;
		}
		if (is_tchar(c))
			return RP_HTTP_MORE;
		/* RFC 9112 5.1: whitespace before the colon is a 400. */
		if (is_ows(c))
			return refuse(p, RP_HTTP_R_SPACE_BEFORE_COLON);
		if (c == '\n')
			return refuse(p, RP_HTTP_R_BARE_LF);
		return refuse(p, is_ctl(c) && c != '\r' ? RP_HTTP_R_CTL : RP_HTTP_R_FIELD_SYNTAX);
	case S_OWS:
	case S_VALUE:
		if (c == '\r') {
			if (p->state == S_OWS)
				p->value_start = p->value_end = i;
			p->state = S_FIELD_LF;
			return RP_HTTP_MORE;
		}
		if (c == '\n')
			return refuse(p, RP_HTTP_R_BARE_LF);
		if (is_ows(c))
			return RP_HTTP_MORE;
		if (is_ctl(c))
			return refuse(p, RP_HTTP_R_CTL);
		if (p->state == S_OWS) {
			p->value_start = i;
			p->state = S_VALUE;
		}
		p->value_end = i + 1;
		return RP_HTTP_MORE;
	case S_FIELD_LF:
		if (c != '\n')
			return refuse(p, RP_HTTP_R_BARE_CR);
		p->state = S_FIELD;
		return field_end(p, b);
	case S_END_LF:
		if (c != '\n')
			return refuse(p, RP_HTTP_R_BARE_CR);
		return head_end(p, i);
	default:
		return refuse(p, RP_HTTP_R_REQUEST_LINE); /* not reached */
	}
}

int rp_http_parse(struct rp_http_parser *p, const void *buf, size_t len)
{
	const char *b = buf;
	uint32_t i;

	if (!p || (!buf && len) || len < p->scanned)
		return -EINVAL;
	/* The limits decide every head by its byte RP_HTTP_HEAD_MAX + 1 at
	 * the latest (index RP_HTTP_HEAD_MAX), so nothing past it is looked
	 * at and i stays far below 2^32. */
	if (len > RP_HTTP_HEAD_MAX + 1)
		len = RP_HTTP_HEAD_MAX + 1;
	for (i = p->scanned; p->status == RP_HTTP_MORE && i < len; i++)
		step(p, b, i);
	p->scanned = i;
	return p->status;
}

/* ---- the path --------------------------------------------------------- */

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = lower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * The segment out[seg, *o) just ended (at a '/' when @slash, else at the
 * path's end). out[seg - 1] is always '/'. Returns 0, -EPERM or -ENOSPC.
 */
static int segment_end(char *out, size_t cap, size_t *o, size_t *seg, bool slash)
{
	size_t n = *o - *seg;
	const char *s = out + *seg;

	if (n == 1 && s[0] == '.') {
		*o = *seg;
	} else if (n == 2 && s[0] == '.' && s[1] == '.') {
		if (*seg == 1)
			return -EPERM; /* above the root */
		*o = *seg - 1;	       /* the '/' that ended the segment before */
		while (out[*o - 1] != '/')
			(*o)--;
		*seg = *o;
	} else if (n && slash) {
		if (cap - *o < 2) /* the '/' and a NUL after it */
			return -ENOSPC;
		out[(*o)++] = '/';
		*seg = *o;
	}
	/* an empty segment (a '/' after a '/') adds nothing: "//" is "/" */
	return 0;
}

ssize_t rp_http_path_decode(const char *target, size_t len, char *out, size_t cap,
			    size_t *query_off)
{
	const char *q;
	size_t plen, o = 0, seg = 1;
	int rc;

	if (!target || !out)
		return -EINVAL;
	q = memchr(target, '?', len);
	plen = q ? (size_t)(q - target) : len;
	if (query_off)
		*query_off = plen;
	if (plen == 0 || target[0] != '/')
		return -EINVAL;
	if (cap < 2)
		return -ENOSPC;
	out[o++] = '/';
	for (size_t i = 1; i < plen; i++) {
		unsigned char c = (unsigned char)target[i];

		if (c == '/') {
			rc = segment_end(out, cap, &o, &seg, true);
			if (rc)
				return rc;
			continue;
		}
		if (c == '%') {
			int hi, lo;

			if (plen - i < 3)
				return -EINVAL;
			hi = hexval((unsigned char)target[i + 1]);
			lo = hexval((unsigned char)target[i + 2]);
			if (hi < 0 || lo < 0)
				return -EINVAL;
			c = (unsigned char)(hi << 4 | lo);
			if (c == '/')
				return -EILSEQ;
			i += 2;
		}
		if (c == '\0')
			return -EILSEQ;
		/* o + this byte + a '/' or the NUL after it */
		if (cap - o < 2)
			return -ENOSPC;
		out[o++] = (char)c;
	}
	rc = segment_end(out, cap, &o, &seg, false);
	if (rc)
		return rc;
	out[o] = '\0';
	return (ssize_t)o;
}

/* ---- Range ------------------------------------------------------------ */

/* A decimal number at s[*i...]: its digits without leading zeros, for
 * comparing numbers of any length; value saturates at UINT64_MAX. */
struct num {
	const char *d; /* first significant digit */
	size_t nd;     /* significant digits (0 for zero) */
	uint64_t v;
	bool big; /* above UINT64_MAX */
};

static bool read_num(const char *s, size_t len, size_t *i, struct num *n)
{
	size_t start = *i;

	memset(n, 0, sizeof(*n));
	while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
		unsigned d = (unsigned)(s[*i] - '0');

		if (!n->nd && d == 0) {
			(*i)++;
			continue;
		}
		if (!n->nd)
			n->d = s + *i;
		n->nd++;
		if (!n->big) {
			if (n->v > (UINT64_MAX - d) / 10)
				n->big = true;
			else
				n->v = n->v * 10 + d;
		}
		(*i)++;
	}
	if (n->big)
		n->v = UINT64_MAX;
	return *i > start;
}

/* a < b, exactly, however long */
static bool num_less(const struct num *a, const struct num *b)
{
	if (!a->big && !b->big)
		return a->v < b->v;
	if (a->nd != b->nd)
		return a->nd < b->nd;
	return memcmp(a->d, b->d, a->nd) < 0;
}

int rp_http_range_parse(const char *value, size_t len, uint64_t size, uint64_t *first,
			uint64_t *last)
{
	struct num a, b = {0};
	size_t i = 6;

	if (!first || !last || (!value && len))
		return -EINVAL;
	/* range-unit is case-insensitive (RFC 9110 14.1); no whitespace. */
	if (len < 6 || !ieq(value, 5, "bytes") || value[5] != '=')
		return RP_HTTP_RANGE_IGNORE;
	/* More than one range, or empty list elements: a ',' can be in no
	 * single range-spec, so the syntax below ignores them. */
	if (i < len && value[i] == '-') {
		i++;
		if (!read_num(value, len, &i, &b) || i != len)
			return RP_HTTP_RANGE_IGNORE;
		if (b.v == 0)
			return RP_HTTP_RANGE_UNSATISFIABLE; /* "-0" */
		if (size == 0)
			return RP_HTTP_RANGE_IGNORE; /* satisfiable, yet no byte to send */
		*first = b.v >= size ? 0 : size - b.v;
		*last = size - 1;
		return RP_HTTP_RANGE_OK;
	}
	if (!read_num(value, len, &i, &a) || i == len || value[i] != '-')
		return RP_HTTP_RANGE_IGNORE;
	i++;
	if (i < len) {
		if (!read_num(value, len, &i, &b) || i != len || num_less(&b, &a))
			return RP_HTTP_RANGE_IGNORE;
	} else {
		b.v = UINT64_MAX;
	}
	if (a.big || a.v >= size)
		return RP_HTTP_RANGE_UNSATISFIABLE;
	*first = a.v;
	*last = b.v >= size ? size - 1 : b.v;
	return RP_HTTP_RANGE_OK;
}

/* ---- conditionals ----------------------------------------------------- */

/* etagc (RFC 9110 8.8.3): 0x21, 0x23-0x7e, obs-text */
static bool is_etagc(unsigned char c)
{
	return c == 0x21 || (c >= 0x23 && c != 0x7f);
}

/* An entity-tag at s[*i...]: its opaque tag (quotes included) in *o, *on. */
static bool read_etag(const char *s, size_t n, size_t *i, const char **o, size_t *on)
{
	size_t j = *i;

	if (n - j >= 2 && s[j] == 'W' && s[j + 1] == '/')
		j += 2;
	if (j >= n || s[j] != '"')
		return false;
	*o = s + j;
	j++;
	while (j < n && is_etagc((unsigned char)s[j]))
		j++;
	if (j >= n || s[j] != '"')
		return false;
	j++;
	*on = (size_t)(s + j - *o);
	*i = j;
	return true;
}

int rp_http_etag_match(const char *inm, size_t inm_len, const char *etag, size_t etag_len)
{
	const char *mine, *t;
	size_t mn, tn, i = 0;
	bool match = false;

	if ((!inm && inm_len) || (!etag && etag_len))
		return -EINVAL;
	if (inm_len == 1 && inm[0] == '*')
		return 1;
	if (!read_etag(etag, etag_len, &i, &mine, &mn) || i != etag_len)
		return 0;
	/* 1#entity-tag, empty elements allowed (RFC 9110 5.6.1.2) */
	i = 0;
	while (i < inm_len) {
		while (i < inm_len && (is_ows((unsigned char)inm[i]) || inm[i] == ','))
			i++;
		if (i == inm_len)
			break;
		if (!read_etag(inm, inm_len, &i, &t, &tn))
			return 0; /* not a valid list: as if absent */
		if (tn == mn && !memcmp(t, mine, mn))
			match = true;
		while (i < inm_len && is_ows((unsigned char)inm[i]))
			i++;
		if (i < inm_len && inm[i] != ',')
			return 0;
	}
	return match;
}

static const char wkday[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const weekday_long[7] = {"Sunday",	"Monday", "Tuesday", "Wednesday",
					    "Thursday", "Friday", "Saturday"};
static const char month[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
				  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* n digits at s as a number; -1 if one is not a digit */
static int digits(const char *s, unsigned n)
{
	int v = 0;

	for (unsigned k = 0; k < n; k++) {
		if (s[k] < '0' || s[k] > '9')
			return -1;
		v = v * 10 + (s[k] - '0');
	}
	return v;
}

static int month_of(const char *s)
{
	for (int m = 0; m < 12; m++)
		if (!memcmp(s, month[m], 3))
			return m + 1;
	return -1;
}

/* "HH:MM:SS" */
static bool read_time(const char *s, int *h, int *mi, int *se)
{
	if (s[2] != ':' || s[5] != ':')
		return false;
	*h = digits(s, 2);
	*mi = digits(s + 3, 2);
	*se = digits(s + 6, 2);
	return *h >= 0 && *h <= 23 && *mi >= 0 && *mi <= 59 && *se >= 0 && *se <= 60;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);

/*
 * RFC 9110 5.6.7: a two-digit year is read as the latest year with those
 * digits whose timestamp (@mo, @d, @tod: seconds into the day) is not more
 * than 50 years after @now, so a date 50 years and a second ahead is a
 * past one. The whole timestamp is compared, not the year alone: on
 * 2026-11-27 "01-Dec-76" is 1976, "27-Nov-76 00:00:00" is 2076.
 */
static int rfc850_year(int yy, int mo, int d, int tod, time_t now)
{
	int64_t days = (int64_t)now / 86400, secs = (int64_t)now % 86400, ny, key, lim;
	unsigned nm, nd;
	int y;

	if (secs < 0) {
		secs += 86400;
		days--;
	}
	civil_from_days(days, &ny, &nm, &nd);
	ny += 50; /* the limit: (ny, nm, nd, secs) */
	y = (int)(ny - ny % 100) + yy;
	/* (month, day, second of the day, 23:59:60 included) as one number */
	key = ((int64_t)mo * 32 + d) * 86401 + tod;
	lim = ((int64_t)nm * 32 + nd) * 86401 + secs;
	if (y > ny || (y == ny && key > lim))
		y -= 100;
	/* 29-Feb of a year that has none (2100): the latest one that has it,
	 * so "29-Feb-00" stays 2000 from 2050-03-01 on (at most 3 steps). Only
	 * where a year ending in @yy can be a leap year (yy % 4 == 0): none of
	 * "29-Feb-94"'s centuries is, and stepping back would run y below
	 * INT_MIN (fuzz_http found it); the caller refuses that date. */
	while (mo == 2 && d == 29 && yy % 4 == 0 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		y -= 100;
	return y;
}

int rp_http_date_parse(const char *s, size_t len, time_t *t)
{
	return rp_http_date_parse_at_(s, len, t, NULL);
}

int rp_http_date_parse_at_(const char *s, size_t len, time_t *t, const time_t *now)
{
	static const unsigned char mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, mo, d, h, mi, se;
	size_t wl = 0;

	if (!s || !t)
		return -EINVAL;
	while (wl < len && wl < 10 &&
	       ((s[wl] >= 'a' && s[wl] <= 'z') || (s[wl] >= 'A' && s[wl] <= 'Z')))
		wl++;
	if (wl == 3 && len == 29 && s[3] == ',') {
		/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
		if (s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
		    memcmp(s + 25, " GMT", 4))
			return -EINVAL;
		d = digits(s + 5, 2);
		mo = month_of(s + 8);
		y = digits(s + 12, 4);
		if (!read_time(s + 17, &h, &mi, &se))
			return -EINVAL;
	} else if (wl == 3 && len == 24 && s[3] == ' ') {
		/* asctime: "Sun Nov  6 08:49:37 1994" */
		if (s[7] != ' ' || s[10] != ' ' || s[19] != ' ')
			return -EINVAL;
		mo = month_of(s + 4);
		d = s[8] == ' ' ? digits(s + 9, 1) : digits(s + 8, 2);
		y = digits(s + 20, 4);
		if (!read_time(s + 11, &h, &mi, &se))
			return -EINVAL;
	} else if (wl >= 6 && len == wl + 24 && s[wl] == ',') {
		/* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" */
		const char *r = s + wl;
		bool named = false;

		for (int k = 0; k < 7; k++)
			if (strlen(weekday_long[k]) == wl && !memcmp(s, weekday_long[k], wl))
				named = true;
		if (!named || r[1] != ' ' || r[4] != '-' || r[8] != '-' || r[11] != ' ' ||
		    memcmp(r + 20, " GMT", 4))
			return -EINVAL;
		d = digits(r + 2, 2);
		mo = month_of(r + 5);
		y = digits(r + 9, 2);
		if (!read_time(r + 12, &h, &mi, &se))
			return -EINVAL;
		if (y >= 0) {
			/* the clock is read only for this rare form */
			time_t clk = now ? *now : time(NULL);

			y = rfc850_year(y, mo, d, h * 3600 + mi * 60 + se, clk);
		}
	} else {
		return -EINVAL;
	}
	if (wl == 3) {
		bool named = false;

		for (int k = 0; k < 7; k++)
			if (!memcmp(s, wkday[k], 3))
				named = true;
		if (!named)
			return -EINVAL;
	}
	if (y < 1 || mo < 1 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !is_leap(y)))
		return -EINVAL;
	*t = (time_t)(days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 +
		      se);
	return 0;
}

/* The civil date of @days since 1970-01-01 (Hinnant's inverse). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static void put2(char *p, unsigned v)
{
	p[0] = (char)('0' + v / 10 % 10);
	p[1] = (char)('0' + v % 10);
}

int rp_http_date_format(char out[RP_HTTP_DATE_LEN + 1], time_t t)
{
	int64_t days, secs, y;
	unsigned mo, d;

	if (!out)
		return -EINVAL;
	/* floor division: times before 1970 are negative */
	days = (int64_t)t / 86400;
	secs = (int64_t)t % 86400;
	if (secs < 0) {
		secs += 86400;
		days--;
	}
	civil_from_days(days, &y, &mo, &d);
	if (y < 1 || y > 9999)
		return -EINVAL;
	/* 1970-01-01 was a Thursday */
	memcpy(out, wkday[((days % 7) + 11) % 7], 3);
	out[3] = ',';
	out[4] = ' ';
	put2(out + 5, d);
	out[7] = ' ';
	memcpy(out + 8, month[mo - 1], 3);
	out[11] = ' ';
	put2(out + 12, (unsigned)(y / 100));
	put2(out + 14, (unsigned)(y % 100));
	out[16] = ' ';
	put2(out + 17, (unsigned)(secs / 3600));
	out[19] = ':';
	put2(out + 20, (unsigned)(secs / 60 % 60));
	out[22] = ':';
	put2(out + 23, (unsigned)(secs % 60));
	memcpy(out + 25, " GMT", 5);
	return RP_HTTP_DATE_LEN;
}

int rp_http_if_range(const char *v, size_t len, const char *etag, size_t etag_len)
{
	const char *mine, *t;
	size_t mn, tn, i = 0, j = 0;

	if ((!v && len) || (!etag && etag_len))
		return -EINVAL;
	if (!len)
		return 0;
	/* one entity tag, both strong (no "W/"), the same opaque tag; a date
	 * (or anything else) is never a match: see http.h */
	if (v[0] != '"' || !read_etag(v, len, &i, &t, &tn) || i != len || t != v ||
	    !read_etag(etag, etag_len, &j, &mine, &mn) || j != etag_len || mine != etag)
		return 0;
	return tn == mn && !memcmp(t, mine, mn);
}

int rp_http_not_modified_since(const char *ims, size_t len, time_t mtime)
{
	time_t since;

	if (!ims && len)
		return -EINVAL;
	if (!ims || rp_http_date_parse(ims, len, &since))
		return 0;
	return mtime <= since;
}

/* ---- the response ----------------------------------------------------- */

static size_t put_hex(char *p, uint64_t v)
{
	char tmp[16];
	size_t n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	for (size_t k = 0; k < n; k++)
		p[k] = tmp[n - 1 - k];
	return n;
}

int rp_http_etag_make(char *buf, size_t cap, uint64_t size, int64_t mtime_sec, long mtime_nsec)
{
	char tmp[RP_HTTP_ETAG_MAX];
	size_t n = 0;

	if (!buf || mtime_nsec < 0 || mtime_nsec > 999999999)
		return -EINVAL;
	tmp[n++] = '"';
	n += put_hex(tmp + n, (uint64_t)mtime_sec); /* two's complement before 1970 */
	tmp[n++] = '.';
	n += put_hex(tmp + n, (uint64_t)mtime_nsec);
	tmp[n++] = '-';
	n += put_hex(tmp + n, size);
	tmp[n++] = '"';
	if (cap < n + 1)
		return -ENOSPC;
	memcpy(buf, tmp, n);
	buf[n] = '\0';
	return (int)n;
}

const char *rp_http_mime_type(const char *path, size_t len)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{"html", "text/html; charset=utf-8"},
		{"htm", "text/html; charset=utf-8"},
		{"css", "text/css; charset=utf-8"},
		{"js", "text/javascript; charset=utf-8"}, /* RFC 9239 */
		{"mjs", "text/javascript; charset=utf-8"},
		{"json", "application/json"},
		{"txt", "text/plain; charset=utf-8"},
		{"png", "image/png"},
		{"jpg", "image/jpeg"},
		{"jpeg", "image/jpeg"},
		{"gif", "image/gif"},
		{"svg", "image/svg+xml"},
		{"ico", "image/x-icon"},
		{"webp", "image/webp"},
		{"wasm", "application/wasm"},
		{"pdf", "application/pdf"},
		{"xml", "application/xml"},
		{"mp4", "video/mp4"},
		{"woff2", "font/woff2"},
	};
	size_t i = len;

	if (!path)
		return "application/octet-stream";
	/* the last '.' of the last segment; a leading '.' names no extension */
	while (i > 0 && path[i - 1] != '.' && path[i - 1] != '/')
		i--;
	if (i < 2 || path[i - 1] != '.' || path[i - 2] == '/')
		return "application/octet-stream";
	for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); k++)
		if (ieq(path + i, len - i, types[k].ext))
			return types[k].type;
	return "application/octet-stream";
}

const char *rp_http_status_text(unsigned status)
{
	switch (status) {
	case 200:
		return "OK";
	case 204:
		return "No Content";
	case 206:
		return "Partial Content";
	case 301:
		return "Moved Permanently";
	case 304:
		return "Not Modified";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 412:
		return "Precondition Failed";
	case 414:
		return "URI Too Long";
	case 416:
		return "Range Not Satisfiable";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "";
	}
}

/* An appender that stops writing at cap but keeps counting. */
struct out {
	char *b;
	size_t cap, n;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->n < o->cap)
		memcpy(o->b + o->n, s, o->cap - o->n < n ? o->cap - o->n : n);
	o->n += n;
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void put_u64(struct out *o, uint64_t v)
{
	char tmp[20];
	size_t n = 0, k;
	char rev[20];

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (k = 0; k < n; k++)
		rev[k] = tmp[n - 1 - k];
	put(o, rev, n);
}

static bool field_value_ok(const char *s)
{
	for (; *s; s++)
		if (is_ctl((unsigned char)*s) && *s != '\t')
			return false;
	return true;
}

static void put_field(struct out *o, const char *name, const char *value)
{
	puts_(o, name);
	puts_(o, ": ");
	puts_(o, value);
	puts_(o, "\r\n");
}

ssize_t rp_http_response_write(char *buf, size_t cap, const struct rp_http_response *r)
{
	const char *strs[4];
	char date[RP_HTTP_DATE_LEN + 1], lm[RP_HTTP_DATE_LEN + 1];
	struct out o = {buf, cap, 0};
	const char *text;

	if (!buf || !r || r->status < 100 || r->status > 999)
		return -EINVAL;
	strs[0] = r->server;
	strs[1] = r->content_type;
	strs[2] = r->etag;
	strs[3] = r->allow;
	for (int k = 0; k < 4; k++)
		if (strs[k] && !field_value_ok(strs[k]))
			return -EINVAL;
	if (r->content_range == RP_HTTP_CONTENT_RANGE_BYTES &&
	    (r->range_last < r->range_first || r->range_last >= r->range_size))
		return -EINVAL;
	if ((unsigned)r->content_range > RP_HTTP_CONTENT_RANGE_UNSATISFIED)
		return -EINVAL;
	if (rp_http_date_format(date, r->date) < 0)
		return -EINVAL;
	if (r->has_last_modified && rp_http_date_format(lm, r->last_modified) < 0)
		return -EINVAL;

	puts_(&o, "HTTP/1.1 ");
	put_u64(&o, r->status);
	puts_(&o, " ");
	text = rp_http_status_text(r->status);
	puts_(&o, text);
	puts_(&o, "\r\n");
	put_field(&o, "Date", date);
	if (r->server)
		put_field(&o, "Server", r->server);
	if (r->content_type)
		put_field(&o, "Content-Type", r->content_type);
	if (r->has_content_length) {
		puts_(&o, "Content-Length: ");
		put_u64(&o, r->content_length);
		puts_(&o, "\r\n");
	}
	if (r->content_range == RP_HTTP_CONTENT_RANGE_BYTES) {
		puts_(&o, "Content-Range: bytes ");
		put_u64(&o, r->range_first);
		puts_(&o, "-");
		put_u64(&o, r->range_last);
		puts_(&o, "/");
		put_u64(&o, r->range_size);
		puts_(&o, "\r\n");
	} else if (r->content_range == RP_HTTP_CONTENT_RANGE_UNSATISFIED) {
		puts_(&o, "Content-Range: bytes */");
		put_u64(&o, r->range_size);
		puts_(&o, "\r\n");
	}
	if (r->has_last_modified)
		put_field(&o, "Last-Modified", lm);
	if (r->etag)
		put_field(&o, "ETag", r->etag);
	if (r->accept_ranges)
		put_field(&o, "Accept-Ranges", "bytes");
	if (r->allow)
		put_field(&o, "Allow", r->allow);
	put_field(&o, "Connection", r->keep_alive ? "keep-alive" : "close");
	puts_(&o, "\r\n");
	if (o.n > cap)
		return -ENOSPC;
	return (ssize_t)o.n;
}
