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
# Usage: bench-pilot.sh [N] [M]   ($HPCPORT: the binary; use a release build)
set -eu
HP=${HPCPORT:-./build/cli/hpcport}
N=${1:-20000}
M=${2:-100000}
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
[ "$done" = "$M" ] && [ "$left" = 0 ]
