#!/bin/bash
# `hpcport site deploy` through the real binary onto the harness's login node
# (reached through the bastion, host keys checked strictly): a dry run copies
# nothing; the first deploy uploads, checks and links; a second one says
# "already deployed" and leaves the file alone (same inode and mtime); the
# deployed binary runs over `hpcport ssh`; a second build is linked instead
# and --prune removes the first; --list and --json.
# Refusals, made real with files that truly do not fit this site (the
# harness's login node is this machine, so hpcport itself always fits):
# a copy of hpcport whose ELF header says aarch64; a program linked with a
# library the site does not have (built here, not installed there); a
# program that does not run as hpcport does (the trial run fails and the
# copy is removed). The other mismatches (glibc 2.17, musl, ppc64le) are unit
# tests on recorded probe output (tests/unit/test-deploy.c).
# Needs HP_HARNESS_DIR (tests/harness/with-services.sh); fails without it.
# Installs into the harness test user's ~/.local/share/hpcport: run it alone.
. "$(dirname "$0")/tap.sh"
. "$(dirname "$0")/site-lib.sh"

TAG="hpd$$"
BIN=.local/share/hpcport/bin
RBIN=$HP_H_USER_HOME/$BIN
cat > "$SITES/dp.yaml" <<EOF
name: dp
scheduler:
  type: slurm
  partitions: [{name: debug, max_walltime: 30m}]
$(site_login_yaml)
EOF
rsh() { "${SSH[@]}" "$@"; }
cleanup() {
    rsh "rm -rf ~/.local/share/hpcport ~/.$TAG" >/dev/null 2>&1
    rm -rf "$T"
}
trap cleanup EXIT
rsh "rm -rf ~/.local/share/hpcport"

# --- usage
expect_rc 0 "deploy --help" "$HP" site deploy --help
check "deploy --help has the synopsis" contains "$OUT" "usage: hpcport site deploy NAME"
expect_rc 2 "deploy without a name is a usage error" "$HP" site deploy
expect_rc 2 "--list with --prune is a usage error" "$HP" site deploy dp --list --prune
expect_rc 4 "deploy to an unknown site exits 4" "$HP" site deploy nosuchsite
expect_rc 6 "--binary that is not there (exit 6)" "$HP" site deploy dp --binary "$T/nothing"
check "... names the file" contains "$ERR" "$T/nothing"

# --- dry run: probe and compare, copy nothing
expect_rc 0 "deploy --dry-run" "$HP" site deploy dp --dry-run
check "--dry-run: the site can run it" contains "$OUT" "site 'dp' can run this binary (x86_64, glibc"
check "--dry-run: nothing on the site" rsh "test ! -e ~/.local/share/hpcport"

# --- first deploy
SUM=$(sha256sum "$HP" | cut -c1-64)
NAME=hpcport-$("$HP" version | awk '{print $2}')-${SUM:0:12}
expect_rc 0 "deploy uploads" "$HP" site deploy dp
check "deploy: says deployed, with the path" contains "$OUT" "deployed hpcport "
check "deploy: the versioned path" contains "$OUT" ": $RBIN/$NAME"
check "deploy: the link" contains "$OUT" "link: $RBIN/hpcport -> $NAME (updated)"
check "deploy: tells how to set remote.hpcport" contains "$OUT" "--set remote.hpcport=$RBIN/hpcport"
check "deploy: the remote file is hpcport, byte for byte" \
    test "$(rsh "sha256sum $BIN/$NAME" | cut -c1-64)" = "$SUM"
check "deploy: mode 0755" test "$(rsh "stat -c %a $BIN/$NAME")" = 755
check "deploy: the link points at it (relative)" test "$(rsh "readlink $BIN/hpcport")" = "$NAME"
check "deploy: no trial or partial file left" test "$(rsh "ls -A $BIN" | sort | tr '\n' ' ')" = "hpcport $NAME "
STAT1=$(rsh "stat -c '%i %Y' $BIN/$NAME")

# --- the deployed binary runs over ssh, and remote.hpcport can name it
expect_rc 0 "the deployed hpcport runs over hpcport ssh" "$HP" ssh dp -- "$RBIN/hpcport" version
check "... and is this version" test "$OUT" = "$("$HP" version)"

# --- second deploy: nothing copied
sleep 1.1   # a copy would change the mtime
expect_rc 0 "second deploy" "$HP" site deploy dp --set "remote.hpcport=$RBIN/hpcport"
check "second deploy: already deployed" contains "$OUT" "already deployed hpcport "
check "second deploy: the link is left alone" contains "$OUT" "link: $RBIN/hpcport -> $NAME"
check "second deploy: ... not updated" eval '! contains "$OUT" "(updated)"'
check "second deploy: remote.hpcport is noticed" contains "$OUT" "remote.hpcport of site 'dp' is this link already"
check "second deploy: same inode and mtime (not uploaded)" test "$(rsh "stat -c '%i %Y' $BIN/$NAME")" = "$STAT1"
expect_rc 0 "deploy --json" "$HP" site deploy dp --json
echo "$OUT" > "$T/d.json"
check "--json: uploaded false" test "$(jget "$T/d.json" "d['uploaded']")" = False
check "--json: sha256" test "$(jget "$T/d.json" "d['sha256']")" = "$SUM"
check "--json: link" test "$(jget "$T/d.json" "d['link']")" = "$RBIN/hpcport"
check "--json: arch" test "$(jget "$T/d.json" "d['arch']")" = x86_64

# --- the link removed by hand: put back, nothing copied
rsh "rm $BIN/hpcport"
expect_rc 0 "deploy after the link was removed" "$HP" site deploy dp
check "... already deployed, link updated" contains "$OUT" "-> $NAME (updated)"
check "... the link is back" test "$(rsh "readlink $BIN/hpcport")" = "$NAME"

# --- another build (hpcport with bytes appended: another hash), then prune
cp "$HP" "$T/hp2" && printf 'another build' >> "$T/hp2"
SUM2=$(sha256sum "$T/hp2" | cut -c1-64)
NAME2=hpcport-$("$HP" version | awk '{print $2}')-${SUM2:0:12}
expect_rc 0 "deploy --binary another build" "$HP" site deploy dp --binary "$T/hp2"
check "... deployed and linked" contains "$OUT" "link: $RBIN/hpcport -> $NAME2 (updated)"
expect_rc 0 "deploy --list" "$HP" site deploy dp --list
# (listed by name: the order of the two follows their hashes)
check "--list: both versions, the new one linked" \
    test "$(printf '%s\n' "$OUT" | sort)" = "$(printf '%s\n' "  $RBIN/$NAME" "* $RBIN/$NAME2" | sort)"
expect_rc 0 "deploy --list --json" "$HP" site deploy dp --list --json
echo "$OUT" > "$T/l.json"
check "--list --json: current" test "$(jget "$T/l.json" "d['current']")" = "$NAME2"
expect_rc 0 "deploy --binary --prune" "$HP" site deploy dp --binary "$T/hp2" --prune
check "--prune: already deployed" contains "$OUT" "already deployed"
check "--prune: names the removed version" contains "$OUT" "pruned: $NAME"
check "--prune: only the linked version is left" test "$(rsh "ls -A $BIN" | sort | tr '\n' ' ')" = "hpcport $NAME2 "

# --- refusals; each leaves the site as it was
before=$(rsh "ls -A $BIN; readlink $BIN/hpcport")
# an ELF file for another machine (e_machine = 183, EM_AARCH64)
cp "$HP" "$T/arm"
printf '\267\000' | dd of="$T/arm" bs=1 seek=18 conv=notrunc status=none
expect_rc 4 "an aarch64 binary is refused (exit 4)" "$HP" site deploy dp --binary "$T/arm"
check "... naming the difference" contains "$ERR" "the binary is for aarch64, the site is x86_64"
check "... and how to build hpcport there" contains "$ERR" "hpcport cp -r SRC dp:hpcport-src"
check "... with the build commands" contains "$ERR" "sh tools/install-deps.sh && meson setup build && ninja -C build', and set remote.hpcport to $HP_H_USER_HOME/hpcport-src/build/hpcport"

# a program linked with a library that exists here, in $T, and not on the site
mkdir -p "$T/lib"
printf 'int hpd_answer(void) { return 42; }\n' > "$T/lib/a.c"
printf 'int hpd_answer(void);\nint main(void) { return hpd_answer() == 42 ? 0 : 1; }\n' > "$T/m.c"
cc -shared -fPIC -Wl,-soname,libhpdeploy-test.so.1 -o "$T/lib/libhpdeploy-test.so.1" "$T/lib/a.c" &&
    ln -s libhpdeploy-test.so.1 "$T/lib/libhpdeploy-test.so" &&
    cc -o "$T/needs-lib" "$T/m.c" -L"$T/lib" -lhpdeploy-test
check "the test program links its library" test -x "$T/needs-lib"
expect_rc 4 "a binary needing a library the site lacks is refused" \
    "$HP" site deploy dp --binary "$T/needs-lib"
check "... naming the library" contains "$ERR" "libraries missing on the site (ldconfig -p): libhpdeploy-test.so.1"

# a program that fits but does not run as hpcport: the trial run fails
printf '#include <stdio.h>\nint main(void) { fputs("trial: cannot start\\n", stderr); return 3; }\n' > "$T/bad.c"
cc -o "$T/bad" "$T/bad.c"
expect_rc 4 "a binary whose trial run fails is refused" "$HP" site deploy dp --binary "$T/bad"
check "... with its error" contains "$ERR" "cannot run this hpcport binary: trial: cannot start"
check "refusals left the site as it was (no trial file, same link)" \
    test "$(rsh "ls -A $BIN; readlink $BIN/hpcport")" = "$before"

check_sanitizers
done_testing
