"""No frame the server sends passes MAX_PAGE_BYTES: snapshots and batches are split."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from syncserver import serve
from syncserver.backends import Write
from syncserver.backends.sqlite import SQLiteBackend
from syncserver.frames import batch_frames
from syncserver.protocol import MAX_PAGE_BYTES
from tests.timeouts import TIMEOUT

from .conftest import Client, Clients

KEYS = 12_000
BIG = "x" * (60 * 1024)


async def fill(db_path: Path, count: int) -> None:
    """Write ``count`` like/* keys into the database with the real backend."""
    done = asyncio.Event()
    committed = 0

    def on_commit(writes: Any) -> None:
        nonlocal committed
        committed += len(writes)
        if committed == count:
            done.set()

    backend = SQLiteBackend(db_path, on_commit, lambda writes, exc: None, synchronous="NORMAL")
    await backend.open()
    for index in range(count):
        backend.submit(Write(f"like/item-{index:05d}", b"true", 0, index + 1, 1))
    await asyncio.wait_for(done.wait(), TIMEOUT)
    await backend.close()


async def raw_frame(client: Client) -> tuple[int, dict[str, Any]]:
    """The next frame's size in bytes and its message."""
    frame = await asyncio.wait_for(client.ws.recv(), TIMEOUT)
    data = frame.encode() if isinstance(frame, str) else frame
    return len(data), json.loads(data)


async def test_a_snapshot_of_12000_keys_comes_in_pages_that_fit(db_path: Path, clients: Clients):
    """12,000 keys: several snapshot pages, each ≤ 512 KiB, every key exactly once."""
    await fill(db_path, KEYS)
    async with serve(db_path=db_path, allow_chaos=True, observe_interval=0.01) as server:
        client = await clients(server.url)
        await client.send({"type": "hello", "device_id": 1})
        pages: list[dict[str, Any]] = []
        while not pages or pages[-1]["more"]:
            size, page = await raw_frame(client)
            assert size <= MAX_PAGE_BYTES
            pages.append(page)
        assert len(pages) >= 2
        assert {(p["revision"], p["epoch"], p["since"]) for p in pages} == {(KEYS, server.epoch, 0)}
        assert [p["more"] for p in pages] == [True] * (len(pages) - 1) + [False]
        keys = [v["key"] for page in pages for v in page["values"]]
        assert sorted(keys) == [f"like/item-{index:05d}" for index in range(KEYS)]

        await client.send({"type": "observe"})
        size, state = await raw_frame(client)
        assert state["type"] == "server_state"
        assert size <= MAX_PAGE_BYTES
        assert state["values_total"] == KEYS
        assert 0 < len(state["values"]) < KEYS
        assert state["values"][-1]["key"] == f"like/item-{KEYS - 1:05d}"  # the newest is kept


async def test_pipelined_big_sets_reach_a_batched_device_in_frames_that_fit(
    db_path: Path, clients: Clients
):
    """40 pipelined 60 KiB sets: every pushes frame ≤ 512 KiB, all 40 pushes in order."""
    async with serve(db_path=db_path, backend="memory") as server:
        watcher = await clients(server.url)
        await watcher.hello(device_id=2, batch_pushes=True)
        writer = await clients(server.url)
        await writer.hello(device_id=1)
        for index in range(40):
            await writer.send(
                {
                    "type": "set",
                    "request_id": index,
                    "key": f"big/{index % 3}",
                    "value": BIG,
                    "local_revision": index + 1,
                }
            )
        seen: list[int] = []
        while len(seen) < 40:
            size, frame = await raw_frame(watcher)
            assert size <= MAX_PAGE_BYTES
            assert frame["type"] == "pushes"
            seen += [push["server_revision"] for push in frame["pushes"]]
        assert seen == list(range(1, 41))
        assert server.revision == 40


def test_a_commit_of_40_big_pushes_is_split_in_revision_order() -> None:
    """One commit of 40 × 60 KiB pushes becomes several frames ≤ 512 KiB, in order."""
    pushes = [
        json.dumps({"type": "push", "key": "k", "value": BIG, "server_revision": n}).encode()
        for n in range(1, 41)
    ]
    frames = batch_frames(pushes)
    assert len(frames) >= 5
    assert all(len(frame) <= MAX_PAGE_BYTES for frame in frames)
    revisions = [p["server_revision"] for f in frames for p in json.loads(f)["pushes"]]
    assert revisions == list(range(1, 41))
