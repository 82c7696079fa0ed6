"""Spaces on Redis: what a write costs a server process that has none of its space's devices.

    python -m tests.perf.spaces_redis [--quick]

Two, then four ``python -m syncserver --backend redis://...`` processes
(their exact CPU time read by :mod:`tests.perf._probe`) share one
``redis-server`` (``appendfsync always``, as :mod:`tests.perf.server_redis`).
The first, A, carries 10 spaces × 10 devices and the writer; each other one
carries 100 devices in 10 other spaces, which nobody writes. Redis sends a
space's writes only to the processes following it (those with a connection
in it), so the idle processes should not even receive A's writes: their CPU
per write is the check that they do not, and that one more server on the
same Redis costs the others nothing per write of spaces it does not carry.
The writer writes into A's spaces at random, 50 and then 1,000 writes/s,
4 s each (quick: 2 s), and the load checks that A's devices got exactly
their space's writes and the others none.

Figures, at each rate and number of processes: an idle process's CPU per
write (the mean of the idle ones; target: at most a tenth) beside A's (the
process that commits the write and pushes it to 10 devices and its writer),
each with the process' own idle CPU (its timers, measured for 2 s before the
writes) subtracted, and the redis-server's own CPU per write (``INFO cpu``)
beside A's: it should not grow with processes that do not follow the written
spaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator

from tests.perf._load import Load
from tests.perf.cli import bench_main
from tests.perf.curve import WRITER, Writer, fd_limit, load_workers, set_frame, write_at_rate
from tests.perf.report import Row
from tests.perf.server import Server, subprocess_server
from tests.perf.server_redis import redis_server
from tests.perf.spaces import DEVICES_PER_SPACE, RATES, SECONDS, space_name

__all__ = ["redis_cpu_seconds", "run"]

SPACES = 10
"""Spaces on each process."""
IDLE_SECONDS = 2.0
"""How long each process' idle CPU is measured before the writes."""
IDLE_TARGET = 0.1
"""Most an idle process may spend per write, as a share of the serving process'
(a process that received every write spent 0.2–0.3 of it)."""
PROCESSES = (2, 4)
"""Server processes on the one Redis: the serving one and the idle ones."""


async def redis_cpu_seconds(url: str) -> float:
    """The redis-server's own CPU time so far (``INFO cpu``: user + system, µs precision)."""
    host, port = url.removeprefix("redis://").split("/")[0].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"INFO cpu\r\n")
        header = await reader.readline()  # $<length>
        body = (await reader.readexactly(int(header[1:]) + 2)).decode()
    finally:
        writer.close()
    fields = dict(line.split(":", 1) for line in body.splitlines() if ":" in line)
    return float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"])


@contextlib.asynccontextmanager
async def _processes(count: int) -> AsyncIterator[tuple[str, list[Server]]]:
    async with redis_server() as backend, contextlib.AsyncExitStack() as stack:
        args = ("-m", "syncserver", "--port", "0", "--backend", backend)
        servers = [
            await stack.enter_async_context(subprocess_server(*args, pin=False, probe=True))
            for _ in range(count)
        ]
        yield backend, servers


async def _idle_rates(servers: list[Server]) -> list[float]:
    """Each process' CPU seconds per second while nothing is written (its timers)."""
    before, started = [server.cpu_seconds() for server in servers], time.monotonic()
    await asyncio.sleep(IDLE_SECONDS)  # measuring idle time, not waiting for an event
    wall = time.monotonic() - started
    return [
        (server.cpu_seconds() - cpu) / wall for server, cpu in zip(servers, before, strict=True)
    ]


async def _measure(load: Load, processes: int, seconds: float) -> list[Row]:
    """A serving process and ``processes - 1`` idle ones on one Redis; rows per rate."""
    names = [space_name(n) for n in range(SPACES * processes)]
    serving = names[:SPACES]
    per_process = SPACES * DEVICES_PER_SPACE
    rng = random.Random(processes)
    rows: list[Row] = []
    async with _processes(processes) as (backend, servers):
        a, idle = servers[0], servers[1:]
        writer = Writer(WRITER)
        await writer.open(a.url, 0, serving)
        try:
            for n, server in enumerate(servers):
                await load.connect(
                    server.url,
                    per_process,
                    batched=True,
                    first=n * per_process + 1,
                    space_of=lambda d: names[(d - 1) // DEVICES_PER_SPACE],
                )
            idle_rates = await _idle_rates(servers)
            seq = 0
            for rate in RATES:
                writes = int(rate * seconds)
                picks = [serving[rng.randrange(SPACES)] for _ in range(writes)]
                sends = [
                    (writer, set_frame(seq + n + 1, f"k/{(seq + n) % 10_000:05d}", space))
                    for n, space in enumerate(picks)
                ]
                seq += writes
                await load.arm_listen(dict(Counter(picks)))
                before = [server.cpu_seconds() for server in servers]
                before_redis = await redis_cpu_seconds(backend)
                started = time.monotonic()
                await write_at_rate(sends, rate)
                listened = await load.listened()
                wall = time.monotonic() - started
                spent = [
                    (server.cpu_seconds() - cpu - rate_idle * wall) / writes * 1e6
                    for server, cpu, rate_idle in zip(servers, before, idle_rates, strict=True)
                ]
                cpu_redis = (await redis_cpu_seconds(backend) - before_redis) / writes * 1e6
                cpu_a, cpu_idle = spent[0], sum(spent[1:]) / len(idle)
                label = f"{processes} processes, {rate:,.0f} writes/s"
                rows.append(
                    Row(
                        f"spaces on Redis: redis-server CPU per write, {label}"
                        " (ceiling: the serving process)",
                        cpu_redis,
                        "µs",
                        cpu_a,
                        None,
                        lower_is_better=True,
                    )
                )
                rows.append(
                    Row(
                        f"spaces on Redis: CPU per write in a process without its space's"
                        f" devices, {label} (ceiling: the serving process)",
                        cpu_idle,
                        "µs",
                        cpu_a,
                        IDLE_TARGET,
                        lower_is_better=True,
                    )
                )
                rows.append(
                    Row(
                        f"spaces on Redis: devices with exactly their space's writes, {label}",
                        listened.connections - len(listened.wrong),
                        "devices",
                        processes * per_process,
                        1.0,
                    )
                )
        finally:
            writer.close()
            await load.close_connections()
    return rows


async def _run(quick: bool) -> list[Row]:
    fd_limit()
    seconds = SECONDS / 2 if quick else SECONDS
    rows: list[Row] = []
    async with load_workers() as load:
        for processes in PROCESSES:
            rows += await _measure(load, processes, seconds)
    return rows


def run(quick: bool = False) -> list[Row]:
    """Two processes on one Redis; the CPU a foreign write costs the idle one."""
    return asyncio.run(_run(quick))


if __name__ == "__main__":
    sys.exit(bench_main("spaces_redis", "spaces on Redis", run, __doc__))
