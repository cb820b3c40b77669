#!/bin/bash
# Campaign provenance: `hpcport run` records the hpcport build, the workflow
# file's SHA-256, its git commit, branch and dirty state (libgit2), and the
# resolved site profile with its sources; `hpcport status --provenance` shows
# them. Real git repositories made with git(1), real runs on the local site.
. "$(dirname "$0")/tap.sh"
jget() { /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.org GIT_COMMITTER_NAME=t \
       GIT_COMMITTER_EMAIL=t@example.org GIT_CONFIG_NOSYSTEM=1 HOME="$T/home"
mkdir -p "$HOME"
git config --global init.defaultBranch main
export HPCPORT_STATE_DIR="$T/campaigns"

R=$T/repo
mkdir -p "$R/wf"
cat > "$R/wf/prov.yaml" <<'EOF'
name: prov
tasks:
  one:
    command: [sh, -c, 'echo one > one.txt']
EOF
git -C "$R" init -q
git -C "$R" add -A
git -C "$R" commit -qm first
C1=$(git -C "$R" rev-parse HEAD)

# --- a clean checkout
expect_rc 0 "run in a clean git checkout" "$HP" -q run "$R/wf/prov.yaml" --site local --campaign p1
expect_rc 0 "status --provenance --json" "$HP" status p1 --provenance --json
J=$T/out; cp "$J" "$T/p1.json"; J=$T/p1.json
check "one provenance record" test "$(jget "$J" 'len(d["provenance"])')" = 1
check "commit recorded" test "$(jget "$J" 'd["provenance"][0]["git"]["commit"]')" = "$C1"
check "branch recorded" test "$(jget "$J" 'd["provenance"][0]["git"]["branch"]')" = main
check "clean tree: not dirty" test "$(jget "$J" 'd["provenance"][0]["git"]["dirty"]')" = False
check "workflow file tracked" test "$(jget "$J" 'd["provenance"][0]["git"]["workflow_file"]')" = tracked
check "repository is the checkout" test "$(jget "$J" 'd["provenance"][0]["git"]["repository"]')" = "$R/"
check "workflow SHA-256 recorded" test "$(jget "$J" 'd["provenance"][0]["workflow"]["sha256"]')" = \
    "$(sha256sum < "$R/wf/prov.yaml" | cut -d' ' -f1)"
check "workflow path recorded" test "$(jget "$J" 'd["provenance"][0]["workflow"]["path"]')" = "$R/wf/prov.yaml"
check "the attempt counted under it" test "$(jget "$J" 'd["provenance"][0]["attempts"]')" = 1
check "site name" test "$(jget "$J" 'd["provenance"][0]["site"]["name"]')" = local
check "site sources name the bundled profile" contains "$(jget "$J" 'd["provenance"][0]["site"]["sources"]')" "<bundled>/local.yaml"
check "resolved site profile recorded" test "$(jget "$J" 'd["provenance"][0]["site"]["profile"]["scheduler"]["type"]')" = local
check "no catalog for a bundled profile" test "$(jget "$J" 'd["provenance"][0]["site"]["catalog"]')" = None
V=$("$HP" version)
check "hpcport build matches 'hpcport version'" test "hpcport $(jget "$J" 'd["provenance"][0]["hpcport"]["version"]')$(jget "$J" '" (git %s)" % d["provenance"][0]["hpcport"]["build"] if d["provenance"][0]["hpcport"]["build"] else ""')" = "$V"
check "version is VERSION or VERSION (git DESCRIBE)" \
    grep -Eqx 'hpcport [0-9]+\.[0-9]+\.[0-9]+( \(git [0-9a-f]{7,}(-dirty)?\))?' <<<"$V"
expect_rc 0 "status --provenance (text)" "$HP" status p1 --provenance
check "text names the commit" contains "$OUT" "at $C1 (main)"
check "text says not dirty" contains "$OUT" "  dirty:     no"
check "text names the attempt count" contains "$OUT" "provenance 1 (recorded "
check "text names the workflow hash" contains "$OUT" "sha256:    $(sha256sum < "$R/wf/prov.yaml" | cut -d' ' -f1)"

# --- the same run again: no new record
expect_rc 0 "rerun, nothing changed" "$HP" -q run "$R/wf/prov.yaml" --site local --campaign p1
"$HP" status p1 --provenance --json > "$T/p1b.json"
check "unchanged rerun adds no record (the output one.txt is untracked)" test "$(jget "$T/p1b.json" 'len(d["provenance"])')" = 1

# --- a dirty tree and a new task: a second record, and the new attempt under it
cat >> "$R/wf/prov.yaml" <<'EOF'
  two:
    command: [sh, -c, 'echo two > two.txt']
EOF
echo scratch > "$R/notes.txt"
expect_rc 0 "resume with a modified workflow" "$HP" -q run "$R/wf/prov.yaml" --site local --campaign p1
"$HP" status p1 --provenance --json > "$T/p1c.json"; J=$T/p1c.json
check "second record after the change" test "$(jget "$J" 'len(d["provenance"])')" = 2
check "second record: dirty" test "$(jget "$J" 'd["provenance"][1]["git"]["dirty"]')" = True
check "the modified file listed" test "$(jget "$J" 'd["provenance"][1]["git"]["changes"]')" = "['M wf/prov.yaml']"
check "untracked files (notes.txt, the output one.txt) counted, not listed" test "$(jget "$J" 'd["provenance"][1]["git"]["untracked"]')" = 2
check "workflow file: modified" test "$(jget "$J" 'd["provenance"][1]["git"]["workflow_file"]')" = modified
check "first record keeps its attempt" test "$(jget "$J" 'd["provenance"][0]["attempts"]')" = 1
check "the new task's attempt is under the second" test "$(jget "$J" 'd["provenance"][1]["attempts"]')" = 1
check "new hash in the second record" test "$(jget "$J" 'd["provenance"][1]["workflow"]["sha256"]')" = \
    "$(sha256sum < "$R/wf/prov.yaml" | cut -d' ' -f1)"
expect_rc 0 "text shows the dirty state" "$HP" status p1 --provenance
check "text lists the change" contains "$OUT" "dirty:     yes, 1 tracked file(s) differ from the commit: M wf/prov.yaml"
check "text counts untracked files" contains "$OUT" "untracked: 2 file(s)"
check "text shows both records" contains "$OUT" "provenance 2 (recorded "

# --- a site override (--set) is a source, and changes the record
expect_rc 0 "resume with --set" "$HP" -q run "$R/wf/prov.yaml" --site local --campaign p1 --set nodes.cores=1
"$HP" status p1 --provenance --json > "$T/p1d.json"
check "--set gives a third record" test "$(jget "$T/p1d.json" 'len(d["provenance"])')" = 3
check "--set named among the sources" contains "$(jget "$T/p1d.json" 'd["provenance"][2]["site"]["sources"]')" "--set"
check "the override is in the resolved profile" test "$(jget "$T/p1d.json" 'd["provenance"][2]["site"]["profile"]["nodes"]["cores"]')" = 1

# --- many changes: listed up to 50, the rest counted
for i in $(seq 1 60); do echo "$i" > "$R/f$i.txt"; done
git -C "$R" add -A; git -C "$R" commit -qm many
for i in $(seq 1 60); do echo "x$i" >> "$R/f$i.txt"; done
expect_rc 0 "run with 60 modified files" "$HP" -q run "$R/wf/prov.yaml" --site local --campaign p2
"$HP" status p2 --provenance --json > "$T/p2.json"
check "50 changes listed" test "$(jget "$T/p2.json" 'len(d["provenance"][0]["git"]["changes"])')" = 50
check "10 more counted" test "$(jget "$T/p2.json" 'd["provenance"][0]["git"]["more_changes"]')" = 10
git -C "$R" checkout -q -- .

# --- credentials never recorded: a remote URL with a password, a proxy URL
git -C "$R" remote add origin "https://alice:s3cr3t-pw@git.example.org/group/repo.git"
mkdir -p "$XDG_CONFIG_HOME/hpcport/sites"
cat > "$XDG_CONFIG_HOME/hpcport/sites/proxied.yaml" <<'EOF'
name: proxied
extends: local
network:
  compute: proxy
  proxy: http://bob:pr0xy-pw@proxy.example.org:3128
EOF
expect_rc 0 "run with secrets around" "$HP" -q run "$R/wf/prov.yaml" --site proxied --campaign p3
"$HP" status p3 --provenance --json > "$T/p3.json"
check "remote recorded without its password" test "$(jget "$T/p3.json" 'd["provenance"][0]["git"]["remote"]')" = \
    "https://alice:***@git.example.org/group/repo.git"
check "proxy recorded without its password" test "$(jget "$T/p3.json" 'd["provenance"][0]["site"]["profile"]["network"]["proxy"]')" = \
    "http://bob:***@proxy.example.org:3128"
check "no password in the state database" sh -c "! grep -rqa -e s3cr3t-pw -e pr0xy-pw '$HPCPORT_STATE_DIR'"
expect_rc 0 "text output" "$HP" status p3 --provenance
check "no password in the text" sh -c "! grep -qa -e s3cr3t-pw -e pr0xy-pw '$T/out'"
check "the user's profile file is a source" contains "$OUT" "$XDG_CONFIG_HOME/hpcport/sites/proxied.yaml"

# --- no repository, and a repository without commits
mkdir -p "$T/plain"
cp "$R/wf/prov.yaml" "$T/plain/"
expect_rc 0 "run outside any git repository" env GIT_CEILING_DIRECTORIES="$T" "$HP" -q run "$T/plain/prov.yaml" --site local --campaign p4
"$HP" status p4 --provenance --json > "$T/p4.json"
check "git is null outside a repository" test "$(jget "$T/p4.json" 'd["provenance"][0]["git"]')" = None
expect_rc 0 "text: not in a repository" "$HP" status p4 --provenance
check "text says so" contains "$OUT" "git:       not in a git repository"
git -C "$T/plain" init -q
expect_rc 0 "run in a repository with no commit" "$HP" -q run "$T/plain/prov.yaml" --site local --campaign p5
"$HP" status p5 --provenance --json > "$T/p5.json"
check "no commit yet: null" test "$(jget "$T/p5.json" 'd["provenance"][0]["git"]["commit"]')" = None
check "workflow file untracked" test "$(jget "$T/p5.json" 'd["provenance"][0]["git"]["workflow_file"]')" = untracked
expect_rc 0 "text: no commit yet" "$HP" status p5 --provenance
check "text says no commit yet" contains "$OUT" "(no commit yet)"

# --- a campaign made before provenance existed (state version 1) is upgraded
/usr/bin/python3 - "$HPCPORT_STATE_DIR/campaigns/p4/state.db" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.executescript("DROP TABLE provenance; ALTER TABLE attempts DROP COLUMN prov; PRAGMA user_version = 1;")
db.close()
EOF
expect_rc 0 "status of a version-1 campaign" "$HP" status p4 --provenance
check "says none was recorded" contains "$OUT" "provenance: none recorded"
check "the database was upgraded" test "$(/usr/bin/python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA user_version").fetchone()[0])' "$HPCPORT_STATE_DIR/campaigns/p4/state.db")" = 2
expect_rc 0 "an upgraded campaign records its next run" env GIT_CEILING_DIRECTORIES="$T" "$HP" -q run "$T/plain/prov.yaml" --site local --campaign p4
"$HP" status p4 --provenance --json > "$T/p4b.json"
check "one record after the upgrade" test "$(jget "$T/p4b.json" 'len(d["provenance"])')" = 1

# --- a profile from the site catalog: its URL and pinned commit recorded
CAT=$T/catalog
mkdir -p "$CAT/sites"
printf 'name: cat-local\nextends: local\ndescription: a local site from the catalog\n' > "$CAT/sites/cat-local.yaml"
git -C "$CAT" init -q; git -C "$CAT" add -A; git -C "$CAT" commit -qm catalog
CC=$(git -C "$CAT" rev-parse HEAD)
expect_rc 0 "sites sync of a file:// catalog" "$HP" sites sync "file://$CAT"
expect_rc 0 "run on a catalog profile" env GIT_CEILING_DIRECTORIES="$T" "$HP" -q run "$T/plain/prov.yaml" --site cat-local --campaign p6
"$HP" status p6 --provenance --json > "$T/p6.json"
check "catalog commit recorded" test "$(jget "$T/p6.json" 'd["provenance"][0]["site"]["catalog"]["commit"]')" = "$CC"
check "catalog URL recorded" test "$(jget "$T/p6.json" 'd["provenance"][0]["site"]["catalog"]["url"]')" = "file://$CAT"
expect_rc 0 "text names the catalog" "$HP" status p6 --provenance
check "text: catalog line" contains "$OUT" "catalog:   file://$CAT at $CC"

# --- usage
expect_rc 2 "--provenance needs a campaign" "$HP" status --provenance
check "says so" contains "$ERR" "--provenance need a campaign"
expect_rc 0 "status --help names --provenance" "$HP" status --help
check "help text" contains "$OUT" "--provenance"
done_testing
