"""Scale: how many devices one sync server carries before pushes get late.

    python -m tests.perf.scale [--quick]

The server runs in its own process (``python -m syncserver``, default
``synchronous=FULL``, connection limit raised above the ramp); the devices are
minimal websocket clients (:class:`tests.perf._bare.RawClient`) that say
hello, wait for their snapshot and then only stamp the arrival of pushes, so
the server is what gets measured. The ramp adds connected devices (100, 250,
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
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.perf._bare import RawClient, connect_raw
from tests.perf.devices import percentile
from tests.perf.report import Row, print_table
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


@dataclass
class Fleet:
    """Connected devices and the write whose push they are waiting for."""

    clients: list[RawClient] = field(default_factory=list)
    stamps: list[float] = field(default_factory=list)
    waiting: bool = False
    received: int = 0
    everyone: asyncio.Future[None] | None = None

    def listener(self, index: int) -> Callable[[bytes], None]:
        snapshot: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_payload(payload: bytes) -> None:
            if not snapshot.done() and payload.startswith(b'{"type":"snapshot"'):
                snapshot.set_result(None)
                return
            if not self.waiting or self.stamps[index] or b'"type":"push"' not in payload:
                return
            self.stamps[index] = time.perf_counter()
            self.received += 1
            if self.received == len(self.clients) and self.everyone is not None:
                self.everyone.set_result(None)

        on_payload.snapshot = snapshot  # type: ignore[attr-defined]
        return on_payload

    async def grow(self, url: str, count: int) -> None:
        """Connect devices (in batches of 100) until there are ``count``."""

        async def one(index: int) -> RawClient:
            on_payload = self.listener(index)
            client = await connect_raw(url, on_payload)
            client.send_text(b'{"type":"hello","device_id":%d,"since":0}' % (index + 1))
            await asyncio.wait_for(on_payload.snapshot, 30)  # type: ignore[attr-defined]
            return client

        while len(self.clients) < count:
            start = len(self.clients)
            batch = range(start, min(count, start + 100))
            self.stamps.extend(0.0 for _ in batch)
            self.clients.extend(await asyncio.gather(*(one(i) for i in batch)))

    async def deliver(self, writer: RawClient, frame: bytes) -> list[float]:
        """Send one frame; seconds until each device had its push."""
        self.stamps = [0.0] * len(self.clients)
        self.received = 0
        self.everyone = asyncio.get_running_loop().create_future()
        self.waiting = True
        sent = time.perf_counter()
        writer.send_text(frame)
        try:
            await asyncio.wait_for(self.everyone, 30)
        finally:
            self.waiting = False
        return [stamp - sent for stamp in self.stamps]

    def close(self) -> None:
        for client in self.clients:
            client.close()


def _frame(n: int) -> bytes:
    return (
        b'{"type":"set","request_id":%d,"key":"like/item-0001","value":%s,'
        b'"local_revision":%d,"device_id":999999}' % (n, b"true" if n % 2 else b"false", n)
    )


async def _ramp(server: Server, steps: tuple[int, ...], writes: int) -> list[Step]:
    fleet = Fleet()
    writer = await connect_raw(server.url, lambda payload: None)
    writer.send_text(b'{"type":"hello","device_id":999999,"since":0}')
    started = time.perf_counter()
    results: list[Step] = []
    seq = 0
    try:
        for devices in steps:
            await fleet.grow(server.url, devices)
            await asyncio.sleep(0.2)  # let the handshakes' garbage settle before measuring
            samples: list[float] = []
            for _ in range(writes):
                seq += 1
                samples.extend(await fleet.deliver(writer, _frame(seq)))
                await asyncio.sleep(0.005)
            results.append(Step(devices, percentile(samples, 99) * 1000, server.rss_kib()))
            if results[-1].p99_ms > LIMIT_MS or time.perf_counter() - started > BUDGET:
                break
    finally:
        writer.close()
        fleet.close()
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
    async with relay_server(pin=False) as bare:
        ceiling = await _ramp(bare, steps, writes)
    with tempfile.TemporaryDirectory(prefix="optisync-perf-") as tmp:
        args = ["--port", "0", "--db", str(Path(tmp) / "scale.sqlite3")]
        args += ["--max-connections", str(MAX_CONNECTIONS)]
        async with subprocess_server("-m", "syncserver", *args, pin=False) as server:
            ours = await _ramp(server, steps, writes)
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
    print_table("scale", run(quick="--quick" in sys.argv))
