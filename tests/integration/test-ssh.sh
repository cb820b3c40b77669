#!/bin/bash
# test-ssh.sh - the SSH transport through the real binary against the test
# harness's sshd (tests/harness): host keys (unknown, trusted, changed,
# accept-new), ProxyJump through the bastion, auth failures, keyboard-
# interactive MFA with a real TOTP from otp_command, the connection master
# (reuse without a second login, reconnect, MFA needed again), exec status
# and streams, hostile arguments and file names, SFTP put/get of trees with
# checksums, a transfer resumed after sshd is killed, a bastion that is down,
# tunnels (hp_conn_tunnel directly and through the master, connect
# --forward), and the first hop through HTTP CONNECT and SOCKS5 proxies.
#
# Needs the harness: run under tests/harness/with-services.sh, or source a
# running harness's env.sh. Without HP_HARNESS_DIR it fails (it does not skip).
# It stops and restarts the harness's sshd: run it alone.
PROBE=${HP_TUNNEL_PROBE:-${1:-}}
. "$(dirname "$0")/tap.sh"

if [ -z "${HP_HARNESS_DIR:-}" ] || [ ! -f "$HP_HARNESS_DIR/env.sh" ]; then
    fail "HP_HARNESS_DIR is not set (or has no env.sh): run under tests/harness/with-services.sh"
    done_testing
    exit 1
fi
# shellcheck disable=SC1091
. "$HP_HARNESS_DIR/env.sh"
D=$HP_HARNESS_DIR

# hermetic: our own HOME (no ~/.ssh), no agent, masters in $T/run
export HOME=$T/home XDG_RUNTIME_DIR=$T/run
mkdir -p "$HOME" "$XDG_RUNTIME_DIR" "$XDG_CONFIG_HOME/hpcport/sites"
chmod 700 "$XDG_RUNTIME_DIR"
unset SSH_AUTH_SOCK HPCPORT_PROXY HPCPORT_ASKPASS HPCPORT_NO_MASTER
KH=$XDG_CONFIG_HOME/hpcport/known_hosts
R=$HP_H_SCRATCH/ssh-test.$$          # remote working directory (same machine)
PIDS=

cleanup() {
    "$HP" disconnect mfa >/dev/null 2>&1
    "$HP" disconnect mfatty >/dev/null 2>&1
    "$HP" disconnect login >/dev/null 2>&1
    "$HP" disconnect fwd >/dev/null 2>&1
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    rm -rf "$R" "$T"
}
trap cleanup EXIT

tree() { local c; echo "$1"; for c in $(pgrep -P "$1"); do tree "$c"; done; }
# kill a process and its descendants at once: stopped first, so that none of
# them sees another die and carries on (a shell that prints and exits 0)
kill_tree() { local all; all=$(tree "$1"); kill -STOP $all 2>/dev/null; kill -9 $all 2>/dev/null; }
port_of() { case $1 in bastion) echo "$HP_H_BASTION_PORT";; login) echo "$HP_H_LOGIN_PORT";; mfa) echo "$HP_H_MFA_PORT";; esac; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
stop_sshd() { # ROLE: the daemon and every session it serves
    kill_tree "$(cat "$D/$1/sshd.pid")"
    local i; for i in $(seq 50); do listening "$(port_of "$1")" || return 0; sleep 0.1; done
}
start_sshd() { # ROLE: again, as start.sh ran it
    local bin=/usr/sbin/sshd i
    [ "$1" = mfa ] && bin=$D/mfa/$(cat "$D/mfa/pam-service")
    env HP_H_TAG="$D" "$bin" -f "$D/$1/sshd_config" -E "$D/$1/sshd.log"
    for i in $(seq 50); do listening "$(port_of "$1")" && return 0; sleep 0.1; done
    return 1
}
accepted() { grep -c '^Accepted [a-z/-]* for ' "$D/$1/sshd.log"; }   # logins, not key checks
fp() { ssh-keygen -lf "$D/$1/ssh_host_ed25519_key.pub" | cut -d' ' -f2; }

# ssh configuration: the harness's hosts, with known_hosts of our own (empty)
cfg_host() { # NAME PORT [extra lines]
    local name=$1 port=$2; shift 2
    printf 'Host %s\n    HostName 127.0.0.1\n    Port %s\n    User %s\n    IdentityFile %s\n' \
        "$name" "$port" "$HP_H_USER" "$HP_H_KEY"
    printf '    IdentitiesOnly yes\n    UserKnownHostsFile %s/known_hosts\n' "$T"
    for l in "$@"; do printf '    %s\n' "$l"; done
}
ssh-keygen -q -t ed25519 -N '' -f "$T/otherkey"
{
    echo "# test-ssh.sh"
    cfg_host hp-bastion "$HP_H_BASTION_PORT"
    cfg_host hp-login "$HP_H_LOGIN_PORT" "ProxyJump hp-bastion" "ServerAliveInterval 5"
    cfg_host hp-direct "$HP_H_LOGIN_PORT"
    cfg_host hp-mfa "$HP_H_MFA_PORT"
    cfg_host hp-acc "$HP_H_MFA_PORT" "StrictHostKeyChecking accept-new"
    cfg_host hp-ka "$HP_H_LOGIN_PORT" "ServerAliveInterval 1" "ServerAliveCountMax 2"
    printf 'Host hp-agent\n    HostName 127.0.0.1\n    Port %s\n    User %s\n    UserKnownHostsFile %s/known_hosts\n' \
        "$HP_H_LOGIN_PORT" "$HP_H_USER" "$T"
    cfg_host hp-enc "$HP_H_LOGIN_PORT" | sed "s|IdentityFile .*|IdentityFile $T/enckey|"
    printf 'Host hp-hashed\n    HostName 127.0.0.1\n    Port %s\n    User %s\n    IdentityFile %s\n    UserKnownHostsFile %s/hashed_known_hosts\n' \
        "$HP_H_LOGIN_PORT" "$HP_H_USER" "$HP_H_KEY" "$T"
    printf 'Host hp-wrong\n    HostName 127.0.0.1\n    Port %s\n    User %s\n' "$HP_H_LOGIN_PORT" "$HP_H_USER"
    printf '    IdentityFile %s\n    IdentitiesOnly yes\n    UserKnownHostsFile %s/known_hosts\n' "$T/otherkey" "$T"
    printf 'Host 127.0.0.1\n    User %s\n    IdentityFile %s\n    UserKnownHostsFile %s/known_hosts\n' \
        "$HP_H_USER" "$HP_H_KEY" "$T"
} > "$T/ssh_config"
: > "$T/known_hosts"
export HPCPORT_SSH_CONFIG=$T/ssh_config

# OTP commands: the harness's, counting its runs; and a wrong one
cat > "$T/otp" <<EOF
#!/bin/sh
echo run >> "$T/otp.count"
exec "$HP_H_OTP_COMMAND"
EOF
chmod 700 "$T/otp"
otp_runs() { wc -l < "$T/otp.count" 2>/dev/null || echo 0; }

site() { # NAME then YAML lines for login:
    local n=$1; shift
    { echo "name: $n"; echo "scheduler: {type: slurm}"; echo "login:"
      for l in "$@"; do echo "  $l"; done; } > "$XDG_CONFIG_HOME/hpcport/sites/$n.yaml"
}
site login "host: hp-login"
site direct "host: hp-direct"
site jumped "host: 127.0.0.1" "port: $HP_H_LOGIN_PORT" "jump: ['$HP_H_USER@127.0.0.1:$HP_H_BASTION_PORT']"
site mfa "host: hp-mfa" "otp_command: $T/otp"
site acc "host: hp-acc" "otp_command: $T/otp"
site mfabad "host: hp-mfa" "otp_command: echo 000000"
site mfatty "host: hp-mfa"
site wrong "host: hp-wrong"
site fwd "host: hp-direct"
site ka "host: hp-ka"
site chain "host: hp-direct" "jump: [hp-bastion, hp-bastion, hp-bastion]"
site agent "host: hp-agent"
site enc "host: hp-enc"
site hashed "host: hp-hashed"

# ------------------------------------------------------------ host keys
expect_rc 4 "unknown host key stops the connection" "$HP" ssh login -- true
check "... with the key type and SHA256 fingerprint of the first hop" contains "$ERR" "ssh-ed25519 $(fp bastion)"
check "... and the command that trusts it" contains "$ERR" "hpcport site trust login"
check "... and nothing was added" test ! -s "$KH"

expect_rc 4 "site trust without a terminal asks for --yes" "$HP" site trust login
check "... saying so" contains "$ERR" "--yes"
check "... and trusts nothing" test ! -s "$KH"

expect_rc 0 "site trust --yes" "$HP" site trust login --yes
check "... shows the bastion's fingerprint" contains "$OUT" "jump host hp-bastion: [127.0.0.1]:$HP_H_BASTION_PORT ssh-ed25519 $(fp bastion) (added"
check "... and the login host's" contains "$OUT" "login host hp-login: [127.0.0.1]:$HP_H_LOGIN_PORT ssh-ed25519 $(fp login) (added"
check "... into hpcport's known_hosts, mode 0600" test "$(stat -c %a "$KH")" = 600
check "... as [host]:port lines" grep -q "^\[127.0.0.1\]:$HP_H_LOGIN_PORT ssh-ed25519 " "$KH"
expect_rc 0 "site trust again: both known" "$HP" site trust login
check "... and says where" contains "$OUT" "(known: $KH:2)"

# ------------------------------------------------------------ exec through the bastion
b0=$(accepted bastion)
expect_rc 0 "exec through ProxyJump (ssh config alias)" "$HP" ssh login -- echo hello
check "... prints the output" test "$OUT" = hello
check "... crossed the bastion" test "$(accepted bastion)" -gt "$b0"
expect_rc 0 "exec through login.jump of the profile" "$HP" ssh jumped -- hostname
expect_rc 7 "exit status comes back" "$HP" ssh login -- sh -c 'echo out; echo err >&2; exit 7'
check "... stdout alone on stdout" test "$OUT" = out
check "... stderr alone on stderr" test "$ERR" = err
expect_rc 143 "death by a signal is 128+N" "$HP" ssh login -- sh -c 'kill -TERM $$'
expect_rc 127 "a missing program is 127" "$HP" ssh login -- no-such-program-hpcport
expect_rc 0 "--stdin feeds the command" sh -c "printf 'a\nb\n' | '$HP' ssh --stdin login -- wc -l"
check "... all of it" test "$(echo $OUT)" = 2
expect_rc 4 "--timeout ends a command" "$HP" ssh --timeout 2 login -- sleep 30
check "... and says so" contains "$ERR" "timed out"

hostile=('a b' "it's" '"dq"' '$(touch pwned)' '`id`' 'x
y' 'back\slash' '*' '-n' '' ';semi' 'ünï')
"$HP" ssh login -- printf '%s\0' "${hostile[@]}" > "$T/remote.args"
printf '%s\0' "${hostile[@]}" > "$T/local.args"
check "hostile arguments arrive literally" cmp -s "$T/remote.args" "$T/local.args"
check "... nothing was executed" test ! -e "$HP_H_USER_HOME/pwned"

# ------------------------------------------------------------ SFTP
mkdir -p "$T/tree/sub/deeper" "$T/tree/empty dir"
for n in "${hostile[@]}"; do
    [ -n "$n" ] && [ "$n" != "*" ] && [ "$n" != "-n" ] || continue
    printf 'content of %s\n' "$n" > "$T/tree/$n"
done
head -c 3000000 /dev/urandom > "$T/tree/sub/deeper/mid.bin"
head -c 1500000 /dev/urandom > "$T/tree/sub/over-small-limit.bin"
: > "$T/tree/sub/zero"
printf 'x' > "$T/tree/sub/one"
chmod 755 "$T/tree/sub/one"
expect_rc 0 "cp -r a tree with hostile names to the site" "$HP" cp -r "$T/tree" "login:$R/tree"
(cd "$T/tree" && find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$T/sums.local"
(cd "$R/tree" && find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$T/sums.remote"
check "... every file arrived intact (sha256)" cmp -s "$T/sums.local" "$T/sums.remote"
check "... empty directories too" test -d "$R/tree/empty dir"
check "... no partial files left" test -z "$(find "$R" -name '*.hpcport-part')"
check "... modes follow the source" test "$(stat -c %a "$R/tree/sub/one")" = 755
check "... owned by the site user" test "$(stat -c %U "$R/tree/sub/one")" = "$HP_H_USER"
expect_rc 0 "cp -r the tree back" "$HP" cp -r "login:$R/tree" "$T/back"
check "... identical" diff -r "$T/tree" "$T/back"
expect_rc 0 "cp a file into a remote directory (trailing /)" "$HP" cp "$T/tree/sub/one" "login:$R/"
check "... under its own name" test -f "$R/one"
expect_rc 0 "cp over an existing remote file" "$HP" cp "$T/tree/sub/deeper/mid.bin" "login:$R/one"
check "... replaced it" cmp -s "$T/tree/sub/deeper/mid.bin" "$R/one"
expect_rc 0 "cp a file from the site into a local directory" "$HP" cp "login:$R/one" "$T/"
check "... under its own name" cmp -s "$T/one" "$R/one"
expect_rc 8 "cp of a missing remote file" "$HP" cp "login:$R/nope" "$T/nope"
check "... names it" contains "$ERR" "$R/nope"
expect_rc 2 "cp of a directory without -r" "$HP" cp "$T/tree" "login:$R/x"
expect_rc 2 "cp with two local paths" "$HP" cp "$T/a" "$T/b"

b0=$(accepted bastion)
expect_rc 0 "a chain of three jump hosts" "$HP" cp "$T/tree/sub/deeper/mid.bin" "chain:$R/chain.bin"
check "... logged in to each" test "$(accepted bastion)" = $((b0 + 3))
check "... and the copy arrived" cmp -s "$T/tree/sub/deeper/mid.bin" "$R/chain.bin"

# ------------------------------------------------------------ host key changes
cp "$KH" "$T/kh.good"
sed -i "2s|.*|[127.0.0.1]:$HP_H_LOGIN_PORT $(cut -d' ' -f1,2 "$D/mfa/ssh_host_ed25519_key.pub")|" "$KH"
expect_rc 4 "a changed host key is a hard error" "$HP" ssh login -- true
check "... REMOTE HOST KEY HAS CHANGED" contains "$ERR" "REMOTE HOST KEY HAS CHANGED"
check "... naming the file and line" contains "$ERR" "$KH:2"
expect_rc 4 "site trust --yes does not override a changed key" "$HP" site trust login --yes
cp "$T/kh.good" "$KH"

# ------------------------------------------------------------ auth failures
expect_rc 0 "trust the direct login host" "$HP" site trust direct --yes
expect_rc 4 "a key the server refuses" "$HP" ssh wrong -- true
check "... authentication failed" contains "$ERR" "authentication to $HP_H_USER@127.0.0.1 port $HP_H_LOGIN_PORT"
check "... says what was tried" contains "$ERR" "tried: publickey"

# ssh-agent (no key files in our HOME, none configured)
eval "$(ssh-agent -s)" >/dev/null
PIDS="$PIDS $SSH_AGENT_PID"
expect_rc 4 "no agent key yet: authentication fails" "$HP" ssh agent -- true
ssh-add -q "$HP_H_KEY" 2>/dev/null
expect_rc 0 "a key from ssh-agent" "$HP" ssh agent -- echo agent-ok
check "... works" test "$OUT" = agent-ok
ssh-agent -k >/dev/null 2>&1
unset SSH_AUTH_SOCK SSH_AGENT_PID

# an encrypted key file (no .pub beside it): the passphrase is asked
cp "$HP_H_KEY" "$T/enckey"
ssh-keygen -q -p -P '' -N 'sekrit pass' -f "$T/enckey" >/dev/null
printf '#!/bin/sh\necho "$1" >> "%s/askpass.log"\necho "sekrit pass"\n' "$T" > "$T/askpass-key"
printf '#!/bin/sh\necho wrong\n' > "$T/askpass-wrong"
chmod 700 "$T/askpass-key" "$T/askpass-wrong"
expect_rc 0 "an encrypted key with its passphrase from HPCPORT_ASKPASS" \
    env HPCPORT_ASKPASS="$T/askpass-key" "$HP" ssh enc -- echo enc-ok
check "... was asked for the key by name" grep -q "passphrase for key '$T/enckey'" "$T/askpass.log"
expect_rc 4 "a wrong passphrase" env HPCPORT_ASKPASS="$T/askpass-wrong" "$HP" ssh enc -- true
check "... says so" contains "$ERR" "wrong passphrase for key '$T/enckey'"
expect_rc 4 "an encrypted key and nobody to ask" "$HP" ssh enc -- true
check "... says the key is encrypted" contains "$ERR" "key '$T/enckey' is encrypted"

# hashed known_hosts entries (ssh-keygen -H) in the user's file
cp "$HP_H_KNOWN_HOSTS" "$T/hashed_known_hosts"
ssh-keygen -q -H -f "$T/hashed_known_hosts" >/dev/null 2>&1
rm -f "$T/hashed_known_hosts.old"
mv "$KH" "$T/kh.aside"
expect_rc 0 "a hashed known_hosts entry is recognised" "$HP" ssh hashed -- true
check "... (the file is hashed)" grep -q '^|1|' "$T/hashed_known_hosts"
mv "$T/kh.aside" "$KH"

# ------------------------------------------------------------ MFA
expect_rc 0 "accept-new adds an unknown key and connects (MFA via otp_command)" "$HP" ssh acc -- echo mfa-ok
check "... with a warning" contains "$ERR" "added the unknown ssh-ed25519 host key $(fp mfa)"
check "... ran the command" test "$OUT" = mfa-ok
check "... the key is in hpcport's known_hosts" grep -q "^\[127.0.0.1\]:$HP_H_MFA_PORT " "$KH"
m0=$(accepted mfa); o0=$(otp_runs)
expect_rc 0 "keyboard-interactive MFA answered by otp_command" "$HP" ssh mfa -- echo mfa
check "... one login" test "$(accepted mfa)" = $((m0 + 1))
check "... one OTP" test "$(otp_runs)" = $((o0 + 1))
expect_rc 4 "a wrong one-time code fails cleanly" "$HP" ssh mfabad -- true
check "... saying the code was refused" contains "$ERR" "one-time code from login.otp_command was refused"
site mfabad "host: hp-mfa" "otp_command: exit 3"
expect_rc 4 "a failing otp_command" "$HP" ssh mfabad -- true
check "... is named" contains "$ERR" "login.otp_command 'exit 3' exited with status 3"
expect_rc 4 "MFA without a terminal and no otp_command" "$HP" ssh mfatty -- true
check "... says how to answer" contains "$ERR" "HPCPORT_ASKPASS"

# ------------------------------------------------------------ connection master
m0=$(accepted mfa); o0=$(otp_runs)
expect_rc 0 "connect authenticates once" "$HP" connect mfa
check "... says connected" contains "$OUT" "connected to site 'mfa'"
for i in 1 2 3; do "$HP" ssh mfa -- echo "reuse $i" >> "$T/reuse.out" 2>&1; done
check "later commands run through the master" test "$(cat "$T/reuse.out")" = "$(printf 'reuse 1\nreuse 2\nreuse 3')"
expect_rc 0 "cp through the master" "$HP" cp "$T/tree/sub/deeper/mid.bin" "mfa:$R/via-master.bin"
check "... arrived" cmp -s "$T/tree/sub/deeper/mid.bin" "$R/via-master.bin"
check "... and sshd saw one login only" test "$(accepted mfa)" = $((m0 + 1))
check "... and one OTP only" test "$(otp_runs)" = $((o0 + 1))
expect_rc 0 "connect again: already connected" "$HP" connect mfa
check "... says so" contains "$OUT" "already connected"
expect_rc 0 "connect --status" "$HP" connect mfa --status
check "... up" contains "$OUT" "state       up"
expect_rc 0 "connect --list --json" "$HP" connect --list --json
check "... lists the master" contains "$OUT" '"site": "mfa"'
sock=$(ls "$XDG_RUNTIME_DIR"/hpcport/mfa-*.sock)
check "control socket is 0600 in a 0700 directory" \
    test "$(stat -c %a "$sock")/$(stat -c %a "$XDG_RUNTIME_DIR/hpcport")" = 600/700
# the session dies: the master logs in again by itself (otp_command runs)
kill_tree_sessions() { # ROLE: every session of that sshd, not the daemon
    local c all=
    for c in $(pgrep -P "$(cat "$D/$1/sshd.pid")"); do all="$all $(tree "$c")"; done
    [ -n "$all" ] && { kill -STOP $all 2>/dev/null; kill -9 $all 2>/dev/null; }
    return 0
}
kill_tree_sessions mfa
sleep 0.3
expect_rc 0 "after the session was killed the master reconnects" "$HP" ssh mfa -- echo back
check "... and works" test "$OUT" = back
expect_rc 0 "... status counts the reconnect" "$HP" connect mfa --status --json
check "... reconnects 1" contains "$OUT" '"reconnects": 1'
expect_rc 0 "disconnect" "$HP" disconnect mfa
expect_rc 8 "connect --status when not connected" "$HP" connect mfa --status
check "... the socket is gone" test ! -e "$sock"
expect_rc 0 "disconnect when not connected is fine" "$HP" disconnect mfa

# the one-time password typed at the terminal (a pseudo-terminal from script(1))
code=$("$T/otp")
(sleep 1; echo "$code") | script -qec "'$HP' ssh mfatty -- echo tty-ok" /dev/null > "$T/tty.out" 2>&1
check "MFA typed at the terminal" grep -q "tty-ok" "$T/tty.out"
check "... after a prompt naming the host" grep -q "login host hp-mfa)) One-time password" "$T/tty.out"
check "... without echoing the code" sh -c "! grep -q '$code' '$T/tty.out'"
code=$("$T/otp")
(sleep 1; echo "$code") | script -qec "'$HP' connect mfatty" /dev/null > "$T/tty2.out" 2>&1
check "connect with the code typed once at the terminal" grep -q "connected to site 'mfatty'" "$T/tty2.out"
m0=$(accepted mfa)
expect_rc 0 "... then commands need no code" "$HP" ssh mfatty -- echo no-code
check "... and no login" test "$(accepted mfa)" = "$m0"
"$HP" disconnect mfatty >/dev/null

# MFA needed again and nobody to ask: clients are told to connect again
cat > "$T/askpass" <<EOF
#!/bin/sh
exec "$T/otp"
EOF
chmod 700 "$T/askpass"
expect_rc 0 "connect with the OTP typed (HPCPORT_ASKPASS)" env HPCPORT_ASKPASS="$T/askpass" "$HP" connect mfatty
expect_rc 0 "... used" "$HP" ssh mfatty -- true
kill_tree_sessions mfa
sleep 0.3
expect_rc 4 "the master cannot log in again without asking" "$HP" ssh mfatty -- true
check "... and says to run hpcport connect" contains "$ERR" "run 'hpcport connect mfatty'"
expect_rc 4 "... connect --status says down" "$HP" connect mfatty --status
expect_rc 0 "connect replaces the master that is down" env HPCPORT_ASKPASS="$T/askpass" "$HP" connect mfatty
expect_rc 0 "... which works" "$HP" ssh mfatty -- true
"$HP" disconnect mfatty >/dev/null

# several clients at once through one master
"$HP" connect login >/dev/null
for i in 1 2 3 4 5 6; do
    ( "$HP" ssh login -- sh -c "sleep 0.$i; echo par $i" > "$T/par.$i" 2>&1 ) &
done
"$HP" cp -r "$T/tree" "login:$R/par-tree" > "$T/par.cp" 2>&1 &
cp_pid=$!
wait
check "parallel commands through one master all work" \
    test "$(cat "$T"/par.[1-6] | sort | tr '\n' ' ')" = "par 1 par 2 par 3 par 4 par 5 par 6 "
check "... with a tree copy at the same time" diff -r "$T/tree" "$R/par-tree"
"$HP" disconnect login >/dev/null
expect_rc 0 "connect --idle 2s" "$HP" connect direct --idle 2s
sleep 4
expect_rc 8 "... the master is gone after its idle time" "$HP" connect direct --status

# ------------------------------------------------------------ tunnels
expect_rc 0 "hp_conn_tunnel over a direct connection" "$PROBE" login 127.0.0.1 "$HP_H_BASTION_PORT"
check "... reaches the far end" contains "$OUT" "SSH-2.0-OpenSSH"
check "... over ssh" contains "$ERR" "transport: ssh"
"$HP" connect login >/dev/null
expect_rc 0 "hp_conn_tunnel through the master (descriptor passing)" "$PROBE" login 127.0.0.1 "$HP_H_MFA_PORT"
check "... reaches the far end" contains "$OUT" "SSH-2.0-OpenSSH"
check "... through the master" contains "$ERR" "transport: master"
"$HP" disconnect login >/dev/null
fport=$((HP_H_LOGIN_PORT + 7))
while listening "$fport"; do fport=$((fport + 1)); done
expect_rc 0 "connect --forward" "$HP" connect fwd --forward "$fport:127.0.0.1:$HP_H_BASTION_PORT"
banner=$(timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$fport; head -1 <&3")
check "... forwards a local port" contains "$banner" "SSH-2.0-OpenSSH"
"$HP" disconnect fwd >/dev/null

# ------------------------------------------------------------ proxies for the first hop
python3 "$SRC/tests/integration/ssh/proxy.py" "$T/proxy.port" "$T/proxy.log" &
PIDS="$PIDS $!"
for i in $(seq 50); do [ -s "$T/proxy.port" ] && break; sleep 0.1; done
pp=$(cat "$T/proxy.port")
expect_rc 0 "first hop through an HTTP CONNECT proxy" env HPCPORT_PROXY="http://127.0.0.1:$pp" "$HP" ssh direct -- echo via-http
check "... went through it" grep -q "^http 127.0.0.1 $HP_H_LOGIN_PORT\$" "$T/proxy.log"
expect_rc 0 "first hop through a SOCKS5 proxy (then the bastion)" env HPCPORT_PROXY="socks5://127.0.0.1:$pp" "$HP" ssh login -- echo via-socks
check "... went through it to the bastion" grep -q "^socks5 127.0.0.1 $HP_H_BASTION_PORT\$" "$T/proxy.log"
expect_rc 4 "a proxy that is not there" env HPCPORT_PROXY="http://127.0.0.1:1" "$HP" ssh direct -- true
check "... is named" contains "$ERR" "proxy http://127.0.0.1:1"

# ------------------------------------------------------------ faults: sshd killed mid-transfer, bastion down
head -c 400000000 /dev/urandom > "$T/big"
"$HP" cp "$T/big" "direct:$R/big" > "$T/cp1.out" 2>&1 &
cp_pid=$!
part="$R/.big.hpcport-part"
for i in $(seq 300); do
    s=$(stat -c %s "$part" 2>/dev/null || echo 0)
    [ "$s" -gt 50000000 ] && break
    sleep 0.05
done
stop_sshd login
wait "$cp_pid"; cp_rc=$?
check "a transfer whose sshd dies fails" test "$cp_rc" = 4
check "... saying the connection was lost" grep -q "connection to site 'direct' was lost" "$T/cp1.out"
check "... leaving a partial file, not the file" test -s "$part" -a ! -e "$R/big"
check "restart the login sshd" start_sshd login
expect_rc 0 "rerunning the copy completes it" "$HP" cp "$T/big" "direct:$R/big"
check "... the file is identical" cmp -s "$T/big" "$R/big"
check "... and the partial file is gone" test ! -e "$part"
expect_rc 0 "get of the big file" "$HP" cp "direct:$R/big" "$T/big.back"
check "... identical" cmp -s "$T/big" "$T/big.back"
rm -f "$T/big" "$T/big.back" "$R/big"

# the session dies while a command runs: rerun only when it may run twice
"$HP" ssh direct -- sh -c 'sleep 3; echo finished' > "$T/st1.out" 2>&1 &
p1=$!
"$HP" ssh --idempotent direct -- sh -c 'sleep 3; echo finished' > "$T/st2.out" 2>&1 &
p2=$!
for i in $(seq 100); do    # both commands run on the site
    [ "$(pgrep -u "$HP_H_USER" -fx 'sleep 3' | wc -l)" -ge 2 ] && break
    sleep 0.05
done
kill_tree_sessions login
wait "$p1"; r1=$?
wait "$p2"; r2=$?
check "a command cut off by a dropped connection fails" test "$r1" = 4
check "... saying it may or may not have completed" grep -q "may or may not have completed" "$T/st1.out"
check "an --idempotent command is run again and completes" test "$r2" = 0
check "... with its output" grep -q '^finished$' "$T/st2.out" || sed 's/^/# /' "$T/st2.out"

# the session dies in the middle of a copy, sshd stays up: the same copy
# connects again and resumes
head -c 300000000 /dev/urandom > "$T/big"
"$HP" cp "$T/big" "direct:$R/big2" > "$T/cp2.out" 2>&1 &
cp_pid=$!
for i in $(seq 300); do
    s=$(stat -c %s "$R/.big2.hpcport-part" 2>/dev/null || echo 0)
    [ "$s" -gt 50000000 ] && break
    sleep 0.05
done
kill_tree_sessions login
wait "$cp_pid"; cp_rc=$?
check "a copy whose session is killed reconnects and finishes" test "$cp_rc" = 0
check "... the file is identical" cmp -s "$T/big" "$R/big2"
rm -f "$T/big" "$R/big2"

# keepalives: a server that stops answering is noticed
"$HP" ssh ka -- sleep 30 > "$T/ka.out" 2>&1 &
ka_pid=$!
sleep 1.5
sess=$(pgrep -P "$(cat "$D/login/sshd.pid")")
for p in $sess; do kill -STOP "$p" $(pgrep -P "$p"); done
t0=$SECONDS
wait "$ka_pid"; ka_rc=$?
for p in $sess; do kill -CONT "$p" $(pgrep -P "$p") 2>/dev/null; kill_tree "$p"; done
check "a silent server is dropped after ServerAliveInterval x ServerAliveCountMax" test "$ka_rc" = 4
check "... within seconds" test $((SECONDS - t0)) -lt 15
check "... saying so" grep -q "no answer for 2 s" "$T/ka.out"

stop_sshd bastion
expect_rc 4 "bastion down: a clear error" "$HP" ssh login -- true
check "... naming the jump host" contains "$ERR" "cannot connect to jump host hp-bastion at 127.0.0.1 port $HP_H_BASTION_PORT"
check "restart the bastion" start_sshd bastion
expect_rc 0 "... and then it works again" "$HP" ssh login -- true

# ------------------------------------------------------------ local site
expect_rc 0 "ssh on the local site runs here" "$HP" ssh local -- sh -c 'echo $$ >/dev/null; echo local-ok'
check "... output" test "$OUT" = local-ok
expect_rc 0 "cp -r to the local site" "$HP" cp -r "$T/tree" "local:$T/local-copy"
check "... identical" diff -r "$T/tree" "$T/local-copy"
expect_rc 4 "connect to the local site is refused" "$HP" connect local

done_testing
