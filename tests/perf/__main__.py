"""Run every benchmark and print one markdown table, also written to a file with a chart.

    python -m tests.perf [--quick] [--out DIR] [--only SUITE ...]

Each figure stands beside its ceiling measured in the same run. Progress goes
to stderr while a suite runs; a missed target is a MISSED line and exit code 1.
Each suite also runs alone: python -m tests.perf.SUITE [--quick].
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
from pathlib import Path

from tests.perf.chart import draw_chart
from tests.perf.cli import bench_parser, progress, verdict
from tests.perf.report import Row, format_table

SUITES = (
    "core",
    "devices",
    "server",
    "server_redis",
    "coalescing",
    "convergence",
    "repaint",
    "diagram",
    "scale",
    "curve",
    "spaces",
    "spaces_redis",
    "catchup",
    "scrape",
)
"""Benchmark modules under tests.perf, each with ``run(quick) -> list[Row]``."""


def main() -> int:
    parser = bench_parser("python -m tests.perf", __doc__)
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
        with progress(suite):
            rows: list[Row] = module.run(quick=args.quick)
        took = time.perf_counter() - started
        table = format_table(f"{suite} ({took:.0f} s)", rows)
        print(table + "\n", flush=True)
        sections.append(table)
        all_rows.extend(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "perf.md").write_text("\n\n".join(sections) + "\n")
    draw_chart(all_rows, args.out / "perf.png", "optisync benchmarks")
    print(f"wrote {args.out / 'perf.md'} and {args.out / 'perf.png'}")
    return verdict(all_rows)


if __name__ == "__main__":
    sys.exit(main())
