"""Scale: how many devices one sync server carries before pushes get late.

    python -m tests.perf.scale [--quick]

The server runs in its own process (``python -m syncserver``, default
``synchronous=FULL``, connection limit raised above the ramp); the devices are
the load generator's connections (:mod:`tests.perf._load`, one worker process
per core, reading with one ``epoll`` loop each) that say hello, wait for
their snapshot and then only stamp the arrival of pushes, so the server is
what gets measured. The ramp adds connected devices (100, 250,
500, 1,000, 2,000, 3,000, 4,000, 6,000, 8,000, 12,000; quick mode stops at
2,000) until p99 passes 100 ms; at each step one writer sets a key, waits
until every device has the push, and does it again. Figures:

* push delivery p99 (set sent → push received, over every device and write)
  at each step, and the largest step whose p99 stays within 100 ms;
* server memory per connected device: RSS growth over the ramp divided by the
  devices added.

The ceiling of each is the same ramp against the bare relay
(``python -m tests.perf._bare``, same ``synchronous=FULL`` durability): it
acks and pushes each set as the sync server does (one fsync'd batch, the push
serialized once and written to every device) without a sync server's own work.
The core's memory per tracked key is measured by ``tests.perf.core``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.perf._bare import connect_raw
from tests.perf._load import Load
from tests.perf.cli import bench_main
from tests.perf.devices import percentile
from tests.perf.report import Row
from tests.perf.server import Server, relay_server, subprocess_server

__all__ = ["run"]

STEPS = (100, 250, 500, 1000, 2000, 3000, 4000, 6000, 8000, 12000)
QUICK_STEPS = (100, 250, 500, 1000, 2000)
MAX_CONNECTIONS = 15_000
"""Above the largest step (the server's default limit is 10,000)."""
LIMIT_MS = 100.0
"""Push delivery p99 beyond which a server counts as full."""
BUDGET = 150.0
"""Seconds one ramp may take; the ramp stops at the step that passes it."""


@dataclass
class Step:
    devices: int
    p99_ms: float
    rss_kib: int


def _frame(n: int) -> bytes:
    return (
        b'{"type":"set","request_id":%d,"key":"like/item-0001","value":%s,'
        b'"local_revision":%d,"device_id":999999}' % (n, b"true" if n % 2 else b"false", n)
    )


async def _ramp(load: Load, server: Server, steps: tuple[int, ...], writes: int) -> list[Step]:
    writer = await connect_raw(server.url, lambda payload: None)
    writer.send_text(b'{"type":"hello","device_id":999999,"since":0}')
    started = time.perf_counter()
    results: list[Step] = []
    seq = 0
    connected = 0

    def send() -> float:
        writer.send_text(_frame(seq))
        return time.perf_counter()

    try:
        for devices in steps:
            await load.connect(server.url, devices - connected, batched=False, first=connected + 1)
            connected = devices
            await asyncio.sleep(0.2)  # let the handshakes' garbage settle before measuring
            samples: list[float] = []
            for _ in range(writes):
                seq += 1
                samples.extend(await load.deliver(send))
                await asyncio.sleep(0.005)
            results.append(Step(devices, percentile(samples, 99) * 1000, server.rss_kib()))
            if results[-1].p99_ms > LIMIT_MS or time.perf_counter() - started > BUDGET:
                break
    finally:
        writer.close()
        await load.close_connections()
    return results


def _capacity(steps: list[Step]) -> float:
    within = [step.devices for step in steps if step.p99_ms <= LIMIT_MS]
    return float(max(within, default=0))


def _kib_per_device(steps: list[Step], upto: int) -> float:
    last = steps[min(upto, len(steps)) - 1]
    return (last.rss_kib - steps[0].rss_kib) / max(1, last.devices - steps[0].devices)


async def _measure(quick: bool) -> list[Row]:
    steps = QUICK_STEPS if quick else STEPS
    writes = 15 if quick else 40
    # Unpinned: thousands of clients need more than one core to read their pushes.
    # One worker per core the server does not need: on 2 cores a second worker only
    # competes with the server for the core it needs to wake up on.
    async with Load(None, processes=max(1, len(os.sched_getaffinity(0)) - 1)) as load:
        async with relay_server(pin=False) as bare:
            ceiling = await _ramp(load, bare, steps, writes)
        with tempfile.TemporaryDirectory(prefix="optisync-perf-") as tmp:
            args = ["--port", "0", "--db", str(Path(tmp) / "scale.sqlite3")]
            args += ["--max-connections", str(MAX_CONNECTIONS)]
            async with subprocess_server("-m", "syncserver", *args, pin=False) as server:
                ours = await _ramp(load, server, steps, writes)
    rows: list[Row] = []
    for step, bare_step in zip(ours, ceiling, strict=False):
        rows.append(
            Row(
                f"scale: push delivery p99, {step.devices} devices",
                step.p99_ms,
                "ms",
                bare_step.p99_ms,
                None,
                lower_is_better=True,
            )
        )
    capped = "" if any(s.p99_ms > LIMIT_MS for s in ours) else f" (ramp ends at {steps[-1]})"
    rows.append(
        Row(
            f"scale: devices per server, push p99 ≤ {LIMIT_MS:.0f} ms{capped}",
            _capacity(ours),
            "devices",
            _capacity(ceiling),
            None,
        )
    )
    both = min(len(ours), len(ceiling))
    rows.append(
        Row(
            f"scale: server memory per connected device (RSS, {ours[both - 1].devices} devices)",
            _kib_per_device(ours, both),
            "KiB",
            _kib_per_device(ceiling, both),
            None,
            lower_is_better=True,
        )
    )
    return rows


def run(quick: bool = False) -> list[Row]:
    """Ramp devices on the sync server and on the bare relay."""
    return asyncio.run(_measure(quick))


if __name__ == "__main__":
    sys.exit(bench_main("scale", "scale", run, __doc__))
