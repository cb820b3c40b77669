#!/bin/bash
# The Slurm adapter against the harness's real Slurm (tests/harness/): a
# campaign with dependencies, inputs and outputs on a site reached over SSH
# (login node through the bastion, from the profile's login section) and on
# one reached with the local transport; hostile arguments and file names
# submitted for real; sbatch refusing a job; a TIMEOUT; resume after kill -9
# of `hpcport run` with no job submitted twice; the login sshd killed during
# a status poll; `hpcport site check` on a right and a wrong profile.
# Needs the services: run it under tests/harness/with-services.sh (or export
# HP_HARNESS_DIR of a running harness); without them it fails, it does not
# skip. Takes about three minutes (one task runs into its 1-minute walltime).
. "$(dirname "$0")/tap.sh"
. "$(dirname "$0")/site-lib.sh"

TAG="hpt$$"
# every job name of campaign $1 submitted by user $2, one per line
job_names() { sacct -X -n -P -u "$2" -S now-2hours -o JobName | grep "^$1\." | sort; }
# njobs CAMPAIGN USER N: sacct lists N jobs of the campaign (a job reaches
# the accounting database a few seconds after it changed state: poll)
njobs_is() { [ "$(job_names "$1" "$2" | wc -l)" = "$3" ]; }
njobs() { wait_for 30 njobs_is "$@"; }

profile() { # NAME [EXTRA YAML LINES...] -> the SSH site NAME.yaml
    local name=$1; shift
    {
        echo "name: $name"
        echo "scheduler:"
        echo "  type: slurm"
        echo "  partitions:"
        echo "    - name: debug"
        echo "      max_walltime: 30m"
        echo "    - name: long"
        echo "      max_walltime: 2h"
        echo "  default_partition: debug"
        echo "  account: hpcport"
        echo "  default_walltime: 5m"
        site_login_yaml
        for l in "$@"; do echo "$l"; done
    } > "$SITES/$name.yaml"
}
profile hs
# the same cluster through the local transport: SLURM_CONF of this process,
# jobs run as root, scratch from a variable of this environment
cat > "$SITES/hl.yaml" <<EOF
name: hl
scheduler:
  type: slurm
  partitions: [{name: debug, max_walltime: 30m}]
  account: hpcport
  default_walltime: 5m
network: {login: none, compute: none}
filesystems:
  scratch: \$HP_H_SCRATCH/$TAG-root
EOF
cleanup_site() {
    "${SSH[@]}" "rm -rf ~/.$TAG" >/dev/null 2>&1
    rm -rf "$HP_H_SCRATCH/$TAG-root"
}
trap 'cleanup_site; rm -rf "$T"' EXIT

# --- a task that runs into its walltime: started first, checked last (~90 s)
mkdir -p "$T/to"
wf_walltime "$T/to/to.yaml"
"$HP" run "$T/to/to.yaml" --site hs --campaign "$TAG-to" > "$T/to/out" 2> "$T/to/err" &
to_pid=$!

# --- site check
expect_rc 0 "site check: a right profile passes" "$HP" site check hs
check "site check: reachable through the jump host" contains "$OUT" "via $HP_H_USER@127.0.0.1:$HP_H_BASTION_PORT"
check "site check: the scheduler and its version" contains "$OUT" "slurm-wlm 22"
check "site check: partition debug ok" grep -q "^partition 'debug' *ok" "$T/out"
check "site check: account ok" grep -q "^account *ok" "$T/out"
check "site check: scratch writable" grep -q "^scratch *ok .* writable" "$T/out"
check "site check: login network none, as declared (the harness has no internet)" \
    grep -q "^login network *ok *none, as declared" "$T/out"
check "site check: the probe job reports the compute node's network" \
    grep -q "^compute network *ok *none, as declared" "$T/out"
expect_rc 0 "site check --json" "$HP" site check hs --json --no-job
echo "$OUT" > "$T/check.json"
check "site check --json: ok is true" test "$(jget "$T/check.json" "d['ok']")" = True
check "site check --json: --no-job skips the compute probe" \
    test "$(jget "$T/check.json" "[c['status'] for c in d['checks'] if c['check']=='compute network'][0]")" = skip
# a queue jobs reach by qos, not by partition name (pass_name: false, as on
# sites whose queues are QOSes): no "no such partition", its qos checked
profile hqos
sed -i 's/^    - name: long$/    - name: premium\n      pass_name: false\n      qos: high/' "$SITES/hqos.yaml"
expect_rc 0 "site check: a qos queue (pass_name: false) passes" "$HP" site check hqos --no-job
check "site check: ... it is not looked up as a partition" grep -q "^queue 'premium' *skip .*pass_name: false" "$T/out"
check "site check: ... its qos is checked" grep -q "^qos 'high' *ok" "$T/out"
profile hbad
sed -i -e 's/^    - name: long$/    - name: nosuch/' -e 's/^  account: hpcport$/  account: nope/' \
    -e 's/^  login: none$/  login: open/' "$SITES/hbad.yaml"
pline=$(grep -n 'name: nosuch' "$SITES/hbad.yaml" | cut -d: -f1)
aline=$(grep -n 'account: nope' "$SITES/hbad.yaml" | cut -d: -f1)
nline=$(grep -n 'login: open' "$SITES/hbad.yaml" | cut -d: -f1)
expect_rc 4 "site check: a wrong profile exits 4" "$HP" site check hbad --no-job
check "site check: the unknown partition is FAIL" grep -q "^partition 'nosuch' *FAIL" "$T/out"
check "site check: ... naming its profile line" contains "$OUT" "hbad.yaml:$pline:"
check "site check: the wrong account is FAIL, naming its line" \
    grep -q "^account *FAIL .*'nope'.*hbad.yaml:$aline:" "$T/out"
check "site check: login network declared open is a mismatch, naming its line" \
    grep -q "^login network *FAIL .*says open.*hbad.yaml:$nline:" "$T/out"
check "site check: the summary on stderr" contains "$ERR" "checks failed"
expect_rc 2 "site check without a name is a usage error" "$HP" site check
expect_rc 0 "site check --help" "$HP" site check --help
check "site check --help has the synopsis" contains "$OUT" "usage: hpcport site check NAME"

# --- a DAG with inputs and outputs over SSH
mkdir -p "$T/dag/data"
printf 'input line\n' > "$T/dag/data/in.txt"
printf '#!/bin/sh\necho "step $1 on $(hostname)"\n' > "$T/dag/step.sh"
cat > "$T/dag/dag.yaml" <<'EOF'
name: dag
tasks:
  prep:
    command: [sh, -c, 'cat data/in.txt > prep.out && sh step.sh prep']
    inputs: [data/in.txt, step.sh]
    outputs: [prep.out]
  sim:
    matrix: {i: [1, 2, 3]}
    after: [prep]
    command: [sh, -c, 'cat prep.out > "sim-$1.out" && echo "$1" >> "sim-$1.out" && sh step.sh "$1"', sh, "{i}"]
    inputs: [prep.out, step.sh]
    outputs: ["sim-{i}.out"]
  sum:
    after: [sim]
    command: [sh, -c, 'cat sim-1.out sim-2.out sim-3.out > sum.out']
    outputs: [sum.out]
EOF
expect_rc 0 "dag over ssh: run exits 0" "$HP" run "$T/dag/dag.yaml" --site hs --campaign "$TAG-dag"
check "dag over ssh: 5 of 5 completed" contains "$OUT" "5 of 5 completed"
check "dag over ssh: outputs fetched into the workflow directory" \
    test "$(cat "$T/dag/sum.out" 2>/dev/null)" = "$(printf 'input line\n1\ninput line\n2\ninput line\n3')"
check "dag over ssh: each sim output fetched" test -s "$T/dag/sim-1.out" -a -s "$T/dag/sim-2.out" -a -s "$T/dag/sim-3.out"
expect_rc 0 "dag over ssh: logs of a task run on the site" "$HP" logs "$TAG-dag" 'sim[i=2]'
check "dag over ssh: its stdout came back" contains "$OUT" "step 2 on"
"$HP" status "$TAG-dag" --json --tasks > "$T/dag.json"
check "dag over ssh: status reads the local state" \
    test "$(jget "$T/dag.json" "d['counts']['completed']")" = 5
check "dag over ssh: the tasks ran as the site's user, in its scratch" \
    "${SSH[@]}" "test -s ~/.$TAG/hpcport/$TAG-dag/work/sum.out"
check "dag over ssh: the job names carry the tokens, one job each" njobs "$TAG-dag" "$HP_H_USER" 5
expect_rc 0 "dag over ssh: a rerun exits 0" "$HP" run "$T/dag/dag.yaml" --site hs --campaign "$TAG-dag"
check "dag over ssh: the rerun runs nothing" contains "$OUT" "(0 run now"
sleep 3
check "dag over ssh: and submits nothing" njobs "$TAG-dag" "$HP_H_USER" 5
rm -f "$T/dag/"*.out
expect_rc 0 "dag through the local transport: run exits 0" \
    "$HP" run "$T/dag/dag.yaml" --site hl --campaign "$TAG-dagl"
check "dag local: outputs" test "$(wc -l < "$T/dag/sum.out" 2>/dev/null)" = 6
check "dag local: the scratch variable was resolved" test -d "$HP_H_SCRATCH/$TAG-root/hpcport/$TAG-dagl/work"
check "dag local: jobs ran as root" njobs "$TAG-dagl" root 5

# --- scheduler.max_queued_jobs: never more of the campaign's jobs queued or running
profile hq
sed -i 's/^  default_walltime: 5m$/  default_walltime: 5m\n  max_queued_jobs: 1/' "$SITES/hq.yaml"
mkdir -p "$T/q"
cat > "$T/q/q.yaml" <<'EOF2'
name: q
tasks:
  t:
    matrix: {i: [1, 2, 3]}
    command: [sh, -c, 'date +%s.%N > "q-$1.times"; sleep 2; date +%s.%N >> "q-$1.times"', sh, "{i}"]
    outputs: ["q-{i}.times"]
EOF2
expect_rc 0 "max_queued_jobs 1: run exits 0" "$HP" run "$T/q/q.yaml" --site hq --campaign "$TAG-q"
check "max_queued_jobs 1: the jobs ran one after another (the cluster has 2 CPUs)" \
    python3 -c 'import sys
iv = sorted(tuple(map(float, open(f).read().split())) for f in sys.argv[1:])
assert len(iv) == 3 and all(b[0] >= a[1] for a, b in zip(iv, iv[1:])), iv' "$T"/q/q-*.times

# --- hostile arguments and file names, for real
mkdir -p "$T/hostile/data"
printf 'weird input\n' > "$T/hostile/data/in put \$x'q\".txt"
cat > "$T/hostile/hostile.yaml" <<'EOF'
name: hostile
tasks:
  args:
    command: [printf, "%s\\0", "; rm -rf ~", "it's", "a\"b", "line1\nline2", "$(touch pwned)",
              "`touch pwned2`", "*", "?", "~", "$HOME", "\\", " spaced ", "", "-n", "--",
              "a|b&c>d<e", "x && touch pwned3", "%j %x %%", "#SBATCH --uid=0"]
  files:
    matrix:
      v: ["sp ace", "q'uote", "$(touch pwned4)", "dq\"x", "star*", "%j", "back\\slash"]
    command: [sh, -c, 'mkdir -p out && printf "%s" "$1" > "out/$1.txt"', sh, "{v}"]
    outputs: ["out/{v}.txt"]
  input:
    command: [cat, "data/in put $x'q\".txt"]
    inputs: ["data/in put $x'q\".txt"]
EOF
expect_rc 0 "hostile: run exits 0" "$HP" run "$T/hostile/hostile.yaml" --site hs --campaign "$TAG-hostile"
printf '%s\0' "; rm -rf ~" "it's" 'a"b' $'line1\nline2' '$(touch pwned)' '`touch pwned2`' '*' '?' \
    '~' '$HOME' '\' ' spaced ' '' '-n' '--' 'a|b&c>d<e' 'x && touch pwned3' '%j %x %%' \
    '#SBATCH --uid=0' > "$T/want.bin"
"$HP" logs "$TAG-hostile" args > "$T/got.bin"
check "hostile: argv reached printf on the compute node byte for byte" cmp -s "$T/want.bin" "$T/got.bin"
ok_files=1
for v in "sp ace" "q'uote" '$(touch pwned4)' 'dq"x' 'star*' '%j' 'back\slash'; do
    [ "$(cat "$T/hostile/out/$v.txt" 2>/dev/null)" = "$v" ] || { ok_files=0; echo "# missing or wrong: out/$v.txt"; }
done
check "hostile: files with hostile names were made on the site and fetched literally" test "$ok_files" = 1
check "hostile: an input with a hostile name was uploaded and read" \
    test "$("$HP" logs "$TAG-hostile" input)" = "weird input"
check "hostile: no command substitution ran anywhere" \
    "${SSH[@]}" "! ls ~/.$TAG/hpcport/$TAG-hostile/work/pwned* ~/pwned* 2>/dev/null | grep -q ."
check "hostile: nothing ran here either" test ! -e "$T/hostile/pwned" -a ! -e "$T/hostile/pwned4"

# --- sbatch refuses the job: a partition the profile declares and the cluster lacks
profile hrej
sed -i 's/^    - name: debug$/    - name: nosuch/; s/^  default_partition: debug$/  default_partition: nosuch/' "$SITES/hrej.yaml"
mkdir -p "$T/rej"
wf_reject "$T/rej/rej.yaml"
expect_rc 1 "reject: run exits 1" "$HP" run "$T/rej/rej.yaml" --site hrej --campaign "$TAG-rej"
check "reject: the summary names sbatch's reason" contains "$OUT" "sbatch refused the job"
check "reject: ... the invalid partition" contains "$OUT" "nvalid partition"
check "reject: the dependent task is canceled, not run" contains "$OUT" "dependency 'a' failed"
check "reject: no job exists for the campaign" test -z "$(job_names "$TAG-rej" "$HP_H_USER")"
check "reject: nothing was fetched" test ! -e "$T/rej/a.out"
expect_rc 0 "reject: a rerun with the partition fixed completes" "$HP" run "$T/rej/rej.yaml" --site hrej \
    --campaign "$TAG-rej" --set 'scheduler.partitions=[{name: debug}]' --set scheduler.default_partition=debug
check "reject: outputs after the rerun" test "$(cat "$T/rej/b.out" 2>/dev/null)" = a
check "reject: exactly one job per task" njobs "$TAG-rej" "$HP_H_USER" 2

# --- resume after kill -9 of hpcport run: nothing is submitted twice
mkdir -p "$T/res"
cat > "$T/res/res.yaml" <<'EOF'
name: res
tasks:
  t:
    matrix: {i: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]}
    command: [sh, -c, 'sleep 1; echo "$1" > "r-$1.out"', sh, "{i}"]
    outputs: ["r-{i}.out"]
  total:
    after: [t]
    command: [sh, -c, 'cat r-*.out | wc -l > total.out']
    outputs: [total.out]
EOF
# first the exact window: sbatch accepted the job, nothing recorded it yet
( HPCPORT_TEST_KILL_AFTER_SBATCH=3 "$HP" run "$T/res/res.yaml" --site hs --campaign "$TAG-res"
  exit $? ) > /dev/null 2>&1   # (the subshell says "Killed" to /dev/null)
rc=$?
check "resume: the run died right after sbatch accepted its 3rd job (exit $rc)" test "$rc" = 137
check "resume: the state does not know the 3rd job" \
    test "$("$HP" status "$TAG-res" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["counts"]["queued"] + d["counts"]["active"] + d["counts"]["completed"])')" -le 2
kills=0
for delay in 0.7 1.6 2.5 0.3 3.5; do
    "$HP" run "$T/res/res.yaml" --site hs --campaign "$TAG-res" > /dev/null 2>&1 &
    pid=$!
    sleep "$delay"
    kill -9 "$pid" 2>/dev/null && kills=$((kills + 1))
    wait "$pid" 2>/dev/null
done
check "resume: hpcport run was killed with SIGKILL several times ($kills)" test "$kills" -ge 3
expect_rc 0 "resume: the last run completes" "$HP" run "$T/res/res.yaml" --site hs --campaign "$TAG-res"
check "resume: 13 of 13 completed" contains "$OUT" "13 of 13 completed"
check "resume: every output is here" test "$(cat "$T/res/total.out" 2>/dev/null)" = 12
check "resume: sacct lists one job per instance" njobs "$TAG-res" "$HP_H_USER" 13
names=$(job_names "$TAG-res" "$HP_H_USER")
dups=$(printf '%s\n' "$names" | uniq -d)
check "resume: no attempt was submitted twice (tokens in job names, by sacct)" test -z "$dups"
[ -z "$dups" ] || printf '# duplicate: %s\n' $dups

# --- the login sshd killed during a status poll, then started again
mkdir -p "$T/kill"
cat > "$T/kill/kill.yaml" <<'EOF'
name: kill
tasks:
  w:
    matrix: {i: [1, 2, 3]}
    command: [sh, -c, 'sleep 6; echo "$1" > "w-$1.out"', sh, "{i}"]
    outputs: ["w-{i}.out"]
  after:
    after: [w]
    command: [sh, -c, 'cat w-*.out > all.out']
    outputs: [all.out]
EOF
"$HP" -v run "$T/kill/kill.yaml" --site hs --campaign "$TAG-kill" > "$T/kill/out" 2> "$T/kill/err" &
run_pid=$!
active() { "$HP" status "$TAG-kill" --json > "$T/kst.json" 2>/dev/null &&
           [ "$(jget "$T/kst.json" "d['counts']['active']")" -gt 0 ]; }
check "sshd kill: a task runs" wait_for 60 active
kill_tree() { local c; for c in $(pgrep -P "$1"); do kill_tree "$c"; done; kill -9 "$1" 2>/dev/null; }
LPID=$(cat "$HP_HARNESS_DIR/login/sshd.pid")
kill_tree "$LPID"   # the daemon and every session it serves, ours included
gone() { ! kill -0 "$LPID" 2>/dev/null; }
check "sshd kill: the login sshd and its sessions are gone" wait_for 10 gone
sleep 4
env HP_H_TAG="$HP_HARNESS_DIR" /usr/sbin/sshd -f "$HP_HARNESS_DIR/login/sshd_config" \
    -E "$HP_HARNESS_DIR/login/sshd.log" </dev/null >/dev/null 2>&1
up() { "${SSH[@]}" true 2>/dev/null; }
check "sshd kill: the login sshd is back" wait_for 20 up
wait "$run_pid"
rc=$?
check "sshd kill: the run completed (exit $rc)" test "$rc" = 0
check "sshd kill: its outputs are here" test "$(wc -l < "$T/kill/all.out" 2>/dev/null)" = 3
check "sshd kill: the run noticed the outage" grep -q "failed\|not submitted now" "$T/kill/err"
check "sshd kill: one job per instance" njobs "$TAG-kill" "$HP_H_USER" 4

# --- cancel with no hpcport run alive: scancel through the site
mkdir -p "$T/can"
cat > "$T/can/can.yaml" <<'EOF'
name: can
tasks:
  nap:
    matrix: {i: [1, 2]}
    command: [sleep, "300"]
EOF
"$HP" run "$T/can/can.yaml" --site hs --campaign "$TAG-can" > /dev/null 2>&1 &
can_pid=$!
submitted() { "$HP" status "$TAG-can" --json > "$T/cst.json" 2>/dev/null &&
              [ "$(jget "$T/cst.json" "d['counts']['queued'] + d['counts']['active']")" = 2 ]; }
check "cancel: both jobs are submitted" wait_for 60 submitted
kill -9 "$can_pid"; wait "$can_pid" 2>/dev/null
live_jobs() { squeue -h -u "$HP_H_USER" -o %j | grep -c "^$TAG-can\." ; }
check "cancel: the jobs outlive the killed run" test "$(live_jobs)" = 2
# a site that cannot be reached: nothing is marked, the jobs run on
expect_rc 4 "cancel: an unreachable site is an error" \
    "$HP" cancel "$TAG-can" --set login.port=1
check "cancel: ... saying nothing was canceled" contains "$ERR" "nothing was canceled"
"$HP" status "$TAG-can" --json > "$T/cst.json"
check "cancel: ... and the state still has both instances live" \
    test "$(jget "$T/cst.json" "d['counts']['queued'] + d['counts']['active']")" = 2
expect_rc 0 "cancel: with the site reachable, the campaign is canceled" "$HP" cancel "$TAG-can"
check "cancel: ... stopping both jobs itself" contains "$OUT" "stopped 2 running jobs"
gone_jobs() { [ "$(live_jobs)" = 0 ]; }
check "cancel: squeue no longer lists them" wait_for 30 gone_jobs
"$HP" status "$TAG-can" --json > "$T/cst.json"
check "cancel: status says 2 canceled" test "$(jget "$T/cst.json" "d['counts']['canceled']")" = 2
cancelled_in_sacct() { [ "$(sacct -X -n -P -u "$HP_H_USER" -S now-2hours -o JobName,State |
                             grep "^$TAG-can\." | grep -c '|CANCELLED')" = 2 ]; }
check "cancel: sacct says CANCELLED for both" wait_for 30 cancelled_in_sacct

# --- the timeout
wait "$to_pid"
rc=$?
check "timeout: run exits 1 (exit $rc)" test "$rc" = 1
check "timeout: the reason names the walltime" grep -q "TIMEOUT (walltime 00:01:00)" "$T/to/out"
"$HP" status "$TAG-to" --json --tasks > "$T/to.json"
check "timeout: status says failed, timed out" \
    test "$(jget "$T/to.json" "[(i['state'], i['timed_out']) for i in d['instances']][0]")" = "('failed', True)"

check_sanitizers

done_testing
