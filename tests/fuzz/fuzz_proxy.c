/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the PROXY protocol parser (include/ringplane/proxy.h).
 *
 * Input: one byte that seeds how the rest is cut into pieces, then the bytes
 * a client would send. The rest is parsed once in one piece and again in
 * pieces of pseudo-random sizes (1..64 bytes, from the seed), each piece in
 * its own malloc'd buffer of exactly its size so ASan sees any read past a
 * piece. Checked, trapping on any violation:
 *   - both parses agree: status, reason, bytes consumed, need, the result;
 *   - MORE took every byte; DONE took exactly the header (at most
 *     RP_PROXY_V1_MAX for v1, ending in CRLF; at most RP_PROXY_V2_MAX for v2);
 *     REFUSED has a reason with a name, DONE and MORE have none;
 *   - a v2 result's TLVs walk to exactly the TLV area;
 *   - the header written again from the result (v1 from v1, v2 from v2,
 *     with a CRC TLV when it had one; LOCAL/UNKNOWN when it was local)
 *     parses to the same addresses and ports, an IPv4 pair given as
 *     v4-mapped IPv6 coming back as IPv4 (the writer's documented rule).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <ringplane/proxy.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			__builtin_trap();                                                          \
	} while (0)

static int feed_pieces(struct rp_proxy_parser *p, const uint8_t *in, size_t n, uint8_t seed,
		       size_t *taken)
{
	uint32_t s = 0x9E3779B9u ^ seed;
	size_t off = 0, used;
	int st = RP_PROXY_MORE;

	*taken = 0;
	rp_proxy_parser_init(p);
	while (off < n) {
		size_t len;
		uint8_t *piece;

		s ^= s << 13;
		s ^= s >> 17;
		s ^= s << 5;
		len = 1 + s % 64;
		if (len > n - off)
			len = n - off;
		piece = malloc(len);
		CHECK(piece);
		memcpy(piece, in + off, len);
		st = rp_proxy_feed(p, piece, len, &used);
		free(piece);
		CHECK(st >= 0 && used <= len);
		*taken += used;
		if (st != RP_PROXY_MORE)
			break;
		CHECK(used == len);
		off += len;
	}
	/* An empty piece changes nothing. */
	CHECK(rp_proxy_feed(p, NULL, 0, &used) == st && used == 0);
	return st;
}

/* An IPv4 pair in v4-mapped IPv6 is written (and so read back) as IPv4. */
static void canon(const struct rp_proxy_hdr *h, int *family, uint8_t src[16], uint8_t dst[16],
		  uint16_t *sport, uint16_t *dport)
{
	*family = h->family;
	memset(src, 0, 16);
	memset(dst, 0, 16);
	*sport = *dport = 0;
	if (h->family == AF_INET) {
		const struct sockaddr_in *s = (const void *)&h->src, *d = (const void *)&h->dst;

		memcpy(src, &s->sin_addr, 4);
		memcpy(dst, &d->sin_addr, 4);
		*sport = s->sin_port;
		*dport = d->sin_port;
	} else if (h->family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)&h->src, *d = (const void *)&h->dst;

		*sport = s->sin6_port;
		*dport = d->sin6_port;
		if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr) && IN6_IS_ADDR_V4MAPPED(&d->sin6_addr)) {
			*family = AF_INET;
			memcpy(src, s->sin6_addr.s6_addr + 12, 4);
			memcpy(dst, d->sin6_addr.s6_addr + 12, 4);
		} else {
			memcpy(src, &s->sin6_addr, 16);
			memcpy(dst, &d->sin6_addr, 16);
		}
	}
}

static void check_rewrite(const struct rp_proxy_hdr *h)
{
	uint8_t out[RP_PROXY_V2_MAX];
	struct rp_proxy_parser q;
	const struct sockaddr *src = h->local ? NULL : (const struct sockaddr *)&h->src;
	const struct sockaddr *dst = h->local ? NULL : (const struct sockaddr *)&h->dst;
	ssize_t n;
	size_t used;
	int fa, fb;
	uint8_t sa[16], da[16], sb[16], db[16];
	uint16_t spa, dpa, spb, dpb;

	if (h->version == 1)
		n = rp_proxy_v1_write((char *)out, sizeof(out), src, dst);
	else
		n = rp_proxy_v2_write(out, sizeof(out), src, dst,
				      h->has_crc ? RP_PROXY_V2_CRC32C : 0);
	CHECK(n > 0 && (size_t)n <= sizeof(out));
	rp_proxy_parser_init(&q);
	CHECK(rp_proxy_feed(&q, out, (size_t)n, &used) == RP_PROXY_DONE);
	CHECK(used == (size_t)n && q.hdr.len == (size_t)n);
	CHECK(q.hdr.version == h->version && q.hdr.local == h->local);
	CHECK(q.hdr.has_crc == h->has_crc);
	if (h->local)
		return;
	canon(h, &fa, sa, da, &spa, &dpa);
	canon(&q.hdr, &fb, sb, db, &spb, &dpb);
	CHECK(fa == fb);
	if (fa == AF_UNIX) {
		CHECK(memcmp(((const struct sockaddr_un *)&h->src)->sun_path,
			     ((const struct sockaddr_un *)&q.hdr.src)->sun_path, 108) == 0);
		CHECK(memcmp(((const struct sockaddr_un *)&h->dst)->sun_path,
			     ((const struct sockaddr_un *)&q.hdr.dst)->sun_path, 108) == 0);
		return;
	}
	CHECK(memcmp(sa, sb, 16) == 0 && memcmp(da, db, 16) == 0);
	CHECK(spa == spb && dpa == dpb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rp_proxy_parser one, many;
	const uint8_t *in;
	size_t n, used, taken;
	int st, st2;

	if (size < 1)
		return 0;
	in = data + 1;
	n = size - 1;

	rp_proxy_parser_init(&one);
	st = rp_proxy_feed(&one, n ? in : NULL, n, &used);
	st2 = feed_pieces(&many, in, n, data[0], &taken);

	CHECK(st == RP_PROXY_MORE || st == RP_PROXY_DONE || st == RP_PROXY_REFUSED);
	CHECK(st == st2 && used == taken);
	CHECK(one.reason == many.reason && one.need == many.need);
	CHECK(memcmp(&one.hdr, &many.hdr, sizeof(one.hdr)) == 0);
	CHECK(used <= n);

	switch (st) {
	case RP_PROXY_MORE:
		CHECK(used == n && one.reason == RP_PROXY_R_NONE && one.need >= 1);
		break;
	case RP_PROXY_REFUSED:
		CHECK(one.reason > RP_PROXY_R_NONE && one.reason < RP_PROXY_R_COUNT);
		CHECK(strcmp(rp_proxy_reason_name(one.reason), "invalid") != 0);
		CHECK(used >= 1 && one.need == 0);
		break;
	case RP_PROXY_DONE: {
		struct rp_proxy_tlv t;
		size_t pos = 0, walked = 0;
		int rc = -1;

		CHECK(one.reason == RP_PROXY_R_NONE && one.need == 0);
		CHECK(used == one.hdr.len);
		if (one.hdr.version == 1) {
			CHECK(used <= RP_PROXY_V1_MAX && used >= RP_PROXY_MIN);
			CHECK(in[used - 2] == '\r' && in[used - 1] == '\n');
			CHECK(memcmp(in, "PROXY ", 6) == 0);
		} else {
			CHECK(one.hdr.version == 2 && used >= 16 && used <= RP_PROXY_V2_MAX);
			CHECK(one.hdr.tlv_off + one.hdr.tlv_len == one.hdr.len);
		}
		for (unsigned i = 0; i < RP_PROXY_V2_MAX; i++) {
			rc = rp_proxy_tlv_next(&one, &pos, &t);
			CHECK(rc >= 0);
			if (rc == 0)
				break;
			walked += 3u + t.len;
			CHECK(t.value >= one.buf && t.value + t.len <= one.buf + one.hdr.len);
		}
		CHECK(rc == 0 && walked == (one.hdr.version == 2 ? one.hdr.tlv_len : 0u));
		check_rewrite(&one.hdr);
		break;
	}
	default:
		CHECK(0);
	}
	return 0;
}
