# shellcheck shell=bash
# ringplane-tune check: the rows every component's check_* adds, printed as a table or JSON.
# Sourced by ../ringplane-tune.

R_ITEM=() R_CAT=() R_STATUS=() R_CUR=() R_REC=() R_FIX=() R_NOTE=()

# row ITEM CATEGORY STATUS CURRENT RECOMMENDED [FIX] [NOTE]: one audited item.
row() {
	R_ITEM+=("$1") R_CAT+=("$2") R_STATUS+=("$3") R_CUR+=("$4") R_REC+=("$5")
	if [[ $3 == ok ]]; then R_FIX+=(""); else R_FIX+=("${6:-}"); fi
	R_NOTE+=("${7:-}")
}

# json_str S: JS = S as a JSON string literal. Control bytes become \uXXXX; so do bytes
# >= 0x80 (read as Latin-1), so the output is valid JSON whatever sysfs holds.
json_str() {
	local s=$1 out='' ch i
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	s=${s//$'\n'/\\n}
	s=${s//$'\t'/\\t}
	s=${s//$'\r'/\\r}
	if [[ $s == *[![:print:]]* ]]; then
		for ((i = 0; i < ${#s}; i++)); do
			ch=${s:i:1}
			if [[ $ch == [![:print:]] ]]; then printf -v ch '\\u%04x' "'$ch"; fi
			out+=$ch
		done
		s=$out
	fi
	JS="\"$s\""
}

print_json() {
	local i ok=$1 warn=$2 fail=$3 result=ok sep=''
	if ((fail)); then result=fail; elif ((warn)); then result=warn; fi
	printf '{\n'
	json_str "$PROG"
	printf '  "tool": %s,\n  "version": %d,\n' "$JS" "$JSON_VERSION"
	json_str "$ROOT"
	printf '  "root": %s,\n' "$JS"
	json_str "$KREL"
	printf '  "kernel": %s,\n' "$JS"
	json_str "$SHARDS_L"
	printf '  "shard_cpus": %s,\n' "$JS"
	json_str "$SHARD_NOTE$SHARD_SRC"
	printf '  "shard_cpus_source": %s,\n' "$JS"
	json_str "$HOUSEKEEPING_L"
	printf '  "housekeeping_cpus": %s,\n' "$JS"
	printf '  "hugepages_per_node": %d,\n' "$HUGEPAGES"
	printf '  "result": "%s",\n' "$result"
	printf '  "summary": {"ok": %d, "warn": %d, "fail": %d},\n' "$ok" "$warn" "$fail"
	printf '  "checks": ['
	for i in "${!R_ITEM[@]}"; do
		printf '%s\n    {' "$sep"
		json_str "${R_ITEM[i]}"
		printf '"item": %s, ' "$JS"
		json_str "${R_CAT[i]}"
		printf '"category": %s, ' "$JS"
		printf '"status": "%s", ' "${R_STATUS[i]}"
		json_str "${R_CUR[i]}"
		printf '"current": %s, ' "$JS"
		json_str "${R_REC[i]}"
		printf '"recommended": %s, ' "$JS"
		json_str "${R_FIX[i]}"
		printf '"fix": %s, ' "$JS"
		json_str "${R_NOTE[i]}"
		printf '"note": %s}' "$JS"
		sep=,
	done
	printf '\n  ]\n}\n'
}

print_table() {
	local i w1=4 w2=11 w3=7 n=0
	for i in "${!R_ITEM[@]}"; do
		if ((${#R_ITEM[i]} > w1)); then w1=${#R_ITEM[i]}; fi
		if ((${#R_REC[i]} > w2 && ${#R_REC[i]} <= 32)); then w2=${#R_REC[i]}; fi
		if ((${#R_CUR[i]} > w3 && ${#R_CUR[i]} <= 32)); then w3=${#R_CUR[i]}; fi
	done
	printf '%s: shard CPUs %s (%s%s), housekeeping %s, kernel %s%s\n\n' "$PROG" "${SHARDS_L:-none}" \
		"$SHARD_NOTE" "$SHARD_SRC" "${HOUSEKEEPING_L:-none}" "${KREL:-unknown}" "${ROOT:+, root $ROOT}"
	printf '%-6s %-*s  %-*s  %-*s  %s\n' STATUS "$w1" ITEM "$w3" CURRENT "$w2" RECOMMENDED FIX
	for i in "${!R_ITEM[@]}"; do
		printf '%-6s %-*s  %-*s  %-*s  %s\n' "${R_STATUS[i]}" "$w1" "${R_ITEM[i]}" "$w3" "${R_CUR[i]}" \
			"$w2" "${R_REC[i]}" "${R_FIX[i]:--}"
	done
	for i in "${!R_ITEM[@]}"; do
		[[ ${R_STATUS[i]} != ok && -n ${R_NOTE[i]} ]] || continue
		if ((n == 0)); then printf '\nnotes:\n'; fi
		n=$((n + 1))
		printf '  %s: %s\n' "${R_ITEM[i]}" "${R_NOTE[i]}"
	done
	printf '\n%d ok, %d warn, %d fail\n' "$1" "$2" "$3"
}
