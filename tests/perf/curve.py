"""Scale curve: a sync server's CPU per write and memory against devices and keys.

    python -m tests.perf.curve [--quick] [--devices N,N,...]

The server is ``python -m syncserver`` in its own process with default
settings (SQLite, ``synchronous=FULL``), unpinned. Costs are the server
process's CPU time (``utime + stime`` from ``/proc``, every thread), not wall
time, so a busy shared machine slows the run but hardly moves the figures.

**Devices** (100, 500, 1,000, 2,000, 5,000; quick mode stops at 1,000;
``--devices`` sets the steps, and past 10,000 the server's connection limit
is raised above the last): the
devices are connections of the load generator (:mod:`tests.perf._load`, one
worker process per core) that say hello with ``batch_pushes`` and then only
read, answering the server's pings. At each step one writer (a connection of
this process) sets a key at a fixed rate (20 writes/s) and waits for its
acks; the workers count every device's pushes, and a device that did not get
exactly the writes counts against delivery. Per step: the server's CPU per
write, per delivery (per write divided by the devices), and its RSS once the
devices are connected. The ceiling of each is the same ramp against the bare
relay (``python -m tests.perf._bare``, same durability and framing, none of a
sync server's own work). The last rows are the per-connection costs: RSS
growth per device added over the ramp; CPU per delivery at the largest step;
and the line CPU per write = fixed + per delivery × devices fitted over the
steps where each write came alone (a push per frame: the workers count the
frames too). When a fan-out takes longer than the gap between writes, the
next writes share a commit and each device gets them in one frame, so the
cost per delivery at the largest steps can fall below the line. After the
ramp (not in quick mode) the devices stay idle for one ping interval and a
second: the server's CPU per connected device per second is what keep-alive
pings cost.

**Keys** (1,000, 10,000, 100,000, 1,000,000; quick mode stops at 100,000):
the database file is filled straight with SQLite in the server's schema
(:mod:`tests.perf.registers`), then the server starts on it (spawn to its
listening line, interpreter start-up included, in wall time and in the
server's CPU time, the steadier on a busy machine), 100 devices connect with an
up-to-date ``since``, and the writer overwrites random existing keys at the
same rate. Per step: start time, CPU per write and RSS after the writes. The
ceiling of CPU per write is the same figure at 1,000 keys in the same run
(target: at most 1.5×, a write's cost does not grow with the keys); start
time (the target applies to its CPU time) and RSS stand beside the targets
of ``tests.perf.catchup``.

Each process may open as many files as the hard limit allows (the benchmark
raises its soft limit, and its children inherit it); the limit is printed,
as each connection costs the server one file descriptor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.perf._bare import RawClient, connect_raw
from tests.perf._load import ACK, ERROR, SNAPSHOT, Load
from tests.perf.catchup import TARGET_RSS_MIB, TARGET_START_S
from tests.perf.cli import bench_parser, progress, verdict
from tests.perf.registers import create_database, fill_registers
from tests.perf.report import Row, print_table
from tests.perf.server import Server, relay_server, subprocess_server

__all__ = [
    "Step",
    "Writer",
    "curve_table",
    "fd_limit",
    "fit",
    "load_workers",
    "main",
    "measure_writes",
    "run",
    "server_on",
    "set_frame",
    "write_at_rate",
]

DEVICE_STEPS = (100, 500, 1000, 2000, 5000)
QUICK_DEVICE_STEPS = (100, 500, 1000)
KEY_STEPS = (1_000, 10_000, 100_000, 1_000_000)
QUICK_KEY_STEPS = (1_000, 10_000, 100_000)
RATE = 20.0
"""Writes per second of the one writer."""
SERVER_CONNECTIONS = 10_000
"""The server's default ``--max-connections``."""
KEY_DEVICES = 100
"""Devices connected while the keys vary."""
WRITER = 999_999
"""The writer's device id (the load's devices count from 1)."""
KEY_TARGET = 1.5
"""CPU per write at most this many times the same at 1,000 keys."""
IDLE = 21.0
"""Seconds the devices stay idle after the ramp: one ping interval (20 s) and a bit."""
ACK_LIMIT = 60.0
"""Seconds the writer waits for its acks."""


def fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def load_workers() -> Load:
    """Load workers, one per core (at least two), free to run on any core."""
    return Load(None, processes=max(2, len(os.sched_getaffinity(0))))


class Writer:
    """One connection of this process that writes and counts its acks.

    It joins the spaces it writes in (one hello each, all with
    ``batch_pushes``) and waits for their snapshots; an ``error`` from the
    server fails the wait for acks at once rather than at its timeout.
    """

    def __init__(self, device: int = WRITER) -> None:
        self.device = device
        self.acks = self.sent = self.snapshots = 0
        self.error = b""
        self._client: RawClient | None = None
        self._changed = asyncio.Event()

    def _payload(self, payload: bytes) -> None:
        self.acks += payload.count(ACK)
        if SNAPSHOT in payload and b'"more":true' not in payload:
            self.snapshots += 1
        if ERROR in payload and not self.error:
            self.error = payload
        self._changed.set()

    async def _until(self, done: Callable[[], bool], what: str) -> None:
        try:
            async with asyncio.timeout(ACK_LIMIT):
                while not done():
                    if self.error:
                        raise RuntimeError(f"writer {self.device}: {self.error.decode()}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"writer {self.device}: no {what} in {ACK_LIMIT:.0f} s") from None

    async def open(self, url: str, since: int, spaces: Sequence[str] = ()) -> None:
        """Connect and join ``spaces`` (none: the default space without naming it)."""
        self._client = await connect_raw(url, self._payload)
        for space in spaces or [""]:
            named = b',"space":%s' % json.dumps(space).encode() if space else b""
            self._client.send_text(
                b'{"type":"hello","device_id":%d,"since":%d,"batch_pushes":true%s}'
                % (self.device, since, named)
            )
        joined = max(1, len(spaces))
        await self._until(lambda: self.snapshots >= joined, "snapshots")

    def send(self, frame: bytes) -> None:
        assert self._client is not None
        self.sent += 1
        self._client.send_text(frame)

    async def acked(self) -> None:
        """Wait until every set sent so far is acked."""
        await self._until(lambda: self.acks >= self.sent, "acks")

    async def write(self, frames: Sequence[bytes], rate: float) -> None:
        """Send ``frames`` (sets) at ``rate`` per second; returns once all are acked."""
        await write_at_rate([(self, frame) for frame in frames], rate)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


async def write_at_rate(sends: Sequence[tuple[Writer, bytes]], rate: float) -> None:
    """Send each set through its writer at ``rate`` per second in all; returns once
    every one is acked."""
    started = time.perf_counter()
    for n, (writer, frame) in enumerate(sends):
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        writer.send(frame)
    writers = list({id(writer): writer for writer, _ in sends}.values())
    await asyncio.gather(*(writer.acked() for writer in writers))


def set_frame(seq: int, key: str, space: str = "") -> bytes:
    """The writer's ``seq``-th set, of ``key`` (in ``space`` when given)."""
    named = b',"space":%s' % json.dumps(space).encode() if space else b""
    return b'{"type":"set","request_id":%d,"key":"%s","value":%s,"local_revision":%d%s}' % (
        seq,
        key.encode(),
        b"true" if seq % 2 else b"false",
        seq,
        named,
    )


@dataclass(frozen=True)
class Step:
    """One step of a curve: the server's cost per write at a size."""

    size: int
    writes: int
    cpu_per_write_us: float
    rss_kib: int
    delivered: int
    """Devices that got exactly the writes."""
    devices: int
    load_busy: float
    pushes_per_frame: float
    """Above 1: writes came close enough to share a commit (and a frame per device)."""
    start_s: float = 0.0
    start_cpu_s: float = 0.0
    """The server's CPU time up to its listening line (steadier than ``start_s``)."""

    @property
    def cpu_per_delivery_us(self) -> float:
        return self.cpu_per_write_us / max(1, self.devices)


async def measure_writes(
    load: Load, server: Server, writer: Writer, frames: Sequence[bytes], devices: int, size: int
) -> Step:
    """Write ``frames`` at :data:`RATE` while the load counts pushes: the step's figures
    (all but its RSS and start time)."""
    await load.arm_listen({"default": len(frames)})
    before = server.cpu_seconds()
    await writer.write(frames, RATE)
    listened = await load.listened()
    cpu = server.cpu_seconds() - before
    return Step(
        size,
        len(frames),
        cpu / len(frames) * 1e6,
        0,
        devices - len(listened.wrong),
        devices,
        listened.result.load_busy,
        listened.pushes_per_frame,
    )


@contextlib.asynccontextmanager
async def server_on(
    db: Path, max_connections: int | None = None
) -> AsyncIterator[tuple[Server, float, float]]:
    """``python -m syncserver`` with default settings on ``db`` (but ``max_connections``
    when given); yields it, the seconds from spawning it to its listening line, and the
    CPU seconds it spent meanwhile."""
    started = time.perf_counter()
    args = ["-m", "syncserver", "--port", "0", "--db", str(db)]
    if max_connections is not None:
        args += ["--max-connections", str(max_connections)]
    async with subprocess_server(*args, pin=False, probe=True) as server:
        yield server, time.perf_counter() - started, server.cpu_seconds()


async def _device_ramp(
    load: Load, server: Server, steps: Sequence[int], writes: int, idle: float
) -> tuple[list[Step], float]:
    """The steps, and the server's CPU µs per connected device per second while the
    devices are idle for ``idle`` seconds after the last step (0: not measured)."""
    writer = Writer()
    await writer.open(server.url, 0)
    connected, seq, results = 0, 0, []
    idle_us = 0.0
    try:
        for devices in steps:
            await load.connect(server.url, devices - connected, batched=True, first=connected + 1)
            connected = devices
            rss = server.rss_kib()
            frames = [
                set_frame(seq + n, f"like/item-{(seq + n) % 1000:04d}") for n in range(writes)
            ]
            seq += writes
            step = await measure_writes(load, server, writer, frames, devices, devices)
            results.append(dataclasses.replace(step, rss_kib=rss))
        if idle:
            await load.arm_listen({}, drain=idle)  # reads, answers pings, expects no push
            before = server.cpu_seconds()
            listened = await load.listened()
            idle_us = (server.cpu_seconds() - before) / (idle * connected) * 1e6
            if listened.wrong:
                raise RuntimeError(f"{len(listened.wrong)} idle devices got pushes")
    finally:
        writer.close()
        await load.close_connections()
    return results, idle_us


async def _keys_step(load: Load, keys: int, writes: int, tmp: Path) -> Step:
    db = tmp / f"keys-{keys}.sqlite3"
    create_database(db)
    newest = await asyncio.to_thread(fill_registers, db, keys)
    async with server_on(db) as (server, start_s, start_cpu_s):
        writer = Writer()
        await writer.open(server.url, newest)
        try:
            await load.connect(server.url, KEY_DEVICES, batched=True, since=newest)
            picks = random.Random(keys).choices(range(keys), k=writes)
            frames = [set_frame(n + 1, f"k/{key:07d}") for n, key in enumerate(picks)]
            step = await measure_writes(load, server, writer, frames, KEY_DEVICES, keys)
            rss = server.rss_kib()
        finally:
            writer.close()
            await load.close_connections()
    db.unlink()
    return dataclasses.replace(step, rss_kib=rss, start_s=start_s, start_cpu_s=start_cpu_s)


def _busy(step: Step, label: str) -> tuple[str, ...]:
    if step.load_busy <= 0.8:
        return ()
    return (f"the load generator was {step.load_busy:.0%} busy during the {label} run",)


UNBATCHED = 1.05
"""Pushes per frame up to which a step's writes each had a commit (and a frame) alone."""


def fit(steps: Sequence[Step]) -> tuple[float, float] | None:
    """Least-squares line CPU per write = fixed + per_delivery × devices over the steps
    whose writes were not batched (a push per frame, so a send per delivery); returns
    (fixed µs, per_delivery µs), or None with fewer than two such steps."""
    alone = [step for step in steps if step.pushes_per_frame <= UNBATCHED]
    if len({step.devices for step in alone}) < 2:
        return None
    xs = [float(step.devices) for step in alone]
    ys = [step.cpu_per_write_us for step in alone]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    return mean_y - slope * mean_x, slope


def _device_rows(ours: list[Step], relay: list[Step]) -> list[Row]:
    rows: list[Row] = []
    for step, bare in zip(ours, relay, strict=True):
        warnings = _busy(step, "optisync") + _busy(bare, "relay")
        rows.append(
            Row(
                f"curve: server CPU per write, {step.devices:,} devices",
                step.cpu_per_write_us,
                "µs",
                bare.cpu_per_write_us,
                None,
                lower_is_better=True,
                warnings=warnings,
            )
        )
        rows.append(
            Row(
                f"curve: server RSS, {step.devices:,} devices",
                step.rss_kib / 1024,
                "MiB",
                bare.rss_kib / 1024,
                None,
                lower_is_better=True,
            )
        )
        rows.append(
            Row(
                f"curve: devices that got exactly the writes, {step.devices:,} devices",
                step.delivered,
                "devices",
                step.devices,
                1.0,
            )
        )
    first, last = ours[0], ours[-1]
    bare_first, bare_last = relay[0], relay[-1]
    added = max(1, last.devices - first.devices)
    rows.append(
        Row(
            f"curve: server RSS per device ({first.devices:,} → {last.devices:,})",
            (last.rss_kib - first.rss_kib) / added,
            "KiB",
            (bare_last.rss_kib - bare_first.rss_kib) / added,
            None,
            lower_is_better=True,
        )
    )
    rows.append(
        Row(
            f"curve: server CPU per delivery, {last.devices:,} devices",
            last.cpu_per_delivery_us,
            "µs",
            bare_last.cpu_per_delivery_us,
            None,
            lower_is_better=True,
        )
    )
    line, bare_line = fit(ours), fit(relay)
    if line is None:
        return rows
    fixed, slope = line
    bare_fixed, bare_slope = bare_line if bare_line is not None else (None, None)
    rows.append(
        Row(
            "curve: server CPU per delivery, a push per frame (slope)",
            slope,
            "µs",
            bare_slope,
            None,
            lower_is_better=True,
        )
    )
    rows.append(
        Row(
            "curve: server CPU per write before its deliveries (intercept)",
            fixed,
            "µs",
            bare_fixed,
            None,
            lower_is_better=True,
        )
    )
    return rows


def _key_rows(steps: list[Step]) -> list[Row]:
    base = steps[0]
    rows: list[Row] = []
    for step in steps:
        rows.append(
            Row(
                f"curve: server CPU per write, {step.size:,} keys ({KEY_DEVICES} devices)",
                step.cpu_per_write_us,
                "µs",
                base.cpu_per_write_us,
                KEY_TARGET,
                lower_is_better=True,
                warnings=_busy(step, "optisync"),
            )
        )
        rows.append(
            Row(
                f"curve: server start, CPU time to listening, {step.size:,} keys",
                step.start_cpu_s,
                "s",
                TARGET_START_S,
                1.0,
                lower_is_better=True,
            )
        )
        rows.append(
            Row(
                f"curve: server start, wall time to listening, {step.size:,} keys",
                step.start_s,
                "s",
                TARGET_START_S,
                None,
                lower_is_better=True,
            )
        )
        rows.append(
            Row(
                f"curve: server RSS after the writes, {step.size:,} keys",
                step.rss_kib / 1024,
                "MiB",
                TARGET_RSS_MIB,
                1.0,
                lower_is_better=True,
            )
        )
        rows.append(
            Row(
                f"curve: devices that got exactly the writes, {step.size:,} keys",
                step.delivered,
                "devices",
                step.devices,
                1.0,
            )
        )
    return rows


def _line(line: tuple[float, float] | None) -> str:
    if line is None:
        return "not fitted: fewer than two steps had a push per frame"
    fixed, slope = line
    return f"{fixed:,.0f} µs + {slope:.2f} µs × devices"


def curve_table(ours: list[Step], relay: list[Step], keys: list[Step], limit: int) -> str:
    """The curve as one markdown table per axis, with the per-connection costs."""
    lines = [
        f"open files per process: {limit:,} (each device is one on the server)",
        "",
        "| devices | CPU/write µs (relay) | CPU/delivery µs (relay) | RSS MiB (relay) |"
        " pushes/frame (relay) | delivered | load busy |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for step, bare in zip(ours, relay, strict=True):
        lines.append(
            f"| {step.devices:,} | {step.cpu_per_write_us:,.0f} ({bare.cpu_per_write_us:,.0f}) "
            f"| {step.cpu_per_delivery_us:.2f} ({bare.cpu_per_delivery_us:.2f}) "
            f"| {step.rss_kib / 1024:.1f} ({bare.rss_kib / 1024:.1f}) "
            f"| {step.pushes_per_frame:.2f} ({bare.pushes_per_frame:.2f}) "
            f"| {step.delivered:,}/{step.devices:,} | {step.load_busy:.0%} |"
        )
    lines += [
        "",
        f"CPU per write, a push per frame ≈ {_line(fit(ours))} (relay: {_line(fit(relay))})",
    ]
    lines += [
        "",
        "| keys | start s (CPU s) | CPU/write µs | RSS MiB | delivered |",
        "|---:|---:|---:|---:|---:|",
    ]
    for step in keys:
        lines.append(
            f"| {step.size:,} | {step.start_s:.2f} ({step.start_cpu_s:.2f}) "
            f"| {step.cpu_per_write_us:,.0f} "
            f"| {step.rss_kib / 1024:.1f} | {step.delivered}/{step.devices} |"
        )
    return "\n".join(lines)


async def _measure(
    quick: bool, report: Callable[[str], None], devices: Sequence[int] | None = None
) -> list[Row]:
    limit = fd_limit()
    device_steps = tuple(devices or (QUICK_DEVICE_STEPS if quick else DEVICE_STEPS))
    # The server's default limit is 10,000 connections: raised only for a longer ramp.
    raised = device_steps[-1] + 100 if device_steps[-1] + 1 > SERVER_CONNECTIONS else None
    key_steps = QUICK_KEY_STEPS if quick else KEY_STEPS
    writes = 20 if quick else 40
    idle = 0.0 if quick else IDLE
    if limit < device_steps[-1] + 100:
        raise RuntimeError(f"open-file limit {limit} is too low for {device_steps[-1]} devices")
    async with load_workers() as load:
        async with relay_server(pin=False, probe=True) as relay:
            ceiling, idle_relay = await _device_ramp(load, relay, device_steps, writes, idle)
        with tempfile.TemporaryDirectory(prefix="optisync-curve-") as tmp:
            async with server_on(Path(tmp) / "devices.sqlite3", raised) as (server, _, _):
                ours, idle_ours = await _device_ramp(load, server, device_steps, writes, idle)
            keys = [await _keys_step(load, count, writes, Path(tmp)) for count in key_steps]
    report(curve_table(ours, ceiling, keys, limit))
    rows = _device_rows(ours, ceiling)
    if idle:
        rows.append(
            Row(
                f"curve: server CPU per idle device (keep-alive pings), {ours[-1].devices:,}"
                " devices",
                idle_ours,
                "µs/s",
                idle_relay,
                None,
                lower_is_better=True,
            )
        )
    return rows + _key_rows(keys)


def run(quick: bool = False, devices: Sequence[int] | None = None) -> list[Row]:
    """Ramp devices (``devices``: the steps), then keys, on a sync server; devices on
    the relay too."""
    return asyncio.run(_measure(quick, lambda text: print(text + "\n", flush=True), devices))


def _steps(text: str) -> tuple[int, ...]:
    try:
        steps = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of device counts: {text!r}") from None
    if not steps or any(b <= a for a, b in itertools.pairwise(steps)) or steps[0] < 1:
        raise argparse.ArgumentTypeError(f"device counts must rise from 1 up: {text!r}")
    return steps


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_parser("python -m tests.perf.curve", __doc__)
    parser.add_argument(
        "--devices",
        type=_steps,
        metavar="N,N,...",
        help="the ramp's device counts (default 100,500,1000,2000,5000)",
    )
    args = parser.parse_args(argv)
    with progress("curve"):
        rows = run(args.quick, args.devices)
    print_table("scale curve", rows)
    return verdict(rows)


if __name__ == "__main__":
    sys.exit(main())
