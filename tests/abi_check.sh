#!/usr/bin/env bash
# The shared library exports what the public headers declare, nothing else:
# - every exported symbol has the rp_ prefix and is named in
#   include/ringplane/*.h (so no eng_* engine internals, no per-ISA kernels);
# - every function and object the version script lists (generated from the
#   headers by tools/gen_version_map.py) is exported: nothing a user can
#   declare is missing at link time;
# - the soname carries the ABI version (libringplane.so.0.N for 0.x);
# - the struct and union layouts, enum values and RP_* constants of the
#   public headers match tests/abi/ringplane-0.N.layout, the snapshot of
#   that ABI version (tools/abi_layout.py check): a layout change ships
#   only with a version bump and its new snapshot.
# Usage: abi_check.sh SRC_ROOT LIBRARY.so VERSION_MAP
set -euo pipefail
src=$1
lib=$2
map=$3
fails=0

fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sed 's/@.*//' |
	sort -u)
listed=$(grep -oE '^[[:space:]]+rp_[a-z0-9_]+;' "$map" | tr -d ' \t;' | sort -u)

for s in $exported; do
	case $s in
	rp_*) grep -qw -- "$s" "$src"/include/ringplane/*.h || fail "exported $s is named in no public header" ;;
	*) fail "exported $s has no rp_ prefix" ;;
	esac
done
for s in $listed; do
	grep -qx -- "$s" <<<"$exported" || fail "$s is declared in a public header but not exported"
done

soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
case $soname in
libringplane.so.0.[0-9]*) ;;
*) fail "soname '$soname' does not carry the 0.x ABI version" ;;
esac

layout="layout not checked"
if [ -n "$soname" ]; then
	rc=0
	python3 "$src/tools/abi_layout.py" check --root "$src" --abi "${soname#libringplane.so.}" ||
		rc=$?
	case $rc in
	0) layout="layout matches tests/abi/ringplane-${soname#libringplane.so.}.layout" ;;
	77) layout="layout skipped (not x86_64)" ;;
	*) fail "public layouts (tools/abi_layout.py check exited $rc, see above)" ;;
	esac
fi

n=$(wc -w <<<"$exported")
if [ "$fails" -eq 0 ]; then
	echo "ok: $n exported symbols, each named in a public header, none missing; soname $soname; $layout"
	exit 0
fi
exit 1
