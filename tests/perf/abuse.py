"""A well-behaved device's set→ack latency beside abusive connections.

    python -m tests.perf.abuse [--quick]

One server process (``python -m syncserver``, default limits plus
``--limit-loopback`` so loopback clients are limited like remote ones,
``--synchronous NORMAL`` so fsync noise does not hide the effect) holds
5,000 keys (~0.6 MB as a full snapshot). A device on its own address
(127.0.0.2) writes one key every 20 ms and times each ack: first alone, then
beside 4, 16 and 64 abusive connections from 127.0.0.1, run by another
process (at a lower priority, so that they slow the server, not the measuring
client's CPU). The abusers are a third each of:

* blasters: sets as fast as the server takes them (200 in flight), reading
  their replies;
* catch-up pipeliners: ``hello since 0`` over and over without waiting,
  reading what comes;
* stalled readers: a hello, then never read again (a tiny receive buffer).

Each row shows p50/p99 under load beside the unloaded figures of the same
run. Target: p99 under load at most 5x the unloaded p99.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import socket
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from tests.perf.server import subprocess_server

__all__ = ["main", "run"]

ROOT = Path(__file__).resolve().parents[2]
KEYS = 5000
INTERVAL = 0.02
TARGET = 5.0
STALL = 10.0
"""Seconds without an ack after which a row stops: the server stalled."""


async def _fill(url: str) -> None:
    async with connect(url, max_size=2**21) as ws:
        await ws.send(json.dumps({"type": "hello", "device_id": 1}))
        for start in range(0, KEYS, 500):
            for n in range(start, start + 500):
                await ws.send(
                    json.dumps(
                        {"type": "set", "request_id": n, "key": f"item/{n}", "value": "v" * 100,
                         "local_revision": n + 1}
                    )
                )  # fmt: skip
            acked = 0
            while acked < 500:
                if json.loads(await ws.recv())["type"] == "ack":
                    acked += 1


async def _measure(url: str, seconds: float) -> list[float]:
    """The good device: one set every INTERVAL, each ack's latency in ms."""
    latencies: list[float] = []
    async with connect(url, max_size=2**21, local_addr=("127.0.0.2", 0)) as ws:
        await ws.send(json.dumps({"type": "hello", "device_id": 7, "batch_pushes": True}))
        try:
            async with asyncio.timeout(STALL):
                while json.loads(await ws.recv())["type"] != "snapshot":
                    pass
        except TimeoutError:
            print(f"no snapshot within {STALL:g} s: the catch-up stalled", flush=True)
            return [STALL * 1000]
        deadline = time.perf_counter() + seconds
        for n in itertools.count(1):
            started = time.perf_counter()
            if started > deadline:
                break
            await ws.send(
                json.dumps(
                    {"type": "set", "request_id": n, "key": "good/like", "value": n % 2 == 0,
                     "local_revision": n}
                )
            )  # fmt: skip
            try:
                async with asyncio.timeout(STALL):
                    while True:
                        message = json.loads(await ws.recv())
                        if message["type"] == "ack" and message["request_id"] == n:
                            break
            except TimeoutError:
                latencies.append(STALL * 1000)
                print(f"no ack within {STALL:g} s: the server stalled", flush=True)
                break
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(max(0.0, INTERVAL - (time.perf_counter() - started)))
    return latencies


# -- the abusers (run in their own process) ---------------------------------------------


async def _drain(ws: ClientConnection) -> None:
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass


async def _blaster(url: str, device_id: int) -> None:
    while True:
        try:
            async with connect(url, max_size=2**21) as ws:
                reader = asyncio.create_task(_drain(ws))
                await ws.send(json.dumps({"type": "hello", "device_id": device_id, "since": KEYS}))
                for n in itertools.count(1):
                    await ws.send(
                        json.dumps(
                            {"type": "set", "request_id": n, "key": f"spam/{device_id}/{n % 50}",
                             "value": n, "local_revision": n}
                        )
                    )  # fmt: skip
                    if n % 200 == 0:
                        await asyncio.sleep(0)
                    if reader.done():
                        break
        except (OSError, ConnectionClosed):
            await asyncio.sleep(0.1)


async def _pipeliner(url: str, device_id: int) -> None:
    hello = json.dumps({"type": "hello", "device_id": device_id, "since": 0})
    while True:
        try:
            async with connect(url, max_size=2**21) as ws:
                reader = asyncio.create_task(_drain(ws))
                while not reader.done():
                    for _ in range(20):
                        await ws.send(hello)
                    await asyncio.sleep(0.001)
        except (OSError, ConnectionClosed):
            await asyncio.sleep(0.1)


def _stalled(url: str, device_id: int) -> socket.socket:
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((parts.hostname, parts.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET / HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(4096)
    hello = json.dumps({"type": "hello", "device_id": device_id, "since": 0}).encode()
    sock.sendall(Frame(Opcode.TEXT, hello).serialize(mask=True, extensions=[]))
    return sock


async def _abuse(url: str, count: int) -> None:
    tasks = []
    sockets = []
    kinds = os.environ.get("OPTISYNC_ABUSE_KINDS", "bps")
    for n in range(count):
        device_id = 10_000 + n
        kind = kinds[n % len(kinds)]
        if kind == "b":
            tasks.append(asyncio.create_task(_blaster(url, device_id)))
        elif kind == "p":
            tasks.append(asyncio.create_task(_pipeliner(url, device_id)))
        else:
            sockets.append(_stalled(url, device_id))
    print("ready", flush=True)
    await asyncio.Event().wait()  # until killed


# -- the run ----------------------------------------------------------------------------


def _lower_priority() -> None:
    # The abusers share the load core with the measuring device: they must not
    # steal its CPU, or the figure measures the client machine, not the server.
    os.nice(10)


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _run(seconds: float, counts: tuple[int, ...], limited: bool = True) -> None:
    with tempfile.TemporaryDirectory(prefix="optisync-abuse-") as tmp:
        args = ["-m", "syncserver", "--port", "0", "--db", str(Path(tmp) / "abuse.sqlite3")]
        args += ["--synchronous", "NORMAL"]
        if limited:
            args.append("--limit-loopback")
        async with subprocess_server(*args) as server:
            await _fill(server.url)
            alone = await _measure(server.url, seconds)
            p50, p99 = statistics.median(alone), _percentile(alone, 0.99)
            print(
                f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
                f"{len(alone)} sets alone: p50 {p50:.2f} ms, p99 {p99:.2f} ms"
            )
            header = "| abusers | p50 ms (alone) | p99 ms (alone) | p99 ratio |"
            print(f"{header} target ≤ {TARGET:g}x |")
            print("|---|---|---|---|---|")
            for count in counts:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "tests.perf.abuse", "--abusers", str(count),
                    "--url", server.url, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                    env={**os.environ, "PYTHONPATH": str(ROOT)}, preexec_fn=_lower_priority,
                )  # fmt: skip
                assert proc.stdout is not None
                await asyncio.wait_for(proc.stdout.readline(), 60)
                try:
                    await asyncio.sleep(1.0)  # let the abuse reach its steady state
                    loaded = await _measure(server.url, seconds)
                finally:
                    proc.kill()
                    await proc.wait()
                q50, q99 = statistics.median(loaded), _percentile(loaded, 0.99)
                ratio = q99 / p99
                print(
                    f"| {count} | {q50:.2f} ({p50:.2f}) | {q99:.2f} ({p99:.2f}) | "
                    f"{ratio:.1f}x | {'met' if ratio <= TARGET else 'MISSED'} |",
                    flush=True,
                )
            print(f"server RSS at the end: {server.rss_kib() / 1024:.0f} MiB")
            # A stalled server may not stop on SIGTERM in time: do not leave it behind.
            server.proc.kill()
            await server.proc.wait()


def run(quick: bool = False, limited: bool = True) -> None:
    """Print the table; ``quick`` measures 3 s per row instead of 8."""
    asyncio.run(_run(3.0 if quick else 8.0, (4, 16) if quick else (4, 16, 64), limited))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.perf.abuse", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter rows, 4 and 16 abusers")
    parser.add_argument(
        "--without-address-limits",
        action="store_true",
        help="leave loopback clients unlimited, to see what the per-address limits buy",
    )
    parser.add_argument("--abusers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.abusers is not None:
        asyncio.run(_abuse(args.url, args.abusers))
        return
    run(args.quick, limited=not args.without_address_limits)


if __name__ == "__main__":
    main()
