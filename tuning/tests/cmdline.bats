#!/usr/bin/env bats
# ringplane-tune cmdline: kernel parameters and the GRUB line for several CPU lists, the
# default shard list, cpulist parsing errors, and --write-grub's confirmation rules.

bats_require_minimum_version 1.5.0
load helpers

setup() {
	common_setup
	f sys/devices/system/cpu/online 0-7
	f sys/devices/system/cpu/possible 0-7
	f etc/default/grub 'GRUB_DEFAULT=0' 'GRUB_TIMEOUT=5' \
		'GRUB_CMDLINE_LINUX_DEFAULT="quiet isolcpus=1 splash nohz_full=1"' 'GRUB_CMDLINE_LINUX=""'
}

# params LIST: what cmdline prints for shard CPUs LIST on the 8-CPU tree.
params() {
	run --separate-stderr "$TUNE" cmdline --cpus "$1"
	# shellcheck disable=SC2154 # bats sets $stderr
	[ "$status" -eq 0 ] || { echo "status $status: $stderr"; return 1; }
	printf '%s\n' "${lines[0]}"
}

@test "cmdline: parameters for several CPU lists" {
	[ "$(params 2-5)" = "isolcpus=managed_irq,domain,2-5 nohz_full=2-5 rcu_nocbs=2-5 irqaffinity=0-1,6-7" ]
	[ "$(params 1-7)" = "isolcpus=managed_irq,domain,1-7 nohz_full=1-7 rcu_nocbs=1-7 irqaffinity=0" ]
	[ "$(params 4)" = "isolcpus=managed_irq,domain,4 nohz_full=4 rcu_nocbs=4 irqaffinity=0-3,5-7" ]
	[ "$(params 1,3,5,7)" = "isolcpus=managed_irq,domain,1,3,5,7 nohz_full=1,3,5,7 rcu_nocbs=1,3,5,7 irqaffinity=0,2,4,6" ]
}

@test "cmdline: CPU lists are normalised (order, duplicates, blanks, strides, N)" {
	[ "$(params ' 7, 1-3,2,3 ')" = "isolcpus=managed_irq,domain,1-3,7 nohz_full=1-3,7 rcu_nocbs=1-3,7 irqaffinity=0,4-6" ]
	[ "$(params 0-7:2/4)" = "isolcpus=managed_irq,domain,0-1,4-5 nohz_full=0-1,4-5 rcu_nocbs=0-1,4-5 irqaffinity=2-3,6-7" ]
	[ "$(params 4-N)" = "isolcpus=managed_irq,domain,4-7 nohz_full=4-7 rcu_nocbs=4-7 irqaffinity=0-3" ]
	[ "$(params 005,06)" = "isolcpus=managed_irq,domain,5-6 nohz_full=5-6 rcu_nocbs=5-6 irqaffinity=0-4,7" ]
}

@test "cmdline: the GRUB line keeps other parameters and replaces ours" {
	run --separate-stderr "$TUNE" cmdline --cpus 2-7
	[ "$status" -eq 0 ]
	[ "${lines[1]}" = 'GRUB_CMDLINE_LINUX_DEFAULT="quiet splash isolcpus=managed_irq,domain,2-7 nohz_full=2-7 rcu_nocbs=2-7 irqaffinity=0-1"' ]
	[ "${#lines[@]}" -eq 2 ] # hints go to stderr, so stdout can be scripted
	[[ $stderr == *"--write-grub"* ]]

	rm "$RP_TUNE_ROOT/etc/default/grub"
	run --separate-stderr "$TUNE" cmdline --cpus 2-7
	[ "${lines[1]}" = 'GRUB_CMDLINE_LINUX_DEFAULT="isolcpus=managed_irq,domain,2-7 nohz_full=2-7 rcu_nocbs=2-7 irqaffinity=0-1"' ]
}

@test "cmdline: default shards are the online CPUs except CPU 0" {
	run --separate-stderr "$TUNE" cmdline
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "isolcpus=managed_irq,domain,1-7 nohz_full=1-7 rcu_nocbs=1-7 irqaffinity=0" ]
	[[ $stderr == *"online CPUs except CPU 0"* ]]

	f sys/devices/system/cpu/online 0-3,6
	run --separate-stderr "$TUNE" cmdline
	[ "${lines[0]}" = "isolcpus=managed_irq,domain,1-3,6 nohz_full=1-3,6 rcu_nocbs=1-3,6 irqaffinity=0" ]
}

@test "cmdline: default shards come from 'ringplane topo --cpulist' when it works" {
	mkdir -p "$BATS_TEST_TMPDIR/bin"
	# shellcheck disable=SC2016 # a literal shell script
	printf '#!/bin/sh\n[ "$1 $2" = "topo --cpulist" ] && echo 4-7\n' >"$BATS_TEST_TMPDIR/bin/ringplane"
	chmod +x "$BATS_TEST_TMPDIR/bin/ringplane"
	unset RP_TUNE_RINGPLANE
	PATH="$BATS_TEST_TMPDIR/bin:$PATH" run --separate-stderr "$TUNE" cmdline
	[ "${lines[0]}" = "isolcpus=managed_irq,domain,4-7 nohz_full=4-7 rcu_nocbs=4-7 irqaffinity=0-3" ]
	[[ $stderr == *"topo --cpulist"* ]]

	# --cpus wins over topo; garbage from topo falls back to the default, and says so.
	RP_TUNE_RINGPLANE="$BATS_TEST_TMPDIR/bin/ringplane" run --separate-stderr "$TUNE" cmdline --cpus 6-7
	[ "${lines[0]}" = "isolcpus=managed_irq,domain,6-7 nohz_full=6-7 rcu_nocbs=6-7 irqaffinity=0-5" ]
	printf '#!/bin/sh\necho "shard plan: 2 shards"\n' >"$BATS_TEST_TMPDIR/bin/ringplane"
	RP_TUNE_RINGPLANE="$BATS_TEST_TMPDIR/bin/ringplane" run --separate-stderr "$TUNE" cmdline
	[ "${lines[0]}" = "isolcpus=managed_irq,domain,1-7 nohz_full=1-7 rcu_nocbs=1-7 irqaffinity=0" ]
	[[ $stderr == *"gave no usable list"* ]]
}

@test "cmdline: malformed, offline or out-of-range CPU lists are clear errors (exit 2)" {
	local list want
	while IFS='|' read -r list want; do
		run "$TUNE" cmdline --cpus "$list"
		[ "$status" -eq 2 ] || { echo "'$list': status $status"; false; }
		[[ $output == *"$want"* ]] || { echo "'$list': $output"; false; }
	done <<'EOF'
5-2|reversed range '5-2'
a|bad item 'a'
1-|bad item '1-'
1,,2|empty item
,3|empty item
|empty CPU list
-1|bad item '-1'
0-7:3/2|bad stride
0-7:0/2|bad stride
9|CPU 9 is not online (online: 0-7)
3-12|CPU 8-12 is not online
99999999|out of range
1 2|bad item '1 2'
EOF
}

@test "cmdline: refuses when no CPU is left for housekeeping" {
	run "$TUNE" cmdline --cpus 0-7
	[ "$status" -eq 2 ]
	[[ $output == *"leave at least one"* ]]
	run "$TUNE" cmdline --cpus all
	[ "$status" -eq 2 ]
}

@test "cmdline: never edits the boot files without --write-grub" {
	snapshot before
	run "$TUNE" cmdline --cpus 2-7
	[ "$status" -eq 0 ]
	diff -r "$BATS_TEST_TMPDIR/before" "$RP_TUNE_ROOT"
}

@test "cmdline --write-grub refuses without a terminal unless --yes" {
	snapshot before
	run "$TUNE" cmdline --cpus 2-7 --write-grub </dev/null
	[ "$status" -eq 2 ]
	[[ $output == *"stdin is not a terminal"* ]]
	run "$TUNE" cmdline --cpus 2-7 --write-grub <<<"y"
	[ "$status" -eq 2 ]
	diff -r "$BATS_TEST_TMPDIR/before" "$RP_TUNE_ROOT"
}

@test "cmdline --yes without --write-grub is a usage error, not ignored" {
	snapshot before
	for y in --yes -y; do
		run --separate-stderr "$TUNE" cmdline --cpus 1 "$y"
		[ "$status" -eq 2 ]
		[ -z "$output" ]
		[ "$stderr" = "ringplane-tune: cmdline: --yes only goes with --write-grub (see --help)" ]
	done
	diff -r "$BATS_TEST_TMPDIR/before" "$RP_TUNE_ROOT"
}

@test "cmdline --write-grub --yes edits only our line; revert restores the file exactly" {
	export RP_TUNE_STATE="$BATS_TEST_TMPDIR/state"
	printf '# no newline at the end' >>"$RP_TUNE_ROOT/etc/default/grub"
	snapshot before
	run "$TUNE" cmdline --cpus 2-7 --write-grub --yes
	[ "$status" -eq 0 ]
	grep -qx 'GRUB_CMDLINE_LINUX_DEFAULT="quiet splash isolcpus=managed_irq,domain,2-7 nohz_full=2-7 rcu_nocbs=2-7 irqaffinity=0-1"' \
		"$RP_TUNE_ROOT/etc/default/grub"
	grep -qx 'GRUB_CMDLINE_LINUX=""' "$RP_TUNE_ROOT/etc/default/grub"
	[ "$(wc -l <"$RP_TUNE_ROOT/etc/default/grub")" -eq 5 ]

	run "$TUNE" cmdline --cpus 2-7 --write-grub --yes # idempotent
	[[ $output == *"already has this line"* ]]
	[ "$(wc -l <"$RP_TUNE_STATE/changes")" -eq 1 ]

	run "$TUNE" revert
	[ "$status" -eq 0 ]
	diff -r "$BATS_TEST_TMPDIR/before" "$RP_TUNE_ROOT"
}
