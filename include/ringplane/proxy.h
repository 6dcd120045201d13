/* SPDX-License-Identifier: MIT */
/*
 * ringplane proxy: the PROXY protocol, versions 1 and 2 (HAProxy's
 * doc/proxy-protocol.txt), written and read without allocating.
 *
 * Writing. rp_proxy_v1_write() and rp_proxy_v2_write() put the header for a
 * connection from @src to @dst into a caller's buffer and return its length.
 * A NULL @src asks for the header that says "no addresses": "PROXY UNKNOWN"
 * in v1, the LOCAL command in v2. IPv4 addresses given as v4-mapped IPv6
 * (::ffff:a.b.c.d, what a dual-stack socket reports for an IPv4 peer) are
 * written as IPv4 when both ends are IPv4; if only one is, it is written
 * v4-mapped so both ends share the IPv6 family.
 *
 * Reading. A struct rp_proxy_parser is fed the connection's first bytes as
 * they arrive, in pieces of any size, with rp_proxy_feed(). It copies the
 * header into itself (at most RP_PROXY_HDR_MAX bytes), so the caller's
 * buffers can be reused between calls, and it never takes a byte past the
 * header: what rp_proxy_feed() reports as consumed is header, the rest of
 * the piece is payload for the caller to pass on. The result depends only
 * on the bytes, never on how they were split. A byte that can start no
 * valid header is refused as soon as it arrives: plain data sent by a client
 * that should have sent a header is refused at its first byte (a first
 * byte other than 'P' or '\r'). docs/proxy.md lists every rule.
 *
 * Threads: none of these functions keeps state outside its arguments; a
 * parser may move between threads but is used by one at a time.
 *
 * Errors: functions returning ssize_t or int return a negative errno for a
 * misuse (NULL where a pointer is needed, a too small buffer); a peer's bad
 * header is not an error but a RP_PROXY_REFUSED result with its reason.
 */
#ifndef RINGPLANE_PROXY_H
#define RINGPLANE_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The longest v1 header, CRLF included (the spec's limit). */
#define RP_PROXY_V1_MAX 107
/*
 * The longest v2 header this parser takes: 16 bytes + the length field. The
 * spec lets a v2 header be 16 + 65535 bytes but asks senders to keep it
 * within the first TCP segment; 536 is the smallest MSS an IPv4 host must
 * accept, so a sender that follows the spec never needs more. A v2 header
 * announcing more is refused (RP_PROXY_R_V2_TOO_LONG).
 */
#define RP_PROXY_V2_MAX 536
/* Room for either header: the size of the copy a parser keeps. */
#define RP_PROXY_HDR_MAX RP_PROXY_V2_MAX
/* The shortest header of either version ("PROXY UNKNOWN\r\n"). */
#define RP_PROXY_MIN 15

/* rp_proxy_v2_write flags */
enum {
	RP_PROXY_V2_CRC32C = 1u << 0, /* append a PP2_TYPE_CRC32C TLV */
};

/* v2 TLV types named by the spec (PP2_TYPE_*) that the parser checks. */
enum {
	RP_PROXY_TLV_ALPN = 0x01,
	RP_PROXY_TLV_AUTHORITY = 0x02,
	RP_PROXY_TLV_CRC32C = 0x03, /* 4 bytes, big-endian, at most once */
	RP_PROXY_TLV_NOOP = 0x04,
	RP_PROXY_TLV_UNIQUE_ID = 0x05, /* at most 128 bytes */
	RP_PROXY_TLV_SSL = 0x20,       /* client(1) verify(4) then sub-TLVs */
	RP_PROXY_TLV_NETNS = 0x30,
};

enum rp_proxy_status {
	RP_PROXY_MORE = 0,    /* a valid beginning: feed more (parser.need) */
	RP_PROXY_DONE = 1,    /* a whole valid header: parser.hdr */
	RP_PROXY_REFUSED = 2, /* not a valid header: parser.reason */
};

/* Why a header was refused; rp_proxy_reason_name() gives each a name. */
enum rp_proxy_reason {
	RP_PROXY_R_NONE = 0,	 /* not refused */
	RP_PROXY_R_SIGNATURE,	 /* starts neither "PROXY " nor the v2 signature */
	RP_PROXY_R_V1_TOO_LONG,	 /* no CRLF within RP_PROXY_V1_MAX bytes */
	RP_PROXY_R_V1_PROTOCOL,	 /* not TCP4, TCP6 or UNKNOWN */
	RP_PROXY_R_V1_FORMAT,	 /* separators: not single spaces, too few or
				    many fields, CR without LF, LF without CR */
	RP_PROXY_R_V1_ADDRESS,	 /* an address not valid for the protocol */
	RP_PROXY_R_V1_PORT,	 /* a port not in 0..65535 as plain decimal */
	RP_PROXY_R_V2_VERSION,	 /* version nibble not 2 */
	RP_PROXY_R_V2_COMMAND,	 /* command neither LOCAL nor PROXY */
	RP_PROXY_R_V2_FAMILY,	 /* family/transport byte not one of the spec's */
	RP_PROXY_R_V2_TOO_LONG,	 /* header longer than RP_PROXY_V2_MAX */
	RP_PROXY_R_V2_ADDR_LEN,	 /* length field shorter than the address block */
	RP_PROXY_R_V2_TLV,	 /* a TLV (or SSL sub-TLV) runs past its end */
	RP_PROXY_R_V2_TLV_VALUE, /* a known TLV with a bad length: CRC32C not 4
				    bytes or twice, UNIQUE_ID over 128, SSL
				    shorter than 5 */
	RP_PROXY_R_V2_CRC,	 /* the CRC32C TLV does not match the header */
	RP_PROXY_R_COUNT
};

/* A whole header as read: valid once rp_proxy_feed() returned RP_PROXY_DONE. */
struct rp_proxy_hdr {
	uint16_t len;	   /* bytes of the header (consumed in all) */
	uint8_t version;   /* 1 or 2 */
	bool local;	   /* true: use the connection's own addresses (v2 LOCAL,
			      v2 family UNSPEC, v1 UNKNOWN); src and dst are then
			      zero, family AF_UNSPEC */
	bool has_crc;	   /* v2: a CRC32C TLV was there (and matched) */
	int family;	   /* AF_INET, AF_INET6, AF_UNIX or AF_UNSPEC */
	int socktype;	   /* SOCK_STREAM, SOCK_DGRAM (v2 only), 0 when local */
	socklen_t addrlen; /* of src and of dst; 0 when local */
	/* In network order, as the header gave them; a TCP6 line or an INET6
	 * block holding v4-mapped addresses stays AF_INET6. */
	struct sockaddr_storage src, dst;
	uint16_t tlv_off, tlv_len; /* v2: the TLV area in the parser's copy */
};

/* One v2 TLV, pointing into the parser that holds the header. */
struct rp_proxy_tlv {
	uint8_t type;
	uint16_t len;
	const uint8_t *value;
};

/*
 * A parser. Set it up with rp_proxy_parser_init(); the fields above
 * "private" are for reading, the rest belongs to the parser. About 900
 * bytes: the header's copy is the bulk of it.
 */
struct rp_proxy_parser {
	enum rp_proxy_status status;
	enum rp_proxy_reason reason; /* RP_PROXY_R_NONE unless refused */
	size_t need;		     /* RP_PROXY_MORE: at least this many more bytes (exact
					once a v2 header's length field is in); else 0 */
	struct rp_proxy_hdr hdr;
	/* private */
	uint16_t have;	/* header bytes copied into buf */
	uint16_t total; /* v2: the whole header's length once known */
	uint8_t field;	/* v1: the field being read (0 "PROXY" .. 5 dport) */
	uint8_t fstart; /* v1: its first byte in buf */
	uint8_t v1_unknown, v1_cr;
	uint8_t buf[RP_PROXY_HDR_MAX];
};

/*
 * rp_proxy_v1_write - write the v1 line for a TCP connection from @src to
 * @dst into @buf: "PROXY TCP4 a b p q\r\n", "PROXY TCP6 ...", or, when @src
 * is NULL, "PROXY UNKNOWN\r\n" (@dst is then ignored). @src and @dst are
 * AF_INET or AF_INET6 (v4-mapped addresses as the file comment says).
 * No NUL is written. Returns the length (at most RP_PROXY_V1_MAX), or
 * -EINVAL (@buf NULL, or @dst NULL with @src set), -EAFNOSUPPORT (another
 * family), -ENOSPC (@cap too small; nothing written).
 */
ssize_t rp_proxy_v1_write(char *buf, size_t cap, const struct sockaddr *src,
			  const struct sockaddr *dst);

/*
 * rp_proxy_v2_write - write the v2 header for a connection from @src to
 * @dst into @buf: the PROXY command over STREAM with the INET, INET6 or UNIX
 * address block (AF_UNIX: @src and @dst are whole struct sockaddr_un, all
 * 108 bytes of sun_path are copied), or, when @src is NULL, the LOCAL
 * command with family UNSPEC and no addresses (@dst ignored). @flags:
 * RP_PROXY_V2_CRC32C appends a CRC32C TLV over the whole header (computed
 * with the TLV's value zeroed, stored big-endian, as the spec says).
 * Returns the length (at most 16 + 216 + 7), or -EINVAL (@buf NULL, @dst
 * NULL with @src set, unknown flags), -EAFNOSUPPORT (another family, or
 * AF_UNIX mixed with INET), -ENOSPC (@cap too small; nothing written).
 */
ssize_t rp_proxy_v2_write(void *buf, size_t cap, const struct sockaddr *src,
			  const struct sockaddr *dst, unsigned flags);

/* rp_proxy_parser_init - make @p ready for a new connection's first byte. */
void rp_proxy_parser_init(struct rp_proxy_parser *p);

/*
 * rp_proxy_feed - give @p the next @len bytes of the connection (@data may
 * be NULL when @len is 0). Reads no byte of @data past @len and takes none
 * past the header's end; *@consumed (may be NULL) is set to the bytes of
 * @data taken: on RP_PROXY_DONE the rest, @data + *@consumed, is payload
 * that belongs to the caller. Returns RP_PROXY_MORE, RP_PROXY_DONE (see
 * @p->hdr) or RP_PROXY_REFUSED (see @p->reason), and sets @p->status to it.
 * Once DONE or REFUSED it stays so: later calls take nothing and return
 * the same. Returns -EINVAL when @p is NULL, or @data NULL with @len > 0.
 */
int rp_proxy_feed(struct rp_proxy_parser *p, const void *data, size_t len, size_t *consumed);

/*
 * rp_proxy_tlv_next - walk the TLVs of the v2 header @p holds (status
 * RP_PROXY_DONE), in order. Start with *@pos = 0; each call fills @tlv
 * (value points into @p, valid until @p is re-initialised) and advances
 * *@pos. Returns 1 for a TLV, 0 at the end (and for v1 headers), -EINVAL if
 * an argument is NULL, @p holds no parsed header, or *@pos is past the TLV
 * area or does not start a TLV that fits in it (a position this function
 * gave always does).
 */
int rp_proxy_tlv_next(const struct rp_proxy_parser *p, size_t *pos, struct rp_proxy_tlv *tlv);

/*
 * rp_proxy_reason_name - a short stable name for @r ("v1_port",
 * "v2_crc"...) for counters and logs; "invalid" for a value out of range.
 * Static storage.
 */
const char *rp_proxy_reason_name(enum rp_proxy_reason r);

#ifdef __cplusplus
}
#endif

#endif /* RINGPLANE_PROXY_H */
