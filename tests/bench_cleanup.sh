#!/bin/bash
# SPDX-License-Identifier: MIT
# ringplane-bench's ends that are not a clean finish, driven for real:
#   peer:   a haproxy that fails at bind (a stand-in first in PATH): its rows
#           are in the JSON's "skipped" with the reason, the JSON says
#           "complete": false, the suite goes on (the ringplane-only rows
#           against socat still measured), the note says it
#           exited on its own;
#   signal: SIGTERM and SIGINT while the relay suite's veth phase is up: the
#           bench dies of the signal within 10 s, and its namespace, veth,
#           netns lock file and temp dir are gone (root only, else 77); only
#           this bench's: found by the netns lock it holds (/proc/PID/fd)
#           and its PID in the temp dir's name; SIGINT again while the veth
#           http rows' nginx runs in the namespace (when nginx and wrk are
#           installed): no process of that namespace is left either; and
#           again while its `ip netns
#           add` runs (a slow stand-in ip first in PATH): the signal is not
#           lost and no namespace is added after the bench is gone.
#   storm:  SIGINT at a random moment of the zc suite's file_copy rows (each
#           side a child of the bench; cp a stand-in that sleeps 5 s), to
#           the bench or (as a terminal's ^C) to its process group, STORM_RUNS
#           times (default 8): the bench dies of it within 10 s, and 1 s later
#           no process of it (found by a tag in its environment) and no temp
#           dir of it is left.
#   threads: every thread of the bench but the main one has SIGINT and
#           SIGTERM blocked (SigBlk in /proc/PID/task/TID/status), sampled
#           through the zc suite's loopback rows (a reader thread, the
#           engine's shard), so only the main thread takes them.
# usage: bench_cleanup.sh BENCH [peer|signal|storm|threads]...
set -u
B=$1; shift
[ -x "$B" ] || { echo "no $B"; exit 1; }
T=$(mktemp -d /tmp/rp-bench-cleanup.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0 ran=0
bad() { echo "FAIL: $*"; fail=1; }

peer() {
	if ! command -v sockperf > /dev/null || ! command -v socat > /dev/null; then
		echo "peer: needs sockperf and socat (its rows against socat)"; return 77
	fi
	mkdir -p "$T/bin"
	cat > "$T/bin/haproxy" <<'EOS'
#!/bin/sh
case "$1" in -v|-vv) echo "HAProxy version 2.6.12 (stand-in that cannot bind)"; exit 0;; esac
echo "[ALERT]    (1) : Starting proxy relay: cannot bind socket (Address already in use)" >&2
exit 1
EOS
	chmod +x "$T/bin/haproxy"
	PATH="$T/bin:$PATH" RP_BENCH_RELAY_ROWS=latency \
		RP_BENCH_RELAY_SKIP=splice,copy,uring,nospin,haproxy-splice \
		timeout 120 "$B" relay --quick --json "$T/r.json" > "$T/peer.out" 2>&1
	echo "peer: bench rc=$?"
	grep -E 'skipped|exited|json:' "$T/peer.out"
	python3 - "$T/r.json" <<'EOP' || bad "peer: JSON (above)"
import json, sys
j = json.load(open(sys.argv[1]))
sk = [s for s in j.get("skipped", []) if s.get("suite") == "relay" and "via haproxy" in s.get("what", "")]
assert sk, "no skipped row via haproxy: %r" % j.get("skipped")
assert "did not start" in sk[0]["reason"], sk[0]
assert j.get("complete") is False, "complete: %r" % j.get("complete")
names = [r["name"] for r in j["results"] if r["suite"] == "relay"]
assert any("64B vs socat" in n for n in names), "no latency rows against socat: %r" % names
print("peer: JSON ok:", len(names), "rows,", len(j["skipped"]), "skipped")
EOP
	grep -q 'haproxy: exited on its own with status 1' "$T/peer.out" ||
		bad "peer: no 'exited on its own' note"
	if grep -q 'haproxy: exited with status 1 after SIGTERM' "$T/peer.out"; then
		bad "peer: the note blames SIGTERM"
	fi
}

idx_of() { # PID: the index of the netns lock the bench holds (its names), or nothing
	local l
	for l in /proc/"$1"/fd/*; do
		l=$(readlink "$l" 2>/dev/null) || continue
		[[ $l =~ ^/run/ringplane-bench/netns-([0-9]+)\.lock$ ]] && { echo "${BASH_REMATCH[1]}"; return; }
	done
}

ours() { # PID IDX: that bench's veth, namespace, lock file, temp dirs, one a line
	local f
	for f in /sys/class/net/rprl0-"$2" /var/run/netns/rprlbench-"$2" \
		/run/ringplane-bench/netns-"$2".lock /tmp/ringplane-bench-relay-"$1".*; do
		[ -e "$f" ] && echo "$f"
	done
	return 0
}

in_ns() { # IDX: the pids of processes inside that bench's namespace, one a line
	local p ino
	ino=$(stat -L -c %i /var/run/netns/rprlbench-"$1" 2>/dev/null) || return 0
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p"/ns/net 2>/dev/null)" = "net:[$ino]" ] && echo "${p#/proc/}"
	done
	return 0
}

signal_one() { # SIG [veth-http] (a background job of a script ignores SIGINT: not ours)
	local sig=$1 rows=${2:-veth} after idx="" pid rc _ what=$1 inside="" ino="" left="" p nginx_in=""
	[ "$rows" = veth ] || what="$sig ($rows)"
	echo '{"previous": "results"}' > "$T/keep.json" # an interrupted run leaves it as it was
	RP_BENCH_RELAY_ROWS=$rows RP_BENCH_RELAY_BULK_SECS=30 RP_BENCH_RELAY_BULK_STREAMS=1 \
		RP_BENCH_RELAY_HTTP_SECS=30 \
		env --default-signal=INT,TERM "$B" relay --quick --json "$T/keep.json" > "$T/sig.out" 2>&1 &
	pid=$!
	for _ in $(seq 1 300); do # up to 30 s for its veth pair (and nginx in it) to show up
		[ -n "$idx" ] || idx=$(idx_of $pid)
		if [ -n "$idx" ] && [ -e /sys/class/net/rprl0-"$idx" ]; then
			[ "$rows" = veth ] && break
			# veth-http: once nginx runs in the namespace
			ino=$(stat -L -c %i /var/run/netns/rprlbench-"$idx" 2>/dev/null)
			inside=$(in_ns "$idx" | tr "\n" " ")
			# nginx itself, not an ip(8) set-up command passing through
			for p in $inside; do
				[ "$(cat /proc/"$p"/comm 2>/dev/null)" = nginx ] && nginx_in=1 && break 2
			done
		fi
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done
	if [ -z "$idx" ] || [ ! -e /sys/class/net/rprl0-"$idx" ] ||
		{ [ "$rows" != veth ] && [ -z "$nginx_in" ]; }; then
		kill -KILL $pid 2>/dev/null; wait $pid
		bad "$what: no veth pair (or nothing in it) came up in 30 s"; cat "$T/sig.out"; return
	fi
	echo "$what: bench $pid up: $(ours $pid "$idx" | tr "\n" " ")${inside:+processes in its namespace: $inside}"
	# at once: the rest of the ip(8) setup may still be running
	kill -"$sig" $pid
	for _ in $(seq 1 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
	if kill -0 $pid 2>/dev/null; then
		kill -KILL $pid; bad "$sig: bench alive 10 s after SIG$sig"
	fi
	wait $pid; rc=$?
	# whatever the namespace held (nginx's master and workers, forked
	# after we looked or not): gone within 5 s (a zombie on its way to being
	# reaped has no ns link: not counted); the pair, lock and dirs after that
	for _ in $(seq 1 50); do
		left=""
		if [ -n "$ino" ]; then
			for p in /proc/[0-9]*; do
				[ "$(readlink "$p"/ns/net 2>/dev/null)" = "net:[$ino]" ] &&
					left="$left ${p#/proc/}"
			done
		fi
		[ -z "$left" ] && break
		sleep 0.1
	done
	sleep 0.5
	after=$(ours $pid "$idx" | tr "\n" " ")
	for p in $left; do
		after="$after process $p ($(tr "\0" " " < /proc/"$p"/cmdline 2>/dev/null)) "
	done
	echo "$what: bench rc=$rc; left behind: ${after:-nothing}"
	[ $rc -eq $((128 + $(kill -l "$sig"))) ] || bad "$what: rc $rc, not 128+SIG$sig"
	[ -z "$after" ] || bad "$what: left behind: $after"
	grep -qx '{"previous": "results"}' "$T/keep.json" || bad "$what: the previous --json file changed"
	[ ! -e "$T/keep.json.tmp" ] || bad "$what: keep.json.tmp left behind"
}

signal_ip() { # SIG while an `ip netns add` of the bench is running (a slow stand-in ip)
	local sig=$1 after idx="" pid rc _ ip
	ip=$(command -v ip)
	mkdir -p "$T/ipbin"; rm -f "$T/ip-slow"
	cat > "$T/ipbin/ip" <<EOS
#!/bin/sh
case "\$*" in "netns add "*) : > "$T/ip-slow"; sleep 3;; esac
exec "$ip" "\$@"
EOS
	chmod +x "$T/ipbin/ip"
	PATH="$T/ipbin:$PATH" RP_BENCH_RELAY_ROWS=veth RP_BENCH_RELAY_BULK_SECS=30 \
		RP_BENCH_RELAY_BULK_STREAMS=1 \
		env --default-signal=INT,TERM "$B" relay --quick > "$T/sig.out" 2>&1 &
	pid=$!
	for _ in $(seq 1 300); do # up to 30 s for its `ip netns add` to start
		[ -e "$T/ip-slow" ] && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done
	idx=$(idx_of $pid)
	if [ ! -e "$T/ip-slow" ] || [ -z "$idx" ]; then
		kill -KILL $pid 2>/dev/null; wait $pid
		bad "ip $sig: no ip netns add in 30 s"; cat "$T/sig.out"; return
	fi
	kill -"$sig" $pid
	for _ in $(seq 1 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
	if kill -0 $pid 2>/dev/null; then
		kill -KILL $pid; bad "ip $sig: bench alive 10 s after SIG$sig"
	fi
	wait $pid; rc=$?
	sleep 4 # past the stand-in's sleep: an orphaned ip would have run by now
	after=$(ours $pid "$idx" | tr "\n" " ")
	echo "ip $sig: bench rc=$rc; left behind: ${after:-nothing}"
	[ $rc -eq $((128 + $(kill -l "$sig"))) ] || bad "ip $sig: rc $rc, not 128+SIG$sig"
	if [ -n "$after" ]; then # a failure: remove them, not to leave them to the next run
		bad "ip $sig: left behind: $after"
		"$ip" link del rprl0-"$idx" 2>/dev/null; "$ip" netns del rprlbench-"$idx" 2>/dev/null
		rm -rf /run/ringplane-bench/netns-"$idx".lock /tmp/ringplane-bench-relay-"$pid".*
	fi
}

tagged() { # TAG: the pids of live processes with TAG in their environment
	local e
	for e in /proc/[0-9]*/environ; do
		grep -qzx "RP_BENCH_CLEANUP_TAG=$1" "$e" 2>/dev/null && { e=${e#/proc/}; echo "${e%/environ}"; }
	done
	return 0
}

storm() {
	local runs=${STORM_RUNS:-8} i p pid rc ms to dir left leaked=0 hit=0 _
	mkdir -p "$T/cpbin"
	cat > "$T/cpbin/cp" <<'EOS'
#!/bin/sh
sleep 5
exec /bin/cp "$@"
EOS
	chmod +x "$T/cpbin/cp"
	for i in $(seq 1 "$runs"); do
		to=pid; [ $((i % 2)) -eq 0 ] && to=group
		PATH="$T/cpbin:$PATH" RP_BENCH_CLEANUP_TAG="$T-$i" RP_BENCH_ZC_ROWS=copy \
			RP_BENCH_ZC_COPY_MB=16 \
			setsid env --default-signal=INT,TERM "$B" zc --quick > "$T/storm.out" 2>&1 &
		pid=$!
		dir=""
		for _ in $(seq 1 300); do # up to 30 s for its temp dir (the copy rows) to show up
			dir=$(compgen -G "/tmp/ringplane-bench-zc-$pid.*")
			[ -n "$dir" ] && break
			kill -0 $pid 2>/dev/null || break
			sleep 0.1
		done
		if [ -z "$dir" ]; then
			kill -KILL $pid 2>/dev/null; wait $pid
			bad "storm $i: no temp dir in 30 s"; cat "$T/storm.out"; return
		fi
		ms=$((RANDOM % 3000)) # the cp side sleeps 5 s: most land in a child
		sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
		if [ $to = group ]; then kill -INT -- -$pid 2>/dev/null; else kill -INT $pid 2>/dev/null; fi
		for _ in $(seq 1 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
		if kill -0 $pid 2>/dev/null; then
			kill -KILL $pid; bad "storm $i: bench alive 10 s after SIGINT"
		fi
		wait $pid; rc=$?
		sleep 1
		left="$(tagged "$T-$i" | tr "\n" " ")$(compgen -G "/tmp/ringplane-bench-zc-$pid.*")"
		echo "storm $i: SIGINT to the $to after $ms ms: rc=$rc; left behind: ${left:-nothing}"
		[ $rc -eq 0 ] || hit=$((hit + 1))
		[ $rc -eq 0 ] || [ $rc -eq 130 ] || bad "storm $i: rc $rc, not 0 (done first) or 130"
		if [ -n "$left" ]; then # remove them, not to leave them to the next run
			leaked=$((leaked + 1))
			bad "storm $i: left behind: $left"
			for p in $(tagged "$T-$i"); do kill -KILL "$p" 2>/dev/null; done
			rm -rf /tmp/ringplane-bench-zc-"$pid".*
		fi
	done
	echo "storm: $hit of $runs runs stopped by the SIGINT, $leaked left something behind"
}

threads() {
	local pid tid blk n=0 seen="" _
	RP_BENCH_ZC_ROWS=loopback RP_BENCH_ZC_SIZES=64KB RP_BENCH_ZC_MB=64 \
		"$B" zc --quick > "$T/threads.out" 2>&1 &
	pid=$!
	for _ in $(seq 1 600); do # up to 30 s of samples, every 50 ms
		kill -0 $pid 2>/dev/null || break
		for tid in /proc/"$pid"/task/*; do
			tid=${tid##*/}
			[ "$tid" = $pid ] && continue
			blk=$(awk '/^SigBlk:/ { print $2 }' /proc/$pid/task/"$tid"/status 2>/dev/null) || continue
			[ -n "$blk" ] || continue
			n=$((n + 1))
			case " $seen " in *" $tid "*) ;; *) seen="$seen $tid";; esac
			# SIGINT is bit 1 (0x2), SIGTERM bit 14 (0x4000)
			if [ $((0x$blk & 0x4002)) -ne $((0x4002)) ]; then
				bad "threads: $(cat /proc/$pid/task/"$tid"/comm 2>/dev/null) ($tid) has SigBlk $blk: SIGINT or SIGTERM not blocked"
				kill -KILL $pid; wait $pid; return
			fi
		done
		sleep 0.05
	done
	if kill -0 $pid 2>/dev/null; then
		kill -KILL $pid; bad "threads: the zc run still going after 30 s"
	fi
	wait $pid || { bad "threads: the zc run failed"; tail -5 "$T/threads.out"; }
	echo "threads: $n samples of$(echo "$seen" | wc -w | xargs printf ' %s') threads besides the main one, INT and TERM blocked in all"
	[ $n -gt 0 ] || bad "threads: no thread but the main one was ever seen"
}

signal() {
	if [ "$(id -u)" != 0 ] || ! command -v ip > /dev/null || ! command -v iperf3 > /dev/null; then
		echo "signal: needs root, ip and iperf3"; return 77
	fi
	signal_one TERM
	signal_one INT
	# with nginx inside the namespace (the veth small-message rows)
	command -v nginx > /dev/null && command -v wrk > /dev/null && signal_one INT veth-http
	signal_ip TERM
	signal_ip INT
}

for what in "${@:-peer signal storm threads}"; do
	for w in $what; do
		if ! declare -F "$w" > /dev/null; then
			bad "no case '$w'"; continue
		fi
		"$w"; r=$?
		[ $r -eq 77 ] || ran=1
	done
done
[ $fail -eq 0 ] || exit 1
[ $ran -eq 1 ] || exit 77
echo PASS
