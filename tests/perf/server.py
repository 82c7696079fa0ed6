"""Benchmark of the sync server against a bare relay doing the same work, in one run.

    python -m tests.perf.server [--quick]

Every server runs in its own subprocess, pinned to one core (all its threads),
while the load runs pinned to the other cores, for the ceilings and for
optisync alike: left to the scheduler, the load generator and the server's
commit thread share cores unevenly and the figures measure that.

The ceiling of every figure is the bare relay (``python -m tests.perf._bare``)
under the same load: it frames and batches like the sync server (a batch's
pushes serialized once, one transport write per connection per batch, one
``pushes`` frame per batch for connections that ask for it) and makes each
batch durable the same way (a worker thread; ``fdatasync`` per batch under
``synchronous=FULL``), but does none of a sync server's own work. So a ratio
says what optisync's validation, revisions and bookkeeping cost, not what
framing or fsync cost.

The load (:mod:`tests.perf._load`) runs in worker processes and only counts
markers in the bytes it reads, so reading 1,000 clients' pushes stays cheap.
Each row also gives the server process's CPU time per operation (``utime +
stime`` from ``/proc``, which is what ``getrusage`` would report for it) for
optisync and for the ceiling; when the load generator was busy more than
80% of its cores during a measurement, the row says so and a warning line is
printed: that figure may measure the load, not the server. Figures:

* set→ack round trips/s, 1 and 50 writers each waiting for its ack before the
  next set; every write is also pushed to every connection, as the protocol
  says; 50 writers with a push frame per write and with batched pushes
  (``hello.batch_pushes``), ``synchronous=FULL`` (fsync per commit) and
  ``NORMAL``.
* push deliveries/s with 10, 100 and 1,000 connected clients, 8 of which
  write (16 sets in flight each); a frame per push, and batched.
* server memory per idle connection (RSS growth over 1,000 connections), next
  to the relay's.

``run(quick)`` returns the rows for ``python -m tests.perf`` to aggregate.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.perf._load import Load, LoadResult
from tests.perf._probe import CPU_FD
from tests.perf.cli import bench_main
from tests.perf.report import Row

__all__ = [
    "Measured",
    "Server",
    "fan_out",
    "load_processes",
    "main",
    "relay_server",
    "round_trips",
    "run",
    "subprocess_server",
    "sync_server",
]

ROOT = Path(__file__).resolve().parents[2]
WINDOW = 16
"""Sets each fan-out writer keeps in flight."""
FAN_OUT_WRITERS = 8
BUSY = 0.8
"""Load generator CPU use (share of its cores) above which a figure is suspect."""


# -- servers in subprocesses ------------------------------------------------

CORES = sorted(os.sched_getaffinity(0))
SERVER_CORE = CORES[0] if len(CORES) > 1 else None
LOAD_CORES = CORES[1:] if len(CORES) > 1 else CORES
"""The server runs on the first core, the load on the others (no pinning on one core)."""


def load_processes() -> Load:
    """The load generator: one worker process per load core."""
    return Load(LOAD_CORES, processes=len(LOAD_CORES))


def _pin(core: int | None) -> Callable[[], None] | None:
    if core is None:
        return None
    return lambda: os.sched_setaffinity(0, {core})


@dataclass
class Server:
    proc: asyncio.subprocess.Process
    url: str
    cpu_answers: int | None = None
    """Where a probed server (:mod:`tests.perf._probe`) writes its exact CPU time."""

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1])

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (every thread): exact
        for a probed server, else in the kernel's ticks (10 ms here)."""
        if self.cpu_answers is not None and self.proc.stdin is not None:
            self.proc.stdin.write(b"cpu\n")
            answer = b""
            while not answer.endswith(b"\n"):
                answer += os.read(self.cpu_answers, 64)
            return int(answer) / 1e9
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def subprocess_server(
    *args: str, pin: bool = True, probe: bool = False
) -> AsyncIterator[Server]:
    """``python ARGS`` (``-m MODULE ...``) until the block ends; ``pin`` keeps it on the
    server core; ``probe`` runs it under :mod:`tests.perf._probe` for exact CPU times."""
    # A line per device connecting would bury the tables (and cost the server CPU).
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPTISYNC_LOG_LEVEL": "warning"}
    answers, answer_to = os.pipe() if probe else (None, None)
    if probe:
        assert args[0] == "-m", "a probed server is a module"
        args = ("-m", "tests.perf._probe", *args[1:])
        env[CPU_FD] = str(answer_to)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdin=asyncio.subprocess.PIPE if probe else None,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=env,
        preexec_fn=_pin(SERVER_CORE) if pin else None,
        pass_fds=() if answer_to is None else (answer_to,),
    )
    if answer_to is not None:
        os.close(answer_to)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        url = line[line.index("ws://") :].split()[0]
        yield Server(proc, url, answers)
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)
        if answers is not None:
            os.close(answers)


@contextlib.asynccontextmanager
async def sync_server(synchronous: str = "FULL", pin: bool = True) -> AsyncIterator[Server]:
    """``python -m syncserver`` on a fresh SQLite file."""
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.sqlite3")
        args = ["-m", "syncserver", "--port", "0", "--db", db, "--synchronous", synchronous]
        async with subprocess_server(*args, pin=pin) as server:
            yield server


def relay_server(
    synchronous: str = "FULL", pin: bool = True, write_delay: float = 0.0, probe: bool = False
) -> contextlib.AbstractAsyncContextManager[Server]:
    """The bare relay (``python -m tests.perf._bare``) with the same durability."""
    args = ["-m", "tests.perf._bare", "--synchronous", synchronous]
    if write_delay:
        args += ["--write-delay", str(write_delay)]
    return subprocess_server(*args, pin=pin, probe=probe)


# -- measurements -------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """A rate, the server's CPU per operation behind it, and the load's share of its cores."""

    rate: float
    cpu_us: float
    load_busy: float

    def warnings(self, label: str) -> tuple[str, ...]:
        if self.load_busy <= BUSY:
            return ()
        return (
            f"the load generator was {self.load_busy:.0%} busy during the {label} run: "
            "that figure may measure the load, not the server",
        )


def _servers(servers: Server | Sequence[Server]) -> list[Server]:
    return [servers] if isinstance(servers, Server) else list(servers)


async def _measured(
    servers: Server | Sequence[Server], operation: Callable[[], object]
) -> Measured:
    chosen = _servers(servers)
    before = sum(server.cpu_seconds() for server in chosen)
    result = await operation()  # type: ignore[misc]
    assert isinstance(result, LoadResult)
    cpu = sum(server.cpu_seconds() for server in chosen) - before
    if result.load_busy > BUSY:
        print(
            f"warning: load generator {result.load_busy:.0%} busy on {result.load_cores} core(s)",
            file=sys.stderr,
            flush=True,
        )
    return Measured(result.ops / result.seconds, cpu / max(1, result.ops) * 1e6, result.load_busy)


async def round_trips(
    load: Load, servers: Server | Sequence[Server], writers: int, seconds: float, batched: bool
) -> Measured:
    """Set→ack round trips per second, each writer one set at a time."""
    urls = [server.url for server in _servers(servers)]
    devices = await load.connect(urls, writers, batched)
    try:
        return await _measured(servers, lambda: load.round_trips(devices, seconds))
    finally:
        await load.close_connections()


async def fan_out(
    load: Load, servers: Server | Sequence[Server], clients: int, total: int, batched: bool
) -> Measured:
    """Push deliveries per second to ``clients`` connections, 8 of which write."""
    urls = [server.url for server in _servers(servers)]
    devices = await load.connect(urls, clients, batched)
    writers = devices[: min(FAN_OUT_WRITERS, clients)]
    per_writer = max(10, total // (clients * len(writers)))
    expected = per_writer * len(writers)
    try:
        return await _measured(servers, lambda: load.fan_out(writers, per_writer, expected, WINDOW))
    finally:
        await load.close_connections()


async def memory_per_connection(load: Load, server: Server, count: int) -> float:
    """RSS growth of the server per idle connection, in KiB."""
    await load.connect(server.url, 20, batched=True)
    before = server.rss_kib()
    await load.connect(server.url, count, batched=True, first=21)
    after = server.rss_kib()
    await load.close_connections()
    return (after - before) / count


# -- the run ----------------------------------------------------------------


def _row(
    name: str,
    ours: Measured,
    ceiling: Measured,
    unit: str,
    target: float | None,
) -> Row:
    return Row(
        name,
        ours.rate,
        unit,
        ceiling.rate,
        target,
        cpu_us=ours.cpu_us,
        ceiling_cpu_us=ceiling.cpu_us,
        warnings=ours.warnings("optisync") + ceiling.warnings("ceiling"),
    )


async def _run(quick: bool) -> list[Row]:
    seconds = 0.5 if quick else 2.0
    deliveries = 60_000 if quick else 300_000
    rows: list[Row] = []
    async with load_processes() as load:
        for writers in (1, 50):
            variants = [("FULL", False), ("NORMAL", False)]
            if writers > 1:
                variants = [("FULL", False), ("FULL", True), ("NORMAL", True)]
            for synchronous, batched in variants:
                async with relay_server(synchronous) as relay:
                    ceiling = await round_trips(load, relay, writers, seconds, batched)
                async with sync_server(synchronous) as server:
                    ours = await round_trips(load, server, writers, seconds, batched)
                name = f"set→ack, {writers} writer{'s' if writers > 1 else ''}"
                if writers > 1:
                    name += ", batched pushes" if batched else ", push per write"
                name += f", synchronous={synchronous}"
                target = 0.5 if writers == 50 else None
                rows.append(_row(name, ours, ceiling, "round trips/s", target))

        for clients in (10, 100, 1000):
            for batched in (False, True):
                total = deliveries * (3 if batched else 1)
                async with relay_server() as relay:
                    ceiling = await fan_out(load, relay, clients, total, batched)
                async with sync_server() as server:
                    ours = await fan_out(load, server, clients, total, batched)
                name = f"push fan-out, {clients} clients" + (", batched" if batched else "")
                target = None if batched else 0.7
                rows.append(_row(name, ours, ceiling, "deliveries/s", target))

        count = 300 if quick else 1000
        async with relay_server() as relay:
            bare = await memory_per_connection(load, relay, count)
        async with sync_server() as server:
            value = await memory_per_connection(load, server, count)
    rows.append(Row("memory per idle connection (bare relay)", value, "KiB", bare, None, True))
    rows.append(Row("memory per idle connection (20 KiB budget)", value, "KiB", 20.0, 1.0, True))
    return rows


def run(quick: bool = False) -> list[Row]:
    """Run the benchmark; every row carries its bare-relay ceiling."""
    return asyncio.run(_run(quick))


def main() -> int:
    return bench_main("server", "optisync server vs a bare relay", run, __doc__)


if __name__ == "__main__":
    sys.exit(main())
