#!/bin/bash
# hpcport run with tasks placed in pilot jobs, end to end: the agent started
# on the harness's login node over SSH (through the bastion) submits pilot
# jobs to the real Slurm, the pilots reach it over TCP on loopback; a pilot
# scancel'ed while it runs tasks; `hpcport run` killed (the laptop gone) and
# `hpcport status` asking the agent meanwhile; the agent killed -9 and started
# again by the next run (no task lost, none run twice); tinyproxy as the
# site's proxy for a task that needs the network; plan-time refusals and
# placement; the spool transport on the local site.
# Needs the services (tests/harness/with-services.sh); fails without them.
. "$(dirname "$0")/tap.sh"
. "$(dirname "$0")/site-lib.sh"

TAG="hpr$$"
RBIN=$HP_H_SCRATCH/$TAG-bin
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    # the agents of this test's campaigns, then its jobs and files
    "${SSH[@]}" "for f in ~/.$TAG/hpcport/*/agent/agent.json; do [ -f \"\$f\" ] && kill \$(sed 's/.*\"pid\":\\([0-9]*\\).*/\\1/' \"\$f\"); done; rm -rf ~/.$TAG" >/dev/null 2>&1
    scancel -u "$HP_H_USER" -n "$(squeue -h -u "$HP_H_USER" -o %j | grep "^$TAG" | paste -sd,)" >/dev/null 2>&1
    rm -rf "$RBIN" "$T"
}
trap cleanup EXIT
export HPCPORT_AGENT_HEARTBEAT_TIMEOUT=3

# this build on the "site", where the test user can run it
mkdir -p "$RBIN"
cp "$HP" "$RBIN/hpcport"
chown -R "$HP_H_USER:" "$RBIN"
chmod 0755 "$RBIN" "$RBIN/hpcport"

profile() { # NAME NETWORK-LINE [EXTRA YAML LINES...]
    local name=$1 net=$2; shift 2
    {
        echo "name: $name"
        echo "scheduler:"
        echo "  type: slurm"
        echo "  partitions: [{name: debug, max_walltime: 30m}]"
        echo "  account: hpcport"
        echo "  default_walltime: 5m"
        site_login_yaml | sed "s|^  compute: none|  $net|"
        echo "nodes: {cores: 2}"
        echo "remote: {hpcport: $RBIN/hpcport}"
        for l in "$@"; do echo "$l"; done
    } > "$SITES/$name.yaml"
}
PILOTS="pilots: {listen: 127.0.0.1, cores: 1, max_pilots: 2, max_queued: 2, tasks_per_pilot: 10, walltime: 20m, idle: 10s, min_tasks: 4}"
profile pr "compute: none" "$PILOTS"
profile pp "compute: proxy\\n  proxy: $HP_H_TINYPROXY_URL" "$PILOTS"

# wf NAME N SLEEP FILE: N squares through pilots (each appends "ran I" to
# ran.log when done), then their sum as a job of its own
wf() {
    cat > "$4" <<EOF
name: $1
tasks:
  sq:
    matrix: {i: {from: 1, to: $2}}
    command: [sh, -c, 'sleep $3; echo "\$(( {i} * {i} ))" > sq.{i}; echo hello {i}; echo ran {i} >> ran.log']
    outputs: ["sq.{i}"]
  sum:
    after: [sq]
    shell: cat sq.* | paste -sd+ | bc > sum
    outputs: [sum]
EOF
}
sumsq() { echo $(( $1 * ($1 + 1) * (2 * $1 + 1) / 6 )); }
on_site() { "${SSH[@]}" "$@"; }
cdir() { echo "~/.$TAG/hpcport/$1"; }
# ran.log of campaign $1 on the site: every I once (no task run twice)
ran_once() { [ "$(on_site "cat $(cdir "$1")/work/ran.log" | sort | uniq -d | wc -l)" = 0 ] &&
             [ "$(on_site "cat $(cdir "$1")/work/ran.log" | sort -u | wc -l)" = "$2" ]; }
pilot_jobs() { sacct -X -n -P -u "$HP_H_USER" -S now-2hours -o JobName | grep -c "^$1\.pilot-"; }
task_jobs() { sacct -X -n -P -u "$HP_H_USER" -S now-2hours -o JobName | grep -c "^$1\.sq\."; }

# ---------------------------------------------------------------- plan
mkdir -p "$T/w1" && wf "${TAG}a" 24 0.2 "$T/w1/wf.yaml"
expect_rc 0 "plan: pilot placement" "$HP" plan "$T/w1/wf.yaml" --site pr
check "plan: says 24 instances go to pilot jobs and 1 runs as a job of its own" \
    contains "$OUT" "# placement: 24 in pilot jobs, 1 as jobs of their own"
check "plan: a pilot task is shown as handed to the agent" contains "$OUT" "# pilot task: handed to the campaign's agent"
expect_rc 0 "plan --json" "$HP" plan "$T/w1/wf.yaml" --site pr --json
check "plan --json: placement per job, pilot sizing" test "$(jget "$T/out" '[j["placement"] for j in d["jobs"]].count("pilot"), d["pilot_tasks"], d["pilots"]["walltime"], d["pilots"]["transport"]')" = "(24, 24, 1200, 'tcp')"
cat > "$T/w1/big.yaml" <<'EOF'
name: big
tasks:
  t:
    matrix: {i: [1, 2, 3, 4, 5]}
    command: ["true"]
    placement: pilot
    resources: {cores: 2}
EOF
expect_rc 5 "plan: placement pilot for a task larger than a pilot is a lint error" "$HP" plan "$T/w1/big.yaml" --site pr
check "... naming the task, the instance and what does not fit" contains "$OUT$ERR" "task 't' runs in pilots, but instance t[i=1] does not fit in one (its cores exceed"
check "... with the workflow position" contains "$OUT$ERR" "big.yaml:6:16: error"
profile np "compute: none"
expect_rc 5 "plan: placement pilot on a site without a pilots section" "$HP" plan "$T/w1/big.yaml" --site np
check "... says to add one" contains "$OUT$ERR" "site 'np' has no pilots section"
sed -i 's/placement: pilot/placement: sideways/' "$T/w1/big.yaml"
expect_rc 3 "a bad placement value is an input error" "$HP" plan "$T/w1/big.yaml" --site pr
check "... at its position" contains "$ERR" "big.yaml:6:16: error"
sed -i 's/placement: sideways/placement: direct/; s/cores: 2/cores: 1/' "$T/w1/big.yaml"
expect_rc 0 "placement direct" "$HP" plan "$T/w1/big.yaml" --site pr
check "... keeps every instance a job of its own" test "$(contains "$OUT" "# placement:" && echo y)" = ""
cat > "$T/w1/net.yaml" <<'EOF'
name: net
tasks:
  fetch:
    matrix: {i: [1, 2, 3, 4]}
    command: [curl, -s, http://example.org/]
    network: true
EOF
expect_rc 5 "plan: a pilot task that needs the network on a closed site is refused" "$HP" plan "$T/w1/net.yaml" --site pr
check "... naming the task and the site rule" contains "$OUT$ERR" "task 'fetch' needs outbound network"

# ---------------------------------------------------------------- run on Slurm
C1=${TAG}a
expect_rc 0 "run: 24 tasks through pilot jobs on the real Slurm" "$HP" run "$T/w1/wf.yaml" --site pr
check "run: every instance completed" contains "$OUT" "25 of 25 completed"
check "run: the outputs came back (sum of squares)" test "$(cat "$T/w1/sum" 2>/dev/null)" = "$(sumsq 24)"
check "run: the squares came back too" test "$(cat "$T/w1/sq.7" 2>/dev/null)" = 49
wait_for 30 test "$(pilot_jobs "$C1")" -ge 1
check "run: Slurm ran pilot jobs ($(pilot_jobs "$C1"))" test "$(pilot_jobs "$C1")" -ge 1
check "run: and no job per task" test "$(task_jobs "$C1")" = 0
check "run: the pilots ran each task once" ran_once "$C1" 24
expect_rc 0 "logs of a pilot task" "$HP" logs "$C1" "sq[i=5]"
check "... show its stdout" contains "$OUT" "hello 5"
on_site "cat $(cdir "$C1")/agent/agent.log" > "$T/agent1.log"
check "agent log: pilots submitted through slurm" grep -q "TCP pilots of 1 core(s), 1 node(s), 0 GPU(s), 1200s through slurm" "$T/agent1.log"
check "agent: the secret is 0600 on the site" test "$(on_site "stat -c %a $(cdir "$C1")/agent/secret")" = 600
agent_gone() { ! on_site "test -s $(cdir "$1")/agent/agent.json"; }
check "agent: stopped once the run had nothing left there" wait_for 10 agent_gone "$C1"
expect_rc 0 "rerun: nothing to do" "$HP" run "$T/w1/wf.yaml" --site pr
check "rerun: says so" contains "$OUT" "25 of 25 completed (0 run now"

# ---------------------------------------------------------------- scancel of a running pilot
mkdir -p "$T/w2" && wf "${TAG}b" 16 1 "$T/w2/wf.yaml"
C2=${TAG}b
"$HP" run "$T/w2/wf.yaml" --site pr --set pilots.max_pilots=1 >"$T/run2.out" 2>"$T/run2.err" &
RUN=$!; PIDS+=("$RUN")
running_pilot() { squeue -h -u "$HP_H_USER" -t R -o '%i %j' | awk -v n="$C2.pilot-1." 'index($2, n) == 1 {print $1}'; }
done_some() { [ "$(on_site "cat $(cdir "$C2")/work/ran.log 2>/dev/null" | wc -l)" -ge 3 ]; }
wait_for 120 done_some
JOB=$(running_pilot)
check "scancel: pilot 1 runs tasks (job ${JOB:-none})" test -n "$JOB"
scancel "$JOB"
wait "$RUN"; rc=$?
check "scancel: the campaign still completes (exit $rc)" test "$rc" = 0
check "scancel: every instance completed" contains "$(cat "$T/run2.out")" "17 of 17 completed"
check "scancel: sum right" test "$(cat "$T/w2/sum" 2>/dev/null)" = "$(sumsq 16)"
check "scancel: another pilot took over" test "$(pilot_jobs "$C2")" -ge 2
check "scancel: no task run twice" ran_once "$C2" 16
on_site "cat $(cdir "$C2")/agent/agent.log" > "$T/agent2.log"
check "scancel: the agent saw pilot 1 end" grep -q "pilot 1 (job $JOB) ended" "$T/agent2.log"

# ---------------------------------------------------------------- the laptop goes away, the agent is killed
mkdir -p "$T/w3" && wf "${TAG}c" 20 0.5 "$T/w3/wf.yaml"
C3=${TAG}c
"$HP" run "$T/w3/wf.yaml" --site pr >"$T/run3.out" 2>&1 &
RUN=$!; PIDS+=("$RUN")
done3() { [ "$(on_site "cat $(cdir "$C3")/work/ran.log 2>/dev/null" | wc -l)" -ge "$1" ]; }
wait_for 120 done3 2
kill -9 "$RUN"; wait "$RUN" 2>/dev/null
expect_rc 0 "laptop gone: status asks the agent" "$HP" status "$C3"
check "... which still runs" contains "$OUT" "on site:   agent running"
wait_for 120 done3 8
expect_rc 0 "laptop gone: status --json" "$HP" status "$C3" --json
check "... shows progress made without the laptop" test "$(jget "$T/out" 'd["agent"]["done"] >= 8')" = True
expect_rc 0 "status --offline does not ask" "$HP" status "$C3" --offline
check "... and shows no agent line" test "$(contains "$OUT" "on site:" && echo y)" = ""
APID=$(on_site "cat $(cdir "$C3")/agent/agent.json" | sed 's/.*"pid":\([0-9]*\).*/\1/')
on_site "kill -9 $APID"
expect_rc 0 "agent killed: status says it stopped" "$HP" status "$C3"
check "... stopped" contains "$OUT" "on site:   agent stopped"
expect_rc 0 "agent killed: the next run starts it again and completes" "$HP" run "$T/w3/wf.yaml" --site pr
check "... every instance" contains "$OUT" "21 of 21 completed"
check "... sum right" test "$(cat "$T/w3/sum" 2>/dev/null)" = "$(sumsq 20)"
check "... no task lost or run twice" ran_once "$C3" 20
check "... the agent came back on its port (pilots reconnected)" test "$(on_site "grep -c 'TCP pilots' $(cdir "$C3")/agent/agent.log")" -ge 2

# ---------------------------------------------------------------- the site's proxy
mkdir -p "$T/w4"
cat > "$T/w4/wf.yaml" <<EOF
name: ${TAG}d
tasks:
  fetch:
    matrix: {i: [1, 2, 3, 4]}
    network: true
    command: [sh, -c, 'echo "\$http_proxy" > proxy.{i}; curl -s -o /dev/null -w "%{{http_code}}" http://127.0.0.1:$HP_H_SLURMRESTD_PORT/openapi/v3?hpcport-$TAG-{i} > code.{i}']
    outputs: ["proxy.{i}", "code.{i}"]
EOF
expect_rc 0 "proxy: a pilot task that needs the network runs on a proxy site" "$HP" run "$T/w4/wf.yaml" --site pp
check "proxy: the task got the site's proxy" test "$(cat "$T/w4/proxy.2" 2>/dev/null)" = "$HP_H_TINYPROXY_URL"
check "proxy: its request went through tinyproxy" grep -q "hpcport-$TAG-3" "$HP_H_DIR/proxy/tinyproxy.log"
check "proxy: and got slurmrestd's answer (401 without a token)" test "$(cat "$T/w4/code.1" 2>/dev/null)" = 401

# ---------------------------------------------------------------- spool transport, local site
mkdir -p "$T/w5" && wf lsp 12 0 "$T/w5/wf.yaml"
SP="--set pilots.transport=spool --set pilots.cores=2 --set pilots.min_tasks=2 --set pilots.idle=5s"
expect_rc 0 "spool: plan says the pilots use the spool" "$HP" plan "$T/w5/wf.yaml" $SP
check "... so" contains "$OUT" "reaching the agent through the spool"
expect_rc 0 "spool: a campaign on the local site through the spool" "$HP" run "$T/w5/wf.yaml" $SP
check "spool: every instance completed" contains "$OUT" "13 of 13 completed"
check "spool: sum right" test "$(cat "$T/w5/sum" 2>/dev/null)" = "$(sumsq 12)"
check "spool: each task ran once" test "$(sort "$T/w5/ran.log" | uniq | wc -l) $(wc -l < "$T/w5/ran.log")" = "12 12"
SPOOL=$HPCPORT_STATE_DIR/campaigns/lsp/agent/spool
check "spool: no per-task files left in the spool" test "$(find "$SPOOL" -type f ! -name status 2>/dev/null | wc -l)" = 0

# ---------------------------------------------------------------- cancel, local site
mkdir -p "$T/w6" && wf lcx 30 1 "$T/w6/wf.yaml"
LX="--set pilots.cores=2 --set pilots.min_tasks=2 --set pilots.idle=30s"
"$HP" run "$T/w6/wf.yaml" $LX >/dev/null 2>&1 &
RUN=$!; PIDS+=("$RUN")
ran6() { [ "$(cat "$T/w6/ran.log" 2>/dev/null | wc -l)" -ge 2 ]; }
wait_for 60 ran6
kill -9 "$RUN"; wait "$RUN" 2>/dev/null
expect_rc 0 "cancel of a pilot campaign whose run is gone" "$HP" cancel lcx
check "... stops its tasks at the agent" contains "$OUT" "stopped"
no_pilot6() { ! pgrep -f "secret-file $HPCPORT_STATE_DIR/campaigns/lcx/agent/secret" >/dev/null; }
check "... the pilot drops or kills what it holds and exits" wait_for 15 no_pilot6
n6=$(wc -l < "$T/w6/ran.log"); sleep 3
check "... no task ran after the cancel ($n6 of 30 ran)" test "$(wc -l < "$T/w6/ran.log")" = "$n6" -a "$n6" -lt 30
expect_rc 0 "status after the cancel" "$HP" status lcx --offline
check "... says canceled" contains "$OUT" "state:     canceled"
"$HP" agent stop --dir "$HPCPORT_STATE_DIR/campaigns/lcx/agent" >/dev/null 2>&1

check_sanitizers
done_testing
