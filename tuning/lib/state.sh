# shellcheck shell=bash
# ringplane-tune apply / revert: the state directory. Every write of every component goes
# through put, which saves the original bytes first; state_revert puts them back.
# Sourced by ../ringplane-tune.

N_WRITE=0 N_FAIL=0 N_SOFTFAIL=0 DRY=0

# The state is tied to the boot it was saved in ($STATE/boot_id). Values under /proc and /sys
# are boot-bound: a reboot resets them, and IRQ numbers may then belong to other devices, so
# originals saved in another boot are never restored (revert skips them, apply and
# cmdline --write-grub discard them). Files elsewhere (/etc/default/grub) persist and are
# restored whatever the boot.

# boot_id: BOOT_ID = this boot's id ("" when unreadable).
boot_id() {
	BOOT_ID=''
	if rd "$ROOT/proc/sys/kernel/random/boot_id"; then BOOT_ID=$RD; fi
}

# put_file FILE CONTENT: replaces FILE with CONTENT through a temporary file and a rename, so
# a run killed at any point leaves FILE whole, old or new, never truncated.
put_file() {
	printf '%s' "$2" >"$1.tmp"
	mv -f -- "$1.tmp" "$1"
}

# put_list FILE LINE...: put_file with the LINEs, one a line (an empty FILE for none).
put_list() {
	if (($# > 1)); then put_file "$1" "$(printf '%s\n' "${@:2}")"$'\n'; else put_file "$1" ''; fi
}

boot_bound() { [[ $1 == /proc/* || $1 == /sys/* ]]; }

# state_stale: true when the state was saved in another boot than this one (SAVED_BOOT and
# BOOT_ID say which). A state without a boot id is stale unless this boot's id is unreadable
# too: nothing proves it is this boot's.
state_stale() {
	SAVED_BOOT=''
	if [[ -f $STATE/boot_id ]]; then IFS= read -r SAVED_BOOT <"$STATE/boot_id" || true; fi
	boot_id
	[[ $SAVED_BOOT != "$BOOT_ID" ]]
}

# state_paths: PATHS = the paths in the manifest, in the order they were saved.
state_paths() {
	local line
	PATHS=()
	[[ -f $STATE/changes ]] || return 0
	while IFS= read -r line; do
		if [[ -n $line ]]; then PATHS+=("$line"); fi
	done <"$STATE/changes"
}

# state_drop_stale: removes the boot-bound originals of a state saved in another boot; keeps
# the persistent ones. N_STALE = how many were dropped.
state_drop_stale() {
	local p
	local -a keep=()
	N_STALE=0
	state_paths
	for p in "${PATHS[@]}"; do
		if boot_bound "$p"; then
			rm -f -- "$STATE/orig$p"
			N_STALE=$((N_STALE + 1))
		else
			keep+=("$p")
		fi
	done
	put_list "$STATE/changes" "${keep[@]}"
	rm -rf -- "$STATE/orig/proc" "$STATE/orig/sys"
	rm -f -- "$STATE/irqs"
}

# stale_msg N: says why N boot-bound originals from another boot are not restored.
stale_msg() {
	say "not restoring $1 values saved in another boot (saved in boot ${SAVED_BOOT:-unknown}," \
		"this is boot ${BOOT_ID:-unknown}): the reboot reset sysctls, huge pages, governors" \
		"and IRQ affinities, and IRQ numbers may now belong to other devices" >&2
}

# state_lock: takes an exclusive flock on $STATE/lock (creating $STATE), held until the
# process exits, so two apply/revert/cmdline --write-grub runs never interleave their saves: a
# second apply would otherwise save a value the first already tuned as its "original". A run
# that finds the lock taken says so and waits (RP_TUNE_LOCK_WAIT seconds, default 300), then
# gives up with exit 1. revert removes the state directory, lock file included, so a lock won
# on a file that is no longer $STATE/lock guards nothing: take it again on the new file.
# The lock is per state directory, not per root: two runs with different RP_TUNE_STATE on the
# same root do not exclude each other (and each would save the other's values as originals);
# one root, one state directory. Bash cannot set FD_CLOEXEC, so the external commands this
# process runs (mv, flock, ...) inherit LOCK_FD; that is harmless: none outlives the command
# that runs it (nothing here is started in the background), so the lock is never held past the
# process's exit.
state_lock() {
	local tries wait=${RP_TUNE_LOCK_WAIT:-300}
	[[ $wait =~ ^[0-9]+$ ]] || die "RP_TUNE_LOCK_WAIT must be a number of seconds, got '$wait'"
	for ((tries = 0; tries < 100; tries++)); do
		mkdir -p "$STATE"
		exec {LOCK_FD}>>"$STATE/lock"
		if ! flock -n "$LOCK_FD"; then
			say "waiting up to ${wait}s for another $PROG run (lock $STATE/lock)" >&2
			if ! flock -w "$wait" "$LOCK_FD"; then
				say "$PROG: another run still holds $STATE/lock after ${wait}s; nothing changed" >&2
				exit 1
			fi
		fi
		if [[ /proc/self/fd/$LOCK_FD -ef $STATE/lock ]]; then return 0; fi
		exec {LOCK_FD}>&-
	done
	die "could not lock $STATE/lock (it kept being removed)"
}

# state_init: creates the state directory; a state from another boot loses its boot-bound
# originals first (with --dry-run, only says it would).
state_init() {
	local p n=0
	if ((DRY)); then
		[[ -s $STATE/changes ]] && state_stale || return 0
		state_paths
		for p in "${PATHS[@]}"; do
			if boot_bound "$p"; then n=$((n + 1)); fi
		done
		if ((n)); then
			stale_msg "$n"
			say "apply would discard them and save this boot's originals" >&2
		fi
		return 0
	fi
	[[ $STATE == /* ]] || die "state directory must be an absolute path, got '$STATE'"
	state_lock
	# Originals without a manifest are what a revert killed in state_cleanup left behind
	# (it removes the manifest first): their values are already restored.
	if [[ ! -e $STATE/changes && (-d $STATE/orig || -d $STATE/absent) ]]; then
		rm -rf -- "$STATE/orig" "$STATE/absent" "$STATE/irqs"
	fi
	mkdir -p "$STATE/orig"
	if [[ ! -f $STATE/root ]]; then put_file "$STATE/root" "$ROOT"$'\n'; fi
	touch "$STATE/changes"
	if state_stale; then
		state_drop_stale
		if ((N_STALE)); then
			stale_msg "$N_STALE"
			say "discarded them; this run saves this boot's originals" >&2
		fi
		put_file "$STATE/boot_id" "$BOOT_ID"$'\n'
	fi
	state_paths
	LISTED=()
	for p in "${PATHS[@]}"; do LISTED[$p]=1; done
}

# LISTED[path] = 1 for every path in the manifest (state_init loads it).
declare -A LISTED=()

# save_orig PATH: copies $ROOT/PATH to the state dir unless the manifest already lists it (so
# a second apply keeps the first original), then appends PATH to the manifest. SAVED_NEW=1 if
# this call made the copy.
# Crash consistency, with put writing $ROOT/PATH only after this returns: a listed path
# always has its whole copy (the copy is written before the one-line append), and a copy
# that is not listed belongs to a run killed before it wrote PATH, so PATH still holds its
# original and the copy is made again from it.
save_orig() {
	local path=$1 copy=$STATE/orig$1
	SAVED_NEW=0
	[[ -z ${LISTED[$path]-} ]] || return 0
	[[ -d ${copy%/*} ]] || mkdir -p "${copy%/*}"
	slurp "$ROOT$path" || return 1
	printf '%s' "$SLURP" >"$copy"
	printf '%s\n' "$path" >>"$STATE/changes"
	LISTED[$path]=1
	SAVED_NEW=1
}

# forget_orig PATH: undoes the save_orig of this run after the write failed.
forget_orig() {
	local path=$1 line
	local -a keep=()
	while IFS= read -r line; do
		[[ $line == "$path" ]] || keep+=("$line")
	done <"$STATE/changes"
	# The manifest first: a copy nobody lists is harmless (see save_orig), a listed path
	# without its copy is not.
	put_list "$STATE/changes" "${keep[@]}"
	unset 'LISTED[$path]'
	rm -f -- "$STATE/orig$path" "$STATE/absent$path"
}

# put_failed PATH: after a failed write of PATH (its stderr in $STATE/err), sets PUT_WHY to
# the error's last words and forgets an original saved only for this write; returns 1.
put_failed() {
	local err
	slurp "$STATE/err" || true
	err=${SLURP%$'\n'}
	err=${err##*$'\n'}
	PUT_WHY=${err##*: }
	[[ -n $PUT_WHY ]] || PUT_WHY="write failed"
	if ((SAVED_NEW)); then forget_orig "$1"; fi
	return 1
}

# put PATH VALUE CURRENT: writes VALUE to $ROOT/PATH after saving the original; --dry-run only
# prints (and, where the write is bound to fail, says so: root, or a fake tree, and a file
# the process may not write). Returns 1 when the write fails (the original is then not kept),
# with PUT_WHY = the reason (the shell's error: "Permission denied", "Read-only file system",
# "Invalid argument"...), which every caller's FAILED line prints.
PUT_WHY=''
put() {
	local path=$1 val=$2 cur=$3
	PUT_WHY=''
	if ((DRY)); then
		if [[ ($EUID -eq 0 || -n $ROOT) && ! -w $ROOT$path ]]; then
			say "would fail: $ROOT$path is not writable (read-only file system or no permission)" >&2
			N_FAIL=$((N_FAIL + 1))
			return 0
		fi
		say "would write '$val' to $ROOT$path (now '$cur')"
		N_WRITE=$((N_WRITE + 1))
		return 0
	fi
	if ! save_orig "$path"; then
		PUT_WHY="cannot read its current value to save it"
		return 1
	fi
	if { printf '%s\n' "$val" >"$ROOT$path"; } 2>"$STATE/err"; then
		say "wrote '$val' to $ROOT$path (was '$cur')"
		N_WRITE=$((N_WRITE + 1))
		return 0
	fi
	put_failed "$path"
}

# put_new PATH CONTENT: replaces the persistent file $ROOT/PATH (a config file this script
# owns, which may not exist yet) with CONTENT, through a temporary file and a rename. The
# original is saved as put saves one; a file that did not exist leaves the marker
# $STATE/absent/PATH instead, and revert removes the file. Returns 1 with PUT_WHY on failure.
put_new() {
	local path=$1 val=$2 dir=${1%/*} d now=absent
	PUT_WHY=''
	if [[ -e $ROOT$path ]]; then now="other text"; fi
	# A symlink is never replaced (mv -f would replace the link, not write through it): the
	# caller leaves such a path alone (lib/rps.sh: an operator's masked rule).
	if [[ -L $ROOT$path ]]; then
		PUT_WHY="$ROOT$path is a symlink (operator-managed): left alone"
		if ((DRY)); then
			say "would fail: $PUT_WHY" >&2
			N_FAIL=$((N_FAIL + 1))
			return 0
		fi
		return 1
	fi
	if ((DRY)); then
		d=$ROOT$dir
		while [[ ! -e $d && $d == */* ]]; do d=${d%/*}; done
		if [[ ($EUID -eq 0 || -n $ROOT) && (-e $ROOT$path && ! -w $ROOT$path || ! -w ${d:-/}) ]]; then
			say "would fail: $ROOT$path is not writable (read-only file system or no permission)" >&2
			N_FAIL=$((N_FAIL + 1))
			return 0
		fi
		d=${val%$'\n'}
		say "would write $ROOT$path (now $now): ${d##*$'\n'}"
		N_WRITE=$((N_WRITE + 1))
		return 0
	fi
	SAVED_NEW=0
	if [[ -z ${LISTED[$path]-} ]]; then
		if [[ -e $ROOT$path ]]; then
			if ! save_orig "$path"; then
				PUT_WHY="cannot read its current value to save it"
				return 1
			fi
		else
			# The marker before the manifest line, as save_orig's copy (crash consistency).
			mkdir -p "$STATE/absent$dir"
			: >"$STATE/absent$path"
			printf '%s\n' "$path" >>"$STATE/changes"
			LISTED[$path]=1
			SAVED_NEW=1
		fi
	fi
	if { mkdir -p "$ROOT$dir" && printf '%s' "$val" >"$ROOT$path.tmp" && mv -f -- "$ROOT$path.tmp" "$ROOT$path"; } 2>"$STATE/err"; then
		say "wrote $ROOT$path (was $now)"
		N_WRITE=$((N_WRITE + 1))
		return 0
	fi
	rm -f -- "$ROOT$path.tmp" 2>/dev/null || true
	put_failed "$path"
}

# state_cleanup: removes the state, the manifest first (see state_init).
state_cleanup() {
	rm -f -- "$STATE/changes"
	rm -rf -- "$STATE/orig" "$STATE/absent"
	rm -f -- "$STATE/changes.tmp" "$STATE/root.tmp" "$STATE/boot_id.tmp" "$STATE/root" "$STATE/boot_id" "$STATE/irqs" "$STATE/err" "$STATE/lock"
	rmdir -- "$STATE" 2>/dev/null || true
}

# state_revert: restores every saved original, newest first, then removes the state; with
# DRY only says what it would restore. Originals from another boot: see state_init.
state_revert() {
	local path line saved_root='' p skipped=0 vgone=0 stale=0
	local -a paths=()
	# revert --dry-run only reads; a real one waits for a running apply (state_lock).
	if ((!DRY)) && [[ -d $STATE ]]; then state_lock; fi
	if [[ ! -s $STATE/changes ]]; then
		say "nothing to revert (no saved values in $STATE)"
		if ((!DRY)) && [[ -d $STATE ]]; then state_cleanup; fi
		return 0
	fi
	if [[ -f $STATE/root ]]; then IFS= read -r saved_root <"$STATE/root" || true; fi
	[[ $saved_root == "$ROOT" ]] ||
		die "$STATE was saved for root '${saved_root:-/}', not '${ROOT:-/}': refusing to restore"
	if [[ -z $ROOT && $DRY == 0 && $EUID -ne 0 ]]; then die "revert writes /proc and /sys: run it as root"; fi
	state_paths
	if state_stale; then
		# Only files that outlive a reboot are restored (see state_init).
		for p in "${PATHS[@]}"; do
			if boot_bound "$p"; then stale=$((stale + 1)); else paths+=("$p"); fi
		done
		if ((stale)); then stale_msg "$stale"; fi
		if ((!DRY && stale)); then state_drop_stale; fi
	else
		paths=("${PATHS[@]}")
	fi
	irq_saved_load
	local i fail=0 shown
	for ((i = ${#paths[@]} - 1; i >= 0; i--)); do
		path=${paths[i]}
		# A file apply created (put_new): revert removes it.
		if [[ -f $STATE/absent$path ]]; then
			if [[ -L $ROOT$path || (-f $ROOT$path && ! -s $ROOT$path) ]]; then
				# Masked by the operator since (a symlink or an empty file): theirs now.
				say "left $ROOT$path alone (a symlink or empty file: operator-managed)"
				continue
			fi
			if ((DRY)); then
				say "would remove $ROOT$path (apply created it)"
			elif rm -f -- "$ROOT$path" 2>/dev/null; then
				say "removed $ROOT$path (apply created it)"
			else
				say "FAILED to remove $ROOT$path" >&2
				fail=$((fail + 1))
			fi
			continue
		fi
		if [[ ! -f $STATE/orig$path ]]; then
			say "FAILED: no saved copy of $path" >&2
			fail=$((fail + 1))
			continue
		fi
		# IRQ affinities go to the IRQ of the same name (irq.sh); other paths to themselves.
		if ! irq_target "$path"; then
			say "not restored: $SKIP_WHY (its affinity went with it)"
			skipped=$((skipped + 1))
			continue
		fi
		if ! rps_target "$path"; then
			say "not restored: $SKIP_WHY (its rps_cpus went with it)"
			vgone=$((vgone + 1))
			continue
		fi
		if [[ $TARGET != "$path" ]]; then say "IRQ '${IRQ_SAVED[$path]}' moved from $path to $TARGET"; fi
		slurp "$STATE/orig$path" || true
		shown=${SLURP%$'\n'}
		if [[ $shown == *$'\n'* ]]; then shown="saved copy of ${path##*/}"; fi
		if ((DRY)); then
			say "would restore '$shown' to $ROOT$TARGET"
		elif { printf '%s' "$SLURP" >"$ROOT$TARGET"; } 2>/dev/null; then
			say "restored '$shown' to $ROOT$TARGET"
			if [[ $path == */etc/default/grub ]]; then say "run update-grub (or grub2-mkconfig) and reboot"; fi
		else
			say "FAILED to restore $ROOT$TARGET" >&2
			fail=$((fail + 1))
		fi
	done
	((DRY)) && return 0
	if ((fail)); then
		say "$fail values not restored; state kept in $STATE" >&2
		return 1
	fi
	state_cleanup
	line="reverted $((${#paths[@]} - skipped - vgone)) values"
	if ((skipped)); then line+=", $skipped IRQs gone"; fi
	if ((vgone)); then line+=", $vgone veth queues gone"; fi
	say "$line"
}
