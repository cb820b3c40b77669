#!/bin/bash
# hpcport agent and hpcport pilot with real processes: TCP on loopback (1000
# tasks, exit codes, signals, outputs), GPU pinning, walltime, SIGTERM drain,
# a pilot killed -9 (requeue), the agent killed -9 and restarted (nothing lost,
# nothing run twice), a wrong secret, the spool, and network namespaces: a
# pilot with no route at all completes through the spool, a pilot whose only
# route is a veth pair to the agent's namespace completes through TCP.
. "$(dirname "$0")/tap.sh"
NETNS=()
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    for n in "${NETNS[@]}"; do ip netns del "$n" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
py() { /usr/bin/python3 -c "$@"; }
# start_agent DIR ARGS...: runs the agent in the background (behind the
# command in the array PRE, if any); APID, PORT
PRE=()
start_agent() {
    local d=$1; shift
    rm -f "$d/agent.json"
    "${PRE[@]}" "$HP" agent --dir "$d" --heartbeat-timeout 2 "$@" >>"$d.out" 2>>"$d.err" &
    APID=$!; PIDS+=("$APID")
    for _ in $(seq 100); do [ -s "$d/agent.json" ] && break; sleep 0.05; done
    PORT=$(py "import json;print(json.load(open('$d/agent.json'))['port'])" 2>/dev/null)
}
stop_agent() { kill "$APID" 2>/dev/null; wait "$APID" 2>/dev/null; }
status() { "$HP" agent status --dir "$1" --json; }
count() { py "import json,sys;print(json.loads(sys.stdin.read())['$2'])" <<<"$(status "$1")"; }
# task_field DIR ID FIELD: a field of the task named ID
task_field() {
    "$HP" agent status --dir "$1" --json --tasks |
        py "import json,sys;t=[t for t in json.load(sys.stdin)['tasks'] if t.get('id')=='$2'][0];print(t.get('$3'))"
}

# --- command line
expect_rc 0 "agent --help" "$HP" agent --help
contains "$OUT" "usage: hpcport agent --dir DIR" && ok "agent --help shows the usage" || fail "agent --help: $OUT"
expect_rc 0 "pilot --help" "$HP" pilot --help
expect_rc 2 "pilot needs --agent or --spool" "$HP" pilot
expect_rc 2 "pilot --agent needs --secret-file" "$HP" pilot --agent 127.0.0.1:1
expect_rc 2 "agent needs --dir" "$HP" agent
printf '{"argv":["true"]}\n{"argv":"true"}\n' >"$T/bad.jsonl"
expect_rc 3 "agent add refuses a bad task" "$HP" agent add --dir "$T/bad" <"$T/bad.jsonl"
contains "$ERR" 'line 2: "argv" must be a non-empty array' && ok "the error names line 2" || fail "error: $ERR"
[ "$(count "$T/bad" queued)" = 0 ] && ok "a refused add adds nothing" || fail "partial add"
printf '{"argv":["true"],"colour":1}\n' >"$T/bad2.jsonl"
expect_rc 3 "agent add refuses an unknown member" "$HP" agent add --dir "$T/bad" <"$T/bad2.jsonl"

# --- 1000 tasks over TCP on loopback, with exit codes and outputs
A=$T/a1; mkdir -p "$T/o"
for i in $(seq 1000); do
    if [ $((i % 10)) = 0 ]; then echo "{\"id\":\"t$i\",\"argv\":[\"sh\",\"-c\",\"echo out$i; exit $((i % 7 + 1))\"],\"stdout\":\"$T/o/$i\"}"
    else echo "{\"id\":\"t$i\",\"argv\":[\"echo\",\"out$i\"],\"stdout\":\"$T/o/$i\"}"; fi
done >"$T/t1.jsonl"
cat >>"$T/t1.jsonl" <<EOF2
{"id":"false","argv":["false"]}
{"id":"signal","sh":"kill -TERM \$\$"}
{"id":"missing","argv":["/no/such/program"]}
{"id":"envcwd","sh":"echo \$GREETING \$(pwd) > out-envcwd","env":{"GREETING":"hello"},"cwd":"$T/o"}
EOF2
expect_rc 0 "agent add 1004 tasks" "$HP" agent add --dir "$A" <"$T/t1.jsonl"
contains "$OUT" "added 1004 tasks" && ok "add counts the tasks" || fail "add: $OUT"
start_agent "$A"
[ -n "$PORT" ] && ok "agent listens, agent.json names the port" || fail "agent did not start: $(cat "$A.err")"
[ "$(stat -c %a "$A/secret")" = 600 ] && [ "$(stat -c %a "$A/agent.json")" = 600 ] &&
    ok "secret and agent.json are 0600" || fail "modes $(stat -c %a "$A/secret" "$A/agent.json")"
ss -ltn | grep -q "127.0.0.1:$PORT" && ! ss -ltn | grep ":$PORT" | grep -vq "127.0.0.1:$PORT" &&
    ok "the agent listens on loopback only" || fail "listen: $(ss -ltn | grep ":$PORT")"
expect_rc 10 "a second agent on the same DIR is refused" "$HP" agent --dir "$A"
expect_rc 0 "a pilot runs the campaign" timeout 120 "$HP" pilot --agent "127.0.0.1:$PORT" --secret-file "$A/secret" --cores 2 --idle 10
[ "$(count "$A" done)" = 901 ] && [ "$(count "$A" failed)" = 103 ] &&
    ok "901 done, 103 failed" || fail "counts: $(status "$A")"
bad=0
for i in $(seq 1000); do [ "$(cat "$T/o/$i" 2>/dev/null)" = "out$i" ] || bad=$((bad + 1)); done
[ $bad = 0 ] && ok "every task wrote its output" || fail "$bad outputs wrong"
"$HP" agent status --dir "$A" --json --tasks | py "
import json,sys
ts={t['id']:t for t in json.load(sys.stdin)['tasks']}
bad=[i for i in range(1,1001) if ts['t%d'%i]['exit']!=((i%7+1) if i%10==0 else 0)]
sys.exit(1 if bad else 0)" && ok "every exit code recorded" || fail "exit codes wrong"
[ "$(task_field "$A" false exit)" = 1 ] && ok "a failing task: exit 1" || fail "false: $(task_field "$A" false exit)"
[ "$(task_field "$A" signal signal)" = 15 ] && [ "$(task_field "$A" signal state)" = failed ] &&
    ok "a task killed by a signal: signal 15, failed" || fail "signal: $(task_field "$A" signal signal)"
[ "$(task_field "$A" missing exit)" = 127 ] && ok "a missing program: exit 127" || fail "missing: $(task_field "$A" missing exit)"
[ "$(cat "$T/o/out-envcwd")" = "hello $T/o" ] && ok "task env and cwd" || fail "envcwd: $(cat "$T/o/out-envcwd")"
expect_rc 0 "agent stop" "$HP" agent stop --dir "$A"
[ ! -e "$A/agent.json" ] && ok "agent.json removed at stop" || fail "agent.json left"
expect_rc 10 "agent stop when none runs" "$HP" agent stop --dir "$A"

# --- wrong secret
A=$T/a2
echo '{"argv":["true"]}' | "$HP" agent add --dir "$A" >/dev/null
start_agent "$A"
printf '0123456789abcdef0123456789abcdef\n' >"$T/wrong"; chmod 600 "$T/wrong"
expect_rc 9 "a pilot with the wrong secret is refused" timeout 20 "$HP" pilot --agent "127.0.0.1:$PORT" --secret-file "$T/wrong"
contains "$ERR" "refused this pilot" && ! contains "$ERR" "0123456789abcdef" &&
    ok "the refusal says why, without the secret" || fail "err: $ERR"
chmod 644 "$T/wrong"
expect_rc 9 "a secret file readable by others is refused" "$HP" pilot --agent "127.0.0.1:$PORT" --secret-file "$T/wrong"
[ "$(count "$A" queued)" = 1 ] && ok "the refused pilot took nothing" || fail "$(status "$A")"
stop_agent

# --- GPUs pinned
A=$T/a3
for i in 1 2 3 4; do echo "{\"id\":\"g$i\",\"gpus\":1,\"sh\":\"echo \$CUDA_VISIBLE_DEVICES \$ROCR_VISIBLE_DEVICES > $T/g$i; sleep 0.5\"}"; done >"$T/g.jsonl"
echo "{\"id\":\"g12\",\"gpus\":2,\"sh\":\"echo \$CUDA_VISIBLE_DEVICES > $T/g12\"}" >>"$T/g.jsonl"
echo "{\"id\":\"g3x\",\"gpus\":3,\"argv\":[\"true\"]}" >>"$T/g.jsonl"
"$HP" agent add --dir "$A" <"$T/g.jsonl" >/dev/null
start_agent "$A"
CUDA_VISIBLE_DEVICES=9 timeout 60 "$HP" pilot --agent "127.0.0.1:$PORT" --secret-file "$A/secret" --cores 4 --gpus 0,1 --idle 2 >/dev/null 2>&1
g=$(cat "$T"/g[1-4] | sort | uniq -c | awk '{print $1":"$2":"$3}' | tr '\n' ' ')
[ "$g" = "2:0:0 2:1:1 " ] && ok "one-GPU tasks pinned to GPU 0 or 1 (CUDA and ROCR), two at a time" || fail "gpus: $g"
[ "$(cat "$T/g12")" = "0,1" ] && ok "a two-GPU task gets both" || fail "g12: $(cat "$T/g12")"
[ "$(task_field "$A" g3x state)" = queued ] && ok "a task needing more GPUs than the pilot has is not taken" || fail "g3x: $(task_field "$A" g3x state)"
stop_agent

# --- walltime: a task longer than the pilot's remaining time is not taken
A=$T/a4
printf '{"id":"long","walltime":"1h","argv":["true"]}\n{"id":"short","walltime":5,"argv":["true"]}\n' | "$HP" agent add --dir "$A" >/dev/null
start_agent "$A"
expect_rc 0 "a pilot with 10 minutes left" timeout 30 "$HP" pilot --agent "127.0.0.1:$PORT" --secret-file "$A/secret" --walltime 10m --idle 1
[ "$(task_field "$A" short state)" = done ] && [ "$(task_field "$A" long state)" = queued ] &&
    [ "$(task_field "$A" long attempts)" = 0 ] &&
    ok "the 5 s task ran, the 1 h task stays queued" || fail "walltime: $("$HP" agent status --dir "$A" --tasks)"
printf '{"id":"overtime","walltime":1,"argv":["sleep","30"]}\n' | "$HP" agent add --dir "$A" >/dev/null
t0=$(date +%s)
timeout 30 "$HP" pilot --agent "127.0.0.1:$PORT" --secret-file "$A/secret" --walltime 10m --idle 1
[ "$(task_field "$A" overtime signal)" = 15 ] && [ $(($(date +%s) - t0)) -lt 10 ] &&
    ok "a task past its walltime is stopped (SIGTERM)" || fail "overtime: $(task_field "$A" overtime state) $(task_field "$A" overtime signal)"
SLURM_JOB_END_TIME=$(($(date +%s) + 7200)) timeout 30 "$HP" pilot --agent "127.0.0.1:$PORT" --secret-file "$A/secret" --idle 1
[ "$(task_field "$A" long state)" = done ] && ok "a pilot with 2 h left (SLURM_JOB_END_TIME) takes it" || fail "long: $(task_field "$A" long state)"
stop_agent

# --- SIGTERM drain
A=$T/a5
echo "{\"id\":\"d0\",\"sh\":\"sleep 1; echo finished > $T/d0\"}" >"$T/d.jsonl"
for i in $(seq 1 20); do echo "{\"id\":\"d$i\",\"sh\":\"echo ran >> $T/dlog\"}"; done >>"$T/d.jsonl"
"$HP" agent add --dir "$A" <"$T/d.jsonl" >/dev/null
start_agent "$A"
"$HP" pilot --agent "127.0.0.1:$PORT" --secret-file "$A/secret" --cores 1 --grace 10 &
P=$!; PIDS+=("$P")
for _ in $(seq 100); do [ "$(count "$A" leased)" != 0 ] && break; sleep 0.05; done
sleep 0.3
kill -TERM "$P"; wait "$P"; rc=$?
[ $rc = 0 ] && ok "SIGTERM: the pilot exits 0" || fail "pilot exit $rc"
[ "$(cat "$T/d0" 2>/dev/null)" = finished ] && [ "$(task_field "$A" d0 state)" = done ] &&
    ok "SIGTERM: the running task finished and was reported" || fail "d0: $(task_field "$A" d0 state)"
[ ! -e "$T/dlog" ] && [ "$(count "$A" queued)" = 20 ] && [ "$(count "$A" leased)" = 0 ] &&
    ok "SIGTERM: nothing new started, the rest handed back" || fail "drain: $(status "$A")"
stop_agent

# --- a pilot killed -9 mid-task: its tasks are requeued and done by another
A=$T/a6
for i in 1 2 3 4; do echo "{\"id\":\"k$i\",\"sh\":\"sleep 1; echo k$i >> $T/klog\"}"; done >"$T/k.jsonl"
"$HP" agent add --dir "$A" <"$T/k.jsonl" >/dev/null
start_agent "$A"
"$HP" pilot --agent "127.0.0.1:$PORT" --secret-file "$A/secret" --cores 2 --id victim &
P=$!; PIDS+=("$P")
for _ in $(seq 100); do [ "$(count "$A" leased)" = 4 ] && break; sleep 0.05; done
sleep 0.3
kids=$(ps -o pid= --ppid "$P")
kill -9 "$P" $kids; wait "$P" 2>/dev/null
[ ! -e "$T/klog" ] && [ "$(count "$A" leased)" = 4 ] && ok "the killed pilot held 4 leases" || fail "$(status "$A")"
expect_rc 0 "a second pilot finishes the campaign" timeout 60 "$HP" pilot --agent "127.0.0.1:$PORT" --secret-file "$A/secret" --cores 2 --id rescuer --idle 10
[ "$(count "$A" done)" = 4 ] && [ "$(sort "$T/klog" | uniq | wc -l)" = 4 ] && [ "$(wc -l <"$T/klog")" = 4 ] &&
    ok "the lost pilot's tasks were requeued and done once" || fail "requeue: $(status "$A") $(cat "$T/klog")"
[ "$(task_field "$A" k1 attempts)" = 1 ] && [ "$(task_field "$A" k1 pilot)" = rescuer ] &&
    ok "the requeue counted an attempt" || fail "k1 attempts $(task_field "$A" k1 attempts)"
stop_agent

# --- the agent killed -9 and restarted: the campaign completes, no completed
# task runs twice
A=$T/a7
for i in $(seq 300); do echo "{\"id\":\"r$i\",\"sh\":\"echo r$i >> $T/rlog; sleep 0.02\"}"; done >"$T/r.jsonl"
"$HP" agent add --dir "$A" <"$T/r.jsonl" >/dev/null
start_agent "$A"
RPORT=$PORT
"$HP" pilot --agent "127.0.0.1:$RPORT" --secret-file "$A/secret" --cores 2 --reconnect 60 --idle 30 --id survivor &
P=$!; PIDS+=("$P")
for _ in $(seq 200); do [ "$(count "$A" done)" -gt 20 ] && break; sleep 0.05; done
kill -9 "$APID"; wait "$APID" 2>/dev/null
before=$(count "$A" done)
[ "$before" -gt 0 ] && [ "$before" -lt 300 ] && ok "agent killed -9 mid-campaign ($before done)" || fail "kill: $before done"
sleep 1
start_agent "$A" --listen "127.0.0.1:$RPORT"
[ "$PORT" = "$RPORT" ] && ok "the agent restarts on the same address" || fail "restart: $(cat "$A.err")"
wait "$P"; rc=$?
[ $rc = 0 ] && ok "the pilot reconnected and finished" || fail "pilot exit $rc"
[ "$(count "$A" done)" = 300 ] && ok "the campaign completed: 300 done" || fail "$(status "$A")"
[ "$(wc -l <"$T/rlog")" = 300 ] && [ "$(sort -u "$T/rlog" | wc -l)" = 300 ] &&
    ok "no task lost, none run twice (300 lines, 300 distinct)" || fail "rlog: $(wc -l <"$T/rlog") lines, $(sort -u "$T/rlog" | wc -l) distinct"
stop_agent

# --- spool: two pilots, no TCP; no per-task files left
A=$T/a8
for i in $(seq 500); do echo "{\"id\":\"s$i\",\"sh\":\"echo s$i >> $T/slog\"}"; done >"$T/s.jsonl"
"$HP" agent add --dir "$A" <"$T/s.jsonl" >/dev/null
start_agent "$A" --spool "$T/spool" --batch 50
[ -z "$PORT" ] && ! grep -q port "$A/agent.json" && ok "spool only: no TCP listener" || fail "port $PORT"
"$HP" pilot --spool "$T/spool" --cores 2 --idle 10 --id sp1 & P1=$!; PIDS+=("$P1")
"$HP" pilot --spool "$T/spool" --cores 2 --idle 10 --id sp2 & P2=$!; PIDS+=("$P2")
wait "$P1"; r1=$?; wait "$P2"; r2=$?
[ $r1 = 0 ] && [ $r2 = 0 ] && ok "two spool pilots exit 0" || fail "spool pilots $r1 $r2"
[ "$(count "$A" done)" = 500 ] && ok "spool: 500 done" || fail "$(status "$A")"
[ "$(wc -l <"$T/slog")" = 500 ] && [ "$(sort -u "$T/slog" | wc -l)" = 500 ] &&
    ok "spool: each task ran once" || fail "slog $(wc -l <"$T/slog")"
left=$(find "$T/spool" -type f ! -name status | wc -l)
[ "$left" = 0 ] && ok "spool: no batch, result or heartbeat file left" || fail "left: $(find "$T/spool" -type f)"
# a spool pilot that dies: its batch goes back to the queue
for i in $(seq 4); do echo "{\"id\":\"sk$i\",\"sh\":\"sleep 1; echo sk$i >> $T/sklog\"}"; done | "$HP" agent add --dir "$A" >/dev/null
for _ in $(seq 100); do [ -n "$(ls "$T/spool/new")" ] && break; sleep 0.05; done
"$HP" pilot --spool "$T/spool" --cores 2 --id spvictim & P=$!; PIDS+=("$P")
for _ in $(seq 100); do [ -n "$(ls "$T/spool/leased/spvictim" 2>/dev/null)" ] && break; sleep 0.05; done
sleep 0.3
kids=$(ps -o pid= --ppid "$P"); kill -9 "$P" $kids; wait "$P" 2>/dev/null
expect_rc 0 "spool: another pilot takes over a dead pilot's batch" timeout 60 "$HP" pilot --spool "$T/spool" --cores 4 --idle 15 --id sprescue
[ "$(count "$A" done)" = 504 ] && [ "$(wc -l <"$T/sklog")" = 4 ] && ok "spool: the lost batch was requeued and done once" || fail "$(status "$A") $(cat "$T/sklog")"
[ "$(task_field "$A" sk1 attempts)" = 1 ] && ok "spool: the requeue counted an attempt" || fail "sk1 attempts $(task_field "$A" sk1 attempts)"
# a late result of the lost pilot for a task another pilot holds now is refused
echo '{"id":"late1","sh":"sleep 2"}' | "$HP" agent add --dir "$A" >/dev/null
for _ in $(seq 100); do grep -q '"left":[1-9]' "$T/spool/status" && break; sleep 0.05; done
"$HP" pilot --spool "$T/spool" --cores 2 --idle 5 --id spnew & P=$!; PIDS+=("$P")
for _ in $(seq 100); do [ -n "$(ls "$T/spool/leased/spnew" 2>/dev/null)" ] && break; sleep 0.05; done
sleep 0.6
KEY=$(task_field "$A" late1 key)
echo "{\"id\":$KEY,\"attempt\":0,\"exit\":7,\"signal\":0,\"pilot\":\"spvictim\"}" > "$T/spool/done/.late"
mv "$T/spool/done/.late" "$T/spool/done/spvictim-99.res"
wait "$P"
[ "$(task_field "$A" late1 exit)" = 0 ] && [ "$(task_field "$A" late1 pilot)" = spnew ] &&
    ok "spool: a lost pilot's late result for a task another pilot holds is refused" ||
    fail "late1: exit $(task_field "$A" late1 exit) pilot $(task_field "$A" late1 pilot)"
stop_agent

# --- agent --daemon, and stop --drain: pilots take nothing new and exit
A=$T/a11
for i in $(seq 40); do echo "{\"sh\":\"sleep 0.1\"}"; done | "$HP" agent add --dir "$A" >/dev/null
expect_rc 0 "agent --daemon returns once listening" "$HP" agent --dir "$A" --daemon --heartbeat-timeout 2
PORT=$(py "import json,sys;print(json.loads(sys.argv[1])['port'])" "$OUT" 2>/dev/null)
DPID=$(py "import json,sys;print(json.loads(sys.argv[1])['pid'])" "$OUT" 2>/dev/null)
[ -n "$DPID" ] && PIDS+=("$DPID")
[ -n "$PORT" ] && kill -0 "$DPID" 2>/dev/null && ok "the daemon runs and prints agent.json" || fail "daemon: $OUT $ERR"
"$HP" pilot --agent "127.0.0.1:$PORT" --secret-file "$A/secret" --cores 1 --idle 30 & P=$!; PIDS+=("$P")
for _ in $(seq 100); do [ "$(count "$A" done)" -gt 2 ] && break; sleep 0.05; done
expect_rc 0 "agent stop --drain" "$HP" agent stop --dir "$A" --drain
timeout 20 tail --pid="$P" -f /dev/null; kill -0 "$P" 2>/dev/null && fail "the pilot did not exit on drain" || ok "the pilot exits on drain"
wait "$P"; rc=$?
q=$(count "$A" queued)
[ $rc = 0 ] && [ "$q" -gt 0 ] && [ "$(count "$A" leased)" = 0 ] && ok "drain: the pilot exits 0, handing back what it had not started ($q queued)" || fail "drain: rc $rc $(status "$A")"
expect_rc 0 "agent stop ends the daemon" "$HP" agent stop --dir "$A"
gone() { ! kill -0 "$1" 2>/dev/null || grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
for _ in $(seq 40); do gone "$DPID" && break; sleep 0.05; done
gone "$DPID" && ok "the daemon is gone" || fail "daemon still running"

# --- a task of two nodes: not taken by a one-node pilot; through the
# launcher `none` it runs on the pilot's node and holds all its cores
A=$T/a12
printf '{"id":"mn","nodes":2,"sh":"echo $$ > %s/mn; sleep 0.3"}\n{"id":"one","sh":"echo one >> %s/mnlog"}\n' "$T" "$T" | "$HP" agent add --dir "$A" >/dev/null
start_agent "$A"
timeout 30 "$HP" pilot --agent "127.0.0.1:$PORT" --secret-file "$A/secret" --idle 1 >/dev/null 2>&1
[ "$(task_field "$A" mn state)" = queued ] && [ "$(task_field "$A" one state)" = done ] &&
    ok "a one-node pilot leaves the two-node task queued" || fail "mn: $(task_field "$A" mn state)"
expect_rc 0 "a two-node pilot runs it with --launcher none" timeout 30 "$HP" pilot --agent "127.0.0.1:$PORT" --secret-file "$A/secret" --nodes 2 --launcher none --idle 1
[ "$(task_field "$A" mn state)" = done ] && [ -s "$T/mn" ] && ok "the two-node task ran" || fail "mn: $(task_field "$A" mn state)"
expect_rc 2 "an unknown launcher is refused" "$HP" pilot --spool "$T" --launcher pbsdsh
stop_agent

# --- network namespaces (root): no route at all -> spool; only a route to
# the agent -> TCP
NS1=hpt-iso-$$; NS2=hpt-ag-$$; NS3=hpt-pi-$$
if ip netns add "$NS1" 2>"$T/nserr"; then
    NETNS+=("$NS1")
    ip netns add "$NS2"; NETNS+=("$NS2")
    ip netns add "$NS3"; NETNS+=("$NS3")
    [ -z "$(ip netns exec "$NS1" ip -o route show)" ] && [ -z "$(ip netns exec "$NS1" ip -o -6 route show)" ] &&
        ok "netns: $NS1 has no route at all" || fail "routes in $NS1"
    A=$T/a9
    for i in $(seq 200); do echo "{\"id\":\"n$i\",\"sh\":\"echo n$i >> $T/nlog\"}"; done | "$HP" agent add --dir "$A" >/dev/null
    start_agent "$A" --spool "$T/nspool" --listen 127.0.0.1:0
    expect_rc 10 "netns: the isolated pilot cannot reach the agent over TCP" timeout 20 ip netns exec "$NS1" "$HP" pilot --agent "127.0.0.1:$PORT" --secret-file "$A/secret" --reconnect 0
    expect_rc 0 "netns: the isolated pilot completes through the spool" timeout 60 ip netns exec "$NS1" "$HP" pilot --spool "$T/nspool" --idle 10
    [ "$(count "$A" done)" = 200 ] && [ "$(wc -l <"$T/nlog")" = 200 ] && ok "netns: 200 done through the spool" || fail "$(status "$A")"
    stop_agent
    # a veth pair between two namespaces made here: agent in one, pilot in the other
    ip link add hpa$$ netns "$NS2" type veth peer name hpp$$ netns "$NS3"
    ip -n "$NS2" addr add 10.231.0.1/30 dev hpa$$; ip -n "$NS2" link set hpa$$ up
    ip -n "$NS3" addr add 10.231.0.2/30 dev hpp$$; ip -n "$NS3" link set hpp$$ up
    [ "$(ip netns exec "$NS3" ip -o route show | wc -l)" = 1 ] &&
        ip netns exec "$NS3" ip -o route show | grep -q "^10.231.0.0/30 dev hpp$$" &&
        ok "netns: the pilot's only route is the link to the agent" || fail "routes: $(ip netns exec "$NS3" ip -o route show)"
    A=$T/a10
    for i in $(seq 200); do echo "{\"id\":\"v$i\",\"sh\":\"echo v$i >> $T/vlog\"}"; done | "$HP" agent add --dir "$A" >/dev/null
    PRE=(ip netns exec "$NS2")
    start_agent "$A" --listen 10.231.0.1:0
    PRE=()
    [ -n "$PORT" ] && ok "netns: agent listens on 10.231.0.1:$PORT in $NS2" || fail "agent: $(cat "$A.err")"
    expect_rc 0 "netns: the pilot completes through TCP over the veth pair" timeout 60 ip netns exec "$NS3" "$HP" pilot --agent "10.231.0.1:$PORT" --secret-file "$A/secret" --idle 10
    [ "$(count "$A" done)" = 200 ] && [ "$(wc -l <"$T/vlog")" = 200 ] && ok "netns: 200 done over TCP" || fail "$(status "$A")"
    stop_agent
    for n in "${NETNS[@]}"; do ip netns del "$n"; done
    NETNS=()
    ! ip netns list | grep -q -- "-$$\b" && ok "netns: namespaces removed" || fail "namespaces left"
else
    fail "netns: 'ip netns add' failed (run as root with iproute2): $(cat "$T/nserr")"
fi

done_testing
