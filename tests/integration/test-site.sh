#!/bin/bash
# hpcport site list / show, driven through the real binary: layers, origins,
# --set, typos, unknown names, --json.
# usage: test-site.sh [HPCPORT]   (or HPCPORT=... in the environment)
. "$(dirname "$0")/tap.sh"

PY=/usr/bin/python3
CFG="$XDG_CONFIG_HOME/hpcport/sites"
mkdir -p "$CFG" "$T/wf/sites"
TAB=$(printf '\t')

cat > "$CFG/mysite.yaml" <<'Y'
description: my test cluster
scheduler:
  type: slurm
  account: "<ACCOUNT>"
  partitions:
    - {name: cpu, max_walltime: 12h}
    - {name: gpu, max_walltime: 6h, gpus_per_node: 4}
network: {login: open, compute: none}
modules: [gcc]
Y
cat > "$CFG/mygpu.yaml" <<'Y'
extends: mysite
description: my test cluster, GPU partition
scheduler:
  default_partition: gpu
Y
cat > "$T/wf/sites/mygpu.yaml" <<'Y'
scheduler:
  account: m1234
Y
echo 'name: wf' > "$T/wf/wf.yaml"
cat > "$CFG/typo.yaml" <<'Y'
scheduler:
  type: slurm
  acount: m1
Y
printf 'extends: loop2\n' > "$CFG/loop1.yaml"
printf 'extends: loop1\n' > "$CFG/loop2.yaml"

# --- help and usage errors
expect_rc 0 "site --help exits 0" "$HP" site --help
check "site --help shows both synopses" contains "$OUT" "usage: hpcport site list"
check "site --help shows show's synopsis" contains "$OUT" "   or: hpcport site show"
expect_rc 0 "site list --help exits 0" "$HP" site list --help
check "site list --help is list's" contains "$OUT" "usage: hpcport site list [--json]"
expect_rc 0 "site show -h exits 0" "$HP" site show -h
check "site show -h documents --set" contains "$OUT" "--set KEY=VALUE"
expect_rc 0 "help site exits 0" "$HP" help site
expect_rc 2 "site without a command is a usage error" "$HP" site
check "usage text on stderr" contains "$ERR" "usage: hpcport site list"
expect_rc 2 "unknown site command" "$HP" site lsit
check "suggests 'list'" contains "$ERR" "'lsit' is not a site command (did you mean 'list'?)"
expect_rc 2 "show without a name" "$HP" site show
check "says the name is missing" contains "$ERR" "no site name given"
expect_rc 2 "unknown option" "$HP" site show mysite --colour
check "names the option" contains "$ERR" "unknown option '--colour'"
expect_rc 2 "--set is not a list option" "$HP" site list --set a=b
expect_rc 2 "--workflow and --dir together" "$HP" site show mysite --dir "$T/wf" --workflow "$T/wf/wf.yaml"
expect_rc 2 "extra argument" "$HP" site show mysite other
expect_rc 2 "--dir that does not exist" "$HP" site list --dir "$T/nowhere"
check "names the folder" contains "$ERR" "--dir '$T/nowhere': no such directory"

# --- list
expect_rc 0 "site list" "$HP" site list
check "broken profiles reported on stderr" contains "$ERR" "typo.yaml:3:3: error: unknown key 'acount'"
check "header" contains "$(echo "$OUT" | head -1)" "NAME"
check "local is bundled" grep -qE "^local +local +<bundled>/local.yaml +this machine" "$T/out"
check "user profile listed with its file" grep -qE "^mysite +slurm +$CFG/mysite.yaml +my test cluster\$" "$T/out"
check "extending profile gets the parent's scheduler" grep -qE "^mygpu +slurm " "$T/out"
aligned() {
    # every line has its second column start where the header's SCHEDULER does
    awk -v FS='\n' 'NR == 1 { col = index($0, "SCHEDULER"); src = index($0, "SOURCE"); next }
        { if (substr($0, col - 2, 2) != "  " || substr($0, col, 1) == " " ||
              substr($0, src - 2, 2) != "  " || substr($0, src, 1) == " ") bad = 1 }
        END { exit bad }' "$T/out"
}
check "columns are aligned" aligned
check "sorted by name" bash -c "cut -d' ' -f1 '$T/out' | tail -n +2 | sort -c"
expect_rc 0 "site list --dir" "$HP" site list --dir "$T/wf"
check "the workflow layer is mygpu's source" grep -qE "^mygpu +slurm +$T/wf/sites/mygpu.yaml " "$T/out"
expect_rc 0 "site list --json" "$HP" site list --json
check "list --json parses, sorted, with sources" "$PY" -c '
import json, sys
l = json.load(open(sys.argv[1]))
names = [e["name"] for e in l]
assert names == sorted(names), names
e = {x["name"]: x for x in l}
assert e["local"]["source"] == "<bundled>/local.yaml"
assert e["mysite"]["scheduler"] == "slurm" and e["mysite"]["error"] is None
assert "unknown key" in e["typo"]["error"] and e["typo"]["scheduler"] is None
' "$T/out"

# --- show: origins
expect_rc 0 "site show" "$HP" site show mysite
check "origin TAB key=value" grep -qxF "$CFG/mysite.yaml:3:9${TAB}scheduler.type=slurm" "$T/out"
check "name first, defaulted from the file" bash -c "head -1 '$T/out' | grep -qxF '$CFG/mysite.yaml:1:1${TAB}name=mysite'"
check "list entries numbered" grep -qxF "$CFG/mysite.yaml:9:11${TAB}modules.0=gcc" "$T/out"
check "partition fields" grep -qxF "$CFG/mysite.yaml:7:52${TAB}scheduler.partitions.1.gpus_per_node=4" "$T/out"
expect_rc 0 "site show --no-origin" "$HP" site show mysite --no-origin
check "no origins" grep -qxF "scheduler.type=slurm" "$T/out"
check "no tabs at all" bash -c "! grep -q '$TAB' '$T/out'"
expect_rc 0 "site show through extends and layers" "$HP" site show mygpu --dir "$T/wf"
check "parent's value keeps the parent's origin" grep -qxF "$CFG/mysite.yaml:3:9${TAB}scheduler.type=slurm" "$T/out"
check "child's value" grep -qxF "$CFG/mygpu.yaml:4:22${TAB}scheduler.default_partition=gpu" "$T/out"
check "workflow layer wins" grep -qxF "$T/wf/sites/mygpu.yaml:2:12${TAB}scheduler.account=m1234" "$T/out"
check "extends shown" grep -qxF "$CFG/mygpu.yaml:1:10${TAB}extends=mysite" "$T/out"
expect_rc 0 "--workflow FILE uses the file's folder" "$HP" site show mygpu --workflow "$T/wf/wf.yaml"
check "same workflow layer" grep -qxF "$T/wf/sites/mygpu.yaml:2:12${TAB}scheduler.account=m1234" "$T/out"
expect_rc 0 "site show local" "$HP" site show local
check "detected cores" grep -qE "^<detected>${TAB}nodes.cores=[1-9][0-9]*\$" "$T/out"
check "bundled origin" grep -qE "^<bundled>/local.yaml:[0-9]+:[0-9]+${TAB}scheduler.type=local\$" "$T/out"
expect_rc 0 "site show by path" "$HP" site show "$SRC/examples/sites/example-slurm.yaml"
check "example's origins are its file" grep -qF "$SRC/examples/sites/example-slurm.yaml:11:9${TAB}scheduler.type=slurm" "$T/out"

# --- show: --set
expect_rc 0 "--set values" "$HP" site show mysite --set scheduler.account=m99 \
    --set 'network.no_proxy=[a, b]' --set scheduler.partitions.0.max_walltime=2h \
    --set=scheduler.max_queued_jobs=10
check "--set origin" grep -qxF -- "--set${TAB}scheduler.account=m99" "$T/out"
check "--set list" grep -qxF -- "--set${TAB}network.no_proxy.1=b" "$T/out"
check "--set into a list entry" grep -qxF -- "--set${TAB}scheduler.partitions.0.max_walltime=2h" "$T/out"
check "--set=K=V form" grep -qxF -- "--set${TAB}scheduler.max_queued_jobs=10" "$T/out"
check "siblings keep their file origin" grep -qxF "$CFG/mysite.yaml:6:14${TAB}scheduler.partitions.0.name=cpu" "$T/out"
expect_rc 2 "--set typo" "$HP" site show mysite --set scheduler.acount=m1
check "--set typo names the flag and suggests" contains "$ERR" \
    "hpcport: error: --set 'scheduler.acount=m1': unknown key 'acount' (did you mean 'account'?) (at /scheduler/acount)"
expect_rc 2 "--set without '='" "$HP" site show mysite --set scheduler.account
check "bad --set syntax" contains "$ERR" "bad --set 'scheduler.account': expected KEY=VALUE"
expect_rc 2 "--set with a bad duration" "$HP" site show mysite --set scheduler.max_walltime=soon
check "bad duration blamed on --set" contains "$ERR" "--set 'scheduler.max_walltime=soon': bad duration 'soon'"
expect_rc 2 "--set wrong type" "$HP" site show mysite --set 'modules=gcc'
check "type error" contains "$ERR" "expected array, got string (at /modules)"

# --- errors
expect_rc 4 "unknown site" "$HP" site show mysiet
check "did you mean" contains "$ERR" "hpcport: error: unknown site 'mysiet' (did you mean 'mysite'?); see 'hpcport site list'"
expect_rc 3 "a typo in a profile" "$HP" site show typo
check "positioned error" contains "$ERR" "$CFG/typo.yaml:3:3: error: unknown key 'acount' (did you mean 'account'?) (at /scheduler/acount)"
expect_rc 4 "extends cycle" "$HP" site show loop1
check "cycle named" contains "$ERR" "error: extends cycle: loop1 -> loop2 -> loop1 (at /extends)"
expect_rc 8 "missing file" "$HP" site show "$T/nope.yaml"

# --- show --json
expect_rc 0 "site show --json" "$HP" site show mygpu --dir "$T/wf" --json --set scheduler.qos=high
check "json: name, profile, origins" "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["name"] == "mygpu"
p = d["profile"]
assert p["scheduler"]["type"] == "slurm" and p["scheduler"]["account"] == "m1234"
assert p["scheduler"]["partitions"][1]["gpus_per_node"] == 4
o = d["origins"]
assert o["/scheduler/qos"] == "--set", o
assert o["/scheduler/type"].endswith("/sites/mysite.yaml:3:9"), o
assert o["/modules/0"].endswith("/sites/mysite.yaml:9:11"), o
assert "/scheduler" not in o   # leaves only
' "$T/out"
expect_rc 0 "site show --json --no-origin" "$HP" site show mysite --json --no-origin
check "json without origins" "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert "origins" not in d and d["profile"]["name"] == "mysite"
' "$T/out"

# --- a scheduler no adapter implements: validate says so, at scheduler.type
printf 'name: typo\nscheduler:\n  type: slrum\n' > "$T/typo.yaml"
expect_rc 4 "validate: a scheduler without an adapter is an error" "$HP" validate "$T/typo.yaml"
check "validate: ... positioned at scheduler.type, with did-you-mean" contains "$ERR" \
    "$T/typo.yaml:3:9: error: site 'typo': unknown scheduler 'slrum' (did you mean 'slurm'?)"

done_testing
