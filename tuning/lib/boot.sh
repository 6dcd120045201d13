# shellcheck shell=bash
# ringplane-tune component: boot parameters (isolcpus, nohz_full, rcu_nocbs, irqaffinity).
# check_cmdline audits /proc/cmdline; cmdline_boot prints them and edits /etc/default/grub
# (--write-grub), whose original revert restores. Sourced by ../ringplane-tune.

readonly BOOT_KEYS_RE='^(isolcpus|nohz_full|rcu_nocbs|irqaffinity)(=|$)'

# cmdline_params: KP[name] = value of each kernel parameter (last one wins; "" when given
# without a value); returns 1 when /proc/cmdline is unreadable.
cmdline_params() {
	local tok
	local -a toks=()
	declare -gA KP=()
	rd "$ROOT/proc/cmdline" || return 1
	read -ra toks <<<"$RD" || true
	for tok in "${toks[@]}"; do
		[[ $tok == -- ]] && break # the rest belongs to init
		if [[ $tok == *=* ]]; then KP[${tok%%=*}]=${tok#*=}; else KP[$tok]=''; fi
	done
}

check_cmdline() {
	local fix="$PROG cmdline --cpus $SHARDS_L --write-grub, update-grub, reboot"
	local p v flags list missing ml
	local -a parts=()
	if ! cmdline_params; then
		for p in isolcpus nohz_full rcu_nocbs irqaffinity; do
			row "cmdline.$p" boot warn n/a "see '$PROG cmdline'" "" "/proc/cmdline unreadable"
		done
		return 0
	fi
	# isolcpus=[flags,]list: flags nohz, domain, managed_irq come first.
	if [[ -z ${KP[isolcpus]+set} ]]; then
		row cmdline.isolcpus boot warn absent "managed_irq,domain,$SHARDS_L" "$fix" \
			"the scheduler and unbound kernel work may run on shard CPUs"
	else
		v=${KP[isolcpus]} flags='' list=''
		IFS=, read -ra parts <<<"$v" || true
		for p in "${parts[@]}"; do
			if [[ -z $list && $p =~ ^(nohz|domain|managed_irq)$ ]]; then
				flags+=" $p"
			else
				list+=${list:+,}$p
			fi
		done
		if ! cpulist_parse "$list"; then
			row cmdline.isolcpus boot warn "$v" "managed_irq,domain,$SHARDS_L" "$fix" "unparsable: $PARSE_ERR"
		else
			cpus_minus missing "$SHARDS" "$CPUS"
			cpus_fmt ml "$missing"
			if [[ -n $missing ]]; then
				row cmdline.isolcpus boot warn "$v" "managed_irq,domain,$SHARDS_L" "$fix" \
					"shard CPUs $ml are not isolated"
			elif [[ $flags != *managed_irq* ]]; then
				row cmdline.isolcpus boot warn "$v" "managed_irq,domain,$SHARDS_L" "$fix" \
					"without managed_irq, kernel-managed IRQs (NVMe, some NICs) still land on shard CPUs"
			else
				row cmdline.isolcpus boot ok "$v" "managed_irq,domain,$SHARDS_L"
			fi
		fi
	fi
	for p in nohz_full rcu_nocbs; do
		if [[ -z ${KP[$p]+set} ]]; then
			row "cmdline.$p" boot warn absent "$SHARDS_L" "$fix"
		elif ! cpulist_parse "${KP[$p]}"; then
			row "cmdline.$p" boot warn "${KP[$p]:-(no list)}" "$SHARDS_L" "$fix" "${PARSE_ERR}"
		else
			cpus_minus missing "$SHARDS" "$CPUS"
			cpus_fmt ml "$missing"
			if [[ -n $missing ]]; then
				row "cmdline.$p" boot warn "${KP[$p]}" "$SHARDS_L" "$fix" "shard CPUs $ml not covered"
			else
				row "cmdline.$p" boot ok "${KP[$p]}" "$SHARDS_L"
			fi
		fi
	done
	if [[ -z $HOUSEKEEPING ]]; then
		row cmdline.irqaffinity boot warn "${KP[irqaffinity]-absent}" "(no CPU left)" "" \
			"every online CPU is a shard CPU: leave one for IRQs and housekeeping"
	elif [[ -z ${KP[irqaffinity]+set} ]]; then
		row cmdline.irqaffinity boot warn absent "$HOUSEKEEPING_L" "$fix" "IRQs may start on shard CPUs"
	elif ! cpulist_parse "${KP[irqaffinity]}"; then
		row cmdline.irqaffinity boot warn "${KP[irqaffinity]}" "$HOUSEKEEPING_L" "$fix" "$PARSE_ERR"
	elif cpus_and missing "$CPUS" "$SHARDS" && [[ -n $missing ]]; then
		cpus_fmt ml "$missing"
		row cmdline.irqaffinity boot warn "${KP[irqaffinity]}" "$HOUSEKEEPING_L" "$fix" "includes shard CPUs $ml"
	else
		row cmdline.irqaffinity boot ok "${KP[irqaffinity]}" "$HOUSEKEEPING_L"
	fi
}

# cmdline_boot WRITE YES: prints the boot parameters for the shard CPUs and the GRUB line
# with the host's other parameters kept; WRITE=1 edits /etc/default/grub (after a y/N prompt
# unless YES=1), saving the original in the state for revert.
cmdline_boot() {
	local write=$1 yes=$2 grub=/etc/default/grub params line val tok merged='' idx=-1 i ans
	local -a lines=() toks=()
	resolve_shards
	[[ -n $HOUSEKEEPING ]] ||
		die "every online CPU ($SHARDS_L) is a shard CPU: leave at least one for IRQs, RCU and housekeeping"
	if [[ " $SHARDS " == *" 0 "* ]]; then
		say "warning: CPU 0 is a shard CPU; the boot CPU keeps timekeeping and unmovable IRQs" >&2
	fi
	params="isolcpus=managed_irq,domain,$SHARDS_L nohz_full=$SHARDS_L rcu_nocbs=$SHARDS_L"
	params+=" irqaffinity=$HOUSEKEEPING_L"
	if [[ -f $ROOT$grub ]]; then
		mapfile -t lines <"$ROOT$grub"
		for i in "${!lines[@]}"; do
			if [[ ${lines[i]} =~ ^[[:space:]]*GRUB_CMDLINE_LINUX_DEFAULT= ]]; then idx=$i; fi
		done
	fi
	if ((idx >= 0)); then
		val=${lines[idx]#*=}
		if [[ $val =~ ^\"(.*)\"[[:space:]]*$ || $val =~ ^\'(.*)\'[[:space:]]*$ ]]; then val=${BASH_REMATCH[1]}; fi
		read -ra toks <<<"$val" || true
		for tok in "${toks[@]}"; do
			[[ $tok =~ $BOOT_KEYS_RE ]] || merged+="$tok "
		done
	fi
	merged+=$params
	line="GRUB_CMDLINE_LINUX_DEFAULT=\"$merged\""
	say "$params"
	say "$line"
	say "# shard CPUs from $SHARD_NOTE$SHARD_SRC" >&2
	if ((!write)); then
		say "# to install: $PROG cmdline --cpus $SHARDS_L --write-grub, then update-grub" \
			"(or grub2-mkconfig -o /boot/grub2/grub.cfg) and reboot" >&2
		return 0
	fi
	[[ -f $ROOT$grub ]] ||
		die "no $ROOT$grub (not a GRUB system?): add the parameters to the boot loader by hand"
	if ((idx >= 0)) && [[ ${lines[idx]} == "$line" ]]; then
		say "$ROOT$grub already has this line"
		return 0
	fi
	if ((!yes)); then
		[[ -t 0 ]] || die "refusing to edit $ROOT$grub: stdin is not a terminal (pass --yes to confirm)"
		read -r -p "Write this GRUB_CMDLINE_LINUX_DEFAULT to $ROOT$grub? [y/N] " ans || ans=''
		if [[ $ans != [yY] && $ans != [yY][eE][sS] ]]; then
			say "left $ROOT$grub unchanged"
			return 1
		fi
	fi
	if [[ -z $ROOT && $EUID -ne 0 ]]; then die "editing $grub needs root"; fi
	if ((idx >= 0)); then lines[idx]=$line; else lines+=("$line"); fi
	state_init
	save_orig "$grub"
	printf '%s\n' "${lines[@]}" >"$ROOT$grub"
	say "wrote $ROOT$grub (original saved in $STATE; undo: $PROG revert); now run update-grub and reboot"
}
