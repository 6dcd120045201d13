#!/usr/bin/env bash
# The per-shard pool of echo, relay and serve: --pool-mb's range (exit 2,
# one line naming the flag), each command at its smallest pool serving
# real clients on 127.0.0.1 with every byte checked, a pool that fills
# (connections closed at accept and counted), and the start-up check
# against the memory limit of a memory cgroup this test makes and removes
# (v1: a child of its own group; v2: a sibling, see cg_child): a pool that
# cannot fit is refused with one line and exit 1, not OOM-killed while it
# is populated (exit 137 before the check existed). Skipped, with a note,
# where no such group can be made; a case whose process cannot be moved
# into it (cgroup.procs) prints SKIP, not FAIL.
# Usage: test_pool.sh PATH/TO/ringplane
set -u
RP=$1
# the embedded python's shared helpers (apps/testlib.py)
HERE=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in the source tree
fails=0
T=$(mktemp -d)
CG=
CGLIM=
PIDS=()

cleanup() {
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	if [ -n "$CG" ] && [ -d "$CG" ]; then
		for _ in $(seq 50); do rmdir "$CG" 2>/dev/null && break; sleep 0.1; done
	fi
	if [ -n "$CGPARENT_MEM" ]; then
		echo -memory 2>/dev/null >"$CGPARENT_MEM/cgroup.subtree_control"
	fi
	rm -rf "$T"
}
trap cleanup EXIT

check() { # name, then the command; passes when it exits 0, skipped at 77
	local name=$1 rc
	shift
	"$@"
	rc=$?
	if [ "$rc" -eq 0 ]; then
		echo "ok   $name"
	elif [ "$rc" -eq 77 ]; then
		echo "SKIP $name"
	else
		echo "FAIL $name"
		fails=$((fails + 1))
	fi
}

# exit 2 and one stderr line naming --pool-mb
usage_err() {
	local got
	"$@" >/dev/null 2>"$T/err"
	got=$?
	if [ "$got" -eq 2 ] && grep -q -- "--pool-mb" "$T/err" && [ "$(wc -l <"$T/err")" -eq 1 ]; then
		return 0
	fi
	echo "  exit $got, wanted 2 naming --pool-mb: $* ($(head -c 200 "$T/err"))" >&2
	return 1
}

# start "$@" in the background (stdout+stderr into $T/$name), wait up to
# 10 s for its "listening on"; PORT gets the port, PID the process
start() { # name, command...
	local name=$1
	shift
	"$@" >"$T/$name" 2>&1 &
	PID=$!
	PIDS+=("$PID")
	PORT=
	for _ in $(seq 100); do
		PORT=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$T/$name" | cut -d: -f2)
		[ -n "$PORT" ] && return 0
		kill -0 "$PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "  $name did not start: $(head -c 300 "$T/$name")" >&2
	return 1
}

stop() { # pid: SIGTERM, at most 10 s, then its exit status must be 0
	local p=$1 rc
	kill -TERM "$p"
	for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$p" 2>/dev/null && { echo "  $p ignored SIGTERM" >&2; kill -KILL "$p"; }
	wait "$p"
	rc=$?
	[ "$rc" -eq 0 ] || { echo "  exit $rc at SIGTERM" >&2; return 1; }
}

# N connections at once to 127.0.0.1:PORT, each sends SIZE random bytes
# and must get the same bytes back (echo, and the relay in front of it);
# each connection that does not is named with how it ended (EOF, reset,
# a 10 s timeout, a wrong byte) and the bytes it got back
echo_clients() { # port, n, size
	timeout 60 python3 - "$@" <<'PY'
import os, socket, sys, time
import testlib
port, n, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
T0 = time.monotonic()
conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n)]
ok, bad = 0, []
for i, s in enumerate(conns):
    data = os.urandom(size)
    got, how = testlib.echo(s, data)
    if got == data:
        ok += 1
    else:
        bad.append(f"#{i} {'a wrong byte' if not data.startswith(got) else how} at {time.monotonic() - T0:.1f} s, {len(got)} B back")
    s.close()
print(f"  {ok} of {n} connections got their {size} bytes back ({time.monotonic() - T0:.1f} s)")
for b in bad[:20]:
    print(f"  {b}")
sys.exit(0 if ok == n else 1)
PY
}

# echo_clients through the relay; when it fails, the relay's and echo's
# stats lines (SIGUSR1) too
relay_clients() { # port, n, size, relay pid, its log, echo pid, its log
	echo_clients "$1" "$2" "$3" && return 0
	kill -USR1 "$4" "$6"
	sleep 0.5
	echo "  relay: $(grep 'shard 0:' "$5" | tail -1)"
	echo "  echo: $(grep 'shard 0:' "$7" | tail -1)"
	return 1
}

# GET PATH on PORT N times over keep-alive; the body must equal FILE
get_file() { # port, path, file, n
	timeout 60 python3 - "$@" <<'PY'
import socket, sys
import testlib
port, path, want, n = int(sys.argv[1]), sys.argv[2], open(sys.argv[3], "rb").read(), int(sys.argv[4])
s = socket.create_connection(("127.0.0.1", port), timeout=10)
f = s.makefile("rb")
ok = 0
for _ in range(n):
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    status, length = testlib.head(f)
    body = f.read(length or 0)
    ok += status.startswith(b"HTTP/1.1 200") and body == want
print(f"  {ok} of {n} GETs returned the file's {len(want)} bytes")
sys.exit(0 if ok == n else 1)
PY
}

# N clients, one after another, through a relay with --accept-proxy
# --proxy-protocol v1 in front of echo, all kept open: each sends a v1
# header and 1 KB, and must get back the header the relay sent on and its
# 1 KB before the next connects; then the
# relay's stats must show every one live, none refused (conn_nomem) or
# failed after its header was accepted (start_failed)
proxy_clients() { # port, n, relay pid, its log
	timeout 60 python3 - "$@" <<'PY'
import os, socket, sys
import testlib
port, n, pid, log = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
conns, ok, bad = [], 0, []
for i in range(n):  # one after another: each relayed before the next comes
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    data = os.urandom(1024)
    s.sendall(f"PROXY TCP4 1.2.3.4 5.6.7.8 {1000 + i} 2\r\n".encode() + data)
    conns.append(s)
    want = f"PROXY TCP4 1.2.3.4 5.6.7.8 {1000 + i} 2\r\n".encode() + data
    got = b""
    try:
        while len(got) < len(want):
            b = s.recv(len(want) - len(got))
            if not b: break
            got += b
    except OSError as e:
        got += f" ({e})".encode()
    if got == want: ok += 1
    else: bad.append(f"#{i}: {len(got)} of {len(want)} B back{'' if want.startswith(got) else ', wrong'}")
st = testlib.stats(log, pid)
print(f"  {ok} of {n} clients got their header and 1 KB back, all open; relay: live {st['live']} conn_nomem {st['conn_nomem']} start_failed {st['start_failed']}")
for b in bad[:10]: print(f"  {b}")
for s in conns: s.close()
sys.exit(0 if ok == n and st["live"] == n and st["conn_nomem"] == 0 and st["start_failed"] == 0 else 1)
PY
}

# 2000 clients, 100 at a time, each a PROXY v1 header, through a relay at
# --pool-mb 24 with --accept-proxy --proxy-protocol v1 to an upstream that
# never accepts (its backlog completes the connects): at least 99% held
# (2000 in quiet runs; once 1999 and 1 conn_nomem with the host loaded:
# 24 MB leaves a thin margin at 2000, and the accept's check charges each
# unstarted connection a whole header buffer and parser), every other one
# refused at accept and counted, none failed after its header. Before the
# header buffer was given back at the relay's start (held for its life):
# 1024 held, 795 conn_nomem, 181 start_failed ENOMEM.
proxy_burst() { # relay binary
	need_fds || return
	timeout 90 python3 - "$@" <<'PY'
import socket, subprocess, sys, time
import testlib
up = socket.socket(); up.bind(("127.0.0.1", 0)); up.listen(4096)
log = sys.argv[2]
with open(log, "w") as out:
    p = subprocess.Popen([sys.argv[1], "relay", "--listen", "127.0.0.1:0", "--upstream", f"127.0.0.1:{up.getsockname()[1]}",
                          "--shards", "1", "--pool-mb", "24", "--accept-proxy", "--proxy-protocol", "v1"], stdout=out, stderr=out)
try:
    port = None
    for _ in range(100):
        t = open(log).read()
        if "listening on 127.0.0.1:" in t:
            port = int(t.split("listening on 127.0.0.1:")[1].split()[0]); break
        time.sleep(0.1)
    if port is None: sys.exit("  the relay did not start: " + open(log).read()[:300])
    N, cs = 2000, []
    for i in range(N):
        s = socket.create_connection(("127.0.0.1", port), timeout=10); cs.append(s)
        s.sendall(f"PROXY TCP4 1.2.3.4 5.6.7.8 {1 + i % 60000} 2\r\n".encode())
        if len(cs) % 100 and len(cs) < N: continue
        # a batch of 100 at once; the next once each is relayed or refused
        # (at most 10 s): the accept's check counts those not started, so
        # 2000 unstarted at once would be refused by design
        for _ in range(100):
            st = testlib.stats(log, p.pid)
            if st["live"] + st["conn_nomem"] + st["start_failed"] >= len(cs) and st["conns"] == st["live"]: break
            time.sleep(0.1)
    print(f"  {N} clients, 100 at once: live {st['live']} conn_nomem {st['conn_nomem']} start_failed {st['start_failed']}")
    ok = (st["live"] >= N * 99 // 100 and st["live"] + st["conn_nomem"] == N and
          st["start_failed"] == 0)
    for s in cs: s.close()
finally:
    p.terminate(); p.wait(10)
sys.exit(0 if ok and p.returncode == 0 else 1)
PY
}

# ---- --pool-mb's range, per command (each its own minimum) ----
for cmd in "echo:20" "relay:22" "serve:8"; do
	c=${cmd%%:*} min=${cmd##*:}
	case $c in
	echo) base=(echo --listen 127.0.0.1:0 --shards 1) ;;
	relay) base=(relay --listen 127.0.0.1:0 --upstream 127.0.0.1:9 --shards 1) ;;
	serve) base=(serve --listen 127.0.0.1:0 --root "$T" --shards 1) ;;
	esac
	for bad in 0 $((min - 1)) 65537 12x "" -5; do
		check "$c --pool-mb '$bad' exits 2 naming the flag" usage_err "$RP" "${base[@]}" --pool-mb "$bad"
	done
	check "$c --help documents --pool-mb and its minimum" \
		bash -c "'$RP' $c --help >'$T/help' && grep -q -- '--pool-mb N ' '$T/help' &&
			grep -q '$min\.\.65536 MB' '$T/help'"
done

# ---- the smallest pools, serving real clients ----
if start echo "$RP" echo --listen 127.0.0.1:0 --shards 1 --pool-mb 20; then
	E=$PID EP=$PORT
	check "echo --pool-mb 20 says its pool" grep -q "pool 20 MB" "$T/echo"
	check "echo --pool-mb 20: 200 connections x 64 KB echoed" echo_clients "$EP" 200 65536
	if start relay "$RP" relay --listen 127.0.0.1:0 --upstream "127.0.0.1:$EP" --shards 1 \
		--pool-mb 22; then
		R=$PID
		check "relay --pool-mb 22: 200 connections x 64 KB relayed" \
			relay_clients "$PORT" 200 65536 "$R" "$T/relay" "$E" "$T/echo"
		check "relay --pool-mb 22 stops cleanly" stop "$R"
	else
		check "relay --pool-mb 22 starts" false
	fi
	# --accept-proxy: at least 24 MB (a connection not started holds a
	# header buffer and a parser); the header and the early bytes go to
	# the relay from that buffer
	check "relay --accept-proxy --pool-mb 23 exits 2 naming the flag" \
		usage_err "$RP" relay --listen 127.0.0.1:0 --upstream "127.0.0.1:$EP" --accept-proxy --pool-mb 23
	if start relayp "$RP" relay --listen 127.0.0.1:0 --upstream "127.0.0.1:$EP" --shards 1 \
		--pool-mb 24 --accept-proxy --proxy-protocol v1; then
		R=$PID
		check "relay --pool-mb 24 --accept-proxy --proxy-protocol v1: 300 clients relayed, all open" \
			proxy_clients "$PORT" 300 "$R" "$T/relayp"
		check "relay --pool-mb 24 --accept-proxy stops cleanly" stop "$R"
	else
		check "relay --pool-mb 24 --accept-proxy starts" false
	fi
	check "echo --pool-mb 20 stops cleanly" stop "$E"
else
	check "echo --pool-mb 20 starts" false
fi
# a pool that fills: --sockperf's connections take 384 KB each, so a 20 MB
# pool holds a few of 30 clients at once; the rest are closed at accept and
# each counted once (conn_nomem), the server lives on and stops cleanly.
# Told by events, not by a fixed wait: the clients' closes are polled,
# with the stats line (SIGUSR1), until the server has accepted all 30
# and as many clients saw EOF (or a reset) as conn_nomem counts, or 20 s
# passed (a fixed 0.5 s missed closes a loaded host had not made yet).
# The rest must then still be open: held, not closed.
sockperf_full() { # port, pid
	timeout 60 python3 - "$1" "$2" "$T/sp" <<'PY'
import select, socket, sys, time
import testlib
port, pid, log, N = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], 30
conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(N)]
for s in conns:
    s.setblocking(False)
def ended(s):  # EOF or a reset: the server closed it
    try: return s.recv(16) == b""
    except BlockingIOError: return False
    except OSError: return True
closed, st, end = set(), None, time.monotonic() + 20
while time.monotonic() < end:
    r, _, _ = select.select([s for s in conns if s not in closed], [], [], 0.2)
    closed.update(s for s in r if ended(s))
    st = testlib.stats(log, pid)
    if "conn_nomem" not in st:
        break  # no count to wait for
    if st["conns"] == N and st["conn_nomem"] == len(closed):
        break
n = st.get("conn_nomem") if st else None
held_closed = sum(ended(s) for s in conns if s not in closed)
print(f"  {N} clients: {len(closed)} closed, conn_nomem {n if n is not None else 'none'}, "
      f"accepted {st.get('conns') if st else '?'}, {held_closed} of the held closed")
sys.exit(0 if n and n == len(closed) and st["conns"] == N and held_closed == 0 else 1)
PY
}
if start sp "$RP" echo --listen 127.0.0.1:0 --shards 1 --sockperf --pool-mb 20; then
	P=$PID
	check "echo --sockperf --pool-mb 20: a full pool closes and counts (conn_nomem)" \
		sockperf_full "$PORT" "$P"
	check "echo with its pool full stops cleanly" stop "$P"
else
	check "echo --sockperf --pool-mb 20 starts" false
fi

mkdir "$T/root"
head -c 300000 /dev/urandom >"$T/root/f.bin"
if start serve "$RP" serve --listen 127.0.0.1:0 --root "$T/root" --shards 1 --pool-mb 8; then
	S=$PID
	check "serve --pool-mb 8: 50 GETs of 300 KB, bytes checked" get_file "$PORT" /f.bin "$T/root/f.bin" 50
	check "serve --pool-mb 8 stops cleanly" stop "$S"
else
	check "serve --pool-mb 8 starts" false
fi

# ---- a pool filled by clients: relay and serve at their smallest ----
# Thousands of idle clients fill the pool; those it cannot hold are closed
# by the server and each is counted once, as the client saw it. Relay
# (copy mode, 22 MB, 5000 idle clients in front of echo): every one closed
# at accept, in conn_nomem, none after an upstream was connected (ENOMEM
# connects and starts, relays ended nomem: all 915-920 of them there, none
# in conn_nomem, before the pool's reserve at accept); 8 data connections
# opened first echo 256 KB whole or, short of pool memory, wait (since
# 7c09e15 a relay waits instead of being cut, docs/net.md "Waiting instead
# of cutting"): one still short after 10 s counts as waiting, and the
# relay's waits is then > 0; none is cut (ended nomem 0, park_full 0),
# never a wrong byte, and once the idle clients close each waiting one
# gets the rest of its 256 KB, then every one echoes 256 KB again. Serve (8 MB, 200 clients with a
# head not ended, 32 KB each, then 3000 idle): the clients closed ==
# conn_nomem + head_nomem (a head refused a head buffer), the idle ones
# among them <= conn_nomem (closed only at accept); the heads kept
# and 8 keep-alive clients then each get the whole 300 KB file: serve
# keeps room for the clients it took in (apps/cmd_serve.c, pool_room;
# before it, 31 to 63 a run were cut, in send_nomem). Both: live == the
# clients the clients see open, 0 at the end, a fresh client answered
# after, a clean stop (under ASan: no leak). How many of the relay's data
# connections get through a full pool at once, and how many wait, is
# printed, not asserted: at these pools the spans run out before the bytes
# (docs/pool.md), and it varies by run.
# the soft limit on descriptors raised to 16384 for the clients of a case
# that fills a pool; 77 (skipped, said on stderr) where the hard limit is
# lower
need_fds() {
	local lim
	lim=$(ulimit -Hn)
	[ "$lim" = unlimited ] || [ "$lim" -ge 16384 ] || {
		echo "  needs 16384 descriptors, the hard limit is $lim" >&2
		return 77
	}
	ulimit -n 16384 2>/dev/null
	return 0
}
pool_full() { # relay|serve, port, pid, log, idle clients[, file, heads]
	need_fds || return
	timeout 150 python3 - "$@" <<'PY'
import os, select, socket, sys, time
import testlib
mode, port, pid, log, N = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
T0 = time.monotonic()
fails = []
def check(ok, what):
    print(("  ok   " if ok else "  FAIL ") + what, flush=True)
    if not ok: fails.append(what)
def stats():  # the relay's or serve's stats line (testlib.stats), with the fields the checks read
    global last_line
    st = testlib.stats(log, pid, (
        ("ended_nomem", r"ended closed=\d+ reset=\d+ idle=\d+ abort=\d+ nomem=(\d+)", 0),
        ("waits", r"\bwaits (\d+)", 0), ("parked", r"\bparked (\d+)", 0), ("park_full", r"\bpark_full (\d+)", 0),
        ("start_enomem", r"start_errno[^s]* ENOMEM=(\d+)", 0),
        ("connect_enomem", r"connect_errno[^s]* ENOMEM=(\d+)", 0)), tries=100)
    last_line = st.line
    return st
def conn():
    return socket.create_connection(("127.0.0.1", port), timeout=10)
ended = testlib.ended  # the server closed it
def settle(socks):  # those the server closed, once none more for 1 s (at most 15 s)
    shut, stable = set(), 0
    for _ in range(150):
        new = {s for s in socks if s not in shut and ended(s)}
        shut |= new
        stable = 0 if new else stable + 1
        if stable >= 10: break
        time.sleep(0.1)
    return shut
def until(pred, what):  # poll the stats until pred holds, at most 10 s
    for _ in range(100):
        st = stats()
        if pred(st): return st
        time.sleep(0.1)
    check(False, what + f" (last stats {st})")
    return st
def echo_rounds(socks, size, secs, rounds=None):
    # each socket sends size random bytes and reads them back, all at once,
    # for at most secs in all; rounds: those a timeout left, resumed. Each
    # round's res: "whole"; "cut" (EOF or reset, what came a prefix);
    # "wrong" (a byte not sent); "timeout" (what came a prefix, more to come)
    if rounds is None:
        rounds = [{"data": os.urandom(size), "sent": 0, "got": bytearray(), "res": None} for _ in socks]
    p, fds = select.poll(), {}
    for s, e in zip(socks, rounds):
        if e["res"] in (None, "timeout"):
            e["res"] = None
            s.setblocking(False)
            p.register(s, select.POLLIN | (select.POLLOUT if e["sent"] < len(e["data"]) else 0))
            fds[s.fileno()] = (s, e)
    end = time.monotonic() + secs
    while fds and time.monotonic() < end:
        for fd, ev in p.poll(max(1, (end - time.monotonic()) * 1000)):
            s, e = fds[fd]
            d = e["data"]
            try:
                if ev & select.POLLOUT and e["sent"] < len(d):
                    e["sent"] += s.send(d[e["sent"]:e["sent"] + 65536])
                    if e["sent"] == len(d): p.modify(s, select.POLLIN)
                if ev & (select.POLLIN | select.POLLERR | select.POLLHUP):
                    b, n = s.recv(65536), len(e["got"])
                    if not b: e["res"] = "cut"
                    elif d[n:n + len(b)] != b: e["res"] = "wrong"
                    else:
                        e["got"] += b
                        if len(e["got"]) == len(d): e["res"] = "whole"
            except BlockingIOError:
                pass
            except OSError:
                e["res"] = "cut"
            if e["res"]:
                p.unregister(s); del fds[fd]
    for s, e in zip(socks, rounds):
        if e["res"] is None: e["res"] = "timeout"
        s.settimeout(10)
    return rounds
def each(r):  # every round's result, for a failure's output
    return ", ".join(f"{e['res']} ({len(e['got'])} of {len(e['data'])} B back, {e['sent']} sent)" for e in r)
def read_resp(s, want):  # True: the whole file; False: EOF before a whole answer; None: anything else
    f = s.makefile("rb")
    try:
        status, length = testlib.head(f)
        body = f.read(length or 0)
    except OSError:
        return False
    finally:
        f.close()
    if status.startswith(b"HTTP/1.1 200") and body == want: return True
    return False if want.startswith(body) and (status == b"" or len(body) < (length or 0)) else None
def get(s, want):
    try: s.sendall(b"GET /f.bin HTTP/1.1\r\nHost: t\r\n\r\n")
    except OSError: return False
    return read_resp(s, want)

K = 8
held = []
if mode == "relay":
    data = [conn() for _ in range(K)]
    r = echo_rounds(data, 256 << 10, 10)
    check(all(e["res"] == "whole" for e in r), f"{K} data connections: 256 KB each echoed through the relay before the pressure")
    if any(e["res"] != "whole" for e in r):
        stats()
        print(f"  each data connection: {each(r)}\n  stats: {last_line}")
else:
    want = open(sys.argv[6], "rb").read()
    data = [conn() for _ in range(K)]
    check(all(get(s, want) is True for s in data), f"{K} keep-alive connections: the {len(want)} B file before the pressure")
    for _ in range(int(sys.argv[7])):  # a head not ended: each holds a 32 KB head buffer
        s = conn(); s.sendall(b"GET /f.bin HTTP/1.1\r\nHost: t\r\n"); held.append(s)
    time.sleep(0.3)
idle = [conn() for _ in range(N)]
total = K + len(held) + N
until(lambda st: st["conns"] == total, "the server accepted every connection")
shut = settle(held + idle)
st = stats()
idle_shut = len(shut & set(idle)); held_shut = len(shut & set(held))
if mode == "relay":
    refused = st["conn_nomem"] + st["connect_enomem"] + st["start_enomem"] + st["ended_nomem"]
    print(f"  {N} idle clients: {idle_shut} closed by the relay; conn_nomem {st['conn_nomem']} connect ENOMEM {st['connect_enomem']} start ENOMEM {st['start_enomem']} ended nomem {st['ended_nomem']}; live {st['live']} open {st['open']}")
    check(idle_shut > 0, "the pool filled: clients were closed")
    check(idle_shut == st["conn_nomem"] == refused, "each closed client closed at accept, counted once in conn_nomem, none after its upstream was connected")
    check(st["live"] == total - idle_shut and st["open"] == total - idle_shut, "live and open == the clients still connected")
    r = echo_rounds(data, 256 << 10, 10)
    res = [e["res"] for e in r]
    st = stats()
    print(f"  the data connections, pool full: {res.count('whole')} echoed 256 KB whole, {res.count('timeout')} waiting after 10 s, {res.count('cut')} cut, {res.count('wrong')} wrong; waits {st['waits']} parked {st['parked']} park_full {st['park_full']} ended nomem {st['ended_nomem']}")
    check("wrong" not in res, "no data connection got a wrong byte")
    check("cut" not in res and st["ended_nomem"] == st["park_full"] == 0 and st["connect_failed"] + st["start_failed"] == 0, "no data connection cut: a relay short of pool memory waits (ended nomem 0)")
    check("timeout" not in res or st["waits"] > 0, "a data connection that timed out is waiting for pool memory (waits > 0)")
    if set(res) != {"whole"}:
        print(f"  each data connection: {each(r)}\n  stats: {last_line}")
else:
    print(f"  {len(held)} pending heads: {held_shut} closed (head_nomem {st['head_nomem']} overflows {st['overflows']}); {N} idle clients: {idle_shut} closed, conn_nomem {st['conn_nomem']}; live {st['live']}")
    # a head's client may be closed at accept too (its connection's own
    # state found no room: the heads before it took the arena), so the
    # split between the two depends on the order the shard ran them in;
    # their sum is exact, and an idle client is closed only at accept
    check(idle_shut > 0 and idle_shut + held_shut == st["conn_nomem"] + st["head_nomem"] and st["overflows"] == 0, "clients closed == conn_nomem + head_nomem (no head buffer), no overflow")
    check(idle_shut <= st["conn_nomem"], "idle clients closed <= conn_nomem")
    check(st["live"] == total - idle_shut - held_shut, "live == the clients still connected")
for s in idle: s.close()
kept = [s for s in held if s not in shut]
until(lambda st: st["live"] == K + len(kept), "live back to the connections kept once the idle ones closed")
if mode == "relay":
    r = echo_rounds(data, 0, 20, r)  # the waiting ones' rest
    ok = all(e["res"] == "whole" for e in r)
    check(ok, "once the idle clients closed: each waiting data connection got the rest of its 256 KB")
    r2 = echo_rounds(data, 256 << 10, 10)
    ok2 = all(e["res"] == "whole" for e in r2)
    st = stats()
    check(ok2 and st["ended_nomem"] == 0, "after the pressure: each data connection echoes 256 KB again, none ended nomem")
    if not ok or not ok2:
        print(f"  each data connection: {each(r)}; again: {each(r2)}\n  stats: {last_line}")
else:
    for s in kept: s.sendall(b"\r\n")
    r = [read_resp(s, want) for s in kept] + [get(s, want) for s in data]
    st = stats()
    print(f"  after the pressure: {r.count(True)} of {len(r)} answers whole, {r.count(False)} cut; send_nomem {st['send_nomem']} resets {st['resets']}")
    check(None not in r, "no answer with a wrong byte")
    check(r.count(False) == st["send_nomem"] and st["resets"] == 0, "each answer cut counted in send_nomem, none as a reset")
    check(r.count(True) == len(r), "every answer whole: the room serve keeps for the clients it took in")
for s in data + held: s.close()
until(lambda st: st["live"] == 0, "live 0 once every client closed")
f = conn()
check(echo_rounds([f], 64 << 10, 10)[0]["res"] == "whole" if mode == "relay" else get(f, want) is True, "a fresh client is answered after the pressure")
f.close()
print(f"  {time.monotonic() - T0:.1f} s")
sys.exit(1 if fails else 0)
PY
}
# relay_22 TAG WHAT NAME FN: ringplane echo, a copy-mode relay (--pool-mb
# 22) in front of it, then check NAME: FN PORT PID LOG against the relay;
# both stopped cleanly after (WHAT names the run in the checks' names).
relay_22() {
	local tag=$1 what=$2 name=$3 fn=$4 E EP R
	if start "${tag}_echo" "$RP" echo --listen 127.0.0.1:0 --shards 1; then
		E=$PID EP=$PORT
		if start "${tag}_relay" bash -c "ulimit -n 16384 2>/dev/null; exec '$RP' relay --listen 127.0.0.1:0 \
			--upstream 127.0.0.1:$EP --shards 1 --pool-mb 22 --mode copy"; then
			R=$PID
			check "$name" "$fn" "$PORT" "$R" "$T/${tag}_relay"
			check "relay ($what) stops cleanly" stop "$R"
		else
			check "relay --pool-mb 22 starts ($what)" false
		fi
		check "echo behind the relay ($what) stops cleanly" stop "$E"
	else
		check "echo for the relay ($what) starts" false
	fi
}
pool_full_relay() { pool_full relay "$1" "$2" "$3" 5000; } # port, pid, log
check "relay --pool-mb 24 --accept-proxy --proxy-protocol v1: 2000 clients held (99%, the rest refused at accept)" \
	proxy_burst "$RP" "$T/relayb"
relay_22 pf "pool filled" "relay --pool-mb 22 full: 5000 idle clients closed at accept and counted, no byte wrong" \
	pool_full_relay
# ---- idle newcomers cannot starve the relays already running ----
# The relay (copy mode, 22 MB) with 8 data connections established, then
# idle clients opened 100 at a time until the relay refuses them at accept
# (conn_nomem > 0; at most 6000 clients or 30 s), then the 8 stream 4 MB
# each at once, both ways, every byte checked (CRC-32 of what came back):
# none may be cut (ended nomem 0) or stall (20 s each). Before the
# relay kept per-class headroom at accept (cmd_relay.c, headroom_short)
# all 8 were cut (RP_RELAY_END_NOMEM) in 5 of 5 runs, the idle clients
# having taken every span; with a byte-only check as well the 64 B class
# found no span for a piece's record.
relay_flood() { # port, pid, log
	need_fds || return
	timeout 120 python3 - "$@" <<'PY'
import os, socket, sys, threading, time, zlib
import testlib
port, pid, log = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def stats():  # the relay's stats line (testlib.stats), its ended nomem and pool objects
    st = testlib.stats(log, pid, (("ended_nomem", r"nomem=(\d+)", None),))
    st["objs"] = st.line.rsplit(" objs", 1)[-1].strip()
    return st
def conn():
    return socket.create_connection(("127.0.0.1", port), timeout=10)
def echoed(s, n):  # True: n random bytes back whole; False: closed; exit on a wrong byte
    b = os.urandom(n)
    got, how = testlib.echo(s, b)
    if how: return False
    if got != b: sys.exit("  a data connection got a wrong byte before the flood")
    return True
K, SIZE = 8, 4 << 20
data = []
for _ in range(K):  # at 22 MB the headroom leaves no span spare: a client
    for _ in range(5):  # that comes while a send holds one is refused (conn_nomem)
        s = conn()
        if echoed(s, 65536): break
        s.close(); time.sleep(0.2)
    else:
        sys.exit("  a data connection refused 5 times before the flood")
    data.append(s)
t0 = time.monotonic()
idle, st = testlib.fill(conn, stats)
time.sleep(0.3)
st = stats()
print(f"  {len(idle)} idle clients opened, {st['live'] - K} held, conn_nomem {st['conn_nomem']}; pool objects {st['objs']}")
res = [None] * K
def stream(i):
    s, payload = data[i], os.urandom(SIZE)
    s.settimeout(20)
    t = threading.Thread(target=lambda: s.sendall(payload), daemon=True)
    t.start()
    got, crc, why = 0, 0, "whole"
    try:
        while got < SIZE:
            b = s.recv(65536)
            if not b: why = "EOF"; break
            crc = zlib.crc32(b, crc); got += len(b)
    except OSError as e:
        why = type(e).__name__
    t.join(5)
    if why == "whole" and crc != zlib.crc32(payload): why = "wrong bytes"
    res[i] = (why, got)
ths = [threading.Thread(target=stream, args=(i,)) for i in range(K)]
for t in ths: t.start()
for t in ths: t.join()
st = stats()
whole = sum(r[0] == "whole" for r in res)
print(f"  {K} streams of {SIZE >> 20} MB: {whole} whole {[r for r in res if r[0] != 'whole']}; ended nomem {st['ended_nomem']}")
for s in idle + data: s.close()
ok = st["conn_nomem"] > 0 and whole == K and st["ended_nomem"] == 0
print(f"  {time.monotonic() - t0:.1f} s")
sys.exit(0 if ok else 1)
PY
}
relay_22 fl "idle flood" "relay --pool-mb 22: idle clients refused at accept, 8 running streams x 4 MB whole" \
	relay_flood
# ---- a relay backed up does not close the newcomers ----
# The relay (copy mode, 22 MB) with one client that sends without reading
# until its relay is backed up both ways (its pieces' records and outq
# nodes held: the 64 B class in the stats line's objs), then 50 new
# clients at once, each 64 KB echoed whole: none closed at accept
# (conn_nomem 0); then the first client reads back all it sent, CRC
# checked. A backed-up relay's classes (64, 128, 256, 512 and 2048 B) take
# every span the 1024 provided buffers leave at 22 MB; while
# rp_app_pool_low also wanted its 2 MB reserve as 2 whole free spans, all
# 50 were closed at accept (conn_nomem 50), the per-class headroom
# (cmd_relay.c, headroom_short) being met. pool-cli's 200 x 64 KB case
# failed so under load (1 of 10 runs beside the suite: the relay accepted
# the 199 others while the first one's 64 KB was being copied).
relay_backed() { # port, pid, log
	timeout 90 python3 - "$@" <<'PY'
import os, socket, sys, time, zlib
import testlib
port, pid, log = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def conn():
    return socket.create_connection(("127.0.0.1", port), timeout=10)
a = conn()
a.setblocking(False)
blob, sent, crc = os.urandom(1 << 20), 0, 0
t0 = last = time.monotonic()
# send until nothing moves for 0.5 s (at most 10 s, 256 MB)
while time.monotonic() - last < 0.5 and time.monotonic() - t0 < 10 and sent < 256 << 20:
    off = sent % len(blob)
    try:
        n = a.send(blob[off:])
    except BlockingIOError:
        time.sleep(0.01)
        continue
    crc = zlib.crc32(blob[off:off + n], crc)
    sent += n
    last = time.monotonic()
st = testlib.stats(log, pid, (("objs64", r" objs.* 64=(\d+)", 0),))
print(f"  the first client: {sent >> 20} MB sent unread; pool objects{st.line.rsplit(' objs', 1)[-1]}")
if st["objs64"] == 0:
    sys.exit("  FAIL the first client's relay holds no piece record (64 B): not backed up")
n, size, ok = 50, 65536, 0
cs = [conn() for _ in range(n)]
for s in cs:
    d = os.urandom(size)
    ok += testlib.echo(s, d)[0] == d
    s.close()
st = testlib.stats(log, pid)
print(f"  {ok} of {n} new clients got their {size} bytes back; conn_nomem {st['conn_nomem']}")
a.settimeout(20)
got, rcrc = 0, 0
try:
    while got < sent:
        b = a.recv(1 << 20)
        if not b:
            break
        rcrc = zlib.crc32(b, rcrc)
        got += len(b)
except OSError as e:
    print(f"  the first client: {type(e).__name__} after {got} B back")
print(f"  the first client: {got} of {sent} B back, CRC {'equal' if rcrc == crc else 'differs'}")
a.close()
sys.exit(0 if ok == n and st["conn_nomem"] == 0 and got == sent and rcrc == crc else 1)
PY
}
relay_22 bk "one backed up" "relay --pool-mb 22: 50 newcomers relayed while one relay is backed up (conn_nomem 0)" \
	relay_backed
# ---- accept behind a close ----
# The relay (copy mode, 22 MB) filled with idle clients to its edge (100
# at a time until conn_nomem counts, then one at a time until one is
# refused: the 128 and 512 B classes hold every span the headroom leaves),
# then 6 rounds, each: the relay stopped (SIGSTOP), 4 idle clients close
# and 2 fresh ones connect, the relay goes on (the closes' completions in
# the batch before the accepts). A closed client's objects come back only
# once its relay ends (its half-close passed upstream, echo's own close
# back), a few completions after the accepts of the same batch, so each
# fresh client must be looked at again in the next rounds (rp_app_again),
# not refused: each echoes 4 KB whole, conn_nomem unchanged over the
# round. Before (one look at accept), 10, 11 and 11 of the 12 fresh
# clients were refused (conn_nomem) in 3 runs of 3, 2026-11-29, while the
# next round's top-up found the room of the 4 closed clients.
relay_behind_close() { # port, pid, log
	need_fds || return
	timeout 120 python3 - "$@" <<'PY'
import os, signal, socket, sys, time
import testlib
port, pid, log = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ROUNDS, CLOSE, FRESH = 6, 4, 2
def conn():
    return socket.create_connection(("127.0.0.1", port), timeout=10)
def stats():  # after 20 ms: a refusal is final about 4 ms after its accept
    time.sleep(0.02)
    return testlib.stats(log, pid)
ended = testlib.ended  # the relay closed it
t0 = time.monotonic()
idle, st = testlib.fill(conn, stats)
time.sleep(0.5)
idle = [s for s in idle if not ended(s)]
st = stats()
print(f"  filled: {len(idle)} idle clients held, conn_nomem {st['conn_nomem']}")
if st["conn_nomem"] == 0:
    sys.exit("  FAIL the pool never filled")
bad, whole, edges = 0, 0, 0
for r in range(ROUNDS):
    n0 = stats()["conn_nomem"]
    for _ in range(50):  # to the edge again: one at a time until one is refused
        s = conn()
        st = stats()
        if st["conn_nomem"] > n0:
            s.close()
            edges += 1
            break
        idle.append(s)
    n0 = st["conn_nomem"]
    os.kill(pid, signal.SIGSTOP)
    try:
        for s in idle[:CLOSE]: s.close()
        del idle[:CLOSE]
        fresh = [conn() for _ in range(FRESH)]  # the handshakes are the kernel's
        time.sleep(0.1)
    finally:
        os.kill(pid, signal.SIGCONT)
    got = []
    for s in fresh:
        d = os.urandom(4096)
        g, how = testlib.echo(s, d)
        got.append("whole" if g == d else how or "short")
    st = stats()
    bad += st["conn_nomem"] - n0
    whole += got.count("whole")
    print(f"  round {r}: the fresh clients {got}, conn_nomem {n0} -> {st['conn_nomem']}")
    idle += fresh
for s in idle: s.close()
print(f"  {whole} of {ROUNDS * FRESH} fresh clients relayed, {bad} refused, {edges} of {ROUNDS} rounds at the edge; {time.monotonic() - t0:.1f} s")
if edges == 0:  # no round had the pool full: the fresh clients tested nothing
    sys.exit("  FAIL no round reached the pool's edge")
sys.exit(0 if whole == ROUNDS * FRESH and bad == 0 else 1)
PY
}
relay_22 bc "accept behind a close" "relay --pool-mb 22 at its edge: 12 clients accepted behind 24 closes relayed (conn_nomem unchanged)" \
	relay_behind_close
if start pf_serve bash -c "ulimit -n 16384 2>/dev/null; exec '$RP' serve --listen 127.0.0.1:0 \
	--root '$T/root' --shards 1 --pool-mb 8 --header-timeout 60"; then
	S=$PID
	check "serve --pool-mb 8 full: 3000 idle clients closed at accept and counted, no byte wrong" \
		pool_full serve "$PORT" "$S" "$T/pf_serve" 3000 "$T/root/f.bin" 200
	check "serve with its pool filled stops cleanly" stop "$S"
else
	check "serve --pool-mb 8 starts" false
fi

# ---- the cgroup memory limit at start ----
# A memory group of the test's own with a 64 MB limit. v1: a child of this
# process's group in the memory hierarchy. v2: a group's memory.max exists
# only where its parent enables +memory in cgroup.subtree_control, and a
# parent with processes in it (this test's own group, unless it is the
# root) cannot (the no-internal-process rule): so the group is made a
# sibling of the test's group, under its parent, with +memory enabled
# there first where it is not yet (put back at the end), or a child of
# the root when the test runs in the root. Where none of that is
# permitted the cases are skipped with a note.
CGPARENT_MEM=

# The mount of the v1 memory hierarchy (v1) or of cgroup2 (v2) in the
# mountinfo file MOUNTINFO that holds the group GROUP (its path in
# /proc/self/cgroup), by apps/memlimit.c's rule: of the mounts whose root
# (field 4, the group the mount shows) is GROUP or above it, the deepest;
# the first of equals. Prints "MOUNT_POINT<TAB>GROUP's path below that
# root", mountinfo's octal escapes (\040) decoded; fails when no mount
# holds GROUP (a mount of another subtree shows another group). The first
# cgroup2 mount, taken before, was not always the one holding the group
# (a container's second mount of a subtree, a hybrid host's).
cg_mount() { # mountinfo, v1|v2, group
	awk -v kind="$2" -v grp="$3" '
	function unesc(s,   o, i, c) {
		o = ""
		for (i = 1; i <= length(s); i++) {
			c = substr(s, i, 1)
			if (c == "\\" && substr(s, i + 1, 3) ~ /^[0-3][0-7][0-7]$/) {
				o = o sprintf("%c", (substr(s, i + 1, 1) * 64 + substr(s, i + 2, 1) * 8 + substr(s, i + 3, 1)))
				i += 3
			} else {
				o = o c
			}
		}
		return o
	}
	BEGIN { best = -1 }
	{
		for (i = 7; i <= NF && $i != "-"; i++);
		if (i > NF) next
		if (kind == "v1" && !($(i + 1) == "cgroup" && $(i + 3) ~ /(^|,)memory(,|$)/)) next
		if (kind == "v2" && $(i + 1) != "cgroup2") next
		root = unesc($4)
		sub(/\/+$/, "", root) # "/" and "/a/" name the groups "" and "/a" do
		rl = length(root)
		if (substr(grp, 1, rl) != root) next
		nc = substr(grp, rl + 1, 1)
		if (nc != "/" && nc != "") next
		if (rl <= best) next
		best = rl
		out = unesc($5) "\t" substr(grp, rl + 1)
	}
	END { if (best < 0) exit 1; print out }' "$1"
}

# cg_mount against fake mountinfo files (this host may have no cgroup2):
# MOUNTINFO_LINES, kind, group, and the wanted output ("" for none)
cg_mount_case() { # lines, kind, group, want
	local got rc
	printf '%b' "$1" >"$T/mountinfo"
	got=$(cg_mount "$T/mountinfo" "$2" "$3")
	rc=$?
	if [ -z "$4" ]; then
		[ "$rc" -ne 0 ] && return 0
	elif [ "$rc" -eq 0 ] && [ "$got" = "$(printf '%b' "$4")" ]; then
		return 0
	fi
	echo "  cg_mount $2 $3: got '$got' (exit $rc), wanted '$4'" >&2
	return 1
}
MI_PROC='22 1 0:21 / /proc rw,nosuid - proc proc rw\n'
MI_V2() { printf '30 25 0:26 %s %s rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\\n' "$1" "$2"; }
MI_V1() { printf '40 30 0:35 %s %s rw,nosuid - cgroup cgroup rw,%s\\n' "$1" "$2" "$3"; }
check "cg_mount v2: the one cgroup2 mount at the root" cg_mount_case \
	"$MI_PROC$(MI_V2 / /sys/fs/cgroup)" v2 /a/b '/sys/fs/cgroup\t/a/b'
check "cg_mount v2: the deepest mount holding the group, not the first" cg_mount_case \
	"$(MI_V2 / /sys/fs/cgroup)$(MI_V2 /a /mnt/a)$(MI_V2 /a/b /mnt/ab)" v2 /a/b/c '/mnt/ab\t/c'
check "cg_mount v2: a mount of another subtree first is passed over" cg_mount_case \
	"$(MI_V2 /x /mnt/x)$(MI_V2 /ab /mnt/ab)$(MI_V2 / /sys/fs/cgroup)" v2 /a/b '/sys/fs/cgroup\t/a/b'
check "cg_mount v2: only another subtree mounted: none" cg_mount_case \
	"$MI_PROC$(MI_V2 /x /mnt/x)" v2 /a/b ''
check "cg_mount v2: the mount's root is the group itself (a container's)" cg_mount_case \
	"$(MI_V2 /kube/pod1/ /sys/fs/cgroup)" v2 /kube/pod1 '/sys/fs/cgroup\t'
check "cg_mount v2: a v1 memory mount is not cgroup2" cg_mount_case \
	"$(MI_V1 / /sys/fs/cgroup/memory memory)" v2 /a ''
check "cg_mount v1: the memory hierarchy, not cpu or cgroup2" cg_mount_case \
	"$(MI_V2 / /sys/fs/cgroup/unified)$(MI_V1 / /sys/fs/cgroup/cpu cpu,cpuacct)$(MI_V1 / /sys/fs/cgroup/memory memory)" \
	v1 /a '/sys/fs/cgroup/memory\t/a'
check "cg_mount: mountinfo's octal escape (a space) decoded in the mount point" cg_mount_case \
	"$(MI_V2 / '/mnt/my\\040cg')" v2 /a '/mnt/my cg\t/a'
check "cg_mount: no such mount: none" cg_mount_case "$MI_PROC" v2 /a ''

cg_child() {
	local rel mnt parent
	local grp mr
	grp=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ { print $3; exit }' /proc/self/cgroup)
	if [ -n "$grp" ] && mr=$(cg_mount /proc/self/mountinfo v1 "$grp"); then
		mnt=${mr%%$'\t'*} rel=${mr#*$'\t'}
		CG=$mnt${rel%/}/rp-test-pool-$$
		CGLIM=memory.limit_in_bytes
		mkdir "$CG" 2>/dev/null && echo $((64 << 20)) >"$CG/$CGLIM" 2>/dev/null &&
			return 0
	else
		grp=$(awk -F: '$1 == 0 && $2 == "" { print $3; exit }' /proc/self/cgroup)
		if [ -z "$grp" ] || ! mr=$(cg_mount /proc/self/mountinfo v2 "$grp"); then
			echo "  no cgroup2 line, or no cgroup2 mount holding its group" >&2
			return 1
		fi
		mnt=${mr%%$'\t'*} rel=${mr#*$'\t'}
		rel=${rel%/}
		if [ -z "$rel" ]; then
			parent=$mnt # in the root: its children may take memory
		else
			parent=$mnt${rel%/*}
		fi
		if ! grep -qw memory "$parent/cgroup.subtree_control" 2>/dev/null; then
			if echo +memory 2>/dev/null >"$parent/cgroup.subtree_control"; then
				CGPARENT_MEM=$parent
			else
				echo "  cannot enable +memory in $parent/cgroup.subtree_control" >&2
				return 1
			fi
		fi
		CG=$parent/rp-test-pool-$$
		CGLIM=memory.max
		mkdir "$CG" 2>/dev/null && echo $((64 << 20)) >"$CG/$CGLIM" 2>/dev/null && return 0
	fi
	echo "  cannot make $CG with a memory limit" >&2
	[ -d "$CG" ] && rmdir "$CG"
	CG=
	return 1
}

# run the command in the group: exit status into RC, output into $T/cg;
# returns 77 (said on stderr) when the group refused the move, else 0
in_cg() { # seconds, command...
	local secs=$1
	shift
	# emptied here, not by the job's redirect: the poll below may run before
	# the job does and would read the previous run's "listening on"
	: >"$T/cg"
	# shellcheck disable=SC2016 # $$, $0 and $@ are the inner sh's
	# a move the group refuses (v2's delegation rules) is 77: skipped
	timeout -s KILL "$secs" sh -c 'echo $$ 2>/dev/null > "$0/cgroup.procs" || exit 77; exec "$@"' "$CG" "$@" \
		>"$T/cg" 2>&1 </dev/null &
	local p=$!
	PIDS+=("$p")
	for _ in $(seq $((secs * 10))); do
		grep -q "listening on" "$T/cg" 2>/dev/null && break
		kill -0 "$p" 2>/dev/null || break
		sleep 0.1
	done
	kill -TERM "$p" 2>/dev/null
	wait "$p"
	RC=$?
	if [ "$RC" -eq 77 ]; then
		echo "  cannot move a process into $CG (cgroup.procs)" >&2
		return 77
	fi
}

refused_with() { # seconds, the refusal line (grep), command...: exit 1 with that line
	local secs=$1 line=$2
	shift 2
	in_cg "$secs" "$@" || return 77
	if [ "$RC" -eq 1 ] && grep -q "$line" "$T/cg"; then
		return 0
	fi
	echo "  exit $RC, wanted 1 with the limit's line: $(head -c 300 "$T/cg")" >&2
	return 1
}

refused() { # the command's default pool is refused in the 64 MB group
	refused_with 10 "shards 1 x pool [0-9]* MB = [0-9]* MB exceeds the cgroup memory limit 64 MB; use --pool-mb or --shards" "$@"
}

refused8() { # 8 x 20 MB, refused in the 165 MB group with the rest named
	refused_with 20 "shards 8 x pool 20 MB = 160 MB exceeds the cgroup memory limit 165 MB (less 20 MB for the rest of the process: 4 MB and 2 MB a shard); use --pool-mb or --shards" "$@"
}

fits() { # a pool that fits starts there and stops cleanly
	in_cg 10 "$@" || return 77
	if [ "$RC" -eq 0 ] && grep -q "listening on" "$T/cg"; then
		return 0
	fi
	echo "  exit $RC, wanted a start and 0: $(head -c 300 "$T/cg")" >&2
	return 1
}

if cg_child; then
	echo "  child memory cgroup $CG, limit 64 MB"
	check "echo's 128 MB pool refused under a 64 MB cgroup limit, exit 1" \
		refused "$RP" echo --listen 127.0.0.1:0 --shards 1
	check "relay's 256 MB pool refused under a 64 MB cgroup limit, exit 1" \
		refused "$RP" relay --listen 127.0.0.1:0 --upstream 127.0.0.1:9 --shards 1
	check "serve's 256 MB pool refused under a 64 MB cgroup limit, exit 1" \
		refused "$RP" serve --listen 127.0.0.1:0 --root "$T" --shards 1
	check "echo --pool-mb 32 starts under the 64 MB limit" \
		fits "$RP" echo --listen 127.0.0.1:0 --shards 1 --pool-mb 32
	# 8 x 20 MB under 8 x 20 + 5 MB: the rest of the process (about 0.5 MB
	# a shard, measured) does not fit in 5 MB. Refused before the shards
	# run; a check that kept a flat 4 MB let it start (exit 0 at the limit,
	# or 137 when the kernel's charge passed it).
	if echo $(((8 * 20 + 5) << 20)) 2>/dev/null >"$CG/$CGLIM"; then
		check "echo 8 shards x 20 MB refused under a 165 MB limit, exit 1 (not 137)" \
			refused8 "$RP" echo --listen 127.0.0.1:0 --shards 8 --pool-mb 20
	else
		echo "SKIP 8 shards under 165 MB: the group's limit cannot be set to it"
	fi
else
	echo "SKIP cgroup limit cases: no child memory cgroup can be made here" \
		"(needs a writable v1 memory or v2 cgroup of this process)"
fi

echo "$fails failed"
[ "$fails" -eq 0 ]
