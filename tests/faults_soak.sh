#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The soak (tests/soak/soak.c) against servers whose engine injects faults
# (a -Dfaults=true build): ringplane-soak --server-faults with RP_FAULTS in
# the environment, which the soak passes to every server it starts. Then
# every server's log must hold its "faults injected: shard N ..." lines at
# exit, each server with some fault injected (when nomem or eagain is set:
# those strike every server) and each kind set above 0 injected somewhere,
# so a run where the faults never happened cannot pass.
#
# usage: faults_soak.sh BUILD_DIR SECONDS [ringplane-soak args...]
# RP_FAULTS defaults to nomem=0.01,short=0.05,reset=0.01,eagain=0.05.
set -euo pipefail

build=$1
seconds=$2
shift 2
export RP_FAULTS=${RP_FAULTS:-nomem=0.01,short=0.05,reset=0.01,eagain=0.05}
soak="$build/tests/soak/ringplane-soak"
out=$(mktemp)
trap 'rm -f "$out"' EXIT

echo "faults_soak: RP_FAULTS=$RP_FAULTS, $seconds s"
rc=0
"$soak" --ringplane "$build/apps/ringplane" --seconds "$seconds" --server-faults --keep "$@" \
	>"$out" 2>&1 || rc=$?
cat "$out"
dir=$(sed -n 's/.*work dir \(\/[^ ]*\).*/\1/p' "$out" | head -n 1)
if [ -z "$dir" ] || [ ! -d "$dir" ]; then
	echo "faults_soak: FAIL: no work directory in the soak's output" >&2
	exit 1
fi

# kinds whose rate is above 0 must have struck at least once
want=()
IFS=, read -ra items <<<"$RP_FAULTS"
for it in "${items[@]}"; do
	k=${it%%=*}
	v=${it#*=}
	case $k in
	nomem | short | reset | eagain | rearm)
		awk -v v="$v" 'BEGIN { exit !(v + 0 > 0) }' && want+=("$k")
		;;
	esac
done

declare -A total
for log in "$dir"/*.log; do
	name=$(basename "$log" .log)
	if ! grep -q '^faults injected: shard ' "$log"; then
		echo "faults_soak: FAIL: $name printed no 'faults injected' line (not a -Dfaults=true build, or it did not stop cleanly)" >&2
		rc=1
		continue
	fi
	line=""
	sum=0
	for k in nomem short reset eagain rearm; do
		n=$(sed -n "s/^faults injected: shard [0-9]* .*\<$k=\([0-9]*\).*/\1/p" "$log" |
			awk '{ s += $1 } END { print s + 0 }')
		line+=" $k=$n"
		sum=$((sum + n))
		total[$k]=$((${total[$k]:-0} + n))
	done
	echo "faults_soak: $name:$line"
	# nomem and eagain can strike every server; short and reset only
	# those that send and receive with ops
	if [ "$sum" -eq 0 ] && printf '%s\n' "${want[@]}" | grep -qxE 'nomem|eagain'; then
		echo "faults_soak: FAIL: $name: no fault injected" >&2
		rc=1
	fi
done
# Across the servers (a relay in splice mode makes no send or recv op, so
# short and reset cannot strike it): every kind set above 0 struck.
for k in "${want[@]}"; do
	if [ "${total[$k]:-0}" -eq 0 ]; then
		echo "faults_soak: FAIL: no $k fault injected in any server" >&2
		rc=1
	fi
done
rm -rf "$dir"
[ "$rc" -eq 0 ] && echo "faults_soak: PASS" || echo "faults_soak: FAIL" >&2
exit "$rc"
