"""Per-key statuses tell the truth: saving, follow-up queued, overridden, synced."""

from __future__ import annotations

import asyncio

from app.link import KeyStatus, SyncPhase, like_key
from syncserver import SyncServer
from tests.timeouts import TIMEOUT

from .helpers import OpenDevice, eventually


async def test_saving_while_in_flight_and_synced_only_after_the_ack(
    server: SyncServer, open_device: OpenDevice
) -> None:
    """A tap shows saving until the ack is in; only then synced, at the ack's revision."""
    a = await open_device("A", [server.url])
    await eventually(lambda: a.status.state == "online", a)
    server.chaos.set_ack_delay(0.3)
    seen: list[tuple[KeyStatus, bool]] = []
    a.cubit.subscribe(
        lambda s: seen.append((s.status("tea"), a.cubit.device.in_flight(like_key("tea"))))
    )

    completion = a.toggle_like("tea")
    assert a.state.status("tea").phase is SyncPhase.SAVING
    await eventually(lambda: a.cubit.device.in_flight(like_key("tea")), a)
    assert a.state.status("tea").phase is SyncPhase.SAVING
    await asyncio.wait_for(completion, TIMEOUT)

    assert a.state.status("tea") == KeyStatus(SyncPhase.SYNCED, None, 1)
    phases = [status.phase for status, _ in seen]
    assert phases[0] is SyncPhase.SAVING
    assert phases[-1] is SyncPhase.SYNCED
    assert SyncPhase.SYNCED not in phases[:-1]
    server.chaos.reset()


async def test_a_tap_during_a_request_shows_follow_up_queued(
    server: SyncServer, open_device: OpenDevice
) -> None:
    """A second tap while the first request is in flight shows follow-up queued,
    then saving as the follow-up leaves, then synced with the last value."""
    a = await open_device("A", [server.url])
    await eventually(lambda: a.status.state == "online", a)
    server.chaos.set_ack_delay(0.3)
    phases: list[SyncPhase] = []
    a.cubit.subscribe(
        lambda s: (
            phases.append(s.status("jam").phase)
            if not phases or phases[-1] is not s.status("jam").phase
            else None
        )
    )

    first = a.toggle_like("jam")
    await eventually(lambda: a.state.requests == 1, a)
    a.toggle_like("jam")
    assert a.state.status("jam").phase is SyncPhase.FOLLOW_UP_QUEUED
    await asyncio.wait_for(first, TIMEOUT)

    assert phases == [
        SyncPhase.SAVING,
        SyncPhase.FOLLOW_UP_QUEUED,
        SyncPhase.SAVING,
        SyncPhase.SYNCED,
    ]
    assert not a.state.liked("jam")
    assert (a.state.taps, a.state.requests) == (2, 2)
    server.chaos.reset()


async def test_rapid_taps_coalesce_into_at_most_two_requests(
    server: SyncServer, open_device: OpenDevice
) -> None:
    """Ten taps around one slow request send at most two requests and end on the last value."""
    a = await open_device("A", [server.url])
    await eventually(lambda: a.status.state == "online", a)
    server.chaos.set_ack_delay(0.2)

    completions = [a.toggle_like("fig")]
    await eventually(lambda: a.state.requests == 1, a)
    completions += [a.toggle_like("fig") for _ in range(9)]
    await asyncio.wait_for(asyncio.gather(*completions), TIMEOUT)

    assert not a.state.liked("fig")
    assert (a.state.taps, a.state.requests) == (10, 2)
    assert a.state.status("fig").phase is SyncPhase.SYNCED
    assert (await a.client.get("like/fig")).value is False
    server.chaos.reset()


async def test_a_newer_write_from_another_device_shows_as_overridden_by_it(
    server: SyncServer, open_device: OpenDevice
) -> None:
    """When another device writes after ours lands, we show its value, overridden by it;
    while our request is out, its push is held back and we keep showing ours."""
    a = await open_device("A", [server.url])
    b = await open_device("B", [server.url])
    await eventually(lambda: a.status.state == b.status.state == "online", a, b)
    server.chaos.set_ack_delay(1.0)  # A's ack comes after B's push

    mine = a.toggle_like("tea")
    await eventually(lambda: b.state.liked("tea"), b)  # A's write landed (revision 1)
    theirs = b.toggle_like("tea")  # B unlikes at revision 2
    await eventually(lambda: a.state.revision("tea") == 2, a)  # B's push reached A
    assert a.state.liked("tea")  # held: it may be older than our write
    assert a.state.status("tea").phase is SyncPhase.SAVING  # our request is still out
    await asyncio.wait_for(asyncio.gather(mine, theirs), TIMEOUT)

    assert not a.state.liked("tea")
    assert a.state.status("tea") == KeyStatus(SyncPhase.OVERRIDDEN, b.device_id, 2)
    assert b.state.status("tea") == KeyStatus(SyncPhase.SYNCED, None, 2)
    await a.toggle_like("tea")
    assert a.state.status("tea").phase is SyncPhase.SYNCED
    server.chaos.reset()
