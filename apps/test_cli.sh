#!/usr/bin/env bash
# `ringplane topo` as operators and the tuning scripts call it: exit codes,
# the --cpulist line, JSON that parses, and plan rows on a synthetic
# 4-node machine; every command's refusal of bad option values (exit 2, one
# line naming the flag) and its acceptance of good ones.
# Usage: test_cli.sh PATH/TO/ringplane
set -u
RP=$1
fails=0
S4="package:2 numa:2 core:8 pu:2"

check() { # name, then the command; passes when it exits 0
	local name=$1
	shift
	if "$@"; then
		echo "ok   $name"
	else
		echo "FAIL $name"
		fails=$((fails + 1))
	fi
}

status_is() { # expected, command...
	local want=$1 got
	shift
	"$@" >/dev/null 2>&1
	got=$?
	[ "$got" -eq "$want" ] || { echo "  exit $got, wanted $want: $*" >&2; return 1; }
}

out_is() { # expected stdout, command...
	local want=$1 got
	shift
	got=$("$@" 2>/dev/null)
	[ "$got" = "$want" ] || { echo "  got '$got', wanted '$want': $*" >&2; return 1; }
}

check "no command is a usage error" status_is 2 "$RP"
check "unknown command is a usage error" status_is 2 "$RP" frobnicate
check "--help exits 0" status_is 0 "$RP" --help
check "topo --help exits 0" status_is 0 "$RP" topo --help
check "usage lists topo" out_is "  topo     print the CPU topology and the shard placement plan" \
	bash -c "'$RP' --help | grep '^  topo '"
check "usage lists echo" status_is 0 bash -c "'$RP' --help | grep -q '^  echo '"
check "serve --help lists --mode" status_is 0 bash -c "'$RP' serve --help | grep -q '^  --mode auto|splice|copy'"
check "serve --help lists the linger bounds" status_is 0 bash -c \
	"'$RP' serve --help | grep -q '^  --linger-timeout S' && '$RP' serve --help | grep -q '^  --linger-time S'"
for cmd in serve relay echo; do
	check "$cmd --help lists --drain-timeout" status_is 0 bash -c \
		"'$RP' $cmd --help | grep -q '^  --drain-timeout S'"
done
check "host topo exits 0" status_is 0 "$RP" topo
check "bad policy" status_is 2 "$RP" topo --policy round
check "bad cpulist syntax" status_is 2 "$RP" topo --cpus 3-1
check "cpulist beyond CPU_SETSIZE" status_is 2 "$RP" topo --cpus 5000
check "cpu not in topology" status_is 2 "$RP" topo --synthetic "$S4" --cpus 64
check "bad synthetic" status_is 2 "$RP" topo --synthetic "bogus:3"
check "missing argument" status_is 2 "$RP" topo --cpus
check "unknown option" status_is 2 "$RP" topo --frob
check "stray argument" status_is 2 "$RP" topo extra
check "--cpulist with --json" status_is 2 "$RP" topo --cpulist --json
check "bad --shards" status_is 2 "$RP" topo --shards 0

check "synthetic cpulist: one per core" \
	out_is "0,2,4,6,8,10,12,14,16,18,20,22,24,26,28,30,32,34,36,38,40,42,44,46,48,50,52,54,56,58,60,62" \
	"$RP" topo --synthetic "$S4" --cpulist
check "synthetic cpulist --smt" out_is "0-63" "$RP" topo --synthetic "$S4" --smt --cpulist
check "spread 4 shards: one per node" out_is "0,16,32,48" \
	"$RP" topo --synthetic "$S4" --shards 4 --cpulist
check "pack 4 shards: node 0" out_is "0,2,4,6" \
	"$RP" topo --synthetic "$S4" --policy pack --shards 4 --cpulist
check "explicit cpus" out_is "1-3,9" "$RP" topo --synthetic "$S4" --cpus 9,1-3 --cpulist
check "1x2 host-like" out_is "0-1" "$RP" topo --synthetic "package:1 core:2 pu:1" --cpulist

# The host plan's CPUs are a subset of what this process may use.
if allowed=$(taskset -pc $$ 2>/dev/null | sed 's/.*: //'); then
	check "host cpulist not empty" bash -c "[ -n \"\$('$RP' topo --cpulist)\" ]"
	echo "     (host allowed: $allowed, plan: $("$RP" topo --cpulist))"
fi

if command -v python3 >/dev/null; then
	check "json parses, 32 shards, spread nodes" python3 -c '
import json, subprocess, sys
d = json.loads(subprocess.run([sys.argv[1], "topo", "--synthetic", sys.argv[2], "--json"],
                              check=True, capture_output=True, text=True).stdout)
sh = d["plan"]["shards"]
assert d["topology"]["pus"] == 64 and d["topology"]["numa_nodes"] == 4, d["topology"]
assert len(sh) == 32, len(sh)
assert [s["node"] for s in sh[:8]] == [0, 1, 2, 3] * 2, sh[:8]
assert [n["cpus"] for n in d["topology"]["nodes"]] == ["0-15", "16-31", "32-47", "48-63"]
d = json.loads(subprocess.run([sys.argv[1], "topo", "--json"], check=True,
                              capture_output=True, text=True).stdout)
assert d["topology"]["synthetic"] is None and len(d["plan"]["shards"]) >= 1
' "$RP" "$S4"
fi

# Bad option values: exit 2 and one line on stderr naming the flag and the
# value, for every command. (echo refuses before it binds or starts
# anything, so none of these listens.)
refused() { # flag, value, command...: exit 2, one stderr line naming flag and value
	local flag=$1 val=$2 err got
	shift 2
	# bounded: a server that took a bad value as a good one would run on
	err=$(timeout 10 "$@" 2>&1 >/dev/null)
	got=$?
	[ "$got" -eq 2 ] || { echo "  exit $got, wanted 2: $*" >&2; return 1; }
	[ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] ||
		{ echo "  not one line: '$err'" >&2; return 1; }
	case $err in
	*"$flag '$val'"*) ;;
	*) echo "  message does not name $flag '$val': '$err'" >&2; return 1 ;;
	esac
}
E="$RP echo --listen 127.0.0.1:0"
for bad in "--listen 127.0.0.1:99999" "--listen 127.0.0.1:-1" "--listen 127.0.0.1:" \
	"--listen 127.0.0.1:80x" "--listen 1.2.3:80" "--listen 256.1.1.1:80" "--listen ::1:80" \
	"--listen [::1]:99999" "--listen [zz::1]:80" "--listen :80" "--listen nocolon" \
	"--shards 4x" "--shards 0" "--shards -1" "--shards 1025" "--shards +2" "--shards ''" \
	"--busy-poll abc" "--busy-poll -5" "--busy-poll 1.5" \
	"--stats-interval abc" "--stats-interval ''" "--stats-interval 99999999999999999999" \
	"--idle-timeout 5s" "--idle-timeout -1" "--idle-timeout 86401" \
	"--cpus 3-1" "--cpus ''" "--cpus 5000"; do
	eval "set -- $bad"
	# shellcheck disable=SC2086 # $E is a command line: split on purpose
	check "echo $1 '$2' refused" refused "$1" "$2" $E "$1" "$2"
done
for bad in "--linger-timeout 0" "--linger-timeout 3601" "--linger-time -1" "--linger-time 5s" \
	"--linger-time ''" "--idle-spin 1001" "--idle-spin -1" "--idle-spin 5us"; do
	eval "set -- $bad"
	check "serve $1 '$2' refused" refused "$1" "$2" "$RP" serve --listen 127.0.0.1:0 --root / "$1" "$2"
done
for bad in "--drain-timeout -1" "--drain-timeout 3601" "--drain-timeout 5s" \
	"--drain-timeout ''"; do
	eval "set -- $bad"
	# shellcheck disable=SC2086 # $E is a command line: split on purpose
	check "echo $1 '$2' refused" refused "$1" "$2" $E "$1" "$2"
	check "serve $1 '$2' refused" refused "$1" "$2" "$RP" serve --listen 127.0.0.1:0 --root / "$1" "$2"
	check "relay $1 '$2' refused" refused "$1" "$2" "$RP" relay --listen 127.0.0.1:0 \
		--upstream 127.0.0.1:1 "$1" "$2"
done
for bad in "--stop-timeout 0" "--stop-timeout 600001" "--stop-timeout 5s" "--stop-timeout ''"; do
	eval "set -- $bad"
	check "relay $1 '$2' refused" refused "$1" "$2" "$RP" relay --listen 127.0.0.1:0 \
		--upstream 127.0.0.1:1 "$1" "$2"
done
check "relay --help lists --stop-timeout" status_is 0 bash -c \
	"'$RP' relay --help | grep -q '^  --stop-timeout MS'"
for bad in "--shards 4x" "--shards 0" "--shards ''" "--policy round" "--cpus 3-1" \
	"--cpus 5000" "--cpus ''"; do
	eval "set -- $bad"
	check "topo $1 '$2' refused" refused "$1" "$2" "$RP" topo "$1" "$2"
done

# Arguments that are not a flag's value: exit 2 and exactly one line naming
# the argument with the program's prefix. An abbreviated long flag, which
# getopt_long would take for the whole one, is refused with the full name.
says() { # expected stderr line, command...: exit 2 and that one line
	local want=$1 err got
	shift
	err=$(timeout 10 "$@" 2>&1 >/dev/null)
	got=$?
	[ "$got" -eq 2 ] || { echo "  exit $got, wanted 2: $*" >&2; return 1; }
	[ "$err" = "$want" ] || { echo "  got '$err', wanted '$want': $*" >&2; return 1; }
}
for cmd in echo relay serve; do
	case $cmd in
	echo) args=(--listen 127.0.0.1:0) ;;
	relay) args=(--listen 127.0.0.1:0 --upstream 127.0.0.1:1) ;;
	serve) args=(--listen 127.0.0.1:0 --root /) ;;
	esac
	h="(ringplane $cmd --help for usage)"
	check "$cmd: stray argument named" says \
		"ringplane $cmd: unexpected argument 'extra' $h" "$RP" "$cmd" "${args[@]}" extra
	check "$cmd: unknown option named, with the prefix" says \
		"ringplane $cmd: unknown option '--bogus' $h" "$RP" "$cmd" "${args[@]}" --bogus 1
	check "$cmd: abbreviation refused" says \
		"ringplane $cmd: option '--lis' is abbreviated: did you mean --listen? $h" \
		"$RP" "$cmd" --lis 127.0.0.1:0 "${args[@]:2}"
	check "$cmd: abbreviation with = refused" says \
		"ringplane $cmd: option '--shar' is abbreviated: did you mean --shards? $h" \
		"$RP" "$cmd" "${args[@]}" --shar=1
	check "$cmd: missing value named" says \
		"ringplane $cmd: --pool-mb needs a value $h" "$RP" "$cmd" "${args[@]}" --pool-mb
	check "$cmd: value to a flag without one" says \
		"ringplane $cmd: --no-pin takes no value $h" "$RP" "$cmd" "${args[@]}" --no-pin=1
	check "$cmd: unknown short option in a cluster named" says \
		"ringplane $cmd: unknown option '-x' $h" "$RP" "$cmd" "${args[@]}" -xh
	check "$cmd: unknown short option after --flag=value named" says \
		"ringplane $cmd: unknown option '-x' $h" "$RP" "$cmd" "--listen=127.0.0.1:0" "${args[@]:2}" -xh
	check "$cmd: -h is --help" status_is 0 bash -c "'$RP' $cmd -h | grep -q -- '--listen'"
	check "$cmd: missing --listen named" says \
		"ringplane $cmd: --listen is required $h" "$RP" "$cmd" "${args[@]:2}"
done
check "relay: missing --upstream named" says \
	"ringplane relay: --upstream is required (ringplane relay --help for usage)" \
	"$RP" relay --listen 127.0.0.1:0
check "serve: missing --root named" says \
	"ringplane serve: --root is required (ringplane serve --help for usage)" \
	"$RP" serve --listen 127.0.0.1:0
check "serve: ambiguous prefix names both flags" says \
	"ringplane serve: option '--linger-tim' is ambiguous: --linger-timeout or --linger-time? (ringplane serve --help for usage)" \
	"$RP" serve --listen 127.0.0.1:0 --root / --linger-tim 3
check "topo: abbreviation refused" says \
	"ringplane topo: option '--cpul' is abbreviated: did you mean --cpulist? (ringplane topo --help for usage)" \
	"$RP" topo --cpul
check "topo: stray argument named" says \
	"ringplane topo: unexpected argument 'extra' (ringplane topo --help for usage)" "$RP" topo extra
check "--help lists --version" status_is 0 bash -c "'$RP' --help | grep -q -- '--version'"

# Good values still work: the server comes up on each address form.
serves() { # echo arguments...: prints "listening on" within 5 s, stops on SIGTERM with 0
	local out pid line st
	out=$(mktemp)
	# detect_leaks=0: after getaddrinfo("localhost") (NSS modules dlopen'ed),
	# LeakSanitizer's ptrace-based stop-the-world at exit spun for good under
	# this sandbox's kernel (gVisor); test_echo checks echo's leaks.
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
		timeout -k 5 20 "$RP" echo --no-pin --shards 1 "$@" >"$out" 2>/dev/null &
	pid=$!
	for _ in $(seq 50); do
		line=$(head -n1 "$out")
		[ -n "$line" ] && break
		sleep 0.1
	done
	kill -TERM "$pid" 2>/dev/null
	wait "$pid"
	st=$?
	rm -f "$out"
	case $line in
	"listening on "*) ;;
	*) echo "  no 'listening on' line (got '$line'): $*" >&2; return 1 ;;
	esac
	[ "$st" -eq 0 ] || { echo "  exit $st after SIGTERM: $*" >&2; return 1; }
}
check "echo listens on 127.0.0.1:0" serves --listen 127.0.0.1:0
check "echo with every numeric flag" serves --listen 127.0.0.1:0 --busy-poll 0 \
	--stats-interval 3600 --idle-timeout 0 --drain-timeout 3600
check "echo listens on localhost:0" serves --listen localhost:0
if [ -e /proc/net/if_inet6 ] && grep -q '^0\{31\}1 ' /proc/net/if_inet6; then
	check "echo listens on [::1]:0" serves --listen "[::1]:0"
fi
check "topo --shards 2 works" out_is "0,2" \
	"$RP" topo --synthetic "package:1 core:4 pu:2" --shards 2 --cpulist

if [ "$fails" -ne 0 ]; then
	echo "$fails check(s) failed"
	exit 1
fi
echo "all checks passed"
