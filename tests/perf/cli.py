"""The benchmarks' command line: ``--help``, progress while measuring, and a verdict.

Every ``python -m tests.perf.X`` goes through :func:`bench_main`: ``--help``
prints the module's docstring and exits without measuring; while a suite
runs, a line on stderr names each figure as it is measured and, when a
measurement takes long, says it is still going; at the end a missed target
is a ``MISSED`` line and exit code 1.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

from tests.perf import report
from tests.perf.report import Row, print_table

__all__ = ["bench_main", "bench_parser", "progress", "verdict"]

HEARTBEAT = 10.0
"""Seconds of silence after which a running suite says it is still measuring."""


def bench_parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    """A parser whose ``--help`` shows ``doc`` as written (not reflowed into one line)."""
    parser = argparse.ArgumentParser(
        prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer iterations, for a smoke run")
    return parser


@contextlib.contextmanager
def progress(suite: str) -> Iterator[None]:
    """Say on stderr when ``suite`` starts, each figure it measures, when it is still
    going after :data:`HEARTBEAT` seconds of silence, and when it is done."""
    started = time.monotonic()
    last = [started]
    done = threading.Event()

    def say(text: str) -> None:
        now = time.monotonic()
        last[0] = now
        print(f"[{now - started:5.0f} s] {suite}: {text}", file=sys.stderr, flush=True)

    def measured(row: Row) -> None:
        say(f"{row.name} = {row.value:.4g} {row.unit}")

    def beat() -> None:
        while not done.wait(1.0):
            if time.monotonic() - last[0] >= HEARTBEAT:
                say("still measuring…")

    say("starting")
    previous, report.on_row = report.on_row, measured
    beater = threading.Thread(target=beat, name=f"progress {suite}", daemon=True)
    beater.start()
    try:
        yield
    finally:
        done.set()
        beater.join()
        report.on_row = previous
        say("done")


def verdict(rows: Iterable[Row]) -> int:
    """Print a ``MISSED`` line per missed target and a summary; 1 if any was missed."""
    rows = list(rows)
    missed = [row for row in rows if row.met is False]
    for row in missed:
        ratio = "–" if row.ratio is None else f"{row.ratio:.2f}"
        bound = "≤" if row.lower_is_better else "≥"
        print(f"MISSED: {row.name}: ratio {ratio}, target {bound} {row.target}", flush=True)
    judged = sum(1 for row in rows if row.met is not None)
    if missed:
        print(f"MISSED {len(missed)} of {judged} targets", flush=True)
        return 1
    print(f"all {judged} targets met", flush=True)
    return 0


def bench_main(
    module: str,
    title: str,
    run: Callable[..., list[Row]],
    doc: str | None,
    argv: Sequence[str] | None = None,
) -> int:
    """``python -m tests.perf.<module>``: parse, measure with progress, table, verdict."""
    args = bench_parser(f"python -m tests.perf.{module}", doc).parse_args(argv)
    with progress(module):
        rows = run(quick=args.quick)
    print_table(title, rows)
    return verdict(rows)
