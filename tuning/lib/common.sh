# shellcheck shell=bash
# ringplane-tune: messages, file readers, CPU lists and the shard CPU set, shared by every
# component. Sourced by ../ringplane-tune.

# Kernel cpulists never exceed NR_CPUS (8192 at most); the bound also stops "0-999999999".
readonly MAX_CPUS=8192

die() {
	printf '%s: %s\n' "$PROG" "$*" >&2
	exit 2
}

say() { printf '%s\n' "$*"; }

need_val() { (($2 >= 2)) || die "$1 needs a value"; }

# ---------------------------------------------------------------------------------------------
# Small readers

# rd FILE: first line of FILE in RD; returns 1 (RD empty) when FILE is missing, unreadable
# or empty. Never fails the script: sysfs files vanish with hotplug and some return EIO.
rd() {
	RD=
	[[ -f $1 && -r $1 ]] || return 1
	{ IFS= read -r RD <"$1" || [[ -n $RD ]]; } 2>/dev/null
}

# slurp FILE: SLURP = FILE's exact bytes (trailing newlines included). procfs, sysfs and
# /etc/default/grub hold no NUL bytes, so bash keeps them whole; no cat fork per file.
slurp() {
	SLURP=''
	[[ -f $1 && -r $1 ]] || return 1
	{ IFS= read -r -d '' SLURP <"$1" || true; } 2>/dev/null
	[[ -n $SLURP ]] # an unreadable (EIO) file must never be saved as an empty original
}

# norm STRING: NORM = STRING with runs of blanks squeezed to one space, ends trimmed
# ("4096\t131072\t6291456" -> "4096 131072 6291456").
norm() {
	local -a w=()
	read -ra w <<<"$1" || true
	NORM="${w[*]}"
}

is_uint() { [[ $1 =~ ^[0-9]{1,18}$ ]]; }

# ---------------------------------------------------------------------------------------------
# CPU lists. Sets are space-separated, sorted, unique CPU numbers ("0 1 2 5").

# cpulist_parse LIST: CPUS = the set of a kernel cpulist: "2-5,8", strides "0-15:2/4"
# (first 2 CPUs of every group of 4), "all" (online CPUs), "N" (the last possible CPU).
# Blanks around items are ignored. Returns 1 with PARSE_ERR set on any malformed or
# out-of-range item.
cpulist_parse() {
	local list=$1 tok lo hi used grp c
	local -a toks=() set=()
	CPUS='' PARSE_ERR=''
	if [[ -z ${list//[[:space:]]/} ]]; then
		PARSE_ERR="empty CPU list"
		return 1
	fi
	# Split on commas keeping empty fields (a trailing comma too), then trim each item:
	# blanks may surround an item, never split one ("1 2" is not CPU 12).
	IFS=, read -ra toks <<<"$list,"
	for tok in "${toks[@]}"; do
		tok=${tok#"${tok%%[![:space:]]*}"}
		tok=${tok%"${tok##*[![:space:]]}"}
		if [[ -z $tok ]]; then
			PARSE_ERR="empty item in CPU list '$1'"
			return 1
		fi
		if [[ $tok == all ]]; then
			if [[ -z $ONLINE ]]; then
				PARSE_ERR="'all' needs the online CPU list, which is unreadable"
				return 1
			fi
			for c in $ONLINE; do set[c]=1; done
			continue
		fi
		if ! [[ $tok =~ ^([0-9]+|N)(-([0-9]+|N)(:([0-9]+)/([0-9]+))?)?$ ]]; then
			PARSE_ERR="bad item '$tok' in CPU list '$1' (want N, A-B or A-B:used/group)"
			return 1
		fi
		lo=${BASH_REMATCH[1]} hi=${BASH_REMATCH[3]:-${BASH_REMATCH[1]}}
		used=${BASH_REMATCH[5]:-1} grp=${BASH_REMATCH[6]:-1}
		[[ $lo == N ]] && lo=$LASTCPU
		[[ $hi == N ]] && hi=$LASTCPU
		for c in "$lo" "$hi" "$used" "$grp"; do
			if [[ -z $c || ${#c} -gt 5 ]] || ((10#$c >= MAX_CPUS)); then
				PARSE_ERR="'$tok' in CPU list '$1' is out of range (CPUs are 0-$((MAX_CPUS - 1)))"
				[[ -z $c ]] && PARSE_ERR="'N' in '$1' needs the possible CPU list, which is unreadable"
				return 1
			fi
		done
		lo=$((10#$lo)) hi=$((10#$hi)) used=$((10#$used)) grp=$((10#$grp))
		if ((lo > hi)); then
			PARSE_ERR="reversed range '$tok' in CPU list '$1'"
			return 1
		fi
		if ((used < 1 || grp < 1 || used > grp)); then
			PARSE_ERR="bad stride '$tok' in CPU list '$1' (want A-B:used/group, 1 <= used <= group)"
			return 1
		fi
		for ((c = lo; c <= hi; c++)); do
			if (((c - lo) % grp < used)); then set[c]=1; fi
		done
	done
	CPUS="${!set[*]}"
}

# cpus_fmt VAR SET: VAR = SET as a normalised cpulist ("0 1 2 5" -> "0-2,5"; empty -> "").
# The set helpers return through a variable name: a $(...) fork per call is what made
# check slow on big IRQ tables.
cpus_fmt() {
	local _out='' _start=-1 _prev=-1 _c
	for _c in $2; do
		if ((_start >= 0 && _c == _prev + 1)); then
			_prev=$_c
			continue
		fi
		if ((_start >= 0)); then
			_out+=${_out:+,}$_start
			if ((_prev > _start)); then _out+=-$_prev; fi
		fi
		_start=$_c _prev=$_c
	done
	if ((_start >= 0)); then
		_out+=${_out:+,}$_start
		if ((_prev > _start)); then _out+=-$_prev; fi
	fi
	printf -v "$1" '%s' "$_out"
}

# cpus_minus VAR A B / cpus_and VAR A B: VAR = the set difference / intersection of A and B.
cpus_minus() {
	local -a _b=() _out=()
	local _c
	for _c in $3; do _b[_c]=1; done
	for _c in $2; do [[ -n ${_b[_c]:-} ]] || _out+=("$_c"); done
	printf -v "$1" '%s' "${_out[*]}"
}

cpus_and() {
	local -a _b=() _out=()
	local _c
	for _c in $3; do _b[_c]=1; done
	for _c in $2; do [[ -z ${_b[_c]:-} ]] || _out+=("$_c"); done
	printf -v "$1" '%s' "${_out[*]}"
}

# mask_to_cpus MASK: CPUS = the set of a hex CPU mask ("ff,ffffffff"); returns 1 if malformed.
mask_to_cpus() {
	local hex=${1//,/} i k v b
	local -a set=()
	CPUS=''
	hex=${hex#0x}
	[[ $hex =~ ^[0-9a-fA-F]+$ ]] || return 1
	for ((i = ${#hex} - 1, k = 0; i >= 0; i--, k++)); do
		v=$((16#${hex:i:1}))
		for ((b = 0; b < 4; b++)); do
			if (((v >> b) & 1)); then set[k * 4 + b]=1; fi
		done
	done
	CPUS="${!set[*]}"
}

# cpus_to_mask SET: MASK = SET as the kernel writes masks: hex, 32-bit groups split by commas.
cpus_to_mask() {
	local c i max=0 d
	local -a nib=()
	MASK=''
	for c in $1; do
		nib[c / 4]=$((${nib[c / 4]:-0} | 1 << (c % 4)))
		if ((c > max)); then max=$c; fi
	done
	for ((i = max / 4; i >= 0; i--)); do
		printf -v d '%x' "${nib[i]:-0}"
		MASK+=$d
		if ((i > 0 && i % 8 == 0)); then MASK+=,; fi
	done
}

# ---------------------------------------------------------------------------------------------
# Online CPUs and the shard / housekeeping split

# host_cpus: ONLINE (set, "" when unknown) and LASTCPU (last possible CPU, "" when unknown).
host_cpus() {
	local d n
	local -a set=()
	ONLINE='' LASTCPU=''
	if rd "$ROOT/sys/devices/system/cpu/possible" && [[ $RD =~ ([0-9]+)$ ]]; then
		LASTCPU=${BASH_REMATCH[1]}
	fi
	if rd "$ROOT/sys/devices/system/cpu/online" && cpulist_parse "$RD"; then
		ONLINE=$CPUS
	else
		# No online file (odd containers): count cpuN directories instead.
		for d in "$ROOT"/sys/devices/system/cpu/cpu[0-9]*; do
			n=${d##*/cpu}
			if [[ -d $d && $n =~ ^[0-9]+$ ]] && ((n < MAX_CPUS)); then set[n]=1; fi
		done
		ONLINE="${!set[*]}"
	fi
	if [[ -z $LASTCPU && -n $ONLINE ]]; then LASTCPU=${ONLINE##* }; fi
}

# ringplane_bin: RINGPLANE_BIN = the ringplane command to ask for the shard list, if any.
ringplane_bin() {
	RINGPLANE_BIN=''
	case ${RP_TUNE_RINGPLANE:-} in
	none) return 1 ;;
	'') ;;
	*)
		RINGPLANE_BIN=$RP_TUNE_RINGPLANE
		return 0
		;;
	esac
	if RINGPLANE_BIN=$(command -v ringplane); then return 0; fi
	for RINGPLANE_BIN in ./build/apps/ringplane "$SCRIPT_DIR/../build/apps/ringplane"; do
		[[ -x $RINGPLANE_BIN ]] && return 0
	done
	RINGPLANE_BIN=''
	return 1
}

CPUS_OPT='' CPUS_SET=0
set_cpus() { CPUS_OPT=$1 CPUS_SET=1; }

# resolve_shards [lenient]: SHARDS (set), SHARD_SRC (where it came from) and HOUSEKEEPING
# (online CPUs that are not shards) from --cpus or the default. Dies with a clear message on a bad list.
resolve_shards() {
	local out offline a b
	SHARD_NOTE=''
	if ((CPUS_SET)); then
		cpulist_parse "$CPUS_OPT" || die "--cpus: $PARSE_ERR"
		SHARDS=$CPUS SHARD_SRC="--cpus"
	elif ringplane_bin && out=$(timeout 10 "$RINGPLANE_BIN" topo --cpulist 2>/dev/null) &&
		cpulist_parse "$out"; then
		SHARDS=$CPUS SHARD_SRC="$RINGPLANE_BIN topo --cpulist"
	else
		if [[ -n $RINGPLANE_BIN ]]; then
			SHARD_NOTE="'$RINGPLANE_BIN topo --cpulist' gave no usable list; "
		fi
		if [[ -z $ONLINE ]]; then
			# check still reports everything else; apply and cmdline need the list.
			[[ ${1:-} == lenient ]] ||
				die "cannot read the online CPUs ($ROOT/sys/devices/system/cpu/online): pass --cpus"
			SHARDS='' HOUSEKEEPING='' SHARDS_L='' HOUSEKEEPING_L=''
			SHARD_SRC="unknown: online CPU list unreadable, pass --cpus"
			return 0
		fi
		cpus_minus SHARDS "$ONLINE" 0
		SHARD_SRC="online CPUs except CPU 0"
		if [[ -z $SHARDS ]]; then
			SHARDS=$ONLINE SHARD_SRC="all online CPUs (only CPU 0 is online)"
		fi
	fi
	if [[ -n $ONLINE ]]; then
		cpus_minus offline "$SHARDS" "$ONLINE"
		cpus_fmt a "$offline"
		cpus_fmt b "$ONLINE"
		[[ -z $offline ]] || die "CPU $a is not online (online: $b)"
	fi
	cpus_minus HOUSEKEEPING "$ONLINE" "$SHARDS"
	cpus_fmt SHARDS_L "$SHARDS"
	cpus_fmt HOUSEKEEPING_L "$HOUSEKEEPING"
}
