#!/bin/bash
# The site catalog (hpcport sites sync/list) against real git repositories:
#   test-catalog.sh [HPCPORT]          file:// and https:// (lighttpd + git
#                                      http-backend with a test CA): first
#                                      sync, changes, site show provenance,
#                                      plan/validate, user override, offline,
#                                      rewritten history, schema failures,
#                                      hostile content
#   test-catalog.sh --ssh [HPCPORT]    ssh:// to the harness's login sshd with
#                                      strict host keys (needs HP_HARNESS_DIR)
MODE=local
if [ "${1:-}" = "--ssh" ]; then MODE=ssh; shift; fi
. "$(dirname "$0")/tap.sh"

export XDG_DATA_HOME="$T/data"
unset SSH_AUTH_SOCK HPCPORT_CA_FILE
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$T/sanitizer"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:log_path=$T/sanitizer"
STATE="$XDG_DATA_HOME/hpcport/catalog/state.json"
CFG="$XDG_CONFIG_HOME/hpcport/sites"
mkdir -p "$CFG"
PY=/usr/bin/python3
jget() { $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }
pinned() { jget "$STATE" 'd["commit"]'; }
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.org GIT_COMMITTER_NAME=t \
    GIT_COMMITTER_EMAIL=t@example.org
# the catalog's source repository (a work tree we commit in)
SRC="$T/src"
g() { git -C "$SRC" "$@"; }
new_source() {
    rm -rf "$SRC"; git init -q -b main "$SRC"; mkdir -p "$SRC/sites"
    cat > "$SRC/sites/cat-alpha.yaml" <<'Y'
description: alpha from the catalog
scheduler:
  type: slurm
  partitions:
    - {name: batch, max_walltime: 4h}
network: {login: open, compute: none}
Y
    cat > "$SRC/sites/cat-beta.yaml" <<'Y'
description: beta from the catalog
scheduler:
  type: local
Y
    echo 'not a profile' > "$SRC/README.md"
    g add -A; g commit -qm "first profiles"
}
check_sanitizers() {
    if ls "$T"/sanitizer* >/dev/null 2>&1; then
        fail "sanitizer reports"; head -30 "$T"/sanitizer* | sed 's/^/# /'
    else ok "no sanitizer reports"; fi
}

if [ "$MODE" = ssh ]; then
    if [ -z "${HP_HARNESS_DIR:-}" ] || [ ! -r "$HP_HARNESS_DIR/env.sh" ]; then
        fail "HP_HARNESS_DIR is not set: run under tests/harness/with-services.sh"
        done_testing; exit 1
    fi
    . "$HP_HARNESS_DIR/env.sh"
    export HPCPORT_SSH_CONFIG="$T/ssh_config"
    # full stacks, so that the suppression of libgit2's known_hosts leak in
    # its ssh transport (sites/catalog.c) sees the libgit2 frame
    export ASAN_OPTIONS="$ASAN_OPTIONS:fast_unwind_on_malloc=0"
    export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}print_suppressions=0"
    new_source
    # a bare repository in the test user's home on the login node
    BARE="$HP_H_USER_HOME/catalog-$$.git"
    rm -rf "$BARE"; git clone -q --bare "$SRC" "$BARE"
    chown -R "$HP_H_USER" "$BARE"
    trap 'rm -rf "$T" "$BARE"' EXIT
    URL="ssh://$HP_H_USER@127.0.0.1:$HP_H_LOGIN_PORT$BARE"
    cfg() {
        printf 'Host 127.0.0.1\n    IdentityFile %s\n    IdentitiesOnly yes\n' "$HP_H_KEY"
        printf '    UserKnownHostsFile %s\n' "$1"
    } > "$T/ssh_config"
    # unknown host key: refused, nothing pinned
    : > "$T/empty_known_hosts"; cfg "$T/empty_known_hosts"
    expect_rc 4 "ssh://: an unknown host key is refused" "$HP" sites sync "$URL"
    check "... saying the key is not known, with its fingerprint" \
        contains "$ERR" "host key of catalog host [127.0.0.1]:$HP_H_LOGIN_PORT is not known: ssh-"
    check "... and nothing is pinned" test ! -e "$STATE"
    check "... and the key was not added anywhere" test ! -s "$T/empty_known_hosts"
    # a different key recorded for the host: refused as changed
    ssh-keygen -q -t ed25519 -N '' -f "$T/other" >/dev/null
    echo "[127.0.0.1]:$HP_H_LOGIN_PORT ssh-ed25519 $(cut -d' ' -f2 "$T/other.pub")" \
        > "$T/wrong_known_hosts"
    cfg "$T/wrong_known_hosts"
    expect_rc 4 "ssh://: a changed host key (wrong known_hosts) is refused" \
        "$HP" sites sync "$URL"
    check "... as a changed key" contains "$ERR" "REMOTE HOST KEY HAS CHANGED"
    # the right known_hosts: synced
    cfg "$HP_H_KNOWN_HOSTS"
    expect_rc 0 "ssh://: sync with the harness's known_hosts and key" "$HP" sites sync "$URL"
    check "... pins the source's head" test "$(pinned)" = "$(g rev-parse HEAD)"
    check "... lists the profiles added" contains "$OUT" "A cat-alpha"
    expect_rc 0 "... site show names the catalog commit" "$HP" site show cat-alpha
    check "... (the ssh URL and commit)" contains "$OUT" "# from the site catalog $URL at commit $(g rev-parse HEAD)"
    # a second commit reaches us over ssh
    printf 'description: gamma\nscheduler:\n  type: local\n' > "$SRC/sites/cat-gamma.yaml"
    g add -A; g commit -qm "add gamma"
    chown -R root "$BARE"; git -C "$SRC" push -q "$BARE" main; chown -R "$HP_H_USER" "$BARE"
    expect_rc 0 "ssh://: the second sync fetches the new commit" "$HP" sites sync
    check "... and names the change" contains "$OUT" "A cat-gamma"
    check "... pinned" test "$(pinned)" = "$(g rev-parse HEAD)"
    # unreachable: nothing listens on the port
    DEAD=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    DURL="ssh://$HP_H_USER@127.0.0.1:$DEAD$BARE"
    expect_rc 4 "ssh://: an unreachable catalog host is a clear error" "$HP" sites sync "$DURL"
    check "... naming the URL" contains "$ERR" "cannot fetch the catalog $DURL"
    check "... and the pin that stays in use" contains "$ERR" "stays in use"
    check "... pin and URL kept" test "$(pinned) $(jget "$STATE" 'd["url"]')" = "$(g rev-parse HEAD) $URL"
    expect_rc 0 "... site show works offline" "$HP" site show cat-gamma
    # an encrypted key, its passphrase from HPCPORT_ASKPASS
    cp "$HP_H_KEY" "$T/enckey"; ssh-keygen -q -p -P '' -N 'cat pass' -f "$T/enckey" >/dev/null
    printf '#!/bin/sh\necho "$1" >> %s/askpass.log\necho "cat pass"\n' "$T" > "$T/askpass"
    printf '#!/bin/sh\necho wrong\n' > "$T/askpass-wrong"
    chmod +x "$T/askpass" "$T/askpass-wrong"
    printf 'Host 127.0.0.1\n    IdentityFile %s\n    IdentitiesOnly yes\n    UserKnownHostsFile %s\n' \
        "$T/enckey" "$HP_H_KNOWN_HOSTS" > "$T/ssh_config"
    expect_rc 0 "ssh://: an encrypted key with its passphrase from HPCPORT_ASKPASS" \
        env HPCPORT_ASKPASS="$T/askpass" "$HP" sites sync
    check "... asked for that key" grep -q "passphrase for key '$T/enckey'" "$T/askpass.log"
    expect_rc 4 "ssh://: a wrong passphrase fails" env HPCPORT_ASKPASS="$T/askpass-wrong" "$HP" sites sync
    check "... saying so" contains "$ERR" "Wrong passphrase"
    expect_rc 4 "ssh://: an encrypted key and nobody to ask" "$HP" sites sync
    check "... says the key is encrypted" contains "$ERR" "key '$T/enckey' is encrypted"
    # a key the server does not accept
    printf 'Host 127.0.0.1\n    IdentityFile %s\n    IdentitiesOnly yes\n    UserKnownHostsFile %s\n' \
        "$T/other" "$HP_H_KNOWN_HOSTS" > "$T/ssh_config"
    expect_rc 4 "ssh://: a key the server refuses fails clearly" "$HP" sites sync
    check "... naming ssh authentication" contains "$ERR" "ssh authentication as '$HP_H_USER'"
    check "... pin kept" test "$(pinned)" = "$(g rev-parse HEAD)"
    check_sanitizers
    done_testing; exit $?
fi

# ---- file:// -------------------------------------------------------------------
new_source
URL="file://$SRC"
expect_rc 0 "no catalog yet: 'sites' says so" "$HP" sites
check "... and how to get one" contains "$OUT" "hpcport sites sync URL"
expect_rc 2 "first sync without a URL is a usage error" "$HP" sites sync
check "... asking for the URL" contains "$ERR" "give its URL"
expect_rc 2 "an unsupported URL scheme is refused" "$HP" sites sync "ftp://example.org/x"
expect_rc 2 "plain http:// is refused" "$HP" sites sync "http://example.org/x.git"
check "... as unauthenticated" contains "$ERR" "plain http:// is not authenticated"

expect_rc 0 "first sync (file://)" "$HP" sites sync "$URL"
C1=$(g rev-parse HEAD)
check "... pins the head" test "$(pinned)" = "$C1"
check "... remembers the URL" test "$(jget "$STATE" 'd["url"]')" = "$URL"
check "... lists both profiles as added" contains "$OUT" "A cat-alpha"
check "... (beta too)" contains "$OUT" "A cat-beta"
check "... and the commit" contains "$OUT" "${C1:0:7} first profiles"
check "state.json is 0600" test "$(stat -c %a "$STATE")" = 600
check "the catalog dir is 0700" test "$(stat -c %a "$XDG_DATA_HOME/hpcport/catalog")" = 700

expect_rc 0 "sites lists the catalog's profiles" "$HP" sites
check "... naming URL and commit" contains "$OUT" "catalog $URL at ${C1:0:12}"
check "... with descriptions" contains "$OUT" "alpha from the catalog"
expect_rc 0 "sites list --json" "$HP" sites list --json
check "... commit and profiles" test "$(echo "$OUT" | $PY -c 'import json,sys; d=json.load(sys.stdin); print(d["commit"], [p["name"] for p in d["profiles"]])')" = "$C1 ['cat-alpha', 'cat-beta']"

expect_rc 0 "site show of a catalog profile" "$HP" site show cat-alpha
check "... names the catalog commit" contains "$OUT" "# from the site catalog $URL at commit $C1"
check "... origins point into the catalog commit" contains "$OUT" "<catalog@${C1:0:12}>/sites/cat-alpha.yaml:1:14${TAB:-	}description=alpha from the catalog"
expect_rc 0 "site show --json" "$HP" site show --json cat-alpha
check "... has catalog.url and catalog.commit" test "$(echo "$OUT" | $PY -c 'import json,sys; d=json.load(sys.stdin); print(d["catalog"]["url"], d["catalog"]["commit"])')" = "$URL $C1"
expect_rc 0 "site list shows catalog profiles" "$HP" site list --json
check "... with their catalog commit" test "$(echo "$OUT" | $PY -c 'import json,sys; d=json.load(sys.stdin); print([e["catalog_commit"] for e in d if e["name"]=="cat-alpha"][0])')" = "$C1"
expect_rc 0 "a bundled profile has no catalog provenance" "$HP" site show --json local
check "... no catalog key" test "$(echo "$OUT" | $PY -c 'import json,sys; print("catalog" in json.load(sys.stdin))')" = False

# plan and validate use the catalog profile
mkdir -p "$T/wf"
cat > "$T/wf/wf.yaml" <<'Y'
name: cat
tasks:
  hello:
    command: [echo, hello]
    resources: {cores: 1, walltime: 10m}
Y
expect_rc 0 "plan with a catalog profile" "$HP" plan "$T/wf/wf.yaml" --site cat-alpha
check "... renders a Slurm script for its partition" contains "$OUT" "#SBATCH --partition=batch"
printf 'extends: cat-alpha\nscheduler:\n  account: m1\n' > "$T/mine.yaml"
expect_rc 0 "validate a profile that extends a catalog profile" "$HP" validate "$T/mine.yaml"
printf 'extends: cat-alpha\nscheduler:\n  default_partition: nosuch\n' > "$T/mine.yaml"
expect_rc 4 "... and its errors against the catalog profile's partitions" "$HP" validate "$T/mine.yaml"
check "... naming the partition" contains "$ERR" "nosuch"

# a user override wins over the catalog
printf 'description: my own alpha\n' > "$CFG/cat-alpha.yaml"
expect_rc 0 "user override over a catalog profile" "$HP" site show cat-alpha
check "... the user's value wins" contains "$OUT" "$CFG/cat-alpha.yaml:1:14${TAB:-	}description=my own alpha"
check "... the catalog's values below stay" contains "$OUT" "<catalog@${C1:0:12}>/sites/cat-alpha.yaml:3:9	scheduler.type=slurm"
check "... still naming the catalog commit" contains "$OUT" "at commit $C1"
rm "$CFG/cat-alpha.yaml"

# second commit: one profile added, one modified
printf 'description: gamma\nscheduler:\n  type: local\n' > "$SRC/sites/cat-gamma.yaml"
sed -i 's/alpha from the catalog/alpha, version 2/' "$SRC/sites/cat-alpha.yaml"
g add -A; g commit -qm "add gamma, alpha v2"
C2=$(g rev-parse HEAD)
expect_rc 0 "second sync" "$HP" sites sync
check "... shows the range" contains "$OUT" "${C1:0:12}..${C2:0:12}"
check "... gamma added" contains "$OUT" "A cat-gamma"
check "... alpha modified" contains "$OUT" "M cat-alpha"
check "... beta unchanged, not listed" test "$(echo "$OUT" | grep -c cat-beta)" = 0
check "... the short log" contains "$OUT" "${C2:0:7} add gamma, alpha v2"
check "... pinned" test "$(pinned)" = "$C2"
expect_rc 0 "sync again: already up to date" "$HP" sites sync --json
check "... unchanged" test "$(echo "$OUT" | jget /dev/stdin 'd["unchanged"]')" = True
expect_rc 0 "site show names the new commit" "$HP" site show cat-alpha
check "... and the new value" contains "$OUT" "description=alpha, version 2"
check "... from commit 2" contains "$OUT" "at commit $C2"

# offline: the remote is gone
mv "$SRC" "$T/src.away"
expect_rc 4 "offline: sync fails" "$HP" sites sync
check "... naming the URL" contains "$ERR" "cannot fetch the catalog $URL"
check "... and that the pin stays in use" contains "$ERR" "the pinned commit ${C2:0:12} stays in use"
check "... pin kept" test "$(pinned)" = "$C2"
expect_rc 0 "offline: site show still works" "$HP" site show cat-gamma
expect_rc 0 "offline: plan still works" "$HP" plan "$T/wf/wf.yaml" --site cat-alpha
mv "$T/src.away" "$SRC"

# a profile that fails the schema: refused with file:line:col, pin kept
printf 'scheduler:\n  type: slurm\n  acount: m1\n' > "$SRC/sites/cat-bad.yaml"
g add -A; g commit -qm "bad profile"
C3=$(g rev-parse HEAD)
expect_rc 3 "a commit with a profile failing the schema is refused" "$HP" sites sync
check "... file:line:col in the catalog commit" contains "$ERR" "<catalog@${C3:0:12}>/sites/cat-bad.yaml:3:3: error: unknown key 'acount'"
check "... pin kept" test "$(pinned)" = "$C2"
check "... and said so" contains "$ERR" "the pin stays at ${C2:0:12}"
expect_rc 4 "... the refused profile is not visible" "$HP" site show cat-bad
printf 'name: other\nscheduler: {type: local}\n' > "$SRC/sites/cat-bad.yaml"
g add -A; g commit -qm "misnamed"
expect_rc 4 "a profile whose name differs from its file is refused" "$HP" sites sync
check "... saying so" contains "$ERR" "does not match the file name"
g rm -q sites/cat-bad.yaml; g commit -qm "drop bad"

# hostile content
ln -s /etc/passwd "$SRC/sites/cat-link.yaml"; g add -A; g commit -qm symlink
expect_rc 4 "a symlink profile is refused" "$HP" sites sync
check "... as a symbolic link" contains "$ERR" "sites/cat-link.yaml is a symbolic link"
check "... pin kept" test "$(pinned)" = "$C2"
g rm -q sites/cat-link.yaml; g commit -qm unlink
head -c 2000000 /dev/zero | tr '\0' '#' > "$SRC/sites/cat-huge.yaml"; g add -A; g commit -qm huge
expect_rc 4 "a huge profile is refused" "$HP" sites sync
check "... over the limit" contains "$ERR" "over the limit of 1048576 bytes"
check "... pin kept" test "$(pinned)" = "$C2"
g rm -q sites/cat-huge.yaml; g commit -qm unhuge
# a tree entry named ../evil.yaml (git itself never writes one)
blob=$(echo 'scheduler: {type: local}' | g hash-object -w --stdin)
evil=$($PY -c 'import sys; sys.stdout.buffer.write(b"100644 ../evil.yaml\0" + bytes.fromhex(sys.argv[1]))' "$blob" |
       g hash-object -t tree --literally -w --stdin)
root=$( (g ls-tree HEAD | grep -v "	sites$"; printf '040000 tree %s\tsites\n' "$evil") | g mktree)
g update-ref refs/heads/main "$(g commit-tree "$root" -p HEAD -m evil)"
expect_rc 4 "a profile named ../evil is refused" "$HP" sites sync
check "... as a bad name" contains "$ERR" "'../evil' is not a valid profile name"
check "... pin kept" test "$(pinned)" = "$C2"
check "... nothing written outside the catalog" test ! -e "$XDG_DATA_HOME/hpcport/evil.yaml"
g reset -q --hard HEAD~1

# history rewritten: refused, pin kept; --force accepts
expect_rc 0 "back to a good head" "$HP" sites sync
C4=$(g rev-parse HEAD)
g reset -q --hard "$C1"
printf 'description: delta\nscheduler:\n  type: local\n' > "$SRC/sites/cat-delta.yaml"
g add -A; g commit -qm "rewritten history"
C5=$(g rev-parse HEAD)
expect_rc 4 "a rewritten history is refused" "$HP" sites sync
check "... saying so" contains "$ERR" "does not descend from the pinned commit ${C4:0:12}: the history was rewritten"
check "... pointing at --force" contains "$ERR" "--force"
check "... pin kept" test "$(pinned)" = "$C4"
expect_rc 0 "... site show still serves the pinned commit" "$HP" site show cat-gamma
expect_rc 0 "--force accepts the rewritten history" "$HP" sites sync --force
check "... says it was forced" contains "$OUT" "forced: history rewritten"
check "... gamma removed" contains "$OUT" "D cat-gamma"
check "... delta added" contains "$OUT" "A cat-delta"
check "... pinned" test "$(pinned)" = "$C5"
expect_rc 4 "the removed profile is gone" "$HP" site show cat-gamma

# damaged state: clear error, --force with a URL starts again
cp "$STATE" "$T/state.keep"; echo '{' > "$STATE"
expect_rc 6 "a damaged state file is a clear error" "$HP" site show cat-alpha
check "... with the way out" contains "$ERR" "--force"
expect_rc 0 "sync URL --force starts again" "$HP" sites sync "$URL" --force
check "... pinned" test "$(pinned)" = "$C5"

# ---- https:// ------------------------------------------------------------------
LIGHTTPD=$(command -v lighttpd || echo /usr/sbin/lighttpd)
if [ ! -x "$LIGHTTPD" ]; then
    fail "lighttpd is not installed (tools/install-deps.sh --test installs it)"
    done_testing; exit 1
fi
W="$T/www"; mkdir -p "$W/repos" "$W/docs" "$W/ca"
git clone -q --bare "$SRC" "$W/repos/catalog.git"
(
    cd "$W/ca"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
        -subj "/CN=hpcport test CA" >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj "/CN=localhost" \
        >/dev/null 2>&1
    printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n' > ext
    openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem \
        -days 2 -extfile ext >/dev/null 2>&1
    cat srv.pem srv.key > server.pem
    openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 \
        -subj "/CN=another CA" >/dev/null 2>&1
)
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$W/lighttpd.conf" <<EOF
server.modules = ("mod_openssl", "mod_alias", "mod_setenv", "mod_cgi")
server.bind = "127.0.0.1"
server.port = $PORT
server.document-root = "$W/docs"
server.errorlog = "$W/error.log"
ssl.engine = "enable"
ssl.pemfile = "$W/ca/server.pem"
alias.url = ("/git" => "/usr/lib/git-core/git-http-backend")
\$HTTP["url"] =~ "^/git" {
    cgi.assign = ("" => "")
    setenv.add-environment = ("GIT_PROJECT_ROOT" => "$W/repos", "GIT_HTTP_EXPORT_ALL" => "1")
}
EOF
"$LIGHTTPD" -D -f "$W/lighttpd.conf" 2>"$W/stderr" &
LPID=$!
trap 'kill $LPID 2>/dev/null; wait $LPID 2>/dev/null; rm -rf "$T"' EXIT
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1
done
HURL="https://localhost:$PORT/git/catalog.git"
git_sees() { GIT_SSL_CAINFO="$W/ca/ca.pem" git ls-remote -q "$HURL" HEAD >/dev/null; }
check "lighttpd serves the catalog over https (git itself)" git_sees
rm -rf "$XDG_DATA_HOME/hpcport/catalog"
expect_rc 4 "https:// without the test CA is refused" "$HP" sites sync "$HURL"
check "... as an untrusted certificate" contains "$ERR" "the TLS certificate of localhost is not trusted"
check "... nothing pinned" test ! -e "$STATE"
expect_rc 4 "a password in the URL never shows in errors" \
    "$HP" sites sync "https://user:sekrit@localhost:$PORT/git/catalog.git"
check "... (redacted)" contains "$ERR" "https://user:***@localhost:$PORT/git/catalog.git"
check "... (not the password)" test "$(echo "$ERR" | grep -c sekrit)" = 0
expect_rc 4 "https:// with another CA is refused" "$HP" sites sync "$HURL" --ca-file "$W/ca/other.pem"
check "... as untrusted" contains "$ERR" "not trusted"
expect_rc 0 "https:// with --ca-file syncs" "$HP" sites sync "$HURL" --ca-file "$W/ca/ca.pem"
check "... pinned" test "$(pinned)" = "$C5"
check "... remembers the CA file" test "$(jget "$STATE" 'd["ca_file"]')" = "$W/ca/ca.pem"
expect_rc 0 "https:// sync again, CA remembered" "$HP" sites sync
rm -rf "$XDG_DATA_HOME/hpcport/catalog"
expect_rc 0 "https:// with HPCPORT_CA_FILE" env HPCPORT_CA_FILE="$W/ca/ca.pem" "$HP" sites sync "$HURL"
expect_rc 0 "site show names the https URL" "$HP" site show cat-delta
check "... and commit" contains "$OUT" "# from the site catalog $HURL at commit $C5"
expect_rc 2 "--ca-file needs a value" "$HP" sites sync --ca-file
expect_rc 0 "sites --help" "$HP" sites --help
check "... names sync" contains "$OUT" "hpcport sites sync [URL]"
expect_rc 0 "sites sync --help" "$HP" sites sync --help
check "... tells about --force" contains "$OUT" "--force"
expect_rc 2 "a typo in the subcommand suggests" "$HP" sites snyc
check "... did you mean" contains "$ERR" "did you mean 'sync'"

check_sanitizers
done_testing
