#!/bin/bash
# The bundled centre profiles (sites/profiles/*.yaml), through the real binary:
# each one validates and shows; names its sources; plans the one-node job of
# tests/fixtures/profiles/ into the script of its golden file, byte for byte
# (tests/fixtures/profiles/README.md says which guide example each golden was
# checked against); asks for its account placeholder; and keeps its network
# rule (a task that needs the network is refused where compute nodes have
# none, gets the proxy where they have one, and passes where they are open).
# usage: test-profiles.sh [HPCPORT]   (or HPCPORT=... in the environment)
# HP_UPDATE_GOLDEN=1 rewrites the golden files instead of comparing (review
# the diff against the centres' guides).
. "$(dirname "$0")/tap.sh"

PY=/usr/bin/python3
FIX="$SRC/tests/fixtures/profiles"
GPU="alps-daint aurora delta expanse-gpu frontier juwels-booster lumi-g perlmutter-gpu polaris vista"
CPU="expanse perlmutter-cpu"
ACCOUNT=acct1
TAB=$(printf '\t')

# the script of the plan's first job, from plan --json
first_script() {
    "$PY" -c 'import json, sys; sys.stdout.write(json.load(sys.stdin)["jobs"][0]["script"])'
}
scheduler_of() { "$HP" site show "$1" --no-origin | sed -n 's/^scheduler\.type=//p'; }


# --- every bundled centre profile is listed, validates, shows, names its sources
expect_rc 0 "site list" "$HP" site list
for p in $GPU $CPU; do
    check "$p is listed as bundled" grep -qE "^$p +[a-z]+ +<bundled>/$p.yaml " "$T/out"
done
n=$(ls "$SRC"/sites/profiles/*.yaml | grep -vc '/local\.yaml$')
check "every centre profile file is tested ($n)" test "$n" = "$(echo $GPU $CPU | wc -w)"
for p in $GPU $CPU; do
    f="$SRC/sites/profiles/$p.yaml"
    expect_rc 0 "validate $p" "$HP" validate "$f"
    check "$p: validate says ok" contains "$OUT" "$f: ok (site profile '$p', scheduler $(scheduler_of $p))"
    expect_rc 0 "site show $p" "$HP" site show "$p"
    check "$p: shown from the bundled file" grep -qx "<bundled>/$p.yaml:[0-9]*:[0-9]*${TAB}name=$p" "$T/out"
    check "$p: the account is a placeholder" grep -qE "${TAB}scheduler.account=<[A-Z]+>\$" "$T/out"
    check "$p: login host set" grep -qE "${TAB}login.host=[a-z0-9.-]+\$" "$T/out"
    check "$p: compute network rule stated" grep -qE "${TAB}network.compute=(open|proxy|none)\$" "$T/out"
    check "$p: starts with a comment naming its sources and the date read" \
        bash -c "head -1 '$f' | grep -q '^# $p: ' && grep -q '^#.*https://' '$f' && grep -qE '^#.* 20[0-9]{2}-[0-9]{2}-[0-9]{2}' '$f'"
done

# --- the one-node job of each profile, byte for byte against its golden file
for p in $GPU $CPU; do
    case " $CPU " in *" $p "*) wf=cpu-1node.yaml;; *) wf=gpu-1node.yaml;; esac
    if [ "$(scheduler_of $p)" = pbs ]; then ext=pbs; else ext=sbatch; fi
    golden="$FIX/$p.$ext"
    "$HP" plan "$FIX/$wf" --site "$p" --set scheduler.account=$ACCOUNT --json >"$T/plan.json" \
        2>"$T/err"
    rc=$?
    check "$p: plan of $wf has no lint error (exit $rc)" test "$rc" = 0
    first_script <"$T/plan.json" >"$T/script" 2>>"$T/err"
    if [ -n "$HP_UPDATE_GOLDEN" ] && [ "$HP_UPDATE_GOLDEN" != 0 ]; then
        cp "$T/script" "$golden"
    fi
    if cmp -s "$T/script" "$golden"; then
        ok "$p: plan of $wf matches $p.$ext"
    else
        fail "$p: plan of $wf matches $p.$ext"
        diff "$golden" "$T/script" | sed 's/^/# /' | head -20
        sed 's/^/# /' "$T/err" | head -5
    fi
done

# --- without the account, plan names the placeholder it needs
expect_rc 5 "frontier: plan without an account is a lint error" \
    "$HP" plan "$FIX/gpu-1node.yaml" --site frontier --lint
check "names the placeholder and how to fill it in" contains "$OUT" \
    "site 'frontier' needs your account (scheduler.account is '<PROJECT>'): add --set scheduler.account=NAME"
check "points at the bundled profile's line" grep -q "site rule at <bundled>/frontier.yaml:[0-9]*:" "$T/out"
for p in $GPU $CPU; do
    case " $CPU " in *" $p "*) wf=cpu-1node.yaml;; *) wf=gpu-1node.yaml;; esac
    "$HP" plan "$FIX/$wf" --site "$p" --lint >"$T/out" 2>&1
    rc=$?
    check "$p: plan asks for the account (exit $rc)" \
        bash -c "test $rc = 5 && grep -q \"site '$p' needs your account (scheduler.account is '<[A-Z]*>')\" '$T/out'"
done

# --- network rules: refused where compute nodes have none, the proxy where
# they have one, nothing in the way where they are open
expect_rc 5 "juwels-booster: a task that needs the network is refused" \
    "$HP" plan "$FIX/network.yaml" --site juwels-booster --set scheduler.account=$ACCOUNT
check "names the task, the site and the rule" contains "$OUT" \
    "task 'fetch' needs outbound network, but compute nodes of site 'juwels-booster' have none (network.compute: none)"
check "points at the profile's rule" grep -q "site rule at <bundled>/juwels-booster.yaml:[0-9]*:" "$T/out"
for p in perlmutter-gpu perlmutter-cpu lumi-g alps-daint; do
    expect_rc 0 "$p: a task that needs the network passes (open compute network)" \
        "$HP" plan "$FIX/network.yaml" --site "$p" --set scheduler.account=$ACCOUNT
    check "$p: no network lint" bash -c "! grep -q '\[network\]' '$T/out'"
    check "$p: no proxy is set" bash -c "! grep -q 'https_proxy' '$T/out'"
done
expect_rc 0 "frontier: a task that needs the network passes through the proxy" \
    "$HP" plan "$FIX/network.yaml" --site frontier --set scheduler.account=$ACCOUNT
check "frontier: the job gets the OLCF proxy" grep -qx "export https_proxy='http://proxy.ccs.ornl.gov:3128'" "$T/out"
check "frontier: and the proxy exceptions" grep -qx "export no_proxy='localhost,127.0.0.0/8,.ccs.ornl.gov'" "$T/out"
expect_rc 0 "polaris: a task that needs the network passes through the proxy" \
    "$HP" plan "$FIX/network.yaml" --site polaris --set scheduler.account=$ACCOUNT
check "polaris: the job gets the ALCF proxy" grep -qx "export https_proxy='http://proxy.alcf.anl.gov:3128'" "$T/out"
# a closed site opened by the user's own layer: the rule follows the profile
expect_rc 0 "juwels-booster with network.compute=open passes" \
    "$HP" plan "$FIX/network.yaml" --site juwels-booster --set scheduler.account=$ACCOUNT \
    --set network.compute=open

# --- limits by job size: Frontier's node-count bins, Polaris's prod queue
cat > "$T/bins.yaml" <<'EOF'
name: bins
tasks:
  small:
    command: [./sim]
    resources: {nodes: 1, walltime: 3h}
EOF
expect_rc 5 "frontier: 3 h on 1 node is over its bin's 2 h" \
    "$HP" plan "$T/bins.yaml" --site frontier --set scheduler.account=$ACCOUNT --lint
bline=$(grep -n 'max_nodes: 91, max_walltime: 2h' "$HP_SRCDIR/sites/profiles/frontier.yaml" | cut -d: -f1)
check "... naming the bin's line" grep -q "over the limit of 02:00:00 on site 'frontier' partition batch for jobs of its size.*(site rule at <bundled>/frontier.yaml:$bline:" "$T/out"
sed 's/nodes: 1, walltime: 3h/nodes: 200, walltime: 3h/' "$T/bins.yaml" > "$T/bins200.yaml"
expect_rc 0 "frontier: 3 h on 200 nodes fits (12 h)" \
    "$HP" plan "$T/bins200.yaml" --site frontier --set scheduler.account=$ACCOUNT --lint
sed 's/walltime: 3h/walltime: 2h, partition: prod/' "$T/bins.yaml" > "$T/prod1.yaml"
expect_rc 5 "polaris: prod refuses a 1-node job" \
    "$HP" plan "$T/prod1.yaml" --site polaris --set scheduler.account=$ACCOUNT --lint
check "... saying it takes 10 nodes or more" contains "$OUT" "takes jobs of 10 nodes or more"
sed 's/nodes: 1, walltime: 3h/nodes: 30, walltime: 5h, partition: prod/' "$T/bins.yaml" > "$T/prod30.yaml"
expect_rc 0 "polaris: 30 nodes for 5 h fit prod (medium, 6 h)" \
    "$HP" plan "$T/prod30.yaml" --site polaris --set scheduler.account=$ACCOUNT --lint
sed 's/nodes: 1, walltime: 3h/nodes: 12, walltime: 5h, partition: prod/' "$T/bins.yaml" > "$T/prod12.yaml"
expect_rc 5 "polaris: 12 nodes for 5 h are over prod's small bin (3 h)" \
    "$HP" plan "$T/prod12.yaml" --site polaris --set scheduler.account=$ACCOUNT --lint
# bins out of order are an error in the profile
printf 'name: badbins\nscheduler:\n  type: slurm\n  partitions:\n    - name: p\n      walltime_by_nodes:\n        - {max_nodes: 10, max_walltime: 1h}\n        - {max_nodes: 5, max_walltime: 2h}\n' > "$T/badbins.yaml"
expect_rc 4 "walltime_by_nodes out of order is refused" "$HP" validate "$T/badbins.yaml"
check "... at the entry" contains "$ERR" "badbins.yaml:8:23: error: walltime_by_nodes must list job sizes from small to large: 5 nodes after 10 (at /scheduler/partitions/0/walltime_by_nodes/1/max_nodes)"

# --- memory: asked for where the site takes it, not on Vista (which refuses --mem)
expect_rc 0 "expanse: a task's memory is asked for" \
    "$HP" plan "$FIX/mem-1node.yaml" --site expanse --set scheduler.account=$ACCOUNT
check "expanse: #SBATCH --mem" grep -qx "#SBATCH --mem=65536M" "$T/out"
expect_rc 0 "vista: the same task plans" \
    "$HP" plan "$FIX/mem-1node.yaml" --site vista --set scheduler.account=$ACCOUNT
check "vista: no --mem (memory_request: none)" bash -c "! grep -q -- '--mem' '$T/out'"
sed 's/memory: 64G/memory: 4000G/' "$FIX/mem-1node.yaml" > "$T/mem-huge.yaml"
expect_rc 5 "vista: more memory than a node has is still a lint error" \
    "$HP" plan "$T/mem-huge.yaml" --site vista --set scheduler.account=$ACCOUNT
check "vista: ... saying so" grep -qi "memory" "$T/out"

# --- containers: each site's runtime and its GPU option
cexec() {   # profile -> the exec line of the container job
    "$HP" plan "$FIX/gpu-container.yaml" --site "$1" --set scheduler.account=$ACCOUNT >"$T/out" 2>&1
    grep '^exec ' "$T/out"
}
IMG="'docker://docker.io/library/python:3.12' 'python3' 'train.py'"
check "perlmutter-gpu: podman-hpc with --gpu" test "$(cexec perlmutter-gpu)" = \
    "exec podman-hpc run --rm --gpu -v \"\$PWD:\$PWD\" -w \"\$PWD\" $IMG"
check "juwels-booster: apptainer with --nv" test "$(cexec juwels-booster)" = "exec apptainer exec --nv $IMG"
check "delta: apptainer with --nv" test "$(cexec delta)" = "exec apptainer exec --nv $IMG"
check "expanse-gpu: singularity with --nv, binding /expanse and /scratch (container.binds)" \
    test "$(cexec expanse-gpu)" = "exec singularity exec --nv --bind '/expanse' --bind '/scratch' $IMG"
check "frontier: apptainer without --nv (AMD GPUs)" test "$(cexec frontier)" = "exec apptainer exec $IMG"
check "lumi-g: singularity without --nv (AMD GPUs)" test "$(cexec lumi-g)" = "exec singularity exec $IMG"
# binds with $VARIABLES, in podman-hpc's words, and what a shell makes of them
"$HP" plan "$FIX/gpu-container.yaml" --site perlmutter-gpu --set scheduler.account=$ACCOUNT \
    --set 'container.binds=["$PSCRATCH/in", "/global/cfs/it'"'"'s"]' >"$T/out" 2>&1
line=$(grep '^exec ' "$T/out")
check "perlmutter-gpu: container.binds as -v PATH:PATH, variables kept" test "$line" = \
    "exec podman-hpc run --rm --gpu -v \"\$PWD:\$PWD\" -w \"\$PWD\" -v \"\${PSCRATCH}\"'/in':\"\${PSCRATCH}\"'/in' -v '/global/cfs/it'\\''s':'/global/cfs/it'\\''s' $IMG"
words=$(cd / && PSCRATCH=/ps bash -c "set -- ${line#exec podman-hpc run --rm --gpu }; printf '%s|' \"\$@\"")
check "... which a shell reads as the paths" test "$words" = \
    "-v|/:/|-w|/|-v|/ps/in:/ps/in|-v|/global/cfs/it's:/global/cfs/it's|docker://docker.io/library/python:3.12|python3|train.py|"
expect_rc 5 "alps-daint: a container task is refused (no runtime hpcport can call)" \
    "$HP" plan "$FIX/gpu-container.yaml" --site alps-daint --set scheduler.account=$ACCOUNT
check "names the container rule" contains "$OUT" "but site 'alps-daint' declares no container runtime"

# --- a user's layer over a bundled profile: fill in the account once
mkdir -p "$XDG_CONFIG_HOME/hpcport/sites"
printf 'scheduler:\n  account: m1234\n' >"$XDG_CONFIG_HOME/hpcport/sites/perlmutter-gpu.yaml"
expect_rc 0 "perlmutter-gpu with the account in the user's layer" \
    "$HP" plan "$FIX/gpu-1node.yaml" --site perlmutter-gpu
check "the user's account is used" grep -qx "#SBATCH --account=m1234" "$T/out"
check "the bundled QOS and constraint stay" bash -c "grep -qx '#SBATCH --qos=regular' '$T/out' && grep -qx '#SBATCH --constraint=gpu' '$T/out'"
check "no partition is named (QOS queues)" bash -c "! grep -q -- '--partition' '$T/out'"
expect_rc 0 "perlmutter-gpu: a task may pick the debug QOS" \
    "$HP" plan "$FIX/gpu-1node.yaml" --site perlmutter-gpu --set scheduler.default_partition=debug
check "the debug QOS is used" grep -qx "#SBATCH --qos=debug" "$T/out"

done_testing
