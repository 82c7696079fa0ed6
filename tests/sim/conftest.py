"""Hypothesis profiles for the simulation: ``quick`` (CI, the default) and ``long``.

Pick one with ``OPTISYNC_SIM_PROFILE=long .venv/bin/pytest tests/sim -s``.
"""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}

settings.register_profile("quick", max_examples=60, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("long", max_examples=3000, **_COMMON)  # type: ignore[arg-type]
_PROFILE = os.environ.get("OPTISYNC_SIM_PROFILE", "quick")
settings.load_profile(_PROFILE)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print how many schedules ran, and what they exercised."""
    from tests.sim.tally import TALLY

    if TALLY.schedules:
        elapsed = time.perf_counter() - TALLY.started
        terminalreporter.write_line(
            f"optisync simulation (profile {_PROFILE}): "
            f"{TALLY.schedules} schedules in {elapsed:.1f}s; {TALLY.taps} taps, "
            f"{TALLY.writes} writes, {TALLY.pushes_dropped} pushes dropped, "
            f"{TALLY.gap_resyncs} gap resyncs, {TALLY.restarts} server restarts, "
            f"{TALLY.virtual_seconds:.0f} virtual seconds"
        )
