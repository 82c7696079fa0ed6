"""The load generator of the server benchmarks, spread over worker processes.

:class:`Load` starts ``processes`` workers (``python -m tests.perf._load``),
each pinned to the cores it is given, and drives them with one JSON line per
command on their stdin; each answers with one JSON line. Connections are dealt
round-robin to the workers (and, with several server URLs, round-robin to the
servers), so reading the pushes of 1,000 clients is shared between processes.

A worker's connection (:class:`CountingClient`) does not split frames: after
the handshake it counts ``"type":"ack"``, ``"type":"push"`` and
``"type":"error"`` in the bytes as they arrive (``bytes.count``, in C, with the
few bytes of one read carried over so a marker split between two reads still
counts once). Server frames are unmasked, so their JSON is in the stream as
is; counting costs nanoseconds per push, so one worker can read far more
pushes than a server sends. Every operation reports its wall-clock span and
the workers' CPU time over it (``getrusage``), so a benchmark can say when
the load generator, not the server, was the limit. Connections live for one
measurement (seconds), well inside the servers' 20 s ping interval, so the
workers never answer pings.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CountingClient", "Load", "LoadResult", "main", "set_frame"]

ROOT = Path(__file__).resolve().parents[2]
MARKERS = (b'"type":"ack"', b'"type":"push"', b'"type":"error"', b'"type":"snapshot"')
CARRY = max(len(marker) for marker in MARKERS) - 1


def set_frame(device: int, seq: int) -> bytes:
    """A ``set`` of a like, as a device sends it."""
    return (
        b'{"type":"set","request_id":%d,"key":"like/item-%04d","value":true,'
        b'"local_revision":%d,"device_id":%d}' % (seq, seq % 1000, seq, device)
    )


def _masked_text(data: bytes) -> bytes:
    """A client text frame masked with a zero key: the payload goes out unchanged."""
    length = len(data)
    if length < 126:
        header = bytes((0x81, 0x80 | length))
    elif length < 65536:
        header = b"\x81\xfe" + length.to_bytes(2, "big")
    else:
        header = b"\x81\xff" + length.to_bytes(8, "big")
    return header + b"\0\0\0\0" + data


class CountingClient(asyncio.Protocol):
    """A websocket connection that counts acks, pushes, errors and snapshots."""

    def __init__(self, host: str, device: int) -> None:
        self.device = device
        self._host = host
        self._handshaken = False
        self._head = b""
        self._carry = b""
        self.acks = self.pushes = self.errors = self.snapshots = 0
        self.on_acks: Callable[[CountingClient, int], None] | None = None
        self.on_pushes: Callable[[CountingClient], None] | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.snapshot = asyncio.Event()
        self.transport: asyncio.Transport | None = None
        self.seq = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET / HTTP/1.1\r\nHost: {self._host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("connection lost during handshake"))

    def data_received(self, data: bytes) -> None:
        if not self._handshaken:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self._head.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(ConnectionError(self._head[:end].decode()))
                return
            data = self._head[end + 4 :]
            self._handshaken = True
            self.opened.set_result(None)
        # Markers wholly inside this read, plus those split across the last one and this.
        edge = self._carry + data[:CARRY]
        acks = data.count(MARKERS[0]) + edge.count(MARKERS[0])
        pushes = data.count(MARKERS[1]) + edge.count(MARKERS[1])
        errors = data.count(MARKERS[2]) + edge.count(MARKERS[2])
        snapshots = data.count(MARKERS[3]) + edge.count(MARKERS[3])
        self._carry = (self._carry + data)[-CARRY:] if len(data) < CARRY else data[-CARRY:]
        self.errors += errors
        if snapshots:
            self.snapshots += snapshots
            self.snapshot.set()
        if acks:
            self.acks += acks
            if self.on_acks is not None:
                self.on_acks(self, acks)
        if pushes:
            self.pushes += pushes
            if self.on_pushes is not None:
                self.on_pushes(self)

    def send_set(self) -> None:
        assert self.transport is not None
        self.seq += 1
        self.transport.write(_masked_text(set_frame(self.device, self.seq)))

    def send_text(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(_masked_text(data))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


# -- the worker ---------------------------------------------------------------


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Worker:
    def __init__(self) -> None:
        self.clients: list[CountingClient] = []

    async def connect(self, urls: list[str], devices: list[int], batched: bool) -> dict[str, Any]:
        loop = asyncio.get_running_loop()

        async def open_one(index: int, device: int) -> CountingClient:
            host, port = urls[index % len(urls)].removeprefix("ws://").rsplit(":", 1)
            _, client = await loop.create_connection(
                lambda: CountingClient(f"{host}:{port}", device), host, int(port)
            )
            await client.opened
            flag = b',"batch_pushes":true' if batched else b""
            client.send_text(b'{"type":"hello","device_id":%d,"since":0%s}' % (device, flag))
            return client

        opened = []
        for start in range(0, len(devices), 100):
            batch = list(enumerate(devices))[start : start + 100]
            opened.extend(await asyncio.gather(*(open_one(i, d) for i, d in batch)))
        self.clients.extend(opened)
        async with asyncio.timeout(60):
            await asyncio.gather(*(client.snapshot.wait() for client in opened))
        return {"connected": len(opened)}

    async def fan_out(
        self, writers: list[int], per_writer: int, expected: int, window: int
    ) -> dict[str, Any]:
        """Writers keep ``window`` sets in flight until every client has ``expected`` pushes."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        waiting = 0
        left = dict.fromkeys(writers, per_writer)

        def on_pushes(client: CountingClient) -> None:
            nonlocal waiting
            if client.pushes >= expected and client.on_pushes is not None:
                client.on_pushes = None
                waiting -= 1
                if waiting == 0 and not done.done():
                    done.set_result(None)

        def on_acks(client: CountingClient, count: int) -> None:
            for _ in range(min(count, left[client.device])):
                left[client.device] -= 1
                client.send_set()

        cpu, start = _cpu(), time.perf_counter()
        for client in self.clients:
            client.pushes = client.acks = client.errors = 0
            client.on_pushes = on_pushes
            if client.device in left:
                client.on_acks = on_acks
                for _ in range(min(window, per_writer)):
                    left[client.device] -= 1
                    client.send_set()
        waiting = len(self.clients)
        if waiting:
            await asyncio.wait_for(done, 300)
        end = time.perf_counter()
        return self._result(start, end, cpu, sum(per_writer - n for n in left.values()))

    async def round_trips(self, writers: list[int], seconds: float) -> dict[str, Any]:
        """Each writer one set at a time for ``seconds``; counts acks."""
        loop = asyncio.get_running_loop()
        finished = loop.create_future()
        running = True
        outstanding = 0
        completed = 0

        def on_acks(client: CountingClient, count: int) -> None:
            nonlocal outstanding, completed
            completed += count
            if running:
                client.send_set()
                return
            outstanding -= count
            if outstanding <= 0 and not finished.done():
                finished.set_result(None)

        mine = [client for client in self.clients if client.device in set(writers)]
        cpu, start = _cpu(), time.perf_counter()
        for client in self.clients:
            client.pushes = client.acks = client.errors = 0
            client.on_pushes = None
            client.on_acks = None
        for client in mine:
            client.on_acks = on_acks
            client.send_set()
        await asyncio.sleep(seconds)  # the measurement window, not a wait for a condition
        running = False
        outstanding = len(mine)
        if mine:
            await asyncio.wait_for(finished, 30)
        end = time.perf_counter()
        return {**self._result(start, end, cpu, completed), "ops": completed}

    def _result(self, start: float, end: float, cpu: float, ops: int) -> dict[str, Any]:
        return {
            "start": start,
            "end": end,
            "cpu": _cpu() - cpu,
            "ops": ops,
            "errors": sum(client.errors for client in self.clients),
        }

    def close(self) -> dict[str, Any]:
        for client in self.clients:
            client.close()
        self.clients.clear()
        return {"closed": True}


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    worker = _Worker()
    while line := await reader.readline():
        command = json.loads(line)
        op = command.pop("op")
        try:
            if op == "connect":
                reply = await worker.connect(**command)
            elif op == "fan_out":
                reply = await worker.fan_out(**command)
            elif op == "round_trips":
                reply = await worker.round_trips(**command)
            elif op == "close":
                reply = worker.close()
            else:
                reply = {"error": f"unknown op {op!r}"}
        except Exception as exc:  # reported to the driver, which raises it
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    worker.close()


def main() -> None:
    """Entry point of a worker process (driven by :class:`Load` on stdin)."""
    asyncio.run(_serve())


# -- the driver ---------------------------------------------------------------


@dataclass(frozen=True)
class LoadResult:
    """What one operation did: operations counted, wall time, the workers' CPU."""

    ops: int
    seconds: float
    load_cpu: float
    """CPU seconds of every worker together over the operation."""
    load_cores: int
    """Cores the workers may use."""

    @property
    def load_busy(self) -> float:
        """The workers' CPU use as a share of the cores they may use."""
        return self.load_cpu / (self.seconds * self.load_cores) if self.seconds else 0.0


class Load:
    """Worker processes that open connections and run operations over them."""

    def __init__(self, cores: Sequence[int] | None, processes: int) -> None:
        """``cores``: where the workers run (None: anywhere)."""
        self._pinned = cores is not None
        self._cores = list(cores) if cores else sorted(os.sched_getaffinity(0))
        self._count = processes
        self._procs: list[asyncio.subprocess.Process] = []
        self._devices: list[list[int]] = []

    async def __aenter__(self) -> Load:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cores = set(self._cores)
        for _ in range(self._count):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.perf._load",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT, env=env,
                preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if self._pinned else None,
            )  # fmt: skip
            self._procs.append(proc)
            self._devices.append([])
        return self

    async def __aexit__(self, *exc: object) -> None:
        for proc in self._procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in self._procs:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()

    @property
    def cores(self) -> int:
        """Cores the workers run on."""
        return min(len(self._cores), self._count)

    async def _all(self, commands: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
        """Send each worker its command (None: skip it) and gather the replies."""

        async def one(proc: asyncio.subprocess.Process, command: dict[str, Any]) -> dict[str, Any]:
            assert proc.stdin is not None
            assert proc.stdout is not None
            proc.stdin.write(json.dumps(command).encode() + b"\n")
            await proc.stdin.drain()
            line = await asyncio.wait_for(proc.stdout.readline(), 400)
            if not line:
                raise RuntimeError("a load worker exited")
            reply: dict[str, Any] = json.loads(line)
            if "error" in reply:
                raise RuntimeError(f"load worker: {reply['error']}")
            return reply

        pairs = [(p, c) for p, c in zip(self._procs, commands, strict=True) if c is not None]
        return await asyncio.gather(*(one(p, c) for p, c in pairs))

    async def connect(
        self, urls: str | Sequence[str], count: int, batched: bool, first: int = 1
    ) -> list[int]:
        """Open ``count`` connections (hello, snapshot); returns their device ids."""
        urls = [urls] if isinstance(urls, str) else list(urls)
        devices = list(range(first, first + count))
        dealt: list[list[int]] = [devices[n :: self._count] for n in range(self._count)]
        # Each worker spreads its devices over the URLs, so device n meets urls[n % len].
        commands: list[dict[str, Any] | None] = []
        for share in dealt:
            ordered = [urls[(d - first) % len(urls)] for d in share]
            commands.append(
                {"op": "connect", "urls": ordered, "devices": share, "batched": batched}
                if share
                else None
            )
        await self._all(commands)
        self._devices = [old + new for old, new in zip(self._devices, dealt, strict=True)]
        return devices

    async def close_connections(self) -> None:
        await self._all([{"op": "close"} for _ in self._procs])
        self._devices = [[] for _ in self._procs]

    async def fan_out(
        self, writers: Sequence[int], per_writer: int, expected: int, window: int
    ) -> LoadResult:
        chosen = set(writers)
        replies = await self._all(
            [
                {
                    "op": "fan_out",
                    "writers": [d for d in share if d in chosen],
                    "per_writer": per_writer,
                    "expected": expected,
                    "window": window,
                }
                if share
                else None
                for share in self._devices
            ]
        )
        return self._combine(replies, ops=sum(len(s) for s in self._devices) * expected)

    async def round_trips(self, writers: Sequence[int], seconds: float) -> LoadResult:
        chosen = set(writers)
        replies = await self._all(
            [
                {
                    "op": "round_trips",
                    "writers": [d for d in share if d in chosen],
                    "seconds": seconds,
                }
                if share
                else None
                for share in self._devices
            ]
        )
        return self._combine(replies, ops=sum(reply["ops"] for reply in replies))

    def _combine(self, replies: list[dict[str, Any]], ops: int) -> LoadResult:
        errors = sum(reply["errors"] for reply in replies)
        if errors:
            raise RuntimeError(f"{errors} error replies from the server under load")
        start = min(reply["start"] for reply in replies)
        end = max(reply["end"] for reply in replies)
        cpu = sum(reply["cpu"] for reply in replies)
        return LoadResult(ops, end - start, cpu, self.cores)


if __name__ == "__main__":
    main()
