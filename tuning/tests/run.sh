#!/usr/bin/env bash
# Runs the ringplane-tune tests: shellcheck on every script, then the bats suites (TAP).
# Exit status: 0 only when both pass. Needs bats (Debian package `bats`) and shellcheck.
# Every test builds fake /proc and /sys trees (RP_TUNE_ROOT); host.bats only reads the host.
set -euo pipefail
cd "$(dirname "$0")"

missing=()
command -v bats >/dev/null || missing+=(bats)
command -v shellcheck >/dev/null || missing+=(shellcheck)
if ((${#missing[@]})); then
	echo "tuning/tests/run.sh: missing ${missing[*]} (apt-get install ${missing[*]})" >&2
	exit 1
fi

rc=0
scripts=(../ringplane-tune run.sh helpers.bash udevd-netns.sh ./*.bats)
libs=(../lib/*.sh)
# -x follows ringplane-tune's `source` lines, so variables set in one lib/ file and used in
# another count as used; but it reports nothing inside the sourced files, so they are checked
# on their own too, without the two checks that need the whole program (SC2034 unused,
# SC2153 possible misspelling of a variable assigned elsewhere).
if shellcheck -x "${scripts[@]}" && shellcheck -e SC2034,SC2153 "${libs[@]}"; then
	echo "shellcheck: $((${#scripts[@]} + ${#libs[@]})) files clean"
else
	echo "shellcheck: FAILED" >&2
	rc=1
fi

bats ./*.bats || rc=1
exit "$rc"
