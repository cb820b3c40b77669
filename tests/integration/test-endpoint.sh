#!/bin/bash
# hpcport endpoint serve, driven with curl: the CPU test functions
# (endpoint/testfn.c, built by meson) and commands, on loopback TCP, on a
# unix socket and with TLS on loopback (a CA made here with openssl). Tokens,
# payload limit, malformed requests, a segfault, a hang, clients that leave
# mid-call, queue full, batches, tasks, keep-alive, GPU pinning, metrics,
# SIGTERM, kill -9 and restart, a second serve, config errors.
# usage: test-endpoint.sh TESTFN_BUILD_DIR
LIBDIR=$(cd "$1" && pwd)
. "$(dirname "$0")/tap.sh"
command -v curl >/dev/null || { echo "Bail out! curl is needed (tools/install-deps.sh --test)"; exit 1; }
SD=$T/state/hpcport/endpoints
mkdir -p "$T/ep/lib"
ln -s "$LIBDIR/libtestfn.so" "$T/ep/lib/libtestfn.so"
jq_() { /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

cat >"$T/ep/ep.yaml" <<'YAML'
name: t1
listen: 127.0.0.1:0
workers: 1
gpus: [0, 1]
limits: {max_payload: 64KiB, timeout: 2s, queue_depth: 5}
functions:
  - {name: echo, library: lib/libtestfn.so}
  - {name: noop, library: lib/libtestfn.so}
  - {name: reverse, library: lib/libtestfn.so}
  - {name: segfault, library: lib/libtestfn.so}
  - {name: hang, library: lib/libtestfn.so}
  - {name: fail, library: lib/libtestfn.so}
  - {name: initfail, library: lib/libtestfn.so, config: /no/such/data}
  - {name: wrongabi, library: lib/libtestfn.so}
  - {name: state, library: lib/libtestfn.so, symbol: hp_function_state, config: tagged, workers: 2}
  - {name: count, command: [wc, -c]}
  - {name: failcmd, command: [sh, -c, 'echo partial; echo oops >&2; exit 3']}
YAML

# start NAME [serve options]: serve --daemon; sets PORT TOK PID U H
start() {
    "$HP" endpoint serve --config "$T/ep/ep.yaml" --daemon "$@" >"$T/start.json" 2>"$T/start.err"
    local rc=$?
    [ $rc = 0 ] || { sed 's/^/# /' "$T/start.err"; return $rc; }
    PID=$(jq_ "$T/start.json" 'd["pid"]')
    PORT=$(jq_ "$T/start.json" 'd["listen"].get("port", 0)')
    TOK=$(cat "$SD/$(jq_ "$T/start.json" 'd["name"]')/token")
    U=http://127.0.0.1:$PORT
    H="Authorization: Bearer $TOK"
}
# req METHOD PATH [curl args]: body in $T/body, status in $CODE
req() {
    local m=$1 p=$2; shift 2
    CODE=$(curl -s -o "$T/body" -w '%{http_code}' -X "$m" -H "$H" "$@" "$U$p")
    BODY=$(tr -d '\0' <"$T/body")
}
stop_wait() {   # PID: SIGTERM and wait (10 s at most)
    kill -TERM "$1" 2>/dev/null
    for _ in $(seq 200); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
    return 1
}
frames() { /usr/bin/python3 -c 'import struct,sys; sys.stdout.buffer.write(b"".join(struct.pack(">I",len(a.encode()))+a.encode() for a in sys.argv[1:]))' "$@"; }
unframes() { /usr/bin/python3 -c '
import struct,sys
d=open(sys.argv[1],"rb").read(); o=0
while o < len(d):
    st=d[o]; n=struct.unpack(">I", d[o+1:o+5])[0]; print(st, d[o+5:o+5+n].decode()); o+=5+n' "$1"; }

# --- start, files
check "serve --daemon returns once listening" start
D=$SD/t1
check "endpoint.json names the endpoint, its pid, address and functions" \
    test "$(jq_ "$T/start.json" 'd["name"], d["listen"]["host"], d["tls"], len(d["functions"])')" = "('t1', '127.0.0.1', False, 11)"
check "endpoint.json on disk is what serve printed" cmp -s "$T/start.json" "$D/endpoint.json"
check "token: 64 hex chars, mode 0600" \
    test "$(stat -c %a "$D/token")$(grep -cE '^[0-9a-f]{64}$' "$D/token")" = 6001
check "endpoint.json mode 0600, state dir 0700" \
    test "$(stat -c %a "$D/endpoint.json") $(stat -c %a "$D")" = "600 700"
check "the pid is alive" kill -0 "$PID"
check "the token is not in the log" bash -c "! grep -qF '$TOK' '$D/endpoint.log'"

# --- basics
for _ in $(seq 100); do   # until the workers that can start have started
    req GET /v1/health
    [ "$(jq_ "$T/body" 'd["workers"]["total"]')" = 10 ] && break
    sleep 0.05
done
check "health: 200 ok with workers and queue" \
    contains "$CODE $BODY" '200 {"status":"ok","name":"t1","version"'
check "health counts the workers (9 functions that start, state has 2)" \
    test "$(jq_ "$T/body" 'd["workers"]["total"], d["queue"]["max"]')" = "(10, 5)"
req GET /v1/functions
check "functions: all 11, with kind, workers, timeout and max_payload" \
    test "$(jq_ "$T/body" '[(f["name"], f["kind"], f["workers"], f["timeout_s"], f["max_payload"]) for f in d["functions"]][8:10]')" \
    = "[('state', 'library', 2, 2.0, 65536), ('count', 'command', 1, 2.0, 65536)]"
head -c 3000 /dev/urandom >"$T/rand"
curl -s -H "$H" --data-binary @"$T/rand" -o "$T/rand.out" -D "$T/hdr" "$U/v1/functions/echo/call"
check "echo returns the input bytes" cmp -s "$T/rand" "$T/rand.out"
check "a call's reply names its task and is octet-stream" \
    bash -c "grep -qi '^X-Hpcport-Task: [0-9a-f]*' '$T/hdr' && grep -qi '^Content-Type: application/octet-stream' '$T/hdr'"
req POST /v1/functions/reverse/call --data-binary abc
check "reverse" test "$CODE $BODY" = "200 cba"
req POST /v1/functions/noop/call --data-binary ''
check "noop: 200, empty" test "$CODE:$BODY" = "200:"
req POST /v1/functions/count/call --data-binary hello
check "a command function: input on stdin, stdout back" test "$CODE $BODY" = "200 5"
req POST /v1/functions/failcmd/call --data-binary x
check "a command that exits 3: 500 function_failed with its stderr tail" \
    test "$CODE $BODY" = '500 {"error":{"code":"function_failed","message":"command '"'sh'"' exited with status 3: oops"}}'
req POST /v1/functions/fail/call --data-binary xyz
check "a library call that fails: 500 with its message" \
    test "$CODE $BODY" = '500 {"error":{"code":"function_failed","message":"function '"'fail'"' returned 7: bad input: xyz"}}'

# --- tokens
CODE=$(curl -s -o "$T/body" -D "$T/hdr" -w '%{http_code}' "$U/v1/health")
check "no token: 401 unauthorized" \
    bash -c "[ $CODE = 401 ] && grep -q '\"code\":\"unauthorized\"' '$T/body' && grep -qi '^WWW-Authenticate: Bearer' '$T/hdr'"
# the token with its last digit changed (to 1 if it is 0, else to 0)
WRONG=${TOK%?}0; [ "$WRONG" = "$TOK" ] && WRONG=${TOK%?}1
CODE=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $WRONG" "$U/v1/health")
check "a wrong token of the same length: 401" test "$CODE" = 401
CODE=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer x" "$U/v1/functions/echo/call" -d x)
check "a short wrong token: 401, and no call" test "$CODE" = 401
CODE=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Basic $TOK" "$U/v1/health")
check "another scheme: 401" test "$CODE" = 401

# --- limits and malformed requests
head -c 70000 /dev/zero >"$T/big"
req POST /v1/functions/echo/call --data-binary @"$T/big"
check "a body over max_payload: 413" test "$CODE" = 413
req POST /v1/functions/echo/call -H 'Transfer-Encoding: chunked' --data-binary @"$T/big"
check "a chunked body over max_payload: 413" test "$CODE" = 413
req POST /v1/functions/echo/call --data-binary ok
check "the endpoint serves after a 413" test "$CODE $BODY" = "200 ok"
printf '\0\0\0\011abc' >"$T/badframes"
req POST /v1/functions/echo/batch --data-binary @"$T/badframes"
check "bad frames: 400 naming the frame" \
    test "$CODE $BODY" = '400 {"error":{"code":"bad_request","message":"bad frames: frame 0 at offset 0 says 9 bytes, only 3 follow"}}'
printf '\0\0' >"$T/badframes"
req POST /v1/functions/echo/batch --data-binary @"$T/badframes"
check "stray bytes in frames: 400" contains "$CODE $BODY" '400 {"error":{"code":"bad_request","message":"bad frames: 2 stray bytes'
req POST /v1/functions/nosuch/call -d x
check "unknown function: 404 not_found" \
    contains "$CODE $BODY" "404 {\"error\":{\"code\":\"not_found\",\"message\":\"no function 'nosuch' on endpoint 't1'"
req PUT /v1/functions/echo/call -d x
check "a bad method: 405 naming the allowed one" \
    contains "$CODE $BODY" '405 {"error":{"code":"method_not_allowed","message":"method PUT is not allowed on /v1/functions/echo/call; use POST"'
req GET /v1/nothing
check "unknown path: 404" test "$CODE" = 404
req GET /v1/tasks/zz-not-an-id
check "a bad task id: 404" test "$CODE" = 404
req GET '/v1/tasks/1?wait=abc'
check "an unknown task: 404" test "$CODE" = 404
CODE=$(printf 'GARBAGE\r\n\r\n' | timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT; cat >&3; head -c 12 <&3")
check "a request line that is not HTTP: 400" contains "$CODE" "400"

# --- a function that crashes
req POST /v1/functions/segfault/call --data-binary x
check "segfault: 502 crashed naming SIGSEGV" \
    test "$CODE $BODY" = '502 {"error":{"code":"crashed","message":"worker killed by signal 11 (Segmentation fault)"}}'
req POST /v1/functions/segfault/call --data-binary ok
check "the next call to it works (worker replaced)" test "$CODE" = 200
req POST /v1/functions/echo/call --data-binary still
check "other functions kept serving" test "$CODE $BODY" = "200 still"
req GET /v1/health
check "health counts the restart" test "$(jq_ "$T/body" 'd["workers"]["restarts"]')" = 1
RESTARTS=1

for i in 1 2 3 4 5 6 7 8; do   # teach it that calls are cheap: they go in chunks
    req POST /v1/functions/segfault/call --data-binary ok
done
frames ok ok x ok ok >"$T/batch"
req POST /v1/functions/segfault/batch --data-binary @"$T/batch"
BID=$(jq_ "$T/body" 'd["batch"]')
req GET "/v1/batches/$BID?wait=10"
check "a crash inside a chunk of calls fails only the call that crashed" \
    test "$(unframes "$T/body" | tr '\n' '|')" = "0 |0 |1 worker killed by signal 11 (Segmentation fault)|0 |0 |"
check "... the others ran again one by one (logged)" \
    grep -q 'function segfault: [2-5] calls of that worker.s chunk run again one by one' "$D/endpoint.log"

# --- a function that never returns
t0=$(date +%s.%N)
req POST /v1/functions/hang/call --data-binary x
t1=$(date +%s.%N)
check "hang: 504 timeout after the 2 s limit" \
    test "$CODE $BODY" = '504 {"error":{"code":"timeout","message":"no answer in 2 s; worker replaced"}}'
check "... not before, and not much after" \
    /usr/bin/python3 -c "import sys; d=$t1-$t0; sys.exit(not 1.9 <= d < 5)"
req POST /v1/functions/hang/call --data-binary quick
check "the next call to it works" test "$CODE" = 200

# --- clients that leave mid-call
curl -s -m 0.5 -H "$H" --data-binary slow "$U/v1/functions/hang/call" >/dev/null
check "a client that gives up mid-call (curl --max-time)" test $? = 28
req POST /v1/functions/hang/call --data-binary quick
check "the worker is reused after the running call's result is dropped" test "$CODE" = 200
curl -s -m 5 -H "$H" --data-binary slow "$U/v1/functions/hang/call" >/dev/null &
bg=$!
sleep 0.2
curl -s -m 0.2 -H "$H" --data-binary x "$U/v1/functions/hang/call" >/dev/null
sleep 0.2
req GET /v1/health
check "a queued call whose client left is dropped (queue empty)" \
    test "$(jq_ "$T/body" 'd["queue"]["depth"]')" = 0
wait $bg
req GET /v1/metrics
check "... counted as canceled" grep -q '^hpcport_endpoint_calls_total{function="hang",result="canceled"} 1$' "$T/body"
req POST /v1/functions/hang/call --data-binary quick
check "and the worker still serves" test "$CODE" = 200

# --- submit, poll, wait, cancel, queue full
req POST /v1/functions/echo/submit --data-binary later
TID=$(jq_ "$T/body" 'd["task"]')
check "submit: 202 with a task id" test "$CODE" = 202
req GET "/v1/tasks/$TID?wait=5"
check "wait for it: 200 with the output" test "$CODE $BODY" = "200 later"
req GET "/v1/tasks/$TID"
check "a finished task can be fetched again" test "$CODE $BODY" = "200 later"
req POST /v1/functions/hang/submit --data-binary x
BLOCK=$(jq_ "$T/body" 'd["task"]')
ids=()
for i in 1 2 3 4 5; do
    req POST /v1/functions/hang/submit --data-binary quick
    ids+=("$(jq_ "$T/body" 'd["task"]')")
done
check "five queued behind a hung call: 202 each" test "$CODE" = 202
req POST /v1/functions/hang/submit --data-binary quick
check "the sixth: 429 queue_full" contains "$CODE $BODY" '429 {"error":{"code":"queue_full"'
req POST /v1/functions/echo/call --data-binary x
check "a call to another function: 429 too (the queue is shared)" test "$CODE" = 429
req GET "/v1/tasks/${ids[0]}"
check "poll a queued task: 202 queued" test "$CODE $BODY" = "202 {\"task\":\"${ids[0]}\",\"state\":\"queued\"}"
req GET "/v1/tasks/$BLOCK"
check "poll the running one: 202 running" contains "$CODE $BODY" '202 {"task":"'"$BLOCK"'","state":"running"}'
req DELETE "/v1/tasks/${ids[0]}"
check "cancel a queued task: canceled 1" test "$CODE $BODY" = '200 {"canceled":1}'
req GET "/v1/tasks/${ids[0]}"
check "a canceled task: 409 canceled" contains "$CODE $BODY" '409 {"error":{"code":"canceled"'
req DELETE "/v1/tasks/$BLOCK"
check "cancel a running task: canceled 0 (it runs to its end)" test "$CODE $BODY" = '200 {"canceled":0}'
req GET "/v1/tasks/$BLOCK?wait=0.2"
check "wait that runs out: 202" test "$CODE" = 202
req GET "/v1/tasks/$BLOCK?wait=10"
check "wait for the hung task: 504 timeout" contains "$CODE $BODY" '504 {"error":{"code":"timeout"'
req GET "/v1/tasks/${ids[4]}?wait=5"
check "the queued ones ran after it" test "$CODE" = 200

# --- batches
frames $(seq -f 'item-%g' 1 50) >"$T/batch"
req POST /v1/functions/reverse/batch --data-binary @"$T/batch" -H 'Content-Type: application/x-hpcport-frames'
check "batch of 50 over the queue depth of 5: 429" test "$CODE" = 429
frames one two '' four five >"$T/batch"
req POST /v1/functions/reverse/batch --data-binary @"$T/batch" -H 'Content-Type: application/x-hpcport-frames'
BID=$(jq_ "$T/body" 'd["batch"]')
FIRST=$(jq_ "$T/body" 'd["first_task"]')
check "batch: 202 with its id, size and first task" test "$CODE $(jq_ "$T/body" 'd["tasks"]')" = "202 5"
req GET "/v1/batches/$BID?wait=10"
check "batch results: frames" contains "$(cat "$T/body" | wc -c) $CODE" " 200"
check "... in order, each ok" test "$(unframes "$T/body" | tr '\n' '|')" = "0 eno|0 owt|0 |0 ruof|0 evif|"
req GET "/v1/batches/$BID"
check "a fetched batch is gone" test "$CODE" = 404
req GET "/v1/tasks/$FIRST"
check "... with its tasks" test "$CODE" = 404
frames a b >"$T/batch"
req POST /v1/functions/fail/batch --data-binary @"$T/batch"
BID=$(jq_ "$T/body" 'd["batch"]')
req GET "/v1/batches/$BID?wait=10"
check "a batch of failures: status 1 with the messages" \
    test "$(unframes "$T/body" | tr '\n' '|')" = "1 function 'fail' returned 7: bad input: a|1 function 'fail' returned 7: bad input: b|"
frames slow slow slow slow >"$T/batch"
req POST /v1/functions/hang/batch --data-binary @"$T/batch"
BID=$(jq_ "$T/body" 'd["batch"]')
FIRST=$(jq_ "$T/body" 'd["first_task"]')
req GET "/v1/batches/$BID"
check "poll an unfinished batch: 202 done/total" contains "$CODE $BODY" '202 {"batch":"'"$BID"'","done":0,"total":4}'
req GET "/v1/tasks/$FIRST?wait=5"
check "a batch's task can be waited for by its id" test "$CODE" = 200
req DELETE "/v1/batches/$BID"
check "cancel a batch: the queued ones" test "$CODE $BODY" = '200 {"canceled":2}'
req GET "/v1/batches/$BID?wait=10"
check "its results: ok, ok, canceled, canceled" \
    test "$(unframes "$T/body" | cut -c1 | tr -d '\n')" = "0011"
frames slow slow slow >"$T/batch"
req POST /v1/functions/hang/batch --data-binary @"$T/batch"
BID=$(jq_ "$T/body" 'd["batch"]')
curl -s -H "$H" -o "$T/waited" "$U/v1/batches/$BID?wait=20" &
bg=$!
sleep 0.2
req DELETE "/v1/batches/$BID"
check "cancel a batch someone waits for" test "$CODE $BODY" = '200 {"canceled":2}'
wait $bg
check "the waiter gets its results: ok, canceled, canceled" \
    test "$(unframes "$T/waited" | cut -c1 | tr -d '\n')" = "011"
req GET /v1/health
check "the endpoint still serves" test "$CODE" = 200
frames 1 2 3 4 >"$T/batch"
req POST /v1/functions/state/batch --data-binary @"$T/batch"
BID=$(jq_ "$T/body" 'd["batch"]')
req GET "/v1/batches/$BID?wait=10"
unframes "$T/body" >"$T/state.out"
check "two workers share a batch; init ran once in each (its state counts calls)" \
    test "$(sort "$T/state.out" | tr '\n' '|')" = "0 tagged worker=0 calls=1 gpu=0|0 tagged worker=0 calls=2 gpu=0|0 tagged worker=1 calls=1 gpu=1|0 tagged worker=1 calls=2 gpu=1|"

# --- functions that cannot start
req POST /v1/functions/initfail/call -d x
check "init fails: 500 with its message" \
    test "$CODE $BODY" = "500 {\"error\":{\"code\":\"function_failed\",\"message\":\"function 'initfail' could not start: init of 'initfail' failed (1): cannot open /no/such/data\"}}"
req POST /v1/functions/wrongabi/call -d x
check "another ABI: 500 naming the library and the ABIs" \
    contains "$CODE $BODY" "500 {\"error\":{\"code\":\"function_failed\",\"message\":\"function 'wrongabi' could not start: $T/ep/lib/libtestfn.so: hp_function_wrongabi has function ABI 2, this endpoint speaks 1"
req GET /v1/health
check "health lists them" test "$(jq_ "$T/body" 'sorted(d["errors"])')" = "['initfail', 'wrongabi']"

# --- keep-alive, metrics
curl -sv -H "$H" "$U/v1/health" "$U/v1/functions" "$U/v1/health" -o /dev/null -o /dev/null -o /dev/null 2>"$T/verbose"
check "keep-alive: three requests on one connection" \
    test "$(grep -c 'Re-using existing connection' "$T/verbose")" = 2
req GET /v1/metrics
check "metrics: calls by function and result" \
    grep -q '^hpcport_endpoint_calls_total{function="segfault",result="crashed"} 2$' "$T/body"
check "metrics: call time histogram" grep -q '^hpcport_endpoint_call_seconds_bucket{function="echo",le="+Inf"} ' "$T/body"
check "metrics: queue, workers busy, restarts" \
    bash -c "grep -q '^hpcport_endpoint_queue_depth 0$' '$T/body' && grep -q '^hpcport_endpoint_workers_busy ' '$T/body' && grep -q '^hpcport_endpoint_worker_restarts_total [1-9]' '$T/body'"

# --- a second serve, kill -9, restart
expect_rc 1 "a second serve of the same name is refused" "$HP" endpoint serve --config "$T/ep/ep.yaml"
check "... saying it runs, with its pid" contains "$ERR" "endpoint 't1' is already running (pid $PID"
curl -s -H "$H" -d x -o /dev/null "$U/v1/functions/hang/submit"   # a worker stuck in a call
sleep 0.2
WORKERS=$(ps -o pid= --ppid "$PID" | tr '\n' ' ')
OLDH=$H
kill -9 "$PID"
for _ in $(seq 100); do
    alive=0
    for w in $WORKERS; do kill -0 "$w" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
done
check "kill -9: its workers exit too (EOF on their socket)" test "$alive" = 0
export HP_TESTFN_FINI=$T/fini.log
check "restart after kill -9" start
check "... with a new token" test "$H" != "$OLDH"
CODE=$(curl -s -o /dev/null -w '%{http_code}' -H "$OLDH" "$U/v1/health")
check "the old token is refused" test "$CODE" = 401
req POST /v1/functions/echo/call --data-binary back
check "the new one works" test "$CODE $BODY" = "200 back"

# --- SIGTERM: an in-flight call finishes, files removed
curl -s -H "$H" --data-binary slow -o "$T/inflight" -w '%{http_code}' "$U/v1/functions/hang/call" >"$T/inflight.code" &
bg=$!
sleep 0.2
check "SIGTERM stops it" stop_wait "$PID"
wait $bg
check "the call in flight finished" test "$(cat "$T/inflight.code")" = 200
check "endpoint.json and the token are removed" bash -c "[ ! -e '$D/endpoint.json' ] && [ ! -e '$D/token' ]"
check "the log says it stopped" grep -q 'endpoint t1: stopped' "$D/endpoint.log"
check "fini ran in each worker of the state function" \
    test "$(sort "$T/fini.log" | tr '\n' '|')" = "fini worker=0 calls=0|fini worker=1 calls=0|"
unset HP_TESTFN_FINI

# --- results are kept within limits.max_results
sed 's/^name: t1$/name: t4/; s/^limits: .*/limits: {max_results: 150}/' "$T/ep/ep.yaml" >"$T/ep/small.yaml"
"$HP" endpoint serve --config "$T/ep/small.yaml" --daemon >"$T/start.json" 2>"$T/start.err"
check "serve with max_results: 150 bytes" test $? = 0
PID=$(jq_ "$T/start.json" 'd["pid"]')
U=http://127.0.0.1:$(jq_ "$T/start.json" 'd["listen"]["port"]')
H="Authorization: Bearer $(cat "$SD/t4/token")"
tids=()
for i in 1 2 3; do
    req POST /v1/functions/echo/submit --data-binary "$(printf "%060d" $i)"
    tids+=("$(jq_ "$T/body" 'd["task"]')")
    req GET "/v1/tasks/${tids[-1]}?wait=5"
done
req GET "/v1/tasks/${tids[0]}"
check "the oldest result went when 180 bytes were kept" test "$CODE" = 404
req GET "/v1/tasks/${tids[2]}"
check "the newest is kept" test "$CODE $BODY" = "200 $(printf "%060d" 3)"
check "stop it" stop_wait "$PID"

# --- unix socket
check "serve on a unix socket" start --name t2 --listen "unix:$T/ep.sock"
check "endpoint.json names the socket" test "$(jq_ "$T/start.json" 'd["listen"]')" = "{'unix': '$T/ep.sock'}"
check "the socket is mode 0600" test "$(stat -c %a "$T/ep.sock")" = 600
TOK2=$(cat "$SD/t2/token")
OUT=$(curl -s --unix-socket "$T/ep.sock" -H "Authorization: Bearer $TOK2" --data-binary unix http://localhost/v1/functions/reverse/call)
check "a call over the socket" test "$OUT" = xinu
CODE=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$T/ep.sock" http://localhost/v1/health)
check "no token over the socket: 401" test "$CODE" = 401
check "stop it" stop_wait "$PID"
check "the socket is removed" test ! -e "$T/ep.sock"

# --- relative paths: config, --state-dir (the daemon changes to /)
(cd "$T" && "$HP" endpoint serve --config ep/ep.yaml --name t5 --state-dir relstate --daemon) >"$T/start.json" 2>"$T/start.err"
check "serve with a relative --config and --state-dir" test -f "$T/relstate/endpoint.json"
check "endpoint.json names the configuration by its absolute path" \
    test "$(jq_ "$T/start.json" 'd["config"], d["state_dir"]')" = "('$T/ep/ep.yaml', '$T/relstate')"
PID=$(jq_ "$T/start.json" 'd["pid"]')
check "stop it" stop_wait "$PID"
check "its endpoint.json is removed" test ! -e "$T/relstate/endpoint.json"

# --- TLS on loopback (tls.always)
( cd "$T/ep" &&
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key \
      -out ca.pem -subj /CN=hpcport-test-ca -days 2 &&
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout srv.key \
      -out srv.csr -subj /CN=127.0.0.1 &&
  printf 'subjectAltName=IP:127.0.0.1\n' >ext &&
  openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 \
      -extfile ext ) >/dev/null 2>&1
sed 's/^name: t1$/name: t3/' "$T/ep/ep.yaml" >"$T/ep/tls.yaml"
printf 'tls: {cert: srv.pem, key: srv.key, always: true}\n' >>"$T/ep/tls.yaml"
"$HP" endpoint serve --config "$T/ep/tls.yaml" --daemon >"$T/start.json" 2>"$T/start.err"
check "serve with TLS on loopback" test $? = 0
PID=$(jq_ "$T/start.json" 'd["pid"]')
PORT=$(jq_ "$T/start.json" 'd["listen"]["port"]')
check "endpoint.json says tls" test "$(jq_ "$T/start.json" 'd["tls"]')" = True
TOK3=$(cat "$SD/t3/token")
OUT=$(curl -s --cacert "$T/ep/ca.pem" -H "Authorization: Bearer $TOK3" --data-binary tls "https://127.0.0.1:$PORT/v1/functions/reverse/call")
check "a call over TLS, the server checked against the test CA" test "$OUT" = slt
curl -s -o /dev/null "https://127.0.0.1:$PORT/v1/health"
check "an unknown CA is refused by the client" test $? = 60
curl -s -m 3 -o /dev/null "http://127.0.0.1:$PORT/v1/health"
check "plain HTTP gets nothing" test $? != 0
OUT=$(curl -s --cacert "$T/ep/ca.pem" -H "Authorization: Bearer $TOK3" "https://127.0.0.1:$PORT/v1/health")
check "and the endpoint still serves TLS" contains "$OUT" '"status":"ok"'
check "stop it" stop_wait "$PID"

# --- configuration errors, file:line:col
bad() {   # NAME: write $T/ep/NAME.yaml from stdin
    cat >"$T/ep/$1.yaml"
}
printf 'name: b\nwrokers: 2\nfunctions:\n  - {name: c, command: ["true"]}\n' | bad typo
expect_rc 3 "an unknown key" "$HP" endpoint serve --config "$T/ep/typo.yaml" --check
check "... at its line and column, with a suggestion" \
    test "$ERR" = "$T/ep/typo.yaml:2:1: error: unknown key 'wrokers' (did you mean 'workers'?) (at /wrokers)"
printf 'name: b\nlisten: 0.0.0.0:8080\nfunctions:\n  - {name: c, command: ["true"]}\n' | bad open
expect_rc 3 "listening beyond loopback without TLS is refused" "$HP" endpoint serve --config "$T/ep/open.yaml" --check
check "... at the listen key" contains "$ERR" "$T/ep/open.yaml:2:9: error: listening on 0.0.0.0 (beyond loopback) needs TLS"
printf 'name: b\nfunctions:\n  - {name: c, command: ["true"]}\n' | bad ok
expect_rc 3 "--listen beyond loopback without TLS is refused" "$HP" endpoint serve --config "$T/ep/ok.yaml" --listen 10.1.2.3:80 --check
check "... saying what to do" contains "$ERR" "listening on 10.1.2.3 (beyond loopback) needs TLS; add tls:"
expect_rc 0 "a good configuration passes --check" "$HP" endpoint serve --config "$T/ep/ok.yaml" --check
printf 'name: b\nfunctions:\n  - {name: c, command: ["true"]}\n  - {name: c, command: ["false"]}\n' | bad dup
expect_rc 3 "a function defined twice" "$HP" endpoint serve --config "$T/ep/dup.yaml" --check
check "... at the second name" test "$ERR" = "$T/ep/dup.yaml:4:12: error: function 'c' is defined twice; function names must be unique (at /functions/1/name)"
printf 'name: b\nfunctions:\n  - name: c\n    library: nope.so\n' | bad nolib
expect_rc 3 "a missing library" "$HP" endpoint serve --config "$T/ep/nolib.yaml" --check
check "... at the library key" contains "$ERR" "$T/ep/nolib.yaml:4:14: error: cannot read library $T/ep/nope.so"
printf 'name: b\nlimits: {timeout: soon}\nfunctions:\n  - {name: c, command: ["true"]}\n' | bad dur
expect_rc 3 "a bad duration" "$HP" endpoint serve --config "$T/ep/dur.yaml" --check
check "... positioned" contains "$ERR" "$T/ep/dur.yaml:2:19: error:"
printf 'name: b\nfunctions:\n  - {name: c, command: ["true"], library: x.so}\n' | bad both
expect_rc 3 "library and command together" "$HP" endpoint serve --config "$T/ep/both.yaml" --check
check "... positioned" contains "$ERR" "$T/ep/both.yaml:3:5: error:"
expect_rc 2 "--config is required" "$HP" endpoint serve
expect_rc 0 "--help" "$HP" endpoint serve --help
check "--help shows the synopsis" contains "$OUT" "usage: hpcport endpoint serve --config FILE"

check "no sanitizer reports in the endpoint logs" \
    bash -c "! grep -l 'Sanitizer' '$SD'/*/endpoint.log '$T/relstate/endpoint.log'"
done_testing
