#!/bin/bash
# bench-pilot: N (default 20,000) no-op tasks (`true`) through one
# `hpcport pilot` (TCP on loopback, cores = nproc) fed by `hpcport agent`,
# against `seq N | xargs -P $(nproc) -n1 true` in the same run (before and
# after, the machine may be shared). Targets: >= 1,000 tasks/s and >= 0.7 of
# xargs. The pilot time is from its start to its exit: registration, pulls in
# batches, posix_spawn of each task, results in batches committed to SQLite.
# Then a campaign of M (default 100,000) tasks through two spool pilots: the
# agent's peak memory (VmHWM) against the 200 MB target, and the files left in
# the spool afterwards (target 0 besides the status file).
# Last, under the test harness (SLURM_CONF of tests/harness, e.g. through
# tests/harness/with-services.sh): K (default 100) no-op tasks as one sbatch
# job each on that Slurm, from the first submission to the last job's end,
# against the same K tasks through one pilot job submitted by sbatch.
# Usage: bench-pilot.sh [N] [M] [K]   ($HPCPORT: the binary; use a release build)
set -eu
HP=${HPCPORT:-./build/cli/hpcport}
N=${1:-20000}
M=${2:-100000}
K=${3:-100}
P=$(nproc)
dir=$(mktemp -d)
apid=
trap '[ -n "$apid" ] && kill "$apid" 2>/dev/null; rm -rf "$dir"' EXIT
now() { date +%s.%N; }
tasks() { awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++) print "{\"argv\":[\"true\"]}" }'; }
port() { sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$1/agent.json"; }
wait_json() { for _ in $(seq 200); do [ -s "$1/agent.json" ] && return 0; sleep 0.05; done; return 1; }

tasks "$N" | "$HP" -q agent add --dir "$dir/a"
"$HP" agent --dir "$dir/a" --exit-when-done >/dev/null 2>"$dir/a.err" &
apid=$!
wait_json "$dir/a"
load=$(cut -d' ' -f1 /proc/loadavg)
t0=$(now)
seq "$N" | xargs -P "$P" -n1 true
t1=$(now)
"$HP" pilot --agent "127.0.0.1:$(port "$dir/a")" --secret-file "$dir/a/secret" --cores "$P" --idle 5
t2=$(now)
seq "$N" | xargs -P "$P" -n1 true
t3=$(now)
wait "$apid"; apid=
done=$("$HP" agent status --dir "$dir/a" --json | sed -n 's/.*"done":\([0-9]*\).*/\1/p')
[ "$done" = "$N" ] || { echo "bench-pilot: only $done of $N tasks done" >&2; exit 1; }
awk -v n="$N" -v p="$P" -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v l="$load" 'BEGIN {
    x1 = b - a; h = c - b; x2 = d - c; x = (x1 + x2) / 2;
    printf "bench-pilot: %d no-op tasks, one pilot, %d cores (load average %s): pilot %.2f s (%.0f tasks/s, target >= 1000); xargs -P %d %.2f s before, %.2f s after (%.0f tasks/s); ratio %.2f (target >= 0.7)\n",
           n, p, l, h, n / h, p, x1, x2, n / x, x / h }'

tasks "$M" | "$HP" -q agent add --dir "$dir/b"
"$HP" agent --dir "$dir/b" --spool "$dir/spool" --batch 1000 --exit-when-done >/dev/null 2>"$dir/b.err" &
apid=$!
wait_json "$dir/b"
t0=$(now)
"$HP" pilot --spool "$dir/spool" --cores "$P" --idle 5 & p1=$!
"$HP" pilot --spool "$dir/spool" --cores "$P" --idle 5 & p2=$!
hwm=0
while kill -0 "$apid" 2>/dev/null; do
    h=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$apid/status" 2>/dev/null || true)
    [ -n "$h" ] && hwm=$h
    sleep 0.2
done
wait "$apid" || true; apid=
wait "$p1" "$p2"
t1=$(now)
done=$("$HP" agent status --dir "$dir/b" --json | sed -n 's/.*"done":\([0-9]*\).*/\1/p')
left=$(find "$dir/spool" -type f ! -name status | wc -l)
awk -v m="$M" -v d="$done" -v h="$hwm" -v f="$left" -v a="$t0" -v b="$t1" 'BEGIN {
    printf "bench-pilot: %d-task campaign through 2 spool pilots: %d done in %.1f s; agent peak RSS %.1f MB (target < 200); %d files left in the spool (target 0)\n",
           m, d, b - a, h / 1024, f }'
ok=0
[ "$done" = "$M" ] && [ "$left" = 0 ] || ok=1

# ---- one sbatch per task against one pilot job, on the harness's Slurm
if [ -z "${SLURM_CONF:-}" ] || ! command -v sbatch >/dev/null; then
    echo "bench-pilot: sbatch per task: skipped (no Slurm: run under tests/harness/with-services.sh)"
    exit "$ok"
fi
SB=(sbatch --parsable -p debug -A hpcport -t 5 -o /dev/null -e /dev/null)
gone() { [ -z "$(squeue -h -o %i -j "$1" 2>/dev/null)" ]; }
drain() {   # wait until every job in the file $1 has left the queue
    local ids; ids=$(paste -sd, "$1")
    until gone "$ids"; do sleep 0.2; done
}
t0=$(now)
for _ in $(seq "$K"); do "${SB[@]}" --wrap true; done > "$dir/ids"
drain "$dir/ids"
t1=$(now)
tasks "$K" | "$HP" -q agent add --dir "$dir/c"
"$HP" agent --dir "$dir/c" --exit-when-done >/dev/null 2>"$dir/c.err" &
apid=$!
wait_json "$dir/c"
chmod 0755 "$dir"
t2=$(now)
"${SB[@]}" -c "$P" --wrap "exec $(readlink -f "$HP") pilot --agent 127.0.0.1:$(port "$dir/c") --secret-file $dir/c/secret --cores $P --idle 5" > "$dir/pid"
drain "$dir/pid"
t3=$(now)
wait "$apid" || true; apid=
done=$("$HP" agent status --dir "$dir/c" --json | sed -n 's/.*"done":\([0-9]*\).*/\1/p')
awk -v k="$K" -v d="$done" -v a="$t0" -v b="$t1" -v c="$t2" -v e="$t3" 'BEGIN {
    printf "bench-pilot: %d no-op tasks on Slurm: one sbatch each %.1f s (%.1f tasks/s); one pilot job %.1f s (%.1f tasks/s, %d done); %.0fx\n",
           k, b - a, k / (b - a), e - c, k / (e - c), d, (b - a) / (e - c) }'
[ "$done" = "$K" ] || ok=1
exit "$ok"
