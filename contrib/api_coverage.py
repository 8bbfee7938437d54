#!/usr/bin/env python3
"""Write docs/api-coverage.md from the Engine API v1.41 spec and the daemon's route and model tables.

    python contrib/api_coverage.py            # (re)write the document
    python contrib/api_coverage.py --check    # exit 1 if it is out of date or lists an ignored parameter

The spec is the copy kept in ``docs/reference/``, or where ``--spec`` or ``DOCKYARD_API_SPEC`` points.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dockyard.daemon import coverage

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "api-coverage.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="do not write; fail if the document is stale")
    parser.add_argument("--spec", type=Path, help="path of moby-api-v1.41.yaml")
    args = parser.parse_args()
    spec_path = args.spec or coverage.find_spec(ROOT)
    if not spec_path.is_file():
        print("cannot find moby-api-v1.41.yaml: pass --spec or set DOCKYARD_API_SPEC", file=sys.stderr)
        return 2
    rows = coverage.statuses(coverage.spec_rows(coverage.load_spec(spec_path)), coverage.app_endpoints())
    text = coverage.render(rows)
    bad = [r for r in rows if r.status not in coverage.ALLOWED_STATUSES]
    for row in bad:
        print(f"{row.status}: {row.method} {row.path} {row.where} {row.param}", file=sys.stderr)
    if args.check:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC.relative_to(ROOT)} is out of date: run contrib/api_coverage.py", file=sys.stderr)
            return 1
        return 1 if bad else 0
    DOC.write_text(text)
    print(f"wrote {DOC.relative_to(ROOT)}: {len(rows)} rows, {len(bad)} ignored or missing")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
