# shellcheck shell=bash
# ringplane-tune component: sysctls from sysctl.d/90-ringplane.conf (floors, or exact values
# marked "# exact:"). check_sysctls audits, apply_sysctls raises; revert is the state's.
# Sourced by ../ringplane-tune.

# load_sysctls: SC_KEYS, SC_VALS (normalised) and SC_EXACT (1 when the comment above the key
# starts with "# exact:", else the value is a floor) from SYSCTL_CONF.
load_sysctls() {
	local line key exact=0
	[[ -r $SYSCTL_CONF ]] || die "cannot read the sysctl file $SYSCTL_CONF"
	SC_KEYS=() SC_VALS=() SC_EXACT=()
	while IFS= read -r line || [[ -n $line ]]; do
		norm "$line"
		line=$NORM
		if [[ $line == '# exact:'* ]]; then exact=1; fi
		if [[ -z $line || $line == [\#\;]* ]]; then continue; fi
		[[ $line == *=* ]] || die "$SYSCTL_CONF: not 'key = value': $line"
		key=${line%%=*}
		key=${key//[[:space:]]/}
		key=${key#-}
		norm "${line#*=}"
		SC_KEYS+=("$key") SC_VALS+=("$NORM") SC_EXACT+=("$exact")
		exact=0
	done <"$SYSCTL_CONF"
}

# sysctl_eval CURRENT WANT EXACT: SC_OK=1 when CURRENT meets WANT (exact: equal; floor:
# every field >= WANT's), and SC_TARGET = the value apply writes (the field-wise maximum, so
# a larger operator value is never lowered).
sysctl_eval() {
	local -a cur=() want=() tgt=()
	local i
	read -ra cur <<<"$1" || true
	read -ra want <<<"$2" || true
	SC_OK=1
	if [[ $3 == 1 || ${#cur[@]} -ne ${#want[@]} ]]; then
		[[ "${cur[*]}" == "${want[*]}" ]] || SC_OK=0
		SC_TARGET="${want[*]}"
		return 0
	fi
	for i in "${!want[@]}"; do
		if is_uint "${cur[i]}" && is_uint "${want[i]}"; then
			if ((10#${cur[i]} >= 10#${want[i]})); then
				tgt+=("${cur[i]}")
			else
				tgt+=("${want[i]}")
				SC_OK=0
			fi
		else
			tgt+=("${want[i]}")
			[[ ${cur[i]} == "${want[i]}" ]] || SC_OK=0
		fi
	done
	SC_TARGET="${tgt[*]}"
}

# sysctl_note KEY: SC_NOTE = what an operator should know before raising KEY ("" for most).
sysctl_note() {
	SC_NOTE=''
	case $1 in
	net.core.busy_poll | net.core.busy_read)
		# Both are global (net_core_table, not per network namespace) and apply to every socket.
		SC_NOTE="host-wide, not per process or namespace: every process's sockets spin"
		SC_NOTE+=" (busy_poll: poll/select/epoll, busy_read: blocking reads) on whatever CPU they"
		SC_NOTE+=" run, housekeeping CPUs included; set 0 on hosts that run other busy services"
		;;
	esac
}

check_sysctls() {
	local i key want path rec fix
	for i in "${!SC_KEYS[@]}"; do
		key=${SC_KEYS[i]} want=${SC_VALS[i]}
		path=/proc/sys/${key//.//}
		if [[ ${SC_EXACT[i]} == 1 ]]; then rec="= $want"; else rec=">= $want"; fi
		if ! rd "$ROOT$path"; then
			row "$key" sysctl warn n/a "$rec" "" "not on this kernel ($path missing)"
			continue
		fi
		norm "$RD"
		sysctl_eval "$NORM" "$want" "${SC_EXACT[i]}"
		sysctl_note "$key"
		if ((SC_OK)); then
			row "$key" sysctl ok "$NORM" "$rec" "" "$SC_NOTE"
		else
			fix="sysctl -w $key=$SC_TARGET"
			if [[ $SC_TARGET == *' '* ]]; then fix="sysctl -w $key=\"$SC_TARGET\""; fi
			row "$key" sysctl warn "$NORM" "$rec" "$fix" "$SC_NOTE"
		fi
	done
}

apply_sysctls() {
	local i key path
	for i in "${!SC_KEYS[@]}"; do
		key=${SC_KEYS[i]}
		path=/proc/sys/${key//.//}
		if ! rd "$ROOT$path"; then
			say "skip $key: not on this kernel"
			continue
		fi
		norm "$RD"
		sysctl_eval "$NORM" "${SC_VALS[i]}" "${SC_EXACT[i]}"
		((SC_OK)) && continue
		if ! put "$path" "$SC_TARGET" "$NORM"; then
			say "FAILED to write $key: $PUT_WHY" >&2
			N_FAIL=$((N_FAIL + 1))
		fi
	done
}
