"""Spaces on a real server: isolation, prev, joining, limits and access."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from syncserver import SyncServer, serve
from syncserver.backends import ChangePage, Write
from syncserver.backends.memory import MemoryBackend
from syncserver.backends.sqlite import SQLiteBackend
from syncserver.core import ServerCore
from tests.commits import committed
from tests.observability.test_health_and_metrics import scrape
from tests.old_databases import write_database_from_before_spaces

from .conftest import Client, Clients

BACKENDS = ["memory", "sqlite"]


@pytest.fixture(params=BACKENDS)
async def any_server(request: pytest.FixtureRequest, db_path: Path) -> AsyncIterator[SyncServer]:
    backend = None if request.param == "sqlite" else request.param
    async with serve(db_path=db_path, backend=backend) as running:
        yield running


async def _join(client: Client, device_id: int, space: str, since: int = 0) -> dict[str, Any]:
    return await client.hello(device_id=device_id, since=since, space=space)


def _keys(snapshot: dict[str, Any]) -> dict[str, Any]:
    return {entry["key"]: entry["value"] for entry in snapshot["values"]}


async def test_a_device_never_sees_another_spaces_keys(any_server: SyncServer, clients: Clients):
    """Same key in three spaces: pushes, snapshots and gets each stay in their space."""
    url = any_server.url
    family, work, plain = await clients(url), await clients(url), await clients(url)
    await _join(family, 1, "family")
    await _join(work, 2, "work")
    await plain.hello(device_id=3)
    assert (await family.set("k", "f", space="family"))["space"] == "family"
    assert (await work.set("k", "w", space="work"))["space"] == "work"
    assert (await plain.set("k", "d"))["space"] == "default"
    for client, space, value in (
        (family, "family", "f"),
        (work, "work", "w"),
        (plain, "default", "d"),
    ):
        push = await client.recv_type("push")
        assert (push["space"], push["value"]) == (space, value)
        # Every later frame is about the client's own space only.
        await client.send({"type": "get", "request_id": 1, "key": "k", "space": space})
        reply = await client.recv_type("value")
        assert (reply["space"], reply["value"]) == (space, value)
        assert [m for m in client.skipped if m["type"] == "push"] == []
    fresh = await clients(url)
    for device, space, value in ((4, "family", "f"), (4, "work", "w"), (4, "default", "d")):
        snapshot = await _join(fresh, device, space)
        assert (snapshot["space"], _keys(snapshot)) == (space, {"k": value})
    assert any_server.core.backend.count == 3


async def test_prev_names_the_previous_write_of_the_same_space(
    any_server: SyncServer, clients: Clients
):
    """Writes alternating between spaces: each push's prev is its space's last revision."""
    watcher = await clients(any_server.url)
    await _join(watcher, 9, "a")
    await _join(watcher, 9, "b")
    writer = await clients(any_server.url)
    await _join(writer, 1, "a")
    await _join(writer, 1, "b")
    for space in ("a", "b", "a", "a", "b"):
        await writer.set("k", space, space=space)
    pushes = [await watcher.recv_type("push") for _ in range(5)]
    assert [(p["space"], p["server_revision"], p["prev"]) for p in pushes] == [
        ("a", 1, 0), ("b", 2, 0), ("a", 3, 1), ("a", 4, 3), ("b", 5, 2),
    ]  # fmt: skip


@pytest.mark.parametrize("batch", [True, False])
async def test_one_connection_in_several_spaces_gets_their_pushes_in_revision_order(
    any_server: SyncServer, clients: Clients, batch: bool
):
    """Pipelined hellos join two spaces; one commit's pushes of both come in revision order."""
    both = await clients(any_server.url)
    await both.send({"type": "hello", "device_id": 5, "space": "a", "batch_pushes": batch})
    await both.send({"type": "hello", "device_id": 5, "space": "b", "batch_pushes": batch})
    assert {(await both.read_snapshot())["space"] for _ in range(2)} == {"a", "b"}
    writer = await clients(any_server.url)
    for space in ("a", "b", "c"):
        await _join(writer, 1, space)
    for index, space in enumerate(("a", "b", "c", "b", "a")):
        await writer.set_nowait(f"k{index}", index, request_id=index, space=space)
    seen: list[tuple[str, int]] = []
    while len(seen) < 4:
        frame = await both.recv_type("pushes" if batch else "push")
        for push in frame["pushes"] if batch else [frame]:
            seen.append((push["space"], push["server_revision"]))
    assert seen == [("a", 1), ("b", 2), ("b", 4), ("a", 5)]


async def test_set_and_get_on_a_space_not_joined_are_refused(server: SyncServer, clients: Clients):
    """not_joined names the space and echoes the request id; nothing is written."""
    client = await clients(server.url)
    await _join(client, 1, "mine")
    await client.send(
        {"type": "set", "request_id": "s", "key": "k", "value": 1, "local_revision": 1,
         "space": "theirs"}
    )  # fmt: skip
    error = await client.recv_type("error")
    assert (error["code"], error["request_id"], error["space"]) == ("not_joined", "s", "theirs")
    await client.send({"type": "get", "request_id": "g", "key": "k", "space": "theirs"})
    error = await client.recv_type("error")
    assert (error["code"], error["request_id"], error["space"]) == ("not_joined", "g", "theirs")
    await client.send({"type": "get", "request_id": "d", "key": "k"})
    error = await client.recv_type("error")
    assert (error["code"], error["space"]) == ("not_joined", "default")
    assert server.revision == 0


async def test_an_old_client_lives_in_the_default_space(server: SyncServer, clients: Clients):
    """Frames without space fields join, write and read the default space as before."""
    old, new = await clients(server.url), await clients(server.url)
    assert (await old.hello(device_id=1))["space"] == "default"
    await _join(new, 2, "default")
    await _join(new, 2, "other")
    await new.set("elsewhere", 1, space="other")
    ack = await old.set("k", True)
    assert (ack["space"], ack["server_revision"]) == ("default", 2)
    push = await old.recv_type("push")
    assert (push["key"], push["prev"]) == ("k", 0)
    assert (await old.get("k"))["value"] is True
    assert [m["key"] for m in old.skipped if m["type"] == "push"] == []


async def test_a_hello_since_reads_only_its_space_after_a_restart(db_path: Path, clients: Clients):
    """After a restart, heads come back per space, a catch-up reads only its space's
    writes after since, and prev carries on from the space's head."""
    async with serve(db_path=db_path) as first:
        writer = await clients(first.url)
        await _join(writer, 1, "a")
        await _join(writer, 1, "b")
        await writer.set("a1", 1, space="a")
        await writer.set("b1", 1, space="b")
        await writer.set("a2", 2, space="a")
        await writer.set("b2", 2, space="b")
    async with serve(db_path=db_path) as second:
        backend = second.core.backend
        assert (backend.head("a"), backend.head("b"), backend.head("c"), backend.spaces) == (
            3, 4, 0, 2,
        )  # fmt: skip
        reader = await clients(second.url)
        snapshot = await _join(reader, 2, "a", since=1)
        assert (_keys(snapshot), snapshot["revision"]) == ({"a2": 2}, 4)
        writer = await clients(second.url)
        await _join(writer, 1, "a")
        await writer.set("a3", 3, space="a")
        push = await reader.recv_type("push")
        assert (push["server_revision"], push["prev"]) == (5, 3)


class _CountingReads(MemoryBackend):
    """A memory backend that counts its page reads."""

    reads = 0

    def read_changes(
        self,
        space: str,
        after: int,
        upto: int | None,
        budget: int,
        done: Callable[[ChangePage | None], None],
    ) -> None:
        _CountingReads.reads += 1
        super().read_changes(space, after, upto, budget, done)


class _Peer:
    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    def send(self, frames: Any, shared: Any = None) -> int:
        self.frames.extend(json.loads(frame) for frame in frames)
        if shared is not None:
            self.frames.extend(json.loads(frame) for frame in shared.payloads)
        return 0

    def close(self, code: int, reason: str) -> None:
        pass

    def abort(self) -> None:
        pass


async def test_an_up_to_date_hello_reads_nothing_whatever_other_spaces_wrote() -> None:
    """hello since the space's head, with newer writes in other spaces: one empty
    page at the global revision, answered from head(space) without a read."""
    core = ServerCore(_CountingReads, asyncio.get_running_loop())
    await core.backend.open()
    writer = core.connect(_Peer())
    for space in ("quiet", "busy"):
        core.receive(writer, json.dumps({"type": "hello", "device_id": 1, "space": space}))
    set_ = {"type": "set", "key": "k", "value": 1, "local_revision": 1}
    core.receive(writer, json.dumps({**set_, "request_id": 1, "space": "quiet"}))
    for request in range(2, 5):
        core.receive(writer, json.dumps({**set_, "request_id": request, "space": "busy"}))
    await committed(core, 4)
    _CountingReads.reads = 0
    peer = _Peer()
    epoch = core.backend.epoch
    hello = {"type": "hello", "device_id": 2, "space": "quiet", "since": 1, "epoch": epoch}
    core.receive(core.connect(peer), json.dumps(hello))
    assert _CountingReads.reads == 0
    assert [(f["type"], f["space"], f["revision"], f["values"]) for f in peer.frames] == [
        ("snapshot", "quiet", 4, [])
    ]
    await core.backend.close()


async def test_too_many_spaces_is_refused_and_changes_nothing(db_path: Path, clients: Clients):
    """Past max_spaces_per_connection a hello gets too_many_spaces; joined spaces
    keep working and may still resync."""
    async with serve(db_path=db_path, max_spaces_per_connection=2) as running:
        client = await clients(running.url)
        await _join(client, 1, "a")
        await _join(client, 1, "b")
        await client.send({"type": "hello", "device_id": 1, "space": "c"})
        error = await client.recv_type("error")
        assert (error["code"], error["request_id"], error["space"]) == (
            "too_many_spaces", None, "c",
        )  # fmt: skip
        assert (await _join(client, 1, "a"))["space"] == "a"
        await client.send(
            {"type": "set", "request_id": 1, "key": "k", "value": 1, "local_revision": 1,
             "space": "c"}
        )  # fmt: skip
        assert (await client.recv_type("error"))["code"] == "not_joined"
        assert (await client.set("k", 1, space="b"))["server_revision"] == 1
        conn = next(iter(running.core.connections.values()))
        assert list(conn.spaces) == ["a", "b"]


@pytest.fixture
async def guarded(db_path: Path) -> AsyncIterator[SyncServer]:
    access = {"default": None, "family": frozenset({7, 8})}
    async with serve(db_path=db_path, space_access=access) as running:
        yield running


async def test_space_access_lets_listed_devices_in(guarded: SyncServer, clients: Clients):
    """A listed device joins its space; "*" lets every device into default."""
    member = await clients(guarded.url)
    assert (await _join(member, 7, "family"))["space"] == "family"
    anyone = await clients(guarded.url)
    assert (await _join(anyone, 12345, "default"))["space"] == "default"


async def test_space_access_refuses_others_and_keeps_the_connection(
    guarded: SyncServer, clients: Clients
):
    """An unlisted device, or a space not in the table, gets forbidden; the connection
    stays bound to its device, in the spaces it had."""
    client = await clients(guarded.url)
    await client.send({"type": "hello", "device_id": 9, "space": "family"})
    error = await client.recv_type("error")
    assert (error["code"], error["request_id"], error["space"]) == ("forbidden", None, "family")
    await _join(client, 9, "default")
    await client.send({"type": "hello", "device_id": 9, "space": "unlisted"})
    assert (await client.recv_type("error"))["space"] == "unlisted"
    await client.send({"type": "hello", "device_id": 10})
    assert (await client.recv_type("error"))["code"] == "device_mismatch"
    assert (await client.set("k", 1, device_id=9))["space"] == "default"
    await client.send(
        {"type": "set", "request_id": 2, "key": "k", "value": 1, "local_revision": 2,
         "space": "family"}
    )  # fmt: skip
    assert (await client.recv_type("error"))["code"] == "not_joined"
    assert guarded.revision == 1


async def test_a_forbidden_first_hello_still_binds_the_connection(
    guarded: SyncServer, clients: Clients
):
    """A first hello refused with forbidden binds the connection to its device, in no
    space: its sets get not_joined, and a hello with another device id device_mismatch."""
    client = await clients(guarded.url)
    await client.send({"type": "hello", "device_id": 9, "space": "family"})
    assert (await client.recv_type("error"))["code"] == "forbidden"
    await client.send({"type": "hello", "device_id": 7, "space": "family"})
    error = await client.recv_type("error")
    assert (error["code"], error["request_id"]) == ("device_mismatch", None)
    await client.send(
        {"type": "set", "request_id": 1, "key": "k", "value": 1, "local_revision": 1}
    )  # fmt: skip
    error = await client.recv_type("error")
    assert (error["code"], error["request_id"], error["space"]) == ("not_joined", 1, "default")
    assert guarded.revision == 0


async def test_the_observer_feed_and_metrics_show_spaces(db_path: Path, clients: Clients):
    """State entries name their space, devices list their spaces, /metrics counts spaces."""
    async with serve(db_path=db_path) as running:
        client = await clients(running.url)
        await _join(client, 1, "a")
        await _join(client, 1, "b")
        await client.set("k", 1, space="a")
        await client.set("k", 2, space="b")
        state = running.core.state()
        assert sorted((v.space, v.key, bytes(v.value)) for v in state.values) == [
            ("a", "k", b"1"), ("b", "k", b"2"),
        ]  # fmt: skip
        assert [d.spaces for d in state.devices] == [["a", "b"]]
        metrics = await scrape(running)
        assert metrics[("optisync_spaces", ())] == 2
        assert metrics[("optisync_spaces_joined", ())] == 2


async def test_the_observer_feed_sorts_values_by_key_then_newest_first(
    any_server: SyncServer, clients: Clients
):
    """server_state.values is in key order across spaces; one key name in several
    spaces comes newest first, as PROTOCOL.md says."""
    client = await clients(any_server.url)
    for space in ("b", "a", "c"):
        await _join(client, 1, space)
    for space, key in (("b", "x"), ("a", "y"), ("c", "x"), ("a", "x"), ("b", "w")):
        await client.set(key, 1, space=space)
    state = any_server.core.state()
    assert [(v.key, v.space) for v in state.values] == [
        ("w", "b"), ("x", "a"), ("x", "c"), ("x", "b"), ("y", "a"),
    ]  # fmt: skip


async def test_a_database_from_before_spaces_moves_into_the_default_space(
    db_path: Path, clients: Clients
):
    """Opening an old database keeps its epoch and revisions, and puts every register
    in the default space, with the (space, revision) index."""
    write_database_from_before_spaces(db_path)
    async with serve(db_path=db_path) as running:
        backend = running.core.backend
        assert isinstance(backend, SQLiteBackend)
        assert (backend.epoch, backend.revision, backend.head("default"), backend.count) == (
            "old-epoch", 5, 5, 2,
        )  # fmt: skip
        client = await clients(running.url)
        snapshot = await client.hello(device_id=1, since=3, epoch="old-epoch")
        assert (_keys(snapshot), snapshot["space"]) == ({"like/b": "x"}, "default")
        ack = await client.set("like/a", False)
        assert ack["server_revision"] == 6
        assert (await client.recv_type("push"))["prev"] == 5
    db = sqlite3.connect(db_path)
    try:
        columns = [row[1] for row in db.execute("PRAGMA table_info(registers)")]
        indexes = {row[1] for row in db.execute("PRAGMA index_list(registers)")}
        rows = db.execute("SELECT space, key, revision FROM registers ORDER BY revision").fetchall()
    finally:
        db.close()
    assert columns[:2] == ["space", "key"]
    assert {"registers_by_space", "registers_by_revision"} <= indexes
    assert rows == [("default", "like/b", 5), ("default", "like/a", 6)]


async def test_the_memory_backend_keeps_every_space_when_restored() -> None:
    """MemoryBackend.registers holds every space; restoring it brings back heads."""
    writes: list[Any] = []
    backend = MemoryBackend(writes.extend, lambda _writes, _exc: None)
    await backend.open()
    for space, key in (("a", "x"), ("b", "x"), ("a", "y")):
        backend.submit(Write(key, b"1", space=space))
    await backend.close()
    assert [(w.space, w.revision, w.prev) for w in writes] == [
        ("a", 1, 0),
        ("b", 2, 0),
        ("a", 3, 1),
    ]
    restored = MemoryBackend(lambda _writes: None, lambda _writes, _exc: None)
    restored.registers = backend.registers
    assert (restored.head("a"), restored.head("b"), restored.spaces, restored.count) == (3, 2, 2, 3)
    assert restored.get("b", "x") is not None
    assert restored.get("b", "y") is None
