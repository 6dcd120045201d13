# shellcheck shell=bash
# Shared by the ringplane-tune bats files: fake /proc and /sys trees under $RP_TUNE_ROOT,
# so no test reads or writes the host (except host.bats, which only reads).

# shellcheck disable=SC2034 # TUNE, CONF and PY are used by the .bats files that load this.
TUNE="$BATS_TEST_DIRNAME/../ringplane-tune"
# Debian's interpreter starts in ~20 ms; a pyenv shim on PATH can take 300 ms per call.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
CONF="$BATS_TEST_DIRNAME/../sysctl.d/90-ringplane.conf"

common_setup() {
	export RP_TUNE_ROOT="$BATS_TEST_TMPDIR/root"
	export RP_TUNE_RINGPLANE=none # never ask a real build for the topology
	export RP_TUNE_IP=none        # nor the host's ip for its veth devices (rps.bats fakes it)
	unset RP_TUNE_STATE RP_TUNE_HUGEPAGES RP_TUNE_SYSCTL_CONF
	mkdir -p "$RP_TUNE_ROOT"
}

# f PATH CONTENT...: writes the CONTENT lines (newline-terminated, like procfs) to ROOT/PATH.
f() {
	local path=$RP_TUNE_ROOT/$1
	shift
	[[ -d ${path%/*} ]] || mkdir -p "${path%/*}"
	printf '%s\n' "$@" >"$path"
}

# sysctl_file KEY VALUE: as the kernel prints it (fields separated by tabs).
sysctl_file() {
	local key=$1 val=$2
	f "proc/sys/${key//.//}" "${val// /$'\t'}"
}

# conf_values: prints "key<TAB>value" for every setting of the shipped sysctl file.
conf_values() {
	local line k v
	while IFS= read -r line; do
		[[ $line =~ ^([a-z0-9_.]+)[[:space:]]*=[[:space:]]*(.*)$ ]] || continue
		k=${BASH_REMATCH[1]} v=${BASH_REMATCH[2]}
		printf '%s\t%s\n' "$k" "$v"
	done <"$CONF"
}

# Linux defaults on a plain host (what an untuned machine shows).
untuned_sysctls() {
	sysctl_file net.core.rmem_max 212992
	sysctl_file net.core.wmem_max 212992
	sysctl_file net.ipv4.tcp_rmem "4096 131072 6291456"
	sysctl_file net.ipv4.tcp_wmem "4096 16384 4194304"
	sysctl_file net.core.optmem_max 20480
	sysctl_file net.core.somaxconn 4096
	sysctl_file net.ipv4.tcp_max_syn_backlog 1024
	sysctl_file net.core.netdev_max_backlog 1000
	sysctl_file net.core.busy_poll 0
	sysctl_file net.core.busy_read 0
	sysctl_file net.ipv4.tcp_slow_start_after_idle 1
}

tuned_sysctls() {
	local k v
	while IFS=$'\t' read -r k v; do sysctl_file "$k" "$v"; done < <(conf_values)
}

limits() { # limits MEMLOCK NOFILE
	f proc/self/limits \
		"Limit                     Soft Limit           Hard Limit           Units     " \
		"Max cpu time              unlimited            unlimited            seconds   " \
		"Max open files            $2              $2              files     " \
		"Max locked memory         $1              $1              bytes     "
}

# irq N NAME AFFINITY: one IRQ in /proc/irq and a line in /proc/interrupts.
irq() {
	f "proc/irq/$1/smp_affinity_list" "$3"
	printf '%4s:          0          0   PCI-MSIX-0000:3b:00.0   0-edge      %s\n' "$1" "$2" \
		>>"$RP_TUNE_ROOT/proc/interrupts"
}

# base_tree: 8 CPUs on two NUMA nodes (0-3, 4-7), a NIC with 4 queues and an NVMe drive.
base_tree() {
	f sys/devices/system/cpu/online 0-7
	f sys/devices/system/cpu/possible 0-7
	mkdir -p "$RP_TUNE_ROOT"/sys/devices/system/cpu/cpu{0,1,2,3,4,5,6,7}
	mkdir -p "$RP_TUNE_ROOT"/sys/devices/system/node/node{0,1}/hugepages/hugepages-2048kB
	f sys/devices/system/node/node0/cpulist 0-3
	f sys/devices/system/node/node1/cpulist 4-7
	node_mem 0 16777216
	node_mem 1 16777216
	f proc/sys/kernel/random/boot_id 6f1c2a64-1111-4a5e-9c0d-3b2f7e8a9d01
	mkdir -p "$RP_TUNE_ROOT/sys/class/net/eth0" "$RP_TUNE_ROOT/sys/class/net/lo"
	f proc/interrupts "           CPU0       CPU1       CPU2       CPU3       CPU4       CPU5       CPU6       CPU7"
	f proc/sys/kernel/osrelease 6.8.0-31-generic
	f proc/sys/kernel/io_uring_disabled 0
	f sys/kernel/mm/transparent_hugepage/enabled "always [madvise] never"
	mkdir -p "$RP_TUNE_ROOT/etc/udev/rules.d"
}

# node_mem NODE KB: the node's meminfo as the kernel prints it (MemTotal in kB).
node_mem() {
	f "sys/devices/system/node/node$1/meminfo" \
		"Node $1 MemTotal:       $2 kB" "Node $1 MemFree:        $(($2 / 2)) kB"
}

# hugepages NODE NR FREE
hugepages() {
	local d=sys/devices/system/node/node$1/hugepages/hugepages-2048kB
	f "$d/nr_hugepages" "$2"
	f "$d/free_hugepages" "$3"
	f "$d/surplus_hugepages" 0
}

governors() { # governors NAME: same governor on all 8 CPUs
	local c
	for c in 0 1 2 3 4 5 6 7; do
		f "sys/devices/system/cpu/cpu$c/cpufreq/scaling_governor" "$1"
		f "sys/devices/system/cpu/cpu$c/cpufreq/scaling_available_governors" "performance powersave"
	done
}

# rps_rule MASK: the udev rule apply installs for veth devices (lib/rps.sh), byte for byte.
rps_rule() {
	f etc/udev/rules.d/90-ringplane-veth-rps.rules \
		"# ringplane-tune apply installed this (ringplane-tune revert removes it): veth devices" \
		"# made later steer their receive (RPS) to the housekeeping CPUs, one CPU per flow." \
		"# See tuning/README.md, \"veth receive steering\"." \
		"ACTION==\"add\", SUBSYSTEM==\"net\", ENV{ID_NET_DRIVER}==\"veth\", ATTR{queues/rx-0/rps_cpus}=\"$1\""
}

# build_good: tuned for shard CPUs 2-7 (housekeeping 0-1) and 512 pages per node.
build_good() {
	base_tree
	tuned_sysctls
	hugepages 0 512 512
	hugepages 1 512 500
	f proc/cmdline "BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet isolcpus=managed_irq,domain,2-7 nohz_full=2-7 rcu_nocbs=2-7 irqaffinity=0-1"
	governors performance
	irq 0 timer 0
	irq 40 eth0-TxRx-0 0
	irq 41 eth0-TxRx-1 1
	irq 42 eth0-TxRx-2 0
	irq 43 eth0-TxRx-3 1
	irq 50 nvme0q1 0-1
	f proc/irq/default_smp_affinity 03
	limits unlimited 1048576
	rps_rule 3
}

# build_untuned: a plain host with a recent kernel (defaults everywhere, IRQs on every CPU,
# powersave, no boot parameters, irqbalance running), still able to run ringplane.
build_untuned() {
	base_tree
	untuned_sysctls
	hugepages 0 0 0
	hugepages 1 0 0
	f proc/cmdline "BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet"
	governors powersave
	irq 0 timer 0
	irq 40 eth0-TxRx-0 0-7
	irq 41 eth0-TxRx-1 0-7
	irq 42 eth0-TxRx-2 4
	irq 43 eth0-TxRx-3 1
	irq 50 nvme0q1 0-7
	f proc/irq/default_smp_affinity ff
	limits 8388608 1024
	f proc/4242/comm irqbalance
}

# build_bad: untuned, plus io_uring switched off and a kernel too old for the engine.
build_bad() {
	build_untuned
	f proc/sys/kernel/osrelease 5.15.0-91-generic
	f proc/sys/kernel/io_uring_disabled 2
}

# use_tree good|untuned|bad: the fake root becomes a fresh copy of that tree, built once per
# bats file (building costs ~80 files; copying is one cp).
use_tree() {
	local tpl=$BATS_FILE_TMPDIR/tree-$1
	local keep=$RP_TUNE_ROOT
	if [[ ! -d $tpl ]]; then
		RP_TUNE_ROOT=$tpl.tmp
		rm -rf "$RP_TUNE_ROOT" && mkdir -p "$RP_TUNE_ROOT"
		"build_$1"
		RP_TUNE_ROOT=$keep
		mv "$tpl.tmp" "$tpl"
	fi
	rm -rf "$RP_TUNE_ROOT"
	cp -a "$tpl" "$RP_TUNE_ROOT"
}

good_tree() { use_tree good; }
untuned_tree() { use_tree untuned; }
bad_tree() { use_tree bad; }

# $output is set by bats' run.
# shellcheck disable=SC2154
# json_get PY_EXPR: evaluates a Python expression over the JSON in $output (as `d`).
json_get() {
	"$PY" -c 'import json,sys; d=json.loads(sys.stdin.read()); print(eval(sys.argv[1]))' "$1" <<<"$output"
}

# status_of ITEM: the status of one check row in the JSON in $output. ringplane-tune prints
# one check per line, so bash reads it without a Python start per call; json_get and
# json.tool do the real parsing.
status_of() {
	local line
	while IFS= read -r line; do
		if [[ $line == *"{\"item\": \"$1\", "* && $line =~ \"status\":\ \"([a-z]+)\" ]]; then
			printf '%s\n' "${BASH_REMATCH[1]}"
			return 0
		fi
	done <<<"$output"
	echo "no row $1" >&2
	return 1
}

# snapshot NAME: copies the fake root to $BATS_TEST_TMPDIR/NAME for a later diff -r.
snapshot() {
	rm -rf "${BATS_TEST_TMPDIR:?}/$1"
	cp -a "$RP_TUNE_ROOT" "$BATS_TEST_TMPDIR/$1"
}
