#!/bin/bash
# The Slurm REST adapter (scheduler type slurmrest) against the harness's
# real slurmrestd (rest_auth/jwt) and tinyproxy (tests/harness/): campaigns
# with `hpcport run` reaching slurmrestd directly, through the SSH
# connection (direct-tcpip from the login node, strict host keys) and
# through the HTTP proxy; dependencies, exit codes, hostile arguments; JWTs
# minted from the key, from `scontrol token` over SSH and from $SLURM_JWT;
# a 5-second token renewed during a longer campaign; a wrong key (a clear
# error, nothing failed, a rerun with the right key completes); a key file
# readable by others refused; slurmrestd killed mid-campaign and restarted
# (the campaign completes, no job twice); killed between submission and
# record (adopted, not submitted twice); `hpcport cancel`; `site check`.
# Needs the services (tests/harness/with-services.sh); fails without them.
. "$(dirname "$0")/tap.sh"
. "$(dirname "$0")/site-lib.sh"

TAG="hpr$$"
# job names of campaign $1 that Slurm knows (squeue and sacct), one per line
job_names() {
    { squeue -h -t all -u "$HP_H_USER" -o %j; sacct -X -n -P -u "$HP_H_USER" -S now-2hours -o JobName; } |
        grep "^$1\." | sort -u
}
njobs_is() { [ "$(job_names "$1" | wc -l)" = "$2" ]; }
# the same job name twice in squeue/sacct ids: a duplicate submission
dup_jobs() {
    { squeue -h -t all -u "$HP_H_USER" -o '%i|%j'; sacct -X -n -P -u "$HP_H_USER" -S now-2hours -o JobIDRaw,JobName; } |
        grep "|$1\." | sort -u | cut -d'|' -f2 | sort | uniq -d
}

# the key, as a user would keep a copy of it: 0600
cp "$HP_H_JWT_KEY" "$T/jwt.key"; chmod 0600 "$T/jwt.key"
head -c 32 /dev/urandom > "$T/wrong.key"; chmod 0600 "$T/wrong.key"
cp "$T/jwt.key" "$T/open.key"; chmod 0644 "$T/open.key"

profile() { # NAME REST-YAML-LINES... -> a slurmrest site NAME.yaml; files over SSH
    local name=$1; shift
    {
        echo "name: $name"
        echo "scheduler:"
        echo "  type: slurmrest"
        echo "  partitions:"
        echo "    - name: debug"
        echo "      max_walltime: 30m"
        echo "  account: hpcport"
        echo "  default_walltime: 5m"
        echo "  rest:"
        for l in "$@"; do echo "    $l"; done
        site_login_yaml
    } > "$SITES/$name.yaml"
}
URL=$HP_H_SLURMRESTD_URL
profile rd "url: $URL" "token: {source: key, key_file: $T/jwt.key}"
profile rs "url: $URL" "via: ssh" "token: {source: scontrol}"
profile rp "url: $URL" "via: proxy" "proxy: $HP_H_TINYPROXY_URL" "token: {source: key, key_file: $T/jwt.key}"
profile renv "url: $URL" "token: {source: env}"
profile rshort "url: $URL" "token: {source: key, key_file: $T/jwt.key, lifetime: 5s}"
profile rbad "url: $URL" "token: {source: key, key_file: $T/wrong.key}"
profile ropen "url: $URL" "token: {source: key, key_file: $T/open.key}"
cleanup_site() { "${SSH[@]}" "rm -rf ~/.$TAG" >/dev/null 2>&1; }
trap 'cleanup_site; rm -rf "$T"' EXIT

# --- site check
expect_rc 0 "site check: direct, token from the key" "$HP" site check rd
check "site check: the token row" grep -q "^token *ok *from key, for user '$HP_H_USER'" "$T/out"
check "site check: slurmrestd answers, Slurm 22.05" grep -q "^slurmrestd *ok .*directly, Slurm 22.05" "$T/out"
check "site check: partition debug exists" grep -q "^partition 'debug' *ok" "$T/out"
expect_rc 0 "site check: via ssh, token from scontrol over SSH" "$HP" site check rs
check "site check: ... through the SSH connection" grep -q "^slurmrestd *ok .*through the SSH connection" "$T/out"
expect_rc 0 "site check: via the proxy" "$HP" site check rp
check "site check: ... through the proxy" contains "$OUT" "through the proxy $HP_H_TINYPROXY_URL"
expect_rc 4 "site check: a wrong key fails" "$HP" site check rbad
check "site check: ... saying the token was refused" grep -q "^slurmrestd *FAIL .*refused the token" "$T/out"
check "site check: ... and no token in the output" sh -c "! grep -q 'eyJ' '$T/out' '$T/err'"
profile rdown "url: http://127.0.0.1:1" "token: {source: key, key_file: $T/jwt.key}"
expect_rc 4 "site check: slurmrestd down fails" "$HP" site check rdown
check "site check: ... naming the URL and the route" \
    contains "$OUT" "cannot reach slurmrestd at http://127.0.0.1:1 (directly)"

# an HTTP server that is not slurmrestd (tinyproxy itself): no JSON
profile rhtml "url: $HP_H_TINYPROXY_URL" "token: {source: key, key_file: $T/jwt.key}"
expect_rc 4 "site check: a URL that is not slurmrestd fails" "$HP" site check rhtml
check "site check: ... saying the answer is no JSON" grep -q "^slurmrestd *FAIL .*HTTP [0-9]* with no JSON document" "$T/out"

expect_rc 4 "site check: an API version slurmrestd does not offer fails" \
    "$HP" site check rd --set scheduler.rest.api=v0.0.99
check "site check: ... naming scheduler.rest.api" \
    grep -q "^slurmrestd *FAIL .*has no GET /slurm/v0.0.99/ping (HTTP 404): is scheduler.rest.api (v0.0.99)" "$T/out"

# --- slurmrestd refuses a job: that attempt fails, quoting slurmrestd
mkdir -p "$T/ref"
wf_reject "$T/ref/ref.yaml"
expect_rc 1 "refused: a job slurmrestd refuses fails its task" \
    "$HP" run "$T/ref/ref.yaml" --site rd --campaign "$TAG-ref" --set scheduler.partitions.0.name=nosuch \
    --set scheduler.default_partition=nosuch
check "refused: ... quoting slurmrestd" contains "$OUT" "Invalid partition name specified"
check "refused: ... and its dependent is not run" contains "$OUT" "dependency 'a' failed"

# --- a DAG with an exit code and hostile arguments, three routes
mkdir -p "$T/dag"
cat > "$T/dag/dag.yaml" <<'EOF'
name: dag
tasks:
  a:
    command: [sh, -c, 'echo from-a > a.out']
    outputs: [a.out]
  b:
    after: [a]
    command: [sh, -c, 'cat a.out > b.out; echo "$HPCPORT_INSTANCE" >> b.out']
    outputs: [b.out]
  three:
    command: [sh, -c, 'exit 3']
  args:
    command: [printf, "%s\\0", "; rm -rf ~", "it's", "a\"b", "line1\nline2", "$(touch pwned)",
              "`touch pwned2`", "*", "$HOME", "\\", " spaced ", "", "%j %x %%", "#SBATCH --uid=0"]
EOF
printf '%s\0' "; rm -rf ~" "it's" 'a"b' $'line1\nline2' '$(touch pwned)' '`touch pwned2`' '*' \
    '$HOME' '\' ' spaced ' '' '%j %x %%' '#SBATCH --uid=0' > "$T/want.bin"
expect_rc 0 "plan: shows the job script the Slurm adapter renders" \
    "$HP" plan "$T/dag/dag.yaml" --site rd --all
check "plan: ... with its #SBATCH lines" contains "$OUT" "#SBATCH --account=hpcport"
check "plan: ... and no token or key" sh -c "! grep -q -e 'eyJ' -e 'X-SLURM' '$T/out' '$T/err'"
expect_rc 0 "plan: slurm and slurmrest render the same script" \
    "$HP" plan "$T/dag/dag.yaml" --site rd --site rd --set scheduler.type=slurm --set scheduler.rest=null --diff --all
check "plan: ... every job the same" contains "$OUT" "0 of 4 jobs shown differ"
for s in rd rs rp; do
    rm -f "$T/dag/"*.out
    expect_rc 1 "$s: a campaign with a failing task exits 1" \
        "$HP" run "$T/dag/dag.yaml" --site "$s" --campaign "$TAG-$s"
    check "$s: 3 of 4 completed, 1 failed" contains "$OUT" "3 of 4 completed, 1 failed"
    check "$s: the failed task has exit code 3" contains "$OUT" "failed three: exit code 3"
    check "$s: b ran after a (its output fetched)" \
        test "$(cat "$T/dag/b.out" 2>/dev/null)" = "$(printf 'from-a\nb')"
    "$HP" logs "$TAG-$s" args > "$T/got.bin" 2>/dev/null
    check "$s: hostile arguments reached the task byte for byte" cmp -s "$T/want.bin" "$T/got.bin"
    check "$s: one job per task, the token in its name" njobs_is "$TAG-$s" 4
done
check "nothing the hostile arguments name was run" \
    "${SSH[@]}" "! ls ~/.$TAG/hpcport/*/work/pwned* 2>/dev/null"
expect_rc 1 "rd: a rerun runs only the failed task again" "$HP" run "$T/dag/dag.yaml" --site rd --campaign "$TAG-rd"
check "rd: ... (1 run now)" contains "$OUT" "(1 run now"
check "rd: ... one job more" njobs_is "$TAG-rd" 5

# --- token from $SLURM_JWT
mkdir -p "$T/one"
cat > "$T/one/one.yaml" <<'EOF'
name: one
tasks:
  t:
    command: [sh, -c, 'echo one > one.out']
    outputs: [one.out]
EOF
tok=$("${SSH[@]}" "scontrol token lifespan=600")
expect_rc 0 "env: SLURM_JWT from 'scontrol token' works" \
    env "${tok%%=*}=${tok#*=}" "$HP" run "$T/one/one.yaml" --site renv --campaign "$TAG-env"
old=$("${SSH[@]}" "scontrol token lifespan=1")
sleep 3
expect_rc 4 "env: an expired token fails site check" env "${old%%=*}=${old#*=}" "$HP" site check renv
check "env: ... saying it expired" grep -q "^token *FAIL .*the token in SLURM_JWT expired" "$T/out"
check "env: ... without printing it" sh -c "! grep -q 'eyJ' '$T/out' '$T/err'"
expect_rc 4 "env: a token with a wrong signature fails site check" \
    env "${tok%%=*}=${tok#*=}x" "$HP" site check renv
check "env: ... saying slurmrestd refused it" \
    grep -q "^slurmrestd *FAIL .*refused the token in SLURM_JWT" "$T/out"
expect_rc 4 "env: without SLURM_JWT, site check says so" env -u SLURM_JWT "$HP" site check renv
check "env: ... naming the variable" contains "$OUT" "SLURM_JWT is not set"

# --- a 5-second token, a 15-second campaign: renewed
cat > "$T/one/long.yaml" <<'EOF'
name: long
tasks:
  a:
    command: [sleep, "6"]
  b:
    after: [a]
    command: [sleep, "6"]
  c:
    after: [b]
    command: [sh, -c, 'echo done > long.out']
    outputs: [long.out]
EOF
expect_rc 0 "short token: a campaign longer than the token's life completes" \
    "$HP" run "$T/one/long.yaml" --site rshort --campaign "$TAG-short"
check "short token: ... 3 of 3" contains "$OUT" "3 of 3 completed"

# --- a wrong key: a clear error, nothing failed; the right key completes
timeout -s INT 25 "$HP" -v run "$T/one/one.yaml" --site rbad --campaign "$TAG-bad" > "$T/bad.out" 2> "$T/bad.err"
check "wrong key: the run says the token was refused" grep -q "refused the token for user '$HP_H_USER'" "$T/bad.err"
check "wrong key: ... naming the key setting" grep -q "scheduler.rest.token.key_file" "$T/bad.err"
check "wrong key: no token in the output" sh -c "! grep -q 'eyJ' '$T/bad.out' '$T/bad.err'"
"$HP" status "$TAG-bad" --json > "$T/bst.json" 2>/dev/null
check "wrong key: nothing is marked failed" test "$(jget "$T/bst.json" "d['counts']['failed']")" = 0
check "wrong key: no job was submitted" njobs_is "$TAG-bad" 0
sed -i "s|$T/wrong.key|$T/jwt.key|" "$SITES/rbad.yaml"
expect_rc 0 "wrong key: the rerun with the right key completes" \
    "$HP" run "$T/one/one.yaml" --site rbad --campaign "$TAG-bad"
check "wrong key: ... 1 of 1" contains "$OUT" "1 of 1 completed"

# --- a key file others may read: refused
timeout -s INT 10 "$HP" -v run "$T/one/one.yaml" --site ropen --campaign "$TAG-open" > "$T/open.out" 2> "$T/open.err"
check "open key: refused, saying how to fix it" grep -q "readable by others (mode 0644).*chmod 600" "$T/open.err"
"$HP" status "$TAG-open" --json > "$T/ost.json" 2>/dev/null
check "open key: nothing is marked failed" test "$(jget "$T/ost.json" "d['counts']['failed']")" = 0

# --- slurmrestd killed while a campaign runs, then restarted
cat > "$T/one/outage.yaml" <<'EOF'
name: outage
tasks:
  a:
    matrix: {i: [1, 2]}
    command: [sleep, "8"]
  b:
    after: [a]
    command: [sh, -c, 'echo after > outage.out']
    outputs: [outage.out]
EOF
"$HP" -v run "$T/one/outage.yaml" --site rd --campaign "$TAG-out" > "$T/out.out" 2> "$T/out.err" &
run_pid=$!
check "outage: the first two jobs are submitted" wait_for 60 njobs_is "$TAG-out" 2
rpid=$(cat "$HP_H_DIR/rest/slurmrestd.pid")
kill "$rpid"
gone() { ! kill -0 "$rpid" 2>/dev/null; }
check "outage: slurmrestd is stopped" wait_for 10 gone
sleep 12   # a ends meanwhile; b cannot be submitted
check "outage: the run is still going" kill -0 "$run_pid"
check "outage: b was not submitted while slurmrestd was down" njobs_is "$TAG-out" 2
"$HP" status "$TAG-out" --json > "$T/ost.json" 2>/dev/null
check "outage: nothing is marked failed" test "$(jget "$T/ost.json" "d['counts']['failed']")" = 0
check "outage: slurmrestd restarts" bash "$HP_H_DIR/rest/start"
wait "$run_pid"; rc=$?
check "outage: the run completes (exit 0)" test "$rc" = 0
check "outage: ... 3 of 3" grep -q "3 of 3 completed" "$T/out.out"
check "outage: the run reported the outage with the URL" grep -q "cannot reach slurmrestd at $URL" "$T/out.err"
check "outage: three jobs, none twice" test "$(job_names "$TAG-out" | wc -l)/$(dup_jobs "$TAG-out" | wc -l)" = 3/0
check "outage: b's output came back" test "$(cat "$T/one/outage.out" 2>/dev/null)" = after

# --- killed right after slurmrestd accepted a job, before recording it:
# the rerun finds the job by its token instead of submitting it again
{ HPCPORT_TEST_KILL_AFTER_SBATCH=1 "$HP" run "$T/one/one.yaml" --site rs --campaign "$TAG-crash" \
    > /dev/null 2>&1; } 2>/dev/null   # (and bash's "Killed")
check "crash: the run was killed after its first submission" test $? = 137
check "crash: the job exists" wait_for 20 njobs_is "$TAG-crash" 1
expect_rc 0 "crash: the rerun completes" "$HP" run "$T/one/one.yaml" --site rs --campaign "$TAG-crash"
check "crash: ... adopting the job, not submitting it again" njobs_is "$TAG-crash" 1

# --- hpcport cancel
cat > "$T/one/can.yaml" <<'EOF'
name: can
tasks:
  nap:
    matrix: {i: [1, 2]}
    command: [sleep, "300"]
EOF
"$HP" run "$T/one/can.yaml" --site rs --campaign "$TAG-can" > /dev/null 2>&1 &
can_pid=$!
submitted() { "$HP" status "$TAG-can" --json > "$T/cst.json" 2>/dev/null &&
              [ "$(jget "$T/cst.json" "d['counts']['queued'] + d['counts']['active']")" = 2 ]; }
check "cancel: both jobs are submitted" wait_for 60 submitted
kill -9 "$can_pid"; wait "$can_pid" 2>/dev/null
expect_rc 0 "cancel: hpcport cancel through slurmrestd" "$HP" cancel "$TAG-can"
check "cancel: ... stopping both jobs" contains "$OUT" "stopped 2 running jobs"
live() { squeue -h -u "$HP_H_USER" -t PENDING,RUNNING -o %j | grep -c "^$TAG-can\."; }
gone_jobs() { [ "$(live)" = 0 ]; }
check "cancel: squeue no longer lists them running" wait_for 30 gone_jobs

check_sanitizers
done_testing
