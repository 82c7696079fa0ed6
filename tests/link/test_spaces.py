"""Devices in spaces on a real server: isolation, gaps by ``prev``, refusals, batches."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from app.link import DeviceSession, LikesState, MemoryStore, Transport
from app.link.store import StoredState
from syncserver import SyncServer, start_server
from syncserver.protocol import Push

from .helpers import CATALOGUE, FAST, OpenDevice, eventually

SECRET = "a-device-secret-for-the-tests"


def _values(server: SyncServer, space: str) -> dict[str, bool]:
    return {
        entry.key: json.loads(bytes(entry.value))
        for entry in server.state().values
        if entry.space == space
    }


def _head(server: SyncServer, space: str) -> int:
    """The newest revision written in ``space`` (from the observer feed: few keys here)."""
    revisions = [e.server_revision for e in server.state().values if e.space == space]
    return max(revisions, default=0)


async def test_two_sessions_in_two_spaces_on_one_server_never_see_each_others_keys(
    server: SyncServer, open_device: OpenDevice
) -> None:
    """Same key names in two spaces (and the default one): each device shows only its
    space's writes, at any moment, and the server holds three apart registers."""
    family = await open_device("A", [server.url], space="family")
    work = await open_device("B", [server.url], space="work")
    plain = await open_device("C", [server.url])
    seen: list[tuple[str, str]] = []

    def watch(name: str, session: DeviceSession) -> None:
        def record(state: LikesState) -> None:
            seen.extend((name, item.id) for item in state.items if item.liked)

        session.cubit.subscribe(record)

    watch("family", family)
    watch("work", work)
    watch("default", plain)
    await eventually(
        lambda: all(s.status.state == "online" for s in (family, work, plain)), family, work, plain
    )
    await asyncio.gather(family.toggle_like("tea"), work.toggle_like("jam"))
    await plain.toggle_like("fig")
    await family.toggle_like("fig")
    await family.toggle_like("fig")  # fig: liked then unliked in family
    await eventually(
        lambda: (
            plain.client.newest_seen.value == _head(server, "default")
            and family.client.newest_seen.value == _head(server, "family")
        ),
        family,
        plain,
    )
    assert set(seen) == {("family", "tea"), ("family", "fig"), ("work", "jam"), ("default", "fig")}
    assert [item.id for item in family.state.items if item.liked] == ["tea"]
    assert [item.id for item in work.state.items if item.liked] == ["jam"]
    assert [item.id for item in plain.state.items if item.liked] == ["fig"]
    assert _values(server, "family") == {"like/tea": True, "like/fig": False}
    assert _values(server, "work") == {"like/jam": True}
    assert _values(server, "default") == {"like/fig": True}
    for session in (family, work, plain):
        assert session.client.engine.foreign_dropped == 0  # the server sent none
        assert session.client.gaps_detected == 0  # other spaces' revisions were no gap


async def test_a_missed_push_in_a_space_is_found_by_prev_and_other_spaces_never_look_like_gaps(
    server: SyncServer, open_device: OpenDevice
) -> None:
    """Writes in another space skip revisions without a resync; a push lost in the
    device's own space is found by the next write of that space, and resynced."""
    dropping = False
    dropped: list[Push] = []

    def drop(push: Push) -> bool:
        if dropping and not dropped:
            dropped.append(push)
            return True
        return False

    a = await open_device("A", [server.url], space="family", drop_push=drop, heartbeat=None)
    b = await open_device("B", [server.url], space="family")
    c = await open_device("C", [server.url], space="work")
    await eventually(lambda: all(s.status.state == "online" for s in (a, b, c)), a, b, c)
    for item in ("tea", "jam", "fig"):
        await c.toggle_like(item)
    await b.toggle_like("tea")
    await eventually(lambda: a.state.liked("tea"), a)
    assert a.client.newest_seen.value == server.revision  # 4, past the 3 of work
    assert a.client.gaps_detected == 0

    dropping = True
    await b.toggle_like("jam")  # its push to A is lost
    await eventually(lambda: bool(dropped), a, b)
    await c.toggle_like("tea")  # another space: still no gap for A
    assert a.client.gaps_detected == 0
    assert not a.state.liked("jam")

    await b.toggle_like("fig")  # prev names the lost jam write: a gap
    await eventually(lambda: a.state.liked("jam") and a.state.liked("fig"), a)
    assert a.client.gaps_detected == 1
    await eventually(lambda: a.client.newest_seen.value == _head(server, "family"), a)


async def test_a_space_the_server_refuses_is_reported_and_retried(
    tmp_path: Path, open_device: OpenDevice
) -> None:
    """A hello for a space the access list does not open gets ``forbidden``: the
    device stays offline, its status says why, and it tries again after the backoff;
    a device in the list joins."""
    member = 12
    access = {"default": None, "family": frozenset({member})}
    server = await start_server(port=0, db_path=tmp_path / "server.sqlite3", space_access=access)
    try:
        outsider = await open_device("A", [server.url], space="family")
        store = MemoryStore(
            "B", StoredState(device_id=member, device_secret=SECRET), space="family"
        )
        insider = await open_device("B", [server.url], space="family", store=store)
        await eventually(lambda: outsider.status.attempt >= 2, outsider)
        assert outsider.status.state != "online"
        assert outsider.status.reason == "the server refused space 'family' (forbidden)"
        await eventually(lambda: insider.status.state == "online", insider)
        await insider.toggle_like("tea")
        assert not outsider.state.liked("tea")
    finally:
        await server.close()


class ScriptedTransport:
    """A connection whose server side the test writes frame by frame."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.said_hello = asyncio.Event()
        self.incoming: asyncio.Queue[str] = asyncio.Queue()

    async def send(self, message: str) -> None:
        frame = json.loads(message)
        self.sent.append(frame)
        if frame["type"] == "hello":
            self.said_hello.set()

    async def __aiter__(self) -> AsyncIterator[str]:
        while True:
            yield await self.incoming.get()

    async def close(self) -> None:
        pass


class OlderServer(ScriptedTransport):
    """A server from before spaces: it ignores ``hello.space`` and answers every hello
    with a snapshot of its only keys, which carries no ``space`` field."""

    async def send(self, message: str) -> None:
        await super().send(message)
        if json.loads(message)["type"] == "hello":
            old = {"type": "snapshot", "revision": 0, "values": [], "epoch": "e1"}
            self.incoming.put_nowait(json.dumps(old))


async def test_a_server_older_than_spaces_leaves_a_spaced_device_offline_saying_why() -> None:
    """A device in a space other than the default, on a server that cannot do spaces,
    never shows that server's default keys: it stays offline with the reason, retrying."""
    transports: list[OlderServer] = []

    async def connect(url: str) -> Transport:
        transports.append(OlderServer())
        return transports[-1]

    session = await DeviceSession.open(
        "A",
        ["mem://server"],
        store=MemoryStore("A", space="family"),
        connect=connect,
        catalogue=CATALOGUE,
        backoff=FAST,
        space="family",
    )
    try:
        await eventually(lambda: session.status.attempt >= 2, session)
        assert session.status.state != "online"
        assert session.status.reason == ("the server does not serve space 'family' (older server?)")
        assert len(transports) >= 2
    finally:
        await session.close()


def _push(key: str, revision: int, prev: int, space: str) -> dict[str, Any]:
    return {"type": "push", "key": key, "value": True, "server_revision": revision,
            "local_revision": 1, "device_id": 99, "space": space, "prev": prev}  # fmt: skip


async def test_a_frame_of_pushes_is_still_one_state_change_in_a_space() -> None:
    """A pushes frame mixing spaces (as a server may send a connection in several)
    applies this space's pushes as one new state, and nothing of the other space."""
    transport = ScriptedTransport()

    async def connect(url: str) -> Transport:
        return transport

    session = await DeviceSession.open(
        "A",
        ["mem://server"],
        store=MemoryStore("A", space="family"),
        connect=connect,
        catalogue=CATALOGUE,
        backoff=FAST,
        space="family",
    )
    try:
        await asyncio.wait_for(transport.said_hello.wait(), 5)
        assert transport.sent[0]["space"] == "family"
        snapshot = {"type": "snapshot", "revision": 3, "values": [], "epoch": "e1",
                    "space": "family"}  # fmt: skip
        transport.incoming.put_nowait(json.dumps(snapshot))
        await eventually(lambda: session.status.state == "online", session)
        emitted: list[LikesState] = []
        session.cubit.subscribe(emitted.append)
        pushes = [
            _push("like/tea", 4, 0, "family"),
            _push("like/jam", 5, 0, "work"),
            _push("like/fig", 6, 4, "family"),
            _push("like/jam", 7, 5, "work"),
        ]
        transport.incoming.put_nowait(json.dumps({"type": "pushes", "pushes": pushes}))
        await eventually(lambda: session.client.newest_seen.value == 6, session)
        assert len(emitted) == 1
        assert [item.id for item in emitted[0].items if item.liked] == ["tea", "fig"]
        assert session.client.engine.foreign_dropped == 2
        assert session.client.gaps_detected == 0
    finally:
        await session.close()
