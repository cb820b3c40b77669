# tap.sh - tiny TAP helpers for the integration scripts (sourced).
# ok/fail print one TAP line each; `done_testing` prints the plan and exits
# non-zero if anything failed.
HP=${HPCPORT:-${1:-./build/cli/hpcport}}
SRC=${HP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
_n=0
_failed=0
ok()   { _n=$((_n + 1)); echo "ok $_n - $*"; }
fail() { _n=$((_n + 1)); _failed=$((_failed + 1)); echo "not ok $_n - $*"; }
# check DESCRIPTION COMMAND...: passes when the command succeeds
check() { d=$1; shift; if "$@"; then ok "$d"; else fail "$d"; fi; }
# expect_rc RC DESCRIPTION COMMAND...: runs COMMAND, output in $OUT/$ERR
expect_rc() {
    want=$1; d=$2; shift 2
    "$@" >"$T/out" 2>"$T/err"; got=$?
    OUT=$(cat "$T/out"); ERR=$(cat "$T/err")
    if [ "$got" = "$want" ]; then ok "$d"; else
        fail "$d (exit $got, wanted $want)"; sed 's/^/# /' "$T/err" | head -5; fi
}
contains() { case "$1" in *"$2"*) return 0;; *) return 1;; esac; }
done_testing() { echo "1..$_n"; [ "$_failed" = 0 ]; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export XDG_CONFIG_HOME="$T/config" XDG_STATE_HOME="$T/state" XDG_DATA_HOME="$T/data"
unset HPCPORT_STATE_DIR
