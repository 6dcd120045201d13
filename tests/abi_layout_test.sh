#!/usr/bin/env bash
# tools/abi_layout.py catches what it is for: run against a copy of the tree
# in a temp dir whose headers are changed, it
# - passes the unchanged tree;
# - fails a member added to a public struct, two members swapped, an enum
#   constant inserted before others and a changed RP_* macro, each with a
#   diff and the instruction to bump the version or revert;
# - fails new types and constants as unrecorded additions (no bump asked),
#   and `update` records them (a bitfield, an anonymous union and an unnamed
#   struct member then have the offsets and bit positions the compiler chose);
# - lays out a typedef'd unnamed union (grown: a change) and enum, and
#   records each public function's type (changed or removed: a change);
# - skips and names macros that are no integer constants, and takes a CC
#   with arguments;
# - expands an array of an unnamed struct; `update` rewrites a snapshot
#   edited by hand when nothing changed; finds a bitfield past 64 KB;
# - refuses to `update` over an incompatible change;
# - fails a version with no snapshot, and `update` makes its baseline.
# Usage: abi_layout_test.sh SRC_ROOT
set -euo pipefail
src=$(realpath "$1")
fails=0
checks=0

if [ "$(uname -m)" != x86_64 ]; then
	echo "SKIP: the layout snapshots are for x86_64"
	exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fresh() { # a pristine copy of what the tool reads
	rm -rf "$tmp/root"
	mkdir -p "$tmp/root/tools" "$tmp/root/tests"
	cp -r "$src/include" "$tmp/root/"
	cp -r "$src/tests/abi" "$tmp/root/tests/"
	cp "$src/meson.build" "$tmp/root/"
	cp "$src/tools/abi_layout.py" "$tmp/root/tools/"
}

tool() { # cmd -> rc in $rc, output in $tmp/out
	rc=0
	timeout 120 python3 "$tmp/root/tools/abi_layout.py" "$1" --root "$tmp/root" >"$tmp/out" 2>&1 ||
		rc=$?
}

expect() { # name rc pattern...: the last tool run exited rc and printed each pattern
	local name=$1 want=$2 p ok=1
	shift 2
	checks=$((checks + 1))
	if [ "$rc" != "$want" ]; then
		echo "FAIL: $name: exit $rc, expected $want"
		ok=0
	fi
	for p in "$@"; do
		if ! grep -qF -- "$p" "$tmp/out"; then
			echo "FAIL: $name: output lacks '$p'"
			ok=0
		fi
	done
	if [ $ok = 1 ]; then
		echo "ok: $name"
	else
		sed 's/^/    | /' "$tmp/out"
		fails=$((fails + 1))
	fi
}

edit() { # file sed-script: change a header of the copy, and make sure it changed
	local f=$tmp/root/include/ringplane/$1
	cp "$f" "$tmp/before"
	sed -i "$2" "$f"
	if cmp -s "$f" "$tmp/before"; then
		echo "FAIL: the test's own edit '$2' changed nothing in $1"
		exit 1
	fi
}

bump="bump the version in meson.build"
ver=$(sed -n "s/^  version : '\([0-9]*\.[0-9]*\.[0-9]*\)',$/\1/p" "$src/meson.build")
abi=${ver%.*}
next=${abi%.*}.$((${abi#*.} + 1))
snap=tests/abi/ringplane-$abi.layout
[ -n "$ver" ] || { echo "FAIL: no version in $src/meson.build"; exit 1; }

fresh
tool check
expect "the unchanged tree matches its snapshot" 0 "ok: ABI"

fresh
edit engine.h '/^struct rp_cqe {/,/^};/ s/^};/\tuint32_t added;\n};/'
tool check
expect "a member added at the end of struct rp_cqe" 1 "changed: struct rp_cqe" \
	"added: uint32_t" "$bump" "or revert"

fresh
edit http.h 's/^\tuint32_t off, len;$/\tuint32_t len, off;/'
tool check
expect "two members of struct rp_http_span swapped" 1 "changed: struct rp_http_span" \
	"-	@0 size 4 off: uint32_t" "+	@0 size 4 len: uint32_t" "$bump"

fresh
edit http.h 's/^\tRP_HTTP_METHOD_GET,/\tRP_HTTP_METHOD_POST,\n&/'
tool check
expect "an enum constant inserted before others" 1 "changed: const RP_HTTP_METHOD_GET" \
	"changed: const RP_HTTP_METHOD_HEAD" "$bump"

fresh
edit pool.h 's/^#define RP_POOL_NCLASS 15\b/#define RP_POOL_NCLASS 16/'
tool check
expect "RP_POOL_NCLASS changed (and the pool structs with it)" 1 "changed: macro RP_POOL_NCLASS" \
	"changed: struct rp_pool_hot_" "changed: struct rp_pool_stats" "$bump"

fresh
edit http.h 's/^\tRP_HTTP_METHOD_HEAD,/&\n\tRP_HTTP_METHOD_POST,/'
# a new public header (its own guard), picked up like the others
cat >"$tmp/root/include/ringplane/zz_selftest.h" <<'EOF'
#ifndef RINGPLANE_ZZ_SELFTEST_H
#define RINGPLANE_ZZ_SELFTEST_H
struct rp_abi_selftest {
	unsigned a : 3;
	unsigned b : 5;
	union {
		int u1;
		char u2[6];
	};
	struct {
		short x;
	} s;
	int c;
};
#endif
EOF
tool check
expect "a new struct and an enum constant appended: additions, no bump" 1 \
	"added: const RP_HTTP_METHOD_POST" "added: struct rp_abi_selftest" \
	"no" "bump is needed" "python3 tools/abi_layout.py update"
tool update
expect "update records the additions" 0 "recorded 2 addition(s)"
tool check
expect "then the tree matches again" 0 "ok: ABI"
sed -n '/^struct rp_abi_selftest:/,/^$/p' "$tmp/root/$snap" >"$tmp/out"
rc=0
expect "bitfields, anonymous union and unnamed struct as the compiler laid them out" 0 \
	"struct rp_abi_selftest: size 20, align 4" \
	"	bits @0.0 width 3 a: unsigned int" "	bits @0.3 width 5 b: unsigned int" \
	"	union (anonymous):" "		@4 size 4 u1: int" "		@4 size 6 u2: char[6]" \
	"	@12 size 2 s: struct (anonymous)" "		@12 size 2 x: short" "	@16 size 4 c: int"
grep -qE "^const RP_HTTP_METHOD_POST = [0-9]+ \(signed, 4 bytes\) in enum rp_http_method$" \
	"$tmp/root/$snap" ||
	{ echo "FAIL: RP_HTTP_METHOD_POST not recorded"; fails=$((fails + 1)); }

fresh
# a typedef'd unnamed union and enum are laid out under the typedef's name
# (clang spells their type "union rp_zz_u": found by the record's AST id),
# and a public function's signature is recorded like a type
cat >"$tmp/root/include/ringplane/zz_selftest.h" <<'EOF'
#ifndef RINGPLANE_ZZ_SELFTEST_H
#define RINGPLANE_ZZ_SELFTEST_H
typedef union {
	unsigned long long a;
	char b[8];
} rp_zz_u;
typedef enum { RP_ZZ_A = 1, RP_ZZ_B = 2 } rp_zz_e;
int rp_zz_fn(rp_zz_u *u, unsigned n);
#endif
EOF
tool check
expect "a typedef'd unnamed union and enum and a new function: additions" 1 \
	"added: typedef rp_zz_u" "added: typedef rp_zz_e" "added: func rp_zz_fn" "bump is needed"
tool update
expect "update records them" 0 "recorded 5 addition(s)"
grep -E "^(typedef rp_zz|func rp_zz|const RP_ZZ|	@0 size [0-9]+ [ab]:)" "$tmp/root/$snap" >"$tmp/out" || true
rc=0
expect "the typedef'd union and enum are laid out, the function's type recorded" 0 \
	"typedef rp_zz_u: size 8, align 8" "	@0 size 8 a: unsigned long long" \
	"	@0 size 8 b: char[8]" "typedef rp_zz_e: size 4, align 4, unsigned" \
	"const RP_ZZ_A = 1 (signed, 4 bytes) in typedef rp_zz_e" \
	"func rp_zz_fn: int (rp_zz_u *, unsigned int)"
zz=$tmp/root/include/ringplane/zz_selftest.h
sed -i 's/^\tchar b\[8\];$/\tchar b[64];/' "$zz"
tool check
expect "the typedef'd unnamed union grown from 8 to 64 bytes" 1 "changed: typedef rp_zz_u" \
	"+typedef rp_zz_u: size 64, align 8" "$bump"
sed -i 's/^\tchar b\[64\];$/\tchar b[8];/; s/^int rp_zz_fn(/long rp_zz_fn(/' "$zz"
tool check
expect "a function's return type changed" 1 "changed: func rp_zz_fn" \
	"+func rp_zz_fn: long (rp_zz_u *, unsigned int)" "$bump"
sed -i '/rp_zz_fn/d' "$zz"
tool check
expect "a function removed" 1 "removed: func rp_zz_fn" "$bump"

fresh
edit pool.h 's/^\(int rp_pool_iovecs(.*\)unsigned max);$/\1size_t max);/'
tool check
expect "a parameter of rp_pool_iovecs changed" 1 "changed: func rp_pool_iovecs" \
	"+func rp_pool_iovecs: int (const struct rp_pool *, struct iovec *, size_t)" "$bump"

fresh
# macros that are no integer constant expressions (an initializer, a call to
# an undeclared function: gcc reports some at the header's line) are left
# out and named, not a failure of the tool; CC may carry arguments
cat >"$tmp/root/include/ringplane/zz_selftest.h" <<'EOF'
#ifndef RINGPLANE_ZZ_SELFTEST_H
#define RINGPLANE_ZZ_SELFTEST_H
#define RP_ZZ_INIT { 0 }
#define RP_ZZ_CALL rp_zz_undeclared(3)
#define RP_ZZ_OK (4 + 1)
#endif
EOF
tool check
expect "macros that are no integer constants are skipped and named" 1 "added: macro RP_ZZ_OK" \
	"not integer constants, not recorded: RP_ZZ_CALL, RP_ZZ_INIT"
rm "$tmp/root/include/ringplane/zz_selftest.h"
CC="env cc" tool check
expect "CC with arguments (CC=\"env cc\")" 0 "ok: ABI"

fresh
# an array of an unnamed struct lists the element's members
cat >"$tmp/root/include/ringplane/zz_selftest.h" <<'EOF'
#ifndef RINGPLANE_ZZ_SELFTEST_H
#define RINGPLANE_ZZ_SELFTEST_H
struct rp_zz_arr {
	int n;
	struct {
		int a;
		short b;
	} e[2];
};
#endif
EOF
tool update
expect "update records a struct with an array of an unnamed struct" 0 "recorded 1 addition(s)"
sed -n '/^struct rp_zz_arr:/,/^$/p' "$tmp/root/$snap" >"$tmp/out"
rc=0
expect "the array's element members are listed" 0 "struct rp_zz_arr: size 20, align 4" \
	"	@4 size 16 e: struct (anonymous)[2]" "		@4 size 4 a: int" "		@8 size 2 b: short"

fresh
# a hand-edited header line: check asks for update, and update fixes it
sed -i '1s/^# ringplane ABI/# ringplane  ABI/' "$tmp/root/$snap"
tool check
expect "a snapshot edited by hand fails check" 1 "not in the tool's format"
tool update
expect "update rewrites it in the tool's format" 0 "rewritten in the tool's format"
tool check
expect "then check passes" 0 "ok: ABI"

fresh
# a struct over 64 KB with a bitfield: the scratch object is sized from it
cat >"$tmp/root/include/ringplane/zz_selftest.h" <<'EOF'
#ifndef RINGPLANE_ZZ_SELFTEST_H
#define RINGPLANE_ZZ_SELFTEST_H
struct rp_zz_big {
	char pad[100000];
	unsigned f : 3;
};
#endif
EOF
tool check
expect "a bitfield past 64 KB is found" 1 "added: struct rp_zz_big" \
	"+	bits @100000.0 width 3 f: unsigned int"

fresh
edit engine.h '/^struct rp_cqe {/,/^};/ s/^};/\tuint32_t added;\n};/'
cp "$tmp/root/$snap" "$tmp/snap"
tool update
expect "update refuses an incompatible change" 1 "changed: struct rp_cqe" "$bump"
cmp -s "$tmp/snap" "$tmp/root/$snap" ||
	{ echo "FAIL: the refused update still wrote the snapshot"; fails=$((fails + 1)); }

sed -i "s/version : '$ver'/version : '$next.0'/" "$tmp/root/meson.build"
tool check
expect "the bumped version has no snapshot yet" 1 "no layout snapshot for ABI $next" \
	"tests/abi/ringplane-$next.layout" "python3 tools/abi_layout.py update"
tool update
expect "update writes the new version's baseline" 0 "wrote tests/abi/ringplane-$next.layout"
tool check
expect "and the bumped tree passes" 0 "ok: ABI $next"

if [ "$fails" -eq 0 ]; then
	echo "ok: $checks checks"
	exit 0
fi
echo "$fails of $checks checks failed"
exit 1
