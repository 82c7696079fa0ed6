"""The link under a failing network: restarts, lost pushes, missing acks, failover."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.link import (
    AckTimeoutError,
    Backoff,
    ConnectionStatus,
    DisconnectedError,
    ServerRefusedError,
    SyncClient,
    SyncPhase,
)
from app.sync import SyncFailed
from syncserver import SyncServer, start_server
from syncserver.protocol import Push
from tests.timeouts import TIMEOUT

from .helpers import FAST, OpenDevice, eventually


async def _restart(server: SyncServer) -> SyncServer:
    return await start_server(
        port=server.port, db_path=server.db_path, allow_chaos=server.allow_chaos
    )


async def test_reconnects_by_itself_after_a_server_restart(
    server: SyncServer, open_device: OpenDevice
) -> None:
    """A server stop turns the status offline with a retry countdown; a restart on
    the same port brings it back online without help."""
    a = await open_device("A", [server.url])
    statuses: list[ConnectionStatus] = []
    a.subscribe_status(statuses.append)
    await eventually(lambda: a.status.state == "online", a)

    await server.close()
    await eventually(lambda: a.status.state == "offline", a)
    assert a.status.retry_at is not None
    assert a.status.attempt >= 1
    restarted = await _restart(server)
    try:
        await eventually(lambda: a.status.state == "online", a)
        await a.toggle_like("tea")
        assert a.state.status("tea").phase is SyncPhase.SYNCED
    finally:
        await restarted.close()
    states = [s.state for s in statuses]
    assert states.index("offline") < len(states) - 1 - states[::-1].index("online")


async def test_catches_up_on_writes_made_while_offline(
    server: SyncServer, open_device: OpenDevice
) -> None:
    """Writes made while a device was disconnected arrive in the hello's snapshot."""
    slow = Backoff(initial=30.0, maximum=30.0, jitter=0.0)  # reconnect only when told
    a = await open_device("A", [server.url], backoff=slow)
    b = await open_device("B", [server.url])
    await eventually(lambda: a.status.state == "online", a)
    await a.toggle_like("fig")

    await server.close()
    await eventually(lambda: a.status.state == "offline", a)
    restarted = await _restart(server)
    try:
        await eventually(lambda: b.status.state == "online", b)
        await b.toggle_like("jam")
        await b.toggle_like("fig")
        assert a.status.state == "offline"  # it missed both pushes
        snapshots = a.client.snapshots_applied
        a.client.retry_now()
        await eventually(lambda: a.status.state == "online", a)
        assert a.client.snapshots_applied == snapshots + 1
        assert a.state.liked("jam")
        assert not a.state.liked("fig")
        assert a.state.revision("fig") == 3
        assert a.client.newest_seen.value == 3
    finally:
        await restarted.close()


async def test_a_dropped_push_is_detected_as_a_gap_and_resynced(
    server: SyncServer, open_device: OpenDevice
) -> None:
    """A lost push shows up as a revision gap on the next one; the device resyncs
    with hello since and ends up with the lost write."""
    lost: list[Push] = []

    def drop_first_jam(push: Push) -> bool:
        if push.key == "like/jam" and not lost:
            lost.append(push)
            return True
        return False

    a = await open_device("A", [server.url], drop_push=drop_first_jam)
    b = await open_device("B", [server.url])
    await eventually(lambda: a.status.state == "online", a)

    await b.toggle_like("jam")
    await eventually(lambda: bool(lost), a)
    assert not a.state.liked("jam")  # lost on the way
    await b.toggle_like("tea")

    await eventually(lambda: a.state.liked("jam") and a.state.liked("tea"), a)
    assert a.client.gaps_detected == 1
    assert a.state.revision("jam") == 1
    await eventually(lambda: a.client.newest_seen.value == 2, a)


async def test_a_lost_last_push_is_found_by_the_heartbeat(
    server: SyncServer, open_device: OpenDevice
) -> None:
    """With no later push to reveal the gap, the idle heartbeat's resync brings the write."""
    lost: list[Push] = []

    def drop_every_jam(push: Push) -> bool:
        if push.key == "like/jam":
            lost.append(push)
            return True
        return False

    a = await open_device("A", [server.url], drop_push=drop_every_jam, heartbeat=0.2)
    b = await open_device("B", [server.url])
    await eventually(lambda: a.status.state == "online", a)
    await b.toggle_like("jam")
    await eventually(lambda: bool(lost), a)
    await eventually(lambda: a.state.liked("jam"), a)
    assert a.client.gaps_detected == 0  # nothing after it: only the heartbeat could tell
    assert a.state.revision("jam") == 1


async def test_a_missing_ack_times_out_fails_and_reloads_the_server_value(
    server: SyncServer, open_device: OpenDevice
) -> None:
    """A set whose ack never comes fails with AckTimeoutError, on_finish reloads
    the key with get, and the device shows the server's value as failed."""
    a = await open_device("A", [server.url], request_timeout=0.3)
    await eventually(lambda: a.status.state == "online", a)
    server.chaos.set_write_delay(30.0)  # the write (and its ack) stays out past the timeout
    failures: list[SyncFailed] = []
    a.cubit.device.subscribe(lambda e: failures.append(e) if isinstance(e, SyncFailed) else None)

    completion = a.toggle_like("tea")
    assert a.state.liked("tea")  # shown at once
    with pytest.raises(AckTimeoutError):
        await asyncio.wait_for(completion, TIMEOUT)

    assert len(failures) == 1
    assert isinstance(failures[0].error, AckTimeoutError)
    assert not a.state.liked("tea")  # the server never got it: reload shows its value
    assert a.state.status("tea").phase is SyncPhase.FAILED
    assert "tea" not in a.state.intents
    server.chaos.reset()


async def test_a_refused_write_reloads_and_shows_failed(
    server: SyncServer, open_device: OpenDevice
) -> None:
    """A set the server refuses raises ServerRefusedError with its code, and the
    device shows the reloaded server value with status failed."""
    a = await open_device("A", [server.url])
    b = await open_device("B", [server.url])
    await b.toggle_like("jam")
    await eventually(lambda: a.state.liked("jam"), a)
    server.chaos.fail_next(1)

    with pytest.raises(ServerRefusedError) as refused:
        await asyncio.wait_for(a.toggle_like("jam"), TIMEOUT)

    assert refused.value.code == "injected_failure"
    assert a.state.liked("jam")
    assert a.state.status("jam").phase is SyncPhase.FAILED
    await a.toggle_like("jam")  # the next tap clears it
    assert a.state.status("jam").phase is SyncPhase.SYNCED


async def test_fails_over_to_the_next_server_url(
    server: SyncServer, open_device: OpenDevice, tmp_path: Path
) -> None:
    """With the first URL dead, the device connects through the second one."""
    dead = await start_server(port=0, db_path=tmp_path / "dead.sqlite3")
    dead_url = dead.url
    await dead.close()

    a = await open_device("A", [dead_url, server.url])

    await eventually(lambda: a.status.state == "online", a)
    assert a.status.url == server.url


async def test_requests_while_offline_fail_with_disconnected(tmp_path: Path) -> None:
    """A request with no connection fails with DisconnectedError after the timeout."""
    dead = await start_server(port=0, db_path=tmp_path / "dead.sqlite3")
    await dead.close()
    client = SyncClient([dead.url], 7, request_timeout=0.2, backoff=FAST)
    client.start()
    try:
        with pytest.raises(DisconnectedError):
            await client.set("like/tea", True, 1)
    finally:
        await client.close()


async def test_bad_requests_carry_the_server_error_code(server: SyncServer) -> None:
    """A write the server rejects surfaces its error code; a never-written key reads as None."""
    client = SyncClient([server.url], 7, request_timeout=TIMEOUT, backoff=FAST)
    client.start()
    try:
        with pytest.raises(ServerRefusedError) as refused:
            await client.set("k" * 300, True, 1)
        assert refused.value.code == "bad_request"
        value = await client.get("like/nothing")
        assert (value.value, value.server_revision) == (None, 0)
        ack = await client.set("like/tea", True, 1)
        assert (ack.value, ack.server_revision) == (True, 1)
    finally:
        await client.close()


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    """Delays double per attempt up to the cap, and jitter only ever shortens them."""
    backoff = Backoff(initial=1.0, factor=2.0, maximum=8.0, jitter=0.5)
    for attempt, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0), (10_000, 8.0)]:
        delays = [backoff.delay(attempt) for _ in range(50)]
        assert all(base * 0.5 <= d <= base for d in delays)
        assert len(set(delays)) > 1


async def test_a_failing_status_listener_does_not_break_the_link(
    server: SyncServer, open_device: OpenDevice, caplog: pytest.LogCaptureFixture
) -> None:
    """An observer that raises is logged; the device still connects and syncs."""
    a = await open_device("A", [server.url])

    def broken(status: ConnectionStatus) -> None:
        raise RuntimeError("observer bug")

    a.subscribe_status(broken)
    a.client.retry_now()
    await server.close()  # forces status changes through the broken listener
    restarted = await _restart(server)
    try:
        await eventually(lambda: a.status.state == "online", a)
        await asyncio.wait_for(a.toggle_like("jam"), TIMEOUT)
        assert a.state.status("jam").phase is SyncPhase.SYNCED
    finally:
        await restarted.close()
    assert any(r.name == "app.link.status" and r.exc_info for r in caplog.records)


async def test_a_refused_reload_is_asked_again_until_the_server_answers(
    server: SyncServer, open_device: OpenDevice
) -> None:
    """The write and then its reload are both refused: the reload is sent again
    after a backoff delay, and the device ends on the server's value."""
    a = await open_device("A", [server.url])
    await eventually(lambda: a.status.state == "online", a)
    server.chaos.fail_next(2)  # the set, then the first get

    with pytest.raises(ServerRefusedError):
        await asyncio.wait_for(a.toggle_like("tea"), TIMEOUT)

    assert not a.state.liked("tea")  # the server never stored it
    assert a.state.status("tea").phase is SyncPhase.FAILED
    assert "tea" not in a.state.intents
