"""What apps/test_pool.sh and apps/test_serve_pool.sh share: a one-shard
server's stats line (SIGUSR1), an HTTP answer's head and a round of echo. Their embedded
python finds it through PYTHONPATH set to this folder by the scripts."""
import os
import re
import signal
import socket
import sys
import time


class Stats(dict):
    """The fields before the line's first '|' as ints (name -> value), the
    extra fields asked for, and the whole line (.line)."""
    line = ""


def stats(log, pid, extra=(), tries=200):
    """SIGUSR1 to pid, then the shard's new 'shard 0:' line in log (one
    shard), waited for at most tries x 50 ms; exits the script without one.
    extra: (name, pattern with one group, default) searched in the whole
    line, the group as an int, default where the pattern is not found."""
    n0 = open(log).read().count("shard 0:")
    os.kill(pid, signal.SIGUSR1)
    for _ in range(tries):
        txt = open(log).read()
        if txt.count("shard 0:") > n0 and txt.endswith("\n"):
            line = txt[txt.rindex("shard 0:"):]
            st = Stats((k, int(v)) for k, v in re.findall(r"\b([a-z_]+) ([0-9]+)", line.split("|")[0]))
            for k, pat, default in extra:
                m = re.search(pat, line)
                st[k] = int(m.group(1)) if m else default
            st.line = line.strip()
            return st
        time.sleep(0.05)
    sys.exit("  no stats line")


def head(f):
    """One answer's status line and Content-Length (None: none) from the
    binary file object f; the status is b"" at EOF."""
    status = f.readline()
    length = None
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        k, _, v = line.decode().partition(":")
        if k.lower() == "content-length":
            length = int(v)
    return status, length


def echo(s, data):
    """Send data on the socket s and read back as many bytes (an echo
    server behind s returns them): what came back, and why it is short:
    "EOF", an OSError's name, or "" when as many bytes came."""
    got, how = b"", ""
    try:
        s.sendall(data)
        while len(got) < len(data):
            b = s.recv(65536)
            if not b:
                how = "EOF"
                break
            got += b
    except OSError as e:
        how = type(e).__name__
    return got, how


def ended(s):
    """Whether the peer of the blocking socket s closed it (EOF, a reset,
    or anything sent unasked), looked at without waiting or consuming;
    s is left blocking with a 10 s timeout."""
    s.setblocking(False)
    try:
        s.recv(1, socket.MSG_PEEK)
        r = True
    except BlockingIOError:
        r = False
    except OSError:
        r = True
    s.settimeout(10)
    return r


def fill(conn, stats, most=6000, secs=30):
    """Open idle clients with conn(), 100 at a time, until stats() (a
    server's stats line) counts a conn_nomem refusal, most clients or
    secs seconds: the clients opened and the last stats."""
    idle, t0 = [], time.monotonic()
    st = stats()
    while st["conn_nomem"] == 0 and len(idle) < most and time.monotonic() - t0 < secs:
        idle += [conn() for _ in range(100)]
        st = stats()
    return idle, st
