#!/usr/bin/env bats
# The shipped files: the sysctl.d file, the systemd unit template, help output.

bats_require_minimum_version 1.5.0
load helpers

@test "sysctl.d: every setting has a comment right above it saying why" {
	local prev='' line n=0
	while IFS= read -r line; do
		if [[ $line =~ ^[a-z] ]]; then
			[[ $prev == '#'* ]] || { echo "no comment above: $line"; false; }
			[[ $line =~ ^[a-z0-9_.]+\ =\ [0-9]+(\ [0-9]+)*$ ]] || { echo "bad line: $line"; false; }
			n=$((n + 1))
		fi
		prev=$line
	done <"$CONF"
	[ "$n" -ge 10 ]
}

@test "sysctl.d: covers buffers, autotuning, optmem, backlogs and busy polling" {
	local k
	for k in net.core.rmem_max net.core.wmem_max net.ipv4.tcp_rmem net.ipv4.tcp_wmem \
		net.core.optmem_max net.core.somaxconn net.ipv4.tcp_max_syn_backlog \
		net.core.busy_poll net.core.busy_read; do
		grep -q "^$k = " "$CONF" || { echo "missing $k"; false; }
	done
}

@test "systemd: ringplane@.service passes systemd-analyze verify" {
	command -v systemd-analyze >/dev/null || skip "systemd-analyze not installed"
	local unit="$BATS_TEST_DIRNAME/../systemd/ringplane@.service" d="$BATS_TEST_TMPDIR/units"
	mkdir -p "$d"
	# verify wants an instance and an existing binary; the unit's own keys are what we test.
	sed 's#^ExecStart=/usr/local/bin/ringplane#ExecStart=/bin/true#' "$unit" >"$d/ringplane@test.service"
	run systemd-analyze verify "$d/ringplane@test.service"
	[ "$status" -eq 0 ]
	[ -z "$output" ] || { echo "$output"; false; } # unknown keys and bad values only warn
}

@test "systemd: the unit sets what ringplane needs" {
	local unit="$BATS_TEST_DIRNAME/../systemd/ringplane@.service" k
	# shellcheck disable=SC2016 # literal unit lines
	for k in 'EnvironmentFile=/etc/ringplane/%i.env' 'ExecStart=/usr/local/bin/ringplane $RP_ARGS' \
		'ExecReload=/bin/kill -USR1 $MAINPID' 'Restart=on-failure' 'LimitMEMLOCK=infinity' \
		'LimitNOFILE=1048576' 'CPUAffinity=1-1023'; do
		grep -qxF "$k" "$unit" || { echo "missing: $k"; false; }
	done
}

# Started by the example.env test; stopped here even when the test fails.
teardown() {
	if [[ -n ${SERVER_PID:-} ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
		kill -KILL "$SERVER_PID"
		wait "$SERVER_PID" 2>/dev/null || true
	fi
}

# wait_for FILE TEXT: up to 30 s (a loaded 2-CPU host starts 6 shards slowly) for TEXT to
# show up in FILE while the server runs.
wait_for() {
	local i
	for ((i = 0; i < 300; i++)); do
		grep -qF -- "$2" "$1" && return 0
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$SERVER_PID" 2>/dev/null; then
		echo "no '$2' in $1 after 30 s:"
	else
		local rc=0
		wait "$SERVER_PID" || rc=$?
		echo "no '$2' in $1; the server exited with status $rc:"
	fi
	cat "$1"
	return 1
}

# serve_cycle BIN ARGS: runs `BIN ARGS` (split on blanks, as systemd splits an unbraced
# $RP_ARGS) on a free loopback port, as the unit would: it must listen, print per-shard
# counters on SIGUSR1 (ExecReload) and still run, then exit 0 on SIGTERM (KillSignal).
serve_cycle() {
	local bin=$1 i rc=0 out="$BATS_TEST_TMPDIR/server.out"
	local -a argv=()
	read -ra argv <<<"$2"
	for i in "${!argv[@]}"; do
		if [[ ${argv[i]} == --listen ]]; then argv[i + 1]=127.0.0.1:0; fi
		# the example's document root is the host's; serve one of ours
		if [[ ${argv[i]} == --root ]]; then argv[i + 1]=$BATS_TEST_TMPDIR; fi
	done
	# Truncated here, not by the child's redirection, which may run after wait_for has read the
	# previous server's "listening on" (and a SIGUSR1 before the mask is set kills it).
	: >"$out"
	"$bin" "${argv[@]}" >>"$out" 2>&1 3>&- & # bats waits for whoever holds fd 3
	SERVER_PID=$!
	wait_for "$out" "listening on 127.0.0.1:"
	kill -USR1 "$SERVER_PID"
	wait_for "$out" "shard 0: "
	kill -0 "$SERVER_PID"
	kill -TERM "$SERVER_PID"
	for ((i = 0; i < 300; i++)); do
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	! kill -0 "$SERVER_PID" 2>/dev/null || { echo "$2: still running 30 s after SIGTERM"; false; }
	wait "$SERVER_PID" || rc=$?
	SERVER_PID=''
	[ "$rc" -eq 0 ] || { echo "$2: exit status $rc"; cat "$out"; false; }
}

@test "systemd: example.env's RP_ARGS run with this build's ringplane: listen, reload, stop" {
	local bin=${RP_TUNE_RINGPLANE:-} line args cmds n=0
	local env="$BATS_TEST_DIRNAME/../systemd/example.env" text
	text=$(<"$env")
	[[ -n $bin && $bin != none && -x $bin ]] || skip "no ringplane binary (RP_TUNE_RINGPLANE=${bin:-unset})"
	cmds=$("$bin" --help 2>&1 || true)
	while IFS= read -r line; do
		[[ $line =~ ^(#\ )?RP_ARGS=(.*)$ ]] || continue
		args=${BASH_REMATCH[2]}
		if [[ -z ${BASH_REMATCH[1]} ]]; then
			# The live line must be a command this build has.
			[[ $cmds == *$'\n  '"${args%% *}"' '* ]] || { echo "not a ringplane command: $args"; false; }
		elif [[ $cmds != *$'\n  '"${args%% *}"' '* ]]; then
			# A server still to come: the file must say so.
			[[ $text == *"\`ringplane ${args%% *}\` is not in this build yet"* ]] ||
				{ echo "example for a command this build lacks, not marked as such: $args"; false; }
			continue
		fi
		serve_cycle "$bin" "$args"
		n=$((n + 1))
	done <<<"$text"
	[ "$n" -ge 1 ]
}

@test "help: usage lists every command; no command is a usage error" {
	run "$TUNE" --help
	[ "$status" -eq 0 ]
	local c
	for c in "check [--json]" "apply [--dry-run]" "revert" "cmdline [--cpus LIST]" "--write-grub"; do
		[[ $output == *"$c"* ]] || { echo "missing $c"; false; }
	done
	run "$TUNE"
	[ "$status" -eq 2 ]
}

@test "ringplane-tune finds lib/ next to its real path (a symlink works); a missing lib/ is named" {
	local d="$BATS_TEST_TMPDIR"
	mkdir -p "$d/bin" "$d/alone"
	ln -s "$(readlink -f "$TUNE")" "$d/bin/ringplane-tune"
	RP_TUNE_ROOT="$d/root" RP_TUNE_RINGPLANE=none run "$d/bin/ringplane-tune" check --json --cpus 0
	[ "$status" -eq 0 ]
	[[ $output == *'"tool": "ringplane-tune"'* ]]
	cp "$TUNE" "$d/alone/ringplane-tune"
	run "$d/alone/ringplane-tune" check
	[ "$status" -eq 2 ]
	[[ $output == "ringplane-tune: missing $d/alone/lib/common.sh (lib/ must sit next to the script)" ]]
}
