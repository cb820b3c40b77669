#!/usr/bin/python3
"""schemas/endpoint.openapi.yaml parses as OpenAPI 3.0 (the parts we rely on:
paths, methods, $refs that resolve, the bearer scheme), and its paths and
methods are exactly the routes the server has (hp_ep_routes[] in
remote/endpoint-http.c). TAP output. usage: test-endpoint-openapi.py SRCDIR"""
import re
import sys

import yaml

src = sys.argv[1]
n = 0
failed = 0


def check(desc, cond):
    global n, failed
    n += 1
    if not cond:
        failed += 1
    print(("ok" if cond else "not ok") + " %d - %s" % (n, desc))


with open(src + "/schemas/endpoint.openapi.yaml") as f:
    doc = yaml.safe_load(f)
check("the OpenAPI document parses", isinstance(doc, dict))
check("it is OpenAPI 3.0", str(doc.get("openapi", "")).startswith("3.0"))
check("it has a bearer security scheme, required globally",
      doc["components"]["securitySchemes"]["bearer"] == {
          "type": "http", "scheme": "bearer",
          "description": doc["components"]["securitySchemes"]["bearer"]["description"]}
      and doc.get("security") == [{"bearer": []}])

methods = {"get", "post", "put", "delete", "patch", "head", "options"}
documented = set()
for path, item in doc["paths"].items():
    for m in item:
        if m in methods:
            documented.add("%s %s" % (m.upper(), path))

with open(src + "/remote/endpoint-http.c") as f:
    text = f.read()
table = re.search(r"hp_ep_routes\[\] = \{(.*?)NULL,", text, re.S)
check("the server's route table is found", table is not None)
routed = set(re.findall(r'"([A-Z]+ /[^"]*)"', table.group(1) if table else ""))
check("the server routes something", len(routed) >= 10)
for r in sorted(routed - documented):
    check("route %s is documented" % r, False)
for r in sorted(documented - routed):
    check("documented %s is routed" % r, False)
check("every route is documented and every documented path is routed", routed == documented)


def refs(node, out):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                out.append(v)
            else:
                refs(v, out)
    elif isinstance(node, list):
        for v in node:
            refs(v, out)
    return out


def resolve(ref):
    node = doc
    for part in ref[2:].split("/"):
        node = node[part]
    return node


bad = []
for r in refs(doc, []):
    try:
        resolve(r)
    except (KeyError, TypeError):
        bad.append(r)
check("every $ref resolves (%s)" % (", ".join(bad) or "all"), not bad)
ops = [op for item in doc["paths"].values() for m, op in item.items() if m in methods]
check("every operation has responses and a summary",
      all("responses" in op and "summary" in op for op in ops))
check("the error codes the server sends are the documented ones",
      set(re.findall(r'\[EPC_[A-Z_]+\] = \{ "([a-z_]+)"', text)) - {"ok"} ==
      set(doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]))
print("1..%d" % n)
sys.exit(1 if failed else 0)
