/* SPDX-License-Identifier: MIT */
/*
 * Seed corpus for fuzz_http: gen_http_seeds DIR writes one file per seed
 * into DIR (which must exist). Each seed is the fuzzer's input layout: one
 * byte that seeds the split, then a client's bytes: valid GET and HEAD
 * heads with the fields the server reads (Host, Connection, Range,
 * If-None-Match, If-Modified-Since in its three forms), pipelined heads,
 * targets with escapes and dot segments, and one head for each way of
 * being refused, so the fuzzer starts next to both the accept and the
 * refuse paths. Deterministic: the same seeds on every run.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int nseeds;

static int write_seed(const char *dir, const char *data)
{
	char path[4096];
	uint8_t split = (uint8_t)(nseeds * 37);
	size_t n = strlen(data);
	FILE *f;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/http-seed-%03d", dir, nseeds++);
	f = fopen(path, "wb");
	if (!f) {
		fprintf(stderr, "gen_http_seeds: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fwrite(&split, 1, 1, f) != 1 || (n && fwrite(data, 1, n, f) != n))
		rc = -1;
	if (fclose(f) || rc) {
		fprintf(stderr, "gen_http_seeds: %s: write failed\n", path);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const char *const seeds[] = {
		/* accepted */
		"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
		"HEAD /index.html HTTP/1.0\r\n\r\n",
		"GET /a/b/../c/./d.css?v=1 HTTP/1.1\r\nHost: h:8080\r\n"
		"Connection: keep-alive, Upgrade\r\n\r\n",
		"GET /f.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=0-99\r\n\r\n",
		"GET /f.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=-500\r\n\r\n",
		"GET /f.bin HTTP/1.1\r\nHost: h\r\nrange: Bytes=18446744073709551616-\r\n\r\n",
		"GET /f HTTP/1.1\r\nHost: h\r\nIf-None-Match: W/\"a\", \"1.0-2\"\r\n\r\n",
		"GET /f HTTP/1.1\r\nHost: h\r\nIf-None-Match: *\r\n\r\n",
		"GET /f HTTP/1.1\r\nHost: h\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 "
		"GMT\r\n\r\n",
		"GET /f HTTP/1.1\r\nHost: h\r\nIf-Modified-Since: Sunday, 06-Nov-94 08:49:37 "
		"GMT\r\n"
		"\r\n",
		"GET /f HTTP/1.1\r\nHost: h\r\nIf-Modified-Since: Sun Nov  6 08:49:37 1994\r\n\r\n",
		"GET /%41%2e%2E/x%20y HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
		"\r\nGET / HTTP/1.0\r\nConnection: close\r\nX-Empty:\r\nX:\ta\tb \r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\nGET /c",
		/* refused */
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
		"BREW / HTTP/1.1\r\n\r\n",
		"GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET / HTTP/2.0\r\n\r\n",
		"GET / HTTP/1.1\nHost: h\n\n",
		"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",
		"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
		"GET / HTTP/1.1\r\nX: y\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
		"GET /\x01 HTTP/1.1\r\n\r\n",
		/* targets for the path decoder (the whole input is decoded too) */
		"/../etc/passwd",
		"/a/%2e%2e/%2e%2e/b",
		"/a%2Fb%00c%G1%4",
		"//a//./b/../../c/?q=%2F",
	};
	const char *dir;
	int rc = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: gen_http_seeds DIR\n");
		return 2;
	}
	dir = argv[1];
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++)
		rc |= write_seed(dir, seeds[i]);
	if (rc)
		return 1;
	printf("gen_http_seeds: %d seeds in %s\n", nseeds, dir);
	return 0;
}
