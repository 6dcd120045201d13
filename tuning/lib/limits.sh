# shellcheck shell=bash
# ringplane-tune component: RLIMIT_MEMLOCK and RLIMIT_NOFILE (check only: the service's own
# limits come from ringplane@.service). Sourced by ../ringplane-tune.

readonly WANT_NOFILE=1048576 # a relayed connection holds 2 sockets + 2 pipe ends

# limit_of NAME: LIM_SOFT = the soft limit "Max NAME" of this process ("" when unreadable).
limit_of() {
	local line rest
	local -a f=()
	LIM_SOFT=''
	if [[ -r $ROOT/proc/self/limits ]]; then
		while IFS= read -r line || [[ -n $line ]]; do
			if [[ $line == "Max $1 "* ]]; then
				rest=${line#"Max $1 "}
				read -ra f <<<"$rest" || true
				LIM_SOFT=${f[0]:-}
				return 0
			fi
		done <"$ROOT/proc/self/limits"
	elif [[ -z $ROOT ]]; then
		case $1 in
		'locked memory') LIM_SOFT=$(ulimit -l) ;;
		'open files') LIM_SOFT=$(ulimit -n) ;;
		esac
		# ulimit -l counts KiB; /proc/self/limits counts bytes.
		if [[ $1 == 'locked memory' && $LIM_SOFT =~ ^[0-9]+$ ]]; then
			LIM_SOFT=$((LIM_SOFT * 1024))
		fi
	fi
}

check_limits() {
	local self="this is the limit of the shell running the check"
	limit_of 'locked memory'
	if [[ -z $LIM_SOFT ]]; then
		row memlock limits warn n/a unlimited "" "/proc/self/limits unreadable"
	elif [[ $LIM_SOFT == unlimited ]]; then
		row memlock limits ok unlimited unlimited
	else
		local cur=$LIM_SOFT
		if is_uint "$cur" && ((cur >= 1048576)); then cur+=" ($((cur / 1048576)) MiB)"; fi
		row memlock limits warn "$cur" unlimited \
			"LimitMEMLOCK=infinity (ringplane@.service) or ulimit -l unlimited" \
			"registered io_uring buffers and MSG_ZEROCOPY pages count against it without CAP_IPC_LOCK; $self"
	fi
	limit_of 'open files'
	if [[ -z $LIM_SOFT ]]; then
		row nofile limits warn n/a ">= $WANT_NOFILE" "" "/proc/self/limits unreadable"
	elif [[ $LIM_SOFT == unlimited ]] || { is_uint "$LIM_SOFT" && ((LIM_SOFT >= WANT_NOFILE)); }; then
		row nofile limits ok "$LIM_SOFT" ">= $WANT_NOFILE"
	else
		row nofile limits warn "$LIM_SOFT" ">= $WANT_NOFILE" \
			"LimitNOFILE=$WANT_NOFILE (ringplane@.service) or ulimit -n $WANT_NOFILE" \
			"each relayed connection holds two sockets and, with splice, a pipe; $self"
	fi
}
