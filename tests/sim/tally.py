"""Counts the schedules the property tests ran, for the end-of-run summary."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from app.sync.testing import Schedule, Simulation


@dataclass
class Tally:
    schedules: int = 0
    split: int = 0
    """Schedules whose devices were split over several spaces."""
    taps: int = 0
    writes: int = 0
    pushes_dropped: int = 0
    gap_resyncs: int = 0
    taps_lost_to_kills: int = 0
    second_opens_refused: int = 0
    virtual_seconds: float = 0.0
    faults: Counter[str] = field(default_factory=Counter)
    closes: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0
    """Wall time spent running schedules (not collecting or other tests)."""


TALLY = Tally()


def play(
    devices: int, keys: int, schedule: Schedule, spaces: int = 1, **options: object
) -> Simulation:
    """Run one schedule with the devices split over ``spaces``, check every invariant,
    and count it."""
    started = time.perf_counter()
    simulation = Simulation(devices, keys, spaces=spaces, **options)  # type: ignore[arg-type]
    try:
        simulation.run(schedule)
        simulation.check_invariants()
    finally:
        TALLY.seconds += time.perf_counter() - started
    stats = simulation.stats
    assert stats is not None
    TALLY.schedules += 1
    TALLY.split += spaces > 1
    TALLY.taps += stats.taps
    TALLY.writes += stats.writes
    TALLY.pushes_dropped += stats.pushes_dropped
    TALLY.gap_resyncs += stats.gap_resyncs
    TALLY.taps_lost_to_kills += stats.taps_lost_to_kills
    TALLY.second_opens_refused += stats.second_opens_refused
    TALLY.virtual_seconds += stats.virtual_seconds
    TALLY.faults.update(stats.faults)
    TALLY.closes.update(stats.closes)
    return simulation
