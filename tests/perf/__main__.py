"""Run every benchmark and print one markdown table, also written to a file with a chart.

    python -m tests.perf [--quick] [--out DIR]

Each figure stands beside its ceiling measured in the same run.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
from pathlib import Path

from tests.perf.chart import draw_chart
from tests.perf.report import Row, format_table

SUITES = (
    "core",
    "devices",
    "server",
    "server_redis",
    "coalescing",
    "convergence",
    "repaint",
    "scale",
    "catchup",
)
"""Benchmark modules under tests.perf, each with ``run(quick) -> list[Row]``."""


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.perf", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer iterations, for a smoke run")
    parser.add_argument("--out", type=Path, default=Path("perf-results"), help="output folder")
    parser.add_argument("--only", nargs="*", choices=SUITES, help="run only these suites")
    args = parser.parse_args()
    sections: list[str] = [
        f"optisync performance — {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d')}",
    ]
    all_rows: list[Row] = []
    for suite in args.only or SUITES:
        module = importlib.import_module(f"tests.perf.{suite}")
        started = time.perf_counter()
        rows: list[Row] = module.run(quick=args.quick)
        took = time.perf_counter() - started
        table = format_table(f"{suite} ({took:.0f} s)", rows)
        print(table + "\n", flush=True)
        sections.append(table)
        all_rows.extend(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "perf.md").write_text("\n\n".join(sections) + "\n")
    draw_chart(all_rows, args.out / "perf.png", "optisync benchmarks")
    missed = [row.name for row in all_rows if row.met is False]
    print(
        f"wrote {args.out / 'perf.md'} and {args.out / 'perf.png'}; targets missed: {len(missed)}"
    )
    for name in missed:
        print(f"  missed: {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
