"""Hypothesis profiles for the simulation: ``quick`` (CI, the default) and ``long``.

Pick one with ``OPTISYNC_SIM_PROFILE=long python -m pytest tests/sim``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}

settings.register_profile("quick", max_examples=40, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("long", max_examples=1700, **_COMMON)  # type: ignore[arg-type]
_PROFILE = os.environ.get("OPTISYNC_SIM_PROFILE", "quick")
settings.load_profile(_PROFILE)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long profile runs for minutes per property: lift the suite's per-test timeout."""
    if _PROFILE == "long":
        for item in items:
            if item.nodeid.startswith("tests/sim/"):
                item.add_marker(pytest.mark.timeout(0))


@pytest.fixture(autouse=True)
def quiet_logs() -> Iterator[None]:
    """The shipped code logs every fault it meets; thousands of runs need none of it."""
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print how many schedules ran, and what they exercised."""
    from tests.sim.tally import TALLY

    if TALLY.schedules:
        faults = ", ".join(f"{name} {count}" for name, count in sorted(TALLY.faults.items()))
        closes = ", ".join(f"{code}: {count}" for code, count in sorted(TALLY.closes.items()))
        terminalreporter.write_line(
            f"optisync simulation (profile {_PROFILE}): "
            f"{TALLY.schedules} schedules ({TALLY.split} over two spaces) in "
            f"{TALLY.seconds:.1f}s; {TALLY.taps} taps, "
            f"{TALLY.writes} writes, {TALLY.pushes_dropped} push frames dropped, "
            f"{TALLY.gap_resyncs} gap resyncs, {TALLY.taps_lost_to_kills} taps lost to "
            f"kills before their store flushed, {TALLY.second_opens_refused} second opens "
            f"refused, {TALLY.virtual_seconds:.0f} virtual seconds\n"
            f"  faults: {faults}\n  connections closed: {closes}"
        )
