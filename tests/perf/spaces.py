"""Spaces: a write reaches only its space's devices, at a cost that does not grow with spaces.

    python -m tests.perf.spaces [--quick]

For S = 1 (the ceiling), 10, 100 and 500 spaces (quick mode: 1, 10, 100), a
fresh ``python -m syncserver`` (default settings, SQLite, its exact CPU time read
by :mod:`tests.perf._probe`) gets 10 devices per space: connections of the
load generator (:mod:`tests.perf._load`) that join their one space with
``batch_pushes`` and then only read, answering pings. Writers (connections
of this process, each in up to 50 spaces, below the default limit of 64 per
connection) write into spaces picked at random for 4 s at 50 writes/s in all
(each write a commit of its own), then at 1,000 writes/s (the group commit
shares commits between writes), and wait for their acks. The workers count
each device's pushes and the pushes that name its space.

Figures:

* **server CPU per write** at each S and rate, beside its ceiling: the same
  writes into 1 space × 10 devices in the same run, the same write with the
  same recipients (10 devices and a writer; at 1,000 writes/s one space's
  devices get more of a commit's pushes in one frame than S spaces' do).
  Target from the issue: the cost per write does not depend on the number
  of spaces (at most 1.5× the ceiling; the S-space runs also carry S × 10
  connected devices, whose keep-alive pings the server answers meanwhile);
* **isolation and delivery**: devices that got exactly their space's writes
  and no other space's (target: all of them);
* **per-connection RSS**: the server's RSS growth from 1 space to the largest
  S, per device added;
* **a model** of 10,000 spaces × 10 devices (100,000 devices) on one server
  process, from those measured costs: its RSS, and the writes per second one
  core carries at the CPU per write measured at the largest S and rate. Modelled, not measured: a
  process here may open only as many connections as its file limit (printed).
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.perf._load import Load
from tests.perf.cli import bench_main
from tests.perf.curve import (
    WRITER,
    Writer,
    fd_limit,
    load_workers,
    server_on,
    set_frame,
    write_at_rate,
)
from tests.perf.report import Row

__all__ = ["Run", "run", "space_name"]

SPACE_COUNTS = (10, 100, 500)
QUICK_SPACE_COUNTS = (10, 100)
DEVICES_PER_SPACE = 10
SPACES_PER_WRITER = 50
RATES = (50.0, 1000.0)
"""Writes per second, all writers together: each write a commit of its own; and
enough for the group commit to share a commit (and its fsync) between writes."""
SECONDS = 4.0
"""Seconds of writing at each rate (quick mode: half)."""
TARGET = 1.5
"""CPU per write at S spaces at most this many times the 1-space figure."""
MODEL_SPACES = 10_000


def space_name(index: int) -> str:
    return f"s{index:05d}"


@dataclass(frozen=True)
class Run:
    """One server's figures with ``spaces`` × 10 devices."""

    spaces: int
    devices: int
    rate: float
    writes: int
    cpu_per_write_us: float
    rss_kib: int
    isolated: int
    """Devices that got exactly their space's writes and none of another space."""
    load_busy: float
    pushes_per_frame: float


async def _measure(load: Load, spaces: int, seconds: float, tmp: Path) -> list[Run]:
    """One server with ``spaces`` × 10 devices; a :class:`Run` per rate."""
    names = [space_name(n) for n in range(spaces)]
    devices = spaces * DEVICES_PER_SPACE
    rng = random.Random(spaces)
    runs: list[Run] = []
    async with server_on(tmp / f"spaces-{spaces}.sqlite3") as (server, _, _):
        writers = [Writer(WRITER + n) for n in range(0, spaces, SPACES_PER_WRITER)]
        try:
            for n, writer in enumerate(writers):
                start = n * SPACES_PER_WRITER
                await writer.open(server.url, 0, names[start : start + SPACES_PER_WRITER])
            await load.connect(
                server.url,
                devices,
                batched=True,
                space_of=lambda device: names[(device - 1) // DEVICES_PER_SPACE],
            )
            rss = server.rss_kib()
            seq = 0
            for rate in RATES:
                writes = int(rate * seconds)
                picks = [rng.randrange(spaces) for _ in range(writes)]
                sends = [
                    (
                        writers[pick // SPACES_PER_WRITER],
                        set_frame(seq + n + 1, f"k/{(seq + n) % 10_000:05d}", names[pick]),
                    )
                    for n, pick in enumerate(picks)
                ]
                seq += writes
                expected = Counter(names[pick] for pick in picks)
                await load.arm_listen(dict(expected))
                before = server.cpu_seconds()
                await write_at_rate(sends, rate)
                listened = await load.listened()
                cpu = server.cpu_seconds() - before
                runs.append(
                    Run(
                        spaces,
                        devices,
                        rate,
                        writes,
                        cpu / writes * 1e6,
                        rss,
                        listened.connections - len(listened.wrong),
                        listened.result.load_busy,
                        listened.pushes_per_frame,
                    )
                )
        finally:
            for writer in writers:
                writer.close()
            await load.close_connections()
    return runs


def _rows(ceilings: Sequence[Run], runs: Sequence[Run], limit: int) -> list[Row]:
    by_rate = {one.rate: one for one in ceilings}
    rows: list[Row] = []
    for one in runs:
        ceiling = by_rate[one.rate]
        warnings: tuple[str, ...] = ()
        if one.load_busy > 0.8:
            warnings = (f"the load generator was {one.load_busy:.0%} busy",)
        rows.append(
            Row(
                f"spaces: server CPU per write, {one.spaces} spaces × {DEVICES_PER_SPACE} devices,"
                f" {one.rate:,.0f} writes/s (ceiling: 1 space)",
                one.cpu_per_write_us,
                "µs",
                ceiling.cpu_per_write_us,
                TARGET,
                lower_is_better=True,
                warnings=warnings,
            )
        )
        rows.append(
            Row(
                f"spaces: devices with exactly their space's writes, {one.spaces} spaces,"
                f" {one.rate:,.0f} writes/s",
                one.isolated,
                "devices",
                one.devices,
                1.0,
            )
        )
    smallest, largest = ceilings[0], runs[-1]
    per_device = (largest.rss_kib - smallest.rss_kib) / max(1, largest.devices - smallest.devices)
    rows.append(
        Row(
            f"spaces: server RSS per device ({smallest.devices} → {largest.devices:,} devices)",
            per_device,
            "KiB",
            None,
            None,
            lower_is_better=True,
        )
    )
    model_devices = MODEL_SPACES * DEVICES_PER_SPACE
    model_rss = (smallest.rss_kib + per_device * (model_devices - smallest.devices)) / 2**20
    rows.append(
        Row(
            f"spaces model: server RSS, {MODEL_SPACES:,} spaces × {DEVICES_PER_SPACE} devices"
            f" (modelled; open-file limit here {limit:,})",
            model_rss,
            "GiB",
            None,
            None,
            lower_is_better=True,
        )
    )
    busiest = max((one for one in runs if one.spaces == largest.spaces), key=lambda r: r.rate)
    rows.append(
        Row(
            f"spaces model: writes/s one server core carries at {DEVICES_PER_SPACE} recipients"
            f" (CPU per write at {busiest.spaces} spaces, {busiest.rate:,.0f} writes/s)",
            1e6 / busiest.cpu_per_write_us,
            "writes/s",
            None,
            None,
        )
    )
    return rows


def _table(runs: Sequence[Run]) -> str:
    lines = [
        "| spaces | devices | writes/s | CPU/write µs | RSS MiB | pushes/frame | isolated |"
        " load busy |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for one in runs:
        lines.append(
            f"| {one.spaces:,} | {one.devices:,} | {one.rate:,.0f} | {one.cpu_per_write_us:,.0f} "
            f"| {one.rss_kib / 1024:.1f} | {one.pushes_per_frame:.2f} "
            f"| {one.isolated:,}/{one.devices:,} | {one.load_busy:.0%} |"
        )
    return "\n".join(lines)


async def _run(quick: bool) -> list[Row]:
    limit = fd_limit()
    counts = QUICK_SPACE_COUNTS if quick else SPACE_COUNTS
    seconds = SECONDS / 2 if quick else SECONDS
    async with load_workers() as load:
        with tempfile.TemporaryDirectory(prefix="optisync-spaces-") as tmp:
            ceilings = await _measure(load, 1, seconds, Path(tmp))
            runs = [
                one for count in counts for one in await _measure(load, count, seconds, Path(tmp))
            ]
    print(_table([*ceilings, *runs]) + "\n", flush=True)
    return _rows(ceilings, runs, limit)


def run(quick: bool = False) -> list[Row]:
    """One server per number of spaces, and the 1-space ceiling."""
    return asyncio.run(_run(quick))


if __name__ == "__main__":
    sys.exit(bench_main("spaces", "spaces", run, __doc__))
