#!/bin/bash
# The test harness itself (tests/harness/), checked with OpenSSH's own client
# and Slurm's own commands: ProxyJump through the bastion with strict host key
# checking, MFA with a real TOTP (right and wrong code), sbatch / squeue /
# scontrol / sacct / scancel on the login node over ssh.
# Needs the services: run it under tests/harness/with-services.sh (or source
# a harness's env.sh); without HP_HARNESS_DIR it fails, it does not skip.
. "$(dirname "$0")/tap.sh"

if [ -z "${HP_HARNESS_DIR:-}" ] || [ ! -r "$HP_HARNESS_DIR/env.sh" ]; then
    fail "HP_HARNESS_DIR is not set or has no env.sh: run the tests through" \
         "tests/harness/with-services.sh (e.g. 'sh tools/test.sh'), or start" \
         "tests/harness/start.sh DIR and export HP_HARNESS_DIR=DIR"
    done_testing; exit 1
fi
. "$HP_HARNESS_DIR/env.sh"

SSH=(ssh -F "$HP_H_SSH_CONFIG" -o ConnectTimeout=10 -o ServerAliveInterval=5)
# over ssh, on the login node (through the bastion)
on_login() { "${SSH[@]}" -o BatchMode=yes hp-login "$@"; }
# wait_for SECONDS COMMAND...: poll until COMMAND succeeds
wait_for() {
    local end=$((SECONDS + $1)); shift
    until "$@"; do [ "$SECONDS" -ge "$end" ] && return 1; sleep 0.3; done
}
accepted() { grep -c '^Accepted publickey' "$HP_HARNESS_DIR/$1/sshd.log"; }

# --- the environment
for v in HP_H_BASTION_PORT HP_H_LOGIN_PORT HP_H_MFA_PORT HP_H_USER HP_H_KEY HP_H_KNOWN_HOSTS \
         HP_H_OATH_SECRET HP_H_SSH_CONFIG SLURM_CONF; do
    check "env.sh sets $v" test -n "${!v:-}"
done
check "known_hosts names the three sshd by [127.0.0.1]:port" \
    test "$(grep -cE "^\[127\.0\.0\.1\]:($HP_H_BASTION_PORT|$HP_H_LOGIN_PORT|$HP_H_MFA_PORT) ssh-ed25519 " \
           "$HP_H_KNOWN_HOSTS")" = 3

# --- bastion and login, strict host key checking against the harness's known_hosts
expect_rc 0 "bastion: key login" "${SSH[@]}" -o BatchMode=yes -o StrictHostKeyChecking=yes hp-bastion id -un
check "bastion: logged in as the test user" test "$OUT" = "$HP_H_USER"
before=$(accepted bastion)
expect_rc 0 "login node through the bastion (ProxyJump)" "${SSH[@]}" -o BatchMode=yes \
    -o StrictHostKeyChecking=yes hp-login 'id -un; echo "$SLURM_CONF"'
check "login: logged in as the test user" test "$(echo "$OUT" | head -1)" = "$HP_H_USER"
check "login: the session sees the cluster's SLURM_CONF" test "$(echo "$OUT" | sed -n 2p)" = "$SLURM_CONF"
check "the login went through the bastion" test "$(accepted bastion)" -gt "$before"
# the same without the config file, from the env.sh values alone
expect_rc 0 "two hops from the env.sh values alone (ProxyCommand ssh -W, no config)" ssh -F /dev/null -o BatchMode=yes \
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$HP_H_KNOWN_HOSTS" -o IdentitiesOnly=yes \
    -i "$HP_H_KEY" -o ProxyCommand="ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes \
-o UserKnownHostsFile=$HP_H_KNOWN_HOSTS -o IdentitiesOnly=yes -i $HP_H_KEY -p $HP_H_BASTION_PORT \
-W %h:%p $HP_H_USER@127.0.0.1" -p "$HP_H_LOGIN_PORT" "$HP_H_USER@127.0.0.1" true
: > "$T/empty_known_hosts"
expect_rc 255 "unknown host key is refused (StrictHostKeyChecking=yes)" "${SSH[@]}" -o BatchMode=yes \
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$T/empty_known_hosts" hp-bastion true
check "... with 'Host key verification failed'" contains "$ERR" "Host key verification failed"
# the same names with another key (the user's)
awk -v k="$(cut -d' ' -f2 "$HP_H_KEY.pub")" '{ $3 = k; print }' "$HP_H_KNOWN_HOSTS" > "$T/wrong_known_hosts"
expect_rc 255 "changed host key is refused" "${SSH[@]}" -o BatchMode=yes -o StrictHostKeyChecking=yes \
    -o UserKnownHostsFile="$T/wrong_known_hosts" hp-bastion true
check "... with 'HOST IDENTIFICATION HAS CHANGED'" contains "$ERR" "HOST IDENTIFICATION HAS CHANGED"
expect_rc 0 "login node: direct-tcpip tunnel (-W) to the login sshd" "${SSH[@]}" -o BatchMode=yes \
    -o ProxyCommand="ssh -F $HP_H_SSH_CONFIG -o BatchMode=yes hp-login -W 127.0.0.1:$HP_H_LOGIN_PORT" \
    hp-login-direct true

# --- MFA: key + keyboard-interactive TOTP
cat > "$T/otp-right" <<EOF
#!/bin/sh
exec "$HP_H_OTP_COMMAND"
EOF
# a code that is valid at no time step the server accepts (window 20)
valid=" $(oathtool --totp -w 60 -N "@$(( ($(date +%s) / 30 - 30) * 30 ))" "$HP_H_OATH_SECRET" | tr '\n' ' ')"
for wrong in 000000 111111 222222 333333 444444 555555; do contains "$valid" " $wrong " || break; done
printf '#!/bin/sh\necho %s\n' "$wrong" > "$T/otp-wrong"
chmod 0700 "$T/otp-right" "$T/otp-wrong"
mfa() { # ASKPASS COMMAND...
    local ask=$1; shift
    SSH_ASKPASS=$ask SSH_ASKPASS_REQUIRE=force DISPLAY=:0 \
        "${SSH[@]}" -o StrictHostKeyChecking=yes -o NumberOfPasswordPrompts=1 hp-mfa "$@" </dev/null
}
expect_rc 255 "MFA: the key alone is not enough" "${SSH[@]}" -o BatchMode=yes hp-mfa true
expect_rc 255 "MFA: a wrong TOTP is refused" mfa "$T/otp-wrong" true
check "... and the sshd logged the PAM failure" \
    grep -q "Failed keyboard-interactive/pam for $HP_H_USER" "$HP_HARNESS_DIR/mfa/sshd.log"
expect_rc 0 "MFA: key + right TOTP (oathtool) logs in" mfa "$T/otp-right" id -un
check "MFA: logged in as the test user" test "$OUT" = "$HP_H_USER"
expect_rc 0 "MFA: a second login at once (next time step's code)" mfa "$T/otp-right" true
code=$(oathtool --totp "$HP_H_OATH_SECRET")
printf '#!/bin/sh\necho %s\n' "$code" > "$T/otp-replay"; chmod 0700 "$T/otp-replay"
if grep -qF "$(printf '\t%s\t' "$code")" "$HP_HARNESS_DIR/mfa/users.oath"; then
    expect_rc 255 "MFA: a replayed TOTP is refused" mfa "$T/otp-replay" true
else   # the current step has not been used (the clock moved on): use, then replay
    mfa "$T/otp-replay" true >/dev/null 2>&1
    expect_rc 255 "MFA: a replayed TOTP is refused" mfa "$T/otp-replay" true
fi

# --- Slurm on the login node, as the test user
expect_rc 0 "sinfo over ssh" on_login "sinfo -h -o '%P %a %l'"
check "partitions debug (default, 30 min) and long (2 h)" \
    test "$(echo "$OUT" | tr '\n' ' ')" = "debug* up 30:00 long up 2:00:00 "
expect_rc 0 "sbatch --parsable --wrap 'echo hi'" \
    on_login "sbatch --parsable --chdir=$HP_H_SCRATCH -J hp-harness-hi --wrap 'echo hi; id -un'"
jid=$OUT
check "sbatch printed a job id ($jid)" test -n "$jid" -a -z "${jid//[0-9]/}"
job_state() { on_login "scontrol show job $1 -o" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
done_state() { case "$(job_state "$1")" in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) return 0;; esac; return 1; }
check "the job finishes within 60 s" wait_for 60 done_state "$jid"
check "the job COMPLETED" test "$(job_state "$jid")" = COMPLETED
expect_rc 0 "its output file is there" on_login "cat $HP_H_SCRATCH/slurm-$jid.out"
check "the output says hi" test "$(echo "$OUT" | head -1)" = hi
check "the job ran as the submitting user" test "$(echo "$OUT" | sed -n 2p)" = "$HP_H_USER"
sacct_state() { [ "$(on_login "sacct -n -X -P -o State -j $jid")" = COMPLETED ]; }
check "sacct reports it COMPLETED (slurmdbd accounting)" wait_for 30 sacct_state
expect_rc 0 "sacct --json works" on_login "sacct --json -j $jid"
check "sacct --json lists the job" contains "$OUT" "\"job_id\": $jid"
expect_rc 0 "squeue --json works" on_login "squeue --json"
expect_rc 1 "sbatch rejects an unknown partition" on_login "sbatch --parsable -p nosuch --wrap true"
check "... saying why" contains "$ERR" "invalid partition"
expect_rc 1 "sbatch rejects a walltime over the partition's limit" \
    on_login "sbatch --parsable -p debug -t 01:00:00 --wrap true"
expect_rc 1 "sbatch rejects an unknown account" on_login "sbatch --parsable -A nosuch --wrap true"

marker="300.$$"
expect_rc 0 "sbatch a 'sleep $marker' job" \
    on_login "sbatch --parsable --chdir=$HP_H_SCRATCH -J hp-harness-sleep --wrap 'sleep $marker'"
sid=$OUT
running() { [ "$(job_state "$sid")" = RUNNING ]; }
check "it is RUNNING within 60 s" wait_for 60 running
runs() { pgrep -u "$HP_H_USER" -f "sleep $marker" >/dev/null; }
check "its process runs as the test user" wait_for 10 runs
expect_rc 0 "scancel it over ssh" on_login "scancel $sid"
cancelled() { [ "$(job_state "$sid")" = CANCELLED ]; }
check "it is CANCELLED within 30 s" wait_for 30 cancelled
gone() { ! pgrep -u "$HP_H_USER" -f "sleep $marker" >/dev/null; }
check "its process is gone" wait_for 15 gone
sacct_cancelled() { on_login "sacct -n -X -P -o State -j $sid" | grep -q '^CANCELLED'; }
check "sacct reports it CANCELLED" wait_for 30 sacct_cancelled

# --- slurmrestd (JWT) and tinyproxy
for v in HP_H_SLURMRESTD_PORT HP_H_SLURMRESTD_URL HP_H_JWT_KEY HP_H_TINYPROXY_PORT HP_H_TINYPROXY_URL; do
    check "env.sh sets $v" test -n "${!v:-}"
done
check "the JWT key is root's, mode 0600" test "$(stat -c %U:%a "$HP_H_JWT_KEY")" = root:600
expect_rc 0 "scontrol token over ssh" on_login "scontrol token lifespan=300"
jwt=${OUT#SLURM_JWT=}
check "... prints SLURM_JWT=<a JWT>" contains "$OUT" "SLURM_JWT=eyJ"
rest() { # PATH [CURL ARGS...]: GET as the test user with the token; body in $OUT, code in $CODE
    local p=$1; shift
    OUT=$(curl -s -w '\n%{http_code}' -H "X-SLURM-USER-NAME: $HP_H_USER" -H "X-SLURM-USER-TOKEN: $jwt" \
          "$@" "$HP_H_SLURMRESTD_URL$p"); CODE=${OUT##*$'\n'}; OUT=${OUT%$'\n'*}
}
rest /slurm/v0.0.38/ping
check "slurmrestd answers a ping with the token (HTTP 200)" test "$CODE" = 200
check "... and the controller is UP" contains "$OUT" '"ping": "UP"'
code=$(curl -s -o /dev/null -w '%{http_code}' "$HP_H_SLURMRESTD_URL/slurm/v0.0.38/ping")
check "slurmrestd refuses a request without a token (HTTP 401)" test "$code" = 401
rest "/slurmdb/v0.0.38/user/$HP_H_USER"
check "slurmrestd's accounting endpoints work with the token" test "$CODE" = 200
jwt_good=$jwt; jwt="${jwt%?}x"; [ "$jwt" = "$jwt_good" ] && jwt="${jwt%?}y"
rest "/slurmdb/v0.0.38/user/$HP_H_USER"
check "a token with a wrong signature is refused" contains "$OUT" "Protocol authentication error"
jwt=$jwt_good
rest /slurm/v0.0.38/ping -x "$HP_H_TINYPROXY_URL"
check "slurmrestd through tinyproxy works" test "$CODE" = 200
rest /slurm/v0.0.38/ping -p -x "$HP_H_TINYPROXY_URL"
check "... also with CONNECT (a tunnel through the proxy)" test "$CODE" = 200
code=$(curl -s -o /dev/null -w '%{http_connect}' -p -x "$HP_H_TINYPROXY_URL" "http://127.0.0.1:$HP_H_MARIADB_PORT/")
check "tinyproxy refuses CONNECT to other ports" test "$code" = 403
check "slurmrestd runs as hpcport-rest" test "$(ps -o user= -p "$(cat "$HP_H_DIR/rest/slurmrestd.pid")")" = hpcport-rest

done_testing
