#!/usr/bin/env bats
# ringplane-tune check: verdicts on fake /proc and /sys trees (never the host).

bats_require_minimum_version 1.5.0
load helpers

setup() { common_setup; }

@test "check: a tuned host passes with every row ok" {
	good_tree
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$status" -eq 0 ]
	[ "$(json_get 'd["summary"]')" = "{'ok': 36, 'warn': 0, 'fail': 0}" ]
	[ "$(json_get 'd["result"]')" = ok ]
	[ "$(json_get 'd["shard_cpus"], d["housekeeping_cpus"]')" = "('2-7', '0-1')" ]
}

@test "check: text output has one row per item, same verdicts as --json" {
	untuned_tree
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	local want
	want=$(json_get '"\n".join(c["status"] + " " + c["item"] for c in d["checks"])')
	run "$TUNE" check --cpus 2-7
	[ "$status" -eq 0 ]
	[ "$(printf '%s\n' "${lines[@]}" | awk '$1 ~ /^(ok|warn|fail)$/ && NF > 2 {print $1, $2}')" = "$want" ]
	[[ $output == *"11 ok, 25 warn, 0 fail"* ]]
}

@test "check: an untuned host with a usable kernel only warns (exit 0)" {
	untuned_tree
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$status" -eq 0 ]
	[ "$(json_get 'd["summary"]["fail"]')" -eq 0 ]
	local item
	for item in net.core.rmem_max net.ipv4.tcp_rmem net.core.busy_poll hugepages.node0 \
		cmdline.isolcpus cmdline.nohz_full cmdline.rcu_nocbs cmdline.irqaffinity governor \
		irq.network irq.other irq.default_affinity irqbalance memlock nofile; do
		[ "$(status_of "$item")" = warn ] || { echo "$item: $(status_of "$item")"; false; }
	done
	[ "$(json_get '[c["fix"] for c in d["checks"] if c["item"]=="net.ipv4.tcp_rmem"][0]')" = \
		'sysctl -w net.ipv4.tcp_rmem="4096 131072 268435456"' ]
}

@test "check: io_uring disabled and a 5.15 kernel fail (exit 1)" {
	bad_tree
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$status" -eq 1 ]
	[ "$(json_get 'sorted(c["item"] for c in d["checks"] if c["status"]=="fail")')" = \
		"['io_uring.multishot_accept', 'io_uring.multishot_recv', 'io_uring.provided_buffer_rings', 'kernel.io_uring_disabled']" ]
	[ "$(json_get 'd["result"]')" = fail ]
	# Features with a fallback in the engine only warn.
	[ "$(status_of io_uring.SINGLE_ISSUER)" = warn ]
	[ "$(status_of io_uring.MSG_RING)" = warn ]
}

@test "check: io_uring_disabled=1 fails; absent before 6.6 is ok, absent on 6.6+ fails" {
	good_tree
	f proc/sys/kernel/io_uring_disabled 1
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$status" -eq 1 ]
	[ "$(status_of kernel.io_uring_disabled)" = fail ]

	rm "$RP_TUNE_ROOT/proc/sys/kernel/io_uring_disabled"
	f proc/sys/kernel/osrelease 6.1.0-18-amd64
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$status" -eq 0 ]
	[ "$(status_of kernel.io_uring_disabled)" = ok ]

	f proc/sys/kernel/osrelease 6.8.0
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$status" -eq 1 ]
	[[ $(json_get '[c["note"] for c in d["checks"] if c["item"]=="kernel.io_uring_disabled"][0]') == *CONFIG_IO_URING* ]]
}

@test "check: kernel features are judged by version (required fail, fallbacks warn)" {
	good_tree
	f proc/sys/kernel/osrelease 6.1.0-18-amd64
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$status" -eq 0 ]
	[ "$(json_get '[c["item"] for c in d["checks"] if c["status"]!="ok"]')" = "['io_uring.SEND_ZC_REPORT_USAGE']" ]

	f proc/sys/kernel/osrelease 5.19.17
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$status" -eq 1 ]
	[ "$(json_get '{c["item"][9:]: c["status"] for c in d["checks"] if c["item"].startswith("io_uring.")}')" = \
		"{'MSG_RING': 'ok', 'multishot_accept': 'ok', 'provided_buffer_rings': 'ok', 'SINGLE_ISSUER': 'warn', 'SEND_ZC': 'warn', 'multishot_recv': 'fail', 'DEFER_TASKRUN': 'warn', 'SEND_ZC_REPORT_USAGE': 'warn'}" ]
}

@test "check: no cpufreq (a VM) is a visible n/a warning with its reason" {
	untuned_tree
	rm -rf "$RP_TUNE_ROOT"/sys/devices/system/cpu/cpu*/cpufreq
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$status" -eq 0 ]
	[ "$(json_get '[(c["status"], c["current"]) for c in d["checks"] if c["item"]=="governor"][0]')" = "('warn', 'n/a')" ]
	[[ $(json_get '[c["note"] for c in d["checks"] if c["item"]=="governor"][0]') == *"no cpufreq"* ]]
}

@test "check: a mixed governor set warns and names each CPU group" {
	good_tree
	f sys/devices/system/cpu/cpu5/cpufreq/scaling_governor schedutil
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$(status_of governor)" = warn ]
	[[ $(json_get '[c["current"] for c in d["checks"] if c["item"]=="governor"][0]') == *"performance(2-4,6-7)"*"schedutil(5)"* ]] ||
		[[ $(json_get '[c["current"] for c in d["checks"] if c["item"]=="governor"][0]') == *"schedutil(5)"*"performance(2-4,6-7)"* ]]
}

@test "check: missing files are n/a warnings, never a crash" {
	f sys/devices/system/cpu/online 0-3
	run --separate-stderr "$TUNE" check --json
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	"$PY" -m json.tool <<<"$output" >/dev/null
	[ "$(json_get 'd["shard_cpus"]')" = 1-3 ]
	[ "$(json_get 'all(c["current"]=="n/a" for c in d["checks"] if c["status"]=="warn")')" = True ]
	[ "$(json_get 'all(c["note"] for c in d["checks"] if c["current"]=="n/a")')" = True ]

	# Not even the online CPU list: still a full report, with the reason.
	rm -rf "${RP_TUNE_ROOT:?}/sys"
	run --separate-stderr "$TUNE" check --json
	[ "$status" -eq 0 ]
	[[ $(json_get 'd["shard_cpus_source"]') == *"pass --cpus"* ]]
}

@test "check: sysctls are floors (larger is fine), the exact key must match" {
	good_tree
	sysctl_file net.core.rmem_max 2147483647
	sysctl_file net.ipv4.tcp_wmem "8192 65536 2147483647"
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$status" -eq 0 ]
	[ "$(json_get 'd["summary"]["warn"]')" -eq 0 ]

	sysctl_file net.ipv4.tcp_rmem "4096 87380 2147483647"
	sysctl_file net.ipv4.tcp_slow_start_after_idle 2
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$(status_of net.ipv4.tcp_rmem)" = warn ]
	[ "$(status_of net.ipv4.tcp_slow_start_after_idle)" = warn ]
	[ "$(json_get '[c["fix"] for c in d["checks"] if c["item"]=="net.ipv4.tcp_rmem"][0]')" = \
		'sysctl -w net.ipv4.tcp_rmem="4096 131072 2147483647"' ]
	[ "$(json_get 'd["summary"]["warn"]')" -eq 2 ]
}

@test "check: huge pages are wanted only on nodes that host shard CPUs" {
	untuned_tree
	run --separate-stderr "$TUNE" check --json --cpus 5-7
	[ "$(status_of hugepages.node0)" = ok ]
	[ "$(status_of hugepages.node1)" = warn ]
	[ "$(json_get '[c["current"] for c in d["checks"] if c["item"]=="hugepages.node1"][0]')" = "nr=0 free=0" ]

	run --separate-stderr "$TUNE" check --json --cpus 5-7 --hugepages 0
	[ "$(status_of hugepages.node1)" = ok ]

	good_tree
	RP_TUNE_HUGEPAGES=1024 run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$(status_of hugepages.node0)" = warn ]
	[ "$(json_get 'd["hugepages_per_node"]')" -eq 1024 ]
}

@test "check: THP never warns; madvise and always are ok" {
	good_tree
	f sys/kernel/mm/transparent_hugepage/enabled "always madvise [never]"
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$(status_of thp)" = warn ]
	f sys/kernel/mm/transparent_hugepage/enabled "[always] madvise never"
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$(status_of thp)" = ok ]
}

@test "check: boot parameters are compared with the shard CPUs" {
	good_tree
	f proc/cmdline "ro isolcpus=2-5 nohz_full=1-7 rcu_nocbs=2,4 irqaffinity=0-2 -- isolcpus=2-7"
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$status" -eq 0 ]
	[ "$(status_of cmdline.isolcpus)" = warn ]
	[[ $(json_get '[c["note"] for c in d["checks"] if c["item"]=="cmdline.isolcpus"][0]') == *"6-7 are not isolated"* ]]
	[ "$(status_of cmdline.nohz_full)" = ok ]
	[ "$(status_of cmdline.rcu_nocbs)" = warn ]
	[ "$(status_of cmdline.irqaffinity)" = warn ]

	f proc/cmdline "ro isolcpus=domain,2-7 nohz_full=2-7 rcu_nocbs=2-7 irqaffinity=0-1"
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$(status_of cmdline.isolcpus)" = warn ]
	[[ $(json_get '[c["note"] for c in d["checks"] if c["item"]=="cmdline.isolcpus"][0]') == *managed_irq* ]]
	[ "$(status_of cmdline.irqaffinity)" = ok ]
}

@test "check: network queue IRQs are recognised by their names" {
	good_tree
	: >"$RP_TUNE_ROOT/proc/interrupts"
	rm -rf "$RP_TUNE_ROOT/proc/irq"/[0-9]*
	irq 30 virtio2-input.0 0
	irq 31 virtio2-output.0 0
	irq 32 mlx5_comp3@pci:0000:3b:00.0 1
	irq 33 i40e-ens1f0-TxRx-7 1
	irq 34 eth0-5 0
	irq 35 virtio1-req.0 0
	irq 36 nvme0q1 0
	irq 37 virtio4-input 0
	irq 38 'ahci[0000:00:17.0]' 0
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$(json_get '[c["current"] for c in d["checks"] if c["item"]=="irq.network"][0]')" = "5 IRQs, none on shard CPUs" ]
	[ "$(json_get '[c["current"] for c in d["checks"] if c["item"]=="irq.other"][0]')" = "4 IRQs, none on shard CPUs" ]

	f proc/irq/32/smp_affinity_list 1-3
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$(status_of irq.network)" = warn ]
	[ "$(json_get '[c["current"] for c in d["checks"] if c["item"]=="irq.network"][0]')" = \
		"1 of 5 on shard CPUs: 32(mlx5_comp3@pci:0000:3b:00.0)=1-3" ]
}

@test "check: no network IRQs at all is an n/a warning, not a failure" {
	good_tree
	: >"$RP_TUNE_ROOT/proc/interrupts"
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$status" -eq 0 ]
	[ "$(status_of irq.network)" = warn ]
	[ "$(json_get '[c["current"] for c in d["checks"] if c["item"]=="irq.network"][0]')" = n/a ]
}

@test "check: JSON escapes quotes, backslashes, tabs and control bytes from sysfs" {
	good_tree
	irq 60 $'q"\\z\x01\xe9-rx-0' 3
	f proc/sys/kernel/osrelease $'6.8.0-"odd"\\build'
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	"$PY" -m json.tool <<<"$output" >/dev/null
	[ "$(json_get 'd["kernel"]')" = '6.8.0-"odd"\build' ]
	[ "$(json_get 'repr([c["current"] for c in d["checks"] if c["item"]=="irq.network"][0])')" = \
		"'1 of 5 on shard CPUs: 60(q\"\\\\z\\x01é-rx-0)=3'" ]
}

@test "check: memlock and nofile come from the process limits" {
	good_tree
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$(status_of memlock)" = ok ]
	limits 65536 4096
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$status" -eq 0 ]
	[ "$(status_of memlock)" = warn ]
	[ "$(status_of nofile)" = warn ]
	[ "$(json_get '[c["current"] for c in d["checks"] if c["item"]=="memlock"][0]')" = 65536 ]
}

@test "check: a running irqbalance warns with the ban to configure" {
	good_tree
	f proc/777/comm irqbalance
	f proc/778/comm sshd
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$(status_of irqbalance)" = warn ]
	[[ $(json_get '[c["fix"] for c in d["checks"] if c["item"]=="irqbalance"][0]') == *"IRQBALANCE_BANNED_CPULIST=2-7"* ]]
}

@test "check: bad options and bad CPU lists are usage errors (exit 2)" {
	good_tree
	run "$TUNE" check --bogus
	[ "$status" -eq 2 ]
	run "$TUNE" check --cpus 7-2
	[ "$status" -eq 2 ]
	[[ $output == *"reversed range"* ]]
	run "$TUNE" check --hugepages lots
	[ "$status" -eq 2 ]
	run "$TUNE" check --cpus
	[ "$status" -eq 2 ]
	run "$TUNE" frobnicate
	[ "$status" -eq 2 ]
}

@test "check: busy_poll and busy_read say they are host-wide, tuned or not" {
	good_tree
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	local k
	for k in net.core.busy_poll net.core.busy_read; do
		[ "$(status_of "$k")" = ok ]
		[[ $(json_get "[c['note'] for c in d['checks'] if c['item']=='$k'][0]") == "host-wide, not per process or namespace"* ]]
	done
	untuned_tree
	run "$TUNE" check --cpus 2-7
	[[ $output == *"net.core.busy_poll: host-wide, not per process or namespace: every process's sockets spin"* ]]
}
