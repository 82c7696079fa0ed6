"""Named scenarios, one per fault kind, each replayed on the simulator."""

from __future__ import annotations

import pytest

from app.sync import PushIgnoredStale, SyncFailed
from app.sync.testing import (
    Action,
    Advance,
    Disconnect,
    DropPush,
    DuplicatePush,
    FailNextWrite,
    InvariantViolation,
    Latency,
    RestartServer,
    Schedule,
    Simulation,
    Tap,
)
from tests.sim.tally import play


def test_acks_and_pushes_overtaking_each_other_converge() -> None:
    """Two devices tap one key under wide per-frame latency; both end on the last write."""
    actions: list[Action] = [
        Latency(0.0, 0.3),
        Tap(0, 0),
        Tap(1, 0),
        Advance(0.1),
        Tap(0, 0),
        Tap(1, 0),
    ]
    simulation = play(2, 1, Schedule(3, actions))
    assert simulation.server is not None
    assert len(simulation.server.history) >= 2


def test_duplicated_push_is_applied_once() -> None:
    """The second copy of a push is stale by revision and changes nothing."""
    simulation = play(2, 1, Schedule(1, [DuplicatePush(1), Tap(0, 0)]))
    assert simulation.stats is not None
    assert simulation.stats.pushes_duplicated == 1
    assert simulation.monitor.event_counts[PushIgnoredStale.__name__] >= 1
    assert simulation.flow.read(simulation.cubits[1], "item-0") == (True, 1)


def test_dropped_push_is_recovered_by_gap_detection() -> None:
    """A lost push shows up as a hole in the revisions; the device resyncs since its watermark."""
    actions: list[Action] = [DropPush(1), Tap(0, 0), Advance(0.5), Tap(0, 1)]
    simulation = play(2, 2, Schedule(5, actions))
    assert simulation.stats is not None
    assert simulation.stats.pushes_dropped == 1
    assert simulation.links[1].gap_resyncs >= 1


def test_lost_last_push_is_found_by_the_heartbeat() -> None:
    """With no later write to reveal the gap, the periodic hello catches the device up."""
    simulation = play(2, 1, Schedule(5, [DropPush(1), Tap(0, 0)]))
    assert simulation.flow.read(simulation.cubits[1], "item-0") == (True, 1)


def test_disconnected_device_catches_up_on_reconnect() -> None:
    """Writes made while a device is cut off reach it through the reconnect's snapshot."""
    actions: list[Action] = [Disconnect(1, 2.0), Tap(0, 0), Advance(0.5), Tap(0, 1), Tap(0, 0)]
    simulation = play(2, 2, Schedule(9, actions))
    assert simulation.links[1].resyncs >= 2


def test_tap_while_offline_fails_and_reloads_from_the_server() -> None:
    """A write without a connection fails at once; on_finish reloads once back online."""
    simulation = play(2, 1, Schedule(2, [Disconnect(0, 1.0), Tap(0, 0)]))
    assert simulation.flow.read(simulation.cubits[0], "item-0") == (False, 0)


def test_server_restart_keeps_committed_writes_and_loses_the_rest() -> None:
    """A committed write survives the crash; a write still on the wire is lost and reloaded."""
    actions: list[Action] = [Tap(0, 0), Advance(1.0), Tap(1, 1), RestartServer(0.5)]
    simulation = play(2, 2, Schedule(4, actions))
    server = simulation.server
    assert server is not None
    assert [(w.key, w.value) for w in server.history] == [("item-0", True)]
    assert simulation.flow.read(simulation.cubits[1], "item-1") == (False, 0)


def test_refused_write_reloads_the_key_through_on_finish() -> None:
    """The server refuses a write: SyncFailed, then the key shows the server's value again."""
    simulation = play(2, 1, Schedule(6, [FailNextWrite(0), Tap(0, 0)]))
    record = simulation.monitor.records[(1, "item-0")]
    assert any(isinstance(e, SyncFailed) for e in record.since_last_tap)
    assert simulation.flow.read(simulation.cubits[0], "item-0") == (False, 0)


def test_taps_while_in_flight_coalesce_into_one_follow_up() -> None:
    """Five taps at once send one request, and at most one follow-up after it."""
    simulation = play(1, 1, Schedule(8, [Tap(0, 0)] * 5))
    record = simulation.monitor.records[(1, "item-0")]
    assert record.taps == 5
    assert record.requests <= 2


def test_snapshot_without_the_writer_loses_a_pending_intent() -> None:
    """A catch-up snapshot that does not name the writer makes a device's own older write
    look foreign, which cancels its newer pending intent (why snapshots must carry it)."""
    actions: list[Action] = [Tap(0, 0), Tap(1, 1), DropPush(1), DropPush(1), Tap(0, 1), Tap(1, 1)]
    schedule = Schedule(1, actions)
    Simulation(3, 2).run(schedule).check_invariants()
    with pytest.raises(InvariantViolation, match="last intent False"):
        Simulation(3, 2, snapshot_writer=False).run(schedule).check_invariants()
