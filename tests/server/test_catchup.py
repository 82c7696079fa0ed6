"""Catch-up by change: hello since R reads what was written after R, in pages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import pytest
from websockets.asyncio.client import connect

from syncserver import serve
from syncserver.backends import ChangePage, CommitCallback, FailureCallback, Write
from syncserver.backends.memory import MemoryBackend
from syncserver.backends.ordered import RevisionLog, encode_entry
from syncserver.backends.sqlite import SQLiteBackend
from syncserver.config import ServerConfig
from syncserver.core import ServerCore, Shared
from syncserver.frames import snapshot_entry
from syncserver.protocol import MAX_PAGE_BYTES, SnapshotEntry, encode_bytes
from tests.commits import committed
from tests.perf.registers import create_database, fill_registers
from tests.server.conftest import Clients
from tests.timeouts import TIMEOUT

BIG_VALUE = json.dumps("x" * 300)
"""A value big enough that a few thousand registers need several pages."""


async def _pages(url: str, hello: dict[str, Any]) -> list[bytes]:
    """Say hello on a raw connection; return the snapshot's pages as sent."""
    async with connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "hello", **hello}))
        pages: list[bytes] = []
        while True:
            raw = await asyncio.wait_for(ws.recv(decode=False), TIMEOUT)
            if json.loads(raw)["type"] != "snapshot":
                continue
            pages.append(raw)
            if not json.loads(raw)["more"]:
                return pages


async def test_a_full_snapshot_of_a_big_database_comes_in_pages(tmp_path: Path) -> None:
    """4,000 registers of ~300 bytes: several pages, each within MAX_PAGE_BYTES, every
    one but the last says more, and together they hold each register once, oldest first."""
    db = tmp_path / "big.sqlite3"
    create_database(db)
    newest = fill_registers(db, 4000, value=BIG_VALUE)
    async with serve(db_path=db) as server:
        pages = await _pages(server.url, {"device_id": 1})
    assert len(pages) >= 3
    assert all(len(page) <= MAX_PAGE_BYTES for page in pages)
    decoded = [json.loads(page) for page in pages]
    assert [page["more"] for page in decoded] == [True] * (len(pages) - 1) + [False]
    assert {(p["revision"], p["since"], p["epoch"]) for p in decoded} == {(newest, 0, server.epoch)}
    revisions = [entry["server_revision"] for page in decoded for entry in page["values"]]
    assert revisions == list(range(1, newest + 1))
    assert decoded[0]["values"][0] == {
        "key": "k/0000000",
        "value": "x" * 300,
        "server_revision": 1,
        "local_revision": 1,
        "device_id": 1,
    }


async def test_hello_since_reads_only_later_writes_after_a_restart(
    tmp_path: Path, clients: Clients
) -> None:
    """SQLite: after a restart, hello since R holds exactly the registers written
    after R, newest revision each, and the register count is still right."""
    db = tmp_path / "restart.sqlite3"
    create_database(db)
    fill_registers(db, 1000)
    async with serve(db_path=db) as server:
        client = await clients(server.url)
        await client.hello(device_id=3)
        for index in (5, 700, 5):
            await client.set(f"k/{index:07d}", index)
    async with serve(db_path=db) as server:
        assert server.revision == 1003
        assert server.state().values_total == 1000
        client = await clients(server.url)
        snapshot = await client.hello(device_id=3, since=1001, epoch=server.epoch)
        assert [(e["key"], e["server_revision"]) for e in snapshot["values"]] == [
            ("k/0000700", 1002),
            ("k/0000005", 1003),
        ]
        await client.set("k/new", True)
        assert server.state().values_total == 1001


async def test_an_up_to_date_hello_gets_one_empty_page(tmp_path: Path, clients: Clients) -> None:
    """hello since the newest revision (the heartbeat's case): one empty, final page."""
    db = tmp_path / "heartbeat.sqlite3"
    create_database(db)
    newest = fill_registers(db, 500)
    async with serve(db_path=db) as server:
        client = await clients(server.url)
        snapshot = await client.hello(device_id=2, since=newest, epoch=server.epoch)
    assert (snapshot["revision"], snapshot["since"], snapshot["values"]) == (newest, newest, [])
    assert snapshot["more"] is False


async def test_a_get_and_the_feed_read_from_the_database(tmp_path: Path, clients: Clients) -> None:
    """Nothing per register is kept in memory: get and the observer feed read SQLite."""
    db = tmp_path / "reads.sqlite3"
    create_database(db)
    fill_registers(db, 20_000)
    async with serve(db_path=db) as server:
        client = await clients(server.url)
        await client.hello(device_id=2, since=20_000, epoch=server.epoch)
        value = await client.get("k/0000042")
        assert (value["value"], value["server_revision"]) == (True, 43)
        assert (await client.get("k/none"))["server_revision"] == 0
        state = server.state()
    assert state.values_total == 20_000
    assert 0 < len(state.values) < 20_000
    assert max(entry.server_revision for entry in state.values) == 20_000


# -- pushes between pages, at the core (no sockets) ---------------------------------


class _Peer:
    """Keeps every frame the core sends, decoded, in order."""

    def __init__(self, on_page: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.frames: list[dict[str, Any]] = []
        self.done = asyncio.Event()
        self.acked = asyncio.Event()
        self.acks = 0
        self.on_page = on_page

    def send(self, frames: Sequence[bytes], shared: Shared | None = None) -> int:
        for payload in [*frames, *(shared.payloads if shared is not None else ())]:
            message = json.loads(payload)
            self.frames.append(message)
            if message["type"] == "ack":
                self.acks += 1
                self.acked.set()
            if message["type"] == "snapshot":
                if message["more"] and self.on_page is not None:
                    self.on_page(message)
                elif not message["more"]:
                    self.done.set()
        return 0

    def close(self, code: int, reason: str) -> None:
        pass

    def abort(self) -> None:
        pass


def _sqlite(path: Path, on_commit: CommitCallback, on_failure: FailureCallback) -> SQLiteBackend:
    return SQLiteBackend(path, on_commit, on_failure)


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
async def test_pushes_between_pages_never_meet_an_older_page_value(
    tmp_path: Path, kind: str
) -> None:
    """Writes land while a full snapshot is read page by page: no page entry is newer
    than the snapshot's revision, every later write is pushed, and replaying the frames
    in arrival order (last one wins) gives exactly the registers the server holds."""
    loop = asyncio.get_running_loop()
    config = ServerConfig(rate_limit=1e6, rate_burst=1_000_000)
    if kind == "sqlite":
        db = tmp_path / "race.sqlite3"
        create_database(db)
        fill_registers(db, 3000, value=BIG_VALUE)
        core = ServerCore(partial(_sqlite, db), loop, config)
        await core.backend.open()
    else:
        core = ServerCore(MemoryBackend, loop, config)
        await core.backend.open()
        writer = core.connect(_Peer())
        core.receive(writer, json.dumps({"type": "hello", "device_id": 9}))
        for index in range(3000):
            set_ = {"type": "set", "request_id": index, "key": f"k/{index:07d}"}
            core.receive(writer, json.dumps({**set_, "value": "x" * 300, "local_revision": 1}))
        await committed(core, 3000)
        assert core.revision == 3000
    writer_peer = _Peer()
    writer = core.connect(writer_peer)
    core.receive(writer, json.dumps({"type": "hello", "device_id": 9}))
    written = 0

    def write_some(_page: dict[str, Any]) -> None:
        # Registers ahead of the reader (later pages), behind it and in between.
        nonlocal written
        for index in (2999 - written, 1500 + written, written):
            written += 1
            set_ = {"type": "set", "request_id": f"w{written}", "key": f"k/{index:07d}"}
            frame = json.dumps({**set_, "value": written, "local_revision": 2})
            loop.call_soon(core.receive, writer, frame)

    reader = _Peer(on_page=write_some)
    conn = core.connect(reader)
    core.receive(conn, json.dumps({"type": "hello", "device_id": 1}))
    await asyncio.wait_for(reader.done.wait(), TIMEOUT)
    assert written >= 6, "the snapshot should have taken several pages"

    async def every_write_acked() -> None:
        while writer_peer.acks < written:
            writer_peer.acked.clear()
            await writer_peer.acked.wait()

    await asyncio.wait_for(every_write_acked(), TIMEOUT)
    snapshot_revision = reader.frames[0]["revision"]
    seen: dict[str, int] = {}
    pushed: list[int] = []
    for message in reader.frames:
        if message["type"] == "snapshot":
            assert message["revision"] == snapshot_revision
            for entry in message["values"]:
                assert entry["server_revision"] <= snapshot_revision
                seen[entry["key"]] = entry["server_revision"]
        elif message["type"] == "push":
            pushed.append(message["server_revision"])
            seen[message["key"]] = message["server_revision"]
    assert pushed == list(range(snapshot_revision + 1, core.revision + 1))
    truth = {write.key: write.revision for write in _every_register(core)}
    assert seen == truth
    await core.backend.close()


def _every_register(core: ServerCore) -> list[Write]:
    backend = core.backend
    assert isinstance(backend, SQLiteBackend | MemoryBackend)
    return backend.changed_since(0)


class _SlowReader(_Peer):
    """A peer that reports ``unread`` bytes still queued until told to catch up."""

    def __init__(self) -> None:
        super().__init__()
        self.unread = 10 * MAX_PAGE_BYTES
        self.looks = 0
        self.looked = asyncio.Event()

    def send(self, frames: Sequence[bytes], shared: Shared | None = None) -> int:
        super().send(frames, shared)
        if not frames and shared is None:
            self.looks += 1
            self.looked.set()
        return self.unread


async def test_the_next_page_waits_until_the_reader_takes_the_last() -> None:
    """While a connection has more than half a page unread, no further page is read
    or queued for it; once it reads, the rest of the snapshot follows."""
    core = ServerCore(MemoryBackend, asyncio.get_running_loop())
    await core.backend.open()
    writer = core.connect(_Peer())
    core.receive(writer, json.dumps({"type": "hello", "device_id": 9}))
    for index in range(3000):
        set_ = {"type": "set", "request_id": index, "key": f"k/{index:07d}"}
        core.receive(writer, json.dumps({**set_, "value": "x" * 300, "local_revision": 1}))
    await committed(core, 3000)
    reader = _SlowReader()
    core.receive(core.connect(reader), json.dumps({"type": "hello", "device_id": 1}))

    async def looked_three_times() -> None:
        while reader.looks < 3:
            reader.looked.clear()
            await reader.looked.wait()

    await asyncio.wait_for(looked_three_times(), TIMEOUT)
    assert [f["more"] for f in reader.frames] == [True]
    reader.unread = 0
    await asyncio.wait_for(reader.done.wait(), TIMEOUT)
    entries = sum(len(f["values"]) for f in reader.frames if f["type"] == "snapshot")
    assert entries == 3000
    await core.backend.close()


class _UnreadableBackend(MemoryBackend):
    """A memory backend whose registers cannot be read (a failing disk, say)."""

    def read_changes(
        self,
        space: str,
        after: int,
        upto: int | None,
        budget: int,
        done: Callable[[ChangePage | None], None],
    ) -> None:
        done(None)


class _ClosablePeer(_Peer):
    def __init__(self) -> None:
        super().__init__()
        self.closed_with: int | None = None

    def close(self, code: int, reason: str) -> None:
        self.closed_with = code


async def test_a_snapshot_that_cannot_be_read_closes_the_connection_with_1013() -> None:
    """When the registers cannot be read the connection is closed with 1013 (try
    again later) instead of leaving the device waiting for pages forever; an
    up-to-date hello needs no read and is still answered."""
    core = ServerCore(_UnreadableBackend, asyncio.get_running_loop())
    await core.backend.open()
    writer = core.connect(_Peer())
    core.receive(writer, json.dumps({"type": "hello", "device_id": 9}))
    set_ = {"type": "set", "request_id": 1, "key": "k", "value": 1, "local_revision": 1}
    core.receive(writer, json.dumps(set_))
    await committed(core, 1)
    assert core.revision == 1
    peer = _ClosablePeer()
    core.receive(core.connect(peer), json.dumps({"type": "hello", "device_id": 1}))
    assert (peer.closed_with, peer.frames) == (1013, [])
    current = _ClosablePeer()
    epoch = core.backend.epoch
    hello = {"type": "hello", "device_id": 2, "since": 1, "epoch": epoch}
    core.receive(core.connect(current), json.dumps(hello))
    assert current.closed_with is None
    assert [(f["type"], f["values"]) for f in current.frames] == [("snapshot", [])]
    await core.backend.close()


class _ReadAheadBackend(MemoryBackend):
    """Reads see a write as soon as it is queued, before on_commit reports it, as
    SQLite's reads see a transaction as soon as it commits."""

    def get(self, space: str, key: str) -> Write | None:
        for offset, write in enumerate(self._queue):
            if write.key == key and write.space == space:
                return Write(key, write.value, self.revision + offset + 1, space=space)
        return super().get(space, key)


async def test_a_get_of_a_write_not_pushed_yet_is_answered_after_its_push() -> None:
    """A get that reads a write whose push has not gone out is answered right after
    that push, never ahead of it."""
    core = ServerCore(_ReadAheadBackend, asyncio.get_running_loop())
    await core.backend.open()
    peer = _Peer()
    conn = core.connect(peer)
    core.receive(conn, json.dumps({"type": "hello", "device_id": 1}))
    set_ = {"type": "set", "request_id": 1, "key": "k", "value": 7, "local_revision": 1}
    core.receive(conn, json.dumps(set_))
    core.receive(conn, json.dumps({"type": "get", "request_id": 2, "key": "k"}))
    assert [f["type"] for f in peer.frames] == ["snapshot"]
    await asyncio.wait_for(peer.acked.wait(), TIMEOUT)
    assert [f["type"] for f in peer.frames] == ["snapshot", "ack", "push", "value"]
    assert (peer.frames[-1]["value"], peer.frames[-1]["server_revision"]) == (7, 1)
    await core.backend.close()


# -- the in-memory index -------------------------------------------------------------


def test_the_revision_log_reads_only_what_came_after() -> None:
    """RevisionLog: after(R) skips superseded writes, newest() runs backwards, and a
    log mostly superseded is compacted without changing what it answers."""
    log = RevisionLog()
    for revision in range(1, 5001):
        log.put(Write(f"k{revision % 100}", b"1", revision))
    assert [w.revision for w in log.after(4990)] == list(range(4991, 5001))
    assert [w.revision for w in log.after(4990, 4995)] == list(range(4991, 4996))
    assert [w.revision for w in log.newest()] == list(range(5000, 4900, -1))
    assert len(log._log) < 2500  # compacted: the superseded writes are gone
    page = log.page(0, None, budget=300, read_at=5000)
    assert not page.complete
    assert page.last == 4900 + len(page.entries)


def test_a_memory_entry_is_encoded_as_the_protocol_encodes_it() -> None:
    """encode_entry builds the same JSON as encoding a SnapshotEntry (keys escaped)."""
    write = Write('odd "key" \u00e9\n', b'{"a":[1,2]}', 7, 3, -2)
    entry = snapshot_entry(write)
    plain = SnapshotEntry(
        entry.key, entry.value, entry.server_revision, entry.local_revision, entry.device_id
    )
    assert encode_entry(write) == encode_bytes(plain)
    assert msgspec.json.decode(encode_entry(write))["key"] == write.key
