"""The benchmarks' command line: --help everywhere, progress while measuring, a verdict."""

from __future__ import annotations

import re

import pytest

from tests.cli.helpers import ROOT, run_command
from tests.perf import report
from tests.perf.cli import progress, verdict
from tests.perf.report import Row

RUNNABLE = sorted(
    f"tests.perf.{path.stem}" if path.stem != "__main__" else "tests.perf"
    for path in (ROOT / "tests" / "perf").glob("*.py")
    if 'if __name__ == "__main__":' in path.read_text()
)


def test_every_runnable_benchmark_is_found() -> None:
    """The list below covers the suite runner and each benchmark module with a main."""
    assert {"tests.perf", "tests.perf.core", "tests.perf.server"} <= set(RUNNABLE)


@pytest.mark.parametrize("module", RUNNABLE)
def test_help_prints_usage_and_runs_nothing(module: str) -> None:
    """`python -m tests.perf.X --help` prints usage and exits 0 without measuring."""
    result = run_command("-m", module, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m "), result.stdout
    assert "starting" not in result.stderr
    assert "|---|" not in result.stdout


def test_the_suite_runner_keeps_its_docstring_lines() -> None:
    """`python -m tests.perf --help` shows the usage line of its docstring on its own line."""
    result = run_command("-m", "tests.perf", "--help")
    assert re.search(r"^ +python -m tests\.perf \[--quick\]", result.stdout, re.MULTILINE)


def _row(name: str, value: float, target: float | None) -> Row:
    return Row(name, value, "ops/s", 100.0, target)


def test_a_missed_target_is_a_missed_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    """One missed target: a MISSED line naming it, a MISSED summary, and 1."""
    code = verdict([_row("fast enough", 90, 0.5), _row("too slow", 10, 0.5), _row("info", 1, None)])
    out = capsys.readouterr().out
    assert code == 1
    assert "MISSED: too slow: ratio 0.10, target ≥ 0.5" in out
    assert "MISSED 1 of 2 targets" in out
    assert "fast enough" not in out


def test_every_target_met_is_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    """No missed target: no MISSED line and 0."""
    assert verdict([_row("fast enough", 90, 0.5)]) == 0
    out = capsys.readouterr().out
    assert "MISSED" not in out
    assert "all 1 targets met" in out


def test_progress_names_each_figure_as_it_is_measured(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """While a suite runs, stderr says it started, each figure as it is made, and done."""
    with progress("demo"):
        _row("first figure", 42, None)
        _row("second figure", 7, None)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == [
        "demo: starting",
        "demo: first figure = 42 ops/s",
        "demo: second figure = 7 ops/s",
        "demo: done",
    ]
    assert report.on_row is None


def test_a_benchmark_run_prints_progress_and_its_verdict() -> None:
    """`python -m tests.perf.core --quick`: progress on stderr, the table, and an exit
    code that is 1 exactly when a MISSED line says a target was missed."""
    result = run_command("-m", "tests.perf.core", "--quick")
    assert "core: starting" in result.stderr
    assert "core: core: coalesced call = " in result.stderr
    assert "| core: coalesced call |" in result.stdout
    assert result.returncode == (1 if "MISSED" in result.stdout else 0), result.stdout
