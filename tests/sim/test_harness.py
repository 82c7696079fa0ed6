"""The harness itself: deterministic, reproducible, pluggable, and it catches broken flows."""

from __future__ import annotations

import asyncio
import time

import pytest

import app.sync.testing as testing
from app.sync.testing import (
    Action,
    Advance,
    Disconnect,
    DropPush,
    DuplicateOpen,
    HistoryReset,
    InvariantViolation,
    KillDevice,
    Latency,
    RestartServer,
    Schedule,
    Simulation,
    Tap,
    VirtualDeadlock,
    run_virtual,
)
from tests.sim.flows import DeafLikes, EpochBlindLikes, PlainToggle, UnlockedLikes
from tests.sim.tally import play

BUSY = Schedule(
    11,
    [
        Latency(0.0, 0.2),
        Tap(0, 0),
        Tap(1, 0),
        DropPush(2),
        Tap(2, 1),
        Advance(0.05),
        Tap(0, 0),
        RestartServer(0.3),
        KillDevice(1, 0.01, 0.2),
        Tap(2, 0),
    ],
)


def test_same_schedule_replays_identically() -> None:
    """Two runs of one schedule produce the same history, device ids, events and stats."""
    first = Simulation(3, 2).run(BUSY)
    second = Simulation(3, 2).run(BUSY)
    assert first.server is not None
    assert second.server is not None
    assert list(first.server.history.values()) == list(second.server.history.values())
    assert first.stats == second.stats
    assert first.monitor.event_counts == second.monitor.event_counts
    assert [d.device_id for d in first.devices if d] == [d.device_id for d in second.devices if d]


def test_a_users_own_cubit_runs_through_the_real_link() -> None:
    """A Flow around a plain Cubit and its own SyncClient converges under lost pushes,
    disconnects and a server restart."""
    actions: list[Action] = [
        Tap(0, 0),
        DropPush(1),
        Tap(1, 1),
        Advance(0.2),
        Disconnect(2, 0.5),
        Tap(0, 1),
        RestartServer(0.3),
        Tap(2, 0),
    ]
    simulation = play(3, 2, Schedule(3, actions), flow=PlainToggle())
    assert simulation.server is not None
    assert simulation.server.register("toggle/0")[1] > 0


def test_a_flow_that_ignores_pushes_is_caught() -> None:
    """A broken flow plugs in through Simulation(flow=...); its divergence is reported."""
    simulation = Simulation(3, 2, flow=DeafLikes()).run(BUSY)
    with pytest.raises(InvariantViolation, match=r"shows \(value, revision\)") as caught:
        simulation.check_invariants()
    assert "flow=DeafLikes()" in caught.value.script


def test_a_device_that_keeps_an_old_history_is_caught() -> None:
    """Without forgetting the old epoch, writes of a fresh database below the revisions
    a device knew look stale: it shows an old value as synced."""
    actions: list[Action] = [Tap(0, 0), Advance(0.3), Tap(0, 0), Advance(0.3), Tap(0, 0)]
    actions += [Advance(0.3), HistoryReset(0.2), Advance(0.5), Tap(1, 0), Advance(0.3), Tap(1, 0)]
    schedule = Schedule(1, actions)
    play(2, 1, schedule)
    simulation = Simulation(2, 1, flow=EpochBlindLikes()).run(schedule)
    with pytest.raises(InvariantViolation, match="as synced, the server has"):
        simulation.check_invariants()


def test_two_processes_on_one_unlocked_identity_are_caught() -> None:
    """A second process on the same device id writes at a lower local revision: the
    first takes it for its own old echo and shows its value as synced (the lock refuses
    the second process, so the shipped flow keeps every promise)."""
    schedule = Schedule(1, [Tap(0, 0), Advance(0.3), Tap(0, 0), Advance(0.3), DuplicateOpen(0, 0)])
    play(1, 1, schedule)
    simulation = Simulation(1, 1, flow=UnlockedLikes()).run(schedule)
    with pytest.raises(InvariantViolation, match="as synced, the server has"):
        simulation.check_invariants()


def test_violation_message_ends_with_a_script_that_reproduces_it() -> None:
    """exec() of the printed script fails again with the same problems."""
    simulation = Simulation(3, 2, flow=DeafLikes()).run(BUSY)
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
    with pytest.raises(ValueError, match="must not be negative"):
        Simulation(2, 1).run(Schedule(0, [KillDevice(0, -1.0)]))


def test_exported_members_are_the_documented_api() -> None:
    """__all__ lists exactly the public names, each documented in the package docstring."""
    public = {name for name in dir(testing) if not name.startswith("_")}
    modules = {"flows", "hostile", "invariants", "loop", "network", "processes", "schedule"}
    modules |= {"server", "simulation", "stores"}
    assert set(testing.__all__) == public - modules
    assert testing.__doc__ is not None
    for name in testing.__all__:
        assert name in testing.__doc__, name
