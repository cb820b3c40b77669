#!/bin/bash
# tests/harness/with-services.sh CMD [ARG...] - run CMD with the test services up.
#
# Starts the harness (start.sh) in a new private directory, exports the
# variables of its env.sh (HP_HARNESS_DIR, HP_H_*, SLURM_CONF), runs CMD,
# stops the harness (stop.sh) however CMD ends - exit, INT, TERM, HUP - and
# exits with CMD's status. The directory is removed when CMD succeeded, kept
# (with every log in it) when it failed or HP_HARNESS_KEEP=1.
#   HP_HARNESS_TMPDIR  where to make the directory (default: $TMPDIR or /tmp);
#                      its parents must be searchable by the test user
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # also when run as `sh script`
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { echo "usage: $0 CMD [ARG...]" >&2; exit 2; }

base=${HP_HARNESS_TMPDIR:-${TMPDIR:-/tmp}}
DIR=$(mktemp -d "$base/hpcport-harness.XXXXXX") || exit 1
child=
rc=1

cleanup() {
    trap '' INT TERM HUP
    "$HERE/stop.sh" "$DIR" || echo "with-services: stop.sh $DIR failed" >&2
    if [ "$rc" = 0 ] && [ -z "${HP_HARNESS_KEEP:-}" ]; then
        rm -rf "$DIR"
    else
        echo "with-services: harness directory kept: $DIR (logs in it)" >&2
    fi
}
forward() { # SIGNAL NUMBER: pass the signal on to CMD, wait for it, exit
    if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
        kill -"$1" "$child" 2>/dev/null
        wait "$child" 2>/dev/null
    fi
    rc=$((128 + $2))
    exit "$rc"
}
trap cleanup EXIT
trap 'forward INT 2' INT
trap 'forward TERM 15' TERM
trap 'forward HUP 1' HUP

if ! "$HERE/start.sh" "$DIR"; then
    echo "with-services: the test services did not start" >&2
    exit 1
fi
# shellcheck disable=SC1091
. "$DIR/env.sh"

# CMD runs in the background so that a signal reaches this script at once
# (bash runs traps only between commands); it gets SIGINT and SIGQUIT back,
# which bash ignores in background commands
( trap - INT QUIT; exec "$@" ) &
child=$!
while :; do
    wait "$child"
    rc=$?
    kill -0 "$child" 2>/dev/null || break
done
exit "$rc"
