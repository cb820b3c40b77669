#!/bin/bash
# The drift example served by a real `hpcport endpoint serve` on loopback
# (examples/endpoint/endpoint.yaml as the build copies it): the answer over
# HTTP is byte for byte what the library gives when run directly through the
# ABI (drift-tool run); a bad request fails with the function's message and
# the endpoint keeps serving; noop and echo.
# args: DRIFT_TOOL CONFIG (HPCPORT in the environment)
. "$HP_SRCDIR/tests/integration/tap.sh" ""
TOOL=$1
CFG=$2
LIB=$(dirname "$CFG")/libdrift.so
cleanup() { [ -n "${EP:-}" ] && kill -TERM "$EP" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT

# post FUNCTION INFILE OUTFILE: prints the HTTP status
post() {
    /usr/bin/python3 - "$PORT" "$T/ep/token" "$@" <<'PY'
import sys, urllib.request, urllib.error
port, tokf, fn, inf, outf = sys.argv[1:]
req = urllib.request.Request("http://127.0.0.1:%s/v1/functions/%s/call" % (port, fn),
                             data=open(inf, "rb").read(), method="POST",
                             headers={"Authorization": "Bearer " + open(tokf).read().strip()})
try:
    with urllib.request.urlopen(req, timeout=60) as r:
        body, code = r.read(), r.status
except urllib.error.HTTPError as e:
    body, code = e.read(), e.code
open(outf, "wb").write(body)
print(code)
PY
}

expect_rc 0 "the example configuration serves" "$HP" endpoint serve --config "$CFG" \
    --listen 127.0.0.1:0 --state-dir "$T/ep" --daemon
EP=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$T/out")
PORT=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["listen"]["port"])' "$T/out")
check "... with drift, noop and echo" contains "$OUT" '"drift",'

"$TOOL" gen -n 200000 -s 7 -L 3000 > "$T/in.bin"
expect_rc 0 "drift-tool run: the library through the ABI" sh -c '"$0" run "$1" < "$2" > "$3"' \
    "$TOOL" "$LIB" "$T/in.bin" "$T/local.bin"
check "drift over HTTP: 200" test "$(post drift "$T/in.bin" "$T/remote.bin")" = 200
check "... the same bytes as the library run directly" cmp -s "$T/local.bin" "$T/remote.bin"
expect_rc 0 "... a response drift-tool reads" "$TOOL" summary "$T/remote.bin"
check "... 200000 charges" contains "$OUT" "response: 200000 charges"

head -c 100 "$T/in.bin" > "$T/short.bin"
check "a truncated request: 500" test "$(post drift "$T/short.bin" "$T/err.json")" = 500
check "... function_failed with the function's message" sh -c \
    'grep -q "function_failed" "$0" && grep -q "drift: header says 200000 charges" "$0"' "$T/err.json"
check "the endpoint serves on: drift again" test "$(post drift "$T/in.bin" "$T/again.bin")" = 200
check "... same bytes" cmp -s "$T/local.bin" "$T/again.bin"
check "noop: 200" test "$(post noop "$T/in.bin" "$T/noop.bin")" = 200
check "... empty output" test ! -s "$T/noop.bin"
check "echo: 200" test "$(post echo "$T/short.bin" "$T/echo.bin")" = 200
check "... the input back" cmp -s "$T/short.bin" "$T/echo.bin"
done_testing
