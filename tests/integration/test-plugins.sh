#!/bin/bash
# Adapter plugins, driven through the real binary: the example "fork" plugin
# (tests/integration/plugin/fork.c, built by meson as a shared module) runs
# real workflows with `hpcport run`; `hpcport adapters` lists it; plugins
# with another ABI, no render hook, no entry point, another adapter's name, an
# undefined symbol, and a file that is no shared object are refused with
# their reason while other sites go on working; the installed headers and
# hpcport-adapter.pc build a plugin outside the tree.
# usage: test-plugins.sh PLUGIN_BUILD_DIR BUILD_ROOT
PLUGINS=$1
BUILD=$2
. "$(dirname "$0")/tap.sh"
export HPCPORT_PLUGIN_PATH="$PLUGINS" XDG_DATA_HOME="$T/nodata"
jget() { /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

# --- hpcport adapters
expect_rc 0 "adapters lists" "$HP" adapters
check "built-in local listed" grep -qE '^local +1 +built-in +render submit' "$T/out"
check "built-in slurm lists its check hook" grep -qE '^slurm +1 +built-in .* check$' "$T/out"
check "fork plugin listed with its file and hooks" \
    grep -qE "^fork +1 +$PLUGINS/fork.so +render submit status cancel open close prepare collect check\$" "$T/out"
check "the plugin's summary and version" contains "$OUT" "fork: jobs as background processes on the login host (version 1.0)"
check "wrong ABI refused, naming the file" \
    contains "$OUT" "adapter plugin $PLUGINS/badabi.so: ABI 2, this hpcport speaks 1; rebuild the plugin against this hpcport's headers"
check "missing render refused" \
    contains "$OUT" "adapter plugin $PLUGINS/norender.so: adapter 'norender' has no render hook"
check "missing entry point refused" \
    contains "$OUT" "adapter plugin $PLUGINS/noentry.so: no symbol 'hpcport_adapter'"
check "not a shared object refused" \
    contains "$OUT" "adapter plugin $PLUGINS/notelf.so: cannot load it: invalid ELF header"
check "undefined symbol refused" \
    contains "$OUT" "adapter plugin $PLUGINS/undefsym.so: cannot load it: undefined symbol: hp_function_from_the_future"
check "name mismatch refused" \
    contains "$OUT" "adapter plugin $PLUGINS/wrongname.so: it defines adapter 'other', but a file wrongname.so must define adapter 'wrongname'"
check "a plugin that crashes while loading is refused, and adapters survives it" \
    contains "$OUT" "adapter plugin $PLUGINS/crashload.so: it crashed while loading (signal 11, Segmentation fault)"
check "a plugin that exits while loading is refused" \
    contains "$OUT" "adapter plugin $PLUGINS/exitload.so: it ended the process while loading (exit 42)"
check "the plugin path is shown with its sources" contains "$OUT" "  $PLUGINS (HPCPORT_PLUGIN_PATH)"
check "XDG data dir is on the path" contains "$OUT" "  $T/nodata/hpcport/adapters (XDG_DATA_HOME, missing)"
expect_rc 0 "adapters --json" "$HP" adapters --json
check "--json: fork with origin, abi and hooks" test "$(jget "$T/out" \
    "[(a['origin'],a['abi'],a['version'],'collect' in a['hooks'],'wait' in a['hooks']) for a in d['adapters'] if a['name']=='fork']")" \
    = "[('$PLUGINS/fork.so', 1, '1.0', True, False)]"
check "--json: refused plugins with their errors" test "$(jget "$T/out" \
    "sorted((r['name'], r['path'] in r['error']) for r in d['refused'])")" \
    = "[('badabi', True), ('crashload', True), ('exitload', True), ('noentry', True), ('norender', True), ('notelf', True), ('undefsym', True), ('wrongname', True)]"
check "--json: the declared ABI of a refused plugin" test "$(jget "$T/out" \
    "[r['abi'] for r in d['refused'] if r['name']=='badabi']")" = "[2]"
check "--json: built-ins" test "$(jget "$T/out" "[a['name'] for a in d['adapters'] if a['origin']=='built-in'][:2]")" = "['local', 'slurm']"
expect_rc 0 "adapters --help" "$HP" adapters --help
check "help names the plugin path" contains "$OUT" "HPCPORT_PLUGIN_PATH"
expect_rc 2 "adapters takes no argument" "$HP" adapters fork
expect_rc 2 "adapters: unknown option" "$HP" adapters --jsn

# --- a real workflow through the plugin: the sweep example, staged to the
# site's scratch, run as background processes, outputs fetched back
cp -r "$SRC/examples/sweep" "$T/wf"
cp -r "$SRC/examples/sweep" "$T/wf-local"
mkdir -p "$T/wf/sites"
cat > "$T/wf/sites/forksite.yaml" <<Y
description: jobs as background processes, through the fork adapter plugin
scheduler: {type: fork}
filesystems: {scratch: $T/scratch}
Y
expect_rc 0 "plan on a plugin site" "$HP" plan "$T/wf/sweep.yaml" --site forksite
check "plan header names the plugin adapter" contains "$OUT" "on site 'forksite' (fork): 4 tasks, 23 jobs"
check "the plugin rendered the script" contains "$OUT" "cd '$T/scratch/hpcport/sweep/work' || exit 1"
check "user values are quoted" contains "$OUT" "exec 'sh' 'scripts/gen.sh' '1' 'data/seed-1.txt' >'$T/scratch/hpcport/sweep/logs/"
expect_rc 0 "run the sweep through the plugin" "$HP" run "$T/wf/sweep.yaml" --site forksite
check "all 23 completed" contains "$OUT" "23 of 23 completed"
expect_rc 0 "the same sweep on the local site" "$HP" run "$T/wf-local/sweep.yaml" --campaign sweep-local
check "the plugin's outputs equal the local site's" diff -r "$T/wf-local/out" "$T/wf/out"
check "summary equal too" cmp "$T/wf-local/summary.txt" "$T/wf/summary.txt"
check "jobs ran in the site's scratch" test -s "$T/scratch/hpcport/sweep/work/summary.txt"
expect_rc 0 "status of the plugin campaign" "$HP" status sweep --json --tasks
check "status records the site and 23 completed" test "$(jget "$T/out" "(d['site'], d['counts']['completed'])")" = "('forksite', 23)"

# failure, exit codes and logs fetched by the plugin's collect hook
cat > "$T/wf/fail.yaml" <<'Y'
name: pfail
tasks:
  speak:
    shell: echo "said 'it'"; echo complaint >&2
  bad:
    shell: echo trying; exit 3
  after:
    after: bad
    command: [true]
Y
expect_rc 1 "a failing task: run exits 1" "$HP" run "$T/wf/fail.yaml" --site forksite
"$HP" status pfail --json --tasks > "$T/pf.json"
check "speak completed" test "$(jget "$T/pf.json" "[i['state'] for i in d['instances'] if i['id']=='speak'][0]")" = completed
check "bad failed with exit 3" \
    test "$(jget "$T/pf.json" "[(i['state'],i['exit_code']) for i in d['instances'] if i['id']=='bad'][0]")" = "('failed', 3)"
check "its dependent was canceled" \
    test "$(jget "$T/pf.json" "[i['state'] for i in d['instances'] if i['id']=='after'][0]")" = canceled
expect_rc 0 "logs of a plugin job" "$HP" logs pfail speak
check "stdout fetched" test "$OUT" = "said 'it'"
expect_rc 0 "stderr of a plugin job" "$HP" logs pfail speak --stderr
check "stderr fetched" test "$OUT" = "complaint"

# cancel: the engine stops the plugin's job through its cancel hook
cat > "$T/wf/long.yaml" <<Y
name: plong
tasks:
  sleeper:
    shell: echo \$\$ > $T/sleeper.pid; exec sleep 300
Y
"$HP" run "$T/wf/long.yaml" --site forksite > "$T/long.out" 2>&1 &
runpid=$!
for _ in $(seq 100); do [ -s "$T/sleeper.pid" ] && break; sleep 0.1; done
check "the long job started" test -s "$T/sleeper.pid"
expect_rc 0 "cancel the plugin campaign" "$HP" cancel plong
wait "$runpid"
gone=no
for _ in $(seq 50); do kill -0 "$(cat "$T/sleeper.pid")" 2>/dev/null || { gone=yes; break; }; sleep 0.1; done
check "the job's process is gone" test "$gone" = yes
"$HP" status plong --json --tasks > "$T/pl.json"
check "the instance is canceled" \
    test "$(jget "$T/pl.json" "[i['state'] for i in d['instances']][0]")" = canceled

# site check through the plugin's check hook
expect_rc 0 "site check on a plugin site" "$HP" site check forksite --workflow "$T/wf/sweep.yaml"
check "the plugin's check rows" grep -qE "setsid +ok +found" "$T/out"

# --- refusals at plan and run time, positioned at scheduler.type
for p in badabi norender noentry notelf undefsym wrongname crashload exitload; do
    printf 'scheduler:\n  type: %s\n' "$p" > "$T/wf/sites/use-$p.yaml"
done
expect_rc 4 "plan on a site whose plugin has another ABI" "$HP" plan "$T/wf/sweep.yaml" --site use-badabi
check "the error is at scheduler.type and names the file" contains "$ERR" \
    "$T/wf/sites/use-badabi.yaml:2:9: error: site 'use-badabi': adapter plugin $PLUGINS/badabi.so: ABI 2, this hpcport speaks 1; rebuild the plugin against this hpcport's headers (at /scheduler/type)"
expect_rc 4 "run on it is refused too" "$HP" run "$T/wf/sweep.yaml" --site use-badabi --campaign nope
check "run says why" contains "$ERR" "ABI 2, this hpcport speaks 1"
expect_rc 8 "nothing was created" "$HP" status nope
expect_rc 4 "a plugin without render" "$HP" plan "$T/wf/sweep.yaml" --site use-norender
check "names the missing hook" contains "$ERR" "norender.so: adapter 'norender' has no render hook"
expect_rc 4 "a plugin without the entry point" "$HP" plan "$T/wf/sweep.yaml" --site use-noentry
check "names the missing symbol" contains "$ERR" "noentry.so: no symbol 'hpcport_adapter'"
expect_rc 4 "a file that is no shared object" "$HP" plan "$T/wf/sweep.yaml" --site use-notelf
check "dlopen's reason" contains "$ERR" "notelf.so: cannot load it: invalid ELF header"
expect_rc 4 "a plugin that crashes at load: plan refuses it and lives" \
    "$HP" plan "$T/wf/sweep.yaml" --site use-crashload
check "names the adapter file and the signal" contains "$ERR" "crashload.so: it crashed while loading (signal 11"
expect_rc 4 "a plugin whose constructor exits: run refuses it" \
    "$HP" run "$T/wf/sweep.yaml" --site use-exitload --campaign nope2
check "says so" contains "$ERR" "exitload.so: it ended the process while loading (exit 42)"
expect_rc 0 "other sites still work beside the broken plugins" \
    "$HP" plan "$T/wf/sweep.yaml" --site local --lint
expect_rc 4 "a plugin with an undefined symbol" "$HP" plan "$T/wf/sweep.yaml" --site use-undefsym
check "names the symbol" contains "$ERR" "undefined symbol: hp_function_from_the_future"
expect_rc 4 "a plugin defining another adapter" "$HP" plan "$T/wf/sweep.yaml" --site use-wrongname
check "names both names" contains "$ERR" "it defines adapter 'other', but a file wrongname.so must define adapter 'wrongname'"
expect_rc 4 "type from --set" "$HP" plan "$T/wf/sweep.yaml" --site forksite --set scheduler.type=badabi
check "the error says it came from --set" contains "$ERR" "site 'forksite' (scheduler.type from --set): adapter plugin $PLUGINS/badabi.so"
printf 'scheduler:\n  type: frok\n' > "$T/wf/sites/typo.yaml"
expect_rc 4 "an unknown scheduler type" "$HP" plan "$T/wf/sweep.yaml" --site typo
check "suggests the plugin and names the directories searched" contains "$ERR" \
    "$T/wf/sites/typo.yaml:2:9: error: site 'typo': unknown scheduler 'frok' (did you mean 'fork'?): it is not a built-in adapter (local, slurm"
check "the message lists the plugin directories" contains "$ERR" \
    "and no adapter plugin frok.so is in $PLUGINS, $T/nodata/hpcport/adapters and "
printf 'scheduler:\n  type: slrum\n' > "$T/wf/sites/typo2.yaml"
expect_rc 4 "a misspelt built-in" "$HP" plan "$T/wf/sweep.yaml" --site typo2
check "suggests the built-in" contains "$ERR" "unknown scheduler 'slrum' (did you mean 'slurm'?)"
expect_rc 4 "validate wants an adapter for the scheduler, too" "$HP" validate "$T/wf/sites/typo.yaml"
check "... with did-you-mean over the plugins" contains "$ERR" "typo.yaml:2:9: error: site 'typo': unknown scheduler 'frok' (did you mean 'fork'?)"
printf 'scheduler:\n  type: fork\n' > "$T/wf/sites/useplugin.yaml"
expect_rc 0 "validate accepts the name of an installed plugin" "$HP" validate "$T/wf/sites/useplugin.yaml"
printf 'scheduler:\n  type: "Fork it"\n' > "$T/wf/sites/badname.yaml"
expect_rc 3 "a type that cannot name an adapter is a schema error" "$HP" validate "$T/wf/sites/badname.yaml"
check "positioned" contains "$ERR" "badname.yaml:2:9: error: does not match pattern"

# other sites are untouched by the broken plugins on the path
expect_rc 0 "the local site still plans" "$HP" plan "$SRC/examples/hello/hello.yaml"
cp -r "$SRC/examples/hello" "$T/hello"
expect_rc 0 "and runs" "$HP" run "$T/hello/hello.yaml"
check "hello ran" test -s "$T/hello/hello.txt"

# --- search order: HPCPORT_PLUGIN_PATH, then $XDG_DATA_HOME/hpcport/adapters
export XDG_DATA_HOME="$T/data"
mkdir -p "$XDG_DATA_HOME/hpcport/adapters" "$T/ww" "$T/empty"
cp "$PLUGINS/fork.so" "$XDG_DATA_HOME/hpcport/adapters/fork.so"
cp "$PLUGINS/fork.so" "$XDG_DATA_HOME/hpcport/adapters/slurm.so"
expect_rc 0 "adapters with a plugin in the XDG data dir" env HPCPORT_PLUGIN_PATH="$T/empty" "$HP" adapters
check "found there" grep -qE "^fork +1 +$XDG_DATA_HOME/hpcport/adapters/fork.so " "$T/out"
check "a plugin cannot replace a built-in" contains "$OUT" "$XDG_DATA_HOME/hpcport/adapters/slurm.so: adapter 'slurm' is built in"
expect_rc 0 "HPCPORT_PLUGIN_PATH comes first" "$HP" adapters
check "the XDG copy is shadowed" contains "$OUT" "$XDG_DATA_HOME/hpcport/adapters/fork.so: $PLUGINS/fork.so comes first"
cp "$PLUGINS/fork.so" "$T/ww/fork.so"
chmod o+w "$T/ww/fork.so"
expect_rc 4 "a plugin every user may write to is refused" env HPCPORT_PLUGIN_PATH="$T/ww" "$HP" plan "$T/wf/sweep.yaml" --site forksite
check "says why" contains "$ERR" "$T/ww/fork.so: every user may write to it"
export XDG_DATA_HOME="$T/nodata"

# --- a plugin built outside the tree from the installed headers and
# hpcport-adapter.pc, as a plugin author would
if DESTDIR= meson install -C "$BUILD" --no-rebuild --tags devel --destdir "$T/inst" > "$T/install.log" 2>&1; then
    ok "meson install --tags devel"
    pc=$(find "$T/inst" -name hpcport-adapter.pc | head -1)
    check "hpcport-adapter.pc installed" test -n "$pc"
    check "the public header installed" test -n "$(find "$T/inst" -path '*/include/hpcport/hpcport-adapter.h')"
    cflags=$(PKG_CONFIG_SYSROOT_DIR="$T/inst" PKG_CONFIG_PATH="$(dirname "$pc")" pkg-config --cflags hpcport-adapter)
    mkdir -p "$T/ext"
    check "a plugin compiles with pkg-config's flags alone" \
        cc -std=c11 -Wall -Wextra -Werror -shared -fPIC $cflags -o "$T/ext/fork.so" "$SRC/tests/integration/plugin/fork.c"
    expect_rc 0 "adapters lists the external build" env HPCPORT_PLUGIN_PATH="$T/ext" "$HP" adapters
    check "loaded, not refused" grep -qE "^fork +1 +$T/ext/fork.so +render" "$T/out"
    cp -r "$SRC/examples/hello" "$T/hello-ext"
    mkdir -p "$T/hello-ext/sites"
    printf 'scheduler: {type: fork}\nfilesystems: {scratch: %s}\n' "$T/scratch-ext" > "$T/hello-ext/sites/ext.yaml"
    expect_rc 0 "it runs a workflow" env HPCPORT_PLUGIN_PATH="$T/ext" "$HP" run "$T/hello-ext/hello.yaml" --site ext --campaign hello-ext
    check "output fetched" test -s "$T/hello-ext/hello.txt"
else
    fail "meson install --tags devel"; sed 's/^/# /' "$T/install.log" | tail -5
fi
done_testing
