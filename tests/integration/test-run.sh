#!/bin/bash
# hpcport run / status / cancel / logs on the local site, with real processes:
# DAG order, cores, retries, walltime, kept logs, hostile arguments, cancel,
# interrupt, and resume after kill -9 at random moments.
# Usage: test-run.sh [HPCPORT]   (or $HPCPORT; temp XDG dirs are used)
. "$(dirname "$0")/tap.sh"

FIX="$SRC/tests/fixtures/run"
export HPCPORT_STATE_DIR="$T/state"
# copy a fixture into its own directory (tasks write next to the workflow)
fixture() { mkdir -p "$T/$1"; cp "$FIX/$2" "$T/$1/"; [ -d "$FIX/sites" ] && cp -r "$FIX/sites" "$T/$1/"; echo "$T/$1/$2"; }
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }
now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc; }
# wait (up to $2 s) until the campaign $1 has a running instance
wait_running() {
    for _ in $(seq 1 $(( ${2:-10} * 20 ))); do
        "$HP" status "$1" --json > "$T/st.json" 2>/dev/null &&
            [ "$(jget "$T/st.json" "d['counts']['active']")" -gt 0 ] && return 0
        sleep 0.05
    done
    return 1
}

# --- no campaigns yet
expect_rc 0 "status with no campaigns exits 0" "$HP" status
check "status with no campaigns says so" contains "$ERR" "no campaigns yet"
expect_rc 8 "status of an unknown campaign exits 8" "$HP" status nothere

# --- a DAG runs in order
wf=$(fixture dag dag.yaml)
expect_rc 0 "dag: run exits 0" "$HP" run "$wf"
check "dag: summary counts 4 of 4" contains "$OUT" "4 of 4 completed"
t() { awk -v n="$1" -v w="$2" '$1 == n && $2 == w {print $3}' "$T/dag/order.log"; }
if [ "$(t a end)" -lt "$(t b start)" ] && [ "$(t a end)" -lt "$(t c start)" ] &&
   [ "$(t b end)" -lt "$(t d start)" ] && [ "$(t c end)" -lt "$(t d start)" ]; then
    ok "dag: every task started after its dependencies ended"
else fail "dag: order violated"; sed 's/^/# /' "$T/dag/order.log"; fi
if [ "$(t b start)" -lt "$(t c end)" ] && [ "$(t c start)" -lt "$(t b end)" ]; then
    ok "dag: independent b and c ran at the same time"
else fail "dag: b and c did not overlap"; fi
expect_rc 0 "dag: rerun of a completed campaign exits 0" "$HP" run "$wf"
check "dag: rerun runs nothing" contains "$OUT" "(0 run now"
check "dag: rerun left the tasks' output alone" test "$(wc -l < "$T/dag/order.log")" = 8
expect_rc 0 "status lists campaigns" "$HP" status
check "status table has the campaign" contains "$OUT" "dag"
check "status table has the header" contains "$OUT" "ID"
check "status table has the columns" contains "$OUT" "RUNNING"
expect_rc 0 "status --json of all campaigns" "$HP" status --json
echo "$OUT" > "$T/all.json"
check "status --json lists dag completed" \
    test "$(jget "$T/all.json" "[c['state'] for c in d if c['id']=='dag'][0]")" = completed
expect_rc 8 "status of a misspelt campaign exits 8" "$HP" status dga
check "status suggests the campaign" contains "$ERR" "did you mean 'dag'"

# --- cores: never more running than the site has
wf=$(fixture cores cores.yaml)
expect_rc 0 "cores: run with nodes.cores=2 exits 0" "$HP" run "$wf" --set nodes.cores=2
max=$(sort -n "$T/cores/narrow.max" | tail -1)
check "cores: 1-core tasks never more than 2 at once (max $max)" test "$max" -le 2
check "cores: 1-core tasks did run in parallel (max $max)" test "$max" -eq 2
max=$(sort -n "$T/cores/wide.max" | tail -1)
check "cores: 2-core tasks (ntasks 2) ran one at a time (max $max)" test "$max" -eq 1
wf=$(fixture toobig toobig.yaml)
expect_rc 5 "cores: a task needing 3 cores on a 2-core site is refused" \
    "$HP" run "$wf" --set nodes.cores=2
check "cores: the error names the cores" contains "$ERR" "cores"
expect_rc 8 "cores: nothing ran, no campaign created" "$HP" status toobig
wf=$(fixture mp cores.yaml)
expect_rc 0 "max-parallel 1: run exits 0" "$HP" run "$wf" --campaign mp --max-parallel 1 --set nodes.cores=4
check "max-parallel 1: never two at once" test "$(sort -n "$T/mp/narrow.max" | tail -1)" -eq 1
expect_rc 2 "max-parallel 0 is a usage error" "$HP" run "$wf" --campaign mp --max-parallel 0

# --- retries, exit codes, kept logs per attempt
wf=$(fixture retry retry.yaml)
expect_rc 1 "retry: run with a hopeless task exits 1" "$HP" run "$wf"
check "retry: summary names the failure" contains "$OUT" "hopeless"
expect_rc 0 "retry: status --json" "$HP" status retry --json --tasks
echo "$OUT" > "$T/retry.json"
check "retry: flaky completed" \
    test "$(jget "$T/retry.json" "[i['state'] for i in d['instances'] if i['id']=='flaky'][0]")" = completed
check "retry: flaky took 3 attempts" \
    test "$(jget "$T/retry.json" "[i['attempts'] for i in d['instances'] if i['id']=='flaky'][0]")" = 3
check "retry: flaky ran exactly 3 times" test "$(cat "$T/retry/flaky.count")" = 3
check "retry: hopeless failed after 1 + 1 attempts" \
    test "$(jget "$T/retry.json" "[(i['state'],i['attempts'],i['exit_code']) for i in d['instances'] if i['id']=='hopeless'][0]")" = "('failed', 2, 3)"
expect_rc 0 "logs: latest attempt's stdout" "$HP" logs retry flaky
check "logs: latest attempt is 3" test "$OUT" = "try 3"
expect_rc 0 "logs: --attempt 1" "$HP" logs retry flaky --attempt 1
check "logs: attempt 1 kept" test "$OUT" = "try 1"
expect_rc 0 "logs: --stderr" "$HP" logs retry flaky --stderr --attempt 2
check "logs: stderr of attempt 2" test "$OUT" = "oops 2"
expect_rc 0 "logs: --both" "$HP" logs retry flaky --both
check "logs: --both has stdout" contains "$OUT" "try 3"
check "logs: --both has stderr" contains "$OUT" "oops 3"
expect_rc 8 "logs: an attempt that does not exist" "$HP" logs retry flaky --attempt 4
expect_rc 8 "logs: misspelt instance exits 8" "$HP" logs retry flaki
check "logs: suggests the instance" contains "$ERR" "did you mean 'flaky'"
expect_rc 8 "logs: misspelt campaign exits 8" "$HP" logs retyr flaky
check "logs: suggests the campaign" contains "$ERR" "did you mean 'retry'"
expect_rc 2 "logs: missing instance argument is a usage error" "$HP" logs retry
expect_rc 0 "status --state failed" "$HP" status retry --state failed
check "status --state failed lists hopeless" contains "$OUT" "hopeless"
if contains "$OUT" "flaky  "; then fail "status --state failed lists flaky"; else ok "status --state failed omits completed"; fi
expect_rc 2 "status --state with a typo" "$HP" status retry --state faild
check "status --state suggests" contains "$ERR" "did you mean 'failed'"
# rerun: the failed instance gets a new try (attempts 3 and 4), flaky is not rerun
expect_rc 1 "retry: rerun retries the failed instance" "$HP" run "$wf"
check "retry: flaky not run again" test "$(cat "$T/retry/flaky.count")" = 3
"$HP" status retry --json --tasks > "$T/retry2.json"
check "retry: hopeless has attempts 3 and 4 now" \
    test "$(jget "$T/retry2.json" "[i['attempts'] for i in d['instances'] if i['id']=='hopeless'][0]")" = 4

# --- walltime
wf=$(fixture timeout timeout.yaml)
t0=$(now)
expect_rc 1 "timeout: run exits 1" "$HP" run "$wf"
dt=$(elapsed "$t0")
check "timeout: took less than 60 s (${dt}s)" test "$(echo "$dt < 60" | bc)" = 1
check "timeout: took at least the grace period (${dt}s)" test "$(echo "$dt >= 5" | bc)" = 1
"$HP" status timeout --json --tasks > "$T/to.json"
check "timeout: sleeper failed with TIMEOUT (walltime 00:00:02)" \
    test "$(jget "$T/to.json" "[(i['state'],i['reason'],i['timed_out']) for i in d['instances'] if i['id']=='sleeper'][0]")" = "('failed', 'TIMEOUT (walltime 00:00:02)', True)"
check "timeout: stubborn (ignores SIGTERM) killed, TIMEOUT (walltime 00:00:01)" \
    test "$(jget "$T/to.json" "[(i['state'],i['reason']) for i in d['instances'] if i['id']=='stubborn'][0]")" = "('failed', 'TIMEOUT (walltime 00:00:01)')"
expect_rc 0 "timeout: status --tasks" "$HP" status timeout --tasks
check "timeout: status --tasks shows the reason" contains "$OUT" "TIMEOUT (walltime 00:00:02)"

# --- hostile arguments reach the task literally
wf=$(fixture hostile hostile.yaml)
mkdir -p "$T/hostile/x"
expect_rc 0 "hostile: run exits 0" "$HP" run "$wf"
printf '%s\0' "; rm -rf x" "it's" 'a"b' $'line1\nline2' '$(touch pwned)' '`touch pwned2`' '*' '?' \
    '[ab]' '~' '$HOME' '\' ' spaced ' '' '-n' '--' 'a|b&c>d<e' 'x && touch pwned3' > "$T/want.bin"
"$HP" logs hostile args > "$T/got.bin"
check "hostile: argv reached printf byte for byte" cmp -s "$T/want.bin" "$T/got.bin"
check "hostile: no command substitution ran" test ! -e "$T/hostile/pwned" -a ! -e "$T/hostile/pwned2" \
    -a ! -e "$T/hostile/pwned3" -a ! -e "$T/hostile/pwned4" -a ! -e "$T/hostile/pwned5"
check "hostile: x was not removed" test -d "$T/hostile/x"
expect_rc 0 "hostile: logs of an id with '/' and a space" "$HP" logs hostile 'weird[v=a/b c]'
check "hostile: its output" test "$OUT" = "a/b c"
expect_rc 0 "hostile: logs of an id with \$()" "$HP" logs hostile 'weird[v=$(touch pwned4)]'
check "hostile: its output is literal" test "$OUT" = '$(touch pwned4)'
expect_rc 0 "hostile: shell templates quote values" "$HP" logs hostile "quoted[v=it's]"
check "hostile: the quoted value" test "$OUT" = "it's"
expect_rc 0 "hostile: a shell value with \$() stays literal" "$HP" logs hostile 'quoted[v=$(touch pwned5)]'
check "hostile: its output" test "$OUT" = '$(touch pwned5)'
expect_rc 2 "logs: a task with several instances asks for one" "$HP" logs hostile weird
check "logs: lists the instances" contains "$ERR" "weird[v=a/b c]"

# --- a failed dependency cancels its dependents
wf=$(fixture faildep faildep.yaml)
expect_rc 1 "faildep: run exits 1" "$HP" run "$wf"
check "faildep: b did not run" test ! -e "$T/faildep/b.ran"
check "faildep: c did not run" test ! -e "$T/faildep/c.ran"
check "faildep: d ran" test -e "$T/faildep/d.ran"
"$HP" status faildep --json --tasks > "$T/fd.json"
check "faildep: a failed with exit 3" \
    test "$(jget "$T/fd.json" "[(i['state'],i['exit_code']) for i in d['instances'] if i['id']=='a'][0]")" = "('failed', 3)"
check "faildep: b canceled, reason names a" \
    test "$(jget "$T/fd.json" "[(i['state'],i['reason']) for i in d['instances'] if i['id']=='b'][0]")" = "('canceled', \"dependency 'a' failed\")"
check "faildep: c canceled, reason names a" \
    test "$(jget "$T/fd.json" "[(i['state'],i['reason']) for i in d['instances'] if i['id']=='c'][0]")" = "('canceled', \"dependency 'a' failed\")"
check "faildep: counts" test "$(jget "$T/fd.json" "(d['counts']['completed'],d['counts']['failed'],d['counts']['canceled'])")" = "(1, 1, 2)"

# --- a campaign belongs to one site
expect_rc 7 "site: the same campaign on another site is refused" "$HP" run "$wf" --site mini
check "site: the error names both sites" contains "$ERR" "'local', not 'mini'"
check "site: the error suggests --campaign" contains "$ERR" "--campaign"
expect_rc 1 "site: a separate campaign on the other site runs" "$HP" run "$wf" --site mini --campaign faildep-mini

# --- cancel: a running engine notices, dependents are canceled, jobs stop
wf=$(fixture cancel cancel.yaml)
"$HP" run "$wf" --set nodes.cores=4 > "$T/cancel.out" 2> "$T/cancel.err" &
runpid=$!
if wait_running cancelme 10; then ok "cancel: campaign is running"; else fail "cancel: campaign never ran"; fi
expect_rc 7 "cancel: a second run of a running campaign is refused" "$HP" run "$wf" --set nodes.cores=4
check "cancel: the error says it is being run" contains "$ERR" "being run"
expect_rc 8 "cancel: an unknown instance is an error" "$HP" cancel cancelme 'long[k=3]'
check "cancel: suggests an instance" contains "$ERR" "did you mean"
expect_rc 0 "cancel: one instance" "$HP" cancel cancelme 'long[k=1]'
check "cancel: reports the running engine" contains "$OUT" "running hpcport"
sleep 2.5
"$HP" status cancelme --json --tasks > "$T/c1.json"
check "cancel: long[k=1] canceled" \
    test "$(jget "$T/c1.json" "[i['state'] for i in d['instances'] if i['id']=='long[k=1]'][0]")" = canceled
check "cancel: its dependent canceled" \
    test "$(jget "$T/c1.json" "[(i['state'],i['reason']) for i in d['instances'] if i['id']=='after_long'][0]")" = "('canceled', \"dependency 'long[k=1]' canceled\")"
check "cancel: long[k=2] still active" \
    test "$(jget "$T/c1.json" "[i['state'] for i in d['instances'] if i['id']=='long[k=2]'][0]")" = active
check "cancel: quick completed" \
    test "$(jget "$T/c1.json" "[i['state'] for i in d['instances'] if i['id']=='quick'][0]")" = completed
job1=$(jget "$T/c1.json" "[i['job_id'] for i in d['instances'] if i['id']=='long[k=1]'][0]")
job2=$(jget "$T/c1.json" "[i['job_id'] for i in d['instances'] if i['id']=='long[k=2]'][0]")
check "cancel: the canceled job's processes are gone" test -z "$(pgrep -g "${job1%%:*}")"
t0=$(now)
expect_rc 0 "cancel: the whole campaign" "$HP" cancel cancelme
wait $runpid; rc=$?
dt=$(elapsed "$t0")
check "cancel: run exited 1 after the cancel" test "$rc" = 1
check "cancel: run noticed within 15 s (${dt}s)" test "$(echo "$dt < 15" | bc)" = 1
check "cancel: the other job's processes are gone" test -z "$(pgrep -g "${job2%%:*}")"
check "cancel: after_long never ran" test ! -e "$T/cancel/after.ran"
expect_rc 0 "cancel: status after cancel" "$HP" status
check "cancel: campaign shows canceled" contains "$(echo "$OUT" | grep cancelme)" "canceled"
expect_rc 0 "cancel: canceling a finished campaign" "$HP" cancel cancelme
check "cancel: nothing left to cancel" contains "$OUT" "nothing to cancel"
expect_rc 2 "cancel: no campaign is a usage error" "$HP" cancel

# --- SIGINT: stop submitting, leave running tasks, exit 130, resume later
wf=$(fixture interrupt interrupt.yaml)
"$HP" run "$wf" --set nodes.cores=2 > "$T/int.out" 2> "$T/int.err" &
runpid=$!
wait_running interrupt 10
kill -INT $runpid
wait $runpid; rc=$?
check "interrupt: run exits 130" test "$rc" = 130
check "interrupt: says how to resume" grep -q "Resume with: hpcport run" "$T/int.err"
sleep 1.5
expect_rc 0 "interrupt: rerun completes" "$HP" run "$wf" --set nodes.cores=2
check "interrupt: every instance ran exactly once" \
    test "$(sort -n "$T/interrupt/ledger.txt" | tr '\n' ' ')" = "1 2 3 4 5 6 "

# --- resume after kill -9 at random moments: no task lost, none run twice
for round in 1 2 3 4; do
    wf=$(fixture "ledger$round" ledger.yaml)
    kills=0; final=1
    for try in $(seq 1 80); do
        "$HP" run "$wf" --campaign "ledger$round" --set nodes.cores=8 > "$T/l.out" 2> "$T/l.err" &
        pid=$!
        sleep "0.$(printf '%02d' $(( RANDOM % 45 + 5 )))"
        if kill -9 $pid 2> /dev/null; then
            wait $pid 2> /dev/null
            kills=$((kills + 1))
        else
            wait $pid; final=$?
            [ "$final" = 0 ] && break
        fi
    done
    [ "$final" = 0 ] || { "$HP" run "$wf" --campaign "ledger$round" --set nodes.cores=8 > "$T/l.out" 2>&1; final=$?; }
    check "kill -9 round $round: campaign completed after $kills kills" test "$final" = 0
    L="$T/ledger$round/ledger.txt"
    dup=$(sort "$L" | uniq -d | head -3 | tr '\n' ',')
    check "kill -9 round $round: no task ran twice${dup:+ ($dup)}" test -z "$dup"
    check "kill -9 round $round: no task lost ($(wc -l < "$L") lines)" test "$(sort -u "$L" | wc -l)" = 200
    order_ok=1
    for i in 1 37 100; do
        a=$(grep -n "^pre $i\$" "$L" | cut -d: -f1); b=$(grep -n "^post $i\$" "$L" | cut -d: -f1)
        [ -n "$a" ] && [ -n "$b" ] && [ "$a" -lt "$b" ] || order_ok=0
    done
    check "kill -9 round $round: post i after pre i" test "$order_ok" = 1
    "$HP" status "ledger$round" --json > "$T/l.json"
    check "kill -9 round $round: status says 200 completed" \
        test "$(jget "$T/l.json" "d['counts']['completed']")" = 200
done
before=$(wc -l < "$T/ledger1/ledger.txt")
expect_rc 0 "kill -9: rerun of the completed campaign" "$HP" run "$T/ledger1/ledger.yaml" --campaign ledger1
check "kill -9: rerun ran nothing" test "$(wc -l < "$T/ledger1/ledger.txt")" = "$before"

# --- usage
expect_rc 2 "run without a workflow is a usage error" "$HP" run
expect_rc 0 "run --dry-run prints the plan" "$HP" run "$T/dag/dag.yaml" --dry-run --campaign drydag
check "run --dry-run shows a job" contains "$OUT" "# --- job"
expect_rc 8 "run --dry-run created no campaign" "$HP" status drydag
expect_rc 0 "run --json" "$HP" run "$T/dag/dag.yaml" --json
echo "$OUT" > "$T/run.json"
check "run --json is JSON with the counts" test "$(jget "$T/run.json" "(d['status'], d['completed'], d['total'])")" = "('completed', 4, 4)"

done_testing
