"""Convergence: how soon every device agrees with the server after a burst of taps.

    python -m tests.perf.convergence [--quick]

2, 10 and 100 headless devices (the real link and cubit, no widgets, no disk)
run in worker processes (:mod:`tests.perf.fleet`; up to 4, as real devices
each run in their own) against a sync server in its own process
(``python -m syncserver``, default ``synchronous=FULL``) with a fixed 50 ms
latency (the write-delay demo control). A burst of 20 taps on random devices
and random items (each device taps an item at most once, so no tap waits
behind its own device's request) is fired in one go; the figure is the time
from the burst until every device shows the same values with nothing in
flight (the last time any device's state changed), the median over several
bursts. After each burst the benchmark checks that nothing changes for 100 ms
more and that the server holds what the devices show (a fresh hello's
snapshot).

The ideal is the same writes relayed by a bare websockets server to the same
number of devices in the same number of processes, devices that only decode:
the bare relay (``python -m tests.perf._bare``, same 50 ms write delay, same
``synchronous=FULL`` durability, one ``pushes`` frame per batch as the link
asks) and devices that decode every frame with the protocol's decoder and do
nothing else. So the ideal counts the sets' trip, the latency, the commit, the
fan-out and the decode; the gap to it is the server's and the devices' own
work (revision rules, state updates, status badges). Target: within 1.5x.

Beside each figure: the CPU time the devices (all processes together,
``getrusage``) and the server (``/proc``, in 10 ms clock ticks, so only the
mean over the bursts means something) spent per burst, for optisync and for
the ideal. When the devices need
more CPU per burst than the cores can give them within the ideal's time, the
figure measures the machine's cores as much as the code.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from app.link import CatalogueItem, load_catalogue
from syncserver.protocol import Snapshot, decode_server_message
from tests.perf.cli import bench_main
from tests.perf.fleet import Fleet
from tests.perf.report import Row
from tests.perf.server import Server, relay_server, subprocess_server

__all__ = ["run"]

LATENCY = 0.05
"""Server latency (write delay) in seconds: fixed, so the ideal means something."""
TAPS = 20
"""Taps per burst."""
SETTLE = 0.1
"""After convergence, how long nothing may change any more (checked, not assumed)."""
POLL = 0.02
"""How often the device processes are asked how far they are (the figure is the
last change they saw, so polling costs no precision; its CPU is counted)."""
PROCESSES = 4
"""Device processes at most."""
LIMIT = 30.0
"""Seconds a burst may take before the benchmark gives up."""


def _taps(rng: random.Random, devices: int, items: list[CatalogueItem]) -> list[tuple[int, str]]:
    pairs = rng.sample(range(devices * len(items)), TAPS)
    return [(pair // len(items), items[pair % len(items)].id) for pair in pairs]


def _agreed(statuses: list[dict[str, Any]]) -> tuple[str, ...] | None:
    """The one view every device shows with nothing in flight, else None."""
    if not all(status["quiet"] for status in statuses):
        return None
    views = {tuple(view) for status in statuses for view in status["views"]}
    return next(iter(views)) if len(views) == 1 else None


async def _server_likes(url: str, items: list[CatalogueItem]) -> tuple[str, ...]:
    """The liked items as the server holds them (a fresh hello's snapshot)."""
    async with connect(url, compression=None) as ws:
        await ws.send(json.dumps({"type": "hello", "device_id": 1, "since": 0}))
        async with asyncio.timeout(10):
            while not isinstance(message := decode_server_message(await ws.recv()), Snapshot):
                pass
    liked = {entry.key for entry in message.values if entry.value is True}
    return tuple(item.id for item in items if f"like/{item.id}" in liked)


async def _poll(fleet: Fleet, done: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    """Ask the device processes how far they are until ``done`` says enough."""
    async with asyncio.timeout(LIMIT):
        while True:
            statuses = await fleet.status()
            if done(statuses):
                return statuses
            await asyncio.sleep(POLL)


def _last_change(statuses: list[dict[str, Any]]) -> float:
    return max(float(status["last_change"]) for status in statuses)


@dataclass(frozen=True)
class Burst:
    """One burst: seconds until converged, and the CPU seconds the devices (all
    processes) and the server spent meanwhile."""

    seconds: float
    device_cpu: float
    server_cpu: float


def _cpu(statuses: list[dict[str, Any]]) -> float:
    return sum(float(status["cpu"]) for status in statuses)


async def _sync_burst(
    fleet: Fleet, server: Server, taps: list[tuple[int, str]], items: list[CatalogueItem]
) -> Burst:
    device_cpu, server_cpu = _cpu(await fleet.status()), server.cpu_seconds()
    started = time.perf_counter()
    await fleet.tap(taps)
    statuses = await _poll(fleet, lambda statuses: _agreed(statuses) is not None)
    device_cpu, server_cpu = _cpu(statuses) - device_cpu, server.cpu_seconds() - server_cpu
    view, settled = _agreed(statuses), _last_change(statuses)
    await asyncio.sleep(SETTLE)
    again = await fleet.status()
    if _agreed(again) != view or _last_change(again) != settled:
        raise AssertionError("a device changed after every device agreed")
    if await _server_likes(server.url, items) != view:
        raise AssertionError("the devices agree on values the server does not hold")
    return Burst(settled - started, device_cpu, server_cpu)


async def _ideal_burst(fleet: Fleet, relay: Server, taps: list[tuple[int, str]]) -> Burst:
    device_cpu, server_cpu = _cpu(await fleet.status()), relay.cpu_seconds()
    started = time.perf_counter()
    await fleet.tap(taps)
    statuses = await _poll(
        fleet, lambda statuses: min(int(status["received"]) for status in statuses) >= TAPS
    )
    device_cpu, server_cpu = _cpu(statuses) - device_cpu, relay.cpu_seconds() - server_cpu
    return Burst(_last_change(statuses) - started, device_cpu, server_cpu)


async def _set_latency(url: str) -> None:
    async with connect(url, compression=None) as ws:
        await ws.send(json.dumps({"type": "hello", "device_id": 2, "since": 0}))
        await ws.send(json.dumps({"type": "chaos", "request_id": 1, "write_delay": LATENCY}))
        async with asyncio.timeout(10):
            while b'"chaos_state"' not in await ws.recv(decode=False):
                pass


async def _measure(quick: bool) -> list[Row]:
    rounds = 3 if quick else 7
    items = list(load_catalogue())
    rows: list[Row] = []
    for count in (2, 10, 100):
        processes = min(count, PROCESSES)
        bursts = [_taps(random.Random(7 + n), count, items) for n in range(rounds)]
        async with (
            relay_server(pin=False, write_delay=LATENCY) as relay,
            Fleet("decode", relay.url, count, processes) as fleet,
        ):
            ideal = [await _ideal_burst(fleet, relay, taps) for taps in bursts]
        with tempfile.TemporaryDirectory(prefix="optisync-perf-") as tmp:
            args = ["-m", "syncserver", "--port", "0", "--allow-chaos"]
            args += ["--db", str(Path(tmp) / "server.sqlite3")]
            async with subprocess_server(*args, pin=False) as server:
                await _set_latency(server.url)
                async with Fleet("sync", server.url, count, processes) as fleet:
                    ours = [await _sync_burst(fleet, server, taps, items) for taps in bursts]
        rows.append(
            Row(
                f"convergence: {count} devices in {processes} processes, {TAPS} taps, "
                f"{LATENCY * 1000:.0f} ms latency",
                statistics.median(b.seconds for b in ours) * 1000,
                "ms",
                statistics.median(b.seconds for b in ideal) * 1000,
                1.5,
                lower_is_better=True,
            )
        )
        for what, field in (("devices' (all processes)", "device_cpu"), ("server's", "server_cpu")):
            rows.append(
                Row(
                    f"convergence: {count} devices, {what} CPU per burst (mean)",
                    statistics.fmean(getattr(b, field) for b in ours) * 1000,
                    "ms",
                    statistics.fmean(getattr(b, field) for b in ideal) * 1000,
                    None,
                    lower_is_better=True,
                )
            )
    return rows


def run(quick: bool = False) -> list[Row]:
    """One row per device count: median convergence against the ideal."""
    return asyncio.run(_measure(quick))


if __name__ == "__main__":
    sys.exit(bench_main("convergence", "convergence", run, __doc__))
