"""Counts the schedules the property tests ran, for the end-of-run summary."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from app.sync.testing import Schedule, Simulation


@dataclass
class Tally:
    schedules: int = 0
    taps: int = 0
    writes: int = 0
    pushes_dropped: int = 0
    gap_resyncs: int = 0
    restarts: int = 0
    virtual_seconds: float = 0.0
    started: float = field(default_factory=time.perf_counter)


TALLY = Tally()


def play(devices: int, keys: int, schedule: Schedule, **options: object) -> Simulation:
    """Run one schedule, check every invariant, and count it."""
    simulation = Simulation(devices, keys, **options)  # type: ignore[arg-type]
    simulation.run(schedule)
    simulation.check_invariants()
    stats = simulation.stats
    assert stats is not None
    TALLY.schedules += 1
    TALLY.taps += stats.taps
    TALLY.writes += stats.writes
    TALLY.pushes_dropped += stats.pushes_dropped
    TALLY.gap_resyncs += stats.gap_resyncs
    TALLY.restarts += stats.restarts
    TALLY.virtual_seconds += stats.virtual_seconds
    return simulation
