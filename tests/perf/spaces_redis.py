"""Spaces on Redis: what a write costs a server process that has none of its space's devices.

    python -m tests.perf.spaces_redis [--quick]

Two ``python -m syncserver --backend redis://...`` processes (A and B, their
exact CPU time read by :mod:`tests.perf._probe`) share one ``redis-server``
(``appendfsync always``, as :mod:`tests.perf.server_redis`). A carries 10
spaces × 10 devices and the writers; B carries 100 devices in 10 other
spaces, which nobody writes. Every write goes through Redis's one ordered
log, so B receives and decodes each of them without a device to send it to:
that is the per-process price of one more server on the same Redis, paid on
the global write rate. The writers write into A's spaces at random, 50 and
then 1,000 writes/s, 4 s each (quick: 2 s), and the load checks that A's
devices got exactly their space's writes and B's none.

Figures, at each rate: B's CPU per write beside A's (the process that
commits the write and pushes it to 10 devices and its writer), and the
redis-server's own CPU per write (``INFO cpu``) beside A's.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
from collections import Counter
from collections.abc import AsyncIterator

from tests.perf.cli import bench_main
from tests.perf.curve import WRITER, Writer, fd_limit, load_workers, set_frame, write_at_rate
from tests.perf.report import Row
from tests.perf.server import Server, subprocess_server
from tests.perf.server_redis import redis_server
from tests.perf.spaces import DEVICES_PER_SPACE, RATES, SECONDS, space_name

__all__ = ["redis_cpu_seconds", "run"]

SPACES = 10
"""Spaces on each process."""


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
async def _two_processes() -> AsyncIterator[tuple[str, Server, Server]]:
    async with redis_server() as backend, contextlib.AsyncExitStack() as stack:
        args = ("-m", "syncserver", "--port", "0", "--backend", backend)
        a = await stack.enter_async_context(subprocess_server(*args, pin=False, probe=True))
        b = await stack.enter_async_context(subprocess_server(*args, pin=False, probe=True))
        yield backend, a, b


async def _run(quick: bool) -> list[Row]:
    fd_limit()
    seconds = SECONDS / 2 if quick else SECONDS
    serving = [space_name(n) for n in range(SPACES)]
    idle = [space_name(SPACES + n) for n in range(SPACES)]
    per_process = SPACES * DEVICES_PER_SPACE
    rng = random.Random(1)
    rows: list[Row] = []
    async with load_workers() as load, _two_processes() as (backend, a, b):
        writer = Writer(WRITER)
        await writer.open(a.url, 0, serving)
        try:
            await load.connect(
                a.url,
                per_process,
                batched=True,
                space_of=lambda d: serving[(d - 1) // DEVICES_PER_SPACE],
            )
            await load.connect(
                b.url,
                per_process,
                batched=True,
                first=per_process + 1,
                space_of=lambda d: idle[(d - per_process - 1) // DEVICES_PER_SPACE],
            )
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
                before_a, before_b = a.cpu_seconds(), b.cpu_seconds()
                before_redis = await redis_cpu_seconds(backend)
                await write_at_rate(sends, rate)
                listened = await load.listened()
                cpu_a = (a.cpu_seconds() - before_a) / writes * 1e6
                cpu_b = (b.cpu_seconds() - before_b) / writes * 1e6
                cpu_redis = (await redis_cpu_seconds(backend) - before_redis) / writes * 1e6
                rows.append(
                    Row(
                        f"spaces on Redis: redis-server CPU per write, 2 subscribers,"
                        f" {rate:,.0f} writes/s (ceiling: the serving process)",
                        cpu_redis,
                        "µs",
                        cpu_a,
                        None,
                        lower_is_better=True,
                    )
                )
                rows.append(
                    Row(
                        f"spaces on Redis: CPU per write in a process without its space's devices,"
                        f" {rate:,.0f} writes/s (ceiling: the serving process)",
                        cpu_b,
                        "µs",
                        cpu_a,
                        None,
                        lower_is_better=True,
                    )
                )
                rows.append(
                    Row(
                        f"spaces on Redis: devices with exactly their space's writes,"
                        f" {rate:,.0f} writes/s",
                        listened.connections - len(listened.wrong),
                        "devices",
                        2 * per_process,
                        1.0,
                    )
                )
        finally:
            writer.close()
            await load.close_connections()
    return rows


def run(quick: bool = False) -> list[Row]:
    """Two processes on one Redis; the CPU a foreign write costs the idle one."""
    return asyncio.run(_run(quick))


if __name__ == "__main__":
    sys.exit(bench_main("spaces_redis", "spaces on Redis", run, __doc__))
