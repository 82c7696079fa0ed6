"""Shutdown: what was committed is acked and pushed, the rest is unavailable, then 1001."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from syncserver import start_server
from tests.timeouts import TIMEOUT

from .conftest import Client, Clients, ServerProcess


async def replies_until_closed(client: Client) -> tuple[list[dict[str, Any]], int | None]:
    """Every message up to the close, and the close code."""
    messages = list(client.skipped)
    client.skipped.clear()

    async def read_to_the_end() -> None:
        while True:
            messages.append(await client.recv())

    with pytest.raises(ConnectionClosed) as closed:
        await read_to_the_end()
    code = closed.value.rcvd.code if closed.value.rcvd is not None else None
    return messages, code


def answers(messages: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    """Acks and errors by request_id; a request answered twice fails the test."""
    found: dict[Any, dict[str, Any]] = {}
    for message in messages:
        if message["type"] in ("ack", "error"):
            assert message["request_id"] not in found, message
            found[message["request_id"]] = message
    return found


def stored(db_path: Path) -> dict[str, int]:
    with sqlite3.connect(db_path) as db:
        return dict(db.execute("SELECT key, revision FROM registers").fetchall())


async def test_close_acks_committed_writes_and_refuses_delayed_ones(
    db_path: Path, clients: Clients
):
    """close(): pipelined sets are acked and pushed, write_delay sets get unavailable, 1001."""
    server = await start_server(db_path=db_path, allow_chaos=True)
    client = await clients(server.url)
    watcher = await clients(server.url)
    await watcher.hello(device_id=2)
    await client.hello(device_id=1)
    for index in range(20):
        await client.set_nowait(f"now/{index}", index, request_id=f"now/{index}")
    await client.send({"type": "chaos", "request_id": "c", "write_delay": 30})
    for index in range(5):
        await client.set_nowait(f"late/{index}", index, request_id=f"late/{index}")
    await client.get("barrier")  # every frame before it has been read by the server
    await server.close()
    messages, code = await replies_until_closed(client)
    assert code == 1001
    found = answers(messages)
    assert {found[f"now/{i}"]["type"] for i in range(20)} == {"ack"}
    assert {found[f"late/{i}"]["code"] for i in range(5)} == {"unavailable"}
    pushed, watcher_code = await replies_until_closed(watcher)
    assert watcher_code == 1001
    assert [p["key"] for p in pushed if p["type"] == "push"] == [f"now/{i}" for i in range(20)]
    assert set(stored(db_path)) == {f"now/{i}" for i in range(20)}


async def test_sigterm_answers_every_pipelined_set_and_keeps_every_ack(
    server_process: ServerProcess, db_path: Path, clients: Clients
):
    """SIGTERM under pipelined sets: each gets an ack or unavailable; every ack is stored."""
    server_process.args = ("--allow-chaos",)
    url = await server_process.start()
    client = await clients(url)
    await client.hello(device_id=1)
    floods = [await clients(url) for _ in range(4)]
    for number, flood in enumerate(floods):
        await flood.hello(device_id=10 + number)
    for index in range(200):
        await client.set_nowait(f"now/{index}", index, request_id=f"now/{index}")
    await client.send({"type": "chaos", "request_id": "c", "write_delay": 30})
    for index in range(20):
        await client.set_nowait(f"late/{index}", index, request_id=f"late/{index}")
    await client.get("barrier")
    # More sets in flight from other devices while the signal arrives.
    for number, flood in enumerate(floods):
        for index in range(100):
            await flood.set_nowait(f"flood/{number}/{index}", index, request_id=index)
    assert await server_process.stop(signal.SIGTERM) == 0

    messages, code = await asyncio.wait_for(replies_until_closed(client), TIMEOUT)
    assert code == 1001
    found = answers(messages)
    requests = [f"now/{i}" for i in range(200)] + [f"late/{i}" for i in range(20)]
    assert sorted(found) == sorted(requests), "a set got no answer"
    assert {found[f"late/{i}"]["code"] for i in range(20)} == {"unavailable"}
    acked = {m["key"]: m["server_revision"] for m in found.values() if m["type"] == "ack"}
    for flood in floods:
        flood_messages, _ = await asyncio.wait_for(replies_until_closed(flood), TIMEOUT)
        for reply in answers(flood_messages).values():
            if reply["type"] == "ack":
                acked[reply["key"]] = reply["server_revision"]
            else:
                assert reply["code"] == "unavailable", reply
    assert len(acked) >= 200
    database = stored(db_path)
    missing = {key: rev for key, rev in acked.items() if database.get(key) != rev}
    assert missing == {}, f"{len(missing)} of {len(acked)} acknowledged writes not stored"
