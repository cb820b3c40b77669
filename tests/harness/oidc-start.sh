#!/bin/bash
# tests/harness/oidc-start.sh DIR - start the test OpenID provider on loopback.
#
# Runs tests/harness/oidc/provider.js (node-oidc-provider, pinned in
# tests/harness/oidc/package-lock.json; installed by
# 'sh tools/install-deps.sh --test') on 127.0.0.1 at a port free now, with
# its log in DIR/oidc.log and its pid in DIR/oidc.pid, waits until its
# discovery document answers, and writes DIR/oidc.env:
#   OIDC_PORT=...  OIDC_ISSUER=http://127.0.0.1:PORT
# Token lifetimes come from the environment (OIDC_ACCESS_TTL, OIDC_REFRESH_TTL,
# OIDC_DEVICE_TTL, OIDC_INTERVAL, OIDC_SLOW_DOWN; see provider.js); with
# OIDC_TLS_CERT and OIDC_TLS_KEY it serves https. Stop it with
# tests/harness/oidc-stop.sh DIR.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
[ $# = 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
DIR=$1
die() { echo "oidc-start: $*" >&2; exit 1; }
command -v node >/dev/null || die "node is missing: run 'sh tools/install-deps.sh --test'"
[ -d "$HERE/oidc/node_modules/oidc-provider" ] ||
    die "tests/harness/oidc/node_modules is missing: run 'sh tools/install-deps.sh --test' (npm ci)"
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
if [ -f "$DIR/oidc.pid" ] && kill -0 "$(cat "$DIR/oidc.pid")" 2>/dev/null; then
    die "a provider already runs for $DIR (pid $(cat "$DIR/oidc.pid"))"
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
answers() {
    python3 - "$1" <<'PY'
import ssl, sys, urllib.request
try:
    # a liveness probe: the certificate is the test's business
    urllib.request.urlopen(sys.argv[1] + "/.well-known/openid-configuration", timeout=2,
                           context=ssl._create_unverified_context()).read()
except Exception:
    sys.exit(1)
PY
}

# another process may take the port between the choice and the listen: retry
for _ in 1 2 3 4 5; do
    port=$(free_port)
    scheme=http
    [ -n "${OIDC_TLS_CERT:-}" ] && [ -n "${OIDC_TLS_KEY:-}" ] && scheme=https
    issuer=$scheme://127.0.0.1:$port
    setsid node "$HERE/oidc/provider.js" "$port" >"$DIR/oidc.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" > "$DIR/oidc.pid"
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        if answers "$issuer"; then
            printf 'OIDC_PORT=%s\nOIDC_ISSUER=%s\n' "$port" "$issuer" > "$DIR/oidc.env"
            exit 0
        fi
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -f "$DIR/oidc.pid"
done
die "the provider did not start; its log: $(tail -5 "$DIR/oidc.log" 2>/dev/null)"
