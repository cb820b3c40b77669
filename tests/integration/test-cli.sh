#!/bin/bash
# hpcport validate / plan / help, driven through the real binary.
. "$(dirname "$0")/tap.sh"

mkdir -p "$T/wf/sites"
cat > "$T/wf/sites/closed.yaml" <<'Y'
description: a GPU cluster whose compute nodes reach nothing
scheduler:
  type: slurm
  account: "<ACCOUNT>"
  partitions:
    - {name: cpu, max_walltime: 2h, cores_per_node: 64}
    - {name: gpu, max_walltime: 1h, gpus_per_node: 4, gpu_type: a100}
  default_partition: cpu
network: {login: open, compute: none}
filesystems: {home: /home/u, scratch: /scratch/u}
nodes: {cores: 64, gpus: 0}
launcher: srun
Y
cat > "$T/wf/wf.yaml" <<'Y'
name: lintme
tasks:
  fetch:
    command: [curl, -O, "https://example.org/data"]
    network: true
  train:
    command: [train, /data/weights.bin]
    resources: {gpus: 8, walltime: 3h}
  hostile:
    command: [printf, "%s\n", "$(touch pwned)", "a'b", "`id`", "x\ny"]
    resources: {walltime: 10m}
Y

# --- help on every command, matching the man page synopsis
for c in $("$HP" --help | awk '/^commands:/{f=1;next} f && !NF {exit} f {print $1}'); do
    expect_rc 0 "$c --help exits 0" "$HP" "$c" --help
    syn=$(sed -n 's/^usage: hpcport //p' "$T/out" | head -1)
    if [ -n "$syn" ] && tr -s ' \n' ' ' < "$SRC/man/hpcport.1.scd" | grep -qF -- "$(echo "$syn" | tr -s ' ' ' ')"; then
        ok "$c: --help synopsis matches hpcport(1)"
    else
        fail "$c: --help synopsis '$syn' not in man/hpcport.1.scd"
    fi
done
expect_rc 2 "unknown command is a usage error" "$HP" valdiate
check "unknown command suggests the closest" contains "$ERR" "did you mean 'validate'?"

# --- validate
expect_rc 0 "validate the examples" "$HP" validate "$SRC/examples/hello/hello.yaml" "$SRC/examples/sweep/sweep.yaml"
expect_rc 0 "validate a site profile by content" "$HP" validate "$T/wf/sites/closed.yaml"
check "site profile recognised" contains "$OUT" "site profile"
printf 'name: x\ntasks:\n  a:\n    command: [true]\n    resources: {coers: 2}\n' > "$T/typo.yaml"
expect_rc 3 "unknown key is an input error" "$HP" validate "$T/typo.yaml"
check "unknown key error is positioned with a suggestion" \
    contains "$ERR" "$T/typo.yaml:5:17: error: unknown key 'coers' (did you mean 'cores'?) (at /tasks/a/resources/coers)"
expect_rc 3 "--json on an invalid file" "$HP" validate --json "$T/typo.yaml"
check "--json carries line and pointer" /usr/bin/python3 -c '
import json,sys; r=json.load(open(sys.argv[1]))[0]
assert r["valid"] is False and r["error"]["line"]==5 and r["error"]["pointer"]=="/tasks/a/resources/coers", r' "$T/out"
expect_rc 2 "validate without files is a usage error" "$HP" validate

# --- plan on the local site
expect_rc 0 "plan hello on local" "$HP" plan "$SRC/examples/hello/hello.yaml"
check "local plan shows a script" contains "$OUT" "exec "
check "local plan is lint-clean" contains "$OUT" "# lint: no problems found"

# --- plan on a closed Slurm site: lint errors with positions and site origins
expect_rc 5 "plan with lint errors exits 5" "$HP" plan "$T/wf/wf.yaml" --site closed
check "sbatch directives rendered" contains "$OUT" "#SBATCH --partition=cpu"
check "walltime directive" contains "$OUT" "#SBATCH --time=00:10:00"
check "network lint names task and rule" contains "$OUT" "task 'fetch' needs outbound network, but compute nodes of site 'closed' have none"
check "network lint points at the site line" contains "$OUT" "(site rule at $T/wf/sites/closed.yaml:9:33)"
check "gpu lint" contains "$OUT" "task 'train' asks for 8 GPUs per node; nodes of site 'closed' have 4"
check "walltime lint" contains "$OUT" "task 'train' asks for walltime 03:00:00, over the limit of 01:00:00"
check "account placeholder lint" contains "$OUT" "site 'closed' needs your account"
check "path lint" contains "$OUT" "'/data/weights.bin', outside the filesystems of site 'closed'"
check "lint lines are file:line:col" contains "$OUT" "$T/wf/wf.yaml:5:14: error: task 'fetch'"
check "hostile arguments are single-quoted" contains "$OUT" "'\$(touch pwned)' 'a'\\''b' '\`id\`'"
check "nothing ran" test ! -e pwned -a ! -e "$T/wf/pwned"

expect_rc 5 "--set fills the account, other lints remain" "$HP" plan "$T/wf/wf.yaml" --site closed --set scheduler.account=m1234 --lint
check "account directive gone from lint" eval '! contains "$OUT" "needs your account"'
expect_rc 5 "plan --json" "$HP" plan "$T/wf/wf.yaml" --site closed --json
check "plan --json is machine-readable" /usr/bin/python3 -c '
import json,sys; d=json.load(open(sys.argv[1]))
assert d["jobs_total"]==3 and d["lint_errors"]>=3, d["lint_errors"]
assert any(l["rule"]=="network" and l["task"]=="fetch" and l["line"]==5 for l in d["lint"])
assert all("#SBATCH" in j["script"] for j in d["jobs"])' "$T/out"
expect_rc 4 "unknown site" "$HP" plan "$T/wf/wf.yaml" --site clsoed
check "unknown site suggests" contains "$ERR" "did you mean 'closed'?"
expect_rc 2 "plan needs a workflow" "$HP" plan
done_testing
