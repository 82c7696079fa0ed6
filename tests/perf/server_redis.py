"""The server benchmark on the Redis backend with two syncserver processes, beside SQLite.

    python -m tests.perf.server_redis [--quick]

The same load as :mod:`tests.perf.server` (set→ack round trips, push fan-out),
spread round-robin over two ``syncserver --backend redis://...`` processes
sharing one ``redis-server`` (``appendonly yes``, ``appendfsync always``: the
setting under which an ack means what it means on SQLite ``synchronous=FULL``).
Each row's ceiling column is the same figure for one SQLite process with the
default ``synchronous=FULL``, measured in the same run: the ratio says what the
Redis backend costs or gains. On a 2-core machine the Redis server, both
syncserver processes and the load share two cores, so expect the ratio to be
lower here than on a machine with a core for each. The server CPU column
adds up both syncserver processes (not Redis).

``run(quick)`` returns the rows for ``python -m tests.perf`` to aggregate.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import sys
import tempfile
from collections.abc import AsyncIterator

from tests.perf.cli import bench_main
from tests.perf.report import Row
from tests.perf.server import (
    Measured,
    Server,
    fan_out,
    load_processes,
    round_trips,
    subprocess_server,
    sync_server,
)

__all__ = ["main", "run"]

INSTANCES = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def redis_server() -> AsyncIterator[str]:
    """A throwaway durable redis-server; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = await asyncio.create_subprocess_exec(
            binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes", "--appendfsync", "always", "--dir", tmp,
            stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for _ in range(500):
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    break
                await asyncio.sleep(0.01)  # poll while it starts
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.kill()
            await proc.wait()


@contextlib.asynccontextmanager
async def redis_instances() -> AsyncIterator[list[Server]]:
    """Two syncserver processes on a fresh Redis."""
    async with redis_server() as backend, contextlib.AsyncExitStack() as stack:
        servers = []
        for _ in range(INSTANCES):
            args = ("-m", "syncserver", "--port", "0", "--backend", backend)
            # Unpinned, like the SQLite process beside it: Redis needs a core too.
            servers.append(await stack.enter_async_context(subprocess_server(*args, pin=False)))
        yield servers


def _row(name: str, ours: Measured, ceiling: Measured, unit: str) -> Row:
    return Row(
        name,
        ours.rate,
        unit,
        ceiling.rate,
        None,
        cpu_us=ours.cpu_us,
        ceiling_cpu_us=ceiling.cpu_us,
        warnings=ours.warnings("Redis") + ceiling.warnings("SQLite"),
    )


async def _run(quick: bool) -> list[Row]:
    seconds = 0.5 if quick else 2.0
    deliveries = 60_000 if quick else 300_000
    rows: list[Row] = []
    suffix = f", Redis backend, {INSTANCES} processes"

    # Unpinned: Redis and two server processes need every core, so the load shares them.
    async with load_processes() as load:
        for writers in (1, 50):
            for batched in (False, True) if writers > 1 else (False,):
                async with sync_server(pin=False) as sqlite:
                    ceiling = await round_trips(load, sqlite, writers, seconds, batched)
                async with redis_instances() as servers:
                    value = await round_trips(load, servers, writers, seconds, batched)
                name = f"set→ack, {writers} writer{'s' if writers > 1 else ''}"
                if writers > 1:
                    name += ", batched pushes" if batched else ", push per write"
                rows.append(_row(name + suffix, value, ceiling, "round trips/s"))

        for clients in (10, 100, 1000):
            for batched in (False, True):
                total = deliveries * (3 if batched else 1)
                async with sync_server(pin=False) as sqlite:
                    ceiling = await fan_out(load, sqlite, clients, total, batched)
                async with redis_instances() as servers:
                    value = await fan_out(load, servers, clients, total, batched)
                name = f"push fan-out, {clients} clients" + (", batched" if batched else "")
                rows.append(_row(name + suffix, value, ceiling, "deliveries/s"))
    return rows


def run(quick: bool = False) -> list[Row]:
    """Run the benchmark; each row's ceiling is one SQLite process under the same load."""
    return asyncio.run(_run(quick))


def main() -> int:
    title = "Redis backend, 2 processes; ceiling = one SQLite process, same load"
    return bench_main("server_redis", title, run, __doc__)


if __name__ == "__main__":
    sys.exit(main())
