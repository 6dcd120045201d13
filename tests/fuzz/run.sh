#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Fuzz rp_delta_decode, then the PROXY protocol parser (net/proxy.c), then
# the HTTP/1.1 request side (net/http.c), with libFuzzer, each for a fixed
# time.
#
#   tests/fuzz/run.sh [SECONDS] [BUILD_DIR]   from anywhere; SECONDS defaults
#                                             to 60, BUILD_DIR to build-fuzz
#                                             (relative to the repository root)
#
# Configures BUILD_DIR with clang (-Dfuzz=true, ASan+UBSan, and libFuzzer's
# coverage on the whole library, not only on the harness), builds the
# fuzzers and their seed generators, writes the generated seeds into a
# corpus in the build dir (what the fuzzer finds is kept there for the next
# run) and runs each fuzzer on it and on the committed corpus
# tests/fuzz/corpus/TARGET (read only: a minimized corpus from a long run,
# made with -merge=1, see docs/reliability.md). Crash inputs land in
# BUILD_DIR/artifacts. Exits non-zero if the build fails or a fuzzer found
# a crash, a leak, a timeout or undefined behaviour.
# WERROR=1 in the environment adds -Dwerror=true, as for dev.sh's builds.
set -euo pipefail

cd "$(dirname "$0")/../.."
seconds=${1:-60}
build=${2:-build-fuzz}

case "$seconds" in
'' | *[!0-9]*)
	echo "fuzz: SECONDS must be a whole number, not '$seconds'" >&2
	exit 2
	;;
esac
command -v clang >/dev/null || {
	echo "fuzz: clang not found (Debian 12: apt-get install clang libclang-rt-14-dev)" >&2
	exit 1
}

opts=(-Dfuzz=true -Dsimd_only=true -Dbench=false -Dbuildtype=debugoptimized
	"-Db_sanitize=address,undefined" -Db_lundef=false
	"-Dc_args=-fsanitize=fuzzer-no-link -fno-sanitize-recover=undefined")
[ "${WERROR:-0}" = 1 ] && opts+=(-Dwerror=true)

if [ -d "$build/meson-private" ]; then
	# meson keeps the compiler it found first; a gcc-configured dir stays gcc.
	if ! grep -q 'C compiler for the host machine: clang' "$build/meson-logs/meson-log.txt" \
		2>/dev/null; then
		echo "fuzz: $build was configured with another compiler than clang; remove it" >&2
		exit 1
	fi
	meson setup --reconfigure "$build" "${opts[@]}" >/dev/null
else
	CC=clang meson setup "$build" "${opts[@]}" >/dev/null
fi
meson compile -C "$build" fuzz_delta_decode fuzz_gen_seeds fuzz_proxy fuzz_gen_proxy_seeds \
	fuzz_http fuzz_gen_http_seeds

artifacts="$build/artifacts"
committed=tests/fuzz/corpus
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
mkdir -p "$artifacts"

# fuzz TARGET SEED_GENERATOR CORPUS_DIR MAX_LEN: generated seeds into
# CORPUS_DIR, then TARGET for $seconds on it and on the committed corpus.
fuzz() {
	local target=$1 gen=$2 corpus="$build/$3" max_len=$4 rc=0
	local fuzzer="$build/tests/fuzz/$target" dirs=()

	mkdir -p "$corpus"
	"$build/tests/fuzz/$gen" "$corpus"
	dirs=("$corpus")
	[ -d "$committed/$target" ] && dirs+=("$committed/$target")
	echo "fuzz: running $fuzzer for ${seconds}s on ${dirs[*]}"
	"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" \
		-print_final_stats=1 -artifact_prefix="$artifacts/$target-" "${dirs[@]}" || rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "fuzz: FAIL: $target exited $rc; inputs that reproduce it:" >&2
		ls -l "$artifacts" >&2
		echo "fuzz: replay one with: $fuzzer $artifacts/<file>" >&2
		exit 1
	fi
	echo "fuzz: $target: no crash in ${seconds}s"
}

fuzz fuzz_delta_decode fuzz_gen_seeds corpus 9000
# The PROXY protocol parser, for as long again, on its own corpus.
fuzz fuzz_proxy fuzz_gen_proxy_seeds corpus-proxy 1100
# The HTTP/1.1 request side, for as long again, on its own corpus. 4096
# bytes reach every rule but the size limits, which tests/test_http.c
# checks at their boundaries.
fuzz fuzz_http fuzz_gen_http_seeds corpus-http 4096
