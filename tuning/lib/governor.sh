# shellcheck shell=bash
# ringplane-tune component: the cpufreq governor of the shard CPUs. check_governor audits,
# apply_governor sets performance; revert is the state's. Sourced by ../ringplane-tune.

check_governor() {
	local c cur='' g l
	local -A by=()
	local none=''
	for c in $SHARDS; do
		if rd "$ROOT/sys/devices/system/cpu/cpu$c/cpufreq/scaling_governor"; then
			by[$RD]+=" $c"
		else
			none+=" $c"
		fi
	done
	if ((${#by[@]} == 0)); then
		l="no cpufreq on the shard CPUs (virtual machine or no cpufreq driver):"
		row governor cpu warn n/a performance "" "$l the hypervisor or firmware sets the frequency"
		return 0
	fi
	for g in "${!by[@]}"; do
		cpus_fmt l "${by[$g]}"
		cur+="${cur:+ }$g($l)"
	done
	if [[ -n $none ]]; then
		cpus_fmt l "$none"
		cur+=" n/a($l)"
	fi
	if [[ ${!by[*]} == performance && -z $none ]]; then
		row governor cpu ok "$cur" performance
	else
		row governor cpu warn "$cur" performance "$PROG apply --cpus $SHARDS_L" \
			"other governors ramp the clock up only after load arrives: latency spikes on shard CPUs"
	fi
}

apply_governor() {
	local c dir none=''
	for c in $SHARDS; do
		dir=/sys/devices/system/cpu/cpu$c/cpufreq
		if ! rd "$ROOT$dir/scaling_governor"; then
			none+=" $c"
			continue
		fi
		[[ $RD == performance ]] && continue
		local cur=$RD
		if rd "$ROOT$dir/scaling_available_governors" && [[ " $RD " != *" performance "* ]]; then
			say "skip governor on cpu$c: 'performance' not offered ($RD)"
			continue
		fi
		if ! put "$dir/scaling_governor" performance "$cur"; then
			say "FAILED to set the governor of cpu$c: $PUT_WHY" >&2
			N_FAIL=$((N_FAIL + 1))
		fi
	done
	if [[ -n $none ]]; then
		cpus_fmt none "$none"
		say "skip governor on CPUs $none: no cpufreq (VM or no driver)"
	fi
}
