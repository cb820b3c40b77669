#!/bin/bash
# hpcport plan WORKFLOW --site A --site B: the scripts of two (or more) sites
# side by side or as unified diffs, both lints, --json; driven through the
# real binary with the bundled local site and examples/sites/example-slurm.yaml.
. "$(dirname "$0")/tap.sh"
jget() { /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
unset COLUMNS
mkdir -p "$XDG_CONFIG_HOME/hpcport/sites"
cp "$SRC/examples/sites/example-slurm.yaml" "$XDG_CONFIG_HOME/hpcport/sites/"
# a second Slurm site: the example under the name the sweep has overrides for
sed 's/^name: example-slurm$/name: perlmutter/' "$SRC/examples/sites/example-slurm.yaml" \
    > "$XDG_CONFIG_HOME/hpcport/sites/perlmutter.yaml"
WF="$SRC/examples/sweep/sweep.yaml"
A=(--site example-slurm --set scheduler.account=m1)
B=(--site example-slurm --set scheduler.account=m2 --set scheduler.default_partition=debug)
LA="example-slurm --set scheduler.account=m1"
LB="example-slurm --set scheduler.account=m2 --set scheduler.default_partition=debug"
# row LEFT MARK RIGHT COLS: one side-by-side row as hpcport writes it
row() { printf "%-${4}s %s %s" "$1" "$2" "$3" | sed 's/ *$//'; }
has_line() { grep -qxF -- "$2" "$1"; }

# --- side by side
expect_rc 0 "two sites side by side" "$HP" plan "$WF" "${A[@]}" "${B[@]}" --width 120
check "summary names both sites" contains "$OUT" "#   site '$LA' (slurm): 4 tasks, 23 jobs"
check "second site's line" contains "$OUT" "#   site '$LB' (slurm): 4 tasks, 23 jobs"
check "a section compares the second with the first" contains "$OUT" "# === site '$LB' compared with site '$LA'"
check "each job says how its scripts differ" has_line "$T/out" "# --- job gen[seed=1]: the scripts differ (-2 +2 lines)"
check "header row names both sites" has_line "$T/out" "$(row "$LA" ' ' "${LB:0:58}" 58)"
check "equal lines carry no mark" has_line "$T/out" "$(row '#!/bin/bash' ' ' '#!/bin/bash' 58)"
check "changed partition marked |" has_line "$T/out" "$(row '#SBATCH --partition=regular' '|' '#SBATCH --partition=debug' 58)"
check "changed account marked |" has_line "$T/out" "$(row '#SBATCH --account=m1' '|' '#SBATCH --account=m2' 58)"
check "no script row is wider than 120" test "$(grep -vE '^# (---|===|plan|lint|  |[0-9])' "$T/out" | awk '{ if (length($0) > m) m = length($0) } END { print m }')" -le 120
check "first instance of each task by default" contains "$OUT" "# 4 of 4 jobs shown differ; --all compares every job"
check "lint of the first site" contains "$OUT" "# lint for site '$LA': no problems found"
check "lint of the second site" contains "$OUT" "# lint for site '$LB': no problems found"

expect_rc 0 "width from COLUMNS" env COLUMNS=80 "$HP" plan "$WF" "${A[@]}" "${B[@]}"
check "COLUMNS=80: 38-column halves" has_line "$T/out" "$(row '#SBATCH --account=m1' '|' '#SBATCH --account=m2' 38)"
expect_rc 0 "default width without a terminal" "$HP" plan "$WF" "${A[@]}" "${B[@]}"
check "160 columns: 78-column halves" has_line "$T/out" "$(row '#SBATCH --account=m1' '|' '#SBATCH --account=m2' 78)"

# lines only on one side: local vs Slurm (no #SBATCH lines on local)
expect_rc 5 "local vs a Slurm site with a placeholder account: lint errors exit 5" \
    "$HP" plan "$WF" --site local --site example-slurm --width 100
check "Slurm directives only on the right, marked >" has_line "$T/out" "$(row '' '>' '#SBATCH --exclusive' 48)"
check "the Slurm site's lint error" contains "$OUT" "# lint for site 'example-slurm': 1 error"
check "names the missing account" contains "$OUT" "site 'example-slurm' needs your account"
check "local's lint is clean" contains "$OUT" "# lint for site 'local': no problems found"

# the workflow's per-site overrides apply per site
expect_rc 0 "example-slurm vs perlmutter (the sweep overrides sim there)" \
    "$HP" plan "$WF" --set scheduler.account=m1 --site example-slurm --site perlmutter --diff
check "--set before any --site applies to both" eval '! contains "$OUT" "needs your account"'
check "gen is the same on both" has_line "$T/out" "# --- job gen[seed=1]: the same script on both sites"
check "sim gets perlmutter's walltime" has_line "$T/out" "+#SBATCH --time=00:30:00"
check "and example-slurm's default" has_line "$T/out" "-#SBATCH --time=00:10:00"
check "1 of 4 differ" contains "$OUT" "# 1 of 4 jobs shown differ"

# --- unified diff
expect_rc 0 "--diff" "$HP" plan "$WF" "${A[@]}" "${B[@]}" --diff
check "--- header names the first site and the job" has_line "$T/out" "--- $LA: gen[seed=1]"
check "+++ header names the second" has_line "$T/out" "+++ $LB: gen[seed=1]"
check "hunk header" grep -qE '^@@ -1,[0-9]+ \+1,[0-9]+ @@$' "$T/out"
check "removed line" has_line "$T/out" "-#SBATCH --partition=regular"
check "added line" has_line "$T/out" "+#SBATCH --partition=debug"
check "context line" has_line "$T/out" " #SBATCH --nodes=1"
expect_rc 0 "--diff -U 0" "$HP" plan "$WF" "${A[@]}" "${B[@]}" --diff -U 0
check "no context: the two changed lines" grep -qE '^@@ -[0-9]+,2 \+[0-9]+,2 @@$' "$T/out"
check "-U 0 has no context line" eval '! grep -qxF " #SBATCH --nodes=1" "$T/out"'
expect_rc 0 "--diff --all" "$HP" plan "$WF" "${A[@]}" "${B[@]}" --diff --all
check "every job compared" contains "$OUT" "# 23 of 23 jobs shown differ"
check "23 diffs" test "$(grep -c '^+++ ' "$T/out")" = 23
expect_rc 0 "a site compared with itself" "$HP" plan "$WF" "${A[@]}" "${A[@]}" --diff
check "nothing differs" contains "$OUT" "# 0 of 4 jobs shown differ"
check "no hunks" eval '! grep -q "^@@" "$T/out"'

# --- more than two sites: each against the first
expect_rc 0 "three sites" "$HP" plan "$WF" --site local "${A[@]}" "${B[@]}" --diff
check "two comparisons" test "$(grep -c '^# === site' "$T/out")" = 2
check "the second against the first" contains "$OUT" "# === site '$LA' compared with site 'local'"
check "the third against the first" contains "$OUT" "# === site '$LB' compared with site 'local'"
check "three lints" test "$(grep -c '^# lint for site' "$T/out")" = 3

# --- JSON: both plans, and per job whether and how the scripts differ
expect_rc 0 "--json with two sites" "$HP" plan "$WF" "${A[@]}" "${B[@]}" --json
cp "$T/out" "$T/two.json"
check "two plans with their labels" test "$(jget "$T/two.json" "[(p['site'], p['label'], len(p['jobs'])) for p in d['plans']]")" \
    = "[('example-slurm', '$LA', 23), ('example-slurm', '$LB', 23)]"
check "one comparison of 23 jobs" test "$(jget "$T/two.json" "[(c['a'], c['b'], len(c['jobs'])) for c in d['compare']]")" \
    = "[('$LA', '$LB', 23)]"
check "counts per job" test "$(jget "$T/two.json" "[(j['same'], j['lines_removed'], j['lines_added']) for j in d['compare'][0]['jobs']][0]")" \
    = "(False, 2, 2)"
check "each job's diff, applied by GNU patch, turns A's script into B's" /usr/bin/python3 - "$T/two.json" "$T" <<'PY'
import json, os, subprocess, sys
d = json.load(open(sys.argv[1])); t = sys.argv[2]
a = {j["instance"]: j["script"] for j in d["plans"][0]["jobs"]}
b = {j["instance"]: j["script"] for j in d["plans"][1]["jobs"]}
for j in d["compare"][0]["jobs"]:
    f = os.path.join(t, "script")
    open(f, "w").write(a[j["instance"]])
    subprocess.run(["patch", "-s", "-f", f], input=j["diff"].encode(), check=True)
    assert open(f).read() == b[j["instance"]], j["instance"]
PY
check "lint_errors summed" test "$(jget "$T/two.json" "d['lint_errors']")" = 0

# --- usage errors
expect_rc 2 "--diff needs two sites" "$HP" plan "$WF" --site local --diff
check "says so" contains "$ERR" "give two --site options or more"
expect_rc 2 "--width too small" "$HP" plan "$WF" --site local --site local --width 5
expect_rc 2 "--unified needs a number" "$HP" plan "$WF" --site local --site local --diff -U x
expect_rc 2 "--unified without --diff" "$HP" plan "$WF" --site local --site local -U 2
expect_rc 4 "an unknown second site" "$HP" plan "$WF" --site local --site exmaple-slurm
check "suggests the name" contains "$ERR" "did you mean 'example-slurm'?"
check "prints no partial plan" test ! -s "$T/out"
done_testing
