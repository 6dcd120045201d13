# shellcheck shell=bash
# ringplane-tune component: IRQ affinity. check_irqs audits network queue IRQs, other IRQs,
# the default affinity and irqbalance; apply_irqs moves IRQs off shard CPUs (network queues
# only with --move-nic-irqs) and records each moved IRQ's name; irq_target finds it by that
# name when revert restores it. Sourced by ../ringplane-tune.

# Network queue IRQ names: virtio-net (virtio2-input.0), Intel/Broadcom/Amazon/Netronome
# (eth0-TxRx-0, i40e-eth0-TxRx-3, ...-Tx-Rx-0, eth0-rx-1), Mellanox (mlx5_comp7@pci:...),
# Google gVNIC; plus anything named after a network interface ("eth0-...").
NET_IRQ_RE='^(virtio[0-9]+-(input|output)\.[0-9]+|mlx5_comp[0-9]+(@.*)?|mlx4-[0-9]+(@.*)?'
NET_IRQ_RE+='|gve-ntfy-blk[0-9]+(@.*)?|.+-([Tt]x-?[Rr]x|rxtx|txrx|[Rr]x|[Tt]x|fp)-[0-9]+)$'
readonly NET_IRQ_RE

MOVE_NIC=0 # --move-nic-irqs

# scan_irqs: IRQ_LIST (IRQ numbers, ascending) with IRQ_NAME[n], IRQ_AFF[n] (set) and
# IRQ_NET[n] (1 for network queues); only IRQs with a readable smp_affinity_list.
scan_irqs() {
	local line n name d ifc
	local -a f=() nums=() ifaces=()
	IRQ_NAME=() IRQ_AFF=() IRQ_NET=() IRQ_LIST=''
	for d in "$ROOT"/sys/class/net/*; do
		ifc=${d##*/}
		if [[ -e $d && $ifc != lo ]]; then ifaces+=("$ifc"); fi
	done
	if [[ -r $ROOT/proc/interrupts ]]; then
		while IFS= read -r line || [[ -n $line ]]; do
			read -ra f <<<"$line" || true
			[[ ${#f[@]} -ge 2 && ${f[0]} =~ ^([0-9]+):$ ]] || continue
			n=${BASH_REMATCH[1]}
			name=${f[${#f[@]} - 1]}
			IRQ_NAME[n]=$name
			IRQ_NET[n]=0
			if [[ $name =~ $NET_IRQ_RE ]]; then IRQ_NET[n]=1; fi
			for ifc in "${ifaces[@]}"; do
				if [[ $name == "$ifc"-* ]]; then IRQ_NET[n]=1; fi
			done
		done <"$ROOT/proc/interrupts"
	fi
	for d in "$ROOT"/proc/irq/[0-9]*; do
		n=${d##*/}
		[[ $n =~ ^[0-9]+$ ]] || continue
		rd "$d/smp_affinity_list" || continue
		cpulist_parse "$RD" || continue
		nums[n]=1
		IRQ_AFF[n]=$CPUS
		IRQ_NAME[n]=${IRQ_NAME[n]:-?}
		IRQ_NET[n]=${IRQ_NET[n]:-0}
	done
	IRQ_LIST="${!nums[*]}"
}

# irqbalance_pid: IRQBALANCE_PID = pid of a running irqbalance, if any.
irqbalance_pid() {
	local d
	IRQBALANCE_PID=''
	for d in "$ROOT"/proc/[0-9]*; do
		if rd "$d/comm" && [[ $RD == irqbalance ]]; then
			IRQBALANCE_PID=${d##*/}
			return 0
		fi
	done
	return 1
}

# irq_row ITEM NET(0|1) FIX NOTE: the IRQs of one kind whose affinity includes shard CPUs.
irq_row() {
	local item=$1 want_net=$2 n total=0 bad=0 shown=0 detail='' both l
	for n in $IRQ_LIST; do
		[[ ${IRQ_NET[n]} == "$want_net" ]] || continue
		total=$((total + 1))
		cpus_and both "${IRQ_AFF[n]}" "$SHARDS"
		if [[ -n $both ]]; then
			bad=$((bad + 1))
			if ((shown < 4)); then
				cpus_fmt l "${IRQ_AFF[n]}"
				detail+=" $n(${IRQ_NAME[n]})=$l"
				shown=$((shown + 1))
			fi
		fi
	done
	if ((bad > shown)); then detail+=" ..."; fi
	if ((total == 0)); then
		if ((want_net)); then
			l="looked for virtioN-input.N, *-TxRx-N, mlx5_compN, <iface>-*"
			row "$item" irq warn n/a "off shard CPUs" "" "no network queue IRQs in /proc/interrupts ($l)"
		else
			row "$item" irq ok "none" "off shard CPUs"
		fi
	elif ((bad == 0)); then
		row "$item" irq ok "$total IRQs, none on shard CPUs" "off shard CPUs"
	elif [[ -z $HOUSEKEEPING ]]; then
		row "$item" irq warn "$bad of $total on shard CPUs:$detail" "off shard CPUs" "" \
			"every online CPU is a shard CPU: nowhere to move IRQs"
	else
		row "$item" irq warn "$bad of $total on shard CPUs:$detail" "on $HOUSEKEEPING_L" "$3" "$4"
	fi
}

check_irqs() {
	local both l
	scan_irqs
	irq_row irq.network 1 "$PROG apply --cpus $SHARDS_L --move-nic-irqs" \
		"each interrupt on a shard CPU preempts its event loop; apply leaves network queue IRQs where they are unless --move-nic-irqs (a queue steered to the shard that serves its flows may be deliberate)"
	irq_row irq.other 0 "$PROG apply --cpus $SHARDS_L" \
		"kernel-managed IRQs cannot be moved at run time: use isolcpus=managed_irq"
	if ! rd "$ROOT/proc/irq/default_smp_affinity"; then
		row irq.default_affinity irq warn n/a "$HOUSEKEEPING_L" "" "/proc/irq/default_smp_affinity missing"
	elif ! mask_to_cpus "$RD"; then
		row irq.default_affinity irq warn "$RD" "$HOUSEKEEPING_L" "" "unparsable mask"
	elif cpus_and both "$CPUS" "$SHARDS" && cpus_fmt l "$CPUS" && [[ -n $both && -n $HOUSEKEEPING ]]; then
		row irq.default_affinity irq warn "$l" "$HOUSEKEEPING_L" \
			"$PROG apply --cpus $SHARDS_L" "IRQs created later (NIC reset, hotplug) start on shard CPUs"
	else
		row irq.default_affinity irq ok "$l" "${HOUSEKEEPING_L:-any}"
	fi
	if irqbalance_pid; then
		row irqbalance irq warn "running (pid $IRQBALANCE_PID)" "stopped, or shard CPUs banned" \
			"echo IRQBALANCE_BANNED_CPULIST=$SHARDS_L >> /etc/default/irqbalance; systemctl restart irqbalance" \
			"irqbalance moves IRQs back onto shard CPUs unless they are banned (or isolated)"
	else
		row irqbalance irq ok "not running" "stopped, or shard CPUs banned"
	fi
}

apply_irqs() {
	local n aff new both l1 l2 kept=0 kept_l=''
	if [[ -z $HOUSEKEEPING ]]; then
		say "skip IRQs: every online CPU is a shard CPU, nowhere to move them"
		return 0
	fi
	scan_irqs
	for n in $IRQ_LIST; do
		aff=${IRQ_AFF[n]}
		cpus_and both "$aff" "$SHARDS"
		[[ -n $both ]] || continue
		# A NIC queue's IRQ on a shard CPU may be placed there on purpose (RSS or aRFS steering
		# a queue to the shard that serves its flows): moving it is the operator's choice.
		if [[ ${IRQ_NET[n]} == 1 ]] && ((!MOVE_NIC)); then
			kept=$((kept + 1))
			if ((kept <= 4)); then kept_l+=" $n(${IRQ_NAME[n]})"; fi
			continue
		fi
		# Keep the IRQ's non-shard CPUs (a NIC's spread across queues survives); an IRQ
		# only on shard CPUs goes to every housekeeping CPU.
		cpus_minus new "$aff" "$SHARDS"
		[[ -n $new ]] || new=$HOUSEKEEPING
		cpus_fmt l1 "$new"
		cpus_fmt l2 "$aff"
		# revert finds the IRQ by this name: its number changes when the driver reloads. The
		# name goes in before put lists the path, so a run killed anywhere leaves no listed IRQ
		# without its name (a name line for a path never listed, or listed twice, is harmless:
		# revert looks up only listed paths, and the last line wins).
		if ((!DRY)) && [[ -z ${LISTED[/proc/irq/$n/smp_affinity_list]-} ]]; then
			printf '/proc/irq/%s/smp_affinity_list\t%s\n' "$n" "${IRQ_NAME[n]}" >>"$STATE/irqs"
		fi
		# The kernel refuses to move a managed IRQ with EIO: that one is expected (soft). Any
		# other error (read-only file system, no permission) is a failure, as --dry-run, which
		# cannot foresee EIO but sees a file it may not write, predicts it.
		if put "/proc/irq/$n/smp_affinity_list" "$l1" "$l2"; then
			:
		elif [[ $PUT_WHY == 'Input/output error' ]]; then
			say "not moved: IRQ $n (${IRQ_NAME[n]}) is kernel-managed (the write got $PUT_WHY); isolcpus=managed_irq keeps it off shard CPUs"
			N_SOFTFAIL=$((N_SOFTFAIL + 1))
		else
			say "FAILED to move IRQ $n (${IRQ_NAME[n]}): $PUT_WHY" >&2
			N_FAIL=$((N_FAIL + 1))
		fi
	done
	if ((kept)); then
		if ((kept > 4)); then kept_l+=" ..."; fi
		say "left $kept network queue IRQs on shard CPUs:$kept_l (--move-nic-irqs moves them)"
	fi
	if rd "$ROOT/proc/irq/default_smp_affinity" && mask_to_cpus "$RD" &&
		cpus_and both "$CPUS" "$SHARDS" && [[ -n $both ]]; then
		local cur=$RD
		cpus_minus new "$CPUS" "$SHARDS"
		[[ -n $new ]] || new=$HOUSEKEEPING
		cpus_to_mask "$new"
		if ! put /proc/irq/default_smp_affinity "$MASK" "$cur"; then
			say "FAILED to write /proc/irq/default_smp_affinity: $PUT_WHY" >&2
			N_FAIL=$((N_FAIL + 1))
		fi
	fi
	if irqbalance_pid; then
		say "warning: irqbalance (pid $IRQBALANCE_PID) will move IRQs back:" \
			"set IRQBALANCE_BANNED_CPULIST=$SHARDS_L in /etc/default/irqbalance" >&2
	fi
}

declare -A IRQ_SAVED=()
IRQ_SCANNED=0

# irq_saved_load: IRQ_SAVED[path] = the name apply recorded for each moved IRQ.
irq_saved_load() {
	local p name
	[[ -f $STATE/irqs ]] || return 0
	while IFS=$'\t' read -r p name; do IRQ_SAVED[$p]=$name; done <"$STATE/irqs"
}

irq_target() {
	local path=$1 n name m hits=0
	TARGET=$path SKIP_WHY=''
	[[ $path =~ ^/proc/irq/([0-9]+)/smp_affinity_list$ ]] || return 0
	n=${BASH_REMATCH[1]}
	name=${IRQ_SAVED[$path]-}
	[[ -n $name ]] || return 0 # no name recorded: the number is all there is
	if ((!IRQ_SCANNED)); then
		scan_irqs
		IRQ_SCANNED=1
	fi
	[[ ${IRQ_NAME[n]-} == "$name" ]] && return 0
	for m in $IRQ_LIST; do
		if [[ ${IRQ_NAME[m]} == "$name" ]]; then
			hits=$((hits + 1))
			TARGET=/proc/irq/$m/smp_affinity_list
		fi
	done
	((hits == 1)) && return 0
	TARGET=''
	SKIP_WHY="IRQ $n was '$name' and is now ${IRQ_NAME[n]:+"'${IRQ_NAME[n]}'"}${IRQ_NAME[n]:-gone};"
	if ((hits)); then SKIP_WHY+=" $hits IRQs have that name"; else SKIP_WHY+=" no IRQ has that name"; fi
	return 1
}
