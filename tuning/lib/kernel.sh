# shellcheck shell=bash
# ringplane-tune component: the kernel: io_uring_disabled and the io_uring features the engine
# uses, judged by version (check only). Sourced by ../ringplane-tune.

# io_uring features the engine uses: "name|kernel|required or fallback|what happens without it".
# "required": no fallback in the engine (docs/engine.md: only features newer than liburing 2.3,
# plus SINGLE_ISSUER/DEFER_TASKRUN, SEND_ZC and MSG_RING, have one), so an older kernel fails.
readonly -a KFEATURES=(
	"MSG_RING|5.18|fallback|cross-shard wake-ups use an armed eventfd read instead"
	"multishot_accept|5.19|required|listeners are built on multishot accept"
	"provided_buffer_rings|5.19|required|receives are built on provided buffer rings"
	"SINGLE_ISSUER|6.0|fallback|rings are set up without it (more kernel-side locking)"
	"SEND_ZC|6.0|fallback|zero-copy sends fall back to MSG_ZEROCOPY sendmsg or copying"
	"multishot_recv|6.0|required|receives are built on multishot recv"
	"DEFER_TASKRUN|6.1|fallback|completions run as ordinary task work (more shard interruptions)"
	"SEND_ZC_REPORT_USAGE|6.2|fallback|copied and zero-copied sends cannot be told apart"
)

# kernel_version: KREL (release string) and KVER (major*1000+minor), both "" when unknown.
kernel_version() {
	KREL='' KVER=''
	if rd "$ROOT/proc/sys/kernel/osrelease"; then
		KREL=$RD
	elif [[ -z $ROOT ]]; then
		KREL=$(uname -r)
	fi
	if [[ $KREL =~ ^([0-9]+)\.([0-9]+) ]]; then
		KVER=$((10#${BASH_REMATCH[1]} * 1000 + 10#${BASH_REMATCH[2]}))
	fi
}

check_io_uring_disabled() {
	local file=/proc/sys/kernel/io_uring_disabled fix='sysctl -w kernel.io_uring_disabled=0'
	if ! rd "$ROOT$file"; then
		if [[ -z $KVER ]]; then
			row kernel.io_uring_disabled kernel warn n/a 0 "" "$file missing and kernel version unknown"
		elif ((KVER >= 6006)); then
			row kernel.io_uring_disabled kernel fail absent 0 "" \
				"Linux >= 6.6 without $file: kernel built without CONFIG_IO_URING"
		else
			row kernel.io_uring_disabled kernel ok absent 0 "" "kernels before 6.6 have no switch"
		fi
		return 0
	fi
	case $RD in
	0) row kernel.io_uring_disabled kernel ok 0 0 ;;
	1) row kernel.io_uring_disabled kernel fail 1 0 "$fix" \
		"io_uring only for CAP_SYS_ADMIN and the kernel.io_uring_group group" ;;
	*) row kernel.io_uring_disabled kernel fail "$RD" 0 "$fix" "io_uring disabled for every process" ;;
	esac
}

check_kernel() {
	local spec name ver kind why
	for spec in "${KFEATURES[@]}"; do
		IFS='|' read -r name ver kind why <<<"$spec"
		if [[ -z $KVER ]]; then
			row "io_uring.$name" kernel warn n/a ">= $ver" "" "kernel version unknown"
		elif ((KVER >= 10#${ver%%.*} * 1000 + 10#${ver#*.})); then
			row "io_uring.$name" kernel ok "$KREL" ">= $ver"
		elif [[ $kind == required ]]; then
			row "io_uring.$name" kernel fail "$KREL" ">= $ver" "upgrade the kernel to >= $ver" "$why (no fallback)"
		else
			row "io_uring.$name" kernel warn "$KREL" ">= $ver" "upgrade the kernel to >= $ver" "$why"
		fi
	done
}
