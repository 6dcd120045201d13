#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Cross-build the simd module for aarch64 and run its unit tests under
# qemu-aarch64 (user mode, whose default cpu "max" has the CRC32 and PMULL
# HWCAPs, so the NEON kernels are the ones dispatched and tested).
#
#   tests/cross-aarch64.sh [BUILD_DIR]   from anywhere; BUILD_DIR defaults
#                                        to build-aarch64 (relative to the
#                                        repository root)
#
# WERROR=1 in the environment adds -Dwerror=true, as for dev.sh's builds.
#
# Installs what is missing (Debian 12 packages, arm64 multiarch for cmocka)
# with apt-get, as root or through sudo; does nothing when all is there.
# Prints the meson test summary; exits non-zero if a test fails, the build
# fails, or the library does not pick the neon kernels under qemu.
set -euo pipefail

cd "$(dirname "$0")/.."
build=${1:-build-aarch64}
cross=cross/aarch64-linux-gnu.ini

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
	sudo_cmd=(sudo)
fi

pkg_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# Host tools are checked by command (any install of them will do); the
# aarch64 libraries by package, as nothing else says which arch a .so is.
need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
pkg_installed libc6-dev-arm64-cross || need+=(libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
command -v meson >/dev/null || need+=(meson)
command -v ninja >/dev/null || need+=(ninja-build)
command -v pkg-config >/dev/null || need+=(pkg-config)
pkg_installed libcmocka-dev:arm64 || need+=(libcmocka-dev:arm64)

if [ "${#need[@]}" -gt 0 ]; then
	echo "cross-aarch64: installing ${need[*]}"
	if [ "$(dpkg --print-architecture)" != arm64 ] &&
	   ! dpkg --print-foreign-architectures | grep -qx arm64; then
		"${sudo_cmd[@]}" dpkg --add-architecture arm64
	fi
	"${sudo_cmd[@]}" apt-get update
	"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends "${need[@]}"
fi

opts=(--cross-file "$cross" -Dsimd_only=true)
[ "${WERROR:-0}" = 1 ] && opts+=(-Dwerror=true)
if [ -d "$build/meson-private" ]; then
	meson setup --reconfigure "$build" "${opts[@]}"
else
	meson setup "$build" "${opts[@]}"
fi
meson compile -C "$build"

# The cmocka tests shrink their loops under emulation when this is set.
export RP_TEST_REDUCED=1
test_rc=0
meson test -C "$build" --suite simd --print-errorlogs || test_rc=$?

# A green run proves little if dispatch fell back to scalar: check that the
# library, under the same qemu, names the neon kernels. Linked statically,
# so it runs without the exe_wrapper's library paths.
probe="$build/simd-backend-probe"
aarch64-linux-gnu-gcc -std=gnu11 -O1 -static -Iinclude -o "$probe" -x c - \
	-x none "$build/libringplane.a" <<'EOF'
#include <stdio.h>
#include <ringplane/simd.h>

int main(void)
{
	puts(rp_simd_backend());
	return 0;
}
EOF
backend=$(env -u RP_SIMD qemu-aarch64 "$probe")
echo "cross-aarch64: rp_simd_backend() under qemu-aarch64: $backend"
backend_rc=0
case "$backend" in
*crc32c=neon*xor=neon*delta=neon*) ;;
*)
	echo "cross-aarch64: FAIL: expected the neon kernels under qemu-aarch64" >&2
	backend_rc=1
	;;
esac

if [ "$test_rc" -ne 0 ]; then
	echo "cross-aarch64: FAIL: meson test exited $test_rc" >&2
	exit "$test_rc"
fi
exit "$backend_rc"
