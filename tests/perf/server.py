"""Benchmark of the sync server against bare websockets servers, in one run.

    python -m tests.perf.server [--quick]

Every server runs in its own subprocess, pinned to one core (all its threads),
while the load runs pinned to another, for the bare ceilings and for optisync
alike: left to the scheduler, the load generator and the server's commit
thread share cores unevenly and the figures measure that. The load is
:class:`tests.perf._bare.RawClient`, which only splits frames and counts, so
the servers are what gets measured. Figures:

* set→ack round trips/s, 1 and 50 writers each waiting for its ack before the
  next set, against a bare echo server. Every write is also pushed to every
  writer, as the protocol says; the 50-writer figure is given with per-write
  push frames and with batched pushes (``hello.batch_pushes``), and with the
  default ``synchronous=FULL`` (fsync per commit) beside ``NORMAL``.
* push deliveries/s with 10, 100 and 1000 connected clients, against a bare
  ``broadcast()`` server relaying frames of the same size; also with batched
  pushes (one frame per event-loop tick carrying every push of that tick).
* server memory per idle connection (RSS growth over 1000 connections), next
  to the bare server's.

``run(quick)`` returns the rows for ``python -m tests.perf`` to aggregate.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.perf._bare import RawClient, connect_raw
from tests.perf.report import Row, print_table

__all__ = ["main", "run"]

ROOT = Path(__file__).resolve().parents[2]
WINDOW = 16
"""Sets (or frames) each fan-out writer keeps in flight."""


# -- servers in subprocesses ------------------------------------------------

CORES = sorted(os.sched_getaffinity(0))
SERVER_CORE, LOAD_CORE = (CORES[0], CORES[-1]) if len(CORES) > 1 else (None, None)
"""Where the server and the load run; None on a single core (no pinning)."""


def _pin(core: int | None) -> Callable[[], None] | None:
    if core is None:
        return None
    return lambda: os.sched_setaffinity(0, {core})


@contextlib.contextmanager
def pinned_load() -> Iterator[None]:
    """Run this process (the load generator) on its own core for the block."""
    before = os.sched_getaffinity(0)
    if LOAD_CORE is not None:
        os.sched_setaffinity(0, {LOAD_CORE})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@dataclass
class Server:
    proc: asyncio.subprocess.Process
    url: str

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1])


@contextlib.asynccontextmanager
async def subprocess_server(*args: str, pin: bool = True) -> AsyncIterator[Server]:
    """``python ARGS`` until the block ends; ``pin`` keeps it on the server core."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=env,
        preexec_fn=_pin(SERVER_CORE) if pin else None,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        url = line[line.index("ws://") :].split()[0]
        yield Server(proc, url)
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)


@contextlib.asynccontextmanager
async def sync_server(synchronous: str = "FULL", pin: bool = True) -> AsyncIterator[Server]:
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.sqlite3")
        args = ["-m", "syncserver", "--port", "0", "--db", db, "--synchronous", synchronous]
        async with subprocess_server(*args, pin=pin) as server:
            yield server


def bare_server(kind: str, pin: bool = True) -> contextlib.AbstractAsyncContextManager[Server]:
    return subprocess_server("-m", "tests.perf._bare", kind, pin=pin)


# -- load -------------------------------------------------------------------


def set_frame(device: int, seq: int) -> bytes:
    return (
        b'{"type":"set","request_id":%d,"key":"like/item-%04d","value":true,'
        b'"local_revision":%d,"device_id":%d}' % (seq, seq % 1000, seq, device)
    )


def push_like_frame(device: int, seq: int) -> bytes:
    """What a bare broadcast relays: a frame the size and shape of a push."""
    return (
        b'{"type":"push","key":"like/item-%04d","value":true,"server_revision":%d,'
        b'"local_revision":%d,"device_id":%d}' % (seq % 1000, 100000 + seq, seq, device)
    )


@dataclass
class Peer:
    """One benchmark connection: counts pushes, and if it writes, keeps a window going."""

    device: int
    sync: bool
    pushes_expected: int = 0
    writes_left: int = 0
    pushes: int = 0
    errors: int = 0
    client: RawClient | None = None
    snapshot: asyncio.Future[None] = field(default_factory=lambda: _future())
    done: asyncio.Future[None] = field(default_factory=lambda: _future())
    on_reply: Callable[[], None] | None = None
    seq: int = 0

    def on_payload(self, payload: bytes) -> None:
        if self.sync:
            if payload.startswith(b'{"type":"ack"'):
                self._reply()
                return
            if payload.startswith(b'{"type":"snapshot"'):
                if not self.snapshot.done():
                    self.snapshot.set_result(None)
                return
            if payload.startswith(b'{"type":"error"'):
                self.errors += 1
                self._reply()
                return
        count = payload.count(b'"type":"push"')
        if count:
            self.pushes += count
            if not self.sync and b'"device_id":%d}' % self.device in payload:
                self._reply()  # the bare server relays our own frame back to us
            if self.pushes >= self.pushes_expected and not self.done.done():
                self.done.set_result(None)

    def _reply(self) -> None:
        if self.on_reply is not None:
            self.on_reply()

    def send_next(self) -> None:
        assert self.client is not None
        self.seq += 1
        if self.sync:
            self.client.send_text(set_frame(self.device, self.seq))
        else:
            self.client.send_text(push_like_frame(self.device, self.seq))


def _future() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()


async def connect_peers(
    url: str | Sequence[str], count: int, sync: bool, batched: bool = False
) -> list[Peer]:
    """``count`` connections; with several URLs (server processes), spread round-robin."""
    urls = [url] if isinstance(url, str) else list(url)
    peers = [Peer(device=n + 1, sync=sync) for n in range(count)]

    async def open_one(peer: Peer) -> None:
        peer.client = await connect_raw(urls[(peer.device - 1) % len(urls)], peer.on_payload)
        if sync:
            hello = b'{"type":"hello","device_id":%d,"since":0%s}' % (
                peer.device,
                b',"batch_pushes":true' if batched else b"",
            )
            peer.client.send_text(hello)
            await asyncio.wait_for(peer.snapshot, 30)

    for start in range(0, count, 100):
        await asyncio.gather(*(open_one(p) for p in peers[start : start + 100]))
    return peers


def close_peers(peers: list[Peer]) -> None:
    for peer in peers:
        if peer.client is not None:
            peer.client.close()


async def round_trips(
    url: str | Sequence[str], writers: int, seconds: float, sync: bool, batched: bool
) -> float:
    """Set→ack (or echo) round trips per second, each writer one request at a time."""
    peers = await connect_peers(url, writers, sync, batched)
    completed = 0
    running = True
    loop = asyncio.get_running_loop()
    finished = loop.create_future()
    outstanding = writers

    def make_reply(peer: Peer) -> Callable[[], None]:
        def reply() -> None:
            nonlocal completed, outstanding
            completed += 1
            if running:
                peer.send_next()
                return
            outstanding -= 1
            if outstanding == 0 and not finished.done():
                finished.set_result(None)

        return reply

    for peer in peers:
        peer.on_reply = make_reply(peer)
    start = time.perf_counter()
    for peer in peers:
        peer.send_next()
    await asyncio.sleep(seconds)  # a measurement window, not a wait for a condition
    running = False
    await asyncio.wait_for(finished, 30)
    elapsed = time.perf_counter() - start
    errors = sum(p.errors for p in peers)
    close_peers(peers)
    if errors:
        raise RuntimeError(f"{errors} error replies during the round-trip benchmark")
    return completed / elapsed


async def fan_out(
    url: str | Sequence[str], clients: int, total: int, sync: bool, batched: bool
) -> float:
    """Push deliveries per second to ``clients`` connections; some of them also write."""
    peers = await connect_peers(url, clients, sync, batched)
    writers = peers[: min(8, clients)]
    per_writer = max(10, total // (clients * len(writers)))
    expected = per_writer * len(writers)
    for peer in peers:
        peer.pushes_expected = expected
    for peer in writers:
        peer.writes_left = per_writer

        def reply(peer: Peer = peer) -> None:
            if peer.writes_left > 0:
                peer.writes_left -= 1
                peer.send_next()

        peer.on_reply = reply
    start = time.perf_counter()
    for peer in writers:
        for _ in range(min(WINDOW, per_writer)):
            peer.writes_left -= 1
            peer.send_next()
    await asyncio.wait_for(asyncio.gather(*(p.done for p in peers)), 300)
    elapsed = time.perf_counter() - start
    errors = sum(p.errors for p in peers)
    close_peers(peers)
    if errors:
        raise RuntimeError(f"{errors} error replies during the fan-out benchmark")
    return clients * expected / elapsed


async def memory_per_connection(server: Server, count: int, sync: bool) -> float:
    """RSS growth of the server per idle connection, in KiB."""
    warm = await connect_peers(server.url, 20, sync)
    before = server.rss_kib()
    peers = await connect_peers(server.url, count, sync)
    after = server.rss_kib()
    close_peers(peers)
    close_peers(warm)
    return (after - before) / count


# -- the run ----------------------------------------------------------------


async def _run(quick: bool) -> list[Row]:
    seconds = 0.5 if quick else 2.0
    deliveries = 60_000 if quick else 300_000
    rows: list[Row] = []

    for writers in (1, 50):
        async with bare_server("echo") as bare:
            ceiling = await round_trips(bare.url, writers, seconds, sync=False, batched=False)
        variants = [("FULL", False), ("NORMAL", False)]
        if writers > 1:
            variants = [("FULL", False), ("FULL", True), ("NORMAL", True)]
        for synchronous, batched in variants:
            async with sync_server(synchronous) as server:
                value = await round_trips(server.url, writers, seconds, sync=True, batched=batched)
            name = f"set→ack, {writers} writer{'s' if writers > 1 else ''}"
            if writers > 1:
                name += ", batched pushes" if batched else ", push per write"
            name += f", synchronous={synchronous}"
            target = 0.5 if writers == 50 else None
            rows.append(Row(name, value, "round trips/s", ceiling, target))
            if writers > 1 and not batched:
                # The same traffic without durability: echo to the writer plus a
                # broadcast of every write to all 50, as a push per write costs.
                async with bare_server("broadcast") as bare:
                    relay = await round_trips(bare.url, writers, seconds, sync=False, batched=False)
                rows.append(
                    Row(
                        name + " (ceiling: bare echo + broadcast)",
                        value,
                        "round trips/s",
                        relay,
                        None,
                    )
                )

    for clients in (10, 100, 1000):
        async with bare_server("broadcast") as bare:
            ceiling = await fan_out(bare.url, clients, deliveries, sync=False, batched=False)
        for batched in (False, True):
            async with sync_server() as server:
                value = await fan_out(
                    server.url, clients, deliveries * (3 if batched else 1), True, batched
                )
            name = f"push fan-out, {clients} clients" + (", batched" if batched else "")
            rows.append(Row(name, value, "deliveries/s", ceiling, None if batched else 0.7))

    count = 300 if quick else 1000
    async with bare_server("echo") as bare:
        ceiling = await memory_per_connection(bare, count, sync=False)
    async with sync_server() as server:
        value = await memory_per_connection(server, count, sync=True)
    rows.append(
        Row("memory per idle connection (bare websockets)", value, "KiB", ceiling, None, True)
    )
    rows.append(Row("memory per idle connection (20 KiB budget)", value, "KiB", 20.0, 1.0, True))
    return rows


def run(quick: bool = False) -> list[Row]:
    """Run the benchmark; every row carries its bare-websockets ceiling."""
    with pinned_load():
        return asyncio.run(_run(quick))


def main() -> None:
    print_table("optisync server vs bare websockets", run(quick="--quick" in sys.argv[1:]))


if __name__ == "__main__":
    main()
