#!/bin/bash
# The function endpoint from the laptop: `hpcport endpoint start|status|stop`,
# `hpcport call`, `hpcport tunnel` and the C client (libhpcport-client) against
# a real endpoint (`hpcport endpoint serve`, this build copied into the test
# user's home) on the harness's login node, reached through the bastion with
# strict host keys. Functions: a command (tr) and a library built for the test
# (echo, crash, hang, fail). Needs the services: run it under
# tests/harness/with-services.sh; without them it fails, it does not skip.
# args: FUNCTIONS_LIBRARY CLIENT_EXAMPLE
. "$(dirname "$0")/tap.sh" ""
. "$(dirname "$0")/site-lib.sh"
FNLIB=$1
EXAMPLE=$2

TAG="hpe$$"
RBIN="$HP_H_USER_HOME/.$TAG-bin"
cleanup() {
    [ -n "${TPID:-}" ] && kill "$TPID" 2>/dev/null
    "$HP" endpoint stop ep --name demo >/dev/null 2>&1
    "$HP" endpoint stop ep --name bdemo >/dev/null 2>&1
    "${SSH[@]}" "rm -rf ~/.$TAG" >/dev/null 2>&1
    rm -rf "$RBIN" "$T"
}
trap cleanup EXIT

# this build on the "site", where the test user can run it
mkdir -p "$RBIN"
cp "$HP" "$RBIN/hpcport"
chown -R "$HP_H_USER:" "$RBIN"
chmod 0755 "$RBIN" "$RBIN/hpcport"

{
    echo "name: ep"
    echo "scheduler: {type: slurm, partitions: [{name: debug}]}"
    site_login_yaml
    echo "remote: {hpcport: $RBIN/hpcport}"
} > "$SITES/ep.yaml"

mkdir -p "$T/cfg/lib"
cp "$FNLIB" "$T/cfg/lib/libhpt-fns.so"
cat > "$T/cfg/demo.yaml" <<'EOF'
name: demo
workers: 1
limits: {timeout: 10s, max_payload: 1MiB}
functions:
  - name: upper
    command: [tr, a-z, A-Z]
  - {name: echo, library: lib/libhpt-fns.so, symbol: hp_function_echo}
  - {name: crash, library: lib/libhpt-fns.so, symbol: hp_function_crash}
  - {name: hang, library: lib/libhpt-fns.so, symbol: hp_function_hang, timeout: 2s}
  - {name: fail, library: lib/libhpt-fns.so, symbol: hp_function_fail}
EOF

tokfile="$XDG_STATE_HOME/hpcport/endpoints/@ep/demo/token"
remote_token() { "${SSH[@]}" "cat ~/.$TAG/hpcport/endpoints/demo/state/token"; }

# ---- start
expect_rc 0 "start: the endpoint starts on the login node" "$HP" endpoint start ep --config "$T/cfg/demo.yaml"
check "start: prints the token file's path" contains "$OUT" "token file: $tokfile"
check "start: the token file is mode 0600" test "$(stat -c %a "$tokfile")" = 600
check "start: its directory is mode 0700" test "$(stat -c %a "$(dirname "$tokfile")")" = 700
tok=$(cat "$tokfile")
check "start: the token is the site's (64 hex digits)" test "$tok" = "$(remote_token)" -a ${#tok} = 64
check "start: the token is never printed" test -n "$tok" -a -z "$(grep -F "$tok" "$T/out" "$T/err")"
check "start: the library was uploaded" "${SSH[@]}" "test -f ~/.$TAG/hpcport/endpoints/demo/lib/libhpt-fns.so"
expect_rc 4 "start: a second start of the same name is refused" "$HP" endpoint start ep --config "$T/cfg/demo.yaml"
check "start: ... with the server's reason" contains "$ERR" "demo"

# ---- status
expect_rc 0 "status: running" "$HP" endpoint status ep
check "status: names the functions" contains "$OUT" "crash"
check "status: workers and uptime" contains "$OUT" "uptime"
expect_rc 0 "status --json" "$HP" endpoint status ep --json
echo "$OUT" > "$T/status.json"
check "status --json: running, 5 functions" test "$(jget "$T/status.json" 'd["running"] and len(d["functions"])')" = 5
check "status --json: the token is not in it" test -z "$(grep -F "$tok" "$T/status.json")"

# ---- call
printf 'hello endpoint' > "$T/in.txt"
expect_rc 0 "call: --input FILE" "$HP" call ep upper --input "$T/in.txt"
check "call: the command's output" test "$OUT" = "HELLO ENDPOINT"
expect_rc 0 "call: --input - (standard input)" sh -c "printf 'from stdin' | \"\$0\" call ep upper --input -" "$HP"
check "call: stdin's output" test "$OUT" = "FROM STDIN"
head -c 100000 /dev/urandom > "$T/bin.in"
expect_rc 0 "call: a library function, binary input, --output FILE" "$HP" call ep echo --input "$T/bin.in" --output "$T/bin.out"
check "call: the output file holds the bytes" cmp -s "$T/bin.in" "$T/bin.out"
expect_rc 12 "call: a function that segfaults: exit 12" "$HP" call ep crash
check "call: ... says it crashed with the signal" contains "$ERR" "signal 11"
expect_rc 11 "call: a function that hangs: exit 11 (timeout)" "$HP" call ep hang
check "call: ... says timeout" contains "$ERR" "timeout"
expect_rc 1 "call: a function that fails: exit 1" "$HP" call ep fail
check "call: ... with the function's message" contains "$ERR" "fail was asked to fail"
expect_rc 8 "call: an unknown function: exit 8" "$HP" call ep nosuch
head -c 2000000 /dev/zero > "$T/big.in"
expect_rc 3 "call: an input above max_payload: exit 3" "$HP" call ep echo --input "$T/big.in"
expect_rc 0 "call: the endpoint still serves after the crash and the timeout" "$HP" call ep echo --input "$T/in.txt"
check "call: ... the right output" test "$OUT" = "hello endpoint"
expect_rc 2 "call: no function given" "$HP" call ep
expect_rc 6 "call: a missing input file" "$HP" call ep echo --input "$T/none"

# ---- tunnel (TCP)
"$HP" tunnel ep > "$T/tunnel.out" 2> "$T/tunnel.err" &
TPID=$!
wait_for 30 grep -q '^url: ' "$T/tunnel.out"
url=$(sed -n 's/^url: //p' "$T/tunnel.out")
check "tunnel: prints a loopback URL" contains "$url" "http://127.0.0.1:"
check "tunnel: names the token file" grep -qF "token file: $tokfile" "$T/tunnel.out"
check "tunnel: never prints the token" test -z "$(grep -F "$tok" "$T/tunnel.out" "$T/tunnel.err")"
code=$(curl -s -o "$T/health" -w '%{http_code}' -H "Authorization: Bearer $tok" "${url}health")
check "tunnel: curl GET /v1/health with the token: 200" test "$code" = 200
check "tunnel: ... status ok" test "$(jget "$T/health" 'd["status"]')" = ok
code=$(curl -s -o /dev/null -w '%{http_code}' "${url}health")
check "tunnel: without the token: 401" test "$code" = 401
out=$(curl -s -H "Authorization: Bearer $tok" --data-binary 'abc' "${url}functions/upper/call")
check "tunnel: curl POST call" test "$out" = ABC
tport=$(echo "$url" | sed -E 's#http://127.0.0.1:([0-9]+)/.*#\1#')
check "tunnel: listens on loopback only" sh -c "ss -ltnH | awk '{print \$4}' | grep -qx '127.0.0.1:$tport'"
# the C client example through the tunnel: calls and a batch on one connection
expect_rc 0 "C client: calls and a batch through the tunnel" "$EXAMPLE" "$url" "$tokfile" upper ab cd
check "C client: the calls' outputs" contains "$OUT" "call 1: CD"
check "C client: the batch's outputs in order" contains "$OUT" "batch 0: AB"
expect_rc 1 "C client: a crash is reported" "$EXAMPLE" "$url" "$tokfile" crash x
check "C client: ... as crashed" contains "$ERR" "crashed"
kill -INT "$TPID"; wait "$TPID"; trc=$?; TPID=
check "tunnel: Ctrl-C ends it with status 0" test "$trc" = 0

# ---- tunnel (unix socket)
"$HP" tunnel ep --unix "$T/ep.sock" > "$T/tunnel.out" 2> "$T/tunnel.err" &
TPID=$!
wait_for 30 test -S "$T/ep.sock"
check "tunnel --unix: the socket is mode 0600" test "$(stat -c %a "$T/ep.sock")" = 600
out=$(curl -s --unix-socket "$T/ep.sock" -H "Authorization: Bearer $tok" --data-binary 'xy' http://localhost/v1/functions/upper/call)
check "tunnel --unix: curl through the socket" test "$out" = XY
expect_rc 0 "C client: through the unix socket" "$EXAMPLE" "unix:$T/ep.sock" "$tokfile" echo zz
check "C client: ... its output" contains "$OUT" "call 0: zz"
kill -TERM "$TPID"; wait "$TPID"; TPID=
check "tunnel --unix: the socket is removed at the end" test ! -e "$T/ep.sock"
expect_rc 2 "tunnel: a non-loopback --listen is refused" "$HP" tunnel ep --listen 0.0.0.0:0
check "tunnel: ... saying loopback" contains "$ERR" "loopback"

# ---- stop, start again: the old token is refused, a new one fetched
expect_rc 0 "stop" "$HP" endpoint stop ep
check "stop: the endpoint.json on the site is gone" "${SSH[@]}" "test ! -e ~/.$TAG/hpcport/endpoints/demo/state/endpoint.json"
check "stop: the token is forgotten here" test ! -e "$tokfile"
expect_rc 8 "status after stop: nothing started from here" "$HP" endpoint status ep
check "status after stop: says to start it" contains "$ERR" "endpoint start"
expect_rc 0 "start again" "$HP" endpoint start ep --config "$T/cfg/demo.yaml"
tok2=$(cat "$tokfile")
check "start again: a new token" test -n "$tok2" -a "$tok2" != "$tok"
printf '%s\n' "$tok" > "$tokfile"
expect_rc 9 "call with the old token: exit 9" "$HP" call ep upper --input "$T/in.txt"
check "call with the old token: says to run endpoint start or status" contains "$ERR" "hpcport endpoint start ep"
printf '%s\n' "$tok2" > "$tokfile"
expect_rc 0 "call with the new token" "$HP" call ep upper --input "$T/in.txt"

# ---- a workflow with function tasks: calls through the endpoint, a Slurm job after them
mkdir -p "$T/wf"
printf 'alpha' > "$T/wf/a.txt"
printf 'beta' > "$T/wf/b.txt"
cat > "$T/wf/wf.yaml" <<EOF
name: $TAG-fn
tasks:
  up:
    matrix: {x: [a, b]}
    function: upper
    endpoint: {name: demo}
    input: "{x}.txt"
    output: "out/{x}.up"
  next:
    after: up
    command: [sh, -c, 'echo next > next.txt']
    outputs: [next.txt]
  crash:
    function: crash
    output: crash.out
EOF
expect_rc 0 "workflow: plan shows the function tasks as calls" "$HP" plan "$T/wf/wf.yaml" --site ep
check "workflow: ... naming the function" contains "$OUT" "a call of 'upper' on endpoint demo"
expect_rc 1 "workflow: run (function tasks and a Slurm job; the crash fails)" "$HP" run "$T/wf/wf.yaml" --site ep
check "workflow: the outputs of the calls, written here" test "$(cat "$T/wf/out/a.up" "$T/wf/out/b.up")" = "ALPHABETA"
check "workflow: the Slurm job after them ran and its output came back" test "$(cat "$T/wf/next.txt" 2>/dev/null)" = next
check "workflow: the crashed call wrote no output" test ! -e "$T/wf/crash.out"
check "workflow: the crash is reported with its reason" contains "$OUT$ERR" "crashed"
"$HP" status "$TAG-fn" --tasks > "$T/wfstatus" 2>&1
check "workflow: status lists the failed call" grep -q "crash" "$T/wfstatus"
printf 'name: x\ntasks:\n  t:\n    command: [true]\n    output: o\n' > "$T/wf/bad.yaml"
expect_rc 3 "workflow: output without function is refused" "$HP" validate "$T/wf/bad.yaml"
check "workflow: ... at its line" contains "$ERR" "bad.yaml:5:5"

# ---- the endpoint killed: status says endpoint.json is stale
pid=$(jget "$XDG_STATE_HOME/hpcport/endpoints/@ep/demo/endpoint.json" 'd["endpoint"]["pid"]')
"${SSH[@]}" "kill -9 $pid" >/dev/null 2>&1
sleep 0.5
expect_rc 10 "status of a killed endpoint: exit 10" "$HP" endpoint status ep
check "status of a killed endpoint: says stale" contains "$ERR" "stale"
expect_rc 10 "call to a killed endpoint: exit 10" "$HP" call ep upper --input "$T/in.txt"
"${SSH[@]}" "rm -f ~/.$TAG/hpcport/endpoints/demo/state/endpoint.json" >/dev/null 2>&1
expect_rc 10 "status without endpoint.json: not running" "$HP" endpoint status ep
check "status without endpoint.json: says not running" contains "$ERR" "not running"
expect_rc 0 "stop of an endpoint that is gone: forgotten" "$HP" endpoint stop ep
check "stop of an endpoint that is gone: says so" contains "$OUT" "not running"

# ---- a site without hpcport
expect_rc 4 "start: remote.hpcport missing on the site" "$HP" endpoint start ep --config "$T/cfg/demo.yaml" --set remote.hpcport=/nonexistent/hpcport
check "start: ... says to set remote.hpcport" contains "$ERR" "remote.hpcport"
check "start: ... and keeps nothing here" test ! -e "$tokfile"
printf 'name: x\nfunctions:\n  - {name: f, library: ../f.so, symbol: s}\n' > "$T/cfg/bad.yaml"
expect_rc 3 "start: a library outside the configuration's directory" "$HP" endpoint start ep --config "$T/cfg/bad.yaml"

# ---- --batch: the endpoint as a Slurm job, serving TLS on the node's address
mkdir -p "$T/cfg/tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=hpcport-test-node \
    -keyout "$T/cfg/tls/key.pem" -out "$T/cfg/tls/cert.pem" >/dev/null 2>&1
chmod 0600 "$T/cfg/tls/key.pem"
sed -e 's/^name: demo/name: bdemo/' "$T/cfg/demo.yaml" > "$T/cfg/bdemo.yaml"
# TLS on loopback too (tls.always): the job serves on 127.0.0.1 (--bind), since
# tests send traffic to loopback only, never to the machine's own addresses
echo "tls: {cert: tls/cert.pem, key: tls/key.pem, always: true}" >> "$T/cfg/bdemo.yaml"
expect_rc 3 "start --batch: a configuration without tls is refused" "$HP" endpoint start ep --config "$T/cfg/demo.yaml" --batch
check "start --batch: ... saying TLS" contains "$ERR" "TLS"
expect_rc 2 "start: --walltime without --batch is a usage error" "$HP" endpoint start ep --config "$T/cfg/demo.yaml" --walltime 5m
expect_rc 0 "start --batch: a Slurm job serves the endpoint" "$HP" endpoint start ep --config "$T/cfg/bdemo.yaml" --batch --bind 127.0.0.1 --walltime 10m --json
echo "$OUT" > "$T/batch.json"
job=$(jget "$T/batch.json" 'd["job_id"]')
check "start --batch: the record names the job" test -n "$job"
check "start --batch: the job runs in Slurm" sh -c "squeue -h -j '$job' -o %T | grep -q RUNNING"
check "start --batch: it listens on the --bind address with TLS" test "$(jget "$T/batch.json" 'd["endpoint"]["tls"] and d["endpoint"]["listen"]["host"] == "127.0.0.1"')" = True
check "start --batch: the token is not in the output" test -z "$(grep -F "$(cat "$XDG_STATE_HOME/hpcport/endpoints/@ep/bdemo/token")" "$T/batch.json")"
expect_rc 0 "status --batch endpoint" "$HP" endpoint status ep --name bdemo
check "status: names the job and TLS" contains "$OUT" "batch job $job"
expect_rc 0 "call through the login node to the compute node (TLS)" "$HP" call ep upper --name bdemo --input "$T/in.txt"
check "call: the output" test "$OUT" = "HELLO ENDPOINT"
expect_rc 12 "call: a crash on the compute node: exit 12" "$HP" call ep crash --name bdemo
"$HP" tunnel ep --name bdemo > "$T/tunnel.out" 2> "$T/tunnel.err" &
TPID=$!
wait_for 30 grep -q '^url: ' "$T/tunnel.out"
url=$(sed -n 's/^url: //p' "$T/tunnel.out")
pin=$(sed -n 's/^tls: .* pin is \([^ ]*\) .*/\1/p' "$T/tunnel.out")
check "tunnel: an https URL and the key's pin" test "${url%%:*}" = https -a -n "$pin"
btok=$(cat "$XDG_STATE_HOME/hpcport/endpoints/@ep/bdemo/token")
out=$(curl -s -k --pinnedpubkey "$pin" -H "Authorization: Bearer $btok" --data-binary 'tls' "${url}functions/upper/call")
check "tunnel: curl with the pinned key through the tunnel" test "$out" = TLS
out=$(curl -s -k --pinnedpubkey "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" -H "Authorization: Bearer $btok" "${url}health")
check "tunnel: a wrong pin is refused by curl" test -z "$out"
kill -INT "$TPID"; wait "$TPID"; TPID=
expect_rc 0 "stop --batch: the job is canceled" "$HP" endpoint stop ep --name bdemo
check "stop --batch: the job is gone" wait_for 30 sh -c "! squeue -h -j '$job' -o %T 2>/dev/null | grep -q ."
check "stop --batch: endpoint.json is gone" "${SSH[@]}" "test ! -e ~/.$TAG/hpcport/endpoints/bdemo/state/endpoint.json"

check_sanitizers
done_testing
