#!/usr/bin/env bash
# `ringplane serve` as curl sees it, on a root this script makes: a 4 KB
# and a 1 MB file whole (SHA-256), HEAD (the head's Content-Length and
# ETag, and no body: an answer that follows on the same connection is
# whole), a range (206, Content-Range, the exact bytes), an unsatisfiable
# range (416), If-None-Match with the ETag (304, no body), 20 requests on
# one curl command line answered on one connection (num_connects 1 in
# all, each body checked), a directory symlink to a directory outside the
# root and a raw "/../" (--path-as-is) refused without the outside file's
# bytes; then SIGTERM: exit 0. Every curl is bounded by --max-time.
# Usage: test_serve_curl.sh PATH/TO/ringplane
set -u
RP=$1
if ! command -v curl >/dev/null; then
	echo "SKIP curl is not installed"
	exit 77
fi
T=$(mktemp -d)
PID=
fails=0

cleanup() {
	[ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

fail() {
	echo "FAIL $*"
	fails=$((fails + 1))
}

# the root readable by all, as a deploy leaves it; "outside" beside it
mkdir -p "$T/root" "$T/outside"
chmod 755 "$T" "$T/root" "$T/outside"
head -c 4096 /dev/urandom >"$T/root/small.bin"
head -c 1048576 /dev/urandom >"$T/root/big.bin"
for i in $(seq 1 20); do
	echo "file number $i" >"$T/root/f$i.txt"
done
echo "outside secret $$" >"$T/outside/secret.txt"
ln -s "$T/outside" "$T/root/outdir"
chmod -R a+r "$T/root" "$T/outside"

"$RP" serve --listen 127.0.0.1:0 --root "$T/root" --shards 1 --no-pin >"$T/log" 2>&1 &
PID=$!
port=
for _ in $(seq 1 300); do # 30 s: the pool is faulted in before it listens
	port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$T/log")
	[ -n "$port" ] && break
	kill -0 "$PID" 2>/dev/null || break
	sleep 0.1
done
if [ -z "$port" ]; then
	echo "FAIL serve did not start:"
	cat "$T/log"
	exit 1
fi
U="http://127.0.0.1:$port"
C=(curl -sS --max-time 10)

# bodies whole
for f in small.bin big.bin; do
	code=$("${C[@]}" -o "$T/got" -w '%{http_code}' "$U/$f")
	want=$(sha256sum <"$T/root/$f")
	got=$(sha256sum <"$T/got")
	if [ "$code" != 200 ] || [ "$got" != "$want" ]; then
		fail "GET $f: $code, sha256 $got, want $want"
	fi
done

# HEAD: the head, and nothing behind it (the next answer on the
# connection would start with the body's bytes)
out=$("${C[@]}" -I "$U/big.bin" --next -sS --max-time 10 -o "$T/after" \
	-w 'after %{http_code} %{num_connects}\n' "$U/f1.txt")
echo "$out" | grep -q '^HTTP/1.1 200' || fail "HEAD: $out"
echo "$out" | grep -qi '^content-length: 1048576' || fail "HEAD: no Content-Length 1048576"
etag=$(echo "$out" | sed -n 's/^[Ee][Tt][Aa][Gg]: *\(.*\)\r$/\1/p')
[ -n "$etag" ] || fail "HEAD: no ETag"
echo "$out" | grep -q '^after 200 0$' || fail "HEAD: the answer behind it: $(echo "$out" | tail -1)"
[ "$(cat "$T/after")" = "file number 1" ] || fail "HEAD: the body behind it: $(head -c 80 "$T/after")"

# a range: 206 with the exact bytes
code=$("${C[@]}" -r 1000-5999 -D "$T/h" -o "$T/got" -w '%{http_code}' "$U/big.bin")
tail -c +1001 "$T/root/big.bin" | head -c 5000 >"$T/want"
if [ "$code" != 206 ] || ! cmp -s "$T/got" "$T/want"; then
	fail "range: $code, $(stat -c %s "$T/got") bytes"
fi
grep -qi '^content-range: bytes 1000-5999/1048576' "$T/h" || fail "range: no Content-Range"

# a range past the end: 416
code=$("${C[@]}" -r 2000000-2000100 -o "$T/got" -w '%{http_code}' "$U/big.bin")
[ "$code" = 416 ] || fail "unsatisfiable range: $code"

# If-None-Match with the ETag: 304, no body
code=$("${C[@]}" -H "If-None-Match: $etag" -o "$T/got" -w '%{http_code} %{size_download}' \
	"$U/big.bin")
[ "$code" = "304 0" ] || fail "If-None-Match $etag: $code"

# 20 requests on one command line: one connection, reused 19 times
args=()
for i in $(seq 1 20); do
	args+=(-o "$T/k$i" "$U/f$i.txt")
done
out=$(curl -sS --max-time 20 -w '%{http_code} %{num_connects}\n' "${args[@]}")
n200=$(echo "$out" | grep -c '^200 ')
conns=$(echo "$out" | awk '{ s += $2 } END { print s + 0 }')
if [ "$n200" != 20 ] || [ "$conns" != 1 ]; then
	fail "keep-alive: $n200 of 20 answered 200, $conns connects"
fi
for i in $(seq 1 20); do
	[ "$(cat "$T/k$i" 2>/dev/null)" = "file number $i" ] || fail "keep-alive: body $i"
done

# out of the root: refused, the outside file's bytes never sent, serve
# still answering
for p in /outdir/secret.txt "/../$(basename "$T")/outside/secret.txt" /outdir/; do
	code=$("${C[@]}" --path-as-is -o "$T/got" -w '%{http_code}' "$U$p")
	case $code in
	400 | 403 | 404) ;;
	*) fail "escape $p: $code" ;;
	esac
	! grep -q "outside secret" "$T/got" 2>/dev/null || fail "escape $p: the outside file's bytes"
	code=$("${C[@]}" -o /dev/null -w '%{http_code}' "$U/f2.txt")
	[ "$code" = 200 ] || fail "after escape $p: $code"
done

kill -TERM "$PID"
for _ in $(seq 1 50); do
	kill -0 "$PID" 2>/dev/null || break
	sleep 0.1
done
if kill -0 "$PID" 2>/dev/null; then
	fail "serve still running 5 s after SIGTERM"
else
	wait "$PID"
	rc=$?
	PID=
	[ "$rc" = 0 ] || fail "serve exited $rc after SIGTERM"
fi
if [ "$fails" -ne 0 ]; then
	echo "FAIL $fails checks failed; serve's output:"
	cat "$T/log"
	exit 1
fi
echo "PASS bodies by SHA-256, HEAD, 206, 416, 304, 20 requests on 1 connection, escapes"
