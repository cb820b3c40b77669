#!/bin/bash
# bench/bench-endpoint.sh - round trips and throughput of `hpcport endpoint`
# with the no-op function of examples/endpoint (libdrift.so), against raw
# loopback TCP and Dask distributed measured in the same run:
#   - raw loopback TCP, 1-byte ping-pong (the floor), p50/p99;
#   - no-op synchronous calls over loopback HTTP/1.1 with keep-alive, p50/p99
#     and their ratio to raw TCP (goal: p50 <= 0.3 ms);
#   - the same through `hpcport tunnel` over the harness's sshd, when the
#     services are up (HP_HARNESS_DIR) and hpcport has `tunnel` (goal: p50
#     <= 1 ms); otherwise says why it was not run;
#   - batched no-op calls (BENCH_BATCH frames per batch, BENCH_BATCHES
#     batches, each submitted then waited for): calls/s (goal >= 50,000/s);
#   - Dask distributed (/usr/bin/python3 with python3-distributed), a
#     LocalCluster of 2 worker processes: synchronous no-op p50/p99 and
#     client.map + gather tasks/s; and hpcport's ratios to Dask.
# About a minute. Exits 0 when every part that could run ran (goals missed
# are reported, not failed), 1 when a measurement failed.
# Knobs: BENCH_CALLS (20000), BENCH_BATCH (10000), BENCH_BATCHES (20),
# BENCH_DASK_CALLS (200), BENCH_DASK_BATCH (5000); $HPCPORT, $ENDPOINT_BENCH,
# $ENDPOINT_CONFIG (meson sets them; else looked for in build-rel/ and build/).
# Use a release build (-Dbuildtype=release, no sanitizers) for figures.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
for b in build-rel build; do
    [ -z "${HPCPORT:-}" ] && [ -x "$SRC/$b/cli/hpcport" ] && HPCPORT=$SRC/$b/cli/hpcport
    [ -z "${ENDPOINT_BENCH:-}" ] && [ -x "$SRC/$b/bench/endpoint-bench" ] &&
        ENDPOINT_BENCH=$SRC/$b/bench/endpoint-bench
    [ -z "${ENDPOINT_CONFIG:-}" ] && [ -f "$SRC/$b/examples/endpoint/endpoint.yaml" ] &&
        ENDPOINT_CONFIG=$SRC/$b/examples/endpoint/endpoint.yaml
done
HP=${HPCPORT:-}
EB=${ENDPOINT_BENCH:-}
CFG=${ENDPOINT_CONFIG:-}
N=${BENCH_CALLS:-20000}
BATCH=${BENCH_BATCH:-10000}
BATCHES=${BENCH_BATCHES:-20}
DASK_N=${BENCH_DASK_CALLS:-200}
DASK_BATCH=${BENCH_DASK_BATCH:-5000}
for v in HP EB CFG; do
    if [ -z "${!v}" ]; then
        echo "bench-endpoint: no build found: run ninja -C build (or set HPCPORT, ENDPOINT_BENCH, ENDPOINT_CONFIG)" >&2
        exit 2
    fi
done

say() { echo "bench-endpoint: $*"; }
# get KEY FILE: the value of KEY=... in FILE
get() { sed -n "s/^$1=//p" "$2"; }
fail=0
T=$(mktemp -d)
EP_PID=
TUN_PID=
cleanup() {
    [ -n "$TUN_PID" ] && kill "$TUN_PID" 2>/dev/null
    [ -n "$EP_PID" ] && kill -TERM "$EP_PID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
export XDG_STATE_HOME=$T/state XDG_CONFIG_HOME=$T/config XDG_RUNTIME_DIR=$T/run
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"

say "$HP; $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"

# 1. raw TCP
if ! "$EB" tcp 20000 > "$T/tcp"; then say "raw TCP ping-pong failed"; exit 1; fi
TCP50=$(get tcp_p50_us "$T/tcp")
say "$(printf 'raw loopback TCP, 1-byte round trip: p50 %s us, p99 %s us' "$TCP50" "$(get tcp_p99_us "$T/tcp")")"

# 2. the endpoint on loopback
CALL50= BRATE=
if ! "$HP" endpoint serve --help > /dev/null 2>&1; then
    say "loopback HTTP and batches: not run: $HP has no 'endpoint serve'"
elif ! "$HP" endpoint serve --config "$CFG" --listen 127.0.0.1:0 --state-dir "$T/ep" --daemon \
        > "$T/ep.json" 2> "$T/ep.err"; then
    say "loopback HTTP: the endpoint did not start: $(tail -3 "$T/ep.err")"
    fail=1
else
    EP_PID=$(/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])' < "$T/ep.json")
    PORT=$(/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["listen"]["port"])' < "$T/ep.json")
    if "$EB" call "127.0.0.1:$PORT" "$T/ep/token" noop "$N" > "$T/call"; then
        CALL50=$(get call_p50_us "$T/call")
        say "$(awk -v a="$CALL50" -v b="$(get call_p99_us "$T/call")" -v t="$TCP50" -v n="$N" 'BEGIN {
            printf "no-op call over loopback HTTP (keep-alive, %d calls): p50 %.3f ms, p99 %.3f ms; p50 %.1fx raw TCP; goal p50 <= 0.3 ms: %s",
                   n, a / 1e3, b / 1e3, a / t, a <= 300 ? "met" : "NOT MET" }')"
    else
        say "loopback HTTP: the calls failed"; fail=1
    fi
    if "$EB" batch "127.0.0.1:$PORT" "$T/ep/token" noop "$BATCH" "$BATCHES" > "$T/batch"; then
        BRATE=$(get batch_calls_per_s "$T/batch")
        say "$(awk -v r="$BRATE" -v c="$(get batch_calls "$T/batch")" -v s="$(get batch_seconds "$T/batch")" \
                   -v b="$BATCH" -v m="$(get batch_submit_ms "$T/batch")" 'BEGIN {
            printf "batched no-op calls: %d in %.2f s (batches of %d, %.1f ms to submit one): %.0f calls/s; goal >= 50,000/s: %s",
                   c, s, b, m, r, r >= 50000 ? "met" : "NOT MET" }')"
    else
        say "batched calls failed"; fail=1
    fi
    t0=$(date +%s.%N)
    kill -TERM "$EP_PID" 2>/dev/null
    for _ in $(seq 150); do kill -0 "$EP_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$EP_PID" 2>/dev/null; then
        say "the endpoint did not stop within 15 s of SIGTERM"; fail=1
    else
        say "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "the endpoint stopped %.1f s after SIGTERM", b - a }')"
    fi
    EP_PID=
fi

# 3. through the SSH tunnel (the harness's sshd on loopback)
if [ -z "${HP_HARNESS_DIR:-}" ]; then
    say "SSH tunnel: not run: the services are not up (run under tests/harness/with-services.sh)"
elif ! "$HP" tunnel --help > /dev/null 2>&1; then
    say "SSH tunnel: not run: $HP has no 'tunnel'"
else
    . "$HP_HARNESS_DIR/env.sh"
    # the login node is this machine: this build, where the test user can run it
    R=$HP_H_USER_HOME/.bench-ep.$$
    mkdir -p "$R/bin" && cp "$HP" "$R/bin/hpcport" && chown -R "$HP_H_USER:" "$R" && chmod 0755 "$R" "$R/bin"
    export HPCPORT_SSH_CONFIG=$HP_H_SSH_CONFIG HPCPORT_NO_MASTER=1
    unset SSH_AUTH_SOCK HPCPORT_PROXY
    mkdir -p "$XDG_CONFIG_HOME/hpcport/sites"
    printf 'name: bench\nscheduler: {type: slurm}\nlogin: {host: hp-login-direct}\nfilesystems: {scratch: %s}\nremote: {hpcport: %s}\n' \
        "$R" "$R/bin/hpcport" > "$XDG_CONFIG_HOME/hpcport/sites/bench.yaml"
    if ! "$HP" endpoint start bench --config "$CFG" > "$T/start.out" 2>&1; then
        say "SSH tunnel: 'hpcport endpoint start bench' failed: $(tail -3 "$T/start.out")"; fail=1
    else
        "$HP" tunnel bench > "$T/tunnel.out" 2> "$T/tunnel.err" &
        TUN_PID=$!
        URL=
        for _ in $(seq 100); do
            URL=$(sed -n 's/^url: //p' "$T/tunnel.out")
            [ -n "$URL" ] && break
            kill -0 "$TUN_PID" 2>/dev/null || break
            sleep 0.1
        done
        TOKEN=$(ls "$XDG_STATE_HOME"/hpcport/endpoints/@bench/*/token 2>/dev/null | head -1)
        if [ -z "$URL" ] || [ -z "$TOKEN" ]; then
            say "SSH tunnel: no URL from 'hpcport tunnel bench' or no token: $(tail -3 "$T/tunnel.err")"; fail=1
        elif "$EB" call "$URL" "$TOKEN" noop "$((N / 4))" > "$T/tcall"; then
            say "$(awk -v a="$(get call_p50_us "$T/tcall")" -v b="$(get call_p99_us "$T/tcall")" \
                       -v l="${CALL50:-0}" -v n="$((N / 4))" 'BEGIN {
                printf "no-op call through the SSH tunnel (%d calls): p50 %.3f ms, p99 %.3f ms", n, a / 1e3, b / 1e3;
                if (l > 0) printf "; %.1fx loopback HTTP", a / l;
                printf "; goal p50 <= 1 ms: %s", a <= 1000 ? "met" : "NOT MET" }')"
        else
            say "SSH tunnel: the calls failed"; fail=1
        fi
        kill "$TUN_PID" 2>/dev/null; wait "$TUN_PID" 2>/dev/null; TUN_PID=
        "$HP" endpoint stop bench > /dev/null 2>&1 || say "SSH tunnel: 'hpcport endpoint stop bench' failed"
    fi
    rm -rf "$R"
fi

# 4. Dask distributed
if ! /usr/bin/python3 -c 'import distributed' 2> /dev/null; then
    say "Dask: not run: python3-distributed is not installed (tools/install-deps.sh --bench, or apt-get install python3-distributed)"
elif timeout 100 /usr/bin/python3 "$HERE/bench-dask.py" "$DASK_N" "$DASK_BATCH" 1 > "$T/dask" 2> "$T/dask.err"; then
    D50=$(get dask_p50_us "$T/dask")
    DRATE=$(get dask_tasks_per_s "$T/dask")
    say "$(awk -v a="$D50" -v b="$(get dask_p99_us "$T/dask")" -v r="$DRATE" -v n="$DASK_N" -v m="$DASK_BATCH" 'BEGIN {
        printf "Dask LocalCluster (2 worker processes): no-op submit().result() (%d calls): p50 %.3f ms, p99 %.3f ms; client.map + gather of %d: %.0f tasks/s",
               n, a / 1e3, b / 1e3, m, r }')"
    if [ -n "$CALL50" ] && [ -n "$BRATE" ]; then
        say "$(awk -v a="$CALL50" -v d="$D50" -v r="$BRATE" -v q="$DRATE" 'BEGIN {
            printf "hpcport/Dask: round trip p50 %.0fx shorter; batched rate %.0fx higher", d / a, r / q }')"
    fi
else
    say "Dask: failed: $(tail -3 "$T/dask.err")"; fail=1
fi
exit $fail
