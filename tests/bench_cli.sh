#!/usr/bin/env bash
# ringplane-bench's command line: an unknown flag, an abbreviated one, a
# missing value each exit 2 with one line naming the argument and the
# 'ringplane-bench' prefix (not argv[0]'s path); --list, --help and -h exit 0.
# None of these runs a suite.
# Usage: bench_cli.sh PATH/TO/ringplane-bench
set -u
B=$1
fails=0
H="(ringplane-bench --help for usage)"

says() { # name, expected stderr line, arguments...: exit 2 and that one line
	local name=$1 want=$2 err got
	shift 2
	err=$(timeout 10 "$B" "$@" 2>&1 >/dev/null)
	got=$?
	if [ "$got" -eq 2 ] && [ "$err" = "$want" ]; then
		echo "ok   $name"
	else
		echo "FAIL $name: exit $got, stderr '$err', wanted 2 and '$want'"
		fails=$((fails + 1))
	fi
}

says "unknown option named" "ringplane-bench: unknown option '--bogus' $H" --bogus
says "abbreviation refused" \
	"ringplane-bench: option '--qui' is abbreviated: did you mean --quick? $H" --qui --list
says "abbreviation with = refused" \
	"ringplane-bench: option '--js' is abbreviated: did you mean --json? $H" --js=/dev/null --list
says "missing value named" "ringplane-bench: --json needs a value $H" --json
says "unknown short option in a cluster named" "ringplane-bench: unknown option '-x' $H" \
	--json=/dev/null -xq
for a in --list --help -h; do
	if out=$(timeout 10 "$B" "$a" 2>&1) && [ -n "$out" ]; then
		echo "ok   $a exits 0"
	else
		echo "FAIL $a: '$out'"
		fails=$((fails + 1))
	fi
done
if [ "$fails" -ne 0 ]; then
	echo "$fails check(s) failed"
	exit 1
fi
echo "all checks passed"
