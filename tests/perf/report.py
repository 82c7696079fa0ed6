"""Benchmark rows and the markdown table they print as.

Every figure stands beside its ceiling measured in the same run, because a
shared 2-core machine is noisy: the ratio is what carries between runs. Rows
of the server benchmarks also carry the server's CPU time per operation for
the figure and for its ceiling, and warnings (a load generator that was busy
enough to be the bottleneck) that print under the table.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["Row", "format_table", "on_row", "print_table"]

on_row: Callable[[Row], None] | None = None
"""Told of every :class:`Row` as it is made (``tests.perf.cli`` prints progress with it)."""


@dataclass(frozen=True)
class Row:
    """One figure, its ceiling from the same run, and the target for their ratio.

    ``cpu_us`` and ``ceiling_cpu_us`` are the server process's CPU time per
    operation (µs) while the figure and its ceiling were measured; ``warnings``
    say why a figure may not measure what its name says.
    """

    name: str
    value: float
    unit: str
    ceiling: float | None
    target: float | None
    lower_is_better: bool = False
    cpu_us: float | None = None
    ceiling_cpu_us: float | None = None
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if on_row is not None:
            on_row(self)

    @property
    def ratio(self) -> float | None:
        if self.ceiling in (None, 0):
            return None
        return self.value / self.ceiling

    @property
    def met(self) -> bool | None:
        if self.ratio is None or self.target is None:
            return None
        return self.ratio <= self.target if self.lower_is_better else self.ratio >= self.target


def _number(value: float | None) -> str:
    if value is None:
        return "–"
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.3g}"


def format_table(title: str, rows: Iterable[Row]) -> str:
    rows = list(rows)
    with_cpu = any(row.cpu_us is not None for row in rows)
    cpu_header = " server CPU/op, µs (ceiling) |" if with_cpu else ""
    lines = [
        f"### {title} ({os.cpu_count()} cores)",
        "",
        f"| figure | value | unit | ceiling (same run) | ratio | target | met |{cpu_header}",
        "|---|---:|---|---:|---:|---:|:-:|" + ("---:|" if with_cpu else ""),
    ]
    warnings: list[str] = []
    for row in rows:
        target = None if row.target is None else ("≤ " if row.lower_is_better else "≥ ")
        target_text = "–" if target is None else target + _number(row.target)
        met = {True: "yes", False: "**no**", None: "–"}[row.met]
        ratio = "–" if row.ratio is None else f"{row.ratio:.2f}"
        line = (
            f"| {row.name} | {_number(row.value)} | {row.unit} | {_number(row.ceiling)} "
            f"| {ratio} | {target_text} | {met} |"
        )
        if with_cpu:
            cpu = (
                "–"
                if row.cpu_us is None
                else f"{_number(row.cpu_us)} ({_number(row.ceiling_cpu_us)})"
            )
            line += f" {cpu} |"
        lines.append(line)
        warnings.extend(f"{row.name}: {warning}" for warning in row.warnings)
    if warnings:
        lines.append("")
        lines.extend(f"> warning: {warning}  " for warning in dict.fromkeys(warnings))
    return "\n".join(lines)


def print_table(title: str, rows: Iterable[Row]) -> None:
    print(format_table(title, rows), flush=True)
