/* SPDX-License-Identifier: MIT */
/*
 * PROXY protocol v1/v2 (net/proxy.c): every accept and refuse rule of
 * docs/proxy.md, the same result whatever the split of the input, "need
 * more" at every truncation, payload after a header left alone, writer ->
 * parser round trips, and writer errors. No fds, no threads.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <cmocka.h>

#include <ringplane/proxy.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static const uint8_t SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
				0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* ---- helpers ---------------------------------------------------------- */

struct outcome {
	int status;
	enum rp_proxy_reason reason;
	size_t consumed;
	size_t need;
	struct rp_proxy_hdr hdr;
};

static void outcome_of(struct outcome *o, const struct rp_proxy_parser *p, int st, size_t used)
{
	memset(o, 0, sizeof(*o));
	o->status = st;
	o->reason = p->reason;
	o->consumed = used;
	o->need = p->need;
	memcpy(&o->hdr, &p->hdr, sizeof(o->hdr));
	assert_int_equal(st, p->status);
}

/*
 * Feed @len bytes in pieces: @step 0 means one piece, 1 byte by byte,
 * otherwise pieces of step, step+1, ... (wrapping at 2*step) bytes. Checks that no piece is
 * taken past the point the parser stopped and that a final status is
 * sticky. Keeps the parser in *@p for the caller.
 */
static void feed_split(struct rp_proxy_parser *p, struct outcome *o, const void *buf, size_t len,
		       size_t step)
{
	const uint8_t *in = buf;
	size_t off = 0, piece = step, used, total = 0;
	int st = RP_PROXY_MORE;

	rp_proxy_parser_init(p);
	if (!step) {
		st = rp_proxy_feed(p, buf, len, &used);
		total = used;
	} else {
		for (unsigned guard = 0; off < len && guard < 100000; guard++) {
			size_t n = piece < len - off ? piece : len - off;
			/* Each piece in a buffer of its exact size: under ASan a
			 * read past a piece is caught. */
			uint8_t *copy = malloc(n);

			assert_non_null(copy);

			memcpy(copy, in + off, n);
			st = rp_proxy_feed(p, copy, n, &used);
			free(copy);
			assert_true(st >= 0);
			assert_true(used <= n);
			total += used;
			if (st != RP_PROXY_MORE)
				break;
			assert_int_equal(used, n); /* MORE takes the whole piece */
			off += n;
			if (step > 1) /* step 1: byte by byte throughout */
				piece = piece + 1 > 2 * step ? step : piece + 1;
		}
	}
	outcome_of(o, p, st, total);
	if (st != RP_PROXY_MORE) {
		/* Sticky, and takes nothing more. */
		assert_int_equal(rp_proxy_feed(p, "PROXY ", 6, &used), st);
		assert_int_equal(used, 0);
	}
}

/* Parse @buf in one piece, byte by byte and in odd pieces: all agree. */
static void parse(struct outcome *o, const void *buf, size_t len)
{
	static const size_t steps[] = {1, 2, 3, 5, 7, 16, 64};
	/* On the heap, exactly its size: under ASan a write past it is caught. */
	struct rp_proxy_parser *p = malloc(sizeof(*p));
	uint8_t *whole = malloc(len ? len : 1);
	struct outcome other;

	assert_true(p && whole);
	if (len)
		memcpy(whole, buf, len);
	feed_split(p, o, whole, len, 0);
	free(whole);
	for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
		feed_split(p, &other, buf, len, steps[i]);
		assert_int_equal(other.status, o->status);
		assert_int_equal(other.reason, o->reason);
		assert_int_equal(other.consumed, o->consumed);
		assert_int_equal(other.need, o->need);
		assert_memory_equal(&other.hdr, &o->hdr, sizeof(o->hdr));
	}
	free(p);
}

static void expect_done(const void *buf, size_t len, struct outcome *o)
{
	parse(o, buf, len);
	if (o->status != RP_PROXY_DONE)
		fail_msg("refused: %s after %zu bytes", rp_proxy_reason_name(o->reason),
			 o->consumed);
	assert_int_equal(o->reason, RP_PROXY_R_NONE);
	assert_int_equal(o->consumed, len);
	assert_int_equal(o->hdr.len, len);
	assert_int_equal(o->need, 0);
}

/* Refused with @reason, and the byte that decided it was number @at. */
static void expect_refused(const void *buf, size_t len, enum rp_proxy_reason reason, size_t at)
{
	struct outcome o;

	parse(&o, buf, len);
	if (o.status != RP_PROXY_REFUSED || o.reason != reason || o.consumed != at)
		fail_msg("status %d reason %s at %zu, wanted %s at %zu", o.status,
			 rp_proxy_reason_name(o.reason), o.consumed, rp_proxy_reason_name(reason),
			 at);
	assert_int_equal(o.need, 0);
}

static void expect_refused_str(const char *s, enum rp_proxy_reason reason, size_t at)
{
	expect_refused(s, strlen(s), reason, at);
}

static void expect_done_str(const char *s, struct outcome *o)
{
	expect_done(s, strlen(s), o);
}

static struct sockaddr_in sin4(const char *a, uint16_t port)
{
	struct sockaddr_in s;

	memset(&s, 0, sizeof(s));
	s.sin_family = AF_INET;
	s.sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, a, &s.sin_addr), 1);
	return s;
}

static struct sockaddr_in6 sin6(const char *a, uint16_t port)
{
	struct sockaddr_in6 s;

	memset(&s, 0, sizeof(s));
	s.sin6_family = AF_INET6;
	s.sin6_port = htons(port);
	assert_int_equal(inet_pton(AF_INET6, a, &s.sin6_addr), 1);
	return s;
}

static void assert_v4(const struct sockaddr_storage *ss, const char *a, uint16_t port)
{
	const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
	struct sockaddr_in want = sin4(a, port);

	assert_int_equal(s->sin_family, AF_INET);
	assert_int_equal(s->sin_port, want.sin_port);
	assert_memory_equal(&s->sin_addr, &want.sin_addr, 4);
}

static void assert_v6(const struct sockaddr_storage *ss, const char *a, uint16_t port)
{
	const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
	struct sockaddr_in6 want = sin6(a, port);

	assert_int_equal(s->sin6_family, AF_INET6);
	assert_int_equal(s->sin6_port, want.sin6_port);
	assert_memory_equal(&s->sin6_addr, &want.sin6_addr, 16);
}

/* A bit-at-a-time CRC-32C, independent of rp_crc32c's kernels. */
static uint32_t ref_crc32c(const uint8_t *p, size_t n)
{
	uint32_t crc = 0xFFFFFFFFu;

	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
	}
	return ~crc;
}

/* A v2 header by hand: signature, ver_cmd, fam, then @body of @n bytes. */
static size_t v2_hdr(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const void *body, size_t n)
{
	memcpy(out, SIG, 12);
	out[12] = ver_cmd;
	out[13] = fam;
	out[14] = (uint8_t)(n >> 8);
	out[15] = (uint8_t)n;
	if (n)
		memcpy(out + 16, body, n);
	return 16 + n;
}

/* Fill a CRC32C TLV whose value starts at @at in a header of @len bytes. */
static void v2_set_crc(uint8_t *h, size_t len, size_t at)
{
	uint32_t crc;

	memset(h + at, 0, 4);
	crc = ref_crc32c(h, len);
	h[at] = (uint8_t)(crc >> 24);
	h[at + 1] = (uint8_t)(crc >> 16);
	h[at + 2] = (uint8_t)(crc >> 8);
	h[at + 3] = (uint8_t)crc;
}

static const uint8_t INET_BLOCK[12] = {10, 0, 0, 1, 10, 0, 0, 2, 0x1f, 0x90, 0x00, 0x50};

/* ---- v1 accepted ------------------------------------------------------- */

static void test_v1_tcp4_accepted(void **state)
{
	struct outcome o;

	(void)state;
	expect_done_str("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", &o);
	assert_int_equal(o.hdr.version, 1);
	assert_false(o.hdr.local);
	assert_int_equal(o.hdr.family, AF_INET);
	assert_int_equal(o.hdr.socktype, SOCK_STREAM);
	assert_int_equal(o.hdr.addrlen, sizeof(struct sockaddr_in));
	assert_v4(&o.hdr.src, "192.168.0.1", 56324);
	assert_v4(&o.hdr.dst, "192.168.0.11", 443);

	/* Bounds of every field. */
	expect_done_str("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", &o);
	assert_v4(&o.hdr.src, "0.0.0.0", 0);
	assert_v4(&o.hdr.dst, "255.255.255.255", 65535);
	expect_done_str("PROXY TCP4 10.0.0.100 1.20.0.9 10 9\r\n", &o);
	assert_v4(&o.hdr.src, "10.0.0.100", 10);
	assert_v4(&o.hdr.dst, "1.20.0.9", 9);
}

static void test_v1_tcp6_accepted(void **state)
{
	struct outcome o;

	(void)state;
	expect_done_str("PROXY TCP6 2001:db8::1 ::1 1234 80\r\n", &o);
	assert_int_equal(o.hdr.family, AF_INET6);
	assert_int_equal(o.hdr.addrlen, sizeof(struct sockaddr_in6));
	assert_v6(&o.hdr.src, "2001:db8::1", 1234);
	assert_v6(&o.hdr.dst, "::1", 80);

	/* Upper case hex, the all-zero address, embedded IPv4. */
	expect_done_str("PROXY TCP6 FE80::A:B :: 1 2\r\n", &o);
	assert_v6(&o.hdr.src, "fe80::a:b", 1);
	assert_v6(&o.hdr.dst, "::", 2);

	/* v4-mapped stays AF_INET6: the parser reports the wire. */
	expect_done_str("PROXY TCP6 ::ffff:1.2.3.4 ::ffff:5.6.7.8 1 2\r\n", &o);
	assert_int_equal(o.hdr.family, AF_INET6);
	assert_v6(&o.hdr.src, "::ffff:1.2.3.4", 1);

	/* The longest plain forms: 104 bytes. */
	expect_done_str("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
			"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
			&o);
}

static void test_v1_unknown_accepted(void **state)
{
	char line[RP_PROXY_V1_MAX + 1];
	struct outcome o;

	(void)state;
	expect_done_str("PROXY UNKNOWN\r\n", &o);
	assert_true(o.hdr.local);
	assert_int_equal(o.hdr.family, AF_UNSPEC);
	assert_int_equal(o.hdr.addrlen, 0);
	assert_int_equal(o.hdr.version, 1);

	/* Anything after UNKNOWN up to the CRLF is ignored. */
	expect_done_str("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", &o);
	assert_true(o.hdr.local);
	expect_done_str("PROXY UNKNOWNjunk \x01\xff\n\t\r\n", &o);
	assert_true(o.hdr.local);

	/* Exactly 107 bytes with the CRLF. */
	memcpy(line, "PROXY UNKNOWN", 13);
	memset(line + 13, 'x', 92);
	memcpy(line + 105, "\r\n", 2);
	expect_done(line, 107, &o);
}

/* ---- v1 refused -------------------------------------------------------- */

static void test_v1_signature_refused_at_first_wrong_byte(void **state)
{
	(void)state;
	expect_refused_str("GET / HTTP/1.1\r\n", RP_PROXY_R_SIGNATURE, 1);
	expect_refused_str("\x16\x03\x01", RP_PROXY_R_SIGNATURE, 1); /* a TLS hello */
	expect_refused_str("proxy TCP4", RP_PROXY_R_SIGNATURE, 1);
	expect_refused_str("PROXZ", RP_PROXY_R_SIGNATURE, 5);
	expect_refused_str("PROXY\r\n", RP_PROXY_R_SIGNATURE, 6);
	expect_refused_str("PRO XY", RP_PROXY_R_SIGNATURE, 4);
}

static void test_v1_protocol_refused(void **state)
{
	(void)state;
	expect_refused_str("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", RP_PROXY_R_V1_PROTOCOL, 10);
	expect_refused_str("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", RP_PROXY_R_V1_PROTOCOL, 7);
	expect_refused_str("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", RP_PROXY_R_V1_PROTOCOL, 8);
	expect_refused_str("PROXY TCP 1.2.3.4 5.6.7.8 1 2\r\n", RP_PROXY_R_V1_PROTOCOL, 10);
	expect_refused_str("PROXY TCP44 1.2.3.4\r\n", RP_PROXY_R_V1_PROTOCOL, 11);
	expect_refused_str("PROXY UNKN\r\n", RP_PROXY_R_V1_PROTOCOL, 11);
	expect_refused_str("PROXY UNKN 1\r\n", RP_PROXY_R_V1_PROTOCOL, 11);
	expect_refused_str("PROXY unknown\r\n", RP_PROXY_R_V1_PROTOCOL, 7);
}

static void test_v1_format_refused(void **state)
{
	(void)state;
	/* Single spaces only. */
	expect_refused_str("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", RP_PROXY_R_V1_FORMAT, 7);
	expect_refused_str("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", RP_PROXY_R_V1_FORMAT, 12);
	expect_refused_str("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", RP_PROXY_R_V1_FORMAT, 20);
	expect_refused_str("PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n", RP_PROXY_R_V1_FORMAT, 28);
	expect_refused_str("PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n", RP_PROXY_R_V1_FORMAT, 30);
	expect_refused_str("PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n", RP_PROXY_R_V1_PROTOCOL, 11);
	/* A space after the last field, a field missing, one too many. */
	expect_refused_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", RP_PROXY_R_V1_FORMAT, 31);
	expect_refused_str("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", RP_PROXY_R_V1_FORMAT, 29);
	expect_refused_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", RP_PROXY_R_V1_FORMAT, 31);
	expect_refused_str("PROXY TCP4\r\n", RP_PROXY_R_V1_FORMAT, 11);
	expect_refused_str("PROXY TCP6 ::1\r\n", RP_PROXY_R_V1_FORMAT, 15);
	/* CRLF exactly: LF alone, CR alone, CR then junk. */
	expect_refused_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", RP_PROXY_R_V1_FORMAT, 31);
	expect_refused_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", RP_PROXY_R_V1_FORMAT, 32);
	expect_refused_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", RP_PROXY_R_V1_FORMAT, 32);
	expect_refused_str("PROXY UNKNOWN\rX\r\n", RP_PROXY_R_V1_FORMAT, 15);
	expect_refused_str("PROXY TCP4 1.2.3.4\n", RP_PROXY_R_V1_FORMAT, 19);
}

static void test_v1_address_refused(void **state)
{
	(void)state;
	/* TCP4: dotted quad, 0..255, no leading zero (010 would be octal to
	 * inet_aton and decimal to others). */
	expect_refused_str("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", RP_PROXY_R_V1_ADDRESS, 20);
	expect_refused_str("PROXY TCP4 1.2.3.00 5.6.7.8 1 2\r\n", RP_PROXY_R_V1_ADDRESS, 20);
	expect_refused_str("PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n", RP_PROXY_R_V1_ADDRESS, 21);
	expect_refused_str("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", RP_PROXY_R_V1_ADDRESS, 17);
	expect_refused_str("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", RP_PROXY_R_V1_ADDRESS, 21);
	expect_refused_str("PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n", RP_PROXY_R_V1_ADDRESS, 18);
	expect_refused_str("PROXY TCP4 .1.2.3 5.6.7.8 1 2\r\n", RP_PROXY_R_V1_ADDRESS, 18);
	expect_refused_str("PROXY TCP4 1.2.3.4. 5.6.7.8 1 2\r\n", RP_PROXY_R_V1_ADDRESS, 20);
	expect_refused_str("PROXY TCP4 1.2.3.1000 5.6.7.8 1 2\r\n", RP_PROXY_R_V1_ADDRESS, 22);
	expect_refused_str("PROXY TCP4 1.2.3.4 5.6.7.256 1 2\r\n", RP_PROXY_R_V1_ADDRESS, 29);
	/* Characters no IPv4 address has, refused as they arrive. */
	expect_refused_str("PROXY TCP4 1.2.3.4a 5.6.7.8 1 2\r\n", RP_PROXY_R_V1_ADDRESS, 19);
	expect_refused_str("PROXY TCP4 ::1 ::1 1 2\r\n", RP_PROXY_R_V1_ADDRESS, 12);
	expect_refused_str("PROXY TCP4 1111111111111111 5.6.7.8 1 2\r\n", RP_PROXY_R_V1_ADDRESS,
			   27);
	/* TCP6: what inet_pton(AF_INET6) takes. */
	expect_refused_str("PROXY TCP6 1.2.3.4 ::1 1 2\r\n", RP_PROXY_R_V1_ADDRESS, 19);
	expect_refused_str("PROXY TCP6 ::1 ::1::2 1 2\r\n", RP_PROXY_R_V1_ADDRESS, 22);
	expect_refused_str("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", RP_PROXY_R_V1_ADDRESS, 29);
	expect_refused_str("PROXY TCP6 12345::1 ::1 1 2\r\n", RP_PROXY_R_V1_ADDRESS, 20);
	expect_refused_str("PROXY TCP6 g::1 ::1 1 2\r\n", RP_PROXY_R_V1_ADDRESS, 12);
	expect_refused_str("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", RP_PROXY_R_V1_ADDRESS, 19);
	expect_refused_str("PROXY TCP6 ::ffff:01.2.3.4 ::1 1 2\r\n", RP_PROXY_R_V1_ADDRESS, 27);
	/* 46 characters: longer than any inet_pton input, refused at the 46th. */
	expect_refused_str("PROXY TCP6 0000:0000:0000:0000:0000:0000:0000:0000:00000 ::1 1 2\r\n",
			   RP_PROXY_R_V1_ADDRESS, 57);
}

static void test_v1_port_refused(void **state)
{
	(void)state;
	expect_refused_str("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", RP_PROXY_R_V1_PORT, 33);
	expect_refused_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", RP_PROXY_R_V1_PORT, 35);
	expect_refused_str("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", RP_PROXY_R_V1_PORT, 28);
	expect_refused_str("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", RP_PROXY_R_V1_PORT, 28);
	expect_refused_str("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", RP_PROXY_R_V1_PORT, 31);
	expect_refused_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n", RP_PROXY_R_V1_PORT, 32);
	expect_refused_str("PROXY TCP4 1.2.3.4 5.6.7.8 0x10 2\r\n", RP_PROXY_R_V1_PORT, 29);
	expect_refused_str("PROXY TCP4 1.2.3.4 5.6.7.8 100000 2\r\n", RP_PROXY_R_V1_PORT, 33);
	expect_refused_str("PROXY TCP6 ::1 ::2 1 2a\r\n", RP_PROXY_R_V1_PORT, 23);
}

static void test_v1_longer_than_107_refused(void **state)
{
	char line[200];

	(void)state;
	/* 107 bytes and still no LF: refused at the 107th. */
	memcpy(line, "PROXY UNKNOWN", 13);
	memset(line + 13, 'x', sizeof(line) - 13);
	expect_refused(line, sizeof(line), RP_PROXY_R_V1_TOO_LONG, 107);
	memcpy(line + 105, "x\r\n", 3); /* CRLF ending at byte 108 */
	expect_refused(line, 108, RP_PROXY_R_V1_TOO_LONG, 107);
	memcpy(line + 105, "\r\n", 2);
	line[106] = 'y'; /* CR at byte 106, then not LF */
	expect_refused(line, 107, RP_PROXY_R_V1_FORMAT, 107);
}

/* ---- v2 accepted ------------------------------------------------------- */

static void test_v2_tcp4_accepted(void **state)
{
	uint8_t h[64];
	size_t n = v2_hdr(h, 0x21, 0x11, INET_BLOCK, sizeof(INET_BLOCK));
	struct outcome o;

	(void)state;
	expect_done(h, n, &o);
	assert_int_equal(o.hdr.version, 2);
	assert_false(o.hdr.local);
	assert_false(o.hdr.has_crc);
	assert_int_equal(o.hdr.family, AF_INET);
	assert_int_equal(o.hdr.socktype, SOCK_STREAM);
	assert_v4(&o.hdr.src, "10.0.0.1", 8080);
	assert_v4(&o.hdr.dst, "10.0.0.2", 80);
	assert_int_equal(o.hdr.tlv_len, 0);

	/* UDP over IPv4 is a known family too. */
	n = v2_hdr(h, 0x21, 0x12, INET_BLOCK, sizeof(INET_BLOCK));
	expect_done(h, n, &o);
	assert_int_equal(o.hdr.socktype, SOCK_DGRAM);
	assert_int_equal(o.hdr.family, AF_INET);
}

static void test_v2_tcp6_and_unix_accepted(void **state)
{
	uint8_t h[300], body[216];
	struct sockaddr_in6 a = sin6("2001:db8::7", 443), b = sin6("::ffff:1.2.3.4", 9);
	const struct sockaddr_un *u;
	struct outcome o;
	size_t n;

	(void)state;
	memcpy(body, &a.sin6_addr, 16);
	memcpy(body + 16, &b.sin6_addr, 16);
	memcpy(body + 32, &a.sin6_port, 2);
	memcpy(body + 34, &b.sin6_port, 2);
	for (uint8_t fam = 0x21; fam <= 0x22; fam++) {
		n = v2_hdr(h, 0x21, fam, body, 36);
		expect_done(h, n, &o);
		assert_int_equal(o.hdr.family, AF_INET6);
		assert_int_equal(o.hdr.socktype, fam == 0x21 ? SOCK_STREAM : SOCK_DGRAM);
		assert_v6(&o.hdr.src, "2001:db8::7", 443);
		assert_v6(&o.hdr.dst, "::ffff:1.2.3.4", 9);
	}

	memset(body, 0, sizeof(body));
	memcpy(body, "/run/a.sock", 11);
	memcpy(body + 108, "/run/b.sock", 11);
	for (uint8_t fam = 0x31; fam <= 0x32; fam++) {
		n = v2_hdr(h, 0x21, fam, body, 216);
		expect_done(h, n, &o);
		assert_int_equal(o.hdr.family, AF_UNIX);
		assert_int_equal(o.hdr.addrlen, sizeof(struct sockaddr_un));
		u = (const struct sockaddr_un *)&o.hdr.src;
		assert_int_equal(u->sun_family, AF_UNIX);
		assert_string_equal(u->sun_path, "/run/a.sock");
		u = (const struct sockaddr_un *)&o.hdr.dst;
		assert_string_equal(u->sun_path, "/run/b.sock");
	}
}

static void test_v2_local_and_unspec_use_own_addresses(void **state)
{
	uint8_t h[64], tlv[] = {RP_PROXY_TLV_NOOP, 0, 2, 'h', 'i'};
	struct outcome o;
	size_t n;

	(void)state;
	/* LOCAL, UNSPEC, nothing else: a 16-byte header. */
	n = v2_hdr(h, 0x20, 0x00, NULL, 0);
	expect_done(h, n, &o);
	assert_int_equal(o.hdr.len, 16);
	assert_true(o.hdr.local);
	assert_int_equal(o.hdr.family, AF_UNSPEC);
	assert_int_equal(o.hdr.socktype, 0);
	assert_int_equal(o.hdr.addrlen, 0);

	/* LOCAL with TLVs after an empty address block. */
	n = v2_hdr(h, 0x20, 0x00, tlv, sizeof(tlv));
	expect_done(h, n, &o);
	assert_true(o.hdr.local);
	assert_int_equal(o.hdr.tlv_off, 16);
	assert_int_equal(o.hdr.tlv_len, sizeof(tlv));

	/* LOCAL with an INET block: the block is skipped, addresses zero. */
	n = v2_hdr(h, 0x20, 0x11, INET_BLOCK, sizeof(INET_BLOCK));
	expect_done(h, n, &o);
	assert_true(o.hdr.local);
	assert_int_equal(o.hdr.family, AF_UNSPEC);
	assert_int_equal(o.hdr.src.ss_family, AF_UNSPEC);

	/* PROXY over UNSPEC: the v2 form of "PROXY UNKNOWN". */
	n = v2_hdr(h, 0x21, 0x00, NULL, 0);
	expect_done(h, n, &o);
	assert_true(o.hdr.local);
	assert_int_equal(o.hdr.family, AF_UNSPEC);
}

static void test_v2_tlvs_accepted_and_walked(void **state)
{
	uint8_t body[512], h[600];
	struct rp_proxy_parser p;
	struct rp_proxy_tlv t;
	size_t n = 0, len, pos = 0, used;

	(void)state;
	memcpy(body, INET_BLOCK, 12);
	n = 12;
	/* ALPN "h2", NOOP empty, UNIQUE_ID of the 128 allowed bytes, SSL with
	 * two sub-TLVs, a custom type, then the CRC. */
	memcpy(body + n, "\x01\x00\x02h2", 5), n += 5;
	memcpy(body + n, "\x04\x00\x00", 3), n += 3;
	body[n++] = RP_PROXY_TLV_UNIQUE_ID, body[n++] = 0, body[n++] = 128;
	memset(body + n, 'u', 128), n += 128;
	memcpy(body + n, "\x20\x00\x10\x01\x00\x00\x00\x00\x21\x00\x03TLS\x22\x00\002cn", 19),
		n += 19;
	memcpy(body + n, "\xEA\x00\x01z", 4), n += 4;
	memcpy(body + n, "\x03\x00\x04\0\0\0\0", 7), n += 7;
	len = v2_hdr(h, 0x21, 0x11, body, n);
	v2_set_crc(h, len, len - 4);

	rp_proxy_parser_init(&p);
	assert_int_equal(rp_proxy_feed(&p, h, len, &used), RP_PROXY_DONE);
	assert_int_equal(used, len);
	assert_true(p.hdr.has_crc);
	assert_int_equal(p.hdr.tlv_off, 28);
	assert_int_equal(p.hdr.tlv_len, n - 12);

	static const struct {
		uint8_t type;
		uint16_t len;
	} want[] = {{0x01, 2}, {0x04, 0}, {0x05, 128}, {0x20, 16}, {0xEA, 1}, {0x03, 4}};
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		assert_int_equal(rp_proxy_tlv_next(&p, &pos, &t), 1);
		assert_int_equal(t.type, want[i].type);
		assert_int_equal(t.len, want[i].len);
		assert_ptr_equal(t.value, p.buf + 28 + pos - want[i].len);
	}
	assert_memory_equal(p.buf + 28 + 3, "h2", 2);
	assert_int_equal(rp_proxy_tlv_next(&p, &pos, &t), 0);
	assert_int_equal(pos, p.hdr.tlv_len);
	/* Positions outside the area, or that start no TLV that fits. */
	pos = p.hdr.tlv_len + 1;
	assert_int_equal(rp_proxy_tlv_next(&p, &pos, &t), -EINVAL);
	pos = p.hdr.tlv_len - 2;
	assert_int_equal(rp_proxy_tlv_next(&p, &pos, &t), -EINVAL);
	pos = 0;
	assert_int_equal(rp_proxy_tlv_next(NULL, &pos, &t), -EINVAL);
	assert_int_equal(rp_proxy_tlv_next(&p, NULL, &t), -EINVAL);
	assert_int_equal(rp_proxy_tlv_next(&p, &pos, NULL), -EINVAL);

	/* The same bytes in any split. */
	struct outcome o;
	expect_done(h, len, &o);

	/* No TLVs in v1; none before DONE. */
	rp_proxy_parser_init(&p);
	assert_int_equal(rp_proxy_tlv_next(&p, &pos, &t), -EINVAL);
	assert_int_equal(rp_proxy_feed(&p, "PROXY UNKNOWN\r\n", 15, NULL), RP_PROXY_DONE);
	assert_int_equal(rp_proxy_tlv_next(&p, &pos, &t), 0);
}

static void test_v2_largest_header_accepted(void **state)
{
	uint8_t h[RP_PROXY_V2_MAX + 16], body[RP_PROXY_V2_MAX];
	size_t n = RP_PROXY_V2_MAX - 16;
	struct outcome o;

	(void)state;
	/* 536 bytes: the INET block and one NOOP TLV filling the rest. */
	memcpy(body, INET_BLOCK, 12);
	body[12] = RP_PROXY_TLV_NOOP;
	body[13] = (uint8_t)((n - 15) >> 8);
	body[14] = (uint8_t)(n - 15);
	memset(body + 15, 0xAB, n - 15);
	expect_done(h, v2_hdr(h, 0x21, 0x11, body, n), &o);
	assert_int_equal(o.hdr.len, RP_PROXY_V2_MAX);
}

/* ---- v2 refused -------------------------------------------------------- */

static void test_v2_signature_refused_at_each_byte(void **state)
{
	uint8_t h[64];
	size_t n = v2_hdr(h, 0x21, 0x11, INET_BLOCK, sizeof(INET_BLOCK));

	(void)state;
	for (size_t i = 0; i < 12; i++) {
		uint8_t bad[64];

		memcpy(bad, h, n);
		bad[i] ^= 0x20;
		/* A first byte that starts neither signature; else the byte. */
		expect_refused(bad, n, RP_PROXY_R_SIGNATURE, i + 1);
	}
}

static void test_v2_version_command_family_refused(void **state)
{
	uint8_t h[64];
	size_t n;

	(void)state;
	for (unsigned v = 0; v < 16; v++) {
		if (v == 2)
			continue;
		n = v2_hdr(h, (uint8_t)(v << 4 | 1), 0x11, INET_BLOCK, 12);
		expect_refused(h, n, RP_PROXY_R_V2_VERSION, 13);
	}
	for (unsigned c = 2; c < 16; c++) {
		n = v2_hdr(h, (uint8_t)(0x20 | c), 0x11, INET_BLOCK, 12);
		expect_refused(h, n, RP_PROXY_R_V2_COMMAND, 13);
	}
	for (unsigned fam = 0; fam < 256; fam++) {
		bool known = fam == 0x00 || fam == 0x11 || fam == 0x12 || fam == 0x21 ||
			     fam == 0x22 || fam == 0x31 || fam == 0x32;

		if (known)
			continue;
		n = v2_hdr(h, 0x21, (uint8_t)fam, INET_BLOCK, 12);
		expect_refused(h, n, RP_PROXY_R_V2_FAMILY, 14);
		n = v2_hdr(h, 0x20, (uint8_t)fam, INET_BLOCK, 12); /* LOCAL too */
		expect_refused(h, n, RP_PROXY_R_V2_FAMILY, 14);
	}
}

static void test_v2_length_refused(void **state)
{
	static const struct {
		uint8_t fam;
		size_t need;
	} fams[] = {{0x11, 12}, {0x12, 12}, {0x21, 36}, {0x22, 36}, {0x31, 216}, {0x32, 216}};
	uint8_t h[RP_PROXY_V2_MAX + 64], body[RP_PROXY_V2_MAX + 64];

	(void)state;
	memset(body, 0, sizeof(body));
	/* An address block too short for its family, decided by the length
	 * field alone (byte 16), for both commands. */
	for (size_t i = 0; i < ARRAY_SIZE(fams); i++) {
		for (uint8_t cmd = 0x20; cmd <= 0x21; cmd++) {
			v2_hdr(h, cmd, fams[i].fam, body, fams[i].need - 1);
			expect_refused(h, 16 + fams[i].need - 1, RP_PROXY_R_V2_ADDR_LEN, 16);
			v2_hdr(h, cmd, fams[i].fam, body, 0);
			expect_refused(h, 16, RP_PROXY_R_V2_ADDR_LEN, 16);
			v2_hdr(h, cmd, fams[i].fam, body, fams[i].need);
			struct outcome o;
			expect_done(h, 16 + fams[i].need, &o);
		}
	}
	/* Longer than RP_PROXY_V2_MAX: refused at the length field, before
	 * anything is waited for. */
	v2_hdr(h, 0x21, 0x11, body, RP_PROXY_V2_MAX - 16 + 1);
	expect_refused(h, 16, RP_PROXY_R_V2_TOO_LONG, 16);
	h[14] = 0xff, h[15] = 0xff;
	expect_refused(h, 16, RP_PROXY_R_V2_TOO_LONG, 16);
}

static void test_v2_tlv_bounds_refused(void **state)
{
	uint8_t body[64], h[128];
	size_t n;

	(void)state;
	memcpy(body, INET_BLOCK, 12);
	/* 1 and 2 bytes left: no room for a TLV's type and length. */
	body[12] = 0x04;
	n = v2_hdr(h, 0x21, 0x11, body, 13);
	expect_refused(h, n, RP_PROXY_R_V2_TLV, n);
	body[13] = 0x00;
	n = v2_hdr(h, 0x21, 0x11, body, 14);
	expect_refused(h, n, RP_PROXY_R_V2_TLV, n);
	/* A length one past the end, or far past it. */
	memcpy(body + 12, "\x04\x00\003ab", 5);
	n = v2_hdr(h, 0x21, 0x11, body, 17);
	expect_refused(h, n, RP_PROXY_R_V2_TLV, n);
	memcpy(body + 12, "\x04\xff\xff", 3);
	n = v2_hdr(h, 0x21, 0x11, body, 15);
	expect_refused(h, n, RP_PROXY_R_V2_TLV, n);
	/* The same for LOCAL, whose TLVs start after its (empty) block. */
	n = v2_hdr(h, 0x20, 0x00, "\x04\x00\x05xy", 5);
	expect_refused(h, n, RP_PROXY_R_V2_TLV, n);
	/* A second, valid TLV after a good one that overruns. */
	memcpy(body + 12, "\x04\x00\x00\x01\x00\x02z", 7);
	n = v2_hdr(h, 0x21, 0x11, body, 19);
	expect_refused(h, n, RP_PROXY_R_V2_TLV, n);
}

static void test_v2_tlv_values_refused(void **state)
{
	uint8_t body[300], h[400];
	size_t n;

	(void)state;
	memcpy(body, INET_BLOCK, 12);
	/* CRC32C of 3 and 5 bytes. */
	memcpy(body + 12, "\x03\x00\003abc", 6);
	n = v2_hdr(h, 0x21, 0x11, body, 18);
	expect_refused(h, n, RP_PROXY_R_V2_TLV_VALUE, n);
	memcpy(body + 12, "\x03\x00\005abcde", 8);
	n = v2_hdr(h, 0x21, 0x11, body, 20);
	expect_refused(h, n, RP_PROXY_R_V2_TLV_VALUE, n);
	/* Two CRC32C TLVs, both right for the header. */
	memcpy(body + 12, "\x03\x00\x04\0\0\0\0\x03\x00\x04\0\0\0\0", 14);
	n = v2_hdr(h, 0x21, 0x11, body, 26);
	v2_set_crc(h, n, 31);
	memcpy(h + 38, h + 31, 4);
	expect_refused(h, n, RP_PROXY_R_V2_TLV_VALUE, n);
	/* UNIQUE_ID of 129 bytes. */
	body[12] = RP_PROXY_TLV_UNIQUE_ID, body[13] = 0, body[14] = 129;
	memset(body + 15, 'u', 129);
	n = v2_hdr(h, 0x21, 0x11, body, 12 + 3 + 129);
	expect_refused(h, n, RP_PROXY_R_V2_TLV_VALUE, n);
	/* SSL shorter than client + verify; SSL sub-TLV past the SSL TLV. */
	memcpy(body + 12, "\x20\x00\x04\x01\0\0\0", 7);
	n = v2_hdr(h, 0x21, 0x11, body, 19);
	expect_refused(h, n, RP_PROXY_R_V2_TLV_VALUE, n);
	memcpy(body + 12,
	       "\x20\x00\x09\x01\0\0\0\0\x21\x00\x02T"
	       "\x04\x00\x00",
	       15);
	n = v2_hdr(h, 0x21, 0x11, body, 27);
	expect_refused(h, n, RP_PROXY_R_V2_TLV, n);
	memcpy(body + 12, "\x20\x00\x07\x01\0\0\0\0\x21\x00", 10);
	n = v2_hdr(h, 0x21, 0x11, body, 22);
	expect_refused(h, n, RP_PROXY_R_V2_TLV, n);
}

static void test_v2_crc_verified(void **state)
{
	struct sockaddr_in6 a = sin6("2001:db8::1", 1000), b = sin6("2001:db8::2", 2000);
	uint8_t h[128], bad[128];
	ssize_t n;
	struct outcome o;

	(void)state;
	n = rp_proxy_v2_write(h, sizeof(h), (struct sockaddr *)&a, (struct sockaddr *)&b,
			      RP_PROXY_V2_CRC32C);
	assert_int_equal(n, 16 + 36 + 7);
	expect_done(h, (size_t)n, &o);
	assert_true(o.hdr.has_crc);
	/* Flip every bit after the fixed part that leaves the structure
	 * intact (addresses, and the CRC value itself): all refused by CRC. */
	for (size_t i = 16; i < (size_t)n; i++) {
		if (i >= 16 + 36 && i < 16 + 36 + 3)
			continue; /* the TLV's type and length */
		for (int bit = 0; bit < 8; bit++) {
			memcpy(bad, h, (size_t)n);
			bad[i] ^= (uint8_t)(1u << bit);
			expect_refused(bad, (size_t)n, RP_PROXY_R_V2_CRC, (size_t)n);
		}
	}
	/* The fixed part is covered too: a DGRAM family byte that still parses. */
	memcpy(bad, h, (size_t)n);
	bad[13] = 0x22;
	expect_refused(bad, (size_t)n, RP_PROXY_R_V2_CRC, (size_t)n);
	/* A CRC over the header without zeroing the field is not accepted. */
	memcpy(bad, h, (size_t)n);
	v2_set_crc(bad, (size_t)n, (size_t)n - 4);
	assert_memory_equal(bad, h, (size_t)n);
	uint32_t whole = ref_crc32c(h, (size_t)n);
	bad[n - 4] = (uint8_t)(whole >> 24), bad[n - 3] = (uint8_t)(whole >> 16);
	bad[n - 2] = (uint8_t)(whole >> 8), bad[n - 1] = (uint8_t)whole;
	expect_refused(bad, (size_t)n, RP_PROXY_R_V2_CRC, (size_t)n);
}

/* ---- every header: truncations, payload after it ----------------------- */

struct sample {
	uint8_t b[RP_PROXY_V2_MAX];
	size_t n;
};

static size_t samples(struct sample *s, size_t max)
{
	static const char *const v1[] = {
		"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
		"PROXY TCP6 2001:db8::1 ::1 1234 80\r\n",
		"PROXY UNKNOWN\r\n",
		"PROXY UNKNOWN a b c\r\n",
	};
	struct sockaddr_in a4 = sin4("1.2.3.4", 1), b4 = sin4("5.6.7.8", 65535);
	struct sockaddr_in6 a6 = sin6("fe80::1", 7), b6 = sin6("::", 0);
	size_t k = 0;

	for (size_t i = 0; i < ARRAY_SIZE(v1) && k < max; i++, k++) {
		s[k].n = strlen(v1[i]);
		memcpy(s[k].b, v1[i], s[k].n);
	}
	for (unsigned crc = 0; crc <= RP_PROXY_V2_CRC32C && k + 3 <= max; crc++) {
		s[k].n = (size_t)rp_proxy_v2_write(s[k].b, sizeof(s[k].b), (void *)&a4, (void *)&b4,
						   crc);
		k++;
		s[k].n = (size_t)rp_proxy_v2_write(s[k].b, sizeof(s[k].b), (void *)&a6, (void *)&b6,
						   crc);
		k++;
		s[k].n = (size_t)rp_proxy_v2_write(s[k].b, sizeof(s[k].b), NULL, NULL, crc);
		k++;
	}
	return k;
}

static void test_truncated_headers_need_more(void **state)
{
	struct sample s[16];
	size_t count = samples(s, ARRAY_SIZE(s));

	(void)state;
	assert_int_equal(count, 10);
	for (size_t i = 0; i < count; i++) {
		for (size_t k = 0; k < s[i].n; k++) {
			struct outcome o;

			parse(&o, s[i].b, k);
			assert_int_equal(o.status, RP_PROXY_MORE);
			assert_int_equal(o.consumed, k);
			assert_int_equal(o.reason, RP_PROXY_R_NONE);
			/* need is a lower bound, and exact once v2's length is in. */
			assert_true(o.need >= 1);
			assert_true(k + o.need <= s[i].n);
			if (s[i].b[0] == '\r' && k >= 16)
				assert_int_equal(k + o.need, s[i].n);
		}
	}
}

static void test_payload_after_header_untouched(void **state)
{
	static const char payload[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n\r\n\r\n\0\r\nQUIT\n";
	struct sample s[16];
	size_t count = samples(s, ARRAY_SIZE(s));
	uint8_t buf[RP_PROXY_V2_MAX + sizeof(payload)], copy[sizeof(buf)];

	(void)state;
	for (size_t i = 0; i < count; i++) {
		size_t len = s[i].n + sizeof(payload);
		struct outcome o;

		memcpy(buf, s[i].b, s[i].n);
		memcpy(buf + s[i].n, payload, sizeof(payload));
		memcpy(copy, buf, len);
		parse(&o, buf, len); /* every split */
		assert_int_equal(o.status, RP_PROXY_DONE);
		assert_int_equal(o.consumed, s[i].n);
		assert_int_equal(o.hdr.len, s[i].n);
		assert_memory_equal(buf, copy, len); /* input never written */
	}
}

static void test_parser_reuse_after_init(void **state)
{
	uint8_t h[64];
	size_t n = v2_hdr(h, 0x21, 0x11, INET_BLOCK, 12), used;
	struct rp_proxy_parser p;

	(void)state;
	/* A v1 header leaves 'P' in the copy; a v2 one fed byte by byte after
	 * init must not be read as v1, nor refused. */
	rp_proxy_parser_init(&p);
	assert_int_equal(rp_proxy_feed(&p, "PROXY UNKNOWN\r\n", 15, &used), RP_PROXY_DONE);
	rp_proxy_parser_init(&p);
	for (size_t i = 0; i + 1 < n; i++)
		assert_int_equal(rp_proxy_feed(&p, h + i, 1, &used), RP_PROXY_MORE);
	assert_int_equal(rp_proxy_feed(&p, h + n - 1, 1, &used), RP_PROXY_DONE);
	assert_false(p.hdr.local);
	assert_int_equal(p.hdr.family, AF_INET);

	/* After a refusal, too. */
	rp_proxy_parser_init(&p);
	assert_int_equal(rp_proxy_feed(&p, "PROXY x", 7, &used), RP_PROXY_REFUSED);
	rp_proxy_parser_init(&p);
	assert_int_equal(p.status, RP_PROXY_MORE);
	assert_int_equal(p.reason, RP_PROXY_R_NONE);
	assert_int_equal(p.need, RP_PROXY_MIN);
	assert_int_equal(rp_proxy_feed(&p, h, n, &used), RP_PROXY_DONE);
	assert_int_equal(used, n);
}

static void test_feed_arguments(void **state)
{
	struct rp_proxy_parser p;
	size_t used = 99;

	(void)state;
	rp_proxy_parser_init(&p);
	assert_int_equal(rp_proxy_feed(NULL, "P", 1, &used), -EINVAL);
	assert_int_equal(used, 0);
	assert_int_equal(rp_proxy_feed(&p, NULL, 1, &used), -EINVAL);
	assert_int_equal(rp_proxy_feed(&p, NULL, 0, &used), RP_PROXY_MORE);
	assert_int_equal(rp_proxy_feed(&p, "PR", 2, NULL), RP_PROXY_MORE);
	assert_int_equal(p.need, RP_PROXY_MIN - 2);
	rp_proxy_parser_init(NULL); /* no crash */
}

/* ---- writers ----------------------------------------------------------- */

static void test_v1_write_exact_text(void **state)
{
	struct sockaddr_in a = sin4("192.168.0.1", 56324), b = sin4("192.168.0.11", 443);
	struct sockaddr_in6 c = sin6("2001:db8::1", 0), d = sin6("::1", 65535);
	struct sockaddr_in6 m1 = sin6("::ffff:10.0.0.1", 5), m2 = sin6("::ffff:10.0.0.2", 6);
	char buf[RP_PROXY_V1_MAX];
	ssize_t n;

	(void)state;
	n = rp_proxy_v1_write(buf, sizeof(buf), (void *)&a, (void *)&b);
	assert_int_equal(n, 47);
	assert_memory_equal(buf, "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", 47);
	n = rp_proxy_v1_write(buf, sizeof(buf), (void *)&c, (void *)&d);
	assert_memory_equal(buf, "PROXY TCP6 2001:db8::1 ::1 0 65535\r\n", (size_t)n);
	n = rp_proxy_v1_write(buf, sizeof(buf), NULL, (void *)&d);
	assert_memory_equal(buf, "PROXY UNKNOWN\r\n", (size_t)n);
	/* v4-mapped on both ends: written as the IPv4 it is. */
	n = rp_proxy_v1_write(buf, sizeof(buf), (void *)&m1, (void *)&m2);
	assert_memory_equal(buf, "PROXY TCP4 10.0.0.1 10.0.0.2 5 6\r\n", (size_t)n);
	n = rp_proxy_v1_write(buf, sizeof(buf), (void *)&a, (void *)&m2);
	assert_memory_equal(buf, "PROXY TCP4 192.168.0.1 10.0.0.2 56324 6\r\n", (size_t)n);
	/* IPv4 with a real IPv6 end: mapped into IPv6. */
	n = rp_proxy_v1_write(buf, sizeof(buf), (void *)&a, (void *)&d);
	assert_memory_equal(buf, "PROXY TCP6 ::ffff:192.168.0.1 ::1 56324 65535\r\n", (size_t)n);
}

static void test_v2_write_exact_bytes(void **state)
{
	struct sockaddr_in a = sin4("10.0.0.1", 8080), b = sin4("10.0.0.2", 80);
	uint8_t buf[64], want[64];
	size_t wn;
	ssize_t n;

	(void)state;
	n = rp_proxy_v2_write(buf, sizeof(buf), (void *)&a, (void *)&b, 0);
	wn = v2_hdr(want, 0x21, 0x11, INET_BLOCK, 12);
	assert_int_equal(n, wn);
	assert_memory_equal(buf, want, wn);

	/* With the CRC: a TLV 0x03 of 4 bytes, big-endian CRC-32C of the whole
	 * header with those 4 bytes zero (checked by a bitwise reference). */
	n = rp_proxy_v2_write(buf, sizeof(buf), (void *)&a, (void *)&b, RP_PROXY_V2_CRC32C);
	memcpy(want + 28, "\x03\x00\x04\0\0\0\0", 7);
	want[15] = 12 + 7;
	v2_set_crc(want, 35, 31);
	assert_int_equal(n, 35);
	assert_memory_equal(buf, want, 35);

	/* LOCAL: ver_cmd 0x20, UNSPEC, length 0. */
	n = rp_proxy_v2_write(buf, sizeof(buf), NULL, NULL, 0);
	wn = v2_hdr(want, 0x20, 0x00, NULL, 0);
	assert_int_equal(n, 16);
	assert_memory_equal(buf, want, 16);
}

static void test_write_errors(void **state)
{
	struct sockaddr_in a = sin4("1.2.3.4", 1), b = sin4("5.6.7.8", 2);
	struct sockaddr_un u;
	struct sockaddr bad;
	uint8_t buf[300], sentinel[300];
	ssize_t n1, n2;

	(void)state;
	memset(&u, 0, sizeof(u));
	u.sun_family = AF_UNIX;
	memset(&bad, 0, sizeof(bad));
	bad.sa_family = AF_PACKET;

	n1 = rp_proxy_v1_write((char *)buf, sizeof(buf), (void *)&a, (void *)&b);
	n2 = rp_proxy_v2_write(buf, sizeof(buf), (void *)&a, (void *)&b, RP_PROXY_V2_CRC32C);
	assert_true(n1 > 0 && n2 > 0);
	/* One byte short: -ENOSPC and not a byte written; exact fits. */
	memset(sentinel, 0x5A, sizeof(sentinel));
	memcpy(buf, sentinel, sizeof(buf));
	assert_int_equal(rp_proxy_v1_write((char *)buf, (size_t)n1 - 1, (void *)&a, (void *)&b),
			 -ENOSPC);
	assert_int_equal(
		rp_proxy_v2_write(buf, (size_t)n2 - 1, (void *)&a, (void *)&b, RP_PROXY_V2_CRC32C),
		-ENOSPC);
	assert_int_equal(rp_proxy_v1_write((char *)buf, 0, NULL, NULL), -ENOSPC);
	assert_int_equal(rp_proxy_v2_write(buf, 15, NULL, NULL, 0), -ENOSPC);
	assert_memory_equal(buf, sentinel, sizeof(buf));
	assert_int_equal(rp_proxy_v1_write((char *)buf, (size_t)n1, (void *)&a, (void *)&b), n1);
	assert_int_equal(
		rp_proxy_v2_write(buf, (size_t)n2, (void *)&a, (void *)&b, RP_PROXY_V2_CRC32C), n2);

	assert_int_equal(rp_proxy_v1_write(NULL, 200, NULL, NULL), -EINVAL);
	assert_int_equal(rp_proxy_v2_write(NULL, 200, NULL, NULL, 0), -EINVAL);
	assert_int_equal(rp_proxy_v1_write((char *)buf, 200, (void *)&a, NULL), -EINVAL);
	assert_int_equal(rp_proxy_v2_write(buf, 200, (void *)&a, NULL, 0), -EINVAL);
	assert_int_equal(rp_proxy_v2_write(buf, 200, (void *)&a, (void *)&b, 2), -EINVAL);
	assert_int_equal(rp_proxy_v1_write((char *)buf, 200, (void *)&bad, (void *)&b),
			 -EAFNOSUPPORT);
	assert_int_equal(rp_proxy_v1_write((char *)buf, 200, (void *)&a, (void *)&bad),
			 -EAFNOSUPPORT);
	assert_int_equal(rp_proxy_v1_write((char *)buf, 200, (void *)&u, (void *)&u),
			 -EAFNOSUPPORT);
	assert_int_equal(rp_proxy_v2_write(buf, 200, (void *)&bad, (void *)&b, 0), -EAFNOSUPPORT);
	assert_int_equal(rp_proxy_v2_write(buf, 300, (void *)&u, (void *)&b, 0), -EAFNOSUPPORT);
	assert_int_equal(rp_proxy_v2_write(buf, 300, (void *)&a, (void *)&u, 0), -EAFNOSUPPORT);
}

/* ---- round trips ------------------------------------------------------- */

static void round_trip(const struct sockaddr *src, const struct sockaddr *dst, int want_family,
		       const struct sockaddr *wsrc, const struct sockaddr *wdst)
{
	uint8_t buf[RP_PROXY_V2_MAX];
	struct outcome o;
	ssize_t n;

	for (int v = 0; v < 3; v++) {
		if (v == 0)
			n = rp_proxy_v1_write((char *)buf, sizeof(buf), src, dst);
		else
			n = rp_proxy_v2_write(buf, sizeof(buf), src, dst,
					      v == 2 ? RP_PROXY_V2_CRC32C : 0);
		if (n < 0 && v == 0 && src && src->sa_family == AF_UNIX)
			continue; /* no v1 form */
		assert_true(n > 0);
		expect_done(buf, (size_t)n, &o);
		assert_int_equal(o.hdr.version, v ? 2 : 1);
		assert_int_equal(o.hdr.has_crc, v == 2);
		if (!src) {
			assert_true(o.hdr.local);
			continue;
		}
		assert_false(o.hdr.local);
		assert_int_equal(o.hdr.family, want_family);
		assert_int_equal(o.hdr.socktype, SOCK_STREAM);
		if (want_family == AF_INET) {
			const struct sockaddr_in *s = (const void *)&o.hdr.src,
						 *w = (const void *)wsrc;
			const struct sockaddr_in *d = (const void *)&o.hdr.dst,
						 *x = (const void *)wdst;

			assert_memory_equal(&s->sin_addr, &w->sin_addr, 4);
			assert_int_equal(s->sin_port, w->sin_port);
			assert_memory_equal(&d->sin_addr, &x->sin_addr, 4);
			assert_int_equal(d->sin_port, x->sin_port);
		} else if (want_family == AF_INET6) {
			const struct sockaddr_in6 *s = (const void *)&o.hdr.src,
						  *w = (const void *)wsrc;
			const struct sockaddr_in6 *d = (const void *)&o.hdr.dst,
						  *x = (const void *)wdst;

			assert_memory_equal(&s->sin6_addr, &w->sin6_addr, 16);
			assert_int_equal(s->sin6_port, w->sin6_port);
			assert_memory_equal(&d->sin6_addr, &x->sin6_addr, 16);
			assert_int_equal(d->sin6_port, x->sin6_port);
		} else {
			assert_memory_equal(((const struct sockaddr_un *)&o.hdr.src)->sun_path,
					    ((const struct sockaddr_un *)wsrc)->sun_path, 108);
			assert_memory_equal(((const struct sockaddr_un *)&o.hdr.dst)->sun_path,
					    ((const struct sockaddr_un *)wdst)->sun_path, 108);
		}
	}
}

static void test_round_trip_write_then_parse(void **state)
{
	static const char *const v4s[] = {"0.0.0.0", "1.2.3.4", "255.255.255.255", "10.20.30.40"};
	static const char *const v6s[] = {"::",
					  "::1",
					  "2001:db8::dead:beef",
					  "fe80::1:2:3:4",
					  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
					  "::1.2.3.4"};
	static const uint16_t ports[] = {0, 1, 80, 65535};

	(void)state;
	round_trip(NULL, NULL, AF_UNSPEC, NULL, NULL);
	for (size_t i = 0; i < ARRAY_SIZE(v4s); i++) {
		for (size_t j = 0; j < ARRAY_SIZE(v4s); j++) {
			struct sockaddr_in a = sin4(v4s[i], ports[i]), b = sin4(v4s[j], ports[j]);
			char m1[64], m2[64];

			round_trip((void *)&a, (void *)&b, AF_INET, (void *)&a, (void *)&b);
			/* v4-mapped in, IPv4 out. */
			snprintf(m1, sizeof(m1), "::ffff:%s", v4s[i]);
			snprintf(m2, sizeof(m2), "::ffff:%s", v4s[j]);
			struct sockaddr_in6 c = sin6(m1, ports[i]), d = sin6(m2, ports[j]);
			round_trip((void *)&c, (void *)&d, AF_INET, (void *)&a, (void *)&b);
			round_trip((void *)&a, (void *)&d, AF_INET, (void *)&a, (void *)&b);
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(v6s); i++) {
		for (size_t j = 0; j < ARRAY_SIZE(v6s); j++) {
			struct sockaddr_in6 a = sin6(v6s[i], ports[i % 4]),
					    b = sin6(v6s[j], ports[j % 4]);

			round_trip((void *)&a, (void *)&b, AF_INET6, (void *)&a, (void *)&b);
		}
		/* IPv4 against real IPv6: the IPv4 end comes back v4-mapped. */
		struct sockaddr_in a4 = sin4("192.0.2.1", 443);
		struct sockaddr_in6 b = sin6(v6s[i], 9), m = sin6("::ffff:192.0.2.1", 443);
		if (IN6_IS_ADDR_V4MAPPED(&b.sin6_addr))
			continue;
		round_trip((void *)&a4, (void *)&b, AF_INET6, (void *)&m, (void *)&b);
	}
	struct sockaddr_un u1, u2;
	memset(&u1, 0, sizeof(u1));
	memset(&u2, 0, sizeof(u2));
	u1.sun_family = u2.sun_family = AF_UNIX;
	strcpy(u1.sun_path, "/run/client");
	u2.sun_path[0] = '\0'; /* abstract: every byte counts */
	memcpy(u2.sun_path + 1, "abstract\0x", 10);
	round_trip((void *)&u1, (void *)&u2, AF_UNIX, (void *)&u1, (void *)&u2);
}

static void test_reason_names(void **state)
{
	(void)state;
	for (int i = 0; i < RP_PROXY_R_COUNT; i++) {
		const char *a = rp_proxy_reason_name((enum rp_proxy_reason)i);

		assert_non_null(a);
		assert_string_not_equal(a, "invalid");
		for (int j = 0; j < i; j++)
			assert_string_not_equal(a, rp_proxy_reason_name((enum rp_proxy_reason)j));
	}
	assert_string_equal(rp_proxy_reason_name(RP_PROXY_R_V2_CRC), "v2_crc");
	assert_string_equal(rp_proxy_reason_name(RP_PROXY_R_SIGNATURE), "signature");
	assert_string_equal(rp_proxy_reason_name(RP_PROXY_R_COUNT), "invalid");
	assert_string_equal(rp_proxy_reason_name((enum rp_proxy_reason) - 1), "invalid");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_tcp4_accepted),
		cmocka_unit_test(test_v1_tcp6_accepted),
		cmocka_unit_test(test_v1_unknown_accepted),
		cmocka_unit_test(test_v1_signature_refused_at_first_wrong_byte),
		cmocka_unit_test(test_v1_protocol_refused),
		cmocka_unit_test(test_v1_format_refused),
		cmocka_unit_test(test_v1_address_refused),
		cmocka_unit_test(test_v1_port_refused),
		cmocka_unit_test(test_v1_longer_than_107_refused),
		cmocka_unit_test(test_v2_tcp4_accepted),
		cmocka_unit_test(test_v2_tcp6_and_unix_accepted),
		cmocka_unit_test(test_v2_local_and_unspec_use_own_addresses),
		cmocka_unit_test(test_v2_tlvs_accepted_and_walked),
		cmocka_unit_test(test_v2_largest_header_accepted),
		cmocka_unit_test(test_v2_signature_refused_at_each_byte),
		cmocka_unit_test(test_v2_version_command_family_refused),
		cmocka_unit_test(test_v2_length_refused),
		cmocka_unit_test(test_v2_tlv_bounds_refused),
		cmocka_unit_test(test_v2_tlv_values_refused),
		cmocka_unit_test(test_v2_crc_verified),
		cmocka_unit_test(test_truncated_headers_need_more),
		cmocka_unit_test(test_payload_after_header_untouched),
		cmocka_unit_test(test_parser_reuse_after_init),
		cmocka_unit_test(test_feed_arguments),
		cmocka_unit_test(test_v1_write_exact_text),
		cmocka_unit_test(test_v2_write_exact_bytes),
		cmocka_unit_test(test_write_errors),
		cmocka_unit_test(test_round_trip_write_then_parse),
		cmocka_unit_test(test_reason_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
