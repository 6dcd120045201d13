/* SPDX-License-Identifier: MIT */
/*
 * ringplane http: the HTTP/1.1 request side of a static file server
 * (`ringplane serve`), pure: no allocation, no syscalls, no state outside
 * the arguments. docs/http.md lists every rule and limit.
 *
 * Request heads. A struct rp_http_parser reads one request head
 * (request line, header fields, the empty line) from a connection's buffer
 * as it fills. The parser keeps no copy and no pointer: each call is given
 * the buffer from the request's first byte with everything received so
 * far, and the result is offsets (struct rp_http_span) into that buffer.
 * So the bytes already given must stay in place, unchanged, at the same
 * offsets from the request's start, until the result has been used (the
 * buffer may move as a whole, e.g. compacted to the front, between calls).
 * It never reads a byte past the head: with pipelined requests in the
 * buffer, req.head_len is exactly where the next one starts. The result
 * depends on the bytes only, never on how they arrived.
 *
 * Only GET and HEAD without a body are taken. Every refused head gives an
 * HTTP status to answer (400, 405, 414, 431, 501, 505) and a reason; the
 * connection is then closed (after a refused head the stream cannot be
 * trusted to be in step).
 *
 * Helpers for the response: the target's path decoded and normalized
 * (rp_http_path_decode), a Range value resolved against a file size
 * (rp_http_range_parse), If-None-Match, If-Modified-Since and If-Range
 * evaluated (rp_http_etag_match, rp_http_not_modified_since,
 * rp_http_if_range), a strong ETag made from
 * a file's size and mtime (rp_http_etag_make), Content-Type by extension
 * (rp_http_mime_type) and the response head written (rp_http_response_write).
 *
 * Threads: none of these functions keeps state outside its arguments; a
 * parser may move between threads but is used by one at a time.
 */
#ifndef RINGPLANE_HTTP_H
#define RINGPLANE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The longest request line, CRLF not counted: longer is 414. */
#define RP_HTTP_LINE_MAX 8192
/* The header section, every field line with its CRLF and the final CRLF:
 * larger is 431. */
#define RP_HTTP_HEADERS_MAX 16384
/* Header fields in one request: more is 431. */
#define RP_HTTP_FIELDS_MAX 100
/* Empty lines (CRLF) ignored before a request line (RFC 9112 2.2). */
#define RP_HTTP_EMPTY_LINES_MAX 2
/* The longest head the parser accepts: a buffer this large always holds one. */
#define RP_HTTP_HEAD_MAX (2 * RP_HTTP_EMPTY_LINES_MAX + RP_HTTP_LINE_MAX + 2 + RP_HTTP_HEADERS_MAX)
/* An IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") without its NUL. */
#define RP_HTTP_DATE_LEN 29
/* Room for rp_http_etag_make()'s tag and its NUL. */
#define RP_HTTP_ETAG_MAX 48

enum rp_http_status {
	RP_HTTP_MORE = 0,  /* a valid beginning: call again with more bytes */
	RP_HTTP_DONE = 1,  /* a whole valid head: parser.req */
	RP_HTTP_ERROR = 2, /* refused: answer parser.http_status, then close */
};

/* Why a head was refused; rp_http_reason_name() gives each a name. */
enum rp_http_reason {
	RP_HTTP_R_NONE = 0,	       /* not refused */
	RP_HTTP_R_REQUEST_LINE,	       /* 400: not method SP target SP version CRLF,
					  a method byte not a token character, or
					  more than RP_HTTP_EMPTY_LINES_MAX empty
					  lines before it */
	RP_HTTP_R_TARGET,	       /* 400: target not origin-form ("/..."), or
					  a '#' in it */
	RP_HTTP_R_VERSION,	       /* 400: not "HTTP/" DIGIT "." DIGIT */
	RP_HTTP_R_BARE_CR,	       /* 400: CR not followed by LF */
	RP_HTTP_R_BARE_LF,	       /* 400: LF without CR before it */
	RP_HTTP_R_CTL,		       /* 400: a control character (HTAB allowed
					  only inside field values) */
	RP_HTTP_R_FIELD_SYNTAX,	       /* 400: a field name with a non-token byte,
					  empty, or a line without ':' */
	RP_HTTP_R_SPACE_BEFORE_COLON,  /* 400: SP or HTAB between name and ':' */
	RP_HTTP_R_OBS_FOLD,	       /* 400: a field line starting with SP/HTAB */
	RP_HTTP_R_HOST_MISSING,	       /* 400: HTTP/1.1 without Host */
	RP_HTTP_R_HOST_INVALID,	       /* 400: Host twice, or not host[:port] */
	RP_HTTP_R_CONTENT_LENGTH,      /* 400: Content-Length twice or not digits */
	RP_HTTP_R_BODY,		       /* 400: Content-Length above 0 */
	RP_HTTP_R_TRANSFER_ENCODING,   /* 400: Transfer-Encoding (no bodies) */
	RP_HTTP_R_METHOD_NOT_ALLOWED,  /* 405: a method of RFC 9110 or PATCH */
	RP_HTTP_R_METHOD_UNKNOWN,      /* 501: any other method token */
	RP_HTTP_R_LINE_TOO_LONG,       /* 414: request line over RP_HTTP_LINE_MAX */
	RP_HTTP_R_HEADERS_TOO_LARGE,   /* 431: section over RP_HTTP_HEADERS_MAX */
	RP_HTTP_R_TOO_MANY_FIELDS,     /* 431: over RP_HTTP_FIELDS_MAX fields */
	RP_HTTP_R_VERSION_UNSUPPORTED, /* 505: a version other than 1.0 and 1.1 */
	RP_HTTP_R_COUNT
};

enum rp_http_method {
	RP_HTTP_METHOD_NONE = 0,
	RP_HTTP_METHOD_GET,
	RP_HTTP_METHOD_HEAD,
};

/* Bytes [off, off + len) of the buffer given to rp_http_parse(). */
struct rp_http_span {
	uint32_t off, len;
};

/* A whole head as read: valid once rp_http_parse() returned RP_HTTP_DONE. */
struct rp_http_request {
	uint32_t head_len; /* bytes of the head, final CRLF included */
	enum rp_http_method method;
	uint8_t version_minor; /* 0 or 1 (HTTP/1.0 or HTTP/1.1) */
	bool keep_alive;       /* 1.1: unless "close"; 1.0: "keep-alive" and no "close" */
	bool has_query;	       /* a '?' was in the target (query may be empty) */
	bool has_host, has_range, has_if_none_match, has_if_modified_since, has_if_range;
	struct rp_http_span target; /* raw, path and query */
	struct rp_http_span path;   /* raw: target up to '?' (not decoded) */
	struct rp_http_span query;  /* raw: after '?' */
	/* Field values, raw, without leading and trailing SP/HTAB. Range,
	 * If-None-Match and If-Modified-Since received more than once are
	 * dropped (has_* false): without them the answer is a full 200,
	 * which is always a correct one. */
	struct rp_http_span host, range, if_none_match, if_modified_since;
	/* If-Range, for rp_http_if_range. Received more than once it stays
	 * (has_if_range true) with an empty value, which matches nothing: the
	 * Range is then ignored (a 200), never applied unconditionally. */
	struct rp_http_span if_range;
};

/*
 * A parser. Set it up with rp_http_parser_init(); the fields above
 * "private" are for reading, the rest belongs to the parser. No buffer
 * inside: 124 bytes on x86-64.
 */
struct rp_http_parser {
	enum rp_http_status status;
	enum rp_http_reason reason; /* RP_HTTP_R_NONE unless refused */
	uint16_t http_status;	    /* RP_HTTP_ERROR: the status to answer; else 0 */
	uint32_t scanned;	    /* bytes read so far: all given (MORE), the head
				       (DONE), through the byte that decided (ERROR) */
	struct rp_http_request req;
	/* private */
	uint8_t state, empty_lines, ver_at, flags;
	uint16_t fields;
	uint32_t line_start, section_start, name_end, value_start, value_end;
};

/* rp_http_parser_init - make @p ready for a new request's first byte. */
void rp_http_parser_init(struct rp_http_parser *p);

/*
 * rp_http_parse - read on in the head that starts at @buf, which now holds
 * @len bytes of the connection from the request's first byte on (more may
 * follow: pipelined requests). The first @p->scanned bytes must be those
 * given before, at the same offsets (@buf may have moved); @len must not
 * be less than @p->scanned. Steps through bytes [@p->scanned, @len),
 * reading back only within the line being read (the method at its end, a
 * field's name and value at its LF); stops at the head's end and never
 * reads past it. Returns RP_HTTP_MORE (every byte read; call again with
 * more), RP_HTTP_DONE (@p->req; the next
 * request starts at @buf + @p->req.head_len) or RP_HTTP_ERROR
 * (@p->http_status, @p->reason), and sets @p->status to it. DONE and ERROR
 * are final: later calls read nothing and return the same. Returns -EINVAL
 * when @p is NULL, @buf NULL with @len > 0, or @len < @p->scanned.
 */
int rp_http_parse(struct rp_http_parser *p, const void *buf, size_t len);

/*
 * rp_http_reason_name - a short stable name for @r ("bare_lf",
 * "host_missing"...) for counters and logs; "invalid" for a value out of
 * range. Static storage.
 */
const char *rp_http_reason_name(enum rp_http_reason r);

/*
 * rp_http_span_ptr - the first byte of @s in @buf (the buffer the span's
 * request was parsed from). Not NUL-terminated: use @s.len.
 */
static inline const char *rp_http_span_ptr(const void *buf, struct rp_http_span s)
{
	return (const char *)buf + s.off;
}

/*
 * rp_http_path_decode - percent-decode the path of the raw request target
 * @target (@len bytes, the path and any "?query"; e.g. the request's
 * target span) once into @out, and normalize it: "." segments removed, ".."
 * segments resolved against the segment before them, runs of '/' made one.
 * The result starts with '/', never holds a NUL, a "." or ".." segment or
 * "//", keeps a trailing '/', and is NUL-terminated in @out. Nothing is
 * decoded twice ("%252e" is "%2e", a name). *@query_off (may be NULL) is
 * set to the index in @target of the '?' that starts the query, or @len
 * when there is none. Returns the decoded length (NUL not counted), or
 * -EINVAL (@target or @out NULL; the path not starting with '/'; '%' not
 * followed by two hex digits), -EILSEQ (a NUL, raw or "%00"; an encoded
 * '/', "%2F" or "%2f"), -EPERM (a ".." segment would climb above the root),
 * -ENOSPC (@cap too small for the path and its NUL; @len + 1 is always
 * enough). On error @out holds nothing meaningful.
 */
ssize_t rp_http_path_decode(const char *target, size_t len, char *out, size_t cap,
			    size_t *query_off);

enum rp_http_range_result {
	RP_HTTP_RANGE_IGNORE = 0,	 /* serve the whole file with 200 */
	RP_HTTP_RANGE_OK = 1,		 /* 206 with bytes *first..*last */
	RP_HTTP_RANGE_UNSATISFIABLE = 2, /* 416 with "Content-Range: bytes *\/size" */
};

/*
 * rp_http_range_parse - resolve the Range field value @value (@len bytes,
 * as the parser's range span gives it) against a file of @size bytes. One
 * byte range of unit "bytes" (case-insensitive): "bytes=a-b", "bytes=a-",
 * "bytes=-n". Returns RP_HTTP_RANGE_OK with *@first and *@last (inclusive;
 * b clamped to @size - 1, a suffix longer than the file is the whole
 * file), RP_HTTP_RANGE_UNSATISFIABLE (a at or past the end, "-0", any
 * "a-..." on an empty file), or RP_HTTP_RANGE_IGNORE (another unit, more
 * than one range, a syntax error, b < a, a suffix on an empty file).
 * Numbers of any length are compared exactly, never wrapped. *@first and
 * *@last are written only for RP_HTTP_RANGE_OK. Returns -EINVAL when
 * @first or @last is NULL, or @value NULL with @len > 0.
 */
int rp_http_range_parse(const char *value, size_t len, uint64_t size, uint64_t *first,
			uint64_t *last);

/*
 * rp_http_etag_match - whether the If-None-Match value @inm (@inm_len
 * bytes) matches the entity tag @etag (@etag_len bytes, quotes and any
 * "W/" included, as rp_http_etag_make writes it) by the weak comparison
 * (RFC 9110 8.8.3.2: "W/" ignored on both sides): "*", or a comma list of
 * entity tags of which one has the same opaque tag. Returns 1 (a match:
 * answer 304 to GET and HEAD), 0 (none, or a value that is not a valid
 * list: answer normally), or -EINVAL (@inm or @etag NULL with a length).
 */
int rp_http_etag_match(const char *inm, size_t inm_len, const char *etag, size_t etag_len);

/*
 * rp_http_date_parse - read an HTTP-date (@len bytes at @s): IMF-fixdate
 * "Sun, 06 Nov 1994 08:49:37 GMT", and the obsolete forms a recipient must
 * take, RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT" (a two-digit year is the
 * latest one whose timestamp is not more than 50 years from now, RFC 9110
 * 5.6.7) and
 * asctime "Sun Nov  6 08:49:37 1994". The
 * weekday is not checked against the date. Returns 0 with *@t set, or
 * -EINVAL (not one of the forms, a field out of range, a NULL argument).
 */
int rp_http_date_parse(const char *s, size_t len, time_t *t);

/*
 * rp_http_date_format - write @t as an IMF-fixdate into @out: exactly
 * RP_HTTP_DATE_LEN bytes and a NUL. Returns RP_HTTP_DATE_LEN, or -EINVAL
 * (@out NULL, or a year outside 1..9999).
 */
int rp_http_date_format(char out[RP_HTTP_DATE_LEN + 1], time_t t);

/*
 * rp_http_if_range - evaluate If-Range (@v, @len bytes; RFC 9110 13.1.5)
 * for a file whose entity tag is @etag (@etag_len bytes, quotes included,
 * as rp_http_etag_make writes it). Returns 1 when the Range is to be
 * applied: @v is an entity tag equal to @etag by the strong comparison
 * (RFC 9110 8.8.3.2: neither is weak, the opaque tags are the same bytes).
 * Returns 0 otherwise: a weak or other tag, anything else, and every
 * HTTP-date: a date is a strong validator only where the server knows the
 * file did not change twice within that second (RFC 9110 8.8.2.2), which a
 * file's mtime cannot tell (two replacements within one second carry the
 * same Last-Modified), and a client that has an entity tag must not send a
 * date (13.1.5). Then ignore the Range and answer 200 with the whole file.
 * -EINVAL for @v or @etag NULL with a length. Evaluate it only when the
 * request has a Range.
 */
int rp_http_if_range(const char *v, size_t len, const char *etag, size_t etag_len);

/*
 * rp_http_not_modified_since - evaluate If-Modified-Since (@ims, @len
 * bytes) against a file last modified at @mtime (seconds): 1 when the
 * value is a valid HTTP-date and @mtime is not later than it (answer 304),
 * else 0 (answer normally; an invalid date is ignored as RFC 9110 13.1.3
 * says). Use it only for GET or HEAD without If-None-Match (which then
 * decides alone). Returns -EINVAL for @ims NULL with @len > 0.
 */
int rp_http_not_modified_since(const char *ims, size_t len, time_t mtime);

/*
 * rp_http_etag_make - write the strong entity tag of a file of @size bytes
 * last modified at @mtime_sec + @mtime_nsec: "\"SEC.NSEC-SIZE\"" in
 * lower-case hex, with a NUL, into @buf. Returns its length (NUL not
 * counted), or -EINVAL (@buf NULL, @mtime_nsec not in 0..999999999),
 * -ENOSPC (@cap below the length + 1; RP_HTTP_ETAG_MAX is always enough).
 */
int rp_http_etag_make(char *buf, size_t cap, uint64_t size, int64_t mtime_sec, long mtime_nsec);

/*
 * rp_http_mime_type - the Content-Type for the file name or path @path
 * (@len bytes) by its extension, case-insensitive: html/htm, css, js/mjs,
 * json, txt, png, jpg/jpeg, gif, svg, ico, webp, wasm, pdf, xml, mp4,
 * woff2; "application/octet-stream" for any other, none, or @path NULL.
 * Text types carry "; charset=utf-8". Static storage.
 */
const char *rp_http_mime_type(const char *path, size_t len);

/*
 * rp_http_status_text - the reason phrase for @status ("Not Found"), "" for
 * one this module does not name (the phrase is optional on the wire).
 * Static storage.
 */
const char *rp_http_status_text(unsigned status);

/* What struct rp_http_response.content_range writes. */
enum rp_http_content_range {
	RP_HTTP_CONTENT_RANGE_NONE = 0,
	RP_HTTP_CONTENT_RANGE_BYTES,	   /* "bytes FIRST-LAST/SIZE" (206) */
	RP_HTTP_CONTENT_RANGE_UNSATISFIED, /* "bytes *\/SIZE" (416) */
};

/*
 * A response head to write. Strings are NUL-terminated; NULL leaves the
 * field out. rp_http_response_write() writes the fields in this order.
 */
struct rp_http_response {
	unsigned status;	  /* 100..999: "HTTP/1.1 STATUS TEXT" */
	time_t date;		  /* Date, always written (now, from the caller) */
	const char *server;	  /* Server */
	const char *content_type; /* Content-Type */
	bool has_content_length;
	uint64_t content_length; /* Content-Length */
	enum rp_http_content_range content_range;
	uint64_t range_first, range_last, range_size; /* Content-Range */
	bool has_last_modified;
	time_t last_modified; /* Last-Modified */
	const char *etag;     /* ETag, written as given (quotes included) */
	bool accept_ranges;   /* Accept-Ranges: bytes */
	const char *allow;    /* Allow (405: "GET, HEAD") */
	bool keep_alive;      /* Connection: keep-alive, or close */
};

/*
 * rp_http_response_write - write the status line, the fields @r asks for,
 * each ending in CRLF, and the empty line into @buf. No NUL is written.
 * Returns the length, or -EINVAL (@buf or @r NULL, a status outside
 * 100..999, a string holding a control character (no response splitting),
 * a Content-Range with last < first or last >= size, a date outside years
 * 1..9999), -ENOSPC (@cap too small; @buf then holds a partial head).
 */
ssize_t rp_http_response_write(char *buf, size_t cap, const struct rp_http_response *r);

#ifdef __cplusplus
}
#endif

#endif /* RINGPLANE_HTTP_H */
