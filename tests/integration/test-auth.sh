#!/bin/bash
# hpcport auth login / status / token / logout against a real OpenID provider
# (node-oidc-provider, tests/harness/oidc/, started here on loopback): the
# device login with a browser user played by approve.js, refresh with
# rotated refresh tokens, denied logins, expired device codes, revoked
# refresh tokens, the provider down, Ctrl-C, file permissions, corrupt files
# and hostile site names. Tokens must never show in output.
# usage: test-auth.sh [HPCPORT]   (or HPCPORT=... in the environment)
. "$(dirname "$0")/tap.sh"

export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$T/sanitizer"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:log_path=$T/sanitizer"
HARNESS=$SRC/tests/harness
APPROVE=$SRC/tests/harness/oidc/approve.js
SITES=$XDG_CONFIG_HOME/hpcport/sites
TOKDIR=$XDG_CONFIG_HOME/hpcport/tokens
mkdir -p "$SITES"

stop_providers() {
    "$HARNESS/oidc-stop.sh" "$T/idp" 2>/dev/null
    "$HARNESS/oidc-stop.sh" "$T/idp2" 2>/dev/null
    "$HARNESS/oidc-stop.sh" "$T/idp3" 2>/dev/null
    "$HARNESS/oidc-stop.sh" "$T/idp4" 2>/dev/null
}
trap 'stop_providers; rm -rf "$T"' EXIT

# provider A: access tokens live 66 s, so a fresh one is used as it is and
# one that is 7 s older is refreshed (hpcport refreshes within 60 s of expiry)
if ! OIDC_ACCESS_TTL=66 "$HARNESS/oidc-start.sh" "$T/idp" >"$T/start.err" 2>&1; then
    fail "the test OpenID provider starts: $(cat "$T/start.err")"
    done_testing; exit 1
fi
. "$T/idp/oidc.env"
ISS=$OIDC_ISSUER
# provider B: device codes live 2 s
if ! OIDC_DEVICE_TTL=2 "$HARNESS/oidc-start.sh" "$T/idp2" >"$T/start.err" 2>&1; then
    fail "the second test OpenID provider starts: $(cat "$T/start.err")"
    done_testing; exit 1
fi
ISS2=$(. "$T/idp2/oidc.env"; echo "$OIDC_ISSUER")

site_yaml() { # NAME ISSUER
    printf 'name: %s\nscheduler:\n  type: local\noauth:\n  issuer: %s\n  client_id: hpcport\n  scopes: [openid, offline_access]\n' "$1" "$2"
}
site_yaml idp "$ISS" > "$SITES/idp.yaml"
site_yaml idp2 "$ISS2" > "$SITES/idp2.yaml"
F=$TOKDIR/idp.json

# field FIELD: a member of the stored record
field() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1])).get(sys.argv[2]); print("" if v is None else v)' "$F" "$1"; }
# http_status URL [BEARER] [FORM...]: the provider's HTTP status for a GET
# (with a bearer token) or a POST of FORM (key=value words)
http_status() {
    python3 - "$@" <<'PY'
import sys, urllib.request, urllib.parse, urllib.error
url, bearer, form = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "", sys.argv[3:]
data = urllib.parse.urlencode([tuple(f.split("=", 1)) for f in form]).encode() if form else None
req = urllib.request.Request(url, data=data)
if bearer:
    req.add_header("Authorization", "Bearer " + bearer)
try:
    print(urllib.request.urlopen(req, timeout=10).status)
except urllib.error.HTTPError as e:
    print(e.code)
PY
}
# the answer of a refresh at the provider itself, for a refresh token
refresh_error() {
    python3 - "$ISS/token" "$1" <<'PY'
import json, sys, urllib.request, urllib.parse, urllib.error
data = urllib.parse.urlencode({"grant_type": "refresh_token", "refresh_token": sys.argv[2],
                               "client_id": "hpcport"}).encode()
try:
    urllib.request.urlopen(sys.argv[1], data=data, timeout=10); print("ok")
except urllib.error.HTTPError as e:
    print(json.load(e).get("error"))
PY
}
sum() { sha256sum "$1" 2>/dev/null | cut -d' ' -f1; }
# make the stored access token look 2 minutes old (the file keeps its mode)
age_access_token() {
    python3 - "$F" <<'PY'
import json, sys, time
with open(sys.argv[1], "r+") as f:
    d = json.load(f); d["expires_at"] = int(time.time()) - 120
    f.seek(0); f.write(json.dumps(d)); f.truncate()
PY
}

# login SITE approve|deny|none: `auth login SITE` in the background, the
# browser user (approve.js) playing along, APPROVE_DELAY seconds after the
# code shows; sets LOGIN_RC, LOGIN_ERR, APPROVE_RC
login() {
    "$HP" auth login "$1" >"$T/login.out" 2>"$T/login.err" &
    local pid=$! i uri code
    for i in $(seq 1 100); do
        grep -q 'enter the code' "$T/login.err" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    uri=$(awk 'p { print $1; exit } /open$/ { p = 1 }' "$T/login.err")
    code=$(awk 'p { print $1; exit } /enter the code/ { p = 1 }' "$T/login.err")
    APPROVE_RC=none
    if [ "$2" != none ]; then
        sleep "${APPROVE_DELAY:-0}"
        node "$APPROVE" "$uri" "$code" "$2" >"$T/approve.out" 2>&1
        APPROVE_RC=$?
    fi
    wait "$pid"; LOGIN_RC=$?
    LOGIN_ERR=$(cat "$T/login.err")
}
has_all() { # TEXT STRING...: TEXT contains every STRING
    local text=$1; shift
    for s in "$@"; do contains "$text" "$s" || return 1; done
}
no_tokens_in() { # TEXT: none of the stored tokens appears in TEXT
    local at rt
    at=$(field access_token); rt=$(field refresh_token)
    [ -n "$at" ] && ! contains "$1" "$at" && { [ -z "$rt" ] || ! contains "$1" "$rt"; }
}

# ---------------------------------------------------------------- before any login
expect_rc 8 "status without any login exits 8" "$HP" auth status
check "... and says so" contains "$ERR" "not logged in to any site"
expect_rc 8 "token before login exits 8" "$HP" auth token idp
check "... telling to log in" contains "$ERR" "run 'hpcport auth login idp'"
expect_rc 0 "auth --help" "$HP" auth --help
check "... lists the four commands" contains "$OUT" "hpcport auth token SITE"
expect_rc 2 "an unknown auth command is a usage error" "$HP" auth logni idp
check "... with a suggestion" contains "$ERR" "did you mean 'login'"

# ---------------------------------------------------------------- login
login idp approve
check "login completes while the user approves in the browser (approver: $APPROVE_RC)" \
    test "$LOGIN_RC" = 0 -a "$APPROVE_RC" = 0
check "... it showed the verification URI" contains "$LOGIN_ERR" "$ISS/device"
check "... and the complete URI" contains "$LOGIN_ERR" "/device?user_code="
check "... and the subject" contains "$LOGIN_ERR" "Logged in to site 'idp' as alice"
check "the token file is mode 0600" test "$(stat -c %a "$F")" = 600
check "the token directory is mode 0700" test "$(stat -c %a "$TOKDIR")" = 700
check "a refresh token was stored" test -n "$(field refresh_token)"
check "login output shows no token" no_tokens_in "$LOGIN_ERR$(cat "$T/login.out")"

expect_rc 0 "status after login" "$HP" auth status
check "... shows site, issuer and subject" has_all "$OUT" "idp" "$ISS" "alice"
check "... and no token" no_tokens_in "$OUT$ERR"
expect_rc 0 "status --json" "$HP" auth status --json idp
check "... says a refresh token is there and the login is usable" python3 -c '
import json, sys; d = json.loads(sys.argv[1])[0]
assert d["site"] == "idp" and d["refresh_token"] is True and d["usable"] is True
assert 0 < d["expires_in"] <= 66 and d["subject"] == "alice"' "$OUT"
check "... and no token" no_tokens_in "$OUT"

# ---------------------------------------------------------------- auth token
AT1=$(field access_token); RT1=$(field refresh_token)
expect_rc 0 "auth token" "$HP" auth token idp
check "... prints the stored access token while it is fresh" test "$OUT" = "$AT1"
check "... which the provider's userinfo accepts" test "$(http_status "$ISS/me" "$OUT")" = 200
check "a made-up token is refused by userinfo (the check means something)" \
    test "$(http_status "$ISS/me" "x$OUT")" = 401

sleep 7   # 66 - 7 < 60: the next `auth token` refreshes
expect_rc 0 "auth token after the access token nears its end" "$HP" auth token idp
check "... gives a new access token" test -n "$OUT" -a "$OUT" != "$AT1"
check "... which userinfo accepts" test "$(http_status "$ISS/me" "$OUT")" = 200
check "... stored" test "$(field access_token)" = "$OUT"
RT2=$(field refresh_token)
check "... the refresh token was rotated and the new one stored" test -n "$RT2" -a "$RT2" != "$RT1"
check "... refreshed_at recorded" test -n "$(field refreshed_at)"
check "... the file is still 0600" test "$(stat -c %a "$F")" = 600
check "... no temporary file is left" test -z "$(ls -A "$TOKDIR" | grep -v -e '^idp.json$' -e '^.idp.lock$')"

# two processes that need a refresh at once: the lock makes the second use
# what the first stored (without it, it would spend the rotated-away refresh
# token, and the provider would revoke the whole grant)
age_access_token
"$HP" auth token idp >"$T/tok1" 2>"$T/tokerr1" & p1=$!
"$HP" auth token idp >"$T/tok2" 2>"$T/tokerr2" & p2=$!
wait "$p1"; r1=$?; wait "$p2"; r2=$?
check "two auth token at once both succeed (exit $r1 and $r2)" test "$r1" = 0 -a "$r2" = 0
check "... with the same, new token" test -s "$T/tok1" -a "$(cat "$T/tok1")" = "$(cat "$T/tok2")"
check "... which userinfo accepts" test "$(http_status "$ISS/me" "$(cat "$T/tok1")")" = 200
# last: spending a rotated-away refresh token makes the provider revoke the
# whole grant (reuse detection), so log in afresh after it
check "the provider no longer takes the refresh token rotated away" \
    test "$(refresh_error "$RT1")" = invalid_grant
login idp approve
check "a new login replaces the record" test "$LOGIN_RC" = 0 -a "$(field refresh_token)" != "$RT2"

# ---------------------------------------------------------------- permissions
chmod 644 "$F"
expect_rc 6 "a token file with mode 0644 is refused" "$HP" auth token idp
check "... naming the file and the chmod" has_all "$ERR" "'$F' is open to other users (mode 0644)" "chmod 600 $F"
check "... and no token printed" test -z "$OUT"
expect_rc 6 "status refuses it too" "$HP" auth status idp
chmod 600 "$F"
chmod 755 "$TOKDIR"
expect_rc 6 "a token directory with mode 0755 is refused" "$HP" auth token idp
check "... naming the directory and the chmod" has_all "$ERR" "token directory '$TOKDIR'" "chmod 700 $TOKDIR"
chmod 700 "$TOKDIR"
ln -s "$F" "$TOKDIR/link.json"
expect_rc 6 "a token file that is a symbolic link is refused" "$HP" auth status link
check "... saying so" contains "$ERR" "is a symbolic link"
rm -f "$TOKDIR/link.json"
if [ "$(id -u)" = 0 ]; then
    chown 1:1 "$F"
    expect_rc 6 "a token file owned by another user is refused" "$HP" auth token idp
    check "... saying whose it is" contains "$ERR" "belongs to uid 1"
    chown 0:0 "$F"
fi
expect_rc 0 "with 0600/0700 back, auth token works" "$HP" auth token idp

# ---------------------------------------------------------------- denied, Ctrl-C
S0=$(sum "$F")
login idp deny
check "a denied login fails with exit 4 (approver: $APPROVE_RC)" test "$LOGIN_RC" = 4 -a "$APPROVE_RC" = 0
check "... saying it was denied" has_all "$LOGIN_ERR" "login to site 'idp' was denied" "access_denied"
check "... the old login is kept" test "$(sum "$F")" = "$S0"
expect_rc 0 "... and still works" "$HP" auth token idp

"$HP" auth login idp >"$T/login.out" 2>"$T/login.err" &
pid=$!
for i in $(seq 1 100); do grep -q 'enter the code' "$T/login.err" && break; sleep 0.1; done
kill -INT "$pid"; wait "$pid"; rc=$?
check "Ctrl-C during the login wait exits 130" test "$rc" = 130
check "... saying nothing changed" contains "$(cat "$T/login.err")" "login interrupted; nothing was changed"
check "... the old login is kept" test "$(sum "$F")" = "$S0"

# ---------------------------------------------------------------- slow_down
# provider C answers the first poll with slow_down: the next poll comes 5 s
# later (interval 1 s + 5 s), and the login still completes
if OIDC_SLOW_DOWN=1 "$HARNESS/oidc-start.sh" "$T/idp3" >"$T/start.err" 2>&1; then
    site_yaml idp3 "$(. "$T/idp3/oidc.env"; echo "$OIDC_ISSUER")" > "$SITES/idp3.yaml"
    t0=$SECONDS
    APPROVE_DELAY=2 login idp3 approve
    check "a login told to slow down completes (exit $LOGIN_RC)" test "$LOGIN_RC" = 0
    check "... after waiting 5 s more ($((SECONDS - t0)) s)" test $((SECONDS - t0)) -ge 6
    "$HARNESS/oidc-stop.sh" "$T/idp3"
else
    fail "the slow_down provider starts: $(cat "$T/start.err")"
fi

# ---------------------------------------------------------------- https, private CA
# provider D serves https with a certificate from a CA of this test: refused
# without oauth.ca_file, accepted with it
mkdir -p "$T/tls"
(
    cd "$T/tls" &&
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
        -subj "/CN=hpcport test CA" &&
    openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj "/CN=127.0.0.1" &&
    printf 'subjectAltName=IP:127.0.0.1\n' > ext &&
    openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem \
        -days 2 -extfile ext
) >"$T/tls/log" 2>&1 || fail "test certificates: $(tail -3 "$T/tls/log")"
if OIDC_TLS_CERT=$T/tls/srv.pem OIDC_TLS_KEY=$T/tls/srv.key \
       "$HARNESS/oidc-start.sh" "$T/idp4" >"$T/start.err" 2>&1; then
    ISS4=$(. "$T/idp4/oidc.env"; echo "$OIDC_ISSUER")
    check "provider D's issuer is https ($ISS4)" contains "$ISS4" "https://127.0.0.1:"
    site_yaml tls "$ISS4" > "$SITES/tls.yaml"
    { site_yaml tlsca "$ISS4"; echo "  ca_file: $T/tls/ca.pem"; } > "$SITES/tlsca.yaml"
    expect_rc 6 "https with a certificate from an unknown CA is refused" "$HP" auth login tls
    check "... saying why and what to set" has_all "$ERR" "certificate" "oauth.ca_file"
    NODE_EXTRA_CA_CERTS=$T/tls/ca.pem login tlsca approve
    check "with oauth.ca_file the https login completes (exit $LOGIN_RC)" test "$LOGIN_RC" = 0
    expect_rc 0 "... and auth token works over https" "$HP" auth token tlsca
    check "... with a token the provider accepts" python3 -c '
import ssl, sys, urllib.request
r = urllib.request.Request(sys.argv[1] + "/me", headers={"Authorization": "Bearer " + sys.argv[2]})
assert urllib.request.urlopen(r, context=ssl.create_default_context(cafile=sys.argv[3])).status == 200
' "$ISS4" "$OUT" "$T/tls/ca.pem"
    expect_rc 0 "... logout over https" "$HP" auth logout tlsca
    check "... revoked without a warning" eval '! contains "$ERR" "could not revoke"'
    "$HARNESS/oidc-stop.sh" "$T/idp4"
else
    fail "the https provider starts: $(cat "$T/start.err")"
fi

# ---------------------------------------------------------------- expired device code
login idp2 none
check "a login code that expires unapproved fails with exit 4" test "$LOGIN_RC" = 4
check "... saying it expired and what to do" has_all "$LOGIN_ERR" "login code for site 'idp2' expired" "run 'hpcport auth login idp2' again"
check "... nothing is stored" test ! -e "$TOKDIR/idp2.json"

# ---------------------------------------------------------------- revoked refresh token
RT=$(field refresh_token)
st=$(http_status "$ISS/token/revocation" "" token="$RT" token_type_hint=refresh_token client_id=hpcport)
check "the refresh token is revoked at the provider (HTTP $st)" test "$st" = 200
age_access_token
S1=$(sum "$F")
expect_rc 4 "auth token with a revoked refresh token exits 4" "$HP" auth token idp
check "... saying it was refused and to log in again" has_all "$ERR" "refused the refresh token" "invalid_grant" "run 'hpcport auth login idp'"
check "... no token in the message" no_tokens_in "$ERR"
check "... the record is kept" test "$(sum "$F")" = "$S1"
login idp approve
check "a new login after the revocation works" test "$LOGIN_RC" = 0
expect_rc 0 "... and auth token too" "$HP" auth token idp
check "... with a token userinfo accepts" test "$(http_status "$ISS/me" "$OUT")" = 200

# ---------------------------------------------------------------- corrupt files
cp -p "$F" "$T/good.json"
printf '{"version": 1, "access_token": "SECRETXYZ" oops' > "$F"
expect_rc 3 "a corrupt token file is a clear error (exit 3)" "$HP" auth token idp
check "... naming the file and the way out" has_all "$ERR" "token file '$F' is not a valid token record" "run 'hpcport auth login idp'"
check "... without quoting the file's content" eval '! contains "$ERR" SECRETXYZ'
printf '{"version": 1, "site": "idp"}' > "$F"
expect_rc 3 "a token file missing members is a clear error" "$HP" auth token idp
check "... saying which" contains "$ERR" '"issuer" is missing'
: > "$F"
expect_rc 3 "an empty token file is a clear error" "$HP" auth status idp
head -c 3000000 /dev/zero > "$F"
expect_rc 3 "a huge token file is a clear error" "$HP" auth token idp
cp -p "$T/good.json" "$F"
expect_rc 0 "the good file back works" "$HP" auth token idp

# ---------------------------------------------------------------- hostile names
for bad in ../x ../../etc/passwd '.hidden' 'a/b' '' '-x'; do
    for sub in login token logout status; do
        expect_rc 2 "auth $sub '$bad' is refused" "$HP" auth "$sub" -- "$bad"
        contains "$ERR" "is not a site name" || fail "... auth $sub '$bad' says why: $ERR"
    done
done
check "... and nothing was written outside the token directory" \
    test ! -e "$XDG_CONFIG_HOME/hpcport/x.json" -a ! -e "$XDG_CONFIG_HOME/x.json"
expect_rc 4 "a site without an oauth section is refused" "$HP" auth token local
check "... saying what to add" contains "$ERR" "has no oauth section"
printf 'name: plain\nscheduler:\n  type: local\noauth:\n  issuer: http://id.example.org\n  client_id: x\n' > "$SITES/plain.yaml"
expect_rc 3 "an http issuer that is not loopback is refused by the schema" "$HP" auth login plain
check "... pointing at oauth.issuer" has_all "$ERR" "plain.yaml:5:11" "/oauth/issuer"
rm -f "$SITES/plain.yaml"

# ---------------------------------------------------------------- logout
AT=$(field access_token); RT=$(field refresh_token)
expect_rc 0 "logout" "$HP" auth logout idp
check "... deletes the token file" test ! -e "$F"
check "... revoked the access token at the provider" test "$(http_status "$ISS/me" "$AT")" = 401
check "... and the refresh token" test "$(refresh_error "$RT")" = invalid_grant
expect_rc 0 "logout again does nothing and succeeds" "$HP" auth logout idp
check "... saying so" contains "$ERR" "not logged in to site 'idp'"
expect_rc 8 "status of a logged-out site exits 8" "$HP" auth status idp

# ---------------------------------------------------------------- provider down
login idp approve
check "login for the provider-down test" test "$LOGIN_RC" = 0
age_access_token
S2=$(sum "$F")
"$HARNESS/oidc-stop.sh" "$T/idp"
expect_rc 6 "auth token with the provider down exits 6" "$HP" auth token idp
check "... saying the provider cannot be reached and the login is kept" \
    has_all "$ERR" "cannot reach the identity provider" "stored login is kept"
check "... the record is unchanged" test "$(sum "$F")" = "$S2"
expect_rc 0 "status works with the provider down" "$HP" auth status idp
check "... and shows the refresh token" contains "$OUT" "expired    yes"
expect_rc 6 "login with the provider down is a clear error" "$HP" auth login idp
check "... naming the discovery URL" contains "$ERR" "$ISS/.well-known/openid-configuration"
check "... the record is unchanged" test "$(sum "$F")" = "$S2"
expect_rc 0 "logout with the provider down still deletes" "$HP" auth logout idp
check "... warning that it could not revoke" contains "$ERR" "could not revoke"
check "... the file is gone" test ! -e "$F"

reports=$(ls "$T"/sanitizer* 2>/dev/null)
check "no sanitizer reports from any hpcport command" test -z "$reports"
for f in $reports; do sed 's/^/# /' "$f" | head -20; done
done_testing
