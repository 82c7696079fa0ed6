"""Benchmark rows and the markdown table they print as.

Every figure stands beside its ceiling measured in the same run, because a
shared 2-core machine is noisy: the ratio is what carries between runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Row", "format_table", "print_table"]


@dataclass(frozen=True)
class Row:
    """One figure, its ceiling from the same run, and the target for their ratio."""

    name: str
    value: float
    unit: str
    ceiling: float | None
    target: float | None
    lower_is_better: bool = False

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
    lines = [
        f"### {title} ({os.cpu_count()} cores)",
        "",
        "| figure | value | unit | ceiling (same run) | ratio | target | met |",
        "|---|---:|---|---:|---:|---:|:-:|",
    ]
    for row in rows:
        target = None if row.target is None else ("≤ " if row.lower_is_better else "≥ ")
        target_text = "–" if target is None else target + _number(row.target)
        met = {True: "yes", False: "**no**", None: "–"}[row.met]
        ratio = "–" if row.ratio is None else f"{row.ratio:.2f}"
        lines.append(
            f"| {row.name} | {_number(row.value)} | {row.unit} | {_number(row.ceiling)} "
            f"| {ratio} | {target_text} | {met} |"
        )
    return "\n".join(lines)


def print_table(title: str, rows: Iterable[Row]) -> None:
    print(format_table(title, rows), flush=True)
