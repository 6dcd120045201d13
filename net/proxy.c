/* SPDX-License-Identifier: MIT */
/*
 * PROXY protocol v1 and v2: writers and an incremental, strict parser.
 * The rules and the reasons behind the limits are in docs/proxy.md.
 *
 * The parser takes bytes one state step at a time, so its result depends on
 * the byte sequence only, never on where the pieces were cut: v1 bytes go
 * through v1_byte() one by one (a line is at most 107 bytes, and each
 * byte may end it or refuse it), v2 bytes are checked one by one through the
 * fixed 16-byte part, then the rest is copied in one go up to the length the
 * header announced and checked when complete.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include <ringplane/proxy.h>
#include <ringplane/simd.h>

#define V1_SIG	      "PROXY "
#define V1_SIG_LEN    6
#define V2_SIG_LEN    12
#define V2_FIXED      16
#define V2_INET_LEN   12
#define V2_INET6_LEN  36
#define V2_UNIX_LEN   216
#define UNIX_PATH_LEN 108
#define TLV_HDR	      3
#define CRC_TLV_LEN   (TLV_HDR + 4)
#define UNIQUE_ID_MAX 128
#define SSL_FIXED     5
/* "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255": the longest inet_pton input */
#define V6_TEXT_MAX   45
#define V4_TEXT_MAX   15
#define PORT_TEXT_MAX 5

static const uint8_t v2_sig[V2_SIG_LEN] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
					   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

_Static_assert(sizeof(((struct sockaddr_un *)0)->sun_path) == UNIX_PATH_LEN,
	       "the v2 UNIX block holds 108-byte paths, as Linux's sun_path");
_Static_assert(sizeof(struct sockaddr_un) <= sizeof(struct sockaddr_storage),
	       "a sockaddr_un fits the result's storage");
_Static_assert(RP_PROXY_HDR_MAX >= RP_PROXY_V1_MAX, "the copy holds a v1 line");
_Static_assert(RP_PROXY_HDR_MAX <= UINT16_MAX, "lengths are 16-bit");

static const char *const reason_names[RP_PROXY_R_COUNT] = {
	[RP_PROXY_R_NONE] = "none",
	[RP_PROXY_R_SIGNATURE] = "signature",
	[RP_PROXY_R_V1_TOO_LONG] = "v1_too_long",
	[RP_PROXY_R_V1_PROTOCOL] = "v1_protocol",
	[RP_PROXY_R_V1_FORMAT] = "v1_format",
	[RP_PROXY_R_V1_ADDRESS] = "v1_address",
	[RP_PROXY_R_V1_PORT] = "v1_port",
	[RP_PROXY_R_V2_VERSION] = "v2_version",
	[RP_PROXY_R_V2_COMMAND] = "v2_command",
	[RP_PROXY_R_V2_FAMILY] = "v2_family",
	[RP_PROXY_R_V2_TOO_LONG] = "v2_too_long",
	[RP_PROXY_R_V2_ADDR_LEN] = "v2_addr_len",
	[RP_PROXY_R_V2_TLV] = "v2_tlv",
	[RP_PROXY_R_V2_TLV_VALUE] = "v2_tlv_value",
	[RP_PROXY_R_V2_CRC] = "v2_crc",
};

const char *rp_proxy_reason_name(enum rp_proxy_reason r)
{
	if ((unsigned)r >= RP_PROXY_R_COUNT)
		return "invalid";
	return reason_names[r];
}

/* ---- writing ---------------------------------------------------------- */

static bool is_v4_mapped(const struct sockaddr_in6 *s6)
{
	return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr);
}

/* Both ends as the header carries them (one family for both). */
struct inet_pair {
	int family;
	uint8_t src[16], dst[16]; /* 4 bytes used for AF_INET */
	uint16_t sport, dport;	  /* network order */
};

static int inet_end(const struct sockaddr *sa, bool want_v4, uint8_t out[16], uint16_t *port)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		*port = s4->sin_port;
		if (want_v4) {
			memcpy(out, &s4->sin_addr, 4);
		} else {
			memset(out, 0, 10);
			out[10] = out[11] = 0xff;
			memcpy(out + 12, &s4->sin_addr, 4);
		}
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		*port = s6->sin6_port;
		if (want_v4)
			memcpy(out, s6->sin6_addr.s6_addr + 12, 4);
		else
			memcpy(out, s6->sin6_addr.s6_addr, 16);
		return 0;
	}
	return -EAFNOSUPPORT;
}

static bool inet_is_v4(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET ||
	       (sa->sa_family == AF_INET6 && is_v4_mapped((const struct sockaddr_in6 *)sa));
}

/*
 * Both IPv4 (AF_INET or v4-mapped, in any mix) become AF_INET: the client
 * was IPv4, the mapping is only how a dual-stack socket reports it. Else an
 * AF_INET end is mapped into AF_INET6. 0, or -EAFNOSUPPORT.
 */
static int inet_pair_make(struct inet_pair *ip, const struct sockaddr *src,
			  const struct sockaddr *dst)
{
	bool v4;

	if ((src->sa_family != AF_INET && src->sa_family != AF_INET6) ||
	    (dst->sa_family != AF_INET && dst->sa_family != AF_INET6))
		return -EAFNOSUPPORT;
	v4 = inet_is_v4(src) && inet_is_v4(dst);
	ip->family = v4 ? AF_INET : AF_INET6;
	if (inet_end(src, v4, ip->src, &ip->sport) || inet_end(dst, v4, ip->dst, &ip->dport))
		return -EAFNOSUPPORT;
	return 0;
}

/* Decimal digits of @v at @p; returns the count (no sign, no leading zero). */
static size_t put_dec(char *p, unsigned v)
{
	char tmp[10];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && n < sizeof(tmp));
	for (i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return n;
}

static size_t put_v4(char *p, const uint8_t a[4])
{
	size_t n = 0;

	for (int i = 0; i < 4; i++) {
		if (i)
			p[n++] = '.';
		n += put_dec(p + n, a[i]);
	}
	return n;
}

static size_t put_str(char *p, const char *s)
{
	size_t n = strlen(s);

	memcpy(p, s, n);
	return n;
}

ssize_t rp_proxy_v1_write(char *buf, size_t cap, const struct sockaddr *src,
			  const struct sockaddr *dst)
{
	/* Longest: "PROXY TCP6 " + 2 x 45 + 3 spaces + 2 x 5 + CRLF = 116 > 107
	 * in theory; inet_ntop never writes the 45-byte forms for both ends
	 * (at most 39 for an address that is not v4-mapped, and v4-mapped
	 * pairs are written as TCP4), so the line stays within 107. */
	char line[128];
	struct inet_pair ip;
	size_t n = 0;
	int rc;

	if (!buf || (src && !dst))
		return -EINVAL;
	if (!src) {
		n = put_str(line, "PROXY UNKNOWN\r\n");
	} else {
		char text[INET6_ADDRSTRLEN];

		rc = inet_pair_make(&ip, src, dst);
		if (rc)
			return rc;
		n = put_str(line, ip.family == AF_INET ? "PROXY TCP4 " : "PROXY TCP6 ");
		if (ip.family == AF_INET) {
			n += put_v4(line + n, ip.src);
			line[n++] = ' ';
			n += put_v4(line + n, ip.dst);
		} else {
			if (!inet_ntop(AF_INET6, ip.src, text, sizeof(text)))
				return -EINVAL;
			n += put_str(line + n, text);
			line[n++] = ' ';
			if (!inet_ntop(AF_INET6, ip.dst, text, sizeof(text)))
				return -EINVAL;
			n += put_str(line + n, text);
		}
		line[n++] = ' ';
		n += put_dec(line + n, ntohs(ip.sport));
		line[n++] = ' ';
		n += put_dec(line + n, ntohs(ip.dport));
		line[n++] = '\r';
		line[n++] = '\n';
	}
	if (n > RP_PROXY_V1_MAX)
		return -EINVAL; /* cannot happen with glibc's inet_ntop; never send it */
	if (cap < n)
		return -ENOSPC;
	memcpy(buf, line, n);
	return (ssize_t)n;
}

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

ssize_t rp_proxy_v2_write(void *buf, size_t cap, const struct sockaddr *src,
			  const struct sockaddr *dst, unsigned flags)
{
	uint8_t *out = buf;
	struct inet_pair ip;
	size_t addr_len, total;
	uint8_t cmd, fam;
	int rc;

	if (!buf || (src && !dst) || (flags & ~(unsigned)RP_PROXY_V2_CRC32C))
		return -EINVAL;
	if (!src) {
		cmd = 0x20; /* version 2, LOCAL */
		fam = 0x00; /* UNSPEC, UNSPEC */
		addr_len = 0;
	} else if (src->sa_family == AF_UNIX || dst->sa_family == AF_UNIX) {
		if (src->sa_family != dst->sa_family)
			return -EAFNOSUPPORT;
		cmd = 0x21;
		fam = 0x31; /* AF_UNIX, STREAM */
		addr_len = V2_UNIX_LEN;
	} else {
		rc = inet_pair_make(&ip, src, dst);
		if (rc)
			return rc;
		cmd = 0x21;
		fam = ip.family == AF_INET ? 0x11 : 0x21; /* STREAM */
		addr_len = ip.family == AF_INET ? V2_INET_LEN : V2_INET6_LEN;
	}
	total = V2_FIXED + addr_len + ((flags & RP_PROXY_V2_CRC32C) ? CRC_TLV_LEN : 0);
	if (cap < total)
		return -ENOSPC;

	memcpy(out, v2_sig, V2_SIG_LEN);
	out[12] = cmd;
	out[13] = fam;
	put_be16(out + 14, (uint16_t)(total - V2_FIXED));
	if (fam == 0x11) {
		memcpy(out + 16, ip.src, 4);
		memcpy(out + 20, ip.dst, 4);
		memcpy(out + 24, &ip.sport, 2);
		memcpy(out + 26, &ip.dport, 2);
	} else if (fam == 0x21) {
		memcpy(out + 16, ip.src, 16);
		memcpy(out + 32, ip.dst, 16);
		memcpy(out + 48, &ip.sport, 2);
		memcpy(out + 50, &ip.dport, 2);
	} else if (fam == 0x31) {
		memcpy(out + 16, ((const struct sockaddr_un *)src)->sun_path, UNIX_PATH_LEN);
		memcpy(out + 16 + UNIX_PATH_LEN, ((const struct sockaddr_un *)dst)->sun_path,
		       UNIX_PATH_LEN);
	}
	if (flags & RP_PROXY_V2_CRC32C) {
		uint8_t *tlv = out + V2_FIXED + addr_len;

		tlv[0] = RP_PROXY_TLV_CRC32C;
		put_be16(tlv + 1, 4);
		memset(tlv + 3, 0, 4);
		put_be32(tlv + 3, rp_crc32c(0, out, total));
	}
	return (ssize_t)total;
}

/* ---- reading ---------------------------------------------------------- */

void rp_proxy_parser_init(struct rp_proxy_parser *p)
{
	if (!p)
		return;
	/* The copy needs no clearing: only bytes below have are ever read. */
	memset(p, 0, offsetof(struct rp_proxy_parser, buf));
	p->status = RP_PROXY_MORE;
	p->reason = RP_PROXY_R_NONE;
	p->need = RP_PROXY_MIN;
}

static enum rp_proxy_status refuse(struct rp_proxy_parser *p, enum rp_proxy_reason r)
{
	p->status = RP_PROXY_REFUSED;
	p->reason = r;
	p->need = 0;
	return RP_PROXY_REFUSED;
}

/* "0".."255" without a leading zero (so 010 is neither 8 nor 10), four parts. */
static bool parse_v4(const uint8_t *s, size_t n, uint8_t out[4])
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		unsigned v = 0;
		size_t start = i;

		if (part) {
			if (i >= n || s[i] != '.')
				return false;
			start = ++i;
		}
		while (i < n && s[i] >= '0' && s[i] <= '9' && i - start < 3)
			v = v * 10 + (unsigned)(s[i++] - '0');
		if (i == start || v > 255 || (s[start] == '0' && i - start > 1))
			return false;
		out[part] = (uint8_t)v;
	}
	return i == n;
}

static bool parse_v6(const uint8_t *s, size_t n, uint8_t out[16])
{
	char text[V6_TEXT_MAX + 1];

	if (n == 0 || n > V6_TEXT_MAX)
		return false;
	memcpy(text, s, n);
	text[n] = '\0';
	return inet_pton(AF_INET6, text, out) == 1;
}

/* 0..65535 in plain decimal: digits only, no leading zero but "0" itself. */
static bool parse_port(const uint8_t *s, size_t n, uint16_t *out)
{
	unsigned v = 0;

	if (n == 0 || n > PORT_TEXT_MAX || (s[0] == '0' && n > 1))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return false;
	*out = htons((uint16_t)v);
	return true;
}

static bool is_hex(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool v1_is_tcp4(const struct rp_proxy_parser *p)
{
	return p->buf[V1_SIG_LEN + 3] == '4';
}

/*
 * Field @f (1..5), buf[fstart, end), is complete: check and store it. The
 * protocol's letters were checked as they came (v1_byte()); here it must be
 * a whole TCP4 or TCP6.
 */
static enum rp_proxy_reason v1_field_end(struct rp_proxy_parser *p, uint8_t f, size_t end)
{
	const uint8_t *s = p->buf + p->fstart;
	size_t n = end - p->fstart;
	struct rp_proxy_hdr *h = &p->hdr;
	bool v4 = v1_is_tcp4(p);
	struct sockaddr_storage *ss = f == 2 || f == 4 ? &h->src : &h->dst;

	if (f == 1) {
		/* "TCP4" or "TCP6" ("UNKNOWN" never ends with a space: it switches
		 * to skipping at its 7th letter). */
		if (n != 4 || memcmp(s, "TCP", 3) != 0)
			return RP_PROXY_R_V1_PROTOCOL;
		if (v4) {
			h->family = AF_INET;
			h->addrlen = sizeof(struct sockaddr_in);
		} else {
			h->family = AF_INET6;
			h->addrlen = sizeof(struct sockaddr_in6);
		}
		h->src.ss_family = h->dst.ss_family = (sa_family_t)h->family;
		h->socktype = SOCK_STREAM;
		return RP_PROXY_R_NONE;
	}
	if (f <= 3) {
		bool ok = v4 ? parse_v4(s, n, (uint8_t *)&((struct sockaddr_in *)ss)->sin_addr)
			     : parse_v6(s, n, ((struct sockaddr_in6 *)ss)->sin6_addr.s6_addr);

		return ok ? RP_PROXY_R_NONE : RP_PROXY_R_V1_ADDRESS;
	}
	if (!parse_port(s, n,
			v4 ? &((struct sockaddr_in *)ss)->sin_port
			   : &((struct sockaddr_in6 *)ss)->sin6_port))
		return RP_PROXY_R_V1_PORT;
	return RP_PROXY_R_NONE;
}

/* Can @c belong to field @f of a line whose protocol is known? */
static enum rp_proxy_reason v1_char_ok(const struct rp_proxy_parser *p, uint8_t c, size_t flen)
{
	bool v4 = v1_is_tcp4(p);

	if (p->field <= 3) {
		if (v4 ? !((c >= '0' && c <= '9') || c == '.')
		       : !(is_hex(c) || c == ':' || c == '.'))
			return RP_PROXY_R_V1_ADDRESS;
		if (flen > (v4 ? V4_TEXT_MAX : V6_TEXT_MAX))
			return RP_PROXY_R_V1_ADDRESS;
		return RP_PROXY_R_NONE;
	}
	if (c < '0' || c > '9' || flen > PORT_TEXT_MAX)
		return RP_PROXY_R_V1_PORT;
	return RP_PROXY_R_NONE;
}

/* The v1 byte at buf[have - 1] was just added. */
static enum rp_proxy_status v1_byte(struct rp_proxy_parser *p)
{
	size_t at = p->have - 1;
	uint8_t c = p->buf[at];
	enum rp_proxy_reason r;

	if (at < V1_SIG_LEN) {
		if (c != (uint8_t)V1_SIG[at])
			return refuse(p, RP_PROXY_R_SIGNATURE);
		if (at == V1_SIG_LEN - 1) {
			p->field = 1;
			p->fstart = V1_SIG_LEN;
		}
		goto more;
	}
	if (p->v1_cr) {
		/* Only the line's end may hold a CR. */
		if (c != '\n')
			return refuse(p, RP_PROXY_R_V1_FORMAT);
		p->hdr.len = p->have;
		p->hdr.version = 1;
		p->status = RP_PROXY_DONE;
		p->need = 0;
		return RP_PROXY_DONE;
	}
	if (p->v1_unknown) {
		/* Anything up to the CRLF is ignored. */
		if (c == '\r')
			p->v1_cr = 1;
		goto more;
	}
	if (p->field == 1) {
		static const char *const protos[] = {"TCP4", "TCP6", "UNKNOWN"};
		size_t flen = at - p->fstart; /* letters before c */
		bool prefix = false;

		if (c == ' ') {
			if (flen == 0)
				return refuse(p, RP_PROXY_R_V1_FORMAT);
			r = v1_field_end(p, 1, at);
			if (r)
				return refuse(p, r);
			p->field = 2;
			p->fstart = (uint8_t)(at + 1);
			goto more;
		}
		if (c == '\r' || c == '\n') /* "TCP4" without its addresses: a format error */
			return refuse(p, flen == 4 && memcmp(p->buf + p->fstart, "TCP", 3) == 0
						 ? RP_PROXY_R_V1_FORMAT
						 : RP_PROXY_R_V1_PROTOCOL);
		for (size_t i = 0; i < 3; i++)
			prefix |= flen < strlen(protos[i]) &&
				  memcmp(p->buf + p->fstart, protos[i], flen) == 0 &&
				  c == (uint8_t)protos[i][flen];
		if (!prefix)
			return refuse(p, RP_PROXY_R_V1_PROTOCOL);
		if (flen + 1 == 7) { /* "UNKNOWN" is the only 7-letter prefix */
			p->v1_unknown = 1;
			p->hdr.local = true;
			p->hdr.family = AF_UNSPEC;
		}
		goto more;
	}
	if (c == ' ' || c == '\r') {
		size_t flen = at - p->fstart;

		if (flen == 0 || (c == ' ') != (p->field < 5))
			return refuse(p, RP_PROXY_R_V1_FORMAT);
		r = v1_field_end(p, p->field, at);
		if (r)
			return refuse(p, r);
		if (c == '\r')
			p->v1_cr = 1;
		p->field++;
		p->fstart = (uint8_t)(at + 1);
		goto more;
	}
	if (c == '\n')
		return refuse(p, RP_PROXY_R_V1_FORMAT);
	r = v1_char_ok(p, c, at + 1 - p->fstart);
	if (r)
		return refuse(p, r);
more:
	if (p->have >= RP_PROXY_V1_MAX)
		return refuse(p, RP_PROXY_R_V1_TOO_LONG);
	p->need = p->have < RP_PROXY_MIN ? RP_PROXY_MIN - p->have : 1;
	return RP_PROXY_MORE;
}

static size_t v2_addr_len(uint8_t fam)
{
	switch (fam >> 4) {
	case 1:
		return V2_INET_LEN;
	case 2:
		return V2_INET6_LEN;
	case 3:
		return V2_UNIX_LEN;
	default:
		return 0;
	}
}

/* One of the seven family/transport bytes the spec names. */
static bool v2_fam_known(uint8_t fam)
{
	switch (fam) {
	case 0x00:
	case 0x11:
	case 0x12:
	case 0x21:
	case 0x22:
	case 0x31:
	case 0x32:
		return true;
	default:
		return false;
	}
}

/* A byte of the fixed 16-byte part was just added at buf[have - 1]. */
static enum rp_proxy_status v2_fixed_byte(struct rp_proxy_parser *p)
{
	size_t at = p->have - 1;
	uint8_t c = p->buf[at];

	if (at < V2_SIG_LEN) {
		if (c != v2_sig[at])
			return refuse(p, RP_PROXY_R_SIGNATURE);
	} else if (at == 12) {
		if ((c >> 4) != 2)
			return refuse(p, RP_PROXY_R_V2_VERSION);
		if ((c & 0x0f) > 1)
			return refuse(p, RP_PROXY_R_V2_COMMAND);
	} else if (at == 13) {
		if (!v2_fam_known(c))
			return refuse(p, RP_PROXY_R_V2_FAMILY);
	} else if (at == 15) {
		size_t len = (size_t)p->buf[14] << 8 | p->buf[15];

		if (V2_FIXED + len > RP_PROXY_V2_MAX)
			return refuse(p, RP_PROXY_R_V2_TOO_LONG);
		if (len < v2_addr_len(p->buf[13]))
			return refuse(p, RP_PROXY_R_V2_ADDR_LEN);
		p->total = (uint16_t)(V2_FIXED + len);
	}
	p->need = (p->total ? p->total : V2_FIXED) - p->have;
	return RP_PROXY_MORE;
}

/* The SSL TLV's value: client, verify, then sub-TLVs that fill it exactly. */
static enum rp_proxy_reason v2_ssl_check(const uint8_t *v, size_t n)
{
	size_t i = SSL_FIXED;

	if (n < SSL_FIXED)
		return RP_PROXY_R_V2_TLV_VALUE;
	while (i < n) {
		size_t len;

		if (n - i < TLV_HDR)
			return RP_PROXY_R_V2_TLV;
		len = (size_t)v[i + 1] << 8 | v[i + 2];
		if (len > n - i - TLV_HDR)
			return RP_PROXY_R_V2_TLV;
		i += TLV_HDR + len;
	}
	return RP_PROXY_R_NONE;
}

static enum rp_proxy_reason v2_tlvs_check(struct rp_proxy_parser *p, size_t off)
{
	static const uint8_t zero[4];
	size_t crc_at = 0, i = off;
	enum rp_proxy_reason r;

	while (i < p->total) {
		size_t len;
		uint8_t type;

		if (p->total - i < TLV_HDR)
			return RP_PROXY_R_V2_TLV;
		type = p->buf[i];
		len = (size_t)p->buf[i + 1] << 8 | p->buf[i + 2];
		if (len > p->total - i - TLV_HDR)
			return RP_PROXY_R_V2_TLV;
		switch (type) {
		case RP_PROXY_TLV_CRC32C:
			if (len != 4 || crc_at)
				return RP_PROXY_R_V2_TLV_VALUE;
			crc_at = i + TLV_HDR;
			break;
		case RP_PROXY_TLV_UNIQUE_ID:
			if (len > UNIQUE_ID_MAX)
				return RP_PROXY_R_V2_TLV_VALUE;
			break;
		case RP_PROXY_TLV_SSL:
			r = v2_ssl_check(p->buf + i + TLV_HDR, len);
			if (r)
				return r;
			break;
		default:
			break; /* the spec's other types and custom ones: opaque */
		}
		i += TLV_HDR + len;
	}
	if (crc_at) {
		/* Over the whole header with the value zeroed, without touching
		 * the copy: the CRC chains over the three parts. */
		uint32_t crc = rp_crc32c(0, p->buf, crc_at);

		crc = rp_crc32c(crc, zero, 4);
		crc = rp_crc32c(crc, p->buf + crc_at + 4, p->total - crc_at - 4);
		if (crc != get_be32(p->buf + crc_at))
			return RP_PROXY_R_V2_CRC;
		p->hdr.has_crc = true;
	}
	return RP_PROXY_R_NONE;
}

/* The whole v2 header is in buf[0, total). */
static enum rp_proxy_status v2_complete(struct rp_proxy_parser *p)
{
	struct rp_proxy_hdr *h = &p->hdr;
	uint8_t fam = p->buf[13];
	const uint8_t *a = p->buf + V2_FIXED;
	size_t alen = v2_addr_len(fam);
	enum rp_proxy_reason r;

	r = v2_tlvs_check(p, V2_FIXED + alen);
	if (r)
		return refuse(p, r);
	h->version = 2;
	h->len = p->total;
	h->tlv_off = (uint16_t)(V2_FIXED + alen);
	h->tlv_len = (uint16_t)(p->total - h->tlv_off);
	/* LOCAL, or PROXY over an unspecified family: the spec's "use the
	 * real connection endpoints"; the address block is skipped. */
	if ((p->buf[12] & 0x0f) == 0 || fam == 0x00) {
		h->local = true;
		h->family = AF_UNSPEC;
		goto done;
	}
	h->socktype = (fam & 0x0f) == 1 ? SOCK_STREAM : SOCK_DGRAM;
	if (alen == V2_INET_LEN) {
		struct sockaddr_in *s = (struct sockaddr_in *)&h->src;
		struct sockaddr_in *d = (struct sockaddr_in *)&h->dst;

		h->family = AF_INET;
		h->addrlen = sizeof(*s);
		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, a, 4);
		memcpy(&d->sin_addr, a + 4, 4);
		memcpy(&s->sin_port, a + 8, 2);
		memcpy(&d->sin_port, a + 10, 2);
	} else if (alen == V2_INET6_LEN) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&h->src;
		struct sockaddr_in6 *d = (struct sockaddr_in6 *)&h->dst;

		h->family = AF_INET6;
		h->addrlen = sizeof(*s);
		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, a, 16);
		memcpy(&d->sin6_addr, a + 16, 16);
		memcpy(&s->sin6_port, a + 32, 2);
		memcpy(&d->sin6_port, a + 34, 2);
	} else {
		struct sockaddr_un *s = (struct sockaddr_un *)&h->src;
		struct sockaddr_un *d = (struct sockaddr_un *)&h->dst;

		h->family = AF_UNIX;
		h->addrlen = sizeof(*s);
		s->sun_family = d->sun_family = AF_UNIX;
		memcpy(s->sun_path, a, UNIX_PATH_LEN);
		memcpy(d->sun_path, a + UNIX_PATH_LEN, UNIX_PATH_LEN);
	}
done:
	p->status = RP_PROXY_DONE;
	p->need = 0;
	return RP_PROXY_DONE;
}

int rp_proxy_feed(struct rp_proxy_parser *p, const void *data, size_t len, size_t *consumed)
{
	const uint8_t *in = data;
	size_t used = 0;
	int st;

	if (consumed)
		*consumed = 0;
	if (!p || (!data && len))
		return -EINVAL;
	st = p->status;
	while (st == RP_PROXY_MORE && used < len) {
		/* Anything but 'P' goes the v2 way, where a first byte other
		 * than the signature's '\r' is refused at once. */
		if ((p->have ? p->buf[0] : in[used]) == 'P') {
			p->buf[p->have++] = in[used++];
			st = v1_byte(p);
		} else if (p->have < V2_FIXED) {
			p->buf[p->have++] = in[used++];
			st = v2_fixed_byte(p);
			if (st == RP_PROXY_MORE && p->have == p->total)
				st = v2_complete(p); /* a header of exactly 16 bytes */
		} else {
			size_t n = p->total - p->have;

			if (n > len - used)
				n = len - used;
			memcpy(p->buf + p->have, in + used, n);
			p->have = (uint16_t)(p->have + n);
			used += n;
			p->need = p->total - p->have;
			if (p->have == p->total)
				st = v2_complete(p);
		}
	}
	if (consumed)
		*consumed = used;
	return st;
}

int rp_proxy_tlv_next(const struct rp_proxy_parser *p, size_t *pos, struct rp_proxy_tlv *tlv)
{
	size_t i, len;

	if (!p || !pos || !tlv || p->status != RP_PROXY_DONE)
		return -EINVAL;
	if (p->hdr.version != 2)
		return 0;
	if (*pos > p->hdr.tlv_len)
		return -EINVAL;
	if (*pos == p->hdr.tlv_len)
		return 0;
	i = p->hdr.tlv_off + *pos;
	if (p->hdr.len - i < TLV_HDR)
		return -EINVAL;
	len = (size_t)p->buf[i + 1] << 8 | p->buf[i + 2];
	if (len > p->hdr.len - i - TLV_HDR)
		return -EINVAL;
	tlv->type = p->buf[i];
	tlv->len = (uint16_t)len;
	tlv->value = p->buf + i + TLV_HDR;
	*pos += TLV_HDR + len;
	return 1;
}
