#!/bin/bash
# tests/harness/stop.sh [--check | --only GROUP] DIR - stop what start.sh DIR started.
#
# Cancels the cluster's jobs, stops the daemons named by the pid files in DIR
# and every process that belongs to them (ssh sessions, job steps, jobs of
# the test user started from the harness), waits until all are gone (TERM,
# then KILL after 10 s), removes the MFA PAM stack from /etc/pam.d. Logs and
# keys stay in DIR. Safe to call twice, and on a DIR a crashed run left.
#   --check       exit 0 if every daemon of DIR runs, 1 otherwise; stops nothing
#   --only GROUP  stop slurm (slurmctld, slurmd), dbd (slurmdbd), db (mariadbd),
#                 rest (slurmrestd) or proxy (tinyproxy)
#                 only; start.sh uses it to retry on other ports
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # also when run as `sh script`
set -uo pipefail

mode=stop
case "${1:-}" in
    --check) mode=check; shift;;
    --only) mode=${2:-}; shift 2 || true
            case "$mode" in slurm | dbd | db | rest | proxy) ;;
                *) echo "stop.sh: --only slurm|dbd|db|rest|proxy" >&2; exit 2;; esac;;
esac
[ $# = 1 ] || { echo "usage: $0 [--check | --only slurm|dbd|db|rest|proxy] DIR" >&2; exit 2; }
DIR=$(realpath -m -- "$1")
[ "$DIR" != / ] || { echo "stop.sh: refusing DIR=/" >&2; exit 2; }
TUSER=hpcport-test

alive() { # PID: running and not a zombie
    local st
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st##*) }
    [ "${st%% *}" != Z ]
}
# the pid in FILE if that process runs and is ours: its command line names
# DIR or it carries the harness tag start.sh gives its daemons
daemon_pid() {
    local p
    p=$(cat "$1" 2>/dev/null) || return 1
    case "$p" in '' | *[!0-9]*) return 1;; esac
    alive "$p" || return 1
    tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$DIR/" ||
        grep -qzxF "HP_H_TAG=$DIR" "/proc/$p/environ" 2>/dev/null || return 1
    echo "$p"
}

ALL_PIDFILES="proxy/tinyproxy.pid rest/slurmrestd.pid slurm/slurmd.pid slurm/slurmctld.pid slurm/slurmdbd.pid db/mysqld.pid
              mfa/sshd.pid login/sshd.pid bastion/sshd.pid munge/munged.pid"

if [ "$mode" = check ]; then
    for f in $ALL_PIDFILES; do daemon_pid "$DIR/$f" >/dev/null || exit 1; done
    exit 0
fi
case "$mode" in
    stop) pidfiles=$ALL_PIDFILES;;
    slurm) pidfiles="slurm/slurmd.pid slurm/slurmctld.pid";;
    dbd) pidfiles=slurm/slurmdbd.pid;;
    db) pidfiles=db/mysqld.pid;;
    rest) pidfiles=rest/slurmrestd.pid;;
    proxy) pidfiles=proxy/tinyproxy.pid;;
esac

# ---- 1. cancel the jobs while slurmctld still answers (bounded)
if [ "$mode" = stop ] && [ -f "$DIR/slurm/slurm.conf" ] && daemon_pid "$DIR/slurm/slurmctld.pid" >/dev/null; then
    export SLURM_CONF=$DIR/slurm/slurm.conf
    ids=$(timeout 5 squeue -h -o %A 2>/dev/null | tr '\n' ' ')
    if [ -n "${ids// /}" ]; then
        # shellcheck disable=SC2086
        timeout 5 scancel --quiet $ids 2>/dev/null
        for _ in $(seq 1 50); do
            [ -z "$(timeout 2 squeue -h -t RUNNING,COMPLETING,CONFIGURING -o %A 2>/dev/null)" ] && break
            sleep 0.1
        done
    fi
fi

# ---- 2. who to stop
self_and_ancestors() {
    local p=$BASHPID st
    echo $$
    while [ -n "$p" ] && [ "$p" -gt 1 ]; do
        echo "$p"
        st=$(cat "/proc/$p/stat" 2>/dev/null) || break
        st=${st##*) }; st=${st#* }; p=${st%% *}
    done
}
is_daemon() { # PID: one of the programs the harness runs
    case "$(cat "/proc/$1/comm" 2>/dev/null)" in
        sshd | sftp-server | hpcport-test-s* | munged | slurmctld | slurmd | slurmstepd | slurmdbd | mariadbd | mysqld | slurmrestd | tinyproxy)
            return 0;;
    esac
    return 1
}
collect() {
    local -A ppid_of=() want=() keep=()
    local s p pp st rest changed uid
    for p in $(self_and_ancestors); do keep[$p]=1; done
    for s in /proc/[0-9]*/stat; do
        st=$(cat "$s" 2>/dev/null) || continue
        p=${s#/proc/}; p=${p%/stat}
        rest=${st##*) }; rest=${rest#* }; ppid_of[$p]=${rest%% *}
    done
    # the daemons of the pid files
    for f in $pidfiles; do p=$(daemon_pid "$DIR/$f") && want[$p]=1; done
    if [ "$mode" = stop ]; then
        # daemons whose command line names DIR but whose pid file is gone
        for p in "${!ppid_of[@]}"; do
            is_daemon "$p" || continue
            tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$DIR/" && want[$p]=1
        done
        # processes that carry the harness tag (ssh sessions get it through
        # sshd's SetEnv, jobs from their submitting session)
        for s in $(grep -lzxF "HP_H_TAG=$DIR" /proc/[0-9]*/environ 2>/dev/null); do
            p=${s#/proc/}; want[${p%/environ}]=1
        done
        # daemons' helpers and the test user's processes with a file or the
        # working directory in DIR (slurmstepd writes the slurmd log; jobs run
        # in DIR/scratch). Other users' shells and pagers in DIR are left alone.
        uid=$(id -u "$TUSER" 2>/dev/null || echo none)
        for s in $( { find /proc/[0-9]*/fd -mindepth 1 -maxdepth 1 \( -lname "$DIR/*" -o -lname "$DIR" \) -print
                      find /proc/[0-9]*/cwd -maxdepth 0 \( -lname "$DIR/*" -o -lname "$DIR" \) -print
                    } 2>/dev/null | cut -d/ -f3 | sort -u); do
            if is_daemon "$s"; then want[$s]=1; continue; fi
            [ "$(stat -c %u "/proc/$s" 2>/dev/null)" = "$uid" ] && want[$s]=1
        done
    fi
    # and their descendants
    changed=1
    while [ -n "$changed" ]; do
        changed=
        for p in "${!ppid_of[@]}"; do
            pp=${ppid_of[$p]}
            if [ -z "${want[$p]:-}" ] && [ -n "${want[$pp]:-}" ]; then want[$p]=1; changed=1; fi
        done
    done
    for p in "${!want[@]}"; do
        [ -n "${keep[$p]:-}" ] && continue
        alive "$p" && echo "$p"
    done
}

# ---- 3. TERM, wait, KILL, wait; twice (stopping may start stragglers)
rc=0
for round in 1 2; do
    victims=$(collect | tr '\n' ' ')
    [ -z "${victims// /}" ] && break
    # shellcheck disable=SC2086
    kill -TERM $victims 2>/dev/null
    for _ in $(seq 1 100); do
        left=; for p in $victims; do alive "$p" && left="$left $p"; done
        [ -z "$left" ] && break
        sleep 0.1
    done
    if [ -n "$left" ]; then
        echo "stop.sh: killing what ignored TERM for 10 s:$left" >&2
        # shellcheck disable=SC2086
        kill -KILL $left 2>/dev/null
        for _ in $(seq 1 50); do
            left2=; for p in $left; do alive "$p" && left2="$left2 $p"; done
            [ -z "$left2" ] && break
            sleep 0.1
        done
        [ -n "$left2" ] && { echo "stop.sh: still running:$left2" >&2; rc=1; }
    fi
done

for f in $pidfiles; do rm -f "${DIR:?}/$f"; done
if [ "$mode" = stop ]; then
    # the name start.sh gave the MFA sshd's PAM service (from DIR)
    rm -f "/etc/pam.d/hpcport-test-sshd-$(printf %s "$DIR" | md5sum | cut -c1-8)"
fi
exit $rc
