#!/usr/bin/env python3
"""dist.dashboard: dist/grafana/ioserve.json is a Grafana dashboard that
parses, shows what issue 13 promises (request rate, p50 and p99 per model,
active connections, reloads, hand-overs, fallbacks, refusals), and uses
only metric names that ioserve exports: the names come from the /metrics
of a real ioserve started here (its TYPE lines), plus what
tests/dist/awaiting-merge lists as not in this tree yet.

  test_dashboard.py SOURCE_DIR IOSERVE_BIN PLUGIN_DIR
"""
import json
import os
import re
import shutil
import sys
import tempfile

from ioserve_run import Failure, Ioserve, awaiting_merge, exported_names, main

NAME = re.compile(r"\bioserve_[a-z0-9_]+\b")
DUR = "ioserve_request_duration_seconds"

# What the issue asks the dashboard to show: a PromQL fragment each.
PROMISED = {
    "request rate per model": "sum by (model) (rate(%s_count" % DUR,
    "p50 per model": "histogram_quantile(0.5, sum by (model, le) (rate(%s_bucket" % DUR,
    "p99 per model": "histogram_quantile(0.99, sum by (model, le) (rate(%s_bucket" % DUR,
    "active connections": "ioserve_connections_active",
    "reloads": "ioserve_reloads_total",
    "hand-overs": "ioserve_connections_handed_over_total",
    "fallbacks": "ioserve_model_fallbacks_total",
    "refusals": "ioserve_connections_refused_total",
}


def queries(dashboard):
    """Every PromQL text of the dashboard: panel targets and template
    variable queries, as (where, text)."""
    out = []

    def walk(node, where):
        if isinstance(node, dict):
            here = node.get("title") or node.get("name") or where
            for key, value in node.items():
                if key in ("expr", "definition") and isinstance(value, str):
                    out.append((here, value))
                elif key == "query" and isinstance(value, str) and node.get("type") == "query":
                    out.append((here, value))
                else:
                    walk(value, here)
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    walk(dashboard, "dashboard")
    return out


def check_shape(d):
    for key in ("title", "uid", "panels", "schemaVersion", "templating"):
        if key not in d:
            raise Failure("the dashboard has no %r" % key)
    panels = [p for p in d["panels"] if p.get("type") != "row"]
    if not panels:
        raise Failure("the dashboard has no panels")
    for p in panels:
        if not p.get("targets") or not all(t.get("expr") for t in p["targets"]):
            raise Failure("panel %r has a target without a query" % p.get("title"))
        if not {"x", "y", "w", "h"} <= set(p.get("gridPos", {})):
            raise Failure("panel %r has no gridPos" % p.get("title"))
    return panels


def test():
    src, binary, plugin_dir = sys.argv[1:4]
    path = os.path.join(src, "dist", "grafana", "ioserve.json")
    try:
        with open(path) as f:
            dashboard = json.load(f)
    except ValueError as e:
        raise Failure("%s does not parse: %s" % (path, e))
    panels = check_shape(dashboard)
    texts = queries(dashboard)
    joined = "\n".join(t for _, t in texts)
    for what, fragment in PROMISED.items():
        if fragment not in joined:
            raise Failure("the dashboard does not show %s (no query holds %r)" % (what, fragment))

    tmp = tempfile.mkdtemp(prefix="ioserve-dashboard.")
    server = Ioserve(binary, plugin_dir, tmp)
    try:
        exposition = server.start().metrics()
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    exported = exported_names(exposition)
    if not exported:
        raise Failure("no TYPE line in /metrics:\n%s" % exposition)

    pending = {name for (kind, name) in awaiting_merge() if kind == "metric"}
    for name in sorted(pending):
        if name in exported:
            raise Failure("ioserve exports %s now: delete its line in tests/dist/awaiting-merge"
                          % name)
    waiting = set()
    for where, text in texts:
        for name in NAME.findall(text):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if name in exported:
                continue
            if base in pending:
                waiting.add(base)
                continue
            raise Failure("panel %r uses %s, which ioserve does not export (exported: %s)" %
                          (where, name, ", ".join(sorted(exported))))
    print("%d panels, %d queries; every metric name is exported by ioserve%s" %
          (len(panels), len(texts),
           "" if not waiting else " or awaits a merge (%s)" % ", ".join(sorted(waiting))))
    return 0


if __name__ == "__main__":
    main(test)
