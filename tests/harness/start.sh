#!/bin/bash
# tests/harness/start.sh DIR - start the hpcport test services on loopback.
#
# Creates DIR (mode 0710, group hpcport-test) and starts, on 127.0.0.1 high
# ports chosen free now:
#   sshd "bastion"  publickey
#   sshd "login"    publickey, TCP forwarding, SLURM_CONF set for sessions
#   sshd "mfa"      publickey + keyboard-interactive TOTP (pam_oath)
#   munged          own key and socket
#   mariadbd + slurmdbd: accounting (sacct)
#   slurmctld + slurmd: one-node cluster "hpcport", partitions debug/long
#   slurmrestd: REST API, rest_auth/jwt (as user hpcport-rest)
#   tinyproxy: an HTTP proxy (CONNECT to the slurmrestd port allowed)
# and writes DIR/env.sh (shell variables for the tests; see README.md).
# Runs as root. Idempotent: on a DIR whose services all run it does nothing;
# on a DIR left by a crashed run it stops what is left and starts afresh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # also when run as `sh script`
set -euo pipefail
umask 022

HERE=$(cd "$(dirname "$0")" && pwd)
TUSER=hpcport-test
RUSER=hpcport-rest     # slurmrestd refuses root and SlurmUser
T0=$SECONDS

die() { echo "harness: $*" >&2; exit 1; }
log() { [ -n "${HP_HARNESS_QUIET:-}" ] || echo "harness: $*" >&2; }

[ $# = 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "must run as root (it starts sshd, munged, slurmctld, slurmd and adds a user)"
DIR=$(realpath -m -- "$1")
# DIR goes unquoted into sshd_config, slurm.conf and PAM: keep it plain
case "$DIR" in
    / | *[!A-Za-z0-9._/+-]*) die "DIR '$DIR' must be an absolute path made of [A-Za-z0-9._/+-], not /";;
esac
for t in /usr/sbin/sshd ssh-keygen munged slurmctld slurmd slurmdbd scontrol sacctmgr oathtool \
         mariadbd mariadb-install-db mariadb-admin runuser setsid timeout slurmrestd tinyproxy \
         curl setpriv; do
    command -v "$t" >/dev/null || die "missing $t: run 'sh tools/install-deps.sh --test'"
done
# pam_oath lives in the multiarch dir; look it up instead of hard-coding amd64
ls /usr/lib/*/slurm-wlm/auth_jwt.so >/dev/null 2>&1 ||
    die "missing auth_jwt.so (slurm-wlm-jwt-plugin): run 'sh tools/install-deps.sh --test'"
ls /lib/*/security/pam_oath.so /usr/lib/*/security/pam_oath.so >/dev/null 2>&1 ||
    die "missing pam_oath.so (libpam-oath): run 'sh tools/install-deps.sh --test'"

# ---------------------------------------------------------------- reuse / reset
if [ -f "$DIR/env.sh" ] && "$HERE/stop.sh" --check "$DIR" 2>/dev/null; then
    log "already running in $DIR"
    exit 0
fi
if [ -d "$DIR" ] && [ -n "$(ls -A "$DIR")" ]; then
    [ -e "$DIR/.hpcport-harness" ] || die "$DIR exists, is not empty and is not a harness dir; refusing to touch it"
    "$HERE/stop.sh" "$DIR" >/dev/null 2>&1 || true
    find "$DIR" -mindepth 1 -delete 2>/dev/null || rm -rf "${DIR:?}"/* "$DIR"/.hpcport-harness
fi

# a start that fails stops what it started
started=
SLURM_JOB=
on_exit() {
    [ -n "$started" ] && [ -z "${HP_HARNESS_KEEP_FAILED:-}" ] || return 0
    set +e
    if [ -n "$SLURM_JOB" ]; then kill "$SLURM_JOB" 2>/dev/null; wait "$SLURM_JOB" 2>/dev/null; fi
    "$HERE/stop.sh" "$DIR" >/dev/null 2>&1
}
trap on_exit EXIT

# ---------------------------------------------------------------- test user
if ! id -u "$TUSER" >/dev/null 2>&1; then
    # a group of that name may be left from a half-done earlier attempt
    if getent group "$TUSER" >/dev/null; then grp=(--gid "$TUSER"); else grp=(--user-group); fi
    useradd --system "${grp[@]}" --create-home --home-dir "/home/$TUSER" --shell /bin/bash \
            --comment "hpcport test user" "$TUSER" ||
        id -u "$TUSER" >/dev/null 2>&1 || die "cannot create user $TUSER"
fi
# '*': no password, but not "locked" (sshd without PAM refuses locked accounts)
if [ "$(getent shadow "$TUSER" | cut -d: -f2)" != '*' ]; then usermod -p '*' "$TUSER"; fi
THOME=$(getent passwd "$TUSER" | cut -d: -f6)
[ -d "$THOME" ] || { mkdir -p "$THOME"; chown "$TUSER:" "$THOME"; chmod 0755 "$THOME"; }
TGROUP=$(id -gn "$TUSER")
# the user slurmrestd and tinyproxy run as: no login, may traverse DIR
if ! id -u "$RUSER" >/dev/null 2>&1; then
    if getent group "$RUSER" >/dev/null; then grp=(--gid "$RUSER"); else grp=(--user-group); fi
    useradd --system "${grp[@]}" --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
            --comment "hpcport test slurmrestd" "$RUSER" ||
        id -u "$RUSER" >/dev/null 2>&1 || die "cannot create user $RUSER"
fi
id -nG "$RUSER" | tr ' ' '\n' | grep -qxF "$TGROUP" || usermod -aG "$TGROUP" "$RUSER"

# ---------------------------------------------------------------- layout
started=1
mkdir -p "$DIR"
chown "root:$TGROUP" "$DIR"
chmod 0710 "$DIR"          # private; the test user may only traverse it
: > "$DIR/.hpcport-harness"
mkdir -p "$DIR/ssh" "$DIR/bastion" "$DIR/login" "$DIR/mfa" "$DIR/munge" \
         "$DIR/slurm/state" "$DIR/slurm/spool" "$DIR/scratch" "$DIR/rest" "$DIR/proxy"
chmod 0700 "$DIR/bastion" "$DIR/login" "$DIR/mfa" "$DIR/slurm/state" "$DIR/slurm/spool"
chmod 0755 "$DIR/ssh" "$DIR/munge" "$DIR/slurm"
chown "$TUSER:$TGROUP" "$DIR/scratch"; chmod 0700 "$DIR/scratch"
chown "$RUSER:" "$DIR/rest" "$DIR/proxy"; chmod 0700 "$DIR/rest" "$DIR/proxy"
# the HS256 key slurmctld and slurmdbd check JWTs with (root only, 0600)
dd if=/dev/urandom of="$DIR/slurm/jwt_hs256.key" bs=32 count=1 status=none
chmod 0600 "$DIR/slurm/jwt_hs256.key"
# the test user must reach DIR (slurm.conf, the munge socket, authorized_keys)
runuser -u "$TUSER" -- test -x "$DIR/." ||
    die "user $TUSER cannot reach $DIR: choose a DIR whose parents are world-searchable (e.g. under /tmp)"
mkdir -p -m 0755 /run/sshd

# ---------------------------------------------------------------- ports
# Ports below the ephemeral range, not in use by any TCP socket now; a daemon
# that still loses the race is restarted on another port.
declare -A TAKEN=()
scan_ports() {
    local f sl local rest
    for f in /proc/net/tcp /proc/net/tcp6; do
        [ -r "$f" ] || continue
        while read -r sl local rest; do
            [ "$sl" = sl ] && continue
            TAKEN[$((16#${local##*:}))]=1
        done < "$f"
    done
}
pick_port() { # VAR: sets VAR to a free port (not called in a subshell: TAKEN remembers)
    local p
    scan_ports
    while :; do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
        [ -z "${TAKEN[$p]:-}" ] && break
    done
    TAKEN[$p]=1
    printf -v "$1" %s "$p"
}
render() { # TEMPLATE OUT KEY=VALUE...
    local in=$1 out=$2 args=() kv; shift 2
    for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
    sed "${args[@]}" "$in" > "$out"
}

# ---------------------------------------------------------------- keys, OTP secret
ssh-keygen -q -t ed25519 -N '' -C "$TUSER@hpcport-harness" -f "$DIR/ssh/id_ed25519"
cp "$DIR/ssh/id_ed25519.pub" "$DIR/ssh/authorized_keys"
chmod 0644 "$DIR/ssh/authorized_keys"
for role in bastion login mfa; do
    ssh-keygen -q -t ed25519 -N '' -C "hpcport-harness-$role" -f "$DIR/$role/ssh_host_ed25519_key"
done
OATH_SECRET=$(od -An -tx1 -N20 /dev/urandom | tr -d ' \n')
printf 'HOTP/T30 %s - %s\n' "$TUSER" "$OATH_SECRET" > "$DIR/mfa/users.oath"
chmod 0600 "$DIR/mfa/users.oath"

# PAM service of the MFA sshd: sshd (OpenSSH 9.2, no PAMServiceName) uses the
# basename of its argv[0], so it runs as DIR/mfa/$PAM_SVC -> /usr/sbin/sshd.
# The name is unique per DIR so that two harnesses can run side by side.
PAM_SVC=hpcport-test-sshd-$(printf %s "$DIR" | md5sum | cut -c1-8)
# drop the stacks of harness directories that are gone (runs killed hard)
for f in /etc/pam.d/hpcport-test-sshd-*; do
    case "$f" in *.tmp) continue;; esac
    u=$(sed -n 's/.*usersfile=\([^ ]*\).*/\1/p' "$f" 2>/dev/null | head -1) || continue
    if [ -n "$u" ] && [ ! -d "$(dirname "$(dirname "$u")")" ]; then rm -f "$f"; fi
done
render "$HERE/pam-mfa.in" "/etc/pam.d/$PAM_SVC.tmp" DIR="$DIR"
mv -f "/etc/pam.d/$PAM_SVC.tmp" "/etc/pam.d/$PAM_SVC"
echo "$PAM_SVC" > "$DIR/mfa/pam-service"
ln -sfn /usr/sbin/sshd "$DIR/mfa/$PAM_SVC"

SLURM_CONF=$DIR/slurm/slurm.conf

# ---------------------------------------------------------------- sshd
start_sshd() { # ROLE -> sets PORT_<ROLE>
    local role=$1 try port cfg=$DIR/$1/sshd_config bin=/usr/sbin/sshd
    [ "$role" = mfa ] && bin=$DIR/mfa/$PAM_SVC
    for try in 1 2 3 4 5; do
        pick_port port
        render "$HERE/sshd_config.in" "$cfg" ROLE="$role" PORT="$port" DIR="$DIR" USER="$TUSER" \
               SLURM_CONF="$SLURM_CONF"
        if [ "$role" = mfa ]; then
            cat >> "$cfg" <<EOF
# MFA: a key and then a TOTP typed at the keyboard-interactive prompt
UsePAM yes
KbdInteractiveAuthentication yes
AuthenticationMethods publickey,keyboard-interactive
EOF
        else
            cat >> "$cfg" <<EOF
UsePAM no
KbdInteractiveAuthentication no
AuthenticationMethods publickey
EOF
        fi
        "$bin" -t -f "$cfg" || die "sshd $role: bad configuration $cfg"
        if env HP_H_TAG="$DIR" "$bin" -f "$cfg" -E "$DIR/$role/sshd.log" \
                </dev/null >/dev/null 2>>"$DIR/$role/sshd.log"; then
            eval "PORT_${role^^}=$port"
            return 0
        fi
        grep -q 'Address already in use' "$DIR/$role/sshd.log" ||
            die "sshd $role did not start; see $DIR/$role/sshd.log: $(tail -3 "$DIR/$role/sshd.log")"
        log "sshd $role: port $port taken, trying another"
        mv -f "$DIR/$role/sshd.log" "$DIR/$role/sshd.log.$try"
    done
    die "sshd $role: no free port after 5 tries"
}

# ---------------------------------------------------------------- helpers
alive() { # PID: running and not a zombie (pid 1 of a container may not reap)
    local st
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st##*) }
    [ "${st%% *}" != Z ]
}
pid_alive() { local p; p=$(cat "$1" 2>/dev/null) && [ -n "$p" ] && alive "$p"; }
in_use() { grep -qs 'Address already in use' "$@"; }
# wait_until SECONDS PIDFILE LOG COMMAND...: poll COMMAND every 0.1 s; fail
# early when LOG says a port is taken or when the daemon of PIDFILE is gone
# (checked after 5 s: some daemons write their pid file late)
wait_until() {
    local t0=$SECONDS pf=$2 lf=$3 limit=$1; shift 3
    while [ $((SECONDS - t0)) -lt "$limit" ]; do
        if [ "$(type -t "$1")" = function ]; then "$@"; else timeout 3 "$@"; fi >/dev/null 2>&1 &&
            return 0
        # shellcheck disable=SC2086
        in_use $lf && return 1
        if [ $((SECONDS - t0)) -ge 5 ] && ! pid_alive "$pf"; then return 1; fi
        sleep 0.1
    done
    return 1
}
# daemons get HP_H_TAG (stop.sh finds their offspring by it) and no inherited
# stdio: a caller reading our stdout through a pipe must see EOF when we exit
daemon() { env HP_H_TAG="$DIR" SLURM_CONF="$SLURM_CONF" "$@" </dev/null >/dev/null 2>&1; }

# ---------------------------------------------------------------- munge
start_munge() {
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    chmod 0400 "$DIR/munge/munge.key"
    # --force: munged wants every parent of its socket world-searchable; DIR
    # is only searchable by the test user's group, which is all that needs it
    daemon munged --socket="$DIR/munge/munge.socket" --key-file="$DIR/munge/munge.key" \
        --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
        --seed-file="$DIR/munge/munged.seed" --num-threads=4 --force ||
        die "munged did not start; see $DIR/munge/munged.log"
    wait_until 5 "$DIR/munge/munged.pid" "$DIR/munge/munged.log" test -S "$DIR/munge/munge.socket" ||
        die "munged did not start; see $DIR/munge/munged.log"
}

# ---------------------------------------------------------------- MariaDB + slurmdbd
MYCNF=$DIR/db/my.cnf
start_db() {
    local try
    mkdir -p "$DIR/db"; chmod 0700 "$DIR/db"
    for try in 1 2 3; do
        pick_port DB_PORT
        render "$HERE/mariadb.cnf.in" "$MYCNF" DIR="$DIR" PORT="$DB_PORT"
        if [ ! -d "$DIR/db/data/mysql" ]; then
            mariadb-install-db --defaults-file="$MYCNF" --auth-root-authentication-method=normal \
                --skip-test-db --force > "$DIR/db/install.log" 2>&1 ||
                die "mariadb-install-db failed; see $DIR/db/install.log"
        fi
        daemon setsid -f mariadbd --defaults-file="$MYCNF"
        if wait_until 20 "$DIR/db/mysqld.pid" "$DIR/db/mysqld.log" \
                mariadb-admin --no-defaults -S "$DIR/db/mysqld.sock" -uroot ping; then
            wait_until 5 "$DIR/db/mysqld.pid" "$DIR/db/mysqld.log" \
                mariadb-admin --no-defaults -h127.0.0.1 -P"$DB_PORT" -uroot ping && return 0
        fi
        in_use "$DIR/db/mysqld.log" || die "mariadbd did not start; see $DIR/db/mysqld.log"
        log "mariadbd: port $DB_PORT taken, trying another"
        "$HERE/stop.sh" --only db "$DIR" >/dev/null 2>&1 || true
        mv -f "$DIR/db/mysqld.log" "$DIR/db/mysqld.log.$try"
    done
    die "mariadbd: no free port after 3 tries"
}
start_dbd() {
    local try
    for try in 1 2 3; do
        # AccountingStoragePort in slurm.conf follows DBD_PORT
        if [ "$try" -gt 1 ]; then pick_port DBD_PORT; write_slurm_conf; fi
        render "$HERE/slurmdbd.conf.in" "$DIR/slurm/slurmdbd.conf" DIR="$DIR" DBD_PORT="$DBD_PORT" \
               DB_PORT="$DB_PORT"
        chmod 0600 "$DIR/slurm/slurmdbd.conf"
        daemon slurmdbd || die "slurmdbd did not start; see $DIR/slurm/slurmdbd.log"
        wait_until 20 "$DIR/slurm/slurmdbd.pid" "$DIR/slurm/slurmdbd.log" sacctmgr -n list cluster && return 0
        in_use "$DIR/slurm/slurmdbd.log" ||
            die "slurmdbd did not start; see $DIR/slurm/slurmdbd.log: $(tail -3 "$DIR/slurm/slurmdbd.log")"
        log "slurmdbd: port $DBD_PORT taken, trying another"
        "$HERE/stop.sh" --only dbd "$DIR" >/dev/null 2>&1 || true
        mv -f "$DIR/slurm/slurmdbd.log" "$DIR/slurm/slurmdbd.log.$try"
    done
    die "slurmdbd: no free port after 3 tries"
}
add_associations() {
    # the cluster, two accounts and a QOS, so that --account/--qos are checked
    # (AccountingStorageEnforce=associations) like on a real site
    sacctmgr -i add cluster hpcport >/dev/null &&
    sacctmgr -i add qos high >/dev/null &&
    sacctmgr -i add account hpcport,hpcport-b cluster=hpcport \
        description="hpcport test account" organization=hpcport >/dev/null &&
    sacctmgr -i add user "root,$TUSER" account=hpcport,hpcport-b defaultaccount=hpcport \
        qos=normal,high defaultqos=normal >/dev/null ||
        die "sacctmgr could not add the cluster, accounts and users; see $DIR/slurm/slurmdbd.log"
}

# ---------------------------------------------------------------- slurm
NODE=$(hostname -s)
CPUS=$(nproc)
MEM=$(awk '/^MemTotal:/ { m = int($2 / 1024 * 0.9); print (m > 256 ? m : 256) }' /proc/meminfo)
DEFMEM=$(( MEM / CPUS / 4 > 100 ? 100 : MEM / CPUS / 4 ))
write_slurm_conf() {
    render "$HERE/slurm.conf.in" "$SLURM_CONF" DIR="$DIR" NODE="$NODE" CTLD_PORT="$CTLD_PORT" \
           SLURMD_PORT="$SLURMD_PORT" DBD_PORT="$DBD_PORT" CPUS="$CPUS" MEM="$MEM" DEFMEM="$DEFMEM"
    chmod 0644 "$SLURM_CONF"
}
node_up() { timeout 3 scontrol show node "$NODE" -o | grep -Eq 'State=(IDLE|MIXED|ALLOCATED)'; }
start_slurm() {
    local try
    for try in 1 2 3; do
        daemon slurmctld -f "$SLURM_CONF" || die "slurmctld did not start; see $DIR/slurm/slurmctld.log"
        daemon slurmd -f "$SLURM_CONF" || die "slurmd did not start; see $DIR/slurm/slurmd.log"
        wait_until 15 "$DIR/slurm/slurmctld.pid" "$DIR/slurm/slurmctld.log $DIR/slurm/slurmd.log" node_up && return 0
        in_use "$DIR/slurm/slurmctld.log" "$DIR/slurm/slurmd.log" ||
            die "slurm did not come up; see $DIR/slurm/slurmctld.log and slurmd.log: $(tail -3 "$DIR/slurm/slurmd.log" 2>/dev/null)"
        log "slurm: port $CTLD_PORT or $SLURMD_PORT taken, trying others"
        "$HERE/stop.sh" --only slurm "$DIR" >/dev/null 2>&1 || true
        for f in slurmctld slurmd; do mv -f "$DIR/slurm/$f.log" "$DIR/slurm/$f.log.$try"; done
        pick_port CTLD_PORT; pick_port SLURMD_PORT
        write_slurm_conf
    done
    die "slurm: no free ports after 3 tries"
}

: > "$DIR/slurm/plugstack.conf"
export SLURM_CONF
pick_port CTLD_PORT; pick_port SLURMD_PORT; pick_port DBD_PORT
write_slurm_conf
# munge, the database, slurmdbd and slurm start in the background while the
# three sshd start here
( start_munge; start_db; start_dbd; add_associations; start_slurm
  printf 'DB_PORT=%s\nDBD_PORT=%s\nCTLD_PORT=%s\nSLURMD_PORT=%s\n' \
         "$DB_PORT" "$DBD_PORT" "$CTLD_PORT" "$SLURMD_PORT" > "$DIR/slurm/ports" ) &
SLURM_JOB=$!
start_sshd bastion
start_sshd login
start_sshd mfa
wait "$SLURM_JOB" || die "munge/slurm did not start"
. "$DIR/slurm/ports"

# ---------------------------------------------------------------- slurmrestd, tinyproxy
# Both run in the foreground of a shell that wrote its pid and then exec'd
# them as $RUSER (setpriv keeps the pid). SLURM_JWT=daemon: slurmrestd
# passes each request's token on to slurmctld/slurmdbd (no munge).
as_ruser() { # PIDFILE LOG CMD...: start CMD as $RUSER in the background
    local pf=$1 lf=$2; shift 2
    daemon setsid -f bash -c 'echo $$ > "$1"; l=$2; shift 2; exec "$@" >>"$l" 2>&1' _ "$pf" "$lf" \
        setpriv --reuid="$RUSER" --regid="$RUSER" --init-groups --inh-caps=-all -- "$@"
}
rest_up() { curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$REST_PORT/openapi/v3"; }
start_rest() {
    local try
    for try in 1 2 3; do
        pick_port REST_PORT
        # DIR/rest/start: (re)starts slurmrestd on this port and waits until
        # it answers (tests stop it to see that clients survive an outage)
        cat > "$DIR/rest/start" <<EOF
#!/bin/bash
# start slurmrestd of the harness in $DIR on 127.0.0.1:$REST_PORT (as $RUSER)
export HP_H_TAG=$(printf %q "$DIR") SLURM_CONF=$(printf %q "$SLURM_CONF") SLURM_JWT=daemon
setsid -f bash -c 'echo \$\$ > "\$1"; exec setpriv --reuid=$RUSER --regid=$RUSER --init-groups --inh-caps=-all -- \\
    slurmrestd -f "\$SLURM_CONF" -a rest_auth/jwt \\
    -s openapi/v0.0.36,openapi/v0.0.37,openapi/v0.0.38,openapi/dbv0.0.36,openapi/dbv0.0.37,openapi/dbv0.0.38 \\
    127.0.0.1:$REST_PORT >> "\$2" 2>&1' _ $(printf %q "$DIR/rest/slurmrestd.pid") $(printf %q "$DIR/rest/slurmrestd.log") \\
    </dev/null >/dev/null 2>&1
for _ in \$(seq 1 100); do
    curl -s -o /dev/null --max-time 2 http://127.0.0.1:$REST_PORT/openapi/v3 && exit 0
    sleep 0.1
done
echo "slurmrestd did not answer on 127.0.0.1:$REST_PORT; see $(printf %q "$DIR/rest/slurmrestd.log")" >&2
exit 1
EOF
        chmod 0700 "$DIR/rest/start"
        bash "$DIR/rest/start" 2>/dev/null && return 0
        in_use "$DIR/rest/slurmrestd.log" ||
            die "slurmrestd did not start; see $DIR/rest/slurmrestd.log: $(tail -3 "$DIR/rest/slurmrestd.log")"
        log "slurmrestd: port $REST_PORT taken, trying another"
        "$HERE/stop.sh" --only rest "$DIR" >/dev/null 2>&1 || true
        mv -f "$DIR/rest/slurmrestd.log" "$DIR/rest/slurmrestd.log.$try"
    done
    die "slurmrestd: no free port after 3 tries"
}
proxy_up() { curl -s -o /dev/null --max-time 2 -x "http://127.0.0.1:$PROXY_PORT" "http://127.0.0.1:$REST_PORT/openapi/v3"; }
start_proxy() {
    local try
    for try in 1 2 3; do
        pick_port PROXY_PORT
        printf '%s\n' "# tinyproxy for the hpcport test harness: loopback only, no upstream" \
            "Port $PROXY_PORT" "Listen 127.0.0.1" "Timeout 60" "Allow 127.0.0.1" "MaxClients 50" \
            "LogLevel Info" "DisableViaHeader Yes" "ConnectPort $REST_PORT" "ConnectPort $PORT_LOGIN" \
            > "$DIR/proxy/tinyproxy.conf"
        as_ruser "$DIR/proxy/tinyproxy.pid" "$DIR/proxy/tinyproxy.log" tinyproxy -d -c "$DIR/proxy/tinyproxy.conf"
        wait_until 10 "$DIR/proxy/tinyproxy.pid" "$DIR/proxy/tinyproxy.log" proxy_up && return 0
        in_use "$DIR/proxy/tinyproxy.log" ||
            die "tinyproxy did not start; see $DIR/proxy/tinyproxy.log: $(tail -3 "$DIR/proxy/tinyproxy.log")"
        log "tinyproxy: port $PROXY_PORT taken, trying another"
        "$HERE/stop.sh" --only proxy "$DIR" >/dev/null 2>&1 || true
        mv -f "$DIR/proxy/tinyproxy.log" "$DIR/proxy/tinyproxy.log.$try"
    done
    die "tinyproxy: no free port after 3 tries"
}
start_rest
start_proxy

# ---------------------------------------------------------------- client files
{
    for role in bastion login mfa; do
        eval "port=\$PORT_${role^^}"
        printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$DIR/$role/ssh_host_ed25519_key.pub")"
    done
} > "$DIR/ssh/known_hosts"
chmod 0644 "$DIR/ssh/known_hosts"

common_ssh() { # PORT
    cat <<EOF
    HostName 127.0.0.1
    Port $1
    User $TUSER
    IdentityFile $DIR/ssh/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $DIR/ssh/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    UpdateHostKeys no
    ControlMaster no
    ControlPath none
    LogLevel ERROR
EOF
}
{
    echo "# ssh_config for the hpcport test harness in $DIR (ssh -F THIS_FILE HOST)"
    echo "Host hp-bastion"; common_ssh "$PORT_BASTION"
    echo "Host hp-login"; common_ssh "$PORT_LOGIN"; echo "    ProxyJump hp-bastion"
    echo "Host hp-login-direct"; common_ssh "$PORT_LOGIN"
    echo "Host hp-mfa"; common_ssh "$PORT_MFA"
    echo "    PreferredAuthentications publickey,keyboard-interactive"
} > "$DIR/ssh/config"
chmod 0644 "$DIR/ssh/config"

# DIR/ssh/otp: prints a TOTP that the MFA sshd accepts now. pam_oath refuses a
# code whose time step is not later than the last one used (replay), so two
# logins in one 30-s step need the next step's code; window=20 accepts it.
# Also an SSH_ASKPASS program (it ignores the prompt in $1).
cat > "$DIR/ssh/otp" <<EOF
#!/bin/sh
# TOTP for the hpcport harness's MFA sshd: the current time step's code, or
# the code of the step after the last one used when that is not earlier.
secret=$OATH_SECRET
step=\$((\$(date +%s) / 30))
last=\$(awk '\$2 == "$TUSER" { print \$6 }' "$DIR/mfa/users.oath" 2>/dev/null)
if [ -n "\$last" ]; then
    s=\$((step - 20))
    for c in \$(oathtool --totp -w 40 -N "@\$((s * 30))" "\$secret"); do
        [ "\$c" = "\$last" ] && [ "\$s" -ge "\$step" ] && step=\$((s + 1))
        s=\$((s + 1))
    done
fi
exec oathtool --totp -N "@\$((step * 30))" "\$secret"
EOF
chmod 0700 "$DIR/ssh/otp"

q() { printf '%q' "$1"; }
cat > "$DIR/env.sh" <<EOF
# hpcport test harness environment (source it); written by tests/harness/start.sh
export HP_HARNESS_DIR=$(q "$DIR")
export HP_H_DIR=$(q "$DIR")
export HP_H_HOST=127.0.0.1
export HP_H_BASTION_PORT=$PORT_BASTION
export HP_H_LOGIN_PORT=$PORT_LOGIN
export HP_H_MFA_PORT=$PORT_MFA
export HP_H_USER=$TUSER
export HP_H_USER_HOME=$(q "$THOME")
export HP_H_SCRATCH=$(q "$DIR/scratch")
export HP_H_KEY=$(q "$DIR/ssh/id_ed25519")
export HP_H_PUBKEY=$(q "$DIR/ssh/id_ed25519.pub")
export HP_H_KNOWN_HOSTS=$(q "$DIR/ssh/known_hosts")
export HP_H_SSH_CONFIG=$(q "$DIR/ssh/config")
export HP_H_OATH_SECRET=$OATH_SECRET
export HP_H_OTP_COMMAND=$(q "$DIR/ssh/otp")
export HP_H_MFA_PAM_SERVICE=$(q "$PAM_SVC")
export HP_H_MUNGE_SOCKET=$(q "$DIR/munge/munge.socket")
export HP_H_SLURM_CLUSTER=hpcport
export HP_H_SLURM_NODE=$(q "$NODE")
export HP_H_SLURM_PARTITIONS=debug,long
export HP_H_SLURMCTLD_PORT=$CTLD_PORT
export HP_H_SLURMD_PORT=$SLURMD_PORT
export HP_H_SLURMDBD_PORT=$DBD_PORT
export HP_H_MARIADB_PORT=$DB_PORT
export HP_H_SLURM_ACCOUNTS=hpcport,hpcport-b
export HP_H_SLURM_QOS=normal,high
export HP_H_SLURMRESTD_PORT=$REST_PORT
export HP_H_SLURMRESTD_URL=http://127.0.0.1:$REST_PORT
export HP_H_JWT_KEY=$(q "$DIR/slurm/jwt_hs256.key")
export HP_H_TINYPROXY_PORT=$PROXY_PORT
export HP_H_TINYPROXY_URL=http://127.0.0.1:$PROXY_PORT
export SLURM_CONF=$(q "$SLURM_CONF")
EOF
chmod 0644 "$DIR/env.sh"
started=
log "up in $((SECONDS - T0)) s: bastion :$PORT_BASTION, login :$PORT_LOGIN, mfa :$PORT_MFA," \
    "slurmctld :$CTLD_PORT, slurmd :$SLURMD_PORT, slurmdbd :$DBD_PORT, mariadb :$DB_PORT," \
    "slurmrestd :$REST_PORT, tinyproxy :$PROXY_PORT; source $DIR/env.sh"
