# shellcheck shell=bash
# ringplane-tune component: receive packet steering (RPS) on veth devices. A veth delivers a
# packet into the backlog of the CPU that transmits it, so a TCP flow sent from two CPUs (the
# sender's pushes, the ACK path pushing queued data on the reader's CPU) lands in two backlogs
# and is reordered (docs/net.md, "Adaptive over veth"). rps_cpus on the receiving end hashes
# each flow to one CPU of the mask, in order. check_rps audits the veth devices of this network
# namespace and the udev rule; apply_rps writes the mask to every rx queue of every veth and
# installs the rule that gives it to veth devices made later (containers make them all the
# time); revert restores the queues (rps_target skips a device that is gone) and removes the
# rule (state.sh's put_new). Sourced by ../ringplane-tune.
#
# The mask is the housekeeping CPUs (every online CPU when all are shard CPUs): any mask keeps
# each flow on one CPU, which is what removes the reordering; the housekeeping set also keeps
# veth receive softirqs off the shard CPUs, as irq.sh does for IRQs. RFS (rps_sock_flow_entries,
# rps_flow_cnt) is not set: it would steer each flow to the CPU its reader last ran on, a
# shard CPU.

readonly RPS_RULE=/etc/udev/rules.d/90-ringplane-veth-rps.rules

# rps_mask: RPS_SET (set) and RPS_MASK (hex, as cpus_to_mask writes it) for this host.
# The kernel (net-sysfs.c, store_rps_map) keeps only the CPUs of a written mask that the
# booted isolcpus= (domain: /sys/devices/system/cpu/isolated) and nohz_full=
# (/sys/devices/system/cpu/nohz_full) leave to housekeeping, and refuses (EINVAL) a mask
# with none left. So the set excludes those CPUs: what apply writes is what the kernel
# keeps, and check compares with what rps_cpus reads back (a --cpus that disagrees with the
# boot would otherwise warn forever and rewrite on every apply). RPS_DROPPED = the CPUs
# dropped so ("" when none); RPS_SET "" when none is left (returns 1 then).
rps_mask() {
	local iso='' f
	RPS_SET=${HOUSEKEEPING:-$ONLINE}
	for f in isolated nohz_full; do
		# Empty when not booted so; "(null)" on older kernels without nohz_full.
		if rd "$ROOT/sys/devices/system/cpu/$f" && [[ $RD =~ [0-9] ]] && cpulist_parse "$RD"; then
			iso+=" $CPUS"
		fi
	done
	cpus_and RPS_DROPPED "$RPS_SET" "$iso"
	cpus_minus RPS_SET "$RPS_SET" "$iso"
	RPS_MASK=''
	[[ -n $RPS_SET ]] || return 1
	cpus_to_mask "$RPS_SET"
	RPS_MASK=$MASK
}

# veth_list: VETHS = the veth devices of this network namespace that have rx queues under
# $ROOT/sys/class/net, from `ip -o link show type veth` (RP_TUNE_IP: the ip command, "none"
# lists none; tests point it at a fake). VETH_ERR = why the list is unknown ("" if known).
# VETH_SKIP = "name (why) ..." of the listed ones that could not be used (no rx queues under
# sysfs, or a line that did not parse): none is skipped without saying so.
veth_list() {
	local ipc=${RP_TUNE_IP:-ip} line field name out
	VETHS=() VETH_ERR='' VETH_SKIP=''
	[[ $ipc != none ]] || return 0
	if ! out=$("$ipc" -o link show type veth 2>&1); then
		VETH_ERR="'$ipc -o link show type veth' failed: ${out##*$'\n'}"
		return 1
	fi
	while IFS= read -r line; do
		[[ -n $line ]] || continue
		# "7: rpzc0-12@if2: <BROADCAST,...> mtu 1500 ..." A name holds no ':' and no blank but
		# may hold '@', and ip adds "@peer" (a name, or ifN): the name is the field as it is
		# when sysfs has it, else the field without its last "@...".
		if ! [[ $line =~ ^[0-9]+:\ ([^:[:space:]]+): ]]; then
			VETH_SKIP+=" '${line:0:40}' (unparsed ip line)"
			continue
		fi
		field=${BASH_REMATCH[1]}
		name=$field
		if [[ ! -d $ROOT/sys/class/net/$name && $field == *@* ]]; then name=${field%@*}; fi
		if [[ -d $ROOT/sys/class/net/$name/queues ]]; then
			VETHS+=("$name")
		else
			VETH_SKIP+=" $name (no $ROOT/sys/class/net/$name/queues)"
		fi
	done <<<"$out"
	VETH_SKIP=${VETH_SKIP# }
}

# rps_rule_masked: returns 0 with MASKED_HOW when the rule's path holds a symlink (to
# /dev/null, or to a rules file of the operator's) or an empty file: udev's way to mask a
# rule, operator-managed. apply leaves it alone (never replaces the link) and check says so.
rps_rule_masked() {
	local p=$ROOT$RPS_RULE
	MASKED_HOW=''
	if [[ -L $p ]]; then
		MASKED_HOW="a symlink to $(readlink -- "$p")"
	elif [[ -f $p && ! -s $p ]]; then
		MASKED_HOW="an empty file"
	else
		return 1
	fi
}

# rps_rule_text: RULE = the udev rule for RPS_MASK. ID_NET_DRIVER is set by systemd's
# net_setup_link builtin (80-net-setup-link.rules), hence 90-. It writes rx-0 only: a veth has
# one rx queue unless made with numrxqueues N (apply writes every queue of existing ones).
rps_rule_text() {
	RULE="# ringplane-tune apply installed this (ringplane-tune revert removes it): veth devices"$'\n'
	RULE+="# made later steer their receive (RPS) to the housekeeping CPUs, one CPU per flow."$'\n'
	RULE+="# See tuning/README.md, \"veth receive steering\"."$'\n'
	RULE+="ACTION==\"add\", SUBSYSTEM==\"net\", ENV{ID_NET_DRIVER}==\"veth\", ATTR{queues/rx-0/rps_cpus}=\"$RPS_MASK\""$'\n'
}

# rps_off VAR: VAR = "dev/rx-N=cpus ..." of the veth rx queues whose rps_cpus is not RPS_SET
# (an unreadable one counts); RPS_NQ = how many queues were looked at.
rps_off() {
	local dev q l out=''
	RPS_NQ=0
	for dev in "${VETHS[@]}"; do
		for q in "$ROOT/sys/class/net/$dev/queues"/rx-*; do
			[[ -e $q/rps_cpus ]] || continue
			RPS_NQ=$((RPS_NQ + 1))
			if rd "$q/rps_cpus" && mask_to_cpus "$RD" && [[ $CPUS == "$RPS_SET" ]]; then continue; fi
			cpus_fmt l "$CPUS"
			out+=" $dev/${q##*/}=${l:-none}"
		done
	done
	printf -v "$1" '%s' "${out# }"
}

check_rps() {
	local off l rec fix="$PROG apply --cpus $SHARDS_L"
	local note="a veth receives on the CPU that sends: a flow sent from two CPUs is reordered between their backlogs"
	if [[ -z $ONLINE ]]; then
		row rps.veth net warn n/a "housekeeping CPUs" "" "online CPU list unreadable"
		return 0
	fi
	if ! rps_mask; then
		cpus_fmt l "$RPS_DROPPED"
		row rps.veth net warn n/a "rps_cpus off the shard CPUs" "" \
			"the housekeeping CPUs ($l) are all isolcpus/nohz_full at boot: the kernel takes no rps_cpus mask of them (EINVAL)"
		row rps.veth_rule net warn n/a "$RPS_RULE" "" "no usable mask (see rps.veth)"
		return 0
	fi
	cpus_fmt l "$RPS_SET"
	rec="rps_cpus $l"
	if [[ -n $RPS_DROPPED ]]; then
		cpus_fmt off "$RPS_DROPPED"
		rec+=" (CPU $off isolated at boot: the kernel drops it)"
	fi
	if ! veth_list; then
		row rps.veth net warn n/a "$rec" "" "$VETH_ERR"
	elif ((${#VETHS[@]} == 0)) && [[ -z $VETH_SKIP ]]; then
		row rps.veth net ok "no veth devices" "$rec"
	else
		rps_off off
		if [[ -n $VETH_SKIP ]]; then
			row rps.veth net warn "${off:+$off; }not seen: $VETH_SKIP" "$rec" "" \
				"ip lists these veths, but their rx queues are not under /sys/class/net here"
		elif [[ -z $off ]]; then
			row rps.veth net ok "${#VETHS[@]} veths, $RPS_NQ rx queues on $l" "$rec"
		else
			row rps.veth net warn "$off" "$rec" "$fix" "$note"
		fi
	fi
	rps_rule_text
	if [[ ! -d $ROOT/etc/udev ]]; then
		row rps.veth_rule net warn n/a "$RPS_RULE" "" \
			"no /etc/udev: veth devices made later keep rps_cpus 0 (apply sets only the existing ones)"
	elif rps_rule_masked; then
		row rps.veth_rule net ok "operator-managed: $MASKED_HOW" "$RPS_RULE" "" \
			"masked by the operator: apply leaves it alone, and veth devices made later get no mask from ringplane-tune"
	elif ! slurp "$ROOT$RPS_RULE"; then
		row rps.veth_rule net warn missing "$RPS_RULE" "$fix" \
			"veth devices made later (containers) keep rps_cpus 0"
	elif [[ $SLURP != "$RULE" ]]; then
		row rps.veth_rule net warn "other mask or text" "$RPS_RULE" "$fix" \
			"the rule differs from the one for rps_cpus $l"
	else
		row rps.veth_rule net ok "installed" "$RPS_RULE"
	fi
}

apply_rps() {
	local dev q cur
	if [[ -z $ONLINE ]]; then
		say "skip veth RPS: the online CPU list is unreadable"
		return 0
	fi
	if ! rps_mask; then
		cpus_fmt cur "$RPS_DROPPED"
		say "skip veth RPS: the housekeeping CPUs ($cur) are all isolcpus/nohz_full at boot, and the kernel takes no rps_cpus mask of them"
		return 0
	fi
	if [[ -n $RPS_DROPPED ]]; then
		cpus_fmt cur "$RPS_DROPPED"
		say "veth RPS: CPU $cur left out of the mask (isolated at boot: the kernel would drop it)"
	fi
	if ! veth_list; then
		say "skip veth RPS on existing devices: $VETH_ERR"
	fi
	if [[ -n $VETH_SKIP ]]; then say "skip veth RPS on: $VETH_SKIP"; fi
	for dev in "${VETHS[@]}"; do
		for q in "$ROOT/sys/class/net/$dev/queues"/rx-*; do
			[[ -e $q/rps_cpus ]] || continue
			rd "$q/rps_cpus" || true
			cur=$RD
			if mask_to_cpus "$cur" && [[ $CPUS == "$RPS_SET" ]]; then continue; fi
			if ! put "${q#"$ROOT"}/rps_cpus" "$RPS_MASK" "$cur"; then
				say "FAILED to set RPS on $dev ${q##*/}: $PUT_WHY" >&2
				N_FAIL=$((N_FAIL + 1))
			fi
		done
	done
	if ! [[ -d $ROOT/etc/udev ]]; then
		say "skip the veth RPS udev rule: no $ROOT/etc/udev (veth devices made later keep rps_cpus 0)"
		return 0
	fi
	rps_rule_text
	if rps_rule_masked; then
		say "left $ROOT$RPS_RULE alone: $MASKED_HOW (operator-managed: a masked rule)"
		return 0
	fi
	if slurp "$ROOT$RPS_RULE" && [[ $SLURP == "$RULE" ]]; then return 0; fi
	if ! put_new "$RPS_RULE" "$RULE"; then
		say "FAILED to write $ROOT$RPS_RULE: $PUT_WHY" >&2
		N_FAIL=$((N_FAIL + 1))
	elif ((!DRY)) && [[ -z $ROOT ]] && command -v udevadm >/dev/null; then
		udevadm control --reload 2>/dev/null || true
	fi
}

# rps_target PATH: revert's check for an rps_cpus path: returns 1 with SKIP_WHY when its
# device is gone (a container's veth lives as long as the container).
rps_target() {
	[[ $1 =~ ^/sys/class/net/([^/]+)/queues/([^/]+)/rps_cpus$ ]] || return 0
	[[ -e $ROOT$1 ]] && return 0
	SKIP_WHY="${BASH_REMATCH[1]} ${BASH_REMATCH[2]} is gone"
	return 1
}
