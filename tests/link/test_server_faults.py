"""What the server does wrong or cannot do: bad frames, 'unavailable', a new database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.link import DeviceStore, SyncPhase, Transport
from app.link.client import connect_websocket
from syncserver import SyncServer, start_server
from syncserver.backends import Write
from syncserver.backends.memory import MemoryBackend
from tests.timeouts import TIMEOUT

from .helpers import OpenDevice, eventually

BAD_FRAMES = (
    "not json",
    b"\x00binary",
    '{"type": "from_a_newer_server", "x": 1}',
    '{"type": "push", "key": "like/tea"}',
    '{"type": "pushes", "pushes": ' + "[" * 50_000 + "]" * 50_000 + "}",
)


class GarblingTransport:
    """The real websocket, with undecodable frames slipped in before and after
    every frame the server sends."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner

    async def send(self, message: str) -> None:
        await self.inner.send(message)

    async def close(self) -> None:
        await self.inner.close()

    async def __aiter__(self) -> AsyncIterator[str | bytes]:
        for bad in BAD_FRAMES:
            yield bad
        async for frame in self.inner:
            yield frame
            for bad in BAD_FRAMES:
                yield bad


async def test_frames_the_link_cannot_decode_are_dropped_and_the_connection_lives(
    server: SyncServer, open_device: OpenDevice, caplog: pytest.LogCaptureFixture
) -> None:
    """Garbage, binary, unknown types, broken and absurdly nested frames around
    every real frame are logged and dropped: one connection, online, syncing."""
    connects: list[str] = []

    async def connect(url: str) -> Transport:
        connects.append(url)
        return GarblingTransport(await connect_websocket(url))

    a = await open_device("A", [server.url], connect=connect)
    b = await open_device("B", [server.url])
    await eventually(lambda: a.status.state == "online", a)
    await asyncio.wait_for(a.toggle_like("tea"), TIMEOUT)
    await b.toggle_like("jam")
    await eventually(lambda: a.state.liked("jam"), a)
    assert a.state.status("tea").phase is SyncPhase.SYNCED
    assert connects == [server.url]
    assert a.client.engine.frames_dropped >= 3 * len(BAD_FRAMES)
    assert any("cannot decode" in r.getMessage() for r in caplog.records)


async def test_unavailable_keeps_the_intent_resends_it_and_says_so_with_a_retry_time(
    open_device: OpenDevice,
) -> None:
    """While the server's backend is down, a set is answered 'unavailable': the
    intent stays, the badge says unavailable with a retry time (never failed), and
    the write lands once the backend is back."""
    server = await start_server(port=0, backend="memory")
    try:
        a = await open_device("A", [server.url])
        await eventually(lambda: a.status.state == "online", a)
        phases: list[SyncPhase] = []
        a.cubit.subscribe(lambda state: phases.append(state.status("tea").phase))
        backend = server.core.backend
        assert isinstance(backend, MemoryBackend)
        backend.make_unavailable()
        completion = a.toggle_like("tea")
        await eventually(lambda: a.state.status("tea").retry_at is not None, a)
        assert a.state.status("tea").phase is SyncPhase.UNAVAILABLE
        assert "tea" in a.state.intents
        assert a.state.liked("tea")
        backend.make_available()
        await asyncio.wait_for(completion, TIMEOUT)
        assert a.state.status("tea").phase is SyncPhase.SYNCED
        assert a.state.status("tea").retry_at is None
        assert SyncPhase.FAILED not in phases
        assert not a.state.intents
        value = await a.client.get("like/tea")
        assert (value.value, value.server_revision) == (True, 1)
    finally:
        await server.close()


async def test_a_device_meets_a_fresh_database_at_the_same_url_and_converges(
    open_device: OpenDevice, tmp_path: Path
) -> None:
    """A device that knew revision 5 meets a server restarted on a new database:
    it forgets the old history, shows keys the new one lacks as never written,
    resends its unconfirmed intent, and every badge ends synced at the new revisions."""
    first = await start_server(port=0, db_path=tmp_path / "first.sqlite3")
    a = await open_device("A", [first.url])
    try:
        await eventually(lambda: a.status.state == "online", a)
        for item_id in ("tea", "jam", "fig", "jam", "jam"):
            await asyncio.wait_for(a.toggle_like(item_id), TIMEOUT)
        await eventually(lambda: a.client.newest_seen.value == 5, a)
        old_epoch = a.client.epoch
        assert old_epoch is not None, "the server sends its epoch in welcome"
    finally:
        await first.close()
    await eventually(lambda: a.status.state == "offline", a)
    a.toggle_like("fig")  # unconfirmed: fig back to not liked, waiting for the link
    assert "fig" in a.state.intents

    fresh = await start_server(port=first.port, db_path=tmp_path / "fresh.sqlite3")
    try:
        a.client.retry_now()
        await eventually(
            lambda: a.status.state == "online" and not a.state.intents and fresh.revision == 1, a
        )
        assert a.client.epoch not in (None, old_epoch)
        await eventually(lambda: a.client.newest_seen.value == 1, a)
        assert [a.state.liked(i) for i in ("tea", "jam", "fig")] == [False, False, False]
        assert [a.cubit.server_revision(i) for i in ("tea", "jam", "fig")] == [0, 0, 1]
        for item_id in ("tea", "jam", "fig"):
            assert a.state.status(item_id).phase is SyncPhase.SYNCED, item_id
        await a.flush()
        value = await a.client.get("like/fig")
        assert (value.value, value.server_revision) == (False, 1)
    finally:
        await fresh.close()


class EpochStamp:
    """The real websocket, with every snapshot stamped with ``epoch["now"]``: stands
    in for a server that names its database's epoch."""

    def __init__(self, inner: Transport, epoch: dict[str, str]) -> None:
        self.inner = inner
        self.epoch = epoch

    async def send(self, message: str) -> None:
        await self.inner.send(message)

    async def close(self) -> None:
        await self.inner.close()

    async def __aiter__(self) -> AsyncIterator[str | bytes]:
        async for frame in self.inner:
            message = json.loads(frame)
            if message.get("type") == "snapshot":
                frame = json.dumps({**message, "epoch": self.epoch["now"]})
            yield frame


async def test_a_new_epoch_makes_the_device_forget_the_old_history(
    open_device: OpenDevice, tmp_path: Path
) -> None:
    """Snapshots stamped with a new epoch after a move to a new database: the device
    drops revision 5 for the new history's 1, absent keys read as never written,
    and the unconfirmed intent is resent; every badge ends synced."""
    epoch = {"now": "first"}

    async def connect(url: str) -> Transport:
        return EpochStamp(await connect_websocket(url), epoch)

    first = await start_server(port=0, db_path=tmp_path / "first.sqlite3")
    a = await open_device("A", [first.url], connect=connect)
    try:
        await eventually(lambda: a.status.state == "online", a)
        for item_id in ("tea", "jam", "fig", "jam", "jam"):
            await asyncio.wait_for(a.toggle_like(item_id), TIMEOUT)
        await eventually(lambda: a.client.newest_seen.value == 5, a)
        assert a.client.epoch == "first"
    finally:
        await first.close()
    await eventually(lambda: a.status.state == "offline", a)
    a.toggle_like("fig")  # unconfirmed: fig back to not liked
    epoch["now"] = "fresh"
    fresh = await start_server(port=first.port, db_path=tmp_path / "fresh.sqlite3")
    try:
        a.client.retry_now()
        await eventually(
            lambda: a.status.state == "online" and not a.state.intents and fresh.revision == 1, a
        )
        await eventually(lambda: a.client.newest_seen.value == 1, a)
        assert a.client.epoch == "fresh"
        assert [a.state.liked(i) for i in ("tea", "jam", "fig")] == [False, False, False]
        assert [a.cubit.server_revision(i) for i in ("tea", "jam", "fig")] == [0, 0, 1]
        for item_id in ("tea", "jam", "fig"):
            assert a.state.status(item_id).phase is SyncPhase.SYNCED, item_id
        await a.close()
        stored = DeviceStore.peek(tmp_path / "devices", "A")
        assert (stored.epoch, stored.newest_seen) == ("fresh", 1)
        assert stored.revisions == {"like/tea": 0, "like/jam": 0, "like/fig": 1}
    finally:
        await fresh.close()


async def test_a_device_with_a_hundred_thousand_keys_to_catch_up_comes_online(
    open_device: OpenDevice,
) -> None:
    """100,000 keys written while the device was away reach it as a paged snapshot;
    it comes online once, after the last page, with its catalogue's keys applied."""
    server = await start_server(port=0, backend="memory")
    try:
        # Written through the backend interface, as the server's own writes are:
        # 100,000 sets over a socket would take this test's whole budget.
        backend = server.core.backend
        for n in range(99_999):
            backend.submit(Write(f"note/{n:06}", b"true", local_revision=1, device_id=99))
        backend.submit(Write("like/tea", b"true", local_revision=1, device_id=99))
        committed = asyncio.Event()
        unsubscribe = server.observe(lambda _state: committed.set())
        try:
            async with asyncio.timeout(TIMEOUT):
                while server.revision < 100_000:
                    await committed.wait()
                    committed.clear()
        finally:
            unsubscribe()
        statuses: list[str] = []
        a = await open_device("A", [server.url])
        a.subscribe_status(lambda status: statuses.append(status.state))
        await eventually(lambda: a.status.state == "online", a)
        assert statuses.count("online") == 1
        assert a.client.snapshots_applied == 1
        assert a.client.newest_seen.value == 100_000
        assert a.state.liked("tea")
        assert a.cubit.server_revision("tea") == 100_000
    finally:
        await server.close()
