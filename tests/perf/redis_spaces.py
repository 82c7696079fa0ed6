"""The Redis backend at scale: start-up, a new device's catch-up, and what a write costs.

    python -m tests.perf.redis_spaces [--quick] [--registers N] [--spaces S]

Every server is a real ``python -m syncserver`` process (under
:mod:`tests.perf._stalls`, which adds a loop-stall monitor, or
:mod:`tests.perf._probe`, which tells its exact CPU time), on a throwaway
``redis-server`` with ``appendonly yes`` and ``appendfsync always``. The
database is filled through the backend's own write script, 2,000 writes per
call (as a process' group commit sends them): registers, revision index,
heads, count and layout are exactly what writes leave behind. Figures:

* **start-up** over N registers (default 1,000,000; quick: 100,000) spread
  evenly over S spaces (default 100; quick: 10): seconds from spawning the
  process to its listening line, and its peak RSS then, beside the targets
  from the issue (1 s, 150 MiB); the same on an empty Redis below them;
* **new device caught up** (``hello`` without ``since`` in a space, until the
  snapshot's last page) on one of those spaces (N/S registers) and on a
  database holding N registers in one space, with the longest loop stall in
  the server meanwhile and its loop thread's CPU time over the same stretch
  (target 20 ms) and the server's peak RSS after the big one; each beside the
  same on SQLite (``--db``, the same registers, same run);
* **CPU per write in a process** (``/proc``-exact through the probe, its idle
  CPU over the same time subtracted) for writes of a space it does not
  follow (Redis does not send them), of a space one of its connections
  joined, and of a space 100 of its connections joined, with one write and
  with 1,000 writes per script call; the writes come straight from the write
  script, so no other process follows their space because of them;
* **redis-server's CPU per write** (its ``getrusage``, as ``/proc`` counts it,
  from ``INFO cpu`` in µs) for a space 0, 1 and 4 processes follow.

Processes following a space are the only ones Redis sends its writes to, so
a process' cost grows with the writes of the spaces its devices are in, not
with the whole database's. A 2-core machine shared with other work makes
every figure noisy: the load average is printed under the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec
import redis.asyncio as redis_asyncio
from websockets.asyncio.client import connect

from syncserver.backends import MAX_BATCH
from syncserver.backends.redis import _WRITE_SCRIPT, changes_key, channel_name, registers_key
from tests.perf._load import Load
from tests.perf._stalls import STALL_FD
from tests.perf.catchup import (
    TARGET_CAUGHT_UP_S,
    TARGET_RSS_MIB,
    TARGET_STALL_MS,
    TARGET_START_S,
    bounded_registers,
)
from tests.perf.cli import bench_parser, progress, verdict
from tests.perf.curve import fd_limit, load_workers
from tests.perf.registers import create_database, fill_registers
from tests.perf.report import Row, print_table
from tests.perf.server import Server, subprocess_server
from tests.perf.server_redis import redis_server
from tests.perf.spaces_redis import redis_cpu_seconds

__all__ = ["fill", "main", "run", "write_script_calls"]

ROOT = Path(__file__).resolve().parents[2]
VALUE = '{"done":true}'
"""Every register's value, on Redis and on SQLite alike."""
ORIGIN = 1
"""The origin the benchmark's writes carry (a process picks a random 62-bit one)."""
IDLE_SECONDS = 2.0
"""How long a process' idle CPU is measured before it is subtracted."""


# -- writing through the write script ------------------------------------------------


class Writer:
    """Calls of the backend's write script, as a process' group commit makes them."""

    def __init__(self, url: str) -> None:
        self.client = redis_asyncio.Redis.from_url(url)
        self.script = self.client.register_script(_WRITE_SCRIPT)
        db = int(self.client.connection_pool.connection_kwargs.get("db", 0))
        self.prefix = channel_name(db, "")
        self.sequence = itertools.count(1)
        self.keys = [
            "optisync:revision",
            "optisync:heads",
            "optisync:count",
            "optisync:layout",
        ]

    def args(self, writes: Sequence[tuple[str, str, str]]) -> list[str | bytes]:
        """The script's ARGV for ``writes`` of (space, key, value JSON)."""
        args: list[str | bytes] = [self.prefix]
        encode = msgspec.json.encode
        for space, key, value in writes:
            sequence = next(self.sequence)
            head = (key, msgspec.Raw(value.encode()), 1, 1 + sequence % 97, ORIGIN, sequence, space)
            args += (space, registers_key(space), changes_key(space), key, encode(head)[:-1])
        return args

    async def call(self, writes: Sequence[tuple[str, str, str]]) -> None:
        await self.script(keys=self.keys, args=self.args(writes))

    async def close(self) -> None:
        await self.client.aclose()


async def write_script_calls(writer: Writer, calls: list[list[tuple[str, str, str]]]) -> None:
    """Send ``calls`` a few at a time (a pipeline), each one script call."""
    for start in range(0, len(calls), 8):
        async with writer.client.pipeline(transaction=False) as pipe:
            for writes in calls[start : start + 8]:
                await writer.script(keys=writer.keys, args=writer.args(writes), client=pipe)
            await pipe.execute()


async def fill(url: str, registers: int, spaces: int) -> None:
    """``registers`` registers ``k/NNNNNNN`` over ``spaces`` spaces ``space-N``, the
    writes interleaved (write n goes to space n mod S), through the write script."""
    writer = Writer(url)
    try:
        # What the first process does on an empty database (the start script).
        await writer.client.set("optisync:layout", "2")
        order = ((f"space-{n % spaces}", f"k/{n // spaces:07d}", VALUE) for n in range(registers))
        while calls := [
            batch
            for batch in (list(itertools.islice(order, MAX_BATCH)) for _ in range(64))
            if batch
        ]:
            await write_script_calls(writer, calls)
    finally:
        await writer.close()


def fill_sqlite(db: Path, registers: int, spaces: int) -> None:
    """The same registers in a SQLite file (each space's in one transaction)."""
    create_database(db)
    per_space, extra = divmod(registers, spaces)
    for space in range(spaces):
        count = per_space + (1 if space < extra else 0)
        fill_registers(db, count, value=VALUE, space=f"space-{space}")


# -- a server process with a stall monitor -------------------------------------------


@dataclass
class Monitored:
    """A ``python -m syncserver`` process under :mod:`tests.perf._stalls`."""

    proc: asyncio.subprocess.Process
    url: str
    start_seconds: float
    answers: int

    async def stall(self) -> tuple[float, float]:
        """The longest loop stall since the last ask and its loop thread's CPU (ms)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"stall\n")
        await self.proc.stdin.drain()
        answer = b""
        while not answer.endswith(b"\n"):
            answer += await asyncio.to_thread(os.read, self.answers, 64)
        longest, cpu = answer.split()
        return float(longest), float(cpu)

    def memory_mib(self) -> tuple[float, float]:
        """VmRSS and VmHWM (peak) in MiB."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text().splitlines()
        fields = dict(row.split(":", 1) for row in status if ":" in row)
        rss, peak = (int(fields[name].split()[0]) / 1024 for name in ("VmRSS", "VmHWM"))
        return rss, peak


@contextlib.asynccontextmanager
async def monitored_server(*options: str) -> AsyncIterator[Monitored]:
    """``python -m syncserver --port 0 OPTIONS`` with a stall monitor, timed from spawn
    to its listening line."""
    answers, answer_to = os.pipe()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OPTISYNC_LOG_LEVEL": "warning",
        STALL_FD: str(answer_to),
    }
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.perf._stalls", "--port", "0", *options,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        cwd=ROOT, env=env, pass_fds=(answer_to,),
    )  # fmt: skip
    os.close(answer_to)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
        seconds = time.perf_counter() - started
        if "ws://" not in line:
            raise RuntimeError(f"the server did not start: {line!r}")
        url = line[line.index("ws://") :].split()[0]
        yield Monitored(proc, url, seconds, answers)
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 60)
        os.close(answers)


async def catch_up(url: str, space: str) -> tuple[float, int]:
    """A new device's full catch-up of ``space``: seconds and registers received."""
    async with connect(url, max_size=None, compression=None) as ws:
        started = time.perf_counter()
        hello = {"type": "hello", "device_id": 1, "space": space, "batch_pushes": True}
        await ws.send(json.dumps(hello))
        entries = 0
        while True:
            page = json.loads(await ws.recv(decode=False))
            if page["type"] == "error":
                raise RuntimeError(f"the server refused the catch-up: {page}")
            if page["type"] != "snapshot":
                continue
            entries += len(page["values"])
            if not page["more"]:
                return time.perf_counter() - started, entries


@dataclass(frozen=True)
class CaughtUp:
    seconds: float
    stall_ms: float
    stall_cpu_ms: float
    peak_mib: float


async def measure_catch_up(server: Monitored, space: str, registers: int) -> CaughtUp:
    await server.stall()
    seconds, entries = await catch_up(server.url, space)
    stall_ms, stall_cpu_ms = await server.stall()
    if entries != registers:
        raise RuntimeError(f"the snapshot of {space} held {entries:,} registers, not {registers:,}")
    return CaughtUp(seconds, stall_ms, stall_cpu_ms, server.memory_mib()[1])


def _catch_up_rows(label: str, on_redis: CaughtUp, on_sqlite: CaughtUp, big: bool) -> list[Row]:
    rows = [
        Row(
            f"new device caught up, {label}, Redis (ceiling: SQLite)",
            on_redis.seconds,
            "s",
            on_sqlite.seconds,
            None,
            lower_is_better=True,
        )
    ]
    if big:
        rows.append(
            Row(
                f"  the same (ceiling: the {TARGET_CAUGHT_UP_S:g} s target)",
                on_redis.seconds,
                "s",
                TARGET_CAUGHT_UP_S,
                1.0,
                lower_is_better=True,
            )
        )
    rows += [
        Row(
            "  longest loop stall meanwhile, Redis (ceiling: the target)",
            on_redis.stall_ms,
            "ms",
            TARGET_STALL_MS,
            1.0,
            lower_is_better=True,
        ),
        Row(
            "  its loop thread's CPU time between the same two ticks",
            on_redis.stall_cpu_ms,
            "ms",
            TARGET_STALL_MS,
            1.0,
            lower_is_better=True,
        ),
        Row(
            "  longest loop stall meanwhile, SQLite (its CPU time beside it)",
            on_sqlite.stall_ms,
            "ms",
            on_sqlite.stall_cpu_ms,
            None,
            lower_is_better=True,
        ),
    ]
    return rows


# -- start-up and catch-up -----------------------------------------------------------


async def measure_scale(registers: int, spaces: int) -> list[Row]:
    per_space = registers // spaces
    rows: list[Row] = []
    many = f"{registers:,} registers in {spaces} spaces"
    async with redis_server() as url:
        async with monitored_server("--backend", url) as empty:
            empty_start, empty_peak = empty.start_seconds, empty.memory_mib()[1]
        started = time.perf_counter()
        await fill(url, registers, spaces)
        print(f"set-up: {many} through the write script in {time.perf_counter() - started:.1f} s")
        async with monitored_server("--backend", url) as server:
            start, start_peak = server.start_seconds, server.memory_mib()[1]
            small_redis = await measure_catch_up(server, "space-0", per_space)
    rows += [
        Row(
            f"start, spawn to listening, Redis with {many} (ceiling: the target)",
            start,
            "s",
            TARGET_START_S,
            1.0,
            lower_is_better=True,
        ),
        Row("  the same on an empty Redis", empty_start, "s", None, None, lower_is_better=True),
        Row(
            "peak RSS after that start (ceiling: the target)",
            start_peak,
            "MiB",
            TARGET_RSS_MIB,
            1.0,
            lower_is_better=True,
        ),
        Row("  the same on an empty Redis", empty_peak, "MiB", None, None, lower_is_better=True),
    ]
    with tempfile.TemporaryDirectory(prefix="optisync-redis-spaces-") as folder:
        db = Path(folder) / "spaces.sqlite3"
        fill_sqlite(db, registers, spaces)
        async with monitored_server("--db", str(db)) as server:
            small_sqlite = await measure_catch_up(server, "space-0", per_space)
    rows += _catch_up_rows(
        f"a {per_space:,}-register space of {spaces}", small_redis, small_sqlite, False
    )

    one = f"{registers:,} registers in one space"
    async with redis_server() as url:
        started = time.perf_counter()
        await fill(url, registers, 1)
        print(f"set-up: {one} through the write script in {time.perf_counter() - started:.1f} s")
        async with monitored_server("--backend", url) as server:
            big_redis = await measure_catch_up(server, "space-0", registers)
    with tempfile.TemporaryDirectory(prefix="optisync-redis-spaces-") as folder:
        db = Path(folder) / "one.sqlite3"
        fill_sqlite(db, registers, 1)
        async with monitored_server("--db", str(db)) as server:
            big_sqlite = await measure_catch_up(server, "space-0", registers)
    rows += _catch_up_rows(one, big_redis, big_sqlite, True)
    rows.append(
        Row(
            f"peak RSS after that catch-up, Redis (ceiling: the target;"
            f" SQLite {big_sqlite.peak_mib:.0f} MiB)",
            big_redis.peak_mib,
            "MiB",
            TARGET_RSS_MIB,
            1.0,
            lower_is_better=True,
        )
    )
    return rows


# -- CPU per write ---------------------------------------------------------------------

NOT_FOLLOWED = "nobody"
ONE = "one"
MANY = "many"
EVERY = "every"
MANY_CONNECTIONS = 100
FOLLOWERS = 4


async def _idle_rate(server: Server) -> float:
    """The process' CPU seconds per second while nothing happens (its timers)."""
    cpu, wall = server.cpu_seconds(), time.monotonic()
    await asyncio.sleep(IDLE_SECONDS)  # measuring idle time, not waiting for an event
    return (server.cpu_seconds() - cpu) / (time.monotonic() - wall)


@dataclass(frozen=True)
class Spent:
    process_us: float
    """The probed process' CPU per write, its idle rate subtracted."""
    redis_us: float
    """redis-server's CPU per write."""


async def _write(
    writer: Writer,
    url: str,
    probed: Server,
    idle: float,
    load: Load,
    space: str,
    writes: int,
    batch: int,
) -> Spent:
    """``writes`` writes of ``space`` in calls of ``batch``: the probed process' and
    redis-server's CPU per write (once every device in the space has its pushes)."""
    listening = space != NOT_FOLLOWED
    if listening:
        await load.arm_listen({space: writes})
    cpu, wall, redis_cpu = probed.cpu_seconds(), time.monotonic(), await redis_cpu_seconds(url)
    for start in range(0, writes, batch):
        await writer.call(
            [(space, f"k/{n % 1000:04d}", str(n)) for n in range(start, start + batch)]
        )
    redis_spent = await redis_cpu_seconds(url) - redis_cpu
    if listening:
        listened = await load.listened()
        if listened.wrong:
            raise RuntimeError(f"devices {listened.wrong[:5]} got other pushes than their space's")
    spent = probed.cpu_seconds() - cpu - idle * (time.monotonic() - wall)
    return Spent(spent / writes * 1e6, redis_spent / writes * 1e6)


async def measure_cpu(quick: bool) -> list[Row]:
    fd_limit()
    rows: list[Row] = []
    args = ("-m", "syncserver", "--port", "0")
    async with redis_server() as url, contextlib.AsyncExitStack() as stack:
        await fill(url, 1, 1)  # the layout a first process would set
        probed = await stack.enter_async_context(
            subprocess_server(*args, "--backend", url, pin=False, probe=True)
        )
        others = [
            await stack.enter_async_context(subprocess_server(*args, "--backend", url, pin=False))
            for _ in range(FOLLOWERS - 1)
        ]
        load = await stack.enter_async_context(load_workers())
        # Devices: one in ONE and MANY_CONNECTIONS in MANY on the probed process, one in
        # EVERY on each of the FOLLOWERS processes; nobody in NOT_FOLLOWED.
        device = itertools.count(1)
        await load.connect(probed.url, 1, batched=True, first=next(device), space_of=lambda _: ONE)
        first = next(device)
        await load.connect(
            probed.url, MANY_CONNECTIONS, batched=True, first=first, space_of=lambda _: MANY
        )
        device = itertools.count(first + MANY_CONNECTIONS)
        for server in (probed, *others):
            await load.connect(
                server.url, 1, batched=True, first=next(device), space_of=lambda _: EVERY
            )
        writer = Writer(url)
        stack.push_async_callback(writer.close)
        stack.push_async_callback(load.close_connections)
        idle = await _idle_rate(probed)
        print(f"idle: the probed process spends {idle * 1e3:.2f} ms of CPU a second", flush=True)
        for batch in (1, 1000):
            writes = (1_000 if quick else 5_000) if batch == 1 else (20_000 if quick else 100_000)
            per = f"{batch:,} write{'s' if batch > 1 else ''}/script call"
            spent = {
                space: await _write(writer, url, probed, idle, load, space, writes, batch)
                for space in (NOT_FOLLOWED, ONE, MANY, EVERY)
            }
            rows += [
                Row(
                    f"process CPU per write of a space it does not follow, {per}"
                    " (ceiling: one of its connections in it)",
                    spent[NOT_FOLLOWED].process_us,
                    "µs",
                    spent[ONE].process_us,
                    None,
                    lower_is_better=True,
                ),
                Row(
                    f"  … of a space one of its connections joined, {per}",
                    spent[ONE].process_us,
                    "µs",
                    None,
                    None,
                    lower_is_better=True,
                ),
                Row(
                    f"  … of a space {MANY_CONNECTIONS} of its connections joined, {per}"
                    " (ceiling: one connection)",
                    spent[MANY].process_us,
                    "µs",
                    spent[ONE].process_us,
                    None,
                    lower_is_better=True,
                ),
                Row(
                    f"redis-server CPU per write, no process follows the space, {per}",
                    spent[NOT_FOLLOWED].redis_us,
                    "µs",
                    None,
                    None,
                    lower_is_better=True,
                ),
                Row(
                    f"  … 1 process follows it, {per} (ceiling: none follows)",
                    spent[ONE].redis_us,
                    "µs",
                    spent[NOT_FOLLOWED].redis_us,
                    None,
                    lower_is_better=True,
                ),
                Row(
                    f"  … {FOLLOWERS} processes follow it, {per} (ceiling: 1 follows)",
                    spent[EVERY].redis_us,
                    "µs",
                    spent[ONE].redis_us,
                    None,
                    lower_is_better=True,
                ),
            ]
    return rows


def run(quick: bool = False, registers: int | None = None, spaces: int | None = None) -> list[Row]:
    count = registers if registers is not None else (100_000 if quick else 1_000_000)
    spread = spaces if spaces is not None else (10 if quick else 100)
    rows = asyncio.run(measure_scale(count, spread))
    rows += asyncio.run(measure_cpu(quick))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_parser("python -m tests.perf.redis_spaces", __doc__)
    parser.add_argument("--registers", type=bounded_registers, help="registers (default 1,000,000)")
    parser.add_argument("--spaces", type=bounded_registers, help="spaces they are spread over")
    args = parser.parse_args(argv)
    with progress("redis_spaces"):
        rows = run(quick=args.quick, registers=args.registers, spaces=args.spaces)
    print_table("Redis backend: start-up, catch-up and the cost of a write", rows)
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"load average (1, 5, 15 min): {load} on {os.cpu_count()} cores", flush=True)
    return verdict(rows)


if __name__ == "__main__":
    raise SystemExit(main())
