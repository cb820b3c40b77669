#!/bin/sh
# bench-local: N (default 10,000) no-op tasks (`true`) run by `hpcport run` on
# the local site, against `seq N | xargs -P $(nproc) -n1 true` measured in the
# same run, once before and once after hpcport (the machine may be shared:
# the load can change while we measure). Prints the rates and the ratio of
# hpcport's to xargs' (mean of its two times); target >= 0.8.
#
# The hpcport time is the whole command: loading and expanding the workflow,
# planning, creating the campaign's database, starting every task (one
# process each, by the spawner), keeping its stdout/stderr and exit record
# (three files per task), and the state. xargs creates no file, so the ratio
# also says how dear creating a file is where the state lives ($TMPDIR). On
# ext4 without a journal it costs up to ~20x more for a minute or more after
# many deletions nearby -- such as this script's own cleanup of the previous
# run's 40,000 files: leave two minutes between runs there.
# Usage: bench-local.sh [N]   ($HPCPORT: the binary; use a release build)
set -eu
HP=${HPCPORT:-./build/cli/hpcport}
N=${1:-10000}
P=$(nproc)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export HPCPORT_STATE_DIR="$dir/state" XDG_CONFIG_HOME="$dir/config"
cat > "$dir/noop.yaml" <<EOP
name: noop
tasks:
  t:
    matrix:
      i: {from: 1, to: $N}
    command: ["true"]
EOP
now() { date +%s.%N; }
load=$(cut -d' ' -f1 /proc/loadavg)
t0=$(now)
seq "$N" | xargs -P "$P" -n1 true
t1=$(now)
"$HP" -q run "$dir/noop.yaml" --set "nodes.cores=$P"
t2=$(now)
seq "$N" | xargs -P "$P" -n1 true
t3=$(now)
done=$("$HP" status noop --json | sed -n 's/^ *"completed": \([0-9]*\).*/\1/p')
[ "$done" = "$N" ] || { echo "bench-local: only $done of $N tasks completed" >&2; exit 1; }
awk -v n="$N" -v p="$P" -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v l="$load" 'BEGIN {
    x1 = b - a; h = c - b; x2 = d - c; x = (x1 + x2) / 2;
    printf "bench-local: %d no-op tasks on %d cores (load average %s): hpcport run %.2f s (%.0f tasks/s); xargs -P %d %.2f s before, %.2f s after (%.0f tasks/s); ratio %.2f (target >= 0.8)\n",
           n, p, l, h, n / h, p, x1, x2, n / x, x / h }'
