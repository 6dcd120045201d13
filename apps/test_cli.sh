#!/usr/bin/env bash
# `ringplane topo` as operators and the tuning scripts call it: exit codes,
# the --cpulist line, JSON that parses, and plan rows on a synthetic
# 4-node machine. Usage: test_cli.sh PATH/TO/ringplane
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

if [ "$fails" -ne 0 ]; then
	echo "$fails check(s) failed"
	exit 1
fi
echo "all checks passed"
