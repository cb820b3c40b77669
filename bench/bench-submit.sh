#!/bin/bash
# bench-submit: N (default 1,000) job submissions to the test cluster through
# the Slurm adapter over one reused SSH connection (login node through the
# bastion, as sites are usually reached), the same N over a direct SSH
# connection to the login node, and through the local transport (sbatch run
# here) as the same-run reference; each followed by one scancel of all of
# them. Prints jobs/s and splits the time per job into sbatch (the local
# figure) and SSH (the rest), with the round trip of a no-op command and of
# one with 1 KiB on stdin (as sbatch gets its script) for scale. Jobs are
# submitted held (--hold): none runs.
# Usage: tests/harness/with-services.sh bash bench/bench-submit.sh [N]
#   $BENCH_SUBMIT: the bench-submit binary (default: ./build/bench/bench-submit)
set -eu
N=${1:-1000}
B=${BENCH_SUBMIT:-./build/bench/bench-submit}
[ -n "${HP_HARNESS_DIR:-}" ] && [ -r "$HP_HARNESS_DIR/env.sh" ] || {
    echo "bench-submit: HP_HARNESS_DIR is not set: run it through tests/harness/with-services.sh" >&2
    exit 1; }
. "$HP_HARNESS_DIR/env.sh"
[ -x "$B" ] || { echo "bench-submit: no $B (build it, or set BENCH_SUBMIT)" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export XDG_CONFIG_HOME="$dir/config" HPCPORT_NO_MASTER=1 HPCPORT_SSH_CONFIG="$dir/ssh_config"
mkdir -p "$XDG_CONFIG_HOME/hpcport/sites"
cat > "$dir/ssh_config" <<EOC
Host 127.0.0.1
    IdentityFile $HP_H_KEY
    IdentitiesOnly yes
    UserKnownHostsFile $HP_H_KNOWN_HOSTS
    StrictHostKeyChecking yes
EOC
common="scheduler:
  type: slurm
  partitions: [{name: debug}]
  account: hpcport
  directives: [--hold]
network: {login: none, compute: none}"
printf 'name: bench-ssh\n%s\nlogin:\n  host: 127.0.0.1\n  port: %s\n  user: %s\n  jump: ["%s@127.0.0.1:%s"]\n' \
    "$common" "$HP_H_LOGIN_PORT" "$HP_H_USER" "$HP_H_USER" "$HP_H_BASTION_PORT" \
    > "$XDG_CONFIG_HOME/hpcport/sites/bench-ssh.yaml"
printf 'name: bench-direct\n%s\nlogin:\n  host: 127.0.0.1\n  port: %s\n  user: %s\n' \
    "$common" "$HP_H_LOGIN_PORT" "$HP_H_USER" > "$XDG_CONFIG_HOME/hpcport/sites/bench-direct.yaml"
printf 'name: bench-local\n%s\n' "$common" > "$XDG_CONFIG_HOME/hpcport/sites/bench-local.yaml"

loc=$("$B" bench-local "$N")
ssh=$("$B" bench-ssh "$N")
direct=$("$B" bench-direct "$N")
echo "bench-submit: $loc"
echo "bench-submit: $ssh"
echo "bench-submit: $direct"
get() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
report() { # LABEL FIGURES
    awk -v n="$N" -v what="$1" -v lj="$(get "$loc" jobs_s)" -v lm="$(get "$loc" submit_ms)" \
        -v sj="$(get "$2" jobs_s)" -v sm="$(get "$2" submit_ms)" -v rtt="$(get "$2" rtt_ms)" \
        -v rin="$(get "$2" stdin_rtt_ms)" 'BEGIN {
        ssh = sm - lm; if (ssh < 0) ssh = 0;
        printf "bench-submit: %s: %d submissions over one connection: %.1f jobs/s, %.2f ms/job = %.2f ms in sbatch (the local figure) + %.2f ms in SSH (%.0f%%); round trip of a no-op command %.2f ms, with 1 KiB on stdin %.2f ms\n", what, n, sj, sm, lm, ssh, 100 * ssh / sm, rtt, rin }'
}
echo "bench-submit: locally (sbatch here): $(get "$loc" jobs_s) jobs/s, $(get "$loc" submit_ms) ms/job"
report "SSH through the bastion" "$ssh"
report "SSH direct to the login node" "$direct"
