# shellcheck shell=bash
# ringplane-tune component: 2 MiB huge pages per NUMA node with shard CPUs, and THP.
# check_hugepages/check_thp audit, apply_hugepages reserves (capped unless --force); revert is
# the state's. Sourced by ../ringplane-tune.

readonly DEFAULT_HUGEPAGES=512 # 1 GiB of 2 MiB pages per node: a few shard arenas
# apply reserves at most this share of a node's MemTotal as huge pages unless --force: pages
# taken from a node that needs them for the kernel, page cache and 4 KB allocations end in
# OOM kills or swapping, and a too-large count is an easy slip (pages vs MiB).
readonly HUGEPAGES_MAX_PCT=50
FORCE=0 # --force: reserve past HUGEPAGES_MAX_PCT

set_hugepages() {
	[[ $1 =~ ^[0-9]{1,7}$ ]] || die "--hugepages wants a page count (0-9999999), got '$1'"
	HUGEPAGES=$((10#$1))
}

# numa_nodes: NODES = NUMA node numbers ascending ("" when the kernel shows none).
numa_nodes() {
	local d n
	local -a set=()
	for d in "$ROOT"/sys/devices/system/node/node[0-9]*; do
		n=${d##*/node}
		if [[ -d $d && $n =~ ^[0-9]+$ ]]; then set[n]=1; fi
	done
	NODES="${!set[*]}"
}

# node_shards N: NODE_SHARDS = shard CPUs on node N (all shards when the node has no cpulist
# file and is the only node).
node_shards() {
	NODE_SHARDS=''
	if rd "$ROOT/sys/devices/system/node/node$1/cpulist"; then
		cpulist_parse "$RD" || return 0
		cpus_and NODE_SHARDS "$SHARDS" "$CPUS"
	elif [[ $NODES == "$1" ]]; then
		NODE_SHARDS=$SHARDS
	fi
}

# hugepage_cap MEMINFO: HP_CAP = the most 2 MiB pages apply reserves from the memory of a
# meminfo file (/proc/meminfo or a node's: "Node 0 MemTotal:  16318020 kB"), HP_MEM_MIB its
# MemTotal in MiB; returns 1 (both "") when the file or its MemTotal line is unreadable.
hugepage_cap() {
	local line
	HP_CAP='' HP_MEM_MIB=''
	[[ -f $1 && -r $1 ]] || return 1
	while IFS= read -r line || [[ -n $line ]]; do
		if [[ $line =~ MemTotal:[[:space:]]*([0-9]{1,15})[[:space:]]*kB ]]; then
			HP_MEM_MIB=$((10#${BASH_REMATCH[1]} / 1024))
			HP_CAP=$((10#${BASH_REMATCH[1]} * HUGEPAGES_MAX_PCT / 100 / 2048))
			return 0
		fi
	done <"$1" 2>/dev/null
	return 1
}

check_hugepages() {
	local n hp nr free cur item fix note
	numa_nodes
	if [[ -z $NODES ]]; then
		# No NUMA sysfs (CONFIG_NUMA off): one global pool.
		if ! rd "$ROOT/proc/sys/vm/nr_hugepages"; then
			row hugepages memory warn n/a ">= $HUGEPAGES" "" "no huge page support (/proc/sys/vm/nr_hugepages missing)"
			return 0
		fi
		nr=$RD
		if ((HUGEPAGES == 0)) || { is_uint "$nr" && ((nr >= HUGEPAGES)); }; then
			row hugepages memory ok "nr=$nr" ">= $HUGEPAGES"
		else
			row hugepages memory warn "nr=$nr" ">= $HUGEPAGES" "sysctl -w vm.nr_hugepages=$HUGEPAGES" \
				"pools fall back to THP, then 4 KB pages"
		fi
		return 0
	fi
	for n in $NODES; do
		item=hugepages.node$n
		hp=/sys/devices/system/node/node$n/hugepages/hugepages-2048kB
		node_shards "$n"
		if ! rd "$ROOT$hp/nr_hugepages"; then
			row "$item" memory warn n/a ">= $HUGEPAGES 2 MiB pages" "" "no 2 MiB huge page pool ($hp missing)"
			continue
		fi
		nr=$RD free='?'
		if rd "$ROOT$hp/free_hugepages"; then free=$RD; fi
		cur="nr=$nr free=$free"
		fix="echo $HUGEPAGES > $hp/nr_hugepages"
		if [[ -z $NODE_SHARDS ]]; then
			row "$item" memory ok "$cur" "any (no shard CPUs on node $n)"
		elif ((HUGEPAGES == 0)); then
			row "$item" memory ok "$cur" "any (--hugepages 0)"
		elif ! is_uint "$nr" || ((nr < HUGEPAGES)); then
			note="shard pools on node $n fall back to THP, then 4 KB pages (RP_POOL_HUGE_ONLY fails)"
			if hugepage_cap "$ROOT/sys/devices/system/node/node$n/meminfo" && ((HUGEPAGES > HP_CAP)); then
				note+="; $HUGEPAGES pages are more than $HUGEPAGES_MAX_PCT% of the node's $HP_MEM_MIB MiB:"
				note+=" apply reserves $HP_CAP unless --force"
			fi
			row "$item" memory warn "$cur" "nr >= $HUGEPAGES" "$fix" "$note"
		elif [[ $free == 0 ]]; then
			row "$item" memory ok "$cur" "nr >= $HUGEPAGES" "" "every reserved page is in use"
		else
			row "$item" memory ok "$cur" "nr >= $HUGEPAGES"
		fi
	done
}

# reserve PATH WHAT MEMINFO: raise a huge page count at PATH to HUGEPAGES (never lowers it),
# capped at HUGEPAGES_MAX_PCT of the MemTotal in MEMINFO unless --force.
reserve() {
	local path=$1 what=$2 meminfo=$3 want=$HUGEPAGES
	if ! rd "$ROOT$path"; then
		say "skip huge pages on $what: no 2 MiB pool ($path missing)"
		return 0
	fi
	if ! hugepage_cap "$ROOT$meminfo"; then
		say "warning: $what: no MemTotal in $meminfo, $want huge pages not checked against memory" >&2
	elif ((want > HP_CAP && FORCE)); then
		say "--force: reserving $want huge pages on $what, more than $HUGEPAGES_MAX_PCT% of its $HP_MEM_MIB MiB"
	elif ((want > HP_CAP)); then
		say "capped huge pages on $what at $HP_CAP of $want: $want pages ($((want * 2)) MiB) are more" \
			"than $HUGEPAGES_MAX_PCT% of its $HP_MEM_MIB MiB MemTotal, which the kernel and 4 KB" \
			"allocations need (--force reserves all $want)"
		want=$HP_CAP
	fi
	is_uint "$RD" && ((RD >= want)) && return 0
	if ! put "$path" "$want" "$RD"; then
		say "FAILED to reserve huge pages on $what: $PUT_WHY" >&2
		N_FAIL=$((N_FAIL + 1))
		return 0
	fi
	# The kernel reserves what it can find; a fragmented node gives fewer pages.
	if ((!DRY)) && rd "$ROOT$path" && is_uint "$RD" && ((RD < want)); then
		say "warning: $what got $RD of $want huge pages (fragmented memory:" \
			"reserve at boot with hugepagesz=2M hugepages=N)" >&2
	fi
}

apply_hugepages() {
	local n
	if ((HUGEPAGES == 0)); then
		say "skip huge pages (--hugepages 0)"
		return 0
	fi
	numa_nodes
	if [[ -z $NODES ]]; then
		reserve /proc/sys/vm/nr_hugepages "the host" /proc/meminfo
		return 0
	fi
	for n in $NODES; do
		node_shards "$n"
		[[ -n $NODE_SHARDS ]] || continue
		reserve "/sys/devices/system/node/node$n/hugepages/hugepages-2048kB/nr_hugepages" "node $n" \
			"/sys/devices/system/node/node$n/meminfo"
	done
}

check_thp() {
	local file=/sys/kernel/mm/transparent_hugepage/enabled mode
	if ! rd "$ROOT$file"; then
		row thp memory warn n/a madvise "" "kernel without transparent huge pages ($file missing)"
		return 0
	fi
	mode=$RD
	if [[ $RD =~ \[([a-z_]+)\] ]]; then mode=${BASH_REMATCH[1]}; fi
	case $mode in
	madvise) row thp memory ok "$mode" madvise ;;
	always)
		row thp memory ok "$mode" madvise "" \
			"'always' gives THP to every process; madvise limits it to the arenas that ask"
		;;
	*)
		row thp memory warn "$mode" madvise "echo madvise > $file" \
			"pools without hugetlb pages cannot get THP and use 4 KB pages"
		;;
	esac
}
