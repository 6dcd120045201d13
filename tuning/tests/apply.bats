#!/usr/bin/env bats
# ringplane-tune apply / revert on fake trees: dry runs, exact restores, idempotence.

bats_require_minimum_version 1.5.0
load helpers

setup() {
	common_setup
	export RP_TUNE_STATE="$BATS_TEST_TMPDIR/state" # outside the tree, so diff -r sees only the tree
}

@test "apply --dry-run prints each write and changes nothing" {
	untuned_tree
	snapshot before
	run "$TUNE" apply --dry-run --cpus 2-7 --move-nic-irqs
	[ "$status" -eq 0 ]
	diff -r "$BATS_TEST_TMPDIR/before" "$RP_TUNE_ROOT"
	[ ! -e "$RP_TUNE_STATE" ]
	[[ $output == *"would write '268435456' to $RP_TUNE_ROOT/proc/sys/net/core/rmem_max (now '212992')"* ]]
	[[ $output == *"would write 'performance' to $RP_TUNE_ROOT/sys/devices/system/cpu/cpu7/cpufreq/scaling_governor"* ]]
	[[ $output == *"would write '0-1' to $RP_TUNE_ROOT/proc/irq/40/smp_affinity_list (now '0-7')"* ]]
	[[ $output == *"dry run: 25 writes, nothing changed"* ]]
}

@test "apply then revert restores the tree byte for byte" {
	untuned_tree
	snapshot before
	run "$TUNE" apply --cpus 2-7 --move-nic-irqs
	[ "$status" -eq 0 ]
	[[ $output == *"25 written, 0 failed"* ]]
	run diff -r -q "$BATS_TEST_TMPDIR/before" "$RP_TUNE_ROOT"
	[ "$status" -eq 1 ]
	# Tabs in tcp_rmem, the mask width of default_smp_affinity: revert must give them back.
	[ "$(cat "$RP_TUNE_ROOT/proc/irq/default_smp_affinity")" = 3 ]
	run "$TUNE" revert
	[ "$status" -eq 0 ]
	[[ $output == *"reverted 25 values"* ]]
	diff -r "$BATS_TEST_TMPDIR/before" "$RP_TUNE_ROOT"
	[ ! -e "$RP_TUNE_STATE" ]
}

@test "after apply, check finds sysctls, huge pages, governor and IRQs tuned" {
	untuned_tree
	"$TUNE" apply --cpus 2-7 --move-nic-irqs >/dev/null
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$status" -eq 0 ]
	[ "$(json_get '[c["item"] for c in d["checks"] if c["status"]!="ok"]')" = \
		"['cmdline.isolcpus', 'cmdline.nohz_full', 'cmdline.rcu_nocbs', 'cmdline.irqaffinity', 'irqbalance', 'memlock', 'nofile']" ]
}

@test "apply is idempotent: a second run writes nothing and keeps the first originals" {
	untuned_tree
	snapshot before
	"$TUNE" apply --cpus 2-7 --move-nic-irqs >/dev/null
	cp "$RP_TUNE_STATE/changes" "$BATS_TEST_TMPDIR/changes.1"
	snapshot after1
	run "$TUNE" apply --cpus 2-7 --move-nic-irqs
	[ "$status" -eq 0 ]
	[[ $output == *"0 written, 0 failed"* ]]
	diff -r "$BATS_TEST_TMPDIR/after1" "$RP_TUNE_ROOT"
	diff "$BATS_TEST_TMPDIR/changes.1" "$RP_TUNE_STATE/changes"
	[ "$(sort "$RP_TUNE_STATE/changes" | uniq -d)" = "" ]
	[ "$(wc -l <"$RP_TUNE_STATE/changes")" -eq 25 ]
	# One saved original per path, equal to the pre-apply bytes; a file apply created (the
	# udev rule) has the absent marker instead.
	local p
	while IFS= read -r p; do
		if [[ -e $BATS_TEST_TMPDIR/before$p ]]; then
			cmp "$RP_TUNE_STATE/orig$p" "$BATS_TEST_TMPDIR/before$p"
		else
			[ -f "$RP_TUNE_STATE/absent$p" ] && [ ! -e "$RP_TUNE_STATE/orig$p" ]
		fi
	done <"$RP_TUNE_STATE/changes"
	"$TUNE" revert >/dev/null
	diff -r "$BATS_TEST_TMPDIR/before" "$RP_TUNE_ROOT"
}

@test "a value changed between two applies still reverts to the very first original" {
	untuned_tree
	snapshot before
	"$TUNE" apply --cpus 2-7 >/dev/null
	sysctl_file net.core.somaxconn 128 # someone lowers it again
	run "$TUNE" apply --cpus 2-7
	[[ $output == *"1 written"* ]]
	[ "$(cat "$RP_TUNE_STATE/orig/proc/sys/net/core/somaxconn")" = 4096 ]
	"$TUNE" revert >/dev/null
	diff -r "$BATS_TEST_TMPDIR/before" "$RP_TUNE_ROOT"
}

@test "state defaults to var/lib/ringplane-tune under the fake root, and revert removes it" {
	unset RP_TUNE_STATE
	untuned_tree
	snapshot before
	"$TUNE" apply --cpus 2-7 >/dev/null
	[ -s "$RP_TUNE_ROOT/var/lib/ringplane-tune/changes" ]
	[ "$(cat "$RP_TUNE_ROOT/var/lib/ringplane-tune/root")" = "$RP_TUNE_ROOT" ]
	"$TUNE" revert >/dev/null
	[ ! -e "$RP_TUNE_ROOT/var/lib/ringplane-tune" ]
	diff -r --exclude=var "$BATS_TEST_TMPDIR/before" "$RP_TUNE_ROOT"
}

@test "apply raises values below the floor and never lowers larger ones" {
	untuned_tree
	sysctl_file net.core.rmem_max 2147483647
	sysctl_file net.ipv4.tcp_rmem "8192 87380 2147483647"
	"$TUNE" apply --cpus 2-7 >/dev/null
	[ "$(cat "$RP_TUNE_ROOT/proc/sys/net/core/rmem_max")" = 2147483647 ]
	[ "$(cat "$RP_TUNE_ROOT/proc/sys/net/ipv4/tcp_rmem")" = "8192 131072 2147483647" ]
	[ ! -e "$RP_TUNE_STATE/orig/proc/sys/net/core/rmem_max" ]
	[ "$(cat "$RP_TUNE_ROOT/proc/sys/net/ipv4/tcp_slow_start_after_idle")" = 0 ]
}

@test "apply moves IRQs off shard CPUs, keeping their other CPUs" {
	untuned_tree
	f proc/irq/41/smp_affinity_list 1-3
	"$TUNE" apply --cpus 2-7 --move-nic-irqs >/dev/null
	[ "$(cat "$RP_TUNE_ROOT/proc/irq/40/smp_affinity_list")" = 0-1 ] # 0-7 -> 0-1
	[ "$(cat "$RP_TUNE_ROOT/proc/irq/41/smp_affinity_list")" = 1 ]   # 1-3 -> 1
	[ "$(cat "$RP_TUNE_ROOT/proc/irq/42/smp_affinity_list")" = 0-1 ] # 4 -> housekeeping
	[ "$(cat "$RP_TUNE_ROOT/proc/irq/43/smp_affinity_list")" = 1 ]   # untouched
	[ ! -e "$RP_TUNE_STATE/orig/proc/irq/43/smp_affinity_list" ]
	[ "$(cat "$RP_TUNE_ROOT/proc/irq/default_smp_affinity")" = 3 ]
}

@test "apply writes hex masks past 32 CPUs in the kernel's comma format" {
	untuned_tree
	f sys/devices/system/cpu/online 0-39
	f sys/devices/system/cpu/possible 0-39
	f proc/irq/default_smp_affinity ff,ffffffff
	f proc/irq/40/smp_affinity_list 0-39
	snapshot before
	"$TUNE" apply --cpus 4-35 --move-nic-irqs >/dev/null
	[ "$(cat "$RP_TUNE_ROOT/proc/irq/default_smp_affinity")" = f0,0000000f ]
	[ "$(cat "$RP_TUNE_ROOT/proc/irq/40/smp_affinity_list")" = 0-3,36-39 ]
	"$TUNE" revert >/dev/null
	diff -r "$BATS_TEST_TMPDIR/before" "$RP_TUNE_ROOT"
}

@test "apply --hugepages N reserves only on nodes with shard CPUs; 0 skips" {
	untuned_tree
	"$TUNE" apply --cpus 4-7 --hugepages 64 >/dev/null
	[ "$(cat "$RP_TUNE_ROOT/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages")" = 0 ]
	[ "$(cat "$RP_TUNE_ROOT/sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages")" = 64 ]
	"$TUNE" revert >/dev/null

	run "$TUNE" apply --cpus 2-7 --hugepages 0
	[[ $output == *"skip huge pages (--hugepages 0)"* ]]
	[ "$(cat "$RP_TUNE_ROOT/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages")" = 0 ]
	[ ! -e "$RP_TUNE_STATE/orig/sys/devices/system/node" ]
}

@test "apply skips what the host lacks: no cpufreq, no 'performance', no huge page pool" {
	untuned_tree
	rm -rf "$RP_TUNE_ROOT"/sys/devices/system/cpu/cpu[2-5]/cpufreq
	f sys/devices/system/cpu/cpu6/cpufreq/scaling_available_governors "powersave"
	rm -rf "$RP_TUNE_ROOT/sys/devices/system/node/node1/hugepages"
	run "$TUNE" apply --cpus 2-7
	[ "$status" -eq 0 ]
	[[ $output == *"skip governor on CPUs 2-5: no cpufreq"* ]]
	[[ $output == *"skip governor on cpu6: 'performance' not offered (powersave)"* ]]
	[[ $output == *"skip huge pages on node 1: no 2 MiB pool"* ]]
	[ "$(cat "$RP_TUNE_ROOT/sys/devices/system/cpu/cpu7/cpufreq/scaling_governor")" = performance ]
	[ "$(cat "$RP_TUNE_ROOT/sys/devices/system/cpu/cpu6/cpufreq/scaling_governor")" = powersave ]
}

@test "apply with every CPU a shard leaves IRQs alone" {
	untuned_tree
	run "$TUNE" apply --cpus 0-7
	[ "$status" -eq 0 ]
	[[ $output == *"skip IRQs: every online CPU is a shard CPU"* ]]
	[ "$(cat "$RP_TUNE_ROOT/proc/irq/40/smp_affinity_list")" = 0-7 ]
}

@test "revert with nothing saved is a no-op; a state saved for another root is refused" {
	untuned_tree
	run "$TUNE" revert
	[ "$status" -eq 0 ]
	[[ $output == *"nothing to revert"* ]]

	"$TUNE" apply --cpus 2-7 >/dev/null
	snapshot applied
	RP_TUNE_ROOT="$BATS_TEST_TMPDIR/applied" run "$TUNE" revert
	[ "$status" -eq 2 ]
	[[ $output == *"refusing to restore"* ]]
	diff -r "$BATS_TEST_TMPDIR/applied" "$RP_TUNE_ROOT"
}

@test "revert --dry-run lists the restores and changes nothing" {
	untuned_tree
	"$TUNE" apply --cpus 2-7 >/dev/null
	snapshot applied
	run "$TUNE" revert --dry-run
	[ "$status" -eq 0 ]
	[[ $output == *"would restore '212992' to $RP_TUNE_ROOT/proc/sys/net/core/rmem_max"* ]]
	diff -r "$BATS_TEST_TMPDIR/applied" "$RP_TUNE_ROOT"
	[ -s "$RP_TUNE_STATE/changes" ]
}

# nr_of NODE: the node's reserved 2 MiB page count in the fake tree.
nr_of() { cat "$RP_TUNE_ROOT/sys/devices/system/node/node$1/hugepages/hugepages-2048kB/nr_hugepages"; }

@test "apply caps huge pages at half a node's MemTotal; --force reserves them all" {
	untuned_tree
	node_mem 1 1048576 # 1 GiB: 512 pages would take all of it; half is 256
	snapshot before
	run "$TUNE" apply --cpus 2-7 --hugepages 512
	[ "$status" -eq 0 ]
	[ "$(nr_of 0)" = 512 ] # 16 GiB: far below the cap
	[ "$(nr_of 1)" = 256 ]
	[[ $output == *"capped huge pages on node 1 at 256 of 512: 512 pages (1024 MiB) are more than 50% of its 1024 MiB MemTotal"*"(--force reserves all 512)"* ]]
	[[ $output != *"capped huge pages on node 0"* ]]
	# check says the same before the operator wonders why node 1 still warns.
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[[ $(json_get '[c["note"] for c in d["checks"] if c["item"]=="hugepages.node1"][0]') == *"apply reserves 256 unless --force"* ]]
	"$TUNE" revert >/dev/null
	diff -r "$BATS_TEST_TMPDIR/before" "$RP_TUNE_ROOT"

	run "$TUNE" apply --cpus 2-7 --hugepages 512 --force
	[ "$status" -eq 0 ]
	[ "$(nr_of 1)" = 512 ]
	[[ $output == *"--force: reserving 512 huge pages on node 1, more than 50% of its 1024 MiB"* ]]
}

@test "apply caps the global huge page pool by /proc/meminfo when there is no NUMA sysfs" {
	untuned_tree
	rm -rf "$RP_TUNE_ROOT/sys/devices/system/node"
	f proc/sys/vm/nr_hugepages 0
	f proc/meminfo "MemTotal:        2097152 kB" "MemFree:         1048576 kB"
	run "$TUNE" apply --cpus 2-7 --hugepages 1000
	[ "$status" -eq 0 ]
	[ "$(cat "$RP_TUNE_ROOT/proc/sys/vm/nr_hugepages")" = 512 ]
	[[ $output == *"capped huge pages on the host at 512 of 1000"* ]]
	run "$TUNE" apply --cpus 2-7 --hugepages 1000 --dry-run --force
	[[ $output == *"would write '1000' to $RP_TUNE_ROOT/proc/sys/vm/nr_hugepages (now '512')"* ]]
}

@test "apply leaves network queue IRQs on shard CPUs unless --move-nic-irqs" {
	untuned_tree
	run "$TUNE" apply --cpus 2-7
	[ "$status" -eq 0 ]
	[ "$(cat "$RP_TUNE_ROOT/proc/irq/40/smp_affinity_list")" = 0-7 ]
	[ "$(cat "$RP_TUNE_ROOT/proc/irq/42/smp_affinity_list")" = 4 ]
	[ "$(cat "$RP_TUNE_ROOT/proc/irq/50/smp_affinity_list")" = 0-1 ] # nvme: not a NIC queue
	[ "$(cat "$RP_TUNE_ROOT/proc/irq/default_smp_affinity")" = 3 ]
	[[ $output == *"left 3 network queue IRQs on shard CPUs: 40(eth0-TxRx-0) 41(eth0-TxRx-1) 42(eth0-TxRx-2) (--move-nic-irqs moves them)"* ]]
	[[ $output == *"22 written, 0 failed"* ]]
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$(status_of irq.network)" = warn ]
	[ "$(status_of irq.other)" = ok ]
	[ "$(json_get '[c["fix"] for c in d["checks"] if c["item"]=="irq.network"][0]')" = \
		"ringplane-tune apply --cpus 2-7 --move-nic-irqs" ]

	run "$TUNE" apply --cpus 2-7 --move-nic-irqs
	[ "$(cat "$RP_TUNE_ROOT/proc/irq/40/smp_affinity_list")" = 0-1 ]
	[ "$(cat "$RP_TUNE_ROOT/proc/irq/42/smp_affinity_list")" = 0-1 ]
	[[ $output == *"3 written, 0 failed"* ]]
}

# reboot ID: a new boot of the same host: the kernel's defaults again, a new boot id.
reboot() {
	local keep=$BATS_TEST_TMPDIR/keep-etc
	rm -rf "$keep"
	if [[ -d $RP_TUNE_ROOT/etc ]]; then cp -a "$RP_TUNE_ROOT/etc" "$keep"; fi
	untuned_tree
	if [[ -d $keep ]]; then rm -rf "${RP_TUNE_ROOT:?}/etc" && cp -a "$keep" "$RP_TUNE_ROOT/etc"; fi
	f proc/sys/kernel/random/boot_id "$1"
}

@test "revert after a reboot restores no boot-bound value, only files that persist" {
	untuned_tree
	f etc/default/grub 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"'
	"$TUNE" cmdline --cpus 2-7 --write-grub --yes >/dev/null 2>&1
	"$TUNE" apply --cpus 2-7 --move-nic-irqs >/dev/null
	[ "$(cat "$RP_TUNE_STATE/boot_id")" = 6f1c2a64-1111-4a5e-9c0d-3b2f7e8a9d01 ]
	reboot 0b7e39d2-2222-4c1a-8f3e-5d6a7b8c9d02
	# The new boot's own settings (from sysctl.d, another tool, the operator): never overwritten
	# with the previous boot's originals.
	sysctl_file net.core.somaxconn 8192
	f proc/irq/40/smp_affinity_list 3
	snapshot booted
	run "$TUNE" revert --dry-run
	[ "$status" -eq 0 ]
	[[ $output == *"would restore '"*"quiet"*"' to $RP_TUNE_ROOT/etc/default/grub"* ]]
	[[ $output != *"/proc/"* && $output != *"would restore"*"/sys/"* ]]
	run "$TUNE" revert
	[ "$status" -eq 0 ]
	[[ $output == *"not restoring 24 values saved in another boot (saved in boot 6f1c2a64-1111-4a5e-9c0d-3b2f7e8a9d01, this is boot 0b7e39d2-2222-4c1a-8f3e-5d6a7b8c9d02)"* ]]
	[[ $output == *"reverted 2 values"* ]] # grub and the udev rule: files outlive a boot
	[ "$(cat "$RP_TUNE_ROOT/etc/default/grub")" = 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"' ]
	[ ! -e "$RP_TUNE_ROOT/etc/udev/rules.d/90-ringplane-veth-rps.rules" ]
	diff -r --exclude=etc "$BATS_TEST_TMPDIR/booted" "$RP_TUNE_ROOT"
	[ ! -e "$RP_TUNE_STATE" ]
}

@test "a state without a boot id is not trusted with boot-bound values" {
	untuned_tree
	"$TUNE" apply --cpus 2-7 >/dev/null
	rm "$RP_TUNE_STATE/boot_id" # as an older ringplane-tune left it
	snapshot applied
	run "$TUNE" revert
	[ "$status" -eq 0 ]
	[[ $output == *"not restoring 21 values saved in another boot (saved in boot unknown"* ]]
	# The udev rule is a file: it outlives a boot, so revert removes it whatever the boot.
	[[ $output == *"removed $RP_TUNE_ROOT/etc/udev/rules.d/90-ringplane-veth-rps.rules (apply created it)"* ]]
	diff -r -x 90-ringplane-veth-rps.rules "$BATS_TEST_TMPDIR/applied" "$RP_TUNE_ROOT"
	[ ! -e "$RP_TUNE_ROOT/etc/udev/rules.d/90-ringplane-veth-rps.rules" ]
}

@test "apply after a reboot saves this boot's originals, so revert restores them" {
	untuned_tree
	"$TUNE" apply --cpus 2-7 >/dev/null
	reboot 0b7e39d2-2222-4c1a-8f3e-5d6a7b8c9d02
	sysctl_file net.core.somaxconn 128 # this boot starts with another value
	snapshot booted
	cp -a "$RP_TUNE_STATE" "$BATS_TEST_TMPDIR/state-before"
	run "$TUNE" apply --cpus 2-7 --dry-run
	[[ $output == *"not restoring 21 values saved in another boot"*"apply would discard them"* ]]
	diff -r "$BATS_TEST_TMPDIR/state-before" "$RP_TUNE_STATE"
	run "$TUNE" apply --cpus 2-7
	[ "$status" -eq 0 ]
	[[ $output == *"not restoring 21 values saved in another boot"*"discarded them"* ]]
	[ "$(cat "$RP_TUNE_STATE/orig/proc/sys/net/core/somaxconn")" = 128 ]
	[ "$(cat "$RP_TUNE_STATE/boot_id")" = 0b7e39d2-2222-4c1a-8f3e-5d6a7b8c9d02 ]
	run "$TUNE" revert
	[ "$status" -eq 0 ]
	# The rule the first boot's apply created is removed too (its marker outlived the boot).
	diff -r -x 90-ringplane-veth-rps.rules "$BATS_TEST_TMPDIR/booted" "$RP_TUNE_ROOT"
	[ ! -e "$RP_TUNE_ROOT/etc/udev/rules.d/90-ringplane-veth-rps.rules" ]
}

# renumber_irq OLD NEW NAME AFF: the IRQ called NAME moves from number OLD to NEW (a driver
# reload); OLD is taken by another device.
renumber_irq() {
	sed -i "/^ *$1:/d" "$RP_TUNE_ROOT/proc/interrupts"
	rm -rf "${RP_TUNE_ROOT:?}/proc/irq/$1"
	irq "$2" "$3" "$4"
}

@test "revert finds IRQs by name: a renumbered IRQ gets its affinity, its old number's new owner does not" {
	untuned_tree
	"$TUNE" apply --cpus 2-7 --move-nic-irqs >/dev/null
	[ "$(cat "$RP_TUNE_ROOT/proc/irq/50/smp_affinity_list")" = 0-1 ]
	grep -qxF "$(printf '/proc/irq/50/smp_affinity_list\tnvme0q1')" "$RP_TUNE_STATE/irqs"
	renumber_irq 50 60 nvme0q1 0-1
	irq 50 xhci_hcd 0-1
	# eth0's queue 0 is gone altogether (fewer queues after the reload).
	sed -i '/eth0-TxRx-0$/d' "$RP_TUNE_ROOT/proc/interrupts"
	rm -rf "$RP_TUNE_ROOT/proc/irq/40"
	run "$TUNE" revert
	[ "$status" -eq 0 ]
	[ "$(cat "$RP_TUNE_ROOT/proc/irq/60/smp_affinity_list")" = 0-7 ]
	[ "$(cat "$RP_TUNE_ROOT/proc/irq/50/smp_affinity_list")" = 0-1 ]
	[ ! -e "$RP_TUNE_ROOT/proc/irq/40" ]
	[ "$(cat "$RP_TUNE_ROOT/proc/irq/41/smp_affinity_list")" = 0-7 ]
	[[ $output == *"IRQ 'nvme0q1' moved from /proc/irq/50/smp_affinity_list to /proc/irq/60/smp_affinity_list"* ]]
	[[ $output == *"not restored: IRQ 40 was 'eth0-TxRx-0' and is now gone; no IRQ has that name"* ]]
	[[ $output == *"reverted 24 values, 1 IRQs gone"* ]]
	[ ! -e "$RP_TUNE_STATE" ]
}

@test "two applies at once, then revert, restore the tree byte for byte" {
	# Without the state lock the second apply saved values the first had already tuned as
	# its originals, and revert put those back (exit 0): 5 of 5 rounds failed.
	local round rc1 rc2
	untuned_tree
	snapshot before
	for round in 1 2 3 4 5; do
		rm -rf "$RP_TUNE_ROOT" "$RP_TUNE_STATE"
		cp -a "$BATS_TEST_TMPDIR/before" "$RP_TUNE_ROOT"
		timeout 60 "$TUNE" apply --cpus 2-7 --hugepages 4 >"$BATS_TEST_TMPDIR/a1" 2>&1 &
		local p1=$!
		timeout 60 "$TUNE" apply --cpus 2-7 --hugepages 4 >"$BATS_TEST_TMPDIR/a2" 2>&1 &
		local p2=$!
		rc1=0 rc2=0
		wait "$p1" || rc1=$?
		wait "$p2" || rc2=$?
		echo "round $round: apply exits $rc1 $rc2"
		[ "$rc1" -eq 0 ] && [ "$rc2" -eq 0 ]
		run timeout 60 "$TUNE" revert
		[ "$status" -eq 0 ]
		diff -r "$BATS_TEST_TMPDIR/before" "$RP_TUNE_ROOT"
		[ ! -e "$RP_TUNE_STATE" ]
	done
}

@test "a run that finds the state locked waits, then gives up with exit 1 and writes nothing" {
	untuned_tree
	snapshot before
	mkdir -p "$RP_TUNE_STATE"
	# A sleep holds the lock (30 s at most): it inherits the locked open file; killing it frees
	# the lock. RP_TUNE_LOCK_WAIT=1 makes apply give up after a second.
	local lk holder
	exec {lk}>>"$RP_TUNE_STATE/lock"
	flock -x "$lk"
	sleep 30 &
	holder=$!
	exec {lk}>&-
	RP_TUNE_LOCK_WAIT=1 run "$TUNE" apply --cpus 2-7
	[ "$status" -eq 1 ]
	[[ $output == *"waiting up to 1s for another ringplane-tune run (lock $RP_TUNE_STATE/lock)"* ]]
	[[ $output == *"another run still holds $RP_TUNE_STATE/lock after 1s; nothing changed"* ]]
	diff -r "$BATS_TEST_TMPDIR/before" "$RP_TUNE_ROOT"
	[ ! -e "$RP_TUNE_STATE/changes" ]
	RP_TUNE_LOCK_WAIT=1 run "$TUNE" revert
	[ "$status" -eq 1 ]
	kill "$holder"
	wait "$holder" || true
	# Once the holder is gone, apply runs.
	run "$TUNE" apply --cpus 2-7
	[ "$status" -eq 0 ]
}

# killed_at K ARGS...: runs ringplane-tune ARGS and SIGKILLs it just before the K-th command
# it runs inside the state code (lib/state.sh: saving, listing, locking, cleaning up, and
# apply_irqs, which records each moved IRQ's name beside it); a DEBUG
# trap counts them. Prints "N=<commands counted>" when it ran to the end instead.
# shellcheck disable=SC2016 # the inner script expands its own variables
killed_at() {
	RP_K=$1 timeout 60 bash -c 'set -T
		RP_N=0
		trap '\''if [[ ${FUNCNAME[0]-} == @(save_orig|forget_orig|put|put_file|put_list|state_lock|state_init|state_drop_stale|state_revert|state_cleanup|apply_irqs) ]]; then
			((++RP_N < RP_K)) || kill -KILL $$; fi'\'' DEBUG
		trap '\''echo "N=$RP_N"'\'' EXIT
		source "$@"' killed_at "$TUNE" "${@:2}"
}

@test "apply killed at any point of its state code, then apply and revert, restores the tree" {
	# The old save_orig wrote the copy, then listed it: killed between the two, the next apply
	# kept the unlisted copy and revert never restored that file (exit 0).
	local n k rc
	untuned_tree
	snapshot before
	n=$(killed_at 999999 apply --cpus 2-7 --move-nic-irqs | sed -n 's/^N=//p')
	rm -rf "$RP_TUNE_STATE"
	cp -a "$BATS_TEST_TMPDIR/before/." "$RP_TUNE_ROOT"
	echo "apply runs $n commands of state code"
	((n > 100 && n < 5000))
	# Every point of state_init, the lock and the first puts, then every 11th to the end.
	for ((k = 1; k <= n; k += (k < 60 ? 1 : 11))); do
		rm -rf "$RP_TUNE_ROOT" "$RP_TUNE_STATE"
		cp -a "$BATS_TEST_TMPDIR/before" "$RP_TUNE_ROOT"
		rc=0
		killed_at "$k" apply --cpus 2-7 --move-nic-irqs >/dev/null 2>&1 || rc=$?
		[ "$rc" -eq 137 ] || { echo "k=$k: apply exit $rc, not killed"; false; }
		"$TUNE" apply --cpus 2-7 --move-nic-irqs >/dev/null 2>&1 || { echo "k=$k: apply failed"; false; }
		# Every listed IRQ has its name: revert finds a renumbered IRQ by it (the old apply_irqs
		# wrote it after put; killed between the two, the name was lost for good).
		diff <(grep '^/proc/irq/[0-9]' "$RP_TUNE_STATE/changes" | sort) \
			<(cut -f1 "$RP_TUNE_STATE/irqs" | sort -u) || { echo "k=$k: IRQ names lost"; false; }
		run "$TUNE" revert
		[ "$status" -eq 0 ] || { echo "k=$k: $output"; false; }
		diff -r "$BATS_TEST_TMPDIR/before" "$RP_TUNE_ROOT" || { echo "k=$k: not restored"; false; }
		[ ! -e "$RP_TUNE_STATE" ]
	done
}

@test "revert killed at any point of its state code, then revert again, restores the tree" {
	local n k rc
	untuned_tree
	snapshot before
	"$TUNE" apply --cpus 2-7 --move-nic-irqs >/dev/null
	cp -a "$RP_TUNE_STATE" "$BATS_TEST_TMPDIR/state0"
	snapshot tuned
	n=$(killed_at 999999 revert | sed -n 's/^N=//p')
	echo "revert runs $n commands of state code"
	((n > 50 && n < 5000))
	for ((k = 1; k <= n; k += (k < 40 ? 1 : 7))); do
		rm -rf "$RP_TUNE_ROOT" "$RP_TUNE_STATE"
		cp -a "$BATS_TEST_TMPDIR/tuned" "$RP_TUNE_ROOT"
		cp -a "$BATS_TEST_TMPDIR/state0" "$RP_TUNE_STATE"
		rc=0
		killed_at "$k" revert >/dev/null 2>&1 || rc=$?
		[ "$rc" -eq 137 ] || { echo "k=$k: revert exit $rc, not killed"; false; }
		run "$TUNE" revert
		[ "$status" -eq 0 ] || { echo "k=$k: $output"; false; }
		diff -r "$BATS_TEST_TMPDIR/before" "$RP_TUNE_ROOT" || { echo "k=$k: not restored"; false; }
		# A later apply and revert still start from the true originals.
		"$TUNE" apply --cpus 2-7 --move-nic-irqs >/dev/null 2>&1
		run "$TUNE" revert
		[ "$status" -eq 0 ]
		diff -r "$BATS_TEST_TMPDIR/before" "$RP_TUNE_ROOT" || { echo "k=$k: apply after it not reverted"; false; }
	done
}

# A fake sysctl the write must fail on: read-only for a non-root run, immutable (chattr +i,
# EPERM even for root) for a root one. IMMUTABLE names the file teardown unlocks.
lock_file() {
	if ((EUID)); then
		chmod 0444 "$1"
		WHY='Permission denied'
	else
		chattr +i "$1" 2>/dev/null || skip "chattr +i not supported on $(stat -f -c %T "$1")"
		IMMUTABLE=$1
		WHY='Operation not permitted'
	fi
}

teardown() {
	if [[ -n ${IMMUTABLE-} ]]; then chattr -i "$IMMUTABLE" || true; fi
}

@test "a write that fails says why; the others stay applied until revert; --dry-run predicts it" {
	untuned_tree
	snapshot before
	lock_file "$RP_TUNE_ROOT/proc/sys/net/core/rmem_max"
	run "$TUNE" apply --dry-run --cpus 2-7
	[ "$status" -eq 1 ]
	[[ $output == *"would fail: $RP_TUNE_ROOT/proc/sys/net/core/rmem_max is not writable (read-only file system or no permission)"* ]]
	[[ $output == *"dry run: 21 writes, 1 would fail, nothing changed"* ]]
	[ ! -e "$RP_TUNE_STATE" ]
	run "$TUNE" apply --cpus 2-7
	[ "$status" -eq 1 ]
	[[ $output == *"FAILED to write net.core.rmem_max: $WHY"* ]]
	[[ $output == *"21 written, 1 failed"* ]]
	[[ $output == *"1 writes failed (see the FAILED lines); the 21 that succeeded stay applied: fix the cause and run apply again, or undo them with 'ringplane-tune revert'"* ]]
	[ "$(cat "$RP_TUNE_ROOT/proc/sys/net/core/wmem_max")" = 268435456 ]
	# The failed file keeps no saved original; revert restores the 21 others exactly.
	run ! grep -qx /proc/sys/net/core/rmem_max "$RP_TUNE_STATE/changes"
	run "$TUNE" revert
	[ "$status" -eq 0 ]
	[[ $output == *"reverted 21 values"* ]]
	diff -r "$BATS_TEST_TMPDIR/before" "$RP_TUNE_ROOT"
}

@test "an IRQ file it may not write fails apply and --dry-run alike, with the actual cause" {
	# The old apply called every failed IRQ write kernel-managed and soft (exit 0), with the
	# cause in brackets ("kernel-managed (Permission denied)"); --dry-run failed it (exit 1).
	# A managed IRQ's write fails with EIO, which a fake tree cannot produce.
	untuned_tree
	lock_file "$RP_TUNE_ROOT/proc/irq/40/smp_affinity_list"
	run "$TUNE" apply --dry-run --cpus 2-7 --move-nic-irqs
	[ "$status" -eq 1 ]
	[[ $output == *"would fail: $RP_TUNE_ROOT/proc/irq/40/smp_affinity_list is not writable"* ]]
	run "$TUNE" apply --cpus 2-7 --move-nic-irqs
	[ "$status" -eq 1 ]
	[[ $output == *"FAILED to move IRQ 40 ("*"): $WHY"* ]]
	[[ $output == *", 1 failed, 0 IRQs not movable"* ]]
	[[ $output != *kernel-managed* ]]
	run ! grep -qx /proc/irq/40/smp_affinity_list "$RP_TUNE_STATE/changes"
	run "$TUNE" revert
	[ "$status" -eq 0 ]
}
