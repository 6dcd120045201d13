/* SPDX-License-Identifier: MIT */
/*
 * Seed corpus for fuzz_delta_decode: gen_seeds DIR writes one file per seed
 * into DIR (which must exist). Each seed is the fuzzer's input layout: len
 * as two little-endian bytes, then an encoding. Valid encodings cover
 * several sizes and change densities, scattered and in runs, in both format
 * versions; a few malformed ones start the fuzzer next to the rejection paths.
 * Deterministic: the same seeds on every run.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringplane/simd.h>

#define MAX_LEN 8192

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1Dull;
}

static int write_seed(const char *dir, const char *name, size_t len, const uint8_t *enc, size_t n)
{
	char path[4096];
	uint8_t hdr[2] = {(uint8_t)(len & 0xff), (uint8_t)(len >> 8)};
	FILE *f;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f) {
		fprintf(stderr, "gen_seeds: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fwrite(hdr, 1, 2, f) != 2 || (n && fwrite(enc, 1, n, f) != n))
		rc = -1;
	if (fclose(f) || rc) {
		fprintf(stderr, "gen_seeds: %s: write failed\n", path);
		return -1;
	}
	return 0;
}

/* cur = prev with about per1000 / 1000 of the bytes changed. */
static void make_cur(uint8_t *cur, const uint8_t *prev, size_t len, unsigned per1000, int runs)
{
	memcpy(cur, prev, len);
	for (size_t i = 0; i < len; i++) {
		if (rng() % 1000 >= per1000)
			continue;
		/* In runs: the chosen byte starts a run of up to 16. */
		for (size_t k = runs ? 1 + rng() % 16 : 1; k && i < len; k--, i++)
			cur[i] ^= (uint8_t)(1 + rng() % 255);
	}
}

int main(int argc, char **argv)
{
	static const size_t lens[] = {0, 1, 7, 63, 64, 65, 200, 4096, 4097, MAX_LEN};
	static const unsigned per1000[] = {0, 1, 10, 100, 500, 1000};
	static const size_t long_runs[] = {255, 256, 257, 510, 511, 512, 1000};
	static uint8_t prev[MAX_LEN], cur[MAX_LEN], enc[MAX_LEN + 64];
	/* Malformed, each for len 4: what the decoder must refuse. */
	static const struct {
		const char *name;
		size_t n;
		uint8_t b[24];
	} bad[] = {
		{"bad-empty", 0, {0}},
		{"bad-tag", 4, {0xD0, 0x04, 0x04, 0x00}},
		{"bad-len-mismatch", 4, {0xD1, 0x05, 0x05, 0x00}},
		{"bad-truncated-varint", 3, {0xD1, 0x04, 0x84}},
		{"bad-nonminimal-varint", 5, {0xD1, 0x84, 0x00, 0x04, 0x00}},
		{"bad-overlong-varint",
		 13,
		 {0xD1, 0x04, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}},
		/* 10-byte varints of 4 + 2^63: one mutated bit from a value that
		 * only the 64-bit overflow check rejects. */
		{"bad-varint10-len",
		 13,
		 {0xD1, 0x84, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x04, 0x00}},
		{"bad-varint10-skip",
		 13,
		 {0xD1, 0x04, 0x84, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00}},
		{"bad-varint10-lit",
		 17,
		 {0xD1, 0x04, 0x00, 0x84, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
		  0x11, 0x22, 0x33, 0x44}},
		{"bad-record-0-0", 4, {0xD1, 0x04, 0x00, 0x00}},
		{"bad-lit0-not-last", 8, {0xD1, 0x04, 0x02, 0x00, 0x00, 0x02, 0x11, 0x22}},
		{"bad-lit-missing", 7, {0xD1, 0x04, 0x00, 0x04, 0x11, 0x22, 0x33}},
		{"bad-trailing", 5, {0xD1, 0x04, 0x04, 0x00, 0x00}},
		{"bad-short", 6, {0xD1, 0x04, 0x00, 0x02, 0x11, 0x22}},
		/* v2: D2 len ns nr singles{off16, x} runs{off16, lit} bytes */
		{"bad-v2-single-at-len", 7, {0xD2, 0x04, 0x01, 0x00, 0x04, 0x00, 0x11}},
		{"bad-v2-run-past-len", 9, {0xD2, 0x04, 0x00, 0x01, 0x03, 0x00, 0x02, 0x11, 0x22}},
		{"bad-v2-empty-run", 7, {0xD2, 0x04, 0x00, 0x01, 0x01, 0x00, 0x00}},
		{"bad-v2-run-bytes-short", 8, {0xD2, 0x04, 0x00, 0x01, 0x01, 0x00, 0x02, 0x11}},
		{"bad-v2-run-bytes-extra",
		 10,
		 {0xD2, 0x04, 0x00, 0x01, 0x01, 0x00, 0x02, 0x11, 0x22, 0x33}},
		{"bad-v2-counts-too-large", 7, {0xD2, 0x04, 0x02, 0x01, 0x01, 0x00, 0x11}},
		{"bad-v2-len-mismatch", 4, {0xD2, 0x05, 0x00, 0x00}},
	};
	char name[64];
	unsigned count = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
		size_t len = lens[l];

		for (size_t d = 0; d < sizeof(per1000) / sizeof(per1000[0]); d++) {
			for (int runs = 0; runs <= 1; runs++) {
				size_t n;

				for (size_t i = 0; i < len; i++)
					prev[i] = (uint8_t)rng();
				make_cur(cur, prev, len, per1000[d], runs);
				/* v2 too: its tables are what the fuzzer mutates next. */
				n = rp_delta_encode_ver(enc, sizeof(enc), cur, prev, len,
							RP_DELTA_V2);
				if (n == 0) {
					fprintf(stderr, "gen_seeds: v2 encode failed for len %zu\n",
						len);
					return 1;
				}
				snprintf(name, sizeof(name), "valid-v2-len%zu-d%u-%s", len,
					 per1000[d], runs ? "runs" : "scattered");
				if (write_seed(argv[1], name, len, enc, n))
					return 1;
				count++;
				n = rp_delta_encode_ver(enc, sizeof(enc), cur, prev, len,
							RP_DELTA_V1);
				if (n == 0) {
					fprintf(stderr, "gen_seeds: encode failed for len %zu\n",
						len);
					return 1;
				}
				snprintf(name, sizeof(name), "valid-len%zu-d%u-%s", len, per1000[d],
					 runs ? "runs" : "scattered");
				if (write_seed(argv[1], name, len, enc, n))
					return 1;
				count++;
				/* The same encoding cut short and with a byte appended. */
				if (len == 200 || len == 4096) {
					snprintf(name, sizeof(name), "bad-cut-len%zu-d%u-%s", len,
						 per1000[d], runs ? "runs" : "scattered");
					if (write_seed(argv[1], name, len, enc, n / 2))
						return 1;
					enc[n] = 0;
					snprintf(name, sizeof(name), "bad-extra-len%zu-d%u-%s", len,
						 per1000[d], runs ? "runs" : "scattered");
					if (write_seed(argv[1], name, len, enc, n + 1))
						return 1;
					count += 2;
				}
			}
		}
	}
	/* v2 with a run over 255 bytes (entries of 255, the last two sharing
	 * what is left: 254 + 2 for 256), next to a single and a short run. */
	for (size_t r = 0; r < sizeof(long_runs) / sizeof(long_runs[0]); r++) {
		size_t len = 4096, n;

		for (size_t i = 0; i < len; i++)
			prev[i] = (uint8_t)rng();
		memcpy(cur, prev, len);
		for (size_t i = 100; i < 100 + long_runs[r]; i++)
			cur[i] ^= (uint8_t)(1 + rng() % 255);
		cur[1000] ^= 0x5a;
		cur[2000] ^= 0x01;
		cur[2001] ^= 0x02;
		n = rp_delta_encode_ver(enc, sizeof(enc), cur, prev, len, RP_DELTA_V2);
		if (n == 0 || enc[0] != 0xD2) {
			fprintf(stderr, "gen_seeds: v2 encode of a %zu-byte run failed\n",
				long_runs[r]);
			return 1;
		}
		snprintf(name, sizeof(name), "valid-v2-longrun%zu", long_runs[r]);
		if (write_seed(argv[1], name, len, enc, n))
			return 1;
		count++;
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (write_seed(argv[1], bad[i].name, 4, bad[i].b, bad[i].n))
			return 1;
		count++;
	}
	{
		/* v2 exists only for 0 < len <= 65536: len 0 is v1's alone */
		static const uint8_t empty2[] = {0xD2, 0x00, 0x00, 0x00};

		if (write_seed(argv[1], "bad-v2-len0", 0, empty2, sizeof(empty2)))
			return 1;
		count++;
	}
	printf("gen_seeds: %u seeds in %s\n", count, argv[1]);
	return 0;
}
