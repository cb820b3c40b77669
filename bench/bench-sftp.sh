#!/bin/bash
# bench/bench-sftp.sh [HPCPORT] - file transfer throughput of hpcport over SSH
# against OpenSSH's sftp and scp, measured in the same run through the same
# loopback sshd (the test harness's login node).
#
# Cases: one 1 GiB file, and 10,000 files of 4 KiB in 10 directories, each
# uploaded and downloaded. hpcport copies verify every file (size and
# SHA-256 on both sides) and write under a temporary name then rename;
# sftp/scp do neither. Each figure is the best of BENCH_REPS runs (default
# 3). Prints MB/s or files/s per tool and hpcport's ratio to sftp and scp
# (the target is >= 0.9). The tools take turns within each round.
#
# Runs standalone: without HP_HARNESS_DIR it starts the harness through
# tests/harness/with-services.sh (root needed). Knobs: BENCH_BIG_MB (1024),
# BENCH_FILES (10000), BENCH_FILE_KB (4), BENCH_REPS (3).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
if [ -z "${HP_HARNESS_DIR:-}" ]; then
    exec "$SRC/tests/harness/with-services.sh" "$0" "$@"
fi
. "$HP_HARNESS_DIR/env.sh"

HP=${1:-${HPCPORT:-}}
if [ -z "$HP" ]; then
    for b in build-rel build-ssh-rel build; do
        [ -x "$SRC/$b/cli/hpcport" ] && { HP=$SRC/$b/cli/hpcport; break; }
    done
fi
[ -x "${HP:-}" ] || { echo "bench-sftp: no hpcport binary; pass its path" >&2; exit 2; }
BIG_MB=${BENCH_BIG_MB:-1024}
NFILES=${BENCH_FILES:-10000}
FILE_KB=${BENCH_FILE_KB:-4}
REPS=${BENCH_REPS:-3}

T=$(mktemp -d)
R=$HP_H_SCRATCH/bench.$$
trap 'rm -rf "$T" "$R"' EXIT
export XDG_CONFIG_HOME=$T/config XDG_RUNTIME_DIR=$T/run HPCPORT_SSH_CONFIG=$HP_H_SSH_CONFIG
mkdir -p "$XDG_CONFIG_HOME/hpcport/sites" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
unset SSH_AUTH_SOCK HPCPORT_PROXY
printf 'name: bench\nscheduler: {type: slurm}\nlogin: {host: hp-login-direct}\n' \
    > "$XDG_CONFIG_HOME/hpcport/sites/bench.yaml"
SSHOPT=(-q -F "$HP_H_SSH_CONFIG")
HOST=hp-login-direct

echo "bench-sftp: $HP"
echo "bench-sftp: $(nproc) CPUs; $BIG_MB MiB file; $NFILES files of $FILE_KB KiB; best of $REPS"
echo "bench-sftp: making the data in $T"
head -c $((BIG_MB << 20)) /dev/urandom > "$T/big"
mkdir -p "$T/small"
python3 - "$T/small" "$NFILES" "$FILE_KB" <<'EOF'
import os, sys
root, n, kb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    d = os.path.join(root, "d%02d" % (i * 10 // n))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%06d" % i), "wb") as f:
        f.write(os.urandom(kb * 1024))
EOF
mkdir -p "$R"
chown "$HP_H_USER:" "$R"

now() { date +%s.%N; }
# time1 CLEANUP COMMAND...: wall time of one run into $DT (nan on failure)
time1() {
    local clean=$1 t0 t1
    shift
    eval "$clean"
    sync
    t0=$(now)
    if ! "$@" > "$T/run.out" 2>&1; then
        echo "bench-sftp: failed: $*" >&2
        tail -5 "$T/run.out" >&2
        DT=nan
        return 1
    fi
    t1=$(now)
    DT=$(echo "$t1 - $t0" | bc -l)
}
min() { if [ "$1" = "" ] || [ "$(echo "$2 < $1" | bc -l)" = 1 ]; then echo "$2"; else echo "$1"; fi; }
sftp_batch() { # COMMAND: one sftp command in batch mode
    printf '%s\n' "$1" > "$T/batch"
    sftp "${SSHOPT[@]}" -b "$T/batch" "$HOST"
}
rate() { # AMOUNT SECONDS
    echo "scale=1; $1 / $2" | bc -l
}
ratio() {
    echo "scale=2; $2 / $1" | bc -l
}
report() { # CASE UNIT AMOUNT T_HPCPORT T_SFTP T_SCP
    printf '%-28s %10s %10s %10s %8s %8s\n' "$1" "$(rate "$3" "$4")" "$(rate "$3" "$5")" \
        "$(rate "$3" "$6")" "$(ratio "$4" "$5")" "$(ratio "$4" "$6")"
}

MB=$(echo "$BIG_MB * 1.048576" | bc -l)
# The three tools take turns in every round, so that they share whatever
# else the machine is doing; each figure is the best round.
hp_put= sftp_put= scp_put= hp_get= sftp_get= scp_get=
hp_tput= sftp_tput= scp_tput= hp_tget= sftp_tget= scp_tget=
for rep in $(seq "$REPS"); do
    echo "bench-sftp: round $rep of $REPS" >&2
    # one big file
    time1 "rm -f '$R/big'" "$HP" cp "$T/big" "bench:$R/big"; hp_put=$(min "$hp_put" "$DT")
    cmp -s "$T/big" "$R/big" || echo "bench-sftp: WARNING: hpcport put: file differs" >&2
    time1 "rm -f '$R/big'" sftp_batch "put '$T/big' '$R/big'"; sftp_put=$(min "$sftp_put" "$DT")
    time1 "rm -f '$R/big'" scp "${SSHOPT[@]}" "$T/big" "$HOST:$R/big"; scp_put=$(min "$scp_put" "$DT")
    time1 "rm -f '$T/big.back'" "$HP" cp "bench:$R/big" "$T/big.back"; hp_get=$(min "$hp_get" "$DT")
    cmp -s "$T/big" "$T/big.back" || echo "bench-sftp: WARNING: hpcport get: file differs" >&2
    time1 "rm -f '$T/big.back'" sftp_batch "get '$R/big' '$T/big.back'"; sftp_get=$(min "$sftp_get" "$DT")
    time1 "rm -f '$T/big.back'" scp "${SSHOPT[@]}" "$HOST:$R/big" "$T/big.back"; scp_get=$(min "$scp_get" "$DT")
    rm -f "$T/big.back"
    # many small files
    time1 "rm -rf '$R/small'" "$HP" cp -r "$T/small" "bench:$R/small"; hp_tput=$(min "$hp_tput" "$DT")
    diff -r "$T/small" "$R/small" >/dev/null || echo "bench-sftp: WARNING: hpcport put -r: trees differ" >&2
    time1 "rm -rf '$R/small'" sftp_batch "put -r '$T/small' '$R/small'"; sftp_tput=$(min "$sftp_tput" "$DT")
    time1 "rm -rf '$R/small'" scp -r "${SSHOPT[@]}" "$T/small" "$HOST:$R/small"; scp_tput=$(min "$scp_tput" "$DT")
    time1 "rm -rf '$T/back'" "$HP" cp -r "bench:$R/small" "$T/back"; hp_tget=$(min "$hp_tget" "$DT")
    diff -r "$T/small" "$T/back" >/dev/null || echo "bench-sftp: WARNING: hpcport get -r: trees differ" >&2
    time1 "rm -rf '$T/back'" sftp_batch "get -r '$R/small' '$T/back'"; sftp_tget=$(min "$sftp_tget" "$DT")
    time1 "rm -rf '$T/back'" scp -r "${SSHOPT[@]}" "$HOST:$R/small" "$T/back"; scp_tget=$(min "$scp_tget" "$DT")
done

echo
printf '%-28s %10s %10s %10s %8s %8s\n' "case" "hpcport" "sftp" "scp" "vs sftp" "vs scp"
report "put 1 file (MB/s)" MB/s "$MB" "$hp_put" "$sftp_put" "$scp_put"
report "get 1 file (MB/s)" MB/s "$MB" "$hp_get" "$sftp_get" "$scp_get"
report "put $NFILES files (files/s)" f/s "$NFILES" "$hp_tput" "$sftp_tput" "$scp_tput"
report "get $NFILES files (files/s)" f/s "$NFILES" "$hp_tget" "$sftp_tget" "$scp_tget"
echo
echo "seconds: put big $hp_put/$sftp_put/$scp_put  get big $hp_get/$sftp_get/$scp_get" \
     " put tree $hp_tput/$sftp_tput/$scp_tput  get tree $hp_tget/$sftp_tget/$scp_tget" \
     "(hpcport/sftp/scp)"
