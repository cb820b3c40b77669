#!/bin/sh
# Install, with apt-get, whatever hpcport needs to build and test that is not
# installed yet. Works on a fresh Debian 12 machine (as root, or with sudo).
set -eu

PKGS="gcc libc6-dev pkg-config meson ninja-build git python3
libyaml-dev libjansson-dev libcurl4-openssl-dev libssh2-1-dev libssl-dev libgit2-dev
libsqlite3-dev libpcre2-dev libevent-dev scdoc"
# --bench: the test packages and these, for bench/bench-endpoint.sh
BENCH_PKGS="python3-distributed"
TEST_PKGS="libcmocka-dev json-schema-test-suite python3-jsonschema python3-yaml
sqlite3 procps util-linux bash coreutils findutils bc diffutils patch
passwd openssh-server openssh-client libpam-oath oathtool
munge slurmctld slurmd slurm-client slurmdbd mariadb-server-core mariadb-client slurm-wlm-torque
openssl lighttpd lighttpd-mod-openssl
slurmrestd slurm-wlm-jwt-plugin tinyproxy curl iproute2"

want="$PKGS"
[ "${1:-}" = "--test" ] && want="$PKGS $TEST_PKGS"
[ "${1:-}" = "--bench" ] && want="$PKGS $TEST_PKGS $BENCH_PKGS"
# the test OpenID provider (tests/harness/oidc) runs on node; a node
# installed another way (nvm, NodeSource) is fine too
if [ "${1:-}" = "--test" ] && ! { command -v node && command -v npm; } >/dev/null 2>&1; then
    want="$want nodejs npm"
fi

# its npm packages, exactly as package-lock.json pins them
npm_ci() {
    [ "${1:-}" = "--test" ] || return 0
    d=$(cd "$(dirname "$0")/.." && pwd)/tests/harness/oidc
    if [ ! -f "$d/node_modules/.package-lock.json" ] ||
       ! cmp -s "$d/package-lock.json" "$d/.installed-lock.json"; then
        echo "install-deps: npm ci in $d" >&2
        (cd "$d" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) &&
            cp "$d/package-lock.json" "$d/.installed-lock.json"
    fi
}

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then npm_ci "${1:-}"; exit 0; fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "install-deps: need root (or sudo) to install:$missing" >&2; exit 1
    fi
fi
echo "install-deps: installing:$missing" >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
npm_ci "${1:-}"
