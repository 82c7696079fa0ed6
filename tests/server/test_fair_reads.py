"""Snapshot page reads never hold up commits, take turns, and never hold up shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from syncserver import serve
from syncserver.reads import ReadQueue
from tests.perf.registers import create_database, fill_registers
from tests.server.conftest import ServerProcess
from tests.timeouts import TIMEOUT

BIG_VALUE = json.dumps("x" * 300)
"""A value big enough that a few thousand registers need several pages."""


async def _reply(ws: ClientConnection, kind: str) -> dict[str, object]:
    """The next frame of type ``kind`` (snapshot pages on the way are skipped)."""
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if message["type"] == kind:
            return dict(message)


async def test_a_set_is_acked_while_many_catch_ups_wait_for_their_first_page(
    tmp_path: Path,
) -> None:
    """40 connections start a multi-page snapshot each; a set sent after every hello
    is in gets its ack while some of them still wait for their first page read."""
    db = tmp_path / "big.sqlite3"
    create_database(db)
    newest = fill_registers(db, 4000, value=BIG_VALUE)
    async with serve(db_path=db) as server:
        writer = await connect(server.url)
        await writer.send(json.dumps({"type": "hello", "device_id": 999, "since": newest}))
        await _reply(writer, "snapshot")
        readers = [await connect(server.url, max_size=None) for _ in range(40)]
        for number, reader in enumerate(readers, start=1):
            await reader.send(json.dumps({"type": "hello", "device_id": number}))
            await reader.send(json.dumps({"type": "get", "request_id": 1, "key": "k"}))
        # A get is answered on the loop at once: once each is back, every hello is in.
        await asyncio.gather(*(_reply(reader, "value") for reader in readers))
        await writer.send(
            json.dumps(
                {"type": "set", "request_id": 1, "key": "k", "value": 1, "local_revision": 1}
            )
        )
        ack = await _reply(writer, "ack")
        waiting = [
            conn
            for conn in server.core.connections.values()
            if any(run.page is None for run in conn.catch_ups.values())
        ]
        assert ack["request_id"] == 1
        assert waiting, "every catch-up's first page was read before the commit"
        for ws in (writer, *readers):
            await ws.close()


async def test_sigterm_during_heavy_catch_up_exits_promptly(tmp_path: Path) -> None:
    """Twenty connections pipeline 500 hello since 0 each on a big database: SIGTERM
    still ends the process (exit 0) within the timeout, the waiting page reads dropped."""
    db = tmp_path / "big.sqlite3"
    create_database(db)
    fill_registers(db, 8000, value=BIG_VALUE)
    process = ServerProcess(db)
    url = await process.start()
    try:
        abusers = [await connect(url, max_size=None) for _ in range(20)]
        for number, ws in enumerate(abusers, start=1):
            for _ in range(500):
                await ws.send(json.dumps({"type": "hello", "device_id": number, "since": 0}))
            await ws.send(json.dumps({"type": "get", "request_id": 1, "key": "k"}))
        # Once every get is answered, all 10,000 hellos are in.
        await asyncio.gather(*(_reply(ws, "value") for ws in abusers))
        assert await process.stop(signal.SIGTERM) == 0
    finally:
        await process.stop(signal.SIGKILL)


class _Reads:
    """Reads that note their start and wait to be finished."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finishers: list[Callable[[], None]] = []

    def read(self, name: str) -> Callable[[Callable[[], None]], None]:
        def start(finish: Callable[[], None]) -> None:
            self.started.append(name)
            self.finishers.append(finish)

        return start


def test_reads_run_one_at_a_time_round_robin_between_owners() -> None:
    """Owner a queues three reads, b one, c one: one runs at a time, and b and c
    each come before a's second and third."""
    made = _Reads()
    reads = ReadQueue()
    for name in ("a1", "a2", "a3"):
        reads.add("a", name, made.read(name))
    reads.add("b", "b1", made.read("b1"))
    reads.add("c", "c1", made.read("c1"))
    assert made.started == ["a1"]
    while len(made.started) < 5:
        made.finishers[-1]()
    assert made.started == ["a1", "b1", "c1", "a2", "a3"]
    assert len(reads) == 0


def test_a_closed_read_queue_drops_what_waits_and_takes_no_more() -> None:
    """After close, the waiting reads never start, and neither does a new one."""
    made = _Reads()
    reads = ReadQueue()
    reads.add("a", "a1", made.read("a1"))
    reads.add("b", "b1", made.read("b1"))
    reads.close()
    reads.add("c", "c1", made.read("c1"))
    made.finishers[0]()
    assert made.started == ["a1"]
    assert len(reads) == 0


def test_a_read_that_finishes_at_once_starts_the_next_without_recursion() -> None:
    """A backend answering inside start (memory) runs 5,000 queued reads in a loop."""
    reads = ReadQueue()
    done: list[int] = []
    gate: list[Callable[[], None]] = []
    reads.add("first", "first", gate.append)

    def read(number: int) -> Callable[[Callable[[], None]], None]:
        def start(finish: Callable[[], None]) -> None:
            done.append(number)
            finish()

        return start

    for number in range(5000):
        reads.add(number, number, read(number))
    gate[0]()
    assert done == list(range(5000))


def test_a_newer_read_of_the_same_reader_replaces_its_waiting_one() -> None:
    """Reader a1 queues three reads while b1's runs: only the newest of a1's runs,
    in the place of the first, so a connection never has more than one waiting."""
    made = _Reads()
    reads = ReadQueue()
    reads.add("b", "b1", made.read("b-first"))
    for name in ("a-old", "a-older", "a-newest"):
        reads.add("a", "a1", made.read(name))
    reads.add("c", "c1", made.read("c-first"))
    assert len(reads) == 2
    while len(made.started) < 3:
        made.finishers[-1]()
    assert made.started == ["b-first", "a-newest", "c-first"]
