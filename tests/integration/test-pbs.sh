#!/bin/bash
# The PBS adapter (dialect torque) against real qsub/qstat/qdel: Debian's
# slurm-wlm-torque wrappers on the harness's Slurm (tests/harness/), over
# SSH through the bastion like test-slurm.sh. A campaign with inputs,
# outputs, a dependency, a task that exits 3 and one whose arguments are
# hostile; the job names carry the tokens; a rerun submits nothing; qsub
# refusing a job (unknown queue), then a rerun that works; `hpcport cancel`
# of a running job (qdel); a task killed at its walltime; resume after
# kill -9 right after qsub, with no job submitted twice; `site check`.
# Needs the services (tests/harness/with-services.sh, or HP_HARNESS_DIR of a
# running harness) and slurm-wlm-torque; without them it fails, it does not
# skip. Takes about two minutes (one task runs into its 1-minute walltime).
. "$(dirname "$0")/tap.sh"
. "$(dirname "$0")/site-lib.sh"

if ! command -v qsub >/dev/null 2>&1 || ! grep -q Slurm "$(command -v qsub)"; then
    fail "Slurm's PBS wrappers are not installed: apt-get install slurm-wlm-torque" \
         "(sh tools/install-deps.sh --test)"
    done_testing; exit 1
fi

TAG="hpp$$"
# the job names of campaign $1 (the name after the token), one per line
job_names() {
    sacct -X -n -P -u "$HP_H_USER" -S now-2hours -o JobName | grep "^hp[0-9a-f]\{16\}\.[0-9]*-[0-9a-f]*\.$1\." | sort
}
njobs_is() { [ "$(job_names "$1" | wc -l)" = "$2" ]; }
njobs() { wait_for 30 njobs_is "$@"; }

profile() { # NAME QUEUE [EXTRA YAML LINES...]
    local name=$1 queue=$2; shift 2
    {
        echo "name: $name"
        echo "scheduler:"
        echo "  type: pbs"
        echo "  dialect: torque"
        echo "  partitions:"
        echo "    - name: $queue"
        echo "      max_walltime: 30m"
        echo "  account: hpcport"
        echo "  default_walltime: 5m"
        site_login_yaml
        for l in "$@"; do echo "$l"; done
    } > "$SITES/$name.yaml"
}
profile pt debug
trap '"${SSH[@]}" "rm -rf ~/.$TAG" >/dev/null 2>&1; rm -rf "$T" "$HP_H_SCRATCH/$TAG-root"' EXIT

# --- a task that runs into its walltime: started first, checked last
mkdir -p "$T/to"
wf_walltime "$T/to/to.yaml"
"$HP" run "$T/to/to.yaml" --site pt --campaign "$TAG-to" > "$T/to/out" 2> "$T/to/err" &
to_pid=$!

# --- site check
expect_rc 0 "site check: the profile passes" "$HP" site check pt
check "site check: the scheduler row names the dialect" grep -q "^scheduler *ok .*torque dialect" "$T/out"
check "site check: queue debug exists" grep -q "^partition 'debug' *ok" "$T/out"
profile pbad nosuch
qline=$(grep -n 'name: nosuch' "$SITES/pbad.yaml" | cut -d: -f1)
expect_rc 4 "site check: a queue the site lacks exits 4" "$HP" site check pbad
check "site check: ... FAIL naming the profile line" \
    grep -q "^partition 'nosuch' *FAIL .*pbad.yaml:$qline:" "$T/out"

# --- a campaign: inputs, outputs, a dependency, exit 3, hostile arguments
mkdir -p "$T/c/data"
printf 'input line\n' > "$T/c/data/in.txt"
cat > "$T/c/c.yaml" <<'EOF'
name: c
tasks:
  prep:
    command: [sh, -c, 'cat data/in.txt > prep.out; echo "prep on $(hostname)"']
    inputs: [data/in.txt]
    outputs: [prep.out]
  sum:
    after: [prep]
    command: [sh, -c, 'cat prep.out prep.out > sum.out']
    outputs: [sum.out]
  three:
    command: [sh, -c, 'echo going to fail; exit 3']
  hostile:
    command: [printf, "%s\\0", "; rm -rf ~", "it's", "a\"b", "line1\nline2", "$(touch pwned)",
              "`touch pwned2`", "*", "~", "$HOME", "\\", " spaced ", "", "-n",
              "a|b&c>d<e", "x && touch pwned3", "%j %x %%", "#PBS -q nosuch"]
EOF
expect_rc 1 "campaign: run exits 1 (one task fails)" "$HP" run "$T/c/c.yaml" --site pt --campaign "$TAG-c"
check "campaign: 3 of 4 completed, 1 failed" contains "$OUT" "3 of 4 completed, 1 failed"
check "campaign: the summary says exit code 3" contains "$OUT" "exit code 3"
check "campaign: outputs fetched" test "$(cat "$T/c/sum.out" 2>/dev/null)" = "$(printf 'input line\ninput line')"
"$HP" status "$TAG-c" --json --tasks > "$T/c.json"
check "campaign: status says three failed with exit 3" \
    test "$(jget "$T/c.json" "[(i['state'], i['exit_code']) for i in d['instances'] if i['id']=='three'][0]")" = "('failed', 3)"
check "campaign: status says the others completed" \
    test "$(jget "$T/c.json" "sorted(i['id'] for i in d['instances'] if i['state']=='completed')")" = "['hostile', 'prep', 'sum']"
expect_rc 0 "campaign: logs of a task" "$HP" logs "$TAG-c" prep
check "campaign: its stdout came back from the compute node" contains "$OUT" "prep on "
expect_rc 0 "campaign: logs of the failed task" "$HP" logs "$TAG-c" three
check "campaign: its stdout too" contains "$OUT" "going to fail"
printf '%s\0' "; rm -rf ~" "it's" 'a"b' $'line1\nline2' '$(touch pwned)' '`touch pwned2`' '*' '~' \
    '$HOME' '\' ' spaced ' '' '-n' 'a|b&c>d<e' 'x && touch pwned3' '%j %x %%' '#PBS -q nosuch' \
    > "$T/want.bin"
"$HP" logs "$TAG-c" hostile > "$T/got.bin"
check "hostile: argv reached printf on the compute node byte for byte" cmp -s "$T/want.bin" "$T/got.bin"
check "hostile: no command substitution ran on the site" \
    "${SSH[@]}" "! ls ~/.$TAG/hpcport/$TAG-c/work/pwned* ~/pwned* 2>/dev/null | grep -q ."
check "hostile: nor here" test ! -e "$T/c/pwned"
check "campaign: one job per task, named by its token" njobs "$TAG-c" 4
check "campaign: the job script is kept beside its logs" \
    "${SSH[@]}" "grep -q '^#PBS -l nodes=1:ppn=1' ~/.$TAG/hpcport/$TAG-c/logs/prep.1.pbs"
check "campaign: the exit record of the failed task" \
    "${SSH[@]}" "grep -q '^3 ' ~/.$TAG/hpcport/$TAG-c/logs/three.1.rc"
expect_rc 1 "campaign: a rerun exits 1 (three fails again)" "$HP" run "$T/c/c.yaml" --site pt --campaign "$TAG-c"
check "campaign: the rerun runs only the failed task" contains "$OUT" "(1 run now"
check "campaign: and submits one job" njobs "$TAG-c" 5

# --- qsub refuses the job: a queue the profile declares and the cluster lacks
mkdir -p "$T/rej"
wf_reject "$T/rej/rej.yaml"
expect_rc 1 "reject: run exits 1" "$HP" run "$T/rej/rej.yaml" --site pbad --campaign "$TAG-rej"
check "reject: the reason names the adapter and the task" contains "$OUT" "pbs (torque): qsub refused the job of 'a' (queue 'nosuch')"
check "reject: ... and qsub's reason" contains "$OUT" "invalid partition specified: nosuch"
check "reject: the dependent task is canceled, not run" contains "$OUT" "dependency 'a' failed"
check "reject: no job exists for the campaign" test -z "$(job_names "$TAG-rej")"
"$HP" status "$TAG-rej" --json --tasks > "$T/rej.json"
check "reject: the state is intact (a failed, b canceled)" \
    test "$(jget "$T/rej.json" "sorted((i['id'], i['state']) for i in d['instances'])")" = "[('a', 'failed'), ('b', 'canceled')]"
expect_rc 0 "reject: a rerun with the queue fixed completes" "$HP" run "$T/rej/rej.yaml" --site pbad \
    --campaign "$TAG-rej" --set 'scheduler.partitions=[{name: debug}]'
check "reject: outputs after the rerun" test "$(cat "$T/rej/b.out" 2>/dev/null)" = a
check "reject: exactly one job per task" njobs "$TAG-rej" 2

# --- cancel a running job (qdel)
mkdir -p "$T/cx"
cat > "$T/cx/cx.yaml" <<'EOF'
name: cx
tasks:
  long:
    command: [sleep, "300"]
EOF
"$HP" run "$T/cx/cx.yaml" --site pt --campaign "$TAG-cx" > "$T/cx/out" 2>&1 &
cx_pid=$!
active() { "$HP" status "$TAG-cx" --json > "$T/cx.json" 2>/dev/null &&
           [ "$(jget "$T/cx.json" "d['counts']['active']")" -gt 0 ]; }
check "cancel: the task runs" wait_for 60 active
expect_rc 0 "cancel: hpcport cancel exits 0" "$HP" cancel "$TAG-cx"
wait "$cx_pid"
"$HP" status "$TAG-cx" --json --tasks > "$T/cx.json"
check "cancel: the instance is canceled" \
    test "$(jget "$T/cx.json" "d['instances'][0]['state']")" = canceled
cancelled() { sacct -X -n -P -u "$HP_H_USER" -S now-1hour -o JobName,State |
              grep "\.$TAG-cx\.long|CANCELLED" >/dev/null; }
check "cancel: Slurm says the job was cancelled (qdel reached it)" wait_for 30 cancelled

# --- resume after kill -9 right after qsub: nothing is submitted twice
mkdir -p "$T/res"
cat > "$T/res/res.yaml" <<'EOF'
name: res
tasks:
  t:
    matrix: {i: [1, 2, 3, 4, 5, 6]}
    command: [sh, -c, 'echo "$1" > "r-$1.out"', sh, "{i}"]
    outputs: ["r-{i}.out"]
EOF
( HPCPORT_TEST_KILL_AFTER_QSUB=2 "$HP" run "$T/res/res.yaml" --site pt --campaign "$TAG-res"
  exit $? ) > /dev/null 2>&1
rc=$?
check "resume: the run died right after qsub accepted its 2nd job (exit $rc)" test "$rc" = 137
expect_rc 0 "resume: the next run completes" "$HP" run "$T/res/res.yaml" --site pt --campaign "$TAG-res"
check "resume: 6 of 6 completed" contains "$OUT" "6 of 6 completed"
check "resume: every output is here" test "$(cat "$T"/res/r-*.out 2>/dev/null | wc -l)" = 6
check "resume: one job per instance (the 2nd was adopted by its token)" njobs "$TAG-res" 6
dups=$(job_names "$TAG-res" | uniq -d)
check "resume: no attempt was submitted twice" test -z "$dups"

# --- qstat hangs, then prints nonsense: each poll fails with a clear error
# naming the adapter, the job is neither lost nor submitted again. This site
# runs qsub/qstat here (no login host), with a qstat in front of the real
# one that misbehaves on demand, and a query timeout of 2 s.
mkdir -p "$T/fakebin" "$T/q"
cat > "$T/fakebin/qstat" <<EOF
#!/bin/sh
[ -e "$T/q/hang" ] && sleep 30
[ -e "$T/q/garbage" ] && { echo 'qstat: <<< this is not what qstat prints >>>'; echo '%%%'; exit 0; }
exec /usr/bin/qstat "\$@"
EOF
chmod +x "$T/fakebin/qstat"
cat > "$SITES/pq.yaml" <<EOF
name: pq
scheduler:
  type: pbs
  dialect: torque
  partitions: [{name: debug, max_walltime: 30m}]
  account: hpcport
  default_walltime: 5m
  query_timeout: 2s
network: {login: none, compute: none}
filesystems:
  scratch: \$HP_H_SCRATCH/$TAG-root
EOF
cat > "$T/q/q.yaml" <<'EOF'
name: q
tasks:
  nap:
    command: [sh, -c, 'sleep 8; echo slept > nap.out']
    outputs: [nap.out]
EOF
touch "$T/q/hang"
PATH="$T/fakebin:$PATH" "$HP" -v run "$T/q/q.yaml" --site pq --campaign "$TAG-q" \
    > "$T/q/out" 2> "$T/q/err" &
q_pid=$!
q_submitted() { grep -q "nap: attempt 1 submitted as job" "$T/q/err"; }
# before its first qsub the adapter looks for jobs an earlier run left:
# while qstat hangs or talks nonsense, it submits nothing
sleep 5
mv "$T/q/hang" "$T/q/garbage"
sleep 4
check "qstat faults: nothing is submitted while qstat cannot list the jobs" \
    test -z "$(squeue -h -u root -o %j | grep "\.$TAG-q\.")"
rm -f "$T/q/garbage"
check "qstat faults: the job is submitted once qstat answers" wait_for 30 q_submitted
# and while the job runs, its status polls fail the same two ways
touch "$T/q/hang"
sleep 5
mv "$T/q/hang" "$T/q/garbage"
sleep 4
rm -f "$T/q/garbage"
wait "$q_pid"
rc=$?
check "qstat faults: the run completes once qstat answers again (exit $rc)" test "$rc" = 0
check "qstat faults: the output came back" test "$(cat "$T/q/nap.out" 2>/dev/null)" = slept
check "qstat faults: a hang is reported as a timeout, naming the adapter" \
    grep -q "pbs: site 'pq': .*qstat.*timed out after 2 s" "$T/q/err"
check "qstat faults: nonsense is reported, naming the adapter" \
    grep -q "pbs: site 'pq': .*qstat -f printed something unexpected" "$T/q/err"
# (this site's jobs run as root: qsub ran here)
q_jobs_is_1() { [ "$(sacct -X -n -P -u root -S now-2hours -o JobName | grep -c "\.$TAG-q\.nap$")" = 1 ]; }
check "qstat faults: one job, not submitted again" wait_for 30 q_jobs_is_1
grep -i "qstat" "$T/q/err" | sort | uniq -c | sort -rn | head -4 | sed 's/^/# /'

# --- the walltime
wait "$to_pid"
rc=$?
check "walltime: run exits 1 (exit $rc)" test "$rc" = 1
check "walltime: the reason says it was killed at its walltime" \
    grep -q "at its walltime (00:01:00)" "$T/to/out"
"$HP" status "$TAG-to" --json --tasks > "$T/to.json"
check "walltime: status says failed, timed out" \
    test "$(jget "$T/to.json" "[(i['state'], i['timed_out']) for i in d['instances']][0]")" = "('failed', True)"

check_sanitizers

done_testing
