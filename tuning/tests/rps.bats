#!/usr/bin/env bats
# ringplane-tune: RPS on veth devices (lib/rps.sh). Fake trees with a fake ip(8) listing the
# veths, and one test on a real veth pair in a network namespace of its own.

bats_require_minimum_version 1.5.0
load helpers

RULE=etc/udev/rules.d/90-ringplane-veth-rps.rules

setup() {
	common_setup
	export RP_TUNE_STATE="$BATS_TEST_TMPDIR/state"
}

teardown() {
	if [[ -n ${NS-} ]]; then ip netns del "$NS" 2>/dev/null || true; fi
}

# fake_ip LINE...: RP_TUNE_IP becomes a script that prints the LINEs for exactly
# `-o link show type veth` (as ip -o prints them) and fails on anything else.
fake_ip() {
	local script=$BATS_TEST_TMPDIR/ip
	{
		printf '#!/bin/sh\n[ "$*" = "-o link show type veth" ] || { echo "fake ip: $*" >&2; exit 1; }\n'
		printf 'cat <<"EOF"\n'
		printf '%s\n' "$@"
		printf 'EOF\n'
	} >"$script"
	chmod +x "$script"
	export RP_TUNE_IP=$script
}

# veth NAME QUEUES MASK: a net device with QUEUES rx queues, each with rps_cpus MASK.
veth() {
	local q
	for ((q = 0; q < $2; q++)); do f "sys/class/net/$1/queues/rx-$q/rps_cpus" "$3"; done
	f "sys/class/net/$1/queues/tx-0/xps_cpus" 00
}

# veth_tree: untuned, with a veth pair (va with 2 rx queues) and a container's end (c0@if9),
# plus eth0 (not a veth: ip does not list it) with RPS off.
veth_tree() {
	untuned_tree
	veth va 2 00
	veth vb 1 00
	veth c0 1 00
	veth eth0 1 00
	fake_ip '5: va@vb: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group default qlen 1000\    link/ether 1a:2b:3c:4d:5e:6f brd ff:ff:ff:ff:ff:ff' \
		'6: vb@va: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group default qlen 1000\    link/ether 1a:2b:3c:4d:5e:70 brd ff:ff:ff:ff:ff:ff' \
		'7: c0@if9: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group default qlen 1000\    link/ether 1a:2b:3c:4d:5e:71 brd ff:ff:ff:ff:ff:ff link-netns ctr'
}

@test "rps: apply steers every veth rx queue to the housekeeping CPUs, installs the rule; revert undoes both" {
	veth_tree
	snapshot before
	run "$TUNE" apply --cpus 2-7
	[ "$status" -eq 0 ]
	local q
	for q in va/queues/rx-0 va/queues/rx-1 vb/queues/rx-0 c0/queues/rx-0; do
		[ "$(cat "$RP_TUNE_ROOT/sys/class/net/$q/rps_cpus")" = 3 ]
	done
	[ "$(cat "$RP_TUNE_ROOT/sys/class/net/eth0/queues/rx-0/rps_cpus")" = 00 ] # not a veth
	[[ $output == *"wrote '3' to $RP_TUNE_ROOT/sys/class/net/va/queues/rx-1/rps_cpus (was '00')"* ]]
	[[ $output == *"wrote $RP_TUNE_ROOT/$RULE (was absent)"* ]]
	# The rule byte for byte as a tuned host has it (helpers' rps_rule), mask 3 = CPUs 0-1.
	cp "$RP_TUNE_ROOT/$RULE" "$BATS_TEST_TMPDIR/rule"
	rps_rule 3
	cmp "$BATS_TEST_TMPDIR/rule" "$RP_TUNE_ROOT/$RULE"
	grep -qxF 'ACTION=="add", SUBSYSTEM=="net", ENV{ID_NET_DRIVER}=="veth", ATTR{queues/rx-0/rps_cpus}="3"' \
		"$RP_TUNE_ROOT/$RULE"
	[[ $output == *"26 written, 0 failed"* ]] # 21 as without veths, 4 queues, 1 rule

	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$(status_of rps.veth)" = ok ]
	[ "$(status_of rps.veth_rule)" = ok ]
	[ "$(json_get '[c["current"] for c in d["checks"] if c["item"]=="rps.veth"][0]')" = \
		"3 veths, 4 rx queues on 0-1" ]

	run "$TUNE" apply --cpus 2-7
	[[ $output == *"0 written, 0 failed"* ]]

	run "$TUNE" revert
	[ "$status" -eq 0 ]
	[[ $output == *"removed $RP_TUNE_ROOT/$RULE (apply created it)"* ]]
	[[ $output == *"reverted 26 values"* ]]
	diff -r "$BATS_TEST_TMPDIR/before" "$RP_TUNE_ROOT"
	[ ! -e "$RP_TUNE_STATE" ]
}

@test "rps: the mask is the housekeeping CPUs, every online CPU when all are shards" {
	veth_tree
	"$TUNE" apply --cpus 1-7 >/dev/null
	[ "$(cat "$RP_TUNE_ROOT/sys/class/net/vb/queues/rx-0/rps_cpus")" = 1 ]
	"$TUNE" revert >/dev/null
	"$TUNE" apply --cpus 0-3,6-7 >/dev/null
	[ "$(cat "$RP_TUNE_ROOT/sys/class/net/vb/queues/rx-0/rps_cpus")" = 30 ]
	grep -qF 'ATTR{queues/rx-0/rps_cpus}="30"' "$RP_TUNE_ROOT/$RULE"
	"$TUNE" revert >/dev/null
	"$TUNE" apply --cpus all >/dev/null
	[ "$(cat "$RP_TUNE_ROOT/sys/class/net/vb/queues/rx-0/rps_cpus")" = ff ]
	# A mask the kernel prints wider ("00000003") is the same set: check is satisfied.
	"$TUNE" revert >/dev/null
	f sys/class/net/va/queues/rx-0/rps_cpus 00000003
	f sys/class/net/va/queues/rx-1/rps_cpus 00000003
	run "$TUNE" apply --cpus 2-7
	[ "$status" -eq 0 ]
	[[ $output != *"rps_cpus/va/queues/rx-0"* && $output != *"va/queues/rx-0/rps_cpus"* ]]
	[ "$(cat "$RP_TUNE_ROOT/sys/class/net/va/queues/rx-0/rps_cpus")" = 00000003 ]
	[[ $output == *"wrote '3' to $RP_TUNE_ROOT/sys/class/net/vb/queues/rx-0/rps_cpus (was '00')"* ]]
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$(status_of rps.veth)" = ok ]
}

# The kernel keeps only the CPUs of an rps_cpus mask that isolcpus (domain) and nohz_full
# left to housekeeping, and refuses a mask with none (EINVAL).
@test "rps: CPUs isolated at boot are left out of the mask, so check and apply agree with the kernel" {
	veth_tree
	f sys/devices/system/cpu/isolated 1
	f sys/devices/system/cpu/nohz_full '(null)'
	run "$TUNE" apply --cpus 2-7 # housekeeping 0-1, but CPU 1 was booted isolated
	[ "$status" -eq 0 ]
	[[ $output == *"veth RPS: CPU 1 left out of the mask (isolated at boot: the kernel would drop it)"* ]]
	[ "$(cat "$RP_TUNE_ROOT/sys/class/net/va/queues/rx-1/rps_cpus")" = 1 ]
	grep -qF 'ATTR{queues/rx-0/rps_cpus}="1"' "$RP_TUNE_ROOT/$RULE"
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$(status_of rps.veth)" = ok ]
	[ "$(status_of rps.veth_rule)" = ok ]
	[ "$(json_get '[c["recommended"] for c in d["checks"] if c["item"]=="rps.veth"][0]')" = \
		"rps_cpus 0 (CPU 1 isolated at boot: the kernel drops it)" ]
	run "$TUNE" apply --cpus 2-7
	[ "$status" -eq 0 ]
	[[ $output == *"0 written, 0 failed"* ]] # converged: no rewrite on every apply
	"$TUNE" revert >/dev/null

	# nohz_full CPUs too (the kernel's WQ housekeeping); none left: nothing written, check says why.
	f sys/devices/system/cpu/isolated ''
	f sys/devices/system/cpu/nohz_full 0-1
	run "$TUNE" apply --cpus 2-7
	[ "$status" -eq 0 ]
	[[ $output == *"skip veth RPS: the housekeeping CPUs (0-1) are all isolcpus/nohz_full at boot"* ]]
	[ "$(cat "$RP_TUNE_ROOT/sys/class/net/va/queues/rx-0/rps_cpus")" = 00 ]
	[ ! -e "$RP_TUNE_ROOT/$RULE" ]
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$(status_of rps.veth)" = warn ]
	[[ $(json_get '[c["note"] for c in d["checks"] if c["item"]=="rps.veth"][0]') == *"(EINVAL)"* ]]
	[ "$(status_of rps.veth_rule)" = warn ]
}

@test "rps: --dry-run says what it would write, the rule included, and changes nothing" {
	veth_tree
	snapshot before
	run "$TUNE" apply --dry-run --cpus 2-7
	[ "$status" -eq 0 ]
	[[ $output == *"would write '3' to $RP_TUNE_ROOT/sys/class/net/c0/queues/rx-0/rps_cpus (now '00')"* ]]
	[[ $output == *"would write $RP_TUNE_ROOT/$RULE (now absent): ACTION==\"add\", SUBSYSTEM==\"net\", ENV{ID_NET_DRIVER}==\"veth\", ATTR{queues/rx-0/rps_cpus}=\"3\""* ]]
	[[ $output == *"dry run: 26 writes, nothing changed"* ]]
	diff -r "$BATS_TEST_TMPDIR/before" "$RP_TUNE_ROOT"
	[ ! -e "$RP_TUNE_STATE" ]
	# A rule directory nobody may write: the dry run predicts the failure.
	if ((EUID != 0)); then
		chmod a-w "$RP_TUNE_ROOT/etc/udev/rules.d"
		run "$TUNE" apply --dry-run --cpus 2-7
		chmod u+w "$RP_TUNE_ROOT/etc/udev/rules.d"
		[[ $output == *"would fail: $RP_TUNE_ROOT/$RULE is not writable"* ]]
	fi
}

@test "rps: check warns on a queue left out and on a rule for another mask, and names the fix" {
	veth_tree
	"$TUNE" apply --cpus 2-7 >/dev/null
	f sys/class/net/vb/queues/rx-0/rps_cpus 0 # the pair was made again
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$(status_of rps.veth)" = warn ]
	[ "$(json_get '[c["current"] for c in d["checks"] if c["item"]=="rps.veth"][0]')" = "vb/rx-0=none" ]
	[ "$(json_get '[c["fix"] for c in d["checks"] if c["item"]=="rps.veth"][0]')" = "ringplane-tune apply --cpus 2-7" ]
	[ "$(status_of rps.veth_rule)" = ok ]
	# Other shard CPUs: the queues and the rule are for another mask.
	run --separate-stderr "$TUNE" check --json --cpus 1-7
	[ "$(status_of rps.veth_rule)" = warn ]
	[[ $(json_get '[c["current"] for c in d["checks"] if c["item"]=="rps.veth"][0]') == "va/rx-0=0-1 va/rx-1=0-1 vb/rx-0=none"* ]]
	# apply with them rewrites the rule; revert still removes it (its first original: absent).
	run "$TUNE" apply --cpus 1-7
	grep -qF 'ATTR{queues/rx-0/rps_cpus}="1"' "$RP_TUNE_ROOT/$RULE"
	"$TUNE" revert >/dev/null
	[ ! -e "$RP_TUNE_ROOT/$RULE" ]
	[ "$(cat "$RP_TUNE_ROOT/sys/class/net/va/queues/rx-0/rps_cpus")" = 00 ]
}

@test "rps: an operator's own rule file is saved and given back, not removed" {
	veth_tree
	f "$RULE" '# mine' 'ACTION=="add", SUBSYSTEM=="net", KERNEL=="veth*", ATTR{queues/rx-0/rps_cpus}="f"'
	snapshot before
	"$TUNE" apply --cpus 2-7 >/dev/null
	grep -qF 'rps_cpus}="3"' "$RP_TUNE_ROOT/$RULE"
	run "$TUNE" revert
	[ "$status" -eq 0 ]
	diff -r "$BATS_TEST_TMPDIR/before" "$RP_TUNE_ROOT"
}

@test "rps: a rule masked by the operator (symlink to /dev/null, empty file) is left alone, and check says so" {
	veth_tree
	mkdir -p "$RP_TUNE_ROOT/etc/udev/rules.d"
	ln -s /dev/null "$RP_TUNE_ROOT/$RULE"
	run "$TUNE" apply --cpus 2-7
	[ "$status" -eq 0 ]
	[[ $output == *"left $RP_TUNE_ROOT/$RULE alone: a symlink to /dev/null (operator-managed: a masked rule)"* ]]
	[[ $output == *"25 written, 0 failed"* ]] # the 4 queues, no rule
	[ -L "$RP_TUNE_ROOT/$RULE" ] && [ "$(readlink "$RP_TUNE_ROOT/$RULE")" = /dev/null ]
	[ "$(cat "$RP_TUNE_ROOT/sys/class/net/va/queues/rx-0/rps_cpus")" = 3 ]
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$status" -eq 0 ]
	[ "$(status_of rps.veth_rule)" = ok ]
	[ "$(json_get '[c["current"] for c in d["checks"] if c["item"]=="rps.veth_rule"][0]')" = \
		"operator-managed: a symlink to /dev/null" ]
	run "$TUNE" apply --dry-run --cpus 2-7
	[ "$status" -eq 0 ]
	[[ $output == *"dry run: 0 writes, nothing changed"* ]]
	run "$TUNE" revert
	[ "$status" -eq 0 ]
	[ -L "$RP_TUNE_ROOT/$RULE" ]

	rm "$RP_TUNE_ROOT/$RULE"
	: >"$RP_TUNE_ROOT/$RULE"
	run "$TUNE" apply --cpus 2-7
	[ "$status" -eq 0 ]
	[[ $output == *"left $RP_TUNE_ROOT/$RULE alone: an empty file (operator-managed: a masked rule)"* ]]
	[ ! -s "$RP_TUNE_ROOT/$RULE" ]
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$(json_get '[c["current"] for c in d["checks"] if c["item"]=="rps.veth_rule"][0]')" = \
		"operator-managed: an empty file" ]
	"$TUNE" revert >/dev/null

	# Masked after apply installed the rule: revert leaves the operator's mask too.
	rm "$RP_TUNE_ROOT/$RULE"
	"$TUNE" apply --cpus 2-7 >/dev/null
	ln -sf /dev/null "$RP_TUNE_ROOT/$RULE"
	run "$TUNE" revert
	[ "$status" -eq 0 ]
	[[ $output == *"left $RP_TUNE_ROOT/$RULE alone (a symlink or empty file: operator-managed)"* ]]
	[ -L "$RP_TUNE_ROOT/$RULE" ]
}

@test "rps: ip's @peer suffix is stripped from the name, a name with '@' kept, and no listed veth is skipped silently" {
	untuned_tree
	veth veth0 1 00
	veth 'v@x' 1 00
	fake_ip '5: veth0@if5: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group default qlen 1000\    link/ether 1a:2b:3c:4d:5e:6f brd ff:ff:ff:ff:ff:ff link-netnsid 0' \
		'8: v@x@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group default qlen 1000\    link/ether 1a:2b:3c:4d:5e:70 brd ff:ff:ff:ff:ff:ff'
	run "$TUNE" apply --cpus 2-7
	[ "$status" -eq 0 ]
	[ "$(cat "$RP_TUNE_ROOT/sys/class/net/veth0/queues/rx-0/rps_cpus")" = 3 ]
	[ "$(cat "$RP_TUNE_ROOT/sys/class/net/v@x/queues/rx-0/rps_cpus")" = 3 ]
	[[ $output != *"skip veth RPS on"* ]]
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$(status_of rps.veth)" = ok ]
	[ "$(json_get '[c["current"] for c in d["checks"] if c["item"]=="rps.veth"][0]')" = "2 veths, 2 rx queues on 0-1" ]
	"$TUNE" revert >/dev/null

	# A veth ip lists whose queues sysfs does not show here (another /sys mounted): said, not skipped silently.
	fake_ip '5: veth0@if5: <BROADCAST> mtu 1500' '9: ghost@if2: <BROADCAST> mtu 1500'
	run "$TUNE" apply --cpus 2-7
	[ "$status" -eq 0 ]
	[[ $output == *"skip veth RPS on: ghost (no $RP_TUNE_ROOT/sys/class/net/ghost/queues)"* ]]
	[ "$(cat "$RP_TUNE_ROOT/sys/class/net/veth0/queues/rx-0/rps_cpus")" = 3 ]
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$(status_of rps.veth)" = warn ]
	[[ $(json_get '[c["current"] for c in d["checks"] if c["item"]=="rps.veth"][0]') == "not seen: ghost (no "* ]]
}

@test "rps: revert skips the queues of a veth that is gone (its container stopped)" {
	veth_tree
	"$TUNE" apply --cpus 2-7 >/dev/null
	rm -rf "$RP_TUNE_ROOT/sys/class/net/c0"
	run "$TUNE" revert
	[ "$status" -eq 0 ]
	[[ $output == *"not restored: c0 rx-0 is gone (its rps_cpus went with it)"* ]]
	[[ $output == *"reverted 25 values, 1 veth queues gone"* ]]
	[ ! -e "$RP_TUNE_ROOT/sys/class/net/c0" ]
	[ "$(cat "$RP_TUNE_ROOT/sys/class/net/va/queues/rx-1/rps_cpus")" = 00 ]
	[ ! -e "$RP_TUNE_STATE" ]
}

@test "rps: no udev, or no ip: the rest is applied and check says why" {
	veth_tree
	rm -rf "$RP_TUNE_ROOT/etc/udev"
	run "$TUNE" apply --cpus 2-7
	[ "$status" -eq 0 ]
	[[ $output == *"skip the veth RPS udev rule: no $RP_TUNE_ROOT/etc/udev"* ]]
	[ "$(cat "$RP_TUNE_ROOT/sys/class/net/va/queues/rx-0/rps_cpus")" = 3 ]
	run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$(status_of rps.veth)" = ok ]
	[ "$(status_of rps.veth_rule)" = warn ]
	[[ $(json_get '[c["note"] for c in d["checks"] if c["item"]=="rps.veth_rule"][0]') == *"no /etc/udev"* ]]
	"$TUNE" revert >/dev/null

	RP_TUNE_IP=false run "$TUNE" apply --cpus 2-7
	[ "$status" -eq 0 ]
	[[ $output == *"skip veth RPS on existing devices: 'false -o link show type veth' failed"* ]]
	RP_TUNE_IP=false run --separate-stderr "$TUNE" check --json --cpus 2-7
	[ "$(status_of rps.veth)" = warn ]
	[ "$(json_get '[c["current"] for c in d["checks"] if c["item"]=="rps.veth"][0]')" = n/a ]
}

@test "rps: a real veth pair in a namespace of its own gets the mask, and revert gives back 0" {
	((EUID == 0)) || skip "needs root to make a network namespace"
	command -v ip >/dev/null || skip "no ip(8)"
	NS=rptune-bats-$$
	ip netns add "$NS" 2>/dev/null || skip "ip netns add not permitted here"
	ip -n "$NS" link add rpta type veth peer name rptb 2>/dev/null ||
		skip "cannot make a veth pair (no veth module?)"
	untuned_tree
	# The tree's net devices are the namespace's: `ip netns exec` mounts its own /sys.
	rm -rf "$RP_TUNE_ROOT/sys/class/net"
	ln -s /sys/class/net "$RP_TUNE_ROOT/sys/class/net"
	export RP_TUNE_IP=ip
	local a=/sys/class/net/rpta/queues/rx-0/rps_cpus b=/sys/class/net/rptb/queues/rx-0/rps_cpus
	local before
	before=$(ip netns exec "$NS" cat "$a")
	# --cpus 1-7 of the tree's 0-7: the mask is CPU 0, which every host has.
	run ip netns exec "$NS" "$TUNE" apply --cpus 1-7
	[ "$status" -eq 0 ]
	[[ $output == *"to $RP_TUNE_ROOT/sys/class/net/rpta/queues/rx-0/rps_cpus"* ]]
	[[ $(ip netns exec "$NS" cat "$a") =~ ^[0,]*1$ ]]
	[[ $(ip netns exec "$NS" cat "$b") =~ ^[0,]*1$ ]]
	run --separate-stderr ip netns exec "$NS" "$TUNE" check --json --cpus 1-7
	[ "$(status_of rps.veth)" = ok ]
	[ "$(json_get '[c["current"] for c in d["checks"] if c["item"]=="rps.veth"][0]')" = "2 veths, 2 rx queues on 0" ]
	run ip netns exec "$NS" "$TUNE" revert
	[ "$status" -eq 0 ]
	[ "$(ip netns exec "$NS" cat "$a")" = "$before" ]
	[ "$(ip netns exec "$NS" cat "$b")" = "$before" ]
}

@test "rps: under a real systemd-udevd the rule apply installs gives new veths the mask (namespaces of their own)" {
	# udevd-netns.sh runs udevd in new network, mount and PID namespaces with only this rule
	# and 80-net-setup-link.rules: it sees only the veths it makes, and dies with the script.
	((EUID == 0)) || skip "needs root for namespaces and a udevd"
	local udevd='' d
	for d in /usr/lib/systemd/systemd-udevd /lib/systemd/systemd-udevd; do
		if [[ -x $d ]]; then udevd=$d && break; fi
	done
	[[ -n $udevd ]] || skip "systemd-udevd is not installed (Debian: apt-get install udev)"
	command -v udevadm >/dev/null || skip "no udevadm"
	command -v unshare >/dev/null || skip "no unshare(1)"
	command -v ip >/dev/null || skip "no ip(8)"
	# Only where no udevd runs: the host's own udev then owns udev on this machine.
	if pgrep -x systemd-udevd >/dev/null || pgrep -x udevd >/dev/null; then
		skip "a udevd already runs on this host"
	fi
	unshare --net --mount --pid --kill-child --mount-proc --propagation private true 2>/dev/null ||
		skip "unshare --net --mount --pid not permitted here"
	untuned_tree
	# --cpus 1-7 of the tree's 0-7: the mask is CPU 0, which every host has.
	run "$TUNE" apply --cpus 1-7
	[ "$status" -eq 0 ]
	grep -qxF 'ACTION=="add", SUBSYSTEM=="net", ENV{ID_NET_DRIVER}=="veth", ATTR{queues/rx-0/rps_cpus}="1"' \
		"$RP_TUNE_ROOT/$RULE"
	local log=$BATS_TEST_TMPDIR/udevd.log
	# --kill-child: unshare blocks SIGTERM while it waits, so timeout's TERM (and a killed bats)
	# would leave the namespace's PID 1 running; with it the child gets SIGKILL when unshare dies
	run timeout -k 5 60 unshare --net --mount --pid --kill-child --mount-proc --propagation private \
		"$BATS_TEST_DIRNAME/udevd-netns.sh" "$RP_TUNE_ROOT/$RULE" "$log" "$(readlink /proc/self/ns/mnt)"
	if ((status == 77)); then skip "udevd-netns.sh: $output"; fi
	[ "$status" -eq 0 ] || { echo "$output"; tail -n 40 "$log"; false; }
	# rps_cpus prints comma-separated 32-bit words on hosts with more than 32 CPUs.
	local want='^[0,]*1$'
	[[ $output =~ (^|$'\n')rpta=([0-9a-f,]+) && ${BASH_REMATCH[2]} =~ $want ]] # both ends
	[[ $output =~ (^|$'\n')rptb=([0-9a-f,]+) && ${BASH_REMATCH[2]} =~ $want ]]
	[[ $output =~ (^|$'\n')rptc=([0-9a-f,]+) && ${BASH_REMATCH[2]} =~ $want ]]
	[[ $output =~ (^|$'\n')rptc/rx-1=([0-9a-f,]+) && ${BASH_REMATCH[2]} =~ ^[0,]+$ ]] # rx-0 only
	[[ $output =~ (^|$'\n')rpte=([0-9a-f,]+) && ${BASH_REMATCH[2]} =~ $want ]]        # renamed: kept
	if [[ $output == *rptbr=* ]]; then
		[[ $output =~ (^|$'\n')rptbr=([0-9a-f,]+) && ${BASH_REMATCH[2]} =~ ^[0,]+$ ]] # a bridge: no
	fi
	# The write is udevd's, by this rule (not the kernel's default, nor another rule).
	grep -q "rpta: .*90-ringplane-veth-rps.rules:4 ATTR '/sys/devices/virtual/net/rpta/queues/rx-0/rps_cpus' writing '1'" "$log"
}
