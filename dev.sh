#!/usr/bin/env bash
# ringplane developer entry point. On a fresh Debian 12 machine, as root:
#   ./dev.sh bench   install what is missing, build, run the default benchmark suite (--quick)
#   ./dev.sh test    install what is missing, build, run every test (release, ASan+UBSan,
#                    TSan, aarch64 under qemu, fuzz smoke run) and print "N passed, N failed"
#   ./dev.sh soak [MINUTES] [ARGS...]   build, then the servers under mixed faulty clients for
#                    MINUTES (default 10), every byte checked (ringplane-soak; ARGS go to it)
#   ./dev.sh fuzz [SECONDS]  every fuzz target (delta decoder, PROXY parser, HTTP parser) for
#                    SECONDS each (default 600), on the committed corpora (tests/fuzz/corpus)
# Other verbs: deps, build, unit (release tests only). Environment: BUILD (default build),
# FUZZ_SECONDS (default 60, the test verb's fuzz run), WERROR=1 (add -Dwerror=true, set by CI).
set -euo pipefail
cd "$(dirname "$0")"

BUILD=${BUILD:-build}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}

# clang: tools/abi_layout.py reads the public headers with it (the abi test)
PKGS_BUILD=(build-essential pkg-config meson ninja-build python3 liburing-dev libnuma-dev
	libhwloc-dev libcmocka-dev clang)
PKGS_BENCH=(libisal-dev libck-dev libjemalloc-dev gnuplot-nox sockperf haproxy socat iperf3 wrk
	nginx-light)
# udev: tuning/tests/rps.bats runs the veth RPS rule under its systemd-udevd, in namespaces of
# its own that see none of the host's devices. need_pkgs installs with services held
# (policy-rc.d), so the package's postinst starts no udevd on the host and replays no uevents
PKGS_TEST=(clang libclang-rt-14-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
	shellcheck bats curl udev)

log() { printf '==> %s\n' "$*" >&2; }

# Installs only what is missing, so a tuned host with everything present is not touched.
need_pkgs() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing: ${missing[*]}"
	if [ "$(id -u)" -ne 0 ]; then
		echo "dev.sh: need root to install ${missing[*]}" >&2
		return 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# A package installed here starts no service (invoke-rc.d asks policy-rc.d; 101: refused):
	# udev's postinst would start a udevd and replay every device's add uevent, nginx and
	# haproxy would take ports the benchmarks start their own on. An operator's policy stays.
	local policy=/usr/sbin/policy-rc.d held=0 rc=0
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\n# dev.sh: no service starts while it installs packages\nexit 101\n' >"$policy"
		chmod 0755 "$policy"
		held=1
	fi
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
	[ "$held" = 1 ] && rm -f "$policy"
	return "$rc"
}

meson_setup() { # dir [args...]
	local dir=$1
	shift
	local extra=()
	[ "${WERROR:-0}" = 1 ] && extra+=(-Dwerror=true)
	if [ -f "$dir/build.ninja" ]; then
		meson configure "$dir" "${extra[@]}" "$@" >/dev/null
	else
		meson setup "$dir" "${extra[@]}" "$@" >/dev/null
	fi
}

build() {
	need_pkgs "${PKGS_BUILD[@]}" "${PKGS_BENCH[@]}"
	meson_setup "$BUILD"
	ninja -C "$BUILD"
}

# Sum of meson's test results across every build dir this run used.
TOTAL_PASS=0
TOTAL_FAIL=0
TOTAL_SKIP=0
FAILED_NAMES=() # what failed, printed again under the summary (a CI log keeps only its tail)
count_results() { # build-dir
	local counts
	counts=$(python3 - "$1/meson-logs/testlog.json" <<'PY'
import json, sys
p = f = s = 0
bad = []
for line in open(sys.argv[1]):
    t = json.loads(line)
    r = t.get("result")
    if r in ("OK", "EXPECTEDFAIL"): p += 1
    elif r == "SKIP": s += 1
    else:
        f += 1
        bad.append(t.get("name", "?").replace(" ", "_") + "(" + str(r) + ")")
print(p, f, s, " ".join(bad))
PY
)
	read -r p f s bad <<<"$counts"
	[ -n "$bad" ] && FAILED_NAMES+=("$1: $bad")
	TOTAL_PASS=$((TOTAL_PASS + p))
	TOTAL_FAIL=$((TOTAL_FAIL + f))
	TOTAL_SKIP=$((TOTAL_SKIP + s))
}

run_tests() { # build-dir [meson test args...]
	local dir=$1
	shift
	local rc=0
	meson test -C "$dir" --print-errorlogs "$@" || rc=$?
	count_results "$dir"
	return $rc
}

# A step that is not a meson test still counts as one test in the summary.
run_step() { # name command...
	local name=$1
	shift
	log "$name"
	if "$@"; then
		TOTAL_PASS=$((TOTAL_PASS + 1))
	else
		echo "FAIL: $name" >&2
		FAILED_NAMES+=("step: $name")
		TOTAL_FAIL=$((TOTAL_FAIL + 1))
	fi
}

cmd_test() {
	need_pkgs "${PKGS_BUILD[@]}" "${PKGS_BENCH[@]}" "${PKGS_TEST[@]}"
	local rc=0

	log "release build + tests ($BUILD)"
	build
	run_tests "$BUILD" || rc=1
	run_step "soak: echo, relays and serve under faulty clients for 2 minutes (release)" \
		"$BUILD/tests/soak/ringplane-soak" --ringplane "$BUILD/apps/ringplane" --seconds 120 || rc=1

	log "ASan+UBSan build + tests (${BUILD}-asan)"
	meson_setup "${BUILD}-asan" -Dbuildtype=debugoptimized -Db_sanitize=address,undefined \
		-Db_lundef=false -Dbench=false
	ninja -C "${BUILD}-asan"
	RP_TEST_REDUCED=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		run_tests "${BUILD}-asan" || rc=1
	# RSS is printed, not checked: ASan's quarantine grows by design. Leaks are
	# checked at each server's exit (a report in its stderr fails the soak).
	run_step "soak: 1 minute under ASan+UBSan" env UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		ASAN_OPTIONS=detect_leaks=1 "${BUILD}-asan/tests/soak/ringplane-soak" \
		--ringplane "${BUILD}-asan/apps/ringplane" --seconds 60 --conns 128 --no-rss-check || rc=1

	log "fault-injection build (${BUILD}-faults: -Dfaults=true, ASan+UBSan)"
	meson_setup "${BUILD}-faults" -Dfaults=true -Dbuildtype=debugoptimized \
		-Db_sanitize=address,undefined -Db_lundef=false -Dbench=false
	ninja -C "${BUILD}-faults"
	# short sends and failed submits are the kernel's normal behaviour, so
	# the servers' and the relay's and file sends' own tests must pass
	# unchanged under them (not test_outq: it counts sendmsgs); echo and
	# accept also run the listener's back-off hooks (RP_APP_FAULT_*), which
	# only this build has, and so do drain's queued-connection cases (skipped
	# elsewhere); tick-nomem sets its servers' own RP_FAULTS (nomem)
	RP_FAULTS=short=0.3,eagain=0.3 RP_TEST_REDUCED=1 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		run_tests "${BUILD}-faults" echo serve relay-cmd relay filesend accept drain tick-nomem || rc=1
	# the cases that set their own RP_FAULTS (suite "faults": the relay's
	# pool wait with timer arms refused, outq's dry class with ops
	# refused); the names above do not select them
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		run_tests "${BUILD}-faults" --suite faults || rc=1
	# every connection completes or is closed cleanly by the server; no
	# crash, leak or sanitizer report; each fault kind really struck
	run_step "soak: 45 s with engine faults injected (RP_FAULTS, ASan+UBSan)" \
		env UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
		bash tests/faults_soak.sh "${BUILD}-faults" 45 --conns 128 --no-rss-check || rc=1

	log "TSan build + thread tests (${BUILD}-tsan)"
	meson_setup "${BUILD}-tsan" -Dbuildtype=debugoptimized -Db_sanitize=thread \
		-Db_lundef=false -Dbench=false
	ninja -C "${BUILD}-tsan"
	TSAN_OPTIONS=halt_on_error=1 run_tests "${BUILD}-tsan" --suite threads || rc=1
	# two shards per server, so their threads really race; TSan runs the
	# servers about ten times slower, hence the 30 s timeouts. The
	# suppressions are only for descriptor numbers reused across io_uring
	# (tests/soak/tsan.supp says why). RSS is printed, not checked: under TSan a
	# relay's RSS may step up once by about 31 MB, before or after the warm-up.
	run_step "soak: 1 minute under TSan, two shards per server" \
		env TSAN_OPTIONS="halt_on_error=1 suppressions=$PWD/tests/soak/tsan.supp" \
		"${BUILD}-tsan/tests/soak/ringplane-soak" --ringplane "${BUILD}-tsan/apps/ringplane" \
		--seconds 60 --conns 64 --shards 2 --server-timeout 30 --no-rss-check || rc=1

	log "aarch64 (NEON) simd build + tests under qemu"
	if bash tests/cross-aarch64.sh "${BUILD}-aarch64"; then :; else rc=1; fi
	count_results "${BUILD}-aarch64"

	run_step "fuzz rp_delta_decode, the PROXY parser and the HTTP parser for ${FUZZ_SECONDS}s each" \
		bash tests/fuzz/run.sh "$FUZZ_SECONDS" "${BUILD}-fuzz" || rc=1
	run_step "tuning scripts (bats, fake /proc and /sys trees)" \
		env RP_TUNE_RINGPLANE="$(realpath -m "$BUILD/apps/ringplane")" bash tuning/tests/run.sh || rc=1
	run_step "shellcheck" shellcheck dev.sh .ci/run tests/*.sh tests/fuzz/*.sh apps/*.sh || rc=1

	echo
	local n
	for n in "${FAILED_NAMES[@]}"; do echo "failed: $n"; done
	echo "${TOTAL_PASS} passed, ${TOTAL_FAIL} failed, ${TOTAL_SKIP} skipped"
	[ "$TOTAL_FAIL" -eq 0 ] && [ $rc -eq 0 ]
}

cmd_soak() { # [MINUTES] [ringplane-soak args...]
	local minutes=10
	if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
		minutes=$1
		shift
	fi
	build
	"$BUILD/tests/soak/ringplane-soak" --ringplane "$BUILD/apps/ringplane" \
		--seconds $((minutes * 60)) "$@"
}

cmd_bench() {
	build
	"$BUILD/bench/ringplane-bench" --quick --json "$BUILD/bench-results.json" "$@"
	log "results: $BUILD/bench-results.json"
}

case "${1:-}" in
deps) need_pkgs "${PKGS_BUILD[@]}" "${PKGS_BENCH[@]}" "${PKGS_TEST[@]}" ;;
build) build ;;
unit)
	build
	run_tests "$BUILD"
	;;
test) cmd_test ;;
fuzz)
	need_pkgs "${PKGS_BUILD[@]}" clang libclang-rt-14-dev
	bash tests/fuzz/run.sh "${2:-600}" "${BUILD}-fuzz"
	;;
bench)
	shift
	cmd_bench "$@"
	;;
soak)
	shift
	cmd_soak "$@"
	;;
*)
	sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
