"""The harness itself: deterministic, reproducible, pluggable, and it catches broken flows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable
from typing import Any

import pytest

import app.sync.testing as testing
from app.sync import Cubit, PushMetadata
from app.sync.testing import (
    Action,
    Advance,
    DropPush,
    InvariantViolation,
    Latency,
    LikeToggle,
    Schedule,
    Simulation,
    Tap,
    VirtualDeadlock,
    run_virtual,
)

BUSY = Schedule(
    11,
    [Latency(0.0, 0.2), Tap(0, 0), Tap(1, 0), DropPush(2), Tap(2, 1), Advance(0.05), Tap(0, 0)],
)


class DeafToPushes(LikeToggle):
    """A broken flow for the self-test: it never applies a server push."""

    def __repr__(self) -> str:
        return "DeafToPushes()"

    def push(self, cubit: Cubit[Any], key: Hashable, value: Any, metadata: PushMetadata) -> None:
        pass


def test_same_schedule_replays_identically() -> None:
    """Two runs of one schedule produce the same history, events and virtual duration."""
    first = Simulation(3, 2).run(BUSY)
    second = Simulation(3, 2).run(BUSY)
    assert first.server is not None
    assert second.server is not None
    assert first.server.history == second.server.history
    assert first.stats == second.stats
    assert first.monitor.event_counts == second.monitor.event_counts


def test_a_flow_that_ignores_pushes_is_caught() -> None:
    """A custom flow plugs in through Simulation(flow=...); divergence is reported."""
    simulation = Simulation(3, 2, flow=DeafToPushes()).run(BUSY)
    with pytest.raises(InvariantViolation, match="shows \\(value, revision\\)") as caught:
        simulation.check_invariants()
    assert "flow=DeafToPushes()" in caught.value.script


def test_violation_message_ends_with_a_script_that_reproduces_it() -> None:
    """exec() of the printed script fails again with the same problems."""
    actions: list[Action] = [Tap(0, 0), Tap(1, 1), DropPush(1), DropPush(1), Tap(0, 1), Tap(1, 1)]
    simulation = Simulation(3, 2, snapshot_writer=False).run(Schedule(1, actions))
    with pytest.raises(InvariantViolation) as caught:
        simulation.check_invariants()
    assert str(caught.value).endswith(caught.value.script)
    with pytest.raises(InvariantViolation) as replayed:
        exec(caught.value.script, {})
    assert replayed.value.problems == caught.value.problems


def test_an_hour_of_virtual_time_takes_no_real_time() -> None:
    """asyncio.sleep(3600) on the virtual clock returns at once with time() 3600 later."""

    async def nap() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(3600)
        return loop.time() - start

    started = time.perf_counter()
    assert run_virtual(nap()) == 3600
    assert time.perf_counter() - started < 1


def test_waiting_for_what_can_never_happen_is_a_deadlock_not_a_hang() -> None:
    """A future nobody resolves raises VirtualDeadlock instead of blocking."""

    async def wait_forever() -> None:
        await asyncio.get_running_loop().create_future()

    with pytest.raises(VirtualDeadlock, match="nothing is ready"):
        run_virtual(wait_forever())


def test_schedule_naming_a_missing_device_or_key_is_refused() -> None:
    """Actions are validated against the simulation's size before anything runs."""
    with pytest.raises(ValueError, match=r"devices are 0\.\.1"):
        Simulation(2, 1).run(Schedule(0, [Tap(2, 0)]))
    with pytest.raises(ValueError, match=r"keys are 0\.\.0"):
        Simulation(2, 1).run(Schedule(0, [Tap(0, 1)]))


def test_exported_members_are_the_documented_api() -> None:
    """__all__ lists exactly the public names, each documented in the package docstring."""
    public = {name for name in dir(testing) if not name.startswith("_")}
    modules = {"flows", "invariants", "link", "loop", "messages", "network", "schedule"}
    modules |= {"server", "simulation"}
    assert set(testing.__all__) == public - modules
    assert testing.__doc__ is not None
    for name in testing.__all__:
        assert name in testing.__doc__, name
