"""The load generator of the server benchmarks, spread over worker processes.

:class:`Load` starts ``processes`` workers (``python -m tests.perf._load``),
pinned to the cores it is given, and drives them with one JSON line per
command on their stdin; each answers with one JSON line. Connections are dealt
round-robin to the workers (and, with several server URLs, round-robin to the
servers), so reading the pushes of 1,000 clients is shared between processes.

A worker spends as little CPU per read as Python allows: no asyncio, one
``epoll`` loop over plain non-blocking sockets, and no frame splitting. After
the handshake a connection (:class:`Counter`) counts ``"type":"ack"``,
``"type":"push"`` and ``"type":"error"`` in the bytes as they arrive
(``bytes.count``, in C, with the few bytes of one read carried over so a
marker split between two reads still counts once). Server frames are
unmasked, so their JSON is in the stream as is. Every operation reports its
wall-clock span and the workers' CPU time over it (``getrusage``), so a
benchmark can say when the load generator, not the server, was the limit.
Connections live for one measurement (seconds), well inside the servers'
20 s ping interval, so the workers never answer pings.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import select
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Counter", "Listened", "Load", "LoadResult", "main", "set_frame"]

ROOT = Path(__file__).resolve().parents[2]
ACK, PUSH, ERROR, SNAPSHOT = (
    b'"type":"ack"',
    b'"type":"push"',
    b'"type":"error"',
    b'"type":"snapshot"',
)
CARRY = max(len(marker) for marker in (ACK, PUSH, ERROR, SNAPSHOT)) - 1
READ_SIZE = 256 * 1024
DEFAULT_SPACE = "default"
"""The space of a hello that names none (``syncserver.protocol.DEFAULT_SPACE``)."""
LIMIT = 300.0
"""Seconds an operation may take before the worker gives up."""


def set_frame(device: int, seq: int) -> bytes:
    """A ``set`` of a like, as a device sends it."""
    return (
        b'{"type":"set","request_id":%d,"key":"like/item-%04d","value":true,'
        b'"local_revision":%d,"device_id":%d}' % (seq, seq % 1000, seq, device)
    )


def _masked(opcode: int, data: bytes) -> bytes:
    """A client frame masked with a zero key: the payload goes out unchanged."""
    length = len(data)
    if length < 126:
        header = bytes((0x80 | opcode, 0x80 | length))
    elif length < 65536:
        header = bytes((0x80 | opcode, 0xFE)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0xFF)) + length.to_bytes(8, "big")
    return header + b"\0\0\0\0" + data


def _masked_text(data: bytes) -> bytes:
    """A client text frame masked with a zero key."""
    return _masked(0x1, data)


def _length(data: bytes, start: int, size: int) -> int:
    """A frame's extended payload length, or -1 when its bytes have not all arrived."""
    if len(data) < start + size:
        return -1
    return int.from_bytes(data[start : start + size], "big")


_REPLY_LIMIT = 64 * 2**20
"""Longest reply line a worker may send (asyncio's default, 64 KiB, is too short)."""


class Counter:
    """One connection after its handshake: counts acks, pushes and errors.

    Connections that live longer than a ping interval are read with
    :meth:`walk` as well, which follows the frame boundaries, answers the
    server's pings and counts the pushes that name the connection's space.
    """

    __slots__ = (
        "acks",
        "carry",
        "device",
        "errors",
        "frames",
        "mine",
        "mine_carry",
        "partial",
        "pushes",
        "seq",
        "skip",
        "sock",
        "space",
        "space_marker",
        "writes_left",
    )

    def __init__(self, sock: socket.socket, device: int, rest: bytes, space: str = "") -> None:
        self.sock = sock
        self.device = device
        self.acks = self.pushes = self.errors = self.seq = self.writes_left = 0
        self.carry = b""
        self.space = space or DEFAULT_SPACE
        # Checked only for a connection that named its space (older servers send none).
        self.space_marker = b'"space":%s' % json.dumps(space).encode() if space else b""
        self.mine = self.frames = 0
        """Pushes that named this connection's space; text frames (:meth:`walk`)."""
        self.mine_carry = b""
        self.skip = 0
        """Bytes of the current frame's payload still to come (:meth:`walk`)."""
        self.partial = b""
        """The start of a frame whose header (or ping payload) is not complete yet."""
        if rest:
            self.count(rest)

    def count_mine(self, data: bytes) -> None:
        """Count the pushes that name this connection's space (with ``"space":"name"``)."""
        marker, carry = self.space_marker, self.mine_carry
        if not marker:
            return
        self.mine += data.count(marker) + _straddling(marker, carry, data)
        reach = len(marker) - 1
        self.mine_carry = (carry + data)[-reach:] if len(data) < reach else data[-reach:]

    def walk(self, data: bytes) -> None:
        """Follow the frames through newly read bytes and answer every ping with a pong."""
        position, size = 0, len(data)
        if self.skip:
            if self.skip >= size:
                self.skip -= size
                return
            position, self.skip = self.skip, 0
        if self.partial:
            data, position = self.partial + data[position:], 0
            size, self.partial = len(data), b""
        while position < size:
            header, length = 2, data[position + 1] & 0x7F if size - position >= 2 else -1
            if length == 126:
                header, length = 4, _length(data, position + 2, 2)
            elif length == 127:
                header, length = 10, _length(data, position + 2, 8)
            end = position + header + length
            if length < 0 or (data[position] & 0x0F == 0x9 and end > size):
                self.partial = data[position:]  # a header or a ping not complete yet
                return
            opcode = data[position] & 0x0F
            if opcode == 0x9:
                self.send(_masked(0xA, data[position + header : end]))
            elif opcode == 0x1:
                self.frames += 1
            if end > size:
                self.skip = end - size
                return
            position = end

    def count(self, data: bytes) -> int:
        """Count the markers in newly read bytes; returns the acks among them."""
        carry = self.carry
        self.carry = (carry + data)[-CARRY:] if len(data) < CARRY else data[-CARRY:]
        acks = data.count(ACK) + _straddling(ACK, carry, data)
        self.acks += acks
        self.pushes += data.count(PUSH) + _straddling(PUSH, carry, data)
        self.errors += data.count(ERROR) + _straddling(ERROR, carry, data)
        return acks

    def send(self, data: bytes) -> None:
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):  # a full socket buffer: rare with a few sets in flight
            self.sock.setblocking(True)
            self.sock.sendall(data[sent:])
            self.sock.setblocking(False)

    def send_set(self) -> None:
        self.seq += 1
        self.send(_masked_text(set_frame(self.device, self.seq)))


def _straddling(marker: bytes, before: bytes, data: bytes) -> int:
    """Occurrences of ``marker`` that start in ``before`` and end in ``data``: a window
    of len - 1 bytes on each side cannot hold one wholly on either side."""
    if not before:
        return 0
    reach = len(marker) - 1
    return (before[-reach:] + data[:reach]).count(marker)


def _handshake(url: str, device: int, batched: bool) -> socket.socket:
    """Open a connection, upgrade it and say hello; returns it before the snapshot."""
    host, port = url.removeprefix("ws://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    return sock


def _read_until_snapshot(
    sock: socket.socket, device: int, batched: bool, since: int = 0, space: str = ""
) -> tuple[bytes, bytes]:
    """Finish the upgrade, send the hello, read up to the snapshot; returns every byte
    read after the upgrade (from a frame boundary) and the bytes after the snapshot's
    type marker."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed during the handshake")
        buffer += chunk
    head, _, buffer = buffer.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.decode(errors="replace"))
    flag = b',"batch_pushes":true' if batched else b""
    if space:
        flag += b',"space":%s' % json.dumps(space).encode()
    hello = b'{"type":"hello","device_id":%d,"since":%d%s}' % (device, since, flag)
    sock.sendall(_masked_text(hello))
    while SNAPSHOT not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the snapshot")
        buffer += chunk
    # Whatever came after the snapshot frame is counted (pushes may follow it).
    return buffer, buffer[buffer.index(SNAPSHOT) + len(SNAPSHOT) :]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Worker:
    def __init__(self) -> None:
        self.poller = select.epoll()
        self.counters: dict[int, Counter] = {}

    def connect(
        self,
        urls: list[str],
        devices: list[int],
        batched: bool,
        since: int = 0,
        spaces: list[str] | None = None,
    ) -> dict[str, Any]:
        """Connect ``devices`` (to ``urls[n]``, in ``spaces[n]`` when given)."""
        names = spaces or [""] * len(devices)
        for start in range(0, len(devices), 100):
            batch = list(
                zip(
                    urls[start : start + 100],
                    devices[start : start + 100],
                    names[start : start + 100],
                    strict=True,
                )
            )
            socks = [_handshake(url, device, batched) for url, device, _ in batch]
            for sock, (_, device, space) in zip(socks, batch, strict=True):
                aligned, rest = _read_until_snapshot(sock, device, batched, since, space)
                sock.setblocking(False)
                counter = Counter(sock, device, rest, space)
                counter.walk(aligned)
                self.counters[sock.fileno()] = counter
                self.poller.register(sock.fileno(), select.EPOLLIN)
        return {"connected": len(devices)}

    def _read(self, on_acks: Any, until: Any, deadline: float) -> None:
        """Read every connection until ``until()``; ``on_acks(counter, n)`` per read with acks."""
        poll, counters = self.poller.poll, self.counters
        while not until():
            if time.perf_counter() > deadline:
                raise TimeoutError("the server did not deliver in time")
            for fd, _ in poll(0.05):
                counter = counters[fd]
                try:
                    data = counter.sock.recv(READ_SIZE)
                except BlockingIOError:
                    continue
                if not data:
                    raise ConnectionError(f"the server closed device {counter.device}'s connection")
                acks = counter.count(data)
                if acks:
                    on_acks(counter, acks)

    def fan_out(
        self, writers: list[int], per_writer: int, expected: int, window: int
    ) -> dict[str, Any]:
        """Writers keep ``window`` sets in flight until every client has ``expected`` pushes."""
        counters = list(self.counters.values())
        for counter in counters:
            counter.acks = counter.pushes = counter.errors = 0
            counter.writes_left = per_writer if counter.device in writers else 0

        def on_acks(counter: Counter, acks: int) -> None:
            for _ in range(min(acks, counter.writes_left)):
                counter.writes_left -= 1
                counter.send_set()

        cpu, start = _cpu(), time.perf_counter()
        for counter in counters:
            for _ in range(min(window, counter.writes_left)):
                counter.writes_left -= 1
                counter.send_set()
        pending = list(counters)

        def until() -> bool:
            while pending and pending[-1].pushes >= expected:
                pending.pop()
            return not pending

        self._read(on_acks, until, start + LIMIT)
        end = time.perf_counter()
        return self._result(start, end, cpu, per_writer * len(writers))

    def round_trips(self, writers: list[int], seconds: float) -> dict[str, Any]:
        """Each writer one set at a time for ``seconds``; counts acks."""
        counters = list(self.counters.values())
        mine = [counter for counter in counters if counter.device in set(writers)]
        for counter in counters:
            counter.acks = counter.pushes = counter.errors = 0
        running = True

        def on_acks(counter: Counter, acks: int) -> None:
            if running:
                counter.send_set()

        base = sum(counter.seq for counter in mine)
        cpu, start = _cpu(), time.perf_counter()
        for counter in mine:
            counter.send_set()
        stop = start + seconds
        self._read(on_acks, lambda: time.perf_counter() >= stop, stop + LIMIT)
        running = False
        sent = sum(counter.seq for counter in mine) - base
        self._read(on_acks, lambda: sum(c.acks for c in mine) >= sent, stop + 30)
        end = time.perf_counter()
        completed = sum(counter.acks for counter in mine)
        return {**self._result(start, end, cpu, completed), "ops": completed}

    def deliver(self) -> dict[str, Any]:
        """Say "armed", then read until every connection has a new push; returns when
        each one got it (``perf_counter``, one clock for every process on Linux)."""
        counters = list(self.counters.values())
        before = [counter.pushes for counter in counters]
        stamps = [0.0] * len(counters)
        waiting = {counter.sock.fileno(): n for n, counter in enumerate(counters)}
        for counter in counters:
            counter.errors = 0
        _reply({"armed": True})
        cpu, start = _cpu(), time.perf_counter()
        poll, by_fd = self.poller.poll, self.counters
        while waiting:
            if time.perf_counter() > start + LIMIT:
                raise TimeoutError("the push did not reach every connection in time")
            for fd, _ in poll(0.05):
                counter = by_fd[fd]
                try:
                    data = counter.sock.recv(READ_SIZE)
                except BlockingIOError:
                    continue
                if not data:
                    raise ConnectionError(f"the server closed device {counter.device}'s connection")
                counter.count(data)
                n = waiting.get(fd)
                if n is not None and counter.pushes > before[n]:
                    stamps[n] = time.perf_counter()
                    del waiting[fd]
        return {**self._result(start, time.perf_counter(), cpu, len(counters)), "stamps": stamps}

    def listen(self, expected: dict[str, int], drain: float) -> dict[str, Any]:
        """Say "armed", then read every connection (answering pings) until each has as
        many pushes as ``expected`` says for its space, and ``drain`` seconds more for
        any push that should not come; returns the connections that got a different
        number, or pushes of another space."""
        counters = list(self.counters.values())
        for counter in counters:
            counter.pushes = counter.mine = counter.errors = counter.frames = 0
        waiting = {
            fd: expected.get(counter.space, 0)
            for fd, counter in self.counters.items()
            if expected.get(counter.space, 0)
        }
        _reply({"armed": True})
        cpu, start = _cpu(), time.perf_counter()
        poll, by_fd = self.poller.poll, self.counters
        drain_until, end = None, start
        while drain_until is None or time.perf_counter() < drain_until:
            if drain_until is None and time.perf_counter() > start + LIMIT:
                raise TimeoutError(f"{len(waiting)} connections lack pushes after {LIMIT} s")
            for fd, _ in poll(0.02):
                counter = by_fd[fd]
                try:
                    data = counter.sock.recv(READ_SIZE)
                except BlockingIOError:
                    continue
                if not data:
                    raise ConnectionError(f"the server closed device {counter.device}'s connection")
                counter.count(data)
                counter.count_mine(data)
                counter.walk(data)
                if fd in waiting and counter.pushes >= waiting[fd]:
                    del waiting[fd]
            if not waiting and drain_until is None:
                end = time.perf_counter()
                drain_until = end + drain
        wrong = [
            c.device
            for c in counters
            if c.pushes != expected.get(c.space, 0) or (c.space_marker and c.mine != c.pushes)
        ]
        return {
            **self._result(start, end, cpu, sum(c.pushes for c in counters)),
            "wrong": wrong,
            "connections": len(counters),
            "frames": sum(c.frames for c in counters),
        }

    def _result(self, start: float, end: float, cpu: float, ops: int) -> dict[str, Any]:
        return {
            "start": start,
            "end": end,
            "cpu": _cpu() - cpu,
            "ops": ops,
            "errors": sum(counter.errors for counter in self.counters.values()),
        }

    def close(self) -> dict[str, Any]:
        for fd, counter in self.counters.items():
            self.poller.unregister(fd)
            counter.sock.close()
        self.counters.clear()
        return {"closed": True}


def _reply(reply: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()


def _serve() -> None:
    worker = _Worker()
    for line in sys.stdin:
        command = json.loads(line)
        op = command.pop("op")
        try:
            if op == "connect":
                reply = worker.connect(**command)
            elif op == "fan_out":
                reply = worker.fan_out(**command)
            elif op == "round_trips":
                reply = worker.round_trips(**command)
            elif op == "deliver":
                reply = worker.deliver()
            elif op == "listen":
                reply = worker.listen(**command)
            elif op == "close":
                reply = worker.close()
            else:
                reply = {"error": f"unknown op {op!r}"}
        except Exception as exc:  # reported to the driver, which raises it
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        _reply(reply)
    worker.close()


def main() -> None:
    """Entry point of a worker process (driven by :class:`Load` on stdin)."""
    argparse.ArgumentParser(
        prog="python -m tests.perf._load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args()
    _serve()


# -- the driver ---------------------------------------------------------------


async def _read_reply(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), LIMIT + 100)
    if not line:
        raise RuntimeError("a load worker exited")
    reply: dict[str, Any] = json.loads(line)
    if "error" in reply:
        raise RuntimeError(f"load worker: {reply['error']}")
    return reply


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


@dataclass(frozen=True)
class Listened:
    """What :meth:`Load.listened` saw: pushes, and the devices that got the wrong ones."""

    result: LoadResult
    """``ops``: pushes received by every connection together."""
    connections: int
    wrong: list[int]
    """Devices whose pushes were not exactly their space's writes."""
    frames: int
    """Text frames that brought the pushes (fewer than pushes: batched commits)."""

    @property
    def pushes_per_frame(self) -> float:
        return self.result.ops / self.frames if self.frames else 0.0


class Load:
    """Worker processes that open connections and run operations over them."""

    def __init__(self, cores: Sequence[int] | None, processes: int) -> None:
        """``cores``: where the workers run (None: anywhere)."""
        self._pinned = cores is not None
        self._cores = list(cores) if cores else sorted(os.sched_getaffinity(0))
        self._count = processes
        self._procs: list[asyncio.subprocess.Process] = []
        self._devices: list[list[int]] = []
        self._listening: list[asyncio.subprocess.Process] = []

    async def __aenter__(self) -> Load:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cores = set(self._cores)
        for _ in range(self._count):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.perf._load",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT, env=env,
                # A reply line carries every latency sample of thousands of devices.
                limit=_REPLY_LIMIT,
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
        pairs = [(p, c) for p, c in zip(self._procs, commands, strict=True) if c is not None]
        for proc, command in pairs:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(command).encode() + b"\n")
        return await asyncio.gather(*(_read_reply(proc) for proc, _ in pairs))

    async def deliver(self, send: Callable[[], float]) -> list[float]:
        """Arm every worker, ``send()`` one write (returning when it was sent), and
        return the seconds until each connection had its push."""
        busy = [proc for proc, share in zip(self._procs, self._devices, strict=True) if share]
        for proc in busy:
            assert proc.stdin is not None
            proc.stdin.write(b'{"op": "deliver"}\n')
        await asyncio.gather(*(_read_reply(proc) for proc in busy))  # every one is reading
        sent = send()
        replies = await asyncio.gather(*(_read_reply(proc) for proc in busy))
        self._combine(replies, ops=0)  # raises on error replies
        return [stamp - sent for reply in replies for stamp in reply["stamps"]]

    async def connect(
        self,
        urls: str | Sequence[str],
        count: int,
        batched: bool,
        first: int = 1,
        since: int = 0,
        space_of: Callable[[int], str] | None = None,
    ) -> list[int]:
        """Open ``count`` connections (hello ``since``, in the space ``space_of(device)``
        when given, snapshot); returns their device ids."""
        urls = [urls] if isinstance(urls, str) else list(urls)
        devices = list(range(first, first + count))
        dealt: list[list[int]] = [devices[n :: self._count] for n in range(self._count)]
        # Each worker spreads its devices over the URLs, so device n meets urls[n % len].
        commands: list[dict[str, Any] | None] = []
        for share in dealt:
            ordered = [urls[(d - first) % len(urls)] for d in share]
            command = {
                "op": "connect",
                "urls": ordered,
                "devices": share,
                "batched": batched,
                "since": since,
            }
            if space_of is not None:
                command["spaces"] = [space_of(device) for device in share]
            commands.append(command if share else None)
        await self._all(commands)
        self._devices = [old + new for old, new in zip(self._devices, dealt, strict=True)]
        return devices

    async def arm_listen(self, expected: dict[str, int], drain: float = 0.3) -> None:
        """Have every worker read until each connection has ``expected[its space]``
        pushes (see :meth:`listened`); returns once all of them are reading."""
        self._listening = [
            proc for proc, share in zip(self._procs, self._devices, strict=True) if share
        ]
        command = json.dumps({"op": "listen", "expected": expected, "drain": drain}).encode()
        for proc in self._listening:
            assert proc.stdin is not None
            proc.stdin.write(command + b"\n")
        await asyncio.gather(*(_read_reply(proc) for proc in self._listening))

    async def listened(self) -> Listened:
        """What the workers armed by :meth:`arm_listen` received."""
        replies = await asyncio.gather(*(_read_reply(proc) for proc in self._listening))
        result = self._combine(replies, ops=sum(reply["ops"] for reply in replies))
        wrong = sorted(device for reply in replies for device in reply["wrong"])
        connections = sum(reply["connections"] for reply in replies)
        frames = sum(reply["frames"] for reply in replies)
        return Listened(result, connections, wrong, frames)

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
