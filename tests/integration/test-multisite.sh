#!/bin/bash
# One campaign over two sites (hpcport run WF --site A --site B), against
# real components: site A is the harness's login node through the bastion,
# site B a second sshd this test starts on another loopback port (the login
# node's host key, user and authorized keys), both in front of the harness's
# Slurm, each with its own scratch. Checks: the jobs are spread and every
# output comes back from both; status per site (text, JSON); site B's sshd
# killed halfway (B has queued and running jobs): every instance still
# completes, on A; reruns have nothing to do; bad usage. Needs the services
# (tests/harness/with-services.sh, or HP_HARNESS_DIR of a running harness).
. "$(dirname "$0")/tap.sh"
. "$(dirname "$0")/site-lib.sh"

TAG="hpm$$"
BDIR="$T/sshd-b"
not_contains() { ! contains "$@"; }
unset COLUMNS
BPID=
kill_tree() { local c; for c in $(pgrep -P "$1"); do kill_tree "$c"; done; kill -9 "$1" 2>/dev/null; }
cleanup() {
    [ -n "$BPID" ] && kill_tree "$BPID"
    "${SSH[@]}" "rm -rf ~/.$TAG-a ~/.$TAG-b" >/dev/null 2>&1
    # jobs left on the cluster by the failover run (named CAMPAIGN.TASK.TOKEN)
    squeue -h -u "$HP_H_USER" -o "%i %j" 2>/dev/null |
        awk -v t="$TAG-" 'index($2, t) == 1 { print $1 }' | xargs -r scancel 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

# --- site B's sshd: the login node's configuration on another port
mkdir -p "$BDIR"
start_b() {
    local try port
    for try in 1 2 3 4 5; do
        port=$((20000 + RANDOM % 12000))
        sed -e "s|^Port .*|Port $port|" -e "s|^PidFile .*|PidFile $BDIR/sshd.pid|" \
            "$HP_HARNESS_DIR/login/sshd_config" > "$BDIR/sshd_config"
        rm -f "$BDIR/sshd.pid"
        if env HP_H_TAG="$HP_HARNESS_DIR" /usr/sbin/sshd -f "$BDIR/sshd_config" \
               -E "$BDIR/sshd.log" </dev/null >/dev/null 2>&1; then
            BPORT=$port
            wait_for 10 test -s "$BDIR/sshd.pid" || return 1
            BPID=$(cat "$BDIR/sshd.pid")
            return 0
        fi
    done
    return 1
}
check "site B: a second sshd started on 127.0.0.1" start_b
# hpcport checks host keys strictly: B's port gets the login node's key
cp "$HP_H_KNOWN_HOSTS" "$T/known_hosts"
key=$(awk -v p="[127.0.0.1]:$HP_H_LOGIN_PORT" '$1 == p { print $2, $3 }' "$HP_H_KNOWN_HOSTS")
echo "[127.0.0.1]:$BPORT $key" >> "$T/known_hosts"
sed -i "s|UserKnownHostsFile .*|UserKnownHostsFile $T/known_hosts|" "$T/ssh_config"
SSHB=(ssh -o BatchMode=yes -o UserKnownHostsFile="$T/known_hosts" -o StrictHostKeyChecking=yes
      -i "$HP_H_KEY" -o IdentitiesOnly=yes -p "$BPORT" "$HP_H_USER@127.0.0.1")
b_up() { "${SSHB[@]}" 'test -n "$SLURM_CONF" && squeue -h >/dev/null' 2>/dev/null; }
check "site B: reaches the same Slurm" wait_for 20 b_up

profile() { # NAME SCRATCH-SUFFIX LOGIN-YAML...
    local name=$1 sfx=$2; shift 2
    {
        echo "name: $name"
        echo "scheduler:"
        echo "  type: slurm"
        echo "  partitions: [{name: debug, max_walltime: 30m}]"
        echo "  account: hpcport"
        echo "  default_walltime: 5m"
        echo "  max_queued_jobs: 4"
        echo "login:"
        for l in "$@"; do echo "  $l"; done
        echo "network: {login: none, compute: none}"
        echo "filesystems:"
        echo "  scratch: \$HOME/.$TAG-$sfx"
    } > "$SITES/$name.yaml"
}
profile ma a "host: 127.0.0.1" "port: $HP_H_LOGIN_PORT" "user: $HP_H_USER" \
    "jump: [\"$HP_H_USER@127.0.0.1:$HP_H_BASTION_PORT\"]"
profile mb b "host: 127.0.0.1" "port: $BPORT" "user: $HP_H_USER"

# wf NAME N SLEEP: N independent tasks, each with an output
wf() {
    mkdir -p "$T/$1"
    cat > "$T/$1/$1.yaml" <<EOF
name: $1
tasks:
  t:
    matrix: {i: {from: 1, to: $2}}
    command: [sh, -c, 'sleep $3; mkdir -p out; echo "\$1 \$(hostname)" > "out/t-\$1.txt"', sh, "{i}"]
    outputs: ["out/t-{i}.txt"]
EOF
}

# --- usage errors
wf use 2 0
expect_rc 2 "the same site twice is refused" "$HP" run "$T/use/use.yaml" --site ma --site ma
check "... saying so" contains "$ERR" "site 'ma' is given twice"
expect_rc 4 "an unknown site is refused" "$HP" run "$T/use/use.yaml" --site ma --site nosuch
check "... naming it" contains "$ERR" "nosuch"
expect_rc 2 "local among several sites is refused" "$HP" run "$T/use/use.yaml" --site ma --site local
check "... with the way out" contains "$ERR" "local site cannot be one of several sites"
expect_rc 2 "--failover with one site is refused" "$HP" run "$T/use/use.yaml" --site ma --failover 5
expect_rc 2 "--failover wants seconds" "$HP" run "$T/use/use.yaml" --site ma --site mb --failover soon
check "nothing was created by the refused runs" test ! -e "$HPCPORT_STATE_DIR/campaigns/use"
# every site's lint applies: a task over one site's longest walltime stops the run
sed -e 's/^name: mb$/name: mc/' -e 's/max_walltime: 30m/max_walltime: 10m/' "$SITES/mb.yaml" \
    > "$SITES/mc.yaml"
cat > "$T/use/long.yaml" <<'EOF'
name: long
tasks:
  l:
    command: [sleep, "1"]
    resources: {walltime: 20m}
EOF
expect_rc 5 "a task that one of the sites cannot run stops the run" \
    "$HP" run "$T/use/long.yaml" --site ma --site mc
check "... naming that site and the way out" contains "$ERR" "on site 'mc'; nothing was run"
check "... not the other" not_contains "$ERR" "on site 'ma'"
check "... the lint line itself" contains "$ERR" "[walltime]"
check "nothing was created by the refused run" test ! -e "$HPCPORT_STATE_DIR/campaigns/long"
# tasks placed in pilot jobs: each site's agent submits its own pilots
RBIN=$HP_H_SCRATCH/$TAG-bin
mkdir -p "$RBIN" && cp "$HP" "$RBIN/hpcport" && chown -R "$HP_H_USER:" "$RBIN" &&
    chmod 0755 "$RBIN" "$RBIN/hpcport"
mkdir -p "$T/pil"
cat > "$T/pil/pil.yaml" <<'EOF'
name: pil
pilots: {tasks_per_pilot: 6, max_pilots: 1, cores: 1, walltime: 20m, idle: 5s}
tasks:
  t:
    matrix: {i: {from: 1, to: 24}}
    placement: pilot
    command: [sh, -c, 'sleep 0.3; mkdir -p out; echo "$1" > "out/p-$1.txt"', sh, "{i}"]
    outputs: ["out/p-{i}.txt"]
EOF
expect_rc 0 "pilot tasks over two sites: the campaign completes" "$HP" run "$T/pil/pil.yaml" \
    --set pilots.listen=127.0.0.1 --set "remote.hpcport=$RBIN/hpcport" --site ma --site mb
check "... every instance" contains "$OUT" "24 of 24 completed"
check "... every output came back" test "$(cat "$T"/pil/out/p-*.txt 2>/dev/null | wc -l)" = 24
pilots_of() { "${SSH[@]}" "grep -c 'submitted pilot' ~/.$TAG-$1/hpcport/pil/agent/agent.log" 2>/dev/null; }
check "... site ma's agent submitted pilots ($(pilots_of a))" test "$(pilots_of a)" -ge 1
check "... and so did site mb's ($(pilots_of b))" test "$(pilots_of b)" -ge 1
rm -rf "$RBIN"
# --set before any --site applies to every site, after one to that site only
expect_rc 5 "--set after a --site applies to that site only (its lint fails)" \
    "$HP" run "$T/use/use.yaml" --site ma --site mb --set scheduler.default_walltime=45m
check "... the lint names mb" contains "$ERR" "over the limit of 00:30:00 on site 'mb'"
check "... and not ma" not_contains "$ERR" "on site 'ma'"
expect_rc 0 "--dry-run with global and per-site --set" "$HP" run "$T/use/use.yaml" \
    --set scheduler.default_walltime=7m --site ma --set scheduler.account=xa --site mb --dry-run
check "... ma's own account" grep -q "#SBATCH --account=xa  *| #SBATCH --account=hpcport$" "$T/out"
check "... the global walltime on both" grep -q "#SBATCH --time=00:07:00  *#SBATCH --time=00:07:00$" "$T/out"
expect_rc 0 "plan shows both sites" "$HP" plan "$T/use/use.yaml" --site ma --site mb
check "... each site's summary" contains "$OUT" "site 'mb' (slurm)"
expect_rc 0 "run --dry-run with two sites is the plan of both" \
    "$HP" run "$T/use/use.yaml" --site ma --site mb --dry-run
check "... both sites named" contains "$OUT" "site 'ma' (slurm)"

# --- a campaign over both sites
N=36
wf spread $N 1
expect_rc 0 "a $N-task campaign over two sites completes" \
    "$HP" run "$T/spread/spread.yaml" --site ma --site mb --campaign "$TAG-spread"
check "... the summary names both sites" contains "$OUT" "on sites 'ma,mb': $N of $N completed"
check "every output came back" test "$(ls "$T/spread/out" 2>/dev/null | wc -l)" = $N
expect_rc 0 "status --json" "$HP" status "$TAG-spread" --json
echo "$OUT" > "$T/spread.json"
check "status: the campaign's sites are 'ma,mb'" test "$(jget "$T/spread.json" "d['site']")" = ma,mb
na=$(jget "$T/spread.json" "d['sites']['ma']['completed']")
nb=$(jget "$T/spread.json" "d['sites']['mb']['completed']")
check "site ma ran jobs ($na)" test "$na" -gt 0
check "site mb ran jobs ($nb)" test "$nb" -gt 0
check "the sites' counts add up to $N" test $((na + nb)) = $N
check "the spread is even-ish (max_queued_jobs 4 each): $na / $nb" \
    test "$na" -ge $((N / 4)) -a "$nb" -ge $((N / 4))
expect_rc 0 "status (text)" "$HP" status "$TAG-spread"
check "status: a line per site" grep -q "^  ma  *completed $na$" "$T/out"
check "status: ... for mb too" grep -q "^  mb  *completed $nb$" "$T/out"
# each site ran its jobs in its own scratch (the plan of that site)
files_a=$("${SSH[@]}" "ls ~/.$TAG-a/hpcport/$TAG-spread/work/out 2>/dev/null | wc -l")
files_b=$("${SSHB[@]}" "ls ~/.$TAG-b/hpcport/$TAG-spread/work/out 2>/dev/null | wc -l")
check "site ma's jobs wrote in ma's scratch ($files_a)" test "$files_a" = "$na"
check "site mb's jobs wrote in mb's scratch ($files_b)" test "$files_b" = "$nb"
expect_rc 0 "a rerun (sites in another order) has nothing to do" \
    "$HP" run "$T/spread/spread.yaml" --site mb --site ma --campaign "$TAG-spread"
check "... ran nothing" contains "$OUT" "$N of $N completed (0 run now"
expect_rc 7 "a rerun on one of the sites only is refused" \
    "$HP" run "$T/spread/spread.yaml" --site ma --campaign "$TAG-spread"
check "... naming the sites to use" contains "$ERR" "--site ma --site mb"

# --- cancel with no run alive: each job stopped through its own site
wf can 6 300
"$HP" run "$T/can/can.yaml" --site ma --site mb --campaign "$TAG-can" > "$T/can/run.out" 2>&1 &
can_pid=$!
both_busy() {
    "$HP" status "$TAG-can" --json > "$T/can.json" 2>/dev/null &&
        [ "$(jget "$T/can.json" "d['sites']['ma']['queued'] + d['sites']['ma']['active']")" -ge 2 ] &&
        [ "$(jget "$T/can.json" "d['sites']['mb']['queued'] + d['sites']['mb']['active']")" -ge 2 ] &&
        [ "$(jget "$T/can.json" "d['counts']['queued'] + d['counts']['active']")" = 6 ]
}
check "cancel: both sites have jobs of the campaign" wait_for 60 both_busy
kill -9 "$can_pid"; wait "$can_pid" 2>/dev/null
live_jobs() { squeue -h -u "$HP_H_USER" -o "%j" | grep -c "^$TAG-can\."; }
check "cancel: the jobs outlive the killed run" test "$(live_jobs)" = 6
expect_rc 0 "cancel: the campaign is canceled" "$HP" cancel "$TAG-can"
no_jobs() { [ "$(live_jobs)" = 0 ]; }
check "cancel: no job of the campaign is left on the cluster" wait_for 30 no_jobs
expect_rc 0 "cancel: status" "$HP" status "$TAG-can" --json
echo "$OUT" > "$T/can.json"
check "cancel: every instance is canceled" test "$(jget "$T/can.json" "d['counts']['canceled']")" = 6

# --- site B's sshd killed while B has queued and running jobs
N2=30
wf fo $N2 4
"$HP" -v run "$T/fo/fo.yaml" --site ma --site mb --campaign "$TAG-fo" --failover 8 \
    > "$T/fo/run.out" 2> "$T/fo/err" &
run_pid=$!
b_busy() {
    "$HP" status "$TAG-fo" --json > "$T/fo.json" 2>/dev/null &&
        [ "$(jget "$T/fo.json" "d['sites']['mb']['queued'] + d['sites']['mb']['active']")" -ge 2 ] &&
        [ "$(jget "$T/fo.json" "d['counts']['completed']")" -ge 4 ]
}
check "failover: site mb has jobs in flight and some instances are done" wait_for 120 b_busy
kill_tree "$BPID"   # the daemon and every session it serves
b_gone() { ! kill -0 "$BPID" 2>/dev/null; }
check "failover: site mb's sshd and its sessions are gone" wait_for 10 b_gone
BPID=
# the run must end by itself (its jobs moved to ma); a run that waits for mb
# forever is stopped after 4 minutes and fails the checks below
run_gone() { ! kill -0 "$run_pid" 2>/dev/null; }
check "failover: the run ends without site mb" wait_for 240 run_gone
kill -9 "$run_pid" 2>/dev/null
wait "$run_pid"
rc=$?
check "failover: the run completed every instance (exit $rc)" test "$rc" = 0
check "failover: ... all $N2 of them" contains "$(cat "$T/fo/run.out")" "$N2 of $N2 completed"
check "failover: every output came back" test "$(ls "$T/fo/out" 2>/dev/null | wc -l)" = $N2
check "failover: the run said site mb stopped answering" grep -q "site 'mb' has not answered" "$T/fo/err"
check "failover: jobs were moved" grep -q "attempt 1 lost (site 'mb' stopped answering" "$T/fo/err"
expect_rc 0 "failover: status --json" "$HP" status "$TAG-fo" --json --tasks
echo "$OUT" > "$T/fo.json"
moved=$(jget "$T/fo.json" "sum(1 for i in d['instances'] if i['attempts'] > 1)")
check "failover: some instances took a second attempt ($moved)" test "$moved" -gt 0
check "failover: no instance is left on mb unfinished" \
    test "$(jget "$T/fo.json" "d['sites']['mb']['queued'] + d['sites']['mb']['active'] + d['sites']['mb']['new']")" = 0
check "failover: what moved completed on ma" test "$(jget "$T/fo.json" \
    "sum(1 for i in d['instances'] if i['attempts'] > 1 and i['job_id'].startswith('ma|'))")" = "$moved"
expect_rc 0 "failover: a rerun with mb still down has nothing to do" \
    "$HP" run "$T/fo/fo.yaml" --site ma --site mb --campaign "$TAG-fo"
check "... ran nothing" contains "$OUT" "$N2 of $N2 completed (0 run now"
check "... and said mb cannot be used" contains "$ERR" "site 'mb' cannot be used now"

check_sanitizers
done_testing
