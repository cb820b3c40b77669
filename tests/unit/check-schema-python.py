#!/usr/bin/python3
"""Cross-check schemas/workflow.schema.json with python-jsonschema (TAP).

usage: check-schema-python.py SRCDIR YAML2JSON

Documents are read with hpcport's own loader (YAML2JSON, built from
tests/unit/wf-yaml2json.c) so both validators see the same JSON.
  - the schema is a valid draft-07 schema;
  - every valid fixture and every workflow among examples/*/*.yaml (a
    mapping with 'tasks') passes;
  - every invalid fixture that loads is rejected, except those listed in
    SEMANTIC below, which the schema cannot express (they are checked by
    core/workflow*.c) and which the schema must therefore accept; a fixture
    that does not load at all (syntax, duplicate keys, limits) is skipped.
"""
import glob
import json
import os
import subprocess
import sys

SEMANTIC = {
    # resources whose syntax the C parser checks
    "bad-memory", "bad-walltime", "site-override-bad-walltime",
    # the task graph
    "cycle", "self-dependency", "unknown-dependency", "dependency-no-match",
    # the matrix
    "duplicate-value", "duplicate-zip-row", "empty-range", "exclude-everything",
    "exclude-unknown-param", "exclude-unknown-value", "param-product-and-zip",
    "reserved-parameter", "zip-length",
    # templates and what they expand to
    "unknown-template", "template-in-defaults", "shell-braces", "unmatched-brace",
    "empty-program", "output-absolute", "output-dotdot", "output-subst-absolute",
    "output-subst-dotdot",
}

n = 0
failed = 0


def tap(ok, name, diag=None, skip=None):
    global n, failed
    n += 1
    line = "%sok %d - %s" % ("" if ok else "not ", n, name)
    if skip:
        line += " # SKIP " + skip
    print(line)
    if not ok:
        failed += 1
    if diag:
        for d in diag.splitlines():
            print("# " + d)


def main():
    src, y2j = sys.argv[1], os.path.abspath(sys.argv[2])
    try:
        import jsonschema
    except ImportError:
        print("1..0 # SKIP python3-jsonschema is not installed")
        return 0
    os.chdir(src)
    with open("schemas/workflow.schema.json") as f:
        schema = json.load(f)
    try:
        jsonschema.Draft7Validator.check_schema(schema)
        tap(True, "workflow schema is a valid draft-07 schema")
    except jsonschema.SchemaError as e:
        tap(False, "workflow schema is a valid draft-07 schema", str(e))
        print("1..%d" % n)
        return 1
    v = jsonschema.Draft7Validator(schema)

    def load(path):
        p = subprocess.run([y2j, path], capture_output=True, text=True)
        if p.returncode != 0:
            return None, p.stderr.strip()
        return json.loads(p.stdout), None

    good = sorted(glob.glob("tests/fixtures/workflow/valid/*.yaml"))
    good += sorted(glob.glob("examples/*/*.yaml"))
    for path in good:
        doc, err = load(path)
        if doc is None:
            tap(False, path, "does not load: " + err)
            continue
        if path.startswith("examples/") and not (isinstance(doc, dict) and "tasks" in doc):
            continue   # a site profile, not a workflow
        errs = list(v.iter_errors(doc))
        tap(not errs, path, "\n".join("/%s: %s" % ("/".join(map(str, e.absolute_path)),
                                                   e.message) for e in errs[:3]))

    seen = set()
    for path in sorted(glob.glob("tests/fixtures/workflow/invalid/*.yaml")):
        name = os.path.basename(path)[:-5]
        seen.add(name)
        doc, err = load(path)
        if doc is None:
            tap(True, path, skip="does not load (%s)" % err.split(": error: ", 1)[-1])
            continue
        best = jsonschema.exceptions.best_match(v.iter_errors(doc))
        if name in SEMANTIC:
            tap(best is None, path + " (semantic: the schema accepts it)",
                best and "python-jsonschema rejects it: " + best.message +
                "; move it out of SEMANTIC")
        else:
            where = "/" + "/".join(map(str, best.absolute_path)) if best else ""
            tap(best is not None, path + " (schema rejects it)",
                "python-jsonschema accepts it" if best is None else
                "python: %s: %s" % (where, best.message))
    for name in sorted(SEMANTIC - seen):
        tap(False, "SEMANTIC lists '%s', which has no fixture" % name)
    print("1..%d" % n)
    return 1 if failed else 0


sys.exit(main())
