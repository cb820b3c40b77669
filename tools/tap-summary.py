#!/usr/bin/env python3
"""Count test cases across a meson test log: each TAP line `ok`/`not ok` is one
case; a test that printed no TAP line counts as one case by its result; a
test whose process failed although every TAP line passed adds one failure.
Prints the totals as the last line: N passed, N failed, N skipped."""
import json
import re
import sys

TAP = re.compile(r'^(not ok|ok)\b(.*)$')


def main(path):
    passed = failed = skipped = 0
    try:
        lines = open(path, encoding='utf-8', errors='replace').read().splitlines()
    except OSError as e:
        print('tap-summary: cannot read %s: %s' % (path, e), file=sys.stderr)
        print('0 passed, 1 failed')
        return 1
    for line in lines:
        if not line.strip():
            continue
        t = json.loads(line)
        res = t.get('result', '')
        p = f = s = 0
        for out in (t.get('stdout') or '').splitlines():
            m = TAP.match(out.strip())
            if not m:
                continue
            rest = m.group(2)
            if re.search(r'#\s*SKIP', rest, re.I):
                s += 1
            elif m.group(1) == 'ok' or re.search(r'#\s*TODO', rest, re.I):
                p += 1
            else:
                f += 1
        if p + f + s == 0:
            if res in ('OK', 'EXPECTEDFAIL'):
                p = 1
            elif res == 'SKIP':
                s = 1
            else:
                f = 1
        elif res not in ('OK', 'EXPECTEDFAIL', 'SKIP') and f == 0:
            f = 1
            print('tap-summary: %s ended %s after passing its cases' % (t.get('name'), res),
                  file=sys.stderr)
        passed += p
        failed += f
        skipped += s
    print('%d passed, %d failed, %d skipped' % (passed, failed, skipped))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))
