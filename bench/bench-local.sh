#!/bin/sh
# bench-local: N (default 10,000) no-op tasks (`true`) run by `hpcport run` on
# the local site, against `seq N | xargs -P $(nproc) -n1 true` measured in the
# same run. Prints both rates and their ratio (target >= 0.8). The hpcport
# time is the whole command: loading and expanding the workflow, planning,
# creating the campaign's database, running every task through its
# supervisor, keeping its stdout/stderr and exit record, and the state.
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
t0=$(now)
seq "$N" | xargs -P "$P" -n1 true
t1=$(now)
"$HP" -q run "$dir/noop.yaml" --set "nodes.cores=$P"
t2=$(now)
done=$("$HP" status noop --json | sed -n 's/^ *"completed": \([0-9]*\).*/\1/p')
[ "$done" = "$N" ] || { echo "bench-local: only $done of $N tasks completed" >&2; exit 1; }
awk -v n="$N" -v p="$P" -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN {
    x = n / (b - a); h = n / (c - b);
    printf "bench-local: %d no-op tasks on %d cores: hpcport run %.2f s (%.0f tasks/s); xargs -P %d %.2f s (%.0f tasks/s); ratio %.2f (target >= 0.8)\n",
           n, p, c - b, h, p, b - a, x, h / x }'
