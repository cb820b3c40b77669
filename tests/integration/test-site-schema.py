#!/usr/bin/python3
"""Cross-check schemas/site.schema.json with python-jsonschema (TAP).

usage: test-site-schema.py SRCDIR

The schema must itself be a valid draft-07 schema, and every profile that
hpcport accepts must validate: the valid fixtures, the fixtures' base
profiles, the bundled profiles and the examples. Schema-level invalid
fixtures (those whose expected error comes from the schema, not from
hpcport's own checks) must be rejected too."""
import glob
import json
import os
import sys

try:
    import jsonschema
    import yaml
except ImportError as e:
    print("1..0 # SKIP %s" % e)
    sys.exit(0)

# Errors that hpcport reports from its own checks after the schema passed.
OWN_CHECKS = ("bad duration", "bad memory size", "has no scheduler type",
              "does not match the file name", "is only for scheduler type pbs",
              "is 'proxy' but network.proxy", "is not one of scheduler.partitions",
              "duplicate partition", "is longer than scheduler.max_walltime",
              "extends cycle", "unknown site", "duplicate key",
              "mapping values are not allowed", "is only for scheduler type slurmrest",
              "needs scheduler.rest.url", "scheduler.rest.proxy names no proxy",
              "needs scheduler.rest.token.key_file")


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "."
    os.chdir(src)
    n = 0
    failed = 0

    def report(ok, what):
        nonlocal n, failed
        n += 1
        if not ok:
            failed += 1
        print("%s %d - %s" % ("ok" if ok else "not ok", n, what))

    with open("schemas/site.schema.json") as f:
        schema = json.load(f)
    try:
        jsonschema.Draft7Validator.check_schema(schema)
        report(True, "site.schema.json is a valid draft-07 schema")
    except jsonschema.SchemaError as e:
        report(False, "site.schema.json: %s" % e.message)
    validator = jsonschema.Draft7Validator(schema)

    valid = sorted(glob.glob("tests/fixtures/site/valid/*.yaml") +
                   glob.glob("tests/fixtures/site/config/sites/*.yaml") +
                   glob.glob("sites/profiles/*.yaml") +
                   glob.glob("examples/sites/*.yaml"))
    for path in valid:
        with open(path) as f:
            doc = yaml.safe_load(f)
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        report(not errors, "%s validates%s" % (
            path, "" if not errors else ": %s at /%s" % (
                errors[0].message, "/".join(str(p) for p in errors[0].path))))

    for path in sorted(glob.glob("tests/fixtures/site/invalid/*.yaml")):
        with open(path[:-5] + ".err") as f:
            expected = f.read()
        if any(s in expected for s in OWN_CHECKS):
            continue
        if not expected.startswith(path + ":"):
            continue        # the error lies in another file
        with open(path) as f:
            doc = yaml.safe_load(f)
        report(not validator.is_valid(doc), "%s is rejected by the schema" % path)

    print("1..%d" % n)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
