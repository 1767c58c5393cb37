#!/usr/bin/env python3
"""Merges the tables every benchmark of tools/bench.sh left in DIR (save_session.json,
share.json, blocklist.json, perf.json, watermark/watermark.json) into DIR/report.json, one document;
perf.json's TLS table is also at `tls`."""

import json
import os
import sys


def main():
    out = sys.argv[1]
    parts = {
        "save_session": os.path.join(out, "save_session.json"),
        "share": os.path.join(out, "share.json"),
        "blocklist": os.path.join(out, "blocklist.json"),
        "functions": os.path.join(out, "perf.json"),
        "watermark": os.path.join(out, "watermark", "watermark.json"),
    }
    report = {}
    for name, path in parts.items():
        if os.path.exists(path):
            with open(path) as f:
                report[name] = json.load(f)
        else:
            report[name] = None
            print(f"report.py: {path} is missing", file=sys.stderr)
    # The TLS figures (issue 20: the first request after a cold start) under a key of their own.
    report["tls"] = (report["functions"] or {}).get("tls")
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {os.path.join(out, 'report.json')}")
    if any(v is None for v in report.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
