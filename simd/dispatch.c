/* SPDX-License-Identifier: MIT */
/*
 * The one place that picks kernels. It runs once, from a constructor (or from
 * the first call, whichever comes first), and publishes plain function
 * pointers. Racing first calls all compute the same answer, and the pointers
 * are atomics (relaxed: each is self-contained, nothing else is published
 * with it), so there is no data race and no lock.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_PMULL
#define HWCAP_PMULL (1 << 4)
#endif
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif
#endif

#include <ringplane/simd.h>

#include "simd_impl.h"

static uint32_t crc_first(uint32_t crc, const void *buf, size_t len);
static void xor_first(void *dst, const void *a, const void *b, size_t len);
static uint64_t scan_first(const uint8_t *a, const uint8_t *b, unsigned nblocks,
			   uint64_t *masks);

static _Atomic(rp_crc32c_fn) crc_impl = crc_first;
static _Atomic(rp_xor_fn) xor_impl = xor_first;
static _Atomic(rp_delta_scan_fn) scan_impl = scan_first;
/* -1 until resolved. */
static _Atomic int level_resolved = -1;
static _Atomic int cpu_level_resolved = -1;

/* Backend name of the AVX2 level where the CPU has VPCLMULQDQ on ymm. */
static const char avx2_vpclmul_backend[] = "crc32c=avx2-vpclmul xor=avx2 delta=avx2";
static _Atomic bool crc_avx2_vpclmul; /* set by resolve() with level_resolved */

static const struct {
	const char *env;
	const char *backend;
} level_names[] = {
	[RP_SIMD_SCALAR] = { "scalar", "crc32c=scalar-slice8 xor=scalar delta=scalar" },
	[RP_SIMD_SSE42] = { "sse42", "crc32c=sse42-3way xor=scalar delta=scalar" },
	[RP_SIMD_AVX2] = { "avx2", "crc32c=pclmul xor=avx2 delta=avx2" },
	[RP_SIMD_AVX512] = { "avx512", "crc32c=avx512-vpclmul xor=avx512 delta=avx512" },
	[RP_SIMD_NEON] = { "neon", "crc32c=neon-pmull xor=neon delta=neon" },
};

static enum rp_simd_level detect_cpu(void)
{
#if defined(__x86_64__)
	__builtin_cpu_init();
	/* __builtin_cpu_supports also checks XCR0, i.e. that the OS saves the
	 * AVX/AVX-512 state, not only that CPUID advertises it. */
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	    __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("vpclmulqdq") &&
	    __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.2"))
		return RP_SIMD_AVX512;
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("pclmul") &&
	    __builtin_cpu_supports("sse4.2"))
		return RP_SIMD_AVX2;
	if (__builtin_cpu_supports("sse4.2"))
		return RP_SIMD_SSE42;
	return RP_SIMD_SCALAR;
#elif defined(__aarch64__)
	unsigned long hw = getauxval(AT_HWCAP);

	if ((hw & HWCAP_CRC32) && (hw & HWCAP_PMULL))
		return RP_SIMD_NEON;
	return RP_SIMD_SCALAR;
#else
	return RP_SIMD_SCALAR;
#endif
}

bool rp_simd_cpu_has_vpclmul256(void)
{
#if defined(__x86_64__)
	__builtin_cpu_init();
	/* Also checks XCR0 (the OS saves ymm state). */
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("vpclmulqdq") &&
	       __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.2");
#else
	return false;
#endif
}

enum rp_simd_level rp_simd_cpu_level(void)
{
	int l = atomic_load_explicit(&cpu_level_resolved, memory_order_relaxed);

	if (l < 0) {
		l = (int)detect_cpu();
		atomic_store_explicit(&cpu_level_resolved, l, memory_order_relaxed);
	}
	return (enum rp_simd_level)l;
}

/* RP_SIMD may only lower the level; an unknown value is reported once and ignored. */
static enum rp_simd_level apply_env(enum rp_simd_level cpu)
{
	const char *want = getenv("RP_SIMD");

	if (!want || !*want)
		return cpu;
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(want, level_names[i].env))
			continue;
		if (i == RP_SIMD_SCALAR)
			return RP_SIMD_SCALAR;
		/* neon is not "above" the x86 levels nor below them: honour it
		 * only where it is this CPU's own family. */
		if ((i == RP_SIMD_NEON) != (cpu == RP_SIMD_NEON))
			return cpu;
		return i < (unsigned)cpu ? (enum rp_simd_level)i : cpu;
	}
	fprintf(stderr, "ringplane: RP_SIMD=%s is not one of scalar|sse42|avx2|avx512|neon; ignored\n",
		want);
	return cpu;
}

static void resolve(void)
{
	enum rp_simd_level l = apply_env(rp_simd_cpu_level());
	rp_crc32c_fn crc = rp_crc32c_scalar;
	rp_xor_fn x = rp_xor_scalar;
	rp_delta_scan_fn scan = rp_delta_scan_scalar;
	bool avx2_vpclmul = false;

	switch (l) {
#if defined(__x86_64__)
	case RP_SIMD_AVX512:
		crc = rp_crc32c_avx512;
		x = rp_xor_avx512;
		scan = rp_delta_scan_avx512;
		break;
	case RP_SIMD_AVX2:
		/* Zen3-class cores: crc32 chains + ymm folding (crc32c_avx2.c);
		 * Haswell..Skylake lack VPCLMULQDQ and keep the xmm kernel. */
		avx2_vpclmul = rp_simd_cpu_has_vpclmul256();
		crc = avx2_vpclmul ? rp_crc32c_avx2 : rp_crc32c_pclmul;
		x = rp_xor_avx2;
		scan = rp_delta_scan_avx2;
		break;
	case RP_SIMD_SSE42:
		crc = rp_crc32c_sse42;
		break;
#endif
#if defined(__aarch64__)
	case RP_SIMD_NEON:
		crc = rp_crc32c_neon;
		x = rp_xor_neon;
		scan = rp_delta_scan_neon;
		break;
#endif
	default:
		l = RP_SIMD_SCALAR;
		break;
	}
	atomic_store_explicit(&crc_impl, crc, memory_order_relaxed);
	atomic_store_explicit(&xor_impl, x, memory_order_relaxed);
	atomic_store_explicit(&scan_impl, scan, memory_order_relaxed);
	atomic_store_explicit(&crc_avx2_vpclmul, avx2_vpclmul, memory_order_relaxed);
	atomic_store_explicit(&level_resolved, (int)l, memory_order_relaxed);
}

__attribute__((constructor(102))) static void simd_dispatch_init(void)
{
	resolve();
}

enum rp_simd_level rp_simd_level(void)
{
	int l = atomic_load_explicit(&level_resolved, memory_order_relaxed);

	if (l < 0) {
		resolve();
		l = atomic_load_explicit(&level_resolved, memory_order_relaxed);
	}
	return (enum rp_simd_level)l;
}

const char *rp_simd_backend(void)
{
	enum rp_simd_level l = rp_simd_level();

	if (l == RP_SIMD_AVX2 && atomic_load_explicit(&crc_avx2_vpclmul, memory_order_relaxed))
		return avx2_vpclmul_backend;
	return level_names[l].backend;
}

static uint32_t crc_first(uint32_t crc, const void *buf, size_t len)
{
	resolve();
	return atomic_load_explicit(&crc_impl, memory_order_relaxed)(crc, buf, len);
}

static void xor_first(void *dst, const void *a, const void *b, size_t len)
{
	resolve();
	atomic_load_explicit(&xor_impl, memory_order_relaxed)(dst, a, b, len);
}

static uint64_t scan_first(const uint8_t *a, const uint8_t *b, unsigned nblocks,
			   uint64_t *masks)
{
	resolve();
	return atomic_load_explicit(&scan_impl, memory_order_relaxed)(a, b, nblocks, masks);
}

uint32_t rp_crc32c(uint32_t crc, const void *buf, size_t len)
{
	return atomic_load_explicit(&crc_impl, memory_order_relaxed)(crc, buf, len);
}

void rp_xor(void *dst, const void *a, const void *b, size_t len)
{
	atomic_load_explicit(&xor_impl, memory_order_relaxed)(dst, a, b, len);
}

uint64_t rp_delta_scan(const uint8_t *a, const uint8_t *b, unsigned nblocks, uint64_t *masks)
{
	return atomic_load_explicit(&scan_impl, memory_order_relaxed)(a, b, nblocks, masks);
}
