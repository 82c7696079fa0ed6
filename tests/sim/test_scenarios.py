"""Hand-written schedules, one per fault kind: what each fault does and what must hold."""

from __future__ import annotations

from app.sync import PushHeld, PushIgnoredStale, SyncFailed
from app.sync.testing import (
    Action,
    Advance,
    BackendOutage,
    BigData,
    Disconnect,
    DropPush,
    DuplicateOpen,
    DuplicatePush,
    FailNextRequest,
    HistoryReset,
    Impersonate,
    KillDevice,
    Latency,
    LinkTimings,
    NestedValue,
    RestartServer,
    Schedule,
    Shutdown,
    Simulation,
    StolenWrite,
    Tap,
    WriteDelay,
)
from tests.sim.tally import play

ITEM_0 = "like/item-0"
ITEM_1 = "like/item-1"


def shown(simulation: Simulation, device: int, key: str) -> tuple[object, int]:
    session = simulation.devices[device]
    assert session is not None
    return simulation.flow.read(session, key)


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
    assert simulation.stats is not None
    assert simulation.stats.writes >= 2


def test_duplicated_push_is_applied_once() -> None:
    """The second copy of a push frame is stale by revision and changes nothing."""
    simulation = play(2, 1, Schedule(1, [DuplicatePush(1), Tap(0, 0)]))
    assert simulation.stats is not None
    assert simulation.stats.pushes_duplicated == 1
    assert simulation.monitor.event_counts[PushIgnoredStale.__name__] >= 1
    assert shown(simulation, 1, ITEM_0) == (True, 1)


def test_dropped_push_is_recovered_by_gap_detection() -> None:
    """A lost push shows up as a hole in the revisions; the link resyncs."""
    actions: list[Action] = [DropPush(1), Tap(0, 0), Advance(0.5), Tap(0, 1)]
    simulation = play(2, 2, Schedule(5, actions))
    assert simulation.stats is not None
    assert simulation.stats.pushes_dropped == 1
    assert simulation.stats.gap_resyncs >= 1


def test_lost_last_push_is_found_by_the_heartbeat() -> None:
    """With no later write to reveal the gap, the periodic hello catches the device up."""
    simulation = play(2, 1, Schedule(5, [DropPush(1), Tap(0, 0)]))
    assert shown(simulation, 1, ITEM_0) == (True, 1)


def test_disconnected_device_catches_up_on_reconnect() -> None:
    """Writes made while a device is cut off reach it through the reconnect's snapshot."""
    actions: list[Action] = [
        Advance(0.2),
        Disconnect(1, 2.0),
        Tap(0, 0),
        Advance(0.5),
        Tap(0, 1),
        Tap(0, 0),
    ]
    simulation = play(2, 2, Schedule(9, actions))
    assert simulation.stats is not None
    assert simulation.stats.closes.get(1006) == 1
    assert shown(simulation, 1, ITEM_1) == (True, 2)


def test_tap_while_offline_is_sent_once_back_online() -> None:
    """A tap made while cut off stays an intent and is written after the reconnect."""
    simulation = play(2, 1, Schedule(2, [Disconnect(0, 1.0), Tap(0, 0)]))
    assert shown(simulation, 0, ITEM_0) == (True, 1)


def test_server_restart_keeps_committed_writes() -> None:
    """A committed write survives the crash; a write on the wire is sent again after it."""
    actions: list[Action] = [Tap(0, 0), Advance(1.0), Tap(1, 1), RestartServer(0.5)]
    simulation = play(2, 2, Schedule(4, actions))
    assert simulation.server is not None
    assert simulation.server.restarts == 1
    assert simulation.server.register(ITEM_0) == (True, 1)
    assert shown(simulation, 1, ITEM_1) == shown(simulation, 0, ITEM_1)


def test_refused_write_reloads_the_key_through_on_finish() -> None:
    """The server refuses a write: SyncFailed, then the key shows the server's value again."""
    simulation = play(2, 1, Schedule(6, [FailNextRequest(), Tap(0, 0)]))
    record = simulation.monitor.records[(0, ITEM_0)]
    assert any(isinstance(event, SyncFailed) for event, _ in record.since_last_tap)
    assert shown(simulation, 0, ITEM_0) == (False, 0)


def test_refused_reload_after_a_refused_write_still_converges() -> None:
    """The set and then its reload are both refused: the device must still end on the
    server's value (it shows its optimistic like, marked failed, forever)."""
    play(1, 1, Schedule(0, [FailNextRequest(), FailNextRequest(), Tap(0, 0)]))


def test_late_reload_after_refused_requests_never_overwrites_a_newer_tap() -> None:
    """A refused write and a refused reload: the reload is asked again later, after the
    user tapped twice more; the user's last tap still reaches the server (the follow-up
    carries the latest local value the device recorded, not the reloaded state)."""
    actions: list[Action] = [Tap(0, 0), Tap(0, 0), Tap(0, 0), Tap(0, 0), Tap(0, 0), Tap(1, 0)]
    actions += [FailNextRequest(), FailNextRequest(), Latency(0.0, 0.056), Advance(0.089)]
    actions += [Advance(0.084), Tap(0, 0), Tap(0, 0)]
    play(2, 1, Schedule(0, actions))


def test_a_push_older_than_a_devices_in_flight_write_does_not_drop_its_last_tap() -> None:
    """Both devices tap twice at once: a push of the other's write reaches each while
    its own is in flight; where that write is older than ours, the last tap still
    follows up and every device ends on the server's last write."""
    taps = [Tap(0, 0), Tap(0, 0), Tap(1, 0), Tap(1, 0)]
    simulation = play(2, 1, Schedule(0, taps))
    assert simulation.monitor.event_counts[PushHeld.__name__] >= 1
    assert simulation.server is not None
    value, revision = simulation.server.register(ITEM_0)
    assert shown(simulation, 0, ITEM_0) == shown(simulation, 1, ITEM_0) == (value, revision)


def test_taps_while_in_flight_coalesce_into_one_follow_up() -> None:
    """Five taps at once send one request, and at most one follow-up after it."""
    simulation = play(1, 1, Schedule(8, [Tap(0, 0)] * 5))
    record = simulation.monitor.records[(0, ITEM_0)]
    assert record.taps == 5
    assert record.requests <= 2


def test_device_that_knew_a_newer_history_follows_a_fresh_database() -> None:
    """Revision 3 known, then the server restarts empty: new writes below 3 are not stale."""
    actions: list[Action] = [
        Tap(0, 0),
        Advance(0.5),
        Tap(0, 1),
        Advance(0.5),
        Tap(0, 0),
        Advance(0.5),
        HistoryReset(0.2),
        Advance(0.5),
        Tap(1, 1),
    ]
    simulation = play(2, 2, Schedule(7, actions))
    server = simulation.server
    assert server is not None
    assert server.resets == 1
    assert len(server.epochs) == 2
    assert server.register(ITEM_0) == (None, 0)
    assert shown(simulation, 0, ITEM_0) == (False, 0)
    # Device 1 saw item-1 liked in the old history; the fresh one never had it, so
    # its tap likes it again, at revision 1, below what device 0 knew (2).
    assert server.register(ITEM_1) == (True, 1)
    assert shown(simulation, 0, ITEM_1) == (True, 1)


def test_shutdown_answers_held_writes_and_they_land_after_the_restart() -> None:
    """SIGTERM with sets held by write_delay: `unavailable`, kept, written after the restart."""
    actions: list[Action] = [WriteDelay(1.0), Tap(0, 0), Tap(1, 1), Advance(0.2), Shutdown(0.3)]
    simulation = play(2, 2, Schedule(2, actions))
    assert simulation.server is not None
    assert simulation.server.shutdowns == 1
    assert simulation.stats is not None
    assert simulation.stats.closes.get(1001) == 2
    assert simulation.server.register(ITEM_0)[0] is True
    assert simulation.server.register(ITEM_1)[0] is True


def test_taps_during_a_backend_outage_are_retried_until_stored() -> None:
    """`unavailable` is retryable: every tap made while commits fail is stored later."""
    actions: list[Action] = [BackendOutage(1.5), Tap(0, 0), Tap(1, 1), Advance(0.5), Tap(0, 1)]
    simulation = play(2, 2, Schedule(3, actions))
    assert simulation.server is not None
    assert simulation.server.outages == 1
    assert simulation.server.register(ITEM_0)[0] is True
    assert simulation.stats is not None
    assert simulation.stats.virtual_seconds > 1.5


def test_second_process_on_a_device_is_refused() -> None:
    """Opening a device's identity while it runs raises DeviceInUseError; nothing changes."""
    simulation = play(2, 1, Schedule(1, [DuplicateOpen(0, 0), Tap(0, 0)]))
    assert simulation.stats is not None
    assert simulation.stats.second_opens_refused == 1
    assert len(simulation.devices) == 2


def test_device_killed_after_its_store_flushed_keeps_its_id_and_its_tap() -> None:
    """SIGKILL once the intent is flushed but before the server heard of it."""
    timings = LinkTimings(store_flush=0.001)
    actions: list[Action] = [Disconnect(0, 0.5), Tap(0, 0), KillDevice(0, 0.01, 0.2)]
    simulation = play(2, 1, Schedule(4, actions), timings=timings)
    assert simulation.stats is not None
    assert simulation.stats.taps_lost_to_kills == 0
    assert simulation.server is not None
    assert simulation.server.register(ITEM_0) == (True, 1)


def test_device_killed_before_its_store_flushed_loses_only_that_tap() -> None:
    """SIGKILL within the flush delay: the tap is gone (counted), the device id is not."""
    actions: list[Action] = [Disconnect(0, 0.5), Tap(0, 0), KillDevice(0, 0.0, 0.2)]
    simulation = play(2, 1, Schedule(4, actions), timings=LinkTimings(store_flush=0.05))
    assert simulation.stats is not None
    assert simulation.stats.taps_lost_to_kills == 1
    assert simulation.server is not None
    assert simulation.server.register(ITEM_0) == (None, 0)


def test_set_with_a_stolen_device_id_is_refused() -> None:
    """Another connection's set naming device 0's id writes nothing; device 0 stays right."""
    actions: list[Action] = [Tap(0, 0), Advance(0.5), StolenWrite(0, 0)]
    simulation = play(2, 1, Schedule(8, actions))
    assert simulation.server is not None
    assert [w.key for h in simulation.server.history.values() for w in h] == [ITEM_0]
    assert shown(simulation, 0, ITEM_0) == (True, 1)


def test_commits_and_snapshots_bigger_than_a_frame_are_paged() -> None:
    """1.4 MB in one commit, and a device that reconnects into a 1.4 MB snapshot."""
    actions: list[Action] = [Advance(0.2), Disconnect(1, 0.5), BigData(24, 60_000), Tap(0, 0)]
    simulation = play(2, 1, Schedule(6, actions))
    assert simulation.network is not None
    assert simulation.network.oversized == []
    assert simulation.stats is not None
    assert simulation.stats.writes == 25
    assert 1009 not in simulation.stats.closes


def test_too_deep_values_are_refused_and_deep_enough_ones_stored() -> None:
    """Nesting 980 levels gets bad_request; 32 levels is stored and pushed to everyone."""
    actions: list[Action] = [NestedValue(980), NestedValue(32), Tap(0, 0)]
    simulation = play(2, 1, Schedule(6, actions))
    assert simulation.server is not None
    assert simulation.server.register("nested/980") == (None, 0)
    assert simulation.server.register("nested/32")[1] > 0


def test_hello_as_a_device_with_a_wrong_secret_is_closed_before_writing() -> None:
    """Another connection says hello with device 0's id and a wrong secret, then sets a
    key: the server knows device 0's secret, closes the connection and writes nothing."""
    actions: list[Action] = [Tap(0, 0), Advance(0.5), Impersonate(0, 0)]
    simulation = play(2, 1, Schedule(8, actions))
    assert simulation.server is not None
    assert [w.key for h in simulation.server.history.values() for w in h] == [ITEM_0]
    assert simulation.stats is not None
    assert simulation.stats.closes.get(1008) == 1


def test_device_whose_id_was_claimed_on_a_fresh_database_syncs_again() -> None:
    """While device 0 is cut off, the server restarts on a fresh database and another
    connection claims device 0's id first: device 0 takes a new id and its tap is stored."""
    actions: list[Action] = [
        Tap(0, 0),
        Advance(0.5),
        Disconnect(0, 3.0),
        Tap(0, 0),
        Impersonate(0, 0, claim_unknown=True),
        HistoryReset(0.0),
    ]
    play(2, 1, Schedule(1, actions), settle_limit=30.0)


def test_two_devices_toggling_twice_end_on_a_last_choice() -> None:
    """Both devices like then unlike at once: one device's first request lands after the
    other's writes, and the server still ends on a value some user chose last (not
    liked), never on a choice both users had already undone."""
    simulation = play(2, 1, Schedule(0, [Tap(0, 0), Tap(0, 0), Tap(1, 0), Tap(1, 0)]))
    assert simulation.server is not None
    last_choices = {
        record.last_tap.value
        for record in simulation.monitor.records.values()
        if record.last_tap is not None
    }
    assert simulation.server.register(ITEM_0)[0] in last_choices
