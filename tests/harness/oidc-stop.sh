#!/bin/bash
# tests/harness/oidc-stop.sh DIR - stop the provider oidc-start.sh DIR started
# (the pid in DIR/oidc.pid, if that process is our provider.js). Safe twice.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -uo pipefail
[ $# = 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
pidf=$1/oidc.pid
pid=$(cat "$pidf" 2>/dev/null) || exit 0
case "$pid" in '' | *[!0-9]*) rm -f "$pidf"; exit 0;; esac
if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q 'oidc/provider.js'; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
fi
rm -f "$pidf"
