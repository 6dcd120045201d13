#!/usr/bin/env bash
# Proves the README's embedding example compiles against the pkg-config file
# meson generates and runs correctly. Usage: readme_example.sh README BUILD_ROOT
set -euo pipefail
readme=$1
build=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The first ```c block after the line mentioning example.c is the program.
awk '/^```c/ && !done { on = 1; next } /^```/ && on { on = 0; done = 1 } on' "$readme" \
	>"$work/example.c"
grep -q 'rp_delta_encode' "$work/example.c" || {
	echo "README example not found" >&2
	exit 1
}
export PKG_CONFIG_PATH="$build/meson-uninstalled"
# shellcheck disable=SC2046,SC2086 # word splitting of flags is intended
cc -std=gnu11 -Wall -Wextra -Werror -O2 ${EXAMPLE_CFLAGS:-} "$work/example.c" \
	$(pkg-config --cflags --libs ringplane) -o "$work/example"
LD_LIBRARY_PATH="$build" "$work/example"
