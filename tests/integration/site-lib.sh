# site-lib.sh - what the scheduler tests (test-slurm.sh, test-pbs.sh) share,
# sourced after tap.sh: the harness's services (tests/harness/), hpcport's
# own state and SSH configuration in $T, site profiles that reach the login
# node through the bastion, and small helpers. Sourcing it fails the test
# (it does not skip) when HP_HARNESS_DIR names no running harness.

if [ -z "${HP_HARNESS_DIR:-}" ] || [ ! -r "$HP_HARNESS_DIR/env.sh" ]; then
    fail "HP_HARNESS_DIR is not set or has no env.sh: run the tests through" \
         "tests/harness/with-services.sh (e.g. 'sh tools/test.sh'), or start" \
         "tests/harness/start.sh DIR and export HP_HARNESS_DIR=DIR"
    done_testing; exit 1
fi
. "$HP_HARNESS_DIR/env.sh"

export HPCPORT_STATE_DIR="$T/state" HPCPORT_NO_MASTER=1 HPCPORT_SSH_CONFIG="$T/ssh_config"
# a sanitized build writes its reports here, also from commands whose
# stderr the checks swallow (check_sanitizers, at the end)
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$T/sanitizer"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:log_path=$T/sanitizer"
chmod 0711 "$T"   # the test user reads nothing here, but root's files stay root's
SITES="$XDG_CONFIG_HOME/hpcport/sites"
mkdir -p "$SITES"

# hpcport reads key and known hosts from its ssh configuration; host, port,
# user and the jump host come from the profile (site_login_yaml)
cat > "$T/ssh_config" <<EOF
Host 127.0.0.1
    IdentityFile $HP_H_KEY
    IdentitiesOnly yes
    UserKnownHostsFile $HP_H_KNOWN_HOSTS
    StrictHostKeyChecking yes
EOF

# the login node, as the test user (through the bastion)
SSH=(ssh -F "$HP_H_SSH_CONFIG" -o BatchMode=yes hp-login)
# jget FILE EXPR: EXPR evaluated with d, the JSON document in FILE
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }
# wait_for SECONDS COMMAND...: poll until COMMAND succeeds
wait_for() {
    local end=$((SECONDS + $1)); shift
    until "$@"; do [ "$SECONDS" -ge "$end" ] && return 1; sleep 0.3; done
}

# The profile lines after the scheduler section: the harness's login node
# through the bastion, no network, scratch in the test user's ~/.$TAG.
site_login_yaml() {
    echo "login:"
    echo "  host: 127.0.0.1"
    echo "  port: $HP_H_LOGIN_PORT"
    echo "  user: $HP_H_USER"
    echo "  jump: [\"$HP_H_USER@127.0.0.1:$HP_H_BASTION_PORT\"]"
    echo "network:"
    echo "  login: none"
    echo "  compute: none"
    echo "filesystems:"
    echo "  scratch: \$HOME/.$TAG"
}

# wf_walltime FILE: a workflow whose task runs into its 1-minute walltime
wf_walltime() {
    cat > "$1" <<'EOF'
name: to
tasks:
  slow:
    command: [sleep, "300"]
    resources: {walltime: 1m}
EOF
}

# wf_reject FILE: a -> b, each with an output (for a scheduler that refuses a)
wf_reject() {
    cat > "$1" <<'EOF'
name: rej
tasks:
  a:
    command: [sh, -c, 'echo a > a.out']
    outputs: [a.out]
  b:
    after: [a]
    command: [sh, -c, 'cat a.out > b.out']
    outputs: [b.out]
EOF
}

# the last check: no hpcport command wrote a sanitizer report
check_sanitizers() {
    local reports f
    reports=$(ls "$T"/sanitizer* 2>/dev/null)
    check "no sanitizer reports from any hpcport command" test -z "$reports"
    for f in $reports; do sed 's/^/# /' "$f" | head -20; done
}
