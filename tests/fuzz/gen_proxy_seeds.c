/* SPDX-License-Identifier: MIT */
/*
 * Seed corpus for fuzz_proxy: gen_proxy_seeds DIR writes one file per seed
 * into DIR (which must exist). Each seed is the fuzzer's input layout: one
 * byte that seeds the split, then a connection's first bytes: valid v1 and
 * v2 headers (TCP4, TCP6, v4-mapped, UNIX, LOCAL, UNKNOWN, with and without
 * CRC, with TLVs), some followed by payload, and a few refused ones, so the
 * fuzzer starts next to both the accept and the refuse paths.
 * Deterministic: the same seeds on every run.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include <ringplane/proxy.h>

static int nseeds;

static int write_seed(const char *dir, const void *data, size_t n)
{
	char path[4096];
	uint8_t split = (uint8_t)(nseeds * 37);
	FILE *f;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/proxy-seed-%03d", dir, nseeds++);
	f = fopen(path, "wb");
	if (!f) {
		fprintf(stderr, "gen_proxy_seeds: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fwrite(&split, 1, 1, f) != 1 || (n && fwrite(data, 1, n, f) != n))
		rc = -1;
	if (fclose(f) || rc) {
		fprintf(stderr, "gen_proxy_seeds: %s: write failed\n", path);
		return -1;
	}
	return 0;
}

/* The header, then (when @payload) a few bytes of payload after it. */
static int seed_written(const char *dir, ssize_t n, uint8_t *buf, size_t cap, bool payload)
{
	static const char tail[] = "GET / HTTP/1.1\r\n\r\n";

	if (n < 0) {
		fprintf(stderr, "gen_proxy_seeds: writer failed: %zd\n", n);
		return -1;
	}
	if (payload && (size_t)n + sizeof(tail) <= cap) {
		memcpy(buf + n, tail, sizeof(tail) - 1);
		n += (ssize_t)sizeof(tail) - 1;
	}
	return write_seed(dir, buf, (size_t)n);
}

int main(int argc, char **argv)
{
	static const char *const lines[] = {
		"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
		"PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 0 65535\r\n",
		"PROXY UNKNOWN\r\n",
		"PROXY UNKNOWN x y 1 2\r\n",
		"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
		"PROXY TCP6 ::1  ::1 1 2\r\n",
		"GET / HTTP/1.0\r\n\r\n",
	};
	struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(4000)};
	struct sockaddr_in b4 = {.sin_family = AF_INET, .sin_port = htons(443)};
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(1)};
	struct sockaddr_in6 m6 = {.sin6_family = AF_INET6, .sin6_port = htons(2)};
	struct sockaddr_un ua = {.sun_family = AF_UNIX}, ub = {.sun_family = AF_UNIX};
	uint8_t buf[RP_PROXY_V2_MAX + 64];
	const char *dir;
	int rc = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: gen_proxy_seeds DIR\n");
		return 2;
	}
	dir = argv[1];
	inet_pton(AF_INET, "10.1.2.3", &a4.sin_addr);
	inet_pton(AF_INET, "172.16.0.9", &b4.sin_addr);
	inet_pton(AF_INET6, "2001:db8::abcd", &a6.sin6_addr);
	inet_pton(AF_INET6, "::ffff:192.0.2.7", &m6.sin6_addr);
	strcpy(ua.sun_path, "/run/a.sock");
	strcpy(ub.sun_path, "/run/b.sock");

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		rc |= write_seed(dir, lines[i], strlen(lines[i]));
	for (int payload = 0; payload <= 1; payload++) {
		rc |= seed_written(
			dir, rp_proxy_v1_write((char *)buf, sizeof(buf), (void *)&a4, (void *)&b4),
			buf, sizeof(buf), payload);
		rc |= seed_written(
			dir, rp_proxy_v1_write((char *)buf, sizeof(buf), (void *)&a6, (void *)&m6),
			buf, sizeof(buf), payload);
		for (unsigned crc = 0; crc <= RP_PROXY_V2_CRC32C; crc++) {
			rc |= seed_written(
				dir,
				rp_proxy_v2_write(buf, sizeof(buf), (void *)&a4, (void *)&b4, crc),
				buf, sizeof(buf), payload);
			rc |= seed_written(
				dir,
				rp_proxy_v2_write(buf, sizeof(buf), (void *)&a6, (void *)&m6, crc),
				buf, sizeof(buf), payload);
			rc |= seed_written(
				dir,
				rp_proxy_v2_write(buf, sizeof(buf), (void *)&ua, (void *)&ub, crc),
				buf, sizeof(buf), payload);
			rc |= seed_written(dir,
					   rp_proxy_v2_write(buf, sizeof(buf), NULL, NULL, crc),
					   buf, sizeof(buf), payload);
		}
	}

	/* v2 with TLVs (ALPN, UNIQUE_ID, SSL with a sub-TLV) ahead of a CRC. */
	{
		static const uint8_t tlvs[] = {0x01, 0,	  2,   'h',  '2', 0x05, 0,  3,
					       'i',  'd', '1', 0x20, 0,	  9,	1,  0,
					       0,    0,	  0,   0x21, 0,	  1,	'3'};
		ssize_t n = rp_proxy_v2_write(buf, sizeof(buf), (void *)&a4, (void *)&b4, 0);
		size_t len;

		if (n < 0)
			return 1;
		memcpy(buf + n, tlvs, sizeof(tlvs));
		len = (size_t)n + sizeof(tlvs);
		buf[14] = (uint8_t)((len - 16) >> 8);
		buf[15] = (uint8_t)(len - 16);
		rc |= write_seed(dir, buf, len);
	}
	if (rc)
		return 1;
	printf("gen_proxy_seeds: %d seeds in %s\n", nseeds, dir);
	return 0;
}
