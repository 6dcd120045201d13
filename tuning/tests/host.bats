#!/usr/bin/env bats
# ringplane-tune on the real host, READ-ONLY: check --json must produce well-formed JSON
# whatever the host's tuning. Only the structure is asserted, never a verdict.

bats_require_minimum_version 1.5.0
load helpers

setup() {
	unset RP_TUNE_ROOT RP_TUNE_HUGEPAGES RP_TUNE_SYSCTL_CONF
	export RP_TUNE_RINGPLANE=none
	# check never writes; point the state dir away from /var/lib all the same.
	export RP_TUNE_STATE="$BATS_TEST_TMPDIR/state"
}

@test "host: check --json on this machine is valid JSON with one row per item" {
	run --separate-stderr "$TUNE" check --json
	# 0 = nothing fails, 1 = something fails (an untuned host may): both are verdicts.
	[ "$status" -eq 0 ] || [ "$status" -eq 1 ]
	"$PY" -m json.tool <<<"$output" >/dev/null
	printf '%s\n' "$output" >"$BATS_TEST_TMPDIR/host.json"
	"$PY" - "$status" "$BATS_TEST_TMPDIR/host.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[2]))
for k, t in [("tool", str), ("version", int), ("root", str), ("kernel", str),
             ("shard_cpus", str), ("shard_cpus_source", str), ("housekeeping_cpus", str),
             ("hugepages_per_node", int), ("result", str), ("summary", dict), ("checks", list)]:
    assert isinstance(d[k], t), k
assert d["tool"] == "ringplane-tune" and d["root"] == ""
fields = ["item", "category", "status", "current", "recommended", "fix", "note"]
items = set()
for c in d["checks"]:
    assert sorted(c) == sorted(fields), c
    assert all(isinstance(c[f], str) for f in fields), c
    assert c["status"] in ("ok", "warn", "fail"), c
    assert c["item"] not in items, c["item"]
    items.add(c["item"])
    assert c["status"] == "ok" or c["fix"] or c["note"], c  # every non-ok row says why or how
for s in ("ok", "warn", "fail"):
    assert d["summary"][s] == sum(c["status"] == s for c in d["checks"]), s
assert d["result"] == ("fail" if d["summary"]["fail"] else "warn" if d["summary"]["warn"] else "ok")
assert (d["summary"]["fail"] > 0) == (sys.argv[1] == "1")
# every audited area is present
for want in ("net.core.rmem_max", "net.core.optmem_max", "net.core.somaxconn",
             "net.ipv4.tcp_max_syn_backlog", "net.core.busy_poll", "net.core.busy_read", "thp",
             "cmdline.isolcpus", "cmdline.nohz_full", "cmdline.rcu_nocbs", "cmdline.irqaffinity",
             "governor", "irq.network", "memlock", "kernel.io_uring_disabled",
             "io_uring.SINGLE_ISSUER", "io_uring.DEFER_TASKRUN", "io_uring.SEND_ZC",
             "io_uring.SEND_ZC_REPORT_USAGE", "io_uring.MSG_RING", "io_uring.multishot_recv",
             "io_uring.provided_buffer_rings", "io_uring.multishot_accept"):
    assert want in items, want
assert any(i.startswith("hugepages") for i in items)
PY
	[ ! -e "$RP_TUNE_STATE" ]
}

@test "host: check prints a table on this machine" {
	run --separate-stderr "$TUNE" check
	[ "$status" -eq 0 ] || [ "$status" -eq 1 ]
	[[ ${lines[0]} == "ringplane-tune: shard CPUs "* ]]
	[[ ${lines[-1]} =~ ^[0-9]+\ ok,\ [0-9]+\ warn,\ [0-9]+\ fail$ ]]
	[ -z "$stderr" ]
}
